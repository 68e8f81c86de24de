/*
 * output.c - argument, error and output helpers shared by the commands of
 * the `lunamatch` tool: streaming tables that are safe to print whatever the
 * data holds, JSON lines, and the error conventions (see cli.h).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/record.h"
#include "lunamatch/text.h"
#include "lunamatch/textfile.h"
#include "lunamatch/v1/records.pb-c.h"

int
lm_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
    bool first)
{
	char spec[64];

	if (first) {
		optind = 0; /* GNU getopt: full re-initialization */
		opterr = 0;
	}
	/* "+": stop at the first non-option (the dispatcher put "--" before
	 * the positional arguments); ":": report a missing value as ':'. */
	snprintf(spec, sizeof(spec), "+:%s", shortopts ? shortopts : "");
	return getopt_long(argc, argv, spec, longopts, NULL);
}

/* Messages quote what servers, brokers and files say: shown as printable
 * text, one line, of at most 2,047 bytes. msg is the larger, so that a
 * message cut there is still longer than shown and ends in "...". */
static void
verror(const char *cmd, const char *fmt, va_list ap)
{
	char msg[4096], shown[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	lm_cli_printable(shown, sizeof(shown), msg, strlen(msg));
	if (cmd != NULL)
		fprintf(stderr, LM_CLI_PROG " %s: %s\n", cmd, shown);
	else
		fprintf(stderr, LM_CLI_PROG ": %s\n", shown);
}

void
lm_cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(cmd, fmt, ap);
	va_end(ap);
}

int
lm_cli_topic_status(const char *cmd, const char *brokers, const char *topic, int rc)
{
	switch (rc) {
	case LM_ENOENT:
		lm_cli_error(cmd, "topic %s does not exist", topic);
		return LM_CLI_EXIT_FAIL;
	case LM_EACCES:
		/* Kafka answered: the topic's ACLs, or this client's
		 * credentials, refuse it; a retry does not help. */
		lm_cli_error(cmd,
		    "topic %s: not authorized by Kafka at %s (the topic's ACLs or this "
		    "client's credentials)",
		    topic, brokers);
		return LM_CLI_EXIT_FAIL;
	case LM_EBUSY:
		lm_cli_error(cmd,
		    "topic %s has no leader at Kafka at %s for now (being created, or "
		    "its broker is down or moving); try again later",
		    topic, brokers);
		return LM_CLI_EXIT_UNAVAILABLE;
	default:
		lm_cli_error(cmd, "cannot reach Kafka at %s to look up topic %s: %s",
		    brokers, topic, lm_strerror(rc));
		return LM_CLI_EXIT_UNAVAILABLE;
	}
}

int
lm_cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(cmd, fmt, ap);
	va_end(ap);
	if (cmd != NULL)
		fprintf(stderr, "Run '" LM_CLI_PROG " help %s' for its usage.\n", cmd);
	else
		fprintf(stderr, "Run '" LM_CLI_PROG " --help' for the commands.\n");
	return LM_CLI_EXIT_USAGE;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if the bytes
 * there are not one. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Whether the character of l bytes at s (0: an invalid byte) is shown as
 * '?': an invalid byte or a control character (lm_text_control). */
static bool
replaced(const unsigned char *s, size_t l)
{
	return l == 0 || lm_text_control(s, l) == l;
}

void
lm_cli_printable(char *dst, size_t dstlen, const void *src, size_t n)
{
	const unsigned char *s = src;
	size_t o = 0, total = 0, limit;

	if (dstlen < 4) {
		if (dstlen > 0)
			dst[0] = '\0';
		return;
	}
	/* Output length of the whole text: an invalid byte or a control
	 * character becomes one '?'. */
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(s + i, n - i);
		total += replaced(s + i, l) ? 1 : l;
		i += l == 0 ? 1 : l;
	}
	limit = total <= dstlen - 1 ? total : dstlen - 4;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(s + i, n - i);
		bool q = replaced(s + i, l);
		if (o + (q ? 1 : l) > limit)
			break;
		if (q) {
			dst[o++] = '?';
		} else {
			memcpy(dst + o, s + i, l);
			o += l;
		}
		i += l == 0 ? 1 : l;
	}
	if (total > limit) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

const char *
lm_cli_score_text(char buf[LM_CLI_SCORE_TEXT], double v)
{
	if (!(v >= 0 && v <= 1)) /* not a score: NaN, negative or above 1 */
		snprintf(buf, LM_CLI_SCORE_TEXT, "%.3g", v);
	else
		snprintf(buf, LM_CLI_SCORE_TEXT, "%.3f", v < 1 && v >= 0.999 ? 0.999 : v);
	return buf;
}

const char *
lm_cli_id_text(char buf[LM_CLI_ID_TEXT], const char *id)
{
	lm_cli_printable(buf, LM_CLI_ID_TEXT, id, strlen(id));
	return buf;
}

