/*
 * alloc.h - large arrays that grow without a copy.
 *
 * The index keeps arrays with an entry per doc id or per posting (its
 * tables' entries, slots and free ids, its expiry heap, the tiers of a
 * popular term's inverted list and each partition's list of its documents)
 * and doubles them under its write lock, which every query waits for.
 * realloc copies a block it cannot grow in place, touching every fresh
 * page: while the benchmark grew an index of 1M postings to 2.2M doc ids,
 * doubling the expiry heap held the write lock 24 ms, and doubling the
 * tables' arrays 26 and 54 ms (bench/README.md). glibc's malloc maps a
 * large block on its own and grows it with mremap, which moves page-table
 * entries and copies nothing, but only above a threshold it raises as
 * large blocks are freed (up to 32 MiB) and only when no free chunk of its
 * heap can hold the block.
 *
 * lm_big_realloc gives that behaviour without the conditions: a block of
 * LM_BIG_MAP_MIN bytes or more is a mapping of its own, always, and grows
 * or shrinks with mremap; a smaller one comes from malloc. Built with a
 * sanitizer, every block comes from malloc, so that the sanitizer checks
 * the arrays' bounds. Thread-safe, as malloc is.
 */
#ifndef LUNAMATCH_ALLOC_H
#define LUNAMATCH_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Blocks of this many bytes or more are mappings of their own. */
#define LM_BIG_MAP_MIN ((size_t) 1 << 20)

/* As realloc: a block of n bytes (16-byte aligned) holding the first
 * min(n, old size) bytes of p, which it replaces; p NULL allocates. NULL
 * when memory is short (p is then unchanged) or n is 0 (then p is freed).
 * p must come from lm_big_realloc. */
void *lm_big_realloc(void *p, size_t n);

/* Frees a block of lm_big_realloc; NULL is a no-op. */
void lm_big_free(void *p);

/* Whether blocks of LM_BIG_MAP_MIN bytes or more are mappings of their
 * own: true but in a sanitizer's build. */
bool lm_big_mapped(void);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_ALLOC_H */
