/*
 * test_audit.c - `lunamatch audit` over a rankings file: the command's own
 * counting and input checks, run as the real binary on small populations
 * whose every number is known in advance. No service is involved; the
 * audit of rankings from a real match service is
 * tests/integration/test_audit.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsontest.h"
#include "lmtest.h"
#include "proc.h"

#define RUN_MS 30000
#define EPS    1e-9

static char *dir;

static int
setup(void **state)
{
	(void) state;
	dir = lmt_tmpdir("tools-audit");
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_rmtree(dir);
	free(dir);
	return 0;
}

/* Runs `lunamatch audit` with args (NULL-terminated) and returns what it
 * printed and how it ended. */
static lmt_run_result
run_audit(const char *const args[])
{
	const char *argv[32];
	char err[4200];
	size_t n = 0;

	argv[n++] = lmt_bin("lunamatch");
	argv[n++] = "audit";
	for (size_t i = 0; args[i] != NULL; i++) {
		assert_true(n < 31);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	snprintf(err, sizeof(err), "%s/audit.err", dir);
	return lmt_run(argv, NULL, err, RUN_MS);
}

/* The JSON report of a run that must succeed. */
static json_t *
audit_json(const char *const args[])
{
	lmt_run_result r = run_audit(args);
	json_error_t je;
	json_t *o;

	if (r.status != 0)
		fail_msg("audit exited %d: %s", r.status, r.err ? r.err : "");
	if ((o = json_loads(r.out, 0, &je)) == NULL)
		fail_msg("audit printed no JSON (%s): %.300s", je.text, r.out);
	lmt_run_result_free(&r);
	return o;
}

static json_t *
view(json_t *o, const char *name)
{
	return lmt_json_named(o, "views", name);
}

static char *
write_file(const char *name, const char *text)
{
	return lmt_strdup(lmt_write_file(dir, name, text, strlen(text)));
}

/*
 * NDKL@K is the mean over the postings whose first K places hold someone
 * of the population: a posting that placed nobody there (an empty answer,
 * or only candidates without demographics) has no distribution to compare
 * and does not count as a perfectly proportional ranking.
 */
static void
test_ndkl_mean_over_rankings_with_places(void **state)
{
	(void) state;
	char *demo = write_file("pair.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("ndkl.json",
	    "{\"rankings\":["
	    "{\"job\":\"j1\",\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]},"
	    "{\"job\":\"j2\",\"candidates\":[{\"id\":\"other\",\"score\":0.9}]},"
	    "{\"job\":\"j3\",\"candidates\":[]}]}");
	json_t *o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", "--json", NULL});

	/* j1: its one place to a category that is half the pool: ln 2. */
	double ndkl = json_number_value(json_object_get(view(o, "sex"), "ndkl"));
	assert_true(fabs(ndkl - log(2)) < EPS);
	assert_int_equal(json_integer_value(json_object_get(o, "postings")), 3);
	json_decref(o);
	free(demo);
	free(rk);
}

/* What a failing run must end with: its status and a part of stderr. */
static void
expect_failure(const char *const args[], int status, const char *want)
{
	lmt_run_result r = run_audit(args);

	assert_int_equal(r.status, status);
	if (r.err == NULL || strstr(r.err, want) == NULL)
		fail_msg("stderr lacks \"%s\": %s", want, r.err ? r.err : "");
	lmt_run_result_free(&r);
}

/*
 * Score-based selection needs every ranked candidate's score: a rankings
 * file without them is refused, not audited as if every score were 0
 * (nobody above the median, nothing flagged). Selection by place does not
 * read scores.
 */
static void
test_above_median_needs_scores(void **state)
{
	(void) state;
	char *demo = write_file("two.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("noscore.json",
	    "{\"rankings\":[{\"job\":\"j1\",\"candidates\":"
	    "[{\"id\":\"c2\"},{\"id\":\"c1\",\"score\":0.5}]}]}");

	expect_failure((const char *const[]){"--demographics", demo, "--rankings", rk,
	                   "--above-median", NULL},
	    1, "rankings[0].candidates[0]: no \"score\"");
	json_t *o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", "--json", NULL});
	assert_int_equal(json_integer_value(json_object_get(o, "flagged_categories")), 1);
	json_decref(o);
	free(demo);
	free(rk);
}

/*
 * A posting is audited once: one listed twice (in a rankings file, a
 * --jobs file that holds two versions of it, or --job repeated) would
 * count its candidates twice. It is refused with its id.
 */
static void
test_posting_listed_twice(void **state)
{
	(void) state;
	char *demo = write_file("twice.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("twice.json",
	    "{\"rankings\":["
	    "{\"job\":\"j1\",\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]},"
	    "{\"job\":\"j2\",\"candidates\":[{\"id\":\"c2\",\"score\":0.9}]},"
	    "{\"job\":\"j1\",\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]}]}");
	char *jobs = write_file("jobs.jsonl", "{\"id\":\"j1\",\"version\":1}\n"
	                                      "{\"id\":\"j1\",\"version\":2}\n");

	expect_failure(
	    (const char *const[]){"--demographics", demo, "--rankings", rk, NULL}, 1,
	    "posting j1 is listed twice");
	/* Refused before any call: no service needed. */
	expect_failure((const char *const[]){"--demographics", demo, "--jobs", jobs,
	                   "--url", "tcp://127.0.0.1:42299", "--timeout-ms", "300", NULL},
	    1, "posting j1 is listed twice");
	expect_failure(
	    (const char *const[]){"--demographics", demo, "--job", "j1", "--job", "j1",
	        "--url", "tcp://127.0.0.1:42299", "--timeout-ms", "300", NULL},
	    2, "posting j1 is listed twice");
	free(demo);
	free(rk);
	free(jobs);
}

/* The categories of the view named name. */
static json_t *
categories(json_t *o, const char *name)
{
	return json_object_get(view(o, name), "categories");
}

/*
 * The intersection's categories are the combinations of the dimensions'
 * categories, told apart whatever their names: " & " inside a category
 * name, or names too long to join in full, do not merge two combinations
 * into one.
 */
static void
test_intersection_by_combination(void **state)
{
	(void) state;
	char *demo = write_file("amp.csv", "id,a,b\nc1,x & y,z\nc2,x,y & z\n");
	char *rk = write_file("amp.json", "{\"rankings\":[{\"job\":\"j1\",\"candidates\":"
	                                  "[{\"id\":\"c1\",\"score\":0.9}]}]}");
	json_t *o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", "--json", NULL});
	json_t *cats = categories(o, "a & b");

	assert_int_equal(json_array_size(cats), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *c = json_array_get(cats, i);
		assert_int_equal(json_integer_value(json_object_get(c, "considered")), 1);
		assert_int_equal(
		    json_integer_value(json_object_get(c, "selected")), i == 0 ? 1 : 0);
	}
	json_decref(o);

	/* Four dimensions of 63-byte categories, the last two differing in
	 * their last byte. */
	char csv[1024], v[64], w1[64], w2[64];
	memset(v, 'v', 63);
	v[63] = '\0';
	memcpy(w1, v, 64);
	memcpy(w2, v, 64);
	w1[62] = '1';
	w2[62] = '2';
	snprintf(csv, sizeof(csv), "id,a,b,c,d\nc1,%s,%s,%s,%s\nc2,%s,%s,%s,%s\n", v, v,
	    v, w1, v, v, v, w2);
	char *wide = write_file("long.csv", csv);
	o = audit_json((const char *const[]){
	    "--demographics", wide, "--rankings", rk, "--top", "1", "--json", NULL});
	cats = categories(o, "a & b & c & d");
	assert_int_equal(json_array_size(cats), 2);
	const char *n0 =
	    json_string_value(json_object_get(json_array_get(cats, 0), "name"));
	const char *n1 =
	    json_string_value(json_object_get(json_array_get(cats, 1), "name"));
	assert_int_equal(strlen(n0), 4 * 63 + 3 * 3);
	assert_string_not_equal(n0, n1);
	json_decref(o);
	free(wide);
	free(demo);
	free(rk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ndkl_mean_over_rankings_with_places),
	    cmocka_unit_test(test_above_median_needs_scores),
	    cmocka_unit_test(test_posting_listed_twice),
	    cmocka_unit_test(test_intersection_by_combination),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
