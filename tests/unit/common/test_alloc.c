/*
 * test_alloc.c - the allocator policy: once set, a block of LM_ALLOC_MAP_MIN
 * bytes or more gets a mapping of its own even after a large freed block
 * raised glibc's dynamic threshold, and grows in place of its mapping with
 * its bytes kept.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "lmtest.h"
#include "lunamatch/alloc.h"
#include "lunamatch/error.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_ALLOCATOR 1
#endif
#endif

#if defined(__GLIBC__) && !defined(SANITIZER_ALLOCATOR)
/* Blocks mapped on their own, as glibc counts them. */
static size_t
mapped_blocks(void)
{
	return mallinfo2().hblks;
}

/* Allocates n bytes, touches them and returns them with the change in
 * mapped blocks that the allocation made. */
static char *
alloc_counted(size_t n, long *delta)
{
	size_t before = mapped_blocks();
	char *p = malloc(n);

	assert_non_null(p);
	memset(p, 0x5a, n);
	*delta = (long) mapped_blocks() - (long) before;
	return p;
}
#endif

static void
test_large_blocks_mapped(void **state)
{
	(void) state;
#if defined(SANITIZER_ALLOCATOR)
	/* The sanitizer's allocator refuses the setting. */
	assert_int_equal(lm_alloc_setup(), LM_ENOTSUP);
	skip();
#elif !defined(__GLIBC__)
	skip();
#else
	const size_t big = 16 * LM_ALLOC_MAP_MIN, block = 2 * LM_ALLOC_MAP_MIN;
	long delta;
	char *p, *q;

	pid_t pid;
	int status;

	/* glibc's default, in a child so that this process's heap stays as
	 * it is: freeing a mapped block of 16 MiB raises the threshold, and a
	 * block of 2 MiB then comes from the heap. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		p = alloc_counted(big, &delta);
		if (delta != 1)
			_exit(2);
		free(p);
		p = alloc_counted(block, &delta);
		_exit(delta == 0 ? 0 : 3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(lm_alloc_setup(), LM_OK);
	p = alloc_counted(big, &delta);
	assert_int_equal(delta, 1);
	free(p);
	p = alloc_counted(block, &delta);
	assert_int_equal(delta, 1);
	/* A doubling keeps it mapped and keeps its bytes. */
	p[0] = 1;
	p[block - 1] = 2;
	q = realloc(p, 2 * block);
	assert_non_null(q);
	assert_int_equal(q[0], 1);
	assert_int_equal(q[block - 1], 2);
	assert_int_equal(q[block / 2], 0x5a);
	assert_true(mallinfo2().hblkhd >= 2 * block);
	free(q);
	/* Below the threshold: the heap. */
	p = alloc_counted(LM_ALLOC_MAP_MIN / 2, &delta);
	assert_int_equal(delta, 0);
	free(p);
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_large_blocks_mapped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
