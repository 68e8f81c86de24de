/*
 * indexref.c - the random data sets of the index's exactness tests and the
 * exhaustive reference scan they are compared with (indexref.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexref.h"
#include "lmtest.h"
#include "lunamatch/error.h"

/* ---- random records ------------------------------------------------------- */

static uint64_t
rnd(struct rng *r)
{
	uint64_t x = r->s; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 2685821657736338717ULL;
}

uint32_t
rn(struct rng *r, uint32_t n)
{
	return n == 0 ? 0 : (uint32_t) (rnd(r) % n);
}

bool
chance(struct rng *r, unsigned pct)
{
	return rn(r, 100) < pct;
}

static const char *const countries[] = {"US", "DE", "FR", "GB"};
static const char *const cities[] = {"Alpha", "Beta", "Gamma", ""};
/* Where the cities are when a location is geocoded: Beta 19 km from Alpha
 * (within commuting distance), Gamma 1,900 km away. */
static const double city_lat[] = {41.88, 42.05, 25.76},
                    city_lon[] = {-87.63, -87.68, -80.19};
static const char *const categories[] = {"Data", "Web", "ML", "Ops", ""};
static const char *const industries[] = {"Fintech", "Retail", "Health", ""};
static const char *const titles[] = {"Senior Data Engineer", "Web Developer",
    "ML Engineer", "Site Reliability Engineer", "Data Analyst", "Backend Engineer"};
const float weights[] = {0, 0.5f, 1, 2, 5};

uint32_t skill_vocab = 25;
uint32_t skills_max;
unsigned dup_pct = 10;
int64_t query_now = NOW;
bool edge_tops;
bool one_partition;
bool load_build;
static const uint32_t edge_top[] = {1, 1, 2, 3, 10, 64, 1000};
/* The same for the event lists, whose n goes up to LM_INDEX_EVENT_TOP_MAX:
 * above SEED_CANDS / 4 (index.c) the seed evaluates every record it
 * gathers in one batch. */
static const uint32_t event_top[] = {1, 2, 3, 10, 64, 1000, LM_INDEX_EVENT_TOP_MAX};
uint32_t event_n;

static char *
skill_id(struct rng *r)
{
	char buf[32];
	if (chance(r, 5))
		snprintf(buf, sizeof(buf), "x:rare%u", rn(r, 50));
	else
		snprintf(buf, sizeof(buf), "s%02u", rn(r, skill_vocab));
	return lmt_strdup(buf);
}

static Lunamatch__V1__Location **
gen_locations(struct rng *r, size_t *n)
{
	Lunamatch__V1__Location **v;

	*n = rn(r, 3);
	v = lmt_calloc(*n, sizeof(*v));
	for (size_t i = 0; i < *n; i++) {
		v[i] = lmt_calloc(1, sizeof(*v[i]));
		lunamatch__v1__location__init(v[i]);
		uint32_t k = rn(r, 4);
		v[i]->city = lmt_strdup(cities[k]);
		v[i]->country = lmt_strdup(countries[rn(r, 4)]);
		if (k < 3 && chance(r, 70)) { /* geocoded, with some scatter */
			v[i]->geocoded = true;
			v[i]->latitude = city_lat[k] + (double) rn(r, 100) / 1000.0;
			v[i]->longitude = city_lon[k] - (double) rn(r, 100) / 1000.0;
		}
	}
	return v;
}

static float *
gen_embedding(struct rng *r, size_t *n)
{
	float *v;

	*n = chance(r, 40) ? 4 : (chance(r, 15) ? 3 : 0);
	if (*n == 0)
		return NULL;
	v = lmt_calloc(*n, sizeof(float));
	for (size_t i = 0; i < *n; i++)
		v[i] = (float) rn(r, 2001) / 1000.0f - 1.0f;
	return v;
}

