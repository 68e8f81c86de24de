/*
 * cli.h - what the commands of the `lunamatch` command-line tool share.
 *
 * The tool is a table of commands (main.c). Each row names a handler, a
 * one-line help, a usage text and the command's own options. Adding a command
 * is adding a cmd_<name>.c file with its handler and option table, declaring
 * both here and adding one row to the table in main.c.
 *
 * Option handling is done once, by the dispatcher, so that every command
 * behaves the same way:
 * - Global flags (--brokers, --data-dir, --json, --url, --topic-*, ...) may be
 *   written before the command name or anywhere among its arguments.
 * - The dispatcher parses the command's arguments with getopt_long over the
 *   command's options plus the global flags (GNU permutation: options and
 *   positional arguments may be mixed; "--" ends the options). Global flags
 *   go into the configuration; --help/-h prints the command's usage; an
 *   unknown option or a missing value is a usage error.
 * - The handler is then called with the final configuration and a clean
 *   argument vector: argv[0] is the command name, followed by the command's
 *   own options, then "--", then the positional arguments. Handlers parse it
 *   with getopt_long over their option table (lm_cli_getopt) and find the
 *   positional arguments at optind.
 *
 * Exit statuses: LM_CLI_EXIT_OK (0) success, LM_CLI_EXIT_FAIL (1) the
 * operation failed, LM_CLI_EXIT_USAGE (2) usage error. Errors go to stderr,
 * results to stdout.
 */
#ifndef LUNAMATCH_CLI_H
#define LUNAMATCH_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <protobuf-c/protobuf-c.h>

#include "lunamatch/client.h"
#include "lunamatch/config.h"
#include "lunamatch/v1/match.pb-c.h"

#define LM_CLI_PROG "lunamatch"

#define LM_CLI_EXIT_OK          0
#define LM_CLI_EXIT_FAIL        1
#define LM_CLI_EXIT_USAGE       2
#define LM_CLI_EXIT_UNAVAILABLE 3 /* the service or Kafka did not answer */

/*
 * A command handler. cfg is the configuration after all global flags;
 * argv is laid out as described above. Returns an LM_CLI_EXIT_* status.
 * Handlers run on the main thread and may install signal handlers.
 */
typedef int (*lm_cli_fn)(const lm_config *cfg, int argc, char **argv);

/*
 * One row of the command table. longopts is terminated by a zero entry;
 * every entry must have flag == NULL and a val other than '?' and ':' (the
 * values the handler's getopt loop sees); at most 64 entries. shortopts lists the
 * command's short options in getopt syntax ("n:f"), without a leading '+',
 * '-' or ':'; it may be "" and must not use 'h'.
 */
typedef struct lm_cli_command {
	const char *name;
	lm_cli_fn fn;
	const char *help;  /* one line, no trailing period */
	const char *usage; /* full text: synopsis, description, options */
	const char *shortopts;
	const struct option *longopts;
} lm_cli_command;

/* ---- commands --------------------------------------------------------- */

