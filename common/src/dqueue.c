/*
 * dqueue.c - a durable FIFO of byte messages on LMDB; see dqueue.h.
 *
 * Databases: `messages` maps a big-endian u64 seq to the message bytes;
 * `meta` holds the schema version and "next", the seq the next append
 * starts at (kept there so that seqs keep growing when the queue empties).
 *
 * Locks: `lock` serializes the writes (appends, removals), the syncs and
 * the changes of the sync mode, and is held across each, the disk sync of
 * a synced commit included. Reads (peek, count) do not take it: LMDB's
 * readers do not wait for its writer, so no pass over the queue holds up
 * an append (a peek takes it between two slices only, to remove the
 * damaged keys the slice met, as a removal does). `maplock` is held shared
 * by every transaction, read or write, and exclusively where no read may
 * run beside: a change of the map size (mdb_env_set_mapsize requires that
 * no transaction of the process is open), a removal and the last try of
 * an append after one (the pages a write frees are reusable only when no
 * reader is older, remove_split and touch). A peek holds it for one slice of at most
 * LM_DQUEUE_PEEK_SLICE messages at a time, so that these wait for at most
 * one slice of its callbacks. The order is lock, then maplock.
 */
#define _GNU_SOURCE /* PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "lunamatch/dqueue.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"

#define DQ_SCHEMA_KEY  "schema"
#define DQ_SCHEMA      "1"
#define DQ_NEXT_KEY    "next"
#define DQ_DIR_MAX     3072 /* bytes of the directory path */
#define DQ_GROWS_MAX   16   /* map doublings one append may need */
#define DQ_DAMAGED_MAX 8    /* damaged keys one slice of a peek gathers */
#define DQ_KEY_MAX     511  /* bytes of a key (LMDB's default limit) */

struct lm_dqueue {
	pthread_mutex_t lock; /* held for every write, sync and mode change */
	/* Shared: a transaction is open; exclusive: no read may run (see
	 * above). It prefers the exclusive side, so that a peek's slices
	 * cannot starve a growing map; so no thread may take it shared
	 * twice, which is why a peek's callback must not call the queue. */
	pthread_rwlock_t maplock;
	MDB_env *env;
	MDB_dbi db_msgs, db_meta;
	uint64_t max_map;
	/* The last write was a removal: the pages it freed are reusable only
	 * once another write commits (touch) and no reader's snapshot is
	 * older than that write. Under lock. */
	bool freed;
	atomic_uint_fast64_t damaged; /* damaged keys removed (lm_dqueue_damaged) */
	char domain[LM_LMDB_DOMAIN_MAX + 1];
	dev_t dev;
	ino_t ino;
};

/* Trades the caller's shared hold of maplock for the exclusive one, which
 * waits for the other open transactions to end and keeps new ones out. */
static void
map_exclusive(lm_dqueue *q)
{
	pthread_rwlock_unlock(&q->maplock);
	pthread_rwlock_wrlock(&q->maplock);
}

/* Trades the exclusive hold back for a shared one. */
static void
map_shared(lm_dqueue *q)
{
	pthread_rwlock_unlock(&q->maplock);
	pthread_rwlock_rdlock(&q->maplock);
}

/*
 * Sets the map size (0: adopt the size another process recorded); the
 * lm_lmdb_resize_fn of every transaction and growth, arg the queue. The
 * caller holds maplock shared, once, and has no transaction open.
 */
static int
set_mapsize(void *arg, MDB_env *env, uint64_t size)
{
	lm_dqueue *q = arg;

	map_exclusive(q);
	int rc = lm_lmdb_set_mapsize(env, size, q->domain);
	map_shared(q);
	return rc;
}

