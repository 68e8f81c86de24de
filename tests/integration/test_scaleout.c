/*
 * test_scaleout.c - the match service scaled out, on real Apache Kafka
 * (LUNAMATCH_TEST_BROKERS; skipped without it): topics of 6 partitions and
 * replicas that each run lunamatch-ingest and lunamatch-match as separate
 * process groups, with their own data directory, ports and ingest consumer
 * group, and one shared events group.
 *
 * The sample postings and profiles are produced in copies (ids suffixed
 * ".c<k>"), with a threshold low enough and a top N large enough that every
 * pair above the threshold is announced whatever the arrival order. Then:
 *  - every replica ends with the full store, and the same query gives the
 *    same answer on each;
 *  - the expected events (the pairs at or above the threshold, read back
 *    with MatchJobs) appear with exactly one event id per pair, and no
 *    event names a pair below it;
 *  - before any hand-over (the first copy, with the group settled) every
 *    pair is delivered exactly once, although a posting and its profiles
 *    are owned by different replicas and arrive together; afterwards,
 *    deliveries of an id more than once are at most what the replicas
 *    count as possible repeats (pairs announced from a previous owner's
 *    claim, events found pending at a restart, failed deliveries);
 *  - replica 3 is SIGKILLed (ingest and match) right after a copy of the
 *    postings: a client given all three endpoints keeps being answered, and
 *    the profiles produced after the kill are announced by the two others
 *    while it is down; restarted, it catches up and owns
 *    partitions again;
 *  - a fourth replica (fresh data directory, its own ingest group) added to
 *    the running cluster loads the whole store and announces nothing: no
 *    new event id appears.
 *
 * Every wait is bounded; the program runs in about a minute.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/client.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/v1/match.pb-c.h"
#include "proc.h"
#include "records.h"
#include "svctest.h"

#define PARTITIONS  6
#define REPLICAS    4 /* three at first, one added later */
#define START_MS    30000
#define IO_MS       30000
#define CATCH_UP_MS 60000
#define EVENT_MS    60000
#define STOP_MS     20000
#define CALL_MS     10000
#define MIN_SCORE   0.5
#define SCORE_EPS   1e-6 /* scores this close to the threshold are not judged */
#define EVENTS_MAX  100000
#define PAIRS_MAX   50000
#define RECORDS_MAX 1000
/* Deliveries of one pair beyond the first, across the hand-overs of the
 * test (a kill, a restart, a replica added). */
#define REPEATS_MAX 3
#define TOP_K       1000

typedef Lunamatch__V1__CandidateProfile CandidateProfile;

struct replica {
	int no;
	char data[4200], notify[4300], ilog[4300], mlog[4300];
	char ingest_http[64], match_http[64], rpc_url[96], group[200];
	int starts;
	lmt_proc *ingest, *match;
	lmt_env ienv, menv;
};

/* One event read from the matches topic. */
struct event {
	char id[40];
	char pair[2 * LM_STORE_ID_MAX + 2]; /* "candidate\tjob" */
};

static struct {
	lmt_broker b;
	char run[64];
	char postings[160], profiles[160], matches[160], dlq[160], events_group[200];
	char *dir;
	struct replica r[REPLICAS];
	lmt_producer *producer;
	rd_kafka_t *consumer;
	lmt_records recs;
	size_t n_postings, n_profiles; /* accepted records produced */
	char *profile_ids[RECORDS_MAX];
	size_t n_profile_ids;
	struct event *events;
	size_t n_events;
} G;

/* ---- replicas ---------------------------------------------------------------------- */

