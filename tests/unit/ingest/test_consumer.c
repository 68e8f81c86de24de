/*
 * test_consumer.c - the ingest consumer loop, in-process, against
 * librdkafka's mock cluster, a real LMDB store and the real taxonomy: a stop
 * after a fatal Kafka error, and the failure paths armed through the
 * consumer's failure points (lm_consumer_fail_next): a failed store commit,
 * dead letters not delivered, a message that cannot be processed, each
 * retried with backoff and acknowledged only once done; a revocation; the
 * readiness that waits for the first catch-up.
 *
 * Each test runs lm_consumer_run on its own thread with its own group and
 * topics, so that tests do not see each other's messages or offsets.
 */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <lmdb.h>

#include "consumer.h"
#include "dlq.h"
#include "ingest.h"
#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/kafka.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"
#include "offsets.h"
#include "trimmer.h"
#include "records.h"
#include "svctest.h"

#define IO_MS 20000
/* The consumers' group session: the mock cluster holds a rebalance after a
 * member left or joined (a restart on the same group, a second member) for
 * the session timeout less 1 s, 9 s at the default. */
#define SESSION_MS              3000
#define KAFKA_API_PRODUCE       0 /* Kafka protocol ApiKeys */
#define KAFKA_API_OFFSET_COMMIT 8
#define MOCK_BROKER             1 /* the id of the mock cluster's broker */

#ifdef __SANITIZE_ADDRESS__
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

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
	atomic_int stop;
	pthread_t thread;
	int rv;
	unsigned auto_commit_ms;  /* 0: the default */
	unsigned stall_ms;        /* 0: the default */
	unsigned write_stall_ms;  /* 0: the default */
	unsigned dlq_queue_kb;    /* 0: the default */
	lm_trimmer *trimmer;      /* NULL: none; the test frees it */
	const lm_record_ctx *ctx; /* NULL: M.r.ctx */
	atomic_bool done;         /* lm_consumer_run returned */
	unsigned current_ms;      /* 0: the default */
};

/* Seconds the wall clock of the consumers under test is ahead of the
 * system's: how long a store was left, as the consumer sees it. */
static atomic_llong wall_ahead;
/* When not 0, the time the consumers' wall clock stands still at. */
static atomic_llong wall_fixed;

/* The consumers' wall clock (lm_consumer_opts.wall_s). */
static int64_t
test_wall(void)
{
	struct timespec ts;

	if (atomic_load(&wall_fixed) != 0)
		return (int64_t) atomic_load(&wall_fixed);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec + (int64_t) atomic_load(&wall_ahead);
}

/* The consumers' reads of the topics' partition counts
 * (lm_consumer_opts.topics_partitions): how many since reads_reset, the
 * shortest time between two of them, and whether one asked for other
 * topics than both input topics of the run the reads are reset for. */
static struct {
	atomic_int n;
	atomic_llong last_ms, min_gap_ms;
	atomic_bool other;
	lm_config cfg; /* a copy of the run's, set before it starts */
} reads;

static void
reads_reset(const struct run *r)
{
	atomic_store(&reads.n, 0);
	atomic_store(&reads.last_ms, -1);
	atomic_store(&reads.min_gap_ms, INT64_MAX);
	atomic_store(&reads.other, false);
	reads.cfg = r->cfg;
}

/* The consumers' lm_consumer_opts.topics_partitions: counts the read. */
static int
test_topics_partitions(rd_kafka_t *rk, const char *const *topics, size_t n,
    int timeout_ms, int *counts, int *rvs)
{
	long long now = (long long) lm_clock_ms(), last = atomic_load(&reads.last_ms);

	if (last >= 0 && now - last < atomic_load(&reads.min_gap_ms))
		atomic_store(&reads.min_gap_ms, now - last);
	atomic_store(&reads.last_ms, now);
	if (n != 2 || strcmp(topics[0], reads.cfg.topic_postings) != 0 ||
	    strcmp(topics[1], reads.cfg.topic_profiles) != 0)
		atomic_store(&reads.other, true);
	atomic_fetch_add(&reads.n, 1);
	return lm_kafka_topics_partitions(rk, topics, n, timeout_ms, counts, rvs);
}

static int
setup(void **state)
{
	rd_kafka_conf_t *c = NULL;
	char err[256];
	(void) state;

	lm_log_set_level(getenv("LMT_DEBUG") ? LM_LOG_INFO : LM_LOG_ERROR);
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
	atomic_store(&r->done, true);
	return NULL;
}

/* A new consumer (and metrics) for r's configuration and store. */
static void
new_consumer(struct run *r)
{
	lm_consumer_opts o;
	char err[256];

	assert_int_equal(lm_metrics_new(&r->metrics), LM_OK);
	o = (lm_consumer_opts){.cfg = &r->cfg,
	    .store = r->store,
	    .ctx = r->ctx != NULL ? r->ctx : &M.r.ctx,
	    .metrics = r->metrics,
	    .stop = &r->stop,
	    .auto_commit_ms = r->auto_commit_ms,
	    .stall_ms = r->stall_ms,
	    .write_stall_ms = r->write_stall_ms,
	    .dlq_queue_kb = r->dlq_queue_kb,
	    .session_ms = SESSION_MS,
	    .trimmer = r->trimmer,
	    .wall_s = test_wall,
	    .current_ms = r->current_ms,
	    .topics_partitions = test_topics_partitions};
	if (lm_consumer_new(&o, &r->c, err, sizeof(err)) != LM_OK)
		fail_msg("lm_consumer_new: %s", err);
}

/* Creates topics <tag>.postings/.profiles/.dlq and a consumer of group
 * <tag>; does not start it. */
/* As prepare, with the store in a directory of its own (dir_tag), and
 * auto-commit and batch windows of the test's choosing. */
static void
prepare_ex(struct run *r, const char *tag, const char *dir_tag, unsigned auto_commit_ms,
    unsigned batch_ms)
{
	memset(r, 0, sizeof(*r));
	r->auto_commit_ms = auto_commit_ms;
	snprintf(r->cfg.brokers, sizeof(r->cfg.brokers), "%s", M.brokers);
	snprintf(
	    r->cfg.topic_postings, sizeof(r->cfg.topic_postings), "%s.postings", tag);
	snprintf(
	    r->cfg.topic_profiles, sizeof(r->cfg.topic_profiles), "%s.profiles", tag);
	snprintf(r->cfg.topic_dlq, sizeof(r->cfg.topic_dlq), "%s.dlq", tag);
	snprintf(r->cfg.group_id, sizeof(r->cfg.group_id), "%s", tag);
	r->cfg.batch_max = 50;
	r->cfg.batch_ms = batch_ms;
	r->cfg.store_max_age_s = 86400;
	atomic_store(&wall_ahead, 0);
	atomic_store(&wall_fixed, 0);
	lmt_mock_topic_create(M.mc, r->cfg.topic_postings, 1);
	lmt_mock_topic_create(M.mc, r->cfg.topic_profiles, 1);
	lmt_mock_topic_create(M.mc, r->cfg.topic_dlq, 1);
	r->dir = lmt_tmpdir(dir_tag);
	assert_int_equal(lm_store_open(r->dir, NULL, &r->store), LM_OK);
	new_consumer(r);
}

static void
prepare(struct run *r, const char *tag)
{
	prepare_ex(r, tag, tag, 0, 100);
}

static void
start(struct run *r)
{
	atomic_store(&r->done, false);
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

/* Stops r's consumer (which must end without error), frees the run and
 * producer p. */
static void
end_run(struct run *r, rd_kafka_t *p)
{
	r->stop = 1;
	assert_int_equal(pthread_join(r->thread, NULL), 0);
	assert_int_equal(r->rv, LM_OK);
	finish(r);
	rd_kafka_destroy(p);
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

/*
 * Makes p fetch topic's metadata unless it did for the last few (p, topic)
 * pairs: a producer's first message to a topic it has no metadata for
 * waited about 1 s (librdkafka's topic scan). A handle freed and made again
 * at the same address may be taken as warm: its first message waits then.
 */
static void
warm(rd_kafka_t *p, const char *topic)
{
	static struct {
		rd_kafka_t *p;
		char topic[LM_KAFKA_TOPIC_MAX + 1];
	} seen[16];
	static size_t next;

	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		if (seen[i].p == p && strcmp(seen[i].topic, topic) == 0)
			return;
	assert_true(lmt_kafka_wait_topic(p, topic, IO_MS) > 0);
	seen[next].p = p;
	snprintf(seen[next].topic, sizeof(seen[next].topic), "%s", topic);
	next = (next + 1) % (sizeof(seen) / sizeof(seen[0]));
}

/* Queues a JSON message for partition 0 of topic; rd_kafka_flush sends it. */
static void
queue(rd_kafka_t *p, const char *topic, const char *key, const void *value, size_t len)
{
	rd_kafka_headers_t *h;

	warm(p, topic);
	h = rd_kafka_headers_new(1);
	rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
	assert_int_equal(
	    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
	        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *) value, len),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
	        RD_KAFKA_V_END),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Sends n valid postings job-0 .. job-(n-1) to topic. */
static void
queue_postings(rd_kafka_t *p, const char *topic, int n)
{
	char id[32], json[256];
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		snprintf(json, sizeof(json),
		    "{\"id\":\"%s\",\"version\":1,\"title\":\"T\","
		    "\"skills\":[{\"name\":\"JS\"}]}",
		    id);
		queue(p, topic, id, json, strlen(json));
	}
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void
produce(rd_kafka_t *p, const char *topic, const char *key, const void *value, size_t len)
{
	queue(p, topic, key, value, len);
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

/* ---- failure paths -------------------------------------------------------- */

/* A metric of the run, -1 when absent. */
static double
metric(struct run *r, const char *series)
{
	char *text = NULL;
	size_t len = 0;
	double v;

	assert_int_equal(lm_metrics_render(r->metrics, &text, &len), LM_OK);
	v = lmt_prom_value(text, series);
	free(text);
	return v;
}

/* The group's committed offset of partition 0 of topic (-1001: none). */
static int64_t
committed(struct run *r, const char *topic)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	int64_t off;

	rd_kafka_topic_partition_list_add(l, topic, 0);
	assert_int_equal(rd_kafka_committed(lm_consumer_kafka(r->c, false), l, IO_MS),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	off = l->elems[0].offset;
	rd_kafka_topic_partition_list_destroy(l);
	return off;
}

static void
wait_committed(struct run *r, const char *topic, int64_t want)
{
	int64_t got = -1;
	for (int i = 0; i < IO_MS / 100; i++) {
		if ((got = committed(r, topic)) == want)
			return;
		lmt_sleep_ms(100);
	}
	fail_msg("committed offset %" PRId64 ", expected %" PRId64, got, want);
}

/* Waits (bounded) until the consumer reports failing batches. */
static void
wait_failing(struct run *r)
{
	char why[128] = "";
	for (int i = 0; i < IO_MS / 10; i++) {
		if (lm_consumer_ready(r->c, why, sizeof(why)) == LM_EBUSY &&
		    strstr(why, "failing") != NULL)
			return;
		lmt_sleep_ms(10);
	}
	fail_msg("consumer never reported failing batches (last: %s)", why);
}

/* Where the store holds partition 0 of topic stored up to (-1: nowhere). */
static int64_t
store_at(struct run *r, const char *topic)
{
	uint32_t epoch = 0;
	int64_t next = -1;
	int rv = lm_ingest_offset_get(r->store, topic, 0, &epoch, &next);
	assert_true(rv == LM_OK || rv == LM_ENOENT);
	return rv == LM_OK ? next : -1;
}

/* Messages of the dead-letter topic, read from the beginning. */
static int
count_dlq(const char *topic, int want)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[256];
	int n = 0;

	assert_int_equal(
	    lm_kafka_conf(M.brokers, "lmtest-dlq", &c, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_kafka_set(c, "group.id", topic, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(c, "enable.auto.commit", "false", err, sizeof(err)), LM_OK);
	assert_non_null(rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err)));
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, 0)->offset =
	    RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	for (int64_t end = lm_clock_ms() + IO_MS; n < want && lm_clock_ms() < end;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
			n++;
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return n;
}

/*
 * A store commit that fails four times: the batch is retried with backoff
 * (100, 200, 400, 800 ms), /readyz says the batches fail meanwhile (and
 * /startedz stays 200: ingest caught up once), nothing
 * is acknowledged before the fifth attempt stores the batch, then its
 * offsets are committed and the consumer is ready again. (The checks made
 * while it fails have the 1.5 s of backoff to run in, on a loaded machine.)
 */
static void
test_store_failure(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	prepare(&r, "cons-storefail");
	start(&r);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	wait_stored(&r, "job-0");
	wait_committed(&r, r.cfg.topic_postings, 1);

	double took0 = metric(&r, "lunamatch_ingest_batch_seconds_sum");
	double batches0 = metric(&r, "lunamatch_ingest_batch_seconds_count");
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_STORE, 4);
	int64_t t0 = lm_clock_ms();
	produce_posting(p, r.cfg.topic_postings, "job-1");
	produce_posting(p, r.cfg.topic_postings, "job-2");
	wait_failing(&r);
	/* Started stays: the pod keeps serving queries from what is stored. */
	char why[128] = "";
	assert_int_equal(lm_consumer_started(r.c, why, sizeof(why)), LM_OK);
	assert_int_equal(
	    lm_store_get(r.store, LM_KIND_POSTING, "job-1", NULL, NULL, NULL), LM_ENOENT);
	assert_int_equal(committed(&r, r.cfg.topic_postings), 1);
	wait_stored(&r, "job-2");
	/* Four failed attempts waited 100 + 200 + 400 + 800 ms after them. */
	assert_true(lm_clock_ms() - t0 >= 1500);
	wait_stored(&r, "job-1");
	assert_int_equal(metric(&r, "lunamatch_ingest_batch_failures_total"), 4);
	wait_committed(&r, r.cfg.topic_postings, 3);
	/* The time to store the batch counts its failed attempts and their
	 * back-off: the 1.5 s, in one of the one or two batches observed. */
	double batches = metric(&r, "lunamatch_ingest_batch_seconds_count") - batches0;
	assert_true(batches >= 1 && batches <= 2);
	assert_true(metric(&r, "lunamatch_ingest_batch_seconds_sum") - took0 >= 1.5);
	wait_assigned(&r); /* ready again */
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), 3);

	end_run(&r, p);
}