static int
get_next(lm_dqueue *q, MDB_txn *txn, uint64_t *next)
{
	MDB_val k = {strlen(DQ_NEXT_KEY), DQ_NEXT_KEY}, v;
	int rc = mdb_get(txn, q->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*next = 1;
		return LM_OK;
	}
	if (rc != 0)
		return lm_lmdb_err(rc, q->domain, "mdb_get");
	if (v.mv_size != LM_LMDB_BE64_LEN)
		return LM_ESTORE;
	*next = lm_lmdb_get_be64(v.mv_data);
	return LM_OK;
}

/* One attempt at an append, lock held and maplock shared (resize
 * set_mapsize) or exclusive (resize NULL); LM_EMAPFULL asks the caller to
 * grow and retry. */
static int
append_once(lm_dqueue *q, const lm_dqueue_msg *msgs, size_t n, uint64_t *first,
    lm_lmdb_resize_fn resize)
{
	unsigned char kb[LM_LMDB_BE64_LEN], nb[LM_LMDB_BE64_LEN];
	MDB_txn *txn = NULL;
	uint64_t next = 0;
	int rc;

	if ((rc = lm_lmdb_txn_begin(q->env, 0, resize, q, q->domain, &txn)) != LM_OK)
		return rc;
	if ((rc = get_next(q, txn, &next)) != LM_OK)
		goto fail;
	*first = next;
	for (size_t i = 0; i < n; i++, next++) {
		MDB_val k = {sizeof(kb), kb}, v = {msgs[i].len, (void *) msgs[i].data};
		lm_lmdb_put_be64(kb, next);
		if ((rc = mdb_put(txn, q->db_msgs, &k, &v, MDB_APPEND)) != 0) {
			rc = lm_lmdb_err(rc, q->domain, "mdb_put");
			goto fail;
		}
	}
	MDB_val k = {strlen(DQ_NEXT_KEY), DQ_NEXT_KEY}, v = {sizeof(nb), nb};
	lm_lmdb_put_be64(nb, next);
	if ((rc = mdb_put(txn, q->db_meta, &k, &v, 0)) != 0) {
		rc = lm_lmdb_err(rc, q->domain, "mdb_put");
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		return lm_lmdb_err(rc, q->domain, "mdb_txn_commit");
	return LM_OK;
fail:
	mdb_txn_abort(txn);
	return rc;
}

/*
 * Commits a write that changes nothing (the next seq, as it is), lock held
 * and maplock exclusive.
 * LMDB reuses the pages a commit freed only once a later write has
 * committed, and an append that fails is aborted: after removals emptied a
 * queue at its largest map (or on a full disk), appends that needed the
 * freed pages kept failing with LM_EMAPFULL (lm_lmdb_no_room) until some smaller
 * write happened to commit.
 * This is that write. Only after a removal: otherwise it takes room and
 * frees none.
 */
static int
touch(lm_dqueue *q)
{
	unsigned char nb[LM_LMDB_BE64_LEN];
	MDB_txn *txn = NULL;
	uint64_t next = 0;
	int rc;

	if ((rc = lm_lmdb_txn_begin(q->env, 0, NULL, NULL, q->domain, &txn)) != LM_OK)
		return rc;
	if ((rc = get_next(q, txn, &next)) != LM_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	MDB_val k = {strlen(DQ_NEXT_KEY), DQ_NEXT_KEY}, v = {sizeof(nb), nb};
	lm_lmdb_put_be64(nb, next);
	if ((rc = mdb_put(txn, q->db_meta, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		return lm_lmdb_err(rc, q->domain, "mdb_put");
	}
	rc = mdb_txn_commit(txn);
	return rc == 0 ? LM_OK : lm_lmdb_err(rc, q->domain, "mdb_txn_commit");
}

int
lm_dqueue_append(lm_dqueue *q, const lm_dqueue_msg *msgs, size_t n, uint64_t *first_seq)
{
	uint64_t first = 0;
	int rc;

	if (q == NULL || msgs == NULL || n == 0 || n > LM_DQUEUE_BATCH_MAX)
		return LM_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].data == NULL && msgs[i].len > 0)
			return LM_EINVAL;
		if (msgs[i].len > LM_DQUEUE_MSG_MAX)
			return LM_E2BIG;
	}
	pthread_mutex_lock(&q->lock);
	pthread_rwlock_rdlock(&q->maplock);
	for (int grows = 0;; grows++) {
		rc = append_once(q, msgs, n, &first, set_mapsize);
		if (rc != LM_EMAPFULL || grows == DQ_GROWS_MAX)
			break;
		if ((rc = lm_lmdb_grow(q->env, q->max_map, set_mapsize, q, q->domain)) !=
		    LM_OK)
			break;
	}
	/* After a removal, the last try runs with no read transaction open:
	 * a peek's snapshot taken before touch would keep the pages it is
	 * meant to free. */
	if (lm_lmdb_no_room(rc) && q->freed) {
		map_exclusive(q);
		if (touch(q) == LM_OK) {
			q->freed = false;
			rc = append_once(q, msgs, n, &first, NULL);
		}
		map_shared(q);
	}
	if (rc == LM_OK)
		q->freed = false;
	pthread_rwlock_unlock(&q->maplock);
	pthread_mutex_unlock(&q->lock);
	if (rc == LM_OK && first_seq != NULL)
		*first_seq = first;
	return rc;
}

/*
 * The keys a slice of a peek found damaged: keys that are no sequence
 * number (not LM_LMDB_BE64_LEN bytes, or seq 0, which no append writes),
 * left by disk damage or by another program. They are removed once the
 * slice's read transaction has ended (remove_damaged). full: the slice
 * stopped at DQ_DAMAGED_MAX of them, and the next one starts after the
 * last.
 */
struct damaged {
	size_t n;
	bool full;
	size_t len[DQ_DAMAGED_MAX];
	unsigned char key[DQ_DAMAGED_MAX][DQ_KEY_MAX];
};

/* Logs the damaged key k, met after seq `after` (0: before any message),
 * and lists it for removal (while there is room: the others are met again
 * by a later peek). */
static void
damaged_found(lm_dqueue *q, const MDB_val *k, uint64_t after, struct damaged *dmg)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];

	snprintf(ev, sizeof(ev), "%s.corrupt", q->domain);
	if (after == 0)
		lm_error(ev,
		    "the %s queue holds a key of %zu bytes before its first "
		    "message that is no sequence number: passed over and removed",
		    q->domain, k->mv_size);
	else
		lm_error(ev,
		    "the %s queue holds a key of %zu bytes after seq %llu that is "
		    "no sequence number: passed over and removed",
		    q->domain, k->mv_size, (unsigned long long) after);
	if (dmg->n < DQ_DAMAGED_MAX && k->mv_size <= DQ_KEY_MAX) {
		memcpy(dmg->key[dmg->n], k->mv_data, k->mv_size);
		dmg->len[dmg->n++] = k->mv_size;
	}
}

