/*
 * fuzz_pb.c - protobuf wire data from a peer through the checked decoders of
 * lunamatch/pb.h: lm_pb_decode and lm_pb_decode_compact
 * (what the RPC server, the clients, ingest and the match follower decode
 * with), for the record, request, envelope and event types.
 *
 * Input: byte 0 picks the message type (lmf_types[byte % lmf_ntypes]); the
 * rest is the wire data.
 *
 * Asserts, besides no crash, leak or undefined behaviour: the two
 * decoders agree on accepting or refusing the input, with the same error
 * code; a refusal is LM_EPARSE or LM_E2BIG with an error message and no
 * message; an accepted message packs to bytes that decode and pack again to
 * the same bytes (lmf_pb_roundtrip), and its compact copy (and
 * lm_pb_compact of it) pack to those same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzzsupport.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"

/* The largest message decoded (the RPC server's default request limit is
 * of this order; fuzz inputs are far smaller). */
#define LMF_PB_MAX (1u << 20)

typedef int (*decode_fn)(const ProtobufCMessageDescriptor *desc, const void *data,
    size_t len, size_t max_len, ProtobufCMessage **out, char *err, size_t errlen);

/* A compact copy of the input (decoded with fn) packs to want[0..n); it is
 * refused with rc when want is NULL. */
static void
check_copy(decode_fn fn, const char *name, const ProtobufCMessageDescriptor *desc,
    const uint8_t *data, size_t size, int rc, const uint8_t *want, size_t n)
{
	ProtobufCMessage *m = NULL;
	uint8_t *b = NULL;
	size_t len = 0;
	char err[256];
	int got = fn(desc, data, size, LMF_PB_MAX, &m, err, sizeof(err));

	if (got != rc)
		lmf_fail("%s: %s where lm_pb_decode gives %s (%s)", name,
		    lm_strerror(got), lm_strerror(rc), err);
	if (want == NULL) {
		LMF_CHECK(m == NULL);
		return;
	}
	LMF_CHECK(lm_pb_encode(m, &b, &len) == LM_OK);
	if (len != n || memcmp(b, want, n) != 0)
		lmf_fail(
		    "%s: the copy packs to %zu bytes, the message to %zu other bytes",
		    name, len, n);
	free(b);
	free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *m = NULL, *c = NULL;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t n1 = 0, n2 = 0;
	char err[256];
	int rc;

	if (size < 1)
		return 0;
	desc = lmf_types[data[0] % lmf_ntypes];
	data++;
	size--;

	rc = lm_pb_decode(desc, data, size, LMF_PB_MAX, &m, err, sizeof(err));
	if (rc != LM_OK) {
		LMF_CHECK(rc == LM_EPARSE || rc == LM_E2BIG);
		LMF_CHECK(m == NULL && err[0] != '\0');
		check_copy(lm_pb_decode_compact, "lm_pb_decode_compact", desc, data, size,
		    rc, NULL, 0);
		return 0;
	}
	LMF_CHECK(err[0] == '\0');
	lmf_pb_roundtrip(m, &b1, &n1);
	check_copy(lm_pb_decode_compact, "lm_pb_decode_compact", desc, data, size, LM_OK,
	    b1, n1);

	LMF_CHECK(lm_pb_compact(m, &c, NULL) == LM_OK);
	LMF_CHECK(lm_pb_encode(c, &b2, &n2) == LM_OK);
	if (n2 != n1 || memcmp(b1, b2, n1) != 0)
		lmf_fail("lm_pb_compact: the copy packs to %zu bytes, the message to %zu "
		         "other bytes",
		    n2, n1);
	free(b2);
	free(c);
	free(b1);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