/*
 * A stop while a batch fails (the store refuses it) gives the batch up, and
 * nothing after it is committed: not even the partition's end, which came
 * while the batch was being written and was kept for "between batches".
 * Stored then, it would have moved the group's offset past job-1, never
 * stored.
 */
static void
test_stop_while_failing(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	prepare(&r, "cons-stopfail");
	start(&r);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	wait_stored(&r, "job-0");
	wait_committed(&r, r.cfg.topic_postings, 1);
	/* The batch's first write is slow, so the partition's end comes
	 * while it is in flight, and then fails, as every retry does. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_STORE, 1000);
	produce_posting(p, r.cfg.topic_postings, "job-1");
	wait_failing(&r);
	r.stop = 1;
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(
	    lm_store_get(r.store, LM_KIND_POSTING, "job-1", NULL, NULL, NULL), LM_ENOENT);
	assert_int_equal(
	    lmt_group_committed(M.brokers, r.cfg.group_id, r.cfg.topic_postings, 0, NULL),
	    1);
	finish(&r);
	rd_kafka_destroy(p);
}

/*
 * The store is trimmed while input keeps coming. Every store write takes
 * 2 s (LM_CONSUMER_FAULT_SLOW_STORE) and a posting comes every 100 ms, so
 * the consumer is never idle with no batch in flight; the trim runs before
 * a batch is handed to the writer all the same, once it is due (the first
 * one ran before any input: the next is due TRIM_INTERVAL_MS later, the
 * trimmer's interval here). Before, trims waited for a pause in the input,
 * and under a steady stream the change log grew without bound.
 */
#define TRIM_INTERVAL_MS 2000
static void
test_trim_under_steady_input(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	lm_metrics *tm = NULL;
	lm_trimmer_opts to = {.max = 1, .interval_ms = TRIM_INTERVAL_MS};
	int64_t end;
	uint64_t trimmed = 0;
	int n = 0;
	char id[32];

	(void) state;
	prepare(&r, "cons-trimbusy");
	/* Again with a trimmer, which must exist before the consumer. */
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	assert_int_equal(lm_metrics_new(&tm), LM_OK);
	to.store = r.store;
	to.metrics = tm;
	assert_int_equal(lm_trimmer_new(&to, &r.trimmer), LM_OK);
	new_consumer(&r);
	start(&r);
	wait_assigned(&r);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1000);
	end = lm_clock_ms() + TRIM_INTERVAL_MS + 8 * LM_CONSUMER_SLOW_STORE_MS;
	while (trimmed == 0 && lm_clock_ms() < end) {
		snprintf(id, sizeof(id), "job-%d", n++);
		produce_posting(p, r.cfg.topic_postings, id);
		lmt_sleep_ms(100);
		trimmed = lm_counter_get(lm_metrics_counter(
		    tm, "lunamatch_store_changes_trimmed_total", "", NULL));
	}
	assert_true(trimmed > 0);
	/* The input never paused: the last posting is not stored yet. */
	assert_int_equal(
	    lm_store_get(r.store, LM_KIND_POSTING, id, NULL, NULL, NULL), LM_ENOENT);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 0);
	end_run(&r, p);
	lm_trimmer_free(r.trimmer);
	lm_metrics_free(tm);
}

/*
 * Dead letters not delivered (three times): the batch is stored (a repeat
 * is a no-op) but not acknowledged until its dead letters are delivered;
 * the retry sends them again, so the dead-letter topic holds the reject at
 * least once and nothing is lost. Meanwhile the store holds the partition
 * at the reject, so that a consumer resuming from the store alone would
 * send it again too. (The checks made while it fails have the 700 ms of
 * backoff to run in.)
 */
/* Starts r on topics tagged tag with n failures armed at fault, then
 * produces a reject ("bad-1", offset 0) and a posting ("job-1"): once the
 * consumer reports failing, nothing is acknowledged and the store holds
 * the partition at the reject. */
static void
reject_while_failing(
    struct run *r, rd_kafka_t *p, const char *tag, lm_consumer_fault fault, unsigned n)
{
	prepare(r, tag);
	start(r);
	wait_assigned(r);
	lm_consumer_fail_next(r->c, fault, n);
	produce(p, r->cfg.topic_postings, "bad-1", "{not json", 9);
	produce_posting(p, r->cfg.topic_postings, "job-1");
	wait_failing(r);
	assert_true(committed(r, r->cfg.topic_postings) < 2);
	assert_int_equal(store_at(r, r->cfg.topic_postings), 0);
}

static void
test_dlq_failure(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	reject_while_failing(&r, p, "cons-dlqfail", LM_CONSUMER_FAULT_DLQ, 3);
	wait_committed(&r, r.cfg.topic_postings, 2);
	wait_stored(&r, "job-1");
	assert_int_equal(store_at(&r, r.cfg.topic_postings), 2);
	assert_int_equal(metric(&r, "lunamatch_ingest_batch_failures_total"), 3);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_rejected_total{reason=\"bad_json\"}"), 1);
	/* The retries found job-1 stored by the first attempt: it counts as
	 * stored once, not as a duplicate. */
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), 1);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_duplicates_total{kind=\"posting\"}"), 0);
	/* The first attempt's dead letter and the three resends. */
	assert_int_equal(count_dlq(r.cfg.topic_dlq, 4), 4);
	wait_assigned(&r);

	end_run(&r, p);
}

/* The end offset of partition 0 of topic: how many messages it holds. */
static int64_t
topic_end(rd_kafka_t *rk, const char *topic)
{
	int64_t lo = -1, hi = -1;
	assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, IO_MS),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	return hi;
}

/*
 * The store's move past delivered dead letters fails (twice): the batch is
 * retried and its offsets are not stored until the move lands; meanwhile
 * the store holds the partition at the reject. The retries do not send the
 * delivered dead letter again.
 */
static void
test_move_failure(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	reject_while_failing(&r, p, "cons-movefail", LM_CONSUMER_FAULT_MOVE, 2);
	wait_committed(&r, r.cfg.topic_postings, 2);
	assert_int_equal(store_at(&r, r.cfg.topic_postings), 2);
	wait_stored(&r, "job-1");
	assert_int_equal(metric(&r, "lunamatch_ingest_batch_failures_total"), 2);
	assert_int_equal(count_dlq(r.cfg.topic_dlq, 1), 1);
	assert_int_equal(topic_end(p, r.cfg.topic_dlq), 1);
	end_run(&r, p);
}

/*
 * A message that cannot be processed (out of memory): the batch so far is
 * finished, the consumer seeks back and reads the message again; every
 * message is stored exactly once.
 */
static void
test_read_failure(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	char id[32];
	(void) state;

	prepare(&r, "cons-readfail");
	start(&r);
	wait_assigned(&r);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		produce_posting(p, r.cfg.topic_postings, id);
		if (i == 1)
			lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_READ, 2);
	}
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		wait_stored(&r, id);
	}
	wait_committed(&r, r.cfg.topic_postings, 5);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), 5);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_duplicates_total{kind=\"posting\"}"), 0);

	end_run(&r, p);
}

static bool
stored_in(struct run *r, const char *id)
{
	return lm_store_get(r->store, LM_KIND_POSTING, id, NULL, NULL, NULL) == LM_OK;
}

/*
 * Compliance warnings count the postings stored, each once: not the
 * attempt of a batch whose store transaction failed, nor a message read
 * again after its partition went back (a duplicate of what is stored).
 */
static void
test_compliance_counted_once(void **state)
{
	static const char flagged[] =
	    "{\"id\":\"%s\",\"version\":1,\"title\":\"Salesman\","
	    "\"skills\":[{\"name\":\"JS\"}],\"requirement_groups\":["
	    "{\"label\":\"Native English speaker\",\"skills\":[\"English\"]}]}";
	struct run r;
	rd_kafka_t *p = producer();
	lm_record_ctx ctx = M.r.ctx;
	lm_fairness *fair = NULL;
	lm_metrics *cm = NULL;
	char err[256] = "", json[512], consumed[600];
	rd_kafka_topic_partition_list_t *l;
	(void) state;

	if (lm_fairness_load(lmt_src("data/fairness/requirements.tsv"), &fair, err,
	        sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	assert_int_equal(lm_metrics_new(&cm), LM_OK);
	ctx.fairness = fair;
	ctx.metrics = cm;
	lm_ingest_compliance_metrics(&ctx);

	prepare(&r, "cons-compliance");
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	r.ctx = &ctx;
	new_consumer(&r);
	snprintf(consumed, sizeof(consumed),
	    "lunamatch_ingest_consumed_total{topic=\"%s\"}", r.cfg.topic_postings);
	start(&r);
	wait_assigned(&r);

	/* The first store attempt fails, the retry stores both. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_STORE, 1);
	for (int i = 0; i < 2; i++) {
		char id[32];
		snprintf(id, sizeof(id), "job-%d", i);
		snprintf(json, sizeof(json), flagged, id);
		queue(p, r.cfg.topic_postings, id, json, strlen(json));
	}
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	wait_stored(&r, "job-0");
	wait_stored(&r, "job-1");
	wait_committed(&r, r.cfg.topic_postings, 2);
	assert_int_equal(metric(&r, "lunamatch_ingest_batch_failures_total"), 1);

	/* Read again from offset 0: two duplicates, nothing new stored. */
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, r.cfg.topic_postings, 0)->offset = 0;
	assert_null(rd_kafka_seek_partitions(lm_consumer_kafka(r.c, false), l, IO_MS));
	rd_kafka_topic_partition_list_destroy(l);
	for (int i = 0;
	     i < IO_MS / 10 &&
	     metric(&r, "lunamatch_ingest_duplicates_total{kind=\"posting\"}") < 2;
	     i++)
		lmt_sleep_ms(10);
	assert_int_equal(metric(&r, consumed), 4);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_duplicates_total{kind=\"posting\"}"), 2);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), 2);

	char *text = NULL;
	assert_int_equal(lm_metrics_render(cm, &text, NULL), LM_OK);
	double fl = lmt_prom_value(text, "lunamatch_ingest_flagged_postings_total");
	double gender = lmt_prom_value(
	    text, "lunamatch_ingest_compliance_warnings_total{category=\"gender\"}");
	double origin = lmt_prom_value(text,
	    "lunamatch_ingest_compliance_warnings_total{category=\"national-origin\"}");
	free(text);
	assert_int_equal(fl, 2);
	assert_int_equal(gender, 2);
	assert_int_equal(origin, 2);

	end_run(&r, p);
	lm_metrics_free(cm);
	lm_fairness_free(fair);
}

/*
 * A revocation: a second member joins while the first is consuming. The
 * first finishes what it holds and commits on revocation (the mock cluster
 * refuses commits during a rebalance, REBALANCE_IN_PROGRESS, where Apache
 * Kafka accepts them, so the next owner may replay, which versions make
 * harmless); after the rebalance one of the two owns the partition and
 * stores what comes next. Nothing is lost.
 */
