/*
 * test_inverted.c - the inverted lists (inverted.h) under random adds,
 * removals, re-adds, new versions (lm_inverted_update) and reshares: every tier stays
 * ordered by document, every block maximum is exactly the largest key of its block, every
 * tier maximum bounds its entries, tiers are ordered by key, and the lists hold exactly
 * the documents added and not removed, each entry with its share and what follows it.
 * Also the prefix bounds that let a query skip entries: for random documents, term sets
 * and bars, a document whose sum reaches the bar has an entry keyed at least the bar, and
 * its sum is at most the shares of those entries plus what follows the last of them. And
 * what follows each term, against its definition.
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

/* A new version of docs[k], in its partition, put with
 * lm_inverted_update: kind 0 keeps its terms and shares, 1 keeps its terms
 * and changes some shares a little (an entry may stay in its tier or
 * not), 2 replaces some terms, 3 is a new document altogether; its bare
 * flag flips now and then. */
static void
update(struct rng *r, lm_inverted *iv, struct doc *docs, uint32_t k, int kind)
{
	struct doc *d = &docs[k], old = *d;
	float after[MAXT];

	if (kind == 1)
		for (uint32_t i = 0; i < d->n; i++)
			if (rn(r, 2) == 0)
				d->shares[i] *= 0.9f + (float) rn(r, 21) / 100.0f;
	if (kind == 2)
		for (uint32_t i = 0; i < d->n; i++)
			if (rn(r, 3) == 0)
				d->terms[i] = rn(r, NTERMS);
	if (kind == 3) {
		random_doc(r, d);
		d->part = old.part;
	}
	if (rn(r, 8) == 0)
		d->bare = !d->bare;
	lm_inverted_after(d->terms, d->shares, d->n, after);
	assert_int_equal(
	    lm_inverted_reserve(iv, d->part, d->terms, d->shares, after, d->n, d->bare),
	    LM_OK);
	lm_inverted_update(iv, d->part, k, old.terms, old.n, old.bare, d->terms,
	    d->shares, after, d->n, d->bare);
}

