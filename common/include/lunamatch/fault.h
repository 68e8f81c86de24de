/*
 * fault.h - failure points: how tests make a real code path fail.
 *
 * A failure point is a count of failures a test armed (through a module's
 * lm_*_fail_* call). The code asks lm_fault_take just before the step that
 * can fail and, on true, fails that step with the error the real failure
 * would give, so that the same recovery runs. Each true uses up one armed
 * failure; an unarmed point costs one atomic load.
 */
#ifndef LUNAMATCH_FAULT_H
#define LUNAMATCH_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether a failure is armed at *armed; uses it up when so. Any thread. */
static inline bool
lm_fault_take(atomic_uint *armed)
{
	unsigned n = atomic_load(armed);

	while (n > 0 && !atomic_compare_exchange_weak(armed, &n, n - 1))
		;
	return n > 0;
}

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_FAULT_H */
