/*
 * test_index.c - the match index: exact top-k against an exhaustive scan
 * over many random data sets (a property test with fixed seeds), answers
 * that do not change with the index clock, updates that take effect at once
 * with their index_seq, errors, and queries racing with updates and with
 * whole-content replacements. The random data sets and the exhaustive
 * scan are indexref.h's (test_churn.c uses them too).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index.h"
#include "indexref.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "score.h"

/* The property: for 200 random data sets and random queries, the index
 * returns exactly the exhaustive scan's top k, ordered by (score desc, id). */
static void
test_exact_top_k(void **state)
{
	(void) state;
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct rng r = {seed * 0x9E3779B97F4A7C15ULL};
		lm_model m;
		lm_index *idx = NULL;
		struct world w;
		lm_index_counts counts;

		size_t live = 0;

		random_model(&r, &m);
		build(&r, &m, &idx, &w);
		world_stats(&w);
		/* Sweeps of 16 to 2,048 doc ids a window: small data sets read
		 * by many windows, as large ones are. */
		lm_index_set_window(idx, 4 + (uint32_t) (seed % 8));
		assert_int_equal(lm_index_window(idx), 4 + (uint32_t) (seed % 8));
		/* The index clock past NOW (every half data set): the answers at
		 * NOW stay those of the reference, whose statistics count the
		 * postings expired by then too; only the open count follows. */
		if (seed % 2 == 0)
			lm_index_advance(idx, NOW + 400 * DAY);
		for (int q = 0; q < 4; q++) {
			query_jobs(&r, idx, &m, &w);
			query_candidates(&r, idx, &m, &w);
			query_top(&r, idx, &m, &w);
			query_pair(&r, idx, &m, &w);
		}
		for (size_t i = 0; i < w.np; i++)
			live += lm_skill_stats_counts(w.posts[i]) &&
			        (seed % 2 != 0 || w.posts[i]->expires_at == 0 ||
			            w.posts[i]->expires_at > NOW + 400 * DAY);
		lm_index_counts_get(idx, &counts);
		assert_int_equal(counts.postings, w.np);
		assert_int_equal(counts.profiles, w.nc);
		assert_int_equal(counts.open_postings, live);
		lm_index_free(idx);
		world_free(&w);
	}
	assert_true(compared_matches > 5000);
	assert_true(compared_ties > 100);
	assert_true(explained_no_overlap > 10);
}

/* The scale test's sizes: a job site's corpus in the release build; the
 * sanitizer build, many times slower, runs the same test smaller. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SCALE_POSTINGS 12000
#define SCALE_PROFILES 3000
#define SCALE_PRUNING  2
#define SCALE_REACH    0
#define SANITIZED      1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SCALE_POSTINGS 12000
#define SCALE_PROFILES 3000
#define SCALE_PRUNING  2
#define SCALE_REACH    0
#define SANITIZED      1
#endif
#endif
/* SCALE_REACH: eligible postings per posting reached by a MatchJobs top 10
 * without filters, at least (jobs_pruned); 0 at the sanitizer size, whose
 * few thousand postings share most terms, so no tier can be left unread.
 * SCALE_PRUNING: eligible pairs per fully scored pair at least. The top k
 * stays the same size while the corpus grows, so pruning skips more of a
 * larger corpus. */
#ifndef SCALE_POSTINGS
#define SCALE_POSTINGS 100005
#define SCALE_PROFILES 20000
#define SCALE_PRUNING  4
#define SCALE_REACH    2
#define SANITIZED      0
#endif

/* MatchJobs top 10 without filters for stored candidates, exact against
 * the reference, reaches (visits) far fewer postings than the lists of
 * the candidate's terms hold: the exhaustive candidate generation reached
 * at least every eligible posting, and the pruned one leaves whole tiers
 * of those lists unread. */
static void
jobs_pruned(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w)
{
	size_t eligible = 0;
	uint64_t reached = 0;

	for (int q = 0; q < 20; q++) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *resp = NULL;
		size_t i = rn(r, (uint32_t) w->nc), n, vetoed;
		lm_index_counts c0, c1;
		struct ref *want;
		char err[128];

		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = w->profs[i]->id;
		req.top_k = 10;
		lm_index_counts_get(idx, &c0);
		assert_int_equal(
		    lm_index_match_jobs(idx, &req, NOW, &resp, err, sizeof(err)), LM_OK);
		lm_index_counts_get(idx, &c1);
		want = reference(w, m, NOW, NULL, w->cp[i], NULL, &n, &vetoed);
		compare(resp->matches, resp->n_matches, want, n, 10, true);
		check_vetoed(resp->vetoed, vetoed, resp->n_matches, 10);
		reached += c1.reached - c0.reached;
		eligible += n;
		free(want);
		free_msg(resp);
	}
	print_message(
	    "pruned: %llu postings reached by 20 MatchJobs top 10, %zu eligible\n",
	    (unsigned long long) reached, eligible);
	if (SCALE_REACH > 0)
		assert_true(reached * SCALE_REACH < eligible);
}

/* The property at scale: one data set of SCALE_POSTINGS postings (a
 * vocabulary of 2,000 skills, duplicates with equal scores) and
 * SCALE_PROFILES profiles, random queries with every filter in both
 * directions and event lists of up to LM_INDEX_EVENT_TOP_MAX: the index
 * returns exactly the exhaustive scan's top k, and fully scores far fewer
 * pairs than are eligible (the bounds prune). */
static void
test_exact_top_k_at_scale(void **state)
{
	struct rng r = {0x5CA1EULL * 0x9E3779B97F4A7C15ULL};
	lm_model m;
	lm_index *idx = NULL;
	struct world w;
	lm_index_counts before, after;
	size_t eligible0 = compared_eligible, matches0 = compared_matches;

	(void) state;
	skill_vocab = 2000;
	lm_model_defaults(&m);
	build_n(&r, &m, &idx, &w, SCALE_POSTINGS, SCALE_PROFILES);
	world_stats(&w);
	lm_index_counts_get(idx, &before);
	for (int q = 0; q < 12; q++) {
		/* Every other round with windows of 4,096 doc ids. */
		lm_index_set_window(idx, q % 2 == 0 ? 0 : 12);
		query_jobs(&r, idx, &m, &w);
		query_candidates(&r, idx, &m, &w);
		query_top(&r, idx, &m, &w);
	}
	lm_index_counts_get(idx, &after);
	jobs_pruned(&r, idx, &m, &w);
	/* Event lists of 2,500 and LM_INDEX_EVENT_TOP_MAX, min_score mostly
	 * at a score of the reference, over thousands of eligible records:
	 * heaps that fill and heaps that do not. */
	edge_tops = true;
	for (int q = 0; q < 6; q++) {
		event_n = q % 2 == 0 ? 2500 : LM_INDEX_EVENT_TOP_MAX;
		query_top(&r, idx, &m, &w);
	}
	event_n = 0;
	edge_tops = false;
	skill_vocab = 25;
	assert_true(w.np + 5 >= SCALE_POSTINGS);
	assert_true(compared_matches - matches0 > 200);
	/* Pruning: a fraction of the eligible pairs of the MatchJobs and
	 * MatchCandidates queries (the event queries come on top) were fully
	 * scored. */
	print_message("scale: %zu postings, %zu profiles, %llu pairs reached, %llu "
	              "fully scored, %zu eligible\n",
	    w.np, w.nc, (unsigned long long) (after.reached - before.reached),
	    (unsigned long long) (after.scored - before.scored),
	    compared_eligible - eligible0);
	assert_true((after.scored - before.scored) * SCALE_PRUNING <
	            compared_eligible - eligible0);
	lm_index_free(idx);
	world_free(&w);
}

/* One change of the postings, op the serial of the change: a new version
 * of one (45%: every third an edit of its date posted, and of whether its
 * first skill is preferred, with its skills and partition kept; the others
 * fresh content: other skills, often another partition), a removal (25%) or a new
 * posting; the world follows. w->posts and w->pp must have room for one more. */
static void
churn_op(struct rng *r, lm_index *idx, struct world *w, unsigned op)
{
	unsigned k = rn(r, 100);
	size_t i = w->np > 0 ? rn(r, (uint32_t) w->np) : 0;
	char id[32];

	if (k < 45 && w->np > 0) {
		JobPosting *p = op % 3 == 0 ? dup_msg(&w->posts[i]->base, NULL)
		                            : gen_posting(r, w->posts[i]->id);
		if (op % 3 == 0) { /* an edit: its terms stay */
			p->posted_at = NOW - (int64_t) rn(r, 60 * DAY);
			/* A skill required or preferred: the shares change, and
			 * each entry is overwritten where it is or moves tier. */
			if (p->n_skills > 0 && chance(r, 50))
				p->skills[0]->preferred = !p->skills[0]->preferred;
		}
		p->version = w->posts[i]->version + 1;
		assert_int_equal(
		    lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0), LM_OK);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->posts[i] = p;
		assert_int_equal(lm_posting_prep_new(p, &w->pp[i]), LM_OK);
	} else if (k < 70 && w->np > 1) {
		assert_int_equal(lm_index_remove_posting(idx, w->posts[i]->id, 0), LM_OK);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->np--;
		w->posts[i] = w->posts[w->np];
		w->pp[i] = w->pp[w->np];
	} else {
		snprintf(id, sizeof(id), "n%05u.%u", rn(r, 100000), op);
		JobPosting *p = gen_posting(r, id);
		assert_int_equal(
		    lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0), LM_OK);
		w->posts[w->np] = p;
		assert_int_equal(lm_posting_prep_new(p, &w->pp[w->np]), LM_OK);
		w->np++;
	}
}

/*
 * Exact under churn: postings replaced, removed and added thousands of
 * times while the skill vocabulary swings between 5 and 200 ids, so that
 * idf drifts past the snapshot's bound and the shares are computed again
 * (lm_index_counts.reshares) with queries before and after. Every 97th
 * change the answers are compared with the reference over the data as it
 * is then; the existing property test's data sets are too small to reach a
 * renewal.
 */
static void
test_exact_top_k_under_churn(void **state)
{
	(void) state;
	for (uint64_t seed = 1; seed <= (SANITIZED ? 2 : 6); seed++) {
		struct rng r = {seed * 0xD1B54A32D192ED03ULL};
		lm_model m;
		lm_index *idx = NULL;
		struct world w;
		lm_index_counts counts;
		enum { START = 400, OPS = 3000 };
		size_t cap = START + OPS;

		random_model(&r, &m);
		skill_vocab = 25;
		build_n(&r, &m, &idx, &w, START, 40);
		lm_index_set_window(idx, 4 + (uint32_t) (seed % 8));
		world_reserve(&w, cap);
		for (unsigned op = 0; op < OPS; op++) {
			if (op % 500 == 0)
				skill_vocab = (op / 500) % 2 ? 200 : 5;
			churn_op(&r, idx, &w, op);
			if (op % 23 == 22) {
				world_stats(&w);
				query_jobs(&r, idx, &m, &w);
				query_candidates(&r, idx, &m, &w);
				query_top(&r, idx, &m, &w);
			}
		}
		lm_index_counts_get(idx, &counts);
		assert_int_equal(counts.postings, w.np);
		assert_true(counts.reshares >= 1);
		lm_index_free(idx);
		world_free(&w);
	}
	skill_vocab = 25;
}

/* The reshare seam of test_reshare_in_steps: each step may add budget
 * entries (SIZE_MAX: as many as the index would), and fails when fail is
 * set; asked counts the steps asked for. */
struct step_seam {
	unsigned asked;
	size_t budget;
	bool fail;
};

static int
step_seam(void *arg, size_t *budget)
{
	struct step_seam *s = arg;

	s->asked++;
	if (s->budget != SIZE_MAX)
		*budget = s->budget;
	return s->fail ? LM_ENOMEM : LM_OK;
}

