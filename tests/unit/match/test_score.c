/*
 * test_score.c - the scorer: every feature against hand-computed values,
 * every veto with its code and reason, the weighted mean over the features
 * present, explanation order, improvements and determinism.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/salary.h"
#include "score.h"
#include "score_int.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;
typedef Lunamatch__V1__Match Match;

#define NOW 1750000000LL
#define DAY 86400LL
#define EPS 1e-12

/* ---- record builders (everything malloc'd: freed with free_unpacked) ---- */

static void *
grow(void *arr, size_t n, size_t size)
{
	void *p = realloc(arr, (n + 1) * size);
	assert_non_null(p);
	return p;
}

static JobPosting *
post_new(const char *id)
{
	JobPosting *p = malloc(sizeof(*p));
	assert_non_null(p);
	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup(id);
	p->version = 1;
	p->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
	p->title = lmt_strdup("Engineer");
	return p;
}

static void
post_free(JobPosting *p)
{
	protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void
set_str(char **field, const char *s)
{
	if (*field != protobuf_c_empty_string)
		free(*field);
	*field = lmt_strdup(s);
}

/* A posting skill; its display name is the id upper-cased. */
static void
post_skill(JobPosting *p, const char *id, float w)
{
	Lunamatch__V1__PostingSkill *s = malloc(sizeof(*s));
	char name[64];
	size_t i;

	assert_non_null(s);
	lunamatch__v1__posting_skill__init(s);
	for (i = 0; id[i] && i + 1 < sizeof(name); i++)
		name[i] = (char) (id[i] >= 'a' && id[i] <= 'z' ? id[i] - 32 : id[i]);
	name[i] = '\0';
	s->skill_id = lmt_strdup(id);
	s->name = lmt_strdup(name);
	s->weight = w;
	p->skills = grow(p->skills, p->n_skills, sizeof(*p->skills));
	p->skills[p->n_skills++] = s;
}

/* A requirement group of up to 3 skill ids (NULL ones skipped); the
 * producer's names equal the ids. */
static void
post_group(JobPosting *p, const char *label, float years, const char *a, const char *b,
    const char *c)
{
	Lunamatch__V1__RequirementGroup *g = malloc(sizeof(*g));
	const char *ids[3] = {a, b, c};

	assert_non_null(g);
	lunamatch__v1__requirement_group__init(g);
	g->label = lmt_strdup(label);
	g->min_years_experience = years;
	for (int i = 0; i < 3; i++) {
		if (ids[i] == NULL)
			continue;
		g->skill_ids = grow(g->skill_ids, g->n_skill_ids, sizeof(char *));
		g->skill_ids[g->n_skill_ids++] = lmt_strdup(ids[i]);
		g->skills = grow(g->skills, g->n_skills, sizeof(char *));
		g->skills[g->n_skills++] = lmt_strdup(ids[i]);
	}
	p->requirement_groups = grow(p->requirement_groups, p->n_requirement_groups,
	    sizeof(*p->requirement_groups));
	p->requirement_groups[p->n_requirement_groups++] = g;
}

static Lunamatch__V1__Location *
loc_new(const char *city, const char *country)
{
	Lunamatch__V1__Location *l = malloc(sizeof(*l));
	assert_non_null(l);
	lunamatch__v1__location__init(l);
	if (city)
		l->city = lmt_strdup(city);
	l->country = lmt_strdup(country);
	return l;
}

static void
post_loc(JobPosting *p, const char *city, const char *country)
{
	p->locations = grow(p->locations, p->n_locations, sizeof(*p->locations));
	p->locations[p->n_locations++] = loc_new(city, country);
}

static Lunamatch__V1__Salary *
salary_new(int64_t amin, int64_t amax)
{
	Lunamatch__V1__Salary *s = malloc(sizeof(*s));
	assert_non_null(s);
	lunamatch__v1__salary__init(s);
	s->annual_min = amin;
	s->annual_max = amax;
	return s;
}

static void
emb(float **v, size_t *n, size_t dim, const float *vals)
{
	*v = malloc(dim * sizeof(float));
	assert_non_null(*v);
	memcpy(*v, vals, dim * sizeof(float));
	*n = dim;
}

static Profile *
prof_new(const char *id)
{
	Profile *c = malloc(sizeof(*c));
	assert_non_null(c);
	lunamatch__v1__candidate_profile__init(c);
	c->id = lmt_strdup(id);
	c->version = 1;
	c->headline = lmt_strdup("Someone");
	return c;
}

static void
prof_free(Profile *c)
{
	protobuf_c_message_free_unpacked(&c->base, NULL);
}

static void
prof_skill(Profile *c, const char *id, float years)
{
	Lunamatch__V1__CandidateSkill *s = malloc(sizeof(*s));
	assert_non_null(s);
	lunamatch__v1__candidate_skill__init(s);
	s->skill_id = lmt_strdup(id);
	s->name = lmt_strdup(id);
	s->years = years;
	c->skills = grow(c->skills, c->n_skills, sizeof(*c->skills));
	c->skills[c->n_skills++] = s;
}

static void
prof_loc(Profile *c, const char *city, const char *country)
{
	c->locations = grow(c->locations, c->n_locations, sizeof(*c->locations));
	c->locations[c->n_locations++] = loc_new(city, country);
}

static void
prof_emp(Profile *c, Lunamatch__V1__EmploymentType t)
{
	c->desired_employment_types = grow(c->desired_employment_types,
	    c->n_desired_employment_types, sizeof(*c->desired_employment_types));
	c->desired_employment_types[c->n_desired_employment_types++] = t;
}

static Lunamatch__V1__CareerGoals *
goals(Profile *c)
{
	if (c->career_goals == NULL) {
		c->career_goals = malloc(sizeof(*c->career_goals));
		assert_non_null(c->career_goals);
		lunamatch__v1__career_goals__init(c->career_goals);
	}
	return c->career_goals;
}

/* Gives l the coordinates ingest would have found. */
static void
geocode(Lunamatch__V1__Location *l, double lat, double lon)
{
	l->geocoded = true;
	l->latitude = lat;
	l->longitude = lon;
}

static void
add_str(char ***arr, size_t *n, const char *s)
{
	*arr = grow(*arr, *n, sizeof(char *));
	(*arr)[(*n)++] = lmt_strdup(s);
}

/* ---- scoring helpers ------------------------------------------------------ */

/* A model where only the listed feature weighs (1.0): score = its value. */
static lm_model
only(lm_feature f)
{
	lm_model m;
	lm_model_defaults(&m);
	memset(m.weights, 0, sizeof(m.weights));
	m.weights[f] = 1.0;
	return m;
}

static lm_score_env
env_of(const lm_model *m, const lm_skill_stats *st)
{
	lm_score_env env = {m, st, NOW, NULL};
	return env;
}

static Match *
explain(const lm_score_env *env, const Profile *c, const JobPosting *p,
    Lunamatch__V1__ExplainLevel level)
{
	Match *m = NULL;
	assert_int_equal(lm_explain_records(env, c, p, level, &m), LM_OK);
	assert_non_null(m);
	return m;
}

static void
match_free(Match *m)
{
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

static const Lunamatch__V1__FeatureContribution *
feature(const Match *m, const char *name)
{
	for (size_t i = 0; i < m->explanation->n_features; i++)
		if (strcmp(m->explanation->features[i]->feature, name) == 0)
			return m->explanation->features[i];
	return NULL;
}

/* The value of feature f for the pair (asserting it is present), and that
 * the score under a model weighing only f equals it. */
static double
value_of(lm_feature f, const Profile *c, const JobPosting *p)
{
	lm_model m = only(f);
	lm_score_env env = env_of(&m, NULL);
	Match *mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	const Lunamatch__V1__FeatureContribution *fc = feature(mt, lm_feature_name(f));
	const Lunamatch__V1__FeatureContribution *sk;
	double v, s, gate;
	bool ok;

	if (fc == NULL)
		fail_msg("feature %s missing", lm_feature_name(f));
	v = fc->value;
	/* The score is the skills gate times the mean (skills counted as 1). */
	sk = feature(mt, "skills");
	gate = sk != NULL ? sk->value : m.params.no_skills_gate;
	assert_int_equal(lm_score_records(&env, c, p, &s, &ok), LM_OK);
	assert_true(ok);
	assert_float_equal(s, f == LM_FEAT_SKILLS ? v : gate * v, EPS);
	assert_float_equal(mt->score, s, EPS);
	match_free(mt);
	return v;
}

static bool
has_feature(lm_feature f, const Profile *c, const JobPosting *p)
{
	lm_model m;
	lm_score_env env;
	Match *mt;
	bool r;

	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	r = feature(mt, lm_feature_name(f)) != NULL;
	match_free(mt);
	return r;
}

/* ---- corpus statistics ------------------------------------------------------ */

static lm_posting_prep *
prep_post(const JobPosting *p)
{
	lm_posting_prep *pp = NULL;
	assert_int_equal(lm_posting_prep_new(p, &pp), LM_OK);
	return pp;
}

/* A prep made for one request keeps its texts to itself: texts sent by
 * clients must not fill the process-wide pool of shared texts for good. A
 * stored record's prep shares them. */
static void
test_request_prep_shares_nothing(void **state)
{
	static const char cat[] = "request-only category 4711";
	JobPosting *p = post_new("req-1");
	lm_posting_prep *pp = NULL;

	(void) state;
	post_skill(p, "x:request-only-skill-4711", 1);
	set_str(&p->category, cat);
	assert_int_equal(lm_posting_prep_new_request(p, &pp), LM_OK);
	assert_string_equal(pp->category, cat);
	assert_ptr_not_equal(pp->category, lm_pb_share(cat));
	lm_posting_prep_free(pp);
	/* Also when the text is in the pool already. */
	assert_int_equal(lm_posting_prep_new_request(p, &pp), LM_OK);
	assert_ptr_not_equal(pp->category, lm_pb_share(cat));
	lm_posting_prep_free(pp);
	assert_int_equal(lm_posting_prep_new(p, &pp), LM_OK);
	assert_ptr_equal(pp->category, lm_pb_share(cat));
	lm_posting_prep_free(pp);
	post_free(p);
}

static void
test_idf(void **state)
{
	lm_skill_stats *st = NULL;
	JobPosting *p1 = post_new("p1"), *p2 = post_new("p2"), *p3 = post_new("p3");
	lm_posting_prep *a, *b, *c;

	(void) state;
	post_skill(p1, "a", 1);
	post_skill(p1, "b", 1);
	post_skill(p1, "a", 3); /* a duplicate id counts once */
	post_skill(p2, "a", 1);
	post_skill(p3, "c", 1);
	a = prep_post(p1);
	b = prep_post(p2);
	c = prep_post(p3);
	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	assert_float_equal(lm_skill_idf(st, "a"), 1.0, 0); /* no corpus: idf 1 */
	assert_float_equal(lm_skill_idf(NULL, "a"), 1.0, 0);
	assert_int_equal(lm_skill_stats_add(st, a), LM_OK);
	assert_int_equal(lm_skill_stats_add(st, b), LM_OK);
	assert_int_equal(lm_skill_stats_add(st, c), LM_OK);
	assert_int_equal(lm_skill_stats_docs(st), 3);
	assert_int_equal(lm_skill_stats_df(st, "a"), 2);
	assert_int_equal(lm_skill_stats_df(st, "b"), 1);
	assert_int_equal(lm_skill_stats_df(st, "zz"), 0);
	assert_float_equal(lm_skill_idf(st, "a"), log(1.0 + 3.0 / 3.0), EPS);
	assert_float_equal(lm_skill_idf(st, "b"), log(1.0 + 3.0 / 2.0), EPS);
	assert_float_equal(lm_skill_idf(st, "x:never-seen"), log(4.0), EPS);
	assert_true(lm_skill_idf(st, "x:never-seen") > lm_skill_idf(st, "b"));
	lm_skill_stats_remove(st, a);
	assert_int_equal(lm_skill_stats_docs(st), 2);
	assert_int_equal(lm_skill_stats_df(st, "a"), 1);
	assert_int_equal(lm_skill_stats_df(st, "b"), 0);
	lm_skill_stats_free(st);
	lm_posting_prep_free(a);
	lm_posting_prep_free(b);
	lm_posting_prep_free(c);
	post_free(p1);
	post_free(p2);
	post_free(p3);
}

/* ---- features ----------------------------------------------------------------- */

static void
test_skills(void **state)
{
	lm_skill_stats *st = NULL;
	JobPosting *c1 = post_new("c1"), *c2 = post_new("c2"), *c3 = post_new("c3");
	JobPosting *q = post_new("q");
	Profile *c = prof_new("c");
	lm_posting_prep *pp[3];
	lm_model m = only(LM_FEAT_SKILLS);
	lm_score_env env;
	double ia, ib, id, want, s;
	bool ok;
	Match *mt;

	(void) state;
	/* Corpus: N = 3, df(a) = 2, df(b) = 1, df(d) = 0. */
	post_skill(c1, "a", 1);
	post_skill(c1, "b", 1);
	post_skill(c2, "a", 1);
	post_skill(c3, "c", 1);
	pp[0] = prep_post(c1);
	pp[1] = prep_post(c2);
	pp[2] = prep_post(c3);
	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(lm_skill_stats_add(st, pp[i]), LM_OK);

	/* The posting asks for a (weight 2), b (1) and d (unset = 1). */
	post_skill(q, "a", 2);
	post_skill(q, "b", 1);
	post_skill(q, "d", 0);
	prof_skill(c, "a", 3);
	prof_skill(c, "d", 1);
	prof_skill(c, "zzz", 9); /* skills the posting does not ask for do not matter */
	ia = 2 * log(2.0);
	ib = 1 * log(2.5);
	id = 1 * log(4.0);
	want = (ia + id) / (ia + ib + id);
	env = env_of(&m, st);
	assert_int_equal(lm_score_records(&env, c, q, &s, &ok), LM_OK);
	assert_true(ok);
	assert_float_equal(s, want, EPS);

	mt = explain(&env, c, q, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(feature(mt, "skills")->value, want, EPS);
	{
		char detail[128];
		snprintf(detail, sizeof(detail),
		    "2 of 3 skills, %.0f%% of the required importance", 100 * want);
		assert_string_equal(feature(mt, "skills")->detail, detail);
	}
	/* Matched: a and d by importance; missing: b. Importances sum to 1. */
	assert_int_equal(mt->explanation->n_matched_skills, 2);
	assert_int_equal(mt->explanation->n_missing_skills, 1);
	assert_string_equal(mt->explanation->missing_skills[0]->skill_id, "b");
	assert_string_equal(mt->explanation->missing_skills[0]->name, "B");
	assert_float_equal(
	    mt->explanation->missing_skills[0]->importance, ib / (ia + ib + id), EPS);
	assert_float_equal(mt->explanation->missing_skills[0]->candidate_years, 0, 0);
	{
		double sum = mt->explanation->missing_skills[0]->importance;
		for (size_t i = 0; i < 2; i++)
			sum += mt->explanation->matched_skills[i]->importance;
		assert_float_equal(sum, 1.0, EPS);
	}
	for (size_t i = 0; i < 2; i++) {
		const Lunamatch__V1__SkillMatch *sm = mt->explanation->matched_skills[i];
		if (strcmp(sm->skill_id, "a") == 0)
			assert_float_equal(sm->candidate_years, 3, 0);
		else
			assert_float_equal(sm->candidate_years, 1, 0);
	}
	match_free(mt);

	/* Without a corpus every skill has idf 1: coverage by weight. */
	env = env_of(&m, NULL);
	assert_int_equal(lm_score_records(&env, c, q, &s, &ok), LM_OK);
	assert_float_equal(s, 3.0 / 4.0, EPS);

	/* No skills on the posting: the feature is left out. */
	{
		JobPosting *none = post_new("none");
		assert_false(has_feature(LM_FEAT_SKILLS, c, none));
		post_free(none);
	}
	for (int i = 0; i < 3; i++)
		lm_posting_prep_free(pp[i]);
	lm_skill_stats_free(st);
	post_free(c1);
	post_free(c2);
	post_free(c3);
	post_free(q);
	prof_free(c);
}

static void
test_experience(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");

	(void) state;
	assert_false(has_feature(LM_FEAT_EXPERIENCE, c, p)); /* no requirement */
	p->min_years_experience = 5;
	c->years_experience = 3;
	assert_float_equal(value_of(LM_FEAT_EXPERIENCE, c, p), 0.6, EPS);
	c->years_experience = 7;
	assert_float_equal(value_of(LM_FEAT_EXPERIENCE, c, p), 1.0, 0);
	c->years_experience = 0;
	assert_float_equal(value_of(LM_FEAT_EXPERIENCE, c, p), 0.0, 0);
	post_free(p);
	prof_free(c);
}

static void
test_seniority(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");

	(void) state;
	c->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR;
	assert_false(has_feature(LM_FEAT_SENIORITY, c, p));
	p->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR;
	assert_float_equal(value_of(LM_FEAT_SENIORITY, c, p), 1.0, 0);
	/* Levels above the job's never lower the value (no overqualification
	 * penalty: it would be an age proxy); each level below costs a step. */
	p->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_MID;
	assert_float_equal(value_of(LM_FEAT_SENIORITY, c, p), 1.0, 0);
	p->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_INTERN;
	assert_float_equal(value_of(LM_FEAT_SENIORITY, c, p), 1.0, 0);
	p->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_DIRECTOR;
	assert_float_equal(value_of(LM_FEAT_SENIORITY, c, p), 0.5, EPS);
	c->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_INTERN;
	p->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR;
	assert_float_equal(value_of(LM_FEAT_SENIORITY, c, p), 0.0, 0);
	c->experience_level = 0;
	assert_false(has_feature(LM_FEAT_SENIORITY, c, p));
	post_free(p);
	prof_free(c);
}

static void
test_salary(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");

	(void) state;
	c->desired_salary = salary_new(90000, 0);
	assert_false(has_feature(LM_FEAT_SALARY, c, p));
	p->salary = salary_new(80000, 100000);
	assert_float_equal(value_of(LM_FEAT_SALARY, c, p), 1.0, 0);
	c->desired_salary->annual_min = 50000; /* below the range also fits */
	assert_float_equal(value_of(LM_FEAT_SALARY, c, p), 1.0, 0);
	c->desired_salary->annual_min = 120000; /* 20% above: half */
	assert_float_equal(value_of(LM_FEAT_SALARY, c, p), 0.5, EPS);
	c->desired_salary->annual_min = 140000; /* 40% above: a quarter */
	assert_float_equal(value_of(LM_FEAT_SALARY, c, p), 0.25, EPS);
	p->salary->annual_max = 0; /* open-ended: the minimum is the top */
	p->salary->annual_min = 112000;
	assert_float_equal(
	    value_of(LM_FEAT_SALARY, c, p), pow(0.5, (28000.0 / 112000) / 0.2), EPS);
	c->desired_salary->annual_min = 0; /* unknown */
	assert_false(has_feature(LM_FEAT_SALARY, c, p));
	post_free(p);
	prof_free(c);
}

static void
test_location(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");

	(void) state;
	assert_false(has_feature(LM_FEAT_LOCATION, c, p));
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	post_loc(p, "Berlin", "DE");
	assert_false(has_feature(LM_FEAT_LOCATION, c, p)); /* candidate says nothing */
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	prof_loc(c, "berlin", "de");
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), 1.0, 0);
	/* Onsite preference for a hybrid job (0.75), same country other city (0.7). */
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE;
	set_str(&c->locations[0]->city, "Munich");
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), (0.75 + 0.7) / 2, EPS);
	/* A candidate location without a city accepts the whole country. */
	set_str(&c->locations[0]->city, "");
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), (0.75 + 1.0) / 2, EPS);
	/* Remote preference for a hybrid job (0.5); elsewhere, relocates (0.4). */
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	set_str(&c->locations[0]->country, "US");
	c->willing_to_relocate = true;
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), (0.5 + 0.4) / 2, EPS);
	/* A remote job located in DE allows remote work from DE only: the
	 * candidate in the US needs to relocate (0.4). */
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), (1.0 + 0.4) / 2, EPS);
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), (0.75 + 0.4) / 2, EPS);
	/* Open to the US too: allowed where the candidate is. */
	add_str(&p->remote_countries, &p->n_remote_countries, "US");
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), (0.75 + 1.0) / 2, EPS);
	/* No remote policies: only places. */
	p->remote = 0;
	c->remote = 0;
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), 0.4, EPS);
	post_free(p);
	prof_free(c);
}

