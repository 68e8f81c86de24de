/*
 * test_rpc_server.c - the RPC server framework and the C client, over real
 * nng sockets on 127.0.0.1 and ipc:// in a temporary directory.
 *
 * The service under test is MatchService from match.proto with handlers
 * defined here: Check reports lm_rpc_server_serving(); GetPosting echoes the
 * id or answers NOT_FOUND for "missing" (and, naming the id as the
 * service does, for ids that start with "missing-"); MatchJobs sleeps top_k
 * milliseconds (to exercise deadlines, the queue and drain). The other
 * methods have no handler (UNIMPLEMENTED). test_held_reply gives GetPosting
 * a commit that holds its reply until the test releases it.
 */
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "lmtest.h"
#include "lunamatch/client.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/metrics.h"
#include "lunamatch/pb.h"
#include "lunamatch/rpc.h"
#include "lunamatch/v1/match.pb-c.h"
#include "rpc_server.h"

#define OK_        LUNAMATCH__V1__STATUS_CODE__OK
#define INVALID_   LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT
#define DEADLINE_  LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED
#define NOT_FOUND_ LUNAMATCH__V1__STATUS_CODE__NOT_FOUND
#define EXHAUSTED_ LUNAMATCH__V1__STATUS_CODE__RESOURCE_EXHAUSTED
#define UNIMPL_    LUNAMATCH__V1__STATUS_CODE__UNIMPLEMENTED
#define UNAVAIL_   LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE

/* ---- the test service ------------------------------------------------ */

static lm_rpc_server *g_server; /* read by the Check handler */
static atomic_int g_getposting_calls;
static atomic_int g_matchjobs_running;
static atomic_int g_matchjobs_calls; /* handler runs, ever */

static int
h_check(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	(void) arg, (void) ctx, (void) req, (void) msg, (void) msglen;
	Lunamatch__V1__HealthCheckResponse *r = malloc(sizeof(*r));
	if (r == NULL)
		return LUNAMATCH__V1__STATUS_CODE__INTERNAL;
	lunamatch__v1__health_check_response__init(r);
	r->status =
	    lm_rpc_server_serving(g_server)
	        ? LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
	        : LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	*resp = &r->base;
	return OK_;
}

static int
h_get_posting(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	(void) arg;
	const Lunamatch__V1__GetPostingRequest *in = (const void *) req;
	atomic_fetch_add(&g_getposting_calls, 1);
	assert_string_equal(ctx->method, "GetPosting");
	if (strcmp(in->id, "missing") == 0) {
		snprintf(msg, msglen, "posting not found");
		return NOT_FOUND_;
	}
	if (strncmp(in->id, "missing-", 8) == 0) {
		snprintf(msg, msglen, "posting \"%s\" not found", in->id);
		return NOT_FOUND_;
	}
	Lunamatch__V1__GetPostingResponse *r = malloc(sizeof(*r));
	Lunamatch__V1__JobPosting *p = malloc(sizeof(*p));
	assert_non_null(r);
	assert_non_null(p);
	lunamatch__v1__get_posting_response__init(r);
	lunamatch__v1__job_posting__init(p);
	p->id = strdup(in->id);
	assert_non_null(p->id);
	/* Echo the first metadata value as the title, to test metadata. */
	if (ctx->n_metadata > 0) {
		p->title = strdup(ctx->metadata[0]->value);
		assert_non_null(p->title);
	}
	r->posting = p;
	*resp = &r->base;
	return OK_;
}

static int
h_match_jobs(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	(void) arg, (void) ctx, (void) msg, (void) msglen;
	const Lunamatch__V1__MatchJobsRequest *in = (const void *) req;
	atomic_fetch_add(&g_matchjobs_calls, 1);
	atomic_fetch_add(&g_matchjobs_running, 1);
	nng_msleep(in->top_k < 5000 ? in->top_k : 5000);
	atomic_fetch_sub(&g_matchjobs_running, 1);
	Lunamatch__V1__MatchJobsResponse *r = malloc(sizeof(*r));
	assert_non_null(r);
	lunamatch__v1__match_jobs_response__init(r);
	r->considered = in->top_k;
	*resp = &r->base;
	return OK_;
}

static const lm_rpc_method g_methods[] = {
    {"Check", h_check, NULL},
    {"GetPosting", h_get_posting, NULL},
    {"MatchJobs", h_match_jobs, NULL},
};

/* ---- helpers ----------------------------------------------------------- */

struct fixture {
	lm_rpc_server *s;
	lm_metrics *m;
	char url[256];
	char *dir;
};

/* Starts a server with the n methods of table m and the receive hook
 * (lm_rpc_server_set_recv_hook; NULL: none). */
static void
server_up_hooked(struct fixture *f, lm_rpc_server_opts o, const lm_rpc_method *m,
    size_t n, void (*hook)(void *arg), void *hook_arg)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(lm_metrics_new(&f->m), LM_OK);
	if (o.url == NULL)
		o.url = "tcp://127.0.0.1:0";
	o.metrics = f->m;
	assert_int_equal(lm_rpc_server_new(&o, &lunamatch__v1__match_service__descriptor,
	                     m, n, NULL, &f->s),
	    LM_OK);
	if (hook != NULL)
		lm_rpc_server_set_recv_hook(f->s, hook, hook_arg);
	g_server = f->s;
	assert_int_equal(lm_rpc_server_start(f->s), LM_OK);
	assert_int_equal(lm_rpc_server_url(f->s, f->url, sizeof(f->url)), LM_OK);
	atomic_store(&g_getposting_calls, 0);
}

/* Starts a server with the n methods of table m. */
static void
server_up_with(struct fixture *f, lm_rpc_server_opts o, const lm_rpc_method *m, size_t n)
{
	server_up_hooked(f, o, m, n, NULL, NULL);
}

static void
server_up(struct fixture *f, lm_rpc_server_opts o)
{
	server_up_with(f, o, g_methods, 3);
}

static void
server_down(struct fixture *f)
{
	lm_rpc_server_free(f->s);
	g_server = NULL;
	lm_metrics_free(f->m);
	lmt_rmtree(f->dir);
	free(f->dir);
}

static uint64_t
counter(lm_metrics *m, const char *name, const char *labels)
{
	return lm_counter_get(lm_metrics_counter(m, name, NULL, labels));
}

static uint64_t
requests(lm_metrics *m, const char *method, const char *code)
{
	char labels[128];
	snprintf(labels, sizeof(labels), "method=\"%s\",code=\"%s\"", method, code);
	return counter(m, "lunamatch_rpc_requests_total", labels);
}

static uint64_t
rejected(lm_metrics *m, const char *reason)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	return counter(m, "lunamatch_rpc_rejected_total", labels);
}

/* Serialized RpcRequest; the caller frees *out. */
static size_t
envelope(const char *method, const char *reqid, uint32_t timeout_ms,
    const uint8_t *payload, size_t plen, size_t nmeta, uint8_t **out)
{
	Lunamatch__V1__RpcRequest r = LUNAMATCH__V1__RPC_REQUEST__INIT;
	Lunamatch__V1__MetadataEntry e = LUNAMATCH__V1__METADATA_ENTRY__INIT;
	Lunamatch__V1__MetadataEntry *md[64];
	assert_true(nmeta <= 64);
	e.key = "k";
	e.value = "v";
	for (size_t i = 0; i < nmeta; i++)
		md[i] = &e;
	r.method = (char *) method;
	r.request_id = (char *) reqid;
	r.timeout_ms = timeout_ms;
	r.payload.data = (uint8_t *) payload;
	r.payload.len = plen;
	r.metadata = md;
	r.n_metadata = nmeta;
	size_t n = protobuf_c_message_get_packed_size(&r.base);
	*out = malloc(n + 1);
	assert_non_null(*out);
	protobuf_c_message_pack(&r.base, *out);
	return n;
}

/* Sends raw bytes on a fresh REQ socket and decodes the answer; NULL when
 * nothing (decodable) came back within timeout_ms. */
static Lunamatch__V1__RpcResponse *
raw_call(const char *url, const uint8_t *buf, size_t len, unsigned timeout_ms)
{
	nng_socket sock;
	nng_msg *msg = NULL;
	Lunamatch__V1__RpcResponse *r = NULL;

	assert_int_equal(nng_req0_open(&sock), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (int) timeout_ms), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (int) timeout_ms), 0);
	assert_int_equal(nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 1 << 20), 0);
	if (nng_dial(sock, url, NULL, 0) != 0)
		goto done;
	if (nng_send(sock, (void *) buf, len, 0) != 0)
		goto done;
	if (nng_recvmsg(sock, &msg, 0) != 0)
		goto done;
	r = lunamatch__v1__rpc_response__unpack(
	    NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
done:
	nng_close(sock);
	return r;
}

static Lunamatch__V1__RpcResponse *
raw_envelope_call(const char *url, const char *method, const char *reqid,
    uint32_t timeout_ms, const ProtobufCMessage *payload, size_t nmeta)
{
	uint8_t pbuf[4096], *env;
	size_t plen = 0;
	if (payload != NULL) {
		plen = protobuf_c_message_get_packed_size(payload);
		assert_true(plen <= sizeof(pbuf));
		protobuf_c_message_pack(payload, pbuf);
	}
	size_t n = envelope(method, reqid, timeout_ms, pbuf, plen, nmeta, &env);
	Lunamatch__V1__RpcResponse *r = raw_call(url, env, n, 5000);
	free(env);
	return r;
}

static int
get_posting(lm_client *c, const char *id, unsigned timeout_ms, char **got_id, char *err,
    size_t errlen)
{
	Lunamatch__V1__GetPostingRequest req = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	Lunamatch__V1__GetPostingResponse *resp = NULL;
	int status = -1;
	req.id = (char *) id;
	int rv = lm_client_get_posting(c, &req, timeout_ms, &resp, &status, err, errlen);
	if (got_id != NULL)
		*got_id = NULL;
	if (rv != LM_OK)
		return -1 - rv; /* negative: no answer */
	if (status == OK_) {
		assert_non_null(resp);
		assert_non_null(resp->posting);
		if (got_id != NULL)
			*got_id = strdup(resp->posting->id);
		lunamatch__v1__get_posting_response__free_unpacked(resp, NULL);
	} else {
		assert_null(resp);
	}
	return status;
}

static int
match_jobs(lm_client *c, uint32_t sleep_ms, unsigned timeout_ms, int *rv_out, char *err,
    size_t errlen)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	int status = -1;
	req.candidate_id = "c1";
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.top_k = sleep_ms;
	int rv = lm_client_match_jobs(c, &req, timeout_ms, &resp, &status, err, errlen);
	if (rv_out != NULL)
		*rv_out = rv;
	if (resp != NULL) {
		assert_int_equal(resp->considered, sleep_ms);
		lunamatch__v1__match_jobs_response__free_unpacked(resp, NULL);
	}
	return status;
}

static int
check(lm_client *c, unsigned timeout_ms, int *serving)
{
	Lunamatch__V1__HealthCheckRequest req = LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *resp = NULL;
	int status = -1;
	char err[256];
	int rv = lm_client_check(c, &req, timeout_ms, &resp, &status, err, sizeof(err));
	if (rv != LM_OK)
		return -1;
	if (serving != NULL)
		*serving = resp ? (int) resp->status : -1;
	if (resp != NULL)
		lunamatch__v1__health_check_response__free_unpacked(resp, NULL);
	return status;
}

/* Waits until *v >= want or timeout_ms passes; returns whether it did. */
static bool
wait_atomic(atomic_int *v, int want, unsigned timeout_ms)
{
	nng_time end = nng_clock() + timeout_ms;
	while (atomic_load(v) < want) {
		if (nng_clock() > end)
			return false;
		nng_msleep(2);
	}
	return true;
}

/* ---- tests ------------------------------------------------------------- */

/* The reply to a GetPosting of id, as the bytes that came back. */
static nng_msg *
get_posting_bytes(const char *url, const char *id)
{
	Lunamatch__V1__GetPostingRequest req = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	uint8_t pbuf[1024], *env;
	nng_socket sock;
	nng_msg *msg = NULL;
	size_t plen, n;

	req.id = (char *) id;
	plen = protobuf_c_message_get_packed_size(&req.base);
	assert_true(plen <= sizeof(pbuf));
	protobuf_c_message_pack(&req.base, pbuf);
	n = envelope(
	    "/lunamatch.v1.MatchService/GetPosting", "bytes", 5000, pbuf, plen, 0, &env);
	assert_int_equal(nng_req0_open(&sock), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000), 0);
	assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
	assert_int_equal(nng_send(sock, env, n, 0), 0);
	assert_int_equal(nng_recvmsg(sock, &msg, 0), 0);
	nng_close(sock);
	free(env);
	return msg;
}

/* The server packs the response message straight into the reply: the
 * bytes are exactly those protobuf-c writes for the same RpcResponse, with
 * a payload whose length takes one varint byte and one that takes two. */
static void
test_reply_bytes(void **state)
{
	(void) state;
	struct fixture f;
	char long_id[300];

	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	server_up(&f, (lm_rpc_server_opts){.contexts = 4, .workers = 1});
	const char *ids[] = {"job-1", long_id};
	for (size_t i = 0; i < 2; i++) {
		nng_msg *msg = get_posting_bytes(f.url, ids[i]);
		Lunamatch__V1__RpcResponse *r = lunamatch__v1__rpc_response__unpack(
		    NULL, nng_msg_len(msg), nng_msg_body(msg));
		assert_non_null(r);
		assert_int_equal(r->code, OK_);
		assert_true(i == 0 ? r->payload.len < 128 : r->payload.len >= 128);
		size_t n = protobuf_c_message_get_packed_size(&r->base);
		uint8_t *want = malloc(n);
		assert_non_null(want);
		protobuf_c_message_pack(&r->base, want);
		assert_int_equal(nng_msg_len(msg), n);
		assert_memory_equal(nng_msg_body(msg), want, n);
		Lunamatch__V1__GetPostingResponse *gp =
		    lunamatch__v1__get_posting_response__unpack(
		        NULL, r->payload.len, r->payload.data);
		assert_non_null(gp);
		assert_string_equal(gp->posting->id, ids[i]);
		lunamatch__v1__get_posting_response__free_unpacked(gp, NULL);
		free(want);
		lunamatch__v1__rpc_response__free_unpacked(r, NULL);
		nng_msg_free(msg);
	}
	server_down(&f);
}

