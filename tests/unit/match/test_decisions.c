/*
 * test_decisions.c - the decision log on a real LMDB queue and librdkafka's
 * mock cluster (a Kafka protocol implementation on 127.0.0.1), read back
 * with a real consumer: concurrent answers all logged, durable before the
 * call returns, kept through a broker outage and a restart, refused with a
 * clear error when the queue is full, and healthy again once it drains;
 * in both sync modes (LUNAMATCH_DECISION_LOG_SYNC_MS 0 and N) a logged
 * decision survives a crash of the process (a child that dies without
 * closing the log), and decisions handed over without waiting report
 * their write exactly once; a stop while decisions are in flight sends
 * none of them twice; a partition without a leader holds up only its own
 * decisions; a queue longer than one read of the sender's pass reaches the
 * topic whole and in order; a damaged queue entry or key is never sent,
 * but logged, counted and removed.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "decisions.h"
#include "lmtest.h"
#include "storetest.h"
#include "lunamatch/clock.h"
#include "lunamatch/dqueue.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/metrics.h"

#define TOPIC       "test.decisions"
#define PARTITIONS  2
#define MOCK_BROKER 1
#define THREADS     4
#define PER_THREAD  50
#define READ_MS     20000
#define MAX_READ    1024

static char *tmp;
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static const char *brokers;
static int serial;

static int
setup(void **state)
{
	rd_kafka_conf_t *conf = NULL;
	char err[256];
	(void) state;

	tmp = lmt_tmpdir("decisions");
	assert_int_equal(
	    lm_kafka_conf(NULL, "test-mock", &conf, err, sizeof(err)), LM_OK);
	assert_non_null(
	    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
	assert_non_null(mock = rd_kafka_mock_cluster_new(mock_rk, 1));
	assert_int_equal(rd_kafka_mock_topic_create(mock, TOPIC, PARTITIONS, 1), 0);
	brokers = rd_kafka_mock_cluster_bootstraps(mock);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	rd_kafka_mock_cluster_destroy(mock);
	rd_kafka_destroy(mock_rk);
	lmt_rmtree(tmp);
	free(tmp);
	return 0;
}

/* A fresh data directory under tmp (the caller frees it). */
static char *
data_dir(void)
{
	char *d = malloc(strlen(tmp) + 32);
	assert_non_null(d);
	sprintf(d, "%s/data%d", tmp, serial++);
	assert_int_equal(mkdir(d, 0700), 0);
	return d;
}

static lm_decisions *
open_log(const char *dir, lm_metrics *m, uint64_t max_queue)
{
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = TOPIC,
	    .data_dir = dir,
	    .replica = "test-replica",
	    .metrics = m,
	    .max_queue_bytes = max_queue,
	    .message_timeout_ms = 3000};
	lm_decisions *d = NULL;
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	return d;
}

/* Logs a MatchJobs decision of subject with two results; returns the rc. */
static int
log_one(lm_decisions *d, const char *subject, const char *request_id, const char *caller,
    char id[LM_DECISIONS_ID_LEN + 1])
{
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	Lunamatch__V1__DecisionResult r1 = LUNAMATCH__V1__DECISION_RESULT__INIT,
	                              r2 = LUNAMATCH__V1__DECISION_RESULT__INIT;
	Lunamatch__V1__DecisionResult *rs[] = {&r1, &r2};
	Lunamatch__V1__JobFilters f = LUNAMATCH__V1__JOB_FILTERS__INIT;

	r1.id = "job-a";
	r1.score = 0.9;
	r1.rank = 1;
	r2.id = "job-b";
	r2.score = 0.8;
	r2.rank = 2;
	f.remote_only = true;
	rec.method = "MatchJobs";
	rec.request_id = (char *) request_id;
	rec.caller = (char *) caller;
	rec.subject_id = (char *) subject;
	rec.as_of = 1700000000;
	rec.model_version = "test-1";
	rec.index_seq = 42;
	rec.top_k = 2;
	rec.job_filters = &f;
	rec.n_results = 2;
	rec.results = rs;
	return lm_decisions_log(d, &rec, id);
}

/* What the topic holds, decoded. */
struct readback {
	Lunamatch__V1__Decision *v[MAX_READ];
	char keys[MAX_READ][64];
	size_t n;
};

/* Reads the whole of topic until `want` decisions came and 1 s passed
 * quietly, or READ_MS. */
static void
read_topic(const char *topic, size_t want, struct readback *r)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_t *c;
	char err[256];
	int64_t end = lm_clock_ms() + READ_MS, quiet_from = 0;

	memset(r, 0, sizeof(*r));
	assert_int_equal(
	    lm_kafka_conf(brokers, "test-reader", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(conf, "group.id", "test-reader", err, sizeof(err)), LM_OK);
	assert_non_null(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)));
	parts = rd_kafka_topic_partition_list_new(PARTITIONS);
	for (int p = 0; p < PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(c, parts), 0);
	rd_kafka_topic_partition_list_destroy(parts);
	while (lm_clock_ms() < end &&
	       (r->n < want || quiet_from == 0 || lm_clock_ms() - quiet_from < 1000)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		if (m == NULL) {
			if (r->n >= want && quiet_from == 0)
				quiet_from = lm_clock_ms();
			continue;
		}
		quiet_from = 0;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			assert_true(r->n < MAX_READ && m->key_len < 64);
			memcpy(r->keys[r->n], m->key, m->key_len);
			r->keys[r->n][m->key_len] = '\0';
			r->v[r->n] =
			    lunamatch__v1__decision__unpack(NULL, m->len, m->payload);
			assert_non_null(r->v[r->n]);
			r->n++;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
}

static void
readback_free(struct readback *r)
{
	for (size_t i = 0; i < r->n; i++)
		lunamatch__v1__decision__free_unpacked(r->v[i], NULL);
	r->n = 0;
}

/* How many read decisions have decision id id. */
static size_t
count_id(const struct readback *r, const char *id)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += strcmp(r->v[i]->decision_id, id) == 0;
	return n;
}

/* Waits at most ms for d's queue to hold want decisions; returns what it
 * holds. */
static uint64_t
wait_pending_for(lm_decisions *d, uint64_t want, int64_t ms)
{
	int64_t end = lm_clock_ms() + ms;
	uint64_t n;
	while ((n = lm_decisions_pending(d)) != want && lm_clock_ms() < end)
		lmt_sleep_ms(50);
	return n;
}

static uint64_t
wait_pending(lm_decisions *d, uint64_t want)
{
	return wait_pending_for(d, want, READ_MS);
}

