/*
 * http.h - the operations HTTP server of a service: health and metrics.
 *
 * Runs on its own port, apart from the RPC and Kafka traffic, on
 * libmicrohttpd (one daemon thread). Endpoints:
 *   GET /healthz  200 "ok\n", or 503 and the reason the live check gave
 *   GET /readyz   the same with the ready check
 *   GET /startedz the same with the started check, where the service has
 *                 one (404 otherwise): whether the service has finished
 *                 starting, once and for good (ingest: caught up once).
 *                 An orchestrator that must not take the service out of
 *                 rotation for a later, passing failure probes this one
 *                 for readiness, and /readyz only to report.
 *   GET /metrics  200, Content-Type text/plain; version=0.0.4, the registry
 *                 rendered by lm_metrics_render()
 * HEAD is answered like GET without a body; other methods get 405, other
 * paths 404. Request bodies are never read.
 *
 * Connection hygiene: a connection is closed after idle_timeout_s without
 * progress (an idle keep-alive); a connection is also closed when the
 * headers of its request are not complete idle_timeout_s and one reaper
 * tick (a quarter of it, at most a second) after it was accepted or its
 * previous response was sent, however steadily they trickle in (checked
 * every tick, so closed one to two ticks after idle_timeout_s); request
 * headers larger than
 * LM_HTTP_CONN_MEMORY are refused; a new connection is closed at once while
 * max_connections are open or its address already has
 * max_connections_per_peer. lunamatch_http_connections_refused_total counts
 * these closes by the server, by reason ("full", "per_peer",
 * "header_timeout"); a connection that sends nothing at all (a kept-alive
 * one left idle included) is closed by the idle timeout, which comes
 * first, and is not counted. lunamatch_http_connections is the number open.
 */
#ifndef LUNAMATCH_HTTP_H
#define LUNAMATCH_HTTP_H

#include <stddef.h>

#include "lunamatch/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_HTTP_ADDR_MAX    256 /* longest "host:port", without the NUL */
#define LM_HTTP_REASON_MAX  256 /* reason buffer handed to a check, with the NUL */
#define LM_HTTP_CONN_MEMORY (16 * 1024) /* bytes of request a connection may buffer */

#define LM_HTTP_MAX_CONNECTIONS_DEFAULT 128
#define LM_HTTP_MAX_CONNECTIONS         65536
#define LM_HTTP_IDLE_TIMEOUT_DEFAULT_S  30
#define LM_HTTP_IDLE_TIMEOUT_MAX_S      86400

typedef struct lm_http lm_http;

/*
 * A health check. Returns LM_OK when healthy; otherwise any lm_err, with a
 * short one-line reason written into reason (len bytes, NUL-terminated; no
 * personal data: it is served to anyone who can reach the port). Called on
 * the server's thread for every probe: it must be quick and must not block
 * on locks the service holds for long (read an atomic flag or a timestamp).
 */
typedef int (*lm_http_check_fn)(void *arg, char *reason, size_t len);

typedef struct lm_http_opts {
	const char *addr;         /* "host:port" or "[v6addr]:port"; port 0 = ephemeral */
	lm_metrics *metrics;      /* NULL serves an empty /metrics; borrowed */
	lm_http_check_fn live;    /* /healthz; NULL = always healthy */
	lm_http_check_fn ready;   /* /readyz; NULL = always ready */
	lm_http_check_fn started; /* /startedz; NULL = no such path (404) */
	void *arg;                /* passed to the checks; borrowed */
	/* Limits; 0 takes the default. */
	unsigned idle_timeout_s;           /* LM_HTTP_IDLE_TIMEOUT_DEFAULT_S */
	unsigned max_connections;          /* LM_HTTP_MAX_CONNECTIONS_DEFAULT */
	unsigned max_connections_per_peer; /* max_connections (capped to it) */
} lm_http_opts;

/*
 * Binds o->addr and starts serving. metrics and arg are borrowed: they must
 * stay valid until lm_http_stop() returns; the metrics of the connections
 * are registered in metrics. Returns LM_OK and *out, LM_EINVAL for a
 * malformed address, one the system refuses to listen on (bind: EINVAL,
 * such as a link-local IPv6 address without its scope) or a limit above
 * its maximum, LM_ENOENT when the host does not resolve, LM_EBUSY
 * (reason logged) when the port is in use or the host name cannot be
 * resolved for now (EAI_AGAIN: worth a retry), another lm_err converted from
 * errno when it cannot listen otherwise (reason logged) or cannot make its
 * threads, LM_EIO when the server does not start, or LM_ENOMEM.
 */
int lm_http_start(const lm_http_opts *o, lm_http **out);

/* LM_OK when addr is an address lm_http_start takes as written: "host:port"
 * or "[v6addr]:port", a host name of letters, digits, '.' and '-', a port
 * 0..65535, at most LM_HTTP_ADDR_MAX bytes; LM_EINVAL otherwise (also for
 * NULL). The host is not resolved. Any thread. */
int lm_http_addr_check(const char *addr);

/* Test seam: the next n resolutions of an address by lm_http_start fail
 * with EAI_AGAIN, a temporary failure of name resolution. Any thread. */
void lm_http_fail_resolves(unsigned n);

/* The bound port (the real one when started with port 0); 0 for NULL. */
int lm_http_port(const lm_http *h);

/*
 * Stops serving, waits for a handler that is running to finish, closes every
 * connection and frees h. After it returns no check function is called and
 * the registry is not used any more. NULL is a no-op. Must not be called
 * from a check function.
 */
void lm_http_stop(lm_http *h);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_HTTP_H */
