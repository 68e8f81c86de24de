/*
 * test_cli.c - the `lunamatch` command-line tool, ingest side, run as a real
 * process against lunamatch-devkafka and real LMDB stores.
 *
 * produce: the sample postings and profiles go to their topics as protobuf
 * and as JSON; the test reads the topics back with librdkafka and checks
 * counts, keys, content-type headers and that every payload decodes to the
 * same record as the sample line. Undecodable lines, JSON arrays, standard
 * input, missing files and an unreachable broker (exit 3) are covered too,
 * and --raw, which sends every line as written, invalid ones included.
 * store: get, list and stats against a store the test fills with lm_store_*.
 * dlq tail: crafted dead-letter messages with the headers ingest writes,
 * one-shot and --follow. Plus usage errors (exit 2) and --help everywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/json.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/records.pb-c.h"
#include "proc.h"
#include "records.h"

#define RUN_MS         60000 /* longest run of one lunamatch command */
#define IO_MS          30000 /* longest wait for messages to come back */
#define MAX_RECORDS    256
#define TOPIC_POSTINGS "lunamatch.postings.v1"
#define TOPIC_PROFILES "lunamatch.profiles.v1"
#define TOPIC_DLQ      "lunamatch.ingest.dlq.v1"
#define PARTITIONS     2

static struct {
	lmt_broker b;
	char env_brokers[540];
	char *tmp;
	int serial;
} E;

/* ---- running the tool ------------------------------------------------- */

/* Runs argv (argv[0] is the program) to completion with LUNAMATCH_BROKERS
 * pointing at devkafka; captures both outputs. */
static lmt_run_result
run_argv(const char *const argv[])
{
	const char *env[] = {E.env_brokers, NULL};
	char errpath[4200];

	snprintf(errpath, sizeof(errpath), "%s/stderr.%d", E.tmp, E.serial++);
	return lmt_run(argv, env, errpath, RUN_MS);
}

/* Runs lunamatch with up to 15 arguments (NULL-terminated). */
#define CLI(...) run_cli((const char *const[]){__VA_ARGS__, NULL})
static lmt_run_result
run_cli(const char *const args[])
{
	const char *argv[17];
	int i = 0;

	argv[0] = lmt_bin("lunamatch");
	for (; args[i] != NULL; i++) {
		assert_true(i < 15);
		argv[i + 1] = args[i];
	}
	argv[i + 1] = NULL;
	return run_argv(argv);
}

static void
expect_status(const lmt_run_result *r, int status)
{
	if (r->status != status)
		fail_msg("exit %d, expected %d\nstdout: %s\nstderr: %s", r->status,
		    status, r->out, r->err);
}

/* ---- Kafka helpers ---------------------------------------------------- */

/* A consumer in a group of its own that reports the end of each
 * partition. */
static rd_kafka_t *
new_consumer(void)
{
	char group[128];

	snprintf(group, sizeof(group), "lmtest-cli-%ld-%d", (long) getpid(), E.serial++);
	return lmt_kafka_consumer(E.b.brokers, "lmtest-cli", group,
	    (const char *const[]){"enable.partition.eof", "true", NULL});
}

/* The end offsets of every partition of topic. */
static void
high_marks(const char *topic, int64_t hi[PARTITIONS])
{
	lmt_producer *rk = lmt_producer_new(E.b.brokers, "lmtest-cli", NULL);
	for (int p = 0; p < PARTITIONS; p++) {
		int64_t lo = 0;
		assert_int_equal(rd_kafka_query_watermark_offsets(
		                     rk->rk, topic, p, &lo, &hi[p], IO_MS),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	lmt_producer_free(rk);
}

/* A consumed message, copied: librdkafka messages must all be destroyed
 * before their consumer is. */
struct msg {
	char *key; /* NULL for a message without a key */
	size_t key_len;
	char *payload;
	size_t len;
	char *content_type; /* header value, or NULL */
};

static void
msg_free(struct msg *m)
{
	free(m->key);
	free(m->payload);
	free(m->content_type);
}

/* Reads every message of topic from the offsets in from[] to the end of each
 * partition; copies at most max of them to out (free each with msg_free).
 * Returns how many were read. */
static int
read_topic(const char *topic, const int64_t from[PARTITIONS], struct msg *out, int max)
{
	rd_kafka_t *c = new_consumer();
	bool eof[PARTITIONS] = {false};
	int neof = 0, n = 0;
	time_t end = time(NULL) + IO_MS / 1000;

	lmt_kafka_assign(c, topic, PARTITIONS, from);
	while (neof < PARTITIONS && time(NULL) < end) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (!eof[m->partition]) {
				eof[m->partition] = true;
				neof++;
			}
			rd_kafka_message_destroy(m);
		} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fail_msg("consume: %s", rd_kafka_message_errstr(m));
		} else {
			assert_true(n < max);
			out[n].key = m->key ? strndup(m->key, m->key_len) : NULL;
			out[n].key_len = m->key_len;
			out[n].payload = malloc(m->len + 1);
			memcpy(out[n].payload, m->payload, m->len);
			out[n].len = m->len;
			out[n].content_type = lmt_kafka_header(m, "content-type", NULL);
			n++;
			rd_kafka_message_destroy(m);
		}
	}
	assert_int_equal(neof, PARTITIONS);
	lmt_kafka_consumer_free(c);
	return n;
}

/* The messages of topic produced since from[]; each freed. */
static int
count_since(const char *topic, const int64_t from[PARTITIONS])
{
	struct msg msgs[16];
	int n = read_topic(topic, from, msgs, 16);

	for (int i = 0; i < n; i++)
		msg_free(&msgs[i]);
	return n;
}

/* ---- sample records --------------------------------------------------- */

struct sample {
	char id[LM_STORE_ID_MAX + 1];
	char *json; /* canonical JSON of the decoded record */
	bool seen;
};

struct samples {
	struct sample *s;
	int n, max;
};

/* lmt_jsonl_fn: keeps the id and the canonical JSON of a record. */
static void
keep_sample(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	struct samples *ss = arg;
	struct sample *s = &ss->s[ss->n];
	(void) no;
	(void) line;
	(void) len;

	assert_true(ss->n < ss->max);
	snprintf(s->id, sizeof(s->id), "%s", lmt_record_id(m));
	assert_int_equal(lm_json_encode(m, 0, &s->json), LM_OK);
	s->seen = false;
	protobuf_c_message_free_unpacked(m, NULL);
	ss->n++;
}

/* Decodes every line of a sample file; returns the count. */
static int
load_samples(
    const char *rel, const ProtobufCMessageDescriptor *d, struct sample *s, int max)
{
	struct samples ss = {s, 0, max};
	lmt_jsonl_foreach(rel, d, keep_sample, &ss);
	return ss.n;
}

static void
free_samples(struct sample *s, int n)
{
	for (int i = 0; i < n; i++)
		free(s[i].json);
}

/*
 * Produces a sample file with the tool and checks what reached the topic:
 * one message per record, keyed by its id, with the content-type header
 * exactly when as_json, decoding to the same record.
 */
static void
produce_and_check(const char *kind, const char *rel, const char *topic,
    const ProtobufCMessageDescriptor *d, bool as_json)
{
	struct sample *s = calloc(MAX_RECORDS, sizeof(*s));
	struct msg *msgs = calloc(MAX_RECORDS, sizeof(*msgs));
	int64_t from[PARTITIONS];
	char want[128], err[512];
	lmt_run_result r;
	int ns, nm;

	ns = load_samples(rel, d, s, MAX_RECORDS);
	assert_true(ns > 10);
	high_marks(topic, from);
	if (as_json) /* global flags after the command, JSON summary */
		r = CLI("produce", kind, lmt_src(rel), "--as-json", "--brokers",
		    E.b.brokers, "--json");
	else /* global flags before the command */
		r = CLI("--brokers", E.b.brokers, "produce", kind, lmt_src(rel));
	expect_status(&r, 0);
	if (as_json) {
		json_error_t je;
		json_t *o = json_loads(r.out, 0, &je);
		assert_non_null(o);
		assert_int_equal(json_integer_value(json_object_get(o, "sent")), ns);
		assert_int_equal(json_integer_value(json_object_get(o, "failed")), 0);
		assert_int_equal(json_integer_value(json_object_get(o, "skipped")), 0);
		assert_string_equal(
		    json_string_value(json_object_get(o, "format")), "json");
		assert_string_equal(
		    json_string_value(json_object_get(o, "topic")), topic);
		json_decref(o);
	} else {
		snprintf(want, sizeof(want), "sent %d, failed 0, skipped 0\n", ns);
		assert_string_equal(r.out, want);
	}
	lmt_run_result_free(&r);

	nm = read_topic(topic, from, msgs, MAX_RECORDS);
	assert_int_equal(nm, ns);
	for (int i = 0; i < nm; i++) {
		struct msg *m = &msgs[i];
		ProtobufCMessage *rec = NULL;
		char *ct = m->content_type, *json = NULL;
		int k;

		if (as_json) {
			assert_non_null(ct);
			assert_string_equal(ct, "application/json");
			assert_int_equal(
			    lm_json_decode(d, m->payload, m->len, &rec, err, sizeof(err)),
			    LM_OK);
		} else {
			assert_null(ct);
			assert_int_equal(lm_pb_decode(d, m->payload, m->len, m->len, &rec,
			                     err, sizeof(err)),
			    LM_OK);
		}
		assert_non_null(m->key);
		for (k = 0; k < ns; k++)
			if (strlen(s[k].id) == m->key_len &&
			    memcmp(s[k].id, m->key, m->key_len) == 0)
				break;
		assert_true(k < ns);
		assert_false(s[k].seen);
		s[k].seen = true;
		assert_int_equal(lm_json_encode(rec, 0, &json), LM_OK);
		assert_string_equal(json, s[k].json);
		free(json);
		protobuf_c_message_free_unpacked(rec, NULL);
		msg_free(m);
	}
	free(msgs);
	free_samples(s, ns);
	free(s);
}

