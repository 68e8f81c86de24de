/*
 * events.h - new-match events: derivation from index changes, the durable
 * outbox and the Kafka sender.
 *
 * The partition owner (owner.h) calls lm_events_on_owned once the index
 * reflects a batch of its messages. For each changed posting or
 * profile the top LUNAMATCH_EVENT_TOP_N counterparts scoring at least
 * LUNAMATCH_EVENT_MIN_SCORE are looked up in the index; each pair that
 * newly crosses the threshold becomes a lunamatch.v1.MatchEvent in the
 * outbox (outbox.h), written with the pair states in durable transactions
 * (several for a large batch), after which the owner commits the batch's
 * offsets: they, not a change-log position, say what is derived. A sender
 * thread produces the pending events to the matches topic with
 * librdkafka's idempotent producer (key
 * candidate_id; headers content-type and schema) and removes each from the
 * outbox when its delivery report says it was written. A broker outage or
 * a restart delays events and never loses them; delivery is at-least-once
 * and consumers de-duplicate on event_id. docs/events.md has the details.
 *
 * Threads: lm_events_on_changes may be called from any thread (calls are
 * serialized internally) and never waits for Kafka. The sender thread is the
 * only user of the producer. lm_events_free must not race with other calls.
 */
#ifndef LUNAMATCH_MATCH_EVENTS_H
#define LUNAMATCH_MATCH_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "lunamatch/metrics.h"
#include "outbox.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_EVENTS_MESSAGE_TIMEOUT_MS 300000   /* default message.timeout.ms */
#define LM_EVENTS_FLUSH_TIMEOUT_MS   5000     /* default wait for in-flight at free */
#define LM_EVENTS_INFLIGHT_MAX       10000    /* events in flight or waiting to retry */
#define LM_EVENTS_CHANGES_MAX        100000   /* changes of one lm_events_on_changes */
#define LM_EVENTS_TXN_PAIRS          20000    /* pairs per outbox transaction, roughly */
#define LM_EVENTS_TXN_HELD           100000   /* pair states read for one, roughly */
#define LM_EVENTS_RETRY_MIN_MS       500      /* first pause after a failed delivery */
#define LM_EVENTS_RETRY_MAX_MS       30000    /* longest pause between retries */
#define LM_EVENTS_OUTBOX_SUBDIR      "outbox" /* under the data directory */
#define LM_EVENTS_CONTENT_TYPE       "application/x-protobuf"
#define LM_EVENTS_SCHEMA             "lunamatch.v1.MatchEvent"
#define LM_EVENTS_SWEEP_PAGE         256 /* pair states one sweep step reads */

typedef struct lm_events lm_events;

typedef struct lm_events_opts {
	const char *brokers;    /* bootstrap servers; required */
	const char *topic;      /* the matches topic; required */
	const char *data_dir;   /* the outbox is <data_dir>/outbox; required */
	const char *client_id;  /* NULL: "lunamatch-match" */
	double min_score;       /* event threshold in [0, 1] */
	uint32_t top_n;         /* 1..LM_INDEX_EVENT_TOP_MAX counterparts per record */
	lm_metrics *metrics;    /* may be NULL; borrowed, must outlive the lm_events */
	int message_timeout_ms; /* 0: LM_EVENTS_MESSAGE_TIMEOUT_MS; a timed-out
	                         * event stays pending and is produced again */
	int flush_timeout_ms;   /* 0: LM_EVENTS_FLUSH_TIMEOUT_MS; < 0: do not wait */
	int retry_max_ms;       /* 0: LM_EVENTS_RETRY_MAX_MS; else at least
	                         * LM_EVENTS_RETRY_MIN_MS. Tests set it short so
	                         * that a retry after repeated failures comes soon */
	/* Test seam, NULL in production: asked before every outbox write (the
	 * derived events, the delivery records); a result other than LM_OK is
	 * taken as that write's result, so a test drives the real failure
	 * handling. Called with fault_arg on the writing thread. */
	int (*fault)(void *arg);
	void *fault_arg;
	/* Test seam, 0 in production: the recorded pairs of one record read at
	 * a time (at most LM_OUTBOX_PAIRS_MAX; 0: LM_OUTBOX_PAIRS_MAX), so that
	 * a test pages through a few pairs. */
	size_t pairs_page;
} lm_events_opts;

