/*
 * test_service.c - the MatchService handlers over a real index built from
 * the sample postings and profiles (data/samples), normalized with the real
 * taxonomy and rate table, and scored with the default model.
 *
 * Handlers are called through the method table, as the RPC server calls
 * them; one test also attaches a real RPC server to check that Check follows
 * its serving state. The clock is fixed at the samples' reference time plus
 * one hour, so that results do not depend on the day the test runs.
 * Damaged stored records are tested on an index that reads its records
 * from a real store (LMDB in a temporary directory), as the service runs.
 *
 * The decision log is a real lm_decisions on librdkafka's mock cluster, read
 * back with a real consumer. librdkafka's threads cannot run under
 * ThreadSanitizer (tests/CMakeLists.txt), so that test is skipped there.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <lmdb.h>
#include <librdkafka/rdkafka_mock.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "decisions.h"
#include "lunamatch/dqueue.h"
#include "follower.h"
#include "index.h"
#include "lmtest.h"
#include "storetest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/salary.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "model.h"
#include "records.h"
#include "rpc_server.h"
#include "service.h"

#define ST_OK          LUNAMATCH__V1__STATUS_CODE__OK
#define ST_INVALID     LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT
#define ST_DEADLINE    LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED
#define ST_NOT_FOUND   LUNAMATCH__V1__STATUS_CODE__NOT_FOUND
#define ST_UNAVAILABLE LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE

/* librdkafka's threads cannot run under ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#define SAMPLES_NOW 1795003600 /* reference time of the samples + 1 h */
#define SEED_JOB    "job-dfs-sr-mgr-ml"
#define LEAD        "cand-ml-lead-chicago"
#define JUNIOR      "cand-ml-junior-chicago"
#define CLOSED_JOB  "job-ml-mgr-chicago-closed"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile CandidateProfile;

struct world {
	lmt_records recs; /* the real taxonomy and rates; 384-value embeddings */
	lm_model *model;
	lm_index *idx;
	lm_match_service *svc;
	size_t npostings, nprofiles;
};

static struct world W;

/* The service clock: SAMPLES_NOW unless a test moves it (and back). */
static int64_t clock_now = SAMPLES_NOW;

static int64_t
fixed_clock(void *arg)
{
	(void) arg;
	return clock_now;
}

/* lmt_jsonl_fn: puts a record that prepares cleanly into the index, as
 * ingest would store it (a record ingest would dead-letter is left out);
 * counts it in *(size_t *) arg. */
static void
index_record(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	size_t *n = arg;
	lm_reject why;
	char err[512];
	(void) no;
	(void) line;
	(void) len;

	if (lmt_record_prepare(&W.recs.ctx, m, &why, err, sizeof(err)) != LM_OK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return;
	}
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor)
		assert_int_equal(lm_index_put_posting(W.idx, (JobPosting *) m, 0), LM_OK);
	else
		assert_int_equal(
		    lm_index_put_profile(W.idx, (CandidateProfile *) m, 0), LM_OK);
	(*n)++;
}

/* Indexes the records of a sample file that prepare cleanly; returns their
 * number. */
static size_t
load_jsonl(const char *rel)
{
	size_t n = 0;
	lmt_jsonl_foreach(rel, lmt_sample_descriptor(rel), index_record, &n);
	return n;
}

static int
setup(void **state)
{
	char err[512];
	lm_match_service_opts o;

	(void) state;
	memset(&W, 0, sizeof(W));
	lmt_records_open(&W.recs, 384);
	if (lm_model_load(
	        lmt_src("data/model/default.json"), &W.model, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	assert_int_equal(lm_index_new(W.model, &W.idx), LM_OK);
	W.npostings = load_jsonl(LMT_SAMPLE_POSTINGS);
	W.nprofiles = load_jsonl(LMT_SAMPLE_PROFILES);
	assert_true(W.npostings >= 50 && W.nprofiles >= 50);
	lm_index_set_seq(W.idx, 42);

	memset(&o, 0, sizeof(o));
	o.index = W.idx;
	o.record_ctx = W.recs.ctx;
	o.clock = fixed_clock;
	assert_int_equal(lm_match_service_new(&o, &W.svc), LM_OK);
	lm_match_service_set_loaded(W.svc, true);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lm_match_service_free(W.svc);
	lm_index_free(W.idx);
	lm_model_free(W.model);
	lmt_records_close(&W.recs);
	return 0;
}

/* What a held reply was answered with (the lm_rpc_done_fn of the tests). */
struct done_rec {
	pthread_mutex_t mu;
	bool done;
	int calls, code;
	char msg[LM_RPC_MAX_MESSAGE];
};

static void
record_done(void *call, int code, const char *msg)
{
	struct done_rec *d = call;

	pthread_mutex_lock(&d->mu);
	d->calls++;
	d->code = code;
	snprintf(d->msg, sizeof(d->msg), "%s", msg != NULL ? msg : "");
	d->done = true;
	pthread_mutex_unlock(&d->mu);
}

/*
 * Runs the commit of method m (when it has one) on the handler's OK answer
 * out, as the RPC server does before it sends the reply, and waits (at
 * most 10 s) for a held reply's done. Returns the status the reply goes
 * out with, reason in msg.
 */
static int
run_commit(const lm_rpc_method *m, lm_match_service *svc, const lm_rpc_ctx *ctx,
    const void *req, const ProtobufCMessage *out, char *msg, size_t msglen)
{
	struct done_rec d = {.code = -2};
	int64_t end = lm_clock_ms() + 10000;
	bool done;
	int st;

	if (m->commit == NULL)
		return ST_OK;
	pthread_mutex_init(&d.mu, NULL);
	st = m->commit(svc, ctx, req, out, record_done, &d, msg, msglen);
	do {
		pthread_mutex_lock(&d.mu);
		done = d.done;
		pthread_mutex_unlock(&d.mu);
		if (!done && st == LM_RPC_HELD)
			lmt_sleep_ms(1);
	} while (!done && st == LM_RPC_HELD && lm_clock_ms() < end);
	if (st == LM_RPC_HELD) {
		assert_true(done);
		assert_int_equal(d.calls, 1);
		st = d.code;
		size_t k = strnlen(d.msg, msglen - 1);
		memcpy(msg, d.msg, k);
		msg[k] = 0;
	} else {
		assert_int_equal(d.calls, 0); /* done only for a held reply */
	}
	pthread_mutex_destroy(&d.mu);
	return st;
}

/* Calls method of svc through the handler table, as the RPC server does
 * (the handler, then its commit), with the request id and metadata of ctx
 * (its method and deadline are set here). */
static int
call_with(lm_match_service *svc, lm_rpc_ctx ctx, const char *method, const void *req,
    void **resp, char *msg, size_t msglen)
{
	size_t n;
	const lm_rpc_method *m = lm_match_service_methods(&n);
	ProtobufCMessage *out = NULL;

	ctx.method = method;
	ctx.deadline_ms = (uint64_t) nng_clock() + 60000;
	msg[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (strcmp(m[i].name, method) == 0) {
			int st = m[i].fn(svc, &ctx, req, &out, msg, msglen);
			if (st == ST_OK && (st = run_commit(&m[i], svc, &ctx, req, out,
			                        msg, msglen)) != ST_OK) {
				protobuf_c_message_free_unpacked(out, NULL);
				out = NULL;
			}
			if (st != ST_OK) {
				assert_null(out);
				assert_true(
				    msg[0] != '\0'); /* every error has a reason */
			} else {
				assert_non_null(out);
			}
			*resp = out;
			return st;
		}
	}
	fail_msg("no handler for %s", method);
	return -1;
}

/* Calls method of the test's service with request id "test". */
static int
call(const char *method, const void *req, void **resp, char *msg, size_t msglen)
{
	lm_rpc_ctx ctx = {method, "test", 0, NULL, 0};
	return call_with(W.svc, ctx, method, req, resp, msg, msglen);
}

static void
free_msg(void *m)
{
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
}

static bool
has_job(const Lunamatch__V1__MatchJobsResponse *r, const char *id, size_t within)
{
	for (size_t i = 0; i < r->n_matches && i < within; i++)
		if (strcmp(r->matches[i]->job_id, id) == 0)
			return true;
	return false;
}

static void
assert_ranked(Lunamatch__V1__Match **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i]->rank, i + 1);
		assert_true(v[i]->score >= 0.0 && v[i]->score <= 1.0);
		if (i > 0)
			assert_true(v[i - 1]->score >= v[i]->score);
	}
}

