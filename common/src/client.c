/*
 * client.c - MatchService client over nng REQ/REP; see client.h.
 *
 * A call: encode the payload, wrap it in an RpcRequest with a fresh
 * request_id, open an nng context, send (which completes only once a
 * connection exists: a send timeout means "unavailable"), receive with the
 * rest of the time, then check and decode the RpcResponse.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "lunamatch/client.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/rpc.h"

/* Largest request the client sends; the server's own limit is usually
 * lower and is reported by the server. */
#define CLIENT_MAX_REQUEST (64u * 1024 * 1024)
#define RECONNECT_MIN_MS   100
#define RECONNECT_MAX_MS   2000

#define ST_OK          LUNAMATCH__V1__STATUS_CODE__OK
#define ST_INVALID     LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT
#define ST_DEADLINE    LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED
#define ST_INTERNAL    LUNAMATCH__V1__STATUS_CODE__INTERNAL
#define ST_UNAVAILABLE LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE

struct lm_client {
	nng_socket sock;
	nng_dialer dialer;
	nng_tls_config *tls;
	unsigned default_timeout_ms;
	size_t max_resp;
	uint64_t id_base;     /* random, per client */
	atomic_ullong id_seq; /* per call */
};

static int
err_from_nng(int rv)
{
	return rv == NNG_ENOMEM ? LM_ENOMEM : LM_ENNG;
}

static bool
given(const char *s)
{
	return s != NULL && *s != '\0';
}

void
lm_client_close(lm_client *c)
{
	if (c == NULL)
		return;
	nng_close(c->sock);
	if (c->tls != NULL)
		nng_tls_config_free(c->tls);
	free(c);
}

/* TLS configuration for a client of url; the server name defaults to the
 * URL's host. */
static int
client_tls(lm_client *c, const char *url, const lm_client_opts *o)
{
	char err[512];
	nng_url *u = NULL;
	int rv, nrv;
	const char *name;

	rv = lm_rpc_tls_config(&c->tls, NNG_TLS_MODE_CLIENT, o ? o->tls_cert : NULL,
	    o ? o->tls_key : NULL, o ? o->tls_ca : NULL, err, sizeof(err));
	if (rv != LM_OK) {
		lm_error("client.tls", "%s", err);
		return rv;
	}
	if (o == NULL || !given(o->tls_ca))
		lm_warn("client.tls.unverified",
		    "no TLS CA given: the server's certificate is not verified");
	name = o && given(o->tls_server_name) ? o->tls_server_name : NULL;
	if (name == NULL) {
		if ((nrv = nng_url_parse(&u, url)) != 0) {
			lm_error("client.url", "bad URL %s: %s", url, nng_strerror(nrv));
			return LM_EINVAL;
		}
		name = u->u_hostname;
	}
	nrv = name && *name ? nng_tls_config_server_name(c->tls, name) : 0;
	if (u != NULL)
		nng_url_free(u);
	if (nrv != 0) {
		lm_error("client.tls", "TLS server name: %s", nng_strerror(nrv));
		return err_from_nng(nrv);
	}
	return LM_OK;
}

int
lm_client_open(const char *url, const lm_client_opts *o, lm_client **out)
{
	lm_client *c;
	int rv;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (url == NULL || *url == '\0')
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return LM_ENOMEM;
	c->default_timeout_ms = o && o->default_timeout_ms ? o->default_timeout_ms
	                                                   : LM_RPC_DEFAULT_TIMEOUT_MS;
	c->max_resp = o && o->max_response_bytes ? o->max_response_bytes
	                                         : LM_RPC_DEFAULT_MAX_RESPONSE;
	if (getrandom(&c->id_base, sizeof(c->id_base), GRND_NONBLOCK) !=
	    (ssize_t) sizeof(c->id_base))
		c->id_base = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32) ^
		             (uint64_t) (uintptr_t) c;
	atomic_init(&c->id_seq, 0);

	if ((rv = nng_req0_open(&c->sock)) != 0) {
		free(c);
		return err_from_nng(rv);
	}
	if ((rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->max_resp)) != 0 ||
	    (rv = nng_socket_set_ms(
	         c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, RECONNECT_MIN_MS)) !=
	        0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, RECONNECT_MAX_MS)) !=
	        0) {
		rv = err_from_nng(rv);
		goto fail;
	}
	if ((rv = nng_dialer_create(&c->dialer, c->sock, url)) != 0) {
		lm_error("client.url", "cannot dial %s: %s", url, nng_strerror(rv));
		rv = LM_EINVAL;
		goto fail;
	}
	if (lm_rpc_url_is_tls(url)) {
		if ((rv = client_tls(c, url, o)) != LM_OK)
			goto fail;
		if ((rv = nng_dialer_set_ptr(c->dialer, NNG_OPT_TLS_CONFIG, c->tls)) !=
		    0) {
			lm_error("client.tls", "TLS on %s: %s", url, nng_strerror(rv));
			rv = LM_ENNG;
			goto fail;
		}
	} else if (o != NULL && (given(o->tls_cert) || given(o->tls_ca))) {
		lm_warn("client.tls.unused",
		    "TLS files are set but %s is not a tls+tcp:// URL", url);
	}
	/* Non-blocking: the dialer keeps retrying in the background. */
	if ((rv = nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK)) != 0) {
		lm_error("client.dial", "cannot dial %s: %s", url, nng_strerror(rv));
		rv = LM_ENNG;
		goto fail;
	}
	*out = c;
	return LM_OK;
