/*
 * random.c - random bytes from the kernel; see lunamatch/random.h.
 */
#include <errno.h>
#include <sys/random.h>
#include <sys/types.h>

#include "lunamatch/error.h"
#include "lunamatch/random.h"

int
lm_random_bytes(void *buf, size_t n, bool wait)
{
	ssize_t got;

	if (buf == NULL || n == 0 || n > LM_RANDOM_MAX)
		return LM_EINVAL;
	while ((got = getrandom(buf, n, wait ? 0 : GRND_NONBLOCK)) < 0 && errno == EINTR)
		;
	if (got == (ssize_t) n)
		return LM_OK;
	return got < 0 && errno == EAGAIN ? LM_EBUSY : LM_EIO;
}

int
lm_random_hex(char *hex, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char raw[LM_RANDOM_MAX];
	int rc;

	if (hex == NULL)
		return LM_EINVAL;
	hex[0] = '\0';
	if ((rc = lm_random_bytes(raw, n, true)) != LM_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 0xf];
	}
	hex[2 * n] = '\0';
	return LM_OK;
}
