/*
 * memlimit.c - the memory this process may use (memlimit.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lunamatch/error.h"
#include "lunamatch/memlimit.h"

/* cgroup v1 writes its "no limit" as the largest page-aligned int64. */
#define UNLIMITED_FROM (UINT64_C(1) << 60)

/* Where each cgroup version keeps a group's limit: the mount below the
 * cgroup root, then the file in the group's directory. */
static const struct {
	const char *mount, *file;
} versions[] = {
    {"", "memory.max"},                   /* v2 */
    {"/memory", "memory.limit_in_bytes"}, /* v1 */
};

#define PATH_MAX_LEN 512
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

/* The limit in file, when it holds one; 0: none. */
static uint64_t
read_limit(const char *file)
{
	char buf[64];
	uint64_t v = 0;
	size_t n;
	FILE *f = fopen(file, "re");

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return lm_memory_limit_parse(buf, &v) == LM_OK ? v : 0;
}

/* The group of this process in cgroup version i, from /proc/self/cgroup
 * ("0::<path>" for v2, "<id>:<controllers>:<path>" with "memory" among
 * the controllers for v1), into path; "/" when it cannot be read (inside
 * a cgroup namespace the process's group is the root). */
static void
own_group(const char *proc_cgroup, size_t i, char path[PATH_MAX_LEN])
{
	char line[PATH_MAX_LEN + 64];
	FILE *f = fopen(proc_cgroup, "re");

	snprintf(path, PATH_MAX_LEN, "/");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *ctl = strchr(line, ':'), *grp = ctl ? strchr(ctl + 1, ':') : NULL;
		if (grp == NULL)
			continue;
		*ctl = '\0';
		*grp++ = '\0';
		grp[strcspn(grp, "\n")] = '\0';
		bool v2 = strcmp(line, "0") == 0 && ctl[1] == '\0';
		bool v1_mem = false;
		char *save = NULL;
		for (char *c = strtok_r(ctl + 1, ",", &save); c != NULL && !v1_mem;
		     c = strtok_r(NULL, ",", &save))
			v1_mem = strcmp(c, "memory") == 0;
		if ((i == 0 && v2) || (i == 1 && v1_mem)) {
			snprintf(path, PATH_MAX_LEN, "%s", grp[0] == '/' ? grp : "/");
			break;
		}
	}
	fclose(f);
}

/* The smallest limit of this process's group and its ancestors, in the
 * first cgroup version that has one; 0: none. */
static uint64_t
cgroup_limit(const char *proc_cgroup, const char *root)
{
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		char group[PATH_MAX_LEN], file[PATH_MAX_LEN * 2];
		uint64_t least = 0;

		own_group(proc_cgroup, i, group);
		for (;;) {
			uint64_t v;
			snprintf(file, sizeof(file), "%s%s%s/%s", root, versions[i].mount,
			    strcmp(group, "/") == 0 ? "" : group, versions[i].file);
			if ((v = read_limit(file)) > 0 && (least == 0 || v < least))
				least = v;
			char *slash = strrchr(group, '/');
			if (slash == NULL || strcmp(group, "/") == 0)
				break;
			if (slash == group)
				slash[1] = '\0'; /* the root next */
			else
				*slash = '\0';
		}
		if (least > 0)
			return least;
	}
	return 0;
}

uint64_t
lm_memory_limit(void)
{
	return lm_memory_limit_from("/proc/self/cgroup", "/sys/fs/cgroup");
}

uint64_t
lm_memory_limit_from(const char *proc_cgroup, const char *root)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t phys = pages > 0 && page > 0 ? (uint64_t) pages * (uint64_t) page : 0;
	uint64_t cg = cgroup_limit(proc_cgroup, root);

	if (cg > 0 && (phys == 0 || cg < phys))
		return cg;
	return phys;
}
