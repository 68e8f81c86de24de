/*
 * main.c - lunamatch-match, the match service daemon.
 *
 * Wires the parts together: configuration, the scoring model and data files,
 * the record store (opened read-write so that it may start before ingest has
 * created it; it only reads), the in-memory index and its change follower,
 * new-match events (outbox + Kafka sender), the MatchService RPC server and
 * the operations HTTP server (/healthz, /readyz, /metrics).
 *
 * Start-up order: the RPC and HTTP servers listen before the index is
 * loaded, answering NOT_SERVING / UNAVAILABLE until the follower has loaded
 * the store snapshot. SIGTERM, SIGINT or SIGHUP (there is no configuration
 * reload) drains: the server reports
 * NOT_SERVING, stops listening and answers what it has accepted; then the
 * follower stops and the events sender gets a bounded time to flush. A
 * second stop signal, or a stop that outlasts STOP_MAX_MS, ends the process
 * at once with status 1.
 *
 * Liveness: nng 1.5.2 listeners can stop accepting (nng #1518), which no
 * local state reveals. A probe thread dials the RPC port every
 * PROBE_PERIOD_MS with lm_rpc_server_probe (which restarts a dead listener
 * once) and caches the outcome; /healthz reads the cache.
 *
 * Exit status: 0 after a stop that ran its course (and for --help,
 * --version), also when the drain timed out and dropped requests (logged,
 * match.drain); 1 when a runtime resource fails (store, port in use, TLS
 * files) or a stop is cut short (a second signal, STOP_MAX_MS passed); 2 for invalid
 * configuration (bad option or value, unreadable data or model file).
 * Nothing is written to stdout except --help and --version; logs go to
 * stderr as JSON lines.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "decisions.h"
#include "events.h"
#include "follower.h"
#include "index.h"
#include "lunamatch/clock.h"
#include "lunamatch/config.h"
#include "lunamatch/dirlock.h"
#include "lunamatch/error.h"
#include "lunamatch/fdlimit.h"
#include "lunamatch/http.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"
#include "lunamatch/metrics.h"
#include "lunamatch/rpc.h"
#include "lunamatch/record.h"
#include "lunamatch/salary.h"
#include "lunamatch/store.h"
#include "lunamatch/taxonomy.h"
#include "lunamatch/v1/match.pb-c.h"
#include "model.h"
#include "owner.h"
#include "rpc_server.h"
#include "service.h"

#define PROG              "lunamatch-match"
#define HTTP_ADDR_DEFAULT "127.0.0.1:7701"
#define PROBE_PERIOD_MS   3000u  /* self-probe of the RPC listener */
#define PROBE_TIMEOUT_MS  2000u  /* one probe's wait for an answer */
#define DRAIN_TIMEOUT_MS  10000u /* in-flight requests get this long at shutdown */
/* How long shutdown waits for the probe thread: a probe's longest run (a
 * probe, a listener restart and a second probe) and a second to spare. */
#define PROBE_JOIN_MS (2 * PROBE_TIMEOUT_MS + 1000u)
/* A probe that has not completed for this long is stuck: /healthz fails, so
 * that the orchestrator restarts the process (a normal gap is a period plus
 * the longest run, about 7 s). */
#define PROBE_STALE_MS  15000
#define EVENTS_FLUSH_MS 5000 /* events in flight get this long at shutdown */
/* The whole stop, from the signal to the exit: after the manifests' 5 s
 * preStop pause, within their 40 s grace with room to spare (and within
 * Kubernetes' default 30 s without the pause). Its steps are bounded but one (the event
 * owners' last commits and group leaves, which librdkafka bounds only by
 * its own timeouts when the broker is away); past this the process exits
 * 1 at once, which loses nothing (see docs/operations.md, "Stopping"). */
#define STOP_MAX_MS 25000

#define EXIT_RUNTIME 1
#define EXIT_CONFIG  2

/* Everything the daemon holds; the metric and health callbacks read it. */
struct daemon {
	lm_config cfg;
	lm_taxonomy *tax;
	lm_rates *rates;
	lm_model *model;
	lm_metrics *metrics;
	lm_store *store;
	lm_dirlock *lock;                           /* the data directory's match.lock */
	char reader_id[LM_STORE_READER_ID_MAX + 1]; /* our position's name */
	lm_index *idx;
	lm_events *events;
	lm_owner *owner;
	/* Guards owner against the follower's on_applied, which wakes it from
	 * the follower's thread while shutdown_all frees it. */
	pthread_mutex_t owner_mtx;
	lm_decisions *decisions; /* NULL: LUNAMATCH_DECISION_LOG=0 */
	lm_record_ctx rctx;
	lm_match_service *svc;
	lm_rpc_server *srv;
	lm_follower *follower;
	lm_http *http;

