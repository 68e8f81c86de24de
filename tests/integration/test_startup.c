/*
 * test_startup.c - how the services start and stop as processes.
 *
 * lunamatch-match (and lunamatch-ingest, for the addresses it listens on)
 * refuses settings it cannot serve with before it listens anywhere: exit status 2 and a
 * message on stderr that names the variable (docs/operations.md). Every such case stops
 * before a socket or the store is opened; no broker is needed (the brokers variable names
 * a port nothing listens on, never dialled).
 *
 * Started services stop gracefully on each stop signal (docs/operations.md,
 * "Stopping and draining"). No broker runs: match has events and the
 * decision log off, ingest's brokers variable names a free port on
 * 127.0.0.1 that it dials in vain.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/client.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/v1/match.pb-c.h"
#include "proc.h"
#include "svctest.h"

#define RUN_MS   10000 /* a refused start takes milliseconds */
#define START_MS 30000 /* a start without data takes a second or two */
#define STOP_MS  20000 /* a stop without a broker or requests: seconds */

/* A TCP address without a port, or with one that is not a port, is a
 * typo: without the check the RPC server listened on a port the kernel
 * picked, answered its own probe and reported ready, unreachable, and
 * ingest published store changes where match's follower never dialled. */
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
	    /* In-process: no client or ingest could connect, while the
	     * self-probe answered and /readyz said 200. */
	    {"--url", "inproc://lunamatch", "LUNAMATCH_RPC_URL"},
	    {"--notify-url", "inproc://notify", "LUNAMATCH_NOTIFY_URL"},
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
	/* Ingest listens on the notify address: the same rule. */
	static const char *const bad_notify[] = {"tcp://127.0.0.1", "tcp://[::1]",
	    "tcp://127.0.0.1:http", "tls+tcp://127.0.0.1:7710", "inproc://notify"};
	for (size_t i = 0; i < sizeof(bad_notify) / sizeof(bad_notify[0]); i++) {
		const char *argv[] = {lmt_bin("lunamatch-ingest"), "--data-dir", data,
		    "--http", "127.0.0.1:0", "--notify-url", bad_notify[i], NULL};
		r = lmt_run(argv, env.vec, errf, RUN_MS);
		if (r.status != 2)
			fail_msg("ingest --notify-url %s: exit %d, not 2", bad_notify[i],
			    r.status);
		assert_non_null(r.err);
		assert_non_null(strstr(r.err, "LUNAMATCH_NOTIFY_URL"));
		lmt_run_result_free(&r);
	}
	/* Refused before the store was opened. */
	struct stat st;
	assert_int_not_equal(stat(data, &st), 0);
	lmt_env_free(&env);
	lmt_rmtree(dir);
	free(dir);
}

/* Whether s holds a control byte, DEL or a byte above ASCII. */
static bool
has_raw_bytes(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char) *s < 0x20 && *s != '\n')
			return true;
		else if ((unsigned char) *s >= 0x7f)
			return true;
	return false;
}

/* What the services print about a refused argument or setting shows its
 * control bytes escaped: they were printed raw to stderr, where a line
 * break or a terminal escape could forge or hide lines. */
static void
test_refusals_escape_values(void **state)
{
	static const char *const progs[] = {"lunamatch-match", "lunamatch-ingest"};
	char *dir = lmt_tmpdir("startup");
	char errf[4300];
	lmt_run_result r;

	(void) state;
	snprintf(errf, sizeof(errf), "%s/err", dir);
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		const char *argv[] = {lmt_bin(progs[i]), "stray\x1b[2J\rarg", NULL};
		r = lmt_run(argv, NULL, errf, RUN_MS);
		if (r.status != 2)
			fail_msg("%s: exit %d, not 2", progs[i], r.status);
		assert_non_null(r.err);
		if (has_raw_bytes(r.err) ||
		    strstr(r.err, "stray\\x1b[2J\\x0darg") == NULL)
			fail_msg("%s: argument not shown escaped: %s", progs[i], r.err);
		lmt_run_result_free(&r);
	}
	lmt_rmtree(dir);
	free(dir);
}

