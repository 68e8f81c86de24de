/*
 * cmd_produce.c - `lunamatch produce`: sends job postings or candidate
 * profiles from a JSON file to their Kafka topic, the way a producer of the
 * job site would, for demos, tests and back-fills.
 *
 *   produce postings|profiles FILE [--as-json | --raw] [--topic T]
 *                                  [--timeout-ms N] [--progress]
 *
 * The file is a JSON array of records or JSON lines (one record per line),
 * told apart by its first non-space character ('[' = array). Every record is
 * decoded with the project's JSON codec first: one that does not decode is
 * reported with its line (or array index) and the reason, counted as skipped
 * and not sent. The others are sent as protobuf (default) or as their JSON
 * text with the header content-type: application/json (--as-json), keyed by
 * the record id (no key when the record has none: ingest rejects it to the
 * dead-letter topic), with the idempotent producer. The command waits for
 * every delivery report and exits 1 when any record was skipped or failed,
 * 3 when Kafka could not be reached (no metadata, or nothing delivered and
 * every failure a connectivity one). Records are not validated beyond
 * decoding: that is ingest's job.
 *
 * SIGINT or SIGTERM while the input is read stops the reading at the next
 * record (a record being read is not sent); the records already handed to
 * librdkafka are still waited for, counted and summarised as above, and the
 * exit status is 1. A second signal ends the process at once.
 *
 * --raw (implies --as-json) sends every non-blank line exactly as written
 * (or every array element as its compact JSON text) without decoding it, so
 * that invalid records reach ingest and its dead-letter topic; the key is the
 * record's "id" when the text is a JSON object with a string id.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/textfile.h"
#include "lunamatch/v1/records.pb-c.h"

#define CMD "produce"

/* Largest input file (or standard input) read. */
#define PRODUCE_FILE_MAX (256u << 20)
/* Largest record: a JSON line, and the payload sent. */
#define PRODUCE_RECORD_MAX (1u << 20)
/* librdkafka's message.max.bytes: a maximal record plus protocol overhead. */
#define PRODUCE_MESSAGE_MAX "1114112"
/* Default and largest --timeout-ms. */
#define PRODUCE_TIMEOUT_DEFAULT 30000
#define PRODUCE_TIMEOUT_MAX     3600000
/* Most memory the JSON parse of a record of n bytes may take (counted as
 * lm_json_loadb_capped counts it): what lm_json_decode allows a record
 * line, about 17 MiB for a record of PRODUCE_RECORD_MAX. */
#define PRODUCE_PARSE_MEM(n) (LM_JSON_DECODE_FLOOR + LM_JSON_DECODE_FACTOR * (size_t) (n))
/* Records between two progress lines. */
#define PRODUCE_PROGRESS_EVERY 1000
/* Most per-record errors printed (and listed in the --json summary). */
#define PRODUCE_ERRORS_SHOWN 100

enum { OPT_AS_JSON = 1, OPT_RAW, OPT_TOPIC, OPT_TIMEOUT, OPT_PROGRESS };

const struct option lm_cli_produce_options[] = {
    {"as-json", no_argument, NULL, OPT_AS_JSON},
    {"raw", no_argument, NULL, OPT_RAW},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {NULL, 0, NULL, 0},
};

const char lm_cli_produce_usage[] =
    "Usage: " LM_CLI_PROG " [global options] produce postings|profiles FILE [options]\n"
    "\n"
    "Sends the records of FILE (\"-\" for standard input) to the postings or\n"
    "profiles topic. FILE holds a JSON array of records or JSON lines (one\n"
    "record per line; blank lines are ignored), in the JSON form of\n"
    "proto/lunamatch/v1/records.proto. A record that does not decode is\n"
    "reported with its line or array index and skipped; the others are sent\n"
    "keyed by their id with the idempotent producer. Prints \"sent N, failed M,\n"
    "skipped K\" (a JSON object with --json). Limits: 256 MiB per file, 1 MiB\n"
    "per record, 1114112 bytes of key (the id), record and framing, and a\n"
    "record's JSON parse may take 1 MiB plus 16 times its length of memory\n"
    "(a record over a limit is skipped).\n"
    "\n"
    "Exit status: 0 when every record was sent, 1 when any was skipped or not\n"
    "delivered (or the input failed, or the topic does not exist), 2 for a\n"
    "usage error, 3 when Kafka cannot be reached (no metadata, or no record\n"
    "delivered because no broker answered).\n"
    "\n"
    "SIGINT or SIGTERM stops the reading; the records already sent are waited\n"
    "for (at most --timeout-ms) and counted, the counts are printed and the\n"
    "exit status is 1. A second signal ends the command at once.\n"
    "\n"
    "Options:\n"
    "  --as-json         send the JSON text with header content-type:\n"
    "                    application/json instead of protobuf\n"
    "  --raw             send every non-blank line exactly as written (blanks\n"
    "                    around it trimmed; a JSON array: each element's\n"
    "                    compact JSON text) with header\n"
    "                    content-type: application/json, without decoding or\n"
    "                    checking it: for replaying messages and exercising\n"
    "                    ingest's validation. Keyed by the record's \"id\" when\n"
    "                    it is a JSON object with a string id, else no key.\n"
    "                    Implies --as-json\n"
    "  --topic T         send to topic T instead of --topic-postings or\n"
    "                    --topic-profiles\n"
    "  --timeout-ms N    longest wait for Kafka and for the delivery of each\n"
    "                    record (default 30000)\n"
    "  --progress        print progress on stderr every 1000 records (the\n"
    "                    default when stderr is a terminal)\n";

