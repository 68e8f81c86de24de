/*
 * records.h - postings and profiles for the tests: the data files that
 * preparing a record needs (data/skills.tsv, data/rates.tsv), and the
 * sample records of data/samples/ read, decoded and optionally prepared as
 * ingest would.
 *
 * Every function fails the running cmocka test on error (also in set-ups).
 */
#ifndef LMT_RECORDS_H
#define LMT_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "lunamatch/record.h"
#include "lunamatch/v1/records.pb-c.h"

/* The sample files, relative to the source tree (for lmt_src). */
#define LMT_SAMPLE_POSTINGS "data/samples/postings.jsonl"
#define LMT_SAMPLE_PROFILES "data/samples/profiles.jsonl"

/* The real taxonomy and rate table, and a record context over them. */
typedef struct lmt_records {
	lm_taxonomy *taxonomy;
	lm_rates *rates;
	lm_record_ctx ctx; /* points at the two above */
} lmt_records;

/* Loads data/skills.tsv and data/rates.tsv into r and sets r->ctx with
 * embedding_dim (inline_record 0). Release with lmt_records_close. */
void lmt_records_open(lmt_records *r, uint32_t embedding_dim);

/* Frees the taxonomy and the rate table and zeroes r. */
void lmt_records_close(lmt_records *r);

/* The id of m, a JobPosting or a CandidateProfile. */
const char *lmt_record_id(const ProtobufCMessage *m);

/* Replaces the id of m (a JobPosting or a CandidateProfile) with a copy of
 * id. */
void lmt_record_set_id(ProtobufCMessage *m, const char *id);

/* lm_posting_prepare or lm_profile_prepare, by m's type. */
int lmt_record_prepare(const lm_record_ctx *ctx, ProtobufCMessage *m, lm_reject *why,
    char *err, size_t errlen);

/* The descriptor of a sample file's records: postings for
 * LMT_SAMPLE_POSTINGS, profiles otherwise. */
const ProtobufCMessageDescriptor *lmt_sample_descriptor(const char *rel);

/*
 * Called with each record of a JSON-lines file, in file order: no is its
 * 1-based line number, line/len its text. The callback owns m (frees it
 * with protobuf_c_message_free_unpacked or hands it on).
 */
typedef void (*lmt_jsonl_fn)(
    void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len);

/* Decodes every non-empty line of the file rel (source tree) as a record of
 * type d and calls fn for each; fails the test naming file and line when
 * one does not decode. Returns the number of records. */
size_t lmt_jsonl_foreach(
    const char *rel, const ProtobufCMessageDescriptor *d, lmt_jsonl_fn fn, void *arg);

/* The record whose line starts with {"id":"<id>" in the sample file rel,
 * decoded (not prepared); the caller frees it. */
ProtobufCMessage *lmt_sample_get(const char *rel, const char *id);

#endif /* LMT_RECORDS_H */
