/*
 * events.c - new-match events: derivation into the outbox and the sender
 * thread that produces them to Kafka; see events.h and docs/events.md.
 *
 * Derivation (lm_events_on_changes, serialized by derive_lock) reads the
 * index and the outbox's pair states and writes the outcome in outbox
 * transactions. The sender thread owns the producer: it reads pending
 * entries, produces those not already in flight, serves delivery reports
 * and records them in the outbox, so the caller of on_changes never waits
 * for the broker.
 *
 * In-flight bookkeeping: every produced message carries a malloc'd copy of
 * its event id as its opaque. The same pointer is kept in `flight` (the
 * shared hash map, the id as key and value) that the scan consults so an
 * event is produced once per attempt. A delivery report removes the id
 * from the set and frees it, except after a failure: then the id goes back
 * into the set and onto the `cooling` list until the retry the failure
 * joined is due, so the scan passes over it meanwhile while the events of
 * other partitions go on (a partition without a leader holds up only its
 * own events). An id reported delivered whose delivery the outbox could
 * not record (a full disk) goes back into the set too, kept at the front
 * of `delivered` until a later write records it (with a back-off), so that
 * the scan does not produce the event again meanwhile, also across a
 * replacement of the producer. The other ids still in the set when the
 * producer is destroyed are freed there. Only the sender thread touches
 * the set and the lists.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "events.h"
#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"

#define TICK_MS   50   /* longest sleep of the sender between polls */
#define RESCAN_MS 1000 /* pending entries are looked at least this often */
/* Pending events that do not decode, remembered so that each is reported
 * once and passed over by later scans; beyond this many, the rest are
 * reported at every scan. */
#define CORRUPT_MAX 1024
#define PATH_MAX_   4096 /* bytes of <data_dir>/outbox */
#define EVENT_MAX   LM_OUTBOX_ENTRY_MAX

struct failure {
	char *id;          /* owned */
	const char *error; /* static text of librdkafka or of this file */
};

struct lm_events {
	char *brokers, *topic, *client_id;
	double min_score;
	uint32_t top_n;
	int message_timeout_ms;
	int flush_timeout_ms;
	int retry_max_ms; /* lm_events_opts.retry_max_ms or the default */

	lm_outbox *ob;
	rd_kafka_t *rk; /* sender thread only, once started */

	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* guards stop and wake */
	pthread_cond_t cv;
	bool stop;
	bool wake;

	pthread_mutex_t derive_lock; /* serializes lm_events_on_changes */
	atomic_bool interrupted;     /* lm_events_interrupt was called */

	/* Sender thread only. */
	lm_hashmap *flight; /* ids in flight or cooling, owned: key and value are
	                     * one string; at most LM_EVENTS_INFLIGHT_MAX */
	size_t nflight;     /* entries of flight */
	char **delivered;   /* ids reported delivered: [0, nkept) owned by flight
	                     * (their record failed, or they came while it
	                     * waits for its retry), the rest owned here */
	size_t ndelivered, nkept;
	int64_t record_at, record_backoff; /* the next try to record kept ids */
	struct failure *failed;            /* ids reported failed */
	size_t nfailed;
	char **cooling; /* failed ids waiting in flight for their retry
	                 * (owned by flight) */
	size_t ncooling;
	const char **batch_ids, **batch_errs; /* record_reports' arguments */
	size_t nflight_pub;                   /* nflight - ncooling, for other threads */

	/* Outbox writes: the test seam, and whether the last one failed. */
	int (*fault)(void *arg);
	void *fault_arg;
	atomic_bool outbox_failing;
	size_t pairs_page; /* recorded pairs read at a time */

	/* Ids of pending events that do not decode (owned: key and value are
	 * one strdup), at most CORRUPT_MAX; sender thread only. */
	lm_hashmap *corrupt;

	lm_gauge *m_pending;
	lm_counter *m_enqueued, *m_delivered, *m_failed, *m_outbox_errors, *m_recovered;
	lm_counter *m_corrupt, *m_corrupt_keys, *m_stale_pairs, *m_swept;

	/* The last pair a sweep step read ("" before the first); derive_lock. */
	char sweep_cand[LM_OUTBOX_ID_MAX + 1], sweep_job[LM_OUTBOX_ID_MAX + 1];
};

/* ---- time --------------------------------------------------------------- */

/* ---- the in-flight set --------------------------------------------------- */

static bool
flight_has(const lm_events *ev, const char *id)
{
	return lm_hashmap_get(ev->flight, id) != NULL;
}

static void
flight_count(lm_events *ev)
{
	ev->nflight = lm_hashmap_count(ev->flight);
	__atomic_store_n(&ev->nflight_pub,
	    ev->nflight > ev->ncooling + ev->nkept
	        ? ev->nflight - ev->ncooling - ev->nkept
	        : 0,
	    __ATOMIC_RELAXED);
}

/* Adds id (owned by the set from here) unless memory runs out. */
static int
flight_add(lm_events *ev, char *id)
{
	int rc = lm_hashmap_put(ev->flight, id, id);
	flight_count(ev);
	return rc;
}

/* Removes the entry that is exactly the pointer id (not a copy). */
static bool
flight_remove(lm_events *ev, const char *id)
{
	if (lm_hashmap_get(ev->flight, id) != id)
		return false;
	(void) lm_hashmap_remove(ev->flight, id);
	flight_count(ev);
	return true;
}

/* Empties the set of a destroyed producer, except for the kept ids: they
 * were acknowledged and wait only for their record (record_delivered), so
 * a new producer must not send them again meanwhile. */
static void
flight_clear(lm_events *ev)
{
	size_t it = 0, k = 0;
	const char *key;
	void *id;

	for (size_t i = 0; i < ev->nkept; i++)
		(void) flight_remove(ev, ev->delivered[i]);
	while (lm_hashmap_next(ev->flight, &it, &key, &id)) {
		(void) lm_hashmap_remove(ev->flight, key);
		free(id);
		it = 0; /* a removal moves entries: start over (at most
		         * LM_EVENTS_INFLIGHT_MAX entries, once per producer) */
	}
	ev->ncooling = 0; /* freed with the set */
	/* A kept id that memory does not let back into the set stays in the
	 * list as a delivery to record; a scan may produce it again. */
	for (size_t i = 0; i < ev->nkept; i++) {
		char *kept = ev->delivered[i];
		if (flight_add(ev, kept) == LM_OK) {
			ev->delivered[i] = ev->delivered[k];
			ev->delivered[k++] = kept;
		}
	}
	ev->nkept = k;
	flight_count(ev);
}

/* Keeps a failed id (owned) in the set until its retry; frees it when
 * memory runs out (the scan then produces it again at once). */
static void
cool(lm_events *ev, char *id)
{
	ev->ncooling++; /* first: the published count never reads high */
	if (flight_add(ev, id) != LM_OK) {
		ev->ncooling--;
		flight_count(ev);
		free(id);
		return;
	}
	ev->cooling[ev->ncooling - 1] = id;
}

/* Ends the wait of the cooling ids: the next scan produces them again. */
static void
cooled(lm_events *ev)
{
	/* Each removal leaves the count published as it was: the id leaves
	 * flight and the cooling count together. */
	while (ev->ncooling > 0) {
		char *id = ev->cooling[--ev->ncooling];
		if (flight_remove(ev, id))
			free(id);
	}
	flight_count(ev);
}

/* ---- metrics ------------------------------------------------------------ */

