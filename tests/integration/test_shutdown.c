/*
 * test_shutdown.c - lunamatch-match stops within its grace period even when
 * its RPC self-probe never returns. nng 1.5.2's nng_close can block for
 * good (seen on the probe's own REQ socket after the process was stopped
 * with SIGSTOP and continued: nng #1543); shutdown used to join the probe
 * thread without a bound and so never exited. The hang is simulated with an
 * LD_PRELOAD shim (nng_close_stall.c) that makes nng_close of a REQ socket
 * block once a flag file exists: /healthz then fails within the probe's
 * staleness bound (15 s), so that the orchestrator restarts the process; after
 * SIGTERM the process must still drain and exit 0, well within Kubernetes'
 * 30 s. The shim stalls every close there (LMT_STALL_ALL), as a stuck
 * reaper does: the RPC socket's and the follower's closes are bounded too.
 * 127.0.0.1 only, no broker.
 *
 * The same stall holds a stop for the probe's bound (5 s): long enough to
 * send a second stop signal, which must end the process at once with
 * status 1, as in ingest (docs/operations.md, "Stopping and draining").
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "proc.h"
#include "svctest.h"

#ifndef LMT_STALL_SHIM
#error "LMT_STALL_SHIM: path of the nng_close_stall module"
#endif

/* Whether the file at path holds text. */
static bool
file_has(const char *path, const char *text)
{
	char *s = lmt_read_file(path, NULL);
	bool found = s != NULL && strstr(s, text) != NULL;

	free(s);
	return found;
}

