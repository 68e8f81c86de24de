/*
 * test_pruning.c - the bounds that let a query leave most records
 * unevaluated, on data shaped like a job site's (the benchmarks' generator:
 * Zipf-distributed skills, weights, requirement groups, countries): the
 * skill shares bound every eligible pair's score, also through an idf
 * snapshot that the corpus has drifted from, and a query over a realistic
 * corpus returns the exhaustive top k while evaluating a small fraction of
 * the postings that match.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "index.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "score.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;

#define NOW BENCH_NOW

/* Sizes: the sanitizer builds run the same tests smaller. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORPUS    6000
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CORPUS    6000
#define SANITIZED 1
#endif
#endif
#ifndef CORPUS
#define CORPUS    100000
#define SANITIZED 0
#endif
#define PROFILES (CORPUS / 20)

/* Matching postings per evaluated one and per fully scored one, at least;
 * matching profiles per evaluated one (0: not checked). A top 10 stays the same size
 * while the corpus grows, so the larger corpus prunes far more. */
#if SANITIZED
#define PRUNE_REACH      1
#define PRUNE_SCORED     10
#define PRUNE_CANDIDATES 0 /* 300 profiles: nothing to prune */
#else
#define PRUNE_REACH      5
#define PRUNE_SCORED     100
#define PRUNE_CANDIDATES 2
#endif

/* A generated posting, varied where the generator does not: every fourth
 * has a preferred skill, every fifth an unknown one (idf capped), every
 * 97th no skills of its own. */
static JobPosting *
gen_posting(bench_gen *g, size_t i)
{
	char id[32];
	JobPosting *p;

	snprintf(id, sizeof(id), "job-%06zu", i);
	p = bench_gen_posting(g, id);
	if (i % 4 == 0 && p->n_skills > 0)
		p->skills[0]->preferred = true;
	if (i % 5 == 0 && p->n_skills > 1) {
		char x[32];
		snprintf(x, sizeof(x), "x:unlisted-%zu", i % 40);
		free(p->skills[1]->skill_id);
		if ((p->skills[1]->skill_id = strdup(x)) == NULL)
			abort();
	}
	if (i % 97 == 0) {
		for (size_t k = 0; k < p->n_skills; k++)
			protobuf_c_message_free_unpacked(&p->skills[k]->base, NULL);
		p->n_skills = 0;
	}
	return p;
}

