/*
 * clock.c - the monotonic millisecond clock and the retry back-off; see
 * clock.h.
 */
#include <pthread.h>
#include <time.h>

#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"

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
lm_clock_deadline(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t) (ms / 1000);
	ts.tv_nsec += (long) (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

int
lm_cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int rc;

	if ((rc = pthread_condattr_init(&ca)) != 0)
		return lm_err_from_errno(rc);
	if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
		rc = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return rc == 0 ? LM_OK : lm_err_from_errno(rc);
}

int64_t
lm_backoff_next(int64_t backoff, int64_t min, int64_t max)
{
	if (backoff < min)
		return min;
	return backoff > max / 2 ? max : backoff * 2;
}
