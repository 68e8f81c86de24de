/*
 * test_json.c - the JSON <-> protobuf codec.
 *
 * Round trips every message type of proto/lunamatch/v1, fully populated by a
 * filler driven by the generated descriptors, and a test-only message type
 * (lmtest.AllTypes, descriptor written out below) that carries every scalar
 * type protobuf has, since the lunamatch schemas use only some of them.
 * Then the exact text form, and every rejection with its reason.
 */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"
#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/records.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "lunamatch/v1/store.pb-c.h"

/* ---- lmtest.AllTypes: one field of every type, proto3 style -------------- */

typedef struct {
	ProtobufCMessage base;
	int32_t i32, s32, sf32;
	uint32_t u32, f32;
	int64_t i64, s64, sf64;
	uint64_t u64, f64;
	float fl;
	double db;
	protobuf_c_boolean b;
	char *str;
	ProtobufCBinaryData by;
	Lunamatch__V1__Location *loc;
	size_t n_ri32;
	int32_t *ri32;
	size_t n_rs64;
	int64_t *rs64;
	size_t n_rstr;
	char **rstr;
	size_t n_rby;
	ProtobufCBinaryData *rby;
	size_t n_rloc;
	Lunamatch__V1__Location **rloc;
	size_t n_rbool;
	protobuf_c_boolean *rbool;
	uint32_t choice_case;
	union {
		int32_t c_i32;
		char *c_str;
		Lunamatch__V1__Location *c_loc;
	};
} AllTypes;

#define F(name, id, label, type, q, member, desc, def, flags)                            \
	{                                                                                \
		name, id, PROTOBUF_C_LABEL_##label, PROTOBUF_C_TYPE_##type, q,           \
		    offsetof(AllTypes, member), desc, def, flags, 0, NULL, NULL          \
	}
#define S(name, id, type, member) F(name, id, NONE, type, 0, member, NULL, NULL, 0)
#define R(name, id, type, member, flags)                                                 \
	F(name, id, REPEATED, type, offsetof(AllTypes, n_##member), member, NULL, NULL,  \
	    flags)
#define O(name, id, type, member, desc, def)                                             \
	F(name, id, NONE, type, offsetof(AllTypes, choice_case), member, desc, def,      \
	    PROTOBUF_C_FIELD_FLAG_ONEOF)

static const ProtobufCFieldDescriptor all_fields[] = {
    S("i32", 1, INT32, i32),
    S("s32", 2, SINT32, s32),
    S("sf32", 3, SFIXED32, sf32),
    S("u32", 4, UINT32, u32),
    S("f32", 5, FIXED32, f32),
    S("i64", 6, INT64, i64),
    S("s64", 7, SINT64, s64),
    S("sf64", 8, SFIXED64, sf64),
    S("u64", 9, UINT64, u64),
    S("f64", 10, FIXED64, f64),
    S("fl", 11, FLOAT, fl),
    S("db", 12, DOUBLE, db),
    S("b", 13, BOOL, b),
    F("str", 14, NONE, STRING, 0, str, NULL, protobuf_c_empty_string, 0),
    S("by", 15, BYTES, by),
    F("loc", 16, NONE, MESSAGE, 0, loc, &lunamatch__v1__location__descriptor, NULL, 0),
    R("ri32", 17, INT32, ri32, PROTOBUF_C_FIELD_FLAG_PACKED),
    R("rs64", 18, SINT64, rs64, PROTOBUF_C_FIELD_FLAG_PACKED),
    R("rstr", 19, STRING, rstr, 0),
    R("rby", 20, BYTES, rby, 0),
    F("rloc", 21, REPEATED, MESSAGE, offsetof(AllTypes, n_rloc), rloc,
        &lunamatch__v1__location__descriptor, NULL, 0),
    R("rbool", 22, BOOL, rbool, PROTOBUF_C_FIELD_FLAG_PACKED),
    O("c_i32", 23, INT32, c_i32, NULL, NULL),
    O("c_str", 24, STRING, c_str, NULL, protobuf_c_empty_string),
    O("c_loc", 25, MESSAGE, c_loc, &lunamatch__v1__location__descriptor, NULL),
};
#define N_ALL (sizeof(all_fields) / sizeof(all_fields[0]))

static unsigned all_by_name[N_ALL];
static const ProtobufCIntRange all_ranges[] = {{1, 0}, {0, N_ALL}};
static void all_init(ProtobufCMessage *m);

static const ProtobufCMessageDescriptor all_desc = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "lmtest.AllTypes", "AllTypes", "AllTypes", "lmtest", sizeof(AllTypes), N_ALL,
    all_fields, all_by_name, 1, all_ranges, all_init, NULL, NULL, NULL};

static void
all_init(ProtobufCMessage *m)
{
	memset(m, 0, sizeof(AllTypes));
	m->descriptor = &all_desc;
	((AllTypes *) m)->str = (char *) protobuf_c_empty_string;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(all_fields[*(const unsigned *) a].name,
	    all_fields[*(const unsigned *) b].name);
}

static int
setup_all(void **state)
{
	(void) state;
	for (unsigned i = 0; i < N_ALL; i++)
		all_by_name[i] = i;
	qsort(all_by_name, N_ALL, sizeof(unsigned), by_name);
	return 0;
}

/* ---- every message type of proto/lunamatch/v1 --------------------------- */

