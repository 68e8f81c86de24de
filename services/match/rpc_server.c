/*
 * rpc_server.c - nng REQ/REP server with a worker pool; see rpc_server.h.
 *
 * Life of a request. Each slot owns one nng context and one aio and moves
 * through S_RECV (waiting for a request) → handed to the queue → a worker
 * builds the reply → S_SEND (reply handed to nng) → S_RECV again. The aio
 * callback runs on an nng thread: it only takes the message, answers at
 * once when the request cannot be queued, or re-arms the context. Workers
 * do everything that takes time (decoding, the handler, encoding). A
 * method's commit may hold the encoded reply (S_WORK, in sl->held): the
 * worker leaves the slot, and finish_held sends the reply from the thread
 * that completes the commit.
 *
 * Ownership. The request message belongs to the slot from the receive
 * callback until it is reused for the reply and handed to nng_ctx_send; a
 * failed send gives it back, and the send callback frees it. "inflight"
 * counts slots between a completed receive and a completed send (or the
 * request's drop); each connection counts the same for its own requests,
 * which is what keeps the idle sweeper off a connection that waits for an
 * answer. "accepted" counts the part of those that a worker took on, which
 * is what drain waits for: the refusals answered from the callback (too
 * large, queue full, draining) do not count, or steady retry traffic
 * against a draining server would hold drain to its timeout.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/memlimit.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "rpc_server.h"

#define N_CODES 17 /* lunamatch.v1.StatusCode values 0..16 */
#define URL_MAX 512

#define CODE_OK            LUNAMATCH__V1__STATUS_CODE__OK
#define CODE_INVALID       LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT
#define CODE_DEADLINE      LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED
#define CODE_EXHAUSTED     LUNAMATCH__V1__STATUS_CODE__RESOURCE_EXHAUSTED
#define CODE_UNIMPLEMENTED LUNAMATCH__V1__STATUS_CODE__UNIMPLEMENTED
#define CODE_INTERNAL      LUNAMATCH__V1__STATUS_CODE__INTERNAL
#define CODE_UNAVAILABLE   LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE

/* Reasons for lunamatch_rpc_rejected_total: a fixed, closed set. */
enum reject {
	REJ_QUEUE_FULL,
	REJ_TOO_LARGE,
	REJ_DRAINING,
	REJ_EXPIRED,
	REJ_BAD_REQUEST,
	N_REJ
};
static const char *const reject_names[N_REJ] = {
    "queue_full", "too_large", "draining", "expired", "bad_request"};

enum slot_state { S_IDLE, S_RECV, S_WORK, S_SEND };

struct slot {
	lm_rpc_server *s;
	nng_ctx ctx;
	nng_aio *aio;
	int state;        /* enum slot_state; touched by one thread at a time */
	nng_msg *msg;     /* the request while queued or being worked on */
	uint32_t pipe;    /* id of the pipe the request came on */
	nng_time recv_ms; /* nng_clock() at receipt: deadlines */
	uint64_t recv_ns; /* CLOCK_MONOTONIC at receipt: latency */
	bool accepted;    /* counted in s->accepted (s->mtx) */
	/* While queued (s->mtx): the next queued request of the same pipe;
	 * in the first one of its pipe (the one in s->ring), the last one
	 * and how many its pipe has queued. */
	struct slot *qnext, *qtail;
	unsigned qn;
	size_t reply_len; /* bytes of the reply being sent (S_SEND) */
	/* While a commit holds the reply (LM_RPC_HELD): the encoded OK reply
	 * and what an answer that replaces it needs. */
	nng_msg *held;
	int mi;
	uint64_t deadline, timeout;
	/* The request id: of the held call, or of a request refused before
	 * its envelope was decoded (then read from the wire). */
	char reqid[LM_RPC_MAX_REQUEST_ID + 1];
};

/*
 * An open connection: its peer address, its requests in flight and since
 * when it has been idle. Guarded by peer_mtx.
 */
struct conn_entry {
	uint32_t pipe; /* nng pipe id; 0 = free */
	bool inet;     /* tcp: addr is its peer; counts against max_per_peer */
	uint8_t addr[16];
	unsigned inflight; /* requests received and not yet answered or dropped */
	/* Its last answer was of LM_RPC_PINNED_REPLY_BYTES or more, and no
	 * request came since (see sweeper_main). */
	bool big_reply;
	/* nng_clock of its admission, its last request or its last answer,
	 * whichever came last; INT64_MAX once it is being closed
	 * (entry_close). Atomic. */
	int64_t last_ms;
	/* nng_clock from which it is closed at the first sweep that finds it
	 * with no request in flight and none nor an answer for
	 * LM_RPC_AGE_QUIET_MS: its admission plus max_connection_age_ms, give
	 * or take a random tenth; INT64_MAX with no maximum age. */
	int64_t age_ms;
};

struct lm_rpc_server {
	/* Configuration (immutable after new). */
	char url[URL_MAX];
	unsigned ncontexts, nworkers, queue_cap;
	size_t max_req;
	unsigned default_timeout_ms;
	const ProtobufCServiceDescriptor *svc;
	lm_rpc_handler *handlers; /* by method index in svc */
	lm_rpc_commit *commits;   /* by method index; NULL entries: none */
	void *arg;
	nng_tls_config *tls_server; /* NULL unless tls+tcp:// */
	nng_tls_config *tls_probe;  /* client side of the self-probe */

	/* Metrics (all may be NULL). Every series the server touches is
	 * registered by lm_rpc_server_new, so that nng callbacks only do
	 * atomic adds and never take the registry mutex. */
	lm_metrics *m;
	lm_counter **req_total; /* [(nmethods + 1) * N_CODES] */
	lm_histogram **latency; /* [nmethods + 1] */
	lm_gauge *inflight_g;
	lm_counter *rejected[N_REJ];
	lm_counter *restarts;
	lm_gauge *conns_g;
	lm_counter *conns_refused, *peer_refused;

	/* nng. */
	nng_socket sock;
	bool sock_open;
	/* nng_close did not finish in time: nng may still call pipe_cb, so
	 * the server is never freed (lm_rpc_server_close_stuck). */
	atomic_bool close_stuck;
	nng_listener listener;
	pthread_mutex_t lmtx;    /* listener restarts and drain/free */
	char bound_url[URL_MAX]; /* what restarts listen on */
	char dial_url[URL_MAX];  /* what the probe dials */
	struct slot *slots;
	atomic_bool started, draining, closing, serving;
	atomic_uint nng_busy; /* context operations in progress */

	/* Self-probe (pmtx serializes probes). While probe_active, the receive
	 * callback looks for probe_id and sets probe_seen: a probe that never
	 * reaches the server means a dead listener even when nng's REQ side
	 * believes it is connected (nng #1518 on ipc://). */
	pthread_mutex_t pmtx;
	char probe_id[32];     /* "probe-<probe_seq>"; pmtx */
	atomic_uint probe_seq; /* the probe in progress */
	atomic_bool probe_active, probe_seen;
	/* Evidence that the listener is alive although a probe went
	 * unanswered: pipes the socket accepted (NNG_PIPE_EV_ADD_POST) and
	 * requests received, both ever-increasing. */
	atomic_uint pipes_added;
	atomic_uint requests_received;
	/* lm_rpc_server_set_recv_hook's (immutable once started). */
	void (*recv_hook)(void *arg);
	void *recv_hook_arg;

	/* Connections: every pipe counts from NNG_PIPE_EV_ADD_PRE to
	 * NNG_PIPE_EV_REM_POST (nng sends REM_POST for rejected pipes too). */
	unsigned max_conns;
	atomic_uint conns;
	/* Of them, those in tab: changed under peer_mtx, with the gauge
	 * conns_g, so that the two never disagree for long. */
	atomic_uint admitted;
	atomic_uint conns_refused_n; /* ever-increasing */
	/* Open connections (peer_mtx): a hash table by pipe id with linear
	 * probing, ntab (a power of two, at least 2 * max_conns) entries. */
	unsigned max_per_peer;
	pthread_mutex_t peer_mtx;
	struct conn_entry *tab;
	size_t ntab;
	/* Idle connections, and those older than age_ms (0: none), are
	 * closed by the sweeper thread. */
	unsigned idle_ms;
	unsigned age_ms;
	/* send_timeout_ms (see lm_rpc_server_opts). */
	unsigned send_ms;
	pthread_t sweeper;
	bool sweeper_on;
	pthread_mutex_t sweep_mtx;
	pthread_cond_t sweep_cv; /* monotonic clock */
	bool sweep_stop;
	lm_counter *idle_closed;
	lm_counter *send_closed;
	lm_counter *aged_closed;

	/* Worker pool and queue (mtx). The queue is fair between pipes:
	 * each pipe's requests wait in their order of arrival, linked through
	 * the slots, and ring holds the first queued request of every pipe
	 * that has any (at most ncontexts: each holds a context). A worker
	 * takes the request at the ring's head and puts the next one of the
	 * same pipe, if any, at the ring's tail, so that a request waits for
	 * at most one request of every other pipe with requests queued. qlen
	 * counts the requests queued, at most queue_cap. */
	pthread_mutex_t mtx;
	pthread_cond_t work_cv; /* queue not empty, or stop */
	pthread_cond_t idle_cv; /* accepted or held fell to 0; monotonic clock */
	struct slot **ring;     /* [ncontexts] */
	unsigned rhead, rlen, qlen;
	unsigned inflight;
	unsigned accepted; /* requests queued and not yet answered: drain */
	unsigned held;     /* calls a commit holds; free waits for them (idle_cv) */
	/* When the last spell of every context busy ended (nng_clock; 0:
	 * never): see the sweeper. */
	int64_t all_busy_ms;
	bool stop;
	bool stopped; /* lm_rpc_server_stop ran (owner thread only) */
	pthread_t *threads;
	unsigned nthreads;
};

/* ---- metrics ---------------------------------------------------------- */

static const char *
method_label(const lm_rpc_server *s, int mi)
{
	return mi >= 0 ? s->svc->methods[mi].name : "unknown";
}

static void
count_request(lm_rpc_server *s, int mi, int code, uint64_t recv_ns)
{
	size_t row = mi >= 0 ? (size_t) mi : s->svc->n_methods;

	if (s->m == NULL)
		return;
	if (code < 0 || code >= N_CODES)
		code = CODE_INTERNAL;
	lm_counter_add(s->req_total[row * N_CODES + (size_t) code], 1);
	lm_histogram_observe(s->latency[row], (double) (lm_clock_ns() - recv_ns) / 1e9);
}

