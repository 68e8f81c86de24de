/*
 * cmd_dlq.c - `lunamatch dlq tail`: shows the messages that ingest rejected
 * to the dead-letter topic, with where they came from and why.
 *
 *   dlq tail [--count N] [--follow] [--from-beginning] [--timeout-ms N]
 *
 * Ingest writes each rejected message to the DLQ topic unchanged (key and
 * value) with these headers: lunamatch-reason (a stable token such as
 * "missing_field"), lunamatch-error (a human-readable message),
 * lunamatch-source-topic, lunamatch-source-partition and
 * lunamatch-source-offset. This command reads the topic by assigning its
 * partitions directly (under a unique throwaway group id that it never
 * joins) and commits nothing, so it never disturbs another reader.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/textfile.h"

#define CMD "dlq"

#define DLQ_COUNT_DEFAULT 10
#define DLQ_COUNT_MAX     1000000
/* Default and largest --timeout-ms: reaching the broker and, without
 * --follow, the end of every partition. */
#define DLQ_TIMEOUT_DEFAULT 10000
#define DLQ_TIMEOUT_MAX     3600000
/* Most bytes of a header value or key shown; longer ones are cut. */
#define DLQ_FIELD_MAX 4096
/* One consumer poll: the longest delay before a signal is noticed. */
#define DLQ_POLL_MS 200

#define HDR_VALUE_CUT     "lunamatch-value-truncated"
#define HDR_KEY_CUT       "lunamatch-key-truncated"
#define HDR_REASON        "lunamatch-reason"
#define HDR_ERROR         "lunamatch-error"
#define HDR_SRC_TOPIC     "lunamatch-source-topic"
#define HDR_SRC_PARTITION "lunamatch-source-partition"
#define HDR_SRC_OFFSET    "lunamatch-source-offset"

enum { OPT_COUNT = 'n', OPT_FOLLOW = 'f', OPT_BEGINNING = 1, OPT_TIMEOUT };

