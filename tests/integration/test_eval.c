/*
 * test_eval.c - `lunamatch eval` end to end against a real lunamatch-match
 * (and lunamatch-devkafka for its events): the set is written into the
 * service's store by --load, read back over RPC, ranked by the service and
 * by both baselines, and measured.
 *
 * A two-posting set whose rankings follow from vetoes alone pins every
 * number of the report (and both ways of getting the set in: --load and
 * already stored); the committed data/eval/ set must load and measure
 * whole; bad sets fail with a clear error. A server of the test's own,
 * which answers more matches than asked for and repeats ids, is measured
 * on each item once.
 */
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/rpc.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/match.pb-c.h"
#include "matchsvc.h"

#define EPS 1e-9

static lmt_matchsvc S;

/* A backend developer; a posting that fits and one the candidate is vetoed
 * from (a required skill missing). */
static const char PROFILES[] =
    "{\"id\":\"cand-t-1\",\"version\":1,\"headline\":\"Backend developer\","
    "\"skills\":[{\"name\":\"Go\",\"years\":5},{\"name\":\"PostgreSQL\",\"years\":4}],"
    "\"years_experience\":5}\n";
static const char POSTINGS[] =
    "{\"id\":\"job-t-a\",\"version\":1,\"title\":\"Backend Engineer\","
    "\"skills\":[{\"name\":\"Go\",\"weight\":2},{\"name\":\"PostgreSQL\"}],"
    "\"requirement_groups\":[{\"label\":\"Go\",\"skills\":[\"Go\"]}]}\n"
    "{\"id\":\"job-t-b\",\"version\":1,\"title\":\"Android Engineer\","
    "\"skills\":[{\"name\":\"Kotlin\"}],"
    "\"requirement_groups\":[{\"label\":\"Kotlin\",\"skills\":[\"Kotlin\"]}]}\n";

static int
setup(void **state)
{
	(void) state;
	memset(&S, 0, sizeof(S));
	lmt_matchsvc_start(&S, "eval");
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_matchsvc_stop(&S);
	return 0;
}

/* Writes a set into S.dir/name and returns its path (malloc'd). */
static char *
write_set(
    const char *name, const char *postings, const char *profiles, const char *judgments)
{
	char *dir = malloc(600);
	assert_non_null(dir);
	snprintf(dir, 600, "%s/%s", S.dir, name);
	assert_int_equal(mkdir(dir, 0700), 0);
	lmt_write_file(dir, "postings.jsonl", postings, strlen(postings));
	lmt_write_file(dir, "profiles.jsonl", profiles, strlen(profiles));
	lmt_write_file(dir, "judgments.jsonl", judgments, strlen(judgments));
	return dir;
}

/* Runs eval on set (with --load when load) and returns its JSON report;
 * with want_err not NULL, its standard error must contain want_err. */
static json_t *
run_eval(const char *set, bool load, const char *want_err)
{
	const char *args[] = {"eval", "--set", set, "--json", "--taxonomy-file",
	    lmt_src("data/skills.tsv"), "--rates-file", lmt_src("data/rates.tsv"),
	    "--fairness-file", lmt_src("data/fairness/requirements.tsv"),
	    "--gazetteer-file", lmt_src("data/geo/cities.tsv"), load ? "--load" : NULL,
	    NULL};
	lmt_run_result r = lmt_matchsvc_cli(&S, args);
	json_error_t je;

	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err);
	if (want_err != NULL && strstr(r.err, want_err) == NULL)
		fail_msg("eval's stderr lacks \"%s\": %s", want_err, r.err);
	json_t *o = json_loads(r.out, 0, &je);
	if (o == NULL)
		fail_msg("eval printed no JSON (%s): %.300s", je.text, r.out);
	lmt_run_result_free(&r);
	return o;
}

/* The result row of direction and ranker. */
static json_t *
row(json_t *o, const char *direction, const char *ranker)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(o, "results"), i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "direction")),
		        direction) == 0 &&
		    strcmp(json_string_value(json_object_get(e, "ranker")), ranker) == 0)
			return e;
	}
	fail_msg("no result for %s / %s", direction, ranker);
	return NULL;
}