/* lm_index_check_lists passes. */
static void
assert_lists(lm_index *idx)
{
	char err[256] = "";

	if (lm_index_check_lists(idx, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
}

/* Exhaustive answers and the lists, checked on the world as it is. */
static void
check_stepped(struct rng *r, lm_index *idx, const lm_model *m, struct world *w)
{
	assert_lists(idx);
	world_stats(w);
	query_jobs(r, idx, m, w);
	query_candidates(r, idx, m, w);
	query_top(r, idx, m, w);
}

/* A query thread for the race detector while lists are built a step at a
 * time: MatchJobs of one stored profile, which the test does not change,
 * until stop (at most a million). */
struct step_reader {
	lm_index *idx;
	const char *cand;
	atomic_int stop;
	atomic_long answers, failures;
};

static void *
step_reader_main(void *arg)
{
	struct step_reader *sr = arg;

	for (long i = 0; i < 1000000 && !atomic_load(&sr->stop); i++) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *resp = NULL;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = (char *) sr->cand;
		req.top_k = 10;
		if (lm_index_match_jobs(sr->idx, &req, NOW, &resp, NULL, 0) != LM_OK)
			atomic_fetch_add(&sr->failures, 1);
		else
			atomic_fetch_add(&sr->answers, 1);
		free_msg(resp);
	}
	return NULL;
}

/*
 * A new idf snapshot's lists are built a step at a time after the
 * updates, which do not wait for the build to end. Postings are changed
 * (churn_op, with a vocabulary that swings between 5 and 200 skills so
 * that idf drifts) until a new snapshot begins; then each step is held to
 * one posting for a while, so that the build is part of the way through
 * the doc ids, and then to none: each of the updates that follow returns
 * with the build still going (one step asked each, no snapshot taken).
 * After every change both the lists that queries read (at the old
 * snapshot) and those being built (at the new one, for the doc ids
 * passed) hold exactly the entries of the postings listed
 * (lm_index_check_lists), and answers are the exhaustive scan's. Let go,
 * lm_index_advance alone completes the build: every posting, the changed
 * ones included, is listed at its shares at the new snapshot. A step that
 * fails drops the build and leaves the lists and the snapshot as they
 * were; a later check takes a new one. A query thread runs throughout.
 */
static void
test_reshare_in_steps(void **state)
{
	enum { START = 600, OPS = 20000, PART = 300, HELD = 300 };
	struct rng r = {0x5715A5E5ULL};
	struct step_seam seam = {0, 1, false};
	struct step_reader sr;
	lm_model m;
	lm_index *idx = NULL;
	struct world w;
	lm_index_counts c0, c;
	size_t cap = START + OPS;
	unsigned op = 0, asked;
	pthread_t th;

	(void) state;
	lm_model_defaults(&m);
	skill_vocab = 25;
	build_n(&r, &m, &idx, &w, START, 40);
	world_reserve(&w, cap);
	lm_index_set_reshare_seam(idx, step_seam, &seam);
	memset(&sr, 0, sizeof(sr));
	sr.idx = idx;
	sr.cand = w.profs[0]->id;
	assert_int_equal(pthread_create(&th, NULL, step_reader_main, &sr), 0);
	lm_index_counts_get(idx, &c0);

	/* Until a new snapshot begins: its first step is asked for. */
	skill_vocab = 5;
	for (; seam.asked == 0 && op < OPS; op++) {
		if (op % 500 == 499)
			skill_vocab = skill_vocab == 5 ? 200 : 5;
		churn_op(&r, idx, &w, op);
	}
	assert_true(seam.asked > 0);
	/* One posting a step: part of the way. */
	for (unsigned i = 0; i < PART; i++, op++) {
		churn_op(&r, idx, &w, op);
		if (i % 23 == 0)
			check_stepped(&r, idx, &m, &w);
	}
	lm_index_counts_get(idx, &c);
	assert_int_equal(c.reshares, c0.reshares);
	/* No posting a step: the updates go on, the build waits. */
	seam.budget = 0;
	asked = seam.asked;
	for (unsigned i = 0; i < HELD; i++, op++) {
		churn_op(&r, idx, &w, op);
		assert_int_equal(seam.asked, asked + i + 1);
		assert_lists(idx);
		if (i % 23 == 0)
			check_stepped(&r, idx, &m, &w);
	}
	lm_index_counts_get(idx, &c);
	assert_int_equal(c.reshares, c0.reshares);
	/* Let go: lm_index_advance completes it. */
	seam.budget = SIZE_MAX;
	for (int i = 0; i < 1000 && c.reshares == c0.reshares; i++) {
		lm_index_advance(idx, NOW);
		lm_index_counts_get(idx, &c);
	}
	assert_int_equal(c.reshares, c0.reshares + 1);
	check_stepped(&r, idx, &m, &w);

	/* A step that fails: the next snapshot is dropped, and taken later. */
	seam.fail = true;
	asked = seam.asked;
	for (; seam.asked == asked && op < OPS; op++) {
		if (op % 500 == 499)
			skill_vocab = skill_vocab == 5 ? 200 : 5;
		churn_op(&r, idx, &w, op);
	}
	assert_int_equal(seam.asked, asked + 1);
	lm_index_counts_get(idx, &c);
	assert_int_equal(c.reshares, c0.reshares + 1);
	check_stepped(&r, idx, &m, &w);
	/* Dropped: no step until the next check, 1024 changes after the
	 * one that began it. */
	for (unsigned i = 0; i < 100; i++, op++)
		churn_op(&r, idx, &w, op);
	assert_int_equal(seam.asked, asked + 1);
	seam.fail = false;
	for (; c.reshares == c0.reshares + 1 && op < OPS; op++) {
		if (op % 500 == 499)
			skill_vocab = skill_vocab == 5 ? 200 : 5;
		churn_op(&r, idx, &w, op);
		lm_index_counts_get(idx, &c);
	}
	assert_int_equal(c.reshares, c0.reshares + 2);
	assert_true(seam.asked > asked + 1);
	check_stepped(&r, idx, &m, &w);

	atomic_store(&sr.stop, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	print_message("reshare in steps: %u changes, %u steps, %ld answers meanwhile\n",
	    op, seam.asked, atomic_load(&sr.answers));
	assert_int_equal(atomic_load(&sr.failures), 0);
	lm_index_free(idx);
	world_free(&w);
	skill_vocab = 25;
}

/* Changes of the swept test's data set: most postings removed (the idf
 * drifts far from the snapshot's), new versions (in other partitions, or
 * copies of other records) of postings and profiles, profiles removed;
 * the world follows. */
static void
churn(struct rng *r, lm_index *idx, struct world *w)
{
	uint32_t n = rn(r, (uint32_t) (w->np * 9 / 10));

	for (; n > 0 && w->np > 2; n--) {
		size_t i = rn(r, (uint32_t) w->np);
		assert_int_equal(lm_index_remove_posting(idx, w->posts[i]->id, 0), LM_OK);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->np--;
		w->posts[i] = w->posts[w->np];
		w->pp[i] = w->pp[w->np];
	}
	for (n = rn(r, 2000); n > 0; n--) {
		size_t i = rn(r, (uint32_t) w->np);
		JobPosting *p = chance(r, 50)
		                    ? gen_posting(r, w->posts[i]->id)
		                    : dup_msg(&w->posts[rn(r, (uint32_t) w->np)]->base,
		                          w->posts[i]->id);
		p->version = w->posts[i]->version + 1;
		assert_int_equal(
		    lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0), LM_OK);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->posts[i] = p;
		assert_int_equal(lm_posting_prep_new(p, &w->pp[i]), LM_OK);
	}
	for (n = rn(r, (uint32_t) (w->nc / 2)); n > 0 && w->nc > 2; n--) {
		size_t i = rn(r, (uint32_t) w->nc);
		if (chance(r, 50)) {
			Profile *c =
			    chance(r, 50)
			        ? gen_profile(r, w->profs[i]->id)
			        : dup_msg(&w->profs[rn(r, (uint32_t) w->nc)]->base,
			              w->profs[i]->id);
			c->version = w->profs[i]->version + 1;
			assert_int_equal(
			    lm_index_put_profile(idx, dup_msg(&c->base, NULL), 0), LM_OK);
			lm_profile_prep_free(w->cp[i]);
			free_msg(w->profs[i]);
			w->profs[i] = c;
			assert_int_equal(lm_profile_prep_new(c, &w->cp[i]), LM_OK);
			continue;
		}
		assert_int_equal(lm_index_remove_profile(idx, w->profs[i]->id, 0), LM_OK);
		lm_profile_prep_free(w->cp[i]);
		free_msg(w->profs[i]);
		w->nc--;
		w->profs[i] = w->profs[w->nc];
		w->cp[i] = w->cp[w->nc];
	}
	world_stats(w);
}

/* Queries of every kind, each with a random window and `now`. */
static void
swept_queries(
    struct rng *r, lm_index *idx, const lm_model *m, const struct world *w, int rounds)
{
	static const uint32_t wins[] = {0, 4, 5, 6, 8, 12};

	for (int q = 0; q < rounds; q++) {
		lm_index_set_window(idx, wins[rn(r, 6)]);
		/* Later: postings expire between the puts and the query. */
		query_now = chance(r, 60) ? NOW : NOW + (int64_t) rn(r, 20) * DAY;
		query_jobs(r, idx, m, w);
		query_candidates(r, idx, m, w);
		query_top(r, idx, m, w);
	}
	query_now = NOW;
}

/*
 * The property on data sets that the sweep ranks: more records on the lists
 * of a subject's terms than the seed accumulates (index.c, SEED_CANDS),
 * which the property tests above reach only at scale, on one data set of a
 * large vocabulary. Each data set draws its shape: a vocabulary of 1 to 200
 * skills, records of up to 100 skills with extreme weights, up to 80% exact
 * duplicates (ties at every rank), every record in one partition, a
 * loader's build, models whose score is the skills value alone (bounds that
 * are tight) and extreme preferred shares and gates; then most postings
 * removed (the idf drifts far from the snapshot's) and others replaced,
 * some in other partitions. Queries use windows of 16 doc ids up, top_k 1
 * to 1000, event lists with min_score at a score of the reference, and a
 * `now` at which postings have expired. Every answer is the exhaustive
 * scan's top k.
 */
static void
test_exact_top_k_swept(void **state)
{
	static const uint32_t vocabs[] = {1, 2, 3, 5, 8, 25, 200};
	static const uint32_t sizes[] = {4200, 5000, 9000};
	size_t matches0 = compared_matches, ties0 = compared_ties;
	size_t eligible0 = compared_eligible;

	(void) state;
	edge_tops = true;
	for (uint64_t seed = 1; seed <= (SANITIZED ? 6 : 16); seed++) {
		struct rng r = {seed * 0xA24BAED4963EE407ULL};
		lm_model m;
		lm_index *idx = NULL;
		struct world w;

		random_model(&r, &m);
		if (chance(&r, 35))
			for (int f = 0; f < LM_FEAT_COUNT; f++)
				m.weights[f] = f == LM_FEAT_SKILLS ? 1 : 0;
		if (chance(&r, 30)) {
			static const double ps[] = {0, 0.001, 0.5, 0.999, 1};
			m.params.preferred_share = ps[rn(&r, 5)];
			m.params.no_skills_gate = ps[rn(&r, 5)];
		}
		skill_vocab = vocabs[rn(&r, 7)];
		skills_max = chance(&r, 30) ? 100 : (chance(&r, 50) ? 1 + rn(&r, 4) : 0);
		dup_pct = rn(&r, 80);
		one_partition = chance(&r, 25);
		load_build = chance(&r, 30);
		build_n(&r, &m, &idx, &w, sizes[rn(&r, 3)],
		    chance(&r, 50) ? 300 : 4500 + rn(&r, 1000));
		world_stats(&w);
		swept_queries(&r, idx, &m, &w, 12);
		churn(&r, idx, &w);
		swept_queries(&r, idx, &m, &w, 8);
		lm_index_free(idx);
		world_free(&w);
	}
	edge_tops = false;
	skill_vocab = 25;
	skills_max = 0;
	dup_pct = 10;
	one_partition = false;
	load_build = false;
	print_message("swept: %zu matches compared (%zu ties), %zu eligible\n",
	    compared_matches - matches0, compared_ties - ties0,
	    compared_eligible - eligible0);
	assert_true(compared_matches - matches0 > 1000);
	assert_true(compared_ties - ties0 > 100);
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

/*
 * The scores of random data sets must not change when scoring is only made
 * faster: a digest of every pair's score and eligibility (with and without
 * random request filters, random models) over 40 data sets, computed by the
 * plain scorer (lm_score_pair; x86-64, glibc), compared exactly. The
 * exact-top-k property ties the index to this scorer. Run with
 * LUNAMATCH_PRINT_PINS=1 to print the digest after a deliberate change to
 * the formulas or to the generator.
 *
 * History: recomputed when the NO_OVERLAP veto came in (it only turns
 * eligible pairs into vetoed ones, score 0; every other score is the same);
 * and when freshness became exp2(-days / half-life) instead of pow(0.5,
 * days / half-life) (the same value but for the last bit of some scores)
 * and the digest took FNV-1a's standard offset basis; and with model
 * default-2026.1 (the skills gate, preferred and unknown skills, distance
 * and remote regions; the generator makes such records); and when the IDF
 * statistics came to count every posting not closed, expired ones too
 * (lm_skill_stats_counts): a fifth of the generated postings expired before
 * NOW and now count, so idf values and the scores built on them moved;
 * and when an unknown skill's idf cap came from the known skills of its own
 * kind, required or preferred (a preferred skill moved the cap of unknown
 * required ones and so R).
 */
#define PINNED_RANDOM_DIGEST 0x4b93c19e230401adULL

static void
test_random_scores_pinned(void **state)
{
	uint64_t h = 14695981039346656037ULL, pairs = 0;

	(void) state;
	for (uint64_t seed = 1; seed <= 40; seed++) {
		struct rng r = {seed * 0x2545F4914F6CDD1DULL};
		lm_model m;
		lm_index *idx = NULL;
		struct world w;

		random_model(&r, &m);
		build(&r, &m, &idx, &w);
		world_stats(&w);
		for (size_t i = 0; i < w.nc; i++) {
			struct jf_store fs;
			lm_filters *f = NULL;
			char err[128];
			lm_score_env env = {&m, w.stats, NOW, NULL};

			assert_int_equal(lm_filters_for_jobs(gen_job_filters(&r, &fs, &w),
			                     &f, err, sizeof(err)),
			    LM_OK);
			for (size_t j = 0; j < w.np; j++) {
				bool ok;
				double s = lm_score_pair(&env, w.cp[i], w.pp[j], &ok);
				h = digest(digest(h, &s, sizeof(s)), &ok, 1);
				env.filters = f;
				s = lm_score_pair(&env, w.cp[i], w.pp[j], &ok);
				h = digest(digest(h, &s, sizeof(s)), &ok, 1);
				env.filters = NULL;
				pairs++;
			}
			lm_filters_free(f);
		}
		for (size_t j = 0; j < w.np; j++) {
			struct cf_store fs;
			lm_filters *f = NULL;
			char err[128];
			lm_score_env env = {&m, w.stats, NOW, NULL};

			assert_int_equal(
			    lm_filters_for_candidates(
			        gen_cand_filters(&r, &fs, &w), &f, err, sizeof(err)),
			    LM_OK);
			env.filters = f;
			for (size_t i = 0; i < w.nc; i++) {
				bool ok;
				double s = lm_score_pair(&env, w.cp[i], w.pp[j], &ok);
				h = digest(digest(h, &s, sizeof(s)), &ok, 1);
			}
			lm_filters_free(f);
		}
		lm_index_free(idx);
		world_free(&w);
	}
	if (getenv("LUNAMATCH_PRINT_PINS") != NULL)
		printf("random digest 0x%016llxULL over %llu pairs\n",
		    (unsigned long long) h, (unsigned long long) pairs);
	assert_true(pairs > 100000);
	/* The sanitizer builds give another digest for the same scores' bits
	 * (seen with model default-2026.1; the plain Debug build and valgrind's
	 * memcheck of it agree with the release build): the pin holds where the
	 * scores are what users get, the optimised build. */
	if (!SANITIZED)
		assert_true(h == PINNED_RANDOM_DIGEST);
}

/* ---- reproducible answers -------------------------------------------------- */

#define REPLAY_SUBJECTS 12 /* profiles and postings asked about, each */
#define REPLAY_ANSWERS  (3 * REPLAY_SUBJECTS)

/* The wire form of m, which it replaces (m is freed). */
static uint8_t *
packed(ProtobufCMessage *m, size_t *len)
{
	uint8_t *b;

	assert_non_null(m);
	*len = protobuf_c_message_get_packed_size(m);
	b = lmt_calloc(*len, 1);
	assert_int_equal(protobuf_c_message_pack(m, b), *len);
	protobuf_c_message_free_unpacked(m, NULL);
	return b;
}

/* MatchJobs for the first profiles, MatchCandidates for the first postings
 * and ExplainMatch of pairs of them, all at as_of NOW with every
 * explanation, packed into out[REPLAY_ANSWERS]. *matched: the matches
 * returned. */
static void
replay_answers(
    lm_index *idx, const struct world *w, uint8_t **out, size_t *len, size_t *matched)
{
	*matched = 0;
	for (size_t i = 0; i < REPLAY_SUBJECTS; i++) {
		Lunamatch__V1__MatchJobsRequest jq =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchCandidatesRequest cq =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *jr = NULL;
		Lunamatch__V1__MatchCandidatesResponse *cr = NULL;
		Lunamatch__V1__ExplainMatchResponse *er = NULL;
		const char *cand = w->profs[i % w->nc]->id,
		           *job = w->posts[i % w->np]->id;

		jq.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		jq.candidate_id = (char *) cand;
		jq.top_k = 20;
		jq.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
		assert_int_equal(lm_index_match_jobs(idx, &jq, NOW, &jr, NULL, 0), LM_OK);
		*matched += jr->n_matches;
		out[3 * i] = packed(&jr->base, &len[3 * i]);
		cq.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		cq.job_id = (char *) job;
		cq.top_k = 20;
		cq.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
		assert_int_equal(
		    lm_index_match_candidates(idx, &cq, NOW, &cr, NULL, 0), LM_OK);
		*matched += cr->n_matches;
		out[3 * i + 1] = packed(&cr->base, &len[3 * i + 1]);
		assert_int_equal(lm_index_explain(idx, cand, job, NOW, &er, NULL), LM_OK);
		out[3 * i + 2] = packed(&er->base, &len[3 * i + 2]);
	}
}

/*
 * Same records, model and as_of: the same bytes, whenever the question is
 * asked. The index clock moves past the expiry of every posting that has
 * one (as a follower's clock does while time passes); the answers for as_of
 * NOW, explanations with every skill's importance included, stay
 * byte-identical, because the IDF statistics do not follow the clock.
 */
static void
test_replay_after_expiry(void **state)
{
	struct rng r = {0xA5A5A5ULL * 0x9E3779B97F4A7C15ULL};
	uint8_t *first[REPLAY_ANSWERS], *again[REPLAY_ANSWERS];
	size_t flen[REPLAY_ANSWERS], alen[REPLAY_ANSWERS], m1, m2;
	lm_index_counts before, after;
	lm_model m;
	lm_index *idx = NULL;
	struct world w;

	(void) state;
	lm_model_defaults(&m);
	build_n(&r, &m, &idx, &w, 300, 40);
	lm_index_advance(idx, NOW - 30 * DAY);
	replay_answers(idx, &w, first, flen, &m1);
	lm_index_counts_get(idx, &before);
	lm_index_advance(idx, NOW + 400 * DAY);
	lm_index_counts_get(idx, &after);
	/* Postings expired by the clock in between, some of them unexpired at
	 * as_of NOW (so candidates of the answers). */
	assert_true(after.open_postings + 50 < before.open_postings);
	replay_answers(idx, &w, again, alen, &m2);
	assert_true(m1 > 100);
	assert_int_equal(m1, m2);
	for (size_t i = 0; i < REPLAY_ANSWERS; i++) {
		assert_int_equal(flen[i], alen[i]);
		assert_memory_equal(first[i], again[i], flen[i]);
		free(first[i]);
		free(again[i]);
	}
	lm_index_free(idx);
	world_free(&w);
}

/*
 * The expiry heap holds each live posting with an expiry once: new
 * versions that change, add or drop the expiry (or close the posting)
 * move or take out its place, removals take it out, postings put again
 * after their removal (on doc ids freed by removals) come back in, and
 * the clock takes out what expires; lm_index_check_lists checks the heap after every
 * step. Before, every new version left its old expiry behind, and a put
 * rebuilt the heap from every posting under the write lock once those
 * made up half of it. The open count follows the clock throughout.
 */
enum { EXP_POSTS = 400, EXP_UPDATES = 6000 };

static int64_t
exp_draw(struct rng *r)
{
	switch (rn(r, 4)) {
	case 0:
		return 0;
	case 1:
		return NOW - (int64_t) rn(r, 10 * DAY);
	default:
		return NOW + 1 + (int64_t) rn(r, 60 * DAY);
	}
}

/* The postings of the table that are open and unexpired at clock. */
static size_t
exp_open(JobPosting *const *v, size_t n, int64_t clock)
{
	size_t open = 0;

	for (size_t i = 0; i < n; i++)
		open += v[i] != NULL &&
		        v[i]->status !=
		            LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED &&
		        (v[i]->expires_at == 0 || v[i]->expires_at > clock);
	return open;
}

static void
test_expiry_heap(void **state)
{
	struct rng r = {0xE4913EAFULL};
	JobPosting *mine[EXP_POSTS]; /* the version put of each, NULL once removed */
	lm_index_counts c;
	lm_model m;
	lm_index *idx = NULL;
	int64_t clock = NOW;
	char id[32];

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	lm_index_advance(idx, clock);
	for (unsigned i = 0; i < EXP_POSTS; i++) {
		snprintf(id, sizeof(id), "e%u", i);
		mine[i] = gen_posting(&r, id);
		mine[i]->expires_at = exp_draw(&r);
		assert_int_equal(
		    lm_index_put_posting(idx, dup_msg(&mine[i]->base, NULL), 0), LM_OK);
	}
	assert_lists(idx);
	for (unsigned u = 1; u <= EXP_UPDATES; u++) {
		unsigned i = rn(&r, EXP_POSTS);
		if (mine[i] == NULL) { /* removed: put again, on a reused doc id */
			snprintf(id, sizeof(id), "e%u", i);
			mine[i] = gen_posting(&r, id);
			mine[i]->version = EXP_UPDATES + u; /* above the removed one's */
			mine[i]->expires_at = exp_draw(&r);
			assert_int_equal(
			    lm_index_put_posting(idx, dup_msg(&mine[i]->base, NULL), 0),
			    LM_OK);
		} else if (u % 97 == 0) {
			assert_int_equal(
			    lm_index_remove_posting(idx, mine[i]->id, 0), LM_OK);
			protobuf_c_message_free_unpacked(&mine[i]->base, NULL);
			mine[i] = NULL;
		} else {
			JobPosting *p = (JobPosting *) dup_msg(&mine[i]->base, NULL);
			p->version = mine[i]->version + 1;
			p->expires_at = exp_draw(&r);
			p->status =
			    chance(&r, 5)
			        ? LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED
			        : LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
			protobuf_c_message_free_unpacked(&mine[i]->base, NULL);
			mine[i] = (JobPosting *) dup_msg(&p->base, NULL);
			assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
		}
		if (u % 500 == 0) {
			assert_lists(idx);
			lm_index_counts_get(idx, &c);
			assert_int_equal(
			    c.open_postings, exp_open(mine, EXP_POSTS, clock));
		}
	}
	/* The clock passes every expiry, a step at a time. */
	for (int step = 0; step < 12; step++) {
		clock += 6 * DAY;
		lm_index_advance(idx, clock);
		assert_lists(idx);
		lm_index_counts_get(idx, &c);
		assert_int_equal(c.open_postings, exp_open(mine, EXP_POSTS, clock));
	}
	for (unsigned i = 0; i < EXP_POSTS; i++)
		if (mine[i] != NULL)
			protobuf_c_message_free_unpacked(&mine[i]->base, NULL);
	lm_index_free(idx);
}

/* Puts copies of the records of w into idx, postings first, in order. */
static void
put_world(lm_index *idx, const struct world *w)
{
	for (size_t i = 0; i < w->np; i++)
		assert_int_equal(
		    lm_index_put_posting(idx, dup_msg(&w->posts[i]->base, NULL), 0),
		    LM_OK);
	for (size_t i = 0; i < w->nc; i++)
		assert_int_equal(
		    lm_index_put_profile(idx, dup_msg(&w->profs[i]->base, NULL), 0),
		    LM_OK);
}

/* Answer i of replay_answers, packed again with its vetoed count 0 (for
 * MatchJobs and MatchCandidates; an explanation stays as it is). */
static void
without_vetoed(size_t i, uint8_t **b, size_t *len)
{
	ProtobufCMessage *m = NULL;

	if (i % 3 == 0) {
		Lunamatch__V1__MatchJobsResponse *r =
		    lunamatch__v1__match_jobs_response__unpack(NULL, *len, *b);
		assert_non_null(r);
		r->vetoed = 0;
		m = &r->base;
	} else if (i % 3 == 1) {
		Lunamatch__V1__MatchCandidatesResponse *r =
		    lunamatch__v1__match_candidates_response__unpack(NULL, *len, *b);
		assert_non_null(r);
		r->vetoed = 0;
		m = &r->base;
	} else {
		return;
	}
	free(*b);
	*b = packed(m, len);
}

/*
 * A snapshot load (lm_index_loading, then lm_index_replace, as the follower
 * does it) answers with the same bytes as an index that took the same
 * records in the same order with its periodic idf snapshots of the list
 * shares (the loaded one lists its postings at the end, at the final idf),
 * but for the vetoed count, which counts what a pruned query saw
 * (match.proto).
 */
static void
test_replay_loaded(void **state)
{
	struct rng r = {0x10ADEDULL * 0x9E3779B97F4A7C15ULL};
	uint8_t *first[REPLAY_ANSWERS], *again[REPLAY_ANSWERS];
	size_t flen[REPLAY_ANSWERS], alen[REPLAY_ANSWERS], m1, m2;
	lm_model m;
	lm_index *idx = NULL, *ref = NULL, *live = NULL, *load = NULL;
	struct world w;

	(void) state;
	lm_model_defaults(&m);
	build_n(&r, &m, &idx, &w, 3000, 60);
	lm_index_free(idx);
	assert_int_equal(lm_index_new(&m, &ref), LM_OK);
	put_world(ref, &w);
	lm_index_set_seq(ref, 7);
	replay_answers(ref, &w, first, flen, &m1);
	assert_int_equal(lm_index_new(&m, &live), LM_OK);
	assert_int_equal(lm_index_new(&m, &load), LM_OK);
	lm_index_loading(load);
	put_world(load, &w);
	assert_int_equal(lm_index_replace(live, load, 7), LM_OK);
	assert_int_equal(lm_index_loaded(live), LM_OK); /* not loading: no-op */
	assert_int_equal(lm_index_loaded(NULL), LM_EINVAL);
	replay_answers(live, &w, again, alen, &m2);
	assert_true(m1 > 100);
	assert_int_equal(m1, m2);
	for (size_t i = 0; i < REPLAY_ANSWERS; i++) {
		without_vetoed(i, &first[i], &flen[i]);
		without_vetoed(i, &again[i], &alen[i]);
		assert_int_equal(flen[i], alen[i]);
		assert_memory_equal(first[i], again[i], flen[i]);
		free(first[i]);
		free(again[i]);
	}
	lm_index_free(live);
	lm_index_free(ref);
	world_free(&w);
}

/* ---- updates ------------------------------------------------------------------ */

static JobPosting *
simple_posting(const char *id, uint64_t version, const char *skill)
{
	JobPosting *p = lmt_calloc(1, sizeof(*p));
	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup(id);
	p->version = version;
	p->title = lmt_strdup("Engineer");
	p->posted_at = NOW - DAY;
	p->n_skills = 1;
	p->skills = lmt_calloc(1, sizeof(*p->skills));
	p->skills[0] = lmt_calloc(1, sizeof(*p->skills[0]));
	lunamatch__v1__posting_skill__init(p->skills[0]);
	p->skills[0]->skill_id = lmt_strdup(skill);
	return p;
}

static Profile *
simple_profile(const char *id, const char *skill)
{
	Profile *c = lmt_calloc(1, sizeof(*c));
	lunamatch__v1__candidate_profile__init(c);
	c->id = lmt_strdup(id);
	c->version = 1;
	c->headline = lmt_strdup("Dev");
	c->n_skills = 1;
	c->skills = lmt_calloc(1, sizeof(*c->skills));
	c->skills[0] = lmt_calloc(1, sizeof(*c->skills[0]));
	lunamatch__v1__candidate_skill__init(c->skills[0]);
	c->skills[0]->skill_id = lmt_strdup(skill);
	return c;
}

/* Gives c career goals: a desired title and a desired category (either may
 * be NULL). */
static void
profile_goals(Profile *c, const char *title, const char *category)
{
	Lunamatch__V1__CareerGoals *g = lmt_calloc(1, sizeof(*g));

	lunamatch__v1__career_goals__init(g);
	if (title != NULL) {
		g->n_desired_titles = 1;
		g->desired_titles = lmt_calloc(1, sizeof(char *));
		g->desired_titles[0] = lmt_strdup(title);
	}
	if (category != NULL) {
		g->n_desired_categories = 1;
		g->desired_categories = lmt_calloc(1, sizeof(char *));
		g->desired_categories[0] = lmt_strdup(category);
	}
	c->career_goals = g;
}

/* Appends id to the comma-separated list in buf (w bytes used so far). */
static void
join_id(char *buf, size_t len, size_t *w, const char *id)
{
	if (*w < len)
		*w += (size_t) snprintf(buf + *w, len - *w, "%s%s", *w ? "," : "", id);
}

/* Ids of a match_jobs answer for the stored profile cand, or for the inline
 * profile inl when it is not NULL, comma-separated, into buf; *vetoed (may
 * be NULL) receives the response's vetoed count. */
static const char *
jobs_query(lm_index *idx, const char *cand, const Profile *inl, char *buf, size_t len,
    uint64_t *vetoed)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	size_t w = 0;

	if (inl != NULL) {
		req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE;
		req.profile = (Profile *) inl;
	} else {
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = (char *) cand;
	}
	assert_int_equal(lm_index_match_jobs(idx, &req, NOW, &resp, NULL, 0), LM_OK);
	buf[0] = '\0';
	for (size_t i = 0; i < resp->n_matches; i++)
		join_id(buf, len, &w, resp->matches[i]->job_id);
	if (vetoed != NULL)
		*vetoed = resp->vetoed;
	free_msg(resp);
	return buf;
}

/* Ids of a match_jobs answer for a stored profile, comma-separated. */
static const char *
jobs_for(lm_index *idx, const char *cand, char *buf, size_t len)
{
	return jobs_query(idx, cand, NULL, buf, len, NULL);
}

/* ---- a new idf snapshot's build ------------------------------------------------ */

/* The reshare seam of the build tests below: each step may add budget
 * entries (SIZE_MAX: as many as the index would); asked counts the steps
 * asked for. Each step also looks at the walk of the step before
 * (lm_index_reshare_walked; walk_seen): most is the longest, full the
 * number that walked LM_INDEX_RESHARE_WALK doc ids. */
struct walk_seam {
	lm_index *idx;
	size_t budget;
	unsigned asked, full;
	size_t most;
};

static void
walk_seen(struct walk_seam *s)
{
	size_t walked = lm_index_reshare_walked(s->idx);

	s->most = walked > s->most ? walked : s->most;
	s->full += walked == LM_INDEX_RESHARE_WALK;
}

static int
walk_seam(void *arg, size_t *budget)
{
	struct walk_seam *s = arg;

	if (s->asked++ > 0)
		walk_seen(s);
	if (s->budget != SIZE_MAX)
		*budget = s->budget;
	return LM_OK;
}

/* Puts posting id (version 1) with a skill of its own, named after it. */
static void
put_own_skill(lm_index *idx, const char *id)
{
	char skill[40];

	snprintf(skill, sizeof(skill), "x:%s", id);
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting(id, 1, skill), 0), LM_OK);
}