	/* Self-probe thread and its cached verdict. */
	pthread_t probe_thread;
	bool probe_started;
	pthread_mutex_t probe_mtx;
	pthread_cond_t probe_cv;
	bool probe_stop;
	bool probe_done;         /* the thread is leaving (probe_mtx) */
	bool probe_stuck;        /* left behind at shutdown: d->srv stays allocated */
	atomic_int probe_result; /* last lm_rpc_server_probe result */
	atomic_llong probe_at;   /* when it was taken, Unix seconds */
	/* lm_clock_ms when the last probe completed; 0 before the first and
	 * after the probe was stopped (no staleness then). */
	atomic_llong probe_done_ms;
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "Usage: " PROG " [options]\n"
	    "Serves ranked, explained matches between job postings and candidate\n"
	    "profiles over nng (lunamatch.v1.MatchService), follows the record store\n"
	    "that lunamatch-ingest writes, and publishes new-match events to Kafka.\n"
	    "Health and metrics: http://<--http>/healthz, /readyz, /metrics.\n"
	    "Stops gracefully on SIGTERM, SIGINT or SIGHUP.\n\n");
	lm_config_usage(out, LM_PROG_MATCH);
}

/* ---- health ------------------------------------------------------------ */

/* Whether the RPC listener is alive by its self-probe: LM_OK, or why not
 * in reason (a probe stuck past PROBE_STALE_MS, or the last one failed).
 * /healthz and lunamatch_rpc_probe_ok both read it. */
static int
probe_alive(struct daemon *d, char *reason, size_t len)
{
	long long done = atomic_load(&d->probe_done_ms);
	int r;

	if (done > 0 && lm_clock_ms() - done > PROBE_STALE_MS) {
		snprintf(reason, len, "rpc listener self-probe stuck for %lld ms",
		    (long long) (lm_clock_ms() - done));
		return LM_ETIMEDOUT;
	}
	r = atomic_load(&d->probe_result);
	/* A probe that connected but timed out means the workers are busy; the
	 * listener is alive. */
	if (r == LM_OK || r == LM_ETIMEDOUT)
		return LM_OK;
	snprintf(reason, len, "rpc listener probe failed: %s", lm_strerror(r));
	return r;
}

static int
check_live(void *arg, char *reason, size_t len)
{
	int r;

	if ((r = lm_lmdb_check_live(reason, len)) != LM_OK)
		return r;
	return probe_alive(arg, reason, len);
}

static int
check_ready(void *arg, char *reason, size_t len)
{
	struct daemon *d = arg;

	if (!lm_match_service_loaded(d->svc)) {
		snprintf(reason, len, "index loading");
		return LM_EBUSY;
	}
	if (!lm_match_service_serving(d->svc)) {
		snprintf(reason, len, "draining");
		return LM_ECLOSED;
	}
	if (lm_rpc_server_full(d->srv)) {
		snprintf(reason, len, "RPC connections full: new clients are refused");
		return LM_EBUSY;
	}
	if (lm_events_outbox_failing(d->events)) {
		snprintf(reason, len, "event outbox writes failing");
		return LM_EIO;
	}
	if (d->decisions != NULL && !lm_decisions_healthy(d->decisions)) {
		snprintf(reason, len, "decision log writes failing");
		return LM_EIO;
	}
	return check_live(arg, reason, len);
}

static void *
probe_main(void *arg)
{
	struct daemon *d = arg;
	struct timespec ts;

	pthread_mutex_lock(&d->probe_mtx);
	while (!d->probe_stop) {
		ts = lm_clock_deadline(PROBE_PERIOD_MS);
		while (!d->probe_stop && pthread_cond_timedwait(&d->probe_cv,
		                             &d->probe_mtx, &ts) != ETIMEDOUT)
			;
		if (d->probe_stop)
			break;
		pthread_mutex_unlock(&d->probe_mtx);
		int r = lm_rpc_server_probe(d->srv, PROBE_TIMEOUT_MS);
		int prev = atomic_exchange(&d->probe_result, r);
		atomic_store(&d->probe_at, (long long) time(NULL));
		if (r != prev && r != LM_OK && r != LM_ETIMEDOUT)
			lm_error("match.probe", "rpc listener self-probe failed: %s",
			    lm_strerror(r));
		else if (r != prev && (prev != LM_OK && prev != LM_ETIMEDOUT))
			lm_info("match.probe", "rpc listener self-probe answered again");
		pthread_mutex_lock(&d->probe_mtx);
		if (!d->probe_stop) /* a stop has cleared it for good */
			atomic_store(&d->probe_done_ms, (long long) lm_clock_ms());
	}
	d->probe_done = true;
	pthread_cond_broadcast(&d->probe_cv);
	pthread_mutex_unlock(&d->probe_mtx);
	return NULL;
}

