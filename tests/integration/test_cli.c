/*
 * test_cli.c - the `lunamatch` command-line tool, ingest side, run as a real
 * process against lunamatch-devkafka and real LMDB stores.
 *
 * produce: the sample postings and profiles go to their topics as protobuf
 * and as JSON; the test reads the topics back with librdkafka and checks
 * counts, keys, content-type headers and that every payload decodes to the
 * same record as the sample line. Undecodable lines, JSON arrays, standard
 * input, missing files and an unreachable broker are covered too.
 * store: get, list and stats against a store the test fills with lm_store_*.
 * dlq tail: crafted dead-letter messages with the headers ingest writes,
 * one-shot and --follow. Plus usage errors (exit 2) and --help everywhere.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/records.pb-c.h"
#include "proc.h"

#define START_MS       30000 /* devkafka start-up, generous for sanitizer builds */
#define RUN_MS         60000 /* longest run of one lunamatch command */
#define IO_MS          30000 /* longest wait for messages to come back */
#define OUT_MAX        (4u << 20)
#define MAX_RECORDS    256
#define TOPIC_POSTINGS "lunamatch.postings.v1"
#define TOPIC_PROFILES "lunamatch.profiles.v1"
#define TOPIC_DLQ      "lunamatch.ingest.dlq.v1"
#define PARTITIONS     2

static struct {
	lmt_proc *dk;
	char brokers[512];
	char env_brokers[540];
	char *tmp;
	int serial;
} E;

/* ---- running the tool ------------------------------------------------- */

struct run {
	int status;
	char *out; /* stdout, NUL-terminated */
	char *err; /* stderr, NUL-terminated */
};

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* Runs argv (argv[0] is the program) to completion with LUNAMATCH_BROKERS
 * pointing at devkafka; captures both outputs. */
static struct run
run_argv(const char *const argv[])
{
	struct run r = {.status = -1};
	const char *env[] = {E.env_brokers, NULL};
	char errpath[4200], line[LMT_PROC_LINE_MAX];
	size_t n = 0;
	lmt_proc *p = NULL;
	int rc;

	snprintf(errpath, sizeof(errpath), "%s/stderr.%d", E.tmp, E.serial++);
	assert_int_equal(lmt_proc_start_ex(argv, env, errpath, &p), LM_OK);
	r.out = calloc(1, 1);
	for (;;) {
		rc = lmt_proc_readline(p, line, sizeof(line), RUN_MS);
		if (rc == LM_ECLOSED)
			break;
		assert_int_equal(rc, LM_OK);
		size_t l = strlen(line);
		assert_true(n + l + 2 < OUT_MAX);
		r.out = realloc(r.out, n + l + 2);
		memcpy(r.out + n, line, l);
		n += l;
		r.out[n++] = '\n';
		r.out[n] = '\0';
	}
	assert_int_equal(lmt_proc_wait(p, RUN_MS, &r.status), LM_OK);
	lmt_proc_free(p);
	r.err = lmt_read_file(errpath, NULL);
	assert_non_null(r.err);
	return r;
}

/* Runs lunamatch with up to 15 arguments (NULL-terminated). */
#define CLI(...) run_cli((const char *const[]){__VA_ARGS__, NULL})
static struct run
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
expect_status(const struct run *r, int status)
{
	if (r->status != status)
		fail_msg("exit %d, expected %d\nstdout: %s\nstderr: %s", r->status,
		    status, r->out, r->err);
}

/* ---- Kafka helpers ---------------------------------------------------- */

static rd_kafka_t *
new_client(rd_kafka_type_t type)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[512], group[128];

	assert_int_equal(
	    lm_kafka_conf(E.brokers, "lmtest-cli", &c, err, sizeof(err)), LM_OK);
	if (type == RD_KAFKA_CONSUMER) {
		snprintf(group, sizeof(group), "lmtest-cli-%ld-%d", (long) getpid(),
		    E.serial++);
		assert_int_equal(
		    lm_kafka_set(c, "group.id", group, err, sizeof(err)), LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "enable.auto.commit", "false", err, sizeof(err)),
		    LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "enable.partition.eof", "true", err, sizeof(err)),
		    LM_OK);
	}
	rk = rd_kafka_new(type, c, err, sizeof(err));
	if (rk == NULL)
		fail_msg("rd_kafka_new: %s", err);
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_poll_set_consumer(rk);
	assert_int_equal(lm_kafka_wait_metadata(rk, START_MS), LM_OK);
	return rk;
}