/* The state of one run. */
struct producer {
	const ProtobufCMessageDescriptor *desc;
	bool posting;
	bool as_json;
	bool raw; /* send the text as is, no decoding; implies as_json */
	bool progress;
	bool json_out;
	bool lines; /* JSON lines: positions are lines, else indexes */
	const char *topic;
	int timeout_ms;
	rd_kafka_t *rk;
	uint64_t read;    /* records seen, decodable or not */
	uint64_t queued;  /* handed to librdkafka */
	uint64_t reports; /* delivery reports served (of queued records) */
	uint64_t sent;    /* delivered */
	uint64_t failed;  /* not queued, or delivery failed */
	uint64_t offline; /* of failed: because no broker could be reached */
	/* Of failed: sent to a broker but not confirmed (in flight when purged
	 * or timed out, or without a report): they may be stored. */
	uint64_t unknown;
	uint64_t skipped; /* did not decode or too large */
	uint64_t shown;   /* per-record errors printed */
	json_t *errors;   /* the first PRODUCE_ERRORS_SHOWN, for --json */
};

/* Set by SIGINT or SIGTERM once the input is being read. */
static volatile sig_atomic_t interrupted;

/* The first signal stops the reading; a second one, of either kind, ends
 * the process by the signal's default action. */
static void
on_signal(int sig)
{
	if (interrupted) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		raise(sig); /* blocked until the handler returns */
		return;
	}
	interrupted = 1;
}

/* Reports a problem with the record at pos (line or index). */
static void
record_error(struct producer *P, uint64_t pos, const char *what, const char *detail)
{
	const char *unit = P->lines ? "line" : "index";

	if (P->shown < PRODUCE_ERRORS_SHOWN) {
		lm_cli_error(CMD, "%s %" PRIu64 ": %s: %s", unit, pos, what, detail);
		if (P->errors != NULL) {
			json_t *e = json_object();
			char msg[1024];
			snprintf(msg, sizeof(msg), "%s: %s", what, detail);
			json_object_set_new(e, unit, json_integer((json_int_t) pos));
			json_object_set_new(
			    e, "error", lm_cli_json_string(msg, strlen(msg)));
			json_array_append_new(P->errors, e);
		}
	} else if (P->shown == PRODUCE_ERRORS_SHOWN) {
		lm_cli_error(
		    CMD, "more record errors follow; they are counted, not shown");
	}
	P->shown++;
}

/* True for a delivery error that means no broker could be reached (as
 * opposed to a broker refusing the record). Purges count: drain() purges
 * only what timed out waiting for a broker. */
static bool
unreachable_error(rd_kafka_resp_err_t e)
{
	switch (e) {
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
	case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
		return true;
	default:
		return false;
	}
}

/* Delivery reports; runs on the main thread inside rd_kafka_poll/flush. */
static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct producer *P = opaque;
	(void) rk;

	P->reports++;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		P->sent++;
		return;
	}
	P->failed++;
	if (rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED) {
		/* A broker may have stored it: not a certain failure, nor a sign
		 * that no broker could be reached. */
		P->unknown++;
		record_error(P, (uint64_t) (uintptr_t) m->_private,
		    "not confirmed (it may have been stored)", rd_kafka_err2str(m->err));
		return;
	}
	if (unreachable_error(m->err))
		P->offline++;
	record_error(P, (uint64_t) (uintptr_t) m->_private, "not delivered",
	    rd_kafka_err2str(m->err));
}

/* Prints the counts on stderr, after serving the delivery reports that
 * arrived so that "sent" is current. */