int
lm_cli_check_id(const char *cmd, const char *what, const char *id)
{
	char text[LM_CLI_ID_TEXT];

	if (id[0] == '\0')
		return lm_cli_usage_error(cmd, "%s: the id is empty", what);
	if (!lm_record_id_valid(id))
		return lm_cli_usage_error(cmd,
		    "%s: \"%s\" is not a record id (1..%d bytes of letters, digits "
		    "and . _ : -)",
		    what, lm_cli_id_text(text, id), LM_RECORD_ID_MAX);
	return LM_CLI_EXIT_OK;
}

void
lm_cli_warning_text(char *buf, size_t len, const Lunamatch__V1__ComplianceWarning *w)
{
	char phrase[LM_CLI_CELL_MAX], reason[4 * LM_CLI_CELL_MAX];

	char category[LM_CLI_CELL_MAX], field[LM_CLI_CELL_MAX];

	lm_cli_printable(phrase, sizeof(phrase), w->phrase, strlen(w->phrase));
	lm_cli_printable(reason, sizeof(reason), w->reason, strlen(w->reason));
	lm_cli_printable(category, sizeof(category), w->category, strlen(w->category));
	lm_cli_printable(field, sizeof(field), w->field, strlen(w->field));
	snprintf(buf, len, "compliance warning (%s): %s \"%s\"%s. %s", category, field,
	    phrase, w->removed ? " is not used as a requirement" : "", reason);
}

void
lm_cli_print_warnings(const char *cmd, const ProtobufCMessage *m)
{
	const Lunamatch__V1__JobPosting *p;
	char line[8 * LM_CLI_CELL_MAX];

	if (m == NULL || m->descriptor != &lunamatch__v1__job_posting__descriptor)
		return;
	p = (const Lunamatch__V1__JobPosting *) m;
	for (size_t i = 0; i < p->n_compliance_warnings; i++) {
		lm_cli_warning_text(line, sizeof(line), p->compliance_warnings[i]);
		lm_cli_error(cmd, "%s", line);
	}
}

json_t *
lm_cli_json_string(const void *src, size_t n)
{
	const unsigned char *s = src;
	char *buf;
	size_t o = 0;
	json_t *v;

	/* Worst case: every byte becomes the 3-byte U+FFFD. */
	if (n > (SIZE_MAX - 1) / 3 || (buf = malloc(n * 3 + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(s + i, n - i);
		if (l == 0) {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(buf + o, s + i, l);
			o += l;
			i += l;
		}
	}
	v = json_stringn(buf, o);
	free(buf);
	return v;
}

int
lm_cli_flush(FILE *out)
{
	return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

int
lm_cli_stdout_written(const char *cmd)
{
	if (lm_cli_flush(stdout) == 0)
		return LM_CLI_EXIT_OK;
	lm_cli_error(cmd, "cannot write to standard output");
	return LM_CLI_EXIT_FAIL;
}

int
lm_cli_json_line(FILE *out, const json_t *v)
{
	char *text;

	if (lm_json_dumps(v, 0, &text) != LM_OK)
		return -1;
	fputs(text, out);
	fputc('\n', out);
	free(text);
	return lm_cli_flush(out);
}

int
lm_cli_json_encode(const char *cmd, const char *what, const ProtobufCMessage *msg,
    unsigned flags, char **out)
{
	int rc = lm_json_encode(msg, flags, out);

	/* LM_EINVAL: a non-finite float, or a string that is not UTF-8. The
	 * second try tells them apart. */
	if (rc == LM_EINVAL &&
	    (rc = lm_json_encode(msg, flags | LM_JSON_NONFINITE_STRINGS, out)) == LM_OK)
		lm_cli_error(cmd,
		    "warning: %s holds a number that is not finite, written as the "
		    "string \"NaN\", \"Infinity\" or \"-Infinity\"",
		    what);
	if (rc != LM_OK)
		lm_cli_error(cmd, "%s: cannot encode as JSON: %s", what, lm_strerror(rc));
	return rc;
}

/* Number of UTF-8 characters in a printable string. */
static int
width_of(const char *s)
{
	int w = 0;
	for (; *s != '\0'; s++)
		if (((unsigned char) *s & 0xc0) != 0x80)
			w++;
	return w;
}

static void
print_cells(
    FILE *out, const lm_cli_col *cols, size_t n, const char *const *cells, bool header)
{
	char buf[LM_CLI_CELL_MAX + 4];

	for (size_t i = 0; i < n; i++) {
		const char *c = header ? cols[i].header : cells[i];
		if (c == NULL)
			c = "-";
		lm_cli_printable(buf, sizeof(buf), c, strlen(c));
		fputs(buf, out);
		if (i + 1 < n) {
			int pad = cols[i].width - width_of(buf);
			fprintf(out, "%*s", pad > 0 ? pad + 2 : 2, "");
		}
	}
	fputc('\n', out);
}

void
lm_cli_table_header(FILE *out, const lm_cli_col *cols, size_t n)
{
	print_cells(out, cols, n, NULL, true);
}

void
lm_cli_table_row(FILE *out, const lm_cli_col *cols, size_t n, const char *const *cells)
{
	print_cells(out, cols, n, cells, false);
}