static void
test_status_paths(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c;
	char err[LM_RPC_MAX_MESSAGE], *id = NULL;
	int serving = -1;

	server_up(&f, (lm_rpc_server_opts){.contexts = 8, .workers = 2});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);

	/* OK, from a typed helper, with the server's serving flag. */
	assert_int_equal(check(c, 2000, &serving), OK_);
	assert_int_equal(
	    serving, LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	lm_rpc_server_set_serving(f.s, false);
	assert_int_equal(check(c, 2000, &serving), OK_);
	assert_int_equal(
	    serving, LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
	lm_rpc_server_set_serving(f.s, true);

	assert_int_equal(get_posting(c, "job-1", 2000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "job-1");
	assert_string_equal(err, "");
	free(id);

	/* NOT_FOUND from the handler, with its message. */
	assert_int_equal(
	    get_posting(c, "missing", 2000, NULL, err, sizeof(err)), NOT_FOUND_);
	assert_string_equal(err, "posting not found");

	/* UNIMPLEMENTED: a method not in the service, one without a handler. */
	Lunamatch__V1__GetProfileRequest gp = LUNAMATCH__V1__GET_PROFILE_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	int status = -1;
	assert_int_equal(lm_client_call(c, "NoSuchMethod", &gp.base,
	                     &lunamatch__v1__get_profile_response__descriptor, 2000,
	                     &resp, &status, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(status, UNIMPL_);
	assert_null(resp);
	assert_non_null(strstr(err, "unknown method"));
	assert_int_equal(lm_client_call(c, "GetProfile", &gp.base,
	                     &lunamatch__v1__get_profile_response__descriptor, 2000,
	                     &resp, &status, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(status, UNIMPL_);
	assert_non_null(strstr(err, "not implemented"));

	/* UNIMPLEMENTED: right method, wrong service prefix. */
	Lunamatch__V1__RpcResponse *r = raw_envelope_call(
	    f.url, "/lunamatch.v1.OtherService/Check", "wrong-svc", 0, NULL, 0);
	assert_non_null(r);
	assert_int_equal(r->code, UNIMPL_);
	assert_string_equal(r->request_id, "wrong-svc");
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);

	/* INVALID_ARGUMENT: a payload that is not a GetPostingRequest. */
	uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99};
	uint8_t *env;
	size_t n = envelope(LM_RPC_METHOD_PREFIX "GetPosting", "bad-payload", 0, junk,
	    sizeof(junk), 0, &env);
	r = raw_call(f.url, env, n, 5000);
	free(env);
	assert_non_null(r);
	assert_int_equal(r->code, INVALID_);
	assert_string_equal(r->request_id, "bad-payload");
	assert_non_null(strstr(r->message, "GetPostingRequest"));
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);

	/* INVALID_ARGUMENT: envelope bytes that are not an RpcRequest. */
	r = raw_call(f.url, junk, sizeof(junk), 5000);
	assert_non_null(r);
	assert_int_equal(r->code, INVALID_);
	assert_string_equal(r->request_id, "");
	assert_non_null(strstr(r->message, "envelope"));
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);

	/* INVALID_ARGUMENT: envelope limits. */
	char longid[LM_RPC_MAX_REQUEST_ID + 2];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	r = raw_envelope_call(f.url, LM_RPC_METHOD_PREFIX "Check", longid, 0, NULL, 0);
	assert_non_null(r);
	assert_int_equal(r->code, INVALID_);
	assert_non_null(strstr(r->message, "request_id"));
	assert_string_equal(r->request_id, "");
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	/* An envelope that decodes but breaks another limit: its request_id
	 * is echoed (docs/rpc.md). */
	r = raw_envelope_call(f.url, LM_RPC_METHOD_PREFIX "Check", "meta", 0, NULL,
	    LM_RPC_MAX_METADATA + 1);
	assert_non_null(r);
	assert_int_equal(r->code, INVALID_);
	assert_non_null(strstr(r->message, "metadata"));
	assert_string_equal(r->request_id, "meta");
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);

	/* Metadata within limits reaches the handler. */
	Lunamatch__V1__GetPostingRequest gq = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	gq.id = "with-meta";
	r = raw_envelope_call(f.url, LM_RPC_METHOD_PREFIX "GetPosting", "m1", 0, &gq.base,
	    LM_RPC_MAX_METADATA);
	assert_non_null(r);
	assert_int_equal(r->code, OK_);
	Lunamatch__V1__GetPostingResponse *gr =
	    lunamatch__v1__get_posting_response__unpack(
	        NULL, r->payload.len, r->payload.data);
	assert_non_null(gr);
	assert_string_equal(gr->posting->id, "with-meta");
	assert_string_equal(gr->posting->title, "v");
	lunamatch__v1__get_posting_response__free_unpacked(gr, NULL);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);

	/* Metrics: a bounded label set; unknown methods under "unknown". */
	assert_int_equal(requests(f.m, "Check", "OK"), 2);
	assert_int_equal(requests(f.m, "GetPosting", "OK"), 2);
	assert_int_equal(requests(f.m, "GetPosting", "NOT_FOUND"), 1);
	assert_int_equal(requests(f.m, "GetPosting", "INVALID_ARGUMENT"), 1);
	assert_int_equal(requests(f.m, "GetProfile", "UNIMPLEMENTED"), 1);
	assert_int_equal(requests(f.m, "unknown", "UNIMPLEMENTED"), 2);
	assert_int_equal(requests(f.m, "unknown", "INVALID_ARGUMENT"), 3);
	assert_int_equal(rejected(f.m, "bad_request"), 3);
	/* The gauge drops when nng reports the send done, which may come just
	 * after the caller already has the answer. */
	lm_gauge *inflight = lm_metrics_gauge(f.m, "lunamatch_rpc_inflight", NULL, NULL);
	nng_time end = nng_clock() + 2000;
	while (lm_gauge_get(inflight) != 0 && nng_clock() < end)
		nng_msleep(2);
	char *text = NULL;
	assert_int_equal(lm_metrics_render(f.m, &text, NULL), LM_OK);
	assert_non_null(
	    strstr(text, "lunamatch_rpc_latency_seconds_count{method=\"Check\"} 2"));
	assert_non_null(strstr(text, "lunamatch_rpc_inflight 0"));
	/* The ceiling of inflight, for an alert on a server at capacity. */
	assert_non_null(strstr(text, "\nlunamatch_rpc_contexts 8\n"));
	free(text);

	lm_client_close(c);
	server_down(&f);
}

static void
test_ipc_and_probe(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c;
	char url[512], err[256], *id = NULL;
	char *dir = lmt_tmpdir("rpc-ipc");

	snprintf(url, sizeof(url), "ipc://%s/rpc.ipc", dir);
	server_up(&f, (lm_rpc_server_opts){.url = url, .contexts = 4, .workers = 2});
	f.dir = dir;
	assert_string_equal(f.url, url);
	assert_int_equal(lm_client_open(url, NULL, &c), LM_OK);
	assert_int_equal(get_posting(c, "ipc-1", 2000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "ipc-1");
	free(id);
	assert_int_equal(lm_rpc_server_probe(f.s, 2000), LM_OK);
	assert_int_equal(requests(f.m, "Check", "OK"), 1);
	assert_int_equal(counter(f.m, "lunamatch_rpc_listener_restarts_total", NULL), 0);
	lm_client_close(c);
	server_down(&f);
}

/*
 * nng #1518: peers that connect and drop before the SP handshake break an
 * ipc listener of nng 1.5.2 (a REQ peer then believes it is connected, but
 * its requests never reach the REP socket). The self-probe notices that its
 * request never arrives and restarts the listener.
 *
 * nng 1.5.2 also leaks the objects of the broken listener (a few KiB per
 * restart, inside nng). So that the leak checker stays meaningful for
 * everything else, this scenario runs in a child process (this program
 * started again with --dead-listener) with leak detection off.
 */
#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #c);  \
			return 1;                                                        \
		}                                                                        \
	} while (0)

static int
dead_listener_scenario(void)
{
	lm_rpc_server *s = NULL;
	lm_metrics *m = NULL;
	lm_client *c = NULL, *c2 = NULL;
	char url[512], err[256], *id = NULL;
	char *dir = lmt_tmpdir("rpc-dead");
	int rc = 1;

	snprintf(url, sizeof(url), "ipc://%s/rpc.ipc", dir);
	lm_rpc_server_opts o = {.url = url, .contexts = 4, .workers = 2};
	CHECK(lm_metrics_new(&m) == LM_OK);
	o.metrics = m;
	CHECK(lm_rpc_server_new(&o, &lunamatch__v1__match_service__descriptor, g_methods,
	          3, NULL, &s) == LM_OK);
	g_server = s;
	CHECK(lm_rpc_server_start(s) == LM_OK);
	CHECK(lm_client_open(url, NULL, &c) == LM_OK);
	CHECK(get_posting(c, "ipc-1", 2000, &id, err, sizeof(err)) == OK_);
	free(id);

	for (int i = 0; i < 5; i++) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/rpc.ipc", dir);
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		CHECK(fd >= 0);
		CHECK(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
		close(fd);
	}
	nng_msleep(50);
	CHECK(lm_rpc_server_probe(s, 1000) == LM_OK);
	/* The breakage is timing-dependent: one restart at most. */
	CHECK(counter(m, "lunamatch_rpc_listener_restarts_total", NULL) <= 1);

	/* New and old clients are served (old ones after reconnecting). */
	CHECK(lm_client_open(url, NULL, &c2) == LM_OK);
	CHECK(get_posting(c2, "ipc-2", 3000, &id, err, sizeof(err)) == OK_);
	CHECK(id != NULL && strcmp(id, "ipc-2") == 0);
	free(id);
	CHECK(get_posting(c, "ipc-3", 3000, &id, err, sizeof(err)) == OK_);
	free(id);
	rc = 0;
	lm_client_close(c2);
	lm_client_close(c);
	lm_rpc_server_free(s);
	lm_metrics_free(m);
	lmt_rmtree(dir);
	free(dir);
	return rc;
}

/*
 * A stop while REQ sockets of this process part-write requests of about
 * 1 MB: nng 1.5.2 may then never finish nng_close (a connection closed
 * mid-write is never torn down and holds nng's one reaper thread, so the
 * server's close waits behind it; a server's own connection part-writing
 * a large reply does the same). Every stop must return within
 * LM_RPC_CLOSE_TIMEOUT_MS and a margin. The scenario ends at the first
 * close nng did not finish, where every later close in the process waits
 * too, which a C client's close must also bound: exit 0; 3 when none of
 * its stops met one. It runs in a child
 * process: the stuck close leaves the server and sockets to the exit.
 */
struct big_sender {
	char url[256];
	nng_socket sock;
	pthread_t t;
};

static void *
big_sends(void *arg)
{
	struct big_sender *b = arg;
	size_t len = 1000 * 1000;
	uint8_t *buf = calloc(1, len);

	if (buf != NULL && nng_req0_open(&b->sock) == 0 &&
	    nng_setopt_ms(b->sock, NNG_OPT_SENDTIMEO, 300) == 0 &&
	    nng_dial(b->sock, b->url, NULL, 0) == 0)
		for (int k = 0; k < 20 && nng_send(b->sock, buf, len, 0) == 0; k++)
			;
	free(buf);
	return NULL;
}

static int
stuck_close_scenario(void)
{
	for (int i = 0; i < 30; i++) {
		lm_rpc_server_opts o = {
		    .url = "tcp://127.0.0.1:0", .contexts = 4, .workers = 2};
		struct big_sender b[3];
		lm_rpc_server *s = NULL;
		lm_metrics *m = NULL;
		char url[256];

		CHECK(lm_metrics_new(&m) == LM_OK);
		o.metrics = m;
		CHECK(lm_rpc_server_new(&o, &lunamatch__v1__match_service__descriptor,
		          g_methods, 3, NULL, &s) == LM_OK);
		g_server = s;
		CHECK(lm_rpc_server_start(s) == LM_OK);
		CHECK(lm_rpc_server_url(s, url, sizeof(url)) == LM_OK);
		for (int j = 0; j < 3; j++) {
			snprintf(b[j].url, sizeof(b[j].url), "%s", url);
			CHECK(pthread_create(&b[j].t, NULL, big_sends, &b[j]) == 0);
		}
		nng_msleep((nng_duration) (i % 17));
		nng_time t0 = nng_clock();
		lm_rpc_server_stop(s);
		nng_time took = nng_clock() - t0;
		CHECK(took < LM_RPC_CLOSE_TIMEOUT_MS + 2000);
		for (int j = 0; j < 3; j++)
			CHECK(pthread_join(b[j].t, NULL) == 0);
		if (lm_rpc_server_close_stuck(s)) {
			/* It waited its bound (nng_clock counts whole milliseconds). */
			CHECK(took + 100 >= LM_RPC_CLOSE_TIMEOUT_MS);
			fprintf(stderr, "stop %d: close stuck, stop took %u ms\n", i,
			    (unsigned) took);
			/* Every close now waits for nng's reaper: a client's too. */
			lm_client *c = NULL;
			CHECK(lm_client_open(url, NULL, &c) == LM_OK);
			t0 = nng_clock();
			lm_client_close(c);
			took = nng_clock() - t0;
			fprintf(stderr, "client close took %u ms\n", (unsigned) took);
			CHECK(took + 100 >= LM_RPC_CLOSE_TIMEOUT_MS &&
			      took < LM_RPC_CLOSE_TIMEOUT_MS + 2000);
			_exit(0);
		}
		/* The clients stay open: closing them may meet the same hang. */
		lm_rpc_server_free(s);
		g_server = NULL;
		lm_metrics_free(m);
	}
	return 3;
}

extern char **environ;

/* Runs this program again with flag, leak detection off, and returns its
 * exit status; fails the test when it takes over timeout_ms. */
static int
run_scenario(const char *flag, nng_duration timeout_ms)
{
	char *envp[256];
	size_t n = 0;

	for (char **e = environ; *e != NULL && n < 250; e++)
		if (strncmp(*e, "ASAN_OPTIONS=", 13) != 0)
			envp[n++] = *e;
	envp[n++] = "ASAN_OPTIONS=detect_leaks=0";
	envp[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execle("/proc/self/exe", "test_rpc_server", flag, (char *) NULL, envp);
		_exit(127);
	}
	int st = 0;
	nng_time end = nng_clock() + timeout_ms;
	pid_t w;
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 && nng_clock() < end)
		nng_msleep(20);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("scenario %s did not finish in %d ms", flag, (int) timeout_ms);
	}
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void
test_ipc_dead_listener(void **state)
{
	(void) state;
	assert_int_equal(run_scenario("--dead-listener", 30000), 0);
}

/* See stuck_close_scenario. Skipped when no stop met the hang. */
static void
test_stop_bounded_when_close_stuck(void **state)
{
	(void) state;
	int rc = run_scenario("--stuck-close", 120000);
	if (rc == 3)
		skip();
	assert_int_equal(rc, 0);
}

struct call_arg {
	const char *url;
	lm_client *shared;
	uint32_t sleep_ms;
	unsigned timeout_ms;
	int status, rv;
	int index, calls, ok;
};

static void *
match_jobs_thread(void *p)
{
	struct call_arg *a = p;
	lm_client *c;
	char err[256];
	assert_int_equal(lm_client_open(a->url, NULL, &c), LM_OK);
	a->status = match_jobs(c, a->sleep_ms, a->timeout_ms, &a->rv, err, sizeof(err));
	lm_client_close(c);
	return NULL;
}

static void
test_deadlines(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c;
	char err[LM_RPC_MAX_MESSAGE];
	pthread_t t;
	int rv = -1;

	server_up(&f, (lm_rpc_server_opts){.contexts = 8, .workers = 1, .queue_len = 8});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);

	/* Late when picked up: the only worker is busy for 400 ms, the call
	 * allows 20 ms. The handler must not run. */
	atomic_store(&g_matchjobs_running, 0);
	struct call_arg a = {.url = f.url, .sleep_ms = 400, .timeout_ms = 3000};
	assert_int_equal(pthread_create(&t, NULL, match_jobs_thread, &a), 0);
	assert_true(wait_atomic(&g_matchjobs_running, 1, 3000));
	Lunamatch__V1__GetPostingRequest gq = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	gq.id = "late";
	Lunamatch__V1__RpcResponse *r = raw_envelope_call(
	    f.url, LM_RPC_METHOD_PREFIX "GetPosting", "late-1", 20, &gq.base, 0);
	assert_non_null(r);
	assert_int_equal(r->code, DEADLINE_);
	assert_string_equal(r->request_id, "late-1");
	assert_non_null(strstr(r->message, "waited"));
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_equal(atomic_load(&g_getposting_calls), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.rv, LM_OK);
	assert_int_equal(a.status, OK_);
	assert_int_equal(rejected(f.m, "expired"), 1);

	/* The handler overruns: 150 ms of work for a 50 ms deadline. The
	 * server's own answer arrives within the client's grace. */
	assert_int_equal(match_jobs(c, 150, 50, &rv, err, sizeof(err)), DEADLINE_);
	assert_int_equal(rv, LM_OK);
	assert_non_null(strstr(err, "before MatchJobs finished"));

	/* A local timeout when the server takes far longer than the grace. */
	assert_int_equal(match_jobs(c, 1000, 20, &rv, err, sizeof(err)), DEADLINE_);
	assert_int_equal(rv, LM_ETIMEDOUT);
	assert_int_equal(requests(f.m, "MatchJobs", "DEADLINE_EXCEEDED"), 1);
	lm_client_close(c);
	server_down(&f);
}

static void
test_queue_full(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c;
	char err[LM_RPC_MAX_MESSAGE];
	pthread_t t1, t2;

	server_up(&f, (lm_rpc_server_opts){.contexts = 8, .workers = 1, .queue_len = 1});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	atomic_store(&g_matchjobs_running, 0);
	struct call_arg a1 = {.url = f.url, .sleep_ms = 600, .timeout_ms = 5000};
	struct call_arg a2 = {.url = f.url, .sleep_ms = 1, .timeout_ms = 5000};
	assert_int_equal(pthread_create(&t1, NULL, match_jobs_thread, &a1), 0);
	assert_true(wait_atomic(&g_matchjobs_running, 1, 3000));
	assert_int_equal(pthread_create(&t2, NULL, match_jobs_thread, &a2), 0);
	/* Wait until the second call sits in the queue (two in flight). */
	lm_gauge *inflight = lm_metrics_gauge(f.m, "lunamatch_rpc_inflight", NULL, NULL);
	nng_time end = nng_clock() + 3000;
	while (lm_gauge_get(inflight) < 2 && nng_clock() < end)
		nng_msleep(2);
	assert_true(lm_gauge_get(inflight) >= 2);

	assert_int_equal(
	    get_posting(c, "overflow", 2000, NULL, err, sizeof(err)), EXHAUSTED_);
	assert_non_null(strstr(err, "queue full"));
	assert_int_equal(rejected(f.m, "queue_full"), 1);
	assert_int_equal(pthread_join(t1, NULL), 0);
	assert_int_equal(pthread_join(t2, NULL), 0);
	assert_int_equal(a1.status, OK_);
	assert_int_equal(a2.status, OK_);
	lm_client_close(c);
	server_down(&f);
}

