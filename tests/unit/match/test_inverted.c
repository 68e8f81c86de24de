/*
 * test_inverted.c - the inverted lists (inverted.h) under random adds,
 * removals, re-adds and reshares: every tier stays ordered by document,
 * every block maximum is exactly the largest key of its block, every tier
 * maximum bounds its entries, tiers are ordered by key, and the lists hold
 * exactly the documents added and not removed, each entry with its share
 * and what follows it. Also the prefix bounds that let a query skip
 * entries: for random documents, term sets and bars, a document whose sum
 * reaches the bar has an entry keyed at least the bar, and its sum is at
 * most the shares of those entries plus what follows the last of them.
 * And what follows each term, against its definition.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "inverted.h"
#include "lmtest.h"
#include "lunamatch/error.h"

#define NDOCS  3000
#define NTERMS 40
#define NPARTS 3
#define MAXT   12

struct rng {
	uint64_t s;
};

static uint32_t
rn(struct rng *r, uint32_t n)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return (uint32_t) (r->s % n);
}

/* A document of the model: its partition, terms (some listed twice, some
 * with share 0) and shares; in the lists or not. */
struct doc {
	uint32_t part, n;
	uint32_t terms[MAXT];
	float shares[MAXT];
	bool bare, in;
};

static void
random_doc(struct rng *r, struct doc *d)
{
	d->part = rn(r, NPARTS);
	d->n = 1 + rn(r, MAXT);
	for (uint32_t i = 0; i < d->n; i++) {
		d->terms[i] = i > 0 && rn(r, 8) == 0 ? d->terms[rn(r, i)] : rn(r, NTERMS);
		d->shares[i] = rn(r, 6) == 0 ? 0 : (float) rn(r, 1000) / 1500.0f;
	}
	d->bare = rn(r, 10) == 0;
}

/* Where term t of d is first listed, or d->n. */
static uint32_t
first_of(const struct doc *d, uint32_t t)
{
	uint32_t i = 0;

	while (i < d->n && d->terms[i] != t)
		i++;
	return i;
}

/* Checks every list of iv against the model docs. */
static void
check_lists(const lm_inverted *iv, const struct doc *docs, bool prefix)
{
	size_t want = 0, got = 0;

	for (uint32_t k = 0; k < NDOCS; k++)
		for (uint32_t i = 0; docs[k].in && i < docs[k].n; i++)
			want += first_of(&docs[k], docs[k].terms[i]) == i;
	for (uint32_t p = 0; p < NPARTS; p++) {
		size_t nall, nbare, wall = 0, wbare = 0;
		const uint32_t *all = lm_inverted_all(iv, p, &nall);
		const uint32_t *bare = lm_inverted_bare(iv, p, &nbare);
		for (uint32_t k = 0; k < NDOCS; k++) {
			wall += docs[k].in && docs[k].part == p;
			wbare += docs[k].in && docs[k].part == p && docs[k].bare;
		}
		assert_int_equal(nall, wall);
		assert_int_equal(nbare, wbare);
		for (size_t i = 0; i < nall; i++)
			assert_true(docs[all[i]].in && docs[all[i]].part == p);
		for (size_t i = 0; i < nbare; i++)
			assert_true(docs[bare[i]].bare);
		for (uint32_t t = 0; t < NTERMS; t++) {
			float prev_kmax = -1;
			lm_inverted_view tv[LM_INVERTED_TIERS];
			bool listed = lm_inverted_list(iv, p, t, tv);
			assert_true(listed == lm_inverted_listed(iv, p, t));
			for (uint32_t j = 0; j < LM_INVERTED_TIERS; j++) {
				const float *bm;
				float max, kmax, kmin = INFINITY, tmax = 0;
				size_t n;
				const lm_inverted_ent *e =
				    lm_inverted_tier(iv, p, t, j, &n, &bm, &max, &kmax);
				got += n;
				/* The view of every tier at once is each tier's. */
				if (listed) {
					assert_true(tv[j].e == e && tv[j].n == n);
					assert_true(tv[j].bmax == bm && tv[j].max == max);
					assert_true(tv[j].kmax == kmax);
					assert_true(tv[j].kmin ==
					            lm_inverted_tier_kmin(iv, p, t, j));
				} else
					assert_int_equal(n, 0);
				for (size_t i = 0; i < n; i++) {
					const struct doc *d = &docs[e[i].doc];
					uint32_t f = first_of(d, t);
					float key = lm_inverted_key(&e[i]);
					float after[MAXT];
					if (i > 0)
						assert_true(e[i - 1].doc < e[i].doc);
					assert_true(d->in && d->part == p && f < d->n);
					assert_true(e[i].share == d->shares[f]);
					lm_inverted_after(
					    d->terms, d->shares, d->n, after);
					assert_true(
					    e[i].after == (prefix ? after[f] : 0));
					assert_true(e[i].share <= max && key <= kmax);
					/* The least key bounds every key from below. */
					assert_true(lm_inverted_tier_kmin(iv, p, t, j) <=
					            lm_inverted_key_sum(&e[i]));
					assert_true(lm_inverted_key_sum(&e[i]) <= key);
					if (key > tmax)
						tmax = key;
					if (key < kmin)
						kmin = key;
					if (i % LM_INVERTED_BLOCK ==
					        LM_INVERTED_BLOCK - 1 ||
					    i == n - 1) {
						/* Block maxima are exact. */
						assert_true(
						    bm[i / LM_INVERTED_BLOCK] == tmax);
						tmax = 0;
					}
				}
				/* Tiers go by key: every key of a tier is above those of
				 * the tiers below. */
				if (n > 0) {
					assert_true(kmin >= prev_kmax || prev_kmax < 0);
					prev_kmax = kmax;
				}
			}
		}
	}
	assert_int_equal(got, want);
}

