/*
 * test_dlq.c - the dead-letter producer against librdkafka's mock cluster,
 * and the store notification publisher on a real nng socket.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "dlq.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "lunamatch/v1/store.pb-c.h"
#include "notify.h"

#define IO_MS             20000
#define KAFKA_API_PRODUCE 0 /* Kafka protocol ApiKey of Produce */

static struct {
	rd_kafka_t *owner; /* handle that owns the mock cluster */
	rd_kafka_mock_cluster_t *mc;
	char brokers[256];
} M;

static int
setup(void **state)
{
	rd_kafka_conf_t *c = NULL;
	char err[256];
	(void) state;

	lm_log_set_level(LM_LOG_ERROR);
	if (lm_kafka_conf(NULL, "lmtest-mock", &c, err, sizeof(err)) != LM_OK)
		return -1;
	if ((M.owner = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err))) == NULL)
		return -1;
	if ((M.mc = rd_kafka_mock_cluster_new(M.owner, 1)) == NULL)
		return -1;
	snprintf(
	    M.brokers, sizeof(M.brokers), "%s", rd_kafka_mock_cluster_bootstraps(M.mc));
	rd_kafka_mock_topic_create(M.mc, "src", 1, 1);
	rd_kafka_mock_topic_create(M.mc, "dlq", 1, 1);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	rd_kafka_mock_cluster_destroy(M.mc);
	rd_kafka_destroy(M.owner);
	return 0;
}

static rd_kafka_t *
client(rd_kafka_type_t type)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[256];

	assert_int_equal(lm_kafka_conf(M.brokers, "lmtest", &c, err, sizeof(err)), LM_OK);
	if (type == RD_KAFKA_CONSUMER) {
		assert_int_equal(
		    lm_kafka_set(c, "group.id", "lmtest-dlq", err, sizeof(err)), LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "enable.auto.commit", "false", err, sizeof(err)),
		    LM_OK);
	}
	assert_non_null(rk = rd_kafka_new(type, c, err, sizeof(err)));
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_poll_set_consumer(rk);
	return rk;
}

/* The next message of topic partition 0 at or after offset. */
static rd_kafka_message_t *
read_at(rd_kafka_t *c, const char *topic, int64_t offset)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, 0)->offset = offset;
	assert_int_equal(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	for (int i = 0; i < IO_MS / 100; i++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		if (m != NULL && m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
			return m;
		if (m != NULL)
			rd_kafka_message_destroy(m);
	}
	fail_msg("no message on %s", topic);
	return NULL;
}

static const char *
hdr(const rd_kafka_message_t *m, const char *name, char *buf, size_t len)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	n = n < len - 1 ? n : len - 1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

/* Counts the headers of that name on m. */
static int
hdr_count(const rd_kafka_message_t *m, const char *name)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	int k = 0;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	while (rd_kafka_header_get(h, (size_t) k, name, &v, &n) ==
	       RD_KAFKA_RESP_ERR_NO_ERROR)
		k++;
	return k;
}

/* lm_dlq_send of a letter of m, freed at once: the letter is all the dead
 * letter needs. */
static int
send_msg(lm_dlq *q, const rd_kafka_message_t *m, const char *reason, const char *error,
    int timeout_ms, lm_dlq_fate *fate)
{
	lm_dlq_letter *l = NULL;
	int rv;

	assert_int_equal(lm_dlq_letter_new(m, &l), LM_OK);
	rv = lm_dlq_send(q, l, reason, error, timeout_ms, fate);
	lm_dlq_letter_free(l);
	return rv;
}

/* One message of a source topic (produce_src). headers are handed over. */
struct src_msg {
	const void *key;
	size_t klen;
	const void *value;
	size_t vlen;
	rd_kafka_headers_t *headers;
};

/* Creates topic (one partition) and produces the n messages of m to it, in
 * order, through a producer that allows messages far over the usual
 * limits (8 MB). */
