/*
 * fuzzindex.c - the fixed match index and the answer checks of the
 * match-side fuzz targets; see fuzzindex.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzindex.h"
#include "fuzzsupport.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "model.h"

typedef Lunamatch__V1__JobPosting Posting;
typedef Lunamatch__V1__CandidateProfile Profile;

struct fixed {
	uint8_t *bytes; /* the prepared record, packed */
	size_t len;
	char id[LM_RECORD_ID_MAX + 1];
};

static struct {
	lm_model *model;
	struct fixed postings[LMF_N_FIXED], profiles[LMF_N_FIXED];
} F;

/* Gives record m (a posting or a profile, as lm_json_decode allocates it)
 * an embedding of lmf_record_ctx's dimension (4), varied by i. */
static void
set_embedding(ProtobufCMessage *m, int i)
{
	float *v = malloc(4 * sizeof(*v));

	LMF_CHECK(v != NULL && lmf_record_ctx()->embedding_dim == 4);
	for (int k = 0; k < 4; k++)
		v[k] = (float) ((k + i) % 4) * 0.25f - 0.3f;
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor) {
		((Posting *) m)->embedding = v;
		((Posting *) m)->n_embedding = 4;
	} else {
		((Profile *) m)->embedding = v;
		((Profile *) m)->n_embedding = 4;
	}
}

/* The first LMF_N_FIXED records of a sample file, prepared as ingest does
 * (half of them with an embedding). */
static void
load_fixed(const char *rel, const ProtobufCMessageDescriptor *desc, struct fixed *out)
{
	FILE *f = fopen(lmf_src(rel), "r");
	static char line[1 << 16];
	char err[256];

	if (f == NULL)
		lmf_fail("cannot read %s", rel);
	for (int i = 0; i < LMF_N_FIXED; i++) {
		ProtobufCMessage *m = NULL;
		lm_reject why;
		int rc;
		if (fgets(line, sizeof(line), f) == NULL)
			lmf_fail("%s has fewer than %d records", rel, LMF_N_FIXED);
		if (lm_json_decode(desc, line, strlen(line), &m, err, sizeof(err)) !=
		    LM_OK)
			lmf_fail("%s:%d: %s", rel, i + 1, err);
		/* Half of them get an embedding, so that the semantic feature
		 * of a fuzzed record with one is scored against them. */
		if (i % 2 == 0)
			set_embedding(m, i);
		if (desc == &lunamatch__v1__job_posting__descriptor)
			rc = lm_posting_prepare(
			    lmf_record_ctx(), (Posting *) m, &why, err, sizeof(err));
		else
			rc = lm_profile_prepare(
			    lmf_record_ctx(), (Profile *) m, &why, err, sizeof(err));
		if (rc != LM_OK)
			lmf_fail("%s:%d: %s", rel, i + 1, err);
		LMF_CHECK(lm_pb_encode(m, &out[i].bytes, &out[i].len) == LM_OK);
		snprintf(out[i].id, sizeof(out[i].id), "%s",
		    desc == &lunamatch__v1__job_posting__descriptor
		        ? ((Posting *) m)->id
		        : ((Profile *) m)->id);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	fclose(f);
}

static void
init(void)
{
	char err[256];

	if (F.model != NULL)
		return;
	if (lm_model_load(
	        lmf_src("data/model/default.json"), &F.model, err, sizeof(err)) != LM_OK)
		lmf_fail("loading the model: %s", err);
	load_fixed("data/samples/postings.jsonl", &lunamatch__v1__job_posting__descriptor,
	    F.postings);
	load_fixed("data/samples/profiles.jsonl",
	    &lunamatch__v1__candidate_profile__descriptor, F.profiles);
}

lm_index *
lmf_fixed_index(void)
{
	lm_index *idx = NULL;
	uint64_t seq = 1;

	init();
	LMF_CHECK(lm_index_new(F.model, &idx) == LM_OK);
	for (int i = 0; i < LMF_N_FIXED; i++) {
		Posting *p = lunamatch__v1__job_posting__unpack(
		    NULL, F.postings[i].len, F.postings[i].bytes);
		Profile *c = lunamatch__v1__candidate_profile__unpack(
		    NULL, F.profiles[i].len, F.profiles[i].bytes);
		LMF_CHECK(p != NULL && c != NULL);
		LMF_CHECK(lm_index_put_posting(idx, p, seq++) == LM_OK);
		LMF_CHECK(lm_index_put_profile(idx, c, seq++) == LM_OK);
	}
	return idx;
}

const char *
lmf_fixed_id(bool posting, int i)
{
	init();
	return posting ? F.postings[i].id : F.profiles[i].id;
}

/* A match's feature values are in [0, 1] and their contributions add up
 * to its score (match.proto, FeatureContribution), 0 for a vetoed one. */
static void
check_features(const ProtobufCMessage *resp, const Lunamatch__V1__Match *m)
{
	const Lunamatch__V1__Explanation *e = m->explanation;
	double sum = 0;

	if (e == NULL || e->n_features == 0)
		return;
	for (size_t i = 0; i < e->n_features; i++) {
		const Lunamatch__V1__FeatureContribution *f = e->features[i];
		if (!(f->value >= 0.0 && f->value <= 1.0))
			lmf_fail("%s: feature %s has value %g", resp->descriptor->name,
			    f->feature, f->value);
		sum += f->contribution;
	}
	if (!(fabs(sum - m->score) <= 1e-6))
		lmf_fail("%s: the contributions add up to %.9g, the score is %.9g",
		    resp->descriptor->name, sum, m->score);
}

void
lmf_check_answer(
    const ProtobufCMessage *resp, Lunamatch__V1__Match *const *matches, size_t n)
{
	uint8_t *b = NULL;
	char *text = NULL;
	size_t len;
	int rc;

	for (size_t i = 0; i < n; i++) {
		double s = matches[i]->score;
		if (!(s >= 0.0 && s <= 1.0))
			lmf_fail(
			    "%s: match %zu has score %g", resp->descriptor->name, i, s);
		if (i > 0 && s > matches[i - 1]->score)
			lmf_fail("%s: match %zu scores above the one before",
			    resp->descriptor->name, i);
		check_features(resp, matches[i]);
	}
	LMF_CHECK(lm_pb_encode(resp, &b, &len) == LM_OK);
	rc = lm_json_encode(resp, 0, &text);
	if (rc != LM_OK)
		lmf_fail("%s does not encode as JSON: %s", resp->descriptor->name,
		    lm_strerror(rc));
	free(text);
	free(b);
}