static void
expect(json_t *o, const char *direction, const char *ranker, int queries, double ndcg5,
    double ndcg10, double map, int violations)
{
	json_t *e = row(o, direction, ranker);
	double v;

	assert_int_equal(json_integer_value(json_object_get(e, "queries")), queries);
	if (fabs((v = json_real_value(json_object_get(e, "ndcg5"))) - ndcg5) > EPS)
		fail_msg("%s/%s ndcg5 %f, want %f", direction, ranker, v, ndcg5);
	if (fabs((v = json_real_value(json_object_get(e, "ndcg10"))) - ndcg10) > EPS)
		fail_msg("%s/%s ndcg10 %f, want %f", direction, ranker, v, ndcg10);
	if (fabs((v = json_real_value(json_object_get(e, "map"))) - map) > EPS)
		fail_msg("%s/%s map %f, want %f", direction, ranker, v, map);
	assert_int_equal(
	    json_integer_value(json_object_get(e, "violations")), violations);
}

/* The fitting posting graded 3, the vetoed one must not appear: the
 * engine is perfect; the baselines, which veto nothing, show the vetoed
 * posting (and the candidate for it) and so each commit a violation per
 * direction. */
static void
test_exact_numbers_loaded(void **state)
{
	(void) state;
	char *set = write_set("good", POSTINGS, PROFILES,
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":3}\n"
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-b\",\"must_not_appear\":true,"
	    "\"reason\":\"lacks Kotlin\"}\n");
	json_t *o = run_eval(set, true, NULL);

	assert_int_equal(json_integer_value(json_object_get(o, "postings")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "profiles")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "judged_pairs")), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(o, "must_not_appear_pairs")), 1);
	expect(o, "jobs", "engine", 1, 1, 1, 1, 0);
	expect(o, "jobs", "bm25", 1, 1, 1, 1, 1);
	expect(o, "jobs", "jaccard", 1, 1, 1, 1, 1);
	expect(o, "candidates", "engine", 1, 1, 1, 1, 0);
	expect(o, "candidates", "bm25", 1, 1, 1, 1, 1);
	expect(o, "all", "engine", 2, 1, 1, 1, 0);
	expect(o, "all", "jaccard", 2, 1, 1, 1, 2);
	assert_int_equal(json_array_size(json_object_get(o, "violations")), 0);
	json_t *t = json_object_get(o, "target");
	assert_true(fabs(json_real_value(json_object_get(t, "ndcg5_margin"))) < EPS);
	assert_false(json_boolean_value(json_object_get(t, "met")));
	json_decref(o);
	free(set);
}

/* The same records, already stored, judged the other way round: the engine
 * returns only the posting that must not appear (rank 1: a violation,
 * NDCG 0), the baselines rank the graded one second: NDCG@5 =
 * (7 / log2(3)) / 7, AP = 1/2. */
static void
test_exact_numbers_stored(void **state)
{
	(void) state;
	char *set = write_set("reversed", POSTINGS, PROFILES,
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-b\",\"grade\":3}\n"
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"must_not_appear\":true}"
	    "\n");
	json_t *o = run_eval(set, false, NULL);
	double late = 1 / log2(3);

	expect(o, "jobs", "engine", 1, 0, 0, 0, 1);
	expect(o, "jobs", "bm25", 1, late, late, 0.5, 1);
	expect(o, "jobs", "jaccard", 1, late, late, 0.5, 1);
	/* job-t-b: nobody from the engine, the candidate from the baselines;
	 * job-t-a: the candidate everywhere, a violation. */
	expect(o, "candidates", "engine", 1, 0, 0, 0, 1);
	expect(o, "candidates", "bm25", 1, 1, 1, 1, 1);
	json_t *v = json_object_get(o, "violations");
	assert_int_equal(json_array_size(v), 2);
	json_t *first = json_array_get(v, 0);
	assert_string_equal(json_string_value(json_object_get(first, "job")), "job-t-a");
	assert_int_equal(json_integer_value(json_object_get(first, "rank")), 1);
	json_decref(o);

	/* Loading it again keeps what is stored, and says so. */
	o = run_eval(set, true, "note: 3 records of the set were stored already");
	expect(o, "jobs", "engine", 1, 0, 0, 0, 1);
	json_decref(o);
	free(set);
}

/* Engine violations listed one by one: eval's bound. */
#define VIOLATIONS_LISTED 1000
/* A set every pair of which must not appear, the engine showing each of
 * its VIOL_POSTINGS postings to each of VIOL_PROFILES identical profiles
 * (and the first 10 of them for each posting): more violations than are
 * listed. */
#define VIOL_POSTINGS 10
#define VIOL_PROFILES 101
#define VIOL_TOTAL    (VIOL_PROFILES * VIOL_POSTINGS + VIOL_POSTINGS * 10)