static void
probe_stop(struct daemon *d)
{
	if (!d->probe_started)
		return;
	struct timespec ts;
	bool done;

	pthread_mutex_lock(&d->probe_mtx);
	d->probe_stop = true;
	atomic_store(&d->probe_done_ms, 0); /* stopping: not a stuck probe */
	pthread_cond_broadcast(&d->probe_cv);
	ts = lm_clock_deadline(PROBE_JOIN_MS);
	while (!d->probe_done &&
	       pthread_cond_timedwait(&d->probe_cv, &d->probe_mtx, &ts) != ETIMEDOUT)
		;
	done = d->probe_done;
	pthread_mutex_unlock(&d->probe_mtx);
	if (done) {
		pthread_join(d->probe_thread, NULL);
	} else {
		/* nng 1.5.2's nng_close can block for good (nng #1543), seen on
		 * the probe's own REQ socket after the process was stopped
		 * (SIGSTOP) and continued. Waiting for it would hold the stop
		 * past any grace period: the thread is left behind, and what
		 * it may still touch (the RPC server, the metrics) is not
		 * freed (shutdown_all). */
		pthread_detach(d->probe_thread);
		d->probe_stuck = true;
		lm_warn("match.stop",
		    "the RPC self-probe has not returned after %u ms (nng_close can "
		    "hang in nng 1.5.2); stopping without it",
		    PROBE_JOIN_MS);
	}
	d->probe_started = false;
}

/* ---- metrics ------------------------------------------------------------- */

/* The index counts and follower stats behind the gauges, read afresh. */
static lm_index_counts
counts_of(void *arg)
{
	struct daemon *d = arg;
	lm_index_counts c;
	lm_index_counts_get(d->idx, &c);
	return c;
}

static lm_follower_stats
follower_stats_of(void *arg)
{
	struct daemon *d = arg;
	lm_follower_stats st;
	lm_follower_stats_get(d->follower, &st);
	return st;
}

static double
g_postings(void *arg)
{
	return (double) counts_of(arg).postings;
}

static double
g_open_postings(void *arg)
{
	return (double) counts_of(arg).open_postings;
}

static double
g_profiles(void *arg)
{
	return (double) counts_of(arg).profiles;
}

static double
g_bytes(void *arg)
{
	lm_follower_stats st = follower_stats_of(arg);
	return (double) lm_follower_index_bytes(&st);
}

static double
g_seq(void *arg)
{
	struct daemon *d = arg;
	return (double) lm_index_seq(d->idx);
}

static double
g_loaded(void *arg)
{
	struct daemon *d = arg;
	return lm_match_service_loaded(d->svc) ? 1.0 : 0.0;
}

static uint64_t
c_follower_errors(void *arg)
{
	return follower_stats_of(arg).errors;
}

static uint64_t
c_follower_reloads(void *arg)
{
	return follower_stats_of(arg).reloads;
}

static double
g_probe_ok(void *arg)
{
	char reason[128];
	return probe_alive(arg, reason, sizeof(reason)) == LM_OK ? 1.0 : 0.0;
}

static double
g_owned(void *arg)
{
	struct daemon *d = arg;
	lm_owner_stats st;
	lm_owner_stats_get(d->owner, &st);
	return (double) st.partitions;
}

static double
g_joined(void *arg)
{
	struct daemon *d = arg;
	lm_owner_stats st;
	lm_owner_stats_get(d->owner, &st);
	return (double) st.joined;
}

static uint64_t
c_entries(void *arg)
{
	return counts_of(arg).entries;
}

static uint64_t
c_reached(void *arg)
{
	return counts_of(arg).reached;
}

static uint64_t
c_scored(void *arg)
{
	return counts_of(arg).scored;
}

static uint64_t
c_reshares(void *arg)
{
	return counts_of(arg).reshares;
}

static uint64_t
c_damaged(void *arg)
{
	return counts_of(arg).damaged;
}

