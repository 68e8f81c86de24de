/*
 * trimmer.h - ingest's compaction of the record store it writes.
 *
 * The store's writer is the one that may trim it (lm_store_trim needs the
 * handle's write slot), so ingest's consumer thread calls lm_trimmer_step
 * between its batches. A step runs one bounded lm_store_trim when it is
 * due: every LM_TRIMMER_INTERVAL_MS, and again after LM_TRIMMER_AGAIN_MS
 * while the previous trim stopped at its bound, so that a backlog is cut in
 * short transactions with the batches in between. docs/ingest.md,
 * "Compaction"; the rules are in docs/store.md, "Trimming".
 *
 * Metrics: lunamatch_store_changes_trimmed_total,
 * lunamatch_store_tombstones_removed_total,
 * lunamatch_store_readers_expired_total, lunamatch_store_trim_failures_total
 * and the gauges lunamatch_store_change_log_entries,
 * lunamatch_store_change_log_low_water, lunamatch_store_readers,
 * lunamatch_store_tombstones.
 *
 * Threads: one thread steps the trimmer, the store's writer thread.
 */
#ifndef LUNAMATCH_TRIMMER_H
#define LUNAMATCH_TRIMMER_H

#include <stdint.h>

#include "lunamatch/metrics.h"
#include "lunamatch/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_TRIMMER_INTERVAL_MS 10000 /* between trims with nothing left over */
#define LM_TRIMMER_AGAIN_MS    50    /* after a trim that stopped at its bound */

typedef struct lm_trimmer_opts {
	lm_store *store;               /* writable; borrowed */
	int64_t reader_lease_s;        /* 0: the store's default */
	int64_t tombstone_retention_s; /* 0: the store's default */
	size_t max;                    /* work per trim; 0: the store's default */
	lm_metrics *metrics;           /* may be NULL; borrowed */
	/* 0: LM_TRIMMER_INTERVAL_MS. Tests set it short to see a trim come
	 * due soon. */
	int64_t interval_ms;
} lm_trimmer_opts;

typedef struct lm_trimmer lm_trimmer;

/* Creates a trimmer; the first step is due at once. Returns LM_OK, LM_EINVAL
 * or LM_ENOMEM. */
int lm_trimmer_new(const lm_trimmer_opts *o, lm_trimmer **out);

/* NULL is a no-op. */
void lm_trimmer_free(lm_trimmer *t);

/*
 * Runs one trim if it is due at now_ms (a monotonic clock), on the thread
 * that writes the store and never inside its transaction. Returns LM_OK
 * (also when nothing was due) or the error of the trim, which is logged and
 * counted; the next try comes after the interval.
 */
int lm_trimmer_step(lm_trimmer *t, int64_t now_ms);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_TRIMMER_H */