static void
replica_env(struct replica *r)
{
	lmt_env *both[] = {&r->ienv, &r->menv};

	for (int i = 0; i < 2; i++) {
		lmt_env *e = both[i];
		lmt_env_add(e, "LUNAMATCH_BROKERS=%s", G.b.brokers);
		lmt_env_add(e, "LUNAMATCH_DATA_DIR=%s", r->data);
		lmt_env_add(e, "LUNAMATCH_TOPIC_POSTINGS=%s", G.postings);
		lmt_env_add(e, "LUNAMATCH_TOPIC_PROFILES=%s", G.profiles);
		lmt_env_add(e, "LUNAMATCH_TOPIC_MATCHES=%s", G.matches);
		lmt_env_add(e, "LUNAMATCH_TOPIC_DLQ=%s", G.dlq);
		lmt_env_add(e, "LUNAMATCH_NOTIFY_URL=%s", r->notify);
		lmt_env_add(e, "LUNAMATCH_GROUP_ID=%s", r->group);
		lmt_env_add(e, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
		lmt_env_add(e, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
		lmt_env_add(e, "LUNAMATCH_FAIRNESS_FILE=%s",
		    lmt_src("data/fairness/requirements.tsv"));
		lmt_env_add(
		    e, "LUNAMATCH_GAZETTEER_FILE=%s", lmt_src("data/geo/cities.tsv"));
		lmt_env_add(e, "LUNAMATCH_LOG_LEVEL=info");
	}
	lmt_env_add(&r->ienv, "LUNAMATCH_HTTP_ADDR=%s", r->ingest_http);
	lmt_env_add(&r->ienv, "LUNAMATCH_BATCH_MS=20");
	lmt_env_add(&r->menv, "LUNAMATCH_HTTP_ADDR=%s", r->match_http);
	lmt_env_add(&r->menv, "LUNAMATCH_RPC_URL=%s", r->rpc_url);
	lmt_env_add(
	    &r->menv, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(&r->menv, "LUNAMATCH_POLL_MS=200");
	lmt_env_add(&r->menv, "LUNAMATCH_WORKERS=2");
	lmt_env_add(&r->menv, "LUNAMATCH_EVENT_MIN_SCORE=%g", MIN_SCORE);
	lmt_env_add(&r->menv, "LUNAMATCH_EVENT_TOP_N=%d", TOP_K);
	lmt_env_add(&r->menv, "LUNAMATCH_EVENTS_GROUP_ID=%s", G.events_group);
}

static void
replica_init(int i)
{
	struct replica *r = &G.r[i];

	r->no = i + 1;
	snprintf(r->data, sizeof(r->data), "%s/r%d", G.dir, r->no);
	snprintf(r->notify, sizeof(r->notify), "ipc://%s/r%d.ipc", G.dir, r->no);
	snprintf(r->ingest_http, sizeof(r->ingest_http), "127.0.0.1:%d", lmt_free_port());
	snprintf(r->match_http, sizeof(r->match_http), "127.0.0.1:%d", lmt_free_port());
	snprintf(r->rpc_url, sizeof(r->rpc_url), "tcp://127.0.0.1:%d", lmt_free_port());
	snprintf(r->group, sizeof(r->group), "lmtest-%s-ingest-r%d", G.run, r->no);
	replica_env(r);
}

/* Starts ingest and match of replica r (each its own process group) and
 * waits until both are ready. */
static void
replica_start(struct replica *r)
{
	const char *iargv[] = {lmt_bin("lunamatch-ingest"), NULL};
	const char *margv[] = {lmt_bin("lunamatch-match"), NULL};

	r->starts++;
	snprintf(
	    r->ilog, sizeof(r->ilog), "%s/ingest.r%d.%d.log", G.dir, r->no, r->starts);
	snprintf(
	    r->mlog, sizeof(r->mlog), "%s/match.r%d.%d.log", G.dir, r->no, r->starts);
	assert_int_equal(
	    lmt_proc_start_ex(iargv, r->ienv.vec, r->ilog, &r->ingest), LM_OK);
	assert_int_equal(
	    lmt_proc_start_ex(margv, r->menv.vec, r->mlog, &r->match), LM_OK);
	lmt_wait_ready(r->ingest, r->ingest_http, "lunamatch-ingest", r->ilog, START_MS);
	lmt_wait_ready(r->match, r->match_http, "lunamatch-match", r->mlog, START_MS);
}

/* SIGKILL to both processes of r, reaped. */
static void
replica_kill(struct replica *r)
{
	lmt_proc *ps[] = {r->match, r->ingest};
	int st = -1;

	for (int i = 0; i < 2; i++) {
		assert_int_equal(lmt_proc_signal(ps[i], SIGKILL), LM_OK);
		assert_int_equal(lmt_proc_wait(ps[i], STOP_MS, &st), LM_OK);
		assert_int_equal(st, 128 + SIGKILL);
		lmt_proc_free(ps[i]);
	}
	r->match = r->ingest = NULL;
}

static void
replica_stop(struct replica *r)
{
	if (r->match != NULL)
		lmt_proc_stop(&r->match, STOP_MS);
	if (r->ingest != NULL)
		lmt_proc_stop(&r->ingest, STOP_MS);
}

/* Waits until r's index holds every accepted record produced so far. */
static void
wait_full(const struct replica *r)
{
	int64_t end = lm_clock_ms() + CATCH_UP_MS;
	double np = -1, nc = -1;

	while (lm_clock_ms() < end) {
		np = lmt_metric(r->match_http, "lunamatch_index_postings");
		nc = lmt_metric(r->match_http, "lunamatch_index_profiles");
		if (np == (double) G.n_postings && nc == (double) G.n_profiles)
			return;
		lmt_sleep_ms(100);
	}
	fail_msg("replica %d holds %.0f/%zu postings, %.0f/%zu profiles (logs %s, %s)",
	    r->no, np, G.n_postings, nc, G.n_profiles, r->ilog, r->mlog);
}

/* Waits until r owns at least n partitions of the events group. */
static void
wait_owner_n(const struct replica *r, double n)
{
	double v = lmt_wait_metric(
	    r->match_http, "lunamatch_events_owned_partitions", LMT_GE, n, EVENT_MS);
	if (v < n)
		fail_msg("replica %d owns %.0f partitions, fewer than %.0f (log %s)",
		    r->no, v, n, r->mlog);
}

static void
wait_owner(const struct replica *r)
{
	wait_owner_n(r, 1);
}

/* What replica r counts as possible repeats of events. A series that
 * cannot be read (lmt_metric's -1: /metrics did not answer in time on a
 * loaded machine) is asked again for up to EVENT_MS, and fails the test
 * when it never is, rather than counting as -1. */
static double
counted_repeats(const struct replica *r)
{
	static const char *const series[] = {"lunamatch_events_handover_pairs_total",
	    "lunamatch_events_recovered_total", "lunamatch_events_failed_total"};
	double sum = 0;

	for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
		double v = lmt_wait_metric(r->match_http, series[i], LMT_GE, 0, EVENT_MS);
		if (v < 0)
			fail_msg("%s: %s unreadable", r->match_http, series[i]);
		sum += v;
	}
	return sum;
}

/* ---- records --------------------------------------------------------------------------
 */

struct producing {
	const char *topic;
	int copy;
	size_t accepted;
};

/* lmt_jsonl_fn: produces copy `copy` of the record (id suffixed) when ingest
 * accepts it. */
static void
produce_one(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	struct producing *pr = arg;
	char id[LM_STORE_ID_MAX + 1];
	lm_reject why;
	char err[512];
	(void) no;
	(void) line;
	(void) len;

	snprintf(id, sizeof(id), "%s.c%d", lmt_record_id(m), pr->copy);
	lmt_record_set_id(m, id);
	/* Judge acceptance on a prepared duplicate; produce the original. */
	uint8_t *buf = NULL;
	size_t blen = 0;
	assert_int_equal(lm_pb_encode(m, &buf, &blen), LM_OK);
	ProtobufCMessage *dup = NULL;
	assert_int_equal(
	    lm_pb_decode(m->descriptor, buf, blen, 1u << 20, &dup, err, sizeof(err)),
	    LM_OK);
	free(buf);
	if (lmt_record_prepare(&G.recs.ctx, dup, &why, err, sizeof(err)) == LM_OK) {
		lmt_produce_pb(G.producer, pr->topic, id, m);
		pr->accepted++;
		if (m->descriptor == &lunamatch__v1__candidate_profile__descriptor &&
		    G.n_profile_ids < RECORDS_MAX)
			G.profile_ids[G.n_profile_ids++] = strdup(id);
	}
	protobuf_c_message_free_unpacked(dup, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
produce_copy(const char *rel, const char *topic, int copy)
{
	struct producing pr = {topic, copy, 0};

	lmt_jsonl_foreach(rel, lmt_sample_descriptor(rel), produce_one, &pr);
	lmt_producer_flush(G.producer, IO_MS);
	if (strcmp(rel, LMT_SAMPLE_POSTINGS) == 0)
		G.n_postings += pr.accepted;
	else
		G.n_profiles += pr.accepted;
}

/* ---- events
 * ---------------------------------------------------------------------------- */

/* Reads what arrives on the matches topic for ms into G.events. */
static void
poll_events(int ms)
{
	int64_t end = lm_clock_ms() + ms;

	do {
		Lunamatch__V1__MatchEvent *e = lmt_poll_match_event(G.consumer, 100);
		if (e == NULL)
			continue;
		assert_true(G.n_events < EVENTS_MAX);
		struct event *s = &G.events[G.n_events++];
		snprintf(s->id, sizeof(s->id), "%s", e->event_id);
		snprintf(s->pair, sizeof(s->pair), "%s\t%s", e->candidate_id, e->job_id);
		protobuf_c_message_free_unpacked(&e->base, NULL);
	} while (lm_clock_ms() < end);
}

static size_t
distinct_ids(void)
{
	size_t n = 0;
	for (size_t i = 0; i < G.n_events; i++) {
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(G.events[k].id, G.events[i].id) == 0;
		n += !seen;
	}
	return n;
}

/* ---- expectations -------------------------------------------------------------------
 */

/* The pairs of profile cand (by MatchJobs on r) with a score at or above
 * the threshold into above, and those too close to it to judge into
 * unsure; both "candidate\tjob". */
struct pairs {
	char **above, **unsure;
	size_t n_above, n_unsure;
};

/* MatchJobs for cand at as_of (0: the replica's clock); fails the test on
 * any error. */
static Lunamatch__V1__MatchJobsResponse *
match_jobs_at(lm_client *c, const char *cand, int64_t as_of)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	int st = -1;
	char msg[256];

	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = (char *) cand;
	req.top_k = TOP_K;
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
	req.as_of = as_of;
	assert_int_equal(
	    lm_client_match_jobs(c, &req, CALL_MS, &resp, &st, msg, sizeof(msg)), LM_OK);
	if (st != LUNAMATCH__V1__STATUS_CODE__OK)
		fail_msg("MatchJobs %s: %d %s", cand, st, msg);
	return resp;
}

static Lunamatch__V1__MatchJobsResponse *
match_jobs(lm_client *c, const char *cand)
{
	return match_jobs_at(c, cand, 0);
}

static void
pairs_add(char ***arr, size_t *n, const char *cand, const char *job)
{
	char buf[2 * LM_STORE_ID_MAX + 2];

	assert_true(*n < PAIRS_MAX);
	snprintf(buf, sizeof(buf), "%s\t%s", cand, job);
	(*arr)[(*n)++] = strdup(buf);
}

/* The expected pairs of the profiles whose id ends in suffix (NULL: all). */
static void
expected_pairs(const struct replica *r, const char *suffix, struct pairs *p)
{
	lm_client *c = NULL;

	p->above = calloc(PAIRS_MAX, sizeof(char *));
	p->unsure = calloc(PAIRS_MAX, sizeof(char *));
	assert_non_null(p->above);
	assert_non_null(p->unsure);
	p->n_above = p->n_unsure = 0;
	assert_int_equal(lm_client_open(r->rpc_url, NULL, &c), LM_OK);
	for (size_t i = 0; i < G.n_profile_ids; i++) {
		const char *cand = G.profile_ids[i];
		size_t cl = strlen(cand), sl = suffix != NULL ? strlen(suffix) : 0;
		if (suffix != NULL && (cl < sl || strcmp(cand + cl - sl, suffix) != 0))
			continue;
		Lunamatch__V1__MatchJobsResponse *resp = match_jobs(c, cand);
		for (size_t k = 0; k < resp->n_matches; k++) {
			double s = resp->matches[k]->score;
			if (s > MIN_SCORE - SCORE_EPS && s < MIN_SCORE + SCORE_EPS)
				pairs_add(&p->unsure, &p->n_unsure, cand,
				    resp->matches[k]->job_id);
			else if (s >= MIN_SCORE)
				pairs_add(&p->above, &p->n_above, cand,
				    resp->matches[k]->job_id);
		}
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	lm_client_close(c);
}

static void
pairs_free(struct pairs *p)
{
	for (size_t i = 0; i < p->n_above; i++)
		free(p->above[i]);
	for (size_t i = 0; i < p->n_unsure; i++)
		free(p->unsure[i]);
	free(p->above);
	free(p->unsure);
}

/* Events delivered for pair, and the number of distinct ids among them. */
static size_t
events_of(const char *pair, size_t *ids)
{
	const char *first = NULL;
	size_t n = 0;

	*ids = 0;
	for (size_t i = 0; i < G.n_events; i++) {
		if (strcmp(G.events[i].pair, pair) != 0)
			continue;
		n++;
		if (first == NULL) {
			first = G.events[i].id;
			*ids = 1;
		} else if (strcmp(first, G.events[i].id) != 0) {
			(*ids)++;
		}
	}
	return n;
}

/* Deliveries beyond the first of the pairs of p. */
static size_t
repeats_of(const struct pairs *p)
{
	size_t repeats = 0, ids;

	for (size_t i = 0; i < p->n_above; i++) {
		size_t n = events_of(p->above[i], &ids);
		if (ids != 1)
			fail_msg(
			    "pair %s announced under %zu event ids", p->above[i], ids);
		if (n - 1 > REPEATS_MAX)
			fail_msg("pair %s delivered %zu times", p->above[i], n);
		repeats += n - 1;
	}
	return repeats;
}

/* Polls events until every pair of p has one, at most ms. Returns the
 * number still missing. */
static size_t
wait_pairs(const struct pairs *p, int ms)
{
	int64_t end = lm_clock_ms() + ms;
	size_t missing;

	for (;;) {
		size_t ids;
		missing = 0;
		for (size_t i = 0; i < p->n_above; i++)
			missing += events_of(p->above[i], &ids) == 0;
		if (missing == 0 || lm_clock_ms() > end)
			return missing;
		poll_events(500);
	}
}

static bool
in_list(char **arr, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(arr[i], s) == 0)
			return true;
	return false;
}

/* ---- the test
 * -------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
	(void) state;
	memset(&G, 0, sizeof(G));
	if (lmt_kafka_real_brokers() == NULL)
		return 0;

	G.events = calloc(EVENTS_MAX, sizeof(*G.events));
	assert_non_null(G.events);
	lmt_run_id(G.run, sizeof(G.run), "s");
	snprintf(G.postings, sizeof(G.postings), "lmtest.%s.postings", G.run);
	snprintf(G.profiles, sizeof(G.profiles), "lmtest.%s.profiles", G.run);
	snprintf(G.matches, sizeof(G.matches), "lmtest.%s.matches", G.run);
	snprintf(G.dlq, sizeof(G.dlq), "lmtest.%s.dlq", G.run);
	snprintf(G.events_group, sizeof(G.events_group), "lmtest-%s-events", G.run);
	G.dir = lmt_tmpdir("scaleout");
	const lmt_topic topics[] = {{"LUNAMATCH_TOPIC_POSTINGS", G.postings},
	    {"LUNAMATCH_TOPIC_PROFILES", G.profiles},
	    {"LUNAMATCH_TOPIC_MATCHES", G.matches}, {"LUNAMATCH_TOPIC_DLQ", G.dlq}};
	lmt_broker_open(&G.b, PARTITIONS, topics, 4);
	lmt_records_open(&G.recs, 384);
	for (int i = 0; i < REPLICAS; i++)
		replica_init(i);
	G.producer = lmt_producer_new(G.b.brokers, "lmtest-scaleout",
	    (const char *const[]){"enable.idempotence", "true", "linger.ms", "5", NULL});
	char reader[200];
	snprintf(reader, sizeof(reader), "lmtest-%s-reader", G.run);
	G.consumer = lmt_kafka_consumer(G.b.brokers, "lmtest-scaleout", reader,
	    (const char *const[]){"auto.offset.reset", "earliest", NULL});
	lmt_kafka_assign(G.consumer, G.matches, PARTITIONS, NULL);
	return 0;
}

static int
group_teardown(void **state)
{
	(void) state;
	if (G.dir == NULL)
		return 0;
	for (int i = 0; i < REPLICAS; i++) {
		replica_stop(&G.r[i]);
		lmt_env_free(&G.r[i].ienv);
		lmt_env_free(&G.r[i].menv);
	}
	lmt_kafka_consumer_free(G.consumer);
	lmt_producer_free(G.producer);
	lmt_records_close(&G.recs);
	lmt_broker_close(&G.b);
	for (size_t i = 0; i < G.n_profile_ids; i++)
		free(G.profile_ids[i]);
	lmt_rmtree(G.dir);
	free(G.dir);
	free(G.events);
	return 0;
}

static void
test_scaleout(void **state)
{
	struct pairs first, after_kill, all;
	size_t missing, before_r4, repeats;
	double counted = 0;

	(void) state;
	if (G.dir == NULL)
		skip(); /* needs real Kafka: LUNAMATCH_TEST_BROKERS */

	/* Three replicas, the group settled (each replica's two members own
	 * two partitions of their topic); copy 0 of every record. */
	for (int i = 0; i < 3; i++)
		replica_start(&G.r[i]);
	for (int i = 0; i < 3; i++)
		wait_owner_n(&G.r[i], 2 * PARTITIONS / 3);
	produce_copy(LMT_SAMPLE_POSTINGS, G.postings, 0);
	produce_copy(LMT_SAMPLE_PROFILES, G.profiles, 0);
	for (int i = 0; i < 3; i++)
		wait_full(&G.r[i]);

	/* No hand-over yet: every pair once, each left by one side to the
	 * other when both saw it. */
	expected_pairs(&G.r[0], ".c0", &first);
	assert_true(first.n_above > 0);
	missing = wait_pairs(&first, EVENT_MS);
	if (missing != 0)
		fail_msg("%zu of %zu pairs of the first copy not announced", missing,
		    first.n_above);
	poll_events(3000);
	repeats = repeats_of(&first);
	for (int i = 0; i < 3; i++)
		counted += lmt_metric(
		    G.r[i].match_http, "lunamatch_events_pairs_deferred_total");
	print_message("scaleout: first copy: %zu pairs, %zu repeated deliveries, %.0f "
	              "pairs left to the other side\n",
	    first.n_above, repeats, counted);
	if (repeats != 0)
		fail_msg("%zu repeated deliveries without a hand-over", repeats);
	pairs_free(&first);

	/* Copy 1 of the postings, then replica 3 dies at once (its owner is
	 * deriving), then copy 1 of the profiles. */
	char urls[400];
	lm_client *any = NULL;
	snprintf(urls, sizeof(urls), "%s,%s,%s", G.r[0].rpc_url, G.r[1].rpc_url,
	    G.r[2].rpc_url);
	assert_int_equal(lm_client_open(urls, NULL, &any), LM_OK);
	for (int i = 0; i < 9; i++)
		protobuf_c_message_free_unpacked(
		    &match_jobs(any, G.profile_ids[0])->base, NULL);
	produce_copy(LMT_SAMPLE_POSTINGS, G.postings, 1);
	replica_kill(&G.r[2]);
	/* A client of all three keeps being answered by the two others. */
	for (int i = 0; i < 30; i++)
		protobuf_c_message_free_unpacked(
		    &match_jobs(any, G.profile_ids[0])->base, NULL);
	lm_client_close(any);
	produce_copy(LMT_SAMPLE_PROFILES, G.profiles, 1);
	wait_full(&G.r[0]);
	wait_full(&G.r[1]);
	/* The pairs of the profiles produced after the kill are announced by
	 * the two others while replica 3 is down. */
	expected_pairs(&G.r[0], ".c1", &after_kill);
	assert_true(after_kill.n_above > 0);
	missing = wait_pairs(&after_kill, EVENT_MS);
	if (missing != 0)
		fail_msg("%zu of %zu pairs of profiles produced after the kill not "
		         "announced by the survivors",
		    missing, after_kill.n_above);
	pairs_free(&after_kill);

	/* Restarted, replica 3 catches up and owns partitions again. */
	replica_start(&G.r[2]);
	wait_full(&G.r[2]);
	wait_owner(&G.r[2]);
	lmt_wait_metric(
	    G.r[2].match_http, "lunamatch_events_pending", LMT_EQ, 0, EVENT_MS);

	/* Everything expected is there, once per pair. */
	expected_pairs(&G.r[0], NULL, &all);
	missing = wait_pairs(&all, EVENT_MS);
	assert_int_equal(missing, 0);
	poll_events(3000);
	repeats = repeats_of(&all);
	counted = 0;
	for (int i = 0; i < 3; i++)
		counted += counted_repeats(&G.r[i]);
	for (size_t i = 0; i < G.n_events; i++)
		if (!in_list(all.above, all.n_above, G.events[i].pair) &&
		    !in_list(all.unsure, all.n_unsure, G.events[i].pair))
			fail_msg("event %s for pair %s below the threshold",
			    G.events[i].id, G.events[i].pair);
	print_message("scaleout: %zu pairs announced, %zu deliveries, %zu repeated "
	              "across the hand-overs, %.0f counted as possible repeats\n",
	    all.n_above, G.n_events, repeats, counted);
	if ((double) repeats > counted)
		fail_msg("%zu repeated deliveries, more than the %.0f the replicas "
		         "count",
		    repeats, counted);

	/* A fourth replica joins the running cluster: full store, nothing old
	 * announced. */
	before_r4 = distinct_ids();
	replica_start(&G.r[3]);
	wait_full(&G.r[3]);
	wait_owner(&G.r[3]);
	poll_events(5000);
	assert_int_equal(distinct_ids(), before_r4);
	assert_true(
	    lmt_metric(G.r[3].match_http, "lunamatch_events_enqueued_total") == 0);

	/* The same query gives the same answer on every replica, asked for
	 * the same time (freshness depends on it, to the second). */
	lm_client *c[REPLICAS];
	for (int i = 0; i < REPLICAS; i++)
		assert_int_equal(lm_client_open(G.r[i].rpc_url, NULL, &c[i]), LM_OK);
	for (size_t p = 0; p < G.n_profile_ids; p += 7) {
		Lunamatch__V1__MatchJobsResponse *ref =
		    match_jobs(c[0], G.profile_ids[p]);
		for (int i = 1; i < REPLICAS; i++) {
			Lunamatch__V1__MatchJobsResponse *o =
			    match_jobs_at(c[i], G.profile_ids[p], ref->as_of);
			assert_int_equal(o->n_matches, ref->n_matches);
			for (size_t k = 0; k < o->n_matches; k++) {
				assert_string_equal(
				    o->matches[k]->job_id, ref->matches[k]->job_id);
				assert_true(
				    o->matches[k]->score == ref->matches[k]->score);
			}
			protobuf_c_message_free_unpacked(&o->base, NULL);
		}
		protobuf_c_message_free_unpacked(&ref->base, NULL);
	}
	for (int i = 0; i < REPLICAS; i++)
		lm_client_close(c[i]);
	pairs_free(&all);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scaleout),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
