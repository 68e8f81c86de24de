/*
 * clock.c - the monotonic millisecond clock; see clock.h.
 */
#include <time.h>

#include "lunamatch/clock.h"

int64_t
lm_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