static Profile *
gen_profile(bench_gen *g, size_t i)
{
	char id[32];

	snprintf(id, sizeof(id), "cand-%06zu", i);
	return bench_gen_profile(g, id);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

/* The terms of a bound prep, sorted; *n their number. */
static uint32_t *
terms_of(const lm_posting_prep *pp, const lm_profile_prep *cp, const lm_skill_stats *s,
    size_t *n)
{
	size_t max = lm_prep_terms_max(pp, cp);
	uint32_t *t = calloc(max + 1, sizeof(*t));

	if (t == NULL)
		abort();
	*n = lm_prep_terms(pp, cp, s, t, max);
	return t;
}

static bool
has_term(const uint32_t *t, size_t n, uint32_t term)
{
	return bsearch(&term, t, n, sizeof(*t), cmp_u32) != NULL;
}

/*
 * The bound, with the idf snapshot as the index keeps it: postings added to
 * the snapshot when a third of the corpus was counted, then the rest
 * counted. For every eligible pair of generated records whose posting has
 * skills, the score is at most the sum of the snapshot shares of the
 * posting's terms the candidate shares times the drift since
 * (lm_idf_snap_drift), and after a new snapshot at most the sum of the new
 * shares.
 */
static void
test_share_bound(void **state)
{
	enum { NP = 2000, NC = 200 };
	bench_gen_opts go = {7, 0};
	bench_gen *g = bench_gen_new(&go);
	lm_posting_prep *pp[NP];
	lm_profile_prep *cp[NC];
	JobPosting *posts[NP];
	Profile *profs[NC];
	uint32_t *pt[NP], *ct[NC];
	float *ps[NP];
	size_t npt[NP], nct[NC], eligible = 0, tight = 0;
	lm_skill_stats *st = NULL;
	lm_idf_snap *snap = NULL;
	lm_model m;
	lm_score_env env;
	double drift, pshare, slack = 1e-6;

	(void) state;
	lm_model_defaults(&m);
	pshare = m.params.preferred_share;
	assert_int_equal(lm_skill_stats_new(&st), LM_OK);
	assert_int_equal(lm_idf_snap_new(&snap), LM_OK);
	for (size_t i = 0; i < NP; i++) {
		posts[i] = gen_posting(g, i);
		assert_int_equal(lm_posting_prep_new(posts[i], &pp[i]), LM_OK);
		assert_int_equal(lm_posting_prep_bind(pp[i], st), LM_OK);
		if (i < NP / 3)
			assert_int_equal(lm_skill_stats_add(st, pp[i]), LM_OK);
	}
	for (size_t i = 0; i < NC; i++) {
		profs[i] = gen_profile(g, i);
		assert_int_equal(lm_profile_prep_new(profs[i], &cp[i]), LM_OK);
		assert_int_equal(lm_profile_prep_bind(cp[i], st), LM_OK);
		ct[i] = terms_of(NULL, cp[i], st, &nct[i]);
		qsort(ct[i], nct[i], sizeof(*ct[i]), cmp_u32);
	}
	for (size_t i = 0; i < NP; i++) {
		pt[i] = terms_of(pp[i], NULL, st, &npt[i]);
		if ((ps[i] = calloc(npt[i] + 1, sizeof(*ps[i]))) == NULL)
			abort();
		assert_int_equal(lm_idf_snap_hold(snap, st, pp[i]), LM_OK);
		lm_idf_snap_term_shares(snap, pp[i], pshare, pt[i], npt[i], ps[i]);
	}
	for (size_t i = NP / 3; i < NP; i++)
		assert_int_equal(lm_skill_stats_add(st, pp[i]), LM_OK);
	drift = lm_idf_snap_drift(snap, st);
	assert_true(drift > 1.01); /* the corpus tripled: idf moved */

	env = (lm_score_env){&m, st, NOW, NULL};
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < NC; i++) {
			for (size_t j = 0; j < NP; j++) {
				double s, sum = 0;
				bool ok;
				s = lm_score_pair(&env, cp[i], pp[j], &ok);
				if (!ok || !lm_posting_prep_skills_present(pp[j]))
					continue;
				for (size_t k = 0; k < npt[j]; k++)
					if (has_term(ct[i], nct[i], pt[j][k]))
						sum += round == 0
						           ? ps[j][k]
						           : lm_idf_snap_share(snap,
						                 pp[j], pshare, pt[j][k]);
				if (round == 0)
					sum *= drift;
				if (!(s <= sum * (1 + slack) + slack))
					fail_msg("round %d, pair %zu/%zu: score %.17g "
					         "above its "
					         "bound %.17g (drift %.6f)",
					    round, i, j, s, sum, drift);
				eligible += round == 1;
				tight += round == 1 && s > 0 && sum < 2 * s;
			}
		}
		/* Round 1: a new snapshot, at the idf the pairs are scored at. */
		lm_idf_snap_reset(snap, st);
		assert_true(lm_idf_snap_drift(snap, st) == 1.0);
	}
	print_message("share bound: %zu eligible pairs with skills, %zu bounded within "
	              "twice their score, drift %.4f\n",
	    eligible, tight, drift);
	assert_true(eligible > 1000);
	assert_true(tight > eligible / 10); /* the bound is not vacuous */
	for (size_t i = 0; i < NP; i++) {
		lm_idf_snap_remove(snap, pp[i]);
		lm_posting_prep_free(pp[i]);
		protobuf_c_message_free_unpacked(&posts[i]->base, NULL);
		free(pt[i]);
		free(ps[i]);
	}
	for (size_t i = 0; i < NC; i++) {
		lm_profile_prep_free(cp[i]);
		protobuf_c_message_free_unpacked(&profs[i]->base, NULL);
		free(ct[i]);
	}
	lm_idf_snap_free(snap);
	lm_skill_stats_free(st);
	bench_gen_free(g);
}

