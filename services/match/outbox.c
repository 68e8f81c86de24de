/*
 * outbox.c - the durable outbox of new-match events on LMDB; see outbox.h
 * and docs/events.md.
 *
 * Every operation is one LMDB transaction. Writes are plain functions of a
 * transaction (`struct wop`) run by run_write(): when LMDB reports that the
 * map is full, the transaction is aborted, the map doubled (up to
 * LM_OUTBOX_MAP_SIZE_MAX) and the operation run again from the start, which
 * is why write operations keep no state outside their transaction until
 * it commits. mdb_env_set_mapsize may only run while this process has no
 * transaction open on the environment: every transaction holds `maplock`
 * shared, the resize holds it exclusively.
 *
 * Value formats (all integers big-endian):
 *   pending:   serialized lunamatch.v1.OutboxEntry
 *   announced: 34 bytes: magic 'A', flags (bit 0: above), score (IEEE-754
 *              bits), candidate_version, job_version, updated_at
 *   by_job:    empty
 *   meta:      "schema" -> "1"; "cursor", "enqueued_total",
 *              "delivered_total", "failed_total" -> u64; "store_id" ->
 *              the identity of the record store the cursor refers to
 *              (1..LM_OUTBOX_STORE_ID_MAX bytes; absent in an outbox that
 *              never saw one)
 */
#include <errno.h>
#include <lmdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "outbox.h"

_Static_assert(LM_OUTBOX_ID_MAX == LM_RECORD_ID_MAX, "outbox ids are record ids");

#define OUTBOX_MAXDBS 8
#define DIR_MAX       3072 /* bytes of the outbox directory path */
#define PAIR_KEY_MAX  (2 * LM_OUTBOX_ID_MAX + 1)
#define PAIR_VAL_LEN  34
#define PAIR_MAGIC    0x41 /* 'A': announced value, format 1 */
#define PAIR_ABOVE    0x01
#define GROW_RETRIES  16 /* map doublings one write may need */

#define META_SCHEMA    "schema"
#define META_CURSOR    "cursor"
#define META_ENQUEUED  "enqueued_total"
#define META_DELIVERED "delivered_total"
#define META_FAILED    "failed_total"
#define META_STORE_ID  "store_id"

struct lm_outbox {
	MDB_env *env;
	MDB_dbi db_pending;
	MDB_dbi db_announced;
	MDB_dbi db_by_job;
	MDB_dbi db_meta;
	pthread_rwlock_t maplock; /* shared: a txn is open; exclusive: resize */
	_Atomic uint64_t map_max; /* the largest map: LM_OUTBOX_MAP_SIZE_MAX */
	dev_t dev;                /* identity of the directory (registry) */
	ino_t ino;
	int (*fault)(void *arg); /* test seam: lm_outbox_set_fault */
	void *fault_arg;
};

/* ---- helpers ------------------------------------------------------------ */

/* LMDB errors of the outbox log as "outbox.error". */
static int
map_err(int rc, const char *what)
{
	return lm_lmdb_err(rc, "outbox", what);
}

