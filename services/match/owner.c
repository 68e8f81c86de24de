/*
 * owner.c - partition-owned event derivation; see owner.h.
 *
 * Two members of the events group per replica, one per topic, each with
 * its thread: the profiles member derives and commits without waiting for
 * the other side, the postings member waits for the profiles its cut holds
 * to be derived. Keeping them apart means the postings member can wait for
 * profile partitions this same replica owns.
 *
 * A member polls its consumer into a batch (at most LM_OWNER_BATCH_MAX
 * messages, ended early when the consumer has nothing more at once), waits
 * message by message until the index reflects it, writes its claim (and,
 * for postings, its cut), waits for the other side as owner.h describes,
 * derives the batch into the outbox and then commits its offsets, which
 * clears the claim. Every commit is synchronous, so the group sees a
 * partition's claims and commits in the order they were made. A revocation
 * that arrives while a batch is being collected drops the batch: its
 * offsets were not committed, so whoever owns the partitions next reads
 * those messages again. A batch whose claim cannot be written is dropped
 * and its partitions are rewound to it, with what was held of them while
 * it waited: nothing of a partition overtakes it. A commit that fails
 * after the derivation, and the taking back of a claim left without its
 * cut, are retried (settle) until they succeed or the partitions are
 * revoked, between batches and while a batch waits.
 *
 * Claims travel in the committed offset's metadata of each partition of
 * the batch: "lm1 <end>" while the cut is being read (postings) or for a
 * profiles batch, "lm1 <end> <o0>,<o1>,..." once a postings batch has its
 * cut (the profiles topic's log end offsets, one per partition, in
 * partition order). The committed offset itself stays at the batch's first
 * message, so nothing past it counts as derived.
 *
 * The probe handle is a consumer configured with the replica's ingest
 * group id that never subscribes: it only asks the group coordinator for
 * that group's committed offsets (rd_kafka_committed). The peek handle,
 * configured the same way, is assigned partitions before the owner joins,
 * to read whether messages lie where the store's own positions fall short
 * of the topics' ends (store_holds); neither ever commits. The peek is
 * destroyed once the owner joins.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "ingest.h"
#include "offsets.h"
#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/fault.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "owner.h"

#define POLL_MS          100  /* longest wait of one consumer poll */
#define WAIT_SLICE_MS    50   /* a waiting message is looked at least this often */
#define BUSY_RETRIES     40   /* LM_EBUSY derivations of a batch retried quietly */
#define CALL_TIMEOUT     5000 /* one committed-offsets, metadata or commit call */
#define SERVE_AFTER_MS   1000 /* a wait this long keeps serving the group */
#define CATCHUP_PROBE_MS 200  /* before joining: ingest's progress asked this often */
#define CLAIM_REREAD_MS  200  /* profiles: a claim waited for is read again this often */
#define CLAIM_TAG        "lm1"
#define CLAIM_MAX        (24 + 21 * LM_OWNER_PARTITIONS_MAX) /* metadata bytes */

_Static_assert(CLAIM_MAX <= 4096, "a claim must fit Kafka's offset metadata limit");

/* One message of the batch and what ingest's rule makes of it. */
/* A message of the batch: where it is and ingest's decision on it, without
 * its bytes (neither the message's nor the normalized record's), so that a
 * batch costs about a kilobyte a message whatever the messages' size. */
struct item {
	int32_t partition;
	int64_t offset;
	lm_ingest_decision d; /* bytes NULL */
};

/* Messages of a partition's derived batches whose commit is owed. */
struct owed_count {
	uint64_t n;        /* messages */
	uint64_t rejected; /* of them, rejected by ingest's rule */
};

/* A partition of the postings topic as the events group shows it. */
struct part_state {
	int64_t committed; /* messages before it are derived; 0 when none */
	int64_t claim_end; /* a claim covers [committed, claim_end); -1: none */
	int ncut;          /* partitions in the claim's cut; -1: no cut yet */
	int64_t *cut;      /* LM_OWNER_PARTITIONS_MAX entries; owned by the member */
};

struct member {
	lm_owner *ow;
	bool posting; /* consumes the postings topic */
	const char *topic, *other;
	rd_kafka_t *rk;
	rd_kafka_topic_t *other_rkt; /* for the other topic's partition count */
	pthread_t thread;
	bool started;
	atomic_int partitions;

	/* The member's thread only. */
	uint64_t wakes_seen; /* lm_owner_wait_wake: the wake-ups seen so far */
	struct item *batch;
	size_t n;
	lm_event_change *changes;
	int64_t last_probe;
	bool busy;                 /* the batch is being processed */
	bool revoked;              /* partitions revoked while busy: drop the batch */
	bool check_claims;         /* postings: look for claims left reading their cut */
	int64_t release_at;        /* postings: when to look again after a failure */
	int64_t release_backoff;   /* postings: pause after the next failed look */
	bool rebalancing;          /* the last claim met a rebalance of the group */
	bool rebalance_noted;      /* logged since the last claim written */
	rd_kafka_message_t **held; /* polled while waiting, for the next batch */
	size_t nheld;
	/* Commits past derived batches that failed, NULL when none: retried
	 * (settle) until they succeed, a claim of this member moves past them
	 * or the partitions are revoked. */
	rd_kafka_topic_partition_list_t *owed;
	struct owed_count *owed_count; /* per partition: counted once owed lands */
	int64_t owed_at;               /* when to retry them */
	int64_t owed_backoff;          /* pause after the next failed retry, ms */
	int64_t claim_backoff;         /* pause after the next failed claim, ms */
	int64_t decide_backoff;        /* pause after the next message not decided, ms */
	int32_t undecided_part;        /* the last message not decided, until it is */
	int64_t undecided_off;         /* (partition -1: none) */
	int ncut;                      /* postings: partitions of the batch's cut */
	int64_t *cut;                  /* postings: the batch's cut */
	int nstate;                    /* profiles: postings partitions in state */
	struct part_state *state;
	int64_t *need; /* offsets the index must reach, per partition */
	/* Per partition of the topic (-1: none): the end of the last claim
	 * this member committed while it held the partition (forgotten when
	 * it is revoked: another owner may then write a claim with the same
	 * end), and, kept across assignments, the offset below which pairs
	 * may have been announced already, by the owner of a claim this
	 * member found, by this member's own derivation of a batch whose
	 * commit may not have landed, or by anyone when the claims could not
	 * be read. A claim this member wrote for an attempt that failed
	 * before deriving announces nothing. */
	int64_t *own_end, *announced_end;
	int split_err; /* a store error that left a pair of the derivation
	                * undecided (position): the derivation is retried */
	/* Profiles, per partition (-1: none): the offset the consumer read the
	 * partition to (a PARTITION_EOF there), still to be committed. A
	 * transactional producer ends a partition in control records, which
	 * take offsets but are never delivered: the commits after the batches
	 * stop below them, while a postings batch's cut is the log end, past
	 * them. Committing the end once everything before it is derived is
	 * what lets that cut be reached (ends_commit). */
	int64_t *eof;
	int64_t *done_to; /* profiles: what the last commit of each partition
	                   * was at (-1: unknown); an end there is no news */
	int64_t ends_at;  /* when to retry a failed commit of the ends */
	int64_t sweep_at; /* postings: the next step of the pair-state sweep */
};

struct lm_owner {
	char *topic_postings, *topic_profiles;
	lm_store *store;
	lm_index *idx;
	lm_events *events;
	const lm_record_ctx *rctx;
	size_t held_bytes_max;
	bool (*index_loaded)(void *arg); /* lm_owner_opts */
	void *index_loaded_arg;

	struct member mem[2]; /* [0] postings, [1] profiles */
	rd_kafka_t *probe;    /* the ingest group's committed offsets */
	rd_kafka_t *peek;     /* before joining: messages past the store's
	                         positions (the postings member's thread; NULL
	                         once joined) */

	atomic_bool stop;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	/* Under mtx: lm_owner_wake calls so far. A count, not a flag, so that
	 * each thread sees every wake-up, however many wait or are busy
	 * elsewhere when it comes (lm_owner_wait_wake). */
	uint64_t wakes;

	_Atomic uint64_t messages, rejected, probes, failures, ahead, rebalances,
	    deferred, handover, skipped, damaged_pos;
	atomic_int joined; /* members subscribed to their topic */
	atomic_bool failing;
	atomic_bool caught_up; /* the ingest group has stored the topics once */
	atomic_bool refused;   /* the store's positions come from another
	                          topic or cluster: not joining (sources_ok) */
	/* The postings member's: what the last owner.source refused. */
	char refusal[32 + LM_INGEST_TOPIC_MAX + LM_INGEST_CLUSTER_MAX];
	atomic_uint fail_decides; /* lm_owner_fail_decides */
	atomic_size_t held_peak;  /* the most bytes a member held at once */
	int64_t start_ms;

	lm_counter *m_messages, *m_failures, *m_ahead, *m_deferred, *m_handover,
	    *m_skipped, *m_damaged_pos;
	lm_gauge *m_refused;
};

/* ---- batch ---------------------------------------------------------------- */

static void
batch_drop(struct member *m)
{
	for (size_t i = 0; i < m->n; i++)
		lm_ingest_decision_clear(&m->batch[i].d);
	m->n = 0;
}

static void
held_drop(struct member *m)
{
	for (size_t i = 0; i < m->nheld; i++)
		rd_kafka_message_destroy(m->held[i]);
	m->nheld = 0;
}

/* Counts n messages, rejected of them rejected by ingest's rule, whose
 * derivation and commit are done. */
static void
count_committed(lm_owner *ow, uint64_t n, uint64_t rejected)
{
	atomic_fetch_add(&ow->messages, n);
	atomic_fetch_add(&ow->rejected, rejected);
	lm_counter_add(ow->m_messages, n);
}

/* Counts the messages owed on partition p, whose commit has landed (by a
 * retry, or by a claim past them). */
static void
owed_landed(struct member *m, int32_t p)
{
	struct owed_count *c = &m->owed_count[p];

	count_committed(m->ow, c->n, c->rejected);
	c->n = c->rejected = 0;
}

/* Forgets the owed commits and their messages, uncounted: the commits
 * landed (counted by the caller) or are the next owner's to make. */
static void
owed_drop(struct member *m)
{
	if (m->owed != NULL) {
		for (int i = 0; i < m->owed->cnt; i++)
			m->owed_count[m->owed->elems[i].partition] =
			    (struct owed_count){0, 0};
		rd_kafka_topic_partition_list_destroy(m->owed);
	}
	m->owed = NULL;
	m->owed_backoff = LM_OWNER_RETRY_MIN_MS;
}

/* Remembers the commits of l, which failed, to be retried after the
 * back-off: each partition at the furthest offset it is owed. */
static void
owed_add(struct member *m, const rd_kafka_topic_partition_list_t *l)
{
	if (m->owed == NULL) {
		m->owed = rd_kafka_topic_partition_list_new(l->cnt);
		m->owed_at = lm_clock_ms() + m->owed_backoff;
	}
	for (int i = 0; i < l->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &l->elems[i];
		rd_kafka_topic_partition_t *o =
		    rd_kafka_topic_partition_list_find(m->owed, tp->topic, tp->partition);
		if (o == NULL)
			rd_kafka_topic_partition_list_add(
			    m->owed, tp->topic, tp->partition)
			    ->offset = tp->offset;
		else if (tp->offset > o->offset)
			o->offset = tp->offset;
	}
}

/* Forgets the owed commits of the partitions of l, which this member has
 * just committed at an offset at least as far (a claim starts where the
 * last batch of its partition ended, or later), and counts their
 * messages. */
static void
owed_forget(struct member *m, const rd_kafka_topic_partition_list_t *l)
{
	if (m->owed == NULL)
		return;
	for (int i = 0; i < l->cnt; i++)
		if (rd_kafka_topic_partition_list_del(
		        m->owed, l->elems[i].topic, l->elems[i].partition))
			owed_landed(m, l->elems[i].partition);
	if (m->owed->cnt == 0)
		owed_drop(m);
}

/* Forgets the end read of partition p (every partition: p < 0): messages
 * before it are to be read again, or the partition is not ours. */
static void
ends_forget(struct member *m, int32_t p)
{
	if (m->eof == NULL)
		return;
	for (int32_t q = 0; q < LM_OWNER_PARTITIONS_MAX; q++)
		if (p < 0 || q == p)
			m->eof[q] = m->done_to[q] = -1;
}

/* Notes the commits of l, which landed. */
static void
ends_done(struct member *m, const rd_kafka_topic_partition_list_t *l)
{
	if (m->done_to == NULL)
		return;
	for (int i = 0; i < l->cnt; i++)
		if (l->elems[i].partition >= 0 &&
		    l->elems[i].partition < LM_OWNER_PARTITIONS_MAX)
			m->done_to[l->elems[i].partition] = l->elems[i].offset;
}

