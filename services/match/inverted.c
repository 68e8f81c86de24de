/*
 * inverted.c - partitioned inverted lists of documents by term; see
 * inverted.h. Each partition keeps an array of lists indexed by term (terms
 * are dense symbols), grown to the largest term it has seen; a list holds
 * with each document its share for the term, in tiers by share.
 */
#include <stdlib.h>
#include <string.h>

#include "inverted.h"
#include "lunamatch/error.h"

/* A term list is cut into LM_INVERTED_TIERS tiers by the documents'
 * shares: tier j holds v[start(j) .. end[j]) (their shares in s at the same
 * places), start(0) = 0, start(j) = end[j - 1], end[LAST] = n; max[j] is at
 * least the share of each of its documents. The lists of every document
 * and of the bare ones use tier 0 only and no shares (s NULL). */
#define LAST (LM_INVERTED_TIERS - 1)

struct plist {
	uint32_t *v;
	float *s;
	uint32_t n, cap;
	uint32_t end[LM_INVERTED_TIERS];
	float max[LM_INVERTED_TIERS];
};

/* The smallest share of each tier: below tier_min[j + 1] is tier j. */
static const float tier_min[LM_INVERTED_TIERS] = {
    0, 0.015f, 0.03f, 0.05f, 0.08f, 0.15f, 0.25f, 0.4f};

struct part {
	struct plist *terms; /* nterms lists, indexed by term */
	uint32_t nterms;
	struct plist all, bare;
};

struct lm_inverted {
	struct part *parts;
	uint32_t nparts;
};

int
lm_inverted_new(uint32_t nparts, lm_inverted **out)
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
		for (uint32_t t = 0; t < pt->nterms; t++) {
			free(pt->terms[t].v);
			free(pt->terms[t].s);
		}
		free(pt->terms);
		free(pt->all.v);
		free(pt->bare.v);
	}
	free(iv->parts);
	free(iv);
}

static uint32_t
tier_start(const struct plist *l, uint32_t j)
{
	return j == 0 ? 0 : l->end[j - 1];
}

static uint32_t
tier_of(float share)
{
	uint32_t j = LAST;

	while (j > 0 && !(share >= tier_min[j]))
		j--;
	return j;
}

/* Adds doc with its share (ignored without shares) to tier j, moving the
 * first document of each later tier to its end to make room. */
static int
plist_push(struct plist *l, uint32_t doc, float share, uint32_t j, bool shares)
{
	uint32_t hole;

	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 4;
		uint32_t *v;
		float *sv;
		if (cap <= l->cap || (v = realloc(l->v, cap * sizeof(*v))) == NULL)
			return LM_ENOMEM;
		l->v = v;
		if (shares) {
			if ((sv = realloc(l->s, cap * sizeof(*sv))) == NULL)
				return LM_ENOMEM; /* v is larger than needed: harmless */
			l->s = sv;
		}
		l->cap = cap;
	}
	hole = l->n++;
	for (uint32_t t = LAST; t > j; t--) {
		uint32_t first = tier_start(l, t);
		l->v[hole] = l->v[first];
		if (l->s != NULL)
			l->s[hole] = l->s[first];
		hole = first;
		l->end[t]++;
	}
	l->v[hole] = doc;
	if (l->s != NULL)
		l->s[hole] = share;
	/* An empty tier holds no share to keep; a removal keeps the largest
	 * share, which still bounds what is left. */
	if (l->end[j] == tier_start(l, j) || share > l->max[j])
		l->max[j] = share;
	l->end[j]++;
	return LM_OK;
}

/* Removes doc (searched from the end, where recent documents are), moving
 * the last document of each later tier into the gap. The room stays, so
 * that adding back what was removed never fails. */
static void
plist_drop(struct plist *l, uint32_t doc)
{
	uint32_t i = l->n, j = 0;

	while (i-- > 0 && l->v[i] != doc)
		;
	if (i == UINT32_MAX)
		return;
	while (l->end[j] <= i)
		j++;
	for (; j <= LAST; j++) {
		l->v[i] = l->v[l->end[j] - 1];
		if (l->s != NULL)
			l->s[i] = l->s[l->end[j] - 1];
		i = --l->end[j];
	}
	l->n--;
}

/* The list of term in pt, grown into existence; NULL when out of memory. */
static struct plist *
term_list(struct part *pt, uint32_t term)
{
	if (term >= pt->nterms) {
		uint32_t n = pt->nterms ? pt->nterms : 64;
		struct plist *t;
		while (n <= term)
			n = n > UINT32_MAX / 2 ? UINT32_MAX : n * 2;
		if ((t = realloc(pt->terms, (size_t) n * sizeof(*t))) == NULL)
			return NULL;
		memset(t + pt->nterms, 0, (size_t) (n - pt->nterms) * sizeof(*t));
		pt->terms = t;
		pt->nterms = n;
	}
	return &pt->terms[term];
}

