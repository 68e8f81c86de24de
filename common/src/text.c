/*
 * text.c - control characters in text (text.h).
 */
#include <string.h>

#include "lunamatch/pb.h"
#include "lunamatch/text.h"

size_t
lm_text_control(const void *s, size_t n)
{
	const unsigned char *u = s;

	if (n == 0)
		return 0;
	if (u[0] < 0x20 || u[0] == 0x7f)
		return 1;
	if (n >= 2 && u[0] == 0xc2 && u[1] >= 0x80 && u[1] < 0xa0)
		return 2;
	return 0;
}

size_t
lm_text_blank(const void *s, size_t n)
{
	const unsigned char *u = s;

	if (n == 0)
		return 0;
	if (u[0] == ' ' || (u[0] >= '\t' && u[0] <= '\r'))
		return 1;
	if (n < 2)
		return 0;
	if (u[0] == 0xc2 && u[1] == 0xa0) /* U+00A0 */
		return 2;
	if (n < 3)
		return 0;
	if (u[0] == 0xe1 && u[1] == 0x9a && u[2] == 0x80) /* U+1680 */
		return 3;
	if (u[0] == 0xe2 && u[1] == 0x80 &&
	    (u[2] <= 0x8b || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf))
		return 3; /* U+2000..U+200B, U+2028, U+2029, U+202F */
	if (u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f) /* U+205F */
		return 3;
	if (u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80) /* U+3000 */
		return 3;
	if (u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) /* U+FEFF */
		return 3;
	return 0;
}

int
lm_text_has_control(const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if (lm_text_control(s + i, n - i) > 0)
			return 1;
	return 0;
}

/* The length of the well-formed UTF-8 character s[0..n) starts with (n >
 * 0), or 0 when it starts with none. */
static size_t
utf8_char(const char *s, size_t n)
{
	unsigned char c = (unsigned char) s[0];
	size_t k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;

	return k > 0 && k <= n && lm_pb_utf8_valid(s, k) ? k : 0;
}

size_t
lm_text_clean(char *s)
{
	size_t len = strlen(s), w = 0;

	for (size_t i = 0; i < len;) {
		size_t ctl = lm_text_control(s + i, len - i), k;
		if (ctl > 0) {
			s[w++] = '?';
			i += ctl;
		} else if ((k = utf8_char(s + i, len - i)) > 0) {
			memmove(s + w, s + i, k);
			w += k;
			i += k;
		} else {
			s[w++] = '?';
			i++;
		}
	}
	s[w] = '\0';
	return w;
}