/* ThreadSanitizer's shadow memory makes each byte of heap cost several in
 * the resident set. */
#if defined(__SANITIZE_THREAD__)
#define RSS_SCALE 3
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RSS_SCALE 3
#endif
#endif
#ifndef RSS_SCALE
#define RSS_SCALE 1
#endif

/*
 * The process's peak resident set (VmHWM) in KiB, after resetting it to
 * the current resident set when reset is true (Linux: /proc/self/
 * clear_refs). -1 when it cannot be read or reset.
 */
static long
peak_rss_kib(bool reset)
{
	char line[256];
	long kib = -1;
	FILE *fp;

	if (reset) {
		if ((fp = fopen("/proc/self/clear_refs", "w")) == NULL)
			return -1;
		if (fputs("5", fp) < 0) {
			fclose(fp);
			return -1;
		}
		if (fclose(fp) != 0)
			return -1;
	}
	if ((fp = fopen("/proc/self/status", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			kib = atol(line + 6);
	fclose(fp);
	return kib;
}

/* An envelope of method and reqid, then two-byte fields (tag, length 0)
 * up to about len bytes; the caller frees *out. */
static size_t
envelope_of_empty_fields(
    const char *method, const char *reqid, uint8_t tag, size_t len, uint8_t **out)
{
	size_t n = envelope(method, reqid, 0, NULL, 0, 0, out);
	uint8_t *p = realloc(*out, len);

	assert_non_null(p);
	assert_true(n < len);
	for (; n + 2 <= len; n += 2) {
		p[n] = tag;
		p[n + 1] = 0;
	}
	*out = p;
	return n;
}

/* Sends the len bytes of buf as one request and checks the answer: code,
 * the echoed request id, a message containing what, and that the peak
 * resident set grew by less than max_kib while the server handled it. */
static void
call_bounded(const char *url, const uint8_t *buf, size_t len, const char *reqid, int code,
    const char *what, long max_kib)
{
	long before = peak_rss_kib(true);
	assert_true(before > 0);
	Lunamatch__V1__RpcResponse *r = raw_call(url, buf, len, 10000);
	long grew = peak_rss_kib(false) - before;
	assert_non_null(r);
	assert_int_equal(r->code, code);
	assert_string_equal(r->request_id, reqid);
	assert_non_null(strstr(r->message, what));
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	if (grew >= max_kib)
		fail_msg("the peak resident set grew by %ld KiB (limit %ld KiB)", grew,
		    max_kib);
}

/*
 * Requests whose wire bytes are tiny fields, each of which would cost a
 * decoded message tens of bytes (4 MiB of them: hundreds of MiB), are
 * refused INVALID_ARGUMENT without that memory: one with more metadata
 * entries than the limit before the envelope is decoded at all (the
 * same answer and count as a few entries too many), and envelopes and
 * payloads of many empty fields once their decode used its budget. The
 * peak resident set of the process shows it: it grows by the request's
 * copies and the budget, under 32 MiB (without the limits: by 180 MiB and
 * more). The densest requests that make sense still go through.
 */
static void
test_decode_amplification(void **state)
{
	(void) state;
	struct fixture f;
	const size_t big = LM_RPC_DEFAULT_MAX_REQUEST - 4096;
	const long max_kib = RSS_SCALE * 64 * 1024;
	uint8_t *env, *payload;
	size_t n;

	server_up(&f, (lm_rpc_server_opts){.contexts = 2, .workers = 1});
	atomic_store(&g_matchjobs_calls, 0);

	/* 2 Mi empty metadata entries (field 4). */
	n = envelope_of_empty_fields(
	    LM_RPC_METHOD_PREFIX "Check", "hostile-meta", 0x22, big, &env);
	call_bounded(f.url, env, n, "hostile-meta", INVALID_,
	    "invalid request envelope: more than 32 metadata entries", max_kib);
	free(env);
	assert_int_equal(rejected(f.m, "bad_request"), 1);
	assert_int_equal(requests(f.m, "unknown", "INVALID_ARGUMENT"), 1);

	/* 2 Mi empty unknown fields (field 6) in a Check envelope. */
	n = envelope_of_empty_fields(
	    LM_RPC_METHOD_PREFIX "Check", "hostile-unknown", 0x32, big, &env);
	call_bounded(f.url, env, n, "", INVALID_, "refused request envelope", max_kib);
	free(env);
	assert_int_equal(rejected(f.m, "bad_request"), 2);
	assert_int_equal(requests(f.m, "Check", "OK"), 0);

	/* A MatchJobsRequest whose filters hold 2 Mi empty exclude_ids. */
	payload = malloc(big);
	assert_non_null(payload);
	size_t plen = 4, flen = big - 64, v = flen;
	memcpy(payload, "\x0a\x02\x63\x31", 4); /* candidate_id = "c1" */
	payload[plen++] = 0x22;                 /* filters, flen bytes */
	for (; v >= 0x80; v >>= 7)
		payload[plen++] = (uint8_t) (v | 0x80);
	payload[plen++] = (uint8_t) v;
	for (size_t i = 0; i < flen; i += 2) {
		payload[plen + i] = 0x3a; /* exclude_ids, "" */
		payload[plen + i + 1] = 0;
	}
	plen += flen;
	n = envelope(LM_RPC_METHOD_PREFIX "MatchJobs", "hostile-payload", 0, payload,
	    plen, 0, &env);
	call_bounded(f.url, env, n, "hostile-payload", INVALID_,
	    "refused lunamatch.v1.MatchJobsRequest payload", max_kib);
	free(env);
	free(payload);
	assert_int_equal(atomic_load(&g_matchjobs_calls), 0);
	assert_int_equal(requests(f.m, "MatchJobs", "INVALID_ARGUMENT"), 1);

	/* The densest request that makes sense: 32 metadata entries and
	 * filters of three lists of 1000 one-letter entries. */
	static char *one[1000];
	for (size_t i = 0; i < 1000; i++)
		one[i] = "x";
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	Lunamatch__V1__MatchJobsRequest mj = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	jf.n_countries = jf.n_categories = jf.n_exclude_ids = 1000;
	jf.countries = jf.categories = jf.exclude_ids = one;
	mj.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	mj.candidate_id = "c1";
	mj.filters = &jf;
	plen = protobuf_c_message_get_packed_size(&mj.base);
	payload = malloc(plen);
	assert_non_null(payload);
	protobuf_c_message_pack(&mj.base, payload);
	n = envelope(LM_RPC_METHOD_PREFIX "MatchJobs", "dense", 0, payload, plen,
	    LM_RPC_MAX_METADATA, &env);
	Lunamatch__V1__RpcResponse *r = raw_call(f.url, env, n, 5000);
	assert_non_null(r);
	assert_int_equal(r->code, OK_);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	free(env);
	free(payload);
	assert_int_equal(atomic_load(&g_matchjobs_calls), 1);
	server_down(&f);
}

/*
 * A request the server cannot decode for want of memory is the server's
 * failure, not the caller's: INTERNAL (docs/rpc.md), counted under that
 * code and not as a bad request, with the caller's request id read from
 * the wire (docs/api.md: an answer without it is not the caller's, and ""
 * comes only with INVALID_ARGUMENT). The failure is injected into the real
 * decode (lm_pb_fail_allocs); the raw client decodes the answer with
 * protobuf-c's own allocator, so only the server's decode meets it.
 */
static void
test_decode_out_of_memory(void **state)
{
	(void) state;
	struct fixture f;
	Lunamatch__V1__RpcResponse *r;

	server_up(&f, (lm_rpc_server_opts){.contexts = 2, .workers = 1});
	lm_pb_fail_allocs(1);
	r = raw_envelope_call(f.url, LM_RPC_METHOD_PREFIX "Check", "oom-1", 0, NULL, 0);
	lm_pb_fail_allocs(0);
	assert_non_null(r);
	assert_int_equal(r->code, LUNAMATCH__V1__STATUS_CODE__INTERNAL);
	assert_string_equal(r->request_id, "oom-1");
	assert_non_null(strstr(r->message, "out of memory"));
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_equal(requests(f.m, "unknown", "INTERNAL"), 1);
	assert_int_equal(requests(f.m, "unknown", "INVALID_ARGUMENT"), 0);
	assert_int_equal(rejected(f.m, "bad_request"), 0);

	/* The next request is served. */
	r = raw_envelope_call(f.url, LM_RPC_METHOD_PREFIX "Check", "oom-2", 0, NULL, 0);
	assert_non_null(r);
	assert_int_equal(r->code, OK_);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	server_down(&f);
}

static void
test_oversize(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c;
	char err[LM_RPC_MAX_MESSAGE], *id = NULL;
	size_t big = 8 * 1024, huge = LM_RPC_OVERSIZE_GRACE + 64 * 1024;
	char *s = malloc(huge + 1);
	assert_non_null(s);

	server_up(&f,
	    (lm_rpc_server_opts){.contexts = 4, .workers = 2, .max_request_bytes = 4096});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);

	/* Over the limit, within nng's grace: answered and counted. */
	memset(s, 'a', big);
	s[big] = '\0';
	assert_int_equal(get_posting(c, s, 2000, NULL, err, sizeof(err)), EXHAUSTED_);
	assert_non_null(strstr(err, "exceeds the limit of 4096 bytes"));
	assert_int_equal(rejected(f.m, "too_large"), 1);
	/* At the end of the grace exactly (nng counts the REQ header in the
	 * size it limits): still answered. */
	memset(s, 0, 4096 + LM_RPC_OVERSIZE_GRACE);
	Lunamatch__V1__RpcResponse *r =
	    raw_call(f.url, (const uint8_t *) s, 4096 + LM_RPC_OVERSIZE_GRACE, 3000);
	assert_non_null(r);
	assert_int_equal(r->code, EXHAUSTED_);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_equal(rejected(f.m, "too_large"), 2);

	/* Far over: nng drops the message with its connection, and the
	 * client's REQ sees the connection reset at once, not its deadline
	 * pass; the error says that a size limit may be why. */
	memset(s, 'b', huge);
	s[huge] = '\0';
	nng_time t0 = nng_clock();
	int st = get_posting(c, s, 10000, NULL, err, sizeof(err));
	assert_int_equal(st, -1 - LM_ENNG);
	assert_true(nng_clock() - t0 < 5000);
	assert_non_null(strstr(err, "size limit"));
	assert_int_equal(atomic_load(&g_getposting_calls), 0);

	/* The server keeps serving, also on the same client. */
	assert_int_equal(get_posting(c, "small", 3000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "small");
	free(id);
	free(s);
	lm_client_close(c);
	server_down(&f);
}

/* Writes bytes to the server's TCP port with a plain socket, then closes. */
static void
tcp_garbage(const char *url, const void *buf, size_t len)
{
	const char *colon = strrchr(url, ':');
	assert_non_null(colon);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_port = htons((uint16_t) atoi(colon + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	if (len > 0)
		assert_int_equal(write(fd, buf, len), (ssize_t) len);
	nng_msleep(20);
	close(fd);
}

static void
test_tcp_garbage(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c;
	char err[256], *id = NULL, junk[1024];

	server_up(&f, (lm_rpc_server_opts){.contexts = 4, .workers = 2});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	assert_int_equal(get_posting(c, "before", 3000, &id, err, sizeof(err)), OK_);
	free(id);

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char) (i * 37 + 11);
	tcp_garbage(f.url, junk, sizeof(junk));
	tcp_garbage(f.url, "GET / HTTP/1.0\r\n\r\n", 18);
	/* A peer that drops mid-handshake: half an SP header, then nothing. */
	tcp_garbage(f.url, "\0SP\0", 4);
	tcp_garbage(f.url, NULL, 0);

	/* The established connection still works. */
	assert_int_equal(get_posting(c, "after", 3000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "after");
	free(id);
	/* New connections work too; the self-probe restarts a dead listener. */
	assert_int_equal(lm_rpc_server_probe(f.s, 2000), LM_OK);
	lm_client *c2;
	assert_int_equal(lm_client_open(f.url, NULL, &c2), LM_OK);
	assert_int_equal(get_posting(c2, "new-conn", 3000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "new-conn");
	free(id);
	lm_client_close(c2);
	lm_client_close(c);
	server_down(&f);
}

/*
 * Under saturation (slow handlers, more clients than contexts) the
 * self-probe's request waits behind the backlog and goes unanswered. That
 * is a busy server, not a dead listener: the probe reports LM_ETIMEDOUT or
 * LM_OK, never restarts the listener, and no call fails.
 */
#define SAT_CLIENTS 24
#define SAT_CALLS   3

static void *
saturating_thread(void *p)
{
	struct call_arg *a = p;
	lm_client *c;
	char err[256];
	int rv;

	assert_int_equal(lm_client_open(a->url, NULL, &c), LM_OK);
	for (int i = 0; i < a->calls; i++)
		if (match_jobs(c, a->sleep_ms, a->timeout_ms, &rv, err, sizeof(err)) ==
		        OK_ &&
		    rv == LM_OK)
			a->ok++;
	lm_client_close(c);
	return NULL;
}

static void
test_probe_under_saturation(void **state)
{
	(void) state;
	struct fixture f;
	pthread_t t[SAT_CLIENTS];
	struct call_arg a[SAT_CLIENTS];
	int probes = 0, busy = 0;

	server_up(&f, (lm_rpc_server_opts){.contexts = 4, .workers = 2, .queue_len = 4});
	atomic_store(&g_matchjobs_running, 0);
	for (int i = 0; i < SAT_CLIENTS; i++) {
		a[i] = (struct call_arg){.url = f.url,
		    .sleep_ms = 60,
		    .timeout_ms = 30000,
		    .calls = SAT_CALLS,
		    .index = i};
		assert_int_equal(
		    pthread_create(&t[i], NULL, saturating_thread, &a[i]), 0);
	}
	assert_true(wait_atomic(&g_matchjobs_running, 2, 5000));
	/* 72 calls of 60 ms on 2 workers take over 2 s; probe meanwhile. */
	nng_time end = nng_clock() + 1500;
	while (nng_clock() < end && probes < 10) {
		int rv = lm_rpc_server_probe(f.s, 100);
		assert_true(rv == LM_OK || rv == LM_ETIMEDOUT);
		busy += rv == LM_ETIMEDOUT;
		probes++;
	}
	int total = 0;
	for (int i = 0; i < SAT_CLIENTS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		total += a[i].ok;
	}
	assert_true(busy > 0); /* the probes did meet a saturated server */
	assert_int_equal(counter(f.m, "lunamatch_rpc_listener_restarts_total", NULL), 0);
	assert_int_equal(total, SAT_CLIENTS * SAT_CALLS);
	assert_int_equal(requests(f.m, "MatchJobs", "OK"), SAT_CLIENTS * SAT_CALLS);
	/* Idle again: the probe is answered. */
	assert_int_equal(lm_rpc_server_probe(f.s, 2000), LM_OK);
	server_down(&f);
}

/* Every series the server can touch from an nng callback exists before the
 * first request, so the callbacks never register (and never take the
 * registry mutex). */
static void
test_metrics_preregistered(void **state)
{
	(void) state;
	struct fixture f;
	char *text = NULL, want[256];
	const char *codes[] = {"OK", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	    "RESOURCE_EXHAUSTED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
	    "UNAUTHENTICATED"};
	const char *methods[] = {"Check", "GetPosting", "MatchJobs", "unknown"};
	const char *reasons[] = {
	    "queue_full", "too_large", "draining", "expired", "bad_request"};

	server_up(&f, (lm_rpc_server_opts){.contexts = 2, .workers = 1});
	assert_int_equal(lm_metrics_render(f.m, &text, NULL), LM_OK);
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		for (size_t j = 0; j < sizeof(codes) / sizeof(codes[0]); j++) {
			snprintf(want, sizeof(want),
			    "\nlunamatch_rpc_requests_total{method=\"%s\",code=\"%s\"} "
			    "0\n",
			    methods[i], codes[j]);
			assert_non_null(strstr(text, want));
		}
		snprintf(want, sizeof(want),
		    "\nlunamatch_rpc_latency_seconds_count{method=\"%s\"} 0\n",
		    methods[i]);
		assert_non_null(strstr(text, want));
	}
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		snprintf(want, sizeof(want),
		    "\nlunamatch_rpc_rejected_total{reason=\"%s\"} 0\n", reasons[i]);
		assert_non_null(strstr(text, want));
	}
	assert_non_null(strstr(text, "\nlunamatch_rpc_listener_restarts_total 0\n"));
	assert_non_null(strstr(text, "\nlunamatch_rpc_connections_aged_total 0\n"));
	assert_non_null(strstr(text, "# HELP lunamatch_rpc_connections_aged_total RPC "));
	free(text);
	server_down(&f);
}

/* A connection that sends nothing for idle_timeout_ms is closed (counted;
 * an idle REQ client's dialer reconnects, and is closed again); one that
 * keeps sending stays on the same connection; the idle client's next request
 * is answered over a new one. */
static void
test_idle_timeout(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *idle;
	nng_socket busy;
	char err[256], *id = NULL;
	uint8_t *env;
	uint32_t pipe0 = 0;

	server_up(&f,
	    (lm_rpc_server_opts){.contexts = 4, .workers = 2, .idle_timeout_ms = 400});
	assert_int_equal(lm_client_open(f.url, NULL, &idle), LM_OK);
	assert_int_equal(get_posting(idle, "i1", 3000, &id, err, sizeof(err)), OK_);
	free(id);
	size_t n = envelope(LM_RPC_METHOD_PREFIX "Check", "busy", 0, NULL, 0, 0, &env);
	assert_int_equal(nng_req0_open(&busy), 0);
	assert_int_equal(nng_socket_set_ms(busy, NNG_OPT_RECVTIMEO, 3000), 0);
	assert_int_equal(nng_dial(busy, f.url, NULL, 0), 0);
	/* busy asks every 100 ms for 2 s, always over the same pipe. */
	for (int i = 0; i < 20; i++) {
		nng_msg *m = NULL;
		assert_int_equal(nng_send(busy, env, n, 0), 0);
		assert_int_equal(nng_recvmsg(busy, &m, 0), 0);
		uint32_t p = (uint32_t) nng_pipe_id(nng_msg_get_pipe(m));
		nng_msg_free(m);
		if (i == 0)
			pipe0 = p;
		assert_int_equal(p, pipe0);
		lmt_sleep_ms(100);
	}
	free(env);
	nng_close(busy);
	assert_true(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL) >= 1);
	int st = -1;
	for (int i = 0; i < 20 && st != OK_; i++)
		st = get_posting(idle, "i2", 500, &id, err, sizeof(err));
	assert_int_equal(st, OK_);
	assert_string_equal(id, "i2");
	free(id);
	lm_client_close(idle);
	server_down(&f);
}

/* Two clients on f are served; a third is refused (counted with reason). */
static void
two_served_third_refused(struct fixture *f, lm_client *c[3], const char *reason)
{
	char err[256], labels[64], *id = NULL;

	assert_int_equal(lm_client_open(f->url, NULL, &c[0]), LM_OK);
	assert_int_equal(lm_client_open(f->url, NULL, &c[1]), LM_OK);
	assert_int_equal(get_posting(c[0], "one", 3000, &id, err, sizeof(err)), OK_);
	free(id);
	assert_int_equal(get_posting(c[1], "two", 3000, &id, err, sizeof(err)), OK_);
	free(id);
	assert_int_equal(lm_client_open(f->url, NULL, &c[2]), LM_OK);
	assert_true(get_posting(c[2], "three", 300, NULL, err, sizeof(err)) < 0);
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	assert_true(
	    counter(f->m, "lunamatch_rpc_connections_refused_total", labels) >= 1);
}

/* The second client leaves; the refused third takes its place (its REQ
 * socket redials). Closes the clients. */
static void
freed_place_taken(lm_client *c[3])
{
	char err[256], *id = NULL;
	int st = -1;

	lm_client_close(c[1]);
	for (int i = 0; i < 20 && st != OK_; i++)
		st = get_posting(c[2], "three", 500, &id, err, sizeof(err));
	assert_int_equal(st, OK_);
	assert_string_equal(id, "three");
	free(id);
	lm_client_close(c[2]);
	lm_client_close(c[0]);
}

/* At max_connections_per_peer from one address, that address's next
 * connection is closed at once while the server still has room for others;
 * a freed place is taken again. */
static void
test_connection_limit_per_peer(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c[3];

	server_up(&f, (lm_rpc_server_opts){.contexts = 4,
	                  .workers = 2,
	                  .max_connections = 8,
	                  .max_connections_per_peer = 2});
	two_served_third_refused(&f, c, "per_peer");
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_refused_total", "reason=\"full\""),
	    0);
	assert_false(lm_rpc_server_full(f.s));
	freed_place_taken(c);
	server_down(&f);
}

/* A burst of connections from one address at its per-peer limit, on a
 * server one connection short of full: each is refused per_peer, even
 * while the refused ones before it still close and fill the cap, and the
 * server stays ready (it has room for another address). Before, those
 * that came while others closed were counted as full, and the server
 * reported itself full. */
#define BURST 32
static void
test_connection_limit_per_peer_burst(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c[3];
	nng_socket s[BURST];
	bool busy_seen = false;

	server_up(&f, (lm_rpc_server_opts){.contexts = 4,
	                  .workers = 2,
	                  .max_connections = 3,
	                  .max_connections_per_peer = 2});
	two_served_third_refused(&f, c, "per_peer");
	for (int i = 0; i < BURST; i++) {
		assert_int_equal(nng_req0_open(&s[i]), 0);
		assert_int_equal(nng_dial(s[i], f.url, NULL, NNG_FLAG_NONBLOCK), 0);
	}
	/* Refusals for the peer's limit, one for each burst connection and the
	 * third client's at least (REQ sockets redial, so some are counted
	 * more than once), within 5 s; meanwhile the server never calls
	 * itself full. */
	for (int i = 0; i < 500 && counter(f.m, "lunamatch_rpc_connections_refused_total",
	                               "reason=\"per_peer\"") < BURST + 1;
	     i++) {
		busy_seen |= lm_rpc_server_full(f.s);
		nng_msleep(10);
	}
	assert_true(counter(f.m, "lunamatch_rpc_connections_refused_total",
	                "reason=\"per_peer\"") >= BURST + 1);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_refused_total", "reason=\"full\""),
	    0);
	assert_false(busy_seen);
	for (int i = 0; i < BURST; i++)
		nng_close(s[i]);
	freed_place_taken(c);
	server_down(&f);
}

