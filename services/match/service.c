/*
 * service.c - MatchService handlers; see service.h for the contract.
 *
 * Each handler validates what the index does not (explain level, ids,
 * inline records), runs one index call, and maps its lm_err onto a
 * lunamatch.v1.StatusCode with a reason for the caller. Reasons name fields
 * and record ids only, never record contents.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "lunamatch/error.h"
#include "lunamatch/fault.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "score.h"
#include "service.h"

/* What a decision holds that a request sets (service.c: log_answer), at
 * its largest: the filters' text, top_k results of an id and its numbers,
 * the method, request id, caller and subject, and room for the fixed
 * fields. The request checks keep it within the log's record limit, so
 * that a valid request is never refused by the log after its query ran. */
_Static_assert(LM_FILTER_TEXT_MAX + 4 * LM_FILTER_LIST_MAX +
                       LM_INDEX_TOP_K_MAX * (LM_RECORD_ID_MAX + 32) + LM_RPC_MAX_METHOD +
                       LM_RPC_MAX_REQUEST_ID + LM_RPC_MAX_METADATA_VALUE +
                       LM_RECORD_ID_MAX + 4096 <=
                   LM_DECISIONS_BYTES_MAX,
    "a decision of a valid request must fit the decision log");

#define ST_OK          LUNAMATCH__V1__STATUS_CODE__OK
#define ST_INVALID     LUNAMATCH__V1__STATUS_CODE__INVALID_ARGUMENT
#define ST_DEADLINE    LUNAMATCH__V1__STATUS_CODE__DEADLINE_EXCEEDED
#define ST_NOT_FOUND   LUNAMATCH__V1__STATUS_CODE__NOT_FOUND
#define ST_INTERNAL    LUNAMATCH__V1__STATUS_CODE__INTERNAL
#define ST_UNAVAILABLE LUNAMATCH__V1__STATUS_CODE__UNAVAILABLE
#define ST_DATA_LOSS   LUNAMATCH__V1__STATUS_CODE__DATA_LOSS

/* Room for the reason an index call or lm_*_prepare gives. */
#define REASON_MAX 512

struct lm_match_service {
	lm_index *idx;
	lm_record_ctx rctx;
	lm_match_clock_fn clock;
	void *clock_arg;
	lm_decisions *decisions; /* NULL: no decision log */
	atomic_bool loaded;
	_Atomic(lm_rpc_server *) server;
	atomic_uint fail_decision_allocs; /* lm_match_service_fail_decision_allocs */
};

int
lm_match_service_new(const lm_match_service_opts *o, lm_match_service **out)
{
	lm_match_service *s;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (o == NULL || o->index == NULL || o->record_ctx.taxonomy == NULL ||
	    o->record_ctx.rates == NULL)
		return LM_EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return LM_ENOMEM;
	s->idx = o->index;
	s->rctx = o->record_ctx;
	s->rctx.inline_record = 1;
	s->clock = o->clock;
	s->clock_arg = o->clock_arg;
	s->decisions = o->decisions;
	atomic_init(&s->loaded, false);
	atomic_init(&s->server, NULL);
	atomic_init(&s->fail_decision_allocs, 0);
	*out = s;
	return LM_OK;
}

void
lm_match_service_free(lm_match_service *s)
{
	free(s);
}

void
lm_match_service_fail_decision_allocs(lm_match_service *s, unsigned n)
{
	atomic_store(&s->fail_decision_allocs, n);
}

void
lm_match_service_set_loaded(lm_match_service *s, bool loaded)
{
	atomic_store(&s->loaded, loaded);
}

bool
lm_match_service_loaded(const lm_match_service *s)
{
	return atomic_load(&((lm_match_service *) s)->loaded);
}

void
lm_match_service_set_server(lm_match_service *s, lm_rpc_server *srv)
{
	atomic_store(&s->server, srv);
}

bool
lm_match_service_serving(const lm_match_service *s)
{
	lm_match_service *m = (lm_match_service *) s;
	lm_rpc_server *srv = atomic_load(&m->server);

	return atomic_load(&m->loaded) && (srv == NULL || lm_rpc_server_serving(srv));
}

