/*
 * outbox.h - the match service's durable outbox of new-match events.
 *
 * A new-match event is written here first, in the same LMDB write
 * transaction that records why it was emitted, and only then sent to Kafka
 * (events.h). An entry leaves the outbox when the broker has acknowledged
 * it, so a crash or a broker outage delays events and never loses them.
 *
 * The outbox is an LMDB environment of its own in <data dir>/outbox (created
 * if missing); the match service is its only reader and writer. Named
 * databases:
 *   pending    event_id -> serialized lunamatch.v1.OutboxEntry (store.proto)
 *   announced  "candidate_id\0job_id" -> the pair's last state: score,
 *              record versions, whether it is above the threshold
 *   by_job     "job_id\0candidate_id" -> empty; the same pairs by job
 *   meta       the derivation cursor, counters and the schema version
 *
 * "announced" is what makes a pair be announced once per crossing of the
 * threshold, across restarts: an event is enqueued only when a pair is above
 * the threshold now and was not above at its last recorded state.
 *
 * Every function is thread-safe: any thread may call any function at any
 * time (LMDB serializes the writers). Every write is one durable
 * transaction (fsync on commit) that either happens entirely or not at all.
 */
#ifndef LUNAMATCH_MATCH_OUTBOX_H
#define LUNAMATCH_MATCH_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/v1/store.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits. */
#define LM_OUTBOX_ID_MAX            128  /* bytes of a record id (as LM_RECORD_ID_MAX) */
#define LM_OUTBOX_EVENT_ID_LEN      32   /* lower-case hex digits of an event id */
#define LM_OUTBOX_BAD_KEY_PREFIX    "z"  /* of the id shown for a damaged key */
#define LM_OUTBOX_MODEL_VERSION_MAX 64   /* bytes of a model version */
#define LM_OUTBOX_SUMMARY_MAX       1024 /* bytes of a summary; longer ones are cut */
#define LM_OUTBOX_ERROR_MAX         256  /* bytes of a stored last_error; cut */
#define LM_OUTBOX_ENTRY_MAX         (16u * 1024)  /* bytes of one stored OutboxEntry */
#define LM_OUTBOX_BATCH_MAX         131072        /* candidates of one enqueue batch */
#define LM_OUTBOX_PAIRS_MAX         100000        /* pairs lm_outbox_pairs_of returns */
#define LM_OUTBOX_MAP_SIZE          (64ull << 20) /* initial map size; doubled when full */
#define LM_OUTBOX_MAP_SIZE_MAX      (16ull << 30)
#define LM_OUTBOX_SCHEMA_VERSION    "1"
#define LM_OUTBOX_STORE_ID_MAX      128 /* bytes of a record store identity */

typedef struct lm_outbox lm_outbox;

/*
 * Opens (creating if missing, mode 0700) the outbox environment in dir, the
 * outbox directory itself (callers pass "<data dir>/outbox"; its parent must
 * exist). At most one lm_outbox per directory per process. On LM_OK *out is
 * the handle (free it with lm_outbox_close). Returns LM_EINVAL (dir NULL,
 * empty or too long; not a directory), LM_EEXIST (already open in this
 * process), LM_ESCHEMA (an outbox of another schema version), LM_ESTORE or
 * an errno-derived code; *out is then NULL.
 */
int lm_outbox_open(const char *dir, lm_outbox **out);

/* Closes the outbox. No other call on it may be running. NULL is a no-op. */
void lm_outbox_close(lm_outbox *ob);

/*
 * The event id of a pair state: SHA-256 over a domain tag and the
 * length-prefixed candidate_id, job_id, the two versions (big-endian u64)
 * and model_version, truncated to 128 bits and written as 32 lower-case hex
 * digits plus a NUL into out (LM_OUTBOX_EVENT_ID_LEN + 1 bytes). The same
 * inputs always give the same id (docs/events.md has the exact layout).
 * NULL strings are taken as "". SHA-256 is OpenSSL's (libcrypto); LM_OK,
 * or LM_ENOMEM / LM_EINTERNAL (logged) if it fails, with out "".
 */
int lm_event_id(const char *candidate_id, const char *job_id, uint64_t candidate_version,
    uint64_t job_version, const char *model_version,
    char out[LM_OUTBOX_EVENT_ID_LEN + 1]);

