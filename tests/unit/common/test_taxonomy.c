/*
 * test_taxonomy.c - skills taxonomy: the real data/skills.tsv, lookup keys,
 * canonical forms, loader errors on crafted files, concurrent readers.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/taxonomy.h"

static lm_taxonomy *
load_real(void)
{
	lm_taxonomy *t = NULL;
	char err[512] = "";
	int rv = lm_taxonomy_load(lmt_src("data/skills.tsv"), &t, err, sizeof(err));
	if (rv != LM_OK)
		fail_msg("loading data/skills.tsv: %s", err);
	assert_non_null(t);
	return t;
}

static const char *
id_of(const lm_taxonomy *t, const char *name)
{
	const lm_skill *s = lm_taxonomy_lookup(t, name);
	return s ? s->id : "(unknown)";
}

static void
test_real_file(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();

	assert_true(lm_taxonomy_count(t) >= 300);
	assert_string_equal(lm_taxonomy_version(t), "2026.12");

	const char *gcp[] = {"GCP", "Google Cloud Platform", "google-cloud",
	    "google cloud", "GOOGLE_CLOUD", "  gcp  ", "google-cloud-platform"};
	for (size_t i = 0; i < sizeof(gcp) / sizeof(gcp[0]); i++)
		assert_string_equal(id_of(t, gcp[i]), "google-cloud-platform");
	assert_string_equal(lm_taxonomy_lookup(t, "gcp")->name, "Google Cloud Platform");
	assert_string_equal(lm_taxonomy_lookup(t, "gcp")->category, "cloud-devops");

	/* Skills that postings rely on, by id and by the ways people write them. */
	const char *ids[] = {"python", "scala", "java", "aws", "azure",
	    "google-cloud-platform", "distributed-computing", "ml-systems",
	    "model-development", "model-training", "model-deployment",
	    "hyperparameter-tuning", "data-pipelines", "ci-cd", "responsible-ai",
	    "explainable-ai", "machine-learning", "deep-learning", "sql", "spark",
	    "kafka", "kubernetes", "docker"};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		const lm_skill *s = lm_taxonomy_get(t, ids[i]);
		if (s == NULL)
			fail_msg("skill \"%s\" missing from data/skills.tsv", ids[i]);
		assert_ptr_equal(lm_taxonomy_lookup(t, s->name), s);
	}
	const char *pairs[][2] = {
	    {"Amazon Web Services", "aws"},
	    {"Microsoft Azure", "azure"},
	    {"machine learning systems", "ml-systems"},
	    {"ML Systems", "ml-systems"},
	    {"XAI", "explainable-ai"},
	    {"Explainable AI", "explainable-ai"},
	    {"Apache Spark", "spark"},
	    {"Apache Kafka", "kafka"},
	    {"K8s", "kubernetes"},
	    {"CI/CD", "ci-cd"},
	    {"cicd", "ci-cd"},
	    {"Hyperparameter Tuning", "hyperparameter-tuning"},
	    {"data pipelines", "data-pipelines"},
	    {"Node.js", "nodejs"},
	    {"nodejs", "nodejs"},
	    {"Golang", "go"},
	    {"Postgres", "postgresql"},
	    {"MIG welding", "mig-welding"},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		assert_string_equal(id_of(t, pairs[i][0]), pairs[i][1]);

	/* "GCP" the cloud is not Good Clinical Practice. */
	assert_string_equal(id_of(t, "Good Clinical Practice"), "good-clinical-practice");
	lm_taxonomy_free(t);
}