/* Puts postings of skills of their own into idx, whose reshare seam is
 * seam, until a new snapshot's build begins: the idf of the first ones
 * drifts as more come. With seam->budget 0 the build is then held before
 * its first doc id. Returns how many were put. */
static unsigned
put_until_build(lm_index *idx, struct walk_seam *seam, const char *prefix)
{
	unsigned n = 0, asked = seam->asked;
	char id[32];

	for (; seam->asked == asked && n < 100000; n++) {
		snprintf(id, sizeof(id), "%s%u", prefix, n);
		put_own_skill(idx, id);
	}
	assert_true(seam->asked > asked);
	return n;
}

/*
 * A step of a build walks at most LM_INDEX_RESHARE_WALK doc ids, also
 * across a long run of doc ids without a listed posting (free ones, of
 * postings removed, and those of closed postings), where it adds no
 * entry. The build is held before its first doc id while the run is made
 * behind the postings it began with and before a few more, then let go:
 * no step walks more than the bound, the steps across the run stop at
 * it, and the lists put in place hold exactly the listing of every
 * posting at the new snapshot.
 */
static void
test_reshare_step_walk_bounded(void **state)
{
	enum { RUN = 3 * LM_INDEX_RESHARE_WALK, TAIL = 100 };
	struct walk_seam seam = {0};
	lm_model m;
	lm_index *idx = NULL;
	lm_index_counts c0, c;
	char id[32], skill[40];
	unsigned held;

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	seam.idx = idx;
	lm_index_set_reshare_seam(idx, walk_seam, &seam);
	put_until_build(idx, &seam, "lead");
	for (unsigned i = 0; i < RUN + TAIL; i++) {
		snprintf(id, sizeof(id), "%s%u", i < RUN ? "run" : "tail", i);
		put_own_skill(idx, id);
	}
	for (unsigned i = 0; i < RUN; i++) {
		snprintf(id, sizeof(id), "run%u", i);
		if (i % 2 == 0) {
			assert_int_equal(lm_index_remove_posting(idx, id, 0), LM_OK);
			continue;
		}
		snprintf(skill, sizeof(skill), "x:%s", id);
		JobPosting *p = simple_posting(id, 2, skill);
		p->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
		assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	}
	assert_lists(idx);
	lm_index_counts_get(idx, &c0);
	assert_int_equal(lm_index_reshare_walked(idx), 0); /* held */

	seam.budget = SIZE_MAX;
	held = seam.asked;
	c = c0;
	for (int i = 0; i < 1000 && c.reshares == c0.reshares; i++) {
		lm_index_advance(idx, NOW);
		assert_lists(idx);
		lm_index_counts_get(idx, &c);
	}
	walk_seen(&seam);
	print_message("build across a run of %d doc ids: %u steps, %u of %d doc ids, "
	              "at most %zu\n",
	    RUN, seam.asked - held, seam.full, LM_INDEX_RESHARE_WALK, seam.most);
	assert_int_equal(c.reshares, c0.reshares + 1);
	assert_true(seam.most <= LM_INDEX_RESHARE_WALK);
	assert_true(seam.full >= RUN / LM_INDEX_RESHARE_WALK - 1);
	assert_lists(idx);
	lm_index_free(idx);
}

