/*
 * test_config.c - configuration: defaults, environment, flags, errors.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/config.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/rpc.h"
#include "lunamatch/store.h"

static int
load(lm_config *cfg, lm_prog prog, int argc, char **argv, char *err)
{
	return lm_config_load(cfg, prog, argc, argv, err, 256);
}

static void
test_defaults(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";
	char *argv[] = {"prog", NULL};
	unsetenv("LUNAMATCH_BROKERS");
	unsetenv("LUNAMATCH_LOG_LEVEL");
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, argv, err), LM_OK);
	assert_string_equal(cfg.brokers, "127.0.0.1:9092");
	assert_string_equal(cfg.rpc_url, "tcp://127.0.0.1:7700");
	assert_string_equal(cfg.data_dir, "./var");
	assert_string_equal(cfg.topic_matches, "lunamatch.matches.v1");
	assert_string_equal(cfg.topic_dlq, "lunamatch.ingest.dlq.v1");
	assert_true(cfg.event_min_score > 0.69 && cfg.event_min_score < 0.71);
	assert_int_equal(cfg.event_top_n, 50);
	assert_int_equal(cfg.log_level, LM_LOG_INFO);
	/* The one request limit of server and clients (rpc.h). */
	assert_int_equal(cfg.max_request_bytes, LM_RPC_DEFAULT_MAX_REQUEST);
	char url[600];
	assert_int_equal(lm_config_notify_url(&cfg, url, sizeof(url)), LM_OK);
	assert_string_equal(url, "ipc://./var/notify.ipc");
}

static void
test_env_then_flags(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";
	setenv("LUNAMATCH_BROKERS", "10.0.0.1:9092", 1);
	setenv("LUNAMATCH_EVENT_TOP_N", "7", 1);
	char *argv[] = {"prog", "--brokers", "127.0.0.1:19092", "rest", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 4, argv, err), LM_OK);
	assert_string_equal(cfg.brokers, "127.0.0.1:19092"); /* flag wins */
	assert_int_equal(cfg.event_top_n, 7);                /* from env */
	assert_int_equal(cfg.argi, 3);
	unsetenv("LUNAMATCH_BROKERS");
	unsetenv("LUNAMATCH_EVENT_TOP_N");
}

static void
test_errors(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";

	setenv("LUNAMATCH_EVENT_MIN_SCORE", "1.5", 1);
	char *a1[] = {"prog", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_EVENT_MIN_SCORE"));
	unsetenv("LUNAMATCH_EVENT_MIN_SCORE");

	setenv("LUNAMATCH_LOG_LEVEL", "loud", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_LOG_LEVEL"));
	unsetenv("LUNAMATCH_LOG_LEVEL");

	/* Store trimming: the defaults are the store's, and a lease too short
	 * for readers that renew every 10 s is refused. */
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_OK);
	assert_int_equal(cfg.reader_lease_s, LM_STORE_READER_LEASE_DEFAULT);
	assert_int_equal(cfg.tombstone_retention_s, LM_STORE_TOMBSTONE_RETENTION_DEFAULT);
	setenv("LUNAMATCH_READER_LEASE_S", "59", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_READER_LEASE_S"));
	unsetenv("LUNAMATCH_READER_LEASE_S");
	setenv("LUNAMATCH_TOMBSTONE_RETENTION_S", "0", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_TOMBSTONE_RETENTION_S"));
	unsetenv("LUNAMATCH_TOMBSTONE_RETENTION_S");

	/* The store's max age: half a day, half the input topics'
	 * delete.retention.ms in deploy/; below 10 minutes (a few rounds of
	 * showing the store current) it is refused. Match does not take it. */
	assert_int_equal(cfg.store_max_age_s, 43200);
	setenv("LUNAMATCH_STORE_MAX_AGE_S", "599", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_STORE_MAX_AGE_S"));
	setenv("LUNAMATCH_STORE_MAX_AGE_S", "3600", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_OK);
	assert_int_equal(cfg.store_max_age_s, 3600);
	unsetenv("LUNAMATCH_STORE_MAX_AGE_S");
	char *age[] = {"prog", "--store-max-age-s", "3600", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, age, err), LM_EINVAL);

	char *a2[] = {"prog", "--batch-max", "12x", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a2, err), LM_EINVAL);
	assert_non_null(strstr(err, "--batch-max"));

	/* An option of another program is unknown here. */
	char *a3[] = {"prog", "--batch-max", "10", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a3, err), LM_EINVAL);
	assert_non_null(strstr(err, "unknown option"));

	char *a4[] = {"prog", "--brokers", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 2, a4, err), LM_EINVAL);
	assert_non_null(strstr(err, "needs a value"));

	/* An empty broker list would reach librdkafka as nothing to dial. */
	char *a6[] = {"prog", "--brokers", "", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a6, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_BROKERS"));

	/* Whole-number bounds print as whole numbers. */
	char *a7[] = {"prog", "--max-request-bytes", "10", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a7, err), LM_EINVAL);
	assert_non_null(strstr(err, "outside 1024..67108864"));

	/* Options a program does not use are not its options. */
	char *a8[] = {"prog", "--topic-dlq", "x", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a8, err), LM_EINVAL);
	char *a9[] = {"prog", "--topic-matches", "x", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a9, err), LM_EINVAL);

	char *a5[] = {"prog", "--tls-cert", "c.pem", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a5, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_TLS_KEY"));
}

