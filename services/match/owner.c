/*
 * owner.c - partition-owned event derivation; see owner.h.
 *
 * The thread polls the shared-group consumer into a batch (at most
 * LM_OWNER_BATCH_MAX messages, ended early when the consumer has nothing
 * more at once), waits message by message until the index reflects it,
 * derives the batch into the outbox and then stores and commits its
 * offsets. Offsets are committed asynchronously after each batch and
 * synchronously when partitions are revoked and at the stop. A revocation
 * that arrives while a batch is being collected drops the batch: its
 * offsets were not committed, so whoever owns the partitions next reads
 * those messages again.
 *
 * The probe handle is a second consumer configured with the replica's
 * ingest group id that never subscribes: it only asks the group
 * coordinator for that group's committed offsets (rd_kafka_committed).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "ingest.h"
#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "owner.h"

#define POLL_MS        100  /* longest wait of one consumer poll */
#define WAIT_SLICE_MS  50   /* a waiting message is looked at least this often */
#define PROBE_TIMEOUT  5000 /* one rd_kafka_committed */
#define COMMIT_TIMEOUT 5000 /* rd_kafka_consumer_close */

/* One message of the batch and what ingest's rule makes of it. */
struct item {
	rd_kafka_message_t *m; /* owned */
	lm_ingest_decision d;
};

struct lm_owner {
	char *topic_postings, *topic_profiles;
	lm_store *store;
	lm_index *idx;
	lm_events *events;
	const lm_record_ctx *rctx;

	rd_kafka_t *rk;    /* the shared group's consumer */
	rd_kafka_t *probe; /* the ingest group's committed offsets */

	/* Owner thread only. */
	struct item *batch;
	size_t n;
	lm_event_change *changes;
	int64_t last_probe;

	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool woken; /* under mtx */

	_Atomic uint64_t messages, rejected, probes, failures, rebalances;
	atomic_int partitions;
	atomic_bool failing;

	lm_counter *m_messages, *m_failures;
};

/* ---- batch ---------------------------------------------------------------- */

static void
batch_drop(lm_owner *ow)
{
	for (size_t i = 0; i < ow->n; i++) {
		lm_ingest_decision_clear(&ow->batch[i].d);
		rd_kafka_message_destroy(ow->batch[i].m);
	}
	ow->n = 0;
}

/* ---- Kafka ---------------------------------------------------------------- */

static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	lm_owner *ow = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		atomic_fetch_add(&ow->rebalances, 1);
		atomic_store(&ow->partitions, parts->cnt);
		lm_info("owner.assign", "now owning %d partitions", parts->cnt);
		rd_kafka_assign(rk, parts);
		return;
	}
	/* Revoked (or an error): what was collected is not ours any more. */
	if (ow->n > 0)
		lm_info("owner.revoke", "%zu collected messages left to the next owner",
		    ow->n);
	batch_drop(ow);
	if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		rd_kafka_resp_err_t e = rd_kafka_commit(rk, NULL, 0);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
			lm_warn("owner.commit", "commit at revoke failed: %s",
			    rd_kafka_err2name(e));
	} else {
		lm_warn("owner.rebalance", "rebalance error: %s", rd_kafka_err2name(err));
	}
	atomic_store(&ow->partitions, 0);
	rd_kafka_assign(rk, NULL);
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void) rk;
	(void) opaque;
	lm_warn("owner.kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t) err),
	    reason);
}