static int
metrics_init(lm_rpc_server *s)
{
	char labels[256];
	size_t rows = s->svc->n_methods + 1;

	if (s->m == NULL)
		return LM_OK;
	s->req_total = calloc(rows * N_CODES, sizeof(*s->req_total));
	s->latency = calloc(rows, sizeof(*s->latency));
	if (s->req_total == NULL || s->latency == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < rows; i++) {
		snprintf(labels, sizeof(labels), "method=\"%s\"",
		    method_label(s, i < s->svc->n_methods ? (int) i : -1));
		s->latency[i] =
		    lm_metrics_histogram(s->m, "lunamatch_rpc_latency_seconds",
		        "RPC latency from receipt to reply, by method", labels,
		        lm_latency_bounds, lm_latency_nbounds);
	}
	/* Every method (and "unknown") with every code count_request can
	 * use: a handler may return any status code. */
	for (size_t i = 0; i < rows; i++)
		for (int code = 0; code < N_CODES; code++) {
			snprintf(labels, sizeof(labels), "method=\"%s\",code=\"%s\"",
			    method_label(s, i < s->svc->n_methods ? (int) i : -1),
			    lm_rpc_status_name(code));
			s->req_total[i * N_CODES + (size_t) code] = lm_metrics_counter(
			    s->m, "lunamatch_rpc_requests_total",
			    "RPC requests answered, by method and status code", labels);
		}
	s->inflight_g = lm_metrics_gauge(s->m, "lunamatch_rpc_inflight",
	    "RPC requests received and not yet answered", NULL);
	/* inflight's ceiling: a server at it keeps further requests waiting
	 * in their connections, unseen (the overload alert compares them). */
	lm_gauge_set(lm_metrics_gauge(s->m, "lunamatch_rpc_contexts",
	                 "RPC contexts: the most requests in flight at once", NULL),
	    s->ncontexts);
	for (int r = 0; r < N_REJ; r++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", reject_names[r]);
		s->rejected[r] = lm_metrics_counter(s->m, "lunamatch_rpc_rejected_total",
		    "RPC requests refused before reaching a handler, by reason", labels);
	}
	s->restarts = lm_metrics_counter(s->m, "lunamatch_rpc_listener_restarts_total",
	    "RPC listener restarts after a failed self-probe", NULL);
	s->conns_g = lm_metrics_gauge(s->m, "lunamatch_rpc_connections",
	    "RPC connections open and admitted (handshake done; refused ones never "
	    "count)",
	    NULL);
	s->conns_refused =
	    lm_metrics_counter(s->m, "lunamatch_rpc_connections_refused_total",
	        "RPC connections closed at once: max_connections open (reason=\"full\"), "
	        "or max_connections_per_peer from its address (reason=\"per_peer\")",
	        "reason=\"full\"");
	s->peer_refused =
	    lm_metrics_counter(s->m, "lunamatch_rpc_connections_refused_total",
	        "RPC connections closed at once: max_connections open (reason=\"full\"), "
	        "or max_connections_per_peer from its address (reason=\"per_peer\")",
	        "reason=\"per_peer\"");
	s->idle_closed =
	    lm_metrics_counter(s->m, "lunamatch_rpc_connections_idle_closed_total",
	        "RPC connections closed after idle_timeout_ms with no request in flight",
	        NULL);
	s->send_closed =
	    lm_metrics_counter(s->m, "lunamatch_rpc_connections_send_closed_total",
	        "RPC connections closed because a reply could not be handed to them "
	        "for send_timeout_ms (the peer does not read)",
	        NULL);
	s->aged_closed = lm_metrics_counter(s->m, "lunamatch_rpc_connections_aged_total",
	    "RPC connections closed after max_connection_age_ms (give or take a tenth) "
	    "at a moment with no request in flight after a pause of 10 ms, so "
	    "that clients redial and new replicas get "
	    "connections",
	    NULL);
	return LM_OK;
}

/* ---- in-flight accounting -------------------------------------------- */

static bool conn_begin(lm_rpc_server *s, uint32_t pipe);
static void conn_end(lm_rpc_server *s, uint32_t pipe, size_t reply_len);
static bool conn_mark_closing(lm_rpc_server *s, uint32_t pipe);

/* A request arrived on the slot's pipe (sl->pipe): counted in flight for
 * the server and for its connection until call_end. Returns false when
 * its connection is being closed or gone (see conn_begin): no answer can
 * reach the caller, and the request must be dropped unhandled. */
static bool
call_begin(struct slot *sl)
{
	lm_rpc_server *s = sl->s;
	bool open = conn_begin(s, sl->pipe);

	pthread_mutex_lock(&s->mtx);
	s->inflight++;
	pthread_mutex_unlock(&s->mtx);
	lm_gauge_add(s->inflight_g, 1);
	return open;
}

/* The slot's request was answered (the reply's send completed, whether or
 * not it reached the peer) or dropped: exactly once per call_begin. */
static void
call_end(struct slot *sl)
{
	lm_rpc_server *s = sl->s;

	conn_end(s, sl->pipe, sl->state == S_SEND ? sl->reply_len : 0);
	pthread_mutex_lock(&s->mtx);
	if (s->inflight >= s->ncontexts) /* the end of a busy spell */
		s->all_busy_ms = (int64_t) nng_clock();
	if (s->inflight > 0)
		s->inflight--;
	if (sl->accepted) {
		sl->accepted = false;
		if (--s->accepted == 0)
			pthread_cond_broadcast(&s->idle_cv);
	}
	pthread_mutex_unlock(&s->mtx);
	lm_gauge_add(s->inflight_g, -1);
}

/* ---- slots ------------------------------------------------------------ */

/*
 * nng 1.5.2 can touch a freed socket when nng_ctx_send/recv race with
 * nng_close (it panics in a mutex of the closed socket). Every context
 * operation is bracketed by nng_enter/nng_leave, and close_socket waits for
 * the brackets to empty after setting closing: no operation starts after
 * that and none is in progress when nng_close runs. The calls inside are
 * non-blocking, so the wait is short.
 */
static bool
nng_enter(lm_rpc_server *s)
{
	atomic_fetch_add(&s->nng_busy, 1);
	if (atomic_load(&s->closing)) {
		atomic_fetch_sub(&s->nng_busy, 1);
		return false;
	}
	return true;
}

static void
nng_leave(lm_rpc_server *s)
{
	atomic_fetch_sub(&s->nng_busy, 1);
}

