/*
 * error.c - the messages and names of lm_err values.
 */
#include "lunamatch/error.h"

static const struct {
	const char *name;
	const char *msg;
} errtab[LM_ERR_COUNT_] = {
    [LM_OK] = {"ok", "success"},
    [LM_ENOMEM] = {"enomem", "out of memory"},
    [LM_EINVAL] = {"einval", "invalid argument"},
    [LM_ENOENT] = {"enoent", "not found"},
    [LM_EEXIST] = {"eexist", "already exists"},
    [LM_ESTALE] = {"estale", "version not newer than stored"},
    [LM_E2BIG] = {"e2big", "exceeds a size limit"},
    [LM_EPARSE] = {"eparse", "malformed input"},
    [LM_ESCHEMA] = {"eschema", "input violates the schema"},
    [LM_EIO] = {"eio", "input/output error"},
    [LM_ESTORE] = {"estore", "record store failure"},
    [LM_EMAPFULL] = {"emapfull", "record store is full"},
    [LM_ETIMEDOUT] = {"etimedout", "deadline exceeded"},
    [LM_ECLOSED] = {"eclosed", "closed"},
    [LM_EKAFKA] = {"ekafka", "Kafka client failure"},
    [LM_ENNG] = {"enng", "messaging (nng) failure"},
    [LM_ENOTSUP] = {"enotsup", "not supported"},
    [LM_EBUSY] = {"ebusy", "resource busy"},
    [LM_EINTERNAL] = {"einternal", "internal error"},
    [LM_ENOSPC] = {"enospc", "no space left on device"},
    [LM_EGONE] = {"egone", "no longer kept (trimmed)"},
    [LM_EACCES] = {"eacces", "permission denied"},
    [LM_EROFS] = {"erofs", "read-only file system"},
};

const char *
lm_strerror(int err)
{
	if (err < 0 || err >= LM_ERR_COUNT_)
		return "unknown error";
	return errtab[err].msg;
}

const char *
lm_errname(int err)
{
	if (err < 0 || err >= LM_ERR_COUNT_)
		return "unknown";
	return errtab[err].name;
}
