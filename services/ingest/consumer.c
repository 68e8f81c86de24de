/*
 * consumer.c - the ingest consumer loop; see consumer.h for the guarantees.
 *
 * Everything here runs on the thread of lm_consumer_run, including the
 * librdkafka callbacks (rebalance, error, log and delivery reports are served
 * from rd_kafka_consumer_poll and the DLQ flush), except one store
 * transaction at a time: a closed batch is written by a writer thread while
 * this thread decides the messages of the next one (see "batches" below).
 * Only the health fields read by the HTTP checks are atomics.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "consumer.h"
#include "dlq.h"
#include "ingest.h"
#include "offsets.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/fault.h"
#include "lunamatch/kafka.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"
#include "lunamatch/random.h"

/* Longest time one attempt spends queueing a batch's dead letters while
 * the loop runs (a full local queue is waited on): a queue full for that
 * long belongs to a dead-letter topic that takes nothing; the attempt fails
 * and the retry sends what is left (send_rejects). */
#define DLQ_SEND_MS LM_DLQ_MESSAGE_TIMEOUT_MS
/* Longest wait for the DLQ delivery reports of one batch. */
#define DLQ_FLUSH_MS (LM_DLQ_MESSAGE_TIMEOUT_MS + 5000)
/* Longest single wait of the loop: bounds the reaction to a stop signal. */
#define POLL_MS 100
/* A wait of the loop while a batch is being written: how soon the loop
 * notices that the writer has finished. */
#define WRITING_WAIT_MS 1
/* How often land_flight looks whether the writer has finished. */
#define WRITER_POLL_MS 5
/* Until the first catch-up: period of its check, and the longest wait for
 * the group's committed offsets. */
#define CATCHUP_MS           200
#define CATCHUP_COMMITTED_MS 2000
/* Until the first catch-up: least time between two warnings that how far
 * the store holds a partition cannot be read (the check is retried every
 * CATCHUP_MS). */
#define POSITION_WARN_MS 10000
/* How far ahead of the wall clock a store's last current time may be and
 * still be trusted (clocks of two hosts differ a little); one further ahead
 * says nothing of the store's age (check_age). */
#define CURRENT_AHEAD_S 300

/* Reject reasons, each with its own counter. */
#define NREASONS (5 + LM_REJECT_COUNT_)

/* A rejected message held until its batch is done, with its verdict: what
 * its dead letter needs, copied out of the message (dlq.h), which is
 * destroyed once decided so that the fetch buffer it came in is not kept
 * alive by the batch. */
struct held {
	lm_dlq_letter *letter; /* owned */
	const char *reason;    /* static token */
	char error[LM_INGEST_ERROR_MAX];
	lm_dlq_fate fate; /* of its dead letter: see lm_dlq_send */
};

/* A batch with the rejected messages it holds (to send, and to resend on a
 * retry) and its rejects by reason. */
struct slot {
	lm_ingest_batch *batch;
	struct held *rejects; /* cfg->batch_max entries */
	size_t nrejects;
	bool sent;                  /* its dead letters went out once */
	bool delivered;             /* and were all delivered (or dropped) */
	uint64_t pending[NREASONS]; /* rejects by reason */
};

/* The writer thread's first attempt at a batch's store transaction. */
struct flight {
	struct slot *slot; /* NULL: no batch in flight */
	pthread_t thread;
	lm_store *store;
	bool fail;        /* LM_CONSUMER_FAULT_STORE was armed at the hand-off */
	bool slow;        /* LM_CONSUMER_FAULT_SLOW_STORE was */
	bool told;        /* writer_heartbeat logged the write as too long */
	int64_t t0;       /* the hand-off */
	atomic_bool done; /* the writer thread has finished */
	/* Written by the writer thread, read after pthread_join. */
	int rv;
	int64_t t1; /* the end of the transaction */
	lm_ingest_counts counts;
	uint64_t last_seq;
};

/* A partition to catch up with: its end offset (when first seen, or read
 * from the brokers for a round) and how far its messages are durable (the
 * next offset to store). */
struct target {
	lm_kind kind; /* which topic: LM_KIND_POSTING or LM_KIND_PROFILE */
	int32_t partition;
	int64_t end;     /* RD_KAFKA_OFFSET_INVALID until known */
	int64_t durable; /* RD_KAFKA_OFFSET_INVALID until known */
};

struct lm_consumer {
	const lm_config *cfg;
	lm_store *store;
	const lm_record_ctx *ctx;
	lm_notify *notify;
	lm_trimmer *trimmer;
	const atomic_int *stop;
	volatile int fatal; /* set by the error callbacks, or stop_loop */
	/* Why stop_loop ended the loop, and what lm_consumer_run returns;
	 * NULL: a fatal Kafka error (LM_EKAFKA). */
	const char *stop_why;
	int stop_rv;

	rd_kafka_t *rk;
	lm_dlq *dlq;
	struct slot slots[2];
	struct slot *open;    /* the batch being filled: one of slots */
	struct flight flight; /* the other one, while its store write runs */
	int64_t deadline_ms;  /* when the open batch must be finished */
	bool retrying;        /* a batch is being retried: resend rejects */
	/* Set once the loop has ended (stop or fatal error): batches are no
	 * longer finished or committed from the rebalance callback, and dead
	 * letters get LM_CONSUMER_STOP_FLUSH_MS at most, all of them together:
	 * their sends and flushes end at close_end. */
	bool closing;
	int64_t close_end;
	int64_t stall_ms;       /* lm_consumer_opts.stall_ms or LM_CONSUMER_STALL_MS */
	int64_t write_stall_ms; /* or LM_CONSUMER_WRITE_STALL_MS */
	rd_kafka_topic_partition_list_t *assigned; /* our copy of the assignment */
	int64_t next_lag_ms;
	/* Until the first catch-up: one target per assigned partition (see
	 * "catching up" below); NULL before the targets are set up. */
	struct target *targets;
	size_t ntargets;
	int64_t next_catchup_ms;
	int64_t next_position_warn_ms; /* see POSITION_WARN_MS */
	int64_t next_cover_ms;         /* see targets_cover */
	int64_t next_cover_warn_ms;
	/* How targets_cover reads the topics' partition counts
	 * (lm_consumer_opts.topics_partitions). */
	int (*topics_partitions)(rd_kafka_t *rk, const char *const *topics, size_t n,
	    int timeout_ms, int *counts, int *rvs);
	int64_t start_ms;
	/* Partitions read to their end while messages of theirs waited in a
	 * batch: the end is stored as their offset between batches (see
	 * "ends" below). At most one per assigned partition. */
	struct end *ends;
	size_t nends, cap_ends;
	/* The assigned partitions' offsets stored for the group, and the
	 * set-backs owed to it (see "setting the group back" below). */
	struct owned *owned;
	size_t nowned, cap_owned;
	rd_kafka_queue_t *backq; /* the set-back commits' results */
	bool back_sent;          /* one of them is under way */
	int64_t next_back_ms;    /* when a failed one is tried again */
	int64_t back_backoff_ms;
	/* The wall clock, and when the store was last current (see
	 * "refilling" below). run_s: the wall clock when the loop started, so
	 * before any end a catch-up compares with was read. */
	int64_t (*wall_s)(void);
	int64_t run_s;
	int64_t current_ms; /* lm_consumer_opts.current_ms or the default */
	bool round;         /* the targets are a round's (caught up) */
	int64_t round_at;   /* the wall clock before the round read the ends */
	int64_t next_round_ms;
	int64_t current_due; /* to record as when the store was current; -1 */
	/* Since when the consumer read the topics without a gap: the store's
	 * last current time, or when its filling or refill began (see
	 * current_since). */
	int64_t since_s;
	bool gap_warned;         /* current_since warned of a gap */
	int64_t next_current_ms; /* when a failed record is tried again */
	lm_ingest_refill refill; /* .active: this consumer refills the store */
	lm_kind sweep_kind;      /* being swept; 0: both done, finish_refill */
	char sweep_after[LM_STORE_ID_MAX + 1];
	char (*sweep_ids)[LM_STORE_ID_MAX + 1]; /* LM_CONSUMER_SWEEP_MAX */
	uint64_t swept[3];                      /* deleted by the refill, by kind */
	int64_t next_sweep_ms;
	uint32_t epoch[3]; /* of each kind's topic: see lm_config */
	/* The source of each kind's positions that the batches record
	 * (check_sources); its cluster is set at the first assignment. */
	lm_ingest_source source[3];
	bool cluster_checked; /* check_cluster ran */
	bool refused;         /* stopped by check_cluster: LM_EINVAL */

	/* Armed failure points (lm_consumer_fail_next), any thread. */
	atomic_uint faults[LM_CONSUMER_FAULT_COUNT_];

	/* Health, read by the HTTP checks on other threads. */
	atomic_llong heartbeat_ms;
	atomic_int nassigned;
	atomic_bool failing;
	atomic_bool caught_up; /* set once, never cleared */
	atomic_bool refilling; /* c->refill.active */
	atomic_bool sweeping;  /* the refill deletes what was not read again */
	atomic_llong behind;   /* while catching up: messages still to store */
	/* While catching up: the assigned partitions are stored to their end,
	 * but they are not every partition of both topics (targets_cover). */
	atomic_bool uncovered;
	atomic_int owed; /* partitions whose set-back is owed */

	/* Metrics (owned by the registry). */
	lm_counter *consumed[3]; /* by lm_kind */
	lm_counter *stored[3], *deleted[3], *duplicates[3];
	const char *reasons[NREASONS];
	lm_counter *rejected[NREASONS];
	size_t nreasons;
	lm_counter *dlq_total, *batch_failures;
	lm_counter *dlq_failed[LM_DLQ_DROP_COUNT_];
	uint64_t dlq_dropped_seen[LM_DLQ_DROP_COUNT_]; /* lm_dlq_dropped counted */
	lm_histogram *batch_seconds;
	lm_gauge *lag, *assigned_gauge;
	lm_counter *refills[2]; /* by enum refill_reason */
	lm_counter *refill_deleted[3];
	lm_gauge *refilling_gauge, *current_gauge;
};

/* Why a refill begins: the metric's reason label. */
enum refill_reason { REFILL_AGE = 0, REFILL_UNKNOWN = 1 };
static const char *const refill_reasons[2] = {"age", "unknown"};

/* The system's wall clock in Unix seconds (lm_consumer_opts.wall_s). */
static int64_t
system_wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec;
}

/* Writes "YYYY-MM-DDTHH:MM:SSZ" of Unix time at into buf (at least 32
 * bytes), "never" for 0. */
static const char *
utc(int64_t at, char *buf, size_t len)
{
	time_t t = (time_t) at;
	struct tm tm;

	if (at <= 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "never");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* Ends the loop for a reason other than a fatal Kafka error:
 * lm_consumer_run logs why and returns rv. The first reason given stays. */
static void
stop_loop(lm_consumer *c, int rv, const char *why)
{
	if (c->fatal)
		return;
	c->stop_why = why;
	c->stop_rv = rv;
	c->fatal = 1;
}

static void
heartbeat(lm_consumer *c)
{
	atomic_store(&c->heartbeat_ms, (long long) lm_clock_ms());
}

/*
 * heartbeat() while a batch is being written, until the write has run for
 * write_stall_ms: a slow store write, a throttled disk's fsync, is not a
 * stalled loop, and /healthz failing would restart ingest into the same
 * write; a write that runs longer (a disk that stopped answering) lets
 * /healthz fail stall_ms later. Logged once per write.
 */
static void
writer_heartbeat(lm_consumer *c)
{
	int64_t ran = lm_clock_ms() - c->flight.t0;

	if (c->flight.slot == NULL || atomic_load(&c->flight.done) ||
	    ran < c->write_stall_ms) {
		heartbeat(c);
	} else if (!c->flight.told) {
		lm_error("consumer.write",
		    "a store write has run for %" PRId64 " ms; /healthz fails if it "
		    "does not end",
		    ran);
		c->flight.told = true;
	}
}

/* heartbeat() for lm_dlq_set_tick: the DLQ's long waits show progress. */
static void
dlq_tick(void *arg)
{
	heartbeat(arg);
}

/* True when failure point f is armed; uses up one of its passes. */
static bool
fault(lm_consumer *c, lm_consumer_fault f)
{
	return lm_fault_take(&c->faults[f]);
}

void
lm_consumer_fail_next(lm_consumer *c, lm_consumer_fault f, unsigned n)
{
	if (c != NULL && f >= 0 && f < LM_CONSUMER_FAULT_COUNT_)
		atomic_store(&c->faults[f], n);
}

static lm_kind
topic_kind(const lm_consumer *c, const char *topic)
{
	if (strcmp(topic, c->cfg->topic_postings) == 0)
		return LM_KIND_POSTING;
	if (strcmp(topic, c->cfg->topic_profiles) == 0)
		return LM_KIND_PROFILE;
	return (lm_kind) 0;
}

static size_t
reason_index(const lm_consumer *c, const char *reason)
{
	for (size_t i = 0; i < c->nreasons; i++)
		if (strcmp(c->reasons[i], reason) == 0)
			return i;
	return c->nreasons; /* cannot happen: every token is registered */
}

/* ---- metrics -------------------------------------------------------------- */

static int
register_metrics(lm_consumer *c, lm_metrics *m, char *err, size_t errlen)
{
	static const char *const extra[] = {LM_INGEST_R_UNDECODABLE, LM_INGEST_R_BAD_JSON,
	    LM_INGEST_R_SCHEMA, LM_INGEST_R_KEY_MISMATCH, LM_INGEST_R_OVERSIZE};
	char labels[LM_METRICS_LABELS_MAX + 16], esc[LM_METRICS_LABELS_MAX - 16];
	const char *topics[3] = {NULL, c->cfg->topic_postings, c->cfg->topic_profiles};
	bool ok = true;

	for (int k = LM_KIND_POSTING; k <= LM_KIND_PROFILE; k++) {
		lm_metrics_label_escape(topics[k], esc, sizeof(esc));
		snprintf(labels, sizeof(labels), "topic=\"%s\"", esc);
		c->consumed[k] = lm_metrics_counter(m, "lunamatch_ingest_consumed_total",
		    "Messages consumed from the record topics.", labels);
		snprintf(
		    labels, sizeof(labels), "kind=\"%s\"", lm_kind_name((lm_kind) k));
		c->stored[k] = lm_metrics_counter(m, "lunamatch_ingest_stored_total",
		    "New record versions stored.", labels);
		c->deleted[k] = lm_metrics_counter(m, "lunamatch_ingest_deleted_total",
		    "Records deleted by tombstones.", labels);
		c->duplicates[k] =
		    lm_metrics_counter(m, "lunamatch_ingest_duplicates_total",
		        "Stale or repeated versions and tombstones skipped.", labels);
		ok = ok && c->consumed[k] && c->stored[k] && c->deleted[k] &&
		     c->duplicates[k];
	}
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		c->reasons[c->nreasons++] = extra[i];
	for (int r = LM_REJECT_NONE + 1; r < LM_REJECT_COUNT_; r++) {
		const char *name = lm_reject_name((lm_reject) r);
		if (reason_index(c, name) == c->nreasons)
			c->reasons[c->nreasons++] = name;
	}
	for (size_t i = 0; i < c->nreasons; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", c->reasons[i]);
		c->rejected[i] = lm_metrics_counter(m, "lunamatch_ingest_rejected_total",
		    "Messages rejected to the dead-letter topic, by reason.", labels);
		ok = ok && c->rejected[i];
	}
	c->dlq_total = lm_metrics_counter(m, "lunamatch_ingest_dlq_total",
	    "Rejected messages sent to the dead-letter topic, once per batch.", NULL);
	for (int r = 0; r < LM_DLQ_DROP_COUNT_; r++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"",
		    lm_dlq_drop_name((lm_dlq_drop) r));
		c->dlq_failed[r] =
		    lm_metrics_counter(m, "lunamatch_ingest_dlq_failed_total",
		        "Dead letters dropped for good (too large or invalid for the "
		        "broker); their messages were skipped.",
		        labels);
		ok = ok && c->dlq_failed[r];
	}
	c->batch_failures = lm_metrics_counter(m, "lunamatch_ingest_batch_failures_total",
	    "Batch attempts that failed (store or dead-letter delivery) and were "
	    "retried.",
	    NULL);
	c->batch_seconds = lm_metrics_histogram(m, "lunamatch_ingest_batch_seconds",
	    "Time to store a batch: from its first attempt to the end of the "
	    "transaction that stored it, failed attempts and back-off included.",
	    NULL, lm_latency_bounds, lm_latency_nbounds);
	c->lag = lm_metrics_gauge(m, "lunamatch_ingest_consumer_lag",
	    "Messages behind the end of the assigned partitions.", NULL);
	c->assigned_gauge = lm_metrics_gauge(m, "lunamatch_ingest_assigned_partitions",
	    "Partitions assigned to this group member.", NULL);
	for (int r = 0; r < 2; r++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", refill_reasons[r]);
		c->refills[r] = lm_metrics_counter(m, "lunamatch_ingest_refills_total",
		    "Refills of the store from the topics begun: it was last current "
		    "longer ago than LUNAMATCH_STORE_MAX_AGE_S (age), or did not say "
		    "when (unknown).",
		    labels);
		ok = ok && c->refills[r];
	}
	for (int k = LM_KIND_POSTING; k <= LM_KIND_PROFILE; k++) {
		snprintf(
		    labels, sizeof(labels), "kind=\"%s\"", lm_kind_name((lm_kind) k));
		c->refill_deleted[k] =
		    lm_metrics_counter(m, "lunamatch_ingest_refill_deleted_total",
		        "Records a refill deleted because the topics no longer hold them "
		        "(their tombstones went while the store was away).",
		        labels);
		ok = ok && c->refill_deleted[k];
	}
	c->refilling_gauge = lm_metrics_gauge(m, "lunamatch_ingest_refilling",
	    "1 while the store is refilled from the topics.", NULL);
	c->current_gauge = lm_metrics_gauge(m, "lunamatch_ingest_store_current_seconds",
	    "When the store was last current with the topics, in Unix seconds (0: "
	    "not known).",
	    NULL);
	ok = ok && c->dlq_total && c->batch_failures && c->batch_seconds && c->lag &&
	     c->assigned_gauge && c->refilling_gauge && c->current_gauge;
	if (!ok) {
		snprintf(err, errlen, "cannot register the ingest metrics");
		return LM_EINTERNAL;
	}
	return LM_OK;
}

