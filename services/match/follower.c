/*
 * follower.c - snapshot load and change-log following; see follower.h.
 *
 * One cursor: `seq`, the last change applied to the index. Event derivation
 * is not the follower's business (owner.h): it only learns, through
 * on_applied, how far the index has come.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "follower.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/rpc.h"
#include "lunamatch/v1/records.pb-c.h"
#include "lunamatch/v1/store.pb-c.h"

/* Longest notify URL kept, with the NUL. */
#define NOTIFY_URL_MAX 1024

/*
 * Longest single wait inside nng_recv on the SUB socket. nng 1.5.2 can touch
 * a freed socket when nng_close races with a receive in progress (a panic
 * in a mutex of the closed SUB socket, seen at shutdown), so lm_follower_stop
 * never closes the socket under the follower thread: it joins the thread,
 * which leaves nng_recv within this slice, and closes the socket after.
 */
#define RECV_SLICE_MS 100
/* How long the stop waits for nng to close the notification socket: a
 * SUB socket with one dialer closes in well under a millisecond unless
 * nng's reaper is stuck, when it never does. */
#define SUB_CLOSE_MS 1000u

/* Estimate of memory per byte of serialized record (decoded message with its
 * strings and arrays, plus the scorer's prepared form) and per record (table
 * entry, hash chain, allocator overhead). See lm_follower_index_bytes. */
#define MEM_PER_RECORD_BYTE 4u
#define MEM_PER_RECORD      512u

/* What our store callbacks return to stop an iteration: negative, so that
 * it cannot be mistaken for an lm_err. */
#define STOP (-1)

/* One change entry copied out of the change log. */
struct entry {
	uint64_t seq;
	lm_kind kind;
	char id[LM_STORE_ID_MAX + 1];
	uint64_t version;
	bool deleted;
};

struct lm_follower {
	lm_store *store;
	lm_index *idx;
	char notify_url[NOTIFY_URL_MAX];
	char reader[LM_STORE_READER_ID_MAX + 1]; /* "" = position not recorded */
	unsigned poll_ms;
	void *arg;
	void (*on_loaded)(void *arg);
	void (*on_applied)(void *arg, uint64_t seq);
	int (*fault)(void *arg, lm_follower_read what);

	/* Follower thread (or run_once caller) only. */
	struct entry *batch; /* LM_FOLLOWER_BATCH_MAX entries */
	size_t nbatch;
	bool sub_failed;         /* the SUB socket failed: poll by the timer only */
	bool registered;         /* the position was recorded at least once */
	struct timespec next_hb; /* when the position is recorded next */

	/* Stats, read from any thread. */
	atomic_bool loaded;
	_Atomic uint64_t seq;
	_Atomic uint64_t applied, errors, notifications, record_bytes, records;
	_Atomic uint64_t reloads;

	/* Thread control. */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	/* Owned by the thread that calls start and stop: open_sub sets it
	 * before the follower thread exists, stop clears it after the join. The
	 * follower thread only reads it. */
	nng_socket sub;
	bool sub_open;
	int64_t (*clock)(void *arg);
};

int
lm_follower_new(const lm_follower_opts *o, lm_follower **out)
{
	lm_follower *f;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL || o->store == NULL || o->index == NULL)
		return LM_EINVAL;
	if (o->notify_url != NULL && strlen(o->notify_url) >= NOTIFY_URL_MAX)
		return LM_EINVAL;
	if (o->reader_id != NULL && strlen(o->reader_id) > LM_STORE_READER_ID_MAX)
		return LM_EINVAL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return LM_ENOMEM;
	if ((f->batch = calloc(LM_FOLLOWER_BATCH_MAX, sizeof(*f->batch))) == NULL) {
		free(f);
		return LM_ENOMEM;
	}
	f->store = o->store;
	f->idx = o->index;
	if (o->notify_url != NULL)
		snprintf(f->notify_url, sizeof(f->notify_url), "%s", o->notify_url);
	if (o->reader_id != NULL)
		snprintf(f->reader, sizeof(f->reader), "%s", o->reader_id);
	f->poll_ms = o->poll_ms != 0 ? o->poll_ms : LM_FOLLOWER_POLL_MS_DEFAULT;
	f->arg = o->arg;
	f->on_loaded = o->on_loaded;
	f->on_applied = o->on_applied;
	f->fault = o->fault;
	f->clock = o->clock;
	pthread_mutex_init(&f->mtx, NULL);
	(void) lm_cond_init_monotonic(&f->cv);
	*out = f;
	return LM_OK;
}

/* ---- byte accounting ---------------------------------------------------- */

/* The serialized size of the record stored in the index under id, or false
 * when there is none. */
static bool
indexed_size(lm_follower *f, lm_kind kind, const char *id, uint64_t *size)
{
	return lm_index_record_size(f->idx, kind == LM_KIND_POSTING, id, size) == LM_OK;
}

static void
account_remove(lm_follower *f, uint64_t size)
{
	atomic_fetch_sub(&f->records, 1);
	atomic_fetch_sub(&f->record_bytes, size);
}

static void
account_add(lm_follower *f, uint64_t size)
{
	atomic_fetch_add(&f->records, 1);
	atomic_fetch_add(&f->record_bytes, size);
}

/* ---- applying records ---------------------------------------------------- */

/* The failure a test injects into the store read `what` (LM_OK: none; the
 * read then happens). */
static int
injected(lm_follower *f, lm_follower_read what)
{
	return f->fault != NULL ? f->fault(f->arg, what) : LM_OK;
}

static void
applied(lm_follower *f, uint64_t seq)
{
	if (f->on_applied != NULL)
		f->on_applied(f->arg, seq);
}

