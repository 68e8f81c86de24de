/*
 * test_store.c - the record store on real LMDB files: records, versions,
 * tombstones, the change log and its trimming, snapshots, map growth,
 * readers in other processes, crash safety, a full disk and input limits.
 *
 * Processes: LMDB allows one environment per file per process, so every
 * scenario with a second handle forks a child that opens its own. Children
 * never return into cmocka: they report through their exit status.
 */
#define _GNU_SOURCE 1 /* unshare, CLONE_NEWNS */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lmtest.h"
#include "storetest.h"
#include "lunamatch/error.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"

#define SMALL_MAP (64u * 1024)

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static lm_store *
open_store(const char *dir, uint64_t map, uint64_t max)
{
	lm_store_opts o = {.map_size = map, .max_map_size = max, .flags = 0};
	lm_store *s = NULL;
	assert_int_equal(lm_store_open(dir, &o, &s), LM_OK);
	assert_non_null(s);
	return s;
}

static void
put1(lm_store *s, lm_kind k, const char *id, uint64_t v, const char *val, int expect)
{
	lm_store_txn *t;
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, k, id, v, val, strlen(val)), expect);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

static void
expect_get(lm_store *s, lm_kind k, const char *id, uint64_t version, const char *val)
{
	void *b = NULL;
	size_t len = 0;
	uint64_t v = 0;
	assert_int_equal(lm_store_get(s, k, id, &b, &len, &v), LM_OK);
	assert_int_equal(v, version);
	assert_int_equal(len, strlen(val));
	assert_memory_equal(b, val, len);
	free(b);
}

static void
expect_absent(lm_store *s, lm_kind k, const char *id)
{
	void *b = NULL;
	assert_int_equal(lm_store_get(s, k, id, &b, NULL, NULL), LM_ENOENT);
	assert_null(b);
}

/* ---- records ------------------------------------------------------------ */

struct collect {
	char ids[64][LM_STORE_ID_MAX + 1];
	uint64_t versions[64];
	size_t n;
	lm_store *s;    /* if set, each record is read back from inside the callback */
	size_t stop_at; /* stop (return 7) after this many; 0 = never */
};

static int
collect_fn(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct collect *c = arg;
	(void) bytes;
	(void) len;
	if (c->n >= 64)
		return 99;
	snprintf(c->ids[c->n], sizeof(c->ids[0]), "%s", id);
	c->versions[c->n++] = version;
	if (c->s != NULL) {
		uint64_t v = 0;
		if (lm_store_get(c->s, LM_KIND_POSTING, id, NULL, NULL, &v) != LM_OK ||
		    v != version)
			return 98;
	}
	return c->stop_at != 0 && c->n == c->stop_at ? 7 : 0;
}

static void
test_put_get_delete_iterate(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-basic");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_txn *t;
	struct lm_store_stats st;
	struct collect c;

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "job-b", 1, "B", 1), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "job-a", 3, "AAA", 3), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "job-c", 2, "", 0), LM_OK);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_PROFILE, "job-a", 9, "profile", 7), LM_OK);
	/* Only one write transaction per handle. */
	lm_store_txn *t2 = NULL;
	assert_int_equal(lm_store_begin(s, &t2), LM_EBUSY);
	assert_null(t2);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);

	expect_get(s, LM_KIND_POSTING, "job-a", 3, "AAA");
	expect_get(s, LM_KIND_POSTING, "job-b", 1, "B");
	expect_get(s, LM_KIND_POSTING, "job-c", 2, ""); /* empty value */
	expect_get(s, LM_KIND_PROFILE, "job-a", 9, "profile");
	expect_absent(s, LM_KIND_PROFILE, "job-b"); /* kinds are separate */
	expect_absent(s, LM_KIND_POSTING, "job-z");

	/* Iteration is in id order, per kind; reads inside the callback work. */
	memset(&c, 0, sizeof(c));
	c.s = s;
	assert_int_equal(lm_store_foreach(s, LM_KIND_POSTING, collect_fn, &c), LM_OK);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.ids[0], "job-a");
	assert_string_equal(c.ids[1], "job-b");
	assert_string_equal(c.ids[2], "job-c");
	assert_int_equal(c.versions[0], 3);
	/* A non-zero return stops and is returned. */
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	assert_int_equal(lm_store_foreach(s, LM_KIND_POSTING, collect_fn, &c), 7);
	assert_int_equal(c.n, 2);
	memset(&c, 0, sizeof(c));
	assert_int_equal(lm_store_foreach(s, LM_KIND_PROFILE, collect_fn, &c), LM_OK);
	assert_int_equal(c.n, 1);

	/* Delete: gone from get, iterate and counts; a tombstone remains. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "job-b", 0), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "job-nope", 0), LM_ENOENT);
	/* Deleted inside the same transaction: already absent to it. */
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "job-b", 0), LM_ENOENT);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	expect_absent(s, LM_KIND_POSTING, "job-b");
	memset(&c, 0, sizeof(c));
	assert_int_equal(lm_store_foreach(s, LM_KIND_POSTING, collect_fn, &c), LM_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[1], "job-c");

	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.postings, 2);
	assert_int_equal(st.profiles, 1);
	assert_int_equal(st.tombstones, 1);
	assert_int_equal(st.changes, 5);
	assert_int_equal(st.last_seq, 5);
	assert_true(st.map_used > 0 && st.map_used <= st.map_size);
	assert_int_equal(st.map_size, LM_STORE_MAP_SIZE_DEFAULT);

	/* An aborted transaction leaves nothing behind. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "job-x", 1, "X", 1), LM_OK);
	lm_store_abort(t);
	lm_store_abort(NULL);
	expect_absent(s, LM_KIND_POSTING, "job-x");
	uint64_t seq = 0;
	assert_int_equal(lm_store_last_seq(s, &seq), LM_OK);
	assert_int_equal(seq, 5);

	/* Everything survives a reopen; the log continues. */
	lm_store_close(s);
	s = open_store(dir, 0, 0);
	expect_get(s, LM_KIND_POSTING, "job-a", 3, "AAA");
	expect_absent(s, LM_KIND_POSTING, "job-b");
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_PROFILE, "cand-1", 1, "c", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	assert_int_equal(seq, 6);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.profiles, 2);
	assert_int_equal(st.tombstones, 1);

	/* Metadata: caller keys round-trip, store.* is reserved. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_meta_put(t, "model_version", "m-3", 3), LM_OK);
	assert_int_equal(lm_store_meta_put(t, "store.schema_version", "2", 1), LM_EINVAL);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	void *mv = NULL;
	size_t mlen = 0;
	assert_int_equal(lm_store_meta_get(s, "model_version", &mv, &mlen), LM_OK);
	assert_int_equal(mlen, 3);
	assert_string_equal(mv, "m-3");
	free(mv);
	assert_int_equal(lm_store_meta_get(s, "store.schema_version", &mv, &mlen), LM_OK);
	assert_string_equal(mv, LM_STORE_SCHEMA_VERSION);
	free(mv);
	assert_int_equal(lm_store_meta_get(s, "absent", &mv, &mlen), LM_ENOENT);

	assert_string_equal(lm_kind_name(LM_KIND_POSTING), "posting");
	assert_string_equal(lm_kind_name(LM_KIND_PROFILE), "profile");
	assert_string_equal(lm_kind_name((lm_kind) 0), "unknown");
	lm_store_close(s);
	lm_store_close(NULL);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- versions and tombstones -------------------------------------------- */

static void
test_versioning(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-version");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_txn *t;
	struct lm_store_stats st;

	put1(s, LM_KIND_POSTING, "p", 5, "v5", LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	/* Equal and lower versions are counted no-ops; the txn stays usable. */
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p", 5, "again", 5), LM_ESTALE);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p", 4, "older", 5), LM_ESTALE);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "q", 1, "q1", 2), LM_OK);
	uint64_t seq = 0;
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	assert_int_equal(seq, 2); /* stale puts wrote no change entry */
	expect_get(s, LM_KIND_POSTING, "p", 5, "v5");
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.stale_skipped, 2);
	assert_int_equal(st.postings, 2);

	/* A higher version replaces, also twice within one transaction. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p", 6, "v6", 2), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p", 8, "v8", 2), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p", 7, "v7", 2), LM_ESTALE);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	expect_get(s, LM_KIND_POSTING, "p", 8, "v8");
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.stale_skipped, 3);
	assert_int_equal(st.postings, 2);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_tombstones(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-tomb");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_txn *t;
	struct lm_store_stats st;

	put1(s, LM_KIND_PROFILE, "c", 3, "v3", LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "c", 2), LM_ESTALE);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "c", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	expect_absent(s, LM_KIND_PROFILE, "c");

	/* Replays of older or equal upserts after the delete stay no-ops. */
	put1(s, LM_KIND_PROFILE, "c", 3, "v3", LM_ESTALE);
	put1(s, LM_KIND_PROFILE, "c", 2, "v2", LM_ESTALE);
	expect_absent(s, LM_KIND_PROFILE, "c");
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.profiles, 0);
	assert_int_equal(st.tombstones, 1);
	assert_int_equal(st.stale_skipped, 3);

	/* A newer version resurrects the record. */
	put1(s, LM_KIND_PROFILE, "c", 4, "v4", LM_OK);
	expect_get(s, LM_KIND_PROFILE, "c", 4, "v4");
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.profiles, 1);
	assert_int_equal(st.tombstones, 0);

	/* Deleting at the stored version deletes (only a lower one is stale);
	 * a replay of that version stays a no-op, the next resurrects. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "c", 4), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	expect_absent(s, LM_KIND_PROFILE, "c");
	put1(s, LM_KIND_PROFILE, "c", 4, "v4", LM_ESTALE);
	put1(s, LM_KIND_PROFILE, "c", 5, "v5", LM_OK);

	/* Deleting with a version above the stored one fences up to it. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "c", 10), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	put1(s, LM_KIND_PROFILE, "c", 9, "v9", LM_ESTALE);
	/* Deleting an absent record with a higher version raises the fence. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "c", 12), LM_ENOENT);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "ghost", 7), LM_ENOENT);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "never", 0), LM_ENOENT);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	put1(s, LM_KIND_PROFILE, "c", 11, "v11", LM_ESTALE);
	put1(s, LM_KIND_PROFILE, "ghost", 7, "g7", LM_ESTALE);
	put1(s, LM_KIND_PROFILE, "ghost", 8, "g8", LM_OK);
	expect_get(s, LM_KIND_PROFILE, "ghost", 8, "g8");
	put1(s, LM_KIND_PROFILE, "never", 1, "n1", LM_OK);

	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.profiles, 2);   /* ghost, never */
	assert_int_equal(st.tombstones, 1); /* c */
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* Runs one put_at (bytes = val) or, with val NULL, one delete_at of version 0
 * in its own transaction and checks the result. */
