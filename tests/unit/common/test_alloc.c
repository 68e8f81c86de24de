/*
 * test_alloc.c - large arrays (alloc.h): a block keeps its bytes while it
 * grows from malloc's sizes to a mapping's, doubles as a mapping and
 * shrinks back; it is 16-byte aligned throughout; from LM_BIG_MAP_MIN
 * bytes on it is a mapping of its own (but in a sanitizer's build, where
 * every block is malloc's so that the sanitizer checks its bounds); and
 * sizes that cannot be allocated are refused with the block unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/alloc.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

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

#ifndef SANITIZER_BUILD
/* Whether p is the start of a mapping of its own: the header's 16 bytes
 * before it begin a page. */
static int
is_mapping(const void *p)
{
	size_t page = (size_t) sysconf(_SC_PAGESIZE);

	return ((uintptr_t) p - 16) % page == 0;
}
#endif

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
#ifndef SANITIZER_BUILD
		if (n >= LM_BIG_MAP_MIN)
			assert_true(is_mapping(q));
#endif
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow_and_shrink),
	    cmocka_unit_test(test_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
