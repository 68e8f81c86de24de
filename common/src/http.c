/*
 * http.c - health and metrics endpoints on libmicrohttpd; see http.h.
 *
 * One daemon thread (MHD's internal polling thread, epoll) accepts, reads,
 * answers and closes every connection; the check functions and the metrics
 * registry are only called on it. MHD_stop_daemon() joins that thread, so
 * once lm_http_stop() returns nothing borrowed is touched any more.
 *
 * Connection hygiene (the ops port is reachable by anything that can reach
 * the pod): the listening socket is made here, so that a port in use is a
 * clear LM_EBUSY; each connection is closed after idle_timeout_s without
 * progress (an idle keep-alive or a request that trickles in); request
 * headers are bounded by LM_HTTP_CONN_MEMORY; and the accept policy refuses
 * a connection when max_connections are open or its address already has
 * max_per_peer, counting each refusal by reason. The open connections are
 * tracked in a table of max_connections slots that only the daemon thread
 * touches: the accept policy and the connection notifications for one
 * connection run one after the other on it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/http.h"
#include "lunamatch/log.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define PROM_TEXT  "text/plain; version=0.0.4; charset=utf-8"

/* Pending connections the kernel queues before accept. */
#define LISTEN_BACKLOG 64

enum route { R_HEALTHZ, R_READYZ, R_METRICS, R_COUNT };

static const char *const route_paths[R_COUNT] = {"/healthz", "/readyz", "/metrics"};

/* Why a connection was refused at accept: the label of the counter. */
enum refusal { REF_FULL, REF_PER_PEER, REF_COUNT };

static const char *const refusal_names[REF_COUNT] = {"full", "per_peer"};

/* Why a request got an error status: the label of the counter. MALFORMED
 * is every request that libmicrohttpd itself answered with an error (a bad
 * request line or header, headers beyond LM_HTTP_CONN_MEMORY, an HTTP
 * version it does not speak); it reports each one through the logger with
 * the text MHD_ERROR_PREFIX. */
enum bad { BAD_MALFORMED, BAD_NOT_FOUND, BAD_METHOD, BAD_COUNT };

static const char *const bad_names[BAD_COUNT] = {"malformed", "not_found", "method"};

#define MHD_ERROR_PREFIX "Error processing request (HTTP response code is "

/* An open connection's peer: IPv4 mapped into IPv6, so one compare serves
 * both families. */
struct slot {
	bool used;
	uint8_t addr[16];
};

struct lm_http {
	struct MHD_Daemon *d;
	int port;
	lm_http_check_fn live, ready;
	void *arg;           /* borrowed */
	lm_metrics *metrics; /* borrowed */
	unsigned max_conns, max_per_peer;
	struct slot *slots; /* max_conns entries; daemon thread only */
	lm_gauge *open_g;
	lm_counter *refused[REF_COUNT];
	lm_counter *bad[BAD_COUNT];
};

/* The 16-byte form of a socket address; false for families other than
 * IPv4 and IPv6. */
static bool
addr16(const struct sockaddr *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *) sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

/* Accept policy: refuses when the server or the peer is at its limit. */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	lm_http *h = cls;
	uint8_t a[16];
	unsigned open = 0, same = 0;

	(void) len;
	bool inet = addr16(sa, a);

	for (unsigned i = 0; i < h->max_conns; i++) {
		if (!h->slots[i].used)
			continue;
		open++;
		if (inet && memcmp(h->slots[i].addr, a, 16) == 0)
			same++;
	}
	if (open >= h->max_conns) {
		lm_counter_add(h->refused[REF_FULL], 1);
		return MHD_NO;
	}
	if (same >= h->max_per_peer) {
		lm_counter_add(h->refused[REF_PER_PEER], 1);
		return MHD_NO;
	}
	return MHD_YES;
}