static bool
event_id_ok(const char *id)
{
	if (id == NULL)
		return false;
	for (size_t i = 0; i < LM_OUTBOX_EVENT_ID_LEN; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return id[LM_OUTBOX_EVENT_ID_LEN] == '\0';
}

/* Length of the longest prefix of s (at most max bytes) that does not end in
 * the middle of a UTF-8 sequence. */
static size_t
utf8_cut(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	return n <= max ? n : lm_pb_utf8_fit(s, max);
}

/* Builds "a\0b" into key; returns its length. Both ids are valid. */
static size_t
pair_key(const char *a, const char *b, char key[PAIR_KEY_MAX])
{
	size_t la = strlen(a), lb = strlen(b);
	memcpy(key, a, la);
	key[la] = '\0';
	memcpy(key + la + 1, b, lb);
	return la + 1 + lb;
}

struct pair_val {
	bool above;
	double score;
	uint64_t cver, jver;
	int64_t at;
};

static void
pair_encode(const struct pair_val *v, unsigned char out[PAIR_VAL_LEN])
{
	uint64_t bits;
	memcpy(&bits, &v->score, sizeof(bits));
	out[0] = PAIR_MAGIC;
	out[1] = v->above ? PAIR_ABOVE : 0;
	lm_lmdb_put_be64(out + 2, bits);
	lm_lmdb_put_be64(out + 10, v->cver);
	lm_lmdb_put_be64(out + 18, v->jver);
	lm_lmdb_put_be64(out + 26, (uint64_t) v->at);
}

static int
pair_decode(const MDB_val *mv, struct pair_val *v)
{
	const unsigned char *p = mv->mv_data;
	uint64_t bits;
	if (mv->mv_size != PAIR_VAL_LEN || p[0] != PAIR_MAGIC ||
	    (p[1] & ~PAIR_ABOVE) != 0) {
		lm_error("outbox.corrupt",
		    "announced value with a bad header (%zu bytes)", mv->mv_size);
		return LM_ESTORE;
	}
	v->above = (p[1] & PAIR_ABOVE) != 0;
	bits = lm_lmdb_get_be64(p + 2);
	memcpy(&v->score, &bits, sizeof(bits));
	v->cver = lm_lmdb_get_be64(p + 10);
	v->jver = lm_lmdb_get_be64(p + 18);
	v->at = (int64_t) lm_lmdb_get_be64(p + 26);
	return LM_OK;
}

/* Reads a u64 meta value; a missing key reads as 0. */
static int
meta_get_u64(lm_outbox *ob, MDB_txn *txn, const char *key, uint64_t *out)
{
	MDB_val k = {strlen(key), (void *) key}, v;
	int rc = mdb_get(txn, ob->db_meta, &k, &v);
	*out = 0;
	if (rc == MDB_NOTFOUND)
		return LM_OK;
	if (rc != MDB_SUCCESS)
		return map_err(rc, "mdb_get meta");
	if (v.mv_size != 8) {
		lm_error("outbox.corrupt", "meta %s has %zu bytes", key, v.mv_size);
		return LM_ESTORE;
	}
	*out = lm_lmdb_get_be64(v.mv_data);
	return LM_OK;
}

static int
meta_put_u64(lm_outbox *ob, MDB_txn *txn, const char *key, uint64_t val)
{
	unsigned char buf[8];
	MDB_val k = {strlen(key), (void *) key}, v = {sizeof(buf), buf};
	lm_lmdb_put_be64(buf, val);
	return map_err(mdb_put(txn, ob->db_meta, &k, &v, 0), "mdb_put meta");
}

static int
meta_add_u64(lm_outbox *ob, MDB_txn *txn, const char *key, uint64_t delta)
{
	uint64_t cur;
	int rc;
	if (delta == 0)
		return LM_OK;
	if ((rc = meta_get_u64(ob, txn, key, &cur)) != LM_OK)
		return rc;
	return meta_put_u64(ob, txn, key, cur + delta);
}

/* ---- transactions and map growth ---------------------------------------- */

/*
 * Adopts a map grown by another process (none should exist, but LMDB allows
 * it); an lm_lmdb_resize_fn with arg the outbox. The caller holds maplock
 * shared once and no transaction; the hold is swapped for the exclusive one
 * during the resize.
 */
static int
adopt_map(void *arg, MDB_env *env, uint64_t size)
{
	lm_outbox *ob = arg;
	int rc;
	pthread_rwlock_unlock(&ob->maplock);
	pthread_rwlock_wrlock(&ob->maplock);
	rc = lm_lmdb_set_mapsize(env, size, "outbox");
	pthread_rwlock_unlock(&ob->maplock);
	pthread_rwlock_rdlock(&ob->maplock);
	return rc;
}

/* Begins a transaction; the caller holds maplock shared. */
static int
begin_txn(lm_outbox *ob, unsigned flags, MDB_txn **out)
{
	return lm_lmdb_txn_begin(ob->env, flags, adopt_map, ob, "outbox", out);
}

/* Doubles the map unless another writer already grew it past seen. No
 * transaction of this process may be open (maplock taken exclusively). */
static int
grow(lm_outbox *ob, uint64_t seen)
{
	int rc = LM_OK;
	pthread_rwlock_wrlock(&ob->maplock);
	if (lm_lmdb_map_size(ob->env) <= seen)
		rc = lm_lmdb_grow(
		    ob->env, atomic_load(&ob->map_max), NULL, NULL, "outbox");
	pthread_rwlock_unlock(&ob->maplock);
	return rc;
}

/* A write operation: runs inside txn and returns LM_OK to commit. It must
 * be safe to run again from scratch after LM_EMAPFULL. */
typedef int (*wop_fn)(lm_outbox *ob, MDB_txn *txn, void *arg);

static int
run_write(lm_outbox *ob, wop_fn fn, void *arg)
{
	for (int attempt = 0; attempt <= GROW_RETRIES; attempt++) {
		MDB_txn *txn = NULL;
		uint64_t seen;
		int rc;

		pthread_rwlock_rdlock(&ob->maplock);
		seen = lm_lmdb_map_size(ob->env);
		rc = begin_txn(ob, 0, &txn);
		if (rc == LM_OK) {
			rc = fn(ob, txn, arg);
			if (rc == LM_OK && ob->fault != NULL)
				rc = ob->fault(ob->fault_arg);
			if (rc == LM_OK)
				rc = map_err(mdb_txn_commit(txn), "mdb_txn_commit");
			else
				mdb_txn_abort(txn);
		}
		pthread_rwlock_unlock(&ob->maplock);
		if (rc != LM_EMAPFULL)
			return rc;
		if ((rc = grow(ob, seen)) != LM_OK)
			return rc;
	}
	return LM_EMAPFULL;
}

/* Read transactions: begin with maplock held shared, end releases both. */
static int
read_begin(lm_outbox *ob, MDB_txn **txn)
{
	int rc;
	pthread_rwlock_rdlock(&ob->maplock);
	if ((rc = begin_txn(ob, MDB_RDONLY, txn)) != LM_OK)
		pthread_rwlock_unlock(&ob->maplock);
	return rc;
}

static void
read_end(lm_outbox *ob, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&ob->maplock);
}

/* ---- open / close ------------------------------------------------------- */

/* Opens the named databases and checks or writes the schema version. */
static int
open_dbs(lm_outbox *ob, MDB_txn *txn, void *arg)
{
	static const char *const names[] = {"pending", "announced", "by_job", "meta"};
	MDB_dbi *const dbis[] = {
	    &ob->db_pending, &ob->db_announced, &ob->db_by_job, &ob->db_meta};
	int rc;
	(void) arg;
	rc = lm_lmdb_dbs_open(txn, names, dbis, 4, MDB_CREATE, "outbox");
	if (rc != LM_OK)
		return rc;
	return lm_lmdb_schema_check(
	    txn, ob->db_meta, META_SCHEMA, LM_OUTBOX_SCHEMA_VERSION, true, "outbox");
}

