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
 *  - reads a message's content-type header as ingest does (the name in any
 *    case, the last of several);
 *  - gets past a tombstone whose record was created again later, through the
 *    ingest group's committed offsets (the index alone cannot tell), and
 *    past a batch of such messages with one question to that group;
 *  - starts a second owner in the same group from the committed offsets:
 *    nothing derived again;
 *  - retries quietly, counting no failure, while the store is ahead of
 *    the index for a record the events show (the store moved by the
 *    index's read seam), and derives once the follower has applied it;
 *  - keeps retrying, without committing, while outbox writes fail (the
 *    failure injected through the events' fault seam; a full disk's
 *    LM_E2BIG among them), and catches up once they succeed again,
 *    skipping nothing; serves the group meanwhile, giving the batch up
 *    when a consumer that joins takes its partition;
 *  - skips, counted and logged, the derivation of a message whose stored
 *    record is damaged (its value rewritten in LMDB behind the store's
 *    back: a bad header, or bytes that do not decode), and derives the
 *    messages after it; a failure of memory at the same read (the index's
 *    fault seam) is retried and skips nothing;
 *  - derives, skipping nothing, the events of a posting whose top N holds a
 *    damaged profile: from the exact top N of the other profiles, as from a
 *    store without it;
 *  - with two replicas (each its own store, index, outbox and ingest group)
 *    owning different partitions, announces every pair of postings and
 *    profiles that arrive on different partitions at the same moment
 *    exactly once across both outboxes, each left to one side;
 *  - joins the events group only once the replica's ingest has stored what
 *    the topics held at the start, by the ingest group's committed offsets
 *    and by the store's own positions (a store restored from an older copy,
 *    whose group's offsets ingest has not set back yet);
 *  - when the group coordinator refuses commits (the refusals injected
 *    through the mock cluster's request errors): never lets a batch whose
 *    claim was refused be overtaken by later messages of its partition,
 *    retries a failed commit past a derived batch until it succeeds
 *    (counting its messages only then), and
 *    retries taking back a claim left without its cut until it succeeds;
 *  - lets a profiles batch that read a claim without its cut go on once the
 *    claim is taken back, leaving the pair to the posting's owner, which
 *    announces it once;
 *  - reads again, before anything after it, a message that ingest's rule
 *    could not be applied to (out of memory, through the owner's failure
 *    point);
 *  - stops collecting, its batch uncommitted, once the events are
 *    interrupted;
 *  - stays out of the events group while the store's positions come from
 *    another topic or another cluster (a second mock cluster) than it
 *    reads, and joins once they come from its own; a store without a
 *    source is accepted;
 *  - wakes every thread waiting for the index with one lm_owner_wake, and
 *    a thread that was busy when it came at its next wait.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "events.h"
#include "follower.h"
#include "kafkatest.h"
#include "index.h"
#include "lmtest.h"
#include "storetest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "model.h"
#include "offsets.h"
#include "outbox.h"
#include "owner.h"
#include "records.h"

#define POSTINGS "test.postings"
#define PROFILES "test.profiles"
#define MATCHES  "test.matches"
#define GROUP    "test-events"
#define INGEST   "test-ingest"
#define REPLICAS 2
#define WAIT_MS  30000 /* group join on the mock cluster, derivation */
/* Members joining a group: every join is a rebalance round on the mock
 * cluster, up to the session timeout less 1 s each (2 s with SESSION_MS,
 * 9 s at the default) when members just left or several join (two
 * replicas, a member per topic each). On a loaded machine (sanitizers, two
 * tests at a time, the default session) a restarted owner took over 30 s
 * to hold both topics again. */
#define JOIN_MS  90000
#define SEED_JOB "job-dfs-sr-mgr-ml"
#define LEAD     "cand-ml-lead-chicago"
/* The Kafka API key of OffsetCommit, for the mock cluster's request errors. */
#define OFFSET_COMMIT 8
/* A refusal of a commit that the client does not retry by itself. */
#define REFUSED RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE
/* A commit whose answer did not come in time: it may have been stored.
 * The client retries it a few times by itself. */
#define TIMED_OUT RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT
/* The owners' group session: the mock cluster holds a rebalance after a
 * member left or joined (a restarted owner, a second replica, a member
 * that joins again) for the session timeout less 1 s, 9 s at the
 * default. */
#define SESSION_MS 3000

typedef Lunamatch__V1__JobPosting JobPosting;

/* One replica of the match service: its store (fed by the test playing
 * its ingest), index, follower, outbox and owner. */
struct replica {
	char *dir;
	char ingest[32]; /* its ingest group */
	lm_store *store;
	lm_index *idx;
	lm_follower *follower;
	lm_events *events;
	lm_owner *owner; /* replaced only while the follower is stopped */
};

static struct {
	rd_kafka_t *mock_rk;
	rd_kafka_mock_cluster_t *mock;
	rd_kafka_mock_cluster_t *mock2; /* another cluster, when a test makes one */
	const char *brokers;
	rd_kafka_t *producer;
	lmt_records recs;
	lm_model model;
	int partitions;
	struct replica r[REPLICAS];
	atomic_int outbox_fault; /* what outbox writes fail with (LM_OK: none) */
	size_t held_bytes_max;   /* the owners' (0: the default) */
} G;

/* The events' top_n of the replicas setup opens (0: 50); outside G, which
 * setup clears. */
static uint32_t event_top_n;

/* The first replica, which the single-replica tests use. */
#define R0 (&G.r[0])

static int
outbox_fault(void *arg)
{
	(void) arg;
	return atomic_load(&G.outbox_fault);
}

static void
on_applied(void *arg, uint64_t seq)
{
	struct replica *r = arg;
	(void) seq;
	lm_owner_wake(r->owner);
}

static void
replica_open(struct replica *r, int no)
{
	r->dir = lmt_tmpdir("owner");
	snprintf(r->ingest, sizeof(r->ingest), "%s-%d", INGEST, no);
	assert_int_equal(lm_store_open(r->dir, NULL, &r->store), LM_OK);
	assert_int_equal(lm_index_new(&G.model, &r->idx), LM_OK);

	lm_follower_opts fo;
	memset(&fo, 0, sizeof(fo));
	fo.store = r->store;
	fo.index = r->idx;
	fo.poll_ms = 50;
	fo.arg = r;
	fo.on_applied = on_applied;
	assert_int_equal(lm_follower_new(&fo, &r->follower), LM_OK);

	lm_events_opts eo;
	memset(&eo, 0, sizeof(eo));
	eo.brokers = G.brokers;
	eo.topic = MATCHES;
	eo.data_dir = r->dir;
	eo.min_score = 0.3;
	eo.top_n = event_top_n != 0 ? event_top_n : 50;
	eo.flush_timeout_ms = 1000;
	eo.fault = outbox_fault;
	assert_int_equal(lm_events_new(&eo, &r->events), LM_OK);
}

static void
replica_close(struct replica *r)
{
	if (r->dir == NULL)
		return;
	/* The owner first, as the service does: it asks the follower whether
	 * the index is loaded (lm_owner_opts.index_loaded). */
	lm_owner_free(r->owner);
	lm_follower_free(r->follower);
	lm_events_free(r->events);
	lm_index_free(r->idx);
	lm_store_close(r->store);
	lmt_rmtree(r->dir);
	free(r->dir);
}

static int
setup_cluster(int partitions, int replicas)
{
	rd_kafka_conf_t *conf = NULL;
	char err[256];

	memset(&G, 0, sizeof(G));
	G.partitions = partitions;
	assert_int_equal(
	    lm_kafka_conf(NULL, "test-mock", &conf, err, sizeof(err)), LM_OK);
	G.mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	assert_non_null(G.mock_rk);
	G.mock = rd_kafka_mock_cluster_new(G.mock_rk, 1);
	assert_non_null(G.mock);
	assert_int_equal(lmt_mock_topic_create(G.mock, POSTINGS, partitions), 0);
	assert_int_equal(lmt_mock_topic_create(G.mock, PROFILES, partitions), 0);
	assert_int_equal(lmt_mock_topic_create(G.mock, MATCHES, partitions), 0);
	G.brokers = rd_kafka_mock_cluster_bootstraps(G.mock);
	assert_int_equal(
	    lm_kafka_conf(G.brokers, "test-producer", &conf, err, sizeof(err)), LM_OK);
	G.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	assert_non_null(G.producer);
	/* The producer learns the topics now: its first message to a topic it
	 * has no metadata for waited about 1 s (librdkafka's topic scan). */
	assert_int_equal(lmt_kafka_wait_topic(G.producer, POSTINGS, WAIT_MS), partitions);
	assert_int_equal(lmt_kafka_wait_topic(G.producer, PROFILES, WAIT_MS), partitions);
	lmt_records_open(&G.recs, 384);
	lm_model_defaults(&G.model);
	for (int i = 0; i < replicas; i++)
		replica_open(&G.r[i], i);
	return 0;
}

static int
setup(void **state)
{
	(void) state;
	return setup_cluster(1, 1);
}

/* As setup, with events of the top 3 pairs of a record. */
static int
setup_top3(void **state)
{
	(void) state;
	event_top_n = 3;
	return setup_cluster(1, 1);
}

static int
setup_two(void **state)
{
	(void) state;
	return setup_cluster(2, REPLICAS);
}

static int
teardown(void **state)
{
	(void) state;
	G.held_bytes_max = 0;
	event_top_n = 0;
	for (int i = 0; i < REPLICAS; i++)
		replica_close(&G.r[i]);
	lmt_records_close(&G.recs);
	rd_kafka_destroy(G.producer);
	if (G.mock2 != NULL)
		rd_kafka_mock_cluster_destroy(G.mock2);
	rd_kafka_mock_cluster_destroy(G.mock);
	rd_kafka_destroy(G.mock_rk);
	return 0;
}

static bool
follower_loaded(void *arg)
{
	const struct replica *r = arg;
	return lm_follower_loaded(r->follower);
}

static lm_owner *
new_owner(struct replica *r)
{
	lm_owner_opts o;
	lm_owner *ow = NULL;

	memset(&o, 0, sizeof(o));
	o.brokers = G.brokers;
	o.topic_postings = POSTINGS;
	o.topic_profiles = PROFILES;
	o.group_id = GROUP;
	o.ingest_group_id = r->ingest;
	o.store = r->store;
	o.index = r->idx;
	o.events = r->events;
	o.rctx = &G.recs.ctx;
	o.held_bytes_max = G.held_bytes_max;
	o.session_ms = SESSION_MS;
	o.index_loaded = follower_loaded;
	o.index_loaded_arg = r;
	assert_int_equal(lm_owner_new(&o, &ow), LM_OK);
	return ow;
}

/* ---- the producer and ingest's part ------------------------------------- */

static void
produce_to(
    const char *topic, int partition, const char *key, const void *value, size_t len)
{
	assert_int_equal(
	    rd_kafka_producev(G.producer, RD_KAFKA_V_TOPIC(topic),
	        RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, strlen(key)),
	        RD_KAFKA_V_VALUE((void *) value, len),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(G.producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void
produce(const char *topic, const char *key, const void *value, size_t len)
{
	produce_to(topic, 0, key, value, len);
}

/* Sample record id at version, as the producer sends it (not prepared);
 * as_id (NULL: id) is the id it is sent under. */
static ProtobufCMessage *
sample_as(bool posting, const char *id, const char *as_id, uint64_t version)
{
	ProtobufCMessage *m =
	    lmt_sample_get(posting ? LMT_SAMPLE_POSTINGS : LMT_SAMPLE_PROFILES, id);
	char **idp = posting ? &((JobPosting *) m)->id
	                     : &((Lunamatch__V1__CandidateProfile *) m)->id;
	if (posting)
		((JobPosting *) m)->version = version;
	else
		((Lunamatch__V1__CandidateProfile *) m)->version = version;
	if (as_id != NULL) {
		free(*idp);
		*idp = strdup(as_id);
		assert_non_null(*idp);
	}
	return m;
}

static ProtobufCMessage *
sample(bool posting, const char *id, uint64_t version)
{
	return sample_as(posting, id, NULL, version);
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

/* Adds sample id, sent as as_id, to t as ingest would (prepared), with
 * the position of its message (pos NULL: none). */
static void
put_record(lm_store_txn *t, bool posting, const char *id, const char *as_id,
    uint64_t version, const lm_store_pos *pos)
{
	ProtobufCMessage *m = sample_as(posting, id, as_id, version);
	uint8_t *buf = NULL;
	size_t len = 0;
	lm_reject why;
	char err[512];

	assert_int_equal(
	    lmt_record_prepare(&G.recs.ctx, m, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	assert_int_equal(lm_store_put_at(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE,
	                     as_id != NULL ? as_id : id, version, buf, len, pos),
	    LM_OK);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Produces the seed posting at version 1 sent as posting as_id. */
static void
produce_posting_as(const char *as_id)
{
	ProtobufCMessage *m = sample_as(true, SEED_JOB, as_id, 1);
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	produce(POSTINGS, as_id, buf, len);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Produces the seed posting at version 1, sent as posting as_id, as JSON
 * with the n headers names[i]: values[i], in that order. */
static void
produce_json_posting_as(
    const char *as_id, size_t n, const char *const *names, const char *const *values)
{
	ProtobufCMessage *m = sample_as(true, SEED_JOB, as_id, 1);
	rd_kafka_headers_t *h = rd_kafka_headers_new(n);
	char *text = NULL;

	assert_int_equal(lm_json_encode(m, 0, &text), LM_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rd_kafka_header_add(h, names[i], -1, values[i], -1),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
	/* The message takes h over. */
	assert_int_equal(
	    rd_kafka_producev(G.producer, RD_KAFKA_V_TOPIC(POSTINGS),
	        RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(as_id, strlen(as_id)),
	        RD_KAFKA_V_VALUE(text, strlen(text)), RD_KAFKA_V_HEADERS(h),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(G.producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	free(text);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Whether r's index holds posting id at version, waiting for its
 * follower at most WAIT_MS. */
static bool
index_holds(struct replica *r, const char *id, uint64_t version)
{
	for (int64_t end = lm_clock_ms() + WAIT_MS; lm_clock_ms() < end;
	     lmt_sleep_ms(20)) {
		Lunamatch__V1__JobPosting *p = NULL;
		bool ok = lm_index_get_posting(r->idx, id, &p) == LM_OK && p != NULL &&
		          p->version == version;
		if (p != NULL)
			protobuf_c_message_free_unpacked(&p->base, NULL);
		if (ok)
			return true;
	}
	return false;
}

/* Stores the record, sent as as_id (NULL: id), as ingest would, without a
 * position. */
static void
ingest_put_as(bool posting, const char *id, const char *as_id, uint64_t version)
{
	lm_store_txn *t = NULL;

	assert_int_equal(lm_store_begin(R0->store, &t), LM_OK);
	put_record(t, posting, id, as_id, version, NULL);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

static void
ingest_put(bool posting, const char *id, uint64_t version)
{
	ingest_put_as(posting, id, NULL, version);
}

static void
ingest_delete(bool posting, const char *id)
{
	lm_store_txn *t = NULL;

	assert_int_equal(lm_store_begin(R0->store, &t), LM_OK);
	assert_int_equal(
	    lm_store_delete(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE, id, 0),
	    LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/* Commits offset `next` of topic's partition in group, with metadata meta
 * when it is not NULL. */
static void
commit_in(
    const char *group, const char *topic, int partition, int64_t next, const char *meta)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_topic_partition_t *tp;
	rd_kafka_t *c;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	char err[256];

	assert_int_equal(
	    lm_kafka_conf(G.brokers, "test-commit", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_kafka_set(conf, "group.id", group, err, sizeof(err)), LM_OK);
	c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	assert_non_null(c);
	l = rd_kafka_topic_partition_list_new(1);
	tp = rd_kafka_topic_partition_list_add(l, topic, partition);
	tp->offset = next;
	if (meta != NULL) {
		tp->metadata = strdup(meta);
		tp->metadata_size = strlen(meta);
	}
	/* A refusal injected for an owner's commits may meet this one: the
	 * mock cluster has one list of request errors for every client. */
	for (int i = 0; i < 10 && (e = rd_kafka_commit(c, l, 0)) == REFUSED; i++)
		;
	assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy_flags(c, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* Commits offset `next` of topic's partition in ingest group group, as
 * ingest does after its store transaction. */
static void
group_commit(const char *group, const char *topic, int partition, int64_t next)
{
	commit_in(group, topic, partition, next, NULL);
}

/* Commits offset `next` of topic's partition in the events group with
 * metadata meta, as an owner writes its claim. */
static void
claim_commit(const char *topic, int partition, int64_t next, const char *meta)
{
	commit_in(GROUP, topic, partition, next, meta);
}

/* The events group's committed offset of topic's partition (-1: none) and
 * the length of the metadata it holds with it. */
static int64_t
events_committed(const char *topic, int partition, size_t *metalen)
{
	return lmt_group_committed(G.brokers, GROUP, topic, partition, metalen);
}

/* The length of the metadata the events group holds with its committed
 * offset of topic's partition. */
static size_t
claim_len(const char *topic, int partition)
{
	size_t len = 0;
	(void) events_committed(topic, partition, &len);
	return len;
}

static void
ingest_commit(const char *topic, int64_t next)
{
	group_commit(R0->ingest, topic, 0, next);
}

/* The events group's committed offset of topic's partition 0 (-1: none). */
static int64_t
committed(const char *topic)
{
	return events_committed(topic, 0, NULL);
}

/* The seed posting and the lead, at version 1: produced, then stored and
 * passed by ingest. */
static void
seed_pair(void)
{
	produce_record(true, SEED_JOB, 1);
	produce_record(false, LEAD, 1);
	ingest_put(true, SEED_JOB, 1);
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	ingest_commit(POSTINGS, 1);
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
enqueued_in(const struct replica *r)
{
	lm_outbox_counts c;
	assert_int_equal(lm_outbox_counts_get(lm_events_outbox(r->events), &c), LM_OK);
	return c.enqueued_total;
}

static uint64_t
enqueued(void)
{
	return enqueued_in(R0);
}

/* ---- tests ---------------------------------------------------------------- */

/* Starts R0's follower and owner and waits until the owner has both
 * topics' partitions. */
static void
start_r0(void)
{
	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 2);
}

static void
test_owner(void **state)
{
	(void) state;
	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_EINVAL);

	/* The topics are empty: the owner joins at once. (Had the records
	 * below reached them first, it would stay out until ingest stored
	 * them, test_join_after_catchup.) */
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 2);

	/* Produced, but not in the store yet: the owner waits. */
	produce_record(true, SEED_JOB, 1);
	produce_record(false, LEAD, 1);
	lmt_sleep_ms(1500);
	assert_int_equal(stats(R0->owner).messages, 0);
	assert_int_equal(enqueued(), 0);
	assert_true(committed(POSTINGS) < 0);

	/* Ingest stores them: derived (the lead fits the seed job), then
	 * committed. */
	ingest_put(true, SEED_JOB, 1);
	ingest_put(false, LEAD, 1);
	/* The posting's cut holds the profile, the profile's view the posting:
	 * each waits until ingest has passed the other. */
	ingest_commit(PROFILES, 1);
	ingest_commit(POSTINGS, 1);
	assert_true(wait_messages(R0->owner, 2));
	assert_true(enqueued() >= 1);
	uint64_t after_first = enqueued();
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 1);
	assert_int_equal(committed(PROFILES), 1);

	/* A message ingest rejects derives nothing and is committed. */
	produce(POSTINGS, "job-junk", "\xff\xff\xff", 3);
	assert_true(wait_messages(R0->owner, 3));
	assert_int_equal(stats(R0->owner).rejected, 1);
	assert_int_equal(enqueued(), after_first);

	/* A tombstone, then the record again at version 2: the index holds
	 * v2 when the owner reaches the tombstone, so only the ingest group's
	 * committed offset can tell that ingest is past it. The store goes
	 * first and the messages only once the index holds v2: otherwise the
	 * owner could see the tombstone between the follower's removal and
	 * its put, when the index shows the deletion by itself. */
	ingest_delete(true, SEED_JOB);
	ingest_put(true, SEED_JOB, 2);
	assert_true(index_holds(R0, SEED_JOB, 2));
	produce(POSTINGS, SEED_JOB, NULL, 0);
	produce_record(true, SEED_JOB, 2);
	lmt_sleep_ms(1500);
	assert_int_equal(stats(R0->owner).messages, 3); /* the tombstone waits */
	ingest_commit(POSTINGS, 4); /* past the tombstone (offset 2) and v2 */
	assert_true(wait_messages(R0->owner, 5));
	assert_true(stats(R0->owner).probes >= 1);
	assert_false(stats(R0->owner).failing);

	/* A second owner in the same group starts from the committed offsets:
	 * it derives nothing again. */
	uint64_t before = enqueued();
	lm_follower_stop(R0->follower);
	lm_owner_free(R0->owner); /* commits, leaves the group */
	start_r0();
	lmt_sleep_ms(1000);
	assert_int_equal(stats(R0->owner).messages, 0);
	assert_int_equal(enqueued(), before);
	assert_int_equal(committed(POSTINGS), 4);
}

/* A running owner sweeps its replica's pair states: one whose records
 * this replica does not hold (their partitions moved away, and others
 * derived their deletions) is forgotten within a few sweep periods. */
static void
test_owner_sweeps_pairs(void **state)
{
	lm_outbox *ob = lm_events_outbox(R0->events);
	lm_event_candidate c;
	lm_outbox_pair p;
	(void) state;

	memset(&c, 0, sizeof(c));
	c.candidate_id = "cand-moved";
	c.job_id = "job-moved";
	c.state = LM_PAIR_BELOW;
	c.candidate_version = c.job_version = 1;
	assert_int_equal(lm_outbox_enqueue_batch(ob, &c, 1, "m", 1, 0, NULL), LM_OK);
	start_r0();
	for (int64_t end = lm_clock_ms() + 5 * LM_OWNER_SWEEP_MS;
	     lm_outbox_get_pair(ob, "cand-moved", "job-moved", &p) == LM_OK &&
	     lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(
	    lm_outbox_get_pair(ob, "cand-moved", "job-moved", &p), LM_ENOENT);
}

/*
 * The sweep waits for the index: a replica restarts with its store and
 * outbox, and its owner joins (the store holds the topics) while the
 * follower has not loaded the snapshot yet. Swept then, the state of a
 * pair whose records both exist was forgotten (every record read as gone),
 * and the pair's next update announced it again.
 */
static void
test_owner_sweep_waits_for_load(void **state)
{
	lm_outbox *ob = lm_events_outbox(R0->events);
	lm_event_candidate c;
	lm_outbox_pair p;
	(void) state;

	ingest_put(true, SEED_JOB, 1);
	ingest_put(false, LEAD, 1);
	memset(&c, 0, sizeof(c));
	c.candidate_id = LEAD;
	c.job_id = SEED_JOB;
	c.state = LM_PAIR_ABOVE;
	c.score = 0.9;
	c.candidate_version = c.job_version = 1;
	assert_int_equal(lm_outbox_enqueue_batch(ob, &c, 1, "m", 1, 0, NULL), LM_OK);
	R0->owner = new_owner(R0);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 2);
	lmt_sleep_ms(3 * LM_OWNER_SWEEP_MS);
	assert_int_equal(lm_outbox_get_pair(ob, LEAD, SEED_JOB, &p), LM_OK);
	/* Loaded: the records are there, the state stays. */
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_true(index_holds(R0, SEED_JOB, 1));
	lmt_sleep_ms(3 * LM_OWNER_SWEEP_MS);
	assert_int_equal(lm_outbox_get_pair(ob, LEAD, SEED_JOB, &p), LM_OK);
	assert_true(p.above);
}

/* The owner reads a message's content-type header as ingest does
 * (lm_kafka_content_type): a JSON record sent with `Content-Type` is
 * decoded as JSON and derives its events (it was read as protobuf and
 * rejected), and of two such headers the last decides, whatever the case
 * of their names (`content-type: application/json` then `Content-Type:
 * text/plain` is rejected, as ingest rejects it). */
static void
test_content_type_header(void **state)
{
	static const char *const caps[] = {"Content-Type"};
	static const char *const json[] = {"application/json"};
	static const char *const two[] = {"content-type", "Content-Type"};
	static const char *const two_values[] = {"application/json", "text/plain"};
	uint64_t before;

	(void) state;
	start_r0();
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));
	before = enqueued();

	/* Stored by ingest: derived, the lead fits it. */
	produce_json_posting_as("job-json-caps", 1, caps, json);
	ingest_put_as(true, SEED_JOB, "job-json-caps", 1);
	ingest_commit(POSTINGS, 2);
	assert_true(wait_messages(R0->owner, 3));
	assert_int_equal(stats(R0->owner).rejected, 0);
	assert_true(enqueued() > before);

	/* Rejected by ingest, which stores nothing: rejected here too. */
	before = enqueued();
	produce_json_posting_as("job-json-two", 2, two, two_values);
	ingest_commit(POSTINGS, 3);
	assert_true(wait_messages(R0->owner, 4));
	assert_int_equal(stats(R0->owner).rejected, 1);
	assert_int_equal(enqueued(), before);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 3 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 3);
}

/* The index's read seam, armed: at the first record a read decodes, the
 * store gets the bytes of `put` (as ingest would commit them), once, with
 * the follower stopped. Runs on the reading thread: no asserts. */
struct store_moves {
	atomic_bool armed;
	atomic_int rc;
	const char *id;
	uint64_t version;
	uint8_t *bytes;
	size_t len;
};

static int
store_moves(void *arg, lm_index_alloc what)
{
	struct store_moves *sm = arg;
	lm_store_txn *t = NULL;
	int rc;

	if (what != LM_INDEX_ALLOC_RECORD || !atomic_exchange(&sm->armed, false))
		return LM_OK;
	if ((rc = lm_store_begin(R0->store, &t)) == LM_OK) {
		rc = lm_store_put_at(
		    t, LM_KIND_PROFILE, sm->id, sm->version, sm->bytes, sm->len, NULL);
		rc = rc == LM_OK ? lm_store_commit(t, NULL) : (lm_store_abort(t), rc);
	}
	atomic_store(&sm->rc, rc);
	return LM_OK;
}

/* The store ahead of the index for a record the events show (a change
 * ingest committed after the owner's wait for the index, before the
 * derivation read the record): the owner retries quietly, counting no
 * failure, and derives once the follower has applied the change. */
static void
test_store_ahead(void **state)
{
	struct store_moves sm = {.id = LEAD, .version = 2};
	ProtobufCMessage *m = sample(false, LEAD, 2);
	lm_reject why;
	char err[512];

	(void) state;
	assert_int_equal(
	    lmt_record_prepare(&G.recs.ctx, m, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(m, &sm.bytes, &sm.len), LM_OK);
	protobuf_c_message_free_unpacked(m, NULL);
	atomic_init(&sm.armed, false);
	atomic_init(&sm.rc, -1);
	/* As the service runs: the index reads the records it shows from
	 * the store. */
	assert_int_equal(lm_index_set_store(R0->idx, R0->store), LM_OK);

	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));
	assert_int_equal(stats(R0->owner).ahead, 0);

	/* The posting's v2 reaches the index. With the follower stopped, the
	 * lead's v2 reaches the store when the derivation of the posting's v2
	 * reads its first record; the events show the lead, which the index
	 * ranked at v1. */
	ingest_put(true, SEED_JOB, 2);
	assert_true(index_holds(R0, SEED_JOB, 2));
	lm_follower_stop(R0->follower);
	atomic_store(&sm.armed, true);
	lm_index_set_fault(R0->idx, store_moves, &sm);
	produce_record(true, SEED_JOB, 2);
	ingest_commit(POSTINGS, 2);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     stats(R0->owner).ahead == 0 && lm_clock_ms() < end;)
		lmt_sleep_ms(5);
	assert_int_equal(atomic_load(&sm.rc), LM_OK);
	assert_true(stats(R0->owner).ahead >= 1);
	assert_int_equal(stats(R0->owner).messages, 2);

	/* The follower applies the lead's v2 and wakes the owner. */
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_true(wait_messages(R0->owner, 3));
	assert_int_equal(stats(R0->owner).failures, 0);
	assert_false(stats(R0->owner).failing);
	lm_index_set_fault(R0->idx, NULL, NULL);
	free(sm.bytes);
}

/* Outbox writes fail with rc, then succeed again: retried, nothing
 * skipped, nothing committed before the events are written. */
static void
outbox_fails(int rc)
{
	start_r0();
	atomic_store(&G.outbox_fault, rc);
	seed_pair();
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     (stats(R0->owner).failures < 2 || !lm_events_outbox_failing(R0->events)) &&
	     lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_true(stats(R0->owner).failures >= 2); /* retried */
	assert_true(stats(R0->owner).failing);
	assert_true(lm_events_outbox_failing(R0->events));
	assert_int_equal(stats(R0->owner).messages, 0);
	assert_int_equal(enqueued(), 0);
	assert_true(committed(POSTINGS) <= 0); /* claimed at most */

	atomic_store(&G.outbox_fault, LM_OK);
	assert_true(wait_messages(R0->owner, 2));
	assert_false(stats(R0->owner).failing);
	assert_false(lm_events_outbox_failing(R0->events));
	assert_true(enqueued() >= 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 1);
	assert_int_equal(committed(PROFILES), 1);
	/* A batch this owner claimed and retried is no hand-over. */
	assert_int_equal(stats(R0->owner).handover, 0);
	assert_int_equal(stats(R0->owner).skipped, 0);
}

static void
test_outbox_fails(void **state)
{
	(void) state;
	outbox_fails(LM_ESTORE);
}

/* A full disk: an outbox write whose file cannot grow (EFBIG) gives
 * LM_E2BIG, which says nothing of the record. */
static void
test_outbox_disk_full(void **state)
{
	(void) state;
	outbox_fails(LM_E2BIG);
}

/*
 * The stored record of a message is damaged after the index took it (the
 * index reads the records it shows from the store, as the service runs):
 * its derivation can never succeed. It is skipped, counted and logged,
 * and the next message of the partition is derived; before, the batch was
 * retried for ever and nothing after it was derived.
 */
static void
damaged_record(bool header)
{
	uint64_t before;

	assert_int_equal(lm_index_set_store(R0->idx, R0->store), LM_OK);
	start_r0();
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));
	before = enqueued();

	/* The posting's v2 reaches the index, then its stored value is
	 * damaged; ingest passes it. */
	ingest_put(true, SEED_JOB, 2);
	assert_true(index_holds(R0, SEED_JOB, 2));
	lmt_store_damage(R0->dir, true, SEED_JOB, header);
	produce_record(true, SEED_JOB, 2);
	/* A later posting of the same partition, which the lead fits. */
	produce_posting_as("job-after-damaged");
	ingest_put_as(true, SEED_JOB, "job-after-damaged", 1);
	ingest_commit(POSTINGS, 3);

	assert_true(wait_messages(R0->owner, 4));
	assert_int_equal(stats(R0->owner).skipped, 1);
	assert_true(enqueued() > before); /* the later posting's pair */
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 3 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 3);
	assert_false(stats(R0->owner).failing);
}

static void
test_damaged_record_header(void **state)
{
	(void) state;
	damaged_record(true);
}

static void
test_damaged_record_bytes(void **state)
{
	(void) state;
	damaged_record(false);
}

/* The counterparts of job id's pairs above the threshold in R0's outbox,
 * as "id;id;..." in id order. */
static void
job_pairs(const char *id, char *ids, size_t len)
{
	lm_outbox_pair *v = NULL;
	size_t n = 0, at = 0;
	bool truncated = true;

	assert_int_equal(lm_outbox_pairs_of(lm_events_outbox(R0->events), LM_OUTBOX_JOB,
	                     id, 64, &v, &n, &truncated),
	    LM_OK);
	assert_false(truncated);
	ids[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (v[i].above && at < len)
			at += (size_t) snprintf(ids + at, len - at, "%s;", v[i].other_id);
	free(v);
}

/*
 * The index keeps the records' bytes, and the store's value of the lead is
 * damaged: who announces a new posting's pair with the lead cannot be
 * decided from the lead's position (it does not decode). The pair is
 * announced here (at least once: the lead's own owner may have announced
 * it too, under the same event id), counted, and the posting's other
 * pairs and the tombstone after it are derived and committed; nothing is
 * skipped. Before, the posting's whole message was skipped (owner.skip):
 * every event of a new posting lost for one damaged counterpart.
 */
static void
test_damaged_position(void **state)
{
	char got[512];

	(void) state;
	start_r0();
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));

	lmt_store_damage(R0->dir, false, LEAD, true);
	produce_posting_as("job-after-damaged");
	ingest_put_as(true, SEED_JOB, "job-after-damaged", 1);
	produce(POSTINGS, "job-gone", NULL, 0);
	ingest_commit(POSTINGS, 3);

	assert_true(wait_messages(R0->owner, 4));
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 3 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 3);
	assert_int_equal(stats(R0->owner).skipped, 0);
	assert_int_equal(stats(R0->owner).damaged, 1);
	assert_false(stats(R0->owner).failing);
	job_pairs("job-after-damaged", got, sizeof(got));
	assert_string_equal(got, LEAD ";");
}

/*
 * A pair announced past a damaged position is counted once, also when its
 * derivation is retried: outbox writes fail at first, and the pair is
 * decided again at every retry. Before, every attempt counted it again, so
 * the counter told of more such pairs than there were.
 */
static void
test_damaged_position_counted_once(void **state)
{
	uint64_t failures;
	char got[512];

	(void) state;
	start_r0();
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));

	lmt_store_damage(R0->dir, false, LEAD, true);
	failures = stats(R0->owner).failures;
	atomic_store(&G.outbox_fault, LM_ESTORE);
	produce_posting_as("job-after-damaged");
	ingest_put_as(true, SEED_JOB, "job-after-damaged", 1);
	ingest_commit(POSTINGS, 2);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     stats(R0->owner).failures < failures + 3 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_true(stats(R0->owner).failures >= failures + 3);
	atomic_store(&G.outbox_fault, LM_OK);

	assert_true(wait_messages(R0->owner, 3));
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 2);
	job_pairs("job-after-damaged", got, sizeof(got));
	assert_string_equal(got, LEAD ";");
	assert_int_equal(stats(R0->owner).damaged, 1);
	assert_int_equal(stats(R0->owner).skipped, 0);
}

/*
 * The same from the profiles' side: a new profile, stored with its
 * position, whose pair with the seed posting needs the posting's stored
 * position, which is damaged. The pair is announced here and counted; the
 * profile's message is derived and committed, not skipped.
 */
static void
test_damaged_position_of_posting(void **state)
{
	lm_store_pos pos = {.epoch = 0, .partition = 0, .offset = 1};
	ProtobufCMessage *m;
	lm_store_txn *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char got[512];

	(void) state;
	start_r0();
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));

	lmt_store_damage(R0->dir, true, SEED_JOB, true);
	m = sample_as(false, LEAD, "cand-after-damaged", 1);
	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	produce(PROFILES, "cand-after-damaged", buf, len);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_store_begin(R0->store, &t), LM_OK);
	put_record(t, false, LEAD, "cand-after-damaged", 1, &pos);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	ingest_commit(PROFILES, 2);

	assert_true(wait_messages(R0->owner, 3));
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(PROFILES), 2);
	assert_int_equal(stats(R0->owner).skipped, 0);
	assert_int_equal(stats(R0->owner).damaged, 1);
	job_pairs(SEED_JOB, got, sizeof(got));
	assert_string_equal(got, "cand-after-damaged;" LEAD ";");
}