/* ---- MatchJobs ----------------------------------------------------------- */

static void
test_match_jobs_stored(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	char msg[512];

	(void) state;
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	assert_int_equal(call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(r->n_matches, 10); /* top_k 0 = 10 */
	assert_ranked(r->matches, r->n_matches);
	assert_true(has_job(r, SEED_JOB, 3));
	assert_false(has_job(r, CLOSED_JOB, r->n_matches));
	assert_int_equal(r->index_seq, 42);
	assert_string_equal(r->model_version, W.model->version);
	assert_int_equal(r->considered, W.npostings); /* every posting is scored */
	assert_true(r->vetoed > 0 && r->vetoed < r->considered);
	assert_non_null(r->matches[0]->explanation); /* UNSPECIFIED = SUMMARY */
	assert_string_equal(r->matches[0]->candidate_id, LEAD);
	free_msg(r);

	/* Explain NONE: ids and scores only. FULL: improvements are there. */
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
	req.top_k = 3;
	assert_int_equal(call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(r->n_matches, 3);
	for (size_t i = 0; i < r->n_matches; i++)
		assert_null(r->matches[i]->explanation);
	free_msg(r);

	/* The largest top_k is accepted and returns every eligible posting. */
	req.top_k = 1000;
	req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	assert_int_equal(call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(r->n_matches, r->considered - r->vetoed);
	assert_ranked(r->matches, r->n_matches);
	free_msg(r);
}

static void
test_match_jobs_errors(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__JobFilters f = LUNAMATCH__V1__JOB_FILTERS__INIT;
	void *r = NULL;
	char msg[512];

	(void) state;
	/* No subject. */
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "candidate_id"));
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = "";
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_INVALID);

	/* Unknown candidate. */
	req.candidate_id = "cand-nobody";
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_NOT_FOUND);
	assert_non_null(strstr(msg, "cand-nobody"));

	/* top_k above the limit; unknown explain level. */
	req.candidate_id = LEAD;
	req.top_k = 1001;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "top_k"));
	req.top_k = 5;
	req.explain = (Lunamatch__V1__ExplainLevel) 99;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "explain"));
	req.explain = 0;

	/* A bad filter. */
	f.min_annual_salary = -5;
	req.filters = &f;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "filters.min_annual_salary"));

	/* A salary minimum up to the most a salary can come to is served
	 * (no posting pays that much); above it, the request is refused. */
	f.min_annual_salary = LM_SALARY_ANNUAL_MAX;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(((Lunamatch__V1__MatchJobsResponse *) r)->n_matches, 0);
	free_msg(r);
	r = NULL;
	f.min_annual_salary = 1e300;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "filters.min_annual_salary: 1e+300 is above "));
	f.min_annual_salary = 0;

	/* Employment types: a value of the enum is served, one outside it refused. */
	Lunamatch__V1__EmploymentType types[] = {
	    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_INTERNSHIP};
	f.n_employment_types = 1;
	f.employment_types = types;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_OK);
	free_msg(r);
	r = NULL;
	types[0] = (Lunamatch__V1__EmploymentType) 99;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_INVALID);
	assert_string_equal(
	    msg, "filters.employment_types[0]: unknown employment type 99");
}

static void
test_match_jobs_filters(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__JobFilters f = LUNAMATCH__V1__JOB_FILTERS__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	char *countries[] = {"GB"};
	char *exclude[] = {SEED_JOB};
	char msg[512];

	(void) state;
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	req.top_k = 1000;
	req.filters = &f;

	f.remote_only = true;
	assert_int_equal(call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	for (size_t i = 0; i < r->n_matches; i++) {
		JobPosting *p = NULL;
		assert_int_equal(
		    lm_index_get_posting(W.idx, r->matches[i]->job_id, &p), LM_OK);
		assert_int_equal(
		    p->remote, LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE);
		free_msg(p);
	}
	assert_true(r->vetoed > 0);
	free_msg(r);

	f.remote_only = false;
	f.n_countries = 1;
	f.countries = countries;
	f.n_exclude_ids = 1;
	f.exclude_ids = exclude;
	assert_int_equal(call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_false(has_job(r, SEED_JOB, r->n_matches));
	for (size_t i = 0; i < r->n_matches; i++) {
		JobPosting *p = NULL;
		bool gb = false;
		assert_int_equal(
		    lm_index_get_posting(W.idx, r->matches[i]->job_id, &p), LM_OK);
		for (size_t k = 0; k < p->n_locations; k++)
			gb |= strcmp(p->locations[k]->country, "GB") == 0;
		assert_true(gb);
		free_msg(p);
	}
	free_msg(r);
}

static void
test_match_jobs_inline(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL, *stored = NULL;
	CandidateProfile *c =
	    (CandidateProfile *) lmt_sample_get(LMT_SAMPLE_PROFILES, LEAD);
	char msg[512];

	(void) state;
	/* An inline profile needs no id or version; it is normalized like a
	 * stored one, so it ranks the same postings the same way. */
	free(c->id);
	c->id = (char *) protobuf_c_empty_string;
	c->version = 0;
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE;
	req.profile = c;
	req.top_k = 5;
	assert_int_equal(call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_true(has_job(r, SEED_JOB, 3));
	/* The request was not modified: skills still have no canonical id. */
	assert_string_equal(c->skills[0]->skill_id, "");

	Lunamatch__V1__MatchJobsRequest sreq = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	sreq.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	sreq.candidate_id = LEAD;
	sreq.top_k = 5;
	assert_int_equal(
	    call("MatchJobs", &sreq, (void **) &stored, msg, sizeof(msg)), ST_OK);
	assert_int_equal(r->n_matches, stored->n_matches);
	for (size_t i = 0; i < r->n_matches; i++) {
		assert_string_equal(r->matches[i]->job_id, stored->matches[i]->job_id);
		assert_true(
		    fabs(r->matches[i]->score - stored->matches[i]->score) < 1e-9);
	}
	free_msg(r);
	free_msg(stored);

	/* An invalid inline profile: the reason names the field. */
	free(c->locations[0]->country);
	c->locations[0]->country = strdup("ZZ9");
	assert_int_equal(
	    call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "profile: "));
	assert_non_null(strstr(msg, "country"));

	/* A profile subject without a profile. */
	req.profile = NULL;
	assert_int_equal(
	    call("MatchJobs", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);
	free_msg(c);
}

/* ---- MatchCandidates ------------------------------------------------------ */

static void
test_match_candidates(void **state)
{
	Lunamatch__V1__MatchCandidatesRequest req =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__CandidateFilters f = LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;
	Lunamatch__V1__MatchCandidatesResponse *r = NULL;
	char msg[512];
	bool lead = false;

	(void) state;
	req.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	req.job_id = SEED_JOB;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_true(r->n_matches > 0 && r->n_matches <= 10);
	assert_ranked(r->matches, r->n_matches);
	for (size_t i = 0; i < r->n_matches; i++) {
		lead |= strcmp(r->matches[i]->candidate_id, LEAD) == 0;
		/* The junior fails requirement groups: vetoed, never listed. */
		assert_string_not_equal(r->matches[i]->candidate_id, JUNIOR);
		assert_string_equal(r->matches[i]->job_id, SEED_JOB);
	}
	assert_true(lead);
	assert_int_equal(r->considered, W.nprofiles);
	free_msg(r);

	/* Filters: years of experience. */
	f.min_years_experience = 50;
	req.filters = &f;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(r->n_matches, 0);
	free_msg(r);
	f.min_years_experience = 0;

	/* Filters: an UNSPECIFIED employment type is refused, a real one
	 * served. */
	Lunamatch__V1__EmploymentType types[] = {
	    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_UNSPECIFIED};
	f.n_employment_types = 1;
	f.employment_types = types;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);
	assert_string_equal(msg, "filters.employment_types[0]: "
	                         "EMPLOYMENT_TYPE_UNSPECIFIED is not an employment type");
	types[0] = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	free_msg(r);
	req.filters = NULL;

	/* Errors. */
	req.job_id = "job-nothing";
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_NOT_FOUND);
	assert_non_null(strstr(msg, "job-nothing"));
	req.job_id = SEED_JOB;
	req.top_k = 5000;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);
	req.top_k = 0;
	req.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT__NOT_SET;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);

	/* Inline posting: valid, then invalid. */
	JobPosting *p = (JobPosting *) lmt_sample_get(LMT_SAMPLE_POSTINGS, SEED_JOB);
	req.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_POSTING;
	req.posting = p;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	lead = false;
	for (size_t i = 0; i < r->n_matches; i++)
		lead |= strcmp(r->matches[i]->candidate_id, LEAD) == 0;
	assert_true(lead);
	free_msg(r);
	free(p->title);
	p->title = (char *) protobuf_c_empty_string;
	assert_int_equal(
	    call("MatchCandidates", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "posting: "));
	assert_non_null(strstr(msg, "title"));
	free_msg(p);
}