/* ---- setup ------------------------------------------------------------ */

static int
group_setup(void **state)
{
	(void) state;

	if (lmt_devkafka_start(&E.b, PARTITIONS, NULL) != LM_OK)
		return -1;
	snprintf(
	    E.env_brokers, sizeof(E.env_brokers), "LUNAMATCH_BROKERS=%s", E.b.brokers);
	E.tmp = lmt_tmpdir("cli");
	return 0;
}

static int
group_teardown(void **state)
{
	(void) state;
	lmt_broker_close(&E.b);
	lmt_rmtree(E.tmp);
	free(E.tmp);
	return 0;
}

/* Writes text to a file in the test's directory; returns its malloc'd path. */
static char *
write_file(const char *name, const char *text)
{
	char *path = strdup(lmt_write_file(E.tmp, name, text, strlen(text)));
	assert_non_null(path);
	return path;
}

/* Line n (1-based) of a sample file, malloc'd, without the newline. */
static char *
sample_line(const char *rel, int n)
{
	char *text = lmt_read_file(lmt_src(rel), NULL), *p = text, *e, *line;

	assert_non_null(text);
	for (int i = 1; i < n; i++) {
		assert_non_null(p = strchr(p, '\n'));
		p++;
	}
	e = strchr(p, '\n');
	line = strndup(p, e ? (size_t) (e - p) : strlen(p));
	free(text);
	return line;
}

/* ---- tests: help and usage -------------------------------------------- */

static void
test_help(void **state)
{
	lmt_run_result r;
	(void) state;

	r = CLI("--help");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "produce"));
	assert_non_null(strstr(r.out, "store"));
	assert_non_null(strstr(r.out, "dlq"));
	assert_non_null(strstr(r.out, "--brokers"));
	lmt_run_result_free(&r);

	const char *const cmds[][3] = {
	    {"help", "produce", "--as-json"},
	    {"produce", "--help", "--as-json"},
	    {"produce", "--help", "--raw"},
	    {"store", "--help", "store list"},
	    {"help", "store", "--limit"},
	    {"dlq", "--help", "--follow"},
	    {"dlq", "-h", "--from-beginning"},
	    {"--help", "dlq", "--count"},
	    {"help", "help", "show the usage of a command"},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		r = CLI(cmds[i][0], cmds[i][1]);
		expect_status(&r, 0);
		if (strstr(r.out, cmds[i][2]) == NULL)
			fail_msg("%s %s: no \"%s\" in: %s", cmds[i][0], cmds[i][1],
			    cmds[i][2], r.out);
		lmt_run_result_free(&r);
	}
	/* --help anywhere among a command's arguments. */
	r = CLI("store", "get", "posting", "x", "--help");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "Usage:"));
	lmt_run_result_free(&r);

	r = CLI("--version");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "lunamatch "));
	lmt_run_result_free(&r);
}

static void
test_usage_errors(void **state)
{
	(void) state;
	const char *const cases[][6] = {
	    {NULL},
	    {"nope"},
	    {"help", "nope"},
	    {"--bogus"},
	    {"--brokers"},
	    {"produce"},
	    {"produce", "postings"},
	    {"produce", "jobs", "file"},
	    {"produce", "postings", "file", "extra"},
	    {"produce", "postings", "file", "--timeout-ms", "0"},
	    {"produce", "postings", "file", "--bogus"},
	    {"produce", "postings", "file", "--topic"},
	    {"store"},
	    {"store", "get", "posting"},
	    {"store", "get", "job", "x"},
	    {"store", "frob"},
	    {"store", "list", "postings", "--limit", "0"},
	    {"store", "list", "postings", "--limit", "x"},
	    {"store", "stats", "--limit", "3"},
	    {"store", "stats", "extra"},
	    {"dlq"},
	    {"dlq", "head"},
	    {"dlq", "tail", "-n", "0"},
	    {"dlq", "tail", "--count", "-3"},
	    {"dlq", "tail", "-x"},
	    {"dlq", "tail", "--log-level", "loud"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[8] = {lmt_bin("lunamatch")};
		int n = 1;
		for (int j = 0; j < 6 && cases[i][j] != NULL; j++)
			argv[n++] = cases[i][j];
		argv[n] = NULL;
		lmt_run_result r = run_argv(argv);
		if (r.status != 2)
			fail_msg("case %zu (%s %s): exit %d, expected 2; stderr: %s", i,
			    cases[i][0] ? cases[i][0] : "",
			    cases[i][0] && cases[i][1] ? cases[i][1] : "", r.status,
			    r.err);
		assert_true(strlen(r.err) > 0);
		assert_string_equal(r.out, "");
		lmt_run_result_free(&r);
	}
	/* A short option's empty value is the value, not a reason to take the
	 * next argument ("--" once) as it. */
	lmt_run_result r = CLI("dlq", "tail", "-n", "");
	assert_int_equal(r.status, 2);
	if (strstr(r.err, "\"\" is not a number") == NULL)
		fail_msg("stderr: %s", r.err);
	lmt_run_result_free(&r);
	/* A value given to an option that takes none, global or the
	 * command's own, is named as such (it was reported as an unknown
	 * option with a made-up letter). */
	const char *const novalue[][5] = {
	    {"store", "--json=1", "stats", NULL, "option --json takes no value"},
	    {"produce", "postings", "f", "--raw=yes", "option --raw takes no value"},
	};
	for (size_t i = 0; i < sizeof(novalue) / sizeof(novalue[0]); i++) {
		const char *argv[] = {lmt_bin("lunamatch"), novalue[i][0], novalue[i][1],
		    novalue[i][2], novalue[i][3], NULL};
		r = run_argv(argv);
		expect_status(&r, 2);
		if (strstr(r.err, novalue[i][4]) == NULL)
			fail_msg(
			    "case %zu: stderr lacks \"%s\": %s", i, novalue[i][4], r.err);
		lmt_run_result_free(&r);
	}
	/* A prefix of several long options, global or the command's own, is
	 * named ambiguous with the options it could be (it was reported as
	 * unknown, though --to is the start of --top); a prefix of one is
	 * that option, and a name no option starts with stays unknown. */
	const char *const prefixes[][7] = {
	    {"match", "jobs", "--candidate", "X", "--to", "2",
	        "ambiguous option --to (--top, --topic-postings, --topic-profiles, "
	        "--topic-matches, --topic-dlq)"},
	    {"store", "stats", "--topic=t", NULL, NULL, NULL,
	        "ambiguous option --topic (--topic-postings, --topic-profiles, "
	        "--topic-matches, --topic-dlq)\n"},
	    {"match", "jobs", "--candidate", "X", "--tozz", "2",
	        "unknown option --tozz\n"},
	    {"store", "stats", "--lim", "3", NULL, NULL,
	        "--limit applies to store list only"},
	};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		const char *argv[8] = {lmt_bin("lunamatch")};
		int n = 1;
		for (int j = 0; j < 6 && prefixes[i][j] != NULL; j++)
			argv[n++] = prefixes[i][j];
		argv[n] = NULL;
		r = run_argv(argv);
		expect_status(&r, 2);
		if (strstr(r.err, prefixes[i][6]) == NULL)
			fail_msg("case %zu: stderr lacks \"%s\": %s", i, prefixes[i][6],
			    r.err);
		assert_string_equal(r.out, "");
		lmt_run_result_free(&r);
	}
}

/* ---- tests: produce --------------------------------------------------- */

