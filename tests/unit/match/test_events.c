/*
 * test_events.c - new-match events end to end: derivation from a real index
 * into a real outbox (LMDB in a temporary directory) and delivery through
 * librdkafka's idempotent producer to librdkafka's mock cluster (a Kafka
 * protocol implementation on 127.0.0.1), read back with a real consumer.
 * Covers key, headers and payload, deterministic ids, threshold crossings
 * and top-N, the cursor, a broker outage (nothing lost, nothing doubled),
 * a fatal error of the producer (replaced, later events delivered), a
 * restart with pending events, and a pending event damaged on disk (reported
 * once, the others delivered).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <lmdb.h>

#include "events.h"
#include "index.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/metrics.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "model.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;

#define NOW         1750000000LL
#define DAY         86400LL
#define TOPIC       "lunamatch.matches.v1"
#define PARTITIONS  2
#define MOCK_BROKER 1 /* id of the mock cluster's only broker */

static char *tmp;
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static const char *brokers;
static lm_model model;
static lm_index *idx;
static lm_metrics *metrics;

static const char *const STRONG[] = {"s:python", "s:sql", "s:spark", "s:kafka", "s:aws"};
static const char *const WEAK[] = {"s:cobol"};

/* ---- fixtures ------------------------------------------------------------- */

static int
setup(void **state)
{
	rd_kafka_conf_t *conf = NULL;
	char err[256];
	(void) state;

	tmp = lmt_tmpdir("events");
	assert_int_equal(
	    lm_kafka_conf(NULL, "test-mock", &conf, err, sizeof(err)), LM_OK);
	mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	assert_non_null(mock_rk);
	mock = rd_kafka_mock_cluster_new(mock_rk, 1);
	assert_non_null(mock);
	assert_int_equal(rd_kafka_mock_topic_create(mock, TOPIC, PARTITIONS, 1), 0);
	brokers = rd_kafka_mock_cluster_bootstraps(mock);
	assert_non_null(strstr(brokers, "127.0.0.1"));

	lm_model_defaults(&model);
	assert_int_equal(lm_index_new(&model, &idx), LM_OK);
	assert_int_equal(lm_metrics_new(&metrics), LM_OK);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lm_index_free(idx);
	idx = NULL;
	lm_metrics_free(metrics);
	metrics = NULL;
	rd_kafka_mock_cluster_destroy(mock);
	mock = NULL;
	rd_kafka_destroy(mock_rk);
	mock_rk = NULL;
	lmt_rmtree(tmp);
	free(tmp);
	return 0;
}

/* A posting as ingest leaves it: canonical skill ids, open, posted a day
 * ago. */
static void
put_posting(
    const char *id, uint64_t version, const char *const *skills, size_t n, bool closed)
{
	JobPosting *p = lmt_calloc(1, sizeof(*p));
	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup(id);
	p->version = version;
	p->status = closed ? LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED
	                   : LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
	p->title = lmt_strdup("Data Engineer");
	p->company = lmt_strdup("Acme");
	p->category = lmt_strdup("Data");
	p->employment_type = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME;
	p->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR;
	p->min_years_experience = 5;
	p->posted_at = NOW - DAY;
	p->n_skills = n;
	p->skills = lmt_calloc(n, sizeof(*p->skills));
	for (size_t i = 0; i < n; i++) {
		Lunamatch__V1__PostingSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__posting_skill__init(s);
		s->name = lmt_strdup(skills[i] + 2);
		s->skill_id = lmt_strdup(skills[i]);
		p->skills[i] = s;
	}
	assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
}

static void
put_profile(
    const char *id, uint64_t version, const char *const *skills, size_t n, float years)
{
	Profile *c = lmt_calloc(1, sizeof(*c));
	lunamatch__v1__candidate_profile__init(c);
	c->id = lmt_strdup(id);
	c->version = version;
	c->headline = lmt_strdup("Engineer");
	c->years_experience = years;
	c->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR;
	c->n_skills = n;
	c->skills = lmt_calloc(n, sizeof(*c->skills));
	for (size_t i = 0; i < n; i++) {
		Lunamatch__V1__CandidateSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__candidate_skill__init(s);
		s->name = lmt_strdup(skills[i] + 2);
		s->skill_id = lmt_strdup(skills[i]);
		s->years = years;
		s->level = LUNAMATCH__V1__SKILL_LEVEL__SKILL_LEVEL_ADVANCED;
		c->skills[i] = s;
	}
	assert_int_equal(lm_index_put_profile(idx, c, 0), LM_OK);
}

static double
score_at(const char *cid, const char *jid, int64_t now)
{
	double s = -1;
	bool ok = false;
	assert_int_equal(lm_index_pair_score(idx, cid, jid, now, &s, &ok), LM_OK);
	return ok ? s : 0;
}

static double
score_of(const char *cid, const char *jid)
{
	return score_at(cid, jid, NOW);
}

/* The threshold between a strong and a weak candidate for posting jid:
 * asserts that the model really separates them. */
static double
threshold(const char *strong, const char *weak, const char *jid)
{
	double hi = score_of(strong, jid), lo = score_of(weak, jid);
	assert_true(hi > lo + 0.05);
	return (hi + lo) / 2;
}

static lm_events *
new_events(const char *dir, double min_score, uint32_t top_n, int msg_timeout_ms)
{
	lm_events_opts o;
	lm_events *ev = NULL;
	memset(&o, 0, sizeof(o));
	o.brokers = brokers;
	o.topic = TOPIC;
	o.data_dir = dir;
	o.min_score = min_score;
	o.top_n = top_n;
	o.metrics = metrics;
	o.message_timeout_ms = msg_timeout_ms;
	o.flush_timeout_ms = 2000;
	assert_int_equal(lm_events_new(&o, &ev), LM_OK);
	assert_non_null(ev);
	return ev;
}

static lm_event_change
change(uint64_t seq, bool posting, const char *id, bool is_new, bool deleted)
{
	lm_event_change c;
	memset(&c, 0, sizeof(c));
	c.seq = seq;
	c.posting = posting;
	c.id = id;
	c.is_new = is_new;
	c.deleted = deleted;
	return c;
}

static lm_outbox_counts
counts(lm_events *ev)
{
	lm_outbox_counts c;
	assert_int_equal(lm_outbox_counts_get(lm_events_outbox(ev), &c), LM_OK);
	return c;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Waits at most timeout_ms for the outbox to be empty. */
static bool
wait_drained(lm_events *ev, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 50) {
		if (counts(ev).pending == 0 && lm_events_inflight(ev) == 0)
			return true;
		sleep_ms(50);
	}
	return false;
}

/* ---- reading the topic ---------------------------------------------------- */

struct got {
	char key[160];
	char content_type[64];
	char schema[64];
	Lunamatch__V1__MatchEvent *ev;
};

struct topic_read {
	struct got v[256];
	size_t n;
};

static void
read_free(struct topic_read *r)
{
	for (size_t i = 0; i < r->n; i++)
		protobuf_c_message_free_unpacked(&r->v[i].ev->base, NULL);
	r->n = 0;
}

static void
header(rd_kafka_headers_t *h, const char *name, char *out, size_t len)
{
	const void *val = NULL;
	size_t size = 0;
	out[0] = '\0';
	if (h != NULL && rd_kafka_header_get_last(h, name, &val, &size) == 0 &&
	    size < len) {
		memcpy(out, val, size);
		out[size] = '\0';
	}
}

/* Reads every message of the topic from the beginning: waits at most
 * timeout_ms for `want` messages, then 1 s more to catch duplicates. */
static void
read_topic(size_t want, int timeout_ms, struct topic_read *r)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_t *c;
	char err[256];
	int waited = 0, quiet = 0, np = 0;

	memset(r, 0, sizeof(*r));
	assert_int_equal(
	    lm_kafka_conf(brokers, "test-reader", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(conf, "group.id", "test-reader", err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(conf, "enable.auto.commit", "false", err, sizeof(err)), LM_OK);
	c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	assert_non_null(c);
	/* The topic's metadata first: fetching partitions it has none for,
	 * the consumer waited about 0.5 s more for it. */
	assert_int_equal(lm_kafka_topic_partitions(c, TOPIC, 10000, &np), LM_OK);
	assert_int_equal(np, PARTITIONS);
	parts = rd_kafka_topic_partition_list_new(PARTITIONS);
	for (int p = 0; p < PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(c, parts), 0);
	rd_kafka_topic_partition_list_destroy(parts);

	while (waited < timeout_ms && (r->n < want || quiet < 1000)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		waited += 100;
		if (m == NULL) {
			if (r->n >= want)
				quiet += 100;
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			struct got *g = &r->v[r->n];
			rd_kafka_headers_t *h = NULL;
			ProtobufCMessage *pm = NULL;
			char perr[128];
			assert_true(r->n < sizeof(r->v) / sizeof(r->v[0]));
			assert_true(m->key_len < sizeof(g->key));
			memcpy(g->key, m->key, m->key_len);
			g->key[m->key_len] = '\0';
			rd_kafka_message_headers(m, &h);
			header(
			    h, "content-type", g->content_type, sizeof(g->content_type));
			header(h, "schema", g->schema, sizeof(g->schema));
			assert_int_equal(
			    lm_pb_decode(&lunamatch__v1__match_event__descriptor,
			        m->payload, m->len, 65536, &pm, perr, sizeof(perr)),
			    LM_OK);
			g->ev = (Lunamatch__V1__MatchEvent *) pm;
			r->n++;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
}

static const struct got *
find_pair(const struct topic_read *r, const char *cid, const char *jid)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].ev->candidate_id, cid) == 0 &&
		    strcmp(r->v[i].ev->job_id, jid) == 0)
			return &r->v[i];
	return NULL;
}

/* Every event id appears exactly once. */
static void
assert_unique(const struct topic_read *r)
{
	for (size_t i = 0; i < r->n; i++)
		for (size_t j = i + 1; j < r->n; j++)
			if (strcmp(r->v[i].ev->event_id, r->v[j].ev->event_id) == 0)
				fail_msg(
				    "event %s delivered twice", r->v[i].ev->event_id);
}

/* ---- tests ---------------------------------------------------------------- */

static void
test_options(void **state)
{
	lm_events_opts o;
	lm_events *ev = (lm_events *) 1;
	(void) state;

	memset(&o, 0, sizeof(o));
	o.brokers = brokers;
	o.topic = TOPIC;
	o.data_dir = tmp;
	o.min_score = 0.7;
	o.top_n = 50;
	assert_int_equal(lm_events_new(NULL, &ev), LM_EINVAL);
	assert_null(ev);
	o.brokers = NULL;
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.brokers = brokers;
	o.topic = "";
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.topic = TOPIC;
	o.min_score = 1.5;
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.min_score = NAN;
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.min_score = 0.7;
	o.top_n = 0;
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.top_n = LM_INDEX_EVENT_TOP_MAX + 1;
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.top_n = 50;
	o.data_dir = NULL;
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.data_dir = tmp;
	o.message_timeout_ms = -1;
	assert_int_equal(lm_events_new(&o, &ev), LM_EINVAL);
	o.message_timeout_ms = 0;
	assert_int_equal(lm_events_new(&o, &ev), LM_OK);
	assert_int_equal(lm_events_start(ev), LM_OK);
	assert_int_equal(lm_events_start(ev), LM_EINVAL); /* already started */
	lm_events_free(ev);
	lm_events_free(NULL);
}

