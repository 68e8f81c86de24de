/*
 * test_owner.c - partition-owned event derivation over librdkafka's mock
 * cluster, a real record store (LMDB in a temporary directory), the real
 * follower and index, and a real outbox.
 *
 * Messages are produced to the postings and profiles topics as a producer
 * would; the test plays ingest by writing the same records into the store
 * (and committing offsets in the replica's ingest group) when it chooses,
 * so that it controls what the index holds. It checks that the owner
 *  - waits while the index does not hold a message's record, derives once
 *    it does, and only then commits the offsets in the events group;
 *  - derives nothing for a message ingest's rule rejects, and commits it;
 *  - gets past a tombstone whose record was created again later, through the
 *    ingest group's committed offsets (the index alone cannot tell);
 *  - starts a second owner in the same group from the committed offsets:
 *    nothing derived again;
 *  - keeps retrying, without committing, while outbox writes fail (the
 *    failure injected through the events' fault seam), and catches up once
 *    they succeed again.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "events.h"
#include "follower.h"
#include "index.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "model.h"
#include "outbox.h"
#include "owner.h"
#include "records.h"

#define POSTINGS   "test.postings"
#define PROFILES   "test.profiles"
#define MATCHES    "test.matches"
#define GROUP      "test-events"
#define INGEST     "test-ingest"
#define PARTITIONS 1
#define WAIT_MS    30000 /* group join on the mock cluster, derivation */
#define SEED_JOB   "job-dfs-sr-mgr-ml"
#define LEAD       "cand-ml-lead-chicago"

typedef Lunamatch__V1__JobPosting JobPosting;

static struct {
	char *dir;
	rd_kafka_t *mock_rk;
	rd_kafka_mock_cluster_t *mock;
	const char *brokers;
	rd_kafka_t *producer;
	lm_store *store;
	lmt_records recs;
	lm_model model;
	lm_index *idx;
	lm_follower *follower;
	lm_events *events;
	lm_owner *owner;         /* replaced only while the follower is stopped */
	atomic_int outbox_fault; /* what outbox writes fail with (LM_OK: none) */
} G;

static int
outbox_fault(void *arg)
{
	(void) arg;
	return atomic_load(&G.outbox_fault);
}

static void
on_applied(void *arg, uint64_t seq)
{
	(void) arg;
	(void) seq;
	lm_owner_wake(G.owner);
}

static int
setup(void **state)
{
	rd_kafka_conf_t *conf = NULL;
	char err[256];
	(void) state;

	memset(&G, 0, sizeof(G));
	G.dir = lmt_tmpdir("owner");
	assert_int_equal(
	    lm_kafka_conf(NULL, "test-mock", &conf, err, sizeof(err)), LM_OK);
	G.mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	assert_non_null(G.mock_rk);
	G.mock = rd_kafka_mock_cluster_new(G.mock_rk, 1);
	assert_non_null(G.mock);
	assert_int_equal(rd_kafka_mock_topic_create(G.mock, POSTINGS, PARTITIONS, 1), 0);
	assert_int_equal(rd_kafka_mock_topic_create(G.mock, PROFILES, PARTITIONS, 1), 0);
	assert_int_equal(rd_kafka_mock_topic_create(G.mock, MATCHES, PARTITIONS, 1), 0);
	G.brokers = rd_kafka_mock_cluster_bootstraps(G.mock);
	assert_int_equal(
	    lm_kafka_conf(G.brokers, "test-producer", &conf, err, sizeof(err)), LM_OK);
	G.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	assert_non_null(G.producer);

	assert_int_equal(lm_store_open(G.dir, NULL, &G.store), LM_OK);
	lmt_records_open(&G.recs, 384);
	lm_model_defaults(&G.model);
	assert_int_equal(lm_index_new(&G.model, &G.idx), LM_OK);

	lm_follower_opts fo;
	memset(&fo, 0, sizeof(fo));
	fo.store = G.store;
	fo.index = G.idx;
	fo.poll_ms = 50;
	fo.on_applied = on_applied;
	assert_int_equal(lm_follower_new(&fo, &G.follower), LM_OK);

	lm_events_opts eo;
	memset(&eo, 0, sizeof(eo));
	eo.brokers = G.brokers;
	eo.topic = MATCHES;
	eo.data_dir = G.dir;
	eo.min_score = 0.3;
	eo.top_n = 50;
	eo.flush_timeout_ms = 1000;
	eo.fault = outbox_fault;
	assert_int_equal(lm_events_new(&eo, &G.events), LM_OK);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lm_follower_free(G.follower);
	lm_owner_free(G.owner);
	lm_events_free(G.events);
	lm_index_free(G.idx);
	lm_store_close(G.store);
	lmt_records_close(&G.recs);
	rd_kafka_destroy(G.producer);
	rd_kafka_mock_cluster_destroy(G.mock);
	rd_kafka_destroy(G.mock_rk);
	lmt_rmtree(G.dir);
	free(G.dir);
	return 0;
}

