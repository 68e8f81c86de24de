/*
 * follower.h - keeps the in-memory index equal to the record store.
 *
 * At start the follower loads a consistent snapshot of the store into the
 * index (lm_store_snapshot: every live record plus the change-log seq of the
 * same read transaction), then follows the change log from that seq: every
 * change entry after the last applied one is applied to the index in order
 * (a put replaces the record by id, a deletion removes it; a CLOSED posting
 * stays stored but is never matched). It is woken by ingest's notification
 * (an nng SUB0 socket dialling the notify URL; the payload is a serialized
 * lunamatch.v1.StoreNotify) and, so that no change is ever missed when a
 * notification is lost or ingest is down, by a periodic poll.
 *
 * After the load and after each applied batch the follower reports the
 * change-log seq the index now reflects (on_applied). That is all it tells
 * anyone: new-match events are derived by the partition owner (owner.h),
 * which waits for the index to hold the records it derives from.
 *
 * A change whose record cannot be read or indexed for a reason of the
 * moment (out of memory, LMDB reader table full, a store failure) stops the
 * batch before it: it is retried on the next wake-up and the follower's seq
 * never passes it. Only a record that cannot be decoded at all is skipped
 * (counted in errors, logged); the version the index held of it goes, as
 * the store no longer holds it.
 *
 * An index given the store (lm_index_set_store: the one the follower
 * reads) gets the records as stored (lm_index_prepare_stored) and keeps no
 * bytes of them; otherwise it gets a copy of their bytes. A reload's new
 * index gets the same store.
 *
 * A change and the index_seq it moves to become visible together: each
 * change is applied with the seq of its entry in one index update (an
 * entry that changes nothing moves the seq alone), and the snapshot is
 * loaded into a new index, which no query sees, then published with its seq
 * at once (lm_index_replace; a reload holds the records twice meanwhile). So
 * an answer at index_seq S holds every change up to S and none applied
 * after it (a record read from the store may be at a newer version than its
 * entry's, as the store had it then). A load that fails leaves the index as
 * it was and is retried.
 *
 * The index clock (lm_index_advance) is moved to the wall clock after the
 * load, after every batch and at every wake-up, so that expired postings
 * leave the open-postings count; no score depends on it.
 *
 * The follower records its position in the store under opts.reader_id
 * (lm_store_reader_set): before it loads a snapshot, then every
 * LM_FOLLOWER_HEARTBEAT_MS, so that ingest's trimming keeps every change it
 * has not applied (docs/store.md, Trimming); lm_follower_free removes the
 * record. A load cannot renew the record (it holds the store's read
 * transaction), so the record made before it is dated
 * LM_FOLLOWER_LOAD_AHEAD_S ahead, which keeps it within the lease for a
 * load that long, and is made again, dated now, once the load is done.
 * A follower that was away longer than the reader lease may find the
 * changes after its position trimmed (lm_store_changes: LM_EGONE); a
 * change entry may be unreadable (LM_EPARSE, a damaged store). It then
 * loads a snapshot as at start, which goes on past that entry: into a
 * fresh index, published whole (lm_index_replace), so queries keep the old
 * index until the new one is complete, never a half-loaded one; counted in
 * reloads and logged (follower.reload). A reload that fails leaves the
 * old index and is tried again at the next wake-up.
 *
 * Threads: the follower runs on a thread of its own (lm_follower_start). It
 * touches the index only through index.h, whose lock it holds per change.
 * A snapshot load also decodes and prepares records on a helper thread
 * that lives as long as the load (when there is a second processor); the
 * records are still put into the index in store order, by the follower
 * thread.
 * lm_follower_stats and lm_follower_loaded may be called from any thread.
 * lm_follower_run_once is for a caller that drives the follower itself
 * (tests, tools) instead of starting the thread: never both.
 *
 * Failure injection: opts.fault, when set, is asked before every store read
 * (the snapshot, a change-log batch, one record) and a result other than
 * LM_OK is taken as that read's result, so that a test drives the real
 * error handling of the real follower with a real store. Production code
 * leaves it NULL.
 */