static void
update_pending(lm_events *ev)
{
	lm_outbox_counts c;
	if (ev->m_pending != NULL && lm_outbox_counts_get(ev->ob, &c) == LM_OK)
		lm_gauge_set(ev->m_pending, (double) c.pending);
}

/* The failure a test injects into the next outbox write (LM_OK: none). */
static int
injected(lm_events *ev)
{
	return ev->fault != NULL ? ev->fault(ev->fault_arg) : LM_OK;
}

/* Notes the outcome of an outbox write: a failure is counted and makes
 * lm_events_outbox_failing true until a write succeeds again. */
static int
outbox_result(lm_events *ev, int rc)
{
	if (rc != LM_OK)
		lm_counter_add(ev->m_outbox_errors, 1);
	atomic_store(&ev->outbox_failing, rc != LM_OK);
	return rc;
}

/* ---- producer ----------------------------------------------------------- */

static int64_t
next_backoff(const lm_events *ev, int64_t backoff)
{
	return lm_backoff_next(backoff, LM_EVENTS_RETRY_MIN_MS, ev->retry_max_ms);
}

/* Delivery report: runs on the sender thread inside rd_kafka_poll. */
static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	lm_events *ev = opaque;
	char *id = msg->_private;
	(void) rk;

	if (id == NULL)
		return;
	if (lm_hashmap_get(ev->flight, id) != id) {
		lm_error("events.internal", "delivery report for an event not in flight");
		free(id);
		return;
	}
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    ev->ndelivered == LM_EVENTS_INFLIGHT_MAX) {
		/* Cannot happen: every id reported is one in flight, at most
		 * that many. Left pending, it is produced again. */
		lm_error(
		    "events.internal", "more delivery reports than events in flight");
		(void) flight_remove(ev, id);
		free(id);
		return;
	}
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && ev->nkept > 0) {
		/* The deliveries kept wait for a record that failed: this one
		 * joins them in flight (record_delivered), so that no scan
		 * produces it again before it is recorded. */
		ev->delivered[ev->ndelivered++] = ev->delivered[ev->nkept];
		ev->delivered[ev->nkept++] = id;
		flight_count(ev);
		return;
	}
	(void) flight_remove(ev, id);
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		ev->delivered[ev->ndelivered++] = id;
		return;
	}
	if (msg->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
	    msg->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
		free(id); /* withdrawn by us at shutdown: still pending, not a failure */
		return;
	}
	ev->failed[ev->nfailed].id = id;
	ev->failed[ev->nfailed].error = rd_kafka_err2name(msg->err);
	ev->nfailed++;
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void) rk;
	(void) opaque;
	(void) reason; /* may name hosts; the error name is enough */
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		return; /* the sender finds it (lm_kafka_producer_dead) */
	lm_warn("events.kafka_error", "producer: %s",
	    rd_kafka_err2name((rd_kafka_resp_err_t) err));
}

static int
make_producer(lm_events *ev, rd_kafka_t **out)
{
	static const char *const extra[] = {"partitioner", "murmur2_random", NULL};
	lm_kafka_producer_opts o = {.brokers = ev->brokers,
	    .client_id = ev->client_id,
	    .message_timeout_ms = ev->message_timeout_ms,
	    .extra = extra,
	    .dr_msg_cb = dr_cb,
	    .error_cb = error_cb,
	    .opaque = ev};
	char err[512];
	int rc;

	if ((rc = lm_kafka_producer_new(&o, out, err, sizeof(err))) != LM_OK)
		lm_error("events.config", "cannot create the producer: %s", err);
	return rc;
}

/* Records the deliveries reported (and kept) in the outbox, unless a
 * failed record's back-off is not over (force: try anyway). On failure
 * the ids are kept in flight (see above); only a try that was due moves
 * the next one a step of the back-off further: forced tries before it
 * (a producer replaced, in one instant) leave it where it is. Returns the
 * number of events removed from the outbox. */
static size_t
record_delivered(lm_events *ev, bool force)
{
	size_t ndone = ev->ndelivered, n = 0, k;
	int64_t now = lm_clock_ms();
	bool due = now >= ev->record_at;
	int rc;

	if (ndone == 0 || (!force && !due))
		return 0;
	if ((rc = injected(ev)) == LM_OK)
		rc = lm_outbox_mark_delivered_batch(
		    ev->ob, (const char *const *) ev->delivered, ndone, &n);
	/* n counts what was removed also when a split removal failed partway:
	 * tried again, those ids are not pending any more. */
	lm_counter_add(ev->m_delivered, n);
	if (outbox_result(ev, rc) == LM_OK) {
		lm_debug("events.delivered", "%zu events delivered", n);
		for (size_t i = 0; i < ev->nkept; i++)
			(void) flight_remove(ev, ev->delivered[i]);
		for (size_t i = 0; i < ndone; i++)
			free(ev->delivered[i]);
		ev->ndelivered = ev->nkept = 0;
		ev->record_backoff = 0;
		ev->record_at = 0; /* also after a forced try before it was due */
		flight_count(ev);
		return n;
	}
	/* Kept in flight, so that no scan produces them again: a duplicate
	 * for every scan while the outbox cannot be written. One that memory
	 * does not let keep stays pending and is produced again. */
	k = ev->nkept;
	for (size_t i = ev->nkept; i < ndone; i++) {
		char *id = ev->delivered[i];
		if (flight_add(ev, id) == LM_OK)
			ev->delivered[k++] = id;
		else
			free(id);
	}
	ev->ndelivered = ev->nkept = k;
	flight_count(ev);
	if (due) {
		ev->record_backoff = next_backoff(ev, ev->record_backoff);
		ev->record_at = now + ev->record_backoff;
	}
	lm_error("events.outbox",
	    "cannot mark %zu events delivered: %s; kept, tried again in %lld ms", ndone,
	    lm_strerror(rc), (long long) (ev->record_at - now));
	return n;
}

/* Records the reports collected by dr_cb in the outbox (record_delivered).
 * Returns the number of failures recorded. */
static size_t
record_reports(lm_events *ev, bool force)
{
	size_t nfail = ev->nfailed, removed, n;
	int rc;

	removed = record_delivered(ev, force);
	if (nfail > 0) {
		const char **ids = ev->batch_ids, **errs = ev->batch_errs;
		for (size_t i = 0; i < nfail; i++) {
			ids[i] = ev->failed[i].id;
			errs[i] = ev->failed[i].error;
		}
		if ((rc = injected(ev)) == LM_OK)
			rc = lm_outbox_mark_failed_batch(ev->ob, ids, errs, nfail, &n);
		if (outbox_result(ev, rc) != LM_OK)
			lm_error("events.outbox",
			    "cannot record %zu failed deliveries: %s", nfail,
			    lm_strerror(rc));
		lm_counter_add(ev->m_failed, nfail);
		lm_warn("events.retry",
		    "%zu events not delivered (%s); they stay pending", nfail,
		    ev->failed[0].error);
		for (size_t i = 0; i < nfail; i++)
			cool(ev, ev->failed[i].id);
		ev->nfailed = 0;
	}
	if (removed > 0 || nfail > 0)
		update_pending(ev);
	return nfail;
}

/* Destroys the producer. Messages still queued are withdrawn (they stay
 * pending in the outbox); reports that arrive meanwhile are recorded. */
