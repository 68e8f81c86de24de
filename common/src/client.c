/*
 * client.c - MatchService client over nng REQ/REP; see client.h.
 *
 * One REQ socket per endpoint, each with its own dialer. A call: encode the
 * payload, wrap it in an RpcRequest with a fresh request_id, pick an
 * endpoint (round-robin, connected ones first), open an nng context on its
 * socket, send (which completes only once a connection exists: a send
 * timeout means "unavailable"), receive with the rest of the time, then
 * check and decode the RpcResponse.
 *
 * With several endpoints a call that finds its endpoint down is tried on
 * the next one within the same deadline: no connection in time (each
 * attempt waits at most ATTEMPT_CONNECT_MS for one unless the endpoint is
 * connected, or its connection goes before the request was sent), the
 * connection lost while waiting for the answer (nng ends the call), or an
 * UNAVAILABLE answer (a server that is loading or draining). The last two
 * repeat a request the server may have carried out, so they apply only to
 * the methods that METHODS lists as read-only; a call of any other method
 * is sent once, and moves on only when no connection took it. An endpoint
 * whose connection the call lost is not tried again by the call: nng drops
 * a message over a size limit together with its connection.
 *
 * An UNAVAILABLE answer also has the connection it came on closed, so that
 * nng dials that endpoint afresh: a replica that is draining keeps the
 * connections it has until it exits, and an address in front of several
 * replicas (a Kubernetes Service) sends the new connection to a ready one.
 * The close spares the other calls in flight on that connection for a
 * grace at most (client.h states the rule; endpoint.closing, flight_start
 * and flight_end keep it).
 * With a single endpoint, a call answered UNAVAILABLE or whose connection
 * was lost is sent again on the new connection (a read-only method only),
 * at most SINGLE_REDIALS times (after a lost connection: once) and only if
 * it comes up within REDIAL_CONNECT_MS.
 */
#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "lunamatch/client.h"
#include "lunamatch/client_methods.h"
#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/random.h"
#include "lunamatch/rpc.h"

/* The client's default request limit is the servers' (a public header of
 * its own, without nng). */
static_assert(LM_CLIENT_DEFAULT_MAX_REQUEST == LM_RPC_DEFAULT_MAX_REQUEST,
    "the client's default request limit is the server's");

static_assert(LM_CLIENT_MAX_REQUEST == LM_RPC_MAX_REQUEST_BYTES,
    "a client sends what the largest server limit admits");

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000
/* With several endpoints: longest wait for a connection to an endpoint that
 * is not connected, before the next one is tried. After a round in which
 * every endpoint was tried, the next starts after a pause that doubles from
 * ROUND_PAUSE_MIN_MS to ROUND_PAUSE_MAX_MS (lm_backoff_next), so that
 * replicas that are all loading or draining get a few calls per deadline,
 * not one every few milliseconds; a pause that would reach the deadline
 * ends the call with its last result. */
#define ATTEMPT_CONNECT_MS 250
#define ROUND_PAUSE_MIN_MS 50
#define ROUND_PAUSE_MAX_MS 1000
/* With a single endpoint: repeats of a call on a fresh connection, the
 * longest wait for that connection, and the pause before each repeat (none
 * when the deadline leaves no room for it). */
#define SINGLE_REDIALS    2
#define REDIAL_CONNECT_MS 1000
#define REDIAL_PAUSE_MS   50
/* The longest a connection marked after an UNAVAILABLE answer is kept for
 * the calls in flight on it (see endpoint.closing). The repeat of the call
 * answered UNAVAILABLE waits REDIAL_CONNECT_MS for the fresh connection,
 * from REDIAL_PAUSE_MS after the mark, and nng dials that connection
 * RECONNECT_MIN_MS after the close: the close comes early enough to leave
 * the rest of the wait (350 ms) for the connection itself. */
#define CLOSING_GRACE_MS 500
static_assert(REDIAL_PAUSE_MS + CLOSING_GRACE_MS + RECONNECT_MIN_MS < REDIAL_CONNECT_MS,
    "a repeat after UNAVAILABLE finds the fresh connection");

#define ST_OK          LUNAMATCH__V1__STATUS_CODE__OK
#define ST_UNKNOWN     LUNAMATCH__V1__STATUS_CODE__UNKNOWN
#define ST_INVALID     LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT
#define ST_DEADLINE    LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED
#define ST_INTERNAL    LUNAMATCH__V1__STATUS_CODE__INTERNAL
#define ST_UNAVAILABLE LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE
#define ST_LAST        LUNAMATCH__V1__STATUS_CODE__UNAUTHENTICATED /* highest code */

#define LIVE_PIPES_MAX 8

/*
 * Every MatchService method, and whether a call of it may be sent again (to
 * another endpoint, or on a fresh connection) after an UNAVAILABLE answer
 * or a lost connection: only a read-only one may, as the first request may
 * have been carried out. A method added to match.proto gets a row here (a
 * unit test checks the table against the service descriptor); a name not
 * listed, which lm_client_call accepts, is sent once. The Python client
 * keeps the same list (IDEMPOTENT).
 */
static const struct {
	const char *name;
	bool read_only;
} METHODS[] = {
    {"MatchJobs", true},
    {"MatchCandidates", true},
    {"ExplainMatch", true},
    {"GetPosting", true},
    {"GetProfile", true},
    {"Check", true},
};

/* A call waiting on an endpoint; on the caller's stack. */
struct flight {
	nng_aio *aio;
	struct flight *prev, *next;
	uint64_t losses; /* its endpoint's losses when it started */
};