/* The location detail of a pair compared by name, under model m. */
static void
expect_place(const lm_model *m, const Profile *c, const JobPosting *p, const char *want)
{
	lm_score_env env = env_of(m, NULL);
	Match *mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	const Lunamatch__V1__FeatureContribution *fc = feature(mt, "location");

	assert_non_null(fc);
	if (strcmp(fc->detail, want) != 0)
		fail_msg("location detail \"%s\", want \"%s\"", fc->detail, want);
	match_free(mt);
}

/*
 * The place detail says which case decided the value, whatever the credits
 * of the model (any in [0, 1]): not the case whose credit happens to equal
 * the value.
 */
static void
test_location_detail(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_model m = only(LM_FEAT_LOCATION);

	(void) state;
	post_loc(p, "Berlin", "DE");
	prof_loc(c, "Munich", "DE");
	expect_place(&m, c, p, "same country");
	set_str(&c->locations[0]->city, "Berlin");
	expect_place(&m, c, p, "same place");
	set_str(&c->locations[0]->country, "US");
	c->willing_to_relocate = true;
	expect_place(&m, c, p, "needs relocation");
	/* Relocating earns as much as the same country. */
	m.params.relocate_credit = m.params.location_country_credit;
	expect_place(&m, c, p, "needs relocation");
	/* Another city of the same country counts in full. */
	m.params.location_country_credit = 1.0;
	set_str(&c->locations[0]->country, "DE");
	set_str(&c->locations[0]->city, "Munich");
	expect_place(&m, c, p, "same country");
	post_free(p);
	prof_free(c);
}

static void
test_education(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");

	(void) state;
	c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_MASTER;
	assert_false(has_feature(LM_FEAT_EDUCATION, c, p));
	p->education = LUNAMATCH__V1__EDUCATION__EDUCATION_BACHELOR;
	assert_float_equal(value_of(LM_FEAT_EDUCATION, c, p), 1.0, 0);
	c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_ASSOCIATE;
	assert_float_equal(value_of(LM_FEAT_EDUCATION, c, p), 0.75, EPS);
	c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_HIGH_SCHOOL;
	assert_float_equal(value_of(LM_FEAT_EDUCATION, c, p), 0.5, EPS);
	c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_NONE;
	assert_float_equal(value_of(LM_FEAT_EDUCATION, c, p), 0.25, EPS);
	/* Education counts only where the posting asks for a degree: a
	 * minimum of "no degree" is not a requirement. */
	p->education = LUNAMATCH__V1__EDUCATION__EDUCATION_NONE;
	assert_false(has_feature(LM_FEAT_EDUCATION, c, p));
	p->education = LUNAMATCH__V1__EDUCATION__EDUCATION_HIGH_SCHOOL;
	assert_float_equal(value_of(LM_FEAT_EDUCATION, c, p), 0.75, EPS);
	c->education = 0;
	assert_false(has_feature(LM_FEAT_EDUCATION, c, p));
	post_free(p);
	prof_free(c);
}

static void
test_career_goals(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	Lunamatch__V1__CareerGoals *g;

	(void) state;
	set_str(&p->title, "Senior Data-Engineer (Payments)");
	set_str(&p->category, "Data");
	set_str(&p->industry, "Fintech");
	assert_false(has_feature(LM_FEAT_CAREER_GOALS, c, p));
	g = goals(c);
	add_str(&g->desired_titles, &g->n_desired_titles, "ML Engineer");
	assert_float_equal(
	    value_of(LM_FEAT_CAREER_GOALS, c, p), 0.5, EPS); /* engineer of 2 */
	add_str(&g->desired_titles, &g->n_desired_titles, "data engineer");
	assert_float_equal(
	    value_of(LM_FEAT_CAREER_GOALS, c, p), 1.0, 0); /* the best title */
	add_str(&g->desired_categories, &g->n_desired_categories, "DATA");
	add_str(&g->desired_industries, &g->n_desired_industries, "Retail");
	assert_float_equal(value_of(LM_FEAT_CAREER_GOALS, c, p), 2.0 / 3.0, EPS);
	set_str(&p->title, "Machine Learning Lead");
	/* titles: "ml engineer" 0/2, "data engineer" 0/2 -> 0; category 1; industry 0 */
	assert_float_equal(value_of(LM_FEAT_CAREER_GOALS, c, p), 1.0 / 3.0, EPS);
	post_free(p);
	prof_free(c);
}

static void
test_freshness(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");

	(void) state;
	assert_false(has_feature(LM_FEAT_FRESHNESS, c, p));
	p->posted_at = NOW - 30 * DAY;
	assert_float_equal(value_of(LM_FEAT_FRESHNESS, c, p), 0.5, EPS);
	p->posted_at = NOW - 60 * DAY;
	assert_float_equal(value_of(LM_FEAT_FRESHNESS, c, p), 0.25, EPS);
	p->posted_at = NOW - 15 * DAY;
	assert_float_equal(value_of(LM_FEAT_FRESHNESS, c, p), sqrt(0.5), EPS);
	p->posted_at = NOW + DAY; /* in the future: fresh */
	assert_float_equal(value_of(LM_FEAT_FRESHNESS, c, p), 1.0, 0);
	post_free(p);
	prof_free(c);
}

static void
test_semantic(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	const float x[] = {1, 0, 0}, y[] = {0, 1, 0}, x2[] = {2, 0, 0}, nx[] = {-1, 0, 0};
	const float xy[] = {1, 1, 0};

	(void) state;
	emb(&p->embedding, &p->n_embedding, 3, x);
	assert_false(has_feature(LM_FEAT_SEMANTIC, c, p));
	emb(&c->embedding, &c->n_embedding, 3, y);
	assert_float_equal(value_of(LM_FEAT_SEMANTIC, c, p), 0.5, EPS);
	free(c->embedding);
	emb(&c->embedding, &c->n_embedding, 3, x2);
	assert_float_equal(value_of(LM_FEAT_SEMANTIC, c, p), 1.0, EPS);
	free(c->embedding);
	emb(&c->embedding, &c->n_embedding, 3, nx);
	assert_float_equal(value_of(LM_FEAT_SEMANTIC, c, p), 0.0, EPS);
	free(c->embedding);
	emb(&c->embedding, &c->n_embedding, 3, xy);
	assert_float_equal(
	    value_of(LM_FEAT_SEMANTIC, c, p), (1.0 / sqrt(2.0) + 1) / 2, 1e-7);
	c->n_embedding = 2; /* dimensions differ: left out */
	assert_false(has_feature(LM_FEAT_SEMANTIC, c, p));
	c->n_embedding = 3;
	free(c->embedding);
	emb(&c->embedding, &c->n_embedding, 3,
	    (const float[]){0, 0, 0}); /* zero vector */
	assert_false(has_feature(LM_FEAT_SEMANTIC, c, p));
	post_free(p);
	prof_free(c);
}

/* The score is the skills gate (the skills value) times the weighted mean
 * of the features present, skills counted as 1 there; a missing feature's
 * weight is left out of the denominator. */
static void
test_weighted_mean(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_model m;
	lm_score_env env;
	Match *mt;
	double s, sum = 0;
	bool ok;

	(void) state;
	lm_model_defaults(&m);
	memset(m.weights, 0, sizeof(m.weights));
	m.weights[LM_FEAT_SKILLS] = 0.5;
	m.weights[LM_FEAT_EXPERIENCE] = 0.3;
	m.weights[LM_FEAT_SALARY] = 0.2;
	post_skill(p, "a", 1);
	post_skill(p, "b", 1);
	prof_skill(c, "a", 1);
	p->min_years_experience = 4;
	c->years_experience = 1;
	p->posted_at = NOW - DAY; /* freshness present but weight 0 */
	env = env_of(&m, NULL);
	assert_int_equal(lm_score_records(&env, c, p, &s, &ok), LM_OK);
	assert_float_equal(s, 0.5 * (0.5 * 1 + 0.3 * 0.25) / 0.8, EPS);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
	assert_null(feature(mt, "salary"));
	assert_non_null(feature(mt, "freshness"));
	assert_float_equal(feature(mt, "freshness")->contribution, 0, 0);
	assert_float_equal(feature(mt, "skills")->weight, 0.5, 0);
	assert_float_equal(feature(mt, "skills")->contribution, 0.5 * 0.5 / 0.8, EPS);
	for (size_t i = 0; i < mt->explanation->n_features; i++)
		sum += mt->explanation->features[i]->contribution;
	assert_float_equal(sum, mt->score, EPS);
	assert_string_equal(mt->explanation->model_version, "builtin");
	match_free(mt);

	/* Salary present now: it joins the mean. */
	c->desired_salary = salary_new(200000, 0);
	p->salary = salary_new(100000, 100000);
	assert_int_equal(lm_score_records(&env, c, p, &s, &ok), LM_OK);
	assert_float_equal(
	    s, 0.5 * (0.5 * 1 + 0.3 * 0.25 + 0.2 * pow(0.5, 1.0 / 0.2)), EPS);

	/* Nothing comparable: score 0, still eligible. */
	{
		JobPosting *bare = post_new("bare");
		Profile *nobody = prof_new("n");
		assert_int_equal(lm_score_records(&env, nobody, bare, &s, &ok), LM_OK);
		assert_true(ok);
		assert_float_equal(s, 0, 0);
		post_free(bare);
		prof_free(nobody);
	}
	post_free(p);
	prof_free(c);
}

/*
 * A vetoed pair scores 0, and its contributions, each a share of that
 * score, add up to it (match.proto, FeatureContribution): its features
 * still show their values and weights, but none contributes.
 */
static void
test_vetoed_contributions(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_model m;
	lm_score_env env;
	Match *mt;
	double sum = 0;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	post_skill(p, "a", 1);
	prof_skill(c, "a", 1);
	p->posted_at = NOW - DAY;
	p->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_vetoes, 1);
	assert_float_equal(mt->score, 0, 0);
	assert_non_null(feature(mt, "skills"));
	assert_float_equal(feature(mt, "skills")->value, 1, 0);
	assert_float_equal(feature(mt, "skills")->weight, 0.35, 0);
	assert_non_null(feature(mt, "freshness"));
	for (size_t i = 0; i < mt->explanation->n_features; i++)
		sum += mt->explanation->features[i]->contribution;
	assert_float_equal(sum, mt->score, EPS);
	match_free(mt);
	post_free(p);
	prof_free(c);
}

/* ---- vetoes -------------------------------------------------------------------- */

/* Asserts that the pair is vetoed with exactly the given codes, in order,
 * and that the first reason is `reason`. */
static void
expect_vetoes(const lm_filters *f, const Profile *c, const JobPosting *p,
    const char *reason, int n, ...)
{
	lm_model m;
	lm_score_env env;
	Match *mt;
	double s = -1;
	bool ok = true;
	va_list ap;

	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	env.filters = f;
	assert_int_equal(lm_score_records(&env, c, p, &s, &ok), LM_OK);
	assert_int_equal(ok, n == 0);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_vetoes, n);
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		assert_string_equal(
		    mt->explanation->vetoes[i]->code, va_arg(ap, const char *));
	va_end(ap);
	if (n > 0) {
		char want[300];
		assert_float_equal(s, 0, 0);
		assert_float_equal(mt->score, 0, 0);
		assert_string_equal(mt->explanation->vetoes[0]->reason, reason);
		snprintf(want, sizeof(want), "not eligible: %s", reason);
		assert_non_null(strstr(mt->explanation->summary, want));
		/* Features are still explained for a vetoed pair. */
		assert_true(mt->explanation->n_features > 0);
	} else {
		/* Eligible: the score is 0 only without a skill of the posting
		 * (the skills gate), as when only career goals point at it. */
		const Lunamatch__V1__FeatureContribution *sk = feature(mt, "skills");
		assert_true(s > 0 || (sk != NULL && sk->value == 0));
	}
	match_free(mt);
}