static int64_t
now_of(const lm_match_service *s)
{
	return s->clock != NULL ? s->clock(s->clock_arg) : (int64_t) time(NULL);
}

/* The time a request is answered for: its as_of, or the service clock when
 * it gives none. Returns ST_OK with *at set, or ST_INVALID with a reason. */
static int
resolve_as_of(
    const lm_match_service *s, int64_t as_of, int64_t *at, char *msg, size_t msglen)
{
	int64_t now = now_of(s);

	if (as_of < 0) {
		snprintf(msg, msglen, "as_of: %lld is negative", (long long) as_of);
		return ST_INVALID;
	}
	/* as_of >= 0 here, so as_of - now cannot overflow unless the clock
	 * is negative, which a clock before 1970 is. */
	if (as_of > now && (now < 0 || as_of - now > LM_MATCH_AS_OF_SKEW_MAX)) {
		snprintf(msg, msglen,
		    "as_of: %lld is more than %d s after the service's clock (%lld)",
		    (long long) as_of, LM_MATCH_AS_OF_SKEW_MAX, (long long) now);
		return ST_INVALID;
	}
	*at = as_of != 0 ? as_of : now;
	return ST_OK;
}

/* The value of metadata entry key of the request, "" when absent. */
static const char *
metadata_value(const lm_rpc_ctx *ctx, const char *key)
{
	for (size_t i = 0; ctx != NULL && i < ctx->n_metadata; i++)
		if (ctx->metadata[i] != NULL && ctx->metadata[i]->key != NULL &&
		    strcmp(ctx->metadata[i]->key, key) == 0)
			return ctx->metadata[i]->value != NULL ? ctx->metadata[i]->value
			                                       : "";
	return "";
}

/* What a decision records of one answer besides its request. */
struct answer {
	const char *method;     /* "MatchJobs" or "MatchCandidates" */
	const char *subject_id; /* NULL for an inline record */
	uint32_t top_k;
	const Lunamatch__V1__JobFilters *jf;
	const Lunamatch__V1__CandidateFilters *cf;
	bool jobs; /* results are jobs (else candidates) */
	Lunamatch__V1__Match **matches;
	size_t n_matches;
	uint64_t considered, vetoed, index_seq;
	int64_t as_of;
	const char *model_version;
};

/* Room for the results of a decision on the stack; larger answers
 * allocate. */
#define DECISION_STACK_RESULTS 64

/* The status message of an answer refused because its decision could not be
 * logged. Not logged per answer: the decision log counts every refusal
 * (lunamatch_decisions_log_errors_total) and logs each failed write once per
 * batch, and a line per answer would flood the log while the disk fails. */
static void
refused(const char *method, int rc, char *msg, size_t len)
{
	snprintf(msg, len, "decision log unavailable: %s", lm_strerror(rc));
	lm_debug("match.decision", "%s answer refused: %s", method, lm_errname(rc));
}

/* A held MatchJobs / MatchCandidates reply waiting for its decision's
 * write (lm_decisions_done_fn). */
struct held {
	const char *method;
	lm_rpc_done_fn done;
	void *call;
};

static void
decision_written(void *arg, int rc)
{
	struct held h = *(struct held *) arg;
	char msg[LM_RPC_MAX_MESSAGE];

	free(arg);
	if (rc == LM_OK) {
		h.done(h.call, ST_OK, NULL);
		return;
	}
	refused(h.method, rc, msg, sizeof(msg));
	h.done(h.call, ST_UNAVAILABLE, msg);
}

/*
 * Hands the decision of an answer to the service's decision log; its reply
 * is held until the decision is durable (decision_written). Returns
 * LM_RPC_HELD, ST_OK when the service has no log (the reply goes at once),
 * or ST_UNAVAILABLE with the reason when the decision cannot be handed
 * over: then the answer must not be given.
 */
