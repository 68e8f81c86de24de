/*
 * fuzz_ingest.c - the bytes of a Kafka message through ingest's whole
 * decision (lm_ingest_decide: size check, content-type, protobuf or JSON
 * decoding, validation and normalization against the real taxonomy, rate
 * table, fair-requirements list and gazetteer, key check, serialization).
 *
 * Input: byte 0 holds flags, the rest is the message.
 *   bit 0     topic: 0 postings, 1 profiles
 *   bits 1-2  content-type header: none, "application/json",
 *             "application/x-protobuf", "text/plain"
 *   bit 3     key: 1 = the id of the record the value decodes to (so that
 *             valid records get through the key check), 0 = explicit: byte 1
 *             is its length k (0: no key), the next k bytes the key
 *   bit 4     tombstone: the value is absent (the rest, if any, is ignored)
 *   bit 5     content-type from the input instead of bits 1-2: a length byte
 *             c (0: no header), then c bytes of header value; it comes
 *             before an explicit key
 *
 * Asserts, besides no crash, leak or undefined behaviour: lm_ingest_decide
 * returns LM_OK for every message; a REJECT has a reason token (a snake_case
 * word: a metric label and a DLQ header), an error message (valid UTF-8
 * without control characters: it becomes a DLQ header) and no bytes; a DELETE is a
 * tombstone with a valid id equal to the key; a PUT has a valid id equal to the key and
 * bytes that decode (as the match service's follower decodes stored values,
 * lm_pb_decode_compact) to a record with that id and version which
 * packs to the same bytes again, and that the match index prepares
 * (lm_index_prepare_wire, as the follower loads a stored record): nothing ingest stores
 * is refused by match; and the stored bytes sent again are stored as they
 * are (normalizing is idempotent).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzzsupport.h"
#include "index.h"
#include "ingest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/text.h"

static const char *const content_types[] = {
    NULL, "application/json", "application/x-protobuf", "text/plain"};

/* Takes a field off the input: a length byte k, then k bytes (fewer when
 * the input ends first). k 0 (or no input left) gives NULL: an absent
 * header or key. */
static void
take(const uint8_t **data, size_t *size, const void **field, size_t *len)
{
	size_t k;

	*field = NULL;
	*len = 0;
	if (*size == 0)
		return;
	k = (*data)[0] < *size - 1 ? (*data)[0] : *size - 1;
	if (k > 0) {
		*field = *data + 1;
		*len = k;
	}
	*data += 1 + k;
	*size -= 1 + k;
}

static const char *
record_id(const ProtobufCMessage *m)
{
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor)
		return ((const Lunamatch__V1__JobPosting *) m)->id;
	return ((const Lunamatch__V1__CandidateProfile *) m)->id;
}

static uint64_t
record_version(const ProtobufCMessage *m)
{
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor)
		return ((const Lunamatch__V1__JobPosting *) m)->version;
	return ((const Lunamatch__V1__CandidateProfile *) m)->version;
}

/* The id of the record value decodes to, as ingest would decode it
 * (malloc'd), or NULL. */
static char *
decoded_id(const ProtobufCMessageDescriptor *desc, lm_ingest_format f, const void *value,
    size_t len)
{
	ProtobufCMessage *m = NULL;
	char *id = NULL;
	int rc;

	if (f == LM_INGEST_JSON)
		rc = lm_json_decode(desc, value, len, &m, NULL, 0);
	else if (f == LM_INGEST_PROTOBUF)
		rc = lm_pb_decode(desc, value, len, LM_INGEST_MSG_MAX, &m, NULL, 0);
	else
		return NULL;
	if (rc != LM_OK)
		return NULL;
	id = strdup(record_id(m));
	protobuf_c_message_free_unpacked(m, NULL);
	return id;
}

/* Normalizing is idempotent: the stored bytes of a PUT, sent again as a
 * protobuf message under the same key, are a PUT of the same bytes (a
 * record re-sent from the store, or read back and re-published, is stored
 * as it was). */
static void
check_idempotent(const lm_ingest_decision *d)
{
	lm_ingest_msg m = {.kind = d->kind,
	    .content_type = "application/x-protobuf",
	    .content_type_len = strlen("application/x-protobuf"),
	    .key = d->id,
	    .key_len = strlen(d->id),
	    .value = d->bytes,
	    .value_len = d->len};
	lm_ingest_decision again;

	LMF_CHECK(lm_ingest_decide(lmf_record_ctx(), &m, &again) == LM_OK);
	if (again.action != LM_INGEST_PUT)
		lmf_fail("an accepted record sent again is not accepted: %s: %s",
		    again.reason ? again.reason : "(no reason)", again.error);
	if (again.len != d->len || memcmp(again.bytes, d->bytes, d->len) != 0)
		lmf_fail("an accepted record of %zu bytes sent again is stored as "
		         "%zu other bytes",
		    d->len, again.len);
	lm_ingest_decision_clear(&again);
}