/* The last line of text (a copy, or NULL when there is none). */
static char *
last_line(const char *text)
{
	size_t n = strlen(text);

	while (n > 0 && text[n - 1] == '\n')
		n--;
	if (n == 0)
		return NULL;
	const char *start = text + n;
	while (start > text && start[-1] != '\n')
		start--;
	return strndup(start, (size_t) (text + n - start));
}

/* A TCP listener on 127.0.0.1:port, to hold the port; the descriptor. */
static int
hold_port(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t) port);
	assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	return fd;
}

/* Runs argv (a service that must fail to start with status 1) with env
 * and checks that its last line on stderr says why in the words of the
 * failing call (cause), after the cleanup's lines: the last line said
 * \"resource busy\" or \"messaging (nng) failure\" (match), or there was
 * none after the cleanup's Kafka warnings (ingest). */
static void
assert_start_fails(
    const char *const *argv, const char *const *env, const char *errf, const char *cause)
{
	lmt_run_result r = lmt_run(argv, env, errf, RUN_MS);
	char *last;

	if (r.status != 1)
		fail_msg("%s: exit %d, not 1 (%s)", argv[0], r.status, errf);
	assert_non_null(r.err);
	last = last_line(r.err);
	if (last == NULL || strstr(last, "not started") == NULL ||
	    strstr(last, cause) == NULL)
		fail_msg("%s: the last line does not say \"%s\": %s", argv[0], cause,
		    last != NULL ? last : "(none)");
	free(last);
	lmt_run_result_free(&r);
}

/* The last line of a start that fails at a resource says what failed:
 * a port in use (the HTTP port, match's RPC port), a data directory that
 * cannot be created. */
static void
test_start_failure_says_why(void **state)
{
	char *dir = lmt_tmpdir("startup");
	char data[4200], errf[4300], http[64], rpc[64], brokers[64];
	int port = lmt_free_port(), fd = hold_port(port);
	lmt_env env;

	(void) state;
	memset(&env, 0, sizeof(env));
	snprintf(data, sizeof(data), "%s/var", dir);
	snprintf(errf, sizeof(errf), "%s/err", dir);
	snprintf(http, sizeof(http), "127.0.0.1:%d", port);
	snprintf(rpc, sizeof(rpc), "tcp://127.0.0.1:%d", port);
	snprintf(brokers, sizeof(brokers), "127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&env, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(&env, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(&env, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(&env, "LUNAMATCH_FAIRNESS_FILE=%s",
	    lmt_src("data/fairness/requirements.tsv"));
	lmt_env_add(&env, "LUNAMATCH_GAZETTEER_FILE=%s", lmt_src("data/geo/cities.tsv"));
	lmt_env_add(&env, "LUNAMATCH_BROKERS=%s", brokers);
	lmt_env_add(&env, "LUNAMATCH_EVENT_TOP_N=0");
	lmt_env_add(&env, "LUNAMATCH_DECISION_LOG=0");

	char url[4300];
	snprintf(url, sizeof(url), "ipc://%s/rpc.ipc", dir);
	const char *match_http[] = {lmt_bin("lunamatch-match"), "--data-dir", data,
	    "--url", url, "--http", http, NULL};
	assert_start_fails(match_http, env.vec, errf, "Address already in use");
	char http2[64];
	snprintf(http2, sizeof(http2), "127.0.0.1:%d", lmt_free_port());
	const char *match_rpc[] = {lmt_bin("lunamatch-match"), "--data-dir", data,
	    "--url", rpc, "--http", http2, NULL};
	assert_start_fails(match_rpc, env.vec, errf, "Address in use");
	const char *ingest_http[] = {
	    lmt_bin("lunamatch-ingest"), "--data-dir", data, "--http", http, NULL};
	assert_start_fails(ingest_http, env.vec, errf, "Address already in use");

	/* A data directory that cannot be created: the last line said
	 * "input/output error". Root may write anywhere: not checked then. */
	char ro[4300], rodata[4400];
	snprintf(ro, sizeof(ro), "%s/ro", dir);
	snprintf(rodata, sizeof(rodata), "%s/var", ro);
	assert_int_equal(mkdir(ro, 0555), 0);
	if (geteuid() != 0) {
		const char *match_ro[] = {lmt_bin("lunamatch-match"), "--data-dir",
		    rodata, "--url", url, "--http", http2, NULL};
		assert_start_fails(match_ro, env.vec, errf, "Permission denied");
		const char *ingest_ro[] = {lmt_bin("lunamatch-ingest"), "--data-dir",
		    rodata, "--http", http2, NULL};
		assert_start_fails(ingest_ro, env.vec, errf, "Permission denied");
	}

	close(fd);
	lmt_env_free(&env);
	lmt_rmtree(dir);
	free(dir);
}