/* Waits for the next request on the slot's context, unless closing. */
static void
arm_recv(struct slot *sl)
{
	if (!nng_enter(sl->s)) {
		sl->state = S_IDLE;
		return;
	}
	sl->state = S_RECV;
	nng_aio_set_timeout(sl->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(sl->ctx, sl->aio);
	nng_leave(sl->s);
}

/* Hands the reply to nng; the send callback completes the call. */
static void
send_reply(struct slot *sl, nng_msg *msg)
{
	if (!nng_enter(sl->s)) {
		nng_msg_free(msg);
		call_end(sl);
		sl->state = S_IDLE;
		return;
	}
	sl->state = S_SEND;
	sl->reply_len = nng_msg_len(msg);
	nng_aio_set_msg(sl->aio, msg);
	nng_aio_set_timeout(sl->aio, (nng_duration) sl->s->send_ms);
	nng_ctx_send(sl->ctx, sl->aio);
	nng_leave(sl->s);
}

/* The tag of RpcResponse.payload (field 4, length-delimited). */
#define PAYLOAD_TAG ((4u << 3) | 2u)

/*
 * Replaces the body of msg by the serialized response r with payload (may
 * be NULL), the method's response message, packed straight into msg as
 * field 4: r->payload must be empty then. The bytes are those protobuf-c
 * would write for r with the packed payload in r->payload, without packing
 * the payload into a buffer of its own first.
 */
static int
put_response(
    nng_msg *msg, const Lunamatch__V1__RpcResponse *r, const ProtobufCMessage *payload)
{
	size_t head = protobuf_c_message_get_packed_size(&r->base);
	size_t n = payload != NULL ? protobuf_c_message_get_packed_size(payload) : 0;
	size_t nlen = 1;
	uint8_t *p;

	for (size_t v = n; v >= 0x80; v >>= 7)
		nlen++;
	nng_msg_clear(msg);
	if (nng_msg_realloc(msg, head + (n > 0 ? 1 + nlen + n : 0)) != 0)
		return LM_ENOMEM;
	p = nng_msg_body(msg);
	p += protobuf_c_message_pack(&r->base, p);
	if (n > 0) {
		size_t v = n;
		*p++ = PAYLOAD_TAG;
		for (; v >= 0x80; v >>= 7)
			*p++ = (uint8_t) (v | 0x80);
		*p++ = (uint8_t) v;
		protobuf_c_message_pack(payload, p);
	}
	return LM_OK;
}

/*
 * Makes text (NUL-terminated, cut by snprintf to fit a buffer of
 * LM_RPC_MAX_MESSAGE bytes) a valid RpcResponse.message for status code:
 * proto3 strings must be UTF-8, and a reader that checks (the C client
 * does) refuses the whole answer otherwise. A multi-byte character split
 * by the cut is dropped whole, so the text ends with its last complete
 * UTF-8 sequence. A text that is not UTF-8 before that (a handler or a
 * commit broke its contract) is logged and replaced by the status name.
 */
static void
fit_message(char *text, int code)
{
	size_t n = lm_pb_utf8_fit(text, strlen(text));

	text[n] = '\0';
	if (!lm_pb_utf8_valid(text, n)) {
		lm_error("rpc.reply.bad_message",
		    "the reason of a %s answer is not UTF-8; sent the status name "
		    "instead",
		    lm_rpc_status_name(code));
		snprintf(text, LM_RPC_MAX_MESSAGE, "%s", lm_rpc_status_name(code));
	}
}

/* Sends the response (reusing msg) or, when it cannot be built, drops the
 * call: the caller then times out. */
static void
reply(struct slot *sl, nng_msg *msg, const Lunamatch__V1__RpcResponse *r,
    const ProtobufCMessage *payload)
{
	if (put_response(msg, r, payload) != LM_OK) {
		lm_error("rpc.reply.nomem", "cannot build a reply of %zu bytes",
		    protobuf_c_message_get_packed_size(&r->base));
		nng_msg_free(msg);
		call_end(sl);
		arm_recv(sl);
		return;
	}
	send_reply(sl, msg);
}

/* Index of a full method name in the service, or -1. */
static int
find_method(const lm_rpc_server *s, const char *full)
{
	const char *name = lm_rpc_method_short(full);
	const ProtobufCMethodDescriptor *md;

	if (name == NULL)
		return -1;
	md = protobuf_c_service_descriptor_get_method_by_name(s->svc, name);
	return md ? (int) (md - s->svc->methods) : -1;
}

/* Answers from the nng callback, before any worker saw the request. */
static void early_reply(struct slot *sl, int code, enum reject why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
early_reply(struct slot *sl, int code, enum reject why, const char *fmt, ...)
{
	lm_rpc_server *s = sl->s;
	Lunamatch__V1__RpcResponse r = LUNAMATCH__V1__RPC_RESPONSE__INIT;
	char method[LM_RPC_MAX_METHOD + 1], reqid[LM_RPC_MAX_REQUEST_ID + 1];
	char text[LM_RPC_MAX_MESSAGE];
	nng_msg *msg = sl->msg;
	va_list ap;

	sl->msg = NULL;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fit_message(text, code);
	lm_rpc_envelope_scan(nng_msg_body(msg), nng_msg_len(msg), method, reqid, NULL);
	r.request_id = reqid;
	r.code = (Lunamatch__V1__StatusCode) code;
	r.message = text;
	lm_counter_add(s->rejected[why], 1);
	count_request(s, find_method(s, method), code, sl->recv_ns);
	reply(sl, msg, &r, NULL);
}

/* Puts head, the first queued request of its pipe, at the ring's tail
 * (mtx held). */
static void
ring_put(lm_rpc_server *s, struct slot *head)
{
	s->ring[(s->rhead + s->rlen) % s->ncontexts] = head;
	s->rlen++;
}

/* The first queued request of pipe, or NULL (mtx held). Linear in the
 * pipes with requests queued. */
static struct slot *
ring_find(const lm_rpc_server *s, uint32_t pipe)
{
	for (unsigned i = 0; i < s->rlen; i++) {
		struct slot *h = s->ring[(s->rhead + i) % s->ncontexts];
		if (h->pipe == pipe)
			return h;
	}
	return NULL;
}

/*
 * With the queue full, the queued request that an arriving one, whose pipe
 * has mine requests queued, takes the place of (mtx held): the newest of
 * the pipe with the most queued, when that pipe would still have at least
 * as many as the arriving one's; NULL when none. Removes it from the queue
 * and from accepted: it is the caller's to refuse.
 */
static struct slot *
queue_evict(lm_rpc_server *s, unsigned mine)
{
	struct slot *big = NULL, *prev, *victim;

	for (unsigned i = 0; i < s->rlen; i++) {
		struct slot *h = s->ring[(s->rhead + i) % s->ncontexts];
		if (big == NULL || h->qn > big->qn)
			big = h;
	}
	if (big == NULL || big->qn <= mine + 1)
		return NULL;
	/* big->qn >= 2: its head stays, and the ring does not change. */
	for (prev = big; prev->qnext != big->qtail; prev = prev->qnext)
		;
	victim = big->qtail;
	prev->qnext = NULL;
	big->qtail = prev;
	big->qn--;
	s->qlen--;
	victim->accepted = false;
	s->accepted--;
	return victim;
}

/*
 * Hands the slot to the workers (it then belongs to them) and counts it
 * accepted; or returns why not (REJ_DRAINING, REJ_QUEUE_FULL). When the
 * queue is full, the request may take the place of the newest request of
 * the pipe with the most queued (queue_evict): then it is accepted and
 * *evicted is that request, which the caller refuses as REJ_QUEUE_FULL;
 * otherwise *evicted is NULL. The draining flag is read under mtx, which
 * drain takes after setting it: a request is either refused or seen by
 * drain's wait.
 */
static int
queue_push(lm_rpc_server *s, struct slot *sl, struct slot **evicted)
{
	struct slot *head;
	int why = -1;

	*evicted = NULL;
	pthread_mutex_lock(&s->mtx);
	head = ring_find(s, sl->pipe);
	if (atomic_load(&s->draining)) {
		why = REJ_DRAINING;
	} else if (s->stop || (s->qlen >= s->queue_cap &&
	                          (*evicted = queue_evict(
	                               s, head != NULL ? head->qn : 0)) == NULL)) {
		why = REJ_QUEUE_FULL;
	} else {
		sl->qnext = NULL;
		if (head != NULL) {
			head->qtail->qnext = sl;
			head->qtail = sl;
			head->qn++;
		} else {
			sl->qtail = sl;
			sl->qn = 1;
			ring_put(s, sl);
		}
		s->qlen++;
		sl->accepted = true;
		s->accepted++;
		pthread_cond_signal(&s->work_cv);
	}
	pthread_mutex_unlock(&s->mtx);
	return why;
}

/* Takes the next request off the queue (mtx held, qlen > 0): the first of
 * the pipe at the ring's head; the pipe's next one goes to the tail. */
static struct slot *
queue_pop(lm_rpc_server *s)
{
	struct slot *sl = s->ring[s->rhead], *next = sl->qnext;

	s->rhead = (s->rhead + 1) % s->ncontexts;
	s->rlen--;
	s->qlen--;
	if (next != NULL) {
		next->qtail = sl->qtail;
		next->qn = sl->qn - 1;
		ring_put(s, next);
	}
	sl->qnext = NULL;
	return sl;
}

/* The aio callback of a slot: runs on an nng thread, must not block. */
static void
slot_cb(void *arg)
{
	struct slot *sl = arg, *evicted;
	lm_rpc_server *s = sl->s;
	int rv = nng_aio_result(sl->aio);
	nng_msg *msg;

	if (sl->state == S_SEND) {
		if (rv != 0) {
			/* Not sent (peer gone, socket closed): the message is
			 * still ours. */
			msg = nng_aio_get_msg(sl->aio);
			nng_aio_set_msg(sl->aio, NULL);
			nng_msg_free(msg);
		}
		if (rv == NNG_ETIMEDOUT) {
			/* The peer does not read its replies (see
			 * send_timeout_ms): closing its connection fails
			 * the sends queued behind this one at once. */
			nng_pipe p = NNG_PIPE_INITIALIZER;
			p.id = sl->pipe;
			/* Several replies of the connection time out together:
			 * the first one closes and counts it. */
			if (conn_mark_closing(s, sl->pipe) && nng_pipe_close(p) == 0) {
				lm_counter_add(s->send_closed, 1);
				lm_warn("rpc.send",
				    "a connection did not take its replies for %u ms; "
				    "closed",
				    s->send_ms);
			}
		}
		call_end(sl);
		arm_recv(sl);
		return;
	}
	if (sl->state != S_RECV)
		return;
	if (rv != 0) {
		if (rv == NNG_ECLOSED || atomic_load(&s->closing)) {
			sl->state = S_IDLE;
			return;
		}
		arm_recv(sl);
		return;
	}
	msg = nng_aio_get_msg(sl->aio);
	nng_aio_set_msg(sl->aio, NULL);
	sl->msg = msg;
	sl->pipe = (uint32_t) nng_pipe_id(nng_msg_get_pipe(msg));
	sl->recv_ms = nng_clock();
	sl->recv_ns = lm_clock_ns();
	sl->state = S_WORK;
	atomic_fetch_add(&s->requests_received, 1);
	if (s->recv_hook != NULL)
		s->recv_hook(s->recv_hook_arg);
	if (!call_begin(sl)) {
		/* Its answer could not reach the caller, who sends the
		 * call again on a new connection: handled here too, it
		 * would run twice. */
		sl->msg = NULL;
		nng_msg_free(msg);
		call_end(sl);
		arm_recv(sl);
		return;
	}
	if (atomic_load(&s->probe_active)) {
		char method[LM_RPC_MAX_METHOD + 1], reqid[LM_RPC_MAX_REQUEST_ID + 1];
		char want[32];
		lm_rpc_envelope_scan(
		    nng_msg_body(msg), nng_msg_len(msg), method, reqid, NULL);
		snprintf(want, sizeof(want), "probe-%u", atomic_load(&s->probe_seq));
		if (strcmp(reqid, want) == 0)
			atomic_store(&s->probe_seen, true);
	}
	if (nng_msg_len(msg) > s->max_req) {
		early_reply(sl, CODE_EXHAUSTED, REJ_TOO_LARGE,
		    "request of %zu bytes exceeds the limit of %zu bytes",
		    nng_msg_len(msg), s->max_req);
		return;
	}
	/* After a successful push the slot belongs to a worker. */
	switch (queue_push(s, sl, &evicted)) {
	case REJ_DRAINING:
		early_reply(sl, CODE_UNAVAILABLE, REJ_DRAINING,
		    "server is draining; retry elsewhere");
		break;
	case REJ_QUEUE_FULL:
		early_reply(sl, CODE_EXHAUSTED, REJ_QUEUE_FULL,
		    "server overloaded: request queue full");
		break;
	default:
		if (evicted != NULL)
			early_reply(evicted, CODE_EXHAUSTED, REJ_QUEUE_FULL,
			    "server overloaded: request queue full");
		break;
	}
}

/* ---- workers ----------------------------------------------------------- */

/* lm_pb_decode_capped at the server's request limit (rpc_server.h;
 * LM_PB_DECODE_FLOOR and LM_PB_DECODE_FACTOR, lunamatch/pb.h). */
static int
decode(const lm_rpc_server *s, const ProtobufCMessageDescriptor *desc, const void *data,
    size_t len, ProtobufCMessage **out, char *err, size_t errlen)
{
	return lm_pb_decode_capped(desc, data, len, s->max_req, out, err, errlen);
}

/*
 * Decodes and dispatches one request (sl->msg). Fills r (whose strings may
 * point into *reqp, sl->reqid or text) and returns the method index or -1.
 * On OK, *inp and *outp hold the decoded request payload and the handler's
 * response, and *ctxp the context the handler saw (pointing into *reqp);
 * the caller frees *reqp, *inp and *outp.
 */
static int
handle(lm_rpc_server *s, struct slot *sl, Lunamatch__V1__RpcRequest **reqp,
    ProtobufCMessage **inp, ProtobufCMessage **outp, lm_rpc_ctx *ctxp,
    Lunamatch__V1__RpcResponse *r, char *text, size_t textlen)
{
	Lunamatch__V1__RpcRequest *req = NULL;
	ProtobufCMessage *in = NULL, *out = NULL;
	const ProtobufCMethodDescriptor *md;
	char err[256], method[LM_RPC_MAX_METHOD + 1];
	int mi, code, rv;
	uint64_t timeout, deadline;
	size_t nmeta;
	nng_time now;

	/* The metadata limit is checked on the wire: decoding first would
	 * allocate a message for every entry (two bytes each on the wire). */
	lm_rpc_envelope_scan(
	    nng_msg_body(sl->msg), nng_msg_len(sl->msg), method, sl->reqid, &nmeta);
	if (nmeta > LM_RPC_MAX_METADATA) {
		r->code = CODE_INVALID;
		r->request_id = sl->reqid;
		snprintf(text, textlen,
		    "invalid request envelope: more than %d metadata entries",
		    LM_RPC_MAX_METADATA);
		lm_counter_add(s->rejected[REJ_BAD_REQUEST], 1);
		return -1;
	}
	rv = decode(s, &lunamatch__v1__rpc_request__descriptor, nng_msg_body(sl->msg),
	    nng_msg_len(sl->msg), (ProtobufCMessage **) &req, err, sizeof(err));
	if (rv == LM_ENOMEM) {
		/* The server's failure, not the caller's; only an answer that
		 * is INVALID_ARGUMENT may lack the caller's id (docs/api.md). */
		r->code = CODE_INTERNAL;
		r->request_id = sl->reqid;
		snprintf(text, textlen, "cannot decode the request envelope: %s", err);
		lm_error("rpc.decode.nomem", "%s", text);
		return -1;
	}
	if (rv != LM_OK) {
		r->code = CODE_INVALID;
		snprintf(text, textlen, "%s request envelope: %s",
		    rv == LM_EPARSE ? "malformed" : "refused",
		    err[0] ? err : lm_strerror(rv));
		lm_counter_add(s->rejected[REJ_BAD_REQUEST], 1);
		return -1;
	}
	*reqp = req;
	/* Echoed even when another limit is broken; one over its own limit
	 * cannot be echoed and stays "". */
	if (req->request_id != NULL && strlen(req->request_id) <= LM_RPC_MAX_REQUEST_ID)
		r->request_id = req->request_id;
	if (lm_rpc_request_check(req, err, sizeof(err)) != LM_OK) {
		r->code = CODE_INVALID;
		snprintf(text, textlen, "invalid request envelope: %s", err);
		lm_counter_add(s->rejected[REJ_BAD_REQUEST], 1);
		return -1;
	}
	if (lm_rpc_method_short(req->method) == NULL) {
		r->code = CODE_UNIMPLEMENTED;
		snprintf(text, textlen,
		    "unknown service in method \"%s\"; expected %s<Method>", req->method,
		    LM_RPC_METHOD_PREFIX);
		return -1;
	}
	mi = find_method(s, req->method);
	if (mi < 0) {
		r->code = CODE_UNIMPLEMENTED;
		snprintf(text, textlen, "unknown method \"%s\"", req->method);
		return -1;
	}
	md = &s->svc->methods[mi];
	if (s->handlers[mi] == NULL) {
		r->code = CODE_UNIMPLEMENTED;
		snprintf(text, textlen, "method %s is not implemented", md->name);
		return mi;
	}
	timeout = req->timeout_ms ? req->timeout_ms : s->default_timeout_ms;
	if (timeout > LM_RPC_MAX_TIMEOUT_MS)
		timeout = LM_RPC_MAX_TIMEOUT_MS;
	deadline = (uint64_t) sl->recv_ms + timeout;
	sl->deadline = deadline;
	sl->timeout = timeout;
	now = nng_clock();
	if ((uint64_t) now >= deadline) {
		r->code = CODE_DEADLINE;
		snprintf(text, textlen,
		    "deadline of %llu ms passed while the request waited %llu ms for a "
		    "worker",
		    (unsigned long long) timeout,
		    (unsigned long long) (now - sl->recv_ms));
		lm_counter_add(s->rejected[REJ_EXPIRED], 1);
		return mi;
	}
	rv = decode(
	    s, md->input, req->payload.data, req->payload.len, &in, err, sizeof(err));
	if (rv == LM_ENOMEM) {
		r->code = CODE_INTERNAL;
		snprintf(text, textlen, "cannot decode the %s payload: %s",
		    md->input->name, err);
		lm_error("rpc.decode.nomem", "%s", text);
		return mi;
	}
	if (rv != LM_OK) {
		r->code = CODE_INVALID;
		snprintf(text, textlen, "%s %s payload: %s",
		    rv == LM_EPARSE ? "malformed" : "refused", md->input->name,
		    err[0] ? err : lm_strerror(rv));
		return mi;
	}
	*inp = in;

	*ctxp = (lm_rpc_ctx){
	    .method = md->name,
	    .request_id = req->request_id,
	    .deadline_ms = deadline,
	    .metadata = (const Lunamatch__V1__MetadataEntry *const *) req->metadata,
	    .n_metadata = req->n_metadata,
	};
	text[0] = '\0';
	code = s->handlers[mi](s->arg, ctxp, in, &out, text, textlen);
	text[textlen - 1] = '\0';

	if (code < 0 || code >= N_CODES) {
		lm_error("rpc.handler.bad_code", "method %s returned status %d", md->name,
		    code);
		snprintf(text, textlen, "internal error");
		code = CODE_INTERNAL;
	} else if (code == CODE_OK && (out == NULL || out->descriptor != md->output)) {
		lm_error("rpc.handler.bad_response", "method %s returned %s", md->name,
		    out == NULL ? "no message" : "a message of the wrong type");
		snprintf(text, textlen, "internal error");
		code = CODE_INTERNAL;
	}
	if ((uint64_t) nng_clock() > deadline) {
		code = CODE_DEADLINE;
		snprintf(text, textlen, "deadline of %llu ms passed before %s finished",
		    (unsigned long long) timeout, md->name);
	}
	r->code = (Lunamatch__V1__StatusCode) code;
	if (code == CODE_OK) {
		*outp = out;
		text[0] = '\0';
		return mi;
	}
	if (text[0] == '\0')
		snprintf(text, textlen, "%s", lm_rpc_status_name(code));
	if (out != NULL)
		protobuf_c_message_free_unpacked(out, NULL);
	return mi;
}

/*
 * Sends the reply held in sl->held (see lm_rpc_commit): as it is for code
 * OK within the deadline, else replaced by code with reason why. Counts
 * the call; the slot is the send's afterwards.
 */
static void
finish_held(struct slot *sl, int code, const char *why)
{
	lm_rpc_server *s = sl->s;
	Lunamatch__V1__RpcResponse r = LUNAMATCH__V1__RPC_RESPONSE__INIT;
	const char *name = s->svc->methods[sl->mi].name;
	char text[LM_RPC_MAX_MESSAGE];
	nng_msg *msg = sl->held;

	sl->held = NULL;
	if (code < 0 || code >= N_CODES) {
		lm_error(
		    "rpc.commit.bad_code", "commit of %s returned status %d", name, code);
		code = CODE_INTERNAL;
		why = "internal error";
	}
	if (code == CODE_OK && (uint64_t) nng_clock() > sl->deadline) {
		code = CODE_DEADLINE;
		snprintf(text, sizeof(text),
		    "deadline of %llu ms passed before %s finished",
		    (unsigned long long) sl->timeout, name);
	} else {
		snprintf(text, sizeof(text), "%s",
		    why != NULL && why[0] != '\0' ? why : lm_rpc_status_name(code));
	}
	fit_message(text, code);
	count_request(s, sl->mi, code, sl->recv_ns);
	if (code == CODE_OK) {
		send_reply(sl, msg);
	} else {
		r.request_id = sl->reqid;
		r.code = (Lunamatch__V1__StatusCode) code;
		r.message = text;
		reply(sl, msg, &r, NULL);
	}
	pthread_mutex_lock(&s->mtx);
	if (--s->held == 0)
		pthread_cond_broadcast(&s->idle_cv);
	pthread_mutex_unlock(&s->mtx);
}

/* The lm_rpc_done_fn of held calls. */
static void
call_done(void *call, int code, const char *msg)
{
	finish_held(call, code, msg);
}

/*
 * Gives the encoded OK reply msg of method mi to its commit, which holds it
 * or has it answered through finish_held: either way the slot is no longer
 * the worker's.
 */
static void
commit(lm_rpc_server *s, struct slot *sl, int mi, nng_msg *msg, const lm_rpc_ctx *ctx,
    const ProtobufCMessage *in, const ProtobufCMessage *out)
{
	char text[LM_RPC_MAX_MESSAGE];
	int code;

	sl->held = msg;
	sl->mi = mi;
	snprintf(sl->reqid, sizeof(sl->reqid), "%s",
	    ctx->request_id != NULL && strlen(ctx->request_id) <= LM_RPC_MAX_REQUEST_ID
	        ? ctx->request_id
	        : "");
	pthread_mutex_lock(&s->mtx);
	s->held++;
	pthread_mutex_unlock(&s->mtx);
	text[0] = '\0';
	code = s->commits[mi](s->arg, ctx, in, out, call_done, sl, text, sizeof(text));
	if (code != LM_RPC_HELD) {
		text[sizeof(text) - 1] = '\0';
		finish_held(sl, code, text);
	}
}

static void
work(lm_rpc_server *s, struct slot *sl)
{
	Lunamatch__V1__RpcResponse r = LUNAMATCH__V1__RPC_RESPONSE__INIT;
	Lunamatch__V1__RpcRequest *req = NULL;
	ProtobufCMessage *in = NULL, *out = NULL;
	lm_rpc_ctx ctx;
	char text[LM_RPC_MAX_MESSAGE];
	nng_msg *msg;
	int mi;

	text[0] = '\0';
	mi = handle(s, sl, &req, &in, &out, &ctx, &r, text, sizeof(text));
	fit_message(text, (int) r.code);
	r.message = text;
	msg = sl->msg;
	sl->msg = NULL;
	if (r.code == CODE_OK && put_response(msg, &r, out) != LM_OK) {
		r.code = CODE_INTERNAL;
		snprintf(text, sizeof(text), "out of memory encoding the response");
		protobuf_c_message_free_unpacked(out, NULL);
		out = NULL;
	}
	if (r.code == CODE_OK && s->commits[mi] != NULL) {
		commit(s, sl, mi, msg, &ctx, in, out);
	} else {
		count_request(s, mi, (int) r.code, sl->recv_ns);
		if (r.code == CODE_OK)
			send_reply(sl, msg);
		else
			reply(sl, msg, &r, NULL);
	}
	if (out != NULL)
		protobuf_c_message_free_unpacked(out, NULL);
	if (in != NULL)
		protobuf_c_message_free_unpacked(in, NULL);
	if (req != NULL)
		protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void *
worker_main(void *arg)
{
	lm_rpc_server *s = arg;

	for (;;) {
		struct slot *sl;
		pthread_mutex_lock(&s->mtx);
		while (s->qlen == 0 && !s->stop)
			pthread_cond_wait(&s->work_cv, &s->mtx);
		if (s->stop) {
			pthread_mutex_unlock(&s->mtx);
			return NULL;
		}
		sl = queue_pop(s);
		pthread_mutex_unlock(&s->mtx);
		work(s, sl);
	}
}

/* ---- URLs and the listener -------------------------------------------- */

/* Fills s->bound_url and s->dial_url once the listener is bound. */
static int
compute_urls(lm_rpc_server *s)
{
	nng_url *u = NULL;
	int port = 0, rv;
	const char *host, *dhost;
	bool v6;

	if (strncmp(s->url, "ipc://", 6) == 0 || strncmp(s->url, "inproc://", 9) == 0 ||
	    strncmp(s->url, "abstract://", 11) == 0) {
		snprintf(s->bound_url, sizeof(s->bound_url), "%s", s->url);
		snprintf(s->dial_url, sizeof(s->dial_url), "%s", s->url);
		return LM_OK;
	}
	if ((rv = nng_url_parse(&u, s->url)) != 0)
		return lm_err_from_nng(rv);
	if ((rv = nng_listener_get_int(s->listener, NNG_OPT_TCP_BOUND_PORT, &port)) !=
	    0) {
		nng_url_free(u);
		return lm_err_from_nng(rv);
	}
	host = u->u_hostname ? u->u_hostname : "";
	v6 = strchr(host, ':') != NULL;
	if (*host == '\0' || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0)
		dhost = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		dhost = "::1";
	else
		dhost = host;
	snprintf(s->bound_url, sizeof(s->bound_url), v6 ? "%s://[%s]:%d" : "%s://%s:%d",
	    u->u_scheme, host, port);
	snprintf(s->dial_url, sizeof(s->dial_url),
	    strchr(dhost, ':') ? "%s://[%s]:%d" : "%s://%s:%d", u->u_scheme, dhost, port);
	nng_url_free(u);
	return LM_OK;
}

/*
 * Creates and starts a listener on url (lmtx held or not yet shared).
 * Returns LM_OK; LM_EINVAL for a URL nng does not take (unknown scheme,
 * malformed) or an address that cannot be bound here; LM_EBUSY for an
 * address in use; LM_EACCES when the process may not listen there;
 * LM_ENOENT for an ipc:// path whose directory does not exist or a host
 * name that does not resolve (lm_rpc_url_unresolved); LM_ENOMEM; another
 * lm_err_from_nng code (LM_ENNG) else. Logged with the reason.
 */
static int
listen_on(lm_rpc_server *s, const char *url)
{
	int rv;

	if ((rv = nng_listener_create(&s->listener, s->sock, url)) != 0) {
		/* Only the URL can be refused here (a tcp listener resolves
		 * its host as it is created). */
		bool unresolved = rv == NNG_EADDRINVAL && lm_rpc_url_unresolved(url);
		lm_error("rpc.listen.failed", "cannot listen on %s: %s", url,
		    unresolved ? "its host does not resolve" : nng_strerror(rv));
		return rv == NNG_ENOMEM ? LM_ENOMEM : unresolved ? LM_ENOENT : LM_EINVAL;
	}
	if (s->tls_server != NULL && (rv = nng_listener_set_ptr(s->listener,
	                                  NNG_OPT_TLS_CONFIG, s->tls_server)) != 0) {
		lm_error("rpc.listen.failed", "TLS on %s: %s", url, nng_strerror(rv));
		nng_listener_close(s->listener);
		return lm_err_from_nng(rv);
	}
	if ((rv = nng_listener_start(s->listener, 0)) != 0) {
		bool unresolved = rv == NNG_EADDRINVAL && lm_rpc_url_unresolved(url);
		lm_error("rpc.listen.failed", "cannot listen on %s: %s", url,
		    unresolved ? "its host does not resolve" : nng_strerror(rv));
		nng_listener_close(s->listener);
		return unresolved ? LM_ENOENT : lm_err_from_nng(rv);
	}
	return LM_OK;
}

/* The peer address of a tcp pipe (16 bytes, IPv4 mapped into IPv6); false
 * for other transports. */
static bool
peer_addr(nng_pipe p, uint8_t addr[16])
{
	nng_sockaddr sa;

	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return false;
	memset(addr, 0, 16);
	if (sa.s_family == NNG_AF_INET) {
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &sa.s_in.sa_addr, 4);
		return true;
	}
	if (sa.s_family == NNG_AF_INET6) {
		memcpy(addr, sa.s_in6.sa_addr, 16);
		return true;
	}
	return false;
}

static size_t
conn_slot(const lm_rpc_server *s, uint32_t id)
{
	return (size_t) (id * 2654435761u) & (s->ntab - 1);
}

/* The entry of pipe id, or NULL (peer_mtx held). */
static struct conn_entry *
conn_find(lm_rpc_server *s, uint32_t id)
{
	for (size_t i = conn_slot(s, id);; i = (i + 1) & (s->ntab - 1)) {
		if (s->tab[i].pipe == id)
			return &s->tab[i];
		if (s->tab[i].pipe == 0)
			return NULL;
	}
}

/* The connections open from e's peer address (none counted for a peer
 * without one); peer_mtx held. */
static unsigned
peer_count(const lm_rpc_server *s, const struct conn_entry *e)
{
	unsigned n = 0;

	if (e->inet)
		for (size_t i = 0; i < s->ntab; i++)
			if (s->tab[i].pipe != 0 && s->tab[i].inet &&
			    memcmp(s->tab[i].addr, e->addr, 16) == 0)
				n++;
	return n;
}

/* Whether pipe p's peer address already has max_per_peer open. */
static bool
peer_full(lm_rpc_server *s, nng_pipe p)
{
	struct conn_entry e = {.pipe = (uint32_t) nng_pipe_id(p)};
	bool full;

	e.inet = peer_addr(p, e.addr);
	pthread_mutex_lock(&s->peer_mtx);
	full = peer_count(s, &e) >= s->max_per_peer;
	pthread_mutex_unlock(&s->peer_mtx);
	return full;
}

/* Enters pipe p unless its peer address already has max_per_peer open;
 * false then. The table never fills: it has twice max_conns entries and
 * holds at most max_conns. */
static bool
conn_admit(lm_rpc_server *s, nng_pipe p)
{
	struct conn_entry e = {.pipe = (uint32_t) nng_pipe_id(p)};
	unsigned n;
	size_t i;

	e.inet = peer_addr(p, e.addr);
	e.last_ms = (int64_t) nng_clock();
	e.age_ms = INT64_MAX;
	if (s->age_ms > 0) {
		/* Uniform in [0.9, 1.1] * age_ms. */
		int64_t tenth = (int64_t) s->age_ms / 10;
		int64_t jitter = (int64_t) (nng_random() % (uint64_t) (2 * tenth + 1));
		e.age_ms = e.last_ms + (int64_t) s->age_ms - tenth + jitter;
	}
	pthread_mutex_lock(&s->peer_mtx);
	n = peer_count(s, &e);
	if (n < s->max_per_peer) {
		atomic_fetch_add(&s->admitted, 1);
		lm_gauge_add(s->conns_g, 1);
		for (i = conn_slot(s, e.pipe); s->tab[i].pipe != 0;
		     i = (i + 1) & (s->ntab - 1))
			;
		s->tab[i] = e;
	}
	pthread_mutex_unlock(&s->peer_mtx);
	return n < s->max_per_peer;
}

/* Removes pipe p if it was admitted (backward-shift deletion keeps every
 * probe chain whole). */
static void
conn_release(lm_rpc_server *s, nng_pipe p)
{
	struct conn_entry *e;
	size_t i, j;

	pthread_mutex_lock(&s->peer_mtx);
	if ((e = conn_find(s, (uint32_t) nng_pipe_id(p))) != NULL) {
		i = (size_t) (e - s->tab);
		for (j = (i + 1) & (s->ntab - 1); s->tab[j].pipe != 0;
		     j = (j + 1) & (s->ntab - 1)) {
			size_t h = conn_slot(s, s->tab[j].pipe);
			/* Move j into the hole at i when its home h is not in
			 * the cyclic range (i, j]. */
			if ((j > i && (h <= i || h > j)) ||
			    (j < i && (h <= i && h > j))) {
				s->tab[i] = s->tab[j];
				i = j;
			}
		}
		s->tab[i].pipe = 0;
		atomic_fetch_sub(&s->admitted, 1);
		lm_gauge_add(s->conns_g, -1);
	}
	pthread_mutex_unlock(&s->peer_mtx);
}

/* Restarts e's idle time, unless it is being closed (peer_mtx held). */
static void
entry_touch(struct conn_entry *e)
{
	if (__atomic_load_n(&e->last_ms, __ATOMIC_RELAXED) != INT64_MAX)
		__atomic_store_n(&e->last_ms, (int64_t) nng_clock(), __ATOMIC_RELAXED);
}

/* Marks e as being closed, for good (peer_mtx held). Returns whether it was
 * not already: the first to mark it closes and counts it. */
static bool
entry_close(struct conn_entry *e)
{
	bool first = __atomic_load_n(&e->last_ms, __ATOMIC_RELAXED) != INT64_MAX;

	__atomic_store_n(&e->last_ms, INT64_MAX, __ATOMIC_RELAXED);
	return first;
}

/*
 * Notes a request received on pipe (from the aio callback): in flight on
 * its connection until conn_end. Returns false when the connection is
 * marked as being closed (entry_close) or already removed (its entry gone,
 * not tracked): nng took the request off it after the sweeper, or a timed
 * out send, found it with nothing in flight, and the close drops any
 * answer, so the client sends the call again elsewhere.
 */
static bool
conn_begin(lm_rpc_server *s, uint32_t pipe)
{
	struct conn_entry *e;
	bool open = false;

	pthread_mutex_lock(&s->peer_mtx);
	if ((e = conn_find(s, pipe)) != NULL) {
		e->inflight++;
		e->big_reply = false;
		open = __atomic_load_n(&e->last_ms, __ATOMIC_RELAXED) != INT64_MAX;
		entry_touch(e);
	}
	pthread_mutex_unlock(&s->peer_mtx);
	return open;
}

/* Marks pipe's connection as being closed (as the idle sweeper does).
 * Returns false when it was already: its closer counts it. A pipe not
 * tracked is the caller's to close. */
static bool
conn_mark_closing(lm_rpc_server *s, uint32_t pipe)
{
	struct conn_entry *e;
	bool first = true;

	pthread_mutex_lock(&s->peer_mtx);
	if ((e = conn_find(s, pipe)) != NULL)
		first = entry_close(e);
	pthread_mutex_unlock(&s->peer_mtx);
	return first;
}

/* Notes that a request of pipe was answered (with reply_len bytes) or
 * dropped (0); the connection's idle time starts now. */
static void
conn_end(lm_rpc_server *s, uint32_t pipe, size_t reply_len)
{
	struct conn_entry *e;

	pthread_mutex_lock(&s->peer_mtx);
	if ((e = conn_find(s, pipe)) != NULL && e->inflight > 0) {
		e->inflight--;
		e->big_reply = reply_len >= LM_RPC_PINNED_REPLY_BYTES;
		entry_touch(e);
	}
	pthread_mutex_unlock(&s->peer_mtx);
}

/* Period of the idle sweep. */
#define SWEEP_MS 250
/* Pipes closed per sweep at most; the rest wait for the next one. */
#define SWEEP_BATCH 256

/*
 * The sweeper: every SWEEP_MS closes the connections that have no request
 * in flight (queued, in a handler or held by a commit) and have been idle
 * for idle_ms since their last request or answer (their pipe ids gathered
 * under peer_mtx, closed after it, so that the sweep holds peer_mtx only
 * to gather them). A request that nng takes off such a connection
 * between the two is dropped unhandled (conn_begin). While every context
 * is busy, and for idle_ms after, it closes none as idle: a request that
 * waits in its pipe for a context is not seen as in flight yet, and its
 * connection must not be taken for idle.
 *
 * A connection whose last answer was big (LM_RPC_PINNED_REPLY_BYTES or
 * more) is closed after send_ms without a request instead:
 * nng takes a reply to a connection with nothing else to send at once,
 * the send completes, and the whole message stays in memory until its
 * last byte is written. A peer that never reads would hold it for
 * idle_ms, outside every limit (one per connection: the next reply of
 * the connection waits behind it and its send times out). A client that
 * has read it but stays quiet redials on its next call.
 *
 * A connection past its maximum age (e->age_ms) is closed at the first
 * sweep that finds it with no request in flight and neither a request nor
 * an answer in the last LM_RPC_AGE_QUIET_MS, so that its client dials
 * again and a Service in front of several replicas may give the new
 * connection to another. The pause matters: a client that sends its next
 * call as the last is answered has it on the wire at that moment, and
 * nng 1.5.2 never finishes the teardown of a connection closed while a
 * request arrives (rpc_server.h). Not while every context is busy, nor in
 * the SWEEP_MS after: only then can a request wait in its pipe unseen
 * (once a context is free, nng hands it the waiting request at once).
 */
static void *
sweeper_main(void *arg)
{
	lm_rpc_server *s = arg;
	uint32_t ids[SWEEP_BATCH];
	lm_counter *why[SWEEP_BATCH];

	pthread_mutex_lock(&s->sweep_mtx);
	while (!s->sweep_stop) {
		struct timespec ts = lm_clock_deadline(SWEEP_MS);
		pthread_cond_timedwait(&s->sweep_cv, &s->sweep_mtx, &ts);
		if (s->sweep_stop)
			break;
		pthread_mutex_unlock(&s->sweep_mtx);
		int64_t now = (int64_t) nng_clock();
		int64_t cut = now - (int64_t) s->idle_ms;
		int64_t cut_big = now - (int64_t) s->send_ms;
		size_t n = 0;
		pthread_mutex_lock(&s->mtx);
		bool full = s->inflight >= s->ncontexts;
		bool idle_busy = full || s->all_busy_ms >= cut;
		bool age_busy = full || s->all_busy_ms >= now - SWEEP_MS;
		pthread_mutex_unlock(&s->mtx);
		if (idle_busy && age_busy) {
			pthread_mutex_lock(&s->sweep_mtx);
			continue;
		}
		pthread_mutex_lock(&s->peer_mtx);
		for (size_t i = 0; i < s->ntab && n < SWEEP_BATCH; i++) {
			struct conn_entry *e = &s->tab[i];
			int64_t last = __atomic_load_n(&e->last_ms, __ATOMIC_RELAXED);
			if (e->pipe == 0 || e->inflight > 0 || last == INT64_MAX)
				continue;
			if (!idle_busy && last < cut)
				why[n] = s->idle_closed;
			else if (!idle_busy && e->big_reply && last < cut_big)
				why[n] = s->send_closed;
			else if (!age_busy && now >= e->age_ms &&
			         last < now - (int64_t) LM_RPC_AGE_QUIET_MS)
				why[n] = s->aged_closed;
			else
				continue;
			ids[n++] = e->pipe;
			/* Closing: never picked again, whatever it sends. */
			(void) entry_close(e);
		}
		pthread_mutex_unlock(&s->peer_mtx);
		for (size_t i = 0; i < n; i++) {
			nng_pipe p = NNG_PIPE_INITIALIZER;
			p.id = ids[i];
			if (nng_pipe_close(p) == 0)
				lm_counter_add(why[i], 1);
		}
		pthread_mutex_lock(&s->sweep_mtx);
	}
	pthread_mutex_unlock(&s->sweep_mtx);
	return NULL;
}

/* Refuses connections while draining: the pipe is closed before the socket
 * ever sees it; counts the pipes the socket accepted, which tells the
 * self-probe that the listener is alive. Runs on an nng thread. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	lm_rpc_server *s = arg;
	unsigned n;

	switch (ev) {
	case NNG_PIPE_EV_ADD_PRE:
		/* conns counts every pipe until it is removed (a refused one
		 * too, so that the cap holds while it closes); conn_admit
		 * counts the admitted ones. */
		n = atomic_fetch_add(&s->conns, 1) + 1;
		if (n > s->max_conns) {
			/* Pipes refused before may still close and fill the cap:
			 * while the admitted ones leave room, a peer at its own
			 * limit is refused for that. */
			bool peer =
			    atomic_load(&s->admitted) < s->max_conns && peer_full(s, p);
			atomic_fetch_add(&s->conns_refused_n, 1);
			lm_counter_add(peer ? s->peer_refused : s->conns_refused, 1);
			nng_pipe_close(p);
		} else if (!conn_admit(s, p)) {
			atomic_fetch_add(&s->conns_refused_n, 1);
			lm_counter_add(s->peer_refused, 1);
			nng_pipe_close(p);
		} else if (atomic_load(&s->draining)) {
			nng_pipe_close(p);
		}
		break;
	case NNG_PIPE_EV_ADD_POST:
		atomic_fetch_add(&s->pipes_added, 1);
		break;
	case NNG_PIPE_EV_REM_POST:
		conn_release(s, p);
		atomic_fetch_sub(&s->conns, 1);
		break;
	default:
		break;
	}
}

