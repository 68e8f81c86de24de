/*
 * rpc_server.h - the generic nng REQ/REP server of the match service.
 *
 * The server owns one nng REP0 socket listening on a tcp://, ipc:// or
 * tls+tcp:// URL. A fixed number of nng contexts each receive one request at
 * a time with their own aio; a received request is put on a bounded queue,
 * fair between connections, that a fixed pool of worker threads empties.
 * A worker decodes the
 * lunamatch.v1.RpcRequest envelope, finds the method in the protobuf-c
 * service descriptor, decodes the payload with the method's input type,
 * runs the handler, and sends the lunamatch.v1.RpcResponse back on the same
 * context. nng callbacks never block, sleep or free an aio: they only hand
 * work over, answer at once (queue full, draining, request too large), or
 * re-arm the context. See docs/rpc.md for the wire contract.
 *
 * Thread-safety: lm_rpc_server_set_serving, lm_rpc_server_serving and
 * lm_rpc_server_probe may be called from any thread at any time between
 * lm_rpc_server_new and lm_rpc_server_free. lm_rpc_server_start,
 * lm_rpc_server_drain and lm_rpc_server_free are called by the owner, one
 * at a time, never from a handler.
 */
#ifndef LUNAMATCH_MATCH_RPC_SERVER_H
#define LUNAMATCH_MATCH_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "lunamatch/metrics.h"
#include "lunamatch/pb.h"
#include "lunamatch/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults for zero-valued options, and hard maxima. */
#define LM_RPC_DEFAULT_CONTEXTS                 64u
#define LM_RPC_DEFAULT_WORKERS                  8u
#define LM_RPC_MAX_CONTEXTS                     4096u
#define LM_RPC_MAX_WORKERS                      256u
#define LM_RPC_MAX_QUEUE                        65536u
#define LM_RPC_DEFAULT_MAX_CONNECTIONS          4096u
#define LM_RPC_MAX_CONNECTIONS                  65536u
#define LM_RPC_DEFAULT_MAX_CONNECTIONS_PER_PEER 1024u
#define LM_RPC_DEFAULT_IDLE_TIMEOUT_MS          300000u   /* 5 minutes */
#define LM_RPC_MAX_IDLE_TIMEOUT_MS              86400000u /* a day */
#define LM_RPC_MAX_CONNECTION_AGE_MS            86400000u /* a day */
/*
 * A connection past its maximum age is closed only once it has had no
 * request or answer for this long: nng 1.5.2 never tears down a connection
 * closed while a request is still arriving on it, and holds its single
 * reaper thread for good (docs/rpc.md, "nng 1.5.2 defects"). A client
 * that sends its next call as the last is answered has it on the wire at
 * every moment it is busy; the pause lets that call arrive first (a
 * request still arriving after it, a large one or one over a slow link,
 * can still meet the defect). It is short, so that a connection with
 * calls at random moments still finds one often enough (at 100 calls a
 * second about one sweep in three), whereas one that never leaves 10 ms
 * between an answer and its next request is not moved.
 */
#define LM_RPC_AGE_QUIET_MS 10u
/*
 * nng's receive limit (NNG_OPT_RECVMAXSZ) is max_request_bytes plus this
 * much. A request over max_request_bytes but within the grace is answered
 * RESOURCE_EXHAUSTED and counted; anything larger is dropped by nng, which
 * closes the connection without an answer (a REQ caller with the resend
 * timer off sees the connection reset at once).
 */
#define LM_RPC_OVERSIZE_GRACE (64u * 1024)
/* The most nng takes in for one request, and holds per connection while
 * it arrives: NNG_OPT_RECVMAXSZ for a server of max_request_bytes m. */
#define LM_RPC_RECV_MAX(m) ((m) + LM_RPC_OVERSIZE_GRACE + LM_RPC_SP_HEADER_MAX)
/*
 * Memory protobuf-c may allocate to decode a request envelope, and then
 * its payload, of n bytes: LM_RPC_DECODE_FLOOR + LM_RPC_DECODE_FACTOR * n,
 * counted as the total of its allocations (each charged 16 bytes above
 * its size). A message that needs more (many empty fields: two bytes on
 * the wire can cost a decoded message tens of bytes) is answered
 * INVALID_ARGUMENT. The largest requests the match service accepts after
 * decoding (1000-entry filter lists, postings with 100 skills and 20
 * requirement groups) take under 256 KiB.
 */
#define LM_RPC_DECODE_FLOOR  LM_PB_DECODE_FLOOR /* lm_pb_decode_capped's */
#define LM_RPC_DECODE_FACTOR LM_PB_DECODE_FACTOR
/* How long drain waits after the last reply was handed to nng before it
 * closes the socket, so that the reply leaves the socket buffers. */