struct worker {
	lm_decisions *d;
	int no;
	char ids[PER_THREAD][LM_DECISIONS_ID_LEN + 1];
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char subject[32], req[32];
	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(subject, sizeof(subject), "cand-%d-%d", w->no, i);
		snprintf(req, sizeof(req), "req-%d-%d", w->no, i);
		if (log_one(w->d, subject, req, "svc-web", w->ids[i]) != LM_OK)
			w->ids[i][0] = '\0';
	}
	return NULL;
}

/* Four threads log 200 answers at once: every decision reaches the topic,
 * keyed by its subject, with what was logged and the fields the log sets. */
static void
test_concurrent(void **state)
{
	char *dir = data_dir();
	lm_metrics *m = NULL;
	struct worker w[THREADS];
	pthread_t th[THREADS];
	struct readback r;
	(void) state;

	/* Nothing is logged before start. */
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_decisions *d = open_log(dir, m, 0);
	assert_int_equal(log_one(d, "c", "r", "", NULL), LM_ECLOSED);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	for (int i = 0; i < THREADS; i++) {
		w[i].d = d;
		w[i].no = i;
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_true(lm_decisions_healthy(d));
	assert_int_equal(wait_pending(d, 0), 0);

	read_topic(TOPIC, THREADS * PER_THREAD, &r);
	assert_int_equal(r.n, THREADS * PER_THREAD);
	for (int i = 0; i < THREADS; i++)
		for (int j = 0; j < PER_THREAD; j++) {
			assert_int_equal(strlen(w[i].ids[j]), LM_DECISIONS_ID_LEN);
			assert_int_equal(count_id(&r, w[i].ids[j]), 1);
		}
	const Lunamatch__V1__Decision *v = r.v[0];
	assert_string_equal(r.keys[0], v->subject_id);
	assert_string_equal(v->method, "MatchJobs");
	assert_string_equal(v->caller, "svc-web");
	assert_string_equal(v->replica, "test-replica");
	assert_string_equal(v->model_version, "test-1");
	assert_int_equal(v->index_seq, 42);
	assert_int_equal(v->as_of, 1700000000);
	assert_true(v->decided_at_ms > 1700000000000);
	assert_non_null(v->job_filters);
	assert_true(v->job_filters->remote_only);
	assert_int_equal(v->n_results, 2);
	assert_string_equal(v->results[1]->id, "job-b");
	assert_int_equal(v->results[1]->rank, 2);
	readback_free(&r);

	char *text = NULL;
	size_t len = 0;
	assert_int_equal(lm_metrics_render(m, &text, &len), LM_OK);
	assert_non_null(strstr(text, "lunamatch_decisions_logged_total 200"));
	assert_non_null(strstr(text, "lunamatch_decisions_sent_total 200"));
	assert_non_null(strstr(text, "lunamatch_decisions_pending 0"));
	free(text);
	lm_decisions_free(d);
	lm_decisions_free(NULL);
	lm_metrics_free(m);
	free(dir);
}

/* A fatal error of the idempotent producer (the broker lost its sequence
 * state) makes that producer fail every message: the sender replaces it,
 * and what was logged before and after is delivered. */
static void
test_fatal_producer(void **state)
{
	char *dir = data_dir();
	char id[LM_DECISIONS_ID_LEN + 1];
	lm_decisions *d = open_log(dir, NULL, 0);
	(void) state;

	assert_int_equal(lm_decisions_start(d), LM_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(log_one(d, "cand-fatal", "req-a", "", id), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	assert_int_equal(
	    rd_kafka_test_fatal_error(lm_decisions_kafka(d),
	        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test fatal"),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int i = 0; i < 5; i++)
		assert_int_equal(log_one(d, "cand-fatal", "req-b", "", id), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	assert_true(lm_decisions_healthy(d));
	lm_decisions_free(d);
	free(dir);
}

static int64_t topic_messages(void);

/*
 * Sent decisions whose removal from the queue fails (three times) are
 * removed again with backoff, not produced again: each is on the topic
 * once. (The sender used to forget them and send the same decisions again
 * in every round while the removal failed.)
 */
static void
test_removal_failure(void **state)
{
	char *dir = data_dir();
	char id[LM_DECISIONS_ID_LEN + 1];
	lm_decisions *d = open_log(dir, NULL, 0);
	(void) state;

	int64_t before = topic_messages();
	assert_int_equal(lm_decisions_start(d), LM_OK);
	lm_decisions_fail_removals(d, 3);
	assert_int_equal(log_one(d, "cand-remove", "req-remove", "", id), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	assert_int_equal(topic_messages() - before, 1);
	lm_decisions_free(d);
	free(dir);
}

/* Messages on the topic: the sum of its partitions' high watermarks. */
static int64_t
topic_messages(void)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *c;
	char err[256];
	int64_t sum = 0, lo, hi;

	assert_int_equal(
	    lm_kafka_conf(brokers, "test-watermarks", &conf, err, sizeof(err)), LM_OK);
	assert_non_null(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)));
	for (int p = 0; p < PARTITIONS; p++) {
		assert_int_equal(
		    rd_kafka_query_watermark_offsets(c, TOPIC, p, &lo, &hi, 10000), 0);
		sum += hi;
	}
	rd_kafka_destroy(c);
	return sum;
}

/* A done callback that keeps the writer busy for 2 s: a slow last write
 * while the log stops. */
struct slow {
	atomic_bool entered;
};

static void
slow_done(void *arg, int rc)
{
	struct slow *w = arg;
	(void) rc;
	atomic_store(&w->entered, true);
	lmt_sleep_ms(2000);
}

/*
 * A stop while decisions are in flight (the broker answers after 1.5 s)
 * and the writer is still busy: the sender stops producing at once. It
 * used to start new rounds until the writer finished, producing the same
 * unconfirmed decisions again and again (copies on the topic, and more
 * delivery reports than its array holds).
 */
static void
test_stop_in_flight(void **state)
{
	char *dir = data_dir();
	lm_decisions *d = open_log(dir, NULL, 0);
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	struct slow w;
	int64_t before, end;
	(void) state;

	atomic_init(&w.entered, false);
	rec.method = "MatchJobs";
	rec.subject_id = "cand-stop";
	before = topic_messages();
	assert_int_equal(lm_decisions_start(d), LM_OK);
	/* The producer is connected (its first decision delivered) before the
	 * broker slows down. */
	assert_int_equal(log_one(d, "cand-stop", "req-stop", "", NULL), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	assert_int_equal(rd_kafka_mock_broker_set_rtt(mock, MOCK_BROKER, 1500), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(log_one(d, "cand-stop", "req-stop", "", NULL), LM_OK);
	assert_int_equal(lm_decisions_log_async(d, &rec, slow_done, &w), LM_OK);
	end = lm_clock_ms() + READ_MS;
	while (!atomic_load(&w.entered) && lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_true(atomic_load(&w.entered));
	lm_decisions_free(d);
	assert_int_equal(rd_kafka_mock_broker_set_rtt(mock, MOCK_BROKER, 0), 0);
	/* Each of the 22 at most once (in flight when the stop came). */
	assert_true(topic_messages() - before <= 22);
	free(dir);
}

/* With the broker down, decisions are durable and wait; stopped and
 * started again (a restart), the log sends them once the broker is back. */
static void
test_outage_and_restart(void **state)
{
	char *dir = data_dir();
	char ids[20][LM_DECISIONS_ID_LEN + 1];
	struct readback r;
	(void) state;

	assert_int_equal(rd_kafka_mock_topic_create(mock, TOPIC ".2", PARTITIONS, 1), 0);
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = TOPIC ".2",
	    .data_dir = dir,
	    .message_timeout_ms = 1000};
	lm_decisions *d = NULL;
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	assert_int_equal(rd_kafka_mock_broker_set_down(mock, MOCK_BROKER), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(log_one(d, "cand-outage", "req", "", ids[i]), LM_OK);
	assert_int_equal(lm_decisions_pending(d), 20);
	lm_decisions_free(d);

	assert_int_equal(rd_kafka_mock_broker_set_up(mock, MOCK_BROKER), 0);
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_pending(d), 20);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	lm_decisions_free(d);

	/* Every decision at least once. */
	read_topic(TOPIC ".2", 20, &r);
	for (int i = 0; i < 20; i++)
		assert_true(count_id(&r, ids[i]) >= 1);
	readback_free(&r);
	free(dir);
}

/* The partition of the decisions topic that a subject's decisions go to
 * (the producer's default partitioner: CRC-32 of the key). */
static int32_t
partition_of(const char *subject)
{
	return rd_kafka_msg_partitioner_consistent(
	    NULL, subject, strlen(subject), PARTITIONS, NULL, NULL);
}

/* A started log on a new topic of its own whose partition 0 then loses its
 * leader; the producer knew both leaders before (one decision delivered). */
static lm_decisions *
open_leaderless(const char *topic, const char *dir, lm_metrics *m, int timeout_ms)
{
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = topic,
	    .data_dir = dir,
	    .metrics = m,
	    .message_timeout_ms = timeout_ms};
	lm_decisions *d = NULL;

	assert_int_equal(rd_kafka_mock_topic_create(mock, topic, PARTITIONS, 1), 0);
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	assert_int_equal(log_one(d, "cand-warm", "req", "", NULL), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	assert_int_equal(rd_kafka_mock_partition_set_leader(mock, topic, 0, -1), 0);
	return d;
}

/*
 * One partition of the topic without a leader (a broker failing over):
 * the decisions keyed to it wait, and those for the other partition are
 * delivered meanwhile, also the ones logged after them; once the leader
 * is back, every decision is delivered. (The sender used to produce in
 * rounds and wait for every report of a round: one decision for the
 * leaderless partition held up all later ones until its send timed out,
 * message.timeout.ms, 60 s by default.)
 */
static void
test_partition_without_leader(void **state)
{
	const char *topic = TOPIC ".3";
	char *dir = data_dir();
	char ids[2][10][LM_DECISIONS_ID_LEN + 1], subject[32];
	uint64_t stuck = 0, stuck_first = 0;
	struct readback r;
	(void) state;

	lm_decisions *d = open_leaderless(topic, dir, NULL, 20000);
	for (int b = 0; b < 2; b++) {
		for (int i = 0; i < 10; i++) {
			snprintf(subject, sizeof(subject), "cand-%d-%d", b, i);
			assert_int_equal(
			    log_one(d, subject, "req", "", ids[b][i]), LM_OK);
			stuck += partition_of(subject) == 0;
		}
		if (b == 0)
			stuck_first = stuck;
		lmt_sleep_ms(500);
	}
	/* Both batches have decisions for each partition. */
	assert_true(stuck_first > 0 && stuck_first < 10);
	assert_true(stuck > stuck_first && stuck - stuck_first < 10);
	/* Only the leaderless partition's wait, well within the timeout. */
	assert_int_equal(wait_pending_for(d, stuck, 5000), stuck);
	lmt_sleep_ms(300);
	assert_int_equal(lm_decisions_pending(d), stuck);

	assert_int_equal(
	    rd_kafka_mock_partition_set_leader(mock, topic, 0, MOCK_BROKER), 0);
	assert_int_equal(wait_pending(d, 0), 0);
	lm_decisions_free(d);
	read_topic(topic, 21, &r);
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 10; i++)
			assert_true(count_id(&r, ids[b][i]) >= 1);
	readback_free(&r);
	free(dir);
}

/* The index in ids[0..n) of id; n when it is none of them. */
static size_t
index_of(char (*ids)[LM_DECISIONS_ID_LEN + 1], size_t n, const char *id)
{
	size_t i = 0;
	while (i < n && strcmp(ids[i], id) != 0)
		i++;
	return i;
}

/*
 * A queue of several slices' worth of decisions (the sender's pass reads
 * LM_DQUEUE_PEEK_SLICE at a time, each slice in a read transaction of its
 * own, and answers are logged while it runs) reaches the topic whole, and
 * each partition in queue order: the decisions that were queued before
 * the start, then those logged after it.
 */
static void
test_pass_in_slices(void **state)
{
	enum {
		QUEUED = 3 * LM_DQUEUE_PEEK_SLICE + 10,
		LOGGED = 20,
		ALL = QUEUED + LOGGED
	};
	const char *topic = TOPIC ".6";
	char *dir = data_dir(), *qdir = malloc(strlen(dir) + 32);
	char(*ids)[LM_DECISIONS_ID_LEN + 1] = calloc(ALL, sizeof(*ids));
	char subjects[QUEUED][16], subject[16];
	uint8_t *bufs[QUEUED];
	lm_dqueue_msg m[QUEUED];
	lm_dqueue *q = NULL;
	size_t next[PARTITIONS], seen = 0;
	bool sent[ALL] = {false};
	struct readback r;
	(void) state;

	assert_non_null(qdir);
	assert_non_null(ids);
	sprintf(qdir, "%s/%s", dir, LM_DECISIONS_SUBDIR);
	for (size_t i = 0; i < QUEUED; i++) {
		Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
		snprintf(ids[i], sizeof(ids[i]), "queued-%zu", i);
		snprintf(subjects[i], sizeof(subjects[i]), "cand-%zu", i % 13);
		rec.decision_id = ids[i];
		rec.method = "MatchJobs";
		rec.subject_id = subjects[i];
		m[i].len = lunamatch__v1__decision__get_packed_size(&rec);
		assert_non_null(bufs[i] = malloc(m[i].len));
		lunamatch__v1__decision__pack(&rec, bufs[i]);
		m[i].data = bufs[i];
	}
	assert_int_equal(lm_dqueue_open(qdir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_append(q, m, QUEUED, NULL), LM_OK);
	lm_dqueue_close(q);

	lm_decisions_opts o = {.brokers = brokers,
	    .topic = topic,
	    .data_dir = dir,
	    .message_timeout_ms = 10000};
	lm_decisions *d = NULL;
	assert_int_equal(rd_kafka_mock_topic_create(mock, topic, PARTITIONS, 1), 0);
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	for (size_t i = QUEUED; i < ALL; i++) {
		snprintf(subject, sizeof(subject), "cand-%zu", i % 13);
		assert_int_equal(log_one(d, subject, "req", "", ids[i]), LM_OK);
	}
	assert_int_equal(wait_pending(d, 0), 0);
	lm_decisions_free(d);

	/* The first copy of each decision (at-least-once: a later one may
	 * follow) comes after every earlier decision of its partition. */
	read_topic(topic, ALL, &r);
	for (int p = 0; p < PARTITIONS; p++)
		next[p] = 0;
	for (size_t k = 0; k < r.n; k++) {
		size_t i = index_of(ids, ALL, r.v[k]->decision_id);
		int32_t p = partition_of(r.keys[k]);
		assert_true(i < ALL);
		assert_string_equal(r.keys[k], r.v[k]->subject_id);
		if (sent[i])
			continue;
		assert_true(i >= next[p]);
		next[p] = i + 1;
		sent[i] = true;
		seen++;
	}
	assert_int_equal(seen, ALL);
	readback_free(&r);
	for (size_t i = 0; i < QUEUED; i++)
		free(bufs[i]);
	free(ids);
	free(qdir);
	free(dir);
}

/* The value of counter name in m's rendering. */
static uint64_t
metric_value(lm_metrics *m, const char *name)
{
	char *out = NULL, *at;
	size_t len = 0;
	uint64_t v;
	assert_int_equal(lm_metrics_render(m, &out, &len), LM_OK);
	at = strstr(out, name);
	while (at != NULL && (at > out && at[-1] != '\n'))
		at = strstr(at + 1, name);
	assert_non_null(at);
	v = strtoull(at + strlen(name), NULL, 10);
	free(out);
	return v;
}

/*
 * The decisions whose send timed out (their partition had no leader for
 * longer than message.timeout.ms) are counted, produced again after a
 * back-off while the others go on (also while the queue cannot be read),
 * and delivered once the leader is back.
 */
static void
test_retry_after_timeout(void **state)
{
	const char *topic = TOPIC ".4";
	const char *subjects[] = {"cand-0-0", "cand-0-1", "cand-0-2", "cand-0-3",
	    "cand-0-4", "cand-0-5", "cand-0-6", "cand-0-7"};
	enum { N = sizeof(subjects) / sizeof(subjects[0]) };
	char *dir = data_dir();
	char ids[N][LM_DECISIONS_ID_LEN + 1];
	uint64_t stuck = 0;
	lm_metrics *m = NULL;
	struct readback r;
	(void) state;

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_decisions *d = open_leaderless(topic, dir, m, 1000);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(log_one(d, subjects[i], "req", "", ids[i]), LM_OK);
		stuck += partition_of(subjects[i]) == 0;
	}
	assert_true(stuck > 0 && stuck < N);
	assert_int_equal(wait_pending_for(d, stuck, 5000), stuck);
	/* Each timed out and was produced again (so timed out again): more
	 * failures than decisions, and all of them still queued. */
	int64_t end = lm_clock_ms() + READ_MS;
	while (metric_value(m, "lunamatch_decisions_send_failures_total") <= stuck &&
	       lm_clock_ms() < end)
		lmt_sleep_ms(50);
	assert_true(metric_value(m, "lunamatch_decisions_send_failures_total") > stuck);
	assert_int_equal(lm_decisions_pending(d), stuck);
	/* A queue that cannot be read when a retry is due is tried again
	 * after the back-off, not in a loop (the sender used to spin). */
	lm_decisions_fail_reads(d, 1000);
	lmt_sleep_ms(2500);
	assert_true(lm_decisions_fail_reads(d, 0) >= 990);
	assert_int_equal(lm_decisions_pending(d), stuck);

	assert_int_equal(
	    rd_kafka_mock_partition_set_leader(mock, topic, 0, MOCK_BROKER), 0);
	assert_int_equal(wait_pending(d, 0), 0);
	lm_decisions_free(d);
	read_topic(topic, N + 1, &r);
	for (size_t i = 0; i < N; i++)
		assert_true(count_id(&r, ids[i]) >= 1);
	readback_free(&r);
	lm_metrics_free(m);
	free(dir);
}

/* Whether the rendered metrics of m contain text. */
static bool
metrics_has(lm_metrics *m, const char *text)
{
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(lm_metrics_render(m, &out, &len), LM_OK);
	bool found = strstr(out, text) != NULL;
	free(out);
	return found;
}

/* The done callback of lm_decisions_log_async in the tests. */
struct dones {
	pthread_mutex_t mu;
	int calls, ok, last; /* last: the rc of the latest call */
};

static void
count_done(void *arg, int rc)
{
	struct dones *c = arg;
	pthread_mutex_lock(&c->mu);
	c->calls++;
	c->ok += rc == LM_OK;
	c->last = rc;
	pthread_mutex_unlock(&c->mu);
}

static int
dones_calls(struct dones *c)
{
	pthread_mutex_lock(&c->mu);
	int n = c->calls;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* A decision over the size limit is refused; a full queue (broker down)
 * refuses answers with LM_EMAPFULL and turns the log unhealthy, and once
 * the broker is back and the queue drains, logging works again. Each
 * refusal is counted. */
static void
test_full_queue(void **state)
{
	char *dir = data_dir();
	char *big = malloc(LM_DECISIONS_BYTES_MAX + 1);
	lm_metrics *m = NULL;
	int rc = LM_OK, n = 0;
	(void) state;

	assert_non_null(big);
	memset(big, 'x', LM_DECISIONS_BYTES_MAX);
	big[LM_DECISIONS_BYTES_MAX] = '\0';
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_decisions *d = open_log(dir, m, LM_DQUEUE_MAP_SIZE);
	/* Every refusal counts, also one before start or of a decision too
	 * large (they used to count only when the writer's queue was full). */
	assert_int_equal(log_one(d, "c", "r", "", NULL), LM_ECLOSED);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	assert_int_equal(log_one(d, "c", big, "", NULL), LM_E2BIG);
	assert_true(metrics_has(m, "lunamatch_decisions_log_errors_total 2\n"));
	big[LM_DECISIONS_BYTES_MAX / 2] = '\0'; /* 128 KiB request ids */

	assert_int_equal(rd_kafka_mock_broker_set_down(mock, MOCK_BROKER), 0);
	while (n < 1000 && (rc = log_one(d, "cand-full", big, "", NULL)) == LM_OK)
		n++;
	assert_int_equal(rc, LM_EMAPFULL);
	assert_true(n > 10);
	assert_false(lm_decisions_healthy(d));
	assert_int_equal(lm_decisions_pending(d), (uint64_t) n);
	/* Handed over without waiting, a decision whose write fails reports
	 * the queue's error once. */
	struct dones c = {.mu = PTHREAD_MUTEX_INITIALIZER};
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	rec.method = "MatchJobs";
	rec.subject_id = "cand-full";
	rec.request_id = big;
	assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_OK);
	int64_t end = lm_clock_ms() + READ_MS;
	while (dones_calls(&c) < 1 && lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_int_equal(dones_calls(&c), 1);
	assert_int_equal(c.ok, 0);
	assert_int_equal(c.last, LM_EMAPFULL);
	assert_int_equal(lm_decisions_pending(d), (uint64_t) n);
	assert_true(metrics_has(m, "lunamatch_decisions_log_errors_total 4\n"));

	assert_int_equal(rd_kafka_mock_broker_set_up(mock, MOCK_BROKER), 0);
	assert_int_equal(wait_pending(d, 0), 0);
	/* Healthy again once the queue drained, before any new answer: a
	 * replica out of service gets none to log. */
	assert_true(lm_decisions_healthy(d));
	assert_int_equal(log_one(d, "cand-after", "req", "", NULL), LM_OK);
	assert_true(lm_decisions_healthy(d));
	lm_decisions_free(d);
	lm_metrics_free(m);
	free(big);
	free(dir);
}

/*
 * lunamatch_decisions_pending follows the log that is open: a log opened
 * after another one on the same registry (the first one closed) reports
 * its own queue, and its metrics are read after it is closed. The gauge
 * used to read the first log's queue, closed and freed with it (and took
 * the queue's lock, held across each synced write, on the thread that
 * answers the health checks).
 */
static void
test_pending_gauge(void **state)
{
	const char *topic = TOPIC ".5";
	char *dir1 = data_dir(), *dir2 = data_dir();
	lm_metrics *m = NULL;
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = topic,
	    .data_dir = dir1,
	    .message_timeout_ms = 3000};
	lm_decisions *d = NULL;
	(void) state;

	assert_int_equal(rd_kafka_mock_topic_create(mock, topic, PARTITIONS, 1), 0);
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o.metrics = m;
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	assert_int_equal(log_one(d, "cand-gauge", "req", "", NULL), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	lm_decisions_free(d);

	o.data_dir = dir2;
	assert_int_equal(rd_kafka_mock_broker_set_down(mock, MOCK_BROKER), 0);
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(log_one(d, "cand-gauge", "req", "", NULL), LM_OK);
	assert_true(metrics_has(m, "lunamatch_decisions_pending 3\n"));
	lm_decisions_free(d);
	assert_true(metrics_has(m, "lunamatch_decisions_pending 3\n"));

	/* Opened again: the decisions left in the queue are pending, and none
	 * once they are sent. */
	assert_int_equal(rd_kafka_mock_broker_set_up(mock, MOCK_BROKER), 0);
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_true(metrics_has(m, "lunamatch_decisions_pending 3\n"));
	assert_int_equal(lm_decisions_start(d), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	int64_t end = lm_clock_ms() + READ_MS;
	while (!metrics_has(m, "lunamatch_decisions_pending 0\n") && lm_clock_ms() < end)
		lmt_sleep_ms(20);
	assert_true(metrics_has(m, "lunamatch_decisions_pending 0\n"));
	lm_decisions_free(d);
	lm_metrics_free(m);
	free(dir2);
	free(dir1);
}

/* A done callback that holds the writer until the test opens the gate
 * (at most 10 s): a write that takes long. */
struct gate {
	atomic_bool entered, open;
};

static void
gated_done(void *arg, int rc)
{
	struct gate *g = arg;
	(void) rc;
	atomic_store(&g->entered, true);
	for (int i = 0; i < 2000 && !atomic_load(&g->open); i++)
		lmt_sleep_ms(5);
}

static void
gate_wait_entered(struct gate *g)
{
	int64_t end = lm_clock_ms() + READ_MS;
	while (!atomic_load(&g->entered) && lm_clock_ms() < end)
		lmt_sleep_ms(2);
	assert_true(atomic_load(&g->entered));
}

/*
 * At most LM_DECISIONS_QUEUE_MAX decisions are held in memory, counting
 * the batch the writer is writing: while a full batch is being written,
 * the next decision is refused (LM_EBUSY). The count used to restart at
 * zero when the writer took its batch, so twice as many could be held.
 */
static void
test_queue_bound(void **state)
{
	char *dir = data_dir();
	lm_decisions *d = open_log(dir, NULL, 0);
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	struct dones c = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct gate g1, g2;
	(void) state;

	atomic_init(&g1.entered, false);
	atomic_init(&g1.open, false);
	atomic_init(&g2.entered, false);
	atomic_init(&g2.open, false);
	rec.method = "MatchJobs";
	rec.subject_id = "cand-bound";
	assert_int_equal(lm_decisions_start(d), LM_OK);
	/* The writer is busy with a batch of one, which counts, while the
	 * rest waits. */
	assert_int_equal(lm_decisions_log_async(d, &rec, gated_done, &g1), LM_OK);
	gate_wait_entered(&g1);
	assert_int_equal(lm_decisions_log_async(d, &rec, gated_done, &g2), LM_OK);
	for (int i = 2; i < LM_DECISIONS_QUEUE_MAX; i++)
		assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_OK);
	assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_EBUSY);
	/* That batch is done and the next one (all the rest) is written, its
	 * first callback holding the writer: room for one more only. */
	atomic_store(&g1.open, true);
	gate_wait_entered(&g2);
	assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_OK);
	assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_EBUSY);
	atomic_store(&g2.open, true);
	int64_t end = lm_clock_ms() + READ_MS;
	while (dones_calls(&c) < LM_DECISIONS_QUEUE_MAX - 1 && lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_int_equal(dones_calls(&c), LM_DECISIONS_QUEUE_MAX - 1);
	assert_int_equal(c.ok, LM_DECISIONS_QUEUE_MAX - 1);
	assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_OK);
	lm_decisions_free(d);
	assert_int_equal(c.ok, LM_DECISIONS_QUEUE_MAX);
	free(dir);
}

/* With sync_ms > 0, and handed over without waiting: each decision's done
 * is called once, with LM_OK, and every decision reaches the topic; one
 * handed in just before the log stops is written first; after the stop,
 * nothing is taken and done is not called. */
static void
test_async_and_interval(void **state)
{
	char *dir = data_dir();
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = TOPIC,
	    .data_dir = dir,
	    .message_timeout_ms = 3000,
	    .sync_ms = 20};
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	struct dones c = {.mu = PTHREAD_MUTEX_INITIALIZER};
	lm_decisions *d = NULL;
	(void) state;

	rec.method = "MatchJobs";
	rec.subject_id = "cand-async";
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_ECLOSED);
	assert_int_equal(lm_decisions_log_async(d, &rec, NULL, &c), LM_EINVAL);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	for (int i = 0; i < 10; i++)
		assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_OK);
	int64_t end = lm_clock_ms() + READ_MS;
	while (dones_calls(&c) < 10 && lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_int_equal(c.calls, 10);
	assert_int_equal(c.ok, 10);
	assert_int_equal(wait_pending(d, 0), 0);
	assert_true(lm_decisions_healthy(d));
	assert_int_equal(lm_decisions_log_async(d, &rec, count_done, &c), LM_OK);
	lm_decisions_free(d);
	assert_int_equal(c.calls, 11);
	assert_int_equal(c.ok, 11);
	free(dir);
}

/* With sync_ms > 0, a deferred sync that fails is counted and leaves the
 * log unhealthy, also through the writes after it (they are not on disk
 * either), and is tried again until one works, which makes the log
 * healthy again. */
static void
test_sync_failure_retried(void **state)
{
	char *dir = data_dir();
	lm_metrics *m = NULL;
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = TOPIC,
	    .data_dir = dir,
	    .message_timeout_ms = 3000,
	    .sync_ms = 20};
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	lm_decisions *d = NULL;
	int64_t end;
	(void) state;

	rec.method = "MatchJobs";
	rec.subject_id = "cand-sync";
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o.metrics = m;
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	lm_decisions_fail_syncs(d, 1);
	assert_int_equal(lm_decisions_log(d, &rec, NULL), LM_OK);
	end = lm_clock_ms() + READ_MS;
	while (metric_value(m, "lunamatch_decisions_sync_failures_total") == 0 &&
	       lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_int_equal(metric_value(m, "lunamatch_decisions_sync_failures_total"), 1);
	assert_false(lm_decisions_healthy(d));
	/* A write after the failure is no sync: still not healthy. */
	assert_int_equal(lm_decisions_log(d, &rec, NULL), LM_OK);
	assert_false(lm_decisions_healthy(d));
	end = lm_clock_ms() + READ_MS;
	while (!lm_decisions_healthy(d) && lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_true(lm_decisions_healthy(d));
	assert_int_equal(metric_value(m, "lunamatch_decisions_sync_failures_total"), 1);
	assert_int_equal(wait_pending(d, 0), 0);
	lm_decisions_free(d);
	lm_metrics_free(m);
	free(dir);
}

/*
 * A sync that works after a failed one makes the log healthy only when no
 * write failed since: here the queue fills up (the broker down) after the
 * sync failed, and the sync's retry must not make the log ready while every
 * write is still refused.
 */
static void
test_sync_success_after_failed_write(void **state)
{
	char *dir = data_dir();
	char *big = malloc(LM_DECISIONS_BYTES_MAX / 2 + 1);
	lm_metrics *m = NULL;
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = TOPIC,
	    .data_dir = dir,
	    .replica = "r",
	    .max_queue_bytes = LM_DQUEUE_MAP_SIZE,
	    .message_timeout_ms = 3000,
	    .sync_ms = 500};
	lm_decisions *d = NULL;
	int rc = LM_OK, n = 0;
	int64_t end;
	(void) state;

	assert_non_null(big);
	memset(big, 'x', LM_DECISIONS_BYTES_MAX / 2);
	big[LM_DECISIONS_BYTES_MAX / 2] = '\0';
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o.metrics = m;
	assert_int_equal(rd_kafka_mock_broker_set_down(mock, MOCK_BROKER), 0);
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	lm_decisions_fail_syncs(d, 1);
	assert_int_equal(log_one(d, "cand-x", "req", "", NULL), LM_OK);
	end = lm_clock_ms() + READ_MS;
	while (metric_value(m, "lunamatch_decisions_sync_failures_total") == 0 &&
	       lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_int_equal(metric_value(m, "lunamatch_decisions_sync_failures_total"), 1);
	while (n < 1000 && (rc = log_one(d, "cand-full", big, "", NULL)) == LM_OK)
		n++;
	assert_int_equal(rc, LM_EMAPFULL);
	assert_false(lm_decisions_healthy(d));
	/* The sync's retry comes 500 ms after the failure; readiness's own
	 * retry only after LM_DECISIONS_READY_RETRY_MS (30 s). */
	lmt_sleep_ms(1500);
	assert_false(lm_decisions_healthy(d));
	assert_int_equal(log_one(d, "cand-full", big, "", NULL), LM_EMAPFULL);
	assert_int_equal(rd_kafka_mock_broker_set_up(mock, MOCK_BROKER), 0);
	lm_decisions_free(d);
	lm_metrics_free(m);
	free(big);
	free(dir);
}

/*
 * While deferred syncs keep failing, the log stays unhealthy although the
 * broker takes the decisions and the sender removes them from the queue:
 * a removal makes room in the queue, it does not put the writes that
 * follow on disk.
 */
static void
test_sync_failure_outlasts_removals(void **state)
{
	char *dir = data_dir();
	lm_metrics *m = NULL;
	lm_decisions_opts o = {.brokers = brokers,
	    .topic = TOPIC,
	    .data_dir = dir,
	    .message_timeout_ms = 3000,
	    .sync_ms = 20};
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	lm_decisions *d = NULL;
	int64_t end;
	(void) state;

	rec.method = "MatchJobs";
	rec.subject_id = "cand-sync-removed";
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o.metrics = m;
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	lm_decisions_fail_syncs(d, 1000000);
	assert_int_equal(lm_decisions_log(d, &rec, NULL), LM_OK);
	end = lm_clock_ms() + READ_MS;
	while (metric_value(m, "lunamatch_decisions_sync_failures_total") == 0 &&
	       lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_true(metric_value(m, "lunamatch_decisions_sync_failures_total") >= 1);
	assert_false(lm_decisions_healthy(d));
	/* Another decision, delivered and removed while the syncs go on
	 * failing. */
	assert_int_equal(wait_pending(d, 0), 0);
	assert_int_equal(lm_decisions_log(d, &rec, NULL), LM_OK);
	assert_int_equal(wait_pending(d, 0), 0);
	end = lm_clock_ms() + 1500;
	while (lm_clock_ms() < end) {
		assert_false(lm_decisions_healthy(d));
		lmt_sleep_ms(5);
	}
	/* A sync that works makes it healthy. */
	lm_decisions_fail_syncs(d, 0);
	end = lm_clock_ms() + READ_MS;
	while (!lm_decisions_healthy(d) && lm_clock_ms() < end)
		lmt_sleep_ms(5);
	assert_true(lm_decisions_healthy(d));
	lm_decisions_free(d);
	lm_metrics_free(m);
	free(dir);
}

/* Waits at most READ_MS for the rendering of m to contain text. */
static bool
wait_metrics_has(lm_metrics *m, const char *text)
{
	int64_t end = lm_clock_ms() + READ_MS;
	while (!metrics_has(m, text) && lm_clock_ms() < end)
		lmt_sleep_ms(20);
	return metrics_has(m, text);
}

/*
 * Queued entries that do not decode as a decision with an id (bytes a
 * damaged disk or other software left; empty bytes decode to a decision
 * without one) are not sent: each is logged once (decisions.corrupt),
 * counted in lunamatch_decisions_corrupt_total, not in the sent ones, and
 * removed from the queue; the decision logged after them is sent. (They
 * used to be produced with an empty key, undecodable on the topic.)
 */
static void
test_damaged_entry(void **state)
{
	const char *topic = TOPIC ".7";
	char *dir = data_dir(), *qdir = malloc(strlen(dir) + 32);
	char id[LM_DECISIONS_ID_LEN + 1], *log;
	lm_dqueue_msg bad[] = {{"\xff\xff\xff", 3}, {"", 0}};
	lm_dqueue *q = NULL;
	lm_metrics *m = NULL;
	lmt_capture cap;
	struct readback r;
	(void) state;

	assert_non_null(qdir);
	sprintf(qdir, "%s/%s", dir, LM_DECISIONS_SUBDIR);
	assert_int_equal(lm_dqueue_open(qdir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_append(q, bad, 2, NULL), LM_OK);
	lm_dqueue_close(q);

	lm_decisions_opts o = {.brokers = brokers,
	    .topic = topic,
	    .data_dir = dir,
	    .message_timeout_ms = 3000};
	assert_int_equal(rd_kafka_mock_topic_create(mock, topic, PARTITIONS, 1), 0);
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o.metrics = m;
	lm_decisions *d = NULL;
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_pending(d), 2);
	lmt_stderr_begin(&cap);
	assert_int_equal(lm_decisions_start(d), LM_OK);
	assert_int_equal(log_one(d, "cand-damaged", "req", "", id), LM_OK);
	uint64_t left = wait_pending(d, 0);
	bool counted = wait_metrics_has(m, "lunamatch_decisions_pending 0\n");
	lm_decisions_free(d);
	log = lmt_stderr_end(&cap);
	assert_int_equal(left, 0);
	assert_true(counted);
	assert_int_equal(lmt_count(log, "\"decisions.corrupt\""), 2);
	assert_non_null(strstr(log, "(3 bytes)"));
	assert_non_null(strstr(log, "(0 bytes)"));
	free(log);
	assert_true(metrics_has(m, "lunamatch_decisions_corrupt_total 2\n"));
	assert_true(metrics_has(m, "lunamatch_decisions_sent_total 1\n"));
	assert_true(metrics_has(m, "# HELP lunamatch_decisions_corrupt_total "));

	/* Only the real decision reached the topic (read_topic fails on one
	 * that does not decode). */
	read_topic(topic, 1, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0]->decision_id, id);
	assert_string_equal(r.keys[0], "cand-damaged");
	readback_free(&r);
	lm_metrics_free(m);
	free(qdir);
	free(dir);
}

/*
 * A key of the queue that is no sequence number (9 bytes, between seq 2
 * and 3: disk damage or another program's write) is passed over, logged
 * (decisions.corrupt, with its size), counted in
 * lunamatch_decisions_corrupt_total and removed: nothing stays pending,
 * and no read of the queue fails. (The sender's pass used to fail on it,
 * "record store failure", and it stayed pending for good.)
 */
static void
test_damaged_key(void **state)
{
	const char *topic = TOPIC ".8";
	char *dir = data_dir(), *qdir = malloc(strlen(dir) + 32), *log;
	const unsigned char key[9] = {0, 0, 0, 0, 0, 0, 0, 2, 'x'};
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	uint8_t buf[64];
	lm_dqueue_msg msgs[3];
	lm_dqueue *q = NULL;
	lm_metrics *m = NULL;
	lmt_capture cap;
	(void) state;

	/* Seqs 1 to 3 queued, then the key between 2 and 3. */
	assert_non_null(qdir);
	sprintf(qdir, "%s/%s", dir, LM_DECISIONS_SUBDIR);
	rec.decision_id = "queued-key";
	rec.method = "MatchJobs";
	rec.subject_id = "cand-key";
	assert_true(lunamatch__v1__decision__get_packed_size(&rec) <= sizeof(buf));
	for (int i = 0; i < 3; i++)
		msgs[i] = (lm_dqueue_msg){buf, lunamatch__v1__decision__pack(&rec, buf)};
	assert_int_equal(lm_dqueue_open(qdir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_append(q, msgs, 3, NULL), LM_OK);
	lm_dqueue_close(q);
	lmt_store_poke(qdir, "messages", key, sizeof(key), "x", 1);

	lm_decisions_opts o = {.brokers = brokers,
	    .topic = topic,
	    .data_dir = dir,
	    .message_timeout_ms = 3000};
	lm_decisions *d = NULL;
	assert_int_equal(rd_kafka_mock_topic_create(mock, topic, PARTITIONS, 1), 0);
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	o.metrics = m;
	assert_int_equal(lm_decisions_new(&o, &d), LM_OK);
	assert_int_equal(lm_decisions_pending(d), 4);
	lmt_stderr_begin(&cap);
	int started = lm_decisions_start(d), logged = 0;
	for (int i = 0; i < 5; i++)
		logged += log_one(d, "cand-key", "req", "", NULL) == LM_OK;
	uint64_t left = wait_pending(d, 0);
	bool counted = wait_metrics_has(m, "lunamatch_decisions_pending 0\n");
	lm_decisions_free(d);
	log = lmt_stderr_end(&cap);
	assert_int_equal(started, LM_OK);
	assert_int_equal(logged, 5);
	assert_int_equal(left, 0);
	assert_true(counted);
	assert_int_equal(lmt_count(log, "\"decisions.corrupt\""), 1);
	assert_non_null(strstr(log, "key of 9 bytes"));
	assert_null(strstr(log, "decisions.read"));
	assert_null(strstr(log, "record store"));
	free(log);
	assert_true(metrics_has(m, "lunamatch_decisions_corrupt_total 1\n"));
	assert_true(metrics_has(m, "lunamatch_decisions_sent_total 8\n"));
	lm_metrics_free(m);
	free(qdir);
	free(dir);
}

/* Missing or invalid options. */
static void
test_options(void **state)
{
	lm_decisions_opts o = {.brokers = "127.0.0.1:9", .topic = "", .data_dir = tmp};
	lm_decisions *d = (lm_decisions *) 1;
	(void) state;

	assert_int_equal(lm_decisions_new(NULL, &d), LM_EINVAL);
	assert_null(d);
	assert_int_equal(lm_decisions_new(&o, &d), LM_EINVAL);
	o.topic = "t";
	o.data_dir = NULL;
	assert_int_equal(lm_decisions_new(&o, &d), LM_EINVAL);
	assert_int_equal(lm_decisions_new(&o, NULL), LM_EINVAL);
	o.data_dir = tmp;
	o.sync_ms = LM_DECISIONS_SYNC_MS_MAX + 1;
	assert_int_equal(lm_decisions_new(&o, &d), LM_EINVAL);
	assert_int_equal(lm_decisions_log(NULL, NULL, NULL), LM_EINVAL);
	assert_false(lm_decisions_healthy(NULL));
	assert_int_equal(lm_decisions_pending(NULL), 0);
}

/*
 * A child process logs n decisions with sync_ms, half of them without
 * waiting (their done seen), and dies without closing the log: a crash of
 * the process. Every decision it saw logged must be in the queue. No
 * broker listens at the child's address, so nothing leaves the queue.
 */
static void
crash_after_logging(unsigned sync_ms, int n)
{
	char *dir = data_dir(), *qdir = malloc(strlen(dir) + 32);
	lm_dqueue *q = NULL;
	int status;
	pid_t pid;

	assert_non_null(qdir);
	sprintf(qdir, "%s/%s", dir, LM_DECISIONS_SUBDIR);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		lm_decisions_opts o = {.brokers = "127.0.0.1:1",
		    .topic = TOPIC,
		    .data_dir = dir,
		    .message_timeout_ms = 60000,
		    .sync_ms = sync_ms};
		Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
		struct dones c = {.mu = PTHREAD_MUTEX_INITIALIZER};
		lm_decisions *d = NULL;
		int ok =
		    lm_decisions_new(&o, &d) == LM_OK && lm_decisions_start(d) == LM_OK;
		rec.method = "MatchJobs";
		rec.subject_id = "cand-crash";
		for (int i = 0; ok && i < n / 2; i++)
			ok = lm_decisions_log(d, &rec, NULL) == LM_OK;
		for (int i = n / 2; ok && i < n; i++)
			ok = lm_decisions_log_async(d, &rec, count_done, &c) == LM_OK;
		for (int i = 0; ok && dones_calls(&c) < n - n / 2 && i < 10000; i++)
			lmt_sleep_ms(1);
		_exit(ok && c.ok == n - n / 2 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(
	    lm_dqueue_open(qdir, LM_DECISIONS_MAP_MAX_DEFAULT, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_count(q), (uint64_t) n);
	lm_dqueue_close(q);
	free(qdir);
	free(dir);
}

/* Synced transactions (the default): logged means on disk, and so also
 * in the file after a crash of the process. */
static void
test_crash_synced(void **state)
{
	(void) state;
	crash_after_logging(0, 10);
}

/* Written, synced later: logged means in the queue's file, which a crash
 * of the process keeps although no sync came (the interval is longer than
 * the child lives). */
static void
test_crash_interval(void **state)
{
	(void) state;
	crash_after_logging(LM_DECISIONS_SYNC_MS_MAX, 10);
}

int
main(void)
{
	/* Before any librdkafka thread of this process: the children fork
	 * from a single-threaded parent. */
	const struct CMUnitTest crash_tests[] = {
	    cmocka_unit_test(test_crash_synced),
	    cmocka_unit_test(test_crash_interval),
	};
	tmp = lmt_tmpdir("decisions-crash");
	int failed = cmocka_run_group_tests_name("crash", crash_tests, NULL, NULL);
	lmt_rmtree(tmp);
	free(tmp);
	if (failed != 0)
		return failed;

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_outage_and_restart),
	    cmocka_unit_test(test_partition_without_leader),
	    cmocka_unit_test(test_pass_in_slices),
	    cmocka_unit_test(test_retry_after_timeout),
	    cmocka_unit_test(test_fatal_producer),
	    cmocka_unit_test(test_removal_failure),
	    cmocka_unit_test(test_stop_in_flight),
	    cmocka_unit_test(test_full_queue),
	    cmocka_unit_test(test_queue_bound),
	    cmocka_unit_test(test_async_and_interval),
	    cmocka_unit_test(test_sync_failure_retried),
	    cmocka_unit_test(test_sync_failure_outlasts_removals),
	    cmocka_unit_test(test_sync_success_after_failed_write),
	    cmocka_unit_test(test_pending_gauge),
	    cmocka_unit_test(test_damaged_entry),
	    cmocka_unit_test(test_damaged_key),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