/* Numbers are read in decimal only: strtod's spaces, hexadecimal, inf and
 * nan, and exponents of whole numbers, are refused; plain decimals pass. */
static void
test_number_syntax(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";
	static const char *const bad_u32[] = {
	    "0x10", "1e1", " 8", "8 ", "+8", "-8", "", "8.0"};
	static const char *const bad_dbl[] = {
	    "0x.8p0", " 0.5", "inf", "nan", "+0.5", ".", "1e", "0.5e+", "-"};

	for (size_t i = 0; i < sizeof(bad_u32) / sizeof(bad_u32[0]); i++) {
		char *a[] = {"prog", "--workers", (char *) bad_u32[i], NULL};
		if (load(&cfg, LM_PROG_MATCH, 3, a, err) != LM_EINVAL)
			fail_msg("--workers \"%s\" accepted", bad_u32[i]);
		assert_non_null(strstr(err, "--workers"));
	}
	for (size_t i = 0; i < sizeof(bad_dbl) / sizeof(bad_dbl[0]); i++) {
		char *a[] = {"prog", "--event-min-score", (char *) bad_dbl[i], NULL};
		if (load(&cfg, LM_PROG_MATCH, 3, a, err) != LM_EINVAL)
			fail_msg("--event-min-score \"%s\" accepted", bad_dbl[i]);
	}
	char *a1[] = {"prog", "--workers", "16", "--event-min-score", "0.5", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 5, a1, err), LM_OK);
	assert_int_equal(cfg.workers, 16);
	assert_true(cfg.event_min_score == 0.5);
	static const char *const good_dbl[] = {"1", "0.25", ".5", "5e-1", "50E-2", "-0"};
	for (size_t i = 0; i < sizeof(good_dbl) / sizeof(good_dbl[0]); i++) {
		char *a[] = {"prog", "--event-min-score", (char *) good_dbl[i], NULL};
		if (load(&cfg, LM_PROG_MATCH, 3, a, err) != LM_OK)
			fail_msg("--event-min-score \"%s\": %s", good_dbl[i], err);
	}
}

/* A refused option is named as it was written. */
static void
test_unknown_option_messages(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";

	char *a1[] = {"prog", "-xh", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a1, err), LM_EINVAL);
	assert_string_equal(err, "unknown option -x (see --help)");
	char *a2[] = {"prog", "--workers", "2", "-hx", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 4, a2, err), LM_EINVAL);
	assert_string_equal(err, "unknown option -x (see --help)");
	char *a3[] = {"prog", "--help=1", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a3, err), LM_EINVAL);
	assert_string_equal(err, "option --help takes no value");
	char *a4[] = {"prog", "--json=1", NULL};
	assert_int_equal(load(&cfg, LM_PROG_CLI, 2, a4, err), LM_EINVAL);
	assert_string_equal(err, "option --json takes no value");
	char *a5[] = {"prog", "--no-such=1", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a5, err), LM_EINVAL);
	assert_string_equal(err, "unknown option --no-such=1 (see --help)");
}

/* A data file is a regular file: an empty path or a directory is refused
 * rather than read as an empty or unreadable file. */
static void
test_data_file(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("config");
	char buf[4096];
	const char *f = lmt_write_file(dir, "x.tsv", "x", 1);

	assert_int_equal(lm_config_data_file(f, buf, sizeof(buf)), LM_OK);
	assert_string_equal(buf, f);
	assert_int_equal(lm_config_data_file(dir, buf, sizeof(buf)), LM_EINVAL);
	assert_int_equal(lm_config_data_file("", buf, sizeof(buf)), LM_EINVAL);
	assert_int_equal(
	    lm_config_data_file("/no/such/file.tsv", buf, sizeof(buf)), LM_ENOENT);
	assert_int_equal(lm_config_data_file(f, buf, 4), LM_E2BIG);
	lmt_rmtree(dir);
	free(dir);
}

/* Each program refuses, for each pair of its options that must differ, the
 * same value in both, naming both variables; the value set through either
 * side. */
