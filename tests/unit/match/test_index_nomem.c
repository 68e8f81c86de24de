/*
 * test_index_nomem.c - the match index when memory runs out during an
 * update: the failure is injected into the update's allocating steps
 * (lm_index_set_fault), one step after the other, with records of more
 * than 64 and more than 256 terms (the sizes past which the updates'
 * working memory is no longer on the stack). A failed put must leave the
 * index answering exactly as before and holding no list entry it did not
 * hold; a removal must succeed even when every allocation would fail, and
 * leave no entry of the record behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "lmtest.h"
#include "lunamatch/error.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;

#define NOW 1750000000LL
#define DAY 86400LL

static char *
skill_name(unsigned k)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "k%03u", k);
	return lmt_strdup(buf);
}

/* A posting with the n skills k<first> .. k<first + n - 1>, every third
 * preferred, with weights 1 to 3. */
static JobPosting *
posting(const char *id, uint64_t version, unsigned first, unsigned n,
    Lunamatch__V1__RemotePolicy remote, Lunamatch__V1__EmploymentType emp)
{
	JobPosting *p = lmt_calloc(1, sizeof(*p));

	lunamatch__v1__job_posting__init(p);
	p->id = lmt_strdup(id);
	p->version = version;
	p->title = lmt_strdup("Senior Data Engineer");
	p->category = lmt_strdup("Data");
	p->company = lmt_strdup("Acme");
	p->posted_at = NOW - DAY;
	p->remote = remote;
	p->employment_type = emp;
	p->n_skills = n;
	p->skills = lmt_calloc(n, sizeof(*p->skills));
	for (unsigned i = 0; i < n; i++) {
		Lunamatch__V1__PostingSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__posting_skill__init(s);
		s->skill_id = skill_name(first + i);
		s->name = skill_name(first + i);
		s->weight = (float) (1 + i % 3);
		s->preferred = i % 3 == 2;
		p->skills[i] = s;
	}
	return p;
}

/* A profile with the n skills k<first> .. k<first + n - 1>. */
static Profile *
profile(const char *id, uint64_t version, unsigned first, unsigned n,
    Lunamatch__V1__RemotePolicy remote)
{
	Profile *c = lmt_calloc(1, sizeof(*c));

	lunamatch__v1__candidate_profile__init(c);
	c->id = lmt_strdup(id);
	c->version = version;
	c->headline = lmt_strdup("Engineer");
	c->years_experience = 6;
	c->remote = remote;
	c->n_skills = n;
	c->skills = lmt_calloc(n, sizeof(*c->skills));
	for (unsigned i = 0; i < n; i++) {
		Lunamatch__V1__CandidateSkill *s = lmt_calloc(1, sizeof(*s));
		lunamatch__v1__candidate_skill__init(s);
		s->skill_id = skill_name(first + i);
		s->years = (float) (i % 7);
		c->skills[i] = s;
	}
	return c;
}

#define REMOTE  LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE
#define HYBRID  LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID
#define ONSITE  LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE
#define FULL    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME
#define CONTRAC LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT

static const char *const post_ids[] = {"p0", "p1", "p2", "p3", "p4", "p9"};
static const char *const prof_ids[] = {"c0", "c1", "c2", "c9"};
#define NPOST (sizeof(post_ids) / sizeof(post_ids[0]))
#define NPROF (sizeof(prof_ids) / sizeof(prof_ids[0]))

/* Everything the index answers about the records of this test: MatchJobs
 * for every profile, MatchCandidates for every posting (top 50, every
 * explanation; ENOENT for one not stored) and the counts of records and
 * list entries, as bytes. */
struct answers {
	unsigned char *b;
	size_t n, cap;
};

static void
put_bytes(struct answers *a, const void *p, size_t len)
{
	if (a->n + len > a->cap) {
		a->cap = 2 * (a->n + len);
		if ((a->b = realloc(a->b, a->cap)) == NULL)
			abort();
	}
	memcpy(a->b + a->n, p, len);
	a->n += len;
}