JobPosting *
gen_posting(struct rng *r, const char *id)
{
	JobPosting *p = lmt_calloc(1, sizeof(*p));

	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup(id);
	p->version = 1 + rn(r, 5);
	p->status = chance(r, 8) ? LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED
	                         : (Lunamatch__V1__PostingStatus) rn(r, 2);
	p->title = lmt_strdup(titles[rn(r, 6)]);
	p->company = lmt_strdup("Acme");
	p->category = lmt_strdup(categories[rn(r, 5)]);
	p->industry = lmt_strdup(industries[rn(r, 4)]);
	p->employment_type = (Lunamatch__V1__EmploymentType) rn(r, 6);
	p->experience_level = (Lunamatch__V1__ExperienceLevel) rn(r, 9);
	p->min_years_experience = chance(r, 50) ? 0 : (float) rn(r, 24) / 2.0f;
	p->education = (Lunamatch__V1__Education) rn(r, 7);
	p->locations = gen_locations(r, &p->n_locations);
	p->remote = (Lunamatch__V1__RemotePolicy) rn(r, 4);
	if (chance(r, 70)) {
		p->salary = lmt_calloc(1, sizeof(*p->salary));
		lunamatch__v1__salary__init(p->salary);
		p->salary->annual_min = 40000 + rn(r, 100000);
		p->salary->annual_max =
		    chance(r, 80) ? p->salary->annual_min + rn(r, 50000) : 0;
	}
	p->n_skills = skills_max ? rn(r, skills_max + 1) : rn(r, 9);
	p->skills = lmt_calloc(p->n_skills, sizeof(*p->skills));
	for (size_t i = 0; i < p->n_skills; i++) {
		Lunamatch__V1__PostingSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__posting_skill__init(s);
		s->skill_id = skill_id(r);
		s->name = lmt_strdup(s->skill_id);
		s->weight = skills_max && chance(r, 20) ? (chance(r, 50) ? 10.0f : 0.01f)
		                                        : weights[rn(r, 5)];
		s->preferred = chance(r, 30);
		p->skills[i] = s;
	}
	p->n_requirement_groups = chance(r, 60) ? 0 : rn(r, 3);
	p->requirement_groups =
	    lmt_calloc(p->n_requirement_groups, sizeof(*p->requirement_groups));
	for (size_t i = 0; i < p->n_requirement_groups; i++) {
		Lunamatch__V1__RequirementGroup *g = lmt_calloc(1, sizeof(*g));
		lunamatch__v1__requirement_group__init(g);
		g->label = lmt_strdup(chance(r, 50) ? "must" : "");
		g->min_years_experience = chance(r, 70) ? 0 : (float) rn(r, 8);
		g->n_skill_ids = rn(r, 4);
		g->skill_ids = lmt_calloc(g->n_skill_ids, sizeof(char *));
		for (size_t k = 0; k < g->n_skill_ids; k++)
			g->skill_ids[k] = skill_id(r);
		p->requirement_groups[i] = g;
	}
	p->posted_at = chance(r, 10) ? 0 : NOW - (int64_t) rn(r, 120 * DAY) + DAY;
	p->expires_at = chance(r, 60)   ? 0
	                : chance(r, 50) ? NOW - (int64_t) rn(r, 10 * DAY)
	                                : NOW + 1 + (int64_t) rn(r, 30 * DAY);
	p->embedding = gen_embedding(r, &p->n_embedding);
	if (chance(r, 40)) { /* where remote work is allowed */
		p->n_remote_countries = 1 + rn(r, 2);
		p->remote_countries = lmt_calloc(p->n_remote_countries, sizeof(char *));
		for (size_t i = 0; i < p->n_remote_countries; i++)
			p->remote_countries[i] = lmt_strdup(countries[rn(r, 4)]);
	}
	if (one_partition) {
		p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
		p->employment_type = 0;
	}
	return p;
}

