/*
 * client.h - the C client of lunamatch.v1.MatchService over nng REQ/REP.
 *
 * One lm_client talks to one server or to several replicas of it (a
 * comma-separated list of endpoints). It holds one nng REQ socket per
 * endpoint that dials in the background and reconnects by itself; calls
 * may start before a connection is up (they wait for one within their
 * timeout). Each call uses its own nng context, so any number of threads
 * may call at once.
 *
 * Several endpoints: calls are spread round-robin over the connected ones.
 * A call whose endpoint is down is tried on the next within the same
 * deadline: when no connection comes within a short wait (250 ms, or the
 * whole deadline for an endpoint that is connected), and, for the
 * read-only methods only (the six of MatchService: MatchJobs,
 * MatchCandidates, ExplainMatch, GetPosting, GetProfile, Check), when the
 * connection is lost before the answer and when the server answers
 * UNAVAILABLE (loading or draining). A call of any other method name is
 * sent to one endpoint only, and that attempt's result is the call's: a
 * method with side effects could otherwise run twice.
 * Other answers, DEADLINE_EXCEEDED included, are final. Once every endpoint
 * was tried, the next round starts after a pause of 50 ms that doubles from
 * round to round up to 1 s, while the deadline leaves room for it. An
 * endpoint whose connection the call lost is not tried again by the call:
 * nng drops a message over a size limit (an answer over
 * max_response_bytes, a request over the server's limit when that is lower
 * than max_request_bytes) together with its connection, and a repeat would
 * meet the same fate.
 *
 * An UNAVAILABLE answer also has the connection it came on closed, so that
 * the endpoint is dialled afresh (an address in front of several replicas
 * then reaches a ready one). The threads of a client share that
 * connection, and closing it at once would fail the other calls waiting
 * on it for their answers, requests the server may have carried out (a
 * read-only one would be sent and run again, one of any other method would
 * fail with its outcome unknown). So no call starts on it any more (a call
 * goes to another endpoint that is connected, or waits for the fresh
 * connection as for any other), and it is closed when the last call in
 * flight on it ends (at once when there is none), but at the latest 0.5 s
 * after the UNAVAILABLE answer, by a call then waiting for a connection:
 * a draining replica answers the calls it took for up to 10 s, and the
 * calls waiting for the fresh connection do not wait for the slowest of
 * those. The calls still in flight on it then lose the connection, with
 * the consequences that has for any call (above and below). With a single
 * endpoint, a call of a read-only method answered UNAVAILABLE or whose
 * connection was lost is sent again on the fresh connection, at most twice
 * (after a lost connection: once) and only if it comes up within 1 s,
 * which leaves room for the 0.5 s.
 *
 * Resends: nng's REQ protocol can resend a request on its own. The client
 * turns the timer-based resend off (NNG_OPT_REQ_RESENDTIME infinite), so a
 * slow server never sees a silent duplicate; the repeats above are the
 * client's own, of read-only methods only, so a repeat is harmless.
 *
 * lm_client_close must not be called while calls are in flight on other
 * threads: the caller stops its threads first.
 */
#ifndef LUNAMATCH_CLIENT_H
#define LUNAMATCH_CLIENT_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "lunamatch/api.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The client waits this much longer than the call's timeout, so that the
 * server's own DEADLINE_EXCEEDED answer (measured from its receipt of the
 * request) normally arrives before the local timer fires. */
#define LM_CLIENT_DEADLINE_GRACE_MS 250u
#define LM_CLIENT_ENDPOINTS_MAX     16   /* endpoints of one client */
#define LM_CLIENT_URLS_MAX          4096 /* bytes of the endpoint list */
/*
 * Largest RpcRequest envelope a call sends (lm_client_request_size gives a
 * call's): by default the match service's own default limit
 * (LUNAMATCH_MAX_REQUEST_BYTES, LM_RPC_DEFAULT_MAX_REQUEST); at most the
 * largest limit the service can be given. A server drops a request over
 * its limit (by more than a small grace) together with the connection,
 * without an answer, so a larger one is refused before it is sent.
 */