/* The end offsets of every partition of topic. */
static void
high_marks(const char *topic, int64_t hi[PARTITIONS])
{
	rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER);
	for (int p = 0; p < PARTITIONS; p++) {
		int64_t lo = 0;
		assert_int_equal(
		    rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], IO_MS),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	rd_kafka_destroy(rk);
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

static char *header_of(const rd_kafka_message_t *m, const char *name);

/* Reads every message of topic from the offsets in from[] to the end of each
 * partition; copies at most max of them to out (free each with msg_free).
 * Returns how many were read. */
static int
read_topic(const char *topic, const int64_t from[PARTITIONS], struct msg *out, int max)
{
	rd_kafka_t *c = new_client(RD_KAFKA_CONSUMER);
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(PARTITIONS);
	bool eof[PARTITIONS] = {false};
	int neof = 0, n = 0;
	time_t end = time(NULL) + IO_MS / 1000;

	for (int p = 0; p < PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = from[p];
	assert_int_equal(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
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
			out[n].content_type = header_of(m, "content-type");
			n++;
			rd_kafka_message_destroy(m);
		}
	}
	assert_int_equal(neof, PARTITIONS);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	return n;
}

/* The value of header name of m as a new string, or NULL. */
static char *
header_of(const rd_kafka_message_t *m, const char *name)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t len;
	char *s;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	s = malloc(len + 1);
	memcpy(s, v, len);
	s[len] = '\0';
	return s;
}

/* ---- sample records --------------------------------------------------- */

struct sample {
	char id[LM_STORE_ID_MAX + 1];
	char *json; /* canonical JSON of the decoded record */
	bool seen;
};

/* Decodes every line of a sample file; returns the count. */
static int
load_samples(
    const char *rel, const ProtobufCMessageDescriptor *d, struct sample *s, int max)
{
	char *text = lmt_read_file(lmt_src(rel), NULL), *line, *save = NULL;
	char err[512];
	int n = 0;

	assert_non_null(text);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		ProtobufCMessage *m = NULL;
		assert_true(n < max);
		assert_int_equal(
		    lm_json_decode(d, line, strlen(line), &m, err, sizeof(err)), LM_OK);
		/* id is the first field of both record types. */
		const char *id = d == &lunamatch__v1__job_posting__descriptor
		                     ? ((Lunamatch__V1__JobPosting *) m)->id
		                     : ((Lunamatch__V1__CandidateProfile *) m)->id;
		snprintf(s[n].id, sizeof(s[n].id), "%s", id);
		assert_int_equal(lm_json_encode(m, 0, &s[n].json), LM_OK);
		s[n].seen = false;
		protobuf_c_message_free_unpacked(m, NULL);
		n++;
	}
	free(text);
	return n;
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
	struct run r;
	int ns, nm;

	ns = load_samples(rel, d, s, MAX_RECORDS);
	assert_true(ns > 10);
	high_marks(topic, from);
	if (as_json) /* global flags after the command, JSON summary */
		r = CLI("produce", kind, lmt_src(rel), "--as-json", "--brokers",
		    E.brokers, "--json");
	else /* global flags before the command */
		r = CLI("--brokers", E.brokers, "produce", kind, lmt_src(rel));
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
	run_free(&r);

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
	char line[512];
	(void) state;

	const char *argv[] = {lmt_bin("lunamatch-devkafka"), "--partitions", "2", NULL};
	if (lmt_proc_start(argv, NULL, &E.dk) != LM_OK) {
		fprintf(stderr, "cannot start %s\n", argv[0]);
		return -1;
	}
	if (lmt_proc_readline(E.dk, line, sizeof(line), START_MS) != LM_OK ||
	    strncmp(line, "127.0.0.1:", 10) != 0) {
		fprintf(stderr, "devkafka printed no bootstrap address: \"%s\"\n", line);
		return -1;
	}
	snprintf(E.brokers, sizeof(E.brokers), "%s", line);
	snprintf(E.env_brokers, sizeof(E.env_brokers), "LUNAMATCH_BROKERS=%s", line);
	E.tmp = lmt_tmpdir("cli");
	return 0;
}