int
lm_outbox_open(const char *dir, lm_outbox **out)
{
	static const lm_lmdb_env_opts env_opts = {
	    .max_dbs = OUTBOX_MAXDBS, .map_size = LM_OUTBOX_MAP_SIZE, .mode = 0600};
	lm_outbox *ob = NULL;
	struct stat st;
	bool registered = false;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (dir == NULL || dir[0] == '\0' || strlen(dir) >= DIR_MAX)
		return LM_EINVAL;
	if ((rc = lm_lmdb_dir_make(dir, 0700, false, "outbox")) != LM_OK)
		return rc;
	if (stat(dir, &st) != 0) {
		rc = lm_err_from_errno(errno);
		lm_error("outbox.open", "cannot stat the outbox directory: %s",
		    strerror(errno));
		return rc;
	}
	if ((rc = lm_lmdb_dir_claim(st.st_dev, st.st_ino)) != LM_OK) {
		if (rc == LM_EBUSY) {
			lm_error(
			    "outbox.open", "the outbox is already open in this process");
			rc = LM_EEXIST;
		}
		return rc;
	}
	registered = true;
	if ((ob = calloc(1, sizeof(*ob))) == NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	ob->dev = st.st_dev;
	ob->ino = st.st_ino;
	atomic_store(&ob->map_max, LM_OUTBOX_MAP_SIZE_MAX);
	if (pthread_rwlock_init(&ob->maplock, NULL) != 0) {
		free(ob);
		ob = NULL;
		rc = LM_ENOMEM;
		goto fail;
	}
	if ((rc = lm_lmdb_env_open(dir, &env_opts, "outbox", &ob->env)) != LM_OK)
		goto fail;
	/* A map that an earlier run grew is larger than LM_OUTBOX_MAP_SIZE:
	 * LMDB adopts the size recorded in the file when it is larger. */
	if ((rc = run_write(ob, open_dbs, NULL)) != LM_OK)
		goto fail;
	*out = ob;
	return LM_OK;
fail:
	if (ob != NULL) {
		if (ob->env != NULL)
			mdb_env_close(ob->env);
		pthread_rwlock_destroy(&ob->maplock);
		free(ob);
	}
	if (registered)
		lm_lmdb_dir_release(st.st_dev, st.st_ino);
	return rc;
}

void
lm_outbox_close(lm_outbox *ob)
{
	if (ob == NULL)
		return;
	mdb_env_close(ob->env);
	pthread_rwlock_destroy(&ob->maplock);
	lm_lmdb_dir_release(ob->dev, ob->ino);
	free(ob);
}

/* ---- event ids: SHA-256 -------------------------------------------------- */

/* Hashes a string as a big-endian u32 length and its bytes. */
static bool
digest_str(EVP_MD_CTX *ctx, const char *str)
{
	unsigned char len[4];
	size_t n = str == NULL ? 0 : strlen(str);
	len[0] = (unsigned char) (n >> 24);
	len[1] = (unsigned char) (n >> 16);
	len[2] = (unsigned char) (n >> 8);
	len[3] = (unsigned char) n;
	return EVP_DigestUpdate(ctx, len, 4) == 1 &&
	       (n == 0 || EVP_DigestUpdate(ctx, str, n) == 1);
}

static bool
digest_u64(EVP_MD_CTX *ctx, uint64_t x)
{
	unsigned char v[8];
	lm_lmdb_put_be64(v, x);
	return EVP_DigestUpdate(ctx, v, 8) == 1;
}

int
lm_event_id(const char *candidate_id, const char *job_id, uint64_t candidate_version,
    uint64_t job_version, const char *model_version, char out[LM_OUTBOX_EVENT_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	out[0] = '\0';
	if (ctx == NULL)
		return LM_ENOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     digest_str(ctx, "lunamatch.v1.MatchEvent") &&
	     digest_str(ctx, candidate_id) && digest_str(ctx, job_id) &&
	     digest_u64(ctx, candidate_version) && digest_u64(ctx, job_version) &&
	     digest_str(ctx, model_version) &&
	     EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 &&
	     dlen * 2 >= LM_OUTBOX_EVENT_ID_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		const char *why = ERR_reason_error_string(ERR_get_error());
		lm_error("outbox.event_id", "SHA-256 failed: %s",
		    why ? why : "no reason given");
		return LM_EINTERNAL;
	}
	for (int i = 0; i < LM_OUTBOX_EVENT_ID_LEN / 2; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	out[LM_OUTBOX_EVENT_ID_LEN] = '\0';
	return LM_OK;
}

/* ---- enqueue ------------------------------------------------------------ */

struct enq {
	const lm_event_candidate *c;
	size_t n;
	const char *model_version;
	int64_t now;
	uint64_t cursor;
	size_t enqueued; /* result; reset at every run */
};

/* Puts a new pending entry for c unless one of that id exists. *added
 * says whether it did. */
static int
put_event(lm_outbox *ob, MDB_txn *txn, const struct enq *e, const lm_event_candidate *c,
    bool *added)
{
	Lunamatch__V1__MatchEvent ev = LUNAMATCH__V1__MATCH_EVENT__INIT;
	Lunamatch__V1__OutboxEntry ent = LUNAMATCH__V1__OUTBOX_ENTRY__INIT;
	char id[LM_OUTBOX_EVENT_ID_LEN + 1];
	char summary[LM_OUTBOX_SUMMARY_MAX + 1];
	uint8_t *evbuf = NULL, *entbuf = NULL;
	size_t evlen, entlen;
	MDB_val k, v;
	int rc;

	*added = false;
	if ((rc = lm_event_id(c->candidate_id, c->job_id, c->candidate_version,
	         c->job_version, e->model_version, id)) != LM_OK)
		return rc;
	k.mv_size = LM_OUTBOX_EVENT_ID_LEN;
	k.mv_data = id;
	rc = mdb_get(txn, ob->db_pending, &k, &v);
	if (rc == MDB_SUCCESS)
		return LM_OK; /* the same pair state is waiting already */
	if (rc != MDB_NOTFOUND)
		return map_err(rc, "mdb_get pending");

	if (c->summary != NULL) {
		size_t n = utf8_cut(c->summary, LM_OUTBOX_SUMMARY_MAX);
		memcpy(summary, c->summary, n);
		summary[n] = '\0';
	} else {
		summary[0] = '\0';
	}
	ev.event_id = id;
	ev.type = LUNAMATCH__V1__MATCH_EVENT_TYPE__MATCH_EVENT_TYPE_NEW_MATCH;
	ev.candidate_id = (char *) c->candidate_id;
	ev.job_id = (char *) c->job_id;
	ev.score = c->score;
	ev.trigger = c->trigger;
	ev.explanation_summary = summary;
	ev.model_version = (char *) e->model_version;
	ev.created_at = e->now;
	ev.candidate_version = c->candidate_version;
	ev.job_version = c->job_version;
	if ((rc = lm_pb_encode(&ev.base, &evbuf, &evlen)) != LM_OK)
		return rc;
	ent.event.data = evbuf;
	ent.event.len = evlen;
	ent.attempts = 0;
	ent.enqueued_at = e->now;
	ent.last_error = (char *) "";
	rc = lm_pb_encode(&ent.base, &entbuf, &entlen);
	free(evbuf);
	if (rc != LM_OK)
		return rc;
	if (entlen > LM_OUTBOX_ENTRY_MAX) {
		free(entbuf);
		return LM_E2BIG; /* cannot happen with the limits on the inputs */
	}
	v.mv_size = entlen;
	v.mv_data = entbuf;
	rc = map_err(mdb_put(txn, ob->db_pending, &k, &v, 0), "mdb_put pending");
	free(entbuf);
	if (rc == LM_OK)
		*added = true;
	return rc;
}

static int
enq_run(lm_outbox *ob, MDB_txn *txn, void *arg)
{
	struct enq *e = arg;
	uint64_t stored;
	int rc;

	e->enqueued = 0;
	if ((rc = meta_get_u64(ob, txn, META_CURSOR, &stored)) != LM_OK)
		return rc;
	if (e->cursor != 0 && e->cursor < stored)
		return LM_ESTALE;
	for (size_t i = 0; i < e->n; i++) {
		const lm_event_candidate *c = &e->c[i];
		char key[PAIR_KEY_MAX], rkey[PAIR_KEY_MAX];
		unsigned char val[PAIR_VAL_LEN];
		MDB_val k, rk, v, empty = {0, NULL};
		struct pair_val pv = {false, 0, 0, 0, 0};
		bool prev_above = false;

		k.mv_size = pair_key(c->candidate_id, c->job_id, key);
		k.mv_data = key;
		rk.mv_size = pair_key(c->job_id, c->candidate_id, rkey);
		rk.mv_data = rkey;
		if (c->state == LM_PAIR_GONE) {
			rc = mdb_del(txn, ob->db_announced, &k, NULL);
			if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
				return map_err(rc, "mdb_del announced");
			rc = mdb_del(txn, ob->db_by_job, &rk, NULL);
			if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
				return map_err(rc, "mdb_del by_job");
			continue;
		}
		rc = mdb_get(txn, ob->db_announced, &k, &v);
		if (rc == MDB_SUCCESS) {
			/* A state that does not decode (logged) is replaced. */
			if (pair_decode(&v, &pv) == LM_OK)
				prev_above = pv.above;
		} else if (rc != MDB_NOTFOUND) {
			return map_err(rc, "mdb_get announced");
		}
		if (c->state == LM_PAIR_ABOVE && !prev_above) {
			bool added;
			if ((rc = put_event(ob, txn, e, c, &added)) != LM_OK)
				return rc;
			if (added)
				e->enqueued++;
		}
		pv.above = c->state == LM_PAIR_ABOVE;
		pv.score = c->score;
		pv.cver = c->candidate_version;
		pv.jver = c->job_version;
		pv.at = e->now;
		pair_encode(&pv, val);
		v.mv_size = sizeof(val);
		v.mv_data = val;
		if ((rc = mdb_put(txn, ob->db_announced, &k, &v, 0)) != MDB_SUCCESS)
			return map_err(rc, "mdb_put announced");
		if ((rc = mdb_put(txn, ob->db_by_job, &rk, &empty, 0)) != MDB_SUCCESS)
			return map_err(rc, "mdb_put by_job");
	}
	if ((rc = meta_add_u64(ob, txn, META_ENQUEUED, e->enqueued)) != LM_OK)
		return rc;
	if (e->cursor != 0 && e->cursor != stored)
		return meta_put_u64(ob, txn, META_CURSOR, e->cursor);
	return LM_OK;
}

static int
check_id(const char *id)
{
	return lm_record_id_valid(id) ? LM_OK : LM_EINVAL;
}

int
lm_outbox_enqueue_batch(lm_outbox *ob, const lm_event_candidate *c, size_t n,
    const char *model_version, int64_t now, uint64_t cursor_seq, size_t *enqueued)
{
	struct enq e;
	int rc;

	if (enqueued != NULL)
		*enqueued = 0;
	if (ob == NULL || (c == NULL && n > 0) || n > LM_OUTBOX_BATCH_MAX ||
	    model_version == NULL ||
	    strnlen(model_version, LM_OUTBOX_MODEL_VERSION_MAX + 1) >
	        LM_OUTBOX_MODEL_VERSION_MAX ||
	    !lm_pb_utf8_valid(model_version, strlen(model_version)))
		return LM_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (check_id(c[i].candidate_id) != LM_OK ||
		    check_id(c[i].job_id) != LM_OK) {
			lm_warn("outbox.enqueue", "candidate %zu: invalid record id", i);
			return LM_EINVAL;
		}
		if (c[i].state != LM_PAIR_ABOVE && c[i].state != LM_PAIR_BELOW &&
		    c[i].state != LM_PAIR_GONE) {
			lm_warn("outbox.enqueue", "candidate %zu: invalid state %d", i,
			    (int) c[i].state);
			return LM_EINVAL;
		}
		if (c[i].state != LM_PAIR_GONE &&
		    (!isfinite(c[i].score) || c[i].score < 0 || c[i].score > 1)) {
			lm_warn(
			    "outbox.enqueue", "candidate %zu: score out of [0, 1]", i);
			return LM_EINVAL;
		}
		if (c[i].summary != NULL &&
		    !lm_pb_utf8_valid(
		        c[i].summary, utf8_cut(c[i].summary, LM_OUTBOX_SUMMARY_MAX))) {
			lm_warn(
			    "outbox.enqueue", "candidate %zu: summary is not UTF-8", i);
			return LM_EINVAL;
		}
	}
	e.c = c;
	e.n = n;
	e.model_version = model_version;
	e.now = now;
	e.cursor = cursor_seq;
	e.enqueued = 0;
	rc = run_write(ob, enq_run, &e);
	if (rc == LM_OK && enqueued != NULL)
		*enqueued = e.enqueued;
	return rc;
}

/* ---- cursor ------------------------------------------------------------- */

int
lm_outbox_get_cursor(lm_outbox *ob, uint64_t *seq)
{
	MDB_txn *txn;
	int rc;
	if (ob == NULL || seq == NULL)
		return LM_EINVAL;
	*seq = 0;
	if ((rc = read_begin(ob, &txn)) != LM_OK)
		return rc;
	rc = meta_get_u64(ob, txn, META_CURSOR, seq);
	read_end(ob, txn);
	return rc;
}

static int
cursor_run(lm_outbox *ob, MDB_txn *txn, void *arg)
{
	uint64_t seq = *(const uint64_t *) arg, stored;
	int rc;
	if ((rc = meta_get_u64(ob, txn, META_CURSOR, &stored)) != LM_OK)
		return rc;
	if (seq < stored)
		return LM_ESTALE;
	return meta_put_u64(ob, txn, META_CURSOR, seq);
}

int
lm_outbox_set_cursor(lm_outbox *ob, uint64_t seq)
{
	if (ob == NULL)
		return LM_EINVAL;
	return run_write(ob, cursor_run, &seq);
}

int
lm_outbox_get_store_id(lm_outbox *ob, char *buf, size_t len)
{
	MDB_val k = {strlen(META_STORE_ID), (void *) META_STORE_ID}, v;
	MDB_txn *txn;
	int rc;

	if (ob == NULL || buf == NULL || len == 0)
		return LM_EINVAL;
	buf[0] = '\0';
	if ((rc = read_begin(ob, &txn)) != LM_OK)
		return rc;
	rc = mdb_get(txn, ob->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = LM_ENOENT;
	} else if (rc != MDB_SUCCESS) {
		rc = map_err(rc, "mdb_get meta");
	} else if (v.mv_size == 0 || v.mv_size > LM_OUTBOX_STORE_ID_MAX) {
		lm_error(
		    "outbox.corrupt", "meta %s has %zu bytes", META_STORE_ID, v.mv_size);
		rc = LM_ESTORE;
	} else if (v.mv_size >= len) {
		rc = LM_E2BIG;
	} else {
		memcpy(buf, v.mv_data, v.mv_size);
		buf[v.mv_size] = '\0';
		rc = LM_OK;
	}
	read_end(ob, txn);
	return rc;
}

struct rebase {
	const char *store_id;
	uint64_t seq;
};

static int
rebase_run(lm_outbox *ob, MDB_txn *txn, void *arg)
{
	const struct rebase *r = arg;
	MDB_val k = {strlen(META_STORE_ID), (void *) META_STORE_ID},
	        v = {strlen(r->store_id), (void *) r->store_id};
	int rc;

	if ((rc = meta_put_u64(ob, txn, META_CURSOR, r->seq)) != LM_OK)
		return rc;
	return map_err(mdb_put(txn, ob->db_meta, &k, &v, 0), "mdb_put meta");
}

int
lm_outbox_rebase(lm_outbox *ob, const char *store_id, uint64_t seq)
{
	struct rebase r = {store_id, seq};
	size_t n;

	if (ob == NULL || store_id == NULL)
		return LM_EINVAL;
	n = strnlen(store_id, LM_OUTBOX_STORE_ID_MAX + 1);
	if (n == 0 || n > LM_OUTBOX_STORE_ID_MAX)
		return LM_EINVAL;
	return run_write(ob, rebase_run, &r);
}

/* ---- pairs -------------------------------------------------------------- */

int
lm_outbox_get_pair(
    lm_outbox *ob, const char *candidate_id, const char *job_id, lm_outbox_pair *out)
{
	char key[PAIR_KEY_MAX];
	MDB_txn *txn;
	MDB_val k, v;
	struct pair_val pv;
	int rc;

	if (ob == NULL || out == NULL || check_id(candidate_id) != LM_OK ||
	    check_id(job_id) != LM_OK)
		return LM_EINVAL;
	k.mv_size = pair_key(candidate_id, job_id, key);
	k.mv_data = key;
	if ((rc = read_begin(ob, &txn)) != LM_OK)
		return rc;
	rc = map_err(mdb_get(txn, ob->db_announced, &k, &v), "mdb_get announced");
	if (rc == LM_OK && (rc = pair_decode(&v, &pv)) == LM_OK) {
		memset(out, 0, sizeof(*out));
		memcpy(out->other_id, job_id, strlen(job_id) + 1);
		out->above = pv.above;
		out->score = pv.score;
		out->candidate_version = pv.cver;
		out->job_version = pv.jver;
		out->updated_at = pv.at;
	}
	read_end(ob, txn);
	return rc;
}

int
lm_outbox_pairs_of(lm_outbox *ob, lm_outbox_side side, const char *id, size_t max,
    lm_outbox_pair **out, size_t *n, bool *truncated)
{
	return lm_outbox_pairs_after(ob, side, id, NULL, max, out, n, truncated, NULL);
}

/* Copies the counterpart of a pair key, the len bytes at p, into out as a
 * string; false when they are not a record id (disk damage). */
static bool
other_id(const char *p, size_t len, char out[LM_OUTBOX_ID_MAX + 1])
{
	if (len == 0 || len > LM_OUTBOX_ID_MAX || memchr(p, '\0', len) != NULL)
		return false;
	memcpy(out, p, len);
	out[len] = '\0';
	return check_id(out) == LM_OK;
}

/* Pair keys to delete, copied out of a read transaction. */
struct badkeys {
	MDB_dbi dbi;
	MDB_val *keys; /* mv_data owned */
	size_t n, cap;
};

static void
badkeys_free(struct badkeys *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->keys[i].mv_data);
	free(b->keys);
}