static void
test_revoke(void **state)
{
	struct run a, b;
	struct run *all[] = {&a, &b};
	rd_kafka_t *p = producer();
	char id[32];
	(void) state;

	prepare_ex(&a, "cons-revoke", "cons-revoke-a", 0, 100);
	start(&a);
	wait_assigned(&a);
	prepare_ex(&b, "cons-revoke", "cons-revoke-b", 0, 100);
	start(&b);
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		produce_posting(p, a.cfg.topic_postings, id);
		lmt_sleep_ms(100);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		for (int t = 0;
		     t < IO_MS / 50 && !stored_in(&a, id) && !stored_in(&b, id); t++)
			lmt_sleep_ms(50);
		assert_true(stored_in(&a, id) || stored_in(&b, id));
	}
	for (size_t i = 0; i < 2; i++) {
		all[i]->stop = 1;
		assert_int_equal(pthread_join(all[i]->thread, NULL), 0);
		assert_int_equal(all[i]->rv, LM_OK);
	}
	finish(&a);
	finish(&b);
	rd_kafka_destroy(p);
}

/*
 * Every ingest reads every partition into its own store: one that shares
 * its consumer group with another ingest (two replicas, or two deployments
 * on one cluster, under one LUNAMATCH_GROUP_ID) is assigned only some
 * partitions and must not count as started, however far it stores them,
 * or its replica would answer from part of the records. b is a member
 * first and started; a joins the group with an empty store and gets part
 * of the postings topic's two partitions, with nothing to read: it stays
 * not started, and says why, through ten catch-up checks. Once b leaves,
 * a is assigned every partition and starts. Before, a started at once.
 */
static void
test_shared_group_not_started(void **state)
{
	struct run a, b;
	char why[256] = "";
	int rv = LM_EBUSY;
	(void) state;

	lmt_mock_topic_create(M.mc, "cons-shared.postings", 2);
	prepare_ex(&b, "cons-shared", "cons-shared-b", 0, 100);
	start(&b);
	wait_assigned(&b);
	prepare_ex(&a, "cons-shared", "cons-shared-a", 0, 100);
	start(&a);
	for (int i = 0;
	     i < IO_MS / 50 && metric(&a, "lunamatch_ingest_assigned_partitions") < 1;
	     i++)
		lmt_sleep_ms(50);
	assert_true(metric(&a, "lunamatch_ingest_assigned_partitions") >= 1);
	/* The catch-up is checked every 200 ms: ten checks. */
	for (int i = 0; i < 40; i++) {
		rv = lm_consumer_started(a.c, why, sizeof(why));
		if (rv == LM_OK)
			fail_msg("an ingest assigned part of the partitions is started");
		lmt_sleep_ms(50);
	}
	assert_int_equal(rv, LM_EBUSY);
	assert_non_null(strstr(why, "not assigned every partition"));
	assert_non_null(strstr(why, "cons-shared"));

	b.stop = 1;
	assert_int_equal(pthread_join(b.thread, NULL), 0);
	assert_int_equal(b.rv, LM_OK);
	finish(&b);
	wait_assigned(&a);
	assert_int_equal(metric(&a, "lunamatch_ingest_assigned_partitions"), 3);
	a.stop = 1;
	assert_int_equal(pthread_join(a.thread, NULL), 0);
	assert_int_equal(a.rv, LM_OK);
	finish(&a);
}

/*
 * A batch failing at a revocation is given up, its partitions' next owner
 * stores it; a member that keeps only partitions with nothing to read has
 * no failing batch and is ready. Before, the failure stayed in /readyz
 * ("batches are failing") until the member stored another batch, which on
 * idle partitions never came. The postings topic has two partitions; the
 * failing batch is on partition 1, which the range assignor gives the
 * member whose id sorts second. Member ids are the broker's, so which
 * member that is cannot be chosen: a round where the failing member keeps
 * partition 1 (and legitimately fails again) is tried again in a new
 * group, at most ROUNDS times.
 */
static void
test_revoke_failing_batch(void **state)
{
	enum { ROUNDS = 5 };
	rd_kafka_t *p = producer();
	bool seen = false;
	(void) state;

	for (int round = 0; round < ROUNDS && !seen; round++) {
		struct run a, b;
		char tag[64], topic[128], consumed[300], json[256], why[160] = "";
		rd_kafka_headers_t *h = rd_kafka_headers_new(1);
		int rv = LM_EBUSY;

		snprintf(tag, sizeof(tag), "cons-revfail-%d", round);
		snprintf(topic, sizeof(topic), "%s.postings", tag);
		snprintf(consumed, sizeof(consumed),
		    "lunamatch_ingest_consumed_total{topic=\"%s\"}", topic);
		lmt_mock_topic_create(M.mc, topic, 2);
		prepare_ex(&a, tag, "cons-revfail-a", 0, 100);
		start(&a);
		wait_assigned(&a);
		/* a's first attempt takes LM_CONSUMER_SLOW_STORE_MS and fails:
		 * b joins meanwhile, and the revocation its joining brings gives
		 * the batch up. Should the attempt end first, the retry after a
		 * second failure stores it (a retried batch holds a rebalance). */
		lm_consumer_fail_next(a.c, LM_CONSUMER_FAULT_STORE, 2);
		lm_consumer_fail_next(a.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
		snprintf(json, sizeof(json),
		    "{\"id\":\"job-p1\",\"version\":1,\"title\":\"T\","
		    "\"skills\":[{\"name\":\"JS\"}]}");
		rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
		assert_int_equal(
		    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(1),
		        RD_KAFKA_V_KEY("job-p1", 6), RD_KAFKA_V_VALUE(json, strlen(json)),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		        RD_KAFKA_V_END),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
		assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
		for (int i = 0; i < IO_MS / 10 && metric(&a, consumed) < 1; i++)
			lmt_sleep_ms(10);
		assert_int_equal(metric(&a, consumed), 1);
		prepare_ex(&b, tag, "cons-revfail-b", 0, 100);
		start(&b);
		for (int i = 0; i < IO_MS / 50 && !stored_in(&b, "job-p1") &&
		                !stored_in(&a, "job-p1");
		     i++)
			lmt_sleep_ms(50);
		/* Given up by a, stored by b: a kept partition 0 of the postings
		 * (and the profiles'), with nothing to read and nothing failing. */
		seen = stored_in(&b, "job-p1") && !stored_in(&a, "job-p1") &&
		       metric(&a, "lunamatch_ingest_batch_failures_total") > 0;
		if (seen) {
			for (int i = 0;
			     i < IO_MS / 20 &&
			     (rv = lm_consumer_ready(a.c, why, sizeof(why))) != LM_OK;
			     i++)
				lmt_sleep_ms(20);
			if (rv != LM_OK)
				fail_msg(
				    "the member that gave the batch up is not ready: %s",
				    why);
		}
		for (struct run *r = &a; r != NULL; r = r == &a ? &b : NULL) {
			r->stop = 1;
			assert_int_equal(pthread_join(r->thread, NULL), 0);
			finish(r);
		}
	}
	rd_kafka_destroy(p);
	if (!seen)
		skip(); /* in every round a kept partition 1 or stored the batch */
}

/* Waits (bounded) until r's consumer is ready; fails with the reason. */
static void
wait_ready_run(struct run *r)
{
	char why[160] = "";
	int rv = LM_EBUSY;
	for (int i = 0;
	     i < IO_MS / 20 && (rv = lm_consumer_ready(r->c, why, sizeof(why))) != LM_OK;
	     i++)
		lmt_sleep_ms(20);
	if (rv != LM_OK)
		fail_msg("consumer not ready: %s", why);
}

/* Fails unless postings job-0 .. job-(n-1) are all in r's store. */
static void
assert_all_stored(struct run *r, int n)
{
	char id[32];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "job-%d", i);
		if (!stored_in(r, id))
			fail_msg("ready with %s not stored (stored %d, rejected json %d, "
			         "undecodable %d)",
			    id,
			    (int) metric(
			        r, "lunamatch_ingest_stored_total{kind=\"posting\"}"),
			    (int) metric(r,
			        "lunamatch_ingest_rejected_total{reason=\"bad_json\"}"),
			    (int) metric(r, "lunamatch_ingest_rejected_total{reason="
			                    "\"undecodable\"}"));
	}
}

/*
 * Catching up: with 2,000 postings waiting, the consumer is not ready before
 * all of them are stored (a new replica serves nothing from a half-filled
 * store), and says why meanwhile. A consumer restarted on the same group
 * and store, with nothing new to read, is ready again from the store's
 * offsets alone.
 */
static void
test_catchup(void **state)
{
	enum { N = 2000 };
	struct run r;
	rd_kafka_t *p = producer();
	char why[160] = "";
	int catching = 0;
	(void) state;

	prepare(&r, "cons-catchup");
	queue_postings(p, r.cfg.topic_postings, N);

	start(&r);
	int rv = LM_EBUSY;
	for (int i = 0;
	     i < IO_MS / 5 && (rv = lm_consumer_ready(r.c, why, sizeof(why))) != LM_OK;
	     i++) {
		char swhy[160] = "";
		if (strstr(why, "catching up with the topics") != NULL)
			catching++;
		else if (strcmp(why, "no partitions assigned") != 0)
			fail_msg("unexpected reason: %s", why);
		/* Not started while catching up (it may finish in between). */
		if (lm_consumer_started(r.c, swhy, sizeof(swhy)) != LM_OK &&
		    strstr(swhy, "catching up with the topics") == NULL)
			fail_msg("unexpected reason not to be started: %s", swhy);
		lmt_sleep_ms(5);
	}
	if (rv != LM_OK)
		fail_msg("consumer not ready: %s", why);
	assert_int_equal(lm_consumer_started(r.c, why, sizeof(why)), LM_OK);
	/* Ready means every waiting posting is durable. */
	assert_all_stored(&r, N);
	assert_true(catching > 0);
	wait_committed(&r, r.cfg.topic_postings, N);
	r.stop = 1;
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.rv, LM_OK);

	/* The restart: same group, same store, nothing new. */
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	wait_assigned(&r);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), 0);
	end_run(&r, p);
}

/*
 * A stop while messages fetched but not yet taken wait in the consumer's
 * queue: leaving the group serves that queue, and the fetched messages
 * must not reach a callback poll (librdkafka aborts the process on them).
 * The stop is clean, and a restart stores the rest.
 */
static void
test_stop_with_backlog(void **state)
{
	enum { N = 20000 };
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	prepare(&r, "cons-backlog");
	queue_postings(p, r.cfg.topic_postings, N);
	start(&r);
	for (int i = 0;
	     i < IO_MS / 5 &&
	     metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}") == 0;
	     i++)
		lmt_sleep_ms(5);
	uint64_t before = metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}");
	assert_true(before > 0 && before < N);
	r.stop = 1;
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.rv, LM_OK);

	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	char why[160] = "";
	int rv = LM_EBUSY;
	for (int i = 0;
	     i < IO_MS / 5 && (rv = lm_consumer_ready(r.c, why, sizeof(why))) != LM_OK;
	     i++)
		lmt_sleep_ms(5);
	if (rv != LM_OK)
		fail_msg("consumer not ready after the restart: %s", why);
	assert_all_stored(&r, N);
	end_run(&r, p);
}

/* Stops r's consumer and frees it (the store stays open). */
static void
stop_consumer(struct run *r)
{
	r->stop = 1;
	assert_int_equal(pthread_join(r->thread, NULL), 0);
	assert_int_equal(r->rv, LM_OK);
	lm_consumer_free(r->c);
	lm_metrics_free(r->metrics);
	r->c = NULL;
	r->metrics = NULL;
}

/* Replaces r's store by a new empty one in a directory of its own. */
static void
replace_store(struct run *r, const char *dir_tag)
{
	lm_store_close(r->store);
	lmt_rmtree(r->dir);
	free(r->dir);
	r->dir = lmt_tmpdir(dir_tag);
	assert_int_equal(lm_store_open(r->dir, NULL, &r->store), LM_OK);
}

/*
 * The store keeps how far it got, in the transactions of its batches: a
 * consumer is ready from the store's positions alone, even when the
 * group's committed offsets cannot be read (auto-commit has not sent them
 * yet, and every read of them fails).
 */
static void
test_catchup_store_positions(void **state)
{
	enum { N = 300 };
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	prepare_ex(&r, "cons-storepos", "cons-storepos", 60000, 100);
	queue_postings(p, r.cfg.topic_postings, N);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_COMMITTED, 1000000);
	start(&r);
	wait_ready_run(&r);
	for (int i = 0; i < N; i += 37) {
		char id[32];
		snprintf(id, sizeof(id), "job-%d", i);
		assert_true(stored_in(&r, id));
	}
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), N);
	end_run(&r, p);
}

/*
 * A store lost and created again under the same group (a deleted volume): the
 * group's committed offsets are at the end of the topic, but the new store
 * holds nothing, so the consumer reads the topic again from the beginning
 * and is ready only once the new store holds every posting. (Resuming at
 * the group's offsets left the new store empty and ready.)
 */
