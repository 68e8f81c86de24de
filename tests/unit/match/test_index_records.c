/*
 * test_index_records.c - how the match index keeps records: as their
 * prepared form and packed bytes, the record decoded only for what a
 * response returns or explains. Every answer must be the one the scorer
 * gives on the records themselves (lm_explain_records over the same IDF
 * statistics): matches with their explanations, titles and companies,
 * ExplainMatch with compliance warnings, GetPosting, GetProfile, the top
 * lists of events; for records kept as bytes, for a posting and a profile
 * whose country does not pack (kept decoded, and compared with records
 * kept as bytes), for a CLOSED posting, and for a profile with five
 * located countries. A failing decode (injected through the index's fault
 * seam) fails the request with LM_ENOMEM and changes nothing; a query
 * decodes only its subject and the records it returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "score.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;
typedef Lunamatch__V1__Location Location;

#define NOW 1750000000LL
#define DAY 86400LL

#define REMOTE LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE
#define ONSITE LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE
#define CLOSED LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED

static Location *
location(const char *city, const char *country)
{
	Location *l = lmt_calloc(1, sizeof(*l));

	lunamatch__v1__location__init(l);
	l->city = lmt_strdup(city);
	l->country = lmt_strdup(country);
	return l;
}

static char **
strs(size_t n, const char *const *v)
{
	char **out = lmt_calloc(n, sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = lmt_strdup(v[i]);
	return out;
}

static const char *const post_ids[] = {"p-berlin", "p-remote", "p-long", "p-closed"};
static const char *const prof_ids[] = {"c-five", "c-warsaw", "c-long"};
#define NPOST (sizeof(post_ids) / sizeof(post_ids[0]))
#define NPROF (sizeof(prof_ids) / sizeof(prof_ids[0]))

/* Posting i of post_ids, a new copy each call. p-long's country does not
 * pack into 8 bytes: the index keeps it decoded. */
static JobPosting *
posting(size_t i)
{
	static const char *const sk[] = {"python", "sql", "go", "spark"};
	static const char *const group[] = {"go", "rust"};
	JobPosting *p = lmt_calloc(1, sizeof(*p));

	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup(post_ids[i]);
	p->version = 3;
	p->title =
	    lmt_strdup(i == 1 ? "Remote Python Developer" : "Senior Data Engineer");
	p->company = lmt_strdup(i == 1 ? "Remote Co" : "Acme");
	p->category = lmt_strdup("Data");
	p->industry = lmt_strdup("Software");
	p->posted_at = NOW - 3 * DAY;
	p->min_years_experience = 2;
	p->remote = i == 1 ? REMOTE : ONSITE;
	p->n_locations = 1;
	p->locations = lmt_calloc(1, sizeof(*p->locations));
	p->locations[0] = i == 2 ? location("Cair Paravel", "Republic-of-Narnia")
	                         : location("Berlin", "DE");
	if (i == 2) { /* and Berlin: its countries are compared as texts */
		p->locations = realloc(p->locations, 2 * sizeof(*p->locations));
		assert_non_null(p->locations);
		p->locations[1] = location("Berlin", "DE");
		p->n_locations = 2;
	}
	if (i == 1) {
		static const char *const rc[] = {"NL", "FR"};
		p->n_remote_countries = 2;
		p->remote_countries = strs(2, rc);
	}
	if (i == 3)
		p->status = CLOSED;
	p->n_skills = i == 1 ? 2 : 4;
	p->skills = lmt_calloc(p->n_skills, sizeof(*p->skills));
	for (size_t k = 0; k < p->n_skills; k++) {
		Lunamatch__V1__PostingSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__posting_skill__init(s);
		s->skill_id = lmt_strdup(sk[k]);
		s->name = lmt_strdup(k == 0 ? "Python 3" : sk[k]);
		s->weight = (float) (k + 1);
		s->preferred = k == 3;
		p->skills[k] = s;
	}
	if (i == 0) {
		Lunamatch__V1__RequirementGroup *g = lmt_calloc(1, sizeof(*g));
		Lunamatch__V1__ComplianceWarning *w = lmt_calloc(1, sizeof(*w));
		lunamatch__v1__requirement_group__init(g);
		g->label = lmt_strdup("Go or Rust");
		g->n_skill_ids = 2;
		g->skill_ids = strs(2, group);
		p->n_requirement_groups = 1;
		p->requirement_groups = lmt_calloc(1, sizeof(*p->requirement_groups));
		p->requirement_groups[0] = g;
		lunamatch__v1__compliance_warning__init(w);
		w->rule = lmt_strdup("age-recent-graduate");
		w->phrase = lmt_strdup("recent graduate");
		p->n_compliance_warnings = 1;
		p->compliance_warnings = lmt_calloc(1, sizeof(*p->compliance_warnings));
		p->compliance_warnings[0] = w;
		p->n_embedding = 3;
		p->embedding = lmt_calloc(3, sizeof(float));
		p->embedding[0] = 0.5f;
		p->embedding[1] = 0.25f;
		p->embedding[2] = -0.5f;
	}
	return p;
}