/*
 * A profile in a posting's top 3 is damaged in the store (the index reads
 * the records it shows from the store, as the service runs), and is not
 * the record of the message: the posting's events are derived all the
 * same, from the exact top 3 of the other profiles (the next one takes
 * its place), as from a store without it, and nothing is skipped. Before,
 * the posting's whole message was skipped (owner.skip): one damaged
 * profile stopped the events of every posting whose top N held it.
 */
static void
test_damaged_match_left_out(void **state)
{
	/* Copies of the lead: equal scores, ranked by id after it. */
	static const char *const copies[] = {"cand-x1", "cand-x2", "cand-x3", "cand-x4"};
	char got[512], want[512];
	lm_index_counts counts;
	lm_top_list ref;
	uint64_t v = 0;

	(void) state;
	assert_int_equal(lm_index_set_store(R0->idx, R0->store), LM_OK);
	for (size_t i = 0; i < sizeof(copies) / sizeof(copies[0]); i++)
		ingest_put_as(false, LEAD, copies[i], 1);
	start_r0();
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));
	job_pairs(SEED_JOB, got, sizeof(got));
	assert_string_equal(got, LEAD ";cand-x1;cand-x2;");

	lmt_store_damage(R0->dir, false, LEAD, true);
	produce_posting_as("job-after-damaged");
	ingest_put_as(true, SEED_JOB, "job-after-damaged", 1);
	ingest_commit(POSTINGS, 2);
	assert_true(wait_messages(R0->owner, 3));
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 2);
	assert_int_equal(stats(R0->owner).skipped, 0);
	job_pairs("job-after-damaged", got, sizeof(got));
	assert_string_equal(got, "cand-x1;cand-x2;cand-x3;");
	lm_index_counts_get(R0->idx, &counts);
	assert_true(counts.damaged >= 1);

	/* The same as the top list of a store without the lead. */
	ingest_delete(false, LEAD);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     lm_index_record_version(R0->idx, false, LEAD, &v) == LM_OK &&
	     lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(lm_index_record_version(R0->idx, false, LEAD, &v), LM_ENOENT);
	assert_int_equal(lm_index_top_for_posting(R0->idx, "job-after-damaged", 3, 0.3,
	                     (int64_t) time(NULL), &ref),
	    LM_OK);
	want[0] = '\0';
	for (size_t i = 0, at = 0; i < ref.n; i++)
		at += (size_t) snprintf(
		    want + at, sizeof(want) - at, "%s;", ref.items[i].id);
	lm_top_list_clear(&ref);
	assert_string_equal(got, want);
}

