/*
 * test_trimmer.c - ingest's trimmer on a real store: when a trim is due,
 * that a backlog is cut in bounded steps, that a reader holds the log back,
 * that a failing trim is counted, that damaged entries are counted, and the
 * metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "storetest.h"
#include "lunamatch/error.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"
#include "lunamatch/metrics.h"
#include "lunamatch/store.h"
#include "trimmer.h"

/* Puts n new postings, one transaction. */
static void
put_n(lm_store *s, int n)
{
	static int next;
	lm_store_txn *t;
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "p%05d", next++);
		assert_int_equal(lm_store_put(t, LM_KIND_POSTING, id, 1, "x", 1), LM_OK);
	}
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

static uint64_t
counter(lm_metrics *m, const char *name)
{
	return lm_counter_get(lm_metrics_counter(m, name, "", NULL));
}

static double
gauge(lm_metrics *m, const char *name)
{
	return lm_gauge_get(lm_metrics_gauge(m, name, "", NULL));
}

static void
test_steps(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("trimmer");
	lm_store *s = NULL;
	lm_metrics *m = NULL;
	lm_trimmer *tr = NULL;
	lm_store_txn *t;
	int64_t now = 1000;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_trimmer_opts o = {.store = s, .max = 4, .metrics = m};
	assert_int_equal(lm_trimmer_new(&o, &tr), LM_OK);

	/* 10 entries, no reader: 9 go (the newest stays), 4 per trim. */
	put_n(s, 10);
	assert_int_equal(lm_trimmer_step(tr, now), LM_OK);
	assert_int_equal(counter(m, "lunamatch_store_changes_trimmed_total"), 4);
	/* Not due before LM_TRIMMER_AGAIN_MS; then due, twice. */
	assert_int_equal(lm_trimmer_step(tr, now + LM_TRIMMER_AGAIN_MS - 1), LM_OK);
	assert_int_equal(counter(m, "lunamatch_store_changes_trimmed_total"), 4);
	now += LM_TRIMMER_AGAIN_MS;
	assert_int_equal(lm_trimmer_step(tr, now), LM_OK);
	now += LM_TRIMMER_AGAIN_MS;
	assert_int_equal(lm_trimmer_step(tr, now), LM_OK);
	assert_int_equal(counter(m, "lunamatch_store_changes_trimmed_total"), 9);
	assert_true(gauge(m, "lunamatch_store_change_log_entries") == 1.0);
	assert_true(gauge(m, "lunamatch_store_change_log_low_water") == 9.0);

	/* Nothing left over: the next trim waits for the interval. */
	now += LM_TRIMMER_AGAIN_MS;
	assert_int_equal(lm_trimmer_step(tr, now), LM_OK);
	put_n(s, 3); /* 11..13 */
	assert_int_equal(lm_trimmer_step(tr, now + LM_TRIMMER_AGAIN_MS), LM_OK);
	assert_int_equal(counter(m, "lunamatch_store_changes_trimmed_total"), 9);

	/* A reader at 11 holds the log from 12 on. */
	assert_int_equal(lm_store_reader_set(s, "r", 11, 0), LM_OK);
	now += LM_TRIMMER_INTERVAL_MS;
	assert_int_equal(lm_trimmer_step(tr, now), LM_OK);
	assert_int_equal(counter(m, "lunamatch_store_changes_trimmed_total"), 11);
	assert_true(gauge(m, "lunamatch_store_readers") == 1.0);
	assert_true(gauge(m, "lunamatch_store_change_log_low_water") == 11.0);

	/* A trim that cannot run (the store's write slot is taken) fails,
	 * counted, and is tried again after the interval. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	now += LM_TRIMMER_INTERVAL_MS;
	assert_int_equal(lm_trimmer_step(tr, now), LM_EBUSY);
	assert_int_equal(counter(m, "lunamatch_store_trim_failures_total"), 1);
	lm_store_abort(t);
	assert_int_equal(lm_trimmer_step(tr, now + 1), LM_OK); /* not due */
	assert_int_equal(counter(m, "lunamatch_store_trim_failures_total"), 1);

	lm_trimmer_opts bad = {.store = s, .max = LM_STORE_TRIM_MAX + 1};
	lm_trimmer *none = NULL;
	assert_int_equal(lm_trimmer_new(&bad, &none), LM_EINVAL);
	assert_null(none);
	lm_trimmer_free(NULL);
	lm_trimmer_free(tr);
	lm_metrics_free(m);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* Damaged store entries, whatever finds them, reach the metrics: those the
 * trim passes over or removes (a record value, a reader record), each time
 * it meets them, and a damaged key the store found at the change log's end. */
static void
test_damaged(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("trimmer-damaged");
	lm_store *s = NULL;
	lm_metrics *m = NULL;
	lm_trimmer *tr = NULL;
	unsigned char key[9];
	int64_t now = 1000;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	put_n(s, 3); /* seq 1..3 */
	lm_store_close(s);
	lmt_store_poke(dir, "readers", "bad-reader", 10, "xyz", 3);
	lm_lmdb_put_be64(key, 5); /* a seq with a byte after it, at the end */
	key[8] = 'x';
	lmt_store_poke(dir, "changes", key, sizeof(key), "xyz", 3);
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	put_n(s, 1); /* finds the damaged key at the log's end */

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_trimmer_opts o = {.store = s, .metrics = m};
	assert_int_equal(lm_trimmer_new(&o, &tr), LM_OK);
	assert_int_equal(lm_trimmer_step(tr, now), LM_OK);
	/* The reader record and the change key (removed with the trimmed
	 * entries), and the key found at the log's end. */
	uint64_t first = counter(m, "lunamatch_store_damaged_total");
	assert_int_equal(first, 3);
	/* The key found at the end is counted once, not at every trim. */
	now += LM_TRIMMER_INTERVAL_MS;
	assert_int_equal(lm_trimmer_step(tr, now), LM_OK);
	assert_int_equal(counter(m, "lunamatch_store_damaged_total"), first);

	lm_trimmer_free(tr);
	lm_metrics_free(m);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_steps),
	    cmocka_unit_test(test_damaged),
	};
	lm_log_set_level(LM_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
