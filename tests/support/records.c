/*
 * records.c - data files and sample records for the tests; see records.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/salary.h"
#include "lunamatch/taxonomy.h"
#include "records.h"

void
lmt_records_open(lmt_records *r, uint32_t embedding_dim)
{
	char err[512] = "";

	memset(r, 0, sizeof(*r));
	if (lm_taxonomy_load(
	        lmt_src("data/skills.tsv"), &r->taxonomy, err, sizeof(err)) != LM_OK)
		fail_msg("loading data/skills.tsv: %s", err);
	if (lm_rates_load(lmt_src("data/rates.tsv"), &r->rates, err, sizeof(err)) !=
	    LM_OK)
		fail_msg("loading data/rates.tsv: %s", err);
	r->ctx.taxonomy = r->taxonomy;
	r->ctx.rates = r->rates;
	r->ctx.embedding_dim = embedding_dim;
}

void
lmt_records_close(lmt_records *r)
{
	lm_taxonomy_free(r->taxonomy);
	lm_rates_free(r->rates);
	memset(r, 0, sizeof(*r));
}

static bool
is_posting(const ProtobufCMessage *m)
{
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor)
		return true;
	if (m->descriptor != &lunamatch__v1__candidate_profile__descriptor)
		fail_msg("%s is neither a posting nor a profile", m->descriptor->name);
	return false;
}

const char *
lmt_record_id(const ProtobufCMessage *m)
{
	return is_posting(m) ? ((const Lunamatch__V1__JobPosting *) m)->id
	                     : ((const Lunamatch__V1__CandidateProfile *) m)->id;
}

void
lmt_record_set_id(ProtobufCMessage *m, const char *id)
{
	char **idp = is_posting(m) ? &((Lunamatch__V1__JobPosting *) m)->id
	                           : &((Lunamatch__V1__CandidateProfile *) m)->id;
	char *copy = strdup(id);

	assert_non_null(copy);
	free(*idp);
	*idp = copy;
}

int
lmt_record_prepare(const lm_record_ctx *ctx, ProtobufCMessage *m, lm_reject *why,
    char *err, size_t errlen)
{
	if (is_posting(m))
		return lm_posting_prepare(
		    ctx, (Lunamatch__V1__JobPosting *) m, why, err, errlen);
	return lm_profile_prepare(
	    ctx, (Lunamatch__V1__CandidateProfile *) m, why, err, errlen);
}

const ProtobufCMessageDescriptor *
lmt_sample_descriptor(const char *rel)
{
	return strcmp(rel, LMT_SAMPLE_POSTINGS) == 0
	           ? &lunamatch__v1__job_posting__descriptor
	           : &lunamatch__v1__candidate_profile__descriptor;
}

size_t
lmt_jsonl_foreach(
    const char *rel, const ProtobufCMessageDescriptor *d, lmt_jsonl_fn fn, void *arg)
{
	size_t len = 0, n = 0, no = 0;
	char *text = lmt_read_file(lmt_src(rel), &len);
	char err[512];

	if (text == NULL)
		fail_msg("cannot read %s", rel);
	for (char *line = text, *nl; line < text + len; line = nl + 1) {
		ProtobufCMessage *m = NULL;
		nl = memchr(line, '\n', (size_t) (text + len - line));
		if (nl == NULL)
			nl = text + len;
		no++;
		if (nl == line)
			continue;
		if (lm_json_decode(d, line, (size_t) (nl - line), &m, err, sizeof(err)) !=
		    LM_OK)
			fail_msg("%s:%zu: %s", rel, no, err);
		fn(arg, m, no, line, (size_t) (nl - line));
		n++;
	}
	free(text);
	return n;
}

ProtobufCMessage *
lmt_sample_get(const char *rel, const char *id)
{
	char *text = lmt_read_file(lmt_src(rel), NULL);
	char key[256], err[512];
	ProtobufCMessage *m = NULL;

	if (text == NULL)
		fail_msg("cannot read %s", rel);
	snprintf(key, sizeof(key), "{\"id\":\"%s\"", id);
	char *line = strstr(text, key);
	if (line == NULL)
		fail_msg("%s has no record %s", rel, id);
	char *nl = strchr(line, '\n');
	if (lm_json_decode(lmt_sample_descriptor(rel), line,
	        nl ? (size_t) (nl - line) : strlen(line), &m, err, sizeof(err)) != LM_OK)
		fail_msg("%s: record %s: %s", rel, id, err);
	free(text);
	return m;
}