#define LM_CLIENT_DEFAULT_MAX_REQUEST ((size_t) 1 << 20)
#define LM_CLIENT_MAX_REQUEST         ((size_t) 64 << 20)
/* The largest max_response_bytes a client takes: an answer decodes into
 * many times its size (LM_CLIENT_DECODE_FACTOR), and no answer of the
 * service comes near it (top_k <= 1000). */
#define LM_CLIENT_MAX_RESPONSE ((size_t) 1 << 30)
/*
 * Memory an answer of n bytes may take to decode (its envelope, then its
 * payload, each): LM_CLIENT_DECODE_FLOOR + LM_CLIENT_DECODE_FACTOR * n
 * bytes, counted as the total of the allocations, each charged 16 bytes
 * above its size. A few bytes on the wire (an empty structure) can take
 * tens of bytes decoded, so a broken or hostile server could otherwise
 * make the client allocate many times max_response_bytes. The densest
 * answer the service gives (top_k 1000 at EXPLAIN_LEVEL_FULL, 100 skills
 * per match with one-character ids and names: 2.6 MB) takes 8.2 times its
 * bytes; answers with longer texts take 1.5 to 7 times theirs.
 */
#define LM_CLIENT_DECODE_FLOOR  ((size_t) 1 << 20)
#define LM_CLIENT_DECODE_FACTOR 16u

typedef struct lm_client lm_client;

typedef struct lm_client_opts {
	/* Mutual TLS for tls+tcp:// URLs: PEM files, NULL or "" = unset. With a
	 * CA the server's certificate is verified against it and against
	 * tls_server_name (default: the host of the URL); without one the
	 * server is not verified (the connection is still encrypted). */
	const char *tls_cert, *tls_key, *tls_ca;
	const char *tls_server_name;
	unsigned default_timeout_ms; /* for calls with timeout_ms 0; 0 = 5000 */
	/* 0 = LM_RPC_DEFAULT_MAX_RESPONSE; over LM_CLIENT_MAX_RESPONSE
	 * lm_client_open fails (LM_EINVAL). */
	size_t max_response_bytes;
	/* 0 = LM_CLIENT_DEFAULT_MAX_REQUEST; set it to the servers'
	 * LUNAMATCH_MAX_REQUEST_BYTES when that is raised; over
	 * LM_CLIENT_MAX_REQUEST lm_client_open fails (LM_EINVAL). */
	size_t max_request_bytes;
	/* The calling service's name, sent with every call as the metadata
	 * entry "caller" (the server's decision log records it); NULL or ""
	 * = none; UTF-8, at most 1024 bytes (else lm_client_open fails,
	 * LM_EINVAL). */
	const char *caller;
} lm_client_opts;

/*
 * Opens a client for url: one endpoint (tcp://, ipc:// or tls+tcp://) or a
 * comma-separated list of at most LM_CLIENT_ENDPOINTS_MAX of them
 * (LM_CLIENT_URLS_MAX bytes in all; white space around each is ignored).
 * With tls+tcp:// the server name checked is tls_server_name or each
 * endpoint's own host. o may be NULL for defaults. Does not wait for
 * connections. Returns LM_OK; LM_EINVAL for a bad or empty URL (a TCP one
 * needs a port from 1 to 65535, or a service name the system knows), too many endpoints
 * or bad TLS options (logged with the reason); LM_ENOMEM; LM_ENNG.
 */
LM_API int lm_client_open(const char *url, const lm_client_opts *o, lm_client **out);

/* Closes the socket and frees the client; NULL is a no-op. No call may be
 * in flight. Returns within LM_RPC_CLOSE_TIMEOUT_MS (3 s) per endpoint even
 * when nng 1.5.2 never finishes a close (a connection closed in the middle
 * of a large request, e.g. one whose call's deadline passed while it was
 * still being written): the client is then left allocated, logged as
 * client.close.stuck. */
LM_API void lm_client_close(lm_client *c);