/* Profile i of prof_ids. c-five names five located countries; c-long's
 * country does not pack: the index keeps it decoded. */
static Profile *
profile(size_t i)
{
	static const char *const sk[] = {"python", "sql", "go"};
	static const char *const city[] = {
	    "Paris", "Madrid", "Rome", "Amsterdam", "Berlin"};
	static const char *const cc[] = {"FR", "ES", "IT", "NL", "DE"};
	Profile *c = lmt_calloc(1, sizeof(*c));

	lunamatch__v1__candidate_profile__init(c);
	c->id = lmt_strdup(prof_ids[i]);
	c->version = 2;
	c->headline = lmt_strdup(i == 0 ? "Data engineer" : "Python developer");
	c->willing_to_relocate = i == 2;
	c->years_experience = 5;
	c->n_skills = i == 0 ? 3 : 1;
	c->skills = lmt_calloc(c->n_skills, sizeof(*c->skills));
	for (size_t k = 0; k < c->n_skills; k++) {
		Lunamatch__V1__CandidateSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__candidate_skill__init(s);
		s->skill_id = lmt_strdup(sk[k]);
		s->years = 3;
		c->skills[k] = s;
	}
	c->n_locations = i == 0 ? 5 : 1;
	c->locations = lmt_calloc(c->n_locations, sizeof(*c->locations));
	for (size_t k = 0; k < c->n_locations; k++)
		c->locations[k] = i == 0 ? location(city[k], cc[k])
		                  : i == 1
		                      ? location("Warsaw", "PL")
		                      : location("Cair Paravel", "republic-of-NARNIA");
	if (i == 0) {
		c->n_embedding = 3;
		c->embedding = lmt_calloc(3, sizeof(float));
		c->embedding[0] = 0.5f;
		c->embedding[1] = 0.5f;
		c->embedding[2] = 0.0f;
	}
	return c;
}

/* The records as the test keeps them, and the index holding copies. */
struct world {
	lm_model m;
	lm_index *idx;
	JobPosting *p[NPOST];
	Profile *c[NPROF];
	lm_skill_stats *stats; /* over p[], as the index counts them */
	lm_posting_prep *pp[NPOST];
};

static void
world_init(struct world *w)
{
	memset(w, 0, sizeof(*w));
	lm_model_defaults(&w->m);
	assert_int_equal(lm_index_new(&w->m, &w->idx), LM_OK);
	assert_int_equal(lm_skill_stats_new(&w->stats), LM_OK);
	for (size_t i = 0; i < NPOST; i++) {
		w->p[i] = posting(i);
		assert_int_equal(lm_index_put_posting(w->idx, posting(i), i + 1), LM_OK);
		assert_int_equal(lm_posting_prep_new(w->p[i], &w->pp[i]), LM_OK);
		if (lm_skill_stats_counts(w->p[i]))
			assert_int_equal(lm_skill_stats_add(w->stats, w->pp[i]), LM_OK);
	}
	for (size_t i = 0; i < NPROF; i++) {
		w->c[i] = profile(i);
		assert_int_equal(
		    lm_index_put_profile(w->idx, profile(i), NPOST + i + 1), LM_OK);
	}
}