static void
destroy_producer(lm_events *ev)
{
	if (ev->rk == NULL)
		return;
	rd_kafka_purge(ev->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(ev->rk, 0);
	record_reports(ev, true);
	rd_kafka_destroy(ev->rk);
	ev->rk = NULL;
	record_reports(ev, true);
	flight_clear(ev);
}

/* ---- scanning the outbox ------------------------------------------------ */

struct scan {
	lm_events *ev;
	size_t budget; /* new messages we may still produce */
	size_t produced;
	bool full;       /* librdkafka's queue is full */
	const char *err; /* first produce error, recorded as a failure */
	char *bad[64];   /* ids that failed to produce (owned) */
	size_t nbad;
	/* Pending events found not to decode, reported after the scan. */
	size_t ncorrupt, nforgot;                    /* found; of them not remembered */
	char corrupt_id[LM_OUTBOX_EVENT_ID_LEN + 1]; /* the first, and why */
	char corrupt_err[128];
};

/* The entries in flight or cooling, and those known not to decode, are
 * passed over undecoded. */
static bool
scan_skip(void *arg, const char *event_id)
{
	const struct scan *s = arg;
	return flight_has(s->ev, event_id) ||
	       lm_hashmap_get(s->ev->corrupt, event_id) != NULL;
}

/* A pending event that does not decode can never be sent: it is counted
 * (lunamatch_events_corrupt_total) and reported after the scan (one log
 * line for all found by it) once, left in the outbox for an operator, and
 * passed over by later scans. Beyond CORRUPT_MAX remembered, the others
 * are found, counted and reported again at every scan. */
static void
corrupt_seen(struct scan *s, const char *event_id, const char *err)
{
	lm_events *ev = s->ev;
	char *id = NULL;

	if (lm_hashmap_count(ev->corrupt) < CORRUPT_MAX &&
	    ((id = strdup(event_id)) == NULL ||
	        lm_hashmap_put(ev->corrupt, id, id) != LM_OK)) {
		free(id);
		id = NULL;
	}
	if (s->ncorrupt++ == 0) {
		snprintf(s->corrupt_id, sizeof(s->corrupt_id), "%s", event_id);
		snprintf(s->corrupt_err, sizeof(s->corrupt_err), "%s", err);
	}
	if (id == NULL)
		s->nforgot++;
	lm_counter_add(ev->m_corrupt, 1);
}

static int
scan_cb(void *arg, const char *event_id, const Lunamatch__V1__OutboxEntry *entry)
{
	struct scan *s = arg;
	lm_events *ev = s->ev;
	ProtobufCMessage *m = NULL;
	Lunamatch__V1__MatchEvent *me;
	char err[128];
	char *id;
	rd_kafka_resp_err_t e;

	if (s->budget == 0)
		return 1;
	if (entry == NULL) {
		corrupt_seen(s, event_id, "its outbox entry does not decode");
		return 0;
	}
	if (lm_pb_decode(&lunamatch__v1__match_event__descriptor, entry->event.data,
	        entry->event.len, EVENT_MAX, &m, err, sizeof(err)) != LM_OK) {
		corrupt_seen(s, event_id, err);
		return 0;
	}
	me = (Lunamatch__V1__MatchEvent *) m;
	/* Bytes that decode may still be damage: empty ones give an event
	 * with no id, no key and no value, a tombstone once produced. An
	 * event is stored under its own id (lm_outbox_enqueue_batch). */
	if (strcmp(me->event_id, event_id) != 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		corrupt_seen(s, event_id, "its event does not carry its id");
		return 0;
	}
	if ((id = strdup(event_id)) == NULL || flight_add(ev, id) != LM_OK) {
		free(id);
		protobuf_c_message_free_unpacked(m, NULL);
		return 1;
	}
	e = rd_kafka_producev(ev->rk, RD_KAFKA_V_TOPIC(ev->topic),
	    RD_KAFKA_V_KEY(me->candidate_id, strlen(me->candidate_id)),
	    RD_KAFKA_V_VALUE(entry->event.data, entry->event.len),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_HEADER("content-type", LM_EVENTS_CONTENT_TYPE, (ssize_t) -1),
	    RD_KAFKA_V_HEADER("schema", LM_EVENTS_SCHEMA, (ssize_t) -1),
	    RD_KAFKA_V_OPAQUE(id), RD_KAFKA_V_END);
	protobuf_c_message_free_unpacked(m, NULL);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
		s->budget--;
		s->produced++;
		return 0;
	}
	(void) flight_remove(ev, id);
	if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
		free(id);
		s->full = true;
		return 1;
	}
	/* Rejected at once (message too large, unknown topic...): record it as
	 * a failed attempt; it is tried again after the back-off. */
	if (s->err == NULL)
		s->err = rd_kafka_err2name(e);
	if (s->nbad < sizeof(s->bad) / sizeof(s->bad[0])) {
		s->bad[s->nbad++] = id;
		return 0;
	}
	free(id);
	return 1;
}

struct scan_result {
	size_t failed; /* events the producer rejected at once */
	bool limited;  /* stopped for lack of room: more may be pending */
};

/* Produces pending events that are not in flight. */
static struct scan_result
scan(lm_events *ev)
{
	struct scan_result r = {0, true};
	struct scan s;
	int rc;

	memset(&s, 0, sizeof(s));
	s.ev = ev;
	s.budget = LM_EVENTS_INFLIGHT_MAX - ev->nflight;
	if (s.budget == 0)
		return r;
	/* Up to the budget's worth of events to produce, however many entries
	 * before them are in flight (at most LM_EVENTS_INFLIGHT_MAX) or do not
	 * decode: those must not hide the events behind them. */
	rc = lm_outbox_pending_skip(ev->ob, SIZE_MAX, scan_skip, scan_cb, &s);
	if (rc != LM_OK)
		lm_error(
		    "events.outbox", "cannot read pending events: %s", lm_strerror(rc));
	if (s.ncorrupt > 0)
		lm_error("events.corrupt",
		    "%zu pending events do not decode (the first, %s: %s); they are "
		    "never sent and stay in the outbox%s",
		    s.ncorrupt, s.corrupt_id, s.corrupt_err,
		    s.nforgot > 0 ? "; some are reported again at every scan"
		                  : " (reported once)");
	if (s.produced > 0)
		lm_debug("events.produce", "%zu events produced", s.produced);
	if (s.nbad > 0) {
		const char *errs[sizeof(s.bad) / sizeof(s.bad[0])];
		for (size_t i = 0; i < s.nbad; i++)
			errs[i] = s.err;
		rc = injected(ev);
		if (rc == LM_OK)
			rc = lm_outbox_mark_failed_batch(
			    ev->ob, (const char *const *) s.bad, errs, s.nbad, NULL);
		if (outbox_result(ev, rc) != LM_OK) /* the attempt goes unrecorded */
			lm_error("events.outbox", "cannot record %zu rejected events: %s",
			    s.nbad, lm_strerror(rc));
		lm_counter_add(ev->m_failed, s.nbad);
		lm_warn("events.produce", "%zu events rejected by the producer (%s)",
		    s.nbad, s.err);
		for (size_t i = 0; i < s.nbad; i++)
			free(s.bad[i]);
	}
	r.failed = s.nbad;
	r.limited = s.budget == 0 || s.full;
	return r;
}

/* ---- the sender thread -------------------------------------------------- */

