/*
 * test_churn.c - the match index under random churn of both kinds of
 * record, against the exhaustive reference scan (indexref.h): a property
 * test with fixed seeds.
 *
 * Each seed builds a data set and then changes it thousands of times:
 * postings and profiles replaced by new versions (fresh content, which
 * often moves the record to another partition, its veto key; or, for a
 * posting, an edit that keeps its terms), at an equal or a higher version,
 * or offered at a lower one (LM_ESTALE: nothing changes); removed; created
 * anew, half of them under an id removed before (with any version: a
 * removed record leaves nothing behind); the index clock moved forward
 * while the skill vocabulary swings, so that idf drifts and the shares are
 * computed again. Every few changes the answers of MatchJobs,
 * MatchCandidates, the top lists and a pair's score are compared with the
 * reference over the data as it is then, at the moving clock or at a fixed
 * now, and lm_index_check_lists checks the lists, slots and expiry heap.
 *
 * LMT_CHURN_SEEDS (default 8), LMT_CHURN_FIRST_SEED (default 1) and
 * LMT_CHURN_OPS (changes per seed, default 4000) make longer runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "indexref.h"
#include "lmtest.h"
#include "lunamatch/error.h"

#define START_POSTINGS 300
#define START_PROFILES 60
#define CHECK_EVERY    13 /* changes between two comparisons */

/* What one run covered, so that it cannot pass vacuously. */
static struct {
	size_t replaced, stale, removed, recreated, created, clock_moves, checks;
	uint64_t reshares;
} seen;

/* The ids removed so far, to be created again. */
struct graves {
	char **ids;
	size_t n, cap;
};

static void
grave_add(struct graves *g, const char *id)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		g->ids = realloc(g->ids, g->cap * sizeof(*g->ids));
		assert_non_null(g->ids);
	}
	g->ids[g->n++] = lmt_strdup(id);
}

/* Takes a random removed id (the caller frees it). */
static char *
grave_take(struct rng *r, struct graves *g)
{
	size_t i = rn(r, (uint32_t) g->n);
	char *id = g->ids[i];

	g->ids[i] = g->ids[--g->n];
	return id;
}

static void
graves_free(struct graves *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->ids[i]);
	free(g->ids);
	memset(g, 0, sizeof(*g));
}

/* The version of a replacement of a record at version v: lower (10%, when
 * there is one), equal (20%) or higher. */
static uint64_t
next_version(struct rng *r, uint64_t v)
{
	unsigned k = rn(r, 10);

	if (k == 0 && v > 1)
		return v - 1 - rn(r, (uint32_t) (v - 1));
	return k < 3 ? v : v + 1 + rn(r, 3);
}

/* One change of the postings, op the serial of the change: a new version
 * (40%: every third an edit of its date posted, its terms kept; the others
 * fresh content), a removal (25%) or a new posting, under an id removed
 * before half of the time. w->posts and w->pp must have room for one more. */
static void
churn_posting(
    struct rng *r, lm_index *idx, struct world *w, struct graves *g, unsigned op)
{
	unsigned k = rn(r, 100);
	size_t i = w->np > 0 ? rn(r, (uint32_t) w->np) : 0;
	JobPosting *p;

