/*
 * inverted.h - inverted lists of one side of the index (postings or
 * profiles): for each partition and each term, the documents that have the
 * term, plus per partition every document and the "bare" documents (those
 * that a query must visit whatever its terms).
 *
 * Documents are small integers the caller hands out (the index's doc ids);
 * terms are those of lm_prep_terms (score.h); partitions are numbered
 * 0 .. nparts-1 by the caller, from the hard-veto keys. A term list holds
 * each document once, with a number the caller attaches to the pair
 * (document, term), its share; lists are unordered but for their tiers by
 * share. Not thread-safe for writes:
 * the index changes lists under its write lock and reads them under its read lock.
 */
#ifndef LUNAMATCH_MATCH_INVERTED_H
#define LUNAMATCH_MATCH_INVERTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LM_INVERTED_PARTS_MAX 256 /* partitions of one lm_inverted */
#define LM_INVERTED_TIERS     8   /* tiers of a term list, by share */

typedef struct lm_inverted lm_inverted;

/* Returns LM_OK, LM_EINVAL (nparts 0 or above the maximum) or LM_ENOMEM. */
int lm_inverted_new(uint32_t nparts, lm_inverted **out);
void lm_inverted_free(lm_inverted *iv); /* NULL is a no-op */

/* Adds doc to partition part: to the list of each of its n terms
 * (duplicates in terms are added once, with the first one's share), to the
 * partition's list of every document and, when bare, to its bare list.
 * shares[i] (NULL: 0 for every term) is the share of the pair (doc,
 * terms[i]). Returns LM_OK or LM_ENOMEM (then no document was added). */
int lm_inverted_add(lm_inverted *iv, uint32_t part, uint32_t doc, const uint32_t *terms,
    const float *shares, size_t n, bool bare);

/* Undoes lm_inverted_add with the same arguments. The lists keep their
 * room: adding the same document with the same arguments again right after
 * cannot fail. */
void lm_inverted_remove(lm_inverted *iv, uint32_t part, uint32_t doc,
    const uint32_t *terms, size_t n, bool bare);

/* The documents of a list; *n is their number (0 and NULL when empty). */
const uint32_t *lm_inverted_term(
    const lm_inverted *iv, uint32_t part, uint32_t term, size_t *n);
/* Tier `tier` (below LM_INVERTED_TIERS) of a term list: its documents
 * (*n of them), their shares at the same places in *shares, and in *max an
 * upper bound of those shares, the largest added to the tier since it was
 * last empty or reshared (0 when it is empty). A document goes to the last
 * tier whose smallest share it reaches (0.015, 0.03, 0.05, 0.08, 0.15,
 * 0.25 and 0.4 begin tiers 1 to 7), so that a bound on a tier's shares is
 * tighter than one on the whole list's. */
const uint32_t *lm_inverted_tier(const lm_inverted *iv, uint32_t part, uint32_t term,
    uint32_t tier, size_t *n, const float **shares, float *max);

/* Sets the share of every pair (doc, term) of the term lists to fn(arg,
 * doc, term) and moves each document to the tier of its new share. Never
 * fails (nothing is allocated). */
typedef float (*lm_inverted_share_fn)(void *arg, uint32_t doc, uint32_t term);
void lm_inverted_reshare(lm_inverted *iv, lm_inverted_share_fn fn, void *arg);

const uint32_t *lm_inverted_all(const lm_inverted *iv, uint32_t part, size_t *n);
const uint32_t *lm_inverted_bare(const lm_inverted *iv, uint32_t part, size_t *n);

/* Bytes the lists hold (for memory accounting). */
size_t lm_inverted_bytes(const lm_inverted *iv);

#endif /* LUNAMATCH_MATCH_INVERTED_H */