/* The stored bytes of a PUT, decoded as the match service decodes them. */
static void
check_put(const ProtobufCMessageDescriptor *desc, const lm_ingest_decision *d)
{
	lm_index_prepared ip = {0};
	ProtobufCMessage *m = NULL;
	uint8_t *again = NULL;
	size_t len = 0;
	char err[256];
	int rc;

	LMF_CHECK(d->bytes != NULL && d->reason == NULL);
	LMF_CHECK(d->len <= LM_STORE_VALUE_MAX);
	rc = lm_pb_decode_compact(
	    desc, d->bytes, d->len, LM_STORE_VALUE_MAX, &m, err, sizeof(err));
	if (rc != LM_OK)
		lmf_fail(
		    "an accepted record does not decode: %s: %s", lm_strerror(rc), err);
	LMF_CHECK(strcmp(record_id(m), d->id) == 0);
	LMF_CHECK(record_version(m) == d->version);
	LMF_CHECK(lm_pb_encode(m, &again, &len) == LM_OK);
	if (len != d->len || memcmp(again, d->bytes, len) != 0)
		lmf_fail("an accepted record of %zu bytes packs again to %zu other bytes",
		    d->len, len);
	free(again);
	/* The match follower prepares it for the index from these bytes. */
	rc = lm_index_prepare_wire(
	    &ip, desc == &lunamatch__v1__job_posting__descriptor, m, d->bytes, d->len);
	if (rc != LM_OK)
		lmf_fail(
		    "the match index refuses an accepted record: %s", lm_strerror(rc));
	lm_index_prepared_clear(&ip);

	rc = lm_pb_decode(
	    desc, d->bytes, d->len, LM_STORE_VALUE_MAX, &m, err, sizeof(err));
	if (rc != LM_OK)
		lmf_fail(
		    "an accepted record does not decode: %s: %s", lm_strerror(rc), err);
	lmf_pb_roundtrip(m, &again, &len);
	LMF_CHECK(len == d->len && memcmp(again, d->bytes, len) == 0);
	free(again);
	protobuf_c_message_free_unpacked(m, NULL);
	check_idempotent(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const lm_record_ctx *ctx = lmf_record_ctx();
	lm_ingest_msg m = {0};
	lm_ingest_decision d;
	const ProtobufCMessageDescriptor *desc;
	char *key = NULL;
	uint8_t flags;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	m.kind = (flags & 1) ? LM_KIND_PROFILE : LM_KIND_POSTING;
	desc = m.kind == LM_KIND_POSTING ? &lunamatch__v1__job_posting__descriptor
	                                 : &lunamatch__v1__candidate_profile__descriptor;
	if (flags & 32) {
		take(&data, &size, &m.content_type, &m.content_type_len);
	} else {
		m.content_type = content_types[(flags >> 1) & 3];
		m.content_type_len = m.content_type ? strlen(m.content_type) : 0;
	}
	if (!(flags & 8))
		take(&data, &size, &m.key, &m.key_len);
	if (!(flags & 16)) {
		m.value = data;
		m.value_len = size;
	}
	if ((flags & 8) && m.value != NULL) {
		key = decoded_id(desc,
		    lm_ingest_content_type(m.content_type, m.content_type_len), m.value,
		    m.value_len);
		m.key = key;
		m.key_len = key ? strlen(key) : 0;
	}

	LMF_CHECK(lm_ingest_decide(ctx, &m, &d) == LM_OK);
	LMF_CHECK(d.kind == m.kind);
	switch (d.action) {
	case LM_INGEST_REJECT:
		LMF_CHECK(d.reason != NULL && d.reason[0] != '\0');
		if (strspn(d.reason, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
		    strlen(d.reason))
			lmf_fail("reason \"%s\" is not a snake_case token", d.reason);
		LMF_CHECK(d.error[0] != '\0' && memchr(d.error, '\0', sizeof(d.error)));
		if (!lm_pb_utf8_valid(d.error, strlen(d.error)) ||
		    lm_text_has_control(d.error))
			lmf_fail("error message \"%s\" is not UTF-8 without control "
			         "characters",
			    d.error);
		LMF_CHECK(d.bytes == NULL);
		break;
	case LM_INGEST_DELETE:
		LMF_CHECK(m.value == NULL);
		LMF_CHECK(lm_record_id_valid(d.id));
		LMF_CHECK(
		    m.key_len == strlen(d.id) && memcmp(m.key, d.id, m.key_len) == 0);
		break;
	case LM_INGEST_PUT:
		LMF_CHECK(m.value != NULL);
		LMF_CHECK(lm_record_id_valid(d.id));
		LMF_CHECK(
		    m.key_len == strlen(d.id) && memcmp(m.key, d.id, m.key_len) == 0);
		check_put(desc, &d);
		break;
	default:
		lmf_fail("unknown action %d", (int) d.action);
	}
	lm_ingest_decision_clear(&d);
	free(key);
	return 0;
}
