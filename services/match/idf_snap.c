/*
 * idf_snap.c - the idf snapshot that the shares in the postings' inverted
 * lists are computed at, and the drift that bounds how far a share can
 * have grown since; see score.h (lm_idf_snap).
 *
 * Each symbol of a skill of an added posting has its snapshot idf and the
 * number of added postings' skills with it; a symbol gets a new snapshot
 * idf when it goes from no posting to one (its symbol may have been freed
 * and reused meanwhile). The drift is computed over the symbols with
 * postings only.
 */
#include <stdlib.h>
#include <string.h>

#include "inverted.h"
#include "lunamatch/error.h"
#include "score_int.h"

struct lm_idf_snap {
	double *idf;    /* by symbol: the snapshot idf (while refs > 0) */
	uint32_t *refs; /* by symbol: skills of added postings with it */
	uint32_t cap;   /* slots of idf and refs */
};

int
lm_idf_snap_new(lm_idf_snap **out)
{
	*out = calloc(1, sizeof(**out));
	return *out != NULL ? LM_OK : LM_ENOMEM;
}

void
lm_idf_snap_free(lm_idf_snap *sn)
{
	if (sn == NULL)
		return;
	free(sn->idf);
	free(sn->refs);
	free(sn);
}

/* Room for nsym symbols; LM_OK or LM_ENOMEM (sn unchanged but for larger
 * arrays). */
static int
snap_reserve(lm_idf_snap *sn, uint32_t nsym)
{
	uint32_t cap;
	double *idf;
	uint32_t *refs;

	if (nsym <= sn->cap)
		return LM_OK;
	cap = sn->cap ? sn->cap : 256;
	while (cap < nsym)
		cap *= 2;
	if ((idf = realloc(sn->idf, cap * sizeof(*idf))) == NULL)
		return LM_ENOMEM;
	sn->idf = idf;
	if ((refs = realloc(sn->refs, cap * sizeof(*refs))) == NULL)
		return LM_ENOMEM; /* idf is larger than needed: harmless */
	memset(refs + sn->cap, 0, (cap - sn->cap) * sizeof(*refs));
	sn->refs = refs;
	sn->cap = cap;
	return LM_OK;
}

#define SHARES_ON_STACK 128

/* The shares of pp's skills at the snapshot: in buf (room for room
 * doubles), or a new allocation the caller frees when the posting has more
 * skills than fit; NULL when that fails. */
static double *
snap_shares(
    const lm_idf_snap *sn, const lm_posting_prep *pp, double ps, double *buf, size_t room)
{
	double *sh = buf, *idf;

	if (2 * pp->n_skills > room &&
	    (sh = malloc(2 * pp->n_skills * sizeof(*sh))) == NULL)
		return NULL;
	idf = sh + pp->n_skills;
	for (size_t i = 0; i < pp->n_skills; i++)
		idf[i] = sn->idf[pp->skills[i].sym];
	lm_posting_shares(pp, idf, ps, sh);
	return sh;
}

/* The share of term among pp's skills' shares sh (0 when it is none; 1,
 * which bounds every share, when sh is NULL). */
static float
term_share(const lm_posting_prep *pp, const double *sh, uint32_t term)
{
	if ((term & 1u) != LM_TERM_SKILL)
		return 0;
	for (size_t i = 0; i < pp->n_skills; i++)
		if (pp->skills[i].sym == term >> 1)
			return sh != NULL ? lm_float_up(sh[i]) : 1.0f;
	return 0;
}

size_t
lm_idf_snap_nshares(const lm_posting_prep *pp)
{
	return pp->n_skills;
}

void
lm_idf_snap_skill_shares(
    const lm_idf_snap *sn, const lm_posting_prep *pp, double preferred_share, float *out)
{
	double buf[SHARES_ON_STACK],
	    *sh = snap_shares(sn, pp, preferred_share, buf, SHARES_ON_STACK);

	for (size_t i = 0; i < pp->n_skills; i++)
		out[i] = sh != NULL ? lm_float_up(sh[i]) : 1.0f;
	if (sh != buf)
		free(sh);
}

