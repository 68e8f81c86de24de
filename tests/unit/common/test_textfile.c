/*
 * test_textfile.c - the shared frame of the data files on real files in a
 * temporary directory: line splitting (LF, CRLF, no final newline), blank and
 * comment lines, the format and version headers, every limit and error
 * message, and ownership of the buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/textfile.h"

static const lm_textfile_opts OPTS = {
    .file_max = 256, .line_max = 32, .format = "2", .version_max = 8};

static const char *
put(const char *dir, const char *text)
{
	return lmt_write_file(dir, "t.txt", text, strlen(text));
}

/* Reads every data line of text and joins them with '|' into out. Returns
 * the final result of lm_textfile_next (LM_ENOENT when all went well). */
static int
read_lines(
    const char *dir, const char *text, char *out, size_t outlen, char *err, size_t errlen)
{
	lm_textfile *tf = NULL;
	char *line;
	int rv;
	const char *path = put(dir, text);

	out[0] = '\0';
	assert_int_equal(lm_textfile_open(path, &OPTS, err, errlen, &tf), LM_OK);
	while ((rv = lm_textfile_next(tf, &line)) == LM_OK) {
		if (out[0] != '\0')
			strncat(out, "|", outlen - strlen(out) - 1);
		strncat(out, line, outlen - strlen(out) - 1);
	}
	lm_textfile_close(tf);
	return rv;
}

/* Expects text to fail with code and an error "<path>:<line>: ...want...". */
static void
expect_error(const char *dir, const char *text, int code, unsigned line, const char *want)
{
	char out[512], err[512] = "", prefix[1100];
	assert_int_equal(read_lines(dir, text, out, sizeof(out), err, sizeof(err)), code);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s/t.txt:%u: ", dir, line);
	else
		snprintf(prefix, sizeof(prefix), "%s/t.txt: ", dir);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, prefix, want);
}

