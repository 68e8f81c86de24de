/*
 * inverted.c - partitioned inverted lists of documents by term; see
 * inverted.h. Each partition keeps an array of lists indexed by term (terms
 * are dense symbols), grown to the largest term it has seen, and with
 * each list the smallest ratio of its documents.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inverted.h"
#include "lunamatch/error.h"

/* A term list is cut into LM_INVERTED_TIERS tiers by the documents'
 * ratios: tier j holds v[start(j) .. end[j]), start(0) = 0, start(j) =
 * end[j - 1], end[LAST] = n; ratio[j] is at most the ratio of each of its
 * documents. The other lists use tier 0 only. */
#define LAST (LM_INVERTED_TIERS - 1)

struct plist {
	uint32_t *v;
	uint32_t n, cap;
	uint32_t end[LM_INVERTED_TIERS];
	float ratio[LM_INVERTED_TIERS];
};

/* The smallest ratio of each tier: below tier_min[j + 1] is tier j. */
static const float tier_min[LM_INVERTED_TIERS] = {0, 2, 5, 12};

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
		for (uint32_t t = 0; t < pt->nterms; t++)
			free(pt->terms[t].v);
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

/* Adds doc to tier j, moving the first document of each later tier to its
 * end to make room. */
static int
plist_push(struct plist *l, uint32_t doc, uint32_t j)
{
	uint32_t hole;

	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 4;
		uint32_t *v;
		if (cap <= l->cap || (v = realloc(l->v, cap * sizeof(*v))) == NULL)
			return LM_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	hole = l->n++;
	for (uint32_t t = LAST; t > j; t--) {
		uint32_t first = tier_start(l, t);
		l->v[hole] = l->v[first];
		hole = first;
		l->end[t]++;
	}
	l->v[hole] = doc;
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
    const float *ratios, size_t n, bool bare)
{
	struct part *pt = &iv->parts[part];
	size_t i;

	for (i = 0; i < n; i++) {
		struct plist *l;
		if (seen_before(terms, i))
			continue;
		float r = ratios != NULL ? ratios[i] : 0;
		uint32_t j = LAST;
		if ((l = term_list(pt, terms[i])) == NULL)
			goto nomem;
		while (j > 0 && !(r >= tier_min[j]))
			j--;
		/* An empty tier holds no ratio to keep; a removal keeps the
		 * smallest ratio, which still bounds what is left. */
		if (l->end[j] == tier_start(l, j) || r < l->ratio[j])
			l->ratio[j] = r;
		if (plist_push(l, doc, j) != LM_OK)
			goto nomem;
	}
	if (plist_push(&pt->all, doc, 0) != LM_OK)
		goto nomem;
	if (bare && plist_push(&pt->bare, doc, 0) != LM_OK) {
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
    size_t *n, float *ratio)
{
	const struct part *pt = &iv->parts[part];
	const struct plist *l;
	uint32_t start;

	*n = 0;
	*ratio = INFINITY;
	if (term >= pt->nterms || tier > LAST)
		return NULL;
	l = &pt->terms[term];
	start = tier_start(l, tier);
	if ((*n = l->end[tier] - start) == 0)
		return NULL;
	*ratio = l->ratio[tier];
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
			b += (size_t) pt->terms[t].cap * sizeof(uint32_t);
		b += ((size_t) pt->all.cap + pt->bare.cap) * sizeof(uint32_t);
	}
	return b;
}
