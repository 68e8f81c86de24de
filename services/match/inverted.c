/*
 * inverted.c - partitioned inverted lists of documents by term; see
 * inverted.h. Each partition keeps an array of term lists indexed by term
 * (terms are dense symbols), grown to the largest term it has seen; a term
 * list is its LM_INVERTED_TIERS tiers, allocated at its first document and
 * freed by the trim after its last goes (lm_inverted_trim), so that the
 * lists of a partition take memory for the terms it holds, not for every
 * term it ever held. Each tier is a sorted array of (document, share)
 * entries with its block maxima beside it: adding a document with a larger
 * id than the tier holds (what loading does, doc ids being handed out in
 * increasing order) appends and updates one block maximum; adding or
 * removing in the middle moves the tier's later entries and recomputes
 * their blocks' maxima, O(tier). Arrays double when full and are halved by
 * a trim when less than a quarter full (ROOM_MIN).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inverted.h"
#include "lunamatch/alloc.h"
#include "lunamatch/error.h"

#define LAST  (LM_INVERTED_TIERS - 1)
#define BLOCK LM_INVERTED_BLOCK
/* The least room of a tier or plain list that holds anything. Growth
 * doubles a full array from ROOM_MIN; a trim halves one while less than a
 * quarter of it is used, not below ROOM_MIN, and frees an empty one. A
 * grown array is half full and a trimmed one at least a quarter full, so
 * that one entry added and removed in turn reallocates nothing unless it
 * is the only one. */
#define ROOM_MIN 4u

/* A tier: e[0 .. n) by increasing doc, room for cap; bm[b] the largest
 * key of block b, room for nblocks(cap); max at least every share and kmax
 * at least every key of its entries (the largest added since the tier was
 * last empty or rebuilt), kmin at most every lm_inverted_key_sum of them
 * (the least added since then). */
struct tier {
	lm_inverted_ent *e;
	float *bm;
	uint32_t n, cap;
	float max, kmax;
	double kmin;
};

/* A plain list of documents (every document of a partition, the bare
 * ones), unordered. */
struct dlist {
	uint32_t *v;
	uint32_t n, cap;
};

/* The smallest key of each tier: below tier_min[j + 1] is tier j. Keys
 * are shares (from 0 to 1) or prefix bounds (from 0 to 2). */
static const float share_min[LM_INVERTED_TIERS] = {
    0, 0.015f, 0.03f, 0.05f, 0.08f, 0.12f, 0.18f, 0.25f, 0.33f, 0.45f, 0.6f, 0.8f};
static const float prefix_min[LM_INVERTED_TIERS] = {
    0, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1, 1.25f, 1.5f};

struct part {
	struct tier **terms; /* nterms lists, indexed by term: NULL or tiers */
	uint32_t nterms;
	struct dlist all, bare;
	size_t nents; /* entries of its term lists */
};

struct lm_inverted {
	struct part *parts;
	uint32_t nparts;
	bool prefix; /* keys are prefix bounds, else shares */
	const float *tier_min;
	/* lm_inverted_release: the term lists before term rel_term of
	 * partition rel_part are freed. */
	uint32_t rel_part, rel_term;
};

int
lm_inverted_new(uint32_t nparts, bool prefix, lm_inverted **out)
{
	lm_inverted *iv;

	*out = NULL;
	if (nparts == 0 || nparts > LM_INVERTED_PARTS_MAX)
		return LM_EINVAL;
	if ((iv = calloc(1, sizeof(*iv))) == NULL ||
	    (iv->parts = calloc(nparts, sizeof(*iv->parts))) == NULL) {
		free(iv);
		return LM_ENOMEM;
	}
	iv->nparts = nparts;
	iv->prefix = prefix;
	iv->tier_min = prefix ? prefix_min : share_min;
	*out = iv;
	return LM_OK;
}

void
lm_inverted_free(lm_inverted *iv)
{
	if (iv == NULL)
		return;
	for (uint32_t p = 0; p < iv->nparts; p++) {
		struct part *pt = &iv->parts[p];
		/* Those lm_inverted_release freed are passed over. */
		uint32_t t = p < iv->rel_part    ? pt->nterms
		             : p == iv->rel_part ? iv->rel_term
		                                 : 0;
		for (; t < pt->nterms; t++) {
			if (pt->terms[t] == NULL)
				continue;
			for (uint32_t j = 0; j <= LAST; j++) {
				lm_big_free(pt->terms[t][j].e);
				lm_big_free(pt->terms[t][j].bm);
			}
			free(pt->terms[t]);
		}
		free(pt->terms);
		lm_big_free(pt->all.v);
		lm_big_free(pt->bare.v);
	}
	free(iv->parts);
	free(iv);
}

