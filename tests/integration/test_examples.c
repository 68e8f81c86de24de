/*
 * test_examples.c - the C client examples of clients/c/, one per
 * MatchService method, built against the public client library only, run as
 * real programs against a real lunamatch-match serving the sample records:
 * their answers, their error statuses (NOT_FOUND, unreachable, usage) and
 * exit codes.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "matchsvc.h"
#include "proc.h"

#define RUN_MS   30000 /* longest run of one example */
#define INDEX_MS 30000 /* the service indexing the samples */

static lmt_matchsvc S;

/* Runs example `name` with up to 4 arguments after the service's URL
 * (url NULL: the arguments as given, for usage errors). */
static lmt_run_result
example(const char *name, const char *url, const char *a1, const char *a2, const char *a3)
{
	char path[600], errpath[700];
	const char *dir = getenv("LMT_EXAMPLES_DIR");
	const char *argv[6];
	int i = 0;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(errpath, sizeof(errpath), "%s/%s.err", S.dir, name);
	argv[i++] = path;
	if (url != NULL)
		argv[i++] = url;
	if (a1 != NULL)
		argv[i++] = a1;
	if (a2 != NULL)
		argv[i++] = a2;
	if (a3 != NULL)
		argv[i++] = a3;
	argv[i] = NULL;
	return lmt_run(argv, NULL, errpath, RUN_MS);
}

static void
expect(const lmt_run_result *r, int status, const char *out, const char *err)
{
	if (r->status != status)
		fail_msg("exit %d, expected %d\nstdout: %s\nstderr: %s", r->status,
		    status, r->out, r->err);
	if (out != NULL && strstr(r->out, out) == NULL)
		fail_msg("stdout lacks \"%s\": %s", out, r->out);
	if (err != NULL && (r->err == NULL || strstr(r->err, err) == NULL))
		fail_msg("stderr lacks \"%s\": %s", err, r->err ? r->err : "");
}

static int
setup(void **state)
{
	(void) state;
	lmt_matchsvc_start(&S, "examples");
	lmt_matchsvc_load_samples(&S, NULL, NULL);
	/* The health check example tells when the service has indexed them. */
	int64_t end = lm_clock_ms() + INDEX_MS;
	for (;;) {
		lmt_run_result r = example("health_check", S.rpc_url, NULL, NULL, NULL);
		bool done = r.status == 0 && strstr(r.out, " profiles,") != NULL &&
		            strstr(r.out, " 0 profiles,") == NULL;
		lmt_run_result_free(&r);
		if (done || lm_clock_ms() > end)
			break;
		lmt_sleep_ms(100);
	}
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_matchsvc_stop(&S);
	return 0;
}

static void
test_health_check(void **state)
{
	(void) state;
	lmt_run_result r = example("health_check", S.rpc_url, NULL, NULL, NULL);
	expect(&r, 0, "SERVING: ", NULL);
	assert_null(strstr(r.out, " 0 profiles"));
	lmt_run_result_free(&r);
}

static void
test_match_jobs(void **state)
{
	(void) state;
	lmt_run_result r =
	    example("match_jobs", S.rpc_url, "cand-ml-lead-chicago", NULL, NULL);
	expect(&r, 0, "1. ", NULL);
	assert_non_null(strstr(r.out, " job-"));
	lmt_run_result_free(&r);
	r = example("match_jobs", S.rpc_url, "cand-nobody", NULL, NULL);
	expect(&r, 1, NULL, "NOT_FOUND");
	lmt_run_result_free(&r);
}

static void
test_match_candidates(void **state)
{
	(void) state;
	lmt_run_result r =
	    example("match_candidates", S.rpc_url, "job-dfs-sr-mgr-ml", "3", NULL);
	expect(&r, 0, "1. ", NULL);
	assert_non_null(strstr(r.out, " cand-"));
	assert_null(strstr(r.out, "\n4. ")); /* top_k 3 */
	lmt_run_result_free(&r);
	r = example("match_candidates", S.rpc_url, "job-nothing", NULL, NULL);
	expect(&r, 1, NULL, "NOT_FOUND");
	lmt_run_result_free(&r);
	r = example("match_candidates", S.rpc_url, "job-dfs-sr-mgr-ml", "1000", NULL);
	expect(&r, 0, "1. ", NULL);
	lmt_run_result_free(&r);
}

/* A TOP_K that is not a number in the service's 1..1000 is a usage error,
 * exit 2: it fell back to the service's default (not a number, 0) or
 * wrapped around (4294967297 asked for 1), exit 0. */
static void
test_match_candidates_top_k(void **state)
{
	static const char *const bad[] = {
	    "abc", "0", "1001", "4294967297", "-1", "", " 5", "5x", "+5"};
	(void) state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lmt_run_result r = example(
		    "match_candidates", S.rpc_url, "job-dfs-sr-mgr-ml", bad[i], NULL);
		expect(&r, 2, NULL, "TOP_K");
		assert_int_equal(r.out[0], '\0');
		lmt_run_result_free(&r);
	}
}

static void
test_explain_match(void **state)
{
	(void) state;
	lmt_run_result r = example("explain_match", S.rpc_url, "cand-ml-lead-chicago",
	    "job-dfs-sr-mgr-ml", NULL);
	expect(&r, 0, "score ", NULL);
	assert_non_null(strstr(r.out, "feature skills"));
	lmt_run_result_free(&r);
	r = example("explain_match", S.rpc_url, "cand-ml-lead-chicago", "job-x", NULL);
	expect(&r, 1, NULL, "NOT_FOUND");
	lmt_run_result_free(&r);
}