/* At max_connections further connections are closed as soon as they are
 * accepted, the open ones are served, the self-probe does not take the
 * refusal for a dead listener, and a freed place is taken again. */
static void
test_connection_limit(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c[3];
	char err[256], *id = NULL;

	server_up(
	    &f, (lm_rpc_server_opts){.contexts = 4, .workers = 2, .max_connections = 2});
	two_served_third_refused(&f, c, "full");
	/* Refusing new clients: the service must not report itself ready. */
	assert_true(lm_rpc_server_full(f.s));
	/* The gauge counts the admitted connections: a refused one never
	 * shows. */
	lm_gauge *g = lm_metrics_gauge(f.m, "lunamatch_rpc_connections", NULL, NULL);
	assert_true(lm_gauge_get(g) == 2);
	assert_int_equal(lm_rpc_server_probe(f.s, 300), LM_ETIMEDOUT);
	assert_int_equal(counter(f.m, "lunamatch_rpc_listener_restarts_total", NULL), 0);
	/* The open connections are still served. */
	assert_int_equal(
	    get_posting(c[0], "one-again", 3000, &id, err, sizeof(err)), OK_);
	free(id);
	freed_place_taken(c);
	server_down(&f);
}

/* The receive budget lowers the connection limit: at 64 KiB requests (128
 * KiB with the grace nng may allocate), a budget of two such requests
 * takes two connections although eight are allowed. */
static void
test_connection_budget(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c[3];

	server_up(&f, (lm_rpc_server_opts){.contexts = 4,
	                  .workers = 2,
	                  .max_request_bytes = 64 * 1024,
	                  .max_connections = 8,
	                  .receive_budget_bytes = 2 * LM_RPC_RECV_MAX(64 * 1024) + 1});
	two_served_third_refused(&f, c, "full");
	assert_true(lm_rpc_server_full(f.s));
	freed_place_taken(c);
	server_down(&f);
}

/* The line of log (JSON lines) with event ev, NUL-terminated in line (at
 * most len bytes); false when there is none. */
static bool
log_line(const char *log, const char *ev, char *line, size_t len)
{
	char want[128];
	const char *at, *start, *end;

	snprintf(want, sizeof(want), "\"event\":\"%s\"", ev);
	if ((at = strstr(log, want)) == NULL)
		return false;
	for (start = at; start > log && start[-1] != '\n'; start--)
		;
	if ((end = strchr(at, '\n')) == NULL)
		end = at + strlen(at);
	snprintf(line, len, "%.*s", (int) (end - start), start);
	return true;
}

/* A connection limit lowered to fit the receive budget or the file
 * descriptor limit is logged (rpc.limits): as a warning when the operator
 * set the limit, as information when it was the default; a limit kept is
 * logged as information. */
static void
test_connection_budget_logged(void **state)
{
	(void) state;
	const size_t budget = 2 * LM_RPC_RECV_MAX(64 * 1024) + 1;
	lm_log_level saved_level = lm_log_get_level();
	struct fixture f;
	lmt_capture cap;
	char *log, line[1024];

	lm_log_set_level(LM_LOG_WARN);
	for (int configured = 1; configured >= 0; configured--) {
		lmt_stderr_begin(&cap);
		server_up(&f, (lm_rpc_server_opts){.contexts = 4,
		                  .workers = 1,
		                  .max_request_bytes = 64 * 1024,
		                  .max_connections = configured ? 8 : 0,
		                  .receive_budget_bytes = budget});
		server_down(&f);
		log = lmt_stderr_end(&cap);
		if (configured) {
			if (!log_line(log, "rpc.limits", line, sizeof(line)))
				fail_msg("no rpc.limits warning in: %s", log);
			assert_non_null(strstr(line, "\"level\":\"warn\""));
			assert_non_null(strstr(line, "at most 2 connections, not 8"));
		} else if (log_line(log, "rpc.limits", line, sizeof(line))) {
			fail_msg("the default limit lowered is not a warning: %s", log);
		}
		free(log);
	}
	lm_log_set_level(LM_LOG_INFO);
	lmt_stderr_begin(&cap);
	server_up(&f, (lm_rpc_server_opts){.contexts = 4,
	                  .workers = 1,
	                  .max_request_bytes = 64 * 1024,
	                  .receive_budget_bytes = budget});
	server_down(&f);
	log = lmt_stderr_end(&cap);
	assert_true(log_line(log, "rpc.limits", line, sizeof(line)));
	assert_non_null(strstr(line, "\"level\":\"info\""));
	assert_non_null(strstr(line, "at most 2 connections, not 4096"));
	free(log);

	/* Lowered to three quarters of the file descriptor limit: a warning
	 * too (before, nothing was logged), and the cap the server keeps is
	 * logged when nothing lowers it. */
	struct rlimit rl, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 200;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	lmt_stderr_begin(&cap);
	server_up(&f, (lm_rpc_server_opts){.contexts = 4,
	                  .workers = 1,
	                  .max_request_bytes = 64 * 1024,
	                  .max_connections = 1000});
	server_down(&f);
	log = lmt_stderr_end(&cap);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(log_line(log, "rpc.limits", line, sizeof(line)));
	assert_non_null(strstr(line, "\"level\":\"warn\""));
	assert_non_null(strstr(line, "at most 150 connections, not 1000"));
	assert_non_null(strstr(line, "file descriptor limit (200)"));
	free(log);
	lmt_stderr_begin(&cap);
	server_up(&f, (lm_rpc_server_opts){.contexts = 4,
	                  .workers = 1,
	                  .max_request_bytes = 64 * 1024,
	                  .max_connections = 100});
	server_down(&f);
	log = lmt_stderr_end(&cap);
	assert_true(log_line(log, "rpc.limits", line, sizeof(line)));
	assert_non_null(strstr(line, "at most 100 connections\""));
	free(log);
	lm_log_set_level(saved_level);
}

#define N_THREADS 64
#define N_CALLS   25

static void *
echo_thread(void *p)
{
	struct call_arg *a = p;
	lm_client *c = a->shared;
	char id[64], err[256], *got = NULL;

	if (c == NULL)
		assert_int_equal(lm_client_open(a->url, NULL, &c), LM_OK);
	for (int i = 0; i < a->calls; i++) {
		snprintf(id, sizeof(id), "t%d-%d", a->index, i);
		int st = get_posting(c, id, 10000, &got, err, sizeof(err));
		if (st == OK_ && got != NULL && strcmp(got, id) == 0)
			a->ok++;
		free(got);
	}
	if (a->shared == NULL)
		lm_client_close(c);
	return NULL;
}

static void
test_concurrent_clients(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *shared;
	pthread_t t[N_THREADS];
	struct call_arg a[N_THREADS];

	server_up(
	    &f, (lm_rpc_server_opts){.contexts = 16, .workers = 4, .queue_len = 64});
	assert_int_equal(lm_client_open(f.url, NULL, &shared), LM_OK);
	/* Even threads have their own client, odd ones share one. */
	for (int i = 0; i < N_THREADS; i++) {
		a[i] = (struct call_arg){.url = f.url,
		    .index = i,
		    .calls = N_CALLS,
		    .shared = (i % 2) ? shared : NULL};
		assert_int_equal(pthread_create(&t[i], NULL, echo_thread, &a[i]), 0);
	}
	int total = 0;
	for (int i = 0; i < N_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		total += a[i].ok;
	}
	assert_int_equal(total, N_THREADS * N_CALLS);
	assert_int_equal(requests(f.m, "GetPosting", "OK"), N_THREADS * N_CALLS);
	lm_client_close(shared);
	server_down(&f);
}

struct drain_arg {
	lm_rpc_server *s;
	int rv;
	unsigned timeout_ms; /* 0: 5000 */
};

static void *
drain_thread(void *p)
{
	struct drain_arg *d = p;
	d->rv = lm_rpc_server_drain(d->s, d->timeout_ms > 0 ? d->timeout_ms : 5000);
	return NULL;
}

/* ---- held replies (commits) --------------------------------------------- */

/* The commit of GetPosting in test_held_reply, by request id: "ok" sends
 * at once, "refuse" answers UNAVAILABLE, "bad" returns an invalid status;
 * any other id is held in g_held until the test calls its done. */
#define HELD_MAX 8
static struct {
	pthread_mutex_t mu;
	lm_rpc_done_fn done;
	void *call;
	int n; /* calls held so far */
	/* The call held as the i-th (i < HELD_MAX) and its request id. */
	void *calls[HELD_MAX];
	char reqids[HELD_MAX][32];
} g_held = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int
c_hold(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    const ProtobufCMessage *resp, lm_rpc_done_fn done, void *call, char *msg,
    size_t msglen)
{
	const Lunamatch__V1__GetPostingResponse *out = (const void *) resp;
	(void) arg;
	(void) req;
	assert_string_equal(
	    out->posting->id, ((const Lunamatch__V1__GetPostingRequest *) req)->id);
	if (strcmp(ctx->request_id, "ok") == 0)
		return OK_;
	if (strcmp(ctx->request_id, "refuse") == 0) {
		snprintf(msg, msglen, "refused by the commit");
		return UNAVAIL_;
	}
	if (strcmp(ctx->request_id, "bad") == 0)
		return 99;
	pthread_mutex_lock(&g_held.mu);
	g_held.done = done;
	g_held.call = call;
	if (g_held.n < HELD_MAX) {
		g_held.calls[g_held.n] = call;
		snprintf(g_held.reqids[g_held.n], sizeof(g_held.reqids[0]), "%s",
		    ctx->request_id);
	}
	g_held.n++;
	pthread_mutex_unlock(&g_held.mu);
	return LM_RPC_HELD;
}