static void
test_resume_new_store(void **state)
{
	enum { N = 200 };
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	prepare(&r, "cons-newstore");
	queue_postings(p, r.cfg.topic_postings, N);
	start(&r);
	wait_ready_run(&r);
	wait_committed(&r, r.cfg.topic_postings, N);
	stop_consumer(&r);

	replace_store(&r, "cons-newstore-2");
	r.auto_commit_ms = 60000; /* nothing but the set-back commits meanwhile */
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	/* The group's offset is set back to the new store's at once: the match
	 * service takes it as proof of what the store holds. */
	bool back = false;
	for (int i = 0; i < IO_MS / 20 && !back; i++) {
		back = committed(&r, r.cfg.topic_postings) < N;
		lmt_sleep_ms(20);
	}
	assert_true(back);
	wait_ready_run(&r);
	assert_all_stored(&r, N);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), N);
	end_run(&r, p);
}

/*
 * As test_resume_new_store, with the group coordinator refusing the commit
 * that sets the group's offset back, and the new store's first batch held
 * back by failure point `fault` armed `count` times: the set-back is tried
 * again until it succeeds, long before the new store holds what the
 * group's offset claims (auto-commit, which could send a lower offset once
 * it does, waits 60 s), and the consumer is not ready meanwhile. The
 * refusal comes REFUSAL_MS after the commit, when the loop already waits
 * for that first batch (the next one is full): the set-back is tried again
 * during that wait, not after it.
 */
static void
set_back_refused(const char *tag, lm_consumer_fault fault, int count)
{
	enum { N = 200, REFUSAL_MS = 500 };
	struct run r;
	rd_kafka_t *p = producer();
	char why[160] = "", dir_tag[64];
	int64_t group = N;

	prepare(&r, tag);
	queue_postings(p, r.cfg.topic_postings, N);
	start(&r);
	wait_ready_run(&r);
	wait_committed(&r, r.cfg.topic_postings, N);
	stop_consumer(&r);

	snprintf(dir_tag, sizeof(dir_tag), "%s-2", tag);
	replace_store(&r, dir_tag);
	r.auto_commit_ms = 60000;
	new_consumer(&r);
	lm_consumer_fail_next(r.c, fault, count);
	assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(M.mc, MOCK_BROKER,
	                     KAFKA_API_OFFSET_COMMIT, 1,
	                     RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE, REFUSAL_MS),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	r.stop = 0;
	start(&r);
	for (int i = 0; i < IO_MS / 50 && store_at(&r, r.cfg.topic_postings) < N; i++) {
		group = lmt_group_committed(
		    M.brokers, r.cfg.group_id, r.cfg.topic_postings, 0, NULL);
		if (group < N)
			break;
		if (lm_consumer_ready(r.c, why, sizeof(why)) == LM_OK)
			fail_msg("ready with the group at %" PRId64
			         ", the store at %" PRId64,
			    group, store_at(&r, r.cfg.topic_postings));
		lmt_sleep_ms(50);
	}
	if (group >= N)
		fail_msg("the group's offset stayed at %" PRId64 " until the store had "
		         "every posting again",
		    group);
	wait_ready_run(&r);
	assert_all_stored(&r, N);
	end_run(&r, p);
}

/* set_back_refused while the new store's first batch takes 2 s to write. */
static void
test_resume_set_back_fails(void **state)
{
	(void) state;
	set_back_refused("cons-backfail", LM_CONSUMER_FAULT_SLOW_STORE, 1);
}

/* set_back_refused while the new store's first batch fails 5 times: it is
 * stored after 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s of back-off. */
static void
test_resume_set_back_fails_store_failing(void **state)
{
	(void) state;
	set_back_refused("cons-backfailing", LM_CONSUMER_FAULT_STORE, 5);
}

/*
 * As test_resume_new_store, with the group's committed offsets not read at
 * the assignment (a slow coordinator): the partitions resume from the new
 * store, and the group's offsets, which may be anywhere, are set to the
 * store's before it holds what they claimed.
 */
static void
test_resume_committed_unknown(void **state)
{
	enum { N = 200 };
	struct run r;
	rd_kafka_t *p = producer();
	int64_t group = N;
	(void) state;

	prepare(&r, "cons-backunknown");
	queue_postings(p, r.cfg.topic_postings, N);
	start(&r);
	wait_ready_run(&r);
	wait_committed(&r, r.cfg.topic_postings, N);
	stop_consumer(&r);

	replace_store(&r, "cons-backunknown-2");
	r.auto_commit_ms = 60000;
	new_consumer(&r);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_RESUME_COMMITTED, 1);
	r.stop = 0;
	start(&r);
	for (int i = 0; i < IO_MS / 50 && store_at(&r, r.cfg.topic_postings) < N; i++) {
		group = lmt_group_committed(
		    M.brokers, r.cfg.group_id, r.cfg.topic_postings, 0, NULL);
		if (group < N)
			break;
		lmt_sleep_ms(50);
	}
	if (group >= N)
		fail_msg("the group's offset stayed at %" PRId64 " until the store had "
		         "every posting again",
		    group);
	wait_ready_run(&r);
	assert_all_stored(&r, N);
	end_run(&r, p);
}

/*
 * How far the store holds the partitions cannot be read for a while during
 * the catch-up (a full reader table): the catch-up is not known meanwhile
 * and is checked again, the consumer goes on (it stopped as after a fatal
 * Kafka error), and the failure is logged once, not at every check.
 */
static void
test_position_unreadable(void **state)
{
	enum { N = 100 };
	struct run r;
	rd_kafka_t *p = producer();
	lm_log_level level = lm_log_get_level();
	lmt_capture cap;
	char *log, why[160] = "";
	int rv = LM_EBUSY;
	(void) state;

	prepare(&r, "cons-posread");
	queue_postings(p, r.cfg.topic_postings, N);
	/* The first batch takes 2 s: the checks meanwhile find it behind. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	start(&r);
	for (int i = 0; i < IO_MS / 10 && atomic_load(&r.done) == false &&
	                lm_consumer_ready(r.c, why, sizeof(why)) != LM_OK &&
	                strcmp(why, "no partitions assigned") == 0;
	     i++)
		lmt_sleep_ms(10);
	lm_log_set_level(LM_LOG_WARN);
	lmt_stderr_begin(&cap);
	/* Five checks of the two partitions. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_POSITION, 10);
	for (int i = 0; i < IO_MS / 20 && !atomic_load(&r.done) &&
	                (rv = lm_consumer_ready(r.c, why, sizeof(why))) != LM_OK;
	     i++)
		lmt_sleep_ms(20);
	log = lmt_stderr_end(&cap);
	lm_log_set_level(level);
	if (rv != LM_OK)
		fail_msg("not ready (%s), the loop %s", why,
		    atomic_load(&r.done) ? "stopped" : "runs");
	assert_int_equal(lmt_count(log, "consumer.stop"), 0);
	assert_int_equal(lmt_count(log, "cannot read how far the store holds"), 1);
	free(log);
	assert_all_stored(&r, N);
	end_run(&r, p);
}

/*
 * How far the store holds a partition cannot be read at its assignment:
 * resuming anywhere could skip records, so the loop stops, with the
 * store's error, and says why (it said "after a fatal Kafka error").
 */
static void
test_position_unreadable_at_assignment(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	lmt_capture cap;
	char *log;
	(void) state;

	prepare(&r, "cons-posassign");
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_POSITION, 1);
	lmt_stderr_begin(&cap);
	start(&r);
	for (int i = 0; i < IO_MS / 20 && !atomic_load(&r.done); i++)
		lmt_sleep_ms(20);
	log = lmt_stderr_end(&cap);
	r.stop = 1;
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.rv, LM_EBUSY);
	assert_int_equal(lmt_count(log, "fatal Kafka error"), 0);
	assert_int_equal(lmt_count(log, "stopping: how far the store holds"), 1);
	free(log);
	finish(&r);
	rd_kafka_destroy(p);
}

/*
 * A store written before stores kept their positions (it has records but no
 * position, and does not say when it was last current): its age is
 * unknown, so it is refilled. Every partition is read again from the
 * beginning, whatever the group's committed offset says (which such a
 * store would otherwise resume from, and which cannot even be read here),
 * the record the topics do not hold is deleted, and the store keeps its
 * positions from then on.
 */
static void
test_resume_legacy_store(void **state)
{
	enum { N = 100 };
	struct run r;
	rd_kafka_t *p = producer();
	lm_store_txn *t = NULL;
	bool kept = false;
	(void) state;

	prepare(&r, "cons-legacy");
	queue_postings(p, r.cfg.topic_postings, N);
	start(&r);
	wait_ready_run(&r);
	wait_committed(&r, r.cfg.topic_postings, N);
	stop_consumer(&r);

	replace_store(&r, "cons-legacy-2");
	assert_int_equal(lm_store_begin(r.store, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "old", 1, "x", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_ingest_positions_kept(r.store, &kept), LM_OK);
	assert_false(kept);
	new_consumer(&r);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_COMMITTED, 1000000);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), N);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 1);
	assert_all_stored(&r, N);
	assert_false(stored_in(&r, "old"));
	assert_int_equal(lm_ingest_positions_kept(r.store, &kept), LM_OK);
	assert_true(kept);
	end_run(&r, p);
}

/* ---- stale stores ---------------------------------------------------------
 *
 * The input topics are compacted: a deleted record's put goes, and its
 * tombstone too a while later (delete.retention.ms). A store away for
 * longer comes back to topics that hold nothing of the record: the tests
 * put such a record straight into the store, where the topics' messages
 * of it would have left it.
 */

#define DAY_S 86400

/* Puts record id of kind k into r's store, as its messages left it before
 * the topics dropped them. */
/*
 * The refill of a store written before stores kept their positions, over
 * a log that deleted a record and published it again: put v1, tombstone,
 * put v2, with v2 in the store without a position. The tombstone cannot
 * be placed against v2; it used to take v2's version, and the put of v2
 * after it was then refused as stale, so the record stayed deleted. The
 * put of v2 restores it.
 */
static void
test_refill_legacy_deleted_and_republished(void **state)
{
	static const char v1[] = "{\"id\":\"job-x\",\"version\":1,\"title\":\"T\","
	                         "\"skills\":[{\"name\":\"JS\"}]}";
	static const char v2[] = "{\"id\":\"job-x\",\"version\":2,\"title\":\"T\","
	                         "\"skills\":[{\"name\":\"JS\"}]}";
	struct run r;
	rd_kafka_t *p = producer();
	lm_store_txn *t = NULL;
	uint64_t version = 0;
	bool kept = true;
	(void) state;

	/* The consumer made by prepare marked the empty store as keeping
	 * positions: made again over one that holds a record already. */
	prepare(&r, "cons-legacy-republished");
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	replace_store(&r, "cons-legacy-republished-2");
	assert_int_equal(lm_store_begin(r.store, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "job-x", 2, "x", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_ingest_positions_kept(r.store, &kept), LM_OK);
	assert_false(kept);
	queue(p, r.cfg.topic_postings, "job-x", v1, sizeof(v1) - 1);
	queue(p, r.cfg.topic_postings, "job-x", NULL, 0);
	queue(p, r.cfg.topic_postings, "job-x", v2, sizeof(v2) - 1);
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	new_consumer(&r);
	start(&r);
	wait_ready_run(&r);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 1);
	assert_int_equal(
	    lm_store_get(r.store, LM_KIND_POSTING, "job-x", NULL, NULL, &version), LM_OK);
	assert_int_equal(version, 2);
	end_run(&r, p);
}