static void
test_vetoes(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");

	(void) state;
	p->posted_at = NOW - DAY;
	expect_vetoes(NULL, c, p, NULL, 0);

	p->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
	expect_vetoes(NULL, c, p, "the posting is closed", 1, LM_VETO_POSTING_CLOSED);
	p->status = 0; /* unspecified counts as open */
	expect_vetoes(NULL, c, p, NULL, 0);

	p->expires_at = NOW;
	expect_vetoes(NULL, c, p, "the posting expired", 1, LM_VETO_POSTING_EXPIRED);
	p->expires_at = NOW + 1;
	expect_vetoes(NULL, c, p, NULL, 0);

	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE;
	expect_vetoes(NULL, c, p, "onsite job; the candidate wants remote work", 1,
	    LM_VETO_REMOTE_POLICY);
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	expect_vetoes(NULL, c, p, NULL, 0);

	prof_emp(c, LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME);
	expect_vetoes(NULL, c, p, NULL, 0); /* the job's type is not stated */
	p->employment_type = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT;
	expect_vetoes(NULL, c, p,
	    "the job is contract; the candidate wants other employment types", 1,
	    LM_VETO_EMPLOYMENT_TYPE);
	prof_emp(c, LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT);
	expect_vetoes(NULL, c, p, NULL, 0);

	post_loc(p, "Berlin", "DE");
	prof_loc(c, NULL, "US");
	expect_vetoes(NULL, c, p,
	    "no job location in the candidate's countries, and the candidate does not "
	    "relocate",
	    1, LM_VETO_LOCATION);
	c->willing_to_relocate = true;
	expect_vetoes(NULL, c, p, NULL, 0);
	c->willing_to_relocate = false;
	/* A remote job allows the work from its own countries by default,
	 * from its remote_countries when it lists them. */
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	expect_vetoes(NULL, c, p,
	    "remote work only from DE; the candidate is in US and does not relocate", 1,
	    LM_VETO_LOCATION);
	add_str(&p->remote_countries, &p->n_remote_countries, "GB");
	add_str(&p->remote_countries, &p->n_remote_countries, "us");
	expect_vetoes(NULL, c, p, NULL, 0);
	c->willing_to_relocate = true;
	free(p->remote_countries[1]);
	p->remote_countries[1] = lmt_strdup("CA");
	expect_vetoes(NULL, c, p, NULL, 0); /* relocates */
	c->willing_to_relocate = false;
	expect_vetoes(NULL, c, p,
	    "remote work only from GB, CA; the candidate is in US and does not "
	    "relocate",
	    1, LM_VETO_LOCATION);
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	prof_loc(c, "Hamburg", "de");
	expect_vetoes(NULL, c, p, NULL, 0); /* one country in common */

	/* Requirement groups: any-of skills, and years of experience. */
	post_group(p, "Python, Scala or Java", 0, "python", "scala", "java");
	/* The candidate has no skill at all: no skill in common either. */
	expect_vetoes(NULL, c, p, "requires one of: Python, Scala or Java", 2,
	    LM_VETO_REQUIREMENT_GROUP, LM_VETO_NO_OVERLAP);
	prof_skill(c, "scala", 2);
	expect_vetoes(NULL, c, p, NULL, 0);
	post_group(p, "", 5, "k8s", NULL, NULL);
	c->years_experience = 6;
	expect_vetoes(NULL, c, p, "requires one of: k8s", 1, LM_VETO_REQUIREMENT_GROUP);
	prof_skill(c, "k8s", 1);
	c->years_experience = 2;
	expect_vetoes(NULL, c, p, "k8s: requires 5.0 years of experience (has 2.0)", 1,
	    LM_VETO_REQUIREMENT_GROUP);
	/* Just short: shown with the digits that tell the two apart. */
	c->years_experience = 4.96f;
	expect_vetoes(NULL, c, p, "k8s: requires 5.00 years of experience (has 4.96)", 1,
	    LM_VETO_REQUIREMENT_GROUP);
	c->years_experience = 5;
	expect_vetoes(NULL, c, p, NULL, 0);
	post_group(p, "Go", 0, NULL, NULL, NULL); /* no skills: satisfied by anyone */
	expect_vetoes(NULL, c, p, NULL, 0);

	/* Several vetoes at once, all reported; failed group labels listed. */
	p->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE;
	c->years_experience = 1;
	c->skills[0]->skill_id[0] = 'S'; /* "Scala": no longer "scala" */
	expect_vetoes(NULL, c, p, "the posting is closed", 4, LM_VETO_POSTING_CLOSED,
	    LM_VETO_REQUIREMENT_GROUP, LM_VETO_REQUIREMENT_GROUP, LM_VETO_REMOTE_POLICY);
	{
		lm_model m;
		lm_score_env env;
		Match *mt;
		lm_model_defaults(&m);
		env = env_of(&m, NULL);
		mt = explain(
		    &env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
		assert_int_equal(mt->explanation->n_failed_requirement_groups, 2);
		assert_string_equal(mt->explanation->failed_requirement_groups[0],
		    "Python, Scala or Java");
		assert_string_equal(mt->explanation->failed_requirement_groups[1], "k8s");
		assert_string_equal(mt->explanation->summary,
		    "not eligible: the posting is closed (+3 more)");
		match_free(mt);
	}
	post_free(p);
	prof_free(c);
}

static void
test_job_filters(void **state)
{
	JobPosting *p = post_new("p7");
	Profile *c = prof_new("c");
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	lm_filters *f = NULL;
	char err[128];
	char *countries[] = {"FR", "de"}, *cats[] = {"data"}, *ex[] = {"p1", "p7"};
	Lunamatch__V1__EmploymentType types[] = {
	    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME};

	(void) state;
	p->posted_at = NOW - DAY;
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	post_loc(p, "Berlin", "DE");
	set_str(&p->category, "Data");
	p->employment_type = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME;
	p->salary = salary_new(60000, 80000);

	jf.remote_only = 1;
#define WITH_FILTERS(reason, n)                                                          \
	do {                                                                             \
		assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_OK); \
		if (n)                                                                   \
			expect_vetoes(f, c, p, reason, 1, LM_VETO_FILTER);               \
		else                                                                     \
			expect_vetoes(f, c, p, NULL, 0);                                 \
		lm_filters_free(f);                                                      \
	} while (0)
	WITH_FILTERS("filter: remote jobs only; this one is hybrid", 1);
	jf.remote_only = 0;
	jf.n_countries = 2;
	jf.countries = countries;
	WITH_FILTERS(NULL, 0);
	jf.n_countries = 1;
	WITH_FILTERS("filter: no job location in the requested countries", 1);
	jf.n_countries = 0;
	jf.min_annual_salary = 80000;
	WITH_FILTERS(NULL, 0);
	jf.min_annual_salary = 80001;
	WITH_FILTERS("filter: pays at most 80000 a year, below 80001", 1);
	jf.min_annual_salary = 0;
	jf.n_employment_types = 1;
	jf.employment_types = types;
	WITH_FILTERS(NULL, 0);
	p->employment_type = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_PART_TIME;
	WITH_FILTERS("filter: employment type part-time not requested", 1);
	jf.n_employment_types = 0;
	jf.n_categories = 1;
	jf.categories = cats;
	WITH_FILTERS(NULL, 0); /* case-insensitive */
	set_str(&p->category, "Web");
	WITH_FILTERS("filter: category not requested", 1);
	jf.n_categories = 0;
	jf.posted_after = NOW - DAY;
	WITH_FILTERS(NULL, 0);
	jf.posted_after = NOW - DAY + 1;
	WITH_FILTERS("filter: posted before the requested date", 1);
	jf.posted_after = 0;
	jf.n_exclude_ids = 1;
	jf.exclude_ids = ex;
	WITH_FILTERS(NULL, 0);
	jf.n_exclude_ids = 2;
	WITH_FILTERS("filter: job excluded", 1);
#undef WITH_FILTERS

	/* Validation. */
	jf.n_exclude_ids = LM_FILTER_LIST_MAX + 1;
	assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_EINVAL);
	assert_non_null(strstr(err, "exclude_ids"));
	/* Strings: each at most LM_FILTER_ENTRY_MAX bytes, all together at
	 * most LM_FILTER_TEXT_MAX (a decision of the answer must fit the
	 * decision log); at the limits they pass. */
	{
		char *many[LM_FILTER_LIST_MAX];
		char *id = malloc(LM_FILTER_ENTRY_MAX + 2);
		size_t fit = LM_FILTER_TEXT_MAX / LM_FILTER_ENTRY_MAX;
		assert_non_null(id);
		memset(id, 'x', LM_FILTER_ENTRY_MAX + 1);
		id[LM_FILTER_ENTRY_MAX + 1] = '\0';
		for (size_t i = 0; i < LM_FILTER_LIST_MAX; i++)
			many[i] = id + 1; /* LM_FILTER_ENTRY_MAX bytes */
		jf.exclude_ids = many;
		jf.n_exclude_ids = fit;
		assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_OK);
		lm_filters_free(f);
		f = NULL;
		jf.n_exclude_ids = fit + 1;
		assert_int_equal(
		    lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_EINVAL);
		assert_non_null(strstr(err, "bytes of text"));
		assert_null(f);
		many[0] = id; /* one byte over */
		jf.n_exclude_ids = 1;
		assert_int_equal(
		    lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_EINVAL);
		assert_non_null(strstr(err, "exclude_ids[0]"));
		/* The longest category a posting may have can be asked for. */
		char cat[LM_RECORD_TEXT_MAX + 1], *bigcat[] = {cat};
		memset(cat, 'c', LM_RECORD_TEXT_MAX);
		cat[LM_RECORD_TEXT_MAX] = '\0';
		jf.n_exclude_ids = 0;
		jf.categories = bigcat;
		jf.n_categories = 1;
		assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_OK);
		lm_filters_free(f);
		f = NULL;
		jf.categories = NULL;
		jf.n_categories = 0;
		free(id);
	}
	jf.n_exclude_ids = 0;
	jf.min_annual_salary = -1;
	assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_EINVAL);
	assert_null(f);
	assert_int_equal(lm_filters_for_jobs(NULL, &f, err, sizeof(err)), LM_OK);
	assert_null(f);
	post_free(p);
	prof_free(c);
}

static void
test_candidate_filters(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c3");
	Lunamatch__V1__CandidateFilters cf = LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;
	lm_filters *f = NULL;
	char err[128];
	char *countries[] = {"GB"}, *ex[] = {"c3"};
	Lunamatch__V1__EmploymentType types[] = {
	    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT};

	(void) state;
	p->posted_at = NOW - DAY;
	prof_loc(c, "London", "GB");
	c->years_experience = 3;
#define WITH_FILTERS(reason, n)                                                          \
	do {                                                                             \
		assert_int_equal(                                                        \
		    lm_filters_for_candidates(&cf, &f, err, sizeof(err)), LM_OK);        \
		if (n)                                                                   \
			expect_vetoes(f, c, p, reason, 1, LM_VETO_FILTER);               \
		else                                                                     \
			expect_vetoes(f, c, p, NULL, 0);                                 \
		lm_filters_free(f);                                                      \
	} while (0)
	cf.n_countries = 1;
	cf.countries = countries;
	WITH_FILTERS(NULL, 0);
	set_str(&c->locations[0]->country, "IE");
	WITH_FILTERS("filter: no preferred location in the requested countries", 1);
	cf.n_countries = 0;
	cf.min_years_experience = 3;
	WITH_FILTERS(NULL, 0);
	cf.min_years_experience = 3.5f;
	WITH_FILTERS("filter: 3.0 years of experience, 3.5 requested", 1);
	cf.min_years_experience = 3.04f;
	WITH_FILTERS("filter: 3.00 years of experience, 3.04 requested", 1);
	cf.min_years_experience = 0;
	cf.n_employment_types = 1;
	cf.employment_types = types;
	WITH_FILTERS(NULL, 0); /* the candidate accepts any type */
	prof_emp(c, LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME);
	WITH_FILTERS(
	    "filter: candidate accepts none of the requested employment types", 1);
	cf.n_employment_types = 0;
	cf.remote_only = 1;
	WITH_FILTERS("filter: candidates preferring remote work only", 1);
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	WITH_FILTERS(NULL, 0);
	cf.remote_only = 0;
	cf.n_exclude_ids = 1;
	cf.exclude_ids = ex;
	WITH_FILTERS("filter: candidate excluded", 1);
	cf.n_exclude_ids = 0;
	/* A country that does not pack and a profile listing an employment
	 * type outside 0..63 (neither passes ingest) are compared on the
	 * record. */
	set_str(&c->locations[0]->country, "Republic-of-Narnia");
	countries[0] = "republic-of-narnia";
	cf.n_countries = 1;
	WITH_FILTERS(NULL, 0);
	countries[0] = "Republic-of-Narni";
	WITH_FILTERS("filter: no preferred location in the requested countries", 1);
	cf.n_countries = 0;
	prof_emp(c, (Lunamatch__V1__EmploymentType) 99);
	types[0] = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME;
	cf.n_employment_types = 1;
	WITH_FILTERS(NULL, 0);
	types[0] = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT;
	WITH_FILTERS(
	    "filter: candidate accepts none of the requested employment types", 1);
	cf.n_employment_types = 0;
#undef WITH_FILTERS
	cf.n_exclude_ids = 0;
	cf.min_years_experience = NAN;
	assert_int_equal(lm_filters_for_candidates(&cf, &f, err, sizeof(err)), LM_EINVAL);
	post_free(p);
	prof_free(c);
}

/* Checks that job and candidate filters both refuse employment_types[1] = v
 * with LM_EINVAL and exactly the reason want. */
static void
expect_bad_type(int v, const char *want)
{
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	Lunamatch__V1__CandidateFilters cf = LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;
	Lunamatch__V1__EmploymentType types[] = {
	    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME,
	    (Lunamatch__V1__EmploymentType) v};
	lm_filters *f = NULL;
	char err[128];

	jf.n_employment_types = cf.n_employment_types = 2;
	jf.employment_types = cf.employment_types = types;
	assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_EINVAL);
	assert_null(f);
	assert_string_equal(err, want);
	err[0] = '\0';
	assert_int_equal(lm_filters_for_candidates(&cf, &f, err, sizeof(err)), LM_EINVAL);
	assert_null(f);
	assert_string_equal(err, want);
}

/* An employment type of the filters that is UNSPECIFIED or not in the enum
 * is no record's: the caller's mistake, refused with a reason naming the
 * entry. Every other EmploymentType value passes. */
static void
test_filter_employment_types(void **state)
{
	const ProtobufCEnumDescriptor *d = &lunamatch__v1__employment_type__descriptor;
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	Lunamatch__V1__CandidateFilters cf = LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;
	Lunamatch__V1__EmploymentType types[1];
	lm_filters *f = NULL;
	char err[128];
	bool internship = false;

	(void) state;
	jf.n_employment_types = cf.n_employment_types = 1;
	jf.employment_types = cf.employment_types = types;
	for (unsigned i = 0; i < d->n_values; i++) {
		if (d->values[i].value ==
		    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_UNSPECIFIED)
			continue;
		types[0] = (Lunamatch__V1__EmploymentType) d->values[i].value;
		internship |= types[0] ==
		              LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_INTERNSHIP;
		assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_OK);
		assert_non_null(f);
		lm_filters_free(f);
		f = NULL;
		assert_int_equal(
		    lm_filters_for_candidates(&cf, &f, err, sizeof(err)), LM_OK);
		assert_non_null(f);
		lm_filters_free(f);
		f = NULL;
	}
	assert_true(internship); /* the largest value is among those tried */
	expect_bad_type(0, "filters.employment_types[1]: "
	                   "EMPLOYMENT_TYPE_UNSPECIFIED is not an employment type");
	expect_bad_type(99, "filters.employment_types[1]: unknown employment type 99");
	expect_bad_type(-1, "filters.employment_types[1]: unknown employment type -1");
}

/* No posting pays more than LM_SALARY_ANNUAL_MAX a year (ingest refuses a
 * salary that comes to more), so a higher min_annual_salary is refused with
 * a reason naming the field; the maximum itself passes. */
static void
test_filter_salary_max(void **state)
{
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	lm_filters *f = NULL;
	char err[128], want[128];

	(void) state;
	jf.min_annual_salary = LM_SALARY_ANNUAL_MAX;
	assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_OK);
	assert_non_null(f);
	lm_filters_free(f);
	f = NULL;
	jf.min_annual_salary = nextafter(LM_SALARY_ANNUAL_MAX, INFINITY);
	assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_EINVAL);
	assert_null(f);
	assert_non_null(strstr(err, "filters.min_annual_salary: "));
	jf.min_annual_salary = 1e300;
	assert_int_equal(lm_filters_for_jobs(&jf, &f, err, sizeof(err)), LM_EINVAL);
	assert_null(f);
	snprintf(want, sizeof(want),
	    "filters.min_annual_salary: 1e+300 is above %.0f, the most an annual "
	    "salary can be",
	    LM_SALARY_ANNUAL_MAX);
	assert_string_equal(err, want);
}

/* ---- explanations ------------------------------------------------------------------ */

static void
test_explanation_order(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_model m;
	lm_score_env env;
	Match *mt;
	const char *matched[] = {"z", "a", "c", "e", "f", "g"};
	const char *missing[] = {"y", "b", "d"};

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL); /* idf 1: importance = weight / sum of weights */
	post_skill(p, "c", 1);
	post_skill(p, "b", 1);
	post_skill(p, "z", 3);
	post_skill(p, "a", 1);
	post_skill(p, "y", 2);
	post_skill(p, "d", 1);
	post_skill(p, "g", 1);
	post_skill(p, "f", 1);
	post_skill(p, "e", 1);
	prof_skill(c, "g", 1);
	prof_skill(c, "e", 1);
	prof_skill(c, "c", 1);
	prof_skill(c, "f", 1);
	prof_skill(c, "a", 2.5f);
	prof_skill(c, "z", 4);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_matched_skills, 6);
	assert_int_equal(mt->explanation->n_missing_skills, 3);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(
		    mt->explanation->matched_skills[i]->skill_id, matched[i]);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(
		    mt->explanation->missing_skills[i]->skill_id, missing[i]);
	assert_float_equal(mt->explanation->matched_skills[0]->importance, 3.0 / 12, EPS);
	assert_float_equal(mt->explanation->matched_skills[1]->candidate_years, 2.5, 0);
	assert_string_equal(mt->title, "Engineer");
	assert_string_equal(mt->job_id, "p");
	assert_string_equal(mt->candidate_id, "c");
	assert_int_equal(mt->rank, 0);
	match_free(mt);

	/* SUMMARY: at most LM_EXPLAIN_SUMMARY_SKILLS each, the most important. */
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
	assert_int_equal(mt->explanation->n_matched_skills, LM_EXPLAIN_SUMMARY_SKILLS);
	for (size_t i = 0; i < LM_EXPLAIN_SUMMARY_SKILLS; i++)
		assert_string_equal(
		    mt->explanation->matched_skills[i]->skill_id, matched[i]);
	assert_int_equal(mt->explanation->n_improvements, 0);
	assert_non_null(strstr(mt->explanation->summary, "6/9 skills"));
	assert_non_null(strstr(mt->explanation->summary, "missing Y"));
	match_free(mt);
	/* UNSPECIFIED means SUMMARY. */
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_UNSPECIFIED);
	assert_int_equal(mt->explanation->n_matched_skills, LM_EXPLAIN_SUMMARY_SKILLS);
	match_free(mt);
	/* NONE: score only. */
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE);
	assert_null(mt->explanation);
	assert_true(mt->score > 0);
	match_free(mt);
	post_free(p);
	prof_free(c);
}

