/*
 * log.c - JSON-lines logging; see log.h for the format and the rules.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"

#define LOG_MSG_MAX 2048 /* bytes of a message before escaping */
/* Bytes of a whole line: PIPE_BUF, so that one write(2) of it to a pipe
 * (stderr under a container runtime) is never interleaved with another
 * thread's or process's. A message that does not fit once escaped is cut,
 * at a character, and ends in CUT_MARK. */
#define LOG_LINE_MAX 4096
#define CUT_MARK     "\u2026" /* ... */

_Static_assert(LOG_LINE_MAX <= PIPE_BUF, "a line is written atomically");

static atomic_int log_level = LM_LOG_INFO;
static char log_svc[32] = "lunamatch";
/*
 * The message of each thread's first error record since
 * lm_log_first_error_reset (lm_log_first_error), in a buffer of
 * LM_LOG_FIRST_ERROR_MAX bytes made at the thread's first error and freed
 * when the thread ends. A thread key rather than _Thread_local: the client
 * library, which holds this file, must need nothing but libc, nng and
 * protobuf-c, and thread-local storage in a shared library needs the
 * dynamic loader's __tls_get_addr.
 */
static pthread_once_t fe_once = PTHREAD_ONCE_INIT;
static pthread_key_t fe_key;
static bool fe_ok; /* fe_key was made */

static void
fe_init(void)
{
	fe_ok = pthread_key_create(&fe_key, free) == 0;
}

/* This thread's first-error buffer; made when create (NULL when it cannot
 * be, or when there is none and !create). */
static char *
first_error(bool create)
{
	char *b;

	pthread_once(&fe_once, fe_init);
	if (!fe_ok)
		return NULL;
	b = pthread_getspecific(fe_key);
	if (b == NULL && create && (b = calloc(1, LM_LOG_FIRST_ERROR_MAX)) != NULL &&
	    pthread_setspecific(fe_key, b) != 0) {
		free(b);
		b = NULL;
	}
	return b;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
lm_log_set_service(const char *svc)
{
	snprintf(log_svc, sizeof(log_svc), "%s", svc ? svc : "lunamatch");
}

void
lm_log_set_level(lm_log_level level)
{
	atomic_store(&log_level, (int) level);
}

lm_log_level
lm_log_get_level(void)
{
	return (lm_log_level) atomic_load(&log_level);
}

int
lm_log_level_parse(const char *s, lm_log_level *out)
{
	if (s == NULL)
		return LM_EINVAL;
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (lm_log_level) i;
			return LM_OK;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LM_LOG_WARN;
		return LM_OK;
	}
	return LM_EINVAL;
}

const char *
lm_log_level_name(lm_log_level level)
{
	if ((int) level < 0 || level > LM_LOG_ERROR)
		return "info";
	return level_names[level];
}

/* The bytes of the well-formed UTF-8 character at p, or 0 when p does not
 * start one. */
static size_t
utf8_char(const unsigned char *p)
{
	size_t k = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;

	for (size_t i = 1; i < k; i++)
		if (p[i] == '\0')
			return 0;
	return k > 0 && lm_pb_utf8_valid((const char *) p, k) ? k : 0;
}

/* Appends s to buf[len..] as the body of a JSON string, whole characters
 * only and no further than cap - 1 (the NUL); returns the new length and
 * sets *cut when s did not fit. Control characters (lm_text_control:
 * C0, DEL, C1) become \u00XX, bytes that are not UTF-8 \ufffd, so that
 * every line is valid JSON and none drives a terminal. */
static size_t
json_escape(char *buf, size_t len, size_t cap, const char *s, bool *cut)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p != '\0') {
		char esc[8];
		const char *out = esc;
		size_t n, adv = 1, ctl = lm_text_control(p, p[1] != '\0' ? 2 : 1);
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\', esc[1] = (char) *p, n = 2;
		} else if (*p == '\n') {
			esc[0] = '\\', esc[1] = 'n', n = 2;
		} else if (ctl > 0) { /* C0 and DEL: the byte; C1: its second */
			n = (size_t) snprintf(esc, sizeof(esc), "\\u%04x", p[ctl - 1]);
			adv = ctl;
		} else if (*p < 0x80) {
			out = (const char *) p, n = 1;
		} else if ((adv = utf8_char(p)) > 0) {
			out = (const char *) p, n = adv;
		} else {
			out = "\\ufffd", n = 6, adv = 1;
		}
		if (len + n >= cap) {
			if (cut != NULL)
				*cut = true;
			break;
		}
		memcpy(buf + len, out, n);
		len += n;
		p += adv;
	}
	buf[len] = '\0';
	return len;
}

/* Writes all n bytes of buf to stderr (a line fits one write to a pipe;
 * a file or terminal may take it in parts). */
static void
write_all(const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t) w;
	}
}

void
lm_log(lm_log_level level, const char *event, const char *fmt, ...)
{
	char msg[LOG_MSG_MAX];
	char line[LOG_LINE_MAX];
	char ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;
	size_t n;
	bool cut = false;
	char *fe;

	if ((int) level < atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level == LM_LOG_ERROR && (fe = first_error(true)) != NULL && fe[0] == '\0') {
		size_t k = strnlen(msg, LM_LOG_FIRST_ERROR_MAX - 1);
		memcpy(fe, msg, k);
		fe[k] = '\0';
	}

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	n = (size_t) snprintf(line, sizeof(line),
	    "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"svc\":\"", ts,
	    now.tv_nsec / 1000000L, lm_log_level_name(level));
	n = json_escape(line, n, 256, log_svc, NULL);
	n += (size_t) snprintf(line + n, sizeof(line) - n, "\",\"event\":\"");
	n = json_escape(line, n, 512, event ? event : "", NULL);
	n += (size_t) snprintf(line + n, sizeof(line) - n, "\",\"msg\":\"");
	/* Room after the message for the mark and "}\n with the NUL. */
	n = json_escape(line, n, sizeof(line) - sizeof(CUT_MARK) - 3, msg, &cut);
	if (cut) {
		memcpy(line + n, CUT_MARK, sizeof(CUT_MARK) - 1);
		n += sizeof(CUT_MARK) - 1;
	}
	line[n++] = '"';
	line[n++] = '}';
	line[n++] = '\n';
	/* One write keeps lines whole when threads log at once. */
	write_all(line, n);
}

const char *
lm_log_first_error(void)
{
	const char *fe = first_error(false);

	return fe != NULL ? fe : "";
}

void
lm_log_first_error_reset(void)
{
	char *fe = first_error(false);

	if (fe != NULL)
		fe[0] = '\0';
}
