/*
 * test_index_sweep.c - one rule of the index's sweep (docs/scoring.md,
 * Ranking, Completing), on data built to need it: a completed entry lowers
 * its record's bound of what it lacks (the least `after` of its entries
 * read) only if it precedes every entry still unread.
 *
 * The candidate has the skills A, F, P and Q; scores are skills values
 * (no other feature is present), so a posting's score is the sum of its
 * shares of those skills. The postings, all listed at once at the final
 * statistics (lm_index_loading) so that the drift is 1:
 *
 * - 5,000 fillers with A (share 0.15) and V (0.85): score 0.15. They make
 *   the seed stop early and set the bar to 0.15.
 * - X with W (0.82) and Q (0.18): score 0.18. Its Q entry, keyed 0.18,
 *   makes the unit of Q's lowest tier (keys below 0.2) one that finds.
 * - R with U (0.845), F (0.06), P (0.05) and Q (0.045), in that order:
 *   score 0.155, so R is in the top 10. Keys: F 0.155 (found through it),
 *   P 0.095 and Q 0.045. P's lowest tier has only keys below the bar: a
 *   later band, left unread when R is pruned. Q's entry is below the bar
 *   in a unit that finds, so the first band completes it, and what follows
 *   it is 0. It comes after P in R's order, so R's missing share is P's,
 *   0.05: with `after` lowered to 0 R's bound would be 0.06 + 0.045, below
 *   the bar, and R would be dropped from the answer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "lmtest.h"
#include "lunamatch/error.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;

#define NOW     1750000000LL
#define FILLERS 5000

struct skill {
	const char *id;
	float weight;
};

/* A posting with only skills (all required): no other feature is present
 * in its pairs, so a pair's score is its skills value. */
static JobPosting *
posting(const char *id, const struct skill *sk, size_t n)
{
	JobPosting *p = lmt_calloc(1, sizeof(*p));

	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup(id);
	p->version = 1;
	p->title = lmt_strdup("Engineer");
	p->n_skills = n;
	p->skills = lmt_calloc(n, sizeof(*p->skills));
	for (size_t i = 0; i < n; i++) {
		Lunamatch__V1__PostingSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__posting_skill__init(s);
		s->skill_id = lmt_strdup(sk[i].id);
		s->name = lmt_strdup(sk[i].id);
		s->weight = sk[i].weight;
		p->skills[i] = s;
	}
	return p;
}

static Profile *
profile(const char *id, const char *const *skills, size_t n)
{
	Profile *c = lmt_calloc(1, sizeof(*c));

	lunamatch__v1__candidate_profile__init(c);
	c->id = lmt_strdup(id);
	c->version = 1;
	c->headline = lmt_strdup("Engineer");
	c->n_skills = n;
	c->skills = lmt_calloc(n, sizeof(*c->skills));
	for (size_t i = 0; i < n; i++) {
		Lunamatch__V1__CandidateSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__candidate_skill__init(s);
		s->skill_id = lmt_strdup(skills[i]);
		c->skills[i] = s;
	}
	return c;
}

struct hit {
	char id[16];
	double score;
};

static int
cmp_hit(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void
test_completed_entry_after_unread(void **state)
{
	/* idf: U, F, P and W are in one posting each, Q in two, A and V in
	 * every filler; the weights make the shares above. */
	const double n = FILLERS + 2, idf1 = log(1 + n / 2), idf2 = log(1 + n / 3);
	const struct skill filler[] = {{"a", 0.15f}, {"v", 0.85f}};
	const struct skill x[] = {{"w", 0.82f}, {"q", (float) (0.18 * idf1 / idf2)}};
	const struct skill r[] = {{"u", 0.845f}, {"f", 0.06f}, {"p", 0.05f},
	    {"q", (float) (0.045 * idf1 / idf2)}};
	const char *const cand[] = {"a", "f", "p", "q"};
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	struct hit *all = lmt_calloc(FILLERS + 2, sizeof(*all));
	size_t nall = 0;
	lm_model m;
	lm_index *idx = NULL;
	char id[16];

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	lm_index_loading(idx);
	for (int i = 0; i < FILLERS; i++) {
		snprintf(id, sizeof(id), "f%04d", i);
		assert_int_equal(
		    lm_index_put_posting(idx, posting(id, filler, 2), 0), LM_OK);
	}
	assert_int_equal(lm_index_put_posting(idx, posting("x", x, 2), 0), LM_OK);
	assert_int_equal(lm_index_put_posting(idx, posting("r", r, 4), 0), LM_OK);
	assert_int_equal(lm_index_put_profile(idx, profile("c", cand, 4), 0), LM_OK);
	assert_int_equal(lm_index_loaded(idx), LM_OK);

	/* The scores are as designed. */
	for (int i = 0; i < FILLERS + 2; i++) {
		bool ok = false;
		if (i < FILLERS)
			snprintf(all[nall].id, sizeof(all[nall].id), "f%04d", i);
		else
			snprintf(all[nall].id, sizeof(all[nall].id), "%s",
			    i == FILLERS ? "x" : "r");
		assert_int_equal(lm_index_pair_score(
		                     idx, "c", all[nall].id, NOW, &all[nall].score, &ok),
		    LM_OK);
		assert_true(ok);
		nall++;
	}
	assert_float_equal(all[0].score, 0.15, 1e-6);
	assert_float_equal(all[FILLERS].score, 0.18, 1e-6);
	assert_float_equal(all[FILLERS + 1].score, 0.155, 1e-6);
	qsort(all, nall, sizeof(*all), cmp_hit);

	/* The answer is the top 10 of them all: x, r, then fillers by id. */
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = (char *) "c";
	req.top_k = 10;
	assert_int_equal(lm_index_match_jobs(idx, &req, NOW, &resp, NULL, 0), LM_OK);
	assert_int_equal(resp->n_matches, 10);
	assert_string_equal(all[1].id, "r");
	for (size_t i = 0; i < resp->n_matches; i++) {
		assert_string_equal(resp->matches[i]->job_id, all[i].id);
		assert_float_equal(resp->matches[i]->score, all[i].score, 1e-6);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	free(all);
	lm_index_free(idx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_completed_entry_after_unread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