Profile *
gen_profile(struct rng *r, const char *id)
{
	Profile *c = lmt_calloc(1, sizeof(*c));

	lunamatch__v1__candidate_profile__init(c);
	c->id = lmt_strdup(id);
	c->version = 1 + rn(r, 5);
	c->headline = lmt_strdup("Engineer");
	c->n_skills = skills_max ? rn(r, skills_max + 1) : rn(r, 13);
	c->skills = lmt_calloc(c->n_skills, sizeof(*c->skills));
	for (size_t i = 0; i < c->n_skills; i++) {
		Lunamatch__V1__CandidateSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__candidate_skill__init(s);
		s->skill_id = skill_id(r);
		s->years = (float) rn(r, 10);
		c->skills[i] = s;
	}
	c->years_experience = (float) rn(r, 40) / 2.0f;
	c->experience_level = (Lunamatch__V1__ExperienceLevel) rn(r, 9);
	c->education = (Lunamatch__V1__Education) rn(r, 7);
	c->locations = gen_locations(r, &c->n_locations);
	c->willing_to_relocate = chance(r, 30);
	c->remote = (Lunamatch__V1__RemotePolicy) rn(r, 4);
	if (chance(r, 70)) {
		c->desired_salary = lmt_calloc(1, sizeof(*c->desired_salary));
		lunamatch__v1__salary__init(c->desired_salary);
		c->desired_salary->annual_min = 30000 + rn(r, 150000);
	}
	if (chance(r, 30)) {
		c->n_desired_employment_types = 1 + rn(r, 2);
		c->desired_employment_types = lmt_calloc(
		    c->n_desired_employment_types, sizeof(*c->desired_employment_types));
		for (size_t i = 0; i < c->n_desired_employment_types; i++)
			c->desired_employment_types[i] =
			    (Lunamatch__V1__EmploymentType) (1 + rn(r, 5));
	}
	if (chance(r, 60)) {
		Lunamatch__V1__CareerGoals *g = lmt_calloc(1, sizeof(*g));
		lunamatch__v1__career_goals__init(g);
		g->n_desired_titles = rn(r, 3);
		g->desired_titles = lmt_calloc(g->n_desired_titles, sizeof(char *));
		for (size_t i = 0; i < g->n_desired_titles; i++)
			g->desired_titles[i] = lmt_strdup(titles[rn(r, 6)]);
		g->n_desired_categories = rn(r, 3);
		g->desired_categories =
		    lmt_calloc(g->n_desired_categories, sizeof(char *));
		for (size_t i = 0; i < g->n_desired_categories; i++)
			g->desired_categories[i] = lmt_strdup(categories[rn(r, 4)]);
		g->n_desired_industries = rn(r, 2);
		g->desired_industries =
		    lmt_calloc(g->n_desired_industries, sizeof(char *));
		for (size_t i = 0; i < g->n_desired_industries; i++)
			g->desired_industries[i] = lmt_strdup(industries[rn(r, 3)]);
		c->career_goals = g;
	}
	c->embedding = gen_embedding(r, &c->n_embedding);
	if (one_partition) {
		c->remote = 0;
		c->willing_to_relocate = true;
	}
	return c;
}

/* A deep copy through the wire form, optionally under another id. */
void *
dup_msg(const ProtobufCMessage *m, const char *new_id)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = lmt_calloc(len, 1);
	ProtobufCMessage *c;

	protobuf_c_message_pack(m, buf);
	c = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	free(buf);
	if (c == NULL)
		abort();
	if (new_id != NULL) {
		/* id is field 1 of both records: the first char * after base. */
		char **idp = (char **) (void *) ((char *) c + sizeof(ProtobufCMessage));
		free(*idp);
		*idp = lmt_strdup(new_id);
	}
	return c;
}

