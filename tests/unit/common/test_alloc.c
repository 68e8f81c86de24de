/*
 * test_alloc.c - large arrays (alloc.h): a block keeps its bytes while it
 * grows from malloc's sizes to a mapping's, doubles as a mapping and
 * shrinks back; it is 16-byte aligned throughout; from LM_BIG_MAP_MIN
 * bytes on it is a mapping of its own (but in a sanitizer's build, where
 * every block is malloc's so that the sanitizer checks its bounds), which
 * lm_big_free unmaps; and sizes that cannot be allocated, or a growth the
 * kernel refuses, leave the block as it was.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/alloc.h"

/* Byte i of the pattern the test writes. */
static uint8_t
pat(size_t i)
{
	return (uint8_t) (i * 7 + (i >> 12));
}

static void
fill(uint8_t *p, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		p[i] = pat(i);
}

static void
assert_pattern(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(i))
			fail_msg("byte %zu of %zu: %u, wrote %u", i, n, p[i], pat(i));
}

/* Whether p is the start of a mapping of its own: the header's 16 bytes
 * before it begin a page. */
static int
is_mapping(const void *p)
{
	size_t page = (size_t) sysconf(_SC_PAGESIZE);

	return ((uintptr_t) p - 16) % page == 0;
}

/* The process's mappings, as the kernel lists them. */
static size_t
mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	size_t n = 0;
	int c;

	assert_non_null(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void
test_grow_and_shrink(void **state)
{
	size_t n = 1000, size = 0;
	uint8_t *p = NULL, *q;

	(void) state;
	/* Doubling from 1000 bytes to 64 MiB, as the index's arrays grow. */
	while (n <= 64 * LM_BIG_MAP_MIN) {
		q = lm_big_realloc(p, n);
		assert_non_null(q);
		assert_int_equal((uintptr_t) q % 16, 0);
		assert_pattern(q, size);
		fill(q, size, n);
		if (n >= LM_BIG_MAP_MIN && lm_big_mapped())
			assert_true(is_mapping(q));
		p = q;
		size = n;
		n *= 2;
	}
	assert_pattern(p, size);
	/* Shrinking: a smaller mapping, then malloc's again. */
	p = lm_big_realloc(p, 3 * LM_BIG_MAP_MIN);
	assert_non_null(p);
	assert_pattern(p, 3 * LM_BIG_MAP_MIN);
	p = lm_big_realloc(p, 4096);
	assert_non_null(p);
	assert_pattern(p, 4096);
	lm_big_free(p);
}

static void
test_edges(void **state)
{
	uint8_t *p;

	(void) state;
	lm_big_free(NULL);
	assert_null(lm_big_realloc(NULL, 0));
	/* A mapping straight away, and its 0-size realloc frees it. */
	p = lm_big_realloc(NULL, 2 * LM_BIG_MAP_MIN);
	assert_non_null(p);
	fill(p, 0, 2 * LM_BIG_MAP_MIN);
	/* Sizes no allocation can hold: refused, the block unchanged. */
	assert_null(lm_big_realloc(p, SIZE_MAX));
	assert_null(lm_big_realloc(p, SIZE_MAX - 8));
	assert_pattern(p, 2 * LM_BIG_MAP_MIN);
	assert_null(lm_big_realloc(p, 0));
	p = lm_big_realloc(NULL, 100);
	assert_non_null(p);
	assert_null(lm_big_realloc(p, SIZE_MAX - 4));
	lm_big_free(p);
}

/* lm_big_free unmaps what it mapped: the process's mappings are as many
 * after blocks are made, grown and freed as before. A growth the kernel
 * refuses (the address space limit reached, in a child) returns NULL and
 * leaves the block and its bytes as they were. */
static void
test_unmapped_and_refused(void **state)
{
	size_t before;
	uint8_t *v[8];
	pid_t pid;
	int status;

	(void) state;
	if (!lm_big_mapped()) {
		skip(); /* a sanitizer's build: every block is malloc's */
		return;
	}
	before = mappings();

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 8; i++) {
			v[i] = lm_big_realloc(NULL, LM_BIG_MAP_MIN * (size_t) (1 + i));
			assert_non_null(v[i]);
			v[i][0] = 1;
			v[i] =
			    lm_big_realloc(v[i], 4 * LM_BIG_MAP_MIN * (size_t) (1 + i));
			assert_non_null(v[i]);
		}
		for (int i = 0; i < 8; i++)
			lm_big_free(v[i]);
	}
	assert_int_equal(mappings(), before);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		unsigned long pages = 0;
		uint8_t *p = lm_big_realloc(NULL, 2 * LM_BIG_MAP_MIN);
		FILE *f = fopen("/proc/self/statm", "r");
		if (p == NULL || f == NULL || fscanf(f, "%lu", &pages) != 1)
			_exit(2);
		fclose(f);
		fill(p, 0, 2 * LM_BIG_MAP_MIN);
		/* The address space limit 64 MiB above what is mapped: no room
		 * for a growth to 1 GiB. */
		getrlimit(RLIMIT_AS, &rl);
		rl.rlim_cur = pages * (rlim_t) sysconf(_SC_PAGESIZE) + (64u << 20);
		if (setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(4);
		if (lm_big_realloc(p, 1024 * LM_BIG_MAP_MIN) != NULL)
			_exit(5);
		for (size_t i = 0; i < 2 * LM_BIG_MAP_MIN; i++)
			if (p[i] != pat(i))
				_exit(6);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow_and_shrink),
	    cmocka_unit_test(test_edges),
	    cmocka_unit_test(test_unmapped_and_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
