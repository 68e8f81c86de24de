/*
 * test_consumer.c - the ingest consumer loop, in-process, against
 * librdkafka's mock cluster, a real LMDB store and the real taxonomy: a stop
 * after a fatal Kafka error.
 *
 * Each test runs lm_consumer_run on its own thread with its own group and
 * topics, so that tests do not see each other's messages or offsets.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "consumer.h"
#include "dlq.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "records.h"

#define IO_MS 20000

static struct {
	rd_kafka_t *owner; /* handle that owns the mock cluster */
	rd_kafka_mock_cluster_t *mc;
	char brokers[256];
	lmt_records r;
} M;

/* One consumer under test and what it runs on. */
struct run {
	lm_config cfg;
	char *dir;
	lm_store *store;
	lm_metrics *metrics;
	lm_consumer *c;
	volatile sig_atomic_t stop;
	pthread_t thread;
	int rv;
};

static int
setup(void **state)
{
	rd_kafka_conf_t *c = NULL;
	char err[256];
	(void) state;

	lm_log_set_level(LM_LOG_ERROR);
	lmt_records_open(&M.r, 4);
	if (lm_kafka_conf(NULL, "lmtest-mock", &c, err, sizeof(err)) != LM_OK)
		return -1;
	if ((M.owner = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err))) == NULL)
		return -1;
	if ((M.mc = rd_kafka_mock_cluster_new(M.owner, 1)) == NULL)
		return -1;
	snprintf(
	    M.brokers, sizeof(M.brokers), "%s", rd_kafka_mock_cluster_bootstraps(M.mc));
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	rd_kafka_mock_cluster_destroy(M.mc);
	rd_kafka_destroy(M.owner);
	lmt_records_close(&M.r);
	return 0;
}

static void *
run_main(void *arg)
{
	struct run *r = arg;
	r->rv = lm_consumer_run(r->c);
	return NULL;
}

/* Creates topics <tag>.postings/.profiles/.dlq and a consumer of group
 * <tag>; does not start it. */
static void
prepare(struct run *r, const char *tag)
{
	lm_consumer_opts o;
	char err[256];

	memset(r, 0, sizeof(*r));
	snprintf(r->cfg.brokers, sizeof(r->cfg.brokers), "%s", M.brokers);
	snprintf(
	    r->cfg.topic_postings, sizeof(r->cfg.topic_postings), "%s.postings", tag);
	snprintf(
	    r->cfg.topic_profiles, sizeof(r->cfg.topic_profiles), "%s.profiles", tag);
	snprintf(r->cfg.topic_dlq, sizeof(r->cfg.topic_dlq), "%s.dlq", tag);
	snprintf(r->cfg.group_id, sizeof(r->cfg.group_id), "%s", tag);
	r->cfg.batch_max = 50;
	r->cfg.batch_ms = 100;
	rd_kafka_mock_topic_create(M.mc, r->cfg.topic_postings, 1, 1);
	rd_kafka_mock_topic_create(M.mc, r->cfg.topic_profiles, 1, 1);
	rd_kafka_mock_topic_create(M.mc, r->cfg.topic_dlq, 1, 1);
	r->dir = lmt_tmpdir(tag);
	assert_int_equal(lm_store_open(r->dir, NULL, &r->store), LM_OK);
	assert_int_equal(lm_metrics_new(&r->metrics), LM_OK);
	o = (lm_consumer_opts){.cfg = &r->cfg,
	    .store = r->store,
	    .ctx = &M.r.ctx,
	    .metrics = r->metrics,
	    .stop = &r->stop};
	if (lm_consumer_new(&o, &r->c, err, sizeof(err)) != LM_OK)
		fail_msg("lm_consumer_new: %s", err);
}

static void
start(struct run *r)
{
	assert_int_equal(pthread_create(&r->thread, NULL, run_main, r), 0);
}

static void
finish(struct run *r)
{
	lm_consumer_free(r->c);
	lm_metrics_free(r->metrics);
	lm_store_close(r->store);
	lmt_rmtree(r->dir);
	free(r->dir);
}

/* A producer that takes messages far over the usual size limits. */
static rd_kafka_t *
producer(void)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[256];

	assert_int_equal(lm_kafka_conf(M.brokers, "lmtest", &c, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(c, "message.max.bytes", "8000000", err, sizeof(err)), LM_OK);
	assert_non_null(rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err)));
	return rk;
}

static void
produce(rd_kafka_t *p, const char *topic, const char *key, const void *value, size_t len)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(1);
	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	assert_int_equal(
	    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
	        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *) value, len),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
	        RD_KAFKA_V_END),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void
produce_posting(rd_kafka_t *p, const char *topic, const char *id)
{
	char json[256];
	snprintf(json, sizeof(json),
	    "{\"id\":\"%s\",\"version\":1,\"title\":\"T\",\"skills\":[{\"name\":\"JS\"}]"
	    "}",
	    id);
	produce(p, topic, id, json, strlen(json));
}

/* Waits (bounded) until posting id is in the store. */
static void
wait_stored(struct run *r, const char *id)
{
	for (int i = 0; i < IO_MS / 50; i++) {
		if (lm_store_get(r->store, LM_KIND_POSTING, id, NULL, NULL, NULL) ==
		    LM_OK)
			return;
		lmt_sleep_ms(50);
	}
	fail_msg("posting %s not stored", id);
}

/* Waits (bounded) until the consumer has partitions. */
static void
wait_assigned(struct run *r)
{
	char why[128];
	for (int i = 0; i < IO_MS / 50; i++) {
		if (lm_consumer_ready(r->c, why, sizeof(why)) == LM_OK)
			return;
		lmt_sleep_ms(50);
	}
	fail_msg("consumer not ready: %s", why);
}

/* A fatal Kafka error ends the loop with LM_EKAFKA, and the consumer is
 * freed without its callbacks touching freed memory (clean under ASan). */
static void
test_fatal_error(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	prepare(&r, "cons-fatal");
	start(&r);
	produce_posting(p, r.cfg.topic_postings, "job-1");
	wait_stored(&r, "job-1");
	wait_assigned(&r);
	/* The idempotent DLQ producer is where a fatal error comes from. */
	assert_int_equal(
	    rd_kafka_test_fatal_error(lm_consumer_kafka(r.c, true),
	        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test fatal"),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.rv, LM_EKAFKA);
	finish(&r);
	rd_kafka_destroy(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fatal_error),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
