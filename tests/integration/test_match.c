/*
 * test_match.c - lunamatch-match end to end, as real processes:
 * lunamatch-devkafka (or the Apache Kafka broker of LUNAMATCH_TEST_BROKERS,
 * with uniquely named topics per run), lunamatch-ingest and lunamatch-match,
 * each with its own data directory and ports.
 *
 * The sample postings and profiles are produced as protobuf with
 * librdkafka; ingest stores them, match follows the store. Then, over real
 * nng sockets with the C client (and a raw REQ socket for bytes the client
 * would never send):
 *  - ranked matches and an explained veto from the sample data;
 *  - every status code a caller can get: OK, NOT_FOUND, INVALID_ARGUMENT
 *    (bad payload, garbage envelope, top_k), UNIMPLEMENTED, a 1 ms deadline
 *    (DEADLINE_EXCEEDED or OK, never another code; the unit test pins it),
 *    RESOURCE_EXHAUSTED (oversize, and a message beyond nng's receive limit
 *    that is dropped) with the server still serving afterwards;
 *  - 64 threads of concurrent calls; /healthz, /readyz and /metrics values;
 *  - a posting produced after start becomes a MatchEvent on the matches
 *    topic; SIGTERM and restart lose no change (a posting produced while
 *    match was down is served and announced) and announce nothing twice;
 *  - ingest trims the change log up to the position match records, and
 *    match never has to reload;
 *  - the CLI, also with --url listing a dead replica next to the live one;
 *  - an outbox that cannot grow (a file-size limit): the failing writes are
 *    counted, /readyz says 503 with the reason, and after a restart without
 *    the limit the event is derived and delivered;
 *  - devkafka only: the broker frozen (SIGSTOP) while a posting is produced:
 *    nothing is lost, the posting is stored and its event delivered once the
 *    broker is back.
 *
 * Every wait is bounded; the whole program runs in well under three minutes.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <librdkafka/rdkafka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/client.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/rpc.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/records.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "proc.h"
#include "records.h"
#include "svctest.h"

#define PARTITIONS       3
#define START_MS         30000 /* a process up and ready */
#define IO_MS            30000 /* produce, topic creation */
#define CATCH_UP_MS      60000 /* the samples through ingest into match's index */
#define EVENT_MS         60000 /* an event to reach the matches topic */
#define TRIM_MS          30000 /* ingest to trim after match recorded its position */
#define STOP_MS          20000 /* SIGTERM to exit */
#define CALL_MS          10000 /* deadline of an ordinary call */
#define MAX_REQUEST      65536 /* match's LUNAMATCH_MAX_REQUEST_BYTES in this test */
#define THREADS          64
#define CALLS_PER_THREAD 20
#define EVENTS_MAX       20000

#define SEED_JOB "job-dfs-sr-mgr-ml"
#define LEAD     "cand-ml-lead-chicago"
#define JUNIOR   "cand-ml-junior-chicago"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile CandidateProfile;

/* One event seen on the matches topic. */
struct seen_event {
	char id[40];
	char job[LM_STORE_ID_MAX + 1];
	char cand[LM_STORE_ID_MAX + 1];
};

static struct {
	bool real; /* b.real */
	char run[64];
	lmt_broker b;
	const char *brokers; /* b.brokers */
	char postings[160], profiles[160], matches[160], dlq[160], group[160];
	char *dir;
	char data[4200], notify[4300], ingest_log[4300], match_log[4300];
	char ingest_http[64], match_http[64], rpc_url[96];
	int match_starts;
	lmt_proc *ingest, *match;
	lmt_env ingest_env, match_env;
	lm_client *client;
	lmt_producer *producer;
	rd_kafka_t *consumer;
	size_t n_postings, n_profiles; /* samples that ingest accepts */
	struct seen_event *events;
	size_t n_events;
} G;

/* ---- processes ------------------------------------------------------------------- */

