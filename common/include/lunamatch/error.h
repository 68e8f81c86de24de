/*
 * error.h - the one error enum of lunamatch and its messages.
 *
 * Every fallible lm_ function returns an int that is LM_OK (0) or one of the
 * positive lm_err values below. Errors of libraries (errno, LMDB, nng,
 * librdkafka, jansson) are converted once, where they are returned to us, and
 * never leak out of a module as foreign codes.
 */
#ifndef LUNAMATCH_ERROR_H
#define LUNAMATCH_ERROR_H

#include "lunamatch/api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_err {
	LM_OK = 0,
	LM_ENOMEM,    /* out of memory */
	LM_EINVAL,    /* invalid argument or configuration */
	LM_ENOENT,    /* no such record, file or key */
	LM_EEXIST,    /* already exists */
	LM_ESTALE,    /* version not newer than the stored one (no-op) */
	LM_E2BIG,     /* input exceeds a hard limit */
	LM_EPARSE,    /* malformed input: bad JSON, protobuf or text */
	LM_ESCHEMA,   /* well-formed input that violates the schema */
	LM_EIO,       /* I/O error */
	LM_ESTORE,    /* record store (LMDB) failure */
	LM_EMAPFULL,  /* record store map is full and could not grow */
	LM_ETIMEDOUT, /* deadline passed */
	LM_ECLOSED,   /* object closed or shutting down */
	LM_EKAFKA,    /* Kafka client failure */
	LM_ENNG,      /* nng failure */
	LM_ENOTSUP,   /* operation not supported */
	LM_EBUSY,     /* resource busy; try again later */
	LM_EINTERNAL, /* invariant broken; a bug */
	LM_ENOSPC,    /* no space left on the device (disk or quota full) */
	LM_EGONE,     /* no longer kept: a change-log position that was trimmed */
	LM_EACCES,    /* permission denied (file modes, the Kafka cluster's ACLs) */
	LM_EROFS,     /* read-only file system */
	LM_ERR_COUNT_ /* number of codes; not an error */
} lm_err;

/* Returns a static, human-readable message for an lm_err value; unknown
 * values give "unknown error". Never returns NULL. */
LM_API const char *lm_strerror(int err);

/* Returns a static, stable, snake_case token for an lm_err (e.g. "enoent"),
 * for metrics labels and machine-readable output. */
LM_API const char *lm_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_ERROR_H */
