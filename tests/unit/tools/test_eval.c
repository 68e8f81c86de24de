/*
 * test_eval.c - `lunamatch eval --load` as the real binary: what it writes
 * into the record store. No service answers (the command then ends with
 * status 3 after the store is written); what the report says of the
 * answers runs against the real MatchService handlers over an index of the
 * sample records (data/samples), each replica with its own RPC server on
 * ipc:// in the test's directory. Measuring against a whole lunamatch-match
 * process is tests/integration/test_eval.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "index.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/records.pb-c.h"
#include "model.h"
#include "proc.h"
#include "records.h"
#include "replica.h"
#include "rpc_server.h"
#include "service.h"

#define RUN_MS 30000

LMT_TMPDIR_FIXTURES("tools-eval")

/* The URL of an ipc:// address in the test's directory where nothing
 * listens. */
static void
unused_url(char *url, size_t len)
{
	snprintf(url, len, "ipc://%s/nobody.ipc", dir);
}

/* The posting id of the store in data, decoded; fails the test when absent. */
static Lunamatch__V1__JobPosting *
stored_posting(const char *data, const char *id)
{
	lm_store *st = NULL;
	void *bytes = NULL;
	size_t len = 0;
	ProtobufCMessage *m = NULL;
	char err[256];

	assert_int_equal(lm_store_open(data, NULL, &st), LM_OK);
	assert_int_equal(
	    lm_store_get(st, LM_KIND_POSTING, id, &bytes, &len, NULL), LM_OK);
	assert_int_equal(lm_pb_decode(&lunamatch__v1__job_posting__descriptor, bytes, len,
	                     len, &m, err, sizeof(err)),
	    LM_OK);
	free(bytes);
	lm_store_close(st);
	return (Lunamatch__V1__JobPosting *) m;
}

/* Creates an empty record store in data, as the service creates its own
 * (eval --load writes only into an existing store). */
static void
make_store(const char *data)
{
	lm_store *st = NULL;

	assert_int_equal(lm_store_open(data, NULL, &st), LM_OK);
	lm_store_close(st);
}

/*
 * --load prepares a set's postings as ingest does, screening included: a
 * requirement on the fair-requirements list ("native English speaker") is
 * not stored as a skill the engine would score or veto on, and the posting
 * carries the warning and the list's version.
 */