static void
test_match_distinct(void **state)
{
	(void) state;
	static const struct {
		const char *a, *b, *value;
		lm_prog prog;
	} pairs[] = {
	    {"LUNAMATCH_TOPIC_POSTINGS", "LUNAMATCH_TOPIC_PROFILES", "t.x",
	        LM_PROG_MATCH},
	    {"LUNAMATCH_TOPIC_POSTINGS", "LUNAMATCH_TOPIC_PROFILES", "t.x",
	        LM_PROG_INGEST},
	    {"LUNAMATCH_TOPIC_DLQ", "LUNAMATCH_TOPIC_POSTINGS", "t.x", LM_PROG_INGEST},
	    {"LUNAMATCH_TOPIC_DLQ", "LUNAMATCH_TOPIC_PROFILES", "t.x", LM_PROG_INGEST},
	    {"LUNAMATCH_TOPIC_DLQ", "LUNAMATCH_TOPIC_PROFILES", "t.x", LM_PROG_DEVKAFKA},
	    {"LUNAMATCH_EVENTS_GROUP_ID", "LUNAMATCH_GROUP_ID", "g", LM_PROG_MATCH},
	    {"LUNAMATCH_TOPIC_MATCHES", "LUNAMATCH_TOPIC_POSTINGS", "t.x", LM_PROG_MATCH},
	    {"LUNAMATCH_TOPIC_MATCHES", "LUNAMATCH_TOPIC_PROFILES", "t.x", LM_PROG_MATCH},
	    {"LUNAMATCH_TOPIC_DECISIONS", "LUNAMATCH_TOPIC_POSTINGS", "t.x",
	        LM_PROG_MATCH},
	    {"LUNAMATCH_TOPIC_DECISIONS", "LUNAMATCH_TOPIC_PROFILES", "t.x",
	        LM_PROG_MATCH},
	    {"LUNAMATCH_TOPIC_MATCHES", "LUNAMATCH_TOPIC_DECISIONS", "t.x",
	        LM_PROG_MATCH},
	};
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	size_t accepted = 0;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		setenv(pairs[i].a, pairs[i].value, 1);
		assert_int_equal(load(&cfg, pairs[i].prog, 1, a1, err), LM_OK);
		setenv(pairs[i].b, pairs[i].value, 1);
		err[0] = '\0';
		if (load(&cfg, pairs[i].prog, 1, a1, err) != LM_EINVAL ||
		    strstr(err, pairs[i].a) == NULL || strstr(err, pairs[i].b) == NULL ||
		    strstr(err, "must differ") == NULL) {
			print_error("%s = %s: accepted or not named (\"%s\")\n",
			    pairs[i].a, pairs[i].b, err);
			accepted++;
		}
		unsetenv(pairs[i].a);
		unsetenv(pairs[i].b);
	}
	assert_int_equal(accepted, 0);

	/* A flag makes the collision as well as the environment does. */
	setenv("LUNAMATCH_GROUP_ID", "g", 1);
	char *a2[] = {"prog", "--events-group-id", "g", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a2, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_EVENTS_GROUP_ID"));
	unsetenv("LUNAMATCH_GROUP_ID");

	/* Ingest takes neither the events group nor the output topics. */
	setenv("LUNAMATCH_GROUP_ID", "lunamatch-match-events", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_OK);
	unsetenv("LUNAMATCH_GROUP_ID");
	setenv("LUNAMATCH_TOPIC_DECISIONS", "lunamatch.postings.v1", 1);
	setenv("LUNAMATCH_TOPIC_POSTINGS", "lunamatch.postings.v1", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_OK);
	/* Nor does the CLI, which reads no decisions. */
	char *a3[] = {"prog", "--topic-decisions", "t.x", NULL};
	assert_int_equal(load(&cfg, LM_PROG_CLI, 3, a3, err), LM_EINVAL);
	assert_non_null(strstr(err, "topic-decisions"));
	/* Match without the decision log writes no decisions topic. */
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_EINVAL);
	setenv("LUNAMATCH_DECISION_LOG", "0", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
	unsetenv("LUNAMATCH_DECISION_LOG");
	unsetenv("LUNAMATCH_TOPIC_DECISIONS");
	unsetenv("LUNAMATCH_TOPIC_POSTINGS");
}

/* An empty group id is refused, naming the variable: match's event owners
 * took the built-in events group for an empty one (so that
 * LUNAMATCH_GROUP_ID=lunamatch-match-events beside an empty events group
 * passed the check that they differ), and librdkafka's consumers refuse it
 * only later, as a runtime failure. */
static void
test_empty_group_ids(void **state)
{
	(void) state;
	static const struct {
		const char *var, *flag;
		lm_prog prog;
	} empty[] = {
	    {"LUNAMATCH_GROUP_ID", "--group-id", LM_PROG_INGEST},
	    {"LUNAMATCH_GROUP_ID", "--group-id", LM_PROG_MATCH},
	    {"LUNAMATCH_EVENTS_GROUP_ID", "--events-group-id", LM_PROG_MATCH},
	};
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		setenv(empty[i].var, "", 1);
		err[0] = '\0';
		if (load(&cfg, empty[i].prog, 1, a1, err) != LM_EINVAL ||
		    strstr(err, empty[i].var) == NULL)
			fail_msg("%s empty: accepted or not named (\"%s\")", empty[i].var,
			    err);
		unsetenv(empty[i].var);
		char *a2[] = {"prog", (char *) empty[i].flag, "", NULL};
		err[0] = '\0';
		if (load(&cfg, empty[i].prog, 3, a2, err) != LM_EINVAL ||
		    strstr(err, empty[i].var) == NULL)
			fail_msg("%s \"\": accepted or not named (\"%s\")", empty[i].flag,
			    err);
	}
	/* The events group empty beside an ingest group of its default name. */
	setenv("LUNAMATCH_GROUP_ID", "lunamatch-match-events", 1);
	setenv("LUNAMATCH_EVENTS_GROUP_ID", "", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_EINVAL);
	unsetenv("LUNAMATCH_GROUP_ID");
	unsetenv("LUNAMATCH_EVENTS_GROUP_ID");
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
}

/* A receive budget that cannot hold one request of the largest size is
 * refused, naming both variables: the RPC server took one connection for
 * it, so that a single client filled the replica (/readyz 503, every other
 * client refused), with nothing above an info line to say why. */
