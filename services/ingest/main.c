/*
 * main.c - lunamatch-ingest: consumes job postings and candidate profiles
 * from Kafka, validates and normalizes them, and stores them in the record
 * store; rejected messages go to the dead-letter topic. docs/ingest.md.
 *
 * SIGHUP stops like SIGTERM and SIGINT: there is no configuration reload.
 *
 * Exit status: 0 after SIGTERM/SIGINT/SIGHUP (the stop ran its course: what was
 * stored is acknowledged, and what could not be, with the broker or the
 * dead-letter topic away, is consumed again after the restart); 1 for a
 * fatal runtime error (store, HTTP port, fatal Kafka error) or a shutdown
 * cut short (LM_CONSUMER_STOP_MAX_MS passed, or a second signal); 2 for
 * invalid configuration or data files.
 */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "consumer.h"
#include "ingest.h"
#include "lunamatch/clock.h"
#include "lunamatch/config.h"
#include "lunamatch/dirlock.h"
#include "lunamatch/error.h"
#include "lunamatch/fdlimit.h"
#include "lunamatch/http.h"
#include "lunamatch/log.h"
#include "lunamatch/metrics.h"
#include "lunamatch/recdata.h"
#include "lunamatch/record.h"
#include "lunamatch/store.h"
#include "notify.h"
#include "trimmer.h"

#define PROG              "lunamatch-ingest"
#define HTTP_ADDR_DEFAULT "127.0.0.1:7702"

/* Set by the first SIGTERM/SIGINT/SIGHUP; counts them (at most 2). Written
 * by the signal handler, read by the consumer's loop and the watchdog on
 * other threads: an atomic, lock-free so that the handler may write it. */
static atomic_int stop_flag;
static_assert(ATOMIC_INT_LOCK_FREE == 2, "the stop flag must be lock-free");

static void
on_signal(int sig)
{
	(void) sig;
	if (stop_flag < 2)
		stop_flag++;
}

/*
 * The shutdown bound, whatever the brokers do: once a stop was asked for,
 * this thread ends the process with status 1 when the orderly shutdown has
 * not finished within LM_CONSUMER_STOP_MAX_MS, or at once on a second
 * signal. Committed store transactions are durable; offsets not committed
 * are consumed again after the restart.
 */
static void *
watchdog(void *arg)
{
	int64_t deadline;

	(void) arg;
	while (stop_flag == 0)
		usleep(50 * 1000);
	deadline = lm_clock_ms() + LM_CONSUMER_STOP_MAX_MS;
	while (stop_flag < 2 && lm_clock_ms() < deadline)
		usleep(50 * 1000);
	lm_error("ingest.stop_timeout",
	    stop_flag < 2 ? "shutdown not finished within %d ms; exiting now"
	                  : "second stop signal; exiting now (bound %d ms)",
	    LM_CONSUMER_STOP_MAX_MS);
	_exit(1);
	return NULL;
}

static void
usage(FILE *out)
{
	fprintf(out,
	    "Usage: " PROG " [options]\n"
	    "Consumes job postings and candidate profiles from Kafka as a member of\n"
	    "a consumer group, validates and normalizes them and stores them in the\n"
	    "record store. Rejected messages go to the dead-letter topic with the\n"
	    "reason. Serves /healthz, /readyz, /startedz (200 once caught up once)\n"
	    "and /metrics over HTTP. Stops cleanly on SIGTERM, SIGINT or SIGHUP.\n\n");
	lm_config_usage(out, LM_PROG_INGEST);
}

