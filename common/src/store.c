/*
 * store.c - the record store on LMDB; see store.h and docs/store.md.
 *
 * Layout: one environment, four named databases. `postings` and `profiles`
 * map an id to a value with a fixed 10-byte header (magic, flags, big-endian
 * version) before the protobuf bytes, so version checks never decode
 * protobuf. `changes` maps a big-endian u64 seq to a serialized ChangeEntry.
 * `meta` holds the schema version, the live/tombstone counters of the store
 * and keys set by callers. `readers` maps a reader's name to the seq it has
 * applied and when it said so, for lm_store_trim.
 *
 * Map growth: mdb_env_set_mapsize may only run while this process has no
 * transaction open on the environment. Every transaction of a handle (reads
 * and the write transaction) holds `maplock` shared; growing or adopting a
 * size grown by another process holds it exclusively. A write that hits
 * MDB_MAP_FULL aborts, doubles the map and replays the operations of the
 * transaction from its op log, which is why every mutating operation is
 * remembered until commit.
 */
#define _GNU_SOURCE /* PTHREAD_RWLOCK_PREFER_READER_NP */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/random.h"
#include "lunamatch/store.h"
#include "lunamatch/text.h"

#define VAL_MAGIC     0x4c /* 'L': record value, format 1 */
#define VAL_HDR       10   /* magic, flags, u64 BE version */
#define VAL_TOMBSTONE 0x01 /* flags bit: deletion tombstone */
#define VAL_POS       0x02 /* flags bit: a source position follows the header */
/* flags bit of a tombstone: the deletion may come from before the version it
 * took (see run_op) */
#define VAL_UNORDERED    0x04
#define VAL_POS_LEN      16  /* u32 BE epoch, u32 BE partition, u64 BE offset */
#define VAL_TOMB_TIME    8   /* a tombstone's payload: u64 BE deletion time */
#define READER_VAL       16  /* u64 BE seq, u64 BE time of the record */
#define CHANGE_MAX       512 /* bytes of a serialized ChangeEntry */
#define STORE_MAXDBS     8
#define STORE_MAXREADERS 512 /* concurrent read transactions, all processes */
#define TRIM_KEY_MAX     511 /* bytes of a key LMDB takes (MDB_MAXKEYSIZE) */
#define CORRUPT_SEEN     256 /* damaged values a handle remembers it logged */
#define CORRUPT_HASHED   64  /* bytes of a damaged value its fingerprint reads */

#define META_SCHEMA   "store.schema_version"
#define META_ID       "store.id" /* random identity, set when first opened writable */
#define META_RESERVED "store."

/* Counter slots: [kind - 1][LIVE or TOMB]. */
enum { LIVE = 0, TOMB = 1 };
static const char *const counter_keys[2][2] = {
    {"store.live.posting", "store.tomb.posting"},
    {"store.live.profile", "store.tomb.profile"},
};

struct lm_store {
	MDB_env *env;
	MDB_dbi db_rec[2]; /* postings, profiles */
	MDB_dbi db_changes;
	MDB_dbi db_meta;
	MDB_dbi db_readers; /* only in writable handles (lm_store_trim) */
	MDB_dbi db_marks;   /* only in writable handles (lm_store_mark) */
	unsigned flags;
	uint64_t max_map;
	pthread_rwlock_t maplock; /* shared: a txn is open; exclusive: resize */
	pthread_mutex_t gate;     /* with gate_cv: holds new readers back while */
	pthread_cond_t gate_cv;   /* a resize waits for maplock */
	int resizing;             /* resizes waiting or running (atomic reads) */
	pthread_mutex_t wlock;    /* guards `writing` and damaged_seq/_seen */
	bool writing;             /* a write txn of this handle is open */
	uint64_t stale;           /* atomic: LM_ESTALE results */
	uint64_t grows;           /* atomic: map growths */
	uint64_t damaged;         /* atomic: damaged last change keys seen,
	                           * damaged record values replaced and
	                           * damaged counters met */
	uint64_t damaged_seq;     /* the seq the last one stood for (wlock) */
	bool damaged_seen;        /* damaged_seq is set (wlock) */
	dev_t dev;                /* identity of the data directory */
	ino_t ino;
	/* Where lm_store_trim's scan of record values goes on: the kind index
	 * and the last key examined, damaged ones included (length 0: from
	 * the start of that kind; LMDB has no empty keys). Used by the holder
	 * of `writing` only. */
	int trim_kind;
	unsigned char trim_key[TRIM_KEY_MAX];
	size_t trim_keylen;
	/* Fingerprints of the damaged record values logged (decode_val),
	 * slot by fingerprint; atomic. */
	uint64_t corrupt_seen[CORRUPT_SEEN];
	/* Damaged counters met (txn_counter): bit ki * 2 + slot; atomic. */
	unsigned counters_damaged;
};

enum op_type { OP_PUT, OP_DEL, OP_META, OP_READER, OP_UNREADER, OP_MARK, OP_UNMARK_ALL };

/* One remembered mutation; id and data live in the same allocation. */
struct op {
	enum op_type type;
	lm_kind kind;
	uint64_t version;
	int64_t at;     /* change entry time, fixed at first run */
	int result;     /* LM_OK or LM_ENOENT of the first run */
	const char *id; /* record id, meta key or reader, NUL-terminated */
	size_t idlen;
	const void *data; /* value bytes (put, meta, reader) */
	size_t len;
	bool has_pos; /* pos: where the change comes from (put, delete) */
	lm_store_pos pos;
};

struct lm_store_txn {
	lm_store *s;
	MDB_txn *txn;    /* NULL after a failed commit freed it */
	struct op **ops; /* ops that changed the database, in order */
	size_t nops, cap;
	uint64_t next_seq;
	int64_t delta[2][2]; /* counter changes of this txn */
	uint64_t replaced;   /* damaged record values this txn replaced */
	bool recount[2];     /* by kind index: a damaged value was replaced */
	int failed;          /* sticky error: only abort/commit remain */
};

/* Depth of the calling thread's shared holds of maplock (any handle). A
 * resize needs the exclusive lock, which a thread already holding the shared
 * lock twice (a callback inside a read) cannot take without deadlock. */
static __thread int rd_depth;

/* ---- helpers ------------------------------------------------------------ */

/* LMDB errors of the store log as "store.error". */
static int
map_err(int rc, const char *what)
{
	return lm_lmdb_err(rc, "store", what);
}

/* Below this much free space a failed write counts as a full disk. */
#define DISK_FULL_BYTES (1u << 20)

/*
 * Commits txn. LMDB reports a short write (the disk filled up in the middle
 * of a page flush) as EIO; when the store's filesystem has next to no space
 * left, the failure is reported as what it is, LM_ENOSPC.
 */
static int
commit_txn(lm_store *s, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);
	struct statvfs v;
	mdb_filehandle_t fd;

	if (rc == EIO && mdb_env_get_fd(s->env, &fd) == MDB_SUCCESS &&
	    fstatvfs(fd, &v) == 0 && (uint64_t) v.f_bavail * v.f_frsize < DISK_FULL_BYTES)
		rc = ENOSPC;
	return map_err(rc, "mdb_txn_commit");
}

static bool
kind_ok(lm_kind k)
{
	return k == LM_KIND_POSTING || k == LM_KIND_PROFILE;
}

/* Strict UTF-8 without control characters (lm_text_control: C0, DEL
 * and C1); ids end up in protobuf strings and logs. */
