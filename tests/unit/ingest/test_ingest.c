/*
 * test_ingest.c - message -> decision and batches of decisions -> store, on
 * real records, the real taxonomy and rate table and a real LMDB store.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "offsets.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/json.h"
#include "lunamatch/metrics.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"
#include "records.h"

/* The real taxonomy and rate table; embeddings of 4 values. */
static lmt_records R;

/* A valid posting; %s slots: id, title, currency, country, extra members. */
#define POSTING_FMT                                                                      \
	"{\"id\":\"%s\",\"version\":3,\"status\":\"POSTING_STATUS_OPEN\",\"title\":\"%"  \
	"s\","                                                                           \
	"\"company\":\"Liffey "                                                          \
	"Payments\",\"employment_type\":\"EMPLOYMENT_TYPE_FULL_TIME\","                  \
	"\"locations\":[{\"city\":\" Dublin \",\"country\":\"%s\"}],"                    \
	"\"salary\":{\"min\":65000,\"max\":80000,\"currency\":\"%s\","                   \
	"\"period\":\"SALARY_PERIOD_YEAR\"},"                                            \
	"\"skills\":[{\"name\":\"GCP\",\"weight\":2},{\"name\":\"Python 3\"}]%s}"

#define PROFILE_JSON                                                                     \
	"{\"id\":\"cand-1\",\"version\":7,\"headline\":\"  Data engineer \","            \
	"\"skills\":[{\"name\":\"Golang\",\"years\":4}],\"years_experience\":6,"         \
	"\"desired_salary\":{\"min\":5000,\"currency\":\"eur\","                         \
	"\"period\":\"SALARY_PERIOD_MONTH\"}}"

static int
setup(void **state)
{
	(void) state;
	lmt_records_open(&R, 4);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_records_close(&R);
	return 0;
}

static char *
posting_json(const char *id, const char *title, const char *country, const char *currency,
    const char *extra)
{
	size_t n = strlen(POSTING_FMT) + strlen(id) + strlen(title) + strlen(country) +
	           strlen(currency) + strlen(extra) + 1;
	char *s = malloc(n);
	assert_non_null(s);
	snprintf(s, n, POSTING_FMT, id, title, country, currency, extra);
	return s;
}

/* The protobuf encoding of a JSON record. */
static uint8_t *
to_pb(const ProtobufCMessageDescriptor *desc, const char *json, size_t *len)
{
	ProtobufCMessage *m = NULL;
	uint8_t *out = NULL;
	char err[256];
	if (lm_json_decode(desc, json, strlen(json), &m, err, sizeof(err)) != LM_OK)
		fail_msg("decode: %s", err);
	assert_int_equal(lm_pb_encode(m, &out, len), LM_OK);
	protobuf_c_message_free_unpacked(m, NULL);
	return out;
}

/* Decides on a message; ct may be NULL (protobuf). */
static void
decide(lm_kind kind, const char *key, const void *value, size_t len, const char *ct,
    lm_ingest_decision *d)
{
	lm_ingest_msg m = {
	    .kind = kind,
	    .key = key,
	    .key_len = key ? strlen(key) : 0,
	    .value = value,
	    .value_len = len,
	    .content_type = ct,
	    .content_type_len = ct ? strlen(ct) : 0,
	};
	assert_int_equal(lm_ingest_decide(&R.ctx, &m, d), LM_OK);
}

/* A JSON posting message and the reason it is rejected for ("" = accepted). */
static void
assert_json_reason(lm_kind kind, const char *key, const char *json, const char *reason,
    const char *in_error)
{
	lm_ingest_decision d;
	decide(kind, key, json, strlen(json), "application/json", &d);
	if (reason[0] == '\0') {
		if (d.action != LM_INGEST_PUT)
			fail_msg("rejected: %s: %s", d.reason, d.error);
	} else {
		assert_int_equal(d.action, LM_INGEST_REJECT);
		if (strcmp(d.reason, reason) != 0)
			fail_msg(
			    "reason %s (%s), expected %s", d.reason, d.error, reason);
		if (in_error != NULL && strstr(d.error, in_error) == NULL)
			fail_msg("error \"%s\" lacks \"%s\"", d.error, in_error);
		assert_null(d.bytes);
	}
	lm_ingest_decision_clear(&d);
}

static void
test_content_type(void **state)
{
	(void) state;
	const char *json[] = {"application/json", "Application/JSON",
	    " application/json ; charset=utf-8", "application/json;charset=UTF-8"};
	const char *pb[] = {"", "  ", "application/x-protobuf", "application/protobuf",
	    "application/vnd.google.protobuf", "APPLICATION/OCTET-STREAM; x=y"};
	const char *bad[] = {"text/plain", "application/jsonx", "application/jso", "json",
	    "application/xml; a=application/json", "application/json-seq"};
	char big[LM_INGEST_CONTENT_TYPE_MAX + 2], params[200];

	assert_int_equal(lm_ingest_content_type(NULL, 0), LM_INGEST_PROTOBUF);
	for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++)
		assert_int_equal(
		    lm_ingest_content_type(json[i], strlen(json[i])), LM_INGEST_JSON);
	for (size_t i = 0; i < sizeof(pb) / sizeof(pb[0]); i++)
		assert_int_equal(
		    lm_ingest_content_type(pb[i], strlen(pb[i])), LM_INGEST_PROTOBUF);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(lm_ingest_content_type(bad[i], strlen(bad[i])),
		    LM_INGEST_UNSUPPORTED);
	/* Not NUL-terminated: only len bytes count. */
	assert_int_equal(
	    lm_ingest_content_type("application/jsonXYZ", 16), LM_INGEST_JSON);
	/* Parameters are ignored whatever their length: a value of 200
	 * bytes, most of them parameters. */
	memset(params, 'x', sizeof(params));
	memcpy(params, "application/json; charset=utf-8; profile=", 41);
	assert_int_equal(lm_ingest_content_type(params, sizeof(params)), LM_INGEST_JSON);
	/* The media type, blanks included, is read up to the limit: at it a
	 * padded JSON media type is JSON, with or without parameters after
	 * it; one byte over it, it is refused. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "application/json", 16);
	assert_int_equal(
	    lm_ingest_content_type(big, LM_INGEST_CONTENT_TYPE_MAX), LM_INGEST_JSON);
	assert_int_equal(lm_ingest_content_type(big, LM_INGEST_CONTENT_TYPE_MAX + 1),
	    LM_INGEST_UNSUPPORTED);
	big[LM_INGEST_CONTENT_TYPE_MAX] = ';';
	assert_int_equal(lm_ingest_content_type(big, sizeof(big)), LM_INGEST_JSON);
	big[LM_INGEST_CONTENT_TYPE_MAX] = ' ';
	big[LM_INGEST_CONTENT_TYPE_MAX + 1] = ';';
	assert_int_equal(lm_ingest_content_type(big, sizeof(big)), LM_INGEST_UNSUPPORTED);
}

/* A protobuf posting is accepted and stored normalized. */
static void
test_protobuf_posting(void **state)
{
	char *json = posting_json("job-1", "  Backend Engineer ", "ie", "eur", "");
	size_t len;
	uint8_t *pb = to_pb(&lunamatch__v1__job_posting__descriptor, json, &len);
	lm_ingest_decision d;
	(void) state;

	decide(LM_KIND_POSTING, "job-1", pb, len, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_PUT);
	assert_int_equal(d.kind, LM_KIND_POSTING);
	assert_string_equal(d.id, "job-1");
	assert_int_equal(d.version, 3);
	assert_non_null(d.bytes);

	Lunamatch__V1__JobPosting *p =
	    lunamatch__v1__job_posting__unpack(NULL, d.len, d.bytes);
	assert_non_null(p);
	assert_string_equal(p->title, "Backend Engineer");
	assert_string_equal(p->locations[0]->city, "Dublin");
	assert_string_equal(p->locations[0]->country, "IE");
	assert_string_equal(p->salary->currency, "EUR");
	assert_true(p->salary->annual_min > 0);
	assert_int_equal(p->n_skills, 2);
	assert_string_equal(p->skills[0]->skill_id, "google-cloud-platform");
	assert_string_equal(p->skills[1]->skill_id, "python");
	lunamatch__v1__job_posting__free_unpacked(p, NULL);

	/* The same bytes with an explicit protobuf content type. */
	lm_ingest_decision_clear(&d);
	decide(LM_KIND_POSTING, "job-1", pb, len, "application/x-protobuf", &d);
	assert_int_equal(d.action, LM_INGEST_PUT);
	lm_ingest_decision_clear(&d);

	/* Out of memory while it is unpacked: no decision (the consumer reads
	 * it again), not a dead letter for malformed protobuf. */
	lm_ingest_msg oom = {.kind = LM_KIND_POSTING,
	    .key = "job-1",
	    .key_len = 5,
	    .value = pb,
	    .value_len = len};
	lm_pb_fail_allocs(1);
	assert_int_equal(lm_ingest_decide(&R.ctx, &oom, &d), LM_ENOMEM);
	lm_ingest_decision_clear(&d);
	lm_ingest_decision_clear(&d); /* twice is harmless */
	free(pb);
	free(json);
}

/* A JSON profile is accepted; the same JSON without the header is not
 * protobuf. */