static void
flush_at_exit(lm_events *ev)
{
	int64_t deadline;
	if (ev->rk == NULL)
		return;
	deadline = lm_clock_ms() + (ev->flush_timeout_ms > 0 ? ev->flush_timeout_ms : 0);
	while (ev->nflight > ev->ncooling + ev->nkept) {
		int64_t left = deadline - lm_clock_ms();
		if (left <= 0)
			break;
		rd_kafka_poll(ev->rk, (int) (left < 100 ? left : 100));
		record_reports(ev, false);
	}
	if (ev->nflight > ev->ncooling + ev->nkept)
		lm_warn("events.stop",
		    "%zu events unacknowledged at shutdown; they stay pending",
		    ev->nflight - ev->ncooling - ev->nkept);
}

/*
 * The sender: sleeps at most TICK_MS (less when woken), serves delivery
 * reports, and produces pending events when woken by a derivation, every
 * RESCAN_MS, or when reports made room after a scan that ran out of it.
 * Failed deliveries wait (cooling) for a retry with an exponential
 * back-off (LM_EVENTS_RETRY_MIN_MS to LM_EVENTS_RETRY_MAX_MS), so an
 * outage does not turn into a produce/time-out loop; failures that come
 * while a retry is planned join it. The other events go on meanwhile.
 * Only a producer that cannot be made, a fatal error or a rejection at
 * produce time pauses all scanning.
 */
static void *
sender_main(void *arg)
{
	lm_events *ev = arg;
	int64_t next_scan = 0, retry_at = 0, backoff = 0;
	int64_t cool_until = 0;    /* the cooling ids are produced again */
	bool cool_planned = false; /* cool_until is set for the cooling ids */
	bool limited = false;      /* the last scan stopped for lack of room */

	for (;;) {
		bool woken, stop;
		size_t ndone, nfail;
		int64_t now;

		pthread_mutex_lock(&ev->lock);
		if (!ev->stop && !ev->wake) {
			struct timespec ts = lm_clock_deadline(TICK_MS);
			pthread_cond_timedwait(&ev->cv, &ev->lock, &ts);
		}
		woken = ev->wake;
		ev->wake = false;
		stop = ev->stop;
		pthread_mutex_unlock(&ev->lock);
		if (stop)
			break;

		now = lm_clock_ms();
		if (ev->rk == NULL) {
			if (now < retry_at)
				continue;
			if (make_producer(ev, &ev->rk) != LM_OK) {
				backoff = next_backoff(ev, backoff);
				retry_at = now + backoff;
				continue;
			}
		}
		rd_kafka_poll(ev->rk, 0);
		ndone = ev->ndelivered - ev->nkept;
		nfail = record_reports(ev, false);
		now = lm_clock_ms();
		/* Failures join the retry planned, also one that is due now;
		 * the first failure after a retry plans the next one. */
		if (nfail > 0 && !cool_planned) {
			backoff = next_backoff(ev, backoff);
			cool_until = now + backoff;
			cool_planned = true;
		} else if (nfail == 0 && ndone > 0) {
			backoff = 0;
		}
		if (cool_planned && now >= cool_until) {
			cooled(ev);
			cool_planned = false;
			woken = true;
		}
		if (lm_kafka_producer_dead(ev->rk, "events.kafka_fatal")) {
			destroy_producer(ev);
			backoff = next_backoff(ev, backoff);
			retry_at = now + backoff;
			continue;
		}
		if (now < retry_at)
			continue;
		if (woken || now >= next_scan ||
		    (limited && ev->nflight < LM_EVENTS_INFLIGHT_MAX)) {
			struct scan_result r = scan(ev);
			limited = r.limited;
			if (r.failed > 0) {
				backoff = next_backoff(ev, backoff);
				retry_at = now + backoff;
			}
			next_scan = now + RESCAN_MS;
		}
	}
	flush_at_exit(ev);
	destroy_producer(ev);
	return NULL;
}

/* ---- construction ------------------------------------------------------- */

static bool
text_ok(const char *s, size_t max)
{
	return s != NULL && s[0] != '\0' && strnlen(s, max + 1) <= max;
}