static bool
text_ok(const unsigned char *p, size_t n)
{
	if (!lm_pb_utf8_valid((const char *) p, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if (lm_text_control(p + i, n - i) > 0)
			return false;
	return true;
}

/* Validates a record id: 1..LM_STORE_ID_MAX bytes of printable UTF-8. */
static int
check_id(const char *id, size_t *len)
{
	if (id == NULL || id[0] == '\0')
		return LM_EINVAL;
	size_t n = strnlen(id, LM_STORE_ID_MAX + 1);
	if (n > LM_STORE_ID_MAX)
		return LM_E2BIG;
	if (!text_ok((const unsigned char *) id, n))
		return LM_EINVAL;
	*len = n;
	return LM_OK;
}

bool
lm_store_id_ok(const char *id)
{
	size_t len;

	return check_id(id, &len) == LM_OK;
}

/* A decoded record value; bytes point into the LMDB page. */
struct rec {
	bool tomb;
	bool unordered; /* a tombstone with VAL_UNORDERED */
	bool has_pos;   /* pos is the position of the last change */
	uint64_t version;
	lm_store_pos pos;
	const void *bytes;
	size_t len;
};

/* Whether the damaged value v of record key (kind k) is logged for the
 * first time by this handle: its fingerprint (kind, key, size and first
 * bytes: another damaged value of the record is another report) was not
 * in its slot. Any thread. */
static bool
corrupt_first(lm_store *s, lm_kind k, const MDB_val *key, const MDB_val *v)
{
	unsigned char buf[1 + 8 + TRIM_KEY_MAX + CORRUPT_HASHED];
	size_t klen = key->mv_size < TRIM_KEY_MAX ? key->mv_size : TRIM_KEY_MAX;
	size_t n = v->mv_size < CORRUPT_HASHED ? v->mv_size : CORRUPT_HASHED;
	uint64_t h;

	buf[0] = (unsigned char) k;
	lm_lmdb_put_be64(buf + 1, (uint64_t) v->mv_size);
	memcpy(buf + 9, key->mv_data, klen);
	memcpy(buf + 9 + klen, v->mv_data, n);
	h = lm_hash_bytes(buf, 9 + klen + n) | 1; /* 0 is an empty slot */
	return __atomic_exchange_n(
	           &s->corrupt_seen[h % CORRUPT_SEEN], h, __ATOMIC_RELAXED) != h;
}

/*
 * Decodes v, the value of record key of kind k, into r. LM_ESTORE when it
 * does not decode: logged (store.corrupt, with the kind and id) the first
 * time this handle meets that value, not at every read of it, so that a
 * damaged record that every query reads does not flood the log. A record
 * whose slot another damaged value took since is logged again.
 */
static int
decode_val(lm_store *s, lm_kind k, const MDB_val *key, const MDB_val *v, struct rec *r)
{
	const unsigned char *p = v->mv_data;
	size_t hdr = VAL_HDR;

	if (v->mv_size >= VAL_HDR && (p[1] & VAL_POS) != 0)
		hdr += VAL_POS_LEN;
	if (v->mv_size < hdr || p[0] != VAL_MAGIC ||
	    (p[1] & ~(VAL_TOMBSTONE | VAL_POS | VAL_UNORDERED)) != 0 ||
	    (p[1] & (VAL_TOMBSTONE | VAL_UNORDERED)) == VAL_UNORDERED) {
		if (corrupt_first(s, k, key, v))
			lm_error("store.corrupt",
			    "%s %.*s: record value with a bad header (%zu bytes)",
			    lm_kind_name(k), (int) key->mv_size,
			    (const char *) key->mv_data, v->mv_size);
		return LM_ESTORE;
	}
	r->tomb = (p[1] & VAL_TOMBSTONE) != 0;
	r->unordered = (p[1] & VAL_UNORDERED) != 0;
	r->version = lm_lmdb_get_be64(p + 2);
	r->has_pos = (p[1] & VAL_POS) != 0;
	if (r->has_pos) {
		r->pos.epoch = lm_lmdb_get_be32(p + VAL_HDR);
		r->pos.partition = (int32_t) lm_lmdb_get_be32(p + VAL_HDR + 4);
		r->pos.offset = (int64_t) lm_lmdb_get_be64(p + VAL_HDR + 8);
		/* Writes refuse these (lm_store_put_at), and readers index
		 * arrays by the partition. */
		if (r->pos.partition < 0 || r->pos.offset < 0) {
			if (corrupt_first(s, k, key, v))
				lm_error("store.corrupt",
				    "%s %.*s: record value with a bad position "
				    "(partition %" PRId32 ", offset %" PRId64 ")",
				    lm_kind_name(k), (int) key->mv_size,
				    (const char *) key->mv_data, r->pos.partition,
				    r->pos.offset);
			return LM_ESTORE;
		}
	}
	r->bytes = p + hdr;
	r->len = v->mv_size - hdr;
	return LM_OK;
}

/*
 * True when a message at pos is not newer than the change that wrote r: both
 * come from the same partition and pos does not come after r's position.
 * Positions of different partitions do not compare (false).
 */
static bool
pos_replayed(const struct rec *r, const lm_store_pos *pos)
{
	if (!r->has_pos || pos == NULL || pos->partition != r->pos.partition)
		return false;
	if (pos->epoch != r->pos.epoch)
		return pos->epoch < r->pos.epoch;
	return pos->offset <= r->pos.offset;
}

/*
 * True when a message at pos comes after the change that wrote r in one
 * partition's log of one epoch: the same epoch and partition, a later
 * offset. Positions of different partitions or epochs do not compare
 * (false).
 */
static bool
pos_follows(const struct rec *r, const lm_store_pos *pos)
{
	return r->has_pos && pos != NULL && pos->partition == r->pos.partition &&
	       pos->epoch == r->pos.epoch && pos->offset > r->pos.offset;
}

/*
 * True when r has no place in the log that pos is read from: no position
 * (written before positions were kept, or by lm_store_put over no
 * positioned value), or one of an earlier epoch, whose log is never read
 * again (in any partition: a new epoch may partition the topic anew). A
 * message of that log may come from before or after r's version there.
 */
static bool
pos_unplaced(const struct rec *r, const lm_store_pos *pos)
{
	return !r->has_pos || r->pos.epoch < pos->epoch;
}

/* ---- map locking and resizing ------------------------------------------- */

/*
 * Takes maplock shared. The lock prefers readers so that a thread may take
 * it again while it holds it (a read inside a callback, a read during the
 * write transaction); fresh readers instead wait at the gate while a resize
 * is pending, so that a stream of reads cannot starve the resize.
 */
static void
rd_enter(lm_store *s)
{
	if (rd_depth == 0 && __atomic_load_n(&s->resizing, __ATOMIC_ACQUIRE) > 0) {
		pthread_mutex_lock(&s->gate);
		while (s->resizing > 0)
			pthread_cond_wait(&s->gate_cv, &s->gate);
		pthread_mutex_unlock(&s->gate);
	}
	pthread_rwlock_rdlock(&s->maplock);
	rd_depth++;
}

static void
rd_leave(lm_store *s)
{
	rd_depth--;
	pthread_rwlock_unlock(&s->maplock);
}

/*
 * Sets the map size (0 = adopt the size recorded by another process); an
 * lm_lmdb_resize_fn with arg the lm_store. The caller holds maplock shared
 * exactly once and has no LMDB transaction open; the hold is released for
 * the resize and taken again.
 */
static int
set_mapsize(void *arg, MDB_env *env, uint64_t size)
{
	lm_store *s = arg;
	int rc;
	if (rd_depth != 1)
		return LM_EBUSY; /* inside a callback: resizing would deadlock */
	rd_leave(s);
	pthread_mutex_lock(&s->gate);
	__atomic_add_fetch(&s->resizing, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->gate);
	pthread_rwlock_wrlock(&s->maplock);
	rc = lm_lmdb_set_mapsize(env, size, "store");
	pthread_rwlock_unlock(&s->maplock);
	pthread_mutex_lock(&s->gate);
	__atomic_sub_fetch(&s->resizing, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->gate_cv);
	pthread_mutex_unlock(&s->gate);
	rd_enter(s);
	return rc;
}

/* Begins an LMDB transaction, adopting a map grown by another process. The
 * caller holds maplock shared. */
static int
begin_txn(lm_store *s, unsigned flags, MDB_txn **out)
{
	return lm_lmdb_txn_begin(s->env, flags, set_mapsize, s, "store", out);
}

/* Doubles the map, up to max_map. No transaction of this handle is open. */
static int
grow(lm_store *s)
{
	int rc = lm_lmdb_grow(s->env, s->max_map, set_mapsize, s, "store");
	if (rc == LM_OK)
		__atomic_add_fetch(&s->grows, 1, __ATOMIC_RELAXED);
	return rc;
}

/* ---- reads inside a transaction ----------------------------------------- */

/*
 * The seq a damaged change key (not 8 bytes long; only a foreign writer
 * leaves one) could stand for: the largest seq whose key could have been
 * lengthened or cut short into it (its first 8 bytes; its bytes followed by
 * 0xff). The key of every larger seq sorts after it.
 */
static uint64_t
damaged_seq(const MDB_val *k)
{
	unsigned char b[8];
	memset(b, 0xff, sizeof(b));
	memcpy(b, k->mv_data, k->mv_size < sizeof(b) ? k->mv_size : sizeof(b));
	return lm_lmdb_get_be64(b);
}

/* Logs and counts a damaged last change key standing for seq, once per
 * handle and key. */
static void
note_damaged(lm_store *s, const MDB_val *k, uint64_t seq)
{
	bool fresh;
	pthread_mutex_lock(&s->wlock);
	fresh = !s->damaged_seen || s->damaged_seq != seq;
	s->damaged_seen = true;
	s->damaged_seq = seq;
	pthread_mutex_unlock(&s->wlock);
	if (!fresh)
		return;
	__atomic_add_fetch(&s->damaged, 1, __ATOMIC_RELAXED);
	lm_error("store.corrupt",
	    "change key of %zu bytes at the end of the log: taken for seq %llu",
	    k->mv_size, (unsigned long long) seq);
}

/*
 * The seq of the change log's first (op MDB_FIRST) or last (MDB_LAST)
 * entry; 0 when the log is empty. Damaged keys (not 8 bytes) at that end are
 * passed over, except by MDB_LAST when `valid` is false: a damaged last key
 * then stands for its damaged_seq, so that the seqs handed out after it
 * stay above any seq it could hide and sort after it.
 */
static int
txn_edge_seq(lm_store *s, MDB_txn *txn, MDB_cursor_op op, bool valid, uint64_t *seq)
{
	MDB_cursor *c;
	MDB_val k, v;
	MDB_cursor_op step = op == MDB_FIRST ? MDB_NEXT : MDB_PREV;
	int rc = mdb_cursor_open(txn, s->db_changes, &c);
	if (rc != 0)
		return map_err(rc, "mdb_cursor_open");
	*seq = 0;
	rc = mdb_cursor_get(c, &k, &v, op);
	if (rc == 0 && k.mv_size != 8 && op == MDB_LAST && !valid) {
		mdb_cursor_close(c);
		*seq = damaged_seq(&k);
		note_damaged(s, &k, *seq);
		return LM_OK;
	}
	while (rc == 0 && k.mv_size != 8)
		rc = mdb_cursor_get(c, &k, &v, step);
	if (rc == 0)
		*seq = lm_lmdb_get_be64(k.mv_data);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return LM_OK;
	return map_err(rc, "mdb_cursor_get");
}

/* The seq of the change log's end: the next one is one above it. */
static int
txn_last_seq(lm_store *s, MDB_txn *txn, uint64_t *seq)
{
	return txn_edge_seq(s, txn, MDB_LAST, false, seq);
}

/* The seq up to which the change log was trimmed: one before its first
 * entry (0 when nothing was trimmed or the log is empty). */
static int
txn_low_water(lm_store *s, MDB_txn *txn, uint64_t *seq)
{
	int rc = txn_edge_seq(s, txn, MDB_FIRST, true, seq);
	if (rc == LM_OK && *seq > 0)
		(*seq)--;
	return rc;
}

/* Counts the live (slot LIVE) or tombstone (TOMB) values of kind index ki
 * in txn. Damaged keys and values count as neither, as a write that
 * replaces a damaged value takes it for absent. */
static int
txn_recount(lm_store *s, MDB_txn *txn, int ki, int slot, uint64_t *out)
{
	MDB_cursor *c;
	MDB_val key, v;
	uint64_t n = 0;
	int rc = mdb_cursor_open(txn, s->db_rec[ki], &c);
	if (rc != 0)
		return map_err(rc, "mdb_cursor_open");
	for (rc = mdb_cursor_get(c, &key, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
		struct rec r;
		if (key.mv_size == 0 || key.mv_size > LM_STORE_ID_MAX ||
		    decode_val(s, (lm_kind) (ki + 1), &key, &v, &r) != LM_OK)
			continue;
		if (r.tomb == (slot == TOMB))
			n++;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return map_err(rc, "mdb_cursor_get");
	*out = n;
	return LM_OK;
}

/*
 * Reads counter [ki][slot] in txn into *out. A stored counter that is not
 * 8 bytes long (only a foreign writer or a disk fault leaves one) is
 * recounted from the records: logged (store.corrupt) and counted in the
 * handle's damaged the first time the handle meets it, and *recounted
 * (may be NULL) is set, for a writer to store *out as it is.
 */
static int
txn_counter(lm_store *s, MDB_txn *txn, int ki, int slot, uint64_t *out, bool *recounted)
{
	const char *key = counter_keys[ki][slot];
	MDB_val k = {strlen(key), (void *) key}, v;
	unsigned bit = 1u << (ki * 2 + slot);
	int rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*out = 0;
		return LM_OK;
	}
	if (rc != 0)
		return map_err(rc, "mdb_get");
	if (v.mv_size == 8) {
		*out = lm_lmdb_get_be64(v.mv_data);
		return LM_OK;
	}
	if ((__atomic_fetch_or(&s->counters_damaged, bit, __ATOMIC_RELAXED) & bit) == 0) {
		__atomic_add_fetch(&s->damaged, 1, __ATOMIC_RELAXED);
		lm_error("store.corrupt", "counter %s of %zu bytes: recounted", key,
		    v.mv_size);
	}
	if (recounted != NULL)
		*recounted = true;
	return txn_recount(s, txn, ki, slot, out);
}

/* Looks up id; LM_ENOENT if no value at all (neither live nor tombstone). */
/* Looks record id up into r. *damaged (may be NULL) is set when the
 * error is the value's own: it was read and does not decode. */
static int
txn_lookup(lm_store *s, MDB_txn *txn, lm_kind k, const char *id, size_t idlen,
    struct rec *r, bool *damaged)
{
	MDB_val key = {idlen, (void *) id}, v;
	int rc = mdb_get(txn, s->db_rec[k - 1], &key, &v);
	if (rc == MDB_NOTFOUND)
		return LM_ENOENT;
	if (rc != 0)
		return map_err(rc, "mdb_get");
	if ((rc = decode_val(s, k, &key, &v, r)) != LM_OK && damaged != NULL)
		*damaged = true;
	return rc;
}

/* Calls fn for every live record of kind k. A record key of an impossible
 * size or a value that does not decode fails the walk with LM_ESTORE, or,
 * with damaged not NULL, is passed over, logged and counted in *damaged. */
static int
txn_foreach(lm_store *s, MDB_txn *txn, lm_kind k, lm_store_record_fn fn, void *arg,
    uint64_t *damaged)
{
	MDB_cursor *c;
	MDB_val key, v;
	char id[LM_STORE_ID_MAX + 1];
	int rc = mdb_cursor_open(txn, s->db_rec[k - 1], &c);
	if (rc != 0)
		return map_err(rc, "mdb_cursor_open");
	for (rc = mdb_cursor_get(c, &key, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
		struct rec r;
		int ret;
		if (key.mv_size == 0 || key.mv_size > LM_STORE_ID_MAX) {
			lm_error("store.corrupt", "record key of %zu bytes%s",
			    key.mv_size, damaged != NULL ? ": passed over" : "");
			if (damaged != NULL) {
				(*damaged)++;
				continue;
			}
			mdb_cursor_close(c);
			return LM_ESTORE;
		}
		if (decode_val(s, k, &key, &v, &r) != LM_OK) { /* logged */
			if (damaged != NULL) {
				lm_error("store.corrupt", "%s %.*s: passed over",
				    lm_kind_name(k), (int) key.mv_size,
				    (const char *) key.mv_data);
				(*damaged)++;
				continue;
			}
			mdb_cursor_close(c);
			return LM_ESTORE;
		}
		if (r.tomb)
			continue;
		memcpy(id, key.mv_data, key.mv_size);
		id[key.mv_size] = '\0';
		if ((ret = fn(arg, id, r.version, r.bytes, r.len)) != 0) {
			mdb_cursor_close(c);
			return ret;
		}
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? LM_OK : map_err(rc, "mdb_cursor_get");
}

/* ---- open / close ------------------------------------------------------- */

/* Gives a store without an identity one: 32 random lower-case hex digits
 * under META_ID, in the open transaction txn. A store replaced by a new
 * one (same directory, new files) gets a new identity, which is how its
 * readers tell the two apart. */
static int
ensure_id(lm_store *s, MDB_txn *txn)
{
	MDB_val k = {strlen(META_ID), (void *) META_ID}, v;
	char hex[2 * 16 + 1];
	int rc = mdb_get(txn, s->db_meta, &k, &v);

	if (rc != MDB_NOTFOUND)
		return map_err(rc, "mdb_get store.id");
	if (lm_random_hex(hex, (sizeof(hex) - 1) / 2) != LM_OK)
		return LM_EIO;
	v.mv_size = sizeof(hex) - 1;
	v.mv_data = hex;
	return map_err(mdb_put(txn, s->db_meta, &k, &v, 0), "mdb_put store.id");
}

/* Opens `readers`, which stores written before it existed lack: a
 * read-only handle then goes without (it never trims or registers). */
static int
open_readers(lm_store *s, MDB_txn *txn, bool rdonly)
{
	int rc = mdb_dbi_open(txn, "readers", rdonly ? 0 : MDB_CREATE, &s->db_readers);
	if (rc == MDB_NOTFOUND && rdonly)
		return LM_OK;
	return map_err(rc, "mdb_dbi_open readers");
}

/* Opens `marks` in a writable handle (creating it in a store written before
 * it existed); a read-only handle has no use for it. */
static int
open_marks(lm_store *s, MDB_txn *txn, bool rdonly)
{
	if (rdonly)
		return LM_OK;
	return map_err(
	    mdb_dbi_open(txn, "marks", MDB_CREATE, &s->db_marks), "mdb_dbi_open marks");
}

/*
 * Whether the environment of txn is one a store may claim: it has the
 * store's schema key (checked later), or it holds no named database but
 * the store's own (a new environment, or a store from before the key).
 * Another program's (the match outbox's, one pointed at the wrong
 * directory) is refused before anything is created in it: LM_ESCHEMA.
 */
static int
check_foreign(MDB_txn *txn, const char *const *ours, size_t nours)
{
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_dbi main;
	int rc;

	if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) != MDB_SUCCESS ||
	    (rc = mdb_cursor_open(txn, main, &cur)) != MDB_SUCCESS)
		return map_err(rc, "mdb_cursor_open");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		bool known = false;
		for (size_t i = 0; i < nours && !known; i++)
			known = k.mv_size == strlen(ours[i]) &&
			        memcmp(k.mv_data, ours[i], k.mv_size) == 0;
		if (!known) {
			lm_error("store.open",
			    "not a lunamatch store: it has no schema version and "
			    "holds the table \"%.*s\"",
			    (int) (k.mv_size < 64 ? k.mv_size : 64),
			    (const char *) k.mv_data);
			mdb_cursor_close(cur);
			return LM_ESCHEMA;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? LM_OK : map_err(rc, "mdb_cursor_get");
}

/* Whether the store's schema key is in its meta database (of txn). */
static bool
has_schema(const lm_store *s, MDB_txn *txn)
{
	MDB_val k = {strlen(META_SCHEMA), (void *) META_SCHEMA}, v;
	return mdb_get(txn, s->db_meta, &k, &v) == MDB_SUCCESS;
}

/* Opens (creating unless read-only) the databases and checks the schema. */
static int
init_dbs(lm_store *s)
{
	static const char *const tables[6] = {
	    "postings", "profiles", "changes", "meta", "readers", "marks"};
	static const char *const names[4] = {"postings", "profiles", "changes", "meta"};
	MDB_dbi *dbis[4] = {&s->db_rec[0], &s->db_rec[1], &s->db_changes, &s->db_meta};
	bool rdonly = (s->flags & LM_STORE_RDONLY) != 0;
	MDB_txn *txn = NULL;
	int rc;

	for (int attempt = 0;; attempt++) {
		if ((rc = begin_txn(s, rdonly ? MDB_RDONLY : 0, &txn)) != LM_OK)
			return rc;
		rc = lm_lmdb_dbs_open(
		    txn, names, dbis, 4, rdonly ? 0 : MDB_CREATE, "store");
		if (rc == LM_OK)
			rc = open_readers(s, txn, rdonly);
		if (rc == LM_OK && !rdonly && !has_schema(s, txn))
			rc = check_foreign(txn, tables, 6);
		if (rc == LM_OK)
			rc = open_marks(s, txn, rdonly);
		if (rc == LM_OK)
			rc = lm_lmdb_schema_check(txn, s->db_meta, META_SCHEMA,
			    LM_STORE_SCHEMA_VERSION, !rdonly, "store");
		if (rc == LM_OK && !rdonly)
			rc = ensure_id(s, txn);
		if (rc == LM_OK)
			rc = commit_txn(s, txn);
		else
			mdb_txn_abort(txn);
		if (rc == LM_EMAPFULL && attempt < 8) {
			if ((rc = grow(s)) != LM_OK)
				return rc;
			continue;
		}
		if (rc == LM_ENOENT)
			lm_error(
			    "store.open", "not a lunamatch store (no %s)", "databases");
		return rc;
	}
}

static void
destroy_locks(lm_store *s)
{
	pthread_rwlock_destroy(&s->maplock);
	pthread_mutex_destroy(&s->wlock);
	pthread_mutex_destroy(&s->gate);
	pthread_cond_destroy(&s->gate_cv);
}

static uint64_t
round_page(uint64_t n)
{
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t p = ps > 0 ? (uint64_t) ps : 4096;
	return (n + p - 1) / p * p;
}

int
lm_store_open(const char *dir, const lm_store_opts *opts, lm_store **out)
{
	lm_store *s = NULL;
	struct stat st;
	char path[LM_STORE_DIR_MAX + 16];
	lm_lmdb_env_opts env_opts = {
	    .max_dbs = STORE_MAXDBS, .max_readers = STORE_MAXREADERS, .mode = 0640};
	bool rdonly, registered = false, locks = false;
	uint64_t map;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (dir == NULL || dir[0] == '\0')
		return LM_EINVAL;
	if (strlen(dir) >= LM_STORE_DIR_MAX)
		return LM_E2BIG;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return LM_ENOMEM;
	s->flags = opts ? opts->flags : 0;
	rdonly = (s->flags & LM_STORE_RDONLY) != 0;
	map = opts && opts->map_size ? opts->map_size : LM_STORE_MAP_SIZE_DEFAULT;
	s->max_map = opts && opts->max_map_size ? opts->max_map_size
	                                        : LM_STORE_MAX_MAP_SIZE_DEFAULT;
	if ((s->flags & ~LM_STORE_RDONLY) != 0 || map > s->max_map ||
	    s->max_map > (uint64_t) SIZE_MAX / 2) {
		rc = LM_EINVAL;
		goto fail;
	}
	map = round_page(map);

	if (!rdonly && (rc = lm_lmdb_dir_make(dir, 0750, true, "store")) != LM_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (rdonly && stat(path, &st) != 0) {
		rc = errno == ENOENT || errno == ENOTDIR ? LM_ENOENT
		                                         : lm_err_from_errno(errno);
		goto fail;
	}
	if (stat(dir, &st) != 0) {
		rc = lm_err_from_errno(errno);
		goto fail;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	if ((rc = lm_lmdb_dir_claim(s->dev, s->ino)) != LM_OK)
		goto fail;
	registered = true;

	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* Reader preference: a thread may take the shared lock recursively. */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_READER_NP);
	rc = pthread_rwlock_init(&s->maplock, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (rc != 0) {
		rc = LM_ENOMEM;
		goto fail;
	}
	if (pthread_mutex_init(&s->wlock, NULL) != 0) {
		pthread_rwlock_destroy(&s->maplock);
		rc = LM_ENOMEM;
		goto fail;
	}
	if (pthread_mutex_init(&s->gate, NULL) != 0) {
		pthread_rwlock_destroy(&s->maplock);
		pthread_mutex_destroy(&s->wlock);
		rc = LM_ENOMEM;
		goto fail;
	}
	if (pthread_cond_init(&s->gate_cv, NULL) != 0) {
		pthread_rwlock_destroy(&s->maplock);
		pthread_mutex_destroy(&s->wlock);
		pthread_mutex_destroy(&s->gate);
		rc = LM_ENOMEM;
		goto fail;
	}
	locks = true;

	env_opts.map_size = map;
	env_opts.flags = MDB_NOTLS | (rdonly ? MDB_RDONLY : 0);
	if ((rc = lm_lmdb_env_open(dir, &env_opts, "store", &s->env)) != LM_OK) {
		lm_error("store.open", "cannot open the store: %s", lm_strerror(rc));
		goto fail;
	}
	/* Free reader slots of dead processes (a killed reader keeps its slot). */
	int dead = 0;
	mdb_reader_check(s->env, &dead);
	/* Never shrink below the size another process already uses: adopt the
	 * recorded size, then raise it to the configured one. */
	if ((rc = mdb_env_set_mapsize(s->env, 0)) != 0 ||
	    (lm_lmdb_map_size(s->env) < map &&
	        (rc = mdb_env_set_mapsize(s->env, (size_t) map)) != 0)) {
		rc = map_err(rc, "mdb_env_set_mapsize");
		goto fail;
	}

	rd_enter(s);
	rc = init_dbs(s);
	rd_leave(s);
	if (rc != LM_OK)
		goto fail;
	lm_info("store.open", "store open%s, map %llu bytes, max %llu bytes",
	    rdonly ? " read-only" : "", (unsigned long long) lm_lmdb_map_size(s->env),
	    (unsigned long long) s->max_map);
	*out = s;
	return LM_OK;

fail:
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (locks)
		destroy_locks(s);
	if (registered)
		lm_lmdb_dir_release(s->dev, s->ino);
	free(s);
	return rc;
}

void
lm_store_close(lm_store *s)
{
	if (s == NULL)
		return;
	mdb_env_close(s->env);
	destroy_locks(s);
	lm_lmdb_dir_release(s->dev, s->ino);
	free(s);
}

/* ---- write transactions ------------------------------------------------- */

/* Appends the change entry for (k, id, version, deleted) at t->next_seq. */
static int
append_change(lm_store_txn *t, const struct op *op, bool deleted)
{
	Lunamatch__V1__ChangeEntry e = LUNAMATCH__V1__CHANGE_ENTRY__INIT;
	unsigned char kb[8], vb[CHANGE_MAX];
	MDB_val k = {sizeof(kb), kb}, v;
	int rc;

	e.kind = (Lunamatch__V1__RecordKind) op->kind;
	e.id = (char *) op->id;
	e.version = op->version;
	e.deleted = deleted;
	e.at = op->at;
	if (lunamatch__v1__change_entry__get_packed_size(&e) > sizeof(vb))
		return LM_EINTERNAL;
	v.mv_size = lunamatch__v1__change_entry__pack(&e, vb);
	v.mv_data = vb;
	lm_lmdb_put_be64(kb, t->next_seq);
	/* MDB_APPEND also asserts that seqs only grow. */
	rc = mdb_put(t->txn, t->s->db_changes, &k, &v, MDB_APPEND);
	if (rc != 0)
		return map_err(rc, "append change");
	t->next_seq++;
	return LM_OK;
}

/*
 * Writes a record value (live with bytes, or a tombstone) of op's kind and
 * id. The value records op's source position when it has one, else keeps the
 * position of the value it replaces (old, when not NULL): a deletion compares
 * against the position of the last positioned change. flags: 0 for a live
 * value, VAL_TOMBSTONE for a tombstone, with VAL_UNORDERED when it may come
 * from before the version it takes. A tombstone's payload is the time of
 * op, from which lm_store_trim ages it.
 */
static int
write_val(lm_store_txn *t, const struct op *op, const struct rec *old, unsigned flags,
    uint64_t version, const void *bytes, size_t len)
{
	bool tomb = (flags & VAL_TOMBSTONE) != 0;
	const lm_store_pos *pos = op->has_pos                   ? &op->pos
	                          : old != NULL && old->has_pos ? &old->pos
	                                                        : NULL;
	unsigned char when[VAL_TOMB_TIME];
	if (tomb) {
		lm_lmdb_put_be64(when, (uint64_t) op->at);
		bytes = when;
		len = sizeof(when);
	}
	size_t hdr = VAL_HDR + (pos != NULL ? VAL_POS_LEN : 0);
	MDB_val key = {op->idlen, (void *) op->id}, v = {hdr + len, NULL};
	int rc = mdb_put(t->txn, t->s->db_rec[op->kind - 1], &key, &v, MDB_RESERVE);
	if (rc != 0)
		return map_err(rc, "mdb_put");
	unsigned char *p = v.mv_data;
	p[0] = VAL_MAGIC;
	p[1] = (unsigned char) (flags | (pos != NULL ? VAL_POS : 0));
	lm_lmdb_put_be64(p + 2, version);
	if (pos != NULL) {
		lm_lmdb_put_be32(p + VAL_HDR, pos->epoch);
		lm_lmdb_put_be32(p + VAL_HDR + 4, (uint32_t) pos->partition);
		lm_lmdb_put_be64(p + VAL_HDR + 8, (uint64_t) pos->offset);
	}
	if (len > 0)
		memcpy(p + hdr, bytes, len);
	return LM_OK;
}

/*
 * Runs one operation in t->txn. Returns LM_OK, LM_ESTALE, LM_ENOENT or an
 * error; *wrote tells whether the database changed (so the op must be
 * replayed after a growth). LM_EMAPFULL leaves the LMDB txn unusable.
 */
static int
run_op(lm_store_txn *t, const struct op *op, bool *wrote)
{
	struct rec r;
	int rc, ki = (int) op->kind - 1;

	*wrote = false;
	if (op->type == OP_META || op->type == OP_READER) {
		MDB_val k = {op->idlen, (void *) op->id},
		        v = {op->len, (void *) op->data};
		rc = mdb_put(t->txn,
		    op->type == OP_META ? t->s->db_meta : t->s->db_readers, &k, &v, 0);
		if (rc != 0)
			return map_err(rc, "mdb_put");
		*wrote = true;
		return LM_OK;
	}
	if (op->type == OP_MARK) {
		unsigned char key[1 + LM_STORE_ID_MAX];
		MDB_val k = {1 + op->idlen, key}, v = {0, NULL};
		key[0] = (unsigned char) op->kind;
		memcpy(key + 1, op->id, op->idlen);
		if ((rc = mdb_put(t->txn, t->s->db_marks, &k, &v, 0)) != 0)
			return map_err(rc, "mdb_put mark");
		*wrote = true;
		return LM_OK;
	}
	if (op->type == OP_UNMARK_ALL) {
		if ((rc = mdb_drop(t->txn, t->s->db_marks, 0)) != 0)
			return map_err(rc, "mdb_drop marks");
		*wrote = true;
		return LM_OK;
	}
	if (op->type == OP_UNREADER) {
		MDB_val k = {op->idlen, (void *) op->id};
		rc = mdb_del(t->txn, t->s->db_readers, &k, NULL);
		if (rc == MDB_NOTFOUND)
			return LM_ENOENT;
		if (rc != 0)
			return map_err(rc, "mdb_del");
		*wrote = true;
		return LM_OK;
	}
	bool damaged = false;
	rc = txn_lookup(t->s, t->txn, op->kind, op->id, op->idlen, &r, &damaged);
	if (rc != LM_OK && damaged) {
		/* The value does not decode (store.corrupt logged): the write
		 * replaces it, as it would an absent one, rather than fail every
		 * transaction that holds the record for good. Whether it counted
		 * as live or as a tombstone is unknown: the counts take it for
		 * absent. */
		lm_error("store.corrupt", "%s %.*s: damaged value replaced by a %s",
		    lm_kind_name(op->kind), (int) op->idlen, op->id,
		    op->type == OP_PUT ? "new version" : "tombstone");
		t->replaced++;
		t->recount[ki] = true; /* flush_counters */
		rc = LM_ENOENT;
	}
	if (rc != LM_OK && rc != LM_ENOENT)
		return rc;
	bool exists = rc == LM_OK;

	if (op->type == OP_PUT) {
		/* A tombstone that may be older than the version it took (see
		 * below) gives way to a put of that version that follows it in
		 * its partition's log, or comes from a later epoch's (the put
		 * the log holds after the deletion restores the record; one
		 * before it, the deletion read again orders after it). */
		if (exists && op->version <= r.version &&
		    !(r.tomb && r.unordered && op->version == r.version && op->has_pos &&
		        (pos_follows(&r, &op->pos) || pos_unplaced(&r, &op->pos))))
			return LM_ESTALE;
		rc = write_val(
		    t, op, exists ? &r : NULL, 0, op->version, op->data, op->len);
		if (rc != LM_OK)
			return rc;
		*wrote = true;
		if (!exists) {
			t->delta[ki][LIVE]++;
		} else if (r.tomb) {
			t->delta[ki][TOMB]--;
			t->delta[ki][LIVE]++;
		}
		return append_change(t, op, false);
	}

	/* OP_DEL */
	if (damaged) {
		/* Followers drop the record: the change is logged as a
		 * deletion. The damaged version is unknown: a versionless
		 * deletion's tombstone takes version 1, as every record has
		 * one, and fences that much. */
		struct op logged = *op;
		logged.version = op->version != 0 ? op->version : 1;
		if ((rc = write_val(
		         t, op, NULL, VAL_TOMBSTONE, logged.version, NULL, 0)) != LM_OK)
			return rc;
		*wrote = true;
		t->delta[ki][TOMB]++;
		return append_change(t, &logged, true);
	}
	if (!exists || r.tomb) {
		/* Absent: raise (or create) the tombstone fence if asked to. A
		 * deletion of the version a tombstone took orders it: no put of
		 * that version gets past it any more. */
		if (exists && r.tomb && r.unordered && op->version != 0 &&
		    op->version == r.version) {
			rc = write_val(t, op, &r, VAL_TOMBSTONE, r.version, NULL, 0);
			if (rc != LM_OK)
				return rc;
			*wrote = true;
			return LM_ENOENT;
		}
		if (op->version == 0 || (exists && op->version <= r.version))
			return LM_ENOENT;
		rc = write_val(
		    t, op, exists ? &r : NULL, VAL_TOMBSTONE, op->version, NULL, 0);
		if (rc != LM_OK)
			return rc;
		*wrote = true;
		if (!exists)
			t->delta[ki][TOMB]++;
		return LM_ENOENT;
	}
	if (op->version != 0 && op->version < r.version)
		return LM_ESTALE;
	/* A versionless deletion is ordered by its position: one that comes
	 * from before the change that wrote the live version is a replay. */
	if (op->version == 0 && pos_replayed(&r, op->has_pos ? &op->pos : NULL))
		return LM_ESTALE;
	uint64_t tv = op->version > r.version ? op->version : r.version;
	/* A versionless deletion read from a log the live version has no
	 * place in (pos_unplaced: a store from before positions, a new
	 * epoch) may be older than the version it takes: its tombstone says
	 * so (VAL_UNORDERED). One from another partition of the live
	 * version's epoch, or without a position, stays a fence. */
	bool unordered = op->version == 0 && op->has_pos && pos_unplaced(&r, &op->pos);
	rc = write_val(
	    t, op, &r, VAL_TOMBSTONE | (unordered ? VAL_UNORDERED : 0), tv, NULL, 0);
	if (rc != LM_OK)
		return rc;
	*wrote = true;
	t->delta[ki][LIVE]--;
	t->delta[ki][TOMB]++;
	struct op logged = *op;
	logged.version = tv;
	return append_change(t, &logged, true);
}

/* Starts t->txn afresh and resets the per-txn state to the committed one. */
static int
restart(lm_store_txn *t)
{
	int rc;
	if ((rc = begin_txn(t->s, 0, &t->txn)) != LM_OK) {
		t->txn = NULL;
		return rc;
	}
	memset(t->delta, 0, sizeof(t->delta));
	t->replaced = 0;
	t->recount[0] = t->recount[1] = false;
	if ((rc = txn_last_seq(t->s, t->txn, &t->next_seq)) != LM_OK)
		return rc;
	if (t->next_seq == UINT64_MAX) {
		lm_error("store.corrupt", "no seq left after the change log's last");
		return LM_ESTORE;
	}
	t->next_seq++;
	return LM_OK;
}

/*
 * After MDB_MAP_FULL: aborts the LMDB txn, grows the map and re-runs every
 * logged op; repeats while the replay itself fills the map. An op whose
 * outcome differs from its first run means another writer changed the store
 * in between (LM_EBUSY).
 */
static int
grow_and_replay(lm_store_txn *t)
{
	int rc;
	for (;;) {
		if (t->txn != NULL) {
			mdb_txn_abort(t->txn);
			t->txn = NULL;
		}
		if ((rc = grow(t->s)) != LM_OK)
			return rc;
		if ((rc = restart(t)) != LM_OK)
			return rc;
		size_t i;
		for (i = 0; i < t->nops; i++) {
			bool wrote;
			rc = run_op(t, t->ops[i], &wrote);
			if (rc == LM_EMAPFULL)
				break;
			if (rc != t->ops[i]->result || !wrote) {
				lm_error("store.replay",
				    "store changed under a replayed transaction");
				return rc == LM_OK || rc == LM_ESTALE || rc == LM_ENOENT
				           ? LM_EBUSY
				           : rc;
			}
		}
		if (i == t->nops)
			return LM_OK;
	}
}

/* Makes the caller the handle's one writer (a write transaction or a trim):
 * LM_ENOTSUP on a read-only handle, LM_EBUSY when another is. */
static int
claim_writer(lm_store *s)
{
	int rc = LM_OK;
	if (s->flags & LM_STORE_RDONLY)
		return LM_ENOTSUP;
	pthread_mutex_lock(&s->wlock);
	if (s->writing)
		rc = LM_EBUSY;
	else
		s->writing = true;
	pthread_mutex_unlock(&s->wlock);
	return rc;
}

static void
release_writer(lm_store *s)
{
	pthread_mutex_lock(&s->wlock);
	s->writing = false;
	pthread_mutex_unlock(&s->wlock);
}

int
lm_store_begin(lm_store *s, lm_store_txn **out)
{
	lm_store_txn *t;
	int rc;

	if (s == NULL || out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return LM_ENOMEM;
	if ((rc = claim_writer(s)) != LM_OK) {
		free(t);
		return rc;
	}
	t->s = s;
	rd_enter(s);
	if ((rc = restart(t)) != LM_OK) {
		lm_store_abort(t);
		return rc;
	}
	*out = t;
	return LM_OK;
}

/* Builds an op with private copies of id and data. */
static struct op *
op_new(enum op_type type, lm_kind k, const char *id, size_t idlen, uint64_t version,
    const void *data, size_t len)
{
	struct op *op = malloc(sizeof(*op) + idlen + 1 + len);
	if (op == NULL)
		return NULL;
	char *p = (char *) (op + 1);
	memcpy(p, id, idlen);
	p[idlen] = '\0';
	if (len > 0)
		memcpy(p + idlen + 1, data, len);
	op->type = type;
	op->kind = k;
	op->version = version;
	op->at = (int64_t) time(NULL);
	op->result = LM_OK;
	op->id = p;
	op->idlen = idlen;
	op->data = p + idlen + 1;
	op->len = len;
	op->has_pos = false;
	return op;
}

/* Runs a new op (growing the map as needed), logs it if it wrote, counts
 * stale results. Takes ownership of op. */
static int
exec_op(lm_store_txn *t, struct op *op)
{
	bool wrote = false;
	int rc;

	if (t->nops == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct op **n = realloc(t->ops, cap * sizeof(*n));
		if (n == NULL) {
			free(op);
			return LM_ENOMEM; /* nothing ran; the txn stays usable */
		}
		t->ops = n;
		t->cap = cap;
	}
	for (;;) {
		rc = run_op(t, op, &wrote);
		if (rc != LM_EMAPFULL)
			break;
		if ((rc = grow_and_replay(t)) != LM_OK)
			break;
	}
	if (rc == LM_OK || rc == LM_ESTALE || rc == LM_ENOENT) {
		if (rc == LM_ESTALE)
			__atomic_add_fetch(&t->s->stale, 1, __ATOMIC_RELAXED);
		if (wrote) {
			op->result = rc;
			t->ops[t->nops++] = op;
			return rc;
		}
	} else {
		t->failed = rc;
	}
	free(op);
	return rc;
}

static int
txn_usable(const lm_store_txn *t)
{
	if (t == NULL)
		return LM_EINVAL;
	return t->failed ? t->failed : LM_OK;
}

/* Checks a source position (NULL is none). */
static bool
pos_ok(const lm_store_pos *pos)
{
	return pos == NULL || (pos->partition >= 0 && pos->offset >= 0);
}

int
lm_store_put(lm_store_txn *t, lm_kind k, const char *id, uint64_t version,
    const void *bytes, size_t len)
{
	return lm_store_put_at(t, k, id, version, bytes, len, NULL);
}

int
lm_store_put_at(lm_store_txn *t, lm_kind k, const char *id, uint64_t version,
    const void *bytes, size_t len, const lm_store_pos *pos)
{
	size_t idlen;
	int rc;
	struct op *op;

	if ((rc = txn_usable(t)) != LM_OK)
		return rc;
	if (!kind_ok(k) || version == 0 || (bytes == NULL && len > 0) || !pos_ok(pos))
		return LM_EINVAL;
	if ((rc = check_id(id, &idlen)) != LM_OK)
		return rc;
	if (len > LM_STORE_VALUE_MAX)
		return LM_E2BIG;
	if ((op = op_new(OP_PUT, k, id, idlen, version, bytes, len)) == NULL)
		return LM_ENOMEM;
	if (pos != NULL) {
		op->has_pos = true;
		op->pos = *pos;
	}
	return exec_op(t, op);
}

int
lm_store_delete(lm_store_txn *t, lm_kind k, const char *id, uint64_t version)
{
	return lm_store_delete_at(t, k, id, version, NULL);
}

int
lm_store_delete_at(
    lm_store_txn *t, lm_kind k, const char *id, uint64_t version, const lm_store_pos *pos)
{
	size_t idlen;
	int rc;
	struct op *op;

	if ((rc = txn_usable(t)) != LM_OK)
		return rc;
	if (!kind_ok(k) || !pos_ok(pos))
		return LM_EINVAL;
	if ((rc = check_id(id, &idlen)) != LM_OK)
		return rc;
	if ((op = op_new(OP_DEL, k, id, idlen, version, NULL, 0)) == NULL)
		return LM_ENOMEM;
	if (pos != NULL) {
		op->has_pos = true;
		op->pos = *pos;
	}
	return exec_op(t, op);
}

int
lm_store_meta_put(lm_store_txn *t, const char *key, const void *value, size_t len)
{
	size_t klen;
	int rc;
	struct op *op;

	if ((rc = txn_usable(t)) != LM_OK)
		return rc;
	if (key == NULL || key[0] == '\0' || (value == NULL && len > 0))
		return LM_EINVAL;
	klen = strnlen(key, LM_STORE_META_KEY_MAX + 1);
	if (klen > LM_STORE_META_KEY_MAX || len > LM_STORE_META_VALUE_MAX)
		return LM_E2BIG;
	if (strncmp(key, META_RESERVED, strlen(META_RESERVED)) == 0)
		return LM_EINVAL;
	if ((op = op_new(OP_META, LM_KIND_POSTING, key, klen, 0, value, len)) == NULL)
		return LM_ENOMEM;
	return exec_op(t, op);
}

int
lm_store_mark(lm_store_txn *t, lm_kind k, const char *id)
{
	size_t idlen;
	int rc;
	struct op *op;

	if ((rc = txn_usable(t)) != LM_OK)
		return rc;
	if (!kind_ok(k))
		return LM_EINVAL;
	if ((rc = check_id(id, &idlen)) != LM_OK)
		return rc;
	if ((op = op_new(OP_MARK, k, id, idlen, 0, NULL, 0)) == NULL)
		return LM_ENOMEM;
	return exec_op(t, op);
}

int
lm_store_marks_clear(lm_store_txn *t)
{
	int rc;
	struct op *op;

	if ((rc = txn_usable(t)) != LM_OK)
		return rc;
	if ((op = op_new(OP_UNMARK_ALL, LM_KIND_POSTING, "", 0, 0, NULL, 0)) == NULL)
		return LM_ENOMEM;
	return exec_op(t, op);
}

/* Runs op (ownership taken) in a write transaction of its own. */
static int
exec_alone(lm_store *s, struct op *op)
{
	lm_store_txn *t;
	int rc;
	if ((rc = lm_store_begin(s, &t)) != LM_OK) {
		free(op);
		return rc;
	}
	if ((rc = exec_op(t, op)) != LM_OK) {
		lm_store_abort(t);
		return rc;
	}
	return lm_store_commit(t, NULL);
}

/* Validates a reader name and builds its op (data: the reader's value). */
static int
reader_op(lm_store *s, enum op_type type, const char *reader, const void *data,
    size_t len, struct op **out)
{
	size_t n;
	int rc;
	if (s == NULL)
		return LM_EINVAL;
	if (s->flags & LM_STORE_RDONLY)
		return LM_ENOTSUP;
	if ((rc = check_id(reader, &n)) != LM_OK)
		return rc;
	if ((*out = op_new(type, LM_KIND_POSTING, reader, n, 0, data, len)) == NULL)
		return LM_ENOMEM;
	return LM_OK;
}

int
lm_store_reader_set(lm_store *s, const char *reader, uint64_t seq, int64_t at)
{
	unsigned char v[READER_VAL];
	struct op *op;
	int rc;

	if (at < 0)
		return LM_EINVAL;
	lm_lmdb_put_be64(v, seq);
	lm_lmdb_put_be64(v + 8, (uint64_t) (at != 0 ? at : (int64_t) time(NULL)));
	if ((rc = reader_op(s, OP_READER, reader, v, sizeof(v), &op)) != LM_OK)
		return rc;
	return exec_alone(s, op);
}

int
lm_store_reader_remove(lm_store *s, const char *reader)
{
	struct op *op;
	int rc;
	if ((rc = reader_op(s, OP_UNREADER, reader, NULL, 0, &op)) != LM_OK)
		return rc;
	return exec_alone(s, op);
}

/* Adds this txn's counter deltas to the stored counters, and stores the
 * recount of any damaged one. */
static int
flush_counters(lm_store_txn *t)
{
	for (int ki = 0; ki < 2; ki++) {
		for (int c = 0; c < 2; c++) {
			uint64_t cur;
			unsigned char b[8];
			bool recounted = false;
			int rc;
			const char *key = counter_keys[ki][c];
			/* Every counter is read, so that the first write after a
			 * counter was damaged stores its recount, whether or not it
			 * changes it (else every stats call would recount it). */
			if ((rc = txn_counter(t->s, t->txn, ki, c, &cur, &recounted)) !=
			    LM_OK)
				return rc;
			/* A damaged value this txn replaced counted as live or as
			 * a tombstone, which is unknown: its kind is recounted,
			 * so that the counters stay exact. */
			if (t->recount[ki] && !recounted) {
				if ((rc = txn_recount(t->s, t->txn, ki, c, &cur)) !=
				    LM_OK)
					return rc;
				recounted = true;
			}
			if (t->delta[ki][c] == 0 && !recounted)
				continue;
			/* A recount already counts this txn's records. */
			if (!recounted)
				cur = (uint64_t) ((int64_t) cur + t->delta[ki][c]);
			lm_lmdb_put_be64(b, cur);
			MDB_val k = {strlen(key), (void *) key}, v = {8, b};
			rc = mdb_put(t->txn, t->s->db_meta, &k, &v, 0);
			if (rc != 0)
				return map_err(rc, "mdb_put");
		}
	}
	return LM_OK;
}

static void
txn_free(lm_store_txn *t)
{
	lm_store *s = t->s;
	for (size_t i = 0; i < t->nops; i++)
		free(t->ops[i]);
	free(t->ops);
	rd_leave(s);
	release_writer(s);
	free(t);
}

int
lm_store_commit(lm_store_txn *t, uint64_t *last_seq)
{
	int rc;

	if (t == NULL)
		return LM_EINVAL;
	if (t->failed) {
		rc = t->failed;
		lm_store_abort(t);
		return rc;
	}
	for (;;) {
		rc = flush_counters(t);
		if (rc == LM_OK) {
			rc = commit_txn(t->s, t->txn);
			t->txn = NULL; /* freed by LMDB, also on error */
		}
		if (rc != LM_EMAPFULL)
			break;
		if ((rc = grow_and_replay(t)) != LM_OK)
			break;
	}
	if (rc == LM_OK && last_seq != NULL)
		*last_seq = t->next_seq - 1;
	if (rc == LM_OK && t->replaced > 0)
		__atomic_add_fetch(&t->s->damaged, t->replaced, __ATOMIC_RELAXED);
	if (t->txn != NULL)
		mdb_txn_abort(t->txn);
	txn_free(t);
	return rc;
}

void
lm_store_abort(lm_store_txn *t)
{
	if (t == NULL)
		return;
	if (t->txn != NULL)
		mdb_txn_abort(t->txn);
	txn_free(t);
}

/* ---- reads -------------------------------------------------------------- */

/* Opens a read transaction; on LM_OK the caller ends it with read_end. */
static int
read_begin(lm_store *s, MDB_txn **txn)
{
	int rc;
	if (s == NULL)
		return LM_EINVAL;
	rd_enter(s);
	if ((rc = begin_txn(s, MDB_RDONLY, txn)) != LM_OK)
		rd_leave(s);
	return rc;
}

static void
read_end(lm_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	rd_leave(s);
}

/* What lm_store_get asked for, filled by get_copy. */
struct get_out {
	void **bytes;
	size_t *len;
	uint64_t *version;
};

static int
get_copy(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct get_out *o = arg;

	(void) id;
	if (o->bytes != NULL) {
		void *copy = malloc(len ? len : 1);
		if (copy == NULL)
			return LM_ENOMEM;
		if (len > 0)
			memcpy(copy, bytes, len);
		*o->bytes = copy;
	}
	if (o->len != NULL)
		*o->len = len;
	if (o->version != NULL)
		*o->version = version;
	return LM_OK;
}

int
lm_store_get(
    lm_store *s, lm_kind k, const char *id, void **bytes, size_t *len, uint64_t *version)
{
	struct get_out o = {bytes, len, version};

	return lm_store_read(s, k, id, get_copy, &o);
}

int
lm_store_read(lm_store *s, lm_kind k, const char *id, lm_store_record_fn fn, void *arg)
{
	return lm_store_read_checked(s, k, id, fn, arg, NULL);
}

int
lm_store_read_checked(lm_store *s, lm_kind k, const char *id, lm_store_record_fn fn,
    void *arg, bool *damaged)
{
	MDB_txn *txn;
	struct rec r;
	size_t idlen;
	int rc;

	if (damaged != NULL)
		*damaged = false;
	if (!kind_ok(k) || fn == NULL)
		return LM_EINVAL;
	if ((rc = check_id(id, &idlen)) != LM_OK)
		return rc;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	rc = txn_lookup(s, txn, k, id, idlen, &r, damaged);
	if (rc == LM_OK && r.tomb)
		rc = LM_ENOENT;
	if (rc == LM_OK)
		rc = fn(arg, id, r.version, r.bytes, r.len);
	read_end(s, txn);
	return rc;
}

int
lm_store_get_pos(lm_store *s, lm_kind k, const char *id, uint64_t *version,
    lm_store_pos *pos, bool *has_pos)
{
	return lm_store_get_pos_checked(s, k, id, version, pos, has_pos, NULL);
}

int
lm_store_get_pos_checked(lm_store *s, lm_kind k, const char *id, uint64_t *version,
    lm_store_pos *pos, bool *has_pos, bool *damaged)
{
	MDB_txn *txn;
	struct rec r;
	size_t idlen;
	int rc;

	if (damaged != NULL)
		*damaged = false;
	if (!kind_ok(k) || pos == NULL || has_pos == NULL)
		return LM_EINVAL;
	if ((rc = check_id(id, &idlen)) != LM_OK)
		return rc;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	rc = txn_lookup(s, txn, k, id, idlen, &r, damaged);
	if (rc == LM_OK && r.tomb)
		rc = LM_ENOENT;
	if (rc == LM_OK) {
		if (version != NULL)
			*version = r.version;
		*has_pos = r.has_pos;
		if (r.has_pos)
			*pos = r.pos;
	}
	read_end(s, txn);
	return rc;
}

int
lm_store_meta_get(lm_store *s, const char *key, void **value, size_t *len)
{
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (key == NULL || key[0] == '\0' || value == NULL)
		return LM_EINVAL;
	k.mv_size = strnlen(key, LM_STORE_META_KEY_MAX + 1);
	k.mv_data = (void *) key;
	if (k.mv_size > LM_STORE_META_KEY_MAX)
		return LM_E2BIG;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc == 0) {
		char *copy = malloc(v.mv_size + 1);
		if (copy == NULL) {
			rc = LM_ENOMEM;
		} else {
			memcpy(copy, v.mv_data, v.mv_size);
			copy[v.mv_size] = '\0';
			*value = copy;
			if (len != NULL)
				*len = v.mv_size;
		}
	} else {
		rc = map_err(rc, "mdb_get");
	}
	read_end(s, txn);
	return rc;
}

int
lm_store_foreach(lm_store *s, lm_kind k, lm_store_record_fn fn, void *arg)
{
	MDB_txn *txn;
	int rc;
	if (!kind_ok(k) || fn == NULL)
		return LM_EINVAL;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	rc = txn_foreach(s, txn, k, fn, arg, NULL);
	read_end(s, txn);
	return rc;
}

int
lm_store_foreach_unmarked(lm_store *s, lm_kind k, const char *after, size_t max,
    lm_store_record_fn fn, void *arg, char *next, bool *end)
{
	unsigned char mkey[1 + LM_STORE_ID_MAX];
	size_t alen = after != NULL ? strnlen(after, LM_STORE_ID_MAX + 1) : 0;
	MDB_cursor *c = NULL;
	MDB_txn *txn;
	MDB_val key = {alen, (void *) after}, v, mv;
	MDB_cursor_op op = alen > 0 ? MDB_SET_RANGE : MDB_FIRST;
	size_t n = 0;
	int rc;

	if (s == NULL || !kind_ok(k) || max == 0 || fn == NULL || next == NULL ||
	    end == NULL)
		return LM_EINVAL;
	if (alen > LM_STORE_ID_MAX)
		return LM_E2BIG;
	if (s->flags & LM_STORE_RDONLY)
		return LM_ENOTSUP;
	next[0] = '\0';
	*end = false;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	if ((rc = mdb_cursor_open(txn, s->db_rec[k - 1], &c)) != 0) {
		rc = map_err(rc, "mdb_cursor_open");
		goto out;
	}
	rc = mdb_cursor_get(c, &key, &v, op);
	/* MDB_SET_RANGE lands on `after` itself when it is stored. */
	if (rc == 0 && alen > 0 && key.mv_size == alen &&
	    memcmp(key.mv_data, after, alen) == 0)
		rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
	/* The cursor stays on the last record examined: the walk has reached
	 * the kind's end only when no record follows it. */
	while (rc == 0) {
		struct rec r;
		MDB_val found;
		int ret;
		/* A key of an impossible size cannot be gone on from: passed
		 * over without counting, so that every call makes progress. */
		if (key.mv_size == 0 || key.mv_size > LM_STORE_ID_MAX) {
			lm_error("store.corrupt", "record key of %zu bytes: passed over",
			    key.mv_size);
			rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
			continue;
		}
		n++;
		memcpy(next, key.mv_data, key.mv_size);
		next[key.mv_size] = '\0';
		/* A damaged value is logged by decode_val. */
		if (decode_val(s, k, &key, &v, &r) == LM_OK && !r.tomb) {
			mkey[0] = (unsigned char) k;
			memcpy(mkey + 1, key.mv_data, key.mv_size);
			mv = (MDB_val){1 + key.mv_size, mkey};
			rc = mdb_get(txn, s->db_marks, &mv, &found);
			if (rc != 0 && rc != MDB_NOTFOUND) {
				rc = map_err(rc, "mdb_get mark");
				goto out;
			}
			if (rc == MDB_NOTFOUND &&
			    (ret = fn(arg, next, r.version, r.bytes, r.len)) != 0) {
				rc = ret;
				goto out;
			}
			rc = 0;
		}
		if (n == max)
			break;
		rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND) {
		next[0] = '\0';
		*end = true;
		rc = LM_OK;
	} else {
		rc = map_err(rc, "mdb_cursor_get");
	}
out:
	if (c != NULL)
		mdb_cursor_close(c);
	read_end(s, txn);
	return rc;
}

/* lm_store_snapshot; damaged as for txn_foreach. */
static int
snapshot(lm_store *s, lm_store_record_fn postings_fn, lm_store_record_fn profiles_fn,
    void *arg, uint64_t *seq, uint64_t *damaged)
{
	MDB_txn *txn;
	uint64_t last;
	int rc;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	rc = txn_last_seq(s, txn, &last);
	if (rc == LM_OK && seq != NULL)
		*seq = last;
	if (rc == LM_OK && postings_fn != NULL)
		rc = txn_foreach(s, txn, LM_KIND_POSTING, postings_fn, arg, damaged);
	if (rc == LM_OK && profiles_fn != NULL)
		rc = txn_foreach(s, txn, LM_KIND_PROFILE, profiles_fn, arg, damaged);
	read_end(s, txn);
	return rc;
}

int
lm_store_snapshot(lm_store *s, lm_store_record_fn postings_fn,
    lm_store_record_fn profiles_fn, void *arg, uint64_t *seq)
{
	return snapshot(s, postings_fn, profiles_fn, arg, seq, NULL);
}

int
lm_store_snapshot_checked(lm_store *s, lm_store_record_fn postings_fn,
    lm_store_record_fn profiles_fn, void *arg, uint64_t *seq, uint64_t *damaged)
{
	uint64_t n = 0;
	int rc = snapshot(s, postings_fn, profiles_fn, arg, seq, &n);
	if (damaged != NULL)
		*damaged = n;
	return rc;
}

int
lm_store_changes(lm_store *s, uint64_t after_seq, size_t max, lm_store_change_fn fn,
    void *arg, uint64_t *last_seq_seen)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char kb[8];
	size_t n = 0;
	int bad = LM_OK; /* LM_EPARSE: a corrupt entry; LM_ENOMEM */
	int rc;

	if (last_seq_seen != NULL)
		*last_seq_seen = after_seq;
	if (fn == NULL || max == 0)
		return LM_EINVAL;
	if (after_seq == UINT64_MAX)
		return LM_OK;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	if ((rc = mdb_cursor_open(txn, s->db_changes, &c)) != 0) {
		read_end(s, txn);
		return map_err(rc, "mdb_cursor_open");
	}
	/* Seqs have no gaps: a first entry beyond after_seq + 1 means that
	 * entries this reader has not seen were trimmed. Damaged keys before
	 * it (the trim removes them) do not hide that. */
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && k.mv_size != 8;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		;
	if (rc == 0 && lm_lmdb_get_be64(k.mv_data) > after_seq + 1) {
		mdb_cursor_close(c);
		read_end(s, txn);
		return LM_EGONE;
	}
	lm_lmdb_put_be64(kb, after_seq + 1);
	k.mv_size = sizeof(kb);
	k.mv_data = kb;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && n < max;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), n++) {
		ProtobufCMessage *m = NULL;
		uint64_t seq;
		int ret;
		char why[128] = "";
		if (k.mv_size != 8 ||
		    (bad = lm_pb_decode(&lunamatch__v1__change_entry__descriptor,
		         v.mv_data, v.mv_size, CHANGE_MAX, &m, why, sizeof(why))) !=
		        LM_OK) {
			/* Out of memory is of the moment: the reader tries
			 * again; a corrupt entry is there for good. */
			if (bad != LM_ENOMEM) {
				lm_error("store.corrupt", "unreadable change entry%s%s",
				    why[0] != '\0' ? ": " : "", why);
				bad = LM_EPARSE;
			}
			break;
		}
		seq = lm_lmdb_get_be64(k.mv_data);
		ret = fn(arg, seq, (const Lunamatch__V1__ChangeEntry *) m);
		protobuf_c_message_free_unpacked(m, NULL);
		if (ret != 0) {
			mdb_cursor_close(c);
			read_end(s, txn);
			return ret;
		}
		if (last_seq_seen != NULL)
			*last_seq_seen = seq;
	}
	mdb_cursor_close(c);
	read_end(s, txn);
	if (bad != LM_OK)
		return bad;
	return rc == 0 || rc == MDB_NOTFOUND ? LM_OK : map_err(rc, "mdb_cursor_get");
}

int
lm_store_last_seq(lm_store *s, uint64_t *seq)
{
	MDB_txn *txn;
	int rc;
	if (seq == NULL)
		return LM_EINVAL;
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	rc = txn_last_seq(s, txn, seq);
	read_end(s, txn);
	return rc;
}

int
lm_store_stats(lm_store *s, struct lm_store_stats *st)
{
	MDB_txn *txn;
	MDB_stat ms;
	MDB_envinfo info;
	uint64_t v[2][2];
	int rc;

	if (st == NULL)
		return LM_EINVAL;
	memset(st, 0, sizeof(*st));
	if ((rc = read_begin(s, &txn)) != LM_OK)
		return rc;
	for (int ki = 0; ki < 2 && rc == LM_OK; ki++)
		for (int c = 0; c < 2 && rc == LM_OK; c++)
			rc = txn_counter(s, txn, ki, c, &v[ki][c], NULL);
	if (rc == LM_OK)
		rc = txn_last_seq(s, txn, &st->last_seq);
	if (rc == LM_OK)
		rc = txn_low_water(s, txn, &st->low_water);
	if (rc == LM_OK && !(s->flags & LM_STORE_RDONLY) &&
	    (rc = map_err(mdb_stat(txn, s->db_marks, &ms), "mdb_stat")) == LM_OK)
		st->marks = ms.ms_entries;
	if (rc == LM_OK)
		rc = map_err(mdb_stat(txn, s->db_changes, &ms), "mdb_stat");
	if (rc == LM_OK) {
		st->postings = v[0][LIVE];
		st->profiles = v[1][LIVE];
		st->tombstones = v[0][TOMB] + v[1][TOMB];
		st->changes = ms.ms_entries;
		mdb_env_info(s->env, &info);
		st->map_size = info.me_mapsize;
		mdb_env_stat(s->env, &ms);
		st->map_used = ((uint64_t) info.me_last_pgno + 1) * ms.ms_psize;
	}
	read_end(s, txn);
	st->stale_skipped = __atomic_load_n(&s->stale, __ATOMIC_RELAXED);
	st->map_grows = __atomic_load_n(&s->grows, __ATOMIC_RELAXED);
	st->damaged = __atomic_load_n(&s->damaged, __ATOMIC_RELAXED);
	return rc;
}

/* ---- trimming ------------------------------------------------------------ */

/* One lm_store_trim call. */
struct trim {
	lm_store *s;
	MDB_txn *txn;
	int64_t now, lease, retention;
	size_t max;
	int kind;                        /* the scan's place, committed to s */
	unsigned char key[TRIM_KEY_MAX]; /* on success */
	size_t keylen;
	int64_t tomb_delta[2]; /* tombstone counters */
	lm_store_trim_result r;
};

/* Forgets the readers silent for longer than the lease; *min is the lowest
 * seq of the others (UINT64_MAX when there is none). */
static int
trim_readers(struct trim *tr, uint64_t *min)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(tr->txn, tr->s->db_readers, &c);

	*min = UINT64_MAX;
	if (rc != 0)
		return map_err(rc, "mdb_cursor_open");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (v.mv_size != READER_VAL || k.mv_size > LM_STORE_READER_ID_MAX) {
			/* It can never be read: removed, or every trim would fail
			 * on it and the change log would grow for good. */
			lm_error("store.corrupt", "reader record of %zu bytes: removed",
			    v.mv_size);
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			tr->r.damaged++;
			continue;
		}
		uint64_t seq = lm_lmdb_get_be64(v.mv_data);
		int64_t at = (int64_t) lm_lmdb_get_be64((unsigned char *) v.mv_data + 8);
		/* now >= 0; a negative time (never written by
		 * lm_store_reader_set) is long past. */
		if (at < 0 || tr->now - at > tr->lease) {
			lm_warn("store.reader",
			    "reader %.*s silent for %lld s (lease %lld s) at seq %llu: "
			    "forgotten",
			    (int) k.mv_size, (const char *) k.mv_data,
			    (long long) (at < 0 ? tr->now : tr->now - at),
			    (long long) tr->lease, (unsigned long long) seq);
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			tr->r.readers_expired++;
			continue;
		}
		tr->r.readers++;
		if (seq < *min)
			*min = seq;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? LM_OK : map_err(rc, "readers");
}

/* Removes up to max of the oldest change entries with seq <= min, never the
 * newest entry. */
static int
trim_changes(struct trim *tr, uint64_t min)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t last, limit;
	int rc;

	/* The newest valid entry: a damaged key after it is kept too. */
	if ((rc = txn_edge_seq(tr->s, tr->txn, MDB_LAST, true, &last)) != LM_OK ||
	    last <= 1)
		return rc;
	limit = min < last - 1 ? min : last - 1;
	if ((rc = mdb_cursor_open(tr->txn, tr->s->db_changes, &c)) != 0)
		return map_err(rc, "mdb_cursor_open");
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size != 8) {
			/* Not a seq: it would hold the trim here for good. */
			lm_error("store.corrupt", "change key of %zu bytes: removed",
			    k.mv_size);
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			tr->r.damaged++;
			continue;
		}
		if (lm_lmdb_get_be64(k.mv_data) > limit)
			break;
		if (tr->r.changes_trimmed == tr->max) {
			tr->r.more = true;
			break;
		}
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		tr->r.changes_trimmed++;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? LM_OK : map_err(rc, "trim changes");
}