static void
test_produce_protobuf(void **state)
{
	(void) state;
	produce_and_check("postings", "data/samples/postings.jsonl", TOPIC_POSTINGS,
	    &lunamatch__v1__job_posting__descriptor, false);
	produce_and_check("profiles", "data/samples/profiles.jsonl", TOPIC_PROFILES,
	    &lunamatch__v1__candidate_profile__descriptor, false);
}

static void
test_produce_json(void **state)
{
	(void) state;
	produce_and_check("postings", "data/samples/postings.jsonl", TOPIC_POSTINGS,
	    &lunamatch__v1__job_posting__descriptor, true);
	produce_and_check("profiles", "data/samples/profiles.jsonl", TOPIC_PROFILES,
	    &lunamatch__v1__candidate_profile__descriptor, true);
}

/* Undecodable lines are named, skipped and counted; the rest are sent. */
static void
test_produce_bad_lines(void **state)
{
	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char *l2 = sample_line("data/samples/postings.jsonl", 2);
	char text[200000];
	int64_t from[PARTITIONS];
	struct msg msgs[8];
	(void) state;

	/* line 1 ok, 2 not JSON, 3 blank, 4 unknown field, 5 ok,
	 * 6 decodes without an id: sent without a key. */
	snprintf(text, sizeof(text),
	    "%s\n{not json\n\n{\"id\":\"job-x\",\"bogus_field\":1}\n  %s  "
	    "\n{\"title\":\"No id\"}\n",
	    l1, l2);
	char *path = write_file("bad.jsonl", text);
	high_marks(TOPIC_POSTINGS, from);
	lmt_run_result r = CLI("produce", "postings", path);
	expect_status(&r, 1);
	assert_string_equal(r.out, "sent 3, failed 0, skipped 2\n");
	assert_non_null(strstr(r.err, "line 2:"));
	assert_non_null(strstr(r.err, "line 4:"));
	assert_non_null(strstr(r.err, "bogus_field"));
	assert_null(strstr(r.err, "line 1:"));
	assert_null(strstr(r.err, "line 5:"));
	lmt_run_result_free(&r);

	int n = read_topic(TOPIC_POSTINGS, from, msgs, 8);
	assert_int_equal(n, 3);
	int keyless = 0;
	for (int i = 0; i < n; i++) {
		if (msgs[i].key == NULL)
			keyless++;
		msg_free(&msgs[i]);
	}
	assert_int_equal(keyless, 1);

	/* --json lists the skipped records by line. */
	r = CLI("produce", "postings", path, "--json");
	expect_status(&r, 1);
	json_error_t je;
	json_t *o = json_loads(r.out, 0, &je);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "skipped")), 2);
	json_t *errs = json_object_get(o, "errors");
	assert_int_equal(json_array_size(errs), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(errs, 0), "line")), 2);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(errs, 1), "line")), 4);
	json_decref(o);
	lmt_run_result_free(&r);
	free(path);
	free(l1);
	free(l2);
}

/* A JSON array file, and standard input. */
static void
test_produce_array_and_stdin(void **state)
{
	char *l1 = sample_line("data/samples/profiles.jsonl", 1);
	char *l2 = sample_line("data/samples/profiles.jsonl", 2);
	char text[200000];
	(void) state;

	snprintf(
	    text, sizeof(text), "  \n[%s,\n %s,\n 42,\n {\"headline\": 7}]\n", l1, l2);
	char *path = write_file("array.json", text);
	lmt_run_result r = CLI("produce", "profiles", path);
	expect_status(&r, 1);
	assert_string_equal(r.out, "sent 2, failed 0, skipped 2\n");
	assert_non_null(strstr(r.err, "index 2:"));
	assert_non_null(strstr(r.err, "index 3:"));
	assert_non_null(strstr(r.err, "headline"));
	lmt_run_result_free(&r);

	/* An element that is JSON but not one that decodes (a repeated key, an
	 * integer beyond 64 bits, a \u0000) is that element's error only. */
	snprintf(text, sizeof(text),
	    "[%s, {\"id\":\"a\",\"id\":\"b\"}, {\"years_experience\":"
	    "99999999999999999999}, {\"id\":\"x\\u0000\"}]",
	    l1);
	char *odd = write_file("odd.json", text);
	r = CLI("produce", "profiles", odd);
	expect_status(&r, 1);
	assert_string_equal(r.out, "sent 1, failed 0, skipped 3\n");
	assert_null(strstr(r.err, "not a valid JSON array"));
	assert_non_null(strstr(r.err, "index 1:"));
	lmt_run_result_free(&r);

	/* Not an array after all. */
	char *broken = write_file("broken.json", "[{\"id\":\"a\"},");
	r = CLI("produce", "profiles", broken);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "not a valid JSON array"));
	lmt_run_result_free(&r);
	/* With --json the report says so too: one error, without an index. */
	r = CLI("produce", "profiles", broken, "--json");
	expect_status(&r, 1);
	json_error_t je;
	json_t *o = json_loads(r.out, 0, &je);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "sent")), 0);
	json_t *errs = json_object_get(o, "errors");
	assert_int_equal(json_array_size(errs), 1);
	assert_null(json_object_get(json_array_get(errs, 0), "index"));
	assert_non_null(
	    strstr(json_string_value(json_object_get(json_array_get(errs, 0), "error")),
	        "not a valid JSON array"));
	json_decref(o);
	lmt_run_result_free(&r);

	snprintf(text, sizeof(text), "%s\n%s\n", l1, l2);
	char *lines = write_file("two.jsonl", text);
	const char *sh[] = {"/bin/sh", "-c", "exec \"$0\" produce profiles - < \"$1\"",
	    lmt_bin("lunamatch"), lines, NULL};
	r = run_argv(sh);
	expect_status(&r, 0);
	assert_string_equal(r.out, "sent 2, failed 0, skipped 0\n");
	lmt_run_result_free(&r);
	free(path);
	free(odd);
	free(broken);
	free(lines);
	free(l1);
	free(l2);
}

/* Bytes of the array of tiny elements below, and the most memory produce
 * may take for it (kilobytes of resident memory). The whole array parsed
 * at once took 48 times the file (about 1.5 GB; under AddressSanitizer
 * twice that), so that a 256 MiB file, which the limits accept, needed
 * 12 GB. */
#define TINY_ARRAY_BYTES (32u << 20)
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer's shadow and quarantine: about 800 MB read one element at
 * a time, 3 GB parsed at once. */
#define TINY_ARRAY_RSS_KB (1536u << 10)
#else
#define TINY_ARRAY_RSS_KB (512u << 10)
#endif

/* A JSON array is read one element at a time: its memory is the file's
 * bytes and one element, not a parsed tree of the whole array. An array
 * that is not valid JSON is refused before anything is sent, naming the
 * line. */
static void
test_produce_array_memory(void **state)
{
	size_t n = TINY_ARRAY_BYTES / 3;
	char *text = malloc(n * 3 + 2), *p = text;
	char want[128];
	(void) state;

	assert_non_null(text);
	*p++ = '[';
	for (size_t i = 0; i < n; i++) {
		memcpy(p, i + 1 < n ? "[]," : "[]]", 3);
		p += 3;
	}
	*p++ = '\n';
	char *path =
	    strdup(lmt_write_file(E.tmp, "tiny.json", text, (size_t) (p - text)));
	free(text);
	lmt_run_result r = CLI("produce", "postings", path);
	expect_status(&r, 1);
	snprintf(want, sizeof(want), "sent 0, failed 0, skipped %zu\n", n);
	assert_string_equal(r.out, want);
	if ((unsigned long) r.maxrss_kb > TINY_ARRAY_RSS_KB)
		fail_msg("produce of a %u MiB array took %ld kB of memory",
		    TINY_ARRAY_BYTES >> 20, r.maxrss_kb);
	lmt_run_result_free(&r);
	unlink(path);
	free(path);

	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char buf[200000];
	int64_t from[PARTITIONS];
	/* Around a valid record: what follows it, and where the error is. */
	const char *const broken[][2] = {
	    {",\n {\"id\": 1 2}\n]\n", "line 2"},
	    {",\n\n 42 ] x\n", "line 3"},
	    {",\n 42,\n", "line 3"},
	    {",\n 42,\n ]\n", "line 3"},
	    {"\n \"a\\\"]\" ]\n", "line 2"},
	};
	high_marks(TOPIC_POSTINGS, from);
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		snprintf(buf, sizeof(buf), "[ %s%s", l1, broken[i][0]);
		path = write_file("broken-array.json", buf);
		r = CLI("produce", "postings", path);
		expect_status(&r, 1);
		assert_string_equal(r.out, "sent 0, failed 0, skipped 0\n");
		if (strstr(r.err, "not a valid JSON array") == NULL ||
		    strstr(r.err, broken[i][1]) == NULL)
			fail_msg("case %zu: stderr: %s", i, r.err);
		lmt_run_result_free(&r);
		free(path);
	}
	assert_int_equal(count_since(TOPIC_POSTINGS, from), 0);
	free(l1);
}

