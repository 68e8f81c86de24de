/*
 * http.c - health and metrics endpoints on libmicrohttpd; see http.h.
 *
 * One daemon thread (MHD's internal polling thread, epoll) accepts, reads,
 * answers and closes every connection; the check functions and the metrics
 * registry are only called on it. A second thread, the reaper, enforces the
 * header deadline below. lm_http_stop() joins the reaper, then
 * MHD_stop_daemon() joins the daemon thread, so once it returns nothing
 * borrowed is touched any more.
 *
 * Connection hygiene (the ops port is reachable by anything that can reach
 * the pod): the listening socket is made here, so that a port in use is a
 * clear LM_EBUSY; each connection is closed after idle_timeout_s without
 * progress (MHD's connection timeout, which every byte received restarts);
 * the headers of each request must be complete idle_timeout_s and one
 * reaper tick after the connection was accepted or its previous response
 * was sent, or the connection is closed (the header deadline: a request
 * that trickles in a byte at a time never idles long enough for MHD's
 * timeout; the tick lets that timeout close a connection that sent
 * nothing first, uncounted, as the two cannot be told apart here); request
 * headers are bounded by LM_HTTP_CONN_MEMORY; and the accept policy refuses
 * a connection when max_connections are open or its address already has
 * max_per_peer. Each close by the server is counted by reason.
 *
 * The open connections are tracked in a table of max_connections slots,
 * guarded by mu: the daemon thread fills and frees the slots (the accept
 * policy and the notifications of one connection run one after the other
 * on it), and the reaper reads them every tick and shuts down the socket of
 * a connection past its header deadline. MHD notifies the close of a
 * connection before it closes the socket, so a socket in a used slot is
 * still the connection's own when the reaper shuts it down; MHD then sees
 * the end of the stream and closes the connection on the daemon thread.
 * MHD's own connection limit is set one above max_connections, so that the
 * accept policy, which counts its refusals, is always the one that refuses.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/fault.h"
#include "lunamatch/http.h"
#include "lunamatch/log.h"
#include "lunamatch/text.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define PROM_TEXT  "text/plain; version=0.0.4; charset=utf-8"

/* Pending connections the kernel queues before accept. */
#define LISTEN_BACKLOG 64

enum route { R_HEALTHZ, R_READYZ, R_STARTEDZ, R_METRICS, R_COUNT };

static const char *const route_paths[R_COUNT] = {
    "/healthz", "/readyz", "/startedz", "/metrics"};

/* Longest and shortest pause of the reaper between two sweeps. */
#define REAP_TICK_MAX_MS 1000
#define REAP_TICK_MIN_MS 50

/* Why the server closed a connection: at accept (FULL, PER_PEER), or when
 * its request headers missed the header deadline (HEADER_TIMEOUT). The
 * label of the counter. */
enum refusal { REF_FULL, REF_PER_PEER, REF_HEADER_TIMEOUT, REF_COUNT };

static const char *const refusal_names[REF_COUNT] = {
    "full", "per_peer", "header_timeout"};

/* Why a request got an error status: the label of the counter. MALFORMED
 * is every request that libmicrohttpd itself answered with an error (a bad
 * request line or header, headers beyond LM_HTTP_CONN_MEMORY, an HTTP
 * version it does not speak); it reports each one through the logger with
 * the text MHD_ERROR_PREFIX. */
enum bad { BAD_MALFORMED, BAD_NOT_FOUND, BAD_METHOD, BAD_COUNT };

static const char *const bad_names[BAD_COUNT] = {"malformed", "not_found", "method"};

#define MHD_ERROR_PREFIX "Error processing request (HTTP response code is "

/* An open connection. addr is its peer, IPv4 mapped into IPv6, so one
 * compare serves both families. A used slot that is neither headers_in nor
 * reaped is waiting for request headers: its connection is shut down at
 * the first sweep from since_ms + header_ms + tick_ms on. */
struct slot {
	bool used;
	bool headers_in;  /* the current request's headers are complete */
	bool reaped;      /* shut down by the header deadline; closing */
	int fd;           /* the connection's socket, owned by MHD */
	int64_t since_ms; /* lm_clock_ms() at accept or after the last response */
	uint8_t addr[16];
};

