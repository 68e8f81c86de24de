/*
 * rules.c - the vetoes and features of one pair, each defined once in a
 * table, and the evaluation that runs the tables; see score.h for the
 * contract and docs/scoring.md for the formulas.
 *
 * A veto is a row of `vetoes`: its exact test (which also writes the
 * explanation rows of the veto when an explanation is built) and, where the
 * veto keys of the two records can prove it, a pre-check on the keys alone.
 * lm_key_vetoed is the pre-checks of the table; the index derives its
 * partitions from them. A feature is a row of `features`: its value (with
 * its detail text for explanations) and, for the features whose value is
 * not cheap, an upper bound; lm_score_bound is the bounds of the table.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "score_int.h"

const struct ovr lm_no_ovr = {NULL, -1, 0};

/* One pair as the rules see it. */
struct pair {
	const lm_score_env *env;
	const lm_profile_prep *cp;
	const lm_posting_prep *pp;
	const struct ovr *o;
	const struct fast *fx; /* NULL: skills compared by id */
};

/* The same value as lm_skill_idf of the symbol's id. */
static double
fast_idf(const struct fast *fx, uint32_t sym)
{
	double v;

	if (sym == LM_SKILL_SYM_NONE)
		return lm_sym_idf(fx->stats, sym);
	if ((v = fx->idf[sym]) < 0)
		v = fx->idf[sym] = lm_sym_idf(fx->stats, sym);
	return v;
}

static bool
cand_has(const lm_profile_prep *c, const struct ovr *o, const char *id, double *years)
{
	if (o->add_skill != NULL && strcmp(o->add_skill, id) == 0) {
		if (years)
			*years = 0;
		return true;
	}
	return lm_profile_has_skill(c, id, years);
}

static double
cand_years(const lm_profile_prep *c, const struct ovr *o)
{
	double y = o->years >= 0 ? o->years : c->key.years;
	return isfinite(y) && y > 0 ? y : 0;
}

static int
cand_education(const lm_profile_prep *c, const struct ovr *o)
{
	return o->education > 0 ? o->education : (int) c->key.education;
}

/* Whether text (folded hash h, 0: no text) equals one of the n goals
 * case-insensitively; goal_h[i] is text_hash(goals[i], true). The category
 * and industry parts of career_goals, and NO_OVERLAP, ask this. */