struct endpoint {
	char *url;
	nng_socket sock;
	bool sock_open;
	nng_dialer dialer;
	nng_tls_config *tls;
	/* Cancel the calls of the endpoint when its connection goes. An
	 * endpoint has one connection at a time: nng delivers the removal of
	 * a pipe before its dialer dials the next. So every call then waiting
	 * for an answer was sent on the lost connection, and nng ends those
	 * itself (ECONNRESET, its resend timer being off); the cancel moves
	 * the calls not yet sent, which wait for a connection, on to another
	 * endpoint at once. Set once every endpoint is dialed, when nng's
	 * threads may already deliver pipe events (there are no calls to
	 * cancel before the client is handed out). */
	atomic_bool failover;
	atomic_int pipes; /* takers(), for pick() */
	/* Guards flights, closing, close_by, closed, live and nlive. */
	pthread_mutex_t mtx;
	pthread_cond_t up_cv; /* a connection came up (CLOCK_MONOTONIC) */
	/* The calls between the start of their send and the end of their
	 * wait for the answer (flight_start, flight_end). */
	struct flight *flights;
	/* A connection that answered UNAVAILABLE, to be closed once no call
	 * is in flight on the endpoint, and at the latest at close_by
	 * (CLOSING_GRACE_MS after it was marked); id 0 = none. It is one
	 * listed in live: its id stays valid until nng reports its removal,
	 * which clears the mark. While it is marked no call starts
	 * (flight_start waits for the next connection), so the calls in
	 * flight only end, and the last of them closes it; a call that waits
	 * for a connection closes it at close_by under those still in flight,
	 * which lose it as any lost connection. closed: nng_pipe_close was
	 * called on it, its removal is yet to be reported. */
	nng_pipe closing;
	nng_time close_by;
	bool closed;
	/* The ids of the connections up. nng reports the removal of a pipe
	 * whose start failed (a peer of the wrong protocol) without having
	 * reported it added, so only removals of pipes listed here count. One
	 * dialer has one connection at a time; past LIVE_PIPES_MAX a
	 * connection is not counted (nor closed after UNAVAILABLE). */
	uint32_t live[LIVE_PIPES_MAX];
	size_t nlive;
	/* Connections listed in live that went, ever: a call that started
	 * before one went and had not begun its send then is moved on as
	 * pipe_cb moves the others (attempt). */
	uint64_t losses;
};

struct lm_client {
	struct endpoint ep[LM_CLIENT_ENDPOINTS_MAX];
	size_t nep;
	unsigned default_timeout_ms;
	size_t max_resp;
	size_t max_req;                             /* of an envelope */
	uint64_t id_base;                           /* random, per client */
	atomic_ullong id_seq;                       /* per call */
	atomic_uint next;                           /* round-robin position */
	char caller[LM_RPC_MAX_METADATA_VALUE + 1]; /* "" = none */
};

/* How one attempt on one endpoint ended. */
enum outcome {
	ANSWERED, /* the server answered (any code) */
	NO_CONN,  /* no connection in time: try another endpoint */
	LOST,     /* the connection went while waiting: try another */
	FINAL,    /* anything else: the call's result */
};

static bool
given(const char *s)
{
	return s != NULL && *s != '\0';
}

lm_client_method_kind
lm_client_method_kind_of(const char *method)
{
	for (size_t i = 0; method != NULL && i < sizeof(METHODS) / sizeof(METHODS[0]);
	     i++)
		if (strcmp(METHODS[i].name, method) == 0)
			return METHODS[i].read_only ? LM_CLIENT_METHOD_READ_ONLY
			                            : LM_CLIENT_METHOD_ONCE;
	return LM_CLIENT_METHOD_UNLISTED;
}

void
lm_client_close(lm_client *c)
{
	bool stuck = false;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nep; i++) {
		struct endpoint *ep = &c->ep[i];
		if (ep->sock_open &&
		    !lm_rpc_close_bounded(ep->sock, LM_RPC_CLOSE_TIMEOUT_MS)) {
			lm_warn("client.close.stuck",
			    "the socket to %s did not close within %u ms (a "
			    "connection closed in the middle of a large transfer); "
			    "its client is left allocated",
			    ep->url, LM_RPC_CLOSE_TIMEOUT_MS);
			stuck = true;
		}
	}
	/* nng may still call pipe_cb with an endpoint of a close that goes on. */
	if (stuck)
		return;
	for (size_t i = 0; i < c->nep; i++) {
		struct endpoint *ep = &c->ep[i];
		if (ep->tls != NULL)
			nng_tls_config_free(ep->tls);
		pthread_mutex_destroy(&ep->mtx);
		pthread_cond_destroy(&ep->up_cv);
		free(ep->url);
	}
	free(c);
}

/* Whether a connection of ep is marked closing; with ep->mtx held. */
static bool
marked(const struct endpoint *ep)
{
	return nng_pipe_id(ep->closing) > 0;
}

/* How many connections of ep take calls: those up but the one marked
 * closing (which is up); with ep->mtx held. */
static size_t
takers(const struct endpoint *ep)
{
	return ep->nlive - (marked(ep) ? 1 : 0);
}