static void
test_json_profile(void **state)
{
	lm_ingest_decision d;
	(void) state;

	decide(LM_KIND_PROFILE, "cand-1", PROFILE_JSON, strlen(PROFILE_JSON),
	    "application/json; charset=utf-8", &d);
	assert_int_equal(d.action, LM_INGEST_PUT);
	assert_int_equal(d.kind, LM_KIND_PROFILE);
	assert_string_equal(d.id, "cand-1");
	assert_int_equal(d.version, 7);
	Lunamatch__V1__CandidateProfile *c =
	    lunamatch__v1__candidate_profile__unpack(NULL, d.len, d.bytes);
	assert_non_null(c);
	assert_string_equal(c->headline, "Data engineer");
	assert_string_equal(c->skills[0]->skill_id, "go");
	assert_string_equal(c->desired_salary->currency, "EUR");
	assert_true(c->desired_salary->annual_min > 0);
	lunamatch__v1__candidate_profile__free_unpacked(c, NULL);
	lm_ingest_decision_clear(&d);

	decide(LM_KIND_PROFILE, "cand-1", PROFILE_JSON, strlen(PROFILE_JSON), NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "undecodable");
	lm_ingest_decision_clear(&d);

	/* A posting payload on the profiles topic does not fit the schema. */
	char *json = posting_json("job-1", "T", "IE", "EUR", "");
	assert_json_reason(LM_KIND_PROFILE, "job-1", json, "schema", "unknown field");
	free(json);
}

/* A reject message that quotes the record is text: a control character
 * the record holds (C0 or C1, valid JSON escapes) is written '?', as the
 * dead-letter header and the log take it (lm_ingest_decision.error). */
static void
test_error_quotes_clean(void **state)
{
	static const char *const country[] = {"U\\u0013", "\\u009bU"};
	static const char *const shown[] = {"\"U?\"", "\"?U\""};
	(void) state;

	for (size_t i = 0; i < 2; i++) {
		char *json = posting_json("job-1", "T", country[i], "EUR", "");
		lm_ingest_decision d;
		decide(
		    LM_KIND_POSTING, "job-1", json, strlen(json), "application/json", &d);
		assert_int_equal(d.action, LM_INGEST_REJECT);
		if (strstr(d.error, shown[i]) == NULL)
			fail_msg("error \"%s\" lacks %s", d.error, shown[i]);
		assert_false(lm_text_has_control(d.error));
		lm_ingest_decision_clear(&d);
		free(json);
	}
}

static void
test_key_mismatch(void **state)
{
	char *json = posting_json("job-1", "T", "IE", "EUR", "");
	size_t len;
	uint8_t *pb = to_pb(&lunamatch__v1__job_posting__descriptor, json, &len);
	lm_ingest_decision d;
	(void) state;

	assert_json_reason(LM_KIND_POSTING, "job-2", json, "key_mismatch", "key");
	assert_json_reason(LM_KIND_POSTING, NULL, json, "key_mismatch", "no key");
	assert_json_reason(LM_KIND_POSTING, "job-1 ", json, "key_mismatch", NULL);
	assert_json_reason(LM_KIND_POSTING, "job-", json, "key_mismatch", NULL);
	decide(LM_KIND_POSTING, "JOB-1", pb, len, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "key_mismatch");
	lm_ingest_decision_clear(&d);
	free(pb);
	free(json);

	/* The key is compared with the id as stored, after trimming: a
	 * record whose id has blanks around it goes with the key without
	 * them, and is stored under it; the key with the blanks is refused. */
	json = posting_json(" job-1 ", "T", "IE", "EUR", "");
	decide(LM_KIND_POSTING, "job-1", json, strlen(json), "application/json", &d);
	if (d.action != LM_INGEST_PUT)
		fail_msg("rejected: %s: %s", d.reason, d.error);
	assert_string_equal(d.id, "job-1");
	lm_ingest_decision_clear(&d);
	assert_json_reason(LM_KIND_POSTING, " job-1 ", json, "key_mismatch", "key");
	free(json);
}

/* The value of the series "name{labels}" in m's exposition, or -1 when m
 * has no such series. */
static long long
series_value(lm_metrics *m, const char *series)
{
	char *text = NULL;
	long long v = -1;

	assert_int_equal(lm_metrics_render(m, &text, NULL), LM_OK);
	for (const char *p = text; (p = strstr(p, series)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[strlen(series)] == ' ') {
			v = strtoll(p + strlen(series) + 1, NULL, 10);
			break;
		}
	free(text);
	return v;
}

#define FLAGGED_SERIES "lunamatch_ingest_flagged_postings_total"
#define WARNINGS_SERIES(cat)                                                             \
	"lunamatch_ingest_compliance_warnings_total{category=\"" cat "\"}"

/* An accepted posting's compliance warnings are counted in the metrics
 * registry, by category, and logged (ingest.compliance), once the batch
 * that holds it is stored: not by the decision, nor by an attempt whose
 * store transaction failed, nor again by a retry after it was stored or by
 * a stale duplicate of it; a posting that is rejected after screening, or
 * that nothing flags, counts and logs nothing. */
static void
test_compliance_metrics(void **state)
{
	(void) state;
	lm_record_ctx ctx = R.ctx;
	lm_fairness *fair = NULL;
	lm_metrics *m = NULL;
	lm_ingest_decision d;
	lm_ingest_batch *b = NULL;
	lm_ingest_counts c;
	lm_store *s = NULL, *ro = NULL;
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	char *dir = lmt_tmpdir("ingest-compliance");
	char err[256] = "", *log;
	lmt_capture cap;
	static const char groups[] =
	    ",\"requirement_groups\":["
	    "{\"label\":\"Native English speaker\",\"skills\":[\"English\"]},"
	    "{\"label\":\"Languages\",\"skills\":[\"Spanish\",\"Married\"]}]";
	char *flagged = posting_json("job-9", "Salesman", "IE", "EUR", groups);
	char *clean = posting_json("job-8", "Backend engineer", "IE", "EUR", "");
	size_t pblen;
	uint8_t *pb = to_pb(&lunamatch__v1__job_posting__descriptor, flagged, &pblen);

	if (lm_fairness_load(lmt_src("data/fairness/requirements.tsv"), &fair, err,
	        sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	ctx.fairness = fair;
	ctx.metrics = m;
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	lm_store_close(s);
	assert_int_equal(lm_store_open(dir, &o, &ro), LM_OK);
	assert_int_equal(lm_ingest_batch_new(8, &b), LM_OK);

	/* Registered at 0 for every category of the list. */
	lm_ingest_compliance_metrics(&ctx);
	assert_int_equal(series_value(m, FLAGGED_SERIES), 0);
	for (size_t i = 0; i < lm_fairness_count(fair); i++) {
		char series[128];
		snprintf(series, sizeof(series),
		    "lunamatch_ingest_compliance_warnings_total{category=\"%s\"}",
		    lm_fairness_at(fair, i)->category);
		assert_int_equal(series_value(m, series), 0);
	}

	lm_ingest_msg msg = {.kind = LM_KIND_POSTING,
	    .key = "job-9",
	    .key_len = 5,
	    .value = flagged,
	    .value_len = strlen(flagged),
	    .content_type = "application/json",
	    .content_type_len = strlen("application/json")};
	lmt_stderr_begin(&cap);
	assert_int_equal(lm_ingest_decide(&ctx, &msg, &d), LM_OK);
	assert_int_equal(d.action, LM_INGEST_PUT);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 0), LM_OK);
	/* The same posting as protobuf: the same version, a duplicate. */
	lm_ingest_msg pbmsg = {.kind = LM_KIND_POSTING,
	    .key = "job-9",
	    .key_len = 5,
	    .value = pb,
	    .value_len = pblen};
	assert_int_equal(lm_ingest_decide(&ctx, &pbmsg, &d), LM_OK);
	assert_int_equal(d.action, LM_INGEST_PUT);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 1), LM_OK);
	/* Screened, then rejected for its key: a dead letter counts nothing. */
	msg.key = "job-1";
	assert_int_equal(lm_ingest_decide(&ctx, &msg, &d), LM_OK);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 2), LM_OK);
	/* A posting nothing flags counts nothing either. */
	msg.key = "job-8";
	msg.value = clean;
	msg.value_len = strlen(clean);
	assert_int_equal(lm_ingest_decide(&ctx, &msg, &d), LM_OK);
	assert_int_equal(d.action, LM_INGEST_PUT);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 3), LM_OK);
	/* Decided, not stored yet. */
	assert_int_equal(series_value(m, FLAGGED_SERIES), 0);
	assert_int_equal(series_value(m, WARNINGS_SERIES("gender")), 0);

	/* The store refuses the batch: nothing counted. */
	assert_int_equal(lm_ingest_batch_commit(b, ro, &c, NULL), LM_ENOTSUP);
	assert_int_equal(series_value(m, FLAGGED_SERIES), 0);
	assert_int_equal(series_value(m, WARNINGS_SERIES("gender")), 0);
	lm_store_close(ro);
	log = lmt_stderr_end(&cap);
	assert_int_equal(lmt_count(log, "ingest.compliance"), 0);
	free(log);

	/* Stored: job-9 once, its three warnings once each. */
	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	lmt_stderr_begin(&cap);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	log = lmt_stderr_end(&cap);
	assert_int_equal(lmt_count(log, "ingest.compliance"), 3);
	assert_int_equal(lmt_count(log, "posting job-9 version 3: "), 3);
	/* JSON-escaped in the log line. */
	assert_int_equal(
	    lmt_count(log, "\\\"Native English speaker\\\" flagged by rule "), 1);
	free(log);
	assert_int_equal(c.stored[LM_KIND_POSTING], 2);
	assert_int_equal(c.duplicates[LM_KIND_POSTING], 1);
	assert_int_equal(series_value(m, FLAGGED_SERIES), 1);
	assert_int_equal(series_value(m, WARNINGS_SERIES("gender")), 1);
	assert_int_equal(series_value(m, WARNINGS_SERIES("national-origin")), 1);
	assert_int_equal(series_value(m, WARNINGS_SERIES("family")), 1);
	assert_int_equal(series_value(m, WARNINGS_SERIES("age")), 0);

	/* Committed again (its dead letters undelivered): all stale. */
	lmt_stderr_begin(&cap);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	log = lmt_stderr_end(&cap);
	assert_int_equal(lmt_count(log, "ingest.compliance"), 0);
	free(log);
	assert_int_equal(series_value(m, FLAGGED_SERIES), 1);
	assert_int_equal(series_value(m, WARNINGS_SERIES("gender")), 1);
	assert_int_equal(series_value(m, WARNINGS_SERIES("national-origin")), 1);
	assert_int_equal(series_value(m, WARNINGS_SERIES("family")), 1);

	lm_ingest_batch_free(b);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
	lm_metrics_free(m);
	lm_fairness_free(fair);
	free(pb);
	free(clean);
	free(flagged);
}