static void
world_free(struct world *w)
{
	lm_index_free(w->idx);
	for (size_t i = 0; i < NPOST; i++) {
		lm_posting_prep_free(w->pp[i]);
		protobuf_c_message_free_unpacked(&w->p[i]->base, NULL);
	}
	for (size_t i = 0; i < NPROF; i++)
		protobuf_c_message_free_unpacked(&w->c[i]->base, NULL);
	lm_skill_stats_free(w->stats);
}

static size_t
post_index(const char *id)
{
	for (size_t i = 0; i < NPOST; i++)
		if (strcmp(post_ids[i], id) == 0)
			return i;
	fail_msg("unknown posting %s", id);
	return 0;
}

static size_t
prof_index(const char *id)
{
	for (size_t i = 0; i < NPROF; i++)
		if (strcmp(prof_ids[i], id) == 0)
			return i;
	fail_msg("unknown profile %s", id);
	return 0;
}

static void
assert_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t na = protobuf_c_message_get_packed_size(a);
	size_t nb = protobuf_c_message_get_packed_size(b);
	uint8_t *ba = lmt_calloc(na + 1, 1), *bb = lmt_calloc(nb + 1, 1);

	protobuf_c_message_pack(a, ba);
	protobuf_c_message_pack(b, bb);
	assert_int_equal(na, nb);
	assert_memory_equal(ba, bb, na);
	free(ba);
	free(bb);
}

/* What the scorer says of the pair on the records, at level. */
static Lunamatch__V1__Match *
reference(const struct world *w, size_t ci, size_t pi, Lunamatch__V1__ExplainLevel level)
{
	lm_score_env env = {&w->m, w->stats, NOW, NULL};
	Lunamatch__V1__Match *m = NULL;

	assert_int_equal(lm_explain_records(&env, w->c[ci], w->p[pi], level, &m), LM_OK);
	return m;
}

static Lunamatch__V1__MatchJobsResponse *
match_jobs(lm_index *idx, const char *cand, uint32_t top_k, int want)
{
	Lunamatch__V1__MatchJobsRequest q = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	char err[128];

	q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	q.candidate_id = (char *) cand;
	q.top_k = top_k;
	q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	assert_int_equal(lm_index_match_jobs(idx, &q, NOW, &r, err, sizeof(err)), want);
	return r;
}

static Lunamatch__V1__MatchCandidatesResponse *
match_candidates(lm_index *idx, const char *job, int want)
{
	Lunamatch__V1__MatchCandidatesRequest q =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *r = NULL;
	char err[128];

	q.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	q.job_id = (char *) job;
	q.top_k = 10;
	q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	assert_int_equal(
	    lm_index_match_candidates(idx, &q, NOW, &r, err, sizeof(err)), want);
	return r;
}

/* The explanation of a stored pair has the location detail `detail` (NULL:
 * no location feature is checked) and among its vetoes `veto` (NULL: it
 * has none). */
static void
assert_location(lm_index *idx, const char *cand, const char *job, const char *detail,
    const char *veto)
{
	Lunamatch__V1__ExplainMatchResponse *e = NULL;
	const Lunamatch__V1__Explanation *x;
	bool found = detail == NULL;

	assert_int_equal(lm_index_explain(idx, cand, job, NOW, &e, NULL), LM_OK);
	x = e->match->explanation;
	for (size_t k = 0; k < x->n_features; k++)
		if (detail != NULL && strcmp(x->features[k]->feature, "location") == 0) {
			assert_string_equal(x->features[k]->detail, detail);
			found = true;
		}
	assert_true(found);
	found = veto == NULL;
	for (size_t k = 0; k < x->n_vetoes; k++) {
		assert_non_null(veto);
		found |= strcmp(x->vetoes[k]->code, veto) == 0;
	}
	assert_true(found);
	protobuf_c_message_free_unpacked(&e->base, NULL);
}

/* Every answer of the index about the records is the scorer's on the
 * records themselves. */