/* A started lm_events that has delivered the events of a new posting
 * job-1 for its three strong candidates cand-1..3 (cand-weak is below the
 * threshold). */
static lm_events *
three_delivered(void)
{
	const char *strong_ids[] = {"cand-1", "cand-2", "cand-3"};
	lm_event_change ch[1];
	lm_events *ev;

	put_posting("job-1", 4, STRONG, 5, false);
	for (size_t i = 0; i < 3; i++)
		put_profile(strong_ids[i], 2, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	ev = new_events(tmp, threshold("cand-1", "cand-weak", "job-1"), 50, 0);
	assert_int_equal(lm_events_start(ev), LM_OK);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 3);
	assert_true(wait_drained(ev, 20000));
	return ev;
}

/* A new strong profile id at change seq: its event is delivered. */
static void
new_strong_profile(lm_events *ev, const char *id, uint64_t seq)
{
	lm_event_change ch[1];

	put_profile(id, 1, STRONG, 5, 6);
	ch[0] = change(seq, false, id, true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW + 60), LM_OK);
	assert_true(wait_drained(ev, 20000));
}

/* Events of a new posting reach the topic with key, headers and payload. */
static void
test_delivery(void **state)
{
	const char *strong_ids[] = {"cand-1", "cand-2", "cand-3"};
	struct topic_read r;
	lm_events *ev;
	size_t strong_n = 3;
	double min;
	(void) state;

	ev = three_delivered();
	min = threshold("cand-1", "cand-weak", "job-1");
	/* A new strong profile: its own top postings. */
	new_strong_profile(ev, "cand-4", 2);

	lm_outbox_counts k = counts(ev);
	assert_int_equal(k.enqueued_total, strong_n + 1);
	assert_int_equal(k.delivered_total, strong_n + 1);
	assert_int_equal(k.pending, 0);

	read_topic(strong_n + 1, 20000, &r);
	assert_int_equal(r.n, strong_n + 1);
	assert_unique(&r);
	for (size_t i = 0; i < r.n; i++) {
		const struct got *g = &r.v[i];
		char id[LM_OUTBOX_EVENT_ID_LEN + 1];
		assert_string_equal(g->key, g->ev->candidate_id);
		assert_string_equal(g->content_type, "application/x-protobuf");
		assert_string_equal(g->schema, "lunamatch.v1.MatchEvent");
		assert_int_equal(g->ev->type,
		    LUNAMATCH__V1__MATCH_EVENT_TYPE__MATCH_EVENT_TYPE_NEW_MATCH);
		assert_string_equal(g->ev->job_id, "job-1");
		assert_string_equal(g->ev->model_version, model.version);
		assert_int_equal(g->ev->job_version, 4);
		assert_true(g->ev->score >= min);
		assert_float_equal(g->ev->score,
		    score_at(g->ev->candidate_id, "job-1", g->ev->created_at), 1e-9);
		assert_true(strlen(g->ev->explanation_summary) > 0);
		lm_event_id(g->ev->candidate_id, g->ev->job_id, g->ev->candidate_version,
		    g->ev->job_version, g->ev->model_version, id);
		assert_string_equal(g->ev->event_id, id);
	}
	for (size_t i = 0; i < strong_n; i++) {
		const struct got *g = find_pair(&r, strong_ids[i], "job-1");
		assert_non_null(g);
		assert_int_equal(g->ev->trigger,
		    LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_POSTING);
		assert_int_equal(g->ev->candidate_version, 2);
		assert_int_equal(g->ev->created_at, NOW);
	}
	const struct got *g4 = find_pair(&r, "cand-4", "job-1");
	assert_non_null(g4);
	assert_int_equal(
	    g4->ev->trigger, LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_PROFILE);
	assert_int_equal(g4->ev->created_at, NOW + 60);
	assert_null(find_pair(&r, "cand-weak", "job-1"));
	read_free(&r);

	/* Metrics. */
	char *text = NULL;
	assert_int_equal(lm_metrics_render(metrics, &text, NULL), LM_OK);
	assert_non_null(strstr(text, "lunamatch_events_enqueued_total 4"));
	assert_non_null(strstr(text, "lunamatch_events_delivered_total 4"));
	assert_non_null(strstr(text, "lunamatch_events_pending 0"));
	assert_non_null(strstr(text, "lunamatch_events_failed_total 0"));
	free(text);

	uint64_t cur = 0;
	assert_int_equal(lm_outbox_get_cursor(lm_events_outbox(ev), &cur), LM_OK);
	assert_int_equal(cur, 2);
	lm_events_free(ev);
}

/* The outbox-write failure the fault seam injects (LM_OK: none). */
static atomic_int outbox_fault;

static int
fault(void *arg)
{
	(void) arg;
	return atomic_load(&outbox_fault);
}

/* Events on the test's outbox with threshold min, whose outbox writes
 * fail as fault_fn says, and whose retries pause at most retry_max_ms
 * (0: the default). */
static lm_events *
events_with_fault_ex(double min, int (*fault_fn)(void *), int retry_max_ms)
{
	lm_events_opts o;
	lm_events *ev = NULL;

	memset(&o, 0, sizeof(o));
	o.brokers = brokers;
	o.topic = TOPIC;
	o.data_dir = tmp;
	o.min_score = min;
	o.top_n = 50;
	o.metrics = metrics;
	o.flush_timeout_ms = 2000;
	o.retry_max_ms = retry_max_ms;
	o.fault = fault_fn;
	assert_int_equal(lm_events_new(&o, &ev), LM_OK);
	return ev;
}

static lm_events *
events_with_fault(double min, int (*fault_fn)(void *))
{
	return events_with_fault_ex(min, fault_fn, 0);
}

static double
metric(const char *name)
{
	char *text = NULL, *at;
	double v = -1;
	assert_int_equal(lm_metrics_render(metrics, &text, NULL), LM_OK);
	for (at = text; (at = strstr(at, name)) != NULL; at++)
		if ((at == text || at[-1] == '\n') && at[strlen(name)] == ' ') {
			v = strtod(at + strlen(name) + 1, NULL);
			break;
		}
	free(text);
	return v;
}

/* A failing outbox write, injected into the real write path: the
 * derivation fails as a whole (nothing written), is counted, and marks the
 * outbox failing until a write succeeds; a delivery that cannot be
 * recorded keeps the event pending and is recorded once the outbox writes
 * again, without producing the event again meanwhile (the scans of three
 * seconds of failing writes pass it over). */
static void
test_outbox_write_fails(void **state)
{
	lm_event_change ch[1];
	lm_events *ev = NULL;
	struct topic_read r;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	ev = events_with_fault(min, fault);
	assert_false(lm_events_outbox_failing(ev));
	assert_true(metric("lunamatch_events_outbox_errors_total") == 0);

	atomic_store(&outbox_fault, LM_EIO);
	ch[0] = change(0, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_EIO);
	assert_true(lm_events_outbox_failing(ev));
	assert_true(metric("lunamatch_events_outbox_errors_total") == 1);
	assert_int_equal(counts(ev).enqueued_total, 0);
	assert_int_equal(counts(ev).pairs, 0);

	/* The retry succeeds once the outbox writes again. */
	atomic_store(&outbox_fault, LM_OK);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_false(lm_events_outbox_failing(ev));
	assert_int_equal(counts(ev).enqueued_total, 1);

	/* Delivered by the broker, but the delivery cannot be recorded: the
	 * event stays pending and the outbox is failing. */
	atomic_store(&outbox_fault, LM_ESTORE);
	assert_int_equal(lm_events_start(ev), LM_OK);
	for (int waited = 0;
	     waited < 20000 && metric("lunamatch_events_outbox_errors_total") < 2;
	     waited += 50)
		sleep_ms(50);
	assert_true(metric("lunamatch_events_outbox_errors_total") >= 2);
	assert_true(lm_events_outbox_failing(ev));
	assert_int_equal(counts(ev).pending, 1);
	sleep_ms(3000);
	assert_int_equal(counts(ev).pending, 1);
	/* Writable again: the delivery is recorded, and the topic holds the
	 * event once. */
	atomic_store(&outbox_fault, LM_OK);
	assert_true(wait_drained(ev, 20000));
	assert_false(lm_events_outbox_failing(ev));
	assert_int_equal(counts(ev).delivered_total, 1);
	read_topic(1, 10000, &r);
	assert_int_equal(r.n, 1);
	read_free(&r);
	lm_events_free(ev);
}

/* The outbox fault for the sender thread only: the test's own thread
 * (deriving events) writes the outbox normally. */
static pthread_t deriving_thread;

static int
sender_fault(void *arg)
{
	(void) arg;
	return pthread_equal(pthread_self(), deriving_thread)
	           ? LM_OK
	           : atomic_load(&outbox_fault);
}

/*
 * While the deliveries of the sender cannot be recorded, the events
 * delivered meanwhile are kept in flight with those whose record failed,
 * and the rescans produce none of them again: once the outbox writes
 * again, the topic holds each event once. Before, the events delivered
 * during the record's back-off were produced again at every scan, and the
 * repeated reports ran past the end of the list of deliveries.
 */
