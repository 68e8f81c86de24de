/*
 * cmd_bench.c - `lunamatch bench`: load on a running match server, and the
 * same load on a raw nng REQ/REP echo for comparison.
 *
 *   bench jobs|candidates [--clients N] [--duration S | --count N]
 *                         [--time-limit S] [--top K] [--explain LEVEL]
 *                         [--warmup N] [--seed S] [--no-echo]
 *                         [--timeout-ms N]
 *
 * N client threads, each with a connection of its own (an lm_client),
 * call MatchJobs with a random stored profile (jobs) or MatchCandidates
 * with a random stored posting (candidates), back to back (a closed loop),
 * for a duration or until a count of calls is done (or --time-limit has
 * passed). The ids come from the record store in --data-dir, read once at
 * the start, so the bench runs next to the server. Each client first makes
 * --warmup calls that are not measured; all clients then start together. A
 * warm-up call that gets no connection or no answer in time ends the warm-up
 * of every client, and the phase fails without measuring.
 *
 * Then, in the same run, an nng REP socket in this process on 127.0.0.1
 * echoes requests of the match phase's mean request size (each request's
 * size is that of the envelope the client sends) with replies of
 * its mean response size, under the same client count and the same
 * duration or count: the cost of the transport alone. The report gives
 * both latency distributions (p50, p90, p99, max), q/s, errors by status,
 * and the ratios match/echo.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "cli.h"
#include "lunamatch/client.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/rpc.h"
#include "lunamatch/store.h"
#include "lunamatch/textfile.h"

#define CMD "bench"

#define CLIENTS_MAX   1024
#define DURATION_MAX  3600      /* seconds */
#define COUNT_MAX     100000000 /* calls */
#define LIMIT_MAX     86400     /* seconds of a phase in count mode */
#define LIMIT_DEFAULT 600
#define WARMUP_MAX    100000       /* calls per client */
#define IDS_MAX       50000000u    /* stored ids read for the random choice */
#define IDS_BYTES_MAX (2ull << 30) /* bytes of those ids, with their NULs */
/* Most latencies kept per phase; calls beyond it are counted, not timed. */
#define SAMPLES_MAX (64u * 1024 * 1024)
/* Largest echo message (the mean response of the match phase). */
#define ECHO_MSG_MAX (16u * 1024 * 1024)
#define STATUS_CODES 17 /* lunamatch.v1.StatusCode values */

enum {
	OPT_CLIENTS = 1,
	OPT_DURATION,
	OPT_COUNT,
	OPT_TOP,
	OPT_EXPLAIN,
	OPT_WARMUP,
	OPT_SEED,
	OPT_NO_ECHO,
	OPT_TIMEOUT,
	OPT_TIME_LIMIT,
};

const struct option lm_cli_bench_options[] = {
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"count", required_argument, NULL, OPT_COUNT},
    {"top", required_argument, NULL, OPT_TOP},
    {"explain", required_argument, NULL, OPT_EXPLAIN},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"no-echo", no_argument, NULL, OPT_NO_ECHO},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
    {NULL, 0, NULL, 0},
};

const char lm_cli_bench_usage[] =
    "Usage: " LM_CLI_PROG " [global options] bench jobs|candidates [options]\n"
    "\n"
    "Drives the match server at --url with concurrent clients: MatchJobs for\n"
    "random stored profiles (jobs) or MatchCandidates for random stored\n"
    "postings (candidates), ids read from the store in --data-dir. Then, in\n"
    "the same run, a raw nng REQ/REP echo in this process with the same\n"
    "message sizes and concurrency. Prints latency percentiles, q/s, errors\n"
    "and the ratios match/echo (one JSON object with --json).\n"
    "\n"
    "Options:\n"
    "  --clients N       concurrent clients, each with its own connection\n"
    "                    (1..1024, default 16)\n"
    "  --duration S      seconds to measure each phase (1..3600, default 10)\n"
    "  --count N         measure N calls per phase instead of a duration\n"
    "  --time-limit S    with --count: end a phase after S seconds even if\n"
    "                    fewer calls were made (1..86400, default 600)\n"
    "  --top K           top_k of each call (1..1000, default 10)\n"
    "  --explain LEVEL   none, summary (default) or full\n"
    "  --warmup N        unmeasured calls per client first (0..100000, default 5)\n"
    "  --seed S          seed of the random choice of ids (default 1)\n"
    "  --no-echo         skip the echo phase\n"
    "  --timeout-ms N    deadline of each call (default LUNAMATCH_DEFAULT_TIMEOUT_MS)\n"
    "\n"
    "Exit status: 0 when the run completed (errors are reported, not fatal),\n"
    "1 when it could not run (no store, no ids), no echo call succeeded or\n"
    "--time-limit ended it with failed calls, 2 usage error, 3 no match call\n"
    "succeeded (the server unreachable, or an error for every call) or a\n"
    "warm-up call found the server unreachable.\n";

