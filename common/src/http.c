/*
 * http.c - health and metrics endpoints on nng's HTTP server; see http.h.
 *
 * Lifetime: nng may run a handler callback on one of its threads while
 * lm_http_stop() runs on another, and it frees handlers asynchronously after
 * the server is released. The state the handlers read (struct http_ctx) is
 * therefore reference-counted: one reference for the lm_http owner and one
 * per handler, dropped by the handler's destructor. Handlers that use the
 * caller's registry or check functions count themselves in ctx->active;
 * lm_http_stop() marks the context stopped and waits for active to reach
 * zero, so nothing borrowed is touched once it returns.
 *
 * lm_http_stop() first takes its handlers back from the server (so no new
 * request is dispatched to them) and frees them itself after releasing the
 * server, rather than leaving them to the server's asynchronous teardown:
 * with nng 1.5.2 the latter loses a handler now and then when a request is
 * in flight during the stop.
 *
 * nng 1.5.2 shares one server per host:port within a process
 * (nng_http_server_hold returns an existing one). A second lm_http on the
 * same address therefore fails when its handlers conflict with the first's,
 * and lm_http_start() serializes hold..start so that two servers started at
 * once on port 0 never share an unstarted server.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/http.h"
#include "lunamatch/log.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define PROM_TEXT  "text/plain; version=0.0.4; charset=utf-8"

enum route { R_HEALTHZ, R_READYZ, R_METRICS, R_COUNT };

static const char *const route_paths[R_COUNT] = {"/healthz", "/readyz", "/metrics"};

struct http_ctx {
	pthread_mutex_t mu;
	pthread_cond_t idle; /* signalled when active drops to 0 after stop */
	int active;          /* handlers using the borrowed state below */
	bool stopped;
	atomic_int refs;
	lm_metrics *metrics; /* borrowed */
	lm_http_check_fn live, ready;
	void *arg; /* borrowed */
};

struct lm_http {
	nng_http_server *srv;
	nng_http_handler *hd[R_COUNT]; /* registered with srv */
	struct http_ctx *ctx;
	int port;
};

static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;

static void
ctx_unref(void *arg)
{
	struct http_ctx *c = arg;

	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Claims the borrowed state for one request; false once stopping. */
static bool
ctx_enter(struct http_ctx *c)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	ok = !c->stopped;
	if (ok)
		c->active++;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void
ctx_leave(struct http_ctx *c)
{
	pthread_mutex_lock(&c->mu);
	if (--c->active == 0 && c->stopped)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->mu);
}

static int
reply(nng_http_res *res, uint16_t status, const char *ctype, const void *body, size_t len)
{
	int rv;

	if ((rv = nng_http_res_set_status(res, status)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", ctype)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Cache-Control", "no-store")) != 0)
		return rv;
	/* nng cannot copy 0 bytes (its allocator returns NULL for them). */
	if (len == 0)
		return nng_http_res_set_header(res, "Content-Length", "0");
	return nng_http_res_copy_data(res, body, len);
}

