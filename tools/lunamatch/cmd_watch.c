/*
 * cmd_watch.c - `lunamatch watch`: follows the new-match events that the
 * match service publishes on the matches topic (--topic-matches,
 * LUNAMATCH_TOPIC_MATCHES) and prints one line per event.
 *
 *   watch [--from-beginning] [--count N] [--timeout-ms N]
 *
 * Each Kafka message value is a serialized lunamatch.v1.MatchEvent. The
 * command assigns every partition of the topic directly (under a throwaway
 * group id it never joins) and commits nothing, so it never disturbs other
 * consumers. Events are delivered at least once: the same event_id can show
 * up twice, which this command does not hide.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/events.pb-c.h"


#define CMD               "watch"
#define WATCH_COUNT_MAX   100000000ull
#define WATCH_TIMEOUT_MAX 86400000ull /* --timeout-ms: one day */
#define WATCH_CONNECT_MS  10000       /* longest wait for the topic's metadata */
#define WATCH_POLL_MS     200         /* longest delay before a signal is noticed */
#define WATCH_EVENT_MAX   (1u << 20)  /* bytes of one event accepted */

enum { OPT_COUNT = 'n', OPT_BEGINNING = 1, OPT_TIMEOUT };

const struct option lm_cli_watch_options[] = {
    {"count", required_argument, NULL, OPT_COUNT},
    {"from-beginning", no_argument, NULL, OPT_BEGINNING},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

const char lm_cli_watch_usage[] =
    "Usage: " LM_CLI_PROG " [global options] watch [options]\n"
    "\n"
    "Follows the new-match events on the matches topic (--topic-matches,\n"
    "LUNAMATCH_TOPIC_MATCHES) and prints one line per event: time, score,\n"
    "candidate, job, trigger and summary, or, with --json, the MatchEvent as\n"
    "one JSON line. Starts at the end of the topic (only new events) unless\n"
    "--from-beginning is given. Runs until --count events were printed, the\n"
    "--timeout-ms elapsed, or SIGINT / SIGTERM. Joins no consumer group and\n"
    "commits nothing.\n"
    "\n"
    "Options:\n"
    "  -n, --count N       stop after N events\n"
    "  --from-beginning    start at the oldest event of each partition\n"
    "  --timeout-ms N      stop after N ms; with --count, fewer than N events\n"
    "                      by then is a failure (exit 1)\n"
    "\n"
    "Exit status: 0 ok, 1 failed, 2 usage error, 3 Kafka unreachable.\n";

static volatile sig_atomic_t stop_sig;

static void
on_signal(int sig)
{
	stop_sig = sig;
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
trigger_name(Lunamatch__V1__MatchTrigger t)
{
	switch (t) {
	case LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_POSTING:
		return "new-posting";
	case LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_PROFILE:
		return "new-profile";
	case LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_UPDATED:
		return "updated";
	default:
		return "-";
	}
}

static const lm_cli_col cols[] = {{"TIME", 21}, {"SCORE", 6}, {"CANDIDATE", 28},
    {"JOB", 28}, {"TRIGGER", 12}, {"SUMMARY", 0}};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

/* Prints one event. Returns 0, 1 when the message is not a MatchEvent
 * (reported, skipped), or -1 when stdout failed. */
static int
print_event(const rd_kafka_message_t *m, bool json)
{
	ProtobufCMessage *msg = NULL;
	char err[256];
	int rv = 0;

	if (m->payload == NULL ||
	    lm_pb_decode(&lunamatch__v1__match_event__descriptor, m->payload, m->len,
	        WATCH_EVENT_MAX, &msg, err, sizeof(err)) != LM_OK) {
		lm_cli_error(CMD,
		    "partition %" PRId32 " offset %" PRId64 ": not a MatchEvent: %s",
		    m->partition, m->offset, m->payload == NULL ? "empty message" : err);
		return 1;
	}
	const Lunamatch__V1__MatchEvent *e = (const void *) msg;
	if (json) {
		json_t *o = lm_json_encode_value(msg, 0);
		rv = o != NULL ? lm_cli_json_line(stdout, o) : -1;
		json_decref(o);
	} else {
		char at[32], score[16], cand[LM_CLI_CELL_MAX], job[LM_CLI_CELL_MAX],
		    sum[LM_CLI_CELL_MAX];
		time_t t = (time_t) e->created_at;
		struct tm tm;
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			snprintf(at, sizeof(at), "%" PRId64, e->created_at);
		snprintf(score, sizeof(score), "%.3f", e->score);
		lm_cli_printable(
		    cand, sizeof(cand), e->candidate_id, strlen(e->candidate_id));
		lm_cli_printable(job, sizeof(job), e->job_id, strlen(e->job_id));
		lm_cli_printable(sum, sizeof(sum), e->explanation_summary,
		    strlen(e->explanation_summary));
		const char *cells[NCOLS] = {
		    at, score, cand, job, trigger_name(e->trigger), sum};
		lm_cli_table_row(stdout, cols, NCOLS, cells);
		rv = fflush(stdout) == 0 ? 0 : -1;
	}
	protobuf_c_message_free_unpacked(msg, NULL);
	return rv;
}

/* The consumer; NULL after printing why. See cmd_dlq.c for the throwaway
 * group id. */
static rd_kafka_t *
new_consumer(const lm_config *cfg)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[512], group[96];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(group, sizeof(group), "lunamatch-cli-watch-%ld-%lld-%ld",
	    (long) getpid(), (long long) ts.tv_sec, ts.tv_nsec);
	if (lm_kafka_conf(cfg->brokers, "lunamatch-cli", &c, err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "group.id", group, err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "enable.auto.commit", "false", err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "enable.auto.offset.store", "false", err, sizeof(err)) !=
	        LM_OK ||
	    lm_kafka_set(c, "auto.offset.reset", "earliest", err, sizeof(err)) != LM_OK) {
		lm_cli_error(CMD, "%s", err);
		if (c != NULL)
			rd_kafka_conf_destroy(c);
		return NULL;
	}
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err))) == NULL) {
		lm_cli_error(CMD, "cannot create the Kafka consumer: %s", err);
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

static int
watch(const lm_config *cfg, uint64_t count, bool beginning, uint64_t timeout_ms)
{
	const char *topic = cfg->topic_matches;
	rd_kafka_t *rk;
	rd_kafka_topic_partition_list_t *l = NULL;
	int np = 0, rc, rv = LM_CLI_EXIT_FAIL;
	uint64_t printed = 0;
	int64_t deadline = timeout_ms > 0 ? now_ms() + (int64_t) timeout_ms : INT64_MAX;
	struct sigaction sa;

	if ((rk = new_consumer(cfg)) == NULL)
		return LM_CLI_EXIT_FAIL;
	rc = lm_kafka_topic_partitions(rk, topic, WATCH_CONNECT_MS, &np);
	if (rc == LM_ENOENT) {
		lm_cli_error(CMD, "topic %s does not exist", topic);
		goto out;
	}
	if (rc != LM_OK) {
		lm_cli_error(
		    CMD, "cannot reach Kafka at %s: %s", cfg->brokers, lm_strerror(rc));
		rv = LM_CLI_EXIT_UNAVAILABLE;
		goto out;
	}
	if ((l = rd_kafka_topic_partition_list_new(np)) == NULL) {
		lm_cli_error(CMD, "out of memory");
		goto out;
	}
	for (int p = 0; p < np; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset =
		    beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
	rd_kafka_resp_err_t ae = rd_kafka_assign(rk, l);
	if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_cli_error(CMD, "cannot assign the partitions of %s: %s", topic,
		    rd_kafka_err2str(ae));
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (!cfg->json) {
		lm_cli_table_header(stdout, cols, NCOLS);
		fflush(stdout);
	}
	while (!stop_sig && (count == 0 || printed < count) && now_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, WATCH_POLL_MS);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* not enabled; ignore */
		} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			lm_cli_error(CMD, "%s", rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
			    m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
				rd_kafka_message_destroy(m);
				goto out;
			}
		} else {
			int pr = print_event(m, cfg->json);
			if (pr < 0) {
				rd_kafka_message_destroy(m);
				lm_cli_error(CMD, "cannot write to standard output");
				goto out;
			}
			if (pr == 0)
				printed++;
		}
		rd_kafka_message_destroy(m);
	}
	if (count > 0 && printed < count && !stop_sig) {
		lm_cli_error(CMD,
		    "%" PRIu64 " of %" PRIu64 " events within %" PRIu64 " ms", printed,
		    count, timeout_ms);
		goto out;
	}
	/* Following until interrupted is how watch is meant to end. */
	rv = LM_CLI_EXIT_OK;
out:
	if (l != NULL)
		rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rv;
}

int
lm_cli_watch(const lm_config *cfg, int argc, char **argv)
{
	uint64_t count = 0, tmo = 0;
	bool beginning = false;
	int c;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "n:", lm_cli_watch_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_COUNT:
			if (!lm_cli_parse_u64(optarg, 1, WATCH_COUNT_MAX, &count))
				return lm_cli_usage_error(CMD,
				    "--count: \"%s\" is not a number in 1..%llu", optarg,
				    WATCH_COUNT_MAX);
			break;
		case OPT_BEGINNING:
			beginning = true;
			break;
		case OPT_TIMEOUT:
			if (!lm_cli_parse_u64(optarg, 1, WATCH_TIMEOUT_MAX, &tmo))
				return lm_cli_usage_error(CMD,
				    "--timeout-ms: \"%s\" is not a number in 1..%llu",
				    optarg, WATCH_TIMEOUT_MAX);
			break;
		default:
			return lm_cli_usage_error(CMD, "bad option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return lm_cli_usage_error(CMD, "watch takes no arguments");
	return watch(cfg, count, beginning, tmo);
}