/* ---- the run's shared state ----------------------------------------------- */

typedef struct bench bench;
typedef struct worker worker;

/* One kind of call: opens a worker's connection, makes one call (0 when it
 * succeeded, else the lunamatch.v1.StatusCode it failed with; sets the
 * worker's answered to whether the server answered at all), closes. */
typedef struct phase_ops {
	int (*open)(worker *w);
	int (*call)(worker *w);
	void (*close)(worker *w);
} phase_ops;

struct worker {
	bench *b;
	pthread_t thread;
	uint64_t rng;
	lm_client *client; /* match phase */
	nng_socket sock;   /* echo phase */
	bool sock_open;
	uint64_t *lat; /* ns of each successful measured call */
	size_t nlat, cap;
	uint64_t calls, untimed;
	uint64_t codes[STATUS_CODES];
	uint64_t req_bytes, resp_bytes; /* sums over successful calls */
	int open_rc;
	bool answered;   /* the last call got an answer (any status) */
	int warm_status; /* StatusCode of the warm-up call that ended it, or 0 */
};

struct bench {
	const lm_config *cfg;
	bool jobs;
	Lunamatch__V1__ExplainLevel explain;
	uint32_t top;
	unsigned clients, timeout_ms;
	uint64_t duration_s, count, warmup, seed, limit_s;
	/* Stored ids to query: offsets into one buffer. */
	char *idbuf;
	size_t idlen, idcap;
	size_t *ids;
	size_t nids, idscap;
	/* Echo phase. */
	char echo_url[64];
	size_t echo_req, echo_resp;
	/* Phase control. */
	const phase_ops *ops;
	/* The start gate: workers count themselves ready, then wait for go. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ready;
	bool go;
	atomic_uint_fast64_t issued; /* count mode: calls handed out */
	atomic_bool stop;
	uint64_t deadline_ns;
	worker *w;
};

typedef struct result {
	const char *name;
	double seconds;
	uint64_t calls, ok, errors, untimed;
	uint64_t codes[STATUS_CODES];
	bool limited;                    /* count mode: the time limit ended the phase */
	double p50, p90, p99, max, mean; /* ms */
	double qps;
	double req_bytes, resp_bytes; /* means */
} result;

/* xorshift64*: a worker's own random ids. */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static const char *
random_id(worker *w)
{
	bench *b = w->b;
	return b->idbuf + b->ids[next_rand(&w->rng) % b->nids];
}

/* ---- ids from the store ----------------------------------------------------- */

/* What collect_id stops lm_store_foreach with: negative, so that neither is
 * taken for an lm_err of the store's own (LM_ENOMEM is 1). */
#define IDS_NOMEM  (-1)
#define IDS_ENOUGH (-2)

static int
collect_id(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	bench *b = arg;
	size_t n = strlen(id) + 1;

	(void) version;
	(void) bytes;
	(void) len;
	if (b->nids == IDS_MAX || b->idlen + n > IDS_BYTES_MAX)
		return IDS_ENOUGH; /* enough to choose from */
	if (b->idlen + n > b->idcap) {
		size_t cap = b->idcap ? b->idcap * 2 : 1 << 20;
		char *p = realloc(b->idbuf, cap);
		if (p == NULL)
			return IDS_NOMEM;
		b->idbuf = p;
		b->idcap = cap;
	}
	if (b->nids == b->idscap) {
		size_t cap = b->idscap ? b->idscap * 2 : 1 << 16;
		size_t *p = realloc(b->ids, cap * sizeof(*p));
		if (p == NULL)
			return IDS_NOMEM;
		b->ids = p;
		b->idscap = cap;
	}
	memcpy(b->idbuf + b->idlen, id, n);
	b->ids[b->nids++] = b->idlen;
	b->idlen += n;
	return 0;
}