/* The index's read seam: the next `left` record reads fail for want of
 * memory, at the read a damaged record fails at. */
static int
reads_fail(void *arg, lm_index_alloc what)
{
	atomic_int *left = arg;

	if (what != LM_INDEX_ALLOC_RECORD)
		return LM_OK;
	return atomic_fetch_sub(left, 1) > 0 ? LM_ENOMEM : LM_OK;
}

/* Out of memory where a stored record is read for the derivation is no
 * damage: retried until it succeeds, nothing skipped. */
static void
test_record_read_nomem_retried(void **state)
{
	atomic_int left;

	(void) state;
	atomic_init(&left, 0);
	assert_int_equal(lm_index_set_store(R0->idx, R0->store), LM_OK);
	start_r0();
	seed_pair();
	assert_true(wait_messages(R0->owner, 2));
	uint64_t before = enqueued();

	ingest_put(true, SEED_JOB, 2);
	assert_true(index_holds(R0, SEED_JOB, 2));
	atomic_store(&left, 1000000);
	lm_index_set_fault(R0->idx, reads_fail, &left);
	produce_record(true, SEED_JOB, 2);
	ingest_commit(POSTINGS, 2);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     stats(R0->owner).failures < 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_true(stats(R0->owner).failures >= 2);
	assert_int_equal(stats(R0->owner).messages, 2);
	assert_int_equal(stats(R0->owner).skipped, 0);
	assert_int_equal(committed(POSTINGS), 1);

	atomic_store(&left, 0);
	assert_true(wait_messages(R0->owner, 3));
	assert_int_equal(stats(R0->owner).skipped, 0);
	assert_true(enqueued() >= before);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 2);
	lm_index_set_fault(R0->idx, NULL, NULL);
}

