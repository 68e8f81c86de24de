/*
 * test_log.c - JSON-lines logging (format, escaping, levels, truncation) and
 * the error messages of error.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "lmtest.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"

/* Runs fn with stderr sent to a file and returns what it wrote (malloc'd). */
static char *
capture(void (*fn)(void))
{
	char path[] = "/tmp/lmtest-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(fd);
	char *text = lmt_read_file(path, NULL);
	unlink(path);
	assert_non_null(text);
	return text;
}

static void
write_two(void)
{
	lm_log_set_service("ingest");
	lm_log_set_level(LM_LOG_INFO);
	lm_debug("test.hidden", "not shown");
	lm_info("batch.committed", "stored %d records", 12);
	lm_error("store.error", "quote \" backslash \\ newline\n tab\t bell\a end");
}

static void
test_format(void **state)
{
	(void) state;
	char *text = capture(write_two);
	char *nl = strchr(text, '\n');
	assert_non_null(nl);
	assert_non_null(strchr(nl + 1, '\n'));
	assert_null(strchr(strchr(nl + 1, '\n') + 1, '\n')); /* exactly two lines */

	json_error_t jerr;
	json_t *a = json_loadb(text, (size_t) (nl - text), 0, &jerr);
	assert_non_null(a);
	assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(a, "svc")), "ingest");
	assert_string_equal(
	    json_string_value(json_object_get(a, "event")), "batch.committed");
	assert_string_equal(
	    json_string_value(json_object_get(a, "msg")), "stored 12 records");
	const char *ts = json_string_value(json_object_get(a, "ts"));
	assert_non_null(ts);
	assert_int_equal(strlen(ts), strlen("2026-11-26T07:16:44.123Z"));
	assert_int_equal(ts[10], 'T');
	assert_int_equal(ts[23], 'Z');
	json_decref(a);

	json_t *b = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, &jerr);
	assert_non_null(b);
	assert_string_equal(json_string_value(json_object_get(b, "level")), "error");
	assert_string_equal(json_string_value(json_object_get(b, "msg")),
	    "quote \" backslash \\ newline\n tab\t bell\a end");
	json_decref(b);
	free(text);
}

static void
write_long(void)
{
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	lm_log_set_level(LM_LOG_DEBUG);
	lm_debug("test.long", "%s", big);
	lm_log_set_level(LM_LOG_WARN);
	lm_info("test.filtered", "dropped");
	lm_warn("test.kept", "kept");
}

static void
test_truncation_and_levels(void **state)
{
	(void) state;
	char *text = capture(write_long);
	json_error_t jerr;
	json_t *a = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
	assert_non_null(a);
	size_t n = strlen(json_string_value(json_object_get(a, "msg")));
	assert_true(n > 1000 && n < 2048); /* cut to the 2 KiB message limit */
	json_decref(a);
	assert_null(strstr(text, "test.filtered"));
	assert_non_null(strstr(text, "test.kept"));
	free(text);
}

static void
write_hostile(void)
{
	char ctl[1501];
	memset(ctl, '\x01', sizeof(ctl) - 1); /* six bytes each, escaped */
	ctl[sizeof(ctl) - 1] = '\0';
	lm_log_set_level(LM_LOG_INFO);
	lm_warn("t.bad", "near '%s'", "\xff\xfe");
	lm_warn("t.ctl", "%s", ctl);
	/* Cut by the message limit within a two-byte character. */
	char wide[2 * 2048 + 1];
	for (size_t i = 0; i < 2048; i++)
		wide[2 * i] = '\xc3', wide[2 * i + 1] = '\xa9';
	wide[sizeof(wide) - 1] = '\0';
	lm_warn("t.wide", "x%s", wide);
	/* DEL and C1 (U+009B, CSI alone) escaped like C0. */
	lm_warn("t.c1", "a\x7f\xc2\x9b"
	                "2J\xc2\xa0z");
}