/* A started service: its process, its directory, HTTP address and log. */
struct svc {
	char *dir;
	char http[64], log[4300];
	lmt_env env;
	lmt_proc *proc;
};

/* Starts prog ("lunamatch-match" or "lunamatch-ingest") on its own data
 * directory, HTTP port and (match) RPC port, without a broker, and waits
 * until its HTTP server answers /healthz (match: /readyz) with 200. env
 * (NAME=VALUE strings) is added to the environment, args (at most 8) to
 * the command line; either may be NULL. */
static void
svc_start_with(
    struct svc *s, const char *prog, const char *const *env, const char *const *args)
{
	const char *argv[10] = {lmt_bin(prog), NULL};
	bool match = strcmp(prog, "lunamatch-match") == 0;

	for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
		assert_true(i < 8);
		argv[i + 1] = args[i];
	}

	memset(s, 0, sizeof(*s));
	s->dir = lmt_tmpdir("startup");
	/* First: the first of two values of a variable is the one read. */
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		lmt_env_add(&s->env, "%s", env[i]);
	snprintf(s->log, sizeof(s->log), "%s/%s.log", s->dir, prog);
	snprintf(s->http, sizeof(s->http), "127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&s->env, "LUNAMATCH_DATA_DIR=%s/var", s->dir);
	lmt_env_add(&s->env, "LUNAMATCH_HTTP_ADDR=%s", s->http);
	lmt_env_add(&s->env, "LUNAMATCH_BROKERS=127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&s->env, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(&s->env, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(&s->env, "LUNAMATCH_LOG_LEVEL=info");
	if (match) {
		lmt_env_add(&s->env, "LUNAMATCH_MODEL_FILE=%s",
		    lmt_src("data/model/default.json"));
		lmt_env_add(
		    &s->env, "LUNAMATCH_RPC_URL=tcp://127.0.0.1:%d", lmt_free_port());
		lmt_env_add(&s->env, "LUNAMATCH_EVENT_TOP_N=0");
		lmt_env_add(&s->env, "LUNAMATCH_DECISION_LOG=0");
		lmt_env_add(&s->env, "LUNAMATCH_WORKERS=2");
	} else {
		lmt_env_add(&s->env, "LUNAMATCH_FAIRNESS_FILE=%s",
		    lmt_src("data/fairness/requirements.tsv"));
		lmt_env_add(&s->env, "LUNAMATCH_GAZETTEER_FILE=%s",
		    lmt_src("data/geo/cities.tsv"));
	}
	assert_int_equal(lmt_proc_start_ex(argv, s->env.vec, s->log, &s->proc), LM_OK);
	if (match) {
		lmt_wait_ready(s->proc, s->http, prog, s->log, START_MS);
		return;
	}
	int64_t t0 = lm_clock_ms();
	int st;
	while (lmt_http_status(s->http, "/healthz", NULL, 1000) != 200) {
		if (lmt_proc_wait(s->proc, 0, &st) == LM_OK)
			fail_msg("%s exited %d at start (log: %s)", prog, st, s->log);
		if (lm_clock_ms() - t0 > START_MS)
			fail_msg(
			    "%s not live within %d ms (log: %s)", prog, START_MS, s->log);
		lmt_sleep_ms(100);
	}
}

static void
svc_start(struct svc *s, const char *prog)
{
	svc_start_with(s, prog, NULL, NULL);
}

/* Sends sig to s's process and returns its exit status; fails the test
 * when it has not exited within STOP_MS. */
static int
svc_signal_wait(struct svc *s, int sig)
{
	int st = -1;

	assert_int_equal(lmt_proc_signal(s->proc, sig), LM_OK);
	if (lmt_proc_wait(s->proc, STOP_MS, &st) != LM_OK)
		fail_msg("still running %d ms after signal %d (log: %s)", STOP_MS, sig,
		    s->log);
	return st;
}

/* Whether the log of s holds text. */
static bool
svc_logged(const struct svc *s, const char *text)
{
	char *log = lmt_read_file(s->log, NULL);
	bool found = log != NULL && strstr(log, text) != NULL;

	free(log);
	return found;
}

static void
svc_free(struct svc *s)
{
	lmt_proc_free(s->proc);
	lmt_env_free(&s->env);
	lmt_rmtree(s->dir);
	free(s->dir);
}

/* SIGHUP stops a service as SIGTERM does: there is no configuration to
 * reload, and its default action killed the process without draining
 * the RPC server or leaving the consumer groups. */
static void
test_sighup_stops_gracefully(void **state)
{
	static const char *const progs[] = {"lunamatch-match", "lunamatch-ingest"};
	static const char *const stopped[] = {"\"match.stop\"", "\"ingest.stop\""};
	struct svc s;

	(void) state;
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		svc_start(&s, progs[i]);
		int st = svc_signal_wait(&s, SIGHUP);
		if (st != 0)
			fail_msg("%s: exit %d after SIGHUP, not 0 (log: %s)", progs[i],
			    st, s.log);
		if (!svc_logged(&s, stopped[i]))
			fail_msg("%s: no %s line after SIGHUP (log: %s)", progs[i],
			    stopped[i], s.log);
		svc_free(&s);
	}
}

