/*
 * test_record.c - validation and normalization of postings and profiles.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "records.h"

/* The real taxonomy and rate table; embeddings of 3 values. */
static lmt_records R;

static int
setup(void **state)
{
	(void) state;
	lmt_records_open(&R, 3);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_records_close(&R);
	return 0;
}

static Lunamatch__V1__JobPosting *
posting(const char *json)
{
	ProtobufCMessage *m = NULL;
	char err[256];
	int rv = lm_json_decode(&lunamatch__v1__job_posting__descriptor, json,
	    strlen(json), &m, err, sizeof(err));
	if (rv != LM_OK)
		fail_msg("decode: %s", err);
	return (Lunamatch__V1__JobPosting *) m;
}

static Lunamatch__V1__CandidateProfile *
profile(const char *json)
{
	ProtobufCMessage *m = NULL;
	char err[256];
	int rv = lm_json_decode(&lunamatch__v1__candidate_profile__descriptor, json,
	    strlen(json), &m, err, sizeof(err));
	if (rv != LM_OK)
		fail_msg("decode: %s", err);
	return (Lunamatch__V1__CandidateProfile *) m;
}

/* Prepares a posting given as JSON; returns the reason, checks the message. */
static lm_reject
posting_reason(const char *json, const char *want_in_err)
{
	Lunamatch__V1__JobPosting *p = posting(json);
	lm_reject why;
	char err[256];
	int rv = lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err));
	if (rv == LM_OK)
		assert_int_equal(why, LM_REJECT_NONE);
	else
		assert_int_equal(rv, LM_ESCHEMA);
	if (want_in_err != NULL && strstr(err, want_in_err) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want_in_err);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	return why;
}

