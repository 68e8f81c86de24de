/*
 * test_audit.c - `lunamatch audit` over a rankings file: the command's own
 * counting and input checks, run as the real binary on small populations
 * whose every number is known in advance. Most cases need no service; the
 * cases that audit a live service run the real MatchService handlers over
 * an index of the sample records (data/samples), each replica with its own
 * RPC server on ipc:// in the test's directory. The audit of a whole
 * lunamatch-match process is tests/integration/test_audit.c.
 */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chart.h"
#include "index.h"
#include "jsontest.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/v1/match.pb-c.h"
#include "model.h"
#include "proc.h"
#include "records.h"
#include "replica.h"
#include "rpc_server.h"
#include "service.h"

#define RUN_MS 30000
#define EPS    1e-9

LMT_TMPDIR_FIXTURES("tools-audit")

/* Runs `lunamatch audit` with args (NULL-terminated) and returns what it
 * printed and how it ended. */
static lmt_run_result
run_audit(const char *const args[])
{
	char err[4200];

	snprintf(err, sizeof(err), "%s/audit.err", dir);
	return lmt_run_cli("audit", args, NULL, NULL, err, RUN_MS);
}

/* The JSON report of a run that must succeed. */
static json_t *
audit_json(const char *const args[])
{
	lmt_run_result r = run_audit(args);
	json_error_t je;
	json_t *o;

	if (r.status != 0)
		fail_msg("audit exited %d: %s", r.status, r.err ? r.err : "");
	if ((o = json_loads(r.out, 0, &je)) == NULL)
		fail_msg("audit printed no JSON (%s): %.300s", je.text, r.out);
	lmt_run_result_free(&r);
	return o;
}

static json_t *
view(json_t *o, const char *name)
{
	return lmt_json_named(o, "views", name);
}

static char *
write_file(const char *name, const char *text)
{
	return lmt_strdup(lmt_write_file(dir, name, text, strlen(text)));
}

/*
 * NDKL@K is the mean over the postings whose first K places hold someone
 * of the population: a posting that placed nobody there (an empty answer,
 * or only candidates without demographics) has no distribution to compare
 * and does not count as a perfectly proportional ranking.
 */
static void
test_ndkl_mean_over_rankings_with_places(void **state)
{
	(void) state;
	char *demo = write_file("pair.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("ndkl.json",
	    "{\"rankings\":["
	    "{\"job\":\"j1\",\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]},"
	    "{\"job\":\"j2\",\"candidates\":[{\"id\":\"other\",\"score\":0.9}]},"
	    "{\"job\":\"j3\",\"candidates\":[]}]}");
	json_t *o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", "--json", NULL});

	/* j1: its one place to a category that is half the pool: ln 2. */
	double ndkl = json_number_value(json_object_get(view(o, "sex"), "ndkl"));
	assert_true(fabs(ndkl - log(2)) < EPS);
	assert_int_equal(json_integer_value(json_object_get(o, "postings")), 3);
	json_decref(o);
	free(demo);
	free(rk);
}

/*
 * NDKL@K of a view is undefined when no posting places anyone of the
 * population in its first K: null in the JSON output, "n/a" in the table
 * and the report. It used to read 0, "every prefix mirrors the pool".
 */
static void
test_ndkl_undefined(void **state)
{
	(void) state;
	char *demo = write_file("nd.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("nd.json",
	    "{\"rankings\":[{\"job\":\"j1\",\"candidates\":["
	    "{\"id\":\"other\",\"score\":0.9},{\"id\":\"c1\",\"score\":0.5}]}]}");
	char report[600];
	snprintf(report, sizeof(report), "%s/nd.md", dir);

	json_t *o = audit_json((const char *const[]){"--demographics", demo, "--rankings",
	    rk, "--top", "1", "--report", report, "--json", NULL});
	json_t *nd = json_object_get(view(o, "sex"), "ndkl");
	assert_non_null(nd);
	assert_true(json_is_null(nd));
	json_decref(o);
	char *md = lmt_read_file(report, NULL);
	assert_non_null(md);
	assert_non_null(strstr(md, "NDKL@1: n/a\n"));
	free(md);
	lmt_run_result r = run_audit((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", NULL});
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "sex (NDKL@1 n/a)"));
	lmt_run_result_free(&r);
	free(demo);
	free(rk);
}