static const lm_rpc_method g_held_methods[] = {
    {"Check", h_check, NULL},
    {"GetPosting", h_get_posting, c_hold},
};

/* Waits (at most 3 s) until n calls were held; returns the last one's
 * done and call. */
static void
held_wait(int n, lm_rpc_done_fn *done, void **call)
{
	nng_time end = nng_clock() + 3000;
	for (;;) {
		pthread_mutex_lock(&g_held.mu);
		int got = g_held.n;
		*done = g_held.done;
		*call = g_held.call;
		pthread_mutex_unlock(&g_held.mu);
		if (got >= n)
			return;
		assert_true(nng_clock() < end);
		nng_msleep(2);
	}
}

struct raw_arg {
	const char *url, *reqid, *id;
	uint32_t timeout_ms;
	unsigned wait_ms; /* for the answer; 0 = 5000 */
	Lunamatch__V1__RpcResponse *resp;
	atomic_bool finished;
};

static void *
raw_thread(void *p)
{
	struct raw_arg *a = p;
	Lunamatch__V1__GetPostingRequest req = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	uint8_t pbuf[256], *env;
	size_t plen, n;
	req.id = (char *) a->id;
	plen = protobuf_c_message_get_packed_size(&req.base);
	assert_true(plen <= sizeof(pbuf));
	protobuf_c_message_pack(&req.base, pbuf);
	n = envelope("/lunamatch.v1.MatchService/GetPosting", a->reqid, a->timeout_ms,
	    pbuf, plen, 0, &env);
	a->resp = raw_call(a->url, env, n, a->wait_ms > 0 ? a->wait_ms : 5000);
	free(env);
	atomic_store(&a->finished, true);
	return NULL;
}

static Lunamatch__V1__RpcResponse *
raw_get_posting(const char *url, const char *reqid, const char *id)
{
	struct raw_arg a = {.url = url, .reqid = reqid, .id = id, .timeout_ms = 5000};
	raw_thread(&a);
	assert_non_null(a.resp);
	assert_string_equal(a.resp->request_id, reqid);
	return a.resp;
}

struct done_arg {
	lm_rpc_done_fn done;
	void *call;
	unsigned after_ms;
	atomic_bool called; /* set just before done is called */
};

static void *
done_thread(void *p)
{
	struct done_arg *a = p;
	nng_msleep(a->after_ms);
	atomic_store(&a->called, true);
	a->done(a->call, OK_, NULL);
	return NULL;
}

/* A commit that holds the reply frees the worker: the reply goes out only
 * when done is called, as made for OK, replaced for another code or a
 * passed deadline; drain and free wait for held calls. */
static void
test_held_reply(void **state)
{
	(void) state;
	struct fixture f;
	lm_rpc_server_opts o = {.contexts = 8, .workers = 1};
	lm_rpc_done_fn done;
	void *call;
	pthread_t t, td;
	Lunamatch__V1__RpcResponse *r;
	Lunamatch__V1__GetPostingResponse *gp;

	server_up_with(&f, o, g_held_methods, 2);
	g_held.n = 0;

	/* Held: no answer yet, and the only worker serves other calls. */
	struct raw_arg a = {
	    .url = f.url, .reqid = "held-1", .id = "job-1", .timeout_ms = 5000};
	assert_int_equal(pthread_create(&t, NULL, raw_thread, &a), 0);
	held_wait(1, &done, &call);
	r = raw_envelope_call(
	    f.url, "/lunamatch.v1.MatchService/Check", "c1", 2000, NULL, 0);
	assert_non_null(r);
	assert_int_equal(r->code, OK_);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_false(atomic_load(&a.finished));
	done(call, OK_, NULL);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(a.resp);
	assert_int_equal(a.resp->code, OK_);
	assert_string_equal(a.resp->request_id, "held-1");
	gp = lunamatch__v1__get_posting_response__unpack(
	    NULL, a.resp->payload.len, a.resp->payload.data);
	assert_non_null(gp);
	assert_string_equal(gp->posting->id, "job-1");
	lunamatch__v1__get_posting_response__free_unpacked(gp, NULL);
	lunamatch__v1__rpc_response__free_unpacked(a.resp, NULL);

	/* Held, then refused: the reply is replaced, the request id kept. */
	struct raw_arg b = {
	    .url = f.url, .reqid = "held-2", .id = "job-2", .timeout_ms = 5000};
	assert_int_equal(pthread_create(&t, NULL, raw_thread, &b), 0);
	held_wait(2, &done, &call);
	done(call, UNAVAIL_, "decision log unavailable: test");
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(b.resp);
	assert_int_equal(b.resp->code, UNAVAIL_);
	assert_string_equal(b.resp->request_id, "held-2");
	assert_string_equal(b.resp->message, "decision log unavailable: test");
	assert_int_equal(b.resp->payload.len, 0);
	lunamatch__v1__rpc_response__free_unpacked(b.resp, NULL);

	/* Held past its deadline: DEADLINE_EXCEEDED, though done said OK. */
	struct raw_arg c = {
	    .url = f.url, .reqid = "held-3", .id = "job-3", .timeout_ms = 100};
	assert_int_equal(pthread_create(&t, NULL, raw_thread, &c), 0);
	held_wait(3, &done, &call);
	nng_msleep(150);
	done(call, OK_, NULL);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(c.resp);
	assert_int_equal(c.resp->code, DEADLINE_);
	assert_non_null(strstr(c.resp->message, "deadline of 100 ms passed"));
	lunamatch__v1__rpc_response__free_unpacked(c.resp, NULL);

	/* Commits that answer at once. */
	r = raw_get_posting(f.url, "ok", "job-4");
	assert_int_equal(r->code, OK_);
	assert_true(r->payload.len > 0);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	r = raw_get_posting(f.url, "refuse", "job-5");
	assert_int_equal(r->code, UNAVAIL_);
	assert_string_equal(r->message, "refused by the commit");
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	r = raw_get_posting(f.url, "bad", "job-6");
	assert_int_equal(r->code, LUNAMATCH__V1__STATUS_CODE__INTERNAL);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	/* A handler's error never reaches the commit. */
	r = raw_get_posting(f.url, "x", "missing");
	assert_int_equal(r->code, NOT_FOUND_);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_equal(g_held.n, 3);
	assert_int_equal(requests(f.m, "GetPosting", "OK"), 2);
	assert_int_equal(requests(f.m, "GetPosting", "UNAVAILABLE"), 2);
	assert_int_equal(requests(f.m, "GetPosting", "DEADLINE_EXCEEDED"), 1);
	assert_int_equal(requests(f.m, "GetPosting", "INTERNAL"), 1);

	/* Drain waits for a held call: it is answered, then drain returns. */
	struct raw_arg d = {
	    .url = f.url, .reqid = "held-4", .id = "job-7", .timeout_ms = 5000};
	assert_int_equal(pthread_create(&t, NULL, raw_thread, &d), 0);
	held_wait(4, &done, &call);
	struct done_arg da = {done, call, 200, false};
	assert_int_equal(pthread_create(&td, NULL, done_thread, &da), 0);
	assert_int_equal(lm_rpc_server_drain(f.s, 5000), LM_OK);
	assert_true(atomic_load(&da.called));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(d.resp);
	assert_int_equal(d.resp->code, OK_);
	lunamatch__v1__rpc_response__free_unpacked(d.resp, NULL);
	assert_int_equal(pthread_join(td, NULL), 0);
	server_down(&f);

	/* Free waits for a held call's done, which comes after the socket
	 * closed (the reply is dropped). */
	server_up_with(&f, o, g_held_methods, 2);
	struct raw_arg e = {.url = f.url,
	    .reqid = "held-5",
	    .id = "job-8",
	    .timeout_ms = 5000,
	    .wait_ms = 1000};
	assert_int_equal(pthread_create(&t, NULL, raw_thread, &e), 0);
	held_wait(5, &done, &call);
	da = (struct done_arg){done, call, 200, false};
	assert_int_equal(pthread_create(&td, NULL, done_thread, &da), 0);
	lm_rpc_server_free(f.s);
	f.s = NULL;
	assert_true(atomic_load(&da.called)); /* free returned after done */
	assert_int_equal(pthread_join(td, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_null(e.resp); /* the socket closed before the answer */
	server_down(&f);
}

/*
 * Five calls held at once on one worker: each reply goes to the client
 * that asked, whatever order their done comes in (here the reverse of the
 * order they were held), also when a client gave up and closed its socket
 * before its done (that reply is dropped by nng, nothing leaks). Counts
 * and the in-flight gauge end right, and the contexts serve again.
 */
static void
test_held_replies_to_their_callers(void **state)
{
	(void) state;
	enum { N = 5, GONE = 2 };
	struct fixture f;
	lm_rpc_server_opts o = {.contexts = N, .workers = 1, .queue_len = N};
	struct raw_arg a[N];
	char reqid[N][16], id[N][16];
	pthread_t t[N];
	lm_rpc_done_fn done;
	void *call;

	server_up_with(&f, o, g_held_methods, 2);
	pthread_mutex_lock(&g_held.mu);
	g_held.n = 0;
	pthread_mutex_unlock(&g_held.mu);
	for (int i = 0; i < N; i++) {
		snprintf(reqid[i], sizeof(reqid[i]), "many-%d", i);
		snprintf(id[i], sizeof(id[i]), "job-m%d", i);
		a[i] = (struct raw_arg){.url = f.url,
		    .reqid = reqid[i],
		    .id = id[i],
		    .timeout_ms = 10000,
		    .wait_ms = i == GONE ? 1000 : 5000};
		assert_int_equal(pthread_create(&t[i], NULL, raw_thread, &a[i]), 0);
	}
	held_wait(N, &done, &call);
	/* The impatient client closes its socket; its call stays held. */
	assert_int_equal(pthread_join(t[GONE], NULL), 0);
	assert_null(a[GONE].resp);
	for (int k = N - 1; k >= 0; k--) {
		pthread_mutex_lock(&g_held.mu);
		void *c = g_held.calls[k];
		pthread_mutex_unlock(&g_held.mu);
		done(c, OK_, NULL);
	}
	for (int i = 0; i < N; i++) {
		if (i == GONE)
			continue;
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_non_null(a[i].resp);
		assert_int_equal(a[i].resp->code, OK_);
		assert_string_equal(a[i].resp->request_id, reqid[i]);
		Lunamatch__V1__GetPostingResponse *gp =
		    lunamatch__v1__get_posting_response__unpack(
		        NULL, a[i].resp->payload.len, a[i].resp->payload.data);
		assert_non_null(gp);
		assert_string_equal(gp->posting->id, id[i]);
		lunamatch__v1__get_posting_response__free_unpacked(gp, NULL);
		lunamatch__v1__rpc_response__free_unpacked(a[i].resp, NULL);
	}
	assert_int_equal(requests(f.m, "GetPosting", "OK"), N);
	lm_gauge *inflight = lm_metrics_gauge(f.m, "lunamatch_rpc_inflight", NULL, NULL);
	nng_time end = nng_clock() + 3000;
	while (lm_gauge_get(inflight) != 0 && nng_clock() < end)
		nng_msleep(2);
	assert_int_equal(lm_gauge_get(inflight), 0);
	/* Every context is receiving again: N calls at once are answered. */
	struct raw_arg b[N];
	for (int i = 0; i < N; i++) {
		b[i] = (struct raw_arg){
		    .url = f.url, .reqid = "ok", .id = id[i], .timeout_ms = 5000};
		assert_int_equal(pthread_create(&t[i], NULL, raw_thread, &b[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_non_null(b[i].resp);
		assert_int_equal(b[i].resp->code, OK_);
		lunamatch__v1__rpc_response__free_unpacked(b[i].resp, NULL);
	}
	server_down(&f);
}

/* Check, GetPosting with the holding commit, and the slow MatchJobs. */
static const lm_rpc_method g_slow_methods[] = {
    {"Check", h_check, NULL},
    {"GetPosting", h_get_posting, c_hold},
    {"MatchJobs", h_match_jobs, NULL},
};

/*
 * A connection waiting for its answer is not idle, however long the
 * handler runs or the commit holds the reply: with idle_timeout_ms 300, a
 * 1200 ms handler and a reply held for 900 ms are answered on the
 * connection that asked, the handler runs (and the commit holds) once, and
 * no connection is counted as closed idle. A connection that then stays
 * silent is closed as before.
 */
static void
test_idle_timeout_spares_calls_in_flight(void **state)
{
	(void) state;
	struct fixture f;
	lm_rpc_server_opts o = {.contexts = 4, .workers = 2, .idle_timeout_ms = 300};
	Lunamatch__V1__MatchJobsRequest mj = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	lm_rpc_done_fn done;
	void *call;
	pthread_t t;

	server_up_with(&f, o, g_slow_methods, 3);
	atomic_store(&g_matchjobs_calls, 0);
	pthread_mutex_lock(&g_held.mu);
	g_held.n = 0;
	pthread_mutex_unlock(&g_held.mu);

	/* A handler slower than the idle timeout; nng's REQ would resend
	 * the request on a new connection if the server closed this one. */
	mj.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	mj.candidate_id = "c1";
	mj.top_k = 1200;
	Lunamatch__V1__RpcResponse *r = raw_envelope_call(
	    f.url, LM_RPC_METHOD_PREFIX "MatchJobs", "slow", 10000, &mj.base, 0);
	assert_non_null(r);
	assert_int_equal(r->code, OK_);
	assert_string_equal(r->request_id, "slow");
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_equal(atomic_load(&g_matchjobs_calls), 1);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL), 0);

	/* A reply the commit holds longer than the idle timeout. */
	struct raw_arg a = {
	    .url = f.url, .reqid = "held-idle", .id = "job-1", .timeout_ms = 10000};
	assert_int_equal(pthread_create(&t, NULL, raw_thread, &a), 0);
	held_wait(1, &done, &call);
	nng_msleep(900);
	done(call, OK_, NULL);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(a.resp);
	assert_int_equal(a.resp->code, OK_);
	assert_string_equal(a.resp->request_id, "held-idle");
	lunamatch__v1__rpc_response__free_unpacked(a.resp, NULL);
	pthread_mutex_lock(&g_held.mu);
	assert_int_equal(g_held.n, 1);
	pthread_mutex_unlock(&g_held.mu);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL), 0);

	/* A connection that is answered and then stays silent is closed. */
	nng_socket quiet;
	nng_msg *m = NULL;
	uint8_t *env;
	size_t n = envelope(LM_RPC_METHOD_PREFIX "Check", "quiet", 0, NULL, 0, 0, &env);
	assert_int_equal(nng_req0_open(&quiet), 0);
	assert_int_equal(nng_socket_set_ms(quiet, NNG_OPT_RECVTIMEO, 3000), 0);
	assert_int_equal(nng_dial(quiet, f.url, NULL, 0), 0);
	assert_int_equal(nng_send(quiet, env, n, 0), 0);
	assert_int_equal(nng_recvmsg(quiet, &m, 0), 0);
	nng_msg_free(m);
	free(env);
	nng_time end = nng_clock() + 3000;
	while (counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL) == 0 &&
	       nng_clock() < end)
		nng_msleep(20);
	assert_true(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL) >= 1);
	nng_close(quiet);
	server_down(&f);
}

/*
 * A request that waits in its pipe for a free context is not yet in flight
 * for the server, but its connection is not idle: with one context held by
 * a commit for 900 ms, a connection quiet for longer than idle_timeout_ms
 * (500) that asks meanwhile is answered on the connection it asked on, and
 * no connection is closed as idle.
 */