/* An owner derived the lead, claimed the seed posting with the lead in
 * its cut, and died: the next owner derives the posting again, and the
 * pair it announces is counted as a hand-over. With refuse_cut the new
 * owner's claim replaces the dead one's, its claim with the cut is
 * refused, and the claim is taken back for want of a cut (as when the
 * group rebalances between the two): the hand-over counts all the same. */
static void
handover(bool refuse_cut)
{
	seed_pair();
	claim_commit(PROFILES, 0, 1, NULL);
	claim_commit(POSTINGS, 0, 0, "lm1 1 1");
	/* The owner's first two commits: its claim, then its claim with the
	 * cut (nothing else commits before them). */
	if (refuse_cut)
		rd_kafka_mock_push_request_errors(
		    G.mock, OFFSET_COMMIT, 2, RD_KAFKA_RESP_ERR_NO_ERROR, REFUSED);
	start_r0();
	assert_true(wait_messages(R0->owner, 1)); /* the posting */
	assert_true(enqueued() >= 1);
	assert_int_equal(stats(R0->owner).handover, enqueued());
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 1);
	assert_int_equal(claim_len(POSTINGS, 0), 0);
	if (refuse_cut)
		assert_true(stats(R0->owner).failures >= 1);
}

static void
test_handover(void **state)
{
	(void) state;
	handover(false);
}

static void
test_handover_claim_taken_back(void **state)
{
	(void) state;
	handover(true);
}

/*
 * A claim's cut commit that fails in a way that does not tell whether it
 * landed (the request timed out: the coordinator may have stored it, and
 * the profiles' owner may have announced pairs by it) leaves the batch's
 * messages as possibly announced: what the batch, claimed again with a new
 * cut, announces is counted as a hand-over, like any other derivation
 * that may repeat an event.
 */
static void
test_cut_commit_unknown_counted(void **state)
{
	(void) state;
	/* The lead alone first: derived, with no posting to pair with. */
	produce_record(false, LEAD, 1);
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	start_r0();
	assert_true(wait_messages(R0->owner, 1));
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(PROFILES), 1);
	lmt_sleep_ms(500);
	assert_int_equal(enqueued(), 0);
	/* The posting is stored before it is produced, so that the next
	 * commits are the owner's: its claim lands, its claim with the cut
	 * times out. */
	ingest_put(true, SEED_JOB, 1);
	ingest_commit(POSTINGS, 1);
	assert_true(index_holds(R0, SEED_JOB, 1));
	rd_kafka_mock_push_request_errors(G.mock, OFFSET_COMMIT, 9,
	    RD_KAFKA_RESP_ERR_NO_ERROR, TIMED_OUT, TIMED_OUT, TIMED_OUT, TIMED_OUT,
	    TIMED_OUT, TIMED_OUT, TIMED_OUT, TIMED_OUT);
	produce_record(true, SEED_JOB, 1);
	assert_true(wait_messages(R0->owner, 2));
	assert_true(stats(R0->owner).failures >= 1); /* the cut's commit */
	assert_true(enqueued() >= 1);
	assert_int_equal(stats(R0->owner).handover, enqueued());
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(50);
	assert_int_equal(committed(POSTINGS), 1);
	assert_int_equal(claim_len(POSTINGS, 0), 0);
}