/* Whether one HealthCheck call of c is answered OK within timeout_ms. */
static bool
check_ok(lm_client *c, unsigned timeout_ms)
{
	Lunamatch__V1__HealthCheckRequest req = LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *r = NULL;
	int st = -1;
	char msg[256];
	bool ok =
	    lm_client_check(c, &req, timeout_ms, &r, &st, msg, sizeof(msg)) == LM_OK &&
	    st == LUNAMATCH__V1__STATUS_CODE__OK;

	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return ok;
}

/* LUNAMATCH_RPC_MAX_CONNECTIONS reaches the RPC server: with 2, two
 * clients are served and a third connection is closed at once, counted
 * with reason="full". The variable did not exist: the limit was always
 * 4096, lowered to fit the receive budget. */
static void
test_match_max_connections(void **state)
{
	char url[64], env_url[96];
	lm_client *c[3] = {NULL, NULL, NULL};
	struct svc s;

	(void) state;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", lmt_free_port());
	snprintf(env_url, sizeof(env_url), "LUNAMATCH_RPC_URL=%s", url);
	const char *env[] = {env_url, "LUNAMATCH_RPC_MAX_CONNECTIONS=2", NULL};
	svc_start_with(&s, "lunamatch-match", env, NULL);
	/* Each of the two is served, retried while the self-probe's passing
	 * connection may hold a place. */
	for (int i = 0; i < 2; i++) {
		bool ok = false;
		assert_int_equal(lm_client_open(url, NULL, &c[i]), LM_OK);
		int64_t t0 = lm_clock_ms();
		while (!(ok = check_ok(c[i], 1000)) && lm_clock_ms() - t0 < 10000)
			lmt_sleep_ms(100);
		if (!ok)
			fail_msg("client %d not served (log: %s)", i, s.log);
	}
	assert_int_equal(lm_client_open(url, NULL, &c[2]), LM_OK);
	assert_false(check_ok(c[2], 500));
	double full = lmt_wait_metric(s.http,
	    "lunamatch_rpc_connections_refused_total{reason=\"full\"}", LMT_GE, 1, 5000);
	if (full < 1)
		fail_msg("no connection refused as full: %g (log: %s)", full, s.log);
	for (int i = 0; i < 3; i++)
		lm_client_close(c[i]);
	assert_int_equal(svc_signal_wait(&s, SIGTERM), 0);
	svc_free(&s);
}