static void list_free(struct tier *tl);

/* A term list freed costs RELEASE_LIST, a place passed over 1. */
#define RELEASE_LIST 256

bool
lm_inverted_release(lm_inverted *iv, size_t work)
{
	for (; iv->rel_part < iv->nparts; iv->rel_part++, iv->rel_term = 0) {
		struct part *pt = &iv->parts[iv->rel_part];
		for (; iv->rel_term < pt->nterms; iv->rel_term++) {
			struct tier **tl = &pt->terms[iv->rel_term];
			size_t cost = *tl != NULL ? RELEASE_LIST : 1;
			if (cost > work)
				return false;
			work -= cost;
			if (*tl != NULL)
				list_free(*tl);
			*tl = NULL;
		}
	}
	return true;
}

static uint32_t
tier_of(const lm_inverted *iv, float key)
{
	uint32_t j = LAST;

	while (j > 0 && !(key >= iv->tier_min[j]))
		j--;
	return j;
}

static size_t
nblocks(size_t n)
{
	return (n + BLOCK - 1) / BLOCK;
}

/* Room for need entries in t; LM_OK or LM_ENOMEM (t unchanged but for
 * larger arrays). */
static int
tier_reserve(struct tier *t, uint32_t need)
{
	uint32_t cap;
	lm_inverted_ent *e;
	float *bm;

	if (need <= t->cap)
		return LM_OK;
	cap = t->cap ? t->cap : ROOM_MIN;
	while (cap < need) {
		if (cap > UINT32_MAX / 2)
			return LM_ENOMEM;
		cap *= 2;
	}
	if ((e = lm_big_realloc(t->e, cap * sizeof(*e))) == NULL)
		return LM_ENOMEM;
	t->e = e;
	if ((bm = lm_big_realloc(t->bm, nblocks(cap) * sizeof(*bm))) == NULL)
		return LM_ENOMEM; /* e is larger than needed: harmless */
	t->bm = bm;
	t->cap = cap;
	return LM_OK;
}

float
lm_float_up(double x)
{
	float f = (float) x;

	return (double) f < x ? nextafterf(f, INFINITY) : f;
}

float
lm_inverted_key(const lm_inverted_ent *e)
{
	return lm_float_up((double) e->share + e->after);
}

/* Sets the maximum of block b from its entries. */
static void
block_max(struct tier *t, size_t b)
{
	size_t i = b * BLOCK, end = i + BLOCK < t->n ? i + BLOCK : t->n;
	float mx = lm_inverted_key(&t->e[i]);

	for (i++; i < end; i++)
		if (lm_inverted_key(&t->e[i]) > mx)
			mx = lm_inverted_key(&t->e[i]);
	t->bm[b] = mx;
}

/*
 * Sets the maxima of the blocks from that of place pos on, after the
 * entries from pos on moved one place: back (shift -1, the entry at pos
 * removed) or on (shift +1, one inserted at pos; t->n counts it). The
 * block of pos is read whole. Every later block lost one entry at one end
 * and gained one at the other, so its maximum is the larger of its old
 * one and the gained entry's key, unless the lost entry's key was the old
 * maximum: only then is the block read whole. A removal or insertion in
 * the middle of a tier so costs two keys per later block, not 64.
 */
static void
fix_shifted(struct tier *t, size_t pos, int shift)
{
	size_t nb = nblocks(t->n), b = pos / BLOCK;

	if (b < nb)
		block_max(t, b);
	for (b++; b < nb; b++) {
		size_t first = b * BLOCK, last = first + BLOCK - 1;
		/* The entries that left the block and joined it, at their new
		 * places; none when past the end. */
		size_t lost = shift < 0 ? first - 1 : last + 1;
		size_t gained = shift < 0 ? last : first;
		bool had = shift < 0 || first < t->n - 1; /* the block was there */
		if (!had || (lost < t->n && lm_inverted_key(&t->e[lost]) >= t->bm[b])) {
			block_max(t, b);
			continue;
		}
		if (gained < t->n && lm_inverted_key(&t->e[gained]) > t->bm[b])
			t->bm[b] = lm_inverted_key(&t->e[gained]);
	}
}

/* The place of the first entry of t whose doc is at least doc. */
static uint32_t
tier_find(const struct tier *t, uint32_t doc)
{
	uint32_t lo = 0, hi = t->n;

	if (hi > 0 && t->e[hi - 1].doc < doc)
		return hi; /* the common case: an append */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->e[mid].doc < doc)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Inserts (doc, share, after) at its place; room must be there. */
