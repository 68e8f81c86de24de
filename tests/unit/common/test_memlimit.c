/*
 * test_memlimit.c - the memory limit: the cgroup files' forms (a number,
 * "max", cgroup v1's unlimited value) parse as the kernel writes them, bad
 * content is refused, and the limit read here is no more than the
 * machine's memory.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Writes text to dir/rel, creating the directories on the way. */
static void
put(const char *dir, const char *rel, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
		*p = '/';
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* The process's group and its ancestors, as the kernel lists and mounts
 * them: the smallest limit of the chain counts; "max" and cgroup v1's
 * unlimited value are none; v1 is asked only when v2 has no limit. */
static void
test_groups(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("memlimit");
	char proc[1024], root[1024];
	uint64_t phys =
	    (uint64_t) sysconf(_SC_PHYS_PAGES) * (uint64_t) sysconf(_SC_PAGESIZE);

	snprintf(proc, sizeof(proc), "%s/cgroup", dir);
	snprintf(root, sizeof(root), "%s/fs", dir);
	/* v2: the pod's limit is on the parent of the container's group. */
	put(dir, "cgroup", "0::/kubepods/pod1/ctr\n");
	put(dir, "fs/kubepods/pod1/ctr/memory.max", "max\n");
	put(dir, "fs/kubepods/pod1/memory.max", "536870912\n");
	put(dir, "fs/kubepods/memory.max", "1073741824\n");
	assert_true(lm_memory_limit_from(proc, root) == UINT64_C(536870912));
	/* A tighter limit on the group itself wins. */
	put(dir, "fs/kubepods/pod1/ctr/memory.max", "268435456\n");
	assert_true(lm_memory_limit_from(proc, root) == UINT64_C(268435456));
	/* v1 (a hybrid host): the memory controller's line. */
	put(dir, "cgroup", "4:memory:/api/job7\n3:cpu,cpuacct:/\n0::/\n");
	put(dir, "fs/memory/api/job7/memory.limit_in_bytes", "9223372036854771712\n");
	put(dir, "fs/memory/api/memory.limit_in_bytes", "805306368\n");
	put(dir, "fs/memory.max", "max\n");
	assert_true(lm_memory_limit_from(proc, root) == UINT64_C(805306368));
	/* No limit anywhere, or no files: the machine's memory. */
	put(dir, "fs/memory/api/memory.limit_in_bytes", "9223372036854771712\n");
	assert_true(lm_memory_limit_from(proc, root) == phys);
	snprintf(proc, sizeof(proc), "%s/absent", dir);
	assert_true(lm_memory_limit_from(proc, root) == phys);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