static void
test_deliveries_while_recording_fails(void **state)
{
	enum { NJOBS = 21 };
	char ids[NJOBS][16];
	lm_event_change ch[1];
	lm_events *ev = NULL;
	struct topic_read r;
	double min;
	(void) state;

	for (int k = 0; k < NJOBS; k++) {
		snprintf(ids[k], sizeof(ids[k]), "job-%d", k);
		put_posting(ids[k], 1, STRONG, 5, false);
	}
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-0");
	deriving_thread = pthread_self();
	ev = events_with_fault(min, sender_fault);

	/* The first event is delivered, and its record fails. */
	atomic_store(&outbox_fault, LM_ESTORE);
	ch[0] = change(1, true, ids[0], true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_int_equal(lm_events_start(ev), LM_OK);
	for (int waited = 0;
	     waited < 20000 && metric("lunamatch_events_outbox_errors_total") < 1;
	     waited += 20)
		sleep_ms(20);
	assert_true(lm_events_outbox_failing(ev));
	/* The others come during its back-off, and are delivered too. */
	for (int k = 1; k < NJOBS; k++) {
		ch[0] = change((uint64_t) k + 1, true, ids[k], true, false);
		assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	}
	sleep_ms(3000);
	assert_int_equal(counts(ev).pending, NJOBS);
	atomic_store(&outbox_fault, LM_OK);
	assert_true(wait_drained(ev, 20000));
	assert_int_equal(counts(ev).delivered_total, NJOBS);
	read_topic(NJOBS, 10000, &r);
	assert_int_equal(r.n, NJOBS);
	read_free(&r);
	lm_events_free(ev);
}

/* The outbox's own fault seam (lm_outbox_set_fault): once armed, its next
 * write transactions find the map full, are written, then fail. */
static atomic_int split_armed, split_at;

static int
split_fault(void *arg)
{
	static const int script[] = {LM_EMAPFULL, LM_OK, LM_ESTORE};
	int at;
	(void) arg;
	if (!atomic_load(&split_armed))
		return LM_OK;
	at = atomic_fetch_add(&split_at, 1);
	return at < 3 ? script[at] : LM_OK;
}

/*
 * Deliveries whose removal from a full outbox (at its largest map, so the
 * deletion is split) fails partway are counted in
 * lunamatch_events_delivered_total as they are removed: the metric ends
 * equal to the outbox's delivered total. Before, the part removed before
 * the failure was never counted in the metric (the retry finds those
 * events gone), which fell behind for good.
 */
static void
test_split_removal_fails_partway(void **state)
{
	char cid[4][16];
	lm_event_change ch[1];
	lm_events *ev;
	lm_outbox *ob;
	struct topic_read r;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	for (size_t i = 0; i < 4; i++) {
		snprintf(cid[i], sizeof(cid[i]), "cand-%02zu", i);
		put_profile(cid[i], 1, STRONG, 5, 6);
	}
	min = threshold("cand-00", "cand-weak", "job-1");
	deriving_thread = pthread_self();
	ev = events_with_fault(min, sender_fault);
	ob = lm_events_outbox(ev);
	lm_outbox_set_map_max(ob, LM_OUTBOX_MAP_SIZE);
	lm_outbox_set_fault(ob, split_fault, NULL);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_int_equal(counts(ev).pending, 4);

	/* All four are delivered while their removal fails: kept, and then
	 * removed in one call. */
	atomic_store(&outbox_fault, LM_ESTORE);
	assert_int_equal(lm_events_start(ev), LM_OK);
	read_topic(4, 10000, &r);
	assert_int_equal(r.n, 4);
	read_free(&r);
	sleep_ms(1000); /* the last delivery reports */
	assert_int_equal(counts(ev).pending, 4);
	atomic_store(&split_armed, 1);
	atomic_store(&outbox_fault, LM_OK);
	assert_true(wait_drained(ev, 20000));
	assert_true(atomic_load(&split_at) >= 3);
	assert_int_equal(counts(ev).delivered_total, 4);
	assert_true(metric("lunamatch_events_delivered_total") == 4);
	lm_events_free(ev);
	atomic_store(&split_armed, 0);
	atomic_store(&split_at, 0);
}

/*
 * A delivered event whose removal from the outbox keeps failing is held
 * across a fatal error of the producer: the new producer does not send it
 * again while the removal waits for its retry. Before, the replacement
 * dropped the held ids, and the event was produced again at every scan
 * until the removal's back-off ran out (several copies on the topic).
 */
static void
test_fatal_while_recording_fails(void **state)
{
	lm_event_change ch[1];
	lm_events *ev = NULL;
	struct topic_read r;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	deriving_thread = pthread_self();
	/* Retries pause 2 s at most: after four failures the removal's next
	 * try would otherwise be 8 s away. */
	ev = events_with_fault_ex(min, sender_fault, 2000);
	atomic_store(&outbox_fault, LM_ESTORE);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_int_equal(lm_events_start(ev), LM_OK);
	/* Delivered; its removal fails four times (back-off 2 s now). */
	for (int waited = 0;
	     waited < 20000 && metric("lunamatch_events_outbox_errors_total") < 4;
	     waited += 20)
		sleep_ms(20);
	assert_true(metric("lunamatch_events_outbox_errors_total") >= 4);
	assert_int_equal(
	    rd_kafka_test_fatal_error(lm_events_kafka(ev),
	        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test fatal"),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	sleep_ms(4000); /* a new producer and several scans */
	atomic_store(&outbox_fault, LM_OK);
	assert_true(wait_drained(ev, 30000));
	assert_int_equal(counts(ev).pending, 0);
	read_topic(1, 10000, &r);
	assert_int_equal(r.n, 1);
	read_free(&r);
	lm_events_free(ev);
}

/* The sender's outbox writes (the deriving thread's pass), counted with
 * the time of the last one, failing as outbox_fault says. */
static atomic_int sender_writes;
static _Atomic int64_t sender_wrote_at;

static int
timed_sender_fault(void *arg)
{
	(void) arg;
	if (pthread_equal(pthread_self(), deriving_thread))
		return LM_OK;
	atomic_store(&sender_wrote_at, lm_clock_ms());
	atomic_fetch_add(&sender_writes, 1);
	return atomic_load(&outbox_fault);
}

/* Waits at most timeout_ms for more than n sender writes. */
static bool
wait_sender_writes(int n, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms && atomic_load(&sender_writes) <= n;
	     waited += 10)
		sleep_ms(10);
	return atomic_load(&sender_writes) > n;
}

/*
 * The replacement of a producer tries at once to record the deliveries
 * kept while their record fails, and its failures put the next try at
 * most one step of the back-off further (here 2 s, then at most 4 s), not
 * one step per try made in the same instant. Before, the replacement
 * tried twice and doubled the back-off twice: the next try came 8 s
 * later, and at the longest pause 30 s were reached two steps early.
 */
static void
test_fatal_record_backoff_once(void **state)
{
	lm_event_change ch[1];
	lm_events *ev = NULL;
	struct topic_read r;
	int64_t replaced_at, gap;
	int n;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	deriving_thread = pthread_self();
	atomic_store(&sender_writes, 0);
	ev = events_with_fault(min, timed_sender_fault);
	atomic_store(&outbox_fault, LM_ESTORE);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_int_equal(lm_events_start(ev), LM_OK);
	/* Delivered; its record fails three times: the next try is 2 s
	 * after the third. */
	assert_true(wait_sender_writes(2, 20000));
	n = atomic_load(&sender_writes);
	assert_int_equal(
	    rd_kafka_test_fatal_error(lm_events_kafka(ev),
	        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test fatal"),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	/* The replacement's tries, all in one instant. */
	assert_true(wait_sender_writes(n, 10000));
	sleep_ms(300);
	n = atomic_load(&sender_writes);
	replaced_at = atomic_load(&sender_wrote_at);
	/* The next try: within one more step of the back-off (4 s), with
	 * room to spare for a loaded machine; 8 s with two steps. */
	assert_true(wait_sender_writes(n, 20000));
	gap = atomic_load(&sender_wrote_at) - replaced_at;
	assert_true(gap < 6000);

	atomic_store(&outbox_fault, LM_OK);
	assert_true(wait_drained(ev, 30000));
	read_topic(1, 10000, &r);
	assert_int_equal(r.n, 1);
	read_free(&r);
	lm_events_free(ev);
}

/* Records n pairs of job jid (with candidates "c-<jid>-<i>") below the
 * threshold, in enqueues of at most 50,000. */
static void
seed_pairs(lm_events *ev, const char *jid, size_t n)
{
	enum { CHUNK = 50000 };
	lm_event_candidate *c = lmt_calloc(CHUNK, sizeof(*c));
	char(*cid)[48] = lmt_calloc(CHUNK, sizeof(*cid));
	size_t got;

	for (size_t at = 0; at < n; at += CHUNK) {
		size_t m = n - at < CHUNK ? n - at : CHUNK;
		for (size_t i = 0; i < m; i++) {
			snprintf(cid[i], sizeof(cid[i]), "c-%s-%06zu", jid, at + i);
			c[i] = (lm_event_candidate){.candidate_id = cid[i],
			    .job_id = jid,
			    .state = LM_PAIR_BELOW,
			    .candidate_version = 1,
			    .job_version = 1,
			    .score = 0.1};
		}
		assert_int_equal(lm_outbox_enqueue_batch(
		                     lm_events_outbox(ev), c, m, "m1", NOW, 0, &got),
		    LM_OK);
	}
	free(cid);
	free(c);
}

/*
 * The deletion of a record with very many recorded pairs, after another
 * in the same call, is derived: the batch never grows past what one
 * outbox enqueue takes (LM_EVENTS_TXN_PAIRS before a record, and up to
 * LM_OUTBOX_PAIRS_MAX + LM_INDEX_EVENT_TOP_MAX from it). Before, 15,000
 * and 90,000 pairs made one batch of 105,000 that the outbox refused at
 * every retry, holding up the partition's events for good.
 */
static void
test_deleting_records_of_many_pairs(void **state)
{
	lm_event_change ch[2];
	lm_events *ev;
	(void) state;

	ev = new_events(tmp, 0.5, 50, 0);
	seed_pairs(ev, "job-other", 15000);
	seed_pairs(ev, "job-big", 90000);
	assert_int_equal(counts(ev).pairs, 105000);
	ch[0] = change(1, true, "job-other", false, true);
	ch[1] = change(2, true, "job-big", false, true);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, 2, NOW), LM_OK);
	assert_int_equal(counts(ev).pairs, 0);
	assert_int_equal(counts(ev).pending, 0);
	lm_events_free(ev);
}

/*
 * A deleted record with more recorded pairs than one read of them gives
 * (LM_OUTBOX_PAIRS_MAX) has all of them forgotten, from both sides. Before,
 * only the first LM_OUTBOX_PAIRS_MAX were, and the rest stayed in the
 * outbox for good unless their other record changed.
 */
static void
test_deleting_record_of_more_pairs_than_one_read(void **state)
{
	lm_event_change ch[1];
	lm_outbox_pair *p = NULL;
	size_t n = 1;
	lm_events *ev;
	(void) state;

	ev = new_events(tmp, 0.5, 50, 0);
	seed_pairs(ev, "job-big", LM_OUTBOX_PAIRS_MAX + 20000);
	ch[0] = change(1, true, "job-big", false, true);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).pairs, 0);
	assert_int_equal(lm_outbox_pairs_of(lm_events_outbox(ev), LM_OUTBOX_JOB,
	                     "job-big", 10, &p, &n, NULL),
	    LM_OK);
	assert_int_equal(n, 0);
	free(p);
	lm_events_free(ev);
}

/*
 * A live posting with more recorded pairs than one read gives
 * (LM_OUTBOX_PAIRS_MAX), all below and with candidates that are gone, has
 * every pair forgotten when it changes. Before, only the first read's
 * were, and the rest were never looked at again.
 */
static void
test_live_record_of_more_pairs_than_one_read(void **state)
{
	lm_event_change ch[1];
	lm_events *ev;
	(void) state;

	put_posting("job-big", 1, STRONG, 5, false);
	ev = new_events(tmp, 0.5, 50, 0);
	seed_pairs(ev, "job-big", LM_OUTBOX_PAIRS_MAX + 20000);
	ch[0] = change(1, true, "job-big", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).pairs, 0);
	lm_events_free(ev);
}

struct ids {
	char v[64][LM_OUTBOX_EVENT_ID_LEN + 1];
	size_t n;
};