/* Moves the clock of idx (the follower's index or a snapshot being loaded)
 * to the wall clock, so that postings that expired leave the open-postings
 * count (a gauge; scores do not depend on it). Returns lm_index_advance's
 * answer: true when a new idf snapshot's lists are still being built and
 * the steps taken did work. */
static bool
advance_clock(lm_follower *f, lm_index *idx)
{
	return lm_index_advance(
	    idx, f->clock != NULL ? f->clock(f->arg) : (int64_t) time(NULL));
}

/* Whether the decoded record m names the id and version the store keeps
 * it under; logs it when not. */
static bool
names_key(lm_kind kind, const ProtobufCMessage *m, const char *id, uint64_t version)
{
	const char *rid = kind == LM_KIND_POSTING
	                      ? ((const Lunamatch__V1__JobPosting *) m)->id
	                      : ((const Lunamatch__V1__CandidateProfile *) m)->id;
	uint64_t rv = kind == LM_KIND_POSTING
	                  ? ((const Lunamatch__V1__JobPosting *) m)->version
	                  : ((const Lunamatch__V1__CandidateProfile *) m)->version;

	if (rid != NULL && strcmp(rid, id) == 0 && rv == version)
		return true;
	lm_error("follower.decode",
	    "%s %s version %llu: the stored record names %.128s version %llu",
	    lm_kind_name(kind), id, (unsigned long long) version, rid != NULL ? rid : "",
	    (unsigned long long) rv);
	return false;
}

/*
 * Decodes a stored record into a compact record with its scorer's prepared
 * form, for an index that reads its records from the store (stored:
 * lm_index_prepare_stored, the index keeps no bytes) or keeps their bytes
 * (a copy of these: lm_index_prepare_wire). Touches no index: any thread
 * may call it. A record that names another id or version than the store
 * keeps it under (a damaged store: ingest writes each under its own) gives
 * LM_ESCHEMA: indexed, it could never be removed by its key nor read back
 * at its version. Returns LM_OK, or LM_EPARSE / LM_ESCHEMA / LM_ENOMEM /
 * another error of lm_index_prepare, logged here. *damaged is set true when
 * the error is the bytes' own: they do not decode (malformed, or larger or
 * deeper than any record may be) or name another key. The record is then
 * damaged and fails alike every time; any other error (memory, the index)
 * is of the moment, whatever its code.
 */
static int
prepare_record(lm_kind kind, const char *id, uint64_t version, const void *bytes,
    size_t len, bool stored, lm_index_prepared *ip, bool *damaged)
{
	const ProtobufCMessageDescriptor *d =
	    kind == LM_KIND_POSTING ? &lunamatch__v1__job_posting__descriptor
	                            : &lunamatch__v1__candidate_profile__descriptor;
	ProtobufCMessage *m = NULL;
	char err[256];
	int rc;

	memset(ip, 0, sizeof(*ip));
	*damaged = false;
	/* The index keeps the prep, which shares the short texts it keeps
	 * (lm_pb_share), and drops the record (but for the rare one whose
	 * prep is not self-contained). */
	rc =
	    lm_pb_decode_compact(d, bytes, len, LM_STORE_VALUE_MAX, &m, err, sizeof(err));
	if (rc != LM_OK) {
		lm_error("follower.decode", "%s %s: cannot decode the stored record: %s",
		    lm_kind_name(kind), id, err);
		*damaged = rc == LM_EPARSE || rc == LM_E2BIG;
		return rc;
	}
	if (!names_key(kind, m, id, version)) {
		free(m);
		*damaged = true;
		return LM_ESCHEMA;
	}
	rc = stored ? lm_index_prepare_stored(ip, kind == LM_KIND_POSTING, m, len)
	            : lm_index_prepare_wire(ip, kind == LM_KIND_POSTING, m, bytes, len);
	if (rc != LM_OK)
		lm_error("follower.apply", "%s %s: cannot index: %s", lm_kind_name(kind),
		    id, lm_strerror(rc));
	return rc;
}

/* Puts a prepared record into idx as the change at seq (0: a snapshot
 * record). Returns LM_OK, LM_ESTALE (idx holds a newer version: nothing
 * changed but the seq), or an error of lm_index_put_prepared, logged. */
static int
put_prepared(
    lm_index *idx, lm_kind kind, const char *id, lm_index_prepared *ip, uint64_t seq)
{
	int rc = lm_index_put_prepared(idx, ip, seq);

	if (rc != LM_OK && rc != LM_ESTALE)
		lm_error("follower.apply", "%s %s: cannot index: %s", lm_kind_name(kind),
		    id, lm_strerror(rc));
	return rc;
}

/* prepare_record (damaged as there), then put_prepared. */
static int
index_record(lm_index *idx, lm_kind kind, const char *id, uint64_t version,
    const void *bytes, size_t len, uint64_t seq, bool *damaged)
{
	lm_index_prepared ip;
	int rc = prepare_record(
	    kind, id, version, bytes, len, lm_index_store(idx) != NULL, &ip, damaged);

	return rc != LM_OK ? rc : put_prepared(idx, kind, id, &ip, seq);
}

/* Applies the stored record of change seq to the follower's index and
 * accounts for its bytes. Returns LM_OK (also when the index already had a
 * newer version) or the error of index_record (damaged as there). */
static int
put_record(lm_follower *f, lm_kind kind, const char *id, uint64_t version,
    const void *bytes, size_t len, uint64_t seq, bool *damaged)
{
	uint64_t old = 0;
	bool had = indexed_size(f, kind, id, &old);
	int rc = index_record(f->idx, kind, id, version, bytes, len, seq, damaged);

	if (rc == LM_ESTALE)
		return LM_OK;
	if (rc != LM_OK)
		return rc;
	if (had)
		account_remove(f, old);
	account_add(f, len);
	return LM_OK;
}