/* What a derivation found out about one (candidate, job) pair. */
typedef enum lm_pair_state {
	LM_PAIR_ABOVE = 1, /* eligible and score >= the event threshold now */
	LM_PAIR_BELOW = 2, /* both records exist; below the threshold or vetoed */
	LM_PAIR_GONE = 3,  /* one of the records was removed: forget the pair */
} lm_pair_state;

/* One input of lm_outbox_enqueue_batch. Strings are borrowed for the call. */
typedef struct lm_event_candidate {
	const char *candidate_id; /* required; 1..LM_OUTBOX_ID_MAX bytes */
	const char *job_id;       /* required; 1..LM_OUTBOX_ID_MAX bytes */
	lm_pair_state state;
	/* The rest is recorded for ABOVE and BELOW and used to build the event
	 * when an ABOVE pair newly crosses; ignored for GONE. */
	uint64_t candidate_version;
	uint64_t job_version;
	double score;                        /* finite, in [0, 1] */
	Lunamatch__V1__MatchTrigger trigger; /* why the pair was looked at */
	const char *summary; /* may be NULL; cut to LM_OUTBOX_SUMMARY_MAX */
} lm_event_candidate;

/*
 * Applies n (at most LM_OUTBOX_BATCH_MAX; 0 is allowed) candidates in
 * order and moves the cursor, in one durable write transaction:
 *   ABOVE, and the pair was not above at its last recorded state (or was
 *     never seen, or its state does not decode): a MatchEvent (type
 *     NEW_MATCH, id from lm_event_id, model_version, created_at = now) is
 *     added to `pending`, unless an entry of that id is pending already;
 *     the pair is recorded above.
 *   ABOVE, already above: the recorded state is refreshed, no event.
 *   BELOW: the pair is recorded not above, so that a later rise announces
 *     it again.
 *   GONE: the pair is forgotten (a later match announces it again).
 * A later candidate of the same pair sees the effect of an earlier one.
 * cursor_seq: 0 leaves the cursor alone; otherwise it becomes the cursor
 * (see lm_outbox_get_cursor) in the same transaction, and must not be lower
 * than the stored cursor.
 *
 * enqueued (may be NULL) receives the number of events added. Returns LM_OK;
 * LM_EINVAL for a bad candidate (nothing is written: the whole batch is
 * rejected), a NULL or too long model_version or n too large; LM_ESTALE
 * when cursor_seq is below the stored cursor (nothing written); LM_EMAPFULL
 * when the map cannot grow further; LM_ENOMEM; LM_ESTORE.
 */
int lm_outbox_enqueue_batch(lm_outbox *ob, const lm_event_candidate *c, size_t n,
    const char *model_version, int64_t now, uint64_t cursor_seq, size_t *enqueued);

/* The derivation cursor: the change-log seq up to which events have been
 * derived (0 for a new outbox). */
int lm_outbox_get_cursor(lm_outbox *ob, uint64_t *seq);

/* Sets the cursor on its own (durable). Same rule as in enqueue_batch:
 * LM_ESTALE when seq is below the stored cursor. */
int lm_outbox_set_cursor(lm_outbox *ob, uint64_t seq);

/*
 * The identity of the record store the cursor refers to (the store's
 * "store.id"), copied NUL-terminated into buf (len bytes). Returns LM_OK,
 * LM_ENOENT (none recorded yet: an outbox older than store identities, or
 * new), LM_E2BIG (buf too small), LM_EINVAL or LM_ESTORE.
 */
int lm_outbox_get_store_id(lm_outbox *ob, char *buf, size_t len);

/*
 * Binds the cursor to another record store: records store_id
 * (1..LM_OUTBOX_STORE_ID_MAX bytes) and sets the cursor to seq, which may be
 * lower than the stored cursor (unlike lm_outbox_set_cursor), in one durable
 * transaction. For a store that was replaced: its change log starts again
 * from 1, so the old cursor means nothing there. Recorded pairs are kept
 * (a pair already announced is not announced again). Returns LM_OK,
 * LM_EINVAL, LM_EMAPFULL or LM_ESTORE.
 */
