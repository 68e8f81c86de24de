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
 * (document, term), its share, and for lists made with prefix bounds
 * (postings) the sum of the shares that follow it (below; 0 otherwise).
 * An entry's key is its share plus that sum, its prefix bound. A term list
 * is cut into LM_INVERTED_TIERS tiers by key (impact layers); each tier is
 * ordered by document and cut into blocks of LM_INVERTED_BLOCK entries,
 * each with the largest key it holds (block maxima), so that a query can
 * read a tier one range of documents at a time and skip the blocks whose
 * keys are all below its bar without reading them. Not thread-safe for
 * writes: the index changes lists under its write lock and reads them
 * under its read lock. The partitions share nothing, so that changes to
 * different partitions (lm_inverted_add, _reserve, _remove, _trim) may run
 * at once on different threads.
 *
 * Prefix bounds: order a document's distinct terms by share, largest
 * first, ties by term; what follows an entry is the sum of the shares of
 * the document's terms after it in that order. For any set Q of terms, let
 * first be the first of the document's terms in Q: the sum of its shares
 * over Q is at most first's key, the largest key among its terms in Q. So
 * a query with a bar theta finds every document whose sum over its terms
 * reaches theta among the entries whose key reaches theta, and bounds the
 * sum of such a document by the shares of those entries plus what follows
 * the last of them (every entry of the document before that one has a
 * larger key, so it was among those read).
 */
#ifndef LUNAMATCH_MATCH_INVERTED_H
#define LUNAMATCH_MATCH_INVERTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LM_INVERTED_PARTS_MAX 256 /* partitions of one lm_inverted */
#define LM_INVERTED_TIERS     12  /* tiers of a term list, by key */
#define LM_INVERTED_BLOCK     64  /* entries of a block of a tier */

typedef struct lm_inverted lm_inverted;

/* One entry of a tier: a document, its share for the term and the sum of
 * the shares that follow it (0 without prefix bounds). */
typedef struct lm_inverted_ent {
	uint32_t doc;
	float share;
	float after;
} lm_inverted_ent;

/* The key of e: share + after, rounded up. */
float lm_inverted_key(const lm_inverted_ent *e);

/* The key of e as a query compares it: share + after added in double,
 * never above lm_inverted_key (both are rounded-up bounds already; the one
 * rounding of the sum is far below the slack of the comparisons). */
static inline double
lm_inverted_key_sum(const lm_inverted_ent *e)
{
	return (double) e->share + e->after;
}

/* New lists of nparts partitions, with prefix bounds (prefix) or without
 * (entries' keys are then their shares). Returns LM_OK, LM_EINVAL (nparts 0 or
 * above the maximum) or LM_ENOMEM. */
int lm_inverted_new(uint32_t nparts, bool prefix, lm_inverted **out);
void lm_inverted_free(lm_inverted *iv); /* NULL is a no-op */

/* Frees term lists of iv, which nothing reads or changes any more, for
 * about `work` units (a list freed costs 256, a term without one 1), so
 * that freeing large lists can be spread over many calls. Returns true
 * when every term list is freed: lm_inverted_free then takes
 * O(partitions). Nothing but more calls and lm_inverted_free may follow
 * the first. */
bool lm_inverted_release(lm_inverted *iv, size_t work);

/* Adds doc to partition part: to the list of each of its n terms
 * (duplicates in terms are added once, with the first one's share), to the
 * partition's list of every document and, when bare, to its bare list.
 * shares[i] (NULL: 0 for every term) is the share of the pair (doc,
 * terms[i]); with prefix bounds, after[i] is what follows it, as
 * lm_inverted_after computes it from terms and shares (NULL, or lists
 * without prefix bounds: 0). doc must not be in the partition already.
 * Returns LM_OK or LM_ENOMEM (then no document was added, and the lists
 * of its terms and the partition's are trimmed). Allocates only to grow
 * lists. */
int lm_inverted_add(lm_inverted *iv, uint32_t part, uint32_t doc, const uint32_t *terms,
    const float *shares, const float *after, size_t n, bool bare);

/* Makes room for lm_inverted_add of a document with these arguments: after
 * LM_OK, that add cannot fail as long as the lists change only by
 * lm_inverted_remove meanwhile: not by lm_inverted_trim, which may take the
 * room, nor by a reserve or add that fails, which trims. LM_ENOMEM leaves
 * every list as it was but for its room (the lists of these terms and the
 * partition's are trimmed). */
int lm_inverted_reserve(lm_inverted *iv, uint32_t part, const uint32_t *terms,
    const float *shares, const float *after, size_t n, bool bare);

/* Undoes lm_inverted_add with the same arguments. Never allocates; the
 * lists keep their room, and a list it empties stays (lm_inverted_trim
 * frees it). */
void lm_inverted_remove(lm_inverted *iv, uint32_t part, uint32_t doc,
    const uint32_t *terms, size_t n, bool bare);

/*
 * Replaces the listing of doc in partition part: the lm_inverted_remove of
 * its old terms (old_n of them, old_bare) and the lm_inverted_add of the
 * new ones (the other arguments, as lm_inverted_add takes them) in one
 * pass. The entry of a term in both lists whose new key falls in the tier
 * its old entry is in is overwritten in place: no entry of the tier moves,
 * and only its block's maximum is read again. Those of the other terms
 * leave and join their tiers as by a removal and an add. A new version of
 * a record with the same terms and shares (an edit of its salary or its
 * text) so costs a search per term instead of moving the tiers' tails.
 * lm_inverted_reserve with the new listing's arguments must have made the
 * room: then it cannot fail. Never allocates.
 */
