/*
 * test_ingest.c - lunamatch-ingest as a real process against a real broker.
 *
 * Without LUNAMATCH_TEST_BROKERS (or with it empty) each test starts its own
 * lunamatch-devkafka with topics named for the test; with
 * LUNAMATCH_TEST_BROKERS=host:port (the Apache Kafka broker of
 * scripts/kafka.sh) the same tests create uniquely named topics there
 * (lm_kafka_create_topics) and use a unique group id, so reruns on a
 * long-lived broker never see each other's messages.
 *
 * Every test has its own data directory, HTTP port and notify URL. Records
 * are produced with librdkafka (protobuf, and JSON with a content-type
 * header) and with kcat; the test then waits, bounded in time, until ingest
 * reports them processed on /metrics and checks the exact store content
 * (read-only store handle), the exact dead-letter topic content and the
 * exact metric values. One test SIGKILLs ingest mid-stream and shows that
 * after a restart nothing was lost; another freezes the embedded broker for
 * longer than the group session and shows that ingest rides it out; another
 * comes back to a store days later (an LD_PRELOAD shim moves ingest's
 * clock, clock_ahead.c) and kills ingest midway through its refill.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/util/platform.h>

#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/records.pb-c.h"
#include "lunamatch/v1/store.pb-c.h"
#include "offsets.h"
#include "proc.h"
#include "svctest.h"

#define PARTITIONS 3
#define START_MS   30000 /* devkafka / ingest start-up, generous for sanitizers */
#define IO_MS      30000 /* produce, consume, topic creation */
#define PROCESS_MS 60000 /* ingest catching up with what was produced */
#define STOP_MS    20000 /* SIGTERM to exit */
#define KILL_IDS   1000  /* records of the SIGKILL test, two versions each */
#define OUTAGE_MS  12000 /* broker frozen: longer than the 10 s group session */
/* The stated shutdown bound of ingest (docs/ingest.md, consumer.h). */
#define SHUTDOWN_BOUND_MS 12000

static struct {
	bool real; /* LUNAMATCH_TEST_BROKERS given */
	char run[64];
} G;

/* One test's broker, topics, directories and ingest process. */
struct world {
	char tag[32];
	lmt_broker b;
	const char *brokers; /* b.brokers */
	char postings[160], profiles[160], dlq[160], group[160];
	char *dir;
	char data[4200], notify[4300], errlog[4300];
	char http[64];
	int starts;
	lmt_proc *ingest;
	lmt_env env; /* ingest's */
};

static void
world_env(struct world *w, const char *extra1, const char *extra2)
{
	lmt_env *e = &w->env;
	lmt_env_add(e, "LUNAMATCH_BROKERS=%s", w->brokers);
	lmt_env_add(e, "LUNAMATCH_DATA_DIR=%s", w->data);
	lmt_env_add(e, "LUNAMATCH_TOPIC_POSTINGS=%s", w->postings);
	lmt_env_add(e, "LUNAMATCH_TOPIC_PROFILES=%s", w->profiles);
	lmt_env_add(e, "LUNAMATCH_TOPIC_DLQ=%s", w->dlq);
	lmt_env_add(e, "LUNAMATCH_GROUP_ID=%s", w->group);
	lmt_env_add(e, "LUNAMATCH_HTTP_ADDR=%s", w->http);
	lmt_env_add(e, "LUNAMATCH_NOTIFY_URL=%s", w->notify);
	lmt_env_add(e, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(e, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(
	    e, "LUNAMATCH_FAIRNESS_FILE=%s", lmt_src("data/fairness/requirements.tsv"));
	lmt_env_add(e, "LUNAMATCH_GAZETTEER_FILE=%s", lmt_src("data/geo/cities.tsv"));
	lmt_env_add(e, "LUNAMATCH_BATCH_MS=100");
	lmt_env_add(e, "LUNAMATCH_LOG_LEVEL=info");
	if (extra1 != NULL)
		lmt_env_add(e, "%s", extra1);
	if (extra2 != NULL)
		lmt_env_add(e, "%s", extra2);
}

/* Broker with this test's topics, directories, port and URL. */
static void
world_start(struct world *w, const char *tag, const char *extra1, const char *extra2)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->tag, sizeof(w->tag), "%s", tag);
	snprintf(w->postings, sizeof(w->postings), "lmtest.%s.%s.postings", G.run, tag);
	snprintf(w->profiles, sizeof(w->profiles), "lmtest.%s.%s.profiles", G.run, tag);
	snprintf(w->dlq, sizeof(w->dlq), "lmtest.%s.%s.dlq", G.run, tag);
	snprintf(w->group, sizeof(w->group), "lmtest-%s-%s", G.run, tag);
	w->dir = lmt_tmpdir(tag);
	snprintf(w->data, sizeof(w->data), "%s/data", w->dir);
	snprintf(w->notify, sizeof(w->notify), "ipc://%s/notify.ipc", w->dir);
	snprintf(w->http, sizeof(w->http), "127.0.0.1:%d", lmt_free_port());

	const lmt_topic topics[] = {{"LUNAMATCH_TOPIC_POSTINGS", w->postings},
	    {"LUNAMATCH_TOPIC_PROFILES", w->profiles}, {"LUNAMATCH_TOPIC_DLQ", w->dlq}};
	lmt_broker_open(&w->b, PARTITIONS, topics, 3);
	w->brokers = w->b.brokers;
	world_env(w, extra1, extra2);
}

static void
ingest_start(struct world *w)
{
	const char *argv[] = {lmt_bin("lunamatch-ingest"), NULL};
	snprintf(w->errlog, sizeof(w->errlog), "%s/ingest.%d.log", w->dir, ++w->starts);
	assert_int_equal(
	    lmt_proc_start_ex(argv, w->env.vec, w->errlog, &w->ingest), LM_OK);
}

static void
wait_ready(struct world *w)
{
	lmt_wait_ready(w->ingest, w->http, "ingest", w->errlog, START_MS + 15000);
}

/* Messages ingest has finished (stored, deleted, skipped or dead-lettered). */
static double
processed(const char *m)
{
	static const char *const series[] = {
	    "lunamatch_ingest_stored_total{kind=\"posting\"}",
	    "lunamatch_ingest_stored_total{kind=\"profile\"}",
	    "lunamatch_ingest_deleted_total{kind=\"posting\"}",
	    "lunamatch_ingest_deleted_total{kind=\"profile\"}",
	    "lunamatch_ingest_duplicates_total{kind=\"posting\"}",
	    "lunamatch_ingest_duplicates_total{kind=\"profile\"}",
	    "lunamatch_ingest_dlq_total"};
	double sum = 0;
	for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++)
		sum += lmt_prom_value(m, series[i]);
	return sum;
}

/* Waits until ingest reports `want` messages processed; returns /metrics. */
static char *
wait_processed(const struct world *w, double want)
{
	int64_t end = lm_clock_ms() + PROCESS_MS;
	double got = -1;
	while (lm_clock_ms() < end) {
		char *body = NULL;
		if (lmt_http_status(w->http, "/metrics", &body, LMT_HTTP_MS) == 200) {
			got = processed(body);
			if (got >= want)
				return body;
		}
		free(body);
		lmt_sleep_ms(100);
	}
	fail_msg(
	    "ingest processed %.0f of %.0f messages (log: %s)", got, want, w->errlog);
	return NULL;
}

static void
world_free(struct world *w)
{
	lmt_proc_free(w->ingest);
	lmt_broker_close(&w->b);
	lmt_env_free(&w->env);
	lmt_rmtree(w->dir);
	free(w->dir);
	w->ingest = NULL;
	w->dir = NULL;
}

/* ---- producing ------------------------------------------------------------ */

static lmt_producer *
new_producer(const char *brokers)
{
	return lmt_producer_new(brokers, "lmtest-ingest",
	    (const char *const[]){"enable.idempotence", "true", "linger.ms", "5", NULL});
}

/* Queues one message; value NULL is a tombstone, ct NULL sends no header. */
static void
produce(lmt_producer *p, const char *topic, const char *key, const void *value,
    size_t len, const char *ct)
{
	const char *const h[] = {"content-type", ct, NULL};
	lmt_produce(p, topic, RD_KAFKA_PARTITION_UA, key, value, len, ct ? h : NULL);
}

