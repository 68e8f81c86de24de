/*
 * inverted.h - inverted lists of one side of the index (postings or
 * profiles): for each partition and each term, the documents that have the
 * term, plus per partition every document and the "bare" documents (those
 * that a query must visit whatever its terms).
 *
 * Documents are small integers the caller hands out (the index's doc ids);
 * terms are those of lm_prep_terms (score.h); partitions are numbered
 * 0 .. nparts-1 by the caller, from the hard-veto keys. Lists are unordered
 * (but for their tiers) and hold each document once per term. Not thread-safe for writes:
 * the index changes lists under its write lock and reads them under its read lock.
 */
#ifndef LUNAMATCH_MATCH_INVERTED_H
#define LUNAMATCH_MATCH_INVERTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LM_INVERTED_PARTS_MAX 256 /* partitions of one lm_inverted */
#define LM_INVERTED_TIERS     4   /* tiers of a term list, by ratio */

typedef struct lm_inverted lm_inverted;

/* Returns LM_OK, LM_EINVAL (nparts 0 or above the maximum) or LM_ENOMEM. */
int lm_inverted_new(uint32_t nparts, lm_inverted **out);
void lm_inverted_free(lm_inverted *iv); /* NULL is a no-op */

/* Adds doc to partition part: to the list of each of its n terms
 * (duplicates in terms are added once, with the first one's ratio), to the
 * partition's list of every document and, when bare, to its bare list.
 * ratios[i] (NULL: 0 for every term) is a number the caller attaches to
 * the pair (doc, terms[i]); each list keeps the smallest of its documents'
 * (lm_inverted_term_ratio). Returns LM_OK or LM_ENOMEM (then no document
 * was added). */
int lm_inverted_add(lm_inverted *iv, uint32_t part, uint32_t doc, const uint32_t *terms,
    const float *ratios, size_t n, bool bare);

/* Undoes lm_inverted_add with the same arguments. The lists keep their
 * room: adding the same document with the same arguments again right after
 * cannot fail. */
void lm_inverted_remove(lm_inverted *iv, uint32_t part, uint32_t doc,
    const uint32_t *terms, size_t n, bool bare);

/* The documents of a list; *n is their number (0 and NULL when empty). */
const uint32_t *lm_inverted_term(
    const lm_inverted *iv, uint32_t part, uint32_t term, size_t *n);
/* Tier `tier` (below LM_INVERTED_TIERS) of a term list: its documents
 * (*n of them) and in *ratio a lower bound of their ratios, the smallest
 * added to the tier since it was last empty (INFINITY when it is). A
 * document goes to the last tier whose smallest ratio it reaches (2, 5 and
 * 12 begin tiers 1 to 3), so that a bound on a tier's ratios is tighter
 * than one on the whole list's. */
const uint32_t *lm_inverted_tier(const lm_inverted *iv, uint32_t part, uint32_t term,
    uint32_t tier, size_t *n, float *ratio);

const uint32_t *lm_inverted_all(const lm_inverted *iv, uint32_t part, size_t *n);
const uint32_t *lm_inverted_bare(const lm_inverted *iv, uint32_t part, size_t *n);

/* Bytes the lists hold (for memory accounting). */
size_t lm_inverted_bytes(const lm_inverted *iv);

#endif /* LUNAMATCH_MATCH_INVERTED_H */
