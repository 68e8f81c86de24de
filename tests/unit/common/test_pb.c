/*
 * test_pb.c - checked protobuf decoding and encoding.
 *
 * Round trips, then every way wire data can be wrong: truncation at every
 * byte, bad tags, wire types and lengths, strings that are not UTF-8 or hold
 * NUL bytes, the size limit, and a deterministic stream of random and mutated
 * buffers that must never crash or leak (run it under ASan). Compact copies
 * (lm_pb_compact) of decoded messages pack to the same bytes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/records.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"

#define JP       (&lunamatch__v1__job_posting__descriptor)
#define MAXLEN   (1u << 20)
#define BIG_TEXT 40000 /* bytes of a string beyond lm_pb_decode_compact's stack */

/* A posting with strings, nested and repeated messages, packed floats and
 * large integers; the result is packed into *len bytes (malloc'd). */
static uint8_t *
posting_bytes(size_t *len)
{
	Lunamatch__V1__Salary sal = LUNAMATCH__V1__SALARY__INIT;
	sal.min = 40000;
	sal.max = 60000.5;
	sal.currency = "EUR";
	sal.period = LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_MONTH;
	sal.annual_min = INT64_MIN;
	Lunamatch__V1__PostingSkill sk1 = LUNAMATCH__V1__POSTING_SKILL__INIT;
	sk1.name = "Python";
	sk1.weight = 2.5f;
	Lunamatch__V1__PostingSkill sk2 = LUNAMATCH__V1__POSTING_SKILL__INIT;
	sk2.name = "K\xc3\xbc"
	           "bernetes \xf0\x9f\x9a\x80";
	Lunamatch__V1__PostingSkill *skills[] = {&sk1, &sk2};
	Lunamatch__V1__Location loc = LUNAMATCH__V1__LOCATION__INIT;
	loc.city = "M\xc3\xbcnchen";
	loc.country = "DE";
	Lunamatch__V1__Location *locs[] = {&loc};
	char *gskills[] = {"Scala", "Java"};
	Lunamatch__V1__RequirementGroup grp = LUNAMATCH__V1__REQUIREMENT_GROUP__INIT;
	grp.label = "Scala or Java";
	grp.n_skills = 2;
	grp.skills = gskills;
	Lunamatch__V1__RequirementGroup *groups[] = {&grp};
	float emb[] = {0.5f, -1.0f, 3.25f};
	Lunamatch__V1__JobPosting p = LUNAMATCH__V1__JOB_POSTING__INIT;
	p.id = "job-1";
	p.version = UINT64_MAX;
	p.title = "Data Engineer";
	p.employment_type = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME;
	p.salary = &sal;
	p.n_skills = 2;
	p.skills = skills;
	p.n_locations = 1;
	p.locations = locs;
	p.n_requirement_groups = 1;
	p.requirement_groups = groups;
	p.posted_at = -42;
	p.n_embedding = 3;
	p.embedding = emb;
	uint8_t *buf = NULL;
	assert_int_equal(lm_pb_encode(&p.base, &buf, len), LM_OK);
	return buf;
}

/* Decodes data, expecting code and an error containing want. */
static void
reject(const void *data, size_t len, int code, const char *want)
{
	ProtobufCMessage *m = (ProtobufCMessage *) 1;
	char err[256];
	int rc = lm_pb_decode(JP, data, len, MAXLEN, &m, err, sizeof(err));
	if (rc != code || !strstr(err, want))
		fail_msg("got %s \"%s\", want %s \"%s\"", lm_errname(rc), err,
		    lm_errname(code), want);
	assert_null(m);
}

/* m encodes to exactly bytes[0 .. len). */
static void
assert_packs_to(const ProtobufCMessage *m, const uint8_t *bytes, size_t len)
{
	uint8_t *again = NULL;
	size_t alen = 0;
	assert_int_equal(lm_pb_encode(m, &again, &alen), LM_OK);
	assert_int_equal(alen, len);
	assert_memory_equal(again, bytes, len);
	free(again);
}