static void
put_gone(struct run *r, lm_kind k, const char *id)
{
	lm_store_pos pos = {.epoch = 0, .partition = 0, .offset = 0};
	lm_store_txn *t = NULL;

	assert_int_equal(lm_store_begin(r->store, &t), LM_OK);
	assert_int_equal(lm_store_put_at(t, k, id, 1, "x", 1, &pos), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

static bool
present(struct run *r, lm_kind k, const char *id)
{
	return lm_store_get(r->store, k, id, NULL, NULL, NULL) == LM_OK;
}

static void
produce_profile(rd_kafka_t *p, const char *topic, const char *id)
{
	char json[256];
	snprintf(json, sizeof(json),
	    "{\"id\":\"%s\",\"version\":1,\"headline\":\"Engineer\","
	    "\"skills\":[{\"name\":\"JS\"}]}",
	    id);
	produce(p, topic, id, json, strlen(json));
}

/* Whether r's change log holds a deletion of (k, id). */
struct deletion {
	lm_kind kind;
	const char *id;
	bool found;
};

static int
find_deletion(void *arg, uint64_t seq, const Lunamatch__V1__ChangeEntry *e)
{
	struct deletion *d = arg;
	(void) seq;
	if (e->deleted && (lm_kind) e->kind == d->kind && strcmp(e->id, d->id) == 0)
		d->found = true;
	return 0;
}

static bool
deletion_logged(struct run *r, lm_kind k, const char *id)
{
	struct deletion d = {k, id, false};
	assert_int_equal(
	    lm_store_changes(r->store, 0, 100000, find_deletion, &d, NULL), LM_OK);
	return d.found;
}

/* Fails unless r's consumer is not started, for the refill. */
static void
assert_refilling(struct run *r)
{
	char why[160] = "";
	assert_int_equal(lm_consumer_started(r->c, why, sizeof(why)), LM_EBUSY);
	if (strstr(why, "refilling the store") == NULL)
		fail_msg("not started for another reason: %s", why);
}

/*
 * A store away for longer than its max age is read again: every partition
 * from its beginning, through the normal path (a record updated meanwhile
 * gets its new version), and once every partition is read to the end it
 * had, the records the topics no longer hold are deleted through the
 * normal deletion path (change entries that match's follower applies);
 * the others are intact. Counted and said; not started until done. A
 * store back within its max age is trusted as it is.
 */
static void
test_refill_stale_store(void **state)
{
	enum { N = 20 };
	struct run r;
	rd_kafka_t *p = producer();
	lm_ingest_current cur;
	lm_ingest_refill ref;
	struct lm_store_stats st;
	char json[256];
	uint64_t version = 0;
	(void) state;

	prepare(&r, "cons-refill");
	queue_postings(p, r.cfg.topic_postings, N);
	produce_profile(p, r.cfg.topic_profiles, "cand-1");
	start(&r);
	wait_ready_run(&r);
	stop_consumer(&r);
	assert_int_equal(lm_ingest_current_get(r.store, &cur), LM_OK);
	assert_true(cur.complete);

	/* Deleted while away, tombstones compacted away. */
	put_gone(&r, LM_KIND_POSTING, "job-gone");
	put_gone(&r, LM_KIND_PROFILE, "cand-gone");

	/* Back within the max age: trusted, nothing read again. */
	atomic_store(&wall_ahead, DAY_S - 600);
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);
	assert_true(present(&r, LM_KIND_POSTING, "job-gone"));
	assert_int_equal(metric(&r, "lunamatch_ingest_refills_total{reason=\"age\"}"), 0);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_consumed_total{topic=\"cons-refill.postings\"}"),
	    0);
	stop_consumer(&r);

	/* Back two days after that, with job-3 updated meanwhile. */
	snprintf(json, sizeof(json),
	    "{\"id\":\"job-3\",\"version\":2,\"title\":\"T2\",\"skills\":[{\"name\":"
	    "\"JS\"}]}");
	produce(p, r.cfg.topic_postings, "job-3", json, strlen(json));
	atomic_store(&wall_ahead, DAY_S - 600 + 2 * DAY_S);
	new_consumer(&r);
	/* Begun before anything is read, and so kept. */
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	assert_int_equal(lm_ingest_current_get(r.store, &cur), LM_OK);
	assert_false(cur.complete);
	assert_refilling(&r);
	assert_int_equal(metric(&r, "lunamatch_ingest_refills_total{reason=\"age\"}"), 1);
	assert_int_equal(metric(&r, "lunamatch_ingest_refilling"), 1);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);

	assert_false(present(&r, LM_KIND_POSTING, "job-gone"));
	assert_false(present(&r, LM_KIND_PROFILE, "cand-gone"));
	assert_true(deletion_logged(&r, LM_KIND_POSTING, "job-gone"));
	assert_true(deletion_logged(&r, LM_KIND_PROFILE, "cand-gone"));
	assert_all_stored(&r, N);
	assert_true(present(&r, LM_KIND_PROFILE, "cand-1"));
	assert_int_equal(
	    lm_store_get(r.store, LM_KIND_POSTING, "job-3", NULL, NULL, &version), LM_OK);
	assert_int_equal(version, 2);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_consumed_total{topic=\"cons-refill.postings\"}"),
	    N + 1);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refill_deleted_total{kind=\"posting\"}"), 1);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refill_deleted_total{kind=\"profile\"}"), 1);
	assert_int_equal(metric(&r, "lunamatch_ingest_refilling"), 0);
	/* Done: current again, as of the restart on the consumer's clock;
	 * the marks are gone. */
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_false(ref.active);
	assert_int_equal(lm_ingest_current_get(r.store, &cur), LM_OK);
	assert_true(cur.complete);
	assert_true(cur.at > test_wall() - 600);
	assert_int_equal(lm_store_stats(r.store, &st), LM_OK);
	assert_int_equal(st.marks, 0);
	end_run(&r, p);
}

/* When r's store was last current (-1: it does not say, or not complete). */
static int64_t
current_at(struct run *r)
{
	lm_ingest_current cur;
	return lm_ingest_current_get(r->store, &cur) == LM_OK && cur.complete ? cur.at
	                                                                      : -1;
}

/* Waits (bounded) until r's store was last current at `at` or later. */
static void
wait_current(struct run *r, int64_t at)
{
	for (int i = 0; i < IO_MS / 50 && current_at(r) < at; i++)
		lmt_sleep_ms(50);
	if (current_at(r) < at)
		fail_msg("the store was last current at %" PRId64 ", not at %" PRId64
		         " or later",
		    current_at(r), at);
}

/*
 * A consumer that caught up records when the store was current, then shows
 * it current again every round (the partitions' ends read from the broker,
 * and stored): the time moves on with the clock. While the broker is away
 * the ends cannot be read, and the store ages; once it is back the rounds
 * go on, unless it was away for longer than the max age.
 */
static void
test_current_rounds(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	int64_t before;
	(void) state;

	prepare(&r, "cons-current");
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	r.current_ms = 200;
	new_consumer(&r);
	queue_postings(p, r.cfg.topic_postings, 5);
	before = test_wall();
	start(&r);
	wait_ready_run(&r);
	wait_current(&r, before);
	assert_true(current_at(&r) <= test_wall());
	assert_int_equal(metric(&r, "lunamatch_ingest_store_current_seconds"),
	    (double) current_at(&r));

	atomic_store(&wall_ahead, 1000);
	produce_posting(p, r.cfg.topic_postings, "job-new");
	wait_current(&r, before + 1000);

	/* The broker away: no round shows the store current. Rounds come
	 * every 200 ms and give up on the ends after 1 s. */
	assert_int_equal(
	    rd_kafka_mock_broker_set_down(M.mc, MOCK_BROKER), RD_KAFKA_RESP_ERR_NO_ERROR);
	int64_t held = current_at(&r);
	atomic_store(&wall_ahead, 5000);
	lmt_sleep_ms(3000);
	assert_int_equal(current_at(&r), held);
	assert_true(held < before + 5000);
	assert_int_equal(
	    rd_kafka_mock_broker_set_up(M.mc, MOCK_BROKER), RD_KAFKA_RESP_ERR_NO_ERROR);
	wait_current(&r, before + 5000);

	/* Away for longer than the max age: the topics may have dropped
	 * tombstones the store never read, so stored up to the ends is no
	 * longer current. The time stays; the next start refills the store. */
	assert_int_equal(
	    rd_kafka_mock_broker_set_down(M.mc, MOCK_BROKER), RD_KAFKA_RESP_ERR_NO_ERROR);
	held = current_at(&r);
	atomic_store(&wall_ahead, 5000 + 2 * DAY_S);
	lmt_sleep_ms(1000);
	assert_int_equal(
	    rd_kafka_mock_broker_set_up(M.mc, MOCK_BROKER), RD_KAFKA_RESP_ERR_NO_ERROR);
	produce_posting(p, r.cfg.topic_postings, "job-after");
	wait_stored(&r, "job-after");
	lmt_sleep_ms(3000); /* rounds every 200 ms */
	assert_int_equal(current_at(&r), held);
	stop_consumer(&r);
	new_consumer(&r);
	assert_int_equal(metric(&r, "lunamatch_ingest_refills_total{reason=\"age\"}"), 1);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);
	end_run(&r, p);
}

/*
 * A store that was current with the topics is started from the start
 * (/startedz, the pod's readiness), also when the consumer is restarted
 * while the broker is away and cannot catch up: the store says it was
 * current, within its max age. /readyz still says what is missing. A
 * store past its max age is not (it is refilled once the broker is back),
 * nor one whose first filling never finished.
 */
static void
test_started_from_store(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	char why[160] = "";
	(void) state;

	prepare(&r, "cons-started");
	queue_postings(p, r.cfg.topic_postings, 10);
	start(&r);
	wait_ready_run(&r);
	wait_current(&r, 0);
	stop_consumer(&r);

	assert_int_equal(
	    rd_kafka_mock_broker_set_down(M.mc, MOCK_BROKER), RD_KAFKA_RESP_ERR_NO_ERROR);
	atomic_store(&wall_ahead, DAY_S - 600);
	new_consumer(&r);
	assert_int_equal(lm_consumer_started(r.c, why, sizeof(why)), LM_OK);
	r.stop = 0;
	start(&r);
	lmt_sleep_ms(1000); /* the loop runs, without a broker to catch up with */
	assert_int_equal(lm_consumer_started(r.c, why, sizeof(why)), LM_OK);
	assert_int_equal(lm_consumer_ready(r.c, why, sizeof(why)), LM_EBUSY);
	assert_string_equal(why, "no partitions assigned");
	stop_consumer(&r);

	/* Past its max age: not started, refilled once the broker is back. */
	atomic_store(&wall_ahead, 2 * DAY_S);
	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(
	    rd_kafka_mock_broker_set_up(M.mc, MOCK_BROKER), RD_KAFKA_RESP_ERR_NO_ERROR);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);
	assert_all_stored(&r, 10);
	stop_consumer(&r);

	/* A first filling that never finished: not started before it does. */
	replace_store(&r, "cons-started-2");
	new_consumer(&r);
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	new_consumer(&r);
	assert_int_equal(lm_consumer_started(r.c, why, sizeof(why)), LM_EBUSY);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);
	end_run(&r, p);
}

/* The next offset refill id read partition 0 of topic again to (-1: none). */
static int64_t
refill_at(struct run *r, uint64_t id, const char *topic)
{
	uint32_t epoch = 0;
	int64_t next = -1;
	int rv = lm_ingest_refill_offset_get(r->store, id, topic, 0, &epoch, &next);
	assert_true(rv == LM_OK || rv == LM_ENOENT);
	return rv == LM_OK ? next : -1;
}

/*
 * A refill stopped midway (each batch takes 2 s to write; stopped after the
 * first): the store says so, keeps what it read again and the records it
 * has not deleted yet, and is not current. The next consumer, on the same
 * clock, resumes the refill where it stopped (it does not read the topics
 * from the beginning again) and finishes it. (One begun too long ago, or
 * ahead of the clock, is begun again: test_refill_resumed_too_old,
 * test_refill_begun_ahead.)
 */
static void
test_refill_resumed(void **state)
{
	enum { N = 400 };
	struct run r;
	rd_kafka_t *p = producer();
	lm_ingest_current cur;
	lm_ingest_refill ref;
	char why[160] = "";
	int64_t at = -1;
	(void) state;

	prepare(&r, "cons-refill-resume");
	queue_postings(p, r.cfg.topic_postings, N);
	start(&r);
	wait_ready_run(&r);
	stop_consumer(&r);
	put_gone(&r, LM_KIND_POSTING, "job-gone");

	atomic_store(&wall_ahead, 2 * DAY_S);
	new_consumer(&r);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1000000);
	r.stop = 0;
	start(&r);
	for (int i = 0; i < IO_MS / 20 && at <= 0; i++) {
		lmt_sleep_ms(20);
		at = refill_at(&r, 1, r.cfg.topic_postings);
	}
	assert_true(at > 0);
	stop_consumer(&r);

	at = refill_at(&r, 1, r.cfg.topic_postings);
	assert_true(at > 0 && at < N);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	assert_int_equal(lm_ingest_current_get(r.store, &cur), LM_OK);
	assert_false(cur.complete);
	assert_true(present(&r, LM_KIND_POSTING, "job-gone"));

	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(metric(&r, "lunamatch_ingest_refills_total{reason=\"age\"}"), 0);
	assert_int_equal(metric(&r, "lunamatch_ingest_refilling"), 1);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);
	assert_int_equal(lm_consumer_started(r.c, why, sizeof(why)), LM_OK);
	assert_false(present(&r, LM_KIND_POSTING, "job-gone"));
	assert_all_stored(&r, N);
	assert_true(
	    metric(&r, "lunamatch_ingest_consumed_total{topic=\"cons-refill-resume."
	               "postings\"}") <= N - at);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refill_deleted_total{kind=\"posting\"}"), 1);
	assert_int_equal(lm_ingest_current_get(r.store, &cur), LM_OK);
	assert_true(cur.complete);
	end_run(&r, p);
}

