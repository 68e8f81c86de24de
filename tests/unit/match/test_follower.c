/*
 * test_follower.c - the change follower over a real record store (LMDB in a
 * temporary directory) and real nng PUB/SUB notifications on ipc://.
 *
 * The test writes records with lm_store_* as ingest would (sample records,
 * prepared, serialized), then checks that they reach the index: at start
 * (snapshot), when a notification wakes the follower, and by the periodic
 * poll alone. It also checks the progress reported through on_applied and,
 * through the follower's fault seam, what a failing store read does: a
 * failed snapshot leaves an empty index and is retried, a failed change-log
 * read applies nothing, a failed record read stops the batch before that
 * record (the seq never passes it) and is retried at the next wake-up,
 * whatever its code; only a damaged record (its stored value or bytes
 * rewritten in LMDB, a change entry with an id the store refuses) is
 * skipped and counted.
 * Answers are reproducible: one store loaded at two wall clocks answers the
 * same as_of with the same bytes; and while changes are applied and the
 * store reloaded, every answer's index_seq names exactly the changes its
 * data holds. A follower whose position the change log was trimmed past
 * reloads a snapshot aside and publishes it whole.
 *
 * Most tests run twice: with an index that keeps the records' bytes, and
 * with one that reads them from the store (lm_index_set_store), whose
 * answers must be the same. For the latter, a response that shows a
 * record the store already holds at another version, or has deleted,
 * fails with LM_EBUSY until the follower applied the change (or succeeds
 * when it applies it while the response waits), never mixing versions,
 * also with many threads reading while the records change.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/supplemental/util/platform.h>

#include "follower.h"
#include "index.h"
#include "lmtest.h"
#include "storetest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/store.pb-c.h"
#include "model.h"
#include "records.h"

#define WAIT_MS    5000 /* longest wait for a change to reach the index */
#define SEED_JOB   "job-dfs-sr-mgr-ml"
#define LEAD       "cand-ml-lead-chicago"
#define STEP_READS 100000

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile CandidateProfile;

/* What the callbacks saw, and the failures to inject. */
struct seen {
	atomic_bool loaded;
	_Atomic uint64_t applied_seq; /* of the last on_applied */
	atomic_int applied_calls;
	/* fault: fail_what's next fail_count reads with fail_rc. */
	atomic_int fail_what, fail_count, fail_rc;
	atomic_int faults; /* reads failed so far */
	/* Armed: the next call of the clock records the version of SEED_JOB
	 * that queries see then (0: none). A load calls the clock once its
	 * index is complete, before publishing it. */
	atomic_bool probe;
	_Atomic uint64_t seed_version_at_load;
	/* Set: the next snapshot read first trims the store at this time, as
	 * ingest would while the load runs, into trim (0: none). */
	int64_t trim_at_load;
	lm_store_trim_result trim;
	/* While trace_steps: each read of the change log records steps (the
	 * build's steps so far) in steps_at (up to STEP_READS reads, counted
	 * in nsteps_at). */
	atomic_bool trace_steps;
	atomic_uint steps;
	unsigned steps_at[STEP_READS];
	atomic_size_t nsteps_at;
};

struct fx {
	char *dir;
	lm_store *store;
	lmt_records recs; /* the real taxonomy and rates; 384-value embeddings */
	lm_model model;
	lm_index *idx;
	struct seen seen;
};

static void
on_applied(void *arg, uint64_t seq)
{
	struct fx *fx = arg;
	assert_true(seq >= atomic_load(&fx->seen.applied_seq));
	atomic_store(&fx->seen.applied_seq, seq);
	atomic_fetch_add(&fx->seen.applied_calls, 1);
}

static int
fault(void *arg, lm_follower_read what)
{
	struct fx *fx = arg;
	struct seen *s = &fx->seen;

	if (what == LM_FOLLOWER_READ_CHANGES && atomic_load(&s->trace_steps)) {
		size_t i = atomic_load(&s->nsteps_at);
		if (i < STEP_READS) {
			s->steps_at[i] = atomic_load(&s->steps);
			atomic_store(&s->nsteps_at, i + 1);
		}
	}
	if (what == LM_FOLLOWER_READ_SNAPSHOT && s->trim_at_load != 0) {
		lm_store_trim_opts o = {.now = s->trim_at_load};
		s->trim_at_load = 0;
		assert_int_equal(lm_store_trim(fx->store, &o, &s->trim), LM_OK);
	}
	if (atomic_load(&s->fail_what) != (int) what || atomic_load(&s->fail_count) <= 0)
		return LM_OK;
	atomic_fetch_sub(&s->fail_count, 1);
	atomic_fetch_add(&s->faults, 1);
	return atomic_load(&s->fail_rc);
}

/* The next n reads of kind what fail with rc. */
static void
fail_reads(struct fx *fx, lm_follower_read what, int n, int rc)
{
	atomic_store(&fx->seen.fail_rc, rc);
	atomic_store(&fx->seen.fail_what, (int) what);
	atomic_store(&fx->seen.fail_count, n);
}

static void
on_loaded(void *arg)
{
	struct fx *fx = arg;
	atomic_store(&fx->seen.loaded, true);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->dir = lmt_tmpdir("follower");
	assert_int_equal(lm_store_open(fx->dir, NULL, &fx->store), LM_OK);
	lmt_records_open(&fx->recs, 384);
	lm_model_defaults(&fx->model);
	assert_int_equal(lm_index_new(&fx->model, &fx->idx), LM_OK);
	*state = fx;
	return 0;
}

