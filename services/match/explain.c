/*
 * explain.c - explanations of one pair: feature contributions, matched and
 * missing skills, vetoes with reasons, improvements and a summary line, at
 * the level a request asks for; and the names of enum values for humans.
 * See score.h.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "score_int.h"

const char *
lm_level_name(int v)
{
	static const char *const n[] = {"unspecified", "intern", "entry", "associate",
	    "mid", "senior", "lead", "director", "executive"};
	return (v >= 0 && v <= 8) ? n[v] : "unknown";
}

const char *
lm_education_name(int v)
{
	static const char *const n[] = {"unspecified", "no degree", "high school",
	    "associate degree", "bachelor", "master", "doctorate"};
	return (v >= 0 && v <= 6) ? n[v] : "unknown";
}

const char *
lm_remote_name(int v)
{
	static const char *const n[] = {"unspecified", "onsite", "hybrid", "remote"};
	return (v >= 0 && v <= 3) ? n[v] : "unknown";
}

const char *
lm_employment_name(int v)
{
	static const char *const n[] = {"unspecified", "full-time", "part-time",
	    "contract", "temporary", "internship"};
	return (v >= 0 && v <= 5) ? n[v] : "unknown";
}

/* ==== evaluation =========================================================== */

void
lm_vtextf(char *buf, size_t len, const char *fmt, va_list ap)
{
	int r;

	if (len == 0)
		return;
	r = vsnprintf(buf, len, fmt, ap);
	if (r >= 0 && (size_t) r >= len)
		buf[lm_pb_utf8_fit(buf, len - 1)] = '\0';
}

void
lm_textf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lm_vtextf(buf, len, fmt, ap);
	va_end(ap);
}

struct lm_num_pair
lm_num_pair(double a, double b, int prec)
{
	struct lm_num_pair t;

	for (;; prec++) {
		snprintf(t.a, sizeof(t.a), "%.*f", prec, a);
		snprintf(t.b, sizeof(t.b), "%.*f", prec, b);
		if (a == b || strcmp(t.a, t.b) != 0)
			return t;
		if (prec >= 6) {
			/* Still alike, as s: the one on the far side of s from
			 * the other moves a last digit away; the other stays s. */
			double s = strtod(t.a, NULL), step = pow(10.0, -prec);
			double lo = a < b ? a : b, hi = a < b ? b : a;
			if (lo < s) {
				lo = s - step;
				hi = s;
			} else {
				lo = s;
				hi = s + step;
			}
			snprintf(t.a, sizeof(t.a), "%.*f", prec, a < b ? lo : hi);
			snprintf(t.b, sizeof(t.b), "%.*f", prec, a < b ? hi : lo);
			return t;
		}
	}
}

bool
lm_veto_row(struct vsink *vs, const char *code, const char *fmt, ...)
{
	Lunamatch__V1__Veto *v, **arr;
	char reason[LM_EXPLAIN_TEXT_MAX];
	va_list ap;

	if (vs == NULL)
		return false;
	if (vs->oom)
		return true;
	va_start(ap, fmt);
	lm_vtextf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	arr = realloc(vs->e->vetoes, (vs->e->n_vetoes + 1) * sizeof(*arr));
	if (arr == NULL) {
		vs->oom = 1;
		return true;
	}
	vs->e->vetoes = arr;
	if ((v = malloc(sizeof(*v))) == NULL) {
		vs->oom = 1;
		return true;
	}
	lunamatch__v1__veto__init(v);
	arr[vs->e->n_vetoes++] = v;
	if ((v->code = strdup(code)) == NULL || (v->reason = strdup(reason)) == NULL)
		vs->oom = 1;
	return true;
}

