/*
 * fairness.h - the adverse-impact and ranking-exposure measures of
 * `lunamatch audit` (docs/model-card.md explains their use).
 *
 * - Selection rate of a category = selected / considered, summed over the
 *   postings audited. Impact ratio = the category's rate / the highest rate
 *   among the categories that are not excluded; undefined (NaN) when that
 *   rate is 0, nobody of those categories being selected: there is nothing
 *   to compare, which is not an impact ratio of 0. A category is excluded when
 *   it is the unknown category or holds less than LM_FAIR_MIN_SHARE of all
 *   considered pairs (New York City Local Law 144 allows leaving out
 *   categories under 2 %); it is flagged when it is not excluded and its
 *   impact ratio is below LM_FAIR_FOUR_FIFTHS (the EEOC's four-fifths rule),
 *   decided from the counts exactly (exactly 4/5 passes; counts must be
 *   below 2^61).
 * - skew@k of a category = ln(p / q): p its share of the first k places
 *   (summed over postings), q its share of the candidates considered. 0 is
 *   parity, negative under-representation; -infinity when the category never
 *   reaches the first k places. Undefined (NaN) when nobody holds a place
 *   (k places of no ranking) or the category has no share of the pool:
 *   there is nothing to compare, which is not parity.
 * - NDKL of one ranking = (1 / Z) * sum over i = 1..n of
 *   KL(P_i || Q) / log2(i + 1), Z = sum over i = 1..n of 1 / log2(i + 1),
 *   where P_i is the distribution of categories among the first i places and
 *   Q their distribution among the candidates considered; KL(P || Q) =
 *   sum over categories of p * ln(p / q), terms with p = 0 being 0. 0 means
 *   every prefix mirrors the pool.
 *
 * Pure functions; thread-safe.
 */
#ifndef LUNAMATCH_CLI_FAIRNESS_H
#define LUNAMATCH_CLI_FAIRNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LM_FAIR_MIN_SHARE   0.02
#define LM_FAIR_FOUR_FIFTHS 0.8

/* One category: the caller fills name, unknown, considered and selected;
 * lm_fair_impact fills the rest. */
typedef struct lm_fair_group {
	const char *name;
	bool unknown;        /* the category of "not reported" */
	uint64_t considered; /* candidate/posting pairs of the category */
	uint64_t selected;   /* of them selected */
	uint64_t top;        /* of them within the first k places (for skew) */
	double rate;         /* selected / considered (0 when none considered) */
	double share;        /* considered / all considered */
	double impact;       /* rate / best rate; 0 for excluded categories,
	                        NaN when the best rate is 0 */
	bool excluded;
	bool flagged;
} lm_fair_group;

/* Fills rate, share, impact, excluded and flagged of g[0..n). Returns the
 * number of flagged categories: none when the impact ratios are undefined. */
size_t lm_fair_impact(lm_fair_group *g, size_t n);

/* skew@k of a category that holds top of the top_total first-k places and
 * considered of the considered_total pairs (see above); NaN when top_total,
 * considered or considered_total is 0. */
double lm_fair_skew(
    uint64_t top, uint64_t top_total, uint64_t considered, uint64_t considered_total);

/*
 * NDKL of a ranking whose place i holds a candidate of category
 * cat[i] (0 <= cat[i] < ncat), i = 0..n-1, against the pool distribution
 * q[0..ncat) (shares summing to 1). counts is scratch space of ncat
 * entries. Returns 0 for an empty ranking.
 */
double lm_fair_ndkl(
    const size_t *cat, size_t n, const double *q, size_t ncat, uint64_t *counts);

#endif /* LUNAMATCH_CLI_FAIRNESS_H */