/* Adds a copy of k; false when memory runs out. */
static bool
badkeys_add(struct badkeys *b, const MDB_val *k)
{
	void *copy;
	if (b->n == b->cap) {
		size_t ncap = b->cap == 0 ? 8 : b->cap * 2;
		MDB_val *nk = realloc(b->keys, ncap * sizeof(*nk));
		if (nk == NULL)
			return false;
		b->keys = nk;
		b->cap = ncap;
	}
	if ((copy = malloc(k->mv_size)) == NULL)
		return false;
	memcpy(copy, k->mv_data, k->mv_size);
	b->keys[b->n].mv_size = k->mv_size;
	b->keys[b->n++].mv_data = copy;
	return true;
}

static int
badkeys_run(lm_outbox *ob, MDB_txn *txn, void *arg)
{
	const struct badkeys *b = arg;
	(void) ob;
	for (size_t i = 0; i < b->n; i++) {
		MDB_val k = b->keys[i];
		int rc = mdb_del(txn, b->dbi, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return map_err(rc, "mdb_del pair key");
	}
	return LM_OK;
}

int
lm_outbox_pairs_after(lm_outbox *ob, lm_outbox_side side, const char *id,
    const char *after, size_t max, lm_outbox_pair **out, size_t *n, bool *truncated,
    size_t *damaged)
{
	char prefix[PAIR_KEY_MAX];
	size_t plen, slen;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	lm_outbox_pair *arr = NULL;
	struct badkeys bad = {0, NULL, 0, 0};
	size_t cnt = 0, cap = 0, nbad = 0, first_bad = 0;
	bool more = false;
	int rc, op;

	if (out != NULL)
		*out = NULL;
	if (n != NULL)
		*n = 0;
	if (truncated != NULL)
		*truncated = false;
	if (damaged != NULL)
		*damaged = 0;
	if (ob == NULL || out == NULL || n == NULL || check_id(id) != LM_OK || max == 0 ||
	    max > LM_OUTBOX_PAIRS_MAX ||
	    (side != LM_OUTBOX_CANDIDATE && side != LM_OUTBOX_JOB) ||
	    (after != NULL && after[0] != '\0' && check_id(after) != LM_OK))
		return LM_EINVAL;
	bad.dbi = side == LM_OUTBOX_CANDIDATE ? ob->db_announced : ob->db_by_job;
	plen = strlen(id) + 1;
	memcpy(prefix, id, plen); /* with its NUL: the separator */
	/* The first key read is "id\0after" or the next one: the pair of
	 * after itself is passed over below. */
	slen = after != NULL && after[0] != '\0' ? pair_key(id, after, prefix) : plen;
	if ((rc = read_begin(ob, &txn)) != LM_OK)
		return rc;
	rc = mdb_cursor_open(txn, bad.dbi, &cur);
	if (rc != MDB_SUCCESS) {
		rc = map_err(rc, "mdb_cursor_open");
		goto done;
	}
	k.mv_size = slen;
	k.mv_data = prefix;
	for (op = MDB_SET_RANGE;; op = MDB_NEXT) {
		struct pair_val pv = {false, 0, 0, 0, 0};
		char other[LM_OUTBOX_ID_MAX + 1];
		bool have = true;
		lm_outbox_pair *p;
		size_t olen;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc == MDB_NOTFOUND) {
			rc = LM_OK;
			break;
		}
		if (rc != MDB_SUCCESS) {
			rc = map_err(rc, "mdb_cursor_get");
			goto done;
		}
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0) {
			rc = LM_OK;
			break;
		}
		olen = k.mv_size - plen;
		if (slen > plen && k.mv_size == slen &&
		    memcmp(k.mv_data, prefix, slen) == 0)
			continue; /* after's own pair */
		if (cnt == max) {
			more = true;
			rc = LM_OK;
			break;
		}
		if (!other_id((const char *) k.mv_data + plen, olen, other)) {
			/* Not a pair: neither replaced nor forgotten by a
			 * derivation, which would fail on it. Deleted below;
			 * one that memory does not let copy is found again. */
			if (nbad++ == 0)
				first_bad = k.mv_size;
			(void) badkeys_add(&bad, &k);
			continue;
		}
		if (side == LM_OUTBOX_JOB) {
			/* by_job only names the pair; its state is in announced. */
			char key[PAIR_KEY_MAX];
			MDB_val ak;
			ak.mv_size = pair_key(other, id, key);
			ak.mv_data = key;
			rc = mdb_get(txn, ob->db_announced, &ak, &v);
			if (rc == MDB_NOTFOUND) {
				lm_error(
				    "outbox.corrupt", "by_job entry without its pair");
				have = false;
			} else if (rc != MDB_SUCCESS) {
				rc = map_err(rc, "mdb_get announced");
				goto done;
			}
		}
		/* A state that does not decode (logged) reads as not above. */
		if (have && pair_decode(&v, &pv) != LM_OK)
			pv = (struct pair_val){false, 0, 0, 0, 0};
		rc = LM_OK;
		if (cnt == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			lm_outbox_pair *na;
			if (ncap > max)
				ncap = max;
			if ((na = realloc(arr, ncap * sizeof(*arr))) == NULL) {
				rc = LM_ENOMEM;
				goto done;
			}
			arr = na;
			cap = ncap;
		}
		p = &arr[cnt++];
		memset(p, 0, sizeof(*p));
		memcpy(p->other_id, other, olen + 1);
		p->above = pv.above;
		p->score = pv.score;
		p->candidate_version = pv.cver;
		p->job_version = pv.jver;
		p->updated_at = pv.at;
	}