/* The pairs of the events pending in an outbox, "candidate\tjob". */
struct pairs {
	char pair[8][2 * LM_STORE_ID_MAX + 2];
	size_t n;
};

static int
pair_of(void *arg, const char *event_id, const Lunamatch__V1__OutboxEntry *entry)
{
	struct pairs *p = arg;
	Lunamatch__V1__MatchEvent *e =
	    lunamatch__v1__match_event__unpack(NULL, entry->event.len, entry->event.data);
	(void) event_id;

	assert_non_null(e);
	assert_true(p->n < 8);
	snprintf(
	    p->pair[p->n++], sizeof(p->pair[0]), "%s\t%s", e->candidate_id, e->job_id);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	return 0;
}

static void
test_two_replicas(void **state)
{
	static const char *const jobs[] = {"job-p0", "job-p1"};
	static const char *const cands[] = {"cand-q0", "cand-q1"};
	struct pairs seen;
	uint64_t messages = 0, deferred = 0;
	(void) state;

	for (int i = 0; i < REPLICAS; i++) {
		G.r[i].owner = new_owner(&G.r[i]);
		assert_int_equal(lm_follower_start(G.r[i].follower), LM_OK);
		assert_int_equal(lm_owner_start(G.r[i].owner), LM_OK);
	}
	/* Two members per topic, two partitions each: every replica owns one
	 * partition of each topic. */
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     (stats(G.r[0].owner).partitions != 2 ||
	         stats(G.r[1].owner).partitions != 2) &&
	     lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(G.r[0].owner).partitions, 2);
	assert_int_equal(stats(G.r[1].owner).partitions, 2);

	/* A posting and a profile on each partition, all at once (offset 0
	 * of each), and both replicas' ingest stores all four in one
	 * transaction: every owner finds the other side in its index. */
	for (int p = 0; p < 2; p++) {
		ProtobufCMessage *m[2] = {sample_as(true, SEED_JOB, jobs[p], 1),
		    sample_as(false, LEAD, cands[p], 1)};
		for (int k = 0; k < 2; k++) {
			uint8_t *buf = NULL;
			size_t len = 0;
			assert_int_equal(lm_pb_encode(m[k], &buf, &len), LM_OK);
			produce_to(k == 0 ? POSTINGS : PROFILES, p,
			    k == 0 ? jobs[p] : cands[p], buf, len);
			free(buf);
			protobuf_c_message_free_unpacked(m[k], NULL);
		}
	}
	for (int i = 0; i < REPLICAS; i++) {
		lm_store_txn *t = NULL;
		assert_int_equal(lm_store_begin(G.r[i].store, &t), LM_OK);
		for (int p = 0; p < 2; p++) {
			lm_store_pos pos = {.epoch = 0, .partition = p, .offset = 0};
			put_record(t, true, SEED_JOB, jobs[p], 1, &pos);
			put_record(t, false, LEAD, cands[p], 1, &pos);
		}
		assert_int_equal(lm_store_commit(t, NULL), LM_OK);
		for (int p = 0; p < 2; p++) {
			group_commit(G.r[i].ingest, POSTINGS, p, 1);
			group_commit(G.r[i].ingest, PROFILES, p, 1);
		}
	}
	for (int64_t end = lm_clock_ms() + WAIT_MS; lm_clock_ms() < end;) {
		messages = stats(G.r[0].owner).messages + stats(G.r[1].owner).messages;
		if (messages >= 4)
			break;
		lmt_sleep_ms(20);
	}
	assert_int_equal(messages, 4);

	/* Each of the four pairs is announced once, by one replica. */
	memset(&seen, 0, sizeof(seen));
	for (int i = 0; i < REPLICAS; i++) {
		assert_int_equal(lm_outbox_pending(lm_events_outbox(G.r[i].events), 100,
		                     pair_of, &seen),
		    LM_OK);
		deferred += stats(G.r[i].owner).deferred;
		assert_int_equal(stats(G.r[i].owner).handover, 0);
		assert_false(stats(G.r[i].owner).failing);
	}
	assert_int_equal(seen.n, 4);
	for (int p = 0; p < 2; p++)
		for (int q = 0; q < 2; q++) {
			char want[2 * LM_STORE_ID_MAX + 2];
			size_t n = 0;
			snprintf(want, sizeof(want), "%s\t%s", cands[q], jobs[p]);
			for (size_t k = 0; k < seen.n; k++)
				n += strcmp(seen.pair[k], want) == 0;
			if (n != 1)
				fail_msg("pair %s announced %zu times", want, n);
		}
	/* Every pair either replica saw from both sides was left by one. */
	assert_true(deferred >= 1);
}

/*
 * A claim left reading its cut: its owner died between the two commits of
 * its claim, on a partition with nothing more to read. Every profiles
 * batch would wait for that cut, and for ingest to pass the claim's end;
 * the owner that gets the partition takes the claim back, and the profile
 * is derived. The group coordinator refuses the first tries to take it
 * back (more than the assignments the member gets): the owner keeps
 * trying until it succeeds, with no new message on that partition. The
 * profile's batch may read the claim before or after the take-back
 * (test_claim_taken_back_while_read makes it before).
 */
static void
test_claim_left_reading(void **state)
{
	(void) state;
	claim_commit(POSTINGS, 1, 0, "lm1 1");
	assert_true(claim_len(POSTINGS, 1) > 0);
	rd_kafka_mock_push_request_errors(
	    G.mock, OFFSET_COMMIT, 3, REFUSED, REFUSED, REFUSED);
	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	/* Alone in the group: both partitions of both topics. */
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 4 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 4);

	produce_record(false, LEAD, 1);
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	assert_true(wait_messages(R0->owner, 1));
	assert_int_equal(claim_len(POSTINGS, 1), 0);
	assert_false(stats(R0->owner).failing);
}

/* Commits offset `next` of topic's partition as member c of the events
 * group, with metadata meta when it is not NULL; a commit that meets a
 * rebalance is tried again while c serves it. */
static void
member_commit(
    rd_kafka_t *c, const char *topic, int partition, int64_t next, const char *meta)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_t *tp =
	    rd_kafka_topic_partition_list_add(l, topic, partition);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__FAIL;

	tp->offset = next;
	if (meta != NULL) {
		tp->metadata = strdup(meta);
		tp->metadata_size = strlen(meta);
	}
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     (e = rd_kafka_commit(c, l, 0)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
	     lm_clock_ms() < end;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		if (m != NULL)
			rd_kafka_message_destroy(m);
	}
	assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
}

/* The number of events pending in R0's outbox for the lead and job. */
static size_t
events_of(const char *job)
{
	struct pairs seen;
	char want[2 * LM_STORE_ID_MAX + 2];
	size_t n = 0;

	memset(&seen, 0, sizeof(seen));
	assert_int_equal(
	    lm_outbox_pending(lm_events_outbox(R0->events), 100, pair_of, &seen), LM_OK);
	snprintf(want, sizeof(want), "%s\t%s", LEAD, job);
	for (size_t k = 0; k < seen.n; k++)
		n += strcmp(seen.pair[k], want) == 0;
	return n;
}

/*
 * A profiles batch that read a claim still reading its cut, taken back
 * while the batch waits for ingest to pass the claim's end: the batch
 * reads the claim again, finds it gone and goes on, leaving the pair of
 * the claimed posting to its owner, which announces it once when it
 * claims the posting. The batch used to wait for the claim's end until a
 * later message of that postings partition was stored.
 *
 * The test plays the postings partition's owner: a member of the events
 * group (of postings, next to the owner's) writes the claim on the
 * partition it is given, as an owner that died between the two commits of
 * its claim leaves it, and takes it back once the profile's batch waits
 * for it. It then leaves the group, and the owner takes the partition.
 */
static void
test_claim_taken_back_while_read(void **state)
{
	lm_store_pos lead_at = {.epoch = 0, .partition = 0, .offset = 0};
	lm_store_pos job_at = {.epoch = 0, .offset = 0};
	rd_kafka_topic_partition_list_t *l = NULL;
	lm_store_txn *t = NULL;
	rd_kafka_t *c;
	uint64_t probes;
	(void) state;

	c = lmt_kafka_consumer(G.brokers, "test-member", GROUP,
	    (const char *const[]){
	        "session.timeout.ms", "3000", "heartbeat.interval.ms", "1000", NULL});
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, POSTINGS, RD_KAFKA_PARTITION_UA);
	assert_int_equal(rd_kafka_subscribe(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	l = NULL;
	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	/* The owner holds both profiles partitions and one postings
	 * partition, the test's member the other. */
	for (int64_t end = lm_clock_ms() + JOIN_MS; lm_clock_ms() < end;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 20);
		if (m != NULL)
			rd_kafka_message_destroy(m);
		if (l != NULL)
			rd_kafka_topic_partition_list_destroy(l);
		l = NULL;
		assert_int_equal(rd_kafka_assignment(c, &l), RD_KAFKA_RESP_ERR_NO_ERROR);
		if (l->cnt == 1 && stats(R0->owner).partitions == 3)
			break;
	}
	assert_int_equal(l->cnt, 1);
	assert_int_equal(stats(R0->owner).partitions, 3);
	job_at.partition = l->elems[0].partition;
	rd_kafka_topic_partition_list_destroy(l);
	member_commit(c, POSTINGS, job_at.partition, 0, "lm1 1");

	/* The posting (claimed above) and the lead are stored, the lead is
	 * produced: its batch claims it and waits for ingest to pass the
	 * posting claim's end, which it never does. */
	assert_int_equal(lm_store_begin(R0->store, &t), LM_OK);
	put_record(t, false, LEAD, NULL, 1, &lead_at);
	put_record(t, true, SEED_JOB, NULL, 1, &job_at);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	ingest_commit(PROFILES, 1);
	assert_true(index_holds(R0, SEED_JOB, 1));
	probes = stats(R0->owner).probes;
	produce_record(false, LEAD, 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     (claim_len(PROFILES, 0) == 0 || stats(R0->owner).probes <= probes) &&
	     lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_true(claim_len(PROFILES, 0) > 0);
	assert_true(stats(R0->owner).probes > probes);
	assert_int_equal(stats(R0->owner).messages, 0);

	/* Taken back: the lead is derived, and the pair left to the posting's
	 * owner. */
	member_commit(c, POSTINGS, job_at.partition, 0, NULL);
	assert_true(wait_messages(R0->owner, 1));
	assert_int_equal(events_of(SEED_JOB), 0);
	assert_true(stats(R0->owner).deferred >= 1);

	/* The test's member leaves; the posting comes, and the owner, which
	 * now holds its partition, announces the pair, once. */
	lmt_kafka_consumer_free(c);
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 4 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 4);
	ProtobufCMessage *m = sample(true, SEED_JOB, 1);
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	produce_to(POSTINGS, job_at.partition, SEED_JOB, buf, len);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
	group_commit(R0->ingest, POSTINGS, job_at.partition, 1);
	assert_true(wait_messages(R0->owner, 2));
	assert_int_equal(events_of(SEED_JOB), 1);
	assert_int_equal(stats(R0->owner).handover, 0);
	assert_false(stats(R0->owner).failing);
}