void
free_msg(void *m)
{
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- the reference: an exhaustive scan ------------------------------------- */

static int
cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

void
world_stats(struct world *w)
{
	lm_skill_stats_free(w->stats);
	assert_int_equal(lm_skill_stats_new(&w->stats), LM_OK);
	for (size_t i = 0; i < w->np; i++) {
		const JobPosting *p = w->posts[i];
		if (lm_skill_stats_counts(p))
			assert_int_equal(lm_skill_stats_add(w->stats, w->pp[i]), LM_OK);
	}
}

void
world_free(struct world *w)
{
	for (size_t i = 0; i < w->np; i++) {
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
	}
	for (size_t i = 0; i < w->nc; i++) {
		lm_profile_prep_free(w->cp[i]);
		free_msg(w->profs[i]);
	}
	free(w->posts);
	free(w->pp);
	free(w->profs);
	free(w->cp);
	lm_skill_stats_free(w->stats);
	memset(w, 0, sizeof(*w));
}

/* Eligible pairs of one subject, best first. n_out: their number; vetoed:
 * the number of vetoed ones. */
struct ref *
reference(const struct world *w, const lm_model *m, int64_t now, const lm_filters *f,
    const lm_profile_prep *cp, const lm_posting_prep *pp, size_t *n_out, size_t *vetoed)
{
	size_t total = cp != NULL ? w->np : w->nc, n = 0;
	struct ref *v = lmt_calloc(total, sizeof(*v));
	lm_score_env env = {m, w->stats, now, f};

	*vetoed = 0;
	for (size_t i = 0; i < total; i++) {
		bool ok;
		double s = cp != NULL ? lm_score_pair(&env, cp, w->pp[i], &ok)
		                      : lm_score_pair(&env, w->cp[i], pp, &ok);
		if (!ok) {
			(*vetoed)++;
			continue;
		}
		v[n].score = s;
		v[n].id = cp != NULL ? w->posts[i]->id : w->profs[i]->id;
		v[n].version = cp != NULL ? w->posts[i]->version : w->profs[i]->version;
		n++;
	}
	qsort(v, n, sizeof(*v), cmp_ref);
	*n_out = n;
	return v;
}

size_t compared_matches, compared_ties, explained_no_overlap, compared_eligible;

/* Compares a response's matches with the first k of the reference. */
void
compare(Lunamatch__V1__Match **got, size_t n_got, const struct ref *want, size_t n_want,
    uint32_t k, bool jobs)
{
	size_t n = n_want < k ? n_want : k;

	assert_int_equal(n_got, n);
	for (size_t i = 0; i < n; i++) {
		const char *id = jobs ? got[i]->job_id : got[i]->candidate_id;
		if (strcmp(id, want[i].id) != 0 || got[i]->score != want[i].score)
			fail_msg("rank %zu: got %s %.17g, want %s %.17g", i + 1, id,
			    got[i]->score, want[i].id, want[i].score);
		assert_int_equal(got[i]->rank, i + 1);
		compared_matches++;
		if (i > 0 && want[i - 1].score == want[i].score)
			compared_ties++;
	}
}

/* `vetoed` is exact when a query returned fewer matches than asked (then
 * nothing was pruned); otherwise it counts the vetoed records the query
 * found, never more than there are. */
void
check_vetoed(uint64_t got, size_t want, size_t n_matches, uint32_t top_k)
{
	if (n_matches < (top_k ? top_k : 10))
		assert_int_equal(got, want);
	else
		assert_true(got <= want);
}

static const char *const mixed_case[] = {"us", "De", "FR", "gb"};

Lunamatch__V1__JobFilters *
gen_job_filters(struct rng *r, struct jf_store *s, const struct world *w)
{
	Lunamatch__V1__JobFilters init = LUNAMATCH__V1__JOB_FILTERS__INIT;

	if (chance(r, 40))
		return NULL;
	s->f = init;
	s->f.remote_only = chance(r, 10);
	if (chance(r, 15)) {
		s->f.n_countries = 1 + rn(r, 2);
		for (size_t i = 0; i < s->f.n_countries; i++)
			s->countries[i] = (char *) mixed_case[rn(r, 4)];
		s->f.countries = s->countries;
	}
	if (chance(r, 15))
		s->f.min_annual_salary = rn(r, 150000);
	if (chance(r, 15)) {
		s->f.n_employment_types = 1 + rn(r, 2);
		for (size_t i = 0; i < s->f.n_employment_types; i++)
			s->types[i] = (Lunamatch__V1__EmploymentType) (1 + rn(r, 5));
		s->f.employment_types = s->types;
	}
	if (chance(r, 15)) {
		s->f.n_categories = 1;
		s->cats[0] = (char *) (chance(r, 50) ? "data" : "ML");
		s->f.categories = s->cats;
	}
	if (chance(r, 15))
		s->f.posted_after = NOW - (int64_t) rn(r, 60) * DAY;
	if (chance(r, 20) && w->np > 0) {
		s->f.n_exclude_ids = 1 + rn(r, 5);
		for (size_t i = 0; i < s->f.n_exclude_ids; i++)
			s->ex[i] = w->posts[rn(r, (uint32_t) w->np)]->id;
		s->f.exclude_ids = s->ex;
	}
	return &s->f;
}

Lunamatch__V1__CandidateFilters *
gen_cand_filters(struct rng *r, struct cf_store *s, const struct world *w)
{
	Lunamatch__V1__CandidateFilters init = LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;

	if (chance(r, 40))
		return NULL;
	s->f = init;
	s->f.remote_only = chance(r, 10);
	if (chance(r, 15)) {
		s->f.n_countries = 1 + rn(r, 2);
		for (size_t i = 0; i < s->f.n_countries; i++)
			s->countries[i] = (char *) mixed_case[rn(r, 4)];
		s->f.countries = s->countries;
	}
	if (chance(r, 15))
		s->f.min_years_experience = (float) rn(r, 15);
	if (chance(r, 15)) {
		s->f.n_employment_types = 1 + rn(r, 2);
		for (size_t i = 0; i < s->f.n_employment_types; i++)
			s->types[i] = (Lunamatch__V1__EmploymentType) (1 + rn(r, 5));
		s->f.employment_types = s->types;
	}
	if (chance(r, 20) && w->nc > 0) {
		s->f.n_exclude_ids = 1 + rn(r, 5);
		for (size_t i = 0; i < s->f.n_exclude_ids; i++)
			s->ex[i] = w->profs[rn(r, (uint32_t) w->nc)]->id;
		s->f.exclude_ids = s->ex;
	}
	return &s->f;
}

static Lunamatch__V1__ExplainLevel
gen_level(struct rng *r)
{
	return chance(r, 70)   ? LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE
	       : chance(r, 80) ? LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY
	                       : LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
}

static void
check_explanations(Lunamatch__V1__Match **m, size_t n, Lunamatch__V1__ExplainLevel level)
{
	for (size_t i = 0; i < n; i++) {
		if (level == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE) {
			assert_null(m[i]->explanation);
			continue;
		}
		assert_non_null(m[i]->explanation);
		assert_int_equal(m[i]->explanation->n_vetoes, 0);
		assert_true(strlen(m[i]->explanation->summary) > 0);
	}
}

/* Builds a data set of np postings and nc profiles (before updates and
 * removals) into an index and the world. */
void
build_n(struct rng *r, const lm_model *m, lm_index **idx, struct world *w, size_t np,
    size_t nc)
{
	char id[32];

	memset(w, 0, sizeof(*w));
	assert_int_equal(lm_index_new(m, idx), LM_OK);
	if (load_build)
		lm_index_loading(*idx);
	w->posts = lmt_calloc(np, sizeof(*w->posts));
	w->pp = lmt_calloc(np, sizeof(*w->pp));
	w->profs = lmt_calloc(nc, sizeof(*w->profs));
	w->cp = lmt_calloc(nc, sizeof(*w->cp));
	for (size_t i = 0; i < np; i++) {
		JobPosting *p;
		snprintf(id, sizeof(id), "j%04u.%zu", rn(r, 10000), i);
		/* Some postings are exact duplicates of others: equal scores. */
		p = (i > 0 && chance(r, dup_pct))
		        ? dup_msg(&w->posts[rn(r, (uint32_t) i)]->base, id)
		        : gen_posting(r, id);
		w->posts[i] = p;
		assert_int_equal(lm_posting_prep_new(p, &w->pp[i]), LM_OK);
		assert_int_equal(
		    lm_index_put_posting(*idx, dup_msg(&p->base, NULL), 0), LM_OK);
	}
	w->np = np;
	for (size_t i = 0; i < nc; i++) {
		Profile *c;
		snprintf(id, sizeof(id), "c%04u.%zu", rn(r, 10000), i);
		c = (i > 0 && chance(r, dup_pct))
		        ? dup_msg(&w->profs[rn(r, (uint32_t) i)]->base, id)
		        : gen_profile(r, id);
		w->profs[i] = c;
		assert_int_equal(lm_profile_prep_new(c, &w->cp[i]), LM_OK);
		assert_int_equal(
		    lm_index_put_profile(*idx, dup_msg(&c->base, NULL), 0), LM_OK);
	}
	w->nc = nc;

	/* Updates: new versions replace, removals drop; the world follows. */
	for (unsigned u = rn(r, 10); u > 0; u--) {
		size_t i = rn(r, (uint32_t) w->np);
		JobPosting *p = gen_posting(r, w->posts[i]->id);
		p->version = w->posts[i]->version + rn(r, 3);
		assert_int_equal(
		    lm_index_put_posting(*idx, dup_msg(&p->base, NULL), 0), LM_OK);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->posts[i] = p;
		assert_int_equal(lm_posting_prep_new(p, &w->pp[i]), LM_OK);
	}
	for (unsigned u = rn(r, 5); u > 0 && w->np > 1; u--) {
		size_t i = rn(r, (uint32_t) w->np);
		assert_int_equal(
		    lm_index_remove_posting(*idx, w->posts[i]->id, 0), LM_OK);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->np--;
		w->posts[i] = w->posts[w->np];
		w->pp[i] = w->pp[w->np];
	}
	for (unsigned u = rn(r, 3); u > 0 && w->nc > 1; u--) {
		size_t i = rn(r, (uint32_t) w->nc);
		assert_int_equal(
		    lm_index_remove_profile(*idx, w->profs[i]->id, 0), LM_OK);
		lm_profile_prep_free(w->cp[i]);
		free_msg(w->profs[i]);
		w->nc--;
		w->profs[i] = w->profs[w->nc];
		w->cp[i] = w->cp[w->nc];
	}
	if (load_build)
		assert_int_equal(lm_index_loaded(*idx), LM_OK);
}

/* Makes room in w for cap postings in all, for those its caller adds. */
void
world_reserve(struct world *w, size_t cap)
{
	w->posts = realloc(w->posts, cap * sizeof(*w->posts));
	w->pp = realloc(w->pp, cap * sizeof(*w->pp));
	assert_non_null(w->posts);
	assert_non_null(w->pp);
}

/* Builds a data set of random size. */
void
build(struct rng *r, const lm_model *m, lm_index **idx, struct world *w)
{
	size_t np = 1 + rn(r, 300), nc = 1 + rn(r, 50);

	build_n(r, m, idx, w, np, nc);
}

void
random_model(struct rng *r, lm_model *m)
{
	lm_model_defaults(m);
	if (chance(r, 50))
		return;
	do {
		for (int f = 0; f < LM_FEAT_COUNT; f++)
			m->weights[f] = chance(r, 20) ? 0 : (double) rn(r, 10) / 10.0;
	} while (m->weights[LM_FEAT_SKILLS] + m->weights[LM_FEAT_SALARY] == 0);
}

void
query_jobs(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	struct jf_store fs;
	lm_filters *f = NULL;
	lm_profile_prep *own = NULL;
	const lm_profile_prep *cp;
	Profile *inl = NULL;
	struct ref *want;
	size_t n, vetoed;
	char err[128];

	req.filters = gen_job_filters(r, &fs, w);
	req.top_k = chance(r, 10) ? 0 : 1 + rn(r, (uint32_t) w->np + 5);
	if (req.top_k > LM_INDEX_TOP_K_MAX)
		req.top_k = 1 + rn(r, 100);
	if (edge_tops)
		req.top_k = edge_top[rn(r, 7)];
	req.explain = gen_level(r);
	if (chance(r, 25)) {
		inl = gen_profile(r, "inline");
		req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE;
		req.profile = inl;
		assert_int_equal(lm_profile_prep_new(inl, &own), LM_OK);
		cp = own;
	} else {
		size_t i = rn(r, (uint32_t) w->nc);
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = w->profs[i]->id;
		cp = w->cp[i];
	}
	assert_int_equal(
	    lm_index_match_jobs(idx, &req, query_now, &resp, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_filters_for_jobs(req.filters, &f, err, sizeof(err)), LM_OK);
	want = reference(w, m, query_now, f, cp, NULL, &n, &vetoed);
	compared_eligible += n;
	compare(
	    resp->matches, resp->n_matches, want, n, req.top_k ? req.top_k : 10, true);
	assert_int_equal(resp->considered, w->np);
	check_vetoed(resp->vetoed, vetoed, resp->n_matches, req.top_k);
	assert_string_equal(resp->model_version, m->version);
	check_explanations(resp->matches, resp->n_matches, req.explain);
	free(want);
	lm_filters_free(f);
	lm_profile_prep_free(own);
	free_msg(inl);
	free_msg(resp);
}

void
query_candidates(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w)
{
	Lunamatch__V1__MatchCandidatesRequest req =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
	struct cf_store fs;
	lm_filters *f = NULL;
	lm_posting_prep *own = NULL;
	const lm_posting_prep *pp;
	JobPosting *inl = NULL;
	struct ref *want;
	size_t n, vetoed;
	char err[128];

	req.filters = gen_cand_filters(r, &fs, w);
	req.top_k = chance(r, 10) ? 0 : 1 + rn(r, (uint32_t) w->nc + 5);
	if (req.top_k > LM_INDEX_TOP_K_MAX)
		req.top_k = 1 + rn(r, 100);
	if (edge_tops)
		req.top_k = edge_top[rn(r, 7)];
	req.explain = gen_level(r);
	if (chance(r, 25)) {
		inl = gen_posting(r, "inline");
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_POSTING;
		req.posting = inl;
		assert_int_equal(lm_posting_prep_new(inl, &own), LM_OK);
		pp = own;
	} else {
		size_t i = rn(r, (uint32_t) w->np);
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = w->posts[i]->id;
		pp = w->pp[i];
	}
	assert_int_equal(
	    lm_index_match_candidates(idx, &req, query_now, &resp, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(
	    lm_filters_for_candidates(req.filters, &f, err, sizeof(err)), LM_OK);
	want = reference(w, m, query_now, f, NULL, pp, &n, &vetoed);
	compared_eligible += n;
	compare(
	    resp->matches, resp->n_matches, want, n, req.top_k ? req.top_k : 10, false);
	assert_int_equal(resp->considered, w->nc);
	check_vetoed(resp->vetoed, vetoed, resp->n_matches, req.top_k);
	for (size_t i = 0; i < resp->n_matches; i++) {
		assert_string_equal(
		    resp->matches[i]->title, "Engineer"); /* the headline */
		assert_string_equal(resp->matches[i]->company, "");
	}
	check_explanations(resp->matches, resp->n_matches, req.explain);
	free(want);
	lm_filters_free(f);
	lm_posting_prep_free(own);
	free_msg(inl);
	free_msg(resp);
}

void
query_top(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w)
{
	bool posting = chance(r, 50);
	size_t i = rn(r, (uint32_t) (posting ? w->np : w->nc)), n, vetoed, k = 0;
	uint32_t top = rn(r, 20);
	double min_score = (double) rn(r, 10) / 10.0;
	lm_top_list l;
	struct ref *want;

	if (posting) {
		assert_int_equal(lm_index_top_for_posting(
		                     idx, w->posts[i]->id, top, min_score, query_now, &l),
		    LM_OK);
		want = reference(w, m, query_now, NULL, NULL, w->pp[i], &n, &vetoed);
		assert_int_equal(l.subject_version, w->posts[i]->version);
	} else {
		assert_int_equal(lm_index_top_for_profile(
		                     idx, w->profs[i]->id, top, min_score, query_now, &l),
		    LM_OK);
		want = reference(w, m, query_now, NULL, w->cp[i], NULL, &n, &vetoed);
		assert_int_equal(l.subject_version, w->profs[i]->version);
	}
	if (edge_tops) {
		/* Asked again with a small or large n and min_score at a
		 * score of the reference (or one ulp beside it): ties with
		 * the bar. */
		lm_top_list_clear(&l);
		top = chance(r, 50) ? 1 + rn(r, 3) : event_top[rn(r, 7)];
		if (event_n > 0)
			top = event_n;
		min_score = n > 0 && chance(r, 80) ? want[rn(r, (uint32_t) n)].score
		                                   : (chance(r, 50) ? 0 : -1);
		if (chance(r, 20) && n > 0)
			min_score = nextafter(min_score, chance(r, 50) ? 2.0 : -2.0);
		assert_int_equal(posting ? lm_index_top_for_posting(idx, w->posts[i]->id,
		                               top, min_score, query_now, &l)
		                         : lm_index_top_for_profile(idx, w->profs[i]->id,
		                               top, min_score, query_now, &l),
		    LM_OK);
	}
	while (k < n && k < top && want[k].score >= min_score)
		k++;
	assert_int_equal(l.n, k);
	for (size_t j = 0; j < k; j++) {
		assert_string_equal(l.items[j].id, want[j].id);
		assert_true(l.items[j].score == want[j].score);
		assert_int_equal(l.items[j].version, want[j].version);
		/* A pair that no feature of the model compares (its weights
		 * zero) is eligible with nothing to say. */
		assert_true(strstr(l.items[j].summary, "match (") != NULL ||
		            (strcmp(l.items[j].summary, "no comparable data") == 0 &&
		                l.items[j].score == 0));
	}
	lm_top_list_clear(&l);
	free(want);
}

void
query_pair(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w)
{
	size_t i = rn(r, (uint32_t) w->nc), j = rn(r, (uint32_t) w->np);
	lm_score_env env = {m, w->stats, NOW, NULL};
	Lunamatch__V1__ExplainMatchResponse *ex = NULL;
	double s = -1, want;
	bool ok, want_ok;

	want = lm_score_pair(&env, w->cp[i], w->pp[j], &want_ok);
	assert_int_equal(
	    lm_index_pair_score(idx, w->profs[i]->id, w->posts[j]->id, NOW, &s, &ok),
	    LM_OK);
	assert_true(s == want);
	assert_int_equal(ok, want_ok);
	assert_int_equal(
	    lm_index_explain(idx, w->profs[i]->id, w->posts[j]->id, NOW, &ex, NULL),
	    LM_OK);
	assert_int_equal(ex->eligible, want_ok);
	assert_true(ex->match->score == want);
	assert_int_equal(ex->match->explanation->n_vetoes == 0, want_ok);
	for (size_t k = 0; k < ex->match->explanation->n_vetoes; k++)
		explained_no_overlap += strcmp(ex->match->explanation->vetoes[k]->code,
		                            LM_VETO_NO_OVERLAP) == 0;
	free_msg(ex);
}
