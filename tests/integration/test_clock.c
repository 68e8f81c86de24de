/*
 * test_clock.c - lunamatch-match keeps following the store and answering
 * its liveness check when the system time is set back. Every timed wait of
 * the service is measured on the monotonic clock (lunamatch/clock.h); one
 * measured on the real-time clock lasts as much longer as the time was set
 * back: the RPC self-probe's pause did, so the probe went stale and /healthz
 * failed, and the orchestrator would restart a healthy pod. (The follower's
 * own pause, taken when its notification socket has failed, and the events
 * threads' pauses were measured the same way; the notification socket's
 * receive timeout, which this test's follower waits on, is nng's and was
 * never affected.) The step is simulated with an LD_PRELOAD shim
 * (clock_ahead.c) under which the program's own reads of the real-time
 * clock are an hour ahead, so that any deadline taken from it lies an hour
 * away. 127.0.0.1 only, no broker: events and the decision log are off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "proc.h"
#include "svctest.h"

#ifndef LMT_CLOCK_SHIM
#error "LMT_CLOCK_SHIM: path of the clock_ahead module"
#endif

#define LATE_POSTINGS 20
/* Longer than the self-probe's staleness bound (15 s, services/match/main.c)
 * and than a follower poll (1 s). */
#define WATCH_MS 18000

static void
test_time_set_back(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	char *dir = lmt_tmpdir("clock");
	char data[4200], log[4300], errpath[4300], http[64], n[16];
	const char *gen[] = {lmt_bin("lunamatch-loadgen"), "--data-dir", data,
	    "--postings", n, "--profiles", "0", "--id-prefix", "late-", NULL};
	lmt_env env, genv;
	lmt_proc *m = NULL;
	lmt_run_result r;
	int64_t t0;

	(void) state;
	memset(&env, 0, sizeof(env));
	memset(&genv, 0, sizeof(genv));
	snprintf(data, sizeof(data), "%s/var", dir);
	snprintf(log, sizeof(log), "%s/match.log", dir);
	snprintf(errpath, sizeof(errpath), "%s/loadgen.err", dir);
	snprintf(http, sizeof(http), "127.0.0.1:%d", lmt_free_port());
	snprintf(n, sizeof(n), "%d", LATE_POSTINGS);
	lmt_env_add(&env, "LD_PRELOAD=%s", LMT_CLOCK_SHIM);
	lmt_env_add(&env, "LMT_CLOCK_AHEAD_S=3600");
	lmt_env_add(&env, "LUNAMATCH_DATA_DIR=%s", data);
	lmt_env_add(&env, "LUNAMATCH_RPC_URL=tcp://127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&env, "LUNAMATCH_HTTP_ADDR=%s", http);
	lmt_env_match_offline(&env);
	assert_int_equal(lmt_proc_start_ex(argv, env.vec, log, &m), LM_OK);
	lmt_wait_ready(m, http, "lunamatch-match", log, 30000);
	assert_int_equal(lmt_metric(http, "lunamatch_index_postings"), 0);

	/* Written behind the running service; no ingest notifies it, so only
	 * the follower's poll timer finds them. */
	lmt_env_add(&genv, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(&genv, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(&genv, "LUNAMATCH_FAIRNESS_FILE=%s",
	    lmt_src("data/fairness/requirements.tsv"));
	lmt_env_add(&genv, "LUNAMATCH_GAZETTEER_FILE=%s", lmt_src("data/geo/cities.tsv"));
	r = lmt_run(gen, genv.vec, errpath, 60000);
	assert_int_equal(r.status, 0);
	lmt_run_result_free(&r);

	/* /healthz stays up past the probe's staleness bound, and the postings
	 * are followed in the meantime. */
	t0 = lm_clock_ms();
	while (lm_clock_ms() - t0 < WATCH_MS) {
		char *body = NULL;
		int code = lmt_http_status(http, "/healthz", &body, 2000);
		if (code != 200)
			fail_msg("/healthz answered %d after %lld ms with the time set "
			         "back: %s (log: %s)",
			    code, (long long) (lm_clock_ms() - t0), body ? body : "",
			    log);
		free(body);
		usleep(500 * 1000);
	}
	assert_int_equal(lmt_metric(http, "lunamatch_index_postings"), LATE_POSTINGS);

	lmt_proc_stop(&m, 25000);
	lmt_env_free(&genv);
	lmt_env_free(&env);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time_set_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
