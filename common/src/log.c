/*
 * log.c - JSON-lines logging; see log.h for the format and the rules.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lunamatch/error.h"
#include "lunamatch/log.h"

#define LOG_MSG_MAX  2048
#define LOG_LINE_MAX (LOG_MSG_MAX * 6 + 256)

static atomic_int log_level = LM_LOG_INFO;
static char log_svc[32] = "lunamatch";

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

/* Appends s to buf as the body of a JSON string; returns the new length.
 * Control characters become \u00XX; the result never exceeds cap - 1. */
static size_t
json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	for (; *s != '\0' && len + 7 < cap; s++) {
		unsigned char c = (unsigned char) *s;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char) c;
		} else if (c == '\n') {
			buf[len++] = '\\';
			buf[len++] = 'n';
		} else if (c < 0x20) {
			len += (size_t) snprintf(buf + len, cap - len, "\\u%04x", c);
		} else {
			buf[len++] = (char) c;
		}
	}
	buf[len] = '\0';
	return len;
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

	if ((int) level < atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	n = (size_t) snprintf(line, sizeof(line),
	    "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"svc\":\"", ts,
	    now.tv_nsec / 1000000L, lm_log_level_name(level));
	n = json_escape(line, n, sizeof(line) - 64, log_svc);
	n += (size_t) snprintf(line + n, sizeof(line) - n, "\",\"event\":\"");
	n = json_escape(line, n, sizeof(line) - 64, event ? event : "");
	n += (size_t) snprintf(line + n, sizeof(line) - n, "\",\"msg\":\"");
	n = json_escape(line, n, sizeof(line) - 4, msg);
	line[n++] = '"';
	line[n++] = '}';
	line[n++] = '\n';
	/* One write keeps lines whole when threads log at once. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void) w;
}