static int
group_teardown(void **state)
{
	(void) state;
	if (E.dk != NULL) {
		int st = -1;
		lmt_proc_signal(E.dk, SIGTERM);
		lmt_proc_wait(E.dk, 10000, &st);
	}
	lmt_proc_free(E.dk);
	lmt_rmtree(E.tmp);
	free(E.tmp);
	return 0;
}

static char *
write_file(const char *name, const char *text)
{
	char *path = malloc(4200);
	FILE *f;

	snprintf(path, 4200, "%s/%s", E.tmp, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
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
	struct run r;
	(void) state;

	r = CLI("--help");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "produce"));
	assert_non_null(strstr(r.out, "store"));
	assert_non_null(strstr(r.out, "dlq"));
	assert_non_null(strstr(r.out, "--brokers"));
	run_free(&r);

	const char *const cmds[][3] = {
	    {"help", "produce", "--as-json"},
	    {"produce", "--help", "--as-json"},
	    {"store", "--help", "store list"},
	    {"help", "store", "--limit"},
	    {"dlq", "--help", "--follow"},
	    {"dlq", "-h", "--from-beginning"},
	    {"--help", "dlq", "--count"},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		r = CLI(cmds[i][0], cmds[i][1]);
		expect_status(&r, 0);
		if (strstr(r.out, cmds[i][2]) == NULL)
			fail_msg("%s %s: no \"%s\" in: %s", cmds[i][0], cmds[i][1],
			    cmds[i][2], r.out);
		run_free(&r);
	}
	/* --help anywhere among a command's arguments. */
	r = CLI("store", "get", "posting", "x", "--help");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "Usage:"));
	run_free(&r);

	r = CLI("--version");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "lunamatch "));
	run_free(&r);
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
		struct run r = run_argv(argv);
		if (r.status != 2)
			fail_msg("case %zu (%s %s): exit %d, expected 2; stderr: %s", i,
			    cases[i][0] ? cases[i][0] : "",
			    cases[i][0] && cases[i][1] ? cases[i][1] : "", r.status,
			    r.err);
		assert_true(strlen(r.err) > 0);
		assert_string_equal(r.out, "");
		run_free(&r);
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
	struct run r = CLI("produce", "postings", path);
	expect_status(&r, 1);
	assert_string_equal(r.out, "sent 3, failed 0, skipped 2\n");
	assert_non_null(strstr(r.err, "line 2:"));
	assert_non_null(strstr(r.err, "line 4:"));
	assert_non_null(strstr(r.err, "bogus_field"));
	assert_null(strstr(r.err, "line 1:"));
	assert_null(strstr(r.err, "line 5:"));
	run_free(&r);

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
	run_free(&r);
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
	struct run r = CLI("produce", "profiles", path);
	expect_status(&r, 1);
	assert_string_equal(r.out, "sent 2, failed 0, skipped 2\n");
	assert_non_null(strstr(r.err, "index 2:"));
	assert_non_null(strstr(r.err, "index 3:"));
	assert_non_null(strstr(r.err, "headline"));
	run_free(&r);

	/* Not an array after all. */
	char *broken = write_file("broken.json", "[{\"id\":\"a\"},");
	r = CLI("produce", "profiles", broken);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "not a valid JSON array"));
	run_free(&r);

	snprintf(text, sizeof(text), "%s\n%s\n", l1, l2);
	char *lines = write_file("two.jsonl", text);
	const char *sh[] = {"/bin/sh", "-c", "exec \"$0\" produce profiles - < \"$1\"",
	    lmt_bin("lunamatch"), lines, NULL};
	r = run_argv(sh);
	expect_status(&r, 0);
	assert_string_equal(r.out, "sent 2, failed 0, skipped 0\n");
	run_free(&r);
	free(path);
	free(broken);
	free(lines);
	free(l1);
	free(l2);
}