/* What a failing run must end with: its status and a part of stderr. */
static void
expect_failure(const char *const args[], int status, const char *want)
{
	lmt_run_result r = run_audit(args);

	assert_int_equal(r.status, status);
	if (r.err == NULL || strstr(r.err, want) == NULL)
		fail_msg("stderr lacks \"%s\": %s", want, r.err ? r.err : "");
	lmt_run_result_free(&r);
}

/*
 * Score-based selection needs every ranked candidate's score: a rankings
 * file without them is refused, not audited as if every score were 0
 * (nobody above the median, nothing flagged). Selection by place does not
 * read scores.
 */
static void
test_above_median_needs_scores(void **state)
{
	(void) state;
	char *demo = write_file("two.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("noscore.json",
	    "{\"rankings\":[{\"job\":\"j1\",\"candidates\":"
	    "[{\"id\":\"c2\"},{\"id\":\"c1\",\"score\":0.5}]}]}");

	expect_failure((const char *const[]){"--demographics", demo, "--rankings", rk,
	                   "--above-median", NULL},
	    1, "rankings[0].candidates[0]: no \"score\"");
	json_t *o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", "--json", NULL});
	assert_int_equal(json_integer_value(json_object_get(o, "flagged_categories")), 1);
	json_decref(o);
	free(demo);
	free(rk);
}

/*
 * A posting is audited once: one listed twice (in a rankings file, a
 * --jobs file that holds two versions of it, or --job repeated) would
 * count its candidates twice. It is refused with its id.
 */
static void
test_posting_listed_twice(void **state)
{
	(void) state;
	char *demo = write_file("twice.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("twice.json",
	    "{\"rankings\":["
	    "{\"job\":\"j1\",\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]},"
	    "{\"job\":\"j2\",\"candidates\":[{\"id\":\"c2\",\"score\":0.9}]},"
	    "{\"job\":\"j1\",\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]}]}");
	char *jobs = write_file("jobs.jsonl", "{\"id\":\"j1\",\"version\":1}\n"
	                                      "{\"id\":\"j1\",\"version\":2}\n");

	expect_failure(
	    (const char *const[]){"--demographics", demo, "--rankings", rk, NULL}, 1,
	    "posting j1 is listed twice");
	/* Refused before any call: no service needed. */
	expect_failure((const char *const[]){"--demographics", demo, "--jobs", jobs,
	                   "--url", "tcp://127.0.0.1:42299", "--timeout-ms", "300", NULL},
	    1, "posting j1 is listed twice");
	expect_failure(
	    (const char *const[]){"--demographics", demo, "--job", "j1", "--job", "j1",
	        "--url", "tcp://127.0.0.1:42299", "--timeout-ms", "300", NULL},
	    2, "posting j1 is listed twice");
	free(demo);
	free(rk);
	free(jobs);
}

/* The categories of the view named name. */
static json_t *
categories(json_t *o, const char *name)
{
	return json_object_get(view(o, name), "categories");
}

/*
 * The intersection's categories are the combinations of the dimensions'
 * categories, told apart whatever their names: " & " inside a category
 * name, or names too long to join in full, do not merge two combinations
 * into one.
 */
static void
test_intersection_by_combination(void **state)
{
	(void) state;
	char *demo = write_file("amp.csv", "id,a,b\nc1,x & y,z\nc2,x,y & z\n");
	char *rk = write_file("amp.json", "{\"rankings\":[{\"job\":\"j1\",\"candidates\":"
	                                  "[{\"id\":\"c1\",\"score\":0.9}]}]}");
	json_t *o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", "--json", NULL});
	json_t *cats = categories(o, "a & b");

	assert_int_equal(json_array_size(cats), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *c = json_array_get(cats, i);
		assert_int_equal(json_integer_value(json_object_get(c, "considered")), 1);
		assert_int_equal(
		    json_integer_value(json_object_get(c, "selected")), i == 0 ? 1 : 0);
	}
	json_decref(o);

	/* Four dimensions of 63-byte categories, the last two differing in
	 * their last byte. */
	char csv[1024], v[64], w1[64], w2[64];
	memset(v, 'v', 63);
	v[63] = '\0';
	memcpy(w1, v, 64);
	memcpy(w2, v, 64);
	w1[62] = '1';
	w2[62] = '2';
	snprintf(csv, sizeof(csv), "id,a,b,c,d\nc1,%s,%s,%s,%s\nc2,%s,%s,%s,%s\n", v, v,
	    v, w1, v, v, v, w2);
	char *wide = write_file("long.csv", csv);
	o = audit_json((const char *const[]){
	    "--demographics", wide, "--rankings", rk, "--top", "1", "--json", NULL});
	cats = categories(o, "a & b & c & d");
	assert_int_equal(json_array_size(cats), 2);
	const char *n0 =
	    json_string_value(json_object_get(json_array_get(cats, 0), "name"));
	const char *n1 =
	    json_string_value(json_object_get(json_array_get(cats, 1), "name"));
	assert_int_equal(strlen(n0), 4 * 63 + 3 * 3);
	assert_string_not_equal(n0, n1);
	json_decref(o);
	free(wide);
	free(demo);
	free(rk);
}