static lm_owner *
new_owner(void)
{
	lm_owner_opts o;
	lm_owner *ow = NULL;

	memset(&o, 0, sizeof(o));
	o.brokers = G.brokers;
	o.topic_postings = POSTINGS;
	o.topic_profiles = PROFILES;
	o.group_id = GROUP;
	o.ingest_group_id = INGEST;
	o.store = G.store;
	o.index = G.idx;
	o.events = G.events;
	o.rctx = &G.recs.ctx;
	assert_int_equal(lm_owner_new(&o, &ow), LM_OK);
	return ow;
}

/* ---- the producer and ingest's part ------------------------------------- */

static void
produce(const char *topic, const char *key, const void *value, size_t len)
{
	assert_int_equal(rd_kafka_producev(G.producer, RD_KAFKA_V_TOPIC(topic),
	                     RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, strlen(key)),
	                     RD_KAFKA_V_VALUE((void *) value, len),
	                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(G.producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* A sample record at version, as the producer sends it (not prepared). */
static ProtobufCMessage *
sample(bool posting, const char *id, uint64_t version)
{
	ProtobufCMessage *m =
	    lmt_sample_get(posting ? LMT_SAMPLE_POSTINGS : LMT_SAMPLE_PROFILES, id);
	if (posting)
		((JobPosting *) m)->version = version;
	else
		((Lunamatch__V1__CandidateProfile *) m)->version = version;
	return m;
}

static void
produce_record(bool posting, const char *id, uint64_t version)
{
	ProtobufCMessage *m = sample(posting, id, version);
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	produce(posting ? POSTINGS : PROFILES, id, buf, len);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Stores the record as ingest would (prepared). */
static void
ingest_put(bool posting, const char *id, uint64_t version)
{
	ProtobufCMessage *m = sample(posting, id, version);
	lm_store_txn *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	lm_reject why;
	char err[512];

	assert_int_equal(
	    lmt_record_prepare(&G.recs.ctx, m, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	assert_int_equal(lm_store_begin(G.store, &t), LM_OK);
	assert_int_equal(lm_store_put(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE, id,
	                     version, buf, len),
	    LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
ingest_delete(bool posting, const char *id)
{
	lm_store_txn *t = NULL;

	assert_int_equal(lm_store_begin(G.store, &t), LM_OK);
	assert_int_equal(
	    lm_store_delete(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE, id, 0),
	    LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/* Commits offset `next` of topic's partition 0 in the ingest group, as
 * ingest does after its store transaction. */
static void
ingest_commit(const char *topic, int64_t next)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_t *c;
	char err[256];

	assert_int_equal(
	    lm_kafka_conf(G.brokers, "test-ingest", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_kafka_set(conf, "group.id", INGEST, err, sizeof(err)), LM_OK);
	c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	assert_non_null(c);
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, 0)->offset = next;
	assert_int_equal(rd_kafka_commit(c, l, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy_flags(c, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* The events group's committed offset of topic's partition 0 (-1: none). */
static int64_t
committed(const char *topic)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_t *c;
	char err[256];
	int64_t off;

	assert_int_equal(
	    lm_kafka_conf(G.brokers, "test-check", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_kafka_set(conf, "group.id", GROUP, err, sizeof(err)), LM_OK);
	c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	assert_non_null(c);
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, 0);
	assert_int_equal(rd_kafka_committed(c, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	off = l->elems[0].offset;
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy_flags(c, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	return off;
}

/* ---- waits ---------------------------------------------------------------- */

static lm_owner_stats
stats(lm_owner *ow)
{
	lm_owner_stats st;
	lm_owner_stats_get(ow, &st);
	return st;
}

static bool
wait_messages(lm_owner *ow, uint64_t n)
{
	for (int64_t end = lm_clock_ms() + WAIT_MS; lm_clock_ms() < end;) {
		if (stats(ow).messages >= n)
			return true;
		lmt_sleep_ms(20);
	}
	return stats(ow).messages >= n;
}

static uint64_t
enqueued(void)
{
	lm_outbox_counts c;
	assert_int_equal(lm_outbox_counts_get(lm_events_outbox(G.events), &c), LM_OK);
	return c.enqueued_total;
}

/* ---- tests ---------------------------------------------------------------- */

static void
test_owner(void **state)
{
	(void) state;
	G.owner = new_owner();
	assert_int_equal(lm_follower_start(G.follower), LM_OK);
	assert_int_equal(lm_owner_start(G.owner), LM_OK);
	assert_int_equal(lm_owner_start(G.owner), LM_EINVAL);

	/* Produced, but not in the store yet: the owner waits. */
	produce_record(true, SEED_JOB, 1);
	produce_record(false, LEAD, 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     stats(G.owner).partitions == 0 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(G.owner).partitions, 2);
	lmt_sleep_ms(1500);
	assert_int_equal(stats(G.owner).messages, 0);
	assert_int_equal(enqueued(), 0);
	assert_true(committed(POSTINGS) < 0);

	/* Ingest stores them: derived (the lead fits the seed job), then
	 * committed. */
	ingest_put(true, SEED_JOB, 1);
	ingest_put(false, LEAD, 1);
	assert_true(wait_messages(G.owner, 2));
	assert_true(enqueued() >= 1);
	uint64_t after_first = enqueued();
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 1);
	assert_int_equal(committed(PROFILES), 1);

	/* A message ingest rejects derives nothing and is committed. */
	produce(POSTINGS, "job-junk", "\xff\xff\xff", 3);
	assert_true(wait_messages(G.owner, 3));
	assert_int_equal(stats(G.owner).rejected, 1);
	assert_int_equal(enqueued(), after_first);

	/* A tombstone, then the record again at version 2: the index holds
	 * v2 when the owner reaches the tombstone, so only the ingest group's
	 * committed offset can tell that ingest is past it. */
	produce(POSTINGS, SEED_JOB, NULL, 0);
	produce_record(true, SEED_JOB, 2);
	ingest_delete(true, SEED_JOB);
	ingest_put(true, SEED_JOB, 2);
	lmt_sleep_ms(1500);
	assert_int_equal(stats(G.owner).messages, 3); /* the tombstone waits */
	ingest_commit(POSTINGS, 4); /* past the tombstone (offset 2) and v2 */
	assert_true(wait_messages(G.owner, 5));
	assert_true(stats(G.owner).probes >= 1);
	assert_false(stats(G.owner).failing);

	/* A second owner in the same group starts from the committed offsets:
	 * it derives nothing again. */
	uint64_t before = enqueued();
	lm_follower_stop(G.follower);
	lm_owner_free(G.owner); /* commits, leaves the group */
	G.owner = new_owner();
	assert_int_equal(lm_follower_start(G.follower), LM_OK);
	assert_int_equal(lm_owner_start(G.owner), LM_OK);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     stats(G.owner).partitions == 0 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(G.owner).partitions, 2);
	lmt_sleep_ms(1000);
	assert_int_equal(stats(G.owner).messages, 0);
	assert_int_equal(enqueued(), before);
	assert_int_equal(committed(POSTINGS), 4);
}

static void
test_outbox_fails(void **state)
{
	(void) state;
	G.owner = new_owner();
	assert_int_equal(lm_follower_start(G.follower), LM_OK);
	assert_int_equal(lm_owner_start(G.owner), LM_OK);
	atomic_store(&G.outbox_fault, LM_ESTORE);
	produce_record(true, SEED_JOB, 1);
	produce_record(false, LEAD, 1);
	ingest_put(true, SEED_JOB, 1);
	ingest_put(false, LEAD, 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     stats(G.owner).failures < 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_true(stats(G.owner).failures >= 2); /* retried */
	assert_true(stats(G.owner).failing);
	assert_true(lm_events_outbox_failing(G.events));
	assert_int_equal(stats(G.owner).messages, 0);
	assert_int_equal(enqueued(), 0);
	assert_true(committed(POSTINGS) < 0);

	atomic_store(&G.outbox_fault, LM_OK);
	assert_true(wait_messages(G.owner, 2));
	assert_false(stats(G.owner).failing);
	assert_false(lm_events_outbox_failing(G.events));
	assert_true(enqueued() >= 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 1);
	assert_int_equal(committed(PROFILES), 1);
}

static void
test_bad_options(void **state)
{
	lm_owner_opts o;
	lm_owner *ow = (void *) 1;
	(void) state;

	memset(&o, 0, sizeof(o));
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	assert_null(ow);
	assert_int_equal(lm_owner_new(NULL, &ow), LM_EINVAL);
	o.brokers = G.brokers;
	o.topic_postings = POSTINGS;
	o.topic_profiles = POSTINGS; /* the same topic twice */
	o.ingest_group_id = INGEST;
	o.store = G.store;
	o.index = G.idx;
	o.events = G.events;
	o.rctx = &G.recs.ctx;
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	o.topic_profiles = PROFILES;
	o.ingest_group_id = NULL;
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	lm_owner_free(NULL);
	lm_owner_wake(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
