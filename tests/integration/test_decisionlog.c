/*
 * test_decisionlog.c - the decision log through the real service: a
 * MatchJobs and a MatchCandidates answer given by lunamatch-match over the
 * wire each appear on the decisions topic of the embedded broker as a
 * lunamatch.v1.Decision that says what the answer said (subject, caller,
 * results and ranks, model version, index position, as_of), and the
 * service counts them. The same again with LUNAMATCH_DECISION_LOG_SYNC_MS
 * set, which the service announces in its log.
 */
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/client.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/v1/decisions.pb-c.h"
#include "matchsvc.h"
#include "svctest.h"

#define TOPIC    "lunamatch.decisions.v1" /* the service's default */
#define WAIT_MS  30000
#define CALLER   "test-frontend"
#define MAX_READ 64

static lmt_matchsvc S;
static lm_client *C;

static int
setup(void **state)
{
	lm_client_opts o = {.caller = CALLER};
	(void) state;

	lmt_matchsvc_start(&S, "decisionlog");
	lmt_matchsvc_load_samples(&S, NULL, NULL);
	assert_int_equal(lm_client_open(S.rpc_url, &o, &C), LM_OK);
	/* Wait until the samples are indexed. */
	int64_t end = lm_clock_ms() + WAIT_MS;
	for (;;) {
		Lunamatch__V1__HealthCheckRequest req =
		    LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
		Lunamatch__V1__HealthCheckResponse *resp = NULL;
		int st = -1;
		bool done =
		    lm_client_check(C, &req, 2000, &resp, &st, NULL, 0) == LM_OK &&
		    st == 0 && resp->profiles > 0 && resp->postings > 0;
		if (resp != NULL)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		if (done)
			break;
		assert_true(lm_clock_ms() < end);
		lmt_sleep_ms(100);
	}
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lm_client_close(C);
	lmt_matchsvc_stop(&S);
	return 0;
}

/* Reads the decisions topic until a decision of subject_id appears (or
 * WAIT_MS); the caller frees it. */
static Lunamatch__V1__Decision *
find_decision(const char *method, const char *subject_id)
{
	static int serial;
	char group[64];
	Lunamatch__V1__Decision *found = NULL;
	int64_t from[1] = {RD_KAFKA_OFFSET_BEGINNING};

	snprintf(group, sizeof(group), "lmtest-decisions-%d", serial++);
	rd_kafka_t *c =
	    lmt_kafka_consumer(S.broker.brokers, "lmtest-decisions", group, NULL);
	lmt_kafka_assign(c, TOPIC, 1, from);
	for (int64_t end = lm_clock_ms() + WAIT_MS;
	     found == NULL && lm_clock_ms() < end;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			Lunamatch__V1__Decision *d =
			    lunamatch__v1__decision__unpack(NULL, m->len, m->payload);
			assert_non_null(d);
			assert_int_equal(m->key_len, strlen(d->subject_id));
			if (strcmp(d->subject_id, subject_id) == 0 &&
			    strcmp(d->method, method) == 0)
				found = d;
			else
				lunamatch__v1__decision__free_unpacked(d, NULL);
		}
		rd_kafka_message_destroy(m);
	}
	lmt_kafka_consumer_free(c);
	if (found == NULL)
		fail_msg("no %s decision of %s on %s (log: %s)", method, subject_id,
		    TOPIC, S.log);
	return found;
}

/* The decision carries the answer's matches in order. */
static void
assert_results(const Lunamatch__V1__Decision *d, Lunamatch__V1__Match *const *ms,
    size_t n, bool jobs)
{
	assert_int_equal(d->n_results, n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(
		    d->results[i]->id, jobs ? ms[i]->job_id : ms[i]->candidate_id);
		assert_int_equal(d->results[i]->rank, ms[i]->rank);
		assert_true(d->results[i]->score == ms[i]->score);
	}
}

static void
test_match_jobs_logged(void **state)
{
	Lunamatch__V1__MatchJobsRequest req = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *resp = NULL;
	Lunamatch__V1__JobFilters f = LUNAMATCH__V1__JOB_FILTERS__INIT;
	char *countries[] = {"US"};
	int st = -1;
	(void) state;

	req.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	req.candidate_id = "cand-ml-lead-chicago";
	req.top_k = 4;
	f.n_countries = 1;
	f.countries = countries;
	req.filters = &f;
	assert_int_equal(lm_client_match_jobs(C, &req, 5000, &resp, &st, NULL, 0), LM_OK);
	assert_int_equal(st, 0);
	assert_true(resp->n_matches > 0);

	Lunamatch__V1__Decision *d = find_decision("MatchJobs", req.candidate_id);
	assert_string_equal(d->caller, CALLER);
	assert_int_equal(strlen(d->decision_id), 32);
	assert_true(d->request_id[0] != '\0');
	assert_string_equal(d->model_version, resp->model_version);
	assert_int_equal(d->index_seq, resp->index_seq);
	assert_int_equal(d->as_of, resp->as_of);
	assert_int_equal(d->top_k, 4);
	assert_non_null(d->job_filters);
	assert_int_equal(d->job_filters->n_countries, 1);
	assert_string_equal(d->job_filters->countries[0], "US");
	assert_null(d->candidate_filters);
	assert_int_equal(d->considered, resp->considered);
	assert_results(d, resp->matches, resp->n_matches, true);
	assert_true(d->decided_at_ms > 0 && d->replica[0] != '\0');
	lunamatch__v1__decision__free_unpacked(d, NULL);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void
test_match_candidates_logged(void **state)
{
	Lunamatch__V1__MatchCandidatesRequest req =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
	int st = -1;
	(void) state;

	req.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
	req.job_id = "job-dfs-sr-mgr-ml";
	req.top_k = 3;
	assert_int_equal(
	    lm_client_match_candidates(C, &req, 5000, &resp, &st, NULL, 0), LM_OK);
	assert_int_equal(st, 0);

	Lunamatch__V1__Decision *d = find_decision("MatchCandidates", req.job_id);
	assert_string_equal(d->caller, CALLER);
	assert_int_equal(d->as_of, resp->as_of);
	assert_results(d, resp->matches, resp->n_matches, false);
	lunamatch__v1__decision__free_unpacked(d, NULL);
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	/* Both answers counted, and the queue drained to the broker. */
	assert_true(lmt_wait_metric(S.http, "lunamatch_decisions_sent_total", LMT_GE, 2,
	                WAIT_MS) >= 2);
	assert_true(lmt_wait_metric(
	                S.http, "lunamatch_decisions_pending", LMT_EQ, 0, WAIT_MS) == 0);
}

/* With a sync interval the service says so at start (its answers are
 * then given once their decision is written; test_decisions proves what
 * that keeps). */
static void
test_sync_interval_announced(void **state)
{
	char *log;
	(void) state;

	assert_non_null(log = lmt_read_file(S.log, NULL));
	assert_non_null(strstr(log, "LUNAMATCH_DECISION_LOG_SYNC_MS is 20"));
	free(log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_jobs_logged),
	    cmocka_unit_test(test_match_candidates_logged),
	};
	const struct CMUnitTest interval[] = {
	    cmocka_unit_test(test_sync_interval_announced),
	    cmocka_unit_test(test_match_jobs_logged),
	    cmocka_unit_test(test_match_candidates_logged),
	};
	int failed = cmocka_run_group_tests(tests, setup, teardown);
	/* The service started by setup inherits the environment. */
	setenv("LUNAMATCH_DECISION_LOG_SYNC_MS", "20", 1);
	return failed +
	       cmocka_run_group_tests_name("sync interval", interval, setup, teardown);
}