/*
 * A refill covers every partition of both topics as the cluster's metadata
 * gives them, not only those assigned: with the profiles topic refused to
 * the consumer (its metadata says TOPIC_AUTHORIZATION_FAILED, so the group
 * assigns only the postings), the refill reads the postings again to their
 * end but neither deletes anything nor ends, and the store is not
 * started. Each check that finds a partition missing reads the metadata of
 * both topics once, and the next check comes a second later at the
 * earliest. Once the topic is readable the refill, resumed, deletes only
 * what the topics no longer hold.
 */
static void
test_refill_topic_missing(void **state)
{
	enum { N = 20 };
	struct run r;
	rd_kafka_t *p = producer();
	lm_ingest_refill ref;
	(void) state;

	prepare(&r, "cons-refill-missing");
	queue_postings(p, r.cfg.topic_postings, N);
	produce_profile(p, r.cfg.topic_profiles, "cand-1");
	start(&r);
	wait_ready_run(&r);
	stop_consumer(&r);
	put_gone(&r, LM_KIND_POSTING, "job-gone");
	put_gone(&r, LM_KIND_PROFILE, "cand-gone");

	rd_kafka_mock_topic_set_error(
	    M.mc, r.cfg.topic_profiles, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	atomic_store(&wall_ahead, 2 * DAY_S);
	new_consumer(&r);
	reads_reset(&r);
	r.stop = 0;
	start(&r);
	for (int i = 0; i < IO_MS / 50 && refill_at(&r, 1, r.cfg.topic_postings) < N; i++)
		lmt_sleep_ms(50);
	assert_int_equal(refill_at(&r, 1, r.cfg.topic_postings), N);
	for (int i = 0; i < IO_MS / 50 && atomic_load(&reads.n) < 3; i++)
		lmt_sleep_ms(50);
	assert_true(atomic_load(&reads.n) >= 3);
	assert_false(atomic_load(&reads.other));
	assert_true(atomic_load(&reads.min_gap_ms) >= 1000);
	assert_refilling(&r);
	assert_true(present(&r, LM_KIND_PROFILE, "cand-1"));
	assert_true(present(&r, LM_KIND_PROFILE, "cand-gone"));
	assert_true(present(&r, LM_KIND_POSTING, "job-gone"));
	assert_all_stored(&r, N);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refill_deleted_total{kind=\"profile\"}"), 0);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refill_deleted_total{kind=\"posting\"}"), 0);
	stop_consumer(&r);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);

	rd_kafka_mock_topic_set_error(
	    M.mc, r.cfg.topic_profiles, RD_KAFKA_RESP_ERR_NO_ERROR);
	new_consumer(&r);
	assert_refilling(&r);
	r.stop = 0;
	start(&r);
	wait_ready_run(&r);
	assert_true(present(&r, LM_KIND_PROFILE, "cand-1"));
	assert_false(present(&r, LM_KIND_PROFILE, "cand-gone"));
	assert_false(present(&r, LM_KIND_POSTING, "job-gone"));
	assert_all_stored(&r, N);
	end_run(&r, p);
}

/*
 * A store that does not say when it was last current (written by an
 * earlier version, or another program) is of unknown age: it is refilled
 * too. A new, empty store is not: it is filled from the beginning anyway.
 */
static void
test_refill_unknown_age(void **state)
{
	enum { N = 10 };
	struct run r;
	rd_kafka_t *p = producer();
	lm_ingest_current cur;
	(void) state;

	prepare(&r, "cons-refill-unknown");
	assert_int_equal(lm_ingest_current_get(r.store, &cur), LM_OK);
	assert_false(cur.complete);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 0);
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	replace_store(&r, "cons-refill-unknown-2");
	put_gone(&r, LM_KIND_POSTING, "job-old");
	queue_postings(p, r.cfg.topic_postings, N);
	new_consumer(&r);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 1);
	start(&r);
	wait_ready_run(&r);
	assert_false(present(&r, LM_KIND_POSTING, "job-old"));
	assert_all_stored(&r, N);
	end_run(&r, p);
}

/* A refill id 1 begun `ago` seconds before the consumers' clock, active,
 * with a mark, in r's store, which holds a record the topics do not. */
static void
put_refill(struct run *r, int64_t ago)
{
	lm_ingest_refill ref = {1, true, test_wall() - ago, test_wall() - ago - DAY_S};
	lm_store_txn *t = NULL;

	put_gone(r, LM_KIND_POSTING, "job-gone");
	assert_int_equal(lm_store_begin(r->store, &t), LM_OK);
	assert_int_equal(lm_ingest_refill_put(t, &ref), LM_OK);
	assert_int_equal(lm_store_mark(t, LM_KIND_POSTING, "job-gone"), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/* Frees r's consumer, as a process that stopped. */
static void
drop_consumer(struct run *r)
{
	lm_consumer_free(r->c);
	lm_metrics_free(r->metrics);
	r->c = NULL;
	r->metrics = NULL;
}

/*
 * A refill begun longer ago than the max age (the process stopped midway
 * and stayed away) is not resumed: tombstones may have gone meanwhile, so
 * what it read again and marked is stale. A new refill begins, with a new
 * id and no marks; one begun within the max age is resumed.
 */
static void
test_refill_resumed_too_old(void **state)
{
	struct run r;
	lm_ingest_refill ref;
	struct lm_store_stats st;
	(void) state;

	prepare(&r, "cons-refill-old");
	drop_consumer(&r);
	put_refill(&r, 600);
	new_consumer(&r);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	assert_int_equal(ref.id, 1);
	assert_int_equal(metric(&r, "lunamatch_ingest_refills_total{reason=\"age\"}"), 0);
	assert_int_equal(lm_store_stats(r.store, &st), LM_OK);
	assert_int_equal(st.marks, 1);
	drop_consumer(&r);

	atomic_store(&wall_ahead, 2 * DAY_S);
	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	assert_int_equal(ref.id, 2);
	assert_true(ref.began > test_wall() - 600);
	assert_int_equal(metric(&r, "lunamatch_ingest_refills_total{reason=\"age\"}"), 1);
	assert_int_equal(lm_store_stats(r.store, &st), LM_OK);
	assert_int_equal(st.marks, 0);
	finish(&r);
}

/*
 * A refill begun at a time well ahead of the clock (the clock of the
 * process that began it was ahead, or this one is behind) is not
 * resumed: how long ago it began is unknown, so its marks prove nothing.
 */
static void
test_refill_begun_ahead(void **state)
{
	struct run r;
	lm_ingest_refill ref;
	struct lm_store_stats st;
	(void) state;

	prepare(&r, "cons-refill-ahead");
	drop_consumer(&r);
	put_refill(&r, 600);
	atomic_store(&wall_ahead, -2 * DAY_S);
	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	assert_int_equal(ref.id, 2);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 1);
	assert_int_equal(lm_store_stats(r.store, &st), LM_OK);
	assert_int_equal(st.marks, 0);
	finish(&r);
}

/* Damages the record of r's refill: it no longer reads back. */
static void
damage_refill(struct run *r)
{
	lm_ingest_refill ref;
	lm_store_txn *t = NULL;

	assert_int_equal(lm_store_begin(r->store, &t), LM_OK);
	assert_int_equal(lm_store_meta_put(t, "ingest.refill", "x", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_ingest_refill_get(r->store, &ref), LM_ESTORE);
}

/*
 * A damaged refill state does not stop every start: the refill is of
 * unknown state, so a new one begins, with an id no earlier refill of the
 * store had (what they read again is not taken for its own), and the
 * records the topics do not hold are deleted once it is done.
 */
static void
test_refill_damaged(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	lm_ingest_refill ref;
	lm_store_txn *t = NULL;
	(void) state;

	prepare(&r, "cons-refill-damaged");
	produce_posting(p, r.cfg.topic_postings, "job-1");
	drop_consumer(&r);
	put_refill(&r, 600);
	assert_int_equal(lm_store_begin(r.store, &t), LM_OK);
	assert_int_equal(
	    lm_ingest_refill_offset_put(t, 1, r.cfg.topic_postings, 0, 0, 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	damage_refill(&r);

	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 1);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	assert_true(ref.id > 1);
	start(&r);
	wait_ready_run(&r);
	assert_true(present(&r, LM_KIND_POSTING, "job-1"));
	assert_false(present(&r, LM_KIND_POSTING, "job-gone"));
	end_run(&r, p);
}

/*
 * The id of a refill begun after a damaged record of one owes nothing to
 * the clock: two such refills begun in the same second of the same clock
 * get ids of their own, so the second does not take how far the first
 * read a partition again for its own.
 */
static void
test_refill_damaged_same_second(void **state)
{
	struct run r;
	lm_ingest_refill ref;
	lm_store_txn *t = NULL;
	uint64_t first;
	(void) state;

	prepare(&r, "cons-refill-damaged-2");
	drop_consumer(&r);
	atomic_store(&wall_fixed, test_wall());
	damage_refill(&r);
	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	first = ref.id;
	assert_int_equal(lm_store_begin(r.store, &t), LM_OK);
	assert_int_equal(
	    lm_ingest_refill_offset_put(t, first, r.cfg.topic_postings, 0, 0, 5), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	drop_consumer(&r);

	damage_refill(&r);
	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(lm_ingest_refill_get(r.store, &ref), LM_OK);
	assert_true(ref.active);
	assert_true(ref.id != 0 && ref.id != first);
	assert_int_equal(refill_at(&r, ref.id, r.cfg.topic_postings), -1);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 1);
	finish(&r);
}

/*
 * A store last current at a time in the future (the clock of the process
 * that recorded it was ahead, or this one is behind) is of unknown age:
 * refilled. A time within a few minutes ahead is trusted.
 */
static void
test_current_in_future(void **state)
{
	struct run r;
	lm_ingest_current cur;
	lm_store_txn *t = NULL;
	(void) state;

	prepare(&r, "cons-current-future");
	drop_consumer(&r);
	put_gone(&r, LM_KIND_POSTING, "job-gone");
	cur = (lm_ingest_current){test_wall() + 60, true};
	assert_int_equal(lm_store_begin(r.store, &t), LM_OK);
	assert_int_equal(lm_ingest_current_put(t, &cur), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	new_consumer(&r);
	assert_int_equal(metric(&r, "lunamatch_ingest_refilling"), 0);
	drop_consumer(&r);

	cur = (lm_ingest_current){test_wall() + DAY_S, true};
	assert_int_equal(lm_store_begin(r.store, &t), LM_OK);
	assert_int_equal(lm_ingest_current_put(t, &cur), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	new_consumer(&r);
	assert_refilling(&r);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_refills_total{reason=\"unknown\"}"), 1);
	finish(&r);
}

/*
 * An epoch never goes down: a store that holds positions of the postings
 * topic at epoch 1 refuses a consumer configured with 0 (its tombstones
 * would read as replays), and takes one whose epoch is 1 through
 * LUNAMATCH_OFFSETS_EPOCH, which counts for both topics.
 */
static void
test_epoch_guard(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	lm_consumer_opts o;
	lm_consumer *c = NULL;
	lm_metrics *m = NULL;
	char err[512] = "";
	(void) state;

	prepare(&r, "cons-epoch");
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	r.cfg.postings_epoch = 1;
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	wait_stored(&r, "job-0");
	stop_consumer(&r);

	r.cfg.postings_epoch = 0;
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o = (lm_consumer_opts){.cfg = &r.cfg,
	    .store = r.store,
	    .ctx = &M.r.ctx,
	    .metrics = m,
	    .stop = &r.stop};
	assert_int_equal(lm_consumer_new(&o, &c, err, sizeof(err)), LM_EINVAL);
	assert_null(c);
	assert_non_null(strstr(err, "epoch 1"));
	assert_non_null(strstr(err, "LUNAMATCH_POSTINGS_EPOCH"));
	lm_metrics_free(m);

	r.cfg.offsets_epoch = 1;
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	stop_consumer(&r);
	r.c = NULL;
	finish(&r);
	rd_kafka_destroy(p);
}

/* Queues and sends a tombstone of posting id to partition 0 of topic. */
static void
produce_tombstone(rd_kafka_t *p, const char *topic, const char *id)
{
	queue(p, topic, id, NULL, 0);
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Waits (bounded) until posting id is no longer live in r's store. */
static void
wait_deleted(struct run *r, const char *id)
{
	for (int i = 0; i < IO_MS / 50; i++) {
		if (!stored_in(r, id))
			return;
		lmt_sleep_ms(50);
	}
	fail_msg("posting %s not deleted", id);
}

/*
 * The postings topic changed (LUNAMATCH_TOPIC_POSTINGS points elsewhere)
 * without its epoch: the store's positions are another topic's, against
 * which the new topic's tombstones at lower offsets would read as replays
 * and be skipped, leaving deleted postings live. The consumer refuses to
 * start, naming the store's topic and the epoch to raise; with the epoch
 * raised it starts and the new topic's tombstone deletes.
 */
static void
test_source_topic(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	lm_consumer_opts o;
	lm_consumer *c = NULL;
	lm_metrics *m = NULL;
	char err[512] = "";
	(void) state;

	prepare(&r, "cons-srctopic");
	start(&r);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	produce_posting(p, r.cfg.topic_postings, "job-1");
	wait_stored(&r, "job-1");
	stop_consumer(&r);

	snprintf(r.cfg.topic_postings, sizeof(r.cfg.topic_postings),
	    "cons-srctopic.postings2");
	lmt_mock_topic_create(M.mc, r.cfg.topic_postings, 1);
	produce_tombstone(p, r.cfg.topic_postings, "job-0"); /* offset 0 */

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o = (lm_consumer_opts){.cfg = &r.cfg,
	    .store = r.store,
	    .ctx = &M.r.ctx,
	    .metrics = m,
	    .stop = &r.stop};
	assert_int_equal(lm_consumer_new(&o, &c, err, sizeof(err)), LM_EINVAL);
	assert_null(c);
	assert_non_null(strstr(err, "cons-srctopic.postings "));
	assert_non_null(strstr(err, "LUNAMATCH_POSTINGS_EPOCH"));
	lm_metrics_free(m);

	r.cfg.postings_epoch = 1;
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	wait_deleted(&r, "job-0");
	assert_true(stored_in(&r, "job-1"));
	end_run(&r, p);
}

/*
 * The same topic names on another Kafka cluster (LUNAMATCH_BROKERS points
 * elsewhere) without a new epoch: the store's positions and offsets are
 * the other cluster's. The consumer stores nothing and stops with
 * LM_EINVAL once it learns the cluster's id; with both topics' epochs
 * raised it reads the new cluster's topics from their beginning, and the
 * tombstone deletes.
 */
static void
test_source_cluster(void **state)
{
	struct run r;
	rd_kafka_t *p = producer(), *p2;
	rd_kafka_mock_cluster_t *mc2;
	rd_kafka_conf_t *pc = NULL;
	char err[256];
	(void) state;

	prepare(&r, "cons-srccluster");
	start(&r);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	produce_posting(p, r.cfg.topic_postings, "job-1");
	wait_stored(&r, "job-1");
	stop_consumer(&r);

	assert_non_null(mc2 = rd_kafka_mock_cluster_new(M.owner, 1));
	lmt_mock_topic_create(mc2, r.cfg.topic_postings, 1);
	lmt_mock_topic_create(mc2, r.cfg.topic_profiles, 1);
	lmt_mock_topic_create(mc2, r.cfg.topic_dlq, 1);
	snprintf(r.cfg.brokers, sizeof(r.cfg.brokers), "%s",
	    rd_kafka_mock_cluster_bootstraps(mc2));
	assert_int_equal(
	    lm_kafka_conf(r.cfg.brokers, "lmtest", &pc, err, sizeof(err)), LM_OK);
	assert_non_null(p2 = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err)));
	produce_tombstone(p2, r.cfg.topic_postings, "job-0"); /* offset 0 */

	new_consumer(&r);
	r.stop = 0;
	start(&r);
	for (int i = 0; i < IO_MS / 50 && !atomic_load(&r.done); i++)
		lmt_sleep_ms(50);
	assert_true(atomic_load(&r.done));
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.rv, LM_EINVAL);
	assert_true(stored_in(&r, "job-0"));
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);

	r.cfg.offsets_epoch = 1;
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	wait_deleted(&r, "job-0");
	assert_true(stored_in(&r, "job-1"));
	end_run(&r, p);
	rd_kafka_destroy(p2);
	rd_kafka_mock_cluster_destroy(mc2);
}

/*
 * A partition that goes back while the open batch holds later offsets of it
 * (here a seek; in service an offset reset after the log was truncated or
 * the topic recreated): the open batch is finished first and the messages
 * read again are stored after it, none dropped (each replay is counted as
 * a duplicate).
 */
static void
test_rewound(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_error_t *e;
	char consumed[600];
	(void) state;

	prepare(&r, "cons-rewound");
	snprintf(consumed, sizeof(consumed),
	    "lunamatch_ingest_consumed_total{topic=\"%s\"}", r.cfg.topic_postings);
	start(&r);
	wait_assigned(&r);
	/* job-0's batch is slow to store; job-1 .. job-3 wait in the open
	 * batch meanwhile. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < 1; i++)
		lmt_sleep_ms(10);
	queue_postings(p, r.cfg.topic_postings, 4); /* job-0 again, job-1 .. job-3 */
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < 5; i++)
		lmt_sleep_ms(10);
	assert_int_equal(metric(&r, consumed), 5);
	assert_false(stored_in(&r, "job-3"));
	/* Back to offset 2 while the open batch holds offsets 1 .. 4. */
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, r.cfg.topic_postings, 0)->offset = 2;
	e = rd_kafka_seek_partitions(lm_consumer_kafka(r.c, false), l, IO_MS);
	assert_null(e);
	assert_int_equal(l->elems[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < 8; i++)
		lmt_sleep_ms(10);
	assert_int_equal(metric(&r, consumed), 8);
	wait_committed(&r, r.cfg.topic_postings, 5);
	/* job-0 twice, then offsets 2 .. 4 (job-1 .. job-3) twice: four new
	 * versions, four duplicates, nothing dropped. */
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_stored_total{kind=\"posting\"}"), 4);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_duplicates_total{kind=\"posting\"}"), 4);
	end_run(&r, p);
}