/* An entry of the exhaustive reference. */
struct ref {
	double score;
	const char *id;
};

static int
cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

/*
 * A realistic corpus (CORPUS generated postings, PROFILES profiles, put as
 * a loader does, between lm_index_loading and lm_index_loaded): MatchJobs and
 * MatchCandidates top 10 return exactly the exhaustive top 10 (every pair
 * scored through
 * lm_index_pair_score), and evaluate (read the veto key of) a small
 * fraction of the records that match: the counts are deterministic.
 */
/* The top `top` of a subject, unexplained: of postings for the profile id
 * when jobs, of profiles for the posting id otherwise. *got and *n are the
 * matches of *jr or *cr, whichever was asked; the caller frees it. */
static void
top_of(lm_index *idx, bool jobs, const char *id, uint32_t top,
    Lunamatch__V1__MatchJobsResponse **jr, Lunamatch__V1__MatchCandidatesResponse **cr,
    Lunamatch__V1__Match ***got, size_t *n)
{
	char err[128];

	*jr = NULL;
	*cr = NULL;
	if (jobs) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = (char *) id;
		req.top_k = top;
		req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
		assert_int_equal(
		    lm_index_match_jobs(idx, &req, NOW, jr, err, sizeof(err)), LM_OK);
		*got = (*jr)->matches;
		*n = (*jr)->n_matches;
	} else {
		Lunamatch__V1__MatchCandidatesRequest req =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = (char *) id;
		req.top_k = top;
		req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
		assert_int_equal(
		    lm_index_match_candidates(idx, &req, NOW, cr, err, sizeof(err)),
		    LM_OK);
		*got = (*cr)->matches;
		*n = (*cr)->n_matches;
	}
}