static int
log_decision(lm_match_service *s, const lm_rpc_ctx *ctx, const struct answer *a,
    lm_rpc_done_fn done, void *call, char *msg, size_t msglen)
{
	Lunamatch__V1__Decision d = LUNAMATCH__V1__DECISION__INIT;
	Lunamatch__V1__JobFilters jf;
	Lunamatch__V1__CandidateFilters cf;
	Lunamatch__V1__DecisionResult res_stack[DECISION_STACK_RESULTS];
	Lunamatch__V1__DecisionResult *resp_stack[DECISION_STACK_RESULTS];
	Lunamatch__V1__DecisionResult *res = res_stack, **resp = resp_stack;
	struct held *h = NULL;
	bool handed = false;
	int rc = LM_ENOMEM;

	if (s->decisions == NULL)
		return ST_OK;
	if (a->n_matches > DECISION_STACK_RESULTS &&
	    ((res = calloc(a->n_matches, sizeof(*res))) == NULL ||
	        (resp = calloc(a->n_matches, sizeof(*resp))) == NULL))
		goto out;
	if (lm_fault_take(&s->fail_decision_allocs) || (h = malloc(sizeof(*h))) == NULL)
		goto out;
	for (size_t i = 0; i < a->n_matches; i++) {
		const Lunamatch__V1__Match *m = a->matches[i];
		lunamatch__v1__decision_result__init(&res[i]);
		res[i].id = a->jobs ? m->job_id : m->candidate_id;
		res[i].score = m->score;
		res[i].rank = m->rank;
		resp[i] = &res[i];
	}
	/* Borrowed strings: lm_decisions_log_async serializes d before it
	 * returns. */
	d.method = (char *) a->method;
	d.request_id =
	    (char *) (ctx != NULL && ctx->request_id != NULL ? ctx->request_id : "");
	d.caller = (char *) metadata_value(ctx, LM_MATCH_CALLER_KEY);
	d.subject_id = (char *) (a->subject_id != NULL ? a->subject_id : "");
	d.as_of = a->as_of;
	d.model_version = (char *) a->model_version;
	d.index_seq = a->index_seq;
	d.top_k = a->top_k;
	/* The filters as applied: fields this version does not know had no
	 * effect on the answer and are not logged. The request's size limit
	 * bounds them, not the checks the static assertion above counts on,
	 * so a newer client's fields could otherwise push a valid request's
	 * decision past the log's record limit. Shallow copies: the lists are
	 * borrowed like the strings. */
	if (a->jf != NULL) {
		jf = *a->jf;
		jf.base.n_unknown_fields = 0;
		jf.base.unknown_fields = NULL;
		d.job_filters = &jf;
	}
	if (a->cf != NULL) {
		cf = *a->cf;
		cf.base.n_unknown_fields = 0;
		cf.base.unknown_fields = NULL;
		d.candidate_filters = &cf;
	}
	d.n_results = a->n_matches;
	d.results = resp;
	d.considered = a->considered;
	d.vetoed = a->vetoed;
	*h = (struct held){a->method, done, call};
	rc = lm_decisions_log_async(s->decisions, &d, decision_written, h);
	handed = true;
out:
	if (resp != resp_stack)
		free(resp);
	if (res != res_stack)
		free(res);
	if (rc == LM_OK)
		return LM_RPC_HELD;
	free(h);
	/* The log counts the refusals of what it was handed. */
	if (!handed)
		lm_decisions_count_refused(s->decisions);
	refused(a->method, rc, msg, msglen);
	return ST_UNAVAILABLE;
}

/* Common entry checks of the data methods: index loaded, deadline not
 * passed. Returns ST_OK or the status to answer with. */
static int
precheck(const lm_match_service *s, const lm_rpc_ctx *ctx, char *msg, size_t msglen)
{
	if (!lm_match_service_loaded(s)) {
		snprintf(msg, msglen, "index is loading; retry later");
		return ST_UNAVAILABLE;
	}
	if (ctx != NULL && ctx->deadline_ms != 0 &&
	    (uint64_t) nng_clock() >= ctx->deadline_ms) {
		snprintf(msg, msglen, "deadline passed before the call started");
		return ST_DEADLINE;
	}
	return ST_OK;
}

static bool
explain_level_valid(Lunamatch__V1__ExplainLevel l)
{
	return l >= LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_UNSPECIFIED &&
	       l <= LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
}