static void
progress(struct producer *P)
{
	if (P->rk != NULL)
		rd_kafka_poll(P->rk, 0);
	fprintf(stderr,
	    LM_CLI_PROG " " CMD ": %" PRIu64 " records read, %" PRIu64 " sent, %" PRIu64
	                " failed, %" PRIu64 " skipped\n",
	    P->read, P->sent, P->failed, P->skipped);
}

/* Hands one payload to librdkafka (which copies it and the key of klen
 * bytes; no key when klen is 0), waiting while its queue is full (at most
 * timeout_ms). Returns true when queued; a key and payload over
 * PRODUCE_MESSAGE_MAX together are skipped. A queue that stayed full that long
 * is one no broker takes records from: the failure counts as offline, as
 * the records queued before it do when they time out. */
static bool
send_one(struct producer *P, uint64_t pos, const char *key, size_t klen,
    const void *payload, size_t len)
{
	int64_t deadline = lm_clock_ms() + P->timeout_ms;

	for (;;) {
		rd_kafka_headers_t *h = NULL;
		rd_kafka_resp_err_t e;

		if (P->as_json) {
			h = rd_kafka_headers_new(1);
			rd_kafka_header_add(
			    h, "content-type", -1, "application/json", -1);
		}
		e = rd_kafka_producev(P->rk, RD_KAFKA_V_TOPIC(P->topic),
		    RD_KAFKA_V_KEY(klen ? key : NULL, klen),
		    RD_KAFKA_V_VALUE((void *) payload, len), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_OPAQUE((void *) (uintptr_t) pos), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			P->queued++;
			rd_kafka_poll(P->rk, 0);
			return true;
		}
		/* Not taken over by librdkafka on failure. */
		if (h != NULL)
			rd_kafka_headers_destroy(h);
		if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
			/* The input's fault, as a record over 1 MiB is: a long key. */
			P->skipped++;
			record_error(P, pos, "too large",
			    "its key and value with their framing are over "
			    "the " PRODUCE_MESSAGE_MAX " bytes of a Kafka message");
			return false;
		}
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || lm_clock_ms() >= deadline) {
			P->failed++;
			if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				P->offline++;
			record_error(P, pos, "not sent", rd_kafka_err2str(e));
			return false;
		}
		rd_kafka_poll(P->rk, 100);
	}
}

/*
 * Decodes one record (text of len bytes, or an already parsed value) and
 * sends it. pos is its line or index for messages.
 */
static void
handle_record(
    struct producer *P, uint64_t pos, const char *text, size_t len, const json_t *value)
{
	ProtobufCMessage *msg = NULL;
	char err[512], *dumped = NULL;
	uint8_t *pb = NULL;
	const void *payload;
	size_t plen;
	const char *id;
	int rc;

	P->read++;
	if (value != NULL)
		rc = lm_json_decode_value(P->desc, value, &msg, err, sizeof(err));
	else
		rc = lm_json_decode(P->desc, text, len, &msg, err, sizeof(err));
	if (rc != LM_OK) {
		P->skipped++;
		record_error(P, pos, "does not decode", err);
		goto out;
	}
	id = P->posting ? ((Lunamatch__V1__JobPosting *) msg)->id
	                : ((Lunamatch__V1__CandidateProfile *) msg)->id;
	if (P->as_json) {
		if (value != NULL) {
			if ((dumped = json_dumps(value, JSON_COMPACT)) == NULL) {
				P->skipped++;
				record_error(P, pos, "cannot encode", "out of memory");
				goto out;
			}
			text = dumped;
			len = strlen(dumped);
		}
		payload = text;
		plen = len;
	} else {
		if ((rc = lm_pb_encode(msg, &pb, &plen)) != LM_OK) {
			P->skipped++;
			record_error(P, pos, "cannot encode", lm_strerror(rc));
			goto out;
		}
		payload = pb;
	}
	if (plen > PRODUCE_RECORD_MAX) {
		P->skipped++;
		record_error(P, pos, "too large", "the record is larger than 1 MiB");
		goto out;
	}
	send_one(P, pos, id, id != NULL ? strlen(id) : 0, payload, plen);
out:
	free(pb);
	free(dumped);
	if (msg != NULL)
		protobuf_c_message_free_unpacked(msg, NULL);
	if (P->progress && P->read % PRODUCE_PROGRESS_EVERY == 0)
		progress(P);
}

/* Counts the record at pos as skipped because its parse would take more
 * than PRODUCE_PARSE_MEM(len) bytes; what names it ("line", "element"). */