/* Every reason of a well-formed message that breaks a rule. */
static void
test_reject_reasons(void **state)
{
	char title[LM_RECORD_TITLE_MAX + 10];
	char *j;
	(void) state;

	j = posting_json("job-1", "T", "IE", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, "job-1", j, "", NULL);
	free(j);
	/* missing id or title */
	j = posting_json("", "T", "IE", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, "", j, "missing_field", "id");
	free(j);
	j = posting_json("job-1", "  ", "IE", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, "job-1", j, "missing_field", "title");
	free(j);
	/* bad id */
	j = posting_json("job 1/x", "T", "IE", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, "job 1/x", j, "bad_id", "id");
	free(j);
	/* An id one byte over its limit is bad_id too (docs/ingest.md). */
	char longid[LM_RECORD_ID_MAX + 2];
	memset(longid, 'a', LM_RECORD_ID_MAX + 1);
	longid[LM_RECORD_ID_MAX + 1] = '\0';
	j = posting_json(longid, "T", "IE", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, longid, j, "bad_id", "id");
	free(j);
	longid[LM_RECORD_ID_MAX] = '\0';
	j = posting_json(longid, "T", "IE", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, longid, j, "", NULL);
	free(j);
	/* Rejects name the field by its path, written out only then. */
	assert_json_reason(LM_KIND_POSTING, "job-p",
	    "{\"id\":\"job-p\",\"version\":1,\"title\":\"T\",\"skills\":[{\"name\":"
	    "\"Go\"},{\"name\":\"  \"}]}",
	    "missing_field", "skills[1].name: required");
	assert_json_reason(LM_KIND_POSTING, "job-p",
	    "{\"id\":\"job-p\",\"version\":1,\"title\":\"T\",\"locations\":[{"
	    "\"country\":\"DE\"},{\"country\":\"XX\"}]}",
	    "bad_country", "locations[1].country: \"XX\"");
	assert_json_reason(LM_KIND_POSTING, "job-p",
	    "{\"id\":\"job-p\",\"version\":1,\"title\":\"T\",\"requirement_groups\":"
	    "[{\"label\":\"L\",\"skills\":[\"Go\",\"--\"]}]}",
	    "bad_skill", "requirement_groups[0].skills[1]: ");
	assert_json_reason(LM_KIND_POSTING, "job-p",
	    "{\"id\":\"job-p\",\"version\":1,\"title\":\"T\",\"salary\":{\"min\":1,"
	    "\"currency\":\"QQQ\"}}",
	    "bad_currency", "salary.currency: unknown currency");
	/* salary min > max */
	assert_json_reason(LM_KIND_POSTING, "job-s",
	    "{\"id\":\"job-s\",\"version\":1,\"title\":\"T\",\"salary\":{\"min\":9,"
	    "\"max\":5,\"currency\":\"EUR\"}}",
	    "bad_salary", "min");
	/* unknown enum, by name (JSON) */
	assert_json_reason(LM_KIND_POSTING, "job-e",
	    "{\"id\":\"job-e\",\"version\":1,\"title\":\"T\","
	    "\"employment_type\":\"EMPLOYMENT_TYPE_GIG\"}",
	    "unknown_enum", "employment_type");
	/* by number: decoded (proto3 keeps it), refused by the validation */
	assert_json_reason(LM_KIND_POSTING, "job-e",
	    "{\"id\":\"job-e\",\"version\":1,\"title\":\"T\",\"employment_type\":99}",
	    "unknown_enum", "employment_type");
	/* currency and country */
	j = posting_json("job-1", "T", "IE", "XYZ", "");
	assert_json_reason(LM_KIND_POSTING, "job-1", j, "bad_currency", "XYZ");
	free(j);
	j = posting_json("job-1", "T", "USA", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, "job-1", j, "bad_country", "locations");
	free(j);
	j = posting_json("job-1", "T", "XX", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, "job-1", j, "bad_country", NULL);
	free(j);
	/* oversize string and list */
	memset(title, 'a', sizeof(title) - 1);
	title[sizeof(title) - 1] = '\0';
	j = posting_json("job-1", title, "IE", "EUR", "");
	assert_json_reason(LM_KIND_POSTING, "job-1", j, "oversize", "title");
	free(j);
	char *many = malloc(LM_RECORD_SKILLS_MAX * 40 + 256);
	assert_non_null(many);
	size_t o =
	    (size_t) sprintf(many, "{\"id\":\"job-m\",\"version\":1,\"title\":\"T\","
	                           "\"skills\":[");
	for (int i = 0; i <= LM_RECORD_SKILLS_MAX; i++)
		o += (size_t) sprintf(
		    many + o, "%s{\"name\":\"skill %d\"}", i ? "," : "", i);
	strcpy(many + o, "]}");
	assert_json_reason(LM_KIND_POSTING, "job-m", many, "oversize", "skills");
	free(many);
	/* embedding of the wrong dimension */
	assert_json_reason(LM_KIND_POSTING, "job-v",
	    "{\"id\":\"job-v\",\"version\":1,\"title\":\"T\",\"embedding\":[1,2]}",
	    "bad_value", "embedding");
	/* version 0 */
	assert_json_reason(LM_KIND_POSTING, "job-0", "{\"id\":\"job-0\",\"title\":\"T\"}",
	    "missing_field", "version");
}

/* Bytes that are not the record. */
static void
test_undecodable(void **state)
{
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	lm_ingest_decision d;
	(void) state;

	decide(LM_KIND_POSTING, "job-1", garbage, sizeof(garbage), NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "undecodable");
	assert_non_null(strstr(d.error, "protobuf"));
	lm_ingest_decision_clear(&d);

	assert_json_reason(LM_KIND_POSTING, "job-1", "{not json", "bad_json", "JSON");
	assert_json_reason(LM_KIND_POSTING, "job-1", "", "bad_json", NULL);
	assert_json_reason(LM_KIND_POSTING, "job-1", "[1,2]", "schema", NULL);
	/* A key twice is JSON that does not fit the record. */
	assert_json_reason(LM_KIND_POSTING, "job-1",
	    "{\"id\":\"job-1\",\"version\":1,\"title\":\"T\",\"title\":\"U\"}", "schema",
	    "duplicate object key");
	assert_json_reason(LM_KIND_POSTING, "job-1",
	    "{\"id\":\"job-1\",\"version\":1,\"title\":\"T\",\"remote_ok\":true}",
	    "schema", "remote_ok");
	assert_json_reason(LM_KIND_POSTING, "job-1",
	    "{\"id\":\"job-1\",\"version\":1,\"title\":\"T\",\"min_years_experience\":"
	    "\"three\"}",
	    "schema", "min_years_experience");
	/* JSON whose number is beyond what the decoder reads is out of range,
	 * not "not JSON". */
	assert_json_reason(LM_KIND_POSTING, "job-1",
	    "{\"id\":\"job-1\",\"version\":18446744073709551615,\"title\":\"T\"}",
	    "schema", "number out of range");

	/* An enum varint outside int32 (status = 2^32 + 1, which protobuf-c
	 * would read as 1, OPEN) is not a value of the record: unknown_enum,
	 * as the same number in JSON. */
	static const uint8_t big_enum[] = {0x0a, 0x05, 'j', 'o', 'b', '-', '1', 0x10,
	    0x01, 0x18, 0x81, 0x80, 0x80, 0x80, 0x10, 0x22, 0x02, 0x6f, 0x6b};
	decide(LM_KIND_POSTING, "job-1", big_enum, sizeof(big_enum), NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "unknown_enum");
	assert_non_null(strstr(d.error, "status: enum value 4294967297"));
	lm_ingest_decision_clear(&d);

	decide(LM_KIND_POSTING, "job-1", "{}", 2, "text/plain", &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "undecodable");
	assert_non_null(strstr(d.error, "content-type"));
	lm_ingest_decision_clear(&d);
}