/* As setup, with an index that reads its records from the store. */
static int
setup_stored(void **state)
{
	struct fx *fx;

	setup(state);
	fx = *state;
	assert_int_equal(lm_index_set_store(fx->idx, fx->store), LM_OK);
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	lm_index_free(fx->idx);
	lm_store_close(fx->store);
	lmt_records_close(&fx->recs);
	lmt_rmtree(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

/* A sample record (by id), decoded and prepared as ingest stores it. */
static ProtobufCMessage *
sample(struct fx *fx, bool posting, const char *id)
{
	ProtobufCMessage *m =
	    lmt_sample_get(posting ? LMT_SAMPLE_POSTINGS : LMT_SAMPLE_PROFILES, id);
	lm_reject why;
	char err[512];

	assert_int_equal(
	    lmt_record_prepare(&fx->recs.ctx, m, &why, err, sizeof(err)), LM_OK);
	return m;
}

/* Stores m (a posting or profile) under id at version, as a new id when
 * new_id is not NULL. Returns the store's last seq. */
static uint64_t
store_put(struct fx *fx, bool posting, ProtobufCMessage *m, const char *new_id,
    uint64_t version)
{
	lm_store_txn *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t seq = 0;
	char **idp = posting ? &((JobPosting *) m)->id : &((CandidateProfile *) m)->id;

	if (new_id != NULL) {
		free(*idp);
		*idp = strdup(new_id);
		assert_non_null(*idp);
	}
	if (posting)
		((JobPosting *) m)->version = version;
	else
		((CandidateProfile *) m)->version = version;
	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	assert_int_equal(lm_store_begin(fx->store, &t), LM_OK);
	assert_int_equal(lm_store_put(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE,
	                     *idp, version, buf, len),
	    LM_OK);
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	free(buf);
	return seq;
}

static uint64_t
store_delete(struct fx *fx, bool posting, const char *id)
{
	lm_store_txn *t = NULL;
	uint64_t seq = 0;

	assert_int_equal(lm_store_begin(fx->store, &t), LM_OK);
	assert_int_equal(
	    lm_store_delete(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE, id, 0),
	    LM_OK);
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	return seq;
}

/* Fills the store with the seed posting, a few others and two profiles. */
static uint64_t
fill(struct fx *fx)
{
	const char *posts[] = {SEED_JOB, "job-ml-mgr-chicago-closed"};
	const char *profs[] = {LEAD, "cand-ml-junior-chicago"};
	uint64_t seq = 0;

	for (size_t i = 0; i < 2; i++) {
		ProtobufCMessage *m = sample(fx, true, posts[i]);
		seq = store_put(fx, true, m, NULL, 1);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	for (size_t i = 0; i < 2; i++) {
		ProtobufCMessage *m = sample(fx, false, profs[i]);
		seq = store_put(fx, false, m, NULL, 1);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return seq;
}

static bool
has_posting(struct fx *fx, const char *id)
{
	JobPosting *p = NULL;

	if (lm_index_get_posting(fx->idx, id, &p) != LM_OK)
		return false;
	protobuf_c_message_free_unpacked(&p->base, NULL);
	return true;
}

static uint64_t
posting_version(struct fx *fx, const char *id)
{
	uint64_t v;

	return lm_index_record_version(fx->idx, true, id, &v) == LM_OK ? v : 0;
}

/* Whether the stored profile LEAD gets posting id among its matches; false
 * while LEAD is not in the index yet. */
static bool
matched(struct fx *fx, const char *id)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	bool found = false;

	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	req.top_k = 1000;
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
	int rv = lm_index_match_jobs(fx->idx, &req, 1795003600, &r, NULL, 0);
	if (rv == LM_ENOENT)
		return false; /* the profile has not reached the index yet */
	assert_int_equal(rv, LM_OK);
	for (size_t i = 0; i < r->n_matches; i++)
		found |= strcmp(r->matches[i]->job_id, id) == 0;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return found;
}

/* Polls cond(fx, id) == want for at most WAIT_MS. */
static bool
wait_for(
    bool (*cond)(struct fx *, const char *), struct fx *fx, const char *id, bool want)
{
	nng_time end = nng_clock() + WAIT_MS;

	while (nng_clock() < end) {
		if (cond(fx, id) == want)
			return true;
		nng_msleep(10);
	}
	return cond(fx, id) == want;
}

/* The tests' wall clock: the time the sample records are matched at. */
#define NOW 1795003600

static int64_t
fixed_clock(void *arg)
{
	struct fx *fx = arg;
	if (atomic_exchange(&fx->seen.probe, false))
		atomic_store(
		    &fx->seen.seed_version_at_load, posting_version(fx, SEED_JOB));
	return NOW;
}

static lm_follower_opts
opts_for(struct fx *fx)
{
	lm_follower_opts o;

	memset(&o, 0, sizeof(o));
	o.store = fx->store;
	o.index = fx->idx;
	o.on_loaded = on_loaded;
	o.on_applied = on_applied;
	o.fault = fault;
	o.clock = fixed_clock;
	o.arg = fx;
	return o;
}

/* ---- tests ------------------------------------------------------------------- */

static void
test_snapshot_and_catch_up(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;
	lm_index_counts counts;
	uint64_t last = fill(fx);

	assert_int_equal(last, 4);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_true(atomic_load(&fx->seen.loaded));
	lm_follower_stats_get(f, &st);
	assert_true(st.loaded);
	assert_int_equal(st.seq, 4);
	assert_int_equal(st.records, 4);
	assert_true(st.record_bytes > 1000);
	assert_true(lm_follower_index_bytes(&st) > st.record_bytes);
	assert_int_equal(lm_index_seq(fx->idx), 4);
	lm_index_counts_get(fx->idx, &counts);
	assert_int_equal(counts.postings, 2);
	assert_int_equal(
	    counts.open_postings, 1); /* the closed one is stored, not open */
	assert_int_equal(counts.profiles, 2);
	assert_true(matched(fx, SEED_JOB));
	assert_false(matched(fx, "job-ml-mgr-chicago-closed"));

	/* The load reports the snapshot's seq. */
	assert_int_equal(atomic_load(&fx->seen.applied_seq), 4);
	assert_int_equal(atomic_load(&fx->seen.applied_calls), 1);

	/* Nothing new: no progress reported. */
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_int_equal(atomic_load(&fx->seen.applied_calls), 1);

	/* An update of a known id, a new id, a delete. */
	ProtobufCMessage *m = sample(fx, true, SEED_JOB);
	store_put(fx, true, m, NULL, 2);
	store_put(fx, true, m, "job-copy-of-seed", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	store_delete(fx, false, "cand-ml-junior-chicago");
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_int_equal(atomic_load(&fx->seen.applied_seq), 7);
	assert_int_equal(atomic_load(&fx->seen.applied_calls), 2);
	assert_int_equal(posting_version(fx, SEED_JOB), 2);
	assert_true(has_posting(fx, "job-copy-of-seed"));
	lm_index_counts_get(fx->idx, &counts);
	assert_int_equal(counts.profiles, 1);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.records, 4);
	assert_int_equal(st.applied, 3);
	assert_int_equal(st.errors, 0);
	lm_follower_free(f);
}

/* A snapshot read that fails leaves nothing in the index; the next run
 * loads it. */
static void
test_snapshot_read_fails(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_index_counts counts;

	fill(fx);
	fail_reads(fx, LM_FOLLOWER_READ_SNAPSHOT, 1, LM_ESTORE);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_ESTORE);
	assert_int_equal(atomic_load(&fx->seen.faults), 1);
	assert_false(lm_follower_loaded(f));
	assert_false(atomic_load(&fx->seen.loaded));
	lm_index_counts_get(fx->idx, &counts);
	assert_int_equal(counts.postings + counts.profiles, 0);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_true(lm_follower_loaded(f));
	assert_true(has_posting(fx, SEED_JOB));
	assert_int_equal(lm_index_seq(fx->idx), 4);
	lm_follower_free(f);
}

/* A follower loaded on the empty store, then the four changes of fill,
 * whose next change-log read fails with rc. */
static lm_follower *
behind_a_failing_read(struct fx *fx, int rc)
{
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;

	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK); /* empty store */
	fill(fx);
	fail_reads(fx, LM_FOLLOWER_READ_CHANGES, 1, rc);
	return f;
}

/* A change-log read that fails applies nothing and moves nothing, and is
 * counted as an error (a follower stuck there must show in
 * lunamatch_follower_errors_total); the next run applies the changes. */
static void
test_changes_read_fails(void **state)
{
	struct fx *fx = *state;
	lm_follower *f = behind_a_failing_read(fx, LM_ESTORE);
	lm_follower_stats st;

	assert_int_equal(lm_follower_run_once(f), LM_ESTORE);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, 0);
	assert_int_equal(st.applied, 0);
	assert_int_equal(st.errors, 1);
	assert_false(has_posting(fx, SEED_JOB));
	assert_int_equal(atomic_load(&fx->seen.applied_calls), 1); /* the load */
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, 4);
	assert_int_equal(st.applied, 4);
	assert_int_equal(st.errors, 1);
	assert_int_equal(atomic_load(&fx->seen.applied_seq), 4);
	lm_follower_free(f);
}

/* A change-log entry that cannot be read (the store's LM_EPARSE) would stop
 * the follower before it for good: the follower reloads a snapshot, which
 * holds every record and goes on past the entry. */
static void
test_changes_unreadable(void **state)
{
	struct fx *fx = *state;
	lm_follower *f = behind_a_failing_read(fx, LM_EPARSE);
	lm_follower_stats st;

	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.reloads, 1);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.seq, 4);
	assert_true(has_posting(fx, SEED_JOB));
	assert_int_equal(lm_index_seq(fx->idx), 4);
	lm_follower_free(f);
}

/* A record read that fails for a reason of the moment stops the batch
 * before that record: the changes before it are applied, the seq stays
 * before it, the error is counted, and the next run applies it. Also on
 * the follower's own thread. */
static void
test_record_read_fails(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;

	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	fill(fx); /* seq 1, 2: postings; 3, 4: profiles */
	/* Then two more postings, and the read of the first one fails. */
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	ProtobufCMessage *m = sample(fx, true, SEED_JOB);
	store_put(fx, true, m, "job-a", 1);
	store_put(fx, true, m, "job-b", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	fail_reads(fx, LM_FOLLOWER_READ_RECORD, 1, LM_EBUSY);
	assert_int_equal(lm_follower_run_once(f), LM_EBUSY);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, 4); /* job-a (seq 5) failed: nothing passed */
	assert_int_equal(st.errors, 1);
	assert_false(has_posting(fx, "job-a"));
	assert_false(has_posting(fx, "job-b"));
	assert_int_equal(lm_index_seq(fx->idx), 4);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, 6);
	assert_true(has_posting(fx, "job-a"));
	assert_true(has_posting(fx, "job-b"));

	/* A read that fails with a code a damaged record could also give
	 * (a full disk's LM_E2BIG, LM_EINVAL) is no damaged record: it is
	 * retried like any other, nothing is skipped. */
	m = sample(fx, true, SEED_JOB);
	store_put(fx, true, m, "job-c", 1);
	store_put(fx, true, m, "job-d", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	fail_reads(fx, LM_FOLLOWER_READ_RECORD, 1, LM_E2BIG);
	assert_int_equal(lm_follower_run_once(f), LM_E2BIG);
	fail_reads(fx, LM_FOLLOWER_READ_RECORD, 1, LM_EINVAL);
	assert_int_equal(lm_follower_run_once(f), LM_EINVAL);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, 6);
	assert_int_equal(st.errors, 3);
	assert_false(has_posting(fx, "job-c"));
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, 8);
	assert_true(has_posting(fx, "job-c"));
	assert_true(has_posting(fx, "job-d"));
	lm_follower_free(f);

	/* On the thread: three failures in a row, retried by the poll. */
	lm_index_free(fx->idx);
	assert_int_equal(lm_index_new(&fx->model, &fx->idx), LM_OK);
	o = opts_for(fx);
	o.poll_ms = 20;
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_start(f), LM_OK);
	assert_true(wait_for(has_posting, fx, "job-b", true));
	fail_reads(fx, LM_FOLLOWER_READ_RECORD, 3, LM_ESTORE);
	m = sample(fx, false, LEAD);
	store_put(fx, false, m, NULL, 2);
	protobuf_c_message_free_unpacked(m, NULL);
	nng_time end = nng_clock() + WAIT_MS;
	while (lm_index_seq(fx->idx) < 9 && nng_clock() < end)
		nng_msleep(10);
	assert_int_equal(lm_index_seq(fx->idx), 9);
	assert_int_equal(atomic_load(&fx->seen.fail_count), 0);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.errors, 3);
	lm_follower_free(f);
}

static void
test_poll_only(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;

	o.poll_ms = 20; /* no notify URL: the poll alone must find changes */
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_start(f), LM_OK);
	assert_int_equal(lm_follower_start(f), LM_EINVAL);
	assert_int_equal(lm_follower_run_once(f), LM_EINVAL); /* not with the thread */
	fill(fx);
	assert_true(wait_for(has_posting, fx, SEED_JOB, true));
	assert_true(wait_for(matched, fx, SEED_JOB, true));

	/* Close the posting: it leaves the results but stays stored. */
	ProtobufCMessage *m = sample(fx, true, SEED_JOB);
	((JobPosting *) m)->status = LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
	store_put(fx, true, m, NULL, 2);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_true(wait_for(matched, fx, SEED_JOB, false));
	assert_int_equal(posting_version(fx, SEED_JOB), 2);

	/* Delete it: gone from the index. */
	store_delete(fx, true, SEED_JOB);
	assert_true(wait_for(has_posting, fx, SEED_JOB, false));
	/* The index shows the removal before the thread records its seq. */
	nng_time end = nng_clock() + WAIT_MS;
	for (lm_follower_stats_get(f, &st); st.seq < 6 && nng_clock() < end;
	     lm_follower_stats_get(f, &st))
		nng_msleep(10);
	assert_int_equal(st.notifications, 0);
	assert_int_equal(st.seq, 6);
	lm_follower_stop(f);
	lm_follower_stop(f); /* idempotent */
	lm_follower_free(f);
}