static void
at1(lm_store *s, const char *id, uint64_t version, const char *val, uint32_t epoch,
    int32_t part, int64_t off, int want)
{
	lm_store_txn *t;
	lm_store_pos pos = {.epoch = epoch, .partition = part, .offset = off};
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	if (val != NULL)
		assert_int_equal(lm_store_put_at(t, LM_KIND_POSTING, id, version, val,
		                     strlen(val), &pos),
		    want);
	else
		assert_int_equal(
		    lm_store_delete_at(t, LM_KIND_POSTING, id, 0, &pos), want);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/*
 * Versionless deletions are ordered by the position of their message: one
 * from at or before the position of the live version's last change is a
 * replay (LM_ESTALE); a later offset, a later epoch or another partition
 * deletes. Values written without a position (older stores, lm_store_put)
 * keep the old rule, and a put without a position keeps the position of the
 * value it replaces.
 */
static void
test_positions(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-pos");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_txn *t;
	lm_store_pos bad = {.partition = -1};
	struct lm_store_stats st;

	/* put v1 @0, tombstone @1, put v2 @2; then the tombstone replayed. */
	at1(s, "j", 1, "v1", 0, 0, 0, LM_OK);
	at1(s, "j", 0, NULL, 0, 0, 1, LM_OK);
	at1(s, "j", 2, "v2", 0, 0, 2, LM_OK);
	at1(s, "j", 0, NULL, 0, 0, 1, LM_ESTALE);
	at1(s, "j", 0, NULL, 0, 0, 2, LM_ESTALE); /* the same position */
	expect_get(s, LM_KIND_POSTING, "j", 2, "v2");
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.stale_skipped, 2);
	/* An earlier epoch is older whatever its offset; a later one newer. */
	at1(s, "j", 0, NULL, 0, 0, 1000, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "j");
	at1(s, "j", 3, "v3", 1, 0, 5, LM_OK);
	at1(s, "j", 0, NULL, 0, 0, 2000, LM_ESTALE);
	at1(s, "j", 0, NULL, 2, 0, 0, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "j");

	/* lm_store_get_pos reads the live version and its position. */
	lm_store_pos got;
	uint64_t v = 0;
	bool has = false;
	assert_int_equal(lm_store_get_pos(s, LM_KIND_POSTING, "j", &v, &got, &has),
	    LM_ENOENT); /* deleted */
	at1(s, "j", 4, "v4", 2, 7, 9, LM_OK);
	assert_int_equal(
	    lm_store_get_pos(s, LM_KIND_POSTING, "j", &v, &got, &has), LM_OK);
	assert_true(has);
	assert_int_equal(v, 4);
	assert_int_equal(got.epoch, 2);
	assert_int_equal(got.partition, 7);
	assert_int_equal(got.offset, 9);
	assert_int_equal(
	    lm_store_get_pos(s, LM_KIND_PROFILE, "j", &v, &got, &has), LM_ENOENT);
	assert_int_equal(
	    lm_store_get_pos(s, LM_KIND_POSTING, "j", &v, NULL, &has), LM_EINVAL);

	/* Another partition does not compare: the deletion applies. */
	at1(s, "k", 1, "v1", 0, 3, 50, LM_OK);
	at1(s, "k", 0, NULL, 0, 4, 1, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "k");

	/* A put without a position keeps the one of the value it replaces. */
	at1(s, "m", 1, "v1", 0, 0, 10, LM_OK);
	put1(s, LM_KIND_POSTING, "m", 2, "v2", LM_OK);
	at1(s, "m", 0, NULL, 0, 0, 9, LM_ESTALE);
	expect_get(s, LM_KIND_POSTING, "m", 2, "v2");
	/* A value without any position: deletions apply as before. */
	put1(s, LM_KIND_POSTING, "n", 1, "v1", LM_OK);
	assert_int_equal(
	    lm_store_get_pos(s, LM_KIND_POSTING, "n", &v, &got, &has), LM_OK);
	assert_false(has);
	assert_int_equal(v, 1);
	at1(s, "n", 0, NULL, 0, 0, 0, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "n");

	/* Positions survive closing and reopening the store. */
	lm_store_close(s);
	s = open_store(dir, 0, 0);
	at1(s, "m", 0, NULL, 0, 0, 10, LM_ESTALE);
	at1(s, "m", 0, NULL, 0, 0, 11, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "m");

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(
	    lm_store_put_at(t, LM_KIND_POSTING, "x", 1, "x", 1, &bad), LM_EINVAL);
	bad.partition = 0;
	bad.offset = -1;
	assert_int_equal(lm_store_delete_at(t, LM_KIND_POSTING, "x", 0, &bad), LM_EINVAL);
	lm_store_abort(t);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* A versionless deletion of id without a position (lm_store_delete). */
static void
del_nopos(lm_store *s, const char *id, int want)
{
	lm_store_txn *t;
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, id, 0), want);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/*
 * A log read again where the live version has no place (a store written
 * before positions were kept; a new epoch is alike) applies an old
 * tombstone over that version, which it takes: the put of that version
 * after the tombstone in the log restores the record. Where the store
 * knows the deletion came after the version (one epoch and partition), or
 * the deletion comes from another partition or without a position, the
 * tombstone stays a fence.
 */
static void
test_positions_reput(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-reput");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_txn *t;
	struct lm_store_stats st;

	/* Written without positions: put v1, deletion, put v2. The same three
	 * messages read again at their positions: v2 is back. */
	put1(s, LM_KIND_POSTING, "j", 1, "v1", LM_OK);
	del_nopos(s, "j", LM_OK);
	put1(s, LM_KIND_POSTING, "j", 2, "v2", LM_OK);
	at1(s, "j", 1, "v1", 0, 0, 10, LM_ESTALE);
	at1(s, "j", 0, NULL, 0, 0, 11, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "j");
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.postings, 0);
	assert_int_equal(st.tombstones, 1);
	/* Still so after the store is opened again. */
	lm_store_close(s);
	s = open_store(dir, 0, 0);
	at1(s, "j", 2, "v2", 0, 0, 12, LM_OK);
	expect_get(s, LM_KIND_POSTING, "j", 2, "v2");
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.postings, 1);
	assert_int_equal(st.tombstones, 0);
	/* A live version is not replaced by a put of its own version. */
	at1(s, "j", 2, "v2b", 0, 0, 13, LM_ESTALE);
	expect_get(s, LM_KIND_POSTING, "j", 2, "v2");

	/* Written without positions: v2. The log read again holds v2, a
	 * deletion and v2 again: the store cannot tell whether the deletion
	 * came before or after the v2 it holds, and ends with v2, as the
	 * compacted topic would. */
	put1(s, LM_KIND_POSTING, "f", 2, "v2", LM_OK);
	at1(s, "f", 2, "v2", 0, 0, 10, LM_ESTALE);
	at1(s, "f", 0, NULL, 0, 0, 11, LM_OK);
	at1(s, "f", 2, "v2", 0, 0, 12, LM_OK);
	expect_get(s, LM_KIND_POSTING, "f", 2, "v2");

	/* v2 from epoch 0; the log of epoch 1 holds v1 and a deletion, then
	 * v2. Only a put of v2 after the tombstone in its own partition and
	 * epoch restores the record. */
	at1(s, "e", 2, "v2", 0, 0, 20, LM_OK);
	at1(s, "e", 1, "v1", 1, 0, 0, LM_ESTALE);
	at1(s, "e", 0, NULL, 1, 0, 1, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "e");
	at1(s, "e", 2, "v2", 1, 0, 1, LM_ESTALE);          /* the same offset */
	at1(s, "e", 2, "v2", 1, 1, 2, LM_ESTALE);          /* another partition */
	at1(s, "e", 2, "v2", 0, 0, 2, LM_ESTALE);          /* an earlier epoch */
	put1(s, LM_KIND_POSTING, "e", 2, "v2", LM_ESTALE); /* no position */
	at1(s, "e", 1, "v1", 1, 0, 30, LM_ESTALE);         /* a lower version */
	expect_absent(s, LM_KIND_POSTING, "e");
	at1(s, "e", 2, "v2", 1, 0, 2, LM_OK);
	expect_get(s, LM_KIND_POSTING, "e", 2, "v2");

	/* v2 from epoch 0 in partition 1; epoch 1 partitions anew and holds
	 * the history in partition 0: v1, a deletion, v2. */
	at1(s, "a", 2, "v2", 0, 1, 2, LM_OK);
	at1(s, "a", 1, "v1", 1, 0, 0, LM_ESTALE);
	at1(s, "a", 0, NULL, 1, 0, 1, LM_OK);
	at1(s, "a", 2, "v2", 1, 0, 2, LM_OK);
	expect_get(s, LM_KIND_POSTING, "a", 2, "v2");
	/* The refill of epoch 0 stopped between the deletion and v2; epoch 1
	 * reads the same history again: v2 comes back. */
	put1(s, LM_KIND_POSTING, "b", 2, "v2", LM_OK);
	at1(s, "b", 0, NULL, 0, 0, 1, LM_OK);
	at1(s, "b", 1, "v1", 1, 0, 0, LM_ESTALE);
	at1(s, "b", 0, NULL, 1, 0, 1, LM_ENOENT);
	at1(s, "b", 2, "v2", 1, 0, 2, LM_OK);
	expect_get(s, LM_KIND_POSTING, "b", 2, "v2");

	/* In one epoch and partition the log orders the deletion after v2: a
	 * fence against a copy of v2 after it. */
	at1(s, "k", 2, "v2", 0, 0, 20, LM_OK);
	at1(s, "k", 0, NULL, 0, 0, 21, LM_OK);
	at1(s, "k", 2, "v2", 0, 0, 22, LM_ESTALE);
	expect_absent(s, LM_KIND_POSTING, "k");

	/* A deletion from another partition, or without a position (the
	 * refill's sweep), stays a fence. */
	at1(s, "r", 2, "v2", 0, 1, 20, LM_OK);
	at1(s, "r", 0, NULL, 0, 0, 21, LM_OK);
	at1(s, "r", 2, "v2", 0, 0, 22, LM_ESTALE);
	expect_absent(s, LM_KIND_POSTING, "r");
	at1(s, "w", 2, "v2", 0, 0, 30, LM_OK);
	del_nopos(s, "w", LM_OK);
	at1(s, "w", 2, "v2", 0, 0, 31, LM_ESTALE);
	expect_absent(s, LM_KIND_POSTING, "w");

	/* A deletion of the version a tombstone took orders it. */
	put1(s, LM_KIND_POSTING, "v", 2, "v2", LM_OK);
	at1(s, "v", 0, NULL, 0, 0, 11, LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "v", 2), LM_ENOENT);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	at1(s, "v", 2, "v2", 0, 0, 12, LM_ESTALE);
	expect_absent(s, LM_KIND_POSTING, "v");

	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- change log --------------------------------------------------------- */

struct entry {
	uint64_t seq;
	int kind;
	char id[LM_STORE_ID_MAX + 1];
	uint64_t version;
	bool deleted;
	int64_t at;
};

struct entries {
	struct entry *e;
	size_t n, cap;
	size_t stop_after; /* return 5 on the entry after this many; 0 = never */
};

static int
entries_fn(void *arg, uint64_t seq, const Lunamatch__V1__ChangeEntry *ce)
{
	struct entries *es = arg;
	if (es->stop_after != 0 && es->n == es->stop_after)
		return 5;
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 64;
		struct entry *ne = realloc(es->e, cap * sizeof(*ne));
		if (ne == NULL)
			return 1;
		es->e = ne;
		es->cap = cap;
	}
	struct entry *e = &es->e[es->n++];
	e->seq = seq;
	e->kind = (int) ce->kind;
	snprintf(e->id, sizeof(e->id), "%s", ce->id);
	e->version = ce->version;
	e->deleted = ce->deleted;
	e->at = ce->at;
	return 0;
}