static int
ids_cb(void *arg, const char *event_id, const Lunamatch__V1__OutboxEntry *entry)
{
	struct ids *ids = arg;
	(void) entry;
	assert_true(ids->n < 64);
	memcpy(ids->v[ids->n++], event_id, LM_OUTBOX_EVENT_ID_LEN + 1);
	return 0;
}

/* The same derivation in two separate outboxes gives the same event ids. */
static void
test_deterministic_ids(void **state)
{
	char d1[4200], d2[4200];
	lm_event_change ch[3];
	struct ids a, b;
	lm_events *e1, *e2;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_posting("job-2", 7, STRONG, 4, false);
	put_profile("cand-1", 3, STRONG, 5, 6);
	put_profile("cand-2", 5, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	snprintf(d1, sizeof(d1), "%s/one", tmp);
	snprintf(d2, sizeof(d2), "%s/two", tmp);
	assert_int_equal(mkdir(d1, 0700), 0);
	assert_int_equal(mkdir(d2, 0700), 0);
	e1 = new_events(d1, min, 50, 0);
	e2 = new_events(d2, min, 50, 0);
	ch[0] = change(1, true, "job-1", true, false);
	ch[1] = change(2, true, "job-2", true, false);
	ch[2] = change(3, false, "cand-2", false, false);
	/* Different clocks: created_at differs, the ids do not. */
	assert_int_equal(lm_events_on_changes(e1, idx, ch, 3, 3, NOW), LM_OK);
	assert_int_equal(lm_events_on_changes(e2, idx, ch, 3, 3, NOW + 999), LM_OK);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_int_equal(lm_outbox_pending(lm_events_outbox(e1), 64, ids_cb, &a), LM_OK);
	assert_int_equal(lm_outbox_pending(lm_events_outbox(e2), 64, ids_cb, &b), LM_OK);
	assert_int_equal(a.n, 4); /* 2 candidates x 2 jobs */
	assert_int_equal(a.n, b.n);
	for (size_t i = 0; i < a.n; i++)
		assert_string_equal(a.v[i], b.v[i]);
	char want[LM_OUTBOX_EVENT_ID_LEN + 1];
	lm_event_id("cand-2", "job-2", 5, 7, model.version, want);
	bool found = false;
	for (size_t i = 0; i < a.n; i++)
		found = found || strcmp(a.v[i], want) == 0;
	assert_true(found);
	lm_events_free(e1);
	lm_events_free(e2);
}

static bool
pair_above(lm_events *ev, const char *cid, const char *jid)
{
	lm_outbox_pair p;
	int rc = lm_outbox_get_pair(lm_events_outbox(ev), cid, jid, &p);
	assert_true(rc == LM_OK || rc == LM_ENOENT);
	return rc == LM_OK && p.above;
}

static bool
pair_known(lm_events *ev, const char *cid, const char *jid)
{
	lm_outbox_pair p;
	return lm_outbox_get_pair(lm_events_outbox(ev), cid, jid, &p) == LM_OK;
}

/* Events that read the recorded pairs of a record 3 at a time. */
static lm_events *
paged_events(double min_score)
{
	lm_events_opts o;
	lm_events *ev = NULL;
	memset(&o, 0, sizeof(o));
	o.brokers = brokers;
	o.topic = TOPIC;
	o.data_dir = tmp;
	o.min_score = min_score;
	o.top_n = 50;
	o.metrics = metrics;
	o.flush_timeout_ms = 2000;
	o.pairs_page = 3;
	assert_int_equal(lm_events_new(&o, &ev), LM_OK);
	return ev;
}

static bool
keep_all(void *arg, const lm_events_pair *p, bool *noted)
{
	(void) arg;
	(void) p;
	(void) noted;
	return true;
}

/*
 * Deliveries kept while their record failed are recorded by a producer's
 * replacement before their retry was due; a delivery after that is
 * recorded at once, and its event is not produced again meanwhile.
 * Before, the retry time of the failed record stayed set: the new
 * delivery waited for it outside the in-flight set, and every scan until
 * then produced its event again (several copies on the topic).
 */
static void
test_delivery_after_early_record(void **state)
{
	lm_event_change ch[1];
	lm_events *ev = NULL;
	struct topic_read r;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_posting("job-2", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	deriving_thread = pthread_self();
	atomic_store(&sender_writes, 0);
	ev = events_with_fault(min, timed_sender_fault);
	atomic_store(&outbox_fault, LM_ESTORE);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_int_equal(lm_events_start(ev), LM_OK);
	/* Delivered; its record fails four times: the next try is 4 s away. */
	assert_true(wait_sender_writes(3, 20000));
	atomic_store(&outbox_fault, LM_OK);
	assert_int_equal(
	    rd_kafka_test_fatal_error(lm_events_kafka(ev),
	        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test fatal"),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int waited = 0; waited < 10000 && counts(ev).pending > 0; waited += 20)
		sleep_ms(20);
	assert_int_equal(counts(ev).pending, 0); /* recorded by the replacement */

	ch[0] = change(2, true, "job-2", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_true(wait_drained(ev, 20000));
	read_topic(2, 10000, &r);
	assert_int_equal(r.n, 2);
	assert_unique(&r);
	read_free(&r);
	lm_events_free(ev);
}

/*
 * The pending gauge follows a delivery recorded late: once the outbox
 * writes again and the kept delivery is recorded, lunamatch_events_pending
 * reads 0. Before, a try that recorded only kept deliveries left the gauge
 * where it was (1 here) until the next derivation or delivery.
 */
static void
test_pending_gauge_after_late_record(void **state)
{
	lm_event_change ch[1];
	lm_events *ev = NULL;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	deriving_thread = pthread_self();
	ev = events_with_fault(min, sender_fault);
	atomic_store(&outbox_fault, LM_ESTORE);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 0, NOW), LM_OK);
	assert_int_equal(lm_events_start(ev), LM_OK);
	for (int waited = 0;
	     waited < 20000 && metric("lunamatch_events_outbox_errors_total") < 1;
	     waited += 20)
		sleep_ms(20);
	assert_true(metric("lunamatch_events_pending") == 1);
	atomic_store(&outbox_fault, LM_OK);
	assert_true(wait_drained(ev, 20000));
	for (int waited = 0; waited < 5000 && metric("lunamatch_events_pending") != 0;
	     waited += 20)
		sleep_ms(20);
	assert_true(metric("lunamatch_events_pending") == 0);
	lm_events_free(ev);
}

static bool
keep_noted(void *arg, const lm_events_pair *p, bool *noted)
{
	(void) arg;
	(void) p;
	*noted = true;
	return true;
}

/*
 * The pairs a decider keeps and notes are counted in split.noted only once
 * they are written: none when the outbox write fails, each once when the
 * retry writes them, none when a later derivation finds them above.
 */
static void
test_owned_noted_when_written(void **state)
{
	lm_event_change ch[1];
	lm_events_split split = {.fn = keep_noted};
	lm_events *ev;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-2", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	ev = events_with_fault(min, fault);
	ch[0] = change(0, true, "job-1", true, false);

	atomic_store(&outbox_fault, LM_ESTORE);
	assert_int_equal(lm_events_on_owned(ev, idx, ch, 1, &split, NOW), LM_ESTORE);
	assert_int_equal(split.announced, 2);
	assert_int_equal(split.noted, 0);
	atomic_store(&outbox_fault, LM_OK);
	assert_int_equal(lm_events_on_owned(ev, idx, ch, 1, &split, NOW), LM_OK);
	assert_int_equal(split.announced, 2);
	assert_int_equal(split.noted, 2);
	assert_int_equal(counts(ev).pending, 2);
	assert_int_equal(lm_events_on_owned(ev, idx, ch, 1, &split, NOW), LM_OK);
	assert_int_equal(split.announced, 0);
	assert_int_equal(split.noted, 0);
	lm_events_free(ev);
}

/*
 * A live record with more recorded pairs than one read of them gives (3
 * here, LM_OUTBOX_PAIRS_MAX in production) has every pair re-evaluated
 * when it changes. Before, only the pairs of the first read were: the
 * others stayed recorded above after the posting closed, so that its
 * reopening announced none of them again, and the owner's split was
 * offered pairs that were announced already as new ones.
 */
static void
test_record_of_more_pairs_than_one_read(void **state)
{
	char cid[10][16];
	lm_event_change ch[1];
	lm_events_split split = {.fn = keep_all};
	lm_events *ev;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	for (size_t i = 0; i < 10; i++) {
		snprintf(cid[i], sizeof(cid[i]), "cand-%02zu", i);
		put_profile(cid[i], 1, STRONG, 5, 6);
	}
	min = threshold("cand-00", "cand-weak", "job-1");
	ev = paged_events(min);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 10);

	/* The posting changes and still matches: no pair is new. */
	put_posting("job-1", 2, STRONG, 5, false);
	ch[0] = change(2, true, "job-1", false, false);
	assert_int_equal(lm_events_on_owned(ev, idx, ch, 1, &split, NOW), LM_OK);
	assert_int_equal(split.announced, 0);
	assert_int_equal(split.deferred, 0);
	assert_int_equal(counts(ev).enqueued_total, 10);

	/* The posting closes: every pair falls below... */
	put_posting("job-1", 3, STRONG, 5, true);
	ch[0] = change(3, true, "job-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 3, NOW), LM_OK);
	for (size_t i = 0; i < 10; i++) {
		assert_true(pair_known(ev, cid[i], "job-1"));
		assert_false(pair_above(ev, cid[i], "job-1"));
	}
	/* ...and its reopening announces every one again. */
	put_posting("job-1", 4, STRONG, 5, false);
	ch[0] = change(4, true, "job-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 4, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 20);

	/* Deleted: every pair is forgotten. */
	assert_int_equal(lm_index_remove_posting(idx, "job-1", 0), LM_OK);
	ch[0] = change(5, true, "job-1", false, true);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 5, NOW), LM_OK);
	assert_int_equal(counts(ev).pairs, 0);
	lm_events_free(ev);
}

/* A pair is announced when it crosses the threshold, again only after it
 * fell below, and never because of top-N churn alone. */
static void
test_crossings(void **state)
{
	lm_event_change ch[2];
	lm_events *ev;
	double min;
	uint64_t seq = 0;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 4, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	ev = new_events(tmp, min, 1, 0); /* top 1 */

	ch[0] = change(++seq, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 1);
	assert_true(pair_above(ev, "cand-1", "job-1"));

	/* The posting changes but still matches: no new event. */
	put_posting("job-1", 2, STRONG, 5, false);
	ch[0] = change(++seq, true, "job-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 1);

	/* A better candidate arrives: announced from its own side. */
	put_profile("cand-2", 1, STRONG, 5, 6);
	assert_true(score_of("cand-2", "job-1") > score_of("cand-1", "job-1"));
	ch[0] = change(++seq, false, "cand-2", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 2);

	/* The posting changes again: its top 1 is cand-2 now; cand-1 is out of
	 * the top N but still above the threshold and stays announced. */
	put_posting("job-1", 3, STRONG, 5, false);
	ch[0] = change(++seq, true, "job-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 2);
	assert_true(pair_above(ev, "cand-1", "job-1"));

	/* cand-1 loses its skills: recorded below, nothing sent. */
	put_profile("cand-1", 2, WEAK, 1, 1);
	ch[0] = change(++seq, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 2);
	assert_true(pair_known(ev, "cand-1", "job-1"));
	assert_false(pair_above(ev, "cand-1", "job-1"));

	/* ...and gets them back: announced again, as an update. */
	put_profile("cand-1", 3, STRONG, 4, 6);
	ch[0] = change(++seq, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 3);
	char id[LM_OUTBOX_EVENT_ID_LEN + 1];
	Lunamatch__V1__OutboxEntry *e = NULL;
	lm_event_id("cand-1", "job-1", 3, 3, model.version, id);
	assert_int_equal(lm_outbox_get_entry(lm_events_outbox(ev), id, &e), LM_OK);
	protobuf_c_message_free_unpacked(&e->base, NULL);

	/* The posting closes: its pairs fall below; reopening announces them
	 * again. */
	put_posting("job-1", 4, STRONG, 5, true);
	ch[0] = change(++seq, true, "job-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_false(pair_above(ev, "cand-1", "job-1"));
	assert_false(pair_above(ev, "cand-2", "job-1"));
	put_posting("job-1", 5, STRONG, 5, false);
	ch[0] = change(++seq, true, "job-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 4); /* top 1 only: cand-2 */
	assert_true(pair_above(ev, "cand-2", "job-1"));

	/* A deleted profile: its pairs are forgotten. */
	assert_int_equal(lm_index_remove_profile(idx, "cand-2", 0), LM_OK);
	ch[0] = change(++seq, false, "cand-2", false, true);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_false(pair_known(ev, "cand-2", "job-1"));

	/* A record changed twice in one batch is derived once; a change that
	 * the follower reports but that is gone from the index counts as
	 * deleted. */
	put_profile("cand-2", 9, STRONG, 5, 6);
	ch[0] = change(seq + 1, false, "cand-2", true, false);
	ch[1] = change(seq + 2, false, "cand-2", false, false);
	seq += 2;
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, seq, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 5);
	lm_event_id("cand-2", "job-1", 9, 5, model.version, id);
	assert_int_equal(lm_outbox_get_entry(lm_events_outbox(ev), id, &e), LM_OK);
	ProtobufCMessage *pm = NULL;
	char perr[64];
	assert_int_equal(lm_pb_decode(&lunamatch__v1__match_event__descriptor,
	                     e->event.data, e->event.len, 65536, &pm, perr, sizeof(perr)),
	    LM_OK);
	/* One of its changes was its first version: NEW_PROFILE. */
	assert_int_equal(((Lunamatch__V1__MatchEvent *) pm)->trigger,
	    LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_PROFILE);
	protobuf_c_message_free_unpacked(pm, NULL);
	protobuf_c_message_free_unpacked(&e->base, NULL);

	assert_int_equal(lm_index_remove_posting(idx, "job-1", 0), LM_OK);
	ch[0] = change(++seq, true, "job-1", false, false); /* not flagged deleted */
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_false(pair_known(ev, "cand-1", "job-1"));
	assert_false(pair_known(ev, "cand-2", "job-1"));

	/* A pair below whose posting is deleted where this outbox does not
	 * hear of it (another replica derives the deletion) is forgotten when
	 * the profile is derived next. */
	put_posting("job-2", 1, STRONG, 5, false);
	ch[0] = change(++seq, true, "job-2", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_true(pair_above(ev, "cand-2", "job-2"));
	put_profile("cand-2", 10, WEAK, 1, 1);
	ch[0] = change(++seq, false, "cand-2", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_true(pair_known(ev, "cand-2", "job-2"));
	assert_false(pair_above(ev, "cand-2", "job-2"));
	assert_int_equal(lm_index_remove_posting(idx, "job-2", 0), LM_OK);
	put_profile("cand-2", 11, WEAK, 1, 1);
	ch[0] = change(++seq, false, "cand-2", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, seq, NOW), LM_OK);
	assert_false(pair_known(ev, "cand-2", "job-2"));
	lm_events_free(ev);
}

/* Changes at or below the cursor were derived before a restart: skipped. */
static void
test_cursor(void **state)
{
	lm_event_change ch[2];
	lm_events *ev;
	uint64_t cur = 0;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	ev = new_events(tmp, min, 50, 0);

	ch[0] = change(5, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 5, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 1);
	lm_events_free(ev);

	/* After a restart, the follower replays seq 4..6: only 6 is new. */
	ev = new_events(tmp, min, 50, 0);
	assert_int_equal(lm_outbox_get_cursor(lm_events_outbox(ev), &cur), LM_OK);
	assert_int_equal(cur, 5);
	put_profile("cand-2", 1, STRONG, 5, 6);
	put_profile("cand-3", 1, STRONG, 5, 6);
	ch[0] = change(4, false, "cand-2", true, false); /* derived before */
	ch[1] = change(6, false, "cand-3", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, 6, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 2);
	assert_false(pair_known(ev, "cand-2", "job-1"));
	assert_true(pair_above(ev, "cand-3", "job-1"));
	assert_int_equal(lm_outbox_get_cursor(lm_events_outbox(ev), &cur), LM_OK);
	assert_int_equal(cur, 6);
	/* A batch ending before the cursor is refused. */
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, 3, NOW), LM_ESTALE);
	/* Bad input. */
	ch[0].id = "bad id";
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 7, NOW), LM_EINVAL);
	assert_int_equal(lm_events_on_changes(ev, NULL, ch, 1, 7, NOW), LM_EINVAL);
	assert_int_equal(lm_events_on_changes(ev, idx, NULL, 1, 7, NOW), LM_EINVAL);
	/* An empty batch moves the cursor. */
	assert_int_equal(lm_events_on_changes(ev, idx, NULL, 0, 8, NOW), LM_OK);
	assert_int_equal(lm_outbox_get_cursor(lm_events_outbox(ev), &cur), LM_OK);
	assert_int_equal(cur, 8);
	lm_events_free(ev);
}

/* After lm_events_interrupt a derivation stops before the next change: the
 * cursor does not pass what was not derived, and the next run derives it. */
static void
test_interrupt(void **state)
{
	lm_event_change ch[2];
	lm_events_split split = {.fn = keep_all};
	lm_events *ev;
	uint64_t cur = 0;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	ev = new_events(tmp, min, 50, 0);
	ch[0] = change(1, true, "job-1", true, false);
	ch[1] = change(2, false, "cand-1", true, false);
	lm_events_interrupt(ev);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, 2, NOW), LM_ECLOSED);
	assert_int_equal(counts(ev).enqueued_total, 0);
	assert_int_equal(lm_outbox_get_cursor(lm_events_outbox(ev), &cur), LM_OK);
	assert_int_equal(cur, 0);
	/* Also a call without changes: before, it returned LM_OK (and moved
	 * the cursor), so the owner committed a batch during shutdown. */
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 0, 2, NOW), LM_ECLOSED);
	assert_int_equal(lm_outbox_get_cursor(lm_events_outbox(ev), &cur), LM_OK);
	assert_int_equal(cur, 0);
	assert_int_equal(lm_events_on_owned(ev, idx, ch, 0, &split, NOW), LM_ECLOSED);
	assert_int_equal(split.announced + split.deferred, 0);
	lm_events_interrupt(NULL);
	lm_events_free(ev);

	/* The next run derives the changes that were left. */
	ev = new_events(tmp, min, 50, 0);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, 2, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 1);
	assert_int_equal(lm_outbox_get_cursor(lm_events_outbox(ev), &cur), LM_OK);
	assert_int_equal(cur, 2);
	lm_events_free(ev);
}