static void
test_idle_timeout_spares_waiting_requests(void **state)
{
	(void) state;
	struct fixture f;
	lm_rpc_server_opts o = {.contexts = 1, .workers = 1, .idle_timeout_ms = 500};
	struct raw_arg a = {
	    .url = NULL, .reqid = "held", .id = "job-1", .timeout_ms = 10000};
	lm_rpc_done_fn done;
	void *call;
	pthread_t t;
	nng_socket quiet;
	nng_msg *m = NULL;
	uint8_t *env;
	size_t n = envelope(LM_RPC_METHOD_PREFIX "Check", "waits", 0, NULL, 0, 0, &env);

	server_up_with(&f, o, g_slow_methods, 3);
	pthread_mutex_lock(&g_held.mu);
	g_held.n = 0;
	pthread_mutex_unlock(&g_held.mu);
	assert_int_equal(nng_req0_open(&quiet), 0);
	assert_int_equal(nng_socket_set_ms(quiet, NNG_OPT_RECVTIMEO, 5000), 0);
	assert_int_equal(nng_dial(quiet, f.url, NULL, 0), 0);
	a.url = f.url;
	assert_int_equal(pthread_create(&t, NULL, raw_thread, &a), 0);
	held_wait(1, &done, &call); /* the only context is busy from here */
	nng_msleep(600);
	assert_int_equal(nng_send(quiet, env, n, 0), 0);
	nng_msleep(300);
	done(call, OK_, NULL);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_non_null(a.resp);
	assert_int_equal(a.resp->code, OK_);
	lunamatch__v1__rpc_response__free_unpacked(a.resp, NULL);
	assert_int_equal(nng_recvmsg(quiet, &m, 0), 0);
	nng_msg_free(m);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL), 0);
	free(env);
	nng_close(quiet);
	server_down(&f);
}

/* Sends env on REQ socket sock and decodes the answer; *pipe (may be NULL)
 * is the id of the connection it came on. NULL when none came. */
static Lunamatch__V1__RpcResponse *
req_call(nng_socket sock, const uint8_t *env, size_t n, uint32_t *pipe)
{
	nng_msg *m = NULL;
	Lunamatch__V1__RpcResponse *r;

	if (nng_send(sock, (void *) env, n, 0) != 0 || nng_recvmsg(sock, &m, 0) != 0)
		return NULL;
	if (pipe != NULL)
		*pipe = (uint32_t) nng_pipe_id(nng_msg_get_pipe(m));
	r = lunamatch__v1__rpc_response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	return r;
}

/* Waits (at most 3 s) until the aged-connection counter passes have;
 * returns its value. */
/* The server options of the maximum-age tests: 4 contexts, 2 workers, an
 * idle timeout far beyond the test, and age_ms. */
static lm_rpc_server_opts
age_opts(unsigned age_ms)
{
	return (lm_rpc_server_opts){.contexts = 4,
	    .workers = 2,
	    .idle_timeout_ms = 60000,
	    .max_connection_age_ms = age_ms};
}

static uint64_t
wait_aged(struct fixture *f, uint64_t have)
{
	nng_time end = nng_clock() + 3000;
	uint64_t n;
	while (
	    (n = counter(f->m, "lunamatch_rpc_connections_aged_total", NULL)) <= have &&
	    nng_clock() < end)
		nng_msleep(10);
	return n;
}

/*
 * A connection older than max_connection_age_ms (200, give or take 20)
 * with no request in flight is closed, and counted as aged, not idle; the
 * REQ socket's next request goes over a new connection, and the C
 * client's next call is answered with no error reaching the caller.
 */
static void
test_max_connection_age(void **state)
{
	(void) state;
	struct fixture f;
	lm_rpc_server_opts o = age_opts(200);
	nng_socket sock;
	uint32_t pipe0 = 0, pipe1 = 0;
	uint8_t *env;
	size_t n = envelope(LM_RPC_METHOD_PREFIX "Check", "aged", 0, NULL, 0, 0, &env);
	Lunamatch__V1__RpcResponse *r;
	char err[256], *id = NULL;
	lm_client *c;

	server_up(&f, o);
	assert_int_equal(nng_req0_open(&sock), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 3000), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 3000), 0);
	nng_time t0 = nng_clock();
	assert_int_equal(nng_dial(sock, f.url, NULL, 0), 0);
	assert_non_null(r = req_call(sock, env, n, &pipe0));
	assert_int_equal(r->code, OK_);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	uint64_t aged = wait_aged(&f, 0);
	assert_true(aged >= 1);
	assert_true(nng_clock() - t0 >= 180); /* never before 0.9 * the age */
	assert_non_null(r = req_call(sock, env, n, &pipe1));
	assert_int_equal(r->code, OK_);
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_not_equal(pipe1, pipe0);
	nng_close(sock);

	/* The C client: answered, aged out, answered again at once. */
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	assert_int_equal(get_posting(c, "a1", 3000, &id, err, sizeof(err)), OK_);
	free(id);
	aged = counter(f.m, "lunamatch_rpc_connections_aged_total", NULL);
	assert_true(wait_aged(&f, aged) > aged);
	assert_int_equal(get_posting(c, "a2", 3000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "a2");
	free(id);
	lm_client_close(c);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL), 0);
	free(env);
	server_down(&f);
}

/*
 * A connection past its age is closed only after LM_RPC_AGE_QUIET_MS
 * without a request or an answer: one that a client keeps busy, a call
 * following the last one's answer at once, is not closed for its age
 * (a client sharing its connection between threads has a call on the wire
 * then, and nng 1.5.2 never finishes tearing down a connection closed
 * while one arrives); once the calls pause, it is. Calls for 1.5 s
 * against an age of 200 ms. The server's requests and answers of two
 * calls in a row lie between the first's start and the second's end, so
 * when no such span reached the pause, the server saw none either; a
 * loaded machine that stalled the test thread that long skips the check.
 */
static void
test_max_connection_age_waits_for_a_pause(void **state)
{
	(void) state;
	struct fixture f;
	lm_rpc_server_opts o = age_opts(200);
	nng_time start, end, prev_start, span = 0;
	lm_client *c;
	int calls = 0;

	server_up(&f, o);
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	assert_int_equal(check(c, 3000, NULL), OK_);
	start = prev_start = nng_clock();
	for (end = start + 1500; nng_clock() < end; calls++) {
		nng_time t = nng_clock();
		assert_int_equal(check(c, 3000, NULL), OK_);
		if (nng_clock() - prev_start > span)
			span = nng_clock() - prev_start;
		prev_start = t;
	}
	uint64_t aged = counter(f.m, "lunamatch_rpc_connections_aged_total", NULL);
	/* A stall before that read counts too. */
	if (nng_clock() - prev_start > span)
		span = nng_clock() - prev_start;
	print_message("%d calls, the longest span of two %d ms, %llu aged\n", calls,
	    (int) span, (unsigned long long) aged);
	if (span < LM_RPC_AGE_QUIET_MS)
		assert_int_equal(aged, 0);
	/* Quiet now: closed within a sweep or two, and the next call goes on
	 * a new connection. */
	assert_true(wait_aged(&f, aged) > aged);
	assert_int_equal(check(c, 3000, NULL), OK_);
	lm_client_close(c);
	server_down(&f);
}

/*
 * A connection older than max_connection_age_ms waiting for its answer is
 * not closed: a 1200 ms handler and a reply a commit holds for 900 ms,
 * with an age of 200 ms, are answered once each on the connection that
 * asked (nng's REQ would resend on a new one, and the handler run twice,
 * had it closed), and the connection is closed as aged after the answer.
 */
static void
test_max_connection_age_spares_calls_in_flight(void **state)
{
	(void) state;
	struct fixture f;
	lm_rpc_server_opts o = age_opts(200);
	Lunamatch__V1__MatchJobsRequest mj = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__GetPostingRequest gp = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	uint8_t pbuf[256], *check_env, *slow_env, *held_env;
	size_t check_n, slow_n, held_n, plen;
	nng_socket sock;
	uint32_t pipe0 = 0, pipe = 0;
	Lunamatch__V1__RpcResponse *r;
	lm_rpc_done_fn done;
	void *call;

	server_up_with(&f, o, g_slow_methods, 3);
	atomic_store(&g_matchjobs_calls, 0);
	pthread_mutex_lock(&g_held.mu);
	g_held.n = 0;
	pthread_mutex_unlock(&g_held.mu);
	check_n = envelope(LM_RPC_METHOD_PREFIX "Check", "c", 0, NULL, 0, 0, &check_env);
	mj.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	mj.candidate_id = "c1";
	mj.top_k = 1200;
	plen = protobuf_c_message_get_packed_size(&mj.base);
	protobuf_c_message_pack(&mj.base, pbuf);
	slow_n = envelope(
	    LM_RPC_METHOD_PREFIX "MatchJobs", "slow", 10000, pbuf, plen, 0, &slow_env);
	gp.id = "job-1";
	plen = protobuf_c_message_get_packed_size(&gp.base);
	protobuf_c_message_pack(&gp.base, pbuf);
	held_n = envelope(
	    LM_RPC_METHOD_PREFIX "GetPosting", "held", 10000, pbuf, plen, 0, &held_env);

	assert_int_equal(nng_req0_open(&sock), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000), 0);
	assert_int_equal(nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 3000), 0);
	assert_int_equal(nng_dial(sock, f.url, NULL, 0), 0);
	assert_non_null(r = req_call(sock, check_env, check_n, &pipe0));
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);

	assert_non_null(r = req_call(sock, slow_env, slow_n, &pipe));
	assert_int_equal(r->code, OK_);
	assert_string_equal(r->request_id, "slow");
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_equal(pipe, pipe0);
	assert_int_equal(atomic_load(&g_matchjobs_calls), 1);
	uint64_t aged = wait_aged(&f, 0);
	assert_true(aged >= 1);

	/* A new connection, and a reply held past its age. */
	assert_non_null(r = req_call(sock, check_env, check_n, &pipe0));
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	assert_int_equal(nng_send(sock, held_env, held_n, 0), 0);
	held_wait(1, &done, &call);
	nng_msleep(900);
	done(call, OK_, NULL);
	nng_msg *m = NULL;
	assert_int_equal(nng_recvmsg(sock, &m, 0), 0);
	assert_int_equal((uint32_t) nng_pipe_id(nng_msg_get_pipe(m)), pipe0);
	r = lunamatch__v1__rpc_response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	assert_non_null(r);
	assert_int_equal(r->code, OK_);
	assert_string_equal(r->request_id, "held");
	lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	pthread_mutex_lock(&g_held.mu);
	assert_int_equal(g_held.n, 1);
	pthread_mutex_unlock(&g_held.mu);
	assert_true(wait_aged(&f, aged) > aged);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL), 0);
	nng_close(sock);
	free(check_env);
	free(slow_env);
	free(held_env);
	server_down(&f);
}

/*
 * The receive hook of test_max_connection_age_spares_arriving_requests:
 * once armed, it holds the next request it sees (at most 5 s) until the
 * server has counted a connection as aged, and notes whether that came.
 */
struct hold_recv {
	atomic_bool armed;
	atomic_bool held; /* a request was held until the close */
	lm_counter *aged; /* set before armed */
};

static void
hold_until_aged(void *arg)
{
	struct hold_recv *h = arg;

	if (!atomic_exchange(&h->armed, false))
		return;
	nng_time end = nng_clock() + 5000;
	while (lm_counter_get(h->aged) == 0 && nng_clock() < end)
		nng_msleep(5);
	atomic_store(&h->held, lm_counter_get(h->aged) > 0);
}

/*
 * A request that nng took off a connection just as the sweeper closed that
 * connection for its age is not handled: its answer could not reach the
 * client, which sends the call again on its new connection, and the
 * handler would run twice for one call (docs/rpc.md). The receive hook
 * holds such a request until the connection is counted as aged; the C
 * client's calls are each answered, and the handler runs, and the server
 * answers, once per call.
 */
static void
test_max_connection_age_spares_arriving_requests(void **state)
{
	(void) state;
	struct fixture f;
	struct hold_recv hold = {.aged = NULL};
	lm_rpc_server_opts o = age_opts(1000);
	char err[256];
	int rv = LM_OK;
	lm_client *c;

	atomic_init(&hold.armed, false);
	atomic_init(&hold.held, false);
	server_up_hooked(&f, o, g_methods, 3, hold_until_aged, &hold);
	hold.aged =
	    lm_metrics_counter(f.m, "lunamatch_rpc_connections_aged_total", NULL, NULL);
	atomic_store(&g_matchjobs_calls, 0);
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	assert_int_equal(match_jobs(c, 0, 5000, &rv, err, sizeof(err)), OK_);
	/* The next request arrives well within the connection's age (at least
	 * 900 ms) and is held across its close. */
	atomic_store(&hold.armed, true);
	assert_int_equal(match_jobs(c, 0, 5000, &rv, err, sizeof(err)), OK_);
	assert_int_equal(rv, LM_OK);
	assert_true(atomic_load(&hold.held));
	lm_client_close(c);

	/* Every request received has been answered or dropped. */
	lm_gauge *g = lm_metrics_gauge(f.m, "lunamatch_rpc_inflight", NULL, NULL);
	nng_time end = nng_clock() + 5000;
	while (lm_gauge_get(g) != 0 && nng_clock() < end)
		nng_msleep(2);
	assert_int_equal(lm_gauge_get(g), 0);
	assert_int_equal(atomic_load(&g_matchjobs_calls), 2);
	assert_int_equal(requests(f.m, "MatchJobs", "OK"), 2);
	/* The connection the retry made may age too on a slow machine. */
	assert_true(counter(f.m, "lunamatch_rpc_connections_aged_total", NULL) >= 1);
	server_down(&f);
}

/*
 * A raw SP-over-TCP peer of the server at url (a tcp:// fixture): the REQ
 * handshake done, a receive buffer of rcvbuf bytes, writes that give up
 * after a second. Returns the descriptor.
 */