static void
remove_record(lm_follower *f, lm_kind kind, const char *id, uint64_t seq)
{
	uint64_t old = 0;
	bool had = indexed_size(f, kind, id, &old);
	int rc = kind == LM_KIND_POSTING ? lm_index_remove_posting(f->idx, id, seq)
	                                 : lm_index_remove_profile(f->idx, id, seq);
	if (rc == LM_OK && had)
		account_remove(f, old);
}

/* ---- snapshot ------------------------------------------------------------ */

/*
 * The snapshot is loaded into a new index that no query sees, and published
 * with its seq in one step (lm_index_replace): a query sees the index before
 * the load or after it, never part of it, and the index_seq always names
 * what the data holds. A load that fails leaves the follower's index as it
 * was (the new one is dropped) and is retried.
 *
 * Decoding and preparing a record (prepare_record) touch no index, so the
 * load runs them on a helper thread as well as on the follower thread,
 * while the follower thread puts the records into the index in store
 * order, one batch behind: the index is built from the same records in the
 * same order as by a load on one thread, only sooner. The records of a
 * batch are copied out of the read transaction, which ends when the store
 * has been walked, before the last batch is put.
 */
#define LOAD_BATCH      256          /* records per batch */
#define LOAD_BATCH_COPY (256u << 10) /* bytes a batch holds before it is full */

struct load_item {
	lm_kind kind;
	char id[LM_STORE_ID_MAX + 1];
	uint64_t version; /* the store's */
	size_t off, len;  /* the stored record in the batch's buf */
	int rc;           /* of prepare_record */
	bool damaged;     /* rc comes from the record's own bytes */
	lm_index_prepared ip;
};

struct load_batch {
	struct load_item items[LOAD_BATCH];
	size_t n;
	unsigned char *buf; /* the items' stored bytes; `used` of `cap` */
	size_t used, cap;
	atomic_size_t next; /* the next item to claim for preparing */
	atomic_size_t done; /* items prepared */
};

struct load_ctx {
	lm_follower *f;
	lm_index *idx;            /* the new index */
	uint64_t records, bytes;  /* what the new index holds */
	int rc;                   /* why the load stopped */
	struct load_batch *fill;  /* filled by the store walk */
	struct load_batch *ready; /* prepared, not yet put; NULL when none */
	struct load_batch b[2];
	/* The batch being prepared, shared with the helper under mtx. */
	pthread_mutex_t mtx;
	pthread_cond_t cv_work, cv_done;
	struct load_batch *work; /* NULL between batches */
	uint64_t gen;            /* batches published to work, ever */
	unsigned active;         /* helpers inside work */
	bool quit;
	pthread_t helper;
	bool helper_started;
};

/* Prepares items of b until none is left to claim. */
static void
prepare_claimed(struct load_ctx *lc, struct load_batch *b)
{
	size_t i;

	while ((i = atomic_fetch_add(&b->next, 1)) < b->n) {
		struct load_item *it = &b->items[i];
		it->rc = prepare_record(it->kind, it->id, it->version, b->buf + it->off,
		    it->len, lm_index_store(lc->idx) != NULL, &it->ip, &it->damaged);
		if (atomic_fetch_add(&b->done, 1) + 1 == b->n) {
			pthread_mutex_lock(&lc->mtx);
			pthread_cond_signal(&lc->cv_done);
			pthread_mutex_unlock(&lc->mtx);
		}
	}
}

static void *
load_helper(void *arg)
{
	struct load_ctx *lc = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&lc->mtx);
	for (;;) {
		struct load_batch *b;
		while (!lc->quit && (lc->work == NULL || lc->gen == seen))
			pthread_cond_wait(&lc->cv_work, &lc->mtx);
		if (lc->quit)
			break;
		seen = lc->gen;
		b = lc->work;
		lc->active++;
		pthread_mutex_unlock(&lc->mtx);
		prepare_claimed(lc, b);
		pthread_mutex_lock(&lc->mtx);
		if (--lc->active == 0)
			pthread_cond_signal(&lc->cv_done);
	}
	pthread_mutex_unlock(&lc->mtx);
	return NULL;
}

/* Frees the prepared records of b that were not put, and empties it. */
static void
batch_clear(struct load_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		lm_index_prepared_clear(&b->items[i].ip);
	b->n = 0;
	b->used = 0;
	atomic_store(&b->next, 0);
	atomic_store(&b->done, 0);
}

/* Puts the prepared records of b into the new index in order; a record
 * whose bytes are damaged (prepare_record) is left out and counted.
 * Returns 0, or STOP with the reason in lc->rc: a record failed for the
 * moment (the load is retried) or the follower is stopping. */
static int
batch_put(struct load_ctx *lc, struct load_batch *b)
{
	lm_follower *f = lc->f;
	int ret = 0;

	for (size_t i = 0; i < b->n && ret == 0; i++) {
		struct load_item *it = &b->items[i];
		int rc = it->rc;
		if (rc == LM_OK)
			rc = put_prepared(lc->idx, it->kind, it->id, &it->ip, 0);
		if (rc == LM_OK) {
			lc->records++;
			lc->bytes += it->len;
		} else if (it->rc == LM_OK || !it->damaged) {
			lc->rc = rc; /* retried with the whole load */
			ret = STOP;
		} else {
			atomic_fetch_add(&f->errors, 1); /* logged when it failed */
		}
		if (ret == 0 && atomic_load(&f->stop)) {
			lc->rc = LM_ECLOSED;
			ret = STOP;
		}
	}
	batch_clear(b);
	return ret;
}