/* Pipe notifications of an endpoint's socket (nng's threads). */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct endpoint *ep = arg;
	uint32_t id = (uint32_t) nng_pipe_id(p);
	bool was_up = false;

	if (ev != NNG_PIPE_EV_ADD_POST && ev != NNG_PIPE_EV_REM_POST)
		return;
	pthread_mutex_lock(&ep->mtx);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		if (ep->nlive < LIVE_PIPES_MAX)
			ep->live[ep->nlive++] = id;
		pthread_cond_broadcast(&ep->up_cv);
	} else {
		for (size_t i = 0; i < ep->nlive && !was_up; i++)
			if (ep->live[i] == id) {
				ep->live[i] = ep->live[--ep->nlive];
				was_up = true;
			}
		if (was_up)
			ep->losses++;
		if (was_up && nng_pipe_id(ep->closing) == nng_pipe_id(p))
			ep->closing = (nng_pipe) NNG_PIPE_INITIALIZER;
		/* Those sent were sent on it (see failover). */
		if (was_up && atomic_load(&ep->failover))
			for (struct flight *f = ep->flights; f != NULL; f = f->next)
				nng_aio_cancel(f->aio);
	}
	atomic_store(&ep->pipes, (int) takers(ep));
	pthread_mutex_unlock(&ep->mtx);
}

/* Closes the connection of ep marked closing, unless it was; with ep->mtx
 * held. nng reports the removal from its own thread, never from within
 * nng_pipe_close, so the mark, cleared by that report, still names the
 * connection. */
static void
close_marked(struct endpoint *ep)
{
	if (marked(ep) && !ep->closed) {
		nng_pipe_close(ep->closing);
		ep->closed = true;
	}
}

/*
 * Starts call f on ep: waits at most ms for a connection that takes calls
 * (one up and not marked closing) and, if there is one, lists f among the
 * calls in flight, in the same hold of the lock, so that a connection
 * marked afterwards is not closed before f ends, unless it is overdue
 * (close_by): the wait closes it then. Returns whether f was started;
 * *waited says whether there was a wait.
 */
static bool
flight_start(struct endpoint *ep, struct flight *f, nng_duration ms, bool *waited)
{
	nng_time now = nng_clock(), until = now + (nng_time) (ms > 0 ? ms : 0);
	struct timespec ts;
	bool up;

	pthread_mutex_lock(&ep->mtx);
	*waited = takers(ep) == 0;
	while (takers(ep) == 0) {
		nng_time wake = until;
		if (marked(ep) && !ep->closed) {
			if (now >= ep->close_by)
				close_marked(ep);
			else if (ep->close_by < wake)
				wake = ep->close_by;
		}
		if (now >= until)
			break;
		ts = lm_clock_deadline((int64_t) (wake - now));
		if (pthread_cond_timedwait(&ep->up_cv, &ep->mtx, &ts) != 0 &&
		    wake == until)
			break;
		now = nng_clock();
	}
	up = takers(ep) > 0;
	if (up) {
		f->losses = ep->losses;
		f->prev = NULL;
		f->next = ep->flights;
		if (ep->flights != NULL)
			ep->flights->prev = f;
		ep->flights = f;
	}
	pthread_mutex_unlock(&ep->mtx);
	return up;
}

/*
 * Marks connection p of ep, which answered UNAVAILABLE, to be closed by
 * the last call in flight on ep (flight_end), or by a call that waits for
 * a connection once CLOSING_GRACE_MS have passed (flight_start); the
 * caller is one of those in flight. A connection already gone, or not
 * listed, is not marked.
 */
static void
mark_closing(struct endpoint *ep, nng_pipe p)
{
	pthread_mutex_lock(&ep->mtx);
	for (size_t i = 0; i < ep->nlive && !marked(ep); i++)
		if (ep->live[i] == (uint32_t) nng_pipe_id(p)) {
			ep->closing = p;
			ep->close_by = nng_clock() + CLOSING_GRACE_MS;
			ep->closed = false;
		}
	atomic_store(&ep->pipes, (int) takers(ep));
	pthread_mutex_unlock(&ep->mtx);
}

/* Ends call f on ep; the last call in flight closes a marked connection. */
static void
flight_end(struct endpoint *ep, struct flight *f)
{
	pthread_mutex_lock(&ep->mtx);
	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		ep->flights = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	if (ep->flights == NULL)
		close_marked(ep);
	pthread_mutex_unlock(&ep->mtx);
}
/* TLS configuration for a client of url; the server name defaults to the
 * URL's host. */