static void
test_answers_are_the_records(void **state)
{
	struct world w;
	size_t matched = 0;

	(void) state;
	world_init(&w);
	for (size_t ci = 0; ci < NPROF; ci++) {
		Lunamatch__V1__MatchJobsResponse *r =
		    match_jobs(w.idx, prof_ids[ci], 10, LM_OK);
		for (size_t k = 0; k < r->n_matches; k++) {
			Lunamatch__V1__Match *m = r->matches[k];
			Lunamatch__V1__Match *ref =
			    reference(&w, ci, post_index(m->job_id),
			        LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
			ref->rank = m->rank;
			assert_same_message(&m->base, &ref->base);
			protobuf_c_message_free_unpacked(&ref->base, NULL);
			matched++;
		}
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	/* c-five meets p-berlin (DE) and p-remote (NL) without relocating. */
	assert_true(matched >= 2);

	for (size_t pi = 0; pi < NPOST; pi++) {
		Lunamatch__V1__MatchCandidatesResponse *r =
		    match_candidates(w.idx, post_ids[pi], LM_OK);
		JobPosting *got = NULL;
		uint64_t size = 0;

		for (size_t k = 0; k < r->n_matches; k++) {
			Lunamatch__V1__Match *m = r->matches[k];
			size_t ci = prof_index(m->candidate_id);
			Lunamatch__V1__Match *ref = reference(
			    &w, ci, pi, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
			ref->rank = m->rank;
			/* A candidate's match carries its headline, no company. */
			free(ref->title);
			ref->title = lmt_strdup(w.c[ci]->headline);
			free(ref->company);
			ref->company = (char *) protobuf_c_empty_string;
			assert_same_message(&m->base, &ref->base);
			protobuf_c_message_free_unpacked(&ref->base, NULL);
		}
		assert_true(pi != 3 || r->n_matches == 0); /* CLOSED */
		protobuf_c_message_free_unpacked(&r->base, NULL);

		/* GetPosting: the record as put, CLOSED ones too. */
		if (pi < NPROF) {
			Profile *gc = NULL;
			assert_int_equal(
			    lm_index_get_profile(w.idx, prof_ids[pi], &gc), LM_OK);
			assert_same_message(&gc->base, &w.c[pi]->base);
			protobuf_c_message_free_unpacked(&gc->base, NULL);
			assert_int_equal(
			    lm_index_record_size(w.idx, false, prof_ids[pi], &size),
			    LM_OK);
			assert_int_equal(
			    size, protobuf_c_message_get_packed_size(&w.c[pi]->base));
		}
		assert_int_equal(lm_index_get_posting(w.idx, post_ids[pi], &got), LM_OK);
		assert_same_message(&got->base, &w.p[pi]->base);
		protobuf_c_message_free_unpacked(&got->base, NULL);
		assert_int_equal(
		    lm_index_record_size(w.idx, true, post_ids[pi], &size), LM_OK);
		assert_int_equal(
		    size, protobuf_c_message_get_packed_size(&w.p[pi]->base));

		/* ExplainMatch of every pair, vetoed or not. */
		for (size_t ci = 0; ci < NPROF; ci++) {
			Lunamatch__V1__ExplainMatchResponse *e = NULL;
			Lunamatch__V1__Match *ref = reference(
			    &w, ci, pi, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL);
			assert_int_equal(lm_index_explain(w.idx, prof_ids[ci],
			                     post_ids[pi], NOW, &e, NULL),
			    LM_OK);
			assert_same_message(&e->match->base, &ref->base);
			assert_int_equal(
			    e->n_compliance_warnings, w.p[pi]->n_compliance_warnings);
			for (size_t k = 0; k < e->n_compliance_warnings; k++)
				assert_same_message(&e->compliance_warnings[k]->base,
				    &w.p[pi]->compliance_warnings[k]->base);
			assert_int_equal(e->index_seq, NPOST + NPROF);
			protobuf_c_message_free_unpacked(&e->base, NULL);
			protobuf_c_message_free_unpacked(&ref->base, NULL);
		}
	}

	/* c-five's fifth country is compared with p-berlin's without either
	 * record: same city; c-warsaw is too far from it; p-remote allows
	 * work from c-five's fourth country. */
	assert_location(w.idx, "c-five", "p-berlin", "same place", NULL);
	assert_location(w.idx, "c-warsaw", "p-berlin", NULL, "LOCATION");
	assert_location(w.idx, "c-five", "p-remote",
	    "remote work from NL, FR: allowed where the candidate is", NULL);
	/* p-long's countries do not all pack: they are compared as texts, with
	 * c-five's unpacked from its prep (its record is not kept), with
	 * c-long's from its record. */
	assert_location(w.idx, "c-five", "p-long", "same place", NULL);
	assert_location(w.idx, "c-warsaw", "p-long", NULL, "LOCATION");
	assert_location(w.idx, "c-long", "p-long", "same place", NULL);

	/* The top lists of events carry the summaries of the records. */
	for (size_t ci = 0; ci < NPROF; ci++) {
		lm_top_list l;
		assert_int_equal(
		    lm_index_top_for_profile(w.idx, prof_ids[ci], 10, 0, NOW, &l), LM_OK);
		for (size_t k = 0; k < l.n; k++) {
			Lunamatch__V1__Match *ref =
			    reference(&w, ci, post_index(l.items[k].id),
			        LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
			assert_string_equal(
			    l.items[k].summary, ref->explanation->summary);
			protobuf_c_message_free_unpacked(&ref->base, NULL);
		}
		lm_top_list_clear(&l);
	}
	for (size_t pi = 0; pi < NPOST; pi++) {
		lm_top_list l;
		assert_int_equal(
		    lm_index_top_for_posting(w.idx, post_ids[pi], 10, 0, NOW, &l), LM_OK);
		for (size_t k = 0; k < l.n; k++) {
			Lunamatch__V1__Match *ref =
			    reference(&w, prof_index(l.items[k].id), pi,
			        LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY);
			assert_string_equal(
			    l.items[k].summary, ref->explanation->summary);
			protobuf_c_message_free_unpacked(&ref->base, NULL);
		}
		lm_top_list_clear(&l);
	}
	world_free(&w);
}

/* The seam: counts the decodes of records asked about and fails them when
 * fail is set; every other step goes through. */
struct decodes {
	int asked;
	bool fail;
};

static int
decode_fault(void *arg, lm_index_alloc what)
{
	struct decodes *d = arg;

	if (what != LM_INDEX_ALLOC_RECORD)
		return LM_OK;
	d->asked++;
	return d->fail ? LM_ENOMEM : LM_OK;
}

static uint8_t *
packed(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *b;

	*len = protobuf_c_message_get_packed_size(m);
	b = lmt_calloc(*len + 1, 1);
	protobuf_c_message_pack(m, b);
	return b;
}

/* A query decodes only the postings it returns; when a decode fails, the
 * request fails with LM_ENOMEM and the next one answers as before. */
static void
test_decode_only_returned_and_failing(void **state)
{
	struct world w;
	struct decodes d = {0, false};
	Lunamatch__V1__MatchJobsResponse *r;
	Lunamatch__V1__ExplainMatchResponse *e = NULL;
	JobPosting *got = NULL;
	lm_top_list l;
	uint8_t *before, *after;
	size_t nb, na, kept = 0;

	(void) state;
	world_init(&w);
	r = match_jobs(w.idx, "c-five", 10, LM_OK);
	assert_true(r->n_matches >= 2);
	before = packed(&r->base, &nb);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	lm_index_set_fault(w.idx, decode_fault, &d);
	r = match_jobs(w.idx, "c-five", 1, LM_OK);
	assert_int_equal(r->n_matches, 1);
	kept = strcmp(r->matches[0]->job_id, "p-long") == 0;
	/* The subject and the one match returned, unless kept decoded. */
	assert_int_equal(d.asked, 2 - (int) kept);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	d.fail = true;
	match_jobs(w.idx, "c-five", 10, LM_ENOMEM);
	match_candidates(w.idx, "p-berlin", LM_ENOMEM);
	assert_int_equal(
	    lm_index_explain(w.idx, "c-five", "p-berlin", NOW, &e, NULL), LM_ENOMEM);
	assert_null(e);
	assert_int_equal(lm_index_get_posting(w.idx, "p-berlin", &got), LM_ENOMEM);
	assert_null(got);
	assert_int_equal(
	    lm_index_top_for_profile(w.idx, "c-five", 10, 0, NOW, &l), LM_ENOMEM);
	assert_int_equal(l.n, 0);
	assert_int_equal(
	    lm_index_top_for_posting(w.idx, "p-berlin", 10, 0, NOW, &l), LM_ENOMEM);
	{
		Profile *gc = NULL;
		assert_int_equal(lm_index_get_profile(w.idx, "c-five", &gc), LM_ENOMEM);
		assert_null(gc);
		/* Records kept decoded need no decode. */
		assert_int_equal(lm_index_get_profile(w.idx, "c-long", &gc), LM_OK);
		protobuf_c_message_free_unpacked(&gc->base, NULL);
	}
	assert_int_equal(lm_index_get_posting(w.idx, "p-long", &got), LM_OK);
	protobuf_c_message_free_unpacked(&got->base, NULL);
	lm_index_set_fault(w.idx, NULL, NULL);

	r = match_jobs(w.idx, "c-five", 10, LM_OK);
	after = packed(&r->base, &na);
	assert_int_equal(na, nb);
	assert_memory_equal(after, before, nb);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	free(before);
	free(after);
	world_free(&w);
}

/* A posting replaced by a new version answers with the new one: its
 * bytes, its texts, its explanation. */
static void
test_replaced_posting(void **state)
{
	struct world w;
	JobPosting *p, *got = NULL;
	Lunamatch__V1__MatchJobsResponse *r;

	(void) state;
	world_init(&w);
	p = posting(0);
	p->version = 4;
	free(p->title);
	p->title = lmt_strdup("Staff Data Engineer");
	free(p->company);
	p->company = lmt_strdup("Acme Two");
	assert_int_equal(lm_index_put_posting(w.idx, p, 99), LM_OK);
	assert_int_equal(lm_index_get_posting(w.idx, "p-berlin", &got), LM_OK);
	assert_int_equal(got->version, 4);
	assert_string_equal(got->company, "Acme Two");
	protobuf_c_message_free_unpacked(&got->base, NULL);
	r = match_jobs(w.idx, "c-five", 10, LM_OK);
	for (size_t k = 0; k < r->n_matches; k++)
		if (strcmp(r->matches[k]->job_id, "p-berlin") == 0) {
			assert_string_equal(r->matches[k]->title, "Staff Data Engineer");
			assert_string_equal(r->matches[k]->company, "Acme Two");
		}
	assert_int_equal(r->index_seq, 99);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	world_free(&w);
}

/*
 * The improvements of a query's FULL matches share one budget
 * (LM_EXPLAIN_IMPROVE_BUDGET, lm_explain_pair_within), spent in rank order:
 * a posting with 100 skills and 20 requirement groups of 20 costs each
 * match 502 tries of 501 comparisons, so its best 15 matches have their
 * improvements and the later ones none, where without the budget a
 * MatchCandidates of 1000 matches would score pairs again for seconds
 * under the index's read lock. Each match has the improvements that
 * ExplainMatch, which has no budget, gives the same pair.
 */
static void
test_improvement_budget_shared(void **state)
{
	enum { NSKILL = 100, NGROUP = 20, NGSKILL = 20, NCAND = 20 };
	const uint64_t cost =
	    (uint64_t) (NSKILL + NGROUP * NGSKILL + 2) * (NSKILL + NGROUP * NGSKILL + 1);
	const size_t funded = LM_EXPLAIN_IMPROVE_BUDGET / cost;
	lm_model m;
	lm_index *idx = NULL;
	JobPosting *p = lmt_calloc(1, sizeof(*p));
	Lunamatch__V1__MatchCandidatesRequest q =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *r = NULL;
	char id[32], err[128];

	(void) state;
	assert_int_equal(funded, 15);
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup("p-big");
	p->version = 1;
	p->title = lmt_strdup("Platform engineer");
	p->company = lmt_strdup("Acme");
	p->posted_at = NOW - DAY;
	p->remote = REMOTE;
	p->n_skills = NSKILL;
	p->skills = lmt_calloc(NSKILL, sizeof(*p->skills));
	for (size_t k = 0; k < NSKILL; k++) {
		Lunamatch__V1__PostingSkill *sk = lmt_calloc(1, sizeof(*sk));
		lunamatch__v1__posting_skill__init(sk);
		snprintf(id, sizeof(id), k == 0 ? "python" : "skill-%03zu", k);
		sk->skill_id = lmt_strdup(id);
		sk->name = lmt_strdup(id);
		sk->weight = 1;
		p->skills[k] = sk;
	}
	p->n_requirement_groups = NGROUP;
	p->requirement_groups = lmt_calloc(NGROUP, sizeof(*p->requirement_groups));
	for (size_t g = 0; g < NGROUP; g++) {
		Lunamatch__V1__RequirementGroup *rg = lmt_calloc(1, sizeof(*rg));
		lunamatch__v1__requirement_group__init(rg);
		rg->label = lmt_strdup("Python or others");
		rg->n_skill_ids = NGSKILL;
		rg->skill_ids = lmt_calloc(NGSKILL, sizeof(*rg->skill_ids));
		for (size_t k = 0; k < NGSKILL; k++) {
			snprintf(
			    id, sizeof(id), k == 0 ? "python" : "g%02zu-%02zu", g, k);
			rg->skill_ids[k] = lmt_strdup(id);
		}
		p->requirement_groups[g] = rg;
	}
	assert_int_equal(lm_index_put_posting(idx, p, 1), LM_OK);
	for (size_t i = 0; i < NCAND; i++) {
		Profile *c = lmt_calloc(1, sizeof(*c));
		Lunamatch__V1__CandidateSkill *sk = lmt_calloc(1, sizeof(*sk));
		lunamatch__v1__candidate_profile__init(c);
		snprintf(id, sizeof(id), "c-%02zu", i);
		c->id = lmt_strdup(id);
		c->version = 1;
		c->headline = lmt_strdup("Python developer");
		c->years_experience = (float) (1 + i % 7);
		c->n_skills = 1;
		c->skills = lmt_calloc(1, sizeof(*c->skills));
		lunamatch__v1__candidate_skill__init(sk);
		sk->skill_id = lmt_strdup("python");
		sk->years = (float) (1 + i % 5);
		c->skills[0] = sk;
		assert_int_equal(lm_index_put_profile(idx, c, 100 + i), LM_OK);
	}

	q.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	q.job_id = "p-big";
	q.top_k = 1000;
	q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	assert_int_equal(
	    lm_index_match_candidates(idx, &q, NOW, &r, err, sizeof(err)), LM_OK);
	assert_int_equal(r->n_matches, NCAND);
	for (size_t i = 0; i < r->n_matches; i++) {
		const Lunamatch__V1__Match *mt = r->matches[i];
		if (i >= funded) {
			assert_int_equal(mt->explanation->n_improvements, 0);
			continue;
		}
		Lunamatch__V1__ExplainMatchResponse *e = NULL;
		assert_int_equal(
		    lm_index_explain(idx, mt->candidate_id, "p-big", NOW, &e, NULL),
		    LM_OK);
		assert_int_equal(mt->explanation->n_improvements,
		    e->match->explanation->n_improvements);
		assert_true(mt->explanation->n_improvements > 0);
		for (size_t k = 0; k < mt->explanation->n_improvements; k++)
			assert_string_equal(mt->explanation->improvements[k]->action,
			    e->match->explanation->improvements[k]->action);
		protobuf_c_message_free_unpacked(&e->base, NULL);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	lm_index_free(idx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answers_are_the_records),
	    cmocka_unit_test(test_decode_only_returned_and_failing),
	    cmocka_unit_test(test_replaced_posting),
	    cmocka_unit_test(test_improvement_budget_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
