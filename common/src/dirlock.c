/*
 * dirlock.c - one process of a kind per data directory (dirlock.h): an
 * exclusive flock(2) on <dir>/<name>.lock, held while the process runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lunamatch/dirlock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"

/* Bytes of the pid text a lock file holds (a pid and a newline). */
#define PID_TEXT_MAX 32

struct lm_dirlock {
	int fd;
};

/* Writes the reason into err (when given) and returns rc. */
__attribute__((format(printf, 4, 5))) static int
fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* The pid the lock file fd names, or 0 when it names none. */
static long
holder(int fd)
{
	char buf[PID_TEXT_MAX + 1];
	ssize_t n = pread(fd, buf, PID_TEXT_MAX, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	return end != buf && pid > 0 ? pid : 0;
}

int
lm_dirlock_take(
    const char *dir, const char *name, lm_dirlock **out, char *err, size_t errlen)
{
	char path[PATH_MAX], pid[PID_TEXT_MAX];
	lm_dirlock *l;
	int fd, n;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (dir == NULL || name == NULL || *dir == '\0' || *name == '\0' ||
	    strchr(name, '/') != NULL)
		return fail(LM_EINVAL, err, errlen, "bad lock arguments");
	n = snprintf(path, sizeof(path), "%s/%s.lock", dir, name);
	if (n < 0 || (size_t) n >= sizeof(path))
		return fail(
		    LM_EINVAL, err, errlen, "%s/%s.lock: path too long", dir, name);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return fail(lm_err_from_errno(errno), err, errlen, "%s: %s", path,
		    strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		long who = e == EWOULDBLOCK ? holder(fd) : 0;
		close(fd);
		if (e != EWOULDBLOCK)
			return fail(lm_err_from_errno(e), err, errlen, "%s: %s", path,
			    strerror(e));
		snprintf(pid, sizeof(pid), "%ld", who);
		return fail(LM_EBUSY, err, errlen, "%s is held by process %s", path,
		    who > 0 ? pid : "(unknown)");
	}
	/* Ours now: the pid is for the message of the next one refused. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long) getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t) n, 0) != n) {
		int e = errno;
		close(fd);
		return fail(
		    lm_err_from_errno(e), err, errlen, "%s: %s", path, strerror(e));
	}
	if ((l = malloc(sizeof(*l))) == NULL) {
		close(fd);
		return fail(LM_ENOMEM, err, errlen, "%s: out of memory", path);
	}
	l->fd = fd;
	*out = l;
	return LM_OK;
}

void
lm_dirlock_release(lm_dirlock *l)
{
	if (l == NULL)
		return;
	close(l->fd); /* drops the flock */
	free(l);
}