/* A consumer in group; with rebalance set, the shared group's. */
static int
make_consumer(const lm_owner_opts *o, lm_owner *ow, const char *group, bool rebalance,
    rd_kafka_t **out)
{
	rd_kafka_conf_t *conf = NULL;
	char err[512], session[32];
	int rc;

	*out = NULL;
	snprintf(session, sizeof(session), "%d", LM_OWNER_SESSION_MS);
	if ((rc = lm_kafka_conf(o->brokers,
	         o->client_id != NULL ? o->client_id : "lunamatch-match-events", &conf,
	         err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "group.id", group, err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "enable.auto.commit", "false", err, sizeof(err))) !=
	        LM_OK ||
	    (rc = lm_kafka_set(
	         conf, "enable.auto.offset.store", "false", err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(
	         conf, "auto.offset.reset", "earliest", err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "session.timeout.ms", session, err, sizeof(err))) !=
	        LM_OK ||
	    (rc = lm_kafka_set(
	         conf, "heartbeat.interval.ms", "1000", err, sizeof(err))) != LM_OK ||
	    (rc = lm_kafka_set(conf, "fetch.message.max.bytes", "1048576", err,
	         sizeof(err))) != LM_OK) {
		lm_error("owner.config", "%s", err);
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	rd_kafka_conf_set_opaque(conf, ow);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if (rebalance)
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	if ((*out = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) == NULL) {
		lm_error("owner.kafka", "cannot create a consumer: %s", err);
		rd_kafka_conf_destroy(conf);
		return LM_EKAFKA;
	}
	return LM_OK;
}

/* ---- readiness -------------------------------------------------------------- */

/* The version of (posting, id) in the index; false when it is not there. */
static bool
index_version(lm_owner *ow, bool posting, const char *id, uint64_t *version)
{
	if (posting) {
		Lunamatch__V1__JobPosting *p = NULL;
		if (lm_index_get_posting(ow->idx, id, &p) != LM_OK || p == NULL)
			return false;
		*version = p->version;
		protobuf_c_message_free_unpacked(&p->base, NULL);
	} else {
		Lunamatch__V1__CandidateProfile *c = NULL;
		if (lm_index_get_profile(ow->idx, id, &c) != LM_OK || c == NULL)
			return false;
		*version = c->version;
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	return true;
}

/* Whether the index shows the message's effect by itself. */
static bool
visible(lm_owner *ow, const struct item *it)
{
	uint64_t v = 0;
	bool has = index_version(ow, it->d.kind == LM_KIND_POSTING, it->d.id, &v);

	if (it->d.action == LM_INGEST_DELETE)
		return !has;
	return has && v >= it->d.version;
}

/*
 * Asks the ingest group whether it has committed past the message. On true
 * *seq is the store's last change seq read after the answer: once the index
 * has applied it, the index reflects the message (and everything before it
 * in the partition).
 */
static bool
ingest_passed(lm_owner *ow, const rd_kafka_message_t *m, uint64_t *seq)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_t *tp;
	rd_kafka_resp_err_t e;
	bool passed = false;

	tp = rd_kafka_topic_partition_list_add(
	    l, rd_kafka_topic_name(m->rkt), m->partition);
	atomic_fetch_add(&ow->probes, 1);
	e = rd_kafka_committed(ow->probe, l, PROBE_TIMEOUT);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR && tp->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    tp->offset > m->offset)
		passed = lm_store_last_seq(ow->store, seq) == LM_OK;
	else if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_debug("owner.probe", "committed offsets of the ingest group: %s",
		    rd_kafka_err2name(e));
	rd_kafka_topic_partition_list_destroy(l);
	return passed;
}

/* Sleeps until woken or WAIT_SLICE_MS passed. */
static void
wait_slice(lm_owner *ow)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long) WAIT_SLICE_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ow->mtx);
	while (!ow->woken && !atomic_load(&ow->stop))
		if (pthread_cond_timedwait(&ow->cv, &ow->mtx, &ts) == ETIMEDOUT)
			break;
	ow->woken = false;
	pthread_mutex_unlock(&ow->mtx);
}

/* Waits until the index reflects item it. Returns LM_OK, or LM_ECLOSED
 * when the owner is stopping. */
static int
wait_visible(lm_owner *ow, const struct item *it)
{
	uint64_t seq = 0;
	bool passed = false;

	while (!atomic_load(&ow->stop)) {
		if (passed ? lm_index_seq(ow->idx) >= seq : visible(ow, it))
			return LM_OK;
		if (!passed && lm_clock_ms() - ow->last_probe >= LM_OWNER_PROBE_MS) {
			ow->last_probe = lm_clock_ms();
			passed = ingest_passed(ow, it->m, &seq);
			continue;
		}
		wait_slice(ow);
	}
	return LM_ECLOSED;
}

/* ---- the batch ------------------------------------------------------------------ */

/* Adds message m (taken over) to the batch with ingest's decision on it. */
static int
collect(lm_owner *ow, rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	struct item *it = &ow->batch[ow->n];
	lm_ingest_msg im;
	const void *ct = NULL;
	size_t ctlen = 0;
	rd_kafka_headers_t *h = NULL;
	int rc;

	memset(&im, 0, sizeof(im));
	im.kind =
	    strcmp(topic, ow->topic_postings) == 0 ? LM_KIND_POSTING : LM_KIND_PROFILE;
	im.key = m->key;
	im.key_len = m->key_len;
	im.value = m->payload;
	im.value_len = m->len;
	if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    rd_kafka_header_get_last(h, "content-type", &ct, &ctlen) ==
	        RD_KAFKA_RESP_ERR_NO_ERROR) {
		im.content_type = ct;
		im.content_type_len = ctlen;
	}
	memset(it, 0, sizeof(*it));
	if ((rc = lm_ingest_decide(ow->rctx, &im, &it->d)) != LM_OK) {
		rd_kafka_message_destroy(m);
		return rc;
	}
	it->m = m;
	ow->n++;
	return LM_OK;
}

/* Derives the batch into the outbox; retried until it succeeds or the
 * owner stops. Returns LM_OK or LM_ECLOSED. */
