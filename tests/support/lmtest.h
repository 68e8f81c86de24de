/*
 * lmtest.h - small helpers shared by the cmocka tests.
 *
 * Tests include <cmocka.h> through this header, in the order cmocka needs.
 */
#ifndef LMTEST_H
#define LMTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

/* Path of a file in the source tree (LUNAMATCH_SOURCE_DIR, or the compiled-in
 * source directory). Returns a pointer to a static buffer per call slot:
 * valid until the 8th following call. */
const char *lmt_src(const char *rel);

/* Path of a built program in LUNAMATCH_BIN_DIR (for example
 * "lunamatch-ingest"). Same lifetime as lmt_src. */
const char *lmt_bin(const char *name);

/* Creates a fresh private directory under $TMPDIR (or /tmp) and returns its
 * path (malloc'd; the caller frees it after lmt_rmtree). Fails the test on
 * error. */
char *lmt_tmpdir(const char *tag);

/* Occurrences of needle (not empty) in hay, not overlapping: how many
 * times a log line or a word appears in captured output. */
size_t lmt_count(const char *hay, const char *needle);

/* Removes a directory tree; NULL is ignored. */
void lmt_rmtree(const char *path);

/* A test file's temporary directory, as cmocka fixtures: defines `static
 * char *dir`, made by lmt_tmpdir(tag) in setup() and removed with all it
 * holds in teardown(). */
#define LMT_TMPDIR_FIXTURES(tag)                                                         \
	static char *dir;                                                                \
	static int setup(void **state)                                                   \
	{                                                                                \
		(void) state;                                                            \
		dir = lmt_tmpdir(tag);                                                   \
		return 0;                                                                \
	}                                                                                \
	static int teardown(void **state)                                                \
	{                                                                                \
		(void) state;                                                            \
		lmt_rmtree(dir);                                                         \
		free(dir);                                                               \
		dir = NULL;                                                              \
		return 0;                                                                \
	}

/* Reads a whole file (at most 64 MiB) into a NUL-terminated malloc'd buffer;
 * returns NULL on error. *len (optional) receives the size. */
char *lmt_read_file(const char *path, size_t *len);

/* Writes len bytes of data to dir/name (created or truncated) and returns
 * the path, in the same per-call slots as lmt_src (valid until the 8th
 * following call of lmt_src, lmt_bin or lmt_write_file). Fails the test on
 * error. */
const char *lmt_write_file(
    const char *dir, const char *name, const void *data, size_t len);

/* Fails the test unless err, the message of a data-file loader, starts
 * with "<path>:<line>: " ("<path>: " for line 0) and contains want. */
void lmt_assert_file_error(
    const char *err, const char *path, unsigned line, const char *want);

/* calloc and strdup for test data: abort the test run when memory is out
 * (lmt_calloc never returns NULL, also for n == 0). */
void *lmt_calloc(size_t n, size_t size);
char *lmt_strdup(const char *s);

/* Sleeps ms milliseconds (nothing for ms <= 0). */
void lmt_sleep_ms(int64_t ms);

/* Writes "<prefix><pid>-<seconds since the epoch>" to buf: a tag that
 * differs between runs, for topic and group names on a long-lived broker. */
void lmt_run_id(char *buf, size_t len, const char *prefix);

/* Captures what the process writes to stderr (the log) between
 * lmt_stderr_begin and lmt_stderr_end, which restores stderr and returns
 * the text (NUL-terminated, malloc'd; the caller frees it). One capture at
 * a time. Fails the test on error. */
typedef struct lmt_capture {
	FILE *file; /* stderr's stand-in, gone when closed */
	int saved;  /* the real stderr */
} lmt_capture;

void lmt_stderr_begin(lmt_capture *c);
char *lmt_stderr_end(lmt_capture *c);

#endif /* LMTEST_H */
