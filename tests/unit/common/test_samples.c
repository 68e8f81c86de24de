/*
 * test_samples.c - the sample data in data/samples/ against the JSON codec.
 *
 * The demo and many tests start from these files, so they must stay valid:
 * every posting and profile decodes, ids are unique and well formed, no
 * record carries fields that only ingest may fill, the seed posting is
 * exactly the one the product was described with, the records of
 * invalid.jsonl that the codec must reject are rejected, and the committed
 * files are what tools/samples/gen_samples.py generates.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/record.h"
#include "lunamatch/v1/records.pb-c.h"
#include "records.h"

extern char **environ;

/* Upper bound on lines read from one sample file. */
#define MAX_LINES 10000
/* Seconds the generator may take to compare its output with the files. */
#define GEN_TIMEOUT_S 30

#define POSTINGS "data/samples/postings.jsonl"
#define PROFILES "data/samples/profiles.jsonl"
#define INVALID  "data/samples/invalid.jsonl"
/* The generator's reference time (BASE_TIME in gen_samples.py). */
#define SAMPLE_BASE_TIME 1795000000

/* One line of a JSON-lines file: points into the file's buffer. */
typedef struct line {
	const char *text;
	size_t len;
	size_t no; /* 1-based line number */
} line;

/* A whole file split into lines. buf owns the text; lines point into it. */
typedef struct lines {
	char *buf;
	line *v;
	size_t n;
} lines;

/* Reads rel (relative to the source tree) and splits it at '\n'. A final
 * line without '\n' counts; blank lines fail the test. */
static void
lines_load(const char *rel, lines *out)
{
	size_t len = 0;
	char *buf = lmt_read_file(lmt_src(rel), &len);
	if (buf == NULL)
		fail_msg("cannot read %s", rel);
	out->buf = buf;
	out->v = calloc(MAX_LINES, sizeof(*out->v));
	assert_non_null(out->v);
	out->n = 0;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t) (nl - buf) : len;
		if (end == pos)
			fail_msg("%s:%zu: blank line", rel, out->n + 1);
		if (out->n == MAX_LINES)
			fail_msg("%s: more than %d lines", rel, MAX_LINES);
		out->v[out->n].text = buf + pos;
		out->v[out->n].len = end - pos;
		out->v[out->n].no = out->n + 1;
		out->n++;
		pos = end + 1;
	}
}

static void
lines_free(lines *l)
{
	free(l->buf);
	free(l->v);
	l->buf = NULL;
	l->v = NULL;
	l->n = 0;
}

/* Decodes one line as desc; fails the test with the codec's reason. */
static ProtobufCMessage *
decode_line(const ProtobufCMessageDescriptor *desc, const char *file, const line *ln)
{
	ProtobufCMessage *msg = NULL;
	char err[512] = "";
	int rc = lm_json_decode(desc, ln->text, ln->len, &msg, err, sizeof(err));
	if (rc != LM_OK)
		fail_msg("%s:%zu: %s: %s", file, ln->no, lm_strerror(rc), err);
	assert_non_null(msg);
	return msg;
}

/* True when id is "<prefix>-" followed by [a-z0-9-] only, at most 128 bytes,
 * not ending in '-'. */