static int
derive(lm_owner *ow)
{
	size_t nc = 0;
	int64_t backoff = 100;
	int rc;

	for (size_t i = 0; i < ow->n; i++) {
		const lm_ingest_decision *d = &ow->batch[i].d;
		if (d->action == LM_INGEST_REJECT)
			continue;
		ow->changes[nc++] = (lm_event_change){
		    .seq = 0,
		    .posting = d->kind == LM_KIND_POSTING,
		    .id = d->id,
		    .version = d->version,
		    .deleted = d->action == LM_INGEST_DELETE,
		    .is_new = d->action == LM_INGEST_PUT && d->version <= 1,
		};
	}
	while (!atomic_load(&ow->stop)) {
		rc = lm_events_on_changes(
		    ow->events, ow->idx, ow->changes, nc, 0, (int64_t) time(NULL));
		if (rc == LM_OK) {
			atomic_store(&ow->failing, false);
			return LM_OK;
		}
		if (rc == LM_ECLOSED)
			break;
		atomic_fetch_add(&ow->failures, 1);
		lm_counter_add(ow->m_failures, 1);
		atomic_store(&ow->failing, true);
		lm_error("owner.derive",
		    "cannot derive the events of %zu messages: %s; retrying in %lld ms",
		    ow->n, lm_strerror(rc), (long long) backoff);
		for (int64_t end = lm_clock_ms() + backoff;
		     lm_clock_ms() < end && !atomic_load(&ow->stop);)
			wait_slice(ow);
		backoff = backoff * 2 < LM_OWNER_RETRY_MAX_MS ? backoff * 2
		                                              : LM_OWNER_RETRY_MAX_MS;
	}
	return LM_ECLOSED;
}

/* Stores the offsets after every message of the batch and commits them
 * asynchronously. */
static void
commit(lm_owner *ow)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new((int) ow->n);
	rd_kafka_resp_err_t e;
	size_t rejected = 0;

	for (size_t i = 0; i < ow->n; i++) {
		const rd_kafka_message_t *m = ow->batch[i].m;
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
		    l, rd_kafka_topic_name(m->rkt), m->partition);
		if (tp == NULL)
			tp = rd_kafka_topic_partition_list_add(
			    l, rd_kafka_topic_name(m->rkt), m->partition);
		if (m->offset + 1 > tp->offset)
			tp->offset = m->offset + 1;
		rejected += ow->batch[i].d.action == LM_INGEST_REJECT;
	}
	if ((e = rd_kafka_offsets_store(ow->rk, l)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_warn("owner.commit", "cannot store offsets: %s", rd_kafka_err2name(e));
	else if ((e = rd_kafka_commit(ow->rk, NULL, 1)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
	         e != RD_KAFKA_RESP_ERR__NO_OFFSET)
		lm_warn("owner.commit", "commit failed: %s", rd_kafka_err2name(e));
	rd_kafka_topic_partition_list_destroy(l);
	atomic_fetch_add(&ow->messages, ow->n);
	atomic_fetch_add(&ow->rejected, rejected);
	lm_counter_add(ow->m_messages, ow->n);
}

/* Waits for, derives and commits the collected batch. */
static void
process(lm_owner *ow)
{
	for (size_t i = 0; i < ow->n; i++)
		if (ow->batch[i].d.action != LM_INGEST_REJECT &&
		    wait_visible(ow, &ow->batch[i]) != LM_OK)
			return; /* stopping: left uncommitted */
	if (derive(ow) != LM_OK)
		return;
	commit(ow);
	batch_drop(ow);
}

/* Takes one polled message: into the batch, or logged and dropped. */
static void
take(lm_owner *ow, rd_kafka_message_t *m)
{
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			lm_warn("owner.consume", "%s", rd_kafka_message_errstr(m));
		rd_kafka_message_destroy(m);
		return;
	}
	if (collect(ow, m) != LM_OK)
		lm_error("owner.consume", "out of memory deciding a message");
}

static void *
run(void *arg)
{
	lm_owner *ow = arg;

	while (!atomic_load(&ow->stop)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(ow->rk, POLL_MS);
		if (m == NULL)
			continue;
		take(ow, m);
		/* Fill the batch with what the consumer has at once. */
		while (ow->n > 0 && ow->n < LM_OWNER_BATCH_MAX &&
		       (m = rd_kafka_consumer_poll(ow->rk, 0)) != NULL)
			take(ow, m);
		if (ow->n > 0)
			process(ow);
	}
	batch_drop(ow);
	return NULL;
}

/* ---- life cycle --------------------------------------------------------------- */

static bool
given(const char *s)
{
	return s != NULL && s[0] != '\0';
}

int
lm_owner_new(const lm_owner_opts *o, lm_owner **out)
{
	lm_owner *ow;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL || !given(o->brokers) || !given(o->topic_postings) ||
	    !given(o->topic_profiles) || !given(o->ingest_group_id) || o->store == NULL ||
	    o->index == NULL || o->events == NULL || o->rctx == NULL ||
	    strcmp(o->topic_postings, o->topic_profiles) == 0) {
		lm_error("owner.config",
		    "brokers, two distinct topics, the ingest group, store, index, "
		    "events and record context are required");
		return LM_EINVAL;
	}
	if ((ow = calloc(1, sizeof(*ow))) == NULL)
		return LM_ENOMEM;
	pthread_mutex_init(&ow->mtx, NULL);
	pthread_cond_init(&ow->cv, NULL);
	ow->store = o->store;
	ow->idx = o->index;
	ow->events = o->events;
	ow->rctx = o->rctx;
	if ((ow->topic_postings = strdup(o->topic_postings)) == NULL ||
	    (ow->topic_profiles = strdup(o->topic_profiles)) == NULL ||
	    (ow->batch = calloc(LM_OWNER_BATCH_MAX, sizeof(*ow->batch))) == NULL ||
	    (ow->changes = calloc(LM_OWNER_BATCH_MAX, sizeof(*ow->changes))) == NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	if ((rc = make_consumer(o, ow,
	         given(o->group_id) ? o->group_id : LM_OWNER_GROUP_DEFAULT, true,
	         &ow->rk)) != LM_OK ||
	    (rc = make_consumer(o, ow, o->ingest_group_id, false, &ow->probe)) != LM_OK)
		goto fail;
	rd_kafka_poll_set_consumer(ow->rk);
	if (o->metrics != NULL) {
		ow->m_messages = lm_metrics_counter(o->metrics,
		    "lunamatch_events_owner_messages_total",
		    "Messages of owned partitions whose events are derived and committed",
		    NULL);
		ow->m_failures = lm_metrics_counter(o->metrics,
		    "lunamatch_events_derive_failures_total",
		    "Failed derivations of owned messages into the outbox (each retried)",
		    NULL);
	}
	*out = ow;
	return LM_OK;
fail:
	lm_owner_free(ow);
	return rc;
}

int
lm_owner_start(lm_owner *ow)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t e;
	int err;

	if (ow == NULL || ow->started)
		return LM_EINVAL;
	l = rd_kafka_topic_partition_list_new(2);
	rd_kafka_topic_partition_list_add(l, ow->topic_postings, RD_KAFKA_PARTITION_UA);
	rd_kafka_topic_partition_list_add(l, ow->topic_profiles, RD_KAFKA_PARTITION_UA);
	e = rd_kafka_subscribe(ow->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_error("owner.subscribe", "cannot subscribe: %s", rd_kafka_err2name(e));
		return lm_kafka_err(e);
	}
	atomic_store(&ow->stop, false);
	if ((err = pthread_create(&ow->thread, NULL, run, ow)) != 0)
		return lm_err_from_errno(err);
	ow->started = true;
	return LM_OK;
}