/* Produces the protobuf encoding of a JSON record. */
static void
produce_pb(lmt_producer *p, const char *topic, const char *key,
    const ProtobufCMessageDescriptor *desc, const char *json)
{
	ProtobufCMessage *m = NULL;
	char err[256];

	if (lm_json_decode(desc, json, strlen(json), &m, err, sizeof(err)) != LM_OK)
		fail_msg("test record: %s", err);
	lmt_produce_pb(p, topic, key, m);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* kcat -P of the "key:value" lines of a file, as JSON. */
static void
kcat_json(const struct world *w, const char *topic, const char *name, const char *lines)
{
	const char *file = lmt_write_file(w->dir, name, lines, strlen(lines));
	const char *argv[] = {"kcat", "-P", "-b", w->brokers, "-t", topic, "-K:", "-H",
	    "content-type=application/json", "-l", file, NULL};
	lmt_run_result r = lmt_run(argv, NULL, NULL, IO_MS);
	assert_int_equal(r.status, 0);
	lmt_run_result_free(&r);
}

/* ---- reading back --------------------------------------------------------- */

struct dlq_msg {
	char key[64];
	char reason[32];
	char topic[160];
	bool has_error, has_partition, has_offset, null_value;
};

/* Copies header name of m into out (cut to len - 1 bytes; "" when absent);
 * *present (optional): the header is there and not empty. */
static void
header(
    const rd_kafka_message_t *m, const char *name, char *out, size_t len, bool *present)
{
	size_t n = 0;
	char *v = lmt_kafka_header(m, name, &n);

	snprintf(out, len, "%s", v != NULL ? v : "");
	if (present)
		*present = v != NULL && n > 0;
	free(v);
}

/* Reads the whole DLQ topic: waits for `want` messages, then 1 s more to
 * catch extras. Returns how many were read (at most max). */
static int
read_dlq(const struct world *w, struct dlq_msg *out, int max, int want)
{
	char group[200];
	int n = 0, parts = 0;

	/* A reader that never commits: it must not disturb ingest's group. */
	snprintf(group, sizeof(group), "%s-reader", w->group);
	rd_kafka_t *c = lmt_kafka_consumer(w->brokers, "lmtest-ingest", group, NULL);
	assert_int_equal(lm_kafka_topic_partitions(c, w->dlq, IO_MS, &parts), LM_OK);
	lmt_kafka_assign(c, w->dlq, parts, NULL);
	int64_t end = lm_clock_ms() + IO_MS, extra = 0;
	while (lm_clock_ms() < end && (extra == 0 || lm_clock_ms() < extra)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && n < max) {
			struct dlq_msg *d = &out[n++];
			char tmp[64];
			size_t kl = m->key_len < sizeof(d->key) - 1 ? m->key_len
			                                            : sizeof(d->key) - 1;
			memset(d, 0, sizeof(*d));
			memcpy(d->key, m->key ? m->key : "", m->key ? kl : 0);
			d->null_value = m->payload == NULL;
			header(m, "lunamatch-reason", d->reason, sizeof(d->reason), NULL);
			header(m, "lunamatch-source-topic", d->topic, sizeof(d->topic),
			    NULL);
			header(m, "lunamatch-error", tmp, sizeof(tmp), &d->has_error);
			header(m, "lunamatch-source-partition", tmp, sizeof(tmp),
			    &d->has_partition);
			header(m, "lunamatch-source-offset", tmp, sizeof(tmp),
			    &d->has_offset);
			if (n == want)
				extra = lm_clock_ms() + 1000;
		}
		rd_kafka_message_destroy(m);
	}
	lmt_kafka_consumer_free(c);
	return n;
}

/* Pipes the notify SUB socket has attached: PUB/SUB drops what is published
 * while no subscriber is attached, so a test that restarts ingest waits for
 * the re-attachment before it produces. */
static atomic_int notify_pipes;

static void
notify_pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void) p;
	(void) ev;
	(void) arg;
	atomic_fetch_add(&notify_pipes, 1);
}

/* Waits (at most IO_MS) until more than `seen` pipes have been attached. */
static void
notify_wait_attached(int seen)
{
	int64_t end = lm_clock_ms() + IO_MS;
	while (atomic_load(&notify_pipes) <= seen && lm_clock_ms() < end)
		nng_msleep(10);
	assert_true(atomic_load(&notify_pipes) > seen);
}

/* Sub socket on the notify URL that keeps (re)dialling in the background. */
static nng_socket
notify_sub(const struct world *w)
{
	nng_socket s;
	assert_int_equal(nng_sub0_open(&s), 0);
	assert_int_equal(
	    nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, notify_pipe_added, NULL), 0);
	assert_int_equal(nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0), 0);
	assert_int_equal(nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 1024), 0);
	assert_int_equal(nng_socket_set_int(s, NNG_OPT_RECVBUF, 1024), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 100), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 300), 0);
	assert_int_equal(nng_dial(s, w->notify, NULL, NNG_FLAG_NONBLOCK), 0);
	return s;
}

/* The highest last_seq among the notifications received (0 if none):
 * waits (at most IO_MS) until one says want or more, since ingest publishes
 * a batch's notification just after counting it in /metrics, then reads
 * until none comes for the socket's receive timeout, so that a later one
 * is seen too. */
static uint64_t
notify_max(nng_socket s, uint64_t want)
{
	int64_t end = lm_clock_ms() + IO_MS;
	uint64_t max = 0;
	for (int i = 0; i < 10000; i++) {
		void *buf = NULL;
		size_t len = 0;
		int rv = nng_recv(s, &buf, &len, NNG_FLAG_ALLOC);
		if (rv == NNG_ETIMEDOUT && max < want && lm_clock_ms() < end)
			continue;
		if (rv != 0)
			break;
		Lunamatch__V1__StoreNotify *n =
		    lunamatch__v1__store_notify__unpack(NULL, len, buf);
		assert_non_null(n);
		if (n->last_seq > max)
			max = n->last_seq;
		lunamatch__v1__store_notify__free_unpacked(n, NULL);
		nng_free(buf, len);
	}
	return max;
}

/* ---- records -------------------------------------------------------------- */

#define POSTING(id, version, extra)                                                      \
	"{\"id\":\"" id "\",\"version\":" #version ",\"title\":\"Data Engineer\","       \
	"\"locations\":[{\"country\":\"IE\"}],\"salary\":{\"min\":50000,\"max\":70000,"  \
	"\"currency\":\"EUR\"},\"skills\":[{\"name\":\"GCP\"},{\"name\":\" Python "      \
	"3\"}]" extra "}"

#define PROFILE(id, version, extra)                                                      \
	"{\"id\":\"" id "\",\"version\":" #version ",\"headline\":\"Engineer\","         \
	"\"skills\":[{\"name\":\"Golang\",\"years\":3}]" extra "}"

struct expect_dlq {
	const char *key;
	const char *reason;
	int topic; /* 0 postings, 1 profiles */
};

static const struct expect_dlq want_dlq[] = {
    {"bad-pb", "undecodable", 0},
    {"bad-json", "bad_json", 0},
    {"bad-schema", "schema", 0},
    {"other-key", "key_mismatch", 0},
    {"job-long", "oversize", 0},
    {"job-notitle", "missing_field", 0},
    {"job-salary", "bad_salary", 0},
    {"job-enum", "unknown_enum", 0},
    {"job-cur", "bad_currency", 0},
    {"job-cc", "bad_country", 0},
    {"job-utf8", "bad_utf8", 0},
    {"bad/id", "bad_id", 0},
    {"job-emb", "bad_value", 0},
    {"job-skill", "bad_skill", 0},
    {"cand-many", "oversize", 1},
};
#define NDLQ ((int) (sizeof(want_dlq) / sizeof(want_dlq[0])))

/* Produces every case of the flow test; returns the number of messages per
 * topic in np / nc. */