/* Bytes of "[]," in the record below: under 1 MiB, but about 40 MB parsed
 * (some 45 times its size), over the 16 times that produce's parse of a
 * record may take. */
#define MANY_VALUES_BYTES (900u << 10)

/* A record of many tiny values (under 1 MiB) is parsed within a memory
 * limit, as a record line's decode is: a --raw line, or an array element
 * with or without --raw, that would take more is skipped and named. Their
 * parse took what it needed, and --raw sent them. */
static void
test_produce_parse_memory(void **state)
{
	size_t n = MANY_VALUES_BYTES / 3;
	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char *big = malloc(n * 3 + 64), *p = big;
	char *text = malloc(n * 3 + 200000);
	(void) state;

	assert_non_null(big);
	assert_non_null(text);
	p += sprintf(p, "{\"id\":\"job-many\",\"pad\":[");
	for (size_t i = 0; i < n; i++) {
		memcpy(p, i + 1 < n ? "[]," : "[]]", 3);
		p += 3;
	}
	strcpy(p, "}");

	sprintf(text, "%s\n%s\n", l1, big);
	char *lines = write_file("many.jsonl", text);
	sprintf(text, "[%s,\n%s]\n", l1, big);
	char *arr = write_file("many.json", text);
	const struct {
		const char *path, *raw, *want;
	} cases[] = {
	    {lines, "--raw", "line 2: too large: parsing the line would take more than"},
	    {arr, "--raw",
	        "index 1: too large: parsing the element would take more than"},
	    {arr, "--as-json",
	        "index 1: too large: parsing the element would take more than"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		lmt_run_result r =
		    CLI("produce", "postings", cases[i].path, cases[i].raw);
		expect_status(&r, 1);
		assert_string_equal(r.out, "sent 1, failed 0, skipped 1\n");
		if (strstr(r.err, cases[i].want) == NULL)
			fail_msg("case %zu: stderr: %s", i, r.err);
		lmt_run_result_free(&r);
	}
	free(lines);
	free(arr);
	free(text);
	free(big);
	free(l1);
}

static void
test_produce_failures(void **state)
{
	(void) state;
	lmt_run_result r = CLI("produce", "postings", "/nonexistent/file.jsonl");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "cannot open"));
	lmt_run_result_free(&r);

	r = CLI("produce", "postings", lmt_src("data/samples/postings.jsonl"), "--topic",
	    "lmtest.no-such-topic");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "does not exist"));
	lmt_run_result_free(&r);

	/* A --topic Kafka does not allow is a usage error, as the global
	 * --topic-* flags are: it was looked up and reported as Kafka being
	 * unreachable (exit 3, which asks for a retry). */
	const char *const bad_topics[] = {"bad topic!", "..", "a/b"};
	for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++) {
		r = CLI("produce", "postings", lmt_src("data/samples/postings.jsonl"),
		    "--topic", bad_topics[i], "--timeout-ms", "3000");
		expect_status(&r, 2);
		assert_non_null(strstr(r.err, "not a Kafka topic name"));
		assert_null(strstr(r.err, "cannot reach Kafka"));
		assert_string_equal(r.out, "");
		lmt_run_result_free(&r);
	}

	/* Nothing listens on port 1 of the loopback address. */
	r = CLI("produce", "postings", lmt_src("data/samples/postings.jsonl"),
	    "--brokers", "127.0.0.1:1", "--timeout-ms", "1500");
	expect_status(&r, 3);
	assert_non_null(strstr(r.err, "cannot reach Kafka"));
	lmt_run_result_free(&r);

	/* watch's --timeout-ms bounds the wait for the broker too (it waited
	 * its 10 s connect limit whatever the timeout). */
	int64_t t0 = lm_clock_ms();
	r = CLI("--brokers", "127.0.0.1:1", "watch", "--timeout-ms", "1000");
	expect_status(&r, 3);
	assert_non_null(strstr(r.err, "cannot reach Kafka"));
	assert_true(lm_clock_ms() - t0 < 5000);
	lmt_run_result_free(&r);
}

/* Key bytes of a --raw record that librdkafka refuses at once (key and
 * value over produce's message.max.bytes): a record never queued. */
#define HUGE_KEY_BYTES (700u << 10)

/*
 * Delivery reports are waited for until every queued record has one: a
 * record that could not be queued at all (here one librdkafka refuses for
 * its size, skipped as too large: the input's fault, not a failed
 * delivery) must not stand for a report still to come. Produce requests
 * answered only after the time limit leave the queued records in flight,
 * purged at the end of the wait; their reports were cut short by the
 * refused record's count and the summary did not add up (read 2, sent 0,
 * failed 1).
 */
static void
test_produce_wait_counts(void **state)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *mrk;
	rd_kafka_mock_cluster_t *mc;
	char err[256];
	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char *text = malloc(HUGE_KEY_BYTES + 200000), *p = text;
	(void) state;

	assert_non_null(text);
	assert_int_equal(
	    lm_kafka_conf(NULL, "lmtest-mock", &conf, err, sizeof(err)), LM_OK);
	assert_non_null(mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
	assert_non_null(mc = rd_kafka_mock_cluster_new(mrk, 1));
	assert_int_equal(lmt_mock_topic_create(mc, TOPIC_POSTINGS, 1), 0);
	/* The first produce requests are answered after 30 s. */
	assert_int_equal(
	    rd_kafka_mock_broker_push_request_error_rtts(mc, 1, 0, 4,
	        RD_KAFKA_RESP_ERR_NO_ERROR, 30000, RD_KAFKA_RESP_ERR_NO_ERROR, 30000,
	        RD_KAFKA_RESP_ERR_NO_ERROR, 30000, RD_KAFKA_RESP_ERR_NO_ERROR, 30000),
	    0);

	p += sprintf(p, "%s\n{\"id\":\"", l1);
	memset(p, 'k', HUGE_KEY_BYTES);
	p += HUGE_KEY_BYTES;
	strcpy(p, "\"}\n");
	char *path = write_file("huge-key.jsonl", text);
	lmt_run_result r = CLI("produce", "postings", path, "--raw", "--json",
	    "--brokers", rd_kafka_mock_cluster_bootstraps(mc), "--timeout-ms", "1000");
	expect_status(&r, 1);
	json_t *o = json_loads(r.out, 0, NULL);
	assert_non_null(o);
	json_int_t read = json_integer_value(json_object_get(o, "read")),
	           sent = json_integer_value(json_object_get(o, "sent")),
	           failed = json_integer_value(json_object_get(o, "failed")),
	           skipped = json_integer_value(json_object_get(o, "skipped"));
	if (read != 2 || sent != 0 || failed != 1 || skipped != 1)
		fail_msg("read %lld, sent %lld, failed %lld, skipped %lld: %s",
		    (long long) read, (long long) sent, (long long) failed,
		    (long long) skipped, r.err);
	/* In flight when purged: it may be stored. */
	assert_int_equal(json_integer_value(json_object_get(o, "unconfirmed")), 1);
	assert_non_null(strstr(r.err, "line 1: not confirmed (it may have been stored)"));
	assert_non_null(
	    strstr(r.err, "line 2: too large: its key and value with their framing"));
	json_decref(o);
	lmt_run_result_free(&r);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(mrk);
	free(path);
	free(text);
	free(l1);
}

/* Starts `produce postings` reading the FIFO <tmp>/<name>.fifo (with
 * --timeout-ms tmo unless NULL), its stderr in errpath (<tmp>/<name>.err);
 * returns the FIFO's writing end, opened once the tool has opened the
 * reading end. */
static int
produce_on_fifo(
    const char *name, const char *tmo, char *errpath, size_t errlen, lmt_proc **p)
{
	char fifo[4200];
	const char *env[] = {E.env_brokers, NULL};
	int64_t deadline;
	int fd = -1;

	snprintf(fifo, sizeof(fifo), "%s/%s.fifo", E.tmp, name);
	snprintf(errpath, errlen, "%s/%s.err", E.tmp, name);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	const char *argv[] = {lmt_bin("lunamatch"), "produce", "postings", fifo,
	    tmo != NULL ? "--timeout-ms" : NULL, tmo, NULL};
	assert_int_equal(lmt_proc_start_ex(argv, env, errpath, p), LM_OK);
	deadline = lm_clock_ms() + IO_MS;
	while ((fd = open(fifo, O_WRONLY | O_NONBLOCK)) < 0 && errno == ENXIO &&
	       lm_clock_ms() < deadline)
		usleep(20000);
	assert_true(fd >= 0);
	return fd;
}

/* Sends sig to produce p and expects the counts line counts, exit 1 and an
 * "interrupted" reason (not a read error) in errpath; frees p. */
