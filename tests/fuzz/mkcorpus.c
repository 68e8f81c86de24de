/*
 * mkcorpus.c - writes the seed corpus of the fuzz targets
 * (tests/fuzz/corpus/<target>/), so that it can be made again when the
 * input layout of a target or the samples change:
 *
 *     build/tests/fuzz_mkcorpus tests/fuzz/corpus
 *
 * The seeds are small valid and invalid inputs: records of data/samples/
 * (as JSON and protobuf), the hostile cases of data/samples/invalid.jsonl,
 * requests, envelopes and events, and hand-made hostile records (NaN and
 * huge numbers, thousands of skills, many requirement groups, invalid
 * UTF-8, truncated and deeply nested data). Crashing inputs a fuzzer finds
 * are added to the corpus by hand (docs/CONTRIBUTING.md), not here.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzzsupport.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "service.h"

typedef Lunamatch__V1__JobPosting Posting;
typedef Lunamatch__V1__CandidateProfile Profile;

/* Flags of fuzz_ingest (see its header). */
#define I_PROFILE   1u
#define I_CT_JSON   (1u << 1)
#define I_CT_PB     (2u << 1)
#define I_CT_TEXT   (3u << 1)
#define I_KEY_ID    8u
#define I_TOMBSTONE 16u
#define I_CT_INPUT  32u
/* Flags of fuzz_match. */
#define M_PROFILE 1u
#define M_JSON    2u
#define M_FULL    (3u << 2)

static const char *out_dir;

/* Writes <out_dir>/<target>/<name>: the byte head, then len bytes of data. */
static void
put(const char *target, const char *name, unsigned head, const void *data, size_t len)
{
	char path[4096];
	uint8_t h = (uint8_t) head;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0777) != 0 && errno != EEXIST)
		lmf_fail("%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(&h, 1, 1, f) != 1 ||
	    (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		lmf_fail("%s: cannot write", path);
}

static void
put_text(const char *target, const char *name, unsigned head, const char *text)
{
	put(target, name, head, text, strlen(text));
}

static size_t
type_index(const ProtobufCMessageDescriptor *d)
{
	for (size_t i = 0; i < lmf_ntypes; i++)
		if (lmf_types[i] == d)
			return i;
	lmf_fail("%s is not a fuzzed type", d->name);
}

static ProtobufCMessage *
from_json(const ProtobufCMessageDescriptor *d, const char *json)
{
	ProtobufCMessage *m = NULL;
	char err[256];

	if (lm_json_decode(d, json, strlen(json), &m, err, sizeof(err)) != LM_OK)
		lmf_fail("%s: %s", json, err);
	return m;
}

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *b = NULL;
	LMF_CHECK(lm_pb_encode(m, &b, len) == LM_OK);
	return b;
}

/* Line no (1-based) of a source file, without its newline (malloc'd). */
static char *
line_of(const char *rel, int no)
{
	FILE *f = fopen(lmf_src(rel), "r");
	static char line[1 << 16];

	if (f == NULL)
		lmf_fail("cannot read %s", rel);
	for (int i = 0; i < no; i++)
		if (fgets(line, sizeof(line), f) == NULL)
			lmf_fail("%s has no line %d", rel, no);
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	return strdup(line);
}

/* The fuzz_rpc head of a request of type d: the handler table entry of
 * the method taking it; -1 when none does. */
static int
rpc_head(const ProtobufCMessageDescriptor *d)
{
	size_t n;
	const lm_rpc_method *m = lm_match_service_methods(&n);

	for (size_t i = 0; i < n; i++) {
		const ProtobufCMethodDescriptor *md =
		    protobuf_c_service_descriptor_get_method_by_name(
		        &lunamatch__v1__match_service__descriptor, m[i].name);
		if (md != NULL && md->input == d)
			return (int) i;
	}
	return -1;
}

/* Request m to fuzz_rpc, with caller metadata. */
static void
put_rpc(const char *name, const ProtobufCMessage *m)
{
	size_t len;
	uint8_t *b = pack(m, &len), *r = malloc(len + 1);

	LMF_CHECK(r != NULL && rpc_head(m->descriptor) >= 0);
	r[0] = 1;
	memcpy(r + 1, b, len);
	put("rpc", name, (unsigned) rpc_head(m->descriptor), r, len + 1);
	free(r);
	free(b);
}