static int
client_tls(struct endpoint *ep, const char *url, const lm_client_opts *o)
{
	char err[512];
	nng_url *u = NULL;
	int rv, nrv;
	const char *name;

	rv = lm_rpc_tls_config(&ep->tls, NNG_TLS_MODE_CLIENT, o ? o->tls_cert : NULL,
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
	nrv = name && *name ? nng_tls_config_server_name(ep->tls, name) : 0;
	if (u != NULL)
		nng_url_free(u);
	if (nrv != 0) {
		lm_error("client.tls", "TLS server name: %s", nng_strerror(nrv));
		return lm_err_from_nng(nrv);
	}
	return LM_OK;
}

/* LM_EINVAL (logged) when url is a TCP address whose port is not one
 * (lm_rpc_port_ok): nng would take it and dial in vain until the deadline. */
static int
check_port(const char *url)
{
	nng_url *u = NULL;
	bool ok;

	if (nng_url_parse(&u, url) != 0)
		return LM_OK; /* nng_dialer_create says why */
	ok = strstr(u->u_scheme, "tcp") == NULL || lm_rpc_port_ok(u->u_port, false);
	nng_url_free(u);
	if (!ok) {
		lm_error("client.url",
		    "cannot dial %s: the port is neither a number from 1 to 65535 "
		    "nor a service name the system knows",
		    url);
		return LM_EINVAL;
	}
	return LM_OK;
}

/* Opens the socket and the dialer of endpoint ep for url. */
static int
endpoint_open(lm_client *c, struct endpoint *ep, const char *url, const lm_client_opts *o)
{
	int rv;

	if ((ep->url = strdup(url)) == NULL)
		return LM_ENOMEM;
	if ((rv = nng_req0_open(&ep->sock)) != 0)
		return lm_err_from_nng(rv);
	ep->sock_open = true;
	if ((rv = nng_socket_set_size(
	         ep->sock, NNG_OPT_RECVMAXSZ, c->max_resp + LM_RPC_SP_HEADER_MAX)) != 0 ||
	    (rv = nng_socket_set_ms(
	         ep->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_ms(ep->sock, NNG_OPT_RECONNMINT, RECONNECT_MIN_MS)) !=
	        0 ||
	    (rv = nng_socket_set_ms(ep->sock, NNG_OPT_RECONNMAXT, RECONNECT_MAX_MS)) !=
	        0 ||
	    (rv = nng_pipe_notify(ep->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, ep)) != 0 ||
	    (rv = nng_pipe_notify(ep->sock, NNG_PIPE_EV_REM_POST, pipe_cb, ep)) != 0)
		return lm_err_from_nng(rv);
	if ((rv = check_port(url)) != LM_OK)
		return rv;
	if ((rv = nng_dialer_create(&ep->dialer, ep->sock, url)) != 0) {
		lm_error("client.url", "cannot dial %s: %s", url, nng_strerror(rv));
		return LM_EINVAL;
	}
	if (lm_rpc_url_is_tls(url)) {
		if ((rv = client_tls(ep, url, o)) != LM_OK)
			return rv;
		if ((rv = nng_dialer_set_ptr(ep->dialer, NNG_OPT_TLS_CONFIG, ep->tls)) !=
		    0) {
			lm_error("client.tls", "TLS on %s: %s", url, nng_strerror(rv));
			return LM_ENNG;
		}
	} else if (o != NULL && (given(o->tls_cert) || given(o->tls_ca))) {
		lm_warn("client.tls.unused",
		    "TLS files are set but %s is not a tls+tcp:// URL", url);
	}
	/* Non-blocking: the dialer keeps retrying in the background. */
	if ((rv = nng_dialer_start(ep->dialer, NNG_FLAG_NONBLOCK)) != 0) {
		lm_error("client.dial", "cannot dial %s: %s", url, nng_strerror(rv));
		return LM_ENNG;
	}
	return LM_OK;
}

int
lm_client_open(const char *url, const lm_client_opts *o, lm_client **out)
{
	char list[LM_CLIENT_URLS_MAX + 1], *save = NULL, *tok;
	lm_client *c;
	int rv;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (url == NULL || *url == '\0' || strlen(url) > LM_CLIENT_URLS_MAX)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return LM_ENOMEM;
	c->default_timeout_ms = o && o->default_timeout_ms ? o->default_timeout_ms
	                                                   : LM_RPC_DEFAULT_TIMEOUT_MS;
	c->max_resp = o && o->max_response_bytes ? o->max_response_bytes
	                                         : LM_RPC_DEFAULT_MAX_RESPONSE;
	c->max_req = o && o->max_request_bytes ? o->max_request_bytes
	                                       : LM_CLIENT_DEFAULT_MAX_REQUEST;
	if (c->max_req > LM_CLIENT_MAX_REQUEST) {
		lm_error(
		    "client.open", "max_request_bytes over %zu", LM_CLIENT_MAX_REQUEST);
		free(c);
		return LM_EINVAL;
	}
	if (c->max_resp > LM_CLIENT_MAX_RESPONSE) {
		lm_error(
		    "client.open", "max_response_bytes over %zu", LM_CLIENT_MAX_RESPONSE);
		free(c);
		return LM_EINVAL;
	}
	if (o != NULL && given(o->caller)) {
		/* The server cannot read an envelope with a string that is not
		 * UTF-8: every call would fail. */
		if (strlen(o->caller) > LM_RPC_MAX_METADATA_VALUE ||
		    !lm_pb_utf8_valid(o->caller, strlen(o->caller))) {
			lm_error("client.open", "caller name over %d bytes or not UTF-8",
			    LM_RPC_MAX_METADATA_VALUE);
			free(c);
			return LM_EINVAL;
		}
		memcpy(c->caller, o->caller, strlen(o->caller) + 1);
	}
	if (lm_random_bytes(&c->id_base, sizeof(c->id_base), false) != LM_OK)
		c->id_base = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32) ^
		             (uint64_t) (uintptr_t) c;
	atomic_init(&c->id_seq, 0);
	atomic_init(&c->next, 0);

	memcpy(list, url, strlen(url) + 1);
	for (tok = strtok_r(list, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char) *tok))
			tok++;
		for (char *e = tok + strlen(tok);
		     e > tok && isspace((unsigned char) e[-1]);)
			*--e = '\0';
		if (*tok == '\0')
			continue;
		if (c->nep == LM_CLIENT_ENDPOINTS_MAX) {
			lm_error("client.url", "more than %d endpoints",
			    LM_CLIENT_ENDPOINTS_MAX);
			rv = LM_EINVAL;
			goto fail;
		}
		struct endpoint *ep = &c->ep[c->nep++];
		pthread_mutex_init(&ep->mtx, NULL);
		(void) lm_cond_init_monotonic(&ep->up_cv);
		atomic_init(&ep->pipes, 0);
		atomic_init(&ep->failover, false);
		if ((rv = endpoint_open(c, ep, tok, o)) != LM_OK)
			goto fail;
	}
	if (c->nep == 0) {
		rv = LM_EINVAL;
		goto fail;
	}
	/* One endpoint: nng itself ends a call whose connection broke
	 * (ECONNRESET, its resend timer being off), and lm_client_call sends it
	 * again on the next connection; a broken pipe cancels nothing else. */
	for (size_t i = 0; i < c->nep; i++)
		atomic_store(&c->ep[i].failover, c->nep > 1);
	*out = c;
	return LM_OK;