static int
load_ids(bench *b)
{
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	lm_kind k = b->jobs ? LM_KIND_PROFILE : LM_KIND_POSTING;
	int rc = lm_store_open(b->cfg->data_dir, &o, &s);

	if (rc != LM_OK) {
		lm_cli_error(CMD,
		    "cannot open the record store in %s: %s (see --data-dir)",
		    b->cfg->data_dir, lm_strerror(rc));
		return LM_CLI_EXIT_FAIL;
	}
	rc = lm_store_foreach(s, k, collect_id, b);
	lm_store_close(s);
	if (rc == IDS_NOMEM) {
		lm_cli_error(CMD, "out of memory reading ids");
		return LM_CLI_EXIT_FAIL;
	}
	if (rc != LM_OK && rc != IDS_ENOUGH) {
		lm_cli_error(CMD, "reading ids: %s", lm_strerror(rc));
		return LM_CLI_EXIT_FAIL;
	}
	if (b->nids == 0) {
		lm_cli_error(CMD, "no stored %ss in %s to query with", lm_kind_name(k),
		    b->cfg->data_dir);
		return LM_CLI_EXIT_FAIL;
	}
	return LM_CLI_EXIT_OK;
}

/* ---- the match phase ---------------------------------------------------------- */

static int
match_open(worker *w)
{
	const lm_config *cfg = w->b->cfg;
	lm_client_opts o;

	memset(&o, 0, sizeof(o));
	o.tls_cert = cfg->tls_cert;
	o.tls_key = cfg->tls_key;
	o.tls_ca = cfg->tls_ca;
	o.default_timeout_ms = w->b->timeout_ms;
	o.caller = "lunamatch-bench"; /* recorded by the service's decision log */
	return lm_client_open(cfg->rpc_url, &o, &w->client);
}

static int
match_call(worker *w)
{
	bench *b = w->b;
	ProtobufCMessage *resp = NULL;
	const char *method;
	char errmsg[256];
	int status = LUNAMATCH__V1__STATUS_CODE__INTERNAL, rc;
	size_t reqlen;

	if (b->jobs) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = (char *) random_id(w);
		req.top_k = b->top;
		req.explain = b->explain;
		method = "MatchJobs";
		reqlen =
		    lm_client_request_size(w->client, method, &req.base, b->timeout_ms);
		rc = lm_client_call(w->client, method, &req.base,
		    &lunamatch__v1__match_jobs_response__descriptor, b->timeout_ms, &resp,
		    &status, errmsg, sizeof(errmsg));
	} else {
		Lunamatch__V1__MatchCandidatesRequest req =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = (char *) random_id(w);
		req.top_k = b->top;
		req.explain = b->explain;
		method = "MatchCandidates";
		reqlen =
		    lm_client_request_size(w->client, method, &req.base, b->timeout_ms);
		rc = lm_client_call(w->client, method, &req.base,
		    &lunamatch__v1__match_candidates_response__descriptor, b->timeout_ms,
		    &resp, &status, errmsg, sizeof(errmsg));
	}
	w->answered = rc == LM_OK;
	if (rc == LM_OK && status == LUNAMATCH__V1__STATUS_CODE__OK) {
		/* The response envelope adds the request id and the code to the
		 * payload: a few bytes, counted as 24. */
		w->req_bytes += reqlen;
		w->resp_bytes += protobuf_c_message_get_packed_size(resp) + 24;
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	if (status < 0 || status >= STATUS_CODES)
		status = LUNAMATCH__V1__STATUS_CODE__UNKNOWN;
	return rc == LM_OK ? status
	                   : (status ? status : LUNAMATCH__V1__STATUS_CODE__INTERNAL);
}

static void
match_close(worker *w)
{
	lm_client_close(w->client);
	w->client = NULL;
}

static const phase_ops match_ops = {match_open, match_call, match_close};

/* ---- the echo phase ------------------------------------------------------------ */

/* One context of the echo server: receive, resize to the reply size, send. */
typedef struct echo_ctx {
	nng_ctx ctx;
	nng_aio *aio;
	bool sending;
	size_t reply;
} echo_ctx;

typedef struct echo_server {
	nng_socket sock;
	echo_ctx *ctxs;
	unsigned n;
} echo_server;