static void
put_msg(struct answers *a, ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	unsigned char *buf = lmt_calloc(len, 1);

	protobuf_c_message_pack(m, buf);
	put_bytes(a, &len, sizeof(len));
	put_bytes(a, buf, len);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
answers_of(lm_index *idx, struct answers *a)
{
	lm_index_counts c;
	uint64_t v[4];

	a->n = 0;
	for (size_t i = 0; i < NPROF; i++) {
		Lunamatch__V1__MatchJobsRequest q =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *r = NULL;
		int rc;
		q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		q.candidate_id = (char *) prof_ids[i];
		q.top_k = 50;
		q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
		rc = lm_index_match_jobs(idx, &q, NOW, &r, NULL, 0);
		put_bytes(a, &rc, sizeof(rc));
		if (rc == LM_OK)
			put_msg(a, &r->base);
	}
	for (size_t i = 0; i < NPOST; i++) {
		Lunamatch__V1__MatchCandidatesRequest q =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		Lunamatch__V1__MatchCandidatesResponse *r = NULL;
		int rc;
		q.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		q.job_id = (char *) post_ids[i];
		q.top_k = 50;
		q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
		rc = lm_index_match_candidates(idx, &q, NOW, &r, NULL, 0);
		put_bytes(a, &rc, sizeof(rc));
		if (rc == LM_OK)
			put_msg(a, &r->base);
	}
	lm_index_counts_get(idx, &c);
	v[0] = c.postings;
	v[1] = c.open_postings;
	v[2] = c.profiles;
	v[3] = c.listed;
	put_bytes(a, v, sizeof(v));
}

/* x and y give the same answers (answers_of). */
static void
assert_same_answers(lm_index *x, lm_index *y)
{
	struct answers a = {0}, b = {0};

	answers_of(x, &a);
	answers_of(y, &b);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.b, b.b, a.n);
	free(a.b);
	free(b.b);
}

/* The seam: fails the fail_at-th allocating step asked about (1 for the
 * first; 0 for none, -1 for every one), and records which kinds failed. */
struct fault {
	int asked, fail_at;
	unsigned failed; /* bit per lm_index_alloc */
};

static int
fault_fn(void *arg, lm_index_alloc what)
{
	struct fault *f = arg;

	f->asked++;
	if (f->fail_at < 0 || f->asked == f->fail_at) {
		f->failed |= 1u << what;
		return LM_ENOMEM;
	}
	return LM_OK;
}

enum { POSTING, PROFILE };

/* The record the i-th change puts (a fresh copy every time: the index
 * takes ownership, also on failure). */
static int
put_change(lm_index *idx, int i)
{
	switch (i) {
	case 0: /* p0 (300 skills) grows to 400, new symbols, another partition */
		return lm_index_put_posting(
		    idx, posting("p0", 2, 150, 400, HYBRID, CONTRAC), 0);
	case 1: /* c0 (300 skills) to 350, another partition */
		return lm_index_put_profile(idx, profile("c0", 2, 200, 350, ONSITE), 0);
	case 2: /* a new posting of 500 skills */
		return lm_index_put_posting(
		    idx, posting("p9", 1, 600, 500, REMOTE, FULL), 0);
	case 3: /* a new profile of 520 skills */
		return lm_index_put_profile(idx, profile("c9", 1, 580, 520, REMOTE), 0);
	case 4: /* p1 (70 skills) to 90 skills in its partition */
		return lm_index_put_posting(
		    idx, posting("p1", 3, 40, 90, REMOTE, FULL), 0);
	default: /* c1 (70 skills) to 80 */
		return lm_index_put_profile(idx, profile("c1", 3, 30, 80, REMOTE), 0);
	}
}
#define NCHANGES 6

