/*
 * fuzzsupport.c - data files, checks and the protobuf round trip of the
 * fuzz targets; see fuzzsupport.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzsupport.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "lunamatch/v1/store.pb-c.h"

const ProtobufCMessageDescriptor *const lmf_types[] = {
    &lunamatch__v1__job_posting__descriptor,
    &lunamatch__v1__candidate_profile__descriptor,
    &lunamatch__v1__match_jobs_request__descriptor,
    &lunamatch__v1__match_candidates_request__descriptor,
    &lunamatch__v1__explain_match_request__descriptor,
    &lunamatch__v1__get_posting_request__descriptor,
    &lunamatch__v1__get_profile_request__descriptor,
    &lunamatch__v1__health_check_request__descriptor,
    &lunamatch__v1__rpc_request__descriptor,
    &lunamatch__v1__rpc_response__descriptor,
    &lunamatch__v1__match_event__descriptor,
    &lunamatch__v1__store_notify__descriptor,
    /* What a client decodes from a server (common/src/client.c). */
    &lunamatch__v1__match_jobs_response__descriptor,
    &lunamatch__v1__match_candidates_response__descriptor,
    &lunamatch__v1__explain_match_response__descriptor,
    &lunamatch__v1__get_posting_response__descriptor,
    &lunamatch__v1__get_profile_response__descriptor,
    &lunamatch__v1__health_check_response__descriptor,
};
const size_t lmf_ntypes = sizeof(lmf_types) / sizeof(lmf_types[0]);

void
lmf_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz check failed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

const char *
lmf_src(const char *rel)
{
	static char path[4096];
	const char *base = getenv("LUNAMATCH_SOURCE_DIR");

	snprintf(path, sizeof(path), "%s/%s", base && *base ? base : LMF_SOURCE_DIR, rel);
	return path;
}

const lm_record_ctx *
lmf_record_ctx(void)
{
	static lm_record_ctx ctx;
	static bool loaded;
	lm_taxonomy *tax = NULL;
	lm_rates *rates = NULL;
	lm_fairness *fair = NULL;
	lm_gazetteer *gaz = NULL;
	char err[512] = "";

	if (loaded)
		return &ctx;
	if (lm_taxonomy_load(lmf_src("data/skills.tsv"), &tax, err, sizeof(err)) !=
	        LM_OK ||
	    lm_rates_load(lmf_src("data/rates.tsv"), &rates, err, sizeof(err)) != LM_OK ||
	    lm_fairness_load(lmf_src("data/fairness/requirements.tsv"), &fair, err,
	        sizeof(err)) != LM_OK ||
	    lm_gazetteer_load(lmf_src("data/geo/cities.tsv"), &gaz, err, sizeof(err)) !=
	        LM_OK)
		lmf_fail("loading the data files: %s", err);
	ctx.taxonomy = tax;
	ctx.rates = rates;
	ctx.fairness = fair;
	ctx.gazetteer = gaz;
	ctx.embedding_dim = 4;
	loaded = true;
	return &ctx;
}

void
lmf_pb_roundtrip(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	ProtobufCMessage *again = NULL;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t n1 = 0, n2 = 0;
	char err[256];
	int rc;

	LMF_CHECK(lm_pb_encode(m, &b1, &n1) == LM_OK);
	rc = lm_pb_decode(m->descriptor, b1, n1, SIZE_MAX, &again, err, sizeof(err));
	if (rc != LM_OK)
		lmf_fail("%s packs to bytes that do not decode: %s: %s",
		    m->descriptor->name, lm_strerror(rc), err);
	LMF_CHECK(lm_pb_encode(again, &b2, &n2) == LM_OK);
	if (n1 != n2 || memcmp(b1, b2, n1) != 0)
		lmf_fail(
		    "%s: decoding its %zu bytes and packing again gives %zu other bytes",
		    m->descriptor->name, n1, n2);
	protobuf_c_message_free_unpacked(again, NULL);
	free(b2);
	if (out != NULL) {
		*out = b1;
		*len = n1;
	} else {
		free(b1);
	}
}