/* ---- batches -------------------------------------------------------------
 *
 * A batch goes through: filled (c->open) -> closed: its dead letters sent
 * and its store transaction started on a writer thread (c->flight) ->
 * completed on this thread: the DLQ flush, then its offsets stored, metrics,
 * StoreNotify. The next batch is filled meanwhile, but is closed only after
 * the batch in flight completed, so store transactions run one at a time,
 * in consumption order, and offsets are stored in order, each only after
 * its batch is durable. A failed first attempt is retried here, as a batch
 * finished without the writer is. When a batch is given up, the open one is
 * given up too: its offsets would skip the records of the other.
 */

static void
release_rejects(struct slot *s)
{
	for (size_t i = 0; i < s->nrejects; i++) {
		lm_dlq_letter_free(s->rejects[i].letter);
		s->rejects[i].letter = NULL;
	}
	s->nrejects = 0;
	s->sent = false;
	s->delivered = false;
	memset(s->pending, 0, sizeof(s->pending));
}

static void
drop_slot(struct slot *s)
{
	release_rejects(s);
	lm_ingest_batch_reset(s->batch);
}

/* How long the dead letters have left once closing (never negative). */
static int
close_left(const lm_consumer *c)
{
	int64_t left = c->close_end - lm_clock_ms();
	return left > 0 ? (int) left : 0;
}

/* Whether a dead letter needs no (further) sending: delivered, or dropped
 * for good (and counted then, once). */
static bool
fate_done(lm_dlq_fate f)
{
	return f == LM_DLQ_DELIVERED || f == LM_DLQ_DROPPED;
}

/*
 * Queues the batch's dead letters; on a retry, those not delivered or
 * dropped yet, so that a letter the broker refused for good is neither
 * sent nor counted again, nor a delivered one duplicated. A full local queue
 * is waited on POLL_MS at a time with a heartbeat in between, so that the
 * loop stays live, for at most DLQ_SEND_MS in all while the loop runs, or
 * until c->close_end once closing. While the loop runs, a stop ends the
 * sending at once. The letters not queued then keep the fate LM_DLQ_UNSENT,
 * which fails the attempt (after_store): the batch is retried, or given up
 * without its offsets stored. Returns LM_OK when every letter was queued
 * (or refused at once), LM_ECLOSED after a stop, LM_ETIMEDOUT when the time
 * ran out.
 */
static int
send_rejects(lm_consumer *c, struct slot *s)
{
	int64_t end = c->closing ? c->close_end : lm_clock_ms() + DLQ_SEND_MS;
	int rv = LM_OK;

	s->sent = true;
	for (size_t i = 0; i < s->nrejects && rv == LM_OK; i++) {
		struct held *h = &s->rejects[i];
		if (fate_done(h->fate))
			continue;
		h->fate = LM_DLQ_UNSENT;
		for (;;) {
			int64_t left = end - lm_clock_ms();
			heartbeat(c);
			if (!c->closing && *c->stop) {
				rv = LM_ECLOSED;
				break;
			}
			if (left <= 0) {
				rv = LM_ETIMEDOUT;
				break;
			}
			if (lm_dlq_send(c->dlq, h->letter, h->reason, h->error,
			        left < POLL_MS ? (int) left : POLL_MS,
			        &h->fate) != LM_EBUSY)
				break;
		}
	}
	if (rv != LM_OK)
		lm_warn("batch.dlq", "dead letters of the batch not all queued: %s",
		    rv == LM_ECLOSED ? "stopping" : "the local queue stays full");
	return rv;
}

/* Whether every dead letter of s was delivered or dropped for good. */
static bool
letters_done(const struct slot *s)
{
	for (size_t i = 0; i < s->nrejects; i++)
		if (!fate_done(s->rejects[i].fate))
			return false;
	return true;
}

/* ---- where a partition resumes ------------------------------------------- */

static const char *
kind_topic(const lm_consumer *c, lm_kind kind)
{
	return kind == LM_KIND_POSTING ? c->cfg->topic_postings : c->cfg->topic_profiles;
}

/*
 * Sets *where to where the store says partition of topic stands
 * (offsets.h): the offset it is stored up to at the topic's epoch;
 * RD_KAFKA_OFFSET_BEGINNING when the store holds it at another epoch (the
 * topic was recreated since), when the store never had a change (a new or
 * replaced store), or when the store kept positions from its start and has
 * none of this partition (never stored); otherwise RD_KAFKA_OFFSET_INVALID
 * (a store written before it kept positions: only the group's committed
 * offset tells). During a refill: how far the refill read the partition
 * again, or RD_KAFKA_OFFSET_BEGINNING when it has not (see "refilling"
 * below). Returns LM_OK, or the store's error with *where untouched: the
 * caller decides what a store that cannot be read means.
 */
static int
store_offset(lm_consumer *c, const char *topic, int32_t partition, int64_t *where)
{
	uint32_t epoch = c->epoch[topic_kind(c, topic)];
	uint32_t at = 0;
	uint64_t seq = 0;
	int64_t next = 0;
	bool kept = false;
	int rv;

	if (c->refill.active) {
		rv = fault(c, LM_CONSUMER_FAULT_POSITION)
		         ? LM_EBUSY
		         : lm_ingest_refill_offset_get(
		               c->store, c->refill.id, topic, partition, &at, &next);
		if (rv == LM_OK || rv == LM_ENOENT)
			*where =
			    rv == LM_OK && at == epoch ? next : RD_KAFKA_OFFSET_BEGINNING;
		return rv == LM_ENOENT ? LM_OK : rv;
	}
	rv = fault(c, LM_CONSUMER_FAULT_POSITION)
	         ? LM_EBUSY
	         : lm_ingest_offset_get(c->store, topic, partition, &at, &next);
	if (rv == LM_OK) {
		*where = at == epoch ? next : RD_KAFKA_OFFSET_BEGINNING;
		return LM_OK;
	}
	if (rv == LM_ENOENT && (rv = lm_store_last_seq(c->store, &seq)) == LM_OK &&
	    (rv = lm_ingest_positions_kept(c->store, &kept)) == LM_OK)
		*where = seq == 0 || kept ? RD_KAFKA_OFFSET_BEGINNING
		                          : RD_KAFKA_OFFSET_INVALID;
	return rv;
}

/*
 * Where a partition resumes (docs/ingest.md, "Where ingest resumes"), from
 * the store's offset (store_offset) and the group's committed one
 * (committed; negative when the group has none, or unknown): the earlier
 * of the two, so that a store never skips what it lacks (a new, replaced or
 * restored store behind its group) and a replay the operator asks for (the
 * group's offsets reset, a new group) still happens. A group without an
 * offset starts at the beginning (auto.offset.reset). Without a store
 * offset (a store written before it kept positions) the group's offset
 * alone, as before.
 */
static int64_t
resume_at(int64_t stored, int64_t committed, bool known)
{
	if (stored == RD_KAFKA_OFFSET_INVALID)
		return known ? committed : RD_KAFKA_OFFSET_INVALID;
	if (stored == RD_KAFKA_OFFSET_BEGINNING || !known)
		return stored;
	if (committed < 0)
		return RD_KAFKA_OFFSET_BEGINNING;
	return committed < stored ? committed : stored;
}

/* ---- setting the group back ---------------------------------------------
 *
 * The match service takes the ingest group's committed offsets as proof of
 * what the store holds (services/match/owner.c), so they must never be
 * ahead of the store. librdkafka's auto-commit (and the commits on
 * revocation and close) only ever send an offset stored above the one the
 * handle committed last, and an assignment at an explicit offset does not
 * learn the group's. So two cases need an explicit commit: a partition
 * that resumes before the group's committed offset (set_resume: a new or
 * restored store), and one whose stored offsets go back (an offset reset
 * after its log was truncated or its topic recreated, or a seek). Such a
 * partition owes a set-back: its latest stored offset is committed
 * (send_back) and tried again with back-off until the coordinator takes
 * it, or until the stored offsets pass where the group may be (auto-commit
 * then moves the group on). While one is owed the consumer is not ready
 * and does not count as caught up. The loop serves the set-back each time
 * round, and also while it waits for the store (wait_back): for a batch
 * being written before it hands over the next, and between the attempts
 * of a failing batch. Either can take seconds, the time in which the new
 * store refills, and the group's offset stays ahead of it meanwhile.
 */
struct owned {
	lm_kind kind;
	int32_t partition;
	/* The offset last stored for the group (a batch's or an end), or
	 * where the partition resumed; -1 while not known. */
	int64_t stored;
	/* Owed: the group's committed offset may be up to this, above
	 * stored (INT64_MAX: not known); -1 when nothing is owed. */
	int64_t ahead;
	/* Raised each time ahead is; sent: its value when the commit under
	 * way was sent, whose success settles the set-back only if no later
	 * one was owed meanwhile. */
	unsigned round, sent;
	/* Where the consumer last read the partition to its end (a
	 * PARTITION_EOF): every message before it was handed over, and once
	 * none waits in a batch, stored (targets_behind). -1: not since the
	 * assignment, or forgotten: a batch was given up, or the partition is
	 * read again from further back. */
	int64_t eof;
};

static struct owned *
find_owned(lm_consumer *c, lm_kind kind, int32_t partition)
{
	for (size_t i = 0; i < c->nowned; i++)
		if (c->owned[i].kind == kind && c->owned[i].partition == partition)
			return &c->owned[i];
	return NULL;
}

static void
count_owed(lm_consumer *c)
{
	int n = 0;

	for (size_t i = 0; i < c->nowned; i++)
		n += c->owned[i].ahead >= 0;
	atomic_store(&c->owed, n);
}

/* Owes a set-back of o to where the group may be (ahead), unless its
 * stored offset is there already. */
static void
owe(lm_consumer *c, struct owned *o, int64_t ahead)
{
	if (ahead <= o->stored || ahead <= o->ahead)
		return;
	o->ahead = ahead;
	o->round++;
	count_owed(c);
}

/* Forgets (kind, partition): revoked, its set-back is its next owner's. */
static void
disown(lm_consumer *c, lm_kind kind, int32_t partition)
{
	struct owned *o = find_owned(c, kind, partition);

	if (o != NULL) {
		*o = c->owned[--c->nowned];
		count_owed(c);
	}
}

/* Tracks (kind, partition), assigned to resume at offset `at` (stored),
 * owing a set-back to ahead (-1: none). Out of memory the loop stops: an
 * untracked partition could leave the group ahead of the store. */
static void
own(lm_consumer *c, lm_kind kind, int32_t partition, int64_t at, int64_t ahead)
{
	struct owned *o;

	disown(c, kind, partition);
	if (c->nowned == c->cap_owned) {
		size_t cap = c->cap_owned ? 2 * c->cap_owned : 8;
		struct owned *n = realloc(c->owned, cap * sizeof(*n));
		if (n == NULL) {
			stop_loop(c, LM_ENOMEM,
			    "out of memory for the partitions' stored offsets");
			return;
		}
		c->owned = n;
		c->cap_owned = cap;
	}
	o = &c->owned[c->nowned++];
	*o = (struct owned){kind, partition, at, -1, 0, 0, -1};
	owe(c, o, ahead);
}

/* Offset `at` of (kind, partition) was stored for the group. */
static void
note_stored(lm_consumer *c, lm_kind kind, int32_t partition, int64_t at)
{
	struct owned *o = find_owned(c, kind, partition);
	int64_t before;

	if (o == NULL)
		return;
	before = o->stored;
	o->stored = at;
	if (before > at) /* gone back: the group may hold what was before */
		owe(c, o, before);
	else if (o->ahead >= 0 && at >= o->ahead) {
		o->ahead = -1; /* passed: auto-commit moves the group on */
		count_owed(c);
	}
}

/* Sends the owed set-backs, unless one is under way or a failed one waits
 * for its back-off. */