static void
test_receive_budget_holds_a_request(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	setenv("LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES", "512", 1); /* meant as MB */
	err[0] = '\0';
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES"));
	assert_non_null(strstr(err, "LUNAMATCH_MAX_REQUEST_BYTES"));
	char *a2[] = {"prog", "--max-request-bytes", "1024", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a2, err), LM_EINVAL);
	setenv("LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES", "1024", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a2, err), LM_OK);
	assert_int_equal(cfg.rpc_receive_budget, 1024);
	/* At the default request size: one request is enough, 0 derives it. */
	setenv("LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES", "1048575", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_EINVAL);
	setenv("LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES", "1048576", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
	setenv("LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES", "0", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
	unsetenv("LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES");
}

/* Topic names Kafka does not allow (and a regular expression, which
 * librdkafka would subscribe by) are refused with the variable named. */
static void
test_topic_names(void **state)
{
	(void) state;
	static const char *const vars[] = {"LUNAMATCH_TOPIC_POSTINGS",
	    "LUNAMATCH_TOPIC_PROFILES", "LUNAMATCH_TOPIC_MATCHES",
	    "LUNAMATCH_TOPIC_DECISIONS", "LUNAMATCH_TOPIC_DLQ"};
	char long_name[LM_KAFKA_TOPIC_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	const char *bad[] = {"^lunamatch\\.postings.*", "", "a b", "topic/1", ".", "..",
	    "caf\xc3\xa9", long_name};
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	size_t accepted = 0;
	for (size_t v = 0; v < sizeof(vars) / sizeof(vars[0]); v++) {
		lm_prog prog = strcmp(vars[v], "LUNAMATCH_TOPIC_DLQ") == 0
		                   ? LM_PROG_INGEST
		                   : LM_PROG_MATCH;
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			setenv(vars[v], bad[i], 1);
			err[0] = '\0';
			if (load(&cfg, prog, 1, a1, err) != LM_EINVAL ||
			    strstr(err, vars[v]) == NULL ||
			    strstr(err, "not a Kafka topic name") == NULL) {
				print_error(
				    "%s=\"%.40s\": accepted or not named (\"%s\")\n",
				    vars[v], bad[i], err);
				accepted++;
			}
		}
		unsetenv(vars[v]);
	}
	assert_int_equal(accepted, 0);
	char *a2[] = {"prog", "--topic-postings", "^x", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a2, err), LM_EINVAL);
	assert_non_null(strstr(err, "--topic-postings"));

	/* The longest legal name and every legal character pass. */
	long_name[LM_KAFKA_TOPIC_MAX] = '\0';
	setenv("LUNAMATCH_TOPIC_POSTINGS", long_name, 1);
	setenv("LUNAMATCH_TOPIC_PROFILES", "Az09._-", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_OK);
	assert_string_equal(cfg.topic_postings, long_name);
	unsetenv("LUNAMATCH_TOPIC_POSTINGS");
	unsetenv("LUNAMATCH_TOPIC_PROFILES");
}

/* The addresses a service listens on are refused when they are not nng
 * addresses of a scheme it can use, or a TCP one names no port (nng would
 * listen on one the kernel picks, where no client looks), in every program
 * that listens on them: ingest took a notify URL without a port and
 * published where match's follower never dialled. */