static void
register_metrics(struct daemon *d)
{
	static const struct {
		const char *name, *help;
		double (*fn)(void *);
	} gauges[] = {
	    {"lunamatch_index_postings", "postings in the index, closed ones included",
	        g_postings},
	    {"lunamatch_index_open_postings", "open, unexpired postings in the index",
	        g_open_postings},
	    {"lunamatch_index_profiles", "profiles in the index", g_profiles},
	    {"lunamatch_index_bytes",
	        "approximate memory of the index, estimated from the serialized records",
	        g_bytes},
	    {"lunamatch_index_seq", "change-log seq the index reflects", g_seq},
	    {"lunamatch_index_loaded", "1 once the store snapshot is loaded", g_loaded},
	    {"lunamatch_rpc_probe_ok",
	        "1 when the RPC listener's self-probe finds it alive (as /healthz): "
	        "0 when the last probe failed or none has completed for 15 s",
	        g_probe_ok},
	    {"lunamatch_events_owned_partitions",
	        "partitions of the postings and profiles topics whose events this "
	        "replica derives",
	        g_owned},
	    {"lunamatch_events_owner_joined",
	        "members of this replica in the events group: 2 once ingest has "
	        "caught up, 0 before",
	        g_joined},
	};

	/* What queries read: per query, the work the engine did (divide by
	 * lunamatch_rpc_requests_total); bench_index reports the same counts. */
	static const struct {
		const char *name, *help;
		uint64_t (*fn)(void *);
	} counters[] = {
	    {"lunamatch_index_entries_read_total",
	        "inverted-list entries that queries read", c_entries},
	    {"lunamatch_index_records_reached_total",
	        "records whose veto keys queries read", c_reached},
	    {"lunamatch_index_pairs_scored_total",
	        "pairs that queries scored in full (the rest were pruned)", c_scored},
	    {"lunamatch_index_reshares_total",
	        "idf snapshots taken after updates (every posting's list shares "
	        "computed again, aside)",
	        c_reshares},
	    {"lunamatch_index_damaged_total",
	        "reads of a stored record an answer needs that found it damaged (its "
	        "bytes do not decode): left out of a match list, or the call failed "
	        "with DATA_LOSS",
	        c_damaged},
	    {"lunamatch_follower_errors_total",
	        "change-log and stored-record reads that failed, and records that "
	        "could not be decoded",
	        c_follower_errors},
	    {"lunamatch_follower_reloads_total",
	        "snapshots loaded again since start because the change log was trimmed "
	        "past the follower's position or held an entry that cannot be read",
	        c_follower_reloads},
	};

	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		if (lm_metrics_gauge_fn(d->metrics, gauges[i].name, gauges[i].help, NULL,
		        gauges[i].fn, d) != LM_OK)
			lm_warn("match.metrics", "cannot register %s", gauges[i].name);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (lm_metrics_counter_fn(d->metrics, counters[i].name, counters[i].help,
		        NULL, counters[i].fn, d) != LM_OK)
			lm_warn("match.metrics", "cannot register %s", counters[i].name);
}

/* ---- follower hooks --------------------------------------------------------- */

/* The index moved: a message the owner waits for may be visible now. */
static void
on_applied(void *arg, uint64_t seq)
{
	struct daemon *d = arg;
	(void) seq;
	pthread_mutex_lock(&d->owner_mtx);
	lm_owner_wake(d->owner);
	pthread_mutex_unlock(&d->owner_mtx);
}

static void
on_loaded(void *arg)
{
	struct daemon *d = arg;
	lm_match_service_set_loaded(d->svc, true);
}

/* ---- start-up ------------------------------------------------------------------ */

/* Resolves the data file that the variable var configures as file into
 * path; logs why not. Returns LM_OK or an lm_err. */
static int
data_path(const char *var, const char *file, char *path, size_t len)
{
	int rc = lm_config_data_file(file, path, len);
	if (rc != LM_OK)
		lm_error("match.config", "%s %s: %s", var, file, lm_strerror(rc));
	return rc;
}

/* Logs the error err of the load of what when rc is not LM_OK; returns rc. */
static int
load_result(int rc, const char *what, const char *err)
{
	if (rc != LM_OK)
		lm_error("match.config", "%s: %s", what, err);
	return rc;
}

/* Loads taxonomy, rates and model. Returns 0 or an exit status. */
static int
load_data(struct daemon *d)
{
	char path[LM_CFG_STR + 64], err[1024];

	if (data_path("LUNAMATCH_TAXONOMY_FILE", d->cfg.taxonomy_file, path,
	        sizeof(path)) != LM_OK ||
	    load_result(lm_taxonomy_load(path, &d->tax, err, sizeof(err)), "taxonomy",
	        err) != LM_OK ||
	    data_path("LUNAMATCH_RATES_FILE", d->cfg.rates_file, path, sizeof(path)) !=
	        LM_OK ||
	    load_result(lm_rates_load(path, &d->rates, err, sizeof(err)), "rates", err) !=
	        LM_OK ||
	    data_path("LUNAMATCH_MODEL_FILE", d->cfg.model_file, path, sizeof(path)) !=
	        LM_OK ||
	    load_result(lm_model_load(path, &d->model, err, sizeof(err)), "model", err) !=
	        LM_OK)
		return EXIT_CONFIG;
	lm_info("match.data", "taxonomy %s (%zu skills), rates %s, model %s",
	    lm_taxonomy_version(d->tax), lm_taxonomy_count(d->tax),
	    lm_rates_version(d->rates), d->model->version);
	return 0;
}

static int
start_events(struct daemon *d)
{
	lm_events_opts eo;
	int rc;

	if (d->cfg.event_top_n == 0) {
		lm_info("match.events",
		    "LUNAMATCH_EVENT_TOP_N is 0: new-match events are off");
		return LM_OK;
	}
	memset(&eo, 0, sizeof(eo));
	eo.brokers = d->cfg.brokers;
	eo.topic = d->cfg.topic_matches;
	eo.data_dir = d->cfg.data_dir;
	eo.client_id = "lunamatch-match";
	eo.min_score = d->cfg.event_min_score;
	eo.top_n = d->cfg.event_top_n;
	eo.metrics = d->metrics;
	eo.flush_timeout_ms = EVENTS_FLUSH_MS;
	if ((rc = lm_events_new(&eo, &d->events)) != LM_OK) {
		lm_error("match.events", "cannot set up events: %s", lm_strerror(rc));
		return rc;
	}
	/* The sender connects in the background: a broker that is down delays
	 * events, never serving. */
	if ((rc = lm_events_start(d->events)) != LM_OK) {
		lm_error("match.events", "cannot start the sender: %s", lm_strerror(rc));
		return rc;
	}
	lm_info("match.events", "events to %s on %s (min score %.2f, top %u)",
	    d->cfg.topic_matches, d->cfg.brokers, d->cfg.event_min_score,
	    d->cfg.event_top_n);
	return LM_OK;
}