#ifndef LUNAMATCH_MATCH_FOLLOWER_H
#define LUNAMATCH_MATCH_FOLLOWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "lunamatch/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_FOLLOWER_BATCH_MAX       1000 /* change entries applied per batch */
#define LM_FOLLOWER_NOTIFY_MAX      1024 /* bytes of one notification accepted */
#define LM_FOLLOWER_POLL_MS_DEFAULT 1000u
#define LM_FOLLOWER_HEARTBEAT_MS    10000 /* the position is recorded this often */
#define LM_FOLLOWER_LOAD_AHEAD_S    3600  /* a load's record is dated this far ahead */

/* The store reads of the follower, as opts.fault names them. */
typedef enum lm_follower_read {
	LM_FOLLOWER_READ_SNAPSHOT = 1, /* lm_store_snapshot of the load */
	LM_FOLLOWER_READ_CHANGES = 2,  /* lm_store_changes of one batch */
	LM_FOLLOWER_READ_RECORD = 3,   /* lm_store_get of one changed record */
} lm_follower_read;

typedef struct lm_follower_opts {
	lm_store *store;        /* required; borrowed */
	lm_index *index;        /* required; borrowed */
	const char *notify_url; /* NULL or "" = poll only; copied */
	/* Name of the position recorded in the store (unique among the store's
	 * readers; see lm_store_reader_set); NULL or "" = none is recorded (a
	 * read-only store): trimming then does not wait for this follower.
	 * Copied. */
	const char *reader_id;
	unsigned poll_ms; /* 0 = LM_FOLLOWER_POLL_MS_DEFAULT */
	void *arg;        /* for the callbacks below */
	/* Called on the follower thread when a snapshot is loaded: at start,
	 * and again after each reload (the change log after the follower's
	 * position was trimmed); may be NULL. */
	void (*on_loaded)(void *arg);
	/* Called on the follower thread after the load and after every batch
	 * with progress: the index now reflects the change log up to seq (also
	 * readable as lm_index_seq). Must not block; may be NULL. */
	void (*on_applied)(void *arg, uint64_t seq);
	/* Test seam (see above); NULL in production. */
	int (*fault)(void *arg, lm_follower_read what);
	/* The wall clock the index clock is moved to, Unix seconds; NULL =
	 * time(). Called with arg on the follower thread. */
	int64_t (*clock)(void *arg);
} lm_follower_opts;

typedef struct lm_follower lm_follower;

/* Creates a follower (nothing is read yet). Returns LM_OK, LM_EINVAL or
 * LM_ENOMEM. */
int lm_follower_new(const lm_follower_opts *o, lm_follower **out);

/* Starts the thread: load, then follow. Returns LM_OK, LM_EINVAL (already
 * started), LM_ENNG (the notify socket cannot be opened; a URL that is not
 * there yet is fine: the socket dials in the background) or LM_ENOMEM. */
int lm_follower_start(lm_follower *f);

/* Stops the thread after the change it is applying, and joins it. Safe to
 * call when not started. */
void lm_follower_stop(lm_follower *f);

/* Stops the follower if running and frees it. NULL is a no-op. */
void lm_follower_free(lm_follower *f);

/*
 * Without the thread: loads the snapshot on the first call, then applies
 * every change available now (in batches). Returns LM_OK or the error that
 * stopped it (the index then reflects what was applied before it).
 */
int lm_follower_run_once(lm_follower *f);

typedef struct lm_follower_stats {
	bool loaded;            /* the snapshot is in the index */
	uint64_t seq;           /* last applied change seq */
	uint64_t applied;       /* change entries applied since start */
	uint64_t errors;        /* failed reads of the change log or of
	                         * records, and records that do not decode (a
	                         * read retried later counts each time) */
	uint64_t notifications; /* notifications received */
	uint64_t record_bytes;  /* serialized bytes of the records in the index */
	uint64_t records;       /* records in the index */
	uint64_t reloads;       /* snapshots loaded again because the change log
	                         * was trimmed past the follower's position or
	                         * held an unreadable entry */
} lm_follower_stats;

void lm_follower_stats_get(lm_follower *f, lm_follower_stats *out);
bool lm_follower_loaded(lm_follower *f);

/* Approximate memory of the index from follower stats: the decoded records,
 * their prepared forms and the tables, estimated from the serialized sizes. */
uint64_t lm_follower_index_bytes(const lm_follower_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_FOLLOWER_H */