static void
build_env(void)
{
	lmt_env *both[] = {&G.ingest_env, &G.match_env};

	for (int i = 0; i < 2; i++) {
		lmt_env *e = both[i];
		lmt_env_add(e, "LUNAMATCH_BROKERS=%s", G.brokers);
		lmt_env_add(e, "LUNAMATCH_DATA_DIR=%s", G.data);
		lmt_env_add(e, "LUNAMATCH_TOPIC_POSTINGS=%s", G.postings);
		lmt_env_add(e, "LUNAMATCH_TOPIC_PROFILES=%s", G.profiles);
		lmt_env_add(e, "LUNAMATCH_TOPIC_MATCHES=%s", G.matches);
		lmt_env_add(e, "LUNAMATCH_TOPIC_DLQ=%s", G.dlq);
		lmt_env_add(e, "LUNAMATCH_NOTIFY_URL=%s", G.notify);
		lmt_env_add(e, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
		lmt_env_add(e, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
		lmt_env_add(e, "LUNAMATCH_FAIRNESS_FILE=%s",
		    lmt_src("data/fairness/requirements.tsv"));
		lmt_env_add(
		    e, "LUNAMATCH_GAZETTEER_FILE=%s", lmt_src("data/geo/cities.tsv"));
		lmt_env_add(e, "LUNAMATCH_LOG_LEVEL=info");
		/* Ingest's group; match asks it for its committed offsets. */
		lmt_env_add(e, "LUNAMATCH_GROUP_ID=%s", G.group);
	}

	lmt_env_add(&G.ingest_env, "LUNAMATCH_HTTP_ADDR=%s", G.ingest_http);
	lmt_env_add(&G.ingest_env, "LUNAMATCH_BATCH_MS=50");

	lmt_env *m = &G.match_env;
	lmt_env_add(m, "LUNAMATCH_HTTP_ADDR=%s", G.match_http);
	lmt_env_add(m, "LUNAMATCH_RPC_URL=%s", G.rpc_url);
	lmt_env_add(m, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(m, "LUNAMATCH_POLL_MS=200");
	lmt_env_add(m, "LUNAMATCH_MAX_REQUEST_BYTES=%d", MAX_REQUEST);
	lmt_env_add(m, "LUNAMATCH_WORKERS=4");
	lmt_env_add(m, "LUNAMATCH_EVENT_MIN_SCORE=0.5");
	lmt_env_add(m, "LUNAMATCH_EVENT_TOP_N=10");
	lmt_env_add(m, "LUNAMATCH_EVENTS_GROUP_ID=%s-events", G.group);
}

/* Starts argv (lunamatch-match, perhaps behind a wrapper) as G.match. */
static void
match_start_argv(const char *const *argv)
{
	snprintf(
	    G.match_log, sizeof(G.match_log), "%s/match.%d.log", G.dir, ++G.match_starts);
	assert_int_equal(
	    lmt_proc_start_ex(argv, G.match_env.vec, G.match_log, &G.match), LM_OK);
	lmt_wait_ready(G.match, G.match_http, "lunamatch-match", G.match_log, START_MS);
}

static void
match_start(void)
{
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	match_start_argv(argv);
}

/* ---- Kafka ----------------------------------------------------------------------- */

/* Reads what arrived on the matches topic for up to ms, into G.events. */
static void
poll_events(int ms)
{
	int64_t end = lm_clock_ms() + ms;

	do {
		Lunamatch__V1__MatchEvent *e = lmt_poll_match_event(G.consumer, 100);
		if (e == NULL)
			continue;
		assert_true(G.n_events < EVENTS_MAX);
		struct seen_event *s = &G.events[G.n_events++];
		snprintf(s->id, sizeof(s->id), "%s", e->event_id);
		snprintf(s->job, sizeof(s->job), "%s", e->job_id);
		snprintf(s->cand, sizeof(s->cand), "%s", e->candidate_id);
		protobuf_c_message_free_unpacked(&e->base, NULL);
	} while (lm_clock_ms() < end);
}

static size_t
events_for_job(const char *job)
{
	size_t n = 0;
	for (size_t i = 0; i < G.n_events; i++)
		n += strcmp(G.events[i].job, job) == 0;
	return n;
}

/* Waits until at least one event for job arrived. */
static bool
wait_event_for_job(const char *job, int ms)
{
	int64_t end = lm_clock_ms() + ms;
	while (lm_clock_ms() < end) {
		if (events_for_job(job) > 0)
			return true;
		poll_events(200);
	}
	return events_for_job(job) > 0;
}

/* ---- samples --------------------------------------------------------------------- */

struct producing {
	const char *topic;
	const lm_record_ctx *rctx;
	size_t accepted;
};

/* lmt_jsonl_fn: produces the record (protobuf, key = id), then counts it
 * when ingest will accept it (it prepares cleanly). */
static void
produce_one(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	struct producing *pr = arg;
	lm_reject why;
	char err[512];
	(void) no;
	(void) line;
	(void) len;

	lmt_produce_pb(G.producer, pr->topic, lmt_record_id(m), m);
	pr->accepted += lmt_record_prepare(pr->rctx, m, &why, err, sizeof(err)) == LM_OK;
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Produces every record of a sample file and returns the number of those
 * that ingest will accept. */
static size_t
produce_samples(const char *rel, const char *topic, const lm_record_ctx *rctx)
{
	struct producing pr = {topic, rctx, 0};
	lmt_jsonl_foreach(rel, lmt_sample_descriptor(rel), produce_one, &pr);
	return pr.accepted;
}

/* A copy of the seed posting, with another id. */
static JobPosting *
seed_copy(const char *id)
{
	JobPosting *p = (JobPosting *) lmt_sample_get(LMT_SAMPLE_POSTINGS, SEED_JOB);
	assert_string_equal(p->id, SEED_JOB);
	lmt_record_set_id(&p->base, id);
	return p;
}

/* ---- RPC helpers ------------------------------------------------------------------ */

static Lunamatch__V1__HealthCheckResponse *
check(void)
{
	Lunamatch__V1__HealthCheckRequest req = LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *r = NULL;
	int st = -1;
	char msg[256];

	if (lm_client_check(G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg)) !=
	        LM_OK ||
	    st != LUNAMATCH__V1__STATUS_CODE__OK) {
		if (r != NULL)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		return NULL;
	}
	return r;
}

static int
get_posting(const char *id)
{
	Lunamatch__V1__GetPostingRequest req = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	Lunamatch__V1__GetPostingResponse *r = NULL;
	int st = -1;
	char msg[256];

	req.id = (char *) id;
	if (lm_client_get_posting(G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg)) !=
	    LM_OK)
		return -1;
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	return st;
}

static bool
wait_posting(const char *id, int ms)
{
	int64_t end = lm_clock_ms() + ms;
	while (lm_clock_ms() < end) {
		if (get_posting(id) == LUNAMATCH__V1__STATUS_CODE__OK)
			return true;
		lmt_sleep_ms(100);
	}
	return false;
}

/* Sends raw bytes on a fresh REQ socket; returns the decoded answer or NULL
 * when none came within ms. */
static Lunamatch__V1__RpcResponse *
raw_call(const void *bytes, size_t len, int ms)
{
	nng_socket s;
	void *buf = NULL;
	size_t sz = 0;
	Lunamatch__V1__RpcResponse *r = NULL;

	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 1u << 20), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, ms), 0);
	assert_int_equal(
	    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE), 0);
	assert_int_equal(nng_dial(s, G.rpc_url, NULL, 0), 0);
	assert_int_equal(nng_send(s, (void *) bytes, len, 0), 0);
	if (nng_recv(s, &buf, &sz, NNG_FLAG_ALLOC) == 0) {
		r = lunamatch__v1__rpc_response__unpack(NULL, sz, buf);
		assert_non_null(r);
		nng_free(buf, sz);
	}
	nng_close(s);
	return r;
}

/* An envelope for method with payload bytes and a deadline of timeout_ms;
 * serialized into *out. */
static size_t
envelope_timeout(const char *method, const void *payload, size_t plen,
    uint32_t timeout_ms, uint8_t **out)
{
	Lunamatch__V1__RpcRequest req = LUNAMATCH__V1__RPC_REQUEST__INIT;
	char full[LM_RPC_MAX_METHOD + 1];
	size_t len = 0;

	assert_int_equal(lm_rpc_method_name(method, full, sizeof(full)), LM_OK);
	req.method = full;
	req.request_id = "raw-1";
	req.timeout_ms = timeout_ms;
	req.payload.data = (uint8_t *) payload;
	req.payload.len = plen;
	assert_int_equal(lm_pb_encode(&req.base, out, &len), LM_OK);
	return len;
}

/* An envelope for method with payload bytes and the test's call deadline. */
static size_t
envelope(const char *method, const void *payload, size_t plen, uint8_t **out)
{
	return envelope_timeout(method, payload, plen, CALL_MS, out);
}

/* ---- group set-up ------------------------------------------------------------------ */