fail:
	lm_client_close(c);
	return rv;
}

/* Writes the message of a call into errmsg[0..errlen) (nothing when errmsg
 * is NULL or errlen 0); a text cut there is cut before the character it
 * would split, so that the message stays UTF-8 (docs/rpc.md). */
static void __attribute__((format(printf, 3, 4)))
set_errf(char *errmsg, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errmsg == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		errmsg[0] = '\0';
	else if ((size_t) n >= errlen)
		errmsg[lm_pb_utf8_fit(errmsg, errlen - 1)] = '\0';
}

static void
set_err(char *errmsg, size_t errlen, const char *text)
{
	set_errf(errmsg, errlen, "%s", text);
}

/* The reason a request of n bytes is refused. */
static void
set_too_big(const lm_client *c, size_t n, char *errmsg, size_t errlen)
{
	set_errf(errmsg, errlen,
	    "request of %zu bytes is over the limit of %zu bytes "
	    "(max_request_bytes: the server's LUNAMATCH_MAX_REQUEST_BYTES)",
	    n, c->max_req);
}

/* The deadline a call with timeout_ms gives the server (before retries). */
static unsigned
call_timeout(const lm_client *c, unsigned timeout_ms)
{
	if (timeout_ms == 0)
		timeout_ms = c->default_timeout_ms;
	return timeout_ms > LM_RPC_MAX_TIMEOUT_MS ? LM_RPC_MAX_TIMEOUT_MS : timeout_ms;
}

/* Writes the request id of call number seq of c to reqid. */
static void
format_reqid(const lm_client *c, unsigned long long seq, char *reqid, size_t idlen)
{
	snprintf(reqid, idlen, "%016llx-%llu", (unsigned long long) c->id_base, seq);
}

/* Fills env, every field but the payload, for a call of c: full is the full
 * method name, caller and md the storage of the metadata. */
static void
fill_envelope(const lm_client *c, Lunamatch__V1__RpcRequest *env,
    Lunamatch__V1__MetadataEntry *caller, Lunamatch__V1__MetadataEntry **md, char *full,
    char *reqid, unsigned timeout_ms)
{
	lunamatch__v1__rpc_request__init(env);
	lunamatch__v1__metadata_entry__init(caller);
	env->method = full;
	env->request_id = reqid;
	env->timeout_ms = timeout_ms;
	if (c->caller[0] != '\0') {
		caller->key = "caller";
		caller->value = (char *) c->caller;
		md[0] = caller;
		env->n_metadata = 1;
		env->metadata = md;
	}
}

/* The size of the envelope of a call of c to method (a valid name) with req
 * and timeout_ms whose request id carries call number seq. */
static size_t
envelope_size(lm_client *c, const char *method, const ProtobufCMessage *req,
    unsigned timeout_ms, unsigned long long seq)
{
	Lunamatch__V1__RpcRequest env;
	Lunamatch__V1__MetadataEntry caller, *md[1];
	char full[LM_RPC_MAX_METHOD + 1], reqid[64];

	if (lm_rpc_method_name(method, full, sizeof(full)) != LM_OK)
		return 0;
	format_reqid(c, seq, reqid, sizeof(reqid));
	fill_envelope(c, &env, &caller, md, full, reqid, call_timeout(c, timeout_ms));
	env.payload.len = protobuf_c_message_get_packed_size(req);
	return protobuf_c_message_get_packed_size(&env.base);
}

size_t
lm_client_request_size(
    lm_client *c, const char *method, const ProtobufCMessage *req, unsigned timeout_ms)
{
	if (c == NULL || method == NULL || req == NULL)
		return 0;
	return envelope_size(
	    c, method, req, timeout_ms, (unsigned long long) atomic_load(&c->id_seq) + 1);
}

/* Encodes the envelope of call number seq into a new nng message, its
 * request id into reqid. Returns LM_OK; LM_EINVAL for a bad method name;
 * LM_E2BIG for an envelope over c->max_req, its size in *size; LM_ENOMEM or
 * an nng error. */
static int
build_request(lm_client *c, const char *method, const ProtobufCMessage *req,
    unsigned timeout_ms, unsigned long long seq, char *reqid, size_t idlen, nng_msg **out,
    size_t *size)
{
	Lunamatch__V1__RpcRequest env;
	Lunamatch__V1__MetadataEntry caller, *md[1];
	char full[LM_RPC_MAX_METHOD + 1];
	size_t plen, n;
	uint8_t *payload;
	int rv;

	if ((rv = lm_rpc_method_name(method, full, sizeof(full))) != LM_OK)
		return LM_EINVAL;
	*size = plen = protobuf_c_message_get_packed_size(req);
	if (plen > c->max_req)
		return LM_E2BIG;
	payload = malloc(plen ? plen : 1);
	if (payload == NULL)
		return LM_ENOMEM;
	protobuf_c_message_pack(req, payload);
	format_reqid(c, seq, reqid, idlen);
	fill_envelope(c, &env, &caller, md, full, reqid, timeout_ms);
	env.payload.data = payload;
	env.payload.len = plen;
	*size = n = protobuf_c_message_get_packed_size(&env.base);
	if (n > c->max_req) {
		free(payload);
		return LM_E2BIG;
	}
	if ((rv = nng_msg_alloc(out, n)) != 0) {
		free(payload);
		return lm_err_from_nng(rv);
	}
	protobuf_c_message_pack(&env.base, nng_msg_body(*out));
	free(payload);
	return LM_OK;
}