static void churn_put(lm_index *idx, struct world *w, JobPosting *p, size_t cap);

/* The fault seam of the build tests below: fails the fail_at-th
 * allocation of a new snapshot's build asked about (1 for the first; 0 for
 * none), and counts those asked and failed; every other allocation
 * succeeds. */
struct build_fault {
	int asked, fail_at, failed;
};

static int
build_fault(void *arg, lm_index_alloc what)
{
	struct build_fault *f = arg;

	if (what != LM_INDEX_ALLOC_REBUILD)
		return LM_OK;
	if (++f->asked != f->fail_at)
		return LM_OK;
	f->failed++;
	return LM_ENOMEM;
}

/* Changes postings (churn_op, the vocabulary swinging between 5 and 200
 * skills so that idf drifts) until a new snapshot's build begins, then
 * takes steps of one posting each for PART more changes: the build is part
 * of the way through the doc ids. *op counts the changes, below max. */
static void
build_part_way(struct rng *r, lm_index *idx, struct world *w, struct step_seam *seam,
    unsigned *op, unsigned max)
{
	enum { PART = 200 };
	unsigned asked = seam->asked;

	seam->budget = 1;
	for (; seam->asked == asked && *op < max; (*op)++) {
		if (*op % 500 == 499)
			skill_vocab = skill_vocab == 5 ? 200 : 5;
		churn_op(r, idx, w, *op);
	}
	assert_true(seam->asked > asked);
	for (unsigned i = 0; i < PART && *op < max; i++, (*op)++)
		churn_op(r, idx, w, *op);
	assert_lists(idx);
}

/* Lets the steps go on without an update until none is left to take
 * (lm_index_advance), checking the lists after each round. */
static void
steps_done(lm_index *idx, struct step_seam *seam)
{
	int i = 0;

	seam->budget = SIZE_MAX;
	while (i++ < 10000 && lm_index_advance(idx, NOW))
		assert_lists(idx);
	assert_true(i < 10000);
}

/*
 * An allocation of a new snapshot's build that fails drops the build, not
 * the update it came with: in a step (no update), in an update's change
 * of the snapshot being built (every update holds its posting in it), and
 * in an update's change of the lists being built (a posting whose doc id
 * the build has passed). Each time the update goes through, the old lists
 * and snapshot stay in place (no new snapshot taken), and the lists and
 * every answer are those of the records as they are then, also once the
 * dropped lists are freed; a later build, without failures, is put in
 * place. Run under the address sanitizer, nothing of the dropped builds
 * leaks.
 */
static void
test_reshare_out_of_memory(void **state)
{
	enum { START = 600, OPS = 20000 };
	struct rng r = {0x0FF5E7B1ULL};
	struct step_seam seam = {0, 1, false};
	lm_model m;
	lm_index *idx = NULL;
	struct world w;
	lm_index_counts c0, c;
	size_t cap = START + OPS;
	unsigned op = 0;

	(void) state;
	lm_model_defaults(&m);
	skill_vocab = 5;
	build_n(&r, &m, &idx, &w, START, 40);
	world_reserve(&w, cap);
	lm_index_set_reshare_seam(idx, step_seam, &seam);
	for (int where = 0; where < 3; where++) {
		struct build_fault f = {0, 0, 0};
		build_part_way(&r, idx, &w, &seam, &op, OPS);
		lm_index_counts_get(idx, &c0);
		if (where == 0) { /* a step's */
			f.fail_at = 1;
			lm_index_set_fault(idx, build_fault, &f);
			lm_index_advance(idx, NOW);
		} else {
			/* An update's: new versions of postings, open, with no
			 * step after them, until one fails (in the snapshot: the
			 * first allocation each asks for; in the lists: the
			 * second, which only one the build has passed asks). */
			seam.budget = 0;
			for (int i = 0; i < 1000 && f.failed == 0 && op < OPS;
			     i++, op++) {
				size_t k = rn(&r, (uint32_t) w.np);
				JobPosting *p = gen_posting(&r, w.posts[k]->id);
				p->version = w.posts[k]->version + 1;
				p->status =
				    LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
				f = (struct build_fault){0, where, 0};
				lm_index_set_fault(idx, build_fault, &f);
				churn_put(idx, &w, p, cap);
				lm_index_set_fault(idx, NULL, NULL);
				assert_true(f.asked == 1 || f.asked == 2);
			}
		}
		lm_index_set_fault(idx, NULL, NULL);
		assert_int_equal(f.failed, 1);
		check_stepped(&r, idx, &m, &w);
		steps_done(idx, &seam);
		lm_index_counts_get(idx, &c);
		assert_int_equal(c.reshares, c0.reshares);
		check_stepped(&r, idx, &m, &w);
	}

	/* A build without failures is put in place. */
	build_part_way(&r, idx, &w, &seam, &op, OPS);
	lm_index_counts_get(idx, &c0);
	steps_done(idx, &seam);
	lm_index_counts_get(idx, &c);
	assert_int_equal(c.reshares, c0.reshares + 1);
	check_stepped(&r, idx, &m, &w);
	print_message("reshare out of memory: %u changes\n", op);
	lm_index_free(idx);
	world_free(&w);
	skill_vocab = 25;
}

static int
fail_reshare(void *arg, lm_index_alloc what)
{
	(void) arg;
	return what == LM_INDEX_ALLOC_RESHARE ? LM_ENOMEM : LM_OK;
}

/* Puts postings of skills of their own, named prefix0, prefix1, ..., into
 * both idx (whose reshare seam is seam) and twin, until a new snapshot's
 * build begins in idx, then n more. */
static void
put_twins(
    lm_index *idx, lm_index *twin, struct walk_seam *seam, const char *prefix, unsigned n)
{
	unsigned i = 0, asked = seam->asked;
	char id[32];

	for (; (seam->asked == asked || n-- > 0) && i < 100000; i++) {
		snprintf(id, sizeof(id), "%s%u", prefix, i);
		put_own_skill(idx, id);
		put_own_skill(twin, id);
	}
	assert_true(seam->asked > asked);
}

/*
 * lm_index_list_bytes counts the lists of a new snapshot being built and
 * the old lists being freed after it is put in place. Two indexes take the
 * same postings; in idx builds begin (held by its seam), in twin none can
 * begin (its start fails), so that twin's lists are those idx uses. While
 * a build is held idx counts more bytes than twin, and more with every
 * step; a build dropped (an allocation of a step fails) leaves idx, once
 * its lists are freed, at exactly twin's count. A build put in place
 * counts the old lists until the steps that follow have freed them: more
 * bytes after the exchange than once they are freed.
 */
static void
test_reshare_list_bytes(void **state)
{
	struct walk_seam seam = {0};
	struct build_fault f = {0, 1, 0};
	lm_model m;
	lm_index *idx = NULL, *twin = NULL;
	lm_index_counts c0, c;
	size_t held, stepped, swapped = 0, freed;
	int i;

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	assert_int_equal(lm_index_new(&m, &twin), LM_OK);
	lm_index_set_fault(twin, fail_reshare, NULL);
	seam.idx = idx;
	lm_index_set_reshare_seam(idx, walk_seam, &seam);

	put_twins(idx, twin, &seam, "a", 0);
	held = lm_index_list_bytes(idx);
	assert_true(held > lm_index_list_bytes(twin));
	seam.budget = 64;
	lm_index_advance(idx, NOW);
	stepped = lm_index_list_bytes(idx);
	assert_true(stepped > held);
	lm_index_set_fault(idx, build_fault, &f);
	lm_index_advance(idx, NOW);
	lm_index_set_fault(idx, NULL, NULL);
	assert_int_equal(f.failed, 1);
	for (i = 0; i < 1000 && lm_index_advance(idx, NOW); i++)
		;
	assert_true(i < 1000);
	assert_int_equal(lm_index_list_bytes(idx), lm_index_list_bytes(twin));

	/* The next build, with many more lists than a round of steps frees. */
	seam.budget = 0;
	put_twins(idx, twin, &seam, "b", 2000);
	lm_index_counts_get(idx, &c0);
	seam.budget = SIZE_MAX;
	c = c0;
	for (i = 0; i < 1000 && c.reshares == c0.reshares; i++) {
		lm_index_advance(idx, NOW);
		lm_index_counts_get(idx, &c);
		swapped = lm_index_list_bytes(idx);
	}
	assert_int_equal(c.reshares, c0.reshares + 1);
	for (i = 0; i < 1000 && lm_index_advance(idx, NOW); i++)
		assert_true(lm_index_list_bytes(idx) <= swapped);
	assert_true(i > 0 && i < 1000);
	freed = lm_index_list_bytes(idx);
	print_message(
	    "list bytes: %zu held, %zu after a round of steps, %zu after the exchange, "
	    "%zu once the old lists are freed\n",
	    held, stepped, swapped, freed);
	assert_true(freed < swapped);
	assert_lists(idx);
	lm_index_free(idx);
	lm_index_free(twin);
}