/* Runs on an nng thread; never blocks. */
static void
echo_cb(void *arg)
{
	echo_ctx *e = arg;
	nng_msg *m;

	if (e->sending) {
		if (nng_aio_result(e->aio) != 0)
			nng_msg_free(nng_aio_get_msg(e->aio));
		e->sending = false;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	if (nng_aio_result(e->aio) != 0)
		return; /* closed */
	m = nng_aio_get_msg(e->aio);
	if (nng_msg_realloc(m, e->reply) != 0) {
		nng_msg_free(m);
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	nng_aio_set_msg(e->aio, m);
	e->sending = true;
	nng_ctx_send(e->ctx, e->aio);
}

static void
echo_stop(echo_server *s)
{
	nng_close(s->sock);
	for (unsigned i = 0; s->ctxs != NULL && i < s->n; i++)
		if (s->ctxs[i].aio != NULL)
			nng_aio_free(s->ctxs[i].aio);
	free(s->ctxs);
	s->ctxs = NULL;
}

/* Starts the echo server on an ephemeral port of 127.0.0.1 and writes its
 * URL to b->echo_url. */
static int
echo_start(bench *b, echo_server *s)
{
	nng_listener l;
	int port = 0, rv;

	memset(s, 0, sizeof(*s));
	if ((rv = nng_rep0_open(&s->sock)) != 0)
		return rv;
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, ECHO_MSG_MAX + 1024);
	if ((rv = nng_listen(s->sock, "tcp://127.0.0.1:0", &l, 0)) != 0 ||
	    (rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port)) != 0)
		goto fail;
	snprintf(b->echo_url, sizeof(b->echo_url), "tcp://127.0.0.1:%d", port);
	s->n = b->clients;
	if ((s->ctxs = calloc(s->n, sizeof(*s->ctxs))) == NULL) {
		rv = NNG_ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < s->n; i++) {
		echo_ctx *e = &s->ctxs[i];
		e->reply = b->echo_resp;
		if ((rv = nng_aio_alloc(&e->aio, echo_cb, e)) != 0 ||
		    (rv = nng_ctx_open(&e->ctx, s->sock)) != 0)
			goto fail;
		nng_ctx_recv(e->ctx, e->aio);
	}
	return 0;
fail:
	echo_stop(s);
	return rv;
}

