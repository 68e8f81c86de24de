/*
 * decisions.c - the decision log: group commit into a durable queue, and a
 * sender thread that moves the queue to Kafka; see decisions.h.
 *
 * Writer: callers put a `struct entry` (one allocation with the serialized
 * decision behind it) on a list; the writer thread takes the whole list,
 * appends it to the queue in one synced transaction, then calls each
 * entry's done callback with the result and frees the entry. A waiting
 * caller (lm_decisions_log) is one whose callback wakes it.
 *
 * Sender: a pipeline over the queue. A cursor marks the last decision
 * produced in queue order; the sender keeps producing the decisions after
 * it (opaque: the queue seq) while its window has room, serves delivery
 * reports as they come, removes the delivered decisions from the queue in
 * batches, and produces the failed ones again after a back-off, oldest
 * first. A queued entry that does not decode as a decision with an id is
 * never produced: it is logged, counted and removed with the delivered
 * ones. A decision that waits for its report (a partition without a
 * leader holds it up to message.timeout.ms) holds up nothing but its own
 * place in the window: the decisions for the other partitions go on.
 *
 * Waits: what a caller of lm_decisions_log waits for besides the writer's
 * transaction follows from the queue's locking (dqueue.h): a removal of
 * the sender (at most LM_DECISIONS_INFLIGHT_MAX decisions), never its
 * passes, which may also produce decisions appended while they run. No
 * queue or Kafka call is made while `mu` is held.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "decisions.h"
#include "lunamatch/clock.h"
#include "lunamatch/dqueue.h"
#include "lunamatch/error.h"
#include "lunamatch/fault.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "lunamatch/random.h"

#define TICK_MS   50  /* longest wait for delivery reports between looks */
#define REMOVE_MS 100 /* longest wait of a delivered decision for removal */

struct entry {
	struct entry *next;
	lm_dqueue_msg msg; /* data: the bytes after the entry */
	lm_decisions_done_fn done;
	void *arg;
};

struct lm_decisions {
	lm_dqueue *q;
	rd_kafka_t *rk; /* the sender's; replaced after a fatal error */
	char brokers[LM_KAFKA_BROKERS_MAX];
	char client_id[LM_KAFKA_CLIENT_ID_MAX];
	int message_timeout_ms;
	char topic[LM_KAFKA_TOPIC_MAX + 1];
	char replica[LM_DECISIONS_REPLICA_MAX + 1];

	pthread_mutex_t mu;
	/* work_cv and send_cv wait on CLOCK_MONOTONIC (lm_clock_deadline). */
	pthread_cond_t work_cv; /* the writer: entries queued, or stop */
	pthread_cond_t done_cv; /* waiting callers: their entry is done */
	pthread_cond_t send_cv; /* the sender: appended, or stop */
	struct entry *head, **tail;
	/* Entries in memory: on the list and in the batch being written;
	 * at most LM_DECISIONS_QUEUE_MAX. */
	size_t queued;
	bool started, stopping;
	bool healthy;
	int64_t retry_at; /* unhealthy: lm_clock_ms when readiness tries again */
	/* The writer's last deferred sync failed (guarded by mu): only a sync
	 * that works makes the log healthy again (a removal does not; see
	 * remove_delivered). */
	bool sync_failing;
	/* The writer's last append failed (guarded by mu): a sync that works
	 * then does not make the log healthy (it syncs nothing new). */
	bool write_failing;
	bool appended;    /* the writer appended since the sender's last look */
	unsigned sync_ms; /* 0: every transaction synced; else the interval */
	pthread_t writer, sender;
	lm_dqueue_msg *msgs; /* the writer's: one batch, LM_DECISIONS_QUEUE_MAX */

	/* Sender thread only (delivery reports run inside rd_kafka_poll).
	 * The window: every decision produced from the queue is, until it is
	 * removed or produced again, in exactly one of three states: in
	 * flight (outstanding), delivered (its seq in `delivered`, waiting
	 * for its removal) or failed (in `failed`, waiting for its retry).
	 * An entry found damaged (set_aside) is listed in `delivered` too,
	 * without being produced: `damaged` of them are such, not sent.
	 * Together at most LM_DECISIONS_INFLIGHT_MAX, which is also each
	 * list's capacity; the producer holds at most
	 * LM_KAFKA_PRODUCER_QUEUE_KB of them. */
	uint64_t cursor; /* the last seq produced in queue order; 0: none */
	uint64_t *delivered, *failed;
	size_t ndelivered, nfailed, outstanding;
	size_t damaged;          /* of the ndelivered: damaged entries, not sent */
	uint64_t damaged_keys;   /* lm_dqueue_damaged when the sender last looked */
	int64_t delivered_since; /* lm_clock_ms of the oldest listed delivery */
	size_t reports_ok, reports_failed; /* since the sender last looked */
	bool rewind;                       /* read the queue again from the start */
	bool purging; /* renew_producer: the reports are of purged decisions */