static void
test_updates(void **state)
{
	lm_model m;
	lm_index *idx = NULL;
	char buf[256];
	JobPosting *p, *got = NULL;
	Profile *pr = NULL;
	lm_index_counts counts;
	double s;

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	/* c1 wants to be an engineer, as every posting here is titled: the
	 * postings without its skill stay eligible (no NO_OVERLAP veto). */
	pr = simple_profile("c1", "go");
	profile_goals(pr, "Engineer", NULL);
	assert_int_equal(lm_index_put_profile(idx, pr, 0), LM_OK);
	pr = NULL;
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j2", 1, "go"), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j1", 1, "go"), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j3", 1, "rust"), 0), LM_OK);
	/* Ties by id; the skill match ranks first. */
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "j1,j2,j3");

	/* A new version replaces the old at once. */
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j3", 2, "go"), 0), LM_OK);
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "j1,j2,j3");
	p = simple_posting("j1", 2, "rust");
	assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "j2,j3,j1");
	/* An older version is refused and changes nothing. */
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j1", 1, "go"), 0), LM_ESTALE);
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "j2,j3,j1");

	/* Closing removes from results but keeps the record for Get/Explain. */
	p = simple_posting("j2", 5, "go");
	p->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
	assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "j3,j1");
	assert_int_equal(lm_index_get_posting(idx, "j2", &got), LM_OK);
	assert_int_equal(got->version, 5);
	assert_int_equal(
	    got->status, LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED);
	{
		/* The size of the index's copy, without a copy. */
		uint64_t size = 0;
		assert_int_equal(lm_index_record_size(idx, true, "j2", &size), LM_OK);
		assert_int_equal(size, protobuf_c_message_get_packed_size(&got->base));
		assert_int_equal(lm_index_record_size(idx, false, "c1", &size), LM_OK);
		assert_true(size > 0);
		assert_int_equal(
		    lm_index_record_size(idx, false, "j2", &size), LM_ENOENT);
		assert_int_equal(lm_index_record_size(idx, true, "c1", &size), LM_ENOENT);
		assert_int_equal(
		    lm_index_record_size(NULL, true, "j2", &size), LM_EINVAL);
	}
	free_msg(got);
	lm_index_counts_get(idx, &counts);
	assert_int_equal(counts.postings, 3);
	assert_int_equal(counts.open_postings, 2);
	assert_int_equal(lm_index_pair_score(idx, "c1", "j2", NOW, &s, NULL), LM_OK);
	assert_float_equal(s, 0, 0);
	{
		Lunamatch__V1__ExplainMatchResponse *ex = NULL;
		assert_int_equal(
		    lm_index_explain(idx, "c1", "j2", NOW, &ex, NULL), LM_OK);
		assert_false(ex->eligible);
		assert_string_equal(
		    ex->match->explanation->vetoes[0]->code, LM_VETO_POSTING_CLOSED);
		free_msg(ex);
		assert_int_equal(
		    lm_index_explain(idx, "c1", "nope", NOW, &ex, NULL), LM_ENOENT);
		assert_null(ex);
	}

	/* Removal is immediate. */
	assert_int_equal(lm_index_remove_posting(idx, "j3", 0), LM_OK);
	assert_int_equal(lm_index_remove_posting(idx, "j3", 0), LM_ENOENT);
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "j1");
	assert_int_equal(lm_index_get_posting(idx, "j3", &got), LM_ENOENT);
	assert_null(got);

	/* Expiry: the posting leaves the results of a query at its expiry and
	 * the open count once the index clock passes it, but stays in the IDF
	 * statistics (which count every posting not closed). */
	p = simple_posting("j4", 1, "go");
	p->expires_at = NOW;
	assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	lm_index_counts_get(idx, &counts);
	assert_int_equal(counts.open_postings, 2); /* the clock is still before NOW */
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "j1");
	lm_index_counts_get(idx, &counts);
	assert_int_equal(counts.open_postings, 2); /* queries do not move the clock */
	lm_index_advance(idx, NOW);
	lm_index_counts_get(idx, &counts);
	assert_int_equal(counts.open_postings, 1);
	lm_index_advance(idx, NOW - DAY); /* never back */
	lm_index_counts_get(idx, &counts);
	assert_int_equal(counts.open_postings, 1);

	/* Get returns an independent copy. */
	assert_int_equal(lm_index_get_profile(idx, "c1", &pr), LM_OK);
	free(pr->headline);
	pr->headline = lmt_strdup("changed");
	free_msg(pr);
	assert_int_equal(lm_index_get_profile(idx, "c1", &pr), LM_OK);
	assert_string_equal(pr->headline, "Dev");
	free_msg(pr);

	/* A removed profile is gone for queries by id. */
	assert_int_equal(lm_index_remove_profile(idx, "c1", 0), LM_OK);
	{
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *resp = NULL;
		char err[128];
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = "c1";
		assert_int_equal(
		    lm_index_match_jobs(idx, &req, NOW, &resp, err, sizeof(err)),
		    LM_ENOENT);
		assert_null(resp);
	}
	lm_index_set_seq(idx, 42);
	assert_int_equal(lm_index_seq(idx), 42);
	assert_string_equal(lm_index_model_version(idx), "builtin");
	lm_index_free(idx);
	lm_index_free(NULL);
}

/* Ids of a match_candidates answer, comma-separated, into buf; *vetoed
 * receives the response's vetoed count. */
static const char *
candidates_for(lm_index *idx, const char *job, const JobPosting *inl, char *buf,
    size_t len, uint64_t *vetoed)
{
	Lunamatch__V1__MatchCandidatesRequest req =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
	size_t w = 0;

	if (inl != NULL) {
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_POSTING;
		req.posting = (JobPosting *) inl;
	} else {
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = (char *) job;
	}
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
	assert_int_equal(
	    lm_index_match_candidates(idx, &req, NOW, &resp, NULL, 0), LM_OK);
	buf[0] = '\0';
	for (size_t i = 0; i < resp->n_matches; i++) {
		assert_int_equal(resp->matches[i]->explanation->n_vetoes, 0);
		join_id(buf, len, &w, resp->matches[i]->candidate_id);
	}
	*vetoed = resp->vetoed;
	free_msg(resp);
	return buf;
}

/* Ids of a top list, comma-separated, into buf; clears the list. */
static const char *
top_ids(lm_top_list *l, char *buf, size_t len)
{
	size_t w = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n; i++)
		join_id(buf, len, &w, l->items[i].id);
	lm_top_list_clear(l);
	return buf;
}

/*
 * NO_OVERLAP through the index, in both directions: a posting that lists
 * skills is never matched with a candidate who has none of them, unless the
 * candidate's goals point at the role; ExplainMatch shows the veto;
 * new-match events (lm_index_top_for_*) never carry the pair.
 */
static void
test_no_overlap(void **state)
{
	lm_model m;
	lm_index *idx = NULL;
	char buf[256];
	uint64_t vetoed = 0;
	Lunamatch__V1__ExplainMatchResponse *ex = NULL;
	lm_top_list l;
	JobPosting *p, *inl_post;
	Profile *c, *inl_prof;
	double s = -1;
	bool ok = true;

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	/* c-go shares go with j-go; c-goal has no skill of j-backend but wants
	 * a backend role; c-none shares nothing, and its desired industry does
	 * not point at a role. */
	assert_int_equal(
	    lm_index_put_profile(idx, simple_profile("c-go", "go"), 0), LM_OK);
	c = simple_profile("c-goal", "rust");
	profile_goals(c, "Senior Backend Developer", NULL);
	assert_int_equal(lm_index_put_profile(idx, c, 0), LM_OK);
	c = simple_profile("c-none", "cobol");
	c->career_goals = lmt_calloc(1, sizeof(*c->career_goals));
	lunamatch__v1__career_goals__init(c->career_goals);
	c->career_goals->n_desired_industries = 1;
	c->career_goals->desired_industries = lmt_calloc(1, sizeof(char *));
	c->career_goals->desired_industries[0] = lmt_strdup("Fintech");
	assert_int_equal(lm_index_put_profile(idx, c, 0), LM_OK);
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j-go", 1, "go"), 0), LM_OK);
	p = simple_posting("j-backend", 1, "java");
	free(p->title);
	p->title = lmt_strdup("Backend Engineer");
	p->industry = lmt_strdup("Fintech");
	assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	p = simple_posting("j-noskills", 1, "go");
	protobuf_c_message_free_unpacked(&p->skills[0]->base, NULL);
	free(p->skills);
	p->skills = NULL;
	p->n_skills = 0;
	assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);

	/* MatchJobs. */
	assert_string_equal(jobs_for(idx, "c-go", buf, sizeof(buf)), "j-go,j-noskills");
	/* (j-noskills first: a posting without skills has no skills feature,
	 * j-backend's is 0) */
	assert_string_equal(
	    jobs_for(idx, "c-goal", buf, sizeof(buf)), "j-noskills,j-backend");
	assert_string_equal(jobs_for(idx, "c-none", buf, sizeof(buf)), "j-noskills");
	inl_prof = simple_profile("inline", "java"); /* an inline subject */
	assert_string_equal(jobs_query(idx, NULL, inl_prof, buf, sizeof(buf), &vetoed),
	    "j-backend,j-noskills");
	assert_int_equal(vetoed, 1);
	free(inl_prof->skills[0]->skill_id);
	inl_prof->skills[0]->skill_id = lmt_strdup("x:unknown-to-the-index");
	assert_string_equal(
	    jobs_query(idx, NULL, inl_prof, buf, sizeof(buf), &vetoed), "j-noskills");
	assert_int_equal(vetoed, 2);
	free_msg(inl_prof);

	/* MatchCandidates. */
	assert_string_equal(
	    candidates_for(idx, "j-go", NULL, buf, sizeof(buf), &vetoed), "c-go");
	assert_int_equal(vetoed, 2);
	assert_string_equal(
	    candidates_for(idx, "j-backend", NULL, buf, sizeof(buf), &vetoed), "c-goal");
	assert_int_equal(vetoed, 2);
	/* (c-goal last: its desired title is not this one, career_goals 0) */
	assert_string_equal(
	    candidates_for(idx, "j-noskills", NULL, buf, sizeof(buf), &vetoed),
	    "c-go,c-none,c-goal");
	assert_int_equal(vetoed, 0);
	inl_post = simple_posting("inline", 1, "cobol");
	assert_string_equal(
	    candidates_for(idx, NULL, inl_post, buf, sizeof(buf), &vetoed), "c-none");
	assert_int_equal(vetoed, 2);
	free(inl_post->title);
	inl_post->title = lmt_strdup("Backend Developer (COBOL)");
	assert_string_equal(
	    candidates_for(idx, NULL, inl_post, buf, sizeof(buf), &vetoed),
	    "c-none,c-goal"); /* c-none has the skill */
	free_msg(inl_post);

	/* ExplainMatch and the pair score. */
	assert_int_equal(
	    lm_index_explain(idx, "c-none", "j-backend", NOW, &ex, NULL), LM_OK);
	assert_false(ex->eligible);
	assert_float_equal(ex->match->score, 0, 0);
	assert_int_equal(ex->match->explanation->n_vetoes, 1);
	assert_string_equal(ex->match->explanation->vetoes[0]->code, LM_VETO_NO_OVERLAP);
	assert_string_equal(ex->match->explanation->vetoes[0]->reason,
	    "no skill in common with the posting, and the role is not among the "
	    "career goals");
	assert_non_null(
	    strstr(ex->match->explanation->summary, "not eligible: no skill"));
	assert_int_equal(ex->match->explanation->n_improvements, 1);
	assert_string_equal(
	    ex->match->explanation->improvements[0]->action, "add skill: java");
	free_msg(ex);
	assert_int_equal(
	    lm_index_explain(idx, "c-goal", "j-backend", NOW, &ex, NULL), LM_OK);
	assert_true(ex->eligible);
	free_msg(ex);
	assert_int_equal(
	    lm_index_pair_score(idx, "c-none", "j-backend", NOW, &s, &ok), LM_OK);
	assert_false(ok);
	assert_float_equal(s, 0, 0);

	/* Events: what lm_index_top_for_* gives never holds a vetoed pair,
	 * whatever the threshold. */
	assert_int_equal(lm_index_top_for_profile(idx, "c-none", 10, 0, NOW, &l), LM_OK);
	assert_string_equal(top_ids(&l, buf, sizeof(buf)), "j-noskills");
	assert_int_equal(lm_index_top_for_profile(idx, "c-go", 10, 0, NOW, &l), LM_OK);
	assert_string_equal(top_ids(&l, buf, sizeof(buf)), "j-go,j-noskills");
	assert_int_equal(
	    lm_index_top_for_posting(idx, "j-backend", 10, 0, NOW, &l), LM_OK);
	assert_string_equal(top_ids(&l, buf, sizeof(buf)), "c-goal");
	assert_int_equal(lm_index_top_for_posting(idx, "j-go", 10, -1, NOW, &l), LM_OK);
	assert_string_equal(top_ids(&l, buf, sizeof(buf)), "c-go");

	/* A new version that shares a skill lifts the veto at once. */
	p = simple_posting("j-backend", 2, "cobol");
	assert_int_equal(lm_index_put_posting(idx, p, 0), LM_OK);
	assert_string_equal(
	    jobs_for(idx, "c-none", buf, sizeof(buf)), "j-backend,j-noskills");
	lm_index_free(idx);
}

/* ---- country partitions ------------------------------------------------------ */

/* Locations in the countries cc[0 .. 3) (NULL: none). */
static Lunamatch__V1__Location **
country_locs(const char *const cc[3], size_t *n)
{
	Lunamatch__V1__Location **v = lmt_calloc(3, sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < 3; i++) {
		if (cc[i] == NULL)
			continue;
		v[*n] = lmt_calloc(1, sizeof(*v[*n]));
		lunamatch__v1__location__init(v[*n]);
		v[*n]->country = lmt_strdup(cc[i]);
		(*n)++;
	}
	return v;
}

/* A posting located in the countries c1, c2 and c3 (any may be NULL). */
static JobPosting *
country_posting(const char *id, uint64_t version, Lunamatch__V1__RemotePolicy remote,
    const char *c1, const char *c2, const char *c3)
{
	const char *const cc[3] = {c1, c2, c3};
	JobPosting *p = simple_posting(id, version, "go");

	p->remote = remote;
	p->locations = country_locs(cc, &p->n_locations);
	return p;
}

static Profile *
country_profile(
    const char *id, uint64_t version, bool relocate, const char *c1, const char *c2)
{
	const char *const cc[3] = {c1, c2, NULL};
	Profile *c = simple_profile(id, "go");

	c->version = version;
	c->willing_to_relocate = relocate;
	c->locations = country_locs(cc, &c->n_locations);
	return c;
}

/* The country group of a posting located in country cc only (a country
 * that does not fold to ASCII: every group). */
static uint32_t
group_of(const char *cc)
{
	JobPosting *p = country_posting(
	    "g", 1, LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE, cc, NULL, NULL);
	lm_posting_prep *pp = NULL;
	uint32_t g;

	assert_int_equal(lm_posting_prep_new(p, &pp), LM_OK);
	g = lm_index_country_groups(lm_posting_prep_key(pp)->country_mask);
	g = g == (1u << LM_INDEX_COUNTRY_GROUPS) - 1 ? LM_INDEX_COUNTRY_GROUPS
	                                             : (uint32_t) __builtin_ctz(g);
	lm_posting_prep_free(pp);
	free_msg(p);
	return g;
}

/* Puts (or replaces) posting p in the index and the world, which owns p. */
static void
world_put_posting(lm_index *idx, struct world *w, JobPosting *p)
{
	size_t i = 0;

	while (i < w->np && strcmp(w->posts[i]->id, p->id) != 0)
		i++;
	if (i == w->np) {
		w->posts = realloc(w->posts, (w->np + 1) * sizeof(*w->posts));
		w->pp = realloc(w->pp, (w->np + 1) * sizeof(*w->pp));
		assert_non_null(w->posts);
		assert_non_null(w->pp);
		w->np++;
	} else {
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
	}
	w->posts[i] = p;
	assert_int_equal(lm_posting_prep_new(p, &w->pp[i]), LM_OK);
	assert_int_equal(lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0), LM_OK);
	world_stats(w);
}

static void
world_put_profile(lm_index *idx, struct world *w, Profile *c)
{
	size_t i = 0;

	while (i < w->nc && strcmp(w->profs[i]->id, c->id) != 0)
		i++;
	if (i == w->nc) {
		w->profs = realloc(w->profs, (w->nc + 1) * sizeof(*w->profs));
		w->cp = realloc(w->cp, (w->nc + 1) * sizeof(*w->cp));
		assert_non_null(w->profs);
		assert_non_null(w->cp);
		w->nc++;
	} else {
		lm_profile_prep_free(w->cp[i]);
		free_msg(w->profs[i]);
	}
	w->profs[i] = c;
	assert_int_equal(lm_profile_prep_new(c, &w->cp[i]), LM_OK);
	assert_int_equal(lm_index_put_profile(idx, dup_msg(&c->base, NULL), 0), LM_OK);
}

