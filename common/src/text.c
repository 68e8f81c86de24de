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
