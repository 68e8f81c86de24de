/*
 * test_random.c - random bytes from the kernel: bad arguments are refused
 * and leave the buffer alone; a call fills every byte it is asked for (no
 * short read taken for a whole one), up to LM_RANDOM_MAX; two draws
 * differ; the non-waiting form works once the pool is ready (it always is
 * after boot); lm_random_hex writes exactly 2n lower-case hex digits and a
 * NUL, and "" on a refusal.
 */
#include <stdint.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/random.h"

static void
test_refuses_bad_arguments(void **state)
{
	unsigned char buf[LM_RANDOM_MAX + 1];

	(void) state;
	memset(buf, 0xAB, sizeof(buf));
	assert_int_equal(lm_random_bytes(NULL, 8, true), LM_EINVAL);
	assert_int_equal(lm_random_bytes(buf, 0, true), LM_EINVAL);
	assert_int_equal(lm_random_bytes(buf, LM_RANDOM_MAX + 1, true), LM_EINVAL);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xAB);
}

/* Every byte of a long draw is written: with 0x00 and 0xFF fills before
 * two draws, a byte the call left alone keeps its fill in both, which 256
 * random bytes do at a given place with a chance of 2^-16 each. */
static void
test_fills_every_byte(void **state)
{
	unsigned char a[LM_RANDOM_MAX], b[LM_RANDOM_MAX];
	size_t same = 0;

	(void) state;
	memset(a, 0x00, sizeof(a));
	memset(b, 0xFF, sizeof(b));
	assert_int_equal(lm_random_bytes(a, sizeof(a), true), LM_OK);
	assert_int_equal(lm_random_bytes(b, sizeof(b), true), LM_OK);
	for (size_t i = 0; i < sizeof(a); i++)
		same += a[i] == 0x00 && b[i] == 0xFF;
	assert_true(same <= 1);
	assert_memory_not_equal(a, b, sizeof(a));
}

static void
test_draws_differ(void **state)
{
	uint64_t v[64];

	(void) state;
	for (size_t i = 0; i < 64; i++) {
		assert_int_equal(lm_random_bytes(&v[i], sizeof(v[i]), i % 2 == 0), LM_OK);
		for (size_t j = 0; j < i; j++)
			assert_true(v[i] != v[j]);
	}
}

static void
test_hex(void **state)
{
	char a[2 * 16 + 1], b[2 * 16 + 1], big[2 * LM_RANDOM_MAX + 1];

	(void) state;
	assert_int_equal(lm_random_hex(a, 16), LM_OK);
	assert_int_equal(lm_random_hex(b, 16), LM_OK);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
	assert_int_equal(lm_random_hex(big, LM_RANDOM_MAX), LM_OK);
	assert_int_equal(strlen(big), 2 * LM_RANDOM_MAX);
	assert_int_equal(strspn(big, "0123456789abcdef"), 2 * LM_RANDOM_MAX);

	memset(a, 'x', sizeof(a));
	assert_int_equal(lm_random_hex(a, 0), LM_EINVAL);
	assert_string_equal(a, "");
	assert_int_equal(lm_random_hex(NULL, 16), LM_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refuses_bad_arguments),
	    cmocka_unit_test(test_fills_every_byte),
	    cmocka_unit_test(test_draws_differ),
	    cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