static bool
goal_hit(const char *text, uint64_t h, const char *const *goals, size_t n,
    const uint64_t *goal_h)
{
	if (h == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (goals[i] != NULL && lm_text_caseeq(text, h, goals[i], goal_h[i]))
			return true;
	return false;
}

/* Whether the candidate has one of the posting's skills or one of the
 * skill ids of its requirement groups. */
static bool
shares_skill(const lm_profile_prep *cp, const lm_posting_prep *pp, const struct ovr *o,
    const struct fast *fx)
{
	if (fx != NULL) {
		for (size_t i = 0; i < pp->n_skills; i++)
			if (fast_has(
			        fx, fx->psym != NULL ? fx->psym[i] : pp->skills[i].sym))
				return true;
		for (size_t k = 0; k < pp->n_gids; k++)
			if (fast_has(fx, fx->gsym[k]))
				return true;
		return false;
	}
	for (size_t i = 0; i < pp->n_skills; i++)
		if (cand_has(cp, o, pp->skills[i].id, NULL))
			return true;
	for (size_t k = 0; k < pp->n_gids; k++)
		if (cand_has(cp, o, pp->gids[k], NULL))
			return true;
	return false;
}

/* Whether the candidate's career goals point at the role: a desired
 * category is the posting's category, or a significant word of a desired
 * title is in the posting's title. Industries do not count: an industry is
 * the employer's sector, not the work. */
static bool
goals_point(const lm_profile_prep *cp, const lm_posting_prep *pp)
{
	if (!(cp->key.flags & KEY_GOALS))
		return false;
	if (goal_hit(pp->category, pp->cat_h, cp->goal, cp->n_goal_cat, cp->goal_h))
		return true;
	for (size_t k = 0; k < cp->n_sig; k++)
		if (lm_tokset_has(&pp->title, pp->title_h, cp->sig_tok[k], cp->sig_h[k]))
			return true;
	return false;
}

/* The NO_OVERLAP veto: the posting lists skills (its own or its groups'),
 * the candidate has none of them, and the goals do not point at the role. */
static bool
no_overlap(const lm_profile_prep *cp, const lm_posting_prep *pp, const struct ovr *o,
    const struct fast *fx)
{
	return (pp->n_skills > 0 || pp->n_gids > 0) && !shares_skill(cp, pp, o, fx) &&
	       !goals_point(cp, pp);
}

/* ==== vetoes =============================================================== */

/* Each test returns whether the veto applies to the pair; in collect mode
 * (vs not NULL) it also writes its rows. Each key pre-check returns true
 * only when its test would (c is the profile's key, p the posting's). */

static bool
closed_key(int64_t now, const lm_veto_key *c, const lm_veto_key *p)
{
	(void) now;
	(void) c;
	return (p->flags & KEY_CLOSED) != 0;
}

static bool
closed_test(const struct pair *pr, struct vsink *vs)
{
	if (!closed_key(pr->env->now, &pr->cp->key, &pr->pp->key))
		return false;
	lm_veto_row(vs, LM_VETO_POSTING_CLOSED, "the posting is closed");
	return true;
}

static bool
expired_key(int64_t now, const lm_veto_key *c, const lm_veto_key *p)
{
	(void) c;
	return p->expires_at != 0 && p->expires_at <= now;
}

static bool
expired_test(const struct pair *pr, struct vsink *vs)
{
	if (!expired_key(pr->env->now, &pr->cp->key, &pr->pp->key))
		return false;
	lm_veto_row(vs, LM_VETO_POSTING_EXPIRED, "the posting expired");
	return true;
}

static bool
groups_test(const struct pair *pr, struct vsink *vs)
{
	const lm_posting_prep *pp = pr->pp;
	const struct fast *fx = pr->fx;
	double y = cand_years(pr->cp, pr->o);
	char gtext[LM_EXPLAIN_TEXT_MAX];
	bool vetoed = false;

	for (size_t i = 0; i < pp->n_groups; i++) {
		const struct pgroup *pg = &pp->groups[i];
		bool skill_ok = !pg->needs_skill, years_ok;

		for (size_t k = 0; k < pg->n && !skill_ok; k++)
			skill_ok = fx != NULL ? fast_has(fx, fx->gsym[pg->off + k])
			                      : cand_has(pr->cp, pr->o,
			                            pp->gids[pg->off + k], NULL);
		years_ok = !(isfinite(pg->min_years) && pg->min_years > 0 &&
		             y < (double) pg->min_years);
		if (skill_ok && years_ok)
			continue;
		vetoed = true;
		if (vs == NULL)
			return true;
		lm_group_text(pp->rec->requirement_groups[pg->gi], gtext, sizeof(gtext));
		struct lm_num_pair yt = lm_num_pair((double) pg->min_years, y, 1);
		if (!skill_ok && !years_ok)
			lm_veto_row(vs, LM_VETO_REQUIREMENT_GROUP,
			    "requires one of: %s, and %s years of experience (has %s)",
			    gtext, yt.a, yt.b);
		else if (!skill_ok)
			lm_veto_row(
			    vs, LM_VETO_REQUIREMENT_GROUP, "requires one of: %s", gtext);
		else
			lm_veto_row(vs, LM_VETO_REQUIREMENT_GROUP,
			    "%s: requires %s years of experience (has %s)", gtext, yt.a,
			    yt.b);
		lm_failed_group_row(vs, gtext);
	}
	return vetoed;
}

static bool
employment_key(int64_t now, const lm_veto_key *c, const lm_veto_key *p)
{
	int32_t et = p->employment_type;

	(void) now;
	return (c->flags & (KEY_EMP_ANY | KEY_EMP_EXACT)) ==
	           (KEY_EMP_ANY | KEY_EMP_EXACT) &&
	       et != 0 && (et < 0 || et >= 64 || !((c->emp_mask >> et) & 1));
}

static bool
employment_test(const struct pair *pr, struct vsink *vs)
{
	const lm_veto_key *k = &pr->cp->key;
	const CandidateProfile *c = pr->cp->rec;
	int32_t et = pr->pp->key.employment_type;
	bool ok = false;

	if (!(k->flags & KEY_EMP_ANY) || et == 0)
		return false;
	if (k->flags & KEY_EMP_EXACT) /* emp_mask holds every desired type */
		ok = et >= 0 && et < 64 && ((k->emp_mask >> et) & 1);
	else
		for (size_t i = 0; i < c->n_desired_employment_types && !ok; i++)
			ok = (int32_t) c->desired_employment_types[i] == et;
	if (ok)
		return false;
	lm_veto_row(vs, LM_VETO_EMPLOYMENT_TYPE,
	    "the job is %s; the candidate wants other employment types",
	    lm_employment_name(et));
	return true;
}

static bool
remote_key(int64_t now, const lm_veto_key *c, const lm_veto_key *p)
{
	(void) now;
	return c->remote == LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
	       p->remote == LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE;
}

static bool
remote_test(const struct pair *pr, struct vsink *vs)
{
	if (!remote_key(pr->env->now, &pr->cp->key, &pr->pp->key))
		return false;
	lm_veto_row(
	    vs, LM_VETO_REMOTE_POLICY, "onsite job; the candidate wants remote work");
	return true;
}

/* Mean Earth radius, km (IUGG). */
#define EARTH_KM 6371.0088
#define DEG      0.017453292519943295 /* radians per degree */

/* Great-circle distance between the positions a and b (degrees), km
 * (haversine). */
static double
geo_km(double alat, double alon, double blat, double blon)
{
	double p1 = alat * DEG, p2 = blat * DEG;
	double dp = sin((p2 - p1) / 2), dl = sin((blon - alon) * DEG / 2);
	double h = dp * dp + cos(p1) * cos(p2) * dl * dl;

	return 2 * EARTH_KM * asin(sqrt(h < 1 ? h : 1));
}

/* The location of locs (n) that is not NULL with index k among those
 * that are. */
static const Lunamatch__V1__Location *
nth_location(Lunamatch__V1__Location *const *locs, size_t n, size_t k)
{
	for (size_t i = 0; i < n; i++)
		if (locs[i] != NULL && k-- == 0)
			return locs[i];
	return NULL;
}

/* The shortest distance between a location of the posting and one of the
 * candidate, both sides geocoded (pp->geo and cp->geo); *pl and *cl (may be
 * NULL) receive the pair (then the posting's record is read). */
static double
nearest_km(const lm_posting_prep *pp, const lm_profile_prep *cp,
    const Lunamatch__V1__Location **pl, const Lunamatch__V1__Location **cl)
{
	double best = INFINITY;
	size_t bi = 0, bj = 0;

	for (size_t i = 0; i < pp->n_ll; i++) {
		for (size_t j = 0; j < cp->n_ll; j++) {
			double d = geo_km(
			    pp->ll[i].lat, pp->ll[i].lon, cp->ll[j].lat, cp->ll[j].lon);
			if (d < best) {
				best = d;
				bi = i;
				bj = j;
			}
		}
	}
	if (pl != NULL && best < INFINITY)
		*pl = nth_location(pp->rec->locations, pp->rec->n_locations, bi);
	if (cl != NULL && best < INFINITY)
		*cl = nth_location(cp->rec->locations, cp->rec->n_locations, bj);
	return best;
}

/* Whether distance decides where the pair can meet: the job is on-site or
 * hybrid (or unspecified) and every location on both sides is geocoded. */
static bool
by_distance(const lm_profile_prep *cp, const lm_posting_prep *pp)
{
	return pp->key.remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
	       pp->geo && cp->geo;
}

/* Whether country (may be NULL) is one where the remote posting p allows
 * the work: its remote_countries, or without them its locations'. */
static bool
remote_allows(const JobPosting *p, const char *country)
{
	if (country == NULL || country[0] == '\0')
		return false;
	if (p->n_remote_countries > 0)
		return lm_str_in(country, p->remote_countries, p->n_remote_countries);
	for (size_t i = 0; i < p->n_locations; i++)
		if (p->locations[i] != NULL &&
		    lm_str_in(country, &p->locations[i]->country, 1))
			return true;
	return false;
}

/* remote_allows for the packed country of a candidate's location, when the
 * posting's countries are packed (remote_packed). */
static bool
remote_allows_packed(const lm_posting_prep *pp, uint64_t country)
{
	if (pp->has_rc) {
		for (size_t k = 0; k < pp->n_rc; k++)
			if (pp->rc[k] == country)
				return true;
		return false;
	}
	for (size_t i = 0; i < pp->n_locs; i++)
		if (pp->locs[i].country == country)
			return true;
	return false;
}

/* The packed country of a candidate's location l (may be NULL), to compare
 * with a posting's packed ones: false when it has no country or its country
 * does not pack (then it equals none of them, being longer). */
static bool
loc_pack(const Lunamatch__V1__Location *l, uint64_t *out)
{
	return l != NULL && l->country != NULL && l->country[0] != '\0' &&
	       lm_country_pack(l->country, out);
}

/* A location of the candidate as the comparisons with a posting's record
 * read it (a posting whose countries do not pack). */
struct cloc {
	const char *country, *city;
	char buf[COUNTRY_MAX + 1];
};

/* How many locations cand_loc goes through. */
static size_t
cand_nlocs(const lm_profile_prep *cp)
{
	return cp->locs_packed ? cp->n_locs : cp->rec->n_locations;
}

/* Location j of the candidate into *l: from its prep when its countries
 * are packed (the country unpacked, A-Z folded to a-z: the same texts to
 * strcasecmp; only the locations that have one), else from its record.
 * False for a location to skip. */
static bool
cand_loc(const lm_profile_prep *cp, size_t j, struct cloc *l)
{
	const Lunamatch__V1__Location *r;

	if (cp->locs_packed) {
		for (size_t k = 0; k < COUNTRY_MAX; k++)
			l->buf[k] = (char) (cp->locs[j].country >> (8 * k) & 0xff);
		l->buf[COUNTRY_MAX] = '\0';
		l->country = l->buf;
		l->city = cp->locs[j].city;
		return true;
	}
	if ((r = cp->rec->locations[j]) == NULL)
		return false;
	l->country = r->country;
	l->city = r->city;
	return true;
}

/* Whether the countries a remote posting allows are packed in its prep. */
static bool
remote_packed(const lm_posting_prep *pp)
{
	return pp->has_rc ? pp->rc_packed : pp->locs_packed;
}

/* For a REMOTE posting: -1 when it allows the work anywhere or the
 * candidate names no country (nothing to decide), 1 when a country of the
 * candidate is allowed, 0 when none is. */
static int
remote_region_fit(const lm_profile_prep *cp, const lm_posting_prep *pp)
{
	const CandidateProfile *c = cp->rec;

	if (pp->key.remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE ||
	    !cp->has_country || (!pp->has_rc && !pp->has_country))
		return -1;
	if (cp->locs_packed && remote_packed(pp)) {
		for (size_t j = 0; j < cp->n_locs; j++)
			if (remote_allows_packed(pp, cp->locs[j].country))
				return 1;
		return 0;
	}
	if (remote_packed(pp)) { /* without reading the posting's record */
		uint64_t cc;
		for (size_t j = 0; j < c->n_locations; j++)
			if (loc_pack(c->locations[j], &cc) &&
			    remote_allows_packed(pp, cc))
				return 1;
		return 0;
	}
	for (size_t j = 0; j < cand_nlocs(cp); j++) {
		struct cloc l;
		if (cand_loc(cp, j, &l) && remote_allows(pp->rec, l.country))
			return 1;
	}
	return 0;
}

/* Writes the countries where the remote posting p allows the work, comma
 * separated, into buf. */
static void
remote_countries_text(const JobPosting *p, char *buf, size_t len)
{
	size_t w = 0;

	buf[0] = '\0';
	if (p->n_remote_countries > 0)
		for (size_t i = 0; i < p->n_remote_countries && w + 1 < len; i++)
			w += (size_t) snprintf(buf + w, len - w, "%s%s", i ? ", " : "",
			    p->remote_countries[i] ? p->remote_countries[i] : "");
	else
		for (size_t i = 0; i < p->n_locations && w + 1 < len; i++) {
			const char *cc =
			    p->locations[i] ? p->locations[i]->country : NULL;
			if (cc == NULL || cc[0] == '\0' ||
			    (w > 0 && strstr(buf, cc) != NULL))
				continue;
			w += (size_t) snprintf(
			    buf + w, len - w, "%s%s", w ? ", " : "", cc);
		}
	if (w >= len) /* cut: before the last character if that was cut too */
		buf[lm_pb_utf8_fit(buf, len - 1)] = '\0';
}

bool
lm_key_located(const lm_veto_key *k, bool posting)
{
	if (!(k->flags & KEY_HAS_COUNTRY))
		return false;
	return posting ? k->remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE
	               : !(k->flags & KEY_RELOCATE);
}

void
lm_key_locate(lm_veto_key *k, uint64_t country_mask)
{
	k->country_mask = country_mask;
	k->flags |= KEY_HAS_COUNTRY;
}

/* Whether the location veto is decided by countries at all: the job is not
 * remote, both sides name a country, and the candidate does not relocate. */
static bool
location_applies(const lm_veto_key *c, const lm_veto_key *p)
{
	return lm_key_located(p, true) && lm_key_located(c, false);
}

static bool
location_key(int64_t now, const lm_veto_key *c, const lm_veto_key *p)
{
	(void) now;
	return location_applies(c, p) && (p->country_mask & c->country_mask) == 0;
}

static bool
location_test(const struct pair *pr, struct vsink *vs)
{
	const lm_profile_prep *cp = pr->cp;
	const lm_posting_prep *pp = pr->pp;
	const CandidateProfile *c = cp->rec;
	const JobPosting *p = pp->rec;
	bool common = false;

	if (!(cp->key.flags & KEY_RELOCATE) && remote_region_fit(cp, pp) == 0) {
		char allowed[LM_EXPLAIN_TEXT_MAX / 2];
		const char *home = NULL;
		if (vs == NULL)
			return true;
		remote_countries_text(p, allowed, sizeof(allowed));
		for (size_t j = 0; j < c->n_locations && home == NULL; j++)
			if (c->locations[j] != NULL && c->locations[j]->country != NULL &&
			    c->locations[j]->country[0] != '\0')
				home = c->locations[j]->country;
		lm_veto_row(vs, LM_VETO_LOCATION,
		    "remote work only from %s; the candidate is in %s and does not "
		    "relocate",
		    allowed, home != NULL ? home : "?");
		return true;
	}
	if (!location_applies(&cp->key, &pp->key))
		return false;
	if (pp->locs_packed && cp->locs_packed)
		for (size_t i = 0; i < pp->n_locs && !common; i++)
			for (size_t j = 0; j < cp->n_locs && !common; j++)
				common = pp->locs[i].country == cp->locs[j].country;
	else if (pp->locs_packed) /* without reading the posting's record */
		for (size_t j = 0; j < c->n_locations && !common; j++) {
			uint64_t cc;
			if (!loc_pack(c->locations[j], &cc))
				continue;
			for (size_t i = 0; i < pp->n_locs && !common; i++)
				common = pp->locs[i].country == cc;
		}
	else
		for (size_t i = 0; i < p->n_locations && !common; i++)
			if (p->locations[i] != NULL)
				for (size_t j = 0; j < cand_nlocs(cp) && !common; j++) {
					struct cloc l;
					common = cand_loc(cp, j, &l) &&
					         lm_str_in(p->locations[i]->country,
					             (char *const *) &l.country, 1);
				}
	if (!common) {
		lm_veto_row(vs, LM_VETO_LOCATION,
		    "no job location in the candidate's countries, and the candidate "
		    "does not relocate");
		return true;
	}
	if (by_distance(cp, pp)) {
		const Lunamatch__V1__Location *pl = NULL, *cl = NULL;
		/* The records' locations are read for the explanation only. */
		double d =
		    nearest_km(pp, cp, vs != NULL ? &pl : NULL, vs != NULL ? &cl : NULL);
		if (d <= pr->env->model->params.commute_km)
			return false;
		if (vs == NULL)
			return true;
		struct lm_num_pair km =
		    lm_num_pair(d, pr->env->model->params.commute_km, 0);
		lm_veto_row(vs, LM_VETO_LOCATION,
		    "the nearest job location (%s) is %s km from the candidate's "
		    "(%s), beyond commuting distance (%s km), and the candidate "
		    "does not relocate",
		    pl && pl->city && pl->city[0] ? pl->city : "?", km.a,
		    cl && cl->city && cl->city[0] ? cl->city : "?", km.b);
		return true;
	}
	return false;
}

static bool
overlap_test(const struct pair *pr, struct vsink *vs)
{
	if (!no_overlap(pr->cp, pr->pp, pr->o, pr->fx))
		return false;
	lm_veto_row(vs, LM_VETO_NO_OVERLAP,
	    "no skill in common with the posting, and the role is not among the "
	    "career goals");
	return true;
}

static bool
filter_test(const struct pair *pr, struct vsink *vs)
{
	size_t before = vs != NULL ? vs->e->n_vetoes : 0;
	bool ok = lm_check_filters(pr->env->filters, pr->cp, pr->pp, vs);

	return vs != NULL ? vs->e->n_vetoes > before : !ok;
}

/* The hard filters, in the order explanations list them. */
static const struct veto_rule {
	const char *code;
	bool (*test)(const struct pair *pr, struct vsink *vs);
	bool (*key)(
	    int64_t now, const lm_veto_key *c, const lm_veto_key *p); /* or NULL */
} vetoes[] = {
    {LM_VETO_POSTING_CLOSED, closed_test, closed_key},
    {LM_VETO_POSTING_EXPIRED, expired_test, expired_key},
    {LM_VETO_REQUIREMENT_GROUP, groups_test, NULL},
    {LM_VETO_EMPLOYMENT_TYPE, employment_test, employment_key},
    {LM_VETO_REMOTE_POLICY, remote_test, remote_key},
    {LM_VETO_LOCATION, location_test, location_key},
    {LM_VETO_NO_OVERLAP, overlap_test, NULL},
    {LM_VETO_FILTER, filter_test, NULL},
};

#define N_VETOES (sizeof(vetoes) / sizeof(vetoes[0]))

bool
lm_key_vetoed(int64_t now, const lm_veto_key *c, const lm_veto_key *p)
{
	for (size_t i = 0; i < N_VETOES; i++)
		if (vetoes[i].key != NULL && vetoes[i].key(now, c, p))
			return true;
	return false;
}

static bool check_vetoes(const struct pair *pr, struct vsink *vs);

bool
lm_vetoed(const lm_score_env *env, const lm_profile_prep *cp, const lm_posting_prep *pp,
    const struct fast *fx)
{
	struct pair pr = {env, cp, pp, &lm_no_ovr, fx};

	return lm_key_vetoed(env->now, &cp->key, &pp->key) || !check_vetoes(&pr, NULL);
}

/* Runs the veto table. Fast mode (vs NULL): false at the first veto. Collect
 * mode: every veto's rows; returns whether none applied. */
static bool
check_vetoes(const struct pair *pr, struct vsink *vs)
{
	bool ok = true;

	for (size_t i = 0; i < N_VETOES; i++) {
		if (vetoes[i].test(pr, vs)) {
			ok = false;
			if (vs == NULL)
				return false;
		}
	}
	return ok;
}

/* ==== features ============================================================= */

/* The values of the features that depend on a few scalars of each side:
 * false when the feature is absent. The feature rows and their key bounds
 * (lm_key_bound) both compute through these. */
static bool
experience_of(double need, double y, double *v)
{
	if (!(isfinite(need) && need > 0))
		return false;
	*v = y >= need ? 1.0 : clamp01(y / need);
	return true;
}

/* Levels of the candidate (a) above the job's (b) never count against
 * them: only the levels below cost a step each. */
static bool
seniority_of(const lm_model *m, int a, int b, double *v)
{
	int d = a < b ? b - a : 0;

	if (a < 1 || a > 8 || b < 1 || b > 8)
		return false;
	*v = clamp01(1.0 - d * m->params.seniority_step);
	return true;
}

/* top: the posting's salary_top (0: none); want: the desired annual_min. */
static bool
salary_of(const lm_model *m, int64_t top, int64_t want, double *v)
{
	if (top <= 0 || want <= 0)
		return false;
	if (want <= top)
		*v = 1.0;
	else
		*v = clamp01(pow(0.5, ((double) (want - top) / (double) top) /
		                          m->params.salary_half_excess));
	return true;
}

/* Counts only where the posting asks for more than no degree. */
static bool
education_of(const lm_model *m, int need, int have, double *v)
{
	if (need < LUNAMATCH__V1__EDUCATION__EDUCATION_HIGH_SCHOOL || need > 6 ||
	    have < 1 || have > 6)
		return false;
	*v = have >= need ? 1.0 : clamp01(1.0 - (need - have) * m->params.education_step);
	return true;
}

static bool
freshness_of(const lm_model *m, int64_t posted_at, int64_t now, double *v, double *days)
{
	if (posted_at <= 0)
		return false;
	*days = now > posted_at ? (double) (now - posted_at) / 86400.0 : 0.0;
	*v = clamp01(exp2(-(*days / m->params.freshness_half_life_days)));
	return true;
}

/* Remote-policy fit [posting][candidate], both specified. */
static const double remote_fit[4][4] = {
    {0, 0, 0, 0}, {0, 1.0, 0.5, 0.0}, /* posting onsite */
    {0, 0.75, 1.0, 0.5},              /* posting hybrid */
    {0, 0.5, 0.75, 1.0},              /* posting remote */
};

#define DETAIL(ev, f, ...)                                                               \
	do {                                                                             \
		if ((ev)->detail)                                                        \
			lm_textf((ev)->text[f], sizeof((ev)->text[f]), __VA_ARGS__);     \
	} while (0)

/* idf of the posting's skill i: by symbol in fast mode, else by id (the
 * same value). */
static double
pskill_idf(
    const lm_score_env *env, const lm_posting_prep *pp, const struct fast *fx, size_t i)
{
	if (fx != NULL)
		return fast_idf(fx, fx->psym != NULL ? fx->psym[i] : pp->skills[i].sym);
	return lm_skill_idf(env->stats, pp->skills[i].id);
}

/* Known skills of a kind whose idf the cap of unknown ones is the median
 * of (a posting holds at most LM_RECORD_SKILLS_MAX; the first ones count). */
#define CAP_SKILLS 128

/* Inserts x into the sorted v[0 .. *n) (room for CAP_SKILLS), ignoring it
 * when full. */
static void
sorted_add(double *v, size_t *n, double x)
{
	size_t k;

	if (*n >= CAP_SKILLS)
		return;
	for (k = *n; k > 0 && v[k - 1] > x; k--)
		v[k] = v[k - 1];
	v[k] = x;
	(*n)++;
}

/* The median of the sorted v[0 .. n); INFINITY when n is 0 (no cap). */
static double
median(const double *v, size_t n)
{
	if (n == 0)
		return INFINITY;
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * The rule of unknown skills' idf caps (scoring.md, "Skills"): an unknown
 * skill counts with at most the median idf of the posting's known skills
 * of its own kind, required or preferred, so that listing a skill of one
 * kind never moves the importances of the other (a preferred skill never
 * changes R). Each cap is INFINITY (none) when the posting has no known
 * skill of that kind. Callers start with caps_init (which leaves the
 * arrays as they are: a scored pair must not clear 2 KiB), add every known
 * skill's idf with caps_add, then read the caps with caps_get.
 */
struct idf_caps {
	double known[2][CAP_SKILLS]; /* [preferred]: sorted idfs */
	size_t n[2];
};

static void
caps_init(struct idf_caps *c)
{
	c->n[0] = c->n[1] = 0;
}

static void
caps_add(struct idf_caps *c, bool preferred, double idf)
{
	sorted_add(c->known[preferred], &c->n[preferred], idf);
}

static void
caps_get(const struct idf_caps *c, double cap[2])
{
	cap[0] = median(c->known[0], c->n[0]);
	cap[1] = median(c->known[1], c->n[1]);
}

void
lm_unknown_idf_caps(const lm_score_env *env, const lm_posting_prep *pp,
    const struct fast *fx, double cap[2])
{
	struct idf_caps c;
	bool unknown = false;

	cap[0] = cap[1] = INFINITY;
	for (size_t i = 0; i < pp->n_skills; i++)
		unknown |= pp->skills[i].unknown;
	if (!unknown)
		return;
	caps_init(&c);
	for (size_t i = 0; i < pp->n_skills; i++)
		if (!pp->skills[i].unknown)
			caps_add(&c, pp->skills[i].preferred, pskill_idf(env, pp, fx, i));
	caps_get(&c, cap);
}

/* The sums of importance of a posting's required and preferred skills, and
 * of those the candidate has; skills_value combines them. */
struct sksum {
	double req, req_have, pref, pref_have;
};

static void
sksum_add(struct sksum *s, double imp, bool preferred, bool have)
{
	if (preferred) {
		s->pref += imp;
		s->pref_have += have ? imp : 0;
	} else {
		s->req += imp;
		s->req_have += have ? imp : 0;
	}
}

/* R + (1 - R) * P * share; *r (may be NULL) receives R. A posting whose
 * skills are all preferred counts them as required. Returns -1 when the
 * feature is absent (no importance at all). */
static double
skills_value(struct sksum *s, double share, double *r)
{
	double rv;

	if (!(s->req > 0)) {
		s->req = s->pref;
		s->req_have = s->pref_have;
		s->pref = s->pref_have = 0;
	}
	if (!(s->req > 0))
		return -1;
	rv = clamp01(s->req_have / s->req);
	if (r != NULL)
		*r = rv;
	if (!(s->pref > 0))
		return rv;
	return clamp01(rv + (1 - rv) * clamp01(s->pref_have / s->pref) * share);
}

double
lm_skill_imp(const lm_score_env *env, const lm_posting_prep *pp, const struct fast *fx,
    size_t i, const double cap[2])
{
	double idf = pskill_idf(env, pp, fx, i);

	if (pp->skills[i].unknown && idf > cap[pp->skills[i].preferred])
		idf = cap[pp->skills[i].preferred];
	return pp->skills[i].w * idf;
}

/*
 * Why the shares bound the skills value (score.h, lm_posting_shares): with
 * the importances imp_i as feat_skills computes them, R = sum over the
 * required skills the candidate has of imp_i / req, P the same over the
 * preferred ones, and v = clamp01(R + (1 - R) * P * ps) <= R + P * ps for
 * R, P, ps >= 0: the sum over the skills the candidate has of imp_i / req
 * (required) or imp_i / pref * ps (preferred). A posting whose skills are
 * all preferred counts them as required (ps does not apply). The sums here
 * add in another order than feat_skills: callers add a slack.
 */
void
lm_posting_shares(
    const lm_posting_prep *pp, const double *idf, double preferred_share, double *out)
{
	struct idf_caps c;
	double cap[2], req = 0, pref = 0;

	caps_init(&c);
	for (size_t i = 0; i < pp->n_skills; i++)
		if (!pp->skills[i].unknown)
			caps_add(&c, pp->skills[i].preferred, idf[i]);
	caps_get(&c, cap);
	for (size_t i = 0; i < pp->n_skills; i++) {
		double e = idf[i];
		if (pp->skills[i].unknown && e > cap[pp->skills[i].preferred])
			e = cap[pp->skills[i].preferred];
		out[i] = pp->skills[i].w * e;
		if (pp->skills[i].preferred)
			pref += out[i];
		else
			req += out[i];
	}
	for (size_t i = 0; i < pp->n_skills; i++) {
		if (!(req > 0))
			out[i] = pref > 0 ? out[i] / pref : 0;
		else if (pp->skills[i].preferred)
			out[i] = pref > 0 ? out[i] / pref * preferred_share : 0;
		else
			out[i] /= req;
	}
}

/*
 * Coverage of the required skills R (importance-weighted), plus the
 * preferred ones' coverage P filling a share of the rest:
 * R + (1 - R) * P * preferred_share. A posting whose skills are all
 * preferred counts them as required. So a preferred skill only adds.
 */
static void
feat_skills(const struct pair *pr, struct eval *ev)
{
	const lm_profile_prep *cp = pr->cp;
	const lm_posting_prep *pp = pr->pp;
	const struct fast *fx = pr->fx;
	struct sksum sum = {0, 0, 0, 0};
	double cap[2], r = 0, v;
	size_t nh = 0;

	lm_unknown_idf_caps(pr->env, pp, fx, cap);
	/* Both paths add the same products in the same order (skills[] order). */
	for (size_t i = 0; i < pp->n_skills; i++) {
		double imp = lm_skill_imp(pr->env, pp, fx, i, cap);
		bool have =
		    fx != NULL
		        ? fast_has(fx, fx->psym != NULL ? fx->psym[i] : pp->skills[i].sym)
		        : cand_has(cp, pr->o, pp->skills[i].id, NULL);
		sksum_add(&sum, imp, pp->skills[i].preferred, have);
		nh += have;
	}
	v = skills_value(&sum, pr->env->model->params.preferred_share, &r);
	ev->sk_req = sum.req;
	ev->sk_pref = sum.pref;
	ev->sk_cap[0] = cap[0];
	ev->sk_cap[1] = cap[1];
	ev->sk_have = nh;
	if (pp->n_skills == 0 || v < 0)
		return;
	ev->present[LM_FEAT_SKILLS] = true;
	ev->value[LM_FEAT_SKILLS] = v;
	/* A share short of all (or above none) never prints as 100% (0%). */
	DETAIL(ev, LM_FEAT_SKILLS, "%zu of %zu skills, %s%% of the required importance",
	    nh, (size_t) pp->n_skills, lm_num_pair(100.0 * r, r < 0.5 ? 0 : 100, 0).a);
}

static void
feat_experience(const struct pair *pr, struct eval *ev)
{
	const lm_posting_prep *p = pr->pp;
	const struct ovr *o = pr->o;
	double need = p->key.min_years, y = cand_years(pr->cp, o);

	if (!experience_of(need, y, &ev->value[LM_FEAT_EXPERIENCE]))
		return;
	ev->present[LM_FEAT_EXPERIENCE] = true;
	if (ev->detail) {
		struct lm_num_pair yt = lm_num_pair(y, need, 1);
		DETAIL(ev, LM_FEAT_EXPERIENCE, "%s years of experience, %s wanted", yt.a,
		    yt.b);
	}
}

static void
feat_seniority(const struct pair *pr, struct eval *ev)
{
	const lm_model *m = pr->env->model;
	const lm_posting_prep *p = pr->pp;
	int a = (int) pr->cp->key.level, b = (int) p->key.level, d = a < b ? b - a : 0;

	if (!seniority_of(m, a, b, &ev->value[LM_FEAT_SENIORITY]))
		return;
	ev->present[LM_FEAT_SENIORITY] = true;
	if (a == b)
		DETAIL(ev, LM_FEAT_SENIORITY, "same level (%s)", lm_level_name(b));
	else if (d == 0)
		DETAIL(ev, LM_FEAT_SENIORITY, "candidate %s, at or above the job's %s",
		    lm_level_name(a), lm_level_name(b));
	else
		DETAIL(ev, LM_FEAT_SENIORITY, "candidate %s, job %s: %d level%s below",
		    lm_level_name(a), lm_level_name(b), d, d == 1 ? "" : "s");
}

static void
feat_salary(const struct pair *pr, struct eval *ev)
{
	const lm_model *m = pr->env->model;
	const lm_posting_prep *p = pr->pp;
	int64_t top = p->key.salary, want = pr->cp->key.salary;

	if (!salary_of(m, top, want, &ev->value[LM_FEAT_SALARY]))
		return;
	ev->present[LM_FEAT_SALARY] = true;
	if (want <= top) {
		DETAIL(ev, LM_FEAT_SALARY, "desired %lld a year, job pays up to %lld",
		    (long long) want, (long long) top);
	} else {
		double excess = (double) (want - top) / (double) top;
		if (ev->detail) {
			struct lm_num_pair pct = lm_num_pair(100.0 * excess, 0.0, 0);
			DETAIL(ev, LM_FEAT_SALARY,
			    "desired %lld a year is %s%% above the job's %lld",
			    (long long) want, pct.a, (long long) top);
		}
	}
}

/* How the best pair of locations of two records meets, by name (worst
 * first). */
enum { PLACE_NONE, PLACE_COUNTRY, PLACE_CITY };

static void
feat_location(const struct pair *pr, struct eval *ev)
{
	const lm_model *m = pr->env->model;
	const lm_profile_prep *cp = pr->cp;
	const lm_posting_prep *pp = pr->pp;
	const CandidateProfile *c = cp->rec;
	const JobPosting *p = pp->rec;
	double sum = 0;
	int parts = 0;
	char a[LM_EXPLAIN_TEXT_MAX / 2] = "", b[LM_EXPLAIN_TEXT_MAX / 2] = "";

	int prem = pp->key.remote, crem = cp->key.remote;
	bool relocate = (cp->key.flags & KEY_RELOCATE) != 0;

	if (prem >= 1 && prem <= 3 && crem >= 1 && crem <= 3) {
		sum += remote_fit[prem][crem];
		parts++;
		if (ev->detail)
			lm_textf(a, sizeof(a), "%s job, prefers %s", lm_remote_name(prem),
			    lm_remote_name(crem));
	}
	if (prem == LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE) {
		int fit = remote_region_fit(cp, pp);
		if (fit >= 0) {
			double v = fit ? 1.0 : (relocate ? m->params.relocate_credit : 0);
			sum += v;
			parts++;
			if (ev->detail) {
				char allowed[LM_EXPLAIN_TEXT_MAX / 4];
				remote_countries_text(p, allowed, sizeof(allowed));
				lm_textf(b, sizeof(b), "remote work from %s: %s", allowed,
				    fit ? "allowed where the candidate is"
				        : "needs relocation");
			}
		}
	} else if (pp->has_country && cp->has_country && by_distance(cp, pp)) {
		double d = nearest_km(pp, cp, NULL, NULL), km = m->params.commute_km;
		double v = d <= km
		               ? 1.0 - (1.0 - m->params.location_country_credit) * d / km
		               : (relocate ? m->params.relocate_credit : 0);
		sum += clamp01(v);
		parts++;
		if (ev->detail)
			lm_textf(b, sizeof(b), "%s km from the nearest job location%s",
			    lm_num_pair(d, km, 0).a, d <= km ? "" : ": needs relocation");
	} else if (pp->has_country && cp->has_country) {
		/* The best pair of locations: PLACE_CITY (same country and
		 * city, or a side without a city) over PLACE_COUNTRY (another
		 * city); a maximum, so the order of the pairs does not matter.
		 * The case, not the value, names the detail: the credits may
		 * equal each other or 1. */
		int best = PLACE_NONE;
		double v;
		if (pp->locs_packed && cp->locs_packed) {
			for (size_t i = 0; i < pp->n_locs; i++) {
				const struct ploc *pl = &pp->locs[i];
				for (size_t j = 0; j < cp->n_locs; j++) {
					const struct ploc *cl = &cp->locs[j];
					int k;
					if (pl->country != cl->country)
						continue;
					k = (pl->city_h != 0 && cl->city_h != 0 &&
					        !lm_text_caseeq(pl->city, pl->city_h,
					            cl->city, cl->city_h))
					        ? PLACE_COUNTRY
					        : PLACE_CITY;
					if (k > best)
						best = k;
				}
			}
		} else if (pp->locs_packed) { /* without reading the record */
			for (size_t j = 0; j < c->n_locations; j++) {
				const Lunamatch__V1__Location *cl = c->locations[j];
				uint64_t cc;
				if (!loc_pack(cl, &cc))
					continue;
				for (size_t i = 0; i < pp->n_locs; i++) {
					const struct ploc *pl = &pp->locs[i];
					int k;
					if (pl->country != cc)
						continue;
					k = (pl->city_h != 0 && cl->city != NULL &&
					        cl->city[0] != '\0' &&
					        strcasecmp(pl->city, cl->city) != 0)
					        ? PLACE_COUNTRY
					        : PLACE_CITY;
					if (k > best)
						best = k;
				}
			}
		} else
			for (size_t i = 0; i < p->n_locations; i++) {
				const Lunamatch__V1__Location *pl = p->locations[i];
				if (pl == NULL)
					continue;
				for (size_t j = 0; j < cand_nlocs(cp); j++) {
					struct cloc cl;
					int k;
					if (!cand_loc(cp, j, &cl) ||
					    !lm_str_in(pl->country,
					        (char *const *) &cl.country, 1))
						continue;
					k = (pl->city && pl->city[0] && cl.city &&
					        cl.city[0] &&
					        strcasecmp(pl->city, cl.city) != 0)
					        ? PLACE_COUNTRY
					        : PLACE_CITY;
					if (k > best)
						best = k;
				}
			}
		v = best == PLACE_CITY      ? 1.0
		    : best == PLACE_COUNTRY ? m->params.location_country_credit
		                            : 0;
		if (v == 0 && relocate) {
			v = m->params.relocate_credit;
			best = PLACE_NONE; /* what counts is moving */
		}
		sum += v;
		parts++;
		if (ev->detail)
			lm_textf(b, sizeof(b), "%s",
			    best == PLACE_CITY      ? "same place"
			    : best == PLACE_COUNTRY ? "same country"
			    : relocate              ? "needs relocation"
			                            : "no common country");
	}
	if (parts == 0)
		return;
	ev->present[LM_FEAT_LOCATION] = true;
	ev->value[LM_FEAT_LOCATION] = clamp01(sum / parts);
	DETAIL(ev, LM_FEAT_LOCATION, "%s%s%s", a, (a[0] && b[0]) ? "; " : "", b);
}

static void
feat_education(const struct pair *pr, struct eval *ev)
{
	const lm_model *m = pr->env->model;
	const lm_posting_prep *p = pr->pp;
	const struct ovr *o = pr->o;
	int need = (int) p->key.education, have = cand_education(pr->cp, o);

	if (!education_of(m, need, have, &ev->value[LM_FEAT_EDUCATION]))
		return;
	ev->present[LM_FEAT_EDUCATION] = true;
	if (have >= need) {
		DETAIL(ev, LM_FEAT_EDUCATION, "%s meets %s", lm_education_name(have),
		    lm_education_name(need));
	} else {
		DETAIL(ev, LM_FEAT_EDUCATION, "%s, %d level%s below %s",
		    lm_education_name(have), need - have, need - have == 1 ? "" : "s",
		    lm_education_name(need));
	}
}

static void
feat_career(const struct pair *pr, struct eval *ev)
{
	const lm_profile_prep *cp = pr->cp;
	const lm_posting_prep *pp = pr->pp;
	const lm_posting_prep *p = pp; /* category and industry: copies of rec's */
	double sum = 0, best = 0;
	int parts = 0;
	char t1[64] = "", t2[64] = "", t3[64] = "";

	if (!(cp->key.flags & KEY_GOALS))
		return;
	if (cp->n_titles > 0 && pp->title.n > 0) {
		for (size_t i = 0; i < cp->n_titles; i++) {
			size_t hit = 0;
			for (size_t k = 0; k < cp->titles[i].n; k++)
				hit += lm_tokset_has(&pp->title, pp->title_h,
				    cp->titles[i].tok[k], cp->titles[i].h[k]);
			double v = (double) hit / (double) cp->titles[i].n;
			if (v > best)
				best = v;
		}
		sum += best;
		parts++;
		if (ev->detail)
			lm_textf(t1, sizeof(t1), "title %.0f%% like a desired one",
			    100.0 * best);
	}
	if (cp->n_goal_cat > 0 && p->cat_h != 0) {
		bool hit =
		    goal_hit(p->category, p->cat_h, cp->goal, cp->n_goal_cat, cp->goal_h);
		sum += hit;
		parts++;
		if (ev->detail)
			lm_textf(t2, sizeof(t2), "category %s",
			    hit ? "desired" : "not desired");
	}
	if (cp->n_goal_ind > 0 && p->ind_h != 0) {
		bool hit = goal_hit(p->industry, p->ind_h, cp->goal + cp->n_goal_cat,
		    cp->n_goal_ind, cp->goal_h + cp->n_goal_cat);
		sum += hit;
		parts++;
		if (ev->detail)
			lm_textf(t3, sizeof(t3), "industry %s",
			    hit ? "desired" : "not desired");
	}
	if (parts == 0)
		return;
	ev->present[LM_FEAT_CAREER_GOALS] = true;
	ev->value[LM_FEAT_CAREER_GOALS] = clamp01(sum / parts);
	DETAIL(ev, LM_FEAT_CAREER_GOALS, "%s%s%s%s%s", t1,
	    (t1[0] && (t2[0] || t3[0])) ? "; " : "", t2, (t2[0] && t3[0]) ? "; " : "",
	    t3);
}

static void
feat_freshness(const struct pair *pr, struct eval *ev)
{
	const lm_model *m = pr->env->model;
	const lm_posting_prep *p = pr->pp;
	int64_t now = pr->env->now;
	double days;

	if (!freshness_of(m, p->key.posted_at, now, &ev->value[LM_FEAT_FRESHNESS], &days))
		return;
	ev->present[LM_FEAT_FRESHNESS] = true;
	DETAIL(ev, LM_FEAT_FRESHNESS, "posted %.0f day%s ago", floor(days),
	    floor(days) == 1 ? "" : "s");
}

static void
feat_semantic(const struct pair *pr, struct eval *ev)
{
	const lm_profile_prep *c = pr->cp;
	const lm_posting_prep *p = pr->pp;
	double dot = 0, na = 0, nb = 0, cosv;

	if (c->n_embedding == 0 || c->n_embedding != p->n_embedding)
		return;
	for (size_t i = 0; i < c->n_embedding; i++) {
		double a = c->embedding[i], b = p->embedding[i];
		dot += a * b;
		na += a * a;
		nb += b * b;
	}
	if (!(na > 0) || !(nb > 0))
		return;
	cosv = dot / sqrt(na * nb);
	if (!isfinite(cosv))
		return;
	cosv = cosv > 1 ? 1 : (cosv < -1 ? -1 : cosv);
	ev->present[LM_FEAT_SEMANTIC] = true;
	ev->value[LM_FEAT_SEMANTIC] = clamp01((cosv + 1.0) / 2.0);
	DETAIL(ev, LM_FEAT_SEMANTIC, "embedding cosine %s", lm_num_pair(cosv, 1.0, 2).a);
}

/* The pair of keys a key bound reads; fx (may be NULL) answers the skill
 * questions of a profile scan. */
struct keypair {
	const lm_model *m;
	int64_t now;
	const lm_veto_key *c, *p;
	const struct fast *fx;
};

/* Bounds from the veto keys alone (c a profile's, p a posting's): true
 * when the feature may be present, with *ub its largest value (the exact
 * value for the features of a few scalars). */
static bool
skills_key(const struct keypair *kp, double *ub)
{
	const lm_veto_key *p = kp->p;
	const struct fast *fx = kp->fx;
	struct sksum sum = {0, 0, 0, 0};
	struct idf_caps caps;
	double have = 0, cap[2] = {INFINITY, INFINITY}, v;

	if (!(p->flags & KEY_SKILLS))
		return false;
	*ub = 1.0;
	if (fx != NULL && fx->imp != NULL) {
		/* A posting scan: the profile's skills weighed by the subject's
		 * importances (exact, summed in another order). They are the
		 * skills value only without preferred and unknown skills. */
		const lm_veto_key *c = kp->c;
		if (!(p->flags & KEY_SK_PLAIN) || !(c->flags & KEY_SK_KEYED) ||
		    !(fx->imp_tot > 0))
			return true;
		for (uint32_t i = 0; i < c->n_sk; i++)
			have += fx->imp[c->sk_sym[i]];
		*ub = clamp01(have / fx->imp_tot);
		return true;
	}
	if (fx == NULL || !(p->flags & KEY_SK_KEYED))
		return true;
	/* The skills of a bound posting with few skills are in its key: the
	 * exact value, as feat_skills computes it (the slack of the bound
	 * covers any rounding). */
	if (p->sk_unknown != 0) {
		caps_init(&caps);
		for (uint32_t i = 0; i < p->n_sk; i++)
			if (!(p->sk_unknown >> i & 1))
				caps_add(&caps, p->sk_pref >> i & 1,
				    fast_idf(fx, p->sk_sym[i]));
		caps_get(&caps, cap);
	}
	for (uint32_t i = 0; i < p->n_sk; i++) {
		double idf = fast_idf(fx, p->sk_sym[i]);
		bool pref = p->sk_pref >> i & 1;
		if ((p->sk_unknown >> i & 1) && idf > cap[pref])
			idf = cap[pref];
		sksum_add(&sum, (double) p->sk_w[i] * idf, p->sk_pref >> i & 1,
		    fast_has(fx, p->sk_sym[i]));
	}
	if ((v = skills_value(&sum, kp->m->params.preferred_share, NULL)) >= 0)
		*ub = v;
	return true;
}

static bool
experience_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	(void) m, (void) now;
	return experience_of(p->min_years, c->years, ub);
}

static bool
seniority_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	(void) now;
	return seniority_of(m, c->level, p->level, ub);
}