/* Notes the end of partition p read (a PARTITION_EOF at offset end). */
static void
ends_note(struct member *m, int32_t p, int64_t end)
{
	if (m->eof != NULL && p >= 0 && p < LM_OWNER_PARTITIONS_MAX && end >= 0)
		m->eof[p] = end;
}

/* The batch's partitions, each at the offset of its first message in the
 * batch (first) or after its last one (!first). */
static rd_kafka_topic_partition_list_t *
batch_offsets(const struct member *m, bool first)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new((int) m->n);

	for (size_t i = 0; i < m->n; i++) {
		const struct item *msg = &m->batch[i];
		rd_kafka_topic_partition_t *tp =
		    rd_kafka_topic_partition_list_find(l, m->topic, msg->partition);
		if (tp == NULL) {
			tp = rd_kafka_topic_partition_list_add(
			    l, m->topic, msg->partition);
			tp->offset = first ? msg->offset : msg->offset + 1;
		} else if (first ? msg->offset < tp->offset
		                 : msg->offset + 1 > tp->offset) {
			tp->offset = first ? msg->offset : msg->offset + 1;
		}
	}
	return l;
}

/* ---- Kafka ---------------------------------------------------------------- */

static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct member *m = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		atomic_fetch_add(&m->ow->rebalances, 1);
		atomic_store(&m->partitions, parts->cnt);
		lm_info("owner.assign", "now owning %d partitions of %s", parts->cnt,
		    m->topic);
		ends_forget(m, -1);
		rd_kafka_assign(rk, parts);
		m->check_claims = m->posting;
		m->release_at = 0;
		m->release_backoff = LM_OWNER_RETRY_MIN_MS;
		return;
	}
	/* Revoked (or an error): what was collected is not ours any more; its
	 * claim stays for the next owner to see. A batch being processed is
	 * dropped by process() (the decision strings are in use). */
	if (m->n > 0)
		lm_info("owner.revoke", "%zu collected messages left to the next owner",
		    m->n);
	if (m->busy) {
		m->revoked = true;
	} else {
		batch_drop(m);
		held_drop(m);
	}
	/* The commits still owed are the next owner's to make: it finds the
	 * claims they would have cleared and derives those batches again. */
	owed_drop(m);
	ends_forget(m, -1);
	for (int i = 0; parts != NULL && i < parts->cnt; i++)
		if (parts->elems[i].partition >= 0 &&
		    parts->elems[i].partition < LM_OWNER_PARTITIONS_MAX)
			m->own_end[parts->elems[i].partition] = -1;
	if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
		lm_warn("owner.rebalance", "rebalance error: %s", rd_kafka_err2name(err));
	atomic_store(&m->partitions, 0);
	rd_kafka_assign(rk, NULL);
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void) rk;
	(void) opaque;
	lm_warn("owner.kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t) err),
	    reason);
}

/* A consumer in group; with m, that member's consumer of the shared group.
 * With eof it is told when it reaches the end of a partition
 * (RD_KAFKA_RESP_ERR__PARTITION_EOF). */
static int
make_consumer(const lm_owner_opts *o, const char *group, struct member *m, bool eof,
    rd_kafka_t **out)
{
	rd_kafka_conf_t *conf = NULL;
	char err[512], session[32], heartbeat[32];
	int rc;

	*out = NULL;
	snprintf(session, sizeof(session), "%u",
	    o->session_ms != 0 ? o->session_ms : (unsigned) LM_OWNER_SESSION_MS);
	snprintf(heartbeat, sizeof(heartbeat), "%d", LM_OWNER_HEARTBEAT_MS);
	if ((rc = lm_kafka_conf(o->brokers,
	         o->client_id != NULL ? o->client_id : "lunamatch-match-events", &conf,
	         err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "group.id", group, err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "enable.auto.commit", "false", err, sizeof(err))) !=
	        LM_OK ||
	    (rc = lm_kafka_set(
	         conf, "enable.auto.offset.store", "false", err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(
	         conf, "auto.offset.reset", "earliest", err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "session.timeout.ms", session, err, sizeof(err))) !=
	        LM_OK ||
	    (rc = lm_kafka_set(
	         conf, "heartbeat.interval.ms", heartbeat, err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "fetch.message.max.bytes", "1048576", err,
	         sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "fetch.wait.max.ms", LM_KAFKA_FETCH_WAIT_MS, err,
	         sizeof(err))) != LM_OK) {
		lm_error("owner.config", "%s", err);
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	if (eof && (rc = lm_kafka_set(conf, "enable.partition.eof", "true", err,
	                sizeof(err))) != LM_OK) {
		lm_error("owner.config", "%s", err);
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	rd_kafka_conf_set_opaque(conf, m);
	/* Only the members poll their handle: an error callback on the probe,
	 * which nothing polls, would queue every error for good (librdkafka
	 * logs them instead). */
	if (m != NULL) {
		rd_kafka_conf_set_error_cb(conf, error_cb);
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	}
	if ((*out = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) == NULL) {
		lm_error("owner.kafka", "cannot create a consumer: %s", err);
		rd_kafka_conf_destroy(conf);
		return LM_EKAFKA;
	}
	return LM_OK;
}

/* The number of partitions of m's other topic (at most
 * LM_OWNER_PARTITIONS_MAX); -1 when unknown. */
static int
other_partitions(struct member *m)
{
	const struct rd_kafka_metadata *md = NULL;
	int n = -1;

	if (rd_kafka_metadata(m->rk, 0, m->other_rkt, &md, CALL_TIMEOUT) !=
	        RD_KAFKA_RESP_ERR_NO_ERROR ||
	    md == NULL)
		return -1;
	if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
		n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	if (n > LM_OWNER_PARTITIONS_MAX) {
		lm_error("owner.partitions", "%s has %d partitions, more than %d",
		    m->other, n, LM_OWNER_PARTITIONS_MAX);
		return -1;
	}
	return n;
}

/* A list of partitions 0..n-1 of topic. */
static rd_kafka_topic_partition_list_t *
all_partitions(const char *topic, int n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	for (int p = 0; p < n; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	return l;
}

/* ---- claims ------------------------------------------------------------------ */

/* Parses the metadata of partition tp into st (st->cut has room for
 * LM_OWNER_PARTITIONS_MAX offsets). Anything that is not a claim is none. */
static void
parse_claim(const rd_kafka_topic_partition_t *tp, struct part_state *st)
{
	char buf[CLAIM_MAX + 1], *p, *end;
	long long v;

	st->committed = tp->offset >= 0 ? tp->offset : 0;
	st->claim_end = -1;
	st->ncut = -1;
	if (tp->metadata == NULL || tp->metadata_size == 0 ||
	    tp->metadata_size > CLAIM_MAX)
		return;
	memcpy(buf, tp->metadata, tp->metadata_size);
	buf[tp->metadata_size] = '\0';
	if (strncmp(buf, CLAIM_TAG " ", sizeof(CLAIM_TAG)) != 0)
		return;
	p = buf + sizeof(CLAIM_TAG);
	v = strtoll(p, &end, 10);
	if (end == p || v < 0 || (*end != '\0' && *end != ' '))
		return;
	st->claim_end = v;
	if (*end == '\0')
		return;
	for (int n = 0; n < LM_OWNER_PARTITIONS_MAX; n++) {
		p = end + 1;
		v = strtoll(p, &end, 10);
		if (end == p || v < 0 || (*end != '\0' && *end != ',')) {
			st->claim_end = -1; /* malformed: not a claim */
			return;
		}
		st->cut[n] = v;
		if (*end == '\0') {
			st->ncut = n + 1;
			return;
		}
	}
	st->claim_end = -1;
}

/* Reads the events group's state of partitions 0..n-1 of topic into st
 * (n <= LM_OWNER_PARTITIONS_MAX). */
static int
read_states(struct member *m, const char *topic, int n, struct part_state *st)
{
	rd_kafka_topic_partition_list_t *l = all_partitions(topic, n);
	rd_kafka_resp_err_t e = rd_kafka_committed(m->rk, l, CALL_TIMEOUT);
	int rc = LM_OK;

	for (int i = 0; i < l->cnt && e == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
		if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
			e = l->elems[i].err;
		else
			parse_claim(&l->elems[i], &st[l->elems[i].partition]);
	}
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_warn("owner.state", "committed offsets of %s: %s", topic,
		    rd_kafka_err2name(e));
		rc = lm_kafka_err(e);
	}
	rd_kafka_topic_partition_list_destroy(l);
	return rc;
}

/* Raises partition p's announced_end to end. */
static void
raise_announced(struct member *m, int32_t p, int64_t end)
{
	if (end > m->announced_end[p])
		m->announced_end[p] = end;
}

/* Whether pairs of the batch's messages may have been announced already
 * (see announced_end): they are derived again, and what they announce may
 * repeat. A claim whose end is the one this member last wrote is its own;
 * another owner's claim counts from the first look, which comes before
 * this member writes its own over it. A partition whose claim cannot be
 * read counts as claimed up to the batch's end. */
static bool
may_repeat(struct member *m)
{
	rd_kafka_topic_partition_list_t *l = batch_offsets(m, true),
	                                *end = batch_offsets(m, false);
	int64_t first[LM_OWNER_PARTITIONS_MAX], cut[LM_OWNER_PARTITIONS_MAX];
	struct part_state st;
	bool found = false, read;

	st.cut = cut;
	for (int i = 0; i < l->cnt; i++)
		first[l->elems[i].partition] = l->elems[i].offset;
	read = rd_kafka_committed(m->rk, l, CALL_TIMEOUT) == RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; i < l->cnt; i++) {
		int32_t p = l->elems[i].partition;
		if (!read || l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			raise_announced(m, p, end->elems[i].offset);
			continue;
		}
		parse_claim(&l->elems[i], &st);
		if (st.claim_end >= 0 && st.claim_end != m->own_end[p])
			raise_announced(m, p, st.claim_end);
	}
	for (int i = 0; i < l->cnt && !found; i++)
		found = first[l->elems[i].partition] <
		        m->announced_end[l->elems[i].partition];
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_topic_partition_list_destroy(end);
	return found;
}

/*
 * Postings: takes back the claims that are still reading their cut on the
 * partitions this member owns, between two batches (after an assignment or
 * a failed batch). Such a claim was left by an owner that died between its
 * two claim commits, or by this member when its cut could not be read or
 * written: an owner polls, and so can lose a partition while alive, only
 * once its cut is written. Nothing of its batch was derived. Left in
 * place, it holds every profiles batch in resolve_reading until the
 * partition is claimed again, and this member would not get to that
 * partition while a batch of another one waits for those profiles
 * (wait_cut_derived): neither side would move. The committed offset is
 * written again without the claim; the messages are claimed again, with a
 * cut read later, when their turn comes. Returns whether every owned
 * partition was looked at and every such claim taken back; a failure is
 * logged, and settle tries again until it succeeds or the partitions are
 * revoked.
 */
static bool
release_reading_claims(struct member *m)
{
	rd_kafka_topic_partition_list_t *l = NULL, *stale = NULL;
	struct part_state st;
	int64_t cut[LM_OWNER_PARTITIONS_MAX];
	rd_kafka_resp_err_t e;

	st.cut = cut;
	if ((e = rd_kafka_assignment(m->rk, &l)) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    l->cnt == 0 ||
	    (e = rd_kafka_committed(m->rk, l, CALL_TIMEOUT)) !=
	        RD_KAFKA_RESP_ERR_NO_ERROR)
		goto out;
	stale = rd_kafka_topic_partition_list_new(l->cnt);
	for (int i = 0; i < l->cnt; i++) {
		if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			e = l->elems[i].err; /* looked at again next time */
			continue;
		}
		parse_claim(&l->elems[i], &st);
		if (st.claim_end >= 0 && st.ncut < 0)
			rd_kafka_topic_partition_list_add(
			    stale, l->elems[i].topic, l->elems[i].partition)
			    ->offset = st.committed;
	}
	if (stale->cnt > 0) {
		rd_kafka_resp_err_t ce = rd_kafka_commit(m->rk, stale, 0);
		if (ce == RD_KAFKA_RESP_ERR_NO_ERROR)
			lm_info("owner.claim",
			    "took back %d claims of %s left without their cut",
			    stale->cnt, m->topic);
		else
			e = ce;
	}
out:
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_warn("owner.claim",
		    "cannot look for claims left without their cut: %s; retrying in "
		    "%lld ms",
		    rd_kafka_err2name(e), (long long) m->release_backoff);
	if (stale != NULL)
		rd_kafka_topic_partition_list_destroy(stale);
	if (l != NULL)
		rd_kafka_topic_partition_list_destroy(l);
	return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/*
 * Makes up, once their back-off has passed, for what failed between
 * batches: the owed commits past derived batches and (postings) the look
 * for claims left without their cut that an assignment or a failed batch
 * asked for. Each is retried, with a pause from LM_OWNER_RETRY_MIN_MS
 * doubling up to LM_OWNER_RETRY_MAX_MS, until it succeeds or the
 * partitions are revoked: between batches (the member polls at least
 * every POLL_MS) and while a batch waits (serve), so neither waits for new
 * messages. Safe while a batch is claimed: a claim forgets the owed
 * commits of its partitions, and the look takes back only claims without
 * a cut, which a batch that waits no longer has.
 */
static void
settle(struct member *m)
{
	int64_t now = lm_clock_ms();
	rd_kafka_resp_err_t e;

	if (m->owed != NULL && now >= m->owed_at) {
		if ((e = rd_kafka_commit(m->rk, m->owed, 0)) ==
		    RD_KAFKA_RESP_ERR_NO_ERROR) {
			lm_info("owner.commit",
			    "committed %d partitions of %s after a failure", m->owed->cnt,
			    m->topic);
			for (int i = 0; i < m->owed->cnt; i++)
				owed_landed(m, m->owed->elems[i].partition);
			owed_drop(m);
		} else {
			lm_warn("owner.commit",
			    "commit failed again: %s; retrying in %lld ms",
			    rd_kafka_err2name(e), (long long) m->owed_backoff);
			m->owed_at = lm_clock_ms() + m->owed_backoff;
			m->owed_backoff = lm_backoff_next(m->owed_backoff,
			    LM_OWNER_RETRY_MIN_MS, LM_OWNER_RETRY_MAX_MS);
		}
	}
	if (m->check_claims && now >= m->release_at) {
		if (release_reading_claims(m)) {
			m->check_claims = false;
			m->release_backoff = LM_OWNER_RETRY_MIN_MS;
		} else {
			m->release_at = lm_clock_ms() + m->release_backoff;
			m->release_backoff = lm_backoff_next(m->release_backoff,
			    LM_OWNER_RETRY_MIN_MS, LM_OWNER_RETRY_MAX_MS);
		}
	}
}

/* Whether a commit that failed with e may have been stored all the same:
 * its answer did not come (a timeout, a lost connection), as opposed to a
 * refusal the coordinator answered. */
static bool
landed_unknown(rd_kafka_resp_err_t e)
{
	return (e < 0 && e != RD_KAFKA_RESP_ERR__NO_OFFSET &&
	           e != RD_KAFKA_RESP_ERR__STATE) ||
	       e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT ||
	       e == RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION;
}

/* Commits the batch's claim: every partition of the batch at its first
 * message, with the end of the batch and, when ncut >= 0, the cut. */
static int
write_claim(struct member *m, const int64_t *cut, int ncut)
{
	rd_kafka_topic_partition_list_t *first = batch_offsets(m, true),
	                                *end = batch_offsets(m, false);
	rd_kafka_resp_err_t e;
	char meta[CLAIM_MAX + 1];

	for (int i = 0; i < first->cnt; i++) {
		size_t len = (size_t) snprintf(
		    meta, sizeof(meta), "%s %" PRId64, CLAIM_TAG, end->elems[i].offset);
		for (int k = 0; k < ncut; k++)
			len += (size_t) snprintf(meta + len, sizeof(meta) - len,
			    "%c%" PRId64, k == 0 ? ' ' : ',', cut[k]);
		first->elems[i].metadata = strdup(meta);
		first->elems[i].metadata_size = first->elems[i].metadata ? len : 0;
	}
	e = rd_kafka_commit(m->rk, first, 0);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
		owed_forget(m, first);
		for (int i = 0; i < end->cnt; i++)
			m->own_end[end->elems[i].partition] = end->elems[i].offset;
	} else if (ncut >= 0 && landed_unknown(e)) {
		/* The claim with the cut may stand: the profiles' owners may
		 * have announced pairs by it that the batch, claimed again with
		 * a later cut, announces again. */
		lm_warn("owner.claim",
		    "the claim of %zu messages with its cut may have been stored: "
		    "what they announce is counted as a hand-over",
		    m->n);
		for (int i = 0; i < end->cnt; i++)
			raise_announced(m, end->elems[i].partition, end->elems[i].offset);
	}
	rd_kafka_topic_partition_list_destroy(first);
	rd_kafka_topic_partition_list_destroy(end);
	/* A rebalance of the group (a member joins or leaves) refuses commits
	 * until it ends, and a member the group moved on from (a generation
	 * ended, the member timed out) until it has joined again, which
	 * librdkafka does by itself: the batch waits for the new assignment. */
	if (e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
	    e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
	    e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID) {
		if (!m->rebalance_noted)
			lm_info("owner.claim",
			    "the group is rebalancing: the claim of %zu messages "
			    "waits for it",
			    m->n);
		m->rebalancing = m->rebalance_noted = true;
		return LM_EBUSY;
	}
	m->rebalance_noted = false;
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_warn("owner.claim", "cannot commit the claim of %zu messages: %s",
		    m->n, rd_kafka_err2name(e));
		return lm_kafka_err(e);
	}
	return LM_OK;
}