	if (k < 40 && w->np > 0) {
		p = op % 3 == 0 ? dup_msg(&w->posts[i]->base, NULL)
		                : gen_posting(r, w->posts[i]->id);
		if (op % 3 == 0)
			p->posted_at = NOW - (int64_t) rn(r, 60 * DAY);
		p->version = next_version(r, w->posts[i]->version);
		if (p->version < w->posts[i]->version) {
			assert_int_equal(
			    lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0),
			    LM_ESTALE);
			free_msg(p);
			seen.stale++;
			return;
		}
		assert_int_equal(
		    lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0), LM_OK);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->posts[i] = p;
		assert_int_equal(lm_posting_prep_new(p, &w->pp[i]), LM_OK);
		seen.replaced++;
	} else if (k < 65 && w->np > 1) {
		assert_int_equal(lm_index_remove_posting(idx, w->posts[i]->id, 0), LM_OK);
		grave_add(g, w->posts[i]->id);
		lm_posting_prep_free(w->pp[i]);
		free_msg(w->posts[i]);
		w->np--;
		w->posts[i] = w->posts[w->np];
		w->pp[i] = w->pp[w->np];
		seen.removed++;
	} else {
		if (g->n > 0 && chance(r, 50)) {
			char *id = grave_take(r, g);
			p = gen_posting(r, id);
			free(id);
			seen.recreated++;
		} else {
			char id[32];
			snprintf(id, sizeof(id), "n%05u.%u", rn(r, 100000), op);
			p = gen_posting(r, id);
			seen.created++;
		}
		assert_int_equal(
		    lm_index_put_posting(idx, dup_msg(&p->base, NULL), 0), LM_OK);
		w->posts[w->np] = p;
		assert_int_equal(lm_posting_prep_new(p, &w->pp[w->np]), LM_OK);
		w->np++;
	}
}

/* The same for the profiles: a new version (45%, fresh content), a
 * removal (25%) or a new profile. w->profs and w->cp must have room for
 * one more. */
static void
churn_profile(
    struct rng *r, lm_index *idx, struct world *w, struct graves *g, unsigned op)
{
	unsigned k = rn(r, 100);
	size_t i = w->nc > 0 ? rn(r, (uint32_t) w->nc) : 0;
	Profile *c;

	if (k < 45 && w->nc > 0) {
		c = gen_profile(r, w->profs[i]->id);
		c->version = next_version(r, w->profs[i]->version);
		if (c->version < w->profs[i]->version) {
			assert_int_equal(
			    lm_index_put_profile(idx, dup_msg(&c->base, NULL), 0),
			    LM_ESTALE);
			free_msg(c);
			seen.stale++;
			return;
		}
		assert_int_equal(
		    lm_index_put_profile(idx, dup_msg(&c->base, NULL), 0), LM_OK);
		lm_profile_prep_free(w->cp[i]);
		free_msg(w->profs[i]);
		w->profs[i] = c;
		assert_int_equal(lm_profile_prep_new(c, &w->cp[i]), LM_OK);
		seen.replaced++;
	} else if (k < 70 && w->nc > 1) {
		assert_int_equal(lm_index_remove_profile(idx, w->profs[i]->id, 0), LM_OK);
		grave_add(g, w->profs[i]->id);
		lm_profile_prep_free(w->cp[i]);
		free_msg(w->profs[i]);
		w->nc--;
		w->profs[i] = w->profs[w->nc];
		w->cp[i] = w->cp[w->nc];
		seen.removed++;
	} else {
		if (g->n > 0 && chance(r, 50)) {
			char *id = grave_take(r, g);
			c = gen_profile(r, id);
			free(id);
			seen.recreated++;
		} else {
			char id[32];
			snprintf(id, sizeof(id), "m%05u.%u", rn(r, 100000), op);
			c = gen_profile(r, id);
			seen.created++;
		}
		assert_int_equal(
		    lm_index_put_profile(idx, dup_msg(&c->base, NULL), 0), LM_OK);
		w->profs[w->nc] = c;
		assert_int_equal(lm_profile_prep_new(c, &w->cp[w->nc]), LM_OK);
		w->nc++;
	}
}

/* The index's counts are the world's: every record, and the postings open
 * at the index clock (matchable, not expired by then). */
static void
check_counts(lm_index *idx, const struct world *w, int64_t clock)
{
	lm_index_counts counts;
	size_t open = 0;

	for (size_t i = 0; i < w->np; i++)
		open += lm_skill_stats_counts(w->posts[i]) &&
		        (w->posts[i]->expires_at == 0 || w->posts[i]->expires_at > clock);
	lm_index_counts_get(idx, &counts);
	assert_int_equal(counts.postings, w->np);
	assert_int_equal(counts.profiles, w->nc);
	assert_int_equal(counts.open_postings, open);
}