/*
 * Opens the outbox and creates the producer (enable.idempotence=true,
 * acks=all, partitioner murmur2_random), without contacting the broker
 * yet. Options are copied. On LM_OK *out is the new object (free it with
 * lm_events_free); events may be derived at once, they are sent after
 * lm_events_start. Returns LM_EINVAL with a logged reason for bad options,
 * an lm_outbox_open error, LM_EKAFKA or LM_ENOMEM; *out is then NULL.
 */
int lm_events_new(const lm_events_opts *o, lm_events **out);

/* Starts the sender thread. Returns LM_OK, LM_EINVAL (already started) or
 * an errno-derived code. */
int lm_events_start(lm_events *ev);

/*
 * Stops the sender: waits at most flush_timeout_ms for events handed to
 * librdkafka to be acknowledged (those acknowledged are marked delivered,
 * the rest stay pending for the next run), joins the thread, destroys the
 * producer and closes the outbox. NULL is a no-op.
 */
void lm_events_free(lm_events *ev);

/* One changed record, as the partition owner hands it over. */
typedef struct lm_event_change {
	uint64_t seq;     /* change-log seq; 0 when unknown (not filtered) */
	bool posting;     /* true: a JobPosting; false: a CandidateProfile */
	const char *id;   /* record id (borrowed) */
	uint64_t version; /* informational; the index's version is used */
	bool deleted;     /* a tombstone: the record was removed */
	bool is_new;      /* first version the service has seen of this id */
} lm_event_change;

/*
 * Derives the events of n (at most LM_EVENTS_CHANGES_MAX) changes that idx
 * already reflects, and records cursor_seq (a change-log seq the batch ends
 * at; 0 = leave the cursor alone, as the partition owner does: its position
 * is the events group's committed offsets) in the outbox in the same
 * transaction as the last of them. Changes whose seq is not above the
 * stored cursor are skipped (already derived before a restart); a record
 * that changes several times in the batch is derived once, from the index's
 * current state. For every other changed record:
 *   - deleted, or no longer in the index: all its recorded pairs are
 *     forgotten;
 *   - otherwise its top top_n counterparts with score >= min_score are the
 *     pairs above the threshold (trigger NEW_POSTING / NEW_PROFILE when
 *     is_new, else UPDATED); a pair that was above before and is missing
 *     from that list is scored again and recorded below the threshold when
 *     it is (still above but outside the top N: left as it is).
 * Pairs newly above become events (created_at = now, model version of the
 * index). Large batches are written in several transactions, each with the
 * seq of the last change it completes as the cursor, so a crash in between
 * neither repeats nor misses events.
 *
 * Returns LM_OK; LM_EINVAL for bad arguments or a change without a valid
 * id; LM_ESTALE when cursor_seq is below the stored cursor; LM_ECLOSED after
 * lm_events_interrupt (what the changes before the interruption derived is
 * written, with the cursor after them; the rest is left for the next run);
 * an outbox or index error (then the cursor was not moved past the failed
 * change, and the caller retries the batch). Wakes the sender; never waits
 * for Kafka.
 */
int lm_events_on_changes(lm_events *ev, lm_index *idx, const lm_event_change *changes,
    size_t n, uint64_t cursor_seq, int64_t now);

/* A pair newly above the threshold, as lm_events_on_owned asks about it.
 * Strings are borrowed for the call. */
typedef struct lm_events_pair {
	bool posting;             /* the changed record (the subject) is a posting */
	const char *subject_id;   /* the changed record */
	uint64_t subject_version; /* its version in the index */
	const char *other_id;     /* the counterpart */
	uint64_t other_version;   /* its version in the index */
} lm_events_pair;

/* Whether this derivation announces pair p: true announces it (an event,
 * the pair recorded above); false leaves it to the derivation of the other
 * record and records nothing for it. With true, fn may set *noted (false
 * on entry) to have the pair counted in lm_events_split.noted once it is
 * written. Called on the deriving thread, with derivation serialized; it
 * may block briefly. */
