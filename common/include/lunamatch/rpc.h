/*
 * rpc.h - the RPC envelope shared by the match server and its clients.
 *
 * Calls travel over nng REQ/REP as one lunamatch.v1.RpcRequest per request
 * message and one lunamatch.v1.RpcResponse per reply (rpc.proto). This
 * module holds what both ends agree on: the method naming scheme, the limits
 * of the envelope, names of the status codes, the mapping from lm_err to a
 * status code, and the TLS configuration used for tls+tcp:// URLs.
 *
 * Thread-safety: every function is reentrant and shares no state.
 */
#ifndef LUNAMATCH_RPC_H
#define LUNAMATCH_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "lunamatch/v1/rpc.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The one service and the prefix of its full method names. */
#define LM_RPC_SERVICE       "lunamatch.v1.MatchService"
#define LM_RPC_METHOD_PREFIX "/lunamatch.v1.MatchService/"

/* Envelope limits (bytes, without the NUL, unless said otherwise). Requests
 * that break one are answered INVALID_ARGUMENT. */
/* nng counts a message's SP header in the size NNG_OPT_RECVMAXSZ limits:
 * 4 bytes for each device it passed (at most 15, NNG_OPT_MAXTTL's largest)
 * and 4 for the request id. A receive limit for bodies of n bytes is
 * n + LM_RPC_SP_HEADER_MAX, on the server (requests) as on the clients
 * (replies). */
#define LM_RPC_SP_HEADER_MAX      64u
#define LM_RPC_MAX_METHOD         128 /* full method name */
#define LM_RPC_MAX_REQUEST_ID     128 /* request_id */
#define LM_RPC_MAX_METADATA       32  /* metadata entries per request */
#define LM_RPC_MAX_METADATA_KEY   64  /* metadata key: [a-z0-9._-]+ */
#define LM_RPC_MAX_METADATA_VALUE 1024
#define LM_RPC_MAX_MESSAGE        1024 /* RpcResponse.message; longer is cut */

/* Defaults shared by the server and the client. */
#define LM_RPC_DEFAULT_TIMEOUT_MS 5000u
#define LM_RPC_MAX_TIMEOUT_MS     (10u * 60 * 1000) /* larger timeout_ms is capped */
/* The request limit: the server's LUNAMATCH_MAX_REQUEST_BYTES default
 * (config.c writes it as text; test_config checks they agree), and what a
 * client sends at most unless told the servers take more. */
#define LM_RPC_DEFAULT_MAX_REQUEST ((size_t) 1 << 20)
/* Largest request limit a server takes (its max_request_bytes,
 * LUNAMATCH_MAX_REQUEST_BYTES), and so the largest request a client sends
 * (the public LM_CLIENT_MAX_REQUEST, asserted equal). */
#define LM_RPC_MAX_REQUEST_BYTES    ((size_t) 64 << 20)
#define LM_RPC_DEFAULT_MAX_RESPONSE (64u * 1024 * 1024)

/*
 * How long closing an RPC socket may take before its owner goes on without
 * it. nng 1.5.2 can hang in nng_close for good: when a connection is closed
 * while a message larger than the socket buffer is part-written, the TCP
 * transport re-arms the write on an aio already closed, whose completion
 * never comes; tearing that connection down then holds nng's one reaper
 * thread, and every socket close in the process waits behind it.
 */
#define LM_RPC_CLOSE_TIMEOUT_MS 3000u

/* Largest PEM file (certificate, key or CA bundle) lm_rpc_tls_config reads. */
#define LM_RPC_MAX_PEM (1024u * 1024)

/*
 * Writes the full method name LM_RPC_METHOD_PREFIX + name into buf (len
 * bytes with the NUL). name is the short name, e.g. "MatchJobs": 1 or more
 * of [A-Za-z0-9_]. Returns LM_OK, LM_EINVAL for a NULL or malformed name, or
 * LM_E2BIG when the result exceeds LM_RPC_MAX_METHOD or does not fit in buf.
 */
int lm_rpc_method_name(const char *name, char *buf, size_t len);

/*
 * Returns the short name inside a full method name (a pointer into full),
 * or NULL when full does not start with LM_RPC_METHOD_PREFIX or the rest is
 * empty. "/lunamatch.v1.MatchService/Check" gives "Check".
 */
const char *lm_rpc_method_short(const char *full);

/* The name of a lunamatch.v1.StatusCode ("OK", "INVALID_ARGUMENT", ...);
 * "UNKNOWN" for a value outside the enum. Never NULL; static storage. */
const char *lm_rpc_status_name(int code);

