/*
 * test_startup.c - lunamatch-match refuses settings it cannot serve with
 * before it listens anywhere: exit status 2 and a message on stderr that
 * names the variable (docs/operations.md). Every case stops before a socket
 * or the store is opened; no broker is needed (the brokers variable names a
 * port nothing listens on, never dialled).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmtest.h"
#include "proc.h"

#define RUN_MS 10000 /* a refused start takes milliseconds */

/* A TCP address without a port, or with one that is not a port, is a
 * typo: without the check the RPC server listened on a port the kernel
 * picked, answered its own probe and reported ready, unreachable. */
static void
test_match_refuses_tcp_url_without_port(void **state)
{
	static const struct {
		const char *opt, *value, *var;
	} bad[] = {
	    {"--url", "tcp://127.0.0.1", "LUNAMATCH_RPC_URL"},
	    {"--url", "tcp://[::1]", "LUNAMATCH_RPC_URL"},
	    {"--url", "tls+tcp://127.0.0.1", "LUNAMATCH_RPC_URL"},
	    {"--url", "tcp://127.0.0.1:65536", "LUNAMATCH_RPC_URL"},
	    {"--url", "tcp://127.0.0.1:http", "LUNAMATCH_RPC_URL"},
	    {"--notify-url", "tcp://127.0.0.1", "LUNAMATCH_NOTIFY_URL"},
	};
	char *dir = lmt_tmpdir("startup");
	char data[4200], errf[4300];
	lmt_env env;
	lmt_run_result r;

	(void) state;
	memset(&env, 0, sizeof(env));
	snprintf(data, sizeof(data), "%s/var", dir);
	snprintf(errf, sizeof(errf), "%s/match.err", dir);
	lmt_env_add(&env, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(&env, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(&env, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(&env, "LUNAMATCH_BROKERS=127.0.0.1:9");
	lmt_env_add(&env, "LUNAMATCH_EVENT_TOP_N=0");
	lmt_env_add(&env, "LUNAMATCH_DECISION_LOG=0");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[] = {lmt_bin("lunamatch-match"), "--data-dir", data,
		    "--url", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0", bad[i].opt,
		    bad[i].value, NULL};
		r = lmt_run(argv, env.vec, errf, RUN_MS);
		if (r.status != 2)
			fail_msg(
			    "%s %s: exit %d, not 2", bad[i].opt, bad[i].value, r.status);
		assert_non_null(r.err);
		assert_non_null(strstr(r.err, bad[i].var));
		lmt_run_result_free(&r);
	}
	/* Refused before the store was opened. */
	struct stat st;
	assert_int_not_equal(stat(data, &st), 0);
	lmt_env_free(&env);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_refuses_tcp_url_without_port),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