/* Invalid UTF-8 in protobuf and in JSON. */
static void
test_bad_utf8(void **state)
{
	Lunamatch__V1__JobPosting p = LUNAMATCH__V1__JOB_POSTING__INIT;
	uint8_t buf[256];
	lm_ingest_decision d;
	(void) state;

	p.id = "job-u";
	p.version = 1;
	p.title = "caf\xc3";
	size_t len = lunamatch__v1__job_posting__pack(&p, buf);
	decide(LM_KIND_POSTING, "job-u", buf, len, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "bad_utf8");
	assert_non_null(strstr(d.error, "title"));
	lm_ingest_decision_clear(&d);

	assert_json_reason(LM_KIND_POSTING, "job-u",
	    "{\"id\":\"job-u\",\"version\":1,\"title\":\"caf\xe9\"}", "bad_utf8", NULL);
	/* The same text as protobuf bytes (ed a0 80, half a surrogate pair)
	 * and as a JSON escape: bad_utf8 both. */
	p.title = "\xed\xa0\x80";
	len = lunamatch__v1__job_posting__pack(&p, buf);
	decide(LM_KIND_POSTING, "job-u", buf, len, NULL, &d);
	assert_string_equal(d.reason, "bad_utf8");
	lm_ingest_decision_clear(&d);
	assert_json_reason(LM_KIND_POSTING, "job-u",
	    "{\"id\":\"job-u\",\"version\":1,\"title\":\"\\ud800\"}", "bad_utf8", NULL);
}

/* A rejected message's unknown key: the reason is schema whatever the key
 * says, and the error stays UTF-8 without control characters. */
static void
test_unknown_key_text(void **state)
{
	lm_ingest_decision d;
	char json[128];
	(void) state;

	assert_json_reason(
	    LM_KIND_POSTING, "job-k", "{\"UTF-8\":1}", "schema", "<field>");
	assert_json_reason(
	    LM_KIND_POSTING, "job-k", "{\"unknown value enum\":1}", "schema", "<field>");

	int n = snprintf(json, sizeof(json), "{\"%.63s\xc3\xa9\":1}",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	decide(LM_KIND_POSTING, "job-k", json, (size_t) n, "application/json", &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "schema");
	assert_true(lm_pb_utf8_valid(d.error, strlen(d.error)));
	lm_ingest_decision_clear(&d);

	const char *ctl = "{\"a\\u001b[31mb\\nc\":1}";
	decide(LM_KIND_POSTING, "job-k", ctl, strlen(ctl), "application/json", &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "schema");
	for (const char *p = d.error; *p; p++)
		assert_true((unsigned char) *p >= 0x20 && *p != 0x7f);
	lm_ingest_decision_clear(&d);
}

/* Appends field 99 (length-delimited, text) to the protobuf bytes of *pb. */
static void
append_unknown(uint8_t **pb, size_t *len, const char *text)
{
	size_t n = strlen(text);
	uint8_t *b = realloc(*pb, *len + 3 + n);

	assert_true(n < 128);
	assert_non_null(b);
	b[*len] = 0x9a; /* field 99, wire type 2 */
	b[*len + 1] = 0x06;
	b[*len + 2] = (uint8_t) n;
	memcpy(b + *len + 3, text, n);
	*pb = b;
	*len += 3 + n;
}

/* True when text occurs in b[0..len). */
static bool
has_text(const uint8_t *b, size_t len, const char *text)
{
	size_t n = strlen(text);

	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(b + i, text, n) == 0)
			return true;
	return false;
}

/* Fields the schema lacks (a newer producer's, or data that has no place in
 * the schema) are accepted and never stored, at the top or in a
 * sub-message. */
static void
test_unknown_fields_dropped(void **state)
{
	static const char secret[] = "date_of_birth=1970-01-01;gender=F";
	size_t len, slen;
	uint8_t *pb =
	    to_pb(&lunamatch__v1__candidate_profile__descriptor, PROFILE_JSON, &len);
	uint8_t *skill = to_pb(&lunamatch__v1__candidate_skill__descriptor,
	    "{\"name\":\"Rust\",\"years\":2}", &slen);
	lm_ingest_decision d;
	(void) state;

	/* One more skill, carrying an unknown field, then one at the top. */
	append_unknown(&skill, &slen, secret);
	assert_true(slen < 128);
	pb = realloc(pb, len + 2 + slen);
	assert_non_null(pb);
	pb[len] = 0x22; /* field 4, skills */
	pb[len + 1] = (uint8_t) slen;
	memcpy(pb + len + 2, skill, slen);
	len += 2 + slen;
	append_unknown(&pb, &len, secret);

	decide(LM_KIND_PROFILE, "cand-1", pb, len, NULL, &d);
	if (d.action != LM_INGEST_PUT)
		fail_msg("rejected: %s: %s", d.reason, d.error);
	assert_false(has_text(d.bytes, d.len, "gender"));
	Lunamatch__V1__CandidateProfile *c =
	    lunamatch__v1__candidate_profile__unpack(NULL, d.len, d.bytes);
	assert_non_null(c);
	assert_int_equal(c->base.n_unknown_fields, 0);
	assert_int_equal(c->n_skills, 2);
	assert_string_equal(c->skills[1]->skill_id, "rust");
	assert_int_equal(c->skills[1]->base.n_unknown_fields, 0);
	lunamatch__v1__candidate_profile__free_unpacked(c, NULL);
	lm_ingest_decision_clear(&d);
	free(skill);
	free(pb);

	/* A posting's location. */
	char *json = posting_json("job-u", "Engineer", "ie", "eur", "");
	uint8_t *loc = to_pb(&lunamatch__v1__location__descriptor,
	    "{\"city\":\"Cork\",\"country\":\"IE\"}", &slen);
	pb = to_pb(&lunamatch__v1__job_posting__descriptor, json, &len);
	append_unknown(&loc, &slen, secret);
	pb = realloc(pb, len + 2 + slen);
	assert_non_null(pb);
	pb[len] = 0x72; /* field 14, locations */
	pb[len + 1] = (uint8_t) slen;
	memcpy(pb + len + 2, loc, slen);
	len += 2 + slen;
	decide(LM_KIND_POSTING, "job-u", pb, len, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_PUT);
	assert_false(has_text(d.bytes, d.len, "gender"));
	lm_ingest_decision_clear(&d);
	free(loc);
	free(pb);
	free(json);
}

/* An unknown enum number in protobuf is caught by preparing. */
static void
test_unknown_enum_protobuf(void **state)
{
	Lunamatch__V1__JobPosting p = LUNAMATCH__V1__JOB_POSTING__INIT;
	uint8_t buf[256];
	lm_ingest_decision d;
	(void) state;

	p.id = "job-e";
	p.version = 1;
	p.title = "T";
	p.remote = (Lunamatch__V1__RemotePolicy) 42;
	size_t len = lunamatch__v1__job_posting__pack(&p, buf);
	decide(LM_KIND_POSTING, "job-e", buf, len, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "unknown_enum");
	assert_non_null(strstr(d.error, "remote"));
	lm_ingest_decision_clear(&d);
}

/* Messages above LM_INGEST_MSG_MAX are refused before decoding. */
static void
test_oversize_message(void **state)
{
	size_t n = LM_INGEST_MSG_MAX + 1;
	char *big = malloc(n);
	lm_ingest_decision d;
	(void) state;

	assert_non_null(big);
	memset(big, ' ', n);
	decide(LM_KIND_PROFILE, "cand-1", big, n, "application/json", &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "oversize");
	assert_non_null(strstr(d.error, "limit"));
	lm_ingest_decision_clear(&d);
	free(big);
}

/* A protobuf message of many empty fields within the size limit is refused
 * before it costs many times its size to decode: 1 MiB of empty skills
 * (two bytes each on the wire, tens of bytes decoded; about 75 MB in all)
 * passes the budget of lm_pb_decode_capped no more than a request would. */
static void
test_decode_memory_bounded(void **state)
{
	size_t n = LM_INGEST_MSG_MAX - 16;
	unsigned char *pb = malloc(n);
	lm_ingest_decision d;
	(void) state;

	assert_non_null(pb);
	/* id "cand-1" (field 1), then skills (field 4) of zero length. */
	size_t o = 0;
	pb[o++] = 0x0a;
	pb[o++] = 6;
	memcpy(pb + o, "cand-1", 6);
	o += 6;
	while (o + 2 <= n) {
		pb[o++] = 0x22;
		pb[o++] = 0x00;
	}
	decide(LM_KIND_PROFILE, "cand-1", pb, o, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "oversize");
	assert_non_null(strstr(d.error, "memory to decode"));
	lm_ingest_decision_clear(&d);
	free(pb);
}

static void
test_tombstones(void **state)
{
	lm_ingest_decision d;
	(void) state;

	decide(LM_KIND_POSTING, "job-1", NULL, 0, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_DELETE);
	assert_int_equal(d.kind, LM_KIND_POSTING);
	assert_string_equal(d.id, "job-1");
	lm_ingest_decision_clear(&d);

	/* The content type does not matter for a tombstone. */
	decide(LM_KIND_PROFILE, "cand-1", NULL, 0, "application/json", &d);
	assert_int_equal(d.action, LM_INGEST_DELETE);
	assert_int_equal(d.kind, LM_KIND_PROFILE);
	lm_ingest_decision_clear(&d);

	decide(LM_KIND_POSTING, NULL, NULL, 0, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "missing_field");
	lm_ingest_decision_clear(&d);

	decide(LM_KIND_POSTING, "bad key", NULL, 0, NULL, &d);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "bad_id");
	assert_string_equal(d.id, "");
	lm_ingest_decision_clear(&d);

	/* A key with a NUL inside is not an id. */
	lm_ingest_msg m = {.kind = LM_KIND_POSTING, .key = "ab\0c", .key_len = 4};
	assert_int_equal(lm_ingest_decide(&R.ctx, &m, &d), LM_OK);
	assert_int_equal(d.action, LM_INGEST_REJECT);
	assert_string_equal(d.reason, "bad_id");
	lm_ingest_decision_clear(&d);
}