/* Gives the tombstone of key (value r) the time of this call: a tombstone
 * written before tombstones carried their time ages from now on. */
static int
stamp_tombstone(struct trim *tr, MDB_dbi dbi, MDB_val *key, const struct rec *r)
{
	unsigned char buf[VAL_HDR + VAL_POS_LEN + VAL_TOMB_TIME];
	size_t hdr = VAL_HDR + (r->has_pos ? VAL_POS_LEN : 0);
	MDB_val v = {hdr + VAL_TOMB_TIME, buf};
	char id[LM_STORE_ID_MAX];
	MDB_val k = {key->mv_size, id};

	memcpy(id, key->mv_data, key->mv_size);
	memcpy(buf, (const unsigned char *) r->bytes - hdr, hdr);
	lm_lmdb_put_be64(buf + hdr, (uint64_t) tr->now);
	return map_err(mdb_put(tr->txn, dbi, &k, &v, 0), "stamp tombstone");
}

/*
 * Examines up to max record values from the scan's place on, kind by kind,
 * and removes the tombstones older than the retention. The scan starts over
 * once it has passed the last profile.
 */
static int
trim_tombstones(struct trim *tr)
{
	size_t examined = 0;
	bool bounded = false;

	while (tr->kind < 2) {
		MDB_dbi dbi = tr->s->db_rec[tr->kind];
		MDB_cursor *c;
		MDB_val k, v;
		size_t idlen = tr->keylen;
		int rc = LM_OK, mrc; /* lm_err, LMDB result of the cursor */

		if ((mrc = mdb_cursor_open(tr->txn, dbi, &c)) != 0)
			return map_err(mrc, "mdb_cursor_open");
		k.mv_size = idlen;
		k.mv_data = tr->key;
		mrc = mdb_cursor_get(c, &k, &v, idlen == 0 ? MDB_FIRST : MDB_SET_RANGE);
		if (mrc == 0 && idlen > 0 && k.mv_size == idlen &&
		    memcmp(k.mv_data, tr->key, idlen) == 0)
			mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT); /* done last time */
		for (; mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			struct rec r;
			if (examined == tr->max) {
				bounded = tr->r.more = true;
				break;
			}
			examined++;
			/* The place moves past damaged keys and values too,
			 * or a run of max of them would hold the scan there
			 * for good. */
			tr->keylen =
			    k.mv_size < sizeof(tr->key) ? k.mv_size : sizeof(tr->key);
			memcpy(tr->key, k.mv_data, tr->keylen);
			if (k.mv_size == 0 || k.mv_size > LM_STORE_ID_MAX) {
				lm_error("store.corrupt",
				    "record key of %zu bytes: passed over", k.mv_size);
				tr->r.damaged++;
				continue;
			}
			if (decode_val(tr->s, (lm_kind) (tr->kind + 1), &k, &v, &r) !=
			    LM_OK) {
				/* Passed over (decode_val logged it): failing here
				 * would roll the whole trim back, the change log's
				 * part included, at every call. Reading the record
				 * still fails (docs/operations.md). */
				tr->r.damaged++;
				continue;
			}
			if (!r.tomb)
				continue;
			/* A negative time (never written by the store) ages
			 * from now on, as a missing one does. */
			if (r.len != VAL_TOMB_TIME ||
			    (int64_t) lm_lmdb_get_be64(r.bytes) < 0) {
				if ((rc = stamp_tombstone(tr, dbi, &k, &r)) != LM_OK)
					break;
				/* The write may have moved the page: find our
				 * place again. */
				k.mv_size = tr->keylen;
				k.mv_data = tr->key;
				if ((mrc = mdb_cursor_get(c, &k, &v, MDB_SET)) != 0)
					break;
				continue;
			}
			int64_t at = (int64_t) lm_lmdb_get_be64(r.bytes);
			if (tr->now - at < tr->retention)
				continue;
			if ((mrc = mdb_cursor_del(c, 0)) != 0)
				break;
			tr->tomb_delta[tr->kind]++;
			tr->r.tombstones_removed++;
		}
		mdb_cursor_close(c);
		if (rc != LM_OK)
			return rc;
		if (mrc != 0 && mrc != MDB_NOTFOUND)
			return map_err(mrc, "trim tombstones");
		if (bounded)
			return LM_OK;
		tr->kind++; /* this kind is done */
		tr->keylen = 0;
	}
	tr->kind = 0; /* a full cycle: the next call starts over */
	return LM_OK;
}