void
lm_owner_wake(lm_owner *ow)
{
	if (ow == NULL)
		return;
	pthread_mutex_lock(&ow->mtx);
	ow->woken = true;
	pthread_cond_signal(&ow->cv);
	pthread_mutex_unlock(&ow->mtx);
}

void
lm_owner_free(lm_owner *ow)
{
	if (ow == NULL)
		return;
	if (ow->started) {
		pthread_mutex_lock(&ow->mtx);
		atomic_store(&ow->stop, true);
		pthread_cond_broadcast(&ow->cv);
		pthread_mutex_unlock(&ow->mtx);
		pthread_join(ow->thread, NULL);
		ow->started = false;
	}
	if (ow->rk != NULL) {
		/* Commits the stored offsets and leaves the group at once, so the
		 * partitions move without waiting for the session timeout. */
		rd_kafka_resp_err_t e = rd_kafka_commit(ow->rk, NULL, 0);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
			lm_warn("owner.commit", "final commit failed: %s",
			    rd_kafka_err2name(e));
		rd_kafka_consumer_close(ow->rk);
		rd_kafka_destroy(ow->rk);
	}
	if (ow->probe != NULL)
		rd_kafka_destroy_flags(ow->probe, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	batch_drop(ow);
	free(ow->batch);
	free(ow->changes);
	free(ow->topic_postings);
	free(ow->topic_profiles);
	pthread_cond_destroy(&ow->cv);
	pthread_mutex_destroy(&ow->mtx);
	free(ow);
}

void
lm_owner_stats_get(lm_owner *ow, lm_owner_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (ow == NULL)
		return;
	out->messages = atomic_load(&ow->messages);
	out->rejected = atomic_load(&ow->rejected);
	out->probes = atomic_load(&ow->probes);
	out->failures = atomic_load(&ow->failures);
	out->rebalances = atomic_load(&ow->rebalances);
	out->partitions = atomic_load(&ow->partitions);
	out->failing = atomic_load(&ow->failing);
}