/* The allocator of an answer's decode: charges each allocation to the
 * budget of LM_CLIENT_DECODE_FLOOR + LM_CLIENT_DECODE_FACTOR times the
 * answer's bytes; what it returns is freed with free(). */
struct answer_alloc {
	lm_decode_budget budget;
	bool failed; /* malloc failed */
};

static void *
answer_malloc(void *arg, size_t n)
{
	struct answer_alloc *a = arg;
	void *p;

	if (!lm_decode_budget_charge(&a->budget, n))
		return NULL;
	if ((p = malloc(n > 0 ? n : 1)) == NULL)
		a->failed = true;
	return p;
}

static void
answer_free(void *arg, void *p)
{
	(void) arg;
	free(p);
}

/*
 * lm_pb_decode of an answer of len bytes within its memory budget. The
 * caller frees *out with protobuf_c_message_free_unpacked(*out, NULL).
 * Returns LM_OK; LM_E2BIG when it would take more memory, with the reason
 * in err; LM_ENOMEM; or lm_pb_decode's error.
 */
static int
decode_answer(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
    size_t max_len, ProtobufCMessage **out, char *err, size_t errlen)
{
	struct answer_alloc a = {.failed = false};
	ProtobufCAllocator alloc = {answer_malloc, answer_free, &a};
	size_t limit;
	int rv;

	lm_decode_budget_init(
	    &a.budget, LM_CLIENT_DECODE_FLOOR, LM_CLIENT_DECODE_FACTOR, len);
	limit = a.budget.left;
	rv = lm_pb_decode_with(desc, data, len, max_len, &alloc, out, err, errlen);
	if (rv == LM_OK)
		return LM_OK;
	if (a.failed)
		return LM_ENOMEM;
	if (a.budget.over) {
		snprintf(err, errlen,
		    "%zu bytes of %s would take more than %zu bytes of memory to "
		    "decode",
		    len, desc->name, limit);
		return LM_E2BIG;
	}
	return rv;
}

/*
 * One attempt of a call on ep: a connection is waited for at most
 * connect_ms, the answer until deadline. The server gets timeout_ms as its
 * deadline when ep was connected already, else (and when timeout_ms is 0)
 * the time left until end once the connection is up. *oc says how it
 * ended; the return value, *st and errmsg are the call's result should it
 * be the last attempt.
 */
static int
attempt(lm_client *c, struct endpoint *ep, const char *method,
    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
    unsigned long long seq, unsigned timeout_ms, nng_time end, nng_duration connect_ms,
    nng_time deadline, ProtobufCMessage **resp, int *st, char *errmsg, size_t errlen,
    enum outcome *oc)
{
	Lunamatch__V1__RpcResponse *env = NULL;
	char reqid[64], err[256];
	struct flight fl;
	nng_msg *msg = NULL;
	nng_aio *aio = NULL;
	nng_ctx ctx;
	bool ctx_open = false, flying = false, waited;
	nng_time now;
	size_t size = 0;
	int rv, nrv;

	*oc = FINAL;
	*st = ST_INTERNAL;
	if ((nrv = nng_aio_alloc(&aio, NULL, NULL)) != 0 ||
	    (nrv = nng_ctx_open(&ctx, ep->sock)) != 0) {
		rv = lm_err_from_nng(nrv);
		*st = ST_UNAVAILABLE;
		set_err(errmsg, errlen, nng_strerror(nrv));
		goto out;
	}
	ctx_open = true;
	/* A connection first: the time left that the request carries counts
	 * from when it can be sent, so the server's deadline does not outlast
	 * the caller's by the wait. */
	fl.aio = aio;
	now = nng_clock();
	/* With other endpoints to go to, a connection that went since the
	 * endpoint was picked is waited for no longer than one that was not
	 * there then (lm_client_call). */
	if (!flight_start(ep, &fl,
	        atomic_load(&ep->failover) && connect_ms > ATTEMPT_CONNECT_MS
	            ? ATTEMPT_CONNECT_MS
	            : connect_ms,
	        &waited)) {
		rv = LM_ETIMEDOUT;
		*st = ST_UNAVAILABLE;
		*oc = NO_CONN;
		set_err(errmsg, errlen, "no connection to the server");
		goto out;
	}
	flying = true;
	if (waited) {
		connect_ms -= (nng_duration) (nng_clock() - now);
		if (connect_ms < 1)
			connect_ms = 1;
		timeout_ms = 0;
	}
	if (timeout_ms == 0) {
		now = nng_clock();
		timeout_ms = now < end ? (unsigned) (end - now) : 1;
	}
	rv = build_request(
	    c, method, req, timeout_ms, seq, reqid, sizeof(reqid), &msg, &size);
	if (rv != LM_OK) {
		*st = rv == LM_EINVAL || rv == LM_E2BIG ? ST_INVALID : ST_INTERNAL;
		if (rv == LM_E2BIG)
			set_too_big(c, size, errmsg, errlen);
		else
			set_err(errmsg, errlen,
			    rv == LM_EINVAL ? "bad method name" : lm_strerror(rv));
		goto out;
	}