/* Takes a slot for a connection that was accepted, frees it when the
 * connection closes. *socket_context holds the slot. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	lm_http *h = cls;
	struct slot *s = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (s != NULL) {
			s->used = false;
			lm_gauge_add(h->open_g, -1);
		}
		*socket_context = NULL;
		return;
	}
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	for (unsigned i = 0; i < h->max_conns; i++) {
		if (h->slots[i].used)
			continue;
		s = &h->slots[i];
		s->used = true;
		addr16(ci != NULL ? ci->client_addr : NULL, s->addr);
		lm_gauge_add(h->open_g, 1);
		break;
	}
	/* No free slot cannot happen (the accept policy refuses at
	 * max_conns); should it, the connection is served uncounted. */
	*socket_context = s;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *ctype, const void *body,
    size_t len, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ok;

	r = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO; /* MHD closes the connection */
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") !=
	        MHD_YES ||
	    (allow != NULL &&
	        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result
serve_check(lm_http *h, struct MHD_Connection *c, lm_http_check_fn fn)
{
	char reason[LM_HTTP_REASON_MAX];
	char body[LM_HTTP_REASON_MAX + 1];
	int rc;

	if (fn == NULL)
		return reply(c, MHD_HTTP_OK, TEXT_PLAIN, "ok\n", 3, NULL);
	reason[0] = '\0';
	rc = fn(h->arg, reason, sizeof(reason));
	if (rc == LM_OK)
		return reply(c, MHD_HTTP_OK, TEXT_PLAIN, "ok\n", 3, NULL);
	/* The reason goes out as one line of text, whatever the check wrote. */
	reason[sizeof(reason) - 1] = '\0';
	for (char *p = reason; *p != '\0'; p++) {
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	snprintf(
	    body, sizeof(body), "%s\n", reason[0] != '\0' ? reason : lm_strerror(rc));
	return reply(
	    c, MHD_HTTP_SERVICE_UNAVAILABLE, TEXT_PLAIN, body, strlen(body), NULL);
}

static enum MHD_Result
serve_metrics(lm_http *h, struct MHD_Connection *c)
{
	char msg[128];
	char *text;
	size_t len;
	enum MHD_Result ok;
	int rc;

	if (h->metrics == NULL)
		return reply(c, MHD_HTTP_OK, PROM_TEXT, "", 0, NULL);
	if ((rc = lm_metrics_render(h->metrics, &text, &len)) != LM_OK) {
		snprintf(msg, sizeof(msg), "metrics unavailable: %s\n", lm_strerror(rc));
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, TEXT_PLAIN, msg,
		    strlen(msg), NULL);
	}
	ok = reply(c, MHD_HTTP_OK, PROM_TEXT, text, len, NULL);
	free(text);
	return ok;
}

/* True if the request announces a body, which is never read. */
static bool
has_body(struct MHD_Connection *c)
{
	const char *cl = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (MHD_lookup_connection_value(
	        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
		return true;
	return cl != NULL && strcmp(cl, "0") != 0;
}

/*
 * MHD calls this once when the headers are in and again when the request is
 * complete. A response queued on the first call makes MHD close the
 * connection after it, unread body and all: that is the answer to a request
 * with a body. Requests without one are answered on the second call, which
 * keeps the connection for the next request. HEAD gets the headers of GET
 * (MHD leaves the body out).
 */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size,
    void **req_cls)
{
	static const char not_allowed[] = "method not allowed\n";
	static const char not_found[] = "not found\n";
	static int headers_in; /* its address marks a request seen once */
	lm_http *h = cls;
	int route = -1;

	(void) version;
	(void) upload_data;
	if (*req_cls == NULL && !has_body(c)) {
		*req_cls = &headers_in;
		return MHD_YES;
	}
	*upload_data_size = 0; /* a body is discarded, never read */
	for (int i = 0; i < R_COUNT; i++)
		if (strcmp(url, route_paths[i]) == 0)
			route = i;
	if (route < 0) {
		lm_counter_add(h->bad[BAD_NOT_FOUND], 1);
		return reply(c, MHD_HTTP_NOT_FOUND, TEXT_PLAIN, not_found,
		    sizeof(not_found) - 1, NULL);
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		lm_counter_add(h->bad[BAD_METHOD], 1);
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT_PLAIN, not_allowed,
		    sizeof(not_allowed) - 1, "GET, HEAD");
	}
	if (route == R_METRICS)
		return serve_metrics(h, c);
	return serve_check(h, c, route == R_HEALTHZ ? h->live : h->ready);
}

/* MHD's own diagnostics, at debug level (a client can cause them at any
 * rate); the error answers it sends itself are counted as malformed. */
static void
on_log(void *cls, const char *fmt, va_list ap)
{
	lm_http *h = cls;
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	if (strncmp(msg, MHD_ERROR_PREFIX, sizeof(MHD_ERROR_PREFIX) - 1) == 0)
		lm_counter_add(h->bad[BAD_MALFORMED], 1);
	lm_debug("http.mhd", "%s", msg);
}

/* Splits "host:port" or "[v6]:port" into host (hlen bytes) and port. Host
 * names are letters, digits, '.' and '-'; the port is 0..65535. */
static int
split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *h, *p;
	size_t n, alen;
	bool v6;
	unsigned long pnum = 0;

	if (addr == NULL)
		return LM_EINVAL;
	alen = strnlen(addr, LM_HTTP_ADDR_MAX + 1);
	if (alen == 0 || alen > LM_HTTP_ADDR_MAX)
		return LM_EINVAL;
	v6 = addr[0] == '[';
	if (v6) {
		const char *end = strchr(addr, ']');
		if (end == NULL || end[1] != ':')
			return LM_EINVAL;
		h = addr + 1;
		n = (size_t) (end - h);
		p = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (colon == NULL)
			return LM_EINVAL;
		h = addr;
		n = (size_t) (colon - addr);
		p = colon + 1;
	}
	if (n == 0 || n >= hlen)
		return LM_EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char) h[i];
		bool ok = v6 ? (isxdigit(ch) || ch == ':' || ch == '.')
		             : (isalnum(ch) || ch == '.' || ch == '-');
		if (!ok)
			return LM_EINVAL;
	}
	if (p[0] == '\0' || strlen(p) > 5 || strlen(p) >= plen)
		return LM_EINVAL;
	for (const char *q = p; *q != '\0'; q++) {
		if (*q < '0' || *q > '9')
			return LM_EINVAL;
		pnum = pnum * 10 + (unsigned long) (*q - '0');
	}
	if (pnum > 65535)
		return LM_EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%lu", pnum);
	return LM_OK;
}