int lm_cli_produce(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_produce_options[];
extern const char lm_cli_produce_usage[];

int lm_cli_store(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_store_options[];
extern const char lm_cli_store_usage[];

int lm_cli_dlq(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_dlq_options[];
extern const char lm_cli_dlq_usage[];

/* cmd_match.c: match jobs|candidates, explain, get, health (exit 3 when the
 * service is unavailable). */
int lm_cli_match(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_match_options[];
extern const char lm_cli_match_usage[];

int lm_cli_explain(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_explain_options[];
extern const char lm_cli_explain_usage[];

int lm_cli_get(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_get_options[];
extern const char lm_cli_get_usage[];

int lm_cli_health(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_health_options[];
extern const char lm_cli_health_usage[];

/* cmd_bench.c: load on a running match server, against a raw nng echo. */
int lm_cli_bench(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_bench_options[];
extern const char lm_cli_bench_usage[];

/* cmd_watch.c */
int lm_cli_watch(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_watch_options[];
extern const char lm_cli_watch_usage[];

/* Prints the event that m carries on stdout: a table row, or with json one
 * JSON line. Returns 0, 1 when the message is not a MatchEvent (reported on
 * stderr, skipped), or -1 when stdout failed. */
int lm_cli_watch_print(const rd_kafka_message_t *m, bool json);

/* cmd_eval.c: ranking quality on a judged evaluation set. */
int lm_cli_eval(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_eval_options[];
extern const char lm_cli_eval_usage[];

/* cmd_audit.c: selection rates and impact ratios by demographic category. */
int lm_cli_audit(const lm_config *cfg, int argc, char **argv);
extern const struct option lm_cli_audit_options[];
extern const char lm_cli_audit_usage[];

/* ---- the match service (client.c) --------------------------------------- */

/*
 * Opens a client of the match service at cfg->rpc_url with the TLS options
 * and default timeout of cfg. Returns LM_CLI_EXIT_OK with *out set (close it
 * with lm_client_close), or LM_CLI_EXIT_USAGE after printing why the URL or
 * the TLS options cannot be used.
 */
int lm_cli_client_open(const char *cmd, const lm_config *cfg, lm_client **out);

/*
 * The exit status of a finished call, printing why it failed: rc and status
 * are what lm_client_call returned, errmsg its message. No answer or
 * UNAVAILABLE / RESOURCE_EXHAUSTED give LM_CLI_EXIT_UNAVAILABLE, a bad
 * request LM_CLI_EXIT_USAGE, other failures LM_CLI_EXIT_FAIL.
 */
int lm_cli_call_status(
    const char *cmd, const lm_config *cfg, int rc, int status, const char *errmsg);

/* ---- input files (input.c) ---------------------------------------------- */

/*
 * Reads the whole file at path into *buf (malloc'd, NUL-terminated; the
 * caller frees it) of *len bytes. A file larger than max bytes is refused.
 * Returns LM_CLI_EXIT_OK, or LM_CLI_EXIT_FAIL after printing the error.
 */
int lm_cli_read_file(
    const char *cmd, const char *path, size_t max, char **buf, size_t *len);

/* ---- argument helpers (output.c) -------------------------------------- */

/*
 * getopt_long over a handler's argv (see above): call it in a loop like
 * getopt_long. The first call of a loop must pass first = true to reset
 * getopt's state. Returns the option's val, -1 at "--" or the end, '?' or
 * ':' for errors (which the dispatcher has already ruled out).
 */
int lm_cli_getopt(int argc, char **argv, const char *shortopts,
    const struct option *longopts, bool first);

/* Parses an explain level: "none", "summary" or "full" (cmd_match.c).
 * Returns false for anything else. */
bool lm_cli_parse_explain(const char *s, Lunamatch__V1__ExplainLevel *out);

/*
 * The exit status of a failed look-up of topic on the Kafka cluster at
 * brokers (rc: what lm_kafka_topic_partitions returned, not LM_OK), after
 * printing why, naming the topic: LM_CLI_EXIT_FAIL when the topic does not
 * exist or this client is not authorized for it (LM_EACCES: Kafka answered,
 * a retry does not help); LM_CLI_EXIT_UNAVAILABLE when it has no leader for
 * now (LM_EBUSY) or Kafka cannot be reached.
 */
int lm_cli_topic_status(const char *cmd, const char *brokers, const char *topic, int rc);

/* Prints "lunamatch CMD: MESSAGE\n" on stderr. cmd may be NULL. */
void lm_cli_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the error followed by a pointer to `lunamatch help CMD` and returns
 * LM_CLI_EXIT_USAGE. */
int lm_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Checks a record id given on the command line (an option's value or an
 * argument) before any call or read: every command that takes one checks
 * it here. An id is what ingest takes as one (lm_record_id_valid: 1..128
 * bytes of letters, digits and . _ : -); any other cannot name a record.
 * what names the id in the message (an option such as "--job", or
 * "posting"). Returns LM_CLI_EXIT_OK, or LM_CLI_EXIT_USAGE after saying
 * why ("--job: the id is empty", or the id, made printable and cut, and
 * the rule).
 */
int lm_cli_check_id(const char *cmd, const char *what, const char *id);

/* ---- topic reader (consume.c) ----------------------------------------- */

/*
 * A reader of every partition of one topic for a command that prints what
 * it reads (dlq tail, watch). It assigns the partitions directly under a
 * throwaway group id, joins no consumer group and commits nothing. Used by
 * the main thread only.
 */
typedef struct lm_cli_consumer lm_cli_consumer;

/*
 * Connects to cfg->brokers, waits at most timeout_ms for the metadata of
 * topic, assigns all its partitions at offset start (an offset or
 * RD_KAFKA_OFFSET_BEGINNING, _END, _TAIL(n)) and installs the SIGINT and
 * SIGTERM handlers behind lm_cli_interrupted. With track_eof the reader
 * notices the end of each partition (lm_cli_consumer_at_end). cmd names the
 * command in error messages and in the group id; it must outlive the
 * reader. Returns LM_CLI_EXIT_OK with *out set (close it with
 * lm_cli_consumer_close), LM_CLI_EXIT_UNAVAILABLE when Kafka did not answer,
 * or LM_CLI_EXIT_FAIL; errors are printed.
 */
int lm_cli_consumer_open(const lm_config *cfg, const char *cmd, const char *topic,
    int64_t start, bool track_eof, int timeout_ms, lm_cli_consumer **out);

/*
 * Polls for at most poll_ms. Returns 1 with *out a message that carries data
 * (the caller destroys it with rd_kafka_message_destroy); 0 when there was
 * nothing to hand out (no message, the end of a partition, or an error that
 * was printed and that the reader survives); -1 after printing an error
 * that ends the read (the topic is gone or not readable). Errors name the
 * topic, and the partition when they concern one.
 */
int lm_cli_consumer_next(lm_cli_consumer *c, int poll_ms, rd_kafka_message_t **out);

/* True when, with track_eof, every partition has reached its end. */
bool lm_cli_consumer_at_end(const lm_cli_consumer *c);

/* Leaves the partitions and frees the reader; NULL is a no-op. */
void lm_cli_consumer_close(lm_cli_consumer *c);

/* True once SIGINT or SIGTERM arrived after lm_cli_consumer_open. */
bool lm_cli_interrupted(void);

/* ---- output helpers (output.c) ---------------------------------------- */

/* Most bytes of one table cell that are printed; a longer cell is cut and
 * ends with "...". */
#define LM_CLI_CELL_MAX 1024

/* A table column: its header and the width it is padded to. A cell wider
 * than the column is printed whole (up to LM_CLI_CELL_MAX) and shifts the
 * rest of its row; the last column is never padded. */
typedef struct lm_cli_col {
	const char *header;
	int width;
} lm_cli_col;

/*
 * Streaming tables: rows are written as they come, so that a listing of any
 * length needs no memory. Cells are bytes of length strlen (NULL prints
 * "-"); control characters and invalid UTF-8 are shown as '?', as
 * lm_cli_printable makes them, so that data can never drive the terminal.
 * Widths count UTF-8 characters.
 */
void lm_cli_table_header(FILE *out, const lm_cli_col *cols, size_t n);
void lm_cli_table_row(
    FILE *out, const lm_cli_col *cols, size_t n, const char *const *cells);

/*
 * Copies src[0..n) into dst (dstlen >= 4 bytes) as printable text for a
 * table: control characters (C0, DEL, and C1, U+0080 to U+009F, whose
 * U+009B a terminal may take for CSI) and invalid UTF-8 become '?', and a
 * text that does not fit is cut at a character boundary and ends with
 * "...".
 */
void lm_cli_printable(char *dst, size_t dstlen, const void *src, size_t n);

/* Bytes of a buffer for an id read from input and quoted in a message
 * (lm_cli_id_text): a valid record id (128 bytes) fits whole. */
#define LM_CLI_ID_TEXT 132

/* Bytes of a buffer for lm_cli_score_text. */
#define LM_CLI_SCORE_TEXT 16

/* A score or feature value in [0, 1] with 3 decimals, as tables show it,
 * in buf; one short of 1 never reads as 1.000 (0.9996 is 0.999), as the
 * service's own texts never call it perfect. A value outside [0, 1] (from a
 * faulty server or producer) is shown with %.3g ("nan", "1e+20"). */
const char *lm_cli_score_text(char buf[LM_CLI_SCORE_TEXT], double v);

/* The NUL-terminated id as printable text for a message, in buf (at least
 * LM_CLI_ID_TEXT bytes), as lm_cli_printable makes it: an id from a file
 * may hold terminal escapes and be of any length. Returns buf. */
const char *lm_cli_id_text(char buf[LM_CLI_ID_TEXT], const char *id);

/*
 * Prints on stderr, one line each, the compliance warnings ingest attached
 * to m when it is a JobPosting (see records.proto, ComplianceWarning), so
 * that a person reading `get` sees them while stdout stays plain JSON.
 * Prints nothing for a profile or a posting without warnings.
 */
void lm_cli_print_warnings(const char *cmd, const ProtobufCMessage *m);

/* One compliance warning as a line of text (without a newline): "compliance
 * warning (<category>): <field> "<phrase>"[ is not used as a requirement].
 * <reason>", control bytes made printable. */
void lm_cli_warning_text(
    char *buf, size_t len, const Lunamatch__V1__ComplianceWarning *w);

/*
 * A new JSON string holding src[0..n): valid UTF-8 is kept as is, each byte
 * of invalid UTF-8 becomes U+FFFD. Returns a new reference or NULL (out of
 * memory).
 */
json_t *lm_cli_json_string(const void *src, size_t n);

/* Flushes out. Returns 0 when everything written to it since the start
 * reached it, -1 when anything was lost: a failed write of more than the
 * buffer leaves nothing for the flush to fail on, only the stream's error
 * flag, which this reads too. */
int lm_cli_flush(FILE *out);

/* Flushes stdout (lm_cli_flush). Returns LM_CLI_EXIT_OK, or LM_CLI_EXIT_FAIL after
 * reporting (as cmd) "cannot write to standard output" when anything written
 * to it since the start was lost. */
int lm_cli_stdout_written(const char *cmd);

/* Writes v as one compact JSON line to out (lm_json_dumps: control
 * characters escaped) and flushes it. v is borrowed. Returns 0, or -1 if v
 * could not be written. */
int lm_cli_json_line(FILE *out, const json_t *v);

/*
 * lm_json_encode(msg, flags, out) for output people read: a message holding
 * a NaN or infinite float is encoded with them as the proto3 JSON strings
 * ("NaN", "Infinity", "-Infinity", LM_JSON_NONFINITE_STRINGS) and a warning
 * naming what (e.g. "profile ID") is printed on stderr, instead of failing.
 * Returns LM_OK with *out malloc'd (the caller frees it), or the error of
 * lm_json_encode after printing it.
 */
int lm_cli_json_encode(const char *cmd, const char *what, const ProtobufCMessage *msg,
    unsigned flags, char **out);

#endif /* LUNAMATCH_CLI_H */