/*
 * The connection cap: the configured value (0 = the default), but never
 * more than three quarters of the process's file descriptor limit, so
 * that connections alone cannot exhaust the descriptors LMDB, Kafka and
 * the HTTP port need (each connection holds one), and never more than fit
 * in the receive budget with a request of max_req plus the grace each.
 * Logged once (rpc.limits): a warning when a configured value was lowered.
 */
static unsigned
max_connections(unsigned configured, size_t budget, size_t max_req)
{
	unsigned asked = configured ? configured : LM_RPC_DEFAULT_MAX_CONNECTIONS,
	         want = asked;
	size_t per = LM_RPC_RECV_MAX(max_req), fit;
	uint64_t mem, fds = 0;
	struct rlimit rl;
	char why[192] = "";

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 * 3 < want) {
		fds = (uint64_t) rl.rlim_cur;
		want = (unsigned) (rl.rlim_cur / 4 * 3);
		snprintf(why, sizeof(why),
		    ": three quarters of the file descriptor limit (%" PRIu64 ")", fds);
	}
	if (budget == 0)
		budget = (mem = lm_memory_limit()) > 0 && mem / 4 < SIZE_MAX
		             ? (size_t) (mem / 4)
		             : (size_t) 1 << 30;
	fit = budget / per;
	if (fit < want) {
		want = fit > 0 ? (unsigned) fit : 1;
		snprintf(why, sizeof(why),
		    ": each may hold a request of up to %zu bytes while it arrives, "
		    "within a receive budget of %zu bytes",
		    per, budget);
	}
	if (want < asked)
		/* A limit the operator set, lowered, deserves a warning. */
		lm_log(configured ? LM_LOG_WARN : LM_LOG_INFO, "rpc.limits",
		    "at most %u connections, not %u%s", want, asked, why);
	else
		lm_info("rpc.limits", "at most %u connections", want);
	return want > 0 ? want : 1;
}