/* The cut: the log end offset of every partition of the profiles topic. */
static int
read_cut(struct member *m)
{
	rd_kafka_topic_partition_list_t *l;
	int n = other_partitions(m), rc, bad;

	if (n < 0)
		return LM_EKAFKA;
	if (n == 0) {
		m->ncut = 0;
		return LM_OK;
	}
	l = all_partitions(m->other, n);
	rc = lm_kafka_list_offsets(m->rk, l, RD_KAFKA_OFFSET_END, CALL_TIMEOUT, &bad);
	for (int i = 0; i < n && rc == LM_OK; i++)
		m->cut[l->elems[i].partition] =
		    l->elems[i].offset >= 0 ? l->elems[i].offset : 0;
	if (rc != LM_OK)
		lm_warn("owner.cut", "log end offsets of %s: %s", m->other,
		    bad >= 0 ? rd_kafka_err2name(l->elems[bad].err) : lm_strerror(rc));
	m->ncut = rc == LM_OK ? n : 0;
	rd_kafka_topic_partition_list_destroy(l);
	return rc;
}

/* Seeks the consumer back to the offsets of l. A partition that cannot be
 * sought (one revoked meanwhile, or a failing consumer) is logged: its
 * position stays where it was. */
static void
seek_back(struct member *m, rd_kafka_topic_partition_list_t *l)
{
	rd_kafka_error_t *err = rd_kafka_seek_partitions(m->rk, l, LM_KAFKA_SEEK_WAIT);

	if (err != NULL) {
		lm_warn("owner.rewind", "%s", rd_kafka_error_string(err));
		rd_kafka_error_destroy(err);
		return;
	}
	for (int i = 0; i < l->cnt; i++)
		if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
			lm_warn("owner.rewind",
			    "partition %d of %s to offset %" PRId64 ": %s",
			    (int) l->elems[i].partition, m->topic, l->elems[i].offset,
			    rd_kafka_err2name(l->elems[i].err));
}

/* Gives the batch up: its partitions are rewound to its first messages.
 * The messages held (serve) of those partitions follow the batch and are
 * dropped, to be read again after it: nothing of a partition is claimed,
 * derived or committed before the batch that was given up. Held messages
 * of other partitions stay. */
static void
rewind_batch(struct member *m)
{
	rd_kafka_topic_partition_list_t *l = batch_offsets(m, true);
	size_t kept = 0;

	for (size_t i = 0; i < m->nheld; i++) {
		if (rd_kafka_topic_partition_list_find(
		        l, m->topic, m->held[i]->partition) != NULL)
			rd_kafka_message_destroy(m->held[i]);
		else
			m->held[kept++] = m->held[i];
	}
	m->nheld = kept;
	for (int i = 0; i < l->cnt; i++)
		ends_forget(m, l->elems[i].partition);
	seek_back(m, l);
	rd_kafka_topic_partition_list_destroy(l);
	batch_drop(m);
}

/* ---- readiness -------------------------------------------------------------- */

/* The version of (posting, id) in the index; false when it is not there. */
static bool
index_version(lm_owner *ow, bool posting, const char *id, uint64_t *version)
{
	return lm_index_record_version(ow->idx, posting, id, version) == LM_OK;
}

/* Whether the index shows the message's effect by itself. */
static bool
visible(lm_owner *ow, const struct item *it)
{
	uint64_t v = 0;
	bool has = index_version(ow, it->d.kind == LM_KIND_POSTING, it->d.id, &v);

	if (it->d.action == LM_INGEST_DELETE)
		return !has;
	return has && v >= it->d.version;
}

/*
 * Whether the group of consumer rk has committed, on every partition p of
 * topic in 0..n-1, at least need[p] (need[p] <= 0 asks nothing). On false
 * *behind is a partition that is not there yet, unless the call itself
 * failed (logged at debug as what).
 */
static bool
committed_at_least(rd_kafka_t *rk, const char *topic, int n, const int64_t *need,
    int *behind, const char *what)
{
	rd_kafka_topic_partition_list_t *l = all_partitions(topic, n);
	rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, CALL_TIMEOUT);
	bool done = e == RD_KAFKA_RESP_ERR_NO_ERROR;

	for (int i = 0; i < l->cnt && done; i++) {
		const rd_kafka_topic_partition_t *tp = &l->elems[i];
		int64_t want = need[tp->partition];
		done = want <= 0 ||
		       (tp->err == RD_KAFKA_RESP_ERR_NO_ERROR && tp->offset >= want);
		if (!done)
			*behind = tp->partition;
	}
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_debug("owner.probe", "committed offsets of the %s: %s", what,
		    rd_kafka_err2name(e));
	rd_kafka_topic_partition_list_destroy(l);
	return done;
}

/*
 * Asks the ingest group whether it has committed, on every partition p of
 * topic in 0..n-1, at least need[p]. On true *seq is the store's last
 * change seq read after the answer: once the index has applied it, the
 * index reflects every message before those offsets.
 */
static bool
ingest_passed(lm_owner *ow, const char *topic, int n, const int64_t *need, uint64_t *seq,
    int *behind)
{
	atomic_fetch_add(&ow->probes, 1);
	return committed_at_least(ow->probe, topic, n, need, behind, "ingest group") &&
	       lm_store_last_seq(ow->store, seq) == LM_OK;
}

/* Whether the events group has committed at least need[p] on every
 * partition p of topic in 0..n-1: the messages before are derived. */
static bool
derived_up_to(
    struct member *m, const char *topic, int n, const int64_t *need, int *behind)
{
	return committed_at_least(m->rk, topic, n, need, behind, "events group");
}

void
lm_owner_wait_wake(lm_owner *ow, uint64_t *seen, int64_t ms)
{
	struct timespec ts = lm_clock_deadline(ms);

	pthread_mutex_lock(&ow->mtx);
	while (ow->wakes == *seen && !atomic_load(&ow->stop))
		if (pthread_cond_timedwait(&ow->cv, &ow->mtx, &ts) == ETIMEDOUT)
			break;
	*seen = ow->wakes;
	pthread_mutex_unlock(&ow->mtx);
}

/* Sleeps until woken or WAIT_SLICE_MS passed. A wake-up that came since
 * the member's last wait (while it looked at what it waits for, or was
 * busy elsewhere) ends the sleep at once: it may have changed what the
 * member looked at. */
static void
wait_slice(struct member *m)
{
	lm_owner_wait_wake(m->ow, &m->wakes_seen, WAIT_SLICE_MS);
}

/* Stops both members: they leave their loops at the next check. */
static void
stop_all(lm_owner *ow)
{
	pthread_mutex_lock(&ow->mtx);
	atomic_store(&ow->stop, true);
	pthread_cond_broadcast(&ow->cv);
	pthread_mutex_unlock(&ow->mtx);
}

/* Sleeps ms, or until the owner stops. */
static void
pause_for(struct member *m, int64_t ms)
{
	for (int64_t end = lm_clock_ms() + ms;
	     lm_clock_ms() < end && !atomic_load(&m->ow->stop);)
		wait_slice(m);
}

/* Logs once that a wait that began at since has lasted LM_OWNER_WAIT_NOTE_MS,
 * naming what it waits for and the partition of topic behind. */
static void
note_wait(struct member *m, int64_t since, bool *noted, const char *what,
    const char *topic, int behind)
{
	if (*noted || lm_clock_ms() - since < LM_OWNER_WAIT_NOTE_MS)
		return;
	*noted = true;
	lm_warn("owner.wait",
	    "a batch of %zu %s messages has waited %lld ms for %s "
	    "(partition %d of %s)",
	    m->n, m->posting ? "postings" : "profiles",
	    (long long) (lm_clock_ms() - since), what, behind, topic);
}

/* Bytes msg holds of what the topic gave (key and value). */
static size_t
msg_bytes(const rd_kafka_message_t *msg)
{
	return msg->len + msg->key_len;
}

/* Bytes of the held messages (at most LM_OWNER_BATCH_MAX of them). */
static size_t
held_bytes(const struct member *m)
{
	size_t b = 0;

	for (size_t i = 0; i < m->nheld; i++)
		b += msg_bytes(m->held[i]);
	return b;
}