static void
test_produce_failures(void **state)
{
	(void) state;
	struct run r = CLI("produce", "postings", "/nonexistent/file.jsonl");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "cannot open"));
	run_free(&r);

	r = CLI("produce", "postings", lmt_src("data/samples/postings.jsonl"), "--topic",
	    "lmtest.no-such-topic");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "does not exist"));
	run_free(&r);

	/* Nothing listens on port 1 of the loopback address. */
	r = CLI("produce", "postings", lmt_src("data/samples/postings.jsonl"),
	    "--brokers", "127.0.0.1:1", "--timeout-ms", "1500");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "cannot reach Kafka"));
	run_free(&r);
}

/* ---- tests: store ----------------------------------------------------- */

static void
put_sample(lm_store_txn *t, lm_kind k, const char *rel, int line,
    const ProtobufCMessageDescriptor *d)
{
	char *text = sample_line(rel, line), err[512];
	ProtobufCMessage *m = NULL;
	uint8_t *pb = NULL;
	size_t len;

	assert_int_equal(
	    lm_json_decode(d, text, strlen(text), &m, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(m, &pb, &len), LM_OK);
	const char *id = k == LM_KIND_POSTING
	                     ? ((Lunamatch__V1__JobPosting *) m)->id
	                     : ((Lunamatch__V1__CandidateProfile *) m)->id;
	assert_int_equal(lm_store_put(t, k, id, 1, pb, len), LM_OK);
	free(pb);
	free(text);
	protobuf_c_message_free_unpacked(m, NULL);
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
	for (int i = 1; i <= 2; i++)
		put_sample(t, LM_KIND_PROFILE, "data/samples/profiles.jsonl", i,
		    &lunamatch__v1__candidate_profile__descriptor);
	assert_int_equal(
	    lm_store_delete(t, LM_KIND_PROFILE, "cand-ml-lead-chicago", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);

	/* get: pretty JSON of the record. */
	struct run r =
	    CLI("store", "get", "posting", "job-dfs-sr-mgr-ml", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "\n  \"id\": \"job-dfs-sr-mgr-ml\""));
	assert_non_null(o = json_loads(r.out, 0, &je));
	assert_string_equal(json_string_value(json_object_get(o, "title")),
	    "Senior Manager, Machine Learning");
	assert_int_equal(json_integer_value(json_object_get(o, "version")), 1);
	json_decref(o);
	run_free(&r);

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
	run_free(&r);

	r = CLI("store", "get", "posting", "job-nope", "--data-dir", dir);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "no posting with id job-nope"));
	assert_string_equal(r.out, "");
	run_free(&r);
	/* Deleted records are gone too. */
	r = CLI("store", "get", "profile", "cand-ml-lead-chicago", "--data-dir", dir);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "no profile with id cand-ml-lead-chicago"));
	run_free(&r);

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
	assert_int_equal(rows, 4);
	run_free(&r);

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
	run_free(&r);

	r = CLI("store", "list", "profiles", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "HEADLINE"));
	assert_non_null(strstr(r.out, "cand-ml-mgr-naperville"));
	assert_null(strstr(r.out, "cand-ml-lead-chicago"));
	run_free(&r);

	/* stats: table and JSON. */
	r = CLI("store", "stats", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "postings     3\n"));
	assert_non_null(strstr(r.out, "profiles     1\n"));
	assert_non_null(strstr(r.out, "tombstones   1\n"));
	run_free(&r);
	r = CLI("store", "stats", "--json", "--data-dir", dir);
	expect_status(&r, 0);
	assert_non_null(o = json_loads(r.out, 0, &je));
	assert_int_equal(json_integer_value(json_object_get(o, "postings")), 3);
	assert_int_equal(json_integer_value(json_object_get(o, "profiles")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "tombstones")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "changes")), 6);
	assert_int_equal(json_integer_value(json_object_get(o, "last_seq")), 6);
	assert_true(json_integer_value(json_object_get(o, "map_size")) > 0);
	json_decref(o);
	run_free(&r);

	/* No store there. */
	char missing[4300];
	snprintf(missing, sizeof(missing), "%s/no-store", E.tmp);
	r = CLI("store", "stats", "--data-dir", missing);
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "no record store"));
	run_free(&r);
}