/* Subtracts the removed tombstones from the stored counters. */
static int
trim_counters(struct trim *tr)
{
	for (int ki = 0; ki < 2; ki++) {
		const char *key = counter_keys[ki][TOMB];
		unsigned char b[8];
		uint64_t cur;
		bool recounted = false;
		int rc;
		if (tr->tomb_delta[ki] == 0)
			continue;
		if ((rc = txn_counter(tr->s, tr->txn, ki, TOMB, &cur, &recounted)) !=
		    LM_OK)
			return rc;
		if (!recounted) /* a recount is after the removals */
			cur -= (uint64_t) tr->tomb_delta[ki];
		lm_lmdb_put_be64(b, cur);
		MDB_val k = {strlen(key), (void *) key}, v = {8, b};
		if ((rc = mdb_put(tr->txn, tr->s->db_meta, &k, &v, 0)) != 0)
			return map_err(rc, "mdb_put");
	}
	return LM_OK;
}

/* One attempt of lm_store_trim in a fresh write transaction. */
static int
trim_once(struct trim *tr)
{
	uint64_t min;
	int rc;

	memset(&tr->r, 0, sizeof(tr->r));
	memset(tr->tomb_delta, 0, sizeof(tr->tomb_delta));
	tr->kind = tr->s->trim_kind;
	memcpy(tr->key, tr->s->trim_key, sizeof(tr->key));
	tr->keylen = tr->s->trim_keylen;
	if ((rc = begin_txn(tr->s, 0, &tr->txn)) != LM_OK)
		return rc;
	rc = trim_readers(tr, &min);
	if (rc == LM_OK)
		rc = trim_changes(tr, min);
	if (rc == LM_OK)
		rc = trim_tombstones(tr);
	if (rc == LM_OK)
		rc = trim_counters(tr);
	if (rc == LM_OK)
		rc = txn_low_water(tr->s, tr->txn, &tr->r.low_water);
	if (rc == LM_OK)
		return commit_txn(tr->s, tr->txn);
	mdb_txn_abort(tr->txn);
	return rc;
}