static void
test_realistic_pruning(void **state)
{
	bench_gen_opts go = {1, 0};
	bench_gen *g = bench_gen_new(&go);
	lm_index *idx = NULL;
	lm_model m;
	char **pid = calloc(CORPUS, sizeof(*pid)), **cid = calloc(PROFILES, sizeof(*cid));
	struct ref *want = calloc(CORPUS > PROFILES ? CORPUS : PROFILES, sizeof(*want));
	uint64_t matched[2] = {0, 0}, reached[2] = {0, 0}, scored[2] = {0, 0};

	(void) state;
	assert_non_null(pid);
	assert_non_null(cid);
	assert_non_null(want);
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	lm_index_loading(idx);
	for (size_t i = 0; i < PROFILES; i++) {
		Profile *c = gen_profile(g, i);
		cid[i] = strdup(c->id);
		assert_int_equal(lm_index_put_profile(idx, c, 0), LM_OK);
	}
	for (size_t i = 0; i < CORPUS; i++) {
		JobPosting *p = gen_posting(g, i);
		pid[i] = strdup(p->id);
		assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	}
	assert_int_equal(lm_index_loaded(idx), LM_OK);
	lm_index_advance(idx, NOW);
	for (int q = 0; q < 20; q++) {
		bool jobs = q % 2 == 0;
		size_t subject = ((size_t) q * 7919u) % (jobs ? PROFILES : CORPUS);
		size_t total = jobs ? CORPUS : PROFILES, n = 0, got_n;
		lm_index_counts c0, c1;
		Lunamatch__V1__Match **got;
		Lunamatch__V1__MatchJobsResponse *jr = NULL;
		Lunamatch__V1__MatchCandidatesResponse *cr = NULL;

		for (size_t i = 0; i < total; i++) {
			double s;
			bool ok;
			assert_int_equal(
			    lm_index_pair_score(idx, jobs ? cid[subject] : cid[i],
			        jobs ? pid[i] : pid[subject], NOW, &s, &ok),
			    LM_OK);
			if (!ok)
				continue;
			want[n].score = s;
			want[n++].id = jobs ? pid[i] : cid[i];
		}
		qsort(want, n, sizeof(*want), cmp_ref);
		/* The top 10 with the default window, then the top 100 with
		 * windows of 4,096 doc ids: many windows over the corpus, and a
		 * top k that the seed's records cannot hold, so that the
		 * sweep's finding in every window decides the answer. */
		for (int win = 0; win < 2; win++) {
			uint32_t top = win == 0 ? 10 : 100;
			lm_index_set_window(idx, win == 0 ? 0 : 12);
			lm_index_counts_get(idx, &c0);
			top_of(idx, jobs, jobs ? cid[subject] : pid[subject], top, &jr,
			    &cr, &got, &got_n);
			lm_index_counts_get(idx, &c1);
			assert_int_equal(got_n, n < top ? n : top);
			for (size_t i = 0; i < got_n; i++) {
				const char *id =
				    jobs ? got[i]->job_id : got[i]->candidate_id;
				if (strcmp(id, want[i].id) != 0 ||
				    got[i]->score != want[i].score)
					fail_msg("query %d rank %zu: got %s %.17g, want "
					         "%s %.17g",
					    q, i + 1, id, got[i]->score, want[i].id,
					    want[i].score);
			}
			if (win == 0) {
				matched[!jobs] += n;
				reached[!jobs] += c1.reached - c0.reached;
				scored[!jobs] += c1.scored - c0.scored;
			}
			if (jr != NULL)
				protobuf_c_message_free_unpacked(&jr->base, NULL);
			if (cr != NULL)
				protobuf_c_message_free_unpacked(&cr->base, NULL);
		}
	}
	print_message("MatchJobs: %llu postings matched, %llu evaluated, %llu fully "
	              "scored (10 queries)\n",
	    (unsigned long long) matched[0], (unsigned long long) reached[0],
	    (unsigned long long) scored[0]);
	print_message("MatchCandidates: %llu profiles matched, %llu evaluated, %llu "
	              "fully scored (10 queries)\n",
	    (unsigned long long) matched[1], (unsigned long long) reached[1],
	    (unsigned long long) scored[1]);
	/* Far fewer evaluated and scored than matched. */
	assert_true(matched[0] > 10 * 1000);
	assert_true(reached[0] * PRUNE_REACH < matched[0]);
	assert_true(scored[0] * PRUNE_SCORED < matched[0]);
	if (PRUNE_CANDIDATES > 0)
		assert_true(reached[1] * PRUNE_CANDIDATES < matched[1]);
	for (size_t i = 0; i < CORPUS; i++)
		free(pid[i]);
	for (size_t i = 0; i < PROFILES; i++)
		free(cid[i]);
	free(pid);
	free(cid);
	free(want);
	lm_index_free(idx);
	bench_gen_free(g);
}

/* What the reshare test's fault seam does and saw. */
struct reshare_probe {
	lm_index *idx;
	const char *cand; /* the profile the query during the reshare asks for */
	bool refuse;      /* answer LM_ENOMEM: the reshare fails */
	int asked;        /* reshares begun */
	int answered;     /* queries answered while a reshare held its lock */
	bool done;        /* the query thread finished */
};

