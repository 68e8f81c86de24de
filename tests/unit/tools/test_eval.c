/*
 * test_eval.c - `lunamatch eval --load` as the real binary: what it writes
 * into the record store. No service answers (the command then ends with
 * status 3 after the store is written); measuring against a real match
 * service is tests/integration/test_eval.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/records.pb-c.h"
#include "proc.h"

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

/* Runs eval --load of set into the store data with the extra arguments
 * (NULL-terminated, at most 4); nothing answers at --url. */
static lmt_run_result
run_load(const char *set, const char *data, const char *const extra[])
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
	return lmt_run(argv, NULL, errpath, RUN_MS);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_screens_postings),
	    cmocka_unit_test(test_load_embeddings),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