static bool
salary_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	(void) now;
	return salary_of(m, p->salary, c->salary, ub);
}

static bool
any_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	(void) m, (void) now, (void) c, (void) p;
	*ub = 1.0;
	return true;
}

static bool
education_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	(void) now;
	return education_of(m, p->education, c->education, ub);
}

static bool
career_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	(void) m, (void) now, (void) p;
	*ub = 1.0;
	return (c->flags & KEY_GOALS) != 0;
}

static bool
freshness_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	double days;

	(void) c;
	return freshness_of(m, p->posted_at, now, ub, &days);
}

static bool
semantic_key(const struct keypair *kp, double *ub)
{
	const lm_model *m = kp->m;
	int64_t now = kp->now;
	const lm_veto_key *c = kp->c, *p = kp->p;

	(void) m, (void) now;
	*ub = 1.0;
	return c->n_embedding > 0 && c->n_embedding == p->n_embedding;
}

/* Upper bounds of the features whose value is not cheap to compute: true
 * when the feature may be present, with *ub its largest value. */
static bool
location_bound(const struct pair *pr, double *ub)
{
	(void) pr;
	*ub = 1.0;
	return true;
}

static bool
career_bound(const struct pair *pr, double *ub)
{
	*ub = 1.0;
	return (pr->cp->key.flags & KEY_GOALS) != 0;
}