fail:
	lm_client_close(c);
	return rv;
}

static void
set_err(char *errmsg, size_t errlen, const char *text)
{
	if (errmsg != NULL && errlen > 0)
		snprintf(errmsg, errlen, "%s", text);
}

/* Encodes the envelope into a new nng message. */
static int
build_request(lm_client *c, const char *method, const ProtobufCMessage *req,
    unsigned timeout_ms, char *reqid, size_t idlen, nng_msg **out)
{
	Lunamatch__V1__RpcRequest env = LUNAMATCH__V1__RPC_REQUEST__INIT;
	char full[LM_RPC_MAX_METHOD + 1];
	size_t plen, n;
	uint8_t *payload;
	int rv;

	if ((rv = lm_rpc_method_name(method, full, sizeof(full))) != LM_OK)
		return LM_EINVAL;
	plen = protobuf_c_message_get_packed_size(req);
	if (plen > CLIENT_MAX_REQUEST)
		return LM_EINVAL;
	payload = malloc(plen ? plen : 1);
	if (payload == NULL)
		return LM_ENOMEM;
	protobuf_c_message_pack(req, payload);
	snprintf(reqid, idlen, "%016llx-%llu", (unsigned long long) c->id_base,
	    (unsigned long long) atomic_fetch_add(&c->id_seq, 1) + 1);
	env.method = full;
	env.request_id = reqid;
	env.timeout_ms = timeout_ms;
	env.payload.data = payload;
	env.payload.len = plen;
	n = protobuf_c_message_get_packed_size(&env.base);
	if ((rv = nng_msg_alloc(out, n)) != 0) {
		free(payload);
		return err_from_nng(rv);
	}
	protobuf_c_message_pack(&env.base, nng_msg_body(*out));
	free(payload);
	return LM_OK;
}