static void
test_load_screens_postings(void **state)
{
	(void) state;
	char set[4200], data[4200], url[64], errpath[4200];
	const char posting[] =
	    "{\"id\":\"job-1\",\"version\":1,\"title\":\"Backend Engineer\","
	    "\"skills\":[{\"name\":\"Python\"},{\"name\":\"Native English "
	    "speaker\"}]}\n";
	const char profile[] = "{\"id\":\"cand-1\",\"version\":1,\"skills\":"
	                       "[{\"name\":\"Python\"}]}\n";
	const char judgments[] =
	    "{\"candidate\":\"cand-1\",\"job\":\"job-1\",\"grade\":2}\n";

	snprintf(set, sizeof(set), "%s/set", dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(errpath, sizeof(errpath), "%s/eval.err", dir);
	assert_int_equal(mkdir(set, 0700), 0);
	lmt_write_file(set, "postings.jsonl", posting, strlen(posting));
	lmt_write_file(set, "profiles.jsonl", profile, strlen(profile));
	lmt_write_file(set, "judgments.jsonl", judgments, strlen(judgments));
	unused_url(url, sizeof(url));
	make_store(data);

	lmt_run_result r =
	    lmt_run((const char *const[]){lmt_bin("lunamatch"), "eval", "--set", set,
	                "--load", "--taxonomy-file", lmt_src("data/skills.tsv"),
	                "--rates-file", lmt_src("data/rates.tsv"), "--fairness-file",
	                lmt_src("data/fairness/requirements.tsv"), "--gazetteer-file",
	                lmt_src("data/geo/cities.tsv"), "--data-dir", data, "--url", url,
	                "--timeout-ms", "300", "--wait-ms", "0", NULL},
	        NULL, errpath, RUN_MS);
	/* Loaded, then nobody to measure with. */
	assert_int_equal(r.status, 3);
	lmt_run_result_free(&r);

	Lunamatch__V1__JobPosting *p = stored_posting(data, "job-1");
	assert_int_equal(p->n_skills, 1);
	assert_string_equal(p->skills[0]->name, "Python");
	assert_int_equal(p->n_compliance_warnings, 1);
	assert_string_equal(p->compliance_warnings[0]->rule, "origin-native-speaker");
	assert_true(p->compliance_warnings[0]->removed);
	assert_true(p->fairness_version[0] != '\0');
	protobuf_c_message_free_unpacked(&p->base, NULL);
}

/* Writes a set of one posting and one profile, each with an embedding of
 * dim values, into <dir>/<name>; returns its path (static). */
static const char *
embedded_set(const char *name, size_t dim)
{
	static char set[4200];
	char *emb = malloc(dim * 8 + 2), *rec = malloc(dim * 8 + 256);
	size_t n = 0;

	assert_non_null(emb);
	assert_non_null(rec);
	for (size_t i = 0; i < dim; i++)
		n += (size_t) sprintf(emb + n, "%s0.%zu", i ? "," : "", i % 10);
	snprintf(set, sizeof(set), "%s/%s", dir, name);
	assert_int_equal(mkdir(set, 0700), 0);
	n = (size_t) sprintf(rec,
	    "{\"id\":\"job-1\",\"version\":1,\"title\":\"Backend Engineer\","
	    "\"skills\":[{\"name\":\"Python\"}],\"embedding\":[%s]}\n",
	    emb);
	lmt_write_file(set, "postings.jsonl", rec, n);
	n = (size_t) sprintf(rec,
	    "{\"id\":\"cand-1\",\"version\":1,\"skills\":[{\"name\":"
	    "\"Python\"}],\"embedding\":[%s]}\n",
	    emb);
	lmt_write_file(set, "profiles.jsonl", rec, n);
	const char judgments[] =
	    "{\"candidate\":\"cand-1\",\"job\":\"job-1\",\"grade\":2}\n";
	lmt_write_file(set, "judgments.jsonl", judgments, strlen(judgments));
	free(emb);
	free(rec);
	return set;
}

/* Runs eval --load of set into the store data (make_store) with the extra
 * arguments (NULL-terminated, at most 4) and the environment variables env
 * (may be NULL); nothing answers at --url. */
static lmt_run_result
run_load_env(
    const char *set, const char *data, const char *const extra[], const char *const env[])
{
	const char *argv[40];
	char url[4200], errpath[4200];
	size_t n = 0;
	const char *const base[] = {lmt_bin("lunamatch"), "eval", "--set", set, "--load",
	    "--taxonomy-file", lmt_src("data/skills.tsv"), "--rates-file",
	    lmt_src("data/rates.tsv"), "--fairness-file",
	    lmt_src("data/fairness/requirements.tsv"), "--gazetteer-file",
	    lmt_src("data/geo/cities.tsv"), "--data-dir", data, "--url", NULL};

	unused_url(url, sizeof(url));
	snprintf(errpath, sizeof(errpath), "%s/eval.err", dir);
	for (size_t i = 0; base[i] != NULL; i++)
		argv[n++] = base[i];
	argv[n++] = url;
	argv[n++] = "--timeout-ms";
	argv[n++] = "300";
	argv[n++] = "--wait-ms";
	argv[n++] = "0";
	for (size_t i = 0; extra[i] != NULL; i++) {
		assert_true(n < 38);
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	return lmt_run(argv, env, errpath, RUN_MS);
}

static lmt_run_result
run_load(const char *set, const char *data, const char *const extra[])
{
	return run_load_env(set, data, extra, NULL);
}

/*
 * A set whose records carry embeddings is loaded as ingest loads them:
 * with the deployment's dimension (384 unless --embedding-dim says
 * otherwise, as LUNAMATCH_EMBEDDING_DIM of the services), so that the
 * engine's semantic feature is measured. --load used to refuse every
 * record with an embedding ("expected 0"). An embedding of another
 * dimension is refused, naming the option.
 */
static void
test_load_embeddings(void **state)
{
	(void) state;
	char data[4200];

	snprintf(data, sizeof(data), "%s/data-emb", dir);
	make_store(data);
	lmt_run_result r =
	    run_load(embedded_set("emb384", 384), data, (const char *const[]){NULL});
	/* Loaded, then nobody to measure with. */
	if (r.status != 3)
		fail_msg("eval exited %d: %s", r.status, r.err ? r.err : "");
	lmt_run_result_free(&r);
	Lunamatch__V1__JobPosting *p = stored_posting(data, "job-1");
	assert_int_equal(p->n_embedding, 384);
	assert_true(p->embedding[3] == 0.3f);
	protobuf_c_message_free_unpacked(&p->base, NULL);

	const char *set4 = embedded_set("emb4", 4);
	snprintf(data, sizeof(data), "%s/data-emb4", dir);
	make_store(data);
	r = run_load(set4, data, (const char *const[]){NULL});
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "4 values, expected 384"));
	assert_non_null(strstr(r.err, "--embedding-dim"));
	lmt_run_result_free(&r);
	r = run_load(set4, data, (const char *const[]){"--embedding-dim", "4", NULL});
	if (r.status != 3)
		fail_msg("eval exited %d: %s", r.status, r.err ? r.err : "");
	lmt_run_result_free(&r);
	p = stored_posting(data, "job-1");
	assert_int_equal(p->n_embedding, 4);
	protobuf_c_message_free_unpacked(&p->base, NULL);
}