/* Appends the text of fmt to *buf (*at bytes used of *len), growing it. */
static void
append(char **buf, size_t *at, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n > 0);
	if (*at + (size_t) n + 1 > *len) {
		*len = (*at + (size_t) n + 1) * 2;
		assert_non_null(*buf = realloc(*buf, *len));
	}
	va_start(ap, fmt);
	vsnprintf(*buf + *at, *len - *at, fmt, ap);
	va_end(ap);
	*at += (size_t) n;
}

/*
 * More engine violations than the report lists: the count stays exact,
 * the JSON lists the first VIOLATIONS_LISTED and says how many it does not
 * list, and so does the table. The JSON list used to stop there without a
 * word.
 */
static void
test_violations_bounded(void **state)
{
	char *postings = NULL, *profiles = NULL, *judgments = NULL, id[2][32];
	size_t pat = 0, plen = 0, cat = 0, clen = 0, jat = 0, jlen = 0;

	(void) state;
	for (int i = 0; i < VIOL_POSTINGS; i++) {
		snprintf(id[0], sizeof(id[0]), "job-v-%02d", i);
		append(&postings, &pat, &plen,
		    "{\"id\":\"%s\",\"version\":1,\"title\":\"Backend Engineer\","
		    "\"skills\":[{\"name\":\"Go\"},{\"name\":\"PostgreSQL\"}]}\n",
		    id[0]);
	}
	for (int c = 0; c < VIOL_PROFILES; c++) {
		snprintf(id[1], sizeof(id[1]), "cand-v-%03d", c);
		append(&profiles, &cat, &clen,
		    "{\"id\":\"%s\",\"version\":1,\"headline\":\"Backend "
		    "developer\",\"skills\":[{\"name\":\"Go\",\"years\":5},"
		    "{\"name\":\"PostgreSQL\",\"years\":4}]}\n",
		    id[1]);
		for (int i = 0; i < VIOL_POSTINGS; i++) {
			snprintf(id[0], sizeof(id[0]), "job-v-%02d", i);
			append(&judgments, &jat, &jlen,
			    "{\"candidate\":\"%s\",\"job\":\"%s\","
			    "\"must_not_appear\":true}\n",
			    id[1], id[0]);
		}
	}
	char *set = write_set("violations", postings, profiles, judgments);
	free(postings);
	free(profiles);
	free(judgments);

	/* The table, loading the set. */
	const char *args[] = {"eval", "--set", set, "--load", "--taxonomy-file",
	    lmt_src("data/skills.tsv"), "--rates-file", lmt_src("data/rates.tsv"),
	    "--fairness-file", lmt_src("data/fairness/requirements.tsv"),
	    "--gazetteer-file", lmt_src("data/geo/cities.tsv"), NULL};
	lmt_run_result r = lmt_matchsvc_cli(&S, args);
	char more[64];
	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err);
	snprintf(
	    more, sizeof(more), "\n%d more not listed\n", VIOL_TOTAL - VIOLATIONS_LISTED);
	if (strstr(r.out, more) == NULL)
		fail_msg("the table lacks \"%s\": %.300s", more + 1, r.out);
	/* Listed one per line. */
	size_t listed = 0;
	for (const char *p = r.out, *end; *p != '\0'; p = end ? end + 1 : "") {
		const char *c = strstr(p, "cand-v-");
		end = strchr(p, '\n');
		listed += c != NULL && (end == NULL || c < end);
	}
	assert_int_equal(listed, VIOLATIONS_LISTED);
	lmt_run_result_free(&r);

	/* The JSON, one line longer than lmt_run reads, through a file. */
	char out[600], errpath[600];
	snprintf(out, sizeof(out), "%s/violations.json", S.dir);
	snprintf(errpath, sizeof(errpath), "%s/violations.err", S.dir);
	const char *argv[] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" >\"$OUT\"",
	    lmt_bin("lunamatch"), "eval", "--set", set, "--json", "--url", S.rpc_url,
	    NULL};
	char outenv[620];
	snprintf(outenv, sizeof(outenv), "OUT=%s", out);
	const char *env[] = {outenv, NULL};
	r = lmt_run(argv, env, errpath, LMT_MATCHSVC_CLI_MS);
	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err);
	lmt_run_result_free(&r);
	json_error_t je;
	json_t *o = json_load_file(out, 0, &je);
	if (o == NULL)
		fail_msg("eval printed no JSON: %s", je.text);
	expect(o, "jobs", "engine", 0, 0, 0, 0, VIOL_PROFILES * VIOL_POSTINGS);
	expect(o, "candidates", "engine", 0, 0, 0, 0, VIOL_POSTINGS * 10);
	expect(o, "all", "engine", 0, 0, 0, 0, VIOL_TOTAL);
	json_t *v = json_object_get(o, "violations");
	assert_int_equal(json_array_size(v), VIOLATIONS_LISTED);
	assert_int_equal(json_integer_value(json_object_get(o, "violations_not_listed")),
	    VIOL_TOTAL - VIOLATIONS_LISTED);
	/* In the order found: every candidate's jobs first. */
	json_t *last = json_array_get(v, VIOLATIONS_LISTED - 1);
	assert_string_equal(
	    json_string_value(json_object_get(last, "direction")), "jobs");
	json_decref(o);
	free(set);
}