void
lm_failed_group_row(struct vsink *vs, const char *label)
{
	char **arr;

	if (vs->oom)
		return;
	arr = realloc(vs->e->failed_requirement_groups,
	    (vs->e->n_failed_requirement_groups + 1) * sizeof(*arr));
	if (arr == NULL) {
		vs->oom = 1;
		return;
	}
	vs->e->failed_requirement_groups = arr;
	if ((arr[vs->e->n_failed_requirement_groups] = strdup(label)) == NULL)
		vs->oom = 1;
	else
		vs->e->n_failed_requirement_groups++;
}

/* The display text of a requirement group: its label, else its skills. */
void
lm_group_text(const Lunamatch__V1__RequirementGroup *g, char *buf, size_t len)
{
	size_t w = 0;

	if (g->label != NULL && g->label[0] != '\0') {
		lm_textf(buf, len, "%s", g->label);
		return;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < g->n_skill_ids && w + 1 < len; i++) {
		const char *nm =
		    (g->n_skills == g->n_skill_ids && g->skills[i] && g->skills[i][0])
		        ? g->skills[i]
		        : g->skill_ids[i];
		int r = snprintf(buf + w, len - w, "%s%s", i ? ", " : "", nm ? nm : "");
		if (r < 0)
			break;
		w += (size_t) r;
	}
	if (w >= len) /* cut: before the last character if that was cut too */
		buf[w = lm_pb_utf8_fit(buf, len - 1)] = '\0';
	if (w == 0)
		snprintf(buf, len, "requirement");
}

struct skill_row {
	const struct pskill *s;
	const char *name; /* lm_pskill_name */
	double importance;
	double years;
	bool have;
};

/* Required skills first: a preferred skill's importance is its share of
 * the preferred ones, which fill only part of what the required leave
 * (scoring.md), so it does not compare with a required skill's. Then by
 * importance, descending, and by id. */
static int
cmp_skill_row(const void *a, const void *b)
{
	const struct skill_row *x = a, *y = b;

	if (x->s->preferred != y->s->preferred)
		return x->s->preferred ? 1 : -1;
	if (x->importance != y->importance)
		return x->importance > y->importance ? -1 : 1;
	return strcmp(x->s->id, y->s->id);
}

struct improve {
	char action[LM_EXPLAIN_TEXT_MAX];
	double gain;
};

static int
cmp_improve(const void *a, const void *b)
{
	const struct improve *x = a, *y = b;

	if (x->gain != y->gain)
		return x->gain > y->gain ? -1 : 1;
	return strcmp(x->action, y->action);
}

static Lunamatch__V1__SkillMatch *
new_skill_match(const struct skill_row *r)
{
	Lunamatch__V1__SkillMatch *sm = malloc(sizeof(*sm));

	if (sm == NULL)
		return NULL;
	lunamatch__v1__skill_match__init(sm);
	sm->importance = r->importance;
	sm->candidate_years = r->have ? (float) r->years : 0.0f;
	sm->preferred = r->s->preferred;
	if ((sm->skill_id = strdup(r->s->id)) == NULL ||
	    (sm->name = strdup(r->name)) == NULL) {
		protobuf_c_message_free_unpacked(&sm->base, NULL);
		return NULL;
	}
	return sm;
}

/* Matched and missing skills. A skill's importance is its share of the
 * importance of the required skills (of the preferred ones for a preferred
 * skill, when the posting has required ones), as ev counted them. */