static void
test_improvements(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_model m;
	lm_score_env env;
	Match *mt;

	(void) state;
	lm_model_defaults(&m);
	memset(m.weights, 0, sizeof(m.weights));
	m.weights[LM_FEAT_SKILLS] = 0.6;
	m.weights[LM_FEAT_EXPERIENCE] = 0.3;
	m.weights[LM_FEAT_EDUCATION] = 0.1;
	env = env_of(&m, NULL);
	post_skill(p, "a", 1);
	post_skill(p, "b", 1);
	post_skill(p, "c", 2);
	prof_skill(c, "a", 1);
	p->min_years_experience = 4;
	c->years_experience = 1;
	p->education = LUNAMATCH__V1__EDUCATION__EDUCATION_MASTER;
	c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_BACHELOR;
	/* skills 1/4, experience 0.25, education 0.75 */
	/* score = skills * (0.6 + 0.3 * experience + 0.1 * education) */
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(mt->score, 0.25 * (0.6 + 0.3 * 0.25 + 0.1 * 0.75), EPS);
	assert_int_equal(mt->explanation->n_improvements, 4);
	assert_string_equal(mt->explanation->improvements[0]->action, "add skill: C");
	assert_float_equal(mt->explanation->improvements[0]->score_gain, 0.5 * 0.75, EPS);
	assert_string_equal(mt->explanation->improvements[1]->action, "add skill: B");
	assert_float_equal(
	    mt->explanation->improvements[1]->score_gain, 0.25 * 0.75, EPS);
	assert_string_equal(
	    mt->explanation->improvements[2]->action, "reach 4.0 years of experience");
	assert_float_equal(
	    mt->explanation->improvements[2]->score_gain, 0.25 * 0.3 * 0.75, EPS);
	assert_string_equal(
	    mt->explanation->improvements[3]->action, "reach education: master");
	assert_float_equal(
	    mt->explanation->improvements[3]->score_gain, 0.25 * 0.1 * 0.25, EPS);
	match_free(mt);

	/* Equal gains: ordered by action text. */
	p->skills[2]->weight = 1;
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_string_equal(mt->explanation->improvements[0]->action, "add skill: B");
	assert_string_equal(mt->explanation->improvements[1]->action, "add skill: C");
	assert_float_equal(mt->explanation->improvements[0]->score_gain,
	    mt->explanation->improvements[1]->score_gain, 0);
	assert_string_equal(
	    mt->explanation->improvements[2]->action, "reach 4.0 years of experience");
	match_free(mt);

	/* Years close to the candidate's print apart from them: 2.04 wanted
	 * is no "reach 2.0" for a candidate with 2.0. */
	p->min_years_experience = 2.04;
	c->years_experience = 2;
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	size_t years = mt->explanation->n_improvements;
	for (size_t i = 0; i < mt->explanation->n_improvements; i++)
		if (strncmp(mt->explanation->improvements[i]->action, "reach ", 6) == 0 &&
		    strstr(mt->explanation->improvements[i]->action, "years") != NULL)
			years = i;
	assert_true(years < mt->explanation->n_improvements);
	assert_string_equal(mt->explanation->improvements[years]->action,
	    "reach 2.04 years of experience");
	match_free(mt);
	p->min_years_experience = 4;
	c->years_experience = 1;

	/* A vetoed pair: the action that lifts the veto gains the whole score. */
	post_group(p, "Rust", 0, "rust", NULL, NULL);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(mt->score, 0, 0);
	assert_int_equal(mt->explanation->n_improvements, 1);
	assert_string_equal(mt->explanation->improvements[0]->action, "add skill: rust");
	assert_float_equal(mt->explanation->improvements[0]->score_gain,
	    (1.0 / 3) * (0.6 + 0.3 * 0.25 + 0.1 * 0.75), EPS);
	match_free(mt);
	post_free(p);
	prof_free(c);
}

/* lm_explain_pair_within at FULL with a budget of budget (UINT64_MAX: none);
 * *left gets what is left of it. */
static Match *
explain_within(const lm_score_env *env, const Profile *c, const JobPosting *p,
    Lunamatch__V1__ExplainLevel level, uint64_t budget, uint64_t *left)
{
	lm_profile_prep *cp = NULL;
	lm_posting_prep *pp = NULL;
	Match *m = NULL;

	assert_int_equal(lm_profile_prep_new_request(c, &cp), LM_OK);
	assert_int_equal(lm_posting_prep_new_request(p, &pp), LM_OK);
	assert_int_equal(lm_explain_pair_within(env, cp, pp, level,
	                     budget == UINT64_MAX ? NULL : &budget, &m),
	    LM_OK);
	*left = budget;
	lm_profile_prep_free(cp);
	lm_posting_prep_free(pp);
	return m;
}

/*
 * The improvements of FULL cost a pair its most, (skills + 2) tries of
 * (skills + 1) comparisons and the rest of an evaluation's work each, from
 * the query's budget: all of them when it
 * fits, none when it does not (and the budget is then spent, so no later
 * match of the query has any). Nothing else of the answer changes, and
 * the other levels cost nothing.
 */
static void
test_improvement_budget(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	const Lunamatch__V1__ExplainLevel full =
	    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	const uint64_t cost = 7 * 6; /* 5 skills, 2 of them a group's */
	lm_model m;
	lm_score_env env;
	Match *all, *mt;
	uint64_t left;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	post_skill(p, "a", 1);
	post_skill(p, "b", 1);
	post_skill(p, "c", 2);
	post_group(p, "Systems", 0, "rust", "go", NULL);
	prof_skill(c, "a", 1);
	prof_skill(c, "go", 1);
	p->min_years_experience = 4;
	c->years_experience = 1;

	all = explain_within(&env, c, p, full, UINT64_MAX, &left);
	assert_true(all->explanation->n_improvements >= 3);

	mt = explain_within(&env, c, p, full, cost, &left);
	assert_int_equal(left, 0);
	assert_int_equal(
	    mt->explanation->n_improvements, all->explanation->n_improvements);
	for (size_t i = 0; i < all->explanation->n_improvements; i++) {
		assert_string_equal(mt->explanation->improvements[i]->action,
		    all->explanation->improvements[i]->action);
		assert_true(mt->explanation->improvements[i]->score_gain ==
		            all->explanation->improvements[i]->score_gain);
	}
	match_free(mt);

	mt = explain_within(&env, c, p, full, cost + 5, &left);
	assert_int_equal(left, 5);
	assert_int_equal(
	    mt->explanation->n_improvements, all->explanation->n_improvements);
	match_free(mt);

	mt = explain_within(&env, c, p, full, cost - 1, &left);
	assert_int_equal(left, 0);
	assert_int_equal(mt->explanation->n_improvements, 0);
	assert_true(mt->score == all->score);
	assert_string_equal(mt->explanation->summary, all->explanation->summary);
	assert_int_equal(
	    mt->explanation->n_missing_skills, all->explanation->n_missing_skills);
	assert_int_equal(mt->explanation->n_features, all->explanation->n_features);
	match_free(mt);

	mt = explain_within(&env, c, p,
	    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, cost - 1, &left);
	assert_int_equal(left, cost - 1);
	match_free(mt);
	match_free(all);

	/* A try is a whole evaluation: the distances between the records'
	 * locations (3 x 3, twice) and the tokens of the desired titles (2 +
	 * 1) are charged too, so that records with many of them cannot make
	 * a query's improvements run for seconds under the skills' charge. */
	static const double ll[3][2] = {
	    {41.85003, -87.65005}, {42.04114, -87.69006}, {41.5, -87.5}};
	for (size_t i = 0; i < 3; i++) {
		post_loc(p, "Chicago", "US");
		geocode(p->locations[i], ll[i][0], ll[i][1]);
		prof_loc(c, "Evanston", "US");
		geocode(c->locations[i], ll[i][0], ll[i][1]);
	}
	add_str(
	    &goals(c)->desired_titles, &goals(c)->n_desired_titles, "Platform engineer");
	add_str(&goals(c)->desired_titles, &goals(c)->n_desired_titles, "Data");
	const uint64_t heavy = 7 * (6 + 2 * 3 * 3 + 3);
	all = explain_within(&env, c, p, full, UINT64_MAX, &left);
	assert_true(all->explanation->n_improvements >= 3);
	mt = explain_within(&env, c, p, full, heavy, &left);
	assert_int_equal(left, 0);
	assert_int_equal(
	    mt->explanation->n_improvements, all->explanation->n_improvements);
	match_free(mt);
	mt = explain_within(&env, c, p, full, heavy - 1, &left);
	assert_int_equal(left, 0);
	assert_int_equal(mt->explanation->n_improvements, 0);
	match_free(mt);
	match_free(all);
	post_free(p);
	prof_free(c);
}