/* The committed set is what its generator writes. */
static void
test_generated(void **state)
{
	const char *argv[] = {
	    "python3", lmt_src("data/eval/generate.py"), "--check", NULL};

	(void) state;
	lmt_run_result r = lmt_run(argv, NULL, NULL, LMT_MATCHSVC_CLI_MS);
	if (r.status != 0)
		fail_msg(
		    "data/eval is stale: run data/eval/generate.py (exit %d)", r.status);
	lmt_run_result_free(&r);
}

/* Counts the non-empty lines of a file of the source tree. */
static size_t
lines(const char *rel)
{
	char *text = lmt_read_file(lmt_src(rel), NULL);
	size_t n = 0;

	assert_non_null(text);
	for (char *p = text; *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

/* The committed set loads and is measured whole, in both output forms. */
static void
test_committed_set(void **state)
{
	(void) state;
	json_t *o = run_eval(lmt_src("data/eval"), true, NULL);
	size_t i;
	json_t *e;

	assert_int_equal(json_integer_value(json_object_get(o, "postings")),
	    lines("data/eval/postings.jsonl"));
	assert_int_equal(json_integer_value(json_object_get(o, "profiles")),
	    lines("data/eval/profiles.jsonl"));
	assert_int_equal(json_integer_value(json_object_get(o, "judged_pairs")),
	    lines("data/eval/judgments.jsonl"));
	assert_true(json_integer_value(json_object_get(o, "postings")) >= 60);
	assert_true(json_integer_value(json_object_get(o, "profiles")) >= 40);
	json_array_foreach(json_object_get(o, "results"), i, e)
	{
		double n5 = json_real_value(json_object_get(e, "ndcg5"));
		assert_true(json_integer_value(json_object_get(e, "queries")) > 0);
		assert_true(n5 > 0 && n5 <= 1);
	}
	/* Every ranker answers the same queries. */
	assert_int_equal(
	    json_integer_value(json_object_get(row(o, "all", "engine"), "queries")),
	    json_integer_value(json_object_get(row(o, "all", "bm25"), "queries")));
	json_decref(o);

	const char *args[] = {"eval", "--set", lmt_src("data/eval"), NULL};
	lmt_run_result r = lmt_matchsvc_cli(&S, args);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "NDCG@5"));
	assert_non_null(strstr(r.out, "jaccard"));
	assert_non_null(strstr(r.out, "Engine NDCG@5 minus the better baseline"));
	lmt_run_result_free(&r);
}

static void
expect_failure(const char *set, bool load, int status, const char *want)
{
	const char *args[] = {"eval", "--set", set, "--taxonomy-file",
	    lmt_src("data/skills.tsv"), "--rates-file", lmt_src("data/rates.tsv"),
	    "--fairness-file", lmt_src("data/fairness/requirements.tsv"),
	    "--gazetteer-file", lmt_src("data/geo/cities.tsv"), load ? "--load" : NULL,
	    NULL};
	lmt_run_result r = lmt_matchsvc_cli(&S, args);

	assert_int_equal(r.status, status);
	if (strstr(r.err, want) == NULL)
		fail_msg("stderr lacks \"%s\": %s", want, r.err);
	lmt_run_result_free(&r);
}

/* --as-of reaches the service: a time far ahead of its clock is refused
 * there (exit 1, the service's reason); one that is not a time is a usage
 * error. */
