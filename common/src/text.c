/*
 * text.c - control characters in text (text.h).
 */
#include <string.h>

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
