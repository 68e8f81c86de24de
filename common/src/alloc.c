/*
 * alloc.c - large arrays that grow without a copy; see alloc.h.
 *
 * Every block starts with a header of 16 bytes: the bytes asked for, and
 * the length of its mapping (0 for a block from malloc). The caller's
 * pointer follows the header, 16-byte aligned either way.
 */
#define _GNU_SOURCE /* mremap */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lunamatch/alloc.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_MAPS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NO_MAPS 1
#endif
#endif

struct hdr {
	size_t size; /* bytes asked for */
	size_t map;  /* bytes of the mapping; 0: from malloc */
};
_Static_assert(sizeof(struct hdr) == 16, "the caller's bytes stay 16-byte aligned");

bool
lm_big_mapped(void)
{
#ifdef NO_MAPS
	return false;
#else
	return true;
#endif
}

/* Whether a block of n bytes is mapped. */
static bool
mapped(size_t n)
{
	return lm_big_mapped() && n >= LM_BIG_MAP_MIN;
}

/* The mapping length for n bytes and the header, or 0 on overflow. */
static size_t
map_len(size_t n)
{
	size_t page = (size_t) sysconf(_SC_PAGESIZE);

	if (n > SIZE_MAX - sizeof(struct hdr) - page)
		return 0;
	return (n + sizeof(struct hdr) + page - 1) / page * page;
}

void *
lm_big_realloc(void *p, size_t n)
{
	struct hdr *h = p != NULL ? (struct hdr *) p - 1 : NULL, *nh;

	if (n == 0) {
		lm_big_free(p);
		return NULL;
	}
	if (!mapped(n)) {
		if (n > SIZE_MAX - sizeof(struct hdr))
			return NULL;
		if (h == NULL || h->map == 0) {
			if ((nh = realloc(h, sizeof(*nh) + n)) == NULL)
				return NULL;
		} else { /* a mapping shrunk below the size of one */
			if ((nh = malloc(sizeof(*nh) + n)) == NULL)
				return NULL;
			memcpy(nh + 1, h + 1, n);
			munmap(h, h->map);
		}
		nh->size = n;
		nh->map = 0;
		return nh + 1;
	}
	size_t len = map_len(n);
	if (len == 0)
		return NULL;
	if (h != NULL && h->map != 0) {
		nh = mremap(h, h->map, len, MREMAP_MAYMOVE);
		if (nh == MAP_FAILED)
			return NULL;
	} else {
		nh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
		if (nh == MAP_FAILED)
			return NULL;
		if (h != NULL) { /* from malloc: less than LM_BIG_MAP_MIN */
			memcpy(nh + 1, h + 1, h->size < n ? h->size : n);
			free(h);
		}
	}
	nh->size = n;
	nh->map = len;
	return nh + 1;
}

void
lm_big_free(void *p)
{
	struct hdr *h;

	if (p == NULL)
		return;
	h = (struct hdr *) p - 1;
	if (h->map != 0)
		munmap(h, h->map);
	else
		free(h);
}