/* The soft limit of open files, "Max open files" in /proc/<pid>/limits;
 * -1 when unread or unlimited. */
static long long
soft_nofile(pid_t pid)
{
	char path[64], *text, *line;
	long long soft = -1;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int) pid);
	if ((text = lmt_read_file(path, NULL)) == NULL)
		return -1;
	if ((line = strstr(text, "Max open files")) != NULL)
		(void) sscanf(line + strlen("Max open files"), "%lld", &soft);
	free(text);
	return soft;
}

/* Both services raise their soft limit of open files to the hard limit at
 * start, and say so: under a runtime that starts them with a soft limit of
 * 1024 match's RPC connections were capped at 768 (three quarters of it),
 * far below the documented counts, and ingest's ops port stopped accepting,
 * uncounted, when a connection limit set above it ran out of descriptors.
 * Started here with a soft limit of 256. */
static void
test_services_raise_nofile(void **state)
{
	static const char *const progs[] = {"lunamatch-match", "lunamatch-ingest"};
	struct rlimit saved, low;
	struct svc s;
	long long soft;

	(void) state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max <= 256)
		skip(); /* no room to raise it here */
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		low = saved;
		low.rlim_cur = 256;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
		svc_start_with(&s, progs[i], NULL, NULL);
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
		soft = soft_nofile(lmt_proc_pid(s.proc));
		if (soft <= 256 && soft != -1)
			fail_msg("%s: soft limit %lld, not raised (log: %s)", progs[i],
			    soft, s.log);
		if (saved.rlim_max != RLIM_INFINITY && soft != (long long) saved.rlim_max)
			fail_msg("%s: soft limit %lld, not the hard limit %llu (log: %s)",
			    progs[i], soft, (unsigned long long) saved.rlim_max, s.log);
		if (!svc_logged(&s, "file descriptor limit raised from 256 to "))
			fail_msg("%s: no line says the limit was raised (log: %s)",
			    progs[i], s.log);
		if (svc_logged(&s, "three quarters of the file descriptor limit"))
			fail_msg(
			    "RPC connections capped by the low limit (log: %s)", s.log);
		assert_int_equal(svc_signal_wait(&s, SIGTERM), 0);
		svc_free(&s);
	}
}

/* The services refuse a long option that is not spelled out (exit 2, the
 * full name in the message): getopt_long took a prefix as the option it
 * begins, so --rpc-max-connections=2 set the per-peer limit. */