/* Posting job-1, a weak candidate and n strong ones cand-00... (their ids
 * into cid), and a started sender whose messages time out after 1 s, with
 * a minimum score between the weak and the strong. */
static lm_events *
strong_pool(char cid[][16], size_t n)
{
	lm_events *ev;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	for (size_t i = 0; i < n; i++) {
		snprintf(cid[i], 16, "cand-%02u", (unsigned) (i % 100));
		put_profile(cid[i], 1, STRONG, 5, 6);
	}
	ev = new_events(tmp, threshold("cand-00", "cand-weak", "job-1"), 50, 1000);
	assert_int_equal(lm_events_start(ev), LM_OK);
	return ev;
}

/* A broker outage delays events and loses none; none is sent twice. */
static void
test_outage(void **state)
{
	char cid[16][16];
	lm_event_change ch[1];
	struct topic_read r;
	const size_t N = 12;
	lm_events *ev = strong_pool(cid, N);
	(void) state;

	assert_int_equal(rd_kafka_mock_broker_set_down(mock, MOCK_BROKER), 0);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, N);

	/* Attempts time out and are recorded; the events stay pending. */
	bool failed = false;
	for (int waited = 0; waited < 20000 && !failed; waited += 100) {
		failed = counts(ev).failed_total > 0;
		sleep_ms(100);
	}
	assert_true(failed);
	assert_int_equal(counts(ev).pending, N);
	assert_int_equal(counts(ev).delivered_total, 0);
	sleep_ms(1500); /* more attempts fail while the broker is down */
	assert_int_equal(counts(ev).pending, N);

	assert_int_equal(rd_kafka_mock_broker_set_up(mock, MOCK_BROKER), 0);
	assert_true(wait_drained(ev, 60000));
	assert_int_equal(counts(ev).delivered_total, N);
	assert_true(lm_counter_get(lm_metrics_counter(
	                metrics, "lunamatch_events_failed_total", NULL, NULL)) > 0);

	read_topic(N, 20000, &r);
	assert_int_equal(r.n, N);
	assert_unique(&r);
	for (size_t i = 0; i < N; i++)
		assert_non_null(find_pair(&r, cid[i], "job-1"));
	read_free(&r);
	lm_events_free(ev);
}

/* Whether candidate cid's events go to partition 0 (the events producer's
 * partitioner, murmur2_random, on the key). */
static bool
on_partition_0(const char *cid)
{
	return rd_kafka_msg_partitioner_murmur2(
	           NULL, cid, strlen(cid), PARTITIONS, NULL, NULL) == 0;
}

/*
 * One partition without a leader (a broker failing over): its events time
 * out and wait for their retry, and the events for the other partition go
 * on, also those derived while the retries back off. (The sender used to
 * stop producing anything during each back-off, so after a few failed
 * attempts every new event waited seconds, up to LM_EVENTS_RETRY_MAX_MS.)
 * Once the leader is back, every event is delivered, each once.
 */