/* Every line is valid JSON of whole UTF-8 characters, however hostile the
 * text (bytes that are not UTF-8, a character cut by the message limit),
 * and at most PIPE_BUF bytes, so that no write to a pipe interleaves with
 * another: a message too long once escaped is cut and ends in U+2026. */
static void
test_hostile_text(void **state)
{
	(void) state;
	char *text = capture(write_hostile);
	const char *line = text;
	json_error_t jerr;
	int lines = 0;

	for (char *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1, lines++) {
		assert_true(nl - line + 1 <= 4096);
		json_t *j = json_loadb(line, (size_t) (nl - line), 0, &jerr);
		if (j == NULL)
			fail_msg("line %d is not JSON: %s", lines + 1, jerr.text);
		const char *msg = json_string_value(json_object_get(j, "msg"));
		assert_non_null(msg);
		if (lines == 0)
			assert_string_equal(msg, "near '\xef\xbf\xbd\xef\xbf\xbd'");
		if (lines == 1) {
			assert_true(strlen(msg) > 500);
			assert_string_equal(msg + strlen(msg) - 3, "\xe2\x80\xa6");
		}
		if (lines == 3) {
			assert_string_equal(msg, "a\x7f\xc2\x9b"
			                         "2J\xc2\xa0z");
			assert_non_null(strstr(line, "a\\u007f\\u009b2J\xc2\xa0z"));
		}
		json_decref(j);
	}
	assert_int_equal(lines, 4);
	free(text);
}

static void
test_level_parse(void **state)
{
	(void) state;
	lm_log_level l;
	assert_int_equal(lm_log_level_parse("DEBUG", &l), LM_OK);
	assert_int_equal(l, LM_LOG_DEBUG);
	assert_int_equal(lm_log_level_parse("warning", &l), LM_OK);
	assert_int_equal(l, LM_LOG_WARN);
	assert_int_equal(lm_log_level_parse("error", &l), LM_OK);
	assert_int_equal(l, LM_LOG_ERROR);
	assert_int_equal(lm_log_level_parse("loud", &l), LM_EINVAL);
	assert_int_equal(lm_log_level_parse(NULL, &l), LM_EINVAL);
	assert_string_equal(lm_log_level_name(LM_LOG_WARN), "warn");
	assert_string_equal(lm_strerror(LM_ENOENT), "not found");
	assert_string_equal(lm_errname(LM_EMAPFULL), "emapfull");
	for (int e = 0; e < LM_ERR_COUNT_; e++) {
		assert_string_not_equal(lm_strerror(e), "unknown error");
		assert_string_not_equal(lm_errname(e), "unknown");
	}
	assert_string_equal(lm_strerror(-1), "unknown error");
	assert_string_equal(lm_strerror(LM_ERR_COUNT_), "unknown error");
	assert_int_equal(lm_err_from_errno(0), LM_OK);
	assert_int_equal(lm_err_from_errno(2 /* ENOENT */), LM_ENOENT);
}

static void
log_three_errors(void)
{
	lm_warn("t.warn", "a warning");
	lm_error("t.first", "cannot listen: %s", "Address in use");
	lm_error("t.second", "cannot start: %s", "resource busy");
}

static void *
other_thread(void *arg)
{
	(void) arg;
	return lm_log_first_error()[0] == 0 ? NULL : (void *) 1;
}

/* A caller reports a failed step in the words of the first error its
 * callee logged on the same thread: warnings and later errors do not
 * count, a reset forgets, and other threads keep their own. */
static void
test_first_error(void **state)
{
	(void) state;
	pthread_t t;
	void *seen = (void *) 1;

	lm_log_first_error_reset();
	assert_string_equal(lm_log_first_error(), "");
	free(capture(log_three_errors));
	assert_string_equal(lm_log_first_error(), "cannot listen: Address in use");
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &seen), 0);
	assert_null(seen);
	lm_log_first_error_reset();
	assert_string_equal(lm_log_first_error(), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_truncation_and_levels),
	    cmocka_unit_test(test_hostile_text),
	    cmocka_unit_test(test_level_parse),
	    cmocka_unit_test(test_first_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
