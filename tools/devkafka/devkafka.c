/*
 * devkafka.c - lunamatch-devkafka, the embedded Kafka broker for local runs
 * and tests.
 *
 * Runs librdkafka's mock cluster (one broker on a free 127.0.0.1 port) inside
 * this process, creates the five project topics with the configured partition
 * count, prints the bootstrap address as the first line on stdout and serves
 * until SIGTERM or SIGINT, then exits 0. Producers, consumers, consumer
 * groups with committed offsets and kcat all work against it; topic
 * administration (CreateTopics) does not, which is why the topics are created
 * here. Everything lives in memory and is gone when the process exits.
 *
 * The mock cluster keeps a bounded log per partition (librdkafka 2.0.2: 5 MiB
 * of message sets; the bound cannot be configured) and discards the
 * oldest messages beyond it, so that one message larger than the bound
 * erases the partition. devkafka never lets that pass silently: it watches
 * the log start offset of every partition of its topics (one batched
 * ListOffsets request for all of them every WATCH_MS) and, as soon as one
 * moves, logs what was lost (devkafka.lost) and exits with status 3.
 *
 * Exit status: 0 after a signal, 1 when the cluster cannot be started, 2 for
 * a bad option, 3 when a partition lost messages.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "lunamatch/config.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"

#define PROG "lunamatch-devkafka"
/* Brokers in the mock cluster: one is all a single-machine run needs. */
#define DEV_BROKERS 1
#define NTOPICS     5
/* Period of the log start offset check, and the wait of one query. */
#define WATCH_MS       500
#define WATCH_QUERY_MS 2000
/* What the mock cluster keeps per partition (librdkafka 2.0.2, fixed). */
#define MOCK_PART_BYTES "5 MiB"
#define EXIT_LOST       3

static void
usage(FILE *out)
{
	fprintf(out,
	    "Usage: " PROG " [options]\n"
	    "Runs an in-memory Kafka broker on 127.0.0.1 with the lunamatch topics,\n"
	    "prints its bootstrap address as the first line on stdout and serves\n"
	    "until SIGTERM or SIGINT.\n\n"
	    "Limits: each partition keeps at most " MOCK_PART_BYTES " of messages (the\n"
	    "fixed bound of librdkafka's mock cluster). When a partition of the\n"
	    "five topics has to drop messages, " PROG " logs devkafka.lost with the\n"
	    "topic, partition and count and exits with status 3. Use a real broker\n"
	    "(scripts/kafka.sh) for larger inputs.\n\n");
	lm_config_usage(out, LM_PROG_DEVKAFKA);
}

/* The list of every partition of topics; NULL when out of memory. */
static rd_kafka_topic_partition_list_t *
watch_list(const char *const *topics, unsigned partitions)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new((int) (NTOPICS * partitions));

	if (l == NULL)
		return NULL;
	for (int t = 0; t < NTOPICS; t++)
		for (unsigned p = 0; p < partitions; p++)
			rd_kafka_topic_partition_list_add(l, topics[t], (int32_t) p);
	return l;
}

/*
 * Returns true when a partition of list lost its oldest messages: its log
 * start offset moved past 0. Asks for the log start offsets of all of them
 * in one request per broker (lm_kafka_list_offsets) and logs each such
 * partition. A partition whose offset was not read is skipped (tried again
 * next period).
 */
static bool
lost_messages(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list)
{
	bool lost = false;
	int bad = -1;

	if (lm_kafka_list_offsets(
	        rk, list, RD_KAFKA_OFFSET_BEGINNING, WATCH_QUERY_MS, &bad) != LM_OK &&
	    bad < 0)
		return false;
	for (int i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &list->elems[i];
		int64_t lo = tp->offset, lo2 = 0, hi = -1;
		if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR || lo <= 0)
			continue;
		/* Rare: one more query for the high watermark of the report. */
		rd_kafka_query_watermark_offsets(
		    rk, tp->topic, tp->partition, &lo2, &hi, WATCH_QUERY_MS);
		lm_error("devkafka.lost",
		    "topic %s partition %" PRId32 " dropped its oldest %" PRId64
		    " messages (offsets 0..%" PRId64 " of %" PRId64
		    "): the embedded broker keeps " MOCK_PART_BYTES
		    " per partition; use a real Kafka "
		    "broker for larger inputs",
		    tp->topic, tp->partition, lo, lo - 1, hi);
		lost = true;
	}
	return lost;
}

