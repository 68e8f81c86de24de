/*
 * test_memlimit.c - the memory limit: the cgroup files' forms (a number,
 * "max", cgroup v1's unlimited value) parse as the kernel writes them, bad
 * content is refused, and the limit read here is no more than the
 * machine's memory.
 */
#include <stdint.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/memlimit.h"

static void
test_parse(void **state)
{
	uint64_t v = 0;
	(void) state;

	assert_int_equal(lm_memory_limit_parse("2147483648\n", &v), LM_OK);
	assert_true(v == UINT64_C(2147483648));
	assert_int_equal(lm_memory_limit_parse("0", &v), LM_OK);
	assert_true(v == 0);
	assert_int_equal(lm_memory_limit_parse("max\n", &v), LM_ENOENT);
	assert_int_equal(lm_memory_limit_parse("max", &v), LM_ENOENT);
	/* cgroup v1 without a limit. */
	assert_int_equal(lm_memory_limit_parse("9223372036854771712\n", &v), LM_ENOENT);
	assert_int_equal(
	    lm_memory_limit_parse("99999999999999999999999\n", &v), LM_ENOENT);
	assert_int_equal(lm_memory_limit_parse("", &v), LM_EINVAL);
	assert_int_equal(lm_memory_limit_parse("\n", &v), LM_EINVAL);
	assert_int_equal(lm_memory_limit_parse("-1\n", &v), LM_EINVAL);
	assert_int_equal(lm_memory_limit_parse("12k\n", &v), LM_EINVAL);
	assert_int_equal(lm_memory_limit_parse("12\n\n", &v), LM_EINVAL);
	assert_int_equal(lm_memory_limit_parse(" 12\n", &v), LM_EINVAL);
	assert_int_equal(lm_memory_limit_parse(NULL, &v), LM_EINVAL);
	assert_int_equal(lm_memory_limit_parse("12", NULL), LM_EINVAL);
}

static void
test_limit(void **state)
{
	(void) state;
	uint64_t phys =
	    (uint64_t) sysconf(_SC_PHYS_PAGES) * (uint64_t) sysconf(_SC_PAGESIZE);
	uint64_t lim = lm_memory_limit();

	assert_true(lim > 0);
	assert_true(lim <= phys);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
