/*
 * scan.c - one subject scored against many records of the other side, as
 * the index's queries do: the subject's skills are resolved to symbols
 * once, idf comes from a per-scan cache, and bound preps are scored by
 * symbol. Every result is exactly lm_score_pair's. See score.h.
 */
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "score_int.h"

struct lm_scan {
	lm_score_env env;
	const lm_profile_prep *cp; /* the subject: a profile ... */
	const lm_posting_prep *pp; /* ... or a posting */
	const lm_skill_stats *stats;
	uint32_t *mark; /* nsym slots: see struct fast */
	uint32_t stamp;
	double *idf;         /* nsym slots, -1 until computed */
	uint32_t *subj;      /* posting subject: symbols of skills[], then gids[] */
	double *imp;         /* posting subject: nsym slots, weight * idf of its skills */
	double imp_tot;      /* ... summed over all of them (known symbols or not) */
	double *share;       /* posting subject with skills: nsym slots, its shares */
	uint64_t fast_pairs; /* pairs scored through the fast path */
};

/* The shares of a posting subject's skills (lm_posting_shares) by symbol;
 * a symbol of several of its skills keeps the largest. */
static int
subject_shares(lm_scan *sc)
{
	const lm_posting_prep *p = sc->pp;
	double *idf, *sh;

	if ((sc->share = calloc(lm_sym_limit(sc->stats) + 1, sizeof(*sc->share))) ==
	        NULL ||
	    (idf = malloc(2 * p->n_skills * sizeof(*idf))) == NULL)
		return LM_ENOMEM;
	sh = idf + p->n_skills;
	for (size_t i = 0; i < p->n_skills; i++)
		idf[i] = lm_sym_idf(sc->stats, sc->subj[i]);
	lm_posting_shares(p, idf, sc->env.model->params.preferred_share, sh);
	for (size_t i = 0; i < p->n_skills; i++)
		if (sc->subj[i] != LM_SKILL_SYM_NONE && sh[i] > sc->share[sc->subj[i]])
			sc->share[sc->subj[i]] = sh[i];
	free(idf);
	return LM_OK;
}

int
lm_scan_new(const lm_score_env *env, const lm_profile_prep *c, const lm_posting_prep *p,
    lm_scan **out)
{
	lm_scan *sc;
	size_t nsym;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (env == NULL || env->model == NULL || (c == NULL) == (p == NULL))
		return LM_EINVAL;
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return LM_ENOMEM;
	sc->env = *env;
	sc->cp = c;
	sc->pp = p;
	sc->stats = env->stats;
	nsym = lm_sym_limit(sc->stats);
	if ((sc->mark = calloc(nsym + 1, sizeof(*sc->mark))) == NULL ||
	    (sc->idf = malloc((nsym + 1) * sizeof(*sc->idf))) == NULL)
		goto nomem;
	for (size_t i = 0; i < nsym; i++)
		sc->idf[i] = -1;
	sc->stamp = 1;
	if (c != NULL) {
		for (size_t i = 0; i < c->n_skills; i++) {
			uint32_t sym = lm_sym_lookup(sc->stats, c->skills[i].id);
			if (sym != LM_SKILL_SYM_NONE)
				sc->mark[sym] = sc->stamp;
		}
	} else {
		size_t n = p->n_skills + p->n_gids;
		if ((sc->subj = malloc((n + 1) * sizeof(*sc->subj))) == NULL)
			goto nomem;
		for (size_t i = 0; i < p->n_skills; i++)
			sc->subj[i] = lm_sym_lookup(sc->stats, p->skills[i].id);
		for (size_t k = 0; k < p->n_gids; k++)
			sc->subj[p->n_skills + k] = lm_sym_lookup(sc->stats, p->gids[k]);
		if ((sc->imp = calloc(nsym + 1, sizeof(*sc->imp))) == NULL)
			goto nomem;
		for (size_t i = 0; i < p->n_skills; i++) {
			double v = p->skills[i].w * lm_sym_idf(sc->stats, sc->subj[i]);
			sc->imp_tot += v;
			if (sc->subj[i] != LM_SKILL_SYM_NONE)
				sc->imp[sc->subj[i]] = v;
		}
		if (p->n_skills > 0 && sc->stats != NULL && subject_shares(sc) != LM_OK)
			goto nomem;
	}
	*out = sc;
	return LM_OK;
nomem:
	lm_scan_free(sc);
	return LM_ENOMEM;
}

