/*
 * kafkatest.c - brokers, producers and consumers for the integration tests;
 * see kafkatest.h for the contracts.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/events.pb-c.h"

/* Topics lmt_broker_open takes (devkafka knows four). */
#define TOPICS_MAX 8
/* Room for one "VAR=name" topic variable. */
#define TOPIC_ENV_LEN (64 + LM_KAFKA_TOPIC_MAX)
/* Tries of a producev while librdkafka's queue is full, 10 ms apart. */
#define QUEUE_FULL_TRIES 1000

const char *
lmt_kafka_real_brokers(void)
{
	const char *b = getenv("LUNAMATCH_TEST_BROKERS");
	return b != NULL && *b != '\0' ? b : NULL;
}

int
lmt_devkafka_start(lmt_broker *b, int partitions, const char *const env[])
{
	char parts[16], line[LMT_KAFKA_BROKERS_MAX];
	int rv;

	memset(b, 0, sizeof(*b));
	snprintf(parts, sizeof(parts), "%d", partitions);
	const char *argv[] = {lmt_bin("lunamatch-devkafka"), "--partitions", parts, NULL};
	if ((rv = lmt_proc_start(argv, env, &b->dk)) != LM_OK) {
		fprintf(stderr, "cannot start %s: %s\n", argv[0], lm_strerror(rv));
		return rv;
	}
	rv = lmt_proc_readline(b->dk, line, sizeof(line), LMT_KAFKA_START_MS);
	if (rv == LM_OK && strncmp(line, "127.0.0.1:", 10) != 0)
		rv = LM_EPARSE;
	if (rv != LM_OK) {
		fprintf(stderr, "devkafka printed no bootstrap address: \"%s\" (%s)\n",
		    line, lm_strerror(rv));
		lmt_proc_free(b->dk);
		b->dk = NULL;
		return rv;
	}
	snprintf(b->brokers, sizeof(b->brokers), "%s", line);
	return LM_OK;
}

void
lmt_broker_open(lmt_broker *b, int partitions, const lmt_topic *topics, size_t n)
{
	const char *real = lmt_kafka_real_brokers();

	assert_true(n <= TOPICS_MAX);
	memset(b, 0, sizeof(*b));
	if (real == NULL) {
		char env[TOPICS_MAX][TOPIC_ENV_LEN];
		const char *envp[TOPICS_MAX + 1];
		for (size_t i = 0; i < n; i++) {
			int w = snprintf(env[i], sizeof(env[i]), "%s=%s", topics[i].var,
			    topics[i].name);
			assert_true(w > 0 && (size_t) w < sizeof(env[i]));
			envp[i] = env[i];
		}
		envp[n] = NULL;
		assert_int_equal(lmt_devkafka_start(b, partitions, envp), LM_OK);
		return;
	}

	const char *names[TOPICS_MAX];
	char err[512];
	b->real = true;
	assert_true(strlen(real) < sizeof(b->brokers));
	snprintf(b->brokers, sizeof(b->brokers), "%s", real);
	for (size_t i = 0; i < n; i++)
		names[i] = topics[i].name;
	lmt_producer *p = lmt_producer_new(b->brokers, "lmtest-admin", NULL);
	if (lm_kafka_create_topics(
	        p->rk, names, n, partitions, LMT_KAFKA_IO_MS, err, sizeof(err)) != LM_OK)
		fail_msg("create topics: %s", err);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(
		    lmt_kafka_wait_topic(p->rk, names[i], 10000), partitions);
	lmt_producer_free(p);
}

void
lmt_broker_close(lmt_broker *b)
{
	if (b == NULL || b->dk == NULL)
		return;
	/* SIGCONT: a test may have left it stopped (SIGSTOP) on failure. */
	if (lmt_proc_signal(b->dk, SIGTERM) == LM_OK &&
	    lmt_proc_signal(b->dk, SIGCONT) == LM_OK)
		lmt_proc_wait(b->dk, LMT_DEVKAFKA_STOP_MS, NULL);
	lmt_proc_free(b->dk);
	b->dk = NULL;
}

int
lmt_kafka_wait_topic(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
	int64_t end = lm_clock_ms() + timeout_ms;
	int n = 0;

	for (;;) {
		if (lm_kafka_topic_partitions(rk, topic, LMT_KAFKA_IO_MS, &n) == LM_OK)
			return n;
		if (lm_clock_ms() >= end)
			return 0;
		lmt_sleep_ms(100);
	}
}

rd_kafka_resp_err_t
lmt_mock_topic_create(rd_kafka_mock_cluster_t *mc, const char *topic, int partitions)
{
	rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, partitions, 1);

	lmt_sleep_ms(LMT_MOCK_OP_PAUSE_MS);
	return e;
}

/* Sets the "name", "value", ..., NULL pairs of props on c. */
static void
set_props(rd_kafka_conf_t *c, const char *const props[])
{
	char err[512];

	for (size_t i = 0; props != NULL && props[i] != NULL; i += 2) {
		assert_non_null(props[i + 1]);
		if (lm_kafka_set(c, props[i], props[i + 1], err, sizeof(err)) != LM_OK)
			fail_msg("%s=%s: %s", props[i], props[i + 1], err);
	}
}

/* Makes the handle (which takes c over) and waits for metadata. */
static rd_kafka_t *
new_handle(rd_kafka_type_t type, rd_kafka_conf_t *c)
{
	char err[512];
	rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof(err));

	if (rk == NULL) {
		rd_kafka_conf_destroy(c);
		fail_msg("rd_kafka_new: %s", err);
	}
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_poll_set_consumer(rk);
	assert_int_equal(lm_kafka_wait_metadata(rk, LMT_KAFKA_START_MS), LM_OK);
	return rk;
}