static void
world_remove_posting(lm_index *idx, struct world *w, const char *id)
{
	size_t i = 0;

	while (i < w->np && strcmp(w->posts[i]->id, id) != 0)
		i++;
	assert_true(i < w->np);
	assert_int_equal(lm_index_remove_posting(idx, id, 0), LM_OK);
	lm_posting_prep_free(w->pp[i]);
	free_msg(w->posts[i]);
	w->posts[i] = w->posts[--w->np];
	w->pp[i] = w->pp[w->np];
	world_stats(w);
}

/* Every stored profile's MatchJobs and every stored posting's
 * MatchCandidates, exactly the reference's answers. */
static void
check_world(lm_index *idx, const lm_model *m, const struct world *w)
{
	for (size_t i = 0; i < w->nc; i++) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *resp = NULL;
		size_t n, vetoed;
		struct ref *want;

		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = w->profs[i]->id;
		req.top_k = 50;
		assert_int_equal(
		    lm_index_match_jobs(idx, &req, NOW, &resp, NULL, 0), LM_OK);
		want = reference(w, m, NOW, NULL, w->cp[i], NULL, &n, &vetoed);
		compare(resp->matches, resp->n_matches, want, n, 50, true);
		check_vetoed(resp->vetoed, vetoed, resp->n_matches, 50);
		free(want);
		free_msg(resp);
	}
	for (size_t i = 0; i < w->np; i++) {
		Lunamatch__V1__MatchCandidatesRequest req =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
		size_t n, vetoed;
		struct ref *want;

		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = w->posts[i]->id;
		req.top_k = 50;
		assert_int_equal(
		    lm_index_match_candidates(idx, &req, NOW, &resp, NULL, 0), LM_OK);
		want = reference(w, m, NOW, NULL, NULL, w->pp[i], &n, &vetoed);
		compare(resp->matches, resp->n_matches, want, n, 50, false);
		check_vetoed(resp->vetoed, vetoed, resp->n_matches, 50);
		free(want);
		free_msg(resp);
	}
}

/* The entries and records a query read (lm_index_counts). */
static void
read_by(
    lm_index *idx, const lm_index_counts *before, uint64_t *entries, uint64_t *reached)
{
	lm_index_counts now;

	lm_index_counts_get(idx, &now);
	*entries = now.entries - before->entries;
	*reached = now.reached - before->reached;
}

/*
 * Country partitions: a query never reads a posting (or profile) of a
 * country group that the location veto excludes, and the answers stay the
 * reference's through records with countries in two groups, relocation,
 * remote postings, a country that does not fold to ASCII, and updates
 * that move a record to another partition and removals from one.
 */
static void
test_country_partitions(void **state)
{
	static const char *const codes[] = {"US", "DE", "FR", "GB", "NL", "ES", "PL",
	    "SE", "CA", "IN", "JP", "BR", "IT", "MX", "AU", "CH", "AT", "BE", "DK", "NO",
	    "FI", "PT", "IE", "CZ", "NZ", "ZA", "AR", "CL", "KR", "SG"};
	const Lunamatch__V1__RemotePolicy onsite =
	    LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE;
	const Lunamatch__V1__RemotePolicy hybrid =
	    LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID;
	const Lunamatch__V1__RemotePolicy remote =
	    LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	const char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *a2 = NULL;
	uint64_t entries, reached, vetoed;
	lm_index_counts c0;
	lm_model m;
	lm_index *idx = NULL;
	struct world w;
	JobPosting *p;
	char buf[512];

	(void) state;
	/* Countries a, b, c and d in four groups, a2 another one in a's. */
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		uint32_t g = group_of(codes[i]);
		assert_true(g < LM_INDEX_COUNTRY_GROUPS);
		if (a == NULL)
			a = codes[i];
		else if (g == group_of(a)) {
			if (a2 == NULL)
				a2 = codes[i];
		} else if (b == NULL)
			b = codes[i];
		else if (g != group_of(b) && c == NULL)
			c = codes[i];
		else if (g != group_of(b) && g != group_of(c) && d == NULL)
			d = codes[i];
	}
	assert_non_null(a2);
	assert_non_null(d);
	assert_int_equal(lm_index_country_groups(0), 0);
	assert_int_equal(
	    lm_index_country_groups(UINT64_MAX), (1u << LM_INDEX_COUNTRY_GROUPS) - 1);
	assert_int_equal(group_of("\xc3\x96sterreich"), LM_INDEX_COUNTRY_GROUPS);

	lm_model_defaults(&m);
	memset(&w, 0, sizeof(w));
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	/* Not remote, in b, c and d only: vetoed for a candidate in a who does
	 * not relocate, and never read by his queries, but for j-bc and j-bcd,
	 * whose countries are in several groups: they are in partitions of any
	 * country. */
	world_put_posting(idx, &w, country_posting("j-b1", 1, onsite, b, NULL, NULL));
	world_put_posting(idx, &w, country_posting("j-b2", 1, hybrid, b, NULL, NULL));
	world_put_posting(idx, &w,
	    country_posting("j-c", 1,
	        LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_UNSPECIFIED, c, NULL, NULL));
	world_put_posting(idx, &w, country_posting("j-bc", 1, onsite, b, c, NULL));
	world_put_posting(idx, &w, country_posting("j-bcd", 1, onsite, b, c, d));
	world_put_profile(idx, &w, country_profile("c-a", 1, false, a, NULL));
	lm_index_counts_get(idx, &c0);
	assert_string_equal(jobs_query(idx, "c-a", NULL, buf, sizeof(buf), &vetoed), "");
	assert_int_equal(vetoed, 5);
	read_by(idx, &c0, &entries, &reached);
	assert_int_equal(reached, 2);
	assert_int_equal(entries, 2);
	/* The other way round: a posting in b skips c-a's group. */
	lm_index_counts_get(idx, &c0);
	assert_string_equal(
	    candidates_for(idx, "j-b1", NULL, buf, sizeof(buf), &vetoed), "");
	assert_int_equal(vetoed, 1);
	read_by(idx, &c0, &entries, &reached);
	assert_int_equal(entries, 0);
	assert_int_equal(reached, 0);
	check_world(idx, &m, &w);

	/* Another country of a's group is read (and vetoed by its key). */
	world_put_posting(idx, &w, country_posting("j-a2", 1, onsite, a2, NULL, NULL));
	lm_index_counts_get(idx, &c0);
	assert_string_equal(jobs_query(idx, "c-a", NULL, buf, sizeof(buf), &vetoed), "");
	read_by(idx, &c0, &entries, &reached);
	assert_int_equal(reached, 3);

	/* Relocating, or without a country, a candidate reads every posting;
	 * remote postings, postings in a and b, and one that does not fold to
	 * ASCII are read by everyone. */
	world_put_profile(idx, &w, country_profile("c-a-moves", 1, true, a, NULL));
	world_put_profile(idx, &w, country_profile("c-none", 1, false, NULL, NULL));
	world_put_profile(idx, &w, country_profile("c-ba", 1, false, b, a));
	world_put_profile(
	    idx, &w, country_profile("c-at", 1, false, "\xc3\x96sterreich", NULL));
	p = country_posting("j-remote-b", 1, remote, b, NULL, NULL);
	p->n_remote_countries = 2; /* remote work from b and a */
	p->remote_countries = lmt_calloc(2, sizeof(char *));
	p->remote_countries[0] = lmt_strdup(b);
	p->remote_countries[1] = lmt_strdup(a);
	world_put_posting(idx, &w, p);
	world_put_posting(idx, &w, country_posting("j-ba", 1, onsite, b, a, NULL));
	world_put_posting(
	    idx, &w, country_posting("j-at", 1, onsite, "\xc3\x96sterreich", NULL, NULL));
	check_world(idx, &m, &w);
	assert_string_equal(jobs_for(idx, "c-a", buf, sizeof(buf)), "j-ba,j-remote-b");
	assert_string_equal(jobs_for(idx, "c-a-moves", buf, sizeof(buf)),
	    "j-ba,j-remote-b,j-a2,j-at,j-b1,j-b2,j-bc,j-bcd,j-c");
	assert_string_equal(candidates_for(idx, "j-b1", NULL, buf, sizeof(buf), &vetoed),
	    "c-ba,c-none,c-a-moves");

	/* Updates move a posting between partitions: into a's group, to a
	 * remote one, back to b; a profile that starts to relocate leaves its
	 * group. */
	world_put_posting(idx, &w, country_posting("j-b1", 2, onsite, a, NULL, NULL));
	check_world(idx, &m, &w);
	assert_string_equal(
	    jobs_for(idx, "c-a", buf, sizeof(buf)), "j-b1,j-ba,j-remote-b");
	p = country_posting("j-b1", 3, remote, b, NULL, NULL);
	p->n_remote_countries = 1;
	p->remote_countries = lmt_calloc(1, sizeof(char *));
	p->remote_countries[0] = lmt_strdup(a);
	world_put_posting(idx, &w, p);
	check_world(idx, &m, &w);
	assert_string_equal(
	    jobs_for(idx, "c-a", buf, sizeof(buf)), "j-b1,j-ba,j-remote-b");
	world_put_posting(idx, &w, country_posting("j-b1", 4, onsite, b, NULL, NULL));
	check_world(idx, &m, &w);
	assert_string_equal(jobs_for(idx, "c-a", buf, sizeof(buf)), "j-ba,j-remote-b");
	world_put_profile(idx, &w, country_profile("c-a", 2, true, a, NULL));
	check_world(idx, &m, &w);
	assert_string_equal(candidates_for(idx, "j-b1", NULL, buf, sizeof(buf), &vetoed),
	    "c-ba,c-none,c-a,c-a-moves");
	world_put_profile(idx, &w, country_profile("c-a", 3, false, a, NULL));
	check_world(idx, &m, &w);

	/* Removal from a partition of a's group and from one of any country. */
	world_remove_posting(idx, &w, "j-a2");
	world_remove_posting(idx, &w, "j-ba");
	check_world(idx, &m, &w);
	assert_string_equal(jobs_for(idx, "c-a", buf, sizeof(buf)), "j-remote-b");
	lm_index_counts_get(idx, &c0);
	assert_string_equal(candidates_for(idx, "j-c", NULL, buf, sizeof(buf), &vetoed),
	    "c-none,c-a-moves");
	read_by(idx, &c0, &entries, &reached);
	/* j-c (in c) reads the profiles of no group: c-a-moves, c-none, c-ba
	 * (in two groups) and c-at (not ASCII). */
	assert_int_equal(reached, 4);
	lm_index_free(idx);
	world_free(&w);
}

/* ---- memory under churn --------------------------------------------------- */

/* A posting whose skills, title tokens and category are its own (serial
 * s), plus common skills: "c0" in most postings when common, in few
 * otherwise (its idf moves, so updates take new idf snapshots), and one of
 * ten others. Its remote policy, employment type and country go round
 * with s (scattered, so that the first postings already reach most
 * partitions), so that its symbols, reused once freed, come back in other
 * partitions. */
static JobPosting *
fresh_posting(struct rng *r, const char *id, uint64_t version, unsigned s, bool common)
{
	static const char *const cc[] = {"US", "DE", "FR", "GB", "NL", "ES", "PL", "SE"};
	JobPosting *p = NULL;
	unsigned u = s * 37 % 576; /* 4 remote, 6 employment, 24 location */
	char buf[64];
	const char *c = NULL;

	if (u % 4 != 3 && (u / 24) % 3 != 0)
		c = cc[(u / 72) % 8];
	p = country_posting(
	    id, version, (Lunamatch__V1__RemotePolicy) (u % 4), c, NULL, NULL);
	p->employment_type = (Lunamatch__V1__EmploymentType) ((u / 4) % 6);
	free(p->title);
	snprintf(buf, sizeof(buf), "Engineer t%ua t%ub", s, s);
	p->title = lmt_strdup(buf);
	snprintf(buf, sizeof(buf), "cat%u", s);
	p->category = lmt_strdup(buf);
	for (size_t i = 0; i < p->n_skills; i++)
		free_msg(p->skills[i]);
	free(p->skills);
	p->n_skills = 6;
	p->skills = lmt_calloc(p->n_skills, sizeof(*p->skills));
	for (size_t i = 0; i < p->n_skills; i++) {
		Lunamatch__V1__PostingSkill *k = lmt_calloc(1, sizeof(*k));
		lunamatch__v1__posting_skill__init(k);
		if (i == 0)
			snprintf(buf, sizeof(buf), "c0");
		else if (i == 1)
			snprintf(buf, sizeof(buf), "s%u", rn(r, 10));
		else
			snprintf(buf, sizeof(buf), "f%u.%zu", s, i);
		if (i == 0 && !chance(r, common ? 90 : 10))
			snprintf(buf, sizeof(buf), "f%u.0", s);
		k->skill_id = lmt_strdup(buf);
		k->weight = weights[1 + rn(r, 4)];
		k->preferred = chance(r, 30);
		p->skills[i] = k;
	}
	return p;
}

/* A profile with common skills, one skill of its own (serial s) and, when
 * other is not NULL, a skill of a posting; its desired title names a
 * posting's title token. */
static Profile *
fresh_profile(struct rng *r, const char *id, uint64_t version, unsigned s,
    const char *other, unsigned token)
{
	Profile *c = simple_profile(id, "c0");
	char buf[64];

	c->version = version;
	c->remote = (Lunamatch__V1__RemotePolicy) (s % 4);
	free_msg(c->skills[0]);
	free(c->skills);
	c->n_skills = 4;
	c->skills = lmt_calloc(c->n_skills, sizeof(*c->skills));
	for (size_t i = 0; i < c->n_skills; i++) {
		Lunamatch__V1__CandidateSkill *k = lmt_calloc(1, sizeof(*k));
		lunamatch__v1__candidate_skill__init(k);
		if (i == 0)
			snprintf(buf, sizeof(buf), "c0");
		else if (i == 1)
			snprintf(buf, sizeof(buf), "s%u", rn(r, 10));
		else if (i == 2 && other != NULL)
			snprintf(buf, sizeof(buf), "%s", other);
		else
			snprintf(buf, sizeof(buf), "g%u", s);
		k->skill_id = lmt_strdup(buf);
		k->years = (float) rn(r, 10);
		c->skills[i] = k;
	}
	snprintf(buf, sizeof(buf), "Engineer t%ua", token);
	profile_goals(c, buf, NULL);
	return c;
}

/* Puts p into the index and the world (which owns p, and has room for cap
 * postings) as world_put_posting, but leaves the world's statistics for
 * the caller to bring up to date. */