static void
produce_src(const char *topic, const struct src_msg *m, int n)
{
	rd_kafka_conf_t *pc = NULL;
	rd_kafka_t *p;
	char err[256];

	assert_int_equal(
	    lm_kafka_conf(M.brokers, "lmtest", &pc, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(pc, "message.max.bytes", "8000000", err, sizeof(err)), LM_OK);
	assert_non_null(p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err)));
	rd_kafka_mock_topic_create(M.mc, topic, 1, 1);
	for (int i = 0; i < n; i++) {
		assert_int_equal(
		    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
		        RD_KAFKA_V_KEY(m[i].key, m[i].klen),
		        RD_KAFKA_V_VALUE((void *) m[i].value, m[i].vlen),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		        RD_KAFKA_V_HEADERS(m[i].headers), RD_KAFKA_V_END),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
		assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	rd_kafka_destroy(p);
}

/* Set by the lm_dlq of send_letters, which outlives its call. */
static volatile int letters_fatal;

/*
 * Sends the dead letters of the first n messages of src (read with c) to
 * dlq (created here), each from a letter made before its message is
 * destroyed, with reason and error, and waits for them. Returns the lm_dlq
 * (the caller frees it) for its counts.
 */
static lm_dlq *
send_letters(rd_kafka_t *c, const char *src, const char *dlq, int n, const char *reason,
    const char *error)
{
	lm_dlq *q = NULL;
	char err[256];

	rd_kafka_mock_topic_create(M.mc, dlq, 1, 1);
	assert_int_equal(
	    lm_dlq_new(M.brokers, dlq, 0, &letters_fatal, &q, err, sizeof(err)), LM_OK);
	for (int64_t off = 0; off < n; off++) {
		rd_kafka_message_t *m = read_at(c, src, off);
		lm_dlq_letter *l = NULL;
		assert_int_equal(m->offset, off);
		assert_int_equal(lm_dlq_letter_new(m, &l), LM_OK);
		rd_kafka_message_destroy(m);
		assert_int_equal(lm_dlq_send(q, l, reason, error, IO_MS, NULL), LM_OK);
		lm_dlq_letter_free(l);
	}
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_OK);
	return q;
}

/* All headers of m in order, one "name=value" a line; bytes outside
 * printable ASCII as \xHH, a NULL value as "(null)". */