/* ---- ExplainMatch ----------------------------------------------------------- */

static void
test_explain(void **state)
{
	Lunamatch__V1__ExplainMatchRequest req =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchResponse *r = NULL;
	char msg[512];
	bool group = false;

	(void) state;
	req.candidate_id = JUNIOR;
	req.job_id = SEED_JOB;
	assert_int_equal(
	    call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_false(r->eligible);
	assert_non_null(r->match);
	assert_true(r->match->score == 0.0);
	assert_non_null(r->match->explanation);
	for (size_t i = 0; i < r->match->explanation->n_vetoes; i++)
		group |= strcmp(r->match->explanation->vetoes[i]->code,
		             "REQUIREMENT_GROUP") == 0;
	assert_true(group);
	assert_true(r->match->explanation->n_failed_requirement_groups >= 3);
	free_msg(r);

	req.candidate_id = LEAD;
	assert_int_equal(
	    call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_true(r->eligible);
	assert_true(r->match->score > 0.5);
	assert_int_equal(r->match->explanation->n_vetoes, 0);
	assert_true(r->match->explanation->n_features > 0);
	assert_true(r->match->explanation->n_matched_skills > 0);
	free_msg(r);

	/* A closed posting is explained with its veto. */
	req.job_id = CLOSED_JOB;
	assert_int_equal(
	    call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_false(r->eligible);
	assert_string_equal(r->match->explanation->vetoes[0]->code, "POSTING_CLOSED");
	free_msg(r);

	/* NOT_FOUND says which side is missing. */
	req.job_id = "job-nothing";
	assert_int_equal(
	    call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg)), ST_NOT_FOUND);
	assert_non_null(strstr(msg, "posting \"job-nothing\""));
	req.candidate_id = "cand-nobody";
	req.job_id = SEED_JOB;
	assert_int_equal(
	    call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg)), ST_NOT_FOUND);
	assert_non_null(strstr(msg, "candidate \"cand-nobody\""));

	req.candidate_id = "";
	assert_int_equal(
	    call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);
	req.candidate_id = LEAD;
	req.job_id = "";
	assert_int_equal(
	    call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg)), ST_INVALID);
}

/* lm_index_set_fault: every decoding of a record's bytes fails. */
static int
fail_record_reads(void *arg, lm_index_alloc what)
{
	(void) arg;
	return what == LM_INDEX_ALLOC_RECORD ? LM_ENOMEM : LM_OK;
}

/* NOT_FOUND names the missing side from the index alone: a stored
 * candidate whose record cannot be decoded just then (memory, or a store
 * ahead of the index) is not reported missing when the posting is. */
static void
test_explain_not_found_names_the_missing_side(void **state)
{
	Lunamatch__V1__ExplainMatchRequest req =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchResponse *r = NULL;
	char msg[512];
	int st;

	(void) state;
	req.candidate_id = LEAD;
	req.job_id = "job-nothing";
	lm_index_set_fault(W.idx, fail_record_reads, NULL);
	st = call("ExplainMatch", &req, (void **) &r, msg, sizeof(msg));
	lm_index_set_fault(W.idx, NULL, NULL);
	assert_int_equal(st, ST_NOT_FOUND);
	assert_non_null(strstr(msg, "posting \"job-nothing\""));
	assert_null(strstr(msg, LEAD));
}

/* ---- GetPosting / GetProfile -------------------------------------------------- */

static void
test_get(void **state)
{
	Lunamatch__V1__GetPostingRequest pr = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	Lunamatch__V1__GetProfileRequest cr = LUNAMATCH__V1__GET_PROFILE_REQUEST__INIT;
	Lunamatch__V1__GetPostingResponse *p = NULL;
	Lunamatch__V1__GetProfileResponse *c = NULL;
	char msg[512];

	(void) state;
	pr.id = SEED_JOB;
	assert_int_equal(call("GetPosting", &pr, (void **) &p, msg, sizeof(msg)), ST_OK);
	assert_string_equal(p->posting->id, SEED_JOB);
	assert_string_equal(p->posting->company, "Discover Financial Services");
	/* Stored records are normalized: skills carry canonical ids. */
	assert_true(p->posting->skills[0]->skill_id[0] != '\0');
	free_msg(p);
	pr.id = "job-nothing";
	assert_int_equal(
	    call("GetPosting", &pr, (void **) &p, msg, sizeof(msg)), ST_NOT_FOUND);
	pr.id = "";
	assert_int_equal(
	    call("GetPosting", &pr, (void **) &p, msg, sizeof(msg)), ST_INVALID);

	cr.id = LEAD;
	assert_int_equal(call("GetProfile", &cr, (void **) &c, msg, sizeof(msg)), ST_OK);
	assert_string_equal(c->profile->id, LEAD);
	free_msg(c);
	cr.id = "cand-nobody";
	assert_int_equal(
	    call("GetProfile", &cr, (void **) &c, msg, sizeof(msg)), ST_NOT_FOUND);
	cr.id = "";
	assert_int_equal(
	    call("GetProfile", &cr, (void **) &c, msg, sizeof(msg)), ST_INVALID);
}

/* ---- Check, loading, draining, deadlines ---------------------------------------- */

