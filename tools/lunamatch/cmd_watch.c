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
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/textfile.h"
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

int
lm_cli_watch_print(const rd_kafka_message_t *m, bool json)
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
	/* A score that is not a number is shown (nan, or in JSON the proto3
	 * form "NaN"), so that the event is seen and the watch goes on, and
	 * said. */
	if (!isfinite(e->score))
		lm_cli_error(CMD,
		    "partition %" PRId32 " offset %" PRId64
		    ": the event's score is not a finite number",
		    m->partition, m->offset);
	if (json) {
		json_t *o = lm_json_encode_value(msg, LM_JSON_NONFINITE_STRINGS);
		if (o == NULL)
			lm_cli_error(CMD, "out of memory");
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
		lm_cli_score_text(score, e->score);
		lm_cli_printable(
		    cand, sizeof(cand), e->candidate_id, strlen(e->candidate_id));
		lm_cli_printable(job, sizeof(job), e->job_id, strlen(e->job_id));
		lm_cli_printable(sum, sizeof(sum), e->explanation_summary,
		    strlen(e->explanation_summary));
		const char *cells[NCOLS] = {
		    at, score, cand, job, trigger_name(e->trigger), sum};
		lm_cli_table_row(stdout, cols, NCOLS, cells);
		rv = lm_cli_flush(stdout);
	}
	protobuf_c_message_free_unpacked(msg, NULL);
	return rv;
}

/* Prints the events from the end (or the start) of the topic until count
 * were printed, the timeout passed or a signal came. */
static int
watch(const lm_config *cfg, uint64_t count, bool beginning, uint64_t timeout_ms)
{
	lm_cli_consumer *c;
	int rv;
	uint64_t printed = 0;
	int64_t deadline =
	    timeout_ms > 0 ? lm_clock_ms() + (int64_t) timeout_ms : INT64_MAX;

	/* --timeout-ms bounds the wait for the broker too. */
	rv = lm_cli_consumer_open(cfg, CMD, cfg->topic_matches,
	    beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END, false,
	    timeout_ms > 0 && timeout_ms < WATCH_CONNECT_MS ? (int) timeout_ms
	                                                    : WATCH_CONNECT_MS,
	    &c);
	if (rv != LM_CLI_EXIT_OK)
		return rv;
	rv = LM_CLI_EXIT_FAIL;
	if (!cfg->json) {
		lm_cli_table_header(stdout, cols, NCOLS);
		if (lm_cli_stdout_written(CMD) != LM_CLI_EXIT_OK)
			goto out;
	}
	while (!lm_cli_interrupted() && (count == 0 || printed < count) &&
	       lm_clock_ms() < deadline) {
		rd_kafka_message_t *m;
		int got = lm_cli_consumer_next(c, WATCH_POLL_MS, &m);
		if (got < 0)
			goto out;
		if (got == 0)
			continue;
		int pr = lm_cli_watch_print(m, cfg->json);
		rd_kafka_message_destroy(m);
		if (pr < 0) {
			lm_cli_error(CMD, "cannot write to standard output");
			goto out;
		}
		if (pr == 0)
			printed++;
	}
	if (count > 0 && printed < count && !lm_cli_interrupted()) {
		lm_cli_error(CMD,
		    "%" PRIu64 " of %" PRIu64 " events within %" PRIu64 " ms", printed,
		    count, timeout_ms);
		goto out;
	}
	/* Following until interrupted is how watch is meant to end. */
	rv = LM_CLI_EXIT_OK;
out:
	lm_cli_consumer_close(c);
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
			if (!lm_textfile_whole(optarg, 1, WATCH_COUNT_MAX, &count))
				return lm_cli_usage_error(CMD,
				    "--count: \"%s\" is not a number in 1..%llu", optarg,
				    WATCH_COUNT_MAX);
			break;
		case OPT_BEGINNING:
			beginning = true;
			break;
		case OPT_TIMEOUT:
			if (!lm_textfile_whole(optarg, 1, WATCH_TIMEOUT_MAX, &tmo))
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