/* Checks what every match method shares: top_k and the explain level. */
static int
check_query(uint32_t top_k, Lunamatch__V1__ExplainLevel level, char *msg, size_t msglen)
{
	if (top_k > LM_INDEX_TOP_K_MAX) {
		snprintf(msg, msglen, "top_k %u is above the limit of %d", top_k,
		    LM_INDEX_TOP_K_MAX);
		return ST_INVALID;
	}
	if (!explain_level_valid(level)) {
		snprintf(msg, msglen, "explain: unknown level %d", (int) level);
		return ST_INVALID;
	}
	return ST_OK;
}

/* Maps the result of an index query onto a status, with its reason. */
static int
query_status(int rc, const char *reason, const char *what, const char *id, char *msg,
    size_t msglen)
{
	switch (rc) {
	case LM_OK:
		return ST_OK;
	case LM_EINVAL:
		snprintf(
		    msg, msglen, "%s", reason[0] != '\0' ? reason : "invalid request");
		return ST_INVALID;
	case LM_ENOENT:
		snprintf(msg, msglen, "%s \"%s\" not found", what, id != NULL ? id : "");
		return ST_NOT_FOUND;
	case LM_EBUSY:
		snprintf(msg, msglen, "the index is catching up with the store; retry");
		return ST_UNAVAILABLE;
	case LM_EPARSE:
		/* A stored record the answer needs is damaged (index.h); the
		 * index counted and logged it. */
		if (reason[0] != '\0')
			snprintf(msg, msglen, "%s", reason);
		else
			snprintf(msg, msglen,
			    "the stored %s \"%s\" is damaged: its record does not decode",
			    what, id != NULL ? id : "");
		return ST_DATA_LOSS;
	default:
		snprintf(msg, msglen, "%s", lm_strerror(rc));
		lm_error("match.query", "%s query failed: %s", what, lm_errname(rc));
		return ST_INTERNAL;
	}
}

/* ---- MatchJobs / MatchCandidates ---------------------------------------- */

/* What differs between the subjects of the two match methods. */
struct subject {
	const char *record; /* the inline record's field: "profile" */
	const char *id;     /* the id's field: "candidate_id" */
	const char *owner;  /* what an unknown id names: "candidate" */
	bool posting;       /* prepared as a posting, else as a profile */
};

static const struct subject SUBJECT_PROFILE = {
    "profile", "candidate_id", "candidate", false};
static const struct subject SUBJECT_POSTING = {"posting", "job_id", "posting", true};

/*
 * The entry checks of a match method (precheck, top_k, explain level), then
 * its subject: with is_inline, record (may be NULL: refused) is
 * deep-copied into *copy and prepared there, so that the request stays
 * untouched; otherwise id (NULL when the id case is not set) must be given.
 * Returns ST_OK or the status to answer with, reason in msg. On ST_OK the
 * caller owns *copy (NULL for an id) and passes it to match_done.
 */
static int
match_begin(lm_match_service *s, const lm_rpc_ctx *ctx, uint32_t top_k,
    Lunamatch__V1__ExplainLevel level, const struct subject *k, bool is_inline,
    const ProtobufCMessage *record, const char *id, ProtobufCMessage **copy, char *msg,
    size_t msglen)
{
	char reason[REASON_MAX] = "";
	lm_reject why;
	int st, rc;

	*copy = NULL;
	if ((st = precheck(s, ctx, msg, msglen)) != ST_OK)
		return st;
	if ((st = check_query(top_k, level, msg, msglen)) != ST_OK)
		return st;
	if (!is_inline) {
		if (id == NULL || id[0] == '\0') {
			snprintf(msg, msglen, "no %s or %s given", k->id, k->record);
			return ST_INVALID;
		}
		return ST_OK;
	}
	if (record == NULL) {
		snprintf(msg, msglen, "%s: empty", k->record);
		return ST_INVALID;
	}
	if ((rc = lm_pb_copy(record, copy)) != LM_OK) {
		snprintf(msg, msglen, "%s", lm_strerror(rc));
		return ST_INTERNAL;
	}
	rc = k->posting
	         ? lm_posting_prepare(&s->rctx, (Lunamatch__V1__JobPosting *) *copy, &why,
	               reason, sizeof(reason))
	         : lm_profile_prepare(&s->rctx, (Lunamatch__V1__CandidateProfile *) *copy,
	               &why, reason, sizeof(reason));
	if (rc != LM_OK) {
		/* LM_ESCHEMA is the record's fault; anything else (LM_ENOMEM)
		 * is the server's: INTERNAL, as docs/api.md lists it. */
		if (rc == LM_ESCHEMA)
			snprintf(msg, msglen, "%s: %s", k->record, reason);
		else
			snprintf(msg, msglen, "%s: %s", k->record, lm_strerror(rc));
		protobuf_c_message_free_unpacked(*copy, NULL);
		*copy = NULL;
		return rc == LM_ESCHEMA ? ST_INVALID : ST_INTERNAL;
	}
	return ST_OK;
}

