/*
 * fdlimit.c - raising the soft limit of open file descriptors; see
 * fdlimit.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "lunamatch/fdlimit.h"
#include "lunamatch/log.h"

void
lm_fdlimit_raise(const char *event)
{
	struct rlimit rl;
	rlim_t old, want;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		lm_warn(event, "file descriptor limit not read: %s", strerror(errno));
		return;
	}
	old = rl.rlim_cur;
	want = rl.rlim_max == RLIM_INFINITY ? (rlim_t) LM_FDLIMIT_UNLIMITED_MAX
	                                    : rl.rlim_max;
	if (old == RLIM_INFINITY || old >= want) {
		if (old == RLIM_INFINITY)
			lm_info(event, "file descriptor limit unlimited");
		else
			lm_info(event,
			    "file descriptor limit %llu, the hard limit: not raised",
			    (unsigned long long) old);
		return;
	}
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		lm_warn(event,
		    "file descriptor limit not raised from %llu to %llu: %s; the "
		    "connections stay capped by %llu",
		    (unsigned long long) old, (unsigned long long) want, strerror(errno),
		    (unsigned long long) old);
		return;
	}
	lm_info(event,
	    "file descriptor limit raised from %llu to %llu (the hard limit%s)",
	    (unsigned long long) old, (unsigned long long) want,
	    rl.rlim_max == RLIM_INFINITY ? " is unlimited" : "");
}