static void
test_listen_urls(void **state)
{
	(void) state;
	static const struct {
		lm_prog prog;
		const char *var, *value;
	} bad[] = {
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tcp://127.0.0.1"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tcp://[::1]"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tcp4://127.0.0.1:"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tcp://127.0.0.1:65536"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tcp://127.0.0.1:http"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tls+tcp://127.0.0.1:7710"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "bogus://x"},
	    {LM_PROG_MATCH, "LUNAMATCH_NOTIFY_URL", "tcp://127.0.0.1"},
	    {LM_PROG_MATCH, "LUNAMATCH_RPC_URL", "tcp://127.0.0.1"},
	    {LM_PROG_MATCH, "LUNAMATCH_RPC_URL", "tls+tcp://127.0.0.1"},
	    {LM_PROG_MATCH, "LUNAMATCH_RPC_URL", "http://127.0.0.1:7700"},
	    /* In-process only: no client or ingest could reach it. */
	    {LM_PROG_MATCH, "LUNAMATCH_RPC_URL", "inproc://lunamatch"},
	    {LM_PROG_MATCH, "LUNAMATCH_NOTIFY_URL", "inproc://notify"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "inproc://notify"},
	};
	static const struct {
		lm_prog prog;
		const char *var, *value;
	} good[] = {
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tcp://127.0.0.1:7710"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "tcp://[::1]:0"},
	    {LM_PROG_INGEST, "LUNAMATCH_NOTIFY_URL", "ipc:///tmp/notify.ipc"},
	    {LM_PROG_MATCH, "LUNAMATCH_NOTIFY_URL", "tcp6://[::1]:7710"},
	    {LM_PROG_MATCH, "LUNAMATCH_RPC_URL", "tls+tcp://127.0.0.1:7700"},
	    {LM_PROG_MATCH, "LUNAMATCH_RPC_URL", "ipc:///tmp/rpc.ipc"},
	    /* The CLI's --url is a list of replicas, checked where it dials. */
	    {LM_PROG_CLI, "LUNAMATCH_RPC_URL", "tcp://a:1,tcp://b:2"},
	};
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(bad[i].var, bad[i].value, 1);
		err[0] = '\0';
		if (load(&cfg, bad[i].prog, 1, a1, err) != LM_EINVAL ||
		    strstr(err, bad[i].var) == NULL)
			fail_msg("%s=%s: accepted or not named (\"%s\")", bad[i].var,
			    bad[i].value, err);
		unsetenv(bad[i].var);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		setenv(good[i].var, good[i].value, 1);
		err[0] = '\0';
		if (load(&cfg, good[i].prog, 1, a1, err) != LM_OK)
			fail_msg(
			    "%s=%s: refused (\"%s\")", good[i].var, good[i].value, err);
		unsetenv(good[i].var);
	}
	/* The flag, and the default notify socket under a data directory too
	 * long for a Unix socket's path. */
	char *a2[] = {"prog", "--notify-url", "tcp://127.0.0.1", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a2, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_NOTIFY_URL"));
	char dir[200];
	memset(dir, 'd', sizeof(dir) - 1);
	dir[sizeof(dir) - 1] = '\0';
	char *a3[] = {"prog", "--data-dir", dir, NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a3, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_NOTIFY_URL"));
}

/* The health and metrics address is host:port or [v6]:port, checked with
 * the other addresses when the configuration loads: it was checked only
 * when the HTTP server started, after the store was open and the follower
 * or consumer made. Its host is not resolved here. */
static void
test_http_addr(void **state)
{
	(void) state;
	static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", ":7701",
	    "127.0.0.1:65536", "127.0.0.1:http", "[::1]7701", "[::1]", "my host:7701",
	    "tcp://127.0.0.1:7701", "127.0.0.1:-1"};
	static const char *const good[] = {
	    "127.0.0.1:7701", "[::1]:0", "0.0.0.0:65535", "metrics.internal:8080"};
	static const lm_prog progs[] = {LM_PROG_INGEST, LM_PROG_MATCH};
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	for (size_t p = 0; p < 2; p++) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			setenv("LUNAMATCH_HTTP_ADDR", bad[i], 1);
			err[0] = '\0';
			if (load(&cfg, progs[p], 1, a1, err) != LM_EINVAL ||
			    strstr(err, "LUNAMATCH_HTTP_ADDR") == NULL)
				fail_msg("LUNAMATCH_HTTP_ADDR=%s: accepted or not named "
				         "(\"%s\")",
				    bad[i], err);
		}
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			setenv("LUNAMATCH_HTTP_ADDR", good[i], 1);
			err[0] = '\0';
			if (load(&cfg, progs[p], 1, a1, err) != LM_OK)
				fail_msg("LUNAMATCH_HTTP_ADDR=%s: refused (\"%s\")",
				    good[i], err);
		}
		unsetenv("LUNAMATCH_HTTP_ADDR");
	}
	char *a2[] = {"prog", "--http", "127.0.0.1", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a2, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_HTTP_ADDR"));
	/* Empty: the program's default. */
	setenv("LUNAMATCH_HTTP_ADDR", "", 1);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 1, a1, err), LM_OK);
	unsetenv("LUNAMATCH_HTTP_ADDR");
}

/* Whether s holds a byte a terminal or a log reader would not show as
 * itself (a control byte, DEL or a byte above ASCII). */
static bool
has_raw_bytes(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
			return true;
	return false;
}

/* Every entry of the broker list is host:port ([v6]:port for an IPv6
 * address): only an empty list was refused, and librdkafka took the rest
 * as given, logging failed connections to a host named "localhost:" or
 * ":9092" for ever while the service reported itself started. The error
 * names the bad entry, its bytes escaped. */