int lm_outbox_rebase(lm_outbox *ob, const char *store_id, uint64_t seq);

/* The recorded state of one pair. */
typedef struct lm_outbox_pair {
	char other_id[LM_OUTBOX_ID_MAX + 1]; /* the counterpart of the subject */
	bool above;
	double score;
	uint64_t candidate_version;
	uint64_t job_version;
	int64_t updated_at; /* `now` of the batch that last recorded it */
} lm_outbox_pair;

/* Which side a subject id is on. */
typedef enum lm_outbox_side {
	LM_OUTBOX_CANDIDATE = 1,
	LM_OUTBOX_JOB = 2,
} lm_outbox_side;

/*
 * Every recorded pair of one candidate or one job (above or not), at most
 * max (1..LM_OUTBOX_PAIRS_MAX), in other_id order. A state that does not
 * decode (disk damage; logged "outbox.corrupt") is listed as not above,
 * with score and versions 0, so that a derivation replaces or forgets it
 * instead of failing for good. A key under id whose counterpart is not a
 * record id (disk damage) names no pair a derivation could replace or
 * forget: it is passed over, logged ("outbox.corrupt") and deleted in a
 * write of its own after the read (one the write does not delete is
 * passed over again by a later read). On LM_OK *out is a
 * malloc'd array of *n entries (NULL when *n is 0) that the caller frees,
 * and *truncated (may be NULL) says whether more pairs exist than max.
 * Returns LM_OK, LM_EINVAL, LM_ENOMEM or LM_ESTORE.
 */
int lm_outbox_pairs_of(lm_outbox *ob, lm_outbox_side side, const char *id, size_t max,
    lm_outbox_pair **out, size_t *n, bool *truncated);

/*
 * lm_outbox_pairs_of from the pair after counterpart `after` on: only the
 * pairs whose other_id sorts after it (NULL or "": from the first). Called
 * again with the other_id of the last pair returned while *truncated, it
 * visits every recorded pair of id once, max at a time, also when pairs
 * are added or removed in between (those after the last one read are seen).
 * On LM_OK *damaged (may be NULL) receives the number of keys passed over
 * because their counterpart is not a record id. Returns as
 * lm_outbox_pairs_of; LM_EINVAL also for an invalid after.
 */
int lm_outbox_pairs_after(lm_outbox *ob, lm_outbox_side side, const char *id,
    const char *after, size_t max, lm_outbox_pair **out, size_t *n, bool *truncated,
    size_t *damaged);

/* The ids of one recorded pair. */
typedef struct lm_outbox_pair_ids {
	char candidate_id[LM_OUTBOX_ID_MAX + 1];
	char job_id[LM_OUTBOX_ID_MAX + 1];
} lm_outbox_pair_ids;

/*
 * The ids of the recorded pairs that sort after (after_candidate,
 * after_job) (by candidate id, then job id; both NULL or "" for the first),
 * at most max (1..LM_OUTBOX_PAIRS_MAX), above or not. Called again with the
 * last pair returned while *more, it visits every pair recorded all along
 * once, max at a time. A key that is no pair (disk damage) is passed over:
 * lm_outbox_pairs_after deletes it. On LM_OK *out is a malloc'd array of
 * *n entries (NULL when *n is 0) that the caller frees. Returns LM_OK,
 * LM_EINVAL, LM_ENOMEM or LM_ESTORE.
 */
int lm_outbox_pair_ids_after(lm_outbox *ob, const char *after_candidate,
    const char *after_job, size_t max, lm_outbox_pair_ids **out, size_t *n, bool *more);

/* The recorded state of one pair; other_id is job_id. LM_ENOENT if the pair
 * is not recorded. */
int lm_outbox_get_pair(
    lm_outbox *ob, const char *candidate_id, const char *job_id, lm_outbox_pair *out);

/*
 * Called by lm_outbox_pending for each pending entry, in event_id order.
 * event_id and entry are borrowed for the call (entry->event holds the
 * serialized MatchEvent); entry is NULL when the stored entry does not
 * decode (logged "outbox.corrupt"; it stays in the outbox), and for an
 * entry stored under a key that is not an event id (disk damage), whose
 * event_id is then LM_OUTBOX_BAD_KEY_PREFIX and hex digits of the key's
 * hash: no event has such an id, and no other call finds it. The callback
 * runs inside a read transaction: it must not call other lm_outbox
 * functions. Return 0 to go on, anything else to stop.
 */