static void
test_posting_normalized(void **state)
{
	(void) state;
	Lunamatch__V1__JobPosting *p =
	    posting("{\"id\":\"job-1\",\"version\":3,\"title\":\"  Data Engineer \","
	            "\"locations\":[{\"city\":\" Berlin\",\"country\":\"de\"}],"
	            "\"salary\":{\"min\":5000,\"max\":6000,\"currency\":\"eur\","
	            "\"period\":\"SALARY_PERIOD_MONTH\"},"
	            "\"skills\":[{\"name\":\"GCP\"},{\"name\":\"Google Cloud Platform\","
	            "\"weight\":3},{\"name\":\"Basket weaving!\"}],"
	            "\"requirement_groups\":[{\"label\":\"cloud\",\"skills\":[\"gcp\","
	            "\"google-cloud\",\"AWS\"]}]}");
	lm_reject why;
	char err[256];
	assert_int_equal(lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_string_equal(p->title, "Data Engineer");
	assert_string_equal(p->locations[0]->city, "Berlin");
	assert_string_equal(p->locations[0]->country, "DE");
	assert_string_equal(p->salary->currency, "EUR");
	/* 12 months, converted to the reference currency: positive and more
	 * than the raw yearly EUR amount is not asserted (rates change); the
	 * salary test covers the arithmetic. */
	assert_true(p->salary->annual_min > 0);
	assert_true(p->salary->annual_max >= p->salary->annual_min);
	assert_true(p->salary->rates_version[0] != '\0');
	/* GCP and Google Cloud Platform merged into one skill, weight kept. */
	assert_int_equal(p->n_skills, 2);
	assert_string_equal(p->skills[0]->skill_id,
	    lm_taxonomy_lookup(R.taxonomy, "Google Cloud Platform")->id);
	assert_true(p->skills[0]->weight == 3.0f);
	assert_string_equal(p->skills[1]->skill_id, "x:basketweaving");
	assert_int_equal(p->requirement_groups[0]->n_skill_ids, 2);
	protobuf_c_message_free_unpacked(&p->base, NULL);
}

/* Unicode blanks (lm_text_blank) are trimmed like ASCII ones and do not
 * count in a skill's or a place's name: "Python" followed by a no-break
 * space, as pasted from a web page, is the taxonomy's python, in a
 * requirement group too; "Zurich" with one is geocoded; a required field of
 * blanks only is missing; a skill of blanks only has no letters. */
static void
test_unicode_blanks(void **state)
{
	(void) state;
	lm_gazetteer *gaz = NULL;
	lm_record_ctx ctx = R.ctx;
	lm_reject why;
	char err[256] = "";
	Lunamatch__V1__JobPosting *p = posting(
	    "{\"id\":\"job-nb\",\"version\":1,\"title\":\"\\u3000Engineer\\u00a0\","
	    "\"skills\":[{\"name\":\"Python\\u00a0\"},{\"name\":\"\\ufeffKubernetes\"}],"
	    "\"requirement_groups\":[{\"label\":\"py\",\"skills\":[\"Py\\u200bthon\"]}],"
	    "\"locations\":[{\"city\":\"Zurich\\u00a0\",\"country\":\"CH\"}]}");

	if (lm_gazetteer_load(lmt_src("data/geo/cities.tsv"), &gaz, err, sizeof(err)) !=
	    LM_OK)
		fail_msg("%s", err);
	ctx.gazetteer = gaz;
	assert_int_equal(lm_posting_prepare(&ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_string_equal(p->title, "Engineer");
	assert_int_equal(p->n_skills, 2);
	assert_string_equal(p->skills[0]->name, "Python");
	assert_string_equal(p->skills[0]->skill_id, "python");
	assert_int_equal(p->skills[0]->resolution,
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT);
	assert_string_equal(p->skills[1]->skill_id, "kubernetes");
	assert_int_equal(p->requirement_groups[0]->n_skill_ids, 1);
	assert_string_equal(p->requirement_groups[0]->skill_ids[0], "python");
	assert_string_equal(p->locations[0]->city, "Zurich");
	assert_true(p->locations[0]->geocoded);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	lm_gazetteer_free(gaz);

	assert_int_equal(
	    posting_reason(
	        "{\"id\":\"j\",\"version\":1,\"title\":\"\\u3000\\u2003\"}", "title"),
	    LM_REJECT_MISSING_FIELD);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"skills\":"
	                   "[{\"name\":\"-\\u00a0-\"}]}",
	        "skills[0].name"),
	    LM_REJECT_BAD_SKILL);
}

/* A misspelled skill is read as the skill it names; the record keeps what
 * the producer wrote and says how it was read. */
static void
test_skill_typos(void **state)
{
	(void) state;
	Lunamatch__V1__JobPosting *p = posting(
	    "{\"id\":\"job-2\",\"version\":1,\"title\":\"Engineer\","
	    "\"skills\":[{\"name\":\"Pyhton\"},{\"name\":\"Kubernetes\"},"
	    "{\"name\":\"Basket weaving\"},{\"name\":\"Kubernets\"}],"
	    "\"requirement_groups\":[{\"label\":\"k8s\",\"skills\":[\"Kubernets\","
	    "\"K8s\"],\"skill_resolutions\":[\"SKILL_RESOLUTION_UNKNOWN\"]}]}");
	Lunamatch__V1__CandidateProfile *c =
	    profile("{\"id\":\"c-2\",\"version\":1,\"skills\":[{\"name\":"
	            "\"Terrafrom\",\"years\":2},{\"name\":\"Terraform\",\"years\":3}]}");
	lm_reject why;
	char err[256];

	assert_int_equal(lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_OK);
	/* "Kubernets" merged into "Kubernetes". */
	assert_int_equal(p->n_skills, 3);
	assert_string_equal(p->skills[0]->name, "Pyhton");
	assert_string_equal(p->skills[0]->skill_id, "python");
	assert_int_equal(p->skills[0]->resolution,
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_TYPO);
	assert_string_equal(p->skills[1]->skill_id, "kubernetes");
	assert_int_equal(p->skills[1]->resolution,
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT);
	assert_string_equal(p->skills[2]->skill_id, "x:basketweaving");
	assert_int_equal(p->skills[2]->resolution,
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_UNKNOWN);
	assert_string_equal(p->requirement_groups[0]->skill_ids[0], "kubernetes");
	assert_string_equal(p->requirement_groups[0]->skills[0], "Kubernets");
	assert_int_equal(p->requirement_groups[0]->n_skill_resolutions, 2);
	assert_int_equal(p->requirement_groups[0]->skill_resolutions[0],
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_TYPO);
	assert_int_equal(p->requirement_groups[0]->skill_resolutions[1],
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT);
	assert_int_equal(p->requirement_groups[0]->n_skill_ids, 1);

	assert_int_equal(lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(c->n_skills, 1);
	assert_string_equal(c->skills[0]->skill_id, "terraform");
	/* The exact name of the two is kept, with its reading. */
	assert_string_equal(c->skills[0]->name, "Terraform");
	assert_int_equal(c->skills[0]->resolution,
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT);
	assert_true(c->skills[0]->years == 3.0f);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* Duplicates of a skill id merge the same whatever their order: preferred
 * only when every entry is, the larger weight, the exact name over a
 * misspelling. */
static void
test_duplicate_skills(void **state)
{
	(void) state;
	static const char *const pair[][2] = {
	    {"{\"name\":\"Python\",\"preferred\":true}",
	        "{\"name\":\"python3\",\"weight\":5}"},
	    {"{\"name\":\"Pyhton\",\"preferred\":true,\"weight\":5}",
	        "{\"name\":\"Python\",\"preferred\":true}"},
	};
	char json[512];
	lm_reject why;
	char err[256];

	for (size_t i = 0; i < 2; i++) {
		for (int order = 0; order < 2; order++) {
			snprintf(json, sizeof(json),
			    "{\"id\":\"j\",\"version\":1,\"title\":\"t\","
			    "\"skills\":[%s,%s]}",
			    pair[i][order], pair[i][!order]);
			Lunamatch__V1__JobPosting *p = posting(json);
			assert_int_equal(
			    lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_OK);
			assert_int_equal(p->n_skills, 1);
			assert_string_equal(p->skills[0]->skill_id, "python");
			assert_true(p->skills[0]->weight == 5.0f);
			assert_int_equal(p->skills[0]->preferred, i == 1);
			assert_int_equal(p->skills[0]->resolution,
			    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT);
			assert_string_equal(p->skills[0]->name,
			    i == 0 && order == 1 ? "python3" : "Python");
			protobuf_c_message_free_unpacked(&p->base, NULL);
		}
	}

	Lunamatch__V1__CandidateProfile *c =
	    profile("{\"id\":\"c\",\"version\":1,\"skills\":[{\"name\":"
	            "\"Pyhton\",\"years\":4},{\"name\":\"Python\",\"years\":1}]}");
	assert_int_equal(lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(c->n_skills, 1);
	assert_string_equal(c->skills[0]->name, "Python");
	assert_int_equal(c->skills[0]->resolution,
	    LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT);
	assert_true(c->skills[0]->years == 4.0f);
	protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* The fair-requirements list: flagged skills and requirements are dropped,
 * the posting is kept with one warning per flagged text. */
static void
test_fair_requirements(void **state)
{
	(void) state;
	lm_fairness *fair = NULL;
	lm_record_ctx ctx = R.ctx;
	char err[256] = "";
	lm_reject why;
	static const char json[] =
	    "{\"id\":\"job-3\",\"version\":1,\"title\":\"Salesman\","
	    "\"skills\":[{\"name\":\"Python\"},{\"name\":\" Native English speaker\"},"
	    "{\"name\":\"Recent graduate\"}],"
	    "\"requirement_groups\":["
	    "{\"label\":\"Native English speaker\",\"skills\":[\"English\"]},"
	    "{\"label\":\"Languages\",\"skills\":[\"Spanish\",\"Native Spanish "
	    "speaker\"]},"
	    "{\"label\":\"Generation\",\"skills\":[\"Digital native\"]},"
	    "{\"label\":\"Experience\",\"skills\":[\"Digital native\"],"
	    "\"min_years_experience\":3}],"
	    "\"compliance_warnings\":[{\"rule\":\"forged\"}],\"fairness_version\":\"x\"}";
	Lunamatch__V1__JobPosting *p = posting(json);

	if (lm_fairness_load(lmt_src("data/fairness/requirements.tsv"), &fair, err,
	        sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	ctx.fairness = fair;
	assert_int_equal(lm_posting_prepare(&ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_string_equal(p->title, "Salesman");
	assert_int_equal(p->n_skills, 1);
	assert_string_equal(p->skills[0]->skill_id, "python");
	assert_int_equal(p->n_requirement_groups, 2);
	assert_string_equal(p->requirement_groups[0]->label, "Languages");
	assert_int_equal(p->requirement_groups[0]->n_skills, 1);
	assert_int_equal(p->requirement_groups[0]->n_skill_ids, 1);
	assert_string_equal(p->requirement_groups[0]->skill_ids[0], "spanish");
	assert_string_equal(p->requirement_groups[1]->label, "Experience");
	assert_int_equal(p->requirement_groups[1]->n_skills, 0);
	assert_true(p->requirement_groups[1]->min_years_experience == 3.0f);
	assert_string_equal(p->fairness_version, lm_fairness_version(fair));

	static const struct {
		const char *field, *rule, *phrase;
		int removed;
	} want[] = {
	    {"title", "gender-coded-title", "Salesman", 0},
	    {"skills[1].name", "origin-native-speaker", "Native English speaker", 1},
	    {"skills[2].name", "age-recent-graduate", "Recent graduate", 1},
	    {"requirement_groups[0].label", "origin-native-speaker",
	        "Native English speaker", 1},
	    {"requirement_groups[1].skills[1]", "origin-native-speaker",
	        "Native Spanish speaker", 1},
	    {"requirement_groups[2].skills[0]", "age-digital-native", "Digital native",
	        1},
	    {"requirement_groups[3].skills[0]", "age-digital-native", "Digital native",
	        1},
	};
	assert_int_equal(p->n_compliance_warnings, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < p->n_compliance_warnings; i++) {
		const Lunamatch__V1__ComplianceWarning *w = p->compliance_warnings[i];
		assert_string_equal(w->field, want[i].field);
		assert_string_equal(w->rule, want[i].rule);
		assert_string_equal(w->phrase, want[i].phrase);
		assert_int_equal(w->removed, want[i].removed);
		assert_true(w->category[0] != '\0' && w->reason[0] != '\0');
	}
	protobuf_c_message_free_unpacked(&p->base, NULL);

	/* Without a list nothing is screened, and what a producer sent in
	 * the fields ingest fills is dropped all the same. */
	p = posting(json);
	assert_int_equal(lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(p->n_skills, 3);
	assert_int_equal(p->n_compliance_warnings, 0);
	assert_string_equal(p->fairness_version, "");
	protobuf_c_message_free_unpacked(&p->base, NULL);

	/* A posting flagged all over still prepares; at most
	 * LM_RECORD_WARNINGS_MAX warnings are kept. */
	char big[8192];
	size_t n = (size_t) snprintf(
	    big, sizeof(big), "{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"skills\":[");
	for (int i = 0; i < 40; i++)
		n += (size_t) snprintf(big + n, sizeof(big) - n,
		    "%s{\"name\":\"Recent graduate %d\"}", i ? "," : "", i);
	snprintf(big + n, sizeof(big) - n, "]}");
	p = posting(big);
	assert_int_equal(lm_posting_prepare(&ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(p->n_skills, 0);
	assert_int_equal(p->n_compliance_warnings, LM_RECORD_WARNINGS_MAX);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	lm_fairness_free(fair);
}

/* A prepared posting decoded from its stored bytes. */
static Lunamatch__V1__JobPosting *
stored_again(const Lunamatch__V1__JobPosting *p)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	Lunamatch__V1__JobPosting *q;

	assert_int_equal(lm_pb_encode(&p->base, &buf, &len), LM_OK);
	q = lunamatch__v1__job_posting__unpack(NULL, len, buf);
	assert_non_null(q);
	free(buf);
	return q;
}

/* Preparing a prepared posting again (a stored record published again at a
 * new version) gives the warnings the first prepare gave, also of the
 * requirements it dropped; a removed warning the list does not back, or
 * whose field is not one the screen writes, is not kept. */
static void
test_fair_requirements_again(void **state)
{
	(void) state;
	lm_fairness *fair = NULL;
	lm_record_ctx ctx = R.ctx;
	char err[256] = "";
	lm_reject why;
	Lunamatch__V1__JobPosting *p =
	    posting("{\"id\":\"job-4\",\"version\":1,\"title\":\"Salesman\","
	            "\"skills\":[{\"name\":\"Python\"},{\"name\":\"Recent graduate\"}],"
	            "\"requirement_groups\":[{\"label\":\"Languages\",\"skills\":["
	            "\"Spanish\",\"Native Spanish speaker\"]}]}");

	if (lm_fairness_load(lmt_src("data/fairness/requirements.tsv"), &fair, err,
	        sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	ctx.fairness = fair;
	assert_int_equal(lm_posting_prepare(&ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(p->n_compliance_warnings, 3);

	Lunamatch__V1__JobPosting *q = stored_again(p);
	q->version = 2;
	assert_int_equal(lm_posting_prepare(&ctx, q, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(q->n_compliance_warnings, p->n_compliance_warnings);
	for (size_t i = 0; i < p->n_compliance_warnings; i++) {
		const Lunamatch__V1__ComplianceWarning *a = p->compliance_warnings[i],
		                                       *b = q->compliance_warnings[i];
		assert_string_equal(a->rule, b->rule);
		assert_string_equal(a->category, b->category);
		assert_string_equal(a->phrase, b->phrase);
		assert_string_equal(a->field, b->field);
		assert_string_equal(a->reason, b->reason);
		assert_int_equal(a->removed, b->removed);
	}
	assert_int_equal(q->n_skills, 1);
	assert_int_equal(q->requirement_groups[0]->n_skills, 1);
	protobuf_c_message_free_unpacked(&q->base, NULL);

	/* Kept only when the list flags the phrase by the rule named; the
	 * category and reason are the list's. */
	q = stored_again(p);
	Lunamatch__V1__ComplianceWarning *w = q->compliance_warnings[1];
	assert_true(w->removed);
	free(w->category);
	w->category = strdup("forged");
	w = q->compliance_warnings[2];
	free(w->phrase);
	w->phrase = strdup("Spanish");
	assert_int_equal(lm_posting_prepare(&ctx, q, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(q->n_compliance_warnings, 2);
	assert_string_equal(
	    q->compliance_warnings[1]->category, p->compliance_warnings[1]->category);
	protobuf_c_message_free_unpacked(&q->base, NULL);

	/* Kept only for a field the screen writes for a requirement: a
	 * producer cannot have other text logged and counted as a warning. */
	static const struct {
		const char *field;
		int kept;
	} fields[] = {
	    {"skills[7].name", 1},
	    {"skills[0].name", 1},
	    {"requirement_groups[19].label", 1},
	    {"requirement_groups[19].skills[19]", 1},
	    {"salary \x1b[31m anything", 0},
	    {"skills[1].name\x1b[0m", 0},
	    {"skills[1].name ", 0},
	    {"skills[1].name\n", 0},
	    {"skills[01].name", 0},
	    {"skills[-1].name", 0},
	    {"skills[+1].name", 0},
	    {"skills[100].name", 0},
	    {"skills[18446744073709551617].name", 0},
	    {"skills[].name", 0},
	    {"skills[1]", 0},
	    {"skills.name", 0},
	    {"requirement_groups[20].label", 0},
	    {"requirement_groups[0].skills[20]", 0},
	    {"requirement_groups[0].skills", 0},
	    {"requirement_groups[0].label[0]", 0},
	    {"title", 0},
	    {"description", 0},
	    {"", 0},
	};
	for (size_t t = 0; t < sizeof(fields) / sizeof(fields[0]); t++) {
		q = stored_again(p);
		w = q->compliance_warnings[1];
		free(w->field);
		w->field = strdup(fields[t].field);
		assert_int_equal(
		    lm_posting_prepare(&ctx, q, &why, err, sizeof(err)), LM_OK);
		assert_int_equal(q->n_compliance_warnings, 2 + fields[t].kept);
		int found = 0;
		for (size_t i = 0; i < q->n_compliance_warnings; i++)
			found |= q->compliance_warnings[i]->removed &&
			         strcmp(q->compliance_warnings[i]->field,
			             fields[t].field) == 0;
		if (found != fields[t].kept)
			fail_msg("field \"%s\": kept %d, want %d", fields[t].field, found,
			    fields[t].kept);
		protobuf_c_message_free_unpacked(&q->base, NULL);
	}

	/* Without the list nothing is screened and nothing kept. */
	q = stored_again(p);
	assert_int_equal(lm_posting_prepare(&R.ctx, q, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(q->n_compliance_warnings, 0);
	protobuf_c_message_free_unpacked(&q->base, NULL);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	lm_fairness_free(fair);
}

/* A flagged skill or group is checked like any other before it is dropped:
 * a posting is rejected for the same reason with the list as without it. */
static void
test_fair_requirements_checked(void **state)
{
	(void) state;
	static const struct {
		const char *members;
		lm_reject why;
	} cases[] = {
	    {"\"skills\":[{\"name\":\"Native English speaker\",\"weight\":11}]",
	        LM_REJECT_BAD_VALUE},
	    {"\"skills\":[{\"name\":\"Recent graduate\",\"weight\":-1}]",
	        LM_REJECT_BAD_VALUE},
	    {"\"requirement_groups\":[{\"label\":\"Native English speaker\","
	     "\"skills\":[\"!!\"]}]",
	        LM_REJECT_BAD_SKILL},
	    {"\"requirement_groups\":[{\"label\":\"Native English speaker\","
	     "\"min_years_experience\":200}]",
	        LM_REJECT_BAD_VALUE},
	    {"\"requirement_groups\":[{\"label\":\"Languages\","
	     "\"skills\":[\"Digital native\",\"??\"]}]",
	        LM_REJECT_BAD_SKILL},
	};
	lm_fairness *fair = NULL;
	lm_record_ctx ctx = R.ctx;
	char json[512], err[256] = "";
	lm_reject why;

	if (lm_fairness_load(lmt_src("data/fairness/requirements.tsv"), &fair, err,
	        sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	ctx.fairness = fair;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json),
		    "{\"id\":\"j\",\"version\":1,\"title\":\"t\",%s}", cases[i].members);
		for (int with_list = 0; with_list < 2; with_list++) {
			Lunamatch__V1__JobPosting *p = posting(json);
			assert_int_equal(lm_posting_prepare(with_list ? &ctx : &R.ctx, p,
			                     &why, err, sizeof(err)),
			    LM_ESCHEMA);
			if (why != cases[i].why)
				fail_msg("case %zu, %s list: %s (%s)", i,
				    with_list ? "with" : "without", lm_reject_name(why),
				    err);
			protobuf_c_message_free_unpacked(&p->base, NULL);
		}
	}
	lm_fairness_free(fair);
}

/* A posting with remote countries s (JSON list items, at most 1 KiB). */
static char *
remote_posting(const char *s)
{
	static char json[2048];
	snprintf(json, sizeof(json),
	    "{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"remote\":"
	    "\"REMOTE_POLICY_REMOTE\",\"remote_countries\":[%s]}",
	    s);
	return json;
}

/* The limit of remote countries counts distinct ones: 60 repeats of one
 * are one country, 51 distinct ones are too many; the first of each stays,
 * in order, and an entry refused after repeats names its own place. */
static void
remote_countries_limit(void)
{
	char list[1024] = "", cc[3] = "AA";
	Lunamatch__V1__JobPosting *p;
	lm_reject why;
	char err[256];
	size_t n = 0;

	for (int i = 0; i < 60; i++)
		strcat(list, i ? ",\"us\"" : "\"us\"");
	p = posting(remote_posting(list));
	assert_int_equal(lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(p->n_remote_countries, 1);
	assert_string_equal(p->remote_countries[0], "US");
	protobuf_c_message_free_unpacked(&p->base, NULL);

	p = posting(remote_posting("\"us\",\"de\",\"US\",\"fr\",\"de\",\"gr\""));
	assert_int_equal(lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(p->n_remote_countries, 4);
	assert_string_equal(p->remote_countries[0], "US");
	assert_string_equal(p->remote_countries[1], "DE");
	assert_string_equal(p->remote_countries[2], "FR");
	assert_string_equal(p->remote_countries[3], "GR");
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_int_equal(posting_reason(remote_posting("\"us\",\"us\",\"de\",\"XX\""),
	                     "remote_countries[3]"),
	    LM_REJECT_BAD_COUNTRY);

	list[0] = '\0';
	for (int a = 0; a < 26 && n <= LM_RECORD_REMOTE_MAX; a++)
		for (int b = 0; b < 26 && n <= LM_RECORD_REMOTE_MAX; b++) {
			cc[0] = (char) ('A' + a);
			cc[1] = (char) ('A' + b);
			if (!lm_country_valid(cc))
				continue;
			snprintf(list + strlen(list), sizeof(list) - strlen(list),
			    "%s\"%s\"", n++ ? "," : "", cc);
		}
	assert_int_equal(n, LM_RECORD_REMOTE_MAX + 1);
	assert_int_equal(posting_reason(remote_posting(list), "51 countries, limit 50"),
	    LM_REJECT_OVERSIZE);
}

/* Locations are geocoded with the gazetteer; a remote posting says where
 * remote work is allowed, by default its own countries. */
static void
test_locations(void **state)
{
	(void) state;
	lm_gazetteer *gaz = NULL;
	lm_record_ctx ctx = R.ctx;
	char err[256] = "";
	lm_reject why;
	Lunamatch__V1__JobPosting *p =
	    posting("{\"id\":\"job-4\",\"version\":1,\"title\":\"Engineer\","
	            "\"remote\":\"REMOTE_POLICY_REMOTE\",\"locations\":["
	            "{\"city\":\"Evanston\",\"region\":\"IL\",\"country\":\"us\"},"
	            "{\"city\":\" Bangalore \",\"country\":\"IN\"},"
	            "{\"city\":\"Atlantis\",\"country\":\"GR\",\"geocoded\":true,"
	            "\"latitude\":1,\"longitude\":2,\"geoname_id\":3},"
	            "{\"country\":\"US\"}]}");
	Lunamatch__V1__CandidateProfile *c =
	    profile("{\"id\":\"c-4\",\"version\":1,\"locations\":[{\"city\":\"Chicago\"},"
	            "{\"city\":\"Paris\"}]}");

	if (lm_gazetteer_load(lmt_src("data/geo/cities.tsv"), &gaz, err, sizeof(err)) !=
	    LM_OK)
		fail_msg("%s", err);
	ctx.gazetteer = gaz;
	assert_int_equal(lm_posting_prepare(&ctx, p, &why, err, sizeof(err)), LM_OK);
	Lunamatch__V1__Location **l = p->locations;
	assert_true(l[0]->geocoded);
	assert_int_equal(l[0]->geoname_id, 4891382); /* Evanston, Illinois */
	assert_true(fabs(l[0]->latitude - 42.04) < 0.01);
	assert_true(l[1]->geocoded);
	assert_string_equal(l[1]->city, "Bangalore"); /* as written, trimmed */
	assert_true(fabs(l[1]->longitude - 77.59) < 0.01);
	assert_false(l[2]->geocoded); /* unknown: what the producer sent is gone */
	assert_true(l[2]->latitude == 0 && l[2]->longitude == 0 && l[2]->geoname_id == 0);
	assert_false(l[3]->geocoded);
	/* Remote work allowed in the posting's own countries. */
	assert_int_equal(p->n_remote_countries, 3);
	assert_string_equal(p->remote_countries[0], "US");
	assert_string_equal(p->remote_countries[1], "IN");
	assert_string_equal(p->remote_countries[2], "GR");
	protobuf_c_message_free_unpacked(&p->base, NULL);

	/* A country-less city is geocoded only when its name tells the
	 * country, which is then filled in. */
	assert_int_equal(lm_profile_prepare(&ctx, c, &why, err, sizeof(err)), LM_OK);
	assert_true(c->locations[0]->geocoded);
	assert_string_equal(c->locations[0]->country, "US");
	assert_false(c->locations[1]->geocoded);
	assert_string_equal(c->locations[1]->country, "");
	protobuf_c_message_free_unpacked(&c->base, NULL);

	/* Given remote countries are normalized; other postings get none. */
	p = posting("{\"id\":\"job-5\",\"version\":1,\"title\":\"t\","
	            "\"remote\":\"REMOTE_POLICY_REMOTE\",\"remote_countries\":[\"us\","
	            "\" US\",\"de\"],\"locations\":[{\"country\":\"FR\"}]}");
	assert_int_equal(lm_posting_prepare(&ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(p->n_remote_countries, 2);
	assert_string_equal(p->remote_countries[0], "US");
	assert_string_equal(p->remote_countries[1], "DE");
	protobuf_c_message_free_unpacked(&p->base, NULL);
	p = posting("{\"id\":\"job-6\",\"version\":1,\"title\":\"t\","
	            "\"remote\":\"REMOTE_POLICY_HYBRID\",\"locations\":[{\"city\":"
	            "\"Chicago\",\"country\":\"US\"}]}");
	assert_int_equal(lm_posting_prepare(&ctx, p, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(p->n_remote_countries, 0);
	assert_true(p->locations[0]->geocoded);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_int_equal(posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\","
	                                "\"remote_countries\":[\"XX\"]}",
	                     "remote_countries[0]"),
	    LM_REJECT_BAD_COUNTRY);
	remote_countries_limit();
	lm_gazetteer_free(gaz);
}

static void
test_posting_rejected(void **state)
{
	(void) state;
	assert_int_equal(posting_reason("{\"version\":1,\"title\":\"x\"}", "id"),
	    LM_REJECT_MISSING_FIELD);
	assert_int_equal(posting_reason("{\"id\":\"j\",\"version\":1}", "title"),
	    LM_REJECT_MISSING_FIELD);
	assert_int_equal(posting_reason("{\"id\":\"j\",\"title\":\"t\"}", "version"),
	    LM_REJECT_MISSING_FIELD);
	assert_int_equal(
	    posting_reason("{\"id\":\"j k\",\"version\":1,\"title\":\"t\"}", "id"),
	    LM_REJECT_BAD_ID);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"salary\":"
	                   "{\"min\":300,\"max\":200,\"currency\":\"USD\"}}",
	        "min 300.00 > max 200.00"),
	    LM_REJECT_BAD_SALARY);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"salary\":"
	                   "{\"min\":300,\"currency\":\"XYZ\"}}",
	        "unknown currency \"XYZ\""),
	    LM_REJECT_BAD_CURRENCY);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"locations\":"
	                   "[{\"country\":\"USA\"}]}",
	        "locations[0].country"),
	    LM_REJECT_BAD_COUNTRY);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"locations\":"
	                   "[{\"country\":\"XX\"}]}",
	        "ISO 3166"),
	    LM_REJECT_BAD_COUNTRY);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"skills\":"
	                   "[{\"name\":\"python\",\"weight\":11}]}",
	        "skills[0].weight"),
	    LM_REJECT_BAD_VALUE);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"skills\":"
	                   "[{\"name\":\"--\"}]}",
	        "skills[0].name"),
	    LM_REJECT_BAD_SKILL);
	assert_int_equal(
	    posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"embedding\":"
	                   "[1,2]}",
	        "expected 3"),
	    LM_REJECT_BAD_VALUE);
	assert_int_equal(posting_reason("{\"id\":\"j\",\"version\":1,\"title\":\"t\","
	                                "\"requirement_groups\":[{\"label\":\"empty\"}]}",
	                     "requirement_groups[0]"),
	    LM_REJECT_MISSING_FIELD);

	/* A name within its limit whose id is not ('#' is "sharp" in ids). */
	char sharps[LM_RECORD_TEXT_MAX + 1];
	char sjson[LM_RECORD_TEXT_MAX + 128];
	memset(sharps, '#', LM_RECORD_TEXT_MAX);
	sharps[LM_RECORD_TEXT_MAX] = '\0';
	snprintf(sjson, sizeof(sjson),
	    "{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"skills\":"
	    "[{\"name\":\"%s\"}]}",
	    sharps);
	assert_int_equal(posting_reason(sjson, "skills[0].name"), LM_REJECT_OVERSIZE);
	snprintf(sjson, sizeof(sjson),
	    "{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"requirement_groups\":"
	    "[{\"label\":\"l\",\"skills\":[\"%s\"]}]}",
	    sharps);
	assert_int_equal(
	    posting_reason(sjson, "requirement_groups[0].skills[0]"), LM_REJECT_OVERSIZE);

	/* Oversize title and too many skills. */
	char big[600];
	memset(big, 'a', 300);
	big[300] = '\0';
	char json[1024];
	snprintf(
	    json, sizeof(json), "{\"id\":\"j\",\"version\":1,\"title\":\"%s\"}", big);
	assert_int_equal(posting_reason(json, "title: 300 bytes"), LM_REJECT_OVERSIZE);

	char *many = malloc(64 * 1024);
	size_t n = (size_t) sprintf(
	    many, "{\"id\":\"j\",\"version\":1,\"title\":\"t\",\"skills\":[");
	for (int i = 0; i <= LM_RECORD_SKILLS_MAX; i++)
		n += (size_t) sprintf(many + n, "%s{\"name\":\"s%d\"}", i ? "," : "", i);
	strcpy(many + n, "]}");
	assert_int_equal(posting_reason(many, "skills"), LM_REJECT_OVERSIZE);
	free(many);
}

/* Timestamps are seconds from 0 to LM_RECORD_TIME_MAX (the year 2200):
 * milliseconds and INT64_MAX are not dates. */
static void
test_timestamps(void **state)
{
	(void) state;
	static const struct {
		const char *field;
		long long v;
		lm_reject why;
	} cases[] = {
	    {"posted_at", 1767225600, LM_REJECT_NONE},
	    {"posted_at", LM_RECORD_TIME_MAX, LM_REJECT_NONE},
	    {"posted_at", LM_RECORD_TIME_MAX + 1, LM_REJECT_BAD_VALUE},
	    {"posted_at", 1767225600000, LM_REJECT_BAD_VALUE},
	    {"posted_at", INT64_MAX, LM_REJECT_BAD_VALUE},
	    {"posted_at", -1, LM_REJECT_BAD_VALUE},
	    {"expires_at", LM_RECORD_TIME_MAX, LM_REJECT_NONE},
	    {"expires_at", INT64_MAX, LM_REJECT_BAD_VALUE},
	    {"updated_at", LM_RECORD_TIME_MAX, LM_REJECT_NONE},
	    {"updated_at", 1767225600000, LM_REJECT_BAD_VALUE},
	    {"updated_at", INT64_MAX, LM_REJECT_BAD_VALUE},
	};
	char json[256], err[256];
	lm_reject why;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(cases[i].field, "updated_at") != 0) {
			snprintf(json, sizeof(json),
			    "{\"id\":\"r\",\"version\":1,\"title\":\"t\",\"%s\":%lld}",
			    cases[i].field, cases[i].v);
			why = posting_reason(
			    json, cases[i].why != LM_REJECT_NONE ? cases[i].field : NULL);
		} else {
			snprintf(json, sizeof(json),
			    "{\"id\":\"r\",\"version\":1,\"updated_at\":%lld}",
			    cases[i].v);
			Lunamatch__V1__CandidateProfile *c = profile(json);
			lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err));
			protobuf_c_message_free_unpacked(&c->base, NULL);
		}
		if (why != cases[i].why)
			fail_msg("%s %lld: %s", cases[i].field, cases[i].v,
			    lm_reject_name(why));
	}
}

static void
test_posting_bad_utf8(void **state)
{
	(void) state;
	/* Binary protobuf can carry bytes that JSON cannot: set them directly. */
	Lunamatch__V1__JobPosting *p =
	    posting("{\"id\":\"j\",\"version\":1,\"title\":\"ok\"}");
	free(p->title);
	p->title = strdup("bad \xc3\x28 bytes");
	lm_reject why;
	char err[256];
	assert_int_equal(
	    lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_ESCHEMA);
	assert_int_equal(why, LM_REJECT_BAD_UTF8);
	assert_string_equal(lm_reject_name(why), "bad_utf8");
	protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void
test_posting_unknown_enum(void **state)
{
	(void) state;
	/* Binary protobuf keeps enum numbers the schema lacks (proto3 enums are
	 * open); JSON cannot carry them, so set one directly. */
	Lunamatch__V1__JobPosting *p =
	    posting("{\"id\":\"j\",\"version\":1,\"title\":\"t\"}");
	p->employment_type = (Lunamatch__V1__EmploymentType) 42;
	lm_reject why;
	char err[256];
	assert_int_equal(
	    lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err)), LM_ESCHEMA);
	assert_int_equal(why, LM_REJECT_BAD_ENUM);
	assert_non_null(strstr(err, "employment_type"));
	protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void
test_profile(void **state)
{
	(void) state;
	Lunamatch__V1__CandidateProfile *c = profile(
	    "{\"id\":\"cand-1\",\"version\":1,\"headline\":\" ML engineer \","
	    "\"skills\":[{\"name\":\"python\",\"years\":4},{\"name\":\"Python\","
	    "\"years\":6,\"level\":\"SKILL_LEVEL_EXPERT\"}],\"years_experience\":9,"
	    "\"desired_salary\":{\"min\":200000,\"max\":100,\"currency\":\"usd\"},"
	    "\"career_goals\":{\"desired_titles\":[\" ML Manager \"]}}");
	lm_reject why;
	char err[256];
	assert_int_equal(lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_OK);
	assert_string_equal(c->headline, "ML engineer");
	assert_int_equal(c->n_skills, 1);
	assert_true(c->skills[0]->years == 6.0f);
	assert_int_equal(
	    c->skills[0]->level, LUNAMATCH__V1__SKILL_LEVEL__SKILL_LEVEL_EXPERT);
	assert_true(c->desired_salary->max == 0); /* a floor only */
	assert_int_equal(c->desired_salary->annual_min, 200000);
	assert_string_equal(c->career_goals->desired_titles[0], "ML Manager");
	protobuf_c_message_free_unpacked(&c->base, NULL);

	c = profile("{\"id\":\"cand-1\",\"version\":1,\"years_experience\":120}");
	assert_int_equal(
	    lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_ESCHEMA);
	assert_int_equal(why, LM_REJECT_BAD_VALUE);
	assert_non_null(strstr(err, "years_experience"));
	protobuf_c_message_free_unpacked(&c->base, NULL);

	/* An inline query profile needs no id or version. */
	c = profile("{\"skills\":[{\"name\":\"Rust\"}]}");
	R.ctx.inline_record = 1;
	assert_int_equal(lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_OK);
	R.ctx.inline_record = 0;
	assert_int_equal(
	    lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_ESCHEMA);
	protobuf_c_message_free_unpacked(&c->base, NULL);

	/* Nor one of spaces only (an absent id, as trimmed), which a stored
	 * record may not have. */
	c = profile("{\"id\":\"  \",\"skills\":[{\"name\":\"Rust\"}]}");
	R.ctx.inline_record = 1;
	assert_int_equal(lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_OK);
	assert_string_equal(c->id, "");
	R.ctx.inline_record = 0;
	assert_int_equal(
	    lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err)), LM_ESCHEMA);
	assert_int_equal(why, LM_REJECT_MISSING_FIELD);
	protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* A list of a record with a count limit: the JSON before its entries, one
 * entry (repeated), the JSON after them, the limit and the field that a
 * refusal names. */
struct list_limit {
	bool posting;
	const char *head, *entry, *tail;
	int max;
	const char *field;
};

/* Prepares the record of l with n entries in its list. A record within the
 * limit is accepted; one over it is refused as oversize, naming the list
 * and the limit. */
static void
check_list_limit(const struct list_limit *l, int n)
{
	size_t cap =
	    strlen(l->head) + strlen(l->tail) + (size_t) n * (strlen(l->entry) + 1) + 1;
	char *json = malloc(cap), err[256], limit[32];
	lm_reject why = LM_REJECT_NONE;
	size_t len;
	int rv;

	assert_non_null(json);
	len = (size_t) snprintf(json, cap, "%s", l->head);
	for (int i = 0; i < n; i++)
		len += (size_t) snprintf(
		    json + len, cap - len, "%s%s", i > 0 ? "," : "", l->entry);
	snprintf(json + len, cap - len, "%s", l->tail);
	if (l->posting) {
		Lunamatch__V1__JobPosting *p = posting(json);
		rv = lm_posting_prepare(&R.ctx, p, &why, err, sizeof(err));
		protobuf_c_message_free_unpacked(&p->base, NULL);
	} else {
		Lunamatch__V1__CandidateProfile *c = profile(json);
		rv = lm_profile_prepare(&R.ctx, c, &why, err, sizeof(err));
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	free(json);
	if (n <= l->max) {
		if (rv != LM_OK)
			fail_msg("%s: %d entries refused: %s", l->field, n, err);
		return;
	}
	if (rv != LM_ESCHEMA || why != LM_REJECT_OVERSIZE)
		fail_msg("%s: %d entries (limit %d) not refused as oversize (%d, %s)",
		    l->field, n, l->max, rv,
		    rv == LM_OK ? "accepted" : lm_reject_name(why));
	snprintf(limit, sizeof(limit), "limit %d", l->max);
	if (strncmp(err, l->field, strlen(l->field)) != 0 || strstr(err, limit) == NULL)
		fail_msg("%s: error \"%s\" does not name the list and its limit",
		    l->field, err);
}

#define POSTING_HEAD "{\"id\":\"j\",\"version\":1,\"title\":\"t\","
#define PROFILE_HEAD "{\"id\":\"c\",\"version\":1,"

/* Every list of a record that has a count limit takes as many entries as
 * the limit and refuses one more (an input-fed list without a bound would
 * let one record take any memory the decoder gives it). */
static void
test_list_limits(void **state)
{
	(void) state;
	static const struct list_limit lists[] = {
	    {true, POSTING_HEAD "\"skills\":[", "{\"name\":\"Python\"}", "]}",
	        LM_RECORD_SKILLS_MAX, "skills"},
	    {true, POSTING_HEAD "\"locations\":[", "{\"country\":\"US\"}", "]}",
	        LM_RECORD_LOCATIONS_MAX, "locations"},
	    /* remote_countries counts distinct ones: remote_countries_limit. */
	    {true, POSTING_HEAD "\"requirement_groups\":[",
	        "{\"label\":\"g\",\"min_years_experience\":1}", "]}",
	        LM_RECORD_GROUPS_MAX, "requirement_groups"},
	    {true, POSTING_HEAD "\"requirement_groups\":[{\"label\":\"g\",\"skills\":[",
	        "\"Python\"", "]}]}", LM_RECORD_GROUP_SKILLS_MAX,
	        "requirement_groups[0].skills"},
	    {false, PROFILE_HEAD "\"skills\":[", "{\"name\":\"Python\"}", "]}",
	        LM_RECORD_SKILLS_MAX, "skills"},
	    {false, PROFILE_HEAD "\"locations\":[", "{\"country\":\"US\"}", "]}",
	        LM_RECORD_LOCATIONS_MAX, "locations"},
	    {false, PROFILE_HEAD "\"desired_employment_types\":[",
	        "\"EMPLOYMENT_TYPE_FULL_TIME\"", "]}", 8, "desired_employment_types"},
	    {false, PROFILE_HEAD "\"career_goals\":{\"desired_titles\":[", "\"Lead\"",
	        "]}}", LM_RECORD_GOALS_MAX, "career_goals.desired_titles"},
	    {false, PROFILE_HEAD "\"career_goals\":{\"desired_categories\":[", "\"Data\"",
	        "]}}", LM_RECORD_GOALS_MAX, "career_goals.desired_categories"},
	    {false, PROFILE_HEAD "\"career_goals\":{\"desired_industries\":[",
	        "\"Retail\"", "]}}", LM_RECORD_GOALS_MAX,
	        "career_goals.desired_industries"},
	};

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		check_list_limit(&lists[i], lists[i].max);
		check_list_limit(&lists[i], lists[i].max + 1);
	}
}

static void
test_country_table(void **state)
{
	(void) state;
	assert_true(lm_country_valid("US"));
	assert_true(lm_country_valid("ZW"));
	assert_true(lm_country_valid("AD"));
	assert_false(lm_country_valid("us"));
	assert_false(lm_country_valid("UK"));
	assert_false(lm_country_valid("USA"));
	assert_false(lm_country_valid(""));
	assert_false(lm_country_valid(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_posting_normalized),
	    cmocka_unit_test(test_posting_rejected),
	    cmocka_unit_test(test_skill_typos),
	    cmocka_unit_test(test_duplicate_skills),
	    cmocka_unit_test(test_fair_requirements),
	    cmocka_unit_test(test_fair_requirements_checked),
	    cmocka_unit_test(test_fair_requirements_again),
	    cmocka_unit_test(test_locations),
	    cmocka_unit_test(test_unicode_blanks),
	    cmocka_unit_test(test_timestamps),
	    cmocka_unit_test(test_posting_bad_utf8),
	    cmocka_unit_test(test_posting_unknown_enum),
	    cmocka_unit_test(test_profile),
	    cmocka_unit_test(test_list_limits),
	    cmocka_unit_test(test_country_table),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