/* A follower of o, started, once it loaded its snapshot (at most
 * WAIT_MS). */
static lm_follower *
start_loaded(struct fx *fx, const lm_follower_opts *o)
{
	lm_follower *f = NULL;
	nng_time end = nng_clock() + WAIT_MS;

	assert_int_equal(lm_follower_new(o, &f), LM_OK);
	assert_int_equal(lm_follower_start(f), LM_OK);
	while (!atomic_load(&fx->seen.loaded) && nng_clock() < end)
		nng_msleep(5);
	assert_true(atomic_load(&fx->seen.loaded));
	return f;
}

/* Stores posting m n times in one transaction, as prefix-0 .. prefix-(n-1)
 * at version 1, copy i with the first 1 + i % k of m's k skills (so that
 * the skills' counts differ). Returns the store's last seq. */
static uint64_t
store_named(struct fx *fx, JobPosting *m, const char *prefix, unsigned n)
{
	lm_store_txn *t = NULL;
	uint64_t seq = 0;
	char *own = m->id, id[64];
	size_t k = m->n_skills;

	assert_int_equal(lm_store_begin(fx->store, &t), LM_OK);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *buf = NULL;
		size_t len = 0;
		snprintf(id, sizeof(id), "%s-%u", prefix, i);
		m->id = id;
		m->version = 1;
		m->n_skills = k > 0 ? 1 + i % k : 0;
		assert_int_equal(lm_pb_encode(&m->base, &buf, &len), LM_OK);
		assert_int_equal(
		    lm_store_put(t, LM_KIND_POSTING, id, 1, buf, len), LM_OK);
		free(buf);
	}
	m->id = own;
	m->n_skills = k;
	assert_int_equal(lm_store_commit(t, &seq), LM_OK);
	return seq;
}

/* The reshare seam of test_reshare_finishes_while_idle: every step adds
 * one posting (a budget of one entry); counts the steps. */
static int
one_posting_step(void *arg, size_t *budget)
{
	atomic_fetch_add((atomic_uint *) arg, 1);
	*budget = 1;
	return LM_OK;
}

/* The reshare seam of test_reshare_keeps_retry_pace: one posting a step,
 * each step taking a millisecond, so that a build of thousands of
 * postings lasts seconds; counts the steps. */
static int
slow_posting_step(void *arg, size_t *budget)
{
	atomic_fetch_add((atomic_uint *) arg, 1);
	*budget = 1;
	nng_msleep(1);
	return LM_OK;
}

/* Stores 2,000 postings with skills, starts a follower on them (notify
 * URL in the store's directory, a poll of ten minutes) with seam on its
 * index, then 2,500 postings without skills, published until applied:
 * a new idf snapshot is then being built (see
 * test_reshare_finishes_while_idle). Returns the follower. */
static lm_follower *
start_building(struct fx *fx, int (*seam)(void *, size_t *), atomic_uint *asked)
{
	lm_follower_opts o = opts_for(fx);
	Lunamatch__V1__StoreNotify n = LUNAMATCH__V1__STORE_NOTIFY__INIT;
	JobPosting *p = (JobPosting *) sample(fx, true, SEED_JOB);
	static char url[4200];
	uint8_t buf[64];
	nng_socket pub;
	lm_follower *f;
	nng_time end;
	size_t len;

	store_named(fx, p, "skilled", 2000);
	snprintf(url, sizeof(url), "ipc://%s/notify.ipc", fx->dir);
	o.notify_url = url;
	o.poll_ms = 600000;
	f = start_loaded(fx, &o);
	lm_index_set_reshare_seam(fx->idx, seam, asked);
	for (size_t i = 0; i < p->n_skills; i++)
		protobuf_c_message_free_unpacked(&p->skills[i]->base, NULL);
	for (size_t i = 0; i < p->n_requirement_groups; i++)
		protobuf_c_message_free_unpacked(&p->requirement_groups[i]->base, NULL);
	p->n_skills = p->n_requirement_groups = 0;
	n.last_seq = store_named(fx, p, "bare", 2500);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	len = lunamatch__v1__store_notify__pack(&n, buf);
	assert_int_equal(nng_pub0_open(&pub), 0);
	assert_int_equal(nng_listen(pub, url, NULL, 0), 0);
	/* Published until the last change is in (PUB drops messages until the
	 * subscriber is connected), then never again. */
	end = nng_clock() + WAIT_MS;
	while (!has_posting(fx, "bare-2499") && nng_clock() < end) {
		assert_int_equal(nng_send(pub, buf, len, 0), 0);
		nng_msleep(20);
	}
	assert_true(has_posting(fx, "bare-2499"));
	nng_close(pub);
	return f;
}

/*
 * While a new idf snapshot is being built the follower takes rounds
 * without waiting, but a round whose read of the change log failed is
 * followed by the poll period's wait, as ever: failing reads are not
 * retried (and logged and counted) every few milliseconds for the length
 * of the build. Here every read fails once the changes are in, and the
 * build (a millisecond a step, thousands of steps) lasts seconds; a
 * round is 16 steps, so 300 ms without wake-ups would hold about 18.
 */
static void
test_reshare_keeps_retry_pace(void **state)
{
	struct fx *fx = *state;
	atomic_uint asked = 0;
	lm_index_counts before, c;
	lm_follower_stats st;
	lm_follower *f;
	uint64_t seen = UINT64_MAX;
	int faults;

	lm_index_counts_get(fx->idx, &before);
	f = start_building(fx, slow_posting_step, &asked);
	fail_reads(fx, LM_FOLLOWER_READ_CHANGES, 1000000, LM_EIO);
	/* The notifications published meanwhile are queued, and each is a
	 * wake-up: wait until they are used up. */
	for (nng_time end = nng_clock() + WAIT_MS; nng_clock() < end;) {
		lm_follower_stats_get(f, &st);
		if (st.notifications == seen)
			break;
		seen = st.notifications;
		nng_msleep(150);
	}
	assert_int_equal(st.notifications, seen);
	faults = atomic_load(&fx->seen.faults);
	nng_msleep(300);
	lm_index_counts_get(fx->idx, &c);
	/* Still building (else the pace is not shown), and not reading. */
	assert_int_equal(c.reshares, before.reshares);
	assert_true(atomic_load(&fx->seen.faults) - faults <= 1);
	fail_reads(fx, LM_FOLLOWER_READ_CHANGES, 0, LM_OK);
	lm_follower_free(f);
}

/*
 * A new idf snapshot's lists, built a step at a time, are finished by the
 * follower without waiting for a wakeup between rounds of steps. 2,000
 * postings with skills (1 to all of a sample's, so that their counts
 * differ) are loaded, then 2,500 without skills come in: more postings,
 * the same skill counts, so every idf moves, by different factors, and
 * the drift check after 2,000 changes (half the postings) begins a new
 * snapshot. Every step adds one posting, so the build needs about 4,500
 * steps, far more than the 500 changes left and a few rounds of
 * ADVANCE_STEPS give; and after the
 * changes no wakeup comes within the wait (no notification, a poll of ten
 * minutes, a heartbeat of 10 s).
 */