done:
	if (cur != NULL)
		mdb_cursor_close(cur);
	read_end(ob, txn);
	if (rc != LM_OK) {
		badkeys_free(&bad);
		free(arr);
		return rc;
	}
	if (nbad > 0) {
		bool gone = run_write(ob, badkeys_run, &bad) == LM_OK && bad.n == nbad;
		lm_error("outbox.corrupt",
		    "%zu %s keys of a %s whose counterpart is not a record id (the "
		    "first of %zu bytes): passed over, %s",
		    nbad, side == LM_OUTBOX_CANDIDATE ? "announced" : "by_job",
		    side == LM_OUTBOX_CANDIDATE ? "candidate" : "job", first_bad,
		    gone ? "deleted" : "not all deleted (found again by a later read)");
	}
	badkeys_free(&bad);
	*out = arr;
	*n = cnt;
	if (truncated != NULL)
		*truncated = more;
	if (damaged != NULL)
		*damaged = nbad;
	return LM_OK;
}

int
lm_outbox_pair_ids_after(lm_outbox *ob, const char *after_candidate,
    const char *after_job, size_t max, lm_outbox_pair_ids **out, size_t *n, bool *more)
{
	char start[PAIR_KEY_MAX];
	bool from_first = after_candidate == NULL || after_candidate[0] == '\0';
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	lm_outbox_pair_ids *arr = NULL;
	size_t cnt = 0;
	int rc, op;

	if (out != NULL)
		*out = NULL;
	if (n != NULL)
		*n = 0;
	if (more != NULL)
		*more = false;
	if (ob == NULL || out == NULL || n == NULL || more == NULL || max == 0 ||
	    max > LM_OUTBOX_PAIRS_MAX ||
	    (!from_first &&
	        (check_id(after_candidate) != LM_OK || check_id(after_job) != LM_OK)))
		return LM_EINVAL;
	if ((arr = malloc(max * sizeof(*arr))) == NULL)
		return LM_ENOMEM;
	k.mv_size = from_first ? 0 : pair_key(after_candidate, after_job, start);
	k.mv_data = start;
	if ((rc = read_begin(ob, &txn)) != LM_OK) {
		free(arr);
		return rc;
	}
	if ((rc = mdb_cursor_open(txn, ob->db_announced, &cur)) != MDB_SUCCESS) {
		rc = map_err(rc, "mdb_cursor_open");
		goto done;
	}
	for (op = from_first ? MDB_FIRST : MDB_SET_RANGE;; op = MDB_NEXT) {
		const char *key;
		size_t clen;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc == MDB_NOTFOUND) {
			rc = LM_OK;
			break;
		}
		if (rc != MDB_SUCCESS) {
			rc = map_err(rc, "mdb_cursor_get");
			goto done;
		}
		rc = LM_OK;
		key = k.mv_data;
		if (op == MDB_SET_RANGE &&
		    k.mv_size == pair_key(after_candidate, after_job, start) &&
		    memcmp(key, start, k.mv_size) == 0)
			continue; /* the pair of after itself */
		if (cnt == max) {
			*more = true;
			break;
		}
		const char *sep = memchr(key, '\0', k.mv_size);
		clen = sep == NULL ? 0 : (size_t) (sep - key);
		if (sep == NULL || clen == 0 || clen > LM_OUTBOX_ID_MAX ||
		    !other_id(sep + 1, k.mv_size - clen - 1, arr[cnt].job_id))
			continue; /* no pair: see lm_outbox_pairs_after */
		memcpy(arr[cnt].candidate_id, key, clen);
		arr[cnt].candidate_id[clen] = '\0';
		if (check_id(arr[cnt].candidate_id) == LM_OK)
			cnt++;
	}
