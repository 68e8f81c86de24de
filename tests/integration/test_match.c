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
 *    (bad payload, garbage envelope, top_k), UNIMPLEMENTED, DEADLINE_EXCEEDED
 *    (a real heavy request with a 1 ms deadline, under growing load),
 *    RESOURCE_EXHAUSTED (oversize, and a message beyond nng's receive limit
 *    that is dropped) with the server still serving afterwards;
 *  - 64 threads of concurrent calls; /healthz, /readyz and /metrics values;
 *  - a posting produced after start becomes a MatchEvent on the matches
 *    topic; SIGTERM and restart lose no change (a posting produced while
 *    match was down is served and announced) and announce nothing twice;
 *  - devkafka only: the broker frozen (SIGSTOP) while an event is derived:
 *    the event waits in the outbox and is delivered once the broker is back.
 *
 * Every wait is bounded; the whole program runs in well under three minutes.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "lmtest.h"
#include "lunamatch/client.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/rpc.h"
#include "lunamatch/salary.h"
#include "lunamatch/store.h"
#include "lunamatch/taxonomy.h"
#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/records.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "proc.h"

#define PARTITIONS       3
#define START_MS         30000 /* a process up and ready */
#define IO_MS            30000 /* produce, topic creation */
#define CATCH_UP_MS      60000 /* the samples through ingest into match's index */
#define EVENT_MS         60000 /* an event to reach the matches topic */
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
	bool real;
	char run[64];
	char brokers[512];
	char postings[160], profiles[160], matches[160], dlq[160], group[160];
	char *dir;
	char data[4200], notify[4300], ingest_log[4300], match_log[4300];
	char ingest_http[64], match_http[64], rpc_url[96];
	int match_starts;
	lmt_proc *dk, *ingest, *match;
	char env[24][4400];
	const char *ingest_env[25], *match_env[25];
	lm_client *client;
	rd_kafka_t *producer, *consumer;
	size_t n_postings, n_profiles; /* samples that ingest accepts */
	struct seen_event *events;
	size_t n_events;
} G;

static atomic_int delivered, failed;

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static int
free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* ---- HTTP --------------------------------------------------------------------- */

static int
http_get(const char *addr, const char *path, char **body)
{
	char url[160];
	int status = 0;
	char *b = NULL;

	snprintf(url, sizeof(url), "http://%s%s", addr, path);
	if (lmt_http_get(url, &status, &b, NULL, 3000) != LM_OK)
		status = 0;
	if (body != NULL)
		*body = b;
	else
		free(b);
	return status;
}

/* The value of the sample named exactly `series` in Prometheus text, or -1. */
static double
sample_value(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p != NULL && *p;
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static double
metric(const char *addr, const char *series)
{
	char *body = NULL;
	double v = -1;
	if (http_get(addr, "/metrics", &body) == 200)
		v = sample_value(body, series);
	free(body);
	return v;
}

static void
wait_ready(const char *addr, const char *what, const char *log)
{
	int64_t end = now_ms() + START_MS;
	while (now_ms() < end) {
		if (http_get(addr, "/readyz", NULL) == 200)
			return;
		usleep(100 * 1000);
	}
	fail_msg("%s not ready within %d ms (log: %s)", what, START_MS, log);
}

/* ---- processes ------------------------------------------------------------------- */

static void
build_env(void)
{
	int n = 0, common;

	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_BROKERS=%s", G.brokers);
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_DATA_DIR=%s", G.data);
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_TOPIC_POSTINGS=%s", G.postings);
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_TOPIC_PROFILES=%s", G.profiles);
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_TOPIC_MATCHES=%s", G.matches);
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_TOPIC_DLQ=%s", G.dlq);
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_NOTIFY_URL=%s", G.notify);
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_TAXONOMY_FILE=%s",
	    lmt_src("data/skills.tsv"));
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_RATES_FILE=%s",
	    lmt_src("data/rates.tsv"));
	snprintf(G.env[n++], sizeof(G.env[0]), "LUNAMATCH_LOG_LEVEL=info");
	common = n;
	for (int i = 0; i < common; i++)
		G.ingest_env[i] = G.match_env[i] = G.env[i];

	int k = common;
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_GROUP_ID=%s", G.group);
	G.ingest_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_HTTP_ADDR=%s", G.ingest_http);
	G.ingest_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_BATCH_MS=50");
	G.ingest_env[k++] = G.env[n++];
	G.ingest_env[k] = NULL;

	k = common;
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_HTTP_ADDR=%s", G.match_http);
	G.match_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_RPC_URL=%s", G.rpc_url);
	G.match_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_MODEL_FILE=%s",
	    lmt_src("data/model/default.json"));
	G.match_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_POLL_MS=200");
	G.match_env[k++] = G.env[n++];
	snprintf(
	    G.env[n], sizeof(G.env[0]), "LUNAMATCH_MAX_REQUEST_BYTES=%d", MAX_REQUEST);
	G.match_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_WORKERS=4");
	G.match_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_EVENT_MIN_SCORE=0.5");
	G.match_env[k++] = G.env[n++];
	snprintf(G.env[n], sizeof(G.env[0]), "LUNAMATCH_EVENT_TOP_N=10");
	G.match_env[k++] = G.env[n++];
	G.match_env[k] = NULL;
}