int
lm_events_new(const lm_events_opts *o, lm_events **out)
{
	char path[PATH_MAX_];
	lm_events *ev = NULL;
	lm_outbox_counts counts;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL)
		return LM_EINVAL;
	if (!text_ok(o->brokers, LM_KAFKA_BROKERS_MAX - 1)) {
		lm_error("events.config", "brokers must be 1..%d bytes",
		    LM_KAFKA_BROKERS_MAX - 1);
		return LM_EINVAL;
	}
	if (!text_ok(o->topic, LM_KAFKA_TOPIC_MAX)) {
		lm_error(
		    "events.config", "topic must be 1..%d bytes", LM_KAFKA_TOPIC_MAX);
		return LM_EINVAL;
	}
	if (o->client_id != NULL && !text_ok(o->client_id, LM_KAFKA_CLIENT_ID_MAX - 1)) {
		lm_error("events.config", "client id must be 1..%d bytes",
		    LM_KAFKA_CLIENT_ID_MAX - 1);
		return LM_EINVAL;
	}
	if (o->data_dir == NULL || o->data_dir[0] == '\0' ||
	    (size_t) snprintf(path, sizeof(path), "%s/%s", o->data_dir,
	        LM_EVENTS_OUTBOX_SUBDIR) >= sizeof(path)) {
		lm_error("events.config", "data directory missing or too long");
		return LM_EINVAL;
	}
	if (!(o->min_score >= 0 && o->min_score <= 1)) {
		lm_error("events.config", "event min score must be in [0, 1]");
		return LM_EINVAL;
	}
	if (o->top_n < 1 || o->top_n > LM_INDEX_EVENT_TOP_MAX) {
		lm_error(
		    "events.config", "event top N must be 1..%d", LM_INDEX_EVENT_TOP_MAX);
		return LM_EINVAL;
	}
	if (o->message_timeout_ms < 0) {
		lm_error("events.config", "message timeout must be >= 0");
		return LM_EINVAL;
	}
	if (o->retry_max_ms != 0 && o->retry_max_ms < LM_EVENTS_RETRY_MIN_MS) {
		lm_error("events.config", "longest retry pause must be at least %d ms",
		    LM_EVENTS_RETRY_MIN_MS);
		return LM_EINVAL;
	}
	if (o->pairs_page > LM_OUTBOX_PAIRS_MAX) {
		lm_error("events.config", "pairs page must be at most %d",
		    LM_OUTBOX_PAIRS_MAX);
		return LM_EINVAL;
	}
	if ((ev = calloc(1, sizeof(*ev))) == NULL)
		return LM_ENOMEM;
	pthread_mutex_init(&ev->lock, NULL);
	(void) lm_cond_init_monotonic(&ev->cv);
	pthread_mutex_init(&ev->derive_lock, NULL);
	ev->min_score = o->min_score;
	ev->top_n = o->top_n;
	ev->message_timeout_ms = o->message_timeout_ms > 0 ? o->message_timeout_ms
	                                                   : LM_EVENTS_MESSAGE_TIMEOUT_MS;
	ev->flush_timeout_ms =
	    o->flush_timeout_ms == 0 ? LM_EVENTS_FLUSH_TIMEOUT_MS : o->flush_timeout_ms;
	ev->retry_max_ms = o->retry_max_ms > 0 ? o->retry_max_ms : LM_EVENTS_RETRY_MAX_MS;
	ev->fault = o->fault;
	ev->fault_arg = o->fault_arg;
	ev->pairs_page = o->pairs_page > 0 ? o->pairs_page : LM_OUTBOX_PAIRS_MAX;
	if ((ev->brokers = strdup(o->brokers)) == NULL ||
	    (ev->topic = strdup(o->topic)) == NULL ||
	    (ev->client_id = strdup(
	         o->client_id != NULL ? o->client_id : "lunamatch-match")) == NULL ||
	    lm_hashmap_new(&ev->flight) != LM_OK ||
	    lm_hashmap_new(&ev->corrupt) != LM_OK ||
	    (ev->delivered = calloc(LM_EVENTS_INFLIGHT_MAX, sizeof(*ev->delivered))) ==
	        NULL ||
	    (ev->failed = calloc(LM_EVENTS_INFLIGHT_MAX, sizeof(*ev->failed))) == NULL ||
	    (ev->cooling = calloc(LM_EVENTS_INFLIGHT_MAX, sizeof(*ev->cooling))) ==
	        NULL ||
	    (ev->batch_ids = calloc(LM_EVENTS_INFLIGHT_MAX, sizeof(*ev->batch_ids))) ==
	        NULL ||
	    (ev->batch_errs = calloc(LM_EVENTS_INFLIGHT_MAX, sizeof(*ev->batch_errs))) ==
	        NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	if ((rc = lm_outbox_open(path, &ev->ob)) != LM_OK) {
		lm_error("events.open", "cannot open the outbox: %s", lm_strerror(rc));
		goto fail;
	}
	if ((rc = make_producer(ev, &ev->rk)) != LM_OK)
		goto fail;
	if (o->metrics != NULL) {
		ev->m_pending = lm_metrics_gauge(o->metrics, "lunamatch_events_pending",
		    "New-match events in the outbox waiting for delivery", NULL);
		ev->m_enqueued =
		    lm_metrics_counter(o->metrics, "lunamatch_events_enqueued_total",
		        "New-match events written to the outbox", NULL);
		ev->m_delivered = lm_metrics_counter(o->metrics,
		    "lunamatch_events_delivered_total",
		    "New-match events acknowledged by Kafka and removed from the outbox",
		    NULL);
		ev->m_failed = lm_metrics_counter(o->metrics,
		    "lunamatch_events_failed_total",
		    "Failed delivery attempts of new-match events (they stay pending)",
		    NULL);
		ev->m_outbox_errors = lm_metrics_counter(o->metrics,
		    "lunamatch_events_outbox_errors_total",
		    "Failed outbox writes (derived events, delivery records); retried",
		    NULL);
		ev->m_corrupt =
		    lm_metrics_counter(o->metrics, "lunamatch_events_corrupt_total",
		        "Pending events in the outbox that do not decode (never sent; "
		        "each counted once per run while at most 1024)",
		        NULL);
		ev->m_corrupt_keys = lm_metrics_counter(o->metrics,
		    "lunamatch_events_corrupt_pair_keys_total",
		    "Recorded pair keys in the outbox whose counterpart is not a record "
		    "id (disk damage): passed over and deleted (outbox.corrupt)",
		    NULL);
		ev->m_stale_pairs =
		    lm_metrics_counter(o->metrics, "lunamatch_events_stale_pairs_total",
		        "Pairs recorded above under another version of the other record, "
		        "whose update another replica derived (or had not derived yet): "
		        "forgotten and announced again when still above (each may repeat "
		        "an event under the new versions)",
		        NULL);
		ev->m_swept = lm_metrics_counter(o->metrics,
		    "lunamatch_events_pairs_swept_total",
		    "Recorded pairs forgotten by the sweep because one of their records "
		    "is gone, where no derivation on this replica would forget them "
		    "(their records' partitions moved to other replicas)",
		    NULL);
		ev->m_recovered = lm_metrics_counter(o->metrics,
		    "lunamatch_events_recovered_total",
		    "Events found pending at start-up (each may repeat one the previous "
		    "run produced without seeing its delivery report)",
		    NULL);
		if (lm_outbox_counts_get(ev->ob, &counts) == LM_OK)
			lm_counter_add(ev->m_recovered, counts.pending);
		update_pending(ev);
	}
	*out = ev;
	return LM_OK;
fail:
	lm_events_free(ev);
	return rc;
}

int
lm_events_start(lm_events *ev)
{
	int e;
	if (ev == NULL || ev->started)
		return LM_EINVAL;
	if ((e = pthread_create(&ev->thread, NULL, sender_main, ev)) != 0)
		return lm_err_from_errno(e);
	ev->started = true;
	return LM_OK;
}

void
lm_events_free(lm_events *ev)
{
	if (ev == NULL)
		return;
	if (ev->started) {
		pthread_mutex_lock(&ev->lock);
		ev->stop = true;
		pthread_cond_signal(&ev->cv);
		pthread_mutex_unlock(&ev->lock);
		pthread_join(ev->thread, NULL);
	} else if (ev->rk != NULL) {
		destroy_producer(ev); /* nothing was produced */
	}
	lm_outbox_close(ev->ob);
	lm_hashmap_free(ev->flight); /* left with the kept ids, freed below */
	if (ev->corrupt != NULL) {
		size_t it = 0;
		void *id;
		while (lm_hashmap_next(ev->corrupt, &it, NULL, &id))
			free(id);
		lm_hashmap_free(ev->corrupt);
	}
	for (size_t i = 0; i < ev->ndelivered; i++) /* not recorded: pending */
		free(ev->delivered[i]);
	free(ev->delivered);
	free(ev->failed);
	free(ev->cooling);
	free(ev->batch_ids);
	free(ev->batch_errs);
	free(ev->brokers);
	free(ev->topic);
	free(ev->client_id);
	pthread_mutex_destroy(&ev->derive_lock);
	pthread_cond_destroy(&ev->cv);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
}

lm_outbox *
lm_events_outbox(lm_events *ev)
{
	return ev == NULL ? NULL : ev->ob;
}

bool
lm_events_outbox_failing(lm_events *ev)
{
	return ev != NULL && atomic_load(&ev->outbox_failing);
}

struct rd_kafka_s *
lm_events_kafka(lm_events *ev)
{
	return ev != NULL ? ev->rk : NULL;
}

size_t
lm_events_inflight(lm_events *ev)
{
	return ev == NULL ? 0 : __atomic_load_n(&ev->nflight_pub, __ATOMIC_RELAXED);
}

static void
wake_sender(lm_events *ev)
{
	pthread_mutex_lock(&ev->lock);
	ev->wake = true;
	pthread_cond_signal(&ev->cv);
	pthread_mutex_unlock(&ev->lock);
}

/* ---- derivation --------------------------------------------------------- */

/* Candidates of the transaction being built, with the memory their strings
 * point into. */
struct batch {
	lm_event_candidate *c;
	size_t n, cap;
	bool *noted; /* noted[i]: c[i] is a pair the split's decider noted */
	size_t capnoted;
	size_t written_noted; /* noted pairs written, over every flush */
	lm_top_list *tops;    /* owned lists whose items c points into */
	size_t ntops, captops;
	lm_outbox_pair **pairs; /* owned arrays whose ids c points into */
	size_t npairs, cappairs;
	size_t held;     /* pair states in pairs, in all */
	char **subjects; /* copies of subject ids */
	size_t nsubj, capsubj;
};

static int
grow_array(void **arr, size_t *cap, size_t need, size_t size)
{
	size_t ncap;
	void *na;
	if (need <= *cap)
		return LM_OK;
	ncap = *cap == 0 ? 16 : *cap;
	while (ncap < need)
		ncap *= 2;
	if ((na = realloc(*arr, ncap * size)) == NULL)
		return LM_ENOMEM;
	*arr = na;
	*cap = ncap;
	return LM_OK;
}