static void
test_services_refuse_abbreviations(void **state)
{
	static const struct {
		const char *prog, *arg, *full;
	} cases[] = {
	    {"lunamatch-match", "--work=4", "--workers"},
	    {"lunamatch-match", "--rpc-max-connections-per=2",
	        "--rpc-max-connections-per-peer"},
	    {"lunamatch-ingest", "--batch-ma=10", "--batch-max"},
	    {"lunamatch-ingest", "--hel", "--help"},
	};
	char *dir = lmt_tmpdir("startup");
	char errf[4300];
	lmt_run_result r;

	(void) state;
	snprintf(errf, sizeof(errf), "%s/err", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[] = {lmt_bin(cases[i].prog), cases[i].arg, NULL};
		r = lmt_run(argv, NULL, errf, RUN_MS);
		if (r.status != 2 || r.err == NULL ||
		    strstr(r.err, cases[i].full) == NULL)
			fail_msg("%s %s: exit %d, not 2 naming %s: %s", cases[i].prog,
			    cases[i].arg, r.status, cases[i].full,
			    r.err != NULL ? r.err : "");
		lmt_run_result_free(&r);
	}
	lmt_rmtree(dir);
	free(dir);
}

/* A command-line flag wins over its variable even when the variable's
 * value is bad: LUNAMATCH_WORKERS=abc with --workers 2 starts (it exited
 * 2), and without the flag it still exits 2 naming the variable. */
static void
test_flag_excuses_bad_variable(void **state)
{
	char *dir = lmt_tmpdir("startup");
	char errf[4300];
	lmt_run_result r;
	struct svc s;

	(void) state;
	snprintf(errf, sizeof(errf), "%s/err", dir);
	const char *env[] = {"LUNAMATCH_WORKERS=abc", NULL};
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	r = lmt_run(argv, env, errf, RUN_MS);
	if (r.status != 2 || r.err == NULL || strstr(r.err, "LUNAMATCH_WORKERS") == NULL)
		fail_msg("LUNAMATCH_WORKERS=abc: exit %d, not 2 naming it: %s", r.status,
		    r.err != NULL ? r.err : "");
	lmt_run_result_free(&r);
	const char *args[] = {"--workers", "2", NULL};
	svc_start_with(&s, "lunamatch-match", env, args);
	assert_int_equal(svc_signal_wait(&s, SIGTERM), 0);
	svc_free(&s);
	lmt_rmtree(dir);
	free(dir);
}

/* Sets s up for a run of a service that is to fail at start: a fresh
 * directory (s->dir), its stderr file (s->log) and the environment of
 * both services but for their addresses (LUNAMATCH_HTTP_ADDR,
 * LUNAMATCH_RPC_URL), which the caller adds. */
static void
run_env(struct svc *s)
{
	memset(s, 0, sizeof(*s));
	s->dir = lmt_tmpdir("startup");
	snprintf(s->log, sizeof(s->log), "%s/err", s->dir);
	lmt_env_add(&s->env, "LUNAMATCH_DATA_DIR=%s/var", s->dir);
	lmt_env_add(&s->env, "LUNAMATCH_BROKERS=127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&s->env, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(&s->env, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(
	    &s->env, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(&s->env, "LUNAMATCH_FAIRNESS_FILE=%s",
	    lmt_src("data/fairness/requirements.tsv"));
	lmt_env_add(
	    &s->env, "LUNAMATCH_GAZETTEER_FILE=%s", lmt_src("data/geo/cities.tsv"));
	lmt_env_add(&s->env, "LUNAMATCH_EVENT_TOP_N=0");
	lmt_env_add(&s->env, "LUNAMATCH_DECISION_LOG=0");
}

/* An HTTP address whose host resolves but which the system refuses to
 * listen on (bind: EINVAL, a link-local IPv6 address without its scope)
 * is not reported as a host that does not resolve. */
static void
test_http_addr_refused_not_unresolved(void **state)
{
	static const char *const progs[] = {"lunamatch-match", "lunamatch-ingest"};
	struct svc s;

	(void) state;
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		run_env(&s);
		lmt_env_add(&s.env, "LUNAMATCH_HTTP_ADDR=[fe80::1]:0");
		lmt_env_add(&s.env, "LUNAMATCH_RPC_URL=ipc://%s/rpc.ipc", s.dir);
		const char *argv[] = {lmt_bin(progs[i]), NULL};
		lmt_run_result r = lmt_run(argv, s.env.vec, s.log, RUN_MS);
		if (r.status == 0 || r.err == NULL ||
		    strstr(r.err, "does not resolve") != NULL)
			fail_msg("%s on [fe80::1]:0: exit %d: %s", progs[i], r.status,
			    r.err != NULL ? r.err : "");
		/* Where the system has IPv6, bind says EINVAL. */
		if (r.status == 2 && strstr(r.err, "cannot listen on") == NULL)
			fail_msg("%s: exit 2 without the cause: %s", progs[i], r.err);
		lmt_run_result_free(&r);
		lmt_env_free(&s.env);
		lmt_rmtree(s.dir);
		free(s.dir);
	}
}