static void
skip_over_parse_mem(struct producer *P, uint64_t pos, const char *what, size_t len)
{
	char detail[128];

	snprintf(detail, sizeof(detail),
	    "parsing the %s would take more than %zu MiB of memory (too many values)",
	    what, PRODUCE_PARSE_MEM(len) >> 20);
	P->skipped++;
	record_error(P, pos, "too large", detail);
}

/*
 * --raw: sends one record as is. text (len bytes) is a line as written, or,
 * when value is not NULL, an array element sent as its compact JSON text.
 * The key is the record's "id" when it is a JSON object with a string id
 * (which may hold any bytes, NUL included: its length is used). A line whose
 * parse would take more than PRODUCE_PARSE_MEM(len) is skipped.
 */
static void
handle_raw(
    struct producer *P, uint64_t pos, const char *text, size_t len, const json_t *value)
{
	json_t *parsed = NULL;
	const json_t *id;
	char *dumped = NULL;
	bool over = false;

	P->read++;
	if (value != NULL) {
		dumped = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
		if (dumped == NULL) {
			P->skipped++;
			record_error(P, pos, "cannot encode", "out of memory");
			goto out;
		}
		text = dumped;
		len = strlen(dumped);
	} else {
		/* Only to find the key: text that does not parse goes as is. */
		parsed = lm_json_loadb_capped(
		    text, len, 0, PRODUCE_PARSE_MEM(len), NULL, &over);
		if (over) {
			skip_over_parse_mem(P, pos, "line", len);
			goto out;
		}
		value = parsed;
	}
	if (len > PRODUCE_RECORD_MAX) {
		P->skipped++;
		record_error(P, pos, "too large", "the record is larger than 1 MiB");
		goto out;
	}
	id = json_is_object(value) ? json_object_get(value, "id") : NULL;
	if (json_is_string(id))
		send_one(
		    P, pos, json_string_value(id), json_string_length(id), text, len);
	else
		send_one(P, pos, NULL, 0, text, len);
out:
	json_decref(parsed);
	free(dumped);
	if (P->progress && P->read % PRODUCE_PROGRESS_EVERY == 0)
		progress(P);
}

static bool
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * JSON lines: reads in line by line, each at most PRODUCE_RECORD_MAX bytes,
 * the whole at most PRODUCE_FILE_MAX. first_line is the number of the line
 * the stream is at (blank lines before it were consumed). Returns 0, or -1 after
 * reporting an input error (records before it were sent).
 */
static int
run_lines(struct producer *P, FILE *in, const char *name, uint64_t first_line)
{
	char *buf = malloc(PRODUCE_RECORD_MAX + 1);
	uint64_t line = first_line - 1, total = 0;
	int rv = 0;

	if (buf == NULL) {
		lm_cli_error(CMD, "out of memory");
		return -1;
	}
	for (;;) {
		size_t len = 0;
		bool toolong = false;
		int c = EOF;

		/* The flag is looked at before every read: a read that the
		 * signal did not interrupt (it came while a record was sent)
		 * would wait on the input. */
		while (!interrupted && (c = getc(in)) != EOF && c != '\n') {
			if (len < PRODUCE_RECORD_MAX)
				buf[len++] = (char) c;
			else
				toolong = true;
			if (++total > PRODUCE_FILE_MAX)
				break;
		}
		/* A read cut short by the signal fails with EINTR: the line
		 * read so far is not sent. */
		if (interrupted) {
			lm_cli_error(CMD,
			    "%s: interrupted; stopped reading after line %" PRIu64, name,
			    line);
			rv = -1;
			break;
		}
		if (total > PRODUCE_FILE_MAX) {
			lm_cli_error(CMD,
			    "%s: input larger than %u MiB; stopped at line %" PRIu64,
			    name, PRODUCE_FILE_MAX >> 20, line + 1);
			rv = -1;
			break;
		}
		if (c == EOF && ferror(in)) {
			lm_cli_error(CMD, "%s: read error: %s", name, strerror(errno));
			rv = -1;
			break;
		}
		if (c == EOF && len == 0 && !toolong)
			break;
		total += c == '\n';
		line++;
		while (len > 0 && is_space((unsigned char) buf[len - 1]))
			len--;
		size_t start = 0;
		while (start < len && is_space((unsigned char) buf[start]))
			start++;
		if (toolong) {
			P->read++;
			P->skipped++;
			record_error(
			    P, line, "too large", "the line is longer than 1 MiB");
		} else if (start < len && P->raw) {
			handle_raw(P, line, buf + start, len - start, NULL);
		} else if (start < len) {
			handle_record(P, line, buf + start, len - start, NULL);
		}
		if (c == EOF)
			break;
	}
	free(buf);
	return rv;
}