int
lm_client_call(lm_client *c, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *resp_desc, unsigned timeout_ms,
    ProtobufCMessage **resp, int *status, char *errmsg, size_t errlen)
{
	Lunamatch__V1__RpcResponse *env = NULL;
	char reqid[64], err[256];
	nng_msg *msg = NULL;
	nng_aio *aio = NULL;
	nng_ctx ctx;
	bool ctx_open = false;
	nng_time start, deadline, now;
	int st = ST_INTERNAL, rv, nrv;

	set_err(errmsg, errlen, "");
	if (resp != NULL)
		*resp = NULL;
	if (c == NULL || method == NULL || req == NULL || resp == NULL ||
	    resp_desc == NULL) {
		st = ST_INVALID;
		set_err(errmsg, errlen, "invalid arguments");
		rv = LM_EINVAL;
		goto out;
	}
	if (timeout_ms == 0)
		timeout_ms = c->default_timeout_ms;
	if (timeout_ms > LM_RPC_MAX_TIMEOUT_MS)
		timeout_ms = LM_RPC_MAX_TIMEOUT_MS;
	start = nng_clock();
	deadline = start + timeout_ms + LM_CLIENT_DEADLINE_GRACE_MS;

	rv = build_request(c, method, req, timeout_ms, reqid, sizeof(reqid), &msg);
	if (rv != LM_OK) {
		st = rv == LM_EINVAL ? ST_INVALID : ST_INTERNAL;
		set_err(errmsg, errlen,
		    rv == LM_EINVAL ? "bad method name or request too large"
		                    : lm_strerror(rv));
		goto out;
	}
	if ((nrv = nng_aio_alloc(&aio, NULL, NULL)) != 0 ||
	    (nrv = nng_ctx_open(&ctx, c->sock)) != 0) {
		rv = err_from_nng(nrv);
		st = ST_UNAVAILABLE;
		set_err(errmsg, errlen, nng_strerror(nrv));
		goto out;
	}
	ctx_open = true;

	/* Send: completes once the request is handed to a connection. */
	nng_aio_set_msg(aio, msg);
	nng_aio_set_timeout(aio, (nng_duration) (timeout_ms));
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((nrv = nng_aio_result(aio)) != 0) {
		/* The message is still ours. */
		if (nrv == NNG_ETIMEDOUT) {
			rv = LM_ETIMEDOUT;
			st = ST_UNAVAILABLE;
			set_err(errmsg, errlen, "no connection to the server");
		} else {
			rv = err_from_nng(nrv);
			st = ST_UNAVAILABLE;
			set_err(errmsg, errlen, nng_strerror(nrv));
		}
		goto out;
	}
	msg = NULL;

	now = nng_clock();
	nng_aio_set_timeout(aio, (nng_duration) (now < deadline ? deadline - now : 1));
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((nrv = nng_aio_result(aio)) != 0) {
		rv = nrv == NNG_ETIMEDOUT ? LM_ETIMEDOUT : err_from_nng(nrv);
		st = nrv == NNG_ETIMEDOUT ? ST_DEADLINE : ST_UNAVAILABLE;
		set_err(errmsg, errlen,
		    nrv == NNG_ETIMEDOUT ? "no answer before the deadline"
		                         : nng_strerror(nrv));
		goto out;
	}
	msg = nng_aio_get_msg(aio);
	rv = lm_pb_decode(&lunamatch__v1__rpc_response__descriptor, nng_msg_body(msg),
	    nng_msg_len(msg), c->max_resp, (ProtobufCMessage **) &env, err, sizeof(err));
	if (rv != LM_OK) {
		rv = LM_EPARSE;
		st = ST_INTERNAL;
		set_err(errmsg, errlen, "unreadable answer from the server");
		goto out;
	}
	/* The server echoes our id; it answers "" only when it could not read
	 * the request, and never with OK then. */
	if (strcmp(env->request_id, reqid) != 0 &&
	    !(env->request_id[0] == '\0' && env->code != ST_OK)) {
		rv = LM_EPARSE;
		st = ST_INTERNAL;
		set_err(errmsg, errlen, "answer carries another request_id");
		goto out;
	}
	st = (int) env->code;
	set_err(errmsg, errlen, env->message ? env->message : "");
	if (st == ST_OK) {
		rv = lm_pb_decode(resp_desc, env->payload.data, env->payload.len,
		    c->max_resp, resp, err, sizeof(err));
		if (rv != LM_OK) {
			*resp = NULL;
			rv = LM_EPARSE;
			st = ST_INTERNAL;
			if (errmsg != NULL && errlen > 0)
				snprintf(errmsg, errlen,
				    "unreadable %s in the answer: %s", resp_desc->name,
				    err);
			goto out;
		}
	}
	rv = LM_OK;
out:
	if (env != NULL)
		protobuf_c_message_free_unpacked(&env->base, NULL);
	nng_msg_free(msg);
	if (ctx_open)
		nng_ctx_close(ctx);
	nng_aio_free(aio);
	if (status != NULL)
		*status = st;
	return rv;
}

#define TYPED(fn, Method, Req, Resp, desc)                                               \
	int fn(lm_client *c, const Req *req, unsigned timeout_ms, Resp **resp,           \
	    int *status, char *errmsg, size_t errlen)                                    \
	{                                                                                \
		return lm_client_call(c, Method, req ? &req->base : NULL, &desc,         \
		    timeout_ms, (ProtobufCMessage **) resp, status, errmsg, errlen);     \
	}

TYPED(lm_client_match_jobs, "MatchJobs", Lunamatch__V1__MatchJobsRequest,
    Lunamatch__V1__MatchJobsResponse, lunamatch__v1__match_jobs_response__descriptor)
TYPED(lm_client_match_candidates, "MatchCandidates",
    Lunamatch__V1__MatchCandidatesRequest, Lunamatch__V1__MatchCandidatesResponse,
    lunamatch__v1__match_candidates_response__descriptor)
TYPED(lm_client_explain_match, "ExplainMatch", Lunamatch__V1__ExplainMatchRequest,
    Lunamatch__V1__ExplainMatchResponse,
    lunamatch__v1__explain_match_response__descriptor)
TYPED(lm_client_get_posting, "GetPosting", Lunamatch__V1__GetPostingRequest,
    Lunamatch__V1__GetPostingResponse, lunamatch__v1__get_posting_response__descriptor)
TYPED(lm_client_get_profile, "GetProfile", Lunamatch__V1__GetProfileRequest,
    Lunamatch__V1__GetProfileResponse, lunamatch__v1__get_profile_response__descriptor)
TYPED(lm_client_check, "Check", Lunamatch__V1__HealthCheckRequest,
    Lunamatch__V1__HealthCheckResponse, lunamatch__v1__health_check_response__descriptor)
