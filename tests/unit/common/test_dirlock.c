/*
 * test_dirlock.c - one process of a kind per data directory: a second
 * process is refused while the first holds the lock, named by its pid, and
 * gets the lock once the first lets go of it or dies, SIGKILL included.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/dirlock.h"
#include "lunamatch/error.h"

/* In a child process: the result of taking dir's lock "svc" (and letting
 * go of it), as the child's exit status: 0 LM_OK, 1 LM_EBUSY naming
 * want_pid, 2 anything else. */
static int
try_in_child(const char *dir, long want_pid)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		lm_dirlock *l = NULL;
		char err[512] = "", want[64];
		int rc = lm_dirlock_take(dir, "svc", &l, err, sizeof(err));
		snprintf(want, sizeof(want), "held by process %ld", want_pid);
		lm_dirlock_release(l);
		_exit(rc == LM_OK ? 0 : rc == LM_EBUSY && strstr(err, want) ? 1 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_one_holder(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("dirlock");
	lm_dirlock *l = NULL, *other = NULL;
	char err[512] = "";

	assert_int_equal(lm_dirlock_take(dir, "svc", &l, err, sizeof(err)), LM_OK);
	assert_non_null(l);
	/* Another process is refused, with this one's pid. */
	assert_int_equal(try_in_child(dir, (long) getpid()), 1);
	/* Another name is another lock (a match beside its ingest). */
	assert_int_equal(lm_dirlock_take(dir, "other", &other, err, sizeof(err)), LM_OK);
	lm_dirlock_release(other);
	/* Let go of, the lock is free for the next process. */
	lm_dirlock_release(l);
	assert_int_equal(try_in_child(dir, 0), 0);
	lm_dirlock_release(NULL);
	lmt_rmtree(dir);
	free(dir);
}

/* A holder killed with SIGKILL leaves no stale lock. */
static void
test_killed_holder(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("dirlock");
	int ready[2], status;
	char c;

	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lm_dirlock *l = NULL;
		close(ready[0]);
		if (lm_dirlock_take(dir, "svc", &l, NULL, 0) != LM_OK)
			_exit(2);
		if (write(ready[1], "x", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(try_in_child(dir, (long) pid), 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(try_in_child(dir, 0), 0);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_bad_arguments(void **state)
{
	(void) state;
	lm_dirlock *l = (lm_dirlock *) &l;
	char err[512] = "";

	assert_int_equal(lm_dirlock_take(NULL, "svc", &l, err, sizeof(err)), LM_EINVAL);
	assert_null(l);
	assert_int_equal(lm_dirlock_take("/tmp", "a/b", &l, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(
	    lm_dirlock_take("/tmp", "svc", NULL, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(
	    lm_dirlock_take("/no/such/dir", "svc", &l, err, sizeof(err)), LM_ENOENT);
	assert_non_null(strstr(err, "/no/such/dir/svc.lock"));
	assert_null(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_holder),
	    cmocka_unit_test(test_killed_holder),
	    cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
