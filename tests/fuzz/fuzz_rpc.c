/*
 * fuzz_rpc.c - a request payload from an RPC peer through the match
 * service's request path without sockets: decoded as the RPC server decodes
 * it (lm_pb_decode of the method's input type, at most
 * LM_RPC_DEFAULT_MAX_REQUEST bytes), then given to the method's handler and
 * its commit from the service's handler table (lm_match_service_methods),
 * over the fixed index of fuzzindex.h marked loaded, with inline records
 * prepared against the real data files. The envelope around the payload
 * is fuzz_envelope's (and fuzz_pb decodes RpcRequest envelopes).
 *
 * Input: byte 0 picks the method (table entry byte % count), byte 1 the
 * request's caller metadata (bit 0: present), the rest is the payload.
 *
 * Asserts, besides no crash, leak or undefined behaviour: every call ends
 * with a defined StatusCode; an error has a reason; OK has a response of
 * the method's output type that encodes as protobuf and as JSON, and the
 * matches of a MatchJobs or MatchCandidates answer have finite scores in
 * [0, 1], best first.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzzindex.h"
#include "fuzzsupport.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/rpc.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "service.h"

static struct {
	lm_index *index;
	lm_match_service *svc;
} S;

static int64_t
fixed_clock(void *arg)
{
	(void) arg;
	return LMF_NOW;
}

static void
init(void)
{
	lm_match_service_opts o = {0};

	if (S.svc != NULL)
		return;
	S.index = lmf_fixed_index();
	o.index = S.index;
	o.record_ctx = *lmf_record_ctx();
	o.clock = fixed_clock;
	LMF_CHECK(lm_match_service_new(&o, &S.svc) == LM_OK);
	lm_match_service_set_loaded(S.svc, true);
}

/* The commit's done: the service has no decision log, so it never holds a
 * reply; a call to done is a bug. */
static void
done(void *call, int code, const char *msg)
{
	(void) call;
	lmf_fail("a commit without a decision log held its reply (%d %s)", code, msg);
}

static void
check_ok(
    const char *method, const ProtobufCMethodDescriptor *md, const ProtobufCMessage *resp)
{
	LMF_CHECK(resp != NULL && resp->descriptor == md->output);
	if (strcmp(method, "MatchJobs") == 0) {
		const Lunamatch__V1__MatchJobsResponse *r = (const void *) resp;
		lmf_check_answer(resp, r->matches, r->n_matches);
	} else if (strcmp(method, "MatchCandidates") == 0) {
		const Lunamatch__V1__MatchCandidatesResponse *r = (const void *) resp;
		lmf_check_answer(resp, r->matches, r->n_matches);
	} else {
		lmf_check_answer(resp, NULL, 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static Lunamatch__V1__MetadataEntry caller = LUNAMATCH__V1__METADATA_ENTRY__INIT;
	static const Lunamatch__V1__MetadataEntry *meta[] = {&caller};
	const lm_rpc_method *methods, *m;
	const ProtobufCMethodDescriptor *md;
	ProtobufCMessage *req = NULL, *resp = NULL;
	lm_rpc_ctx ctx = {0};
	char msg[LM_RPC_MAX_MESSAGE + 1] = "", err[256];
	size_t n;
	int st;

	if (size < 2)
		return 0;
	init();
	methods = lm_match_service_methods(&n);
	m = &methods[data[0] % n];
	md = protobuf_c_service_descriptor_get_method_by_name(
	    &lunamatch__v1__match_service__descriptor, m->name);
	LMF_CHECK(md != NULL);
	caller.key = "caller";
	caller.value = "fuzz";
	ctx.method = m->name;
	ctx.request_id = "fuzz";
	ctx.deadline_ms = UINT64_MAX;
	ctx.metadata = meta;
	ctx.n_metadata = data[1] & 1;
	if (lm_pb_decode(md->input, data + 2, size - 2, LM_RPC_DEFAULT_MAX_REQUEST, &req,
	        err, sizeof(err)) != LM_OK)
		return 0; /* the server answers INVALID_ARGUMENT (fuzz_pb) */

	st = m->fn(S.svc, &ctx, req, &resp, msg, sizeof(msg));
	if (st == LUNAMATCH__V1__STATUS_CODE__OK && m->commit != NULL)
		st = m->commit(S.svc, &ctx, req, resp, done, NULL, msg, sizeof(msg));
	LMF_CHECK(st >= 0 && protobuf_c_enum_descriptor_get_value(
	                         &lunamatch__v1__status_code__descriptor, st) != NULL);
	if (st == LUNAMATCH__V1__STATUS_CODE__OK) {
		check_ok(m->name, md, resp);
	} else if (msg[0] == '\0') {
		lmf_fail("%s answered %d without a reason", m->name, st);
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	protobuf_c_message_free_unpacked(req, NULL);
	return 0;
}