static void
test_as_of(void **state)
{
	const char *args[] = {
	    "eval", "--set", lmt_src("data/eval"), "--as-of", "4000000000", NULL};
	lmt_run_result r;

	(void) state;
	r = lmt_matchsvc_cli(&S, args);
	assert_int_equal(r.status, 1);
	if (strstr(r.err, "as_of") == NULL)
		fail_msg("stderr lacks the service's reason: %s", r.err);
	lmt_run_result_free(&r);
	args[4] = "yesterday";
	r = lmt_matchsvc_cli(&S, args);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--as-of"));
	lmt_run_result_free(&r);
}

static void
test_bad_sets(void **state)
{
	char *set;

	(void) state;
	set = write_set("unknown", POSTINGS, PROFILES,
	    "{\"candidate\":\"cand-nobody\",\"job\":\"job-t-a\",\"grade\":3}\n");
	expect_failure(set, false, 1, "cand-nobody or job-t-a is not in the set");
	free(set);
	set = write_set("grade", POSTINGS, PROFILES,
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":4}\n");
	expect_failure(set, false, 1, "judgments.jsonl:1: a judgment has either");
	free(set);
	set = write_set("twice", POSTINGS, PROFILES,
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":1}\n"
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":2}\n");
	expect_failure(
	    set, false, 1, "judgments.jsonl:2: cand-t-1 / job-t-a judged twice");
	free(set);
	/* A first judgment of grade 0 counts as one (it used to be taken for
	 * no judgment). */
	set = write_set("twice0", POSTINGS, PROFILES,
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":0}\n"
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":3}\n");
	expect_failure(
	    set, false, 1, "judgments.jsonl:2: cand-t-1 / job-t-a judged twice");
	free(set);
	/* Never loaded: the service does not hold it. */
	set = write_set("absent",
	    "{\"id\":\"job-t-absent\",\"version\":1,\"title\":\"Welder\"}\n", PROFILES,
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-absent\",\"grade\":1}\n");
	expect_failure(set, false, 1, "posting job-t-absent is not in the service");
	free(set);
	/* --load refuses a record ingest would reject. */
	set = write_set("invalid",
	    "{\"id\":\"job-t-bad\",\"version\":1,\"title\":\"Welder\","
	    "\"locations\":[{\"country\":\"USA\"}]}\n",
	    PROFILES, "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-bad\",\"grade\":1}\n");
	expect_failure(set, true, 1, "job-t-bad is not a valid record (bad_country)");
	free(set);
}

/* A judgment line of many tiny values (2 MiB of empty arrays, which jansson
 * builds in about 45 times their size) is refused, naming the file, the
 * line and the limit, instead of being parsed whole. */
static void
test_judgment_memory_bounded(void **state)
{
	static const char head[] =
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":1}\n"
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-b\",\"grade\":0,"
	    "\"note\":[";
	const size_t n = (size_t) 2 << 20;
	char *text = malloc(sizeof(head) + n + 8), *p;

	(void) state;
	assert_non_null(text);
	p = text + strlen(strcpy(text, head));
	for (size_t i = 0; i + 3 <= n; i += 3, p += 3)
		memcpy(p, "[],", 3);
	strcpy(p - 1, "]}\n");
	char *set = write_set("tiny-judgments", POSTINGS, PROFILES, text);
	free(text);
	expect_failure(
	    set, false, 1, "judgments.jsonl:2: parsing the line would take more than");
	free(set);
}

/* Bytes of stdout's buffer on /dev/full (its block size). */
#define STDOUT_BUF 4096

/* Writes the two-posting set with judgments into the directory dir. */
static void
write_set_files(const char *dir, const char *judgments)
{
	lmt_write_file(dir, "postings.jsonl", POSTINGS, strlen(POSTINGS));
	lmt_write_file(dir, "profiles.jsonl", PROFILES, strlen(PROFILES));
	lmt_write_file(dir, "judgments.jsonl", judgments, strlen(judgments));
}

/* The length of what eval --load of set prints as a table. */
static size_t
table_length(const char *set)
{
	const char *args[] = {"eval", "--set", set, "--load", "--taxonomy-file",
	    lmt_src("data/skills.tsv"), "--rates-file", lmt_src("data/rates.tsv"),
	    "--fairness-file", lmt_src("data/fairness/requirements.tsv"),
	    "--gazetteer-file", lmt_src("data/geo/cities.tsv"), NULL};
	lmt_run_result r = lmt_matchsvc_cli(&S, args);
	size_t len = strlen(r.out);

	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err);
	lmt_run_result_free(&r);
	return len;
}