/* An RPC URL whose host does not resolve is the setting's fault, as an
 * HTTP address's is: exit 2 naming the variable (it was exit 1, "a
 * restart may succeed", and a crash loop); an ipc:// URL whose directory
 * does not exist stays a resource failure (exit 1). Ingest's notify URL
 * says the same (exit 2 before, with nng's "Address invalid"). */
static void
test_rpc_url_unresolved(void **state)
{
	static const char host[] = "no-such-host.invalid";
	struct addrinfo hints, *ai = NULL;
	char url[4300];
	struct svc s;
	int gai;

	(void) state;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	gai = getaddrinfo(host, NULL, &hints, &ai);
	if (ai != NULL)
		freeaddrinfo(ai);
	if (gai == 0 || gai == EAI_AGAIN)
		skip(); /* resolves, or no name server answers here */
	for (int i = 0; i < 3; i++) {
		run_env(&s);
		lmt_env_add(&s.env, "LUNAMATCH_HTTP_ADDR=127.0.0.1:%d", lmt_free_port());
		if (i != 1)
			snprintf(url, sizeof(url), "tcp://%s:%d", host, lmt_free_port());
		else
			snprintf(url, sizeof(url), "ipc://%s/none/rpc.ipc", s.dir);
		/* The third: ingest's notify URL, the same rule. */
		lmt_env_add(&s.env, "%s=%s",
		    i == 2 ? "LUNAMATCH_NOTIFY_URL" : "LUNAMATCH_RPC_URL", url);
		const char *argv[] = {
		    lmt_bin(i == 2 ? "lunamatch-ingest" : "lunamatch-match"), NULL};
		lmt_run_result r = lmt_run(argv, s.env.vec, s.log, RUN_MS);
		if (i != 1 && (r.status != 2 || r.err == NULL ||
		                  strstr(r.err, "URL: the host of") == NULL ||
		                  strstr(r.err, "does not resolve") == NULL))
			fail_msg("%s: exit %d: %s", url, r.status, r.err ? r.err : "");
		if (i == 1 && (r.status != 1 || r.err == NULL ||
		                  strstr(r.err, "does not resolve") != NULL))
			fail_msg("%s: exit %d: %s", url, r.status, r.err ? r.err : "");
		lmt_run_result_free(&r);
		lmt_env_free(&s.env);
		lmt_rmtree(s.dir);
		free(s.dir);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_refuses_tcp_url_without_port),
	    cmocka_unit_test(test_sighup_stops_gracefully),
	    cmocka_unit_test(test_refusals_escape_values),
	    cmocka_unit_test(test_start_failure_says_why),
	    cmocka_unit_test(test_match_max_connections),
	    cmocka_unit_test(test_services_raise_nofile),
	    cmocka_unit_test(test_services_refuse_abbreviations),
	    cmocka_unit_test(test_flag_excuses_bad_variable),
	    cmocka_unit_test(test_http_addr_refused_not_unresolved),
	    cmocka_unit_test(test_rpc_url_unresolved),
	};
	/* LMT_TEST_FILTER=test_sighup* runs some tests (a cmocka glob). */
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