static int
group_setup(void **state)
{
	lmt_records recs;

	(void) state;
	memset(&G, 0, sizeof(G));
	G.events = calloc(EVENTS_MAX, sizeof(*G.events));
	assert_non_null(G.events);
	lmt_run_id(G.run, sizeof(G.run), "m");
	snprintf(G.postings, sizeof(G.postings), "lmtest.%s.postings", G.run);
	snprintf(G.profiles, sizeof(G.profiles), "lmtest.%s.profiles", G.run);
	snprintf(G.matches, sizeof(G.matches), "lmtest.%s.matches", G.run);
	snprintf(G.dlq, sizeof(G.dlq), "lmtest.%s.dlq", G.run);
	snprintf(G.group, sizeof(G.group), "lmtest-%s", G.run);
	G.dir = lmt_tmpdir("match");
	snprintf(G.data, sizeof(G.data), "%s/data", G.dir);
	snprintf(G.notify, sizeof(G.notify), "ipc://%s/notify.ipc", G.dir);
	snprintf(G.ingest_http, sizeof(G.ingest_http), "127.0.0.1:%d", lmt_free_port());
	snprintf(G.match_http, sizeof(G.match_http), "127.0.0.1:%d", lmt_free_port());
	snprintf(G.rpc_url, sizeof(G.rpc_url), "tcp://127.0.0.1:%d", lmt_free_port());
	snprintf(G.ingest_log, sizeof(G.ingest_log), "%s/ingest.log", G.dir);

	const lmt_topic topics[] = {{"LUNAMATCH_TOPIC_POSTINGS", G.postings},
	    {"LUNAMATCH_TOPIC_PROFILES", G.profiles},
	    {"LUNAMATCH_TOPIC_MATCHES", G.matches}, {"LUNAMATCH_TOPIC_DLQ", G.dlq}};
	lmt_broker_open(&G.b, PARTITIONS, topics, 4);
	G.real = G.b.real;
	G.brokers = G.b.brokers;
	build_env();

	/* Match first: it must come up on an empty (not yet created) store and
	 * follow ingest whenever that starts. */
	match_start();
	const char *iargv[] = {lmt_bin("lunamatch-ingest"), NULL};
	assert_int_equal(
	    lmt_proc_start_ex(iargv, G.ingest_env.vec, G.ingest_log, &G.ingest), LM_OK);
	lmt_wait_ready(
	    G.ingest, G.ingest_http, "lunamatch-ingest", G.ingest_log, START_MS);

	assert_int_equal(lm_client_open(G.rpc_url, NULL, &G.client), LM_OK);
	G.producer = lmt_producer_new(G.brokers, "lmtest-match",
	    (const char *const[]){"enable.idempotence", "true", "linger.ms", "5", NULL});
	char reader[200];
	snprintf(reader, sizeof(reader), "lmtest-reader-%s", G.run);
	G.consumer = lmt_kafka_consumer(G.brokers, "lmtest-match", reader,
	    (const char *const[]){"auto.offset.reset", "earliest", NULL});
	lmt_kafka_assign(G.consumer, G.matches, PARTITIONS, NULL);

	/* The samples, as protobuf. */
	lmt_records_open(&recs, 384);
	G.n_postings = produce_samples(LMT_SAMPLE_POSTINGS, G.postings, &recs.ctx);
	G.n_profiles = produce_samples(LMT_SAMPLE_PROFILES, G.profiles, &recs.ctx);
	lmt_records_close(&recs);
	lmt_producer_flush(G.producer, IO_MS);

	/* Wait until match's index holds every accepted record. */
	int64_t end = lm_clock_ms() + CATCH_UP_MS;
	for (;;) {
		double np = lmt_metric(G.match_http, "lunamatch_index_postings");
		double nc = lmt_metric(G.match_http, "lunamatch_index_profiles");
		if (np == (double) G.n_postings && nc == (double) G.n_profiles)
			break;
		if (lm_clock_ms() > end)
			fail_msg("index has %.0f/%zu postings, %.0f/%zu profiles (logs "
			         "%s, %s)",
			    np, G.n_postings, nc, G.n_profiles, G.ingest_log,
			    G.match_log);
		lmt_sleep_ms(100);
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void) state;
	lm_client_close(G.client);
	lmt_kafka_consumer_free(G.consumer);
	lmt_producer_free(G.producer);
	if (G.match != NULL)
		lmt_proc_stop(&G.match, STOP_MS);
	if (G.ingest != NULL) {
		int st = -1;
		lmt_proc_signal(G.ingest, SIGTERM);
		lmt_proc_wait(G.ingest, STOP_MS, &st);
	}
	lmt_proc_free(G.ingest);
	lmt_broker_close(&G.b);
	lmt_env_free(&G.ingest_env);
	lmt_env_free(&G.match_env);
	lmt_rmtree(G.dir);
	free(G.dir);
	free(G.events);
	return 0;
}

/* ---- tests ----------------------------------------------------------------------------
 */

static void
test_ranked_matches(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	Lunamatch__V1__MatchCandidatesRequest creq =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *cr = NULL;
	int st = -1;
	char msg[512];
	bool found = false;

	(void) state;
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	req.top_k = 5;
	assert_int_equal(
	    lm_client_match_jobs(G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg)),
	    LM_OK);
	assert_int_equal(st, LUNAMATCH__V1__STATUS_CODE__OK);
	assert_int_equal(r->n_matches, 5);
	for (size_t i = 0; i < 3; i++)
		found |= strcmp(r->matches[i]->job_id, SEED_JOB) == 0;
	assert_true(found);
	for (size_t i = 1; i < r->n_matches; i++)
		assert_true(r->matches[i - 1]->score >= r->matches[i]->score);
	assert_int_equal(r->considered, G.n_postings);
	assert_true(r->index_seq > 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	creq.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	creq.job_id = SEED_JOB;
	assert_int_equal(lm_client_match_candidates(
	                     G.client, &creq, CALL_MS, &cr, &st, msg, sizeof(msg)),
	    LM_OK);
	assert_int_equal(st, LUNAMATCH__V1__STATUS_CODE__OK);
	found = false;
	for (size_t i = 0; i < cr->n_matches; i++)
		found |= strcmp(cr->matches[i]->candidate_id, LEAD) == 0;
	assert_true(found);
	protobuf_c_message_free_unpacked(&cr->base, NULL);
}

static void
test_explain_veto(void **state)
{
	Lunamatch__V1__ExplainMatchRequest req =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchResponse *r = NULL;
	int st = -1;
	char msg[512];
	size_t groups = 0;

	(void) state;
	req.candidate_id = JUNIOR;
	req.job_id = SEED_JOB;
	assert_int_equal(
	    lm_client_explain_match(G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg)),
	    LM_OK);
	assert_int_equal(st, LUNAMATCH__V1__STATUS_CODE__OK);
	assert_false(r->eligible);
	assert_non_null(r->match->explanation);
	for (size_t i = 0; i < r->match->explanation->n_vetoes; i++)
		groups += strcmp(r->match->explanation->vetoes[i]->code,
		              "REQUIREMENT_GROUP") == 0;
	assert_true(groups >= 1);
	assert_true(r->match->explanation->n_failed_requirement_groups >= 3);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void