/* Hands the filled batch to the helper, puts the batch prepared before it,
 * helps preparing, and waits until the filled batch is prepared: it is
 * then the one to put next. Returns 0 or STOP as batch_put. */
static int
load_step(struct load_ctx *lc)
{
	struct load_batch *b = lc->fill;
	int ret = 0;

	pthread_mutex_lock(&lc->mtx);
	lc->work = b;
	lc->gen++;
	pthread_cond_signal(&lc->cv_work);
	pthread_mutex_unlock(&lc->mtx);
	if (lc->ready != NULL)
		ret = batch_put(lc, lc->ready);
	prepare_claimed(lc, b);
	pthread_mutex_lock(&lc->mtx);
	while (atomic_load(&b->done) < b->n || lc->active > 0)
		pthread_cond_wait(&lc->cv_done, &lc->mtx);
	lc->work = NULL;
	pthread_mutex_unlock(&lc->mtx);
	lc->fill = b == &lc->b[0] ? &lc->b[1] : &lc->b[0];
	lc->ready = b;
	return ret;
}

/* Puts every record the store walk added. Returns 0 or STOP as batch_put. */
static int
load_finish(struct load_ctx *lc)
{
	int ret = 0;

	if (lc->fill->n > 0)
		ret = load_step(lc);
	if (ret == 0 && lc->ready != NULL)
		ret = batch_put(lc, lc->ready);
	return ret;
}

static int
load_one(struct load_ctx *lc, lm_kind kind, const char *id, uint64_t version,
    const void *bytes, size_t len)
{
	struct load_batch *b = lc->fill;
	struct load_item *it;
	size_t idlen;

	if (b->used + len > b->cap) {
		size_t cap =
		    b->used + len > LOAD_BATCH_COPY ? b->used + len : LOAD_BATCH_COPY;
		unsigned char *p = realloc(b->buf, cap);
		if (p == NULL) {
			lc->rc = LM_ENOMEM;
			return STOP;
		}
		b->buf = p;
		b->cap = cap;
	}
	it = &b->items[b->n++];
	it->kind = kind;
	it->version = version;
	idlen = strnlen(id, LM_STORE_ID_MAX); /* the store's ids are no longer */
	memcpy(it->id, id, idlen);
	it->id[idlen] = '\0';
	memcpy(b->buf + b->used, bytes, len);
	it->off = b->used;
	it->len = len;
	b->used += len;
	if (atomic_load(&lc->f->stop)) {
		lc->rc = LM_ECLOSED;
		return STOP;
	}
	return b->n == LOAD_BATCH || b->used >= LOAD_BATCH_COPY ? load_step(lc) : 0;
}

static int
load_posting(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	return load_one(arg, LM_KIND_POSTING, id, version, bytes, len);
}

static int
load_profile(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	return load_one(arg, LM_KIND_PROFILE, id, version, bytes, len);
}

/* Starts the helper when there is a second processor to run it: without
 * one (or when it cannot start) the follower thread prepares every batch
 * itself. */
static void
load_init(struct load_ctx *lc, lm_follower *f)
{
	memset(lc, 0, sizeof(*lc));
	lc->f = f;
	lc->rc = LM_OK;
	lc->fill = &lc->b[0];
	pthread_mutex_init(&lc->mtx, NULL);
	pthread_cond_init(&lc->cv_work, NULL);
	pthread_cond_init(&lc->cv_done, NULL);
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
		lc->helper_started =
		    pthread_create(&lc->helper, NULL, load_helper, lc) == 0;
}

static void
load_destroy(struct load_ctx *lc)
{
	if (lc->helper_started) {
		pthread_mutex_lock(&lc->mtx);
		lc->quit = true;
		pthread_cond_signal(&lc->cv_work);
		pthread_mutex_unlock(&lc->mtx);
		pthread_join(lc->helper, NULL);
	}
	for (size_t i = 0; i < 2; i++) {
		batch_clear(&lc->b[i]);
		free(lc->b[i].buf);
	}
	pthread_cond_destroy(&lc->cv_done);
	pthread_cond_destroy(&lc->cv_work);
	pthread_mutex_destroy(&lc->mtx);
}

/* Records seq as the follower's position in the store, dated now plus
 * ahead seconds, and schedules the next record. A failure is logged;
 * trimming may then pass the follower, which reloads (see reload). */
static void
record_position(lm_follower *f, uint64_t seq, int64_t ahead)
{
	int rc = lm_store_reader_set(
	    f->store, f->reader, seq, ahead != 0 ? (int64_t) time(NULL) + ahead : 0);

	clock_gettime(CLOCK_MONOTONIC, &f->next_hb);
	f->next_hb.tv_sec += LM_FOLLOWER_HEARTBEAT_MS / 1000;
	if (rc == LM_OK)
		f->registered = true;
	else
		lm_warn("follower.position", "cannot record the position %llu as %s: %s",
		    (unsigned long long) seq, f->reader, lm_strerror(rc));
}

/* Slack of the heartbeat: wait_wakeup waits LM_FOLLOWER_HEARTBEAT_MS on a
 * clock of milliseconds (or the real-time clock), so it may end a hair
 * before next_hb. A heartbeat due within HB_SLACK_MS counts as due, or the
 * renewal would wait a whole period more. */
#define HB_SLACK_NS (100 * 1000000L)

/* Records the position when the heartbeat is due. */
static void
heartbeat(lm_follower *f)
{
	struct timespec now;

	if (f->reader[0] == '\0')
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	now.tv_nsec += HB_SLACK_NS;
	if (now.tv_nsec >= 1000000000L) {
		now.tv_sec++;
		now.tv_nsec -= 1000000000L;
	}
	if (now.tv_sec > f->next_hb.tv_sec ||
	    (now.tv_sec == f->next_hb.tv_sec && now.tv_nsec >= f->next_hb.tv_nsec))
		record_position(f, atomic_load(&f->seq), 0);
}

