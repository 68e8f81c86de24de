/*
 * clock.h - the monotonic millisecond clock that deadlines, timeouts and
 * heartbeats across lunamatch are measured with.
 *
 * Wall-clock time (record timestamps, event times) is time(NULL); this clock
 * is for intervals only: it never jumps when the system time is set. Every
 * timed wait on a condition variable is measured with it too (a condition
 * variable made by lm_cond_init_monotonic, a deadline from
 * lm_clock_deadline): a wait measured on the real-time
 * clock lasts as much longer as the time is set back. The retry loops'
 * exponential back-off is defined here once.
 */
#ifndef LUNAMATCH_CLOCK_H
#define LUNAMATCH_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Milliseconds of CLOCK_MONOTONIC (since an arbitrary point, the same for
 * every thread and process of the machine). Never decreases. Thread-safe. */
int64_t lm_clock_ms(void);

/* The same clock in nanoseconds, for latencies. */
uint64_t lm_clock_ns(void);

/* The absolute time ms (>= 0) milliseconds from now on CLOCK_MONOTONIC, for
 * pthread_cond_timedwait on a condition variable made by
 * lm_cond_init_monotonic (with any other, the deadline has long passed). */
struct timespec lm_clock_deadline(int64_t ms);

/* Initializes cv (default attributes otherwise) for timed waits on
 * CLOCK_MONOTONIC, with deadlines from lm_clock_deadline. Returns LM_OK, or the error of
 * pthread_cond_init converted (LM_ENOMEM, LM_EBUSY); cv is then not initialized. glibc's
 * never fails, so callers that ignore pthread_cond_init's result may ignore this one. */
int lm_cond_init_monotonic(pthread_cond_t *cv);

/* The pause after another failure in a row, for retry loops that back off
 * exponentially: min when backoff is below min (0: the first failure), else
 * backoff doubled, at most max (min <= max). */
int64_t lm_backoff_next(int64_t backoff, int64_t min, int64_t max);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_CLOCK_H */