/*
 * A JSON array held in memory, walked one element at a time: only one
 * element is ever parsed, since a parse of the whole array takes tens of
 * bytes per value (an array of empty arrays: 48 times the file). The walk
 * finds where each element ends (strings, escapes and nesting respected);
 * the element's own syntax is left to its parse.
 */
struct array_walk {
	const char *buf; /* the input, buf[0] the opening '[' */
	size_t len;
	size_t pos;     /* where the walk is */
	uint64_t line;  /* line of buf[pos] */
	size_t line_at; /* offset where that line starts */
	bool first;     /* no element read yet */
	bool done;      /* the closing ']' was passed */
};

/* Passes the byte at w->pos, counting lines. */
static void
walk_step(struct array_walk *w)
{
	if (w->buf[w->pos] == '\n') {
		w->line++;
		w->line_at = w->pos + 1;
	}
	w->pos++;
}

static void
walk_space(struct array_walk *w)
{
	while (w->pos < w->len && is_space((unsigned char) w->buf[w->pos]))
		walk_step(w);
}

/* Writes what is wrong at the walk's position into err; returns -1. */
static int
walk_fail(const struct array_walk *w, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s (line %" PRIu64 ", column %zu)", what, w->line,
	    w->pos - w->line_at + 1);
	return -1;
}

/*
 * The next element: sets *start and *n to its text (blanks around it left
 * out) and *line, *col to where it starts. Returns 1; 0 after the closing
 * ']' (nothing but blanks may follow it); -1 with err set when the text is
 * not an array of values.
 */
static int
walk_next(struct array_walk *w, size_t *start, size_t *n, uint64_t *line, size_t *col,
    char *err, size_t errlen)
{
	int depth = 0;
	bool str = false, esc = false;

	walk_space(w);
	if (w->first && w->pos < w->len && w->buf[w->pos] == ']') {
		walk_step(w);
		w->done = true;
	}
	if (w->done) {
		walk_space(w);
		return w->pos < w->len ? walk_fail(w, "text after the array", err, errlen)
		                       : 0;
	}
	w->first = false;
	*start = w->pos;
	*line = w->line;
	*col = w->pos - w->line_at + 1;
	for (; w->pos < w->len; walk_step(w)) {
		char c = w->buf[w->pos];
		if (str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				str = false;
		} else if (c == '"') {
			str = true;
		} else if (c == '[' || c == '{') {
			depth++;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		} else if (depth == 0 && (c == ',' || c == ']' || c == '}')) {
			break;
		}
	}
	if (w->pos == w->len)
		return walk_fail(w, "']' expected at the end of the input", err, errlen);
	if (w->buf[w->pos] == '}')
		return walk_fail(w, "unexpected '}'", err, errlen);
	*n = w->pos - *start;
	while (*n > 0 && is_space((unsigned char) w->buf[*start + *n - 1]))
		(*n)--;
	if (*n == 0)
		return walk_fail(w, "a value expected", err, errlen);
	w->done = w->buf[w->pos] == ']';
	walk_step(w);
	return 1;
}

/* The element buf[start..start+n), parsed within PRODUCE_PARSE_MEM(n);
 * NULL with *over true when that is not enough, or with err set (its place
 * in the file) when it does not parse. *valid (when NULL is returned and
 * not *over) tells an element that is JSON but not one jansson holds (a
 * repeated key, an integer beyond 64 bits, a \u0000): an error of that
 * element alone, not of the array. */
static json_t *
parse_element(const struct array_walk *w, size_t start, size_t n, uint64_t line,
    size_t col, bool *over, bool *valid, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v = lm_json_loadb_capped(w->buf + start, n,
	    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, PRODUCE_PARSE_MEM(n), &je, over);

	*valid = false;
	if (v == NULL && !*over) {
		snprintf(err, errlen, "%s (line %" PRIu64 ", column %zu)", je.text,
		    line + (uint64_t) (je.line > 1 ? je.line - 1 : 0),
		    je.line > 1 ? (size_t) je.column : col - 1 + (size_t) je.column);
		switch (json_error_code(&je)) {
		case json_error_duplicate_key:
		case json_error_numeric_overflow:
		case json_error_null_character:
		case json_error_null_byte_in_key:
			*valid = true;
			break;
		default:
			break;
		}
	}
	return v;
}