static void
test_change_log(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-log");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_txn *t;
	struct entries es = {0};
	uint64_t last = 99, seq;
	int64_t t0 = (int64_t) time(NULL);

	/* Empty log. */
	assert_int_equal(lm_store_last_seq(s, &seq), LM_OK);
	assert_int_equal(seq, 0);
	assert_int_equal(lm_store_changes(s, 0, 10, entries_fn, &es, &last), LM_OK);
	assert_int_equal(es.n, 0);
	assert_int_equal(last, 0);

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "j1", 1, "a", 1), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_PROFILE, "c1", 4, "b", 1), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "j1", 1, "a", 1), LM_ESTALE);
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	assert_int_equal(seq, 2);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "j1", 2, "a2", 2), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "c1", 6), LM_OK);
	for (int i = 0; i < 20; i++) {
		char id[32];
		snprintf(id, sizeof(id), "bulk-%02d", i);
		assert_int_equal(lm_store_put(t, LM_KIND_POSTING, id, 1, "x", 1), LM_OK);
	}
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	assert_int_equal(seq, 24);
	/* A transaction without changes reports the current seq. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	assert_int_equal(seq, 24);

	/* Out of memory while an entry is decoded is of the moment
	 * (LM_ENOMEM, read again), not a corrupt entry (LM_EPARSE). */
	lm_pb_fail_allocs(1);
	assert_int_equal(lm_store_changes(s, 0, 1000, entries_fn, &es, &last), LM_ENOMEM);
	assert_int_equal(es.n, 0);
	assert_int_equal(last, 0);

	/* Everything, in order, with content. */
	assert_int_equal(lm_store_changes(s, 0, 1000, entries_fn, &es, &last), LM_OK);
	assert_int_equal(es.n, 24);
	assert_int_equal(last, 24);
	for (size_t i = 0; i < es.n; i++) {
		assert_int_equal(es.e[i].seq, i + 1);
		assert_true(
		    es.e[i].at >= t0 - 1 && es.e[i].at <= (int64_t) time(NULL) + 1);
	}
	assert_int_equal(es.e[0].kind, LUNAMATCH__V1__RECORD_KIND__RECORD_KIND_POSTING);
	assert_string_equal(es.e[0].id, "j1");
	assert_int_equal(es.e[0].version, 1);
	assert_false(es.e[0].deleted);
	assert_int_equal(es.e[1].kind, LUNAMATCH__V1__RECORD_KIND__RECORD_KIND_PROFILE);
	assert_string_equal(es.e[1].id, "c1");
	assert_int_equal(es.e[1].version, 4);
	assert_string_equal(es.e[2].id, "j1");
	assert_int_equal(es.e[2].version, 2);
	assert_string_equal(es.e[3].id, "c1");
	assert_int_equal(es.e[3].version, 6); /* the deleted (fence) version */
	assert_true(es.e[3].deleted);
	assert_string_equal(es.e[23].id, "bulk-19");

	/* Follow from an arbitrary seq, in pages of at most max. */
	es.n = 0;
	assert_int_equal(lm_store_changes(s, 10, 5, entries_fn, &es, &last), LM_OK);
	assert_int_equal(es.n, 5);
	assert_int_equal(es.e[0].seq, 11);
	assert_int_equal(last, 15);
	uint64_t pos = 0;
	size_t pages = 0;
	es.n = 0;
	for (;;) {
		size_t before = es.n;
		assert_int_equal(
		    lm_store_changes(s, pos, 7, entries_fn, &es, &pos), LM_OK);
		if (es.n == before)
			break;
		assert_true(es.n - before <= 7);
		pages++;
	}
	assert_int_equal(es.n, 24);
	assert_int_equal(pages, 4);
	assert_int_equal(pos, 24);
	for (size_t i = 0; i < es.n; i++)
		assert_int_equal(es.e[i].seq, i + 1);

	/* Past the end: nothing, position unchanged. */
	es.n = 0;
	assert_int_equal(lm_store_changes(s, 24, 10, entries_fn, &es, &last), LM_OK);
	assert_int_equal(es.n, 0);
	assert_int_equal(last, 24);
	assert_int_equal(lm_store_changes(s, 500, 10, entries_fn, &es, &last), LM_OK);
	assert_int_equal(last, 500);
	assert_int_equal(
	    lm_store_changes(s, UINT64_MAX, 10, entries_fn, &es, &last), LM_OK);
	assert_int_equal(es.n, 0);

	/* A callback that stops: the entry it refused is not consumed. */
	es.n = 0;
	es.stop_after = 3;
	assert_int_equal(lm_store_changes(s, 4, 10, entries_fn, &es, &last), 5);
	assert_int_equal(es.n, 3);
	assert_int_equal(last, 7);
	es.stop_after = 0;

	/* Bad arguments. */
	assert_int_equal(lm_store_changes(s, 0, 0, entries_fn, &es, &last), LM_EINVAL);
	assert_int_equal(lm_store_changes(s, 0, 1, NULL, &es, &last), LM_EINVAL);
	free(es.e);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- trimming -------------------------------------------------------------- */

/* One lm_store_trim at now with the given bound; the defaults otherwise. */
static lm_store_trim_result
trim1(lm_store *s, int64_t now, size_t max)
{
	lm_store_trim_opts o = {.now = now, .max = max};
	lm_store_trim_result r;
	assert_int_equal(lm_store_trim(s, &o, &r), LM_OK);
	return r;
}

/* Puts n postings "p<first>".."p<first+n-1>" at version 1, one txn. */
static void
put_range(lm_store *s, int first, int n)
{
	lm_store_txn *t;
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	for (int i = first; i < first + n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "p%04d", i);
		assert_int_equal(lm_store_put(t, LM_KIND_POSTING, id, 1, "x", 1), LM_OK);
	}
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/* The first seq lm_store_changes delivers after `after`, or 0 for none;
 * LM_EGONE makes it return UINT64_MAX. */
static uint64_t
first_after(lm_store *s, uint64_t after)
{
	struct entries es = {0};
	uint64_t seq = 0;
	int rc = lm_store_changes(s, after, 1, entries_fn, &es, NULL);
	if (rc == LM_EGONE)
		seq = UINT64_MAX;
	else if (rc == LM_OK && es.n == 1)
		seq = es.e[0].seq;
	else
		assert_int_equal(rc, LM_OK);
	free(es.e);
	return seq;
}

/*
 * The change log is trimmed below the lowest position of the readers heard
 * from within their lease, never past what one of them needs and never its
 * newest entry; a reader behind the trim gets LM_EGONE; a silent reader is
 * forgotten after the lease; each call is bounded.
 */
static void
test_trim_changes(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-trim");
	lm_store *s = open_store(dir, 0, 0);
	int64_t now = (int64_t) time(NULL);
	lm_store_trim_result r;
	lm_store_txn *t;
	struct lm_store_stats st;
	uint64_t seq, snap;

	put_range(s, 0, 10); /* seq 1..10 */
	assert_int_equal(lm_store_reader_set(s, "a", 4, now), LM_OK);
	assert_int_equal(lm_store_reader_set(s, "b", 7, now), LM_OK);
	r = trim1(s, now, 0);
	assert_int_equal(r.changes_trimmed, 4);
	assert_int_equal(r.low_water, 4);
	assert_int_equal(r.readers, 2);
	assert_false(r.more);
	/* Reader a still gets everything it needs; a position before it does
	 * not. */
	assert_int_equal(first_after(s, 4), 5);
	assert_int_equal(first_after(s, 3), UINT64_MAX);
	assert_int_equal(first_after(s, 0), UINT64_MAX);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.changes, 6);
	assert_int_equal(st.low_water, 4);
	assert_int_equal(st.last_seq, 10);
	/* Nothing more to do: a second call trims nothing. */
	r = trim1(s, now, 0);
	assert_int_equal(r.changes_trimmed, 0);

	/* a moves on: b (7) now holds the trim back. */
	assert_int_equal(lm_store_reader_set(s, "a", 9, now), LM_OK);
	r = trim1(s, now, 0);
	assert_int_equal(r.changes_trimmed, 3);
	assert_int_equal(r.low_water, 7);
	assert_int_equal(first_after(s, 7), 8);

	/* b goes silent: within its lease it still counts... */
	assert_int_equal(lm_store_reader_set(s, "b", 7, now - 200), LM_OK);
	assert_int_equal(lm_store_reader_set(s, "a", 10, now), LM_OK);
	r = trim1(s, now, 0);
	assert_int_equal(r.changes_trimmed, 0);
	assert_int_equal(r.readers, 2);
	/* ...past it, it is forgotten and no longer holds the log. The newest
	 * entry stays, so that seqs go on from it. */
	r = trim1(s, now + LM_STORE_READER_LEASE_DEFAULT, 0);
	assert_int_equal(r.readers_expired, 1);
	assert_int_equal(r.readers, 1);
	assert_int_equal(r.changes_trimmed, 2);
	assert_int_equal(r.low_water, 9);
	assert_int_equal(lm_store_reader_remove(s, "b"), LM_ENOENT);
	assert_int_equal(lm_store_reader_remove(s, "a"), LM_OK);
	r = trim1(s, now, 0);
	assert_int_equal(r.changes_trimmed, 0);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.changes, 1);
	assert_int_equal(first_after(s, 9), 10);
	assert_int_equal(first_after(s, 10), 0);
	put1(s, LM_KIND_POSTING, "next", 1, "n", LM_OK);
	assert_int_equal(lm_store_last_seq(s, &seq), LM_OK);
	assert_int_equal(seq, 11);

	/* A snapshot is always followable: its seq is at or above the trim. */
	put_range(s, 100, 5);
	trim1(s, now, 0);
	assert_int_equal(lm_store_snapshot(s, NULL, NULL, NULL, &snap), LM_OK);
	assert_int_equal(snap, 16);
	assert_int_equal(first_after(s, snap), 0);
	assert_int_equal(first_after(s, snap - 1), 16);

	/* Bounded work: 25 entries to go, 10 per call. */
	put_range(s, 200, 25); /* seq 17..41 */
	r = trim1(s, now, 10);
	assert_int_equal(r.changes_trimmed, 10);
	assert_true(r.more);
	r = trim1(s, now, 10);
	assert_int_equal(r.changes_trimmed, 10);
	assert_true(r.more);
	r = trim1(s, now, 10);
	assert_int_equal(r.changes_trimmed, 5);
	assert_int_equal(r.low_water, 40);
	/* (more may still be set: the scan of the 41 record values for old
	 * tombstones, 10 per call, is not through yet.) */
	r = trim1(s, now, 10);
	assert_int_equal(r.changes_trimmed, 0);
	assert_int_equal(r.low_water, 40);

	/* The trim and a reader's record are writes of the handle's writer. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_trim(s, NULL, &r), LM_EBUSY);
	assert_int_equal(lm_store_reader_set(s, "a", 1, 0), LM_EBUSY);
	lm_store_abort(t);
	lm_store_trim_opts bad = {.max = LM_STORE_TRIM_MAX + 1};
	assert_int_equal(lm_store_trim(s, &bad, &r), LM_EINVAL);
	assert_int_equal(lm_store_reader_set(s, "", 1, 0), LM_EINVAL);
	assert_int_equal(lm_store_reader_set(s, "bad\nname", 1, 0), LM_EINVAL);

	/* Positions survive a reopen; a reader at 0 holds everything. */
	put_range(s, 300, 3); /* seq 42..44 */
	assert_int_equal(lm_store_reader_set(s, "c", 0, 0), LM_OK);
	lm_store_close(s);
	s = open_store(dir, 0, 0);
	r = trim1(s, 0, 0);
	assert_int_equal(r.changes_trimmed, 0);
	assert_int_equal(r.readers, 1);
	assert_int_equal(first_after(s, 40), 41);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* Writes a tombstone as stores wrote them before tombstones carried their
 * time (no payload), behind the store's back, and counts it. */