int
lm_store_trim(lm_store *s, const lm_store_trim_opts *opts, lm_store_trim_result *r)
{
	struct trim tr;
	int rc;

	if (r != NULL)
		memset(r, 0, sizeof(*r));
	if (s == NULL)
		return LM_EINVAL;
	memset(&tr, 0, sizeof(tr));
	tr.s = s;
	tr.now = opts != NULL && opts->now != 0 ? opts->now : (int64_t) time(NULL);
	tr.lease = opts != NULL && opts->reader_lease_s != 0
	               ? opts->reader_lease_s
	               : LM_STORE_READER_LEASE_DEFAULT;
	tr.retention = opts != NULL && opts->tombstone_retention != 0
	                   ? opts->tombstone_retention
	                   : LM_STORE_TOMBSTONE_RETENTION_DEFAULT;
	tr.max = opts != NULL && opts->max != 0 ? opts->max : LM_STORE_TRIM_MAX_DEFAULT;
	if (tr.now < 0 || tr.lease < 0 || tr.retention < 0 || tr.max > LM_STORE_TRIM_MAX)
		return LM_EINVAL;
	if ((rc = claim_writer(s)) != LM_OK)
		return rc;
	/* A reader process killed inside a read keeps its slot in LMDB's
	 * reader table, and with it the pages of its snapshot: nothing freed
	 * since would be used again. Freed here, not only at open. */
	int dead = 0;
	if (mdb_reader_check(s->env, &dead) == MDB_SUCCESS && dead > 0)
		lm_warn("store.reader",
		    "%d reader slots of processes that died reading freed", dead);
	rd_enter(s);
	for (;;) {
		rc = trim_once(&tr);
		if (rc != LM_EMAPFULL || (rc = grow(s)) != LM_OK)
			break;
	}
	rd_leave(s);
	if (rc == LM_OK) {
		s->trim_kind = tr.kind;
		memcpy(s->trim_key, tr.key, sizeof(s->trim_key));
		s->trim_keylen = tr.keylen;
		if (r != NULL)
			*r = tr.r;
	}
	release_writer(s);
	return rc;
}

const char *
lm_kind_name(lm_kind k)
{
	switch (k) {
	case LM_KIND_POSTING:
		return "posting";
	case LM_KIND_PROFILE:
		return "profile";
	}
	return "unknown";
}
