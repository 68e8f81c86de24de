/*
 * fuzzindex.h - the match index the match-side fuzz targets (fuzz_match,
 * fuzz_rpc) query: the default model (data/model/default.json) and a few
 * valid records of data/samples/ (half of them given an embedding),
 * prepared as ingest prepares them, loaded
 * once per process; and the checks every match answer must pass.
 */
#ifndef LMF_FUZZINDEX_H
#define LMF_FUZZINDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "index.h"

/* The `now` every query of the targets runs at. */
#define LMF_NOW 1750000000LL
/* Fixed records of each kind in lmf_fixed_index. */
#define LMF_N_FIXED 4

/* A new index (caller frees it with lm_index_free) holding the first
 * LMF_N_FIXED postings and profiles of data/samples/, at seqs
 * 1..2 * LMF_N_FIXED. Aborts on error. */
lm_index *lmf_fixed_index(void);

/* The id of fixed record i (0 <= i < LMF_N_FIXED) of a kind. */
const char *lmf_fixed_id(bool posting, int i);

/* Aborts unless the n matches of answer resp have finite scores in [0, 1],
 * best first, and resp encodes as protobuf and as JSON (which refuses NaN
 * and infinities anywhere in an explanation). */
void lmf_check_answer(
    const ProtobufCMessage *resp, Lunamatch__V1__Match *const *matches, size_t n);

#endif /* LMF_FUZZINDEX_H */