/* ---- public API -------------------------------------------------------- */

int
lm_rpc_server_new(const lm_rpc_server_opts *o, const ProtobufCServiceDescriptor *svc,
    const lm_rpc_method *methods, size_t n, void *arg, lm_rpc_server **out)
{
	lm_rpc_server *s;
	char err[512];
	int rv;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL || svc == NULL || (n > 0 && methods == NULL) || o->url == NULL ||
	    *o->url == '\0' || strlen(o->url) >= URL_MAX ||
	    o->contexts > LM_RPC_MAX_CONTEXTS || o->workers > LM_RPC_MAX_WORKERS ||
	    o->queue_len > LM_RPC_MAX_QUEUE ||
	    o->max_request_bytes > LM_RPC_MAX_REQUEST_BYTES ||
	    o->max_connections > LM_RPC_MAX_CONNECTIONS ||
	    o->max_connections_per_peer > LM_RPC_MAX_CONNECTIONS ||
	    o->idle_timeout_ms > LM_RPC_MAX_IDLE_TIMEOUT_MS ||
	    o->max_connection_age_ms > LM_RPC_MAX_CONNECTION_AGE_MS ||
	    o->send_timeout_ms > LM_RPC_MAX_SEND_TIMEOUT_MS) {
		lm_error("rpc.config", "invalid RPC server options");
		return LM_EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return LM_ENOMEM;
	s->svc = svc;
	s->arg = arg;
	s->m = o->metrics;
	snprintf(s->url, sizeof(s->url), "%s", o->url);
	s->ncontexts = o->contexts ? o->contexts : LM_RPC_DEFAULT_CONTEXTS;
	s->nworkers = o->workers ? o->workers : LM_RPC_DEFAULT_WORKERS;
	s->queue_cap = o->queue_len ? o->queue_len : 4 * s->nworkers;
	s->max_req =
	    o->max_request_bytes ? o->max_request_bytes : LM_RPC_DEFAULT_MAX_REQUEST;
	s->default_timeout_ms =
	    o->default_timeout_ms ? o->default_timeout_ms : LM_RPC_DEFAULT_TIMEOUT_MS;
	atomic_init(&s->started, false);
	atomic_init(&s->draining, false);
	atomic_init(&s->closing, false);
	atomic_init(&s->serving, false);
	atomic_init(&s->nng_busy, 0);
	atomic_init(&s->probe_seq, 0);
	atomic_init(&s->probe_active, false);
	atomic_init(&s->probe_seen, false);
	atomic_init(&s->pipes_added, 0);
	atomic_init(&s->conns, 0);
	atomic_init(&s->admitted, 0);
	atomic_init(&s->conns_refused_n, 0);
	s->max_conns =
	    max_connections(o->max_connections, o->receive_budget_bytes, s->max_req);
	s->max_per_peer = o->max_connections_per_peer
	                      ? o->max_connections_per_peer
	                      : LM_RPC_DEFAULT_MAX_CONNECTIONS_PER_PEER;
	if (s->max_per_peer > s->max_conns)
		s->max_per_peer = s->max_conns;
	atomic_init(&s->requests_received, 0);
	pthread_mutex_init(&s->peer_mtx, NULL);
	s->idle_ms =
	    o->idle_timeout_ms ? o->idle_timeout_ms : LM_RPC_DEFAULT_IDLE_TIMEOUT_MS;
	s->age_ms = o->max_connection_age_ms;
	s->send_ms = o->send_timeout_ms ? o->send_timeout_ms : LM_RPC_SEND_TIMEOUT_MS;
	pthread_mutex_init(&s->sweep_mtx, NULL);
	(void) lm_cond_init_monotonic(&s->sweep_cv);
	pthread_mutex_init(&s->pmtx, NULL);
	pthread_mutex_init(&s->lmtx, NULL);
	pthread_mutex_init(&s->mtx, NULL);
	pthread_cond_init(&s->work_cv, NULL);
	(void) lm_cond_init_monotonic(&s->idle_cv);

	s->handlers = calloc(svc->n_methods ? svc->n_methods : 1, sizeof(*s->handlers));
	s->commits = calloc(svc->n_methods ? svc->n_methods : 1, sizeof(*s->commits));
	s->ring = calloc(s->ncontexts, sizeof(*s->ring));
	s->slots = calloc(s->ncontexts, sizeof(*s->slots));
	s->threads = calloc(s->nworkers, sizeof(*s->threads));
	for (s->ntab = 16; s->ntab < 2 * (size_t) s->max_conns; s->ntab *= 2)
		;
	s->tab = calloc(s->ntab, sizeof(*s->tab));
	if (s->handlers == NULL || s->commits == NULL || s->ring == NULL ||
	    s->slots == NULL || s->threads == NULL || s->tab == NULL) {
		rv = LM_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const ProtobufCMethodDescriptor *md =
		    methods[i].name ? protobuf_c_service_descriptor_get_method_by_name(
		                          svc, methods[i].name)
		                    : NULL;
		if (md == NULL || methods[i].fn == NULL) {
			lm_error("rpc.config", "method %s is not in service %s",
			    methods[i].name ? methods[i].name : "(null)", svc->name);
			rv = LM_EINVAL;
			goto fail;
		}
		size_t mi = (size_t) (md - svc->methods);
		if (s->handlers[mi] != NULL) {
			lm_error("rpc.config", "method %s given twice", md->name);
			rv = LM_EINVAL;
			goto fail;
		}
		s->handlers[mi] = methods[i].fn;
		s->commits[mi] = methods[i].commit;
	}
	if (lm_rpc_url_is_tls(s->url)) {
		rv = lm_rpc_tls_config(&s->tls_server, NNG_TLS_MODE_SERVER, o->tls_cert,
		    o->tls_key, o->tls_ca, err, sizeof(err));
		if (rv == LM_OK)
			rv = lm_rpc_tls_config(&s->tls_probe, NNG_TLS_MODE_CLIENT,
			    o->tls_cert, o->tls_key, NULL, err, sizeof(err));
		if (rv != LM_OK) {
			lm_error("rpc.tls", "%s", err);
			goto fail;
		}
	} else if ((o->tls_cert && *o->tls_cert) || (o->tls_ca && *o->tls_ca)) {
		lm_warn("rpc.tls.unused",
		    "TLS files are set but %s is not a tls+tcp:// URL", s->url);
	}
	if ((rv = metrics_init(s)) != LM_OK)
		goto fail;

	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		rv = lm_err_from_nng(rv);
		goto fail;
	}
	s->sock_open = true;
	rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, LM_RPC_RECV_MAX(s->max_req));
	if (rv == 0)
		rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s);
	if (rv == 0)
		rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, s);
	if (rv == 0)
		rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	if (rv != 0) {
		rv = lm_err_from_nng(rv);
		goto fail;
	}
	for (unsigned i = 0; i < s->ncontexts; i++) {
		struct slot *sl = &s->slots[i];
		sl->s = s;
		sl->state = S_IDLE;
		if ((rv = nng_aio_alloc(&sl->aio, slot_cb, sl)) != 0 ||
		    (rv = nng_ctx_open(&sl->ctx, s->sock)) != 0) {
			rv = lm_err_from_nng(rv);
			goto fail;
		}
	}
	*out = s;
	return LM_OK;