static void
test_get_record(void **state)
{
	(void) state;
	lmt_run_result r =
	    example("get_record", S.rpc_url, "posting", "job-dfs-sr-mgr-ml", NULL);
	expect(&r, 0, "posting job-dfs-sr-mgr-ml version 1: ", NULL);
	lmt_run_result_free(&r);
	r = example("get_record", S.rpc_url, "profile", "cand-ml-lead-chicago", NULL);
	expect(&r, 0, "profile cand-ml-lead-chicago version ", NULL);
	lmt_run_result_free(&r);
	r = example("get_record", S.rpc_url, "profile", "cand-none", NULL);
	expect(&r, 1, NULL, "NOT_FOUND");
	lmt_run_result_free(&r);
}

/* A server that answers n requests OK with an empty payload: a response
 * message with none of its fields set. */
struct empty_peer {
	nng_socket sock;
	int n;
};

static void *
empty_peer_main(void *arg)
{
	struct empty_peer *p = arg;

	for (int i = 0; i < p->n; i++) {
		nng_msg *m;
		if (nng_recvmsg(p->sock, &m, 0) != 0)
			return NULL;
		Lunamatch__V1__RpcRequest *rq = lunamatch__v1__rpc_request__unpack(
		    NULL, nng_msg_len(m), nng_msg_body(m));
		nng_msg_free(m);
		if (rq == NULL)
			return NULL;
		Lunamatch__V1__RpcResponse r = LUNAMATCH__V1__RPC_RESPONSE__INIT;
		uint8_t out[256];
		r.request_id = rq->request_id;
		size_t len = protobuf_c_message_pack(&r.base, out);
		lunamatch__v1__rpc_request__free_unpacked(rq, NULL);
		if (nng_send(p->sock, out, len, 0) != 0)
			return NULL;
	}
	return NULL;
}

/* An OK answer without the record (a buggy server) is an error, exit 1,
 * not a crash. */
static void
test_get_record_empty_answer(void **state)
{
	struct empty_peer p = {.n = 2};
	nng_listener l;
	pthread_t th;
	char url[64];
	int port;

	(void) state;
	assert_int_equal(nng_rep0_open(&p.sock), 0);
	assert_int_equal(nng_socket_set_ms(p.sock, NNG_OPT_RECVTIMEO, RUN_MS), 0);
	assert_int_equal(nng_listen(p.sock, "tcp://127.0.0.1:0", &l, 0), 0);
	assert_int_equal(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), 0);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	assert_int_equal(pthread_create(&th, NULL, empty_peer_main, &p), 0);
	lmt_run_result r = example("get_record", url, "posting", "job-1", NULL);
	expect(&r, 1, NULL, "answer without a posting");
	lmt_run_result_free(&r);
	r = example("get_record", url, "profile", "cand-1", NULL);
	expect(&r, 1, NULL, "answer without a profile");
	lmt_run_result_free(&r);
	assert_int_equal(pthread_join(th, NULL), 0);
	nng_close(p.sock);
}

/* A URL the client cannot use is the caller's error: exit 2, with the
 * client's reason. It exited 3, as if the server could not be reached. */
static void
test_bad_url(void **state)
{
	static const struct {
		const char *name, *a1, *a2;
	} all[] = {{"match_jobs", "cand-ml-lead-chicago", NULL},
	    {"match_candidates", "job-dfs-sr-mgr-ml", NULL},
	    {"explain_match", "cand-ml-lead-chicago", "job-dfs-sr-mgr-ml"},
	    {"get_record", "posting", "job-dfs-sr-mgr-ml"}, {"health_check", NULL, NULL}};
	static const char *const urls[] = {"bogus://x", "", "tcp://"};
	char want[64];
	(void) state;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		for (size_t u = 0; u < sizeof(urls) / sizeof(urls[0]); u++) {
			lmt_run_result r =
			    example(all[i].name, urls[u], all[i].a1, all[i].a2, NULL);
			snprintf(
			    want, sizeof(want), "open %s: invalid argument", urls[u]);
			expect(&r, 2, NULL, want);
			lmt_run_result_free(&r);
		}
}

/* Usage errors exit 2; a server nobody listens at exits 3. */
static void
test_errors(void **state)
{
	static const char *const all[] = {"match_jobs", "match_candidates",
	    "explain_match", "get_record", "health_check"};
	char url[64];
	(void) state;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", lmt_free_port());
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		lmt_run_result r = example(all[i], NULL, NULL, NULL, NULL);
		expect(&r, 2, NULL, "usage: ");
		lmt_run_result_free(&r);
	}
	lmt_run_result r = example("health_check", url, NULL, NULL, NULL);
	expect(&r, 3, NULL, "no answer: ");
	lmt_run_result_free(&r);
	r = example("get_record", url, "posting", "job-dfs-sr-mgr-ml", NULL);
	expect(&r, 3, NULL, "no answer: ");
	lmt_run_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_health_check),
	    cmocka_unit_test(test_match_jobs),
	    cmocka_unit_test(test_match_candidates),
	    cmocka_unit_test(test_match_candidates_top_k),
	    cmocka_unit_test(test_explain_match),
	    cmocka_unit_test(test_get_record),
	    cmocka_unit_test(test_get_record_empty_answer),
	    cmocka_unit_test(test_bad_url),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
