/*
 * clock_ahead.c - an LD_PRELOAD shim for test_clock.c: clock_gettime of
 * CLOCK_REALTIME, called by the program itself (not by a shared library
 * such as librdkafka), reads LMT_CLOCK_AHEAD_S seconds ahead. A deadline
 * the program takes from the real-time clock then lies that much further
 * in the future for the kernel, which is what a wait so measured lives
 * through when the system time is set back by that much while it waits
 * (a time step, a virtual machine resumed). Waits measured on
 * CLOCK_MONOTONIC do not notice it. Every other call goes to the C library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int
clock_gettime(clockid_t clk, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	const char *ahead = getenv("LMT_CLOCK_AHEAD_S");
	Dl_info info;
	int rc;

	if (real == NULL)
		*(void **) &real = dlsym(RTLD_NEXT, "clock_gettime");
	rc = real(clk, ts);
	if (rc == 0 && clk == CLOCK_REALTIME && ahead != NULL &&
	    dladdr(__builtin_return_address(0), &info) != 0 && info.dli_fname != NULL &&
	    strstr(info.dli_fname, ".so") == NULL)
		ts->tv_sec += atol(ahead);
	return rc;
}