void
lm_scan_free(lm_scan *sc)
{
	if (sc == NULL)
		return;
	free(sc->mark);
	free(sc->idf);
	free(sc->subj);
	free(sc->imp);
	free(sc->share);
	free(sc);
}

uint64_t
lm_scan_fast_pairs(const lm_scan *sc)
{
	return sc == NULL ? 0 : sc->fast_pairs;
}

double
lm_scan_key_bound(lm_scan *sc, const lm_veto_key *other)
{
	struct fast fx;

	/* A profile scan's marks hold the subject's skills: they answer for
	 * the skills in a posting's key. A posting scan's importances answer
	 * for the skills in a profile's key. */
	fx.psym = NULL;
	fx.gsym = NULL;
	fx.mark = sc->mark;
	fx.stamp = sc->stamp;
	fx.idf = sc->idf;
	fx.stats = sc->stats;
	fx.vetted = false;
	fx.imp = sc->imp;
	fx.imp_tot = sc->imp_tot;
	if (sc->cp == NULL)
		return lm_key_bound(sc->env.model, sc->env.now, other, &sc->pp->key,
		    sc->stats != NULL ? &fx : NULL);
	return lm_key_bound(sc->env.model, sc->env.now, &sc->cp->key, other,
	    sc->stats != NULL ? &fx : NULL);
}

bool
lm_scan_vetoed(const lm_scan *sc, const lm_veto_key *other)
{
	return sc->cp != NULL ? lm_key_vetoed(sc->env.now, &sc->cp->key, other)
	                      : lm_key_vetoed(sc->env.now, other, &sc->pp->key);
}

/* Sets up fx for the pair (subject profile, p): false when p is not bound
 * to the scan's statistics (or the scan's subject is a posting). */
static bool
fast_posting(lm_scan *sc, const lm_posting_prep *p, struct fast *fx)
{
	if (sc->cp == NULL || sc->stats == NULL || p->bound != sc->stats)
		return false;
	fx->psym = NULL;
	fx->gsym = p->gsym;
	fx->mark = sc->mark;
	fx->stamp = sc->stamp;
	fx->idf = sc->idf;
	fx->stats = sc->stats;
	fx->vetted = false;
	fx->imp = NULL;
	return true;
}

/* As fast_posting for the pair (c, subject posting): marks c's skills. */
static bool
fast_profile(lm_scan *sc, const lm_profile_prep *c, struct fast *fx)
{
	if (sc->pp == NULL || sc->stats == NULL || c->bound != sc->stats)
		return false;
	if (++sc->stamp == 0) { /* wrapped: old marks could look current */
		memset(sc->mark, 0, (lm_sym_limit(sc->stats) + 1) * sizeof(*sc->mark));
		sc->stamp = 1;
	}
	for (size_t i = 0; i < c->n_skills; i++)
		sc->mark[c->skills[i].sym] = sc->stamp;
	fx->psym = sc->subj;
	fx->gsym = sc->subj + sc->pp->n_skills;
	fx->mark = sc->mark;
	fx->stamp = sc->stamp;
	fx->idf = sc->idf;
	fx->stats = sc->stats;
	fx->vetted = false;
	fx->imp = NULL;
	return true;
}

static double
scan_pair(lm_scan *sc, const lm_profile_prep *c, const lm_posting_prep *p,
    const struct fast *fx, bool *eligible)
{
	struct eval ev;

	sc->fast_pairs++;
	if (lm_key_vetoed(sc->env.now, &c->key, &p->key)) {
		if (eligible != NULL)
			*eligible = false;
		return 0;
	}
	ev.detail = false;
	lm_evaluate(&sc->env, c, p, &lm_no_ovr, fx, NULL, &ev);
	if (eligible != NULL)
		*eligible = ev.eligible;
	return ev.score;
}