	const char *last_error;

	lm_counter *logged, *log_errors, *sent, *send_failures, *corrupt;
	/* Decisions in the queue: set at open, then kept by the writer and
	 * the removals, so that a render of the metrics does not read the
	 * queue: a read waits for a removal (a synced write), and
	 * lm_decisions_free closes the queue while the registry lives on. */
	lm_gauge *pending;
	lm_counter *sync_failures;
	atomic_uint fail_removals; /* lm_decisions_fail_removals */
	atomic_uint fail_syncs;    /* lm_decisions_fail_syncs */
	atomic_uint fail_reads;    /* lm_decisions_fail_reads */
};

/* Marks the log unhealthy after a failed write or sync (mu held). */
static void
set_unhealthy(lm_decisions *d)
{
	d->healthy = false;
	d->retry_at = lm_clock_ms() + LM_DECISIONS_READY_RETRY_MS;
}

/* Wall-clock milliseconds: a decision's decided_at_ms. */
static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- writer -------------------------------------------------------------- */

static void *
writer_main(void *arg)
{
	lm_decisions *d = arg;
	lm_dqueue_msg *msgs = d->msgs;
	bool dirty = false;  /* written since the last sync (sync_ms > 0) */
	int64_t sync_at = 0; /* lm_clock_ms() when the sync is due */
	/* The last sync failed: the writes since the one before are not on
	 * disk for certain, so the log stays unhealthy and the sync is tried
	 * again (every LM_DECISIONS_RETRY_MIN_MS at most) until one works. */

	pthread_mutex_lock(&d->mu);
	for (;;) {
		/* Leaves with entries to write, when stopping, or when a sync is
		 * due (dirty and sync_at passed). */
		while (d->head == NULL && !d->stopping) {
			if (!dirty) {
				pthread_cond_wait(&d->work_cv, &d->mu);
				continue;
			}
			int64_t left = sync_at - lm_clock_ms();
			if (left <= 0)
				break;
			struct timespec ts = lm_clock_deadline(left);
			pthread_cond_timedwait(&d->work_cv, &d->mu, &ts);
		}
		if (dirty && (d->head == NULL || lm_clock_ms() >= sync_at)) {
			bool stop = d->stopping;
			pthread_mutex_unlock(&d->mu);
			int rc =
			    lm_fault_take(&d->fail_syncs) ? LM_EIO : lm_dqueue_sync(d->q);
			if (rc != LM_OK) {
				lm_error("decisions.sync", "decisions not synced: %s; %s",
				    lm_strerror(rc),
				    stop ? "stopping" : "the sync is retried");
				lm_counter_add(d->sync_failures, 1);
			}
			pthread_mutex_lock(&d->mu);
			if (rc == LM_OK) {
				if (d->sync_failing && !d->write_failing)
					d->healthy = true;
				d->sync_failing = false;
				dirty = false;
			} else {
				set_unhealthy(d);
				d->sync_failing = true;
				dirty = !stop;
				sync_at = lm_clock_ms() +
				          (d->sync_ms > LM_DECISIONS_RETRY_MIN_MS
				                  ? d->sync_ms
				                  : LM_DECISIONS_RETRY_MIN_MS);
			}
			continue;
		}
		if (d->head == NULL)
			break; /* stopping, and everything handed in is written */
		struct entry *batch = d->head;
		size_t n = 0;
		d->head = NULL;
		d->tail = &d->head;
		pthread_mutex_unlock(&d->mu);

		/* At most LM_DECISIONS_QUEUE_MAX: queued counts the batch until
		 * its entries are freed, and enqueue refuses more. */
		for (struct entry *e = batch; e != NULL; e = e->next)
			msgs[n++] = e->msg;
		int rc = lm_dqueue_append(d->q, msgs, n, NULL);
		if (rc == LM_OK)
			lm_gauge_add(d->pending, (double) n);
		else
			lm_error("decisions.write", "%zu decisions not logged: %s", n,
			    lm_strerror(rc));

		if (rc == LM_OK && d->sync_ms > 0 && !dirty) {
			dirty = true;
			sync_at = lm_clock_ms() + d->sync_ms;
		}
		pthread_mutex_lock(&d->mu);
		d->write_failing = rc != LM_OK;
		if (rc != LM_OK)
			set_unhealthy(d);
		else if (!d->sync_failing)
			d->healthy = true;
		d->appended = d->appended || rc == LM_OK;
		pthread_cond_signal(&d->send_cv);
		pthread_mutex_unlock(&d->mu);
		lm_counter_add(rc == LM_OK ? d->logged : d->log_errors, n);
		for (struct entry *e = batch, *next; e != NULL; e = next) {
			next = e->next;
			e->done(e->arg, rc);
			free(e);
		}
		pthread_mutex_lock(&d->mu);
		d->queued -= n;
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Serializes rec with a new decision id (into hex), the time and the
 * replica into a new entry, and queues it for the writer. Every refusal
 * but LM_EINVAL (a caller's error) refuses an answer and is counted in
 * log_errors, as the writer counts the decisions of a failed write. */
static int
enqueue(lm_decisions *d, const Lunamatch__V1__Decision *rec, char *hex,
    lm_decisions_done_fn done, void *arg)
{
	Lunamatch__V1__Decision copy;
	struct entry *e = NULL;
	size_t len;
	int rc;

	if (d == NULL || rec == NULL || done == NULL)
		return LM_EINVAL;
	if (lm_random_hex(hex, LM_DECISIONS_ID_LEN / 2) != LM_OK) {
		rc = LM_EIO;
		goto refused;
	}
	copy = *rec;
	copy.decision_id = hex;
	copy.decided_at_ms = now_ms();
	if (copy.replica == NULL || copy.replica[0] == '\0')
		copy.replica = d->replica;
	len = lunamatch__v1__decision__get_packed_size(&copy);
	if (len > LM_DECISIONS_BYTES_MAX) {
		rc = LM_E2BIG;
		goto refused;
	}
	if ((e = malloc(sizeof(*e) + len)) == NULL) {
		rc = LM_ENOMEM;
		goto refused;
	}
	lunamatch__v1__decision__pack(&copy, (uint8_t *) (e + 1));
	e->next = NULL;
	e->msg.data = e + 1;
	e->msg.len = len;
	e->done = done;
	e->arg = arg;

	pthread_mutex_lock(&d->mu);
	if (!d->started || d->stopping)
		rc = LM_ECLOSED;
	else if (d->queued >= LM_DECISIONS_QUEUE_MAX)
		rc = LM_EBUSY;
	else
		rc = LM_OK;
	if (rc == LM_OK) {
		*d->tail = e;
		d->tail = &e->next;
		d->queued++;
		pthread_cond_signal(&d->work_cv);
	}
	pthread_mutex_unlock(&d->mu);
	if (rc == LM_OK)
		return LM_OK;
refused:
	free(e);
	lm_counter_add(d->log_errors, 1);
	return rc;
}

int
lm_decisions_log_async(lm_decisions *d, const Lunamatch__V1__Decision *rec,
    lm_decisions_done_fn done, void *arg)
{
	char hex[LM_DECISIONS_ID_LEN + 1];

	return enqueue(d, rec, hex, done, arg);
}

/* A caller of lm_decisions_log waiting for its entry. */
struct waiter {
	lm_decisions *d;
	int rc;
	bool done;
};

static void
wake(void *arg, int rc)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->d->mu);
	w->rc = rc;
	w->done = true;
	pthread_cond_broadcast(&w->d->done_cv);
	pthread_mutex_unlock(&w->d->mu);
}

int
lm_decisions_log(lm_decisions *d, const Lunamatch__V1__Decision *rec, char *id)
{
	char hex[LM_DECISIONS_ID_LEN + 1];
	struct waiter w = {.d = d};
	int rc;

	if ((rc = enqueue(d, rec, hex, wake, &w)) != LM_OK)
		return rc;
	pthread_mutex_lock(&d->mu);
	while (!w.done)
		pthread_cond_wait(&d->done_cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
	if (w.rc == LM_OK && id != NULL)
		memcpy(id, hex, sizeof(hex));
	return w.rc;
}

/* ---- sender -------------------------------------------------------------- */

/* Delivery report: runs on the sender thread inside rd_kafka_poll. The
 * window bounds both lists (see struct lm_decisions); a report that would
 * overflow one (a broken count) leaves its decision queued and makes the
 * sender read the queue again from the start. */
static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	lm_decisions *d = opaque;
	uint64_t seq = (uint64_t) (uintptr_t) msg->_private;
	(void) rk;
	if (d->outstanding > 0)
		d->outstanding--;
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (d->ndelivered < LM_DECISIONS_INFLIGHT_MAX)
			d->delivered[d->ndelivered++] = seq;
		else
			d->rewind = true;
		d->reports_ok++;
		return;
	}
	if (d->nfailed < LM_DECISIONS_INFLIGHT_MAX)
		d->failed[d->nfailed++] = seq;
	else
		d->rewind = true;
	if (d->purging)
		return;
	d->reports_failed++;
	d->last_error = rd_kafka_err2name(msg->err);
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void) rk;
	(void) opaque;
	(void) reason; /* may name hosts; the error name is enough */
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		return; /* the sender looks for it (producer_usable) */
	lm_warn("decisions.kafka", "%s", rd_kafka_err2name((rd_kafka_resp_err_t) err));
}