/*
 * skew@K is undefined when no ranking places anyone of the population in
 * its first K: it reads null in the JSON output and "n/a" in the table and
 * the report, not 0 (which reads as parity). A category that never reaches
 * the first K has skew -infinity, written "-Infinity" in the JSON output so
 * that it is not mistaken for an undefined one.
 */
static void
test_skew_undefined(void **state)
{
	(void) state;
	char *demo = write_file("skew.csv", "id,sex\nc1,female\nc2,male\n");
	char *none = write_file("skew-none.json",
	    "{\"rankings\":[{\"job\":\"j1\",\"candidates\":["
	    "{\"id\":\"other\",\"score\":0.9},{\"id\":\"c1\",\"score\":0.5}]}]}");
	char report[600];
	snprintf(report, sizeof(report), "%s/skew.md", dir);

	json_t *o = audit_json((const char *const[]){"--demographics", demo, "--rankings",
	    none, "--top", "1", "--report", report, "--json", NULL});
	json_t *cats = categories(o, "sex");
	assert_int_equal(json_array_size(cats), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *sk = json_object_get(json_array_get(cats, i), "skew");
		assert_non_null(sk);
		assert_true(json_is_null(sk));
	}
	json_decref(o);
	char *md = lmt_read_file(report, NULL);
	assert_non_null(md);
	assert_non_null(
	    strstr(md, "| female | 1 | 0 | 0.0000 | n/a | n/a | n/a (none selected) |"));
	assert_null(strstr(md, "+0.000"));
	free(md);
	lmt_run_result r = run_audit((const char *const[]){
	    "--demographics", demo, "--rankings", none, "--top", "1", NULL});
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "n/a"));
	assert_null(strstr(r.out, "+0.000"));
	lmt_run_result_free(&r);

	/* With K = 2, c1 is placed and c2 is not: -infinity for male. */
	o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", none, "--top", "2", "--json", NULL});
	cats = categories(o, "sex");
	json_t *male = json_array_get(cats, 1);
	assert_string_equal(json_string_value(json_object_get(male, "name")), "male");
	assert_string_equal(
	    json_string_value(json_object_get(male, "skew")), "-Infinity");
	json_decref(o);
	free(demo);
	free(none);
}

/* The chart's pixels, read back with libpng. */
static uint32_t
chart_pixel(const png_byte *px, unsigned w, unsigned row, unsigned x)
{
	unsigned y = LM_CHART_MARGIN + row * LM_CHART_ROW + LM_CHART_ROW / 2;
	const png_byte *p = px + ((size_t) y * w + x) * 3;
	return (uint32_t) p[0] << 16 | (uint32_t) p[1] << 8 | p[2];
}

/* Reads the chart at path into *px (malloc'd, 8-bit RGB, *w wide). */
static void
read_chart(const char *path, png_byte **px, unsigned *w)
{
	png_image img;

	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	assert_true(png_image_begin_read_from_file(&img, path));
	img.format = PNG_FORMAT_RGB;
	*w = img.width;
	*px = malloc(PNG_IMAGE_SIZE(img));
	assert_non_null(*px);
	assert_true(png_image_finish_read(&img, NULL, *px, 0, NULL));
}

/*
 * The impact ratio is undefined when nobody of the categories compared is
 * selected: "n/a" in the table and the report, null in the JSON output, a
 * grey bar at full length marked N/A in the chart, and no verdict either
 * way. It read 0.000 with the verdict "ok" (and a bar of length 0, green),
 * though a ratio under 0.8 is flagged.
 */