static void
put_legacy_tombstone(const char *dir, const char *id)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi rec, meta;
	unsigned char val[10] = {0x4c, 0x01, 0, 0, 0, 0, 0, 0, 0, 3};
	unsigned char cnt[8] = {0};
	MDB_val k = {strlen(id), (void *) id}, v = {sizeof(val), val};
	MDB_val ck = {strlen("store.tomb.posting"), "store.tomb.posting"}, cv;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "postings", 0, &rec), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_put(txn, rec, &k, &v, 0), 0);
	if (mdb_get(txn, meta, &ck, &cv) == 0)
		memcpy(cnt, cv.mv_data, 8);
	cnt[7]++;
	cv.mv_size = 8;
	cv.mv_data = cnt;
	assert_int_equal(mdb_put(txn, meta, &ck, &cv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/*
 * Tombstones older than the retention are removed, younger ones stay and
 * keep fencing older versions; live records are never touched, so the
 * positions that order replayed deletions (test_positions) stay; the scan
 * is bounded per call and goes on where it stopped; a tombstone without a
 * time ages from the first trim that sees it.
 */
static void
test_trim_tombstones(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-tombtrim");
	lm_store *s = open_store(dir, 0, 0);
	int64_t now = (int64_t) time(NULL);
	int64_t ret = LM_STORE_TOMBSTONE_RETENTION_DEFAULT;
	lm_store_trim_result r;
	lm_store_txn *t;
	struct lm_store_stats st;

	put_range(s, 0, 30);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	for (int i = 0; i < 30; i += 3) {
		char id[32];
		snprintf(id, sizeof(id), "p%04d", i);
		assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, id, 0), LM_OK);
	}
	/* A fence for a record never stored is a tombstone too. */
	assert_int_equal(lm_store_delete(t, LM_KIND_PROFILE, "fence", 5), LM_ENOENT);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	/* put v1 @0, tombstone @1, put v2 @2: the live v2 orders replays. */
	at1(s, "j", 1, "v1", 0, 0, 0, LM_OK);
	at1(s, "j", 0, NULL, 0, 0, 1, LM_OK);
	at1(s, "j", 2, "v2", 0, 0, 2, LM_OK);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.tombstones, 11);

	/* Within the retention: nothing removed, the fences hold. */
	r = trim1(s, now + ret - 5, 0);
	assert_int_equal(r.tombstones_removed, 0);
	assert_false(r.more);
	put1(s, LM_KIND_POSTING, "p0003", 1, "old", LM_ESTALE);
	put1(s, LM_KIND_PROFILE, "fence", 4, "old", LM_ESTALE);

	/* Past it, in bounded steps of 7 values: 30 postings + j + fence. */
	size_t calls = 0;
	uint64_t removed = 0;
	do {
		r = trim1(s, now + ret + 5, 7);
		removed += r.tombstones_removed;
		calls++;
		assert_true(calls < 10);
	} while (r.more);
	assert_int_equal(calls, 5); /* 32 values, 7 per call */
	assert_int_equal(removed, 11);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.tombstones, 0);
	assert_int_equal(st.postings, 21);
	assert_int_equal(st.profiles, 0);
	expect_get(s, LM_KIND_POSTING, "p0001", 1, "x");
	expect_absent(s, LM_KIND_POSTING, "p0003");

	/* The live record's position still orders replays of its log. */
	at1(s, "j", 1, "v1", 0, 0, 0, LM_ESTALE);
	at1(s, "j", 0, NULL, 0, 0, 1, LM_ESTALE);
	at1(s, "j", 2, "v2", 0, 0, 2, LM_ESTALE);
	expect_get(s, LM_KIND_POSTING, "j", 2, "v2");
	/* A deleted id whose tombstone is gone: its whole partition log
	 * replayed in order still ends deleted. */
	at1(s, "k", 1, "v1", 0, 0, 10, LM_OK);
	at1(s, "k", 0, NULL, 0, 0, 11, LM_OK);
	trim1(s, now + ret + 5, 0);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.tombstones, 0);
	at1(s, "k", 1, "v1", 0, 0, 10, LM_OK);
	at1(s, "k", 0, NULL, 0, 0, 11, LM_OK);
	expect_absent(s, LM_KIND_POSTING, "k");

	/* A tombstone without a time gets the time of the trim that sees it. */
	lm_store_close(s);
	put_legacy_tombstone(dir, "legacy");
	s = open_store(dir, 0, 0);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.tombstones, 2); /* k (deleted again), legacy */
	r = trim1(s, now + 100, 0);
	assert_int_equal(r.tombstones_removed, 0);
	put1(s, LM_KIND_POSTING, "legacy", 3, "old", LM_ESTALE);
	r = trim1(s, now + 100 + ret - 1, 0);
	assert_int_equal(r.tombstones_removed, 1); /* k */
	r = trim1(s, now + 100 + ret, 0);
	assert_int_equal(r.tombstones_removed, 1); /* legacy */
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.tombstones, 0);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- snapshot ----------------------------------------------------------- */

/* A tiny id -> version map for the test's expectations. */
struct idmap {
	struct {
		int kind;
		char id[LM_STORE_ID_MAX + 1];
		uint64_t version;
		bool live;
	} * v;
	size_t n, cap;
};

static void
idmap_set(struct idmap *m, int kind, const char *id, uint64_t version, bool live)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].kind == kind && strcmp(m->v[i].id, id) == 0) {
			m->v[i].version = version;
			m->v[i].live = live;
			return;
		}
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->v = realloc(m->v, m->cap * sizeof(*m->v));
		assert_non_null(m->v);
	}
	m->v[m->n].kind = kind;
	snprintf(m->v[m->n].id, sizeof(m->v[0].id), "%s", id);
	m->v[m->n].version = version;
	m->v[m->n].live = live;
	m->n++;
}

static size_t
idmap_live(const struct idmap *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n; i++)
		n += m->v[i].live;
	return n;
}

struct snap {
	struct idmap seen;
	int kind;
};

static int
snap_posting(void *arg, const char *id, uint64_t version, const void *b, size_t len)
{
	(void) b;
	(void) len;
	idmap_set(&((struct snap *) arg)->seen, LM_KIND_POSTING, id, version, true);
	return 0;
}

static int
snap_profile(void *arg, const char *id, uint64_t version, const void *b, size_t len)
{
	(void) b;
	(void) len;
	idmap_set(&((struct snap *) arg)->seen, LM_KIND_PROFILE, id, version, true);
	return 0;
}

/* Child: a writer that keeps changing a small set of records. */
static int
churn_writer(const char *dir, int batches)
{
	lm_store_opts o = {.map_size = SMALL_MAP};
	lm_store *s;
	if (lm_store_open(dir, &o, &s) != LM_OK)
		return 10;
	for (int b = 0; b < batches; b++) {
		lm_store_txn *t;
		if (lm_store_begin(s, &t) != LM_OK)
			return 11;
		for (int j = 0; j < 6; j++) {
			char id[32];
			int n = (b * 7 + j * 3) % 23;
			lm_kind k = n % 2 ? LM_KIND_POSTING : LM_KIND_PROFILE;
			snprintf(id, sizeof(id), "r%02d", n);
			int rc = (b + j) % 5 == 0
			             ? lm_store_delete(t, k, id, 0)
			             : lm_store_put(t, k, id,
			                   (uint64_t) b * 10 + (uint64_t) j + 1, id, 3);
			if (rc != LM_OK && rc != LM_ENOENT && rc != LM_ESTALE)
				return 12;
		}
		if (lm_store_commit(t, NULL) != LM_OK)
			return 13;
	}
	lm_store_close(s);
	return 0;
}

static void
replay_log(lm_store *s, uint64_t upto, struct idmap *m)
{
	struct entries es = {0};
	uint64_t pos = 0;
	while (pos < upto) {
		size_t before = es.n;
		uint64_t want = upto - pos < 50 ? upto - pos : 50;
		assert_int_equal(
		    lm_store_changes(s, pos, (size_t) want, entries_fn, &es, &pos),
		    LM_OK);
		assert_true(es.n > before);
	}
	assert_int_equal(pos, upto);
	for (size_t i = 0; i < es.n; i++)
		idmap_set(m, es.e[i].kind, es.e[i].id, es.e[i].version, !es.e[i].deleted);
	free(es.e);
}

static void
test_snapshot(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-snap");
	lm_store *s = open_store(dir, SMALL_MAP, 0);
	int rounds = 0;

	/* While another process writes, every snapshot equals the replay of the
	 * change log up to the seq it reports: no gap, nothing extra. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(churn_writer(dir, 300));
	uint64_t deadline = now_ms() + 30000;
	int status = 0;
	for (;;) {
		struct snap sn = {0};
		struct idmap expect = {0};
		uint64_t seq = 0;
		bool done = waitpid(pid, &status, WNOHANG) == pid;
		assert_int_equal(
		    lm_store_snapshot(s, snap_posting, snap_profile, &sn, &seq), LM_OK);
		replay_log(s, seq, &expect);
		assert_int_equal(sn.seen.n, idmap_live(&expect));
		for (size_t i = 0; i < expect.n; i++) {
			bool found = false;
			for (size_t j = 0; j < sn.seen.n && !found; j++) {
				if (sn.seen.v[j].kind == expect.v[i].kind &&
				    strcmp(sn.seen.v[j].id, expect.v[i].id) == 0) {
					found = true;
					assert_int_equal(
					    sn.seen.v[j].version, expect.v[i].version);
				}
			}
			assert_int_equal(found, expect.v[i].live);
		}
		free(sn.seen.v);
		free(expect.v);
		rounds++;
		if (done)
			break;
		assert_true(now_ms() < deadline);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(rounds >= 1);

	/* Only one kind, and the seq alone. */
	struct snap sn = {0};
	uint64_t seq = 0, last = 0;
	assert_int_equal(lm_store_snapshot(s, snap_posting, NULL, &sn, &seq), LM_OK);
	assert_int_equal(lm_store_last_seq(s, &last), LM_OK);
	assert_int_equal(seq, last);
	for (size_t i = 0; i < sn.seen.n; i++)
		assert_int_equal(sn.seen.v[i].kind, LM_KIND_POSTING);
	free(sn.seen.v);
	assert_int_equal(lm_store_snapshot(s, NULL, NULL, NULL, &seq), LM_OK);
	assert_int_equal(seq, last);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- map growth --------------------------------------------------------- */

static void
fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char) ('a' + (seed >> 16) % 26);
	}
}

static void
expect_filled(lm_store *s, lm_kind k, const char *id, size_t len, unsigned seed)
{
	void *b = NULL;
	size_t got = 0;
	char *want = malloc(len ? len : 1);
	assert_non_null(want);
	fill(want, len, seed);
	assert_int_equal(lm_store_get(s, k, id, &b, &got, NULL), LM_OK);
	assert_int_equal(got, len);
	assert_memory_equal(b, want, len);
	free(b);
	free(want);
}

/* Shared by the reader threads; stop, errors and reads are atomic. */
struct reader_arg {
	lm_store *s;
	int stop;
	int errors;
	uint64_t reads;
};

/* Reads in a loop while the main thread writes and grows the map. */
static void *
reader_thread(void *p)
{
	struct reader_arg *a = p;
	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		uint64_t seq = 0, pos = 0;
		struct entries es = {0};
		if (lm_store_last_seq(a->s, &seq) != LM_OK)
			__atomic_add_fetch(&a->errors, 1, __ATOMIC_RELAXED);
		uint64_t after = seq > 5 ? seq - 5 : 0;
		if (seq > 0 && (lm_store_changes(a->s, after, (size_t) (seq - after),
		                    entries_fn, &es, &pos) != LM_OK ||
		                   pos != seq))
			__atomic_add_fetch(&a->errors, 1, __ATOMIC_RELAXED);
		for (size_t i = 0; i < es.n; i++) {
			uint64_t v = 0;
			int rc = lm_store_get(
			    a->s, (lm_kind) es.e[i].kind, es.e[i].id, NULL, NULL, &v);
			if (rc != LM_OK || v < es.e[i].version)
				__atomic_add_fetch(&a->errors, 1, __ATOMIC_RELAXED);
		}
		free(es.e);
		__atomic_add_fetch(&a->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void
test_map_growth(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-grow");
	lm_store *s = open_store(dir, SMALL_MAP, 0);
	struct lm_store_stats st;
	char *val = malloc(LM_STORE_VALUE_MAX);
	assert_non_null(val);
	struct reader_arg ra = {.s = s};
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &ra), 0);

	/* Batches far larger than the initial map, with readers running. */
	for (int b = 0; b < 12; b++) {
		lm_store_txn *t;
		assert_int_equal(lm_store_begin(s, &t), LM_OK);
		for (int j = 0; j < 25; j++) {
			char id[32];
			snprintf(id, sizeof(id), "g-%03d-%02d", b, j);
			size_t len = 1000 + (size_t) (b * 25 + j) * 37 % 7000;
			fill(val, len, (unsigned) (b * 25 + j));
			assert_int_equal(
			    lm_store_put(t, LM_KIND_POSTING, id, 1, val, len), LM_OK);
		}
		assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	}
	/* One value that needs several doublings inside a single put. */
	lm_store_txn *t;
	fill(val, LM_STORE_VALUE_MAX, 4242);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_PROFILE, "huge", 1, val, LM_STORE_VALUE_MAX), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);

	__atomic_store_n(&ra.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(ra.errors, 0);
	assert_true(ra.reads > 0);

	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_true(st.map_grows >= 4);
	assert_true(st.map_size > LM_STORE_VALUE_MAX);
	assert_int_equal(st.postings, 300);
	assert_int_equal(st.profiles, 1);
	assert_int_equal(st.last_seq, 301);
	for (int b = 0; b < 12; b++) {
		for (int j = 0; j < 25; j++) {
			char id[32];
			snprintf(id, sizeof(id), "g-%03d-%02d", b, j);
			expect_filled(s, LM_KIND_POSTING, id,
			    1000 + (size_t) (b * 25 + j) * 37 % 7000,
			    (unsigned) (b * 25 + j));
		}
	}
	expect_filled(s, LM_KIND_PROFILE, "huge", LM_STORE_VALUE_MAX, 4242);
	lm_store_close(s);

	/* The grown size is kept on reopen even when a smaller one is asked. */
	s = open_store(dir, SMALL_MAP, 0);
	struct lm_store_stats st2;
	assert_int_equal(lm_store_stats(s, &st2), LM_OK);
	assert_true(st2.map_size >= st.map_used);
	assert_int_equal(st2.postings, 300);
	lm_store_close(s);

	/* At the maximum the write fails cleanly; committed data stays. */
	lmt_rmtree(dir);
	s = open_store(dir, SMALL_MAP, 512 * 1024);
	fill(val, 100 * 1024, 7);
	put1(s, LM_KIND_POSTING, "small", 1, "s", LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	int rc = LM_OK;
	for (int i = 0; i < 20 && rc == LM_OK; i++) {
		char id[32];
		snprintf(id, sizeof(id), "big-%d", i);
		rc = lm_store_put(t, LM_KIND_POSTING, id, 1, val, 100 * 1024);
	}
	assert_int_equal(rc, LM_EMAPFULL);
	/* The transaction is dead: later operations and the commit fail. */
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "x", 1, "x", 1), LM_EMAPFULL);
	assert_int_equal(lm_store_commit(t, NULL), LM_EMAPFULL);
	expect_get(s, LM_KIND_POSTING, "small", 1, "s");
	expect_absent(s, LM_KIND_POSTING, "big-0");
	put1(s, LM_KIND_POSTING, "after", 1, "a", LM_OK);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.map_size, 512 * 1024);
	assert_int_equal(st.postings, 2);
	lm_store_close(s);
	free(val);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- other processes ---------------------------------------------------- */