static int
serve_check(struct http_ctx *c, nng_http_res *res, lm_http_check_fn fn)
{
	char reason[LM_HTTP_REASON_MAX];
	char body[LM_HTTP_REASON_MAX + 1];
	int ok;

	if (fn == NULL)
		return reply(res, NNG_HTTP_STATUS_OK, TEXT_PLAIN, "ok\n", 3);
	reason[0] = '\0';
	ok = fn(c->arg, reason, sizeof(reason));
	if (ok == LM_OK)
		return reply(res, NNG_HTTP_STATUS_OK, TEXT_PLAIN, "ok\n", 3);
	/* The reason goes out as one line of text, whatever the check wrote. */
	reason[sizeof(reason) - 1] = '\0';
	for (char *p = reason; *p != '\0'; p++) {
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	snprintf(
	    body, sizeof(body), "%s\n", reason[0] != '\0' ? reason : lm_strerror(ok));
	return reply(
	    res, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE, TEXT_PLAIN, body, strlen(body));
}

static int
serve_metrics(struct http_ctx *c, nng_http_res *res)
{
	char msg[128];
	char *text;
	size_t len;
	int rv, err;

	if (c->metrics == NULL)
		return reply(res, NNG_HTTP_STATUS_OK, PROM_TEXT, "", 0);
	if ((err = lm_metrics_render(c->metrics, &text, &len)) != LM_OK) {
		snprintf(msg, sizeof(msg), "metrics unavailable: %s\n", lm_strerror(err));
		return reply(res, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR, TEXT_PLAIN, msg,
		    strlen(msg));
	}
	rv = reply(res, NNG_HTTP_STATUS_OK, PROM_TEXT, text, len);
	free(text);
	return rv;
}

/* True if the request announces a body, which handlers never read. */
static bool
has_body(nng_http_req *req)
{
	const char *cl = nng_http_req_get_header(req, "Content-Length");

	if (nng_http_req_get_header(req, "Transfer-Encoding") != NULL)
		return true;
	return cl != NULL && strcmp(cl, "0") != 0;
}

/* Runs on an nng thread; quick and non-blocking except for the short ctx and
 * registry mutexes. */
static void
serve(nng_aio *aio, enum route route)
{
	nng_http_req *req = nng_aio_get_input(aio, 0);
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	struct http_ctx *c = nng_http_handler_get_data(hd);
	const char *method = nng_http_req_get_method(req);
	nng_http_res *res;
	int rv;

	if ((rv = nng_http_res_alloc(&res)) != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		static const char msg[] = "method not allowed\n";
		rv = reply(res, NNG_HTTP_STATUS_METHOD_NOT_ALLOWED, TEXT_PLAIN, msg,
		    sizeof(msg) - 1);
		if (rv == 0)
			rv = nng_http_res_set_header(res, "Allow", "GET, HEAD");
	} else if (!ctx_enter(c)) {
		static const char msg[] = "stopping\n";
		rv = reply(res, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE, TEXT_PLAIN, msg,
		    sizeof(msg) - 1);
	} else {
		if (route == R_METRICS)
			rv = serve_metrics(c, res);
		else
			rv = serve_check(c, res, route == R_HEALTHZ ? c->live : c->ready);
		ctx_leave(c);
	}
	/* An unread body would be parsed as the next request: close instead. */
	if (rv == 0 && has_body(req))
		rv = nng_http_res_set_header(res, "Connection", "close");
	if (rv != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
cb_healthz(nng_aio *aio)
{
	serve(aio, R_HEALTHZ);
}

static void
cb_readyz(nng_aio *aio)
{
	serve(aio, R_READYZ);
}

static void
cb_metrics(nng_aio *aio)
{
	serve(aio, R_METRICS);
}

static void (*const route_cbs[R_COUNT])(nng_aio *) = {cb_healthz, cb_readyz, cb_metrics};

/* Turns "host:port" or "[v6]:port" into "http://host:port". Host names are
 * letters, digits, '.' and '-'; the port is 0..65535. */
static int
addr_to_url(const char *addr, char *url, size_t len)
{
	const char *host, *port;
	size_t hlen, alen;
	bool v6;
	unsigned long pnum = 0;
	int n;

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
		host = addr + 1;
		hlen = (size_t) (end - host);
		port = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (colon == NULL)
			return LM_EINVAL;
		host = addr;
		hlen = (size_t) (colon - addr);
		port = colon + 1;
	}
	if (hlen == 0)
		return LM_EINVAL;
	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char) host[i];
		bool ok = v6 ? (isxdigit(c) || c == ':' || c == '.')
		             : (isalnum(c) || c == '.' || c == '-');
		if (!ok)
			return LM_EINVAL;
	}
	if (port[0] == '\0' || strlen(port) > 5)
		return LM_EINVAL;
	for (const char *p = port; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return LM_EINVAL;
		pnum = pnum * 10 + (unsigned long) (*p - '0');
	}
	if (pnum > 65535)
		return LM_EINVAL;
	n = snprintf(url, len, "http://%s%.*s%s:%lu", v6 ? "[" : "", (int) hlen, host,
	    v6 ? "]" : "", pnum);
	if (n < 0 || (size_t) n >= len)
		return LM_EINVAL;
	return LM_OK;
}

static int
bound_port(nng_http_server *srv, int *port)
{
	nng_sockaddr sa;
	int rv;

	if ((rv = nng_http_server_get_addr(srv, &sa)) != 0)
		return rv;
	switch (sa.s_family) {
	case NNG_AF_INET:
		*port = ntohs(sa.s_in.sa_port);
		return 0;
	case NNG_AF_INET6:
		*port = ntohs(sa.s_in6.sa_port);
		return 0;
	default:
		return NNG_EADDRINVAL;
	}
}