static void
test_impact_undefined(void **state)
{
	(void) state;
	char *demo = write_file("imp.csv", "id,sex\na,f\nb,m\n");
	char *rk =
	    write_file("imp.json", "{\"rankings\":[{\"job\":\"j1\",\"candidates\":["
	                           "{\"id\":\"x1\"},{\"id\":\"a\"},{\"id\":\"b\"}]}]}");
	char report[600], chart[600];
	snprintf(report, sizeof(report), "%s/imp.md", dir);
	snprintf(chart, sizeof(chart), "%s/imp.png", dir);

	json_t *o = audit_json((const char *const[]){"--demographics", demo, "--rankings",
	    rk, "--top", "1", "--report", report, "--chart", chart, "--json", NULL});
	json_t *cats = categories(o, "sex");
	assert_int_equal(json_array_size(cats), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *c = json_array_get(cats, i);
		json_t *imp = json_object_get(c, "impact");
		assert_non_null(imp);
		assert_true(json_is_null(imp));
		assert_true(json_is_false(json_object_get(c, "flagged")));
	}
	assert_true(json_is_false(json_object_get(o, "flagged")));
	json_decref(o);

	char *md = lmt_read_file(report, NULL);
	assert_non_null(md);
	assert_non_null(
	    strstr(md, "| f | 1 | 0 | 0.0000 | n/a | n/a | n/a (none selected) |"));
	assert_non_null(
	    strstr(md, "| m | 1 | 0 | 0.0000 | n/a | n/a | n/a (none selected) |"));
	assert_null(strstr(md, "0.000 |"));
	free(md);

	/* Rows 1 and 2 of the chart (row 0 is the title): grey at full
	 * length, not a green bar of length 0. */
	png_byte *px;
	unsigned w;
	read_chart(chart, &px, &w);
	for (unsigned row = 1; row <= 2; row++) {
		assert_int_equal(
		    chart_pixel(px, w, row, LM_CHART_BAR_X + 10), LM_CHART_RGB_EXCLUDED);
		assert_int_equal(
		    chart_pixel(px, w, row, LM_CHART_BAR_X + LM_CHART_BAR_SPAN - 2),
		    LM_CHART_RGB_EXCLUDED);
	}
	free(px);

	lmt_run_result r = run_audit((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--top", "1", NULL});
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "n/a      n/a      n/a (none selected)"));
	assert_null(strstr(r.out, "0.000 "));
	assert_null(strstr(r.out, " ok"));
	lmt_run_result_free(&r);
	free(demo);
	free(rk);
}

/* ---- against the match service ------------------------------------------------ */

#define SAMPLES_NOW   LMT_REPLICA_NOW
#define MODEL_VERSION "default-2026.1"
#define INDEX_SEQ     LMT_REPLICA_SEQ
#define REPLICA_JOBS  8 /* postings audited against the replicas */

/* Starts a replica of the samples scoring with the model of model_path,
 * listening on ipc://<dir>/<name>.ipc. */
static void
replica_start(lmt_replica *r, const char *name, const char *model_path)
{
	lmt_replica_start(r, dir, name, model_path, true);
}

/* lmt_jsonl_fn: appends "<id>,<f|m>\n" for each sample profile to the
 * string buffer arg (at least 64 KiB). */
static void
add_person(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	char *csv = arg;
	size_t at = strlen(csv);
	(void) line, (void) len;

	snprintf(csv + at, 65536 - at, "%s,%s\n", lmt_record_id(m), no % 2 ? "f" : "m");
	protobuf_c_message_free_unpacked(m, NULL);
}

/* lmt_jsonl_fn: keeps the ids of the first REPLICA_JOBS sample postings as
 * "--job ID" arguments in arg (a char *[2 * REPLICA_JOBS], strdup'd). */
