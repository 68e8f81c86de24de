/*
 * fuzzsupport.h - what the fuzz targets of tests/fuzz/ share: the data
 * files a record context needs, loaded once per process, a check that
 * aborts (so that libFuzzer and the corpus driver both report it as a
 * crash with the input that caused it), and the protobuf round trip every
 * target asserts of what it decodes.
 *
 * A target defines LLVMFuzzerTestOneInput; libFuzzer (-DLUNAMATCH_FUZZ=ON)
 * or driver.c (the normal build, replaying tests/fuzz/corpus/) calls it.
 */
#ifndef LMF_FUZZSUPPORT_H
#define LMF_FUZZSUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "lunamatch/record.h"

/*
 * The message types a peer sends (records, the MatchService requests and
 * responses, the RPC envelopes, match events, store notifications), in a
 * fixed order: the first input byte of fuzz_pb and fuzz_json picks
 * lmf_types[byte % lmf_ntypes]. The corpus files depend on the order:
 * append only.
 */
extern const ProtobufCMessageDescriptor *const lmf_types[];
extern const size_t lmf_ntypes;

/* The entry point of every target (libFuzzer's contract: it returns 0 and
 * must not keep data past the call). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints "fuzz check failed: <message>" to stderr and aborts. */
void lmf_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Aborts with the condition's text and the message unless cond holds. */
#define LMF_CHECK(cond)                                                                  \
	do {                                                                             \
		if (!(cond))                                                             \
			lmf_fail("%s:%d: %s", __FILE__, __LINE__, #cond);                \
	} while (0)

/* Path of a file of the source tree: LUNAMATCH_SOURCE_DIR, or the
 * compiled-in source directory. Static buffer, valid until the next call. */
const char *lmf_src(const char *rel);

/*
 * The record context ingest runs with, over the real data files
 * (data/skills.tsv, data/rates.tsv, data/fairness/requirements.tsv,
 * data/geo/cities.tsv) loaded at the first call and kept for the life of
 * the process; embedding_dim is 4. Aborts when a file does not load.
 */
const lm_record_ctx *lmf_record_ctx(void);

/*
 * The round trip every decoded message must survive: m packs to bytes that
 * lm_pb_decode accepts and that pack again to the same bytes. *out (may be
 * NULL) receives the malloc'd bytes of m, *len their length. Aborts
 * otherwise.
 */
void lmf_pb_roundtrip(const ProtobufCMessage *m, uint8_t **out, size_t *len);

#endif /* LMF_FUZZSUPPORT_H */