/*
 * A JSON array: reads the whole input (at most PRODUCE_FILE_MAX), checks
 * that it is an array of JSON values, then sends every element, parsing one
 * at a time. An element longer than PRODUCE_RECORD_MAX as written is
 * skipped unparsed, as a JSON line would be, and so is one whose parse
 * would take more than PRODUCE_PARSE_MEM of its length. first_line is the
 * line of the '['. Returns 0, or -1 after reporting an input error (nothing
 * is sent when the array is not valid JSON, except that the check does not
 * finish the parse of an element it skips: a malformed one over either
 * limit is only counted as skipped, and the others are sent).
 */
static int
run_array(struct producer *P, FILE *in, const char *name, uint64_t first_line)
{
	size_t cap = 1 << 16, len = 0, n, start, elen, col;
	char *buf = malloc(cap), *nb, err[512];
	struct array_walk w;
	uint64_t i, line;
	json_t *v;
	bool over, valid;
	int rc;

	if (buf == NULL)
		goto nomem;
	while (!interrupted && (n = fread(buf + len, 1, cap - len, in)) > 0) {
		len += n;
		if (len > PRODUCE_FILE_MAX) {
			lm_cli_error(CMD, "%s: input larger than %u MiB", name,
			    PRODUCE_FILE_MAX >> 20);
			free(buf);
			return -1;
		}
		if (len == cap) {
			cap = cap * 2 > PRODUCE_FILE_MAX + 1 ? PRODUCE_FILE_MAX + 1
			                                     : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL)
				goto nomem;
			buf = nb;
		}
	}
	if (interrupted) {
		lm_cli_error(CMD, "%s: interrupted while reading; nothing sent", name);
		free(buf);
		return -1;
	}
	if (ferror(in)) {
		lm_cli_error(CMD, "%s: read error: %s", name, strerror(errno));
		free(buf);
		return -1;
	}

	/* First the whole array is checked, one element parsed at a time. */
	w = (struct array_walk){
	    .buf = buf, .len = len, .pos = 1, .line = first_line, .first = true};
	while ((rc = walk_next(&w, &start, &elen, &line, &col, err, sizeof(err))) == 1) {
		if (elen > PRODUCE_RECORD_MAX)
			continue;
		v = parse_element(
		    &w, start, elen, line, col, &over, &valid, err, sizeof(err));
		if (v == NULL && (over || valid))
			continue;
		if (v == NULL) {
			rc = -1;
			break;
		}
		json_decref(v);
	}
	if (rc < 0) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "not a valid JSON array: %s", err);
		lm_cli_error(CMD, "%s: %s", name, msg);
		/* The report says why nothing was sent, with no index. */
		if (P->errors != NULL) {
			json_t *e = json_object();
			json_object_set_new(
			    e, "error", lm_cli_json_string(msg, strlen(msg)));
			json_array_append_new(P->errors, e);
		}
		free(buf);
		return -1;
	}

	w = (struct array_walk){
	    .buf = buf, .len = len, .pos = 1, .line = first_line, .first = true};
	for (i = 0; !interrupted &&
	            walk_next(&w, &start, &elen, &line, &col, err, sizeof(err)) == 1;
	     i++) {
		if (elen > PRODUCE_RECORD_MAX) {
			P->read++;
			P->skipped++;
			record_error(
			    P, i, "too large", "the element is longer than 1 MiB");
			continue;
		}
		v = parse_element(
		    &w, start, elen, line, col, &over, &valid, err, sizeof(err));
		if (v == NULL && over) {
			P->read++;
			skip_over_parse_mem(P, i, "element", elen);
			continue;
		}
		if (v == NULL && valid && P->raw) {
			/* Sent as written, as a JSON line would be. */
			handle_raw(P, i, w.buf + start, elen, NULL);
			continue;
		}
		if (v == NULL && valid) {
			P->read++;
			P->skipped++;
			record_error(P, i, "does not decode", err);
			continue;
		}
		if (v == NULL) {
			/* It parsed a moment ago: out of memory. */
			P->read++;
			P->skipped++;
			record_error(P, i, "cannot parse", err);
			continue;
		}
		if (P->raw)
			handle_raw(P, i, NULL, 0, v);
		else
			handle_record(P, i, NULL, 0, v);
		json_decref(v);
	}
	free(buf);
	if (interrupted) {
		if (w.done)
			lm_cli_error(CMD, "%s: interrupted after the last element", name);
		else
			lm_cli_error(CMD,
			    "%s: interrupted; the elements from index %" PRIu64
			    " on were not sent",
			    name, i);
		return -1;
	}
	return 0;