static const ProtobufCMessageDescriptor *const all_types[] = {
    &lunamatch__v1__location__descriptor,
    &lunamatch__v1__salary__descriptor,
    &lunamatch__v1__posting_skill__descriptor,
    &lunamatch__v1__candidate_skill__descriptor,
    &lunamatch__v1__requirement_group__descriptor,
    &lunamatch__v1__compliance_warning__descriptor,
    &lunamatch__v1__job_posting__descriptor,
    &lunamatch__v1__career_goals__descriptor,
    &lunamatch__v1__candidate_profile__descriptor,
    &lunamatch__v1__job_filters__descriptor,
    &lunamatch__v1__candidate_filters__descriptor,
    &lunamatch__v1__match_jobs_request__descriptor,
    &lunamatch__v1__match_jobs_response__descriptor,
    &lunamatch__v1__match_candidates_request__descriptor,
    &lunamatch__v1__match_candidates_response__descriptor,
    &lunamatch__v1__explain_match_request__descriptor,
    &lunamatch__v1__explain_match_response__descriptor,
    &lunamatch__v1__get_posting_request__descriptor,
    &lunamatch__v1__get_posting_response__descriptor,
    &lunamatch__v1__get_profile_request__descriptor,
    &lunamatch__v1__get_profile_response__descriptor,
    &lunamatch__v1__health_check_request__descriptor,
    &lunamatch__v1__health_check_response__descriptor,
    &lunamatch__v1__match__descriptor,
    &lunamatch__v1__feature_contribution__descriptor,
    &lunamatch__v1__skill_match__descriptor,
    &lunamatch__v1__veto__descriptor,
    &lunamatch__v1__improvement__descriptor,
    &lunamatch__v1__explanation__descriptor,
    &lunamatch__v1__match_event__descriptor,
    &lunamatch__v1__metadata_entry__descriptor,
    &lunamatch__v1__rpc_request__descriptor,
    &lunamatch__v1__rpc_response__descriptor,
    &lunamatch__v1__change_entry__descriptor,
    &lunamatch__v1__store_notify__descriptor,
    &lunamatch__v1__outbox_entry__descriptor,
    &all_desc,
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

/* ---- a filler that sets every field from the descriptor ----------------- */

static ProtobufCMessage *filled(
    const ProtobufCMessageDescriptor *desc, unsigned k, unsigned pick);

/* Sets one value of field f at dst; k varies the value. Never a zero value,
 * except -0.0 in repeated fields (rep), where protobuf keeps it. */
static void
fill_value(
    const ProtobufCFieldDescriptor *f, void *dst, unsigned k, unsigned pick, bool rep)
{
	static const char *const strs[] = {
	    "plain",
	    "quote \" backslash \\ slash / nl \n cr \r tab \t bs \b ff \f ctl \x01\x1f "
	    "del \x7f",
	    "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xe2\x80\xa8",
	    "",
	};
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: {
		static const int32_t v[] = {INT32_MIN, -1, INT32_MAX, -123456};
		*(int32_t *) dst = v[k % 4];
		break;
	}
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: {
		static const uint32_t v[] = {UINT32_MAX, 1, 4000000000u};
		*(uint32_t *) dst = v[k % 3];
		break;
	}
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: {
		static const int64_t v[] = {
		    INT64_MIN, -1, INT64_MAX, -9007199254740993LL};
		*(int64_t *) dst = v[k % 4];
		break;
	}
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		static const uint64_t v[] = {
		    UINT64_MAX, 1, (uint64_t) INT64_MAX + 1, 9007199254740993ULL};
		*(uint64_t *) dst = v[k % 4];
		break;
	}
	case PROTOBUF_C_TYPE_FLOAT: {
		static const float v[] = {
		    0.1f, -FLT_MAX, FLT_TRUE_MIN, 3.0f, 0.7f, -0.0f};
		*(float *) dst = v[k % (rep ? 6 : 5)];
		break;
	}
	case PROTOBUF_C_TYPE_DOUBLE: {
		static const double v[] = {
		    0.1, -DBL_MAX, DBL_TRUE_MIN, 1e21, 1.0 / 3, -0.0};
		*(double *) dst = v[k % (rep ? 6 : 5)];
		break;
	}
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *) dst = 1;
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		*(int32_t *) dst = ed->values[1 + k % (ed->n_values - 1)].value;
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		*(char **) dst = lmt_strdup(strs[k % 3]);
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = dst;
		b->len = k % 4 == 3 ? 256 : 1 + k % 4;
		b->data = malloc(b->len);
		assert_non_null(b->data);
		for (size_t i = 0; i < b->len; i++)
			b->data[i] = (uint8_t) (b->len == 256 ? i : 0xfb + k + i);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **) dst = filled(f->descriptor, k + 1, pick);
		break;
	}
}

/* A new message of type desc with every field set; of each oneof, member
 * number pick (modulo the member count). Freed with free_unpacked. */
static ProtobufCMessage *
filled(const ProtobufCMessageDescriptor *desc, unsigned k, unsigned pick)
{
	ProtobufCMessage *m = malloc(desc->sizeof_message);
	assert_non_null(m);
	protobuf_c_message_init(desc, m);
	char *base = (char *) m;
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			unsigned members = 0, mine = 0;
			for (unsigned j = 0; j < desc->n_fields; j++) {
				const ProtobufCFieldDescriptor *g = &desc->fields[j];
				if ((g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
				    g->quantifier_offset == f->quantifier_offset) {
					if (j == i)
						mine = members;
					members++;
				}
			}
			if (mine != pick % members)
				continue;
			fill_value(f, base + f->offset, k + i, pick, false);
			*(uint32_t *) (base + f->quantifier_offset) = f->id;
		} else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = 3 + (k + i) % 4;
			size_t es = f->type == PROTOBUF_C_TYPE_STRING    ? sizeof(char *)
			            : f->type == PROTOBUF_C_TYPE_MESSAGE ? sizeof(void *)
			            : f->type == PROTOBUF_C_TYPE_BYTES
			                ? sizeof(ProtobufCBinaryData)
			            : f->type == PROTOBUF_C_TYPE_BOOL
			                ? sizeof(protobuf_c_boolean)
			            : (f->type == PROTOBUF_C_TYPE_DOUBLE ||
			                  f->type == PROTOBUF_C_TYPE_INT64 ||
			                  f->type == PROTOBUF_C_TYPE_SINT64 ||
			                  f->type == PROTOBUF_C_TYPE_SFIXED64 ||
			                  f->type == PROTOBUF_C_TYPE_UINT64 ||
			                  f->type == PROTOBUF_C_TYPE_FIXED64)
			                ? 8
			                : 4;
			char *arr = calloc(n, es);
			assert_non_null(arr);
			*(void **) (base + f->offset) = arr;
			for (size_t e = 0; e < n; e++) {
				fill_value(
				    f, arr + e * es, k + i + (unsigned) e, pick, true);
				(*(size_t *) (base + f->quantifier_offset))++;
			}
		} else {
			fill_value(f, base + f->offset, k + i, pick, false);
		}
	}
	return m;
}

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf = NULL;
	assert_int_equal(lm_pb_encode(m, &buf, len), LM_OK);
	return buf;
}