/* The decision log: every MatchJobs and MatchCandidates answer is logged
 * before it is given (decisions.h), unless LUNAMATCH_DECISION_LOG is 0. */
static int
start_decisions(struct daemon *d)
{
	lm_decisions_opts o;
	int rc;

	if (d->cfg.decision_log == 0) {
		lm_warn("match.decisions",
		    "LUNAMATCH_DECISION_LOG is 0: answers are not recorded");
		return LM_OK;
	}
	memset(&o, 0, sizeof(o));
	o.brokers = d->cfg.brokers;
	o.topic = d->cfg.topic_decisions;
	o.data_dir = d->cfg.data_dir;
	o.metrics = d->metrics;
	o.sync_ms = d->cfg.decision_log_sync_ms;
	if ((rc = lm_decisions_new(&o, &d->decisions)) != LM_OK ||
	    (rc = lm_decisions_start(d->decisions)) != LM_OK) {
		lm_error("match.decisions", "cannot set up the decision log: %s",
		    lm_strerror(rc));
		return rc;
	}
	if (o.sync_ms > 0)
		lm_warn("match.decisions",
		    "LUNAMATCH_DECISION_LOG_SYNC_MS is %u: an answer is given once its "
		    "decision is written, before it is on disk",
		    o.sync_ms);
	lm_info("match.decisions", "decisions to %s on %s", d->cfg.topic_decisions,
	    d->cfg.brokers);
	return LM_OK;
}

/* The partition owner: derives the events of the records whose partitions
 * this replica owns in the events group. Created before the follower starts
 * (the follower's on_applied and the metrics read d->owner), started after
 * it. */
/* lm_owner_opts.index_loaded: d->follower is set before the owner starts
 * and freed after the owner. */
static bool
index_loaded(void *arg)
{
	struct daemon *d = arg;

	return d->follower != NULL && lm_follower_loaded(d->follower);
}

static int
new_owner(struct daemon *d)
{
	lm_owner_opts oo;
	int rc;

	if (d->events == NULL)
		return LM_OK;
	memset(&oo, 0, sizeof(oo));
	oo.brokers = d->cfg.brokers;
	oo.topic_postings = d->cfg.topic_postings;
	oo.topic_profiles = d->cfg.topic_profiles;
	oo.group_id = d->cfg.events_group_id;
	oo.ingest_group_id = d->cfg.group_id;
	oo.store = d->store;
	oo.index = d->idx;
	oo.events = d->events;
	oo.rctx = &d->rctx;
	oo.metrics = d->metrics;
	oo.index_loaded = index_loaded;
	oo.index_loaded_arg = d;
	if ((rc = lm_owner_new(&oo, &d->owner)) != LM_OK)
		lm_error("match.events", "cannot set up event derivation: %s",
		    lm_strerror(rc));
	return rc;
}

static int
start_owner(struct daemon *d)
{
	int rc;

	if (d->owner == NULL)
		return LM_OK;
	if ((rc = lm_owner_start(d->owner)) != LM_OK) {
		lm_error(
		    "match.events", "cannot start deriving events: %s", lm_strerror(rc));
		return rc;
	}
	lm_info("match.events",
	    "deriving the events of the partitions owned in group %s (ingest group "
	    "%s)",
	    d->cfg.events_group_id, d->cfg.group_id);
	return LM_OK;
}