static void
test_partition_without_leader(void **state)
{
	char cid[12][16];
	const size_t N = 12;
	size_t stuck = 0;
	lm_event_change ch[1];
	struct topic_read r;
	lm_events *ev = strong_pool(cid, N);
	(void) state;

	for (size_t i = 0; i < N; i++)
		stuck += on_partition_0(cid[i]);
	assert_true(stuck > 0 && stuck < N);
	/* The producer knows both leaders before one goes. */
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_true(wait_drained(ev, 20000));

	assert_int_equal(rd_kafka_mock_partition_set_leader(mock, TOPIC, 0, -1), 0);
	put_posting("job-2", 1, STRONG, 5, false);
	ch[0] = change(2, true, "job-2", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 2, NOW), LM_OK);
	/* Three attempts of each stuck event fail: the back-off is 2 s now. */
	for (int waited = 0; waited < 30000 && counts(ev).failed_total < 3 * stuck;
	     waited += 20)
		sleep_ms(20);
	assert_true(counts(ev).failed_total >= 3 * stuck);
	assert_int_equal(counts(ev).delivered_total, N + (N - stuck));

	put_posting("job-3", 1, STRONG, 5, false);
	ch[0] = change(3, true, "job-3", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 3, NOW), LM_OK);
	uint64_t want = N + 2 * (N - stuck);
	for (int waited = 0; waited < 1000 && counts(ev).delivered_total < want;
	     waited += 20)
		sleep_ms(20);
	assert_int_equal(counts(ev).delivered_total, want);
	assert_int_equal(counts(ev).pending, 2 * stuck);

	assert_int_equal(
	    rd_kafka_mock_partition_set_leader(mock, TOPIC, 0, MOCK_BROKER), 0);
	assert_true(wait_drained(ev, 60000));
	assert_int_equal(counts(ev).delivered_total, 3 * N);
	read_topic(3 * N, 20000, &r);
	assert_int_equal(r.n, 3 * N);
	assert_unique(&r);
	for (size_t i = 0; i < N; i++) {
		assert_non_null(find_pair(&r, cid[i], "job-1"));
		assert_non_null(find_pair(&r, cid[i], "job-2"));
		assert_non_null(find_pair(&r, cid[i], "job-3"));
	}
	read_free(&r);
	lm_events_free(ev);
}

/* A fatal error of the idempotent producer: the sender replaces it, and
 * the events derived after it are delivered too. */
static void
test_fatal_producer(void **state)
{
	lm_events *ev;
	(void) state;

	ev = three_delivered();
	assert_int_equal(counts(ev).delivered_total, 3);
	assert_int_equal(
	    rd_kafka_test_fatal_error(lm_events_kafka(ev),
	        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test fatal"),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	new_strong_profile(ev, "cand-4", 2);
	assert_int_equal(counts(ev).delivered_total, 4);
	assert_int_equal(counts(ev).pending, 0);
	lm_events_free(ev);
}

/* Events pending at shutdown are sent by the next run. */
static void
test_restart(void **state)
{
	lm_event_change ch[1];
	struct topic_read r;
	lm_events *ev;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-2", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");

	/* First run: the broker is unreachable; the sender is running when the
	 * service stops. */
	assert_int_equal(rd_kafka_mock_broker_set_down(mock, MOCK_BROKER), 0);
	ev = new_events(tmp, min, 50, 0);
	assert_int_equal(lm_events_start(ev), LM_OK);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	for (int waited = 0; waited < 5000 && lm_events_inflight(ev) < 2; waited += 50)
		sleep_ms(50);
	assert_int_equal(lm_events_inflight(ev), 2); /* handed to librdkafka */
	lm_events_free(ev); /* flush times out; the events stay pending */

	/* Second run, broker back. */
	assert_int_equal(rd_kafka_mock_broker_set_up(mock, MOCK_BROKER), 0);
	ev = new_events(tmp, min, 50, 0);
	assert_int_equal(counts(ev).pending, 2);
	assert_int_equal(lm_events_start(ev), LM_OK);
	assert_true(wait_drained(ev, 30000));
	assert_int_equal(counts(ev).delivered_total, 2);
	read_topic(2, 20000, &r);
	assert_int_equal(r.n, 2);
	assert_unique(&r);
	assert_non_null(find_pair(&r, "cand-1", "job-1"));
	assert_non_null(find_pair(&r, "cand-2", "job-1"));
	read_free(&r);
	lm_events_free(ev);
}

/* How corrupt_pending damages the first pending entry. */
enum damage {
	DAMAGE_EVENT, /* its MatchEvent does not decode */
	DAMAGE_ENTRY, /* the whole entry does not decode */
	DAMAGE_KEY,   /* it is stored under a key that is not an event id */
	DAMAGE_EMPTY, /* its MatchEvent is empty bytes (which do decode) */
};

static size_t count_lines_with(const char *text, const char *what);

/* Moves the first pending entry of the outbox in dir (no process holds it
 * open) under a key one byte short of an event id, as disk damage could. */
static void
shorten_first_pending_key(const char *dir)
{
	char path[4096], key[LM_OUTBOX_EVENT_ID_LEN];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;

	snprintf(path, sizeof(path), "%s/outbox", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t) 1 << 30), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "pending", 0, &dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
	assert_int_equal(k.mv_size, LM_OUTBOX_EVENT_ID_LEN);
	memcpy(key, k.mv_data, sizeof(key));
	uint8_t *val = malloc(v.mv_size);
	assert_non_null(val);
	memcpy(val, v.mv_data, v.mv_size);
	MDB_val nk = {sizeof(key) - 1, key}, nv = {v.mv_size, val};
	assert_int_equal(mdb_cursor_del(cur, 0), 0);
	mdb_cursor_close(cur);
	assert_int_equal(mdb_put(txn, dbi, &nk, &nv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(val);
}

/* Replaces the event bytes of the first pending entry of the outbox in dir
 * (no process holds it open), or the whole entry, with bytes that do not
 * decode, or its event bytes with none; returns its id in id. */
static void
damage_first_pending(const char *dir, enum damage how, char *id, size_t idlen)
{
	bool whole = how == DAMAGE_ENTRY;
	char path[4096];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	static uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};

	snprintf(path, sizeof(path), "%s/outbox", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t) 1 << 30), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "pending", 0, &dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
	snprintf(id, idlen, "%.*s", (int) k.mv_size, (const char *) k.mv_data);
	Lunamatch__V1__OutboxEntry *e =
	    lunamatch__v1__outbox_entry__unpack(NULL, v.mv_size, v.mv_data);
	assert_non_null(e);
	ProtobufCBinaryData real = e->event;
	e->event.data = how == DAMAGE_EMPTY ? NULL : junk;
	e->event.len = how == DAMAGE_EMPTY ? 0 : sizeof(junk);
	uint8_t buf[LM_OUTBOX_ENTRY_MAX];
	size_t n = lunamatch__v1__outbox_entry__pack(e, buf);
	e->event = real; /* the message's own, freed with it */
	lunamatch__v1__outbox_entry__free_unpacked(e, NULL);
	mdb_cursor_close(cur);
	v.mv_data = whole ? junk : buf;
	v.mv_size = whole ? sizeof(junk) : n;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static double
corrupt_total(void)
{
	return lm_counter_get(
	    lm_metrics_counter(metrics, "lunamatch_events_corrupt_total", NULL, NULL));
}

/* A pending event whose MatchEvent (whole false) or whole outbox entry
 * (true) does not decode: the other is delivered; the damaged one is
 * reported and counted once over several scans, and stays pending. */
static void
corrupt_pending(enum damage how)
{
	lm_event_change ch[1];
	struct topic_read r;
	lm_events *ev;
	lmt_capture cap;
	char bad[128], *log;
	double min, before;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-2", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");

	/* Two events derived, not sent (the sender never started). */
	ev = new_events(tmp, min, 50, 0);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).pending, 2);
	lm_events_free(ev);
	if (how == DAMAGE_KEY)
		shorten_first_pending_key(tmp);
	else
		damage_first_pending(tmp, how, bad, sizeof(bad));

	/* The other is delivered; the damaged one is reported once over
	 * several scans and stays pending. */
	before = corrupt_total();
	lmt_stderr_begin(&cap);
	ev = new_events(tmp, min, 50, 0);
	assert_int_equal(lm_events_start(ev), LM_OK);
	for (int waited = 0; waited < 20000 && counts(ev).delivered_total < 1;
	     waited += 50)
		sleep_ms(50);
	sleep_ms(3 * 1000 + 500); /* three more scans */
	log = lmt_stderr_end(&cap);
	assert_int_equal(counts(ev).delivered_total, 1);
	assert_true(corrupt_total() == before + 1);
	assert_int_equal(counts(ev).pending, 1);
	assert_int_equal(count_lines_with(log, "\"event\":\"events.corrupt\""), 1);
	if (how == DAMAGE_KEY)
		assert_int_equal(count_lines_with(log, "pending key of 31 bytes"), 1);
	free(log);
	if (how == DAMAGE_EVENT || how == DAMAGE_EMPTY) {
		Lunamatch__V1__OutboxEntry *left = NULL;
		assert_int_equal(
		    lm_outbox_get_entry(lm_events_outbox(ev), bad, &left), LM_OK);
		protobuf_c_message_free_unpacked(&left->base, NULL);
	}
	read_topic(1, 20000, &r);
	assert_int_equal(r.n, 1);
	lm_events_free(ev);
	read_free(&r);
}

static void
test_corrupt_pending(void **state)
{
	(void) state;
	corrupt_pending(DAMAGE_EVENT);
}

/* Before, an entry that did not decode at all was logged at every scan
 * and never counted. */
static void
test_corrupt_pending_entry(void **state)
{
	(void) state;
	corrupt_pending(DAMAGE_ENTRY);
}

/* Empty event bytes decode to an event with no id, no candidate and no
 * value: produced, they were a tombstone under an empty key. */
static void
test_corrupt_pending_empty(void **state)
{
	(void) state;
	corrupt_pending(DAMAGE_EMPTY);
}

/* Adds n pending entries that do not decode to the outbox in dir (no
 * process holds it open), under ids that sort before every real one: in
 * turn a whole entry of junk and an entry whose event is junk. */
static void
add_damaged_pending(const char *dir, size_t n)
{
	static uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	Lunamatch__V1__OutboxEntry e = LUNAMATCH__V1__OUTBOX_ENTRY__INIT;
	uint8_t buf[256];
	char path[4096], id[LM_OUTBOX_EVENT_ID_LEN + 1];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	size_t elen;

	e.event.data = junk;
	e.event.len = sizeof(junk);
	e.last_error = (char *) "";
	assert_true(lunamatch__v1__outbox_entry__get_packed_size(&e) <= sizeof(buf));
	elen = lunamatch__v1__outbox_entry__pack(&e, buf);
	snprintf(path, sizeof(path), "%s/outbox", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t) 1 << 30), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "pending", 0, &dbi), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "0000000000000000%016zx", i);
		k.mv_size = LM_OUTBOX_EVENT_ID_LEN;
		k.mv_data = id;
		v.mv_data = i % 2 == 0 ? (void *) junk : (void *) buf;
		v.mv_size = i % 2 == 0 ? sizeof(junk) : elen;
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static size_t
count_lines_with(const char *text, const char *what)
{
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
		n++;
	return n;
}

/*
 * More damaged pending entries than the sender has in flight at most
 * (LM_EVENTS_INFLIGHT_MAX), all ahead of two good ones: the good ones are
 * delivered; the damaged ones stay pending, are counted, and are logged
 * in one line per scan. Before, the damaged entries filled the scan's
 * window of LM_EVENTS_INFLIGHT_MAX entries at every scan, so the events
 * behind them were never sent, and each was logged on its own.
 */