/*
 * A partition that goes back below the offset its group committed (in
 * service an offset reset to the log start after the log was truncated or
 * the topic recreated; here a seek): the group's offset goes back with the
 * store's once the first batch after it is stored. librdkafka's auto-commit
 * sends no offset below the one it committed last, which left the group's
 * offset ahead of the store until the store passed it again.
 */
static void
test_rewound_sets_back(void **state)
{
	enum { N = 200 };
	struct run r;
	rd_kafka_t *p = producer();
	rd_kafka_topic_partition_list_t *l;
	int64_t group = N, at = N;
	(void) state;

	prepare(&r, "cons-rewoundback");
	queue_postings(p, r.cfg.topic_postings, N);
	start(&r);
	wait_ready_run(&r);
	wait_committed(&r, r.cfg.topic_postings, N);
	/* Each of the first two batches after the seek takes 2 s to store. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 2);
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, r.cfg.topic_postings, 0)->offset = 0;
	assert_null(rd_kafka_seek_partitions(lm_consumer_kafka(r.c, false), l, IO_MS));
	rd_kafka_topic_partition_list_destroy(l);
	for (int i = 0; i < IO_MS / 10 && store_at(&r, r.cfg.topic_postings) == N; i++)
		lmt_sleep_ms(10);
	assert_true(store_at(&r, r.cfg.topic_postings) < N);
	for (int i = 0; i < IO_MS / 50; i++) {
		group = lmt_group_committed(
		    M.brokers, r.cfg.group_id, r.cfg.topic_postings, 0, NULL);
		at = store_at(&r, r.cfg.topic_postings);
		if (group <= at || at == N)
			break;
		lmt_sleep_ms(50);
	}
	if (group > at || at == N)
		fail_msg("the group's offset at %" PRId64 " with the store at %" PRId64,
		    group, at);
	wait_committed(&r, r.cfg.topic_postings, N);
	end_run(&r, p);
}

/*
 * A partition that goes back while the batch before the open one fails,
 * then a stop: both batches are given up, and so is the message read again
 * after the rewind, which must not be stored and acknowledged past them
 * (its offset, 3, would skip job-0 at offset 0 and offset 1 for good).
 */
static void
test_rewound_stop_while_failing(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	rd_kafka_topic_partition_list_t *l;
	char consumed[600];
	(void) state;

	prepare(&r, "cons-rewoundstop");
	snprintf(consumed, sizeof(consumed),
	    "lunamatch_ingest_consumed_total{topic=\"%s\"}", r.cfg.topic_postings);
	start(&r);
	wait_assigned(&r);
	/* job-0's batch takes 2 s to fail; offsets 1 .. 4 wait meanwhile. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_STORE, 1);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < 1; i++)
		lmt_sleep_ms(10);
	queue_postings(p, r.cfg.topic_postings, 4);
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < 5; i++)
		lmt_sleep_ms(10);
	assert_int_equal(metric(&r, consumed), 5);
	/* Back to offset 2: the consumer waits for job-0's batch to land. */
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, r.cfg.topic_postings, 0)->offset = 2;
	assert_null(rd_kafka_seek_partitions(lm_consumer_kafka(r.c, false), l, IO_MS));
	rd_kafka_topic_partition_list_destroy(l);
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < 6; i++)
		lmt_sleep_ms(10);
	assert_false(stored_in(&r, "job-0"));
	r.stop = 1;
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.rv, LM_OK);
	assert_false(stored_in(&r, "job-0"));
	assert_true(store_at(&r, r.cfg.topic_postings) < 1);
	assert_true(lmt_group_committed(
	                M.brokers, r.cfg.group_id, r.cfg.topic_postings, 0, NULL) < 1);
	finish(&r);
	rd_kafka_destroy(p);
}

/*
 * The dead-letter topic unreachable (its partition has no leader) while a
 * batch's dead letters are more than the DLQ producer's local queue holds
 * (here 256 KiB, one letter of 200 KiB; 64 MiB in service): the consumer
 * stays live while it waits for room, which only the letters' message
 * timeout (15 s) frees (a stall of 3 s would show), and a stop ends the
 * sending at once, so that lm_consumer_run returns within
 * LM_CONSUMER_STOP_MAX_MS with nothing acknowledged. Once the topic is
 * back, a consumer on the same store and group sends every dead letter and
 * acknowledges the messages.
 */