static int
start_rpc(struct daemon *d)
{
	lm_rpc_server_opts so;
	const lm_rpc_method *methods;
	size_t n;
	char url[LM_CFG_STR + 64];
	int rc;

	memset(&so, 0, sizeof(so));
	so.url = d->cfg.rpc_url;
	so.contexts = d->cfg.rpc_contexts;
	so.workers = d->cfg.workers;
	so.max_request_bytes = d->cfg.max_request_bytes;
	so.default_timeout_ms = d->cfg.default_timeout_ms;
	so.idle_timeout_ms = d->cfg.rpc_idle_timeout_ms;
	so.max_connection_age_ms = d->cfg.rpc_max_connection_age_ms;
	so.send_timeout_ms = d->cfg.rpc_send_timeout_ms;
	so.max_connections = d->cfg.rpc_max_connections;
	so.max_connections_per_peer = d->cfg.rpc_max_per_peer;
	so.receive_budget_bytes = (size_t) d->cfg.rpc_receive_budget;
	so.tls_cert = d->cfg.tls_cert;
	so.tls_key = d->cfg.tls_key;
	so.tls_ca = d->cfg.tls_ca;
	so.metrics = d->metrics;
	/* Every request a context received may wait for a worker: the contexts
	 * already bound how many are in the server at once, so a burst up to
	 * that size is queued rather than refused. */
	so.queue_len = d->cfg.rpc_contexts;
	methods = lm_match_service_methods(&n);
	if ((rc = lm_rpc_server_new(&so, &lunamatch__v1__match_service__descriptor,
	         methods, n, d->svc, &d->srv)) != LM_OK) {
		lm_error(
		    "match.rpc", "cannot set up the RPC server: %s", lm_strerror(rc));
		return rc;
	}
	lm_match_service_set_server(d->svc, d->srv);
	if ((rc = lm_rpc_server_start(d->srv)) != LM_OK) {
		lm_error("match.rpc", "cannot listen on %s: %s", d->cfg.rpc_url,
		    lm_strerror(rc));
		return rc;
	}
	if (lm_rpc_server_url(d->srv, url, sizeof(url)) == LM_OK)
		lm_info("match.rpc", "serving lunamatch.v1.MatchService on %s", url);
	/* First verdict before /healthz can be asked. */
	atomic_store(&d->probe_result, lm_rpc_server_probe(d->srv, PROBE_TIMEOUT_MS));
	atomic_store(&d->probe_at, (long long) time(NULL));
	atomic_store(&d->probe_done_ms, (long long) lm_clock_ms());
	if (pthread_create(&d->probe_thread, NULL, probe_main, d) != 0)
		return LM_ENOMEM;
	d->probe_started = true;
	return LM_OK;
}

static int
start_http(struct daemon *d)
{
	lm_http_opts ho;
	int rc;

	memset(&ho, 0, sizeof(ho));
	ho.addr = d->cfg.http_addr[0] != '\0' ? d->cfg.http_addr : HTTP_ADDR_DEFAULT;
	ho.metrics = d->metrics;
	ho.live = check_live;
	ho.ready = check_ready;
	ho.arg = d;
	ho.idle_timeout_s = d->cfg.http_idle_timeout_s;
	ho.max_connections = d->cfg.http_max_connections;
	ho.max_connections_per_peer = d->cfg.http_max_per_peer;
	if ((rc = lm_http_start(&ho, &d->http)) != LM_OK) {
		lm_error("match.http", "cannot serve health and metrics on %s: %s",
		    ho.addr, lm_strerror(rc));
		return rc;
	}
	lm_info("match.http", "health and metrics on http://%s (port %d)", ho.addr,
	    lm_http_port(d->http));
	return LM_OK;
}

/* Creates the follower (not started): the metrics read it from the start. */
static int
new_follower(struct daemon *d, char *notify, size_t len)
{
	lm_follower_opts fo;
	int rc;

	if ((rc = lm_config_notify_url(&d->cfg, notify, len)) != LM_OK) {
		lm_error("match.config", "LUNAMATCH_NOTIFY_URL: too long");
		return rc;
	}
	/* The position in the store is this process's own: a restarted
	 * process loads a snapshot anyway, and a crashed one's record expires
	 * after the reader lease. */
	char host[64] = "";
	(void) gethostname(host, sizeof(host) - 1);
	snprintf(
	    d->reader_id, sizeof(d->reader_id), "match@%s:%ld", host, (long) getpid());
	memset(&fo, 0, sizeof(fo));
	fo.store = d->store;
	fo.index = d->idx;
	fo.notify_url = notify;
	fo.reader_id = d->reader_id;
	fo.poll_ms = d->cfg.poll_ms;
	fo.on_loaded = on_loaded;
	fo.on_applied = on_applied;
	fo.arg = d;
	return lm_follower_new(&fo, &d->follower);
}

static int
start_follower(struct daemon *d, const char *notify)
{
	int rc;

	if ((rc = lm_follower_start(d->follower)) != LM_OK) {
		lm_error("match.follower", "cannot start following the store: %s",
		    lm_strerror(rc));
		return rc;
	}
	lm_info("match.follower",
	    "following the store in %s (notify %s, poll every %u ms)", d->cfg.data_dir,
	    notify, d->cfg.poll_ms);
	return LM_OK;
}