static void
expect_interrupted(lmt_proc *p, int sig, const char *counts, const char *errpath)
{
	char line[512];
	int status = -1;

	assert_int_equal(lmt_proc_signal(p, sig), LM_OK);
	if (lmt_proc_readline(p, line, sizeof(line), IO_MS) != LM_OK)
		fail_msg("no counts printed after signal %d", sig);
	assert_string_equal(line, counts);
	assert_int_equal(lmt_proc_wait(p, IO_MS, &status), LM_OK);
	assert_int_equal(status, 1);
	char *err = lmt_read_file(errpath, NULL);
	assert_non_null(err);
	if (strstr(err, "interrupted") == NULL || strstr(err, "read error") != NULL)
		fail_msg("stderr: %s", err);
	free(err);
	lmt_proc_free(p);
}

/* SIGINT (or SIGTERM) while produce reads its input stops the reading: it
 * waits for the records it handed over and prints their counts (exit 1, the
 * input was not read to its end), instead of dying with nothing said about
 * the records Kafka already acknowledged. */
static void
test_produce_interrupted(void **state)
{
	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char *l2 = sample_line("data/samples/postings.jsonl", 2);
	char errpath[4200];
	int64_t from[PARTITIONS], deadline;
	lmt_proc *p = NULL;
	int fd;
	(void) state;

	high_marks(TOPIC_POSTINGS, from);
	fd = produce_on_fifo("interrupted", NULL, errpath, sizeof(errpath), &p);
	dprintf(fd, "%s\n%s\n", l1, l2);
	/* Both delivered: Kafka has acknowledged them. */
	deadline = lm_clock_ms() + IO_MS;
	while (count_since(TOPIC_POSTINGS, from) < 2 && lm_clock_ms() < deadline)
		usleep(100000);
	assert_int_equal(count_since(TOPIC_POSTINGS, from), 2);
	expect_interrupted(p, SIGINT, "sent 2, failed 0, skipped 0", errpath);
	close(fd);
	free(l1);
	free(l2);
}

/* A signal that comes while produce waits for the first byte of its input
 * (nothing written to the pipe yet) stops it with its counts: the
 * interrupted read was taken for the end of a first line and the next read
 * waited on, until a second signal killed it with nothing printed. */
static void
test_produce_interrupted_before_input(void **state)
{
	char errpath[4200];
	lmt_proc *p = NULL;
	int fd;
	(void) state;

	fd = produce_on_fifo("waiting", NULL, errpath, sizeof(errpath), &p);
	/* The tool has opened the pipe; give it time to reach its first read
	 * (after the topic's metadata). */
	usleep(500000);
	expect_interrupted(p, SIGTERM, "sent 0, failed 0, skipped 0", errpath);
	close(fd);
}

/* A record a broker took but did not confirm in time (the broker stopped
 * with the record in flight) may be stored: it is counted failed as not
 * confirmed, not as proof that Kafka cannot be reached (exit 1, not 3). */
static void
test_produce_unconfirmed(void **state)
{
	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char *l2 = sample_line("data/samples/postings.jsonl", 2);
	char errpath[4200], line[512];
	int64_t from[PARTITIONS], deadline;
	lmt_proc *p = NULL;
	int fd, status = -1;
	(void) state;

	high_marks(TOPIC_POSTINGS, from);
	fd = produce_on_fifo("unconfirmed", "2000", errpath, sizeof(errpath), &p);
	dprintf(fd, "%s\n", l1);
	/* Delivered: the tool is connected and past its topic check. */
	deadline = lm_clock_ms() + IO_MS;
	while (count_since(TOPIC_POSTINGS, from) < 1 && lm_clock_ms() < deadline)
		usleep(20000);
	assert_int_equal(count_since(TOPIC_POSTINGS, from), 1);
	assert_int_equal(lmt_proc_signal(E.b.dk, SIGSTOP), LM_OK);
	dprintf(fd, "%s\n", l2);
	close(fd);
	int rl = lmt_proc_readline(p, line, sizeof(line), IO_MS);
	int wr = lmt_proc_wait(p, IO_MS, &status);
	assert_int_equal(lmt_proc_signal(E.b.dk, SIGCONT), LM_OK);
	assert_int_equal(rl, LM_OK);
	assert_int_equal(wr, LM_OK);
	assert_string_equal(line, "sent 1, failed 1 (1 of them not confirmed: they may "
	                          "have been stored), skipped 0");
	assert_int_equal(status, 1);
	char *err = lmt_read_file(errpath, NULL);
	assert_non_null(err);
	if (strstr(err, "may have been stored") == NULL ||
	    strstr(err, "cannot be reached") != NULL)
		fail_msg("stderr: %s", err);
	free(err);
	lmt_proc_free(p);
	free(l1);
	free(l2);
}

/* The counts are the result of produce: when they cannot be written, the
 * run fails and says so (it exited 0 with nothing printed). */
static void
test_produce_summary_unwritten(void **state)
{
	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char text[200000];
	(void) state;

	snprintf(text, sizeof(text), "%s\n", l1);
	char *path = write_file("one.jsonl", text);
	const char *const modes[] = {"--as-json", "--json"};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		const char *sh[] = {"/bin/sh", "-c",
		    "exec \"$0\" produce postings \"$1\" \"$2\" > /dev/full",
		    lmt_bin("lunamatch"), path, modes[i], NULL};
		lmt_run_result r = run_argv(sh);
		expect_status(&r, 1);
		if (strstr(r.err, "standard output") == NULL)
			fail_msg("%s: stderr: %s", modes[i], r.err);
		lmt_run_result_free(&r);
	}
	free(path);
	free(l1);
}

/* One message expected from --raw: its exact payload and key (NULL: none). */
struct raw_case {
	const char *payload;
	const char *key;
};

/* Reads the messages produced since from[] and checks that they are exactly
 * want[0..n), in any order, each with header content-type application/json. */
static void
check_raw(
    const char *topic, const int64_t from[PARTITIONS], const struct raw_case *want, int n)
{
	struct msg msgs[16];
	bool seen[16] = {false};
	int got = read_topic(topic, from, msgs, 16);

	assert_true(n <= 16);
	assert_int_equal(got, n);
	for (int i = 0; i < got; i++) {
		int j = 0;
		for (; j < n; j++)
			if (!seen[j] && strlen(want[j].payload) == msgs[i].len &&
			    memcmp(want[j].payload, msgs[i].payload, msgs[i].len) == 0)
				break;
		if (j == n)
			fail_msg("unexpected message %.*s", (int) msgs[i].len,
			    msgs[i].payload);
		seen[j] = true;
		assert_non_null(msgs[i].content_type);
		assert_string_equal(msgs[i].content_type, "application/json");
		if (want[j].key == NULL) {
			if (msgs[i].key != NULL)
				fail_msg("message %s: key %s, expected none",
				    want[j].payload, msgs[i].key);
		} else {
			assert_non_null(msgs[i].key);
			assert_string_equal(msgs[i].key, want[j].key);
		}
		msg_free(&msgs[i]);
	}
}

/* --raw sends every non-blank line as written, with no local validation,
 * keyed by the string id of a JSON object; array elements compact. */