static void
test_bad_arguments(void **state)
{
	lm_ingest_decision d;
	lm_ingest_msg m = {.kind = (lm_kind) 9, .key = "a", .key_len = 1};
	(void) state;

	assert_int_equal(lm_ingest_decide(&R.ctx, &m, &d), LM_EINVAL);
	assert_int_equal(lm_ingest_decide(&R.ctx, NULL, &d), LM_EINVAL);
	assert_int_equal(lm_ingest_decide(&R.ctx, &m, NULL), LM_EINVAL);
	lm_ingest_decision_clear(NULL);
}

/* A JSON posting with given id and version, decided. */
static void
put_decision(const char *id, int version, lm_ingest_decision *d)
{
	char json[256];
	snprintf(json, sizeof(json),
	    "{\"id\":\"%s\",\"version\":%d,\"title\":\"T\",\"skills\":[{\"name\":\"JS\"}]"
	    "}",
	    id, version);
	decide(LM_KIND_POSTING, id, json, strlen(json), "application/json", d);
	assert_int_equal(d->action, LM_INGEST_PUT);
}

static void
test_batch(void **state)
{
	char *dir = lmt_tmpdir("ingest-batch");
	lm_store *s = NULL;
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c;
	uint64_t seq = 0, version = 0;
	size_t np;
	const lm_ingest_partition *p;
	(void) state;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_ingest_batch_new(0, &b), LM_EINVAL);
	assert_int_equal(lm_ingest_batch_new(6, &b), LM_OK);

	/* Only rejects: no transaction. */
	decide(LM_KIND_POSTING, "x", "{", 1, "application/json", &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 10), LM_OK);
	assert_null(d.bytes);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, &seq), LM_OK);
	assert_int_equal(c.rejected, 1);
	assert_int_equal(c.store_ops, 0);
	assert_int_equal(seq, 0);
	lm_ingest_batch_reset(b);
	assert_int_equal(lm_ingest_batch_len(b), 0);

	/* v2, then v1 (out of order), a duplicate v2, a tombstone of an absent
	 * record, a new record, and a reject, across two partitions. */
	put_decision("job-a", 2, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 5), LM_OK);
	put_decision("job-a", 1, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 6), LM_OK);
	put_decision("job-a", 2, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 1, 40), LM_OK);
	decide(LM_KIND_POSTING, "job-gone", NULL, 0, NULL, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 1, 41), LM_OK);
	put_decision("job-b", 1, &d);
	/* Offsets of a partition must ascend. */
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 1, 41), LM_EINVAL);
	assert_non_null(d.bytes); /* left with the caller on error */
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 1, 45), LM_OK);
	decide(LM_KIND_POSTING, "job-c", "{}", 2, "application/json", &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 7), LM_OK);
	assert_true(lm_ingest_batch_full(b));
	put_decision("job-d", 1, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 8), LM_E2BIG);
	lm_ingest_decision_clear(&d);

	assert_int_equal(lm_ingest_batch_commit(b, s, &c, &seq), LM_OK);
	assert_int_equal(c.stored[LM_KIND_POSTING], 2);
	assert_int_equal(c.duplicates[LM_KIND_POSTING], 3);
	assert_int_equal(c.deleted[LM_KIND_POSTING], 0);
	assert_int_equal(c.rejected, 1);
	assert_int_equal(c.store_ops, 5);
	assert_int_equal(seq, 2);
	p = lm_ingest_batch_partitions(b, &np);
	assert_int_equal(np, 2);
	assert_string_equal(p[0].topic, "t.postings");
	assert_int_equal(p[0].partition, 0);
	assert_int_equal(p[0].first, 5);
	assert_int_equal(p[0].next, 8);
	assert_int_equal(p[1].partition, 1);
	assert_int_equal(p[1].first, 40);
	assert_int_equal(p[1].next, 46);

	/* Committing the same batch again (a retry) changes nothing. */
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, &seq), LM_OK);
	assert_int_equal(c.stored[LM_KIND_POSTING], 0);
	assert_int_equal(c.duplicates[LM_KIND_POSTING], 5);
	assert_int_equal(seq, 2);
	lm_ingest_batch_reset(b);

	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "job-a", NULL, NULL, &version), LM_OK);
	assert_int_equal(version, 2);

	/* A tombstone deletes, whatever the version. */
	decide(LM_KIND_POSTING, "job-a", NULL, 0, NULL, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 9), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, &seq), LM_OK);
	assert_int_equal(c.deleted[LM_KIND_POSTING], 1);
	assert_int_equal(seq, 3);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "job-a", NULL, NULL, NULL), LM_ENOENT);
	lm_ingest_batch_reset(b);

	/* Older versions stay deleted; a newer one comes back. */
	put_decision("job-a", 2, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 10), LM_OK);
	put_decision("job-a", 3, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 11), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, &seq), LM_OK);
	assert_int_equal(c.duplicates[LM_KIND_POSTING], 1);
	assert_int_equal(c.stored[LM_KIND_POSTING], 1);

	lm_ingest_batch_free(b); /* frees the decisions still held */
	lm_ingest_batch_free(NULL);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* A PUT decision carrying len bytes (never stored: only the size counts). */
static void
sized_decision(size_t len, lm_ingest_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->action = LM_INGEST_PUT;
	d->kind = LM_KIND_POSTING;
	snprintf(d->id, sizeof(d->id), "job-big");
	d->version = 1;
	assert_non_null(d->bytes = calloc(1, len));
	d->len = len;
}

/* A batch is full once it holds LM_INGEST_BATCH_BYTES_MAX bytes, however few
 * messages that is; a reset empties the byte count too. */
static void
test_batch_bytes(void **state)
{
	const size_t quarter = LM_INGEST_BATCH_BYTES_MAX / 4;
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	(void) state;

	assert_int_equal(lm_ingest_batch_new(1000, &b), LM_OK);
	for (int i = 0; i < 3; i++) {
		sized_decision(quarter, &d);
		assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, i), LM_OK);
		assert_false(lm_ingest_batch_full(b));
	}
	assert_int_equal(lm_ingest_batch_bytes(b), 3 * quarter);
	/* The add that crosses the limit is taken; then the batch is full. */
	sized_decision(quarter + 1, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 3), LM_OK);
	assert_true(lm_ingest_batch_full(b));
	assert_int_equal(lm_ingest_batch_len(b), 4);
	sized_decision(1, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 4), LM_E2BIG);
	lm_ingest_decision_clear(&d);
	lm_ingest_batch_reset(b);
	assert_int_equal(lm_ingest_batch_bytes(b), 0);
	assert_false(lm_ingest_batch_full(b));
	/* One message over the limit still makes a batch (of one). */
	sized_decision(LM_INGEST_BATCH_BYTES_MAX, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 5), LM_OK);
	assert_true(lm_ingest_batch_full(b));
	lm_ingest_batch_free(b);
}

/* A rejected message counts towards the batch's byte bound with what its
 * holder keeps of it for its dead letter (d.len, which lm_ingest_decide
 * leaves 0 and the consumer sets): a run of small undecodable messages with
 * large headers fills a batch at LM_INGEST_BATCH_BYTES_MAX, not at its
 * message count. */
static void
test_batch_reject_bytes(void **state)
{
	const size_t each = LM_INGEST_MSG_MAX + 1; /* not a divisor of the bound */
	const size_t fit = LM_INGEST_BATCH_BYTES_MAX / each;
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	(void) state;

	assert_int_equal(lm_ingest_batch_new(100000, &b), LM_OK);
	for (size_t i = 0; i <= fit; i++) {
		lm_ingest_msg m = {.kind = LM_KIND_POSTING,
		    .key = "job-1",
		    .key_len = strlen("job-1"),
		    .value = "x",
		    .value_len = 1,
		    .content_type = "text/plain",
		    .content_type_len = strlen("text/plain")};
		assert_false(lm_ingest_batch_full(b));
		assert_int_equal(lm_ingest_decide(&R.ctx, &m, &d), LM_OK);
		assert_int_equal(d.action, LM_INGEST_REJECT);
		assert_int_equal(d.len, 0);
		d.len = each;
		assert_int_equal(
		    lm_ingest_batch_add(b, &d, "t.postings", 0, (int64_t) i), LM_OK);
		assert_int_equal(lm_ingest_batch_bytes(b), (i + 1) * each);
	}
	assert_true(lm_ingest_batch_full(b));
	assert_int_equal(lm_ingest_batch_len(b), fit + 1);
	lm_ingest_batch_free(b);
}