/* Drains and releases everything, in the reverse order of start-up. */
static void
shutdown_all(struct daemon *d)
{
	/* NOT_SERVING (Check, /readyz 503) at once: the probe's stop below may
	 * wait for a stuck probe (PROBE_JOIN_MS) before the drain says so. */
	if (d->srv != NULL)
		lm_rpc_server_set_serving(d->srv, false);
	probe_stop(d);
	if (d->srv != NULL) {
		int rc = lm_rpc_server_drain(d->srv, DRAIN_TIMEOUT_MS);
		if (rc != LM_OK)
			lm_warn("match.drain",
			    "requests still in flight after %u ms were dropped",
			    DRAIN_TIMEOUT_MS);
	}
	/* /readyz said 503 during the drain; now nothing reads the metrics any
	 * more, so their sources may go. */
	lm_http_stop(d->http);
	d->http = NULL;
	/* The owner first: a derivation in progress stops between two records
	 * (its batch stays uncommitted for the next owner); what was derived is
	 * committed and the group left, so its partitions move at once. */
	lm_events_interrupt(d->events);
	pthread_mutex_lock(&d->owner_mtx);
	lm_owner *owner = d->owner;
	d->owner = NULL;
	pthread_mutex_unlock(&d->owner_mtx);
	lm_owner_free(owner);
	lm_follower_free(d->follower); /* stops after the batch it is applying */
	d->follower = NULL;
	lm_events_free(d->events); /* bounded flush of events in flight */
	d->events = NULL;
	if (d->svc != NULL)
		lm_match_service_set_server(d->svc, NULL);
	/* A probe left behind still uses the server (and may count in its
	 * metrics): the server is stopped, its workers joined, but it stays
	 * allocated, and so do the metrics; the process exits. */
	lm_rpc_server_stop(d->srv);
	/* A close nng never finished leaves the server to nng too: its
	 * callbacks still count in the metrics. */
	bool keep_metrics = d->probe_stuck || lm_rpc_server_close_stuck(d->srv);
	if (!d->probe_stuck)
		lm_rpc_server_free(d->srv); /* frees nothing after a stuck close */
	d->srv = NULL;
	lm_match_service_free(d->svc);
	/* After the drain: every answer given is in the log's queue. */
	lm_decisions_free(d->decisions);
	d->decisions = NULL;
	lm_index_free(d->idx);
	lm_store_close(d->store);
	lm_dirlock_release(d->lock);
	d->lock = NULL;
	if (!keep_metrics)
		lm_metrics_free(d->metrics);
	lm_model_free(d->model);
	lm_rates_free(d->rates);
	lm_taxonomy_free(d->tax);
	pthread_mutex_destroy(&d->owner_mtx);
	if (!d->probe_stuck) { /* a probe left behind locks them when it returns */
		pthread_mutex_destroy(&d->probe_mtx);
		pthread_cond_destroy(&d->probe_cv);
	}
}

/* The signals that stop the process: blocked in every thread, taken with
 * sigwait by main and, once a stop began, by the stop watchdog. */
static void
stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

/* Ends a stop that outlasts STOP_MAX_MS (started once the stop signal
 * came), or at once on a second stop signal, with EXIT_RUNTIME. */
static void *
stop_watchdog(void *arg)
{
	int64_t deadline = lm_clock_ms() + STOP_MAX_MS, left;
	struct timespec ts;
	sigset_t sigs;
	int sig = -1;

	(void) arg;
	stop_signals(&sigs);
	while (sig <= 0 && (left = deadline - lm_clock_ms()) > 0) {
		ts.tv_sec = (time_t) (left / 1000);
		ts.tv_nsec = (long) (left % 1000) * 1000000L;
		sig = sigtimedwait(&sigs, NULL, &ts); /* -1: timed out or EINTR */
	}
	if (sig > 0)
		lm_error("match.stop_timeout",
		    "second stop signal (%d); exiting now (bound %d ms)", sig,
		    STOP_MAX_MS);
	else
		lm_error("match.stop_timeout",
		    "shutdown not finished within %d ms; exiting now", STOP_MAX_MS);
	_exit(EXIT_RUNTIME);
	return NULL;
}