/* Delivery report: counts on the lmt_producer that is the opaque. */
static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	lmt_producer *p = opaque;
	(void) rk;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		atomic_fetch_add(&p->delivered, 1);
	else
		atomic_fetch_add(&p->failed, 1);
}

lmt_producer *
lmt_producer_new(const char *brokers, const char *client_id, const char *const props[])
{
	rd_kafka_conf_t *c = NULL;
	lmt_producer *p = calloc(1, sizeof(*p));
	char err[512];

	assert_non_null(p);
	atomic_init(&p->delivered, 0);
	atomic_init(&p->failed, 0);
	if (lm_kafka_conf(brokers, client_id, &c, err, sizeof(err)) != LM_OK)
		fail_msg("producer configuration: %s", err);
	set_props(c, props);
	rd_kafka_conf_set_opaque(c, p);
	rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
	p->rk = new_handle(RD_KAFKA_PRODUCER, c);
	return p;
}

void
lmt_producer_free(lmt_producer *p)
{
	if (p == NULL)
		return;
	rd_kafka_destroy(p->rk);
	free(p);
}

void
lmt_produce(lmt_producer *p, const char *topic, int32_t partition, const char *key,
    const void *value, size_t len, const char *const headers[])
{
	rd_kafka_headers_t *h = NULL;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	size_t klen = key != NULL ? strlen(key) : 0;

	if (headers != NULL) {
		size_t n = 0;
		while (headers[n] != NULL)
			n += 2;
		h = rd_kafka_headers_new(n / 2);
		for (size_t i = 0; i < n; i += 2) {
			assert_non_null(headers[i + 1]);
			rd_kafka_header_add(h, headers[i], -1, headers[i + 1], -1);
		}
	}
	for (int i = 0; i < QUEUE_FULL_TRIES; i++) {
		e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
		    RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, klen),
		    RD_KAFKA_V_VALUE((void *) value, len),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(p->rk, 10);
	}
	/* On success the message owns the headers. */
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR && h != NULL)
		rd_kafka_headers_destroy(h);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		fail_msg("produce to %s: %s", topic, rd_kafka_err2str(e));
	rd_kafka_poll(p->rk, 0);
}

void
lmt_produce_pb(
    lmt_producer *p, const char *topic, const char *key, const ProtobufCMessage *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	lmt_produce(p, topic, RD_KAFKA_PARTITION_UA, key, buf, len, NULL);
	free(buf);
}

int
lmt_producer_flush(lmt_producer *p, int timeout_ms)
{
	assert_int_equal(rd_kafka_flush(p->rk, timeout_ms), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(atomic_load(&p->failed), 0);
	return atomic_load(&p->delivered);
}

rd_kafka_t *
lmt_kafka_consumer(const char *brokers, const char *client_id, const char *group,
    const char *const props[])
{
	rd_kafka_conf_t *c = NULL;
	char err[512];

	if (lm_kafka_conf(brokers, client_id, &c, err, sizeof(err)) != LM_OK)
		fail_msg("consumer configuration: %s", err);
	set_props(c, (const char *const[]){
	                 "group.id", group, "enable.auto.commit", "false", NULL});
	set_props(c, props);
	return new_handle(RD_KAFKA_CONSUMER, c);
}

void
lmt_kafka_assign(rd_kafka_t *c, const char *topic, int n, const int64_t *from)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);

	assert_true(n >= 1);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, topic, i)->offset =
		    from != NULL ? from[i] : RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
}

void
lmt_kafka_consumer_free(rd_kafka_t *c)
{
	if (c == NULL)
		return;
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
}

int64_t
lmt_group_committed(const char *brokers, const char *group, const char *topic,
    int32_t partition, size_t *metalen)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_t *c;
	char err[256];
	int64_t off;

	assert_int_equal(
	    lm_kafka_conf(brokers, "lmtest-committed", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_kafka_set(conf, "group.id", group, err, sizeof(err)), LM_OK);
	assert_non_null(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)));
	rd_kafka_topic_partition_list_add(l, topic, partition);
	assert_int_equal(rd_kafka_committed(c, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	off = l->elems[0].offset;
	if (metalen != NULL)
		*metalen = l->elems[0].metadata_size;
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy_flags(c, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	return off;
}

char *
lmt_kafka_header(const rd_kafka_message_t *m, const char *name, size_t *len)
{
	rd_kafka_headers_t *h = NULL;
	const void *v = NULL;
	size_t n = 0;
	char *s;

	if (len != NULL)
		*len = 0;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	assert_non_null(s = malloc(n + 1));
	if (n > 0)
		memcpy(s, v, n);
	s[n] = '\0';
	if (len != NULL)
		*len = n;
	return s;
}

struct Lunamatch__V1__MatchEvent *
lmt_poll_match_event(rd_kafka_t *c, int timeout_ms)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(c, timeout_ms);
	ProtobufCMessage *msg = NULL;
	char err[256];

	if (m == NULL)
		return NULL;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->payload != NULL) {
		assert_int_equal(
		    lm_pb_decode(&lunamatch__v1__match_event__descriptor, m->payload,
		        m->len, 1u << 20, &msg, err, sizeof(err)),
		    LM_OK);
		const Lunamatch__V1__MatchEvent *e = (const void *) msg;
		assert_int_equal(m->key_len, strlen(e->candidate_id));
		assert_memory_equal(m->key, e->candidate_id, m->key_len);
		assert_int_equal(strlen(e->event_id), 32);
	}
	rd_kafka_message_destroy(m);
	return (struct Lunamatch__V1__MatchEvent *) msg;
}