static void
churn_put(lm_index *idx, struct world *w, JobPosting *p, size_t cap)
{
	size_t i = 0;

	while (i < w->np && strcmp(w->posts[i]->id, p->id) != 0)
		i++;
	assert_true(i < w->np || w->np < cap);
	if (i == w->np)
		w->np++;
	else {
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
	}
	w->posts[i] = p;
	assert_int_equal(lm_posting_prep_new(p, &w->pp[i]), LM_OK);
	assert_int_equal(lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0), LM_OK);
}

static void
churn_remove(lm_index *idx, struct world *w, const char *id)
{
	size_t i = 0;

	while (i < w->np && strcmp(w->posts[i]->id, id) != 0)
		i++;
	assert_true(i < w->np);
	assert_int_equal(lm_index_remove_posting(idx, id, 0), LM_OK);
	lm_posting_prep_free(w->pp[i]);
	free_msg(w->posts[i]);
	w->posts[i] = w->posts[--w->np];
	w->pp[i] = w->pp[w->np];
}

/*
 * Churn with a fixed live set: every round replaces each posting and
 * about half the profiles by records with skills, title tokens and
 * categories of their own, the postings half by a new version of the same
 * id and half by a removal and a new id, in other partitions each round.
 * The symbols freed are reused, so the same terms come back in partitions
 * they have left. The lists must give back what the records taken out
 * held: after many rounds they take at most twice the bytes they took
 * when as many such records were first listed. Queries stay the
 * exhaustive scan's throughout, also across the new idf snapshots that
 * the changing share of "c0" brings.
 */
static void
test_lists_shrink_under_churn(void **state)
{
	enum { LIVE = 120, PROFS = 16, ROUNDS = SANITIZED ? 36 : 60 };
	struct rng r = {0x5EEDC0DE1234ULL};
	lm_model m;
	lm_index *idx = NULL;
	struct world w;
	lm_index_counts counts;
	unsigned serial = 0, sers[LIVE], vers[LIVE], pvers[PROFS];
	char ids[LIVE][32], id[32], other[32];
	size_t first = 0, last = 0;

	(void) state;
	lm_model_defaults(&m);
	memset(&w, 0, sizeof(w));
	w.posts = lmt_calloc(LIVE, sizeof(*w.posts));
	w.pp = lmt_calloc(LIVE, sizeof(*w.pp));
	w.profs = lmt_calloc(PROFS, sizeof(*w.profs));
	w.cp = lmt_calloc(PROFS, sizeof(*w.cp));
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	for (unsigned round = 0; round <= ROUNDS; round++) {
		bool common = (round / 8) % 2 == 0;
		for (unsigned i = 0; i < LIVE; i++) {
			sers[i] = serial++;
			if (round == 0 || (i + round) % 2 == 0) {
				vers[i] = round == 0 ? 1 : vers[i] + 1;
				if (round == 0)
					snprintf(ids[i], sizeof(ids[i]), "j%u", i);
			} else {
				churn_remove(idx, &w, ids[i]);
				snprintf(ids[i], sizeof(ids[i]), "j%u.%u", i, sers[i]);
				vers[i] = 1;
			}
			churn_put(idx, &w,
			    fresh_posting(&r, ids[i], vers[i], sers[i], common), LIVE);
		}
		for (unsigned i = 0; i < PROFS; i++) {
			unsigned k = rn(&r, LIVE);
			if (round > 0 && chance(&r, 50))
				continue;
			snprintf(id, sizeof(id), "c%u", i);
			snprintf(other, sizeof(other), "f%u.2", sers[k]);
			pvers[i] = round == 0 ? 1 : pvers[i] + 1;
			world_put_profile(idx, &w,
			    fresh_profile(&r, id, pvers[i], serial++,
			        chance(&r, 70) ? other : NULL, sers[k]));
		}
		assert_int_equal(w.np, LIVE);
		assert_int_equal(w.nc, PROFS);
		if (round == 0)
			first = lm_index_list_bytes(idx);
		if (round % 12 == 0 || round == ROUNDS) {
			world_stats(&w);
			check_world(idx, &m, &w);
		}
	}
	/* The live lists only: a build under way and old lists not freed yet
	 * count in lm_index_list_bytes too. */
	for (int i = 0; i < 100000 && lm_index_advance(idx, NOW); i++)
		;
	assert_false(lm_index_advance(idx, NOW));
	last = lm_index_list_bytes(idx);
	lm_index_counts_get(idx, &counts);
	print_message(
	    "churn: lists %zu bytes first, %zu after %d rounds; %llu reshares\n", first,
	    last, ROUNDS, (unsigned long long) counts.reshares);
	assert_true(counts.reshares >= 2);
	assert_true(last <= 2 * first);
	lm_index_free(idx);
	world_free(&w);
}

/*
 * Tables grow past 131,072 doc ids through every doubling: postings put
 * one at a time (as the follower applies changes) and profiles, with
 * updates of stored ids between, are every one found afterwards, with its
 * slot and the lists those of the records listed. Then two threads put
 * profiles at once, growing the table again.
 */
enum { GROW_N = 131072 };

struct grow_writer {
	lm_index *idx;
	char prefix;
	unsigned n;
	int rc;
};

static void *
grow_writer_main(void *arg)
{
	struct grow_writer *gw = arg;
	struct rng r = {0x6A0u + (unsigned) gw->prefix};
	char id[32];

	for (unsigned i = 0; i < gw->n && gw->rc == LM_OK; i++) {
		snprintf(id, sizeof(id), "%c%u", gw->prefix, i);
		gw->rc = lm_index_put_profile(gw->idx, gen_profile(&r, id), 0);
	}
	return NULL;
}

/* Every id prefix<0 .. n) is found, each with its own id. */
static void
assert_found(lm_index *idx, bool postings, char prefix, unsigned n)
{
	char id[32];

	for (unsigned i = 0; i < n; i += 61) {
		snprintf(id, sizeof(id), "%c%u", prefix, i);
		if (postings) {
			JobPosting *p = NULL;
			assert_int_equal(lm_index_get_posting(idx, id, &p), LM_OK);
			assert_string_equal(p->id, id);
			protobuf_c_message_free_unpacked(&p->base, NULL);
		} else {
			Profile *c = NULL;
			assert_int_equal(lm_index_get_profile(idx, id, &c), LM_OK);
			assert_string_equal(c->id, id);
			protobuf_c_message_free_unpacked(&c->base, NULL);
		}
	}
}

static void
test_tables_grow(void **state)
{
	struct rng r = {0x6A0A51DEULL};
	struct grow_writer gw[2] = {{NULL, 'a', 1024, LM_OK}, {NULL, 'b', 1024, LM_OK}};
	pthread_t th[2];
	lm_model m;
	lm_index *idx = NULL;
	lm_index_counts c;
	Profile *p0 = NULL;
	char id[32];

	(void) state;
	lm_model_defaults(&m);
	skill_vocab = 25;
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	for (unsigned i = 0; i < GROW_N + 1024; i++) {
		snprintf(id, sizeof(id), "j%u", i);
		assert_int_equal(
		    lm_index_put_posting(idx, gen_posting(&r, id), 0), LM_OK);
	}
	assert_found(idx, true, 'j', GROW_N + 1024);
	assert_lists(idx);

	/* Profiles up to a full table, an update of one of them, then a new
	 * one that grows the table. */
	for (unsigned i = 0; i < GROW_N; i++) {
		snprintf(id, sizeof(id), "p%u", i);
		assert_int_equal(
		    lm_index_put_profile(idx, gen_profile(&r, id), 0), LM_OK);
	}
	Profile *u = gen_profile(&r, "p0");
	u->version = 100; /* above every generated version */
	assert_int_equal(lm_index_put_profile(idx, u, 0), LM_OK);
	assert_int_equal(lm_index_put_profile(idx, gen_profile(&r, "p-new"), 0), LM_OK);
	assert_found(idx, false, 'p', GROW_N);
	assert_int_equal(lm_index_get_profile(idx, "p0", &p0), LM_OK);
	assert_int_equal(p0->version, 100);
	protobuf_c_message_free_unpacked(&p0->base, NULL);
	assert_lists(idx);

	for (int t = 0; t < 2; t++) {
		gw[t].idx = idx;
		assert_int_equal(
		    pthread_create(&th[t], NULL, grow_writer_main, &gw[t]), 0);
	}
	for (int t = 0; t < 2; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(gw[t].rc, LM_OK);
		assert_found(idx, false, gw[t].prefix, gw[t].n);
	}
	lm_index_counts_get(idx, &c);
	assert_int_equal(c.postings, GROW_N + 1024);
	assert_int_equal(c.profiles, GROW_N + 1 + 2048);
	assert_lists(idx);
	lm_index_free(idx);
}

static void
test_errors(void **state)
{
	lm_model m;
	lm_index *idx = NULL;
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesRequest creq =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	Lunamatch__V1__MatchCandidatesResponse *cresp = NULL;
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	char err[128] = "";
	char buf[64];
	lm_top_list l;
	JobPosting *noid;
	ProtobufCMessage *cnoid = NULL;

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(NULL, &idx), LM_EINVAL);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	/* The window: 2^20 doc ids by default, clamped to 4 .. 31. */
	assert_int_equal(lm_index_window(idx), 20);
	lm_index_set_window(idx, 2);
	assert_int_equal(lm_index_window(idx), 4);
	lm_index_set_window(idx, 40);
	assert_int_equal(lm_index_window(idx), 31);
	lm_index_set_window(idx, 0);
	assert_int_equal(lm_index_window(idx), 20);
	for (int i = 0; i < 15; i++) {
		snprintf(buf, sizeof(buf), "j%02d", i);
		assert_int_equal(
		    lm_index_put_posting(idx, simple_posting(buf, 1, "go"), 0), LM_OK);
	}
	assert_int_equal(lm_index_put_profile(idx, simple_profile("c", "go"), 0), LM_OK);
	noid = simple_posting("", 1, "go");
	assert_int_equal(
	    lm_index_put_posting(idx, noid, 0), LM_EINVAL); /* freed by the index */
	/* The compact puts: the same checks, and the index frees what it
	 * refuses (with free(): a leak or a mismatched free shows under ASan). */
	assert_int_equal(lm_index_put_posting_compact(idx, NULL, 0), LM_EINVAL);
	assert_int_equal(lm_index_put_profile_compact(idx, NULL, 0), LM_EINVAL);
	noid = simple_posting("", 1, "go");
	assert_int_equal(lm_pb_compact(&noid->base, &cnoid, NULL), LM_OK);
	free_msg(noid);
	assert_int_equal(
	    lm_index_put_posting_compact(idx, (JobPosting *) cnoid, 0), LM_EINVAL);
	noid = simple_posting("j99", 1, "go");
	assert_int_equal(lm_pb_compact(&noid->base, &cnoid, NULL), LM_OK);
	free_msg(noid);
	assert_int_equal(
	    lm_index_put_posting_compact(NULL, (JobPosting *) cnoid, 0), LM_EINVAL);

	assert_int_equal(
	    lm_index_match_jobs(idx, &req, NOW, &resp, err, sizeof(err)), LM_EINVAL);
	assert_non_null(strstr(err, "candidate_id"));
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = "c";
	req.top_k = LM_INDEX_TOP_K_MAX + 1;
	assert_int_equal(
	    lm_index_match_jobs(idx, &req, NOW, &resp, err, sizeof(err)), LM_EINVAL);
	assert_non_null(strstr(err, "top_k"));
	req.top_k = 0; /* default 10 */
	assert_int_equal(
	    lm_index_match_jobs(idx, &req, NOW, &resp, err, sizeof(err)), LM_OK);
	assert_int_equal(resp->n_matches, LM_INDEX_TOP_K_DEFAULT);
	assert_int_equal(resp->considered, 15);
	free_msg(resp);
	req.top_k = LM_INDEX_TOP_K_MAX;
	assert_int_equal(
	    lm_index_match_jobs(idx, &req, NOW, &resp, err, sizeof(err)), LM_OK);
	assert_int_equal(resp->n_matches, 15);
	free_msg(resp);
	jf.n_countries = LM_FILTER_LIST_MAX + 1;
	req.filters = &jf;
	assert_int_equal(
	    lm_index_match_jobs(idx, &req, NOW, &resp, err, sizeof(err)), LM_EINVAL);
	assert_non_null(strstr(err, "countries"));
	assert_null(resp);

	assert_int_equal(
	    lm_index_match_candidates(idx, &creq, NOW, &cresp, err, sizeof(err)),
	    LM_EINVAL);
	creq.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	creq.job_id = "missing";
	assert_int_equal(
	    lm_index_match_candidates(idx, &creq, NOW, &cresp, err, sizeof(err)),
	    LM_ENOENT);
	assert_null(cresp);

	assert_int_equal(
	    lm_index_top_for_posting(idx, "missing", 5, 0, NOW, &l), LM_ENOENT);
	assert_int_equal(l.n, 0);
	assert_int_equal(
	    lm_index_top_for_profile(idx, "c", LM_INDEX_EVENT_TOP_MAX + 1, 0, NOW, &l),
	    LM_EINVAL);
	assert_int_equal(lm_index_top_for_profile(idx, "c", 0, 0, NOW, &l), LM_OK);
	assert_int_equal(l.n, 0);
	lm_top_list_clear(&l);
	assert_int_equal(lm_index_top_for_profile(idx, "c", 3, 0, NOW, &l), LM_OK);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0].id, "j00");
	lm_top_list_clear(&l);
	lm_top_list_clear(NULL);
	lm_index_free(idx);
}

/* ---- concurrency ------------------------------------------------------------------ */

#define RACE_SECONDS 1.5
#define RACE_READERS 4

struct race {
	lm_index *idx;
	atomic_int stop;
	atomic_int failures;
	atomic_long queries;
};

static double
mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool
ordered(Lunamatch__V1__Match **m, size_t n, bool jobs)
{
	for (size_t i = 0; i < n; i++) {
		if (m[i]->rank != i + 1)
			return false;
		if (i > 0) {
			const char *a = jobs ? m[i - 1]->job_id : m[i - 1]->candidate_id;
			const char *b = jobs ? m[i]->job_id : m[i]->candidate_id;
			if (m[i - 1]->score < m[i]->score ||
			    (m[i - 1]->score == m[i]->score && strcmp(a, b) >= 0))
				return false;
		}
	}
	return true;
}

