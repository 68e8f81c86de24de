/*
 * test_http.c - the health and metrics HTTP server, driven by a small
 * HTTP/1.1 client over real TCP sockets on the loopback interface.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/http.h"
#include "lunamatch/log.h"
#include "lunamatch/metrics.h"

#define RESP_MAX       (1024 * 1024) /* largest response the client reads */
#define IO_TIMEOUT_S   5             /* per send/recv */
#define REQ_DEADLINE_S 10            /* whole request */

struct resp {
	int status;
	char *raw;        /* whole response, NUL-terminated */
	size_t head_len;  /* up to and including the blank line */
	const char *body; /* into raw */
	size_t body_len;  /* bytes after the head */
};

static void
resp_free(struct resp *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
connect_to(int family, int port)
{
	struct timeval tv = {IO_TIMEOUT_S, 0};
	int fd = socket(family, SOCK_STREAM, 0);
	int rv;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (family == AF_INET6) {
		struct sockaddr_in6 sa = {0};
		sa.sin6_family = AF_INET6;
		sa.sin6_port = htons((uint16_t) port);
		sa.sin6_addr = in6addr_loopback;
		rv = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
	} else {
		struct sockaddr_in sa = {0};
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t) port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rv = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
	}
	if (rv != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t) w;
	}
	return 0;
}

/*
 * Sends one request (extra: more header lines, each ending in \r\n; body may
 * be NULL) and reads the response until the server closes the connection.
 * keepalive = false adds "Connection: close". Returns 0 with *r filled, or -1.
 */
static int
http_req(int family, int port, const char *method, const char *path, const char *extra,
    const char *body, bool keepalive, struct resp *r)
{
	char req[2048];
	size_t cap = RESP_MAX + 1, len = 0;
	double deadline = now_s() + REQ_DEADLINE_S;
	char *end;
	int fd, n;

	memset(r, 0, sizeof(*r));
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s\r\n%s",
	    method, path, extra != NULL ? extra : "",
	    keepalive ? "" : "Connection: close\r\n", body != NULL ? body : "");
	if (n < 0 || (size_t) n >= sizeof(req))
		return -1;
	if ((fd = connect_to(family, port)) < 0)
		return -1;
	if (send_all(fd, req, (size_t) n) != 0) {
		close(fd);
		return -1;
	}
	if ((r->raw = malloc(cap)) == NULL) {
		close(fd);
		return -1;
	}
	while (len < cap - 1 && now_s() < deadline) {
		ssize_t got = recv(fd, r->raw + len, cap - 1 - len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break; /* EOF, or timeout: parse what arrived */
		len += (size_t) got;
	}
	close(fd);
	r->raw[len] = '\0';
	if (sscanf(r->raw, "HTTP/1.1 %d ", &r->status) != 1 ||
	    (end = strstr(r->raw, "\r\n\r\n")) == NULL) {
		resp_free(r);
		return -1;
	}
	r->head_len = (size_t) (end + 4 - r->raw);
	r->body = end + 4;
	r->body_len = len - r->head_len;
	return 0;
}

static int
http_get(int port, const char *path, struct resp *r)
{
	return http_req(AF_INET, port, "GET", path, NULL, NULL, false, r);
}

/* Value of a response header (case-insensitive name), copied into out. */
static bool
header(const struct resp *r, const char *name, char *out, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = strstr(r->raw, "\r\n");

	while (p != NULL && (size_t) (p - r->raw) + 2 < r->head_len) {
		const char *line = p + 2;
		const char *eol = strstr(line, "\r\n");
		if (eol == NULL)
			break;
		if ((size_t) (eol - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int) (eol - v), v);
			return true;
		}
		p = eol;
	}
	return false;
}

