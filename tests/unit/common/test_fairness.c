/*
 * test_fairness.c - the fair-requirements list: the real
 * data/fairness/requirements.tsv against phrases postings really use (and
 * skills that must pass), word matching with wildcards, loader errors on
 * crafted files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/taxonomy.h"

static lm_fairness *
load_real(void)
{
	lm_fairness *f = NULL;
	char err[512] = "";
	if (lm_fairness_load(
	        lmt_src("data/fairness/requirements.tsv"), &f, err, sizeof(err)) != LM_OK)
		fail_msg("loading data/fairness/requirements.tsv: %s", err);
	return f;
}

/* The id of the first rule that flags text, or "" when none does. */
static const char *
rule_of(const lm_fairness *f, const char *text)
{
	lm_fair_hit h;
	return lm_fairness_match(f, text, &h, 1) > 0 ? h.rule->id : "";
}

static void
test_real_list(void **state)
{
	(void) state;
	lm_fairness *f = load_real();
	static const char *const flagged[][2] = {
	    {"Native English speaker", "origin-native-speaker"},
	    {"native-Spanish speaker", "origin-native-speaker"},
	    {"Native English speaker's fluency", "origin-native-speaker"},
	    {"Native speaker's level of German", "origin-native-speaker"},
	    {"English (mother tongue)", "origin-native-speaker"},
	    {"Recent graduate", "age-recent-graduate"},
	    {"Recent grads welcome", "age-recent-graduate"},
	    {"Digital native", "age-digital-native"},
	    {"Young and dynamic", "age-young"},
	    {"Young team", "age-young"},
	    {"'Young' candidates", "age-young"},
	    /* Typographic quotes, dashes and spaces separate words as their
	     * ASCII forms do. */
	    {"\u201cYoung and dynamic\u201d team", "age-young"},
	    {"Native\u00a0English speaker", "origin-native-speaker"},
	    {"Fluent English\u2014native speaker", "origin-native-speaker"},
	    {"\u00abDigital native\u00bb", "age-digital-native"},
	    {"\u2018Recent graduate\u2019 role", "age-recent-graduate"},
	    {"Native English speaker\u2019s fluency", "origin-native-speaker"},
	    {"Aged 25 to 35", "age-limit"},
	    {"Under 30", "age-limit"},
	    {"Must be a US citizen", "origin-nationality"},
	    {"German nationality", "origin-nationality"},
	    {"Male", "gender-explicit"},
	    {"Salesman", "gender-coded-title"},
	    {"Marital status: single", "family-marital-status"},
	    {"Married", "family-marital-status"},
	    {"Include a photo with your CV", "appearance-photo"},
	    {"Good health", "health-status"},
	    {"No disabilities", "health-status"},
	    {"Able-bodied", "health-status"},
	    {"Christian", "religion"},
	    {"Caucasian", "race-ethnicity"},
	    {"No more than 5 years of experience", "age-max-experience"},
	    /* ... also next to what an exception spares. */
	    {"Max age 35", "age-limit"},
	    {"Under 30, answers emails in under 30 minutes", "age-limit"},
	    {"No history of mental illness", "health-status"},
	    {"We want young people", "age-young"},
	    {"Male candidates for the female connector line", "gender-explicit"},
	    {"Candidates aged 25 to 35", "age-limit"},
	    {"Medical history", "health-status"},
	    {"Not pregnant", "gender-pregnancy"},
	};
	for (size_t i = 0; i < sizeof(flagged) / sizeof(flagged[0]); i++)
		if (strcmp(rule_of(f, flagged[i][0]), flagged[i][1]) != 0)
			fail_msg("\"%s\": rule \"%s\", want \"%s\"", flagged[i][0],
			    rule_of(f, flagged[i][0]), flagged[i][1]);
	assert_true(lm_fairness_count(f) >= 10);
	assert_string_equal(lm_fairness_version(f), "2026.12.3");
	lm_fairness_free(f);
}