static void
test_broker_list(void **state)
{
	(void) state;
	static const struct {
		const char *value, *entry;
	} bad[] = {
	    {"localhost", "\"localhost\""},
	    {"localhost:", "\"localhost:\""},
	    {":9092", "\":9092\""},
	    {"kafka:port", "\"kafka:port\""},
	    {"kafka:0", "\"kafka:0\""},
	    {"kafka:65536", "\"kafka:65536\""},
	    {"kafka:-1", "\"kafka:-1\""},
	    {"a:1,,b:2", "\"\""},
	    {"a:1,", "\"\""},
	    {"a:1, ,b:2", "\" \""},
	    {"::1:9092", "\"::1:9092\""},
	    {"[::1]", "\"[::1]\""},
	    {"[::1]9092", "\"[::1]9092\""},
	    {"[]:9092", "\"[]:9092\""},
	    {"[::g]:9092", "\"[::g]:9092\""},
	    {"PLAINTEXT://kafka:9092", "\"PLAINTEXT://kafka:9092\""},
	    {"ka fka:9092", "\"ka fka:9092\""},
	    {"a:1,kaf\x01ka:9092", "\"kaf\\x01ka:9092\""},
	    {"kaf\x1b[2Jka:9092", "\"kaf\\x1b[2Jka:9092\""},
	    {"caf\xc3\xa9:9092", "\"caf\\xc3\\xa9:9092\""},
	};
	static const char *const good[] = {"127.0.0.1:9092", "a:1,b:2", "a:1, b:2 ",
	    "[::1]:9092", "[fe80::1]:1,kafka-0.kafka.svc.cluster.local:65535",
	    "kafka_1:9092"};
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("LUNAMATCH_BROKERS", bad[i].value, 1);
		err[0] = '\0';
		if (load(&cfg, LM_PROG_INGEST, 1, a1, err) != LM_EINVAL ||
		    strstr(err, "LUNAMATCH_BROKERS") == NULL ||
		    strstr(err, bad[i].entry) == NULL || has_raw_bytes(err))
			fail_msg("LUNAMATCH_BROKERS=%s: accepted or entry %s not named "
			         "as such (\"%s\")",
			    bad[i].value, bad[i].entry, err);
	}
	unsetenv("LUNAMATCH_BROKERS");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *a2[] = {"prog", "--brokers", (char *) good[i], NULL};
		err[0] = '\0';
		if (load(&cfg, LM_PROG_MATCH, 3, a2, err) != LM_OK)
			fail_msg("--brokers %s: refused (\"%s\")", good[i], err);
		assert_string_equal(cfg.brokers, good[i]);
	}
	char *a3[] = {"prog", "--brokers", "kafka", NULL};
	assert_int_equal(load(&cfg, LM_PROG_CLI, 3, a3, err), LM_EINVAL);
	assert_non_null(strstr(err, "--brokers"));
}

/* An error message shows a refused value with its control and non-ASCII
 * bytes escaped: they were echoed raw to stderr, where a line break or a
 * terminal escape sequence in a variable forged or hid lines. */
static void
test_errors_escape_values(void **state)
{
	(void) state;
	static const struct {
		const char *var, *value, *shown;
		lm_prog prog;
	} bad[] = {
	    {"LUNAMATCH_LOG_LEVEL", "info\n{\"level\":\"error\"}", "info\\x0a{\\\"level",
	        LM_PROG_INGEST},
	    {"LUNAMATCH_WORKERS", "4\x1b[2J", "4\\x1b[2J", LM_PROG_MATCH},
	    {"LUNAMATCH_WORKERS", "4.5\r", "4.5\\x0d", LM_PROG_MATCH},
	    {"LUNAMATCH_EVENT_MIN_SCORE", "0.5\x7f", "0.5\\x7f", LM_PROG_MATCH},
	    {"LUNAMATCH_RPC_URL", "tcp://\x1b[31m", "tcp://\\x1b[31m", LM_PROG_MATCH},
	    {"LUNAMATCH_NOTIFY_URL", "tcp://h\xc3\xa9", "tcp://h\\xc3\\xa9",
	        LM_PROG_INGEST},
	};
	lm_config cfg;
	char err[256];
	char *a1[] = {"prog", NULL};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(bad[i].var, bad[i].value, 1);
		err[0] = '\0';
		if (load(&cfg, bad[i].prog, 1, a1, err) != LM_EINVAL ||
		    strstr(err, bad[i].var) == NULL || has_raw_bytes(err) ||
		    strstr(err, bad[i].shown) == NULL)
			fail_msg("%s: accepted, not named or not escaped as %s: %s",
			    bad[i].var, bad[i].shown, err);
		unsetenv(bad[i].var);
	}
	/* Options as written on the command line. */
	char *a2[] = {"prog", "--no\x1b[2J", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a2, err), LM_EINVAL);
	assert_false(has_raw_bytes(err));
	assert_non_null(strstr(err, "--no\\x1b[2J"));
	char *a3[] = {"prog", "--help\n=1", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a3, err), LM_EINVAL);
	assert_false(has_raw_bytes(err));
	char *a4[] = {"prog", "--workers=\t", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a4, err), LM_EINVAL);
	assert_false(has_raw_bytes(err));
	assert_non_null(strstr(err, "\\x09"));
}

static void
test_help(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";
	char *argv[] = {"prog", "--help", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 2, argv, err), LM_OK);
	assert_true(cfg.help);

	/* --help and --version answer whatever the environment holds; the
	 * same environment without them is refused. */
	setenv("LUNAMATCH_WORKERS", "0", 1);
	char *hv[][2] = {{"prog", "--help"}, {"prog", "--version"}};
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, hv[i], err), LM_OK);
	assert_true(cfg.version);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, argv, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_WORKERS"));
	unsetenv("LUNAMATCH_WORKERS");

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	lm_config_usage(f, LM_PROG_INGEST);
	fclose(f);
	assert_non_null(strstr(buf, "LUNAMATCH_GROUP_ID"));
	assert_null(strstr(buf, "LUNAMATCH_EVENT_TOP_N")); /* a match option */
	free(buf);
}

/*
 * A match-only millisecond setting: its default; each of good (NULL-ended)
 * read as the number in want; each of bad (NULL-ended) refused naming the
 * variable; the flag (set to flag_value) winning over the environment; the
 * flag refused by ingest; the variable listed by --help of match. field is
 * the setting's offset in lm_config.
 */
struct u32_setting {
	const char *env, *flag;
	size_t field;
	uint32_t dflt;
	const char *good[4];
	uint32_t want[4];
	const char *bad[8];
	const char *flag_value;
};