/* Removes from text (in place) the line that starts with prefix. */
static void
drop_line(char *text, const char *prefix)
{
	for (char *p = text; p != NULL && *p;) {
		char *nl = strchr(p, '\n');
		if (strncmp(p, prefix, strlen(prefix)) == 0) {
			memmove(p, nl != NULL ? nl + 1 : p + strlen(p),
			    strlen(nl != NULL ? nl + 1 : p + strlen(p)) + 1);
			return;
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
}

/* Health state the checks read; flipped by the tests. */
struct health {
	atomic_int live_ok;
	atomic_int ready_ok;
	atomic_int calls;
	const char *reason;
};

static int
check_live(void *arg, char *reason, size_t len)
{
	struct health *hs = arg;
	atomic_fetch_add(&hs->calls, 1);
	if (atomic_load(&hs->live_ok))
		return LM_OK;
	snprintf(reason, len, "%s", hs->reason);
	return LM_EIO;
}

static int
check_ready(void *arg, char *reason, size_t len)
{
	struct health *hs = arg;
	atomic_fetch_add(&hs->calls, 1);
	if (atomic_load(&hs->ready_ok))
		return LM_OK;
	snprintf(reason, len, "%s", hs->reason);
	return LM_ECLOSED;
}

/* /startedz answers what the ready check does, where it is served. */
static lm_http *
start_with(const char *addr, lm_metrics *m, struct health *hs, bool started)
{
	lm_http_opts o = {.addr = addr,
	    .metrics = m,
	    .live = hs ? check_live : NULL,
	    .ready = hs ? check_ready : NULL,
	    .started = started ? check_ready : NULL,
	    .arg = hs};
	lm_http *h = NULL;
	assert_int_equal(lm_http_start(&o, &h), LM_OK);
	assert_non_null(h);
	assert_true(lm_http_port(h) > 0 && lm_http_port(h) < 65536);
	return h;
}

static lm_http *
start(const char *addr, lm_metrics *m, struct health *hs)
{
	return start_with(addr, m, hs, false);
}

static void
test_endpoints(void **state)
{
	(void) state;
	lm_metrics *m = NULL;
	struct resp r;
	char v[256];

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_counter *c = lm_metrics_counter(
	    m, "lunamatch_test_requests_total", "requests", "code=\"ok\"");
	lm_counter_add(c, 3);
	lm_http *h = start("127.0.0.1:0", m, NULL);
	int port = lm_http_port(h);

	assert_int_equal(http_get(port, "/healthz", &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 3);
	assert_string_equal(r.body, "ok\n");
	assert_true(header(&r, "Content-Type", v, sizeof(v)));
	assert_non_null(strstr(v, "text/plain"));
	resp_free(&r);

	assert_int_equal(http_get(port, "/readyz", &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);

	assert_int_equal(http_get(port, "/metrics", &r), 0);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "Content-Type", v, sizeof(v)));
	assert_non_null(strstr(v, "text/plain; version=0.0.4"));
	assert_true(header(&r, "Content-Length", v, sizeof(v)));
	assert_int_equal(strtoul(v, NULL, 10), r.body_len);
	assert_non_null(strstr(r.body, "# TYPE lunamatch_test_requests_total counter\n"));
	assert_non_null(
	    strstr(r.body, "\nlunamatch_test_requests_total{code=\"ok\"} 3\n"));
	resp_free(&r);

	/* Every scrape renders the current values; a query string is ignored. */
	lm_counter_add(c, 1);
	assert_int_equal(http_get(port, "/metrics?x=1", &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(
	    strstr(r.body, "\nlunamatch_test_requests_total{code=\"ok\"} 4\n"));
	resp_free(&r);

	/* The body matches lm_metrics_render() byte for byte, but for the
	 * server's own connection gauge (the scrape's connection was open). */
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(http_get(port, "/metrics", &r), 0);
	assert_int_equal(lm_metrics_render(m, &text, &len), LM_OK);
	drop_line(text, "lunamatch_http_connections ");
	drop_line((char *) r.body, "lunamatch_http_connections ");
	assert_string_equal(r.body, text);
	free(text);
	resp_free(&r);

	lm_http_stop(h);
	lm_metrics_free(m);
}

/* /startedz is served only where the service has a started check: 404
 * otherwise, its check's answer when it has one. */
static void
test_startedz(void **state)
{
	(void) state;
	struct health hs = {1, 0, 0, "catching up"};
	struct resp r;
	lm_http *h = start("127.0.0.1:0", NULL, &hs);

	assert_int_equal(http_get(lm_http_port(h), "/startedz", &r), 0);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	lm_http_stop(h);

	h = start_with("127.0.0.1:0", NULL, &hs, true);
	assert_int_equal(http_get(lm_http_port(h), "/startedz", &r), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "catching up\n");
	resp_free(&r);
	atomic_store(&hs.ready_ok, 1);
	assert_int_equal(http_get(lm_http_port(h), "/startedz", &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	lm_http_stop(h);
}

static void
test_checks(void **state)
{
	(void) state;
	struct health hs = {1, 0, 0, "store not open"};
	struct resp r;
	lm_http *h = start("127.0.0.1:0", NULL, &hs);
	int port = lm_http_port(h);

	assert_int_equal(http_get(port, "/healthz", &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);

	assert_int_equal(http_get(port, "/readyz", &r), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "store not open\n");
	resp_free(&r);
	/* The reason goes out as one line without control characters
	 * (C1 too: two spaces for its two bytes). */
	{
		struct health bad = {1, 0, 0, "store\nnot\x7fopen\xc2\x9b!"};
		lm_http *h2 = start("127.0.0.1:0", NULL, &bad);
		assert_int_equal(http_get(lm_http_port(h2), "/readyz", &r), 0);
		assert_int_equal(r.status, 503);
		assert_string_equal(r.body, "store not open  !\n");
		resp_free(&r);
		lm_http_stop(h2);
	}

	atomic_store(&hs.ready_ok, 1);
	assert_int_equal(http_get(port, "/readyz", &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);

	/* A multi-line reason is served as one line. */
	hs.reason = "consumer\nstalled\r";
	atomic_store(&hs.live_ok, 0);
	assert_int_equal(http_get(port, "/healthz", &r), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "consumer stalled \n");
	resp_free(&r);

	/* No reason: the error's message. */
	hs.reason = "";
	assert_int_equal(http_get(port, "/healthz", &r), 0);
	assert_int_equal(r.status, 503);
	char want[128];
	snprintf(want, sizeof(want), "%s\n", lm_strerror(LM_EIO));
	assert_string_equal(r.body, want);
	resp_free(&r);

	/* No registry: an empty, valid exposition. */
	assert_int_equal(http_get(port, "/metrics", &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	resp_free(&r);

	assert_true(atomic_load(&hs.calls) >= 5);
	lm_http_stop(h);
}

static void
test_not_found_and_methods(void **state)
{
	(void) state;
	struct resp r;
	char v[128];
	lm_http *h = start("127.0.0.1:0", NULL, NULL);
	int port = lm_http_port(h);

	static const char *const missing[] = {
	    "/", "/nope", "/healthzz", "/metrics/x", "/readyz/deeper"};
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		assert_int_equal(http_get(port, missing[i], &r), 0);
		assert_int_equal(r.status, 404);
		resp_free(&r);
	}

	assert_int_equal(
	    http_req(AF_INET, port, "POST", "/metrics", NULL, NULL, false, &r), 0);
	assert_int_equal(r.status, 405);
	assert_true(header(&r, "Allow", v, sizeof(v)));
	assert_string_equal(v, "GET, HEAD");
	resp_free(&r);

	assert_int_equal(
	    http_req(AF_INET, port, "DELETE", "/healthz", NULL, NULL, false, &r), 0);
	assert_int_equal(r.status, 405);
	resp_free(&r);

	/* A request body is never read: the server answers and closes, even when
	 * the client asked to keep the connection (otherwise this would wait for
	 * the read timeout and the body would be parsed as a request). */
	double t0 = now_s();
	assert_int_equal(http_req(AF_INET, port, "PUT", "/readyz",
	                     "Content-Length: 11\r\nContent-Type: text/plain\r\n",
	                     "hello world", true, &r),
	    0);
	assert_int_equal(r.status, 405);
	assert_true(header(&r, "Connection", v, sizeof(v)));
	assert_string_equal(v, "close");
	assert_null(strstr(r.body, "HTTP/1.1"));
	assert_true(now_s() - t0 < IO_TIMEOUT_S - 1);
	resp_free(&r);

	/* HEAD: the headers of GET, no body. */
	assert_int_equal(
	    http_req(AF_INET, port, "HEAD", "/healthz", NULL, NULL, false, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	assert_true(header(&r, "Content-Length", v, sizeof(v)));
	assert_string_equal(v, "3");
	resp_free(&r);

	lm_http_stop(h);
}

static void
test_keepalive(void **state)
{
	(void) state;
	lm_http *h = start("127.0.0.1:0", NULL, NULL);
	int fd = connect_to(AF_INET, lm_http_port(h));
	char buf[4096];
	size_t len = 0;
	double deadline = now_s() + REQ_DEADLINE_S;
	static const char reqs[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
	                           "GET /readyz HTTP/1.1\r\nHost: localhost\r\n"
	                           "Connection: close\r\n\r\n";

	assert_true(fd >= 0);
	assert_int_equal(send_all(fd, reqs, sizeof(reqs) - 1), 0);
	while (len < sizeof(buf) - 1 && now_s() < deadline) {
		ssize_t got = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (got <= 0)
			break;
		len += (size_t) got;
	}
	close(fd);
	buf[len] = '\0';
	const char *first = strstr(buf, "HTTP/1.1 200");
	assert_non_null(first);
	assert_non_null(strstr(first + 1, "HTTP/1.1 200"));
	lm_http_stop(h);
}

static void
test_bad_addresses(void **state)
{
	(void) state;
	lm_http *h = (lm_http *) &h;
	lm_http_opts o = {.addr = NULL};
	char longaddr[LM_HTTP_ADDR_MAX + 16];

	assert_int_equal(lm_http_start(NULL, &h), LM_EINVAL);
	assert_null(h);
	assert_int_equal(lm_http_start(&o, NULL), LM_EINVAL);
	h = (lm_http *) &h;
	assert_int_equal(lm_http_start(&o, &h), LM_EINVAL);
	assert_null(h);

	static const char *const bad[] = {"", "127.0.0.1", ":7701",
	    "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:123456", "127.0.0.1:80x",
	    "127.0.0.1:-1", "a b:80", "host/x:80", "::1:80", "[::1]", "[::1]80", "[]:80",
	    "[::g]:80", "http://127.0.0.1:80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.addr = bad[i];
		assert_int_equal(lm_http_start(&o, &h), LM_EINVAL);
		assert_null(h);
	}
	memset(longaddr, 'a', sizeof(longaddr));
	memcpy(longaddr + LM_HTTP_ADDR_MAX - 1, ":0", 3);
	o.addr = longaddr; /* LM_HTTP_ADDR_MAX + 1 bytes long */
	assert_int_equal(strlen(longaddr), LM_HTTP_ADDR_MAX + 1);
	assert_int_equal(lm_http_start(&o, &h), LM_EINVAL);

	/* Limits above their maximum. */
	o.addr = "127.0.0.1:0";
	o.max_connections = LM_HTTP_MAX_CONNECTIONS + 1;
	assert_int_equal(lm_http_start(&o, &h), LM_EINVAL);
	o.max_connections = 0;
	o.idle_timeout_s = LM_HTTP_IDLE_TIMEOUT_MAX_S + 1;
	assert_int_equal(lm_http_start(&o, &h), LM_EINVAL);
	assert_null(h);

	lm_http_stop(NULL);
	assert_int_equal(lm_http_port(NULL), 0);
}

/* A temporary failure to resolve the host (EAI_AGAIN: the DNS server did
 * not answer in time) is not a malformed address: the services exit 2,
 * configuration error, on LM_EINVAL and LM_ENOENT, which tells the operator to fix a
 * setting that is right and an orchestrator not to expect a retry to
 * help. */
static void
test_resolve_again(void **state)
{
	(void) state;
	lm_http_opts o = {.addr = "localhost:41799"};
	lm_http *h = (lm_http *) &h;

	lm_http_fail_resolves(1);
	assert_int_equal(lm_http_start(&o, &h), LM_EBUSY);
	assert_null(h);
}

/* A host that does not resolve is LM_ENOENT, and an address the system
 * refuses to bind (EINVAL: a link-local IPv6 address without its scope)
 * is LM_EINVAL: the services said "does not resolve" for both. */
static void
test_unresolved_and_refused(void **state)
{
	(void) state;
	lm_http_opts o = {.addr = "no-such-host.invalid:0"};
	lm_http *h = (lm_http *) &h;
	int rv = lm_http_start(&o, &h);

	/* LM_EBUSY where no name server answers (EAI_AGAIN). */
	if (rv != LM_ENOENT && rv != LM_EBUSY)
		fail_msg("unresolved host: %s", lm_strerror(rv));
	assert_null(h);
	o.addr = "[fe80::1]:0";
	h = (lm_http *) &h;
	rv = lm_http_start(&o, &h);
	assert_null(h);
	assert_int_not_equal(rv, LM_ENOENT);
	assert_int_not_equal(rv, LM_OK);
	/* Where IPv6 is available at all. */
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd >= 0) {
		close(fd);
		assert_int_equal(rv, LM_EINVAL);
	}
}

static void
test_port_in_use(void **state)
{
	(void) state;
	struct sockaddr_in sa = {0};
	socklen_t slen = sizeof(sa);
	char addr[64];
	lm_http_opts o = {.addr = addr};
	lm_http *h2 = (lm_http *) &h2;
	struct resp r;

	/* A port held by another listener (as another process would). */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &slen), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	assert_int_equal(lm_http_start(&o, &h2), LM_EBUSY);
	assert_null(h2);
	close(fd);

	/* A port this process already serves. */
	lm_http *h = start("127.0.0.1:0", NULL, NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_http_port(h));
	h2 = (lm_http *) &h2;
	assert_int_equal(lm_http_start(&o, &h2), LM_EBUSY);
	assert_null(h2);
	/* The first server is unharmed. */
	assert_int_equal(http_get(lm_http_port(h), "/healthz", &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	lm_http_stop(h);

	/* Once stopped, the port can be served again. */
	h = start(addr, NULL, NULL);
	assert_int_equal(http_get(lm_http_port(h), "/readyz", &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	lm_http_stop(h);
}

static void
test_two_ephemeral_servers(void **state)
{
	(void) state;
	struct health hs1 = {1, 1, 0, ""};
	struct health hs2 = {1, 0, 0, "second"};
	struct resp r;
	lm_http *a = start("127.0.0.1:0", NULL, &hs1);
	lm_http *b = start("127.0.0.1:0", NULL, &hs2);

	assert_int_not_equal(lm_http_port(a), lm_http_port(b));
	assert_int_equal(http_get(lm_http_port(a), "/readyz", &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(http_get(lm_http_port(b), "/readyz", &r), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "second\n");
	resp_free(&r);
	lm_http_stop(b);
	lm_http_stop(a);
}

static void
test_ipv6(void **state)
{
	(void) state;
	lm_http_opts o = {.addr = "[::1]:0"};
	lm_http *h = NULL;
	struct resp r;
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 sa = {0};

	sa.sin6_family = AF_INET6;
	sa.sin6_addr = in6addr_loopback;
	if (probe < 0 || bind(probe, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		if (probe >= 0)
			close(probe);
		skip(); /* no IPv6 loopback here */
	}
	close(probe);
	assert_int_equal(lm_http_start(&o, &h), LM_OK);
	assert_true(lm_http_port(h) > 0);
	assert_int_equal(
	    http_req(AF_INET6, lm_http_port(h), "GET", "/healthz", NULL, NULL, false, &r),
	    0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	lm_http_stop(h);
}

/* Scrapes until the server goes away (bounded in count). */
struct scraper {
	int port;
	atomic_int done;
	int ok;
};

static void *
scrape_main(void *arg)
{
	struct scraper *s = arg;
	for (int i = 0; i < 2000 && !atomic_load(&s->done); i++) {
		struct resp r;
		if (http_get(s->port, (i % 2) ? "/metrics" : "/healthz", &r) != 0)
			break;
		if (r.status == 200)
			s->ok++;
		resp_free(&r);
	}
	return NULL;
}

static void
test_stop_under_load(void **state)
{
	(void) state;
	lm_metrics *m = NULL;
	struct health hs = {1, 1, 0, ""};
	struct scraper sc[4];
	pthread_t th[4];

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	for (int i = 0; i < 50; i++) {
		char labels[32];
		snprintf(labels, sizeof(labels), "i=\"%d\"", i);
		lm_histogram_observe(
		    lm_metrics_histogram(m, "lunamatch_load_seconds", "l", labels,
		        lm_latency_bounds, lm_latency_nbounds),
		    0.01);
	}
	lm_http *h = start("127.0.0.1:0", m, &hs);

	/* A client that connects and sends half a request. */
	int idle = connect_to(AF_INET, lm_http_port(h));
	assert_true(idle >= 0);
	assert_int_equal(send_all(idle, "GET /hea", 8), 0);

	for (int i = 0; i < 4; i++) {
		sc[i].port = lm_http_port(h);
		atomic_init(&sc[i].done, 0);
		sc[i].ok = 0;
		assert_int_equal(pthread_create(&th[i], NULL, scrape_main, &sc[i]), 0);
	}
	/* Let the scrapers get going (up to 10 s on a loaded machine), then
	 * stop underneath them. */
	for (int i = 0; i < 2000 && atomic_load(&hs.calls) < 20; i++)
		usleep(5000);
	lm_http_stop(h);
	int calls = atomic_load(&hs.calls);
	/* Nothing borrowed is used after stop: free the registry right away. */
	lm_metrics_free(m);
	for (int i = 0; i < 4; i++) {
		atomic_store(&sc[i].done, 1);
		pthread_join(th[i], NULL);
	}
	assert_int_equal(atomic_load(&hs.calls), calls);
	assert_true(calls > 0);
	close(idle);
}

/* A TCP connection from source address src (any 127.x.y.z is local) to
 * 127.0.0.1:port; -1 on failure. */
static int
connect_from(const char *src, int port)
{
	struct timeval tv = {IO_TIMEOUT_S, 0};
	struct sockaddr_in sa = {0}, from = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	from.sin_family = AF_INET;
	inet_pton(AF_INET, src, &from.sin_addr);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &from, sizeof(from)) != 0 ||
	    connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends GET /healthz on an open connection (kept alive) and reads the whole
 * answer; true when it was "200 ... ok". False when the server closed the
 * connection instead (refused) or nothing came within IO_TIMEOUT_S. */
static bool
healthz_on(int fd)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
	char buf[2048];
	size_t len = 0;

	if (send_all(fd, req, sizeof(req) - 1) != 0)
		return false;
	while (len < sizeof(buf) - 1) {
		ssize_t got = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		len += (size_t) got;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\nok\n") != NULL)
			return strncmp(buf, "HTTP/1.1 200", 12) == 0;
	}
	return false;
}

/* Whether the server closes fd within IO_TIMEOUT_S (EOF or reset) without
 * sending anything. */
static bool
closed_by_server(int fd)
{
	char c;
	ssize_t got;

	while ((got = recv(fd, &c, 1, 0)) < 0 && errno == EINTR)
		;
	return got == 0 || (got < 0 && errno == ECONNRESET);
}

static double
metric(lm_metrics *m, const char *series)
{
	char *text = NULL;
	size_t len;
	double v = -1;

	assert_int_equal(lm_metrics_render(m, &text, &len), LM_OK);
	for (const char *p = text; p != NULL && *p;
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, series, strlen(series)) == 0 && p[strlen(series)] == ' ')
			v = strtod(p + strlen(series) + 1, NULL);
	free(text);
	return v;
}

static void
test_connection_limits(void **state)
{
	(void) state;
	lm_metrics *m = NULL;
	lm_http *h = NULL;
	int a[2], b[2], refused;

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_http_opts o = {.addr = "127.0.0.1:0",
	    .metrics = m,
	    .max_connections = 4,
	    .max_connections_per_peer = 2};
	assert_int_equal(lm_http_start(&o, &h), LM_OK);
	int port = lm_http_port(h);

	/* Two from one address are served (and so counted by the server). */
	for (int i = 0; i < 2; i++) {
		assert_true((a[i] = connect_from("127.0.0.1", port)) >= 0);
		assert_true(healthz_on(a[i]));
	}
	/* A third from that address is closed at once; another address is
	 * still served. */
	assert_true((refused = connect_from("127.0.0.1", port)) >= 0);
	assert_true(closed_by_server(refused));
	close(refused);
	assert_true(
	    metric(m, "lunamatch_http_connections_refused_total{reason=\"per_peer\"}") ==
	    1);
	for (int i = 0; i < 2; i++) {
		assert_true((b[i] = connect_from("127.0.0.2", port)) >= 0);
		assert_true(healthz_on(b[i]));
	}
	assert_true(metric(m, "lunamatch_http_connections") == 4);
	/* Full: a fifth address is refused too. */
	assert_true((refused = connect_from("127.0.0.3", port)) >= 0);
	assert_true(closed_by_server(refused));
	close(refused);
	assert_true(
	    metric(m, "lunamatch_http_connections_refused_total{reason=\"full\"}") == 1);
	/* The open ones keep being served; closing one makes room. */
	assert_true(healthz_on(a[0]));
	close(b[1]);
	int c = -1;
	/* Until the server has seen the close: 500 tries (over 10 s), since a
	 * sanitizer build on a loaded machine may take more than a second. */
	for (int tries = 0; tries < 500; tries++) {
		assert_true((c = connect_from("127.0.0.3", port)) >= 0);
		if (healthz_on(c))
			break;
		close(c);
		c = -1;
		usleep(20000);
	}
	assert_true(c >= 0);
	close(c);
	close(b[0]);
	close(a[0]);
	close(a[1]);
	lm_http_stop(h);
	lm_metrics_free(m);
}

static void
test_idle_timeout(void **state)
{
	(void) state;
	enum { SILENT = 32 };
	lm_metrics *m = NULL;
	lm_http *h = NULL;
	int silent[SILENT];
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_http_opts o = {.addr = "127.0.0.1:0", .metrics = m, .idle_timeout_s = 1};
	assert_int_equal(lm_http_start(&o, &h), LM_OK);
	int port = lm_http_port(h);

	/* Served, then silent: closed by the server, not by our timeout
	 * (IO_TIMEOUT_S, well above the idle timeout). */
	int kept = connect_from("127.0.0.1", port);
	assert_true(kept >= 0);
	assert_true(healthz_on(kept));
	assert_true(closed_by_server(kept));
	close(kept);
	/* Connections that send nothing are closed by the idle timeout, which
	 * is not counted, however many expire at once: the header deadline,
	 * which cannot tell them from a request begun, comes a tick later. */
	for (int i = 0; i < SILENT; i++)
		assert_true((silent[i] = connect_from("127.0.0.1", port)) >= 0);
	for (int i = 0; i < SILENT; i++) {
		assert_true(closed_by_server(silent[i]));
		close(silent[i]);
	}
	assert_true(metric(m, "lunamatch_http_connections_refused_total{reason=\"header_"
	                      "timeout\"}") == 0);
	/* Half a request that never completes: closed as well. */
	int slow = connect_from("127.0.0.1", port);
	assert_true(slow >= 0);
	assert_int_equal(send_all(slow, "GET /hea", 8), 0);
	assert_true(closed_by_server(slow));
	close(slow);
	/* Headers beyond LM_HTTP_CONN_MEMORY are refused, not buffered. */
	int big = connect_from("127.0.0.1", port);
	char line[1024];
	assert_true(big >= 0);
	assert_int_equal(send_all(big, "GET /healthz HTTP/1.1\r\n", 23), 0);
	memset(line, 'a', sizeof(line));
	memcpy(line, "X-Pad: ", 7);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	for (int i = 0; i < 2 * LM_HTTP_CONN_MEMORY / (int) sizeof(line); i++)
		if (send_all(big, line, sizeof(line)) != 0)
			break; /* the server may close before all is sent */
	(void) send_all(big, "\r\n", 2);
	char resp[64] = {0};
	ssize_t got = recv(big, resp, sizeof(resp) - 1, 0);
	assert_true(got <= 0 || strncmp(resp, "HTTP/1.1 4", 10) == 0);
	close(big);
	lm_http_stop(h);
	lm_metrics_free(m);
}

/* A request line and the start of a header that is never finished. */
static const char trickle_start[] = "GET /healthz HTTP/1.1\r\nX: ";

/* Sends one more byte of an unfinished header on fd; false when the server
 * has closed the connection (or answered, which it must not). */
static bool
trickle_byte(int fd)
{
	char c;
	ssize_t got;

	while ((got = recv(fd, &c, 1, MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	if (got >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		return false;
	return send(fd, "a", 1, MSG_NOSIGNAL) == 1;
}

/* Headers that trickle in, a byte every 0.3 s, keep MHD's idle timeout from
 * ever expiring; the header deadline (idle_timeout_s from the accept, or
 * from the previous response on a kept-alive connection) closes them all
 * the same, and a probe from elsewhere gets through while they hold every
 * slot. */
static void
test_header_deadline(void **state)
{
	(void) state;
	enum { N = 4 };
	lm_metrics *m = NULL;
	lm_http *h = NULL;
	int t[N];
	double closed_at[N];
	bool served = false;
	int left = N;

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_http_opts o = {.addr = "127.0.0.1:0",
	    .metrics = m,
	    .idle_timeout_s = 1,
	    .max_connections = N};
	assert_int_equal(lm_http_start(&o, &h), LM_OK);
	int port = lm_http_port(h);

	double t0 = now_s();
	/* Three start trickling at once; the fourth after a request answered
	 * on the same connection. */
	for (int i = 0; i < N; i++) {
		assert_true((t[i] = connect_from("127.0.0.1", port)) >= 0);
		if (i == N - 1)
			assert_true(healthz_on(t[i]));
		assert_int_equal(
		    send_all(t[i], trickle_start, sizeof(trickle_start) - 1), 0);
		closed_at[i] = -1;
	}
	/* Every 0.3 s a byte on each open one and a probe from another
	 * address, until all are closed and a probe was answered; 8 s at
	 * most. */
	while ((left > 0 || !served) && now_s() - t0 < 8) {
		usleep(300000);
		for (int i = 0; i < N; i++) {
			if (t[i] >= 0 && !trickle_byte(t[i])) {
				closed_at[i] = now_s() - t0;
				close(t[i]);
				t[i] = -1;
				left--;
			}
		}
		if (!served) {
			int p = connect_from("127.0.0.2", port);
			assert_true(p >= 0);
			served = healthz_on(p);
			close(p);
		}
	}
	for (int i = 0; i < N; i++) {
		if (t[i] >= 0)
			close(t[i]);
		print_message(
		    "trickling connection %d closed after %.2f s\n", i, closed_at[i]);
		assert_true(closed_at[i] > 0 && closed_at[i] < 3.0);
	}
	assert_true(served);
	/* The probes found the server full before the deadline freed it. */
	assert_true(
	    metric(m, "lunamatch_http_connections_refused_total{reason=\"full\"}") >= 1);
	assert_true(metric(m, "lunamatch_http_connections_refused_total{reason=\"header_"
	                      "timeout\"}") == N);
	lm_http_stop(h);
	lm_metrics_free(m);
}

/* More connections than libmicrohttpd's default limit (FD_SETSIZE - 4) are
 * open and served when max_connections allows them, and the next one is
 * refused at once and counted. */
static void
test_many_connections(void **state)
{
	(void) state;
	enum { N = 1100 };
	struct rlimit rl;
	lm_metrics *m = NULL;
	lm_http *h = NULL;
	int *fds;

	/* Client and server ends of each connection are in this process. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * N + 64) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * N + 64) {
			print_message("RLIMIT_NOFILE hard limit too low, skipped\n");
			skip();
		}
		rl.rlim_cur = 2 * N + 64;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	assert_non_null(fds = calloc(N, sizeof(*fds)));
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	lm_http_opts o = {.addr = "127.0.0.1:0", .metrics = m, .max_connections = N};
	assert_int_equal(lm_http_start(&o, &h), LM_OK);
	int port = lm_http_port(h);

	for (int i = 0; i < N; i++)
		assert_true((fds[i] = connect_from("127.0.0.1", port)) >= 0);
	/* Connections are accepted in order: the last one answered means every
	 * one is open on the server. */
	assert_true(healthz_on(fds[N - 1]));
	assert_true(metric(m, "lunamatch_http_connections") == N);
	int refused = connect_from("127.0.0.1", port);
	assert_true(refused >= 0);
	assert_true(closed_by_server(refused));
	close(refused);
	assert_true(
	    metric(m, "lunamatch_http_connections_refused_total{reason=\"full\"}") == 1);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	free(fds);
	lm_http_stop(h);
	lm_metrics_free(m);
}

/* libmicrohttpd reports through the service's logger from the start: it
 * does not complain that the logger was not its first option. */
static void
test_logger_first(void **state)
{
	(void) state;
	lm_log_level saved_level = lm_log_get_level();
	lmt_capture cap;

	lmt_stderr_begin(&cap);
	lm_log_set_level(LM_LOG_DEBUG);
	lm_http *h = start("127.0.0.1:0", NULL, NULL);
	lm_http_stop(h);
	lm_log_set_level(saved_level);
	char *log = lmt_stderr_end(&cap);
	assert_true(log[0] != '\0'); /* at least the start record */
	assert_null(strstr(log, "not the first option"));
	free(log);
}

/* Sends raw bytes on a new connection and returns the status of what the
 * server answers (-1 if it answers nothing parseable). */
static int
raw_status(int port, const char *req, size_t len)
{
	char resp[64] = {0};
	int fd = connect_to(AF_INET, port), status = -1;
	ssize_t got;

	if (fd < 0)
		return -1;
	(void) send_all(fd, req, len); /* the server may answer before all is sent */
	while ((got = recv(fd, resp, sizeof(resp) - 1, 0)) < 0 && errno == EINTR)
		;
	if (got <= 0 || sscanf(resp, "HTTP/1.1 %d ", &status) != 1)
		status = -1;
	close(fd);
	return status;
}

/* Every request answered with an error status is counted by reason,
 * including the ones libmicrohttpd answers itself. */
static void
test_bad_requests(void **state)
{
	(void) state;
	static const char bad_header[] =
	    "GET /healthz HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n";
	static const char bad_version[] = "GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n";
	static const char absolute[] =
	    "GET http://a:9090/healthz HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char absolute_tls[] =
	    "GET HTTPS://a/readyz HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char absolute_other[] =
	    "GET http://a/x/healthz HTTP/1.1\r\nHost: a\r\n\r\n";
	lm_metrics *m = NULL;
	lm_http *h = NULL;
	char *big = NULL;
	size_t big_len = 2 * LM_HTTP_CONN_MEMORY;
	struct resp r;

	assert_int_equal(lm_metrics_new(&m), LM_OK);
	h = start("127.0.0.1:0", m, NULL);
	int port = lm_http_port(h);

	assert_int_equal(raw_status(port, bad_header, sizeof(bad_header) - 1), 400);
	assert_int_equal(raw_status(port, bad_version, sizeof(bad_version) - 1), 505);
	assert_non_null(big = malloc(big_len + 64));
	int n = snprintf(big, 64, "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: ");
	memset(big + n, 'a', big_len - (size_t) n - 4);
	memcpy(big + big_len - 4, "\r\n\r\n", 4);
	int st = raw_status(port, big, big_len);
	assert_true(st == 431 || st == 413);
	free(big);
	assert_int_equal(http_get(port, "/nope", &r), 0);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	assert_int_equal(
	    http_req(AF_INET, port, "DELETE", "/healthz", NULL, NULL, false, &r), 0);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	/* A good request is not counted, in the origin or the absolute form
	 * (which a server must accept); another host's path is not ours. */
	assert_int_equal(http_get(port, "/healthz", &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(raw_status(port, absolute, sizeof(absolute) - 1), 200);
	assert_int_equal(raw_status(port, absolute_tls, sizeof(absolute_tls) - 1), 200);
	assert_int_equal(
	    raw_status(port, absolute_other, sizeof(absolute_other) - 1), 404);

	assert_true(
	    metric(m, "lunamatch_http_bad_requests_total{reason=\"malformed\"}") == 3);
	assert_true(
	    metric(m, "lunamatch_http_bad_requests_total{reason=\"not_found\"}") == 2);
	assert_true(
	    metric(m, "lunamatch_http_bad_requests_total{reason=\"method\"}") == 1);
	lm_http_stop(h);
	lm_metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_endpoints),
	    cmocka_unit_test(test_checks),
	    cmocka_unit_test(test_startedz),
	    cmocka_unit_test(test_not_found_and_methods),
	    cmocka_unit_test(test_keepalive),
	    cmocka_unit_test(test_bad_addresses),
	    cmocka_unit_test(test_resolve_again),
	    cmocka_unit_test(test_unresolved_and_refused),
	    cmocka_unit_test(test_port_in_use),
	    cmocka_unit_test(test_two_ephemeral_servers),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_stop_under_load),
	    cmocka_unit_test(test_connection_limits),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_header_deadline),
	    cmocka_unit_test(test_many_connections),
	    cmocka_unit_test(test_logger_first),
	};
	/* LMT_TEST_FILTER=test_resolve* runs some tests (a cmocka glob). */
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