/* Starts R0's owner and waits until it owns the partition of each topic. */
static void
start_owner(void)
{
	start_r0();
}

/* Whether the outbox of R0 holds an event of the lead and posting job. */
static bool
announced(const char *job)
{
	return events_of(job) > 0;
}

/*
 * A batch whose claim the group coordinator refuses is rewound, and no
 * later message of its partition goes before it, not even one the member
 * held while the batch waited more than a second for the index: whenever
 * the events group's committed offset has passed a message, its events
 * are in the outbox. Had the held message gone first, its commit would
 * pass the rewound one, and a stop before that was derived again would
 * lose it.
 */
static void
test_refused_claim_not_overtaken(void **state)
{
	(void) state;
	ingest_put(false, LEAD, 1); /* both postings fit it: it shows them */
	start_owner();
	ingest_put_as(true, SEED_JOB, "job-b", 1);
	assert_true(index_holds(R0, "job-b", 1));
	/* job-a (offset 0) is not in the store: its batch waits, and job-b
	 * (offset 1), polled after a second of that wait, is held. */
	produce_posting_as("job-a");
	lmt_sleep_ms(500);
	produce_posting_as("job-b");
	lmt_sleep_ms(1500);
	assert_int_equal(stats(R0->owner).messages, 0);
	/* The claim of job-a's batch is refused; the next batch claims, writes
	 * its cut and commits; then commits are refused a while again, so that
	 * a message left behind would stay so. */
	rd_kafka_mock_push_request_errors(G.mock, OFFSET_COMMIT, 9, REFUSED,
	    RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_NO_ERROR,
	    RD_KAFKA_RESP_ERR_NO_ERROR, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED);
	ingest_put_as(true, SEED_JOB, "job-a", 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) < 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_true(stats(R0->owner).failures >= 1); /* the refused claim */
	/* A stop here, as a crash would: the next owner starts at the
	 * committed offset. */
	lm_follower_stop(R0->follower);
	lm_owner_free(R0->owner);
	R0->owner = NULL;
	int64_t c = committed(POSTINGS);
	assert_true(c >= 1);
	if (!announced("job-a"))
		fail_msg("committed offset %lld passed job-a, which is not derived",
		    (long long) c);
	if (c >= 2 && !announced("job-b"))
		fail_msg("committed offset %lld passed job-b, which is not derived",
		    (long long) c);
}

/*
 * A commit past a derived batch that the group coordinator refuses is
 * retried until it succeeds, without waiting for a new message of its
 * partition: until then the batch's claim stays, and every postings batch
 * whose cut reaches into it waits for it (here the posting, whose cut
 * holds the profile).
 */
static void
test_failed_commit_retried(void **state)
{
	(void) state;
	start_owner();
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	/* The profile's claim is accepted, its commit and the first retry
	 * refused. */
	rd_kafka_mock_push_request_errors(
	    G.mock, OFFSET_COMMIT, 3, RD_KAFKA_RESP_ERR_NO_ERROR, REFUSED, REFUSED);
	produce_record(false, LEAD, 1);
	assert_true(wait_messages(R0->owner, 1));
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(committed(PROFILES), 1);
	assert_int_equal(claim_len(PROFILES, 0), 0);

	produce_record(true, SEED_JOB, 1);
	ingest_put(true, SEED_JOB, 1);
	ingest_commit(POSTINGS, 1);
	assert_true(wait_messages(R0->owner, 2));
	assert_true(enqueued() >= 1);
}

/* A consumer of the events group that counts the assignments it gets. */
static void
joiner_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	atomic_int *assigned = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		rd_kafka_assign(rk, parts);
		atomic_fetch_add(assigned, 1);
	} else {
		rd_kafka_assign(rk, NULL);
	}
}