static void
test_damaged_pending_ahead(void **state)
{
	const size_t ndamaged = LM_EVENTS_INFLIGHT_MAX + 100;
	lm_event_change ch[1];
	lmt_capture cap;
	lm_events *ev;
	char *log;
	double min, before;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-2", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	ev = new_events(tmp, min, 50, 0);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).pending, 2);
	lm_events_free(ev);
	add_damaged_pending(tmp, ndamaged);

	before = corrupt_total();
	lmt_stderr_begin(&cap);
	ev = new_events(tmp, min, 50, 0);
	assert_int_equal(lm_events_start(ev), LM_OK);
	for (int waited = 0; waited < 15000 && counts(ev).delivered_total < 2;
	     waited += 50)
		sleep_ms(50);
	sleep_ms(1500); /* another scan */
	lm_events_free(ev);
	log = lmt_stderr_end(&cap);
	ev = new_events(tmp, min, 50, 0);
	assert_int_equal(counts(ev).delivered_total, 2);
	assert_int_equal(counts(ev).pending, ndamaged);
	lm_events_free(ev);
	assert_true(corrupt_total() >= before + (double) ndamaged);
	assert_true(count_lines_with(log, "\"event\":\"events.corrupt\"") >= 1);
	assert_true(count_lines_with(log, "\"event\":\"events.corrupt\"") <= 10);
	free(log);
}

/* A pending entry under a key that is not an event id. Before, it was
 * logged at every scan (once a second, for good) and never counted. */
static void
test_corrupt_pending_key(void **state)
{
	(void) state;
	corrupt_pending(DAMAGE_KEY);
}

/* Writes key (klen bytes) with an empty value into database db of the
 * outbox in dir (no process holds it open), as disk damage could. */
static void
poke_outbox_key(const char *dir, const char *db, const char *key, size_t klen)
{
	char path[4096];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *) key}, v = {0, NULL};

	snprintf(path, sizeof(path), "%s/outbox", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t) 1 << 30), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* The number of entries of database db of the outbox in dir (no process
 * holds it open). */
static size_t
outbox_entries(const char *dir, const char *db)
{
	char path[4096];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;

	snprintf(path, sizeof(path), "%s/outbox", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_set_mapsize(env, (size_t) 1 << 30), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_stat(txn, dbi, &st), 0);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return st.ms_entries;
}

/*
 * Recorded pair keys whose counterpart is not a record id (disk damage: a
 * byte outside the id alphabet, an embedded NUL, none at all, more than
 * LM_RECORD_ID_MAX bytes), among the pairs of a posting and of a profile
 * read a few at a time: the derivation of both succeeds and forgets their
 * real pairs, and each damaged key is logged, counted and deleted, so a
 * later derivation finds it no more. Before, an over-long counterpart
 * failed every read of the record's pairs (LM_ESTORE), a bad byte became
 * a pair to forget that the outbox refused with its whole batch
 * (LM_EINVAL), and an empty one ended the list of the record's pairs
 * there: the owner of the record's partition retried the batch for good.
 */
static void
test_damaged_pair_keys(void **state)
{
	char longer[8 + LM_RECORD_ID_MAX + 1];
	lm_event_change ch[2];
	lmt_capture cap;
	lm_events *ev;
	char *log;
	double min, before;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 6);
	put_profile("cand-2", 1, STRONG, 5, 6);
	put_profile("cand-3", 1, STRONG, 5, 6);
	put_profile("cand-weak", 1, WEAK, 1, 1);
	min = threshold("cand-1", "cand-weak", "job-1");
	ev = paged_events(min);
	ch[0] = change(1, true, "job-1", true, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 1, 1, NOW), LM_OK);
	assert_int_equal(counts(ev).pairs, 3);
	lm_events_free(ev);

	poke_outbox_key(tmp, "by_job", "job-1\0", 6);
	poke_outbox_key(tmp, "by_job", "job-1\0c!", 8);
	poke_outbox_key(tmp, "by_job", "job-1\0c\0x", 9);
	memcpy(longer, "job-1\0", 6);
	memset(longer + 6, 'c', LM_RECORD_ID_MAX + 1);
	poke_outbox_key(tmp, "by_job", longer, 6 + LM_RECORD_ID_MAX + 1);
	poke_outbox_key(tmp, "announced", "cand-1\0j!", 9);
	memcpy(longer, "cand-1\0", 7);
	memset(longer + 7, 'j', LM_RECORD_ID_MAX + 1);
	poke_outbox_key(tmp, "announced", longer, 7 + LM_RECORD_ID_MAX + 1);

	/* The posting is deleted and a profile of its pairs changes. */
	assert_int_equal(lm_index_remove_posting(idx, "job-1", 0), LM_OK);
	ch[0] = change(2, true, "job-1", false, true);
	ch[1] = change(3, false, "cand-1", false, false);
	before = metric("lunamatch_events_corrupt_pair_keys_total");
	lmt_stderr_begin(&cap);
	ev = paged_events(min);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, 3, NOW), LM_OK);
	log = lmt_stderr_end(&cap);
	assert_int_equal(counts(ev).pairs, 0);
	assert_true(metric("lunamatch_events_corrupt_pair_keys_total") == before + 6);
	assert_true(count_lines_with(log, "\"event\":\"outbox.corrupt\"") >= 1);
	free(log);

	/* Deleted: found no more. */
	ch[0] = change(4, true, "job-1", false, true);
	ch[1] = change(5, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_changes(ev, idx, ch, 2, 5, NOW), LM_OK);
	assert_true(metric("lunamatch_events_corrupt_pair_keys_total") == before + 6);
	lm_events_free(ev);
	assert_int_equal(outbox_entries(tmp, "by_job"), 0);
	assert_int_equal(outbox_entries(tmp, "announced"), 0);
}

static bool
defer_all(void *arg, const lm_events_pair *p, bool *noted)
{
	(void) arg;
	(void) p;
	(void) noted;
	return false;
}

/* Whether ev's outbox holds a pending event for the pair at these
 * versions. */
static bool
has_event(lm_events *ev, const char *cid, uint64_t cv, const char *jid, uint64_t jv)
{
	char id[LM_OUTBOX_EVENT_ID_LEN + 1];
	Lunamatch__V1__OutboxEntry *e = NULL;

	assert_int_equal(lm_event_id(cid, jid, cv, jv, model.version, id), LM_OK);
	if (lm_outbox_get_entry(lm_events_outbox(ev), id, &e) != LM_OK)
		return false;
	protobuf_c_message_free_unpacked(&e->base, NULL);
	return true;
}

static uint64_t
stale_pairs(void)
{
	return lm_counter_get(lm_metrics_counter(
	    metrics, "lunamatch_events_stale_pairs_total", NULL, NULL));
}

/* The skills of a posting that wants COBOL, and of a profile that has the
 * strong skills and COBOL. */
static const char *const COBOL[] = {"s:cobol"};
static const char *const BOTH[] = {
    "s:python", "s:sql", "s:spark", "s:kafka", "s:aws", "s:cobol"};

/*
 * Two replicas with outboxes of their own under tmp, of TOP_N top_n: *a
 * derives the postings, *b the profiles. job-1 and cand-1 (strong) arrive
 * together: A leaves the pair to B, which announces it. Returns the
 * threshold, just under the pair's score.
 */