/*
 * The status code that best reports an lm_err to a caller: LM_OK → OK,
 * LM_ENOENT → NOT_FOUND, LM_EINVAL/LM_EPARSE/LM_ESCHEMA/LM_E2BIG →
 * INVALID_ARGUMENT, LM_ETIMEDOUT → DEADLINE_EXCEEDED, LM_EBUSY →
 * RESOURCE_EXHAUSTED, LM_ECLOSED → UNAVAILABLE, LM_ENOTSUP → UNIMPLEMENTED,
 * LM_EEXIST → ALREADY_EXISTS, anything else → INTERNAL.
 */
int lm_rpc_status_from_err(int err);

/*
 * Reads the method (field 1) and request_id (field 2) of the RpcRequest
 * p[0..len) and counts its metadata entries (field 4) without decoding it,
 * for answers given before the envelope is decoded (the server's). method
 * and reqid have room for LM_RPC_MAX_METHOD and LM_RPC_MAX_REQUEST_ID
 * bytes and a NUL. Each string is the field's last occurrence before the
 * bytes stop being well-formed (if they do), the one a decoder keeps; ""
 * when there is none, or when it is longer than its limit, holds a NUL or
 * is not UTF-8. *nmeta (nmeta may be NULL) counts the entries up to the
 * same point. Allocates nothing.
 */
void lm_rpc_envelope_scan(
    const uint8_t *p, size_t len, char *method, char *reqid, size_t *nmeta);

/*
 * Checks the limits of a decoded request envelope: method and request_id
 * lengths, metadata count, key syntax and sizes. It does not look at the
 * method's existence or at the payload. Returns LM_OK or LM_EINVAL with the
 * reason in err (errlen bytes; always NUL-terminated when errlen > 0).
 */
int lm_rpc_request_check(const Lunamatch__V1__RpcRequest *req, char *err, size_t errlen);

/*
 * Builds an nng TLS configuration for mode NNG_TLS_MODE_SERVER or
 * NNG_TLS_MODE_CLIENT from PEM files. NULL or "" means "not given".
 *  - cert and key: our own certificate (chain) and its private key; both or
 *    neither. Required for a server; optional for a client (a client
 *    without one is refused by a server that requires client certificates).
 *  - ca: the CA bundle that peers must chain to. When given, the peer must
 *    present a valid certificate (NNG_TLS_AUTH_MODE_REQUIRED): this is
 *    mutual TLS on a server, and server verification on a client. Without a
 *    CA nothing is verified (NNG_TLS_AUTH_MODE_NONE).
 * Files larger than LM_RPC_MAX_PEM are refused. On LM_OK the caller owns
 * *out (release with nng_tls_config_free; nng endpoints take their own
 * hold). Returns LM_OK; LM_EINVAL (bad combination, unreadable file or bad
 * PEM, reason in err); LM_E2BIG; LM_ENOMEM; LM_ENOTSUP when nng has no TLS.
 */
int lm_rpc_tls_config(nng_tls_config **out, int mode, const char *cert, const char *key,
    const char *ca, char *err, size_t errlen);

/* True when url uses the tls+tcp scheme (tls+tcp://, tls+tcp4://, tls+tcp6://,
 * in any case, as nng reads it). */
bool lm_rpc_url_is_tls(const char *url);

/* Whether the host of an nng URL (tcp, tls+tcp) is a name that does not
 * resolve. nng reports it as it reports an address the system refuses
 * (NNG_EADDRINVAL), and only the first is the setting's fault for sure, so
 * that a service exits 2 for it. False when it resolves, when the answer
 * is not known for now (no name server answered) and for a URL without a
 * host or one nng does not parse. Resolves the name (blocking). */
bool lm_rpc_url_unresolved(const char *url);

/*
 * Whether port (the text of a TCP address's port, as nng_url's u_port) is a
 * port: a number from 1 to 65535, or 0 too when listen is true (the kernel
 * then picks one); to dial (listen false) also a service name the system
 * knows (/etc/services: "http"), as nng resolves one. The one rule for the
 * addresses the services listen on and the C client dials: an empty,
 * unknown or larger port is a typo that would otherwise dial in vain until
 * the deadline.
 */
bool lm_rpc_port_ok(const char *port, bool listen);

/*
 * nng_close(sock), waiting at most timeout_ms for nng to finish. Returns
 * true when it did; false when it did not (LM_RPC_CLOSE_TIMEOUT_MS): the
 * close goes on in the background and may never end, so nothing nng may
 * still call (pipe callbacks and their arguments, aios of the socket's
 * contexts) may be freed. Without memory or a thread for the wait it
 * closes in the caller, unbounded. Any thread.
 */
bool lm_rpc_close_bounded(nng_socket sock, unsigned timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_RPC_H */