static void
build(lm_index *idx)
{
	assert_int_equal(
	    lm_index_put_posting(idx, posting("p0", 1, 0, 300, REMOTE, FULL), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_posting(idx, posting("p1", 1, 100, 70, REMOTE, FULL), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_posting(idx, posting("p2", 1, 5, 6, REMOTE, FULL), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_posting(idx, posting("p3", 1, 0, 0, REMOTE, FULL), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_posting(idx, posting("p4", 1, 250, 80, HYBRID, CONTRAC), 0),
	    LM_OK);
	assert_int_equal(
	    lm_index_put_profile(idx, profile("c0", 1, 0, 300, REMOTE), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_profile(idx, profile("c1", 1, 90, 70, REMOTE), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_profile(idx, profile("c2", 1, 3, 5, HYBRID), 0), LM_OK);
}

/* Each change, with its first, second, ... allocating step failing until
 * it goes through: every failed attempt returns LM_ENOMEM and leaves the
 * answers byte for byte as they were. Returns the kinds of steps failed. */
static unsigned
changes_failing_each_step(lm_index *idx)
{
	struct answers before = {0}, after = {0};
	unsigned kinds = 0;

	for (int i = 0; i < NCHANGES; i++) {
		int rc, fails = 0;
		answers_of(idx, &before);
		for (int at = 1;; at++) {
			struct fault f = {0, at, 0};
			lm_index_set_fault(idx, fault_fn, &f);
			rc = put_change(idx, i);
			lm_index_set_fault(idx, NULL, NULL);
			kinds |= f.failed;
			if (rc == LM_OK) {
				assert_int_equal(f.failed, 0);
				break;
			}
			assert_int_equal(rc, LM_ENOMEM);
			assert_int_not_equal(f.failed, 0);
			answers_of(idx, &after);
			assert_int_equal(after.n, before.n);
			assert_memory_equal(after.b, before.b, before.n);
			fails++;
		}
		assert_true(fails >= 1); /* every change allocates */
		answers_of(idx, &after);
		assert_true(
		    after.n != before.n || memcmp(after.b, before.b, before.n) != 0);
	}
	free(before.b);
	free(after.b);
	return kinds;
}

static void
test_failed_put_changes_nothing(void **state)
{
	lm_model m;
	lm_index *idx = NULL, *clean = NULL;
	unsigned kinds;

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	build(idx);
	kinds = changes_failing_each_step(idx);
	assert_int_equal(kinds, 1u << LM_INDEX_ALLOC_SCRATCH | 1u << LM_INDEX_ALLOC_SNAP |
	                            1u << LM_INDEX_ALLOC_LISTS);

	/* What got through is what an index that never failed holds. */
	assert_int_equal(lm_index_new(&m, &clean), LM_OK);
	build(clean);
	for (int i = 0; i < NCHANGES; i++)
		assert_int_equal(put_change(clean, i), LM_OK);
	assert_same_answers(idx, clean);
	lm_index_free(clean);
	lm_index_free(idx);
}

/* Removals, closing and replacing by a smaller record take records out of
 * the lists without allocating: with every allocation failing they go
 * through, and once every record is gone no list entry is left. */
static void
test_removal_needs_no_memory(void **state)
{
	lm_model m;
	lm_index *idx = NULL;
	lm_index_counts c;
	struct fault f = {0, -1, 0};
	JobPosting *closed;
	char buf[256];

	(void) state;
	lm_model_defaults(&m);
	assert_int_equal(lm_index_new(&m, &idx), LM_OK);
	build(idx);
	for (int i = 0; i < NCHANGES; i++)
		assert_int_equal(put_change(idx, i), LM_OK);
	lm_index_counts_get(idx, &c);
	assert_true(c.listed > 1500);

	lm_index_set_fault(idx, fault_fn, &f);
	/* Closing a listed posting only takes it out. */
	closed = posting("p9", 2, 600, 500, REMOTE, FULL);
	closed->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
	assert_int_equal(lm_index_put_posting(idx, closed, 0), LM_OK);
	for (size_t i = 0; i < NPOST; i++)
		assert_int_equal(lm_index_remove_posting(idx, post_ids[i], 0), LM_OK);
	lm_index_counts_get(idx, &c);
	assert_int_equal(c.postings, 0);
	for (size_t i = 0; i < NPROF; i++)
		assert_int_equal(lm_index_remove_profile(idx, prof_ids[i], 0), LM_OK);
	assert_int_equal(f.asked, 0);
	lm_index_counts_get(idx, &c);
	assert_int_equal(c.profiles, 0);
	assert_int_equal(c.listed, 0);
	lm_index_set_fault(idx, NULL, NULL);

	/* The doc ids are reused by new records, which find only themselves. */
	assert_int_equal(
	    lm_index_put_posting(idx, posting("q1", 1, 0, 3, REMOTE, FULL), 0), LM_OK);
	assert_int_equal(
	    lm_index_put_profile(idx, profile("d1", 1, 0, 3, REMOTE), 0), LM_OK);
	{
		Lunamatch__V1__MatchJobsRequest q =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *r = NULL;
		q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		q.candidate_id = (char *) "d1";
		assert_int_equal(
		    lm_index_match_jobs(idx, &q, NOW, &r, buf, sizeof(buf)), LM_OK);
		assert_int_equal(r->n_matches, 1);
		assert_string_equal(r->matches[0]->job_id, "q1");
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	lm_index_free(idx);
}

/* A loading index (idx) and an index that is not (ref), each with build's
 * records. */
static void
loading_and_ref(const lm_model *m, lm_index **idx, lm_index **ref)
{
	assert_int_equal(lm_index_new(m, idx), LM_OK);
	assert_int_equal(lm_index_new(m, ref), LM_OK);
	lm_index_loading(*idx);
	build(*idx);
	build(*ref);
}

/* A snapshot load lists its postings at the end (lm_index_loaded): a
 * failure there leaves the index loading, and a retry lists the rest. */
static void
test_failed_load_retries(void **state)
{
	lm_model m;
	lm_index *idx = NULL, *ref = NULL;
	int fails = 0;

	(void) state;
	lm_model_defaults(&m);
	loading_and_ref(&m, &idx, &ref);
	for (int at = 2;; at += 2) {
		struct fault f = {0, at, 0};
		int rc;
		lm_index_set_fault(idx, fault_fn, &f);
		rc = lm_index_loaded(idx);
		lm_index_set_fault(idx, NULL, NULL);
		if (rc == LM_OK)
			break;
		assert_int_equal(rc, LM_ENOMEM);
		fails++;
	}
	assert_true(fails >= 2);
	assert_same_answers(idx, ref);
	lm_index_free(idx);
	lm_index_free(ref);
}

static int
fail_scratch(void *arg, lm_index_alloc what)
{
	(void) arg;
	return what == LM_INDEX_ALLOC_SCRATCH ? LM_ENOMEM : LM_OK;
}

/* The listing at the end of a load runs on a second thread with working
 * memory of its own; without that memory this thread lists every
 * partition, with the same result. */
static void
test_load_lists_on_one_thread(void **state)
{
	lm_model m;
	lm_index *idx = NULL, *ref = NULL;

	(void) state;
	lm_model_defaults(&m);
	loading_and_ref(&m, &idx, &ref);
	lm_index_set_fault(idx, fail_scratch, NULL);
	assert_int_equal(lm_index_loaded(idx), LM_OK);
	lm_index_set_fault(idx, NULL, NULL);
	assert_same_answers(idx, ref);
	lm_index_free(idx);
	lm_index_free(ref);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failed_put_changes_nothing),
	    cmocka_unit_test(test_removal_needs_no_memory),
	    cmocka_unit_test(test_load_lists_on_one_thread),
	    cmocka_unit_test(test_failed_load_retries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