/* A table that cannot be written fails, saying so. The set's directory,
 * named in the first line, is made as long as it takes for the table's last
 * line to cross the end of stdout's buffer: that write fails and leaves
 * nothing buffered, so the final flush succeeded and eval exited 0. */
static void
test_table_unwritten(void **state)
{
	static const char judgment[] =
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":3}\n";
	const size_t want = STDOUT_BUF + 8;
	char set[STDOUT_BUF], part[256];
	size_t len;

	(void) state;
	snprintf(set, sizeof(set), "%s/unwritten", S.dir);
	assert_int_equal(mkdir(set, 0700), 0);
	write_set_files(set, judgment);
	assert_true((len = table_length(set)) < want - 2);
	/* Directories of up to 200 characters ("/" and the name) until the
	 * path is want - len longer, never leaving one character to add. */
	for (size_t more, left = want - len; left > 0; left -= more) {
		more = left > 201 ? 200 : left;
		if (left - more == 1)
			more--;
		memset(part, 'd', more);
		part[0] = '/';
		part[more] = '\0';
		assert_true(strlen(set) + more + 32 < sizeof(set));
		strcat(set, part);
		assert_int_equal(mkdir(set, 0700), 0);
	}
	write_set_files(set, judgment);
	assert_int_equal(table_length(set), want);
	const char *args[] = {"eval", "--set", set, "--taxonomy-file",
	    lmt_src("data/skills.tsv"), "--rates-file", lmt_src("data/rates.tsv"),
	    "--fairness-file", lmt_src("data/fairness/requirements.tsv"),
	    "--gazetteer-file", lmt_src("data/geo/cities.tsv"), NULL};
	lmt_matchsvc_cli_unwritten(&S, args);
}

/* ---- a server that breaks the top_k contract -------------------------------- */

/* The ports the test's own server may listen on (127.0.0.1). */
#define PEER_PORT_FIRST 41600
#define PEER_PORT_LAST  41699
/* Matches per answer: more than eval's top_k of 1000. */
#define PEER_MATCHES 1002
/* Requests the server answers before it stops by itself. */
#define PEER_REQUESTS 64

struct peer {
	nng_socket sock;
	pthread_t thread;
	char url[64];
};

/* Sends an OK envelope with payload m to the request rq. */
static int
peer_reply(struct peer *p, const Lunamatch__V1__RpcRequest *rq, const ProtobufCMessage *m)
{
	Lunamatch__V1__RpcResponse r = LUNAMATCH__V1__RPC_RESPONSE__INIT;
	uint8_t *payload = malloc(protobuf_c_message_get_packed_size(m) + 1), *out;
	size_t n;
	int rc = -1;

	if (payload == NULL)
		return -1;
	r.request_id = rq->request_id;
	r.code = LUNAMATCH__V1__STATUS_CODE__OK;
	r.payload.len = protobuf_c_message_pack(m, payload);
	r.payload.data = payload;
	if ((out = malloc(protobuf_c_message_get_packed_size(&r.base) + 1)) != NULL) {
		n = protobuf_c_message_pack(&r.base, out);
		rc = nng_send(p->sock, out, n, 0);
		free(out);
	}
	free(payload);
	return rc;
}

/* Answers one request: the record asked for (an id and a title), or
 * PEER_MATCHES matches of the set of test_top_k_broken: each item of the
 * other kind, then the first again and again. */