#define FOLLOW_BATCHES 60
#define FOLLOW_K       9
#define FOLLOW_VAL     3000

/* Child: writes FOLLOW_BATCHES batches of FOLLOW_K records. */
static int
follow_writer(const char *dir)
{
	lm_store_opts o = {.map_size = SMALL_MAP};
	lm_store *s;
	char val[FOLLOW_VAL];
	if (lm_store_open(dir, &o, &s) != LM_OK)
		return 20;
	for (int b = 0; b < FOLLOW_BATCHES; b++) {
		lm_store_txn *t;
		if (lm_store_begin(s, &t) != LM_OK)
			return 21;
		for (int j = 0; j < FOLLOW_K; j++) {
			char id[32];
			int i = b * FOLLOW_K + j;
			snprintf(id, sizeof(id), "f-%05d", i);
			fill(val, sizeof(val), (unsigned) i);
			if (lm_store_put(t, j % 2 ? LM_KIND_PROFILE : LM_KIND_POSTING, id,
			        (uint64_t) i + 1, val, sizeof(val)) != LM_OK)
				return 22;
		}
		if (lm_store_commit(t, NULL) != LM_OK)
			return 23;
		if (b % 10 == 0)
			usleep(2000);
	}
	lm_store_close(s);
	return 0;
}

struct follow {
	uint64_t expect_seq;
	int bad;
};

static int
follow_fn(void *arg, uint64_t seq, const Lunamatch__V1__ChangeEntry *e)
{
	struct follow *f = arg;
	char id[32];
	uint64_t i = seq - 1;
	snprintf(id, sizeof(id), "f-%05d", (int) i);
	if (seq != f->expect_seq || strcmp(e->id, id) != 0 || e->version != i + 1 ||
	    e->deleted ||
	    (int) e->kind != ((i % FOLLOW_K) % 2 ? LM_KIND_PROFILE : LM_KIND_POSTING))
		f->bad++;
	f->expect_seq = seq + 1;
	return 0;
}

static void
test_cross_process_follow(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-follow");
	/* This reader handle is opened before the writer grows the map. */
	lm_store *s = open_store(dir, SMALL_MAP, 0);
	struct lm_store_stats st;
	struct follow f = {.expect_seq = 1};
	uint64_t pos = 0, total = FOLLOW_BATCHES * FOLLOW_K;
	int status = 0;
	bool exited = false;

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(follow_writer(dir));
	uint64_t deadline = now_ms() + 30000;
	while (pos < total && now_ms() < deadline) {
		uint64_t before = pos;
		assert_int_equal(
		    lm_store_changes(s, pos, 16, follow_fn, &f, &pos), LM_OK);
		assert_true(pos - before <= 16);
		if (pos == before) {
			if (!exited && waitpid(pid, &status, WNOHANG) == pid)
				exited = true;
			else if (exited)
				break; /* writer done and nothing new */
			usleep(1000);
		}
	}
	if (!exited)
		assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(pos, total);
	assert_int_equal(f.bad, 0);
	assert_int_equal(f.expect_seq, total + 1);

	/* The old handle reads everything the grown map holds. */
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_true(st.map_size > SMALL_MAP);
	assert_int_equal(st.postings + st.profiles, total);
	for (uint64_t i = 0; i < total; i += 7) {
		char id[32];
		snprintf(id, sizeof(id), "f-%05d", (int) i);
		expect_filled(s, (i % FOLLOW_K) % 2 ? LM_KIND_PROFILE : LM_KIND_POSTING,
		    id, FOLLOW_VAL, (unsigned) i);
	}
	lm_store_close(s);

	/* A read-only handle sees the same and cannot write. */
	lm_store_opts ro = {.flags = LM_STORE_RDONLY};
	lm_store_txn *t = NULL;
	assert_int_equal(lm_store_open(dir, &ro, &s), LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_ENOTSUP);
	assert_null(t);
	assert_int_equal(lm_store_last_seq(s, &pos), LM_OK);
	assert_int_equal(pos, total);
	expect_filled(s, LM_KIND_POSTING, "f-00000", FOLLOW_VAL, 0);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- crash safety ------------------------------------------------------- */

#define CRASH_K           5
#define CRASH_HOT         3
#define CRASH_MAX_BATCHES 2000

/* Child: commits numbered batches (CRASH_K new postings, one hot profile
 * update each) and reports every commit on fd, until killed. */
static int
crash_writer(const char *dir, int fd)
{
	lm_store_opts o = {.map_size = SMALL_MAP};
	lm_store *s;
	char val[2048];
	if (lm_store_open(dir, &o, &s) != LM_OK)
		return 30;
	for (int b = 0; b < CRASH_MAX_BATCHES; b++) {
		lm_store_txn *t;
		if (lm_store_begin(s, &t) != LM_OK)
			return 31;
		for (int j = 0; j < CRASH_K; j++) {
			char id[32];
			snprintf(id, sizeof(id), "n-%05d-%d", b, j);
			fill(val, sizeof(val), (unsigned) (b * CRASH_K + j));
			if (lm_store_put(t, LM_KIND_POSTING, id, 1, val, sizeof(val)) !=
			    LM_OK)
				return 32;
		}
		char hot[16];
		snprintf(hot, sizeof(hot), "hot-%d", b % CRASH_HOT);
		if (lm_store_put(t, LM_KIND_PROFILE, hot, (uint64_t) b + 1, hot,
		        strlen(hot)) != LM_OK)
			return 33;
		if (lm_store_commit(t, NULL) != LM_OK)
			return 34;
		if (write(fd, "c", 1) != 1)
			return 35;
	}
	lm_store_close(s);
	return 0;
}

static void
check_consistent(const char *dir, int reported)
{
	lm_store *s = open_store(dir, 0, 0);
	struct lm_store_stats st;
	struct entries es = {0};
	uint64_t pos = 0;

	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	/* No partial batch: whole batches of CRASH_K postings + 1 profile entry. */
	assert_int_equal(st.postings % CRASH_K, 0);
	uint64_t batches = st.postings / CRASH_K;
	/* Every commit the child saw succeed is durable. */
	assert_true(batches >= (uint64_t) reported);
	assert_int_equal(st.changes, batches * (CRASH_K + 1));
	assert_int_equal(st.last_seq, st.changes);
	assert_int_equal(st.profiles, batches < CRASH_HOT ? batches : CRASH_HOT);

	for (;;) {
		size_t before = es.n;
		assert_int_equal(
		    lm_store_changes(s, pos, 256, entries_fn, &es, &pos), LM_OK);
		if (es.n == before)
			break;
	}
	assert_int_equal(es.n, st.changes);
	/* The last entry per id names the stored version. */
	for (size_t i = 0; i < es.n; i++) {
		assert_int_equal(es.e[i].seq, i + 1);
		bool later = false;
		for (size_t j = i + 1; j < es.n && !later; j++)
			later = es.e[j].kind == es.e[i].kind &&
			        strcmp(es.e[j].id, es.e[i].id) == 0;
		if (later)
			continue;
		uint64_t v = 0;
		assert_int_equal(
		    lm_store_get(s, (lm_kind) es.e[i].kind, es.e[i].id, NULL, NULL, &v),
		    LM_OK);
		assert_int_equal(v, es.e[i].version);
	}
	/* The store still takes writes (LMDB recovered the writer lock). */
	put1(s, LM_KIND_POSTING, "after-crash", 1, "ok", LM_OK);
	free(es.e);
	lm_store_close(s);
}

static void
test_crash_safety(void **state)
{
	(void) state;
	srand((unsigned) time(NULL) ^ (unsigned) getpid());
	for (int round = 0; round < 5; round++) {
		char *dir = lmt_tmpdir("store-crash");
		int fds[2];
		assert_int_equal(pipe(fds), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			_exit(crash_writer(dir, fds[1]));
		}
		close(fds[1]);
		/* Let it commit a random number of batches, then kill it at a random
		 * moment inside the following ones. */
		int want = 2 + rand() % 60, got = 0;
		uint64_t deadline = now_ms() + 20000;
		while (got < want && now_ms() < deadline) {
			struct pollfd p = {.fd = fds[0], .events = POLLIN};
			char buf[64];
			if (poll(&p, 1, 200) > 0) {
				ssize_t n = read(fds[0], buf, sizeof(buf));
				if (n <= 0)
					break;
				got += (int) n;
			}
		}
		assert_true(got >= want);
		usleep((useconds_t) (rand() % 4000));
		kill(pid, SIGKILL);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		close(fds[0]);
		assert_true(WIFSIGNALED(status));
		check_consistent(dir, got);
		lmt_rmtree(dir);
		free(dir);
	}
}

/* ---- a full disk -------------------------------------------------------- */

/* Exit codes of the disk-full child. */
#define FULL_OK      0
#define FULL_NOMOUNT 77 /* no mount namespace here: the test is skipped */

/*
 * In a private mount namespace, fills a 512 KiB tmpfs through the store and
 * checks that the failure says "no space" (LM_ENOSPC), not an I/O error.
 * Returns FULL_OK, FULL_NOMOUNT, or the line of the failed check.
 */
static int
fill_tmpfs(const char *dir)
{
	lm_store_opts o = {.map_size = 8u << 20, .max_map_size = 8u << 20};
	lm_store *s = NULL;
	lm_store_txn *t = NULL;
	char val[8192], id[32];
	int rv = LM_OK;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=512k") != 0)
		return FULL_NOMOUNT;
	if (lm_store_open(dir, &o, &s) != LM_OK)
		return __LINE__;
	memset(val, 'v', sizeof(val));
	for (int i = 0; i < 1000 && rv == LM_OK; i++) {
		if (lm_store_begin(s, &t) != LM_OK)
			return __LINE__;
		snprintf(id, sizeof(id), "full-%d", i);
		rv = lm_store_put(t, LM_KIND_POSTING, id, 1, val, sizeof(val));
		if (rv == LM_OK)
			rv = lm_store_commit(t, NULL);
		else
			lm_store_abort(t);
	}
	if (rv != LM_ENOSPC || strstr(lm_strerror(rv), "no space") == NULL)
		return __LINE__;
	lm_store_close(s);
	return FULL_OK;
}

static void
test_disk_full(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-full");
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fill_tmpfs(dir));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	lmt_rmtree(dir);
	free(dir);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == FULL_NOMOUNT)
		skip(); /* needs CAP_SYS_ADMIN for a private tmpfs */
	if (WEXITSTATUS(status) != FULL_OK)
		fail_msg("disk-full check failed at line %d", WEXITSTATUS(status));
}

/* ---- input and open errors ---------------------------------------------- */

