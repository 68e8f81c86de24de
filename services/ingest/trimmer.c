/*
 * trimmer.c - ingest's compaction of the record store; see trimmer.h.
 */
#include <stdlib.h>

#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "trimmer.h"

struct lm_trimmer {
	lm_store *store;
	lm_store_trim_opts opts;
	int64_t next_ms;     /* when the next trim is due */
	int64_t interval_ms; /* lm_trimmer_opts.interval_ms or the default */
	lm_counter *trimmed, *removed, *expired, *failures, *damaged;
	lm_gauge *entries, *low_water, *readers, *tombstones;
	uint64_t store_damaged; /* lm_store_stats' damaged already counted */
};

int
lm_trimmer_new(const lm_trimmer_opts *o, lm_trimmer **out)
{
	lm_trimmer *t;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL || o->store == NULL || o->reader_lease_s < 0 ||
	    o->tombstone_retention_s < 0 || o->max > LM_STORE_TRIM_MAX ||
	    o->interval_ms < 0)
		return LM_EINVAL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return LM_ENOMEM;
	t->store = o->store;
	t->interval_ms = o->interval_ms > 0 ? o->interval_ms : LM_TRIMMER_INTERVAL_MS;
	t->opts.reader_lease_s = o->reader_lease_s;
	t->opts.tombstone_retention = o->tombstone_retention_s;
	t->opts.max = o->max;
	if (o->metrics != NULL) {
		lm_metrics *m = o->metrics;
		t->trimmed = lm_metrics_counter(m,
		    "lunamatch_store_changes_trimmed_total",
		    "Change-log entries trimmed (every reader had applied them).", NULL);
		t->removed =
		    lm_metrics_counter(m, "lunamatch_store_tombstones_removed_total",
		        "Tombstones removed after the tombstone retention.", NULL);
		t->expired =
		    lm_metrics_counter(m, "lunamatch_store_readers_expired_total",
		        "Change-log readers forgotten after their lease.", NULL);
		t->failures = lm_metrics_counter(m, "lunamatch_store_trim_failures_total",
		    "Trims of the store that failed.", NULL);
		t->damaged = lm_metrics_counter(m, "lunamatch_store_damaged_total",
		    "Damaged store entries met: passed over or removed by a trim "
		    "(again at each trim while they stay), found at the change "
		    "log's end, or replaced by a committed write.",
		    NULL);
		t->entries = lm_metrics_gauge(m, "lunamatch_store_change_log_entries",
		    "Entries in the change log.", NULL);
		t->low_water = lm_metrics_gauge(m, "lunamatch_store_change_log_low_water",
		    "Change-log seq up to which entries were trimmed.", NULL);
		t->readers = lm_metrics_gauge(m, "lunamatch_store_readers",
		    "Change-log readers within their lease at the last trim.", NULL);
		t->tombstones = lm_metrics_gauge(m, "lunamatch_store_tombstones",
		    "Deletion tombstones in the store.", NULL);
	}
	*out = t;
	return LM_OK;
}

void
lm_trimmer_free(lm_trimmer *t)
{
	free(t);
}

int
lm_trimmer_step(lm_trimmer *t, int64_t now_ms)
{
	lm_store_trim_result r;
	struct lm_store_stats st;
	int rc;

	if (t == NULL || now_ms < t->next_ms)
		return LM_OK;
	t->opts.now = 0; /* the wall clock: leases and ages are in Unix time */
	if ((rc = lm_store_trim(t->store, &t->opts, &r)) != LM_OK) {
		lm_error("store.trim", "cannot trim the store: %s", lm_strerror(rc));
		lm_counter_add(t->failures, 1);
		t->next_ms = now_ms + t->interval_ms;
		return rc;
	}
	lm_counter_add(t->trimmed, r.changes_trimmed);
	lm_counter_add(t->removed, r.tombstones_removed);
	lm_counter_add(t->expired, r.readers_expired);
	lm_gauge_set(t->readers, (double) r.readers);
	lm_gauge_set(t->low_water, (double) r.low_water);
	lm_counter_add(t->damaged, r.damaged);
	if (lm_store_stats(t->store, &st) == LM_OK) {
		lm_gauge_set(t->entries, (double) st.changes);
		lm_gauge_set(t->tombstones, (double) st.tombstones);
		if (st.damaged > t->store_damaged) {
			lm_counter_add(t->damaged, st.damaged - t->store_damaged);
			t->store_damaged = st.damaged;
		}
	}
	if (r.changes_trimmed > 0 || r.tombstones_removed > 0)
		lm_debug("store.trim",
		    "trimmed %llu change entries (low water %llu), removed %llu "
		    "tombstones; %llu readers",
		    (unsigned long long) r.changes_trimmed,
		    (unsigned long long) r.low_water,
		    (unsigned long long) r.tombstones_removed,
		    (unsigned long long) r.readers);
	if (r.damaged > 0)
		lm_warn("store.trim",
		    "%llu damaged store entries passed over or removed (store.corrupt)",
		    (unsigned long long) r.damaged);
	t->next_ms = now_ms + (r.more ? LM_TRIMMER_AGAIN_MS : t->interval_ms);
	return LM_OK;
}