fail:
	lm_rpc_server_free(s);
	return rv;
}

int
lm_rpc_server_start(lm_rpc_server *s)
{
	int rv;

	if (s == NULL || atomic_load(&s->started) || atomic_load(&s->closing))
		return LM_EINVAL;
	/* A start that failed to listen may be retried: the workers stay. */
	for (unsigned i = s->nthreads; i < s->nworkers; i++) {
		if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) {
			lm_error("rpc.start", "cannot start worker thread %u", i);
			return LM_ENOMEM;
		}
		s->nthreads++;
	}
	pthread_mutex_lock(&s->lmtx);
	rv = listen_on(s, s->url);
	if (rv == LM_OK && (rv = compute_urls(s)) != LM_OK)
		lm_error(
		    "rpc.listen.failed", "cannot read the bound address of %s", s->url);
	pthread_mutex_unlock(&s->lmtx);
	if (rv != LM_OK)
		return rv;
	if (!s->sweeper_on) {
		if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0) {
			lm_error("rpc.start", "cannot start the idle sweeper thread");
			return LM_ENOMEM;
		}
		s->sweeper_on = true;
	}
	atomic_store(&s->started, true);
	for (unsigned i = 0; i < s->ncontexts; i++)
		arm_recv(&s->slots[i]);
	atomic_store(&s->serving, true);
	lm_info("rpc.listening", "listening on %s (%u contexts, %u workers, queue %u)",
	    s->bound_url, s->ncontexts, s->nworkers, s->queue_cap);
	return LM_OK;
}