static void
add_job(void *arg, ProtobufCMessage *m, size_t no, const char *line, size_t len)
{
	char **args = arg;
	(void) line, (void) len;

	if (no <= REPLICA_JOBS) {
		args[2 * (no - 1)] = lmt_strdup("--job");
		args[2 * (no - 1) + 1] = lmt_strdup(lmt_record_id(m));
	}
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Runs audit against url over the sample postings with the extra
 * arguments (NULL-terminated, at most 8). */
static lmt_run_result
audit_service(const char *url, const char *const extra[])
{
	static char demo[600];
	char *jobs[2 * REPLICA_JOBS] = {NULL};
	const char *args[32];
	size_t n = 0;

	if (demo[0] == '\0') {
		char *csv = calloc(1, 65536);
		assert_non_null(csv);
		strcpy(csv, "id,sex\n");
		lmt_jsonl_foreach(LMT_SAMPLE_PROFILES,
		    lmt_sample_descriptor(LMT_SAMPLE_PROFILES), add_person, csv);
		snprintf(demo, sizeof(demo), "%s",
		    lmt_write_file(dir, "samples.csv", csv, strlen(csv)));
		free(csv);
	}
	lmt_jsonl_foreach(LMT_SAMPLE_POSTINGS, lmt_sample_descriptor(LMT_SAMPLE_POSTINGS),
	    add_job, jobs);
	args[n++] = "--demographics";
	args[n++] = demo;
	for (size_t i = 0; i < 2 * REPLICA_JOBS; i++)
		args[n++] = jobs[i];
	args[n++] = "--url";
	args[n++] = url;
	args[n++] = "--timeout-ms";
	args[n++] = "10000";
	for (size_t i = 0; extra[i] != NULL; i++) {
		assert_true(n < 31);
		args[n++] = extra[i];
	}
	args[n] = NULL;
	lmt_run_result r = run_audit(args);
	for (size_t i = 0; i < 2 * REPLICA_JOBS; i++)
		free(jobs[i]);
	return r;
}

static json_t *
audit_service_json(const char *url, const char *const extra[])
{
	lmt_run_result r = audit_service(url, extra);
	json_error_t je;
	json_t *o;

	if (r.status != 0)
		fail_msg("audit exited %d: %s", r.status, r.err ? r.err : "");
	if ((o = json_loads(r.out, 0, &je)) == NULL)
		fail_msg("audit printed no JSON (%s): %.300s", je.text, r.out);
	lmt_run_result_free(&r);
	return o;
}

static json_int_t
int_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("\"%s\" is not an integer", key);
	return json_integer_value(v);
}

static const char *
str_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	return json_string_value(v);
}

/*
 * An audit of a live service says what it audited: the model version, the
 * index_seq and the as_of of the answers, in the JSON output, the table,
 * the report and the saved rankings (so that an audit read back from them
 * says the same). --as-of asks for the rankings at a given time, so that
 * an audit can be repeated at the time point of an earlier one.
 */
static void
test_service_source_recorded(void **state)
{
	lmt_replica r;
	char saved[600], report[600];

	(void) state;
	replica_start(&r, "one", lmt_src("data/model/default.json"));
	snprintf(saved, sizeof(saved), "%s/saved.json", dir);
	snprintf(report, sizeof(report), "%s/source.md", dir);

	json_t *o =
	    audit_service_json(r.url, (const char *const[]){"--save-rankings", saved,
	                                  "--report", report, "--json", NULL});
	assert_string_equal(str_of(o, "model_version"), MODEL_VERSION);
	assert_false(json_boolean_value(json_object_get(o, "mixed_models")));
	assert_int_equal(json_array_size(json_object_get(o, "model_versions")), 1);
	assert_int_equal(int_of(o, "index_seq_min"), INDEX_SEQ);
	assert_int_equal(int_of(o, "index_seq_max"), INDEX_SEQ);
	assert_int_equal(int_of(o, "as_of"), SAMPLES_NOW);
	assert_int_equal(int_of(o, "as_of_min"), SAMPLES_NOW);
	assert_int_equal(int_of(o, "as_of_max"), SAMPLES_NOW);
	char *md = lmt_read_file(report, NULL);
	assert_non_null(md);
	assert_non_null(strstr(md, "- Model version: " MODEL_VERSION "\n"));
	assert_non_null(strstr(md, "- Index sequence: 42\n"));
	assert_non_null(strstr(md, "- As of: 1795003600 ("));
	free(md);
	json_decref(o);

	/* Read back from the saved rankings: the same. */
	char *demo = lmt_strdup(lmt_write_file(dir, "samples2.csv", "id,sex\nx,f\n", 11));
	o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", saved, "--json", NULL});
	assert_string_equal(str_of(o, "model_version"), MODEL_VERSION);
	assert_int_equal(int_of(o, "index_seq_max"), INDEX_SEQ);
	assert_int_equal(int_of(o, "as_of"), SAMPLES_NOW);
	json_decref(o);

	/* At another time point: the answers are for it. */
	o = audit_service_json(
	    r.url, (const char *const[]){"--as-of", "1795000000", "--json", NULL});
	assert_int_equal(int_of(o, "as_of"), 1795000000);
	json_decref(o);

	/* The table says it too. */
	lmt_run_result t = audit_service(r.url, (const char *const[]){NULL});
	assert_int_equal(t.status, 0);
	assert_non_null(strstr(t.out, "model " MODEL_VERSION ", index seq 42, as of "
	                              "1795003600 ("));
	lmt_run_result_free(&t);

	/* --as-of asks the service; rankings from a file are computed
	 * already. */
	expect_failure((const char *const[]){"--demographics", demo, "--rankings", saved,
	                   "--as-of", "1795000000", NULL},
	    2, "--as-of");
	expect_failure((const char *const[]){"--demographics", demo, "--job", "j1",
	                   "--url", r.url, "--as-of", "yesterday", NULL},
	    2, "--as-of: \"yesterday\"");
	free(demo);
	lmt_replica_stop(&r);
}