static void *
query_thread(void *arg)
{
	struct reshare_probe *rp = arg;
	Lunamatch__V1__MatchJobsResponse *jr = NULL;
	Lunamatch__V1__MatchCandidatesResponse *cr = NULL;
	Lunamatch__V1__Match **got;
	size_t n;

	top_of(rp->idx, true, rp->cand, 10, &jr, &cr, &got, &n);
	protobuf_c_message_free_unpacked(&jr->base, NULL);
	__atomic_store_n(&rp->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* The index's fault seam: at the start of a reshare (its read lock held),
 * a query on another thread must be answered (5 s at most). */
static int
reshare_fault(void *arg, lm_index_alloc what)
{
	struct reshare_probe *rp = arg;
	pthread_t t;

	if (what != LM_INDEX_ALLOC_RESHARE)
		return LM_OK;
	rp->asked++;
	if (rp->refuse)
		return LM_ENOMEM;
	__atomic_store_n(&rp->done, false, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&t, NULL, query_thread, rp), 0);
	for (int i = 0; i < 500 && !__atomic_load_n(&rp->done, __ATOMIC_SEQ_CST); i++)
		lmt_sleep_ms(10);
	if (!__atomic_load_n(&rp->done, __ATOMIC_SEQ_CST))
		fail_msg("a query waited 5 s for a reshare");
	rp->answered++;
	assert_int_equal(pthread_join(t, NULL), 0);
	return LM_OK;
}

/* MatchJobs top 10 of profile cid equals the exhaustive top 10. */
static void
assert_exact(lm_index *idx, const char *cid, char **pid, size_t npid, struct ref *want)
{
	Lunamatch__V1__MatchJobsResponse *jr = NULL;
	Lunamatch__V1__MatchCandidatesResponse *cr = NULL;
	Lunamatch__V1__Match **got;
	size_t n = 0, got_n;

	for (size_t i = 0; i < npid; i++) {
		double sc;
		bool ok;
		assert_int_equal(
		    lm_index_pair_score(idx, cid, pid[i], NOW, &sc, &ok), LM_OK);
		if (ok) {
			want[n].score = sc;
			want[n++].id = pid[i];
		}
	}
	qsort(want, n, sizeof(*want), cmp_ref);
	top_of(idx, true, cid, 10, &jr, &cr, &got, &got_n);
	assert_int_equal(got_n, n < 10 ? n : 10);
	for (size_t i = 0; i < got_n; i++) {
		assert_string_equal(got[i]->job_id, want[i].id);
		assert_true(got[i]->score == want[i].score);
	}
	protobuf_c_message_free_unpacked(&jr->base, NULL);
}

/*
 * Postings put one at a time, as the follower applies changes: the idf
 * drifts, and every so many changes the index takes a new snapshot,
 * computing every share again. That work runs under the read lock, so a
 * query started meanwhile is answered before it ends (it used to run under
 * the write lock: seconds of stalled queries at a few hundred thousand
 * postings). Answers stay exactly the exhaustive top 10 after each
 * snapshot, and when one cannot be taken (memory short, through the fault
 * seam) nothing changes but the drift, and a later check takes it.
 */
static void
test_reshare_aside(void **state)
{
	enum { N = 6000, NPROF = 20 };
	bench_gen_opts go = {3, 0};
	bench_gen *g = bench_gen_new(&go);
	lm_index *idx = NULL;
	lm_model m;
	char *pid[N], *cid[NPROF];
	struct ref *want = calloc(N, sizeof(*want));
	struct reshare_probe rp = {0};
	lm_index_counts c;
	size_t i;

	(void) state;
	assert_non_null(want);
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	rp.idx = idx;
	lm_index_set_fault(idx, reshare_fault, &rp);
	for (i = 0; i < NPROF; i++) {
		Profile *cp = gen_profile(g, i);
		cid[i] = strdup(cp->id);
		assert_int_equal(lm_index_put_profile(idx, cp, 0), LM_OK);
	}
	rp.cand = cid[0];
	/* The first half with snapshots refused, the second half allowed. */
	rp.refuse = true;
	for (i = 0; i < N / 2; i++) {
		JobPosting *p = gen_posting(g, i);
		pid[i] = strdup(p->id);
		assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	}
	lm_index_counts_get(idx, &c);
	assert_true(rp.asked >= 1);
	assert_int_equal(c.reshares, 0);
	lm_index_advance(idx, NOW);
	for (size_t k = 0; k < NPROF; k += 5)
		assert_exact(idx, cid[k], pid, N / 2, want);
	int refused = rp.asked;
	rp.refuse = false;
	for (; i < N; i++) {
		JobPosting *p = gen_posting(g, i);
		pid[i] = strdup(p->id);
		assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	}
	lm_index_counts_get(idx, &c);
	assert_true(rp.asked > refused);
	assert_true(c.reshares >= 1);
	assert_int_equal(rp.answered, rp.asked - refused);
	for (size_t k = 0; k < NPROF; k += 5)
		assert_exact(idx, cid[k], pid, N, want);
	for (i = 0; i < N; i++)
		free(pid[i]);
	for (i = 0; i < NPROF; i++)
		free(cid[i]);
	free(want);
	lm_index_free(idx);
	bench_gen_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_share_bound),
	    cmocka_unit_test(test_realistic_pruning),
	    cmocka_unit_test(test_reshare_aside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