uint32_t
lm_idf_snap_skill_term(const lm_posting_prep *pp, size_t i)
{
	return pp->skills[i].sym << 1 | LM_TERM_SKILL;
}

float
lm_idf_snap_term_share(const lm_posting_prep *pp, const float *sh, uint32_t term)
{
	if ((term & 1u) != LM_TERM_SKILL)
		return 0;
	for (size_t i = 0; i < pp->n_skills; i++)
		if (pp->skills[i].sym == term >> 1)
			return sh[i];
	return 0;
}

int
lm_idf_snap_hold(lm_idf_snap *sn, const lm_skill_stats *s, const lm_posting_prep *pp)
{
	/* Every allocation first: nothing changes on failure. */
	if (snap_reserve(sn, lm_sym_limit(s)) != LM_OK)
		return LM_ENOMEM;
	for (size_t i = 0; i < pp->n_skills; i++) {
		uint32_t sym = pp->skills[i].sym;
		if (sn->refs[sym]++ == 0)
			sn->idf[sym] = lm_sym_idf(s, sym);
	}
	return LM_OK;
}

void
lm_idf_snap_term_shares(const lm_idf_snap *sn, const lm_posting_prep *pp,
    double preferred_share, const uint32_t *terms, size_t n, float *out)
{
	double buf[SHARES_ON_STACK],
	    *sh = snap_shares(sn, pp, preferred_share, buf, SHARES_ON_STACK);

	for (size_t i = 0; i < n; i++)
		out[i] = term_share(pp, sh, terms[i]);
	if (sh != buf)
		free(sh);
}

void
lm_idf_snap_remove(lm_idf_snap *sn, const lm_posting_prep *pp)
{
	for (size_t i = 0; i < pp->n_skills; i++)
		sn->refs[pp->skills[i].sym]--;
}

float
lm_idf_snap_share(const lm_idf_snap *sn, const lm_posting_prep *pp,
    double preferred_share, uint32_t term)
{
	double buf[SHARES_ON_STACK],
	    *sh = snap_shares(sn, pp, preferred_share, buf, SHARES_ON_STACK);
	float v = term_share(pp, sh, term);

	if (sh != buf)
		free(sh);
	return v;
}

uint32_t
lm_idf_snap_refs(const lm_idf_snap *sn, uint32_t sym)
{
	return sym < sn->cap ? sn->refs[sym] : 0;
}

uint32_t
lm_idf_snap_syms(const lm_idf_snap *sn)
{
	return sn->cap;
}

double
lm_idf_snap_drift(const lm_idf_snap *sn, const lm_skill_stats *s)
{
	double lo = INFINITY, hi = 0;

	for (uint32_t sym = 0; sym < sn->cap; sym++) {
		double r;
		if (sn->refs[sym] == 0)
			continue;
		r = lm_sym_idf(s, sym) / sn->idf[sym];
		lo = r < lo ? r : lo;
		hi = r > hi ? r : hi;
	}
	return hi > 0 && lo < hi ? hi / lo : 1.0;
}

void
lm_idf_snap_reset(lm_idf_snap *sn, const lm_skill_stats *s)
{
	for (uint32_t sym = 0; sym < sn->cap; sym++)
		if (sn->refs[sym] > 0)
			sn->idf[sym] = lm_sym_idf(s, sym);
}

int
lm_idf_snap_renewed(const lm_idf_snap *sn, const lm_skill_stats *s, lm_idf_snap **out)
{
	lm_idf_snap *c;

	*out = NULL;
	if (lm_idf_snap_new(&c) != LM_OK)
		return LM_ENOMEM;
	if (snap_reserve(c, sn->cap) != LM_OK) {
		lm_idf_snap_free(c);
		return LM_ENOMEM;
	}
	if (sn->cap > 0) {
		memcpy(c->idf, sn->idf, sn->cap * sizeof(*c->idf));
		memcpy(c->refs, sn->refs, sn->cap * sizeof(*c->refs));
	}
	lm_idf_snap_reset(c, s);
	*out = c;
	return LM_OK;
}
