/*
 * test_match.c - the match-side commands of `lunamatch` (match, explain,
 * get, health), run as the real binary against the real MatchService
 * handlers over a real index, served on ipc:// in a temporary directory.
 * Whole lunamatch-match processes are tests/integration/test_cli.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "index.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/match.pb-c.h"
#include "model.h"
#include "proc.h"
#include "records.h"
#include "replica.h"
#include "rpc_server.h"
#include "service.h"

#define RUN_MS 30000

static char *dir;

/* The service: an index of the records a test puts, served on url. */
static lmt_replica S;

static int
setup(void **state)
{
	(void) state;
	dir = lmt_tmpdir("tools-match");
	lmt_replica_start(&S, dir, "rpc", lmt_src("data/model/default.json"), false);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_replica_stop(&S);
	lmt_rmtree(dir);
	free(dir);
	return 0;
}

/* Runs `lunamatch args... --url <service>` (args NULL-terminated, at most
 * 8). */
static lmt_run_result
run_cli(const char *const args[])
{
	char err[600];

	snprintf(err, sizeof(err), "%s/cli.err", dir);
	return lmt_run_cli(NULL, args, "--url", S.url, err, RUN_MS);
}

/*
 * A record the service holds with a float JSON numbers cannot carry (one
 * that skipped ingest's validation: a NaN latitude, an infinite salary) is
 * printed with it in the proto3 JSON form ("NaN", "Infinity"), with a
 * warning on stderr, as `watch --json` prints such an event. `get` (and
 * every answer printed as JSON) used to fail with "cannot encode the answer
 * as JSON".
 */
static void
test_get_nonfinite(void **state)
{
	Lunamatch__V1__JobPosting p = LUNAMATCH__V1__JOB_POSTING__INIT;
	Lunamatch__V1__Location loc = LUNAMATCH__V1__LOCATION__INIT;
	Lunamatch__V1__Location *locs[] = {&loc};
	Lunamatch__V1__Salary sal = LUNAMATCH__V1__SALARY__INIT;

	(void) state;
	p.id = "job-nan";
	p.version = 1;
	p.title = "Backend Engineer";
	p.status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
	loc.city = "Springfield";
	loc.geocoded = true;
	loc.latitude = NAN;
	loc.longitude = 10;
	p.locations = locs;
	p.n_locations = 1;
	sal.min = 1000;
	sal.max = INFINITY;
	p.salary = &sal;
	/* The index takes a record as unpacked. */
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(lm_pb_encode(&p.base, &buf, &len), LM_OK);
	Lunamatch__V1__JobPosting *stored =
	    lunamatch__v1__job_posting__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(stored);
	assert_int_equal(lm_index_put_posting(S.idx, stored, 1), LM_OK);

	for (int json = 0; json < 2; json++) {
		lmt_run_result r = run_cli(
		    json ? (const char *const[]){"get", "posting", "job-nan", "--json",
		               NULL}
		         : (const char *const[]){"get", "posting", "job-nan", NULL});
		if (r.status != 0)
			fail_msg("get exited %d: %s", r.status, r.err ? r.err : "");
		json_t *o = json_loads(r.out, 0, NULL);
		assert_non_null(o);
		json_t *l0 = json_array_get(json_object_get(o, "locations"), 0);
		assert_string_equal(
		    json_string_value(json_object_get(l0, "latitude")), "NaN");
		assert_true(json_number_value(json_object_get(l0, "longitude")) == 10);
		assert_string_equal(json_string_value(json_object_get(
		                        json_object_get(o, "salary"), "max")),
		    "Infinity");
		assert_non_null(r.err);
		assert_non_null(strstr(r.err, "not finite"));
		json_decref(o);
		lmt_run_result_free(&r);
	}
}

/* A bench report that cannot be written fails with exit 1, saying so: with
 * --json the command exited 1 without a word. */