static int
load_snapshot(lm_follower *f)
{
	struct load_ctx *lc;
	lm_index_counts counts;
	uint64_t seq = 0, records, bytes, damaged = 0;
	lm_index *idx = NULL;
	int rc;

	if ((lc = malloc(sizeof(*lc))) == NULL)
		return LM_ENOMEM;
	load_init(lc, f);
	/* Recorded first, with the newest seq now: the snapshot's seq is not
	 * lower, so trimming cannot pass it before the next record, which
	 * comes after the load however long it takes (up to the lease past
	 * LM_FOLLOWER_LOAD_AHEAD_S: a load renews nothing). */
	if (f->reader[0] != '\0' && lm_store_last_seq(f->store, &seq) == LM_OK)
		record_position(f, seq, LM_FOLLOWER_LOAD_AHEAD_S);
	if ((rc = lm_index_new(lm_index_model(f->idx), &idx)) == LM_OK &&
	    (rc = lm_index_set_store(idx, lm_index_store(f->idx))) == LM_OK) {
		lm_index_loading(idx);
		lc->idx = idx;
		rc = injected(f, LM_FOLLOWER_READ_SNAPSHOT);
	}
	/* A damaged stored value is passed over (logged; counted once the
	 * load is taken in, not at every attempt), as a change whose value is
	 * damaged is skipped (apply_entry). */
	if (rc == LM_OK)
		rc = lm_store_snapshot_checked(
		    f->store, load_posting, load_profile, lc, &seq, &damaged);
	if (rc == LM_OK)
		rc = load_finish(lc);
	if (rc == STOP)
		rc = lc->rc != LM_OK ? lc->rc : LM_ECLOSED;
	records = lc->records;
	bytes = lc->bytes;
	load_destroy(lc);
	free(lc);
	if (rc != LM_OK) {
		if (!atomic_load(&f->stop))
			lm_error("follower.load",
			    "cannot load the store snapshot: %s; retrying",
			    lm_strerror(rc));
		lm_index_free(idx);
		return rc;
	}
	advance_clock(f, idx);
	if ((rc = lm_index_replace(f->idx, idx, seq)) != LM_OK) {
		lm_error("follower.load",
		    "cannot take the loaded snapshot in: %s; retrying", lm_strerror(rc));
		return rc; /* idx is freed */
	}
	atomic_fetch_add(&f->errors, damaged);
	atomic_store(&f->records, records);
	atomic_store(&f->record_bytes, bytes);
	atomic_store(&f->seq, seq);
	lm_index_counts_get(f->idx, &counts);
	lm_info("follower.loaded",
	    "index loaded at seq %llu: %llu postings (%llu open), %llu profiles, %llu "
	    "errors",
	    (unsigned long long) seq, (unsigned long long) counts.postings,
	    (unsigned long long) counts.open_postings,
	    (unsigned long long) counts.profiles,
	    (unsigned long long) atomic_load(&f->errors));
	atomic_store(&f->loaded, true);
	/* Dated now again: a replica that dies from here on stops holding the
	 * log back one lease later, not LM_FOLLOWER_LOAD_AHEAD_S later. */
	if (f->reader[0] != '\0')
		record_position(f, seq, 0);
	if (f->on_loaded != NULL)
		f->on_loaded(f->arg);
	applied(f, seq);
	return LM_OK;
}

/* ---- change log ----------------------------------------------------------- */

struct collect_ctx {
	lm_follower *f;
	uint64_t upto; /* 0 = no upper bound */
};

/* Copies one change entry into the batch. */
static int
collect(void *arg, uint64_t seq, const Lunamatch__V1__ChangeEntry *e)
{
	struct collect_ctx *cc = arg;
	lm_follower *f = cc->f;
	struct entry *b;

	if (cc->upto != 0 && seq > cc->upto)
		return STOP;
	if (f->nbatch >= LM_FOLLOWER_BATCH_MAX)
		return STOP;
	b = &f->batch[f->nbatch];
	memset(b, 0, sizeof(*b));
	b->seq = seq;
	if (e->kind != LUNAMATCH__V1__RECORD_KIND__RECORD_KIND_POSTING &&
	    e->kind != LUNAMATCH__V1__RECORD_KIND__RECORD_KIND_PROFILE) {
		b->kind = 0; /* skipped when applied */
	} else {
		b->kind = (lm_kind) e->kind;
	}
	if (e->id == NULL || !lm_store_id_ok(e->id))
		b->kind = 0; /* a damaged entry */
	else
		snprintf(b->id, sizeof(b->id), "%s", e->id);
	b->version = e->version;
	b->deleted = e->deleted;
	f->nbatch++;
	return 0;
}

/* Reads up to LM_FOLLOWER_BATCH_MAX entries after `after` (and <= upto when
 * upto != 0) into f->batch. */
static int
read_batch(lm_follower *f, uint64_t after, uint64_t upto)
{
	struct collect_ctx cc = {f, upto};
	int rc;

	f->nbatch = 0;
	if ((rc = injected(f, LM_FOLLOWER_READ_CHANGES)) == LM_OK)
		rc = lm_store_changes(
		    f->store, after, LM_FOLLOWER_BATCH_MAX, collect, &cc, NULL);
	if (rc == STOP)
		rc = LM_OK; /* stopped at the bound or a full batch */
	/* LM_EGONE: see reload. LM_EPARSE (an unreadable entry) also reloads
	 * and counts there; any other failure is retried and counted here. */
	if (rc != LM_OK && rc != LM_EGONE)
		lm_error("follower.changes",
		    "cannot read the change log after seq %llu: %s",
		    (unsigned long long) after, lm_strerror(rc));
	if (rc != LM_OK && rc != LM_EGONE && rc != LM_EPARSE)
		atomic_fetch_add(&f->errors, 1);
	return rc;
}