done:
	if (cur != NULL)
		mdb_cursor_close(cur);
	read_end(ob, txn);
	if (rc != LM_OK || cnt == 0) {
		free(arr);
		arr = NULL;
	}
	if (rc == LM_OK) {
		*out = arr;
		*n = cnt;
	} else {
		*more = false;
	}
	return rc;
}

/* ---- pending entries ---------------------------------------------------- */

static int
decode_entry(const MDB_val *v, Lunamatch__V1__OutboxEntry **out)
{
	char err[128];
	ProtobufCMessage *m = NULL;
	int rc = lm_pb_decode(&lunamatch__v1__outbox_entry__descriptor, v->mv_data,
	    v->mv_size, LM_OUTBOX_ENTRY_MAX, &m, err, sizeof(err));
	if (rc != LM_OK) {
		lm_error("outbox.corrupt", "pending entry does not decode: %s", err);
		*out = NULL;
		return rc == LM_ENOMEM ? rc : LM_ESTORE;
	}
	*out = (Lunamatch__V1__OutboxEntry *) m;
	return LM_OK;
}

int
lm_outbox_pending(lm_outbox *ob, size_t max, lm_outbox_pending_fn fn, void *arg)
{
	return lm_outbox_pending_skip(ob, max, NULL, fn, arg);
}