struct lm_http {
	struct MHD_Daemon *d;
	int port;
	lm_http_check_fn live, ready, started; /* started NULL: no /startedz */
	void *arg;                             /* borrowed */
	lm_metrics *metrics;                   /* borrowed */
	unsigned max_conns, max_per_peer;
	int64_t header_ms;  /* idle_timeout_s; the header deadline is a tick later */
	int64_t tick_ms;    /* the reaper's pause between sweeps */
	pthread_mutex_t mu; /* guards slots, waiting and stopping */
	pthread_cond_t cv;  /* CLOCK_MONOTONIC; signalled at stop */
	pthread_t reaper;
	bool stopping;
	struct slot *slots; /* max_conns entries */
	unsigned waiting;   /* slots waiting for request headers */
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

/* Shuts down every connection that is waiting for request headers past the
 * header deadline at now_ms (header_ms and a tick after since_ms), and
 * counts it. Called with mu held. */
static void
reap(lm_http *h, int64_t now_ms)
{
	for (unsigned i = 0; i < h->max_conns && h->waiting > 0; i++) {
		struct slot *s = &h->slots[i];
		if (!s->used || s->headers_in || s->reaped ||
		    now_ms - s->since_ms < h->header_ms + h->tick_ms)
			continue;
		(void) shutdown(s->fd, SHUT_RDWR);
		s->reaped = true;
		h->waiting--;
		lm_counter_add(h->refused[REF_HEADER_TIMEOUT], 1);
	}
}

/* The reaper thread: sweeps the table every tick_ms until stopping. */
static void *
reaper_main(void *arg)
{
	lm_http *h = arg;
	struct timespec ts;

	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		reap(h, lm_clock_ms());
		ts = lm_clock_deadline(h->tick_ms);
		(void) pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Accept policy: refuses when the server or the peer is at its limit. Before
 * it refuses, it shuts down the connections past their header deadline, so
 * that the next connection finds their slots free without waiting for the
 * reaper's tick. */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *sa, socklen_t len)
{
	lm_http *h = cls;
	uint8_t a[16];
	unsigned open = 0, same = 0;
	int ref = -1;

	(void) len;
	bool inet = addr16(sa, a);

	pthread_mutex_lock(&h->mu);
	for (unsigned i = 0; i < h->max_conns; i++) {
		if (!h->slots[i].used)
			continue;
		open++;
		if (inet && memcmp(h->slots[i].addr, a, 16) == 0)
			same++;
	}
	if (open >= h->max_conns)
		ref = REF_FULL;
	else if (same >= h->max_per_peer)
		ref = REF_PER_PEER;
	if (ref >= 0)
		reap(h, lm_clock_ms());
	pthread_mutex_unlock(&h->mu);
	if (ref < 0)
		return MHD_YES;
	lm_counter_add(h->refused[ref], 1);
	return MHD_NO;
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
			pthread_mutex_lock(&h->mu);
			if (!s->headers_in && !s->reaped)
				h->waiting--;
			s->used = false;
			pthread_mutex_unlock(&h->mu);
			lm_gauge_add(h->open_g, -1);
		}
		*socket_context = NULL;
		return;
	}
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const union MHD_ConnectionInfo *fi =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	pthread_mutex_lock(&h->mu);
	for (unsigned i = 0; i < h->max_conns && fi != NULL; i++) {
		if (h->slots[i].used)
			continue;
		s = &h->slots[i];
		s->used = true;
		s->headers_in = false;
		s->reaped = false;
		s->fd = fi->connect_fd;
		s->since_ms = lm_clock_ms();
		addr16(ci != NULL ? ci->client_addr : NULL, s->addr);
		h->waiting++;
		break;
	}
	pthread_mutex_unlock(&h->mu);
	/* No free slot cannot happen (the accept policy refuses at
	 * max_conns), nor can a connection without a socket; should either,
	 * the connection is served uncounted and without the header deadline. */
	if (s != NULL)
		lm_gauge_add(h->open_g, 1);
	*socket_context = s;
}

/* The slot of connection c; NULL for a connection served uncounted. */
static struct slot *
slot_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *si =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return si != NULL ? si->socket_context : NULL;
}

/* Marks the headers of the current request on c complete, which stops its
 * header deadline. */