/* Removes docs[k] and, when trim, gives back the room it leaves. */
static void
drop(lm_inverted *iv, struct doc *docs, uint32_t k, bool trim)
{
	struct doc *d = &docs[k];

	lm_inverted_remove(iv, d->part, k, d->terms, d->n, d->bare);
	if (trim)
		lm_inverted_trim(iv, d->part, d->terms, d->n);
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
	size_t fresh;

	assert_non_null(docs);
	assert_non_null(order);
	assert_int_equal(lm_inverted_new(NPARTS, prefix, &iv), LM_OK);
	fresh = lm_inverted_bytes(iv);
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
			drop(iv, docs, k, rn(&r, 2) == 0);
	check_lists(iv, docs, prefix);
	for (uint32_t k = 0; k < NDOCS; k++)
		if (!docs[k].in && rn(&r, 2) == 0) {
			random_doc(&r, &docs[k]);
			add(iv, docs, k);
		}
	check_lists(iv, docs, prefix);
	/* New versions in place of half of them, of every kind. */
	for (int kind = 0; kind < 4; kind++) {
		for (uint32_t k = 0; k < NDOCS; k++)
			if (docs[k].in && rn(&r, 2) == 0)
				update(&r, iv, docs, k, kind);
		check_lists(iv, docs, prefix);
	}
	/* A reshare to new shares moves entries between tiers. */
	for (uint32_t k = 0; k < NDOCS; k++)
		for (uint32_t i = 0; i < docs[k].n; i++)
			docs[k].shares[i] =
			    docs[k].shares[i] * (float) (1 + rn(&r, 3)) / 2.0f;
	lm_inverted_reshare(iv, reshare_fn, docs);
	check_lists(iv, docs, prefix);
	/* Removing everything leaves every list empty, and trimmed, every
	 * list gone: nothing is left but the partitions' tables of terms. */
	for (uint32_t k = 0; k < NDOCS; k++)
		if (docs[k].in)
			drop(iv, docs, k, true);
	check_lists(iv, docs, prefix);
	for (uint32_t p = 0; p < NPARTS; p++)
		for (uint32_t t = 0; t < NTERMS; t++)
			assert_false(lm_inverted_listed(iv, p, t));
	assert_true(
	    lm_inverted_bytes(iv) <= fresh + NPARTS * 2 * NTERMS * sizeof(void *));
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

#define CHURN_PARTS 16
#define CHURN_LIVE  200
#define CHURN_TERMS 5

/*
 * Churn with a fixed live set, as symbols come and go: each round every
 * document is removed and another added in the next partition, with
 * terms taken from a pool of free term ids, last freed first (as the
 * symbol tables hand them out), so the same terms come back in partitions
 * they have left. With each removal trimmed, a partition lists exactly
 * the terms of its documents, and the lists take at most twice the bytes
 * they took when the live set was first added.
 */
static void
test_churn_gives_room_back(void **state)
{
	struct rng r = {0xC4A2B5ULL};
	struct cdoc {
		uint32_t part, terms[CHURN_TERMS];
		float shares[CHURN_TERMS];
	} docs[CHURN_LIVE];
	uint32_t pool[CHURN_LIVE * CHURN_TERMS + CHURN_TERMS], npool = 0, next = 0;
	lm_inverted *iv = NULL;
	size_t first = 0;

	(void) state;
	assert_int_equal(lm_inverted_new(CHURN_PARTS, true, &iv), LM_OK);
	for (uint32_t round = 0; round < 60; round++) {
		for (uint32_t k = 0; k < CHURN_LIVE; k++) {
			struct cdoc *d = &docs[k];
			float after[CHURN_TERMS];
			if (round > 0) {
				lm_inverted_remove(
				    iv, d->part, k, d->terms, CHURN_TERMS, false);
				lm_inverted_trim(iv, d->part, d->terms, CHURN_TERMS);
				for (uint32_t i = 0; i < CHURN_TERMS; i++)
					pool[npool++] = d->terms[i];
			}
			d->part = (k + round) % CHURN_PARTS;
			for (uint32_t i = 0; i < CHURN_TERMS; i++) {
				d->terms[i] = npool > 0 ? pool[--npool] : next++;
				d->shares[i] = (float) (1 + rn(&r, 1000)) / 1500.0f;
			}
			lm_inverted_after(d->terms, d->shares, CHURN_TERMS, after);
			assert_int_equal(lm_inverted_add(iv, d->part, k, d->terms,
			                     d->shares, after, CHURN_TERMS, false),
			    LM_OK);
		}
		if (round == 0)
			first = lm_inverted_bytes(iv);
	}
	assert_int_equal(lm_inverted_entries(iv), CHURN_LIVE * CHURN_TERMS);
	assert_int_equal(next, CHURN_LIVE * CHURN_TERMS);
	for (uint32_t p = 0; p < CHURN_PARTS; p++)
		for (uint32_t t = 0; t < next; t++) {
			bool want = false;
			for (uint32_t k = 0; k < CHURN_LIVE; k++)
				for (uint32_t i = 0; i < CHURN_TERMS; i++)
					want |=
					    docs[k].part == p && docs[k].terms[i] == t;
			assert_int_equal(lm_inverted_listed(iv, p, t), want);
		}
	print_message(
	    "churn: %zu bytes first, %zu after\n", first, lm_inverted_bytes(iv));
	assert_true(lm_inverted_bytes(iv) <= 2 * first);
	lm_inverted_free(iv);
}

/*
 * A tier's room follows its entries down: removals (trimmed) that leave
 * less than a quarter of it used halve it, so a list that held many
 * entries and holds few takes little room. Adding and removing one
 * document in turn reallocates nothing, at any size: growth doubles a
 * full tier and a trim halves one only below a quarter.
 */
static void
test_tier_room_follows_entries(void **state)
{
	enum { MANY = 4096 };
	const uint32_t t = 3;
	const float sh = 0.5f, af = 0;
	lm_inverted *iv = NULL;
	size_t fresh, full, one;

	(void) state;
	assert_int_equal(lm_inverted_new(1, false, &iv), LM_OK);
	fresh = lm_inverted_bytes(iv);
	/* One entry: the list takes what one entry's room takes. */
	assert_int_equal(lm_inverted_add(iv, 0, 0, &t, &sh, &af, 1, false), LM_OK);
	one = lm_inverted_bytes(iv);
	for (uint32_t d = 1; d < MANY; d++) {
		size_t before, after;
		assert_int_equal(
		    lm_inverted_add(iv, 0, d, &t, &sh, &af, 1, false), LM_OK);
		before = lm_inverted_bytes(iv);
		for (int turn = 0; turn < 3; turn++) {
			lm_inverted_remove(iv, 0, d, &t, 1, false);
			lm_inverted_trim(iv, 0, &t, 1);
			after = lm_inverted_bytes(iv);
			assert_int_equal(
			    lm_inverted_add(iv, 0, d, &t, &sh, &af, 1, false), LM_OK);
			lm_inverted_trim(iv, 0, &t, 1);
			assert_int_equal(lm_inverted_bytes(iv), before);
			assert_int_equal(after, before);
		}
	}
	full = lm_inverted_bytes(iv);
	assert_true(full > fresh + MANY * sizeof(lm_inverted_ent));
	for (uint32_t d = MANY; d-- > 1;) {
		lm_inverted_remove(iv, 0, d, &t, 1, false);
		lm_inverted_trim(iv, 0, &t, 1);
		/* At most four times the room its entries and the list of
		 * every document need, above what one entry takes. */
		assert_true(lm_inverted_bytes(iv) <=
		            one + 4 * d * (sizeof(lm_inverted_ent) + sizeof(uint32_t)) +
		                4 * sizeof(float) * (d / LM_INVERTED_BLOCK + 1));
	}
	assert_int_equal(lm_inverted_bytes(iv), one);
	lm_inverted_remove(iv, 0, 0, &t, 1, false);
	lm_inverted_trim(iv, 0, &t, 1);
	assert_false(lm_inverted_listed(iv, 0, t));
	assert_true(lm_inverted_bytes(iv) < one);
	lm_inverted_free(iv);
}

/*
 * One long tier: documents added in random order (so most go in the
 * middle) and removed at random, with keys from 150 values, so that a
 * block's maximum is anywhere in it and sometimes held twice, and the
 * largest key rare (one in a hundred), so that most blocks hold no copy
 * of it. After every
 * change every block maximum is exactly the largest key of its block:
 * the blocks after the change, which gain an entry at one end and lose
 * one at the other, included.
 */
#define LONG_DOCS 2000
#define LONG_OPS  6000

static void
check_long_tier(const lm_inverted *iv, uint32_t tier, size_t want)
{
	const float *bm;
	float max, kmax;
	size_t n;
	char err[256];

	(void) lm_inverted_tier(iv, 0, 0, tier, &n, &bm, &max, &kmax);
	assert_int_equal(n, want);
	if (lm_inverted_check(iv, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
}

static void
test_long_tier_block_maxima(void **state)
{
	struct rng r = {0xB10C4A11ULL};
	static bool in[LONG_DOCS];
	static float share[LONG_DOCS];
	lm_inverted *iv = NULL;
	uint32_t term = 0, tier = LM_INVERTED_TIERS - 1; /* shares from 0.8 */
	size_t n = 0;

	(void) state;
	memset(in, 0, sizeof(in));
	assert_int_equal(lm_inverted_new(1, false, &iv), LM_OK);
	for (int op = 0; op < LONG_OPS; op++) {
		uint32_t d = rn(&r, LONG_DOCS);
		if (!in[d]) {
			share[d] = rn(&r, 100) == 0
			               ? 0.99f
			               : 0.8f + (float) rn(&r, 150) / 1000.0f;
			assert_int_equal(
			    lm_inverted_add(iv, 0, d, &term, &share[d], NULL, 1, false),
			    LM_OK);
			n++;
		} else if (rn(&r, 3) == 0) { /* fewer removals: the tier grows */
			lm_inverted_remove(iv, 0, d, &term, 1, false);
			n--;
		} else
			continue;
		in[d] = !in[d];
		check_long_tier(iv, tier, n);
	}
	assert_true(n > 10 * LM_INVERTED_BLOCK);
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
	    cmocka_unit_test(test_churn_gives_room_back),
	    cmocka_unit_test(test_tier_room_follows_entries),
	    cmocka_unit_test(test_long_tier_block_maxima),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