static void
add(lm_inverted *iv, struct doc *docs, uint32_t k)
{
	struct doc *d = &docs[k];
	float after[MAXT];

	lm_inverted_after(d->terms, d->shares, d->n, after);
	assert_int_equal(
	    lm_inverted_add(iv, d->part, k, d->terms, d->shares, after, d->n, d->bare),
	    LM_OK);
	d->in = true;
}

static void
drop(lm_inverted *iv, struct doc *docs, uint32_t k)
{
	struct doc *d = &docs[k];

	lm_inverted_remove(iv, d->part, k, d->terms, d->n, d->bare);
	d->in = false;
}

/* The share function of a reshare: the model's shares (changed before
 * the reshare), what follows recomputed. */
static float
reshare_fn(void *arg, uint32_t doc, uint32_t term, float *after)
{
	const struct doc *d = &((const struct doc *) arg)[doc];
	float a[MAXT];

	lm_inverted_after(d->terms, d->shares, d->n, a);
	*after = a[first_of(d, term)];
	return d->shares[first_of(d, term)];
}

static void
run_lists(bool prefix)
{
	struct rng r = {prefix ? 0x1234567ULL : 0x7654321ULL};
	struct doc *docs = calloc(NDOCS, sizeof(*docs));
	uint32_t *order = malloc(NDOCS * sizeof(*order));
	lm_inverted *iv = NULL;

	assert_non_null(docs);
	assert_non_null(order);
	assert_int_equal(lm_inverted_new(NPARTS, prefix, &iv), LM_OK);
	for (uint32_t k = 0; k < NDOCS; k++) {
		random_doc(&r, &docs[k]);
		order[k] = k;
	}
	/* Adds in random order: most land in the middle of their tiers. */
	for (uint32_t k = NDOCS; k > 1; k--) {
		uint32_t j = rn(&r, k), t = order[k - 1];
		order[k - 1] = order[j];
		order[j] = t;
	}
	for (uint32_t k = 0; k < NDOCS; k++)
		add(iv, docs, order[k]);
	check_lists(iv, docs, prefix);
	/* Removals, and re-adds of some with new terms and shares. */
	for (uint32_t k = 0; k < NDOCS; k++)
		if (rn(&r, 3) == 0)
			drop(iv, docs, k);
	check_lists(iv, docs, prefix);
	for (uint32_t k = 0; k < NDOCS; k++)
		if (!docs[k].in && rn(&r, 2) == 0) {
			random_doc(&r, &docs[k]);
			add(iv, docs, k);
		}
	check_lists(iv, docs, prefix);
	/* A reshare to new shares moves entries between tiers. */
	for (uint32_t k = 0; k < NDOCS; k++)
		for (uint32_t i = 0; i < docs[k].n; i++)
			docs[k].shares[i] =
			    docs[k].shares[i] * (float) (1 + rn(&r, 3)) / 2.0f;
	lm_inverted_reshare(iv, reshare_fn, docs);
	check_lists(iv, docs, prefix);
	/* Removing everything leaves every list empty. */
	for (uint32_t k = 0; k < NDOCS; k++)
		if (docs[k].in)
			drop(iv, docs, k);
	check_lists(iv, docs, prefix);
	assert_true(lm_inverted_bytes(iv) > 0);
	lm_inverted_free(iv);
	free(order);
	free(docs);
}

static void
test_lists_prefix(void **state)
{
	(void) state;
	run_lists(true);
}

static void
test_lists_shares(void **state)
{
	(void) state;
	run_lists(false);
}

/* The property the sweep of a query rests on (index.c), for random
 * documents, subject term sets and bars. */