/* The decisions of the window: produced and not yet removed or due again. */
static size_t
window(const lm_decisions *d)
{
	return d->outstanding + d->ndelivered + d->nfailed;
}

/* Why a pass over the queue stopped early (lm_dqueue_peek returns the
 * callback's value; negative, so never one of the queue's errors). */
enum { PASS_BUDGET = -1, PASS_REFUSED = -2, PASS_GONE = -3 };

/* One pass over the queue. */
struct pass {
	lm_decisions *d;
	uint64_t want; /* produce_again: the seq looked for */
	rd_kafka_resp_err_t err;
};

/*
 * Sets aside the queued entry seq of len bytes, which does not decode as a
 * decision with an id (disk damage, or bytes the log did not write): it is
 * never produced, since a consumer could neither decode it nor
 * de-duplicate it. It is logged and counted here, once, and listed with
 * the delivered decisions, so that the next removal takes it out of the
 * queue (not counted as sent); behind the cursor, it is not read again
 * meanwhile. Returns 0: the pass goes on after it.
 */
static int
set_aside(lm_decisions *d, uint64_t seq, size_t len)
{
	lm_error("decisions.corrupt",
	    "queued entry %llu (%zu bytes) is no decision with an id: not sent, "
	    "removed from the queue",
	    (unsigned long long) seq, len);
	lm_counter_add(d->corrupt, 1);
	if (d->ndelivered >= LM_DECISIONS_INFLIGHT_MAX) {
		d->rewind = true; /* a broken count, as in dr_cb */
		return 0;
	}
	d->delivered[d->ndelivered++] = seq;
	d->damaged++;
	return 0;
}