static bool
semantic_bound(const struct pair *pr, double *ub)
{
	*ub = 1.0;
	return pr->cp->n_embedding > 0 && pr->cp->n_embedding == pr->pp->n_embedding;
}

/* The soft features, in lm_feature order. A feature without a bound
 * function is cheap: its bound is its value. */
static const struct feature_rule {
	lm_feature f;
	void (*value)(const struct pair *pr, struct eval *ev);
	bool (*bound)(const struct pair *pr, double *ub); /* or NULL */
	bool (*key)(const struct keypair *kp, double *ub);
} features[LM_FEAT_COUNT] = {
    {LM_FEAT_SKILLS, feat_skills, NULL, skills_key},
    {LM_FEAT_EXPERIENCE, feat_experience, NULL, experience_key},
    {LM_FEAT_SENIORITY, feat_seniority, NULL, seniority_key},
    {LM_FEAT_SALARY, feat_salary, NULL, salary_key},
    {LM_FEAT_LOCATION, feat_location, location_bound, any_key},
    {LM_FEAT_EDUCATION, feat_education, NULL, education_key},
    {LM_FEAT_CAREER_GOALS, feat_career, career_bound, career_key},
    {LM_FEAT_FRESHNESS, feat_freshness, NULL, freshness_key},
    {LM_FEAT_SEMANTIC, feat_semantic, semantic_bound, semantic_key},
};