/*
 * Calls fn for at most n messages with seq > *after in one read
 * transaction, with maplock held shared and not lock. *after becomes the
 * seq of the last message passed and *seen counts the messages passed;
 * *stop is the non-zero value fn stopped with. The damaged keys met are
 * passed over and listed in *dmg (at most DQ_DAMAGED_MAX: then the slice
 * stops early, with dmg->full); a slice that follows a full one starts
 * after the last key it listed, else after *after, so that the keys
 * sorted between two seqs (such as seq 2 and one more byte) are met too.
 * Returns LM_OK or an error.
 */
static int
peek_slice(lm_dqueue *q, uint64_t *after, size_t n, lm_dqueue_fn fn, void *arg,
    size_t *seen, int *stop, struct damaged *dmg)
{
	unsigned char kb[DQ_KEY_MAX];
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k = {LM_LMDB_BE64_LEN, kb}, from, v;
	bool resume = dmg->full;
	int rc;

	if (resume) {
		k.mv_size = dmg->len[dmg->n - 1];
		memcpy(kb, dmg->key[dmg->n - 1], k.mv_size);
	} else {
		lm_lmdb_put_be64(kb, *after);
	}
	from = k;
	dmg->n = 0;
	dmg->full = false;
	pthread_rwlock_rdlock(&q->maplock);
	rc = lm_lmdb_txn_begin(q->env, MDB_RDONLY, set_mapsize, q, q->domain, &txn);
	if (rc != LM_OK)
		goto out;
	if ((rc = mdb_cursor_open(txn, q->db_msgs, &c)) != 0) {
		rc = lm_lmdb_err(rc, q->domain, "mdb_cursor_open");
		goto out;
	}
	/* From the start: the keys sorted before seq 1 are met too. */
	if (!resume && *after == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	} else {
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		/* The key started from is behind the slice. */
		if (rc == 0 && k.mv_size == from.mv_size &&
		    memcmp(k.mv_data, kb, k.mv_size) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	while (rc == 0 && *seen < n) {
		uint64_t seq =
		    k.mv_size == LM_LMDB_BE64_LEN ? lm_lmdb_get_be64(k.mv_data) : 0;
		if (seq == 0) {
			damaged_found(q, &k, *after, dmg);
			if (dmg->n == DQ_DAMAGED_MAX) {
				dmg->full = true;
				break;
			}
		} else {
			*after = seq;
			++*seen;
			if ((*stop = fn(arg, *after, v.mv_data, v.mv_size)) != 0)
				break;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	rc = rc == 0 || rc == MDB_NOTFOUND ? LM_OK
	                                   : lm_lmdb_err(rc, q->domain, "mdb_cursor_get");
out:
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&q->maplock);
	return rc;
}

/*
 * Removes the damaged keys a slice listed, in one synced transaction, lock
 * and maplock taken as by a removal (no transaction of the caller open),
 * and counts those it removed. A failure is logged; the keys stay, to be
 * met again by a later peek.
 */
static void
remove_damaged(lm_dqueue *q, const struct damaged *dmg)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];
	MDB_txn *txn = NULL;
	uint64_t gone = 0;
	int rc;

	pthread_mutex_lock(&q->lock);
	pthread_rwlock_wrlock(&q->maplock); /* see remove_split */
	rc = lm_lmdb_txn_begin(q->env, 0, NULL, NULL, q->domain, &txn);
	for (size_t i = 0; rc == LM_OK && i < dmg->n; i++) {
		MDB_val k = {dmg->len[i], (void *) dmg->key[i]};
		int e = mdb_del(txn, q->db_msgs, &k, NULL);
		if (e == 0)
			gone++;
		else if (e != MDB_NOTFOUND)
			rc = lm_lmdb_err(e, q->domain, "mdb_del");
	}
	if (rc == LM_OK) {
		int e = mdb_txn_commit(txn);
		txn = NULL;
		rc = e == 0 ? LM_OK : lm_lmdb_err(e, q->domain, "mdb_txn_commit");
	}
	mdb_txn_abort(txn);
	if (rc == LM_OK) {
		q->freed = true;
		atomic_fetch_add(&q->damaged, gone);
	}
	pthread_rwlock_unlock(&q->maplock);
	pthread_mutex_unlock(&q->lock);
	if (rc != LM_OK) {
		snprintf(ev, sizeof(ev), "%s.corrupt", q->domain);
		lm_error(ev, "%zu damaged keys of the %s queue not removed: %s", dmg->n,
		    q->domain, lm_strerror(rc));
	}
}

int
lm_dqueue_peek(lm_dqueue *q, uint64_t after, size_t max, lm_dqueue_fn fn, void *arg)
{
	struct damaged dmg; /* its keys are read only up to n */
	size_t left = max, n, seen;
	int rc = LM_OK, stop = 0;

	if (q == NULL || fn == NULL || max == 0 || max > LM_DQUEUE_BATCH_MAX)
		return LM_EINVAL;
	if (after == UINT64_MAX)
		return LM_OK; /* no seq follows */
	dmg.n = 0;
	dmg.full = false;
	do {
		n = left < LM_DQUEUE_PEEK_SLICE ? left : LM_DQUEUE_PEEK_SLICE;
		seen = 0;
		rc = peek_slice(q, &after, n, fn, arg, &seen, &stop, &dmg);
		left -= seen;
		if (dmg.n > 0)
			remove_damaged(q, &dmg);
	} while (rc == LM_OK && stop == 0 && (seen == n || dmg.full) && left > 0 &&
	         after < UINT64_MAX);
	return rc != LM_OK ? rc : stop;
}

/* Removes seqs[0 .. n) in one transaction (lock held, maplock exclusive);
 * LM_EMAPFULL when the map has no room for the pages the deletion copies,
 * LM_ENOSPC when the disk has none. */
static int
remove_once(lm_dqueue *q, const uint64_t *seqs, size_t n)
{
	unsigned char kb[LM_LMDB_BE64_LEN];
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = lm_lmdb_txn_begin(q->env, 0, NULL, NULL, q->domain, &txn)) != LM_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = {sizeof(kb), kb};
		lm_lmdb_put_be64(kb, seqs[i]);
		rc = mdb_del(txn, q->db_msgs, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return lm_lmdb_err(rc, q->domain, "mdb_del");
		}
	}
	rc = mdb_txn_commit(txn);
	return rc == 0 ? LM_OK : lm_lmdb_err(rc, q->domain, "mdb_txn_commit");
}