static uint32_t
u32_field(const lm_config *cfg, size_t off)
{
	uint32_t v;
	memcpy(&v, (const char *) cfg + off, sizeof(v));
	return v;
}

static void
check_u32_setting(const struct u32_setting *t)
{
	lm_config cfg;
	char err[256] = "";
	char *a1[] = {"prog", NULL};

	unsetenv(t->env);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
	assert_int_equal(u32_field(&cfg, t->field), t->dflt);
	for (size_t i = 0; t->good[i] != NULL; i++) {
		setenv(t->env, t->good[i], 1);
		assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
		assert_int_equal(u32_field(&cfg, t->field), t->want[i]);
	}
	for (size_t i = 0; t->bad[i] != NULL; i++) {
		setenv(t->env, t->bad[i], 1);
		err[0] = '\0';
		if (load(&cfg, LM_PROG_MATCH, 1, a1, err) != LM_EINVAL)
			fail_msg("%s=\"%s\" accepted", t->env, t->bad[i]);
		assert_non_null(strstr(err, t->env));
	}
	setenv(t->env, t->good[0], 1);
	char *a2[] = {"prog", (char *) t->flag, (char *) t->flag_value, NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a2, err), LM_OK);
	assert_int_equal(u32_field(&cfg, t->field), strtoul(t->flag_value, NULL, 10));
	unsetenv(t->env);
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a2, err), LM_EINVAL);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	lm_config_usage(f, LM_PROG_MATCH);
	fclose(f);
	assert_non_null(strstr(buf, t->env));
	free(buf);
}

/* LUNAMATCH_RPC_MAX_CONNECTION_AGE_MS: 5 minutes by default, 0 for never,
 * 1000 ms up to a day. */
static void
test_rpc_max_connection_age(void **state)
{
	(void) state;
	static const struct u32_setting t = {
	    .env = "LUNAMATCH_RPC_MAX_CONNECTION_AGE_MS",
	    .flag = "--rpc-max-connection-age-ms",
	    .field = offsetof(lm_config, rpc_max_connection_age_ms),
	    .dflt = 300000,
	    .good = {"0", "1000", "86400000", NULL},
	    .want = {0, 1000, 86400000},
	    .bad = {"-1", "1", "999", "86400001", "5m", "", NULL},
	    .flag_value = "60000",
	};
	check_u32_setting(&t);
}

/* LUNAMATCH_RPC_SEND_TIMEOUT_MS: 10 s by default, 100 ms to 10 minutes. */
static void
test_rpc_send_timeout(void **state)
{
	(void) state;
	static const struct u32_setting t = {
	    .env = "LUNAMATCH_RPC_SEND_TIMEOUT_MS",
	    .flag = "--rpc-send-timeout-ms",
	    .field = offsetof(lm_config, rpc_send_timeout_ms),
	    .dflt = 10000,
	    .good = {"100", "600000", NULL},
	    .want = {100, 600000},
	    .bad = {"0", "99", "600001", "-1", "10s", "", NULL},
	    .flag_value = "2000",
	};
	check_u32_setting(&t);
}

static void
test_flag_enumeration(void **state)
{
	(void) state;
	const char *name;
	bool has_arg, seen_json = false, seen_url = false;
	size_t i = 0;
	for (; lm_config_flag(LM_PROG_CLI, i, &name, &has_arg) == LM_OK; i++) {
		assert_true(i < 64);
		if (strcmp(name, "json") == 0) {
			seen_json = true;
			assert_false(has_arg);
		}
		if (strcmp(name, "url") == 0) {
			seen_url = true;
			assert_true(has_arg);
		}
		assert_string_not_equal(name, "batch-max"); /* an ingest option */
	}
	assert_true(seen_json && seen_url);
	assert_int_equal(lm_config_flag(LM_PROG_CLI, i, &name, &has_arg), LM_ENOENT);
	assert_non_null(lm_version());
	assert_true(strlen(lm_version()) >= 5);
}

/* LUNAMATCH_RPC_MAX_CONNECTIONS: 0 (the server's default, 4096) unless
 * set, up to 65536; the exact flag is not taken for the per-peer one
 * (getopt_long took --rpc-max-connections as a prefix of
 * --rpc-max-connections-per-peer before the option existed), and --help
 * of match lists it. */
static void
test_rpc_max_connections(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";
	char *a1[] = {"prog", NULL};

	unsetenv("LUNAMATCH_RPC_MAX_CONNECTIONS");
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
	assert_int_equal(cfg.rpc_max_connections, 0);
	setenv("LUNAMATCH_RPC_MAX_CONNECTIONS", "2", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a1, err), LM_OK);
	assert_int_equal(cfg.rpc_max_connections, 2);
	const char *bad[] = {"-1", "65537", "many", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("LUNAMATCH_RPC_MAX_CONNECTIONS", bad[i], 1);
		err[0] = '\0';
		if (load(&cfg, LM_PROG_MATCH, 1, a1, err) != LM_EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(strstr(err, "LUNAMATCH_RPC_MAX_CONNECTIONS"));
	}
	unsetenv("LUNAMATCH_RPC_MAX_CONNECTIONS");
	char *a2[] = {"prog", "--rpc-max-connections=2", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a2, err), LM_OK);
	assert_int_equal(cfg.rpc_max_connections, 2);
	assert_int_equal(cfg.rpc_max_per_peer, 1024);
	char *a3[] = {"prog", "--rpc-max-connections", "65536", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a3, err), LM_OK);
	assert_int_equal(cfg.rpc_max_connections, 65536);
	/* Not an option of ingest. */
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 3, a3, err), LM_EINVAL);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	lm_config_usage(f, LM_PROG_MATCH);
	fclose(f);
	assert_non_null(strstr(buf, "--rpc-max-connections "));
	assert_non_null(strstr(buf, "LUNAMATCH_RPC_MAX_CONNECTIONS,"));
	free(buf);
}