static int
fill_skills(const lm_score_env *env, const lm_profile_prep *cp, const lm_posting_prep *pp,
    const struct eval *ev, bool full, Explanation *e)
{
	struct skill_row *rows;
	size_t n = pp->n_skills, nm = 0, nx = 0, cap = LM_EXPLAIN_SUMMARY_SKILLS;

	if (n == 0)
		return LM_OK;
	if ((rows = calloc(n, sizeof(*rows))) == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		double w = lm_skill_imp(env, pp, NULL, i, ev->sk_cap);
		double tot =
		    pp->skills[i].preferred && ev->sk_pref > 0 ? ev->sk_pref : ev->sk_req;
		rows[i].s = &pp->skills[i];
		rows[i].name = lm_pskill_name(pp, &pp->skills[i]);
		rows[i].importance = tot > 0 ? w / tot : 0;
		rows[i].have = lm_profile_has_skill(cp, pp->skills[i].id, &rows[i].years);
		if (rows[i].have)
			nm++;
		else
			nx++;
	}
	qsort(rows, n, sizeof(*rows), cmp_skill_row);
	if (!full) {
		nm = nm < cap ? nm : cap;
		nx = nx < cap ? nx : cap;
	}
	if ((nm > 0 &&
	        (e->matched_skills = calloc(nm, sizeof(*e->matched_skills))) == NULL) ||
	    (nx > 0 &&
	        (e->missing_skills = calloc(nx, sizeof(*e->missing_skills))) == NULL))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].have && e->n_matched_skills < nm) {
			if ((e->matched_skills[e->n_matched_skills] =
			            new_skill_match(&rows[i])) == NULL)
				goto nomem;
			e->n_matched_skills++;
		} else if (!rows[i].have && e->n_missing_skills < nx) {
			if ((e->missing_skills[e->n_missing_skills] =
			            new_skill_match(&rows[i])) == NULL)
				goto nomem;
			e->n_missing_skills++;
		}
	}
	free(rows);
	return LM_OK;
nomem:
	free(rows);
	return LM_ENOMEM;
}

/* The contributions of e added in their order, contribution k taken as c. */
static double
sum_with(const Explanation *e, size_t k, double c)
{
	double sum = 0;

	for (size_t i = 0; i < e->n_features; i++)
		sum += i == k ? c : e->features[i]->contribution;
	return sum;
}

/*
 * Gives contribution k the value next to its own whose in-order sum is
 * score exactly, if there is one. The sum never falls as one addend grows
 * (rounding is monotone), so a bisection over the non-negative doubles,
 * ordered as their bit patterns are, finds the least value whose sum
 * reaches score. Rounding to even can step over score (the sum may move by
 * two ulps when the addend moves by one): then there is none.
 */
static bool
settle_at(Explanation *e, size_t k, double score)
{
	double c = e->features[k]->contribution;
	double hi = c + 2 * fabs(score - sum_with(e, k, c)) + 4 * DBL_EPSILON * score;
	uint64_t lo_bits = 0, hi_bits; /* the answer is in (lo_bits, hi_bits] */

	if (!(sum_with(e, k, hi) >= score) || sum_with(e, k, 0) >= score)
		return false;
	memcpy(&hi_bits, &hi, sizeof(hi));
	while (hi_bits - lo_bits > 1) {
		uint64_t mid_bits = lo_bits + (hi_bits - lo_bits) / 2;
		double mid;
		memcpy(&mid, &mid_bits, sizeof(mid));
		if (sum_with(e, k, mid) >= score)
			hi_bits = mid_bits;
		else
			lo_bits = mid_bits;
	}
	memcpy(&c, &hi_bits, sizeof(c));
	if (sum_with(e, k, c) != score)
		return false;
	e->features[k]->contribution = c;
	return true;
}

/*
 * Makes the contributions, added in the order given, come to score exactly
 * (match.proto). Each is computed on its own, so their sum can miss the
 * score by an ulp or more, and exceed 1 when the score is 1. The last
 * contribution that has a share takes the rest, adjusted by an ulp or two
 * should the subtraction round. When no value of it gives the score
 * (rounding steps over it, or the rest would be negative: a last share of
 * 1e-200 beside a sum already past the score), the others are tried, the
 * largest first, each moved by the few ulps needed. A share of 0 stays 0.
 * Should none give the score exactly (not met in millions of random pairs
 * and models), the shares are left as computed.
 */