typedef bool (*lm_events_pair_fn)(void *arg, const lm_events_pair *p, bool *noted);

/* Who announces a pair whose two records are derived by different
 * replicas (owner.c); counts of one lm_events_on_owned call. */
typedef struct lm_events_split {
	lm_events_pair_fn fn; /* required */
	void *arg;            /* passed to fn */
	size_t announced;     /* out: newly above pairs fn kept */
	size_t deferred;      /* out: newly above pairs fn left to the other side */
	/* out: pairs fn kept and noted that this call wrote to the outbox,
	 * also in a transaction before a failure: each written pair once */
	size_t noted;
	/* out, on a failure: true when it comes from a record whose stored
	 * bytes do not decode (lm_top_list.damaged): deriving change
	 * changes[damaged_change] again fails alike. The record is
	 * damaged_id (a posting when damaged_posting): that change's own or
	 * one of its matches. Never for an error of the outbox, the store,
	 * the disk or memory. */
	bool damaged;
	size_t damaged_change;
	bool damaged_posting;
	char damaged_id[LM_RECORD_ID_MAX + 1];
} lm_events_split;

/*
 * As lm_events_on_changes without a cursor (0), for the partition owner:
 * every pair that would newly cross the threshold (not above at its last
 * recorded state) is first offered to split->fn, and only the pairs it
 * keeps become events; the others are not recorded, so that a later
 * derivation of either record still finds them new. Pairs already above,
 * falling below or gone are handled as lm_events_on_changes does. A large
 * batch is written in several transactions, as there, but none records a
 * position: after a failure the caller derives the batch again in full,
 * and the pairs an earlier transaction recorded above are not new any
 * more (not offered to split->fn, not announced again). The counts in
 * split are set on every return. Returns as lm_events_on_changes.
 */
int lm_events_on_owned(lm_events *ev, lm_index *idx, const lm_event_change *changes,
    size_t n, lm_events_split *split, int64_t now);

/*
 * One step of the sweep of stranded pair states: reads the next
 * LM_EVENTS_SWEEP_PAGE recorded pairs after those of the step before
 * (from the first again once a pass has ended) and forgets, in one
 * write, each pair one of whose records idx does not hold, as a
 * derivation of the surviving record would. Only such a derivation on
 * this replica forgets a pair otherwise, and after a rebalance moved both
 * records' partitions to other replicas none comes: their states stayed
 * for good. idx must hold the store's records: in an index still loading
 * every record reads as gone (lm_owner_opts.index_loaded). Serialized with
 * derivations. *forgotten (may be NULL) gets the
 * number of pairs forgotten (also counted,
 * lunamatch_events_pairs_swept_total). Returns LM_OK, LM_EINVAL, LM_ECLOSED
 * (interrupted) or an error of the outbox, whose next step begins where
 * this one did.
 */
int lm_events_sweep_pairs(lm_events *ev, lm_index *idx, int64_t now, size_t *forgotten);

/*
 * For shutdown: makes a running lm_events_on_changes stop between two
 * changes (within the derivation of one record) and every later call
 * return LM_ECLOSED at once. Cannot be undone. Any thread, any time before
 * lm_events_free. NULL is a no-op.
 */
void lm_events_interrupt(lm_events *ev);

/* The outbox, borrowed (for counts and inspection); valid until
 * lm_events_free. */
lm_outbox *lm_events_outbox(lm_events *ev);

/* Whether the last outbox write failed (until one succeeds again). Each
 * failure also counts in lunamatch_events_outbox_errors_total. Any thread;
 * false for NULL. main's /readyz reports not ready while it is true. */
bool lm_events_outbox_failing(lm_events *ev);

/* Events handed to librdkafka and not yet reported (any thread). */
size_t lm_events_inflight(lm_events *ev);

/* The sender's librdkafka producer, owned by ev; for tests (for example
 * rd_kafka_test_fatal_error). The sender creates it after lm_events_start
 * and replaces it after a fatal error; NULL before. */
struct rd_kafka_s *lm_events_kafka(lm_events *ev);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_EVENTS_H */