static void
tier_insert(struct tier *t, uint32_t doc, float share, float after)
{
	uint32_t pos = tier_find(t, doc);
	float key;

	memmove(t->e + pos + 1, t->e + pos, (t->n - pos) * sizeof(*t->e));
	t->e[pos].doc = doc;
	t->e[pos].share = share;
	t->e[pos].after = after;
	key = lm_inverted_key(&t->e[pos]);
	if (t->n++ == 0) {
		t->max = share;
		t->kmax = key;
		t->kmin = lm_inverted_key_sum(&t->e[pos]);
	}
	if (lm_inverted_key_sum(&t->e[pos]) < t->kmin)
		t->kmin = lm_inverted_key_sum(&t->e[pos]);
	if (share > t->max)
		t->max = share;
	if (key > t->kmax)
		t->kmax = key;
	if (pos + 1 == t->n) /* an append, the usual case: only its block moves */
		t->bm[pos / BLOCK] = pos % BLOCK == 0 || key > t->bm[pos / BLOCK]
		                         ? key
		                         : t->bm[pos / BLOCK];
	else
		fix_shifted(t, pos, +1);
}

/* Removes doc from t when it is there; returns whether it was. */
static bool
tier_delete(struct tier *t, uint32_t doc)
{
	uint32_t pos = tier_find(t, doc);

	if (pos == t->n || t->e[pos].doc != doc)
		return false;
	t->n--;
	memmove(t->e + pos, t->e + pos + 1, (t->n - pos) * sizeof(*t->e));
	if (t->n == 0)
		t->max = t->kmax = 0, t->kmin = 0;
	fix_shifted(t, pos, -1);
	return true;
}

/* Adds (doc, share, after) to the tiers tl: to the tier of its key, or
 * when that cannot grow to any tier with room (its maxima then cover the
 * entry). */
static int
tiers_add(lm_inverted *iv, struct part *pt, struct tier *tl, uint32_t doc, float share,
    float after)
{
	lm_inverted_ent x = {doc, share, after};
	struct tier *t = &tl[tier_of(iv, lm_inverted_key(&x))];

	if (tier_reserve(t, t->n + 1) != LM_OK) {
		uint32_t j = 0;
		while (j <= LAST && tl[j].n == tl[j].cap)
			j++;
		if (j > LAST)
			return LM_ENOMEM;
		t = &tl[j];
	}
	tier_insert(t, doc, share, after);
	pt->nents++;
	return LM_OK;
}

static void
tiers_drop(struct part *pt, struct tier *tl, uint32_t doc)
{
	for (uint32_t j = 0; j <= LAST; j++)
		if (tier_delete(&tl[j], doc)) {
			pt->nents--;
			return;
		}
}

/* Room for one more document in l; LM_OK or LM_ENOMEM (l unchanged). */
static int
dlist_reserve(struct dlist *l)
{
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : ROOM_MIN;
		uint32_t *v;
		if (cap <= l->cap || (v = lm_big_realloc(l->v, cap * sizeof(*v))) == NULL)
			return LM_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	return LM_OK;
}

static int
dlist_push(struct dlist *l, uint32_t doc)
{
	if (dlist_reserve(l) != LM_OK)
		return LM_ENOMEM;
	l->v[l->n++] = doc;
	return LM_OK;
}

/* Removes doc (searched from the end, where recent documents are), the
 * last document taking its place. The room stays. */
static void
dlist_drop(struct dlist *l, uint32_t doc)
{
	uint32_t i = l->n;

	while (i-- > 0 && l->v[i] != doc)
		;
	if (i == UINT32_MAX)
		return;
	l->v[i] = l->v[--l->n];
}

/* The room a trim leaves to n entries in an array with room for cap (see
 * ROOM_MIN): 0 for none, else cap halved while n is below a quarter. */
static uint32_t
room_trimmed(uint32_t n, uint32_t cap)
{
	if (n == 0)
		return 0;
	while (cap > ROOM_MIN && n < cap / 4)
		cap /= 2;
	return cap;
}

/* Gives back the room of t that room_trimmed does not keep. A shrink the
 * allocator refuses keeps the room (bm may stay larger than its room
 * needs: harmless). */
static void
tier_trim(struct tier *t)
{
	uint32_t cap = room_trimmed(t->n, t->cap);
	lm_inverted_ent *e;
	float *bm;

	if (cap == t->cap)
		return;
	if (cap == 0) {
		lm_big_free(t->e);
		lm_big_free(t->bm);
		t->e = NULL;
		t->bm = NULL;
		t->cap = 0;
		return;
	}
	if ((e = lm_big_realloc(t->e, cap * sizeof(*e))) == NULL)
		return;
	t->e = e;
	t->cap = cap;
	if ((bm = lm_big_realloc(t->bm, nblocks(cap) * sizeof(*bm))) != NULL)
		t->bm = bm;
}