static void
test_produce_raw(void **state)
{
	char *l1 = sample_line("data/samples/postings.jsonl", 1);
	char text[200000], id1[LM_STORE_ID_MAX + 1];
	int64_t from[PARTITIONS];
	(void) state;

	/* The sample's id, to check its key. */
	json_t *v = json_loads(l1, 0, NULL);
	assert_non_null(v);
	snprintf(id1, sizeof(id1), "%s", json_string_value(json_object_get(v, "id")));
	json_decref(v);

	/* 1 valid, 2 not JSON, 3 blank, 4 unknown field, 5 no id (surrounding
	 * blanks are not part of the record), 6 unknown enum name, 7 a number
	 * id, 8 not an object, 9 wrong type. */
	snprintf(text, sizeof(text),
	    "%s\n{not json\n\n{\"id\":\"job-x\",\"bogus_field\":1}\n"
	    "  {\"title\":\"No id\"}  \n"
	    "{\"id\":\"job-y\", \"status\": \"POSTING_STATUS_NOPE\"}\n"
	    "{\"id\":7}\n[1,2]\n{\"id\":\"job-z\",\"version\":\"one\"}\n",
	    l1);
	const struct raw_case want[] = {
	    {l1, id1},
	    {"{not json", NULL},
	    {"{\"id\":\"job-x\",\"bogus_field\":1}", "job-x"},
	    {"{\"title\":\"No id\"}", NULL},
	    {"{\"id\":\"job-y\", \"status\": \"POSTING_STATUS_NOPE\"}", "job-y"},
	    {"{\"id\":7}", NULL},
	    {"[1,2]", NULL},
	    {"{\"id\":\"job-z\",\"version\":\"one\"}", "job-z"},
	};
	char *path = write_file("raw.jsonl", text);
	high_marks(TOPIC_POSTINGS, from);
	lmt_run_result r = CLI("produce", "postings", path, "--raw");
	expect_status(&r, 0);
	assert_string_equal(r.out, "sent 8, failed 0, skipped 0\n");
	lmt_run_result_free(&r);
	check_raw(TOPIC_POSTINGS, from, want, 8);

	/* --json names the format. */
	high_marks(TOPIC_POSTINGS, from);
	r = CLI("produce", "postings", path, "--raw", "--json");
	expect_status(&r, 0);
	json_t *o = json_loads(r.out, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "format")), "raw");
	assert_int_equal(json_integer_value(json_object_get(o, "sent")), 8);
	json_decref(o);
	lmt_run_result_free(&r);
	check_raw(TOPIC_POSTINGS, from, want, 8);

	/* A JSON array: each element as its compact JSON text; one that is
	 * JSON but not one jansson holds (a repeated key) as written. */
	char *arr = write_file("raw.json",
	    "[ {\"id\": \"cand-a\",  \"bogus\": [1, 2]},\n 42,\n \"text\",\n"
	    " {\"id\":\"a\", \"id\":\"b\"} ]\n");
	const struct raw_case want_arr[] = {
	    {"{\"id\":\"cand-a\",\"bogus\":[1,2]}", "cand-a"},
	    {"42", NULL},
	    {"\"text\"", NULL},
	    {"{\"id\":\"a\", \"id\":\"b\"}", "b"},
	};
	high_marks(TOPIC_PROFILES, from);
	r = CLI("produce", "profiles", arr, "--raw");
	expect_status(&r, 0);
	assert_string_equal(r.out, "sent 4, failed 0, skipped 0\n");
	lmt_run_result_free(&r);
	check_raw(TOPIC_PROFILES, from, want_arr, 4);

	/* Kafka unreachable: exit 3 with --raw too. */
	r = CLI("produce", "postings", path, "--raw", "--brokers", "127.0.0.1:1",
	    "--timeout-ms", "1500");
	expect_status(&r, 3);
	lmt_run_result_free(&r);
	free(arr);
	free(path);
	free(l1);
}

/* ---- tests: store ----------------------------------------------------- */

static void
put_sample_version(lm_store_txn *t, lm_kind k, const char *rel, int line,
    const ProtobufCMessageDescriptor *d, uint64_t version)
{
	char *text = sample_line(rel, line), err[512];
	ProtobufCMessage *m = NULL;
	uint8_t *pb = NULL;
	size_t len;

	assert_int_equal(
	    lm_json_decode(d, text, strlen(text), &m, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(m, &pb, &len), LM_OK);
	assert_int_equal(lm_store_put(t, k, lmt_record_id(m), version, pb, len), LM_OK);
	free(pb);
	free(text);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
put_sample(lm_store_txn *t, lm_kind k, const char *rel, int line,
    const ProtobufCMessageDescriptor *d)
{
	put_sample_version(t, k, rel, line, d, 1);
}

static void
test_store(void **state)
{
	char dir[4200];
	lm_store *s = NULL;
	lm_store_txn *t = NULL;
	json_error_t je;
	json_t *o;
	(void) state;

	snprintf(dir, sizeof(dir), "%s/store", E.tmp);
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	for (int i = 1; i <= 3; i++)
		put_sample(t, LM_KIND_POSTING, "data/samples/postings.jsonl", i,
		    &lunamatch__v1__job_posting__descriptor);
	/* A version above 2^63 - 1 (line 4: job-sr-ml-eng-remote-us). */
	put_sample_version(t, LM_KIND_POSTING, "data/samples/postings.jsonl", 4,
	    &lunamatch__v1__job_posting__descriptor, UINT64_MAX - 1);
	for (int i = 1; i <= 2; i++)
		put_sample(t, LM_KIND_PROFILE, "data/samples/profiles.jsonl", i,
		    &lunamatch__v1__candidate_profile__descriptor);
	assert_int_equal(
	    lm_store_delete(t, LM_KIND_PROFILE, "cand-ml-lead-chicago", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);

	/* get: pretty JSON of the record. */
	lmt_run_result r =
	    CLI("store", "get", "posting", "job-dfs-sr-mgr-ml", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "\n  \"id\": \"job-dfs-sr-mgr-ml\""));
	assert_non_null(o = json_loads(r.out, 0, &je));
	assert_string_equal(json_string_value(json_object_get(o, "title")),
	    "Senior Manager, Machine Learning");
	assert_int_equal(json_integer_value(json_object_get(o, "version")), 1);
	json_decref(o);
	lmt_run_result_free(&r);

	/* --json before the command: one compact line. */
	r = CLI("--json", "--data-dir", dir, "store", "get", "profile",
	    "cand-ml-mgr-naperville");
	expect_status(&r, 0);
	assert_non_null(strchr(r.out, '\n'));
	assert_string_equal(strchr(r.out, '\n'), "\n");
	assert_non_null(o = json_loads(r.out, 0, &je));
	assert_string_equal(
	    json_string_value(json_object_get(o, "id")), "cand-ml-mgr-naperville");
	json_decref(o);
	lmt_run_result_free(&r);

	r = CLI("store", "get", "posting", "job-nope", "--data-dir", dir);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "no posting with id job-nope"));
	assert_string_equal(r.out, "");
	lmt_run_result_free(&r);
	/* An id no record can have is a usage error, as a too long one is. */
	r = CLI("store", "get", "posting", "job\001x", "--data-dir", dir);
	expect_status(&r, 2);
	assert_non_null(strstr(r.err, "posting: \"job?x\" is not a record id"));
	lmt_run_result_free(&r);
	/* Deleted records are gone too. */
	r = CLI("store", "get", "profile", "cand-ml-lead-chicago", "--data-dir", dir);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "no profile with id cand-ml-lead-chicago"));
	lmt_run_result_free(&r);

	/* list: a table in id order. */
	r = CLI("store", "list", "postings", "--data-dir", dir);
	expect_status(&r, 0);
	assert_true(strncmp(r.out, "ID ", 3) == 0);
	assert_non_null(strstr(r.out, "TITLE"));
	assert_non_null(strstr(r.out, "\njob-dfs-sr-mgr-ml "));
	assert_non_null(strstr(r.out, "Senior Manager, Machine Learning"));
	int rows = 0;
	for (char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
		rows++;
	assert_int_equal(rows, 5);
	assert_non_null(strstr(r.out, "18446744073709551614"));
	lmt_run_result_free(&r);

	/* --json: a version above 2^63 - 1 is a decimal string, never negative. */
	r = CLI("store", "list", "postings", "--json", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "{\"id\":\"job-sr-ml-eng-remote-us\","
	                              "\"version\":\"18446744073709551614\""));
	assert_null(strstr(r.out, "\"version\":-"));
	lmt_run_result_free(&r);

	r = CLI("store", "list", "postings", "--limit", "2", "--json", "--data-dir", dir);
	expect_status(&r, 0);
	char *save = NULL, prev[256] = "";
	int n = 0;
	for (char *line = strtok_r(r.out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), n++) {
		assert_non_null(o = json_loads(line, 0, &je));
		const char *id = json_string_value(json_object_get(o, "id"));
		assert_non_null(id);
		assert_true(strcmp(prev, id) < 0);
		snprintf(prev, sizeof(prev), "%s", id);
		assert_int_equal(json_integer_value(json_object_get(o, "version")), 1);
		assert_non_null(json_string_value(json_object_get(o, "title")));
		json_decref(o);
	}
	assert_int_equal(n, 2);
	lmt_run_result_free(&r);

	r = CLI("store", "list", "profiles", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "HEADLINE"));
	assert_non_null(strstr(r.out, "cand-ml-mgr-naperville"));
	assert_null(strstr(r.out, "cand-ml-lead-chicago"));
	lmt_run_result_free(&r);

	/* stats: table and JSON. */
	r = CLI("store", "stats", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "postings     4\n"));
	assert_non_null(strstr(r.out, "profiles     1\n"));
	assert_non_null(strstr(r.out, "tombstones   1\n"));
	lmt_run_result_free(&r);
	r = CLI("store", "stats", "--json", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(o = json_loads(r.out, 0, &je));
	assert_int_equal(json_integer_value(json_object_get(o, "postings")), 4);
	assert_int_equal(json_integer_value(json_object_get(o, "profiles")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "tombstones")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "changes")), 7);
	assert_int_equal(json_integer_value(json_object_get(o, "last_seq")), 7);
	assert_non_null(json_object_get(o, "low_water")); /* nothing trimmed: 0 */
	assert_int_equal(json_integer_value(json_object_get(o, "low_water")), 0);
	assert_true(json_integer_value(json_object_get(o, "map_size")) > 0);
	json_decref(o);
	lmt_run_result_free(&r);
	/* A "--" before the command ends the options written before it, not
	 * those after it (--data-dir was dropped); "--" as a flag's value is
	 * still the value. */
	r = CLI("--json", "--", "store", "stats", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(o = json_loads(r.out, 0, &je));
	assert_int_equal(json_integer_value(json_object_get(o, "postings")), 4);
	json_decref(o);
	lmt_run_result_free(&r);
	r = CLI("--data-dir", "--", "store", "stats");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "no record store in --"));
	lmt_run_result_free(&r);

	/* No store there. */
	char missing[4300];
	snprintf(missing, sizeof(missing), "%s/no-store", E.tmp);
	r = CLI("store", "stats", "--data-dir", missing);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "no record store"));
	lmt_run_result_free(&r);
}