test_status_codes(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	Lunamatch__V1__RpcResponse *rr;
	ProtobufCMessage *any = NULL;
	uint8_t *buf = NULL;
	size_t len;
	int st = -1;
	char msg[512];

	(void) state;
	/* NOT_FOUND. */
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = "cand-nobody-at-all";
	assert_int_equal(
	    lm_client_match_jobs(G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg)),
	    LM_OK);
	assert_int_equal(st, LUNAMATCH__V1__STATUS_CODE__NOT_FOUND);
	assert_null(r);
	assert_int_equal(
	    get_posting("job-nothing-here"), LUNAMATCH__V1__STATUS_CODE__NOT_FOUND);

	/* INVALID_ARGUMENT from the handler. */
	req.candidate_id = LEAD;
	req.top_k = 1001;
	assert_int_equal(
	    lm_client_match_jobs(G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg)),
	    LM_OK);
	assert_int_equal(st, LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "top_k"));
	req.top_k = 0;

	/* UNIMPLEMENTED: a method the service does not have. */
	Lunamatch__V1__HealthCheckRequest hreq =
	    LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	assert_int_equal(lm_client_call(G.client, "DeleteEverything", &hreq.base,
	                     &lunamatch__v1__health_check_response__descriptor, CALL_MS,
	                     &any, &st, msg, sizeof(msg)),
	    LM_OK);
	assert_int_equal(st, LUNAMATCH__V1__STATUS_CODE__UNIMPLEMENTED);
	assert_null(any);

	/* INVALID_ARGUMENT: a garbage payload in a good envelope ... */
	len = envelope("MatchJobs", "\xff\xff\xff\xff", 4, &buf);
	rr = raw_call(buf, len, CALL_MS);
	free(buf);
	assert_non_null(rr);
	assert_int_equal(rr->code, LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT);
	assert_string_equal(rr->request_id, "raw-1");
	lunamatch__v1__rpc_response__free_unpacked(rr, NULL);
	/* ... and garbage instead of an envelope. */
	rr = raw_call("\x0a\xff\xff\xff\xff\x0f garbage", 14, CALL_MS);
	assert_non_null(rr);
	assert_int_equal(rr->code, LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT);
	lunamatch__v1__rpc_response__free_unpacked(rr, NULL);

	/* RESOURCE_EXHAUSTED: over the request limit, within nng's receive
	 * limit (the grace above it): refused with an answer. */
	uint8_t *big = calloc(1, MAX_REQUEST + 1000);
	assert_non_null(big);
	len = envelope("Check", big, MAX_REQUEST + 1000, &buf);
	rr = raw_call(buf, len, CALL_MS);
	free(buf);
	assert_non_null(rr);
	assert_int_equal(rr->code, LUNAMATCH__V1__STATUS_CODE__RESOURCE_EXHAUSTED);
	lunamatch__v1__rpc_response__free_unpacked(rr, NULL);
	free(big);
	/* Beyond nng's receive limit (the request limit plus the server's
	 * 64 KiB grace): nng drops it and the connection, with no answer. */
	size_t huge_len = MAX_REQUEST + 256 * 1024;
	uint8_t *huge = calloc(1, huge_len);
	assert_non_null(huge);
	len = envelope("Check", huge, huge_len, &buf);
	rr = raw_call(buf, len, 1500);
	free(buf);
	free(huge);
	assert_null(rr);
	/* The server still serves. */
	Lunamatch__V1__HealthCheckResponse *h = check();
	assert_non_null(h);
	assert_int_equal(
	    h->status, LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	protobuf_c_message_free_unpacked(&h->base, NULL);

	/* A 1 ms deadline on the heaviest real request: the server answers
	 * either DEADLINE_EXCEEDED (the work did not fit) or OK (it did: the
	 * scan is fast), never anything else, and this side waits long enough
	 * to see the server's own answer. That a late call is refused without
	 * running the handler is proven deterministically by the RPC server's
	 * unit test (unit.match.rpc_server), which controls the handler's
	 * timing; here the timing belongs to the machine. */
	Lunamatch__V1__MatchCandidatesRequest creq =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	creq.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	creq.job_id = SEED_JOB;
	creq.top_k = 1000;
	creq.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	uint8_t *payload = NULL;
	size_t plen = 0;
	assert_int_equal(lm_pb_encode(&creq.base, &payload, &plen), LM_OK);
	len = envelope_timeout("MatchCandidates", payload, plen, 1, &buf);
	free(payload);
	for (int attempt = 0; attempt < 4; attempt++) {
		rr = raw_call(buf, len, CALL_MS);
		assert_non_null(rr);
		if (rr->code != LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED)
			assert_int_equal(rr->code, LUNAMATCH__V1__STATUS_CODE__OK);
		assert_string_equal(rr->request_id, "raw-1");
		lunamatch__v1__rpc_response__free_unpacked(rr, NULL);
	}
	free(buf);
}

struct worker {
	int id;
	int ok, bad;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	static const char *const cands[] = {LEAD, JUNIOR, "cand-nobody"};
	char msg[256];

	for (int i = 0; i < CALLS_PER_THREAD; i++) {
		int st = -1, rc;
		switch ((w->id + i) % 3) {
		case 0: {
			Lunamatch__V1__MatchJobsRequest req =
			    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
			Lunamatch__V1__MatchJobsResponse *r = NULL;
			req.subject_case =
			    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
			req.candidate_id = (char *) cands[i % 2];
			req.top_k = 10;
			rc = lm_client_match_jobs(
			    G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg));
			/* Both have matches (the junior fewer than 10: vetoes). */
			if (rc == LM_OK && st == 0 && r != NULL && r->n_matches > 0 &&
			    r->n_matches <= 10 &&
			    strcmp(r->matches[0]->candidate_id, cands[i % 2]) == 0)
				w->ok++;
			else
				w->bad++;
			if (r != NULL)
				protobuf_c_message_free_unpacked(&r->base, NULL);
			break;
		}
		case 1: {
			Lunamatch__V1__ExplainMatchRequest req =
			    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
			Lunamatch__V1__ExplainMatchResponse *r = NULL;
			req.candidate_id = (char *) cands[i % 3];
			req.job_id = SEED_JOB;
			rc = lm_client_explain_match(
			    G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg));
			bool want_found = i % 3 != 2;
			if (rc == LM_OK &&
			    st ==
			        (want_found ? 0 : LUNAMATCH__V1__STATUS_CODE__NOT_FOUND))
				w->ok++;
			else
				w->bad++;
			if (r != NULL)
				protobuf_c_message_free_unpacked(&r->base, NULL);
			break;
		}
		default: {
			Lunamatch__V1__HealthCheckResponse *h = check();
			if (h != NULL && h->status == 1)
				w->ok++;
			else
				w->bad++;
			if (h != NULL)
				protobuf_c_message_free_unpacked(&h->base, NULL);
		}
		}
	}
	return NULL;
}