double
lm_scan_posting(lm_scan *sc, const lm_posting_prep *p, bool *eligible)
{
	struct fast fx;

	if (sc->cp == NULL) { /* a posting subject: not a pair of this scan */
		if (eligible != NULL)
			*eligible = false;
		return 0;
	}
	if (!fast_posting(sc, p, &fx))
		return lm_score_pair(&sc->env, sc->cp, p, eligible);
	return scan_pair(sc, sc->cp, p, &fx, eligible);
}

double
lm_scan_profile(lm_scan *sc, const lm_profile_prep *c, bool *eligible)
{
	struct fast fx;

	if (sc->pp == NULL) { /* a profile subject: not a pair of this scan */
		if (eligible != NULL)
			*eligible = false;
		return 0;
	}
	if (!fast_profile(sc, c, &fx))
		return lm_score_pair(&sc->env, c, sc->pp, eligible);
	return scan_pair(sc, c, sc->pp, &fx, eligible);
}

/* The bound and eligibility of a pair (stage one of lm_scan_*_bound). */
static lm_pair_state
bound_pair(lm_scan *sc, const lm_profile_prep *c, const lm_posting_prep *p,
    const struct fast *fx, double floor, double *bound)
{
	*bound = lm_score_bound(&sc->env, c, p, fx);
	if (*bound < floor)
		return LM_PAIR_BELOW;
	return lm_vetoed(&sc->env, c, p, fx) ? LM_PAIR_VETOED : LM_PAIR_OK;
}

/* A pair not bound to the scan's statistics: scored in full. */
static lm_pair_state
unbound_state(bool ok, double score, double floor)
{
	if (!ok)
		return LM_PAIR_VETOED;
	return score < floor ? LM_PAIR_BELOW : LM_PAIR_OK;
}

/* The exact score of an eligible pair (stage two). */
static double
score_vetted(
    lm_scan *sc, const lm_profile_prep *c, const lm_posting_prep *p, struct fast *fx)
{
	struct eval ev;

	sc->fast_pairs++;
	fx->vetted = true;
	ev.detail = false;
	lm_evaluate(&sc->env, c, p, &lm_no_ovr, fx, NULL, &ev);
	return ev.score;
}

lm_pair_state
lm_scan_posting_bound(lm_scan *sc, const lm_posting_prep *p, double floor, double *bound)
{
	struct fast fx;
	bool ok;

	if (!fast_posting(sc, p, &fx)) {
		*bound = lm_scan_posting(sc, p, &ok);
		return unbound_state(ok, *bound, floor);
	}
	return bound_pair(sc, sc->cp, p, &fx, floor, bound);
}

lm_pair_state
lm_scan_profile_bound(lm_scan *sc, const lm_profile_prep *c, double floor, double *bound)
{
	struct fast fx;
	bool ok;

	if (!fast_profile(sc, c, &fx)) {
		*bound = lm_scan_profile(sc, c, &ok);
		return unbound_state(ok, *bound, floor);
	}
	return bound_pair(sc, c, sc->pp, &fx, floor, bound);
}

double
lm_scan_posting_score(lm_scan *sc, const lm_posting_prep *p)
{
	struct fast fx;

	if (!fast_posting(sc, p, &fx))
		return lm_scan_posting(sc, p, NULL);
	return score_vetted(sc, sc->cp, p, &fx);
}

double
lm_scan_profile_score(lm_scan *sc, const lm_profile_prep *c)
{
	struct fast fx;

	if (!fast_profile(sc, c, &fx))
		return lm_scan_profile(sc, c, NULL);
	return score_vetted(sc, c, sc->pp, &fx);
}

double
lm_scan_term_share(const lm_scan *sc, uint32_t term)
{
	uint32_t sym = term >> 1;

	if (sc->share == NULL)
		return INFINITY;
	if ((term & 1u) != LM_TERM_SKILL || sym >= lm_sym_limit(sc->stats))
		return 0;
	return sc->share[sym];
}