/* After the index call of a match method: frees the copy of match_begin
 * (may be NULL) and maps rc, with the index's reason, onto a status. id is
 * that of match_begin (NULL for an inline record). */
static int
match_done(int rc, ProtobufCMessage *copy, const struct subject *k, const char *id,
    const char *reason, char *msg, size_t msglen)
{
	protobuf_c_message_free_unpacked(copy, NULL);
	return query_status(
	    rc, reason, k->owner, id != NULL ? id : "(inline)", msg, msglen);
}

static int
h_match_jobs(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	lm_match_service *s = arg;
	const Lunamatch__V1__MatchJobsRequest *in = (const void *) req;
	Lunamatch__V1__MatchJobsRequest q = *in; /* shallow: only .profile changes */
	Lunamatch__V1__MatchJobsResponse *out = NULL;
	/* subject is a oneof (a union): read only the member of its case. */
	bool is_inline =
	    in->subject_case == LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE;
	const char *id =
	    in->subject_case == LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID
	        ? in->candidate_id
	        : NULL;
	ProtobufCMessage *copy;
	char reason[REASON_MAX] = "";
	int64_t at = 0;
	int st, rc;

	st = match_begin(s, ctx, in->top_k, in->explain, &SUBJECT_PROFILE, is_inline,
	    is_inline ? (const ProtobufCMessage *) in->profile : NULL, id, &copy, msg,
	    msglen);
	if (st == ST_OK && (st = resolve_as_of(s, in->as_of, &at, msg, msglen)) != ST_OK)
		protobuf_c_message_free_unpacked(copy, NULL);
	if (st != ST_OK)
		return st;
	if (copy != NULL)
		q.profile = (Lunamatch__V1__CandidateProfile *) copy;
	rc = lm_index_match_jobs(s->idx, &q, at, &out, reason, sizeof(reason));
	st = match_done(rc, copy, &SUBJECT_PROFILE, id, reason, msg, msglen);
	if (st == ST_OK)
		*resp = &out->base;
	else if (out != NULL) /* NULL when the query itself failed */
		protobuf_c_message_free_unpacked(&out->base, NULL);
	return st;
}

static int
h_match_candidates(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	lm_match_service *s = arg;
	const Lunamatch__V1__MatchCandidatesRequest *in = (const void *) req;
	Lunamatch__V1__MatchCandidatesRequest q = *in; /* only .posting changes */
	Lunamatch__V1__MatchCandidatesResponse *out = NULL;
	bool is_inline =
	    in->subject_case == LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_POSTING;
	const char *id =
	    in->subject_case == LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID
	        ? in->job_id
	        : NULL;
	ProtobufCMessage *copy;
	char reason[REASON_MAX] = "";
	int64_t at = 0;
	int st, rc;

	st = match_begin(s, ctx, in->top_k, in->explain, &SUBJECT_POSTING, is_inline,
	    is_inline ? (const ProtobufCMessage *) in->posting : NULL, id, &copy, msg,
	    msglen);
	if (st == ST_OK && (st = resolve_as_of(s, in->as_of, &at, msg, msglen)) != ST_OK)
		protobuf_c_message_free_unpacked(copy, NULL);
	if (st != ST_OK)
		return st;
	if (copy != NULL)
		q.posting = (Lunamatch__V1__JobPosting *) copy;
	rc = lm_index_match_candidates(s->idx, &q, at, &out, reason, sizeof(reason));
	st = match_done(rc, copy, &SUBJECT_POSTING, id, reason, msg, msglen);
	if (st == ST_OK)
		*resp = &out->base;
	else if (out != NULL) /* NULL when the query itself failed */
		protobuf_c_message_free_unpacked(&out->base, NULL);
	return st;
}