static void
test_concurrent_and_metrics(void **state)
{
	pthread_t th[THREADS];
	struct worker w[THREADS];
	int ok = 0, bad = 0;
	char *body = NULL;

	(void) state;
	double jobs_before = lmt_metric(G.match_http,
	    "lunamatch_rpc_requests_total{method=\"MatchJobs\",code=\"OK\"}");
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){i, 0, 0};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		ok += w[i].ok;
		bad += w[i].bad;
	}
	assert_int_equal(bad, 0);
	assert_int_equal(ok, THREADS * CALLS_PER_THREAD);

	/* Every MatchJobs call of the workers is counted under its code. */
	int jobs_calls = 0;
	for (int i = 0; i < THREADS; i++)
		for (int k = 0; k < CALLS_PER_THREAD; k++)
			jobs_calls += (i + k) % 3 == 0;
	double jobs_after = lmt_metric(G.match_http,
	    "lunamatch_rpc_requests_total{method=\"MatchJobs\",code=\"OK\"}");
	assert_true(jobs_before >= 0);
	assert_true(jobs_after - jobs_before >= jobs_calls);

	assert_int_equal(
	    lmt_http_status(G.match_http, "/healthz", NULL, LMT_HTTP_MS), 200);
	assert_int_equal(
	    lmt_http_status(G.match_http, "/readyz", NULL, LMT_HTTP_MS), 200);
	assert_int_equal(
	    lmt_http_status(G.match_http, "/metrics", &body, LMT_HTTP_MS), 200);
	assert_true(lmt_prom_value(body, "lunamatch_rpc_requests_total{method="
	                                 "\"MatchJobs\",code=\"NOT_FOUND\"}") >= 1);
	assert_true(lmt_prom_value(body, "lunamatch_rpc_requests_total{method="
	                                 "\"ExplainMatch\",code=\"NOT_FOUND\"}") >= 1);
	assert_true(
	    lmt_prom_value(body, "lunamatch_rpc_requests_total{method="
	                         "\"MatchJobs\",code=\"INVALID_ARGUMENT\"}") >= 1);
	assert_true(lmt_prom_value(
	                body, "lunamatch_rpc_rejected_total{reason=\"too_large\"}") >= 1);
	assert_int_equal(
	    lmt_prom_value(body, "lunamatch_index_profiles"), (double) G.n_profiles);
	assert_int_equal(
	    lmt_prom_value(body, "lunamatch_index_postings"), (double) G.n_postings);
	assert_true(lmt_prom_value(body, "lunamatch_index_bytes") > 10000);
	/* The matches answered before this read the index. */
	assert_true(
	    strstr(body, "# TYPE lunamatch_index_entries_read_total counter") != NULL);
	assert_true(lmt_prom_value(body, "lunamatch_index_entries_read_total") >= 1);
	assert_true(lmt_prom_value(body, "lunamatch_index_records_reached_total") >= 1);
	assert_true(lmt_prom_value(body, "lunamatch_index_pairs_scored_total") >= 1);
	assert_true(lmt_prom_value(body, "lunamatch_index_seq") >=
	            (double) (G.n_postings + G.n_profiles));
	assert_true(
	    strstr(body, "lunamatch_rpc_latency_seconds_bucket{method=\"MatchJobs\"") !=
	    NULL);
	free(body);
	/* The partition owner derives the samples' events once it has joined
	 * its group (no earlier than the index holds them). */
	assert_true(lmt_wait_metric(G.match_http, "lunamatch_events_enqueued_total",
	                LMT_GE, 1, EVENT_MS) >= 1);
}
/* Produces a copy of the seed posting as id and waits until match holds it
 * and an event for it arrived. */
static void
new_posting_events(const char *id)
{
	JobPosting *p = seed_copy(id);

	lmt_produce_pb(G.producer, G.postings, id, &p->base);
	lmt_producer_flush(G.producer, IO_MS);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_true(wait_posting(id, CATCH_UP_MS));
	assert_true(wait_event_for_job(id, EVENT_MS));
}

static void
test_new_posting_event(void **state)
{
	char id[128];

	(void) state;
	snprintf(id, sizeof(id), "job-new-%s", G.run);
	new_posting_events(id);
	/* The lead fits the seed posting, so it fits its copy. */
	bool lead = false;
	for (size_t i = 0; i < G.n_events; i++)
		lead |= strcmp(G.events[i].job, id) == 0 &&
		        strcmp(G.events[i].cand, LEAD) == 0;
	assert_true(lead);
}

/*
 * Profiles written by a transactional producer (Kafka Connect with
 * exactly-once delivery, Kafka Streams) end their partitions in control
 * records, which take offsets and are never delivered. A postings batch
 * waits until the profiles owner has committed its events group past the
 * profiles' log end read as the batch's cut, which counts them; the owner
 * commits the end it read to, so a new posting's events still come (they
 * used to wait for ever, logged as owner.wait). The dev broker writes no
 * control records: there this is the plain flow.
 */
static void
test_txn_profiles(void **state)
{
	char id[128], txn[128];

	(void) state;
	snprintf(txn, sizeof(txn), "lmtest-%s-txn", G.run);
	lmt_producer *tp = lmt_producer_new(G.brokers, "lmtest-txn",
	    (const char *const[]){"transactional.id", txn, "linger.ms", "5", NULL});
	assert_null(rd_kafka_init_transactions(tp->rk, IO_MS));
	assert_null(rd_kafka_begin_transaction(tp->rk));
	snprintf(id, sizeof(id), "cand-txn-%s", G.run);
	CandidateProfile *c =
	    (CandidateProfile *) lmt_sample_get(LMT_SAMPLE_PROFILES, LEAD);
	lmt_record_set_id(&c->base, id);
	lmt_produce_pb(tp, G.profiles, id, &c->base);
	protobuf_c_message_free_unpacked(&c->base, NULL);
	assert_null(rd_kafka_commit_transaction(tp->rk, IO_MS));
	lmt_producer_free(tp);
	G.n_profiles++;

	snprintf(id, sizeof(id), "job-txn-%s", G.run);
	new_posting_events(id);
}

