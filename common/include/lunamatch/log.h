/*
 * log.h - JSON-lines logging to stderr.
 *
 * One line per record: {"ts":"2026-11-26T07:16:44.123Z","level":"info",
 * "svc":"ingest","event":"batch.committed","msg":"..."}. The event is a
 * stable dotted name that operators alert on; the message is free text.
 *
 * Rule: never log personal data. Log record ids, counts, codes and reasons;
 * never names, headlines, descriptions, salaries of a person or raw payloads.
 * Thread-safe; each record is one line of valid JSON (text that is not
 * UTF-8 is replaced, U+FFFD) of at most PIPE_BUF bytes, written with one
 * write(2), so that lines never interleave on a pipe; a message too long
 * for that is cut and ends in U+2026.
 */
#ifndef LUNAMATCH_LOG_H
#define LUNAMATCH_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_log_level {
	LM_LOG_DEBUG = 0,
	LM_LOG_INFO,
	LM_LOG_WARN,
	LM_LOG_ERROR,
} lm_log_level;

/* Sets the service name written as "svc" (copied; at most 31 bytes). Not
 * synchronized with logging: call it before any other thread may log. */
void lm_log_set_service(const char *svc);

/* Records below this level are dropped. The default is LM_LOG_INFO. */
void lm_log_set_level(lm_log_level level);
lm_log_level lm_log_get_level(void);

/* Parses "debug", "info", "warn" or "error" (case-insensitive). Returns
 * LM_OK or LM_EINVAL. */
int lm_log_level_parse(const char *s, lm_log_level *out);
const char *lm_log_level_name(lm_log_level level);

/* Writes one record. The message is printf-formatted, truncated to 2 KiB and
 * JSON-escaped. event must be a short literal such as "store.open". */
void lm_log(lm_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Most bytes, with the NUL, kept of the message lm_log_first_error gives. */
#define LM_LOG_FIRST_ERROR_MAX 512

/*
 * The message (cut to LM_LOG_FIRST_ERROR_MAX - 1 bytes, not escaped) of the
 * first error record the calling thread wrote since it called
 * lm_log_first_error_reset, or "" when none. For a caller that reports
 * that a step failed in the words of the callee that logged the exact
 * cause. Thread-local: the text stays until the thread calls
 * lm_log_first_error_reset.
 */
const char *lm_log_first_error(void);
void lm_log_first_error_reset(void);

#define lm_debug(event, ...) lm_log(LM_LOG_DEBUG, event, __VA_ARGS__)
#define lm_info(event, ...)  lm_log(LM_LOG_INFO, event, __VA_ARGS__)
#define lm_warn(event, ...)  lm_log(LM_LOG_WARN, event, __VA_ARGS__)
#define lm_error(event, ...) lm_log(LM_LOG_ERROR, event, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_LOG_H */