typedef int (*lm_outbox_pending_fn)(
    void *arg, const char *event_id, const Lunamatch__V1__OutboxEntry *entry);

/* Visits at most max pending entries. Returns LM_OK, LM_EINVAL or
 * LM_ESTORE. */
int lm_outbox_pending(lm_outbox *ob, size_t max, lm_outbox_pending_fn fn, void *arg);

/* Called by lm_outbox_pending_skip with each pending event_id (borrowed)
 * before its entry is decoded; true passes over the entry, which still
 * counts towards max. The same rules as lm_outbox_pending_fn. */
typedef bool (*lm_outbox_skip_fn)(void *arg, const char *event_id);

/* lm_outbox_pending that decodes and shows fn only the entries skip (may
 * be NULL) does not pass over: a sender that has most of them in flight
 * does not decode those again. */
int lm_outbox_pending_skip(lm_outbox *ob, size_t max, lm_outbox_skip_fn skip,
    lm_outbox_pending_fn fn, void *arg);

/* Copy of one pending entry; the caller frees it with
 * protobuf_c_message_free_unpacked(&(*out)->base, NULL). LM_ENOENT when no
 * entry of that id is pending. */
int lm_outbox_get_entry(
    lm_outbox *ob, const char *event_id, Lunamatch__V1__OutboxEntry **out);

/*
 * Removes the n given entries from `pending` (the broker acknowledged them)
 * in one transaction and adds the number actually removed to the delivered
 * total; ids that are not pending (already delivered) are skipped.
 * removed (may be NULL) receives that number. Returns LM_OK, LM_EINVAL or a
 * store error (then nothing changed). When the map is at its largest and
 * has no room for the deletion, it is split into several transactions
 * (outbox.c), so that a full outbox can always be emptied; an error then
 * leaves the transactions before it done, and removed receives the number
 * they removed (also added to the delivered total).
 */
int lm_outbox_mark_delivered_batch(
    lm_outbox *ob, const char *const *event_ids, size_t n, size_t *removed);

/* For tests: the largest map becomes bytes (LM_OUTBOX_MAP_SIZE_MAX until
 * then), so that a full outbox can be made small. */
void lm_outbox_set_map_max(lm_outbox *ob, uint64_t bytes);

/* For tests: fn (NULL: none) is asked, with arg, before each write
 * transaction commits; a result other than LM_OK becomes the transaction's
 * (it is aborted; LM_EMAPFULL counts as a full map), so that a test drives
 * the real failure handling. Set it before other threads use the outbox. */
void lm_outbox_set_fault(lm_outbox *ob, int (*fn)(void *arg), void *arg);

/* lm_outbox_mark_delivered_batch of one id; LM_ENOENT when not pending. */
int lm_outbox_mark_delivered(lm_outbox *ob, const char *event_id);

/*
 * Records failed delivery attempts: for each id still pending, attempts is
 * incremented and last_error set to errors[i] (cut to LM_OUTBOX_ERROR_MAX;
 * NULL gives ""); the entry stays pending. One transaction. updated (may be
 * NULL) receives the number of entries changed.
 */
int lm_outbox_mark_failed_batch(lm_outbox *ob, const char *const *event_ids,
    const char *const *errors, size_t n, size_t *updated);

/* lm_outbox_mark_failed_batch of one id; LM_ENOENT when not pending. */
int lm_outbox_mark_failed(lm_outbox *ob, const char *event_id, const char *error);

typedef struct lm_outbox_counts {
	uint64_t pending;         /* entries waiting for delivery */
	uint64_t enqueued_total;  /* events ever enqueued (persistent) */
	uint64_t delivered_total; /* entries ever marked delivered (persistent) */
	uint64_t failed_total;    /* failed attempts ever recorded (persistent) */
	uint64_t pairs;           /* recorded pairs */
} lm_outbox_counts;

int lm_outbox_counts_get(lm_outbox *ob, lm_outbox_counts *out);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_OUTBOX_H */