static void
all_headers(const rd_kafka_message_t *m, char *buf, size_t len)
{
	rd_kafka_headers_t *h = NULL;
	const char *name;
	const void *v;
	size_t n, w = 0;

	buf[0] = '\0';
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	for (size_t i = 0;
	     rd_kafka_header_get_all(h, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR;
	     i++) {
		w += (size_t) snprintf(buf + w, len - w, "%s=", name);
		if (v == NULL)
			w += (size_t) snprintf(buf + w, len - w, "(null)");
		for (size_t j = 0; v != NULL && j < n && w < len; j++) {
			unsigned char ch = ((const unsigned char *) v)[j];
			w += (size_t) snprintf(buf + w, len - w,
			    ch >= 0x20 && ch < 0x7f ? "%c" : "\\x%02x", ch);
		}
		assert_true(w < len);
		w += (size_t) snprintf(buf + w, len - w, "\n");
		assert_true(w < len);
	}
}

/* A message over the DLQ's size bounds goes out cut, and marked. */
static void
test_oversize_dead_letter(void **state)
{
	const size_t vlen = 3u << 20, klen = LM_DLQ_KEY_MAX + 10;
	rd_kafka_t *c = client(RD_KAFKA_CONSUMER);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	char *value = malloc(vlen), *key = malloc(klen), *big = malloc(40000);
	lm_dlq *q = NULL;
	char err[256], buf[64];
	(void) state;

	assert_non_null(value);
	assert_non_null(key);
	assert_non_null(big);
	memset(value, 'v', vlen);
	memset(key, 'k', klen);
	memset(big, 'h', 40000);
	rd_kafka_header_add(h, "big-1", -1, big, 40000);
	rd_kafka_header_add(h, "big-2", -1, big, 40000);
	struct src_msg m = {key, klen, value, vlen, h};
	produce_src("src-big", &m, 1);
	q = send_letters(c, "src-big", "dlq-big", 1, "oversize", "too big");
	assert_int_equal(lm_dlq_delivered(q), 1);

	rd_kafka_message_t *d = read_at(c, "dlq-big", RD_KAFKA_OFFSET_BEGINNING);
	assert_int_equal(d->len, LM_DLQ_VALUE_MAX);
	assert_memory_equal(d->payload, value, LM_DLQ_VALUE_MAX);
	assert_int_equal(d->key_len, LM_DLQ_KEY_MAX);
	snprintf(err, sizeof(err), "%zu", vlen);
	assert_string_equal(hdr(d, LM_DLQ_H_VALUE_TRUNCATED, buf, sizeof(buf)), err);
	snprintf(err, sizeof(err), "%zu", klen);
	assert_string_equal(hdr(d, LM_DLQ_H_KEY_TRUNCATED, buf, sizeof(buf)), err);
	assert_string_equal(hdr(d, LM_DLQ_H_HEADERS_DROPPED, buf, sizeof(buf)), "2");
	assert_int_equal(hdr_count(d, "big-1"), 0);
	assert_string_equal(hdr(d, LM_DLQ_H_REASON, buf, sizeof(buf)), "oversize");
	rd_kafka_message_destroy(d);

	lm_dlq_free(q);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	free(value);
	free(key);
	free(big);
}

/*
 * The whole content of dead letters, byte for byte: key, value and every
 * header in order (the original ones without ours, then the verdict, then
 * the truncation marks), for a message within the bounds and for one over
 * all of them.
 */
static void
test_dead_letter_exact(void **state)
{
	const size_t vlen = LM_DLQ_VALUE_MAX + 7, klen = LM_DLQ_KEY_MAX + 3;
	rd_kafka_t *c = client(RD_KAFKA_CONSUMER);
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);
	rd_kafka_headers_t *h2 = rd_kafka_headers_new(8);
	char *value = malloc(vlen), *key = malloc(klen), *big = malloc(40000);
	char *got = malloc(1 << 16);
	lm_dlq *q = NULL;
	char err[256];
	(void) state;

	assert_non_null(value);
	assert_non_null(key);
	assert_non_null(big);
	assert_non_null(got);
	for (size_t i = 0; i < vlen; i++)
		value[i] = (char) ('a' + i % 26);
	for (size_t i = 0; i < klen; i++)
		key[i] = (char) ('A' + i % 26);
	memset(big, 'h', 40000);
	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	rd_kafka_header_add(h, "x-bin", -1, "a\0b\xff", 4);
	rd_kafka_header_add(h, LM_DLQ_H_REASON, -1, "old", -1);
	rd_kafka_header_add(h, "x-null", -1, NULL, 0);
	rd_kafka_header_add(h, LM_DLQ_H_VALUE_TRUNCATED, -1, "1", -1);
	rd_kafka_header_add(h, "x-empty", -1, "", 0);
	rd_kafka_header_add(h2, "big-1", -1, big, 40000);
	rd_kafka_header_add(h2, "big-2", -1, big, 40000);
	struct src_msg m[] = {
	    {"job-1", 5, "{nope", 5, h},
	    {key, klen, value, vlen, h2},
	};
	produce_src("src-exact", m, 2);
	q = send_letters(c, "src-exact", "dlq-exact", 2, "bad_json", "x: \"\n\" is bad");

	rd_kafka_message_t *d = read_at(c, "dlq-exact", 0);
	assert_int_equal(d->key_len, 5);
	assert_memory_equal(d->key, "job-1", 5);
	assert_int_equal(d->len, 5);
	assert_memory_equal(d->payload, "{nope", 5);
	all_headers(d, got, 1 << 16);
	assert_string_equal(got, "content-type=application/json\n"
	                         "x-bin=a\\x00b\\xff\n"
	                         "x-null=(null)\n"
	                         "x-empty=\n"
	                         "lunamatch-reason=bad_json\n"
	                         "lunamatch-error=x: \"\\n\" is bad\n"
	                         "lunamatch-source-topic=src-exact\n"
	                         "lunamatch-source-partition=0\n"
	                         "lunamatch-source-offset=0\n");
	rd_kafka_message_destroy(d);

	d = read_at(c, "dlq-exact", 1);
	assert_int_equal(d->key_len, LM_DLQ_KEY_MAX);
	assert_memory_equal(d->key, key, LM_DLQ_KEY_MAX);
	assert_int_equal(d->len, LM_DLQ_VALUE_MAX);
	assert_memory_equal(d->payload, value, LM_DLQ_VALUE_MAX);
	all_headers(d, got, 1 << 16);
	snprintf(err, sizeof(err),
	    "lunamatch-headers-dropped=2\n"
	    "lunamatch-reason=bad_json\n"
	    "lunamatch-error=x: \"\\n\" is bad\n"
	    "lunamatch-source-topic=src-exact\n"
	    "lunamatch-source-partition=0\n"
	    "lunamatch-source-offset=1\n"
	    "lunamatch-value-truncated=%zu\n"
	    "lunamatch-key-truncated=%zu\n",
	    vlen, klen);
	assert_string_equal(got, err);
	rd_kafka_message_destroy(d);

	lm_dlq_free(q);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	free(value);
	free(key);
	free(big);
	free(got);
}

