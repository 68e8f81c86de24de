/*
 * dqueue.c - a durable FIFO of byte messages on LMDB; see dqueue.h.
 *
 * Databases: `messages` maps a big-endian u64 seq to the message bytes;
 * `meta` holds the schema version and "next", the seq the next append
 * starts at (kept there so that seqs keep growing when the queue empties).
 *
 * Every operation holds `lock` for its whole transaction, so no transaction
 * of this process is open when a full map is grown (mdb_env_set_mapsize
 * requires that) and no caller sees a half-grown environment.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "lunamatch/dqueue.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"

#define DQ_SCHEMA_KEY "schema"
#define DQ_SCHEMA     "1"
#define DQ_NEXT_KEY   "next"
#define DQ_DIR_MAX    3072 /* bytes of the directory path */
#define DQ_GROWS_MAX  16   /* map doublings one append may need */

struct lm_dqueue {
	pthread_mutex_t lock; /* held for every transaction */
	MDB_env *env;
	MDB_dbi db_msgs, db_meta;
	uint64_t max_map;
	/* The last write was a removal: the pages it freed are reusable only
	 * once another write commits (touch). Under lock. */
	bool freed;
	char domain[LM_LMDB_DOMAIN_MAX + 1];
	dev_t dev;
	ino_t ino;
};

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

/* One attempt at an append; LM_EMAPFULL asks the caller to grow and retry. */
static int
append_once(lm_dqueue *q, const lm_dqueue_msg *msgs, size_t n, uint64_t *first)
{
	unsigned char kb[LM_LMDB_BE64_LEN], nb[LM_LMDB_BE64_LEN];
	MDB_txn *txn = NULL;
	uint64_t next = 0;
	int rc;

	if ((rc = lm_lmdb_txn_begin(q->env, 0, NULL, NULL, q->domain, &txn)) != LM_OK)
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
 * Commits a write that changes nothing (the next seq, as it is), lock held.
 * LMDB reuses the pages a commit freed only once a later write has
 * committed, and an append that fails is aborted: after removals emptied a
 * queue at its largest map, appends that needed the freed pages kept
 * failing with LM_EMAPFULL until some smaller write happened to commit.
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
	for (int grows = 0;; grows++) {
		rc = append_once(q, msgs, n, &first);
		if (rc != LM_EMAPFULL || grows == DQ_GROWS_MAX)
			break;
		if ((rc = lm_lmdb_grow(q->env, q->max_map, NULL, NULL, q->domain)) !=
		    LM_OK)
			break;
	}
	if (rc == LM_EMAPFULL && q->freed && touch(q) == LM_OK) {
		q->freed = false;
		rc = append_once(q, msgs, n, &first);
	}
	if (rc == LM_OK)
		q->freed = false;
	pthread_mutex_unlock(&q->lock);
	if (rc == LM_OK && first_seq != NULL)
		*first_seq = first;
	return rc;
}

int
lm_dqueue_peek(lm_dqueue *q, uint64_t after, size_t max, lm_dqueue_fn fn, void *arg)
{
	unsigned char kb[LM_LMDB_BE64_LEN];
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k = {sizeof(kb), kb}, v;
	size_t seen = 0;
	int rc, ret = LM_OK;

	if (q == NULL || fn == NULL || max == 0 || max > LM_DQUEUE_BATCH_MAX)
		return LM_EINVAL;
	lm_lmdb_put_be64(kb, after == UINT64_MAX ? after : after + 1);
	pthread_mutex_lock(&q->lock);
	rc = lm_lmdb_txn_begin(q->env, MDB_RDONLY, NULL, NULL, q->domain, &txn);
	if (rc != LM_OK)
		goto out;
	if ((rc = mdb_cursor_open(txn, q->db_msgs, &c)) != 0) {
		rc = lm_lmdb_err(rc, q->domain, "mdb_cursor_open");
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && seen < max;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), seen++) {
		if (k.mv_size != LM_LMDB_BE64_LEN) {
			rc = LM_ESTORE;
			goto out;
		}
		uint64_t seq = lm_lmdb_get_be64(k.mv_data);
		if (seq <= after)
			continue;
		if ((ret = fn(arg, seq, v.mv_data, v.mv_size)) != 0)
			break;
	}
	rc = rc == 0 || rc == MDB_NOTFOUND ? LM_OK
	                                   : lm_lmdb_err(rc, q->domain, "mdb_cursor_get");
out:
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	pthread_mutex_unlock(&q->lock);
	return rc != LM_OK ? rc : ret;
}

/* Removes seqs[0 .. n) in one transaction (lock held); LM_EMAPFULL when
 * the map has no room for the pages the deletion copies. */
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
 * So a deletion the map has no room for is split in halves, each its own
 * transaction: one message needs only the pages of one path, which the
 * pages freed by the transaction before provide, and every transaction
 * that succeeds frees more for the next.
 */
static int
remove_split(lm_dqueue *q, const uint64_t *seqs, size_t n)
{
	int rc = remove_once(q, seqs, n);

	if (rc != LM_EMAPFULL || n == 1)
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
	rc = remove_split(q, seqs, n);
	if (rc == LM_OK)
		q->freed = true;
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
	pthread_mutex_lock(&q->lock);
	if (lm_lmdb_txn_begin(q->env, MDB_RDONLY, NULL, NULL, q->domain, &txn) == LM_OK) {
		if (mdb_stat(txn, q->db_msgs, &st) == 0)
			n = st.ms_entries;
		mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&q->lock);
	return n;
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
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = lm_err_from_errno(errno);
		lm_error("dqueue.open", "%s: cannot create the directory: %s", domain,
		    strerror(errno));
		return rc;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		lm_error("dqueue.open", "%s: the path is not a directory", domain);
		return LM_EINVAL;
	}
	if ((rc = lm_lmdb_dir_claim(st.st_dev, st.st_ino)) != LM_OK)
		return rc == LM_EBUSY ? LM_EEXIST : rc;
	claimed = true;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&q->lock, NULL);
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
	pthread_mutex_destroy(&q->lock);
	lm_lmdb_dir_release(q->dev, q->ino);
	free(q);
}