static void
test_key(void **state)
{
	(void) state;
	char k[64];

	assert_int_equal(lm_skill_key("Node.js", k, sizeof(k)), 6);
	assert_string_equal(k, "nodejs");
	lm_skill_key("GOOGLE_CLOUD", k, sizeof(k));
	assert_string_equal(k, "googlecloud");
	lm_skill_key(" google - cloud ", k, sizeof(k));
	assert_string_equal(k, "googlecloud");
	lm_skill_key("C++", k, sizeof(k));
	assert_string_equal(k, "cplusplus");
	lm_skill_key("C#", k, sizeof(k));
	assert_string_equal(k, "csharp");
	lm_skill_key("C", k, sizeof(k));
	assert_string_equal(k, "c");
	lm_skill_key("PL/SQL", k, sizeof(k));
	assert_string_equal(k, "plsql");

	/* ASCII folding only: UTF-8 bytes are kept as they are. */
	lm_skill_key("Caf\xc3\xa9 Ops", k, sizeof(k));
	assert_string_equal(k, "caf\xc3\xa9ops");
	lm_skill_key("\303\211COLE", k, sizeof(k));
	assert_string_equal(k, "\303\211cole");

	/* Nothing but punctuation gives an empty key; NULL too. */
	assert_int_equal(lm_skill_key(" - . _ ", k, sizeof(k)), 0);
	assert_string_equal(k, "");
	assert_int_equal(lm_skill_key(NULL, k, sizeof(k)), 0);

	/* Truncation reports the whole length, like snprintf. */
	char small[5];
	assert_int_equal(lm_skill_key("C++ Builder", small, sizeof(small)), 16);
	assert_string_equal(small, "cplu");
	assert_int_equal(lm_skill_key("abc", NULL, 0), 3);
}

static void
test_c_family(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();

	assert_string_equal(id_of(t, "C"), "c");
	assert_string_equal(id_of(t, "c"), "c");
	assert_string_equal(id_of(t, "C++"), "cpp");
	assert_string_equal(id_of(t, "c plus plus"), "cpp");
	assert_string_equal(id_of(t, "cpp"), "cpp");
	assert_string_equal(id_of(t, "C#"), "csharp");
	assert_string_equal(id_of(t, "c sharp"), "csharp");
	assert_string_equal(id_of(t, "F#"), "fsharp");
	assert_string_equal(id_of(t, ".NET"), "dotnet");
	assert_ptr_not_equal(lm_taxonomy_lookup(t, "C"), lm_taxonomy_lookup(t, "C++"));
	assert_ptr_not_equal(lm_taxonomy_lookup(t, "C"), lm_taxonomy_lookup(t, "C#"));
	assert_ptr_not_equal(lm_taxonomy_lookup(t, "C++"), lm_taxonomy_lookup(t, "C#"));
	lm_taxonomy_free(t);
}