/* A listening TCP socket on addr; *fd and *port on LM_OK. Errors are
 * logged: LM_EINVAL (address does not parse or resolve), LM_EBUSY (in use),
 * others from errno. */
static int
listen_on(const char *addr, int *fd, int *port)
{
	char host[LM_HTTP_ADDR_MAX + 1], pstr[8];
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int s = -1, one = 1, rc, gai;

	if (split_addr(addr, host, sizeof(host), pstr, sizeof(pstr)) != LM_OK) {
		lm_error(
		    "http.addr", "invalid HTTP address: expected host:port or [v6]:port");
		return LM_EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host, pstr, &hints, &ai)) != 0) {
		lm_error("http.addr", "invalid HTTP address %s: %s", addr,
		    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		return gai == EAI_MEMORY ? LM_ENOMEM : LM_EINVAL;
	}
	if ((s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, LISTEN_BACKLOG) != 0 ||
	    getsockname(s, (struct sockaddr *) &ss, &sl) != 0) {
		rc = lm_err_from_errno(errno);
		lm_error(
		    "http.listen", "cannot serve HTTP on %s: %s", addr, strerror(errno));
		if (s >= 0)
			close(s);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
	                                       : ((struct sockaddr_in *) &ss)->sin_port);
	*fd = s;
	return LM_OK;
}

static void
register_metrics(lm_http *h)
{
	char labels[64];

	if (h->metrics == NULL)
		return;
	h->open_g = lm_metrics_gauge(
	    h->metrics, "lunamatch_http_connections", "ops HTTP connections open", NULL);
	for (int r = 0; r < REF_COUNT; r++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", refusal_names[r]);
		h->refused[r] = lm_metrics_counter(h->metrics,
		    "lunamatch_http_connections_refused_total",
		    "ops HTTP connections closed at once: max_connections open "
		    "(reason=\"full\"), or max_connections_per_peer from its address "
		    "(reason=\"per_peer\")",
		    labels);
	}
	for (int b = 0; b < BAD_COUNT; b++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", bad_names[b]);
		h->bad[b] = lm_metrics_counter(h->metrics,
		    "lunamatch_http_bad_requests_total",
		    "ops HTTP requests answered with an error status: malformed "
		    "(bad request line or header, headers over the limit, unknown HTTP "
		    "version), not_found (unknown path), method (not GET or HEAD)",
		    labels);
	}
}

int
lm_http_start(const lm_http_opts *o, lm_http **out)
{
	lm_http *h = NULL;
	int fd = -1, rc;

	if (out != NULL)
		*out = NULL;
	if (o == NULL || out == NULL)
		return LM_EINVAL;
	if (o->max_connections > LM_HTTP_MAX_CONNECTIONS ||
	    o->idle_timeout_s > LM_HTTP_IDLE_TIMEOUT_MAX_S)
		return LM_EINVAL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return LM_ENOMEM;
	h->live = o->live;
	h->ready = o->ready;
	h->arg = o->arg;
	h->metrics = o->metrics;
	h->max_conns =
	    o->max_connections ? o->max_connections : LM_HTTP_MAX_CONNECTIONS_DEFAULT;
	h->max_per_peer =
	    o->max_connections_per_peer ? o->max_connections_per_peer : h->max_conns;
	if (h->max_per_peer > h->max_conns)
		h->max_per_peer = h->max_conns;
	if ((h->slots = calloc(h->max_conns, sizeof(*h->slots))) == NULL) {
		rc = LM_ENOMEM;
		goto fail;
	}
	register_metrics(h);
	if ((rc = listen_on(o->addr, &fd, &h->port)) != LM_OK)
		goto fail;
	/* MHD owns fd from here, also when the start fails. */
	h->d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0,
	    on_accept, h, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned) (o->idle_timeout_s ? o->idle_timeout_s
	                                  : LM_HTTP_IDLE_TIMEOUT_DEFAULT_S),
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) LM_HTTP_CONN_MEMORY,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_EXTERNAL_LOGGER,
	    on_log, h, MHD_OPTION_END);
	if (h->d == NULL) {
		lm_error("http.listen",
		    "cannot serve HTTP on %s: the server did not start", o->addr);
		rc = LM_EIO;
		goto fail;
	}
	lm_info("http.start",
	    "serving /healthz /readyz /metrics on %s (port %d; at most %u connections, "
	    "%u per address, closed after %u s idle)",
	    o->addr, h->port, h->max_conns, h->max_per_peer,
	    o->idle_timeout_s ? o->idle_timeout_s : LM_HTTP_IDLE_TIMEOUT_DEFAULT_S);
	*out = h;
	return LM_OK;

fail:
	free(h->slots);
	free(h);
	return rc;
}

int
lm_http_port(const lm_http *h)
{
	return h != NULL ? h->port : 0;
}

void
lm_http_stop(lm_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d); /* joins the daemon thread, closes every socket */
	free(h->slots);
	free(h);
}