static void
test_restart_no_loss_no_duplicates(void **state)
{
	char id[128];
	double stored;

	(void) state;
	lmt_proc_stop(&G.match, STOP_MS);

	/* While match is down: a new posting goes through ingest. */
	stored =
	    lmt_metric(G.ingest_http, "lunamatch_ingest_stored_total{kind=\"posting\"}");
	snprintf(id, sizeof(id), "job-down-%s", G.run);
	JobPosting *p = seed_copy(id);
	lmt_produce_pb(G.producer, G.postings, id, &p->base);
	lmt_producer_flush(G.producer, IO_MS);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_true(lmt_wait_metric(G.ingest_http,
	                "lunamatch_ingest_stored_total{kind=\"posting\"}", LMT_GE,
	                stored + 1, CATCH_UP_MS) >= stored + 1);

	match_start();
	/* No missed change: served right after the restart ... */
	assert_int_equal(get_posting(id), LUNAMATCH__V1__STATUS_CODE__OK);
	/* ... and announced. */
	assert_true(wait_event_for_job(id, EVENT_MS));

	/* No duplicates: read everything there is, then count per event_id. */
	poll_events(3000);
	assert_true(G.n_events > 0);
	for (size_t i = 0; i < G.n_events; i++)
		for (size_t k = i + 1; k < G.n_events; k++)
			if (strcmp(G.events[i].id, G.events[k].id) == 0)
				fail_msg("event %s (%s, %s) delivered twice",
				    G.events[i].id, G.events[i].cand, G.events[i].job);
}

/* Ingest trims the change log while match follows it: match records its
 * position (one reader), the log is trimmed up to what it applied, and it
 * never has to reload. */
static void
test_compaction(void **state)
{
	(void) state;
	assert_true(
	    lmt_wait_metric(G.ingest_http, "lunamatch_store_changes_trimmed_total",
	        LMT_GE, 1, TRIM_MS) >= 1);
	assert_int_equal(lmt_metric(G.ingest_http, "lunamatch_store_readers"), 1);
	double low = lmt_metric(G.ingest_http, "lunamatch_store_change_log_low_water");
	assert_true(low >= 1);
	assert_true(lmt_metric(G.match_http, "lunamatch_index_seq") >= low);
	assert_int_equal(lmt_metric(G.match_http, "lunamatch_follower_reloads_total"), 0);
}

static void
test_broker_down(void **state)
{
	char id[128];

	(void) state;
	if (G.real) {
		/* The real broker belongs to the ctest fixture; the outage case
		 * runs against devkafka (and in the events unit test). */
		skip();
	}
	snprintf(id, sizeof(id), "job-outage-%s", G.run);
	/* Events of the earlier cases still on their way would be counted
	 * delivered during the outage. */
	lmt_wait_metric(G.match_http, "lunamatch_events_pending", LMT_EQ, 0, EVENT_MS);
	double delivered_before =
	    lmt_metric(G.match_http, "lunamatch_events_delivered_total");
	assert_int_equal(lmt_proc_signal(G.b.dk, SIGSTOP), LM_OK);
	/* Produced while the broker is frozen: it waits in the producer. */
	JobPosting *p = seed_copy(id);
	lmt_produce_pb(G.producer, G.postings, id, &p->base);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	lmt_sleep_ms(3000);
	assert_true(lmt_metric(G.match_http, "lunamatch_events_delivered_total") ==
	            delivered_before);
	assert_int_equal(lmt_proc_signal(G.b.dk, SIGCONT), LM_OK);
	lmt_producer_flush(G.producer, IO_MS);
	/* Back: stored, derived, delivered, and the outbox drains. */
	assert_true(wait_posting(id, CATCH_UP_MS));
	assert_true(wait_event_for_job(id, EVENT_MS));
	lmt_wait_metric(G.match_http, "lunamatch_events_pending", LMT_EQ, 0, EVENT_MS);
	assert_true(lmt_metric(G.match_http, "lunamatch_events_pending") == 0);
	assert_true(lmt_metric(G.match_http, "lunamatch_events_delivered_total") >
	            delivered_before);
}

/*
 * A failing outbox write, for real: match runs with a file-size limit equal
 * to its (fresh) outbox's size, so the outbox cannot grow (EFBIG; SIGXFSZ is
 * ignored). Deriving a new posting's events fails: counted, /readyz 503 with
 * the reason, the offsets stay. Restarted without the limit, match derives
 * and delivers the event: nothing lost.
 */
static void
test_outbox_failure(void **state)
{
	char id[128], outbox[4300], file[4400], limit[64], *body = NULL;
	struct stat sb;
	int status = 0;

	(void) state;
	lmt_proc_stop(&G.match, STOP_MS);
	snprintf(outbox, sizeof(outbox), "%s/outbox", G.data);
	lmt_rmtree(outbox);
	match_start(); /* a fresh outbox; the events group's offsets stay */
	lmt_proc_stop(&G.match, STOP_MS);
	snprintf(file, sizeof(file), "%s/data.mdb", outbox);
	assert_int_equal(stat(file, &sb), 0);
	snprintf(limit, sizeof(limit), "--fsize=%lld", (long long) sb.st_size);
	const char *argv[] = {"/bin/sh", "-c", "trap '' XFSZ; exec prlimit \"$@\"", "sh",
	    limit, lmt_bin("lunamatch-match"), NULL};
	match_start_argv(argv);

	snprintf(id, sizeof(id), "job-outbox-full-%s", G.run);
	JobPosting *p = seed_copy(id);
	lmt_produce_pb(G.producer, G.postings, id, &p->base);
	lmt_producer_flush(G.producer, IO_MS);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_true(wait_posting(id, CATCH_UP_MS));
	for (int64_t end = lm_clock_ms() + EVENT_MS; lm_clock_ms() < end;) {
		free(body);
		body = NULL;
		status = lmt_http_status(G.match_http, "/readyz", &body, LMT_HTTP_MS);
		if (status == 503)
			break;
		lmt_sleep_ms(100);
	}
	assert_int_equal(status, 503);
	assert_non_null(body);
	assert_non_null(strstr(body, "outbox"));
	free(body);
	assert_true(
	    lmt_metric(G.match_http, "lunamatch_events_outbox_errors_total") >= 1);
	assert_true(
	    lmt_metric(G.match_http, "lunamatch_events_derive_failures_total") >= 1);
	assert_int_equal(events_for_job(id), 0);
	lmt_proc_stop(&G.match, STOP_MS);

	match_start();
	assert_true(wait_event_for_job(id, EVENT_MS));
	assert_int_equal(
	    lmt_http_status(G.match_http, "/readyz", NULL, LMT_HTTP_MS), 200);
	assert_true(
	    lmt_metric(G.match_http, "lunamatch_events_outbox_errors_total") == 0);
}