static void
send_back(lm_consumer *c)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t e;

	if (c->back_sent || atomic_load(&c->owed) == 0 || lm_clock_ms() < c->next_back_ms)
		return;
	if ((l = rd_kafka_topic_partition_list_new(atomic_load(&c->owed))) == NULL)
		return;
	for (size_t i = 0; i < c->nowned; i++) {
		struct owned *o = &c->owned[i];
		if (o->ahead < 0)
			continue;
		o->sent = o->round;
		rd_kafka_topic_partition_list_add(l, kind_topic(c, o->kind), o->partition)
		    ->offset = o->stored;
	}
	e = rd_kafka_commit_queue(c->rk, l, c->backq, NULL, NULL);
	rd_kafka_topic_partition_list_destroy(l);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
		c->back_sent = true;
		return;
	}
	lm_warn("consumer.resume",
	    "the group's offsets of %d partitions not set back to the store's: %s",
	    atomic_load(&c->owed), rd_kafka_err2name(e));
	c->next_back_ms = lm_clock_ms() + c->back_backoff_ms;
	c->back_backoff_ms = lm_backoff_next(
	    c->back_backoff_ms, LM_CONSUMER_BACKOFF_MIN_MS, LM_CONSUMER_BACKOFF_MAX_MS);
}

/* Takes the result of the set-back under way, waiting up to wait_ms for
 * it: a partition the coordinator took owes nothing more, unless its
 * offsets went back again since it was sent; the others are sent again
 * after a back-off. */
static void
serve_back(lm_consumer *c, int wait_ms)
{
	rd_kafka_event_t *ev;

	while ((ev = rd_kafka_queue_poll(c->backq, wait_ms)) != NULL) {
		const rd_kafka_topic_partition_list_t *l;
		rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
		int failed = 0, settled = 0;

		wait_ms = 0;
		if (rd_kafka_event_type(ev) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
			rd_kafka_event_destroy(ev);
			continue;
		}
		c->back_sent = false;
		l = rd_kafka_event_topic_partition_list(ev);
		for (int i = 0; l != NULL && i < l->cnt; i++) {
			const rd_kafka_topic_partition_t *p = &l->elems[i];
			struct owned *o =
			    find_owned(c, topic_kind(c, p->topic), p->partition);
			if (e != RD_KAFKA_RESP_ERR_NO_ERROR ||
			    p->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
				failed++;
				if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
					e = p->err;
			} else if (o != NULL && o->ahead >= 0 && o->sent == o->round) {
				o->ahead = p->offset <= o->stored ? -1 : p->offset;
				settled += o->ahead < 0;
			}
		}
		if (l == NULL && e != RD_KAFKA_RESP_ERR_NO_ERROR)
			failed = atomic_load(&c->owed);
		count_owed(c);
		if (failed > 0) {
			lm_warn("consumer.resume",
			    "the group's offsets of %d partitions not set back to the "
			    "store's: %s; trying again in %" PRId64 " ms",
			    failed, rd_kafka_err2name(e), c->back_backoff_ms);
			c->next_back_ms = lm_clock_ms() + c->back_backoff_ms;
			c->back_backoff_ms = lm_backoff_next(c->back_backoff_ms,
			    LM_CONSUMER_BACKOFF_MIN_MS, LM_CONSUMER_BACKOFF_MAX_MS);
		} else {
			c->back_backoff_ms = LM_CONSUMER_BACKOFF_MIN_MS;
		}
		if (settled > 0)
			lm_info("consumer.resume",
			    "the group's offsets of %d partitions set back to the "
			    "store's",
			    settled);
		rd_kafka_event_destroy(ev);
	}
}

/* Serves the set-back (serve_back, send_back) while the loop waits for the
 * store, until the clock reaches `until` or sooner: the result of the one
 * under way ends the wait, and so does the end of a failed one's back-off
 * once it is sent again. */
static void
wait_back(lm_consumer *c, int64_t until)
{
	int64_t now = lm_clock_ms();

	if (!c->back_sent && atomic_load(&c->owed) > 0 && c->next_back_ms < until)
		until = c->next_back_ms;
	serve_back(c, until > now ? (int) (until - now) : 0);
	send_back(c);
}

/*
 * Sets each partition of an assignment to where it resumes (resume_at) and
 * tracks it (own): one that resumes before the group's committed offset,
 * or whose committed offset could not be read, owes a set-back.
 */
static void
set_resume(lm_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(parts);
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__NO_OFFSET;

	if (l != NULL)
		e = rd_kafka_committed(c->rk, l, CATCHUP_COMMITTED_MS);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    fault(c, LM_CONSUMER_FAULT_RESUME_COMMITTED))
		e = RD_KAFKA_RESP_ERR__TIMED_OUT;
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_warn("consumer.resume",
		    "committed offsets not read (%s): partitions resume from the "
		    "store, and the group's offsets are set to the store's",
		    rd_kafka_err2name(e));
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		lm_kind k = topic_kind(c, p->topic);
		if (k == 0)
			continue;
		bool known = e == RD_KAFKA_RESP_ERR_NO_ERROR &&
		             l->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
		int64_t group = known ? l->elems[i].offset : -1;
		int64_t stored = RD_KAFKA_OFFSET_INVALID;
		int rv = store_offset(c, p->topic, p->partition, &stored);
		if (rv != LM_OK) {
			lm_error("consumer.resume",
			    "cannot read how far the store holds %s [%" PRId32 "]: %s",
			    p->topic, p->partition, lm_strerror(rv));
			stop_loop(c, rv,
			    "how far the store holds a partition cannot be read, and "
			    "resuming anywhere could skip records");
		}
		p->offset = resume_at(stored, group, known);
		/* A store written before positions were kept resumes at the
		 * group's offset: it has no other. */
		if (p->offset != RD_KAFKA_OFFSET_INVALID)
			own(c, k, p->partition, p->offset >= 0 ? p->offset : 0,
			    known ? group : INT64_MAX);
		else
			own(c, k, p->partition, -1, -1);
		lm_info("consumer.resume",
		    "%s [%" PRId32 "]: store at %" PRId64 ", group at %" PRId64
		    ", resumes at %" PRId64,
		    p->topic, p->partition, stored, group, p->offset);
	}
	if (l != NULL)
		rd_kafka_topic_partition_list_destroy(l);
}

/* ---- catching up ----------------------------------------------------------
 *
 * A new replica starts with an empty store and a group of its own: until it
 * has stored what its topics held when it joined, its match service would
 * answer from part of the data. /readyz therefore stays false until every
 * assigned partition is durable up to the end offset it had when first seen
 * (librdkafka's cached high watermark, known after the partition's first
 * fetch). A partition's durable position is the furthest of the offset the
 * store holds it stored up to (store_offset; for a store written before
 * it kept positions, the group's committed offset, read at every check
 * while catching up: one broker round trip), the partition's log start, and
 * the batches stored since the targets were set up; and the partitions
 * assigned must be every partition of both topics (targets_cover): every
 * ingest reads every partition into its own store, so one assigned only
 * some (another member in its group) holds part of the records however
 * far it stores them. The state is set once per process: after the first
 * catch-up, a burst of new messages or a rebalance does not make the
 * replica unready. A rebalance before it starts the targets again from the
 * new assignment.
 */

static void
drop_targets(lm_consumer *c)
{
	free(c->targets);
	c->targets = NULL;
	c->ntargets = 0;
}

/* Whether a batch not yet stored holds messages of topic/partition. */
static bool
pending(const lm_consumer *c, const char *topic, int32_t partition)
{
	return lm_ingest_batch_next(c->open->batch, topic, partition) >= 0 ||
	       (c->flight.slot != NULL &&
	           lm_ingest_batch_next(c->flight.slot->batch, topic, partition) >= 0);
}

/*
 * Ends. A topic written by a transactional producer ends each partition in
 * control records, which take offsets but are never delivered, so the
 * offsets stored for the batches stop below the partition's end. Whoever
 * compares the group's committed offsets with the end (match's event
 * owners wait for the ingest group to pass the end, owner.c) would wait for
 * ever. So a partition read to its end (a PARTITION_EOF event at offset
 * `end`) stores end as its offset once none of its messages waits in a
 * batch: every message before end was delivered, and all of them are
 * stored. Then, or between batches when some waited. A batch that stores a
 * later offset drops the end, and so does any message of the partition
 * (a later one supersedes it; an earlier one, read again after a seek,
 * comes before it). An assignment or revocation drops the ends of its
 * partitions, and a batch given up drops every end: its messages are not
 * stored, and an end stored after it would pass them. A stored offset
 * never goes back.
 */
struct end {
	lm_kind kind;
	int32_t partition;
	int64_t offset;
};

static void
store_end(lm_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
	(void) rd_kafka_offsets_store(c->rk, l); /* revoked meanwhile: moot */
	rd_kafka_topic_partition_list_destroy(l);
	note_stored(c, topic_kind(c, topic), partition, offset);
}

/* Drops the end of (kind, partition) when it is at most offset (offset
 * INT64_MAX: whatever it is). */
static void
drop_end(lm_consumer *c, lm_kind kind, int32_t partition, int64_t offset)
{
	for (size_t i = 0; i < c->nends; i++)
		if (c->ends[i].kind == kind && c->ends[i].partition == partition &&
		    c->ends[i].offset <= offset) {
			c->ends[i] = c->ends[--c->nends];
			return;
		}
}

/* Keeps the end of (kind, partition) for later; out of memory, it is not
 * kept (the committed offset then stays below the control records). */
static void
keep_end(lm_consumer *c, lm_kind kind, int32_t partition, int64_t offset)
{
	drop_end(c, kind, partition, INT64_MAX);
	if (c->nends == c->cap_ends) {
		size_t cap = c->cap_ends ? 2 * c->cap_ends : 8;
		struct end *e = realloc(c->ends, cap * sizeof(*e));
		if (e == NULL)
			return;
		c->ends = e;
		c->cap_ends = cap;
	}
	c->ends[c->nends++] = (struct end){kind, partition, offset};
}

/* Stores the ends kept of the partitions none of whose messages waits in
 * a batch (pending); keeps the others. */
static void
store_ends(lm_consumer *c)
{
	size_t k = 0;

	for (size_t i = 0; i < c->nends; i++) {
		const char *topic = kind_topic(c, c->ends[i].kind);
		if (pending(c, topic, c->ends[i].partition))
			c->ends[k++] = c->ends[i];
		else
			store_end(c, topic, c->ends[i].partition, c->ends[i].offset);
	}
	c->nends = k;
}

/* Batch of partition (kind, partition) durable up to next (exclusive). */
static void
note_durable(lm_consumer *c, lm_kind kind, int32_t partition, int64_t next)
{
	for (size_t i = 0; i < c->ntargets; i++) {
		struct target *t = &c->targets[i];
		if (t->kind == kind && t->partition == partition && next >= 0 &&
		    next > t->durable)
			t->durable = next;
	}
}

/* Sets up the targets of the current assignment when there are none (and
 * the first catch-up is still to come). LM_OK, LM_EBUSY (nothing assigned)
 * or LM_ENOMEM. */
static int
make_targets(lm_consumer *c)
{
	const rd_kafka_topic_partition_list_t *a = c->assigned;

	if (a == NULL || a->cnt == 0)
		return LM_EBUSY;
	if (c->targets != NULL || atomic_load(&c->caught_up))
		return LM_OK;
	if ((c->targets = calloc((size_t) a->cnt, sizeof(*c->targets))) == NULL)
		return LM_ENOMEM;
	c->ntargets = (size_t) a->cnt;
	for (int i = 0; i < a->cnt; i++)
		c->targets[i] = (struct target){.kind = topic_kind(c, a->elems[i].topic),
		    .partition = a->elems[i].partition,
		    .end = RD_KAFKA_OFFSET_INVALID,
		    .durable = RD_KAFKA_OFFSET_INVALID};
	return LM_OK;
}

/*
 * The consumer read partition (kind, partition) to its end, at offset
 * end: every message before it was handed to us, or was a transaction's
 * control record, which takes an offset but is never delivered (a topic
 * written by a transactional producer). Once nothing of the partition
 * waits in a batch, it is durable up to end (targets_behind); the offsets
 * stored stop at the last message, below the control records after it.
 */
static void
note_eof(lm_consumer *c, lm_kind kind, int32_t partition, int64_t end)
{
	struct owned *o = find_owned(c, kind, partition);

	if (o != NULL && end > o->eof)
		o->eof = end;
}

/* Forgets where partition (kind, partition) was read to its end, or every
 * partition's for kind 0: a batch of its messages was given up, or it is
 * read again from further back. */
static void
forget_eof(lm_consumer *c, lm_kind kind, int32_t partition)
{
	for (size_t i = 0; i < c->nowned; i++)
		if (kind == 0 ||
		    (c->owned[i].kind == kind && c->owned[i].partition == partition))
			c->owned[i].eof = -1;
}

/* Sets up the targets of the current assignment when there are none, then
 * raises each durable position to where the store says the partition
 * stands (store_offset): batches stored before the targets existed count.
 * For a store written before it kept positions, that is the group's
 * committed offset, which counts once auto-commit has sent it. LM_OK or a
 * Kafka error (tried again at the next check). */
static int
refresh_targets(lm_consumer *c)
{
	rd_kafka_topic_partition_list_t *l, *lc;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	int rv, unread = LM_OK;

	if ((rv = make_targets(c)) != LM_OK)
		return rv;
	/* l: where each partition resumes; lc: those that resume from the
	 * group's committed offset, to be read. The others' committed
	 * offsets (of the store before this one, or of their topic before it
	 * was recreated) prove nothing about this store. */
	if ((l = rd_kafka_topic_partition_list_copy(c->assigned)) == NULL)
		return LM_ENOMEM;
	if ((lc = rd_kafka_topic_partition_list_new(l->cnt)) == NULL) {
		rd_kafka_topic_partition_list_destroy(l);
		return LM_ENOMEM;
	}
	for (int i = 0; i < l->cnt; i++) {
		rd_kafka_topic_partition_t *p = &l->elems[i];
		/* Not read: not known yet (raises nothing), read again at the
		 * next check. */
		p->offset = RD_KAFKA_OFFSET_BEGINNING;
		if (topic_kind(c, p->topic) != 0 &&
		    (rv = store_offset(c, p->topic, p->partition, &p->offset)) != LM_OK) {
			if (unread == LM_OK &&
			    lm_clock_ms() >= c->next_position_warn_ms) {
				lm_warn("consumer.catchup",
				    "cannot read how far the store holds %s [%" PRId32
				    "]: %s; checked again",
				    p->topic, p->partition, lm_strerror(rv));
				c->next_position_warn_ms =
				    lm_clock_ms() + POSITION_WARN_MS;
			}
			unread = rv;
			p->offset = RD_KAFKA_OFFSET_BEGINNING;
		}
		if (p->offset == RD_KAFKA_OFFSET_INVALID)
			rd_kafka_topic_partition_list_add(lc, p->topic, p->partition);
	}
	if (lc->cnt > 0) {
		e = rd_kafka_committed(c->rk, lc, CATCHUP_COMMITTED_MS);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    fault(c, LM_CONSUMER_FAULT_COMMITTED))
			e = RD_KAFKA_RESP_ERR__TIMED_OUT;
	}
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_warn("consumer.catchup", "committed offsets not read: %s",
		    rd_kafka_err2name(e));
	else
		for (int i = 0; i < lc->cnt; i++)
			if (lc->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
				note_durable(c, topic_kind(c, lc->elems[i].topic),
				    lc->elems[i].partition, lc->elems[i].offset);
	for (int i = 0; i < l->cnt; i++)
		note_durable(c, topic_kind(c, l->elems[i].topic), l->elems[i].partition,
		    l->elems[i].offset);
	rd_kafka_topic_partition_list_destroy(lc);
	rd_kafka_topic_partition_list_destroy(l);
	if (unread != LM_OK)
		return unread;
	return e == RD_KAFKA_RESP_ERR_NO_ERROR ? LM_OK : lm_kafka_err(e);
}