/*
 * Without --embedding-dim, --load checks embeddings against the services'
 * LUNAMATCH_EMBEDDING_DIM (the option is the CLI's too, as --embedding-dim
 * before the command); --embedding-dim overrides it. The variable used to
 * be ignored: the CLI always started from 384.
 */
static void
test_load_embedding_dim_env(void **state)
{
	(void) state;
	char data[4200];
	const char *const env4[] = {"LUNAMATCH_EMBEDDING_DIM=4", NULL};
	const char *set4 = embedded_set("emb4-env", 4);

	snprintf(data, sizeof(data), "%s/data-emb4-env", dir);
	make_store(data);
	lmt_run_result r = run_load_env(set4, data, (const char *const[]){NULL}, env4);
	if (r.status != 3)
		fail_msg("eval exited %d: %s", r.status, r.err ? r.err : "");
	lmt_run_result_free(&r);
	Lunamatch__V1__JobPosting *p = stored_posting(data, "job-1");
	assert_int_equal(p->n_embedding, 4);
	protobuf_c_message_free_unpacked(&p->base, NULL);

	/* The option wins over the variable. */
	r = run_load_env(
	    set4, data, (const char *const[]){"--embedding-dim", "384", NULL}, env4);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "4 values, expected 384"));
	lmt_run_result_free(&r);

	/* A bad variable: the option excuses it, as every flag does its
	 * variable; without the option eval --load names it (exit 2). It is
	 * eval's alone: before, it was a global option's, and a bad value
	 * failed every command before eval could read its own option. */
	const char *const bad[] = {"LUNAMATCH_EMBEDDING_DIM=abc", NULL};
	r = run_load_env(
	    set4, data, (const char *const[]){"--embedding-dim", "4", NULL}, bad);
	if (r.status != 3)
		fail_msg("eval exited %d: %s", r.status, r.err ? r.err : "");
	lmt_run_result_free(&r);
	r = run_load_env(set4, data, (const char *const[]){NULL}, bad);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "LUNAMATCH_EMBEDDING_DIM: \"abc\""));
	lmt_run_result_free(&r);
}

/*
 * --load writes into the service's store only: a --data-dir without a store
 * is refused, naming it, and left uncreated. It used to be created, and the
 * service, serving its own store, was measured on records other than the
 * ones loaded.
 */
static void
test_load_needs_store(void **state)
{
	(void) state;
	char data[4200];
	struct stat st;

	snprintf(data, sizeof(data), "%s/no-store", dir);
	lmt_run_result r =
	    run_load(embedded_set("nostore", 384), data, (const char *const[]){NULL});
	assert_int_equal(r.status, 1);
	if (strstr(r.err, "no record store in") == NULL || strstr(r.err, data) == NULL)
		fail_msg("stderr does not name the directory: %s", r.err);
	lmt_run_result_free(&r);
	assert_int_not_equal(stat(data, &st), 0);
}

/* ---- against the match service ------------------------------------------------ */

#define SAMPLES_NOW   LMT_REPLICA_NOW
#define MODEL_VERSION "default-2026.1"
#define OTHER_VERSION "default-2099.9"
#define INDEX_SEQ     LMT_REPLICA_SEQ
#define SET_RECORDS   3 /* postings and profiles of the set */

/* Starts a replica of the samples scoring with the model of model_path,
 * listening on ipc://<dir>/<name>.ipc. */
static void
replica_start(lmt_replica *r, const char *name, const char *model_path)
{
	lmt_replica_start(r, dir, name, model_path, true);
}

/* The first SET_RECORDS lines of a sample file and their ids. */
struct sample_lines {
	char text[65536];
	char ids[SET_RECORDS][128];
};

