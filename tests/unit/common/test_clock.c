/*
 * test_clock.c - the monotonic millisecond clock: it agrees with
 * CLOCK_MONOTONIC, never goes back, and advances across a sleep; a deadline
 * lies the asked milliseconds ahead on the asked clock with tv_nsec kept
 * below one second; a condition variable from lm_cond_init_monotonic times
 * out at a monotonic deadline (a real-time one, decades earlier on that
 * clock, would have passed at once); the retry back-off starts at its
 * minimum, doubles and stops at its maximum.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_agrees_with_monotonic(void **state)
{
	(void) state;
	int64_t before = mono_ms();
	int64_t t = lm_clock_ms();
	int64_t after = mono_ms();
	assert_true(before <= t);
	assert_true(t <= after);
}

static void
test_never_goes_back(void **state)
{
	(void) state;
	int64_t prev = lm_clock_ms();
	for (int i = 0; i < 100000; i++) {
		int64_t t = lm_clock_ms();
		assert_true(t >= prev);
		prev = t;
	}
}

static void
test_advances(void **state)
{
	(void) state;
	struct timespec nap = {0, 30 * 1000000L};
	int64_t t0 = lm_clock_ms();
	nanosleep(&nap, NULL);
	assert_true(lm_clock_ms() - t0 >= 30);
}

static int64_t
ts_ns(struct timespec ts)
{
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Every remainder of a second, and whole seconds, land ms ahead of a
 * reading of the monotonic clock taken just before, normalised. */
static void
test_deadline(void **state)
{
	(void) state;
	const int64_t ms[] = {0, 1, 250, 999, 1000, 1001, 1999, 5000, 86400123};
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		struct timespec before, after;
		clock_gettime(CLOCK_MONOTONIC, &before);
		struct timespec d = lm_clock_deadline(ms[i]);
		clock_gettime(CLOCK_MONOTONIC, &after);
		assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		assert_true(ts_ns(d) >= ts_ns(before) + ms[i] * 1000000);
		assert_true(ts_ns(d) <= ts_ns(after) + ms[i] * 1000000);
	}
}

static void
test_cond_monotonic(void **state)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	struct timespec ts;
	int64_t t0;
	int rc = 0;

	(void) state;
	assert_int_equal(lm_cond_init_monotonic(&cv), LM_OK);
	pthread_mutex_lock(&mu);
	t0 = lm_clock_ms();
	ts = lm_clock_deadline(50);
	/* Spurious wake-ups return 0: wait again until the deadline. */
	while ((rc = pthread_cond_timedwait(&cv, &mu, &ts)) == 0)
		;
	pthread_mutex_unlock(&mu);
	assert_int_equal(rc, ETIMEDOUT);
	assert_true(lm_clock_ms() - t0 >= 49);
	pthread_cond_destroy(&cv);
}

static void
test_backoff(void **state)
{
	(void) state;
	assert_int_equal(lm_backoff_next(0, 100, 5000), 100);
	assert_int_equal(lm_backoff_next(-1, 100, 5000), 100);
	assert_int_equal(lm_backoff_next(100, 100, 5000), 200);
	assert_int_equal(lm_backoff_next(2400, 100, 5000), 4800);
	assert_int_equal(lm_backoff_next(4800, 100, 5000), 5000);
	assert_int_equal(lm_backoff_next(5000, 100, 5000), 5000);
	/* Never overflows, whatever it is handed. */
	assert_int_equal(lm_backoff_next(INT64_MAX, 100, 5000), 5000);
	assert_int_equal(lm_backoff_next(INT64_MAX / 2 + 1, 1, INT64_MAX), INT64_MAX);
	int64_t b = 0;
	for (int i = 0; i < 100; i++) {
		int64_t next = lm_backoff_next(b, 500, 30000);
		assert_true(next >= 500 && next <= 30000 && next >= b);
		b = next;
	}
	assert_int_equal(b, 30000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_agrees_with_monotonic),
	    cmocka_unit_test(test_never_goes_back),
	    cmocka_unit_test(test_advances),
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_cond_monotonic),
	    cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