/* A message of type d as JSON and as protobuf, to fuzz_pb and fuzz_json,
 * and to fuzz_rpc when a method takes it (with caller metadata). */
static void
codec_pair(const char *name, const ProtobufCMessageDescriptor *d, const char *json)
{
	ProtobufCMessage *m = from_json(d, json);
	size_t len;
	uint8_t *b = pack(m, &len);
	unsigned t = (unsigned) type_index(d);

	put("json", name, t, json, strlen(json));
	put("pb", name, t, b, len);
	if (rpc_head(d) >= 0)
		put_rpc(name, m);
	free(b);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* A record to fuzz_ingest (JSON and protobuf, key = id) and fuzz_match. */
static void
record_seeds(const char *name, bool profile, const char *json)
{
	const ProtobufCMessageDescriptor *d =
	    profile ? &lunamatch__v1__candidate_profile__descriptor
	            : &lunamatch__v1__job_posting__descriptor;
	ProtobufCMessage *m = from_json(d, json);
	unsigned k = profile ? I_PROFILE : 0;
	char n[128];
	size_t len;
	uint8_t *b = pack(m, &len);

	snprintf(n, sizeof(n), "%s.json", name);
	put("ingest", n, k | I_CT_JSON | I_KEY_ID, json, strlen(json));
	put("match", n, (profile ? M_PROFILE : 0) | M_JSON | M_FULL | (5u << 4), json,
	    strlen(json));
	snprintf(n, sizeof(n), "%s.pb", name);
	put("ingest", n, k | I_KEY_ID, b, len);
	put("match", n, profile ? M_PROFILE : 0, b, len);
	free(b);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Hostile records no JSON can carry, as protobuf to fuzz_match and
 * fuzz_ingest. */
static void
hostile_records(const char *posting_json, const char *profile_json)
{
	Posting *p =
	    (Posting *) from_json(&lunamatch__v1__job_posting__descriptor, posting_json);
	Profile *c = (Profile *) from_json(
	    &lunamatch__v1__candidate_profile__descriptor, profile_json);
	Lunamatch__V1__PostingSkill **skills;
	Lunamatch__V1__RequirementGroup **groups;
	static float emb[4] = {NAN, INFINITY, -INFINITY, 1e38f};
	size_t len, n_skills = 3000, n_groups = 200;
	uint8_t *b;

	/* NaN and infinite numbers everywhere a number is. */
	p->min_years_experience = NAN;
	if (p->salary != NULL) {
		p->salary->min = INFINITY;
		p->salary->max = NAN;
		p->salary->annual_min = INT64_MAX;
		p->salary->annual_max = INT64_MIN;
	}
	for (size_t i = 0; i < p->n_locations; i++) {
		p->locations[i]->geocoded = true;
		p->locations[i]->latitude = NAN;
		p->locations[i]->longitude = 1e308;
	}
	for (size_t i = 0; i < p->n_skills; i++)
		p->skills[i]->weight = i % 2 ? NAN : 3e38f;
	p->expires_at = INT64_MIN;
	p->posted_at = INT64_MAX;
	p->n_embedding = 4;
	p->embedding = emb;
	b = pack(&p->base, &len);
	put("match", "posting-nan.pb", M_FULL | (3u << 4), b, len);
	put("ingest", "posting-nan.pb", I_KEY_ID, b, len);
	free(b);
	{
		Lunamatch__V1__MatchCandidatesRequest q =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		q.subject_case = LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_POSTING;
		q.posting = p;
		q.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
		put_rpc("match-candidates-inline-nan", &q.base);
	}

	/* Thousands of skills, many requirement groups, no embedding. */
	p->n_embedding = 0;
	p->embedding = NULL;
	skills = calloc(n_skills, sizeof(*skills));
	groups = calloc(n_groups, sizeof(*groups));
	LMF_CHECK(skills != NULL && groups != NULL);
	for (size_t i = 0; i < n_skills; i++) {
		static Lunamatch__V1__PostingSkill s = LUNAMATCH__V1__POSTING_SKILL__INIT;
		s.skill_id = "python";
		s.name = "Python";
		skills[i] = &s;
	}
	for (size_t i = 0; i < n_groups; i++) {
		static Lunamatch__V1__RequirementGroup g =
		    LUNAMATCH__V1__REQUIREMENT_GROUP__INIT;
		static char *ids[] = {"python", "java", "x:nothing", ""};
		g.n_skills = g.n_skill_ids = 4;
		g.skills = g.skill_ids = ids;
		g.min_years_experience = NAN;
		groups[i] = &g;
	}
	{
		Lunamatch__V1__PostingSkill **os = p->skills;
		Lunamatch__V1__RequirementGroup **og = p->requirement_groups;
		size_t on = p->n_skills, ogn = p->n_requirement_groups;
		p->skills = skills;
		p->n_skills = n_skills;
		p->requirement_groups = groups;
		p->n_requirement_groups = n_groups;
		b = pack(&p->base, &len);
		put("match", "posting-many-skills.pb", M_FULL, b, len);
		free(b);
		p->skills = os;
		p->n_skills = on;
		p->requirement_groups = og;
		p->n_requirement_groups = ogn;
	}
	free(skills);
	free(groups);

	c->years_experience = -1e30f;
	if (c->desired_salary != NULL) {
		c->desired_salary->min = NAN;
		c->desired_salary->annual_min = INT64_MAX;
	}
	for (size_t i = 0; i < c->n_skills; i++)
		c->skills[i]->years = i % 2 ? INFINITY : NAN;
	c->updated_at = INT64_MIN;
	c->n_embedding = 4;
	c->embedding = emb;
	{
		Lunamatch__V1__MatchJobsRequest q =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		q.subject_case = LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE;
		q.profile = c;
		q.top_k = 1000;
		put_rpc("match-jobs-inline-nan", &q.base);
	}
	b = pack(&c->base, &len);
	put("match", "profile-nan.pb", M_PROFILE | M_FULL | (1u << 4), b, len);
	put("ingest", "profile-nan.pb", I_PROFILE | I_KEY_ID, b, len);
	free(b);
	c->n_embedding = 0;
	c->embedding = NULL;

	protobuf_c_message_free_unpacked(&p->base, NULL);
	protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* The test cases of data/samples/invalid.jsonl ({"topic", "expect",
 * "record" or "raw"}) as ingest messages. */
static void
invalid_samples(void)
{
	for (int no = 1;; no++) {
		FILE *f = fopen(lmf_src("data/samples/invalid.jsonl"), "r");
		char line[1 << 16], name[64];
		json_t *j, *rec;
		char *text;
		int i;

		LMF_CHECK(f != NULL);
		for (i = 0; i < no && fgets(line, sizeof(line), f) != NULL; i++)
			;
		fclose(f);
		if (i < no)
			return;
		j = json_loads(line, 0, NULL);
		LMF_CHECK(j != NULL);
		/* A case is a record, or raw text that is no JSON. */
		rec = json_object_get(j, "record");
		if (rec != NULL)
			text = json_dumps(rec, JSON_COMPACT | JSON_ENCODE_ANY);
		else
			text = strdup(json_string_value(json_object_get(j, "raw")));
		LMF_CHECK(text != NULL);
		snprintf(name, sizeof(name), "invalid-%02d.json", no);
		put("ingest", name,
		    (strcmp(json_string_value(json_object_get(j, "topic")), "profiles") ==
		                0
		            ? I_PROFILE
		            : 0) |
		        I_CT_JSON | I_KEY_ID,
		    text, strlen(text));
		free(text);
		json_decref(j);
	}
}

int
main(int argc, char **argv)
{
	char *posting = line_of("data/samples/postings.jsonl", 1);
	char *posting2 = line_of("data/samples/postings.jsonl", 2);
	char *profile = line_of("data/samples/profiles.jsonl", 1);
	char *profile2 = line_of("data/samples/profiles.jsonl", 2);
	char buf[1 << 17];
	static const uint8_t bad_utf8[] = {
	    0x0a, 0x03, 'j', '-', '1', 0x22, 0x02, 0xff, 0xfe};
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0x01, 0x8a, 0x01, 0x05, 0x00};
	ProtobufCMessage *m;
	uint8_t *b, *inner;
	size_t len, inner_len;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];

	/* Records. */
	record_seeds("posting-1", false, posting);
	record_seeds("posting-2", false, posting2);
	record_seeds("profile-1", true, profile);
	record_seeds("profile-2", true, profile2);
	codec_pair("posting", &lunamatch__v1__job_posting__descriptor, posting);
	codec_pair("profile", &lunamatch__v1__candidate_profile__descriptor, profile);
	hostile_records(posting, profile);
	invalid_samples();

	/* Requests, envelopes, events. */
	codec_pair("match-jobs-id", &lunamatch__v1__match_jobs_request__descriptor,
	    "{\"candidate_id\":\"cand-1\",\"top_k\":5,\"explain\":\"EXPLAIN_LEVEL_FULL\","
	    "\"filters\":{\"remote_only\":true,\"countries\":[\"IE\"],"
	    "\"min_annual_salary\":50000,\"employment_types\":"
	    "[\"EMPLOYMENT_TYPE_FULL_TIME\"],\"categories\":[\"Data\"],"
	    "\"posted_after\":1700000000,\"exclude_ids\":[\"job-1\"]},\"as_of\":"
	    "1750000000}");
	snprintf(buf, sizeof(buf), "{\"profile\":%s,\"top_k\":1000}", profile);
	codec_pair(
	    "match-jobs-inline", &lunamatch__v1__match_jobs_request__descriptor, buf);
	codec_pair("match-candidates-id",
	    &lunamatch__v1__match_candidates_request__descriptor,
	    "{\"job_id\":\"job-1\",\"explain\":\"EXPLAIN_LEVEL_SUMMARY\",\"filters\":"
	    "{\"min_years_experience\":2.5,\"remote_only\":true,\"exclude_ids\":[\"a\"]}"
	    "}");
	snprintf(buf, sizeof(buf), "{\"posting\":%s}", posting);
	codec_pair("match-candidates-inline",
	    &lunamatch__v1__match_candidates_request__descriptor, buf);
	codec_pair("explain", &lunamatch__v1__explain_match_request__descriptor,
	    "{\"candidate_id\":\"cand-1\",\"job_id\":\"job-1\",\"as_of\":1750000000}");
	codec_pair("get-posting", &lunamatch__v1__get_posting_request__descriptor,
	    "{\"id\":\"job-1\"}");
	codec_pair("get-profile", &lunamatch__v1__get_profile_request__descriptor,
	    "{\"id\":\"cand-1\"}");
	codec_pair("check", &lunamatch__v1__health_check_request__descriptor,
	    "{\"service\":\"lunamatch.v1.MatchService\"}");
	codec_pair("rpc-response", &lunamatch__v1__rpc_response__descriptor,
	    "{\"request_id\":\"r1\",\"code\":\"NOT_FOUND\",\"message\":\"no such job\","
	    "\"payload\":\"CgNqb2I=\"}");
	codec_pair("event", &lunamatch__v1__match_event__descriptor,
	    "{\"event_id\":\"0123456789abcdef0123456789abcdef\",\"type\":"
	    "\"MATCH_EVENT_TYPE_NEW_MATCH\",\"candidate_id\":\"cand-1\",\"job_id\":"
	    "\"job-1\",\"score\":0.75,\"trigger\":\"MATCH_TRIGGER_UPDATED\","
	    "\"explanation_summary\":\"Strong skills\",\"model_version\":\"v1\","
	    "\"created_at\":1750000000,\"candidate_version\":"
	    "\"18446744073709551615\",\"job_version\":2}");
	codec_pair("match-jobs-response", &lunamatch__v1__match_jobs_response__descriptor,
	    "{\"matches\":[{\"job_id\":\"job-1\",\"candidate_id\":\"cand-1\","
	    "\"score\":0.5,\"rank\":1,\"title\":\"Data engineer\",\"explanation\":"
	    "{\"summary\":\"fair\",\"features\":[{\"feature\":\"skills\","
	    "\"value\":1,\"weight\":0.35,\"contribution\":0.5}],\"matched_skills\":"
	    "[{\"skill_id\":\"python\",\"name\":\"Python\",\"importance\":1}],"
	    "\"vetoes\":[{\"code\":\"LOCATION\",\"reason\":\"far\"}],"
	    "\"improvements\":[{\"action\":\"add skill: Go\",\"score_gain\":0.1}]}}],"
	    "\"considered\":4,\"vetoed\":1,\"model_version\":\"v1\",\"index_seq\":9,"
	    "\"as_of\":1750000000}");
	codec_pair("check-response", &lunamatch__v1__health_check_response__descriptor,
	    "{\"status\":\"SERVING\",\"postings\":4}");
	/* An envelope around a protobuf MatchJobsRequest. */
	m = from_json(&lunamatch__v1__match_jobs_request__descriptor,
	    "{\"candidate_id\":\"cand-1\",\"top_k\":3}");
	inner = pack(m, &inner_len);
	protobuf_c_message_free_unpacked(m, NULL);
	m = from_json(&lunamatch__v1__rpc_request__descriptor,
	    "{\"method\":\"/lunamatch.v1.MatchService/MatchJobs\",\"request_id\":\"r1\","
	    "\"timeout_ms\":500,\"metadata\":[{\"key\":\"caller\",\"value\":\"cli\"}]}");
	((Lunamatch__V1__RpcRequest *) m)->payload.data = inner;
	((Lunamatch__V1__RpcRequest *) m)->payload.len = inner_len;
	b = pack(m, &len);
	put("pb", "rpc-request",
	    (unsigned) type_index(&lunamatch__v1__rpc_request__descriptor), b, len);
	free(b);
	((Lunamatch__V1__RpcRequest *) m)->payload.data = NULL;
	((Lunamatch__V1__RpcRequest *) m)->payload.len = 0;
	protobuf_c_message_free_unpacked(m, NULL);
	free(inner);

	/* Malformed input. */
	put("pb", "bad-utf8", 0, bad_utf8, sizeof(bad_utf8));
	put("pb", "garbage", 8, garbage, sizeof(garbage));
	m = from_json(&lunamatch__v1__job_posting__descriptor, posting);
	b = pack(m, &len);
	put("pb", "truncated", 0, b, len / 2);
	put("ingest", "posting-truncated.pb", I_KEY_ID, b, len / 2);
	put("ingest", "posting-text-plain", I_CT_TEXT | I_KEY_ID, b, len);
	put("ingest", "posting-x-protobuf", I_CT_PB | I_KEY_ID, b, len);
	free(b);
	protobuf_c_message_free_unpacked(m, NULL);
	put("ingest", "bad-utf8.pb", I_KEY_ID, bad_utf8, sizeof(bad_utf8));
	put("ingest", "garbage-json", I_CT_JSON | I_KEY_ID, garbage, sizeof(garbage));
	put("ingest", "tombstone", I_TOMBSTONE, "\x05job-1", 6);
	put("ingest", "tombstone-bad-key", I_PROFILE | I_TOMBSTONE, "\x04a b!", 5);
	put("ingest", "tombstone-no-key", I_TOMBSTONE, "\x00", 1);
	snprintf(
	    buf, sizeof(buf), "%c%s%s", 33, " Application/JSON ; charset=utf-8", posting);
	put("ingest", "posting-content-type.json", I_CT_INPUT | I_KEY_ID, buf,
	    strlen(buf));
	snprintf(buf, sizeof(buf), "%c%s%s", 17, "application/jsonx", posting);
	put("ingest", "posting-content-type-bad.json", I_CT_INPUT | I_KEY_ID, buf,
	    strlen(buf));
	snprintf(buf, sizeof(buf), "%c%s%s", 5, "job-9", posting);
	put("ingest", "posting-key-mismatch.json", I_CT_JSON, buf, strlen(buf));
	put_text("json", "unknown-key", 0, "{\"id\":\"j\",\"colour\":\"red\"}");
	put_text("json", "nan", 1, "{\"id\":\"c\",\"years_experience\":NaN}");
	put_text("json", "nul", 5, "{\"id\":\"a\\u0000b\"}");
	put_text("json", "big-uint64", 10, "{\"job_version\":18446744073709551616}");
	memset(buf, '[', 40);
	put("json", "deep", 2, buf, 40);
	snprintf(buf, sizeof(buf),
	    "{\"id\":\"\",\"version\":1,\"title\":\"t\",\"skills\":[{\"name\":\"\"}],"
	    "\"requirement_groups\":[{\"skills\":[]},{\"label\":\"x\",\"skills\":[\"\"],"
	    "\"min_years_experience\":1e30}],\"salary\":{\"min\":1e308,\"max\":1e308,"
	    "\"currency\":\"XXX\",\"period\":\"SALARY_PERIOD_HOUR\"}}");
	put("match", "posting-empty-id.json", M_JSON | M_FULL, buf, strlen(buf));
	put("ingest", "posting-empty-id.json", I_CT_JSON | I_KEY_ID, buf, strlen(buf));

	free(posting);
	free(posting2);
	free(profile);
	free(profile2);
	return 0;
}