	/* Send: completes once the request is handed to a connection. */
	nng_aio_set_msg(aio, msg);
	nng_aio_set_timeout(aio, connect_ms);
	nng_ctx_send(ctx, aio);
	/* A connection that went after the flight started but before the send
	 * began found no operation to cancel (pipe_cb): the send would wait
	 * for the next connection of this endpoint. It is cancelled as pipe_cb
	 * cancels the others; one that goes from now on is pipe_cb's. */
	if (atomic_load(&ep->failover)) {
		pthread_mutex_lock(&ep->mtx);
		if (ep->losses != fl.losses)
			nng_aio_cancel(aio);
		pthread_mutex_unlock(&ep->mtx);
	}
	nng_aio_wait(aio);
	if ((nrv = nng_aio_result(aio)) != 0) {
		/* The message is still ours. */
		*st = ST_UNAVAILABLE;
		if (nrv == NNG_ETIMEDOUT || nrv == NNG_ECANCELED) {
			rv = LM_ETIMEDOUT;
			set_err(errmsg, errlen, "no connection to the server");
		} else {
			rv = lm_err_from_nng(nrv);
			set_err(errmsg, errlen, nng_strerror(nrv));
		}
		if (nrv != NNG_ENOMEM)
			*oc = NO_CONN;
		goto out;
	}
	msg = NULL;

	now = nng_clock();
	nng_aio_set_timeout(aio, (nng_duration) (now < deadline ? deadline - now : 1));
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((nrv = nng_aio_result(aio)) != 0) {
		if (nrv == NNG_ECANCELED || nrv == NNG_ECONNRESET ||
		    nrv == NNG_ECONNSHUT) {
			rv = LM_ENNG;
			*st = ST_UNAVAILABLE;
			*oc = LOST;
			set_err(errmsg, errlen,
			    "connection to the server lost (a request over the "
			    "server's size limit, or an answer over "
			    "max_response_bytes, closes it too)");
			goto out;
		}
		rv = lm_err_from_nng(nrv);
		*st = nrv == NNG_ETIMEDOUT ? ST_DEADLINE : ST_UNAVAILABLE;
		set_err(errmsg, errlen,
		    nrv == NNG_ETIMEDOUT ? "no answer before the deadline"
		                         : nng_strerror(nrv));
		goto out;
	}
	msg = nng_aio_get_msg(aio);
	rv = decode_answer(&lunamatch__v1__rpc_response__descriptor, nng_msg_body(msg),
	    nng_msg_len(msg), c->max_resp, (ProtobufCMessage **) &env, err, sizeof(err));
	if (rv != LM_OK) {
		*st = ST_INTERNAL;
		if (rv == LM_E2BIG)
			set_errf(
			    errmsg, errlen, "answer from the server refused: %s", err);
		else
			set_err(errmsg, errlen,
			    rv == LM_ENOMEM ? lm_strerror(rv)
			                    : "unreadable answer from the server");
		if (rv != LM_E2BIG && rv != LM_ENOMEM)
			rv = LM_EPARSE;
		goto out;
	}
	/* The server echoes our id; it answers "" only when it could not read
	 * the request, and never with OK then. */
	if (strcmp(env->request_id, reqid) != 0 &&
	    !(env->request_id[0] == '\0' && env->code != ST_OK)) {
		rv = LM_EPARSE;
		*st = ST_INTERNAL;
		set_err(errmsg, errlen, "answer carries another request_id");
		goto out;
	}
	*oc = ANSWERED;
	*st = (int) env->code;
	if (*st < 0 || *st > ST_LAST) {
		/* Not a lunamatch.v1.StatusCode (proto3 keeps any number). */
		set_errf(errmsg, errlen, "status code %d: %s", *st, env->message);
		*st = ST_UNKNOWN;
	} else {
		set_err(errmsg, errlen, env->message ? env->message : "");
	}
	/* This server will not serve this connection: have nng dial again,
	 * once the other calls on it have their answers. */
	if (*st == ST_UNAVAILABLE)
		mark_closing(ep, nng_msg_get_pipe(msg));
	if (*st == ST_OK) {
		rv = decode_answer(resp_desc, env->payload.data, env->payload.len,
		    c->max_resp, resp, err, sizeof(err));
		if (rv != LM_OK) {
			*resp = NULL;
			*st = ST_INTERNAL;
			*oc = FINAL;
			if (rv == LM_E2BIG)
				set_errf(errmsg, errlen,
				    "answer from the server refused: %s", err);
			else
				set_errf(errmsg, errlen,
				    "unreadable %s in the answer: %s", resp_desc->name,
				    err);
			if (rv != LM_E2BIG && rv != LM_ENOMEM)
				rv = LM_EPARSE;
			goto out;
		}
	}
	rv = LM_OK;
out:
	if (flying)
		flight_end(ep, &fl);
	if (env != NULL)
		protobuf_c_message_free_unpacked(&env->base, NULL);
	nng_msg_free(msg);
	if (ctx_open)
		nng_ctx_close(ctx);
	nng_aio_free(aio);
	return rv;
}

/* The endpoint of the next attempt: from the round-robin position, the
 * first connected one not tried in this round, else the first not tried.
 * Marks it tried. */
static struct endpoint *
pick(lm_client *c, bool *tried)
{
	size_t start = atomic_fetch_add(&c->next, 1) % c->nep, any = c->nep;

	for (size_t k = 0; k < c->nep; k++) {
		size_t i = (start + k) % c->nep;
		if (tried[i])
			continue;
		if (any == c->nep)
			any = i;
		if (atomic_load(&c->ep[i].pipes) > 0) {
			tried[i] = true;
			return &c->ep[i];
		}
	}
	if (any == c->nep)
		return NULL;
	tried[any] = true;
	return &c->ep[any];
}