static void
test_reshare_finishes_while_idle(void **state)
{
	struct fx *fx = *state;
	atomic_uint asked = 0;
	lm_index_counts before, c;
	char err[256] = "";
	lm_follower *f;
	nng_time end;

	lm_index_counts_get(fx->idx, &before);
	f = start_building(fx, one_posting_step, &asked);
	end = nng_clock() + WAIT_MS;
	for (lm_index_counts_get(fx->idx, &c);
	     c.reshares == before.reshares && nng_clock() < end;
	     lm_index_counts_get(fx->idx, &c))
		nng_msleep(10);
	assert_int_equal(c.reshares, before.reshares + 1);
	/* Built a posting a step, not at once. */
	assert_true(atomic_load(&asked) >= 4000);
	if (lm_index_check_lists(fx->idx, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	lm_follower_free(f);
}

/*
 * While a build runs, a change waits for one round of steps at most
 * (docs/scoring.md): between two reads of the change log the follower
 * takes LM_INDEX_ADVANCE_STEPS steps, plus one after each change applied.
 * A read that found a change was followed by a second round before the
 * next read, so that a change coming then waited twice as long.
 */
/* Waits until the change log has been read at least n times since
 * tracing began (WAIT_MS at most). */
static void
wait_reads(struct seen *s, size_t n)
{
	nng_time end = nng_clock() + WAIT_MS;

	while (atomic_load(&s->nsteps_at) < n && nng_clock() < end)
		nng_msleep(2);
}

static void
test_reshare_change_waits_one_round(void **state)
{
	struct fx *fx = *state;
	JobPosting *p = (JobPosting *) sample(fx, true, SEED_JOB);
	struct seen *s = &fx->seen;
	lm_index_counts before, c;
	size_t n, over = 0;
	unsigned most = 0;
	char prefix[16], id[32];
	bool applied = true;
	lm_follower *f;
	nng_time end;

	lm_index_counts_get(fx->idx, &before);
	f = start_building(fx, slow_posting_step, &s->steps);
	atomic_store(&s->trace_steps, true);
	wait_reads(s, 3);
	/* A change every few rounds, each applied before the next comes. */
	for (int i = 0; i < 5; i++) {
		snprintf(prefix, sizeof(prefix), "late%d", i);
		snprintf(id, sizeof(id), "%s-0", prefix);
		store_named(fx, p, prefix, 1);
		end = nng_clock() + WAIT_MS;
		while (!has_posting(fx, id) && nng_clock() < end)
			nng_msleep(5);
		applied = applied && has_posting(fx, id);
		wait_reads(s, atomic_load(&s->nsteps_at) + 3);
	}
	atomic_store(&s->trace_steps, false);
	n = atomic_load(&s->nsteps_at);
	lm_index_counts_get(fx->idx, &c);
	lm_follower_free(f);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_true(applied);
	/* Still building throughout, or the rounds were not measured. */
	assert_int_equal(c.reshares, before.reshares);
	assert_true(n >= 10);
	for (size_t i = 1; i < n; i++) {
		unsigned d = s->steps_at[i] - s->steps_at[i - 1];
		most = d > most ? d : most;
		over += d > LM_INDEX_ADVANCE_STEPS;
	}
	/* The rounds that applied a change took one step more, and no round
	 * took a second one. */
	if (most > LM_INDEX_ADVANCE_STEPS + 1)
		fail_msg("%u steps between two reads of the change log (at most %d, "
		         "and one more after a change)",
		    most, LM_INDEX_ADVANCE_STEPS);
	assert_true(over <= 5);
}

static void
test_notify_wakes(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;
	nng_socket pub;
	char url[4200];
	Lunamatch__V1__StoreNotify n = LUNAMATCH__V1__STORE_NOTIFY__INIT;
	uint8_t buf[64];
	bool seen = false;

	snprintf(url, sizeof(url), "ipc://%s/notify.ipc", fx->dir);
	/* The follower starts first and dials a socket nobody listens on yet. */
	o.notify_url = url;
	o.poll_ms = 600000; /* so long that only a notification can wake it */
	f = start_loaded(fx, &o);
	nng_time end;

	assert_int_equal(nng_pub0_open(&pub), 0);
	assert_int_equal(nng_listen(pub, url, NULL, 0), 0);
	uint64_t seq = fill(fx);
	n.last_seq = seq;
	size_t len = lunamatch__v1__store_notify__pack(&n, buf);
	/* PUB drops messages until the subscriber has connected: publish, as
	 * ingest does after every batch, until the change shows up. */
	end = nng_clock() + WAIT_MS;
	while (!seen && nng_clock() < end) {
		assert_int_equal(nng_send(pub, buf, len, 0), 0);
		nng_msleep(20);
		seen = has_posting(fx, SEED_JOB);
	}
	assert_true(seen);
	lm_follower_stats_get(f, &st);
	assert_true(st.notifications >= 1);

	/* A malformed notification is ignored, but still wakes the follower. */
	store_delete(fx, true, SEED_JOB);
	end = nng_clock() + WAIT_MS;
	while (has_posting(fx, SEED_JOB) && nng_clock() < end) {
		assert_int_equal(nng_send(pub, "\xff\xff\xff", 3, 0), 0);
		nng_msleep(20);
	}
	assert_false(has_posting(fx, SEED_JOB));
	lm_follower_free(f); /* stops a thread blocked on the SUB socket */
	nng_close(pub);
}

static void
test_bad_options(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o;
	lm_follower *f = (void *) 1;
	char longurl[2048];

	memset(&o, 0, sizeof(o));
	assert_int_equal(lm_follower_new(&o, &f), LM_EINVAL);
	assert_null(f);
	assert_int_equal(lm_follower_new(NULL, &f), LM_EINVAL);
	o.store = fx->store;
	o.index = fx->idx;
	memset(longurl, 'a', sizeof(longurl) - 1);
	longurl[sizeof(longurl) - 1] = '\0';
	o.notify_url = longurl;
	assert_int_equal(lm_follower_new(&o, &f), LM_EINVAL);
	o.notify_url = "bogus://nowhere";
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_start(f), LM_ENNG);
	lm_follower_free(f);
	lm_follower_free(NULL);
}

/* The index clock is the wall clock once the snapshot is loaded: a posting
 * that expired is not counted open although no query ran. */
static void
test_clock_advanced_after_load(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_index_counts counts;
	ProtobufCMessage *m;

	fill(fx);
	m = sample(fx, true, SEED_JOB);
	((JobPosting *) m)->posted_at = NOW - 7200;
	((JobPosting *) m)->expires_at = NOW - 60;
	store_put(fx, true, m, "job-expired", 1);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_index_counts_get(fx->idx, &counts);
	assert_int_equal(counts.postings, 3);
	assert_int_equal(counts.open_postings, 1); /* closed and expired are not */

	/* A posting applied from the change log that has expired already. */
	((JobPosting *) m)->expires_at = NOW - 1;
	store_put(fx, true, m, "job-expired-too", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_index_counts_get(fx->idx, &counts);
	assert_int_equal(counts.postings, 4);
	assert_int_equal(counts.open_postings, 1);
	lm_follower_free(f);
}

/* ---- reproducible answers -------------------------------------------------- */

/* A wall clock after the expiry of every sample posting. */
static int64_t
late_clock(void *arg)
{
	(void) arg;
	return NOW + 400 * 86400;
}

#define REPLAY_RECORDS 128 /* sample records of one kind, at most */

/* The sample records stored, by kind (0 profiles, 1 postings). */
struct stored {
	struct fx *fx;
	char *ids[2][REPLAY_RECORDS];
	size_t n[2];
};

/* Stores a sample record as ingest would (prepared) and notes its id. */
static void
store_sample(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	struct stored *st = arg;
	lm_reject why;
	char err[512];
	bool posting = m->descriptor == &lunamatch__v1__job_posting__descriptor;

	(void) no;
	(void) line;
	(void) len;
	assert_int_equal(
	    lmt_record_prepare(&st->fx->recs.ctx, m, &why, err, sizeof(err)), LM_OK);
	assert_true(st->n[posting] < REPLAY_RECORDS);
	st->ids[posting][st->n[posting]] = strdup(lmt_record_id(m));
	assert_non_null(st->ids[posting][st->n[posting]++]);
	store_put(st->fx, posting, m, NULL,
	    posting ? ((JobPosting *) m)->version : ((CandidateProfile *) m)->version);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Notes the id of a sample record without storing it. */
static void
note_id(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	struct stored *st = arg;
	bool posting = m->descriptor == &lunamatch__v1__job_posting__descriptor;

	(void) no;
	(void) line;
	(void) len;
	assert_true(st->n[posting] < REPLAY_RECORDS);
	st->ids[posting][st->n[posting]] = strdup(lmt_record_id(m));
	assert_non_null(st->ids[posting][st->n[posting]++]);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Appends the wire form of m to buf (grown; *len bytes so far) and frees m. */
static void
append_packed(ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *b = realloc(*buf, *len + n + 1);

	assert_non_null(b);
	assert_int_equal(protobuf_c_message_pack(m, b + *len), n);
	*buf = b;
	*len += n;
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Every answer of idx at as_of NOW, packed one after the other: MatchJobs
 * for each stored profile and MatchCandidates for each stored posting, with
 * full explanations. *matched: the matches returned. */
static uint8_t *
all_answers(lm_index *idx, const struct stored *st, size_t *len, size_t *matched)
{
	uint8_t *buf = NULL;

	*len = 0;
	*matched = 0;
	for (size_t i = 0; i < st->n[0]; i++) {
		Lunamatch__V1__MatchJobsRequest q =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *r = NULL;
		q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		q.candidate_id = st->ids[0][i];
		q.top_k = 20;
		q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
		assert_int_equal(lm_index_match_jobs(idx, &q, NOW, &r, NULL, 0), LM_OK);
		*matched += r->n_matches;
		append_packed(&r->base, &buf, len);
	}
	for (size_t i = 0; i < st->n[1]; i++) {
		Lunamatch__V1__MatchCandidatesRequest q =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		Lunamatch__V1__MatchCandidatesResponse *r = NULL;
		q.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		q.job_id = st->ids[1][i];
		q.top_k = 20;
		q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
		assert_int_equal(
		    lm_index_match_candidates(idx, &q, NOW, &r, NULL, 0), LM_OK);
		*matched += r->n_matches;
		append_packed(&r->base, &buf, len);
	}
	return buf;
}

/*
 * One store, loaded by two followers whose wall clocks differ by more than
 * the life of every expiring sample posting (one before their expiry, one
 * after), answers every query at the same as_of with the same bytes: the
 * index clock moves the open count only, never a score.
 */
static void
test_replay_at_two_clocks(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *early = NULL, *late = NULL;
	lm_index *idx2 = NULL;
	lm_index_counts c1, c2;
	uint8_t *a1, *a2;
	size_t n1, n2, m1, m2;
	struct stored st = {.fx = fx};

	lmt_jsonl_foreach(LMT_SAMPLE_POSTINGS, lmt_sample_descriptor(LMT_SAMPLE_POSTINGS),
	    store_sample, &st);
	lmt_jsonl_foreach(LMT_SAMPLE_PROFILES, lmt_sample_descriptor(LMT_SAMPLE_PROFILES),
	    store_sample, &st);
	assert_int_equal(lm_index_new(&fx->model, &idx2), LM_OK);
	assert_int_equal(lm_follower_new(&o, &early), LM_OK);
	o.index = idx2;
	o.clock = late_clock;
	assert_int_equal(lm_follower_new(&o, &late), LM_OK);
	assert_int_equal(lm_follower_run_once(early), LM_OK);
	assert_int_equal(lm_follower_run_once(late), LM_OK);
	lm_index_counts_get(fx->idx, &c1);
	lm_index_counts_get(idx2, &c2);
	assert_int_equal(c1.postings, c2.postings);
	assert_true(c2.open_postings + 4 <= c1.open_postings); /* expired by then */
	a1 = all_answers(fx->idx, &st, &n1, &m1);
	a2 = all_answers(idx2, &st, &n2, &m2);
	assert_true(m1 > 200);
	assert_int_equal(m1, m2);
	assert_int_equal(n1, n2);
	assert_memory_equal(a1, a2, n1);
	free(a1);
	free(a2);
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < st.n[k]; i++)
			free(st.ids[k][i]);
	lm_follower_free(early);
	lm_follower_free(late);
	lm_index_free(idx2);
}

/* ---- a snapshot of many batches -------------------------------------------------- */

#define COPIES 10 /* stored copies of each sample record */

/* Stores COPIES copies of every sample record of one kind under new ids
 * (<id>-c<k>), as ingest would. Returns how many it stored. */
static size_t
store_copies(struct fx *fx, bool posting)
{
	const char *which = posting ? LMT_SAMPLE_POSTINGS : LMT_SAMPLE_PROFILES;
	struct stored ids = {.fx = fx};
	size_t n = 0;

	lmt_jsonl_foreach(which, lmt_sample_descriptor(which), note_id, &ids);
	for (size_t k = 0; k < COPIES; k++)
		for (size_t i = 0; i < ids.n[posting]; i++) {
			char id[128];
			ProtobufCMessage *m = sample(fx, posting, ids.ids[posting][i]);
			snprintf(id, sizeof(id), "%s-c%zu", ids.ids[posting][i], k);
			store_put(fx, posting, m, id, 1);
			protobuf_c_message_free_unpacked(m, NULL);
			n++;
		}
	for (size_t i = 0; i < ids.n[posting]; i++)
		free(ids.ids[posting][i]);
	return n;
}

struct ref_load {
	lm_index *idx;
	bool posting;
};

/* Puts a stored record into the reference index on this thread, as the
 * change-log path does: decoded, then put (undecodable ones skipped). */
static int
ref_put(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct ref_load *rl = arg;
	ProtobufCMessage *m = NULL;
	char err[256];

	(void) id;
	(void) version;
	if (lm_pb_decode_compact(rl->posting
	                             ? &lunamatch__v1__job_posting__descriptor
	                             : &lunamatch__v1__candidate_profile__descriptor,
	        bytes, len, LM_STORE_VALUE_MAX, &m, err, sizeof(err)) != LM_OK)
		return 0;
	assert_int_equal(rl->posting
	                     ? lm_index_put_posting_compact(rl->idx, (void *) m, 0)
	                     : lm_index_put_profile_compact(rl->idx, (void *) m, 0),
	    LM_OK);
	return 0;
}

static int
ref_posting(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	((struct ref_load *) arg)->posting = true;
	return ref_put(arg, id, version, bytes, len);
}

static int
ref_profile(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	((struct ref_load *) arg)->posting = false;
	return ref_put(arg, id, version, bytes, len);
}

/*
 * A snapshot of many batches, with undecodable records among them: the
 * load (which prepares records on two threads) holds every good record and
 * skips every bad one (counted), and answers every query exactly as an
 * index loaded on one thread, record by record in store order, does.
 */
static void
test_snapshot_in_batches(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;
	lm_index_counts c1, c2;
	struct ref_load rl = {NULL, true};
	struct stored ids = {.fx = fx};
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
	static const char *const bad[] = {
	    "cand-junk", "job-a-junk", "job-junk", "job-ml-junk", "job-zz-junk"};
	size_t posts, profs, n1, n2, m1, m2;
	uint64_t seq = 0;
	lm_index *ref = NULL;
	uint8_t *a1, *a2;
	lm_store_txn *t = NULL;

	lmt_jsonl_foreach(LMT_SAMPLE_POSTINGS, lmt_sample_descriptor(LMT_SAMPLE_POSTINGS),
	    store_sample, &ids);
	lmt_jsonl_foreach(LMT_SAMPLE_PROFILES, lmt_sample_descriptor(LMT_SAMPLE_PROFILES),
	    store_sample, &ids);
	posts = ids.n[1] + store_copies(fx, true);
	profs = ids.n[0] + store_copies(fx, false);
	assert_true(posts + profs > 4 * 256); /* batches of the load */
	assert_int_equal(lm_store_begin(fx->store, &t), LM_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    lm_store_put(t, i == 0 ? LM_KIND_PROFILE : LM_KIND_POSTING, bad[i], 1,
		        junk, sizeof(junk)),
		    LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);

	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_true(st.loaded);
	assert_int_equal(st.errors, sizeof(bad) / sizeof(bad[0]));
	assert_int_equal(st.records, posts + profs);
	lm_index_counts_get(fx->idx, &c1);
	assert_int_equal(c1.postings, posts);
	assert_int_equal(c1.profiles, profs);

	/* The reference: loaded into a new index and published as the
	 * follower does, on this thread. */
	assert_int_equal(lm_index_new(&fx->model, &ref), LM_OK);
	assert_int_equal(lm_index_new(&fx->model, &rl.idx), LM_OK);
	lm_index_loading(rl.idx);
	assert_int_equal(
	    lm_store_snapshot(fx->store, ref_posting, ref_profile, &rl, &seq), LM_OK);
	assert_int_equal(lm_index_replace(ref, rl.idx, seq), LM_OK);
	assert_int_equal(lm_index_seq(ref), lm_index_seq(fx->idx));
	lm_index_counts_get(ref, &c2);
	assert_int_equal(c2.postings, posts);
	assert_int_equal(c2.profiles, profs);
	a1 = all_answers(fx->idx, &ids, &n1, &m1);
	a2 = all_answers(ref, &ids, &n2, &m2);
	assert_true(m1 > 1000);
	assert_int_equal(m1, m2);
	assert_int_equal(n1, n2);
	assert_memory_equal(a1, a2, n1);
	free(a1);
	free(a2);
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < ids.n[k]; i++)
			free(ids.ids[k][i]);
	lm_index_free(ref);
	lm_follower_free(f);
}

/* ---- index_seq and data, published together ---------------------------------- */

#define RACE_MS      1500 /* the writer stops after this long, */
#define RACE_WRITES  600  /* or after this many postings (all fit one answer) */
#define RACE_READERS 3
/* Writes and answers at least, however slow the machine: the writer goes on
 * past RACE_MS, and the readers until they gave this many answers. */
#define RACE_MIN    20
#define RACE_RELOAD 37 /* a new follower loads the store every this many */

struct race {
	lm_index *idx;
	uint64_t base; /* the store's seq before the race */
	atomic_int stop;
	atomic_long answers, failures;
};

/* Checks one answer: the race's postings (job-at-<seq>) it has are exactly
 * those of the changes up to its index_seq. */
static void
check_answer(struct race *rc, const Lunamatch__V1__MatchJobsResponse *r)
{
	uint64_t seen = 0;
	bool ok = r->index_seq >= rc->base;

	for (size_t i = 0; i < r->n_matches; i++) {
		unsigned long long at;
		if (sscanf(r->matches[i]->job_id, "job-at-%llu", &at) != 1)
			continue;
		ok &= at > rc->base && at <= r->index_seq;
		seen++;
	}
	ok &= seen == r->index_seq - rc->base;
	if (!ok && atomic_fetch_add(&rc->failures, 1) < 5)
		fprintf(stderr, "answer at index_seq %llu has %llu race postings\n",
		    (unsigned long long) r->index_seq, (unsigned long long) seen);
}

static void *
race_reader(void *arg)
{
	struct race *rc = arg;

	for (long n = 0; n < 1000000 && !atomic_load(&rc->stop); n++) {
		Lunamatch__V1__MatchJobsRequest q =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *r = NULL;
		q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		q.candidate_id = LEAD;
		q.top_k = LM_INDEX_TOP_K_MAX;
		q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
		if (lm_index_match_jobs(rc->idx, &q, NOW, &r, NULL, 0) != LM_OK) {
			atomic_fetch_add(&rc->failures, 1);
			continue;
		}
		check_answer(rc, r);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		atomic_fetch_add(&rc->answers, 1);
	}
	return NULL;
}

/*
 * Every answer's index_seq names exactly the changes its data holds. The
 * writer stores copies of a posting that LEAD matches, each under an id that
 * names the change-log seq of its put, and has the follower apply each at
 * once (now and then a new follower loads the whole store instead), while
 * readers ask for LEAD's matches: an answer at index_seq S must hold the
 * race's postings with seq <= S, all of them and no other.
 */
static void
test_seq_with_data(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	pthread_t th[RACE_READERS];
	struct race rc;
	ProtobufCMessage *m;
	ProtobufCMessage *lead = sample(fx, false, LEAD);
	nng_time end;
	uint64_t writes = 0;

	memset(&rc, 0, sizeof(rc));
	rc.idx = fx->idx;
	rc.base = store_put(fx, false, lead, NULL, 1);
	protobuf_c_message_free_unpacked(lead, NULL);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_reader, &rc), 0);
	m = sample(fx, true, SEED_JOB);
	end = nng_clock() + RACE_MS;
	while (writes < RACE_WRITES && (nng_clock() < end || writes < RACE_MIN)) {
		char id[32];
		snprintf(id, sizeof(id), "job-at-%06llu",
		    (unsigned long long) (rc.base + writes + 1));
		assert_int_equal(store_put(fx, true, m, id, 1), rc.base + writes + 1);
		writes++;
		if (writes % RACE_RELOAD == 0) {
			lm_follower_free(f);
			assert_int_equal(lm_follower_new(&o, &f), LM_OK);
		}
		assert_int_equal(lm_follower_run_once(f), LM_OK);
	}
	end = nng_clock() + WAIT_MS;
	while (atomic_load(&rc.answers) < RACE_MIN && nng_clock() < end)
		nng_msleep(10);
	atomic_store(&rc.stop, 1);
	for (int i = 0; i < RACE_READERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	protobuf_c_message_free_unpacked(m, NULL);
	lm_follower_free(f);
	print_message("%llu changes applied, %ld answers checked\n",
	    (unsigned long long) writes, atomic_load(&rc.answers));
	assert_int_equal(atomic_load(&rc.failures), 0);
	assert_true(writes >= RACE_MIN);
	assert_true(atomic_load(&rc.answers) >= RACE_MIN);
	assert_int_equal(lm_index_seq(fx->idx), rc.base + writes);
}

/* A stored record that cannot be decoded is skipped for good (counted); the
 * changes after it are applied and the follower's seq passes it. */
static void
test_undecodable_record_skipped(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;
	lm_store_txn *t = NULL;
	uint64_t last;
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};

	fill(fx);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_int_equal(lm_store_begin(fx->store, &t), LM_OK);
	assert_int_equal(
	    lm_store_put(t, LM_KIND_POSTING, "job-junk", 1, junk, sizeof(junk)), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	ProtobufCMessage *m = sample(fx, true, SEED_JOB);
	last = store_put(fx, true, m, "job-after-junk", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, last);
	assert_int_equal(st.errors, 1);
	assert_false(has_posting(fx, "job-junk"));
	assert_true(has_posting(fx, "job-after-junk"));
	/* Skipped for good: not tried again. */
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.errors, 1);
	lm_follower_free(f);
}

/*
 * A change whose stored record is damaged after it was written (its value
 * rewritten in LMDB behind the store's back) can never be applied: it is
 * skipped, counted, and the index no longer shows the record (its version
 * there is not the store's any more); the changes after it are applied.
 * Before, a damaged header failed the read with LM_ESTORE, taken for a
 * failure of the moment: the follower retried that change for ever and
 * applied nothing after it.
 */
static void
damaged_value(struct fx *fx, bool header)
{
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;
	ProtobufCMessage *m;
	uint64_t last;

	fill(fx);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_true(has_posting(fx, SEED_JOB));
	m = sample(fx, true, SEED_JOB);
	store_put(fx, true, m, SEED_JOB, 2);
	lmt_store_damage(fx->dir, true, SEED_JOB, header);
	last = store_put(fx, true, m, "job-after-damaged", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, last);
	assert_int_equal(st.errors, 1);
	assert_int_equal(posting_version(fx, SEED_JOB), 0);
	assert_true(has_posting(fx, "job-after-damaged"));
	/* Skipped for good: not tried again. */
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.errors, 1);
	lm_follower_free(f);

	/* A load of the same store (a restart) passes over it alike, and
	 * loads the rest. Before, a damaged header failed every load. */
	lm_index *idx = NULL;
	assert_int_equal(lm_index_new(&fx->model, &idx), LM_OK);
	if (lm_index_store(fx->idx) != NULL)
		assert_int_equal(lm_index_set_store(idx, fx->store), LM_OK);
	lm_index_free(fx->idx);
	fx->idx = idx;
	o = opts_for(fx);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_true(st.loaded);
	assert_int_equal(st.seq, last);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.records, 4);
	assert_int_equal(posting_version(fx, SEED_JOB), 0);
	assert_true(has_posting(fx, "job-after-damaged"));
	assert_true(has_posting(fx, "job-ml-mgr-chicago-closed"));
	lm_follower_free(f);
}