static void
batch_reset(struct batch *b)
{
	for (size_t i = 0; i < b->ntops; i++)
		lm_top_list_clear(&b->tops[i]);
	for (size_t i = 0; i < b->npairs; i++)
		free(b->pairs[i]);
	for (size_t i = 0; i < b->nsubj; i++)
		free(b->subjects[i]);
	b->n = b->ntops = b->npairs = b->nsubj = b->held = 0;
}

static void
batch_free(struct batch *b)
{
	batch_reset(b);
	free(b->c);
	free(b->noted);
	free(b->tops);
	free(b->pairs);
	free(b->subjects);
	memset(b, 0, sizeof(*b));
}

static lm_event_candidate *
batch_add(struct batch *b)
{
	if (grow_array((void **) &b->c, &b->cap, b->n + 1, sizeof(*b->c)) != LM_OK ||
	    grow_array((void **) &b->noted, &b->capnoted, b->n + 1, sizeof(*b->noted)) !=
	        LM_OK)
		return NULL;
	memset(&b->c[b->n], 0, sizeof(b->c[0]));
	b->noted[b->n] = false;
	return &b->c[b->n++];
}

static int
cmp_item_ptr(const void *a, const void *b)
{
	return strcmp(
	    (*(const lm_top_item *const *) a)->id, (*(const lm_top_item *const *) b)->id);
}

/* One record adds at most a candidate per recorded pair and per item of
 * its top list, and a batch is flushed once it holds LM_EVENTS_TXN_PAIRS:
 * a batch always fits one enqueue, however the records fall. */
_Static_assert(LM_EVENTS_TXN_PAIRS + LM_OUTBOX_PAIRS_MAX + LM_INDEX_EVENT_TOP_MAX <=
                   LM_OUTBOX_BATCH_MAX,
    "a batch of derived pairs must fit one outbox enqueue");

/* Whether the split's decider keeps top item it of subject subj (a pair
 * newly above); counted in split. *noted: the decider noted it. */
static bool
split_keeps(lm_events_split *split, const lm_event_change *ch, const char *subj,
    const lm_top_list *top, const lm_top_item *it, bool *noted)
{
	lm_events_pair p = {
	    .posting = ch->posting,
	    .subject_id = subj,
	    .subject_version = top->subject_version,
	    .other_id = it->id,
	    .other_version = it->version,
	};
	bool keep;

	*noted = false;
	keep = split->fn(split->arg, &p, noted);
	if (!keep)
		*noted = false;
	if (keep)
		split->announced++;
	else
		split->deferred++;
	return keep;
}

static int flush_batch(lm_events *ev, struct batch *b, const char *model_version,
    int64_t now, uint64_t cursor);

/* The top list of a subject, sorted by id for look-ups, and which of its
 * pairs are recorded above already. */
struct topset {
	const lm_top_item **items; /* into the top list; NULL when empty */
	bool *above;               /* above[j]: the pair of items[j] is recorded above */
	size_t n;
};

/* The place of the top item of counterpart id in ts, or -1. */
static ptrdiff_t
topset_find(const struct topset *ts, const char *id)
{
	lm_top_item key = {.id = (char *) id};
	const lm_top_item *kp = &key, **hit;

	if (ts->n == 0)
		return -1;
	hit = bsearch(&kp, ts->items, ts->n, sizeof(*ts->items), cmp_item_ptr);
	return hit == NULL ? -1 : hit - ts->items;
}

/*
 * Adds to b the candidates of prev[0 .. nprev), recorded pairs of subject
 * subj (of version subject_version): all forgotten when gone; else the
 * pairs of the top list are left to it (noting in ts which are recorded
 * above) and the others are looked at again.
 *
 * A pair of the top list recorded above under another version of its
 * counterpart than the current one is forgotten instead, and so announced
 * again by the top list: the counterpart's update was derived by another
 * replica (its partition's owner, whose outbox holds none of this
 * replica's pair states) or is not derived yet, so whether the pair fell
 * below the threshold in between is not known here. Taking it for still
 * above would lose the announcement of its rise; forgetting it may repeat
 * one, under the new versions (counted,
 * lunamatch_events_stale_pairs_total). "Another", not only "an older": a
 * record deleted and, once the store forgot its tombstone, created again
 * starts again from a lower version.
 */
static int
derive_recorded(lm_events *ev, lm_index *idx, const lm_event_change *ch, const char *subj,
    uint64_t subject_version, bool gone, struct topset *ts, const lm_outbox_pair *prev,
    size_t nprev, Lunamatch__V1__MatchTrigger trig, int64_t now, struct batch *b)
{
	for (size_t i = 0; i < nprev; i++) {
		const char *other = prev[i].other_id;
		const char *cid = ch->posting ? other : subj;
		const char *jid = ch->posting ? subj : other;
		lm_event_candidate *c;
		double score = 0;
		bool eligible = false, forget = gone;
		ptrdiff_t j;
		int rc;

		if (!forget && (j = topset_find(ts, other)) >= 0) {
			uint64_t was =
			    ch->posting ? prev[i].candidate_version : prev[i].job_version;
			if (!prev[i].above)
				continue;
			if (ts->items[j]->version == was) {
				ts->above[j] = true;
				continue;
			}
			lm_counter_add(ev->m_stale_pairs, 1);
			forget = true;
		}
		if (!forget && !prev[i].above) {
			/* Below: forgotten once the counterpart is gone. Its
			 * deletion may be derived by another replica, whose
			 * outbox holds none of this replica's pair states. */
			uint64_t v;
			rc = lm_index_record_version(idx, !ch->posting, other, &v);
			if (rc == LM_OK)
				continue;
			if (rc != LM_ENOENT)
				return rc;
			forget = true;
		}
		bool still_above = false;
		if (!forget) {
			/* Above before and absent from the top list: still above
			 * (only pushed out of the top N), below now, or gone.
			 * Still above is recorded again under this record's
			 * version now (no event: it was above), so that the
			 * other record's next derivation here does not take the
			 * pair's state for stale; the other record's version
			 * stays the recorded one, which tells a later
			 * derivation of this record that the other changed
			 * since (see above). */
			rc = lm_index_pair_score(idx, cid, jid, now, &score, &eligible);
			if (rc != LM_OK && rc != LM_ENOENT)
				return rc;
			still_above = rc == LM_OK && eligible && score >= ev->min_score;
			forget = rc == LM_ENOENT;
		}
		if ((c = batch_add(b)) == NULL)
			return LM_ENOMEM;
		c->candidate_id = cid;
		c->job_id = jid;
		if (forget) {
			c->state = LM_PAIR_GONE;
			continue;
		}
		c->state = still_above ? LM_PAIR_ABOVE : LM_PAIR_BELOW;
		c->score = isfinite(score) && score >= 0 && score <= 1 ? score : 0;
		c->candidate_version =
		    ch->posting ? prev[i].candidate_version : subject_version;
		c->job_version = ch->posting ? subject_version : prev[i].job_version;
		c->trigger = trig;
	}
	return LM_OK;
}

/*
 * Adds the candidates of one changed record to b. With split, a pair newly
 * above becomes a candidate only if the split's decider keeps it. The
 * recorded pairs are read ev->pairs_page at a time, every one of them;
 * between two reads, b is written (cursor left alone) once it is large,
 * so that the pair states held stay bounded however many the record has.
 * subj and the top list are b's only from the end on: a write in between
 * does not free them.
 */