/* Holds msg for the next batch (room checked by the caller). */
static void
hold(struct member *m, rd_kafka_message_t *msg)
{
	size_t b, peak;

	m->held[m->nheld++] = msg;
	b = held_bytes(m);
	peak = atomic_load(&m->ow->held_peak);
	while (b > peak && !atomic_compare_exchange_weak(&m->ow->held_peak, &peak, b))
		;
}

/* Gives msg and the held messages back (they do not fit, or msg cannot be
 * decided): each of their partitions is rewound to the earliest of them. */
static void
give_back(struct member *m, rd_kafka_message_t *msg)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);

	m->held[m->nheld++] = msg;
	for (size_t i = 0; i < m->nheld; i++) {
		const rd_kafka_message_t *h = m->held[i];
		rd_kafka_topic_partition_t *tp =
		    rd_kafka_topic_partition_list_find(l, m->topic, h->partition);
		if (tp == NULL)
			rd_kafka_topic_partition_list_add(l, m->topic, h->partition)
			    ->offset = h->offset;
		else if (h->offset < tp->offset)
			tp->offset = h->offset;
		ends_forget(m, h->partition);
	}
	held_drop(m);
	seek_back(m, l);
	rd_kafka_topic_partition_list_destroy(l);
}

/*
 * Keeps the member in the group while it waits for another one: a
 * rebalance needs every member to serve it, and the one waited for may
 * only make progress after one. The messages the consumer returns
 * meanwhile are held for the next batch (at most LM_OWNER_BATCH_MAX, and
 * LM_OWNER_HELD_BYTES_MAX bytes; past that they are given back). A wait that began at
 * since and is shorter than SERVE_AFTER_MS is left alone (a rebalance can wait that
 * long). Partitions are never paused: librdkafka can lose an assignment that races with a
 * pause or resume. Returns LM_OK, or LM_ESTALE when the batch's partitions were revoked.
 */
static int
serve(struct member *m, int64_t since)
{
	rd_kafka_message_t *msg;

	settle(m);
	if (lm_clock_ms() - since < SERVE_AFTER_MS)
		return LM_OK;
	while (!m->revoked && (msg = rd_kafka_consumer_poll(m->rk, 0)) != NULL) {
		if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && !m->revoked)
			ends_note(m, msg->partition, msg->offset);
		if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR || m->revoked)
			rd_kafka_message_destroy(msg);
		else if (m->nheld + 1 >= LM_OWNER_BATCH_MAX ||
		         held_bytes(m) + msg_bytes(msg) > m->ow->held_bytes_max)
			give_back(m, msg);
		else
			hold(m, msg);
	}
	return m->revoked ? LM_ESTALE : LM_OK;
}

/* What the batch's wait for the index has learnt from the ingest group:
 * its committed offset of every partition of the batch (got, -1 where
 * unknown) and the store's last change seq read after that answer. Once
 * the index has applied seq, it reflects every message of partition p
 * below got[p]. One answer serves every message of the batch that the
 * index alone cannot tell about, so that a batch of them (replayed
 * history: puts of records deleted since, tombstones of records created
 * again) costs one question, not one each. */
struct batch_view {
	int64_t got[LM_OWNER_PARTITIONS_MAX];
	int n; /* partitions 0 .. n-1 asked: every partition of the batch */
	uint64_t seq;
};

static void
batch_view_init(const struct member *m, struct batch_view *bv)
{
	bv->n = 0;
	bv->seq = 0;
	/* take() kept every partition below LM_OWNER_PARTITIONS_MAX. */
	for (size_t i = 0; i < m->n; i++)
		if (m->batch[i].partition + 1 > bv->n)
			bv->n = m->batch[i].partition + 1;
	for (int p = 0; p < bv->n; p++)
		bv->got[p] = -1;
}

/* Asks the ingest group for its committed offsets of the batch's
 * partitions into bv (all -1 when the call or the seq read fails). */