int
main(int argc, char **argv)
{
	lm_config cfg;
	char err[512], notify_url[LM_CFG_STR + 64];
	char why[LM_LOG_FIRST_ERROR_MAX] = ""; /* why a start failed */
	lm_record_data data = {0};
	lm_store *store = NULL;
	lm_dirlock *lock = NULL;
	lm_metrics *metrics = NULL;
	lm_trimmer *trimmer = NULL;
	lm_http *http = NULL;
	lm_notify *notify = NULL;
	lm_consumer *consumer = NULL;
	lm_record_ctx ctx;
	lm_store_opts sopts;
	struct sigaction sa;
	int rc = 1, rv;
	bool ran = false; /* lm_consumer_run returned */

	if (lm_config_load(&cfg, LM_PROG_INGEST, argc, argv, err, sizeof(err)) != LM_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		return 2;
	}
	if (cfg.help) {
		usage(stdout);
		return 0;
	}
	if (cfg.version) {
		printf(PROG " %s\n", lm_version());
		return 0;
	}
	if (cfg.argi < argc) {
		fprintf(stderr, PROG ": unexpected argument \"%s\" (see --help)\n",
		    lm_config_escape(argv[cfg.argi], err, sizeof(err)));
		return 2;
	}
	if (lm_config_notify_url(&cfg, notify_url, sizeof(notify_url)) != LM_OK) {
		fprintf(stderr, PROG ": LUNAMATCH_NOTIFY_URL: too long\n");
		return 2;
	}
	lm_log_set_service("ingest");
	lm_log_set_level(cfg.log_level);
	lm_log_first_error_reset();
	lm_fdlimit_raise("ingest.limits");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_t wd;
	if (pthread_create(&wd, NULL, watchdog, NULL) != 0 || pthread_detach(wd) != 0) {
		fprintf(stderr, PROG ": cannot start the shutdown watchdog\n");
		return 1;
	}

	if (lm_record_data_load(&cfg, &data, err, sizeof(err)) != LM_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		snprintf(why, sizeof(why), "%s", err);
		rc = 2;
		goto out;
	}
	ctx = lm_record_data_ctx(&data, &cfg);

	memset(&sopts, 0, sizeof(sopts));
	sopts.map_size = cfg.map_size_mb << 20;
	if (sopts.map_size > LM_STORE_MAX_MAP_SIZE_DEFAULT)
		sopts.max_map_size = sopts.map_size;
	if ((rv = lm_store_open(cfg.data_dir, &sopts, &store)) != LM_OK) {
		lm_error("store.open", "cannot open the record store in %s: %s",
		    cfg.data_dir, lm_strerror(rv));
		goto out;
	}
	/* One ingest per data directory: a second would consume the topics
	 * into the same store beside it. */
	if (lm_dirlock_take(cfg.data_dir, "ingest", &lock, err, sizeof(err)) != LM_OK) {
		lm_error("ingest.lock",
		    "another lunamatch-ingest uses the data directory %s, or it "
		    "cannot be locked: %s",
		    cfg.data_dir, err);
		goto out;
	}
	if (lm_metrics_new(&metrics) != LM_OK)
		goto out;
	ctx.metrics = metrics;
	lm_ingest_compliance_metrics(&ctx);

	lm_trimmer_opts to = {
	    .store = store,
	    .reader_lease_s = cfg.reader_lease_s,
	    .tombstone_retention_s = (int64_t) cfg.tombstone_retention_s,
	    .metrics = metrics,
	};
	if (lm_trimmer_new(&to, &trimmer) != LM_OK)
		goto out;

	lm_consumer_opts co = {
	    .cfg = &cfg,
	    .store = store,
	    .ctx = &ctx,
	    .metrics = metrics,
	    .notify = NULL,
	    .trimmer = trimmer,
	    .stop = &stop_flag,
	};
	if ((rv = lm_notify_open(notify_url, &notify)) != LM_OK) {
		if (rv == LM_EINVAL || rv == LM_ENOENT) {
			fprintf(stderr,
			    rv == LM_ENOENT ? PROG
			        ": LUNAMATCH_NOTIFY_URL: the host of \"%s\" does not "
			        "resolve\n"
			                    : PROG
			        ": LUNAMATCH_NOTIFY_URL: cannot listen on %s\n",
			    lm_config_escape(notify_url, err, sizeof(err)));
			rc = 2;
		}
		goto out;
	}
	co.notify = notify;
	if ((rv = lm_consumer_new(&co, &consumer, err, sizeof(err))) != LM_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		snprintf(why, sizeof(why), "%s", err);
		rc = rv == LM_EINVAL ? 2 : 1;
		goto out;
	}

	lm_http_opts ho = {
	    .addr = cfg.http_addr[0] != '\0' ? cfg.http_addr : HTTP_ADDR_DEFAULT,
	    .metrics = metrics,
	    .live = lm_consumer_live,
	    .ready = lm_consumer_ready,
	    .started = lm_consumer_started,
	    .arg = consumer,
	    .idle_timeout_s = cfg.http_idle_timeout_s,
	    .max_connections = cfg.http_max_connections,
	    .max_connections_per_peer = cfg.http_max_per_peer,
	};
	if ((rv = lm_http_start(&ho, &http)) != LM_OK) {
		/* LM_ENOENT: the host does not resolve; LM_EINVAL: the system
		 * refused the address (bind: EINVAL, such as a link-local
		 * IPv6 address without its scope). Either is the setting's
		 * fault, not the moment's; the cause is logged too. */
		if (rv == LM_ENOENT || rv == LM_EINVAL) {
			fprintf(stderr, PROG ": LUNAMATCH_HTTP_ADDR: %s \"%s\"%s\n",
			    rv == LM_ENOENT ? "the host of" : "cannot listen on",
			    lm_config_escape(ho.addr, err, sizeof(err)),
			    rv == LM_ENOENT
			        ? " does not resolve"
			        : ": the system refuses this address (invalid argument)");
			rc = 2;
		}
		goto out;
	}
	lm_info("ingest.start", "store %s, http %s, notify %s, brokers %s", cfg.data_dir,
	    ho.addr, notify_url, cfg.brokers);

	rv = lm_consumer_run(consumer);
	rc = rv == LM_OK ? 0 : 1;
	ran = true;
out:
	/* A failed start ends with a line that says why, in the words of the
	 * step that failed (its log line, or the message printed above), after
	 * what the release logs (the Kafka clients' last warnings). */
	if (!ran && rc != 0 && why[0] == '\0')
		snprintf(why, sizeof(why), "%s", lm_log_first_error());
	lm_http_stop(http);
	lm_consumer_free(consumer);
	lm_trimmer_free(trimmer);
	lm_notify_close(notify);
	lm_metrics_free(metrics);
	lm_store_close(store);
	lm_dirlock_release(lock);
	lm_record_data_free(&data);
	/* Said last: freeing the consumer may wait for librdkafka, which the
	 * watchdog can cut short with status 1. */
	if (ran)
		lm_info("ingest.stop", "exit status %d", rc);
	else if (rc != 0)
		lm_error("ingest.start", "not started (exit %d): %s", rc,
		    why[0] != '\0' ? why
		                   : "a start-up step failed without a logged cause");
	return rc;
}