static void
headers_complete(lm_http *h, struct MHD_Connection *c)
{
	struct slot *s = slot_of(c);

	if (s == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	if (s->used && !s->headers_in && !s->reaped) {
		s->headers_in = true;
		h->waiting--;
	}
	pthread_mutex_unlock(&h->mu);
}

/* After a response was sent on a connection that stays open, the header
 * deadline of the next request starts. */
static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	lm_http *h = cls;
	struct slot *s = slot_of(c);

	(void) req_cls;
	if (s == NULL || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		return;
	pthread_mutex_lock(&h->mu);
	if (s->used && s->headers_in && !s->reaped) {
		s->headers_in = false;
		s->since_ms = lm_clock_ms();
		h->waiting++;
	}
	pthread_mutex_unlock(&h->mu);
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
	for (size_t i = 0, n = strlen(reason); i < n;) {
		size_t ctl = lm_text_control(reason + i, n - i);
		if (ctl == 0) {
			i++;
			continue;
		}
		memset(reason + i, ' ', ctl); /* C1: two spaces for its two bytes */
		i += ctl;
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

/* The path of a request target: the target itself, or of the absolute
 * form ("http://host:port/healthz"), which a server must accept (RFC 9112,
 * 3.2.2) and MHD passes on whole. */
static const char *
origin_path(const char *url)
{
	const char *p;

	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return url;
	p += strcspn(p, "/");
	return *p != '\0' ? p : "/";
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
	if (*req_cls == NULL)
		headers_complete(h, c);
	if (*req_cls == NULL && !has_body(c)) {
		*req_cls = &headers_in;
		return MHD_YES;
	}
	*upload_data_size = 0; /* a body is discarded, never read */
	url = origin_path(url);
	for (int i = 0; i < R_COUNT; i++)
		if (strcmp(url, route_paths[i]) == 0)
			route = i;
	if (route == R_STARTEDZ && h->started == NULL)
		route = -1;
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
	return serve_check(h, c,
	    route == R_HEALTHZ  ? h->live
	    : route == R_READYZ ? h->ready
	                        : h->started);
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

int
lm_http_addr_check(const char *addr)
{
	char host[LM_HTTP_ADDR_MAX + 1], port[8];
	return split_addr(addr, host, sizeof(host), port, sizeof(port));
}

/* Resolutions of listen_on that tests make fail (lm_http_fail_resolves). */
static atomic_uint fail_resolves;

void
lm_http_fail_resolves(unsigned n)
{
	atomic_store(&fail_resolves, n);
}

/* A listening TCP socket on addr; *fd and *port on LM_OK. Errors are
 * logged: LM_EINVAL (address does not parse, or the system refuses it:
 * socket, bind or listen failed with EINVAL), LM_ENOENT (its host does
 * not resolve), LM_EBUSY (in use, or the host cannot be resolved for now:
 * EAI_AGAIN), others from errno. */
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
	gai = lm_fault_take(&fail_resolves) ? EAI_AGAIN
	                                    : getaddrinfo(host, pstr, &hints, &ai);
	if (gai != 0) {
		/* A temporary failure (the name server did not answer) or a
		 * system error is no fault of the address. */
		bool addr_bad =
		    gai != EAI_AGAIN && gai != EAI_SYSTEM && gai != EAI_MEMORY;
		rc = gai == EAI_AGAIN ? LM_EBUSY
		     : gai == EAI_SYSTEM
		         ? (errno != 0 && errno != ENOENT ? lm_err_from_errno(errno)
		                                          : LM_EIO)
		     : gai == EAI_MEMORY ? LM_ENOMEM
		                         : LM_ENOENT;
		lm_error("http.addr", "%s HTTP address %s: %s",
		    addr_bad ? "invalid" : "cannot resolve the", addr,
		    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		return rc;
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
		    "ops HTTP connections closed by the server: at accept while "
		    "max_connections were open (reason=\"full\") or its address had "
		    "max_connections_per_peer (reason=\"per_peer\"), or when request "
		    "headers that had begun were not complete idle_timeout_s and one "
		    "to two reaper ticks (at most 2 s) after the accept or the "
		    "previous response (reason=\"header_timeout\"; a connection that "
		    "sent nothing is closed by the idle timeout, uncounted)",
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
	unsigned idle_s;
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
	if ((rc = lm_cond_init_monotonic(&h->cv)) != LM_OK) {
		free(h);
		return rc;
	}
	if ((rc = pthread_mutex_init(&h->mu, NULL)) != 0) {
		pthread_cond_destroy(&h->cv);
		free(h);
		return lm_err_from_errno(rc);
	}
	idle_s = o->idle_timeout_s ? o->idle_timeout_s : LM_HTTP_IDLE_TIMEOUT_DEFAULT_S;
	h->header_ms = (int64_t) idle_s * 1000;
	h->tick_ms = h->header_ms / 4;
	if (h->tick_ms > REAP_TICK_MAX_MS)
		h->tick_ms = REAP_TICK_MAX_MS;
	if (h->tick_ms < REAP_TICK_MIN_MS)
		h->tick_ms = REAP_TICK_MIN_MS;
	h->live = o->live;
	h->ready = o->ready;
	h->started = o->started;
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
	/* MHD owns fd from here, also when the start fails. The logger comes
	 * first, so that MHD reports through it while it parses the options.
	 * epoll has no FD_SETSIZE bound, so MHD's limit (by default
	 * FD_SETSIZE - 4) can follow max_conns. */
	h->d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0,
	    on_accept, h, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_log, h,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, h->max_conns + 1,
	    MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t) LM_HTTP_CONN_MEMORY, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
	if (h->d == NULL) {
		lm_error("http.listen",
		    "cannot serve HTTP on %s: the server did not start", o->addr);
		rc = LM_EIO;
		goto fail;
	}
	if ((rc = pthread_create(&h->reaper, NULL, reaper_main, h)) != 0) {
		lm_error("http.listen", "cannot serve HTTP on %s: no reaper thread: %s",
		    o->addr, strerror(rc));
		MHD_stop_daemon(h->d);
		rc = lm_err_from_errno(rc);
		goto fail;
	}
	lm_info("http.start",
	    "serving /healthz /readyz%s /metrics on %s (port %d; at most %u "
	    "connections, %u per address, closed after %u s idle, or without "
	    "complete headers one to two reaper ticks, at most 2 s, later)",
	    h->started != NULL ? " /startedz" : "", o->addr, h->port, h->max_conns,
	    h->max_per_peer, idle_s);
	*out = h;
	return LM_OK;

fail:
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
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
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->reaper, NULL);
	MHD_stop_daemon(h->d); /* joins the daemon thread, closes every socket */
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h->slots);
	free(h);
}