/*
 * A record damaged in the store after the index took it (its value
 * rewritten behind the store's back, no change entry): the first answer
 * that reads it notes it, and the follower's next round takes it out of
 * the index, so that the index holds what a fresh load of the store holds
 * (a load skips the record), statistics and counts included. Before, it
 * stayed counted until the record was written again or the replica
 * restarted, and every other posting's score differed from a fresh
 * replica's.
 */
static void
test_damaged_after_indexed(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL, *g = NULL;
	lm_follower_stats st;
	lm_index_counts a, b;
	lm_index *fresh = NULL;
	JobPosting *p = NULL;
	uint64_t last = fill(fx);

	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_true(has_posting(fx, SEED_JOB));
	lmt_store_damage(fx->dir, true, SEED_JOB, false);
	/* Nothing read it yet: a round leaves it. */
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_int_equal(posting_version(fx, SEED_JOB), 1);
	assert_int_equal(lm_index_get_posting(fx->idx, SEED_JOB, &p), LM_EPARSE);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, last);
	assert_int_equal(st.errors, 1);
	assert_int_equal(posting_version(fx, SEED_JOB), 0);
	assert_true(has_posting(fx, "job-ml-mgr-chicago-closed"));

	/* A fresh load of the same store holds the same. */
	assert_int_equal(lm_index_new(&fx->model, &fresh), LM_OK);
	assert_int_equal(lm_index_set_store(fresh, fx->store), LM_OK);
	o.index = fresh;
	o.reader_id = "fresh";
	assert_int_equal(lm_follower_new(&o, &g), LM_OK);
	assert_int_equal(lm_follower_run_once(g), LM_OK);
	lm_index_counts_get(fx->idx, &a);
	lm_index_counts_get(fresh, &b);
	assert_int_equal(a.postings, b.postings);
	assert_int_equal(a.open_postings, b.open_postings);
	assert_int_equal(a.profiles, b.profiles);
	assert_int_equal(a.listed, b.listed);
	lm_follower_free(g);
	lm_index_free(fresh);
	lm_follower_free(f);
}