void lm_inverted_update(lm_inverted *iv, uint32_t part, uint32_t doc,
    const uint32_t *old_terms, size_t old_n, bool old_bare, const uint32_t *terms,
    const float *shares, const float *after, size_t n, bool bare);

/* The entries of every term list of every partition. */
size_t lm_inverted_entries(const lm_inverted *iv);

/* Gives back the room that removals left in partition part, for the lists
 * of the n terms (those of the documents removed; terms without a list are
 * passed over): frees each list whose every tier is empty (lm_inverted_list
 * and _listed then find none), and frees the arrays of each empty tier of
 * the others; halves the room of their other tiers, and of the partition's
 * lists of every document and of the bare ones, while less than a quarter
 * of it is used (growth doubles a full one, so adding and removing one
 * entry in turn reallocates nothing unless it is the only one). Call it
 * when no lm_inverted_reserve is counted on, as it may take the room
 * reserved: after the add the reservation was for. Never fails (a shrink
 * the allocator refuses keeps the room). */
void lm_inverted_trim(lm_inverted *iv, uint32_t part, const uint32_t *terms, size_t n);

/* Tier `tier` (below LM_INVERTED_TIERS) of a term list: its *n entries in
 * increasing document order; in *bmax the block maxima, bmax[b] the largest
 * key of entries [b * LM_INVERTED_BLOCK, (b + 1) * LM_INVERTED_BLOCK)
 * (exactly: kept through every change); in *max an upper bound of every
 * share of the tier and in *kmax one of every key, at least the largest
 * block maximum (0 when empty). NULL and *n 0 when the tier is empty. An
 * entry goes to the last tier whose smallest key it reaches (shares: 0.015,
 * 0.03, 0.05, 0.08, 0.12, 0.18, 0.25, 0.33, 0.45, 0.6 and 0.8 begin tiers 1
 * to 11; prefix bounds: 0.2, 0.3, ... 0.9, 1, 1.25 and 1.5), so that bounds
 * on a tier are tighter than on the whole list; only when memory ran out
 * may it sit in another tier (whose maxima then cover it). */
const lm_inverted_ent *lm_inverted_tier(const lm_inverted *iv, uint32_t part,
    uint32_t term, uint32_t tier, size_t *n, const float **bmax, float *max, float *kmax);

/* Every tier of a term list at once, as lm_inverted_tier and
 * lm_inverted_tier_kmin give each (the entries NULL and n 0 when a tier is
 * empty): tiers[j] is tier j. Returns false, and leaves tiers as they
 * were, when partition part has no list of term. */
typedef struct lm_inverted_view {
	const lm_inverted_ent *e;
	const float *bmax;
	uint32_t n;
	float max, kmax;
	double kmin;
} lm_inverted_view;

bool lm_inverted_list(const lm_inverted *iv, uint32_t part, uint32_t term,
    lm_inverted_view tiers[LM_INVERTED_TIERS]);

/* A lower bound of the lm_inverted_key_sum of every entry of that tier
 * (0 when it is empty): exact after a reshare, and kept a bound through
 * every change (removals may leave it below the least). */
double lm_inverted_tier_kmin(
    const lm_inverted *iv, uint32_t part, uint32_t term, uint32_t tier);

/* Whether partition part has a list of term: false means every tier of it
 * is empty. A list is empty only from the removal of its last entry until
 * lm_inverted_trim frees it. */
bool lm_inverted_listed(const lm_inverted *iv, uint32_t part, uint32_t term);

/* Sets out[i] to what follows terms[i] among a document's n terms with
 * their shares (see prefix bounds above; a term listed twice counts once,
 * with its first share; 0 for a term whose share is not positive), rounded
 * up; above 256 terms, to the sum of every share (which bounds them all). */
void lm_inverted_after(const uint32_t *terms, const float *shares, size_t n, float *out);

/* Sets the share of every pair (doc, term) of the term lists to fn(arg,
 * doc, term, &after) and, with prefix bounds, what follows it to after;
 * moves each entry to the tier of its new key, sets the maxima again and
 * trims the tiers as lm_inverted_trim does. Never fails: when a tier
 * cannot grow, the list's entries keep their tiers (with their new values
 * and maxima). */
typedef float (*lm_inverted_share_fn)(
    void *arg, uint32_t doc, uint32_t term, float *after);
void lm_inverted_reshare(lm_inverted *iv, lm_inverted_share_fn fn, void *arg);

const uint32_t *lm_inverted_all(const lm_inverted *iv, uint32_t part, size_t *n);
const uint32_t *lm_inverted_bare(const lm_inverted *iv, uint32_t part, size_t *n);

/* For tests: LM_OK when every tier of every list is ordered by document
 * with each document once, each block maximum is exactly the largest key
 * of its block, the tier's maxima bound every share and key from above
 * and its least key every key sum from below, and each partition counts
 * the entries its tiers hold; else LM_EINVAL with the first fault in err.
 * O(entries). */
int lm_inverted_check(const lm_inverted *iv, char *err, size_t errlen);

/* Bytes the lists hold (for memory accounting). */
size_t lm_inverted_bytes(const lm_inverted *iv);

/* The least float at least x: shares, keys and their multipliers are
 * bounds, so they are never rounded down. */
float lm_float_up(double x);

#endif /* LUNAMATCH_MATCH_INVERTED_H */