static int
raw_peer(const char *url, int rcvbuf)
{
	uint8_t hdr[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	struct timeval tv = {.tv_sec = 1};
	const char *colon = strrchr(url, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd;

	sa.sin_port = htons((uint16_t) atoi(colon + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t) sizeof(hdr));
	assert_int_equal(read(fd, hdr, sizeof(hdr)), (ssize_t) sizeof(hdr));
	return fd;
}

/*
 * Pipelines up to max copies of the request env (n bytes; each with its
 * own nng request id) to fd without reading a reply, until a write blocks
 * for a second or 20 s passed. Returns how many were written.
 */
static unsigned
flood(int fd, const uint8_t *env, size_t n, unsigned max)
{
	uint8_t *frame = malloc(12 + n);
	nng_time end = nng_clock() + 20000;
	unsigned i;

	assert_non_null(frame);
	for (int k = 0; k < 8; k++)
		frame[k] = (uint8_t) ((uint64_t) (n + 4) >> (56 - 8 * k));
	memcpy(frame + 12, env, n);
	for (i = 0; i < max && nng_clock() < end; i++) {
		uint32_t rid = 0x80000000u | i;
		for (int k = 0; k < 4; k++)
			frame[8 + k] = (uint8_t) (rid >> (24 - 8 * k));
		if (write(fd, frame, 12 + n) != (ssize_t) (12 + n))
			break;
	}
	free(frame);
	return i;
}

/*
 * A peer that pipelines requests and never reads its replies: once they
 * fill the socket's buffers, every later reply waits in its context. After
 * send_timeout_ms the connection is closed, the contexts are free again
 * and a well-behaved client is answered; before, the server stayed wedged
 * for good.
 */
static void
test_peer_not_reading(void **state)
{
	(void) state;
	struct fixture f;
	Lunamatch__V1__GetPostingRequest req = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	enum { ID_LEN = 16000 };
	char *big = malloc(ID_LEN + 1), err[256], *id = NULL;
	uint8_t *pl, *env;
	size_t plen, n;
	lm_client *c;

	assert_non_null(big);
	memset(big, 'x', ID_LEN);
	big[ID_LEN] = '\0';
	req.id = big; /* the reply echoes it: 16 KB each */
	plen = protobuf_c_message_get_packed_size(&req.base);
	assert_non_null(pl = malloc(plen));
	protobuf_c_message_pack(&req.base, pl);
	n = envelope(LM_RPC_METHOD_PREFIX "GetPosting", "flood", 0, pl, plen, 0, &env);

	server_up(&f,
	    (lm_rpc_server_opts){.contexts = 4, .workers = 2, .send_timeout_ms = 4000});
	int fd = raw_peer(f.url, 4096);
	/* Requests until the server stops taking them (a write blocked for a
	 * second), at most 2000 (32 MB of replies) or 20 s. Should the
	 * connection be closed first (a slow run), the write fails with EPIPE
	 * instead of killing the test. */
	signal(SIGPIPE, SIG_IGN);
	flood(fd, env, n, 2000);
	/* Every context holds a reply that cannot be sent: another client is
	 * answered only once that connection is closed. */
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	assert_int_equal(get_posting(c, "after", 30000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "after");
	free(id);
	/* One connection closed, counted once however many of its replies
	 * timed out. */
	nng_msleep(200);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_send_closed_total", NULL), 1);
	lm_client_close(c);
	close(fd);
	server_down(&f);
	free(env);
	free(pl);
	free(big);
}

/* The envelope of a GetPosting for an id of len bytes ('x'), whose reply
 * echoes it; *n gets its size. */
static uint8_t *
echo_request(size_t len, size_t *n)
{
	Lunamatch__V1__GetPostingRequest req = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	char *id = malloc(len + 1);
	uint8_t *pl, *env;
	size_t plen;

	assert_non_null(id);
	memset(id, 'x', len);
	id[len] = '\0';
	req.id = id;
	plen = protobuf_c_message_get_packed_size(&req.base);
	assert_non_null(pl = malloc(plen));
	protobuf_c_message_pack(&req.base, pl);
	*n = envelope(LM_RPC_METHOD_PREFIX "GetPosting", "echo", 0, pl, plen, 0, &env);
	free(pl);
	free(id);
	return env;
}

/*
 * A peer that sends one request whose answer is big and never reads it:
 * nng takes the answer at once (the send completes) and keeps it until it
 * is written, so after send_timeout_ms without a request the
 * connection is closed, counted as not reading its replies. Before, the
 * answer stayed in memory until the idle timeout (5 minutes), one per
 * connection, outside every limit. A connection whose last answer was
 * small stays open.
 */
static void
test_peer_not_reading_big_reply(void **state)
{
	(void) state;
	struct fixture f;
	size_t nbig, nsmall;
	uint8_t *big = echo_request(LM_RPC_PINNED_REPLY_BYTES + 1000, &nbig);
	uint8_t *small = echo_request(1000, &nsmall);

	const unsigned send_ms = 1000;
	server_up(&f, (lm_rpc_server_opts){
	                  .contexts = 4, .workers = 2, .send_timeout_ms = send_ms});
	int fd_big = raw_peer(f.url, 4096), fd_small = raw_peer(f.url, 4096);
	nng_time t0 = nng_clock();
	assert_int_equal(flood(fd_big, big, nbig, 1), 1);
	assert_int_equal(flood(fd_small, small, nsmall, 1), 1);
	nng_time end = t0 + send_ms + 5000;
	while (counter(f.m, "lunamatch_rpc_connections_send_closed_total", NULL) == 0 &&
	       nng_clock() < end)
		nng_msleep(100);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_send_closed_total", NULL), 1);
	/* Not before send_timeout_ms had passed since the answer. */
	assert_true(nng_clock() - t0 >= send_ms);
	nng_msleep(300);
	assert_true(lm_gauge_get(lm_metrics_gauge(
	                f.m, "lunamatch_rpc_connections", NULL, NULL)) == 1);
	assert_int_equal(
	    counter(f.m, "lunamatch_rpc_connections_idle_closed_total", NULL), 0);
	close(fd_big);
	close(fd_small);
	server_down(&f);
	free(big);
	free(small);
}

/* Reads exactly n bytes from fd; false on a timeout, an error or EOF. */
static bool
read_full(int fd, uint8_t *buf, size_t n)
{
	while (n > 0) {
		ssize_t k = read(fd, buf, n);
		if (k <= 0)
			return false;
		buf += k;
		n -= (size_t) k;
	}
	return true;
}

/* Reads one reply from a raw_peer (length, nng request id, body) and
 * decodes it; NULL when none came within the socket's receive timeout. */
static Lunamatch__V1__RpcResponse *
raw_reply(int fd)
{
	uint8_t hdr[12], *body;
	uint64_t n = 0;
	Lunamatch__V1__RpcResponse *r;

	if (!read_full(fd, hdr, sizeof(hdr)))
		return NULL;
	for (int k = 0; k < 8; k++)
		n = n << 8 | hdr[k];
	assert_true(n >= 4 && n < (1u << 20));
	assert_non_null(body = malloc(n - 4 + 1));
	assert_true(read_full(fd, body, n - 4));
	r = lunamatch__v1__rpc_response__unpack(NULL, n - 4, body);
	free(body);
	assert_non_null(r);
	return r;
}

/* The envelope of a MatchJobs whose handler sleeps sleep_ms; *n gets its
 * size. */
static uint8_t *
slow_request(uint32_t sleep_ms, size_t *n)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	uint8_t pl[64], *env;
	size_t plen;

	req.candidate_id = "c1";
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.top_k = sleep_ms;
	plen = protobuf_c_message_get_packed_size(&req.base);
	assert_true(plen <= sizeof(pl));
	protobuf_c_message_pack(&req.base, pl);
	*n = envelope(
	    LM_RPC_METHOD_PREFIX "MatchJobs", "greedy", 10000, pl, plen, 0, &env);
	return env;
}

/* Waits (at most 5 s) until the server has want requests in flight. */
static void
wait_inflight(struct fixture *f, int64_t want)
{
	lm_gauge *g = lm_metrics_gauge(f->m, "lunamatch_rpc_inflight", NULL, NULL);
	nng_time end = nng_clock() + 5000;

	while (lm_gauge_get(g) < want && nng_clock() < end)
		nng_msleep(2);
	assert_true(lm_gauge_get(g) >= want);
}

/*
 * One connection that pipelines slow requests does not hold up another
 * connection's call: queued requests are taken round-robin across
 * connections, so the other call, once it has a context, runs after at
 * most one more request of the busy connection, and the busy connection's
 * calls are all answered, none refused. Before, the queue was one line:
 * the other call waited behind every request the busy connection had in
 * the contexts (at least 9 handler runs here, against at most 5).
 */
static void
test_fair_between_connections(void **state)
{
	(void) state;
	struct fixture f;
	struct timeval tv = {.tv_sec = 10};
	char err[LM_RPC_MAX_MESSAGE], *id = NULL;
	enum { PIPELINED = 16 };
	size_t n;
	uint8_t *env = slow_request(100, &n);
	lm_client *c;

	server_up(&f, (lm_rpc_server_opts){.contexts = 8, .workers = 1, .queue_len = 8});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	int fd = raw_peer(f.url, 1 << 16);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	atomic_store(&g_matchjobs_calls, 0);
	assert_int_equal(flood(fd, env, n, PIPELINED), PIPELINED);
	/* Every context holds a request of the busy connection. */
	wait_inflight(&f, 8);
	assert_int_equal(get_posting(c, "other", 10000, &id, err, sizeof(err)), OK_);
	int ran = atomic_load(&g_matchjobs_calls);
	assert_string_equal(id, "other");
	free(id);
	if (ran > 5)
		fail_msg("the other connection's call waited for %d slow calls", ran);
	for (unsigned i = 0; i < PIPELINED; i++) {
		Lunamatch__V1__RpcResponse *r = raw_reply(fd);
		assert_non_null(r);
		assert_int_equal(r->code, OK_);
		lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	}
	assert_int_equal(rejected(f.m, "queue_full"), 0);
	assert_int_equal(requests(f.m, "MatchJobs", "OK"), PIPELINED);
	close(fd);
	lm_client_close(c);
	server_down(&f);
	free(env);
}

/*
 * When the queue is full, a request of a connection with fewer requests
 * queued than the busiest one takes the place of that connection's newest
 * queued request, which is refused as queue_full, counted and told why:
 * the busy connection cannot keep every other one out by filling the
 * queue. Before, the other connection's call was refused.
 */
static void
test_fair_queue_full(void **state)
{
	(void) state;
	struct fixture f;
	struct timeval tv = {.tv_sec = 10};
	char err[LM_RPC_MAX_MESSAGE], *id = NULL;
	enum { PIPELINED = 16 };
	unsigned ok = 0, exhausted = 0;
	size_t n;
	uint8_t *env = slow_request(1500, &n);
	lm_client *c;

	server_up(&f, (lm_rpc_server_opts){.contexts = 8, .workers = 1, .queue_len = 2});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	int fd = raw_peer(f.url, 1 << 16);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	atomic_store(&g_matchjobs_running, 0);
	/* One runs, then two are queued and the rest refused. */
	assert_int_equal(flood(fd, env, n, 1), 1);
	assert_true(wait_atomic(&g_matchjobs_running, 1, 5000));
	assert_int_equal(flood(fd, env, n, PIPELINED - 1), PIPELINED - 1);
	nng_time end = nng_clock() + 5000;
	while (rejected(f.m, "queue_full") < PIPELINED - 3 && nng_clock() < end)
		nng_msleep(2);
	assert_int_equal(rejected(f.m, "queue_full"), PIPELINED - 3);
	assert_int_equal(get_posting(c, "other", 10000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "other");
	free(id);
	assert_int_equal(rejected(f.m, "queue_full"), PIPELINED - 2);
	for (unsigned i = 0; i < PIPELINED; i++) {
		Lunamatch__V1__RpcResponse *r = raw_reply(fd);
		assert_non_null(r);
		if (r->code == EXHAUSTED_) {
			assert_string_equal(r->request_id, "greedy");
			assert_non_null(strstr(r->message, "queue full"));
			exhausted++;
		} else {
			assert_int_equal(r->code, OK_);
			ok++;
		}
		lunamatch__v1__rpc_response__free_unpacked(r, NULL);
	}
	assert_int_equal(ok, 2);
	assert_int_equal(exhausted, PIPELINED - 2);
	assert_int_equal(requests(f.m, "MatchJobs", "RESOURCE_EXHAUSTED"), PIPELINED - 2);
	close(fd);
	lm_client_close(c);
	server_down(&f);
	free(env);
}

/* Appends n copies of the UTF-8 character c to buf (cap bytes with the
 * NUL, which is always written). */
static void
repeat_utf8(char *buf, size_t cap, const char *c, size_t n)
{
	size_t len = strlen(buf), cl = strlen(c);

	for (size_t i = 0; i < n && len + cl < cap; i++, len += cl)
		memcpy(buf + len, c, cl);
	buf[len] = '\0';
}

/* got is what the caller received for the reason want: want cut to
 * LM_RPC_MAX_MESSAGE - 1 bytes and then back to the character boundary,
 * i.e. a UTF-8 prefix of want with no more than a split character lost. */
static void
assert_cut_reason(const char *got, const char *want)
{
	size_t n = strlen(got);

	assert_true(lm_pb_utf8_valid(got, n));
	assert_true(n < LM_RPC_MAX_MESSAGE);
	assert_true(n + 3 >= LM_RPC_MAX_MESSAGE - 1);
	assert_memory_equal(got, want, n);
	/* The next byte of want starts a character: nothing was split. */
	assert_true(((unsigned char) want[n] & 0xc0) != 0x80);
}

struct client_call {
	const char *url, *id;
	int status;
	char err[LM_RPC_MAX_MESSAGE];
};

static void *
get_posting_thread(void *p)
{
	struct client_call *a = p;
	lm_client *c;

	assert_int_equal(lm_client_open(a->url, NULL, &c), LM_OK);
	a->status = get_posting(c, a->id, 10000, NULL, a->err, sizeof(a->err));
	lm_client_close(c);
	return NULL;
}

/*
 * A reason longer than RpcResponse.message's limit is cut at a UTF-8
 * character boundary, so the answer stays valid proto3 that the C client
 * (which checks strings) reads: a handler's reason (two-byte characters,
 * the cut falling inside one) and reasons given to a held call's done
 * (three- and four-byte characters, one and three bytes of one left by
 * the byte-wise cut). A reason that is not UTF-8 at all is replaced by
 * the status name.
 */
static void
test_message_cut_utf8(void **state)
{
	(void) state;
	struct fixture f;
	lm_rpc_server_opts o = {.contexts = 4, .workers = 1};
	char id[2048] = "missing-a", want[4096], err[LM_RPC_MAX_MESSAGE];
	lm_rpc_done_fn done;
	void *call;
	lm_client *c;
	pthread_t t;

	server_up_with(&f, o, g_held_methods, 2);
	pthread_mutex_lock(&g_held.mu);
	g_held.n = 0;
	pthread_mutex_unlock(&g_held.mu);

	/* The handler's reason: "posting \"" + 9 bytes + 698 x U+00E9 does
	 * not reach a character boundary at byte 1023. */
	repeat_utf8(id, sizeof(id), "\xc3\xa9", 698);
	snprintf(want, sizeof(want), "posting \"%s\" not found", id);
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	assert_int_equal(get_posting(c, id, 5000, NULL, err, sizeof(err)), NOT_FOUND_);
	assert_cut_reason(err, want);
	lm_client_close(c);

	/* Reasons of held calls (a code the client does not retry). */
	const char *chars[] = {"\xe2\x82\xac", "\xf0\x9f\x99\x82"}; /* U+20AC, U+1F642 */
	const char *prefix[] = {"decision log: ", ""};
	for (int i = 0; i < 2; i++) {
		struct client_call a = {.url = f.url, .id = "job-held"};
		snprintf(want, sizeof(want), "%s", prefix[i]);
		repeat_utf8(want, sizeof(want), chars[i], 600);
		assert_int_equal(pthread_create(&t, NULL, get_posting_thread, &a), 0);
		held_wait(i + 1, &done, &call);
		done(call, EXHAUSTED_, want);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(a.status, EXHAUSTED_);
		assert_cut_reason(a.err, want);
	}

	/* Not UTF-8 at all: the status name instead. */
	struct client_call b = {.url = f.url, .id = "job-held"};
	assert_int_equal(pthread_create(&t, NULL, get_posting_thread, &b), 0);
	held_wait(3, &done, &call);
	done(call, EXHAUSTED_, "bad \xc3\x28 reason");
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(b.status, EXHAUSTED_);
	assert_string_equal(b.err, "RESOURCE_EXHAUSTED");
	server_down(&f);
}

/* Starts MatchJobs call a (on thread *t) and, once its handler runs, a
 * drain of f's server (d, on thread *td); returns once the server no
 * longer reports serving. */
static void
drain_during_call(struct fixture *f, struct call_arg *a, pthread_t *t,
    struct drain_arg *d, pthread_t *td)
{
	atomic_store(&g_matchjobs_running, 0);
	assert_int_equal(pthread_create(t, NULL, match_jobs_thread, a), 0);
	assert_true(wait_atomic(&g_matchjobs_running, 1, 3000));
	assert_int_equal(pthread_create(td, NULL, drain_thread, d), 0);
	nng_time end = nng_clock() + 2000;
	while (lm_rpc_server_serving(f->s) && nng_clock() < end)
		nng_msleep(2);
	assert_false(lm_rpc_server_serving(f->s));
}

static void
test_drain(void **state)
{
	(void) state;
	struct fixture f;
	lm_client *c, *c2, *late;
	char err[LM_RPC_MAX_MESSAGE];
	pthread_t t, td;

	server_up(&f, (lm_rpc_server_opts){.contexts = 8, .workers = 2});
	assert_int_equal(lm_client_open(f.url, NULL, &c), LM_OK);
	assert_int_equal(check(c, 2000, NULL), OK_); /* connected */
	assert_int_equal(lm_client_open(f.url, NULL, &c2), LM_OK);
	assert_int_equal(check(c2, 2000, NULL), OK_);

	struct call_arg a = {.url = f.url, .sleep_ms = 500, .timeout_ms = 5000};
	struct drain_arg d = {.s = f.s, .rv = -1};
	drain_during_call(&f, &a, &t, &d, &td);

	/* New requests on an existing connection: UNAVAILABLE. */
	assert_int_equal(
	    get_posting(c, "during-drain", 2000, NULL, err, sizeof(err)), UNAVAIL_);
	assert_non_null(strstr(err, "draining"));
	/* Check too: a caller moves on as for any refusal (docs/rpc.md). */
	assert_int_equal(check(c2, 2000, NULL), UNAVAIL_);
	assert_false(lm_rpc_server_serving(f.s));
	lm_client_close(c2);
	/* New connections are refused: no answer. */
	assert_int_equal(lm_client_open(f.url, NULL, &late), LM_OK);
	assert_true(get_posting(late, "new-conn", 300, NULL, err, sizeof(err)) < 0);
	lm_client_close(late);
	assert_int_equal(lm_rpc_server_probe(f.s, 500), LM_ECLOSED);

	/* The call in flight completes; then drain returns. */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.rv, LM_OK);
	assert_int_equal(a.status, OK_);
	assert_int_equal(pthread_join(td, NULL), 0);
	assert_int_equal(d.rv, LM_OK);
	assert_int_equal(rejected(f.m, "draining"), 2);

	/* After drain nothing answers. */
	assert_true(get_posting(c, "after-drain", 300, NULL, err, sizeof(err)) < 0);
	assert_int_equal(lm_rpc_server_drain(f.s, 100), LM_OK);
	lm_client_close(c);
	server_down(&f);
}

/*
 * Drain waits for the requests the server accepted, not for its own
 * refusals. A peer keeps sending while the server drains and never reads
 * its UNAVAILABLE answers: they fill the socket's buffers and hold every
 * other context in its send for LM_RPC_SEND_TIMEOUT_MS. Drain still
 * returns LM_OK once the one accepted call is answered.
 */
static void
test_drain_ignores_refusals(void **state)
{
	(void) state;
	struct fixture f;
	char reqid[LM_RPC_MAX_REQUEST_ID + 1];
	uint8_t *env;
	size_t n;
	pthread_t t, td;

	/* Answers as large as a refusal gets: the longest request id. */
	memset(reqid, 'r', LM_RPC_MAX_REQUEST_ID);
	reqid[LM_RPC_MAX_REQUEST_ID] = '\0';
	n = envelope(LM_RPC_METHOD_PREFIX "GetPosting", reqid, 0, NULL, 0, 0, &env);
	server_up(&f, (lm_rpc_server_opts){.contexts = 4, .workers = 2});
	int fd = raw_peer(f.url, 4096); /* connected before the drain */
	lm_gauge *inflight = lm_metrics_gauge(f.m, "lunamatch_rpc_inflight", NULL, NULL);

	/* The drain may take longer than the call, not as long as a send
	 * that times out (LM_RPC_SEND_TIMEOUT_MS). */
	struct call_arg a = {.url = f.url, .sleep_ms = 4000, .timeout_ms = 12000};
	struct drain_arg d = {.s = f.s, .rv = -1, .timeout_ms = 9000};
	drain_during_call(&f, &a, &t, &d, &td);

	/* Refusals until the server stops reading them: the other contexts
	 * (all of them here; under the thread sanitizer nng may stop reading
	 * with one still free) wait in their sends while the call still runs,
	 * which is what the drain would wait for without the fix. */
	assert_true(flood(fd, env, n, 100000) > 3);
	for (nng_time end = nng_clock() + 3000;
	     lm_gauge_get(inflight) < 4 && nng_clock() < end;)
		(void) flood(fd, env, n, 16);
	assert_true(rejected(f.m, "draining") >= 3);
	/* Whether a refusal is held depends on the kernel: its socket buffers
	 * can take every answer sent so far (seen once in hundreds of runs
	 * under the thread sanitizer, which slows the server's reads). */
	bool held = lm_gauge_get(inflight) >= 2;
	assert_int_equal(atomic_load(&g_matchjobs_running), 1);

	/* The call is answered; drain returns long before the refusals' sends
	 * time out, and without waiting for them. */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.status, OK_);
	assert_int_equal(pthread_join(td, NULL), 0);
	assert_int_equal(d.rv, LM_OK);
	close(fd);
	server_down(&f);
	free(env);
	if (!held) {
		print_message("no refusal was held in its send: the case this "
		              "test is for did not arise\n");
		skip();
	}
}

static void
test_drain_timeout(void **state)
{
	(void) state;
	struct fixture f;
	pthread_t t;

	server_up(&f, (lm_rpc_server_opts){.contexts = 4, .workers = 1});
	atomic_store(&g_matchjobs_running, 0);
	struct call_arg a = {.url = f.url, .sleep_ms = 800, .timeout_ms = 1500};
	assert_int_equal(pthread_create(&t, NULL, match_jobs_thread, &a), 0);
	assert_true(wait_atomic(&g_matchjobs_running, 1, 3000));
	assert_int_equal(lm_rpc_server_drain(f.s, 100), LM_ETIMEDOUT);
	/* free waits for the running handler; the caller gets no answer. */
	lm_rpc_server_free(f.s);
	f.s = NULL;
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_not_equal(a.rv, LM_OK);
	server_down(&f);
}

static void
test_setup_errors(void **state)
{
	(void) state;
	lm_rpc_server *s = NULL, *s2 = NULL;
	lm_rpc_server_opts o = {.url = "tcp://127.0.0.1:0"};
	const lm_rpc_method bad[] = {{"NoSuchMethod", h_check, NULL}};
	const lm_rpc_method twice[] = {
	    {"Check", h_check, NULL}, {"Check", h_check, NULL}};
	const ProtobufCServiceDescriptor *svc = &lunamatch__v1__match_service__descriptor;
	char url[256];

	assert_int_equal(lm_rpc_server_new(&o, svc, bad, 1, NULL, &s), LM_EINVAL);
	assert_null(s);
	assert_int_equal(lm_rpc_server_new(&o, svc, twice, 2, NULL, &s), LM_EINVAL);
	o.url = NULL;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_EINVAL);

	/* A connection age past its maximum, or negative (a wrapped int). */
	o.url = "tcp://127.0.0.1:0";
	o.max_connection_age_ms = LM_RPC_MAX_CONNECTION_AGE_MS + 1;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_EINVAL);
	assert_null(s);
	o.max_connection_age_ms = (unsigned) -1;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_EINVAL);
	assert_null(s);
	o.max_connection_age_ms = LM_RPC_MAX_CONNECTION_AGE_MS;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_OK);
	lm_rpc_server_free(s);
	s = NULL;
	o.max_connection_age_ms = 0;
	o.send_timeout_ms = LM_RPC_MAX_SEND_TIMEOUT_MS + 1;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_EINVAL);
	assert_null(s);
	o.send_timeout_ms = 0;

	/* A request limit past its maximum: nng's receive limit (the limit
	 * plus the grace) would wrap around, and the connection budget divide
	 * by what wrapped to 0. */
	const size_t bad_max[] = {
	    LM_RPC_MAX_REQUEST_BYTES + 1, SIZE_MAX - LM_RPC_OVERSIZE_GRACE + 1, SIZE_MAX};
	for (size_t i = 0; i < sizeof(bad_max) / sizeof(bad_max[0]); i++) {
		o.max_request_bytes = bad_max[i];
		assert_int_equal(
		    lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_EINVAL);
		assert_null(s);
	}
	o.max_request_bytes = LM_RPC_MAX_REQUEST_BYTES;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_OK);
	lm_rpc_server_free(s);
	s = NULL;
	o.max_request_bytes = 0;

	/* A bad URL or address fails at start, as an invalid argument. */
	const char *bad_urls[] = {"nosuch://127.0.0.1:1", "tcp://127.0.0.1:99999",
	    "tcp://127.0.0.1:port", "ipc://"};
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		o.url = bad_urls[i];
		assert_int_equal(
		    lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_OK);
		int rv = lm_rpc_server_start(s);
		if (rv != LM_EINVAL)
			fail_msg("%s: %s", bad_urls[i], lm_errname(rv));
		lm_rpc_server_free(s);
	}
	/* An ipc:// path in a directory that does not exist. */
	char *dir = lmt_tmpdir("rpc-setup");
	snprintf(url, sizeof(url), "ipc://%s/missing/rpc.ipc", dir);
	o.url = url;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_OK);
	assert_int_equal(lm_rpc_server_start(s), LM_ENOENT);
	lm_rpc_server_free(s);
	lmt_rmtree(dir);
	free(dir);

	/* Address in use: resource busy. */
	o.url = "tcp://127.0.0.1:0";
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_OK);
	assert_int_equal(lm_rpc_server_start(s), LM_OK);
	assert_int_equal(lm_rpc_server_start(s), LM_EINVAL);
	assert_int_equal(lm_rpc_server_url(s, url, sizeof(url)), LM_OK);
	o.url = url;
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s2), LM_OK);
	assert_int_equal(lm_rpc_server_start(s2), LM_EBUSY);
	lm_rpc_server_free(s2);
	lm_rpc_server_free(s);

	/* TLS without a certificate. */
	o.url = "tls+tcp://127.0.0.1:0";
	assert_int_equal(lm_rpc_server_new(&o, svc, g_methods, 3, NULL, &s), LM_EINVAL);
	lm_rpc_server_free(NULL);
}