static void
test_damaged_header_skipped(void **state)
{
	damaged_value(*state, true);
}

static void
test_damaged_bytes_skipped(void **state)
{
	damaged_value(*state, false);
}

/* Appends change entry (kind, id, version 1) at seq to the change log of
 * the store in dir, in another process, as damage would: no store writes
 * an id its own check refuses. */
static void
damage_change(const char *dir, uint64_t seq, lm_kind kind, const char *id)
{
	pid_t pid = fork();
	int status = -1;

	assert_true(pid >= 0);
	if (pid == 0) {
		Lunamatch__V1__ChangeEntry e = LUNAMATCH__V1__CHANGE_ENTRY__INIT;
		unsigned char kb[8], vb[512];
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_val k = {sizeof(kb), kb}, v = {0, vb};

		e.kind = (Lunamatch__V1__RecordKind) kind;
		e.id = (char *) id;
		e.version = 1;
		if (lunamatch__v1__change_entry__get_packed_size(&e) > sizeof(vb))
			_exit(2);
		v.mv_size = lunamatch__v1__change_entry__pack(&e, vb);
		for (int i = 0; i < 8; i++)
			kb[i] = (unsigned char) (seq >> (56 - 8 * i));
		if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0 ||
		    mdb_env_open(env, dir, 0, 0640) != 0 ||
		    mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
		    mdb_dbi_open(txn, "changes", 0, &dbi) != 0 ||
		    mdb_put(txn, dbi, &k, &v, MDB_APPEND) != 0 ||
		    mdb_txn_commit(txn) != 0)
			_exit(3);
		mdb_env_close(env);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A change entry whose id the store refuses (a damaged entry) can never be
 * read: it is skipped and counted, and the changes after it are applied. */
static void
test_change_bad_id_skipped(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;
	ProtobufCMessage *m;
	uint64_t seq, last;

	seq = fill(fx);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	damage_change(fx->dir, seq + 1, LM_KIND_POSTING,
	    "job\x01"
	    "bad");
	m = sample(fx, true, SEED_JOB);
	last = store_put(fx, true, m, "job-after-bad-id", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(last, seq + 2);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, last);
	assert_int_equal(st.errors, 1);
	assert_true(has_posting(fx, "job-after-bad-id"));
	lm_follower_free(f);
}

/* LEAD's answer from idx as text: every job id and score, best first. */
static void
answer(lm_index *idx, char *buf, size_t len)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	size_t at = 0;

	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	req.top_k = 1000;
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
	assert_int_equal(lm_index_match_jobs(idx, &req, NOW, &r, NULL, 0), LM_OK);
	buf[0] = '\0';
	for (size_t i = 0; i < r->n_matches && at < len; i++)
		at += (size_t) snprintf(buf + at, len - at, "%s=%.6f;",
		    r->matches[i]->job_id, r->matches[i]->score);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* Readers within their lease, as the next trim at now counts them. A
 * running follower records its position through the same store handle,
 * whose one write slot the trim then finds taken (LM_EBUSY): tried again,
 * for at most 5 s. */
static uint64_t
readers_at(struct fx *fx, int64_t now)
{
	lm_store_trim_opts o = {.now = now};
	lm_store_trim_result r;
	int rc;
	for (int i = 0; (rc = lm_store_trim(fx->store, &o, &r)) == LM_EBUSY && i < 5000;
	     i++)
		nng_msleep(1);
	assert_int_equal(rc, LM_OK);
	return r.readers;
}

/*
 * The position is renewed every LM_FOLLOWER_HEARTBEAT_MS also when the
 * poll period is longer and nothing changes (no notification comes): a
 * trim dated 5 s past the lease of the first record still counts the
 * follower as a reader once the renewal came. Before, the position waited
 * for the next poll, 10 minutes here, and a quiet store let it expire.
 */
static void
test_position_renewed_between_polls(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	int64_t t0;
	uint64_t n = 0;

	fill(fx);
	o.reader_id = "match-quiet";
	o.poll_ms = 600000;
	f = start_loaded(fx, &o);
	nng_time end;
	t0 = (int64_t) time(NULL);
	/* Each look expires the record when it was not renewed since t0 + 5;
	 * the renewal records it again. */
	end = nng_clock() + LM_FOLLOWER_HEARTBEAT_MS + 5000;
	while (n == 0 && nng_clock() < end) {
		nng_msleep(500);
		n = readers_at(fx, t0 + LM_STORE_READER_LEASE_DEFAULT + 5);
	}
	assert_int_equal(n, 1);
	lm_follower_free(f);
}

/*
 * The follower records its position; when it was away longer than the
 * lease and the change log was trimmed past it, it reloads: queries see the
 * old index until the new one is complete (also when the reload fails),
 * and afterwards the index equals one loaded fresh from the store. Then it
 * follows on.
 */
static void
test_reload_after_trim(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL, *g = NULL;
	lm_follower_stats st, gst;
	lm_index *fresh = NULL;
	lm_index_counts a, b;
	char ans_f[4096], ans_g[4096];
	int64_t now;

	fill(fx);
	o.reader_id = "match-test";
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	/* Read after the follower recorded its position (at the wall clock's
	 * second then): a second that ticks over in between would leave the
	 * position exactly one lease old at now + lease + 1, not expired. */
	now = (int64_t) time(NULL);
	assert_int_equal(readers_at(fx, now), 1);
	assert_int_equal(posting_version(fx, SEED_JOB), 1);

	/* Changes while the follower is away: an update, a new posting, a
	 * deleted profile, a new one. */
	ProtobufCMessage *m = sample(fx, true, SEED_JOB);
	store_put(fx, true, m, NULL, 2);
	store_put(fx, true, m, "job-copy-of-seed", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	store_delete(fx, false, "cand-ml-junior-chicago");
	m = sample(fx, false, "cand-ml-junior-chicago");
	uint64_t last = store_put(fx, false, m, "cand-copy", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	/* Within the lease the follower holds the log after its position... */
	lm_store_trim_result tr;
	lm_store_trim_opts to = {.now = now};
	assert_int_equal(lm_store_trim(fx->store, &to, &tr), LM_OK);
	assert_int_equal(tr.low_water, 4);
	/* ...past it, it no longer does. */
	to.now = now + LM_STORE_READER_LEASE_DEFAULT + 1;
	assert_int_equal(lm_store_trim(fx->store, &to, &tr), LM_OK);
	assert_int_equal(tr.readers_expired, 1);
	assert_int_equal(tr.low_water, last - 1);

	/* A reload whose snapshot read fails keeps the old index, whole. */
	fail_reads(fx, LM_FOLLOWER_READ_SNAPSHOT, 1, LM_EIO);
	assert_int_equal(lm_follower_run_once(f), LM_EIO);
	assert_int_equal(posting_version(fx, SEED_JOB), 1);
	assert_false(has_posting(fx, "job-copy-of-seed"));
	lm_index_counts_get(fx->idx, &a);
	assert_int_equal(a.profiles, 2);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.reloads, 1);
	assert_int_equal(st.seq, 4);
	assert_int_equal(st.records, 4);

	/* The next wake-up reloads; when the new index is complete, just
	 * before it is published, queries still see the old one. */
	atomic_store(&fx->seen.seed_version_at_load, 0);
	atomic_store(&fx->seen.probe, true);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_int_equal(atomic_load(&fx->seen.seed_version_at_load), 1);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.reloads, 2);
	assert_int_equal(st.seq, last);
	assert_int_equal(lm_index_seq(fx->idx), last);
	assert_int_equal(atomic_load(&fx->seen.applied_seq), last);
	assert_int_equal(posting_version(fx, SEED_JOB), 2);
	assert_true(has_posting(fx, "job-copy-of-seed"));
	assert_int_equal(readers_at(fx, now), 1); /* recorded again */

	/* The index equals one loaded fresh from the store. */
	assert_int_equal(lm_index_new(&fx->model, &fresh), LM_OK);
	lm_follower_opts go = opts_for(fx);
	go.index = fresh;
	go.fault = NULL;
	assert_int_equal(lm_follower_new(&go, &g), LM_OK);
	assert_int_equal(lm_follower_run_once(g), LM_OK);
	lm_index_counts_get(fx->idx, &a);
	lm_index_counts_get(fresh, &b);
	assert_int_equal(a.postings, b.postings);
	assert_int_equal(a.open_postings, b.open_postings);
	assert_int_equal(a.profiles, b.profiles);
	assert_int_equal(a.postings, 3);
	assert_int_equal(a.profiles, 2);
	answer(fx->idx, ans_f, sizeof(ans_f));
	answer(fresh, ans_g, sizeof(ans_g));
	assert_string_equal(ans_f, ans_g);
	assert_non_null(strstr(ans_f, "job-copy-of-seed="));
	lm_follower_stats_get(g, &gst);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.records, gst.records);
	assert_int_equal(st.record_bytes, gst.record_bytes);
	lm_follower_free(g);
	lm_index_free(fresh);

	/* And it follows on from the snapshot's seq. */
	m = sample(fx, true, SEED_JOB);
	uint64_t next = store_put(fx, true, m, "job-after-reload", 1);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_true(has_posting(fx, "job-after-reload"));
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, next);
	assert_int_equal(st.reloads, 2);

	/* Freed, it removes its position. */
	lm_follower_free(f);
	assert_int_equal(readers_at(fx, now), 0);
}