static void
test_dlq_down(void **state)
{
	/* Enough dead letters to fill a 256 KiB producer queue. */
	enum { N = 6, LEN = 200 << 10 };
	struct run r;
	rd_kafka_t *p = producer();
	char *junk = malloc(LEN), key[32], why[256] = "", consumed[600];
	(void) state;

	assert_non_null(junk);
	memset(junk, '{', LEN); /* bad JSON: rejected */
	prepare(&r, "cons-dlqdown");
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	/* Above what a slow (sanitizer) build takes between two heartbeats of
	 * a live loop, below the 5 s a send used to wait for room. */
	r.stall_ms = 3000;
	r.dlq_queue_kb = 256;
	new_consumer(&r);
	snprintf(consumed, sizeof(consumed),
	    "lunamatch_ingest_consumed_total{topic=\"%s\"}", r.cfg.topic_postings);
	assert_int_equal(rd_kafka_mock_partition_set_leader(M.mc, r.cfg.topic_dlq, 0, -1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	start(&r);
	wait_assigned(&r);
	/* job-0's batch is slow to store, so that the rejects after it wait
	 * in one batch: its second dead letter waits for room. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "bad-%d", i);
		queue(p, r.cfg.topic_postings, key, junk, LEN);
	}
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < N + 1; i++)
		lmt_sleep_ms(10);
	assert_int_equal(metric(&r, consumed), N + 1);
	wait_stored(&r, "job-0");
	for (int i = 0; i < 120; i++) {
		if (lm_consumer_live(r.c, why, sizeof(why)) != LM_OK)
			fail_msg("not live while sending dead letters: %s", why);
		lmt_sleep_ms(50);
	}
	assert_true(rd_kafka_outq_len(lm_consumer_kafka(r.c, true)) > 0);
	int64_t t0 = lm_clock_ms();
	r.stop = 1;
	while (!atomic_load(&r.done) && lm_clock_ms() - t0 < LM_CONSUMER_STOP_MAX_MS)
		lmt_sleep_ms(10);
	if (!atomic_load(&r.done))
		fail_msg("lm_consumer_run still running %d ms after the stop",
		    LM_CONSUMER_STOP_MAX_MS);
	assert_int_equal(pthread_join(r.thread, NULL), 0);
	assert_int_equal(r.rv, LM_OK);
	assert_true(lmt_group_committed(M.brokers, r.cfg.group_id, r.cfg.topic_postings,
	                0, NULL) < N + 1);

	/* The topic back: every dead letter goes out, then the offsets. */
	assert_int_equal(rd_kafka_mock_partition_set_leader(M.mc, r.cfg.topic_dlq, 0, 1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	new_consumer(&r);
	r.stop = 0;
	start(&r);
	wait_committed(&r, r.cfg.topic_postings, N + 1);
	assert_true(count_dlq(r.cfg.topic_dlq, N) >= N);
	free(junk);
	end_run(&r, p);
}

/*
 * A dead letter the broker refuses for good (MSG_SIZE_TOO_LARGE) in a batch
 * that is retried twice (its dead letters reported undelivered): it is
 * dropped, logged and counted once, and not sent again by the retries;
 * the batch completes and its offset is committed.
 */
static void
test_dlq_drop_once(void **state)
{
	struct run r;
	rd_kafka_t *p = producer();
	(void) state;

	prepare(&r, "cons-dlqdrop");
	produce(p, r.cfg.topic_postings, "bad-1", "{not json", 9);
	/* The broker would refuse it as often as it is sent; the consumer is
	 * the cluster's only producer from here on. */
	rd_kafka_mock_push_request_errors(M.mc, KAFKA_API_PRODUCE, 3,
	    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
	    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_DLQ, 2);
	start(&r);
	wait_committed(&r, r.cfg.topic_postings, 1);
	rd_kafka_mock_clear_request_errors(M.mc, KAFKA_API_PRODUCE);
	assert_int_equal(metric(&r, "lunamatch_ingest_batch_failures_total"), 2);
	assert_int_equal(
	    metric(&r, "lunamatch_ingest_dlq_failed_total{reason=\"too_large\"}"), 1);
	assert_int_equal(topic_end(p, r.cfg.topic_dlq), 0);
	end_run(&r, p);
}

/* Bytes the process has allocated and not freed (all threads). */
static size_t
live_heap(void)
{
#ifdef __SANITIZE_ADDRESS__
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#endif
}

/*
 * Rejected messages held for their dead letters (the dead-letter topic
 * down, so that they stay held) do not keep what librdkafka fetched them
 * in alive: N invalid messages, each with a header of LEN bytes, consumed
 * into one batch grow the heap by far less than their size. Once the
 * topic is back, each goes out with its headers left out (over
 * LM_DLQ_HEADERS_MAX) and the batch is acknowledged.
 */
static void
test_reject_holds_no_fetch_buffer(void **state)
{
	/* The mock cluster keeps the last 5 MiB of a partition. */
	enum { N = 40, LEN = 100 << 10 };
	struct run r;
	rd_kafka_t *p = producer();
	char *junk = malloc(LEN), key[32], consumed[600];
	(void) state;

	assert_non_null(junk);
	memset(junk, 'j', LEN);
	prepare_ex(&r, "cons-pin", "cons-pin", 0, 60000);
	snprintf(consumed, sizeof(consumed),
	    "lunamatch_ingest_consumed_total{topic=\"%s\"}", r.cfg.topic_postings);
	assert_int_equal(rd_kafka_mock_partition_set_leader(M.mc, r.cfg.topic_dlq, 0, -1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	/* job-0's batch is slow to store, so that the rejects after it wait
	 * in one batch. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	for (int i = 0; i < N; i++) {
		rd_kafka_headers_t *h = rd_kafka_headers_new(1);
		rd_kafka_header_add(h, "x-junk", -1, junk, LEN);
		snprintf(key, sizeof(key), "bad-%d", i);
		assert_int_equal(
		    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(r.cfg.topic_postings),
		        RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, strlen(key)),
		        RD_KAFKA_V_VALUE("{not json", 9),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		        RD_KAFKA_V_END),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
		assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	free(junk);
	size_t before = live_heap();
	start(&r);
	for (int i = 0; i < IO_MS / 10 && metric(&r, consumed) < N + 1; i++) {
		lmt_sleep_ms(10);
	}
	assert_int_equal(metric(&r, consumed), N + 1);
	lmt_sleep_ms(200);
	size_t after = live_heap();
	size_t grown = after > before ? after - before : 0;
	if (grown >= (size_t) N * LEN / 4)
		fail_msg("%d held rejects grew the heap by %zu bytes", N, grown);
	assert_true(lmt_group_committed(M.brokers, r.cfg.group_id, r.cfg.topic_postings,
	                0, NULL) < N + 1);

	assert_int_equal(rd_kafka_mock_partition_set_leader(M.mc, r.cfg.topic_dlq, 0, 1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int i = 0;
	     i < 3 * IO_MS / 100 && committed(&r, r.cfg.topic_postings) != N + 1; i++)
		lmt_sleep_ms(100);
	assert_int_equal(committed(&r, r.cfg.topic_postings), N + 1);
	assert_int_equal(count_dlq(r.cfg.topic_dlq, N), N);
	end_run(&r, p);
}

/*
 * The batch's byte bound counts what its held rejects take: rejects of a
 * few bytes with LM_DLQ_HEADER_COUNT_MAX one-byte headers each (tens of
 * KiB held per reject, about 2 KiB of message) fill a batch by bytes long
 * before its message count: N of them (N / 2 per topic, within the mock
 * cluster's 5 MiB per partition) hold more than twice
 * LM_INGEST_BATCH_BYTES_MAX, so that they go in at least two batches
 * beside job-0's, however the batches are cut.
 */
static void
test_reject_bytes_counted(void **state)
{
	enum { N = 2400 };
	struct run r;
	rd_kafka_t *p = producer();
	char key[32];
	(void) state;

	prepare_ex(&r, "cons-rejbytes", "cons-rejbytes", 0, 60000);
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	r.cfg.batch_max = 2 * N;
	new_consumer(&r);
	/* job-0's batch is slow to store, so that the rejects after it wait
	 * in the open batch until it is full. */
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	warm(p, r.cfg.topic_profiles);
	for (int i = 0; i < N; i++) {
		rd_kafka_headers_t *h = rd_kafka_headers_new(LM_DLQ_HEADER_COUNT_MAX);
		for (unsigned j = 0; j < LM_DLQ_HEADER_COUNT_MAX; j++)
			rd_kafka_header_add(h, "h", 1, NULL, 0);
		snprintf(key, sizeof(key), "bad-%d", i);
		const char *topic = i % 2 ? r.cfg.topic_profiles : r.cfg.topic_postings;
		assert_int_equal(
		    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
		        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE("{", 1),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		        RD_KAFKA_V_END),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(topic_end(p, r.cfg.topic_postings), N / 2 + 1);
	assert_int_equal(topic_end(p, r.cfg.topic_profiles), N / 2);
	start(&r);
	for (int i = 0;
	     i < 3 * IO_MS / 100 && (committed(&r, r.cfg.topic_postings) != N / 2 + 1 ||
	                                committed(&r, r.cfg.topic_profiles) != N / 2);
	     i++)
		lmt_sleep_ms(100);
	assert_int_equal(committed(&r, r.cfg.topic_postings), N / 2 + 1);
	assert_int_equal(committed(&r, r.cfg.topic_profiles), N / 2);
	assert_true(metric(&r, "lunamatch_ingest_batch_seconds_count") >= 3);
	end_run(&r, p);
}

/* An LMDB environment that answered MDB_PANIC refuses every transaction
 * until the process restarts: ingest reports itself not live, so that it
 * is restarted. The panic goes through the one place LMDB codes are
 * converted (lm_lmdb_err), as the store's calls would. */
static void
test_panic_not_live(void **state)
{
	struct run r;
	char why[256] = "";
	(void) state;

	prepare(&r, "cons-panic");
	assert_int_equal(lm_consumer_live(r.c, why, sizeof(why)), LM_OK);
	assert_int_equal(lm_lmdb_err(MDB_PANIC, "store", "mdb_txn_begin"), LM_ESTORE);
	assert_int_equal(lm_consumer_live(r.c, why, sizeof(why)), LM_ESTORE);
	assert_non_null(strstr(why, "store LMDB environment failed for good"));
	finish(&r);
}

/*
 * Runs job-0, whose store write takes LM_CONSUMER_SLOW_STORE_MS (2 s), with
 * a stall limit of 1 s and a write ceiling of write_stall_ms; with then,
 * job-1 300 ms later, whose batch reaches its deadline during that write,
 * so that the loop waits for the writer (checked: the two are stored by
 * two batches). Returns how long after job-0 was sent the consumer first
 * reported itself not live (-1: never), checked every 20 ms until the
 * write has surely ended; checks that the records are stored and the
 * consumer live again after it.
 */
static int64_t
not_live_during_slow_write(unsigned write_stall_ms, bool then)
{
	struct run r;
	rd_kafka_t *p = producer();
	char why[256] = "";
	int64_t t0, first = -1;
	double batches;

	prepare(&r, "cons-slowlive");
	lm_consumer_free(r.c);
	lm_metrics_free(r.metrics);
	r.stall_ms = 1000;
	r.write_stall_ms = write_stall_ms;
	new_consumer(&r);
	start(&r);
	wait_assigned(&r);
	produce_posting(p, r.cfg.topic_postings, "warm");
	wait_stored(&r, "warm");
	batches = metric(&r, "lunamatch_ingest_batch_seconds_count");
	lm_consumer_fail_next(r.c, LM_CONSUMER_FAULT_SLOW_STORE, 1);
	produce_posting(p, r.cfg.topic_postings, "job-0");
	t0 = lm_clock_ms();
	if (then) {
		lmt_sleep_ms(300);
		produce_posting(p, r.cfg.topic_postings, "job-1");
	}
	for (; lm_clock_ms() - t0 < LM_CONSUMER_SLOW_STORE_MS + 1500; lmt_sleep_ms(20))
		if (first < 0 && lm_consumer_live(r.c, why, sizeof(why)) != LM_OK) {
			first = lm_clock_ms() - t0;
			assert_non_null(strstr(why, "stalled"));
		}
	wait_stored(&r, then ? "job-1" : "job-0");
	if (then)
		assert_true(
		    metric(&r, "lunamatch_ingest_batch_seconds_count") >= batches + 2);
	assert_int_equal(lm_consumer_live(r.c, why, sizeof(why)), LM_OK);
	end_run(&r, p);
	return first;
}

/*
 * The loop counts as coming round (/healthz) while a slow store write
 * runs, also when it waits for the writer to close the next batch (it was
 * reported stalled after a second), up to a ceiling: past write_stall_ms
 * (here 200 ms) it does not, whether input arrives or not, and the 1 s
 * stall limit fails /healthz before the 2 s write ends (a disk that
 * stopped answering).
 */
static void
test_live_during_slow_write(void **state)
{
	(void) state;
	assert_int_equal(not_live_during_slow_write(0, true), -1);
	assert_true(not_live_during_slow_write(200, false) >= 0);
	assert_true(not_live_during_slow_write(200, true) >= 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fatal_error),
	    cmocka_unit_test(test_store_failure),
	    cmocka_unit_test(test_stop_while_failing),
	    cmocka_unit_test(test_trim_under_steady_input),
	    cmocka_unit_test(test_dlq_failure),
	    cmocka_unit_test(test_move_failure),
	    cmocka_unit_test(test_read_failure),
	    cmocka_unit_test(test_revoke),
	    cmocka_unit_test(test_shared_group_not_started),
	    cmocka_unit_test(test_revoke_failing_batch),
	    cmocka_unit_test(test_catchup),
	    cmocka_unit_test(test_catchup_store_positions),
	    cmocka_unit_test(test_resume_new_store),
	    cmocka_unit_test(test_position_unreadable),
	    cmocka_unit_test(test_position_unreadable_at_assignment),
	    cmocka_unit_test(test_resume_set_back_fails),
	    cmocka_unit_test(test_resume_set_back_fails_store_failing),
	    cmocka_unit_test(test_resume_committed_unknown),
	    cmocka_unit_test(test_resume_legacy_store),
	    cmocka_unit_test(test_refill_legacy_deleted_and_republished),
	    cmocka_unit_test(test_epoch_guard),
	    cmocka_unit_test(test_refill_stale_store),
	    cmocka_unit_test(test_refill_resumed),
	    cmocka_unit_test(test_refill_topic_missing),
	    cmocka_unit_test(test_refill_unknown_age),
	    cmocka_unit_test(test_refill_resumed_too_old),
	    cmocka_unit_test(test_refill_begun_ahead),
	    cmocka_unit_test(test_refill_damaged),
	    cmocka_unit_test(test_refill_damaged_same_second),
	    cmocka_unit_test(test_current_in_future),
	    cmocka_unit_test(test_current_rounds),
	    cmocka_unit_test(test_started_from_store),
	    cmocka_unit_test(test_source_topic),
	    cmocka_unit_test(test_source_cluster),
	    cmocka_unit_test(test_rewound),
	    cmocka_unit_test(test_rewound_sets_back),
	    cmocka_unit_test(test_compliance_counted_once),
	    cmocka_unit_test(test_rewound_stop_while_failing),
	    cmocka_unit_test(test_dlq_down),
	    cmocka_unit_test(test_dlq_drop_once),
	    cmocka_unit_test(test_reject_holds_no_fetch_buffer),
	    cmocka_unit_test(test_reject_bytes_counted),
	    cmocka_unit_test(test_stop_with_backlog),
	    cmocka_unit_test(test_live_during_slow_write),
	    /* Last: it marks the process as failed for good. */
	    cmocka_unit_test(test_panic_not_live),
	};
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
