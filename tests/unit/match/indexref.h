/*
 * indexref.h - what the index's exactness tests share (test_index.c,
 * test_churn.c): random postings and profiles from a seeded generator, the
 * data set a test keeps beside its index (the world), and the exhaustive
 * reference scan every answer of the index is compared with, through
 * lm_score_pair over every record of the world.
 *
 * Test code only, compiled into each test program that uses it. The
 * generator's settings below are globals the tests set and put back; the
 * generator's output for a seed is pinned (test_random_scores_pinned).
 */
#ifndef LUNAMATCH_TESTS_INDEXREF_H
#define LUNAMATCH_TESTS_INDEXREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "lunamatch/pb.h"
#include "score.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;

#define NOW 1750000000LL /* the generator's dates are around it */
#define DAY 86400LL

/* ---- random records ------------------------------------------------------- */

/* A xorshift64* generator: a seed other than 0 in s. */
struct rng {
	uint64_t s;
};

/* A draw in 0..n-1 (0 when n is 0). */
uint32_t rn(struct rng *r, uint32_t n);
/* True with pct % chance. */
bool chance(struct rng *r, unsigned pct);

/* The skill weights records are drawn from. */
extern const float weights[5];

/* Distinct common skill ids of generated records (the scale test raises
 * it to a job site's vocabulary). Default 25. */
extern uint32_t skill_vocab;
/* What the swept property test (test_exact_top_k_swept) varies; the
 * defaults are the generator the other tests and the pinned digest use. */
extern uint32_t skills_max; /* most skills of a record; 0: 8 and 12 */
extern unsigned dup_pct;    /* records that duplicate an earlier one, %; 10 */
extern int64_t query_now;   /* the `now` of the queries; NOW */
extern bool edge_tops;      /* top_k and min_score at the edges */
extern bool one_partition;  /* every record in one partition */
extern bool load_build;     /* build_n puts as a loader does */
extern uint32_t event_n;    /* not 0: the n of every event list at the edges */

/* A random posting or profile of id, version 1 to 5. The caller owns it
 * (free_msg). */
JobPosting *gen_posting(struct rng *r, const char *id);
Profile *gen_profile(struct rng *r, const char *id);

/* A deep copy through the wire form, optionally under another id. */
void *dup_msg(const ProtobufCMessage *m, const char *new_id);
/* Frees a record of gen_posting, gen_profile or dup_msg; NULL is a no-op. */
void free_msg(void *m);

/* ---- the reference: an exhaustive scan ------------------------------------- */

struct ref {
	double score;
	const char *id; /* borrowed from the world */
	uint64_t version;
};

/* One data set as the test keeps it: its own copies of every stored record,
 * prepared, and its own IDF statistics over the live postings (world_stats,
 * computed again after the world changed and before it is compared). */
struct world {
	JobPosting **posts;
	lm_posting_prep **pp;
	size_t np;
	Profile **profs;
	lm_profile_prep **cp;
	size_t nc;
	lm_skill_stats *stats;
};

void world_stats(struct world *w);
void world_free(struct world *w);

/* Eligible pairs of one subject (cp: a profile against every posting; else
 * pp against every profile) at now under filters f (may be NULL), best
 * first (score descending, then id). n_out: their number; vetoed: the
 * number of vetoed ones. The caller frees the array. */
struct ref *reference(const struct world *w, const lm_model *m, int64_t now,
    const lm_filters *f, const lm_profile_prep *cp, const lm_posting_prep *pp,
    size_t *n_out, size_t *vetoed);

/* What the property tests covered, so that they cannot pass vacuously. */
extern size_t compared_matches, compared_ties, explained_no_overlap, compared_eligible;

/* Compares a response's matches with the first k of the reference. */
void compare(Lunamatch__V1__Match **got, size_t n_got, const struct ref *want,
    size_t n_want, uint32_t k, bool jobs);
/* `vetoed` is exact when a query returned fewer matches than asked (then
 * nothing was pruned); otherwise it counts the vetoed records the query
 * found, never more than there are. */
void check_vetoed(uint64_t got, size_t want, size_t n_matches, uint32_t top_k);

/* Filter storage for one query. */
struct jf_store {
	Lunamatch__V1__JobFilters f;
	char *countries[2], *cats[1], *ex[5];
	Lunamatch__V1__EmploymentType types[2];
};

struct cf_store {
	Lunamatch__V1__CandidateFilters f;
	char *countries[2], *ex[5];
	Lunamatch__V1__EmploymentType types[2];
};

/* Random filters in s (NULL: none), excluded ids from w. */
Lunamatch__V1__JobFilters *gen_job_filters(
    struct rng *r, struct jf_store *s, const struct world *w);
Lunamatch__V1__CandidateFilters *gen_cand_filters(
    struct rng *r, struct cf_store *s, const struct world *w);

/* Builds a data set of np postings and nc profiles (before updates and
 * removals) into a new index *idx and the world w. */
void build_n(struct rng *r, const lm_model *m, lm_index **idx, struct world *w, size_t np,
    size_t nc);
/* The same, of random size. */
void build(struct rng *r, const lm_model *m, lm_index **idx, struct world *w);
/* Makes room in w for cap postings in all, for those its caller adds. */
void world_reserve(struct world *w, size_t cap);
/* The default model, or (half of the time) random feature weights. */
void random_model(struct rng *r, lm_model *m);

/* One random query of the index (MatchJobs, MatchCandidates, a top list of
 * a posting or a profile, a pair's score and explanation), for a subject
 * of the world or an inline one, at query_now (the pair at NOW), checked
 * against the reference over w: w's statistics must be current. */
void query_jobs(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w);
void query_candidates(
    struct rng *r, lm_index *idx, const lm_model *m, const struct world *w);
void query_top(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w);
void query_pair(struct rng *r, lm_index *idx, const lm_model *m, const struct world *w);

#endif