/*
 * A load renews no position, yet one that takes longer than the lease
 * keeps the log after its position: trimmed one lease and a second into
 * the load, the follower still counts as a reader. Once the load is done
 * the record is dated now again, so a replica gone from then on stops
 * holding the log one lease later.
 */
static void
test_load_longer_than_lease(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	lm_follower_stats st;
	lm_store_trim_result tr;
	lm_store_trim_opts to;
	uint64_t seq;
	int64_t now;

	fill(fx);
	assert_int_equal(lm_store_last_seq(fx->store, &seq), LM_OK);
	o.reader_id = "match-slow-load";
	fx->seen.trim_at_load = (int64_t) time(NULL) + LM_STORE_READER_LEASE_DEFAULT + 1;
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_int_equal(fx->seen.trim_at_load, 0); /* the trim ran */
	assert_int_equal(fx->seen.trim.readers, 1);
	assert_int_equal(fx->seen.trim.readers_expired, 0);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, seq);
	assert_int_equal(st.reloads, 0);

	/* Dated now after the load (read after it: see test_reload_after_trim). */
	now = (int64_t) time(NULL);
	assert_int_equal(readers_at(fx, now), 1);
	to = (lm_store_trim_opts){.now = now + LM_STORE_READER_LEASE_DEFAULT + 1};
	assert_int_equal(lm_store_trim(fx->store, &to, &tr), LM_OK);
	assert_int_equal(tr.readers_expired, 1);
	lm_follower_free(f);
}

/* Puts m's bytes under key id at version in the store as they are (m may
 * name another id or version: a damaged store). */