static void
produce_cases(struct world *w, int *np, int *nc)
{
	lmt_producer *p = new_producer(w->brokers);
	const ProtobufCMessageDescriptor *pd = &lunamatch__v1__job_posting__descriptor;
	const ProtobufCMessageDescriptor *cd =
	    &lunamatch__v1__candidate_profile__descriptor;
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	uint8_t buf[512];
	size_t len;
	char big[2048];
	int n = 0;

	/* Valid postings, protobuf: a duplicate, an out-of-order pair, a closed
	 * posting, a create + tombstone, a tombstone of nothing. */
	produce_pb(p, w->postings, "job-a", pd, POSTING("job-a", 1, ""));
	produce_pb(p, w->postings, "job-a", pd, POSTING("job-a", 1, ""));
	produce_pb(p, w->postings, "job-b", pd, POSTING("job-b", 2, ""));
	produce_pb(p, w->postings, "job-b", pd, POSTING("job-b", 1, ""));
	produce_pb(p, w->postings, "job-c", pd,
	    POSTING("job-c", 1, ",\"status\":\"POSTING_STATUS_CLOSED\""));
	produce_pb(p, w->postings, "job-d", pd, POSTING("job-d", 1, ""));
	produce(p, w->postings, "job-d", NULL, 0, NULL);
	produce(p, w->postings, "job-nope", NULL, 0, NULL);
	n += 8;

	/* Rejected postings, protobuf. */
	produce(p, w->postings, "bad-pb", garbage, sizeof(garbage), NULL);
	produce_pb(p, w->postings, "other-key", pd, POSTING("job-k", 1, ""));
	memset(big, 'x', 300);
	big[300] = '\0';
	char long_title[sizeof(big) + 64];
	snprintf(long_title, sizeof(long_title),
	    "{\"id\":\"job-long\",\"version\":1,\"title\":\"%s\"}", big);
	produce_pb(p, w->postings, "job-long", pd, long_title);
	produce_pb(
	    p, w->postings, "job-notitle", pd, "{\"id\":\"job-notitle\",\"version\":1}");
	Lunamatch__V1__JobPosting jp = LUNAMATCH__V1__JOB_POSTING__INIT;
	jp.id = "job-enum";
	jp.version = 1;
	jp.title = "T";
	jp.remote = (Lunamatch__V1__RemotePolicy) 42;
	len = lunamatch__v1__job_posting__pack(&jp, buf);
	produce(p, w->postings, "job-enum", buf, len, NULL);
	Lunamatch__V1__JobPosting ju = LUNAMATCH__V1__JOB_POSTING__INIT;
	ju.id = "job-utf8";
	ju.version = 1;
	ju.title = "caf\xc3";
	len = lunamatch__v1__job_posting__pack(&ju, buf);
	produce(p, w->postings, "job-utf8", buf, len, NULL);
	produce_pb(p, w->postings, "bad/id", pd, POSTING("bad/id", 1, ""));
	n += 7;

	/* Profiles: protobuf, a JSON one through librdkafka with the header, a
	 * create + tombstone, and one with too many skills. */
	produce_pb(p, w->profiles, "cand-b", cd, PROFILE("cand-b", 1, ""));
	produce_pb(p, w->profiles, "cand-c", cd, PROFILE("cand-c", 1, ""));
	produce(p, w->profiles, "cand-c", NULL, 0, NULL);
	size_t o = (size_t) snprintf(
	    big, sizeof(big), "{\"id\":\"cand-many\",\"version\":1,\"skills\":[");
	for (int i = 0; i < 101; i++)
		o += (size_t) snprintf(
		    big + o, sizeof(big) - o, "%s{\"name\":\"s%d\"}", i ? "," : "", i);
	snprintf(big + o, sizeof(big) - o, "]}");
	produce(p, w->profiles, "cand-many", big, strlen(big), "application/json");
	*nc = 4;
	assert_int_equal(lmt_producer_flush(p, IO_MS), n + 4);
	lmt_producer_free(p);

	/* JSON through kcat: a valid posting and the JSON rejects. */
	kcat_json(w, w->postings, "postings.txt",
	    "job-j:" POSTING("job-j", 1,
	        "") "\n"
	            "bad-json:{not json\n"
	            "bad-schema:{\"id\":\"bad-schema\",\"version\":1,\"title\":\"T\","
	            "\"remote_ok\":1}\n"
	            "job-salary:{\"id\":\"job-salary\",\"version\":1,\"title\":\"T\","
	            "\"salary\":{\"min\":9,\"max\":5,\"currency\":\"EUR\"}}\n"
	            "job-cur:{\"id\":\"job-cur\",\"version\":1,\"title\":\"T\","
	            "\"salary\":{\"min\":5,\"max\":9,\"currency\":\"XYZ\"}}\n"
	            "job-cc:{\"id\":\"job-cc\",\"version\":1,\"title\":\"T\","
	            "\"locations\":[{\"country\":\"USA\"}]}\n"
	            "job-emb:{\"id\":\"job-emb\",\"version\":1,\"title\":\"T\","
	            "\"embedding\":[1,2]}\n"
	            "job-skill:{\"id\":\"job-skill\",\"version\":1,\"title\":\"T\","
	            "\"skills\":[{\"name\":\"!!!\"}]}\n");
	n += 8;
	kcat_json(
	    w, w->profiles, "profiles.txt", "cand-a:" PROFILE("cand-a", 3, "") "\n");
	*nc += 1;
	*np = n;
}

struct seen {
	char ids[8][32];
	uint64_t versions[8];
	int n;
};

static int
collect(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct seen *s = arg;
	(void) bytes;
	(void) len;
	if (s->n < 8) {
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id);
		s->versions[s->n] = version;
	}
	s->n++;
	return 0;
}

static void
check_store(const struct world *w)
{
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	struct seen sp = {0}, sc = {0};
	void *bytes = NULL;
	size_t len = 0;
	uint64_t seq = 0;

	assert_int_equal(lm_store_open(w->data, &o, &s), LM_OK);
	assert_int_equal(lm_store_foreach(s, LM_KIND_POSTING, collect, &sp), LM_OK);
	assert_int_equal(lm_store_foreach(s, LM_KIND_PROFILE, collect, &sc), LM_OK);
	assert_int_equal(sp.n, 4);
	assert_string_equal(sp.ids[0], "job-a");
	assert_int_equal(sp.versions[0], 1);
	assert_string_equal(sp.ids[1], "job-b");
	assert_int_equal(sp.versions[1], 2);
	assert_string_equal(sp.ids[2], "job-c");
	assert_int_equal(sp.versions[2], 1);
	assert_string_equal(sp.ids[3], "job-j");
	assert_int_equal(sp.versions[3], 1);
	assert_int_equal(sc.n, 2);
	assert_string_equal(sc.ids[0], "cand-a");
	assert_int_equal(sc.versions[0], 3);
	assert_string_equal(sc.ids[1], "cand-b");
	assert_int_equal(sc.versions[1], 1);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "job-d", NULL, NULL, NULL), LM_ENOENT);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_PROFILE, "cand-c", NULL, NULL, NULL), LM_ENOENT);

	/* Normalized: canonical skill ids, trimmed names, annual salary; a
	 * closed posting stored as it is. */
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "job-a", &bytes, &len, NULL), LM_OK);
	Lunamatch__V1__JobPosting *p =
	    lunamatch__v1__job_posting__unpack(NULL, len, bytes);
	assert_non_null(p);
	assert_int_equal(p->n_skills, 2);
	assert_string_equal(p->skills[0]->skill_id, "google-cloud-platform");
	assert_string_equal(p->skills[1]->skill_id, "python");
	assert_string_equal(p->skills[1]->name, "Python 3");
	assert_true(p->salary->annual_min > 0);
	lunamatch__v1__job_posting__free_unpacked(p, NULL);
	free(bytes);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "job-c", &bytes, &len, NULL), LM_OK);
	p = lunamatch__v1__job_posting__unpack(NULL, len, bytes);
	assert_non_null(p);
	assert_int_equal(p->status, LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED);
	lunamatch__v1__job_posting__free_unpacked(p, NULL);
	free(bytes);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_PROFILE, "cand-a", &bytes, &len, NULL), LM_OK);
	Lunamatch__V1__CandidateProfile *c =
	    lunamatch__v1__candidate_profile__unpack(NULL, len, bytes);
	assert_non_null(c);
	assert_string_equal(c->skills[0]->skill_id, "go");
	lunamatch__v1__candidate_profile__free_unpacked(c, NULL);
	free(bytes);

	/* 5 posting and 3 profile puts, 2 deletions. */
	assert_int_equal(lm_store_last_seq(s, &seq), LM_OK);
	assert_int_equal(seq, 10);
	lm_store_close(s);
}