/* lmt_jsonl_fn: keeps the first SET_RECORDS lines in arg (a struct
 * sample_lines). */
static void
add_line(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	struct sample_lines *l = arg;
	size_t at = strlen(l->text);

	if (no <= SET_RECORDS) {
		assert_true(at + len + 2 < sizeof(l->text));
		memcpy(l->text + at, line, len);
		l->text[at + len] = '\n';
		l->text[at + len + 1] = '\0';
		snprintf(l->ids[no - 1], sizeof(l->ids[0]), "%s", lmt_record_id(m));
	}
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Writes a set of the first SET_RECORDS sample postings and profiles into
 * <dir>/<name>, profile i judged relevant for posting i; returns its path
 * (static). */
static const char *
sample_set(const char *name)
{
	static char set[4200];
	struct sample_lines *p = calloc(1, sizeof(*p)), *c = calloc(1, sizeof(*c));
	char judgments[1024];
	size_t at = 0;

	assert_non_null(p);
	assert_non_null(c);
	snprintf(set, sizeof(set), "%s/%s", dir, name);
	assert_int_equal(mkdir(set, 0700), 0);
	lmt_jsonl_foreach(
	    LMT_SAMPLE_POSTINGS, lmt_sample_descriptor(LMT_SAMPLE_POSTINGS), add_line, p);
	lmt_jsonl_foreach(
	    LMT_SAMPLE_PROFILES, lmt_sample_descriptor(LMT_SAMPLE_PROFILES), add_line, c);
	lmt_write_file(set, "postings.jsonl", p->text, strlen(p->text));
	lmt_write_file(set, "profiles.jsonl", c->text, strlen(c->text));
	for (size_t i = 0; i < SET_RECORDS; i++)
		at += (size_t) snprintf(judgments + at, sizeof(judgments) - at,
		    "{\"candidate\":\"%s\",\"job\":\"%s\",\"grade\":2}\n", c->ids[i],
		    p->ids[i]);
	lmt_write_file(set, "judgments.jsonl", judgments, at);
	free(p);
	free(c);
	return set;
}

/* Runs eval of set against url (no --load) with the extra arguments
 * (NULL-terminated, at most 4). */
static lmt_run_result
run_service(const char *set, const char *url, const char *const extra[])
{
	const char *argv[20];
	char errpath[4200];
	size_t n = 0;

	snprintf(errpath, sizeof(errpath), "%s/eval.err", dir);
	argv[n++] = lmt_bin("lunamatch");
	argv[n++] = "eval";
	argv[n++] = "--set";
	argv[n++] = set;
	argv[n++] = "--url";
	argv[n++] = url;
	argv[n++] = "--timeout-ms";
	argv[n++] = "10000";
	for (size_t i = 0; extra[i] != NULL; i++) {
		assert_true(n < 19);
		argv[n++] = extra[i];
	}
	argv[n] = NULL;
	return lmt_run(argv, NULL, errpath, RUN_MS);
}

/*
 * Replicas on two models (a roll-out under way): the engine's answers come
 * from both. The report names every model version it saw, says that the
 * evaluation mixed models and names no one model; stderr warns. It used
 * to name the model of the last answer as if every answer came from it.
 */
static void
test_service_mixed_models(void **state)
{
	lmt_replica a, b;
	char url[1300];
	json_error_t je;

	(void) state;
	char *json = lmt_read_file(lmt_src("data/model/default.json"), NULL);
	assert_non_null(json);
	char *v = strstr(json, MODEL_VERSION);
	assert_non_null(v);
	memcpy(v, OTHER_VERSION, strlen(MODEL_VERSION));
	char *other = lmt_strdup(lmt_write_file(dir, "other.json", json, strlen(json)));
	free(json);
	replica_start(&a, "a", lmt_src("data/model/default.json"));
	replica_start(&b, "b", other);
	const char *set = sample_set("mixed");

	/* Both: no one model named. */
	snprintf(url, sizeof(url), "%s,%s", a.url, b.url);
	lmt_run_result r = run_service(set, url, (const char *const[]){"--json", NULL});
	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err ? r.err : "");
	json_t *o = json_loads(r.out, 0, &je);
	if (o == NULL)
		fail_msg("eval printed no JSON (%s): %.300s", je.text, r.out);
	assert_true(json_is_null(json_object_get(o, "model_version")));
	assert_true(json_boolean_value(json_object_get(o, "mixed_models")));
	json_t *models = json_object_get(o, "model_versions");
	assert_int_equal(json_array_size(models), 2);
	bool m1 = false, m2 = false;
	for (size_t i = 0; i < json_array_size(models); i++) {
		const char *m = json_string_value(json_array_get(models, i));
		assert_non_null(m);
		m1 = m1 || strcmp(m, MODEL_VERSION) == 0;
		m2 = m2 || strcmp(m, OTHER_VERSION) == 0;
	}
	assert_true(m1 && m2);
	assert_non_null(strstr(r.err, "mixes models"));
	json_decref(o);
	lmt_run_result_free(&r);

	/* The table says it too. */
	r = run_service(set, url, (const char *const[]){NULL});
	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err ? r.err : "");
	assert_non_null(strstr(r.out, "2 model versions (MIXED)"));
	assert_null(strstr(r.out, "model " MODEL_VERSION ","));
	assert_null(strstr(r.out, "model " OTHER_VERSION ","));
	lmt_run_result_free(&r);

	/* One model: named, not mixed. */
	r = run_service(set, a.url, (const char *const[]){"--json", NULL});
	if (r.status != 0)
		fail_msg("eval exited %d: %s", r.status, r.err ? r.err : "");
	o = json_loads(r.out, 0, &je);
	if (o == NULL)
		fail_msg("eval printed no JSON (%s): %.300s", je.text, r.out);
	assert_string_equal(
	    json_string_value(json_object_get(o, "model_version")), MODEL_VERSION);
	assert_false(json_boolean_value(json_object_get(o, "mixed_models")));
	assert_int_equal(json_array_size(json_object_get(o, "model_versions")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "index_seq")), INDEX_SEQ);
	json_decref(o);
	lmt_run_result_free(&r);

	free(other);
	lmt_replica_stop(&b);
	lmt_replica_stop(&a);
}