/* Same inputs, same bytes; the order of a candidate's skills is irrelevant. */
static void
test_determinism(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c1 = prof_new("c"), *c2 = prof_new("c");
	lm_model m;
	lm_score_env env;
	const char *ids[] = {"k", "b", "x:weird", "a", "q"};
	uint8_t *b1, *b2;
	size_t n1, n2;
	Match *m1, *m2;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	for (int i = 0; i < 5; i++) {
		post_skill(p, ids[i], (float) (i % 3));
		prof_skill(c1, ids[i], 1);
		prof_skill(c2, ids[4 - i], 1);
	}
	post_skill(p, "zz", 1);
	p->posted_at = NOW - 3 * DAY;
	p->min_years_experience = 3;
	c1->years_experience = c2->years_experience = 2;
	m1 = explain(&env, c1, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	m2 = explain(&env, c2, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	n1 = protobuf_c_message_get_packed_size(&m1->base);
	n2 = protobuf_c_message_get_packed_size(&m2->base);
	assert_int_equal(n1, n2);
	b1 = malloc(n1);
	b2 = malloc(n2);
	protobuf_c_message_pack(&m1->base, b1);
	protobuf_c_message_pack(&m2->base, b2);
	assert_memory_equal(b1, b2, n1);
	assert_true(m1->score > 0 && m1->score < 1);
	free(b1);
	free(b2);
	match_free(m1);
	match_free(m2);
	post_free(p);
	prof_free(c1);
	prof_free(c2);
}

/* ---- pinned scores of the sample data -------------------------------------- */

/*
 * The scores of the real sample records must not change when the scorer is
 * only made faster. These values were computed by the plain scorer
 * (lm_score_pair, no scan) on x86-64 (SSE2 doubles, glibc's log and pow),
 * and are compared exactly: a digest of every score and every explanation
 * over all 54 x 51 pairs, and a few scores written out. A deliberate change
 * to the formulas or the samples changes them: run the test with
 * LUNAMATCH_PRINT_PINS=1 to print the new values.
 *
 * History: recomputed when the NO_OVERLAP veto came in. It only removes
 * pairs (eligible 598 -> 215); the score of every pair that stayed eligible
 * is the same, bit for bit, as are the scores written out below. And when
 * the IDF statistics came to count every posting not closed, expired ones
 * too (lm_skill_stats_counts; before, only those unexpired at the index
 * clock): the one sample posting expired at SAMPLE_NOW now counts, which
 * moves every idf a little and with it the score of each pair whose posting
 * weighs skills of different idf (eligibility is unchanged). The explain
 * digest alone moved when summaries stopped printing a score just below a
 * band's floor as that floor, and distances and years in texts got the
 * decimals that keep them apart from what they are compared with.
 */
#define SAMPLE_NOW   (1795000000LL + 3 * DAY) /* data/samples/README.md's time */
#define SAMPLE_LINES 1000                     /* records read from one sample file */

struct samples {
	lm_taxonomy *tax;
	lm_rates *rates;
	lm_model *model;
	JobPosting **posts;
	lm_posting_prep **pp;
	size_t np;
	Profile **profs;
	lm_profile_prep **cp;
	size_t nc;
	lm_skill_stats *stats; /* the postings lm_skill_stats_counts names */
};

/* Decodes and prepares (as ingest does) every line of a sample file. */
static size_t
load_jsonl(const char *rel, const lm_record_ctx *ctx, bool postings, void ***out)
{
	size_t len = 0, n = 0;
	char *buf = lmt_read_file(lmt_src(rel), &len), *s, *nl;
	void **v = calloc(SAMPLE_LINES, sizeof(*v));

	assert_non_null(buf);
	assert_non_null(v);
	for (s = buf; s < buf + len; s = nl + 1) {
		ProtobufCMessage *m = NULL;
		lm_reject why;
		char err[256];
		int rc;

		nl = memchr(s, '\n', (size_t) (buf + len - s));
		if (nl == NULL)
			nl = buf + len;
		if (nl == s)
			continue;
		assert_true(n < SAMPLE_LINES);
		rc = lm_json_decode(postings
		                        ? &lunamatch__v1__job_posting__descriptor
		                        : &lunamatch__v1__candidate_profile__descriptor,
		    s, (size_t) (nl - s), &m, err, sizeof(err));
		if (rc != LM_OK)
			fail_msg("%s: %s", rel, err);
		rc = postings
		         ? lm_posting_prepare(
		               ctx, (JobPosting *) m, &why, err, sizeof(err))
		         : lm_profile_prepare(ctx, (Profile *) m, &why, err, sizeof(err));
		if (rc != LM_OK)
			fail_msg("%s: %s", rel, err);
		v[n++] = m;
	}
	free(buf);
	*out = v;
	return n;
}

static void
samples_load(struct samples *s)
{
	lm_record_ctx ctx;
	char err[256];

	memset(s, 0, sizeof(*s));
	memset(&ctx, 0, sizeof(ctx));
	if (lm_taxonomy_load(lmt_src("data/skills.tsv"), &s->tax, err, sizeof(err)) !=
	        LM_OK ||
	    lm_rates_load(lmt_src("data/rates.tsv"), &s->rates, err, sizeof(err)) !=
	        LM_OK ||
	    lm_model_load(
	        lmt_src("data/model/default.json"), &s->model, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	ctx.taxonomy = s->tax;
	ctx.rates = s->rates;
	s->np =
	    load_jsonl("data/samples/postings.jsonl", &ctx, true, (void ***) &s->posts);
	s->nc =
	    load_jsonl("data/samples/profiles.jsonl", &ctx, false, (void ***) &s->profs);
	assert_int_equal(s->np, 54);
	assert_int_equal(s->nc, 51);
	s->pp = calloc(s->np, sizeof(*s->pp));
	s->cp = calloc(s->nc, sizeof(*s->cp));
	assert_non_null(s->pp);
	assert_non_null(s->cp);
	assert_int_equal(lm_skill_stats_new(&s->stats), LM_OK);
	for (size_t i = 0; i < s->np; i++) {
		const JobPosting *p = s->posts[i];
		s->pp[i] = prep_post(p);
		if (lm_skill_stats_counts(p))
			assert_int_equal(lm_skill_stats_add(s->stats, s->pp[i]), LM_OK);
	}
	for (size_t i = 0; i < s->nc; i++)
		assert_int_equal(lm_profile_prep_new(s->profs[i], &s->cp[i]), LM_OK);
}

static void
samples_free(struct samples *s)
{
	for (size_t i = 0; i < s->np; i++) {
		lm_posting_prep_free(s->pp[i]);
		post_free(s->posts[i]);
	}
	for (size_t i = 0; i < s->nc; i++) {
		lm_profile_prep_free(s->cp[i]);
		prof_free(s->profs[i]);
	}
	free(s->pp);
	free(s->posts);
	free(s->cp);
	free(s->profs);
	lm_skill_stats_free(s->stats);
	lm_model_free(s->model);
	lm_rates_free(s->rates);
	lm_taxonomy_free(s->tax);
}

/* FNV-1a over bytes, continued from h. */
static uint64_t
digest(uint64_t h, const void *data, size_t len)
{
	const unsigned char *b = data;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t
digest_d(uint64_t h, double d)
{
	return digest(h, &d, sizeof(d));
}

static uint64_t
digest_s(uint64_t h, const char *s)
{
	return digest(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

static uint64_t
digest_skill(uint64_t h, const Lunamatch__V1__SkillMatch *sm)
{
	h = digest_s(h, sm->skill_id);
	h = digest_s(h, sm->name);
	h = digest_d(h, sm->importance);
	return digest(h, &sm->candidate_years, sizeof(sm->candidate_years));
}

/* Every number and text of a FULL explanation. */
static uint64_t
digest_match(uint64_t h, const Match *m)
{
	const Lunamatch__V1__Explanation *e = m->explanation;

	h = digest_d(h, m->score);
	h = digest_s(h, e->summary);
	for (size_t i = 0; i < e->n_features; i++) {
		h = digest_s(h, e->features[i]->feature);
		h = digest_d(h, e->features[i]->value);
		h = digest_d(h, e->features[i]->weight);
		h = digest_d(h, e->features[i]->contribution);
		h = digest_s(h, e->features[i]->detail);
	}
	for (size_t i = 0; i < e->n_vetoes; i++) {
		h = digest_s(h, e->vetoes[i]->code);
		h = digest_s(h, e->vetoes[i]->reason);
	}
	for (size_t i = 0; i < e->n_failed_requirement_groups; i++)
		h = digest_s(h, e->failed_requirement_groups[i]);
	for (size_t i = 0; i < e->n_matched_skills; i++)
		h = digest_skill(h, e->matched_skills[i]);
	for (size_t i = 0; i < e->n_missing_skills; i++)
		h = digest_skill(h, e->missing_skills[i]);
	for (size_t i = 0; i < e->n_improvements; i++) {
		h = digest_s(h, e->improvements[i]->action);
		h = digest_d(h, e->improvements[i]->score_gain);
	}
	return h;
}

static const struct pinned_score {
	const char *candidate, *job;
	double score;
} pinned_scores[] = {
    {"cand-ml-lead-chicago", "job-ml-eng-mgr-chicago", 0x1.824f3a3193f7p-1},
    {"cand-ai-director-toronto", "job-head-of-ai-paris", 0x1.d3e2068a74742p-1},
    {"cand-data-sci-nyc", "job-ds-credit-risk-wilmington", 0x1.b89da84f86951p-1},
    {"cand-backend-go-sf", "job-sr-backend-go-sf", 0x1.f0c85434269cdp-1},
    {"cand-security-dc", "job-security-eng-dc", 0x1.f1fe53f5dd488p-1},
    {"cand-embedded-lyon", "job-embedded-sw-lyon", 0x1.fcc06a2985d4p-1},
    {"cand-fin-analyst-nyc", "job-fin-analyst-nyc", 0x1.f0bb644ba0bb8p-1},
    {"cand-rn-melbourne", "job-rn-melbourne", 0x1.f30ed6a990029p-1},
    {"cand-sdr-sydney", "job-sdr-sydney", 0x1.f04bf2082a77fp-1},
    {"cand-electrician-phoenix", "job-electrician-phoenix", 0x1.f2351056296fap-1},
    {"cand-welder-perth", "job-welder-perth", 0x1.eff584f889789p-1},
    /* the seed posting: a good fit (10 of its 16 skills, none marked
     * preferred), and the look-alike it vetoes */
    {"cand-ml-lead-chicago", "job-dfs-sr-mgr-ml", 0x1.31a7db5793fd4p-1},
    {"cand-ml-junior-chicago", "job-dfs-sr-mgr-ml", 0},
    /* no skill in common, and not a role the goals point at (NO_OVERLAP) */
    {"cand-rn-icu-houston", "job-sr-ml-eng-remote-us", 0},
    {"cand-electrician-phoenix", "job-account-exec-denver", 0},
};

#define PINNED_SCORE_DIGEST   0x3bd6f1f31d4dcd81ULL
#define PINNED_EXPLAIN_DIGEST 0x646836c9d13ab9d7ULL
#define PINNED_ELIGIBLE       201

static size_t
sample_posting(const struct samples *s, const char *id)
{
	for (size_t i = 0; i < s->np; i++)
		if (strcmp(s->posts[i]->id, id) == 0)
			return i;
	fail_msg("no sample posting %s", id);
	return 0;
}

static size_t
sample_profile(const struct samples *s, const char *id)
{
	for (size_t i = 0; i < s->nc; i++)
		if (strcmp(s->profs[i]->id, id) == 0)
			return i;
	fail_msg("no sample profile %s", id);
	return 0;
}

/* The environment the pins are computed in: the samples' model and IDF
 * statistics at SAMPLE_NOW, no filters. */
static lm_score_env
samples_env(const struct samples *s)
{
	lm_score_env env = {s->model, s->stats, SAMPLE_NOW, NULL};
	return env;
}

static void
test_sample_scores_pinned(void **state)
{
	struct samples s;
	lm_score_env env, plain;
	uint64_t hs = 14695981039346656037ULL, he = hs;
	size_t eligible = 0;
	bool print = getenv("LUNAMATCH_PRINT_PINS") != NULL;

	(void) state;
	samples_load(&s);
	env = samples_env(&s);
	plain = env;
	plain.stats = NULL;
	for (size_t i = 0; i < s.nc; i++) {
		size_t best = 0;
		double best_score = -1;
		for (size_t j = 0; j < s.np; j++) {
			bool ok, ok2;
			double v = lm_score_pair(&env, s.cp[i], s.pp[j], &ok);
			double v2 = lm_score_pair(&plain, s.cp[i], s.pp[j], &ok2);
			Match *m = NULL;
			unsigned char flags = (unsigned char) (ok | ok2 << 1);

			hs = digest_d(hs, v);
			hs = digest_d(hs, v2);
			hs = digest(hs, &flags, 1);
			eligible += ok;
			assert_int_equal(
			    lm_explain_pair(&env, s.cp[i], s.pp[j],
			        LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL, &m),
			    LM_OK);
			assert_true(m->score == v);
			/* Added in their order, the contributions are the score,
			 * exactly (match.proto). */
			double sum = 0;
			for (size_t f = 0; f < m->explanation->n_features; f++)
				sum += m->explanation->features[f]->contribution;
			assert_true(sum == m->score);
			he = digest_match(he, m);
			match_free(m);
			if (v > best_score) {
				best_score = v;
				best = j;
			}
		}
		if (print && i % 5 == 0)
			printf("    {\"%s\", \"%s\", %a}, /* %.17g */\n", s.profs[i]->id,
			    s.posts[best]->id, best_score, best_score);
	}
	if (print)
		printf("score digest 0x%016llxULL explain digest 0x%016llxULL eligible "
		       "%zu\n",
		    (unsigned long long) hs, (unsigned long long) he, eligible);
	for (size_t k = 0; k < sizeof(pinned_scores) / sizeof(pinned_scores[0]); k++) {
		const struct pinned_score *ps = &pinned_scores[k];
		size_t i = sample_profile(&s, ps->candidate);
		size_t j = sample_posting(&s, ps->job);
		double v = lm_score_pair(&env, s.cp[i], s.pp[j], NULL);
		if (print)
			printf("    {\"%s\", \"%s\", %a},\n", ps->candidate, ps->job, v);
		else if (v != ps->score)
			fail_msg("%s x %s: %a (%.17g), pinned %a", ps->candidate, ps->job,
			    v, v, ps->score);
	}
	assert_int_equal(eligible, PINNED_ELIGIBLE);
	assert_true(hs == PINNED_SCORE_DIGEST);
	assert_true(he == PINNED_EXPLAIN_DIGEST);
	samples_free(&s);
}

/* ---- scans ------------------------------------------------------------------- */

/* Scores every pair through scans in both directions and through
 * lm_score_pair: score and eligibility must agree exactly, and a key veto
 * must only ever hit a vetoed pair. Returns the pairs scored through the
 * fast path; *eligible (optional) receives the eligible pairs of one
 * direction. */
static uint64_t
scans_agree(const lm_score_env *env, lm_profile_prep *const *cp, size_t nc,
    lm_posting_prep *const *pp, size_t np, size_t *eligible)
{
	uint64_t fast = 0;
	size_t n_ok = 0;

	for (size_t i = 0; i < nc; i++) {
		lm_scan *sc = NULL;
		bool ok, want_ok;

		assert_int_equal(lm_scan_new(env, cp[i], NULL, &sc), LM_OK);
		for (size_t j = 0; j < np; j++) {
			double v = lm_scan_posting(sc, pp[j], &ok);
			double want = lm_score_pair(env, cp[i], pp[j], &want_ok);
			if (v != want || ok != want_ok)
				fail_msg("profile %zu x posting %zu: scan %a (%d), pair "
				         "%a (%d)",
				    i, j, v, ok, want, want_ok);
			if (lm_scan_vetoed(sc, lm_posting_prep_key(pp[j])))
				assert_false(want_ok);
			n_ok += ok;
		}
		assert_true(lm_scan_profile(sc, cp[i], &ok) == 0); /* wrong kind */
		assert_false(ok);
		fast += lm_scan_fast_pairs(sc);
		lm_scan_free(sc);
	}
	for (size_t j = 0; j < np; j++) {
		lm_scan *sc = NULL;
		bool ok, want_ok;

		assert_int_equal(lm_scan_new(env, NULL, pp[j], &sc), LM_OK);
		for (size_t i = 0; i < nc; i++) {
			double v = lm_scan_profile(sc, cp[i], &ok);
			double want = lm_score_pair(env, cp[i], pp[j], &want_ok);
			if (v != want || ok != want_ok)
				fail_msg("posting %zu x profile %zu: scan %a (%d), pair "
				         "%a (%d)",
				    j, i, v, ok, want, want_ok);
			if (lm_scan_vetoed(sc, lm_profile_prep_key(cp[i])))
				assert_false(want_ok);
		}
		assert_true(lm_scan_posting(sc, pp[j], &ok) == 0); /* wrong kind */
		assert_false(ok);
		fast += lm_scan_fast_pairs(sc);
		lm_scan_free(sc);
	}
	if (eligible != NULL)
		*eligible = n_ok;
	return fast;
}

/* Scans of the real samples, with the preps bound to statistics counted by
 * symbol, agree with the plain scorer (and so with the pinned values). */
static void
test_scan_samples(void **state)
{
	struct samples s;
	lm_skill_stats *bst = NULL;
	lm_score_env env;
	lm_filters *jf = NULL, *cf = NULL;
	Lunamatch__V1__JobFilters jfm = LUNAMATCH__V1__JOB_FILTERS__INIT;
	Lunamatch__V1__CandidateFilters cfm = LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;
	char *countries[] = {"us", "Gb"};
	char err[128];
	size_t eligible = 0;

	(void) state;
	samples_load(&s);
	assert_int_equal(lm_skill_stats_new(&bst), LM_OK);
	for (size_t j = 0; j < s.np; j++) {
		const JobPosting *p = s.posts[j];
		assert_int_equal(lm_posting_prep_bind(s.pp[j], bst), LM_OK);
		assert_int_equal(lm_posting_prep_bind(s.pp[j], bst), LM_EINVAL);
		if (lm_skill_stats_counts(p))
			assert_int_equal(lm_skill_stats_add(bst, s.pp[j]), LM_OK);
	}
	for (size_t i = 0; i < s.nc; i++)
		assert_int_equal(lm_profile_prep_bind(s.cp[i], bst), LM_OK);
	/* Counting by symbol gives the same statistics as counting by id. */
	assert_int_equal(lm_skill_stats_docs(bst), lm_skill_stats_docs(s.stats));
	for (size_t j = 0; j < s.np; j++)
		for (size_t k = 0; k < s.posts[j]->n_skills; k++) {
			const char *id = s.posts[j]->skills[k]->skill_id;
			assert_int_equal(
			    lm_skill_stats_df(bst, id), lm_skill_stats_df(s.stats, id));
			assert_true(lm_skill_idf(bst, id) == lm_skill_idf(s.stats, id));
		}

	env.model = s.model;
	env.stats = bst;
	env.now = SAMPLE_NOW;
	env.filters = NULL;
	assert_true(scans_agree(&env, s.cp, s.nc, s.pp, s.np, &eligible) > 0);
	assert_int_equal(eligible, PINNED_ELIGIBLE);

	/* Request filters (countries in another case than the records'). */
	jfm.n_countries = 2;
	jfm.countries = countries;
	jfm.min_annual_salary = 100000;
	cfm.n_countries = 2;
	cfm.countries = countries;
	cfm.min_years_experience = 5;
	assert_int_equal(lm_filters_for_jobs(&jfm, &jf, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_filters_for_candidates(&cfm, &cf, err, sizeof(err)), LM_OK);
	env.filters = jf;
	scans_agree(&env, s.cp, s.nc, s.pp, s.np, &eligible);
	assert_true(eligible > 0 && eligible < PINNED_ELIGIBLE);
	env.filters = cf;
	scans_agree(&env, s.cp, s.nc, s.pp, s.np, NULL);
	lm_filters_free(jf);
	lm_filters_free(cf);

	/* Preps bound to other statistics: the scan falls back to the plain
	 * scorer, with the same results. */
	env.filters = NULL;
	env.stats = s.stats;
	assert_int_equal(scans_agree(&env, s.cp, s.nc, s.pp, s.np, &eligible), 0);
	assert_int_equal(eligible, PINNED_ELIGIBLE);

	for (size_t j = 0; j < s.np; j++)
		lm_posting_prep_unbind(s.pp[j]);
	for (size_t i = 0; i < s.nc; i++)
		lm_profile_prep_unbind(s.cp[i]);
	lm_skill_stats_free(bst);
	samples_free(&s);
}

/* Records at the edges of the packed forms (case, long or non-ASCII
 * countries, many or missing locations, odd employment types, empty
 * requirement groups, inline records the statistics do not know): scans
 * agree with the plain scorer, and the values are the documented ones. */
static void
test_scan_edges(void **state)
{
	enum { NP = 8, NC = 7 };
	JobPosting *p[NP];
	Profile *c[NC];
	lm_posting_prep *pp[NP];
	lm_profile_prep *cp[NC];
	lm_skill_stats *st = NULL;
	lm_model m;
	lm_score_env env;
	Lunamatch__V1__CareerGoals *g;
	Match *mt;

	(void) state;
	lm_model_defaults(&m);
	for (int i = 0; i < NP; i++) {
		char id[16];
		snprintf(id, sizeof(id), "p%d", i);
		p[i] = post_new(id);
		p[i]->posted_at = NOW - DAY;
		post_skill(p[i], "go", 2);
		post_skill(p[i], i % 2 ? "sql" : "rust", 1);
	}
	for (int i = 0; i < NC; i++) {
		char id[16];
		snprintf(id, sizeof(id), "c%d", i);
		c[i] = prof_new(id);
		prof_skill(c[i], "go", 3);
	}
	post_loc(p[0], "berlin", "de");             /* lower case */
	post_loc(p[1], "Wien", "Oesterreich-Sued"); /* longer than 8 bytes */
	for (int k = 0; k < 5; k++)                 /* more than packed */
		post_loc(p[2], "X", k < 4 ? "FR" : "GB");
	post_loc(p[3], "Z\xc3\xbcrich", "\xc3\x96sterreich"); /* not ASCII */
	post_loc(p[4], NULL, "");                             /* no country */
	post_loc(p[4], "Paris", "FR");
	p[5]->employment_type = (Lunamatch__V1__EmploymentType) 77;
	p[6]->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE;
	post_loc(p[6], "Lyon", "FR");
	post_group(p[7], "", 0, "x:unknown", NULL, NULL);
	post_group(p[7], "years", 4, NULL, NULL, NULL);
	set_str(&p[7]->category, "Data");
	set_str(&p[7]->industry, "RETAIL");
	set_str(&p[7]->title, "Senior Data Engineer");

	prof_loc(c[0], "BERLIN", "DE");
	prof_loc(c[1], "wien", "oesterreich-sued");
	prof_loc(c[2], NULL, "gb");
	prof_loc(c[3], "z\xc3\xbcrich", "\xc3\xb6sterreich"); /* differs in C */
	prof_loc(c[4], "paris", "fr");
	prof_emp(c[4], (Lunamatch__V1__EmploymentType) 99); /* beyond the mask */
	prof_emp(c[5], LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME);
	c[5]->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	prof_loc(c[5], NULL, "FR");
	c[6]->willing_to_relocate = true;
	c[6]->years_experience = 5;
	prof_skill(c[6], "x:unknown", 1);
	prof_skill(c[6], "x:inline-only", 1); /* unknown to the statistics */
	prof_loc(c[6], "Lyon", "fr");
	g = goals(c[6]);
	add_str(&g->desired_categories, &g->n_desired_categories, "DATA");
	add_str(&g->desired_categories, &g->n_desired_categories, "Ops");
	add_str(&g->desired_industries, &g->n_desired_industries, "retail");
	add_str(&g->desired_titles, &g->n_desired_titles, "data engineer");

	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	for (int i = 0; i < NP; i++) {
		pp[i] = prep_post(p[i]);
		assert_int_equal(lm_posting_prep_bind(pp[i], st), LM_OK);
		assert_int_equal(lm_skill_stats_add(st, pp[i]), LM_OK);
	}
	for (int i = 0; i < NC; i++) {
		assert_int_equal(lm_profile_prep_new(c[i], &cp[i]), LM_OK);
		if (i != 6) /* c6 stays unbound: an inline record */
			assert_int_equal(lm_profile_prep_bind(cp[i], st), LM_OK);
	}
	env = env_of(&m, st);
	assert_true(scans_agree(&env, cp, NC, pp, NP, NULL) > 0);

	/* The documented values: countries compare case-insensitively, long
	 * and non-ASCII ones as text, every location counts. */
	expect_vetoes(NULL, c[0], p[0], NULL, 0);
	expect_vetoes(NULL, c[1], p[1], NULL, 0);
	expect_vetoes(NULL, c[2], p[2], NULL, 0);
	expect_vetoes(NULL, c[3], p[3],
	    "no job location in the candidate's countries, and "
	    "the candidate does not relocate",
	    1, LM_VETO_LOCATION);
	expect_vetoes(NULL, c[4], p[4], NULL, 0);
	expect_vetoes(NULL, c[5], p[5],
	    "the job is unknown; the candidate wants other employment types", 1,
	    LM_VETO_EMPLOYMENT_TYPE);
	expect_vetoes(NULL, c[5], p[6], "onsite job; the candidate wants remote work", 1,
	    LM_VETO_REMOTE_POLICY);
	expect_vetoes(NULL, c[0], p[7], "requires one of: x:unknown", 2,
	    LM_VETO_REQUIREMENT_GROUP, LM_VETO_REQUIREMENT_GROUP);
	expect_vetoes(NULL, c[6], p[7], NULL, 0);
	assert_float_equal(
	    value_of(LM_FEAT_LOCATION, c[0], p[0]), 1.0, 0); /* same city */
	assert_float_equal(value_of(LM_FEAT_LOCATION, c[4], p[4]), 1.0, 0);
	assert_float_equal(value_of(LM_FEAT_LOCATION, c[6], p[6]), 1.0, 0);
	/* Career goals: category and industry in another case, title tokens. */
	mt = explain(&env, c[6], p[7], LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_non_null(feature(mt, "career_goals"));
	assert_float_equal(feature(mt, "career_goals")->value, 1.0, 0);
	match_free(mt);

	for (int i = 0; i < NP; i++) {
		lm_posting_prep_free(pp[i]); /* unbinds */
		post_free(p[i]);
	}
	for (int i = 0; i < NC; i++) {
		lm_profile_prep_free(cp[i]);
		prof_free(c[i]);
	}
	/* Counted skills stay until removed; nothing else is held. */
	assert_int_equal(lm_skill_stats_symbols(st), 3); /* go, sql, rust */
	lm_skill_stats_free(st);
}

/* ---- NO_OVERLAP ------------------------------------------------------------- */

#define NO_OVERLAP_REASON                                                                \
	"no skill in common with the posting, and the role is not among the career "     \
	"goals"

/* The pair's scores through scans in both directions (preps bound to fresh
 * statistics that count the posting) equal the plain scorer's, and its
 * eligibility is want_ok. */
static void
scans_say(const Profile *c, const JobPosting *p, bool want_ok)
{
	lm_skill_stats *st = NULL;
	lm_posting_prep *pp = prep_post(p);
	lm_profile_prep *cp = NULL;
	lm_model m;
	lm_score_env env;
	size_t eligible = 9;

	lm_model_defaults(&m);
	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	assert_int_equal(lm_profile_prep_new(c, &cp), LM_OK);
	assert_int_equal(lm_posting_prep_bind(pp, st), LM_OK);
	assert_int_equal(lm_skill_stats_add(st, pp), LM_OK);
	assert_int_equal(lm_profile_prep_bind(cp, st), LM_OK);
	env = env_of(&m, st);
	assert_int_equal(scans_agree(&env, &cp, 1, &pp, 1, &eligible), 2);
	assert_int_equal(eligible, want_ok);
	lm_profile_prep_free(cp);
	lm_posting_prep_free(pp);
	lm_skill_stats_free(st);
}

/* Vetoed with NO_OVERLAP alone (plain scorer, explanation, both scans). */
static void
expect_no_overlap(const Profile *c, const JobPosting *p)
{
	expect_vetoes(NULL, c, p, NO_OVERLAP_REASON, 1, LM_VETO_NO_OVERLAP);
	scans_say(c, p, false);
}

static void
expect_eligible(const Profile *c, const JobPosting *p)
{
	expect_vetoes(NULL, c, p, NULL, 0);
	scans_say(c, p, true);
}

/*
 * NO_OVERLAP: a posting that lists skills is vetoed for a candidate who has
 * none of them, unless the candidate's goals point at the role (a desired
 * category, or a significant word of a desired title in the posting's
 * title). Industries and filler words (rank, level, connecting words) do
 * not point at a role.
 */
static void
test_no_overlap(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	Lunamatch__V1__CareerGoals *g;
	lm_model m;
	lm_score_env env;
	Match *mt;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	p->posted_at = NOW - DAY;
	p->min_years_experience = 2;
	c->years_experience = 4;
	set_str(&p->title, "Senior Backend Engineer II");
	set_str(&p->category, "Software");
	set_str(&p->industry, "Fintech");
	prof_skill(c, "rust", 3);

	/* A posting without skills: nothing to share, no veto. */
	expect_eligible(c, p);

	post_skill(p, "go", 2);
	post_skill(p, "sql", 1);
	expect_no_overlap(c, p);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_string_equal(mt->explanation->summary, "not eligible: " NO_OVERLAP_REASON);
	assert_float_equal(feature(mt, "skills")->value, 0, 0);
	assert_int_equal(mt->explanation->n_missing_skills, 2);
	assert_int_equal(mt->explanation->n_failed_requirement_groups, 0);
	/* Either missing skill lifts the veto; each gains the score the pair
	 * would then have. */
	assert_int_equal(mt->explanation->n_improvements, 2);
	assert_string_equal(mt->explanation->improvements[0]->action, "add skill: GO");
	assert_string_equal(mt->explanation->improvements[1]->action, "add skill: SQL");
	{
		Profile *c2 = prof_new("c");
		double s;
		bool ok;
		prof_skill(c2, "rust", 3);
		prof_skill(c2, "go", 0);
		c2->years_experience = 4;
		assert_int_equal(lm_score_records(&env, c2, p, &s, &ok), LM_OK);
		assert_true(ok);
		assert_float_equal(mt->explanation->improvements[0]->score_gain, s, EPS);
		prof_free(c2);
	}
	match_free(mt);

	/* One shared skill is enough. */
	prof_skill(c, "sql", 1);
	expect_eligible(c, p);
	c->skills[1]->skill_id[0] = 'S'; /* "Sql": another id */
	expect_no_overlap(c, p);

	/* A skill of a requirement group counts as a skill of the posting. */
	post_group(p, "JVM", 0, "kotlin", "java", NULL);
	expect_vetoes(NULL, c, p, "requires one of: JVM", 2, LM_VETO_REQUIREMENT_GROUP,
	    LM_VETO_NO_OVERLAP);
	prof_skill(c, "java", 1);
	expect_eligible(c, p);
	c->skills[2]->skill_id[0] = 'J';

	/* Goals that point at the role lift the veto. Category, in any case: */
	g = goals(c);
	add_str(&g->desired_categories, &g->n_desired_categories, "Data");
	expect_vetoes(NULL, c, p, "requires one of: JVM", 2, LM_VETO_REQUIREMENT_GROUP,
	    LM_VETO_NO_OVERLAP);
	add_str(&g->desired_categories, &g->n_desired_categories, "SOFTWARE");
	expect_vetoes(NULL, c, p, "requires one of: JVM", 1, LM_VETO_REQUIREMENT_GROUP);
	/* (the group stays unmet; without it the pair is eligible) */
	free(g->desired_categories[1]);
	g->desired_categories[1] = lmt_strdup("Ops");
	protobuf_c_message_free_unpacked(&p->requirement_groups[0]->base, NULL);
	free(p->requirement_groups);
	p->requirement_groups = NULL;
	p->n_requirement_groups = 0;
	expect_no_overlap(c, p);

	/* An industry does not point at a role, even when it is desired. */
	add_str(&g->desired_industries, &g->n_desired_industries, "fintech");
	expect_no_overlap(c, p);

	/* Titles: a significant word in common points at the role; filler
	 * words (rank, level, connecting words, digits) do not, although
	 * the career_goals feature counts them. */
	add_str(&g->desired_titles, &g->n_desired_titles, "Senior Sales Manager II 2");
	expect_no_overlap(c, p);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
	assert_true(feature(mt, "career_goals")->value > 0); /* "senior", "ii" */
	match_free(mt);
	add_str(&g->desired_titles, &g->n_desired_titles, "Head of Backend");
	expect_eligible(c, p);
	free(g->desired_titles[1]);
	g->desired_titles[1] = lmt_strdup("Junior engineer");
	expect_eligible(c, p); /* "engineer" names the work */
	free(g->desired_titles[1]);
	g->desired_titles[1] = lmt_strdup("A lead with the staff");
	expect_no_overlap(c, p);
	set_str(&p->title, "A Lead, with the Staff");
	expect_no_overlap(c, p); /* only fillers in common */
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
	/* titles 1 (fillers), categories 0, industry 1 */
	assert_float_equal(feature(mt, "career_goals")->value, 2.0 / 3.0, EPS);
	match_free(mt);
	set_str(&p->title, "Staff Rust-Engineer");
	free(g->desired_titles[1]);
	g->desired_titles[1] = lmt_strdup("engineer (RUST)");
	expect_eligible(c, p);

	/* No goals at all, no skills on the candidate: vetoed. */
	protobuf_c_message_free_unpacked(&c->career_goals->base, NULL);
	c->career_goals = NULL;
	expect_no_overlap(c, p);
	{
		Profile *bare = prof_new("bare");
		expect_no_overlap(bare, p);
		prof_free(bare);
	}
	post_free(p);
	prof_free(c);
}

/* The demo's case on the real samples: the ICU nurse and the electrician are
 * offered their own trade only; the nurse's goals share an industry with a
 * machine-learning posting, which does not make it a fit. */
static void
test_no_overlap_samples(void **state)
{
	struct samples s;
	lm_score_env env;
	const char *const who[][2] = {{"cand-rn-icu-houston", "job-rn-icu-houston"},
	    {"cand-electrician-phoenix", "job-electrician-phoenix"}};
	Match *mt = NULL;
	size_t i;

	(void) state;
	samples_load(&s);
	env = samples_env(&s);
	for (size_t k = 0; k < 2; k++) {
		i = sample_profile(&s, who[k][0]);
		for (size_t j = 0; j < s.np; j++) {
			bool ok;
			lm_score_pair(&env, s.cp[i], s.pp[j], &ok);
			assert_int_equal(ok, strcmp(s.posts[j]->id, who[k][1]) == 0);
		}
	}
	i = sample_profile(&s, "cand-rn-icu-houston");
	assert_int_equal(lm_explain_pair(&env, s.cp[i],
	                     s.pp[sample_posting(&s, "job-sr-ml-eng-remote-us")],
	                     LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL, &mt),
	    LM_OK);
	assert_int_equal(mt->explanation->n_vetoes, 1);
	assert_string_equal(mt->explanation->vetoes[0]->code, LM_VETO_NO_OVERLAP);
	assert_string_equal(mt->explanation->vetoes[0]->reason, NO_OVERLAP_REASON);
	assert_true(feature(mt, "career_goals")->value > 0); /* the industry */
	assert_float_equal(mt->score, 0, 0);
	match_free(mt);
	samples_free(&s);
}

/* Checks that m packs to a message that lm_pb_decode accepts: every text
 * in it is UTF-8. */
static void
assert_match_utf8(const Match *m)
{
	ProtobufCMessage *back = NULL;
	uint8_t *b = NULL;
	size_t len = 0;
	char err[256];

	assert_int_equal(lm_pb_encode(&m->base, &b, &len), LM_OK);
	if (lm_pb_decode(&lunamatch__v1__match__descriptor, b, len, len, &back, err,
	        sizeof(err)) != LM_OK)
		fail_msg("explanation is not UTF-8: %s", err);
	protobuf_c_message_free_unpacked(back, NULL);
	free(b);
}

/*
 * Texts that quote a record and are cut to LM_EXPLAIN_TEXT_MAX bytes stay
 * UTF-8 wherever the cut falls: a long skill name in Cyrillic that the
 * candidate lacks (the summary's "missing", the improvement) and as long a
 * label of a failed requirement group (the veto reason, the summary), each
 * after 0..3 ASCII bytes, so that the cut falls inside a character and
 * between two.
 */
/* Numbers of a comparison print differently whenever they differ. */
static void
test_num_pair(void **state)
{
	struct lm_num_pair t;

	(void) state;
	t = lm_num_pair(50.3, 50.0, 0); /* km beyond a commuting distance */
	assert_string_equal(t.a, "50.3");
	assert_string_equal(t.b, "50.0");
	t = lm_num_pair(1914.2, 50.0, 0);
	assert_string_equal(t.a, "1914");
	assert_string_equal(t.b, "50");
	t = lm_num_pair(5.0, 5.0, 1); /* equal: as asked */
	assert_string_equal(t.a, "5.0");
	assert_string_equal(t.b, "5.0");
	t = lm_num_pair(0.4, 0.0, 0); /* 0.4 % above */
	assert_string_equal(t.a, "0.4");
	/* Six decimals at most; still alike there, each rounded away from the
	 * other, so that a short one does not read as met. */
	t = lm_num_pair(5.0 - 1e-9, 5.0, 1);
	assert_string_equal(t.a, "4.999999");
	assert_string_equal(t.b, "5.000000");
	t = lm_num_pair(5.0000004, 5.0000001, 1);
	assert_string_equal(t.a, "5.000001");
	assert_string_equal(t.b, "5.000000");
	/* Only the far one moves: a requirement of 0.1 years, as a float,
	 * stays 0.100000 against the float just below it, either way round. */
	t = lm_num_pair(nextafterf(0.1f, 0), 0.1f, 1);
	assert_string_equal(t.a, "0.099999");
	assert_string_equal(t.b, "0.100000");
	t = lm_num_pair(0.7f, nextafterf(0.7f, 0), 1);
	assert_string_equal(t.a, "0.700000");
	assert_string_equal(t.b, "0.699999");
}

static void
test_explain_texts_stay_utf8(void **state)
{
	lm_model m;
	lm_score_env env;
	char name[LM_EXPLAIN_TEXT_MAX];

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	for (size_t pad = 0; pad < 4; pad++) {
		JobPosting *p = post_new("p"), *q = post_new("q");
		Profile *c = prof_new("c");
		size_t w = 0;
		while (w < pad)
			name[w++] = 'x';
		while (w + 3 < sizeof(name)) { /* U+0436 */
			name[w++] = (char) 0xd0;
			name[w++] = (char) 0xb6;
		}
		name[w] = '\0';
		post_skill(p, "python", 1);
		post_skill(p, "rust", 1);
		set_str(&p->skills[1]->name, name);
		post_skill(q, "python", 1);
		post_group(q, name, 0, "go", NULL, NULL);
		prof_skill(c, "python", 3);
		for (int level = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
		     level <= LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL; level++) {
			Match *mp =
			    explain(&env, c, p, (Lunamatch__V1__ExplainLevel) level);
			Match *mq =
			    explain(&env, c, q, (Lunamatch__V1__ExplainLevel) level);
			assert_non_null(strstr(mp->explanation->summary, "missing"));
			assert_true(
			    strlen(mp->explanation->summary) < LM_EXPLAIN_TEXT_MAX);
			assert_int_equal(mq->explanation->n_vetoes, 1);
			assert_match_utf8(mp);
			assert_match_utf8(mq);
			match_free(mp);
			match_free(mq);
		}
		post_free(p);
		post_free(q);
		prof_free(c);
	}
}

/* Symbols live while counted or bound, and are forgotten after. */
static void
test_skill_symbols(void **state)
{
	lm_skill_stats *st = NULL, *other = NULL;
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_posting_prep *pp;
	lm_profile_prep *cp = NULL;

	(void) state;
	post_skill(p, "a", 1);
	post_skill(p, "b", 1);
	post_skill(p, "a", 2); /* a duplicate: one symbol */
	post_group(p, "g", 0, "c", "", NULL);
	prof_skill(c, "a", 1);
	prof_skill(c, "z", 1);
	pp = prep_post(p);
	assert_int_equal(lm_profile_prep_new(c, &cp), LM_OK);
	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	assert_int_equal(lm_skill_stats_new(&other), LM_OK);
	assert_int_equal(lm_skill_stats_symbols(st), 0);
	assert_int_equal(lm_skill_stats_symbols(NULL), 0);
	assert_int_equal(lm_posting_prep_bind(NULL, st), LM_EINVAL);
	assert_int_equal(lm_posting_prep_bind(pp, NULL), LM_EINVAL);

	assert_int_equal(lm_posting_prep_bind(pp, st), LM_OK);
	assert_int_equal(lm_skill_stats_symbols(st), 3); /* a, b, c */
	assert_int_equal(lm_skill_stats_df(st, "a"), 0); /* bound is not counted */
	assert_int_equal(lm_posting_prep_bind(pp, other), LM_EINVAL);
	assert_int_equal(lm_skill_stats_add(st, pp), LM_OK);
	assert_int_equal(lm_skill_stats_df(st, "a"), 1);
	assert_int_equal(lm_skill_stats_df(st, "c"), 0); /* group ids are not counted */
	assert_int_equal(lm_skill_stats_add(other, pp), LM_OK); /* by id there */
	assert_int_equal(lm_skill_stats_df(other, "b"), 1);
	assert_int_equal(lm_profile_prep_bind(cp, st), LM_OK);
	assert_int_equal(lm_skill_stats_symbols(st), 4); /* and z */

	lm_posting_prep_unbind(pp);
	lm_posting_prep_unbind(pp);                      /* no-op */
	assert_int_equal(lm_skill_stats_symbols(st), 3); /* c forgotten */
	lm_skill_stats_remove(st, pp);                   /* by id now */
	assert_int_equal(lm_skill_stats_docs(st), 0);
	assert_int_equal(lm_skill_stats_symbols(st), 2); /* a, z: the profile's */
	lm_profile_prep_free(cp);                        /* unbinds */
	assert_int_equal(lm_skill_stats_symbols(st), 0);

	/* Symbols are reused: binding again works and counts the same. */
	assert_int_equal(lm_posting_prep_bind(pp, st), LM_OK);
	assert_int_equal(lm_skill_stats_add(st, pp), LM_OK);
	assert_int_equal(lm_skill_stats_df(st, "b"), 1);
	lm_skill_stats_remove(st, pp);
	lm_posting_prep_free(pp);
	assert_int_equal(lm_skill_stats_symbols(st), 0);
	lm_skill_stats_free(st);
	lm_skill_stats_free(other);
	post_free(p);
	prof_free(c);
}

/* ---- calibration (skills lead) ------------------------------------------- */

/* A posting that fits a candidate in everything but skills: same place,
 * level, salary range, education, desired category and title, fresh. */
static JobPosting *
all_but_skills_posting(void)
{
	JobPosting *p = post_new("p");

	set_str(&p->title, "Data Engineer");
	set_str(&p->category, "Data");
	p->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_MID;
	p->min_years_experience = 3;
	p->education = LUNAMATCH__V1__EDUCATION__EDUCATION_BACHELOR;
	p->salary = salary_new(90000, 120000);
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	post_loc(p, "Berlin", "DE");
	p->posted_at = NOW;
	return p;
}

static Profile *
all_but_skills_profile(void)
{
	Profile *c = prof_new("c");
	Lunamatch__V1__CareerGoals *g = goals(c);

	add_str(&g->desired_titles, &g->n_desired_titles, "Data Engineer");
	add_str(&g->desired_categories, &g->n_desired_categories, "Data");
	c->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_MID;
	c->years_experience = 5;
	c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_MASTER;
	c->desired_salary = salary_new(100000, 0);
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	prof_loc(c, "Berlin", "DE");
	return c;
}

/* The band word of a summary line ("strong", "good", "fair", "weak"). */
static bool
band_is(const Match *mt, const char *band)
{
	return strncmp(mt->explanation->summary, band, strlen(band)) == 0;
}

/* The number an eligible pair's summary prints ("good match (0.74): ...")
 * lies in its band: a score just below a band's floor (0.2451, 0.7498) is
 * not printed as that floor. */
static void
summary_reads_as_band(const Match *mt)
{
	static const struct {
		const char *band;
		double lo, hi;
	} bands[] = {{"strong", 0.75, 1.0}, {"good", 0.5, 0.75}, {"fair", 0.25, 0.5},
	    {"weak", 0.0, 0.25}};
	const char *open = strstr(mt->explanation->summary, " match (");
	double shown;

	if (open == NULL)
		return; /* not eligible, or no comparable data */
	shown = strtod(open + strlen(" match ("), NULL);
	for (size_t b = 0; b < sizeof(bands) / sizeof(bands[0]); b++) {
		if (!band_is(mt, bands[b].band))
			continue;
		if (shown < bands[b].lo || shown > bands[b].hi ||
		    (bands[b].hi < 1.0 && shown >= bands[b].hi) ||
		    (shown >= 1.0 && mt->score < 1.0))
			fail_msg("score %.6f printed \"%s\"", mt->score,
			    mt->explanation->summary);
		return;
	}
	fail_msg("no band in \"%s\"", mt->explanation->summary);
}

/*
 * The skills fit leads (issue: a profile without skills was a "good match
 * (0.51): 0/5 skills"; irrelevant postings were labelled good). Every other
 * feature perfect: no skill gives 0 ("weak"); one skill of five (the least
 * important) stays under the event threshold 0.70 and under "good"; the
 * score never exceeds the skills value, on hand-built pairs and on every
 * pair of the samples.
 */
static void
test_skills_lead(void **state)
{
	JobPosting *p = all_but_skills_posting();
	Profile *c = all_but_skills_profile();
	const char *ids[] = {"spark", "airflow", "sql", "python", "dbt"};
	lm_model m;
	lm_score_env env;
	struct samples smp;
	Match *mt;
	double s;
	bool ok;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	for (int i = 0; i < 5; i++)
		post_skill(p, ids[i], i == 4 ? 1 : 2);
	/* No skills at all, the goals point at the role: eligible, score 0. */
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_vetoes, 0);
	assert_float_equal(mt->score, 0, 0);
	assert_true(band_is(mt, "weak match (0.00): 0/5 skills"));
	match_free(mt);
	/* One skill of five, weight 1 of 9: far below the event threshold. */
	prof_skill(c, "dbt", 2);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(feature(mt, "skills")->value, 1.0 / 9, EPS);
	assert_true(mt->score <= 1.0 / 9 + EPS);
	assert_true(mt->score < 0.70);
	assert_true(band_is(mt, "weak"));
	/* Contributions still add up to the score. */
	s = 0;
	for (size_t i = 0; i < mt->explanation->n_features; i++)
		s += mt->explanation->features[i]->contribution;
	assert_float_equal(s, mt->score, EPS);
	match_free(mt);
	/* Three of five (7 of 9): good, not strong; all five: strong. */
	prof_skill(c, "spark", 2);
	prof_skill(c, "sql", 2);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_true(band_is(mt, "good"));
	match_free(mt);
	prof_skill(c, "airflow", 2);
	prof_skill(c, "python", 2);
	assert_int_equal(lm_score_records(&env, c, p, &s, &ok), LM_OK);
	assert_true(ok);
	assert_float_equal(s, 1.0, EPS);
	/* A posting that lists no skills: the score is at most no_skills_gate
	 * (0.45, "fair" at best). */
	for (size_t i = 0; i < p->n_skills; i++)
		protobuf_c_message_free_unpacked(&p->skills[i]->base, NULL);
	p->n_skills = 0;
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(mt->score, m.params.no_skills_gate, EPS);
	assert_true(band_is(mt, "fair"));
	match_free(mt);
	post_free(p);
	prof_free(c);

	/* Every pair of the samples: score <= skills value (or the gate). */
	samples_load(&smp);
	env = samples_env(&smp);
	for (size_t i = 0; i < smp.nc; i++)
		for (size_t j = 0; j < smp.np; j++) {
			const Lunamatch__V1__FeatureContribution *sk;
			assert_int_equal(
			    lm_explain_pair(&env, smp.cp[i], smp.pp[j],
			        LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, &mt),
			    LM_OK);
			sk = feature(mt, "skills");
			assert_true(
			    mt->score <=
			    (sk != NULL ? sk->value : smp.model->params.no_skills_gate) +
			        EPS);
			if (mt->score >= 0.5)
				assert_true(sk != NULL && sk->value >= 0.5);
			summary_reads_as_band(mt);
			match_free(mt);
		}
	samples_free(&smp);
}

/*
 * A required share just short of all, or just above none, and a score just
 * short of 1 are not printed as 100%, 0% or 1.00 (a candidate missing a
 * skill read "100% of the required importance" and "strong match (1.00)").
 */
static void
test_texts_short_of_perfect(void **state)
{
	JobPosting *p = all_but_skills_posting();
	Profile *c = all_but_skills_profile(), *d = all_but_skills_profile();
	const char *detail;
	lm_model m;
	lm_score_env env;
	Match *mt;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	post_skill(p, "big", 10);
	post_skill(p, "tiny", 0.01f); /* ingest accepts weights in [0, 10] */
	prof_skill(c, "big", 2);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	detail = feature(mt, "skills")->detail;
	assert_true(mt->score < 1.0 && mt->score > 0.99);
	assert_null(strstr(detail, "100%"));
	assert_non_null(strstr(detail, "99.9"));
	assert_true(band_is(mt, "strong match (0.99"));
	summary_reads_as_band(mt);
	match_free(mt);
	/* Only the tiny one: about 0.1%, not 0%. */
	prof_skill(d, "tiny", 2);
	mt = explain(&env, d, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	detail = feature(mt, "skills")->detail;
	assert_null(strstr(detail, " 0%"));
	assert_non_null(strstr(detail, "1 of 2 skills, 0.1%"));
	match_free(mt);
	/* A skill so light that 6 decimals do not tell the share from 100%
	 * nor the score from 1: rounded down, not up. */
	p->skills[1]->weight = 1e-9f;
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_true(mt->score < 1.0);
	assert_non_null(strstr(feature(mt, "skills")->detail, "99.999999%"));
	assert_true(band_is(mt, "strong match (0.999999)"));
	summary_reads_as_band(mt);
	match_free(mt);
	post_free(p);
	prof_free(c);
	prof_free(d);
}

/*
 * Experience and seniority above the posting's never lower the score (the
 * issue's case: a 30-year executive scored 13.6 % below a 5-year mid-level
 * candidate with identical skills for a mid-level job).
 */
static void
test_no_overqualification_penalty(void **state)
{
	JobPosting *p = all_but_skills_posting();
	Profile *mid = all_but_skills_profile(), *exec = all_but_skills_profile();
	lm_model m;
	lm_score_env env;
	double a, b;
	bool ok;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	post_skill(p, "sql", 1);
	post_skill(p, "python", 1);
	prof_skill(mid, "sql", 3);
	prof_skill(exec, "sql", 20);
	exec->years_experience = 30;
	exec->experience_level =
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_EXECUTIVE;
	assert_int_equal(lm_score_records(&env, mid, p, &a, &ok), LM_OK);
	assert_true(ok);
	assert_int_equal(lm_score_records(&env, exec, p, &b, &ok), LM_OK);
	assert_true(ok);
	assert_true(a == b);
	/* Below the posting still counts: an entry-level candidate scores less. */
	mid->experience_level = LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_ENTRY;
	mid->years_experience = 1;
	assert_int_equal(lm_score_records(&env, mid, p, &a, &ok), LM_OK);
	assert_true(a < b);
	post_free(p);
	prof_free(mid);
	prof_free(exec);
}

/*
 * Education counts only where the posting states a degree: a posting that
 * says nothing (or "no degree") scores the same for every education.
 */
static void
test_education_only_when_stated(void **state)
{
	JobPosting *p = all_but_skills_posting();
	Profile *c = all_but_skills_profile();
	lm_model m;
	lm_score_env env;
	double a, b;
	bool ok;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	post_skill(p, "sql", 1);
	prof_skill(c, "sql", 1);
	for (int need = 0; need <= 1; need++) {
		p->education = (Lunamatch__V1__Education) need;
		c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_NONE;
		assert_int_equal(lm_score_records(&env, c, p, &a, &ok), LM_OK);
		c->education = LUNAMATCH__V1__EDUCATION__EDUCATION_DOCTORATE;
		assert_int_equal(lm_score_records(&env, c, p, &b, &ok), LM_OK);
		assert_true(a == b);
		assert_false(has_feature(LM_FEAT_EDUCATION, c, p));
	}
	post_free(p);
	prof_free(c);
}

/*
 * Required and preferred skills: coverage is over the required skills, and
 * preferred ones only add (issue: a posting listing 16 skills, the
 * candidate having 10, ranked below one listing 7 of which the candidate
 * has 6, because nice-to-haves divided the coverage).
 */
static void
test_preferred_skills(void **state)
{
	JobPosting *short_p = post_new("short"), *long_p = post_new("long");
	Profile *c = prof_new("c");
	lm_model m = only(LM_FEAT_SKILLS);
	lm_score_env env = env_of(&m, NULL);
	char id[16];
	double a, b, none;
	bool ok;
	Match *mt;

	(void) state;
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		post_skill(short_p, id, 1);
		post_skill(long_p, id, 1);
		if (i < 6)
			prof_skill(c, id, 2);
	}
	for (int i = 0; i < 9; i++) {
		snprintf(id, sizeof(id), "p%d", i);
		post_skill(long_p, id, 1);
		long_p->skills[long_p->n_skills - 1]->preferred = true;
	}
	/* Without any preferred skill the long posting equals the short one. */
	assert_int_equal(lm_score_records(&env, c, short_p, &a, &ok), LM_OK);
	assert_int_equal(lm_score_records(&env, c, long_p, &none, &ok), LM_OK);
	assert_true(a == none);
	assert_float_equal(a, 6.0 / 7, EPS);
	/* Four preferred ones: the long posting ranks above the short one, by
	 * preferred_share of the gap times the preferred coverage. */
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "p%d", i);
		prof_skill(c, id, 1);
	}
	assert_int_equal(lm_score_records(&env, c, long_p, &b, &ok), LM_OK);
	assert_float_equal(
	    b, 6.0 / 7 + (1.0 / 7) * (4.0 / 9) * m.params.preferred_share, EPS);
	assert_true(b > a);
	/* The explanation says which skills are preferred; importances are
	 * shares of their own kind. */
	mt = explain(&env, c, long_p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_matched_skills, 10);
	for (size_t i = 0; i < mt->explanation->n_matched_skills; i++) {
		const Lunamatch__V1__SkillMatch *sm = mt->explanation->matched_skills[i];
		assert_int_equal(sm->preferred, sm->skill_id[0] == 'p');
		assert_float_equal(
		    sm->importance, sm->preferred ? 1.0 / 9 : 1.0 / 7, EPS);
	}
	match_free(mt);
	/* Required skills are listed before preferred ones, whose importance
	 * is a share of another, lesser, part of the score: with two preferred
	 * skills (a share of 1/2 each) the one required skill the candidate
	 * lacks (1/7) is still what the summary names as missing, not a
	 * nice-to-have, and SUMMARY keeps it among its few. */
	{
		JobPosting *two = post_new("two");
		for (int i = 0; i < 7; i++) {
			snprintf(id, sizeof(id), "r%d", i);
			post_skill(two, id, 1);
		}
		post_skill(two, "q0", 1);
		post_skill(two, "q1", 1);
		two->skills[7]->preferred = two->skills[8]->preferred = true;
		mt = explain(
		    &env, c, two, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
		assert_int_equal(mt->explanation->n_missing_skills, 3);
		assert_string_equal(mt->explanation->missing_skills[0]->skill_id, "r6");
		assert_string_equal(mt->explanation->missing_skills[1]->skill_id, "q0");
		assert_string_equal(mt->explanation->missing_skills[2]->skill_id, "q1");
		assert_float_equal(
		    mt->explanation->missing_skills[1]->importance, 0.5, EPS);
		assert_non_null(strstr(mt->explanation->summary, "missing R6"));
		match_free(mt);
		post_free(two);
	}
	/* A posting whose skills are all preferred treats them as required. */
	for (size_t i = 0; i < short_p->n_skills; i++)
		short_p->skills[i]->preferred = true;
	assert_int_equal(lm_score_records(&env, c, short_p, &b, &ok), LM_OK);
	assert_true(a == b);
	post_free(short_p);
	post_free(long_p);
	prof_free(c);
}

/*
 * An unknown skill (x: id, rare by construction, so the highest idf) weighs
 * no more than the median of the posting's known skills.
 */
static void
test_unknown_skill_weight(void **state)
{
	lm_skill_stats *st = NULL;
	JobPosting *corpus[4], *p = post_new("p");
	lm_posting_prep *pp[4];
	Profile *c = prof_new("c");
	lm_model m = only(LM_FEAT_SKILLS);
	lm_score_env env;
	Match *mt;
	double ia, ib, ic, med;

	(void) state;
	/* Corpus, N = 4: df(a) = 3, df(b) = 2, df(c) = 1. */
	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	for (int i = 0; i < 4; i++) {
		char id[8];
		snprintf(id, sizeof(id), "k%d", i);
		corpus[i] = post_new(id);
		if (i < 3)
			post_skill(corpus[i], "a", 1);
		if (i < 2)
			post_skill(corpus[i], "b", 1);
		if (i < 1)
			post_skill(corpus[i], "c", 1);
		pp[i] = prep_post(corpus[i]);
		assert_int_equal(lm_skill_stats_add(st, pp[i]), LM_OK);
	}
	env = env_of(&m, st);
	post_skill(p, "a", 1);
	post_skill(p, "b", 1);
	post_skill(p, "c", 1);
	post_skill(p, "x:nativeenglishspeaker", 1);
	prof_skill(c, "a", 1);
	ia = log(1 + 4.0 / 4);
	ib = log(1 + 4.0 / 3);
	ic = log(1 + 4.0 / 2);
	med = ib; /* the median of the known ones */
	assert_true(lm_skill_idf(st, "x:nativeenglishspeaker") > ic);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(feature(mt, "skills")->value, ia / (ia + ib + ic + med), EPS);
	for (size_t i = 0; i < mt->explanation->n_missing_skills; i++) {
		const Lunamatch__V1__SkillMatch *sm = mt->explanation->missing_skills[i];
		if (strcmp(sm->skill_id, "x:nativeenglishspeaker") == 0)
			assert_float_equal(
			    sm->importance, med / (ia + ib + ic + med), EPS);
	}
	match_free(mt);
	/* Two known skills: the median is their mean. */
	protobuf_c_message_free_unpacked(&p->skills[2]->base, NULL);
	p->skills[2] = p->skills[3];
	p->n_skills = 3;
	med = (ia + ib) / 2;
	assert_float_equal(
	    value_of(LM_FEAT_SKILLS, c, p) /* by id, no stats */, 1.0 / 3, EPS);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(feature(mt, "skills")->value, ia / (ia + ib + med), EPS);
	match_free(mt);
	for (int i = 0; i < 4; i++) {
		lm_posting_prep_free(pp[i]);
		post_free(corpus[i]);
	}
	lm_skill_stats_free(st);
	post_free(p);
	prof_free(c);
}

/*
 * The cap of an unknown skill comes from the known skills of its own kind:
 * a preferred skill, rare or common, leaves the required coverage R as it
 * was (it moved the median and lowered R from 0.5 to 0.29, and a posting
 * with a nice-to-have ranked below the same one without).
 */
static void
test_unknown_cap_per_kind(void **state)
{
	lm_skill_stats *st = NULL;
	JobPosting *corpus[4], *p[3];
	lm_posting_prep *pp[4];
	Profile *c = prof_new("c"), *cb = prof_new("cb");
	lm_model m = only(LM_FEAT_SKILLS);
	lm_score_env env;
	double ia, ib, share = m.params.preferred_share;

	(void) state;
	/* Corpus, N = 4: df(a) = df(c) = 3, df(b) = 1. */
	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	for (int i = 0; i < 4; i++) {
		char id[8];
		snprintf(id, sizeof(id), "k%d", i);
		corpus[i] = post_new(id);
		if (i < 3) {
			post_skill(corpus[i], "a", 1);
			post_skill(corpus[i], "c", 1);
		} else {
			post_skill(corpus[i], "b", 1);
		}
		pp[i] = prep_post(corpus[i]);
		assert_int_equal(lm_skill_stats_add(st, pp[i]), LM_OK);
	}
	env = env_of(&m, st);
	ia = log(1 + 4.0 / 4);
	ib = log(1 + 4.0 / 2);
	assert_true(lm_skill_idf(st, "x:foo") > (ia + ib) / 2);
	for (int i = 0; i < 3; i++) {
		p[i] = post_new(i == 0 ? "plain" : i == 1 ? "rare-pref" : "common-pref");
		post_skill(p[i], "a", 1);
		post_skill(p[i], "x:foo", 1);
	}
	post_skill(p[1], "b", 1);
	p[1]->skills[2]->preferred = true;
	post_skill(p[2], "c", 1);
	p[2]->skills[2]->preferred = true;
	prof_skill(c, "a", 1);
	prof_skill(cb, "a", 1);
	prof_skill(cb, "b", 1);
	for (int i = 0; i < 3; i++) {
		Match *mt = explain(
		    &env, c, p[i], LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
		/* x:foo is capped at idf(a), the one known required skill. */
		assert_float_equal(feature(mt, "skills")->value, 0.5, EPS);
		for (size_t k = 0; k < mt->explanation->n_missing_skills; k++) {
			const Lunamatch__V1__SkillMatch *sm =
			    mt->explanation->missing_skills[k];
			if (strcmp(sm->skill_id, "x:foo") == 0)
				assert_float_equal(sm->importance, 0.5, EPS);
		}
		match_free(mt);
	}
	/* The preferred skill still fills part of the gap. */
	Match *mt =
	    explain(&env, cb, p[1], LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(feature(mt, "skills")->value, 0.5 + 0.5 * share, EPS);
	match_free(mt);

	/* The index's shares (lm_posting_shares, its pruning bounds) apply the
	 * same per-kind caps as the scorer: each share is the explained
	 * importance, times preferred_share for a preferred skill. Unknown
	 * skills of both kinds, each kind with known skills of other idfs. */
	JobPosting *q = post_new("mixed");
	const char *ids[] = {"a", "x:foo", "b", "c", "x:bar"};
	for (int i = 0; i < 5; i++) {
		post_skill(q, ids[i], 1 + i);
		q->skills[i]->preferred = i >= 2;
	}
	lm_posting_prep *qp = prep_post(q);
	double idf[5], sh[5];
	assert_int_equal(qp->n_skills, 5);
	for (size_t i = 0; i < qp->n_skills; i++)
		idf[i] = lm_skill_idf(st, qp->skills[i].id);
	lm_posting_shares(qp, idf, share, sh);
	mt = explain(&env, c, q, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	for (size_t i = 0; i < qp->n_skills; i++) {
		const Lunamatch__V1__SkillMatch *sm = NULL;
		for (size_t k = 0; k < mt->explanation->n_matched_skills; k++)
			if (strcmp(mt->explanation->matched_skills[k]->skill_id,
			        qp->skills[i].id) == 0)
				sm = mt->explanation->matched_skills[k];
		for (size_t k = 0; k < mt->explanation->n_missing_skills; k++)
			if (strcmp(mt->explanation->missing_skills[k]->skill_id,
			        qp->skills[i].id) == 0)
				sm = mt->explanation->missing_skills[k];
		assert_non_null(sm);
		assert_float_equal(
		    sh[i], sm->importance * (qp->skills[i].preferred ? share : 1), EPS);
	}
	match_free(mt);
	lm_posting_prep_free(qp);
	post_free(q);
	for (int i = 0; i < 4; i++) {
		lm_posting_prep_free(pp[i]);
		post_free(corpus[i]);
	}
	for (int i = 0; i < 3; i++)
		post_free(p[i]);
	lm_skill_stats_free(st);
	prof_free(c);
	prof_free(cb);
}

/* ---- location by distance and remote regions ------------------------------ */

/*
 * On-site and hybrid jobs fit by distance when both sides are geocoded:
 * within commuting distance (commute_km) the place part falls linearly from
 * 1 to location_country_credit, with the distance in the explanation;
 * beyond it a candidate who does not relocate is vetoed (Evanston is near
 * Chicago, Miami is not).
 */
static void
test_location_distance(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_model m = only(LM_FEAT_LOCATION);
	lm_score_env env = env_of(&m, NULL);
	Match *mt;
	double d;

	(void) state;
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE;
	post_loc(p, "Chicago", "US");
	geocode(p->locations[0], 41.85003, -87.65005);
	prof_loc(c, "Evanston", "US");
	geocode(c->locations[0], 42.04114, -87.69006);
	/* 21.5 km by the haversine formula on a 6371.0088 km sphere (shown
	 * rounded to whole km). */
	d = 21.5;
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_vetoes, 0);
	assert_float_equal(feature(mt, "location")->value,
	    1 - (1 - m.params.location_country_credit) * d / m.params.commute_km, 0.002);
	assert_string_equal(
	    feature(mt, "location")->detail, "22 km from the nearest job location");
	match_free(mt);
	/* Miami: far beyond commuting distance. */
	set_str(&c->locations[0]->city, "Miami");
	geocode(c->locations[0], 25.77427, -80.19366);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_vetoes, 1);
	assert_string_equal(mt->explanation->vetoes[0]->code, LM_VETO_LOCATION);
	assert_string_equal(mt->explanation->vetoes[0]->reason,
	    "the nearest job location (Chicago) is 1914 km from the candidate's "
	    "(Miami), beyond commuting distance (50 km), and the candidate does not "
	    "relocate");
	match_free(mt);
	/* Relocating: eligible with the relocation credit. */
	c->willing_to_relocate = true;
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), m.params.relocate_credit, 0);
	/* Just past the commuting distance, the text does not read as within
	 * it: 50.01 km is not "50 km ... needs relocation". */
	geocode(c->locations[0], 41.85003 + 50.014 / 111.195, -87.65005);
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_string_equal(feature(mt, "location")->detail,
	    "50.01 km from the nearest job location: needs relocation");
	match_free(mt);
	geocode(c->locations[0], 25.77427, -80.19366); /* Miami again */
	c->willing_to_relocate = false;
	/* A hybrid job in Chicago and a second location in Miami: Miami fits. */
	post_loc(p, "Miami", "US");
	geocode(p->locations[1], 25.77427, -80.19366);
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), 1.0, EPS);
	/* A location that is not geocoded: city names decide, as before. */
	p->locations[1]->geocoded = false;
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), 1.0, 0); /* same city name */
	post_free(p);
	prof_free(c);
}

/*
 * A remote posting is open where its remote_countries say (by default its
 * own countries); a candidate elsewhere who does not relocate is vetoed
 * with a reason (the issue's case: a candidate in Bengaluru was a "strong
 * match (0.999)" for a remote posting open in the US).
 */
static void
test_remote_region(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	lm_model m;
	lm_score_env env;
	Match *mt;

	(void) state;
	lm_model_defaults(&m);
	env = env_of(&m, NULL);
	set_str(&p->title, "Senior Machine Learning Engineer");
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	post_loc(p, "San Francisco", "US");
	add_str(&p->remote_countries, &p->n_remote_countries, "US");
	post_skill(p, "python", 1);
	prof_skill(c, "python", 5);
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	prof_loc(c, "Bengaluru", "IN");
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_float_equal(mt->score, 0, 0);
	assert_int_equal(mt->explanation->n_vetoes, 1);
	assert_string_equal(mt->explanation->summary,
	    "not eligible: remote work only from US; the candidate is in IN and does "
	    "not relocate");
	match_free(mt);
	/* Open to India as well: eligible, and the place fits. */
	add_str(&p->remote_countries, &p->n_remote_countries, "IN");
	mt = explain(&env, c, p, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
	assert_int_equal(mt->explanation->n_vetoes, 0);
	assert_float_equal(feature(mt, "location")->value, 1.0, 0);
	assert_string_equal(feature(mt, "location")->detail,
	    "remote job, prefers remote; remote work from US, IN: allowed where the "
	    "candidate is");
	match_free(mt);
	post_free(p);
	prof_free(c);
}

/* Applies the job filters jf to the pair: vetoed with reason, or not
 * vetoed when reason is NULL. */
static void
country_filters(const Lunamatch__V1__JobFilters *jf, const Profile *c,
    const JobPosting *p, const char *reason)
{
	lm_filters *f = NULL;
	char err[128];

	assert_int_equal(lm_filters_for_jobs(jf, &f, err, sizeof(err)), LM_OK);
	if (reason != NULL)
		expect_vetoes(f, c, p, reason, 1, LM_VETO_FILTER);
	else
		expect_vetoes(f, c, p, NULL, 0);
	lm_filters_free(f);
}

/*
 * Countries are compared case-insensitively whether they pack into the
 * prep (at most 8 bytes) or not (then the record's texts are compared):
 * the request filters and the remote region give the same answers both
 * ways, in fast and in collect mode.
 */
static void
test_countries_packed_or_not(void **state)
{
	JobPosting *p = post_new("p");
	Profile *c = prof_new("c");
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	char *longc[] = {"deutschland"}, *shortc[] = {"de"},
	     *both[] = {"DE", "Deutschland"};

	(void) state;
	post_skill(p, "python", 1);
	prof_skill(c, "python", 5);
	post_loc(p, "Berlin", "Deutschland");
	jf.n_countries = 1;
	jf.countries = longc;
	country_filters(&jf, c, p, NULL); /* neither packs */
	jf.countries = shortc;
	country_filters(&jf, c, p, "filter: no job location in the requested countries");
	free(p->locations[0]->country);
	p->locations[0]->country = lmt_strdup("De");
	country_filters(&jf, c, p, NULL); /* both pack */
	jf.countries = longc;
	country_filters(&jf, c, p, "filter: no job location in the requested countries");
	jf.n_countries = 2;
	jf.countries = both;
	country_filters(&jf, c, p, NULL);
	jf.n_countries = 0;

	/* A remote posting open in a country that does not pack. */
	p->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	c->remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	add_str(&p->remote_countries, &p->n_remote_countries, "Oesterreich");
	prof_loc(c, "Wien", "OESTERREICH");
	expect_vetoes(NULL, c, p, NULL, 0);
	free(c->locations[0]->country);
	c->locations[0]->country = lmt_strdup("AT");
	expect_vetoes(NULL, c, p,
	    "remote work only from Oesterreich; the candidate is in AT and does not "
	    "relocate",
	    1, LM_VETO_LOCATION);
	free(p->remote_countries[0]);
	p->remote_countries[0] = lmt_strdup("at");
	expect_vetoes(NULL, c, p, NULL, 0); /* both pack */
	post_free(p);
	prof_free(c);

	/* A posting with more locations than a profile's prep packs: the fifth
	 * is in the candidate's country. */
	p = post_new("p");
	c = prof_new("c");
	post_skill(p, "python", 1);
	prof_skill(c, "python", 5);
	post_loc(p, "Paris", "FR");
	post_loc(p, "Madrid", "ES");
	post_loc(p, "Rome", "IT");
	post_loc(p, "Lisbon", "PT");
	prof_loc(c, "Vienna", "at");
	expect_vetoes(NULL, c, p,
	    "no job location in the candidate's countries, and the candidate does "
	    "not relocate",
	    1, LM_VETO_LOCATION);
	post_loc(p, "Vienna", "AT");
	expect_vetoes(NULL, c, p, NULL, 0);
	assert_float_equal(value_of(LM_FEAT_LOCATION, c, p), 1.0, 0); /* same city */
	jf.n_countries = 1;
	jf.countries = shortc;
	country_filters(&jf, c, p, "filter: no job location in the requested countries");
	jf.countries = (char *[]){"AT"};
	country_filters(&jf, c, p, NULL);
	post_free(p);
	prof_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_idf),
	    cmocka_unit_test(test_request_prep_shares_nothing),
	    cmocka_unit_test(test_skills),
	    cmocka_unit_test(test_experience),
	    cmocka_unit_test(test_seniority),
	    cmocka_unit_test(test_salary),
	    cmocka_unit_test(test_location),
	    cmocka_unit_test(test_location_detail),
	    cmocka_unit_test(test_education),
	    cmocka_unit_test(test_career_goals),
	    cmocka_unit_test(test_freshness),
	    cmocka_unit_test(test_semantic),
	    cmocka_unit_test(test_weighted_mean),
	    cmocka_unit_test(test_vetoed_contributions),
	    cmocka_unit_test(test_vetoes),
	    cmocka_unit_test(test_job_filters),
	    cmocka_unit_test(test_countries_packed_or_not),
	    cmocka_unit_test(test_candidate_filters),
	    cmocka_unit_test(test_filter_employment_types),
	    cmocka_unit_test(test_filter_salary_max),
	    cmocka_unit_test(test_explanation_order),
	    cmocka_unit_test(test_improvements),
	    cmocka_unit_test(test_improvement_budget),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_sample_scores_pinned),
	    cmocka_unit_test(test_scan_samples),
	    cmocka_unit_test(test_scan_edges),
	    cmocka_unit_test(test_skill_symbols),
	    cmocka_unit_test(test_no_overlap),
	    cmocka_unit_test(test_no_overlap_samples),
	    cmocka_unit_test(test_num_pair),
	    cmocka_unit_test(test_explain_texts_stay_utf8),
	    cmocka_unit_test(test_skills_lead),
	    cmocka_unit_test(test_texts_short_of_perfect),
	    cmocka_unit_test(test_no_overqualification_penalty),
	    cmocka_unit_test(test_education_only_when_stated),
	    cmocka_unit_test(test_preferred_skills),
	    cmocka_unit_test(test_unknown_skill_weight),
	    cmocka_unit_test(test_unknown_cap_per_kind),
	    cmocka_unit_test(test_location_distance),
	    cmocka_unit_test(test_remote_region),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