#define LM_RPC_DRAIN_LINGER_MS 100u

/* A reply nng could not hand to its connection within send_timeout_ms
 * (the peer does not read its replies, and they fill the socket's buffers)
 * is dropped and the connection closed: each such reply holds a context,
 * and a peer that never reads would otherwise hold them all. The default
 * and the largest send_timeout_ms: */
#define LM_RPC_SEND_TIMEOUT_MS     10000u
#define LM_RPC_MAX_SEND_TIMEOUT_MS 600000u
/* An answer of this many bytes or more closes its connection when no
 * request follows within send_timeout_ms (see docs/rpc.md). */
#define LM_RPC_PINNED_REPLY_BYTES (256u * 1024)

typedef struct lm_rpc_server lm_rpc_server;

/* What a handler learns about its call. Every pointer is borrowed and valid
 * only during the handler call. */
typedef struct lm_rpc_ctx {
	const char *method;     /* short method name, e.g. "MatchJobs" */
	const char *request_id; /* the caller's id; may be "" */
	uint64_t deadline_ms;   /* absolute, in nng_clock() milliseconds */
	const Lunamatch__V1__MetadataEntry *const *metadata;
	size_t n_metadata;
} lm_rpc_ctx;

/*
 * A handler runs on a worker thread; it may block and take time, but should
 * give up once nng_clock() passes ctx->deadline_ms (its answer would be
 * replaced by DEADLINE_EXCEEDED anyway). It returns a lunamatch.v1.StatusCode.
 * On OK it sets *resp to a newly allocated message of the method's output
 * type, which the server frees with protobuf_c_message_free_unpacked(resp,
 * NULL) (so it must be built with malloc'd storage in protobuf-c's layout,
 * e.g. by protobuf_c_message_unpack or by malloc'ing each part). On any
 * other code it leaves *resp NULL (anything set is freed and ignored) and
 * writes a human-readable reason in UTF-8 into msg (msglen bytes with the
 * NUL; a longer one is cut, and the server drops a character the cut
 * split; one that is not UTF-8 is replaced by the status name); the
 * reason is sent to the caller, so it must not hold personal data.
 * req is owned by the server and valid during the call only.
 */
typedef int (*lm_rpc_handler)(void *arg, const lm_rpc_ctx *ctx,
    const ProtobufCMessage *req, ProtobufCMessage **resp, char *msg, size_t msglen);

/* What a commit returns when it holds the reply (see lm_rpc_commit). */
#define LM_RPC_HELD (-1)

/*
 * Sends the reply of a held call (see lm_rpc_commit): code OK sends the
 * reply the handler made, any other code replaces it by that status with
 * reason msg (UTF-8; NULL or "": the status name; cut to at most
 * LM_RPC_MAX_MESSAGE - 1 bytes, at a character boundary; no personal data). An OK that
 * comes after the call's deadline is answered DEADLINE_EXCEEDED. May be called from any
 * thread but an nng callback; call is invalid afterwards.
 */
typedef void (*lm_rpc_done_fn)(void *call, int code, const char *msg);

/*
 * A commit runs on the worker after the handler answered OK and its reply
 * is encoded, before the reply is sent: for what must be done with an
 * answer before it may be given (the decision log). req and resp are the
 * handler's request and response (borrowed, valid during the call only).
 * It returns OK to send the reply now, another status code to answer
 * with that instead (reason in msg, as for a handler), or LM_RPC_HELD:
 * the reply waits, without holding the worker, until done(call, code,
 * reason) is called, exactly once, possibly before the commit returns.
 * A held call counts as in flight (drain waits for it) and
 * lm_rpc_server_free waits for its done, so whatever holds it must still
 * call done by then.
 */
typedef int (*lm_rpc_commit)(void *arg, const lm_rpc_ctx *ctx,
    const ProtobufCMessage *req, const ProtobufCMessage *resp, lm_rpc_done_fn done,
    void *call, char *msg, size_t msglen);

typedef struct lm_rpc_method {
	const char *name; /* short name; must exist in the service descriptor */
	lm_rpc_handler fn;
	lm_rpc_commit commit; /* NULL: the reply is sent when the handler returns */
} lm_rpc_method;