static void
assert_same_bytes(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la, lb;
	uint8_t *pa = pack(a, &la), *pb = pack(b, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(pa, pb, la);
	free(pa);
	free(pb);
}

static ProtobufCMessage *
decode_ok(const ProtobufCMessageDescriptor *desc, const char *text)
{
	ProtobufCMessage *m = NULL;
	char err[256];
	int rc = lm_json_decode(desc, text, strlen(text), &m, err, sizeof(err));
	if (rc != LM_OK)
		fail_msg(
		    "decode of %s failed: %s (%s)", desc->name, err, lm_strerror(rc));
	assert_non_null(m);
	return m;
}

/* Decodes text as desc, expecting code and an error containing want. */
static void
reject(
    const ProtobufCMessageDescriptor *desc, const char *text, int code, const char *want)
{
	ProtobufCMessage *m = (ProtobufCMessage *) 1;
	char err[256];
	int rc = lm_json_decode(desc, text, strlen(text), &m, err, sizeof(err));
	if (rc != code || !strstr(err, want))
		fail_msg("%s: got %s \"%s\", want %s \"%s\"", text, lm_errname(rc), err,
		    lm_errname(code), want);
	assert_null(m);
}

static char *
encode_ok(const ProtobufCMessage *m, unsigned flags)
{
	char *text = NULL;
	assert_int_equal(lm_json_encode(m, flags, &text), LM_OK);
	assert_non_null(text);
	return text;
}

/* ---- round trips -------------------------------------------------------- */

/* Every type, both oneof members, every flag combination: message -> JSON ->
 * message gives the same protobuf bytes, and JSON -> message -> JSON the same
 * text. The protobuf form decodes back to the same JSON as well. */
static void
test_roundtrip_every_type(void **state)
{
	(void) state;
	static const unsigned flagsets[] = {0, LM_JSON_PRETTY, LM_JSON_EMIT_DEFAULTS,
	    LM_JSON_PRETTY | LM_JSON_EMIT_DEFAULTS};
	for (size_t t = 0; t < N_TYPES; t++) {
		for (unsigned pick = 0; pick < 3; pick++) {
			ProtobufCMessage *m =
			    filled(all_types[t], 7 * (unsigned) t + pick, pick);
			for (size_t fi = 0; fi < 4; fi++) {
				char *text = encode_ok(m, flagsets[fi]);
				ProtobufCMessage *back = decode_ok(all_types[t], text);
				assert_same_bytes(m, back);
				char *again = encode_ok(back, flagsets[fi]);
				assert_string_equal(text, again);

				/* The jansson value gives the same message. */
				json_t *v = lm_json_encode_value(m, flagsets[fi]);
				assert_non_null(v);
				ProtobufCMessage *fromv = NULL;
				char err[256];
				assert_int_equal(lm_json_decode_value(all_types[t], v,
				                     &fromv, err, sizeof(err)),
				    LM_OK);
				assert_same_bytes(m, fromv);
				json_decref(v);

				/* And so does the protobuf form. */
				size_t len;
				uint8_t *bytes = pack(m, &len);
				ProtobufCMessage *frompb = NULL;
				assert_int_equal(lm_pb_decode(all_types[t], bytes, len,
				                     len, &frompb, err, sizeof(err)),
				    LM_OK);
				char *third = encode_ok(frompb, flagsets[fi]);
				assert_string_equal(text, third);

				free(third);
				free(bytes);
				protobuf_c_message_free_unpacked(frompb, NULL);
				protobuf_c_message_free_unpacked(fromv, NULL);
				free(again);
				protobuf_c_message_free_unpacked(back, NULL);
				free(text);
			}
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
}

/* The table above lists every message of every schema: a new message type
 * without a round trip fails here. */
static void
test_table_lists_every_message(void **state)
{
	(void) state;
	static const char *const files[] = {"records", "rpc", "match", "events", "store"};
	int seen = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char rel[128];
		snprintf(rel, sizeof(rel), "proto/lunamatch/v1/%s.proto", files[i]);
		char *text = lmt_read_file(lmt_src(rel), NULL);
		assert_non_null(text);
		for (char *p = text; (p = strstr(p, "message ")) != NULL; p += 8) {
			/* only declarations: at the start of a line, after indentation */
			char *q = p;
			while (q > text && (q[-1] == ' ' || q[-1] == '\t'))
				q--;
			if (q > text && q[-1] != '\n')
				continue;
			char name[64];
			size_t n = 0;
			for (const char *s = p + 8;
			     (isalnum((unsigned char) *s) || *s == '_') &&
			     n < sizeof(name) - 1;
			     s++)
				name[n++] = *s;
			name[n] = '\0';
			bool found = false;
			for (size_t t = 0; t < N_TYPES; t++)
				found = found ||
				        (strcmp(all_types[t]->short_name, name) == 0 &&
				            strcmp(all_types[t]->package_name,
				                "lunamatch.v1") == 0);
			if (!found)
				fail_msg("message %s of %s.proto has no round-trip test",
				    name, files[i]);
			seen++;
		}
		free(text);
	}
	assert_int_equal(seen, N_TYPES - 1); /* all but lmtest.AllTypes */
}

/* A message with nothing set: "{}" by default; with EMIT_DEFAULTS every
 * non-message field, and that decodes to an empty message again. */
static void
test_defaults(void **state)
{
	(void) state;
	Lunamatch__V1__Salary s = LUNAMATCH__V1__SALARY__INIT;
	char *text = encode_ok(&s.base, 0);
	assert_string_equal(text, "{}");
	free(text);
	text = encode_ok(&s.base, LM_JSON_EMIT_DEFAULTS);
	assert_string_equal(text,
	    "{\"min\":0.0,\"max\":0.0,\"currency\":\"\",\"period\":\"SALARY_PERIOD_"
	    "UNSPECIFIED\","
	    "\"annual_min\":0,\"annual_max\":0,\"rates_version\":\"\"}");
	ProtobufCMessage *back = decode_ok(&lunamatch__v1__salary__descriptor, text);
	assert_same_bytes(&s.base, back);
	protobuf_c_message_free_unpacked(back, NULL);
	free(text);

	/* Message fields stay out even with EMIT_DEFAULTS; repeated ones are []. */
	Lunamatch__V1__CareerGoals g = LUNAMATCH__V1__CAREER_GOALS__INIT;
	text = encode_ok(&g.base, LM_JSON_EMIT_DEFAULTS);
	assert_string_equal(text, "{\"desired_titles\":[],\"desired_categories\":[],"
	                          "\"desired_industries\":[]}");
	free(text);
	Lunamatch__V1__GetPostingResponse r = LUNAMATCH__V1__GET_POSTING_RESPONSE__INIT;
	text = encode_ok(&r.base, LM_JSON_EMIT_DEFAULTS);
	assert_string_equal(text, "{}");
	free(text);

	/* null is unset; a oneof member that is null does not count. */
	back = decode_ok(&lunamatch__v1__match_jobs_request__descriptor,
	    "{\"candidate_id\":null,\"profile\":{\"id\":\"p1\"},\"filters\":null,"
	    "\"top_k\":null}");
	Lunamatch__V1__MatchJobsRequest *q = (Lunamatch__V1__MatchJobsRequest *) back;
	assert_int_equal(
	    q->subject_case, LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE);
	assert_string_equal(q->profile->id, "p1");
	assert_null(q->filters);
	assert_int_equal(q->top_k, 0);
	protobuf_c_message_free_unpacked(back, NULL);
}

/* A hand-built posting: the exact compact text, then pretty text. */
static void
test_exact_text(void **state)
{
	(void) state;
	Lunamatch__V1__Salary sal = LUNAMATCH__V1__SALARY__INIT;
	sal.min = 50000.5;
	sal.max = 0.1;
	sal.currency = "EUR";
	sal.period = LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_YEAR;
	sal.annual_min = -5;
	sal.annual_max = INT64_MAX;
	Lunamatch__V1__PostingSkill sk1 = LUNAMATCH__V1__POSTING_SKILL__INIT;
	sk1.name = "Python";
	sk1.weight = 0.3f;
	Lunamatch__V1__PostingSkill sk2 = LUNAMATCH__V1__POSTING_SKILL__INIT;
	sk2.name = "C";
	Lunamatch__V1__PostingSkill *skills[] = {&sk1, &sk2};
	float emb[] = {0.25f, -1.5f, 3.0f};
	Lunamatch__V1__JobPosting p = LUNAMATCH__V1__JOB_POSTING__INIT;
	p.id = "job-1";
	p.version = UINT64_MAX;
	p.title = "Data \"Engineer\"";
	p.employment_type = LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME;
	p.salary = &sal;
	p.n_skills = 2;
	p.skills = skills;
	p.posted_at = -1;
	p.n_embedding = 3;
	p.embedding = emb;

	const char *want =
	    "{\"id\":\"job-1\",\"version\":\"18446744073709551615\",\"title\":\"Data "
	    "\\\"Engineer\\\"\",\"employment_type\":\"EMPLOYMENT_TYPE_FULL_TIME\","
	    "\"salary\":{"
	    "\"min\":50000.5,\"max\":0.1,\"currency\":\"EUR\",\"period\":\"SALARY_PERIOD_"
	    "YEAR\","
	    "\"annual_min\":-5,\"annual_max\":9223372036854775807},\"skills\":[{\"name\":"
	    "\"Python\",\"weight\":0.3},{\"name\":\"C\"}],\"posted_at\":-1,\"embedding\":"
	    "[0.25,"
	    "-1.5,3.0]}";
	char *text = encode_ok(&p.base, 0);
	assert_string_equal(text, want);
	free(text);

	/* Text -> message -> text is stable. */
	ProtobufCMessage *back = decode_ok(&lunamatch__v1__job_posting__descriptor, want);
	assert_same_bytes(&p.base, back);
	text = encode_ok(back, 0);
	assert_string_equal(text, want);
	free(text);
	protobuf_c_message_free_unpacked(back, NULL);

	Lunamatch__V1__CareerGoals g = LUNAMATCH__V1__CAREER_GOALS__INIT;
	char *titles[] = {"a", "b"};
	g.n_desired_titles = 2;
	g.desired_titles = titles;
	text = encode_ok(&g.base, LM_JSON_PRETTY);
	assert_string_equal(
	    text, "{\n  \"desired_titles\": [\n    \"a\",\n    \"b\"\n  ]\n}");
	free(text);
}

/* What decoding accepts beyond the canonical form. */
static void
test_lenient_input(void **state)
{
	(void) state;
	ProtobufCMessage *m = decode_ok(&all_desc,
	    "{\"i32\":\"-2147483648\",\"u32\":4294967295,\"i64\":\"-"
	    "9223372036854775808\","
	    "\"u64\":9007199254740991.0,\"f64\":\"18446744073709551615\","
	    "\"s32\":3.0,\"fl\":1,\"db\":-2,\"by\":\"QUJD\",\"rby\":"
	    "[\"QQ\",\"QUI=\",\"\"],"
	    "\"c_i32\":7}");
	AllTypes *a = (AllTypes *) m;
	assert_int_equal(a->i32, INT32_MIN);
	assert_int_equal(a->u32, UINT32_MAX);
	assert_true(a->i64 == INT64_MIN);
	assert_true(a->u64 == 9007199254740991ULL);
	assert_true(a->f64 == UINT64_MAX);
	assert_int_equal(a->s32, 3);
	assert_true(a->fl == 1.0f && a->db == -2.0);
	assert_int_equal(a->by.len, 3);
	assert_memory_equal(a->by.data, "ABC", 3);
	assert_int_equal(a->n_rby, 3);
	assert_int_equal(a->rby[0].len, 1);
	assert_int_equal(a->rby[1].len, 2);
	assert_int_equal(a->rby[2].len, 0);
	assert_int_equal(a->choice_case, 23);
	assert_int_equal(a->c_i32, 7);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Enums by number; 64-bit fields as decimal strings. */
	m = decode_ok(&lunamatch__v1__job_posting__descriptor,
	    "{\"employment_type\":3,\"version\":\"42\",\"posted_at\":\"-7\"}");
	Lunamatch__V1__JobPosting *p = (Lunamatch__V1__JobPosting *) m;
	assert_int_equal(
	    p->employment_type, LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT);
	assert_int_equal(p->version, 42);
	assert_int_equal(p->posted_at, -7);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Nested enums by their own value names. */
	m = decode_ok(&lunamatch__v1__health_check_response__descriptor,
	    "{\"status\":\"NOT_SERVING\"}");
	assert_int_equal(((Lunamatch__V1__HealthCheckResponse *) m)->status,
	    LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Exactly at the byte limit is fine. */
	size_t n = LM_JSON_MAX_BYTES;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	memcpy(big, "{\"description\":\"", 16);
	memcpy(big + n - 2, "\"}", 2);
	big[n] = '\0';
	ProtobufCMessage *bm = NULL;
	char err[256];
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor, big, n,
	                     &bm, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(strlen(((Lunamatch__V1__JobPosting *) bm)->description), n - 18);
	protobuf_c_message_free_unpacked(bm, NULL);

	/* One byte over is not. */
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor, big,
	                     n + 1, &bm, err, sizeof(err)),
	    LM_E2BIG);
	assert_non_null(strstr(err, "exceeds the limit"));
	free(big);
}

/* ---- rejections --------------------------------------------------------- */

static void
test_reject_syntax(void **state)
{
	(void) state;
	const ProtobufCMessageDescriptor *jp = &lunamatch__v1__job_posting__descriptor;
	reject(jp, "{\"id\": }", LM_EPARSE, "invalid JSON at line 1, column 8");
	reject(jp, "{\"id\":\"a\"}\n x", LM_EPARSE, "end of file expected");
	reject(jp, "{\"id\":\"a\",", LM_EPARSE, "line 1");
	reject(jp, "", LM_EPARSE, "invalid JSON");
	/* A key twice is JSON that does not fit a record, not bad JSON. */
	reject(jp, "{\"id\":\"a\",\"id\":\"b\"}", LM_ESCHEMA, "duplicate object key");
	reject(jp, "{\"title\":\"a\\u0000b\"}", LM_EPARSE, "\\u0000 is not allowed");
	reject(jp, "{\"title\":\"\xff\"}", LM_EPARSE, "unable to decode byte 0xff");
	reject(&lunamatch__v1__match_event__descriptor, "{\"score\":NaN}", LM_EPARSE,
	    "invalid token");
	reject(&lunamatch__v1__match_event__descriptor, "{\"score\":Infinity}", LM_EPARSE,
	    "invalid token");
	/* Valid JSON with a number no C type here holds: out of range, not
	 * "invalid JSON" (a uint64 above 2^63-1 is read as a string only). */
	reject(&lunamatch__v1__match_event__descriptor, "{\"score\":1e400}", LM_ESCHEMA,
	    "number out of range at line 1, column 14: real number overflow");
	reject(jp, "{\"version\":18446744073709551615}", LM_ESCHEMA,
	    "number out of range at line 1, column 31: too big integer");
	reject(jp, "{\"posted_at\":-9223372036854775809}", LM_ESCHEMA,
	    "number out of range");
	reject(jp, "[]", LM_ESCHEMA, "expected an object, got array");
}

static void
test_reject_schema(void **state)
{
	(void) state;
	const ProtobufCMessageDescriptor *jp = &lunamatch__v1__job_posting__descriptor;
	reject(jp, "{\"salary\":{\"currenccy\":\"EUR\"}}", LM_ESCHEMA,
	    "salary.currenccy: unknown field");
	reject(jp, "{\"Title\":\"x\"}", LM_ESCHEMA, "Title: unknown field");
	reject(jp,
	    "{\"skills\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\",\"weight\":"
	    "\"high\"}]}",
	    LM_ESCHEMA, "skills[2].weight: expected a number, got string");
	reject(jp, "{\"title\":5}", LM_ESCHEMA, "title: expected a string, got number");
	reject(
	    jp, "{\"title\":true}", LM_ESCHEMA, "title: expected a string, got boolean");
	reject(
	    jp, "{\"salary\":[]}", LM_ESCHEMA, "salary: expected an object, got array");
	reject(
	    jp, "{\"skills\":{}}", LM_ESCHEMA, "skills: expected an array, got object");
	reject(jp, "{\"skills\":[null]}", LM_ESCHEMA, "skills[0]: null is not allowed");
	reject(jp, "{\"locations\":[{\"city\":\"x\"},{\"country\":1}]}", LM_ESCHEMA,
	    "locations[1].country: expected a string, got number");
	reject(jp, "{\"employment_type\":\"EMPLOYMENT_TYPE_SOMETIMES\"}", LM_ESCHEMA,
	    "employment_type: unknown value \"EMPLOYMENT_TYPE_SOMETIMES\" of enum "
	    "lunamatch.v1.EmploymentType");
	reject(jp, "{\"employment_type\":\"employment_type_full_time\"}", LM_ESCHEMA,
	    "unknown value");
	reject(jp, "{\"employment_type\":\"has space\"}", LM_ESCHEMA,
	    "employment_type: unknown value of enum");
	reject(jp, "{\"employment_type\":2147483648}", LM_ESCHEMA,
	    "employment_type: unknown value of enum lunamatch.v1.EmploymentType");
	reject(jp, "{\"employment_type\":true}", LM_ESCHEMA, "expected an enum name");
	reject(jp, "{\"remote\":1.5}", LM_ESCHEMA, "expected an integer, got a fraction");
	reject(jp, "{\"version\":-1}", LM_ESCHEMA,
	    "version: integer out of range for uint64");
	reject(jp, "{\"version\":\"18446744073709551616\"}", LM_ESCHEMA,
	    "integer out of range");
	reject(jp, "{\"version\":\"12a\"}", LM_ESCHEMA, "expected an integer");
	reject(jp, "{\"version\":\" 12\"}", LM_ESCHEMA, "expected an integer");
	reject(jp, "{\"version\":\"\"}", LM_ESCHEMA, "expected an integer");
	reject(jp, "{\"version\":\"+1\"}", LM_ESCHEMA, "expected an integer");
	reject(jp, "{\"version\":1e20}", LM_ESCHEMA, "integer out of range");
	/* A real from 2^53 up may be the rounding of another integer than the
	 * text wrote (9223372036854775807.0 reads as 2^63): refused. */
	reject(jp, "{\"version\":9223372036854775807.0}", LM_ESCHEMA,
	    "version: integer written as a real must be below 2^53");
	reject(jp, "{\"posted_at\":-9007199254740993.0}", LM_ESCHEMA,
	    "posted_at: integer written as a real must be below 2^53");
	reject(jp, "{\"version\":1e19}", LM_ESCHEMA, "must be below 2^53");
	reject(jp, "{\"posted_at\":\"9223372036854775808\"}", LM_ESCHEMA,
	    "posted_at: integer out of range for int64");
	reject(jp, "{\"posted_at\":[]}", LM_ESCHEMA, "expected an integer, got array");
	reject(
	    jp, "{\"min_years_experience\":1e39}", LM_ESCHEMA, "out of range for float");
	reject(&lunamatch__v1__match_event__descriptor, "{\"score\":\"NaN\"}", LM_ESCHEMA,
	    "score: expected a number, got string");
	reject(&lunamatch__v1__candidate_profile__descriptor,
	    "{\"willing_to_relocate\":\"yes\"}", LM_ESCHEMA,
	    "expected a boolean, got string");

	/* int32 and uint32 bounds, on the test type. */
	reject(&all_desc, "{\"i32\":2147483648}", LM_ESCHEMA,
	    "i32: integer out of range for int32");
	reject(&all_desc, "{\"sf32\":-2147483649}", LM_ESCHEMA, "out of range for int32");
	reject(&all_desc, "{\"u32\":4294967296}", LM_ESCHEMA,
	    "u32: integer out of range for uint32");
	reject(&all_desc, "{\"f32\":-1}", LM_ESCHEMA, "out of range for uint32");
	reject(&all_desc, "{\"ri32\":[1,2,\"x\"]}", LM_ESCHEMA,
	    "ri32[2]: expected an integer");
	reject(&lunamatch__v1__match_jobs_request__descriptor, "{\"top_k\":4294967296}",
	    LM_ESCHEMA, "top_k: integer out of range for uint32");

	/* Two members of one oneof. */
	reject(&lunamatch__v1__match_jobs_request__descriptor,
	    "{\"candidate_id\":\"c1\",\"profile\":{}}", LM_ESCHEMA,
	    "profile: only one member of a oneof may be set, and candidate_id is already "
	    "set");
	reject(&all_desc, "{\"c_loc\":{},\"c_str\":\"\"}", LM_ESCHEMA,
	    "c_str: only one member of a oneof");

	/* Bad base64. */
	const ProtobufCMessageDescriptor *rq = &lunamatch__v1__rpc_request__descriptor;
	reject(rq, "{\"payload\":\"abc$\"}", LM_ESCHEMA, "payload: invalid base64");
	reject(rq, "{\"payload\":\"A\"}", LM_ESCHEMA, "invalid base64");
	reject(rq, "{\"payload\":\"QQ=\"}", LM_ESCHEMA, "invalid base64");
	reject(rq, "{\"payload\":\"Q===\"}", LM_ESCHEMA, "invalid base64");
	reject(rq, "{\"payload\":\"QQ==QQ==\"}", LM_ESCHEMA, "invalid base64");
	reject(rq, "{\"payload\":\"QU JD\"}", LM_ESCHEMA, "invalid base64");
	reject(rq, "{\"payload\":5}", LM_ESCHEMA, "expected a base64 string, got number");
}

/* An error message decoding text gives, with the decoder's fault. */
static int
decode_err(const char *text, size_t len, char *err, size_t errlen, lm_json_fault *fault)
{
	ProtobufCMessage *m = (ProtobufCMessage *) 1;
	int rc = lm_json_decode_fault(
	    &lunamatch__v1__job_posting__descriptor, text, len, &m, err, errlen, fault);
	assert_null(m);
	return rc;
}

/* Keys of the input are quoted only when echoable; messages stay UTF-8
 * without control characters, cut or not; the fault says what failed. */
static void
test_reject_keys(void **state)
{
	(void) state;
	char err[256];
	lm_json_fault fault;

	/* A key that reads like another failure is not quoted. */
	const char *utf = "{\"UTF-8\":1}";
	assert_int_equal(
	    decode_err(utf, strlen(utf), err, sizeof(err), &fault), LM_ESCHEMA);
	assert_string_equal(err, "<field>: unknown field");
	assert_int_equal(fault, LM_JSON_FAULT_OTHER);

	/* 63 ASCII bytes and a two-byte character: never cut inside it. */
	char text[128];
	int n = snprintf(text, sizeof(text), "{\"%.63s\xc3\xa9\":1}",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(
	    decode_err(text, (size_t) n, err, sizeof(err), &fault), LM_ESCHEMA);
	assert_true(lm_pb_utf8_valid(err, strlen(err)));
	assert_string_equal(err, "<field>: unknown field");

	/* An escape sequence and a newline in a key. */
	const char *ctl = "{\"salary\":{\"a\\u001b[31mb\\nc\":1}}";
	assert_int_equal(
	    decode_err(ctl, strlen(ctl), err, sizeof(err), &fault), LM_ESCHEMA);
	assert_false(lm_text_has_control(err));
	assert_string_equal(err, "salary.<field>: unknown field");

	/* The longest echoable key is quoted, one byte more is not. */
	n = snprintf(text, sizeof(text), "{\"%.64s\":1}",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_int_equal(
	    decode_err(text, (size_t) n, err, sizeof(err), NULL), LM_ESCHEMA);
	assert_int_equal(strlen(err), 64 + strlen(": unknown field"));
	n = snprintf(text, sizeof(text), "{\"%.65s\":1}",
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_int_equal(
	    decode_err(text, (size_t) n, err, sizeof(err), NULL), LM_ESCHEMA);
	assert_string_equal(err, "<field>: unknown field");

	/* jansson quotes the text near an error: a control character there is
	 * written as '?', and a message cut to fit ends before a character it
	 * would cut. */
	const char *bad = "{\"title\":\x01}";
	assert_int_equal(
	    decode_err(bad, strlen(bad), err, sizeof(err), &fault), LM_EPARSE);
	assert_false(lm_text_has_control(err));
	assert_int_equal(fault, LM_JSON_FAULT_OTHER);
	/* C1 too (U+009B, CSI alone), as one '?'. */
	const char *c1 = "{\"title\":\xc2\x9b}";
	assert_int_equal(decode_err(c1, strlen(c1), err, sizeof(err), NULL), LM_EPARSE);
	assert_false(lm_text_has_control(err));
	assert_non_null(strstr(err, "'?'"));
	const char *esc = "{\"title\":\"\xc3\xa9\xc3\xa9\\q\"}";
	assert_int_equal(decode_err(esc, strlen(esc), err, sizeof(err), NULL), LM_EPARSE);
	const char *e = strstr(err, "\xc3\xa9");
	assert_non_null(e);
	size_t cut = (size_t) (e - err) + 2; /* errlen that cuts the first é */
	assert_int_equal(decode_err(esc, strlen(esc), err, cut, NULL), LM_EPARSE);
	assert_int_equal(strlen(err), cut - 2);
	assert_true(lm_pb_utf8_valid(err, strlen(err)));
	/* jansson's quote can end inside a character in mid-message (here the
	 * first byte of U+01F3 after an invalid escape): each byte that is not
	 * part of a whole character is written as '?'. */
	const char *mid = "{\"id\":\"a\\u0\xc7\xb3\"}";
	assert_int_equal(decode_err(mid, strlen(mid), err, sizeof(err), NULL), LM_EPARSE);
	assert_true(lm_pb_utf8_valid(err, strlen(err)));
	assert_false(lm_text_has_control(err));
	assert_non_null(strstr(err, "near '\"a\\u0?'"));

	/* Faults: invalid UTF-8 and unknown enum values, by name and number. */
	const char *u8 = "{\"title\":\"\xff\"}";
	assert_int_equal(decode_err(u8, strlen(u8), err, sizeof(err), &fault), LM_EPARSE);
	assert_int_equal(fault, LM_JSON_FAULT_UTF8);
	const char *en = "{\"employment_type\":\"EMPLOYMENT_TYPE_GIG\"}";
	assert_int_equal(
	    decode_err(en, strlen(en), err, sizeof(err), &fault), LM_ESCHEMA);
	assert_int_equal(fault, LM_JSON_FAULT_ENUM);
	const char *en2 = "{\"employment_type\":-2147483649}";
	assert_int_equal(
	    decode_err(en2, strlen(en2), err, sizeof(err), &fault), LM_ESCHEMA);
	assert_int_equal(fault, LM_JSON_FAULT_ENUM);
	const char *en3 = "{\"employment_type\":4294967296}";
	assert_int_equal(
	    decode_err(en3, strlen(en3), err, sizeof(err), &fault), LM_ESCHEMA);
	assert_int_equal(fault, LM_JSON_FAULT_ENUM);
	/* Half a surrogate pair, escaped, is text that is not UTF-8 (as the
	 * bytes ed a0 80 are), alone or before anything but its other half. */
	const char *sur = "{\"title\":\"a\\ud800\"}";
	assert_int_equal(
	    decode_err(sur, strlen(sur), err, sizeof(err), &fault), LM_EPARSE);
	assert_int_equal(fault, LM_JSON_FAULT_UTF8);
	const char *sur2 = "{\"title\":\"\\udc00\"}";
	assert_int_equal(
	    decode_err(sur2, strlen(sur2), err, sizeof(err), &fault), LM_EPARSE);
	assert_int_equal(fault, LM_JSON_FAULT_UTF8);
	const char *sur3 = "{\"title\":\"\\ud800\\u0041\"}";
	assert_int_equal(
	    decode_err(sur3, strlen(sur3), err, sizeof(err), &fault), LM_EPARSE);
	assert_int_equal(fault, LM_JSON_FAULT_UTF8);
	/* A whole pair is a character; a bad escape is bad JSON. */
	const char *pair = "{\"title\":\"\\ud83d\\ude00\"}";
	ProtobufCMessage *pm = NULL;
	assert_int_equal(lm_json_decode_fault(&lunamatch__v1__job_posting__descriptor,
	                     pair, strlen(pair), &pm, err, sizeof(err), &fault),
	    LM_OK);
	protobuf_c_message_free_unpacked(pm, NULL);
	const char *esc2 = "{\"title\":\"\\uZZZZ\"}";
	assert_int_equal(
	    decode_err(esc2, strlen(esc2), err, sizeof(err), &fault), LM_EPARSE);
	assert_int_equal(fault, LM_JSON_FAULT_OTHER);
	/* A duplicate key: schema, no finer fault. */
	const char *dup = "{\"id\":\"a\",\"id\":\"a\"}";
	assert_int_equal(
	    decode_err(dup, strlen(dup), err, sizeof(err), &fault), LM_ESCHEMA);
	assert_int_equal(fault, LM_JSON_FAULT_OTHER);
	const char *sy = "{\"UTF-8\" 1}";
	assert_int_equal(decode_err(sy, strlen(sy), err, sizeof(err), &fault), LM_EPARSE);
	assert_int_equal(fault, LM_JSON_FAULT_OTHER);
	const char *ok = "{\"id\":\"a\"}";
	ProtobufCMessage *m = NULL;
	fault = LM_JSON_FAULT_ENUM;
	assert_int_equal(lm_json_decode_fault(&lunamatch__v1__job_posting__descriptor, ok,
	                     strlen(ok), &m, err, sizeof(err), &fault),
	    LM_OK);
	assert_int_equal(fault, LM_JSON_FAULT_OTHER);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
test_reject_limits(void **state)
{
	(void) state;
	const ProtobufCMessageDescriptor *jp = &lunamatch__v1__job_posting__descriptor;
	char text[5000];

	/* 32 levels (the object and 31 arrays) are within the limit... */
	int n = snprintf(text, sizeof(text), "{\"skills\":");
	for (int i = 0; i < 31; i++)
		text[n++] = '[';
	for (int i = 0; i < 31; i++)
		text[n++] = ']';
	strcpy(text + n, "}");
	reject(jp, text, LM_ESCHEMA, "skills[0]: expected an object, got array");

	/* ...33 are not. */
	n = snprintf(text, sizeof(text), "{\"skills\":");
	for (int i = 0; i < 32; i++)
		text[n++] = '[';
	for (int i = 0; i < 32; i++)
		text[n++] = ']';
	strcpy(text + n, "}");
	reject(jp, text, LM_E2BIG, "nested deeper than 32 levels");

	/* Deeper than jansson's own parser allows. */
	n = snprintf(text, sizeof(text), "{\"skills\":");
	for (int i = 0; i < 2400; i++)
		text[n++] = '[';
	text[n] = '\0';
	reject(jp, text, LM_E2BIG, "nested deeper");

	/* Over the byte limit: rejected before it is read. */
	char *big = malloc(LM_JSON_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, ' ', LM_JSON_MAX_BYTES + 1);
	ProtobufCMessage *m = NULL;
	char err[256];
	assert_int_equal(
	    lm_json_decode(jp, big, LM_JSON_MAX_BYTES + 1, &m, err, sizeof(err)),
	    LM_E2BIG);
	assert_non_null(strstr(err, "4194305 bytes exceeds the limit of 4194304 bytes"));
	assert_null(m);
	free(big);
}

/* lm_json_decode_value: values built with jansson, NUL in strings, deep
 * trees, a JSON array of records; bad arguments. */
static void
test_decode_value(void **state)
{
	(void) state;
	char err[256];
	ProtobufCMessage *m = NULL;
	json_t *arr = json_loads("[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":7}]", 0, NULL);
	assert_non_null(arr);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(
		    lm_json_decode_value(&lunamatch__v1__candidate_profile__descriptor,
		        json_array_get(arr, i), &m, err, sizeof(err)),
		    LM_OK);
		assert_string_equal(
		    ((Lunamatch__V1__CandidateProfile *) m)->id, i ? "b" : "a");
		protobuf_c_message_free_unpacked(m, NULL);
	}
	assert_int_equal(
	    lm_json_decode_value(&lunamatch__v1__candidate_profile__descriptor,
	        json_array_get(arr, 2), &m, err, sizeof(err)),
	    LM_ESCHEMA);
	assert_string_equal(err, "id: expected a string, got number");
	json_decref(arr);

	json_t *o = json_pack("{s:s%}", "title", "a\0b", (size_t) 3);
	assert_non_null(o);
	assert_int_equal(lm_json_decode_value(&lunamatch__v1__job_posting__descriptor, o,
	                     &m, err, sizeof(err)),
	    LM_ESCHEMA);
	assert_string_equal(err, "title: string contains a NUL character");
	json_decref(o);

	o = json_pack(
	    "{s:s%}", "employment_type", "EMPLOYMENT_TYPE_FULL_TIME\0x", (size_t) 27);
	assert_int_equal(lm_json_decode_value(&lunamatch__v1__job_posting__descriptor, o,
	                     &m, err, sizeof(err)),
	    LM_ESCHEMA);
	json_decref(o);

	json_t *deep = json_object();
	json_t *cur = deep;
	for (int i = 0; i < 40; i++) {
		json_t *next = json_object();
		json_object_set_new(cur, "salary", next);
		cur = next;
	}
	assert_int_equal(lm_json_decode_value(&lunamatch__v1__job_posting__descriptor,
	                     deep, &m, err, sizeof(err)),
	    LM_E2BIG);
	json_decref(deep);

	json_t *nul = json_null();
	assert_int_equal(lm_json_decode_value(&lunamatch__v1__job_posting__descriptor,
	                     nul, &m, err, sizeof(err)),
	    LM_ESCHEMA);
	assert_string_equal(err, "expected an object, got null");
	assert_int_equal(
	    lm_json_decode_value(NULL, nul, &m, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor, NULL, 3,
	                     &m, err, sizeof(err)),
	    LM_EINVAL);
	/* A tiny error buffer is cut, never overrun; NULL is allowed too. */
	char tiny[8];
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor,
	                     "{\"x\":1}", 7, &m, tiny, sizeof(tiny)),
	    LM_ESCHEMA);
	assert_string_equal(tiny, "x: unkn");
	assert_int_equal(lm_json_decode(&lunamatch__v1__job_posting__descriptor,
	                     "{\"x\":1}", 7, &m, NULL, 0),
	    LM_ESCHEMA);
}

/* Control characters are escaped, DEL and C1 (U+009B is a CSI alone) as
 * well as C0, so that printed JSON cannot drive a terminal; C2 A0 (a
 * no-break space) is text. The string reads back the same. */
static void
test_encode_controls(void **state)
{
	(void) state;
	Lunamatch__V1__MatchEvent ev = LUNAMATCH__V1__MATCH_EVENT__INIT;
	ProtobufCMessage *m = NULL;
	char *text = NULL;

	ev.job_id = "a\x1b[1m\x7f\xc2\x9b"
	            "2J\xc2\x80\xc2\x9f\xc2\xa0z";
	assert_int_equal(lm_json_encode(&ev.base, 0, &text), LM_OK);
	assert_string_equal(text, "{\"job_id\":\"a\\u001b[1m\\u007f\\u009b2J\\u0080"
	                          "\\u009f\xc2\xa0z\"}");
	assert_int_equal(lm_json_decode(&lunamatch__v1__match_event__descriptor, text,
	                     strlen(text), &m, NULL, 0),
	    LM_OK);
	assert_string_equal(((Lunamatch__V1__MatchEvent *) m)->job_id, ev.job_id);
	protobuf_c_message_free_unpacked(m, NULL);
	free(text);
}

/* Encoding refuses what JSON cannot carry. */
static void
test_encode_errors(void **state)
{
	(void) state;
	Lunamatch__V1__MatchEvent ev = LUNAMATCH__V1__MATCH_EVENT__INIT;
	char *text = (char *) 1;
	ev.score = NAN;
	assert_int_equal(lm_json_encode(&ev.base, 0, &text), LM_EINVAL);
	assert_null(text);
	ev.score = INFINITY;
	assert_null(lm_json_encode_value(&ev.base, 0));
	/* ...unless they may be written as proto3 writes them. */
	assert_int_equal(
	    lm_json_encode(&ev.base, LM_JSON_NONFINITE_STRINGS, &text), LM_OK);
	assert_string_equal(text, "{\"score\":\"Infinity\"}");
	free(text);
	ev.score = NAN;
	assert_int_equal(
	    lm_json_encode(&ev.base, LM_JSON_NONFINITE_STRINGS, &text), LM_OK);
	assert_string_equal(text, "{\"score\":\"NaN\"}");
	free(text);
	Lunamatch__V1__CandidateSkill sk = LUNAMATCH__V1__CANDIDATE_SKILL__INIT;
	sk.years = -INFINITY;
	assert_int_equal(lm_json_encode(&sk.base, 0, &text), LM_EINVAL);
	assert_int_equal(
	    lm_json_encode(&sk.base, LM_JSON_NONFINITE_STRINGS, &text), LM_OK);
	assert_string_equal(text, "{\"years\":\"-Infinity\"}");
	free(text);
	ev.score = 0.5;
	ev.job_id = "bad \xc3";
	assert_int_equal(lm_json_encode(&ev.base, 0, &text), LM_EINVAL);
	ev.job_id = "ok";
	assert_int_equal(lm_json_encode(&ev.base, 0, &text), LM_OK);
	assert_string_equal(text, "{\"job_id\":\"ok\",\"score\":0.5}");
	free(text);
	assert_int_equal(lm_json_encode(NULL, 0, &text), LM_EINVAL);

	/* An enum value the schema does not know is written as its number,
	 * which decodes to the same value (proto3 keeps unknown numbers). */
	Lunamatch__V1__ChangeEntry ce = LUNAMATCH__V1__CHANGE_ENTRY__INIT;
	ce.kind = 42;
	text = encode_ok(&ce.base, 0);
	assert_string_equal(text, "{\"kind\":42}");
	ProtobufCMessage *back = NULL;
	char err[256];
	assert_int_equal(lm_json_decode(&lunamatch__v1__change_entry__descriptor, text,
	                     strlen(text), &back, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(((Lunamatch__V1__ChangeEntry *) back)->kind, 42);
	protobuf_c_message_free_unpacked(back, NULL);
	free(text);
	ce.kind = -7;
	text = encode_ok(&ce.base, 0);
	assert_int_equal(lm_json_decode(&lunamatch__v1__change_entry__descriptor, text,
	                     strlen(text), &back, err, sizeof(err)),
	    LM_OK);
	assert_int_equal((int32_t) ((Lunamatch__V1__ChangeEntry *) back)->kind, -7);
	protobuf_c_message_free_unpacked(back, NULL);
	free(text);
}

/* Mangled versions of a valid document never crash or leak. */
static void
test_decode_never_crashes(void **state)
{
	(void) state;
	ProtobufCMessage *m =
	    filled(&lunamatch__v1__match_jobs_request__descriptor, 1, 1);
	char *text = encode_ok(m, 0);
	protobuf_c_message_free_unpacked(m, NULL);
	size_t len = strlen(text);
	char *buf = malloc(len + 1);
	assert_non_null(buf);
	static const char alphabet[] = "{}[]\",:0123456789-.eE \\u\x80\xff";
	uint64_t x = 88172645463325252ULL;
	int ok = 0;
	for (int iter = 0; iter < 2000; iter++) {
		memcpy(buf, text, len + 1);
		int edits = 1 + iter % 5;
		for (int e = 0; e < edits; e++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[x % len] = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
		}
		size_t cut = iter % 7 == 0 ? (size_t) ((x >> 20) % (len + 1)) : len;
		char err[256];
		ProtobufCMessage *out = NULL;
		int rc = lm_json_decode(&lunamatch__v1__match_jobs_request__descriptor,
		    buf, cut, &out, err, sizeof(err));
		assert_true(rc == LM_OK || rc == LM_EPARSE || rc == LM_ESCHEMA);
		assert_true((rc == LM_OK) == (out != NULL));
		assert_true(rc == LM_OK || err[0] != '\0');
		ok += rc == LM_OK;
		protobuf_c_message_free_unpacked(out, NULL);
	}
	assert_true(ok > 0 && ok < 2000);
	free(buf);
	free(text);
}

/* A text of many tiny values is refused before its parse takes many times
 * its size (1 MiB of empty objects took about 100 MB); the same number of
 * bytes of ordinary text parses, and jansson elsewhere in the process is
 * not limited. */
static void
test_decode_memory_bounded(void **state)
{
	(void) state;
	size_t cap = 1u << 20, o = 0;
	char *b = malloc(cap + 64), err[256];
	ProtobufCMessage *m = NULL;

	assert_non_null(b);
	o += (size_t) sprintf(b, "{\"id\":\"c\",\"version\":1,\"skills\":[");
	while (o + 4 < cap) {
		memcpy(b + o, "{},", 3);
		o += 3;
	}
	b[o - 1] = ']';
	b[o++] = '}';
	assert_int_equal(lm_json_decode(&lunamatch__v1__candidate_profile__descriptor, b,
	                     o, &m, err, sizeof(err)),
	    LM_E2BIG);
	assert_null(m);
	assert_non_null(strstr(err, "memory to parse"));

	/* 1 MiB of headline: one value, parsed. */
	o = (size_t) sprintf(b, "{\"id\":\"c\",\"version\":1,\"headline\":\"");
	memset(b + o, 'x', cap - o - 2);
	o = cap - 2;
	b[o++] = '"';
	b[o++] = '}';
	assert_int_equal(lm_json_decode(&lunamatch__v1__candidate_profile__descriptor, b,
	                     o, &m, err, sizeof(err)),
	    LM_OK);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Outside a decode, jansson takes what it needs. */
	json_t *arr = json_array();
	for (int i = 0; i < 200000; i++)
		assert_int_equal(json_array_append_new(arr, json_object()), 0);
	json_decref(arr);
	free(b);
}

/* lm_json_loadb_capped refuses a parse that would allocate more than its
 * limit, saying so, and parses the same text with room enough; jansson
 * after it is not limited. */
static void
test_loadb_capped(void **state)
{
	(void) state;
	size_t n = 100000, o = 0;
	char *b = malloc(n * 3 + 2);
	json_error_t je;
	bool over = false;

	assert_non_null(b);
	b[o++] = '[';
	for (size_t i = 0; i < n; i++) {
		memcpy(b + o, i + 1 < n ? "[]," : "[]]", 3);
		o += 3;
	}
	/* Each empty array is a few allocations of tens of bytes. */
	assert_null(lm_json_loadb_capped(b, o, 0, n * 16, &je, &over));
	assert_true(over);

	json_t *j = lm_json_loadb_capped(b, o, 0, n * 1000, &je, &over);
	assert_non_null(j);
	assert_false(over);
	assert_int_equal(json_array_size(j), n);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(json_array_append_new(j, json_array()), 0);
	json_decref(j);

	/* Not JSON: jansson's error, not the limit's. */
	assert_null(lm_json_loadb_capped("[1,", 3, 0, 1u << 20, &je, &over));
	assert_false(over);
	assert_int_equal(json_error_code(&je), json_error_premature_end_of_input);

	/* No text for a length: refused, nothing read. */
	over = true;
	assert_null(lm_json_loadb_capped(NULL, 16, 0, 1u << 20, &je, &over));
	assert_false(over);
	assert_non_null(strstr(je.text, "no text"));
	assert_null(lm_json_loadb_capped(NULL, 16, 0, 1u << 20, NULL, NULL));
	free(b);
}

/* lm_json_decode_value has the limits of lm_json_decode: a value whose
 * text would be over LM_JSON_MAX_BYTES, or whose message would take more
 * memory than its text may cost to parse, is refused; a large legitimate
 * value is not. */
static void
test_decode_value_memory_bounded(void **state)
{
	(void) state;
	const ProtobufCMessageDescriptor *cp =
	    &lunamatch__v1__candidate_profile__descriptor;
	ProtobufCMessage *m = NULL;
	char err[256];

	/* 1 MiB of empty skills: each a message of tens of bytes. */
	json_t *skills = json_array(), *o;
	assert_non_null(skills);
	for (int i = 0; i < 350000; i++)
		assert_int_equal(json_array_append_new(skills, json_object()), 0);
	o = json_pack("{s:s,s:i,s:o}", "id", "c", "version", 1, "skills", skills);
	assert_non_null(o);
	assert_int_equal(lm_json_decode_value(cp, o, &m, err, sizeof(err)), LM_E2BIG);
	assert_null(m);
	assert_non_null(strstr(err, "memory to decode"));
	json_decref(o);

	/* A value whose text is over the limit of a JSON text. */
	size_t big = LM_JSON_MAX_BYTES + 1;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, 'x', big);
	o = json_pack("{s:s,s:i,s:s%}", "id", "c", "version", 1, "headline", text, big);
	assert_non_null(o);
	assert_int_equal(lm_json_decode_value(cp, o, &m, err, sizeof(err)), LM_E2BIG);
	assert_null(m);
	assert_non_null(strstr(err, "exceeds the limit of 4194304 bytes"));
	json_decref(o);

	/* 1 MiB of headline and many real skills decode. */
	o = json_pack("{s:s,s:i,s:s%,s:[]}", "id", "c", "version", 1, "headline", text,
	    (size_t) 1 << 20, "skills");
	assert_non_null(o);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(
		    json_array_append_new(json_object_get(o, "skills"),
		        json_pack("{s:s,s:f}", "name", "Python", "years", 3.5)),
		    0);
	assert_int_equal(lm_json_decode_value(cp, o, &m, err, sizeof(err)), LM_OK);
	assert_int_equal(((Lunamatch__V1__CandidateProfile *) m)->n_skills, 1000);
	protobuf_c_message_free_unpacked(m, NULL);
	json_decref(o);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_every_type),
	    cmocka_unit_test(test_table_lists_every_message),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_exact_text),
	    cmocka_unit_test(test_lenient_input),
	    cmocka_unit_test(test_reject_syntax),
	    cmocka_unit_test(test_reject_schema),
	    cmocka_unit_test(test_reject_keys),
	    cmocka_unit_test(test_reject_limits),
	    cmocka_unit_test(test_decode_value),
	    cmocka_unit_test(test_encode_errors),
	    cmocka_unit_test(test_decode_never_crashes),
	    cmocka_unit_test(test_decode_memory_bounded),
	    cmocka_unit_test(test_loadb_capped),
	    cmocka_unit_test(test_encode_controls),
	    cmocka_unit_test(test_decode_value_memory_bounded),
	};
	return cmocka_run_group_tests(tests, setup_all, NULL);
}