/* A weighted mean with values at most 1 only grows when a feature of value
 * 1 joins it: a feature that may be present counts with its bound and its
 * weight (skills with 1: it is the gate). The bound is the gate's bound
 * times that mean. The slack keeps rounding (the bound adds in another
 * order than the score) from putting a bound below its score. */
#define BOUND_SLACK 1e-9

static double
bound_mean(double gate, double num, double den)
{
	return den > 0 ? clamp01(gate * (num / den)) + BOUND_SLACK : 0;
}

double
lm_key_bound(const lm_model *m, int64_t now, const lm_veto_key *c, const lm_veto_key *p,
    const struct fast *fx)
{
	struct keypair kp = {m, now, c, p, fx};
	double num = 0, den = 0, gate = m->params.no_skills_gate;

	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		double w = m->weights[f], ub;
		if (!features[f].key(&kp, &ub))
			continue;
		if (f == LM_FEAT_SKILLS) {
			gate = ub;
			ub = 1.0;
		}
		if (w > 0) {
			num += w * ub;
			den += w;
		}
	}
	return bound_mean(gate, num, den);
}

static void
eval_reset(struct eval *ev)
{
	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		ev->present[f] = false;
		ev->value[f] = 0;
		ev->text[f][0] = '\0';
	}
	ev->score = 0;
	ev->wsum = 0;
	ev->gate = 0;
	ev->sk_req = ev->sk_pref = 0;
	ev->sk_cap[0] = ev->sk_cap[1] = INFINITY;
	ev->sk_have = 0;
}