void
lm_rpc_server_set_serving(lm_rpc_server *s, bool serving)
{
	if (s != NULL)
		atomic_store(&s->serving, serving);
}

bool
lm_rpc_server_close_stuck(const lm_rpc_server *s)
{
	return s != NULL && atomic_load(&s->close_stuck);
}

bool
lm_rpc_server_full(const lm_rpc_server *s)
{
	return s != NULL && atomic_load(&((lm_rpc_server *) s)->admitted) >= s->max_conns;
}

bool
lm_rpc_server_serving(const lm_rpc_server *s)
{
	return s != NULL && atomic_load(&((lm_rpc_server *) s)->serving);
}

void
lm_rpc_server_set_recv_hook(lm_rpc_server *s, void (*fn)(void *arg), void *arg)
{
	s->recv_hook = fn;
	s->recv_hook_arg = arg;
}

int
lm_rpc_server_url(const lm_rpc_server *s, char *buf, size_t len)
{
	if (s == NULL || buf == NULL || !atomic_load(&((lm_rpc_server *) s)->started))
		return LM_EINVAL;
	if ((size_t) snprintf(buf, len, "%s", s->dial_url) >= len)
		return LM_E2BIG;
	return LM_OK;
}

/* Closes the socket once: every pending aio completes with NNG_ECLOSED and
 * no slot re-arms. A close nng does not finish within
 * LM_RPC_CLOSE_TIMEOUT_MS is left to go on (close_stuck). */
static void
close_socket(lm_rpc_server *s)
{
	pthread_mutex_lock(&s->lmtx);
	atomic_store(&s->closing, true);
	while (atomic_load(&s->nng_busy) > 0)
		nng_msleep(1);
	if (s->sock_open) {
		s->sock_open = false;
		if (!lm_rpc_close_bounded(s->sock, LM_RPC_CLOSE_TIMEOUT_MS)) {
			atomic_store(&s->close_stuck, true);
			lm_error("rpc.close.stuck",
			    "the RPC socket did not close within %u ms (a connection "
			    "closed mid-transfer holds nng's reaper); stopping without "
			    "it: the server's memory is left to the process's exit",
			    LM_RPC_CLOSE_TIMEOUT_MS);
		}
	}
	pthread_mutex_unlock(&s->lmtx);
}

int
lm_rpc_server_drain(lm_rpc_server *s, unsigned timeout_ms)
{
	struct timespec until;
	unsigned left;

	if (s == NULL)
		return LM_EINVAL;
	if (!atomic_load(&s->started) || atomic_load(&s->closing)) {
		close_socket(s);
		return LM_OK;
	}
	/* Refusing first: whoever sees NOT_SERVING finds new requests refused. */
	atomic_store(&s->draining, true);
	atomic_store(&s->serving, false);
	lm_info("rpc.drain.start",
	    "draining: new connections refused, new requests answered "
	    "UNAVAILABLE");
	until = lm_clock_deadline(timeout_ms);
	pthread_mutex_lock(&s->mtx);
	while (s->accepted > 0) {
		if (pthread_cond_timedwait(&s->idle_cv, &s->mtx, &until) == ETIMEDOUT)
			break;
	}
	left = s->accepted;
	pthread_mutex_unlock(&s->mtx);
	if (left == 0)
		nng_msleep(LM_RPC_DRAIN_LINGER_MS);
	close_socket(s);
	if (left > 0) {
		lm_warn("rpc.drain.timeout", "%u requests still in flight after %u ms",
		    left, timeout_ms);
		return LM_ETIMEDOUT;
	}
	if (atomic_load(&s->close_stuck))
		lm_info("rpc.drain.done",
		    "all in-flight requests answered; the socket's close is left "
		    "to nng (rpc.close.stuck)");
	else
		lm_info(
		    "rpc.drain.done", "all in-flight requests answered; socket closed");
	return LM_OK;
}