/* A batch of profiles on a read-only store fails and can be retried. */
static void
test_batch_store_error(void **state)
{
	char *dir = lmt_tmpdir("ingest-ro");
	lm_store *s = NULL, *ro = NULL;
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c = {.rejected = 99};
	(void) state;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	lm_store_close(s);
	assert_int_equal(lm_store_open(dir, &o, &ro), LM_OK);
	assert_int_equal(lm_ingest_batch_new(2, &b), LM_OK);
	decide(LM_KIND_PROFILE, "cand-1", PROFILE_JSON, strlen(PROFILE_JSON),
	    "application/json", &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.profiles", 2, 0), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, ro, &c, NULL), LM_ENOTSUP);
	assert_int_equal(c.rejected, 99); /* untouched on error */
	lm_store_close(ro);

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(c.stored[LM_KIND_PROFILE], 1);
	lm_ingest_batch_free(b);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* ---- replays ------------------------------------------------------------ */

/* One message of a replay log: a put of version, or a tombstone (0). */
struct logmsg {
	const char *id;
	uint64_t version;
};

/* A decision for m, built directly (the store sees only id and version). */
static void
log_decision(const struct logmsg *m, lm_ingest_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->kind = LM_KIND_POSTING;
	snprintf(d->id, sizeof(d->id), "%s", m->id);
	if (m->version == 0) {
		d->action = LM_INGEST_DELETE;
		return;
	}
	d->action = LM_INGEST_PUT;
	d->version = m->version;
	assert_non_null(d->bytes = malloc(8));
	memcpy(d->bytes, &m->version, 8);
	d->len = 8;
}

/* Consumes log[from..to) in batches of at most `per` messages, message i at
 * offset i of partition part(i), as the consumer loop does. */
static void
consume(lm_store *s, const struct logmsg *log, size_t from, size_t to, size_t per,
    int32_t (*part)(size_t))
{
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c;

	assert_int_equal(lm_ingest_batch_new(per, &b), LM_OK);
	for (size_t i = from; i < to; i++) {
		log_decision(&log[i], &d);
		assert_int_equal(
		    lm_ingest_batch_add(b, &d, "t.postings", part(i), (int64_t) i),
		    LM_OK);
		if (lm_ingest_batch_full(b) || i + 1 == to) {
			assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
			lm_ingest_batch_reset(b);
		}
	}
	lm_ingest_batch_free(b);
}

static int32_t
one_partition(size_t i)
{
	(void) i;
	return 0;
}

/* The state of one id after a single clean pass over a log. */
struct model {
	const char *id;
	bool seen, live;
	uint64_t version;
};

/* Applies log[0..n) once to the model entries ms[0..nm). */
static void
model_apply(const struct logmsg *log, size_t n, struct model *ms, size_t nm)
{
	for (size_t i = 0; i < n; i++) {
		struct model *m = NULL;
		for (size_t j = 0; j < nm && m == NULL; j++)
			if (strcmp(ms[j].id, log[i].id) == 0)
				m = &ms[j];
		assert_non_null(m);
		if (log[i].version == 0) {
			m->live = false;
		} else if (!m->seen || log[i].version > m->version) {
			m->seen = m->live = true;
			m->version = log[i].version;
		}
	}
}

/* The store holds exactly what the model says for every id. */
static void
assert_model(lm_store *s, const struct model *ms, size_t nm)
{
	for (size_t j = 0; j < nm; j++) {
		uint64_t version = 0;
		int rc = lm_store_get(s, LM_KIND_POSTING, ms[j].id, NULL, NULL, &version);
		if (ms[j].live) {
			if (rc != LM_OK)
				fail_msg("%s: %s, expected version %llu", ms[j].id,
				    lm_strerror(rc), (unsigned long long) ms[j].version);
			assert_int_equal(version, ms[j].version);
		} else if (rc != LM_ENOENT) {
			fail_msg("%s: live at version %llu, expected deleted", ms[j].id,
			    (unsigned long long) version);
		}
	}
}

/*
 * The sequences that lost data when a replayed tombstone deleted whatever
 * was stored: consumed once, then replayed whole (a new consumer group on
 * the same store) and from every offset (a crash before the offset commit),
 * each id ends in the state of its last message.
 */
static void
test_replay_sequences(void **state)
{
	static const struct logmsg seqs[][5] = {
	    {{"a", 1}, {"a", 0}, {"a", 2}},
	    {{"b", 1}, {"b", 2}, {"b", 0}},
	    {{"c", 1}, {"c", 0}, {"c", 2}, {"c", 0}, {"c", 3}},
	    {{"d", 1}, {"d", 0}, {"d", 0}, {"d", 2}, {"d", 0}},
	};
	static const size_t lens[] = {3, 3, 5, 5};
	(void) state;

	for (size_t q = 0; q < sizeof(lens) / sizeof(lens[0]); q++) {
		const struct logmsg *log = seqs[q];
		size_t n = lens[q];
		const struct logmsg *last = &log[n - 1];
		struct model m = {.id = last->id,
		    .seen = true,
		    .live = last->version != 0,
		    .version = last->version};
		char *dir = lmt_tmpdir("ingest-replay");
		lm_store *s = NULL;

		assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
		for (size_t per = 1; per <= n; per++)
			consume(s, log, 0, n, per, one_partition);
		assert_model(s, &m, 1);
		for (size_t from = 0; from < n; from++) {
			consume(s, log, from, n, 2, one_partition);
			assert_model(s, &m, 1);
		}
		lm_store_close(s);
		lmt_rmtree(dir);
		free(dir);
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rng(void)
{
	/* xorshift64*: reproducible across runs. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

static int32_t
two_partitions(size_t i)
{
	(void) i;
	return 1;
}

/*
 * Random logs of puts (versions mostly rising, some out of order) and
 * tombstones over a few ids, consumed with crashes at random points: each
 * restart resumes from a random earlier offset (an offset commit lost, or a
 * reset of the group's offsets), any number of times. The store ends in the
 * state of one clean pass over the log.
 */
static void
test_replay_random(void **state)
{
	enum { NLOG = 400, NIDS = 12, ROUNDS = 25 };
	static const char *const ids[NIDS] = {
	    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11"};
	struct logmsg log[NLOG];
	uint64_t next[NIDS] = {0};
	(void) state;

	for (int round = 0; round < ROUNDS; round++) {
		struct model ms[NIDS];
		char *dir = lmt_tmpdir("ingest-replay-rnd");
		lm_store *s = NULL;
		size_t pos = 0;

		for (size_t i = 0; i < NLOG; i++) {
			size_t k = rng() % NIDS;
			uint64_t r = rng() % 10;
			log[i].id = ids[k];
			if (r < 3) {
				log[i].version = 0;
			} else if (r == 3 && next[k] > 2) {
				log[i].version = next[k] - 2; /* out of order */
			} else {
				log[i].version = ++next[k];
			}
		}
		for (size_t j = 0; j < NIDS; j++)
			ms[j] = (struct model){.id = ids[j]};
		model_apply(log, NLOG, ms, NIDS);

		assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
		for (int crash = 0; crash < 8; crash++) {
			size_t upto = pos + rng() % (NLOG - pos + 1);
			consume(s, log, pos, upto, 1 + rng() % 16, one_partition);
			pos = rng() % (upto + 1); /* the committed offset */
		}
		consume(s, log, pos, NLOG, 1 + rng() % 16, one_partition);
		assert_model(s, ms, NIDS);
		/* A second group on the same store replays everything. */
		consume(s, log, 0, NLOG, 7, one_partition);
		assert_model(s, ms, NIDS);
		lm_store_close(s);
		lmt_rmtree(dir);
		free(dir);
	}
}

/*
 * Positions of different partitions do not compare: a tombstone from
 * another partition deletes as before (the topic was repartitioned and the
 * key moved), it is never mistaken for a replay.
 */
static void
test_replay_other_partition(void **state)
{
	static const struct logmsg log[] = {{"p", 1}, {"p", 0}};
	char *dir = lmt_tmpdir("ingest-replay-part");
	lm_store *s = NULL;
	(void) state;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	consume(s, log, 0, 1, 1, one_partition);  /* put v1 at 0/0 */
	consume(s, log, 1, 2, 1, two_partitions); /* tombstone at 1/1 */
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "p", NULL, NULL, NULL), LM_ENOENT);

	/* The topic recreated: offsets restart, and only a raised epoch orders
	 * the new topic's tombstone after the old topic's put. */
	static const struct logmsg put9 = {"p", 9}, tomb = {"p", 0};
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c;
	assert_int_equal(lm_ingest_batch_new(4, &b), LM_OK);
	log_decision(&put9, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 700), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	lm_ingest_batch_reset(b);
	log_decision(&tomb, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 3), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(c.duplicates[LM_KIND_POSTING], 1); /* read as a replay */
	lm_ingest_batch_reset(b);
	assert_int_equal(lm_ingest_batch_set_epoch(b, "t.postings", 1), LM_OK);
	log_decision(&tomb, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 3), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(c.deleted[LM_KIND_POSTING], 1);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "p", NULL, NULL, NULL), LM_ENOENT);
	lm_ingest_batch_free(b);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * Each topic has its own epoch: raising the postings topic's (it was
 * recreated) leaves the profiles topic's positions as they were, so a
 * replay of the profiles log put v1, tombstone, put v2 over a store that
 * holds v2 keeps v2. (With one epoch for both topics the replayed
 * tombstone, at the raised epoch, ordered after v2 and deleted it.) The
 * epoch follows the topic a message comes from, whatever its kind.
 */
static void
test_epoch_per_topic(void **state)
{
	static const struct logmsg log[] = {{"c", 1}, {"c", 0}, {"c", 2}};
	char *dir = lmt_tmpdir("ingest-epoch-topic");
	lm_store *s = NULL;
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c;
	uint64_t version = 0;
	(void) state;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_ingest_batch_new(8, &b), LM_OK);
	for (size_t i = 0; i < 3; i++) {
		log_decision(&log[i], &d);
		assert_int_equal(
		    lm_ingest_batch_add(b, &d, "t.profiles", 0, 10 + (int64_t) i), LM_OK);
	}
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	lm_ingest_batch_reset(b);

	/* The postings topic recreated; the profiles log replayed. */
	assert_int_equal(lm_ingest_batch_set_epoch(b, "t.postings", 1), LM_OK);
	for (size_t i = 1; i < 3; i++) {
		log_decision(&log[i], &d);
		assert_int_equal(
		    lm_ingest_batch_add(b, &d, "t.profiles", 0, 10 + (int64_t) i), LM_OK);
	}
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(c.deleted[LM_KIND_POSTING], 0);
	assert_int_equal(c.duplicates[LM_KIND_POSTING], 2);
	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, "c", NULL, NULL, &version), LM_OK);
	assert_int_equal(version, 2);

	/* Epochs of at most LM_INGEST_EPOCH_TOPICS topics; names bounded. */
	char name[LM_INGEST_TOPIC_MAX + 2];
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(lm_ingest_batch_set_epoch(b, name, 1), LM_EINVAL);
	for (int i = 1; i < LM_INGEST_EPOCH_TOPICS; i++) {
		snprintf(name, sizeof(name), "t.other%d", i);
		assert_int_equal(lm_ingest_batch_set_epoch(b, name, 1), LM_OK);
	}
	assert_int_equal(lm_ingest_batch_set_epoch(b, "t.one.too.many", 1), LM_E2BIG);
	assert_int_equal(lm_ingest_batch_set_epoch(b, "t.postings", 2), LM_OK);
	lm_ingest_batch_free(b);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * A batch's commit records, in its own transaction, how far each of its
 * partitions is stored and at which epoch (offsets.h), also for a batch of
 * rejects only; a failed commit records nothing. lm_ingest_batch_next says
 * where each partition of the open batch stands.
 */
