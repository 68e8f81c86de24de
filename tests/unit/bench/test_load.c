/*
 * test_load.c - the benchmarks' account of their own CPU time: a child that
 * was started and registered counts while it runs and after it was waited
 * for, once.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "lmtest.h"
#include "lunamatch/clock.h"

#define CHILD_CPU_NS 300000000ull /* CPU the child burns before it is counted */
#define WAIT_NS      10000000000ull

static void
test_running_child_counts(void **state)
{
	uint64_t c0, c1, c2, end;
	double cpu = 0;
	pid_t pid;
	int st;

	(void) state;
	c0 = bench_children_cpu_ns();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Busy until killed, at most WAIT_NS. */
		uint64_t stop = lm_clock_ns() + WAIT_NS;
		while (lm_clock_ns() < stop)
			;
		_exit(0);
	}
	bench_load_child(pid);
	end = lm_clock_ns() + WAIT_NS;
	while (lm_clock_ns() < end && (cpu = bench_proc_cpu_s(pid)) * 1e9 < CHILD_CPU_NS)
		usleep(20000);
	assert_true(cpu * 1e9 >= CHILD_CPU_NS);
	c1 = bench_children_cpu_ns();
	assert_true(c1 - c0 >= CHILD_CPU_NS);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* Waited for: counted by RUSAGE_CHILDREN, not also from /proc. */
	c2 = bench_children_cpu_ns();
	assert_true(c2 >= c1);
	assert_true(c2 - c0 < 2 * (c1 - c0) + 200000000ull);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_running_child_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
