/*
 * test_errconv.c - errno and nng codes map to the lm_err the rest of the code
 * base relies on (timeouts, closed objects, sizes, system errors).
 */
#include <errno.h>
#include <stdio.h>

#include <nng/nng.h>

#include "lmtest.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"

static void
test_errno(void **state)
{
	(void) state;
	assert_int_equal(lm_err_from_errno(0), LM_OK);
	assert_int_equal(lm_err_from_errno(ENOENT), LM_ENOENT);
	assert_int_equal(lm_err_from_errno(ENOMEM), LM_ENOMEM);
	assert_int_equal(lm_err_from_errno(ENAMETOOLONG), LM_E2BIG);
	assert_int_equal(lm_err_from_errno(ETIMEDOUT), LM_ETIMEDOUT);
	assert_int_equal(lm_err_from_errno(ENOSPC), LM_ENOSPC);
	assert_int_equal(lm_err_from_errno(EDQUOT), LM_ENOSPC);
	assert_int_equal(lm_err_from_errno(EADDRINUSE), LM_EBUSY);
	assert_int_equal(lm_err_from_errno(EACCES), LM_EACCES);
	assert_int_equal(lm_err_from_errno(EPERM), LM_EACCES);
	/* A data directory on a read-only mount (a volume not mounted under a
	 * read-only root) is not a disk fault. */
	assert_int_equal(lm_err_from_errno(EROFS), LM_EROFS);
	assert_string_equal(lm_strerror(LM_EROFS), "read-only file system");
	assert_int_equal(lm_err_from_errno(EIO), LM_EIO);
}

static void
test_nng(void **state)
{
	static const struct {
		int nng, lm;
	} cases[] = {
	    {0, LM_OK},
	    {NNG_ENOMEM, LM_ENOMEM},
	    {NNG_EINVAL, LM_EINVAL},
	    {NNG_EADDRINVAL, LM_EINVAL},
	    {NNG_ETIMEDOUT, LM_ETIMEDOUT},
	    {NNG_ECLOSED, LM_ECLOSED},
	    {NNG_ECANCELED, LM_ECLOSED},
	    {NNG_EMSGSIZE, LM_E2BIG},
	    {NNG_EADDRINUSE, LM_EBUSY},
	    {NNG_EAGAIN, LM_EBUSY},
	    {NNG_ENOTSUP, LM_ENOTSUP},
	    {NNG_ENOENT, LM_ENOENT},
	    {NNG_ENOSPC, LM_ENOSPC},
	    {NNG_EPERM, LM_EACCES},
	    {NNG_ECONNREFUSED, LM_ENNG},
	    {NNG_ECONNRESET, LM_ENNG},
	    {NNG_ECRYPTO, LM_ENNG},
	    {NNG_EPROTO, LM_ENNG},
	    {NNG_ESYSERR | ENOSPC, LM_ENOSPC},
	    {NNG_ESYSERR | ENOMEM, LM_ENOMEM},
	    {NNG_ESYSERR | EACCES, LM_EACCES},
	    {NNG_ETRANERR | 5, LM_ENNG},
	};
	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = lm_err_from_nng(cases[i].nng);
		if (got != cases[i].lm)
			fail_msg("nng %d (%s): %s, expected %s", cases[i].nng,
			    nng_strerror(cases[i].nng), lm_errname(got),
			    lm_errname(cases[i].lm));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errno),
	    cmocka_unit_test(test_nng),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
