/*
 * errconv.h - the conversions of foreign error codes to lm_err.
 *
 * Internal (not installed): errors of errno and nng become lm_err values here
 * and nowhere else, once, where a library call returns them. LMDB errors go
 * through lm_lmdb_err (lmdb.h), librdkafka's through kafka.h.
 */
#ifndef LUNAMATCH_ERRCONV_H
#define LUNAMATCH_ERRCONV_H

#include "lunamatch/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Converts an errno value to the closest lm_err (0 gives LM_OK; an address
 * in use or a resource temporarily busy LM_EBUSY; a permission refused,
 * EACCES or EPERM, LM_EACCES; EROFS LM_EROFS; unknown values LM_EIO). */
int lm_err_from_errno(int errnum);

/* Converts an nng error to the closest lm_err (0 gives LM_OK): timeouts
 * LM_ETIMEDOUT, a closed object LM_ECLOSED, memory LM_ENOMEM, bad addresses
 * and arguments LM_EINVAL, a too large message LM_E2BIG, an address in use
 * or a full queue LM_EBUSY, a permission denied (nng's EPERM, which is also
 * what nng makes of EACCES) LM_EACCES, system errors through their errno,
 * anything
 * else (refused, reset, unreachable, TLS and protocol failures) LM_ENNG.
 * Where a failed call can only mean that the caller's own input was
 * rejected (parsing an address, loading a certificate), the caller reports
 * LM_EINVAL for anything but LM_ENOMEM: that is the meaning there. */
int lm_err_from_nng(int nngerr);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_ERRCONV_H */