/* Runs lunamatch with up to 12 arguments (NULL-terminated) and its stdout
 * on /dev/full, and asserts that it fails (exit 1) saying that it could
 * not write it. */
#define EXPECT_UNWRITTEN(...) expect_unwritten((const char *const[]){__VA_ARGS__, NULL})
static void
expect_unwritten(const char *const args[])
{
	const char *argv[17] = {
	    "/bin/sh", "-c", "exec \"$0\" \"$@\" > /dev/full", lmt_bin("lunamatch")};
	int i = 0;

	for (; args[i] != NULL; i++) {
		assert_true(i < 12);
		argv[i + 4] = args[i];
	}
	argv[i + 4] = NULL;
	lmt_run_result r = run_argv(argv);
	if (r.status != 1 || strstr(r.err, "standard output") == NULL)
		fail_msg("%s %s: exit %d, stderr: %s", args[0], args[1], r.status, r.err);
	lmt_run_result_free(&r);
}

/* store get, list and stats whose output cannot be written fail, saying
 * so: get of a record larger than stdout's buffer exited 0 (the failed
 * write left nothing for the final flush to report), get of a small one
 * and stats exited 1 without a word. */
static void
test_store_unwritten(void **state)
{
	char dir[4200], err[512], big[8001];
	char *text = sample_line("data/samples/postings.jsonl", 1);
	lm_store *s = NULL;
	lm_store_txn *t = NULL;
	ProtobufCMessage *m = NULL;
	uint8_t *pb = NULL;
	size_t len;
	(void) state;

	snprintf(dir, sizeof(dir), "%s/store-unwritten", E.tmp);
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor, text,
	                     strlen(text), &m, err, sizeof(err)),
	    LM_OK);
	Lunamatch__V1__JobPosting *jp = (Lunamatch__V1__JobPosting *) m;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	free(jp->description);
	assert_non_null(jp->description = strdup(big));
	assert_int_equal(lm_pb_encode(m, &pb, &len), LM_OK);
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, jp->id, 1, pb, len), LM_OK);
	put_sample(t, LM_KIND_PROFILE, "data/samples/profiles.jsonl", 1,
	    &lunamatch__v1__candidate_profile__descriptor);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);

	EXPECT_UNWRITTEN("store", "get", "posting", jp->id, "--data-dir", dir);
	EXPECT_UNWRITTEN("--json", "store", "get", "posting", jp->id, "--data-dir", dir);
	EXPECT_UNWRITTEN(
	    "store", "get", "profile", "cand-ml-lead-chicago", "--data-dir", dir);
	EXPECT_UNWRITTEN("store", "list", "postings", "--data-dir", dir);
	EXPECT_UNWRITTEN("store", "stats", "--data-dir", dir);
	EXPECT_UNWRITTEN("--json", "store", "stats", "--data-dir", dir);
	EXPECT_UNWRITTEN("--json", "store", "list", "postings", "--data-dir", dir);
	free(pb);
	free(text);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* store get shows the compliance warnings ingest stored with a posting on
 * stderr; stdout stays the record's JSON, and --json prints no warnings. */
static void
test_store_warnings(void **state)
{
	char dir[4200], err[512];
	lm_store *s = NULL;
	lm_store_txn *t = NULL;
	ProtobufCMessage *m = NULL;
	uint8_t *pb = NULL;
	size_t len;
	lm_record_ctx ctx;
	lm_fairness *fair = NULL;
	lmt_records recs;
	lm_reject why;
	static const char json[] =
	    "{\"id\":\"job-flagged\",\"version\":1,\"title\":\"Analyst\","
	    "\"skills\":[{\"name\":\"SQL\"},{\"name\":\"Recent graduate\"}]}";
	(void) state;

	lmt_records_open(&recs, 384);
	assert_int_equal(lm_fairness_load(lmt_src("data/fairness/requirements.tsv"),
	                     &fair, err, sizeof(err)),
	    LM_OK);
	ctx = recs.ctx;
	ctx.fairness = fair;
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor, json,
	                     strlen(json), &m, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(lmt_record_prepare(&ctx, m, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(m, &pb, &len), LM_OK);
	snprintf(dir, sizeof(dir), "%s/store-warnings", E.tmp);
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "job-flagged", 1, pb, len), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	free(pb);
	protobuf_c_message_free_unpacked(m, NULL);
	lm_fairness_free(fair);
	lmt_records_close(&recs);

	lmt_run_result r =
	    CLI("store", "get", "posting", "job-flagged", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "\"compliance_warnings\""));
	assert_non_null(
	    strstr(r.err, "compliance warning (age): skills[1].name "
	                  "\"Recent graduate\" is not used as a requirement."));
	assert_null(strstr(r.out, "compliance warning ("));
	lmt_run_result_free(&r);
	r = CLI("--json", "store", "get", "posting", "job-flagged", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "age-recent-graduate"));
	assert_null(strstr(r.err, "compliance warning"));
	lmt_run_result_free(&r);
}

/* ---- tests: dlq ------------------------------------------------------- */

static void
produce_dlq(lmt_producer *p, const char *key, const char *reason, const char *offset)
{
	const char *const headers[] = {"lunamatch-reason", reason, "lunamatch-error",
	    "title: required field is missing", "lunamatch-source-topic", TOPIC_POSTINGS,
	    "lunamatch-source-partition", "1", "lunamatch-source-offset", offset, NULL};
	lmt_produce(p, TOPIC_DLQ, 0, key, "{}", 2, headers);
	lmt_producer_flush(p, IO_MS);
}

/* A table whose header alone could not be written fails: dlq tail of an
 * empty topic, watch until its timeout without events. Both exited 0. */
static void
test_table_unwritten(void **state)
{
	(void) state;
	EXPECT_UNWRITTEN("dlq", "tail");
	EXPECT_UNWRITTEN("watch", "--timeout-ms", "1000");
}