/*
 * LMDB never writes in place: a deletion copies every page on its path,
 * and the pages it frees are free only for later transactions. In a full
 * map a large deletion can therefore find no room (measured: 1,250
 * messages of 3 KB), and a queue that cannot shrink stays full for good.
 * A full disk is the same: the file cannot grow to take the copies. So a
 * deletion the map or the disk has no room for is split in halves, each its own
 * transaction: one message needs only the pages of one path, which the
 * pages freed by the transaction before provide, and every transaction
 * that succeeds frees more for the next. Freed pages are reusable only
 * when no read transaction is older than the one that freed them, so a
 * removal holds maplock exclusively: no peek or count runs beside it.
 */
static int
remove_split(lm_dqueue *q, const uint64_t *seqs, size_t n)
{
	int rc = remove_once(q, seqs, n);

	if (!lm_lmdb_no_room(rc) || n == 1)
		return rc;
	if ((rc = remove_split(q, seqs, n / 2)) != LM_OK)
		return rc;
	return remove_split(q, seqs + n / 2, n - n / 2);
}

int
lm_dqueue_remove(lm_dqueue *q, const uint64_t *seqs, size_t n)
{
	int rc;

	if (q == NULL || (seqs == NULL && n > 0))
		return LM_EINVAL;
	if (n == 0)
		return LM_OK;
	pthread_mutex_lock(&q->lock);
	pthread_rwlock_wrlock(&q->maplock); /* see remove_split */
	rc = remove_split(q, seqs, n);
	if (rc == LM_OK)
		q->freed = true;
	pthread_rwlock_unlock(&q->maplock);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

uint64_t
lm_dqueue_count(lm_dqueue *q)
{
	MDB_txn *txn = NULL;
	MDB_stat st;
	uint64_t n = 0;

	if (q == NULL)
		return 0;
	pthread_rwlock_rdlock(&q->maplock);
	if (lm_lmdb_txn_begin(q->env, MDB_RDONLY, set_mapsize, q, q->domain, &txn) ==
	    LM_OK) {
		if (mdb_stat(txn, q->db_msgs, &st) == 0)
			n = st.ms_entries;
		mdb_txn_abort(txn);
	}
	pthread_rwlock_unlock(&q->maplock);
	return n;
}

uint64_t
lm_dqueue_damaged(lm_dqueue *q)
{
	return q != NULL ? atomic_load(&q->damaged) : 0;
}

/* Creates or opens the databases and checks the schema. */
static int
open_dbs(lm_dqueue *q)
{
	static const char *const names[] = {"messages", "meta"};
	MDB_dbi *const dbis[] = {&q->db_msgs, &q->db_meta};
	MDB_txn *txn = NULL;
	int rc;

	if ((rc = lm_lmdb_txn_begin(q->env, 0, NULL, NULL, q->domain, &txn)) != LM_OK)
		return rc;
	if ((rc = lm_lmdb_dbs_open(txn, names, dbis, 2, MDB_CREATE, q->domain)) !=
	        LM_OK ||
	    (rc = lm_lmdb_schema_check(
	         txn, q->db_meta, DQ_SCHEMA_KEY, DQ_SCHEMA, true, q->domain)) != LM_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	return rc == 0 ? LM_OK : lm_lmdb_err(rc, q->domain, "mdb_txn_commit");
}

int
lm_dqueue_open(const char *dir, uint64_t max_map, const char *domain, lm_dqueue **out)
{
	const lm_lmdb_env_opts env_opts = {
	    .max_dbs = 2, .map_size = LM_DQUEUE_MAP_SIZE, .mode = 0600};
	lm_dqueue *q = NULL;
	struct stat st;
	bool claimed = false;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (dir == NULL || dir[0] == '\0' || strlen(dir) >= DQ_DIR_MAX ||
	    domain == NULL || strlen(domain) > LM_LMDB_DOMAIN_MAX ||
	    max_map < LM_DQUEUE_MAP_SIZE)
		return LM_EINVAL;
	if ((rc = lm_lmdb_dir_make(dir, 0700, false, domain)) != LM_OK)
		return rc;
	if (stat(dir, &st) != 0)
		return lm_err_from_errno(errno);
	if ((rc = lm_lmdb_dir_claim(st.st_dev, st.st_ino)) != LM_OK)
		return rc == LM_EBUSY ? LM_EEXIST : rc;
	claimed = true;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&q->maplock, &ra);
	pthread_rwlockattr_destroy(&ra);
	q->max_map = max_map;
	q->dev = st.st_dev;
	q->ino = st.st_ino;
	memcpy(q->domain, domain, strlen(domain) + 1);
	if ((rc = lm_lmdb_env_open(dir, &env_opts, domain, &q->env)) != LM_OK ||
	    (rc = open_dbs(q)) != LM_OK)
		goto fail;
	*out = q;
	return LM_OK;
fail:
	if (q != NULL) {
		if (q->env != NULL)
			mdb_env_close(q->env);
		pthread_rwlock_destroy(&q->maplock);
		pthread_mutex_destroy(&q->lock);
		free(q);
	}
	if (claimed)
		lm_lmdb_dir_release(st.st_dev, st.st_ino);
	return rc;
}

int
lm_dqueue_set_sync(lm_dqueue *q, bool sync)
{
	int rc;

	if (q == NULL)
		return LM_EINVAL;
	pthread_mutex_lock(&q->lock);
	rc = mdb_env_set_flags(q->env, MDB_NOSYNC, sync ? 0 : 1);
	pthread_mutex_unlock(&q->lock);
	return rc == 0 ? LM_OK : lm_lmdb_err(rc, q->domain, "mdb_env_set_flags");
}

int
lm_dqueue_sync(lm_dqueue *q)
{
	int rc;

	if (q == NULL)
		return LM_EINVAL;
	pthread_mutex_lock(&q->lock);
	rc = mdb_env_sync(q->env, 1);
	pthread_mutex_unlock(&q->lock);
	return rc == 0 ? LM_OK : lm_lmdb_err(rc, q->domain, "mdb_env_sync");
}

void
lm_dqueue_close(lm_dqueue *q)
{
	if (q == NULL)
		return;
	mdb_env_close(q->env);
	pthread_rwlock_destroy(&q->maplock);
	pthread_mutex_destroy(&q->lock);
	lm_lmdb_dir_release(q->dev, q->ino);
	free(q);
}