int
lm_client_call(lm_client *c, const char *method, const ProtobufCMessage *req,
    const ProtobufCMessageDescriptor *resp_desc, unsigned timeout_ms,
    ProtobufCMessage **resp, int *status, char *errmsg, size_t errlen)
{
	bool tried[LM_CLIENT_ENDPOINTS_MAX] = {false}, first = true, again;
	/* Endpoints whose connection this call lost: nng drops a message over
	 * a size limit with its connection, which would happen again. */
	bool lost[LM_CLIENT_ENDPOINTS_MAX] = {false}, lost_before;
	size_t nlost = 0;
	enum outcome last = NO_CONN, prior = NO_CONN;
	/* A server's reason (at most LM_RPC_MAX_MESSAGE) or the client's own. */
	char prior_msg[LM_RPC_MAX_MESSAGE + 128] = "", full[LM_RPC_MAX_METHOD + 1];
	nng_time end, deadline, now;
	size_t size;
	unsigned long long seq;
	int st = ST_INTERNAL, rv = LM_ETIMEDOUT, prior_rv = LM_OK, redials = 0;
	int64_t pause = 0;

	set_err(errmsg, errlen, "");
	if (resp != NULL)
		*resp = NULL;
	if (c == NULL || method == NULL || req == NULL || resp == NULL ||
	    resp_desc == NULL) {
		if (status != NULL)
			*status = ST_INVALID;
		set_err(errmsg, errlen, "invalid arguments");
		return LM_EINVAL;
	}
	/* Refused before any wait for a connection, as build_request would. */
	if (lm_rpc_method_name(method, full, sizeof(full)) != LM_OK) {
		if (status != NULL)
			*status = ST_INVALID;
		set_err(errmsg, errlen, "bad method name");
		return LM_EINVAL;
	}
	/* With the longest request id: no attempt of the call (each with a
	 * shorter deadline) is then refused after one was sent. */
	if ((size = envelope_size(c, method, req, timeout_ms, ULLONG_MAX)) > c->max_req) {
		if (status != NULL)
			*status = ST_INVALID;
		set_too_big(c, size, errmsg, errlen);
		return LM_E2BIG;
	}
	again = lm_client_method_kind_of(method) == LM_CLIENT_METHOD_READ_ONLY;
	/* One request id for every attempt: the server logs a decision under
	 * it, and a retry is the same request (docs/api.md). */
	seq = (unsigned long long) atomic_fetch_add(&c->id_seq, 1) + 1;
	timeout_ms = call_timeout(c, timeout_ms);
	end = nng_clock() + timeout_ms; /* the server's deadline */
	deadline = end + LM_CLIENT_DEADLINE_GRACE_MS;

	for (;;) {
		struct endpoint *ep = pick(c, tried);
		enum outcome oc;
		nng_duration connect_ms;
		unsigned left, first_timeout;

		if (ep == NULL) {
			/* Every endpoint tried: another round, after the pause,
			 * without those whose connection the call lost. */
			if (c->nep == 1) {
				memset(tried, 0, sizeof(tried));
				if (nng_clock() + REDIAL_PAUSE_MS < end)
					nng_msleep(REDIAL_PAUSE_MS);
				continue;
			}
			if (nlost == c->nep)
				break;
			memcpy(tried, lost, sizeof(tried));
			pause = lm_backoff_next(
			    pause, ROUND_PAUSE_MIN_MS, ROUND_PAUSE_MAX_MS);
			if (nng_clock() + (nng_time) pause >= end)
				break;
			nng_msleep((nng_duration) pause);
			continue;
		}
		/* The server's deadline: timeout_ms on the first attempt (as
		 * documented), what is left of it on a retry. */
		now = nng_clock();
		left = first ? timeout_ms : now < end ? (unsigned) (end - now) : 1;
		first_timeout = first ? timeout_ms : 0;
		first = false;
		connect_ms = (nng_duration) left;
		if (c->nep > 1 && atomic_load(&ep->pipes) == 0 &&
		    connect_ms > ATTEMPT_CONNECT_MS)
			connect_ms = ATTEMPT_CONNECT_MS;
		if (redials > 0 && connect_ms > REDIAL_CONNECT_MS)
			connect_ms = REDIAL_CONNECT_MS;
		rv = attempt(c, ep, method, req, resp_desc, seq, first_timeout, end,
		    connect_ms, deadline, resp, &st, errmsg, errlen, &oc);
		last = oc;
		lost_before = lost[ep - c->ep];
		if (oc == LOST && !lost_before) {
			lost[ep - c->ep] = true;
			nlost++;
		}
		if (oc == FINAL || (oc == ANSWERED && st != ST_UNAVAILABLE))
			break;
		/* Sent, and perhaps carried out: only a read-only method again. */
		if (!again && oc != NO_CONN)
			break;
		/* The result should nothing better come: a server's own
		 * UNAVAILABLE says more than a missing connection; with one
		 * endpoint, so does the loss of the one the call had. */
		if (oc == ANSWERED || (oc == LOST && c->nep == 1 && prior != ANSWERED)) {
			prior = oc;
			prior_rv = rv;
			if (errmsg != NULL && errlen > 0)
				set_err(prior_msg, sizeof(prior_msg), errmsg);
		}
		if (nng_clock() >= end)
			break;
		if (c->nep == 1) {
			/* Again on a fresh connection, a bounded number of
			 * times, while one comes up. */
			if (oc == NO_CONN || redials == SINGLE_REDIALS ||
			    (oc == LOST && lost_before))
				break;
			redials++;
		}
		lm_debug("client.retry", "%s on %s: %s; trying again", method, ep->url,
		    errmsg != NULL && errlen > 0 ? errmsg : "unavailable");
	}
	/* Reached no server since (no connection, or it went): the earlier
	 * result is the call's. An attempt that ended otherwise (a time-out of
	 * a slow replica, an answer that does not read) is. */
	if (rv != LM_OK && prior != NO_CONN && (last == NO_CONN || last == LOST)) {
		rv = prior_rv;
		st = ST_UNAVAILABLE;
		set_err(errmsg, errlen, prior_msg);
	}
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