static void
check_dlq(const struct world *w)
{
	struct dlq_msg got[NDLQ + 8];
	bool matched[NDLQ] = {false};
	int n = read_dlq(w, got, NDLQ + 8, NDLQ);

	assert_int_equal(n, NDLQ);
	for (int i = 0; i < n; i++) {
		int j;
		for (j = 0; j < NDLQ; j++)
			if (!matched[j] && strcmp(want_dlq[j].key, got[i].key) == 0)
				break;
		if (j == NDLQ)
			fail_msg("unexpected DLQ message with key \"%s\"", got[i].key);
		matched[j] = true;
		if (strcmp(got[i].reason, want_dlq[j].reason) != 0)
			fail_msg("key %s: reason %s, expected %s", got[i].key,
			    got[i].reason, want_dlq[j].reason);
		assert_string_equal(
		    got[i].topic, want_dlq[j].topic ? w->profiles : w->postings);
		assert_true(got[i].has_error);
		assert_true(got[i].has_partition);
		assert_true(got[i].has_offset);
		assert_false(got[i].null_value);
	}
}

static void
check_metrics(const char *m, int np, int nc)
{
	char want[256];
	struct {
		const char *series;
		double value;
	} exact[] = {
	    {"lunamatch_ingest_stored_total{kind=\"posting\"}", 5},
	    {"lunamatch_ingest_stored_total{kind=\"profile\"}", 3},
	    {"lunamatch_ingest_deleted_total{kind=\"posting\"}", 1},
	    {"lunamatch_ingest_deleted_total{kind=\"profile\"}", 1},
	    {"lunamatch_ingest_duplicates_total{kind=\"posting\"}", 3},
	    {"lunamatch_ingest_duplicates_total{kind=\"profile\"}", 0},
	    {"lunamatch_ingest_dlq_total", NDLQ},
	    {"lunamatch_ingest_rejected_total{reason=\"oversize\"}", 2},
	    {"lunamatch_ingest_rejected_total{reason=\"none\"}", -1},
	    {"lunamatch_ingest_batch_failures_total", 0},
	};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		double v = lmt_prom_value(m, exact[i].series);
		if (v != exact[i].value)
			fail_msg(
			    "%s = %g, expected %g", exact[i].series, v, exact[i].value);
	}
	for (int i = 0; i < NDLQ; i++) {
		if (strcmp(want_dlq[i].reason, "oversize") == 0)
			continue;
		snprintf(want, sizeof(want),
		    "lunamatch_ingest_rejected_total{reason=\"%s\"}", want_dlq[i].reason);
		if (lmt_prom_value(m, want) != 1)
			fail_msg("%s = %g, expected 1", want, lmt_prom_value(m, want));
	}
	assert_true(lmt_prom_value(m, "lunamatch_ingest_batch_seconds_count") >= 1);
	(void) np;
	(void) nc;
}

static void
check_consumed(const struct world *w, const char *m, int np, int nc)
{
	char s[300];
	snprintf(
	    s, sizeof(s), "lunamatch_ingest_consumed_total{topic=\"%s\"}", w->postings);
	assert_int_equal((int) lmt_prom_value(m, s), np);
	snprintf(
	    s, sizeof(s), "lunamatch_ingest_consumed_total{topic=\"%s\"}", w->profiles);
	assert_int_equal((int) lmt_prom_value(m, s), nc);
}

/* ---- tests ---------------------------------------------------------------- */

/* Valid, duplicate, out-of-order, closed, tombstone and malformed messages:
 * exact store, DLQ, metrics and notifications; SIGTERM; a restart resumes
 * after the committed offsets. */
static void
test_flow(void **state)
{
	struct world w;
	int np = 0, nc = 0;
	(void) state;

	world_start(&w, "flow", NULL, NULL);
	nng_socket sub = notify_sub(&w);
	int attached = atomic_load(&notify_pipes);
	ingest_start(&w);
	wait_ready(&w);
	notify_wait_attached(attached);
	assert_int_equal(lmt_http_status(w.http, "/healthz", NULL, LMT_HTTP_MS), 200);
	assert_int_equal(lmt_http_status(w.http, "/nope", NULL, LMT_HTTP_MS), 404);

	produce_cases(&w, &np, &nc);
	char *m = wait_processed(&w, np + nc);
	check_consumed(&w, m, np, nc);
	check_metrics(m, np, nc);
	free(m);
	check_store(&w);
	check_dlq(&w);
	assert_int_equal(notify_max(sub, 10), 10);

	/* The lag gauge comes down to 0 (refreshed every 2 s). */
	lmt_wait_metric(w.http, "lunamatch_ingest_consumer_lag", LMT_EQ, 0, 15000);
	assert_true(lmt_metric(w.http, "lunamatch_ingest_consumer_lag") == 0);
	assert_true(
	    lmt_metric(w.http, "lunamatch_ingest_assigned_partitions") == 2 * PARTITIONS);

	lmt_proc_stop(&w.ingest, STOP_MS);

	/* Restarted, ingest starts after the committed offsets: only the new
	 * message is consumed. */
	attached = atomic_load(&notify_pipes);
	ingest_start(&w);
	wait_ready(&w);
	notify_wait_attached(attached);
	lmt_producer *p = new_producer(w.brokers);
	produce_pb(p, w.postings, "job-z", &lunamatch__v1__job_posting__descriptor,
	    POSTING("job-z", 1, ""));
	assert_int_equal(lmt_producer_flush(p, IO_MS), 1);
	lmt_producer_free(p);
	m = wait_processed(&w, 1);
	check_consumed(&w, m, 1, 0);
	assert_true(
	    lmt_prom_value(m, "lunamatch_ingest_stored_total{kind=\"posting\"}") == 1);
	free(m);
	assert_int_equal(notify_max(sub, 11), 11);
	lmt_proc_stop(&w.ingest, STOP_MS);
	nng_close(sub);
	world_free(&w);
}

static bool
all_at_v2(const char *data)
{
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	bool ok = true;
	char id[32];

	if (lm_store_open(data, &o, &s) != LM_OK)
		return false;
	for (int i = 0; i < KILL_IDS && ok; i++) {
		uint64_t v = 0;
		snprintf(id, sizeof(id), "k-%04d", i);
		ok = lm_store_get(s, LM_KIND_POSTING, id, NULL, NULL, &v) == LM_OK &&
		     v == 2;
	}
	struct lm_store_stats st;
	ok = ok && lm_store_stats(s, &st) == LM_OK && st.postings == KILL_IDS;
	lm_store_close(s);
	return ok;
}

static void
produce_wave(lmt_producer *p, const char *topic, int version)
{
	char id[32], json[256];
	for (int i = 0; i < KILL_IDS; i++) {
		snprintf(id, sizeof(id), "k-%04d", i);
		snprintf(json, sizeof(json),
		    "{\"id\":\"%s\",\"version\":%d,\"title\":\"T "
		    "%d\",\"skills\":[{\"name\":"
		    "\"Rust\"}]}",
		    id, version, i);
		produce_pb(p, topic, id, &lunamatch__v1__job_posting__descriptor, json);
	}
}

/* SIGKILL in the middle of the stream, restart: every record is there with
 * its highest version. */