/*
 * Calls method (short name, e.g. "MatchJobs") with req and waits for the
 * answer, at most timeout_ms (0 = the default) plus
 * LM_CLIENT_DEADLINE_GRACE_MS. The server gets timeout_ms as the deadline
 * (a retry on another endpoint: what is left of it).
 *
 * Returns LM_OK when the server answered (with any code): *status is its
 * lunamatch.v1.StatusCode, errmsg its message (empty on OK; a number
 * outside the enum is UNKNOWN, with "status code <n>: " before the
 * message), and on OK
 * *resp is a new message of type resp_desc that the caller frees with
 * protobuf_c_message_free_unpacked(*resp, NULL); otherwise *resp is NULL.
 * Without an answer it returns an lm_err and sets a local status:
 *  LM_ETIMEDOUT  DEADLINE_EXCEEDED: sent, but no answer in time;
 *  LM_ETIMEDOUT  UNAVAILABLE: no connection to the server in time;
 *  LM_EPARSE     INTERNAL: the answer was unreadable or not ours;
 *  LM_E2BIG      INTERNAL: the answer would take more memory to decode
 *                than LM_CLIENT_DECODE_FLOOR + LM_CLIENT_DECODE_FACTOR
 *                times its bytes (errmsg says so);
 *  LM_EINVAL     INVALID_ARGUMENT: bad arguments (bad method name);
 *  LM_E2BIG      INVALID_ARGUMENT: the request's envelope, counted with
 *                the longest request id a call can carry (up to 19 bytes
 *                more than lm_client_request_size), is over
 *                max_request_bytes (errmsg gives both sizes); nothing was
 *                sent;
 *  LM_ENNG, LM_ENOMEM or another lm_err of the failed transport call
 *                UNAVAILABLE / INTERNAL: local failures.
 * errmsg (errlen bytes, may be NULL if errlen is 0) always gets a
 * NUL-terminated text. status may be NULL. Thread-safe. With several
 * endpoints the result is that of the last endpoint tried (see above).
 */
LM_API int lm_client_call(lm_client *c, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *resp_desc, unsigned timeout_ms,
    ProtobufCMessage **resp, int *status, char *errmsg, size_t errlen);

/*
 * Returns the size in bytes of the RpcRequest envelope that the next call of
 * c to method with req and timeout_ms sends, built by the code that builds
 * the calls' envelopes (request id, metadata and all); 0 for a bad method
 * name or a NULL argument. A call made later, or from another thread in
 * between, may carry a request id longer by a digit.
 */
LM_API size_t lm_client_request_size(
    lm_client *c, const char *method, const ProtobufCMessage *req, unsigned timeout_ms);

/* Typed helpers: lm_client_call with the method's request and response. */
LM_API int lm_client_match_jobs(lm_client *c, const Lunamatch__V1__MatchJobsRequest *req,
    unsigned timeout_ms, Lunamatch__V1__MatchJobsResponse **resp, int *status,
    char *errmsg, size_t errlen);
LM_API int lm_client_match_candidates(lm_client *c,
    const Lunamatch__V1__MatchCandidatesRequest *req, unsigned timeout_ms,
    Lunamatch__V1__MatchCandidatesResponse **resp, int *status, char *errmsg,
    size_t errlen);
LM_API int lm_client_explain_match(lm_client *c,
    const Lunamatch__V1__ExplainMatchRequest *req, unsigned timeout_ms,
    Lunamatch__V1__ExplainMatchResponse **resp, int *status, char *errmsg, size_t errlen);
LM_API int lm_client_get_posting(lm_client *c,
    const Lunamatch__V1__GetPostingRequest *req, unsigned timeout_ms,
    Lunamatch__V1__GetPostingResponse **resp, int *status, char *errmsg, size_t errlen);
LM_API int lm_client_get_profile(lm_client *c,
    const Lunamatch__V1__GetProfileRequest *req, unsigned timeout_ms,
    Lunamatch__V1__GetProfileResponse **resp, int *status, char *errmsg, size_t errlen);
LM_API int lm_client_check(lm_client *c, const Lunamatch__V1__HealthCheckRequest *req,
    unsigned timeout_ms, Lunamatch__V1__HealthCheckResponse **resp, int *status,
    char *errmsg, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_CLIENT_H */