/* The services take long options spelled out only: getopt_long took an
 * unambiguous prefix as the option it begins, so a flag that does not
 * exist could set another one. The refusal names the option as written
 * and the full name. The CLI keeps GNU prefixes (docs/cli.md). */
static void
test_services_refuse_abbreviations(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";

	char *a1[] = {"prog", "--work", "4", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "--work "));
	assert_non_null(strstr(err, "--workers"));
	char *a2[] = {"prog", "--workers", "4", "--rpc-max-connections-per=2", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 4, a2, err), LM_EINVAL);
	assert_non_null(strstr(err, "--rpc-max-connections-per "));
	assert_non_null(strstr(err, "--rpc-max-connections-per-peer"));
	char *a3[] = {"prog", "--batch-ma=10", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 2, a3, err), LM_EINVAL);
	assert_non_null(strstr(err, "--batch-max"));
	char *a4[] = {"prog", "--hel", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 2, a4, err), LM_EINVAL);
	assert_false(cfg.help);
	char *a5[] = {"prog", "--vers", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a5, err), LM_EINVAL);
	/* Spelled out, with the value after '=' or as the next argument. */
	char *a6[] = {"prog", "--workers=4", "--batch-max", "10", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 2, a6, err), LM_OK);
	assert_int_equal(cfg.workers, 4);
	char *a7[] = {"prog", "--batch-max", "10", "--help", NULL};
	assert_int_equal(load(&cfg, LM_PROG_INGEST, 4, a7, err), LM_OK);
	assert_int_equal(cfg.batch_max, 10);
	assert_true(cfg.help);
	/* The CLI takes prefixes. */
	char *a8[] = {"prog", "--data", "/tmp/x", "--js", "store", NULL};
	assert_int_equal(load(&cfg, LM_PROG_CLI, 5, a8, err), LM_OK);
	assert_string_equal(cfg.data_dir, "/tmp/x");
	assert_true(cfg.json);
	assert_int_equal(cfg.argi, 4);
}

/* A flag wins over its variable even when the variable's value is bad:
 * the bad value is not read. A bad variable whose option no flag sets
 * still fails, naming the variable. */
static void
test_flag_excuses_bad_env(void **state)
{
	(void) state;
	lm_config cfg;
	char err[256] = "";

	setenv("LUNAMATCH_WORKERS", "abc", 1);
	char *a1[] = {"prog", "--workers", "4", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a1, err), LM_OK);
	assert_int_equal(cfg.workers, 4);
	char *a2[] = {"prog", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a2, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_WORKERS"));
	/* A flag of another option does not excuse it. */
	char *a3[] = {"prog", "--poll-ms", "500", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a3, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_WORKERS"));
	/* With two bad variables, the one without a flag is named. */
	setenv("LUNAMATCH_POLL_MS", "1", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 3, a1, err), LM_EINVAL);
	assert_non_null(strstr(err, "LUNAMATCH_POLL_MS"));
	char *a4[] = {"prog", "--workers", "4", "--poll-ms", "500", NULL};
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 5, a4, err), LM_OK);
	assert_int_equal(cfg.poll_ms, 500);
	unsetenv("LUNAMATCH_POLL_MS");
	/* A good variable still counts when no flag sets it. */
	setenv("LUNAMATCH_WORKERS", "8", 1);
	assert_int_equal(load(&cfg, LM_PROG_MATCH, 1, a2, err), LM_OK);
	assert_int_equal(cfg.workers, 8);
	unsetenv("LUNAMATCH_WORKERS");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_env_then_flags),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_number_syntax),
	    cmocka_unit_test(test_unknown_option_messages),
	    cmocka_unit_test(test_data_file),
	    cmocka_unit_test(test_match_distinct),
	    cmocka_unit_test(test_empty_group_ids),
	    cmocka_unit_test(test_receive_budget_holds_a_request),
	    cmocka_unit_test(test_topic_names),
	    cmocka_unit_test(test_listen_urls),
	    cmocka_unit_test(test_http_addr),
	    cmocka_unit_test(test_broker_list),
	    cmocka_unit_test(test_errors_escape_values),
	    cmocka_unit_test(test_help),
	    cmocka_unit_test(test_flag_enumeration),
	    cmocka_unit_test(test_rpc_max_connection_age),
	    cmocka_unit_test(test_rpc_send_timeout),
	    cmocka_unit_test(test_rpc_max_connections),
	    cmocka_unit_test(test_services_refuse_abbreviations),
	    cmocka_unit_test(test_flag_excuses_bad_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