static void
dlist_trim(struct dlist *l)
{
	uint32_t cap = room_trimmed(l->n, l->cap);
	uint32_t *v;

	if (cap == l->cap)
		return;
	if (cap == 0) {
		lm_big_free(l->v);
		l->v = NULL;
		l->cap = 0;
	} else if ((v = lm_big_realloc(l->v, cap * sizeof(*v))) != NULL) {
		l->v = v;
		l->cap = cap;
	}
}

static bool
list_empty(const struct tier *tl)
{
	for (uint32_t j = 0; j <= LAST; j++)
		if (tl[j].n > 0)
			return false;
	return true;
}

static void
list_free(struct tier *tl)
{
	for (uint32_t j = 0; j <= LAST; j++) {
		lm_big_free(tl[j].e);
		lm_big_free(tl[j].bm);
	}
	free(tl);
}

void
lm_inverted_trim(lm_inverted *iv, uint32_t part, const uint32_t *terms, size_t n)
{
	struct part *pt = &iv->parts[part];

	for (size_t i = 0; i < n; i++) {
		struct tier *tl = terms[i] < pt->nterms ? pt->terms[terms[i]] : NULL;
		if (tl == NULL)
			continue; /* none, or freed at an earlier listing */
		if (list_empty(tl)) {
			list_free(tl);
			pt->terms[terms[i]] = NULL;
			continue;
		}
		for (uint32_t j = 0; j <= LAST; j++)
			tier_trim(&tl[j]);
	}
	dlist_trim(&pt->all);
	dlist_trim(&pt->bare);
}

/* The tiers of term in pt, grown into existence; NULL when out of memory. */
static struct tier *
term_list(struct part *pt, uint32_t term)
{
	if (term >= pt->nterms) {
		uint32_t n = pt->nterms ? pt->nterms : 64;
		struct tier **t;
		while (n <= term)
			n = n > UINT32_MAX / 2 ? UINT32_MAX : n * 2;
		if ((t = realloc(pt->terms, (size_t) n * sizeof(*t))) == NULL)
			return NULL;
		memset(t + pt->nterms, 0, (size_t) (n - pt->nterms) * sizeof(*t));
		pt->terms = t;
		pt->nterms = n;
	}
	if (pt->terms[term] == NULL)
		pt->terms[term] = calloc(LM_INVERTED_TIERS, sizeof(struct tier));
	return pt->terms[term];
}

static bool
seen_before(const uint32_t *terms, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (terms[k] == terms[i])
			return true;
	return false;
}

#define PREFIX_ON_STACK 256

/* The share of term k among n as lm_inverted_after counts it: its share at
 * its first listing when positive, 0 elsewhere. */
static float
eff_share(const uint32_t *terms, const float *shares, size_t k)
{
	return shares[k] > 0 && !seen_before(terms, k) ? shares[k] : 0;
}

/* The sum of every share, which bounds what follows any term, rounded up. */
static float
shares_total(const uint32_t *terms, const float *shares, size_t n)
{
	double total = 0;

	for (size_t k = 0; k < n; k++)
		total += eff_share(terms, shares, k);
	return lm_float_up(total);
}

/* Sorts v[0 .. n) by before(x, y) (a strict order), by insertion: a
 * document has a few dozen terms at most. */
#define INSERTION_SORT(v, n, before)                                                     \
	do {                                                                             \
		for (size_t i_ = 1; i_ < (n); i_++) {                                    \
			uint32_t x_ = (v)[i_];                                           \
			size_t j_ = i_;                                                  \
			for (; j_ > 0 && before(x_, (v)[j_ - 1]); j_--)                  \
				(v)[j_] = (v)[j_ - 1];                                   \
			(v)[j_] = x_;                                                    \
		}                                                                        \
	} while (0)

/*
 * Groups the listings of each term (by term, then by place: the first of a
 * group is the term's first listing), ranks the first listings whose share
 * is positive by share, largest first, ties by term, and sums the shares
 * from the last rank up: what follows a term is the sum below its rank.
 * O(n^2) compares at worst, few in practice, against the n^2 sums of the
 * definition.
 */