static void
test_sigkill(void **state)
{
	struct world w;
	int st = -1;
	(void) state;

	world_start(&w, "kill", "LUNAMATCH_BATCH_MAX=50", NULL);
	ingest_start(&w);
	wait_ready(&w);

	lmt_producer *p = new_producer(w.brokers);
	produce_wave(p, w.postings, 1);
	/* Kill once some batches are stored and others are still coming. */
	int64_t end = lm_clock_ms() + PROCESS_MS;
	while (
	    lm_clock_ms() < end &&
	    lmt_metric(w.http, "lunamatch_ingest_stored_total{kind=\"posting\"}") < 150) {
		rd_kafka_poll(p->rk, 5);
	}
	produce_wave(p, w.postings, 2);
	assert_int_equal(lmt_proc_signal(w.ingest, SIGKILL), LM_OK);
	assert_int_equal(lmt_proc_wait(w.ingest, STOP_MS, &st), LM_OK);
	assert_int_equal(st, 128 + SIGKILL);
	lmt_proc_free(w.ingest);
	w.ingest = NULL;
	assert_false(all_at_v2(w.data));
	assert_int_equal(lmt_producer_flush(p, IO_MS), 2 * KILL_IDS);
	lmt_producer_free(p);

	ingest_start(&w);
	end = lm_clock_ms() + PROCESS_MS;
	while (lm_clock_ms() < end && !all_at_v2(w.data))
		lmt_sleep_ms(250);
	assert_true(all_at_v2(w.data));
	lmt_proc_stop(&w.ingest, STOP_MS);
	world_free(&w);
}

/*
 * The broker frozen (SIGSTOP) for longer than the group session: ingest logs
 * and retries, stays up, and once the broker is back it stores what was
 * produced meanwhile and is ready again. Embedded broker only: a real broker
 * is not this test's to freeze.
 */
static void
test_outage(void **state)
{
	struct world w;
	int st = -1;
	(void) state;

	if (G.real)
		skip();
	world_start(&w, "outage", NULL, NULL);
	ingest_start(&w);
	wait_ready(&w);

	lmt_producer *p = new_producer(w.brokers);
	produce_wave(p, w.postings, 1);
	assert_int_equal(lmt_producer_flush(p, IO_MS), KILL_IDS);
	free(wait_processed(&w, KILL_IDS));

	assert_int_equal(lmt_proc_signal(w.b.dk, SIGSTOP), LM_OK);
	lmt_sleep_ms(OUTAGE_MS);
	/* Still running: transient Kafka errors are never fatal. */
	assert_int_equal(lmt_proc_wait(w.ingest, 100, &st), LM_ETIMEDOUT);
	assert_int_equal(lmt_proc_signal(w.b.dk, SIGCONT), LM_OK);

	produce_wave(p, w.postings, 2);
	assert_int_equal(lmt_producer_flush(p, IO_MS), 2 * KILL_IDS); /* in all */
	lmt_producer_free(p);
	int64_t end = lm_clock_ms() + PROCESS_MS;
	while (lm_clock_ms() < end && !all_at_v2(w.data))
		lmt_sleep_ms(250);
	assert_true(all_at_v2(w.data));
	wait_ready(&w);
	assert_int_equal(w.starts, 1); /* the same process throughout */
	lmt_proc_stop(&w.ingest, STOP_MS);
	world_free(&w);
}

/*
 * Restarted while the broker is away (frozen), ingest whose store was
 * current is started at once (/startedz, the pod's readiness: it had
 * waited for the broker to come back), while /readyz says it has no
 * partitions. Once the broker is back it is ready and stores what was
 * produced meanwhile. Embedded broker only.
 */
static void
test_restart_broker_down(void **state)
{
	struct world w;
	int64_t end;
	(void) state;

	if (G.real)
		skip();
	world_start(&w, "downstart", NULL, NULL);
	ingest_start(&w);
	wait_ready(&w);
	lmt_producer *p = new_producer(w.brokers);
	produce_wave(p, w.postings, 1);
	assert_int_equal(lmt_producer_flush(p, IO_MS), KILL_IDS);
	free(wait_processed(&w, KILL_IDS));
	lmt_proc_stop(&w.ingest, STOP_MS);

	assert_int_equal(lmt_proc_signal(w.b.dk, SIGSTOP), LM_OK);
	ingest_start(&w);
	end = lm_clock_ms() + START_MS;
	while (lm_clock_ms() < end &&
	       lmt_http_status(w.http, "/startedz", NULL, LMT_HTTP_MS) != 200)
		lmt_sleep_ms(100);
	assert_int_equal(lmt_http_status(w.http, "/startedz", NULL, LMT_HTTP_MS), 200);
	assert_int_equal(lmt_http_status(w.http, "/readyz", NULL, LMT_HTTP_MS), 503);
	assert_int_equal(lmt_proc_signal(w.b.dk, SIGCONT), LM_OK);

	produce_wave(p, w.postings, 2);
	assert_int_equal(lmt_producer_flush(p, IO_MS), 2 * KILL_IDS); /* in all */
	lmt_producer_free(p);
	end = lm_clock_ms() + PROCESS_MS;
	while (lm_clock_ms() < end && !all_at_v2(w.data))
		lmt_sleep_ms(250);
	assert_true(all_at_v2(w.data));
	wait_ready(&w);
	lmt_proc_stop(&w.ingest, STOP_MS);
	world_free(&w);
}

/* ---- replays -------------------------------------------------------------- */

#define REPLAY_IDS 100 /* ids per replay sequence */

/* The sequences per id (0 = tombstone) and the version each must end at
 * (0 = deleted). */
static const struct {
	const char *prefix;
	int seq[5];
	int n, want;
} replay_seqs[] = {
    {"ra", {1, 0, 2}, 3, 2},
    {"rb", {1, 2, 0}, 3, 0},
    {"rc", {1, 0, 2, 0, 3}, 5, 3},
};
#define REPLAY_SEQS ((int) (sizeof(replay_seqs) / sizeof(replay_seqs[0])))

static int
replay_messages(void)
{
	int n = 0;
	for (int q = 0; q < REPLAY_SEQS; q++)
		n += replay_seqs[q].n * REPLAY_IDS;
	return n;
}

/* Every id is in the state of its last message. */
static void
assert_replay_state(const char *data)
{
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	char id[32];

	assert_int_equal(lm_store_open(data, &o, &s), LM_OK);
	for (int q = 0; q < REPLAY_SEQS; q++) {
		for (int i = 0; i < REPLAY_IDS; i++) {
			uint64_t v = 0;
			snprintf(id, sizeof(id), "%s-%03d", replay_seqs[q].prefix, i);
			int rc = lm_store_get(s, LM_KIND_POSTING, id, NULL, NULL, &v);
			if (replay_seqs[q].want == 0 && rc != LM_ENOENT)
				fail_msg("%s: live at version %llu, expected deleted", id,
				    (unsigned long long) v);
			if (replay_seqs[q].want != 0 &&
			    (rc != LM_OK || v != (uint64_t) replay_seqs[q].want))
				fail_msg("%s: %s at version %llu, expected version %d",
				    id, lm_strerror(rc), (unsigned long long) v,
				    replay_seqs[q].want);
		}
	}
	lm_store_close(s);
}

/* The end-of-partition markers of test_replay are all stored. */
static bool
markers_stored(const char *data)
{
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	bool ok = true;
	char id[32];

	if (lm_store_open(data, &o, &s) != LM_OK)
		return false;
	for (int part = 0; part < PARTITIONS && ok; part++) {
		snprintf(id, sizeof(id), "zz-marker-%d", part);
		ok = lm_store_get(s, LM_KIND_POSTING, id, NULL, NULL, NULL) == LM_OK;
	}
	lm_store_close(s);
	return ok;
}

/* Runs ingest under consumer group `group` (a fresh process). */
static void
ingest_start_group(struct world *w, const char *group)
{
	snprintf(w->group, sizeof(w->group), "lmtest-%s-%s-%s", G.run, w->tag, group);
	lmt_env_free(&w->env);
	memset(&w->env, 0, sizeof(w->env));
	world_env(w, "LUNAMATCH_BATCH_MAX=40", NULL);
	ingest_start(w);
}

/*
 * A replayed tombstone never undoes a later put: the log holds
 * [v1, T, v2], [v1, v2, T] and [v1, T, v2, T, v3] for 100 ids each. Consumed
 * by one group, then by a second group into the same store (a full replay),
 * then by a third group killed mid-stream and restarted (a replay from its
 * last committed offsets): every id ends in the state of its last message.
 */