/*
 * Raises each target's durable position to where the store holds its
 * partition (refresh_targets), the partition's log start and where it was
 * read to its end with nothing of it waiting in a batch, and sets *behind
 * to the messages still to store up to the targets' ends: -1 while an end
 * or a durable position is not known. Returns LM_OK or refresh_targets'
 * error (*behind untouched).
 */
static int
targets_behind(lm_consumer *c, long long *behind)
{
	bool known = true;
	int rv;

	if ((rv = refresh_targets(c)) != LM_OK)
		return rv;
	*behind = 0;
	for (size_t i = 0; i < c->ntargets; i++) {
		struct target *t = &c->targets[i];
		const char *topic = kind_topic(c, t->kind);
		const struct owned *o = find_owned(c, t->kind, t->partition);
		int64_t lo = -1, hi = -1;
		if (rd_kafka_get_watermark_offsets(c->rk, topic, t->partition, &lo,
		        &hi) == RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (t->end < 0 && hi >= 0)
				t->end = hi;
			/* Offsets below the log start can no longer be read. */
			if (lo >= 0 && lo > t->durable)
				t->durable = lo;
		}
		if (o != NULL && o->eof > t->durable && !pending(c, topic, t->partition))
			t->durable = o->eof;
		if (t->end < 0 || t->durable < 0)
			known = false;
		else if (t->durable < t->end)
			*behind += t->end - t->durable;
	}
	if (!known)
		*behind = -1;
	return LM_OK;
}

/* Whether a target is partition of kind k's topic. */
static bool
targeted(const lm_consumer *c, lm_kind k, int32_t partition)
{
	for (size_t i = 0; i < c->ntargets; i++)
		if (c->targets[i].kind == k && c->targets[i].partition == partition)
			return true;
	return false;
}

/*
 * Whether the targets hold every partition of both topics as the cluster's
 * metadata gives them: the store holds the topics only when every one of
 * them is stored to its end, and a topic missing from the assignment (its
 * metadata refused or unknown, a topic being re-created, a second member
 * in the group) leaves it short of that. Reads the metadata of both topics
 * in one request (for LM_CONSUMER_ENDS_MS at most, the loop waiting
 * meanwhile), at most once a second while they are not held; a failure or
 * a partition not held is logged every POSITION_WARN_MS at most.
 */
static bool
targets_cover(lm_consumer *c)
{
	const char *const topics[2] = {
	    kind_topic(c, LM_KIND_POSTING), kind_topic(c, LM_KIND_PROFILE)};
	int n[2] = {0, 0}, trv[2] = {LM_OK, LM_OK}, rv;
	int64_t now = lm_clock_ms();

	if (now < c->next_cover_ms)
		return false;
	rv = c->topics_partitions(c->rk, topics, 2, LM_CONSUMER_ENDS_MS, n, trv);
	writer_heartbeat(c);
	for (int t = 0; t < 2; t++) {
		lm_kind k = t == 0 ? LM_KIND_POSTING : LM_KIND_PROFILE;
		int e = rv != LM_OK ? rv : trv[t];
		int32_t missing = -1;
		for (int32_t p = 0; e == LM_OK && p < n[t] && missing < 0; p++)
			if (!targeted(c, k, p))
				missing = p;
		if (e == LM_OK && n[t] > 0 && missing < 0)
			continue;
		c->next_cover_ms = lm_clock_ms() + 1000;
		if (lm_clock_ms() < c->next_cover_warn_ms)
			return false;
		c->next_cover_warn_ms = lm_clock_ms() + POSITION_WARN_MS;
		if (rv != LM_OK)
			lm_warn("consumer.catchup",
			    "the partitions of %s and %s not read from the cluster "
			    "(%s): the store is not taken to hold the topics",
			    topics[0], topics[1], lm_strerror(rv));
		else if (e != LM_OK || n[t] == 0)
			lm_warn("consumer.catchup",
			    "the partitions of %s not read from the cluster (%s): the "
			    "store is not taken to hold the topics",
			    topics[t], e != LM_OK ? lm_strerror(e) : "none");
		else
			lm_warn("consumer.catchup",
			    "%s [%" PRId32 "] is not assigned to this consumer of group "
			    "%s: the store is not taken to hold the topics. Every "
			    "ingest reads every partition into its own store, under a "
			    "group of its own (LUNAMATCH_GROUP_ID): is another "
			    "ingest a member of this group?",
			    topics[t], missing, c->cfg->group_id);
		return false;
	}
	return true;
}

/*
 * The store holds the topics up to ends read at wall time `at`: every
 * message written before `at` is stored, unless the topics dropped some
 * before the consumer read them. A tombstone stays in the topics
 * delete.retention.ms at least after it was written, so none written after
 * c->since_s was dropped unread if the consumer got here within
 * cfg->store_max_age_s of it: then `at` is due to be recorded as when the
 * store was last current (record_current). Otherwise (the brokers were away
 * for longer, or reading took that long) nothing is recorded, so that the
 * store ages from c->since_s and is refilled at the next start; said once.
 */
static void
current_since(lm_consumer *c, int64_t at)
{
	int64_t now = c->wall_s(), max = (int64_t) c->cfg->store_max_age_s;
	char when[32];

	if (now - c->since_s <= max) {
		c->current_due = at;
		return;
	}
	if (!c->gap_warned)
		lm_warn("store.current",
		    "the store holds the topics up to their ends, but they were read "
		    "without a gap only since %s, %" PRId64 " s ago, longer than "
		    "LUNAMATCH_STORE_MAX_AGE_S (%" PRId64 " s; the brokers were "
		    "away, or reading took that long): the topics may have dropped "
		    "tombstones the store never read. It is not recorded as current, "
		    "and is refilled at the next start",
		    utc(c->since_s, when, sizeof(when)), now - c->since_s, max);
	c->gap_warned = true;
}

/* Called every CATCHUP_MS until the first catch-up. A refill's catch-up is
 * followed by its sweep (see "refilling"). */
static void
check_catchup(lm_consumer *c)
{
	long long behind = 0;
	size_t n;

	if (targets_behind(c, &behind) != LM_OK)
		return;
	atomic_store(&c->behind, behind);
	if (behind != 0 || atomic_load(&c->owed) > 0)
		return;
	n = c->ntargets;
	/* The store holds the topics only once every partition of both is
	 * stored (targets_cover): until then ingest is not started, so that a
	 * replica does not answer from part of the records because another
	 * member of its group (two deployments or two replicas under one
	 * LUNAMATCH_GROUP_ID) holds the others, or a topic is refused or
	 * missing. A refill's sweep, which deletes what it did not read
	 * again, needs it too: it gives each kind one partition at least.
	 * A rebalance sets the targets up again for the new assignment. */
	if (!targets_cover(c)) {
		if (!atomic_exchange(&c->uncovered, true))
			lm_error("consumer.catchup",
			    "the partitions assigned (%zu) are stored to their end, but "
			    "they are not known to be every partition of %s and %s "
			    "(another member in consumer group %s, a topic refused or "
			    "missing, or their metadata not read: see the warnings): "
			    "not started (/startedz 503) until they are",
			    n, kind_topic(c, LM_KIND_POSTING),
			    kind_topic(c, LM_KIND_PROFILE), c->cfg->group_id);
		return;
	}
	atomic_store(&c->uncovered, false);
	drop_targets(c);
	if (c->refill.active) {
		lm_info("store.refill",
		    "%zu partitions read again to their end in %.1f s: deleting the "
		    "records the topics no longer hold",
		    n, (double) (lm_clock_ms() - c->start_ms) / 1000.0);
		c->sweep_kind = LM_KIND_POSTING;
		c->sweep_after[0] = '\0';
		atomic_store(&c->sweeping, true);
		return;
	}
	lm_info("consumer.catchup",
	    "caught up with the topics: %zu partitions stored to their end in %.1f s", n,
	    (double) (lm_clock_ms() - c->start_ms) / 1000.0);
	atomic_store(&c->caught_up, true);
	/* Every end compared was read after the loop started. */
	current_since(c, c->run_s);
	c->next_round_ms = lm_clock_ms() + c->current_ms;
}

/* ---- showing the store current -------------------------------------------
 *
 * Once caught up, every current_ms a round reads the ends of the assigned
 * partitions from the brokers (for LM_CONSUMER_ENDS_MS at most, the loop
 * waiting meanwhile), noting the wall clock before. Once the store holds
 * every partition up to its end (targets_behind, checked every CATCHUP_MS)
 * that time is recorded as when the store was last current
 * (record_current), when the assigned partitions are every one of both
 * topics (targets_cover): every message written before it is stored, so the
 * tombstones the store has not read were written after it and stay in the
 * topics delete.retention.ms after it at least. A round whose ends cannot
 * be read (the brokers away) records nothing, and the store ages; a
 * rebalance abandons a round. The next round comes current_ms later.
 */