void
lm_rpc_server_stop(lm_rpc_server *s)
{
	if (s == NULL || s->stopped)
		return;
	s->stopped = true;
	close_socket(s);
	pthread_mutex_lock(&s->mtx);
	s->stop = true;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->mtx);
	for (unsigned i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	/* Held calls: their done comes from elsewhere and touches the slot. */
	pthread_mutex_lock(&s->mtx);
	while (s->held > 0)
		pthread_cond_wait(&s->idle_cv, &s->mtx);
	pthread_mutex_unlock(&s->mtx);
	if (s->sweeper_on) {
		pthread_mutex_lock(&s->sweep_mtx);
		s->sweep_stop = true;
		pthread_cond_signal(&s->sweep_cv);
		pthread_mutex_unlock(&s->sweep_mtx);
		pthread_join(s->sweeper, NULL);
	}
	/* After a close left running, nng may still complete an aio: nothing
	 * of the server is stopped or freed under it. */
	if (s->slots != NULL && !atomic_load(&s->close_stuck)) {
		/* Waits for callbacks still running; none re-arms any more. */
		for (unsigned i = 0; i < s->ncontexts; i++)
			if (s->slots[i].aio != NULL)
				nng_aio_stop(s->slots[i].aio);
	}
}

void
lm_rpc_server_free(lm_rpc_server *s)
{
	if (s == NULL)
		return;
	lm_rpc_server_stop(s);
	if (atomic_load(&s->close_stuck))
		return; /* nng may still use it; the process exits */
	if (s->slots != NULL) {
		/* With the requests still queued when the workers stopped. */
		for (unsigned i = 0; i < s->ncontexts; i++) {
			nng_msg_free(s->slots[i].msg);
			nng_aio_free(s->slots[i].aio);
		}
	}
	if (s->tls_server != NULL)
		nng_tls_config_free(s->tls_server);
	if (s->tls_probe != NULL)
		nng_tls_config_free(s->tls_probe);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->idle_cv);
	pthread_mutex_destroy(&s->mtx);
	pthread_mutex_destroy(&s->lmtx);
	pthread_mutex_destroy(&s->pmtx);
	pthread_mutex_destroy(&s->peer_mtx);
	free(s->tab);
	pthread_mutex_destroy(&s->sweep_mtx);
	pthread_cond_destroy(&s->sweep_cv);
	free(s->req_total);
	free(s->latency);
	free(s->slots);
	free(s->ring);
	free(s->threads);
	free(s->handlers);
	free(s->commits);
	free(s);
}

/* ---- self-probe ------------------------------------------------------- */

/* One probe (pmtx held): LM_OK answered; LM_ETIMEDOUT the request reached
 * the server but no answer came in time; LM_ECLOSED it never reached the
 * server (no connection, or a connection the server does not serve). */
static int
probe_once(lm_rpc_server *s, unsigned timeout_ms)
{
	Lunamatch__V1__RpcRequest req = LUNAMATCH__V1__RPC_REQUEST__INIT;
	Lunamatch__V1__RpcResponse *resp = NULL;
	nng_socket sock;
	nng_dialer d;
	nng_msg *msg = NULL;
	char method[LM_RPC_MAX_METHOD + 1];
	nng_time start = nng_clock();
	int rv, out;

	if (protobuf_c_service_descriptor_get_method_by_name(s->svc, "Check") == NULL ||
	    lm_rpc_method_name("Check", method, sizeof(method)) != LM_OK)
		snprintf(method, sizeof(method), "%sProbe", LM_RPC_METHOD_PREFIX);
	snprintf(s->probe_id, sizeof(s->probe_id), "probe-%u",
	    atomic_fetch_add(&s->probe_seq, 1) + 1);
	req.method = method;
	req.request_id = s->probe_id;
	req.timeout_ms = timeout_ms;

	if ((rv = nng_req0_open(&sock)) != 0)
		return lm_err_from_nng(rv);
	/* From here every path leaves through done, which clears it. */
	atomic_store(&s->probe_seen, false);
	atomic_store(&s->probe_active, true);
	out = LM_ENNG;
	if (nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 64 * 1024) != 0 ||
	    nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) != 0 ||
	    nng_dialer_create(&d, sock, s->dial_url) != 0)
		goto done;
	if (s->tls_probe != NULL &&
	    nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, s->tls_probe) != 0)
		goto done;
	if (nng_dialer_start(d, NNG_FLAG_NONBLOCK) != 0)
		goto done;
	if (nng_msg_alloc(&msg, protobuf_c_message_get_packed_size(&req.base)) != 0) {
		out = LM_ENOMEM;
		goto done;
	}
	protobuf_c_message_pack(&req.base, nng_msg_body(msg));
	/* REQ hands the request to a connection only once one exists, so a
	 * send timeout means nothing could connect. */
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (nng_duration) timeout_ms);
	if ((rv = nng_sendmsg(sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		msg = NULL;
		out = rv == NNG_ETIMEDOUT ? LM_ECLOSED : LM_ENNG;
		if (out == LM_ENNG)
			lm_warn("rpc.probe.failed", "self-probe cannot send: %s",
			    nng_strerror(rv));
		goto done;
	}
	msg = NULL;
	nng_time spent = nng_clock() - start;
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO,
	    (nng_duration) (spent < timeout_ms ? timeout_ms - spent : 1));
	if ((rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		msg = NULL;
		/* A connection the server closed (a refused connection,
		 * the listener restarting) is judged like a timeout. */
		if (rv == NNG_ETIMEDOUT || rv == NNG_ECONNRESET || rv == NNG_ECONNSHUT ||
		    rv == NNG_ECONNREFUSED)
			out = atomic_load(&s->probe_seen) ? LM_ETIMEDOUT : LM_ECLOSED;
		else
			lm_warn("rpc.probe.failed", "self-probe got no answer: %s",
			    nng_strerror(rv));
		goto done;
	}
	resp = lunamatch__v1__rpc_response__unpack(
	    NULL, nng_msg_len(msg), nng_msg_body(msg));
	if (resp != NULL && resp->request_id != NULL &&
	    strcmp(resp->request_id, s->probe_id) == 0)
		out = LM_OK;
	else
		lm_warn(
		    "rpc.probe.bad_answer", "self-probe got an answer it cannot read");
	if (resp != NULL)
		lunamatch__v1__rpc_response__free_unpacked(resp, NULL);
done:
	atomic_store(&s->probe_active, false);
	nng_msg_free(msg);
	nng_close(sock);
	return out;
}

/*
 * Why the listener is known to be alive although the probe's request did
 * not reach a context (NULL when there is no such evidence). Under load a
 * probe's request waits behind the backlog: every context busy, the
 * request queued in its pipe or the connection still in the kernel's
 * accept queue. Restarting then would reset every accepted connection.
 * pipes0, reqs0 and refused0 are the counters when the probe began.
 */
static const char *
alive_evidence(lm_rpc_server *s, unsigned pipes0, unsigned reqs0, unsigned refused0)
{
	unsigned inflight;

	if (atomic_load(&s->pipes_added) != pipes0)
		return "a connection was accepted during the probe";
	if (atomic_load(&s->conns_refused_n) != refused0)
		return "connections were refused at max_connections";
	if (atomic_load(&s->requests_received) != reqs0)
		return "requests were received during the probe";
	pthread_mutex_lock(&s->mtx);
	inflight = s->inflight;
	pthread_mutex_unlock(&s->mtx);
	if (inflight >= s->ncontexts)
		return "every context is busy";
	return NULL;
}

/* Whether this process has run out of file descriptors. A probe that fails
 * for that reason says nothing about the listener, and closing the
 * listener then could leave none: its replacement needs a descriptor. */
static bool
out_of_descriptors(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EMFILE || errno == ENFILE;
}

/* A failed probe (LM_ECLOSED) that evidence shows is not a dead listener
 * becomes LM_ETIMEDOUT (alive, busy) or LM_ENNG (local exhaustion); both
 * leave the listener alone. Other results pass through. */
static int
judge_probe(lm_rpc_server *s, int rv, unsigned pipes0, unsigned reqs0, unsigned refused0)
{
	const char *why;

	if (rv != LM_ECLOSED)
		return rv;
	if ((why = alive_evidence(s, pipes0, reqs0, refused0)) != NULL) {
		lm_info("rpc.probe.busy",
		    "self-probe unanswered but the listener is alive: %s", why);
		return LM_ETIMEDOUT;
	}
	if (out_of_descriptors()) {
		lm_warn("rpc.probe.nofiles",
		    "self-probe failed: out of file descriptors; listener kept");
		return LM_ENNG;
	}
	return rv;
}

int
lm_rpc_server_probe(lm_rpc_server *s, unsigned timeout_ms)
{
	unsigned pipes0, reqs0, refused0;
	int rv;

	if (s == NULL)
		return LM_EINVAL;
	if (!atomic_load(&s->started) || atomic_load(&s->draining) ||
	    atomic_load(&s->closing))
		return LM_ECLOSED;
	if (timeout_ms == 0)
		timeout_ms = 1000;
	pthread_mutex_lock(&s->pmtx);
	pipes0 = atomic_load(&s->pipes_added);
	reqs0 = atomic_load(&s->requests_received);
	refused0 = atomic_load(&s->conns_refused_n);
	rv = judge_probe(s, probe_once(s, timeout_ms), pipes0, reqs0, refused0);
	if (rv != LM_ECLOSED)
		goto out;

	/* nng #1518: the listener may have stopped accepting. Restart it. */
	pthread_mutex_lock(&s->lmtx);
	if (atomic_load(&s->closing) || atomic_load(&s->draining)) {
		pthread_mutex_unlock(&s->lmtx);
		goto out;
	}
	lm_warn("rpc.listener.restart",
	    "self-probe request did not reach the server at %s; "
	    "restarting the listener",
	    s->dial_url);
	lm_counter_add(s->restarts, 1);
	nng_listener_close(s->listener);
	rv = listen_on(s, s->bound_url);
	pthread_mutex_unlock(&s->lmtx);
	pipes0 = atomic_load(&s->pipes_added);
	reqs0 = atomic_load(&s->requests_received);
	refused0 = atomic_load(&s->conns_refused_n);
	rv = rv == LM_OK
	         ? judge_probe(s, probe_once(s, timeout_ms), pipes0, reqs0, refused0)
	         : LM_ECLOSED;
	if (rv == LM_OK)
		lm_info(
		    "rpc.listener.restarted", "listener on %s serves again", s->dial_url);
out:
	pthread_mutex_unlock(&s->pmtx);
	return rv;
}