int
lm_outbox_pending_skip(
    lm_outbox *ob, size_t max, lm_outbox_skip_fn skip, lm_outbox_pending_fn fn, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t seen = 0;
	int rc;

	if (ob == NULL || fn == NULL)
		return LM_EINVAL;
	if ((rc = read_begin(ob, &txn)) != LM_OK)
		return rc;
	if ((rc = mdb_cursor_open(txn, ob->db_pending, &cur)) != MDB_SUCCESS) {
		rc = map_err(rc, "mdb_cursor_open");
		read_end(ob, txn);
		return rc;
	}
	for (int op = MDB_FIRST; seen < max; op = MDB_NEXT) {
		char id[LM_OUTBOX_EVENT_ID_LEN + 1];
		Lunamatch__V1__OutboxEntry *ent;
		int stop;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc == MDB_NOTFOUND) {
			rc = LM_OK;
			break;
		}
		if (rc != MDB_SUCCESS) {
			rc = map_err(rc, "mdb_cursor_get");
			break;
		}
		seen++;
		if (k.mv_size != LM_OUTBOX_EVENT_ID_LEN) {
			/* Shown as an entry that does not decode, under an id no
			 * event has, so that the caller counts and passes over it
			 * as it does those. */
			snprintf(id, sizeof(id), "%s%0*llx", LM_OUTBOX_BAD_KEY_PREFIX,
			    LM_OUTBOX_EVENT_ID_LEN -
			        (int) strlen(LM_OUTBOX_BAD_KEY_PREFIX),
			    (unsigned long long) lm_hash_bytes(k.mv_data, k.mv_size));
			if (skip != NULL && skip(arg, id))
				continue;
			lm_error("outbox.corrupt",
			    "pending key of %zu bytes: shown as %s", k.mv_size, id);
			if ((stop = fn(arg, id, NULL)) != 0)
				break;
			continue;
		}
		memcpy(id, k.mv_data, LM_OUTBOX_EVENT_ID_LEN);
		id[LM_OUTBOX_EVENT_ID_LEN] = '\0';
		if (skip != NULL && skip(arg, id))
			continue;
		if ((rc = decode_entry(&v, &ent)) != LM_OK) {
			if (rc == LM_ENOMEM)
				break;
			rc = LM_OK;
			ent = NULL; /* logged; the entry stays for inspection */
		}
		stop = fn(arg, id, ent);
		if (ent != NULL)
			protobuf_c_message_free_unpacked(&ent->base, NULL);
		if (stop != 0)
			break;
	}
	mdb_cursor_close(cur);
	read_end(ob, txn);
	return rc;
}

int
lm_outbox_get_entry(lm_outbox *ob, const char *event_id, Lunamatch__V1__OutboxEntry **out)
{
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (ob == NULL || out == NULL || !event_id_ok(event_id))
		return LM_EINVAL;
	k.mv_size = LM_OUTBOX_EVENT_ID_LEN;
	k.mv_data = (void *) event_id;
	if ((rc = read_begin(ob, &txn)) != LM_OK)
		return rc;
	rc = map_err(mdb_get(txn, ob->db_pending, &k, &v), "mdb_get pending");
	if (rc == LM_OK)
		rc = decode_entry(&v, out);
	read_end(ob, txn);
	return rc;
}

struct mark {
	const char *const *ids;
	const char *const *errors; /* NULL: delivered */
	size_t n;
	size_t done; /* result; reset at every run */
};

static int
delivered_run(lm_outbox *ob, MDB_txn *txn, void *arg)
{
	struct mark *m = arg;
	int rc;
	m->done = 0;
	for (size_t i = 0; i < m->n; i++) {
		MDB_val k = {LM_OUTBOX_EVENT_ID_LEN, (void *) m->ids[i]};
		rc = mdb_del(txn, ob->db_pending, &k, NULL);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != MDB_SUCCESS)
			return map_err(rc, "mdb_del pending");
		m->done++;
	}
	return meta_add_u64(ob, txn, META_DELIVERED, m->done);
}