/* ---- tests: dlq ------------------------------------------------------- */

static void
produce_dlq(rd_kafka_t *p, const char *key, const char *reason, const char *offset)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(5);
	rd_kafka_header_add(h, "lunamatch-reason", -1, reason, -1);
	rd_kafka_header_add(
	    h, "lunamatch-error", -1, "title: required field is missing", -1);
	rd_kafka_header_add(h, "lunamatch-source-topic", -1, TOPIC_POSTINGS, -1);
	rd_kafka_header_add(h, "lunamatch-source-partition", -1, "1", -1);
	rd_kafka_header_add(h, "lunamatch-source-offset", -1, offset, -1);
	assert_int_equal(
	    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC_DLQ), RD_KAFKA_V_PARTITION(0),
	        RD_KAFKA_V_KEY((void *) key, key ? strlen(key) : 0),
	        RD_KAFKA_V_VALUE((void *) "{}", 2), RD_KAFKA_V_HEADERS(h),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void
test_dlq(void **state)
{
	rd_kafka_t *p = new_client(RD_KAFKA_PRODUCER);
	json_error_t je;
	json_t *o;
	struct run r;
	(void) state;

	/* Empty topic: header only, exit 0, within the bounded wait. */
	r = CLI("dlq", "tail");
	expect_status(&r, 0);
	assert_true(strncmp(r.out, "PARTITION:OFFSET", 16) == 0);
	assert_non_null(strchr(r.out, '\n'));
	assert_string_equal(strchr(r.out, '\n'), "\n"); /* one line */
	run_free(&r);

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
	run_free(&r);

	/* The last two, as a table. */
	r = CLI("dlq", "tail", "-n", "2");
	expect_status(&r, 0);
	assert_null(strstr(r.out, "job-invalid-no-title"));
	assert_non_null(strstr(r.out, TOPIC_POSTINGS "/1@41"));
	assert_non_null(strstr(r.out, TOPIC_POSTINGS "/1@42"));
	assert_non_null(strstr(r.out, "bad_country"));
	assert_non_null(strstr(r.out, "job-invalid-country"));
	assert_non_null(strstr(r.out, "title: required field is missing"));
	run_free(&r);

	/* --count stops early from the beginning. */
	r = CLI("dlq", "tail", "--from-beginning", "--count", "1", "--json");
	expect_status(&r, 0);
	assert_non_null(strstr(r.out, "job-invalid-no-title"));
	assert_null(strstr(r.out, "job-invalid-country"));
	run_free(&r);

	/* --follow: the last message, then a new one, until SIGTERM. */
	const char *env[] = {E.env_brokers, NULL};
	const char *argv[] = {
	    lmt_bin("lunamatch"), "dlq", "tail", "--follow", "-n", "1", "--json", NULL};
	char line[8192];
	lmt_proc *f = NULL;
	int st = -1;
	assert_int_equal(lmt_proc_start(argv, env, &f), LM_OK);
	assert_int_equal(lmt_proc_readline(f, line, sizeof(line), IO_MS), LM_OK);
	assert_non_null(strstr(line, "job-invalid-country"));
	produce_dlq(p, "job-invalid-followed", "bad_salary", "43");
	assert_int_equal(lmt_proc_readline(f, line, sizeof(line), IO_MS), LM_OK);
	assert_non_null(strstr(line, "job-invalid-followed"));
	assert_non_null(strstr(line, "\"bad_salary\""));
	assert_int_equal(lmt_proc_signal(f, SIGTERM), LM_OK);
	assert_int_equal(lmt_proc_wait(f, IO_MS, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(f);

	/* A topic that does not exist. */
	r = CLI("dlq", "tail", "--topic-dlq", "lmtest.no-such-dlq");
	expect_status(&r, 1);
	assert_non_null(strstr(r.err, "does not exist"));
	run_free(&r);
	rd_kafka_destroy(p);
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
	    cmocka_unit_test(test_produce_failures),
	    cmocka_unit_test(test_store),
	    cmocka_unit_test(test_dlq),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