static void
test_replay(void **state)
{
	struct world w;
	char id[32], json[256];
	int st = -1;
	const int total = replay_messages();
	(void) state;

	world_start(&w, "replay", NULL, NULL);
	lmt_producer *p = new_producer(w.brokers);
	for (int q = 0; q < REPLAY_SEQS; q++) {
		for (int i = 0; i < REPLAY_IDS; i++) {
			snprintf(id, sizeof(id), "%s-%03d", replay_seqs[q].prefix, i);
			for (int k = 0; k < replay_seqs[q].n; k++) {
				int v = replay_seqs[q].seq[k];
				if (v == 0) {
					produce(p, w.postings, id, NULL, 0, NULL);
					continue;
				}
				snprintf(json, sizeof(json),
				    "{\"id\":\"%s\",\"version\":%d,\"title\":\"T\","
				    "\"skills\":[{\"name\":\"Rust\"}]}",
				    id, v);
				produce_pb(p, w.postings, id,
				    &lunamatch__v1__job_posting__descriptor, json);
			}
		}
	}
	assert_int_equal(lmt_producer_flush(p, IO_MS), total);
	lmt_producer_free(p);

	static const char *const groups[] = {"g1", "g2"};
	for (size_t g = 0; g < 2; g++) {
		ingest_start_group(&w, groups[g]);
		wait_ready(&w);
		free(wait_processed(&w, total));
		lmt_proc_stop(&w.ingest, STOP_MS);
		assert_replay_state(w.data);
	}

	/* A third group, killed once part of the log is stored. */
	ingest_start_group(&w, "g3");
	int64_t end = lm_clock_ms() + PROCESS_MS;
	while (
	    lm_clock_ms() < end && lmt_metric(w.http, "lunamatch_ingest_duplicates_total{"
	                                              "kind=\"posting\"}") < total / 4)
		lmt_sleep_ms(5);
	assert_int_equal(lmt_proc_signal(w.ingest, SIGKILL), LM_OK);
	assert_int_equal(lmt_proc_wait(w.ingest, STOP_MS, &st), LM_OK);
	lmt_proc_free(w.ingest);
	w.ingest = NULL;
	assert_replay_state(w.data);
	ingest_start_group(&w, "g3");
	wait_ready(&w);
	/* A marker at the end of every partition: once all are stored, the
	 * restarted consumer has gone through everything before them. */
	p = new_producer(w.brokers);
	for (int part = 0; part < PARTITIONS; part++) {
		snprintf(id, sizeof(id), "zz-marker-%d", part);
		snprintf(json, sizeof(json),
		    "{\"id\":\"%s\",\"version\":1,\"title\":\"T\","
		    "\"skills\":[{\"name\":\"Rust\"}]}",
		    id);
		ProtobufCMessage *m = NULL;
		char err[256];
		assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor,
		                     json, strlen(json), &m, err, sizeof(err)),
		    LM_OK);
		uint8_t *buf = NULL;
		size_t len = 0;
		assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
		lmt_produce(p, w.postings, part, id, buf, len, NULL);
		free(buf);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	assert_int_equal(lmt_producer_flush(p, IO_MS), PARTITIONS);
	lmt_producer_free(p);
	end = lm_clock_ms() + PROCESS_MS;
	while (lm_clock_ms() < end && !markers_stored(w.data))
		lmt_sleep_ms(100);
	assert_true(markers_stored(w.data));
	lmt_proc_stop(&w.ingest, STOP_MS);
	assert_replay_state(w.data);
	world_free(&w);
}

/*
 * SIGTERM while the broker goes away at the same moment (killed, or frozen
 * with its connections open): ingest exits within its stated shutdown bound
 * (docs/ingest.md), whatever the broker does. Embedded broker only.
 */
static void
stop_without_broker(int broker_signal)
{
	struct world w;
	int st = -1;

	world_start(&w, broker_signal == SIGKILL ? "gone" : "frozen", NULL, NULL);
	ingest_start(&w);
	wait_ready(&w);
	lmt_producer *p = new_producer(w.brokers);
	produce_wave(p, w.postings, 1);
	assert_int_equal(lmt_producer_flush(p, IO_MS), KILL_IDS);
	lmt_producer_free(p);
	free(wait_processed(&w, KILL_IDS));

	int64_t t0 = lm_clock_ms();
	assert_int_equal(lmt_proc_signal(w.b.dk, broker_signal), LM_OK);
	assert_int_equal(lmt_proc_signal(w.ingest, SIGTERM), LM_OK);
	int rv = lmt_proc_wait(w.ingest, SHUTDOWN_BOUND_MS + 5000, &st);
	int64_t took = lm_clock_ms() - t0;
	if (rv != LM_OK || took > SHUTDOWN_BOUND_MS + 1000)
		fail_msg("ingest took %lld ms to stop (bound %d ms; log: %s)",
		    (long long) took, SHUTDOWN_BOUND_MS, w.errlog);
	assert_true(st == 0 || st == 1);
	print_message(
	    "ingest stopped %lld ms after SIGTERM, status %d\n", (long long) took, st);
	if (broker_signal == SIGSTOP)
		(void) lmt_proc_signal(w.b.dk, SIGCONT);
	world_free(&w);
}

static void
test_stop_broker_gone(void **state)
{
	(void) state;
	if (G.real)
		skip();
	stop_without_broker(SIGKILL);
	stop_without_broker(SIGSTOP);
}