/* Produces one queued decision; its key is the decision's subject. Returns
 * 0 (produced, or set aside as damaged), PASS_BUDGET (the producer's queue
 * is full: try when reports made room) or PASS_REFUSED (the producer
 * refused it: p->err). */
static int
produce(struct pass *p, uint64_t seq, const void *data, size_t len)
{
	lm_decisions *d = p->d;
	Lunamatch__V1__Decision *rec;
	const char *key;
	rd_kafka_resp_err_t e;

	rec = lunamatch__v1__decision__unpack(NULL, len, (const uint8_t *) data);
	if (rec == NULL || rec->decision_id == NULL || rec->decision_id[0] == '\0') {
		if (rec != NULL)
			lunamatch__v1__decision__free_unpacked(rec, NULL);
		return set_aside(d, seq, len);
	}
	key = rec->subject_id != NULL ? rec->subject_id : "";
	e = rd_kafka_producev(d->rk, RD_KAFKA_V_TOPIC(d->topic),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, strlen(key)),
	    RD_KAFKA_V_VALUE((void *) data, len),
	    RD_KAFKA_V_HEADER("content-type", LM_DECISIONS_CONTENT_TYPE, -1),
	    RD_KAFKA_V_HEADER("schema", LM_DECISIONS_SCHEMA, -1),
	    RD_KAFKA_V_OPAQUE((void *) (uintptr_t) seq), RD_KAFKA_V_END);
	lunamatch__v1__decision__free_unpacked(rec, NULL);
	if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && d->outstanding > 0)
		return PASS_BUDGET;
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		p->err = e;
		return PASS_REFUSED;
	}
	d->outstanding++;
	return 0;
}

/* lm_dqueue_peek of the sender, where a test's read failure applies. The
 * damaged keys the queue removed meanwhile (it logged them) are counted
 * and leave the pending ones. */
static int
peek(lm_decisions *d, uint64_t after, size_t max, lm_dqueue_fn fn, struct pass *p)
{
	if (lm_fault_take(&d->fail_reads))
		return LM_EIO;
	int rc = lm_dqueue_peek(d->q, after, max, fn, p);
	uint64_t removed = lm_dqueue_damaged(d->q);
	if (removed > d->damaged_keys) {
		lm_counter_add(d->corrupt, removed - d->damaged_keys);
		lm_gauge_add(d->pending, -(double) (removed - d->damaged_keys));
		d->damaged_keys = removed;
	}
	return rc;
}

/* lm_dqueue_peek callback for the decisions after the cursor. */
static int
produce_next(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct pass *p = arg;
	int rc = produce(p, seq, data, len);
	if (rc == 0)
		p->d->cursor = seq;
	return rc;
}