/* ---- the CLI's match-side commands ------------------------------------------------ */

#define CLI_OUT_MAX (1u << 20)

/* Runs `lunamatch args...` against this test's services; returns its exit
 * status and its whole stdout in out (CLI_OUT_MAX bytes). */
static int
run_cli(const char *const *args, char *out)
{
	const char *argv[16];
	char url[160], brokers[600], topic[200];
	const char *env[] = {url, brokers, topic, "LUNAMATCH_LOG_LEVEL=warn", NULL};
	size_t n = 0;

	snprintf(url, sizeof(url), "LUNAMATCH_RPC_URL=%s", G.rpc_url);
	snprintf(brokers, sizeof(brokers), "LUNAMATCH_BROKERS=%s", G.brokers);
	snprintf(topic, sizeof(topic), "LUNAMATCH_TOPIC_MATCHES=%s", G.matches);
	argv[n++] = lmt_bin("lunamatch");
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	lmt_run_result r = lmt_run(argv, env, NULL, IO_MS);
	int st = r.status;
	assert_true(strlen(r.out) < CLI_OUT_MAX);
	memcpy(out, r.out, strlen(r.out) + 1);
	lmt_run_result_free(&r);
	return st;
}

/* run_cli with stdout on /dev/full: asserts that it exits 1 saying that it
 * cannot write to standard output. */
static void
run_cli_unwritten(const char *const *args)
{
	const char *argv[16];
	char url[160], errpath[4400];
	const char *env[] = {url, "LUNAMATCH_LOG_LEVEL=warn", NULL};
	size_t n = 0;

	snprintf(url, sizeof(url), "LUNAMATCH_RPC_URL=%s", G.rpc_url);
	snprintf(errpath, sizeof(errpath), "%s/cli-unwritten.err", G.dir);
	argv[n++] = lmt_bin("lunamatch");
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	lmt_expect_unwritten(argv, env, errpath, IO_MS);
}

static json_t *
parse_json(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DISABLE_EOF_CHECK, &je);
	if (v == NULL)
		fail_msg("not JSON (%s): %.200s", je.text, text);
	return v;
}

