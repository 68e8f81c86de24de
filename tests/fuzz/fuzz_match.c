/*
 * fuzz_match.c - a posting or profile that never went through ingest's
 * validation (NaN or huge numbers, empty or odd ids, thousands of skills,
 * many requirement groups...) put into the in-memory match index
 * (services/match/index.h) next to a few fixed valid records, then queried
 * the ways the match service queries it: MatchJobs / MatchCandidates for it
 * and for each fixed record (which ranks it), ExplainMatch and the pair
 * score against each fixed counterpart, the new-match top lists, GetPosting
 * / GetProfile, and an inline query after the preparation the service gives
 * inline records (lm_posting_prepare / lm_profile_prepare, inline_record).
 *
 * Input: byte 0 holds flags, the rest is the record.
 *   bit 0     0 a JobPosting, 1 a CandidateProfile
 *   bit 1     0 protobuf, 1 JSON
 *   bits 2-3  the queries' explain level
 *   bits 4-7  the queries' top_k (0: the default)
 *
 * Asserts, besides no crash, leak or undefined behaviour: a record the
 * index refuses is refused with LM_EINVAL or LM_ESTALE; a record it takes
 * is found by every query on it (LM_OK) and removed again, after which the
 * records of the other kind are still queried; every answer's scores are finite,
 * and an answer for a stored subject is exact (each match is an eligible
 * pair with its lm_index_pair_score, and an answer shorter than top_k
 * holds every eligible record);
 * in [0, 1] and ranked best first; every answer encodes as protobuf and as
 * JSON (which refuses NaN and infinities anywhere in an explanation).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzindex.h"
#include "fuzzsupport.h"
#include "index.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"

typedef Lunamatch__V1__JobPosting Posting;
typedef Lunamatch__V1__CandidateProfile Profile;

/* The fuzzed record's id and kind while it is stored (else NULL), and once
 * it is removed (the id may have been a fixed record's). */
static const char *stored_id, *removed_id;
static bool stored_posting;

/* The pair score of subject (of kind !jobs) and id; *eligible receives the
 * eligibility. */
static double
pair(lm_index *idx, bool jobs, const char *subject, const char *id, bool *eligible)
{
	double s = -1;
	int rc = lm_index_pair_score(
	    idx, jobs ? subject : id, jobs ? id : subject, LMF_NOW, &s, eligible);

	if (rc != LM_OK)
		lmf_fail("pair score of %s and %s: %s", subject, id, lm_strerror(rc));
	return s;
}

/*
 * The answer of a query for a stored subject is exact: each match is an
 * eligible pair with the pair score, and an answer shorter than top_k holds
 * every eligible record of the ranked side (jobs: postings). The ranked side
 * is the fixed records and the fuzzed one when it is stored.
 */
static void
check_exact(lm_index *idx, bool jobs, const char *subject,
    Lunamatch__V1__Match *const *matches, size_t n, uint32_t top_k)
{
	const char *ids[LMF_N_FIXED + 1];
	size_t n_ids = 0;
	bool eligible;

	for (size_t i = 0; i < n; i++) {
		const char *id = jobs ? matches[i]->job_id : matches[i]->candidate_id;
		double s = pair(idx, jobs, subject, id, &eligible);
		if (!eligible || fabs(s - matches[i]->score) > 1e-9)
			lmf_fail("%s answers %s with %.17g, the pair scores %.17g (%s)",
			    subject, id, matches[i]->score, s,
			    eligible ? "eligible" : "vetoed");
	}
	if (n >= (top_k ? top_k : LM_INDEX_TOP_K_DEFAULT))
		return;
	for (int i = 0; i < LMF_N_FIXED; i++)
		if (removed_id == NULL || stored_posting != jobs ||
		    strcmp(removed_id, lmf_fixed_id(jobs, i)) != 0)
			ids[n_ids++] = lmf_fixed_id(jobs, i);
	if (stored_id != NULL && stored_posting == jobs)
		ids[n_ids++] = stored_id;
	for (size_t k = 0; k < n_ids; k++) {
		double s = pair(idx, jobs, subject, ids[k], &eligible);
		size_t i = 0;
		while (i < n && strcmp(ids[k], jobs ? matches[i]->job_id
		                                    : matches[i]->candidate_id) != 0)
			i++;
		if (eligible && i == n)
			lmf_fail(
			    "%s: eligible %s (score %.17g) is missing from an answer of "
			    "%zu < top_k",
			    subject, ids[k], s, n);
	}
}

