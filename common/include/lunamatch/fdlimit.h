/*
 * fdlimit.h - the process's limit of open file descriptors.
 *
 * Each connection a service accepts holds a descriptor, and the connection
 * caps are derived from the soft limit (the RPC server's three quarters of
 * it, rpc_server.c). Container runtimes and service managers often start a
 * process with a soft limit of 1024 and a far higher hard limit, so both
 * services raise the soft limit to the hard one as they start. Neither
 * uses select(), whose FD_SETSIZE is why the default soft limit is low.
 */
#ifndef LUNAMATCH_FDLIMIT_H
#define LUNAMATCH_FDLIMIT_H

#ifdef __cplusplus
extern "C" {
#endif

/* The soft limit an unlimited hard limit is raised to: Linux refuses a
 * soft limit above fs.nr_open, 1048576 by default. */
#define LM_FDLIMIT_UNLIMITED_MAX 1048576u

/*
 * Raises the soft limit of open file descriptors (RLIMIT_NOFILE) to the
 * hard limit, or to LM_FDLIMIT_UNLIMITED_MAX when that is unlimited. Says
 * what it did at info, or why it could not at warn, as log event event
 * (for example "match.limits"); never fails, so that a start goes on with
 * the limit it has.
 */
void lm_fdlimit_raise(const char *event);

#ifdef __cplusplus
}
#endif

#endif