static void *
reader(void *arg)
{
	struct race *rc = arg;
	struct rng r = {(uint64_t) (uintptr_t) &r | 1};
	char id[32];

	for (long it = 0; it < 100000 && !atomic_load(&rc->stop); it++) {
		int rcode;
		snprintf(id, sizeof(id), "c%02u", rn(&r, 30));
		if (chance(&r, 50)) {
			Lunamatch__V1__MatchJobsRequest req =
			    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
			Lunamatch__V1__MatchJobsResponse *resp = NULL;
			req.subject_case =
			    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
			req.candidate_id = id;
			req.top_k = 1 + rn(&r, 50);
			req.explain =
			    chance(&r, 20)
			        ? LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL
			        : LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
			rcode = lm_index_match_jobs(rc->idx, &req, NOW, &resp, NULL, 0);
			if (rcode == LM_OK &&
			    !ordered(resp->matches, resp->n_matches, true))
				atomic_fetch_add(&rc->failures, 1);
			free_msg(resp);
		} else if (chance(&r, 60)) {
			Lunamatch__V1__MatchCandidatesRequest req =
			    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
			Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
			snprintf(id, sizeof(id), "j%03u", rn(&r, 150));
			req.subject_case =
			    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
			req.job_id = id;
			req.top_k = 1 + rn(&r, 20);
			rcode =
			    lm_index_match_candidates(rc->idx, &req, NOW, &resp, NULL, 0);
			if (rcode == LM_OK &&
			    !ordered(resp->matches, resp->n_matches, false))
				atomic_fetch_add(&rc->failures, 1);
			free_msg(resp);
		} else {
			Lunamatch__V1__ExplainMatchResponse *ex = NULL;
			JobPosting *p = NULL;
			lm_top_list l = {0};
			char jid[32];
			snprintf(jid, sizeof(jid), "j%03u", rn(&r, 150));
			rcode = lm_index_explain(rc->idx, id, jid, NOW, &ex, NULL);
			free_msg(ex);
			if (rcode == LM_OK || rcode == LM_ENOENT)
				rcode = lm_index_get_posting(rc->idx, jid, &p);
			free_msg(p);
			if (rcode == LM_OK || rcode == LM_ENOENT)
				rcode = lm_index_top_for_posting(
				    rc->idx, jid, 10, 0.3, NOW, &l);
			lm_top_list_clear(&l);
		}
		if (rcode != LM_OK && rcode != LM_ENOENT)
			atomic_fetch_add(&rc->failures, 1);
		atomic_fetch_add(&rc->queries, 1);
	}
	return NULL;
}

static void
test_concurrent(void **state)
{
	lm_model m;
	struct race rc;
	pthread_t th[RACE_READERS];
	struct rng r = {12345};
	char id[32];
	double end;
	long writes = 0;
	uint64_t version = 100; /* above every generated version */

	(void) state;
	lm_model_defaults(&m);
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(lm_index_new(&m, &rc.idx), LM_OK);
	for (unsigned i = 0; i < 150; i++) {
		snprintf(id, sizeof(id), "j%03u", i);
		assert_int_equal(
		    lm_index_put_posting(rc.idx, gen_posting(&r, id), 0), LM_OK);
	}
	for (unsigned i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "c%02u", i);
		assert_int_equal(
		    lm_index_put_profile(rc.idx, gen_profile(&r, id), 0), LM_OK);
	}
	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &rc), 0);

	/* The writer: new versions, closings, removals and re-adds. */
	end = mono() + RACE_SECONDS;
	while (mono() < end && writes < 200000) {
		unsigned what = rn(&r, 10);
		int rcode;
		version++;
		if (what < 5) {
			JobPosting *p;
			snprintf(id, sizeof(id), "j%03u", rn(&r, 150));
			p = gen_posting(&r, id);
			p->version = version;
			if (what == 0)
				p->status =
				    LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
			rcode = lm_index_put_posting(rc.idx, p, 0);
		} else if (what < 7) {
			snprintf(id, sizeof(id), "j%03u", rn(&r, 150));
			rcode = lm_index_remove_posting(rc.idx, id, 0);
		} else if (what < 9) {
			Profile *c;
			snprintf(id, sizeof(id), "c%02u", rn(&r, 30));
			c = gen_profile(&r, id);
			c->version = version;
			rcode = lm_index_put_profile(rc.idx, c, 0);
		} else {
			snprintf(id, sizeof(id), "c%02u", rn(&r, 30));
			rcode = lm_index_remove_profile(rc.idx, id, 0);
		}
		assert_true(rcode == LM_OK || rcode == LM_ENOENT);
		writes++;
	}
	atomic_store(&rc.stop, 1);
	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(atomic_load(&rc.failures), 0);
	assert_true(atomic_load(&rc.queries) > 0);
	assert_true(writes > 0);
	lm_index_free(rc.idx);
}

/* ---- index_seq: published with the change ------------------------------------ */

/* c1, who matches every simple_posting with skill "go", and n such
 * postings named <prefix><i>, into idx. */
static void
fill_simple(lm_index *idx, char prefix, unsigned n)
{
	Profile *pr = simple_profile("c1", "go");
	char id[16];

	profile_goals(pr, "Engineer", NULL);
	assert_int_equal(lm_index_put_profile(idx, pr, 0), LM_OK);
	for (unsigned i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%c%02u", prefix, i);
		assert_int_equal(
		    lm_index_put_posting(idx, simple_posting(id, 1, "go"), 0), LM_OK);
	}
}

/* Which changes set the index_seq; lm_index_replace publishes a whole new
 * content with its seq; its errors. */
static void
test_seq_and_replace(void **state)
{
	lm_model m, other;
	lm_index *idx = NULL, *next = NULL;
	lm_index_counts counts;
	JobPosting *p = NULL;
	char buf[256];

	(void) state;
	lm_model_defaults(&m);
	lm_model_defaults(&other);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	assert_int_equal(lm_index_put_profile(idx, simple_profile("c1", "go"), 1), LM_OK);
	assert_int_equal(lm_index_seq(idx), 1);
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j1", 2, "go"), 2), LM_OK);
	assert_int_equal(lm_index_seq(idx), 2);
	/* Stale: the change is reflected by the newer version; the seq moves. */
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j1", 1, "go"), 3), LM_ESTALE);
	assert_int_equal(lm_index_seq(idx), 3);
	/* 0: a change from no change log leaves the seq. */
	assert_int_equal(
	    lm_index_put_posting(idx, simple_posting("j2", 1, "go"), 0), LM_OK);
	assert_int_equal(lm_index_seq(idx), 3);
	assert_int_equal(lm_index_remove_posting(idx, "nope", 4), LM_ENOENT);
	assert_int_equal(lm_index_seq(idx), 4);
	assert_int_equal(lm_index_remove_posting(idx, "j2", 5), LM_OK);
	assert_int_equal(lm_index_remove_profile(idx, "c1", 6), LM_OK);
	assert_int_equal(lm_index_seq(idx), 6);
	/* A failed put changes neither data nor seq. */
	p = simple_posting("", 1, "go");
	assert_int_equal(lm_index_put_posting(idx, p, 7), LM_EINVAL);
	assert_int_equal(lm_index_seq(idx), 6);
	lm_index_set_seq(idx, 6); /* no-op */
	lm_index_set_seq(idx, 8);
	assert_int_equal(lm_index_seq(idx), 8);

	/* Replace: the new content and its seq at once; the later clock stays
	 * (the clock was at NOW: a posting expiring then is not open). */
	lm_index_advance(idx, NOW);
	assert_int_equal(lm_index_new(&m, &next), LM_OK);
	fill_simple(next, 'b', 3);
	p = simple_posting("b-expiring", 1, "go");
	p->expires_at = NOW;
	assert_int_equal(lm_index_put_posting(next, p, 0), LM_OK);
	assert_int_equal(lm_index_replace(idx, next, 40), LM_OK);
	assert_int_equal(lm_index_seq(idx), 40);
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "b00,b01,b02");
	p = NULL;
	assert_int_equal(lm_index_get_posting(idx, "j1", &p), LM_ENOENT);
	lm_index_counts_get(idx, &counts);
	assert_int_equal(counts.postings, 4);
	assert_int_equal(counts.open_postings, 3);
	assert_int_equal(counts.profiles, 1);
	assert_ptr_equal(lm_index_model(idx), &m);

	/* Errors: from is freed all the same (the sanitizers see no leak). */
	assert_int_equal(lm_index_new(&other, &next), LM_OK);
	fill_simple(next, 'x', 2);
	assert_int_equal(lm_index_replace(idx, next, 41), LM_EINVAL);
	assert_int_equal(lm_index_replace(idx, idx, 41), LM_EINVAL);
	assert_int_equal(lm_index_replace(NULL, NULL, 41), LM_EINVAL);
	assert_int_equal(lm_index_seq(idx), 40);
	assert_string_equal(jobs_for(idx, "c1", buf, sizeof(buf)), "b00,b01,b02");
	lm_index_free(idx);
}

#define SWAP_A      40 /* postings of content A (even seqs) */
#define SWAP_B      25 /* postings of content B (odd seqs) */
#define SWAP_ROUNDS 5000

struct swap_race {
	lm_index *idx;
	atomic_int stop;
	atomic_long answers, failures;
};

/* Asks for c1's matches until stopped: an answer at an even index_seq must
 * hold exactly content A, at an odd one exactly content B. */
static void *
swap_reader(void *arg)
{
	struct swap_race *sr = arg;

	for (long n = 0; n < 1000000 && !atomic_load(&sr->stop); n++) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *resp = NULL;
		char want;
		size_t count = 0;

		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = "c1";
		req.top_k = 100;
		req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
		if (lm_index_match_jobs(sr->idx, &req, NOW, &resp, NULL, 0) != LM_OK) {
			atomic_fetch_add(&sr->failures, 1);
			continue;
		}
		want = resp->index_seq % 2 == 0 ? 'a' : 'b';
		for (size_t i = 0; i < resp->n_matches; i++)
			count += resp->matches[i]->job_id[0] == want;
		if (count != resp->n_matches || count != (want == 'a' ? SWAP_A : SWAP_B))
			atomic_fetch_add(&sr->failures, 1);
		free_msg(resp);
		atomic_fetch_add(&sr->answers, 1);
	}
	return NULL;
}

/* Snapshot loads published while queries run: no answer mixes two contents
 * or names the seq of the other. */
static void
test_replace_concurrent(void **state)
{
	lm_model m;
	struct swap_race sr;
	pthread_t th[RACE_READERS];
	double end;
	uint64_t seq = 2;

	(void) state;
	lm_model_defaults(&m);
	memset(&sr, 0, sizeof(sr));
	assert_int_equal(lm_index_new(&m, &sr.idx), LM_OK);
	fill_simple(sr.idx, 'a', SWAP_A);
	lm_index_set_seq(sr.idx, seq);
	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, swap_reader, &sr), 0);
	end = mono() + RACE_SECONDS;
	while (mono() < end && seq < SWAP_ROUNDS) {
		lm_index *next = NULL;
		seq++;
		assert_int_equal(lm_index_new(&m, &next), LM_OK);
		if (seq % 2 == 0)
			fill_simple(next, 'a', SWAP_A);
		else
			fill_simple(next, 'b', SWAP_B);
		assert_int_equal(lm_index_replace(sr.idx, next, seq), LM_OK);
	}
	atomic_store(&sr.stop, 1);
	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	print_message("%llu replaced, %ld answers, %ld failures\n",
	    (unsigned long long) seq, atomic_load(&sr.answers),
	    atomic_load(&sr.failures));
	assert_int_equal(atomic_load(&sr.failures), 0);
	assert_true(atomic_load(&sr.answers) > 0);
	assert_true(seq > 10);
	lm_index_free(sr.idx);
}

/* Whether the contributions of m, added in their order, are its score. */
static bool
contributions_sum(const Lunamatch__V1__Match *m)
{
	double sum = 0;

	for (size_t k = 0; k < m->explanation->n_features; k++) {
		if (m->explanation->features[k]->contribution < 0)
			return false;
		sum += m->explanation->features[k]->contribution;
	}
	return sum == m->score;
}

/*
 * Added in their order, an explanation's contributions are its score
 * exactly and none is negative (match.proto), for random pairs under the
 * default model and random ones, half of the postings posted near 1970
 * (a freshness of 1e-200 or less, accepted by ingest). Before, the last
 * share alone took the rest: about 1 pair in 10,000 under the default
 * model, 1 in 700 under random ones and 1 in 10 with the old postings
 * missed the score by an ulp or two (rounding stepped over it, or the rest
 * was negative).
 */
static void
test_contributions_sum_to_score(void **state)
{
	size_t eligible = 0;
	(void) state;

	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct rng r = {seed * 0x9E3779B97F4A7C15ULL};
		lm_model m;

		if (seed % 4 == 0)
			lm_model_defaults(&m);
		else
			random_model(&r, &m);
		for (int i = 0; i < 500; i++) {
			JobPosting *p = gen_posting(&r, "j1");
			Profile *c = gen_profile(&r, "c1");
			lm_score_env env = {&m, NULL, NOW, NULL};
			Lunamatch__V1__Match *mt = NULL;
			double score;
			bool ok;

			p->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
			p->expires_at = 0;
			if (chance(&r, 50))
				p->posted_at = 1 + (int64_t) rn(&r, 1000) * DAY;
			assert_int_equal(
			    lm_score_records(&env, c, p, &score, &ok), LM_OK);
			assert_int_equal(
			    lm_explain_records(&env, c, p,
			        LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, &mt),
			    LM_OK);
			assert_true(mt->score == score);
			if (!contributions_sum(mt))
				fail_msg(
				    "seed %llu pair %d: contributions do not add up to "
				    "%.17g",
				    (unsigned long long) seed, i, score);
			eligible += ok;
			protobuf_c_message_free_unpacked(&mt->base, NULL);
			free_msg(p);
			free_msg(c);
		}
	}
	assert_true(eligible > 10000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_top_k),
	    cmocka_unit_test(test_exact_top_k_swept),
	    cmocka_unit_test(test_exact_top_k_at_scale),
	    cmocka_unit_test(test_exact_top_k_under_churn),
	    cmocka_unit_test(test_reshare_in_steps),
	    cmocka_unit_test(test_reshare_step_walk_bounded),
	    cmocka_unit_test(test_reshare_out_of_memory),
	    cmocka_unit_test(test_reshare_list_bytes),
	    cmocka_unit_test(test_random_scores_pinned),
	    cmocka_unit_test(test_replay_after_expiry),
	    cmocka_unit_test(test_updates),
	    cmocka_unit_test(test_no_overlap),
	    cmocka_unit_test(test_country_partitions),
	    cmocka_unit_test(test_lists_shrink_under_churn),
	    cmocka_unit_test(test_tables_grow),
	    cmocka_unit_test(test_expiry_heap),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_replay_loaded),
	    cmocka_unit_test(test_seq_and_replace),
	    cmocka_unit_test(test_replace_concurrent),
	    cmocka_unit_test(test_contributions_sum_to_score),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