static void
test_lines(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("textfile");
	char out[512], err[512];

	/* LF and CRLF, blank lines, comments, trailing spaces cut, leading kept,
	 * an indented '#' is data, no newline after the last line. */
	assert_int_equal(read_lines(dir,
	                     "# a comment\n# version: v1\n\na b  \r\n   \n  #x\n"
	                     "#format: 2\nlast",
	                     out, sizeof(out), err, sizeof(err)),
	    LM_ENOENT);
	assert_string_equal(out, "a b|  #x|last");

	/* A line of exactly line_max bytes, also before "\r\n". */
	assert_int_equal(read_lines(dir,
	                     "# version: v1\n0123456789abcdef0123456789abcdef\n"
	                     "0123456789abcdef0123456789abcdef\r\n",
	                     out, sizeof(out), err, sizeof(err)),
	    LM_ENOENT);
	assert_string_equal(
	    out, "0123456789abcdef0123456789abcdef|0123456789abcdef0123456789abcdef");

	/* Line numbers, the version, and the end. */
	lm_textfile *tf;
	char *line;
	const char *path = put(dir, "x\n\n# version: 2024-01\ny\n");
	assert_int_equal(lm_textfile_open(path, &OPTS, err, sizeof(err), &tf), LM_OK);
	assert_int_equal(lm_textfile_line(tf), 0);
	assert_string_equal(lm_textfile_version(tf), "");
	assert_int_equal(lm_textfile_next(tf, &line), LM_OK);
	assert_string_equal(line, "x");
	assert_int_equal(lm_textfile_line(tf), 1);
	assert_int_equal(lm_textfile_next(tf, &line), LM_OK);
	assert_string_equal(line, "y");
	assert_int_equal(lm_textfile_line(tf), 4);
	assert_string_equal(lm_textfile_version(tf), "2024-01");
	/* Lines may be changed in place. */
	line[0] = 'z';
	assert_int_equal(lm_textfile_next(tf, &line), LM_ENOENT);
	assert_null(line);
	assert_int_equal(lm_textfile_line(tf), 0);
	assert_int_equal(lm_textfile_next(tf, &line), LM_ENOENT);
	/* Errors of the loader name the current line, or none after the end. */
	assert_int_equal(lm_textfile_fail(tf, LM_ESCHEMA, "late %d", 7), LM_ESCHEMA);
	char want[1100];
	snprintf(want, sizeof(want), "%s/t.txt: late 7", dir);
	assert_string_equal(err, want);
	lm_textfile_close(tf);
	lm_textfile_close(NULL);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_errors(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("textfile");

	expect_error(dir, "a\n", LM_EPARSE, 0, "missing \"# version: ...\" header line");
	expect_error(dir, "", LM_EPARSE, 0, "missing \"# version");
	expect_error(
	    dir, "# version: a\n# version: b\n", LM_EPARSE, 2, "second version header");
	expect_error(dir, "# version:   \n", LM_EPARSE, 1, "empty version");
	expect_error(
	    dir, "# version: 123456789\n", LM_E2BIG, 1, "version longer than 8 bytes");
	expect_error(dir, "# version: a\tb\n", LM_EPARSE, 1,
	    "version must be printable ASCII without spaces");
	expect_error(dir, "# version: \xc3\xa9\n", LM_EPARSE, 1, "printable ASCII");
	expect_error(dir, "# version: 1\n#  format: 3\n", LM_EPARSE, 2,
	    "unsupported format \"3\" (expected 2)");
	expect_error(dir, "# version: 1\n0123456789abcdef0123456789abcdefg\n", LM_E2BIG,
	    2, "line longer than 32 bytes");
	expect_error(dir, "# version: 1\n0123456789abcdef0123456789abcdef\r\r\n",
	    LM_E2BIG, 2, "line longer than 32 bytes");

	/* A NUL byte, wherever it is in its line. */
	static const char nul[] = "# version: 1\nab\0c\n";
	char out[64], err[512];
	lm_textfile *tf;
	char *line;
	const char *path = lmt_write_file(dir, "t.txt", nul, sizeof(nul) - 1);
	assert_int_equal(lm_textfile_open(path, &OPTS, err, sizeof(err), &tf), LM_OK);
	assert_int_equal(lm_textfile_next(tf, &line), LM_EPARSE);
	assert_non_null(strstr(err, "t.txt:2: NUL byte in line"));
	lm_textfile_close(tf);

	/* The file limit: file_max bytes pass, one more does not. */
	char big[300];
	memset(big, '\n', sizeof(big));
	memcpy(big, "# version: 1\n", 13);
	path = lmt_write_file(dir, "t.txt", big, OPTS.file_max);
	assert_int_equal(lm_textfile_open(path, &OPTS, err, sizeof(err), &tf), LM_OK);
	assert_int_equal(lm_textfile_next(tf, &line), LM_ENOENT);
	lm_textfile_close(tf);
	path = lmt_write_file(dir, "t.txt", big, OPTS.file_max + 1);
	tf = (lm_textfile *) out;
	assert_int_equal(lm_textfile_open(path, &OPTS, err, sizeof(err), &tf), LM_E2BIG);
	assert_null(tf);
	assert_non_null(strstr(err, "t.txt: file larger than 256 bytes"));

	/* A file larger than the first read buffer. */
	lm_textfile_opts wide = OPTS;
	size_t n = 200 * 1024;
	char *huge = malloc(n);
	assert_non_null(huge);
	memset(huge, '\n', n);
	memcpy(huge, "# version: 1\n", 13);
	memcpy(huge + n - 5, "tail", 4);
	wide.file_max = n;
	path = lmt_write_file(dir, "t.txt", huge, n);
	assert_int_equal(lm_textfile_open(path, &wide, err, sizeof(err), &tf), LM_OK);
	assert_int_equal(lm_textfile_next(tf, &line), LM_OK);
	assert_string_equal(line, "tail");
	assert_int_equal(lm_textfile_line(tf), n - 16);
	assert_int_equal(lm_textfile_next(tf, &line), LM_ENOENT);
	lm_textfile_close(tf);
	wide.file_max = n - 1;
	assert_int_equal(lm_textfile_open(path, &wide, err, sizeof(err), &tf), LM_E2BIG);
	free(huge);

	/* Opening: missing file, bad arguments; a NULL err buffer is fine. */
	char missing[1100];
	snprintf(missing, sizeof(missing), "%s/none.txt", dir);
	assert_int_equal(
	    lm_textfile_open(missing, &OPTS, err, sizeof(err), &tf), LM_ENOENT);
	assert_non_null(strstr(err, "none.txt: cannot open: "));
	assert_int_equal(lm_textfile_open(missing, &OPTS, NULL, 0, &tf), LM_ENOENT);
	assert_int_equal(lm_textfile_open(NULL, &OPTS, err, sizeof(err), &tf), LM_EINVAL);
	assert_string_equal(err, "(null): no path");
	assert_int_equal(lm_textfile_open(path, NULL, err, sizeof(err), &tf), LM_EINVAL);
	assert_int_equal(
	    lm_textfile_open(path, &OPTS, err, sizeof(err), NULL), LM_EINVAL);
	lm_textfile_opts bad = OPTS;
	bad.version_max = LM_TEXTFILE_VERSION_MAX + 1;
	assert_int_equal(lm_textfile_open(path, &bad, err, sizeof(err), &tf), LM_EINVAL);
	bad = OPTS;
	bad.format = NULL;
	assert_int_equal(lm_textfile_open(path, &bad, err, sizeof(err), &tf), LM_EINVAL);
	assert_int_equal(lm_textfile_next(NULL, &line), LM_EINVAL);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_errf(void **state)
{
	(void) state;
	char err[32];
	assert_int_equal(
	    lm_textfile_errf(err, sizeof(err), "f", 3, LM_EPARSE, "x %s", "y"),
	    LM_EPARSE);
	assert_string_equal(err, "f:3: x y");
	assert_int_equal(lm_textfile_errf(err, sizeof(err), "f", 0, LM_EIO, "z"), LM_EIO);
	assert_string_equal(err, "f: z");
	/* Cut to the buffer, always terminated; no buffer at all. */
	assert_int_equal(lm_textfile_errf(err, 8, "path", 12, LM_EIO, "long"), LM_EIO);
	assert_string_equal(err, "path:12");
	assert_int_equal(lm_textfile_errf(NULL, 0, "f", 1, LM_EIO, "z"), LM_EIO);
	assert_int_equal(lm_textfile_errf(err, sizeof(err), "p", 1, LM_EIO, "%s",
	                     "abcdefghijklmnopqrstuvwxyz0123456789"),
	    LM_EIO);
	assert_int_equal(strlen(err), sizeof(err) - 1);
}

static void
test_take(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("textfile");
	char err[512];
	lm_textfile *tf;
	char *line, *first, *text;
	const char *path = put(dir, "# version: 1\nfirst\nsecond\n");

	strcpy(err, "stale");
	assert_int_equal(lm_textfile_open(path, &OPTS, err, sizeof(err), &tf), LM_OK);
	assert_string_equal(err, ""); /* cleared on success */
	text = lm_textfile_take(tf);
	assert_non_null(text);
	assert_null(lm_textfile_take(tf));
	assert_int_equal(lm_textfile_next(tf, &first), LM_OK);
	assert_int_equal(lm_textfile_next(tf, &line), LM_OK);
	assert_int_equal(lm_textfile_next(tf, &line), LM_ENOENT);
	lm_textfile_close(tf);
	/* The lines live on in the taken buffer. */
	assert_true(first >= text && first < text + 64);
	assert_string_equal(first, "first");
	free(text);
	assert_null(lm_textfile_take(NULL));
	assert_int_equal(lm_textfile_line(NULL), 0);
	assert_string_equal(lm_textfile_version(NULL), "");
	lmt_rmtree(dir);
	free(dir);
}

struct collect {
	int calls;
	int fail_at;      /* call number that fails with fail_rc; 0 = none */
	int fail_rc;      /* LM_ESCHEMA when 0 */
	char *lines[4];   /* the lines as given, for the buffer check */
	unsigned nums[4]; /* their line numbers */
};

static int
collect_line(void *arg, lm_textfile *tf, char *line)
{
	struct collect *c = arg;
	if (c->calls < 4) {
		c->lines[c->calls] = line;
		c->nums[c->calls] = lm_textfile_line(tf);
	}
	if (++c->calls == c->fail_at)
		return lm_textfile_fail(
		    tf, c->fail_rc ? c->fail_rc : LM_ESCHEMA, "bad \"%s\"", line);
	return LM_OK;
}

static void
test_read(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("textfile");
	char err[512], version[LM_TEXTFILE_VERSION_MAX + 1], *text;
	struct collect c = {0};
	const char *path = put(dir, "# version: v9\none\n\ntwo\n");

	/* Every data line in order, the version, the buffer handed over. */
	assert_int_equal(lm_textfile_read(path, &OPTS, err, sizeof(err), collect_line, &c,
	                     version, sizeof(version), &text),
	    LM_OK);
	assert_string_equal(err, "");
	assert_int_equal(c.calls, 2);
	assert_int_equal(c.nums[0], 2);
	assert_int_equal(c.nums[1], 4);
	assert_string_equal(version, "v9");
	assert_non_null(text);
	assert_ptr_equal(c.lines[0], text + strlen("# version: v9\n"));
	assert_string_equal(c.lines[1], "two");
	free(text);

	/* Without text the buffer is freed (ASan would see a leak). */
	memset(&c, 0, sizeof(c));
	assert_int_equal(lm_textfile_read(path, &OPTS, err, sizeof(err), collect_line, &c,
	                     version, sizeof(version), NULL),
	    LM_OK);

	/* The first error of fn ends the read, with its line. */
	memset(&c, 0, sizeof(c));
	c.fail_at = 1;
	text = (char *) &c;
	assert_int_equal(lm_textfile_read(path, &OPTS, err, sizeof(err), collect_line, &c,
	                     version, sizeof(version), &text),
	    LM_ESCHEMA);
	assert_null(text);
	assert_int_equal(c.calls, 1);
	assert_non_null(strstr(err, "t.txt:2: bad \"one\""));

	/* A handler's LM_ENOENT (say, a name it does not know) is an error
	 * too, not the end of the file. */
	memset(&c, 0, sizeof(c));
	c.fail_at = 1;
	c.fail_rc = LM_ENOENT;
	text = (char *) &c;
	assert_int_equal(lm_textfile_read(path, &OPTS, err, sizeof(err), collect_line, &c,
	                     version, sizeof(version), &text),
	    LM_ENOENT);
	assert_null(text);
	assert_int_equal(c.calls, 1);
	assert_non_null(strstr(err, "t.txt:2: bad \"one\""));

	/* Errors of the file itself, and bad arguments. */
	path = put(dir, "one\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(lm_textfile_read(path, &OPTS, err, sizeof(err), collect_line, &c,
	                     version, sizeof(version), NULL),
	    LM_EPARSE);
	assert_int_equal(c.calls, 1);
	assert_non_null(strstr(err, "t.txt: missing \"# version"));
	assert_int_equal(lm_textfile_read(NULL, &OPTS, err, sizeof(err), collect_line, &c,
	                     version, sizeof(version), NULL),
	    LM_EINVAL);
	assert_string_equal(err, "(null): no path");
	assert_int_equal(lm_textfile_read(path, &OPTS, err, sizeof(err), NULL, &c,
	                     version, sizeof(version), NULL),
	    LM_EINVAL);
	assert_int_equal(lm_textfile_read(path, &OPTS, err, sizeof(err), collect_line, &c,
	                     version, OPTS.version_max, NULL),
	    LM_EINVAL);
	assert_int_equal(lm_textfile_read(path, NULL, err, sizeof(err), collect_line, &c,
	                     version, sizeof(version), NULL),
	    LM_EINVAL);
	lmt_rmtree(dir);
	free(dir);
}

/* The column helpers the loaders share. */
static void
test_columns(void **state)
{
	(void) state;
	char line[] = " a \tb\t\t  c d ";
	char *col[3];

	assert_int_equal(lm_textfile_split(line, col, 3), 4);
	assert_string_equal(col[0], "a");
	assert_string_equal(col[1], "b");
	assert_string_equal(col[2], "");
	char one[] = "x";
	assert_int_equal(lm_textfile_split(one, col, 3), 1);
	assert_string_equal(col[0], "x");

	assert_true(lm_textfile_kebab("google-cloud-2"));
	assert_true(lm_textfile_kebab("age"));
	assert_false(lm_textfile_kebab(""));
	assert_false(lm_textfile_kebab("-a"));
	assert_false(lm_textfile_kebab("a-"));
	assert_false(lm_textfile_kebab("a--b"));
	assert_false(lm_textfile_kebab("A"));
	assert_false(lm_textfile_kebab("a_b"));

	/* Decimal numbers only. */
	static const char *const whole_ok[] = {"0", "16", "007"};
	static const char *const real_ok[] = {"1", "-0.25", ".5", "5e-1", "50E+2", "3."};
	static const char *const bad[] = {"", " 8", "8 ", "+8", "0x10", "inf", "nan",
	    "1e", "1e+", ".", "-", "1.2.3", "1e400"};
	double v;
	for (size_t i = 0; i < sizeof(whole_ok) / sizeof(whole_ok[0]); i++)
		assert_true(lm_textfile_number(whole_ok[i], 0, &v));
	assert_true(v == 7);
	for (size_t i = 0; i < sizeof(real_ok) / sizeof(real_ok[0]); i++)
		assert_true(lm_textfile_number(real_ok[i], 1, &v));
	assert_true(v == 3);
	assert_false(lm_textfile_number("-1", 0, &v));
	assert_false(lm_textfile_number("1.5", 0, &v));
	assert_false(lm_textfile_number("1e3", 0, &v));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (lm_textfile_number(bad[i], 1, &v))
			fail_msg("\"%s\" read as a number", bad[i]);
	}

	/* Whole numbers, exactly, in a range. */
	uint64_t u = 0;
	assert_true(lm_textfile_whole("18446744073709551615", 0, UINT64_MAX, &u));
	assert_true(u == UINT64_MAX);
	assert_true(lm_textfile_whole("9007199254740993", 0, UINT64_MAX, &u));
	assert_true(u == 9007199254740993ULL);
	assert_true(lm_textfile_whole("007", 7, 7, &u) && u == 7);
	assert_false(lm_textfile_whole("18446744073709551616", 0, UINT64_MAX, &u));
	assert_false(lm_textfile_whole("6", 7, 9, &u));
	assert_false(lm_textfile_whole("10", 7, 9, &u));
	assert_false(lm_textfile_whole(NULL, 0, 9, &u));
	assert_true(u == 7); /* left alone when refused */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (lm_textfile_whole(bad[i], 0, UINT64_MAX, &u))
			fail_msg("\"%s\" read as a whole number", bad[i]);
	}
	assert_false(lm_textfile_whole("-1", 0, UINT64_MAX, &u));
	assert_false(lm_textfile_whole("1.0", 0, UINT64_MAX, &u));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_columns),
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_errf),
	    cmocka_unit_test(test_take),
	    cmocka_unit_test(test_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
