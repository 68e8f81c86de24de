/*
 * alloc.c - the allocator policy; see alloc.h.
 */
#include <stdlib.h> /* defines __GLIBC__ under glibc */
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "lunamatch/alloc.h"
#include "lunamatch/error.h"

int
lm_alloc_setup(void)
{
#ifdef __GLIBC__
	/* mallopt returns 1 on success; a sanitizer's interceptor returns 0. */
	if (mallopt(M_MMAP_THRESHOLD, (int) LM_ALLOC_MAP_MIN) == 1)
		return LM_OK;
#endif
	return LM_ENOTSUP;
}