int
main(int argc, char **argv)
{
	static struct daemon D; /* large; not on the stack */
	struct daemon *d = &D;
	char err[1024];
	sigset_t sigs;
	pthread_t wd;
	int sig = 0, rc, status = EXIT_RUNTIME;
	char notify[LM_CFG_STR + 64];

	if (lm_config_load(&d->cfg, LM_PROG_MATCH, argc, argv, err, sizeof(err)) !=
	    LM_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		return EXIT_CONFIG;
	}
	if (d->cfg.help) {
		usage(stdout);
		return 0;
	}
	if (d->cfg.version) {
		printf(PROG " %s\n", lm_version());
		return 0;
	}
	if (d->cfg.argi < argc) {
		fprintf(stderr, PROG ": unexpected argument \"%s\" (see --help)\n",
		    lm_config_escape(argv[d->cfg.argi], err, sizeof(err)));
		return EXIT_CONFIG;
	}
	lm_log_set_service("match");
	lm_log_set_level(d->cfg.log_level);
	lm_log_first_error_reset();
	lm_fdlimit_raise("match.limits");

	/* Block the stop signals before any thread starts, so that every thread
	 * inherits the mask and only sigwait below sees them. */
	stop_signals(&sigs);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&d->probe_mtx, NULL);
	pthread_mutex_init(&d->owner_mtx, NULL);
	(void) lm_cond_init_monotonic(&d->probe_cv);
	atomic_init(&d->probe_result, LM_OK);
	atomic_init(&d->probe_done_ms, 0);

	if ((rc = load_data(d)) != 0) {
		status = rc;
		goto done;
	}
	if (lm_metrics_new(&d->metrics) != LM_OK)
		goto done;

	lm_store_opts sto = {.map_size = d->cfg.map_size_mb << 20};
	/* A map larger than the store's default ceiling raises the ceiling, as
	 * ingest does, so that both services open the same store. */
	if (sto.map_size > LM_STORE_MAX_MAP_SIZE_DEFAULT)
		sto.max_map_size = sto.map_size;
	if ((rc = lm_store_open(d->cfg.data_dir, &sto, &d->store)) != LM_OK) {
		lm_error("match.store", "cannot open the record store in %s: %s",
		    d->cfg.data_dir, lm_strerror(rc));
		goto done;
	}
	/* One match per data directory: a second would deliver the outbox's
	 * events and the decision queue's entries again. */
	char why[512];
	if (lm_dirlock_take(d->cfg.data_dir, "match", &d->lock, why, sizeof(why)) !=
	    LM_OK) {
		lm_error("match.lock",
		    "another lunamatch-match uses the data directory %s, or it cannot "
		    "be locked: %s",
		    d->cfg.data_dir, why);
		goto done;
	}
	/* The index keeps the records' prepared forms only and reads what a
	 * response shows from the store (lm_index_set_store). */
	if (lm_index_new(d->model, &d->idx) != LM_OK ||
	    lm_index_set_store(d->idx, d->store) != LM_OK)
		goto done;
	if (start_events(d) != LM_OK || start_decisions(d) != LM_OK)
		goto done;

	d->rctx.taxonomy = d->tax;
	d->rctx.rates = d->rates;
	d->rctx.embedding_dim = d->cfg.embedding_dim;
	lm_match_service_opts mo;
	memset(&mo, 0, sizeof(mo));
	mo.index = d->idx;
	mo.record_ctx = d->rctx;
	mo.decisions = d->decisions;
	if (lm_match_service_new(&mo, &d->svc) != LM_OK)
		goto done;
	if (new_owner(d) != LM_OK || new_follower(d, notify, sizeof(notify)) != LM_OK)
		goto done;
	register_metrics(d);
	if ((rc = start_rpc(d)) != LM_OK) {
		/* LM_ENOENT for a TCP URL: its host does not resolve, the
		 * setting's fault as for LUNAMATCH_HTTP_ADDR below (for an ipc://
		 * URL, a directory that may yet be made: a resource). */
		if (rc == LM_ENOENT && (strncasecmp(d->cfg.rpc_url, "tcp", 3) == 0 ||
		                           lm_rpc_url_is_tls(d->cfg.rpc_url))) {
			fprintf(stderr,
			    PROG
			    ": LUNAMATCH_RPC_URL: the host of \"%s\" does not resolve\n",
			    lm_config_escape(d->cfg.rpc_url, err, sizeof(err)));
			status = EXIT_CONFIG;
		}
		goto done;
	}
	if ((rc = start_http(d)) != LM_OK) {
		/* LM_ENOENT: the host does not resolve; LM_EINVAL: the system
		 * refused the address (bind: EINVAL, such as a link-local
		 * IPv6 address without its scope). Either is the setting's
		 * fault, not the moment's; the cause is logged too. */
		if (rc == LM_ENOENT || rc == LM_EINVAL) {
			fprintf(stderr, PROG ": LUNAMATCH_HTTP_ADDR: %s \"%s\"%s\n",
			    rc == LM_ENOENT ? "the host of" : "cannot listen on",
			    lm_config_escape(d->cfg.http_addr, err, sizeof(err)),
			    rc == LM_ENOENT
			        ? " does not resolve"
			        : ": the system refuses this address (invalid argument)");
			status = EXIT_CONFIG;
		}
		goto done;
	}
	if (start_follower(d, notify) != LM_OK || start_owner(d) != LM_OK)
		goto done;

	while (sigwait(&sigs, &sig) != 0)
		;
	lm_info("match.stop", "signal %d: draining", sig);
	if (pthread_create(&wd, NULL, stop_watchdog, NULL) != 0 ||
	    pthread_detach(wd) != 0)
		lm_warn("match.stop", "no shutdown watchdog: the stop is not bounded");
	status = 0;
done:
	/* A failed start ends with a line that says why, in the words of the
	 * step that failed, after what the release logs. */
	if (status != 0)
		snprintf(err, sizeof(err), "%s", lm_log_first_error());
	shutdown_all(d);
	if (status == 0)
		lm_info("match.stop", "stopped");
	else
		lm_error("match.start", "not started (exit %d): %s", status,
		    err[0] != '\0' ? err
		                   : "a start-up step failed without a logged cause");
	return status;
}