/* A report that cannot be written fails with exit 1, saying so: with --json
 * the command exited 1 without a word. */
static void
test_service_unwritten(void **state)
{
	lmt_replica a;
	char err[4200];

	(void) state;
	replica_start(&a, "unwritten", lmt_src("data/model/default.json"));
	const char *set = sample_set("unwritten");
	snprintf(err, sizeof(err), "%s/eval.err", dir);
	for (int json = 0; json < 2; json++)
		lmt_expect_unwritten((const char *const[]){lmt_bin("lunamatch"), "eval",
		                         "--set", set, "--url", a.url, "--timeout-ms",
		                         "10000", json ? "--json" : NULL, NULL},
		    NULL, err, RUN_MS);
	lmt_replica_stop(&a);
}

/*
 * Ids of a judgments file are quoted in error messages as printable text,
 * cut when long: they reached stderr as they were, terminal escapes and
 * all, at any length.
 */
static void
test_judgment_ids_printable(void **state)
{
	char set[4200], url[64], errpath[4200];
	const char posting[] = "{\"id\":\"job-1\",\"version\":1,\"title\":\"T\"}\n";
	const char profile[] = "{\"id\":\"cand-1\",\"version\":1}\n";
	char *judgments = malloc(6000);
	char pad[4000];
	(void) state;

	assert_non_null(judgments);
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(judgments, 6000,
	    "{\"candidate\":\"\\u001b[31m%s\",\"job\":\"job-1\",\"grade\":2}\n", pad);
	snprintf(set, sizeof(set), "%s/escape-set", dir);
	snprintf(errpath, sizeof(errpath), "%s/eval.err", dir);
	assert_int_equal(mkdir(set, 0700), 0);
	lmt_write_file(set, "postings.jsonl", posting, strlen(posting));
	lmt_write_file(set, "profiles.jsonl", profile, strlen(profile));
	lmt_write_file(set, "judgments.jsonl", judgments, strlen(judgments));
	unused_url(url, sizeof(url));

	lmt_run_result r =
	    lmt_run((const char *const[]){lmt_bin("lunamatch"), "eval", "--set", set,
	                "--url", url, "--timeout-ms", "300", NULL},
	        NULL, errpath, RUN_MS);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "is not in the set"));
	assert_non_null(strstr(r.err, "?[31mxxx"));
	for (const char *c = r.err; *c != '\0'; c++)
		if ((unsigned char) *c < 0x20 && *c != '\n')
			fail_msg("a control character on stderr: %.200s", r.err);
	if (strlen(r.err) > 1000)
		fail_msg("%zu bytes on stderr: %.200s", strlen(r.err), r.err);
	lmt_run_result_free(&r);
	free(judgments);
}