/*
 * Replicas on two models (a roll-out under way): the audit's rankings come
 * from both. The report says the audit mixed models, lists them and names
 * no one model; stderr warns.
 */
static void
test_service_mixed_models(void **state)
{
	lmt_replica a, b;
	char url[1300];

	(void) state;
	char *json = lmt_read_file(lmt_src("data/model/default.json"), NULL);
	assert_non_null(json);
	char *v = strstr(json, MODEL_VERSION);
	assert_non_null(v);
	memcpy(v, "default-2099.9", strlen(MODEL_VERSION));
	char *other = lmt_strdup(lmt_write_file(dir, "other.json", json, strlen(json)));
	free(json);
	replica_start(&a, "a", lmt_src("data/model/default.json"));
	replica_start(&b, "b", other);
	snprintf(url, sizeof(url), "%s,%s", a.url, b.url);

	lmt_run_result r = audit_service(url, (const char *const[]){"--json", NULL});
	if (r.status != 0)
		fail_msg("audit exited %d: %s", r.status, r.err ? r.err : "");
	json_t *o = json_loads(r.out, 0, NULL);
	assert_non_null(o);
	assert_true(json_boolean_value(json_object_get(o, "mixed_models")));
	assert_true(json_is_null(json_object_get(o, "model_version")));
	assert_int_equal(json_array_size(json_object_get(o, "model_versions")), 2);
	assert_non_null(strstr(r.err, "mixes models"));
	json_decref(o);
	lmt_run_result_free(&r);

	/* A rankings file that holds the same mix says so too. */
	char *demo =
	    lmt_strdup(lmt_write_file(dir, "mix.csv", "id,sex\nc1,f\nc2,m\n", 17));
	char *rk = write_file("mix.json",
	    "{\"rankings\":["
	    "{\"job\":\"j1\",\"model_version\":\"m1\",\"index_seq\":5,\"as_of\":100,"
	    "\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]},"
	    "{\"job\":\"j2\",\"model_version\":\"m2\",\"index_seq\":7,\"as_of\":90,"
	    "\"candidates\":[{\"id\":\"c2\",\"score\":0.9}]}]}");
	o = audit_json((const char *const[]){
	    "--demographics", demo, "--rankings", rk, "--json", NULL});
	assert_true(json_boolean_value(json_object_get(o, "mixed_models")));
	assert_int_equal(int_of(o, "index_seq_min"), 5);
	assert_int_equal(int_of(o, "index_seq_max"), 7);
	assert_int_equal(int_of(o, "as_of_min"), 90);
	assert_int_equal(int_of(o, "as_of_max"), 100);
	assert_true(json_is_null(json_object_get(o, "as_of")));
	json_decref(o);
	free(demo);
	free(rk);
	free(other);
	lmt_replica_stop(&b);
	lmt_replica_stop(&a);
}

/*
 * A report that cannot be written fails with exit 1, saying so: with --json
 * the command exited 1 without a word.
 */