static void
test_dlq(void **state)
{
	lmt_producer *p = lmt_producer_new(E.b.brokers, "lmtest-cli", NULL);
	json_error_t je;
	json_t *o;
	lmt_run_result r;
	(void) state;

	/* Empty topic: header only, exit 0, within the bounded wait. */
	r = CLI("dlq", "tail");
	expect_status(&r, 0);
	assert_true(strncmp(r.out, "PARTITION:OFFSET", 16) == 0);
	assert_non_null(strchr(r.out, '\n'));
	assert_string_equal(strchr(r.out, '\n'), "\n"); /* one line */
	lmt_run_result_free(&r);

	produce_dlq(p, "job-invalid-no-title", "missing_field", "40");
	produce_dlq(p, NULL, "missing_field", "41");
	produce_dlq(p, "job-invalid-country", "bad_country", "42");

	r = CLI("dlq", "tail", "--from-beginning", "--json");
	expect_status(&r, 0);
	char *save = NULL;
	int n = 0;
	for (char *line = strtok_r(r.out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), n++) {
		assert_non_null(o = json_loads(line, 0, &je));
		assert_string_equal(json_string_value(json_object_get(o, "source_topic")),
		    TOPIC_POSTINGS);
		assert_int_equal(
		    json_integer_value(json_object_get(o, "source_partition")), 1);
		assert_int_equal(
		    json_integer_value(json_object_get(o, "source_offset")), 40 + n);
		assert_int_equal(json_integer_value(json_object_get(o, "partition")), 0);
		assert_int_equal(json_integer_value(json_object_get(o, "offset")), n);
		assert_string_equal(json_string_value(json_object_get(o, "error")),
		    "title: required field is missing");
		assert_string_equal(json_string_value(json_object_get(o, "reason")),
		    n == 2 ? "bad_country" : "missing_field");
		if (n == 1)
			assert_true(json_is_null(json_object_get(o, "key")));
		else
			assert_string_equal(json_string_value(json_object_get(o, "key")),
			    n == 0 ? "job-invalid-no-title" : "job-invalid-country");
		json_decref(o);
	}
	assert_int_equal(n, 3);
	lmt_run_result_free(&r);

	/* The last two, as a table. */
	r = CLI("dlq", "tail", "-n", "2");
	expect_status(&r, 0);
	assert_null(strstr(r.out, "job-invalid-no-title"));
	assert_non_null(strstr(r.out, TOPIC_POSTINGS "/1@41"));
	assert_non_null(strstr(r.out, TOPIC_POSTINGS "/1@42"));
	assert_non_null(strstr(r.out, "bad_country"));
	assert_non_null(strstr(r.out, "job-invalid-country"));
	assert_non_null(strstr(r.out, "title: required field is missing"));
	lmt_run_result_free(&r);

	/* --count stops early from the beginning. */
	r = CLI("dlq", "tail", "--from-beginning", "--count", "1", "--json");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "job-invalid-no-title"));
	assert_null(strstr(r.out, "job-invalid-country"));
	lmt_run_result_free(&r);

	/* --follow: the last message, then a new one, until SIGTERM. */
	const char *env[] = {E.env_brokers, NULL};
	const char *argv[] = {
	    lmt_bin("lunamatch"), "dlq", "tail", "--follow", "-n", "1", "--json", NULL};
	char line[8192];
	lmt_proc *f = NULL;
	assert_int_equal(lmt_proc_start(argv, env, &f), LM_OK);
	assert_int_equal(lmt_proc_readline(f, line, sizeof(line), IO_MS), LM_OK);
	assert_non_null(strstr(line, "job-invalid-country"));
	produce_dlq(p, "job-invalid-followed", "bad_salary", "43");
	assert_int_equal(lmt_proc_readline(f, line, sizeof(line), IO_MS), LM_OK);
	assert_non_null(strstr(line, "job-invalid-followed"));
	assert_non_null(strstr(line, "\"bad_salary\""));
	lmt_proc_stop(&f, IO_MS);

	/* A long key is shown in part, its size in full; ingest's cuts are
	 * told with the sizes before them. */
	{
		char key[5001];
		memset(key, 'k', sizeof(key) - 1);
		key[sizeof(key) - 1] = '\0';
		const char *const cut[] = {"lunamatch-reason", "oversize",
		    "lunamatch-value-truncated", "3000000", NULL};
		lmt_produce(p, TOPIC_DLQ, 0, key, "{}", 2, cut);
		lmt_producer_flush(p, IO_MS);
		r = CLI("dlq", "tail", "-n", "1", "--json");
		expect_status(&r, 0);
		const char *at = strstr(r.out, "\"oversize\""), *start = at;
		assert_non_null(at);
		while (start > r.out && start[-1] != '\n')
			start--;
		assert_non_null(o = json_loadb(start, strcspn(start, "\n"), 0, &je));
		assert_int_equal(
		    strlen(json_string_value(json_object_get(o, "key"))), 4096);
		assert_int_equal(
		    json_integer_value(json_object_get(o, "key_bytes")), 5000);
		assert_int_equal(
		    json_integer_value(json_object_get(o, "original_value_bytes")),
		    3000000);
		assert_true(json_is_null(json_object_get(o, "original_key_bytes")));
		json_decref(o);
		lmt_run_result_free(&r);
	}

	/* Empty reason and error headers show as "-", as absent ones do: the
	 * cells used to be blank, shifting the row's words. */
	{
		const char *const empty[] = {"lunamatch-reason", "", "lunamatch-error",
		    "", "lunamatch-source-topic", TOPIC_POSTINGS,
		    "lunamatch-source-partition", "1", "lunamatch-source-offset", "44",
		    NULL};
		char *words[8], *save2 = NULL;
		size_t nw = 0;
		lmt_produce(p, TOPIC_DLQ, 0, "job-empty-reason", "{}", 2, empty);
		lmt_producer_flush(p, IO_MS);
		r = CLI("dlq", "tail", "-n", "1");
		expect_status(&r, 0);
		char *row = strstr(r.out, "\n");
		assert_non_null(row);
		for (char *w = strtok_r(row, " \n", &save2); w != NULL && nw < 8;
		     w = strtok_r(NULL, " \n", &save2))
			words[nw++] = w;
		/* PARTITION:OFFSET SOURCE REASON KEY ERROR */
		if (nw != 5)
			fail_msg("a row of %zu words: %s", nw, r.out);
		assert_string_equal(words[1], TOPIC_POSTINGS "/1@44");
		assert_string_equal(words[2], "-");
		assert_string_equal(words[3], "job-empty-reason");
		assert_string_equal(words[4], "-");
		lmt_run_result_free(&r);
	}

	/* Messages that cannot be written fail the tail (exit 0 before). */
	EXPECT_UNWRITTEN("dlq", "tail", "--from-beginning");
	EXPECT_UNWRITTEN("dlq", "tail", "--from-beginning", "--json");

	/* A topic that does not exist. */
	r = CLI("dlq", "tail", "--topic-dlq", "lmtest.no-such-dlq");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "does not exist"));
	lmt_run_result_free(&r);
	lmt_producer_free(p);
}

/* A dead letter larger than what one fetch of the reader asks for (the
 * mock broker, as Kafka, returns a partition's first record whole), and
 * over 4 MiB; under the 5 MiB a partition of librdkafka 2.0.2's mock
 * cluster keeps before dropping its oldest records. */
#define BIG_DLQ_VALUE (4608u << 10)

/*
 * A record over the reader's fetch sizes, and over 4 MiB: a fetch of it is
 * still read and the record printed (exit 0). The responses of librdkafka
 * were capped at 4259840 bytes; such a fetch failed ("Invalid response
 * size") and was retried forever, so dlq tail and watch stalled.
 */
static void
test_dlq_big_record(void **state)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *mrk;
	rd_kafka_mock_cluster_t *mc;
	char err[256];
	char *value = malloc(BIG_DLQ_VALUE);
	json_t *o;
	(void) state;

	assert_non_null(value);
	memset(value, 'v', BIG_DLQ_VALUE);
	assert_int_equal(
	    lm_kafka_conf(NULL, "lmtest-mock", &conf, err, sizeof(err)), LM_OK);
	assert_non_null(mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
	assert_non_null(mc = rd_kafka_mock_cluster_new(mrk, 1));
	assert_int_equal(lmt_mock_topic_create(mc, TOPIC_DLQ, 1), 0);
	const char *brokers = rd_kafka_mock_cluster_bootstraps(mc);
	const char *const props[] = {"message.max.bytes", "16000000", NULL};
	lmt_producer *p = lmt_producer_new(brokers, "lmtest-big", props);
	const char *const headers[] = {"lunamatch-reason", "oversize", NULL};
	lmt_produce(p, TOPIC_DLQ, 0, "job-big", value, BIG_DLQ_VALUE, headers);
	lmt_produce(p, TOPIC_DLQ, 0, "job-after", "{}", 2, headers);
	assert_int_equal(lmt_producer_flush(p, IO_MS), 2);
	lmt_producer_free(p);
	free(value);

	lmt_run_result r = CLI("dlq", "tail", "--from-beginning", "--json", "--brokers",
	    brokers, "--timeout-ms", "10000");
	expect_status(&r, 0);
	char *nl = strchr(r.out, '\n');
	if (nl == NULL)
		fail_msg("no record printed: %s", r.err);
	assert_non_null(o = json_loadb(r.out, (size_t) (nl - r.out), 0, NULL));
	assert_string_equal(json_string_value(json_object_get(o, "key")), "job-big");
	assert_int_equal(
	    json_integer_value(json_object_get(o, "value_bytes")), BIG_DLQ_VALUE);
	json_decref(o);
	assert_non_null(strstr(nl, "\"job-after\""));
	lmt_run_result_free(&r);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(mrk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_help),
	    cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test(test_produce_protobuf),
	    cmocka_unit_test(test_produce_json),
	    cmocka_unit_test(test_produce_bad_lines),
	    cmocka_unit_test(test_produce_array_and_stdin),
	    cmocka_unit_test(test_produce_array_memory),
	    cmocka_unit_test(test_produce_parse_memory),
	    cmocka_unit_test(test_produce_failures),
	    cmocka_unit_test(test_produce_wait_counts),
	    cmocka_unit_test(test_produce_raw),
	    cmocka_unit_test(test_produce_interrupted),
	    cmocka_unit_test(test_produce_interrupted_before_input),
	    cmocka_unit_test(test_produce_unconfirmed),
	    cmocka_unit_test(test_produce_summary_unwritten),
	    cmocka_unit_test(test_store),
	    cmocka_unit_test(test_store_warnings),
	    cmocka_unit_test(test_store_unwritten),
	    cmocka_unit_test(test_table_unwritten),
	    cmocka_unit_test(test_dlq),
	    cmocka_unit_test(test_dlq_big_record),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