static int
failed_run(lm_outbox *ob, MDB_txn *txn, void *arg)
{
	struct mark *m = arg;
	int rc;
	m->done = 0;
	for (size_t i = 0; i < m->n; i++) {
		MDB_val k = {LM_OUTBOX_EVENT_ID_LEN, (void *) m->ids[i]}, v;
		Lunamatch__V1__OutboxEntry *ent;
		char errbuf[LM_OUTBOX_ERROR_MAX + 1];
		const char *err = m->errors[i] != NULL ? m->errors[i] : "";
		char *saved;
		uint8_t *buf;
		size_t len, elen;

		rc = mdb_get(txn, ob->db_pending, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != MDB_SUCCESS)
			return map_err(rc, "mdb_get pending");
		if ((rc = decode_entry(&v, &ent)) != LM_OK)
			return rc;
		elen = utf8_cut(err, LM_OUTBOX_ERROR_MAX);
		memcpy(errbuf, err, elen);
		errbuf[elen] = '\0';
		if (!lm_pb_utf8_valid(errbuf, elen))
			snprintf(errbuf, sizeof(errbuf), "(error text not UTF-8)");
		if (ent->attempts < UINT32_MAX)
			ent->attempts++;
		saved = ent->last_error;
		ent->last_error = errbuf;
		rc = lm_pb_encode(&ent->base, &buf, &len);
		ent->last_error = saved;
		protobuf_c_message_free_unpacked(&ent->base, NULL);
		if (rc != LM_OK)
			return rc;
		v.mv_size = len;
		v.mv_data = buf;
		rc = map_err(mdb_put(txn, ob->db_pending, &k, &v, 0), "mdb_put pending");
		free(buf);
		if (rc != LM_OK)
			return rc;
		m->done++;
	}
	return meta_add_u64(ob, txn, META_FAILED, m->done);
}

static int
check_ids(const char *const *ids, size_t n)
{
	if (ids == NULL && n > 0)
		return LM_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!event_id_ok(ids[i]))
			return LM_EINVAL;
	return LM_OK;
}

/*
 * Removes ids[0 .. n) from `pending`, adding the number removed to *done.
 * LMDB copies every page a deletion touches and frees pages only for later
 * transactions, so a map at its largest (or a full disk) can lack the room
 * for a large deletion: the one way out of a full outbox would fail for
 * good. Such a
 * deletion is split in halves, each its own transaction, down to single
 * entries, whose pages the transaction before freed.
 */
static int
delivered_split(lm_outbox *ob, const char *const *ids, size_t n, size_t *done)
{
	struct mark m = {ids, NULL, n, 0};
	int rc = run_write(ob, delivered_run, &m);

	if (rc == LM_OK)
		*done += m.done;
	if (!lm_lmdb_no_room(rc) || n == 1)
		return rc;
	if ((rc = delivered_split(ob, ids, n / 2, done)) != LM_OK)
		return rc;
	return delivered_split(ob, ids + n / 2, n - n / 2, done);
}

int
lm_outbox_mark_delivered_batch(
    lm_outbox *ob, const char *const *event_ids, size_t n, size_t *removed)
{
	size_t done = 0;
	int rc;
	if (removed != NULL)
		*removed = 0;
	if (ob == NULL || n > LM_OUTBOX_BATCH_MAX || check_ids(event_ids, n) != LM_OK)
		return LM_EINVAL;
	if (n == 0)
		return LM_OK;
	rc = delivered_split(ob, event_ids, n, &done);
	if (removed != NULL)
		*removed = done; /* also the parts written before an error */
	return rc;
}

void
lm_outbox_set_map_max(lm_outbox *ob, uint64_t bytes)
{
	if (ob != NULL)
		atomic_store(&ob->map_max, bytes);
}

void
lm_outbox_set_fault(lm_outbox *ob, int (*fn)(void *arg), void *arg)
{
	if (ob != NULL) {
		ob->fault = fn;
		ob->fault_arg = arg;
	}
}

int
lm_outbox_mark_delivered(lm_outbox *ob, const char *event_id)
{
	size_t removed;
	int rc = lm_outbox_mark_delivered_batch(ob, &event_id, 1, &removed);
	if (rc == LM_OK && removed == 0)
		return LM_ENOENT;
	return rc;
}

int
lm_outbox_mark_failed_batch(lm_outbox *ob, const char *const *event_ids,
    const char *const *errors, size_t n, size_t *updated)
{
	struct mark m = {event_ids, errors, n, 0};
	int rc;
	if (updated != NULL)
		*updated = 0;
	if (ob == NULL || n > LM_OUTBOX_BATCH_MAX || (errors == NULL && n > 0) ||
	    check_ids(event_ids, n) != LM_OK)
		return LM_EINVAL;
	if (n == 0)
		return LM_OK;
	rc = run_write(ob, failed_run, &m);
	if (rc == LM_OK && updated != NULL)
		*updated = m.done;
	return rc;
}

int
lm_outbox_mark_failed(lm_outbox *ob, const char *event_id, const char *error)
{
	size_t updated;
	int rc = lm_outbox_mark_failed_batch(ob, &event_id, &error, 1, &updated);
	if (rc == LM_OK && updated == 0)
		return LM_ENOENT;
	return rc;
}

/* ---- counts ------------------------------------------------------------- */

int
lm_outbox_counts_get(lm_outbox *ob, lm_outbox_counts *out)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	if (ob == NULL || out == NULL)
		return LM_EINVAL;
	memset(out, 0, sizeof(*out));
	if ((rc = read_begin(ob, &txn)) != LM_OK)
		return rc;
	if ((rc = map_err(mdb_stat(txn, ob->db_pending, &st), "mdb_stat")) != LM_OK)
		goto done;
	out->pending = st.ms_entries;
	if ((rc = map_err(mdb_stat(txn, ob->db_announced, &st), "mdb_stat")) != LM_OK)
		goto done;
	out->pairs = st.ms_entries;
	if ((rc = meta_get_u64(ob, txn, META_ENQUEUED, &out->enqueued_total)) != LM_OK ||
	    (rc = meta_get_u64(ob, txn, META_DELIVERED, &out->delivered_total)) !=
	        LM_OK ||
	    (rc = meta_get_u64(ob, txn, META_FAILED, &out->failed_total)) != LM_OK)
		goto done;
done:
	read_end(ob, txn);
	return rc;
}