static double
two_replicas_announce(uint32_t top_n, lm_events **a, lm_events **b)
{
	lm_events_split keep = {.fn = keep_all}, defer = {.fn = defer_all};
	lm_event_change ch;
	char da[512], db[512];
	double min;

	snprintf(da, sizeof(da), "%s/a", tmp);
	snprintf(db, sizeof(db), "%s/b", tmp);
	assert_int_equal(mkdir(da, 0700), 0);
	assert_int_equal(mkdir(db, 0700), 0);
	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 5, 8);
	min = score_of("cand-1", "job-1") - 0.01;
	*a = new_events(da, min, top_n, 0);
	*b = new_events(db, min, top_n, 0);
	ch = change(0, true, "job-1", true, false);
	assert_int_equal(lm_events_on_owned(*a, idx, &ch, 1, &defer, NOW), LM_OK);
	ch = change(0, false, "cand-1", true, false);
	assert_int_equal(lm_events_on_owned(*b, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(has_event(*b, "cand-1", 1, "job-1", 1));
	assert_true(pair_above(*b, "cand-1", "job-1"));
	assert_false(pair_known(*a, "cand-1", "job-1"));
	return min;
}

/*
 * Two replicas: A owns the postings, B the profiles (each its own outbox).
 * B announces a pair and records it above; the posting changes and the
 * pair falls below, derived by A, which recorded nothing of it; the
 * profile changes and the pair rises again, derived by B. B's state of
 * the pair is of the posting's old version: the rise is announced (it was
 * not: B took the pair for above all along). One replica records the fall
 * itself and announces the rise the same way. When the posting's update
 * is derived by the replica that recorded the pair, and kept it above,
 * the profile's update announces nothing.
 */
static void
test_stale_pair_state_of_another_replica(void **state)
{
	static const char *const MORE[] = {
	    "s:python", "s:sql", "s:spark", "s:kafka", "s:aws", "s:go"};
	char da[512];
	lm_event_change ch;
	lm_events_split keep = {.fn = keep_all};
	lm_events *a, *b;
	double min;
	(void) state;

	min = two_replicas_announce(10, &a, &b);

	/* The posting wants COBOL now: below, derived by A. */
	put_posting("job-1", 2, COBOL, 1, false);
	assert_true(score_of("cand-1", "job-1") < min);
	ch = change(0, true, "job-1", false, false);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(counts(a).enqueued_total, 0);

	/* The profile adds COBOL: above again, derived by B. */
	put_profile("cand-1", 2, BOTH, 6, 8);
	assert_true(score_of("cand-1", "job-1") >= min);
	uint64_t stale0 = stale_pairs();
	ch = change(0, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_owned(b, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(has_event(b, "cand-1", 2, "job-1", 2));
	assert_int_equal(counts(b).enqueued_total, 2);
	assert_int_equal(stale_pairs(), stale0 + 1);
	assert_true(pair_above(b, "cand-1", "job-1"));
	lm_outbox_pair p;
	assert_int_equal(
	    lm_outbox_get_pair(lm_events_outbox(b), "cand-1", "job-1", &p), LM_OK);
	assert_int_equal(p.job_version, 2);
	assert_int_equal(p.candidate_version, 2);
	lm_events_free(a);
	lm_events_free(b);

	/* One replica: the posting's update, derived here, keeps the pair
	 * above; the profile's update after it announces nothing. */
	snprintf(da, sizeof(da), "%s/c", tmp);
	assert_int_equal(mkdir(da, 0700), 0);
	put_posting("job-9", 1, STRONG, 5, false);
	put_profile("cand-9", 1, STRONG, 5, 8);
	a = new_events(da, min, 10, 0);
	ch = change(0, false, "cand-9", true, false);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(has_event(a, "cand-9", 1, "job-9", 1));
	put_posting("job-9", 2, STRONG, 5, false);
	ch = change(0, true, "job-9", false, false);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	put_profile("cand-9", 2, MORE, 6, 8);
	assert_true(score_of("cand-9", "job-9") >= min);
	stale0 = stale_pairs();
	uint64_t enq0 = counts(a).enqueued_total;
	ch = change(0, false, "cand-9", false, false);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(counts(a).enqueued_total, enq0);
	assert_false(has_event(a, "cand-9", 2, "job-9", 2));
	assert_int_equal(stale_pairs(), stale0);
	assert_true(pair_above(a, "cand-9", "job-9"));
	lm_events_free(a);
}

/*
 * One replica, TOP_N 1: a posting's update that pushes a pair out of its
 * top list while the pair stays above records it again under the posting's
 * new version, so that the profile's next update does not take the pair's
 * state for stale and announce it again (it did, under new versions, on
 * every such update).
 */
static void
test_pair_out_of_top_refreshed(void **state)
{
	lm_event_change ch;
	lm_events_split keep = {.fn = keep_all};
	lm_events *ev;
	lm_outbox_pair p;
	double min;
	(void) state;

	put_posting("job-1", 1, STRONG, 5, false);
	put_profile("cand-1", 1, STRONG, 4, 8);
	put_profile("cand-2", 1, STRONG, 5, 8);
	min = score_of("cand-1", "job-1") - 0.01;
	assert_true(score_of("cand-2", "job-1") > score_of("cand-1", "job-1"));
	ev = new_events(tmp, min, 1, 0);
	ch = change(0, false, "cand-1", true, false);
	assert_int_equal(lm_events_on_owned(ev, idx, &ch, 1, &keep, NOW), LM_OK);
	ch = change(0, false, "cand-2", true, false);
	assert_int_equal(lm_events_on_owned(ev, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 2);

	/* The posting's update: cand-2 is its top 1, cand-1 still above. */
	put_posting("job-1", 2, STRONG, 5, false);
	ch = change(0, true, "job-1", false, false);
	assert_int_equal(lm_events_on_owned(ev, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(
	    lm_outbox_get_pair(lm_events_outbox(ev), "cand-1", "job-1", &p), LM_OK);
	assert_true(p.above);
	assert_int_equal(p.job_version, 2);
	assert_int_equal(p.candidate_version, 1);

	/* The profile's update, the same content: nothing to announce. */
	uint64_t stale0 = stale_pairs();
	put_profile("cand-1", 2, STRONG, 4, 8);
	ch = change(0, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_owned(ev, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(counts(ev).enqueued_total, 2);
	assert_false(has_event(ev, "cand-1", 2, "job-1", 2));
	assert_int_equal(stale_pairs(), stale0);
	assert_true(pair_above(ev, "cand-1", "job-1"));
	lm_events_free(ev);
}

/*
 * Two replicas, TOP_N 1: A derives the postings, B the profiles. B
 * announces (cand-1, job-1); job-1's update, derived by A, puts the pair
 * below; cand-1's update lifts it above again but job-0 is cand-1's top 1,
 * so B finds the pair outside its top list, still above, and records it
 * again under cand-1's new version only; job-0 closes and cand-1's next
 * update makes job-1 its top 1: B's state holds job-1's old version, and
 * the rise is announced. (Recorded under job-1's current version, the
 * pair passed for above all along and the rise was never announced.)
 */
static void
test_pushed_out_rise_announced(void **state)
{
	lm_event_change ch;
	lm_events_split keep = {.fn = keep_all};
	lm_events *a, *b;
	lm_outbox_pair p;
	double min;
	(void) state;

	min = two_replicas_announce(1, &a, &b);

	/* Below, derived by A. */
	put_posting("job-1", 2, COBOL, 1, false);
	assert_true(score_of("cand-1", "job-1") < min);
	ch = change(0, true, "job-1", false, false);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);

	/* Above again, outside cand-1's top 1 (job-0, first by id on a tie). */
	put_posting("job-0", 1, STRONG, 5, false);
	put_profile("cand-1", 2, BOTH, 6, 8);
	assert_true(score_of("cand-1", "job-1") >= min);
	assert_true(score_of("cand-1", "job-0") >= score_of("cand-1", "job-1"));
	ch = change(0, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_owned(b, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(
	    lm_outbox_get_pair(lm_events_outbox(b), "cand-1", "job-1", &p), LM_OK);
	assert_true(p.above);
	assert_int_equal(p.candidate_version, 2);
	assert_int_equal(p.job_version, 1);
	assert_false(has_event(b, "cand-1", 2, "job-1", 2));

	/* job-0 closes; job-1 is cand-1's top 1: the rise is announced. */
	put_posting("job-0", 2, STRONG, 5, true);
	put_profile("cand-1", 3, BOTH, 6, 8);
	ch = change(0, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_owned(b, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(has_event(b, "cand-1", 3, "job-1", 2));
	lm_events_free(a);
	lm_events_free(b);
}

/*
 * Two replicas; B recorded the pair above under job-1 v5. job-1 is
 * deleted and, once the store forgot its tombstone, created again from
 * version 1 (both derived by A); its v2 falls below (derived by A), and
 * cand-1's update lifts the pair above again (derived by B). B's state
 * names job-1 v5: taken for "still above" while 2 <= 5, the rise was never
 * announced by either replica.
 */
static void
test_recreated_lower_version_rise_announced(void **state)
{
	lm_event_change ch;
	lm_events_split keep = {.fn = keep_all};
	lm_events *a, *b;
	lm_outbox_pair p;
	double min;
	(void) state;

	min = two_replicas_announce(10, &a, &b);
	put_posting("job-1", 5, STRONG, 5, false);
	put_profile("cand-1", 2, STRONG, 5, 8);
	ch = change(0, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_owned(b, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(
	    lm_outbox_get_pair(lm_events_outbox(b), "cand-1", "job-1", &p), LM_OK);
	assert_true(p.above);
	assert_int_equal(p.job_version, 5);

	assert_int_equal(lm_index_remove_posting(idx, "job-1", 0), LM_OK);
	ch = change(0, true, "job-1", false, true);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	put_posting("job-1", 1, STRONG, 5, false);
	ch = change(0, true, "job-1", true, false);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(has_event(a, "cand-1", 2, "job-1", 1));
	put_posting("job-1", 2, COBOL, 1, false);
	assert_true(score_of("cand-1", "job-1") < min);
	ch = change(0, true, "job-1", false, false);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_false(pair_above(a, "cand-1", "job-1"));

	uint64_t stale0 = stale_pairs();
	put_profile("cand-1", 3, BOTH, 6, 8);
	assert_true(score_of("cand-1", "job-1") >= min);
	ch = change(0, false, "cand-1", false, false);
	assert_int_equal(lm_events_on_owned(b, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(has_event(b, "cand-1", 3, "job-1", 2));
	assert_int_equal(stale_pairs(), stale0 + 1);
	lm_events_free(a);
	lm_events_free(b);
}

static uint64_t
swept_pairs(void)
{
	return lm_counter_get(lm_metrics_counter(
	    metrics, "lunamatch_events_pairs_swept_total", NULL, NULL));
}

/*
 * Pair states stranded by a rebalance: B (the profiles' owner) recorded
 * (cand-1, job-1) above; cand-1's partition moves to C, and cand-1 and
 * job-1 are deleted, derived by C and A. No derivation on B ever forgets
 * B's state: the sweep does, and keeps the states of pairs whose records
 * both exist. A pass that has ended starts again: a pair stranded after it
 * goes in the next.
 */
static void
test_sweep_stranded_pairs(void **state)
{
	lm_event_change ch;
	lm_events_split keep = {.fn = keep_all};
	lm_events *a, *b, *c;
	char dc[512];
	size_t forgotten = 99;
	(void) state;

	double min = two_replicas_announce(10, &a, &b);
	snprintf(dc, sizeof(dc), "%s/c", tmp);
	assert_int_equal(mkdir(dc, 0700), 0);
	c = new_events(dc, min, 10, 0);
	put_posting("job-2", 1, STRONG, 5, false);
	put_profile("cand-2", 1, STRONG, 5, 8);
	ch = change(0, false, "cand-2", true, false);
	assert_int_equal(lm_events_on_owned(b, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(pair_known(b, "cand-2", "job-1"));
	assert_true(pair_known(b, "cand-2", "job-2"));

	/* Nothing gone yet: the sweep keeps every state. */
	uint64_t swept0 = swept_pairs();
	assert_int_equal(lm_events_sweep_pairs(b, idx, NOW, &forgotten), LM_OK);
	assert_int_equal(forgotten, 0);

	assert_int_equal(lm_index_remove_profile(idx, "cand-1", 0), LM_OK);
	ch = change(0, false, "cand-1", false, true);
	assert_int_equal(lm_events_on_owned(c, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_int_equal(lm_index_remove_posting(idx, "job-1", 0), LM_OK);
	ch = change(0, true, "job-1", false, true);
	assert_int_equal(lm_events_on_owned(a, idx, &ch, 1, &keep, NOW), LM_OK);
	assert_true(pair_known(b, "cand-1", "job-1"));
	assert_true(pair_known(b, "cand-2", "job-1"));

	assert_int_equal(lm_events_sweep_pairs(b, idx, NOW, &forgotten), LM_OK);
	assert_int_equal(forgotten, 2);
	assert_false(pair_known(b, "cand-1", "job-1"));
	assert_false(pair_known(b, "cand-2", "job-1"));
	assert_true(pair_known(b, "cand-2", "job-2"));
	assert_int_equal(swept_pairs(), swept0 + 2);

	/* The next pass finds a pair stranded since. */
	assert_int_equal(lm_index_remove_posting(idx, "job-2", 0), LM_OK);
	assert_int_equal(lm_events_sweep_pairs(b, idx, NOW, &forgotten), LM_OK);
	assert_int_equal(forgotten, 1);
	assert_false(pair_known(b, "cand-2", "job-2"));
	assert_int_equal(counts(b).pairs, 0);
	assert_int_equal(lm_events_sweep_pairs(NULL, idx, NOW, &forgotten), LM_EINVAL);
	assert_int_equal(forgotten, 0);
	lm_events_free(a);
	lm_events_free(b);
	lm_events_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_options, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_stale_pair_state_of_another_replica, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pair_out_of_top_refreshed, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pushed_out_rise_announced, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_recreated_lower_version_rise_announced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sweep_stranded_pairs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delivery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outbox_write_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_deliveries_while_recording_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_split_removal_fails_partway, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_deleting_records_of_many_pairs, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_deleting_record_of_more_pairs_than_one_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_record_of_more_pairs_than_one_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_live_record_of_more_pairs_than_one_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deterministic_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crossings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cursor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fatal_producer, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_fatal_while_recording_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_fatal_record_backoff_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_owned_noted_when_written, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pending_gauge_after_late_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_delivery_after_early_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outage, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_partition_without_leader, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_pending_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_pending_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_pending_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_pending_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_pair_keys, setup, teardown),
	};
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