void
lm_evaluate(const lm_score_env *env, const lm_profile_prep *cp, const lm_posting_prep *pp,
    const struct ovr *o, const struct fast *fx, struct vsink *vs, struct eval *ev)
{
	const lm_model *m = env->model;
	struct pair pr = {env, cp, pp, o, fx};
	double num = 0;

	eval_reset(ev);
	ev->eligible = (fx != NULL && fx->vetted) || check_vetoes(&pr, vs);
	if (!ev->eligible && vs == NULL)
		return;
	for (int f = 0; f < LM_FEAT_COUNT; f++)
		features[f].value(&pr, ev);
	ev->gate =
	    lm_skills_gate(m, ev->present[LM_FEAT_SKILLS], ev->value[LM_FEAT_SKILLS]);
	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		if (!ev->present[f] || !(m->weights[f] > 0))
			continue;
		num += m->weights[f] * (f == LM_FEAT_SKILLS ? 1.0 : ev->value[f]);
		ev->wsum += m->weights[f];
	}
	if (ev->eligible && ev->wsum > 0)
		ev->score = clamp01(ev->gate * (num / ev->wsum));
}

double
lm_skills_gate(const lm_model *m, bool present, double skills)
{
	return present ? skills : m->params.no_skills_gate;
}

double
lm_score_bound(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct fast *fx)
{
	const lm_model *m = env->model;
	struct pair pr = {env, cp, pp, &lm_no_ovr, fx};
	struct eval ev;
	double num = 0, den = 0;

	/* The gate is exact: skills is a cheap feature (it counts 1 in the
	 * mean, as in lm_evaluate). */
	eval_reset(&ev);
	ev.detail = false;
	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		double w = m->weights[f], ub;
		if (features[f].bound == NULL) {
			features[f].value(&pr, &ev);
			if (ev.present[f] && w > 0) {
				num += w * (f == LM_FEAT_SKILLS ? 1.0 : ev.value[f]);
				den += w;
			}
		} else if (w > 0 && features[f].bound(&pr, &ub)) {
			num += w * ub;
			den += w;
		}
	}
	return bound_mean(
	    lm_skills_gate(m, ev.present[LM_FEAT_SKILLS], ev.value[LM_FEAT_SKILLS]), num,
	    den);
}

double
lm_score_pair(const lm_score_env *env, const lm_profile_prep *c, const lm_posting_prep *p,
    bool *eligible)
{
	struct eval ev;

	ev.detail = false;
	lm_evaluate(env, c, p, &lm_no_ovr, NULL, NULL, &ev);
	if (eligible != NULL)
		*eligible = ev.eligible;
	return ev.score;
}