int
main(int argc, char **argv)
{
	lm_config cfg;
	char err[512];
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk = NULL, *watch = NULL;
	rd_kafka_mock_cluster_t *mc = NULL;
	rd_kafka_topic_partition_list_t *wl = NULL;
	sigset_t sigs;
	int sig = 0;
	int rc = 1;

	if (lm_config_load(&cfg, LM_PROG_DEVKAFKA, argc, argv, err, sizeof(err)) !=
	    LM_OK) {
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
		    argv[cfg.argi]);
		return 2;
	}
	lm_log_set_service("devkafka");
	lm_log_set_level(cfg.log_level);

	/* Block the stop signals before librdkafka starts its threads, so that
	 * every thread inherits the mask and only sigwait below sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	const char *const topics[NTOPICS] = {cfg.topic_postings, cfg.topic_profiles,
	    cfg.topic_matches, cfg.topic_dlq, cfg.topic_decisions};

	if (lm_kafka_conf(NULL, "lunamatch-devkafka", &conf, err, sizeof(err)) != LM_OK) {
		lm_error("devkafka.config", "%s", err);
		goto done;
	}
	/* librdkafka's notices about this handle (no bootstrap.servers, and
	 * the mock brokers' chatter) only matter when debugging. */
	if (cfg.log_level != LM_LOG_DEBUG &&
	    lm_kafka_set(conf, "log_level", "4", err, sizeof(err)) != LM_OK) {
		lm_error("devkafka.config", "%s", err);
		goto done;
	}
	/* rd_kafka_new owns conf from here on, even when it fails. */
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	conf = NULL;
	if (rk == NULL) {
		lm_error("devkafka.start", "cannot create the owner handle: %s", err);
		goto done;
	}
	if ((mc = rd_kafka_mock_cluster_new(rk, DEV_BROKERS)) == NULL) {
		lm_error("devkafka.start", "cannot start the mock cluster");
		goto done;
	}
	for (int i = 0; i < NTOPICS; i++) {
		rd_kafka_resp_err_t e =
		    rd_kafka_mock_topic_create(mc, topics[i], (int) cfg.partitions, 1);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
		    e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			lm_error("devkafka.topic", "cannot create topic %s: %s",
			    topics[i], rd_kafka_err2str(e));
			goto done;
		}
	}

	/* The contract with scripts and tests: the address is the first line. */
	if (printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc)) < 0 ||
	    fflush(stdout) != 0) {
		lm_error(
		    "devkafka.start", "cannot write the bootstrap address to stdout");
		goto done;
	}
	lm_info("devkafka.ready", "serving on %s: %d topics with %u partitions",
	    rd_kafka_mock_cluster_bootstraps(mc), NTOPICS, cfg.partitions);

	if (lm_kafka_conf(rd_kafka_mock_cluster_bootstraps(mc),
	        "lunamatch-devkafka-watch", &conf, err, sizeof(err)) != LM_OK ||
	    (cfg.log_level != LM_LOG_DEBUG &&
	        lm_kafka_set(conf, "log_level", "4", err, sizeof(err)) != LM_OK)) {
		lm_error("devkafka.config", "%s", err);
		goto done;
	}
	watch = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	conf = NULL;
	if (watch == NULL) {
		lm_error("devkafka.start", "cannot create the watch handle: %s", err);
		goto done;
	}
	if ((wl = watch_list(topics, cfg.partitions)) == NULL) {
		lm_error("devkafka.start", "out of memory");
		goto done;
	}
	for (;;) {
		struct timespec ts = {0, WATCH_MS * 1000000L};
		sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig > 0)
			break;
		if (lost_messages(watch, wl)) {
			rc = EXIT_LOST;
			goto done;
		}
	}
	lm_info("devkafka.stop", "signal %d, shutting down", sig);
	rc = 0;
done:
	if (wl != NULL)
		rd_kafka_topic_partition_list_destroy(wl);
	if (watch != NULL)
		rd_kafka_destroy(watch);
	if (mc != NULL)
		rd_kafka_mock_cluster_destroy(mc);
	if (rk != NULL)
		rd_kafka_destroy(rk);
	if (conf != NULL)
		rd_kafka_conf_destroy(conf);
	return rc;
}