static void
test_unwritten(void **state)
{
	(void) state;
	char *demo = write_file("unwritten.csv", "id,sex\nc1,female\nc2,male\n");
	char *rk = write_file("unwritten.json",
	    "{\"rankings\":["
	    "{\"job\":\"j1\",\"candidates\":[{\"id\":\"c1\",\"score\":0.9}]}]}");
	char err[4200];

	snprintf(err, sizeof(err), "%s/audit.err", dir);
	for (int json = 0; json < 2; json++)
		lmt_expect_unwritten((const char *const[]){lmt_bin("lunamatch"), "audit",
		                         "--demographics", demo, "--rankings", rk,
		                         "--top", "1", json ? "--json" : NULL, NULL},
		    NULL, err, RUN_MS);
	free(demo);
	free(rk);
}

/* True when s holds a control character: C0 (an escape sequence's ESC) or
 * C1 (U+009B, CSI alone). */
static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char) *s < 0x20 && *s != '\n') ||
		    ((unsigned char) s[0] == 0xc2 && (unsigned char) s[1] >= 0x80 &&
		        (unsigned char) s[1] < 0xa0))
			return true;
	return false;
}

/* Runs the audit on demographics whose first id is id (a file named
 * name): refused, quoting the id as printable text (want), cut when long. */
static void
audit_bad_id(const char *name, const char *id, const char *want)
{
	size_t len = strlen(id) + 64;
	char *text = malloc(len), *demo, *rk;
	lmt_run_result r;

	assert_non_null(text);
	snprintf(text, len, "id,sex\n%s,female\nc2,male\n", id);
	demo = write_file(name, text);
	rk = write_file(
	    "escape-ok.json", "{\"rankings\":[{\"job\":\"j1\",\"candidates\":[]}]}");
	r = run_audit(
	    (const char *const[]){"--demographics", demo, "--rankings", rk, NULL});
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "is not a candidate id"));
	assert_non_null(strstr(r.err, want));
	if (has_control(r.err) || strlen(r.err) > 1000)
		fail_msg("stderr not printable or not cut: %.200s", r.err);
	lmt_run_result_free(&r);
	free(demo);
	free(rk);
	free(text);
}

/*
 * Ids from the input files are quoted in error messages as printable text,
 * cut when long: a candidate id that is not one, a posting listed twice in
 * a rankings file. They reached stderr as they were, terminal escapes and
 * all, at any length.
 */
static void
test_input_ids_printable(void **state)
{
	(void) state;
	char *id = malloc(5000), *text = malloc(12000);
	char *demo, *rk;
	lmt_run_result r;

	assert_non_null(id);
	assert_non_null(text);
	memset(id, 'x', 4999);
	id[4999] = '\0';
	/* The C1 CSI (U+009B, valid UTF-8) is as much a control as ESC. */
	memcpy(id,
	    "\xc2\x9b"
	    "31m",
	    5);
	audit_bad_id("escape-c1.csv", id, "?31mxxx");
	memcpy(id, "\x1b[31m", 5);
	audit_bad_id("escape.csv", id, "?[31mxxx");

	demo = write_file("escape-ok.csv", "id,sex\nc1,female\nc2,male\n");
	snprintf(text, 12000,
	    "{\"rankings\":[{\"job\":\"\\u001b%s\",\"candidates\":[]},"
	    "{\"job\":\"\\u001b%s\",\"candidates\":[]}]}",
	    id + 1, id + 1);
	rk = write_file("escape.json", text);
	r = run_audit(
	    (const char *const[]){"--demographics", demo, "--rankings", rk, NULL});
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "is listed twice"));
	if (has_control(r.err) || strlen(r.err) > 1000)
		fail_msg("stderr not printable or not cut: %.200s", r.err);
	lmt_run_result_free(&r);
	free(demo);
	free(rk);
	free(id);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ndkl_mean_over_rankings_with_places),
	    cmocka_unit_test(test_ndkl_undefined),
	    cmocka_unit_test(test_above_median_needs_scores),
	    cmocka_unit_test(test_posting_listed_twice),
	    cmocka_unit_test(test_intersection_by_combination),
	    cmocka_unit_test(test_skew_undefined),
	    cmocka_unit_test(test_impact_undefined),
	    cmocka_unit_test(test_service_source_recorded),
	    cmocka_unit_test(test_service_mixed_models),
	    cmocka_unit_test(test_unwritten),
	    cmocka_unit_test(test_input_ids_printable),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