void
lm_inverted_after(const uint32_t *terms, const float *shares, size_t n, float *out)
{
	uint32_t by_term[PREFIX_ON_STACK], ranked[PREFIX_ON_STACK];
	size_t nranked = 0;
	double below = 0;

	if (n > PREFIX_ON_STACK) { /* the sum of all bounds every suffix */
		float total = shares_total(terms, shares, n);
		for (size_t i = 0; i < n; i++)
			out[i] = total;
		return;
	}
	for (size_t i = 0; i < n; i++)
		by_term[i] = (uint32_t) i;
#define TERM_BEFORE(x, y) (terms[x] < terms[y] || (terms[x] == terms[y] && (x) < (y)))
	INSERTION_SORT(by_term, n, TERM_BEFORE);
#undef TERM_BEFORE
	for (size_t g = 0; g < n; g++)
		if ((g == 0 || terms[by_term[g]] != terms[by_term[g - 1]]) &&
		    shares[by_term[g]] > 0)
			ranked[nranked++] = by_term[g];
#define RANKS_BEFORE(x, y)                                                               \
	(shares[x] > shares[y] || (shares[x] == shares[y] && terms[x] < terms[y]))
	INSERTION_SORT(ranked, nranked, RANKS_BEFORE);
#undef RANKS_BEFORE
	/* out[f] of each first listing f, from the last rank up; 0 for the
	 * others for now. */
	for (size_t i = 0; i < n; i++)
		out[i] = 0;
	for (size_t r = nranked; r-- > 0;) {
		out[ranked[r]] = lm_float_up(below);
		below += shares[ranked[r]];
	}
	/* The later listings of a term take its first listing's. */
	for (size_t g = 1; g < n; g++)
		if (terms[by_term[g]] == terms[by_term[g - 1]])
			out[by_term[g]] = out[by_term[g - 1]];
}

/* What follows term i for lm_inverted_add: after[i] with prefix bounds
 * and shares, else 0. */
static float
after_of(const lm_inverted *iv, const float *shares, const float *after, size_t i)
{
	return iv->prefix && shares != NULL && after != NULL ? after[i] : 0;
}

/* The tier of tl holding doc, and its place there in *pos; NULL when
 * none does. */
static struct tier *
tiers_find(struct tier *tl, uint32_t doc, uint32_t *pos)
{
	for (uint32_t j = 0; j <= LAST; j++) {
		uint32_t i = tier_find(&tl[j], doc);
		if (i < tl[j].n && tl[j].e[i].doc == doc) {
			*pos = i;
			return &tl[j];
		}
	}
	return NULL;
}

/* Gives doc's entry in tl the share and what follows it, where it is,
 * when the new key belongs to the tier it is in; returns whether it did.
 * The tier's maxima and least key take the new values in, and its
 * block's maximum is read again. */
static bool
tier_overwrite(lm_inverted *iv, struct tier *tl, uint32_t doc, float share, float after)
{
	lm_inverted_ent x = {doc, share, after};
	struct tier *t;
	uint32_t pos;
	float key = lm_inverted_key(&x);

	if ((t = tiers_find(tl, doc, &pos)) == NULL || t != &tl[tier_of(iv, key)])
		return false;
	t->e[pos] = x;
	block_max(t, pos / BLOCK);
	if (share > t->max)
		t->max = share;
	if (key > t->kmax)
		t->kmax = key;
	if (lm_inverted_key_sum(&x) < t->kmin)
		t->kmin = lm_inverted_key_sum(&x);
	return true;
}

/* The first place of term in terms[0 .. n), or n. */
static size_t
term_at(const uint32_t *terms, size_t n, uint32_t term)
{
	size_t k = 0;

	while (k < n && terms[k] != term)
		k++;
	return k;
}

void
lm_inverted_update(lm_inverted *iv, uint32_t part, uint32_t doc,
    const uint32_t *old_terms, size_t old_n, bool old_bare, const uint32_t *terms,
    const float *shares, const float *after, size_t n, bool bare)
{
	struct part *pt = &iv->parts[part];
	uint32_t pos;

	/* Each old term's entry is overwritten or leaves. */
	for (size_t i = 0; i < old_n; i++) {
		uint32_t t = old_terms[i];
		size_t k;
		if (t >= pt->nterms || pt->terms[t] == NULL || seen_before(old_terms, i))
			continue;
		k = term_at(terms, n, t);
		if (k < n &&
		    tier_overwrite(iv, pt->terms[t], doc, shares != NULL ? shares[k] : 0,
		        after_of(iv, shares, after, k)))
			continue;
		tiers_drop(pt, pt->terms[t], doc);
	}
	/* Every entry of doc still listed was overwritten with its new values:
	 * the new terms without one join their tiers. */
	for (size_t i = 0; i < n; i++) {
		struct tier *tl;
		if (seen_before(terms, i))
			continue;
		if ((tl = term_list(pt, terms[i])) == NULL) /* reserved: cannot fail */
			continue;
		if (tiers_find(tl, doc, &pos) != NULL)
			continue;
		(void) tiers_add(iv, pt, tl, doc, shares != NULL ? shares[i] : 0,
		    after_of(iv, shares, after, i));
	}
	if (old_bare && !bare)
		dlist_drop(&pt->bare, doc);
	else if (!old_bare && bare)
		(void) dlist_push(&pt->bare, doc);
}

