/*
 * dirlock.h - one process of a kind per data directory.
 *
 * Two match processes on one data directory would both deliver the events
 * of its outbox and the decisions of its queue, each of them twice; two
 * ingest processes would write one store from two consumers. So each
 * service takes <dir>/<name>.lock with flock(2) right after opening the
 * store (which creates the directory, and writes nothing to a store that
 * exists) and before anything else there, and holds it for as long as it
 * runs. The kernel drops the lock
 * when the process ends, however it ends (SIGKILL included): a service that
 * died never leaves a stale lock behind. The file holds the holder's pid,
 * which the refusal names. Readers that share the directory by design (the
 * lunamatch CLI, a match process beside its ingest) take no lock or a lock
 * of another name.
 */
#ifndef LUNAMATCH_DIRLOCK_H
#define LUNAMATCH_DIRLOCK_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_dirlock lm_dirlock;

/*
 * Takes the lock <dir>/<name>.lock (name: a short file name, such as
 * "match"), creating the file; dir must exist. Returns LM_OK and *out,
 * held until lm_dirlock_release; LM_EBUSY when another process holds it
 * (err names its pid where the file says it); LM_EINVAL for a NULL or
 * unusable argument or a path too long; or the error of open(2) or flock(2)
 * converted (lm_err_from_errno). err (errlen bytes, may be NULL) gets the
 * reason on failure. Not for two threads of one process: flock locks are
 * per open file, and each call opens the file again.
 */
int lm_dirlock_take(
    const char *dir, const char *name, lm_dirlock **out, char *err, size_t errlen);

/* Lets go of the lock; NULL is a no-op. The file stays. */
void lm_dirlock_release(lm_dirlock *l);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_DIRLOCK_H */