static int
derive_subject(lm_events *ev, lm_index *idx, const lm_event_change *ch, bool is_new,
    int64_t now, const char *model_version, lm_events_split *split, struct batch *b)
{
	lm_outbox_side side = ch->posting ? LM_OUTBOX_JOB : LM_OUTBOX_CANDIDATE;
	lm_top_list top;
	struct topset ts = {NULL, NULL, 0};
	lm_outbox_pair *prev;
	char after[LM_OUTBOX_ID_MAX + 1] = "";
	size_t nprev, mark = b->n; /* b's candidates before this record's */
	bool gone = ch->deleted, truncated;
	size_t damaged;
	char *subj = NULL;
	int rc;
	Lunamatch__V1__MatchTrigger trig =
	    !is_new       ? LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_UPDATED
	    : ch->posting ? LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_POSTING
	                  : LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_PROFILE;

	if ((rc = grow_array((void **) &b->subjects, &b->capsubj, b->nsubj + 1,
	         sizeof(*b->subjects))) != LM_OK ||
	    (rc = grow_array((void **) &b->tops, &b->captops, b->ntops + 1,
	         sizeof(*b->tops))) != LM_OK)
		return rc;
	if ((subj = strdup(ch->id)) == NULL)
		return LM_ENOMEM;

	memset(&top, 0, sizeof(top));
	if (!gone) {
		rc = ch->posting ? lm_index_top_for_posting(
		                       idx, subj, ev->top_n, ev->min_score, now, &top)
		                 : lm_index_top_for_profile(
		                       idx, subj, ev->top_n, ev->min_score, now, &top);
		if (rc == LM_ENOENT) {
			gone = true;
		} else if (rc != LM_OK) {
			if (split != NULL && top.damaged) {
				split->damaged = true;
				split->damaged_posting = top.damaged_posting;
				memcpy(split->damaged_id, top.damaged_id,
				    sizeof(split->damaged_id));
			}
			goto fail;
		}
	}
	if (top.n > 0) {
		if ((ts.items = malloc(top.n * sizeof(*ts.items))) == NULL ||
		    (ts.above = calloc(top.n, sizeof(*ts.above))) == NULL) {
			rc = LM_ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < top.n; i++)
			ts.items[i] = &top.items[i];
		ts.n = top.n;
		qsort(ts.items, ts.n, sizeof(*ts.items), cmp_item_ptr);
	}
	do {
		rc = lm_outbox_pairs_after(ev->ob, side, subj, after, ev->pairs_page,
		    &prev, &nprev, &truncated, &damaged);
		if (rc != LM_OK)
			goto fail;
		lm_counter_add(ev->m_corrupt_keys, damaged);
		if (nprev == 0)
			break;
		if ((rc = grow_array((void **) &b->pairs, &b->cappairs, b->npairs + 1,
		         sizeof(*b->pairs))) != LM_OK) {
			free(prev);
			goto fail;
		}
		b->pairs[b->npairs++] = prev; /* owned by b from here on */
		b->held += nprev;
		if ((rc = derive_recorded(ev, idx, ch, subj, top.subject_version, gone,
		         &ts, prev, nprev, trig, now, b)) != LM_OK)
			goto fail;
		memcpy(after, prev[nprev - 1].other_id, sizeof(after));
		/* Written before the next read: the cursor stays before this
		 * change, which a crash derives again. */
		if (truncated &&
		    (b->n >= LM_EVENTS_TXN_PAIRS || b->held >= LM_EVENTS_TXN_HELD)) {
			if ((rc = flush_batch(ev, b, model_version, now, 0)) != LM_OK)
				goto fail;
			mark = 0;
		}
	} while (truncated);

	for (size_t i = 0; i < top.n; i++) {
		const lm_top_item *it = &top.items[i];
		lm_event_candidate *c;
		bool noted = false;
		if (split != NULL) {
			/* Only pairs newly above are offered to the decider. */
			ptrdiff_t j = topset_find(&ts, it->id);
			if ((j < 0 || !ts.above[j]) &&
			    !split_keeps(split, ch, subj, &top, it, &noted))
				continue;
		}
		if ((c = batch_add(b)) == NULL) {
			rc = LM_ENOMEM;
			goto fail;
		}
		b->noted[b->n - 1] = noted;
		c->candidate_id = ch->posting ? it->id : subj;
		c->job_id = ch->posting ? subj : it->id;
		c->candidate_version = ch->posting ? it->version : top.subject_version;
		c->job_version = ch->posting ? top.subject_version : it->version;
		c->score = it->score;
		c->state = LM_PAIR_ABOVE;
		c->trigger = trig;
		c->summary = it->summary;
	}
	free(ts.items);
	free(ts.above);
	b->subjects[b->nsubj++] = subj; /* room made above */
	b->tops[b->ntops++] = top;
	return LM_OK;
fail:
	b->n = mark; /* none points into subj or top any more */
	free(ts.items);
	free(ts.above);
	lm_top_list_clear(&top);
	free(subj);
	return rc;
}

static int
flush_batch(lm_events *ev, struct batch *b, const char *model_version, int64_t now,
    uint64_t cursor)
{
	size_t enq = 0;
	int rc = injected(ev);

	if (rc == LM_OK)
		rc = lm_outbox_enqueue_batch(
		    ev->ob, b->c, b->n, model_version, now, cursor, &enq);
	if (outbox_result(ev, rc) != LM_OK) {
		lm_error("events.outbox", "cannot write %zu derived pairs: %s", b->n,
		    lm_strerror(rc));
		return rc;
	}
	if (enq > 0) {
		lm_counter_add(ev->m_enqueued, enq);
		lm_debug("events.enqueued", "%zu events enqueued", enq);
	}
	for (size_t i = 0; i < b->n; i++)
		b->written_noted += b->noted[i];
	batch_reset(b);
	return LM_OK;
}

int
lm_events_sweep_pairs(lm_events *ev, lm_index *idx, int64_t now, size_t *forgotten)
{
	lm_outbox_pair_ids *ids = NULL;
	lm_event_candidate *gone = NULL;
	size_t n = 0, ngone = 0;
	bool more = false;
	int rc;

	if (forgotten != NULL)
		*forgotten = 0;
	if (ev == NULL || idx == NULL)
		return LM_EINVAL;
	if (atomic_load(&ev->interrupted))
		return LM_ECLOSED;
	pthread_mutex_lock(&ev->derive_lock);
	rc = lm_outbox_pair_ids_after(
	    ev->ob, ev->sweep_cand, ev->sweep_job, LM_EVENTS_SWEEP_PAGE, &ids, &n, &more);
	if (rc == LM_OK && n > 0 && (gone = calloc(n, sizeof(*gone))) == NULL)
		rc = LM_ENOMEM;
	for (size_t i = 0; rc == LM_OK && i < n; i++) {
		uint64_t v;
		int pr = lm_index_record_version(idx, false, ids[i].candidate_id, &v);
		int jr = pr == LM_OK
		             ? lm_index_record_version(idx, true, ids[i].job_id, &v)
		             : LM_OK;
		if (pr == LM_ENOENT || jr == LM_ENOENT) {
			gone[ngone].candidate_id = ids[i].candidate_id;
			gone[ngone].job_id = ids[i].job_id;
			gone[ngone++].state = LM_PAIR_GONE;
		} else if (pr != LM_OK || jr != LM_OK) {
			rc = pr != LM_OK ? pr : jr;
		}
	}
	if (rc == LM_OK && ngone > 0) {
		if ((rc = injected(ev)) == LM_OK)
			rc = lm_outbox_enqueue_batch(ev->ob, gone, ngone,
			    lm_index_model_version(idx), now, 0, NULL);
		if (outbox_result(ev, rc) != LM_OK)
			lm_error("events.sweep",
			    "cannot forget %zu pairs of gone records: %s", ngone,
			    lm_strerror(rc));
	}
	if (rc == LM_OK) {
		if (more && n > 0) {
			memcpy(ev->sweep_cand, ids[n - 1].candidate_id,
			    sizeof(ev->sweep_cand));
			memcpy(ev->sweep_job, ids[n - 1].job_id, sizeof(ev->sweep_job));
		} else { /* the pass has ended: the next step begins another */
			ev->sweep_cand[0] = '\0';
			ev->sweep_job[0] = '\0';
		}
		lm_counter_add(ev->m_swept, ngone);
		if (forgotten != NULL)
			*forgotten = ngone;
		if (ngone > 0)
			lm_info("events.sweep",
			    "%zu recorded pairs of gone records forgotten", ngone);
	}
	pthread_mutex_unlock(&ev->derive_lock);
	free(gone);
	free(ids);
	return rc;
}