static void
match_start(void)
{
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	snprintf(
	    G.match_log, sizeof(G.match_log), "%s/match.%d.log", G.dir, ++G.match_starts);
	assert_int_equal(
	    lmt_proc_start_ex(argv, G.match_env, G.match_log, &G.match), LM_OK);
	wait_ready(G.match_http, "lunamatch-match", G.match_log);
}

static void
match_stop(void)
{
	int st = -1;
	assert_int_equal(lmt_proc_signal(G.match, SIGTERM), LM_OK);
	assert_int_equal(lmt_proc_wait(G.match, STOP_MS, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(G.match);
	G.match = NULL;
}

/* ---- Kafka ----------------------------------------------------------------------- */

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) opaque;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		atomic_fetch_add(&delivered, 1);
	else
		atomic_fetch_add(&failed, 1);
}

static rd_kafka_t *
new_client(rd_kafka_type_t type)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[512], group[200];

	assert_int_equal(
	    lm_kafka_conf(G.brokers, "lmtest-match", &c, err, sizeof(err)), LM_OK);
	if (type == RD_KAFKA_PRODUCER) {
		assert_int_equal(
		    lm_kafka_set(c, "enable.idempotence", "true", err, sizeof(err)),
		    LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "linger.ms", "5", err, sizeof(err)), LM_OK);
		rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
	} else {
		snprintf(group, sizeof(group), "lmtest-reader-%s", G.run);
		assert_int_equal(
		    lm_kafka_set(c, "group.id", group, err, sizeof(err)), LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "enable.auto.commit", "false", err, sizeof(err)),
		    LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "auto.offset.reset", "earliest", err, sizeof(err)),
		    LM_OK);
	}
	rk = rd_kafka_new(type, c, err, sizeof(err));
	if (rk == NULL)
		fail_msg("rd_kafka_new: %s", err);
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_poll_set_consumer(rk);
	assert_int_equal(lm_kafka_wait_metadata(rk, START_MS), LM_OK);
	return rk;
}