/* --help, invalid configuration and data files. */
static void
test_cli(void **state)
{
	char dir_env[4400];
	char *dir = lmt_tmpdir("ingest-cli");
	char errfile[4300];
	(void) state;

	if (G.real)
		skip();
	const char *help[] = {lmt_bin("lunamatch-ingest"), "--help", NULL};
	lmt_run_result r = lmt_run(help, NULL, NULL, START_MS);
	assert_non_null(strstr(r.out, "LUNAMATCH_GROUP_ID"));
	assert_int_equal(r.status, 0);
	lmt_run_result_free(&r);

	snprintf(dir_env, sizeof(dir_env), "LUNAMATCH_DATA_DIR=%s/data", dir);
	snprintf(errfile, sizeof(errfile), "%s/err", dir);
	struct {
		const char *env;
		const char *arg;
		const char *says;
	} bad[] = {
	    {"LUNAMATCH_BATCH_MAX=0", NULL, "LUNAMATCH_BATCH_MAX"},
	    {"LUNAMATCH_BATCH_MS=soon", NULL, "LUNAMATCH_BATCH_MS"},
	    {NULL, "--no-such-flag", "--no-such-flag"},
	    {NULL, "stray", "stray"},
	    {"LUNAMATCH_TAXONOMY_FILE=/nonexistent/skills.tsv", NULL,
	        "LUNAMATCH_TAXONOMY_FILE"},
	    {"LUNAMATCH_RATES_FILE=/nonexistent/rates.tsv", NULL, "LUNAMATCH_RATES_FILE"},
	    {"LUNAMATCH_FAIRNESS_FILE=/nonexistent/requirements.tsv", NULL,
	        "LUNAMATCH_FAIRNESS_FILE"},
	    {"LUNAMATCH_GAZETTEER_FILE=/nonexistent/cities.tsv", NULL,
	        "LUNAMATCH_GAZETTEER_FILE"},
	    {"LUNAMATCH_TOPIC_PROFILES=lunamatch.postings.v1", NULL, "must differ"},
	    {"LUNAMATCH_TOPIC_DLQ=lunamatch.profiles.v1", NULL, "must differ"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char tax[4400], rates[4400], fair[4400], gaz[4400];
		snprintf(tax, sizeof(tax), "LUNAMATCH_TAXONOMY_FILE=%s",
		    lmt_src("data/skills.tsv"));
		snprintf(rates, sizeof(rates), "LUNAMATCH_RATES_FILE=%s",
		    lmt_src("data/rates.tsv"));
		snprintf(fair, sizeof(fair), "LUNAMATCH_FAIRNESS_FILE=%s",
		    lmt_src("data/fairness/requirements.tsv"));
		snprintf(gaz, sizeof(gaz), "LUNAMATCH_GAZETTEER_FILE=%s",
		    lmt_src("data/geo/cities.tsv"));
		/* The case's own variable comes first and is not overridden. */
		const char *env[10] = {NULL};
		int ne = 0;
		if (bad[i].env != NULL)
			env[ne++] = bad[i].env;
		if (bad[i].env == NULL || strncmp(bad[i].env, tax, 24) != 0)
			env[ne++] = tax;
		if (bad[i].env == NULL || strncmp(bad[i].env, rates, 21) != 0)
			env[ne++] = rates;
		if (bad[i].env == NULL || strncmp(bad[i].env, fair, 24) != 0)
			env[ne++] = fair;
		if (bad[i].env == NULL || strncmp(bad[i].env, gaz, 25) != 0)
			env[ne++] = gaz;
		env[ne++] = dir_env;
		env[ne++] = "LUNAMATCH_HTTP_ADDR=127.0.0.1:0";
		env[ne++] = "LUNAMATCH_BROKERS=127.0.0.1:1";
		const char *argv[] = {lmt_bin("lunamatch-ingest"), bad[i].arg, NULL};
		r = lmt_run(argv, env, errfile, START_MS);
		if (r.status != 2)
			fail_msg("case %zu: exit status %d, expected 2", i, r.status);
		if (strstr(r.err, bad[i].says) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, r.err, bad[i].says);
		lmt_run_result_free(&r);
	}
	lmt_rmtree(dir);
	free(dir);
}

/*
 * Fair requirements through ingest: a posting that asks for a native speaker,
 * a recent graduate and a digital native is stored without those skills and
 * requirements, carries its warnings, and they are counted on /metrics and
 * logged with the phrase. The other posting shows the rest of what the data
 * files do on ingest: a misspelled skill read as the skill, a geocoded
 * location and the default remote countries.
 */
static void
test_compliance(void **state)
{
	struct world w;
	lmt_producer *p;
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	void *bytes = NULL;
	size_t len = 0;
	char *m, *log;
	static const char posting[] =
	    "{\"id\":\"job-fair\",\"version\":1,\"title\":\"Account Executive\","
	    "\"skills\":[{\"name\":\"Salesforce\"},{\"name\":\"Native English "
	    "speaker\"},{\"name\":\"Recent graduate\"}],\"requirement_groups\":[{"
	    "\"label\":\"Digital native\",\"skills\":[\"Social media\"]},{\"label\":"
	    "\"CRM\",\"skills\":[\"HubSpot\",\"Salesforce\"]}]}";
	(void) state;

	world_start(&w, "fair", NULL, NULL);
	ingest_start(&w);
	wait_ready(&w);
	/* Registered at 0 before any posting came. */
	assert_true(lmt_metric(w.http, "lunamatch_ingest_flagged_postings_total") == 0);
	assert_true(
	    lmt_metric(w.http,
	        "lunamatch_ingest_compliance_warnings_total{category=\"age\"}") == 0);
	p = new_producer(w.brokers);
	produce(p, w.postings, "job-fair", posting, strlen(posting), "application/json");
	produce_pb(p, w.postings, "job-ok", &lunamatch__v1__job_posting__descriptor,
	    "{\"id\":\"job-ok\",\"version\":1,\"title\":\"Engineer\","
	    "\"skills\":[{\"name\":\"English\"},{\"name\":\"Pyhton\"}],"
	    "\"remote\":\"REMOTE_POLICY_REMOTE\",\"locations\":[{\"city\":"
	    "\"Evanston\",\"region\":\"IL\",\"country\":\"US\"}]}");
	lmt_producer_flush(p, IO_MS);
	lmt_producer_free(p);
	m = wait_processed(&w, 2);
	assert_true(
	    lmt_prom_value(m, "lunamatch_ingest_stored_total{kind=\"posting\"}") == 2);
	assert_true(lmt_prom_value(m, "lunamatch_ingest_flagged_postings_total") == 1);
	assert_true(
	    lmt_prom_value(
	        m, "lunamatch_ingest_compliance_warnings_total{category=\"age\"}") == 2);
	assert_true(lmt_prom_value(m,
	                "lunamatch_ingest_compliance_warnings_total{category=\"national-"
	                "origin\"}") == 1);
	free(m);

	assert_int_equal(lm_store_open(w.data, &o, &s), LM_OK);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "job-fair", &bytes, &len, NULL), LM_OK);
	Lunamatch__V1__JobPosting *j =
	    lunamatch__v1__job_posting__unpack(NULL, len, bytes);
	assert_non_null(j);
	assert_int_equal(j->n_skills, 1);
	assert_string_equal(j->skills[0]->skill_id, "salesforce");
	assert_int_equal(j->n_requirement_groups, 1);
	assert_string_equal(j->requirement_groups[0]->label, "CRM");
	assert_int_equal(j->n_compliance_warnings, 3);
	assert_string_equal(j->compliance_warnings[0]->phrase, "Native English speaker");
	assert_string_equal(j->compliance_warnings[0]->field, "skills[1].name");
	assert_string_equal(j->compliance_warnings[1]->rule, "age-recent-graduate");
	assert_string_equal(
	    j->compliance_warnings[2]->field, "requirement_groups[0].label");
	assert_true(j->compliance_warnings[2]->removed);
	assert_true(j->fairness_version[0] != '\0');
	lunamatch__v1__job_posting__free_unpacked(j, NULL);
	free(bytes);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "job-ok", &bytes, &len, NULL), LM_OK);
	j = lunamatch__v1__job_posting__unpack(NULL, len, bytes);
	assert_non_null(j);
	assert_int_equal(j->n_compliance_warnings, 0);
	assert_int_equal(j->n_skills, 2);
	assert_string_equal(j->skills[1]->skill_id, "python");
	assert_int_equal(j->skills[1]->resolution,
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_TYPO);
	/* Geocoded, and remote work allowed in its own country. */
	assert_true(j->locations[0]->geocoded);
	assert_int_equal(j->locations[0]->geoname_id, 4891382);
	assert_int_equal(j->n_remote_countries, 1);
	assert_string_equal(j->remote_countries[0], "US");
	lunamatch__v1__job_posting__free_unpacked(j, NULL);
	free(bytes);
	lm_store_close(s);

	lmt_proc_stop(&w.ingest, STOP_MS);
	log = lmt_read_file(w.errlog, NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "ingest.compliance"));
	assert_non_null(strstr(log, "Native English speaker"));
	assert_non_null(strstr(log, "Digital native"));
	free(log);
	world_free(&w);
}

/* Whether the group of w has committed, on every partition of topic, the
 * partition's end (its high watermark), within ms. */
static bool
committed_to_end(struct world *w, const char *topic, int ms)
{
	bool all = false;
	/* Asks as the group without joining it (nothing is subscribed). */
	rd_kafka_t *c =
	    lmt_kafka_consumer(w->brokers, "lmtest-ingest-ends", w->group, NULL);
	for (int64_t end = lm_clock_ms() + ms; !all && lm_clock_ms() < end;) {
		rd_kafka_topic_partition_list_t *l =
		    rd_kafka_topic_partition_list_new(PARTITIONS);
		for (int p = 0; p < PARTITIONS; p++)
			rd_kafka_topic_partition_list_add(l, topic, p);
		all = rd_kafka_committed(c, l, IO_MS) == RD_KAFKA_RESP_ERR_NO_ERROR;
		for (int p = 0; all && p < PARTITIONS; p++) {
			int64_t lo = -1, hi = -1;
			assert_int_equal(rd_kafka_query_watermark_offsets(
			                     c, topic, p, &lo, &hi, IO_MS),
			    RD_KAFKA_RESP_ERR_NO_ERROR);
			all = hi == 0 || l->elems[p].offset == hi;
		}
		rd_kafka_topic_partition_list_destroy(l);
		if (!all)
			lmt_sleep_ms(200);
	}
	lmt_kafka_consumer_free(c);
	return all;
}

