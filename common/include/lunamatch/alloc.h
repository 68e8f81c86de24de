/*
 * alloc.h - the process's allocator policy: large arrays live in mappings
 * of their own, so that growing one moves pages instead of copying bytes.
 *
 * The index grows its arrays (the expiry heap, the tiers of a popular
 * term, the slot table of a load) by doubling them with realloc under its
 * write lock. glibc's malloc maps a request of 128 KiB or more on its own
 * and grows such a block with mremap, which moves page-table entries and
 * copies nothing; but after the first mapped block is freed it raises that
 * threshold to the freed block's size, up to 32 MiB, and from then on
 * serves blocks below it from the heap, where a realloc that cannot grow
 * in place allocates, copies every byte and touches every fresh page. At
 * 1M postings a doubling of the expiry heap so copied held the write lock
 * 24 ms (bench/README.md). lm_alloc_setup fixes the threshold at
 * LM_ALLOC_MAP_MIN, which also ends the dynamic raising.
 */
#ifndef LUNAMATCH_ALLOC_H
#define LUNAMATCH_ALLOC_H

#ifdef __cplusplus
extern "C" {
#endif

/* Blocks of this many bytes or more get a mapping of their own. Smaller
 * ones come from the heap: a per-request buffer of a few KiB never pays a
 * system call, and fewer than a few thousand blocks of the index reach it
 * (glibc allows 65,536 mappings by default). */
#define LM_ALLOC_MAP_MIN ((size_t) 1 << 20)

/* Applies the policy to the process. Call it once, at the start of main,
 * before threads start. Returns LM_OK, or LM_ENOTSUP where the allocator
 * takes no such setting (another libc; a sanitizer's allocator, which maps
 * large blocks on its own): the process then runs as before. */
int lm_alloc_setup(void);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_ALLOC_H */