static int
echo_open(worker *w)
{
	int rv;

	if ((rv = nng_req0_open(&w->sock)) != 0)
		return LM_ENNG;
	w->sock_open = true;
	nng_socket_set_ms(w->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(w->sock, NNG_OPT_RECVTIMEO, (nng_duration) w->b->timeout_ms);
	nng_socket_set_ms(w->sock, NNG_OPT_SENDTIMEO, (nng_duration) w->b->timeout_ms);
	nng_socket_set_size(w->sock, NNG_OPT_RECVMAXSZ, ECHO_MSG_MAX + 1024);
	if ((rv = nng_dial(w->sock, w->b->echo_url, NULL, 0)) != 0)
		return LM_ENNG;
	return LM_OK;
}

static int
echo_call(worker *w)
{
	nng_msg *m;
	size_t got;

	if (nng_msg_alloc(&m, w->b->echo_req) != 0)
		return LUNAMATCH__V1__STATUS_CODE__INTERNAL;
	memset(nng_msg_body(m), 'x', w->b->echo_req);
	w->answered = false;
	if (nng_sendmsg(w->sock, m, 0) != 0) {
		nng_msg_free(m);
		return LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE;
	}
	if (nng_recvmsg(w->sock, &m, 0) != 0)
		return LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED;
	w->answered = true;
	got = nng_msg_len(m);
	nng_msg_free(m);
	if (got != w->b->echo_resp)
		return LUNAMATCH__V1__STATUS_CODE__INTERNAL;
	w->req_bytes += w->b->echo_req;
	w->resp_bytes += got;
	return 0;
}

static void
echo_close(worker *w)
{
	if (w->sock_open)
		nng_close(w->sock);
	w->sock_open = false;
}

static const phase_ops echo_ops = {echo_open, echo_call, echo_close};

/* ---- running a phase ----------------------------------------------------------- */

/* True while the worker should make another measured call. */
static bool
more(bench *b)
{
	if (atomic_load(&b->stop))
		return false;
	if (lm_clock_ns() >= b->deadline_ns)
		return false;
	return b->count == 0 || atomic_fetch_add(&b->issued, 1) < b->count;
}

static void
record(worker *w, uint64_t ns)
{
	if (w->nlat == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4096;
		uint64_t *p;
		if (cap > SAMPLES_MAX / w->b->clients ||
		    (p = realloc(w->lat, cap * sizeof(*p))) == NULL) {
			w->untimed++;
			return;
		}
		w->lat = p;
		w->cap = cap;
	}
	w->lat[w->nlat++] = ns;
}

static void *
worker_main(void *arg)
{
	worker *w = arg;
	bench *b = w->b;

	w->open_rc = b->ops->open(w);
	for (uint64_t i = 0;
	     w->open_rc == LM_OK && i < b->warmup && !atomic_load(&b->stop); i++) {
		int st = b->ops->call(w);
		if (!w->answered &&
		    (st == LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE ||
		        st == LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED)) {
			w->warm_status = st;
			atomic_store(&b->stop, true);
		}
	}
	w->req_bytes = w->resp_bytes = 0; /* sizes of measured calls only */
	pthread_mutex_lock(&b->mu);
	b->ready++;
	pthread_cond_broadcast(&b->cv);
	while (!b->go)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	while (w->open_rc == LM_OK && more(b)) {
		uint64_t t0 = lm_clock_ns();
		int st = b->ops->call(w);
		uint64_t t1 = lm_clock_ns();
		w->calls++;
		w->codes[st]++;
		if (st == 0)
			record(w, t1 - t0);
	}
	b->ops->close(w);
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), in ms. */
static double
pct(const uint64_t *v, size_t n, double p)
{
	size_t r;

	if (n == 0)
		return 0;
	r = (size_t) (p / 100.0 * (double) n + 0.999999);
	if (r < 1)
		r = 1;
	return (double) v[(r > n ? n : r) - 1] / 1e6;
}

/* Runs one phase with b->clients workers and summarizes it into r. */
static int
run_phase(bench *b, const phase_ops *ops, const char *name, result *r)
{
	uint64_t t0, t1, *all = NULL;
	size_t n = 0;
	double sum = 0;
	unsigned started = 0;
	int rv = LM_CLI_EXIT_OK;

	memset(r, 0, sizeof(*r));
	r->name = name;
	b->ops = ops;
	atomic_store(&b->issued, 0);
	atomic_store(&b->stop, false);
	b->ready = 0;
	b->go = false;
	if ((b->w = calloc(b->clients, sizeof(*b->w))) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}
	for (unsigned i = 0; i < b->clients; i++) {
		worker *w = &b->w[i];
		w->b = b;
		w->rng = (b->seed + 1) * 0x9e3779b97f4a7c15ull + i + 1;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			break;
		started++;
	}
	/* Every client connected and warm: the clock starts for all at once. */
	pthread_mutex_lock(&b->mu);
	while (b->ready < started)
		pthread_cond_wait(&b->cv, &b->mu);
	if (started < b->clients)
		atomic_store(&b->stop, true);
	t0 = lm_clock_ns();
	b->deadline_ns = t0 + (b->count > 0 ? b->limit_s : b->duration_s) * 1000000000ull;
	b->go = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(b->w[i].thread, NULL);
	t1 = lm_clock_ns();
	if (started < b->clients) {
		lm_cli_error(CMD, "cannot start %u client threads", b->clients);
		rv = LM_CLI_EXIT_FAIL;
	}

	for (unsigned i = 0; i < b->clients; i++) {
		worker *w = &b->w[i];
		if (w->warm_status != 0 && rv == LM_CLI_EXIT_OK) {
			lm_cli_error(CMD,
			    "%s: server unreachable: a warm-up call failed with %s "
			    "(see --url and --timeout-ms)",
			    name, lm_rpc_status_name(w->warm_status));
			rv = LM_CLI_EXIT_UNAVAILABLE;
		}
		if (w->open_rc != LM_OK && rv == LM_CLI_EXIT_OK) {
			/* A URL the client refuses is a usage error, as for every
			 * other command (lm_cli_client_open). */
			lm_cli_error(
			    CMD, "%s: cannot connect: %s", name, lm_strerror(w->open_rc));
			rv = w->open_rc == LM_EINVAL ? LM_CLI_EXIT_USAGE
			                             : LM_CLI_EXIT_FAIL;
		}
		r->calls += w->calls;
		r->untimed += w->untimed;
		for (int c = 0; c < STATUS_CODES; c++)
			r->codes[c] += w->codes[c];
		r->req_bytes += (double) w->req_bytes;
		r->resp_bytes += (double) w->resp_bytes;
		n += w->nlat;
	}
	r->ok = r->codes[0];
	r->errors = r->calls - r->ok;
	r->limited = b->count > 0 && r->calls < b->count;
	r->seconds = (double) (t1 - t0) / 1e9;
	r->qps = r->seconds > 0 ? (double) r->ok / r->seconds : 0;
	if (r->ok > 0) {
		r->req_bytes /= (double) r->ok;
		r->resp_bytes /= (double) r->ok;
	}
	if (n > 0 && (all = malloc(n * sizeof(*all))) != NULL) {
		size_t k = 0;
		for (unsigned i = 0; i < b->clients; i++) {
			if (b->w[i].nlat == 0)
				continue; /* lat may be NULL: no call of this client ended
				             OK */
			memcpy(all + k, b->w[i].lat, b->w[i].nlat * sizeof(*all));
			k += b->w[i].nlat;
		}
		qsort(all, n, sizeof(*all), cmp_u64);
		for (size_t i = 0; i < n; i++)
			sum += (double) all[i];
		r->mean = sum / (double) n / 1e6;
		r->p50 = pct(all, n, 50);
		r->p90 = pct(all, n, 90);
		r->p99 = pct(all, n, 99);
		r->max = (double) all[n - 1] / 1e6;
	}
	free(all);
	for (unsigned i = 0; i < b->clients; i++)
		free(b->w[i].lat);
	free(b->w);
	b->w = NULL;
	return rv;
}

/* ---- output ------------------------------------------------------------------- */

static json_t *
result_json(const result *r)
{
	json_t *o =
	    json_pack("{s:s, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
	        "name", r->name, "seconds", r->seconds, "calls", (json_int_t) r->calls,
	        "ok", (json_int_t) r->ok, "errors", (json_int_t) r->errors, "qps", r->qps,
	        "mean_ms", r->mean, "p50_ms", r->p50, "p90_ms", r->p90, "p99_ms", r->p99,
	        "max_ms", r->max, "request_bytes", r->req_bytes, "response_bytes",
	        r->resp_bytes);
	json_t *codes = json_object();

	for (int c = 1; c < STATUS_CODES; c++)
		if (r->codes[c] > 0)
			json_object_set_new(codes, lm_rpc_status_name(c),
			    json_integer((json_int_t) r->codes[c]));
	json_object_set_new(o, "errors_by_code", codes);
	if (r->untimed > 0)
		json_object_set_new(o, "untimed", json_integer((json_int_t) r->untimed));
	json_object_set_new(o, "time_limited", json_boolean(r->limited));
	return o;
}

static void
print_row(const result *r)
{
	printf("%-16s %9" PRIu64 " %7" PRIu64
	       " %9.1f %8.3f %8.3f %8.3f %8.3f %8.0f %8.0f\n",
	    r->name, r->calls, r->errors, r->qps, r->p50, r->p90, r->p99, r->max,
	    r->req_bytes, r->resp_bytes);
}

static void
print_errors(const bench *b, const result *r)
{
	if (r->limited)
		printf("  %s stopped by --time-limit %" PRIu64 " after %" PRIu64
		       " of %" PRIu64 " calls\n",
		    r->name, b->limit_s, r->calls, b->count);
	for (int c = 1; c < STATUS_CODES; c++)
		if (r->codes[c] > 0)
			printf("  %s errors: %" PRIu64 " %s\n", r->name, r->codes[c],
			    lm_rpc_status_name(c));
}

/* print_errors for a phase in which no call succeeded: part of the
 * error, so on standard error (standard output stays empty, also with
 * --json). */
static void
error_counts(const bench *b, const result *r)
{
	if (r->limited)
		lm_cli_error(CMD,
		    "%s stopped by --time-limit %" PRIu64 " after %" PRIu64 " of %" PRIu64
		    " calls",
		    r->name, b->limit_s, r->calls, b->count);
	for (int c = 1; c < STATUS_CODES; c++)
		if (r->codes[c] > 0)
			lm_cli_error(CMD, "%s errors: %" PRIu64 " %s", r->name,
			    r->codes[c], lm_rpc_status_name(c));
}

static const char *
level_name(Lunamatch__V1__ExplainLevel l)
{
	return l == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE      ? "NONE"
	       : l == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL    ? "FULL"
	       : l == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY ? "SUMMARY"
	                                                                  : "UNSPECIFIED";
}

static int
report(const bench *b, const result *m, const result *e)
{
	double rp50 = e && e->p50 > 0 ? m->p50 / e->p50 : 0;
	double rp99 = e && e->p99 > 0 ? m->p99 / e->p99 : 0;
	double rqps = e && e->qps > 0 ? m->qps / e->qps : 0;

	if (b->cfg->json) {
		json_t *o =
		    json_pack("{s:s, s:s, s:i, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o}",
		        "url", b->cfg->rpc_url, "method", m->name, "top_k", (int) b->top,
		        "explain", level_name(b->explain), "clients", (int) b->clients,
		        "duration_s", (json_int_t) (b->count ? 0 : b->duration_s),
		        "count", (json_int_t) b->count, "warmup", (json_int_t) b->warmup,
		        "time_limit_s", (json_int_t) (b->count ? b->limit_s : 0),
		        "stored_ids", (json_int_t) b->nids, "match", result_json(m));
		int rc;
		if (o == NULL) {
			lm_cli_error(CMD, "out of memory");
			return LM_CLI_EXIT_FAIL;
		}
		if (e != NULL) {
			json_object_set_new(o, "echo", result_json(e));
			json_object_set_new(o, "ratio",
			    json_pack("{s:f, s:f, s:f}", "p50", rp50, "p99", rp99, "qps",
			        rqps));
		}
		rc = lm_cli_json_line(stdout, o);
		json_decref(o);
		if (rc != 0) {
			lm_cli_error(CMD, "cannot write to standard output");
			return LM_CLI_EXIT_FAIL;
		}
		return LM_CLI_EXIT_OK;
	}
	printf("%s top_k %u explain %s, %u clients, ", m->name, b->top,
	    level_name(b->explain), b->clients);
	if (b->count)
		printf("%" PRIu64 " calls", b->count);
	else
		printf("%" PRIu64 " s", b->duration_s);
	printf(" per phase, %zu stored %s to choose from\n\n", b->nids,
	    b->jobs ? "profiles" : "postings");
	printf("%-16s %9s %7s %9s %8s %8s %8s %8s %8s %8s\n", "phase", "calls", "errors",
	    "q/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "req B", "resp B");
	print_row(m);
	if (e != NULL)
		print_row(e);
	print_errors(b, m);
	if (e != NULL) {
		print_errors(b, e);
		printf("\nmatch / echo: p50 %.1fx, p99 %.1fx, q/s %.3fx\n", rp50, rp99,
		    rqps);
	}
	return lm_cli_stdout_written(CMD);
}

/* ---- the command -------------------------------------------------------------- */

int
lm_cli_bench(const lm_config *cfg, int argc, char **argv)
{
	bench b;
	result m, e;
	echo_server es;
	bool echo = true, have_duration = false, have_limit = false;
	uint64_t v;
	int c, rv;

	memset(&b, 0, sizeof(b));
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	b.cfg = cfg;
	b.clients = 16;
	b.duration_s = 10;
	b.top = 10;
	b.warmup = 5;
	b.limit_s = LIMIT_DEFAULT;
	b.seed = 1;
	b.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
	b.timeout_ms = cfg->default_timeout_ms;
	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_bench_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_CLIENTS:
			if (!lm_textfile_whole(optarg, 1, CLIENTS_MAX, &v))
				return lm_cli_usage_error(CMD,
				    "--clients: \"%s\" is not a number in 1..%d", optarg,
				    CLIENTS_MAX);
			b.clients = (unsigned) v;
			break;
		case OPT_DURATION:
			if (!lm_textfile_whole(optarg, 1, DURATION_MAX, &b.duration_s))
				return lm_cli_usage_error(CMD,
				    "--duration: \"%s\" is not a number in 1..%d", optarg,
				    DURATION_MAX);
			have_duration = true;
			break;
		case OPT_COUNT:
			if (!lm_textfile_whole(optarg, 1, COUNT_MAX, &b.count))
				return lm_cli_usage_error(CMD,
				    "--count: \"%s\" is not a number in 1..%d", optarg,
				    COUNT_MAX);
			break;
		case OPT_TOP:
			if (!lm_textfile_whole(optarg, 1, 1000, &v))
				return lm_cli_usage_error(CMD,
				    "--top: \"%s\" is not a number in 1..1000", optarg);
			b.top = (uint32_t) v;
			break;
		case OPT_EXPLAIN:
			if (!lm_cli_parse_explain(optarg, &b.explain))
				return lm_cli_usage_error(CMD,
				    "--explain: \"%s\" is not none, summary or full",
				    optarg);
			break;
		case OPT_WARMUP:
			if (!lm_textfile_whole(optarg, 0, WARMUP_MAX, &b.warmup))
				return lm_cli_usage_error(CMD,
				    "--warmup: \"%s\" is not a number in 0..%d", optarg,
				    WARMUP_MAX);
			break;
		case OPT_SEED:
			if (!lm_textfile_whole(optarg, 0, UINT64_MAX, &b.seed))
				return lm_cli_usage_error(
				    CMD, "--seed: \"%s\" is not a number", optarg);
			break;
		case OPT_NO_ECHO:
			echo = false;
			break;
		case OPT_TIMEOUT:
			if (!lm_textfile_whole(optarg, 1, 600000, &v))
				return lm_cli_usage_error(CMD,
				    "--timeout-ms: \"%s\" is not a number in 1..600000",
				    optarg);
			b.timeout_ms = (unsigned) v;
			break;
		case OPT_TIME_LIMIT:
			if (!lm_textfile_whole(optarg, 1, LIMIT_MAX, &b.limit_s))
				return lm_cli_usage_error(CMD,
				    "--time-limit: \"%s\" is not a number in 1..%d",
				    optarg, LIMIT_MAX);
			have_limit = true;
			break;
		default:
			return lm_cli_usage_error(CMD, "bad option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1)
		return lm_cli_usage_error(CMD, "give one of jobs or candidates");
	b.jobs = strcmp(argv[0], "jobs") == 0;
	if (!b.jobs && strcmp(argv[0], "candidates") != 0)
		return lm_cli_usage_error(
		    CMD, "unknown subcommand \"%s\": jobs or candidates", argv[0]);
	if (have_duration && b.count > 0)
		return lm_cli_usage_error(
		    CMD, "--duration and --count exclude each other");
	if (have_limit && b.count == 0)
		return lm_cli_usage_error(CMD, "--time-limit applies to --count only");

	if ((rv = load_ids(&b)) != LM_CLI_EXIT_OK)
		goto out;
	rv = run_phase(&b, &match_ops, b.jobs ? "MatchJobs" : "MatchCandidates", &m);
	if (rv != LM_CLI_EXIT_OK)
		goto out;
	if (m.ok == 0) {
		lm_cli_error(CMD, "%s: no call succeeded (%" PRIu64 " errors)",
		    cfg->rpc_url, m.errors);
		error_counts(&b, &m);
		rv = LM_CLI_EXIT_UNAVAILABLE;
		goto out;
	}
	if (echo) {
		b.echo_req = (size_t) (m.req_bytes + 0.5);
		b.echo_resp = (size_t) (m.resp_bytes + 0.5);
		if (b.echo_resp > ECHO_MSG_MAX)
			b.echo_resp = ECHO_MSG_MAX;
		if ((v = (uint64_t) echo_start(&b, &es)) != 0) {
			lm_cli_error(CMD, "echo server: %s", nng_strerror((int) v));
			rv = LM_CLI_EXIT_FAIL;
			goto out;
		}
		rv = run_phase(&b, &echo_ops, "nng echo", &e);
		echo_stop(&es);
		if (rv != LM_CLI_EXIT_OK)
			goto out;
		/* Without an answered echo call there is no transport cost to
		 * compare with: ratios of 0 would read as a match phase faster
		 * than its transport. */
		if (e.ok == 0) {
			lm_cli_error(CMD,
			    "nng echo: no call succeeded (%" PRIu64 " errors)", e.errors);
			error_counts(&b, &e);
			rv = LM_CLI_EXIT_FAIL;
			goto out;
		}
	}
	rv = report(&b, &m, echo ? &e : NULL);
	if (rv == LM_CLI_EXIT_OK &&
	    ((m.limited && m.errors > 0) || (echo && e.limited && e.errors > 0))) {
		lm_cli_error(CMD,
		    "--time-limit %" PRIu64 " s ended the run with failed calls",
		    b.limit_s);
		rv = LM_CLI_EXIT_FAIL;
	}
out:
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.mu);
	free(b.idbuf);
	free(b.ids);
	return rv;
}