/*
 * Original headers are bounded however they are made up: more than
 * LM_DLQ_HEADER_COUNT_MAX of them (here of one byte each, within
 * LM_DLQ_HEADERS_MAX) are left out as too many bytes are, and a name is held as far
 * as its bytes are counted (up to a NUL in it), so that a name hiding its
 * bytes behind a NUL does not make the dead letter too large to send.
 */
static void
test_hostile_headers(void **state)
{
	enum { EMPTY = 60000, NAME = 1100000 };
	rd_kafka_t *c = client(RD_KAFKA_CONSUMER);
	rd_kafka_headers_t *h = rd_kafka_headers_new(16);
	rd_kafka_headers_t *h2 = rd_kafka_headers_new(2);
	char *name = calloc(1, NAME), *got = malloc(1 << 16);
	lm_dlq *q = NULL;
	char err[256], buf[64];
	(void) state;

	assert_non_null(name);
	assert_non_null(got);
	for (int i = 0; i < EMPTY; i++)
		rd_kafka_header_add(h, "h", 1, NULL, 0);
	memset(name + 1, 'n', NAME - 1);
	rd_kafka_header_add(h2, name, NAME, "v", 1);
	struct src_msg m[] = {{"k", 1, "{", 1, h}, {"k", 1, "{", 1, h2}};
	produce_src("src-hdrs", m, 2);
	q = send_letters(c, "src-hdrs", "dlq-hdrs", 2, "undecodable", "x");
	assert_int_equal(lm_dlq_dropped(q, LM_DLQ_DROP_TOO_LARGE), 0);
	assert_int_equal(lm_dlq_delivered(q), 2);

	rd_kafka_message_t *d = read_at(c, "dlq-hdrs", 0);
	snprintf(err, sizeof(err), "%d", EMPTY);
	assert_non_null(hdr(d, LM_DLQ_H_HEADERS_DROPPED, buf, sizeof(buf)));
	assert_string_equal(buf, err);
	assert_int_equal(hdr_count(d, "h"), 0);
	rd_kafka_message_destroy(d);
	d = read_at(c, "dlq-hdrs", 1);
	all_headers(d, got, 1 << 16);
	assert_string_equal(got, "=v\n"
	                         "lunamatch-reason=undecodable\n"
	                         "lunamatch-error=x\n"
	                         "lunamatch-source-topic=src-hdrs\n"
	                         "lunamatch-source-partition=0\n"
	                         "lunamatch-source-offset=1\n");
	rd_kafka_message_destroy(d);

	lm_dlq_free(q);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	free(name);
	free(got);
}