static void
settle_contributions(Explanation *e, double score)
{
	size_t n = e->n_features, last = n, order[LM_FEAT_COUNT], m = 0;
	double before = 0, c;

	for (size_t i = 0; i < n; i++)
		if (e->features[i]->contribution != 0)
			last = i;
	if (last == n)
		return;
	for (size_t i = 0; i < last; i++)
		before += e->features[i]->contribution;
	c = score - before;
	for (int k = 0; k < 4 && before + c != score; k++)
		c = nextafter(c, before + c < score ? INFINITY : -INFINITY);
	if (before + c == score && c >= 0) {
		e->features[last]->contribution = c;
		return;
	}
	for (size_t i = 0; i < n && m < LM_FEAT_COUNT; i++)
		if (i != last && e->features[i]->contribution != 0)
			order[m++] = i;
	for (size_t a = 1; a < m; a++) /* largest first; at most 8 */
		for (size_t b = a; b > 0 && e->features[order[b]]->contribution >
		                                e->features[order[b - 1]]->contribution;
		     b--) {
			size_t t = order[b];
			order[b] = order[b - 1];
			order[b - 1] = t;
		}
	for (size_t i = 0; i < m; i++)
		if (settle_at(e, order[i], score))
			return;
}

static int
fill_features(const lm_model *m, const struct eval *ev, Explanation *e)
{
	size_t n = 0;

	for (int f = 0; f < LM_FEAT_COUNT; f++)
		n += ev->present[f];
	if (n == 0)
		return LM_OK;
	if ((e->features = calloc(n, sizeof(*e->features))) == NULL)
		return LM_ENOMEM;
	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		Lunamatch__V1__FeatureContribution *fc;
		if (!ev->present[f])
			continue;
		if ((fc = malloc(sizeof(*fc))) == NULL)
			return LM_ENOMEM;
		lunamatch__v1__feature_contribution__init(fc);
		e->features[e->n_features++] = fc;
		fc->value = ev->value[f];
		fc->weight = m->weights[f];
		/* The score is gate * (weighted mean, skills counted as 1); a
		 * vetoed pair's is 0, and so is every share of it. */
		fc->contribution = (ev->eligible && ev->wsum > 0 && m->weights[f] > 0)
		                       ? ev->gate *
		                             (f == LM_FEAT_SKILLS ? 1.0 : ev->value[f]) *
		                             m->weights[f] / ev->wsum
		                       : 0;
		if ((fc->feature = strdup(lm_feature_name((lm_feature) f))) == NULL ||
		    (fc->detail = strdup(ev->text[f])) == NULL)
			return LM_ENOMEM;
	}
	settle_contributions(e, ev->score);
	return LM_OK;
}

