/*
 * test_text.c - the control characters of text.h: C0, DEL and C1 (two
 * bytes in UTF-8), whole characters only; other text, UTF-8 letters and
 * U+00A0 included, is not one; and lm_text_clean, which writes '?' for
 * control characters and for bytes that are not UTF-8.
 */
#include <stdio.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/text.h"

static void
test_control(void **state)
{
	(void) state;
	assert_int_equal(lm_text_control("\x1b[", 2), 1);
	assert_int_equal(lm_text_control("\x7f", 1), 1);
	assert_int_equal(lm_text_control("", 1), 1); /* NUL is C0 */
	assert_int_equal(lm_text_control("\xc2\x80", 2), 2);
	assert_int_equal(lm_text_control("\xc2\x9f", 2), 2);
	assert_int_equal(lm_text_control("\xc2\x9f", 1), 0); /* C1 cut at n */
	assert_int_equal(lm_text_control("\xc2\xa0", 2), 0); /* U+00A0 */
	assert_int_equal(lm_text_control("\xc3\xb6", 2), 0);
	assert_int_equal(lm_text_control(" ", 1), 0);
	assert_int_equal(lm_text_control("a", 0), 0);
}

static void
test_has_control(void **state)
{
	(void) state;
	assert_true(lm_text_has_control("a\x01"));
	assert_true(lm_text_has_control("\x7f"));
	assert_true(lm_text_has_control("a\xc2\x9b"
	                                "2J")); /* U+009B, CSI */
	assert_true(lm_text_has_control("\xc2\x80"));
	assert_false(lm_text_has_control("K\xc3\xb6ln, ok"));
	assert_false(lm_text_has_control("\xc2\xa0\xc2")); /* U+00A0; a cut sequence */
	assert_false(lm_text_has_control(""));
}

/* lm_text_clean keeps valid UTF-8 text as it is and turns each control
 * character and each byte outside a well-formed character into '?'. */
static void
test_clean(void **state)
{
	(void) state;
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"", ""}, {"plain text", "plain text"},
	    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
	    {"a\x13"
	     "b",
	        "a?b"},              /* C0 */
	    {"a\x7f", "a?"},         /* DEL */
	    {"x\xc2\x9by", "x?y"},   /* C1: one '?' for its two bytes */
	    {"\"U\xc7\"", "\"U?\""}, /* a lone lead byte */
	    {"\xe2\x82", "??"},      /* a character cut short */
	    {"\xc0\xaf", "??"},      /* overlong */
	    {"\xed\xa0\x80", "???"}, /* a surrogate */
	    {"\x80tail", "?tail"},   /* a continuation byte alone */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[64];
		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		assert_int_equal(lm_text_clean(buf), strlen(cases[i].out));
		assert_string_equal(buf, cases[i].out);
	}
}

/* lm_text_blank: ASCII white space and the listed Unicode blanks, with
 * their lengths; neighbours of theirs and a character cut short are none. */
static void
test_blank(void **state)
{
	(void) state;
	static const struct {
		const char *s;
		size_t len;
	} cases[] = {
	    {" x", 1}, {"\t", 1}, {"\r", 1}, {"\v", 1},
	    {"\xc2\xa0x", 2},                   /* U+00A0 no-break space */
	    {"\xe1\x9a\x80", 3},                /* U+1680 */
	    {"\xe2\x80\x80", 3},                /* U+2000 */
	    {"\xe2\x80\x8a", 3},                /* U+200A */
	    {"\xe2\x80\x8b", 3},                /* U+200B zero-width space */
	    {"\xe2\x80\xa8", 3},                /* U+2028 */
	    {"\xe2\x80\xa9", 3},                /* U+2029 */
	    {"\xe2\x80\xaf", 3},                /* U+202F */
	    {"\xe2\x81\x9f", 3},                /* U+205F */
	    {"\xe3\x80\x80", 3},                /* U+3000 ideographic space */
	    {"\xef\xbb\xbf", 3},                /* U+FEFF */
	    {"x", 0}, {"", 0}, {"\xc2\xa1", 0}, /* U+00A1 */
	    {"\xe2\x80\x8c", 0},                /* U+200C zero-width non-joiner */
	    {"\xe2\x80\x94", 0},                /* U+2014 em dash */
	    {"\xe3\x80\x81", 0},                /* U+3001 */
	    {"\xc2", 0},                        /* cut short */
	    {"\xe3\x80", 0},                    /* cut short */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (lm_text_blank(cases[i].s, strlen(cases[i].s)) != cases[i].len)
			fail_msg("case %zu: %zu, want %zu", i,
			    lm_text_blank(cases[i].s, strlen(cases[i].s)), cases[i].len);
	/* n bounds the read: a no-break space with n 1 is none. */
	assert_int_equal(lm_text_blank("\xc2\xa0", 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_control),
	    cmocka_unit_test(test_has_control),
	    cmocka_unit_test(test_clean),
	    cmocka_unit_test(test_blank),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