static void
test_canonical(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();
	char buf[128];

	assert_int_equal(lm_taxonomy_canonical(t, "GCP", buf, sizeof(buf)), LM_OK);
	assert_string_equal(buf, "google-cloud-platform");
	assert_int_equal(lm_taxonomy_canonical(t, "c++", buf, sizeof(buf)), LM_OK);
	assert_string_equal(buf, "cpp");

	assert_int_equal(
	    lm_taxonomy_canonical(t, "Quantum Basket-Weaving", buf, sizeof(buf)), LM_OK);
	assert_string_equal(buf, "x:quantumbasketweaving");
	assert_int_equal(
	    lm_taxonomy_canonical(t, "C++ Builder", buf, sizeof(buf)), LM_OK);
	assert_string_equal(buf, "x:cplusplusbuilder");
	/* Unknown spellings that share a key share a canonical form. */
	char buf2[128];
	assert_int_equal(
	    lm_taxonomy_canonical(t, "quantum_basket weaving", buf2, sizeof(buf2)),
	    LM_OK);
	assert_int_equal(
	    lm_taxonomy_canonical(t, "Quantum Basket-Weaving", buf, sizeof(buf)), LM_OK);
	assert_string_equal(buf, buf2);
	/* An unknown form never looks like a taxonomy id. */
	assert_null(lm_taxonomy_get(t, buf));

	assert_int_equal(lm_taxonomy_canonical(t, " -- ", buf, sizeof(buf)), LM_EINVAL);
	assert_int_equal(lm_taxonomy_canonical(t, "", buf, sizeof(buf)), LM_EINVAL);
	assert_int_equal(lm_taxonomy_canonical(t, NULL, buf, sizeof(buf)), LM_EINVAL);

	/* Too small for the id, or for the unknown form. */
	char small[8];
	assert_int_equal(lm_taxonomy_canonical(t, "GCP", small, sizeof(small)), LM_E2BIG);
	assert_string_equal(small, "");
	assert_int_equal(
	    lm_taxonomy_canonical(t, "abcdef", small, sizeof(small)), LM_E2BIG);
	assert_string_equal(small, "");
	assert_int_equal(lm_taxonomy_canonical(t, "abcde", small, sizeof(small)), LM_OK);
	assert_string_equal(small, "x:abcde");

	/* A name longer than any key can still be given an unknown form. */
	char longname[400], big[512];
	memset(longname, 'q', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(lm_taxonomy_lookup(t, longname));
	assert_int_equal(lm_taxonomy_canonical(t, longname, big, sizeof(big)), LM_OK);
	assert_int_equal(strlen(big), 2 + 399);
	lm_taxonomy_free(t);
}

static void
test_get(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();

	assert_non_null(lm_taxonomy_get(t, "python"));
	assert_string_equal(lm_taxonomy_get(t, "python")->name, "Python");
	assert_null(lm_taxonomy_get(t, "Python")); /* ids are exact */
	assert_null(lm_taxonomy_get(t, "GCP"));    /* an alias is not an id */
	assert_null(lm_taxonomy_get(t, "cicd"));   /* nor is a key */
	assert_null(lm_taxonomy_get(t, "no-such-skill"));
	assert_null(lm_taxonomy_lookup(t, "no such skill"));
	assert_null(lm_taxonomy_lookup(t, ""));
	assert_null(lm_taxonomy_lookup(t, NULL));
	assert_null(lm_taxonomy_at(t, lm_taxonomy_count(t)));
	lm_taxonomy_free(t);
	lm_taxonomy_free(NULL);
}

static void
test_categories(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();
	const char *cats[] = {"software-engineering", "data-ml", "cloud-devops",
	    "security", "finance", "healthcare", "sales-marketing", "design", "trades",
	    "soft-skills", "management"};
	size_t ncats = sizeof(cats) / sizeof(cats[0]);
	size_t counts[sizeof(cats) / sizeof(cats[0])] = {0};

	for (size_t i = 0; i < lm_taxonomy_count(t); i++) {
		const lm_skill *s = lm_taxonomy_at(t, i);
		assert_non_null(s);
		/* Every id and name resolves back to its own skill. */
		assert_ptr_equal(lm_taxonomy_get(t, s->id), s);
		assert_ptr_equal(lm_taxonomy_lookup(t, s->id), s);
		assert_ptr_equal(lm_taxonomy_lookup(t, s->name), s);
		for (size_t c = 0; c < ncats; c++) {
			if (strcmp(s->category, cats[c]) == 0)
				counts[c]++;
		}
	}
	for (size_t c = 0; c < ncats; c++) {
		if (counts[c] < 5)
			fail_msg("category %s has %zu skills", cats[c], counts[c]);
	}
	/* The trades are there, not just office work. */
	const char *trades[] = {
	    "electrical-wiring", "plumbing", "welding", "hvac", "carpentry"};
	for (size_t i = 0; i < sizeof(trades) / sizeof(trades[0]); i++)
		assert_string_equal(lm_taxonomy_get(t, trades[i])->category, "trades");
	lm_taxonomy_free(t);
}

/* Loads text as a taxonomy file and expects failure with code, an error that
 * names "<file>:<line>:" (line 0: no line) and contains want. */
static void
expect_error(const char *dir, const char *text, int code, unsigned line, const char *want)
{
	lm_taxonomy *t = (lm_taxonomy *) 1;
	char err[512] = "";
	const char *path = lmt_write_file(dir, "bad.tsv", text, strlen(text));

	assert_int_equal(lm_taxonomy_load(path, &t, err, sizeof(err)), code);
	assert_null(t);
	lmt_assert_file_error(err, path, line, want);
}

#define HDR "# skills\n# version: test-1\n"

static void
test_load_errors(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("taxonomy");

	expect_error(dir,
	    HDR "python\tPython\tsoftware\tpy\n"
	        "java\tJava\tsoftware\t\n"
	        "python\tPython 3\tsoftware\t\n",
	    LM_ESCHEMA, 5, "duplicate id \"python\" (first on line 3)");
	expect_error(dir,
	    HDR "google-cloud-platform\tGoogle Cloud Platform\tcloud\tGCP\n"
	        "\n"
	        "good-clinical-practice\tGood Clinical Practice\thealthcare\tGCP\n",
	    LM_ESCHEMA, 5,
	    "alias \"GCP\" collides with skill \"google-cloud-platform\" (line 3)");
	/* Collisions go through the key, not the spelling. */
	expect_error(dir,
	    HDR "nodejs\tNode.js\tsoftware\t\n"
	        "node-js\tNode JS\tsoftware\t\n",
	    LM_ESCHEMA, 4, "collides with skill \"nodejs\"");
	expect_error(dir, HDR "python\tPython\tsoftware\n", LM_EPARSE, 3,
	    "expected 4 tab-separated columns");
	expect_error(
	    dir, HDR "python\tPython\tsoftware\tpy\textra\n", LM_EPARSE, 3, "found 5");
	expect_error(dir, HDR "\tPython\tsoftware\tpy\n", LM_EPARSE, 3, "empty id");
	expect_error(dir, HDR "Python\tPython\tsoftware\t\n", LM_EPARSE, 3,
	    "not lower-case kebab-case");
	expect_error(dir, HDR "py--thon\tPython\tsoftware\t\n", LM_EPARSE, 3,
	    "not lower-case kebab-case");
	expect_error(dir, HDR "python\t\tsoftware\t\n", LM_EPARSE, 3, "empty name");
	expect_error(dir, HDR "python\tPython\t\t\n", LM_EPARSE, 3, "empty category");
	expect_error(
	    dir, HDR "python\tPython\tsoftware\tpy||py3\n", LM_EPARSE, 3, "empty alias");
	expect_error(dir, HDR "python\tPython\tsoftware\tpy|--\n", LM_EPARSE, 3,
	    "alias \"--\" has no letters or digits");
	expect_error(dir, HDR "cafe\tCaf\xe9\tsoftware\t\n", LM_EPARSE, 3,
	    "name is not valid UTF-8");
	expect_error(dir, HDR "cafe\tCafe\tsoftware\tCaf\xc3\n", LM_EPARSE, 3,
	    "alias is not valid UTF-8");
	expect_error(dir, HDR "cafe\tCafe\tsoftware\tCaf\xc0\xa9\n", LM_EPARSE, 3,
	    "alias is not valid UTF-8");
	expect_error(dir, HDR "cafe\tCafe\tsoftware\tCaf\xed\xa0\x80\n", LM_EPARSE, 3,
	    "alias is not valid UTF-8");
	expect_error(dir, "# no version here\npython\tPython\tsoftware\t\n", LM_EPARSE, 0,
	    "missing \"# version");
	expect_error(dir, HDR "# version: again\n", LM_EPARSE, 3, "second version");
	expect_error(dir, HDR, LM_EPARSE, 0, "no skills");
	expect_error(
	    dir, "# format: 2\n# version: x\n", LM_EPARSE, 1, "unsupported format");

	/* Hard limits: line length, id length, alias count. */
	char big[LM_TAXONOMY_LINE_MAX + 200];
	int n = snprintf(big, sizeof(big), HDR "python\tPython\tsoftware\t");
	memset(big + n, 'a', sizeof(big) - (size_t) n - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	expect_error(dir, big, LM_E2BIG, 3, "line longer than");

	char text[4096];
	n = snprintf(text, sizeof(text), HDR "%065d\tName\tsoftware\t\n", 0);
	expect_error(dir, text, LM_E2BIG, 3, "id longer than 64");
	n = snprintf(text, sizeof(text), HDR "python\tPython\tsoftware\t");
	for (int i = 0; i <= LM_TAXONOMY_ALIASES_MAX; i++)
		n += snprintf(
		    text + n, sizeof(text) - (size_t) n, "%sa%d", i ? "|" : "", i);
	snprintf(text + n, sizeof(text) - (size_t) n, "\n");
	expect_error(dir, text, LM_E2BIG, 3, "more than 64 aliases");

	/* A NUL byte is an error, not a silent end of line. */
	static const char nul[] = HDR "python\tPy\0thon\tsoftware\t\n";
	lm_taxonomy *t = NULL;
	char err[512];
	const char *path = lmt_write_file(dir, "nul.tsv", nul, sizeof(nul) - 1);
	assert_int_equal(lm_taxonomy_load(path, &t, err, sizeof(err)), LM_EPARSE);
	assert_non_null(strstr(err, ":3: NUL byte"));

	/* A missing file. */
	char missing[1024];
	snprintf(missing, sizeof(missing), "%s/nope.tsv", dir);
	assert_int_equal(lm_taxonomy_load(missing, &t, err, sizeof(err)), LM_ENOENT);
	assert_non_null(strstr(err, "nope.tsv"));
	assert_null(t);

	/* A file over the size limit is refused before it is parsed. */
	char *huge = malloc(LM_TAXONOMY_FILE_MAX + 16);
	assert_non_null(huge);
	memset(huge, '\n', LM_TAXONOMY_FILE_MAX + 16);
	path = lmt_write_file(dir, "huge.tsv", huge, LM_TAXONOMY_FILE_MAX + 16);
	free(huge);
	assert_int_equal(lm_taxonomy_load(path, &t, err, sizeof(err)), LM_E2BIG);
	assert_non_null(strstr(err, "file larger than"));

	lmt_rmtree(dir);
	free(dir);
}

static void
test_load_lenient_layout(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("taxonomy");
	/* CRLF line ends, blank lines, comments between skills, spaces around
	 * fields and aliases, no newline at the end; the same alias twice for one
	 * skill is not a collision. */
	static const char text[] = "# format: 1\r\n# version:  v7 \r\n\r\n"
	                           "# cloud\r\n"
	                           "google-cloud-platform\t Google Cloud Platform "
	                           "\tcloud\t GCP | Google Cloud | "
	                           "google-cloud\r\n"
	                           "   \r\n"
	                           "c\tC\tsoftware\t\r\n"
	                           "cpp\tC++\tsoftware\tC plus plus";
	const char *path = lmt_write_file(dir, "ok.tsv", text, sizeof(text) - 1);
	lm_taxonomy *t = NULL;
	char err[512] = "";

	if (lm_taxonomy_load(path, &t, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	assert_int_equal(lm_taxonomy_count(t), 3);
	assert_string_equal(lm_taxonomy_version(t), "v7");
	assert_string_equal(lm_taxonomy_at(t, 0)->name, "Google Cloud Platform");
	assert_string_equal(id_of(t, "google cloud"), "google-cloud-platform");
	assert_string_equal(id_of(t, "C plus plus"), "cpp");
	assert_string_equal(lm_taxonomy_at(t, 2)->category, "software");
	lm_taxonomy_free(t);
	lmt_rmtree(dir);
	free(dir);
}

/* Misspellings resolve to the one nearest skill, within the distance the
 * length allows; everything else stays unknown. */
static void
test_typos(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();
	static const struct {
		const char *name, *id;
		unsigned distance;
	} typos[] = {{"Pyhton", "python", 1}, {"Kubernets", "kubernetes", 1},
	    {"Javascrpit", "javascript", 1}, {"Terrafrom", "terraform", 1},
	    {"HIPPA", "hipaa", 1}, {"Slaesforce", "salesforce", 1},
	    {"Machine Learnign", "machine-learning", 1},
	    {"Kuberentes cluster", "x:kuberentescluster", 0}, {"Python", "python", 0},
	    {"Grapic design", "graphic-design", 1},
	    {"Data visualisation", "data-visualization", 1},
	    /* Two edits are allowed from 9 bytes on. */
	    {"Kubrnetse", "kubernetes", 2}};
	char buf[128];
	unsigned d;

	for (size_t i = 0; i < sizeof(typos) / sizeof(typos[0]); i++) {
		const lm_skill *s = lm_taxonomy_resolve(t, typos[i].name, &d);
		const char *id = s ? s->id : "";
		if (strncmp(typos[i].id, "x:", 2) == 0) {
			if (s != NULL)
				fail_msg("\"%s\" resolved to %s", typos[i].name, id);
		} else if (strcmp(id, typos[i].id) != 0 || d != typos[i].distance) {
			fail_msg("\"%s\": got \"%s\" at %u, want %s at %u", typos[i].name,
			    id, d, typos[i].id, typos[i].distance);
		}
		assert_int_equal(
		    lm_taxonomy_canonical(t, typos[i].name, buf, sizeof(buf)), LM_OK);
		assert_string_equal(buf, typos[i].id);
	}
	/* "Kubrnets" has 8 bytes: one edit only. */
	assert_null(lm_taxonomy_resolve(t, "Kubrnets", &d));
	assert_int_equal(d, 0);
	/* Below 5 bytes nothing is corrected: "Jave" is not Java. */
	assert_null(lm_taxonomy_resolve(t, "Jave", NULL));
	/* The first letter must match: "Flebotomy" stays unknown, and
	 * "Geriatrix" is not read as pediatrics. */
	assert_null(lm_taxonomy_resolve(t, "Flebotomy", NULL));
	assert_string_equal(
	    lm_taxonomy_resolve(t, "Geriatrix", NULL)->id, "geriatric-care");
	lm_taxonomy_free(t);
}

/* Two skills equally near a misspelling: no guess. */
static void
test_typo_ambiguous(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("taxonomy");
	static const char text[] = "# format: 1\n# version: t\n"
	                           "terraform\tTerraform\tcloud\t\n"
	                           "terrafirm\tTerrafirm\tcloud\t\n"
	                           "kubernetes\tKubernetes\tcloud\tk8s\n";
	const char *path = lmt_write_file(dir, "t.tsv", text, sizeof(text) - 1);
	lm_taxonomy *t = NULL;
	char err[256] = "", buf[64];
	unsigned d = 7;

	if (lm_taxonomy_load(path, &t, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	/* "terrafarm" is one substitution from both. */
	assert_null(lm_taxonomy_resolve(t, "Terrafarm", &d));
	assert_int_equal(d, 0);
	assert_int_equal(lm_taxonomy_canonical(t, "Terrafarm", buf, sizeof(buf)), LM_OK);
	assert_string_equal(buf, "x:terrafarm");
	/* Nearer to one of them: resolved. */
	assert_string_equal(lm_taxonomy_resolve(t, "Terraform!", &d)->id, "terraform");
	assert_int_equal(d, 0);
	assert_string_equal(lm_taxonomy_resolve(t, "Terrafrom", &d)->id, "terraform");
	assert_int_equal(d, 1);
	/* Keys of one skill at the same distance are no tie. */
	assert_string_equal(lm_taxonomy_resolve(t, "Kubernetis", &d)->id, "kubernetes");
	assert_null(lm_taxonomy_resolve(NULL, "Terrafrom", &d));
	assert_null(lm_taxonomy_resolve(t, NULL, &d));
	assert_null(lm_taxonomy_resolve(t, " - ", &d));
	lm_taxonomy_free(t);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * tests/data/skill-strings.tsv: realistic skill strings from seven sectors.
 * At least 95 % must resolve, each to the id the fixture states.
 */
static void
test_fixture_resolution_rate(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();
	FILE *f = fopen(lmt_src("tests/data/skill-strings.tsv"), "r");
	char line[512];
	size_t n = 0, resolved = 0, lineno = 0;
	const char *sectors[] = {
	    "software", "data-ml", "finance", "healthcare", "trades", "sales", "design"};
	size_t per[7] = {0};

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *name, *want = NULL, *tab;
		const lm_skill *s;
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if ((tab = strchr(line, '\t')) == NULL ||
		    (want = strchr(tab + 1, '\t')) == NULL)
			fail_msg("skill-strings.tsv:%zu: expected 3 columns", lineno);
		*tab = '\0';
		name = tab + 1;
		*want++ = '\0';
		for (size_t i = 0; i < 7; i++)
			per[i] += strcmp(line, sectors[i]) == 0;
		s = lm_taxonomy_resolve(t, name, NULL);
		n++;
		if (s != NULL)
			resolved++;
		if (strcmp(s ? s->id : "-", want) != 0)
			fail_msg("skill-strings.tsv:%zu: \"%s\" resolved to %s, want %s",
			    lineno, name, s ? s->id : "-", want);
	}
	fclose(f);
	assert_true(n >= 300);
	for (size_t i = 0; i < 7; i++)
		if (per[i] < 30)
			fail_msg(
			    "sector %s has %zu strings, want >= 30", sectors[i], per[i]);
	print_message("resolved %zu of %zu skill strings (%.1f %%)\n", resolved, n,
	    100.0 * (double) resolved / (double) n);
	assert_true(resolved * 100 >= n * 95);
	lm_taxonomy_free(t);
}

#define READERS 4
#define ROUNDS  2000

struct reader {
	const lm_taxonomy *t;
	int failures;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	static const char *const q[][2] = {{"GCP", "google-cloud-platform"},
	    {"C#", "csharp"}, {"Apache Spark", "spark"}, {"XAI", "explainable-ai"},
	    {"TIG welding", "tig-welding"}};
	char buf[128];
	for (int i = 0; i < ROUNDS; i++) {
		const char *const *p = q[i % 5];
		const lm_skill *s = lm_taxonomy_lookup(r->t, p[0]);
		if (s == NULL || strcmp(s->id, p[1]) != 0)
			r->failures++;
		if (lm_taxonomy_canonical(r->t, p[0], buf, sizeof(buf)) != LM_OK ||
		    strcmp(buf, p[1]) != 0)
			r->failures++;
	}
	return NULL;
}

static void
test_concurrent_readers(void **state)
{
	(void) state;
	lm_taxonomy *t = load_real();
	pthread_t th[READERS];
	struct reader rd[READERS];

	for (int i = 0; i < READERS; i++) {
		rd[i] = (struct reader){t, 0};
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < READERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rd[i].failures, 0);
	}
	lm_taxonomy_free(t);
}

/* ---- typo resolution against an exhaustive reference --------------------- */

/* A key of data/skills.tsv and its skill, read by the test itself. */
struct refkey {
	char key[LM_SKILL_KEY_MAX];
	size_t len;
	char id[128];
};

/* Plain optimal string alignment distance, no cut-off. */
static unsigned
ref_osa(const char *a, size_t n, const char *b, size_t m)
{
	static unsigned d[LM_SKILL_KEY_MAX + 1][LM_SKILL_KEY_MAX + 1];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = (unsigned) i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = (unsigned) j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			unsigned v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[n][m];
}

static void
add_ref(struct refkey *keys, size_t *n, size_t cap, const char *id, const char *name)
{
	assert_true(*n < cap);
	struct refkey *k = &keys[*n];
	k->len = lm_skill_key(name, k->key, sizeof(k->key));
	snprintf(k->id, sizeof(k->id), "%s", id);
	(*n)++;
}

/* Every id, display name and alias of data/skills.tsv, as keys. */
static size_t
read_ref_keys(struct refkey *keys, size_t cap)
{
	FILE *f = fopen(lmt_src("data/skills.tsv"), "r");
	char line[4096];
	size_t n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *col[4] = {line, NULL, NULL, NULL};
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		for (int c = 1; c < 4; c++) {
			char *tab = col[c - 1] ? strchr(col[c - 1], '\t') : NULL;
			if (tab != NULL) {
				*tab = '\0';
				col[c] = tab + 1;
			}
		}
		add_ref(keys, &n, cap, col[0], col[0]);
		add_ref(keys, &n, cap, col[0], col[1]);
		for (char *a = col[3], *bar; a != NULL && *a != '\0'; a = bar + 1) {
			if ((bar = strchr(a, '|')) != NULL)
				*bar = '\0';
			add_ref(keys, &n, cap, col[0], a);
			if (bar == NULL)
				break;
		}
	}
	fclose(f);
	return n;
}

/* What lm_taxonomy_resolve must answer for a name that is not a key: the
 * one skill nearest within the bound among keys of the same first byte, or
 * NULL ("-") when none is or two skills are equally near. */
static const char *
ref_resolve(const struct refkey *keys, size_t n, const char *key, size_t len)
{
	unsigned bound = LM_SKILL_TYPO_DISTANCE(len), best = bound + 1;
	const char *found = NULL;
	bool tie = false;

	if (bound == 0)
		return "-";
	for (size_t i = 0; i < n; i++) {
		if (keys[i].key[0] != key[0])
			continue;
		unsigned d = ref_osa(key, len, keys[i].key, keys[i].len);
		if (d > bound)
			continue;
		if (d < best) {
			best = d;
			found = keys[i].id;
			tie = false;
		} else if (d == best && strcmp(keys[i].id, found) != 0) {
			tie = true;
		}
	}
	return found == NULL || tie ? "-" : found;
}

/*
 * 5,000 random misspellings of the file's own keys (up to three random
 * substitutions, deletions, insertions or transpositions) and random
 * strings resolve exactly as an exhaustive scan of every key with a plain
 * distance says.
 */
static void
test_typo_reference(void **state)
{
	enum { CAP = 8192, TYPO_ROUNDS = 5000 };
	static struct refkey keys[CAP];
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	lm_taxonomy *t = load_real();
	size_t n = read_ref_keys(keys, CAP);
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	size_t resolved = 0;
	(void) state;

#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
	assert_true(n > 1000);
	for (int r = 0; r < TYPO_ROUNDS; r++) {
		char name[LM_SKILL_KEY_MAX];
		size_t len;
		if (r % 10 == 9) { /* a random string */
			len = 1 + NEXT() % 16;
			for (size_t i = 0; i < len; i++)
				name[i] = alphabet[NEXT() % (sizeof(alphabet) - 1)];
			name[len] = '\0';
		} else {
			const struct refkey *k = &keys[NEXT() % n];
			memcpy(name, k->key, k->len + 1);
			len = k->len;
			for (unsigned e = 1 + NEXT() % 3; e > 0; e--) {
				size_t at = len ? NEXT() % len : 0;
				switch (NEXT() % 4) {
				case 0: /* substitution */
					if (len > 0)
						name[at] = alphabet[NEXT() % 26];
					break;
				case 1: /* deletion */
					if (len > 1) {
						memmove(
						    name + at, name + at + 1, len - at);
						len--;
					}
					break;
				case 2: /* insertion */
					if (len + 2 < sizeof(name)) {
						memmove(name + at + 1, name + at,
						    len - at + 1);
						name[at] = alphabet[NEXT() % 26];
						len++;
					}
					break;
				default: /* transposition */
					if (at + 1 < len) {
						char c = name[at];
						name[at] = name[at + 1];
						name[at + 1] = c;
					}
				}
			}
		}
		char key[LM_SKILL_KEY_MAX];
		size_t klen = lm_skill_key(name, key, sizeof(key));
		if (klen == 0 || lm_taxonomy_lookup(t, name) != NULL)
			continue; /* a key itself: not a typo */
		unsigned d = 0;
		const lm_skill *s = lm_taxonomy_resolve(t, name, &d);
		const char *want = ref_resolve(keys, n, key, klen);
		if (strcmp(s ? s->id : "-", want) != 0)
			fail_msg("\"%s\" resolved to %s, the exhaustive scan says %s",
			    name, s ? s->id : "-", want);
		resolved += s != NULL;
	}
#undef NEXT
	print_message("%zu of %d misspellings resolved\n", resolved, TYPO_ROUNDS);
	assert_true(resolved > 250);
	lm_taxonomy_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_file),
	    cmocka_unit_test(test_key),
	    cmocka_unit_test(test_c_family),
	    cmocka_unit_test(test_canonical),
	    cmocka_unit_test(test_typos),
	    cmocka_unit_test(test_typo_ambiguous),
	    cmocka_unit_test(test_typo_reference),
	    cmocka_unit_test(test_fixture_resolution_rate),
	    cmocka_unit_test(test_get),
	    cmocka_unit_test(test_categories),
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_load_lenient_layout),
	    cmocka_unit_test(test_concurrent_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