const struct option lm_cli_dlq_options[] = {
    {"count", required_argument, NULL, OPT_COUNT},
    {"follow", no_argument, NULL, OPT_FOLLOW},
    {"from-beginning", no_argument, NULL, OPT_BEGINNING},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

const char lm_cli_dlq_usage[] =
    "Usage: " LM_CLI_PROG " [global options] dlq tail [options]\n"
    "\n"
    "Prints the messages in the dead-letter topic (--topic-dlq,\n"
    "LUNAMATCH_TOPIC_DLQ): source topic, partition and offset, reason, error\n"
    "and key of each, as a table or, with --json, as JSON lines. Joins no\n"
    "consumer group and commits nothing.\n"
    "\n"
    "Without --follow, starts at the last N messages of each partition (or at\n"
    "the oldest with --from-beginning) and stops after N messages or at the end\n"
    "of every partition. With --follow, prints the last N messages of each\n"
    "partition (or everything with --from-beginning), then new ones as they\n"
    "arrive, until SIGINT or SIGTERM.\n"
    "\n"
    "Options:\n"
    "  -n, --count N       messages to print (default 10, at most 1000000)\n"
    "  -f, --follow        keep printing new messages until interrupted\n"
    "  --from-beginning    start at the oldest message of each partition\n"
    "  --timeout-ms N      longest wait for the broker and, without --follow,\n"
    "                      for the end of the partitions (default 10000)\n";

/* The last value of header name, or NULL (*len 0) when absent. */
static const char *
header(rd_kafka_headers_t *h, const char *name, size_t *len)
{
	const void *v = NULL;

	*len = 0;
	if (h == NULL ||
	    rd_kafka_header_get_last(h, name, &v, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	if (v == NULL) {
		*len = 0;
		return "";
	}
	if (*len > DLQ_FIELD_MAX)
		*len = DLQ_FIELD_MAX;
	return v;
}

/* A JSON value for a header: null when absent. */
static json_t *
json_field(const char *v, size_t len)
{
	return v != NULL ? lm_cli_json_string(v, len) : json_null();
}

/* A header holding a decimal integer as a JSON integer; any other text as a
 * string; null when absent. */
static json_t *
json_number_field(const char *v, size_t len)
{
	char buf[32];
	uint64_t n;

	if (v == NULL)
		return json_null();
	if (len < sizeof(buf)) {
		memcpy(buf, v, len);
		buf[len] = '\0';
		if (lm_textfile_whole(buf, 0, INT64_MAX, &n))
			return json_integer((json_int_t) n);
	}
	return lm_cli_json_string(v, len);
}

static const lm_cli_col cols[] = {
    {"PARTITION:OFFSET", 16}, {"SOURCE", 36}, {"REASON", 16}, {"KEY", 24}, {"ERROR", 0}};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

/* Prints one DLQ message. Returns 0, or -1 when stdout failed. */
/* The table cell of header value v[0..len) in buf: absent (v NULL) or empty,
 * the placeholder none, so that no cell is left blank. */
static void
header_cell(char *buf, size_t size, const char *v, size_t len, const char *none)
{
	if (v == NULL || len == 0)
		lm_cli_printable(buf, size, none, strlen(none));
	else
		lm_cli_printable(buf, size, v, len);
}

static int
print_message(const rd_kafka_message_t *m, bool json)
{
	rd_kafka_headers_t *h = NULL;
	size_t rl, el, tl, pl, ol, kl, vcl, kcl;
	const char *reason, *error, *stopic, *spart, *soff, *vcut, *kcut;
	int rv = 0;

	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	reason = header(h, HDR_REASON, &rl);
	error = header(h, HDR_ERROR, &el);
	stopic = header(h, HDR_SRC_TOPIC, &tl);
	spart = header(h, HDR_SRC_PARTITION, &pl);
	soff = header(h, HDR_SRC_OFFSET, &ol);
	vcut = header(h, HDR_VALUE_CUT, &vcl);
	kcut = header(h, HDR_KEY_CUT, &kcl);
	kl = m->key_len > DLQ_FIELD_MAX ? DLQ_FIELD_MAX : m->key_len;

	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "partition", json_integer(m->partition));
		json_object_set_new(o, "offset", json_integer((json_int_t) m->offset));
		json_object_set_new(o, "timestamp_ms",
		    json_integer((json_int_t) rd_kafka_message_timestamp(m, NULL)));
		json_object_set_new(o, "source_topic", json_field(stopic, tl));
		json_object_set_new(o, "source_partition", json_number_field(spart, pl));
		json_object_set_new(o, "source_offset", json_number_field(soff, ol));
		json_object_set_new(o, "reason", json_field(reason, rl));
		json_object_set_new(o, "error", json_field(error, el));
		json_object_set_new(o, "key",
		    m->key != NULL ? lm_cli_json_string(m->key, kl) : json_null());
		/* "key" holds at most DLQ_FIELD_MAX bytes of key_bytes; ingest
		 * cut a key or value over its own bounds and said so. */
		json_object_set_new(
		    o, "key_bytes", json_integer((json_int_t) m->key_len));
		json_object_set_new(o, "value_bytes", json_integer((json_int_t) m->len));
		json_object_set_new(
		    o, "original_key_bytes", json_number_field(kcut, kcl));
		json_object_set_new(
		    o, "original_value_bytes", json_number_field(vcut, vcl));
		rv = lm_cli_json_line(stdout, o);
		json_decref(o);
		return rv;
	}

	char at[48], sr[DLQ_FIELD_MAX + 4], se[DLQ_FIELD_MAX + 4], sk[DLQ_FIELD_MAX + 4];
	char st[DLQ_FIELD_MAX + 4], sp[32], so[32];
	char src[sizeof(st) + sizeof(sp) + sizeof(so) + 2];
	snprintf(at, sizeof(at), "%" PRId32 ":%" PRId64, m->partition, m->offset);
	header_cell(st, sizeof(st), stopic, tl, "?");
	header_cell(sp, sizeof(sp), spart, pl, "?");
	header_cell(so, sizeof(so), soff, ol, "?");
	snprintf(src, sizeof(src), "%s/%s@%s", st, sp, so);
	header_cell(sr, sizeof(sr), reason, rl, "-");
	header_cell(se, sizeof(se), error, el, "-");
	if (m->key != NULL)
		lm_cli_printable(sk, sizeof(sk), m->key, kl);
	else
		snprintf(sk, sizeof(sk), "-");
	const char *cells[NCOLS] = {at, src, sr, sk, se};
	lm_cli_table_row(stdout, cols, NCOLS, cells);
	return lm_cli_flush(stdout);
}

/* Prints the last count messages of each partition (or all with beginning),
 * then, with follow, new ones until interrupted. */
static int
tail(const lm_config *cfg, uint64_t count, bool follow, bool beginning, int timeout_ms)
{
	const char *topic = cfg->topic_dlq;
	lm_cli_consumer *c;
	int rv = LM_CLI_EXIT_FAIL;
	uint64_t printed = 0;
	int64_t deadline;

	/* Its exit code as is: 3 when Kafka cannot be reached, as for watch. */
	if ((rv = lm_cli_consumer_open(cfg, CMD, topic,
	         beginning ? RD_KAFKA_OFFSET_BEGINNING
	                   : RD_KAFKA_OFFSET_TAIL((int64_t) count),
	         true, timeout_ms, &c)) != LM_CLI_EXIT_OK)
		return rv;
	rv = LM_CLI_EXIT_FAIL;
	if (!cfg->json) {
		lm_cli_table_header(stdout, cols, NCOLS);
		if (lm_cli_stdout_written(CMD) != LM_CLI_EXIT_OK)
			goto out;
	}
	deadline = lm_clock_ms() + timeout_ms;
	while (!lm_cli_interrupted()) {
		rd_kafka_message_t *m;
		int got;
		if (!follow && (printed >= count || lm_cli_consumer_at_end(c)))
			break;
		if (!follow && lm_clock_ms() >= deadline) {
			lm_cli_error(CMD,
			    "did not reach the end of every partition of %s within %d ms",
			    topic, timeout_ms);
			goto out;
		}
		if ((got = lm_cli_consumer_next(c, DLQ_POLL_MS, &m)) < 0)
			goto out;
		if (got == 0)
			continue;
		if (follow || printed < count) {
			if (print_message(m, cfg->json) != 0) {
				rd_kafka_message_destroy(m);
				lm_cli_error(CMD, "cannot write to standard output");
				goto out;
			}
			printed++;
		}
		rd_kafka_message_destroy(m);
	}
	/* An interrupted one-shot tail is incomplete; an interrupted follow
	 * is how it is meant to end. */
	rv = (lm_cli_interrupted() && !follow) ? LM_CLI_EXIT_FAIL : LM_CLI_EXIT_OK;
out:
	lm_cli_consumer_close(c);
	return rv;
}

int
lm_cli_dlq(const lm_config *cfg, int argc, char **argv)
{
	uint64_t count = DLQ_COUNT_DEFAULT, tmo = DLQ_TIMEOUT_DEFAULT;
	bool follow = false, beginning = false;
	int c;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "n:f", lm_cli_dlq_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_COUNT:
			if (!lm_textfile_whole(optarg, 1, DLQ_COUNT_MAX, &count))
				return lm_cli_usage_error(CMD,
				    "--count: \"%s\" is not a number in 1..%d", optarg,
				    DLQ_COUNT_MAX);
			break;
		case OPT_FOLLOW:
			follow = true;
			break;
		case OPT_BEGINNING:
			beginning = true;
			break;
		case OPT_TIMEOUT:
			if (!lm_textfile_whole(optarg, 1, DLQ_TIMEOUT_MAX, &tmo))
				return lm_cli_usage_error(CMD,
				    "--timeout-ms: \"%s\" is not a number in 1..%d",
				    optarg, DLQ_TIMEOUT_MAX);
			break;
		default:
			return lm_cli_usage_error(CMD, "bad option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return lm_cli_usage_error(CMD, "missing subcommand: tail");
	if (strcmp(argv[0], "tail") != 0)
		return lm_cli_usage_error(
		    CMD, "unknown subcommand \"%s\": tail", argv[0]);
	if (argc > 1)
		return lm_cli_usage_error(CMD, "dlq tail takes no arguments");
	return tail(cfg, count, follow, beginning, (int) tmo);
}