/*
 * Input written by a transactional producer (Kafka Connect with exactly-once
 * delivery, Kafka Streams): each commit appends a control record to every
 * partition of the transaction, which takes an offset and is never
 * delivered, so the last offset stored stays below the partition's end.
 * Ingest is still ready once it has read to the end and stored everything
 * it was given, and it commits the ends, past the control records: match's
 * event owners wait for the ingest group to reach them (they used to wait
 * for ever). (The dev broker writes no control records: there this is the
 * plain flow.)
 */
static void
test_txn_markers(void **state)
{
	struct world w;
	char txn[96], id[32], json[128];
	(void) state;

	world_start(&w, "txn", NULL, NULL);
	snprintf(txn, sizeof(txn), "lmtest-%s-txn", G.run);
	lmt_producer *p = lmt_producer_new(w.brokers, "lmtest-txn",
	    (const char *const[]){"transactional.id", txn, "linger.ms", "5", NULL});
	assert_null(rd_kafka_init_transactions(p->rk, IO_MS));
	assert_null(rd_kafka_begin_transaction(p->rk));
	for (int i = 0; i < 8; i++) {
		snprintf(id, sizeof(id), "txn-%d", i);
		snprintf(json, sizeof(json),
		    "{\"id\":\"%s\",\"version\":1,\"title\":\"T\"}", id);
		produce_pb(
		    p, w.postings, id, &lunamatch__v1__job_posting__descriptor, json);
	}
	assert_null(rd_kafka_commit_transaction(p->rk, IO_MS));
	lmt_producer_free(p);

	ingest_start(&w);
	wait_ready(&w);
	char *m = wait_processed(&w, 8);
	assert_int_equal(
	    lmt_prom_value(m, "lunamatch_ingest_stored_total{kind=\"posting\"}"), 8);
	free(m);
	assert_true(committed_to_end(&w, w.postings, 20000));
	lmt_proc_stop(&w.ingest, STOP_MS);
	world_free(&w);
}

/* ---- a store back after days away ---------------------------------------- */

#ifdef LMT_CLOCK_SHIM
#define STALE_IDS 3000 /* records of the stale-store test */
#define DAY_S     86400

/* Puts posting id into w's store (ingest stopped), as the topics' messages
 * of it left it before a deletion's tombstone and then the tombstone
 * itself were compacted away. */
static void
put_gone(const struct world *w, const char *id)
{
	lm_store_pos pos = {.epoch = 0, .partition = 0, .offset = 0};
	lm_store *s = NULL;
	lm_store_txn *t = NULL;

	assert_int_equal(lm_store_open(w->data, NULL, &s), LM_OK);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_put_at(t, LM_KIND_POSTING, id, 1, "x", 1, &pos), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(s);
}

/* What w's store says: whether posting id is live, its live postings and
 * whether a refill is active. */
struct stale_view {
	bool gone_live, refilling;
	uint64_t postings;
};

static struct stale_view
view_store(const struct world *w, const char *id)
{
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	struct stale_view v = {false, false, 0};
	struct lm_store_stats st;
	lm_ingest_refill ref;
	lm_store *s = NULL;

	assert_int_equal(lm_store_open(w->data, &o, &s), LM_OK);
	v.gone_live = lm_store_get(s, LM_KIND_POSTING, id, NULL, NULL, NULL) == LM_OK;
	v.refilling = lm_ingest_refill_get(s, &ref) == LM_OK && ref.active;
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	v.postings = st.postings;
	lm_store_close(s);
	return v;
}

/*
 * A store back two days after it was last current (ingest's wall clock
 * moved by the shim, through the real code path): the topics have dropped
 * a deleted record's messages, tombstone included (s-gone, put straight
 * into the store). Ingest says why it refills, reads the topics again and
 * is SIGKILLed midway (frozen first, to look at the store: the refill is
 * recorded as running, s-gone still there). Restarted, it resumes the
 * refill rather than trust the store, deletes s-gone and keeps the rest.
 */
static void
test_stale_store(void **state)
{
	struct world w;
	struct stale_view v;
	char id[32], json[160], *log;
	int st = -1;
	(void) state;

	world_start(&w, "stale", "LUNAMATCH_BATCH_MAX=10", NULL);
	ingest_start(&w);
	wait_ready(&w);
	lmt_producer *p = new_producer(w.brokers);
	for (int i = 0; i < STALE_IDS; i++) {
		snprintf(id, sizeof(id), "s-%04d", i);
		snprintf(json, sizeof(json),
		    "{\"id\":\"%s\",\"version\":1,\"title\":\"T\",\"skills\":[{"
		    "\"name\":\"Rust\"}]}",
		    id);
		produce_pb(
		    p, w.postings, id, &lunamatch__v1__job_posting__descriptor, json);
	}
	assert_int_equal(lmt_producer_flush(p, IO_MS), STALE_IDS);
	lmt_producer_free(p);
	free(wait_processed(&w, STALE_IDS));
	lmt_proc_stop(&w.ingest, STOP_MS);
	put_gone(&w, "s-gone");

	lmt_env_add(&w.env, "LD_PRELOAD=%s", LMT_CLOCK_SHIM);
	lmt_env_add(&w.env, "LMT_CLOCK_AHEAD_S=%d", 2 * DAY_S);
	ingest_start(&w);
	int64_t end = lm_clock_ms() + PROCESS_MS;
	while (lm_clock_ms() < end &&
	       lmt_metric(w.http, "lunamatch_ingest_duplicates_total{kind=\"posting\"}") <
	           100)
		lmt_sleep_ms(5);
	assert_int_equal(lmt_proc_signal(w.ingest, SIGSTOP), LM_OK);
	v = view_store(&w, "s-gone");
	assert_true(v.refilling);
	assert_true(v.gone_live);
	assert_int_equal(lmt_proc_signal(w.ingest, SIGKILL), LM_OK);
	assert_int_equal(lmt_proc_wait(w.ingest, STOP_MS, &st), LM_OK);
	assert_int_equal(st, 128 + SIGKILL);
	lmt_proc_free(w.ingest);
	w.ingest = NULL;
	assert_non_null(log = lmt_read_file(w.errlog, NULL));
	if (strstr(log, "longer than LUNAMATCH_STORE_MAX_AGE_S") == NULL)
		fail_msg("no warning that says why the store is refilled (%s)", w.errlog);
	free(log);

	ingest_start(&w);
	wait_ready(&w);
	v = view_store(&w, "s-gone");
	assert_false(v.refilling);
	assert_false(v.gone_live);
	assert_int_equal(v.postings, STALE_IDS);
	assert_true(
	    lmt_metric(w.http, "lunamatch_ingest_refills_total{reason=\"age\"}") == 0);
	assert_true(lmt_metric(w.http,
	                "lunamatch_ingest_refill_deleted_total{kind=\"posting\"}") == 1);
	assert_true(lmt_metric(w.http, "lunamatch_ingest_refilling") == 0);
	assert_non_null(log = lmt_read_file(w.errlog, NULL));
	if (strstr(log, "resuming the refill") == NULL)
		fail_msg("the refill was not resumed (%s)", w.errlog);
	free(log);
	lmt_proc_stop(&w.ingest, STOP_MS);
	world_free(&w);
}
#else
static void
test_stale_store(void **state)
{
	(void) state;
	skip(); /* the clock shim is not built with sanitizers */
}
#endif

static int
group_setup(void **state)
{
	(void) state;
	lm_log_set_level(LM_LOG_WARN);
	lmt_run_id(G.run, sizeof(G.run), "");
	G.real = lmt_kafka_real_brokers() != NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_flow),
	    cmocka_unit_test(test_compliance),
	    cmocka_unit_test(test_sigkill),
	    cmocka_unit_test(test_outage),
	    cmocka_unit_test(test_restart_broker_down),
	    cmocka_unit_test(test_replay),
	    cmocka_unit_test(test_stop_broker_gone),
	    cmocka_unit_test(test_txn_markers),
	    cmocka_unit_test(test_stale_store),
	};
	/* LMT_TEST_FILTER=test_outage runs one test (a cmocka glob). */
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