static int
peer_answer(struct peer *p, const Lunamatch__V1__RpcRequest *rq)
{
	static const char *const jobs[] = {"job-t-a", "job-t-b"};
	const char *method = lm_rpc_method_short(rq->method);
	const uint8_t *in = rq->payload.data;
	size_t len = rq->payload.len;
	Lunamatch__V1__Match m[PEER_MATCHES], *mp[PEER_MATCHES];
	int rc = -1;

	for (size_t i = 0; i < PEER_MATCHES; i++) {
		lunamatch__v1__match__init(&m[i]);
		m[i].job_id = (char *) jobs[i < 2 ? i : 0];
		m[i].candidate_id = "cand-t-1";
		m[i].rank = (uint32_t) i + 1;
		mp[i] = &m[i];
	}
	if (method != NULL && strcmp(method, "GetPosting") == 0) {
		Lunamatch__V1__GetPostingRequest *g =
		    lunamatch__v1__get_posting_request__unpack(NULL, len, in);
		Lunamatch__V1__GetPostingResponse resp =
		    LUNAMATCH__V1__GET_POSTING_RESPONSE__INIT;
		Lunamatch__V1__JobPosting jp = LUNAMATCH__V1__JOB_POSTING__INIT;
		if (g != NULL) {
			jp.id = g->id;
			jp.title = "Engineer";
			resp.posting = &jp;
			rc = peer_reply(p, rq, &resp.base);
			lunamatch__v1__get_posting_request__free_unpacked(g, NULL);
		}
	} else if (method != NULL && strcmp(method, "GetProfile") == 0) {
		Lunamatch__V1__GetProfileRequest *g =
		    lunamatch__v1__get_profile_request__unpack(NULL, len, in);
		Lunamatch__V1__GetProfileResponse resp =
		    LUNAMATCH__V1__GET_PROFILE_RESPONSE__INIT;
		Lunamatch__V1__CandidateProfile cp =
		    LUNAMATCH__V1__CANDIDATE_PROFILE__INIT;
		if (g != NULL) {
			cp.id = g->id;
			cp.headline = "Engineer";
			resp.profile = &cp;
			rc = peer_reply(p, rq, &resp.base);
			lunamatch__v1__get_profile_request__free_unpacked(g, NULL);
		}
	} else if (method != NULL && strcmp(method, "MatchJobs") == 0) {
		Lunamatch__V1__MatchJobsResponse resp =
		    LUNAMATCH__V1__MATCH_JOBS_RESPONSE__INIT;
		resp.matches = mp;
		resp.n_matches = PEER_MATCHES;
		rc = peer_reply(p, rq, &resp.base);
	} else if (method != NULL && strcmp(method, "MatchCandidates") == 0) {
		Lunamatch__V1__MatchCandidatesResponse resp =
		    LUNAMATCH__V1__MATCH_CANDIDATES_RESPONSE__INIT;
		resp.matches = mp;
		resp.n_matches = PEER_MATCHES;
		rc = peer_reply(p, rq, &resp.base);
	}
	return rc;
}

/* Answers at most PEER_REQUESTS requests; stops at the first error, a
 * receive timeout or the closing of the socket. */
static void *
peer_main(void *arg)
{
	struct peer *p = arg;

	for (int i = 0; i < PEER_REQUESTS; i++) {
		nng_msg *msg;
		if (nng_recvmsg(p->sock, &msg, 0) != 0)
			return NULL;
		Lunamatch__V1__RpcRequest *rq = lunamatch__v1__rpc_request__unpack(
		    NULL, nng_msg_len(msg), nng_msg_body(msg));
		nng_msg_free(msg);
		int rc = rq != NULL ? peer_answer(p, rq) : -1;
		lunamatch__v1__rpc_request__free_unpacked(rq, NULL);
		if (rc != 0)
			return NULL;
	}
	return NULL;
}

static void
peer_start(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(nng_rep0_open(&p->sock), 0);
	assert_int_equal(nng_socket_set_ms(p->sock, NNG_OPT_RECVTIMEO, 10000), 0);
	assert_int_equal(
	    nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, LM_RPC_DEFAULT_MAX_REQUEST),
	    0);
	for (int port = PEER_PORT_FIRST; port <= PEER_PORT_LAST; port++) {
		snprintf(p->url, sizeof(p->url), "tcp://127.0.0.1:%d", port);
		if (nng_listen(p->sock, p->url, NULL, 0) == 0) {
			assert_int_equal(
			    pthread_create(&p->thread, NULL, peer_main, p), 0);
			return;
		}
	}
	fail_msg("no free port in %d..%d", PEER_PORT_FIRST, PEER_PORT_LAST);
}

static void
peer_stop(struct peer *p)
{
	nng_close(p->sock);
	assert_int_equal(pthread_join(p->thread, NULL), 0);
}

/* A server that answers more matches than top_k, with ids repeated (it used
 * to be written past the end of the ranking): every item is measured once,
 * where it first appears. Once it is gone, eval exits 3. */