nomem:
	free(buf);
	lm_cli_error(CMD, "out of memory");
	return -1;
}

/* Creates the idempotent producer. Returns LM_OK or prints why not. */
static int
new_producer(struct producer *P, const lm_config *cfg)
{
	rd_kafka_conf_t *c = NULL;
	char err[512], tmo[16];
	int rc;

	snprintf(tmo, sizeof(tmo), "%d", P->timeout_ms);
	if ((rc = lm_kafka_conf(cfg->brokers, "lunamatch-cli", &c, err, sizeof(err))) !=
	        LM_OK ||
	    (rc = lm_kafka_set(c, "enable.idempotence", "true", err, sizeof(err))) !=
	        LM_OK ||
	    (rc = lm_kafka_set(c, "message.timeout.ms", tmo, err, sizeof(err))) !=
	        LM_OK ||
	    (rc = lm_kafka_set(c, "message.max.bytes", PRODUCE_MESSAGE_MAX, err,
	         sizeof(err))) != LM_OK) {
		lm_cli_error(CMD, "%s", err);
		/* lm_kafka_conf leaves c NULL when it fails. */
		if (c != NULL)
			rd_kafka_conf_destroy(c);
		return rc;
	}
	rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
	rd_kafka_conf_set_opaque(c, P);
	if ((P->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err))) == NULL) {
		lm_cli_error(CMD, "cannot create the Kafka producer: %s", err);
		rd_kafka_conf_destroy(c);
		return LM_EKAFKA;
	}
	return LM_OK;
}

/* Waits until every queued record has its delivery report; what is still
 * undelivered after timeout_ms is purged and counted as failed. Records
 * that were never queued (counted in failed or skipped) have no report to
 * wait for. */
