/*
 * replica.c - one replica of the match service for the tools' tests; see
 * replica.h.
 */
#include <stdio.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/v1/match.pb-c.h"
#include "replica.h"

/* lmt_jsonl_fn: indexes one sample record in the replica arg. */
static void
index_record(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	lmt_replica *r = arg;
	lm_reject why;
	char err[512];
	(void) no, (void) line, (void) len;

	if (lmt_record_prepare(&r->recs.ctx, m, &why, err, sizeof(err)) != LM_OK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return;
	}
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor)
		assert_int_equal(
		    lm_index_put_posting(r->idx, (Lunamatch__V1__JobPosting *) m, 0),
		    LM_OK);
	else
		assert_int_equal(lm_index_put_profile(
		                     r->idx, (Lunamatch__V1__CandidateProfile *) m, 0),
		    LM_OK);
}

static int64_t
samples_clock(void *arg)
{
	(void) arg;
	return LMT_REPLICA_NOW;
}

void
lmt_replica_start(lmt_replica *r, const char *dir, const char *name,
    const char *model_path, bool samples)
{
	lm_match_service_opts so;
	lm_rpc_server_opts ro;
	const lm_rpc_method *methods;
	size_t n;
	char err[512];

	memset(r, 0, sizeof(*r));
	assert_true(snprintf(r->url, sizeof(r->url), "ipc://%s/%s.ipc", dir, name) <
	            (int) sizeof(r->url));
	lmt_records_open(&r->recs, 384);
	if (lm_model_load(model_path, &r->model, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	assert_int_equal(lm_index_new(r->model, &r->idx), LM_OK);
	if (samples) {
		lmt_jsonl_foreach(LMT_SAMPLE_POSTINGS,
		    lmt_sample_descriptor(LMT_SAMPLE_POSTINGS), index_record, r);
		lmt_jsonl_foreach(LMT_SAMPLE_PROFILES,
		    lmt_sample_descriptor(LMT_SAMPLE_PROFILES), index_record, r);
		lm_index_set_seq(r->idx, LMT_REPLICA_SEQ);
	}
	memset(&so, 0, sizeof(so));
	so.index = r->idx;
	so.record_ctx = r->recs.ctx;
	so.clock = samples ? samples_clock : NULL;
	assert_int_equal(lm_match_service_new(&so, &r->svc), LM_OK);
	lm_match_service_set_loaded(r->svc, true);
	memset(&ro, 0, sizeof(ro));
	ro.url = r->url;
	ro.workers = 2;
	ro.contexts = 4;
	methods = lm_match_service_methods(&n);
	assert_int_equal(lm_rpc_server_new(&ro, &lunamatch__v1__match_service__descriptor,
	                     methods, n, r->svc, &r->srv),
	    LM_OK);
	assert_int_equal(lm_rpc_server_start(r->srv), LM_OK);
	lm_match_service_set_server(r->svc, r->srv);
}

void
lmt_replica_stop(lmt_replica *r)
{
	lm_match_service_set_server(r->svc, NULL);
	lm_rpc_server_free(r->srv);
	lm_match_service_free(r->svc);
	lm_index_free(r->idx);
	lm_model_free(r->model);
	lmt_records_close(&r->recs);
}
