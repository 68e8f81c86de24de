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
 * After each applied batch the follower hands the batch to the changes
 * callback (new-match events), but only the entries whose seq is above the
 * events cursor given at start: what was derived before a restart is never
 * derived again. Entries between that cursor and the snapshot seq (changes
 * made while the service was down) are handed over right after the snapshot
 * is loaded, so none is missed either.
 *
 * A change whose record cannot be read or indexed for a reason of the
 * moment (out of memory, LMDB reader table full, a store failure) stops the
 * batch before it: it is retried on the next wake-up and the follower's seq
 * never passes it. Only a record that cannot be decoded at all is skipped
 * (counted in errors, logged). A snapshot load that fails is retried from an
 * empty index. The index clock (lm_index_advance) is moved to the wall clock
 * after the load, after every batch and at every wake-up, so that expired
 * postings leave the open-postings count without waiting for a query.
 *
 * Threads: the follower runs on a thread of its own (lm_follower_start). It
 * touches the index only through index.h, whose lock it holds per record.
 * lm_follower_stats and lm_follower_loaded may be called from any thread.
 * lm_follower_run_once is for a caller that drives the follower itself
 * (tests, tools) instead of starting the thread: never both.
 */
#ifndef LUNAMATCH_MATCH_FOLLOWER_H
#define LUNAMATCH_MATCH_FOLLOWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "lunamatch/store.h"
#include "events.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_FOLLOWER_BATCH_MAX       1000 /* change entries applied per batch */
#define LM_FOLLOWER_NOTIFY_MAX      1024 /* bytes of one notification accepted */
#define LM_FOLLOWER_POLL_MS_DEFAULT 1000u

/*
 * Called on the follower thread after a batch was applied to the index (and
 * the index seq set to cursor_seq, the seq of the batch's last entry). The
 * changes (lm_event_change of events.h, so that main can hand them to
 * lm_events_on_changes as they are) are in seq order and all above the
 * events cursor; their ids are borrowed for the call. is_new is true when
 * the id was not in the index before the change. For the changes handed
 * over after a restart (or a failed callback) the index state before them
 * is gone: is_new is then taken from the version (1 = new). Returns
 * LM_OK, or an error: then the follower logs it, keeps the index as it is,
 * and hands the same changes over again on the next wake-up (the callback
 * must be idempotent, as lm_events_on_changes is).
 */
typedef int (*lm_follower_changes_fn)(
    void *arg, const lm_event_change *changes, size_t n, uint64_t cursor_seq);

typedef struct lm_follower_opts {
	lm_store *store;        /* required; borrowed */
	lm_index *index;        /* required; borrowed */
	const char *notify_url; /* NULL or "" = poll only; copied */
	unsigned poll_ms;       /* 0 = LM_FOLLOWER_POLL_MS_DEFAULT */
	uint64_t events_after;  /* the events cursor: changes <= it are not handed over */
	lm_follower_changes_fn on_changes; /* may be NULL */
	void *arg;
	/* Called once on the follower thread when the snapshot is loaded (and
	 * the catch-up handed over); may be NULL. */
	void (*on_loaded)(void *arg);
	/* Called by lm_follower_stop (on its thread, after the stop flag is set)
	 * to make a changes callback in progress return soon, between two
	 * changes, with an error (the follower then hands the rest over on its
	 * next run); may be NULL. main passes lm_events_interrupt. */
	void (*interrupt)(void *arg);
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

/* Stops the thread after the change it is applying (an event derivation in
 * progress is interrupted through opts.interrupt), and joins it. Safe to
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
	uint64_t errors;        /* failed reads or decodes of records (a read
	                         * retried later counts each time) */
	uint64_t notifications; /* notifications received */
	uint64_t record_bytes;  /* serialized bytes of the records in the index */
	uint64_t records;       /* records in the index */
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