/* The commits of the match methods: the decision of an answer is logged
 * before the answer is given (log_decision). */
static int
c_match_jobs(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    const ProtobufCMessage *resp, lm_rpc_done_fn done, void *call, char *msg,
    size_t msglen)
{
	const Lunamatch__V1__MatchJobsRequest *in = (const void *) req;
	const Lunamatch__V1__MatchJobsResponse *out = (const void *) resp;
	struct answer a = {"MatchJobs",
	    in->subject_case == LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID
	        ? in->candidate_id
	        : NULL,
	    in->top_k, in->filters, NULL, true, out->matches, out->n_matches,
	    out->considered, out->vetoed, out->index_seq, out->as_of, out->model_version};

	return log_decision(arg, ctx, &a, done, call, msg, msglen);
}

static int
c_match_candidates(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    const ProtobufCMessage *resp, lm_rpc_done_fn done, void *call, char *msg,
    size_t msglen)
{
	const Lunamatch__V1__MatchCandidatesRequest *in = (const void *) req;
	const Lunamatch__V1__MatchCandidatesResponse *out = (const void *) resp;
	struct answer a = {"MatchCandidates",
	    in->subject_case == LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID
	        ? in->job_id
	        : NULL,
	    in->top_k, NULL, in->filters, false, out->matches, out->n_matches,
	    out->considered, out->vetoed, out->index_seq, out->as_of, out->model_version};

	return log_decision(arg, ctx, &a, done, call, msg, msglen);
}

/* ---- ExplainMatch ------------------------------------------------------------ */

/* Tells which of the two ids is unknown, for a precise NOT_FOUND reason:
 * from the index alone (lm_index_record_version reads no record, so a
 * stored candidate is never reported missing because its record could not
 * be decoded or read from the store just then). */
static void
explain_not_found(
    lm_match_service *s, const char *cand, const char *job, char *msg, size_t msglen)
{
	uint64_t version;

	if (lm_index_record_version(s->idx, false, cand, &version) != LM_OK)
		snprintf(msg, msglen, "candidate \"%s\" not found", cand);
	else
		snprintf(msg, msglen, "posting \"%s\" not found", job);
}

static int
h_explain(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	lm_match_service *s = arg;
	const Lunamatch__V1__ExplainMatchRequest *in = (const void *) req;
	Lunamatch__V1__ExplainMatchResponse *out = NULL;
	int64_t at = 0;
	bool posting = false;
	int st, rc;

	if ((st = precheck(s, ctx, msg, msglen)) != ST_OK)
		return st;
	if ((st = resolve_as_of(s, in->as_of, &at, msg, msglen)) != ST_OK)
		return st;
	if (in->candidate_id == NULL || in->candidate_id[0] == '\0') {
		snprintf(msg, msglen, "candidate_id: required");
		return ST_INVALID;
	}
	if (in->job_id == NULL || in->job_id[0] == '\0') {
		snprintf(msg, msglen, "job_id: required");
		return ST_INVALID;
	}
	rc = lm_index_explain(s->idx, in->candidate_id, in->job_id, at, &out, &posting);
	if (rc == LM_ENOENT) {
		explain_not_found(s, in->candidate_id, in->job_id, msg, msglen);
		return ST_NOT_FOUND;
	}
	if (rc == LM_EPARSE) {
		snprintf(msg, msglen,
		    "the stored %s \"%s\" is damaged: its record does not decode",
		    posting ? "posting" : "profile",
		    posting ? in->job_id : in->candidate_id);
		return ST_DATA_LOSS;
	}
	if ((st = query_status(rc, "", "pair", NULL, msg, msglen)) != ST_OK)
		return st;
	*resp = &out->base;
	return ST_OK;
}

/* ---- GetPosting / GetProfile ----------------------------------------------- */

/*
 * Answers GetPosting (posting true) or GetProfile: the record id from the
 * index, in a new response that owns it. Returns ST_OK with *resp set, or
 * the status to answer with.
 */