/* A copy of a stored record, for lm_store_read_checked. */
struct copied {
	void *bytes; /* malloc'd */
	size_t len;
	uint64_t version;
};

static int
copy_record(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct copied *c = arg;

	(void) id;
	if ((c->bytes = malloc(len != 0 ? len : 1)) == NULL)
		return LM_ENOMEM;
	memcpy(c->bytes, bytes, len);
	c->len = len;
	c->version = version;
	return 0;
}

/*
 * Applies one change entry to the index. Returns LM_OK when the entry is
 * done with: applied, or skipped (counted, logged) because the entry or its
 * stored record is damaged, which is told where they are decoded: an id the
 * store refuses (collect), a stored value that does not decode
 * (lm_store_read_checked), record bytes that do not decode or name another
 * key (prepare_record). The index then no longer holds the record: its
 * version there is not the store's. Any other error, whatever its code, is
 * of the moment (out of memory, reader table full, a store or disk
 * failure): the entry is not applied and must be tried again.
 */
static int
apply_entry(lm_follower *f, struct entry *b)
{
	struct copied c = {NULL, 0, 0};
	bool damaged = false;
	int rc;

	if (b->kind != LM_KIND_POSTING && b->kind != LM_KIND_PROFILE) {
		lm_warn("follower.skip", "change seq %llu: unknown record kind or bad id",
		    (unsigned long long) b->seq);
		atomic_fetch_add(&f->errors, 1);
		return LM_OK;
	}
	if (b->deleted) {
		remove_record(f, b->kind, b->id, b->seq);
		return LM_OK;
	}
	/* The store holds the latest version, which may be newer than this
	 * entry's; a later entry then applies the same version again (a no-op). */
	if ((rc = injected(f, LM_FOLLOWER_READ_RECORD)) == LM_OK)
		rc = lm_store_read_checked(
		    f->store, b->kind, b->id, copy_record, &c, &damaged);
	if (rc == LM_ENOENT) {
		remove_record(f, b->kind, b->id, b->seq); /* deleted by a later change */
		return LM_OK;
	}
	if (rc != LM_OK && damaged) {
		/* Logged by the store (store.corrupt); every read fails alike,
		 * and retrying would stop the follower here for good. */
		lm_warn("follower.skip",
		    "change seq %llu: %s %s skipped: its stored value does not decode "
		    "(damaged)",
		    (unsigned long long) b->seq, lm_kind_name(b->kind), b->id);
		atomic_fetch_add(&f->errors, 1);
		remove_record(f, b->kind, b->id, b->seq);
		return LM_OK;
	}
	if (rc != LM_OK) {
		free(c.bytes);
		lm_error("follower.read", "%s %s: cannot read: %s; retrying later",
		    lm_kind_name(b->kind), b->id, lm_strerror(rc));
		atomic_fetch_add(&f->errors, 1);
		return rc;
	}
	rc = put_record(f, b->kind, b->id, c.version, c.bytes, c.len, b->seq, &damaged);
	free(c.bytes);
	if (rc != LM_OK) {
		atomic_fetch_add(&f->errors, 1); /* logged by put_record */
		if (!damaged)
			return rc;
		lm_warn("follower.skip",
		    "change seq %llu: %s %s skipped: its stored record is damaged "
		    "(follower.decode names why)",
		    (unsigned long long) b->seq, lm_kind_name(b->kind), b->id);
		/* The version the index holds is no longer the store's. */
		remove_record(f, b->kind, b->id, b->seq);
	}
	return LM_OK;
}

/*
 * Takes out of the index the records answers found damaged in the store
 * (lm_index_take_damaged) that the index still holds at that version and
 * the store still holds damaged or at that version: a load of the store
 * skips them, so the index then holds what a fresh load would, statistics
 * and counts included. A record the store holds at another version, or no
 * more, has a change entry of its own; a read failing for another reason
 * is left, and the next answer that meets the record notes it again.
 */
static void
remove_damaged(lm_follower *f)
{
	lm_index_damaged d[LM_INDEX_DAMAGED_NOTED];
	size_t n = lm_index_take_damaged(f->idx, d, LM_INDEX_DAMAGED_NOTED);

	for (size_t i = 0; i < n; i++) {
		lm_kind kind = d[i].posting ? LM_KIND_POSTING : LM_KIND_PROFILE;
		struct copied c = {NULL, 0, 0};
		bool damaged = false;
		uint64_t held;
		int rc;

		if (lm_index_record_version(f->idx, d[i].posting, d[i].id, &held) !=
		        LM_OK ||
		    held != d[i].version)
			continue;
		rc = lm_store_read_checked(
		    f->store, kind, d[i].id, copy_record, &c, &damaged);
		free(c.bytes);
		if (rc == LM_OK ? c.version != d[i].version : !damaged)
			continue;
		lm_warn("follower.skip",
		    "%s %s version %llu taken out of the index: its stored record is "
		    "damaged (index.damaged)",
		    lm_kind_name(kind), d[i].id, (unsigned long long) d[i].version);
		atomic_fetch_add(&f->errors, 1);
		remove_record(f, kind, d[i].id, atomic_load(&f->seq));
	}
}

/*
 * Applies one batch of new changes. *more is true when the batch was full.
 * Returns LM_OK, or the error that kept the change log from being read or
 * an entry from being applied (the follower's seq then stays before that
 * entry, which is retried on the next wake-up; the entries before it are
 * applied).
 */