static void
run_seed(uint64_t seed, unsigned ops)
{
	struct rng r = {seed * 0x2545F4914F6CDD1DULL};
	struct graves gp = {0}, gc = {0};
	lm_model m;
	lm_index *idx = NULL;
	struct world w;
	lm_index_counts counts;
	/* Each change adds one record at most. */
	size_t cap_p = START_POSTINGS + ops, cap_c = START_PROFILES + ops;
	int64_t clock = NOW - 20 * DAY;
	char err[256] = "";

	random_model(&r, &m);
	skill_vocab = 25;
	load_build = seed % 2 == 0; /* half the data sets built as a load is */
	build_n(&r, &m, &idx, &w, START_POSTINGS, START_PROFILES);
	load_build = false;
	lm_index_set_window(idx, 4 + (uint32_t) (seed % 8));
	lm_index_advance(idx, clock);
	world_reserve(&w, cap_p);
	w.profs = realloc(w.profs, cap_c * sizeof(*w.profs));
	w.cp = realloc(w.cp, cap_c * sizeof(*w.cp));
	assert_non_null(w.profs);
	assert_non_null(w.cp);
	for (unsigned op = 0; op < ops; op++) {
		/* A vocabulary of 6 skill ids, then of 150: idf drifts. */
		if (op % 400 == 0)
			skill_vocab = (op / 400) % 2 ? 150 : 6;
		if (chance(&r, 25))
			churn_profile(&r, idx, &w, &gc, op);
		else
			churn_posting(&r, idx, &w, &gp, op);
		if (chance(&r, 3)) {
			clock += (int64_t) rn(&r, 3 * DAY);
			lm_index_advance(idx, clock);
			seen.clock_moves++;
		}
		if (op % CHECK_EVERY == CHECK_EVERY - 1) {
			query_now = chance(&r, 50) ? clock : NOW;
			world_stats(&w);
			query_jobs(&r, idx, &m, &w);
			query_candidates(&r, idx, &m, &w);
			query_top(&r, idx, &m, &w);
			query_pair(&r, idx, &m, &w);
			if (lm_index_check_lists(idx, err, sizeof(err)) != LM_OK)
				fail_msg("seed %llu, change %u: %s",
				    (unsigned long long) seed, op, err);
			check_counts(idx, &w, clock);
			seen.checks++;
		}
	}
	query_now = NOW;
	skill_vocab = 25;
	check_counts(idx, &w, clock);
	lm_index_counts_get(idx, &counts);
	seen.reshares += counts.reshares;
	lm_index_free(idx);
	world_free(&w);
	graves_free(&gp);
	graves_free(&gc);
}

static unsigned
env_unsigned(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? (unsigned) strtoul(v, NULL, 10) : dflt;
}

/* The property: after any sequence of changes, the index answers exactly as
 * the exhaustive scan over the records it should hold, and its lists are
 * those of these records. */
static void
test_churn_vs_reference(void **state)
{
	unsigned seeds = env_unsigned("LMT_CHURN_SEEDS", 8);
	unsigned first = env_unsigned("LMT_CHURN_FIRST_SEED", 1);
	unsigned ops = env_unsigned("LMT_CHURN_OPS", 4000);
	size_t matches0 = compared_matches;
	(void) state;

	for (uint64_t seed = first; seed < (uint64_t) first + seeds; seed++)
		run_seed(seed, ops);
	print_message("churn: %u seeds of %u changes: %zu replaced, %zu stale, %zu "
	              "removed, %zu created again, %zu new, %zu clock moves, %zu "
	              "checks, %zu matches compared (%zu ties), %llu reshares\n",
	    seeds, ops, seen.replaced, seen.stale, seen.removed, seen.recreated,
	    seen.created, seen.clock_moves, seen.checks, compared_matches - matches0,
	    compared_ties, (unsigned long long) seen.reshares);
	if (seeds == 0 || ops < 1000)
		return; /* a short run asked for: too short for the bounds below */
	assert_true(compared_matches - matches0 > 1000 * (size_t) seeds);
	assert_true(seen.stale > 0 && seen.recreated > 0 && seen.clock_moves > 0);
	assert_true(seen.reshares > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_churn_vs_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