static void
start_round(lm_consumer *c)
{
	rd_kafka_topic_partition_list_t *l;
	struct target *t = NULL;
	int64_t at = c->wall_s();
	int rv, bad = -1;

	c->next_round_ms = lm_clock_ms() + c->current_ms;
	if (c->assigned == NULL || c->assigned->cnt == 0 ||
	    (l = rd_kafka_topic_partition_list_copy(c->assigned)) == NULL)
		return;
	rv = lm_kafka_list_offsets(
	    c->rk, l, RD_KAFKA_OFFSET_END, LM_CONSUMER_ENDS_MS, &bad);
	writer_heartbeat(c);
	if (rv == LM_OK && (t = calloc((size_t) l->cnt, sizeof(*t))) != NULL) {
		for (int i = 0; i < l->cnt; i++)
			t[i] = (struct target){.kind = topic_kind(c, l->elems[i].topic),
			    .partition = l->elems[i].partition,
			    .end = l->elems[i].offset,
			    .durable = RD_KAFKA_OFFSET_INVALID};
	} else if (rv != LM_OK && bad >= 0)
		lm_warn("consumer.current",
		    "the end of %s [%" PRId32 "] not read (%s): the store is not "
		    "shown current this time",
		    l->elems[bad].topic, l->elems[bad].partition,
		    rd_kafka_err2name(l->elems[bad].err));
	else if (rv != LM_OK)
		lm_warn("consumer.current",
		    "the ends of the assigned partitions not read (%s): the store is "
		    "not shown current this time",
		    lm_strerror(rv));
	if (t != NULL) {
		c->targets = t;
		c->ntargets = (size_t) l->cnt;
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (t == NULL)
		return;
	c->round = true;
	c->round_at = at;
}

/* Called every CATCHUP_MS while a round runs. */
static void
check_round(lm_consumer *c)
{
	long long behind = 0;

	if (targets_behind(c, &behind) != LM_OK || behind != 0 ||
	    atomic_load(&c->owed) > 0)
		return;
	/* A store that holds only some partitions is not current: the round
	 * ends without it. */
	if (targets_cover(c))
		current_since(c, c->round_at);
	c->round = false;
	drop_targets(c);
}

/* Records c->current_due, when due, as when the store was last current:
 * one small transaction of the store's writer, between batches. A failure
 * is tried again a second later. */
static void
record_current(lm_consumer *c, int64_t now)
{
	lm_ingest_current cur = {c->current_due, true};
	lm_store_txn *t = NULL;
	int rv;

	if (c->current_due < 0 || now < c->next_current_ms)
		return;
	if ((rv = lm_store_begin(c->store, &t)) == LM_OK) {
		if ((rv = lm_ingest_current_put(t, &cur)) == LM_OK)
			rv = lm_store_commit(t, NULL);
		else
			lm_store_abort(t);
	}
	if (rv != LM_OK) {
		lm_warn("consumer.current",
		    "when the store was last current not recorded: %s; tried again",
		    lm_strerror(rv));
		c->next_current_ms = now + 1000;
		return;
	}
	lm_gauge_set(c->current_gauge, (double) c->current_due);
	c->since_s = c->current_due;
	c->current_due = -1;
}

/* ---- refilling ------------------------------------------------------------
 *
 * The input topics are compacted: a record's older messages go, and a
 * deletion's tombstone goes too, delete.retention.ms after its compaction.
 * A store that was away for longer (its pod down or pending, or scaled
 * away with its volume kept) comes back to topics that hold nothing of the
 * records deleted meanwhile, and would keep them for good. So
 * lm_consumer_new begins a refill of a store last current longer ago than
 * cfg->store_max_age_s, or that does not say when (check_age): in one
 * transaction the store's refill state gets a new id and is active, the
 * marks are cleared and the store is marked not current, so that a crash
 * at any later point resumes the refill and never takes the store for
 * current.
 *
 * A refill reads every partition again from its beginning (store_offset
 * gives how far this refill read it, which each batch records under the
 * refill's id beside its offset: a restart resumes there), through the
 * normal path: versions and positions make what is read again a no-op, and
 * what changed meanwhile is stored. Each batch marks in the store every
 * record a put or a tombstone of it names (lm_ingest_batch_set_refill).
 * Once every partition is read again up to the end it had when first seen
 * (check_catchup), and those partitions are every one of both topics
 * (targets_cover: not only the assigned ones), the sweep deletes, between
 * batches, the live records neither marked nor waiting in a batch,
 * LM_CONSUMER_SWEEP_MAX examined at a time, through the normal deletion
 * path: change entries that match's follower applies. Then one
 * transaction clears the marks, ends the refill and records the store as
 * current, and the consumer is caught up.
 */

/* Whether a batch not yet stored holds a put or a tombstone of (k, id): it
 * marks the record once stored. */
static bool
pending_record(const lm_consumer *c, lm_kind k, const char *id)
{
	return lm_ingest_batch_holds(c->open->batch, k, id) ||
	       (c->flight.slot != NULL &&
	           lm_ingest_batch_holds(c->flight.slot->batch, k, id));
}

/* Collects the records a sweep step deletes into c->sweep_ids. */
struct sweep {
	lm_consumer *c;
	lm_kind kind;
	size_t n;
};

static int
sweep_collect(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct sweep *w = arg;

	(void) version, (void) bytes, (void) len;
	if (w->n < LM_CONSUMER_SWEEP_MAX && !pending_record(w->c, w->kind, id))
		snprintf(w->c->sweep_ids[w->n++], LM_STORE_ID_MAX + 1, "%s", id);
	return 0;
}

/* Sets the refill both batches belong to (0: none). */
static void
set_batches_refill(lm_consumer *c, uint64_t id)
{
	for (int i = 0; i < 2; i++)
		lm_ingest_batch_set_refill(c->slots[i].batch, id);
}

/* Ends the refill in one transaction: the marks cleared, the refill no
 * longer active and the store current as of the loop's start (every end
 * the refill read to was read after it). Then the consumer is caught up. */
static int
finish_refill(lm_consumer *c)
{
	lm_ingest_refill done = c->refill;
	lm_ingest_current cur = {c->run_s, true};
	lm_store_txn *t = NULL;
	int rv;

	/* A refill that took longer than the max age may have missed
	 * tombstones too: the store stays as old as the refill, and the next
	 * start refills it again (current_since). */
	c->current_due = -1;
	current_since(c, c->run_s);
	if (c->current_due < 0)
		cur.at = c->since_s;
	c->current_due = -1;
	done.active = false;
	if ((rv = lm_store_begin(c->store, &t)) != LM_OK)
		return rv;
	if ((rv = lm_store_marks_clear(t)) != LM_OK ||
	    (rv = lm_ingest_refill_put(t, &done)) != LM_OK ||
	    (rv = lm_ingest_current_put(t, &cur)) != LM_OK) {
		lm_store_abort(t);
		return rv;
	}
	if ((rv = lm_store_commit(t, NULL)) != LM_OK)
		return rv;
	c->refill = done;
	set_batches_refill(c, 0);
	atomic_store(&c->sweeping, false);
	atomic_store(&c->refilling, false);
	lm_gauge_set(c->refilling_gauge, 0);
	lm_gauge_set(c->current_gauge, (double) cur.at);
	c->since_s = cur.at;
	if (c->swept[LM_KIND_POSTING] + c->swept[LM_KIND_PROFILE] > 0)
		lm_warn("store.refill",
		    "refill done: %" PRIu64 " postings and %" PRIu64
		    " profiles deleted that the topics no longer hold (their "
		    "tombstones went while the store was away)",
		    c->swept[LM_KIND_POSTING], c->swept[LM_KIND_PROFILE]);
	else
		lm_info("store.refill",
		    "refill done: the topics hold every record of the store");
	atomic_store(&c->caught_up, true);
	c->next_round_ms = lm_clock_ms() + c->current_ms;
	return LM_OK;
}

/* Deletes, in one transaction, the first n records of c->sweep_ids (of
 * kind k), leaving in front those it deleted (*deleted; the others were
 * deleted already). */
static int
sweep_delete(lm_consumer *c, lm_kind k, size_t n, size_t *deleted, uint64_t *seq)
{
	lm_store_txn *t = NULL;
	int rv;

	*deleted = 0;
	if ((rv = lm_store_begin(c->store, &t)) != LM_OK)
		return rv;
	for (size_t i = 0; i < n; i++) {
		rv = lm_store_delete_at(t, k, c->sweep_ids[i], 0, NULL);
		if (rv == LM_OK && i != *deleted)
			memcpy(c->sweep_ids[*deleted], c->sweep_ids[i],
			    sizeof(c->sweep_ids[i]));
		if (rv == LM_OK)
			(*deleted)++;
		else if (rv != LM_ENOENT && rv != LM_ESTALE) {
			lm_store_abort(t);
			*deleted = 0;
			return rv;
		}
	}
	if ((rv = lm_store_commit(t, seq)) != LM_OK)
		*deleted = 0;
	return rv;
}

/* One step of the sweep, between batches: deletes the unmarked records
 * among the next LM_CONSUMER_SWEEP_MAX of the kind being swept, then goes
 * on with the next kind, then finishes the refill. A failure is logged and
 * tried again LM_CONSUMER_BACKOFF_MAX_MS later. */
static void
sweep_step(lm_consumer *c, int64_t now)
{
	struct sweep w = {c, c->sweep_kind, 0};
	char next[LM_STORE_ID_MAX + 1];
	uint64_t seq = 0;
	size_t deleted = 0;
	bool end = false;
	int rv;

	if (!atomic_load(&c->sweeping) || now < c->next_sweep_ms)
		return;
	if (w.kind == 0)
		rv = finish_refill(c);
	else if ((rv = lm_store_foreach_unmarked(c->store, w.kind, c->sweep_after,
	              LM_CONSUMER_SWEEP_MAX, sweep_collect, &w, next, &end)) == LM_OK &&
	         w.n > 0)
		rv = sweep_delete(c, w.kind, w.n, &deleted, &seq);
	if (rv != LM_OK) {
		lm_warn("store.refill",
		    "the records the topics no longer hold not deleted: %s; tried again",
		    lm_strerror(rv));
		c->next_sweep_ms = now + LM_CONSUMER_BACKOFF_MAX_MS;
		return;
	}
	if (w.kind == 0)
		return;
	for (size_t i = 0; i < deleted; i++)
		lm_info("store.refill", "%s %s deleted: the topics no longer hold it",
		    lm_kind_name(w.kind), c->sweep_ids[i]);
	if (deleted > 0) {
		c->swept[w.kind] += deleted;
		lm_counter_add(c->refill_deleted[w.kind], deleted);
		if (c->notify != NULL)
			(void) lm_notify_send(c->notify, seq);
	}
	if (!end) {
		memcpy(c->sweep_after, next, sizeof(c->sweep_after));
		return;
	}
	c->sweep_kind = w.kind == LM_KIND_POSTING ? LM_KIND_PROFILE : (lm_kind) 0;
	c->sweep_after[0] = '\0';
}

/* Stores the offsets of the finished batch for the next (auto) commit. */
static void
store_offsets(lm_consumer *c, const lm_ingest_batch *b)
{
	size_t n;
	const lm_ingest_partition *p = lm_ingest_batch_partitions(b, &n);
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t e;

	if (n == 0)
		return;
	l = rd_kafka_topic_partition_list_new((int) n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_topic_partition_list_add(l, p[i].topic, p[i].partition)->offset =
		    p[i].next;
		note_durable(c, topic_kind(c, p[i].topic), p[i].partition, p[i].next);
		drop_end(c, topic_kind(c, p[i].topic), p[i].partition, p[i].next);
		note_stored(c, topic_kind(c, p[i].topic), p[i].partition, p[i].next);
	}
	e = rd_kafka_offsets_store(c->rk, l);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		/* A partition revoked meanwhile: its new owner replays it. */
		for (int i = 0; i < l->cnt; i++)
			if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
				lm_warn("offsets.store",
				    "offset %" PRId64 " of partition %" PRId32
				    " not stored: %s",
				    l->elems[i].offset, l->elems[i].partition,
				    rd_kafka_err2name(l->elems[i].err));
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Adds the dead letters dropped for good since the last call to the metric. */
static void
count_drops(lm_consumer *c)
{
	for (int r = 0; r < LM_DLQ_DROP_COUNT_; r++) {
		uint64_t n = lm_dlq_dropped(c->dlq, (lm_dlq_drop) r);
		lm_counter_add(c->dlq_failed[r], n - c->dlq_dropped_seen[r]);
		c->dlq_dropped_seen[r] = n;
	}
}

/* What follows a store transaction's result rv: on success the dead letters
 * delivered, then the store's offsets moved past them
 * (lm_ingest_batch_commit_delivered) and the group's offsets stored. While
 * running, a stop cuts the wait for the dead letters short; once closing,
 * they get what is left of LM_CONSUMER_STOP_FLUSH_MS. Either way offsets
 * are stored only when every dead letter has a report saying it was
 * delivered (or dropped for good) and the store moved past them: a letter
 * never queued (send_rejects cut short) fails the attempt. A failed move
 * fails the attempt like a failed store transaction; the retry does not
 * send the delivered dead letters again. */
static int
after_store(lm_consumer *c, struct slot *s, int rv)
{
	if (rv != LM_OK) {
		lm_error("batch.store", "store transaction failed: %s", lm_strerror(rv));
		(void) lm_dlq_flush(c->dlq, 0, NULL); /* forget this attempt's reports */
		return rv;
	}
	if (!s->delivered) {
		if (c->retrying)
			(void) send_rejects(c, s);
		rv = c->closing ? lm_dlq_flush(c->dlq, close_left(c), NULL)
		                : lm_dlq_flush(c->dlq, DLQ_FLUSH_MS, c->stop);
		count_drops(c);
		if (rv == LM_OK && !letters_done(s))
			rv = LM_ETIMEDOUT;
		if (rv == LM_OK && fault(c, LM_CONSUMER_FAULT_DLQ)) {
			/* Reported undelivered: the retry sends them again. */
			for (size_t i = 0; i < s->nrejects; i++)
				if (s->rejects[i].fate == LM_DLQ_DELIVERED)
					s->rejects[i].fate = LM_DLQ_FAILED;
			rv = LM_ETIMEDOUT;
		}
		if (rv != LM_OK) {
			lm_error("batch.dlq",
			    "dead letters of the batch not delivered: %s",
			    lm_strerror(rv));
			return rv;
		}
		s->delivered = true;
	}
	rv = fault(c, LM_CONSUMER_FAULT_MOVE)
	         ? LM_EIO
	         : lm_ingest_batch_commit_delivered(s->batch, c->store);
	if (rv != LM_OK) {
		lm_error("batch.offsets",
		    "the store cannot be moved past the batch's delivered dead letters: "
		    "%s",
		    lm_strerror(rv));
		return rv;
	}
	store_offsets(c, s->batch);
	return LM_OK;
}

/*
 * Finishes batch s, whose first attempt is done when first is not NULL (by
 * the writer thread). With retry, a failed attempt is repeated with backoff
 * until it succeeds or the service stops; without (during a revocation) the
 * batch is given up after one attempt and its partitions are replayed by
 * their next owner. Returns LM_OK or the last attempt's error.
 */
static int
finish_slot(lm_consumer *c, struct slot *s, bool retry, const struct flight *first)
{
	/* The counts of the first attempt whose store commit succeeded: a
	 * retry after it (its dead letters undelivered) finds every change
	 * already stored and would count each as a duplicate. */
	lm_ingest_counts counts, attempt;
	bool counted = false;
	uint64_t last_seq = 0, attempt_seq = 0;
	int64_t backoff = LM_CONSUMER_BACKOFF_MIN_MS;
	/* lunamatch_ingest_batch_seconds: from the first attempt's start to
	 * the end of the transaction that stored the batch, so that failed
	 * attempts and their back-off count, and the wait for the next batch
	 * (which lands the first attempt) does not, nor the hand-off of its
	 * dead letters to the producer before it. */
	int64_t t0, t1;
	int rv;

	if (lm_ingest_batch_len(s->batch) == 0)
		return LM_OK;
	c->retrying = false;
	if (!s->sent)
		send_rejects(c, s);
	t0 = first != NULL ? first->t0 : lm_clock_ms();
	for (;;) {
		if (first != NULL) {
			attempt = first->counts;
			attempt_seq = first->last_seq;
			rv = first->rv;
			t1 = first->t1;
			first = NULL;
		} else {
			rv = fault(c, LM_CONSUMER_FAULT_STORE)
			         ? LM_EIO
			         : lm_ingest_batch_commit(
			               s->batch, c->store, &attempt, &attempt_seq);
			t1 = lm_clock_ms();
		}
		if (rv == LM_OK) {
			if (!counted) {
				counts = attempt;
				lm_histogram_observe(
				    c->batch_seconds, (double) (t1 - t0) / 1000.0);
			}
			counted = true;
			last_seq = attempt_seq;
		}
		rv = after_store(c, s, rv);
		heartbeat(c);
		if (rv == LM_OK)
			break;
		lm_counter_add(c->batch_failures, 1);
		atomic_store(&c->failing, true);
		if (!retry || *c->stop || c->fatal) {
			lm_warn("batch.dropped",
			    "batch of %zu messages given up; its offsets are not stored",
			    lm_ingest_batch_len(s->batch));
			/* At a revocation the batch is its partitions' next
			 * owner's to store: this member has no failing batch
			 * then, and may keep partitions with nothing to read,
			 * where no batch would clear the flag. */
			if (!retry)
				atomic_store(&c->failing, false);
			c->nends = 0;
			forget_eof(c, (lm_kind) 0, 0);
			goto out;
		}
		for (int64_t end = lm_clock_ms() + backoff, now;
		     (now = lm_clock_ms()) < end && !*c->stop;) {
			wait_back(c, end - now < POLL_MS ? end : now + POLL_MS);
			heartbeat(c);
		}
		backoff = lm_backoff_next(
		    backoff, LM_CONSUMER_BACKOFF_MIN_MS, LM_CONSUMER_BACKOFF_MAX_MS);
		c->retrying = true;
	}
	atomic_store(&c->failing, false);
	for (int k = LM_KIND_POSTING; k <= LM_KIND_PROFILE; k++) {
		lm_counter_add(c->stored[k], counts.stored[k]);
		lm_counter_add(c->deleted[k], counts.deleted[k]);
		lm_counter_add(c->duplicates[k], counts.duplicates[k]);
	}
	for (size_t i = 0; i < c->nreasons; i++)
		lm_counter_add(c->rejected[i], s->pending[i]);
	lm_counter_add(c->dlq_total, counts.rejected);
	if (counts.store_ops > 0 && c->notify != NULL)
		(void) lm_notify_send(c->notify, last_seq);
	lm_debug("batch.committed",
	    "%zu messages: %" PRIu64 " stored, %" PRIu64 " deleted, %" PRIu64
	    " duplicates, %" PRIu64 " rejected, last seq %" PRIu64,
	    lm_ingest_batch_len(s->batch), counts.stored[1] + counts.stored[2],
	    counts.deleted[1] + counts.deleted[2],
	    counts.duplicates[1] + counts.duplicates[2], counts.rejected, last_seq);
out:
	drop_slot(s);
	c->retrying = false;
	return rv;
}

/* The writer thread: one store transaction. */
static void *
write_batch(void *arg)
{
	struct flight *f = arg;

	if (f->slow)
		usleep(LM_CONSUMER_SLOW_STORE_MS * 1000);
	f->rv = f->fail ? LM_EIO
	                : lm_ingest_batch_commit(
	                      f->slot->batch, f->store, &f->counts, &f->last_seq);
	f->t1 = lm_clock_ms();
	atomic_store(&f->done, true);
	return NULL;
}

/* Waits for the batch in flight, if any, and drops both batches without
 * storing their offsets (a fatal error, or freeing). */
static void
give_up(lm_consumer *c)
{
	if (c->flight.slot != NULL) {
		(void) pthread_join(c->flight.thread, NULL);
		c->flight.slot = NULL;
	}
	/* The batch in flight sent its dead letters without a flush after
	 * them: end their generation, so that no late report writes to the
	 * fates dropped here. */
	if (c->dlq != NULL)
		(void) lm_dlq_flush(c->dlq, 0, NULL);
	for (int i = 0; i < 2; i++)
		if (c->slots[i].batch != NULL)
			drop_slot(&c->slots[i]);
	c->nends = 0;
	forget_eof(c, (lm_kind) 0, 0);
}

/* Waits for the batch in flight, if any, and finishes it (finish_slot).
 * The loop counts as coming round while it waits (writer_heartbeat, every
 * WRITER_POLL_MS). Returns LM_OK when there was none. */
static int
land_flight(lm_consumer *c, bool retry)
{
	struct slot *s = c->flight.slot;

	if (s == NULL)
		return LM_OK;
	while (!atomic_load(&c->flight.done)) {
		writer_heartbeat(c);
		usleep(WRITER_POLL_MS * 1000);
	}
	(void) pthread_join(c->flight.thread, NULL);
	c->flight.slot = NULL;
	return finish_slot(c, s, retry, &c->flight);
}

/*
 * Finishes the batch in flight, then the open batch (see finish_slot for
 * retry). When the first is given up, so is the open one. Returns LM_OK or
 * the error of the batch given up.
 */
static int
finish_batch(lm_consumer *c, bool retry)
{
	int rv = land_flight(c, retry);

	if (rv != LM_OK) {
		drop_slot(c->open);
		return rv;
	}
	return finish_slot(c, c->open, retry, NULL);
}

/*
 * What the store's writer does while no batch is in flight: stores the ends
 * kept that nothing waits for, and trims the store when a trim is due. Run
 * when the consumer is idle and also before each batch is handed to the
 * writer, so that neither waits for a pause in the input: under a steady
 * stream the writer is never idle between polls.
 */
static void
between_batches(lm_consumer *c, int64_t now)
{
	store_ends(c);
	record_current(c, now);
	sweep_step(c, now);
	(void) lm_trimmer_step(c->trimmer, now);
}

/*
 * Closes the open batch: lands the batch in flight, sends the open one's
 * dead letters and hands its store transaction to a writer thread; the
 * other slot becomes the open batch. Without a thread the batch is finished
 * here. Returns LM_OK, or the error of a batch given up (a stop or a fatal
 * error while it failed): the open batch is then given up too, and nothing
 * read after it may be stored before the loop ends, or its offset would be
 * stored past the messages given up.
 */
static int
close_batch(lm_consumer *c)
{
	struct slot *s = c->open;
	int rv;

	/* The batch before is still being written: see wait_back. */
	while (c->flight.slot != NULL && !atomic_load(&c->flight.done) &&
	       (c->back_sent || atomic_load(&c->owed) > 0)) {
		writer_heartbeat(c);
		wait_back(c, lm_clock_ms() + WRITING_WAIT_MS);
	}
	if ((rv = land_flight(c, true)) != LM_OK) {
		drop_slot(s);
		return rv;
	}
	between_batches(c, lm_clock_ms());
	send_rejects(c, s);
	c->flight.slot = s;
	c->flight.fail = fault(c, LM_CONSUMER_FAULT_STORE);
	c->flight.slow = fault(c, LM_CONSUMER_FAULT_SLOW_STORE);
	c->flight.t0 = lm_clock_ms();
	atomic_store(&c->flight.done, false);
	c->flight.told = false;
	if (pthread_create(&c->flight.thread, NULL, write_batch, &c->flight) != 0) {
		c->flight.slot = NULL;
		return finish_slot(c, s, true, NULL);
	}
	c->open = s == &c->slots[0] ? &c->slots[1] : &c->slots[0];
	return LM_OK;
}

/* Makes the consumer fetch topic/partition from offset again. A failure to
 * seek would skip messages, so it stops the service (exit non-zero). */
static void
rewind_to(lm_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_error_t *se;

	rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
	forget_eof(c, topic_kind(c, topic), partition);
	se = rd_kafka_seek_partitions(c->rk, l, LM_KAFKA_SEEK_WAIT);
	if (se == NULL && l->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
		se = rd_kafka_error_new(
		    l->elems[0].err, "%s", rd_kafka_err2str(l->elems[0].err));
	if (se != NULL) {
		lm_error("consumer.seek", "cannot rewind: %s", rd_kafka_error_string(se));
		rd_kafka_error_destroy(se);
		stop_loop(c, LM_EKAFKA,
		    "a partition cannot be rewound to a message to read again");
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/*
 * Handles one consumed message. m stays the caller's: nothing of it is
 * kept after the call (a reject's dead letter is a copy).
 */
static void
handle_message(lm_consumer *c, const rd_kafka_message_t *m)
{
	struct slot *s = c->open;
	const char *topic;
	lm_ingest_decision d;
	lm_ingest_msg im;
	lm_dlq_letter *letter = NULL;
	rd_kafka_headers_t *hdrs = NULL;
	const struct owned *o;
	bool kept = false;
	int rv;

	/* An error event (a fatal error, for one) may come without a topic. */
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->rkt != NULL) {
		lm_kind k;
		topic = rd_kafka_topic_name(m->rkt);
		if ((k = topic_kind(c, topic)) == 0)
			return;
		note_eof(c, k, m->partition, m->offset);
		if (pending(c, topic, m->partition))
			keep_end(c, k, m->partition, m->offset);
		else
			store_end(c, topic, m->partition, m->offset);
		return;
	}
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || m->rkt == NULL) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			lm_warn("consumer.error", "%s: %s", rd_kafka_err2name(m->err),
			    rd_kafka_message_errstr(m));
		if (m->err == RD_KAFKA_RESP_ERR__FATAL)
			c->fatal = 1;
		return;
	}
	topic = rd_kafka_topic_name(m->rkt);
	memset(&im, 0, sizeof(im));
	im.kind = topic_kind(c, topic);
	if (im.kind == 0) {
		lm_warn("consumer.topic", "message from unexpected topic ignored");
		return;
	}
	lm_counter_add(c->consumed[im.kind], 1);
	drop_end(c, im.kind, m->partition, INT64_MAX);
	/* Read again from before where it was read to its end. */
	if ((o = find_owned(c, im.kind, m->partition)) != NULL && m->offset < o->eof)
		forget_eof(c, im.kind, m->partition);
	im.key = m->key;
	im.key_len = m->key_len;
	im.value = m->payload;
	im.value_len = m->len;
	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		hdrs = NULL;
	lm_kafka_content_type(hdrs, &im.content_type, &im.content_type_len);

	rv = fault(c, LM_CONSUMER_FAULT_READ) ? LM_ENOMEM
	                                      : lm_ingest_decide(c->ctx, &im, &d);

	if (rv != LM_OK) {
		/* Out of memory: finish what we have and read this message again. */
		lm_error("ingest.decide", "cannot process message: out of memory");
		(void) finish_batch(c, true);
		rewind_to(c, topic, m->partition, m->offset);
		usleep(POLL_MS * 1000);
		return;
	}
	/* The partition went back (an offset reset after its log was
	 * truncated or the topic recreated, or a seek) while the open batch
	 * holds later offsets of it: that batch is closed first, so that
	 * offsets ascend within each batch and this message is stored after
	 * them, not dropped. */
	int64_t want = lm_ingest_batch_next(s->batch, topic, m->partition);
	if (want >= 0 && m->offset < want) {
		lm_warn("consumer.rewound",
		    "%s [%" PRId32 "] went back from offset %" PRId64 " to %" PRId64,
		    topic, m->partition, want, m->offset);
		if (close_batch(c) != LM_OK) {
			lm_ingest_decision_clear(&d);
			return;
		}
		s = c->open;
	}
	if (lm_ingest_batch_len(s->batch) == 0)
		c->deadline_ms = lm_clock_ms() + c->cfg->batch_ms;
	if (d.action == LM_INGEST_REJECT) {
		size_t r = reason_index(c, d.reason);
		/* What its dead letter is sent from when the batch closes: a
		 * copy (out of memory: as for the decision above). */
		if ((rv = lm_dlq_letter_new(m, &letter)) != LM_OK) {
			lm_error("ingest.reject", "cannot hold rejected message: %s",
			    lm_strerror(rv));
			lm_ingest_decision_clear(&d);
			goto again;
		}
		/* The batch's byte bound counts what it holds of the reject. */
		d.len = lm_dlq_letter_bytes(letter);
		if (r < c->nreasons)
			s->pending[r]++;
		lm_warn("ingest.reject",
		    "%s message rejected: %s (partition %" PRId32 ", offset %" PRId64 ")",
		    lm_kind_name(im.kind), d.reason, m->partition, m->offset);
		/* At most one reject per batch entry, so this always fits. */
		if (s->nrejects < c->cfg->batch_max) {
			struct held *h = &s->rejects[s->nrejects++];
			h->letter = letter;
			h->reason = d.reason;
			memcpy(h->error, d.error, sizeof(h->error));
			h->fate = LM_DLQ_UNSENT;
			kept = true;
		} else {
			lm_dlq_letter_free(letter);
		}
	}
	if ((rv = lm_ingest_batch_add(s->batch, &d, topic, m->partition, m->offset)) !=
	    LM_OK) {
		/* Out of memory (the batch's first message of a partition grows
		 * its list): as for the decision above, finish what we have and
		 * read this message again; its reject is not held. The other
		 * errors cannot happen: the batch is finished when full and
		 * offsets of a partition ascend. */
		lm_error("ingest.batch", "cannot add message to the batch: %s",
		    lm_strerror(rv));
		if (d.action == LM_INGEST_REJECT) {
			size_t r = reason_index(c, d.reason);
			if (r < c->nreasons)
				s->pending[r]--;
			if (kept) {
				s->nrejects--;
				lm_dlq_letter_free(s->rejects[s->nrejects].letter);
				s->rejects[s->nrejects].letter = NULL;
			}
		}
		lm_ingest_decision_clear(&d);
		goto again;
	}
	return;
again:
	(void) finish_batch(c, true);
	rewind_to(c, topic, m->partition, m->offset);
	usleep(POLL_MS * 1000);
}

/* ---- rebalances, lag ----------------------------------------------------- */

static void
refresh_assignment(lm_consumer *c)
{
	rd_kafka_topic_partition_list_t *l = NULL;

	if (rd_kafka_assignment(c->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (c->assigned != NULL)
		rd_kafka_topic_partition_list_destroy(c->assigned);
	c->assigned = l;
	atomic_store(&c->nassigned, l->cnt);
	lm_gauge_set(c->assigned_gauge, l->cnt);
}

static const char *const topic_var[3] = {
    NULL, "LUNAMATCH_TOPIC_POSTINGS", "LUNAMATCH_TOPIC_PROFILES"};
static const char *const epoch_var[3] = {
    NULL, "LUNAMATCH_POSTINGS_EPOCH", "LUNAMATCH_PROFILES_EPOCH"};

/*
 * Positions carry no topic: a kind's new positions compare with its stored
 * ones only when both come from the same log. Refuses a configured topic
 * that is not the one the store's positions of a kind come from
 * (lm_ingest_source_get) unless its epoch is above theirs, and an epoch
 * below theirs; the new topic's tombstones would otherwise be skipped as
 * replays of the old topic's messages at higher offsets. Sets c->source to
 * what the batches record: the configured topic and epoch, with the
 * store's cluster while topic and epoch are the store's (check_cluster
 * compares it). A store that keeps no source adopts the configured one.
 */
static int
check_sources(lm_consumer *c, char *err, size_t errlen)
{
	for (lm_kind k = LM_KIND_POSTING; k <= LM_KIND_PROFILE; k++) {
		lm_ingest_source held, *want = &c->source[k];
		size_t n = strlen(kind_topic(c, k));
		int rv;

		if (n > LM_INGEST_TOPIC_MAX) {
			snprintf(err, errlen, "topic name too long");
			return LM_EINVAL;
		}
		memset(want, 0, sizeof(*want));
		memcpy(want->topic, kind_topic(c, k), n);
		want->epoch = c->epoch[k];
		rv = lm_ingest_source_get(c->store, k, &held);
		if (rv == LM_ENOENT)
			continue;
		if (rv != LM_OK) {
			snprintf(err, errlen,
			    "cannot read the source of the %s positions: %s",
			    lm_kind_name(k), lm_strerror(rv));
			return rv;
		}
		/* The brokers' cluster is not known yet: check_cluster. */
		bool same = lm_ingest_source_same(&held, want->topic, NULL);
		if (want->epoch > held.epoch || (same && want->epoch == held.epoch)) {
			if (same && want->epoch == held.epoch)
				memcpy(
				    want->cluster, held.cluster, sizeof(want->cluster));
			continue;
		}
		snprintf(err, errlen,
		    "the store's %s positions come from topic %s%s%s at epoch %" PRIu32
		    ", and %s is %s at epoch %" PRIu32
		    " (%s + LUNAMATCH_OFFSETS_EPOCH): its tombstones would be skipped as "
		    "replays. Raise %s to make the epoch %" PRIu32
		    " or more (docs/ingest.md), or set the store's topic again",
		    lm_kind_name(k), held.topic, held.cluster[0] ? " of cluster " : "",
		    held.cluster, held.epoch, topic_var[k], want->topic, want->epoch,
		    epoch_var[k], epoch_var[k], same ? held.epoch : held.epoch + 1);
		return LM_EINVAL;
	}
	return LM_OK;
}

/*
 * At the first assignment, when librdkafka knows the cluster's id: refuses
 * a cluster that is not the one the store's positions of a kind come from
 * at the configured epoch (the same topic names on other brokers: their
 * offsets and positions do not compare with the stored ones), logging
 * what to do; otherwise the batches record the cluster from now on. An
 * unknown id (brokers older than Kafka 0.10.1) is not checked. Runs on the
 * consumer thread before any message is consumed, so no batch is in flight.
 */
static bool
check_cluster(lm_consumer *c)
{
	char *id = rd_kafka_clusterid(c->rk, 0);
	char cut[LM_INGEST_CLUSTER_MAX + 1];
	bool ok = true;

	c->cluster_checked = true;
	if (id == NULL) {
		lm_warn("consumer.source", "the cluster's id is not known: not checked");
		return true;
	}
	snprintf(cut, sizeof(cut), "%s", id);
	rd_kafka_mem_free(c->rk, id);
	for (lm_kind k = LM_KIND_POSTING; k <= LM_KIND_PROFILE; k++) {
		lm_ingest_source *src = &c->source[k];
		if (!lm_ingest_source_same(src, src->topic, cut)) {
			lm_error("consumer.source",
			    "the store's %s positions come from topic %s of cluster %s "
			    "at "
			    "epoch %" PRIu32 ", and the brokers are of cluster %s: its "
			    "tombstones would be skipped as replays. Raise %s by one "
			    "(LUNAMATCH_OFFSETS_EPOCH for both topics; docs/ingest.md), "
			    "or "
			    "point LUNAMATCH_BROKERS at the store's cluster again",
			    lm_kind_name(k), src->topic, src->cluster, src->epoch, cut,
			    epoch_var[k]);
			ok = false;
		}
	}
	for (lm_kind k = LM_KIND_POSTING; ok && k <= LM_KIND_PROFILE; k++) {
		memcpy(c->source[k].cluster, cut, sizeof(cut));
		for (int i = 0; i < 2; i++)
			(void) lm_ingest_batch_set_source(
			    c->slots[i].batch, k, &c->source[k]);
	}
	return ok;
}

static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	lm_consumer *c = opaque;
	bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *e = NULL;
	rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (c->closing) {
		/* The loop is over and the batch finished or given up (it may
		 * even be freed): only release the partitions, commit nothing
		 * more (auto-commit sends what was stored) and never block. */
		if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
			if (coop)
				e = rd_kafka_incremental_unassign(rk, parts);
			else
				(void) rd_kafka_assign(rk, NULL);
			if (e != NULL)
				rd_kafka_error_destroy(e);
		}
		if (c->assigned != NULL)
			rd_kafka_topic_partition_list_destroy(c->assigned);
		c->assigned = NULL;
		atomic_store(&c->nassigned, 0);
		c->nowned = 0;
		count_owed(c);
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && !c->cluster_checked &&
	    !check_cluster(c)) {
		/* Nothing assigned, nothing stored: the loop ends. */
		c->refused = true;
		c->fatal = 1;
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		lm_info("consumer.assign", "%d partitions assigned", parts->cnt);
		set_resume(c, parts);
		if (coop)
			e = rd_kafka_incremental_assign(rk, parts);
		else
			re = rd_kafka_assign(rk, parts);
		if (e != NULL || re != RD_KAFKA_RESP_ERR_NO_ERROR)
			for (int i = 0; i < parts->cnt; i++)
				disown(c, topic_kind(c, parts->elems[i].topic),
				    parts->elems[i].partition);
	} else {
		lm_info("consumer.revoke", "%d partitions revoked%s", parts->cnt,
		    rd_kafka_assignment_lost(rk) ? " (lost)" : "");
		(void) finish_batch(c, false);
		if (!rd_kafka_assignment_lost(rk)) {
			rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
			if (ce != RD_KAFKA_RESP_ERR_NO_ERROR &&
			    ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
				lm_warn("consumer.commit", "commit on revoke failed: %s",
				    rd_kafka_err2name(ce));
		}
		if (coop)
			e = rd_kafka_incremental_unassign(rk, parts);
		else
			re = rd_kafka_assign(rk, NULL);
		for (int i = 0; i < parts->cnt; i++)
			disown(c, topic_kind(c, parts->elems[i].topic),
			    parts->elems[i].partition);
	}
	if (e != NULL) {
		lm_error("consumer.rebalance", "%s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	} else if (re != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_error("consumer.rebalance", "%s", rd_kafka_err2name(re));
	}
	refresh_assignment(c);
	/* A partition assigned or revoked forgets its end: its next reader
	 * reads it to its end again. */
	for (int i = 0; i < parts->cnt; i++)
		drop_end(c, topic_kind(c, parts->elems[i].topic),
		    parts->elems[i].partition, INT64_MAX);
	/* Set up again for the new assignment; a round is abandoned. */
	if (!atomic_load(&c->caught_up) || c->round) {
		drop_targets(c);
		c->round = false;
	}
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	lm_consumer *c = opaque;
	char fatal[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		lm_error("consumer.fatal", "fatal consumer error: %s", fatal);
		c->fatal = 1;
		return;
	}
	/* Broker down, network, authentication hiccups: librdkafka retries. */
	lm_warn("consumer.kafka_error", "%s: %s",
	    rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
}

/* Sum over the assigned partitions of (high watermark - position), from
 * librdkafka's cached values: no broker round trip. */
static void
refresh_lag(lm_consumer *c)
{
	rd_kafka_topic_partition_list_t *l;
	double lag = 0;

	if (c->assigned == NULL || c->assigned->cnt == 0) {
		lm_gauge_set(c->lag, 0);
		return;
	}
	l = rd_kafka_topic_partition_list_copy(c->assigned);
	if (rd_kafka_position(c->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		for (int i = 0; i < l->cnt; i++) {
			int64_t lo = -1, hi = -1;
			if (rd_kafka_get_watermark_offsets(c->rk, l->elems[i].topic,
			        l->elems[i].partition, &lo,
			        &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
			    hi < 0 || l->elems[i].offset < 0)
				continue;
			if (hi > l->elems[i].offset)
				lag += (double) (hi - l->elems[i].offset);
		}
		lm_gauge_set(c->lag, lag);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* ---- life cycle ---------------------------------------------------------- */

/* Refuses an epoch below one the store already holds positions of: new
 * positions would order before them, and tombstones be skipped as
 * replays. The configured epochs are c->epoch. */
static int
check_epochs(lm_consumer *c, char *err, size_t errlen)
{
	static const char *const var[3] = {
	    NULL, "LUNAMATCH_POSTINGS_EPOCH", "LUNAMATCH_PROFILES_EPOCH"};

	for (lm_kind k = LM_KIND_POSTING; k <= LM_KIND_PROFILE; k++) {
		uint32_t held = 0;
		int rv = lm_ingest_epoch_get(c->store, kind_topic(c, k), &held);
		if (rv == LM_ENOENT)
			continue;
		if (rv != LM_OK) {
			snprintf(err, errlen, "cannot read the epoch of %s: %s",
			    kind_topic(c, k), lm_strerror(rv));
			return rv;
		}
		if (held > c->epoch[k]) {
			snprintf(err, errlen,
			    "the store holds positions of %s at epoch %" PRIu32
			    ", above the configured %" PRIu32
			    " (%s + LUNAMATCH_OFFSETS_EPOCH): an epoch never goes down",
			    kind_topic(c, k), held, c->epoch[k], var[k]);
			return LM_EINVAL;
		}
	}
	return LM_OK;
}

/* Begins refill r in the store (see "refilling"): its state, the marks
 * cleared and the store not current, in one transaction. The refill reads
 * every partition from its beginning, so the store keeps positions from
 * then on (lm_ingest_positions_mark). */
static int
begin_refill(lm_consumer *c, const lm_ingest_refill *r)
{
	lm_ingest_current stale = {r->since, false};
	lm_store_txn *t = NULL;
	int rv;

	if ((rv = lm_store_begin(c->store, &t)) != LM_OK)
		return rv;
	if ((rv = lm_ingest_refill_put(t, r)) != LM_OK ||
	    (rv = lm_store_marks_clear(t)) != LM_OK ||
	    (rv = lm_ingest_current_put(t, &stale)) != LM_OK ||
	    (rv = lm_ingest_positions_mark(t)) != LM_OK) {
		lm_store_abort(t);
		return rv;
	}
	return lm_store_commit(t, NULL);
}

/*
 * Sets *id to the id of a refill begun after a damaged record of the
 * store's refill, whose id is lost: 62 random bits, bit 62 set. Ids are
 * counted up from 1 or from an earlier random id (refills of earlier
 * versions also took the wall clock's seconds times 2^20, below 2^62), so
 * this one is an earlier refill's only by a chance of one in 2^62 for each
 * refill counted from a random id. It owes nothing to the clock, which may
 * repeat a second (set back, or two starts within one). LM_OK, or LM_EIO
 * when the system gives no random bytes.
 */
static int
damaged_refill_id(uint64_t *id)
{
	uint64_t raw = 0;

	if (lm_random_bytes(&raw, sizeof(raw), true) != LM_OK)
		return LM_EIO;
	*id = (raw >> 2) | (UINT64_C(1) << 62);
	return LM_OK;
}

/*
 * Decides from when the store was last current what this consumer does
 * (see "refilling"): resume the refill an earlier run began; record when
 * the first filling of a new store begins; trust a store last current
 * within cfg->store_max_age_s, and count it caught up when it then held
 * the whole of its topics (lm_ingest_current.complete); or begin a refill
 * of a store last current longer ago, or that does not say (written by an
 * earlier version or another program, or a damaged record), logged and
 * counted.
 */
static int
check_age(lm_consumer *c, char *err, size_t errlen)
{
	int64_t now = c->wall_s(), max = (int64_t) c->cfg->store_max_age_s, began;
	lm_ingest_current cur = {0, false};
	lm_ingest_refill ref = {0, false, 0, 0};
	char when[32], since[32];
	uint64_t seq = 0;
	bool damaged = false, ahead, old, began_ahead;
	int rv, cv;

	/* A damaged refill state is not known to be done: a new refill. */
	if ((rv = lm_ingest_refill_get(c->store, &ref)) == LM_ESTORE) {
		damaged = true;
		ref = (lm_ingest_refill){0, false, 0, 0};
	}
	if (rv == LM_ENOENT || rv == LM_ESTORE)
		rv = LM_OK;
	if (rv == LM_OK && (cv = lm_ingest_current_get(c->store, &cur)) != LM_OK &&
	    cv != LM_ENOENT && cv != LM_ESTORE)
		rv = cv;
	if (rv == LM_OK)
		rv = lm_store_last_seq(c->store, &seq);
	if (rv != LM_OK) {
		snprintf(err, errlen, "cannot read when the store was last current: %s",
		    lm_strerror(rv));
		return rv;
	}
	c->since_s = now;
	ahead = cv == LM_OK && cur.at > now + CURRENT_AHEAD_S;
	/* A refill begun longer ago than the max age may have missed
	 * tombstones the topics dropped since: its marks prove nothing. Nor
	 * do those of one begun at a time well ahead of this clock (as for
	 * the time the store was last current): how long ago is unknown. */
	began = ref.began;
	began_ahead = ref.active && began > now + CURRENT_AHEAD_S;
	old = ref.active && (began_ahead || now - began > max);
	if (ref.active && !old) {
		c->since_s = ref.began;
		lm_warn("store.refill",
		    "resuming the refill of the store begun at %s (the store was last "
		    "current at %s): not ready until it is done",
		    utc(ref.began, when, sizeof(when)),
		    utc(ref.since, since, sizeof(since)));
	} else if (!damaged && !old && cv == LM_ENOENT && seq == 0) {
		/* A new store: every record it will hold is read from now on. */
		lm_store_txn *t = NULL;
		cur = (lm_ingest_current){now, false};
		if ((rv = lm_store_begin(c->store, &t)) == LM_OK) {
			if ((rv = lm_ingest_current_put(t, &cur)) == LM_OK)
				rv = lm_store_commit(t, NULL);
			else
				lm_store_abort(t);
		}
		if (rv != LM_OK)
			snprintf(err, errlen,
			    "cannot record when the store's filling began: %s",
			    lm_strerror(rv));
		return rv;
	} else if (!damaged && !old && cv == LM_OK && !ahead && now - cur.at <= max) {
		c->since_s = cur.at;
		/* A store that held the whole of its topics within the max age
		 * is current: started at once, also while the brokers are away
		 * (it catches up with what arrived meanwhile once they answer).
		 * The first round shows it current again as soon as it can. */
		if (cur.complete) {
			lm_info("store.current",
			    "the store was current with the topics at %s, %" PRId64
			    " s ago, within LUNAMATCH_STORE_MAX_AGE_S (%" PRId64
			    " s): started",
			    utc(cur.at, when, sizeof(when)), now - cur.at, max);
			lm_gauge_set(c->current_gauge, (double) cur.at);
			atomic_store(&c->caught_up, true);
		}
		return LM_OK;
	} else {
		enum refill_reason why =
		    (old && !began_ahead) || (cv == LM_OK && !damaged && !ahead)
		        ? REFILL_AGE
		        : REFILL_UNKNOWN;
		/* How far a refill read each partition again is kept under its
		 * id (store_offset), so a refill's id is one no earlier refill
		 * of the store had: the next, or after a damaged state, a
		 * random one (damaged_refill_id). */
		uint64_t id = ref.id + 1;
		if (damaged && (rv = damaged_refill_id(&id)) != LM_OK) {
			snprintf(err, errlen,
			    "cannot begin the refill of the store: no random id for "
			    "it: %s",
			    lm_strerror(rv));
			return rv;
		}
		ref = (lm_ingest_refill){id, true, now,
		    old           ? ref.since
		    : cv == LM_OK ? cur.at
		                  : 0};
		if (damaged)
			lm_warn("store.refill",
			    "the store's record of its refill is damaged: a refill may "
			    "have been under way. Refilling it: every partition is "
			    "read again from its beginning, then the records the "
			    "topics no longer hold are deleted; not ready until it is "
			    "done");
		else if (began_ahead)
			lm_warn("store.refill",
			    "the refill of the store under way was begun at %s, %" PRId64
			    " s ahead of this clock (one of the clocks is wrong): how "
			    "long ago is unknown, and the topics may have dropped "
			    "tombstones since. A new refill begins: every partition is "
			    "read again from its beginning, then the records the topics "
			    "no longer hold are deleted; not ready until it is done",
			    utc(began, when, sizeof(when)), began - now);
		else if (old)
			lm_warn("store.refill",
			    "the refill of the store begun at %s, %" PRId64 " s ago, "
			    "was not done, and began longer ago than "
			    "LUNAMATCH_STORE_MAX_AGE_S (%" PRId64 " s): the topics may "
			    "have dropped tombstones since. A new refill begins: every "
			    "partition is read again from its beginning, then the "
			    "records the topics no longer hold are deleted; not ready "
			    "until it is done",
			    utc(began, when, sizeof(when)), now - began, max);
		else if (ahead)
			lm_warn("store.refill",
			    "the store says it was last current with the topics at %s, "
			    "%" PRId64 " s ahead of this clock (one of the clocks is "
			    "wrong): its age is unknown. Refilling it: every partition "
			    "is read again from its beginning, then the records the "
			    "topics no longer hold are deleted; not ready until it is "
			    "done",
			    utc(cur.at, when, sizeof(when)), cur.at - now);
		else if (why == REFILL_AGE)
			lm_warn("store.refill",
			    "the store was last current with the topics at %s, %" PRId64
			    " s ago, longer than LUNAMATCH_STORE_MAX_AGE_S (%" PRId64
			    " s): the topics may no longer hold the tombstones of the "
			    "records deleted meanwhile. Refilling it: every partition is "
			    "read again from its beginning, then the records the topics "
			    "no longer hold are deleted; not ready until it is done",
			    utc(cur.at, when, sizeof(when)), now - cur.at, max);
		else
			lm_warn("store.refill",
			    "the store does not say when it was last current with the "
			    "topics (%s): it may hold records deleted while it was away. "
			    "Refilling it: every partition is read again from its "
			    "beginning, then the records the topics no longer hold are "
			    "deleted; not ready until it is done",
			    cv == LM_ESTORE ? "its record of it is damaged"
			                    : "written by an earlier version or another "
			                      "program");
		if ((rv = begin_refill(c, &ref)) != LM_OK) {
			snprintf(err, errlen, "cannot begin the refill of the store: %s",
			    lm_strerror(rv));
			return rv;
		}
		lm_counter_add(c->refills[why], 1);
	}
	c->refill = ref;
	if ((c->sweep_ids = calloc(LM_CONSUMER_SWEEP_MAX, sizeof(*c->sweep_ids))) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		return LM_ENOMEM;
	}
	set_batches_refill(c, ref.id);
	atomic_store(&c->refilling, true);
	lm_gauge_set(c->refilling_gauge, 1);
	return LM_OK;
}

int
lm_consumer_new(const lm_consumer_opts *o, lm_consumer **out, char *err, size_t errlen)
{
	const lm_config *cfg = o->cfg;
	rd_kafka_conf_t *conf = NULL;
	lm_consumer *c;
	char v[32];
	unsigned session;
	int rv;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return LM_ENOMEM;
	}
	c->cfg = cfg;
	c->store = o->store;
	c->epoch[LM_KIND_POSTING] = cfg->offsets_epoch + cfg->postings_epoch;
	c->epoch[LM_KIND_PROFILE] = cfg->offsets_epoch + cfg->profiles_epoch;
	c->ctx = o->ctx;
	c->notify = o->notify;
	c->trimmer = o->trimmer;
	c->stop = o->stop;
	c->stall_ms = o->stall_ms > 0 ? (int64_t) o->stall_ms : LM_CONSUMER_STALL_MS;
	c->write_stall_ms = o->write_stall_ms > 0 ? (int64_t) o->write_stall_ms
	                                          : LM_CONSUMER_WRITE_STALL_MS;
	c->wall_s = o->wall_s != NULL ? o->wall_s : system_wall_s;
	c->topics_partitions = o->topics_partitions != NULL ? o->topics_partitions
	                                                    : lm_kafka_topics_partitions;
	c->current_ms =
	    o->current_ms > 0 ? (int64_t) o->current_ms : LM_CONSUMER_CURRENT_MS;
	c->current_due = -1;
	atomic_store(&c->behind, -1);
	heartbeat(c);

	if ((rv = check_epochs(c, err, errlen)) != LM_OK ||
	    (rv = check_sources(c, err, errlen)) != LM_OK)
		goto fail;
	c->open = &c->slots[0];
	c->flight.store = o->store;
	if ((rv = register_metrics(c, o->metrics, err, errlen)) != LM_OK)
		goto fail;
	for (int i = 0; i < 2; i++) {
		struct slot *s = &c->slots[i];
		if ((rv = lm_ingest_batch_new(cfg->batch_max, &s->batch)) != LM_OK ||
		    (s->rejects = calloc(cfg->batch_max, sizeof(*s->rejects))) == NULL) {
			snprintf(err, errlen, "out of memory");
			rv = LM_ENOMEM;
			goto fail;
		}
		if ((rv = lm_ingest_batch_set_epoch(s->batch, cfg->topic_postings,
		         c->epoch[LM_KIND_POSTING])) != LM_OK ||
		    (rv = lm_ingest_batch_set_epoch(s->batch, cfg->topic_profiles,
		         c->epoch[LM_KIND_PROFILE])) != LM_OK ||
		    (rv = lm_ingest_batch_set_source(s->batch, LM_KIND_POSTING,
		         &c->source[LM_KIND_POSTING])) != LM_OK ||
		    (rv = lm_ingest_batch_set_source(s->batch, LM_KIND_PROFILE,
		         &c->source[LM_KIND_PROFILE])) != LM_OK) {
			snprintf(err, errlen, "topic name too long");
			goto fail;
		}
	}
	if ((rv = check_age(c, err, errlen)) != LM_OK)
		goto fail;
	if ((rv = lm_dlq_new(cfg->brokers, cfg->topic_dlq, o->dlq_queue_kb, &c->fatal,
	         &c->dlq, err, errlen)) != LM_OK)
		goto fail;
	lm_dlq_set_tick(c->dlq, dlq_tick, c);
	if ((rv = lm_kafka_conf(cfg->brokers, "lunamatch-ingest", &conf, err, errlen)) !=
	    LM_OK)
		goto fail;
	snprintf(v, sizeof(v), "%u",
	    o->auto_commit_ms ? o->auto_commit_ms : LM_CONSUMER_AUTO_COMMIT_MS);
	if ((rv = lm_kafka_set(conf, "group.id", cfg->group_id, err, errlen)) != LM_OK ||
	    (rv = lm_kafka_set(conf, "auto.commit.interval.ms", v, err, errlen)) != LM_OK)
		goto fail;
	snprintf(v, sizeof(v), "%u", LM_INGEST_MSG_MAX);
	if ((rv = lm_kafka_set(conf, "enable.auto.commit", "true", err, errlen)) !=
	        LM_OK ||
	    (rv = lm_kafka_set(conf, "enable.auto.offset.store", "false", err, errlen)) !=
	        LM_OK ||
	    (rv = lm_kafka_set(conf, "enable.partition.eof", "true", err, errlen)) !=
	        LM_OK ||
	    (rv = lm_kafka_set(conf, "auto.offset.reset", "earliest", err, errlen)) !=
	        LM_OK ||
	    (rv = lm_kafka_set(conf, "partition.assignment.strategy", "range,roundrobin",
	         err, errlen)) != LM_OK ||
	    (rv = lm_kafka_set(conf, "fetch.message.max.bytes", v, err, errlen)) !=
	        LM_OK ||
	    (rv = lm_kafka_set(conf, "fetch.wait.max.ms", LM_KAFKA_FETCH_WAIT_MS, err,
	         errlen)) != LM_OK ||
	    (rv = lm_kafka_set(conf, "topic.metadata.refresh.interval.ms", "30000", err,
	         errlen)) != LM_OK)
		goto fail;
	session = o->session_ms > 0 ? o->session_ms : LM_CONSUMER_SESSION_MS;
	snprintf(v, sizeof(v), "%u", session);
	if ((rv = lm_kafka_set(conf, "session.timeout.ms", v, err, errlen)) != LM_OK)
		goto fail;
	snprintf(v, sizeof(v), "%u", session / 10 * 3);
	if ((rv = lm_kafka_set(conf, "heartbeat.interval.ms", v, err, errlen)) != LM_OK)
		goto fail;
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if ((c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen)) == NULL) {
		rv = LM_EKAFKA;
		goto fail;
	}
	conf = NULL;
	rd_kafka_poll_set_consumer(c->rk);
	if ((c->backq = rd_kafka_queue_new(c->rk)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rv = LM_ENOMEM;
		goto fail;
	}
	c->back_backoff_ms = LM_CONSUMER_BACKOFF_MIN_MS;
	*out = c;
	return LM_OK;
fail:
	if (conf != NULL) /* rd_kafka_conf_destroy(NULL) crashes */
		rd_kafka_conf_destroy(conf);
	lm_consumer_free(c);
	return rv;
}

/*
 * Leaves the group (revocation, final auto-commit of the stored offsets)
 * waiting at most LM_CONSUMER_CLOSE_MS, so that an unreachable broker cannot
 * hold the shutdown. When the time is up the group is left uncleanly: the
 * session times out on the broker and offsets stored but not yet committed
 * are replayed by the next owner (at-least-once).
 */
static void
close_bounded(lm_consumer *c)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
	rd_kafka_error_t *e;
	int64_t end = lm_clock_ms() + LM_CONSUMER_CLOSE_MS;

	if (q == NULL)
		return; /* lm_consumer_free closes, unbounded */
	if ((e = rd_kafka_consumer_close_queue(c->rk, q)) != NULL) {
		lm_warn("consumer.close", "%s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	} else {
		/* Served as events: the queue also holds messages fetched before
		 * the close, which a callback poll cannot serve (librdkafka aborts
		 * the process on them). They are dropped: their offsets were not
		 * stored, so they are read again. A rebalance (the revocation)
		 * goes to rebalance_cb as a poll would hand it. */
		while (!rd_kafka_consumer_closed(c->rk) && lm_clock_ms() < end) {
			rd_kafka_event_t *ev = rd_kafka_queue_poll(q, POLL_MS);
			if (ev == NULL)
				continue;
			if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
				rebalance_cb(c->rk, rd_kafka_event_error(ev),
				    rd_kafka_event_topic_partition_list(ev), c);
			rd_kafka_event_destroy(ev);
		}
		if (!rd_kafka_consumer_closed(c->rk))
			lm_warn("consumer.close",
			    "group not left within %d ms; giving up (offsets not yet "
			    "committed are consumed again)",
			    LM_CONSUMER_CLOSE_MS);
	}
	rd_kafka_queue_destroy(q);
}

int
lm_consumer_run(lm_consumer *c)
{
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(2);
	rd_kafka_resp_err_t e;

	rd_kafka_topic_partition_list_add(
	    sub, c->cfg->topic_postings, RD_KAFKA_PARTITION_UA);
	rd_kafka_topic_partition_list_add(
	    sub, c->cfg->topic_profiles, RD_KAFKA_PARTITION_UA);
	e = rd_kafka_subscribe(c->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_error("consumer.subscribe", "%s", rd_kafka_err2str(e));
		return lm_kafka_err(e);
	}
	lm_info("consumer.start", "group %s, batches of %u messages or %u ms",
	    c->cfg->group_id, c->cfg->batch_max, c->cfg->batch_ms);
	c->start_ms = lm_clock_ms();
	c->run_s = c->wall_s();

	while (!*c->stop && !c->fatal) {
		/* With a batch open, only what librdkafka already holds is
		 * taken: the batch closes as soon as nothing more is there
		 * (drained), when it is full, or at its deadline. While the
		 * writer is still busy with the batch before, a drained batch
		 * stays open and takes what arrives meanwhile (waiting 1 ms at
		 * a time, not spinning): it could not be written sooner, and
		 * larger transactions write fewer pages per record. */
		bool open = lm_ingest_batch_len(c->open->batch) > 0;
		bool writing = c->flight.slot != NULL && !atomic_load(&c->flight.done);
		/* A sweep step due runs between batches, as soon as it can. */
		bool sweep =
		    atomic_load(&c->sweeping) && lm_clock_ms() >= c->next_sweep_ms;
		int wait = writing                                   ? WRITING_WAIT_MS
		           : open || c->flight.slot != NULL || sweep ? 0
		                                                     : POLL_MS;
		int64_t now = lm_clock_ms();
		writer_heartbeat(c);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
		bool drained = m == NULL;
		if (m != NULL) {
			handle_message(c, m);
			rd_kafka_message_destroy(m);
		}
		now = lm_clock_ms();
		writing = c->flight.slot != NULL && !atomic_load(&c->flight.done);
		const lm_ingest_batch *b = c->open->batch;
		if (lm_ingest_batch_len(b) > 0 &&
		    ((drained && !writing) || lm_ingest_batch_full(b) ||
		        now >= c->deadline_ms))
			(void) close_batch(c);
		else if (drained && c->flight.slot != NULL && !writing)
			/* Written, and nothing to decide meanwhile: complete
			 * it now, not after the next poll's wait. */
			(void) land_flight(c, true);
		if (lm_ingest_batch_len(c->open->batch) == 0 && c->flight.slot == NULL)
			between_batches(c, now);
		serve_back(c, 0);
		send_back(c);
		if (atomic_load(&c->nassigned) > 0 && now >= c->next_catchup_ms &&
		    (c->round ||
		        (!atomic_load(&c->caught_up) && !atomic_load(&c->sweeping)))) {
			if (c->round)
				check_round(c);
			else
				check_catchup(c);
			c->next_catchup_ms = lm_clock_ms() + CATCHUP_MS;
		} else if (atomic_load(&c->caught_up) && !c->round &&
		           atomic_load(&c->nassigned) > 0 && now >= c->next_round_ms) {
			start_round(c);
		}
		if (now >= c->next_lag_ms) {
			lm_dlq_poll(c->dlq);
			refresh_lag(c);
			c->next_lag_ms = now + LM_CONSUMER_LAG_MS;
		}
	}

	c->closing = true;
	c->close_end = lm_clock_ms() + LM_CONSUMER_STOP_FLUSH_MS;
	if (c->fatal && c->refused) {
		lm_error(
		    "consumer.stop", "stopping: the brokers are not the store's source");
		give_up(c);
		close_bounded(c);
		atomic_store(&c->nassigned, 0);
		return LM_EINVAL;
	}
	if (c->fatal) {
		if (c->stop_why != NULL)
			lm_error("consumer.stop", "stopping: %s", c->stop_why);
		else
			lm_error("consumer.stop", "stopping after a fatal Kafka error");
		give_up(c);
		close_bounded(c); /* quick: librdkafka gives up after a fatal error */
		atomic_store(&c->nassigned, 0);
		return c->stop_why != NULL ? c->stop_rv : LM_EKAFKA;
	}
	lm_info("consumer.stop", "finishing the batch and leaving the group");
	(void) finish_batch(c, false);
	close_bounded(c);
	atomic_store(&c->nassigned, 0);
	return LM_OK;
}

void
lm_consumer_free(lm_consumer *c)
{
	if (c == NULL)
		return;
	/* The handle first: destroying it may still serve callbacks (rebalance,
	 * delivery reports) that use the batch and the assignment copy. */
	c->closing = true;
	/* Before the handle, which waits for every queue of its own. */
	if (c->backq != NULL)
		rd_kafka_queue_destroy(c->backq);
	/* A consumer that has not left its group (never ran, or the broker did
	 * not answer within LM_CONSUMER_CLOSE_MS) is destroyed without another
	 * unbounded close. */
	if (c->rk != NULL)
		rd_kafka_destroy_flags(c->rk, rd_kafka_consumer_closed(c->rk)
		                                  ? 0
		                                  : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	c->rk = NULL;
	give_up(c);
	for (int i = 0; i < 2; i++) {
		lm_ingest_batch_free(c->slots[i].batch);
		free(c->slots[i].rejects);
		c->slots[i].batch = NULL;
	}
	if (c->assigned != NULL)
		rd_kafka_topic_partition_list_destroy(c->assigned);
	c->assigned = NULL;
	drop_targets(c);
	free(c->ends);
	free(c->owned);
	free(c->sweep_ids);
	lm_dlq_free(c->dlq);
	free(c);
}

rd_kafka_t *
lm_consumer_kafka(lm_consumer *c, bool dlq)
{
	return dlq ? lm_dlq_kafka(c->dlq) : c->rk;
}

int
lm_consumer_live(void *arg, char *reason, size_t len)
{
	lm_consumer *c = arg;
	int64_t age = lm_clock_ms() - (int64_t) atomic_load(&c->heartbeat_ms);
	int rc;

	if ((rc = lm_lmdb_check_live(reason, len)) != LM_OK)
		return rc;
	if (age > c->stall_ms) {
		snprintf(reason, len, "consumer loop stalled for %" PRId64 " ms", age);
		return LM_ETIMEDOUT;
	}
	return LM_OK;
}

int
lm_consumer_started(void *arg, char *reason, size_t len)
{
	lm_consumer *c = arg;
	const char *what = atomic_load(&c->refilling)
	                       ? "refilling the store from the topics"
	                       : "catching up with the topics";
	long long behind;

	if (atomic_load(&c->caught_up))
		return LM_OK;
	behind = atomic_load(&c->behind);
	if (atomic_load(&c->sweeping))
		snprintf(
		    reason, len, "%s: deleting the records they no longer hold", what);
	else if (behind == 0 && atomic_load(&c->owed) > 0)
		snprintf(reason, len,
		    "%s: the group's committed offsets are ahead of the store", what);
	else if (behind == 0 && atomic_load(&c->uncovered))
		snprintf(reason, len,
		    "%s: not assigned every partition of both topics (another "
		    "member in consumer group %s, a topic refused or missing, or "
		    "their metadata not read)",
		    what, c->cfg->group_id);
	else if (behind < 0)
		snprintf(reason, len, "%s: partition ends not known yet", what);
	else
		snprintf(reason, len, "%s: %lld messages to store", what, behind);
	return LM_EBUSY;
}

int
lm_consumer_ready(void *arg, char *reason, size_t len)
{
	lm_consumer *c = arg;

	if (atomic_load(&c->nassigned) == 0) {
		snprintf(reason, len, "no partitions assigned");
		return LM_EBUSY;
	}
	if (atomic_load(&c->failing)) {
		snprintf(reason, len, "batches are failing (store or dead-letter topic)");
		return LM_EBUSY;
	}
	if (atomic_load(&c->owed) > 0) {
		snprintf(reason, len,
		    "the group's committed offsets of %d partitions are ahead of the "
		    "store: setting them back",
		    atomic_load(&c->owed));
		return LM_EBUSY;
	}
	return lm_consumer_started(arg, reason, len);
}