void
lm_inverted_remove(lm_inverted *iv, uint32_t part, uint32_t doc, const uint32_t *terms,
    size_t n, bool bare)
{
	struct part *pt = &iv->parts[part];

	for (size_t i = 0; i < n; i++)
		if (terms[i] < pt->nterms && pt->terms[terms[i]] != NULL &&
		    !seen_before(terms, i))
			tiers_drop(pt, pt->terms[terms[i]], doc);
	dlist_drop(&pt->all, doc);
	if (bare)
		dlist_drop(&pt->bare, doc);
}

int
lm_inverted_reserve(lm_inverted *iv, uint32_t part, const uint32_t *terms,
    const float *shares, const float *after, size_t n, bool bare)
{
	struct part *pt = &iv->parts[part];

	for (size_t i = 0; i < n; i++) {
		lm_inverted_ent x = {
		    0, shares != NULL ? shares[i] : 0, after_of(iv, shares, after, i)};
		struct tier *tl, *t;
		if (seen_before(terms, i))
			continue;
		if ((tl = term_list(pt, terms[i])) == NULL)
			goto nomem;
		t = &tl[tier_of(iv, lm_inverted_key(&x))];
		if (tier_reserve(t, t->n + 1) != LM_OK)
			goto nomem;
	}
	if (dlist_reserve(&pt->all) != LM_OK ||
	    (bare && dlist_reserve(&pt->bare) != LM_OK))
		goto nomem;
	return LM_OK;
nomem:
	lm_inverted_trim(iv, part, terms, n); /* the lists made empty go */
	return LM_ENOMEM;
}

int
lm_inverted_add(lm_inverted *iv, uint32_t part, uint32_t doc, const uint32_t *terms,
    const float *shares, const float *after, size_t n, bool bare)
{
	struct part *pt = &iv->parts[part];
	size_t i;

	for (i = 0; i < n; i++) {
		struct tier *tl;
		float sh = shares != NULL ? shares[i] : 0;
		if (seen_before(terms, i))
			continue;
		if ((tl = term_list(pt, terms[i])) == NULL ||
		    tiers_add(iv, pt, tl, doc, sh, after_of(iv, shares, after, i)) !=
		        LM_OK)
			goto nomem;
	}
	if (dlist_push(&pt->all, doc) != LM_OK)
		goto nomem;
	if (bare && dlist_push(&pt->bare, doc) != LM_OK) {
		dlist_drop(&pt->all, doc);
		goto nomem;
	}
	return LM_OK;
nomem:
	while (i-- > 0)
		if (!seen_before(terms, i))
			tiers_drop(pt, pt->terms[terms[i]], doc);
	lm_inverted_trim(iv, part, terms, n); /* the lists made empty go */
	return LM_ENOMEM;
}

size_t
lm_inverted_entries(const lm_inverted *iv)
{
	size_t n = 0;

	for (uint32_t p = 0; p < iv->nparts; p++)
		n += iv->parts[p].nents;
	return n;
}

/* Sets every block maximum of t, its maximum share and its maximum key to
 * their largest. */
static void
tier_remax(struct tier *t)
{
	t->max = t->kmax = 0;
	for (size_t b = 0; b < nblocks(t->n); b++) {
		block_max(t, b);
		if (t->bm[b] > t->kmax)
			t->kmax = t->bm[b];
	}
	t->kmin = t->n > 0 ? lm_inverted_key_sum(&t->e[0]) : 0;
	for (size_t i = 0; i < t->n; i++) {
		if (t->e[i].share > t->max)
			t->max = t->e[i].share;
		if (lm_inverted_key_sum(&t->e[i]) < t->kmin)
			t->kmin = lm_inverted_key_sum(&t->e[i]);
	}
}

static int
cmp_ent(const void *a, const void *b)
{
	const lm_inverted_ent *x = a, *y = b;
	return x->doc < y->doc ? -1 : (x->doc > y->doc ? 1 : 0);
}

/* The entries of the list of term tl with their new values (fn) into tmp
 * (room for them all), in document order; count[j] is set to how many go
 * to tier j. Returns how many there are. */
static uint32_t
list_shares(const lm_inverted *iv, const struct tier *tl, uint32_t term,
    lm_inverted_share_fn fn, void *arg, lm_inverted_ent *tmp,
    uint32_t count[LM_INVERTED_TIERS])
{
	uint32_t total = 0;

	memset(count, 0, LM_INVERTED_TIERS * sizeof(*count));
	for (uint32_t j = 0; j <= LAST; j++)
		for (uint32_t i = 0; i < tl[j].n; i++) {
			lm_inverted_ent *r = &tmp[total++];
			r->doc = tl[j].e[i].doc;
			r->share = fn(arg, r->doc, term, &r->after);
			if (!iv->prefix)
				r->after = 0;
			count[tier_of(iv, lm_inverted_key(r))]++;
		}
	qsort(tmp, total, sizeof(*tmp), cmp_ent);
	return total;
}