/* lm_dqueue_peek callback for one failed decision, p->want. */
static int
produce_again(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct pass *p = arg;
	if (seq != p->want)
		return PASS_GONE; /* not queued any more */
	return produce(p, seq, data, len);
}

/* The outcome of a pass that stopped with rc: LM_OK when it stopped for
 * a full producer queue, the producer's refusal in *err, a queue error
 * logged. */
static int
pass_end(int rc, const struct pass *p, rd_kafka_resp_err_t *err)
{
	if (rc == PASS_BUDGET)
		return LM_OK;
	if (rc == PASS_REFUSED)
		*err = p->err;
	else if (rc != LM_OK)
		lm_error("decisions.read", "cannot read the queue: %s", lm_strerror(rc));
	return rc;
}

static int
cmp_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

/* Produces the failed decisions again, oldest first; those the producer
 * refuses, a full producer queue leaves or a failed read of the queue stops at
 * stay failed. Returns LM_OK, PASS_REFUSED (*err: the producer's error) or
 * the queue's error (logged); PASS_BUDGET counts as LM_OK. */
static int
produce_failed(lm_decisions *d, rd_kafka_resp_err_t *err)
{
	struct pass p = {.d = d};
	size_t n = d->nfailed, kept = 0, i;
	int rc = LM_OK;

	qsort(d->failed, n, sizeof(*d->failed), cmp_seq);
	d->nfailed = 0; /* produce() counts them as outstanding again */
	for (i = 0; i < n; i++) {
		p.want = d->failed[i];
		rc = peek(d, p.want - 1, 1, produce_again, &p);
		if (rc == PASS_GONE)
			rc = LM_OK;
		if (rc != LM_OK)
			break; /* this one and the rest stay failed */
	}
	for (; i < n; i++)
		d->failed[kept++] = d->failed[i];
	d->nfailed = kept;
	return pass_end(rc, &p, err);
}

/* Produces the decisions after the cursor while the window and the
 * producer's queue have room. Returns as produce_failed. */
static int
produce_new(lm_decisions *d, rd_kafka_resp_err_t *err)
{
	struct pass p = {.d = d};
	size_t used = window(d);

	if (used >= LM_DECISIONS_INFLIGHT_MAX)
		return LM_OK;
	return pass_end(
	    peek(d, d->cursor, LM_DECISIONS_INFLIGHT_MAX - used, produce_next, &p), &p,
	    err);
}

/* Removes the delivered decisions, and the damaged entries set aside, from
 * the queue (sender thread, or free after it). On failure they stay listed,
 * to be removed again later; they are never produced again meanwhile (they
 * are behind the cursor). A removal makes room in the queue, so the log
 * may be healthy again, unless deferred syncs are failing: room does not
 * put the writes on disk. */
static int
remove_delivered(lm_decisions *d)
{
	int rc;

	if (d->ndelivered == 0)
		return LM_OK;
	rc = lm_fault_take(&d->fail_removals)
	         ? LM_EIO
	         : lm_dqueue_remove(d->q, d->delivered, d->ndelivered);
	if (rc != LM_OK) {
		lm_error("decisions.remove",
		    "%zu sent decisions and %zu damaged entries not removed: %s",
		    d->ndelivered - d->damaged, d->damaged, lm_strerror(rc));
		return rc;
	}
	lm_counter_add(d->sent, d->ndelivered - d->damaged);
	lm_gauge_add(d->pending, -(double) d->ndelivered);
	d->ndelivered = 0;
	d->damaged = 0;
	pthread_mutex_lock(&d->mu);
	if (!d->healthy && !d->sync_failing)
		d->retry_at = lm_clock_ms();
	pthread_mutex_unlock(&d->mu);
	return LM_OK;
}

static bool
stopping(lm_decisions *d)
{
	pthread_mutex_lock(&d->mu);
	bool stop = d->stopping;
	pthread_mutex_unlock(&d->mu);
	return stop;
}

/* Waits on send_cv for at most ms, or until stopping; true when stopping.
 * With idle, it does not wait at all when the writer appended since the
 * last look at the queue (look_begins): that look may have come just
 * before the append, whose signal then found nobody waiting. */
static bool
sender_pause(lm_decisions *d, int64_t ms, bool idle)
{
	struct timespec ts = lm_clock_deadline(ms > 0 ? ms : 0);
	pthread_mutex_lock(&d->mu);
	if (!d->stopping && !(idle && d->appended))
		pthread_cond_timedwait(&d->send_cv, &d->mu, &ts);
	bool stop = d->stopping;
	pthread_mutex_unlock(&d->mu);
	return stop;
}

/* Marks a look at the queue: appends from here on wake the idle pause. */
static void
look_begins(lm_decisions *d)
{
	pthread_mutex_lock(&d->mu);
	d->appended = false;
	pthread_mutex_unlock(&d->mu);
}