static int
get_record(lm_match_service *s, const lm_rpc_ctx *ctx, const char *id, bool posting,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	Lunamatch__V1__JobPosting *p = NULL;
	Lunamatch__V1__CandidateProfile *c = NULL;
	ProtobufCMessage *out = NULL;
	int st, rc;

	if ((st = precheck(s, ctx, msg, msglen)) != ST_OK)
		return st;
	if (id == NULL || id[0] == '\0') {
		snprintf(msg, msglen, "id: required");
		return ST_INVALID;
	}
	rc = posting ? lm_index_get_posting(s->idx, id, &p)
	             : lm_index_get_profile(s->idx, id, &c);
	if ((st = query_status(
	         rc, "", posting ? "posting" : "profile", id, msg, msglen)) != ST_OK)
		return st;
	if (posting) {
		Lunamatch__V1__GetPostingResponse *r = malloc(sizeof(*r));
		if (r != NULL) {
			lunamatch__v1__get_posting_response__init(r);
			r->posting = p;
			out = &r->base;
		}
	} else {
		Lunamatch__V1__GetProfileResponse *r = malloc(sizeof(*r));
		if (r != NULL) {
			lunamatch__v1__get_profile_response__init(r);
			r->profile = c;
			out = &r->base;
		}
	}
	if (out == NULL) {
		protobuf_c_message_free_unpacked(posting ? &p->base : &c->base, NULL);
		snprintf(msg, msglen, "%s", lm_strerror(LM_ENOMEM));
		return ST_INTERNAL;
	}
	*resp = out;
	return ST_OK;
}

static int
h_get_posting(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	const Lunamatch__V1__GetPostingRequest *in = (const void *) req;
	return get_record(arg, ctx, in->id, true, resp, msg, msglen);
}

static int
h_get_profile(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	const Lunamatch__V1__GetProfileRequest *in = (const void *) req;
	return get_record(arg, ctx, in->id, false, resp, msg, msglen);
}

/* ---- Check --------------------------------------------------------------------- */

static int
h_check(void *arg, const lm_rpc_ctx *ctx, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *msg, size_t msglen)
{
	lm_match_service *s = arg;
	const Lunamatch__V1__HealthCheckRequest *in = (const void *) req;
	Lunamatch__V1__HealthCheckResponse *out;
	lm_index_counts counts;

	(void) ctx;
	if ((out = malloc(sizeof(*out))) == NULL) {
		snprintf(msg, msglen, "%s", lm_strerror(LM_ENOMEM));
		return ST_INTERNAL;
	}
	lunamatch__v1__health_check_response__init(out);
	if (in->service != NULL && in->service[0] != '\0' &&
	    strcmp(in->service, LM_MATCH_SERVICE_NAME) != 0) {
		out->status =
		    LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
		*resp = &out->base;
		return ST_OK;
	}
	/* Not serving either while the decision log's writes fail: the
	 * ranking methods are refused then (as /readyz says). */
	out->status =
	    lm_match_service_serving(s) &&
	            (s->decisions == NULL || lm_decisions_healthy(s->decisions))
	        ? LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
	        : LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	lm_index_counts_get(s->idx, &counts);
	out->postings = counts.open_postings;
	out->profiles = counts.profiles;
	out->index_seq = lm_index_seq(s->idx);
	if ((out->model_version = strdup(lm_index_model_version(s->idx))) == NULL) {
		out->model_version = (char *) protobuf_c_empty_string;
		protobuf_c_message_free_unpacked(&out->base, NULL);
		snprintf(msg, msglen, "%s", lm_strerror(LM_ENOMEM));
		return ST_INTERNAL;
	}
	*resp = &out->base;
	return ST_OK;
}

static const lm_rpc_method methods[] = {
    {"MatchJobs", h_match_jobs, c_match_jobs},
    {"MatchCandidates", h_match_candidates, c_match_candidates},
    {"ExplainMatch", h_explain, NULL},
    {"GetPosting", h_get_posting, NULL},
    {"GetProfile", h_get_profile, NULL},
    {"Check", h_check, NULL},
};

const lm_rpc_method *
lm_match_service_methods(size_t *n)
{
	*n = sizeof(methods) / sizeof(methods[0]);
	return methods;
}