static void
test_prefix_bounds(void **state)
{
	struct rng r = {0xABCDEF12345ULL};
	size_t reached = 0;

	(void) state;
	for (int round = 0; round < 20000; round++) {
		struct doc d;
		float after[MAXT];
		bool inq[NTERMS];
		double sum = 0, found = 0, least = INFINITY, best = 0, theta;
		bool any = false;

		random_doc(&r, &d);
		lm_inverted_after(d.terms, d.shares, d.n, after);
		for (uint32_t t = 0; t < NTERMS; t++)
			inq[t] = rn(&r, 3) == 0;
		theta = (double) rn(&r, 1200) / 1000.0;
		for (uint32_t i = 0; i < d.n; i++) {
			lm_inverted_ent e = {0, d.shares[i], after[i]};
			if (!inq[d.terms[i]] || first_of(&d, d.terms[i]) != i)
				continue;
			sum += d.shares[i];
			if (lm_inverted_key(&e) > best)
				best = lm_inverted_key(&e);
			if (lm_inverted_key(&e) >= theta) {
				any = true;
				found += d.shares[i];
				if (after[i] < least)
					least = after[i];
			}
		}
		/* The sum is at most the largest key among the subject's terms. */
		assert_true(sum <= best + 1e-6);
		if (sum > 0 && sum >= theta) {
			reached++;
			assert_true(any);
			assert_true(sum <= found + least + 1e-6);
		}
	}
	assert_true(reached > 1000);
}

/* lm_inverted_after against its definition (inverted.h), summed term by
 * term: random documents with repeated terms, zero shares and ties, and
 * the longest document it ranks. */
static void
check_after(const uint32_t *terms, const float *shares, size_t n)
{
	float got[300];

	lm_inverted_after(terms, shares, n, got);
	for (size_t i = 0; i < n; i++) {
		size_t f = 0;
		double want = 0;
		while (terms[f] != terms[i])
			f++;
		for (size_t k = 0; shares[f] > 0 && k < n; k++) {
			size_t fk = 0;
			while (terms[fk] != terms[k])
				fk++;
			if (fk == k && shares[k] > 0 &&
			    (shares[k] < shares[f] ||
			        (shares[k] == shares[f] && terms[k] > terms[f])))
				want += shares[k];
		}
		/* Rounded up, from sums in another order: within a float's step. */
		assert_true((double) got[i] >= want * (1 - 1e-12));
		assert_true((double) got[i] <= want * (1 + 2.4e-7));
	}
}

static void
test_after_definition(void **state)
{
	struct rng r = {0x5EED5EEDULL};
	uint32_t terms[256];
	float shares[256];

	(void) state;
	for (int round = 0; round < 20000; round++) {
		struct doc d;
		random_doc(&r, &d);
		check_after(d.terms, d.shares, d.n);
	}
	for (size_t i = 0; i < 256; i++) {
		terms[i] = rn(&r, 300);
		shares[i] = rn(&r, 5) == 0 ? 0 : (float) rn(&r, 50) / 700.0f;
	}
	check_after(terms, shares, 256);
}

static float
half_share(void *arg, uint32_t doc, uint32_t term, float *after)
{
	(void) arg, (void) doc, (void) term;
	*after = 0;
	return 0.5f;
}

/* A swap of lists built aside before a partition gained a list is refused
 * (the contract of lm_inverted_reshare_swap), also when the new term fits
 * the partition's table of terms as it was: the new list stays. */
static void
test_swap_refuses_gained_list(void **state)
{
	const uint32_t t1 = 1, t2 = 2;
	const float sh = 0.25f, af = 0;
	lm_inverted *iv = NULL, *aside = NULL;
	lm_inverted_view tv[LM_INVERTED_TIERS];
	uint32_t n = 0;

	(void) state;
	assert_int_equal(lm_inverted_new(1, true, &iv), LM_OK);
	assert_int_equal(lm_inverted_add(iv, 0, 7, &t1, &sh, &af, 1, false), LM_OK);
	assert_int_equal(lm_inverted_reshare_aside(iv, half_share, NULL, &aside), LM_OK);
	assert_int_equal(lm_inverted_add(iv, 0, 8, &t2, &sh, &af, 1, false), LM_OK);
	assert_int_equal(lm_inverted_reshare_swap(iv, aside), LM_EINVAL);
	assert_true(lm_inverted_list(iv, 0, t2, tv));
	for (uint32_t j = 0; j < LM_INVERTED_TIERS; j++)
		n += tv[j].n;
	assert_int_equal(n, 1);
	lm_inverted_free(aside);
	lm_inverted_free(iv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lists_prefix),
	    cmocka_unit_test(test_lists_shares),
	    cmocka_unit_test(test_prefix_bounds),
	    cmocka_unit_test(test_after_definition),
	    cmocka_unit_test(test_swap_refuses_gained_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
