/*
 * test_output.c - the CLI's printable text (lm_cli_printable): what data
 * from records, servers and files becomes before it reaches a terminal,
 * that error messages go through it, and how scores are shown
 * (lm_cli_score_text).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lmtest.h"

/* lm_cli_printable of the NUL-terminated s into a buffer of len bytes. */
static const char *
shown(const char *s, size_t len)
{
	static char buf[4096];

	assert_true(len <= sizeof(buf));
	lm_cli_printable(buf, len, s, strlen(s));
	return buf;
}

/* Control characters (C0, DEL, C1) and invalid bytes are shown as one '?'
 * each; other text, a no-break space (C2 A0) included, as it is. */
static void
test_controls(void **state)
{
	(void) state;
	assert_string_equal(shown("a\x1b[31mb\x7f"
	                          "c",
	                        64),
	    "a?[31mb?c");
	assert_string_equal(shown("\xc2\x9b"
	                          "2J\xc2\x80\xc2\x9f",
	                        64),
	    "?2J??");
	assert_string_equal(shown("K\xc3\xb6ln\xc2\xa0x", 64), "K\xc3\xb6ln\xc2\xa0x");
	assert_string_equal(shown("bad \xc3 end", 64), "bad ? end");
}

/* A text that fits is shown whole; one that does not is cut at a character
 * and ends with "...". A control character counts as the one byte shown. */
static void
test_cut(void **state)
{
	char c1[2 * 600 + 1], want[600 + 1];

	(void) state;
	assert_string_equal(shown("abcdef", 7), "abcdef");
	assert_string_equal(shown("abcdefg", 7), "abc...");
	assert_string_equal(shown("ab\xc3\xb6\xc3\xb6", 7), "ab\xc3\xb6\xc3\xb6");
	assert_string_equal(shown("ab\xc3\xb6\xc3\xb6x", 7), "ab...");
	for (int i = 0; i < 600; i++)
		memcpy(c1 + 2 * i, "\xc2\x9b", 2);
	c1[sizeof(c1) - 1] = '\0';
	memset(want, '?', 600);
	want[600] = '\0';
	assert_string_equal(shown(c1, 601), want);
}

/* Error messages quote what others sent: printable, on one line. */
static void
test_error_message(void **state)
{
	lmt_capture cap;
	char *err;

	(void) state;
	lmt_stderr_begin(&cap);
	lm_cli_error("match", "server says %s",
	    "\x1b]0;title\x07\xc2\x9b"
	    "2J\nnext");
	err = lmt_stderr_end(&cap);
	assert_string_equal(err, "lunamatch match: server says ?]0;title??2J?next\n");
	free(err);
}

/* A message longer than the 2,047 bytes shown says that it was cut, however
 * long it was. */
static void
test_error_message_cut(void **state)
{
	static const size_t lens[] = {2000, 2047, 3000, 5000};
	lmt_capture cap;

	(void) state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *long_text = malloc(lens[i] + 1), *err;
		assert_non_null(long_text);
		memset(long_text, 'x', lens[i]);
		long_text[lens[i]] = '\0';
		lmt_stderr_begin(&cap);
		lm_cli_error(NULL, "%s", long_text);
		err = lmt_stderr_end(&cap);
		size_t n = strlen(err);
		if (lens[i] <= 2047) {
			assert_int_equal(n, strlen("lunamatch: \n") + lens[i]);
		} else {
			assert_int_equal(n, strlen("lunamatch: \n") + 2047);
			assert_memory_equal(err + n - 4, "...\n", 4);
		}
		free(err);
		free(long_text);
	}
}

/* JSON lines (watch, dlq, listings) escape every control character, keys
 * included, and keep other text as it is. */
static void
test_json_line(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	json_t *o = json_pack("{s:s, s:i, s:[b, n, f]}", "id\xc2\x9b",
	    "a\x1b[1m\x7f\xc2\x9b"
	    "2J K\xc3\xb6ln",
	    "n", 7, "l", 1, 0.5);

	(void) state;
	assert_non_null(f);
	assert_non_null(o);
	assert_int_equal(lm_cli_json_line(f, o), 0);
	fclose(f);
	assert_string_equal(text,
	    "{\"id\\u009b\":\"a\\u001b[1m\\u007f\\u009b2J K\xc3\xb6ln\","
	    "\"n\":7,\"l\":[true,null,0.5]}\n");
	json_decref(o);
	free(text);
}

/* Scores and values in [0, 1] with 3 decimals; short of 1, never 1.000. */
static void
test_score_text(void **state)
{
	char buf[LM_CLI_SCORE_TEXT];

	(void) state;
	assert_string_equal(lm_cli_score_text(buf, 0.7525), "0.752");
	assert_string_equal(lm_cli_score_text(buf, 0.9989), "0.999");
	assert_string_equal(lm_cli_score_text(buf, 0.9996), "0.999");
	assert_string_equal(lm_cli_score_text(buf, 0.9999999999), "0.999");
	assert_string_equal(lm_cli_score_text(buf, 1.0), "1.000");
	assert_string_equal(lm_cli_score_text(buf, 0.0), "0.000");
	assert_string_equal(lm_cli_score_text(buf, 1e20), "1e+20");
	assert_string_equal(lm_cli_score_text(buf, -0.5), "-0.5");
	assert_non_null(strstr(lm_cli_score_text(buf, NAN), "nan"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_controls),
	    cmocka_unit_test(test_cut),
	    cmocka_unit_test(test_error_message),
	    cmocka_unit_test(test_error_message_cut),
	    cmocka_unit_test(test_json_line),
	    cmocka_unit_test(test_score_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