static void
test_invalid_input(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-input");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_txn *t;
	char id[LM_STORE_ID_MAX + 2];
	memset(id, 'i', sizeof(id));
	id[LM_STORE_ID_MAX + 1] = '\0';
	char *big = calloc(1, LM_STORE_VALUE_MAX + 1);
	assert_non_null(big);

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "", 1, "x", 1), LM_EINVAL);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, NULL, 1, "x", 1), LM_EINVAL);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, id, 1, "x", 1), LM_E2BIG);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "ok", 1, big, LM_STORE_VALUE_MAX + 1),
	    LM_E2BIG);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "ok", 0, "x", 1), LM_EINVAL);
	assert_int_equal(lm_store_put(t, (lm_kind) 3, "ok", 1, "x", 1), LM_EINVAL);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "ok", 1, NULL, 1), LM_EINVAL);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "bad\xff", 1, "x", 1), LM_EINVAL);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "tab\tid", 1, "x", 1), LM_EINVAL);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "c1\xc2\x85id", 1, "x", 1), LM_EINVAL);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "c1\xc2\x9fid", 1, "x", 1), LM_EINVAL);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "nbsp\xc2\xa0id", 1, "x", 1), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "", 0), LM_EINVAL);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, id, 0), LM_E2BIG);
	assert_int_equal(lm_store_meta_put(t, "", "x", 1), LM_EINVAL);
	assert_int_equal(
	    lm_store_meta_put(t, "k", big, LM_STORE_META_VALUE_MAX + 1), LM_E2BIG);
	/* The transaction is still usable; the limits themselves are accepted. */
	id[LM_STORE_ID_MAX] = '\0';
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, id, 1, "x", 1), LM_OK);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "ok", 1, big, LM_STORE_VALUE_MAX), LM_OK);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_PROFILE, "caf\xc3\xa9-\xe2\x82\xac", 1, "x", 1),
	    LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	expect_get(s, LM_KIND_POSTING, id, 1, "x");
	expect_get(s, LM_KIND_PROFILE, "caf\xc3\xa9-\xe2\x82\xac", 1, "x");
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "", NULL, NULL, NULL), LM_EINVAL);
	id[LM_STORE_ID_MAX] = 'i';
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, id, NULL, NULL, NULL), LM_E2BIG);
	assert_int_equal(lm_store_commit(NULL, NULL), LM_EINVAL);
	assert_int_equal(lm_store_begin(NULL, &t), LM_EINVAL);

	/* A second handle on the same directory in one process is refused. */
	lm_store *s2 = NULL;
	assert_int_equal(lm_store_open(dir, NULL, &s2), LM_EBUSY);
	assert_null(s2);
	lm_store_close(s);
	free(big);

	/* Open errors. */
	lm_store_opts o = {.map_size = 1u << 30, .max_map_size = 1u << 20};
	assert_int_equal(lm_store_open(dir, &o, &s), LM_EINVAL);
	o = (lm_store_opts){.flags = 0x80};
	assert_int_equal(lm_store_open(dir, &o, &s), LM_EINVAL);
	assert_int_equal(lm_store_open("", NULL, &s), LM_EINVAL);
	assert_int_equal(lm_store_open(NULL, NULL, &s), LM_EINVAL);
	char missing[4200];
	snprintf(missing, sizeof(missing), "%s/not-there", dir);
	o = (lm_store_opts){.flags = LM_STORE_RDONLY};
	assert_int_equal(lm_store_open(missing, &o, &s), LM_ENOENT);
	char *longdir = malloc(LM_STORE_DIR_MAX + 1);
	assert_non_null(longdir);
	memset(longdir, 'd', LM_STORE_DIR_MAX);
	longdir[0] = '/';
	longdir[LM_STORE_DIR_MAX] = '\0';
	assert_int_equal(lm_store_open(longdir, NULL, &s), LM_E2BIG);
	free(longdir);

	/* A missing directory is created, parents too, mode 0750. */
	mode_t old = umask(022);
	snprintf(missing, sizeof(missing), "%s/a/b/data", dir);
	assert_int_equal(lm_store_open(missing, NULL, &s), LM_OK);
	lm_store_close(s);
	umask(old);
	struct stat sb;
	assert_int_equal(stat(missing, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0750);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * A thread that holds a transaction of one store does not grow another
 * (docs/store.md): the full-map write fails with LM_EBUSY and so does its
 * commit; once the first transaction ends, the same writes grow the map.
 */
static void
test_growth_while_another_store_held(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-two");
	char da[4200], db[4200], val[16384];
	lm_store_txn *ta, *tb;
	struct lm_store_stats st;
	int rc = LM_OK, i;

	snprintf(da, sizeof(da), "%s/a", dir);
	snprintf(db, sizeof(db), "%s/b", dir);
	lm_store *a = open_store(da, SMALL_MAP, 0),
	         *b = open_store(db, SMALL_MAP, 1u << 30);
	memset(val, 'v', sizeof(val));

	assert_int_equal(lm_store_begin(a, &ta), LM_OK);
	assert_int_equal(lm_store_begin(b, &tb), LM_OK);
	for (i = 0; i < 200 && rc == LM_OK; i++) {
		char id[16];
		snprintf(id, sizeof(id), "p%d", i);
		rc = lm_store_put(tb, LM_KIND_POSTING, id, 1, val, sizeof(val));
	}
	assert_int_equal(rc, LM_EBUSY);
	assert_int_equal(lm_store_commit(tb, NULL), LM_EBUSY);
	lm_store_abort(ta);
	assert_int_equal(lm_store_stats(b, &st), LM_OK);
	assert_int_equal(st.map_grows, 0);

	assert_int_equal(lm_store_begin(b, &tb), LM_OK);
	for (i = 0; i < 200; i++) {
		char id[16];
		snprintf(id, sizeof(id), "p%d", i);
		assert_int_equal(
		    lm_store_put(tb, LM_KIND_POSTING, id, 1, val, sizeof(val)), LM_OK);
	}
	assert_int_equal(lm_store_commit(tb, NULL), LM_OK);
	assert_int_equal(lm_store_stats(b, &st), LM_OK);
	assert_true(st.map_grows > 0);
	lm_store_close(a);
	lm_store_close(b);
	lmt_rmtree(dir);
	free(dir);
}

/* An LMDB environment of another program (here shaped like the match
 * outbox: "pending" and "meta" tables) is not claimed by a writable
 * open: LM_ESCHEMA, and nothing of the store is created in it. */
static void
test_foreign_environment(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-foreign");
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {3, "key"}, v = {5, "value"};
	lm_store *s = NULL;

	assert_int_equal(mdb_env_create(&env), MDB_SUCCESS);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), MDB_SUCCESS);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), MDB_SUCCESS);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), MDB_SUCCESS);
	assert_int_equal(mdb_dbi_open(txn, "pending", MDB_CREATE, &dbi), MDB_SUCCESS);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), MDB_SUCCESS);
	assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), MDB_SUCCESS);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), MDB_SUCCESS);
	assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);
	mdb_env_close(env);

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_ESCHEMA);
	assert_null(s);

	assert_int_equal(mdb_env_create(&env), MDB_SUCCESS);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), MDB_SUCCESS);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), MDB_SUCCESS);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), MDB_SUCCESS);
	assert_int_equal(mdb_dbi_open(txn, "postings", 0, &dbi), MDB_NOTFOUND);
	mdb_txn_abort(txn);
	mdb_env_close(env);

	/* A new environment is a store's to take, read-only opens aside. */
	lmt_rmtree(dir);
	free(dir);
	dir = lmt_tmpdir("store-new");
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	lm_store_close(s);
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* lmt_store_poke of the string val. */
static void
raw_put(const char *dir, const char *db, const void *key, size_t klen, const char *val)
{
	lmt_store_poke(dir, db, key, klen, val, strlen(val));
}

/* A damaged record value, reader record or change key (at the log's
 * start) does not stop the trimming: the value is passed over (reading it
 * still fails), the other two are removed, each is counted, and the change
 * log is trimmed. */
static void
test_trim_damaged(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-trim-damaged");
	lm_store *s = open_store(dir, 0, 0);
	int64_t now = (int64_t) time(NULL);
	lm_store_trim_result r;
	void *bytes = NULL;

	put_range(s, 0, 10); /* seq 1..10 */
	lm_store_close(s);
	raw_put(dir, "postings", "p0005", 5, "xyz");
	raw_put(dir, "readers", "bad-reader", 10, "xyz");
	raw_put(dir, "changes", "", 1, "xyz"); /* a 1-byte key, before every seq */
	s = open_store(dir, 0, 0);
	r = trim1(s, now, 0);
	assert_int_equal(r.damaged, 3);
	assert_int_equal(r.readers, 0);
	assert_int_equal(r.changes_trimmed, 9); /* all but the newest */
	assert_int_equal(r.low_water, 9);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "p0005", &bytes, NULL, NULL), LM_ESTORE);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "p0006", &bytes, NULL, NULL), LM_OK);
	free(bytes);
	/* Again: only the value is still there to pass over. */
	r = trim1(s, now, 0);
	assert_int_equal(r.damaged, 1);

	/* More damaged values in a row than one call examines: the scan still
	 * moves past them and reaches the old tombstone behind them. */
	lm_store_txn *t;
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "p0009", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	raw_put(dir, "postings", "p0006", 5, "xyz");
	raw_put(dir, "postings", "p0007", 5, "xyz");
	s = open_store(dir, 0, 0);
	int64_t later = now + LM_STORE_TOMBSTONE_RETENTION_DEFAULT + 5;
	uint64_t removed = 0;
	size_t calls = 0;
	do {
		r = trim1(s, later, 2);
		removed += r.tombstones_removed;
		calls++;
	} while (r.more && calls < 20);
	assert_false(r.more);
	assert_int_equal(removed, 1);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * A stored position is at a partition and an offset that are not negative
 * (lm_store_put_at refuses others), and readers index arrays by the
 * partition: a value whose position says otherwise is damaged, refused as
 * a damaged value is, not handed out.
 */