/* A change's place in the batch, sorted by (kind, id, position) to find
 * the last change of each record. */
struct chref {
	bool posting;
	const char *id;
	size_t pos;
};

static int
cmp_chref(const void *a, const void *b)
{
	const struct chref *x = a, *y = b;
	int c;
	if (x->posting != y->posting)
		return x->posting ? -1 : 1;
	if ((c = strcmp(x->id, y->id)) != 0)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void
lm_events_interrupt(lm_events *ev)
{
	if (ev != NULL)
		atomic_store(&ev->interrupted, true);
}

/* lm_events_on_changes, and with split lm_events_on_owned. */
static int
on_changes(lm_events *ev, lm_index *idx, const lm_event_change *changes, size_t n,
    uint64_t cursor_seq, int64_t now, lm_events_split *split)
{
	struct batch b;
	struct chref *order = NULL;
	bool *derive = NULL, *fresh = NULL;
	uint64_t stored, seen_seq = 0;
	const char *model_version;
	int rc;

	if (ev == NULL || idx == NULL || (changes == NULL && n > 0) ||
	    n > LM_EVENTS_CHANGES_MAX)
		return LM_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!lm_record_id_valid(changes[i].id)) {
			lm_warn(
			    "events.derive", "change %zu has an invalid record id", i);
			return LM_EINVAL;
		}
	model_version = lm_index_model_version(idx);
	memset(&b, 0, sizeof(b));

	pthread_mutex_lock(&ev->derive_lock);
	if (atomic_load(&ev->interrupted)) {
		rc = LM_ECLOSED; /* also without changes: nothing is written */
		goto out;
	}
	if ((rc = lm_outbox_get_cursor(ev->ob, &stored)) != LM_OK)
		goto out;
	if (cursor_seq != 0 && cursor_seq < stored) {
		lm_warn("events.derive",
		    "change batch ends at seq %llu, before the cursor %llu",
		    (unsigned long long) cursor_seq, (unsigned long long) stored);
		rc = LM_ESTALE;
		goto out;
	}
	/* derive[i]: change i is the last of its record in the batch (and not
	 * derived before); fresh[i]: some change of that record is new. */
	if (n > 0 && ((order = malloc(n * sizeof(*order))) == NULL ||
	                 (derive = calloc(n, sizeof(*derive))) == NULL ||
	                 (fresh = calloc(n, sizeof(*fresh))) == NULL)) {
		rc = LM_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		order[i].posting = changes[i].posting;
		order[i].id = changes[i].id;
		order[i].pos = i;
	}
	if (n > 0)
		qsort(order, n, sizeof(*order), cmp_chref);
	for (size_t g = 0; g < n;) {
		size_t e = g;
		bool any_new = false, any_live = false;
		while (e < n && order[e].posting == order[g].posting &&
		       strcmp(order[e].id, order[g].id) == 0) {
			const lm_event_change *c = &changes[order[e].pos];
			if (c->seq == 0 || c->seq > stored) {
				any_live = true;
				any_new = any_new || c->is_new;
			}
			e++;
		}
		if (any_live) {
			derive[order[e - 1].pos] = true;
			fresh[order[e - 1].pos] = any_new;
		}
		g = e;
	}

	for (size_t i = 0; i < n; i++) {
		if (atomic_load(&ev->interrupted)) {
			/* Shutting down: keep what changes 0..i-1 completed, with
			 * the cursor after them, and leave the rest. */
			uint64_t mid =
			    cursor_seq != 0 && seen_seq > stored ? seen_seq : 0;
			if (mid > cursor_seq)
				mid = cursor_seq;
			if ((rc = flush_batch(ev, &b, model_version, now, mid)) == LM_OK)
				rc = LM_ECLOSED;
			lm_info("events.derive",
			    "interrupted after %zu of %zu changes (cursor %llu)", i, n,
			    (unsigned long long) (mid != 0 ? mid : stored));
			goto out;
		}
		if (changes[i].seq > seen_seq)
			seen_seq = changes[i].seq;
		if (!derive[i])
			continue;
		if ((rc = derive_subject(ev, idx, &changes[i], fresh[i], now,
		         model_version, split, &b)) != LM_OK) {
			if (split != NULL && split->damaged)
				split->damaged_change = i;
			/* LM_EBUSY (the store ahead of the index) is retried
			 * by the caller and is no failure. */
			if (rc == LM_EBUSY)
				lm_debug("events.derive",
				    "record %s: the index is behind the store",
				    changes[i].id);
			else
				lm_error("events.derive",
				    "cannot derive the events of record %s: %s",
				    changes[i].id, lm_strerror(rc));
			goto out;
		}
		if ((b.n >= LM_EVENTS_TXN_PAIRS || b.held >= LM_EVENTS_TXN_HELD) &&
		    i + 1 < n) {
			/* Everything up to change i is complete: its seq may become
			 * the cursor (never past the batch's own end). */
			uint64_t mid =
			    cursor_seq != 0 && seen_seq > stored ? seen_seq : 0;
			if (mid > cursor_seq)
				mid = cursor_seq;
			if ((rc = flush_batch(ev, &b, model_version, now, mid)) != LM_OK)
				goto out;
		}
	}
	rc = flush_batch(ev, &b, model_version, now, cursor_seq);
	update_pending(ev);
out:
	pthread_mutex_unlock(&ev->derive_lock);
	if (split != NULL)
		split->noted = b.written_noted;
	batch_free(&b);
	free(order);
	free(derive);
	free(fresh);
	if (rc == LM_OK)
		wake_sender(ev);
	return rc;
}

int
lm_events_on_changes(lm_events *ev, lm_index *idx, const lm_event_change *changes,
    size_t n, uint64_t cursor_seq, int64_t now)
{
	return on_changes(ev, idx, changes, n, cursor_seq, now, NULL);
}

int
lm_events_on_owned(lm_events *ev, lm_index *idx, const lm_event_change *changes, size_t n,
    lm_events_split *split, int64_t now)
{
	if (split == NULL || split->fn == NULL)
		return LM_EINVAL;
	split->announced = split->deferred = split->noted = 0;
	split->damaged = false;
	return on_changes(ev, idx, changes, n, 0, now, split);
}