static void
batch_view_ask(struct member *m, struct batch_view *bv)
{
	lm_owner *ow = m->ow;
	rd_kafka_topic_partition_list_t *l = all_partitions(m->topic, bv->n);
	rd_kafka_resp_err_t e;
	uint64_t seq = 0;

	atomic_fetch_add(&ow->probes, 1);
	for (int p = 0; p < bv->n; p++)
		bv->got[p] = -1;
	e = rd_kafka_committed(ow->probe, l, CALL_TIMEOUT);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_debug("owner.probe", "committed offsets of the ingest group: %s",
		    rd_kafka_err2name(e));
	else if (lm_store_last_seq(ow->store, &seq) == LM_OK) {
		for (int i = 0; i < l->cnt; i++) {
			const rd_kafka_topic_partition_t *tp = &l->elems[i];
			if (tp->err == RD_KAFKA_RESP_ERR_NO_ERROR && tp->partition >= 0 &&
			    tp->partition < bv->n)
				bv->got[tp->partition] = tp->offset;
		}
		bv->seq = seq;
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Waits until the index reflects item it of the batch: by itself, or
 * through the ingest group's committed offsets (bv). Returns LM_OK,
 * LM_ECLOSED when the owner is stopping or LM_ESTALE (revoked). */
static int
wait_visible(struct member *m, const struct item *it, struct batch_view *bv)
{
	int64_t since = lm_clock_ms();
	lm_owner *ow = m->ow;
	bool noted = false;
	int rc;

	while (!atomic_load(&ow->stop)) {
		bool passed = bv->got[it->partition] > it->offset;
		if (passed ? lm_index_seq(ow->idx) >= bv->seq : visible(ow, it))
			return LM_OK;
		if (!passed && lm_clock_ms() - m->last_probe >= LM_OWNER_PROBE_MS) {
			m->last_probe = lm_clock_ms();
			batch_view_ask(m, bv);
			continue;
		}
		note_wait(m, since, &noted, "this replica's index to hold a message",
		    m->topic, it->partition);
		if ((rc = serve(m, since)) != LM_OK)
			return rc;
		wait_slice(m);
	}
	return LM_ECLOSED;
}

/* Profiles: the state of postings partition part, read again. */
static void
refresh_state(struct member *m, int part)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(l, m->other, part);
	if (rd_kafka_committed(m->rk, l, CALL_TIMEOUT) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    l->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
		parse_claim(&l->elems[0], &m->state[part]);
	rd_kafka_topic_partition_list_destroy(l);
}

/* Profiles: what the index must hold of a postings partition in state st
 * before the batch's pairs are decided: every posting derived or claimed. */
static int64_t
state_need(const struct part_state *st)
{
	return st->claim_end > st->committed ? st->claim_end : st->committed;
}

/*
 * Profiles, while the batch waits for this replica's ingest to pass
 * postings partition p: when it waits for a claim's end there, the
 * partition's state is read again. A claim taken back since
 * (release_reading_claims) asks nothing more of the index: its postings
 * are left to their owner, whose next claim of them has a cut, read after
 * it, that holds this batch's profiles. The state read again replaces the
 * one read first, and the need of p becomes the lower of the two: every
 * posting a later state lets the batch announce was derived or claimed
 * before the first read, and so lies below its need (a posting claimed
 * after it has a cut that holds this batch's profiles, and is derived only
 * once this batch is committed).
 */
static void
reread_claim(struct member *m, int p)
{
	int64_t need;

	if (m->posting || p < 0 || p >= m->nstate ||
	    m->state[p].claim_end <= m->state[p].committed)
		return;
	refresh_state(m, p);
	need = state_need(&m->state[p]);
	if (need < m->need[p])
		m->need[p] = need;
}

/* Waits until the index reflects every message of the other topic before
 * m->need (n partitions). A profiles batch reads the claims it waits for
 * again (reread_claim). Returns LM_OK, LM_ECLOSED or LM_ESTALE. */
static int
wait_view(struct member *m, int n)
{
	int64_t since = lm_clock_ms(), reread_at = since + CLAIM_REREAD_MS;
	lm_owner *ow = m->ow;
	uint64_t seq = 0;
	bool passed = false, noted = false;
	int rc, behind = -1;

	while (!atomic_load(&ow->stop)) {
		if (passed && lm_index_seq(ow->idx) >= seq)
			return LM_OK;
		if (!passed && lm_clock_ms() - m->last_probe >= LM_OWNER_VIEW_PROBE_MS) {
			m->last_probe = lm_clock_ms();
			passed = ingest_passed(ow, m->other, n, m->need, &seq, &behind);
			if (!passed && lm_clock_ms() >= reread_at) {
				reread_at = lm_clock_ms() + CLAIM_REREAD_MS;
				reread_claim(m, behind);
			}
			continue;
		}
		note_wait(
		    m, since, &noted, "this replica's ingest to pass", m->other, behind);
		if ((rc = serve(m, since)) != LM_OK)
			return rc;
		wait_slice(m);
	}
	return LM_ECLOSED;
}

/* Postings: waits until the owners of the profiles have derived every
 * profile of the cut. Returns LM_OK, LM_ECLOSED or LM_ESTALE (revoked). */
static int
wait_cut_derived(struct member *m)
{
	int64_t since = lm_clock_ms();
	bool noted = false;
	int rc, behind = -1;

	while (!atomic_load(&m->ow->stop)) {
		if (derived_up_to(m, m->other, m->ncut, m->cut, &behind))
			return LM_OK;
		note_wait(m, since, &noted, "the profiles of the cut to be derived",
		    m->other, behind);
		for (int64_t end = lm_clock_ms() + LM_OWNER_VIEW_PROBE_MS;
		     lm_clock_ms() < end && !atomic_load(&m->ow->stop);) {
			if ((rc = serve(m, since)) != LM_OK)
				return rc;
			wait_slice(m);
		}
	}
	return LM_ECLOSED;
}

/* ---- who announces a pair -------------------------------------------------- */

enum pos_kind { POS_KNOWN, POS_NONE, POS_SUPERSEDED, POS_FAILED, POS_DAMAGED };

/*
 * Where the version of record id that the index holds was written: the
 * store keeps the position of its latest version only, so a store that is
 * ahead of the index (or no longer has the record) supersedes it. A
 * position of an earlier epoch of its topic (written before the topic was
 * created again, lm_store_pos) says nothing about the topic's offsets now:
 * such a record is as old as one written without a position (POS_NONE). A
 * store error decides nothing (POS_FAILED): it is kept in m->split_err and
 * the derivation is retried. A stored value of id that does not decode
 * (POS_DAMAGED; the store logs it once) never will: the pair is announced
 * here, rather than lost with every other pair of its message, and noted
 * for the split, which counts it once written (damaged_pos, in derive).
 * Its other owner may announce it too, under the same event id: events
 * are at least once, and subscribers drop the repeat.
 */
static enum pos_kind
position(struct member *m, lm_kind k, const char *id, uint64_t version, lm_store_pos *pos)
{
	lm_owner *ow = m->ow;
	uint64_t v = 0;
	uint32_t epoch = 0;
	bool has = false, damaged = false;
	int rc = lm_store_get_pos_checked(ow->store, k, id, &v, pos, &has, &damaged);

	if (rc != LM_OK && damaged)
		return POS_DAMAGED;

	if (rc == LM_OK && has) {
		rc = lm_ingest_epoch_get(ow->store,
		    k == LM_KIND_POSTING ? ow->topic_postings : ow->topic_profiles,
		    &epoch);
		if (rc == LM_ENOENT)
			rc = LM_OK;
	}
	if (rc == LM_ENOENT || (rc == LM_OK && v != version))
		return POS_SUPERSEDED;
	if (rc != LM_OK) {
		if (m->split_err == LM_OK)
			m->split_err = rc;
		return POS_FAILED;
	}
	return has && pos->epoch >= epoch ? POS_KNOWN : POS_NONE;
}

/*
 * Postings: a pair of a posting of the batch and profile p->other_id is
 * announced here when the profile's version is inside the batch's cut
 * (then its owner has derived it and left the pair to this batch). A
 * record written without a position predates positions and counts as
 * inside every cut.
 */
static bool
posting_announces(void *arg, const lm_events_pair *p, bool *noted)
{
	struct member *m = arg;
	lm_store_pos pos;

	switch (position(m, LM_KIND_PROFILE, p->other_id, p->other_version, &pos)) {
	case POS_DAMAGED:
		*noted = true;
		return true;
	case POS_NONE:
		return true;
	case POS_SUPERSEDED:
		return false; /* the newer version's derivation decides */
	case POS_FAILED:
		return false; /* undecided: derived again */
	case POS_KNOWN:
		break;
	}
	return pos.partition < m->ncut && pos.offset < m->cut[pos.partition];
}

/* Profiles: reads again, until none is left, the postings partitions
 * whose claim is still reading its cut. The state of a partition may be
 * read again at any time: every answer it gives stays true. Returns LM_OK,
 * LM_ECLOSED or LM_ESTALE (revoked). */
static int
resolve_reading(struct member *m)
{
	int64_t since = lm_clock_ms();
	bool noted = false;
	int rc;

	for (int p = 0; p < m->nstate; p++)
		while (m->state[p].claim_end > m->state[p].committed &&
		       m->state[p].ncut < 0) {
			if (atomic_load(&m->ow->stop))
				return LM_ECLOSED;
			note_wait(m, since, &noted, "a posting claim's cut", m->other, p);
			if ((rc = serve(m, since)) != LM_OK)
				return rc;
			wait_slice(m);
			refresh_state(m, p);
		}
	return LM_OK;
}

/*
 * Profiles: a pair of a profile of the batch and posting p->other_id is
 * announced here when the posting is derived already (its derivation
 * waited for every profile of its cut, so this one was not in it), or
 * claimed with a cut that does not hold this profile. A posting not yet
 * claimed is left to its owner: its cut, read after its claim, will hold
 * this profile. resolve_reading left no claim without its cut.
 */
static bool
profile_announces(void *arg, const lm_events_pair *p, bool *noted)
{
	struct member *m = arg;
	const struct part_state *st;
	lm_store_pos self, other;

	switch (position(m, LM_KIND_PROFILE, p->subject_id, p->subject_version, &self)) {
	case POS_DAMAGED:
		*noted = true;
		return true;
	case POS_NONE:
		return true;
	case POS_SUPERSEDED:
	case POS_FAILED:
		return false;
	case POS_KNOWN:
		break;
	}
	switch (position(m, LM_KIND_POSTING, p->other_id, p->other_version, &other)) {
	case POS_DAMAGED:
		*noted = true;
		return true;
	case POS_NONE:
		return true;
	case POS_SUPERSEDED:
	case POS_FAILED:
		return false;
	case POS_KNOWN:
		break;
	}
	if (other.partition >= m->nstate)
		return true; /* a partition newer than the postings' state */
	st = &m->state[other.partition];
	if (other.offset < st->committed)
		return true;
	if (other.offset >= st->claim_end || st->ncut < 0)
		return false;
	return self.partition >= st->ncut || self.offset >= st->cut[self.partition];
}

/* ---- the batch ------------------------------------------------------------------ */

/* Adds message msg to the batch with ingest's decision on it; msg stays the
 * caller's. Returns LM_OK or LM_ENOMEM. */
static int
collect(struct member *m, rd_kafka_message_t *msg)
{
	struct item *it = &m->batch[m->n];
	lm_ingest_msg im;
	rd_kafka_headers_t *h = NULL;
	int rc;

	memset(&im, 0, sizeof(im));
	im.kind = m->posting ? LM_KIND_POSTING : LM_KIND_PROFILE;
	im.key = msg->key;
	im.key_len = msg->key_len;
	im.value = msg->payload;
	im.value_len = msg->len;
	if (rd_kafka_message_headers(msg, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	lm_kafka_content_type(h, &im.content_type, &im.content_type_len);
	memset(it, 0, sizeof(*it));
	if (lm_fault_take(&m->ow->fail_decides))
		return LM_ENOMEM;
	if ((rc = lm_ingest_decide(m->ow->rctx, &im, &it->d)) != LM_OK)
		return rc;
	/* Only the decision's id, version and action are read. */
	free(it->d.bytes);
	it->d.bytes = NULL;
	it->partition = msg->partition;
	it->offset = msg->offset;
	m->n++;
	return LM_OK;
}

/* Notes a failed step of the batch (counted and logged) and moves its
 * back-off on. Returns the pause before the step is retried. */
static int64_t
failure(lm_owner *ow, const char *what, int rc, int64_t *backoff)
{
	int64_t pause = *backoff;

	atomic_fetch_add(&ow->failures, 1);
	lm_counter_add(ow->m_failures, 1);
	atomic_store(&ow->failing, true);
	lm_error("owner.derive", "%s: %s; retrying in %lld ms", what, lm_strerror(rc),
	    (long long) pause);
	*backoff = lm_backoff_next(pause, LM_OWNER_RETRY_MIN_MS, LM_OWNER_RETRY_MAX_MS);
	return pause;
}

/* Notes a failed step between batches and pauses before it is retried
 * (at most LM_OWNER_RETRY_MAX_MS: the member polls again after it). */
static void
failed(struct member *m, const char *what, int rc, int64_t *backoff)
{
	pause_for(m, failure(m->ow, what, rc, backoff));
}

/* Pauses ms, or until the owner stops, while the batch waits, serving the
 * group as serve does for a wait that began at since. Returns LM_OK, or
 * LM_ESTALE when the batch's partitions were revoked. */
static int
serve_for(struct member *m, int64_t since, int64_t ms)
{
	int rc;

	for (int64_t end = lm_clock_ms() + ms;
	     lm_clock_ms() < end && !atomic_load(&m->ow->stop);) {
		if ((rc = serve(m, since)) != LM_OK)
			return rc;
		wait_slice(m);
	}
	return LM_OK;
}

/*
 * A derivation of m->changes[0 .. *nc) failed (events_failed: in the
 * events, else in the pair decider's read, m->split_err). When the error
 * comes from a stored record whose value or bytes do not decode
 * (split->damaged, set where the record is decoded; the pair decider
 * announces past a damaged position instead, see position), deriving it
 * again can never succeed: every change of the record whose
 * derivation met it is taken out, each message counted (skipped) and
 * logged (owner.skip) with its place and the damaged record, and true is
 * returned. Any other error, of the outbox, the store, the disk or
 * memory, whatever its code, returns false: it is retried.
 */
static bool
skip_damaged(
    struct member *m, const lm_events_split *split, bool events_failed, size_t *nc)
{
	lm_owner *ow = m->ow;
	char subject[LM_RECORD_ID_MAX + 1];
	const char *bad;
	bool bad_posting;
	size_t kept = 0;

	if (events_failed && split->damaged && split->damaged_change < *nc) {
		snprintf(
		    subject, sizeof(subject), "%s", m->changes[split->damaged_change].id);
		bad = split->damaged_id;
		bad_posting = split->damaged_posting;
	} else {
		return false;
	}
	for (size_t j = 0; j < *nc; j++) {
		const lm_event_change *c = &m->changes[j];
		const struct item *it = NULL;
		if (strcmp(c->id, subject) != 0) {
			m->changes[kept++] = *c;
			continue;
		}
		for (size_t i = 0; i < m->n && it == NULL; i++)
			if (m->batch[i].d.id == c->id)
				it = &m->batch[i];
		atomic_fetch_add(&ow->skipped, 1);
		lm_counter_add(ow->m_skipped, 1);
		lm_error("owner.skip",
		    "message at offset %" PRId64 " of partition %d of %s (%s %s version "
		    "%" PRIu64 ") skipped: its events cannot be derived, as the stored "
		    "%s %s does not decode (damaged)",
		    it != NULL ? it->offset : -1, it != NULL ? (int) it->partition : -1,
		    m->topic, m->posting ? "posting" : "profile", c->id, c->version,
		    bad_posting ? "posting" : "profile", bad);
	}
	if (kept == *nc)
		return false; /* not a change of the batch: retried */
	*nc = kept;
	return true;
}

/* Derives the batch into the outbox; retried until it succeeds, the
 * owner stops or the batch's partitions are revoked: between tries the
 * member serves the group (serve_for), so that a derivation that keeps
 * failing (a full disk) holds up no rebalance. A message whose derivation
 * meets a damaged stored record is skipped (skip_damaged). Returns LM_OK,
 * LM_ECLOSED or LM_ESTALE (revoked). */
static int
derive(struct member *m, lm_events_split *split)
{
	lm_owner *ow = m->ow;
	size_t nc = 0;
	int64_t backoff = LM_OWNER_RETRY_MIN_MS, since = lm_clock_ms();
	int rc;

	for (size_t i = 0; i < m->n; i++) {
		const lm_ingest_decision *d = &m->batch[i].d;
		if (d->action == LM_INGEST_REJECT)
			continue;
		m->changes[nc++] = (lm_event_change){
		    .seq = 0,
		    .posting = d->kind == LM_KIND_POSTING,
		    .id = d->id,
		    .version = d->version,
		    .deleted = d->action == LM_INGEST_DELETE,
		    .is_new = d->action == LM_INGEST_PUT && d->version <= 1,
		};
	}
	for (unsigned busy = 0; !atomic_load(&ow->stop);) {
		bool events_failed;
		m->split_err = LM_OK;
		rc = lm_events_on_owned(
		    ow->events, ow->idx, m->changes, nc, split, (int64_t) time(NULL));
		/* The pairs announced past a damaged position that were
		 * written, also before a failure: a retry offers them no more. */
		atomic_fetch_add(&ow->damaged_pos, split->noted);
		lm_counter_add(ow->m_damaged_pos, split->noted);
		events_failed = rc != LM_OK;
		/* A pair left undecided by a store error was not recorded: the
		 * derivation again offers it (the pairs recorded meanwhile are
		 * not new any more, so none is announced twice). */
		if (rc == LM_OK && m->split_err != LM_OK)
			rc = m->split_err;
		if (rc == LM_OK) {
			atomic_store(&ow->failing, false);
			return LM_OK;
		}
		if (rc == LM_ECLOSED)
			break;
		if (skip_damaged(m, split, events_failed, &nc))
			continue; /* the rest derived again at once */
		/* The store is ahead of the index for a record the events show
		 * (a change ingest committed after the batch): the follower
		 * applies it shortly and wakes us. Only a store that stays ahead
		 * is a failure. */
		if (rc == LM_EBUSY && ++busy <= BUSY_RETRIES) {
			lm_debug(
			    "owner.derive", "the index is behind the store; retrying");
			atomic_fetch_add(&ow->ahead, 1);
			lm_counter_add(ow->m_ahead, 1);
			if ((rc = serve(m, since)) != LM_OK)
				return rc;
			wait_slice(m);
			continue;
		}
		rc = serve_for(m, since,
		    failure(ow, "cannot derive the events of the batch", rc, &backoff));
		if (rc != LM_OK)
			return rc;
	}
	return LM_ECLOSED;
}

/* Commits the offsets after every message of the batch (clearing its
 * claim) and counts the batch once the commit has landed. A commit that
 * fails is owed, and its messages counted when it lands: settle makes
 * it, unless this member's next claim of the partition moves past it
 * first; a revocation before then leaves them to the next owner, which
 * derives and counts them again. Left alone, the claim would hold every
 * postings batch whose cut reaches into the batch until a later message
 * of the partition came. */
static void
commit(struct member *m)
{
	rd_kafka_topic_partition_list_t *l = batch_offsets(m, false);
	rd_kafka_resp_err_t e;
	size_t rejected = 0;

	for (size_t i = 0; i < m->n; i++)
		rejected += m->batch[i].d.action == LM_INGEST_REJECT;
	if ((e = rd_kafka_commit(m->rk, l, 0)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		owed_forget(m, l);
		ends_done(m, l);
		count_committed(m->ow, m->n, rejected);
	} else {
		lm_warn(
		    "owner.commit", "commit failed: %s; retrying", rd_kafka_err2name(e));
		owed_add(m, l);
		for (size_t i = 0; i < m->n; i++) {
			struct owed_count *c = &m->owed_count[m->batch[i].partition];
			c->n++;
			c->rejected += m->batch[i].d.action == LM_INGEST_REJECT;
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* The batch's claim, its wait for the other side, and the decider that
 * goes with it. Returns LM_OK, LM_ECLOSED, or an error after which the
 * batch is rewound. */
static int
prepare(struct member *m, lm_events_split *split)
{
	int rc, n;

	if ((rc = write_claim(m, NULL, -1)) != LM_OK)
		return rc;
	if (m->posting) {
		/* The cut is read after the claim is visible: a profile derived
		 * before the claim was seen is inside it. */
		if ((rc = read_cut(m)) != LM_OK ||
		    (rc = write_claim(m, m->cut, m->ncut)) != LM_OK)
			return rc;
		memcpy(m->need, m->cut, (size_t) m->ncut * sizeof(*m->need));
		if ((rc = wait_view(m, m->ncut)) != LM_OK ||
		    (rc = wait_cut_derived(m)) != LM_OK)
			return rc;
		split->fn = posting_announces;
	} else {
		if ((n = other_partitions(m)) < 0)
			return LM_EKAFKA;
		m->nstate = n;
		if ((rc = read_states(m, m->other, n, m->state)) != LM_OK)
			return rc;
		/* Every posting derived or claimed is in the index before the
		 * pairs are decided. */
		for (int p = 0; p < n; p++)
			m->need[p] = state_need(&m->state[p]);
		if ((rc = wait_view(m, n)) != LM_OK || (rc = resolve_reading(m)) != LM_OK)
			return rc;
		split->fn = profile_announces;
	}
	split->arg = m;
	return LM_OK;
}

static bool
has_put(const struct member *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->batch[i].d.action == LM_INGEST_PUT)
			return true;
	return false;
}

/* The batch is derived: until its commit lands, deriving it again may
 * repeat what it announced. */
static void
mark_announced(struct member *m)
{
	rd_kafka_topic_partition_list_t *end = batch_offsets(m, false);

	for (int i = 0; i < end->cnt; i++)
		raise_announced(m, end->elems[i].partition, end->elems[i].offset);
	rd_kafka_topic_partition_list_destroy(end);
}

/* Waits for, derives and commits the collected batch. Returns LM_OK;
 * LM_ECLOSED (stopping) or LM_ESTALE (revoked), the batch left to the next
 * owner; another error when the claim could not be written. */
static int
process_batch(struct member *m)
{
	lm_owner *ow = m->ow;
	lm_events_split split;
	struct batch_view bv;
	bool repeat;
	int rc;

	batch_view_init(m, &bv);
	for (size_t i = 0; i < m->n; i++)
		if (m->batch[i].d.action != LM_INGEST_REJECT &&
		    (rc = wait_visible(m, &m->batch[i], &bv)) != LM_OK)
			return rc;
	repeat = may_repeat(m);
	memset(&split, 0, sizeof(split));
	/* Only a put can make a pair newly above: a batch of deletions and
	 * rejected messages needs no claim. */
	if (!has_put(m)) {
		split.fn = m->posting ? posting_announces : profile_announces;
		split.arg = m;
	} else if ((rc = prepare(m, &split)) != LM_OK) {
		return rc;
	}
	m->claim_backoff = LM_OWNER_RETRY_MIN_MS;
	if ((rc = derive(m, &split)) != LM_OK)
		return rc;
	mark_announced(m);
	atomic_fetch_add(&ow->deferred, split.deferred);
	lm_counter_add(ow->m_deferred, split.deferred);
	if (repeat) {
		atomic_fetch_add(&ow->handover, split.announced);
		lm_counter_add(ow->m_handover, split.announced);
		if (split.announced > 0)
			lm_info("owner.handover",
			    "%zu pairs announced from messages that may have been "
			    "derived before (a previous owner's claim, or a commit "
			    "that did not land)",
			    split.announced);
	}
	if (m->revoked)
		return LM_ESTALE; /* derived, but the offsets are not ours */
	commit(m);
	return LM_OK;
}

static void
process(struct member *m)
{
	int rc;

	m->busy = true;
	m->revoked = false;
	m->rebalancing = false;
	rc = process_batch(m);
	m->busy = false;
	if (m->revoked) {
		batch_drop(m);
		held_drop(m);
	} else if (rc == LM_OK) {
		batch_drop(m);
	} else if (rc == LM_ECLOSED) {
		/* Stopping, or the events were interrupted (shutdown, before the
		 * owner is freed): nothing more can be derived. The batch is left
		 * uncommitted, its claim to the next owner, and the member stops
		 * rather than collect behind it. */
		batch_drop(m);
		held_drop(m);
		stop_all(m->ow);
	} else {
		/* A claim refused by a rebalance is no failure: the batch is read
		 * again once the group has settled (or by its next owner). */
		if (!m->rebalancing)
			failed(m, "cannot claim the batch", rc, &m->claim_backoff);
		else
			pause_for(m, LM_OWNER_RETRY_MIN_MS);
		/* Forgets the ends of the batch's partitions, which it reads
		 * again; the other partitions' ends stay: nothing of them was
		 * in the batch, and librdkafka reports an end once, so one
		 * forgotten here would not be committed until a message came
		 * after it (a transactional producer's control records end
		 * partitions past their last message). */
		rewind_batch(m);
		if (m->posting) { /* its claim may have no cut */
			m->check_claims = true;
			m->release_at = 0;
		}
	}
}

/* Takes one polled message: into the batch, or, when it is no message (an
 * error, a partition past the limit), logged and dropped. Returns false
 * when ingest's rule could not be applied to it (out of memory): msg is
 * still the caller's then (see undecided). */
static bool
take(struct member *m, rd_kafka_message_t *msg)
{
	if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			ends_note(m, msg->partition, msg->offset);
		else
			lm_warn("owner.consume", "%s", rd_kafka_message_errstr(msg));
		rd_kafka_message_destroy(msg);
		return true;
	}
	if (msg->partition >= LM_OWNER_PARTITIONS_MAX) {
		lm_error("owner.consume", "partition %d of %s is past the limit of %d",
		    (int) msg->partition, m->topic, LM_OWNER_PARTITIONS_MAX);
		rd_kafka_message_destroy(msg);
		return true;
	}
	if (collect(m, msg) != LM_OK)
		return false;
	if (m->eof != NULL && m->eof[msg->partition] >= 0 &&
	    msg->offset >= m->eof[msg->partition])
		m->eof[msg->partition] = -1; /* the partition goes on past it */
	if (msg->partition == m->undecided_part && msg->offset == m->undecided_off) {
		m->undecided_part = -1;
		m->decide_backoff = LM_OWNER_RETRY_MIN_MS;
	}
	rd_kafka_message_destroy(msg);
	return true;
}

/* Message msg could not be decided: it and the held messages (those not
 * taken yet) are given back, their partitions rewound to them, and the
 * member pauses. The batch so far goes ahead; msg comes again after it,
 * and nothing of its partition passes it meanwhile. Dropped, it would let
 * a later commit of its partition pass a message whose events were never
 * derived. */
static void
undecided(struct member *m, rd_kafka_message_t *msg)
{
	/* The pause grows until this message is decided. */
	m->undecided_part = msg->partition;
	m->undecided_off = msg->offset;
	give_back(m, msg);
	failed(m, "cannot decide a message", LM_ENOMEM, &m->decide_backoff);
}

/* Takes the held messages, then what the consumer has at once, into the
 * batch (at most LM_OWNER_BATCH_MAX); first waits up to POLL_MS for a
 * message when none is held. Ends at a message that cannot be decided.
 * Starts a batch: a batch still collected is never added to (the held
 * messages, at most LM_OWNER_BATCH_MAX, then fit). */
static void
fill(struct member *m)
{
	rd_kafka_message_t *msg;
	size_t n = m->nheld;

	if (m->n > 0)
		return;
	if (n > 0) {
		/* What was polled while the last batch waited comes first. */
		m->nheld = 0;
		for (size_t i = 0; i < n; i++) {
			if (take(m, m->held[i]))
				continue;
			msg = m->held[i];
			m->nheld = n - i - 1;
			memmove(m->held, m->held + i + 1, m->nheld * sizeof(*m->held));
			undecided(m, msg);
			return;
		}
	} else if ((msg = rd_kafka_consumer_poll(m->rk, POLL_MS)) == NULL) {
		return;
	} else if (!take(m, msg)) {
		undecided(m, msg);
		return;
	}
	while (m->n > 0 && m->n < LM_OWNER_BATCH_MAX &&
	       (msg = rd_kafka_consumer_poll(m->rk, 0)) != NULL)
		if (!take(m, msg)) {
			undecided(m, msg);
			return;
		}
}

/*
 * Profiles: commits the ends read (m->eof) of the partitions with nothing
 * of them left to derive: no batch is being collected, no message of the
 * partition is held, and no commit of it is owed (a claim of this member
 * may still stand there). Every message before such an end was delivered
 * and its batch committed, so nothing is passed that was not derived; no
 * claim of this member stands on the partition, and no other member writes
 * one while it is assigned here. A failed commit is retried after
 * LM_OWNER_RETRY_MIN_MS.
 */
static void
ends_commit(struct member *m)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_resp_err_t e;

	if (m->eof == NULL || m->n > 0 || lm_clock_ms() < m->ends_at)
		return;
	/* Where the group stands on a partition that this member has not
	 * committed since it was assigned: asked once, so that an end the
	 * group has reached already costs no commit. */
	for (int32_t p = 0; p < LM_OWNER_PARTITIONS_MAX; p++)
		if (m->eof[p] >= 0 && m->done_to[p] < 0) {
			if (l == NULL)
				l = rd_kafka_topic_partition_list_new(4);
			rd_kafka_topic_partition_list_add(l, m->topic, p);
		}
	if (l != NULL) {
		bool unknown = rd_kafka_committed(m->rk, l, CALL_TIMEOUT) !=
		               RD_KAFKA_RESP_ERR_NO_ERROR;
		for (int i = 0; i < l->cnt && !unknown; i++)
			if (l->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
				m->done_to[l->elems[i].partition] =
				    l->elems[i].offset >= 0 ? l->elems[i].offset : 0;
		for (int i = 0; i < l->cnt; i++)
			unknown |= m->done_to[l->elems[i].partition] < 0;
		rd_kafka_topic_partition_list_destroy(l);
		l = NULL;
		/* A partition not answered is asked again after the pause; those
		 * answered are known from now on and committed below. */
		if (unknown)
			m->ends_at = lm_clock_ms() + LM_OWNER_RETRY_MIN_MS;
	}
	for (int32_t p = 0; p < LM_OWNER_PARTITIONS_MAX; p++) {
		bool held = false;
		if (m->eof[p] >= 0 && m->eof[p] <= m->done_to[p])
			m->eof[p] = -1; /* committed there already */
		if (m->eof[p] >= 0 && m->done_to[p] < 0)
			continue; /* not known: asked again next time */
		if (m->eof[p] < 0 ||
		    (m->owed != NULL &&
		        rd_kafka_topic_partition_list_find(m->owed, m->topic, p) != NULL))
			continue;
		for (size_t i = 0; i < m->nheld && !held; i++)
			held = m->held[i]->partition == p;
		if (held)
			continue;
		if (l == NULL)
			l = rd_kafka_topic_partition_list_new(4);
		rd_kafka_topic_partition_list_add(l, m->topic, p)->offset = m->eof[p];
	}
	if (l == NULL)
		return;
	if ((e = rd_kafka_commit(m->rk, l, 0)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		ends_done(m, l);
		for (int i = 0; i < l->cnt; i++)
			m->eof[l->elems[i].partition] = -1;
	} else {
		lm_debug("owner.commit", "commit of %d partition ends failed: %s", l->cnt,
		    rd_kafka_err2name(e));
		m->ends_at = lm_clock_ms() + LM_OWNER_RETRY_MIN_MS;
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* ---- joining ---------------------------------------------------------------- */

/*
 * A member joins the events group only once this replica's ingest has
 * stored what the topics held when the member started: the ingest group has
 * committed, on every partition of both topics, at least the log end offset
 * that partition had then (an empty partition asks nothing), and the store
 * itself holds it (store_holds). The group's offsets alone are not enough
 * after a store was restored from an older copy: until ingest's first
 * assignment sets them back to the store's positions, they are the newer
 * store's, and the owner, which takes them as proof of what the store
 * holds, would decide pairs from an index without the records. A new replica
 * starts with an empty store; had it joined at once, the partitions it took
 * would wait for its index (step 2 of owner.h), and the other replicas'
 * postings batches for its profiles, so every event would stall for as long
 * as its catch-up lasts. Waiting to join leaves its share of partitions to
 * the replicas that can derive them now. Only the postings member asks the
 * broker (one round trip per CATCHUP_PROBE_MS); the profiles member waits
 * for its answer. At every round, and once more with the cluster's id
 * before both join, the postings member also checks that the store's
 * positions come from this owner's topics and cluster (sources_ok):
 * neither member joins until they do. Returns false when stopped first.
 */
static int
ends_of(lm_owner *ow, const char *topic, int n, int64_t *need)
{
	rd_kafka_topic_partition_list_t *lo, *hi;
	int rc;

	if (n <= 0)
		return LM_OK;
	lo = all_partitions(topic, n);
	hi = all_partitions(topic, n);
	rc =
	    lm_kafka_list_offsets(ow->probe, hi, RD_KAFKA_OFFSET_END, CALL_TIMEOUT, NULL);
	if (rc == LM_OK)
		rc = lm_kafka_list_offsets(
		    ow->probe, lo, RD_KAFKA_OFFSET_BEGINNING, CALL_TIMEOUT, NULL);
	if (rc != LM_OK)
		lm_debug(
		    "owner.catchup", "end offsets of %s: %s", topic, lm_strerror(rc));
	/* A log without messages (empty, or all of them deleted) needs
	 * nothing: the ingest group may have committed no offset there. */
	for (int i = 0; i < n && rc == LM_OK; i++)
		need[hi->elems[i].partition] =
		    hi->elems[i].offset > lo->elems[i].offset ? hi->elems[i].offset : 0;
	rd_kafka_topic_partition_list_destroy(lo);
	rd_kafka_topic_partition_list_destroy(hi);
	return rc;
}

/*
 * Whether the store's positions of both kinds come from the topics this
 * owner reads, on the cluster its brokers are of (lm_ingest_source_get,
 * which ingest writes in every batch): a position names neither, and the
 * owner compares positions with its own topics' offsets and claims, so
 * those of another log would have pairs announced twice or never. A kind
 * without a source (a store from before sources were kept, or one ingest
 * has not written to yet) is not compared, nor is the cluster while its id
 * is not known (the brokers give none, or none within wait_ms). Otherwise
 * sets ow->refused and logs owner.source, once per source refused; a
 * source that cannot be read refuses too. The postings member's thread
 * only.
 */
static bool
sources_ok(struct member *m, int wait_ms)
{
	static const char *const topic_var[2] = {
	    "LUNAMATCH_TOPIC_POSTINGS", "LUNAMATCH_TOPIC_PROFILES"};
	lm_owner *ow = m->ow;
	char why[1024] = "", key[sizeof(ow->refusal)] = "";
	char cluster[LM_INGEST_CLUSTER_MAX + 1] = "";
	char *id = rd_kafka_clusterid(m->rk, wait_ms);

	if (id != NULL) {
		snprintf(cluster, sizeof(cluster), "%s", id);
		rd_kafka_mem_free(m->rk, id);
	}
	for (int i = 0; i < 2 && key[0] == '\0'; i++) {
		lm_kind k = i == 0 ? LM_KIND_POSTING : LM_KIND_PROFILE;
		const char *topic = i == 0 ? ow->topic_postings : ow->topic_profiles;
		lm_ingest_source src;
		int rc = lm_ingest_source_get(ow->store, k, &src);
		bool topic_differs;

		if (rc == LM_ENOENT)
			continue;
		if (rc != LM_OK) {
			snprintf(
			    key, sizeof(key), "%s: %s", lm_kind_name(k), lm_strerror(rc));
			snprintf(why, sizeof(why),
			    "cannot read where the store's %s positions come "
			    "from: %s; not joining the events group",
			    lm_kind_name(k), lm_strerror(rc));
			continue;
		}
		if (lm_ingest_source_same(&src, topic, cluster))
			continue;
		topic_differs = strcmp(src.topic, topic) != 0;
		snprintf(key, sizeof(key), "%s %s %s %" PRIu32, lm_kind_name(k),
		    src.topic, src.cluster, src.epoch);
		snprintf(why, sizeof(why),
		    "the store's %s positions come from topic %s%s%s at epoch %" PRIu32
		    " (what this replica's ingest reads), and match reads topic %s "
		    "(%s)%s%s (LUNAMATCH_BROKERS): its events would announce pairs "
		    "twice or never. Not joining the events group until they are the "
		    "same: point match's %s at the %s ingest reads, or finish moving "
		    "ingest (docs/events.md)",
		    lm_kind_name(k), src.topic,
		    src.cluster[0] != '\0' ? " of cluster " : "", src.cluster, src.epoch,
		    topic, topic_var[i],
		    cluster[0] != '\0' ? " of cluster " : " on the brokers", cluster,
		    topic_differs ? topic_var[i] : "LUNAMATCH_BROKERS",
		    topic_differs ? "topic" : "cluster");
	}
	if (key[0] == '\0') {
		if (atomic_exchange(&ow->refused, false)) {
			lm_info("owner.source",
			    "the store's positions come from %s and %s%s%s now: joining "
			    "the events group",
			    ow->topic_postings, ow->topic_profiles,
			    cluster[0] != '\0' ? " of cluster " : "", cluster);
			lm_gauge_set(ow->m_refused, 0);
		}
		ow->refusal[0] = '\0';
		return true;
	}
	atomic_store(&ow->refused, true);
	lm_gauge_set(ow->m_refused, 1);
	if (strcmp(key, ow->refusal) != 0) {
		lm_error("owner.source", "%s", why);
		memcpy(ow->refusal, key, sizeof(key));
	}
	return false;
}

/*
 * How far the store holds partition p of topic by its own positions, as
 * ingest resumes from them (lm_ingest_offset_get): LM_OK with *at, which
 * is 0 for a partition the store never stored (a new store, or one that
 * kept its positions from the start) or stored at an earlier epoch of the
 * topic than its latest (the topic was created again since); LM_ENOENT
 * for a store written before positions were kept, about which only the
 * ingest group's offsets tell; another store error.
 */
static int
store_position(lm_owner *ow, const char *topic, int32_t p, int64_t *at)
{
	uint32_t epoch = 0, latest = 0;
	uint64_t seq = 0;
	bool kept = false;
	int rc = lm_ingest_offset_get(ow->store, topic, p, &epoch, at);

	if (rc == LM_OK) {
		if ((rc = lm_ingest_epoch_get(ow->store, topic, &latest)) == LM_ENOENT)
			rc = LM_OK;
		if (epoch < latest)
			*at = 0;
		return rc;
	}
	if (rc == LM_ENOENT && (rc = lm_store_last_seq(ow->store, &seq)) == LM_OK &&
	    (rc = lm_ingest_positions_kept(ow->store, &kept)) == LM_OK) {
		*at = 0;
		return seq == 0 || kept ? LM_OK : LM_ENOENT;
	}
	return rc;
}

/*
 * Whether, on a partition p of topic in l, a message lies from offset
 * l->elems[i].offset to need[p] (exclusive) that a consumer is given: a
 * record, not a control record of a transaction nor a message of an
 * aborted one, which take offsets and are never delivered (ingest's
 * positions stop below them). Reads the partitions from there with the
 * peek handle, within CALL_TIMEOUT. Returns LM_OK with *found (on true,
 * *behind is the partition), LM_ETIMEDOUT when a partition gave neither a
 * message nor its end at need[p] or later in time, or a Kafka error.
 */
static int
gap_holds_message(lm_owner *ow, const char *topic, rd_kafka_topic_partition_list_t *l,
    const int64_t *need, bool *found, int *behind)
{
	bool open[LM_OWNER_PARTITIONS_MAX] = {false};
	rd_kafka_resp_err_t e;
	int left = l->cnt;

	*found = false;
	for (int i = 0; i < l->cnt; i++)
		open[l->elems[i].partition] = true;
	if ((e = rd_kafka_assign(ow->peek, l)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_debug("owner.catchup", "cannot read %s past the store's positions: %s",
		    topic, rd_kafka_err2name(e));
		return lm_kafka_err(e);
	}
	for (int64_t end = lm_clock_ms() + CALL_TIMEOUT;
	     left > 0 && !*found && lm_clock_ms() < end && !atomic_load(&ow->stop);) {
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(ow->peek, POLL_MS);
		int32_t p;
		if (msg == NULL)
			continue;
		p = msg->partition;
		/* A message of an earlier look (another topic) is passed over. */
		if (msg->rkt != NULL &&
		    strcmp(rd_kafka_topic_name(msg->rkt), topic) == 0 && p >= 0 &&
		    p < LM_OWNER_PARTITIONS_MAX && open[p] &&
		    (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
		        (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF &&
		            msg->offset >= need[p]))) {
			open[p] = false;
			left--;
			if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
			    msg->offset < need[p]) {
				*found = true;
				*behind = p;
			}
		}
		rd_kafka_message_destroy(msg);
	}
	(void) rd_kafka_assign(ow->peek, NULL);
	return *found || left == 0 ? LM_OK : LM_ETIMEDOUT;
}

/*
 * Whether the store holds every partition p of topic in 0..n-1 up to
 * need[p] (need[p] <= 0 asks nothing): its position (store_position) is
 * there, or no message a consumer is given lies between its position and
 * need[p] (a topic written by a transactional producer ends in control
 * records, past the positions ingest stores; gap_holds_message). A store
 * written before positions were kept is not asked. On false *behind is a
 * partition the store does not hold that far, or -1 when that could not
 * be read (logged at debug).
 */
static bool
store_holds(lm_owner *ow, const char *topic, int n, const int64_t *need, int *behind)
{
	rd_kafka_topic_partition_list_t *gap = rd_kafka_topic_partition_list_new(n);
	bool found = false;
	int rc = LM_OK;

	*behind = -1;
	for (int p = 0; p < n && rc == LM_OK; p++) {
		int64_t at = 0;
		if (need[p] <= 0)
			continue;
		if ((rc = store_position(ow, topic, p, &at)) == LM_ENOENT)
			rc = LM_OK;
		else if (rc == LM_OK && at < need[p])
			rd_kafka_topic_partition_list_add(gap, topic, p)->offset = at;
		else if (rc != LM_OK)
			lm_debug("owner.catchup",
			    "cannot read how far the store holds %s [%d]: %s", topic, p,
			    lm_strerror(rc));
	}
	if (rc == LM_OK && gap->cnt > 0)
		rc = gap_holds_message(ow, topic, gap, need, &found, behind);
	rd_kafka_topic_partition_list_destroy(gap);
	return rc == LM_OK && !found;
}

static bool
wait_caught_up(struct member *m)
{
	lm_owner *ow = m->ow;
	/* [0] postings, [1] profiles: partitions and the offsets needed. */
	int n[2] = {-1, -1};
	int64_t need[2][LM_OWNER_PARTITIONS_MAX];
	const char *topic[2] = {ow->topic_postings, ow->topic_profiles};
	int64_t next = 0, since = lm_clock_ms();
	bool noted = false;

	while (!atomic_load(&ow->stop)) {
		/* t: topics the ingest group has passed; held: those the store
		 * holds, looked at once the group has passed both. */
		int behind = -1, t = 0, held = 0;
		if (atomic_load(&ow->caught_up))
			return true;
		/* The postings member asks for both; the other waits for it. */
		if (m != &ow->mem[0] || lm_clock_ms() < next) {
			wait_slice(m);
			continue;
		}
		next = lm_clock_ms() + CATCHUP_PROBE_MS;
		/* Another source keeps the owner out, asked again until it is
		 * its own (its catch-up may never end meanwhile: ingest reads
		 * other topics). */
		if (!sources_ok(m, 0))
			continue;
		if (n[0] < 0 || n[1] < 0) {
			/* mem[1]'s other topic is postings, mem[0]'s profiles. */
			n[0] = other_partitions(&ow->mem[1]);
			n[1] = other_partitions(&ow->mem[0]);
			if (n[0] < 0 || n[1] < 0 ||
			    ends_of(ow, topic[0], n[0], need[0]) != LM_OK ||
			    ends_of(ow, topic[1], n[1], need[1]) != LM_OK) {
				n[0] = n[1] = -1;
				continue;
			}
		}
		atomic_fetch_add(&ow->probes, 1);
		while (t < 2 && committed_at_least(ow->probe, topic[t], n[t], need[t],
		                    &behind, "ingest group"))
			t++;
		while (t == 2 && held < 2 &&
		       store_holds(ow, topic[held], n[held], need[held], &behind))
			held++;
		/* Once more with the cluster's id, waited for: the brokers
		 * answered, so it is known unless they give none. */
		if (held == 2 && !sources_ok(m, CALL_TIMEOUT))
			continue;
		if (held == 2) {
			if (!atomic_exchange(&ow->caught_up, true))
				lm_info("owner.catchup",
				    "ingest has stored the topics (%.1f s after the "
				    "start): "
				    "joining the events group",
				    (double) (lm_clock_ms() - ow->start_ms) / 1000.0);
			rd_kafka_destroy_flags(
			    ow->peek, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
			ow->peek = NULL;
			return true;
		}
		if (!noted && lm_clock_ms() - since >= LM_OWNER_WAIT_NOTE_MS) {
			noted = true;
			if (t < 2 && behind < 0)
				lm_info("owner.catchup",
				    "not joining the events group: the ingest group's "
				    "committed offsets of %s cannot be read",
				    topic[t]);
			else if (t < 2)
				lm_info("owner.catchup",
				    "not joining the events group until ingest has "
				    "stored the topics (partition %d of %s is behind)",
				    behind, topic[t]);
			else if (behind < 0)
				lm_info("owner.catchup",
				    "not joining the events group: how far the store "
				    "holds %s cannot be read",
				    topic[held]);
			else
				lm_info("owner.catchup",
				    "not joining the events group until the store holds "
				    "what the ingest group's committed offsets say "
				    "(partition %d of %s is behind in the store: one "
				    "restored from an older copy, whose group ingest has "
				    "not set back yet, or one still filling)",
				    behind, topic[held]);
		}
	}
	return false;
}

static int
subscribe(struct member *m)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t e;

	rd_kafka_topic_partition_list_add(l, m->topic, RD_KAFKA_PARTITION_UA);
	e = rd_kafka_subscribe(m->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_error("owner.subscribe", "cannot subscribe to %s: %s", m->topic,
		    rd_kafka_err2name(e));
		return lm_kafka_err(e);
	}
	atomic_fetch_add(&m->ow->joined, 1);
	return LM_OK;
}

/*
 * The postings member takes a step of the sweep of stranded pair states
 * (lm_events_sweep_pairs) every LM_OWNER_SWEEP_MS, between batches, once
 * the index holds the store's records (lm_owner_opts.index_loaded): a page
 * of pair states a second, so that a pass over a million takes about an
 * hour and costs next to nothing. A failure is logged by the step and the
 * next step tries the same page again.
 */
static void
sweep_step(struct member *m)
{
	int64_t now = lm_clock_ms();

	if (!m->posting || now < m->sweep_at || m->ow->index_loaded == NULL)
		return;
	m->sweep_at = now + LM_OWNER_SWEEP_MS;
	if (!m->ow->index_loaded(m->ow->index_loaded_arg))
		return;
	(void) lm_events_sweep_pairs(
	    m->ow->events, m->ow->idx, (int64_t) time(NULL), NULL);
}

static void *
run(void *arg)
{
	struct member *m = arg;

	if (!wait_caught_up(m) || subscribe(m) != LM_OK)
		return NULL;
	while (!atomic_load(&m->ow->stop)) {
		settle(m);
		fill(m);
		/* The poll that returned the batch may have assigned partitions. */
		settle(m);
		if (m->n > 0)
			process(m);
		if (m->n == 0)
			ends_commit(m);
		sweep_step(m);
	}
	/* Stopping: one last try at the commits still owed, so the next owner
	 * need not derive those batches again. */
	m->owed_at = 0;
	m->check_claims = false;
	settle(m);
	batch_drop(m);
	held_drop(m);
	return NULL;
}

/* ---- life cycle --------------------------------------------------------------- */

static bool
given(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static int
member_init(lm_owner *ow, const lm_owner_opts *o, const char *group, bool posting)
{
	struct member *m = &ow->mem[posting ? 0 : 1];
	int rc;

	m->ow = ow;
	m->posting = posting;
	m->claim_backoff = LM_OWNER_RETRY_MIN_MS;
	m->decide_backoff = LM_OWNER_RETRY_MIN_MS;
	m->undecided_part = -1;
	m->owed_backoff = LM_OWNER_RETRY_MIN_MS;
	m->release_backoff = LM_OWNER_RETRY_MIN_MS;
	m->topic = posting ? ow->topic_postings : ow->topic_profiles;
	m->other = posting ? ow->topic_profiles : ow->topic_postings;
	if ((m->batch = calloc(LM_OWNER_BATCH_MAX, sizeof(*m->batch))) == NULL ||
	    (m->changes = calloc(LM_OWNER_BATCH_MAX, sizeof(*m->changes))) == NULL ||
	    (m->cut = calloc(LM_OWNER_PARTITIONS_MAX, sizeof(*m->cut))) == NULL ||
	    (m->need = calloc(LM_OWNER_PARTITIONS_MAX, sizeof(*m->need))) == NULL ||
	    (m->own_end = calloc(LM_OWNER_PARTITIONS_MAX, sizeof(*m->own_end))) == NULL ||
	    (m->announced_end =
	            calloc(LM_OWNER_PARTITIONS_MAX, sizeof(*m->announced_end))) == NULL ||
	    (m->held = calloc(LM_OWNER_BATCH_MAX, sizeof(*m->held))) == NULL ||
	    (m->owed_count = calloc(LM_OWNER_PARTITIONS_MAX, sizeof(*m->owed_count))) ==
	        NULL)
		return LM_ENOMEM;
	for (int p = 0; p < LM_OWNER_PARTITIONS_MAX; p++)
		m->own_end[p] = m->announced_end[p] = -1;
	if (!posting) {
		if ((m->eof = malloc(LM_OWNER_PARTITIONS_MAX * sizeof(*m->eof))) ==
		        NULL ||
		    (m->done_to = malloc(
		         LM_OWNER_PARTITIONS_MAX * sizeof(*m->done_to))) == NULL)
			return LM_ENOMEM;
		ends_forget(m, -1);
		if ((m->state = calloc(LM_OWNER_PARTITIONS_MAX, sizeof(*m->state))) ==
		    NULL)
			return LM_ENOMEM;
		for (int p = 0; p < LM_OWNER_PARTITIONS_MAX; p++)
			if ((m->state[p].cut = calloc(LM_OWNER_PARTITIONS_MAX,
			         sizeof(*m->state[p].cut))) == NULL)
				return LM_ENOMEM;
	}
	if ((rc = make_consumer(o, group, m, !posting, &m->rk)) != LM_OK)
		return rc;
	rd_kafka_poll_set_consumer(m->rk);
	if ((m->other_rkt = rd_kafka_topic_new(m->rk, m->other, NULL)) == NULL) {
		lm_error("owner.kafka", "cannot create a topic handle: %s",
		    rd_kafka_err2str(rd_kafka_last_error()));
		return LM_EKAFKA;
	}
	return LM_OK;
}

/* Stops nothing: the thread must be joined. Leaves the group at once, so
 * the partitions move without waiting for the session timeout. It commits
 * nothing (auto-commit is off): each derived batch was committed after it
 * (or its commit is owed, and the next owner derives it again), and a
 * batch in progress stays claimed for the next owner. */
static void
member_free(struct member *m)
{
	if (m->other_rkt != NULL)
		rd_kafka_topic_destroy(m->other_rkt);
	if (m->rk != NULL) {
		rd_kafka_consumer_close(m->rk);
		rd_kafka_destroy(m->rk);
	}
	batch_drop(m);
	free(m->batch);
	free(m->changes);
	free(m->cut);
	free(m->need);
	free(m->own_end);
	free(m->announced_end);
	free(m->eof);
	free(m->done_to);
	held_drop(m);
	free(m->held);
	owed_drop(m);
	free(m->owed_count);
	if (m->state != NULL)
		for (int p = 0; p < LM_OWNER_PARTITIONS_MAX; p++)
			free(m->state[p].cut);
	free(m->state);
}

int
lm_owner_new(const lm_owner_opts *o, lm_owner **out)
{
	lm_owner *ow;
	const char *group;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL || !given(o->brokers) || !given(o->topic_postings) ||
	    !given(o->topic_profiles) || !given(o->ingest_group_id) || o->store == NULL ||
	    o->index == NULL || o->events == NULL || o->rctx == NULL ||
	    strcmp(o->topic_postings, o->topic_profiles) == 0) {
		lm_error("owner.config",
		    "brokers, two distinct topics, the ingest group, store, index, "
		    "events and record context are required");
		return LM_EINVAL;
	}
	if (o->session_ms != 0 && (o->session_ms <= LM_OWNER_HEARTBEAT_MS ||
	                              o->session_ms > LM_OWNER_SESSION_MS_MAX)) {
		lm_error("owner.config",
		    "the session timeout must exceed the %d ms heartbeat and be at "
		    "most %d ms",
		    LM_OWNER_HEARTBEAT_MS, LM_OWNER_SESSION_MS_MAX);
		return LM_EINVAL;
	}
	if ((ow = calloc(1, sizeof(*ow))) == NULL)
		return LM_ENOMEM;
	pthread_mutex_init(&ow->mtx, NULL);
	(void) lm_cond_init_monotonic(&ow->cv);
	ow->store = o->store;
	ow->idx = o->index;
	ow->index_loaded = o->index_loaded;
	ow->index_loaded_arg = o->index_loaded_arg;
	ow->events = o->events;
	ow->rctx = o->rctx;
	ow->held_bytes_max =
	    o->held_bytes_max != 0 ? o->held_bytes_max : LM_OWNER_HELD_BYTES_MAX;
	group = given(o->group_id) ? o->group_id : LM_OWNER_GROUP_DEFAULT;
	if ((ow->topic_postings = strdup(o->topic_postings)) == NULL ||
	    (ow->topic_profiles = strdup(o->topic_profiles)) == NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	if ((rc = member_init(ow, o, group, true)) != LM_OK ||
	    (rc = member_init(ow, o, group, false)) != LM_OK ||
	    (rc = make_consumer(o, o->ingest_group_id, NULL, false, &ow->probe)) !=
	        LM_OK ||
	    (rc = make_consumer(o, o->ingest_group_id, NULL, true, &ow->peek)) != LM_OK)
		goto fail;
	if (o->metrics != NULL) {
		ow->m_messages = lm_metrics_counter(o->metrics,
		    "lunamatch_events_owner_messages_total",
		    "Messages of owned partitions whose events are derived and committed",
		    NULL);
		ow->m_failures = lm_metrics_counter(o->metrics,
		    "lunamatch_events_derive_failures_total",
		    "Failed steps of owned batches, each retried (owner.derive): "
		    "derivations into the outbox, claims the group coordinator "
		    "refused outside a rebalance, messages ingest's rule could not "
		    "be applied to",
		    NULL);
		ow->m_ahead = lm_metrics_counter(o->metrics,
		    "lunamatch_events_derive_store_ahead_total",
		    "Derivations retried quietly because the store was ahead of the "
		    "index for a record they show",
		    NULL);
		ow->m_deferred = lm_metrics_counter(o->metrics,
		    "lunamatch_events_pairs_deferred_total",
		    "New pairs left to the owner of the other record, which announces "
		    "them",
		    NULL);
		ow->m_handover = lm_metrics_counter(o->metrics,
		    "lunamatch_events_handover_pairs_total",
		    "Pairs announced from messages that may have been derived before: "
		    "a previous owner's claim, or a commit that did not land (each "
		    "may repeat an event)",
		    NULL);
		ow->m_skipped = lm_metrics_counter(o->metrics,
		    "lunamatch_events_derive_skipped_total",
		    "Messages of owned partitions whose events are not derived because a "
		    "stored record their derivation reads does not decode (damaged; "
		    "owner.skip logs each): errors of the store, the outbox, the disk "
		    "or memory are retried instead",
		    NULL);
		ow->m_damaged_pos = lm_metrics_counter(o->metrics,
		    "lunamatch_events_pairs_damaged_position_total",
		    "Pairs announced by this owner because the stored position of one "
		    "of their records does not decode (damaged; store.corrupt logs "
		    "it): the other record's owner may announce them too, under the "
		    "same event id. Each counted once, when it is written",
		    NULL);
		ow->m_refused = lm_metrics_gauge(o->metrics,
		    "lunamatch_events_owner_source_refused",
		    "1 while the store's positions come from another topic or cluster "
		    "than match reads: this replica stays out of the events group "
		    "(owner.source)",
		    NULL);
	}
	*out = ow;
	return LM_OK;
fail:
	lm_owner_free(ow);
	return rc;
}

int
lm_owner_start(lm_owner *ow)
{
	int err;

	if (ow == NULL || ow->mem[0].started || ow->mem[1].started)
		return LM_EINVAL;
	ow->start_ms = lm_clock_ms();
	atomic_store(&ow->stop, false);
	for (int i = 0; i < 2; i++) {
		if ((err = pthread_create(&ow->mem[i].thread, NULL, run, &ow->mem[i])) !=
		    0)
			return lm_err_from_errno(err);
		ow->mem[i].started = true;
	}
	return LM_OK;
}

void
lm_owner_wake(lm_owner *ow)
{
	if (ow == NULL)
		return;
	pthread_mutex_lock(&ow->mtx);
	ow->wakes++;
	pthread_cond_broadcast(&ow->cv);
	pthread_mutex_unlock(&ow->mtx);
}

void
lm_owner_free(lm_owner *ow)
{
	if (ow == NULL)
		return;
	stop_all(ow);
	for (int i = 0; i < 2; i++)
		if (ow->mem[i].started) {
			pthread_join(ow->mem[i].thread, NULL);
			ow->mem[i].started = false;
		}
	for (int i = 0; i < 2; i++)
		member_free(&ow->mem[i]);
	if (ow->probe != NULL)
		rd_kafka_destroy_flags(ow->probe, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (ow->peek != NULL)
		rd_kafka_destroy_flags(ow->peek, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	free(ow->topic_postings);
	free(ow->topic_profiles);
	pthread_cond_destroy(&ow->cv);
	pthread_mutex_destroy(&ow->mtx);
	free(ow);
}

void
lm_owner_fail_decides(lm_owner *ow, unsigned n)
{
	if (ow != NULL)
		atomic_store(&ow->fail_decides, n);
}

void
lm_owner_stats_get(lm_owner *ow, lm_owner_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (ow == NULL)
		return;
	out->messages = atomic_load(&ow->messages);
	out->rejected = atomic_load(&ow->rejected);
	out->probes = atomic_load(&ow->probes);
	out->failures = atomic_load(&ow->failures);
	out->ahead = atomic_load(&ow->ahead);
	out->rebalances = atomic_load(&ow->rebalances);
	out->deferred = atomic_load(&ow->deferred);
	out->handover = atomic_load(&ow->handover);
	out->skipped = atomic_load(&ow->skipped);
	out->damaged = atomic_load(&ow->damaged_pos);
	out->partitions =
	    atomic_load(&ow->mem[0].partitions) + atomic_load(&ow->mem[1].partitions);
	out->joined = atomic_load(&ow->joined);
	out->failing = atomic_load(&ow->failing);
	out->refused = atomic_load(&ow->refused);
	out->held_peak = atomic_load(&ow->held_peak);
}