static void
drain(struct producer *P)
{
	int64_t deadline = lm_clock_ms() + P->timeout_ms;

	while (P->reports < P->queued && lm_clock_ms() < deadline)
		rd_kafka_flush(P->rk, 100);
	if (P->reports < P->queued) {
		rd_kafka_purge(P->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		/* Purged messages get delivery reports with an error. */
		for (int i = 0; i < 50 && P->reports < P->queued; i++)
			rd_kafka_poll(P->rk, 100);
	}
	/* Anything that still has no report is undelivered as far as we know. */
	if (P->reports < P->queued) {
		uint64_t lost = P->queued - P->reports;
		lm_cli_error(CMD,
		    "%" PRIu64
		    " records got no delivery report (they may have been stored)",
		    lost);
		P->failed += lost;
		P->unknown += lost;
	}
}

/* Prints the counts on stdout. Returns 0, or -1 after reporting that they
 * could not be written. */
static int
summary(struct producer *P, const char *format)
{
	int rv;

	if (P->json_out) {
		json_t *o = json_object();
		json_object_set_new(
		    o, "topic", lm_cli_json_string(P->topic, strlen(P->topic)));
		json_object_set_new(o, "format", json_string(format));
		json_object_set_new(o, "read", json_integer((json_int_t) P->read));
		json_object_set_new(o, "sent", json_integer((json_int_t) P->sent));
		json_object_set_new(o, "failed", json_integer((json_int_t) P->failed));
		json_object_set_new(o, "skipped", json_integer((json_int_t) P->skipped));
		json_object_set_new(
		    o, "unconfirmed", json_integer((json_int_t) P->unknown));
		json_object_set(o, "errors", P->errors);
		rv = lm_cli_json_line(stdout, o);
		json_decref(o);
	} else {
		if (P->unknown > 0)
			printf("sent %" PRIu64 ", failed %" PRIu64 " (%" PRIu64
			       " of them not confirmed: they may have been stored), "
			       "skipped %" PRIu64 "\n",
			    P->sent, P->failed, P->unknown, P->skipped);
		else
			printf("sent %" PRIu64 ", failed %" PRIu64 ", skipped %" PRIu64
			       "\n",
			    P->sent, P->failed, P->skipped);
		rv = lm_cli_flush(stdout);
	}
	if (rv != 0)
		lm_cli_error(CMD,
		    "cannot write the counts to standard output (sent %" PRIu64
		    ", failed %" PRIu64 ", skipped %" PRIu64 ")",
		    P->sent, P->failed, P->skipped);
	return rv;
}

int
lm_cli_produce(const lm_config *cfg, int argc, char **argv)
{
	struct producer P = {0};
	const char *topic_opt = NULL, *name;
	uint64_t tmo = PRODUCE_TIMEOUT_DEFAULT;
	bool progress_opt = false;
	FILE *in = NULL;
	struct stat st;
	int c, partitions = 0, rc, rv = LM_CLI_EXIT_FAIL, input_rv, summary_rv;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_produce_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_AS_JSON:
			P.as_json = true;
			break;
		case OPT_RAW:
			P.raw = true;
			P.as_json = true;
			break;
		case OPT_TOPIC:
			topic_opt = optarg;
			break;
		case OPT_TIMEOUT:
			if (!lm_textfile_whole(optarg, 1, PRODUCE_TIMEOUT_MAX, &tmo))
				return lm_cli_usage_error(CMD,
				    "--timeout-ms: \"%s\" is not a number in 1..%d",
				    optarg, PRODUCE_TIMEOUT_MAX);
			break;
		case OPT_PROGRESS:
			progress_opt = true;
			break;
		default:
			return lm_cli_usage_error(CMD, "bad option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2)
		return lm_cli_usage_error(CMD, "expected postings|profiles and FILE");
	if (strcmp(argv[0], "postings") == 0 || strcmp(argv[0], "posting") == 0) {
		P.posting = true;
		P.desc = &lunamatch__v1__job_posting__descriptor;
		P.topic = cfg->topic_postings;
	} else if (strcmp(argv[0], "profiles") == 0 || strcmp(argv[0], "profile") == 0) {
		P.desc = &lunamatch__v1__candidate_profile__descriptor;
		P.topic = cfg->topic_profiles;
	} else {
		return lm_cli_usage_error(
		    CMD, "unknown record kind \"%s\": postings or profiles", argv[0]);
	}
	if (topic_opt != NULL) {
		if (!lm_kafka_topic_name_ok(topic_opt))
			return lm_cli_usage_error(CMD,
			    "--topic: not a Kafka topic name (1..%d characters of "
			    "[a-zA-Z0-9._-], not \".\" or \"..\")",
			    LM_KAFKA_TOPIC_MAX);
		P.topic = topic_opt;
	}
	P.timeout_ms = (int) tmo;
	P.progress = progress_opt || isatty(STDERR_FILENO);
	P.json_out = cfg->json;
	if (P.json_out && (P.errors = json_array()) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}

	/* The input first: a missing file needs no broker to be reported. */
	name = argv[1];
	if (strcmp(name, "-") == 0) {
		in = stdin;
		name = "standard input";
	} else if ((in = fopen(name, "rb")) == NULL) {
		lm_cli_error(CMD, "cannot open %s: %s", name, strerror(errno));
		goto out;
	}
	if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t) st.st_size > PRODUCE_FILE_MAX) {
		lm_cli_error(
		    CMD, "%s: file larger than %u MiB", name, PRODUCE_FILE_MAX >> 20);
		goto out;
	}

	if (new_producer(&P, cfg) != LM_OK)
		goto out;
	rc = lm_kafka_topic_partitions(P.rk, P.topic, P.timeout_ms, &partitions);
	if (rc != LM_OK) {
		rv = lm_cli_topic_status(CMD, cfg->brokers, P.topic, rc);
		goto out;
	}

	/* From here on a signal stops the reading, not the process: what was
	 * handed over is waited for and reported. A second one ends it. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* Detect the format by the first non-space character. */
	uint64_t first_line = 1;
	while (!interrupted && (c = getc(in)) != EOF && is_space(c))
		first_line += c == '\n';
	if (c != EOF)
		ungetc(c, in);
	if (c == '[' && !interrupted) {
		P.lines = false;
		input_rv = run_array(&P, in, name, first_line);
	} else {
		P.lines = true;
		input_rv = run_lines(&P, in, name, first_line);
	}
	drain(&P);
	if (P.progress && P.read >= PRODUCE_PROGRESS_EVERY)
		progress(&P);
	summary_rv = summary(&P, P.raw ? "raw" : P.as_json ? "json" : "protobuf");
	if (P.sent == 0 && P.failed > 0 && P.offline == P.failed) {
		/* Nothing got through and only for want of a broker. */
		lm_cli_error(CMD, "no record delivered: Kafka at %s cannot be reached",
		    cfg->brokers);
		rv = LM_CLI_EXIT_UNAVAILABLE;
	} else if (input_rv == 0 && summary_rv == 0 && P.failed == 0 && P.skipped == 0) {
		rv = LM_CLI_EXIT_OK;
	} else {
		rv = LM_CLI_EXIT_FAIL;
	}
out:
	if (P.rk != NULL)
		rd_kafka_destroy(P.rk);
	if (in != NULL && in != stdin)
		fclose(in);
	json_decref(P.errors);
	return rv;
}