static void
store_put_raw(struct fx *fx, ProtobufCMessage *m, const char *id, uint64_t version)
{
	lm_store_txn *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	assert_int_equal(lm_store_begin(fx->store, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, id, version, buf, len), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	free(buf);
}

/*
 * A stored record that names another id or version than its key (a
 * damaged store) is skipped and counted, by a change and by a load alike:
 * indexed, it could not be removed by its key, nor read back at its
 * version, and a load that met the same id twice would fail for good.
 */
static void
test_record_names_other_key(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL, *g = NULL;
	lm_follower_stats st;
	JobPosting *m;

	fill(fx);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	m = (JobPosting *) sample(fx, true, SEED_JOB); /* names SEED_JOB, version 1 */
	store_put_raw(fx, &m->base, "job-other", 1);
	store_put_raw(fx, &m->base, SEED_JOB, 2);
	m->version = 3;
	free(m->id);
	m->id = strdup("job-ok");
	assert_non_null(m->id);
	store_put_raw(fx, &m->base, "job-ok", 3);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_stats_get(f, &st);
	assert_int_equal(st.seq, 7);
	assert_int_equal(st.errors, 2);
	assert_false(has_posting(fx, "job-other"));
	assert_false(has_posting(fx, SEED_JOB)); /* version 2 holds version 1's bytes */
	assert_true(has_posting(fx, "job-ok"));
	lm_follower_free(f);

	/* A load: the same two skipped, the load complete. */
	lm_index_free(fx->idx);
	assert_int_equal(lm_index_new(&fx->model, &fx->idx), LM_OK);
	o = opts_for(fx);
	assert_int_equal(lm_follower_new(&o, &g), LM_OK);
	assert_int_equal(lm_follower_run_once(g), LM_OK);
	lm_follower_stats_get(g, &st);
	assert_int_equal(st.seq, 7);
	assert_int_equal(st.errors, 2);
	assert_false(has_posting(fx, "job-other"));
	assert_false(has_posting(fx, SEED_JOB));
	assert_true(has_posting(fx, "job-ok"));
	lm_follower_free(g);
}

/* ---- records read from the store --------------------------------------------- */

/* SEED_JOB at version in the store only, titled "version <version>". */
static void
store_seed_version(struct fx *fx, uint64_t version)
{
	JobPosting *m = (JobPosting *) sample(fx, true, SEED_JOB);
	char title[32];

	snprintf(title, sizeof(title), "version %llu", (unsigned long long) version);
	free(m->title);
	m->title = strdup(title);
	assert_non_null(m->title);
	store_put(fx, true, &m->base, NULL, version);
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* LEAD's MatchJobs answer at level; *title (may be NULL) gets the title of
 * SEED_JOB's match, "" when it has none. */
static int
lead_jobs(struct fx *fx, Lunamatch__V1__ExplainLevel level, char *title, size_t len)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	int rc;

	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	req.top_k = 100;
	req.explain = level;
	rc = lm_index_match_jobs(fx->idx, &req, NOW, &r, NULL, 0);
	if (title != NULL)
		title[0] = '\0';
	if (rc != LM_OK) {
		assert_null(r);
		return rc;
	}
	for (size_t i = 0; title != NULL && i < r->n_matches; i++)
		if (strcmp(r->matches[i]->job_id, SEED_JOB) == 0)
			snprintf(title, len, "%s", r->matches[i]->title);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

/* Every read that shows SEED_JOB returns rc. */
static void
seed_reads_return(struct fx *fx, int rc)
{
	JobPosting *p = NULL;
	Lunamatch__V1__ExplainMatchResponse *ex = NULL;
	lm_top_list top;

	assert_int_equal(lm_index_get_posting(fx->idx, SEED_JOB, &p), rc);
	assert_int_equal(lm_index_explain(fx->idx, LEAD, SEED_JOB, NOW, &ex, NULL), rc);
	assert_int_equal(
	    lm_index_top_for_posting(fx->idx, SEED_JOB, 10, 0, NOW, &top), rc);
	assert_int_equal(
	    lead_jobs(fx, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, NULL, 0),
	    rc);
	if (p != NULL)
		protobuf_c_message_free_unpacked(&p->base, NULL);
	if (ex != NULL)
		protobuf_c_message_free_unpacked(&ex->base, NULL);
	lm_top_list_clear(&top);
}

/*
 * The store ahead of the index: a posting changed, then deleted, in the
 * store before the follower applied it. Whatever shows the posting fails
 * with LM_EBUSY meanwhile (GetPosting, ExplainMatch, the top list of
 * events, a MatchJobs answer that has it); what does not show it answers
 * (its version, GetProfile). Once
 * applied, every read shows the new version, or no posting.
 */
static void
test_store_ahead(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	CandidateProfile *c = NULL;
	JobPosting *p = NULL;
	char title[64];

	fill(fx);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	seed_reads_return(fx, LM_OK);

	store_seed_version(fx, 2);
	seed_reads_return(fx, LM_EBUSY);
	assert_int_equal(posting_version(fx, SEED_JOB), 1);
	assert_int_equal(lm_index_get_profile(fx->idx, LEAD, &c), LM_OK);
	protobuf_c_message_free_unpacked(&c->base, NULL);

	assert_int_equal(lm_follower_run_once(f), LM_OK);
	seed_reads_return(fx, LM_OK);
	assert_int_equal(lm_index_get_posting(fx->idx, SEED_JOB, &p), LM_OK);
	assert_int_equal(p->version, 2);
	assert_string_equal(p->title, "version 2");
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_int_equal(
	    lead_jobs(fx, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, title,
	        sizeof(title)),
	    LM_OK);
	assert_string_equal(title, "version 2");

	store_delete(fx, true, SEED_JOB);
	seed_reads_return(fx, LM_EBUSY);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	assert_int_equal(lm_index_get_posting(fx->idx, SEED_JOB, &p), LM_ENOENT);
	assert_int_equal(
	    lead_jobs(fx, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, title,
	        sizeof(title)),
	    LM_OK);
	assert_string_equal(title, "");
	lm_follower_free(f);
}

/* The follower of test_store_applied_meanwhile, applying the store's
 * changes once a read found the store ahead. */
struct applier {
	lm_follower *f;
	atomic_bool go;
	int rc;
};

static int
record_read(void *arg, lm_index_alloc what)
{
	struct applier *a = arg;

	if (what == LM_INDEX_ALLOC_RECORD)
		atomic_store(&a->go, true);
	return LM_OK;
}

static void *
apply_when_asked(void *arg)
{
	struct applier *a = arg;
	nng_time end = nng_clock() + WAIT_MS;

	while (!atomic_load(&a->go) && nng_clock() < end)
		nng_msleep(1);
	a->rc = lm_follower_run_once(a->f);
	return NULL;
}

/* A read that finds the store ahead waits for the index and runs again:
 * the change applied meanwhile, it answers with the new version. */
static void
test_store_applied_meanwhile(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	struct applier a = {.rc = -1};
	JobPosting *p = NULL;
	pthread_t th;

	fill(fx);
	atomic_init(&a.go, false);
	assert_int_equal(lm_follower_new(&o, &a.f), LM_OK);
	assert_int_equal(lm_follower_run_once(a.f), LM_OK);
	store_seed_version(fx, 2);
	lm_index_set_fault(fx->idx, record_read, &a);
	assert_int_equal(pthread_create(&th, NULL, apply_when_asked, &a), 0);
	assert_int_equal(lm_index_get_posting(fx->idx, SEED_JOB, &p), LM_OK);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.rc, LM_OK);
	assert_int_equal(p->version, 2);
	assert_string_equal(p->title, "version 2");
	protobuf_c_message_free_unpacked(&p->base, NULL);
	lm_index_set_fault(fx->idx, NULL, NULL);
	lm_follower_free(a.f);
}

#define READ_THREADS  8
#define READ_VERSIONS 40

struct reads {
	struct fx *fx;
	atomic_bool stop;
	atomic_long ok, busy, wrong;
};

/* Reads SEED_JOB until stopped: each copy must be one version whole, its
 * title naming its version. */
static void *
seed_reader(void *arg)
{
	struct reads *r = arg;

	for (int n = 0; n < 100000 && !atomic_load(&r->stop); n++) {
		JobPosting *p = NULL;
		char title[32];
		int rc = lm_index_get_posting(r->fx->idx, SEED_JOB, &p);
		if (rc == LM_EBUSY) {
			atomic_fetch_add(&r->busy, 1);
			continue;
		}
		if (rc != LM_OK) {
			atomic_fetch_add(&r->wrong, 1);
			continue;
		}
		snprintf(title, sizeof(title), "version %llu",
		    (unsigned long long) p->version);
		atomic_fetch_add(strcmp(p->title, title) == 0 ? &r->ok : &r->wrong, 1);
		protobuf_c_message_free_unpacked(&p->base, NULL);
	}
	return NULL;
}

/* Many threads read a record from the store while its versions change:
 * every copy is whole, none fails but with LM_EBUSY, and no read keeps a
 * reader slot of the store. */
static void
test_store_reads_threads(void **state)
{
	struct fx *fx = *state;
	lm_follower_opts o = opts_for(fx);
	lm_follower *f = NULL;
	pthread_t th[READ_THREADS];
	struct reads r = {.fx = fx};
	JobPosting *p = NULL;

	fill(fx);
	store_seed_version(fx, 2);
	assert_int_equal(lm_follower_new(&o, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	for (int i = 0; i < READ_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, seed_reader, &r), 0);
	for (uint64_t v = 3; v <= READ_VERSIONS; v++) {
		store_seed_version(fx, v);
		assert_int_equal(lm_follower_run_once(f), LM_OK);
	}
	atomic_store(&r.stop, true);
	for (int i = 0; i < READ_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	print_message(
	    "%ld whole copies, %ld busy\n", atomic_load(&r.ok), atomic_load(&r.busy));
	assert_int_equal(atomic_load(&r.wrong), 0);
	assert_true(atomic_load(&r.ok) > 0);
	assert_int_equal(lm_index_get_posting(fx->idx, SEED_JOB, &p), LM_OK);
	assert_int_equal(p->version, READ_VERSIONS);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	lm_follower_free(f);
}

/* A record put as stored needs an index with a store; a store is given to
 * an empty index only; an index is replaced by one with the same store. */
static void
test_store_misuse(void **state)
{
	struct fx *fx = *state;
	lm_index *plain = NULL;
	lm_index_prepared ip;
	ProtobufCMessage *m = sample(fx, true, SEED_JOB), *c = NULL;

	assert_int_equal(lm_index_new(&fx->model, &plain), LM_OK);
	assert_int_equal(lm_pb_compact(m, &c, NULL), LM_OK);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_index_prepare_stored(&ip, true, c, 100), LM_OK);
	assert_int_equal(lm_index_put_prepared(plain, &ip, 0), LM_EINVAL);
	assert_null(ip.rec);
	assert_int_equal(lm_index_replace(fx->idx, plain, 1), LM_EINVAL); /* frees it */

	assert_int_equal(lm_index_new(&fx->model, &plain), LM_OK);
	m = sample(fx, true, SEED_JOB);
	assert_int_equal(lm_index_put_posting(plain, (JobPosting *) m, 0), LM_OK);
	assert_int_equal(lm_index_set_store(plain, fx->store), LM_EINVAL);
	assert_null(lm_index_store(plain));
	assert_ptr_equal(lm_index_store(fx->idx), fx->store);
	lm_index_free(plain);
}

int
main(void)
{
	/* t with an index that keeps the records' bytes, and again with one
	 * that reads them from the store. */
#define BOTH(t)                                                                          \
	cmocka_unit_test_setup_teardown(t, setup, teardown),                             \
	{                                                                                \
#t " (records in the store)", t, setup_stored, teardown, NULL            \
	}
#define STORED(t)                                                                        \
	{                                                                                \
#t, t, setup_stored, teardown, NULL                                      \
	}
	const struct CMUnitTest tests[] = {
	    BOTH(test_snapshot_and_catch_up),
	    cmocka_unit_test_setup_teardown(test_snapshot_read_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_read_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_unreadable, setup, teardown),
	    BOTH(test_record_read_fails),
	    cmocka_unit_test_setup_teardown(test_poll_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notify_wakes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_reshare_finishes_while_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_reshare_change_waits_one_round, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_reshare_keeps_retry_pace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	    BOTH(test_reload_after_trim),
	    cmocka_unit_test_setup_teardown(test_load_longer_than_lease, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_position_renewed_between_polls, setup, teardown),
	    BOTH(test_record_names_other_key),
	    cmocka_unit_test_setup_teardown(
	        test_clock_advanced_after_load, setup, teardown),
	    BOTH(test_undecodable_record_skipped),
	    BOTH(test_damaged_header_skipped),
	    BOTH(test_damaged_bytes_skipped),
	    cmocka_unit_test_setup_teardown(test_change_bad_id_skipped, setup, teardown),
	    BOTH(test_replay_at_two_clocks),
	    BOTH(test_snapshot_in_batches),
	    BOTH(test_seq_with_data),
	    STORED(test_store_ahead),
	    STORED(test_store_applied_meanwhile),
	    STORED(test_store_reads_threads),
	    STORED(test_store_misuse),
	    STORED(test_damaged_after_indexed),
	};
#undef BOTH
#undef STORED
	return cmocka_run_group_tests(tests, NULL, NULL);
}