static bool
id_ok(const char *id, const char *prefix)
{
	size_t plen = strlen(prefix);
	size_t len = strlen(id);
	if (len <= plen + 1 || len > 128 || strncmp(id, prefix, plen) != 0 ||
	    id[plen] != '-' || id[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Fails if two of the n ids are equal. Sorts ids. */
static void
assert_unique(char **ids, size_t n, const char *file)
{
	qsort(ids, n, sizeof(*ids), cmp_str);
	for (size_t i = 1; i < n; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			fail_msg("%s: duplicate id %s", file, ids[i]);
}

static bool
empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/* The salary rules every sample follows; ingest fills the annual fields. */
static void
check_salary(const Lunamatch__V1__Salary *s, const char *id, bool has_max)
{
	if (s == NULL)
		fail_msg("%s: no salary", id);
	if (s->annual_min != 0 || s->annual_max != 0 || !empty(s->rates_version))
		fail_msg("%s: salary carries fields that ingest fills", id);
	if (strlen(s->currency) != 3 || s->period == 0 || s->min <= 0)
		fail_msg("%s: incomplete salary", id);
	if (has_max && s->max < s->min)
		fail_msg("%s: salary max below min", id);
}

static void
check_locations(Lunamatch__V1__Location **locs, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		const char *c = locs[i]->country;
		if (strlen(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' ||
		    c[1] > 'Z')
			fail_msg("%s: country \"%s\" is not ISO 3166-1 alpha-2", id, c);
	}
}

static void
test_postings(void **state)
{
	(void) state;
	lines l;
	lines_load(POSTINGS, &l);
	assert_true(l.n >= 45);
	char **ids = calloc(l.n, sizeof(*ids));
	assert_non_null(ids);
	size_t closed = 0, expired = 0, grouped = 0;
	for (size_t i = 0; i < l.n; i++) {
		Lunamatch__V1__JobPosting *p = (Lunamatch__V1__JobPosting *) decode_line(
		    &lunamatch__v1__job_posting__descriptor, POSTINGS, &l.v[i]);
		if (!id_ok(p->id, "job"))
			fail_msg("%s:%zu: bad id \"%s\"", POSTINGS, l.v[i].no, p->id);
		ids[i] = strdup(p->id);
		assert_non_null(ids[i]);
		assert_int_equal(p->version, 1);
		if (empty(p->title) || empty(p->company) || empty(p->category))
			fail_msg("%s: title, company or category missing", p->id);
		assert_true(p->posted_at > 0);
		assert_true(p->n_skills > 0);
		for (size_t k = 0; k < p->n_skills; k++) {
			assert_false(empty(p->skills[k]->name));
			assert_true(empty(p->skills[k]->skill_id));
		}
		for (size_t k = 0; k < p->n_requirement_groups; k++) {
			assert_false(empty(p->requirement_groups[k]->label));
			assert_int_equal(p->requirement_groups[k]->n_skill_ids, 0);
		}
		check_salary(p->salary, p->id, true);
		check_locations(p->locations, p->n_locations, p->id);
		closed +=
		    p->status == LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
		expired += p->expires_at != 0 && p->expires_at < SAMPLE_BASE_TIME;
		grouped += p->n_requirement_groups > 0;
		protobuf_c_message_free_unpacked(&p->base, NULL);
	}
	/* The demo relies on these cases being present. */
	assert_true(closed >= 2);
	assert_true(expired >= 1);
	assert_true(grouped >= 5);
	assert_unique(ids, l.n, POSTINGS);
	for (size_t i = 0; i < l.n; i++)
		free(ids[i]);
	free(ids);
	lines_free(&l);
}

static void
test_profiles(void **state)
{
	(void) state;
	lines l;
	lines_load(PROFILES, &l);
	assert_true(l.n >= 45);
	char **ids = calloc(l.n, sizeof(*ids));
	assert_non_null(ids);
	for (size_t i = 0; i < l.n; i++) {
		Lunamatch__V1__CandidateProfile *c =
		    (Lunamatch__V1__CandidateProfile *) decode_line(
		        &lunamatch__v1__candidate_profile__descriptor, PROFILES, &l.v[i]);
		if (!id_ok(c->id, "cand"))
			fail_msg("%s:%zu: bad id \"%s\"", PROFILES, l.v[i].no, c->id);
		ids[i] = strdup(c->id);
		assert_non_null(ids[i]);
		assert_int_equal(c->version, 1);
		assert_false(empty(c->headline));
		assert_true(c->updated_at > 0);
		assert_true(c->n_skills > 0);
		for (size_t k = 0; k < c->n_skills; k++) {
			assert_false(empty(c->skills[k]->name));
			assert_true(empty(c->skills[k]->skill_id));
			assert_true(c->skills[k]->years >= 0);
		}
		check_salary(c->desired_salary, c->id, false);
		check_locations(c->locations, c->n_locations, c->id);
		assert_non_null(c->career_goals);
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	assert_unique(ids, l.n, PROFILES);
	for (size_t i = 0; i < l.n; i++)
		free(ids[i]);
	free(ids);
	lines_free(&l);
}

/* The first posting, field by field. */
static void
test_seed_posting(void **state)
{
	(void) state;
	static const struct {
		const char *name;
		float weight;
	} skills[] = {
	    {"Python", 2},
	    {"Scala", 1},
	    {"Java", 1},
	    {"AWS", 1},
	    {"Azure", 1},
	    {"Google Cloud Platform", 1},
	    {"distributed computing", 2},
	    {"ML systems", 2},
	    {"model development", 2},
	    {"model training", 1},
	    {"model deployment", 2},
	    {"hyperparameter tuning", 1},
	    {"data pipelines", 1},
	    {"CI/CD", 1},
	    {"responsible AI", 2},
	    {"explainable AI", 2},
	};
	static const char *labels[] = {"Python, Scala or Java",
	    "distributed computing or ML systems", "AWS, Azure or GCP",
	    "8+ years of experience"};

	lines l;
	lines_load(POSTINGS, &l);
	assert_true(l.n >= 1);
	Lunamatch__V1__JobPosting *p = (Lunamatch__V1__JobPosting *) decode_line(
	    &lunamatch__v1__job_posting__descriptor, POSTINGS, &l.v[0]);

	assert_string_equal(p->id, "job-dfs-sr-mgr-ml");
	assert_int_equal(p->version, 1);
	assert_int_equal(p->status, LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN);
	assert_string_equal(p->title, "Senior Manager, Machine Learning");
	assert_string_equal(p->company, "Discover Financial Services");
	assert_string_equal(p->category, "Machine Learning");
	assert_string_equal(p->industry, "Financial Services");
	assert_string_equal(p->job_function, "Engineering");
	assert_non_null(strstr(p->description, "explainable AI"));
	assert_int_equal(p->employment_type,
	    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME);
	assert_int_equal(p->experience_level,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR);
	assert_true(p->min_years_experience == 8.0f);
	assert_int_equal(p->education, LUNAMATCH__V1__EDUCATION__EDUCATION_BACHELOR);
	assert_int_equal(p->n_locations, 1);
	assert_string_equal(p->locations[0]->city, "Riverwoods");
	assert_string_equal(p->locations[0]->region, "Illinois");
	assert_string_equal(p->locations[0]->country, "US");
	assert_int_equal(p->remote, LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID);
	assert_non_null(p->salary);
	assert_true(p->salary->min == 229000.0);
	assert_true(p->salary->max == 262000.0);
	assert_string_equal(p->salary->currency, "USD");
	assert_int_equal(
	    p->salary->period, LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_YEAR);
	assert_int_equal(p->posted_at, 1795000000);
	assert_int_equal(p->expires_at, 0);
	assert_int_equal(p->n_embedding, 0);

	assert_int_equal(p->n_skills, sizeof(skills) / sizeof(skills[0]));
	for (size_t i = 0; i < p->n_skills; i++) {
		assert_string_equal(p->skills[i]->name, skills[i].name);
		assert_true(p->skills[i]->weight == skills[i].weight);
	}

	assert_int_equal(p->n_requirement_groups, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(p->requirement_groups[i]->label, labels[i]);
	Lunamatch__V1__RequirementGroup **g = p->requirement_groups;
	assert_int_equal(g[0]->n_skills, 3);
	assert_string_equal(g[0]->skills[0], "Python");
	assert_string_equal(g[0]->skills[1], "Scala");
	assert_string_equal(g[0]->skills[2], "Java");
	assert_int_equal(g[1]->n_skills, 2);
	assert_string_equal(g[1]->skills[0], "distributed computing");
	assert_string_equal(g[1]->skills[1], "ML systems");
	assert_int_equal(g[2]->n_skills, 3);
	assert_string_equal(g[2]->skills[0], "AWS");
	assert_string_equal(g[2]->skills[1], "Azure");
	assert_string_equal(g[2]->skills[2], "GCP");
	for (size_t i = 0; i < 3; i++)
		assert_true(g[i]->min_years_experience == 0.0f);
	assert_int_equal(g[3]->n_skills, 0);
	assert_true(g[3]->min_years_experience == 8.0f);

	protobuf_c_message_free_unpacked(&p->base, NULL);
	lines_free(&l);
}

static bool
has_skill(const Lunamatch__V1__CandidateProfile *c, const char *name)
{
	for (size_t i = 0; i < c->n_skills; i++)
		if (strcmp(c->skills[i]->name, name) == 0)
			return true;
	return false;
}

/* The profile the demo shows vetoed: close to the seed posting, but it
 * fails the requirement groups on systems, cloud and years. */
static void
test_vetoed_profile(void **state)
{
	(void) state;
	lines l;
	lines_load(PROFILES, &l);
	Lunamatch__V1__CandidateProfile *found = NULL;
	for (size_t i = 0; i < l.n && found == NULL; i++) {
		Lunamatch__V1__CandidateProfile *c =
		    (Lunamatch__V1__CandidateProfile *) decode_line(
		        &lunamatch__v1__candidate_profile__descriptor, PROFILES, &l.v[i]);
		if (strcmp(c->id, "cand-ml-junior-chicago") == 0)
			found = c;
		else
			protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	assert_non_null(found);
	assert_true(found->years_experience < 8.0f);
	assert_true(has_skill(found, "Python"));
	static const char *absent[] = {"distributed computing", "ML systems", "AWS",
	    "Azure", "GCP", "Google Cloud Platform"};
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		assert_false(has_skill(found, absent[i]));
	assert_non_null(found->career_goals);
	assert_true(found->career_goals->n_desired_categories >= 1);
	assert_string_equal(
	    found->career_goals->desired_categories[0], "Machine Learning");
	protobuf_c_message_free_unpacked(&found->base, NULL);
	lines_free(&l);
}

/* Reasons the codec itself must reject, with the code it returns. */
static int
codec_rejects(const char *expect)
{
	if (strcmp(expect, "json") == 0)
		return LM_EPARSE;
	if (strcmp(expect, "unknown field") == 0 || strcmp(expect, "wrong type") == 0 ||
	    strcmp(expect, "unknown enum") == 0)
		return LM_ESCHEMA;
	return LM_OK;
}

static void
test_invalid(void **state)
{
	(void) state;
	static const char *kinds[] = {"json", "unknown field", "wrong type",
	    "unknown enum", "missing id", "missing title", "salary range",
	    "unknown currency", "bad country"};
	size_t seen[sizeof(kinds) / sizeof(kinds[0])] = {0};
	lines l;
	lines_load(INVALID, &l);
	assert_true(l.n >= 8);
	for (size_t i = 0; i < l.n; i++) {
		json_error_t jerr;
		json_t *tc = json_loadb(l.v[i].text, l.v[i].len, 0, &jerr);
		if (tc == NULL)
			fail_msg("%s:%zu: %s", INVALID, l.v[i].no, jerr.text);
		const char *topic = json_string_value(json_object_get(tc, "topic"));
		const char *expect = json_string_value(json_object_get(tc, "expect"));
		json_t *record = json_object_get(tc, "record");
		json_t *raw = json_object_get(tc, "raw");
		if (topic == NULL || expect == NULL || (record == NULL) == (raw == NULL))
			fail_msg("%s:%zu: malformed test case", INVALID, l.v[i].no);
		const ProtobufCMessageDescriptor *desc = NULL;
		if (strcmp(topic, "postings") == 0)
			desc = &lunamatch__v1__job_posting__descriptor;
		else if (strcmp(topic, "profiles") == 0)
			desc = &lunamatch__v1__candidate_profile__descriptor;
		else
			fail_msg("%s:%zu: unknown topic %s", INVALID, l.v[i].no, topic);
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			seen[k] += strcmp(expect, kinds[k]) == 0;

		char *text = NULL;
		size_t len = 0;
		if (raw != NULL) {
			assert_true(json_is_string(raw));
			len = json_string_length(raw);
			text = malloc(len + 1);
			assert_non_null(text);
			memcpy(text, json_string_value(raw), len + 1);
		} else {
			assert_true(json_is_object(record));
			text = json_dumps(record, JSON_COMPACT);
			assert_non_null(text);
			len = strlen(text);
		}

		ProtobufCMessage *msg = NULL;
		char err[512] = "";
		int rc = lm_json_decode(desc, text, len, &msg, err, sizeof(err));
		int want = codec_rejects(expect);
		if (rc != want)
			fail_msg("%s:%zu (%s): got %s, want %s: %s", INVALID, l.v[i].no,
			    expect, lm_errname(rc), lm_errname(want), err);
		if (want == LM_OK) {
			assert_non_null(msg);
			protobuf_c_message_free_unpacked(msg, NULL);
		} else {
			assert_null(msg);
			assert_true(err[0] != '\0');
		}
		free(text);
		json_decref(tc);
	}
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (seen[k] == 0)
			fail_msg("%s: no case for \"%s\"", INVALID, kinds[k]);
	lines_free(&l);
}

/* Every sample record passes ingest's validation; every invalid case that
 * the codec accepts is rejected by validation for the reason it names. */
static void
test_validation(void **state)
{
	(void) state;
	static const struct {
		const char *expect;
		lm_reject reason;
	} want[] = {
	    {"missing id", LM_REJECT_MISSING_FIELD},
	    {"missing title", LM_REJECT_MISSING_FIELD},
	    {"bad id", LM_REJECT_BAD_ID},
	    {"salary range", LM_REJECT_BAD_SALARY},
	    {"unknown currency", LM_REJECT_BAD_CURRENCY},
	    {"bad country", LM_REJECT_BAD_COUNTRY},
	};
	lmt_records recs;
	char err[512] = "";
	lmt_records_open(&recs, 384);

	const char *files[] = {POSTINGS, PROFILES};
	const ProtobufCMessageDescriptor *descs[] = {
	    &lunamatch__v1__job_posting__descriptor,
	    &lunamatch__v1__candidate_profile__descriptor};
	for (size_t f = 0; f < 2; f++) {
		lines l;
		lines_load(files[f], &l);
		for (size_t i = 0; i < l.n; i++) {
			ProtobufCMessage *msg = decode_line(descs[f], files[f], &l.v[i]);
			lm_reject why;
			if (lmt_record_prepare(&recs.ctx, msg, &why, err, sizeof(err)) !=
			    LM_OK)
				fail_msg("%s:%zu: rejected (%s): %s", files[f], l.v[i].no,
				    lm_reject_name(why), err);
			protobuf_c_message_free_unpacked(msg, NULL);
		}
		lines_free(&l);
	}

	lines l;
	size_t checked = 0;
	lines_load(INVALID, &l);
	for (size_t i = 0; i < l.n; i++) {
		json_error_t jerr;
		json_t *tc = json_loadb(l.v[i].text, l.v[i].len, 0, &jerr);
		assert_non_null(tc);
		const char *topic = json_string_value(json_object_get(tc, "topic"));
		const char *expect = json_string_value(json_object_get(tc, "expect"));
		json_t *record = json_object_get(tc, "record");
		for (size_t k = 0; record != NULL && k < sizeof(want) / sizeof(want[0]);
		     k++) {
			if (strcmp(expect, want[k].expect) != 0)
				continue;
			ProtobufCMessage *msg = NULL;
			assert_int_equal(
			    lm_json_decode_value(
			        strcmp(topic, "postings") == 0
			            ? &lunamatch__v1__job_posting__descriptor
			            : &lunamatch__v1__candidate_profile__descriptor,
			        record, &msg, err, sizeof(err)),
			    LM_OK);
			lm_reject why = LM_REJECT_NONE;
			assert_int_equal(
			    lmt_record_prepare(&recs.ctx, msg, &why, err, sizeof(err)),
			    LM_ESCHEMA);
			if (why != want[k].reason)
				fail_msg("%s:%zu (%s): reason %s, want %s (%s)", INVALID,
				    l.v[i].no, expect, lm_reject_name(why),
				    lm_reject_name(want[k].reason), err);
			protobuf_c_message_free_unpacked(msg, NULL);
			checked++;
		}
		json_decref(tc);
	}
	lines_free(&l);
	assert_true(checked >= sizeof(want) / sizeof(want[0]));
	lmt_records_close(&recs);
}

/* Runs argv (argv[0] looked up in PATH) and returns its exit status, or -1
 * if it could not be started. Kills it after GEN_TIMEOUT_S seconds. */
static int
run(char *const argv[])
{
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (rc != 0)
		return -1;
	int status = 0;
	struct timespec tick = {0, 20 * 1000 * 1000};
	for (int waited = 0;; waited++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			fail_msg("waitpid: %s", strerror(errno));
		if (waited >= GEN_TIMEOUT_S * 50) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("%s did not finish in %d s", argv[0], GEN_TIMEOUT_S);
		}
		nanosleep(&tick, NULL);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The committed files are exactly what the generator writes. Skipped when
 * no Python 3 is installed. */
static void
test_generator_up_to_date(void **state)
{
	(void) state;
	char script[4096], dir[4096];
	snprintf(script, sizeof(script), "%s", lmt_src("tools/samples/gen_samples.py"));
	snprintf(dir, sizeof(dir), "%s", lmt_src("data/samples"));
	char *argv[] = {"python3", script, "--check", "--out", dir, NULL};
	int rc = run(argv);
	if (rc == -1 || rc == 127)
		skip();
	if (rc != 0)
		fail_msg(
		    "data/samples is stale: run tools/samples/gen_samples.py (exit %d)",
		    rc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_postings),
	    cmocka_unit_test(test_profiles),
	    cmocka_unit_test(test_seed_posting),
	    cmocka_unit_test(test_vetoed_profile),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_validation),
	    cmocka_unit_test(test_generator_up_to_date),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