static void
test_bench_unwritten(void **state)
{
	Lunamatch__V1__JobPosting p = LUNAMATCH__V1__JOB_POSTING__INIT;
	lm_store *st = NULL;
	lm_store_txn *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char data[600], err[600];

	(void) state;
	p.id = "job-bench";
	p.version = 1;
	p.title = "Backend Engineer";
	p.status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
	assert_int_equal(lm_pb_encode(&p.base, &buf, &len), LM_OK);
	/* The index takes the record as unpacked; bench reads the ids it
	 * queries with from the store. */
	Lunamatch__V1__JobPosting *stored =
	    lunamatch__v1__job_posting__unpack(NULL, len, buf);
	assert_non_null(stored);
	assert_int_equal(lm_index_put_posting(S.idx, stored, 1), LM_OK);
	snprintf(data, sizeof(data), "%s/bench-data", dir);
	assert_int_equal(lm_store_open(data, NULL, &st), LM_OK);
	assert_int_equal(lm_store_begin(st, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, p.id, 1, buf, len), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(st);
	free(buf);

	snprintf(err, sizeof(err), "%s/bench.err", dir);
	for (int json = 0; json < 2; json++)
		lmt_expect_unwritten(
		    (const char *const[]){lmt_bin("lunamatch"), "bench", "candidates",
		        "--count", "4", "--clients", "1", "--warmup", "0", "--no-echo",
		        "--data-dir", data, "--url", S.url, json ? "--json" : NULL, NULL},
		    NULL, err, RUN_MS);
}

/* Every command that takes a record id checks it the same way, before any
 * call or read: an empty id, or one no record can have (past 128 bytes,
 * or outside letters, digits and . _ : -), is a usage error (exit 2)
 * naming the option or the kind. match used to send an empty id and exit 1
 * with the service's INVALID_ARGUMENT, as get and audit --job still did;
 * get sent a 300-byte id and exited 1 with NOT_FOUND, while store get
 * refused it. */
static void
test_ids_checked_alike(void **state)
{
	(void) state;
	static char long_id[301];
	char data[600];
	memset(long_id, 'x', 300);
	snprintf(data, sizeof(data), "%s/ids-data", dir);
	const char *const cases[][9] = {
	    {"match", "jobs", "--candidate", "", NULL},
	    {"match", "candidates", "--job", "", NULL},
	    {"match", "jobs", "--candidate", long_id, NULL},
	    {"explain", "--candidate", "", "--job", "j", NULL},
	    {"explain", "--candidate", "c", "--job", "a b", NULL},
	    {"get", "posting", "", NULL},
	    {"get", "profile", long_id, NULL},
	    {"get", "posting", "job\x1b[31m", NULL},
	    {"audit", "--demographics", data, "--job", "", NULL},
	    {"audit", "--demographics", data, "--job", "j1", "--job", long_id, NULL},
	    {"store", "get", "posting", "a b", "--data-dir", data, NULL},
	    {"store", "get", "profile", long_id, "--data-dir", data, NULL},
	};
	static const char *const want[] = {"--candidate: the id is empty",
	    "--job: the id is empty", "--candidate: \"xxx",
	    "--candidate: the id is empty", "--job: \"a b\" is not a record id",
	    "posting: the id is empty", "profile: \"xxx",
	    "posting: \"job?[31m\" is not a record id", "--job: the id is empty",
	    "--job: \"xxx", "posting: \"a b\" is not a record id", "profile: \"xxx"};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lmt_run_result r = run_cli(cases[i]);
		if (r.status != 2 || strstr(r.err, want[i]) == NULL ||
		    (strstr(want[i], "xxx") != NULL &&
		        strstr(r.err, "is not a record id (1..128 bytes") == NULL))
			fail_msg("case %zu, %s %s: exit %d: %s", i, cases[i][0],
			    cases[i][1], r.status, r.err ? r.err : "");
		assert_string_equal(r.out, "");
		lmt_run_result_free(&r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_nonfinite),
	    cmocka_unit_test(test_bench_unwritten),
	    cmocka_unit_test(test_ids_checked_alike),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