/* Adds an improvement candidate when the change raises the score. */
static void try_improvement(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct ovr *o, double base, struct improve *list,
    size_t *n, size_t cap, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static void
try_improvement(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct ovr *o, double base, struct improve *list,
    size_t *n, size_t cap, const char *fmt, ...)
{
	struct eval ev;
	va_list ap;

	if (*n >= cap)
		return;
	ev.detail = false;
	lm_evaluate(env, cp, pp, o, NULL, NULL, &ev);
	if (!(ev.score - base > 1e-12))
		return;
	list[*n].gain = ev.score - base;
	va_start(ap, fmt);
	lm_vtextf(list[*n].action, sizeof(list[*n].action), fmt, ap);
	va_end(ap);
	(*n)++;
}

static bool
seen_id(const char **ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

/* What one try of the improvement search of pair (cp, pp) costs, in the
 * budget's units: a whole evaluation, whose skill comparisons are at most
 * skills + 1 (the tries less one), and whose other work grows with the
 * records too: the distances between their locations (computed twice, for
 * the veto and the feature) and the tokens of the desired titles looked up
 * in the posting's title. Each counts one unit, about what it costs. */
static uint64_t
try_cost(const lm_profile_prep *cp, const lm_posting_prep *pp, size_t tries)
{
	uint64_t cost = (uint64_t) tries - 1;

	if (cp->geo && pp->geo)
		cost += 2 * (uint64_t) cp->n_ll * pp->n_ll;
	for (size_t i = 0; i < cp->n_titles; i++)
		cost += cp->titles[i].n;
	return cost;
}

/* Charges the improvement search of a pair, at most tries evaluations of
 * per_try each, to *budget (lm_explain_pair_within); false when it does
 * not fit, and then empties the budget. NULL budget: no limit. */
static bool
charge(uint64_t *budget, size_t tries, uint64_t per_try)
{
	uint64_t cost = (uint64_t) tries * per_try;

	if (budget == NULL)
		return true;
	if (cost > *budget) {
		*budget = 0;
		return false;
	}
	*budget -= cost;
	return true;
}

static int
fill_improvements(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, double base, uint64_t *budget, Explanation *e)
{
	const JobPosting *p = pp->rec;
	const CandidateProfile *c = cp->rec;
	size_t cap = pp->n_skills + 2, n = 0, nseen = 0;
	struct improve *list;
	const char **seen;
	double need_years = 0;
	int rc = LM_OK;

	for (size_t i = 0; i < p->n_requirement_groups; i++)
		if (p->requirement_groups[i] != NULL)
			cap += p->requirement_groups[i]->n_skill_ids;
	if (!charge(budget, cap, try_cost(cp, pp, cap)))
		return LM_OK;
	if ((list = calloc(cap, sizeof(*list))) == NULL)
		return LM_ENOMEM;
	if ((seen = calloc(cap, sizeof(*seen))) == NULL) {
		free(list);
		return LM_ENOMEM;
	}
	for (size_t i = 0; i < pp->n_skills; i++) {
		struct ovr o = {pp->skills[i].id, -1, 0};
		if (lm_profile_has_skill(cp, o.add_skill, NULL))
			continue;
		seen[nseen++] = o.add_skill;
		try_improvement(env, cp, pp, &o, base, list, &n, cap, "add skill: %s",
		    lm_pskill_name(pp, &pp->skills[i]));
	}
	for (size_t i = 0; i < p->n_requirement_groups; i++) {
		const Lunamatch__V1__RequirementGroup *g = p->requirement_groups[i];
		if (g == NULL)
			continue;
		if (isfinite(g->min_years_experience) &&
		    g->min_years_experience > need_years)
			need_years = g->min_years_experience;
		for (size_t k = 0; k < g->n_skill_ids; k++) {
			struct ovr o = {g->skill_ids[k], -1, 0};
			const char *nm;
			if (o.add_skill == NULL || o.add_skill[0] == '\0' ||
			    seen_id(seen, nseen, o.add_skill) ||
			    lm_profile_has_skill(cp, o.add_skill, NULL))
				continue;
			seen[nseen++] = o.add_skill;
			nm = (g->n_skills == g->n_skill_ids && g->skills[k] &&
			         g->skills[k][0])
			         ? g->skills[k]
			         : o.add_skill;
			try_improvement(
			    env, cp, pp, &o, base, list, &n, cap, "add skill: %s", nm);
		}
	}
	if (isfinite(p->min_years_experience) && p->min_years_experience > need_years)
		need_years = p->min_years_experience;
	if (need_years > lm_rec_years(c)) {
		struct ovr o = {NULL, need_years, 0};
		try_improvement(env, cp, pp, &o, base, list, &n, cap,
		    "reach %s years of experience",
		    lm_num_pair(need_years, lm_rec_years(c), 1).a);
	}
	if (p->education >= 1 && p->education <= 6 && c->education >= 1 &&
	    c->education < p->education) {
		struct ovr o = {NULL, -1, (int) p->education};
		try_improvement(env, cp, pp, &o, base, list, &n, cap,
		    "reach education: %s", lm_education_name(p->education));
	}
	qsort(list, n, sizeof(*list), cmp_improve);
	if (n > LM_EXPLAIN_IMPROVEMENTS_MAX)
		n = LM_EXPLAIN_IMPROVEMENTS_MAX;
	if (n > 0 && (e->improvements = calloc(n, sizeof(*e->improvements))) == NULL)
		rc = LM_ENOMEM;
	for (size_t i = 0; rc == LM_OK && i < n; i++) {
		Lunamatch__V1__Improvement *im = malloc(sizeof(*im));
		if (im == NULL) {
			rc = LM_ENOMEM;
			break;
		}
		lunamatch__v1__improvement__init(im);
		e->improvements[e->n_improvements++] = im;
		im->score_gain = list[i].gain;
		if ((im->action = strdup(list[i].action)) == NULL)
			rc = LM_ENOMEM;
	}
	free(seen);
	free(list);
	return rc;
}

/* Appends to buf like lm_textf at offset *w, never past len. */
static void append(char *buf, size_t len, size_t *w, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
append(char *buf, size_t len, size_t *w, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*w + 1 >= len)
		return;
	va_start(ap, fmt);
	r = vsnprintf(buf + *w, len - *w, fmt, ap);
	va_end(ap);
	if (r > 0 && (size_t) r >= len - *w) {
		/* Cut as lm_textf cuts; full from now on, so that nothing
		 * shorter is appended after the cut. */
		buf[lm_pb_utf8_fit(buf, len - 1)] = '\0';
		*w = len - 1;
	} else if (r > 0)
		*w += (size_t) r;
}

/* One line: band and score, skills, the best and weakest other feature and
 * the most important missing skill; or the first veto. */
static void
make_summary(const lm_model *m, const lm_posting_prep *pp, const struct eval *ev,
    const Explanation *e, char *buf, size_t len)
{
	const char *band;
	double upper;
	int best = -1, worst = -1;
	size_t w = 0;

	buf[0] = '\0';
	if (!ev->eligible) {
		if (e->n_vetoes > 0)
			append(buf, len, &w, "not eligible: %s", e->vetoes[0]->reason);
		else
			append(buf, len, &w, "not eligible");
		if (e->n_vetoes > 1)
			append(buf, len, &w, " (+%zu more)", e->n_vetoes - 1);
		return;
	}
	if (!(ev->wsum > 0)) {
		append(buf, len, &w, "no comparable data");
		return;
	}
	band = ev->score >= 0.75   ? "strong"
	       : ev->score >= 0.5  ? "good"
	       : ev->score >= 0.25 ? "fair"
	                           : "weak";
	/* Printed so as not to read as the band above (0.7498 is no 0.75),
	 * nor as a perfect score (0.999 is no 1.00). */
	upper = ev->score >= 0.75   ? 1.0
	        : ev->score >= 0.5  ? 0.75
	        : ev->score >= 0.25 ? 0.5
	                            : 0.25;
	append(buf, len, &w, "%s match (%s)", band, lm_num_pair(ev->score, upper, 2).a);
	if (ev->present[LM_FEAT_SKILLS])
		append(
		    buf, len, &w, ": %zu/%zu skills", ev->sk_have, (size_t) pp->n_skills);
	for (int f = LM_FEAT_SKILLS + 1; f < LM_FEAT_COUNT; f++) {
		if (!ev->present[f] || !(m->weights[f] > 0))
			continue;
		if (best < 0 || ev->value[f] > ev->value[best])
			best = f;
		if (ev->value[f] < 1 && (worst < 0 || ev->value[f] < ev->value[worst]))
			worst = f;
	}
	if (best >= 0 && ev->value[best] >= 0.5 && best != worst)
		append(
		    buf, len, &w, "; best fit: %s", lm_feature_name((lm_feature) best));
	if (worst >= 0 && ev->value[worst] < 0.5)
		append(
		    buf, len, &w, "; weakest: %s", lm_feature_name((lm_feature) worst));
	if (e->n_missing_skills > 0)
		append(buf, len, &w, "; missing %s", e->missing_skills[0]->name);
}

int
lm_explain_pair(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, Lunamatch__V1__ExplainLevel level,
    Lunamatch__V1__Match **out)
{
	return lm_explain_pair_within(env, cp, pp, level, NULL, out);
}

int
lm_explain_pair_within(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, Lunamatch__V1__ExplainLevel level, uint64_t *budget,
    Lunamatch__V1__Match **out)
{
	const JobPosting *p;
	const CandidateProfile *c;
	Lunamatch__V1__Match *mt;
	Explanation *e;
	struct eval *ev = NULL;
	struct vsink vs;
	char summary[LM_EXPLAIN_TEXT_MAX];
	bool full = level == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	int rc = LM_ENOMEM;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (env == NULL || env->model == NULL || cp == NULL || pp == NULL)
		return LM_EINVAL;
	p = pp->rec;
	c = cp->rec;
	if ((mt = malloc(sizeof(*mt))) == NULL)
		return LM_ENOMEM;
	lunamatch__v1__match__init(mt);
	if ((mt->job_id = strdup(p->id ? p->id : "")) == NULL ||
	    (mt->candidate_id = strdup(c->id ? c->id : "")) == NULL ||
	    (mt->title = strdup(p->title ? p->title : "")) == NULL ||
	    (mt->company = strdup(p->company ? p->company : "")) == NULL)
		goto fail;
	if (level == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE) {
		mt->score = lm_score_pair(env, cp, pp, NULL);
		*out = mt;
		return LM_OK;
	}
	if ((e = malloc(sizeof(*e))) == NULL)
		goto fail;
	lunamatch__v1__explanation__init(e);
	mt->explanation = e;
	if ((ev = malloc(sizeof(*ev))) == NULL)
		goto fail;
	vs.e = e;
	vs.oom = 0;
	ev->detail = true;
	lm_evaluate(env, cp, pp, &lm_no_ovr, NULL, &vs, ev);
	if (vs.oom)
		goto fail;
	mt->score = ev->score;
	if ((e->model_version = strdup(env->model->version)) == NULL)
		goto fail;
	if (fill_features(env->model, ev, e) != LM_OK)
		goto fail;
	if (fill_skills(env, cp, pp, ev, full, e) != LM_OK)
		goto fail;
	if (full && fill_improvements(env, cp, pp, ev->score, budget, e) != LM_OK)
		goto fail;
	make_summary(env->model, pp, ev, e, summary, sizeof(summary));
	if ((e->summary = strdup(summary)) == NULL)
		goto fail;
	free(ev);
	*out = mt;
	return LM_OK;
fail:
	free(ev);
	protobuf_c_message_free_unpacked(&mt->base, NULL);
	return rc;
}

int
lm_score_records(const lm_score_env *env, const CandidateProfile *c, const JobPosting *p,
    double *score, bool *eligible)
{
	lm_profile_prep *cp = NULL;
	lm_posting_prep *pp = NULL;
	int rc;

	if (env == NULL || env->model == NULL || score == NULL)
		return LM_EINVAL;
	if ((rc = lm_profile_prep_new_request(c, &cp)) != LM_OK ||
	    (rc = lm_posting_prep_new_request(p, &pp)) != LM_OK)
		goto out;
	*score = lm_score_pair(env, cp, pp, eligible);
out:
	lm_profile_prep_free(cp);
	lm_posting_prep_free(pp);
	return rc;
}

int
lm_explain_records(const lm_score_env *env, const CandidateProfile *c,
    const JobPosting *p, Lunamatch__V1__ExplainLevel level, Lunamatch__V1__Match **out)
{
	lm_profile_prep *cp = NULL;
	lm_posting_prep *pp = NULL;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if ((rc = lm_profile_prep_new_request(c, &cp)) != LM_OK ||
	    (rc = lm_posting_prep_new_request(p, &pp)) != LM_OK)
		goto out;
	rc = lm_explain_pair(env, cp, pp, level, out);
out:
	lm_profile_prep_free(cp);
	lm_posting_prep_free(pp);
	return rc;
}