static void
test_damaged_position(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-damaged-pos");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_pos pos = {1, 2, 3}, got;
	unsigned char val[64];
	uint64_t version = 0;
	bool has = false;
	lm_store_txn *t;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {2, (void *) "p1"}, v;

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(
	    lm_store_put_at(t, LM_KIND_POSTING, "p1", 1, "x", 1, &pos), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	/* The same value with the partition's sign bit set. */
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "postings", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_true(v.mv_size <= sizeof(val) && v.mv_size >= 10 + 16);
	memcpy(val, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	val[10 + 4] |= 0x80; /* after the header and the epoch */
	lmt_store_poke(dir, "postings", "p1", 2, val, v.mv_size);

	s = open_store(dir, 0, 0);
	assert_int_equal(
	    lm_store_get_pos(s, LM_KIND_POSTING, "p1", &version, &got, &has), LM_ESTORE);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * A record value that does not decode (a bad header: disk damage or a
 * foreign writer) does not wedge the writes of its record: a put or a
 * deletion of it failed with LM_ESTORE, so every ingest batch that held the
 * record failed and was retried for ever. The new version replaces the
 * damaged value, and the change log says so, so that followers pick it up.
 */
static void
test_damaged_value_replaced(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-damaged-replace");
	lm_store *s = open_store(dir, 0, 0);
	unsigned char bad[16] = {0};
	uint64_t version = 0, seq0 = 0, seq1 = 0;
	void *bytes = NULL;
	size_t len = 0;
	lm_store_txn *t;
	struct lm_store_stats st;
	struct entries es = {0};

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p1", 1, "x", 1), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p2", 1, "y", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	lmt_store_poke(dir, "postings", "p1", 2, bad, sizeof(bad));
	lmt_store_poke(dir, "postings", "p2", 2, bad, sizeof(bad));

	s = open_store(dir, 0, 0);
	assert_int_equal(lm_store_last_seq(s, &seq0), LM_OK);
	/* A replacement counts in the statistics once committed, not when its
	 * transaction is aborted. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p1", 2, "xx", 2), LM_OK);
	lm_store_abort(t);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.damaged, 0);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p1", 2, "xx", 2), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "p2", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.damaged, 2);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "p1", &bytes, &len, &version), LM_OK);
	assert_int_equal(version, 2);
	assert_int_equal(len, 2);
	assert_memory_equal(bytes, "xx", 2);
	free(bytes);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "p2", &bytes, &len, &version), LM_ENOENT);
	assert_int_equal(lm_store_last_seq(s, &seq1), LM_OK);
	assert_int_equal(seq1, seq0 + 2); /* both changes are in the log */
	/* The counters are exact: whether a damaged value counted as live or
	 * as a tombstone is unknown, so its kind is recounted. Before, p1
	 * counted twice and p2 stayed live beside its tombstone. */
	assert_int_equal(st.postings, 1);
	assert_int_equal(st.tombstones, 1);
	/* The versionless deletion logged, and fenced, version 1 (the
	 * damaged version is unknown; version 0 is no record's): a replayed
	 * put of version 1 stays out. */
	assert_int_equal(lm_store_changes(s, seq0, 10, entries_fn, &es, NULL), LM_OK);
	assert_int_equal(es.n, 2);
	assert_string_equal(es.e[1].id, "p2");
	assert_true(es.e[1].deleted);
	assert_int_equal(es.e[1].version, 1);
	free(es.e);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p2", 1, "y", 1), LM_ESTALE);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

static int
count_fn(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	(void) id;
	(void) version;
	(void) bytes;
	(void) len;
	(*(size_t *) arg)++;
	return 0;
}

/*
 * Every read of a damaged record value logged store.corrupt "record value
 * with a bad header" again, without the record's id: each query that
 * ranked a damaged record logged another line (a flood under load) that
 * did not say which record it was. Each damaged value is logged once per
 * handle, with its kind and id, by whichever read meets it first.
 */
static void
test_damaged_value_logged_once(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-damaged-once");
	lm_store *s = open_store(dir, 0, 0);
	unsigned char bad[16] = {0};
	uint64_t version = 0;
	void *bytes = NULL;
	size_t len = 0, n = 0;
	lm_store_pos pos;
	bool has = false, damaged = false;
	lm_store_txn *t;
	lmt_capture cap;
	char *log;

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p1", 1, "x", 1), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_PROFILE, "c1", 1, "y", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	lmt_store_poke(dir, "postings", "p1", 2, bad, sizeof(bad));
	lmt_store_poke(dir, "profiles", "c1", 2, bad, sizeof(bad));

	s = open_store(dir, 0, 0);
	lmt_stderr_begin(&cap);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(
		    lm_store_get(s, LM_KIND_POSTING, "p1", &bytes, &len, &version),
		    LM_ESTORE);
		assert_int_equal(lm_store_read_checked(
		                     s, LM_KIND_POSTING, "p1", count_fn, &n, &damaged),
		    LM_ESTORE);
		assert_true(damaged);
		assert_int_equal(lm_store_get_pos_checked(s, LM_KIND_PROFILE, "c1",
		                     &version, &pos, &has, &damaged),
		    LM_ESTORE);
		assert_true(damaged);
	}
	log = lmt_stderr_end(&cap);
	assert_int_equal(n, 0);
	assert_int_equal(lmt_count(log, "store.corrupt"), 2);
	assert_int_equal(lmt_count(log, "posting p1: record value with a bad header"), 1);
	assert_int_equal(lmt_count(log, "profile c1: record value with a bad header"), 1);
	free(log);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* A new handle on the store in dir reads postings and tombstones from
 * its counters as stored: nothing to recount, nothing logged. */
static void
expect_counters_stored(const char *dir, uint64_t postings, uint64_t tombstones)
{
	lm_store *s = open_store(dir, 0, 0);
	struct lm_store_stats st;
	lmt_capture cap;
	char *log;

	lmt_stderr_begin(&cap);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	log = lmt_stderr_end(&cap);
	assert_int_equal(lmt_count(log, "store.corrupt"), 0);
	free(log);
	assert_int_equal(st.postings, postings);
	assert_int_equal(st.tombstones, tombstones);
	lm_store_close(s);
}

/*
 * A live or tombstone counter in `meta` that is not 8 bytes long (a
 * foreign writer, a disk fault) failed every commit that changed it with
 * LM_ESTORE, logged nothing that named it, and failed lm_store_stats and
 * the trims that removed tombstones: ingest could not store a record of
 * that kind again. The counter is recounted from the records (logged
 * store.corrupt), and the next write that changes it stores it exact.
 */
static void
test_damaged_counter(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-damaged-counter");
	lm_store *s = open_store(dir, 0, 0);
	int64_t now = (int64_t) time(NULL);
	struct lm_store_stats st;
	lm_store_trim_result r;
	lm_store_txn *t;
	lmt_capture cap;
	char *log;

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p1", 1, "x", 1), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p2", 1, "y", 1), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p3", 1, "z", 1), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "p3", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	lmt_store_poke(dir, "meta", "store.live.posting", 18, "xyz", 3);
	lmt_store_poke(dir, "meta", "store.tomb.posting", 18, "", 0);

	s = open_store(dir, 0, 0);
	lmt_stderr_begin(&cap);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	log = lmt_stderr_end(&cap);
	assert_int_equal(st.postings, 2);
	assert_int_equal(st.tombstones, 1);
	assert_int_equal(lmt_count(log, "store.corrupt"), 2);
	assert_int_equal(lmt_count(log, "store.live.posting"), 1);
	free(log);

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "p4", 1, "w", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.postings, 3);
	assert_int_equal(st.tombstones, 1);
	lm_store_close(s);
	/* That write stored both recounts, also the tombstone counter's, which
	 * it did not change: a new handle finds nothing to recount (stats would
	 * otherwise scan every record at each call until a deletion). */
	expect_counters_stored(dir, 3, 1);

	/* The tombstone counter alone: a trim that removes the tombstone. */
	lmt_store_poke(dir, "meta", "store.tomb.posting", 18, "", 0);
	s = open_store(dir, 0, 0);
	r = trim1(s, now + LM_STORE_TOMBSTONE_RETENTION_DEFAULT + 5, 0);
	assert_int_equal(r.tombstones_removed, 1);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.tombstones, 0);
	assert_int_equal(st.postings, 3);
	lm_store_close(s);
	/* Stored exact: a handle that never recounts reads the same. */
	expect_counters_stored(dir, 3, 0);
	lmt_rmtree(dir);
	free(dir);
}

/* A damaged record value fails lm_store_snapshot; the checked snapshot
 * passes over it (and over a record key of an impossible size), counts
 * them and delivers every other record. */
static void
test_snapshot_checked_damaged(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-snapshot-damaged");
	lm_store *s = open_store(dir, 0, 0);
	char big[LM_STORE_ID_MAX + 1];
	uint64_t damaged = 99, seq = 0;
	size_t n = 0;

	put_range(s, 0, 10); /* p0000 .. p0009 */
	lm_store_close(s);
	raw_put(dir, "postings", "p0005", 5, "xyz");
	memset(big, 'q', sizeof(big));
	raw_put(dir, "postings", big, sizeof(big), "xyz");
	s = open_store(dir, 0, 0);
	assert_int_equal(lm_store_snapshot(s, count_fn, NULL, &n, &seq), LM_ESTORE);
	n = 0;
	assert_int_equal(
	    lm_store_snapshot_checked(s, count_fn, count_fn, &n, &seq, &damaged), LM_OK);
	assert_int_equal(damaged, 2);
	assert_int_equal(n, 9);
	assert_int_equal(seq, 10);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * A damaged first key of the change log (a foreign writer's; the next trim
 * removes it) does not hide trimmed entries: a reader behind them still
 * gets LM_EGONE, and one at the trim reads on.
 */
static void
test_changes_gone_damaged_first(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-gone-damaged");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_trim_result r;

	put_range(s, 0, 10); /* seq 1..10 */
	r = trim1(s, (int64_t) time(NULL), 0);
	assert_int_equal(r.low_water, 9);
	lm_store_close(s);
	raw_put(dir, "changes", "", 1, "xyz"); /* a 1-byte key, before every seq */
	s = open_store(dir, 0, 0);
	assert_int_equal(first_after(s, 3), UINT64_MAX);
	assert_int_equal(first_after(s, 0), UINT64_MAX);
	assert_int_equal(first_after(s, 9), 10);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * A damaged key that sorts last in the change log (a foreign writer's, of
 * the wrong length) does not wedge the writes: the next seq goes above the
 * seq the key could stand for (here the 8 bytes it starts with), so it
 * sorts after the key and never reuses a seq a reader may have applied. The
 * key is counted and logged once per handle; the next trim removes it.
 */
static void
test_damaged_last_change_key(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-damaged-last");
	lm_store *s = open_store(dir, 0, 0);
	unsigned char key[9];
	uint64_t seq = 0;
	struct lm_store_stats st;
	lm_store_txn *t;

	put_range(s, 0, 10); /* seq 1..10 */
	lm_store_close(s);
	lm_lmdb_put_be64(key, 12); /* seq 12 with a byte after it */
	key[8] = 'x';
	raw_put(dir, "changes", key, sizeof(key), "xyz");

	s = open_store(dir, 0, 0);
	assert_int_equal(lm_store_last_seq(s, &seq), LM_OK);
	assert_int_equal(seq, 12);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "new", 1, "x", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	assert_int_equal(seq, 13);
	put_range(s, 20, 1); /* seq 14 */
	assert_int_equal(lm_store_last_seq(s, &seq), LM_OK);
	assert_int_equal(seq, 14);
	assert_int_equal(first_after(s, 12), 13);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.last_seq, 14);
	assert_int_equal(st.damaged, 1);

	/* Entries up to 13 go (the newest stays), the damaged key with them. */
	lm_store_trim_result r = trim1(s, (int64_t) time(NULL), 0);
	assert_int_equal(r.changes_trimmed, 11);
	assert_int_equal(r.damaged, 1);
	assert_int_equal(r.low_water, 13);

	/* A key shorter than a seq stands for the largest seq it starts. */
	lm_store_close(s);
	raw_put(dir, "changes", "\x01", 1, "xyz");
	s = open_store(dir, 0, 0);
	put_range(s, 30, 1);
	assert_int_equal(lm_store_last_seq(s, &seq), LM_OK);
	assert_int_equal(seq, UINT64_C(0x0200000000000000));
	lm_store_close(s);

	/* No seq sorts after this one: writes fail, as the log is full. */
	raw_put(dir, "changes", "\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9, "xyz");
	s = open_store(dir, 0, 0);
	assert_int_equal(lm_store_begin(s, &t), LM_ESTORE);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* A damaged record key (longer than any id; only a foreign writer leaves
 * one) fails a full read, as a damaged value does, and says so in the log
 * (store.corrupt): the snapshot load of a match service failed with
 * nothing logged but "record store (LMDB) failure". */
static void
test_foreach_damaged_key(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-foreach-key");
	lm_store *s = open_store(dir, 0, 0);
	char key[LM_STORE_ID_MAX + 1];
	struct collect c = {0};
	lmt_capture cap;
	char *log;

	put_range(s, 0, 3);
	lm_store_close(s);
	memset(key, 'k', sizeof(key));
	raw_put(dir, "postings", key, sizeof(key), "xyz");
	s = open_store(dir, 0, 0);
	lmt_stderr_begin(&cap);
	int rc = lm_store_foreach(s, LM_KIND_POSTING, collect_fn, &c);
	log = lmt_stderr_end(&cap);
	assert_int_equal(rc, LM_ESTORE);
	assert_non_null(strstr(log, "store.corrupt"));
	assert_non_null(strstr(log, "record key of 129 bytes"));
	free(log);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* Opens the store in dir in a child that runs as an unprivileged user when
 * the test runs as root (permission bits bind no root); the child's exit
 * status is lm_store_open's result. */
static int
open_unprivileged(const char *dir, unsigned flags)
{
	lm_store_opts o = {.flags = flags};
	int status;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lm_store *s = NULL;
		int rc;
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(100);
		rc = lm_store_open(dir, &o, &s);
		lm_store_close(s);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* A store directory the process may not write, or a data file it may not
 * read, is refused as what it is: LM_EACCES, "permission denied", not an
 * I/O error (or, read-only, no store). */
static void
test_permission_denied(void **state)
{
	(void) state;
	char *root = lmt_tmpdir("store-perm");
	char dir[4096], data[4200];
	lm_store *s;
	int rc;

	snprintf(dir, sizeof(dir), "%s/store", root);
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	assert_int_equal(chmod(root, 0755), 0);
	assert_int_equal(mkdir(dir, 0500), 0);
	rc = open_unprivileged(dir, 0);
	if (rc == 100) {
		lmt_rmtree(root);
		free(root);
		fprintf(stderr, "skipped: running as root and cannot switch to an "
		                "unprivileged user, so permission bits do not apply\n");
		skip();
	}
	assert_int_equal(rc, LM_EACCES);
	assert_string_equal(lm_strerror(rc), "permission denied");

	/* A store whose data file the process may not read. */
	assert_int_equal(chmod(dir, 0777), 0);
	s = open_store(dir, 0, 0);
	lm_store_close(s);
	assert_int_equal(chmod(data, 0), 0);
	assert_int_equal(open_unprivileged(dir, 0), LM_EACCES);
	/* Read-only, in a directory it may not enter: the store is there,
	 * out of reach (it said "no store"). */
	assert_int_equal(chmod(data, 0640), 0);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(open_unprivileged(dir, LM_STORE_RDONLY), LM_EACCES);
	lmt_rmtree(root);
	free(root);
}

/*
 * Record keys longer than LM_STORE_ID_MAX (only a foreign writer leaves
 * them), more in a row than one call examines: the tombstone scan moves
 * past them as past damaged values, counting each, and reaches the old
 * tombstone behind them.
 */
static void
test_trim_damaged_keys(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-trim-keys");
	lm_store *s = open_store(dir, 0, 0);
	int64_t later = (int64_t) time(NULL) + LM_STORE_TOMBSTONE_RETENTION_DEFAULT + 5;
	char key[LM_STORE_ID_MAX + 40];
	lm_store_trim_result r;
	lm_store_txn *t;
	uint64_t removed = 0, damaged = 0;
	size_t calls = 0;

	put_range(s, 0, 10);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "p0009", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	memset(key, 'x', sizeof(key));
	memcpy(key, "p0005", 5);
	for (int i = 0; i < 3; i++) { /* between p0005 and p0006 */
		key[5] = (char) ('a' + i);
		raw_put(dir, "postings", key, sizeof(key), "xyz");
	}
	s = open_store(dir, 0, 0);
	do {
		r = trim1(s, later, 2);
		removed += r.tombstones_removed;
		damaged += r.damaged;
		calls++;
	} while (r.more && calls < 20);
	assert_false(r.more);
	assert_int_equal(removed, 1);
	assert_int_equal(damaged, 3);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * Times are Unix seconds: lm_store_reader_set refuses a negative one, and
 * lm_store_trim a negative now (the trim's age of a reader, now - at,
 * overflowed near INT64_MIN); a reader record with a negative time written
 * behind the store's back counts as long silent and is forgotten.
 */
static void
test_trim_reader_time(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-reader-time");
	lm_store *s = open_store(dir, 0, 0);
	int64_t now = (int64_t) time(NULL);
	lm_store_trim_opts o = {.now = -1};
	lm_store_trim_result r;
	unsigned char v[16];

	put_range(s, 0, 5); /* seq 1..5 */
	assert_int_equal(lm_store_reader_set(s, "a", 1, INT64_MIN), LM_EINVAL);
	assert_int_equal(lm_store_reader_set(s, "a", 1, -1), LM_EINVAL);
	assert_int_equal(lm_store_trim(s, &o, &r), LM_EINVAL);
	o.now = INT64_MIN;
	assert_int_equal(lm_store_trim(s, &o, &r), LM_EINVAL);
	r = trim1(s, now, 0);
	assert_int_equal(r.readers, 0);
	assert_int_equal(r.changes_trimmed, 4);

	put_range(s, 10, 5); /* seq 6..10 */
	lm_store_close(s);
	lm_lmdb_put_be64(v, 2);
	lm_lmdb_put_be64(v + 8, (uint64_t) INT64_MIN);
	lmt_store_poke(dir, "readers", "old", 3, v, sizeof(v));
	s = open_store(dir, 0, 0);
	r = trim1(s, now, 0);
	assert_int_equal(r.readers_expired, 1);
	assert_int_equal(r.readers, 0);
	assert_int_equal(r.changes_trimmed, 5);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* Child: dies (SIGKILL) inside a read of the store in dir, leaving its
 * slot in LMDB's reader table behind. */
static int
die_reading_fn(void *arg, const char *id, uint64_t v, const void *b, size_t len)
{
	(void) arg;
	(void) id;
	(void) v;
	(void) b;
	(void) len;
	raise(SIGKILL);
	return 0;
}

/*
 * A reader process killed inside a read transaction leaves its slot in
 * LMDB's reader table, which pins that snapshot: no page freed after it is
 * used again and the file grows with every write, up to the maximum map.
 * The trim frees the slots of dead processes, so the writer reuses pages
 * without having to be restarted.
 */
static void
test_trim_dead_reader_slot(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-dead-slot");
	lm_store *s = open_store(dir, 0, 0);
	struct lm_store_stats st;
	int status = 0;
	char *val = malloc(64 * 1024);

	assert_non_null(val);
	fill(val, 64 * 1024, 9);
	put1(s, LM_KIND_POSTING, "one", 1, "x", LM_OK);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lm_store_opts ro = {.flags = LM_STORE_RDONLY};
		lm_store *c;
		if (lm_store_open(dir, &ro, &c) != LM_OK)
			_exit(1);
		lm_store_foreach(c, LM_KIND_POSTING, die_reading_fn, NULL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	for (uint64_t v = 1; v <= 300; v++) {
		lm_store_txn *t;
		assert_int_equal(lm_store_begin(s, &t), LM_OK);
		assert_int_equal(
		    lm_store_put(t, LM_KIND_PROFILE, "big", v, val, 64 * 1024), LM_OK);
		assert_int_equal(lm_store_commit(t, NULL), LM_OK);
		if (v % 10 == 0)
			trim1(s, 0, 0);
	}
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	/* 300 versions of 64 KiB: over 18 MiB when no page is used again. */
	assert_true(st.map_used < 4u * 1024 * 1024);
	free(val);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* Collects the ids lm_store_foreach_unmarked hands over, comma-separated. */
static int
collect_ids(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	char *out = arg;
	(void) version, (void) bytes, (void) len;
	if (out[0] != '\0')
		strcat(out, ",");
	strcat(out, id);
	return 0;
}

/* One lm_store_foreach_unmarked call: the ids handed over, where the next
 * call goes on and whether the kind's end was reached. */
static void
expect_unmarked(lm_store *s, lm_kind k, const char *after, size_t max, const char *ids,
    const char *next, bool end)
{
	char got[512] = "", at[LM_STORE_ID_MAX + 1];
	bool done = !end;

	assert_int_equal(
	    lm_store_foreach_unmarked(s, k, after, max, collect_ids, got, at, &done),
	    LM_OK);
	assert_string_equal(got, ids);
	assert_string_equal(at, next);
	assert_true(done == end);
}

static void
mark1(lm_store *s, lm_kind k, const char *id)
{
	lm_store_txn *t;
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_mark(t, k, id), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
}

/*
 * Marks: a set of (kind, id) written inside write transactions, durable
 * with them, independent of the records (an absent id may be marked), and
 * a bounded walk of the live records that are not marked, going on from
 * the last id it examined. Clearing empties the set. A transaction of
 * marks that outgrows the map is replayed whole.
 */
static void
test_marks(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-marks");
	lm_store *s = open_store(dir, 0, 0);
	struct lm_store_stats st;
	lm_store_txn *t;
	char at[LM_STORE_ID_MAX + 1];
	bool end = false;

	put1(s, LM_KIND_POSTING, "p1", 1, "a", LM_OK);
	put1(s, LM_KIND_POSTING, "p2", 1, "b", LM_OK);
	put1(s, LM_KIND_POSTING, "p3", 1, "c", LM_OK);
	put1(s, LM_KIND_POSTING, "p4", 1, "d", LM_OK);
	put1(s, LM_KIND_PROFILE, "p2", 1, "e", LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_delete(t, LM_KIND_POSTING, "p4", 0), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);

	/* Nothing marked: every live record of the kind, tombstones not. */
	expect_unmarked(s, LM_KIND_POSTING, NULL, 100, "p1,p2,p3", "", true);
	expect_unmarked(s, LM_KIND_PROFILE, "", 100, "p2", "", true);

	/* A mark names one kind; marking an absent id is allowed. An
	 * aborted transaction's marks are gone. */
	mark1(s, LM_KIND_POSTING, "p1");
	mark1(s, LM_KIND_PROFILE, "p2");
	mark1(s, LM_KIND_POSTING, "gone");
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_mark(t, LM_KIND_POSTING, "p3"), LM_OK);
	lm_store_abort(t);
	expect_unmarked(s, LM_KIND_POSTING, NULL, 100, "p2,p3", "", true);
	expect_unmarked(s, LM_KIND_PROFILE, NULL, 100, "", "", true);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.marks, 3);

	/* Bounded: max records examined (tombstones too), going on after
	 * the last one. */
	expect_unmarked(s, LM_KIND_POSTING, NULL, 1, "", "p1", false);
	expect_unmarked(s, LM_KIND_POSTING, "p1", 1, "p2", "p2", false);
	expect_unmarked(s, LM_KIND_POSTING, "p2", 1, "p3", "p3", false);
	expect_unmarked(s, LM_KIND_POSTING, "p3", 1, "", "p4", false);
	expect_unmarked(s, LM_KIND_POSTING, "p4", 1, "", "", true);
	/* After an id that is not stored: from the next one. */
	expect_unmarked(s, LM_KIND_POSTING, "p15", 100, "p2,p3", "", true);

	/* Durable; cleared as a whole. */
	lm_store_close(s);
	s = open_store(dir, 0, 0);
	expect_unmarked(s, LM_KIND_POSTING, NULL, 100, "p2,p3", "", true);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_marks_clear(t), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.marks, 0);
	expect_unmarked(s, LM_KIND_POSTING, NULL, 100, "p1,p2,p3", "", true);

	/* Bad arguments. */
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_mark(t, LM_KIND_POSTING, ""), LM_EINVAL);
	assert_int_equal(lm_store_mark(t, (lm_kind) 3, "p1"), LM_EINVAL);
	lm_store_abort(t);
	assert_int_equal(lm_store_foreach_unmarked(
	                     s, LM_KIND_POSTING, NULL, 0, collect_ids, at, at, &end),
	    LM_EINVAL);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);

	/* Marks that outgrow a small map: the transaction is replayed. */
	dir = lmt_tmpdir("store-marks-grow");
	s = open_store(dir, SMALL_MAP, 0);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	for (int i = 0; i < 3000; i++) {
		char id[64];
		snprintf(id, sizeof(id), "marked-record-with-a-longish-id-%05d", i);
		assert_int_equal(lm_store_mark(t, LM_KIND_PROFILE, id), LM_OK);
	}
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.marks, 3000);
	assert_true(st.map_grows > 0);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_schema_mismatch(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("store-schema");
	lm_store *s = open_store(dir, 0, 0);
	lm_store_close(s);

	/* Rewrite the schema version behind the store's back. */
	raw_put(dir, "meta", "store.schema_version", strlen("store.schema_version"), "2");

	s = NULL;
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_ESCHEMA);
	assert_null(s);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_get_delete_iterate),
	    cmocka_unit_test(test_versioning),
	    cmocka_unit_test(test_tombstones),
	    cmocka_unit_test(test_positions),
	    cmocka_unit_test(test_positions_reput),
	    cmocka_unit_test(test_change_log),
	    cmocka_unit_test(test_trim_changes),
	    cmocka_unit_test(test_trim_tombstones),
	    cmocka_unit_test(test_trim_damaged),
	    cmocka_unit_test(test_trim_reader_time),
	    cmocka_unit_test(test_trim_damaged_keys),
	    cmocka_unit_test(test_changes_gone_damaged_first),
	    cmocka_unit_test(test_damaged_last_change_key),
	    cmocka_unit_test(test_permission_denied),
	    cmocka_unit_test(test_foreach_damaged_key),
	    cmocka_unit_test(test_damaged_position),
	    cmocka_unit_test(test_damaged_value_replaced),
	    cmocka_unit_test(test_damaged_counter),
	    cmocka_unit_test(test_damaged_value_logged_once),
	    cmocka_unit_test(test_snapshot_checked_damaged),
	    cmocka_unit_test(test_trim_dead_reader_slot),
	    cmocka_unit_test(test_snapshot),
	    cmocka_unit_test(test_map_growth),
	    cmocka_unit_test(test_growth_while_another_store_held),
	    cmocka_unit_test(test_cross_process_follow),
	    cmocka_unit_test(test_crash_safety),
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_invalid_input),
	    cmocka_unit_test(test_foreign_environment),
	    cmocka_unit_test(test_schema_mismatch),
	    cmocka_unit_test(test_marks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