/* Writes a set of one posting and one profile with judgments into
 * <dir>/<name>; returns its path (static). */
static const char *
judged_set(const char *name, const char *judgments)
{
	static char set[4200];
	const char posting[] = "{\"id\":\"job-1\",\"version\":1,\"title\":\"T\"}\n";
	const char profile[] = "{\"id\":\"cand-1\",\"version\":1}\n";

	snprintf(set, sizeof(set), "%s/%s", dir, name);
	assert_int_equal(mkdir(set, 0700), 0);
	lmt_write_file(set, "postings.jsonl", posting, strlen(posting));
	lmt_write_file(set, "profiles.jsonl", profile, strlen(profile));
	lmt_write_file(set, "judgments.jsonl", judgments, strlen(judgments));
	return set;
}

/* Runs eval of set, nothing answering at --url, and expects it to fail
 * with status and stderr holding want. */
static void
expect_eval_error(const char *set, int status, const char *want)
{
	char url[64], errpath[4200];

	unused_url(url, sizeof(url));
	snprintf(errpath, sizeof(errpath), "%s/eval.err", dir);
	lmt_run_result r =
	    lmt_run((const char *const[]){lmt_bin("lunamatch"), "eval", "--set", set,
	                "--url", url, "--timeout-ms", "300", NULL},
	        NULL, errpath, RUN_MS);
	if (r.status != status || strstr(r.err, want) == NULL)
		fail_msg("eval exited %d, want %d with \"%s\": %s", r.status, status,
		    want, r.err);
	lmt_run_result_free(&r);
}

/*
 * A judgments file with nothing to measure (empty, blank lines only, or
 * only grade 0 judgments, which make no query) is an error, as a records
 * file without records is: it used to be measured as a table of zeros,
 * exit 0.
 */
static void
test_judgments_none(void **state)
{
	(void) state;
	expect_eval_error(judged_set("judge-empty", ""), 1,
	    "judgments.jsonl holds no judgment with a grade 1..3 or must_not_appear");
	expect_eval_error(judged_set("judge-blank", "\n  \n\t\r\n"), 1,
	    "judgments.jsonl holds no judgment with a grade 1..3 or must_not_appear");
	expect_eval_error(
	    judged_set("judge-zero",
	        "{\"candidate\":\"cand-1\",\"job\":\"job-1\",\"grade\":0}\n"),
	    1, "judgments.jsonl holds no judgment with a grade 1..3 or must_not_appear");
	/* A must-not-appear judgment alone is measured (violations): past the
	 * set, nobody answers. */
	expect_eval_error(
	    judged_set("judge-mustnot",
	        "{\"candidate\":\"cand-1\",\"job\":\"job-1\",\"must_not_appear\":"
	        "true}\n"),
	    3, "UNAVAILABLE");
}

/*
 * A judgment line with a key the format does not have (a typo of
 * must_not_appear) is an error naming the line and the key, printable: it
 * used to be ignored, the pair graded without it.
 */
static void
test_judgment_unknown_key(void **state)
{
	(void) state;
	expect_eval_error(judged_set("key-typo",
	                      "{\"candidate\":\"cand-1\",\"job\":\"job-1\",\"grade\":0,"
	                      "\"must_not_apear\":true}\n"),
	    1, "judgments.jsonl:1: unknown key \"must_not_apear\"");
	expect_eval_error(judged_set("key-case",
	                      "\n{\"candidate\":\"cand-1\",\"job\":\"job-1\",\"grade\":2,"
	                      "\"Reason\":\"fits\"}\n"),
	    1, "judgments.jsonl:2: unknown key \"Reason\"");
	expect_eval_error(judged_set("key-escape",
	                      "{\"candidate\":\"cand-1\",\"job\":\"job-1\",\"grade\":2,"
	                      "\"\\u001b[31m\":1}\n"),
	    1, "judgments.jsonl:1: unknown key \"?[31m\"");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_screens_postings),
	    cmocka_unit_test(test_load_embeddings),
	    cmocka_unit_test(test_load_needs_store),
	    cmocka_unit_test(test_load_embedding_dim_env),
	    cmocka_unit_test(test_service_mixed_models),
	    cmocka_unit_test(test_service_unwritten),
	    cmocka_unit_test(test_judgment_ids_printable),
	    cmocka_unit_test(test_judgments_none),
	    cmocka_unit_test(test_judgment_unknown_key),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