/* Every skill of the taxonomy, and requirements that name a language level
 * or a legal right to work, pass. */
static void
test_real_list_spares_skills(void **state)
{
	(void) state;
	lm_fairness *f = load_real();
	lm_taxonomy *t = NULL;
	char err[512] = "";
	static const char *const fine[] = {"English", "Fluent English", "English (C1)",
	    "Authorized to work in the US", "Work authorization", "Cloud native",
	    "Native mobile development", "Race condition debugging",
	    "Women's health nursing", "Photo editing", "Photography", "Youngstown",
	    "Healthy work-life balance", "Physical stamina: lift 20 kg",
	    "Single-page applications", "Security clearance",
	    /* A name's possessive is not the adjective. */
	    "Young's modulus", "Young's double-slit experiment", "Young\u2019s modulus",
	    /* Skills and duties that contain a listed phrase: the rules'
	     * exceptions ("!" phrases) spare them. */
	    "HTTP caching (Cache-Control max-age)",
	    "Respond to incidents in under 30 minutes", "Page load under 2 seconds",
	    "Patient medical history taking", "Supporting people with mental illness",
	    "Pregnancy and postnatal care", "Experience working with young people",
	    "Teaching young children", "Young adult services",
	    "Male/female connector crimping", "Female pelvic medicine",
	    "Good health and safety practices", "Good Health & Safety knowledge",
	    "Brain-machine interface (BMI)", "First language acquisition",
	    "Immigration and nationality law", "Religion teacher",
	    "Teaching children aged 5 to 11"};

	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		if (rule_of(f, fine[i])[0] != '\0')
			fail_msg("\"%s\" flagged by %s", fine[i], rule_of(f, fine[i]));
	if (lm_taxonomy_load(lmt_src("data/skills.tsv"), &t, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	for (size_t i = 0; i < lm_taxonomy_count(t); i++) {
		const lm_skill *s = lm_taxonomy_at(t, i);
		if (rule_of(f, s->name)[0] != '\0')
			fail_msg(
			    "skill \"%s\" flagged by %s", s->name, rule_of(f, s->name));
	}
	lm_taxonomy_free(t);
	/* Aliases too: a posting may name a skill by any of them. The file is
	 * read as text; column 4 holds them, separated by '|'. */
	char *tsv = lmt_read_file(lmt_src("data/skills.tsv"), NULL);
	size_t naliases = 0;
	assert_non_null(tsv);
	for (char *save = NULL, *line = strtok_r(tsv, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *col = line;
		if (line[0] == '#')
			continue;
		for (int c = 0; c < 3 && col != NULL; c++)
			if ((col = strchr(col, '\t')) != NULL)
				col++;
		for (char *s2 = NULL, *a = col ? strtok_r(col, "|\r", &s2) : NULL;
		     a != NULL; a = strtok_r(NULL, "|\r", &s2)) {
			naliases++;
			if (rule_of(f, a)[0] != '\0')
				fail_msg(
				    "skill alias \"%s\" flagged by %s", a, rule_of(f, a));
		}
	}
	assert_true(naliases > 100);
	free(tsv);
	lm_fairness_free(f);
}

static void
test_match_spans(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("fairness");
	static const char text[] =
	    "# format: 1\n# version: v1\n"
	    "a-rule\tcat-a\tnative * speaker|mother tongue\tReason A.\n"
	    "b-rule\tcat-b\tyoung|!young's|!young people|!with * people\tReason B.\n"
	    "c-rule\tcat-c\tnative\tReason C.\n";
	const char *path = lmt_write_file(dir, "f.tsv", text, sizeof(text) - 1);
	lm_fairness *f = NULL;
	char err[256] = "";
	lm_fair_hit h[4];
	const char *s = "We want a YOUNG, native-Greek  speaker!";

	if (lm_fairness_load(path, &f, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	assert_int_equal(lm_fairness_count(f), 3);
	assert_string_equal(lm_fairness_at(f, 1)->category, "cat-b");
	assert_string_equal(lm_fairness_at(f, 1)->reason, "Reason B.");
	assert_null(lm_fairness_at(f, 3));
	/* In rule order, each with its earliest match. */
	assert_int_equal(lm_fairness_match(f, s, h, 4), 3);
	assert_string_equal(h[0].rule->id, "a-rule");
	assert_int_equal(h[0].end - h[0].start, strlen("native-Greek  speaker"));
	assert_memory_equal(
	    s + h[0].start, "native-Greek  speaker", h[0].end - h[0].start);
	assert_string_equal(h[1].rule->id, "b-rule");
	assert_memory_equal(s + h[1].start, "YOUNG", 5);
	assert_string_equal(h[2].rule->id, "c-rule");
	/* An exception of the rule that covers the match cancels it (phrases
	 * of its own are words as any other: "young's" is one); elsewhere in
	 * the text, or covering only part of the match, it does not. */
	assert_int_equal(lm_fairness_match(f, "young people wanted", h, 4), 0);
	assert_int_equal(lm_fairness_match(f, "work with young people", h, 4), 0);
	assert_int_equal(lm_fairness_match(f, "young team, young people", h, 4), 1);
	assert_string_equal(h[0].rule->id, "b-rule");
	assert_int_equal(h[0].start, 0);
	assert_int_equal(lm_fairness_match(f, "young people, a young team", h, 4), 1);
	assert_int_equal(h[0].start, strlen("young people, a "));
	assert_int_equal(lm_fairness_match(f, "with young", h, 4), 1);
	/* Exceptions are not matches of their own. */
	assert_int_equal(lm_fairness_match(f, "with good people", h, 4), 0);
	/* Fewer slots than matches: the count still says how many. */
	assert_int_equal(lm_fairness_match(f, s, h, 1), 3);
	/* Whole words only, and "*" is exactly one word. */
	assert_int_equal(lm_fairness_match(f, "Youngstown", h, 4), 0);
	assert_int_equal(lm_fairness_match(f, "native speaker", h, 4), 1);
	assert_string_equal(h[0].rule->id, "c-rule");
	/* An apostrophe inside a word belongs to it; at its edges it
	 * separates, as quotes do. */
	assert_int_equal(lm_fairness_match(f, "Young's modulus", h, 4), 0);
	assert_int_equal(lm_fairness_match(f, "'young' team", h, 4), 1);
	assert_int_equal(h[0].start, 1);
	assert_int_equal(h[0].end, 6);
	assert_string_equal(h[0].rule->id, "b-rule");
	/* So are typographic ones: a closing quote is not part of the word,
	 * nor is a no-break space; U+2019 inside a word is an apostrophe. */
	static const char curly[] = "\u201cyoung\u201d native\u00a0Greek speaker";
	assert_int_equal(lm_fairness_match(f, curly, h, 4), 3);
	assert_string_equal(h[0].rule->id, "a-rule");
	assert_int_equal(h[1].start, 3);
	assert_int_equal(h[1].end, 8);
	assert_int_equal(lm_fairness_match(f, "Young\u2019s modulus", h, 4), 0);
	assert_int_equal(lm_fairness_match(f, "", h, 4), 0);
	/* A word cut by the length limit is not read as the part before the
	 * cut: "Youngstown" cut after "Young" is no match of "young". */
	char *longtext = malloc(LM_FAIRNESS_TEXT_MAX + 16);
	assert_non_null(longtext);
	size_t pad = LM_FAIRNESS_TEXT_MAX - strlen(" Young");
	memset(longtext, 'x', pad);
	strcpy(longtext + pad, " Youngstown");
	assert_int_equal(lm_fairness_match(f, longtext, h, 4), 0);
	/* Nor is a word cut after its apostrophe ("Young'" of "Young's"). */
	pad = LM_FAIRNESS_TEXT_MAX - strlen(" Young'");
	memset(longtext, 'x', pad);
	strcpy(longtext + pad, " Young's");
	assert_int_equal(lm_fairness_match(f, longtext, h, 4), 0);
	/* The same word whole at the limit is read. */
	pad = LM_FAIRNESS_TEXT_MAX - strlen(" Young");
	memset(longtext, 'x', pad);
	strcpy(longtext + pad, " Young");
	assert_int_equal(lm_fairness_match(f, longtext, h, 4), 1);
	assert_string_equal(h[0].rule->id, "b-rule");
	free(longtext);
	assert_int_equal(lm_fairness_match(f, NULL, h, 4), 0);
	assert_int_equal(lm_fairness_match(NULL, s, h, 4), 0);
	lm_fairness_free(f);
	lm_fairness_free(NULL);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_load_errors(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("fairness");
	static const struct {
		const char *text;
		int rv;
		const char *msg;
	} cases[] = {
	    {"# format: 1\n# version: v\nx\tc\tp\n", LM_EPARSE, ":3: expected 4"},
	    {"# format: 1\n# version: v\nX\tc\tp\tr\n", LM_EPARSE, "rule id \"X\""},
	    {"# format: 1\n# version: v\nx\tc c\tp\tr\n", LM_EPARSE, "category"},
	    {"# format: 1\n# version: v\nx\tc\t* *\tr\n", LM_EPARSE, "no word to match"},
	    {"# format: 1\n# version: v\nx\tc\ta||b\tr\n", LM_EPARSE, "no word to match"},
	    {"# format: 1\n# version: v\nx\tc\tp\t\n", LM_EPARSE, "empty reason"},
	    /* The reason goes into postings: it must be UTF-8 text. */
	    {"# format: 1\n# version: v\nx\tc\tp\tbad \xff\xfe reason\n", LM_EPARSE,
	        ":3: the reason: not valid UTF-8"},
	    {"# format: 1\n# version: v\nx\tc\tp\tbell \x07\n", LM_EPARSE,
	        ":3: the reason: a control character"},
	    {"# format: 1\n# version: v\nx\tc\tp\tcsi \xc2\x9b"
	     "2J\n",
	        LM_EPARSE, ":3: the reason: a control character"},
	    {"# format: 1\n# version: v\nx\tc\tj\xe9une\tr\n", LM_EPARSE,
	        ":3: the phrases: not valid UTF-8"},
	    {"# format: 1\n# version: v\nx\tc\tp\tr\nx\tc\tq\tr\n", LM_ESCHEMA,
	        ":4: duplicate rule id"},
	    {"# format: 1\n# version: v\nx\tc\ta b c d e f g h i\tr\n", LM_E2BIG,
	        "more than 8 words"},
	    {"# format: 1\nx\tc\tp\tr\n", LM_EPARSE, "version"},
	    {"# format: 1\n# version: v\n", LM_EPARSE, "no rules"},
	    /* Exceptions: words after the "!", and something to except. */
	    {"# format: 1\n# version: v\nx\tc\tp|! *\tr\n", LM_EPARSE,
	        "no word to match"},
	    {"# format: 1\n# version: v\nx\tc\t!p|!q\tr\n", LM_EPARSE,
	        ":3: only exceptions"},
	};
	char err[256];
	lm_fairness *f = (lm_fairness *) &err; /* must be reset to NULL */

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *path =
		    lmt_write_file(dir, "bad.tsv", cases[i].text, strlen(cases[i].text));
		int rv = lm_fairness_load(path, &f, err, sizeof(err));
		if (rv != cases[i].rv || strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: %s (%s), want %s with \"%s\"", i,
			    lm_strerror(rv), err, lm_strerror(cases[i].rv), cases[i].msg);
		assert_null(f);
	}
	assert_int_equal(
	    lm_fairness_load(lmt_src("no/such/file.tsv"), &f, err, sizeof(err)),
	    LM_ENOENT);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_list),
	    cmocka_unit_test(test_real_list_spares_skills),
	    cmocka_unit_test(test_match_spans),
	    cmocka_unit_test(test_load_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