static void
test_roundtrip(void **state)
{
	(void) state;
	size_t len;
	uint8_t *bytes = posting_bytes(&len);
	ProtobufCMessage *m = NULL;
	char err[256];
	assert_int_equal(lm_pb_decode(JP, bytes, len, len, &m, err, sizeof(err)), LM_OK);
	assert_string_equal(err, "");
	Lunamatch__V1__JobPosting *p = (Lunamatch__V1__JobPosting *) m;
	assert_string_equal(p->id, "job-1");
	assert_true(p->version == UINT64_MAX);
	assert_true(p->salary->annual_min == INT64_MIN);
	assert_int_equal(p->posted_at, -42);
	assert_int_equal(p->n_skills, 2);
	assert_string_equal(p->skills[1]->name, "K\xc3\xbc"
	                                        "bernetes \xf0\x9f\x9a\x80");
	assert_int_equal(p->n_embedding, 3);
	assert_true(p->embedding[2] == 3.25f);

	assert_packs_to(m, bytes, len);
	protobuf_c_message_free_unpacked(m, NULL);
	free(bytes);

	/* The empty message is zero bytes, and zero bytes decode to it. */
	uint8_t *again = NULL;
	size_t alen = 0;
	Lunamatch__V1__RpcResponse empty = LUNAMATCH__V1__RPC_RESPONSE__INIT;
	assert_int_equal(lm_pb_encode(&empty.base, &again, &alen), LM_OK);
	assert_non_null(again);
	assert_int_equal(alen, 0);
	free(again);
	assert_int_equal(lm_pb_decode(&lunamatch__v1__rpc_response__descriptor, NULL, 0,
	                     0, &m, err, sizeof(err)),
	    LM_OK);
	assert_string_equal(((Lunamatch__V1__RpcResponse *) m)->request_id, "");
	protobuf_c_message_free_unpacked(m, NULL);

	/* Fields unknown to the schema are skipped and kept. */
	static const uint8_t unknown[] = {
	    0x0a, 0x01, 'x', 0xf8, 0x06, 0x05, 0x9a, 0x07, 0x00};
	assert_int_equal(
	    lm_pb_decode(JP, unknown, sizeof(unknown), MAXLEN, &m, err, sizeof(err)),
	    LM_OK);
	assert_string_equal(((Lunamatch__V1__JobPosting *) m)->id, "x");
	assert_int_equal(m->n_unknown_fields, 2);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Unknown fields are removed at every depth: at the top, in a repeated and
 * in a singular sub-message, and in the message member of a oneof (not
 * followed when the oneof holds its string member). */
static void
test_strip_unknown(void **state)
{
	(void) state;
	static const uint8_t profile[] = {0x0a, 0x01, 'c',      /* id "c" */
	    0x22, 0x07, 0x0a, 0x02, 'G', 'o', 0x98, 0x06, 0x01, /* skills: 99 = 1 */
	    0x6a, 0x09, 0x0a, 0x01, 'x', 0x9a, 0x06, 0x03, 'd', 'o', 'b', /* goals */
	    0x9a, 0x06, 0x08, 'g', 'e', 'n', 'd', 'e', 'r', '=', 'F'};
	static const uint8_t known[] = {0x0a, 0x01, 'c', 0x22, 0x04, 0x0a, 0x02, 'G', 'o',
	    0x6a, 0x03, 0x0a, 0x01, 'x'};
	const ProtobufCMessageDescriptor *cp =
	    &lunamatch__v1__candidate_profile__descriptor;
	const ProtobufCMessageDescriptor *mj =
	    &lunamatch__v1__match_jobs_request__descriptor;
	ProtobufCMessage *m = NULL;
	char err[256];

	assert_int_equal(
	    lm_pb_decode(cp, profile, sizeof(profile), MAXLEN, &m, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(lm_pb_strip_unknown(m, NULL), 3);
	Lunamatch__V1__CandidateProfile *c = (Lunamatch__V1__CandidateProfile *) m;
	assert_int_equal(m->n_unknown_fields, 0);
	assert_int_equal(c->skills[0]->base.n_unknown_fields, 0);
	assert_int_equal(c->career_goals->base.n_unknown_fields, 0);
	assert_packs_to(m, known, sizeof(known));
	assert_int_equal(lm_pb_strip_unknown(m, NULL), 0);
	protobuf_c_message_free_unpacked(m, NULL);

	/* The profile inside a MatchJobsRequest (field 2 of oneof subject). */
	uint8_t req[sizeof(profile) + 2] = {0x12, (uint8_t) sizeof(profile)};
	memcpy(req + 2, profile, sizeof(profile));
	assert_int_equal(
	    lm_pb_decode(mj, req, sizeof(req), MAXLEN, &m, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_strip_unknown(m, NULL), 3);
	uint8_t want[sizeof(known) + 2] = {0x12, (uint8_t) sizeof(known)};
	memcpy(want + 2, known, sizeof(known));
	assert_packs_to(m, want, sizeof(want));
	protobuf_c_message_free_unpacked(m, NULL);

	/* candidate_id set: the oneof's storage is a string, left alone. */
	static const uint8_t by_id[] = {0x0a, 0x01, 'c', 0x9a, 0x06, 0x00};
	assert_int_equal(
	    lm_pb_decode(mj, by_id, sizeof(by_id), MAXLEN, &m, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_strip_unknown(m, NULL), 1);
	assert_packs_to(m, by_id, 3);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_pb_strip_unknown(NULL, NULL), 0);
}

/* An allocation that fails while a good message is unpacked is
 * LM_ENOMEM, not malformed input (callers drop malformed input for good);
 * the same bytes decode once memory is there. */
static void
test_out_of_memory(void **state)
{
	(void) state;
	size_t len;
	uint8_t *bytes = posting_bytes(&len);
	ProtobufCMessage *m = NULL;
	char err[256];

	lm_pb_fail_allocs(1);
	assert_int_equal(
	    lm_pb_decode(JP, bytes, len, len, &m, err, sizeof(err)), LM_ENOMEM);
	assert_null(m);
	assert_non_null(strstr(err, "out of memory"));
	assert_int_equal(lm_pb_decode(JP, bytes, len, len, &m, err, sizeof(err)), LM_OK);
	protobuf_c_message_free_unpacked(m, NULL);
	/* Malformed input with memory failing too is still malformed when
	 * the walk finds it first. */
	lm_pb_fail_allocs(1);
	assert_int_equal(lm_pb_decode(JP,
	                     "\x0a\x05"
	                     "ab",
	                     4, MAXLEN, &m, err, sizeof(err)),
	    LM_EPARSE);
	lm_pb_fail_allocs(0);
	free(bytes);
}

static void
test_arguments_and_limit(void **state)
{
	(void) state;
	size_t len;
	uint8_t *bytes = posting_bytes(&len);
	ProtobufCMessage *m = NULL;
	char err[256];
	assert_int_equal(
	    lm_pb_decode(JP, bytes, len, len - 1, &m, err, sizeof(err)), LM_E2BIG);
	char want[128];
	snprintf(
	    want, sizeof(want), "%zu bytes exceed the limit of %zu bytes", len, len - 1);
	assert_string_equal(err, want);
	assert_null(m);
	assert_int_equal(
	    lm_pb_decode(NULL, bytes, len, len, &m, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(lm_pb_decode(JP, NULL, 3, len, &m, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(
	    lm_pb_decode(JP, bytes, len, len, NULL, err, sizeof(err)), LM_EINVAL);
	/* err may be NULL; a short err is cut, never overrun. */
	assert_int_equal(lm_pb_decode(JP, bytes, len, 1, &m, NULL, 0), LM_E2BIG);
	char tiny[6];
	assert_int_equal(
	    lm_pb_decode(JP, bytes, len, 1, &m, tiny, sizeof(tiny)), LM_E2BIG);
	assert_int_equal(strlen(tiny), 5);
	uint8_t *out;
	assert_int_equal(lm_pb_encode(NULL, &out, &len), LM_EINVAL);
	free(bytes);
}

/* Every prefix of a valid message either is a valid message itself (cut at
 * a field boundary) or is rejected with a reason. */
static void
test_truncated(void **state)
{
	(void) state;
	size_t len;
	uint8_t *bytes = posting_bytes(&len);
	int valid = 0;
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy =
		    malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
		assert_non_null(copy);
		memcpy(copy, bytes, cut);
		ProtobufCMessage *m = NULL;
		char err[256];
		int rc = lm_pb_decode(JP, copy, cut, MAXLEN, &m, err, sizeof(err));
		assert_true(rc == LM_OK || rc == LM_EPARSE);
		if (rc == LM_EPARSE)
			assert_true(
			    strstr(err, "truncated") || strstr(err, "runs past the end"));
		valid += rc == LM_OK;
		protobuf_c_message_free_unpacked(m, NULL);
		free(copy);
	}
	assert_true(valid > 3 && valid < (int) len / 2);
	free(bytes);

	/* The reasons, one by one. title = field 4, string. */
	reject("\x22\x05"
	       "Da",
	    4, LM_EPARSE, "title: length 5 at byte 0 runs past the end");
	reject("\x22", 1, LM_EPARSE, "title: truncated length at byte 1");
	reject("\x10\xff\xff", 3, LM_EPARSE, "version: truncated varint at byte 1");
	reject("\x98", 1, LM_EPARSE, "truncated field tag at byte 0");
	reject("\x10\x01\x82\x01\x02\x0a", 6, LM_EPARSE,
	    "salary: length 2 at byte 2 runs past the end");
	/* salary.min = field 1 of Salary, double: 8 bytes needed, 2 given */
	reject("\x82\x01\x03\x09\x00\x00", 6, LM_EPARSE,
	    "salary.min: truncated 8-byte value at byte 4");
	/* varint of 11 bytes */
	reject("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, LM_EPARSE,
	    "version: truncated varint");
}

static void
test_malformed(void **state)
{
	(void) state;
	reject("\x00\x01", 2, LM_EPARSE, "invalid field number at byte 0");
	reject("\x0f", 1, LM_EPARSE, "id: unsupported wire type 7 at byte 0");
	reject("\xfb\x07", 2, LM_EPARSE, "field 127: unsupported wire type 3");
	reject("\x0b\x0c", 2, LM_EPARSE, "id: unsupported wire type 3 at byte 0");
	reject("\x20\x01", 2, LM_EPARSE,
	    "title: wire type 0 does not match the field's type");
	reject("\x82\x01\x02\x08\x01", 5, LM_EPARSE,
	    "salary.min: wire type 0 does not match");
	/* embedding = field 21, packed floats: 5 bytes is not a whole float */
	reject("\xaa\x01\x05\x00\x00\x80\x3f\x00", 8, LM_EPARSE,
	    "embedding: packed length 5 is not a multiple of 4");
	/* a packed enum of Filters with a cut varint: JobFilters.employment_types */
	ProtobufCMessage *m = NULL;
	char err[256];
	assert_int_equal(lm_pb_decode(&lunamatch__v1__job_filters__descriptor,
	                     "\x22\x02\x01\x80", 4, MAXLEN, &m, err, sizeof(err)),
	    LM_EPARSE);
	assert_string_equal(err, "employment_types: truncated varint in packed field");
	/* An enum varint outside int32: protobuf-c would keep its low 32 bits
	 * (status = 2^32 + 1 read as 1, OPEN). */
	reject("\x0a\x01\x61\x10\x01\x18\x81\x80\x80\x80\x10\x22\x02\x6f\x6b", 15,
	    LM_EPARSE,
	    "status: enum value 4294967297 is outside the int32 range at byte 6");
	reject("\x18\x80\x80\x80\x80\x08", 6, LM_EPARSE,
	    "status: enum value 2147483648 is outside the int32 range");
	/* ... and in a packed list: JobFilters.employment_types = 2^32 */
	assert_int_equal(
	    lm_pb_decode(&lunamatch__v1__job_filters__descriptor,
	        "\x22\x06\x01\x80\x80\x80\x80\x10", 8, MAXLEN, &m, err, sizeof(err)),
	    LM_EPARSE);
	assert_string_equal(
	    err, "employment_types: enum value 4294967296 is outside the int32 range");
	/* The int32 range itself decodes: INT32_MAX, and -1 sign-extended (an
	 * unknown value the record checks reject as such). */
	assert_int_equal(
	    lm_pb_decode(JP, "\x18\xff\xff\xff\xff\x07", 6, MAXLEN, &m, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(((Lunamatch__V1__JobPosting *) m)->status, INT32_MAX);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_int_equal(lm_pb_decode(JP, "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
	                     11, MAXLEN, &m, err, sizeof(err)),
	    LM_OK);
	assert_true((int) ((Lunamatch__V1__JobPosting *) m)->status == -1);
	protobuf_c_message_free_unpacked(m, NULL);
	/* unpacked repeated floats are fine too */
	assert_int_equal(
	    lm_pb_decode(JP, "\xad\x01\x00\x00\x80\x3f\xad\x01\x00\x00\x00\x40", 12,
	        MAXLEN, &m, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(((Lunamatch__V1__JobPosting *) m)->n_embedding, 2);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* ASCII around a sequence never changes whether the text is UTF-8, at any
 * place of the sequence relative to the eight-byte steps of the check. */
static void
utf8_amid_ascii(void)
{
	static const struct {
		const char *s;
		bool valid;
	} seq[] = {{"\xc3\xa9", true}, {"\xe6\x97\xa5", true}, {"\xf0\x9f\x98\x80", true},
	    {"\xff", false}, {"\x80", false}, {"\xc3\x28", false}, {"\xe6\x97", false},
	    {"\xed\xa0\x80", false}, {"\xf4\x90\x80\x80", false}, {"\xc0\xaf", false}};
	char buf[40];

	for (size_t k = 0; k < sizeof(seq) / sizeof(seq[0]); k++) {
		size_t n = strlen(seq[k].s);
		for (size_t pre = 0; pre <= 17; pre++)
			for (size_t post = 0; post <= 9; post++) {
				memset(buf, 'a', sizeof(buf));
				memcpy(buf + pre, seq[k].s, n);
				assert_int_equal(
				    lm_pb_utf8_valid(buf, pre + n + post), seq[k].valid);
			}
	}
}

/* lm_pb_utf8_fit drops a character cut short at the end, and only that. */
static void
utf8_fit(void)
{
	static const char *const chars[] = {
	    "a", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80"};
	char buf[16];

	for (size_t k = 0; k < 4; k++) {
		size_t n = strlen(chars[k]);
		snprintf(buf, sizeof(buf), "ab%s", chars[k]);
		for (size_t cut = 1; cut < n; cut++)
			assert_int_equal(lm_pb_utf8_fit(buf, 2 + cut), 2);
		assert_int_equal(lm_pb_utf8_fit(buf, 2 + n), 2 + n);
		assert_true(lm_pb_utf8_valid(buf, lm_pb_utf8_fit(buf, 2 + n)));
	}
	assert_int_equal(lm_pb_utf8_fit("", 0), 0);
	assert_int_equal(lm_pb_utf8_fit("\xe6", 1), 0);
	assert_int_equal(lm_pb_utf8_fit("\x80\x80\x80\x80", 4), 4); /* not UTF-8 */
}

static void
test_utf8(void **state)
{
	(void) state;
	/* title (field 4) with bad bytes */
	reject("\x22\x02\xc3\x28", 4, LM_EPARSE, "title: string is not valid UTF-8");
	reject("\x22\x02\xc0\xaf", 4, LM_EPARSE, "not valid UTF-8");     /* overlong */
	reject("\x22\x03\xe0\x80\xaf", 5, LM_EPARSE, "not valid UTF-8"); /* overlong */
	reject("\x22\x03\xed\xa0\x80", 5, LM_EPARSE, "not valid UTF-8"); /* surrogate */
	reject(
	    "\x22\x04\xf4\x90\x80\x80", 6, LM_EPARSE, "not valid UTF-8"); /* > U+10FFFF */
	reject("\x22\x02\xe6\x97", 4, LM_EPARSE, "not valid UTF-8");      /* cut */
	reject("\x22\x01\xff", 3, LM_EPARSE, "not valid UTF-8");
	reject("\x22\x03"
	       "a\x00b",
	    5, LM_EPARSE, "title: string contains a NUL byte");
	/* nested: skills (17) -> PostingSkill.name (1) */
	reject("\x8a\x01\x04\x0a\x02\xc3\x28", 7, LM_EPARSE,
	    "skills.name: string is not valid UTF-8");
	/* repeated string: requirement_groups (18) -> skills (2) */
	reject("\x92\x01\x06\x12\x01"
	       "a\x12\x01\x80",
	    9, LM_EPARSE, "requirement_groups.skills: string is not valid UTF-8");
	/* bytes fields may hold anything */
	ProtobufCMessage *m = NULL;
	char err[256];
	assert_int_equal(lm_pb_decode(&lunamatch__v1__rpc_request__descriptor,
	                     "\x2a\x03\xff\x00\xc3", 5, MAXLEN, &m, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(((Lunamatch__V1__RpcRequest *) m)->payload.len, 3);
	protobuf_c_message_free_unpacked(m, NULL);

	assert_true(lm_pb_utf8_valid("", 0));
	assert_true(lm_pb_utf8_valid(
	    "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 14));
	assert_true(lm_pb_utf8_valid("\xed\x9f\xbf", 3)); /* U+D7FF */
	assert_false(lm_pb_utf8_valid("\xc1\xbf", 2));
	assert_false(lm_pb_utf8_valid("\xf5\x80\x80\x80", 4));
	assert_false(lm_pb_utf8_valid("\xe6\x28\x97", 3));
	assert_false(lm_pb_utf8_valid("\x80", 1));
	utf8_amid_ascii();
	utf8_fit();
}

static uint64_t
next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Random buffers, and valid ones with random damage: no crash, no leak,
 * a defined result every time. */
static void
test_garbage_never_crashes(void **state)
{
	(void) state;
	size_t vlen;
	uint8_t *valid = posting_bytes(&vlen);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int ok = 0, bad = 0;
	for (int iter = 0; iter < 4000; iter++) {
		size_t len;
		uint8_t *buf;
		if (iter < 2000) {
			len = next(&x) % 300;
			buf = malloc(len ? len : 1);
			assert_non_null(buf);
			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t) next(&x);
		} else {
			len = vlen;
			buf = malloc(len);
			assert_non_null(buf);
			memcpy(buf, valid, len);
			for (int e = 0; e < 1 + iter % 4; e++) {
				uint64_t r = next(&x);
				buf[r % len] ^= (uint8_t) (1u << ((r >> 32) % 8));
			}
		}
		const ProtobufCMessageDescriptor *desc =
		    iter % 3 == 0   ? JP
		    : iter % 3 == 1 ? &lunamatch__v1__candidate_profile__descriptor
		                    : &lunamatch__v1__match_jobs_request__descriptor;
		ProtobufCMessage *m = NULL;
		char err[256];
		int rc = lm_pb_decode(desc, buf, len, MAXLEN, &m, err, sizeof(err));
		assert_true(rc == LM_OK || rc == LM_EPARSE);
		assert_true((rc == LM_OK) == (m != NULL));
		assert_true(rc == LM_OK || err[0] != '\0');
		ok += rc == LM_OK;
		bad += rc != LM_OK;
		protobuf_c_message_free_unpacked(m, NULL);
		free(buf);
	}
	assert_true(ok > 0 && bad > 0);
	free(valid);
}

/* The compact copy of a decoded message, and of the decoded copy after
 * the original is gone, packs to the bytes of the original: every string,
 * array, nested message, unknown field, oneof member and bytes value came
 * along, in one block that free() releases. */
static void
compact_matches(const ProtobufCMessageDescriptor *d, const uint8_t *b, size_t len)
{
	ProtobufCMessage *m = NULL, *c = NULL;
	size_t size = 0;
	char err[256];

	assert_int_equal(lm_pb_decode(d, b, len, MAXLEN, &m, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_compact(m, &c, &size), LM_OK);
	assert_true(size >= d->sizeof_message);
	protobuf_c_message_free_unpacked(m, NULL);
	assert_packs_to(c, b, len);
	free(c);
	/* Decoded straight into the compact form, with the checks or without
	 * them: the same. */
	for (int checked = 0; checked < 2; checked++) {
		assert_int_equal(checked ? lm_pb_decode_compact(
		                               d, b, len, MAXLEN, &c, err, sizeof(err))
		                         : lm_pb_unpack_compact(d, b, len, &c),
		    LM_OK);
		assert_packs_to(c, b, len);
		free(c);
	}
}

static void
test_compact(void **state)
{
	Lunamatch__V1__MatchJobsRequest q = LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
	Lunamatch__V1__RpcRequest r = LUNAMATCH__V1__RPC_REQUEST__INIT;
	Lunamatch__V1__MetadataEntry me = LUNAMATCH__V1__METADATA_ENTRY__INIT;
	Lunamatch__V1__MetadataEntry *mes[] = {&me};
	Lunamatch__V1__CandidateProfile prof = LUNAMATCH__V1__CANDIDATE_PROFILE__INIT;
	ProtobufCMessage *c = (ProtobufCMessage *) 1;
	uint8_t *b, *ext;
	char *big;
	/* An unknown field: number 99, length-delimited, 3 bytes. */
	static const uint8_t unknown[] = {0x9a, 0x06, 0x03, 'a', 'b', 'c'};
	size_t len;

	(void) state;
	b = posting_bytes(&len);
	compact_matches(JP, b, len);
	ext = malloc(len + sizeof(unknown));
	assert_non_null(ext);
	memcpy(ext, b, len);
	memcpy(ext + len, unknown, sizeof(unknown));
	compact_matches(JP, ext, len + sizeof(unknown));
	free(ext);
	free(b);

	prof.id = "c-1";
	prof.headline = "Dev";
	q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE;
	q.profile = &prof;
	q.top_k = 7;
	assert_int_equal(lm_pb_encode(&q.base, &b, &len), LM_OK);
	compact_matches(&lunamatch__v1__match_jobs_request__descriptor, b, len);
	free(b);
	q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
	q.candidate_id = "c-2";
	assert_int_equal(lm_pb_encode(&q.base, &b, &len), LM_OK);
	compact_matches(&lunamatch__v1__match_jobs_request__descriptor, b, len);
	free(b);

	me.key = "k";
	me.value = "v";
	r.method = "m";
	r.n_metadata = 1;
	r.metadata = mes;
	r.payload.data = (uint8_t *) "\x00\x01\x02";
	r.payload.len = 3;
	assert_int_equal(lm_pb_encode(&r.base, &b, &len), LM_OK);
	compact_matches(&lunamatch__v1__rpc_request__descriptor, b, len);
	free(b);
	/* An empty message. */
	compact_matches(JP, (const uint8_t *) "", 0);
	/* A record larger than the scratch memory on the stack. */
	big = malloc(BIG_TEXT + 1);
	assert_non_null(big);
	memset(big, 'x', BIG_TEXT);
	big[BIG_TEXT] = '\0';
	prof.headline = big;
	assert_int_equal(lm_pb_encode(&prof.base, &b, &len), LM_OK);
	compact_matches(&lunamatch__v1__candidate_profile__descriptor, b, len);
	free(b);
	free(big);
	/* Bad input: the checks of lm_pb_decode. */
	assert_int_equal(lm_pb_decode_compact(JP,
	                     "\x0a\x05"
	                     "ab",
	                     4, MAXLEN, &c, NULL, 0),
	    LM_EPARSE);
	assert_null(c);

	/* A hand-built message with empty bytes and an empty array that still
	 * point somewhere: the copy never points into its source. */
	r.payload.data = (uint8_t *) "x";
	r.payload.len = 0;
	r.n_metadata = 0;
	assert_int_equal(lm_pb_compact(&r.base, &c, NULL), LM_OK);
	assert_null(((Lunamatch__V1__RpcRequest *) c)->payload.data);
	assert_null(((Lunamatch__V1__RpcRequest *) c)->metadata);
	free(c);

	assert_int_equal(lm_pb_compact(NULL, &c, NULL), LM_EINVAL);
	assert_null(c);
	assert_int_equal(lm_pb_compact(&q.base, NULL, NULL), LM_EINVAL);
}

/* lm_pb_unpack_compact skips only the checks of lm_pb_decode: a string
 * that is not UTF-8 comes through as it is, while bytes protobuf-c cannot
 * unpack are still refused. */
static void
test_unpack_compact(void **state)
{
	const char bad_title[] = "\x22\x02\xc3\x28";
	ProtobufCMessage *c = (ProtobufCMessage *) 1;

	(void) state;
	assert_int_equal(
	    lm_pb_decode_compact(JP, bad_title, 4, MAXLEN, &c, NULL, 0), LM_EPARSE);
	assert_null(c);
	assert_int_equal(lm_pb_unpack_compact(JP, bad_title, 4, &c), LM_OK);
	assert_memory_equal(((Lunamatch__V1__JobPosting *) c)->title, "\xc3\x28", 3);
	free(c);
	/* Truncated: a length past the end, a value cut short. */
	c = (ProtobufCMessage *) 1;
	assert_int_equal(lm_pb_unpack_compact(JP,
	                     "\x0a\x05"
	                     "ab",
	                     4, &c),
	    LM_EPARSE);
	assert_null(c);
	assert_int_equal(lm_pb_unpack_compact(JP, "\x08\x80", 2, &c), LM_EPARSE);
	assert_null(c);
	assert_int_equal(lm_pb_unpack_compact(NULL, "", 0, &c), LM_EINVAL);
	assert_int_equal(lm_pb_unpack_compact(JP, NULL, 1, &c), LM_EINVAL);
	assert_int_equal(lm_pb_unpack_compact(JP, "", 0, NULL), LM_EINVAL);
}

/* A copy packs to the same bytes, shares no memory with its original and
 * outlives it; NULL arguments are refused. */
static void
test_copy(void **state)
{
	(void) state;
	size_t len;
	uint8_t *bytes = posting_bytes(&len);
	ProtobufCMessage *m = NULL, *c = NULL;
	char err[256];
	assert_int_equal(lm_pb_decode(JP, bytes, len, len, &m, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_copy(m, &c), LM_OK);
	assert_non_null(c);
	assert_ptr_not_equal(c, m);
	Lunamatch__V1__JobPosting *p = (Lunamatch__V1__JobPosting *) m;
	Lunamatch__V1__JobPosting *q = (Lunamatch__V1__JobPosting *) c;
	assert_ptr_not_equal(q->id, p->id);
	assert_ptr_not_equal(q->skills[1], p->skills[1]);
	protobuf_c_message_free_unpacked(m, NULL);

	assert_packs_to(c, bytes, len);
	protobuf_c_message_free_unpacked(c, NULL);
	free(bytes);

	Lunamatch__V1__RpcResponse empty = LUNAMATCH__V1__RPC_RESPONSE__INIT;
	c = &empty.base;
	assert_int_equal(lm_pb_copy(NULL, &c), LM_EINVAL);
	assert_null(c);
	assert_int_equal(lm_pb_copy(&empty.base, NULL), LM_EINVAL);
}

/* lm_pb_share keeps one copy of each short text, apart from the caller's:
 * the same pointer for the same text, none for NULL or a text longer than
 * LM_PB_SHARED_LEN. */
static void
test_share(void **state)
{
	char text[LM_PB_SHARED_LEN + 2];
	const char *a, *b;

	(void) state;
	memset(text, 's', LM_PB_SHARED_LEN);
	text[LM_PB_SHARED_LEN] = '\0';
	a = lm_pb_share(text); /* exactly LM_PB_SHARED_LEN bytes */
	assert_non_null(a);
	assert_ptr_not_equal(a, text);
	assert_string_equal(a, text);
	text[0] = 't'; /* the shared copy is not the caller's */
	assert_int_equal(a[0], 's');
	b = lm_pb_share(text);
	assert_ptr_not_equal(a, b);
	text[0] = 's';
	assert_ptr_equal(lm_pb_share(text), a);
	assert_ptr_equal(lm_pb_share("Python"), lm_pb_share("Python"));
	assert_string_equal(lm_pb_share("M\xc3\xbcnchen"), "M\xc3\xbcnchen");
	text[LM_PB_SHARED_LEN] = 'x';
	text[LM_PB_SHARED_LEN + 1] = '\0';
	assert_null(lm_pb_share(text));
	assert_null(lm_pb_share(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_strip_unknown),
	    cmocka_unit_test(test_copy),
	    cmocka_unit_test(test_share),
	    cmocka_unit_test(test_arguments_and_limit),
	    cmocka_unit_test(test_out_of_memory),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_garbage_never_crashes),
	    cmocka_unit_test(test_compact),
	    cmocka_unit_test(test_unpack_compact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
