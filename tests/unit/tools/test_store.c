/*
 * test_store.c - `lunamatch store`, run as the real binary on a real record
 * store in a temporary directory, written here with the store's own API:
 * values that ingest would not have stored (a record that skipped its
 * validation) still print.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/records.pb-c.h"
#include "proc.h"

#define RUN_MS 30000

LMT_TMPDIR_FIXTURES("tools-store")

/* Runs `lunamatch store args... --data-dir <dir>/data` (args
 * NULL-terminated, at most 8). */
static lmt_run_result
run_store(const char *const args[])
{
	char data[600], err[600];

	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(err, sizeof(err), "%s/store.err", dir);
	return lmt_run_cli("store", args, "--data-dir", data, err, RUN_MS);
}

/*
 * A stored profile holding floats JSON numbers cannot carry (NaN and
 * infinite years, an embedding value of NaN) is printed with them in the
 * proto3 JSON form ("NaN", "Infinity"), with a warning on stderr, as
 * `watch --json` prints such an event. `store get` used to fail with
 * "cannot encode as JSON", so the one record an operator most needs to see
 * could not be read.
 */
static void
test_get_nonfinite(void **state)
{
	Lunamatch__V1__CandidateProfile p = LUNAMATCH__V1__CANDIDATE_PROFILE__INIT;
	Lunamatch__V1__CandidateSkill sk = LUNAMATCH__V1__CANDIDATE_SKILL__INIT;
	Lunamatch__V1__CandidateSkill *sks[] = {&sk};
	float emb[] = {0.5f, NAN};
	lm_store *st = NULL;
	lm_store_txn *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char data[600];

	(void) state;
	p.id = "cand-nan";
	p.version = 1;
	p.headline = "Backend developer";
	p.years_experience = INFINITY;
	sk.name = "Go";
	sk.years = NAN;
	p.skills = sks;
	p.n_skills = 1;
	p.embedding = emb;
	p.n_embedding = 2;
	assert_int_equal(lm_pb_encode(&p.base, &buf, &len), LM_OK);
	snprintf(data, sizeof(data), "%s/data", dir);
	assert_int_equal(lm_store_open(data, NULL, &st), LM_OK);
	assert_int_equal(lm_store_begin(st, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_PROFILE, p.id, 1, buf, len), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(st);
	free(buf);

	for (int json = 0; json < 2; json++) {
		lmt_run_result r = run_store(
		    json ? (const char *const[]){"get", "profile", "cand-nan", "--json",
		               NULL}
		         : (const char *const[]){"get", "profile", "cand-nan", NULL});
		if (r.status != 0)
			fail_msg("store get exited %d: %s", r.status, r.err ? r.err : "");
		json_t *o = json_loads(r.out, 0, NULL);
		assert_non_null(o);
		assert_string_equal(
		    json_string_value(json_object_get(o, "years_experience")),
		    "Infinity");
		json_t *s0 = json_array_get(json_object_get(o, "skills"), 0);
		assert_string_equal(
		    json_string_value(json_object_get(s0, "years")), "NaN");
		json_t *e = json_object_get(o, "embedding");
		assert_true(json_number_value(json_array_get(e, 0)) == 0.5);
		assert_string_equal(json_string_value(json_array_get(e, 1)), "NaN");
		assert_non_null(r.err);
		assert_non_null(strstr(r.err, "not finite"));
		json_decref(o);
		lmt_run_result_free(&r);
	}
}

/*
 * The CLI logs warnings and errors only unless a level is asked for, by
 * --log-level in full or abbreviated, before or after the command. An
 * abbreviation before it was parsed and then not taken for a request.
 */
static void
test_log_level(void **state)
{
	char data[600], err[600];
	static const char *const quiet[] = {"store", "stats", NULL};
	static const char *const before[] = {"--log-l", "info", "store", "stats", NULL};
	static const char *const after[] = {"store", "stats", "--log-lev", "info", NULL};
	const char *const *runs[] = {quiet, before, after};

	(void) state;
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(err, sizeof(err), "%s/log.err", dir);
	for (int i = 0; i < 3; i++) {
		lmt_run_result r =
		    lmt_run_cli(NULL, runs[i], "--data-dir", data, err, RUN_MS);
		if (r.status != 0)
			fail_msg("run %d exited %d: %s", i, r.status, r.err ? r.err : "");
		if ((i == 0) !=
		    (r.err == NULL || strstr(r.err, "\"level\":\"info\"") == NULL))
			fail_msg("run %d: info logs %s: %s", i,
			    i == 0 ? "shown" : "missing", r.err ? r.err : "");
		lmt_run_result_free(&r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_nonfinite),
	    cmocka_unit_test(test_log_level),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