/* Puts the total entries of tmp (in document order) into the tiers tl of
 * their keys, which have room for them, and sets the maxima. */
static void
list_fill(
    const lm_inverted *iv, struct tier *tl, const lm_inverted_ent *tmp, uint32_t total)
{
	for (uint32_t j = 0; j <= LAST; j++)
		tl[j].n = 0;
	for (uint32_t i = 0; i < total; i++) {
		uint32_t k = tier_of(iv, lm_inverted_key(&tmp[i]));
		tl[k].e[tl[k].n++] = tmp[i];
	}
	for (uint32_t j = 0; j <= LAST; j++)
		tier_remax(&tl[j]);
}

/* Reshares the list of term tl: with tmp (room for its entries), moves the
 * entries to the tiers of their new keys in document order; without tmp,
 * or when a tier cannot grow, keeps them in their tiers. */
static void
list_reshare(lm_inverted *iv, struct tier *tl, uint32_t term, lm_inverted_share_fn fn,
    void *arg, lm_inverted_ent *tmp)
{
	uint32_t count[LM_INVERTED_TIERS], total = 0, j = 0;

	if (tmp != NULL) {
		total = list_shares(iv, tl, term, fn, arg, tmp, count);
		for (j = 0; j <= LAST; j++)
			if (tier_reserve(&tl[j], count[j]) != LM_OK)
				break;
	}
	if (tmp == NULL || j <= LAST) {
		for (j = 0; j <= LAST; j++) {
			for (uint32_t i = 0; i < tl[j].n; i++) {
				lm_inverted_ent *r = &tl[j].e[i];
				r->share = fn(arg, r->doc, term, &r->after);
				if (!iv->prefix)
					r->after = 0;
			}
			tier_remax(&tl[j]);
		}
		return;
	}
	list_fill(iv, tl, tmp, total);
	for (j = 0; j <= LAST; j++)
		tier_trim(&tl[j]); /* the tiers entries left */
}

/* The number of entries of the longest term list of iv. */
static size_t
longest_list(const lm_inverted *iv)
{
	size_t most = 0;

	for (uint32_t p = 0; p < iv->nparts; p++) {
		struct part *pt = &iv->parts[p];
		for (uint32_t t = 0; t < pt->nterms; t++) {
			size_t n = 0;
			if (pt->terms[t] == NULL)
				continue;
			for (uint32_t j = 0; j <= LAST; j++)
				n += pt->terms[t][j].n;
			if (n > most)
				most = n;
		}
	}
	return most;
}

void
lm_inverted_reshare(lm_inverted *iv, lm_inverted_share_fn fn, void *arg)
{
	lm_inverted_ent *tmp = malloc((longest_list(iv) + 1) * sizeof(*tmp));

	/* NULL: tiers kept */
	for (uint32_t p = 0; p < iv->nparts; p++) {
		struct part *pt = &iv->parts[p];
		for (uint32_t t = 0; t < pt->nterms; t++)
			if (pt->terms[t] != NULL)
				list_reshare(iv, pt->terms[t], t, fn, arg, tmp);
	}
	free(tmp);
}

const lm_inverted_ent *
lm_inverted_tier(const lm_inverted *iv, uint32_t part, uint32_t term, uint32_t tier,
    size_t *n, const float **bmax, float *max, float *kmax)
{
	const struct part *pt = &iv->parts[part];
	const struct tier *t;

	*n = 0;
	*bmax = NULL;
	*max = *kmax = 0;
	if (term >= pt->nterms || tier > LAST || pt->terms[term] == NULL)
		return NULL;
	t = &pt->terms[term][tier];
	if ((*n = t->n) == 0)
		return NULL;
	*max = t->max;
	*kmax = t->kmax;
	*bmax = t->bm;
	return t->e;
}

bool
lm_inverted_list(const lm_inverted *iv, uint32_t part, uint32_t term,
    lm_inverted_view tiers[LM_INVERTED_TIERS])
{
	const struct part *pt = &iv->parts[part];
	const struct tier *tl;

	if (term >= pt->nterms || (tl = pt->terms[term]) == NULL)
		return false;
	for (uint32_t j = 0; j <= LAST; j++) {
		const struct tier *t = &tl[j];
		bool any = t->n > 0;
		tiers[j].e = any ? t->e : NULL;
		tiers[j].bmax = any ? t->bm : NULL;
		tiers[j].n = t->n;
		tiers[j].max = any ? t->max : 0;
		tiers[j].kmax = any ? t->kmax : 0;
		tiers[j].kmin = any ? t->kmin : 0;
	}
	return true;
}