/* Bad broker lists are refused with a message, never a crash. */
static void
test_bad_brokers(void **state)
{
	lm_dlq *q = (lm_dlq *) 1;
	char err[256] = "";
	(void) state;

	assert_int_equal(lm_dlq_new("", "dlq", 0, NULL, &q, err, sizeof(err)), LM_EINVAL);
	assert_null(q);
	assert_non_null(strstr(err, "brokers"));
}

/* A message with its key, value and headers goes to the DLQ with the
 * verdict headers; stale verdict headers are replaced. */
static void
test_dead_letter(void **state)
{
	rd_kafka_t *p = client(RD_KAFKA_PRODUCER);
	rd_kafka_t *c = client(RD_KAFKA_CONSUMER);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	volatile int fatal = 0;
	lm_dlq *q = NULL;
	char err[256], buf[600], longerr[LM_DLQ_ERROR_MAX + 100];
	(void) state;

	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	rd_kafka_header_add(h, LM_DLQ_H_REASON, -1, "old", -1);
	assert_int_equal(
	    rd_kafka_producev(p, RD_KAFKA_V_TOPIC("src"), RD_KAFKA_V_PARTITION(0),
	        RD_KAFKA_V_KEY("job-1", 5), RD_KAFKA_V_VALUE("{nope", 5),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
	        RD_KAFKA_V_END),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_message_t *src = read_at(c, "src", RD_KAFKA_OFFSET_BEGINNING);

	assert_int_equal(
	    lm_dlq_new(M.brokers, "dlq", 0, &fatal, &q, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_OK); /* nothing sent */
	/* An error longer than the limit is cut at a character boundary. */
	memset(longerr, 'e', sizeof(longerr));
	memcpy(longerr + LM_DLQ_ERROR_MAX - 1, "\xc3\xa9", 2);
	longerr[sizeof(longerr) - 1] = '\0';
	assert_int_equal(send_msg(q, src, "bad_json", longerr, IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_delivered(q), 1);

	rd_kafka_message_t *d = read_at(c, "dlq", RD_KAFKA_OFFSET_BEGINNING);
	assert_int_equal(d->key_len, 5);
	assert_memory_equal(d->key, "job-1", 5);
	assert_int_equal(d->len, 5);
	assert_memory_equal(d->payload, "{nope", 5);
	assert_string_equal(hdr(d, "content-type", buf, sizeof(buf)), "application/json");
	assert_string_equal(hdr(d, LM_DLQ_H_REASON, buf, sizeof(buf)), "bad_json");
	assert_int_equal(hdr_count(d, LM_DLQ_H_REASON), 1);
	assert_int_equal(
	    strlen(hdr(d, LM_DLQ_H_ERROR, buf, sizeof(buf))), LM_DLQ_ERROR_MAX - 1);
	assert_string_equal(hdr(d, LM_DLQ_H_TOPIC, buf, sizeof(buf)), "src");
	assert_string_equal(hdr(d, LM_DLQ_H_PARTITION, buf, sizeof(buf)), "0");
	assert_string_equal(hdr(d, LM_DLQ_H_OFFSET, buf, sizeof(buf)), "0");
	rd_kafka_message_destroy(d);

	/* The error is one line: control characters it quotes from the
	 * input are escaped; other text, UTF-8 included, is kept. */
	assert_int_equal(send_msg(q, src, "bad_skill",
	                     "skills[0].name: \"-\n-\r\t\x1b[31m\x7f\xc2\x9b\" is not a "
	                     "skill name (caf\xc3\xa9)",
	                     IO_MS, NULL),
	    LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_OK);
	d = read_at(c, "dlq", 1);
	assert_string_equal(hdr(d, LM_DLQ_H_ERROR, buf, sizeof(buf)),
	    "skills[0].name: \"-\\n-\\r\\t\\x1b[31m\\x7f\\xc2\\x9b\" is not a "
	    "skill name (caf\xc3\xa9)");
	rd_kafka_message_destroy(d);

	/* A transient delivery failure fails the flush; the next flush starts
	 * afresh. */
	rd_kafka_mock_push_request_errors(
	    M.mc, KAFKA_API_PRODUCE, 1, RD_KAFKA_RESP_ERR_POLICY_VIOLATION);
	assert_int_equal(send_msg(q, src, "schema", "x", IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_EKAFKA);
	assert_int_equal(lm_dlq_delivered(q), 2);
	assert_int_equal(send_msg(q, src, "schema", "x", IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_delivered(q), 3);

	/* A permanent one drops the dead letter: counted, and the flush
	 * succeeds, so the batch is not retried forever. */
	rd_kafka_mock_push_request_errors(
	    M.mc, KAFKA_API_PRODUCE, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	assert_int_equal(send_msg(q, src, "schema", "x", IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_delivered(q), 3);
	assert_int_equal(lm_dlq_dropped(q, LM_DLQ_DROP_TOO_LARGE), 1);
	assert_int_equal(lm_dlq_dropped(q, LM_DLQ_DROP_INVALID), 0);
	rd_kafka_mock_push_request_errors(
	    M.mc, KAFKA_API_PRODUCE, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
	assert_int_equal(send_msg(q, src, "schema", "x", IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_dropped(q, LM_DLQ_DROP_INVALID), 1);
	assert_string_equal(lm_dlq_drop_name(LM_DLQ_DROP_TOO_LARGE), "too_large");
	assert_null(lm_dlq_drop_name(LM_DLQ_DROP_COUNT_));

	/* A stop ends the wait for reports at once: not delivered yet. */
	atomic_int stop = 1;
	assert_int_equal(send_msg(q, src, "schema", "x", IO_MS, NULL), LM_OK);
	assert_int_equal(lm_dlq_flush(q, IO_MS, &stop), LM_ETIMEDOUT);
	assert_int_equal(fatal, 0);

	lm_dlq_free(q);
	lm_dlq_free(NULL);
	rd_kafka_message_destroy(src);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	rd_kafka_destroy(p);
}

/* StoreNotify {last_seq} arrives at a subscriber; no subscriber is fine. */
static void
test_notify(void **state)
{
	char *dir = lmt_tmpdir("notify");
	char url[4200];
	lm_notify *n = NULL;
	nng_socket s;
	uint64_t got = 0;
	(void) state;

	snprintf(url, sizeof(url), "ipc://%s/n.ipc", dir);
	assert_int_equal(lm_notify_open("bogus://x", &n), LM_EINVAL);
	assert_int_equal(lm_notify_open(url, &n), LM_OK);
	assert_int_equal(lm_notify_send(n, 1), LM_OK); /* nobody listens */

	assert_int_equal(nng_sub0_open(&s), 0);
	assert_int_equal(nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 100), 0);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	/* A subscription takes a moment to be in place: send until one arrives. */
	for (int i = 0; i < 100 && got == 0; i++) {
		void *buf = NULL;
		size_t len = 0;
		assert_int_equal(lm_notify_send(n, UINT64_C(1) << 40), LM_OK);
		if (nng_recv(s, &buf, &len, NNG_FLAG_ALLOC) == 0) {
			Lunamatch__V1__StoreNotify *m =
			    lunamatch__v1__store_notify__unpack(NULL, len, buf);
			assert_non_null(m);
			got = m->last_seq;
			lunamatch__v1__store_notify__free_unpacked(m, NULL);
			nng_free(buf, len);
		}
	}
	assert_int_equal(got, UINT64_C(1) << 40);
	nng_close(s);
	lm_notify_close(n);
	lm_notify_close(NULL);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dead_letter),
	    cmocka_unit_test(test_oversize_dead_letter),
	    cmocka_unit_test(test_dead_letter_exact),
	    cmocka_unit_test(test_hostile_headers),
	    cmocka_unit_test(test_bad_brokers),
	    cmocka_unit_test(test_notify),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