static void
test_offsets_kept(void **state)
{
	static const struct logmsg put = {"k", 1};
	char *dir = lmt_tmpdir("ingest-offsets");
	lm_store *s = NULL;
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c;
	uint32_t epoch = 0;
	int64_t next = 0;
	(void) state;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(
	    lm_ingest_offset_get(s, "t.postings", 0, &epoch, &next), LM_ENOENT);
	assert_int_equal(lm_ingest_epoch_get(s, "t.postings", &epoch), LM_ENOENT);
	assert_int_equal(lm_ingest_batch_new(8, &b), LM_OK);
	assert_int_equal(lm_ingest_batch_set_epoch(b, "t.postings", 3), LM_OK);
	log_decision(&put, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 2, 40), LM_OK);
	assert_int_equal(lm_ingest_batch_next(b, "t.postings", 2), 41);
	assert_int_equal(lm_ingest_batch_next(b, "t.postings", 1), -1);
	assert_int_equal(lm_ingest_batch_next(b, "t.profiles", 2), -1);
	memset(&d, 0, sizeof(d));
	d.action = LM_INGEST_REJECT;
	d.kind = LM_KIND_PROFILE;
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.profiles", 0, 7), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(lm_ingest_offset_get(s, "t.postings", 2, &epoch, &next), LM_OK);
	assert_int_equal(epoch, 3);
	assert_int_equal(next, 41);
	/* The rejected message holds its partition until its dead letter is
	 * out: a consumer resuming from the store sends it again. */
	assert_int_equal(lm_ingest_offset_get(s, "t.profiles", 0, &epoch, &next), LM_OK);
	assert_int_equal(epoch, 0);
	assert_int_equal(next, 7);
	assert_int_equal(lm_ingest_batch_commit_delivered(b, s), LM_OK);
	assert_int_equal(lm_ingest_offset_get(s, "t.profiles", 0, &epoch, &next), LM_OK);
	assert_int_equal(next, 8);
	assert_int_equal(lm_ingest_offset_get(s, "t.postings", 2, &epoch, &next), LM_OK);
	assert_int_equal(epoch, 3);
	assert_int_equal(next, 41);
	assert_int_equal(lm_ingest_epoch_get(s, "t.postings", &epoch), LM_OK);
	assert_int_equal(epoch, 3);
	assert_int_equal(
	    lm_ingest_offset_get(s, "t.postings", 0, &epoch, &next), LM_ENOENT);
	assert_int_equal(lm_ingest_offset_get(s, "t.other", 2, &epoch, &next), LM_ENOENT);
	lm_ingest_batch_reset(b);

	/* Rejects only: no record changes, the offset still moves (to the
	 * first reject, then past the batch). A put before the first reject
	 * is passed at once. */
	log_decision(&put, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.profiles", 0, 8), LM_OK);
	for (int64_t off = 9; off <= 10; off++) {
		memset(&d, 0, sizeof(d));
		d.action = LM_INGEST_REJECT;
		d.kind = LM_KIND_PROFILE;
		assert_int_equal(lm_ingest_batch_add(b, &d, "t.profiles", 0, off), LM_OK);
	}
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(c.rejected, 2);
	assert_int_equal(lm_ingest_offset_get(s, "t.profiles", 0, &epoch, &next), LM_OK);
	assert_int_equal(next, 9);
	assert_int_equal(lm_ingest_batch_commit_delivered(b, s), LM_OK);
	assert_int_equal(lm_ingest_offset_get(s, "t.profiles", 0, &epoch, &next), LM_OK);
	assert_int_equal(next, 11);
	lm_ingest_batch_reset(b);

	/* A new store keeps positions from its first batch on; one that held
	 * records before positions were kept does not start to (its
	 * partitions without an offset resume from the group's). */
	bool kept = false;
	assert_int_equal(lm_ingest_positions_kept(s, &kept), LM_OK);
	assert_true(kept);
	char *dir2 = lmt_tmpdir("ingest-offsets-legacy");
	lm_store *s2 = NULL;
	lm_store_txn *t = NULL;
	assert_int_equal(lm_store_open(dir2, NULL, &s2), LM_OK);
	assert_int_equal(lm_store_begin(s2, &t), LM_OK);
	assert_int_equal(lm_store_put(t, LM_KIND_POSTING, "old", 1, "x", 1), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	log_decision(&put, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 2, 50), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s2, &c, NULL), LM_OK);
	lm_ingest_batch_reset(b);
	assert_int_equal(lm_ingest_positions_kept(s2, &kept), LM_OK);
	assert_false(kept);
	assert_int_equal(lm_ingest_offset_get(s2, "t.postings", 2, &epoch, &next), LM_OK);
	assert_int_equal(next, 51);
	lm_store_close(s2);
	lmt_rmtree(dir2);
	free(dir2);

	/* A commit that fails (a read-only store refuses it: its error is
	 * returned as is) records nothing. */
	lm_store_close(s);
	lm_store_opts ro = {.flags = LM_STORE_RDONLY};
	assert_int_equal(lm_store_open(dir, &ro, &s), LM_OK);
	log_decision(&put, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 2, 41), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_ENOTSUP);
	assert_int_equal(lm_ingest_offset_get(s, "t.postings", 2, &epoch, &next), LM_OK);
	assert_int_equal(next, 41);
	/* Nothing held: no transaction, so even a read-only store passes. */
	assert_int_equal(lm_ingest_batch_commit_delivered(b, s), LM_OK);
	lm_ingest_batch_reset(b);
	memset(&d, 0, sizeof(d));
	d.action = LM_INGEST_REJECT;
	d.kind = LM_KIND_PROFILE;
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.profiles", 0, 11), LM_OK);
	assert_int_equal(lm_ingest_batch_commit_delivered(b, s), LM_ENOTSUP);
	assert_int_equal(lm_ingest_offset_get(s, "t.profiles", 0, &epoch, &next), LM_OK);
	assert_int_equal(next, 11);

	/* Bad arguments. */
	assert_int_equal(lm_ingest_offset_get(s, "", 0, &epoch, &next), LM_EINVAL);
	assert_int_equal(
	    lm_ingest_offset_get(s, "t.postings", -1, &epoch, &next), LM_EINVAL);
	lm_ingest_batch_free(b);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/* Collects unmarked ids, comma-separated, for lm_store_foreach_unmarked. */
static int
collect_unmarked(
    void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	char *out = arg;
	(void) version, (void) bytes, (void) len;
	if (out[0] != '\0')
		strcat(out, ",");
	strcat(out, id);
	return 0;
}

/*
 * A refill's batches (lm_ingest_batch_set_refill) mark, in their own
 * transaction, every record a put or a deletion names, whether it changed
 * the store or not (a stale put, a tombstone of an absent record), and
 * record how far each partition was read again under that refill's id;
 * rejects mark nothing. Other batches mark nothing. The store's last
 * current time and the refill's state read back as written; a damaged
 * value reads as LM_ESTORE.
 */