double
lm_inverted_tier_kmin(const lm_inverted *iv, uint32_t part, uint32_t term, uint32_t tier)
{
	const struct part *pt = &iv->parts[part];

	if (term >= pt->nterms || tier > LAST || pt->terms[term] == NULL ||
	    pt->terms[term][tier].n == 0)
		return 0;
	return pt->terms[term][tier].kmin;
}

bool
lm_inverted_listed(const lm_inverted *iv, uint32_t part, uint32_t term)
{
	const struct part *pt = &iv->parts[part];

	return term < pt->nterms && pt->terms[term] != NULL;
}

const uint32_t *
lm_inverted_all(const lm_inverted *iv, uint32_t part, size_t *n)
{
	*n = iv->parts[part].all.n;
	return iv->parts[part].all.v;
}

const uint32_t *
lm_inverted_bare(const lm_inverted *iv, uint32_t part, size_t *n)
{
	*n = iv->parts[part].bare.n;
	return iv->parts[part].bare.v;
}

/* lm_inverted_check of tier t (term, tier j of partition p). */
static int
check_tier(
    const struct tier *t, uint32_t p, uint32_t term, uint32_t j, char *err, size_t errlen)
{
	for (size_t b = 0; b < nblocks(t->n); b++) {
		float mx = 0;
		for (size_t i = b * BLOCK; i < t->n && i < (b + 1) * BLOCK; i++) {
			const lm_inverted_ent *x = &t->e[i];
			float key = lm_inverted_key(x);
			if (i > 0 && t->e[i - 1].doc >= x->doc) {
				snprintf(err, errlen,
				    "partition %u, term %u, tier %u: doc %u after doc %u",
				    p, term, j, x->doc, t->e[i - 1].doc);
				return LM_EINVAL;
			}
			if (x->share > t->max || key > t->kmax ||
			    lm_inverted_key_sum(x) < t->kmin) {
				snprintf(err, errlen,
				    "partition %u, term %u, tier %u: doc %u (share %.9g, "
				    "key %.9g) outside the tier's bounds (%.9g, %.9g, "
				    "least %.9g)",
				    p, term, j, x->doc, (double) x->share, (double) key,
				    (double) t->max, (double) t->kmax, t->kmin);
				return LM_EINVAL;
			}
			if (key > mx)
				mx = key;
		}
		if (t->bm[b] != mx) {
			snprintf(err, errlen,
			    "partition %u, term %u, tier %u: block %zu's maximum "
			    "%.9g, its largest key %.9g",
			    p, term, j, b, (double) t->bm[b], (double) mx);
			return LM_EINVAL;
		}
	}
	return LM_OK;
}

int
lm_inverted_check(const lm_inverted *iv, char *err, size_t errlen)
{
	for (uint32_t p = 0; p < iv->nparts; p++) {
		const struct part *pt = &iv->parts[p];
		size_t n = 0;
		for (uint32_t term = 0; term < pt->nterms; term++) {
			const struct tier *tl = pt->terms[term];
			for (uint32_t j = 0; tl != NULL && j <= LAST; j++) {
				if (check_tier(&tl[j], p, term, j, err, errlen) != LM_OK)
					return LM_EINVAL;
				n += tl[j].n;
			}
		}
		if (n != pt->nents) {
			snprintf(err, errlen, "partition %u: %zu entries, %zu counted", p,
			    n, pt->nents);
			return LM_EINVAL;
		}
	}
	return LM_OK;
}

size_t
lm_inverted_bytes(const lm_inverted *iv)
{
	size_t b = sizeof(*iv) + iv->nparts * sizeof(*iv->parts);

	for (uint32_t p = 0; p < iv->nparts; p++) {
		const struct part *pt = &iv->parts[p];
		b += (size_t) pt->nterms * sizeof(*pt->terms);
		for (uint32_t t = 0; t < pt->nterms; t++) {
			if (pt->terms[t] == NULL)
				continue;
			b += LM_INVERTED_TIERS * sizeof(struct tier);
			for (uint32_t j = 0; j <= LAST; j++)
				b += (size_t) pt->terms[t][j].cap *
				         sizeof(lm_inverted_ent) +
				     nblocks(pt->terms[t][j].cap) * sizeof(float);
		}
		b += ((size_t) pt->all.cap + pt->bare.cap) * sizeof(uint32_t);
	}
	return b;
}
