/*
 * fuzz_json.c - JSON text from a peer (a producer writing JSON to Kafka, a
 * data file, the CLI's input) through lm_json_decode (lunamatch/json.h), for
 * the record, request, envelope and event types.
 *
 * Input: byte 0 picks the message type (lmf_types[byte % lmf_ntypes]); the
 * rest is the JSON text.
 *
 * Asserts, besides no crash, leak or undefined behaviour: a refusal is
 * LM_EPARSE, LM_ESCHEMA or LM_E2BIG with an error message and no message,
 * and its error message is valid UTF-8 without control characters, as
 * json.h promises, also when cut to fit a smaller buffer (the same input
 * decoded again with a buffer the input's length picks);
 * an accepted message passes the protobuf round trip (lmf_pb_roundtrip: its
 * bytes are accepted by lm_pb_decode, so JSON lets in nothing that the
 * protobuf path refuses), and encodes to JSON (plain, pretty, and with
 * defaults) that decodes again to a message packing to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzzsupport.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"

/* The JSON encoding of m with flags decodes to a message packing to
 * want[0..n). */
static void
check_reencode(const ProtobufCMessage *m, unsigned flags, const uint8_t *want, size_t n)
{
	ProtobufCMessage *again = NULL;
	char *text = NULL, err[256];
	uint8_t *b = NULL;
	size_t len = 0;
	int rc = lm_json_encode(m, flags, &text);

	if (rc != LM_OK)
		lmf_fail("a decoded %s does not encode (flags %u): %s",
		    m->descriptor->name, flags, lm_strerror(rc));
	rc = lm_json_decode(m->descriptor, text, strlen(text), &again, err, sizeof(err));
	if (rc != LM_OK)
		lmf_fail("%s encodes to JSON that does not decode: %s: %s\n%s",
		    m->descriptor->name, lm_strerror(rc), err, text);
	LMF_CHECK(lm_pb_encode(again, &b, &len) == LM_OK);
	if (len != n || memcmp(b, want, n) != 0)
		lmf_fail("%s: JSON round trip (flags %u) changes the message:\n%s",
		    m->descriptor->name, flags, text);
	free(b);
	free(text);
	protobuf_c_message_free_unpacked(again, NULL);
}

/* err, the error message of a refusal, keeps json.h's promise. */
static void
check_message(const char *err, size_t errlen)
{
	size_t n = strnlen(err, errlen);

	LMF_CHECK(n < errlen);
	if (!lm_pb_utf8_valid(err, n))
		lmf_fail("the error message is not UTF-8: %s", err);
	if (lm_text_has_control(err))
		lmf_fail("the error message holds a control character: %s", err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *m = NULL;
	uint8_t *b = NULL;
	size_t n = 0;
	char err[256];
	int rc;

	if (size < 1)
		return 0;
	desc = lmf_types[data[0] % lmf_ntypes];
	rc =
	    lm_json_decode(desc, (const char *) data + 1, size - 1, &m, err, sizeof(err));
	if (rc != LM_OK) {
		LMF_CHECK(rc == LM_EPARSE || rc == LM_ESCHEMA || rc == LM_E2BIG);
		LMF_CHECK(m == NULL && err[0] != '\0');
		check_message(err, sizeof(err));
		/* Cut: from 1 byte (the NUL alone) to the message less its
		 * last byte. */
		size_t cut = 1 + size % strlen(err);
		LMF_CHECK(lm_json_decode(desc, (const char *) data + 1, size - 1, &m, err,
		              cut) == rc);
		LMF_CHECK(m == NULL);
		check_message(err, cut);
		return 0;
	}
	LMF_CHECK(err[0] == '\0');
	lmf_pb_roundtrip(m, &b, &n);
	check_reencode(m, 0, b, n);
	check_reencode(m, LM_JSON_PRETTY, b, n);
	check_reencode(m, LM_JSON_EMIT_DEFAULTS, b, n);
	free(b);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