/* This program started again with --listen URL: starts a server on URL
 * and exits with what lm_rpc_server_start returned. */
static int
listen_scenario(const char *url)
{
	lm_rpc_server *s = NULL;
	lm_rpc_server_opts o = {.url = url, .contexts = 1, .workers = 1};
	int rv = lm_rpc_server_new(
	    &o, &lunamatch__v1__match_service__descriptor, g_methods, 3, NULL, &s);

	if (rv == LM_OK)
		rv = lm_rpc_server_start(s);
	lm_rpc_server_free(s);
	return rv;
}

/*
 * Listening where the process may not (an ipc:// path in a directory it
 * cannot write) fails as not authorized. The server runs in a child
 * process, as user nobody when this one is root (root may write anywhere).
 */
static void
test_listen_permission(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("rpc-perm"), locked[512], url[600];
	int st = 0;
	pid_t pid, w;

	snprintf(locked, sizeof(locked), "%s/locked", dir);
	assert_int_equal(mkdir(locked, 0500), 0);
	snprintf(url, sizeof(url), "ipc://%s/rpc.ipc", locked);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
			_exit(126);
		execl(
		    "/proc/self/exe", "test_rpc_server", "--listen", url, (char *) NULL);
		_exit(127);
	}
	nng_time end = nng_clock() + 30000;
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 && nng_clock() < end)
		nng_msleep(20);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("the listening child did not finish in 30 s");
	}
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) != LM_EACCES)
		fail_msg("listening without permission: exit %d, expected %s (%d)",
		    WEXITSTATUS(st), lm_errname(LM_EACCES), LM_EACCES);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- mutual TLS ------------------------------------------------------ */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* A CA, a server certificate for "localhost" and a client certificate,
 * made with the openssl command line in dir. */
static void
make_certs(const char *dir)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	assert_int_equal(sh("cd '%s' && openssl req -x509 %s -keyout ca.key -out ca.crt "
	                    "-days 2 -subj /CN=lunamatch-test-ca "
	                    "-addext basicConstraints=critical,CA:TRUE "
	                    "-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null",
	                     dir, ec),
	    0);
	assert_int_equal(sh("cd '%s' && printf 'subjectAltName=DNS:localhost\\n"
	                    "extendedKeyUsage=serverAuth,clientAuth\\n' > server.ext && "
	                    "printf 'extendedKeyUsage=clientAuth\\n' > client.ext",
	                     dir),
	    0);
	const char *names[] = {"server", "client"};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    sh("cd '%s' && openssl req %s -keyout %s.key -out %s.csr "
		       "-subj /CN=%s 2>/dev/null && openssl x509 -req -in %s.csr "
		       "-CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		       "-extfile %s.ext -out %s.crt 2>/dev/null",
		        dir, ec, names[i], names[i],
		        i == 0 ? "localhost" : "lunamatch-test-client", names[i],
		        names[i], names[i]),
		    0);
	}
}

static void
test_mutual_tls(void **state)
{
	(void) state;
	if (system("which openssl >/dev/null 2>&1") != 0) {
		print_message(
		    "openssl command not found: skipping the mutual TLS test\n");
		skip();
	}
	char *dir = lmt_tmpdir("rpc-tls");
	char ca[600], scrt[600], skey[600], ccrt[600], ckey[600], err[256], *id = NULL;
	make_certs(dir);
	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
	snprintf(scrt, sizeof(scrt), "%s/server.crt", dir);
	snprintf(skey, sizeof(skey), "%s/server.key", dir);
	snprintf(ccrt, sizeof(ccrt), "%s/client.crt", dir);
	snprintf(ckey, sizeof(ckey), "%s/client.key", dir);

	struct fixture f;
	server_up(&f, (lm_rpc_server_opts){.url = "tls+tcp://127.0.0.1:0",
	                  .contexts = 4,
	                  .workers = 2,
	                  .tls_cert = scrt,
	                  .tls_key = skey,
	                  .tls_ca = ca});
	f.dir = dir;
	assert_non_null(strstr(f.url, "tls+tcp://127.0.0.1:"));

	/* A client with a certificate from the CA. */
	lm_client *c;
	lm_client_opts co = {.tls_cert = ccrt,
	    .tls_key = ckey,
	    .tls_ca = ca,
	    .tls_server_name = "localhost"};
	assert_int_equal(lm_client_open(f.url, &co, &c), LM_OK);
	assert_int_equal(get_posting(c, "tls-1", 5000, &id, err, sizeof(err)), OK_);
	assert_string_equal(id, "tls-1");
	free(id);
	lm_client_close(c);

	/* A client without a certificate is refused. */
	lm_client_opts anon = {.tls_ca = ca, .tls_server_name = "localhost"};
	assert_int_equal(lm_client_open(f.url, &anon, &c), LM_OK);
	assert_true(get_posting(c, "anon", 500, NULL, err, sizeof(err)) < 0);
	lm_client_close(c);

	/* A client that expects another server name refuses the server. */
	lm_client_opts wrong = {.tls_cert = ccrt,
	    .tls_key = ckey,
	    .tls_ca = ca,
	    .tls_server_name = "not-the-server"};
	assert_int_equal(lm_client_open(f.url, &wrong, &c), LM_OK);
	assert_true(get_posting(c, "wrong-name", 500, NULL, err, sizeof(err)) < 0);
	lm_client_close(c);

	/* A plain tcp:// client cannot talk to the TLS port. */
	char plain[300];
	snprintf(plain, sizeof(plain), "tcp://%s", f.url + strlen("tls+tcp://"));
	assert_int_equal(lm_client_open(plain, NULL, &c), LM_OK);
	assert_true(get_posting(c, "plain", 300, NULL, err, sizeof(err)) < 0);
	lm_client_close(c);

	/* The self-probe speaks TLS with the server's own certificate. */
	assert_int_equal(lm_rpc_server_probe(f.s, 3000), LM_OK);
	assert_int_equal(atomic_load(&g_getposting_calls), 1);
	server_down(&f);
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--dead-listener") == 0)
		return dead_listener_scenario();
	if (argc > 1 && strcmp(argv[1], "--stuck-close") == 0)
		return stuck_close_scenario();
	if (argc > 2 && strcmp(argv[1], "--listen") == 0)
		return listen_scenario(argv[2]);
	/* LMT_TEST_FILTER=test_fair* runs some tests (a cmocka glob). */
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_paths),
	    cmocka_unit_test(test_reply_bytes),
	    cmocka_unit_test(test_ipc_and_probe),
	    cmocka_unit_test(test_ipc_dead_listener),
	    cmocka_unit_test(test_stop_bounded_when_close_stuck),
	    cmocka_unit_test(test_deadlines),
	    cmocka_unit_test(test_queue_full),
	    cmocka_unit_test(test_oversize),
	    cmocka_unit_test(test_decode_amplification),
	    cmocka_unit_test(test_decode_out_of_memory),
	    cmocka_unit_test(test_tcp_garbage),
	    cmocka_unit_test(test_concurrent_clients),
	    cmocka_unit_test(test_probe_under_saturation),
	    cmocka_unit_test(test_metrics_preregistered),
	    cmocka_unit_test(test_connection_limit),
	    cmocka_unit_test(test_connection_budget),
	    cmocka_unit_test(test_connection_budget_logged),
	    cmocka_unit_test(test_connection_limit_per_peer),
	    cmocka_unit_test(test_connection_limit_per_peer_burst),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_idle_timeout_spares_calls_in_flight),
	    cmocka_unit_test(test_idle_timeout_spares_waiting_requests),
	    cmocka_unit_test(test_max_connection_age),
	    cmocka_unit_test(test_max_connection_age_waits_for_a_pause),
	    cmocka_unit_test(test_max_connection_age_spares_calls_in_flight),
	    cmocka_unit_test(test_max_connection_age_spares_arriving_requests),
	    cmocka_unit_test(test_peer_not_reading),
	    cmocka_unit_test(test_peer_not_reading_big_reply),
	    cmocka_unit_test(test_fair_between_connections),
	    cmocka_unit_test(test_fair_queue_full),
	    cmocka_unit_test(test_held_reply),
	    cmocka_unit_test(test_held_replies_to_their_callers),
	    cmocka_unit_test(test_message_cut_utf8),
	    cmocka_unit_test(test_drain),
	    cmocka_unit_test(test_drain_ignores_refusals),
	    cmocka_unit_test(test_drain_timeout),
	    cmocka_unit_test(test_setup_errors),
	    cmocka_unit_test(test_listen_permission),
	    cmocka_unit_test(test_mutual_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