typedef struct lm_rpc_server_opts {
	const char *url;   /* tcp://host:port (port 0 = any), ipc://path, tls+tcp:// */
	unsigned contexts; /* concurrent requests received; 0 = 64 */
	unsigned workers;  /* handler threads; 0 = 8 */
	/* Whole envelope; 0 = LM_RPC_DEFAULT_MAX_REQUEST; at most
	 * LM_RPC_MAX_REQUEST_BYTES. */
	size_t max_request_bytes;
	unsigned default_timeout_ms; /* when a request has timeout_ms 0; 0 = 5000 */
	const char *tls_cert, *tls_key, *tls_ca; /* PEM files; NULL or "" = unset */
	lm_metrics *metrics; /* may be NULL; borrowed, must outlive the server */
	/* Requests waiting for a worker, taken round-robin across
	 * connections. A request arriving when the queue is full is answered
	 * RESOURCE_EXHAUSTED, unless the connection with the most requests
	 * queued has more than one more than its own: then that connection's
	 * newest queued request is answered so instead, and the arriving one
	 * queued. 0 = 4 * workers. */
	unsigned queue_len;
	/* Connections open at once (each holds a file descriptor); one more
	 * is closed as soon as nng accepts it (counted in
	 * lunamatch_rpc_connections_refused_total; a REQ client redials). 0 =
	 * LM_RPC_DEFAULT_MAX_CONNECTIONS; never more than 3/4 of the
	 * process's RLIMIT_NOFILE. One that never finishes the SP handshake
	 * is closed by nng after 10 s; idle ones: idle_timeout_ms below. */
	unsigned max_connections;
	/* Connections open at once from one peer IP address (tcp, tls+tcp),
	 * so that one client cannot take every place; one more is closed as
	 * soon as nng accepts it (counted in
	 * lunamatch_rpc_connections_refused_total{reason="per_peer"}). 0 =
	 * LM_RPC_DEFAULT_MAX_CONNECTIONS_PER_PEER; never more than
	 * max_connections. ipc:// peers are one local machine: not limited. */
	unsigned max_connections_per_peer;
	/* Memory the open connections may make nng hold for requests still
	 * arriving: nng allocates a request whole (up to
	 * LM_RPC_RECV_MAX(max_request_bytes)) once its length is read, so a peer that
	 * sends lengths and then stalls holds that much per connection.
	 * max_connections is lowered to fit (logged, rpc.limits). 0 = a
	 * quarter of lm_memory_limit() (memlimit.h), or 1 GiB when that is
	 * unknown. */
	size_t receive_budget_bytes;
	/* A connection with no request in flight (queued, in a handler or
	 * held by a commit) that has been idle this long since its last
	 * request or answer is closed (counted in
	 * lunamatch_rpc_connections_idle_closed_total; a REQ client redials
	 * when it has something to send). A connection waiting for an answer
	 * is never closed as idle. 0 = LM_RPC_DEFAULT_IDLE_TIMEOUT_MS; at
	 * most LM_RPC_MAX_IDLE_TIMEOUT_MS. */
	unsigned idle_timeout_ms;
	/* A connection open this long, give or take a random tenth (so that
	 * connections opened together are not closed together), is closed
	 * at the first sweep that finds it with no request in flight (queued,
	 * in a handler or held by a commit) and neither a request nor an
	 * answer for LM_RPC_AGE_QUIET_MS: counted in
	 * lunamatch_rpc_connections_aged_total; a REQ client redials, and
	 * a Kubernetes Service may send the new connection to another
	 * replica (docs/rpc.md). 0 = never; at most
	 * LM_RPC_MAX_CONNECTION_AGE_MS. */
	unsigned max_connection_age_ms;
	/* A reply not handed to its connection within this long, and an
	 * answer of LM_RPC_PINNED_REPLY_BYTES or more followed by no request
	 * within it, close the connection (counted in
	 * lunamatch_rpc_connections_send_closed_total). 0 =
	 * LM_RPC_SEND_TIMEOUT_MS; at most LM_RPC_MAX_SEND_TIMEOUT_MS. */
	unsigned send_timeout_ms;
} lm_rpc_server_opts;

/*
 * Creates a server for service svc (borrowed; normally the generated
 * lunamatch__v1__match_service__descriptor) with n method handlers (the
 * table is copied; arg is passed to every handler). Methods of svc without
 * a handler answer UNIMPLEMENTED. Does not listen yet. Returns LM_OK;
 * LM_EINVAL for a NULL/invalid option, a method name not in svc or given
 * twice, or bad TLS files (logged with the reason); LM_ENOMEM; LM_ENNG.
 */
int lm_rpc_server_new(const lm_rpc_server_opts *o, const ProtobufCServiceDescriptor *svc,
    const lm_rpc_method *methods, size_t n, void *arg, lm_rpc_server **out);