static void
test_top_k_broken(void **state)
{
	(void) state;
	struct peer p;
	char *set = write_set("peer", POSTINGS, PROFILES,
	    "{\"candidate\":\"cand-t-1\",\"job\":\"job-t-a\",\"grade\":3}\n");
	char errpath[600];

	peer_start(&p);
	snprintf(errpath, sizeof(errpath), "%s/peer.err", S.dir);
	const char *argv[] = {
	    lmt_bin("lunamatch"), "eval", "--set", set, "--json", "--url", p.url, NULL};
	lmt_run_result r = lmt_run(argv, NULL, errpath, LMT_MATCHSVC_CLI_MS);
	peer_stop(&p);
	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err);
	json_t *o = json_loads(r.out, 0, NULL);
	assert_non_null(o);
	expect(o, "jobs", "engine", 1, 1, 1, 1, 0);
	expect(o, "candidates", "engine", 1, 1, 1, 1, 0);
	json_decref(o);
	lmt_run_result_free(&r);

	/* Nobody listens there any more: the service is unavailable, exit 3. */
	const char *gone[] = {lmt_bin("lunamatch"), "eval", "--set", set, "--url", p.url,
	    "--timeout-ms", "300", NULL};
	r = lmt_run(gone, NULL, errpath, LMT_MATCHSVC_CLI_MS);
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "UNAVAILABLE"));
	lmt_run_result_free(&r);
	free(set);
}

/* A welder and a welding posting, vetoed for the other records of these
 * tests (and they for them); %d is the posting's version, %s its title. */
static const char WELD_PROFILES[] =
    "{\"id\":\"cand-t-weld\",\"version\":1,\"headline\":\"Welder\","
    "\"skills\":[{\"name\":\"Welding\",\"years\":5}]}\n";
static const char WELD_POSTINGS[] =
    "{\"id\":\"job-t-weld\",\"version\":%d,\"title\":\"%s\","
    "\"skills\":[{\"name\":\"Welding\"}],"
    "\"requirement_groups\":[{\"label\":\"Welding\",\"skills\":[\"Welding\"]}]}\n";
static const char WELD_JUDGMENTS[] =
    "{\"candidate\":\"cand-t-weld\",\"job\":\"job-t-weld\",\"grade\":3}\n";

/*
 * --load into a store that is not the service's (another --data-dir) while
 * the service holds an older version of the set: the service's copy is not
 * the one loaded, and eval says so and fails (exit 1) instead of measuring
 * it. It used to wait on the other store's change seq, which the service's
 * index had passed already, and measure the old record with exit 0.
 */
static void
test_load_other_store(void **state)
{
	(void) state;
	char text[1024], other[600], errpath[600];
	lm_store *st = NULL;

	snprintf(text, sizeof(text), WELD_POSTINGS, 1, "Welder");
	char *set = write_set("weld1", text, WELD_PROFILES, WELD_JUDGMENTS);
	json_decref(run_eval(set, true, NULL));
	free(set);

	snprintf(other, sizeof(other), "%s/other-store", S.dir);
	assert_int_equal(lm_store_open(other, NULL, &st), LM_OK);
	lm_store_close(st);
	snprintf(text, sizeof(text), WELD_POSTINGS, 7, "CHANGED TITLE");
	set = write_set("weld7", text, WELD_PROFILES, WELD_JUDGMENTS);
	snprintf(errpath, sizeof(errpath), "%s/other.err", S.dir);
	const char *argv[] = {lmt_bin("lunamatch"), "eval", "--set", set, "--load",
	    "--json", "--taxonomy-file", lmt_src("data/skills.tsv"), "--rates-file",
	    lmt_src("data/rates.tsv"), "--fairness-file",
	    lmt_src("data/fairness/requirements.tsv"), "--gazetteer-file",
	    lmt_src("data/geo/cities.tsv"), "--url", S.rpc_url, "--data-dir", other,
	    "--wait-ms", "2000", NULL};
	const char *env[] = {"LUNAMATCH_LOG_LEVEL=warn", NULL};
	lmt_run_result r = lmt_run(argv, env, errpath, LMT_MATCHSVC_CLI_MS);
	if (r.status != 1)
		fail_msg("eval exited %d: %s", r.status, r.err);
	if (strstr(r.err, "posting job-t-weld at version 1, not version 7") == NULL)
		fail_msg("stderr lacks the versions: %s", r.err);
	assert_string_equal(r.out, "");
	lmt_run_result_free(&r);
	free(set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_numbers_loaded),
	    cmocka_unit_test(test_exact_numbers_stored),
	    cmocka_unit_test(test_violations_bounded),
	    cmocka_unit_test(test_committed_set),
	    cmocka_unit_test(test_bad_sets),
	    cmocka_unit_test(test_judgment_memory_bounded),
	    cmocka_unit_test(test_table_unwritten),
	    cmocka_unit_test(test_as_of),
	    cmocka_unit_test(test_generated),
	    cmocka_unit_test(test_top_k_broken),
	    cmocka_unit_test(test_load_other_store),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
