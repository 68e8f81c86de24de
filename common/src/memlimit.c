/*
 * memlimit.c - the memory this process may use (memlimit.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lunamatch/error.h"
#include "lunamatch/memlimit.h"

/* cgroup v1 writes its "no limit" as the largest page-aligned int64. */
#define UNLIMITED_FROM (UINT64_C(1) << 60)

static const char *const limit_files[] = {
    "/sys/fs/cgroup/memory.max",                   /* cgroup v2 */
    "/sys/fs/cgroup/memory/memory.limit_in_bytes", /* cgroup v1 */
};

int
lm_memory_limit_parse(const char *text, uint64_t *bytes)
{
	unsigned long long v;
	char *end;

	if (text == NULL || bytes == NULL)
		return LM_EINVAL;
	if (strcmp(text, "max") == 0 || strcmp(text, "max\n") == 0)
		return LM_ENOENT;
	if (*text < '0' || *text > '9')
		return LM_EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return LM_ENOENT;
	if (errno != 0 || (*end != '\0' && strcmp(end, "\n") != 0))
		return LM_EINVAL;
	if ((uint64_t) v >= UNLIMITED_FROM)
		return LM_ENOENT;
	*bytes = (uint64_t) v;
	return LM_OK;
}

/* The limit in the first cgroup file that holds one; 0: none. */
static uint64_t
cgroup_limit(void)
{
	for (size_t i = 0; i < sizeof(limit_files) / sizeof(limit_files[0]); i++) {
		char buf[64];
		uint64_t v = 0;
		FILE *f = fopen(limit_files[i], "re");
		if (f == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		if (lm_memory_limit_parse(buf, &v) == LM_OK && v > 0)
			return v;
	}
	return 0;
}

uint64_t
lm_memory_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t phys = pages > 0 && page > 0 ? (uint64_t) pages * (uint64_t) page : 0;
	uint64_t cg = cgroup_limit();

	if (cg > 0 && (phys == 0 || cg < phys))
		return cg;
	return phys;
}
