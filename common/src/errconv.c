/*
 * errconv.c - foreign error codes (errno, nng) to lm_err; see errconv.h.
 *
 * Each table below is the one place its library's codes are mapped, so that
 * the same failure reads the same everywhere (status codes, metrics, logs).
 */
#include <errno.h>

#include <nng/nng.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"

int
lm_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return LM_OK;
	case ENOMEM:
		return LM_ENOMEM;
	case EINVAL:
		return LM_EINVAL;
	case ENOENT:
		return LM_ENOENT;
	case EEXIST:
		return LM_EEXIST;
	case E2BIG:
	case EFBIG:
	case ENAMETOOLONG:
		return LM_E2BIG;
	case ETIMEDOUT:
		return LM_ETIMEDOUT;
	case EAGAIN:
	case EBUSY:
	case EADDRINUSE:
		return LM_EBUSY;
	case ENOTSUP:
		return LM_ENOTSUP;
	case ENOSPC:
	case EDQUOT:
		return LM_ENOSPC;
	case EACCES:
	case EPERM:
		return LM_EACCES;
	case EROFS:
		return LM_EROFS;
	default:
		return LM_EIO;
	}
}

int
lm_err_from_nng(int nngerr)
{
	if (nngerr == 0)
		return LM_OK;
	if ((nngerr & NNG_ESYSERR) != 0)
		return lm_err_from_errno(nngerr & ~NNG_ESYSERR);
	switch (nngerr) {
	case NNG_ENOMEM:
		return LM_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_EBADTYPE:
	case NNG_ENOARG:
	case NNG_EAMBIGUOUS:
		return LM_EINVAL;
	case NNG_ETIMEDOUT:
		return LM_ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return LM_ECLOSED;
	case NNG_EMSGSIZE:
		return LM_E2BIG;
	case NNG_EADDRINUSE:
	case NNG_EAGAIN:
	case NNG_EBUSY:
		return LM_EBUSY;
	case NNG_ENOTSUP:
		return LM_ENOTSUP;
	case NNG_ENOENT:
		return LM_ENOENT;
	case NNG_EEXIST:
		return LM_EEXIST;
	case NNG_ENOSPC:
		return LM_ENOSPC;
	case NNG_EPERM:
		return LM_EACCES;
	default:
		return LM_ENNG;
	}
}