static int
apply_batch(lm_follower *f, bool *more)
{
	uint64_t seq = atomic_load(&f->seq);
	int rc, failed = LM_OK;

	*more = false;
	if ((rc = read_batch(f, seq, 0)) != LM_OK || f->nbatch == 0)
		return rc;
	for (size_t i = 0; i < f->nbatch; i++) {
		if ((failed = apply_entry(f, &f->batch[i])) != LM_OK) {
			f->nbatch = i; /* entry i and later: next wake-up */
			break;
		}
		atomic_fetch_add(&f->applied, 1);
		/* Progress per entry, so that a stop mid-batch resumes after it.
		 * A change of data took its seq with it; an entry skipped or
		 * applied as a no-op moves the seq alone. */
		atomic_store(&f->seq, f->batch[i].seq);
		lm_index_set_seq(f->idx, f->batch[i].seq);
		if (atomic_load(&f->stop) && i + 1 < f->nbatch) {
			f->nbatch = i + 1;
			break;
		}
	}
	if (f->nbatch == 0)
		return failed;
	*more = f->nbatch == LM_FOLLOWER_BATCH_MAX;
	applied(f, atomic_load(&f->seq));
	/* Between the batches of a long drain the clock moves and a new idf
	 * snapshot's build takes its steps, so that a catch-up holds neither
	 * back. After the last batch the caller does that (run,
	 * lm_follower_run_once): once per read of the change log, so that a
	 * change waits for one round of steps at most. */
	if (*more)
		advance_clock(f, f->idx);
	return failed;
}

/*
 * The change log after the follower's position cannot be followed: it was
 * trimmed (why: LM_EGONE), or it holds an entry that cannot be read
 * (LM_EPARSE; read again it would stop the follower there for good).
 * Loads a snapshot as at start, aside, and publishes it whole
 * (lm_index_replace): the snapshot holds every record as of its seq, which
 * is past that entry. Until then queries and the event owner use the
 * current index; a failed load leaves it, and the reload is tried again at
 * the next wake-up.
 */
static int
reload(lm_follower *f, int why)
{
	atomic_fetch_add(&f->reloads, 1);
	if (why == LM_EGONE)
		lm_warn("follower.reload",
		    "the change log after seq %llu was trimmed (this follower was "
		    "away longer than the reader lease): loading a snapshot into a "
		    "fresh index",
		    (unsigned long long) atomic_load(&f->seq));
	else
		lm_warn("follower.reload",
		    "the change log after seq %llu holds an entry that cannot be "
		    "read: loading a snapshot into a fresh index",
		    (unsigned long long) atomic_load(&f->seq));
	return load_snapshot(f);
}

/* Applies everything available now. */
static int
drain(lm_follower *f)
{
	bool more = true;
	int rc = LM_OK;

	remove_damaged(f);
	/* The position is recorded when due also between the batches of a
	 * long drain (a replica catching up), so that its lease does not run
	 * out and trimming pass it meanwhile. */
	while (more && !atomic_load(&f->stop)) {
		rc = apply_batch(f, &more);
		heartbeat(f);
		if ((rc == LM_EGONE || rc == LM_EPARSE) &&
		    (rc = reload(f, rc)) == LM_OK) {
			more = true;
			continue;
		}
		if (rc != LM_OK)
			break; /* cannot read the log: wait for the next wake-up */
	}
	return rc;
}

int
lm_follower_run_once(lm_follower *f)
{
	int rc;

	if (f == NULL || f->started)
		return LM_EINVAL;
	if (!atomic_load(&f->loaded)) {
		if ((rc = load_snapshot(f)) != LM_OK)
			return rc;
	}
	rc = drain(f);
	advance_clock(f, f->idx);
	return rc;
}

/* ---- the thread -------------------------------------------------------- */

/* Waits for a notification, the poll period or a stop, but no longer than
 * LM_FOLLOWER_HEARTBEAT_MS: the drain that follows renews the position,
 * which must happen that often however long the poll period (up to 10
 * minutes) and however quiet the store. */