static void
test_refill_marks(void **state)
{
	static const struct logmsg before[] = {{"a", 1}, {"b", 1}, {"c", 1}};
	static const struct logmsg again[] = {{"a", 1}, {"b", 0}, {"d", 1}, {"e", 0}};
	char *dir = lmt_tmpdir("ingest-refill-marks");
	char unmarked[256] = "", next[LM_STORE_ID_MAX + 1];
	lm_store *s = NULL;
	lm_store_txn *t = NULL;
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c;
	struct lm_store_stats st;
	lm_ingest_current cur;
	lm_ingest_refill ref;
	uint32_t epoch = 0;
	int64_t off = 0;
	bool end = false;
	(void) state;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_ingest_batch_new(8, &b), LM_OK);
	for (size_t i = 0; i < 3; i++) {
		log_decision(&before[i], &d);
		assert_int_equal(
		    lm_ingest_batch_add(b, &d, "t.postings", 0, (int64_t) i), LM_OK);
	}
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	lm_ingest_batch_reset(b);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.marks, 0);

	/* Read again under refill 7: a again (stale), b's tombstone, a new
	 * d, a tombstone of the absent e, and a reject. */
	lm_ingest_batch_set_refill(b, 7);
	for (size_t i = 0; i < 4; i++) {
		log_decision(&again[i], &d);
		assert_int_equal(
		    lm_ingest_batch_add(b, &d, "t.postings", 0, 10 + (int64_t) i), LM_OK);
	}
	memset(&d, 0, sizeof(d));
	d.action = LM_INGEST_REJECT;
	d.kind = LM_KIND_POSTING;
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 14), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(c.duplicates[LM_KIND_POSTING], 2);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.marks, 4);
	assert_int_equal(lm_store_foreach_unmarked(s, LM_KIND_POSTING, NULL, 100,
	                     collect_unmarked, unmarked, next, &end),
	    LM_OK);
	assert_string_equal(unmarked, "c");
	/* Read again up to the reject, then past it once delivered; under
	 * another refill's id the partition was not read again. */
	assert_int_equal(
	    lm_ingest_refill_offset_get(s, 7, "t.postings", 0, &epoch, &off), LM_OK);
	assert_int_equal(off, 14);
	assert_int_equal(lm_ingest_batch_commit_delivered(b, s), LM_OK);
	assert_int_equal(
	    lm_ingest_refill_offset_get(s, 7, "t.postings", 0, &epoch, &off), LM_OK);
	assert_int_equal(off, 15);
	assert_int_equal(lm_ingest_offset_get(s, "t.postings", 0, &epoch, &off), LM_OK);
	assert_int_equal(off, 15);
	assert_int_equal(
	    lm_ingest_refill_offset_get(s, 6, "t.postings", 0, &epoch, &off), LM_ENOENT);
	assert_int_equal(
	    lm_ingest_refill_offset_get(s, 7, "t.postings", 1, &epoch, &off), LM_ENOENT);
	lm_ingest_batch_reset(b);

	/* Without a refill: no marks. */
	lm_ingest_batch_set_refill(b, 0);
	log_decision(&before[2], &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 15), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(lm_store_stats(s, &st), LM_OK);
	assert_int_equal(st.marks, 4);
	lm_ingest_batch_free(b);

	/* The store's state. */
	assert_int_equal(lm_ingest_current_get(s, &cur), LM_ENOENT);
	assert_int_equal(lm_ingest_refill_get(s, &ref), LM_ENOENT);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	cur = (lm_ingest_current){.at = 1700000000, .complete = true};
	assert_int_equal(lm_ingest_current_put(t, &cur), LM_OK);
	ref =
	    (lm_ingest_refill){.id = 7, .active = true, .began = 1700000100, .since = 5};
	assert_int_equal(lm_ingest_refill_put(t, &ref), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	memset(&cur, 0, sizeof(cur));
	memset(&ref, 0, sizeof(ref));
	assert_int_equal(lm_ingest_current_get(s, &cur), LM_OK);
	assert_int_equal(cur.at, 1700000000);
	assert_true(cur.complete);
	assert_int_equal(lm_ingest_refill_get(s, &ref), LM_OK);
	assert_int_equal(ref.id, 7);
	assert_true(ref.active);
	assert_int_equal(ref.began, 1700000100);
	assert_int_equal(ref.since, 5);
	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(lm_store_meta_put(t, "ingest.current", "xy", 2), LM_OK);
	assert_int_equal(lm_store_meta_put(t, "ingest.refill", "xy", 2), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_ingest_current_get(s, &cur), LM_ESTORE);
	assert_int_equal(lm_ingest_refill_get(s, &ref), LM_ESTORE);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * A batch's commit records the source of each kind's positions given one
 * (offsets.h), which reads back as written; a damaged source value reads
 * as LM_ESTORE, never as another topic.
 */
static void
test_source_kept(void **state)
{
	static const struct logmsg put = {"k", 1};
	char *dir = lmt_tmpdir("ingest-source");
	lm_store *s = NULL;
	lm_store_txn *t = NULL;
	lm_ingest_batch *b = NULL;
	lm_ingest_decision d;
	lm_ingest_counts c;
	lm_ingest_source src = {.topic = "t.postings", .cluster = "abc", .epoch = 2}, got;
	(void) state;

	assert_int_equal(lm_store_open(dir, NULL, &s), LM_OK);
	assert_int_equal(lm_ingest_source_get(s, LM_KIND_POSTING, &got), LM_ENOENT);
	assert_int_equal(lm_ingest_batch_new(8, &b), LM_OK);
	assert_int_equal(lm_ingest_batch_set_source(b, LM_KIND_POSTING, &src), LM_OK);
	assert_int_equal(lm_ingest_batch_set_source(b, (lm_kind) 0, &src), LM_EINVAL);
	log_decision(&put, &d);
	assert_int_equal(lm_ingest_batch_add(b, &d, "t.postings", 0, 5), LM_OK);
	assert_int_equal(lm_ingest_batch_commit(b, s, &c, NULL), LM_OK);
	assert_int_equal(lm_ingest_source_get(s, LM_KIND_POSTING, &got), LM_OK);
	assert_string_equal(got.topic, "t.postings");
	assert_string_equal(got.cluster, "abc");
	assert_int_equal(got.epoch, 2);
	assert_int_equal(lm_ingest_source_get(s, LM_KIND_PROFILE, &got), LM_ENOENT);

	assert_int_equal(lm_store_begin(s, &t), LM_OK);
	assert_int_equal(
	    lm_store_meta_put(t, "ingest.source.profile", "\0\0\0\1\x09t", 6), LM_OK);
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	assert_int_equal(lm_ingest_source_get(s, LM_KIND_PROFILE, &got), LM_ESTORE);
	lm_ingest_batch_free(b);
	lm_store_close(s);
	lmt_rmtree(dir);
	free(dir);
}

/*
 * Whether positions come from a stored source (lm_ingest_source_same): the
 * same topic, and the same cluster unless either id is unknown; an id is
 * compared cut to LM_INGEST_CLUSTER_MAX bytes, as a source keeps it; the
 * epoch plays no part.
 */
static void
test_source_same(void **state)
{
	char full[LM_INGEST_CLUSTER_MAX + 1], longer[LM_INGEST_CLUSTER_MAX + 8];
	char shorter[LM_INGEST_CLUSTER_MAX];
	lm_ingest_source known = {.topic = "t.postings", .cluster = "abc", .epoch = 2};
	lm_ingest_source unknown = {.topic = "t.postings", .cluster = "", .epoch = 7};
	lm_ingest_source cut = {.topic = "t.postings", .epoch = 0};
	const struct {
		const lm_ingest_source *stored;
		const char *topic, *cluster;
		bool same;
	} cases[] = {
	    {&known, "t.postings", "abc", true},
	    {&known, "t.postings", NULL, true}, /* brokers' id unknown */
	    {&known, "t.postings", "", true},
	    {&known, "t.postings", "abd", false},
	    {&known, "t.postings", "ab", false},
	    {&known, "t.postings", "abcd", false},
	    {&known, "t.profiles", "abc", false},
	    {&known, "t.profiles", NULL, false},
	    {&known, "t.posting", "abc", false},
	    {&known, "t.postings2", "abc", false},
	    {&unknown, "t.postings", "xyz", true}, /* stored id unknown */
	    {&unknown, "t.postings", NULL, true},
	    {&unknown, "t.profiles", "", false},
	    {&cut, "t.postings", full, true},
	    {&cut, "t.postings", longer, true}, /* kept cut */
	    {&cut, "t.postings", shorter, false},
	};
	(void) state;

	memset(full, 'c', sizeof(full) - 1);
	full[sizeof(full) - 1] = '\0';
	memcpy(cut.cluster, full, sizeof(full));
	snprintf(longer, sizeof(longer), "%szz", full);
	memcpy(shorter, full, sizeof(shorter) - 1);
	shorter[sizeof(shorter) - 1] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (lm_ingest_source_same(cases[i].stored, cases[i].topic,
		        cases[i].cluster) != cases[i].same)
			fail_msg("case %zu: %s of %s vs stored %s of %s: expected %s", i,
			    cases[i].topic,
			    cases[i].cluster ? cases[i].cluster : "(null)",
			    cases[i].stored->topic, cases[i].stored->cluster,
			    cases[i].same ? "same" : "different");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_content_type),
	    cmocka_unit_test(test_protobuf_posting),
	    cmocka_unit_test(test_json_profile),
	    cmocka_unit_test(test_error_quotes_clean),
	    cmocka_unit_test(test_key_mismatch),
	    cmocka_unit_test(test_compliance_metrics),
	    cmocka_unit_test(test_reject_reasons),
	    cmocka_unit_test(test_undecodable),
	    cmocka_unit_test(test_bad_utf8),
	    cmocka_unit_test(test_unknown_key_text),
	    cmocka_unit_test(test_unknown_enum_protobuf),
	    cmocka_unit_test(test_unknown_fields_dropped),
	    cmocka_unit_test(test_oversize_message),
	    cmocka_unit_test(test_decode_memory_bounded),
	    cmocka_unit_test(test_tombstones),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_batch),
	    cmocka_unit_test(test_batch_store_error),
	    cmocka_unit_test(test_batch_bytes),
	    cmocka_unit_test(test_batch_reject_bytes),
	    cmocka_unit_test(test_replay_sequences),
	    cmocka_unit_test(test_replay_random),
	    cmocka_unit_test(test_replay_other_partition),
	    cmocka_unit_test(test_epoch_per_topic),
	    cmocka_unit_test(test_offsets_kept),
	    cmocka_unit_test(test_refill_marks),
	    cmocka_unit_test(test_source_kept),
	    cmocka_unit_test(test_source_same),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