static void
test_cli(void **state)
{
	char *out = malloc(CLI_OUT_MAX);
	char dead[64];
	json_t *v;

	(void) state;
	assert_non_null(out);
	if (access(lmt_bin("lunamatch"), X_OK) != 0) {
		free(out);
		skip();
	}
	/* health */
	assert_int_equal(run_cli((const char *[]){"health", "--json", NULL}, out), 0);
	v = parse_json(out);
	assert_string_equal(json_string_value(json_object_get(v, "status")), "SERVING");
	assert_int_equal(
	    json_integer_value(json_object_get(v, "profiles")), G.n_profiles);
	json_decref(v);
	assert_int_equal(run_cli((const char *[]){"health", NULL}, out), 0);
	assert_non_null(strstr(out, "SERVING"));
	/* Output that cannot be written fails, saying so (health exited 1
	 * without a word). */
	run_cli_unwritten((const char *[]){"health", NULL});
	snprintf(dead, sizeof(dead), "--url=tcp://127.0.0.1:%d", lmt_free_port());
	assert_int_equal(
	    run_cli((const char *[]){"health", dead, "--timeout-ms", "300", NULL}, out),
	    3);
	/* A list of replicas, one of them down: the live one answers, every
	 * time. */
	char list[400];
	snprintf(list, sizeof(list), "%s,%s", dead, G.rpc_url);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(run_cli((const char *[]){"health", list, "--timeout-ms",
		                             "5000", NULL},
		                     out),
		    0);
		assert_non_null(strstr(out, "SERVING"));
	}

	/* match jobs / candidates */
	assert_int_equal(run_cli((const char *[]){"match", "jobs", "--candidate", LEAD,
	                             "--top", "3", "--json", NULL},
	                     out),
	    0);
	v = parse_json(out);
	json_t *ms = json_object_get(v, "matches");
	assert_int_equal(json_array_size(ms), 3);
	bool seed = false;
	for (size_t i = 0; i < 3; i++)
		seed |= strcmp(json_string_value(
		                   json_object_get(json_array_get(ms, i), "job_id")),
		            SEED_JOB) == 0;
	assert_true(seed);
	json_decref(v);
	assert_int_equal(run_cli((const char *[]){"match", "jobs", "--candidate", LEAD,
	                             "--top", "5", "--explain", "full", NULL},
	                     out),
	    0);
	assert_non_null(strstr(out, SEED_JOB));
	assert_non_null(strstr(out, "Features:"));
	assert_int_equal(
	    run_cli(
	        (const char *[]){"match", "candidates", "--job", SEED_JOB, NULL}, out),
	    0);
	assert_non_null(strstr(out, LEAD));
	assert_int_equal(
	    run_cli((const char *[]){"match", "jobs", "--candidate", "cand-nobody", NULL},
	        out),
	    1);
	assert_int_equal(run_cli((const char *[]){"match", "jobs", NULL}, out), 2);
	assert_int_equal(run_cli((const char *[]){"match", "jobs", "--candidate", LEAD,
	                             "--top", "0", NULL},
	                     out),
	    2);

	/* explain: the veto and its reasons */
	assert_int_equal(run_cli((const char *[]){"explain", "--candidate", JUNIOR,
	                             "--job", SEED_JOB, NULL},
	                     out),
	    0);
	assert_non_null(strstr(out, "NOT ELIGIBLE"));
	assert_non_null(strstr(out, "REQUIREMENT_GROUP"));
	assert_non_null(strstr(out, "Missing skills:"));
	run_cli_unwritten((const char *[]){"match", "jobs", "--candidate", LEAD, "--top",
	    "5", "--explain", "full", NULL});
	run_cli_unwritten(
	    (const char *[]){"explain", "--candidate", JUNIOR, "--job", SEED_JOB, NULL});
	assert_int_equal(run_cli((const char *[]){"explain", "--candidate", LEAD, "--job",
	                             SEED_JOB, "--json", NULL},
	                     out),
	    0);
	v = parse_json(out);
	assert_true(json_is_true(json_object_get(v, "eligible")));
	json_decref(v);
	/* --json writes every field, those at their zero value too: scripts
	 * read .eligible, .match.score and .matches[] whatever the answer. */
	assert_int_equal(run_cli((const char *[]){"explain", "--candidate", JUNIOR,
	                             "--job", SEED_JOB, "--json", NULL},
	                     out),
	    0);
	v = parse_json(out);
	assert_true(json_is_false(json_object_get(v, "eligible")));
	assert_true(
	    json_is_number(json_object_get(json_object_get(v, "match"), "score")));
	json_decref(v);
	assert_int_equal(run_cli((const char *[]){"match", "jobs", "--candidate", LEAD,
	                             "--country", "ZZ", "--json", NULL},
	                     out),
	    0);
	v = parse_json(out);
	assert_true(json_is_array(json_object_get(v, "matches")));
	assert_int_equal(json_array_size(json_object_get(v, "matches")), 0);
	json_decref(v);

	/* explain shows the compliance warnings ingest stored with a posting
	 * that asks for a discriminatory requirement (dropped from its skills) */
	{
		char id[128];
		JobPosting *p;
		Lunamatch__V1__PostingSkill *sk = malloc(sizeof(*sk));

		snprintf(id, sizeof(id), "job-flagged-%s", G.run);
		p = seed_copy(id);
		assert_non_null(sk);
		lunamatch__v1__posting_skill__init(sk);
		sk->name = strdup("Recent graduate");
		p->skills = realloc(p->skills, (p->n_skills + 1) * sizeof(*p->skills));
		assert_non_null(p->skills);
		p->skills[p->n_skills++] = sk;
		lmt_produce_pb(G.producer, G.postings, id, &p->base);
		lmt_producer_flush(G.producer, IO_MS);
		protobuf_c_message_free_unpacked(&p->base, NULL);
		assert_true(wait_posting(id, CATCH_UP_MS));
		assert_int_equal(run_cli((const char *[]){"explain", "--candidate", LEAD,
		                             "--job", id, NULL},
		                     out),
		    0);
		assert_non_null(strstr(out, "compliance warning (age): skills["));
		assert_non_null(
		    strstr(out, "\"Recent graduate\" is not used as a requirement."));
		assert_int_equal(run_cli((const char *[]){"explain", "--candidate", LEAD,
		                             "--job", SEED_JOB, NULL},
		                     out),
		    0);
		assert_null(strstr(out, "compliance warning"));
	}

	/* get */
	assert_int_equal(
	    run_cli((const char *[]){"get", "posting", SEED_JOB, NULL}, out), 0);
	v = parse_json(out);
	assert_string_equal(json_string_value(json_object_get(v, "id")), SEED_JOB);
	json_decref(v);
	assert_int_equal(
	    run_cli((const char *[]){"get", "profile", "cand-nobody", NULL}, out), 1);
	assert_int_equal(run_cli((const char *[]){"get", "thing", "x", NULL}, out), 2);

	/* watch: MatchEvents from the topic, one JSON line each */
	assert_int_equal(run_cli((const char *[]){"watch", "--from-beginning", "--count",
	                             "2", "--timeout-ms", "20000", "--json", NULL},
	                     out),
	    0);
	char *second = strchr(out, '\n');
	assert_non_null(second);
	ProtobufCMessage *m = NULL;
	char err[256];
	assert_int_equal(lm_json_decode(&lunamatch__v1__match_event__descriptor, out,
	                     (size_t) (second - out), &m, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(strlen(((Lunamatch__V1__MatchEvent *) m)->event_id), 32);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_non_null(strchr(second + 1, '\n'));
	free(out);
}

#define LONG_NAME "abcdefghijklmnopqrstuvwxyz0123456789"

static void
test_bad_config_exits_2(void **state)
{
	lmt_run_result r;

	(void) state;
	const char *env[] = {"LUNAMATCH_POLL_MS=soon", NULL};
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	r = lmt_run(argv, env, NULL, STOP_MS);
	assert_int_equal(r.status, 2);
	lmt_run_result_free(&r);

	/* Unusable addresses are configuration errors too, named by variable. */
	static const struct {
		const char *opt, *value, *var;
	} bad[] = {
	    {"--url", "http://x", "LUNAMATCH_RPC_URL"},
	    {"--http", "notanaddr", "LUNAMATCH_HTTP_ADDR"},
	    {"--notify-url", "bogus://x", "LUNAMATCH_NOTIFY_URL"},
	    /* A Unix socket path past sun_path's 107 bytes. */
	    {"--notify-url",
	        "ipc:///tmp/" LONG_NAME LONG_NAME LONG_NAME LONG_NAME "/notify.ipc",
	        "LUNAMATCH_NOTIFY_URL"},
	};
	/* Otherwise valid settings (the suite's, in a store of their own and
	 * without events), so that only the bad value can fail the start. */
	char dir[4300], errf[4400];
	snprintf(dir, sizeof(dir), "%s/badcfg", G.dir);
	snprintf(errf, sizeof(errf), "%s/badcfg.err", G.dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *bargv[] = {lmt_bin("lunamatch-match"), "--data-dir", dir,
		    "--event-top-n", "0", "--url", "tcp://127.0.0.1:0", "--http",
		    "127.0.0.1:0", bad[i].opt, bad[i].value, NULL};
		r = lmt_run(bargv, G.match_env.vec, errf, STOP_MS);
		assert_int_equal(r.status, 2);
		assert_non_null(r.err);
		assert_non_null(strstr(r.err, bad[i].var));
		lmt_run_result_free(&r);
	}

	/* A second match on the suite's data directory, which the running
	 * one holds, is refused (exit 1), naming the lock. */
	const char *second[] = {lmt_bin("lunamatch-match"), "--event-top-n", "0", "--url",
	    "tcp://127.0.0.1:0", "--http", "127.0.0.1:0", NULL};
	r = lmt_run(second, G.match_env.vec, errf, STOP_MS);
	assert_int_equal(r.status, 1);
	assert_non_null(r.err);
	assert_non_null(strstr(r.err, "match.lock"));
	lmt_run_result_free(&r);

	const char *help[] = {lmt_bin("lunamatch-match"), "--help", NULL};
	r = lmt_run(help, NULL, NULL, STOP_MS);
	assert_non_null(strstr(r.out, "LUNAMATCH_POLL_MS"));
	assert_int_equal(r.status, 0);
	lmt_run_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ranked_matches),
	    cmocka_unit_test(test_explain_veto),
	    cmocka_unit_test(test_status_codes),
	    cmocka_unit_test(test_concurrent_and_metrics),
	    cmocka_unit_test(test_new_posting_event),
	    cmocka_unit_test(test_txn_profiles),
	    cmocka_unit_test(test_restart_no_loss_no_duplicates),
	    cmocka_unit_test(test_compaction),
	    cmocka_unit_test(test_broker_down),
	    cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_outbox_failure),
	    cmocka_unit_test(test_bad_config_exits_2),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
