/*
 * memlimit.h - the memory this process may use: the limit of its control
 * group when it runs under one (a container's memory limit, a Kubernetes
 * pod's limits.memory), else the machine's physical memory.
 *
 * Budgets that would otherwise be fixed numbers are derived from it (the
 * RPC port's receive budget, rpc_server.h), so that their defaults fit the
 * container they run in.
 */
#ifndef LUNAMATCH_MEMLIMIT_H
#define LUNAMATCH_MEMLIMIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes: the smaller of the control groups' limit and the physical
 * memory; 0 when neither can be read. The groups' limit is the smallest
 * of the process's group (/proc/self/cgroup) and its ancestors, in cgroup
 * v2 (memory.max) or else v1 (memory.limit_in_bytes), none when unset or
 * unlimited. Thread-safe; reads the files at every call. */
uint64_t lm_memory_limit(void);

/* lm_memory_limit with the process's groups listed in proc_cgroup and the
 * cgroup file system mounted at root (for tests). */
uint64_t lm_memory_limit_from(const char *proc_cgroup, const char *root);

/*
 * Parses the content of a cgroup memory limit file: LM_OK with *bytes;
 * LM_ENOENT for no limit ("max", or cgroup v1's "unlimited" value, any
 * number of 2^60 bytes or more); LM_EINVAL for anything else (text after
 * the number other than one newline, an empty file).
 */
int lm_memory_limit_parse(const char *text, uint64_t *bytes);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MEMLIMIT_H */
