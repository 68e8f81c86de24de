/*
 * clock.c - the monotonic millisecond clock and the retry back-off; see
 * clock.h.
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

uint64_t
lm_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

struct timespec
lm_clock_deadline(clockid_t clock, int64_t ms)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	ts.tv_sec += (time_t) (ms / 1000);
	ts.tv_nsec += (long) (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

int64_t
lm_backoff_next(int64_t backoff, int64_t min, int64_t max)
{
	if (backoff < min)
		return min;
	return backoff > max / 2 ? max : backoff * 2;
}