static void
wait_wakeup(lm_follower *f)
{
	int64_t wait_ms =
	    f->poll_ms < LM_FOLLOWER_HEARTBEAT_MS ? f->poll_ms : LM_FOLLOWER_HEARTBEAT_MS;

	if (f->sub_open && !f->sub_failed) {
		int64_t end = lm_clock_ms() + wait_ms;
		void *buf = NULL;
		size_t sz = 0;
		int rv;
		do
			rv = nng_recv(f->sub, &buf, &sz, NNG_FLAG_ALLOC);
		while (
		    rv == NNG_ETIMEDOUT && !atomic_load(&f->stop) && lm_clock_ms() < end);
		if (rv == 0) {
			ProtobufCMessage *m = NULL;
			char err[128];
			atomic_fetch_add(&f->notifications, 1);
			if (lm_pb_decode(&lunamatch__v1__store_notify__descriptor, buf,
			        sz, LM_FOLLOWER_NOTIFY_MAX, &m, err,
			        sizeof(err)) != LM_OK)
				lm_warn("follower.notify",
				    "ignoring a malformed notification: %s", err);
			else
				lm_debug("follower.notify", "store at seq %llu",
				    (unsigned long long) ((Lunamatch__V1__StoreNotify *)
				                              m)
				        ->last_seq);
			protobuf_c_message_free_unpacked(m, NULL);
			nng_free(buf, sz);
		} else if (rv != NNG_ETIMEDOUT && rv != NNG_ECLOSED) {
			lm_warn(
			    "follower.notify", "receive failed: %s", nng_strerror(rv));
			/* Do not spin on a persistent error: fall back to the
			 * timer. The socket stays open: lm_follower_stop closes
			 * it. */
			f->sub_failed = true;
		}
		if (!f->sub_failed || rv == NNG_ECLOSED)
			return;
	}
	struct timespec ts = lm_clock_deadline(wait_ms);
	pthread_mutex_lock(&f->mtx);
	while (!atomic_load(&f->stop))
		if (pthread_cond_timedwait(&f->cv, &f->mtx, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&f->mtx);
}

static void *
run(void *arg)
{
	lm_follower *f = arg;

	while (!atomic_load(&f->stop) && !atomic_load(&f->loaded)) {
		if (load_snapshot(f) == LM_OK)
			break;
		wait_wakeup(f); /* retry the load after a poll period */
	}
	/* While the index builds a new idf snapshot's lists, no wait between
	 * rounds: a round is a drain and a few steps, so that changes still
	 * come in between steps and the build is not paced by the poll. A
	 * drain that failed is retried after the poll period, as ever. */
	while (!atomic_load(&f->stop)) {
		bool building;
		int rc = drain(f);
		building = advance_clock(f, f->idx); /* also when nothing changed */
		if ((!building || rc != LM_OK) && !atomic_load(&f->stop))
			wait_wakeup(f);
	}
	return NULL;
}

static int
open_sub(lm_follower *f)
{
	int rv;

	if ((rv = nng_sub0_open(&f->sub)) != 0) {
		lm_error("follower.notify", "cannot open the SUB socket: %s",
		    nng_strerror(rv));
		return LM_ENNG;
	}
	if ((rv = nng_socket_set(f->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
	    (rv = nng_socket_set_size(
	         f->sub, NNG_OPT_RECVMAXSZ, LM_FOLLOWER_NOTIFY_MAX)) != 0 ||
	    (rv = nng_socket_set_ms(f->sub, NNG_OPT_RECVTIMEO,
	         (nng_duration) (f->poll_ms < RECV_SLICE_MS ? f->poll_ms
	                                                    : RECV_SLICE_MS))) != 0 ||
	    (rv = nng_socket_set_ms(f->sub, NNG_OPT_RECONNMAXT, 2000)) != 0) {
		lm_error("follower.notify", "cannot set up the SUB socket: %s",
		    nng_strerror(rv));
		nng_close(f->sub);
		return LM_ENNG;
	}
	/* Non-blocking: the dialer retries in the background until ingest
	 * listens, so the two services may start in any order. */
	if ((rv = nng_dial(f->sub, f->notify_url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		lm_error("follower.notify", "cannot dial %s: %s", f->notify_url,
		    nng_strerror(rv));
		nng_close(f->sub);
		return LM_ENNG;
	}
	f->sub_open = true;
	return LM_OK;
}

int
lm_follower_start(lm_follower *f)
{
	int rc;

	if (f == NULL || f->started)
		return LM_EINVAL;
	if (f->notify_url[0] != '\0' && (rc = open_sub(f)) != LM_OK)
		return rc;
	atomic_store(&f->stop, false);
	f->sub_failed = false;
	if (pthread_create(&f->thread, NULL, run, f) != 0) {
		if (f->sub_open)
			nng_close(f->sub);
		f->sub_open = false;
		return LM_ENOMEM;
	}
	f->started = true;
	return LM_OK;
}

void
lm_follower_stop(lm_follower *f)
{
	if (f == NULL || !f->started)
		return;
	pthread_mutex_lock(&f->mtx);
	atomic_store(&f->stop, true);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mtx);
	/* The thread leaves nng_recv within RECV_SLICE_MS; only then is the
	 * socket closed (see RECV_SLICE_MS). sub_open is written only by start
	 * and stop (this thread), so it is read here without a race; a socket
	 * the thread gave up on is closed too. */
	pthread_join(f->thread, NULL);
	/* Bounded: after a close nng 1.5.2 never finishes (a stuck reaper,
	 * LM_RPC_CLOSE_TIMEOUT_MS), every later close waits too. Nothing of
	 * the follower is nng's to call back into, so all is freed anyway. */
	if (f->sub_open && !lm_rpc_close_bounded(f->sub, SUB_CLOSE_MS))
		lm_warn("follower.close.stuck",
		    "the notification socket did not close within %u ms; left to "
		    "nng",
		    SUB_CLOSE_MS);
	f->sub_open = false;
	f->started = false;
}

void
lm_follower_free(lm_follower *f)
{
	if (f == NULL)
		return;
	lm_follower_stop(f);
	if (f->registered && lm_store_reader_remove(f->store, f->reader) != LM_OK)
		lm_warn(
		    "follower.position", "cannot remove the position of %s", f->reader);
	pthread_mutex_destroy(&f->mtx);
	pthread_cond_destroy(&f->cv);
	free(f->batch);
	free(f);
}

void
lm_follower_stats_get(lm_follower *f, lm_follower_stats *out)
{
	out->loaded = atomic_load(&f->loaded);
	out->seq = atomic_load(&f->seq);
	out->applied = atomic_load(&f->applied);
	out->errors = atomic_load(&f->errors);
	out->notifications = atomic_load(&f->notifications);
	out->record_bytes = atomic_load(&f->record_bytes);
	out->records = atomic_load(&f->records);
	out->reloads = atomic_load(&f->reloads);
}

bool
lm_follower_loaded(lm_follower *f)
{
	return atomic_load(&f->loaded);
}

uint64_t
lm_follower_index_bytes(const lm_follower_stats *st)
{
	return st->record_bytes * MEM_PER_RECORD_BYTE + st->records * MEM_PER_RECORD;
}