int
lm_http_start(const lm_http_opts *o, lm_http **out)
{
	char url[LM_HTTP_ADDR_MAX + 16];
	nng_http_handler *hd[R_COUNT] = {NULL};
	bool added[R_COUNT] = {false};
	struct http_ctx *c = NULL;
	nng_url *u = NULL;
	lm_http *h = NULL;
	const char *what = "";
	bool started = false;
	int rv, nrv = 0;

	if (out != NULL)
		*out = NULL;
	if (o == NULL || out == NULL)
		return LM_EINVAL;
	if (addr_to_url(o->addr, url, sizeof(url)) != LM_OK) {
		lm_error(
		    "http.addr", "invalid HTTP address: expected host:port or [v6]:port");
		return LM_EINVAL;
	}
	if ((nrv = nng_url_parse(&u, url)) != 0) {
		lm_error("http.addr", "invalid HTTP address %s: %s", o->addr,
		    nng_strerror(nrv));
		return nrv == NNG_ENOMEM ? LM_ENOMEM : LM_EINVAL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL || (c = calloc(1, sizeof(*c))) == NULL) {
		free(h);
		nng_url_free(u);
		return LM_ENOMEM;
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		free(h);
		nng_url_free(u);
		return LM_ENOMEM;
	}
	if (pthread_cond_init(&c->idle, NULL) != 0) {
		pthread_mutex_destroy(&c->mu);
		free(c);
		free(h);
		nng_url_free(u);
		return LM_ENOMEM;
	}
	atomic_init(&c->refs, 1);
	c->metrics = o->metrics;
	c->live = o->live;
	c->ready = o->ready;
	c->arg = o->arg;
	h->ctx = c;

	pthread_mutex_lock(&start_mu);
	if ((nrv = nng_http_server_hold(&h->srv, u)) != 0) {
		h->srv = NULL;
		rv = nrv == NNG_ENOMEM ? LM_ENOMEM : LM_EINVAL;
		lm_error("http.listen", "cannot serve HTTP on %s: %s", o->addr,
		    nng_strerror(nrv));
		goto fail;
	}
	what = "cannot set up handlers";
	for (int i = 0; i < R_COUNT; i++) {
		if ((nrv = nng_http_handler_alloc(
		         &hd[i], route_paths[i], route_cbs[i])) != 0) {
			hd[i] = NULL;
			goto nng_fail;
		}
		/* All methods reach us (405 is ours); bodies are never read. */
		if ((nrv = nng_http_handler_set_method(hd[i], NULL)) != 0 ||
		    (nrv = nng_http_handler_collect_body(hd[i], false, 0)) != 0 ||
		    (nrv = nng_http_handler_set_data(hd[i], c, ctx_unref)) != 0)
			goto nng_fail;
		atomic_fetch_add(&c->refs, 1); /* dropped by the handler's destructor */
		if ((nrv = nng_http_server_add_handler(h->srv, hd[i])) != 0) {
			if (nrv == NNG_EADDRINUSE)
				what = "address already served in this process";
			goto nng_fail;
		}
		added[i] = true;
	}
	what = "cannot listen";
	if ((nrv = nng_http_server_start(h->srv)) != 0)
		goto nng_fail;
	started = true;
	what = "cannot read the bound port";
	if ((nrv = bound_port(h->srv, &h->port)) != 0)
		goto nng_fail;
	pthread_mutex_unlock(&start_mu);
	memcpy(h->hd, hd, sizeof(hd));
	nng_url_free(u);
	lm_info("http.start", "serving /healthz /readyz /metrics on %s (port %d)",
	    o->addr, h->port);
	*out = h;
	return LM_OK;

nng_fail:
	rv = lm_err_from_nng(nrv);
	lm_error("http.listen", "cannot serve HTTP on %s: %s: %s", o->addr, what,
	    nng_strerror(nrv));
fail:
	if (started)
		nng_http_server_stop(h->srv);
	for (int i = 0; i < R_COUNT; i++) {
		if (added[i])
			nng_http_server_del_handler(h->srv, hd[i]);
		if (hd[i] != NULL)
			nng_http_handler_free(hd[i]);
	}
	if (h->srv != NULL)
		nng_http_server_release(h->srv);
	pthread_mutex_unlock(&start_mu);
	nng_url_free(u);
	ctx_unref(c);
	free(h);
	return rv;
}

int
lm_http_port(const lm_http *h)
{
	return h != NULL ? h->port : 0;
}

void
lm_http_stop(lm_http *h)
{
	struct http_ctx *c;

	if (h == NULL)
		return;
	c = h->ctx;
	for (int i = 0; i < R_COUNT; i++)
		nng_http_server_del_handler(h->srv, h->hd[i]);
	nng_http_server_stop(h->srv);
	pthread_mutex_lock(&c->mu);
	c->stopped = true;
	while (c->active > 0)
		pthread_cond_wait(&c->idle, &c->mu);
	pthread_mutex_unlock(&c->mu);
	nng_http_server_release(h->srv);
	for (int i = 0; i < R_COUNT; i++)
		nng_http_handler_free(h->hd[i]);
	ctx_unref(c);
	free(h);
}