static int
make_producer(lm_decisions *d)
{
	lm_kafka_producer_opts o = {.brokers = d->brokers,
	    .client_id = d->client_id,
	    .message_timeout_ms = d->message_timeout_ms,
	    .dr_msg_cb = dr_cb,
	    .error_cb = error_cb,
	    .opaque = d};
	char err[512];
	int rc;

	if ((rc = lm_kafka_producer_new(&o, &d->rk, err, sizeof(err))) != LM_OK)
		lm_error("decisions.open", "producer: %s", err);
	return rc;
}

/* Whether the producer exists and has raised no fatal error (an idempotent
 * producer that lost its sequence state fails every message from then on). */
static bool
producer_usable(lm_decisions *d)
{
	return d->rk != NULL && !lm_kafka_producer_dead(d->rk, "decisions.kafka_fatal");
}

/* Drops the producer (what it has in flight stays queued on disk) and makes
 * a new one; the sender then reads the queue again from the start, once
 * what was delivered is removed. */
static int
renew_producer(lm_decisions *d)
{
	if (d->rk != NULL) {
		d->purging = true; /* their reports are no delivery failures */
		rd_kafka_purge(d->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(d->rk, 0);
		rd_kafka_destroy(d->rk);
		d->rk = NULL;
		d->purging = false;
	}
	d->outstanding = 0;
	d->rewind = true;
	return make_producer(d);
}

/* The next back-off after a failure. */
static int64_t
longer(int64_t backoff)
{
	return lm_backoff_next(
	    backoff, LM_DECISIONS_RETRY_MIN_MS, LM_DECISIONS_RETRY_MAX_MS);
}

/* Whether the delivered decisions are due for removal: everything produced
 * has its report, the window is full, enough of them gathered, or the
 * oldest waited REMOVE_MS. Removals are synced transactions:
 * batching them keeps the disk syncs per decision low under load. */
static bool
removal_due(const lm_decisions *d, int64_t now)
{
	return d->ndelivered > 0 &&
	       (d->outstanding == 0 || window(d) >= LM_DECISIONS_INFLIGHT_MAX ||
	           d->ndelivered >= LM_DECISIONS_INFLIGHT_MAX / 8 ||
	           now - d->delivered_since >= REMOVE_MS);
}

static void *
sender_main(void *arg)
{
	lm_decisions *d = arg;
	int64_t backoff = LM_DECISIONS_RETRY_MIN_MS;    /* failed deliveries */
	int64_t rm_backoff = LM_DECISIONS_RETRY_MIN_MS; /* failed removals */
	int64_t retry_at = 0;       /* the failed decisions are produced again */
	bool retry_planned = false; /* retry_at is set for the failed ones */
	int64_t remove_at = 0;      /* a failed removal is tried again */
	int64_t produce_at = 0;     /* producing waits after a refusal or a read
	                             * error of the queue */
	size_t had_delivered = 0;

	while (!stopping(d)) {
		int64_t now = lm_clock_ms(), wait;
		rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
		int rc = LM_OK;

		if (!producer_usable(d)) {
			if (renew_producer(d) != LM_OK) {
				/* Removals need no producer: what was
				 * delivered leaves the queue meanwhile. */
				(void) remove_delivered(d);
				if (sender_pause(d, backoff, false))
					break;
				backoff = longer(backoff);
				continue;
			}
			produce_at = 0;
			retry_planned = false;
		}
		rd_kafka_poll(d->rk, 0);
		if (d->ndelivered > 0 && had_delivered == 0)
			d->delivered_since = now;
		/* Failures join the retry planned, also one that is due now
		 * (one warning per retry); the first failure after a retry
		 * plans the next one. */
		if (d->reports_failed > 0) {
			lm_counter_add(d->send_failures, d->reports_failed);
			if (!retry_planned) {
				lm_warn("decisions.send",
				    "%zu decisions not delivered (%s); retry in "
				    "%lld ms",
				    d->reports_failed, d->last_error,
				    (long long) backoff);
				retry_at = now + backoff;
				backoff = longer(backoff);
				retry_planned = true;
			}
		} else if (d->reports_ok > 0) {
			backoff = LM_DECISIONS_RETRY_MIN_MS;
		}
		d->reports_ok = d->reports_failed = 0;

		if (removal_due(d, now) && now >= remove_at) {
			if (remove_delivered(d) == LM_OK) {
				rm_backoff = LM_DECISIONS_RETRY_MIN_MS;
			} else {
				remove_at = now + rm_backoff;
				rm_backoff = longer(rm_backoff);
			}
		}
		had_delivered = d->ndelivered;
		/* After a new producer (or a broken count), the whole queue is
		 * read again, once nothing delivered is left in it. */
		if (d->rewind && d->ndelivered == 0 && d->outstanding == 0) {
			d->cursor = 0;
			d->nfailed = 0;
			d->rewind = false;
			retry_planned = false;
		}

		bool can_new = !d->rewind && now >= produce_at &&
		               window(d) < LM_DECISIONS_INFLIGHT_MAX;
		if (!d->rewind && d->nfailed > 0 && now >= retry_at &&
		    now >= produce_at) {
			rc = produce_failed(d, &e);
			retry_planned = false;
		}
		if (rc == LM_OK && can_new) {
			look_begins(d);
			rc = produce_new(d, &e);
		}
		if (rc != LM_OK) {
			/* Refused, or the queue cannot be read: wait. */
			if (rc == PASS_REFUSED)
				lm_warn("decisions.produce", "%s", rd_kafka_err2name(e));
			produce_at = now + backoff;
			backoff = longer(backoff);
			can_new = false;
		}

		/* Reports come while something is in flight; otherwise wait for
		 * an append, or for the next retry or removal that is due. */
		if (d->outstanding > 0) {
			rd_kafka_poll(d->rk, TICK_MS);
			continue;
		}
		wait = 1000;
		if (d->nfailed > 0 && !d->rewind) {
			int64_t at = retry_at > produce_at ? retry_at : produce_at;
			if (at - now < wait)
				wait = at - now;
		}
		if (d->ndelivered > 0 && remove_at - now < wait)
			wait = remove_at - now;
		if (produce_at > now && produce_at - now < wait)
			wait = produce_at - now;
		can_new = can_new && window(d) < LM_DECISIONS_INFLIGHT_MAX;
		if (sender_pause(d, wait, can_new))
			break;
	}
	return NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

int
lm_decisions_new(const lm_decisions_opts *o, lm_decisions **out)
{
	lm_decisions *d = NULL;
	char dir[4096];
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL || o->brokers == NULL || o->topic == NULL || o->data_dir == NULL ||
	    strlen(o->brokers) >= LM_KAFKA_BROKERS_MAX ||
	    (o->client_id != NULL && strlen(o->client_id) >= LM_KAFKA_CLIENT_ID_MAX) ||
	    o->topic[0] == '\0' || strlen(o->topic) > LM_KAFKA_TOPIC_MAX ||
	    (o->replica != NULL && strlen(o->replica) > LM_DECISIONS_REPLICA_MAX) ||
	    o->sync_ms > LM_DECISIONS_SYNC_MS_MAX ||
	    (size_t) snprintf(dir, sizeof(dir), "%s/%s", o->data_dir,
	        LM_DECISIONS_SUBDIR) >= sizeof(dir)) {
		lm_error("decisions.open", "invalid decision log options");
		return LM_EINVAL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return LM_ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	(void) lm_cond_init_monotonic(&d->work_cv);
	(void) lm_cond_init_monotonic(&d->send_cv);
	pthread_cond_init(&d->done_cv, NULL);
	if ((d->delivered = calloc(LM_DECISIONS_INFLIGHT_MAX, sizeof(uint64_t))) ==
	        NULL ||
	    (d->failed = calloc(LM_DECISIONS_INFLIGHT_MAX, sizeof(uint64_t))) == NULL ||
	    (d->msgs = calloc(LM_DECISIONS_QUEUE_MAX, sizeof(*d->msgs))) == NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	d->tail = &d->head;
	d->healthy = true;
	snprintf(d->topic, sizeof(d->topic), "%s", o->topic);
	if (o->replica != NULL && o->replica[0] != '\0')
		snprintf(d->replica, sizeof(d->replica), "%s", o->replica);
	else if (gethostname(d->replica, sizeof(d->replica) - 1) != 0)
		snprintf(d->replica, sizeof(d->replica), "unknown");
	if ((rc = lm_dqueue_open(dir,
	         o->max_queue_bytes > 0 ? o->max_queue_bytes
	                                : LM_DECISIONS_MAP_MAX_DEFAULT,
	         "decisions", &d->q)) != LM_OK)
		goto fail;
	d->sync_ms = o->sync_ms;
	if (d->sync_ms > 0 && (rc = lm_dqueue_set_sync(d->q, false)) != LM_OK)
		goto fail;
	snprintf(d->brokers, sizeof(d->brokers), "%s", o->brokers);
	snprintf(d->client_id, sizeof(d->client_id), "%s",
	    o->client_id != NULL ? o->client_id : "lunamatch-match-decisions");
	d->message_timeout_ms = o->message_timeout_ms > 0
	                            ? o->message_timeout_ms
	                            : LM_DECISIONS_MESSAGE_TIMEOUT_MS;
	if ((rc = make_producer(d)) != LM_OK)
		goto fail;
	if (o->metrics != NULL) {
		d->logged =
		    lm_metrics_counter(o->metrics, "lunamatch_decisions_logged_total",
		        "Answers written to the durable decision log.", NULL);
		d->log_errors = lm_metrics_counter(o->metrics,
		    "lunamatch_decisions_log_errors_total",
		    "Answers refused because their decision could not be logged.", NULL);
		d->sent = lm_metrics_counter(o->metrics, "lunamatch_decisions_sent_total",
		    "Decisions acknowledged by Kafka and removed from the queue.", NULL);
		d->sync_failures = lm_metrics_counter(o->metrics,
		    "lunamatch_decisions_sync_failures_total",
		    "Deferred disk syncs of the decision queue that failed "
		    "(LUNAMATCH_DECISION_LOG_SYNC_MS above 0); retried.",
		    NULL);
		d->send_failures = lm_metrics_counter(o->metrics,
		    "lunamatch_decisions_send_failures_total",
		    "Decision deliveries that failed and will be retried.", NULL);
		d->corrupt =
		    lm_metrics_counter(o->metrics, "lunamatch_decisions_corrupt_total",
		        "Damaged entries of the decision queue (a value that is no "
		        "decision with an id, a key that is no sequence number): not "
		        "sent, removed from the queue (decisions.corrupt).",
		        NULL);
		d->pending = lm_metrics_gauge(o->metrics, "lunamatch_decisions_pending",
		    "Decisions in the durable queue, not yet acknowledged by Kafka.",
		    NULL);
		lm_gauge_set(d->pending, (double) lm_dqueue_count(d->q));
	}
	*out = d;
	return LM_OK;
fail:
	lm_decisions_free(d);
	return rc;
}

int
lm_decisions_start(lm_decisions *d)
{
	if (d == NULL || d->started)
		return LM_EINVAL;
	if (pthread_create(&d->writer, NULL, writer_main, d) != 0)
		return LM_ENOMEM;
	if (pthread_create(&d->sender, NULL, sender_main, d) != 0) {
		pthread_mutex_lock(&d->mu);
		d->stopping = true;
		pthread_cond_broadcast(&d->work_cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->writer, NULL);
		return LM_ENOMEM;
	}
	pthread_mutex_lock(&d->mu);
	d->started = true;
	pthread_mutex_unlock(&d->mu);
	return LM_OK;
}

struct rd_kafka_s *
lm_decisions_kafka(lm_decisions *d)
{
	return d != NULL ? d->rk : NULL;
}

void
lm_decisions_free(lm_decisions *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	bool started = d->started;
	d->stopping = true;
	pthread_cond_broadcast(&d->work_cv);
	pthread_cond_broadcast(&d->send_cv);
	pthread_mutex_unlock(&d->mu);
	if (started) {
		pthread_join(d->writer, NULL);
		pthread_mutex_lock(&d->mu);
		pthread_cond_broadcast(&d->send_cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->sender, NULL);
	}
	/* What is in flight stays queued on disk for the next start; what was
	 * confirmed meanwhile is removed. */
	if (d->rk != NULL) {
		rd_kafka_purge(d->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(d->rk, 0);
		rd_kafka_destroy(d->rk);
	}
	if (d->q != NULL)
		(void) remove_delivered(d);
	lm_dqueue_close(d->q);
	pthread_cond_destroy(&d->send_cv);
	pthread_cond_destroy(&d->done_cv);
	pthread_cond_destroy(&d->work_cv);
	pthread_mutex_destroy(&d->mu);
	free(d->delivered);
	free(d->failed);
	free(d->msgs);
	free(d);
}

bool
lm_decisions_healthy(lm_decisions *d)
{
	if (d == NULL)
		return false;
	pthread_mutex_lock(&d->mu);
	bool ok = d->healthy || lm_clock_ms() >= d->retry_at;
	pthread_mutex_unlock(&d->mu);
	return ok;
}

void
lm_decisions_count_refused(lm_decisions *d)
{
	if (d != NULL)
		lm_counter_add(d->log_errors, 1);
}

void
lm_decisions_fail_removals(lm_decisions *d, unsigned n)
{
	atomic_store(&d->fail_removals, n);
}

void
lm_decisions_fail_syncs(lm_decisions *d, unsigned n)
{
	atomic_store(&d->fail_syncs, n);
}

unsigned
lm_decisions_fail_reads(lm_decisions *d, unsigned n)
{
	return atomic_exchange(&d->fail_reads, n);
}

uint64_t
lm_decisions_pending(lm_decisions *d)
{
	return d != NULL ? lm_dqueue_count(d->q) : 0;
}
