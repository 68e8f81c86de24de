/*
 * test_service.c - the MatchService handlers over a real index built from
 * the sample postings and profiles (data/samples), normalized with the real
 * taxonomy and rate table, and scored with the default model.
 *
 * Handlers are called through the method table, as the RPC server calls
 * them; one test also attaches a real RPC server to check that Check follows
 * its serving state. The clock is fixed at the samples' reference time plus
 * one hour, so that results do not depend on the day the test runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "index.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/record.h"
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

static int64_t
fixed_clock(void *arg)
{
	(void) arg;
	return SAMPLES_NOW;
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
		assert_int_equal(lm_index_put_posting(W.idx, (JobPosting *) m), LM_OK);
	else
		assert_int_equal(
		    lm_index_put_profile(W.idx, (CandidateProfile *) m), LM_OK);
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

/* Calls method through the handler table, as the RPC server does. */
static int
call(const char *method, const void *req, void **resp, char *msg, size_t msglen)
{
	size_t n;
	const lm_rpc_method *m = lm_match_service_methods(&n);
	lm_rpc_ctx ctx = {method, "test", (uint64_t) nng_clock() + 60000, NULL, 0};
	ProtobufCMessage *out = NULL;

	msg[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (strcmp(m[i].name, method) == 0) {
			int st = m[i].fn(W.svc, &ctx, req, &out, msg, msglen);
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
	    cmocka_unit_test(test_get),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_loading),
	    cmocka_unit_test(test_check_follows_server),
	    cmocka_unit_test(test_deadline_passed),
	    cmocka_unit_test(test_new_rejects_bad_options),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