static void
test_check(void **state)
{
	Lunamatch__V1__HealthCheckRequest req = LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *r = NULL;
	lm_index_counts counts;
	char msg[512];

	(void) state;
	lm_index_counts_get(W.idx, &counts);
	assert_int_equal(call("Check", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(
	    r->status, LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	assert_int_equal(r->postings, counts.open_postings);
	assert_true(r->postings < W.npostings); /* the closed one is not open */
	assert_int_equal(r->profiles, W.nprofiles);
	assert_int_equal(r->index_seq, 42);
	assert_string_equal(r->model_version, W.model->version);
	free_msg(r);

	req.service = LM_MATCH_SERVICE_NAME;
	assert_int_equal(call("Check", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(
	    r->status, LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	free_msg(r);

	req.service = "grpc.health.v1.Other";
	assert_int_equal(call("Check", &req, (void **) &r, msg, sizeof(msg)), ST_OK);
	assert_int_equal(r->status,
	    LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
	free_msg(r);
}

static void
test_loading(void **state)
{
	Lunamatch__V1__HealthCheckRequest hreq =
	    LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *h = NULL;
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__GetPostingRequest pr = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchRequest er =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	void *r = NULL;
	char msg[512];

	(void) state;
	lm_match_service_set_loaded(W.svc, false);
	assert_false(lm_match_service_serving(W.svc));
	assert_int_equal(call("Check", &hreq, (void **) &h, msg, sizeof(msg)), ST_OK);
	assert_int_equal(
	    h->status, LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
	free_msg(h);
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	assert_int_equal(call("MatchJobs", &req, &r, msg, sizeof(msg)), ST_UNAVAILABLE);
	pr.id = SEED_JOB;
	assert_int_equal(call("GetPosting", &pr, &r, msg, sizeof(msg)), ST_UNAVAILABLE);
	er.candidate_id = LEAD;
	er.job_id = SEED_JOB;
	assert_int_equal(call("ExplainMatch", &er, &r, msg, sizeof(msg)), ST_UNAVAILABLE);
	lm_match_service_set_loaded(W.svc, true);
	assert_int_equal(call("GetPosting", &pr, &r, msg, sizeof(msg)), ST_OK);
	free_msg(r);
}

static void
test_check_follows_server(void **state)
{
	Lunamatch__V1__HealthCheckRequest hreq =
	    LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *h = NULL;
	lm_rpc_server_opts so;
	lm_rpc_server *srv = NULL;
	const lm_rpc_method *methods;
	size_t n;
	char msg[512];

	(void) state;
	memset(&so, 0, sizeof(so));
	so.url = "tcp://127.0.0.1:0";
	so.workers = 1;
	so.contexts = 2;
	methods = lm_match_service_methods(&n);
	assert_int_equal(lm_rpc_server_new(&so, &lunamatch__v1__match_service__descriptor,
	                     methods, n, W.svc, &srv),
	    LM_OK);
	assert_int_equal(lm_rpc_server_start(srv), LM_OK);
	lm_match_service_set_server(W.svc, srv);
	assert_true(lm_match_service_serving(W.svc));
	/* Drain: the server reports NOT_SERVING, and so does Check. */
	assert_int_equal(lm_rpc_server_drain(srv, 1000), LM_OK);
	assert_false(lm_match_service_serving(W.svc));
	assert_int_equal(call("Check", &hreq, (void **) &h, msg, sizeof(msg)), ST_OK);
	assert_int_equal(
	    h->status, LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
	free_msg(h);
	lm_match_service_set_server(W.svc, NULL);
	lm_rpc_server_free(srv);
	assert_true(lm_match_service_serving(W.svc));
}

static void
test_deadline_passed(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	size_t n;
	const lm_rpc_method *m = lm_match_service_methods(&n);
	lm_rpc_ctx ctx = {"MatchJobs", "late", 1, NULL, 0}; /* long gone */
	ProtobufCMessage *out = NULL;
	char msg[256] = "";

	(void) state;
	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].name, "MatchJobs") == 0)
			assert_int_equal(
			    m[i].fn(W.svc, &ctx, &req.base, &out, msg, sizeof(msg)),
			    ST_DEADLINE);
	assert_null(out);
	assert_true(msg[0] != '\0');
}

static void
test_new_rejects_bad_options(void **state)
{
	lm_match_service_opts o;
	lm_match_service *s = (void *) 1;

	(void) state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(lm_match_service_new(&o, &s), LM_EINVAL);
	assert_null(s);
	o.index = W.idx; /* no taxonomy, no rates */
	assert_int_equal(lm_match_service_new(&o, &s), LM_EINVAL);
	assert_int_equal(lm_match_service_new(NULL, &s), LM_EINVAL);
	lm_match_service_free(NULL);
}

/* ---- as_of: reproducible answers ------------------------------------------- */

/* The wire form of a response (the caller frees it). */
static uint8_t *
packed(const void *m, size_t *len)
{
	uint8_t *b;

	*len = protobuf_c_message_get_packed_size(m);
	assert_non_null(b = malloc(*len + 1));
	assert_int_equal(protobuf_c_message_pack(m, b), *len);
	return b;
}

/* Calls method twice with req, the service clock a day apart, and asserts
 * that both answers are the same bytes; returns the first answer. */
static void *
twice_identical(const char *method, const void *req)
{
	void *r1 = NULL, *r2 = NULL;
	uint8_t *b1, *b2;
	size_t n1, n2;
	char msg[512];

	assert_int_equal(call(method, req, &r1, msg, sizeof(msg)), ST_OK);
	clock_now = SAMPLES_NOW + 86400;
	assert_int_equal(call(method, req, &r2, msg, sizeof(msg)), ST_OK);
	clock_now = SAMPLES_NOW;
	b1 = packed(r1, &n1);
	b2 = packed(r2, &n2);
	assert_true(n1 > 0);
	assert_int_equal(n1, n2);
	assert_memory_equal(b1, b2, n1);
	free(b1);
	free(b2);
	free_msg(r2);
	return r1;
}

/*
 * MatchJobs, MatchCandidates and ExplainMatch answer for the request's
 * as_of, not for the wall clock: the same store, model and as_of give the
 * same bytes even a day later, and every answer carries its as_of, model
 * version and index_seq. Without as_of the service clock is used; a
 * negative as_of, or one too far ahead of the clock, is refused.
 */
static void
test_as_of(void **state)
{
	Lunamatch__V1__MatchJobsRequest jr = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesRequest cr =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchRequest er =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *j, *j2;
	Lunamatch__V1__MatchCandidatesResponse *c;
	Lunamatch__V1__ExplainMatchResponse *e;
	const int64_t then = SAMPLES_NOW - 20 * 86400;
	char msg[512];

	(void) state;
	jr.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	jr.candidate_id = LEAD;
	jr.top_k = 20;
	jr.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	jr.as_of = then;
	j = twice_identical("MatchJobs", &jr);
	assert_int_equal(j->as_of, then);
	assert_int_equal(j->index_seq, 42);
	assert_string_equal(j->model_version, W.model->version);
	/* as_of is what freshness is judged at: 20 days earlier, the same
	 * postings are fresher, so the best score is higher. */
	jr.as_of = 0;
	assert_int_equal(call("MatchJobs", &jr, (void **) &j2, msg, sizeof(msg)), ST_OK);
	assert_int_equal(j2->as_of, SAMPLES_NOW);
	assert_true(j->matches[0]->score > j2->matches[0]->score);
	free_msg(j);
	free_msg(j2);

	cr.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	cr.job_id = SEED_JOB;
	cr.as_of = then;
	c = twice_identical("MatchCandidates", &cr);
	assert_int_equal(c->as_of, then);
	assert_int_equal(c->index_seq, 42);
	assert_string_equal(c->model_version, W.model->version);
	free_msg(c);

	er.candidate_id = LEAD;
	er.job_id = SEED_JOB;
	er.as_of = then;
	e = twice_identical("ExplainMatch", &er);
	assert_int_equal(e->as_of, then);
	assert_int_equal(e->index_seq, 42);
	assert_string_equal(e->model_version, W.model->version);
	free_msg(e);

	jr.as_of = -1;
	assert_int_equal(
	    call("MatchJobs", &jr, (void **) &j, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "as_of"));
	jr.as_of = SAMPLES_NOW + LM_MATCH_AS_OF_SKEW_MAX + 1;
	assert_int_equal(
	    call("MatchJobs", &jr, (void **) &j, msg, sizeof(msg)), ST_INVALID);
	assert_non_null(strstr(msg, "after the service's clock"));
	er.as_of = -5;
	assert_int_equal(
	    call("ExplainMatch", &er, (void **) &e, msg, sizeof(msg)), ST_INVALID);
	/* A clock before 1970 and the largest as_of: refused, not taken as a
	 * time before the clock (as_of - now overflowed). */
	clock_now = -5;
	jr.as_of = INT64_MAX;
	assert_int_equal(
	    call("MatchJobs", &jr, (void **) &j, msg, sizeof(msg)), ST_INVALID);
	clock_now = SAMPLES_NOW;
}

/* ExplainMatch shows the posting's compliance warnings, as stored. */
static void
test_explain_compliance_warnings(void **state)
{
	Lunamatch__V1__ExplainMatchRequest er =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchResponse *e = NULL;
	Lunamatch__V1__JobPosting *p = NULL;
	Lunamatch__V1__ComplianceWarning *w;
	char msg[512];

	(void) state;
	/* A stored posting, flagged as ingest flags it. */
	assert_int_equal(lm_index_get_posting(W.idx, SEED_JOB, &p), LM_OK);
	free(p->id);
	p->id = strdup("job-flagged");
	assert_non_null(w = malloc(sizeof(*w)));
	lunamatch__v1__compliance_warning__init(w);
	w->rule = strdup("age-recent-graduate");
	w->category = strdup("age");
	w->phrase = strdup("Recent graduate");
	w->field = strdup("skills[3].name");
	w->reason = strdup("asks for an age group");
	w->removed = true;
	p->n_compliance_warnings = 1;
	p->compliance_warnings = malloc(sizeof(*p->compliance_warnings));
	assert_non_null(p->compliance_warnings);
	p->compliance_warnings[0] = w;
	assert_int_equal(lm_index_put_posting(W.idx, p, 0), LM_OK);

	er.candidate_id = LEAD;
	er.job_id = "job-flagged";
	assert_int_equal(
	    call("ExplainMatch", &er, (void **) &e, msg, sizeof(msg)), ST_OK);
	assert_int_equal(e->n_compliance_warnings, 1);
	assert_string_equal(e->compliance_warnings[0]->rule, "age-recent-graduate");
	assert_string_equal(e->compliance_warnings[0]->category, "age");
	assert_string_equal(e->compliance_warnings[0]->phrase, "Recent graduate");
	assert_string_equal(e->compliance_warnings[0]->field, "skills[3].name");
	assert_true(e->compliance_warnings[0]->removed);
	free_msg(e);
	/* An unflagged posting has none. */
	er.job_id = SEED_JOB;
	assert_int_equal(
	    call("ExplainMatch", &er, (void **) &e, msg, sizeof(msg)), ST_OK);
	assert_int_equal(e->n_compliance_warnings, 0);
	free_msg(e);
	assert_int_equal(lm_index_remove_posting(W.idx, "job-flagged", 0), LM_OK);
}

/* ---- the decision log ---------------------------------------------------------- */

#define DECISIONS_TOPIC "test.decisions"
#define READ_MS         20000

#ifndef UNDER_TSAN
/* Reads up to want decisions from partition 0 of the topic (at most
 * READ_MS); returns how many came. */
static size_t
read_decisions(const char *brokers, Lunamatch__V1__Decision **v, size_t want)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_t *c;
	char err[256];
	int64_t end = lm_clock_ms() + READ_MS;
	size_t n = 0;

	assert_int_equal(
	    lm_kafka_conf(brokers, "test-reader", &conf, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_set(conf, "group.id", "test-reader", err, sizeof(err)), LM_OK);
	assert_non_null(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)));
	parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, DECISIONS_TOPIC, 0)->offset =
	    RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(c, parts), 0);
	rd_kafka_topic_partition_list_destroy(parts);
	while (n < want && lm_clock_ms() < end) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
			assert_non_null(v[n++] = lunamatch__v1__decision__unpack(
			                    NULL, m->len, m->payload));
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	return n;
}

/* A service over the test's index with decision log d. */
static lm_match_service *
service_with(lm_decisions *d)
{
	lm_match_service_opts o;
	lm_match_service *svc = NULL;

	memset(&o, 0, sizeof(o));
	o.index = W.idx;
	o.record_ctx = W.recs.ctx;
	o.clock = fixed_clock;
	o.decisions = d;
	assert_int_equal(lm_match_service_new(&o, &svc), LM_OK);
	lm_match_service_set_loaded(svc, true);
	return svc;
}

/* A decision log on a mock cluster of its own, started. */
struct dlog {
	rd_kafka_t *mock_rk;
	rd_kafka_mock_cluster_t *mock;
	char *dir;
	lm_decisions_opts o;
	lm_decisions *d;
};

/* The same, its counters in metrics (may be NULL) and its queue at most
 * max_queue bytes (0: the default). */
static void
dlog_start_opts(struct dlog *l, const char *name, lm_metrics *metrics, uint64_t max_queue)
{
	rd_kafka_conf_t *conf = NULL;
	char err[256];

	memset(l, 0, sizeof(*l));
	l->o.max_queue_bytes = max_queue;
	assert_int_equal(
	    lm_kafka_conf(NULL, "test-mock", &conf, err, sizeof(err)), LM_OK);
	assert_non_null(
	    l->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
	assert_non_null(l->mock = rd_kafka_mock_cluster_new(l->mock_rk, 1));
	assert_int_equal(rd_kafka_mock_topic_create(l->mock, DECISIONS_TOPIC, 1, 1), 0);
	l->dir = lmt_tmpdir(name);
	l->o.brokers = rd_kafka_mock_cluster_bootstraps(l->mock);
	l->o.topic = DECISIONS_TOPIC;
	l->o.data_dir = l->dir;
	l->o.replica = "test-replica";
	l->o.message_timeout_ms = 3000;
	l->o.metrics = metrics;
	assert_int_equal(lm_decisions_new(&l->o, &l->d), LM_OK);
	assert_int_equal(lm_decisions_start(l->d), LM_OK);
}

static void
dlog_start_with(struct dlog *l, const char *name, lm_metrics *metrics)
{
	dlog_start_opts(l, name, metrics, 0);
}

static void
dlog_start(struct dlog *l, const char *name)
{
	dlog_start_with(l, name, NULL);
}

static void
dlog_start_sized(struct dlog *l, const char *name, uint64_t max_queue)
{
	dlog_start_opts(l, name, NULL, max_queue);
}

static void
dlog_stop(struct dlog *l)
{
	lm_decisions_free(l->d);
	rd_kafka_mock_cluster_destroy(l->mock);
	rd_kafka_destroy(l->mock_rk);
	lmt_rmtree(l->dir);
	free(l->dir);
}

#endif /* UNDER_TSAN */

/*
 * Every MatchJobs and MatchCandidates answer is logged as a Decision before
 * it is given (request id, the caller's "caller" metadata, subject, as_of,
 * model, index_seq, top_k, filters, results, counts); when the decision
 * cannot be logged (here: a log that was never started) the answer is
 * refused with UNAVAILABLE and no results.
 */
static void
test_decision_log(void **state)
{
#ifdef UNDER_TSAN
	(void) state;
	skip();
#else
	struct dlog l;
	char msg[512], *dir2;
	lm_decisions *stopped = NULL;
	lm_decisions_opts o;
	lm_match_service *svc, *refusing;
	Lunamatch__V1__MetadataEntry caller = LUNAMATCH__V1__METADATA_ENTRY__INIT;
	const Lunamatch__V1__MetadataEntry *md[] = {&caller};
	lm_rpc_ctx ctx = {NULL, "req-7", 0, md, 1};
	Lunamatch__V1__MatchJobsRequest jr = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesRequest cr =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	Lunamatch__V1__MatchJobsResponse *j = NULL;
	Lunamatch__V1__MatchCandidatesResponse *c = NULL;
	Lunamatch__V1__Decision *v[2] = {NULL, NULL};

	(void) state;
	dlog_start(&l, "svc-decisions");
	o = l.o;
	svc = service_with(l.d);
	dir2 = lmt_tmpdir("svc-decisions-stopped");

	caller.key = "caller";
	caller.value = "recruiter-7";
	jr.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	jr.candidate_id = LEAD;
	jr.top_k = 3;
	jr.as_of = SAMPLES_NOW - 60;
	jf.min_annual_salary = 1000;
	jr.filters = &jf;
	assert_int_equal(
	    call_with(svc, ctx, "MatchJobs", &jr, (void **) &j, msg, sizeof(msg)), ST_OK);
	cr.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	cr.job_id = SEED_JOB;
	ctx.n_metadata = 0; /* no caller given */
	ctx.request_id = "req-8";
	assert_int_equal(
	    call_with(svc, ctx, "MatchCandidates", &cr, (void **) &c, msg, sizeof(msg)),
	    ST_OK);

	assert_int_equal(read_decisions(o.brokers, v, 2), 2);
	assert_string_equal(v[0]->method, "MatchJobs");
	assert_string_equal(v[0]->request_id, "req-7");
	assert_string_equal(v[0]->caller, "recruiter-7");
	assert_string_equal(v[0]->subject_id, LEAD);
	assert_int_equal(v[0]->as_of, SAMPLES_NOW - 60);
	assert_string_equal(v[0]->model_version, W.model->version);
	assert_int_equal(v[0]->index_seq, 42);
	assert_int_equal(v[0]->top_k, 3);
	assert_non_null(v[0]->job_filters);
	assert_float_equal(v[0]->job_filters->min_annual_salary, 1000, 0);
	assert_null(v[0]->candidate_filters);
	assert_int_equal(v[0]->n_results, j->n_matches);
	for (size_t i = 0; i < j->n_matches; i++) {
		assert_string_equal(v[0]->results[i]->id, j->matches[i]->job_id);
		assert_true(v[0]->results[i]->score == j->matches[i]->score);
		assert_int_equal(v[0]->results[i]->rank, i + 1);
	}
	assert_int_equal(v[0]->considered, j->considered);
	assert_int_equal(v[0]->vetoed, j->vetoed);
	assert_string_equal(v[0]->replica, "test-replica");
	assert_int_equal(strlen(v[0]->decision_id), LM_DECISIONS_ID_LEN);

	assert_string_equal(v[1]->method, "MatchCandidates");
	assert_string_equal(v[1]->request_id, "req-8");
	assert_string_equal(v[1]->caller, "");
	assert_string_equal(v[1]->subject_id, SEED_JOB);
	assert_int_equal(v[1]->as_of, SAMPLES_NOW);
	assert_int_equal(v[1]->top_k, 0);
	assert_int_equal(v[1]->n_results, c->n_matches);
	assert_true(c->n_matches > 0);
	assert_string_equal(v[1]->results[0]->id, c->matches[0]->candidate_id);
	for (int i = 0; i < 2; i++)
		lunamatch__v1__decision__free_unpacked(v[i], NULL);
	free_msg(j);
	free_msg(c);

	/* With the broker away, nothing leaves the queue: each answer is given
	 * only once its decision is in the durable queue. */
	for (int64_t end = lm_clock_ms() + READ_MS;
	     lm_decisions_pending(l.d) != 0 && lm_clock_ms() < end;)
		lmt_sleep_ms(10);
	assert_int_equal(lm_decisions_pending(l.d), 0);
	assert_int_equal(rd_kafka_mock_broker_set_down(l.mock, 1), 0);
	for (uint64_t i = 1; i <= 3; i++) {
		j = NULL;
		assert_int_equal(
		    call_with(svc, ctx, "MatchJobs", &jr, (void **) &j, msg, sizeof(msg)),
		    ST_OK);
		assert_true(lm_decisions_pending(l.d) >= i);
		free_msg(j);
	}
	assert_int_equal(rd_kafka_mock_broker_set_up(l.mock, 1), 0);

	/* A log that cannot take the decision: the answer is refused. */
	o.data_dir = dir2;
	assert_int_equal(lm_decisions_new(&o, &stopped), LM_OK);
	refusing = service_with(stopped);
	j = NULL;
	assert_int_equal(
	    call_with(refusing, ctx, "MatchJobs", &jr, (void **) &j, msg, sizeof(msg)),
	    ST_UNAVAILABLE);
	assert_null(j);
	assert_non_null(strstr(msg, "decision log unavailable: "));
	assert_int_equal(call_with(refusing, ctx, "MatchCandidates", &cr, (void **) &c,
	                     msg, sizeof(msg)),
	    ST_UNAVAILABLE);

	lm_match_service_free(refusing);
	lm_match_service_free(svc);
	lm_decisions_free(stopped);
	dlog_stop(&l);
	lmt_rmtree(dir2);
	free(dir2);
#endif
}

#ifndef UNDER_TSAN
/* The status Check of svc answers. */
static int
check_status(lm_match_service *svc)
{
	Lunamatch__V1__HealthCheckRequest req = LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *r = NULL;
	char msg[512];
	int status;

	assert_int_equal(call_with(svc, (lm_rpc_ctx){0}, "Check", &req, (void **) &r, msg,
	                     sizeof(msg)),
	    ST_OK);
	status = (int) r->status;
	free_msg(r);
	return status;
}
#endif

/*
 * Check answers NOT_SERVING while the decision log's writes fail (its
 * queue is full with the broker away; MatchJobs is refused meanwhile, as
 * /readyz says), and SERVING again once the queue has drained.
 */
static void
test_check_decision_log_failing(void **state)
{
#ifdef UNDER_TSAN
	(void) state;
	skip();
#else
	struct dlog l;
	char *big = malloc(LM_DECISIONS_BYTES_MAX / 2 + 1);
	Lunamatch__V1__Decision rec = LUNAMATCH__V1__DECISION__INIT;
	lm_match_service *svc;
	int rc = LM_OK, n = 0;

	(void) state;
	assert_non_null(big);
	memset(big, 'x', LM_DECISIONS_BYTES_MAX / 2);
	big[LM_DECISIONS_BYTES_MAX / 2] = '\0';
	memset(&l, 0, sizeof(l));
	dlog_start_sized(&l, "svc-check-dlog", LM_DQUEUE_MAP_SIZE);
	svc = service_with(l.d);
	assert_int_equal(check_status(svc),
	    LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);

	assert_int_equal(rd_kafka_mock_broker_set_down(l.mock, 1), 0);
	rec.method = "MatchJobs";
	rec.subject_id = "cand-full";
	rec.request_id = big;
	while (n < 1000 && (rc = lm_decisions_log(l.d, &rec, NULL)) == LM_OK)
		n++;
	assert_int_equal(rc, LM_EMAPFULL);
	assert_false(lm_decisions_healthy(l.d));
	assert_int_equal(check_status(svc),
	    LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);

	assert_int_equal(rd_kafka_mock_broker_set_up(l.mock, 1), 0);
	for (int64_t end = lm_clock_ms() + READ_MS;
	     (lm_decisions_pending(l.d) != 0 || !lm_decisions_healthy(l.d)) &&
	     lm_clock_ms() < end;)
		lmt_sleep_ms(10);
	assert_int_equal(check_status(svc),
	    LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	lm_match_service_free(svc);
	dlog_stop(&l);
	free(big);
#endif
}

/*
 * Fields of the filters that this version does not know (a newer client's)
 * are not logged: they had no effect on the answer, and the request's
 * size limit alone would let them push the decision past the log's record
 * limit, refusing a valid answer with UNAVAILABLE after its query ran.
 * Here each filter carries 300 KB of an unknown field, more than the log
 * takes (LM_DECISIONS_BYTES_MAX); the answers are given and their
 * decisions hold the known filters only.
 */
static void
test_decision_log_unknown_filter_fields(void **state)
{
#ifdef UNDER_TSAN
	(void) state;
	skip();
#else
	enum { BIG = 300 * 1000 };
	struct dlog l;
	char msg[512];
	uint8_t *blob;
	ProtobufCMessageUnknownField uf = {
	    99, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, BIG, NULL};
	lm_rpc_ctx ctx = {NULL, "req-u", 0, NULL, 0};
	lm_match_service *svc;
	Lunamatch__V1__MatchJobsRequest jr = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesRequest cr =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__JobFilters jf = LUNAMATCH__V1__JOB_FILTERS__INIT;
	Lunamatch__V1__CandidateFilters cf = LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;
	Lunamatch__V1__MatchJobsResponse *j = NULL;
	Lunamatch__V1__MatchCandidatesResponse *c = NULL;
	Lunamatch__V1__Decision *v[2] = {NULL, NULL};

	(void) state;
	_Static_assert(BIG > LM_DECISIONS_BYTES_MAX, "the field must overflow the log");
	assert_non_null(blob = calloc(1, BIG));
	uf.data = blob;
	dlog_start(&l, "svc-decisions-unknown");
	svc = service_with(l.d);

	jf.min_annual_salary = 1000;
	jf.base.n_unknown_fields = 1;
	jf.base.unknown_fields = &uf;
	jr.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	jr.candidate_id = LEAD;
	jr.filters = &jf;
	assert_int_equal(
	    call_with(svc, ctx, "MatchJobs", &jr, (void **) &j, msg, sizeof(msg)), ST_OK);
	assert_true(j->n_matches > 0);
	cf.min_years_experience = 0.5f;
	cf.base.n_unknown_fields = 1;
	cf.base.unknown_fields = &uf;
	cr.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	cr.job_id = SEED_JOB;
	cr.filters = &cf;
	assert_int_equal(
	    call_with(svc, ctx, "MatchCandidates", &cr, (void **) &c, msg, sizeof(msg)),
	    ST_OK);

	assert_int_equal(read_decisions(l.o.brokers, v, 2), 2);
	assert_non_null(v[0]->job_filters);
	assert_float_equal(v[0]->job_filters->min_annual_salary, 1000, 0);
	assert_int_equal(v[0]->job_filters->base.n_unknown_fields, 0);
	assert_int_equal(v[0]->n_results, j->n_matches);
	assert_non_null(v[1]->candidate_filters);
	assert_float_equal(v[1]->candidate_filters->min_years_experience, 0.5, 0);
	assert_int_equal(v[1]->candidate_filters->base.n_unknown_fields, 0);
	assert_int_equal(v[1]->n_results, c->n_matches);
	/* The request's own filters are left as they came. */
	assert_int_equal(jf.base.n_unknown_fields, 1);
	assert_int_equal(cf.base.n_unknown_fields, 1);
	for (int i = 0; i < 2; i++)
		lunamatch__v1__decision__free_unpacked(v[i], NULL);
	free_msg(j);
	free_msg(c);
	lm_match_service_free(svc);
	dlog_stop(&l);
	free(blob);
#endif
}

/*
 * An answer refused because its decision could not be built for want of
 * memory (the failure injected through the service's failure point, in
 * the real code path) is counted with the other refusals in
 * lunamatch_decisions_log_errors_total: the caller's UNAVAILABLE has a
 * metric behind it. The next answer is logged as usual.
 */
static void
test_decision_nomem_counted(void **state)
{
#ifdef UNDER_TSAN
	(void) state;
	skip();
#else
	struct dlog l;
	char msg[512], *text = NULL;
	size_t len = 0;
	lm_metrics *m = NULL;
	lm_match_service *svc;
	lm_rpc_ctx ctx = {NULL, "req-n", 0, NULL, 0};
	Lunamatch__V1__MatchJobsRequest jr = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *j = NULL;

	(void) state;
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	dlog_start_with(&l, "svc-decisions-nomem", m);
	svc = service_with(l.d);
	jr.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	jr.candidate_id = LEAD;

	lm_match_service_fail_decision_allocs(svc, 1);
	assert_int_equal(
	    call_with(svc, ctx, "MatchJobs", &jr, (void **) &j, msg, sizeof(msg)),
	    ST_UNAVAILABLE);
	assert_null(j);
	assert_non_null(strstr(msg, "decision log unavailable: "));
	assert_int_equal(lm_metrics_render(m, &text, &len), LM_OK);
	assert_non_null(strstr(text, "lunamatch_decisions_log_errors_total 1\n"));
	assert_non_null(strstr(text, "lunamatch_decisions_logged_total 0\n"));
	free(text);

	assert_int_equal(
	    call_with(svc, ctx, "MatchJobs", &jr, (void **) &j, msg, sizeof(msg)), ST_OK);
	free_msg(j);
	assert_int_equal(lm_metrics_render(m, &text, &len), LM_OK);
	assert_non_null(strstr(text, "lunamatch_decisions_log_errors_total 1\n"));
	assert_non_null(strstr(text, "lunamatch_decisions_logged_total 1\n"));
	free(text);

	lm_match_service_free(svc);
	dlog_stop(&l);
	lm_metrics_free(m);
#endif
}

/* ---- damaged stored records ----------------------------------------------- */

#define ST_DATA_LOSS LUNAMATCH__V1__STATUS_CODE__DATA_LOSS

/* A store in its own directory, filled with the sample records that prepare
 * cleanly, and a service over an index that reads its records from it, as
 * the match service runs (loaded by a real follower). */
struct stored_world {
	char *dir;
	lm_store *store;
	lm_index *idx;
	lm_match_service *svc;
};

static void
store_record(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	lm_store *store = arg;
	lm_store_txn *t = NULL;
	lm_reject why;
	char err[512];
	uint8_t *buf = NULL;
	size_t n = 0;
	bool posting = m->descriptor == &lunamatch__v1__job_posting__descriptor;
	(void) no;
	(void) line;
	(void) len;

	if (lmt_record_prepare(&W.recs.ctx, m, &why, err, sizeof(err)) == LM_OK) {
		assert_int_equal(lm_pb_encode(m, &buf, &n), LM_OK);
		assert_int_equal(lm_store_begin(store, &t), LM_OK);
		assert_int_equal(
		    lm_store_put(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE,
		        posting ? ((JobPosting *) m)->id : ((CandidateProfile *) m)->id,
		        1, buf, n),
		    LM_OK);
		assert_int_equal(lm_store_commit(t, NULL), LM_OK);
		free(buf);
	}
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
stored_world_open(struct stored_world *sw)
{
	lm_follower_opts fo;
	lm_follower *f = NULL;
	lm_match_service_opts o;

	memset(sw, 0, sizeof(*sw));
	sw->dir = lmt_tmpdir("service-damaged");
	assert_int_equal(lm_store_open(sw->dir, NULL, &sw->store), LM_OK);
	lmt_jsonl_foreach(LMT_SAMPLE_POSTINGS, lmt_sample_descriptor(LMT_SAMPLE_POSTINGS),
	    store_record, sw->store);
	lmt_jsonl_foreach(LMT_SAMPLE_PROFILES, lmt_sample_descriptor(LMT_SAMPLE_PROFILES),
	    store_record, sw->store);
	assert_int_equal(lm_index_new(W.model, &sw->idx), LM_OK);
	assert_int_equal(lm_index_set_store(sw->idx, sw->store), LM_OK);
	memset(&fo, 0, sizeof(fo));
	fo.store = sw->store;
	fo.index = sw->idx;
	assert_int_equal(lm_follower_new(&fo, &f), LM_OK);
	assert_int_equal(lm_follower_run_once(f), LM_OK);
	lm_follower_free(f);
	memset(&o, 0, sizeof(o));
	o.index = sw->idx;
	o.record_ctx = W.recs.ctx;
	o.clock = fixed_clock;
	assert_int_equal(lm_match_service_new(&o, &sw->svc), LM_OK);
	lm_match_service_set_loaded(sw->svc, true);
}

static void
stored_world_close(struct stored_world *sw)
{
	lm_match_service_free(sw->svc);
	lm_index_free(sw->idx);
	lm_store_close(sw->store);
	lmt_rmtree(sw->dir);
	free(sw->dir);
}

/* LEAD's MatchJobs answer of top_k from svc as "id;id;...". */
static int
lead_jobs(lm_match_service *svc, uint32_t top_k, Lunamatch__V1__ExplainLevel level,
    char *ids, size_t len, char *msg, size_t msglen)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	lm_rpc_ctx ctx = {"MatchJobs", "test", 0, NULL, 0};
	size_t at = 0;
	int st;

	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = LEAD;
	req.top_k = top_k;
	req.explain = level;
	ids[0] = '\0';
	st = call_with(svc, ctx, "MatchJobs", &req, (void **) &r, msg, msglen);
	if (st != ST_OK)
		return st;
	assert_ranked(r->matches, r->n_matches);
	for (size_t i = 0; i < r->n_matches && at < len; i++)
		at += (size_t) snprintf(ids + at, len - at, "%s;", r->matches[i]->job_id);
	free_msg(r);
	return st;
}

/* ids (of lead_jobs) without the entry for id. */
static void
without(char *ids, const char *id)
{
	char pat[128];
	char *p;

	snprintf(pat, sizeof(pat), "%s;", id);
	assert_non_null(p = strstr(ids, pat));
	memmove(p, p + strlen(pat), strlen(p + strlen(pat)) + 1);
}

/*
 * A posting's stored value is damaged after the index took it (its value
 * rewritten in LMDB behind the store's back): a MatchJobs answer that
 * ranks it leaves it out, counted, and is still the exact top-k of the
 * other postings, at every explain level. What cannot be answered without
 * its record (MatchCandidates for it, ExplainMatch of a pair with it,
 * GetPosting) fails with DATA_LOSS naming it. Before, every one of these
 * failed with INTERNAL "out of memory" (or "record store failure").
 */
static void
damaged_posting(bool header)
{
	static const Lunamatch__V1__ExplainLevel levels[] = {
	    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE,
	    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY,
	    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL};
	struct stored_world sw;
	char before[4096], after[4096], msg[512];
	lm_index_counts counts;
	void *r = NULL;

	stored_world_open(&sw);
	assert_int_equal(
	    lead_jobs(sw.svc, 6, LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE, before,
	        sizeof(before), msg, sizeof(msg)),
	    ST_OK);
	assert_non_null(strstr(before, SEED_JOB ";"));
	without(before, SEED_JOB);
	lmt_store_damage(sw.dir, true, SEED_JOB, header);

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		assert_int_equal(lead_jobs(sw.svc, 5, levels[i], after, sizeof(after),
		                     msg, sizeof(msg)),
		    ST_OK);
		assert_string_equal(after, before);
	}
	lm_index_counts_get(sw.idx, &counts);
	assert_int_equal(counts.damaged, 3);

	Lunamatch__V1__MatchCandidatesRequest mc =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	mc.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	mc.job_id = SEED_JOB;
	lm_rpc_ctx ctx = {"MatchCandidates", "test", 0, NULL, 0};
	assert_int_equal(
	    call_with(sw.svc, ctx, "MatchCandidates", &mc, &r, msg, sizeof(msg)),
	    ST_DATA_LOSS);
	assert_non_null(strstr(msg, SEED_JOB));
	assert_non_null(strstr(msg, "damaged"));

	Lunamatch__V1__ExplainMatchRequest ex =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	ex.candidate_id = LEAD;
	ex.job_id = SEED_JOB;
	ctx.method = "ExplainMatch";
	assert_int_equal(
	    call_with(sw.svc, ctx, "ExplainMatch", &ex, &r, msg, sizeof(msg)),
	    ST_DATA_LOSS);
	/* It names the damaged record alone (it said "one of them"). */
	assert_non_null(strstr(msg, "the stored posting \"" SEED_JOB "\" is damaged"));
	assert_null(strstr(msg, LEAD));

	Lunamatch__V1__GetPostingRequest gp = LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
	gp.id = SEED_JOB;
	ctx.method = "GetPosting";
	assert_int_equal(call_with(sw.svc, ctx, "GetPosting", &gp, &r, msg, sizeof(msg)),
	    ST_DATA_LOSS);
	assert_non_null(strstr(msg, SEED_JOB));
	assert_non_null(strstr(msg, "damaged"));
	lm_index_counts_get(sw.idx, &counts);
	assert_int_equal(counts.damaged, 6);

	stored_world_close(&sw);
}

static void
test_damaged_header(void **state)
{
	(void) state;
	damaged_posting(true);
}

static void
test_damaged_bytes(void **state)
{
	(void) state;
	damaged_posting(false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_jobs_stored),
	    cmocka_unit_test(test_match_jobs_errors),
	    cmocka_unit_test(test_match_jobs_filters),
	    cmocka_unit_test(test_match_jobs_inline),
	    cmocka_unit_test(test_match_candidates),
	    cmocka_unit_test(test_explain),
	    cmocka_unit_test(test_explain_not_found_names_the_missing_side),
	    cmocka_unit_test(test_get),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_check_decision_log_failing),
	    cmocka_unit_test(test_loading),
	    cmocka_unit_test(test_check_follows_server),
	    cmocka_unit_test(test_deadline_passed),
	    cmocka_unit_test(test_new_rejects_bad_options),
	    cmocka_unit_test(test_as_of),
	    cmocka_unit_test(test_explain_compliance_warnings),
	    cmocka_unit_test(test_decision_log),
	    cmocka_unit_test(test_decision_log_unknown_filter_fields),
	    cmocka_unit_test(test_decision_nomem_counted),
	    cmocka_unit_test(test_damaged_header),
	    cmocka_unit_test(test_damaged_bytes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