static void
produce_msg(const char *topic, const char *key, const ProtobufCMessage *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	for (int i = 0; i < 1000; i++) {
		e = rd_kafka_producev(G.producer, RD_KAFKA_V_TOPIC(topic),
		    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(G.producer, 10);
	}
	assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
	free(buf);
}

static void
flush_producer(void)
{
	assert_int_equal(rd_kafka_flush(G.producer, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(atomic_load(&failed), 0);
}

/* Reads what arrived on the matches topic for up to ms, into G.events. */
static void
poll_events(int ms)
{
	int64_t end = now_ms() + ms;

	do {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(G.consumer, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->payload != NULL) {
			ProtobufCMessage *msg = NULL;
			char err[256];
			assert_int_equal(
			    lm_pb_decode(&lunamatch__v1__match_event__descriptor,
			        m->payload, m->len, 1u << 20, &msg, err, sizeof(err)),
			    LM_OK);
			const Lunamatch__V1__MatchEvent *e = (const void *) msg;
			/* The contract of events.proto: key = candidate_id. */
			assert_int_equal(m->key_len, strlen(e->candidate_id));
			assert_memory_equal(m->key, e->candidate_id, m->key_len);
			assert_int_equal(strlen(e->event_id), 32);
			assert_true(G.n_events < EVENTS_MAX);
			struct seen_event *s = &G.events[G.n_events++];
			snprintf(s->id, sizeof(s->id), "%s", e->event_id);
			snprintf(s->job, sizeof(s->job), "%s", e->job_id);
			snprintf(s->cand, sizeof(s->cand), "%s", e->candidate_id);
			protobuf_c_message_free_unpacked(msg, NULL);
		}
		rd_kafka_message_destroy(m);
	} while (now_ms() < end);
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
	int64_t end = now_ms() + ms;
	while (now_ms() < end) {
		if (events_for_job(job) > 0)
			return true;
		poll_events(200);
	}
	return events_for_job(job) > 0;
}

/* ---- samples --------------------------------------------------------------------- */

/* Produces every record of a sample file (protobuf, key = id) and counts
 * the ones that ingest will accept (those that prepare cleanly). */
static size_t
produce_samples(const char *rel, const ProtobufCMessageDescriptor *d, const char *topic,
    const lm_record_ctx *rctx)
{
	size_t len = 0, accepted = 0;
	char *text = lmt_read_file(lmt_src(rel), &len);
	char err[512];

	assert_non_null(text);
	for (char *line = text, *nl; line < text + len; line = nl + 1) {
		ProtobufCMessage *m = NULL, *copy = NULL;
		lm_reject why;
		nl = memchr(line, '\n', (size_t) (text + len - line));
		if (nl == NULL)
			nl = text + len;
		if (nl == line)
			continue;
		assert_int_equal(
		    lm_json_decode(d, line, (size_t) (nl - line), &m, err, sizeof(err)),
		    LM_OK);
		const char *id = d == &lunamatch__v1__job_posting__descriptor
		                     ? ((JobPosting *) m)->id
		                     : ((CandidateProfile *) m)->id;
		produce_msg(topic, id, m);
		assert_int_equal(lm_json_decode(d, line, (size_t) (nl - line), &copy, err,
		                     sizeof(err)),
		    LM_OK);
		int rc = d == &lunamatch__v1__job_posting__descriptor
		             ? lm_posting_prepare(
		                   rctx, (JobPosting *) copy, &why, err, sizeof(err))
		             : lm_profile_prepare(rctx, (CandidateProfile *) copy, &why,
		                   err, sizeof(err));
		accepted += rc == LM_OK;
		protobuf_c_message_free_unpacked(copy, NULL);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(text);
	return accepted;
}

/* A copy of the seed posting, with another id (and the given version). */
static JobPosting *
seed_copy(const char *id)
{
	size_t len = 0;
	char *text = lmt_read_file(lmt_src("data/samples/postings.jsonl"), &len);
	char *nl = strchr(text, '\n');
	ProtobufCMessage *m = NULL;
	char err[256];

	assert_non_null(nl);
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor, text,
	                     (size_t) (nl - text), &m, err, sizeof(err)),
	    LM_OK);
	free(text);
	JobPosting *p = (JobPosting *) m;
	assert_string_equal(p->id, SEED_JOB);
	free(p->id);
	p->id = strdup(id);
	assert_non_null(p->id);
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
	int64_t end = now_ms() + ms;
	while (now_ms() < end) {
		if (get_posting(id) == LUNAMATCH__V1__STATUS_CODE__OK)
			return true;
		usleep(100 * 1000);
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

/* An envelope for method with payload bytes; serialized into *out. */
static size_t
envelope(const char *method, const void *payload, size_t plen, uint8_t **out)
{
	Lunamatch__V1__RpcRequest req = LUNAMATCH__V1__RPC_REQUEST__INIT;
	char full[LM_RPC_MAX_METHOD + 1];
	size_t len = 0;

	assert_int_equal(lm_rpc_method_name(method, full, sizeof(full)), LM_OK);
	req.method = full;
	req.request_id = "raw-1";
	req.timeout_ms = CALL_MS;
	req.payload.data = (uint8_t *) payload;
	req.payload.len = plen;
	assert_int_equal(lm_pb_encode(&req.base, out, &len), LM_OK);
	return len;
}

/* ---- group set-up ------------------------------------------------------------------ */

static int
group_setup(void **state)
{
	const char *b = getenv("LUNAMATCH_TEST_BROKERS");
	lm_taxonomy *tax = NULL;
	lm_rates *rates = NULL;
	lm_record_ctx rctx;
	char err[512], line[512];

	(void) state;
	memset(&G, 0, sizeof(G));
	G.events = calloc(EVENTS_MAX, sizeof(*G.events));
	assert_non_null(G.events);
	snprintf(G.run, sizeof(G.run), "m%ld-%ld", (long) getpid(), (long) time(NULL));
	G.real = b != NULL && *b != '\0';
	snprintf(G.postings, sizeof(G.postings), "lmtest.%s.postings", G.run);
	snprintf(G.profiles, sizeof(G.profiles), "lmtest.%s.profiles", G.run);
	snprintf(G.matches, sizeof(G.matches), "lmtest.%s.matches", G.run);
	snprintf(G.dlq, sizeof(G.dlq), "lmtest.%s.dlq", G.run);
	snprintf(G.group, sizeof(G.group), "lmtest-%s", G.run);
	G.dir = lmt_tmpdir("match");
	snprintf(G.data, sizeof(G.data), "%s/data", G.dir);
	snprintf(G.notify, sizeof(G.notify), "ipc://%s/notify.ipc", G.dir);
	snprintf(G.ingest_http, sizeof(G.ingest_http), "127.0.0.1:%d", free_port());
	snprintf(G.match_http, sizeof(G.match_http), "127.0.0.1:%d", free_port());
	snprintf(G.rpc_url, sizeof(G.rpc_url), "tcp://127.0.0.1:%d", free_port());
	snprintf(G.ingest_log, sizeof(G.ingest_log), "%s/ingest.log", G.dir);

	if (G.real) {
		snprintf(G.brokers, sizeof(G.brokers), "%s", b);
		rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER);
		const char *topics[4] = {G.postings, G.profiles, G.matches, G.dlq};
		if (lm_kafka_create_topics(
		        rk, topics, 4, PARTITIONS, IO_MS, err, sizeof(err)) != LM_OK)
			fail_msg("create topics: %s", err);
		for (int i = 0; i < 4; i++) {
			int n = 0;
			for (int k = 0; k < 100; k++) {
				if (lm_kafka_topic_partitions(rk, topics[i], IO_MS, &n) ==
				    LM_OK)
					break;
				usleep(100 * 1000);
			}
			assert_int_equal(n, PARTITIONS);
		}
		rd_kafka_destroy(rk);
	} else {
		char e1[200], e2[200], e3[200], e4[200];
		snprintf(e1, sizeof(e1), "LUNAMATCH_TOPIC_POSTINGS=%s", G.postings);
		snprintf(e2, sizeof(e2), "LUNAMATCH_TOPIC_PROFILES=%s", G.profiles);
		snprintf(e3, sizeof(e3), "LUNAMATCH_TOPIC_MATCHES=%s", G.matches);
		snprintf(e4, sizeof(e4), "LUNAMATCH_TOPIC_DLQ=%s", G.dlq);
		const char *env[] = {e1, e2, e3, e4, NULL};
		const char *argv[] = {
		    lmt_bin("lunamatch-devkafka"), "--partitions", "3", NULL};
		assert_int_equal(lmt_proc_start(argv, env, &G.dk), LM_OK);
		assert_int_equal(
		    lmt_proc_readline(G.dk, line, sizeof(line), START_MS), LM_OK);
		assert_memory_equal(line, "127.0.0.1:", 10);
		snprintf(G.brokers, sizeof(G.brokers), "%s", line);
	}
	build_env();

	/* Match first: it must come up on an empty (not yet created) store and
	 * follow ingest whenever that starts. */
	match_start();
	const char *iargv[] = {lmt_bin("lunamatch-ingest"), NULL};
	assert_int_equal(
	    lmt_proc_start_ex(iargv, G.ingest_env, G.ingest_log, &G.ingest), LM_OK);
	wait_ready(G.ingest_http, "lunamatch-ingest", G.ingest_log);

	assert_int_equal(lm_client_open(G.rpc_url, NULL, &G.client), LM_OK);
	G.producer = new_client(RD_KAFKA_PRODUCER);
	G.consumer = new_client(RD_KAFKA_CONSUMER);
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(PARTITIONS);
	for (int p = 0; p < PARTITIONS; p++)
		rd_kafka_topic_partition_list_add(l, G.matches, p)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(G.consumer, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);

	/* The samples, as protobuf. */
	if (lm_taxonomy_load(lmt_src("data/skills.tsv"), &tax, err, sizeof(err)) !=
	        LM_OK ||
	    lm_rates_load(lmt_src("data/rates.tsv"), &rates, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	memset(&rctx, 0, sizeof(rctx));
	rctx.taxonomy = tax;
	rctx.rates = rates;
	rctx.embedding_dim = 384;
	G.n_postings = produce_samples("data/samples/postings.jsonl",
	    &lunamatch__v1__job_posting__descriptor, G.postings, &rctx);
	G.n_profiles = produce_samples("data/samples/profiles.jsonl",
	    &lunamatch__v1__candidate_profile__descriptor, G.profiles, &rctx);
	lm_taxonomy_free(tax);
	lm_rates_free(rates);
	flush_producer();

	/* Wait until match's index holds every accepted record. */
	int64_t end = now_ms() + CATCH_UP_MS;
	for (;;) {
		double np = metric(G.match_http, "lunamatch_index_postings");
		double nc = metric(G.match_http, "lunamatch_index_profiles");
		if (np == (double) G.n_postings && nc == (double) G.n_profiles)
			break;
		if (now_ms() > end)
			fail_msg("index has %.0f/%zu postings, %.0f/%zu profiles (logs "
			         "%s, %s)",
			    np, G.n_postings, nc, G.n_profiles, G.ingest_log,
			    G.match_log);
		usleep(100 * 1000);
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void) state;
	lm_client_close(G.client);
	if (G.consumer != NULL) {
		rd_kafka_consumer_close(G.consumer);
		rd_kafka_destroy(G.consumer);
	}
	if (G.producer != NULL)
		rd_kafka_destroy(G.producer);
	if (G.match != NULL)
		match_stop();
	if (G.ingest != NULL) {
		int st = -1;
		lmt_proc_signal(G.ingest, SIGTERM);
		lmt_proc_wait(G.ingest, STOP_MS, &st);
	}
	lmt_proc_free(G.ingest);
	lmt_proc_free(G.dk);
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

/* Heavy calls that keep the workers busy while the deadline test runs. */
struct load {
	atomic_bool stop;
	atomic_int done;
};

static void *
load_main(void *arg)
{
	struct load *l = arg;
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	char msg[256];

	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	req.top_k = 1000;
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	while (!atomic_load(&l->stop)) {
		Lunamatch__V1__MatchJobsResponse *r = NULL;
		int st = -1;
		lm_client_match_jobs(G.client, &req, CALL_MS, &r, &st, msg, sizeof(msg));
		if (r != NULL)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		atomic_fetch_add(&l->done, 1);
	}
	return NULL;
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

	/* DEADLINE_EXCEEDED: the heaviest real request with a 1 ms deadline;
	 * if it finishes in time, again under more and more load. */
	Lunamatch__V1__MatchCandidatesRequest creq =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	creq.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	creq.job_id = SEED_JOB;
	creq.top_k = 1000;
	creq.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	struct load load;
	pthread_t th[32];
	int nth = 0;
	bool deadline = false;
	atomic_init(&load.stop, false);
	atomic_init(&load.done, 0);
	for (int attempt = 0; attempt < 8 && !deadline; attempt++) {
		Lunamatch__V1__MatchCandidatesResponse *cr = NULL;
		int rc = lm_client_match_candidates(
		    G.client, &creq, 1, &cr, &st, msg, sizeof(msg));
		if (cr != NULL)
			protobuf_c_message_free_unpacked(&cr->base, NULL);
		if (rc == LM_OK && st == LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED) {
			deadline = true;
			break;
		}
		assert_true(rc == LM_OK || rc == LM_ETIMEDOUT);
		for (int k = 0; k < 4 && nth < 32; k++)
			assert_int_equal(
			    pthread_create(&th[nth++], NULL, load_main, &load), 0);
		usleep(50 * 1000);
	}
	atomic_store(&load.stop, true);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	assert_true(deadline);
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
	double jobs_before = metric(G.match_http,
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
	double jobs_after = metric(G.match_http,
	    "lunamatch_rpc_requests_total{method=\"MatchJobs\",code=\"OK\"}");
	assert_true(jobs_before >= 0);
	assert_true(jobs_after - jobs_before >= jobs_calls);

	assert_int_equal(http_get(G.match_http, "/healthz", NULL), 200);
	assert_int_equal(http_get(G.match_http, "/readyz", NULL), 200);
	assert_int_equal(http_get(G.match_http, "/metrics", &body), 200);
	assert_true(sample_value(body, "lunamatch_rpc_requests_total{method="
	                               "\"MatchJobs\",code=\"NOT_FOUND\"}") >= 1);
	assert_true(sample_value(body, "lunamatch_rpc_requests_total{method="
	                               "\"ExplainMatch\",code=\"NOT_FOUND\"}") >= 1);
	assert_true(sample_value(body, "lunamatch_rpc_requests_total{method="
	                               "\"MatchJobs\",code=\"INVALID_ARGUMENT\"}") >= 1);
	assert_true(sample_value(
	                body, "lunamatch_rpc_rejected_total{reason=\"too_large\"}") >= 1);
	assert_int_equal(
	    sample_value(body, "lunamatch_index_profiles"), (double) G.n_profiles);
	assert_int_equal(
	    sample_value(body, "lunamatch_index_postings"), (double) G.n_postings);
	assert_true(sample_value(body, "lunamatch_index_bytes") > 10000);
	assert_true(sample_value(body, "lunamatch_index_seq") >=
	            (double) (G.n_postings + G.n_profiles));
	assert_true(sample_value(body, "lunamatch_events_enqueued_total") >= 1);
	assert_true(
	    strstr(body, "lunamatch_rpc_latency_seconds_bucket{method=\"MatchJobs\"") !=
	    NULL);
	free(body);
}

static void
test_new_posting_event(void **state)
{
	char id[128];

	(void) state;
	snprintf(id, sizeof(id), "job-new-%s", G.run);
	JobPosting *p = seed_copy(id);
	produce_msg(G.postings, id, &p->base);
	flush_producer();
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_true(wait_posting(id, CATCH_UP_MS));
	assert_true(wait_event_for_job(id, EVENT_MS));
	/* The lead fits the seed posting, so it fits its copy. */
	bool lead = false;
	for (size_t i = 0; i < G.n_events; i++)
		lead |= strcmp(G.events[i].job, id) == 0 &&
		        strcmp(G.events[i].cand, LEAD) == 0;
	assert_true(lead);
}

static void
test_restart_no_loss_no_duplicates(void **state)
{
	char id[128];
	double stored;

	(void) state;
	match_stop();

	/* While match is down: a new posting goes through ingest. */
	stored = metric(G.ingest_http, "lunamatch_ingest_stored_total{kind=\"posting\"}");
	snprintf(id, sizeof(id), "job-down-%s", G.run);
	JobPosting *p = seed_copy(id);
	produce_msg(G.postings, id, &p->base);
	flush_producer();
	protobuf_c_message_free_unpacked(&p->base, NULL);
	int64_t end = now_ms() + CATCH_UP_MS;
	while (metric(G.ingest_http, "lunamatch_ingest_stored_total{kind=\"posting\"}") <
	       stored + 1) {
		assert_true(now_ms() < end);
		usleep(100 * 1000);
	}

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

/* Writes a posting straight into the store (a second writer process, as
 * ingest is: LMDB serializes writers across processes). */
static void
store_posting(const char *id)
{
	lm_store *s = NULL;
	lm_store_txn *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	lm_taxonomy *tax = NULL;
	lm_rates *rates = NULL;
	lm_record_ctx rctx;
	lm_reject why;
	char err[512];

	assert_int_equal(
	    lm_taxonomy_load(lmt_src("data/skills.tsv"), &tax, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_rates_load(lmt_src("data/rates.tsv"), &rates, err, sizeof(err)), LM_OK);
	memset(&rctx, 0, sizeof(rctx));
	rctx.taxonomy = tax;
	rctx.rates = rates;
	rctx.embedding_dim = 384;
	JobPosting *p = seed_copy(id);
	assert_int_equal(lm_posting_prepare(&rctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(&p->base, &buf, &len), LM_OK);
	assert_int_equal(lm_store_open(G.data, NULL, &s), LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, id, 1, buf, len), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
	free(buf);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	lm_taxonomy_free(tax);
	lm_rates_free(rates);
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
	double delivered_before =
	    metric(G.match_http, "lunamatch_events_delivered_total");
	assert_int_equal(lmt_proc_signal(G.dk, SIGSTOP), LM_OK);
	store_posting(id);
	assert_true(wait_posting(id, CATCH_UP_MS));
	/* Derived, but the broker does not answer: the event waits in the
	 * outbox. */
	int64_t end = now_ms() + 10000;
	while (metric(G.match_http, "lunamatch_events_pending") < 1 && now_ms() < end)
		usleep(100 * 1000);
	assert_true(metric(G.match_http, "lunamatch_events_pending") >= 1);
	sleep(3);
	assert_true(metric(G.match_http, "lunamatch_events_pending") >= 1);
	assert_true(
	    metric(G.match_http, "lunamatch_events_delivered_total") == delivered_before);
	assert_int_equal(lmt_proc_signal(G.dk, SIGCONT), LM_OK);
	/* Back: delivered, and the outbox drains. */
	assert_true(wait_event_for_job(id, EVENT_MS));
	end = now_ms() + EVENT_MS;
	while (metric(G.match_http, "lunamatch_events_pending") != 0 && now_ms() < end)
		usleep(100 * 1000);
	assert_true(metric(G.match_http, "lunamatch_events_pending") == 0);
	assert_true(
	    metric(G.match_http, "lunamatch_events_delivered_total") > delivered_before);
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
	lmt_proc *p = NULL;
	char line[LMT_PROC_LINE_MAX];
	size_t n = 0, used = 0;
	int st = -1, rc;

	snprintf(url, sizeof(url), "LUNAMATCH_RPC_URL=%s", G.rpc_url);
	snprintf(brokers, sizeof(brokers), "LUNAMATCH_BROKERS=%s", G.brokers);
	snprintf(topic, sizeof(topic), "LUNAMATCH_TOPIC_MATCHES=%s", G.matches);
	argv[n++] = lmt_bin("lunamatch");
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(lmt_proc_start(argv, env, &p), LM_OK);
	out[0] = '\0';
	while ((rc = lmt_proc_readline(p, line, sizeof(line), IO_MS)) == LM_OK) {
		int w = snprintf(out + used, CLI_OUT_MAX - used, "%s\n", line);
		assert_true(w > 0 && (size_t) w < CLI_OUT_MAX - used);
		used += (size_t) w;
	}
	assert_int_equal(rc, LM_ECLOSED);
	assert_int_equal(lmt_proc_wait(p, STOP_MS, &st), LM_OK);
	lmt_proc_free(p);
	return st;
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
	snprintf(dead, sizeof(dead), "--url=tcp://127.0.0.1:%d", free_port());
	assert_int_equal(
	    run_cli((const char *[]){"health", dead, "--timeout-ms", "300", NULL}, out),
	    3);

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
	assert_int_equal(run_cli((const char *[]){"explain", "--candidate", LEAD, "--job",
	                             SEED_JOB, "--json", NULL},
	                     out),
	    0);
	v = parse_json(out);
	assert_true(json_is_true(json_object_get(v, "eligible")));
	json_decref(v);

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

static void
test_bad_config_exits_2(void **state)
{
	lmt_proc *p = NULL;
	int st = -1;
	char line[512];

	(void) state;
	const char *env[] = {"LUNAMATCH_POLL_MS=soon", NULL};
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	assert_int_equal(lmt_proc_start_ex(argv, env, NULL, &p), LM_OK);
	assert_int_equal(lmt_proc_wait(p, STOP_MS, &st), LM_OK);
	assert_int_equal(st, 2);
	lmt_proc_free(p);

	const char *help[] = {lmt_bin("lunamatch-match"), "--help", NULL};
	assert_int_equal(lmt_proc_start(help, NULL, &p), LM_OK);
	bool seen = false;
	while (lmt_proc_readline(p, line, sizeof(line), STOP_MS) == LM_OK)
		seen |= strstr(line, "LUNAMATCH_POLL_MS") != NULL;
	assert_true(seen);
	assert_int_equal(lmt_proc_wait(p, STOP_MS, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(p);
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
	    cmocka_unit_test(test_restart_no_loss_no_duplicates),
	    cmocka_unit_test(test_broker_down),
	    cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_bad_config_exits_2),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