/* Starts the workers and listens. Returns LM_OK; on a failure to listen,
 * logged with nng's reason: LM_EBUSY when the address is in use, LM_EINVAL
 * for a URL or address that cannot be listened on (unknown scheme,
 * malformed, port out of range, an address not of this host), LM_EACCES
 * when the process may not listen there (a privileged port, an ipc://
 * path it cannot create), LM_ENOENT for an ipc:// path whose directory
 * does not exist or a tcp host name that does not resolve (not for one
 * that cannot be resolved for now: LM_EINVAL), LM_ENNG for other nng
 * failures; LM_ENOMEM; LM_EINVAL if
 * already started. The server reports SERVING once started. */
int lm_rpc_server_start(lm_rpc_server *s);

/* What the service's Check handler should report; false while draining. */
void lm_rpc_server_set_serving(lm_rpc_server *s, bool serving);
bool lm_rpc_server_serving(const lm_rpc_server *s);

/* True while max_connections are admitted: new clients are refused, so
 * the service should not report itself ready. Connections refused and
 * still closing do not count: a peer over its own limit that keeps
 * reconnecting cannot make the service unready. Any thread. */
bool lm_rpc_server_full(const lm_rpc_server *s);

/*
 * Graceful stop: reports NOT_SERVING, refuses new connections, answers new
 * requests UNAVAILABLE, waits up to timeout_ms for the requests already
 * accepted to be answered, then closes the socket. Running handlers are not
 * interrupted (lm_rpc_server_free waits for them). Returns LM_OK, or
 * LM_ETIMEDOUT when requests were still in flight at the timeout (they are
 * dropped). Calling it again is a no-op returning LM_OK.
 */
int lm_rpc_server_drain(lm_rpc_server *s, unsigned timeout_ms);

/*
 * Closes the socket if still open, stops the workers after their running
 * handlers, waits for held calls and stops every callback, but frees
 * nothing: afterwards no thread of the server uses what the handlers and
 * commits use, while a call of lm_rpc_server_probe that never returned
 * (nng_close can hang in nng 1.5.2) still finds the server allocated.
 * Returns within LM_RPC_CLOSE_TIMEOUT_MS of a close nng does not finish
 * (lm_rpc_server_close_stuck). Idempotent; NULL is a no-op.
 * lm_rpc_server_free does it first.
 */
void lm_rpc_server_stop(lm_rpc_server *s);

/*
 * True once closing the socket (by lm_rpc_server_drain or _stop) did not
 * finish within LM_RPC_CLOSE_TIMEOUT_MS: nng may still call into the
 * server, so lm_rpc_server_free leaves it allocated, and the metrics
 * registry it was given must stay too. Meant for a process about to exit.
 */
bool lm_rpc_server_close_stuck(const lm_rpc_server *s);

/* lm_rpc_server_stop, then frees all, unless the close is stuck
 * (lm_rpc_server_close_stuck): then nothing is freed. NULL is a no-op. */
void lm_rpc_server_free(lm_rpc_server *s);

/*
 * Self-probe for liveness (/healthz): dials the server's own address on a
 * fresh REQ socket and sends a Check call (or, if the service has no Check
 * method, any call: every answer counts). Works around nng 1.5.2's listener
 * that can stop accepting after a peer drops mid-handshake (nng #1518): when
 * the probe's request never reaches the server and nothing shows the
 * listener alive, the listener is closed and started again once (logged,
 * counted in lunamatch_rpc_listener_restarts_total), then probed again.
 * The listener counts as alive, and is never restarted, when during the
 * probe the socket accepted a connection (the probe's or another's) or
 * received any request, or when every context is busy: under load the
 * probe waits behind the backlog, and a restart would reset every accepted
 * connection. Nor is it restarted when the process is out of file
 * descriptors (its replacement could not be opened).
 * Returns LM_OK when an answer arrived; LM_ETIMEDOUT when unanswered in
 * time but the listener is alive (busy); LM_ECLOSED when the request never
 * reached the server even after the restart, or the server is draining,
 * stopped or not started; LM_ENNG when out of file descriptors or on other
 * local failures; LM_ENOMEM.
 */
int lm_rpc_server_probe(lm_rpc_server *s, unsigned timeout_ms);

/*
 * Test seam: fn, when not NULL, is called with arg on the nng thread that
 * received each request, after nng took the request off its connection and
 * before the server counts it in flight; it may block, to hold a test in
 * that moment. Called before lm_rpc_server_start, or not at all.
 */
void lm_rpc_server_set_recv_hook(lm_rpc_server *s, void (*fn)(void *arg), void *arg);

/* Writes a URL that a client can dial to reach this server (the bound port
 * for tcp port 0; 127.0.0.1 / ::1 for a wildcard host) into buf. Returns
 * LM_OK, LM_EINVAL when not started, or LM_E2BIG. */
int lm_rpc_server_url(const lm_rpc_server *s, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_RPC_SERVER_H */
