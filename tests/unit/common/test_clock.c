/*
 * test_clock.c - the monotonic millisecond clock: it agrees with
 * CLOCK_MONOTONIC, never goes back, and advances across a sleep.
 */
#include <time.h>

#include "lmtest.h"
#include "lunamatch/clock.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_agrees_with_monotonic),
	    cmocka_unit_test(test_never_goes_back),
	    cmocka_unit_test(test_advances),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