static void
match_jobs(lm_index *idx, const char *cand_id, Profile *inline_rec, uint8_t flags)
{
	Lunamatch__V1__MatchJobsRequest q = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__MatchJobsResponse *r = NULL;
	char err[256];
	int rc;

	q.top_k = flags >> 4;
	q.explain = (Lunamatch__V1__ExplainLevel) ((flags >> 2) & 3);
	if (inline_rec != NULL) {
		q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE;
		q.profile = inline_rec;
	} else {
		q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		q.candidate_id = (char *) cand_id;
	}
	rc = lm_index_match_jobs(idx, &q, LMF_NOW, &r, err, sizeof(err));
	if (rc != LM_OK)
		lmf_fail("MatchJobs for %s: %s: %s", cand_id, lm_strerror(rc), err);
	lmf_check_answer(&r->base, r->matches, r->n_matches);
	if (inline_rec == NULL)
		check_exact(idx, true, cand_id, r->matches, r->n_matches, q.top_k);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void
match_candidates(lm_index *idx, const char *job_id, Posting *inline_rec, uint8_t flags)
{
	Lunamatch__V1__MatchCandidatesRequest q =
	    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
	Lunamatch__V1__MatchCandidatesResponse *r = NULL;
	char err[256];
	int rc;

	q.top_k = flags >> 4;
	q.explain = (Lunamatch__V1__ExplainLevel) ((flags >> 2) & 3);
	if (inline_rec != NULL) {
		q.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_POSTING;
		q.posting = inline_rec;
	} else {
		q.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		q.job_id = (char *) job_id;
	}
	rc = lm_index_match_candidates(idx, &q, LMF_NOW, &r, err, sizeof(err));
	if (rc != LM_OK)
		lmf_fail("MatchCandidates for %s: %s: %s", job_id, lm_strerror(rc), err);
	lmf_check_answer(&r->base, r->matches, r->n_matches);
	if (inline_rec == NULL)
		check_exact(idx, false, job_id, r->matches, r->n_matches, q.top_k);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* ExplainMatch and the pair score of a stored pair agree. */
static void
explain(lm_index *idx, const char *cand_id, const char *job_id)
{
	Lunamatch__V1__ExplainMatchResponse *e = NULL;
	double score = -1;
	bool eligible = false;

	LMF_CHECK(lm_index_explain(idx, cand_id, job_id, LMF_NOW, &e, NULL) == LM_OK);
	LMF_CHECK(e->match != NULL);
	lmf_check_answer(&e->base, &e->match, 1);
	LMF_CHECK(lm_index_pair_score(idx, cand_id, job_id, LMF_NOW, &score, &eligible) ==
	          LM_OK);
	LMF_CHECK(score >= 0.0 && score <= 1.0);
	if (score != e->match->score || eligible != e->eligible)
		lmf_fail("ExplainMatch gives %.17g (%s), the pair score %.17g (%s)",
		    e->match->score, e->eligible ? "eligible" : "vetoed", score,
		    eligible ? "eligible" : "vetoed");
	protobuf_c_message_free_unpacked(&e->base, NULL);
}

static void
top_lists(lm_index *idx, bool posting, const char *id)
{
	lm_top_list l = {0};

	if (posting)
		LMF_CHECK(lm_index_top_for_posting(idx, id, 10, 0, LMF_NOW, &l) == LM_OK);
	else
		LMF_CHECK(lm_index_top_for_profile(idx, id, 10, 0, LMF_NOW, &l) == LM_OK);
	for (size_t i = 0; i < l.n; i++)
		LMF_CHECK(l.items[i].score >= 0.0 && l.items[i].score <= 1.0);
	lm_top_list_clear(&l);
}

/* The queries on the stored record id of the fuzzed kind. */
static void
query_stored(lm_index *idx, bool posting, const char *id, uint8_t flags)
{
	if (posting) {
		Posting *p = NULL;
		match_candidates(idx, id, NULL, flags);
		for (int i = 0; i < LMF_N_FIXED; i++) {
			match_jobs(idx, lmf_fixed_id(false, i), NULL, flags);
			explain(idx, lmf_fixed_id(false, i), id);
			top_lists(idx, false, lmf_fixed_id(false, i));
		}
		top_lists(idx, true, id);
		LMF_CHECK(lm_index_get_posting(idx, id, &p) == LM_OK);
		protobuf_c_message_free_unpacked(&p->base, NULL);
	} else {
		Profile *c = NULL;
		match_jobs(idx, id, NULL, flags);
		for (int i = 0; i < LMF_N_FIXED; i++) {
			match_candidates(idx, lmf_fixed_id(true, i), NULL, flags);
			explain(idx, id, lmf_fixed_id(true, i));
			top_lists(idx, true, lmf_fixed_id(true, i));
		}
		top_lists(idx, false, id);
		LMF_CHECK(lm_index_get_profile(idx, id, &c) == LM_OK);
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
}

/* The inline query the service makes of m: a copy prepared as an inline
 * record; nothing to query when the preparation refuses it. */
static void
query_inline(lm_index *idx, const ProtobufCMessage *m, uint8_t flags)
{
	lm_record_ctx ctx = *lmf_record_ctx();
	ProtobufCMessage *copy = NULL;
	uint8_t *b = NULL;
	size_t len = 0;
	lm_reject why;
	char err[256];
	int rc;

	ctx.inline_record = 1;
	LMF_CHECK(lm_pb_encode(m, &b, &len) == LM_OK);
	copy = protobuf_c_message_unpack(m->descriptor, NULL, len, b);
	LMF_CHECK(copy != NULL);
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor) {
		rc = lm_posting_prepare(&ctx, (Posting *) copy, &why, err, sizeof(err));
		if (rc == LM_OK)
			match_candidates(idx, "(inline)", (Posting *) copy, flags);
	} else {
		rc = lm_profile_prepare(&ctx, (Profile *) copy, &why, err, sizeof(err));
		if (rc == LM_OK)
			match_jobs(idx, "(inline)", (Profile *) copy, flags);
	}
	LMF_CHECK(rc == LM_OK || rc == LM_ESCHEMA);
	protobuf_c_message_free_unpacked(copy, NULL);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *m = NULL, *put = NULL;
	lm_index *idx;
	char *id;
	uint8_t *b = NULL;
	size_t len = 0;
	bool posting;
	uint8_t flags;
	int rc;

	if (size < 1)
		return 0;
	flags = data[0];
	posting = !(flags & 1);
	desc = posting ? &lunamatch__v1__job_posting__descriptor
	               : &lunamatch__v1__candidate_profile__descriptor;
	if (flags & 2)
		rc = lm_json_decode(desc, (const char *) data + 1, size - 1, &m, NULL, 0);
	else
		rc = lm_pb_decode(
		    desc, data + 1, size - 1, LM_STORE_VALUE_MAX, &m, NULL, 0);
	if (rc != LM_OK)
		return 0;

	idx = lmf_fixed_index();
	query_inline(idx, m, flags);

	/* The index takes its own copy: m stays for the id. */
	LMF_CHECK(lm_pb_encode(m, &b, &len) == LM_OK);
	put = protobuf_c_message_unpack(desc, NULL, len, b);
	LMF_CHECK(put != NULL);
	if (posting) {
		id = strdup(((Posting *) m)->id);
		rc = lm_index_put_posting(idx, (Posting *) put, 100);
	} else {
		id = strdup(((Profile *) m)->id);
		rc = lm_index_put_profile(idx, (Profile *) put, 100);
	}
	LMF_CHECK(id != NULL);
	removed_id = NULL;
	if (rc == LM_OK) {
		stored_id = id;
		stored_posting = posting;
		query_stored(idx, posting, id, flags);
		/* After its removal the other kind is still queried (the
		 * removed id may have been a fixed one of its own kind). */
		removed_id = id;
		stored_id = NULL;
		if (posting) {
			LMF_CHECK(lm_index_remove_posting(idx, id, 101) == LM_OK);
			match_jobs(idx, lmf_fixed_id(false, 0), NULL, flags);
		} else {
			LMF_CHECK(lm_index_remove_profile(idx, id, 101) == LM_OK);
			match_candidates(idx, lmf_fixed_id(true, 0), NULL, flags);
		}
	} else
		LMF_CHECK(rc == LM_EINVAL || rc == LM_ESTALE);
	free(id);
	free(b);
	protobuf_c_message_free_unpacked(m, NULL);
	lm_index_free(idx);
	return 0;
}