static rd_kafka_t *
joiner_new(const char *topic, atomic_int *assigned)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *l;
	char err[256], session[16];
	rd_kafka_t *c;

	snprintf(session, sizeof(session), "%d", SESSION_MS);
	assert_int_equal(
	    lm_kafka_conf(G.brokers, "test-joiner", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_kafka_set(conf, "group.id", GROUP, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(conf, "enable.auto.commit", "false", err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(conf, "session.timeout.ms", session, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(conf, "heartbeat.interval.ms", "1000", err, sizeof(err)), LM_OK);
	rd_kafka_conf_set_opaque(conf, assigned);
	rd_kafka_conf_set_rebalance_cb(conf, joiner_rebalance);
	c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	assert_non_null(c);
	rd_kafka_poll_set_consumer(c);
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
	assert_int_equal(rd_kafka_subscribe(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	return c;
}

/* Whether what was written to stderr so far under capture c holds what. */
static bool
captured_has(lmt_capture *c, const char *what)
{
	struct stat st;
	char *text;
	bool has;

	fflush(stderr);
	assert_int_equal(fstat(fileno(c->file), &st), 0);
	text = lmt_calloc((size_t) st.st_size + 1, 1);
	assert_int_equal(
	    pread(fileno(c->file), text, (size_t) st.st_size, 0), st.st_size);
	has = strstr(text, what) != NULL;
	free(text);
	return has;
}

/*
 * While the outbox cannot be written, the member retrying the derivation of
 * its batch keeps serving the group: when a consumer joins, it serves the
 * revocation of its partition within a few rebalance rounds of the mock
 * cluster (each the session timeout less 1 s), giving its batch up (logged
 * by the one member with a batch), and the partition has one owner once
 * the group has settled. Once the consumer has left and the outbox writes
 * again, the batch is read again, derived and committed. Before, the
 * retries only paused: the member never polled, so the group dropped it
 * while it went on deriving, and the consumer owned its partition
 * alongside it (on a broker, the rebalance waited for it up to
 * max.poll.interval.ms, 300 s, with derivation stopped for the whole
 * group).
 */
static void
test_derive_retry_serves_group(void **state)
{
	const int64_t bound = 5 * SESSION_MS;
	uint64_t reb;
	atomic_int assigned;
	lmt_capture cap;
	bool served = false, settled = false;
	rd_kafka_t *c;
	char *log;
	int held = 0;

	(void) state;
	start_owner();
	atomic_store(&G.outbox_fault, LM_ESTORE);
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	produce_record(false, LEAD, 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     stats(R0->owner).failures < 3 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_true(stats(R0->owner).failures >= 3);
	reb = stats(R0->owner).rebalances;

	atomic_init(&assigned, 0);
	lmt_stderr_begin(&cap);
	c = joiner_new(PROFILES, &assigned);
	for (int64_t end = lm_clock_ms() + bound;
	     !(served && settled) && lm_clock_ms() < end;) {
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(c, 100);
		rd_kafka_topic_partition_list_t *a = NULL;
		if (msg != NULL)
			rd_kafka_message_destroy(msg);
		assert_int_equal(rd_kafka_assignment(c, &a), RD_KAFKA_RESP_ERR_NO_ERROR);
		held = a->cnt;
		rd_kafka_topic_partition_list_destroy(a);
		served = served ||
		         captured_has(&cap, "collected messages left to the next owner");
		/* Both members of the owner assigned again, and the joiner. */
		settled = atomic_load(&assigned) > 0 &&
		          stats(R0->owner).rebalances >= reb + 2 &&
		          stats(R0->owner).partitions + held == 2;
	}
	log = lmt_stderr_end(&cap);
	free(log);
	assert_true(served);
	assert_true(settled);
	lmt_kafka_consumer_free(c);

	atomic_store(&G.outbox_fault, LM_OK);
	assert_true(wait_messages(R0->owner, 1));
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(PROFILES) != 1 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(committed(PROFILES), 1);
}

/*
 * A derived batch whose commit the group coordinator refuses counts in
 * lm_owner_stats.messages (lunamatch_events_owner_messages_total) only
 * once the retried commit lands. Before, it counted when the commit
 * failed: had the partition moved before the retry landed, its next owner
 * would have derived and counted the same messages again.
 */
static void
test_messages_counted_when_committed(void **state)
{
	lmt_capture cap;
	bool retried = false;
	char *log;

	(void) state;
	start_owner();
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	/* The claim is accepted; the commit after the derivation and its
	 * retries are refused for a few seconds. */
	rd_kafka_mock_push_request_errors(G.mock, OFFSET_COMMIT, 7,
	    RD_KAFKA_RESP_ERR_NO_ERROR, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED,
	    REFUSED);
	lmt_stderr_begin(&cap);
	produce_record(false, LEAD, 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS; !retried && lm_clock_ms() < end;
	     lmt_sleep_ms(20))
		retried = captured_has(&cap, "commit failed again");
	log = lmt_stderr_end(&cap);
	free(log);
	assert_true(retried); /* derived, its commit refused twice */
	assert_true(committed(PROFILES) != 1);
	assert_int_equal(stats(R0->owner).messages, 0);

	assert_true(wait_messages(R0->owner, 1));
	assert_int_equal(committed(PROFILES), 1);
	assert_int_equal(stats(R0->owner).messages, 1);
}

/*
 * A claim refused because the group moved on (here the member's generation
 * ended; or the group forgot the member) is no failure: librdkafka joins
 * again, and the batch is read again once it has, like a claim that meets
 * a rebalance.
 */
static void
test_claim_after_generation_change(void **state)
{
	(void) state;
	start_owner();
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	rd_kafka_mock_push_request_errors(
	    G.mock, OFFSET_COMMIT, 1, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION);
	produce_record(false, LEAD, 1);
	assert_true(wait_messages(R0->owner, 1));
	assert_int_equal(stats(R0->owner).failures, 0);
}

/*
 * A message that ingest's rule cannot be applied to (out of memory,
 * injected through the owner's failure point) is read again, and no later
 * message of its partition goes before it: whenever the events group's
 * committed offset has passed a message, its events are in the outbox.
 * Had it been dropped, job-b's commit would pass job-a, never derived.
 */
static void
test_undecided_message_read_again(void **state)
{
	(void) state;
	ingest_put(false, LEAD, 1); /* both postings fit it: it shows them */
	ingest_put_as(true, SEED_JOB, "job-a", 1);
	ingest_put_as(true, SEED_JOB, "job-b", 1);
	start_owner();
	assert_true(index_holds(R0, "job-b", 1));
	lm_owner_fail_decides(R0->owner, 1);
	produce_posting_as("job-a");
	produce_posting_as("job-b");
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) < 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(committed(POSTINGS), 2);
	assert_int_equal(stats(R0->owner).failures, 1);
	assert_true(announced("job-a"));
	assert_true(announced("job-b"));

	/* The same for a message held while a batch waited: job-c (offset 2)
	 * is not in the store, so its batch waits, and job-d and job-e,
	 * polled after a second of that wait, are held. job-d cannot be
	 * decided: it and job-e, held after it, are read again after job-c. */
	produce_posting_as("job-c");
	lmt_sleep_ms(500);
	produce_posting_as("job-d");
	produce_posting_as("job-e");
	lmt_sleep_ms(1500);
	assert_int_equal(stats(R0->owner).messages, 2);
	lm_owner_fail_decides(R0->owner, 1);
	ingest_put_as(true, SEED_JOB, "job-c", 1);
	ingest_put_as(true, SEED_JOB, "job-d", 1);
	ingest_put_as(true, SEED_JOB, "job-e", 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) < 5 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(committed(POSTINGS), 5);
	assert_int_equal(stats(R0->owner).failures, 2);
	assert_true(announced("job-c"));
	assert_true(announced("job-d"));
	assert_true(announced("job-e"));
}

/*
 * What a member holds while its batch waits is bounded in bytes too: 30
 * junk messages of 100 kB (3 MB; ingest's rule rejects them) polled while
 * job-c's batch waits for the store, with a limit of 1 MiB, are held up to
 * it and given back past it, and every one of them is committed once job-c
 * is derived: nothing is lost by giving back. The batch itself keeps no
 * message bytes.
 */
static void
test_held_bytes_bounded(void **state)
{
	enum { JUNK = 30, JUNK_BYTES = 100 * 1000 };
	char *junk = malloc(JUNK_BYTES);
	char key[32];
	(void) state;

	assert_non_null(junk);
	memset(junk, 'x', JUNK_BYTES);
	G.held_bytes_max = 1u << 20;
	ingest_put(false, LEAD, 1);
	start_owner();
	produce_posting_as("job-c");
	lmt_sleep_ms(500);
	for (int i = 0; i < JUNK; i++) {
		snprintf(key, sizeof(key), "junk-%d", i);
		produce(POSTINGS, key, junk, JUNK_BYTES);
	}
	lmt_sleep_ms(2000);
	assert_int_equal(stats(R0->owner).messages, 0);
	uint64_t peak = stats(R0->owner).held_peak;
	if (peak == 0 || peak > G.held_bytes_max)
		fail_msg("held at most %llu bytes, limit %zu", (unsigned long long) peak,
		    G.held_bytes_max);
	ingest_put_as(true, SEED_JOB, "job-c", 1);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     committed(POSTINGS) < 1 + JUNK && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(committed(POSTINGS), 1 + JUNK);
	assert_true(announced("job-c"));
	assert_int_equal(stats(R0->owner).rejected, JUNK);
	assert_true(stats(R0->owner).held_peak <= G.held_bytes_max);
	free(junk);
}

/*
 * Messages the index alone cannot tell about (here puts of postings that
 * were deleted since: the index does not hold them) cost their batch one
 * question to the ingest group, not one each, LM_OWNER_PROBE_MS apart:
 * replaying a churned topic would crawl otherwise.
 */
static void
test_replay_asks_once(void **state)
{
	enum { GONE = 16 };
	char id[32];

	(void) state;
	/* One flush: one message set, which the mock cluster returns in one
	 * fetch, so that the messages make one batch. */
	for (int i = 0; i < GONE; i++) {
		ProtobufCMessage *m;
		uint8_t *buf = NULL;
		size_t len = 0;
		snprintf(id, sizeof(id), "job-gone-%d", i);
		m = sample_as(true, SEED_JOB, id, 1);
		assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
		assert_int_equal(
		    rd_kafka_producev(G.producer, RD_KAFKA_V_TOPIC(POSTINGS),
		        RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(id, strlen(id)),
		        RD_KAFKA_V_VALUE(buf, len),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	assert_int_equal(rd_kafka_flush(G.producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	/* Ingest is past them (the records deleted since): the group's
	 * offset, and the store's position, which joining reads too. */
	lm_store_txn *t = NULL;
	assert_int_equal(lm_ingest_positions_begin(R0->store, &t), LM_OK);
	assert_int_equal(lm_ingest_offset_put(t, POSTINGS, 0, 0, GONE), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	ingest_commit(POSTINGS, GONE);
	start_owner(); /* joining asks the ingest group too, and so does a
	                * postings batch for its cut */
	assert_true(wait_messages(R0->owner, GONE));
	assert_int_equal(stats(R0->owner).rejected, 0);
	/* About 6 (joining, the batch, its cut); one per message is over 16. */
	if (stats(R0->owner).probes >= GONE)
		fail_msg("%llu questions to the ingest group for %d messages",
		    (unsigned long long) stats(R0->owner).probes, GONE);
}

/*
 * A replica whose ingest has not stored the topics yet does not join the
 * events group: had it joined, its partitions would wait for its index and
 * stall everyone's events. It joins, and derives from the beginning (a new
 * events group), once its ingest group has committed the topics' ends.
 */
static void
test_join_after_catchup(void **state)
{
	(void) state;
	produce_record(true, SEED_JOB, 1);
	produce_record(false, LEAD, 1);
	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	/* Longer than a join of the mock cluster takes (about 3 s). */
	int64_t t0 = lm_clock_ms();
	lmt_sleep_ms(6000);
	assert_int_equal(stats(R0->owner).partitions, 0);
	assert_int_equal(stats(R0->owner).joined, 0);
	/* One member asks, one question per 200 ms (CATCHUP_PROBE_MS) at most:
	 * both asking would be twice that. */
	uint64_t asked = stats(R0->owner).probes;
	assert_true(asked >= 1);
	assert_true(asked <= (uint64_t) (lm_clock_ms() - t0) / 200 + 2);

	ingest_put(true, SEED_JOB, 1);
	ingest_put(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	ingest_commit(POSTINGS, 1);
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 2);
	assert_int_equal(stats(R0->owner).joined, 2);
	assert_true(wait_messages(R0->owner, 2));
	assert_true(enqueued() >= 1);
	assert_false(stats(R0->owner).failing);
}

/*
 * A store restored from an older copy: the ingest group has committed what
 * the newer store held, and until ingest sets its offsets back to the
 * store's (on its first assignment) they reach the topics' ends although
 * the store does not. The owner does not join while the store's own
 * positions fall short of the ends with messages in between; it joins,
 * and derives, once the store holds them.
 */
static void
test_join_waits_for_restored_store(void **state)
{
	lm_store_pos at = {.epoch = 0, .partition = 0, .offset = 0};
	lm_store_txn *t = NULL;
	(void) state;

	produce_record(true, SEED_JOB, 1);
	produce_record(false, LEAD, 1);
	/* The older copy holds the lead, and no posting yet. */
	assert_int_equal(lm_ingest_positions_begin(R0->store, &t), LM_OK);
	put_record(t, false, LEAD, NULL, 1, &at);
	assert_int_equal(lm_ingest_offset_put(t, PROFILES, 0, 0, 1), LM_OK);
	assert_int_equal(lm_ingest_offset_put(t, POSTINGS, 0, 0, 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	ingest_commit(PROFILES, 1);
	ingest_commit(POSTINGS, 1);

	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	/* Longer than a join of the mock cluster takes (about 3 s). */
	lmt_sleep_ms(6000);
	assert_true(stats(R0->owner).probes >= 1);
	assert_int_equal(stats(R0->owner).joined, 0);
	assert_int_equal(stats(R0->owner).partitions, 0);

	/* Ingest stores the posting. */
	assert_int_equal(lm_ingest_positions_begin(R0->store, &t), LM_OK);
	put_record(t, true, SEED_JOB, NULL, 1, &at);
	assert_int_equal(lm_ingest_offset_put(t, POSTINGS, 0, 0, 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 2);
	assert_int_equal(stats(R0->owner).joined, 2);
	assert_true(wait_messages(R0->owner, 2));
	assert_int_equal(events_of(SEED_JOB), 1);
	assert_false(stats(R0->owner).failing);
}

/*
 * A record written before its topic was created again (its position of an
 * earlier epoch than the topic's now, lm_store_pos) is old whatever its
 * offset: a new profile that fits such a posting announces the pair. The
 * owner used to compare the old offset (1000) with the new topic's
 * offsets, take the posting for one not yet claimed and leave the pair to
 * its owner, which never derives it again: no event at all.
 */
static void
test_old_epoch(void **state)
{
	lm_store_txn *t = NULL;
	lm_store_pos old = {.epoch = 0, .partition = 0, .offset = 1000};
	lm_store_pos now = {.epoch = 0, .partition = 0, .offset = 0};
	(void) state;

	start_r0();
	/* The postings topic is at epoch 1 now; the posting came from epoch 0. */
	assert_int_equal(lm_store_begin(R0->store, &t), LM_OK);
	assert_int_equal(lm_ingest_epoch_put(t, POSTINGS, 1), LM_OK);
	put_record(t, true, SEED_JOB, NULL, 1, &old);
	put_record(t, false, LEAD, NULL, 1, &now);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_true(index_holds(R0, SEED_JOB, 1));
	produce_record(false, LEAD, 1);
	ingest_commit(PROFILES, 1);
	assert_true(wait_messages(R0->owner, 1));
	assert_int_equal(enqueued(), 1);
	assert_int_equal(stats(R0->owner).deferred, 0);
	assert_false(stats(R0->owner).failing);
}

/* The id of the Kafka cluster at brokers, into id (LM_INGEST_CLUSTER_MAX
 * bytes at most, as a store keeps it). */
static void
cluster_id(const char *brokers, char *id)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk;
	char err[256], *cid;

	assert_int_equal(
	    lm_kafka_conf(brokers, "test-cluster-id", &conf, err, sizeof(err)), LM_OK);
	assert_non_null(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
	assert_non_null(cid = rd_kafka_clusterid(rk, WAIT_MS));
	snprintf(id, LM_INGEST_CLUSTER_MAX + 1, "%s", cid);
	rd_kafka_mem_free(rk, cid);
	rd_kafka_destroy(rk);
}

/* Records, as ingest's batches do, that the store's positions of kind k
 * come from topic of cluster (epoch 0). */
static void
store_source(lm_kind k, const char *topic, const char *cluster)
{
	lm_ingest_source src;
	lm_store_txn *t = NULL;

	memset(&src, 0, sizeof(src));
	snprintf(src.topic, sizeof(src.topic), "%s", topic);
	snprintf(src.cluster, sizeof(src.cluster), "%s", cluster);
	assert_int_equal(lm_store_begin(R0->store, &t), LM_OK);
	assert_int_equal(lm_ingest_source_put(t, k, &src), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/* Starts R0's follower and owner; true once the owner holds both topics'
 * partitions, false when it has not after ms. */
static bool
start_r0_within(int64_t ms)
{
	R0->owner = new_owner(R0);
	assert_int_equal(lm_follower_start(R0->follower), LM_OK);
	assert_int_equal(lm_owner_start(R0->owner), LM_OK);
	for (int64_t end = lm_clock_ms() + ms;
	     stats(R0->owner).partitions != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	return stats(R0->owner).partitions == 2;
}

/* Starts R0's owner, which refuses the store's source and stays out of the
 * events group: after longer than a join takes it owns nothing and has
 * derived and committed nothing. */
static void
assert_stays_out(void)
{
	assert_false(start_r0_within(6000));
	assert_true(stats(R0->owner).refused);
	assert_int_equal(stats(R0->owner).joined, 0);
	assert_int_equal(stats(R0->owner).messages, 0);
	assert_int_equal(enqueued(), 0);
	assert_true(committed(POSTINGS) < 0);
}

/* Once the store's source is its own, the refused owner joins and derives
 * the seed pair. */
static void
assert_joins(void)
{
	for (int64_t end = lm_clock_ms() + JOIN_MS;
	     stats(R0->owner).partitions != 2 && lm_clock_ms() < end;)
		lmt_sleep_ms(20);
	assert_int_equal(stats(R0->owner).partitions, 2);
	assert_int_equal(stats(R0->owner).joined, 2);
	assert_false(stats(R0->owner).refused);
	assert_true(wait_messages(R0->owner, 2));
	assert_true(enqueued() >= 1);
}

/*
 * The store's posting positions come from another topic than the one the
 * owner reads (LUNAMATCH_TOPIC_POSTINGS of ingest and of match differ): the
 * owner would compare them with its own topic's offsets and claims, and
 * announce pairs twice or never. It stays out of the events group, and
 * joins once the store's source is its topic (ingest reads it).
 */
static void
test_source_topic(void **state)
{
	char id[LM_INGEST_CLUSTER_MAX + 1];
	(void) state;

	cluster_id(G.brokers, id);
	store_source(LM_KIND_POSTING, "test.postings.old", id);
	store_source(LM_KIND_PROFILE, PROFILES, id);
	seed_pair();
	assert_stays_out();

	store_source(LM_KIND_POSTING, POSTINGS, id);
	assert_joins();
}

/*
 * The store was written from topics of the same names on another cluster
 * (LUNAMATCH_BROKERS of ingest and of match differ, a move half done): the
 * positions are the other cluster's offsets. The owner stays out of the
 * events group, and joins once the store's source is its cluster.
 */
static void
test_source_cluster(void **state)
{
	char id[LM_INGEST_CLUSTER_MAX + 1], other[LM_INGEST_CLUSTER_MAX + 1];
	(void) state;

	assert_non_null(G.mock2 = rd_kafka_mock_cluster_new(G.mock_rk, 1));
	cluster_id(rd_kafka_mock_cluster_bootstraps(G.mock2), other);
	cluster_id(G.brokers, id);
	assert_string_not_equal(id, other);
	store_source(LM_KIND_POSTING, POSTINGS, other);
	store_source(LM_KIND_PROFILE, PROFILES, other);
	seed_pair();
	assert_stays_out();

	store_source(LM_KIND_POSTING, POSTINGS, id);
	store_source(LM_KIND_PROFILE, PROFILES, id);
	assert_joins();
}

/*
 * A store that keeps no source (written before sources were kept, or
 * before ingest ran) is accepted: the owner joins at once.
 */
static void
test_source_none(void **state)
{
	(void) state;
	seed_pair();
	assert_true(start_r0_within(JOIN_MS));
	assert_joins();
}

/*
 * The events interrupted while the owner runs (shutdown does so before it
 * frees the owner): a derivation answers LM_ECLOSED, the batch is left
 * uncommitted to the next owner, and the member collects nothing more. It
 * used to keep the batch and add the next messages to it, past its
 * LM_OWNER_BATCH_MAX entries (a heap overflow the sanitizer build shows).
 */
static void
test_interrupted_events(void **state)
{
	char key[32];
	(void) state;

	start_r0();
	int64_t before = committed(POSTINGS);
	lm_events_interrupt(R0->events);
	/* Tombstones, in one go: the member polls them while its first batch
	 * waits, and holds them. */
	for (int i = 0; i < 2 * LM_OWNER_BATCH_MAX; i++) {
		snprintf(key, sizeof(key), "job-gone-%d", i);
		assert_int_equal(
		    rd_kafka_producev(G.producer, RD_KAFKA_V_TOPIC(POSTINGS),
		        RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, strlen(key)),
		        RD_KAFKA_V_VALUE(NULL, 0),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	assert_int_equal(rd_kafka_flush(G.producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	ingest_commit(POSTINGS, 2 * LM_OWNER_BATCH_MAX);
	lmt_sleep_ms(3000);
	assert_int_equal(stats(R0->owner).messages, 0);
	assert_int_equal(committed(POSTINGS), before);
}

/* How long the wake-up test's waits may sleep: far longer than a wake-up
 * takes to reach a waiter on a loaded machine, so that a waiter that
 * missed it cannot pass for one that got it. */
#define WAKE_WAIT_MS 10000

struct waker {
	lm_owner *ow;
	uint64_t seen;
	int64_t took_ms; /* how long its wait slept */
};

static void *
waker_main(void *arg)
{
	struct waker *w = arg;
	int64_t t0 = lm_clock_ms();

	lm_owner_wait_wake(w->ow, &w->seen, WAKE_WAIT_MS);
	w->took_ms = lm_clock_ms() - t0;
	return NULL;
}

/* An owner of R0 for a test that needs no group: created, never
 * started. */
static lm_owner *
idle_owner(void)
{
	lm_owner_opts o;
	lm_owner *ow = NULL;

	memset(&o, 0, sizeof(o));
	o.brokers = G.brokers;
	o.topic_postings = POSTINGS;
	o.topic_profiles = PROFILES;
	o.ingest_group_id = INGEST;
	o.store = R0->store;
	o.index = R0->idx;
	o.events = R0->events;
	o.rctx = &G.recs.ctx;
	assert_int_equal(lm_owner_new(&o, &ow), LM_OK);
	return ow;
}

/* One lm_owner_wake reaches every thread waiting for it (the two members
 * wait for the index at once: a flag the first one cleared left the other
 * asleep until its slice ended), and a thread that was not waiting when it
 * came (busy elsewhere, while another took the wake-up) returns from its
 * next wait at once. A wait with no wake-up since sleeps its time. */
static void
test_wake_reaches_every_waiter(void **state)
{
	lm_owner *ow = idle_owner();
	struct waker w[2] = {{ow, 0, -1}, {ow, 0, -1}};
	pthread_t th[2];
	uint64_t busy;
	int64_t t0;
	(void) state;

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, waker_main, &w[i]), 0);
	lmt_sleep_ms(200); /* asleep by now, mostly: either way they must wake */
	lm_owner_wake(ow);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].seen, 1);
		assert_true(w[i].took_ms < WAKE_WAIT_MS / 2);
	}

	/* A thread that has seen the first wake-up is busy while another
	 * waits and takes the second. */
	busy = w[0].seen;
	assert_int_equal(pthread_create(&th[1], NULL, waker_main, &w[1]), 0);
	lmt_sleep_ms(100);
	lm_owner_wake(ow);
	assert_int_equal(pthread_join(th[1], NULL), 0);
	assert_true(w[1].took_ms < WAKE_WAIT_MS / 2);
	t0 = lm_clock_ms();
	lm_owner_wait_wake(ow, &busy, WAKE_WAIT_MS);
	assert_true(lm_clock_ms() - t0 < WAKE_WAIT_MS / 2);
	assert_int_equal(busy, 2);

	/* Nothing new: the wait lasts its time. */
	t0 = lm_clock_ms();
	lm_owner_wait_wake(ow, &busy, 100);
	assert_true(lm_clock_ms() - t0 >= 90);
	assert_int_equal(busy, 2);
	lm_owner_free(ow);
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
	o.store = R0->store;
	o.index = R0->idx;
	o.events = R0->events;
	o.rctx = &G.recs.ctx;
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	o.topic_profiles = PROFILES;
	o.ingest_group_id = NULL;
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	/* A session no longer than the members' 1 s heartbeat, or past what
	 * Kafka takes, is refused as the other options are. */
	o.ingest_group_id = INGEST;
	o.session_ms = 1000;
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	assert_null(ow);
	o.session_ms = 999;
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	o.session_ms = 3600001;
	assert_int_equal(lm_owner_new(&o, &ow), LM_EINVAL);
	assert_null(ow);
	o.session_ms = 1001;
	assert_int_equal(lm_owner_new(&o, &ow), LM_OK);
	lm_owner_free(ow);
	lm_owner_free(NULL);
	lm_owner_wake(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_owner_sweeps_pairs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_owner_sweep_waits_for_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_content_type_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_held_bytes_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_claim_after_generation_change, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_disk_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_record_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_record_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_position, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_damaged_position_counted_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_damaged_position_of_posting, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_damaged_match_left_out, setup_top3, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_record_read_nomem_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_cut_commit_unknown_counted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handover, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_handover_claim_taken_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_replicas, setup_two, teardown),
	    cmocka_unit_test_setup_teardown(test_claim_left_reading, setup_two, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_claim_taken_back_while_read, setup_two, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_refused_claim_not_overtaken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_commit_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_derive_retry_serves_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_messages_counted_when_committed, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_undecided_message_read_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replay_asks_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_join_after_catchup, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_join_waits_for_restored_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_epoch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_topic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_cluster, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_source_none, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupted_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_wake_reaches_every_waiter, setup, teardown),
	};
	/* LMT_TEST_FILTER=test_damaged* runs some tests (a cmocka glob). */
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