static bool
seen_before(const uint32_t *terms, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (terms[k] == terms[i])
			return true;
	return false;
}

void
lm_inverted_remove(lm_inverted *iv, uint32_t part, uint32_t doc, const uint32_t *terms,
    size_t n, bool bare)
{
	struct part *pt = &iv->parts[part];

	for (size_t i = 0; i < n; i++)
		if (terms[i] < pt->nterms && !seen_before(terms, i))
			plist_drop(&pt->terms[terms[i]], doc);
	plist_drop(&pt->all, doc);
	if (bare)
		plist_drop(&pt->bare, doc);
}

int
lm_inverted_add(lm_inverted *iv, uint32_t part, uint32_t doc, const uint32_t *terms,
    const float *shares, size_t n, bool bare)
{
	struct part *pt = &iv->parts[part];
	size_t i;

	for (i = 0; i < n; i++) {
		struct plist *l;
		float sh = shares != NULL ? shares[i] : 0;
		if (seen_before(terms, i))
			continue;
		if ((l = term_list(pt, terms[i])) == NULL ||
		    plist_push(l, doc, sh, tier_of(sh), true) != LM_OK)
			goto nomem;
	}
	if (plist_push(&pt->all, doc, 0, 0, false) != LM_OK)
		goto nomem;
	if (bare && plist_push(&pt->bare, doc, 0, 0, false) != LM_OK) {
		plist_drop(&pt->all, doc);
		goto nomem;
	}
	return LM_OK;
nomem:
	while (i-- > 0)
		if (!seen_before(terms, i))
			plist_drop(&pt->terms[terms[i]], doc);
	return LM_ENOMEM;
}

/* Puts every document of l into the tier of its share (shares already
 * changed in place), one two-way partition per tier, and sets the tiers'
 * maxima. */
static void
plist_retier(struct plist *l)
{
	uint32_t lo = 0;

	for (uint32_t j = 0; j <= LAST; j++) {
		uint32_t i = lo, k = l->n;
		float mx = 0;
		while (i < k) {
			if (tier_of(l->s[i]) == j) {
				if (l->s[i] > mx)
					mx = l->s[i];
				i++;
			} else {
				uint32_t d = l->v[i];
				float sh = l->s[i];
				k--;
				l->v[i] = l->v[k];
				l->s[i] = l->s[k];
				l->v[k] = d;
				l->s[k] = sh;
			}
		}
		l->end[j] = i;
		l->max[j] = mx;
		lo = i;
	}
}

void
lm_inverted_reshare(lm_inverted *iv, lm_inverted_share_fn fn, void *arg)
{
	for (uint32_t p = 0; p < iv->nparts; p++) {
		struct part *pt = &iv->parts[p];
		for (uint32_t t = 0; t < pt->nterms; t++) {
			struct plist *l = &pt->terms[t];
			if (l->n == 0)
				continue;
			for (uint32_t i = 0; i < l->n; i++)
				l->s[i] = fn(arg, l->v[i], t);
			plist_retier(l);
		}
	}
}

const uint32_t *
lm_inverted_term(const lm_inverted *iv, uint32_t part, uint32_t term, size_t *n)
{
	const struct part *pt = &iv->parts[part];

	if (term >= pt->nterms) {
		*n = 0;
		return NULL;
	}
	*n = pt->terms[term].n;
	return pt->terms[term].v;
}

const uint32_t *
lm_inverted_tier(const lm_inverted *iv, uint32_t part, uint32_t term, uint32_t tier,
    size_t *n, const float **shares, float *max)
{
	const struct part *pt = &iv->parts[part];
	const struct plist *l;
	uint32_t start;

	*n = 0;
	*shares = NULL;
	*max = 0;
	if (term >= pt->nterms || tier > LAST)
		return NULL;
	l = &pt->terms[term];
	start = tier_start(l, tier);
	if ((*n = l->end[tier] - start) == 0)
		return NULL;
	*max = l->max[tier];
	*shares = l->s + start;
	return l->v + start;
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

size_t
lm_inverted_bytes(const lm_inverted *iv)
{
	size_t b = sizeof(*iv) + iv->nparts * sizeof(*iv->parts);

	for (uint32_t p = 0; p < iv->nparts; p++) {
		const struct part *pt = &iv->parts[p];
		b += (size_t) pt->nterms * sizeof(*pt->terms);
		for (uint32_t t = 0; t < pt->nterms; t++)
			b += (size_t) pt->terms[t].cap *
			     (sizeof(uint32_t) + sizeof(float));
		b += ((size_t) pt->all.cap + pt->bare.cap) * sizeof(uint32_t);
	}
	return b;
}