static void
test_stop_with_stuck_probe(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	char *dir = lmt_tmpdir("shutdown");
	char data[4200], log[4300], flag[4300], http[64];
	lmt_env env;
	lmt_proc *m = NULL;
	FILE *f;
	int status = -1;
	int64_t t0;

	(void) state;
	memset(&env, 0, sizeof(env));
	snprintf(data, sizeof(data), "%s/var", dir);
	snprintf(log, sizeof(log), "%s/match.log", dir);
	snprintf(flag, sizeof(flag), "%s/stall", dir);
	snprintf(http, sizeof(http), "127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&env, "LD_PRELOAD=%s", LMT_STALL_SHIM);
	lmt_env_add(&env, "LMT_STALL_REQ_CLOSE=%s", flag);
	lmt_env_add(&env, "LMT_STALL_ALL=1");
	lmt_env_add(&env, "LUNAMATCH_DATA_DIR=%s", data);
	lmt_env_add(&env, "LUNAMATCH_RPC_URL=tcp://127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&env, "LUNAMATCH_HTTP_ADDR=%s", http);
	lmt_env_match_offline(&env);
	assert_int_equal(lmt_proc_start_ex(argv, env.vec, log, &m), LM_OK);
	lmt_wait_ready(m, http, "lunamatch-match", log, 30000);

	/* From now on the next probe (every 3 s) sticks in nng_close. */
	assert_non_null(f = fopen(flag, "w"));
	fclose(f);
	/* /healthz fails once the stuck probe is older than 15 s. */
	char *body = NULL;
	int code = 0;
	t0 = lm_clock_ms();
	while (lm_clock_ms() - t0 < 30000 &&
	       (code = lmt_http_status(http, "/healthz", &body, 2000)) == 200) {
		free(body);
		body = NULL;
		usleep(500 * 1000);
	}
	assert_int_equal(code, 503);
	assert_non_null(body);
	assert_non_null(strstr(body, "self-probe stuck"));
	free(body);
	assert_true(lm_clock_ms() - t0 >= 10000); /* not before it is stale */
	/* The probe metric says the same, for alerts that read it. */
	body = NULL;
	assert_int_equal(lmt_http_status(http, "/metrics", &body, 2000), 200);
	if (body == NULL || strstr(body, "\nlunamatch_rpc_probe_ok 0\n") == NULL)
		fail_msg("lunamatch_rpc_probe_ok is not 0 with the probe stuck");
	free(body);
	t0 = lm_clock_ms();
	assert_int_equal(lmt_proc_signal(m, SIGTERM), LM_OK);
	if (lmt_proc_wait(m, 25000, &status) != LM_OK)
		fail_msg("lunamatch-match still running 25 s after SIGTERM with a stuck "
		         "self-probe (log: %s)",
		    log);
	if (status != 0)
		fail_msg("exit %d (log: %s)", status, log);
	/* The probe gets its bound (5 s), the RPC socket's close 3 s, the
	 * follower's 1 s, the drain and the rest little. */
	assert_true(lm_clock_ms() - t0 < 15000);
	assert_true(file_has(log, "rpc.close.stuck"));
	assert_true(file_has(log, "follower.close.stuck"));
	lmt_proc_free(m);
	lmt_env_free(&env);
	lmt_rmtree(dir);
	free(dir);
}

/* Starts lunamatch-match with the stall shim, flag file <dir>/stall, its
 * log in <dir>/match.log and its HTTP address in http; waits until it is
 * ready. */
static lmt_proc *
start_stalling(const char *dir, lmt_env *env, char *http, size_t hlen)
{
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	char log[4300];
	lmt_proc *m = NULL;

	snprintf(log, sizeof(log), "%s/match.log", dir);
	snprintf(http, hlen, "127.0.0.1:%d", lmt_free_port());
	lmt_env_add(env, "LD_PRELOAD=%s", LMT_STALL_SHIM);
	lmt_env_add(env, "LMT_STALL_REQ_CLOSE=%s/stall", dir);
	lmt_env_add(env, "LUNAMATCH_DATA_DIR=%s/var", dir);
	lmt_env_add(env, "LUNAMATCH_RPC_URL=tcp://127.0.0.1:%d", lmt_free_port());
	lmt_env_add(env, "LUNAMATCH_HTTP_ADDR=%s", http);
	lmt_env_match_offline(env);
	lmt_env_add(env, "LUNAMATCH_LOG_LEVEL=info");
	assert_int_equal(lmt_proc_start_ex(argv, env->vec, log, &m), LM_OK);
	lmt_wait_ready(m, http, "lunamatch-match", log, 30000);
	return m;
}

/* A second SIGTERM during a stop ends the process at once with status 1
 * (the bound's exit); it used to be ignored, so an operator could not cut
 * a slow stop short. */
static void
test_second_signal_exits_at_once(void **state)
{
	static const int second[] = {SIGTERM, SIGINT};
	char *dir;
	char flag[4300], stuck[4400], log[4300], http[64];
	lmt_env env;
	lmt_proc *m;
	FILE *f;
	int status = -1;
	int64_t t0;

	(void) state;
	for (size_t i = 0; i < sizeof(second) / sizeof(second[0]); i++) {
		dir = lmt_tmpdir("shutdown");
		memset(&env, 0, sizeof(env));
		snprintf(flag, sizeof(flag), "%s/stall", dir);
		snprintf(stuck, sizeof(stuck), "%s.stuck", flag);
		snprintf(log, sizeof(log), "%s/match.log", dir);
		m = start_stalling(dir, &env, http, sizeof(http));
		/* Let the next probe stick, so that the stop waits 5 s for it. */
		assert_non_null(f = fopen(flag, "w"));
		fclose(f);
		t0 = lm_clock_ms();
		while (access(stuck, F_OK) != 0 && lm_clock_ms() - t0 < 15000)
			usleep(50 * 1000);
		assert_int_equal(access(stuck, F_OK), 0);

		assert_int_equal(lmt_proc_signal(m, SIGTERM), LM_OK);
		t0 = lm_clock_ms();
		while (!file_has(log, "draining") && lm_clock_ms() - t0 < 5000)
			usleep(20 * 1000);
		assert_true(file_has(log, "draining"));
		t0 = lm_clock_ms();
		assert_int_equal(lmt_proc_signal(m, second[i]), LM_OK);
		if (lmt_proc_wait(m, 25000, &status) != LM_OK)
			fail_msg(
			    "still running 25 s after the second signal (log: %s)", log);
		if (status != 1)
			fail_msg("exit %d after a second signal, not 1 (log: %s)", status,
			    log);
		/* At once: well before the probe's bound of 5 s. */
		if (lm_clock_ms() - t0 >= 3000)
			fail_msg("exited %lld ms after the second signal (log: %s)",
			    (long long) (lm_clock_ms() - t0), log);
		assert_true(file_has(log, "match.stop_timeout"));
		assert_true(file_has(log, "second stop signal"));
		lmt_proc_free(m);
		lmt_env_free(&env);
		lmt_rmtree(dir);
		free(dir);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stop_with_stuck_probe),
	    cmocka_unit_test(test_second_signal_exits_at_once),
	};
	/* LMT_TEST_FILTER=test_second* runs some tests (a cmocka glob). */
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
