/*
 * test_audit.c - `lunamatch audit` end to end.
 *
 * From a rankings file: a synthetic population of 500 candidates whose
 * categories are spread evenly over a skill feature. A neutral scorer (the
 * skill) passes, with top-K and with score-above-median selection; a scorer
 * that also punishes a feature most women in the population have (a career
 * gap) is flagged for women and for every intersection with them, and not
 * for the categories the feature is independent of. A category of 1 % and
 * the not-reported category are listed but excluded. The Markdown report
 * and the PNG chart are written. --top K counts the engine's places,
 * those of candidates without demographics too. Past the limits on
 * categories and chart rows the audit runs and says what it left out.
 *
 * From a real lunamatch-match: twin candidates (identical profiles, one in
 * each category) pass; a population in which one category lacks a skill
 * the postings require more often is flagged. Rankings saved from the
 * service give the same audit when read back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <png.h>

#include "chart.h"
#include "jsontest.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "matchsvc.h"
#include "proc.h"
#include "records.h"
#include "svctest.h"

#define PEOPLE   500
#define POSTINGS 20
#define TEXT_MAX (1u << 20)

static lmt_matchsvc S;

static int
setup(void **state)
{
	(void) state;
	memset(&S, 0, sizeof(S));
	lmt_matchsvc_start(&S, "audit");
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_matchsvc_stop(&S);
	return 0;
}

/* ---- the synthetic population --------------------------------------------------- */

/* Blocks of ten consecutive candidates share sex and race and hold the skill
 * levels 0..9 once each, so that every category of the first 480 has the
 * same distribution of skill. 480..484 are race "D" (1 %), 485..499 did
 * not report a race. */
static int
skill(int i)
{
	return i % 10;
}

static const char *
sex(int i)
{
	return (i / 10) % 2 ? "male" : "female";
}

static const char *
race(int i)
{
	static const char *const r[] = {"A", "B", "C"};
	if (i >= 485)
		return "";
	if (i >= 480)
		return "D";
	return r[(i / 20) % 3];
}

/* The feature the biased scorer punishes: a career gap, which 70 % of the
 * women in the population have and no man has. */
static int
gap(int i)
{
	return strcmp(sex(i), "female") == 0 && skill(i) < 7;
}

static const char *
write_demographics(void)
{
	char *csv = malloc(TEXT_MAX);
	size_t n = 0;

	assert_non_null(csv);
	n +=
	    (size_t) snprintf(csv + n, TEXT_MAX - n, "candidate_id,sex,race_ethnicity\n");
	for (int i = 0; i < PEOPLE; i++)
		n += (size_t) snprintf(
		    csv + n, TEXT_MAX - n, "cand-%d,%s,%s\n", i, sex(i), race(i));
	const char *path = lmt_write_file(S.dir, "demographics.csv", csv, n);
	free(csv);
	return path;
}

struct ranked {
	int id;
	double score;
};

static int
cmp_ranked(const void *x, const void *y)
{
	const struct ranked *a = x, *b = y;
	if (a->score != b->score)
		return a->score < b->score ? 1 : -1;
	return a->id - b->id;
}

/* Writes the rankings of a scorer for POSTINGS postings: every candidate,
 * best first. Posting p shifts the skill levels by p, so each posting
 * prefers others. */
static const char *
write_rankings(const char *name, bool biased)
{
	json_t *list = json_array();
	struct ranked r[PEOPLE];

	for (int p = 0; p < POSTINGS; p++) {
		json_t *c = json_array();
		char job[32];
		for (int i = 0; i < PEOPLE; i++) {
			r[i].id = i;
			r[i].score = (skill(i) + p) % 10 - (biased ? 5.0 * gap(i) : 0.0);
		}
		qsort(r, PEOPLE, sizeof(*r), cmp_ranked);
		for (int i = 0; i < PEOPLE; i++) {
			char id[32];
			snprintf(id, sizeof(id), "cand-%d", r[i].id);
			json_array_append_new(
			    c, json_pack("{s:s, s:f}", "id", id, "score", r[i].score));
		}
		snprintf(job, sizeof(job), "job-%d", p);
		json_array_append_new(
		    list, json_pack("{s:s, s:o}", "job", job, "candidates", c));
	}
	json_t *root = json_pack("{s:o}", "rankings", list);
	char *text = json_dumps(root, JSON_COMPACT);
	const char *path = lmt_write_file(S.dir, name, text, strlen(text));
	free(text);
	json_decref(root);
	return path;
}

static json_t *
audit_json(const char *const args[])
{
	lmt_run_result r = lmt_matchsvc_cli(&S, args);
	json_error_t je;

	if (r.status != 0)
		fail_msg("audit exited %d: %s", r.status, r.err);
	json_t *o = json_loads(r.out, 0, &je);
	if (o == NULL)
		fail_msg("audit printed no JSON (%s): %.300s", je.text, r.out);
	lmt_run_result_free(&r);
	return o;
}

static json_t *
view(json_t *o, const char *name)
{
	return lmt_json_named(o, "views", name);
}

static json_t *
category(json_t *v, const char *name)
{
	return lmt_json_named(v, "categories", name);
}

static bool
flag(json_t *c, const char *key)
{
	return json_boolean_value(json_object_get(c, key));
}

static double
num(json_t *c, const char *key)
{
	return json_number_value(json_object_get(c, key));
}

/* The excluded categories of the race view, whatever the scorer. */
static void
check_exclusions(json_t *o)
{
	json_t *race_v = view(o, "race_ethnicity");
	json_t *d = category(race_v, "D"), *u = category(race_v, "unknown");

	assert_true(fabs(num(d, "share") - 0.01) < 1e-9);
	assert_true(flag(d, "excluded"));
	assert_false(flag(d, "flagged"));
	assert_true(flag(u, "unknown"));
	assert_true(flag(u, "excluded"));
	assert_int_equal(json_integer_value(json_object_get(o, "candidates")), PEOPLE);
	assert_int_equal(json_integer_value(json_object_get(o, "postings")), POSTINGS);
}

static void
test_neutral_scorer_passes(void **state)
{
	(void) state;
	const char *demo = write_demographics();
	char demo_path[600], rk[600];
	snprintf(demo_path, sizeof(demo_path), "%s", demo);
	snprintf(rk, sizeof(rk), "%s", write_rankings("neutral.json", false));

	/* Top 100 of 500: whole skill levels, the same share of every block. */
	const char *top[] = {"audit", "--demographics", demo_path, "--rankings", rk,
	    "--top", "100", "--json", NULL};
	json_t *o = audit_json(top);
	assert_false(flag(o, "flagged"));
	assert_int_equal(json_integer_value(json_object_get(o, "flagged_categories")), 0);
	json_t *f = category(view(o, "sex"), "female");
	assert_true(fabs(num(f, "impact") - 1.0) < 1e-9);
	/* 20 postings x 250 women considered; each posting selects 2 of every
	 * block of 10 among the first 480: 48 women. */
	assert_int_equal(json_integer_value(json_object_get(f, "considered")), 5000);
	assert_true(
	    fabs(num(category(view(o, "sex & race_ethnicity"), "male & B"), "impact") -
	         1.0) < 1e-9);
	check_exclusions(o);
	json_decref(o);

	const char *median[] = {"audit", "--demographics", demo_path, "--rankings", rk,
	    "--above-median", "--json", NULL};
	o = audit_json(median);
	assert_false(flag(o, "flagged"));
	assert_string_equal(
	    json_string_value(json_object_get(o, "selection")), "score above the median");
	json_decref(o);
}

/* The colour of pixel x, y of an RGB image of width w. */
static uint32_t
pixel(const png_bytep px, unsigned w, unsigned x, unsigned y)
{
	const png_byte *p = px + ((size_t) y * w + x) * 3;
	return (uint32_t) p[0] << 16 | (uint32_t) p[1] << 8 | p[2];
}

/* The middle of row i of the chart, at x. */
static uint32_t
row_pixel(const png_bytep px, unsigned w, unsigned i, unsigned x)
{
	return pixel(px, w, x, LM_CHART_MARGIN + i * LM_CHART_ROW + LM_CHART_ROW / 2);
}

/* Reads the biased audit's chart back with libpng: one row per table title
 * and category (3 + 2 + 5 + 8), each bar coloured by its verdict and as long
 * as its impact ratio, the threshold line at 0.8, and text. */
static void
check_chart(const char *path)
{
	png_image img;
	png_bytep px;
	const unsigned x0 = LM_CHART_BAR_X, span = LM_CHART_BAR_SPAN;

	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	assert_true(png_image_begin_read_from_file(&img, path));
	img.format = PNG_FORMAT_RGB;
	assert_int_equal(img.width, LM_CHART_WIDTH);
	assert_int_equal(img.height, 2 * LM_CHART_MARGIN + 18 * LM_CHART_ROW);
	px = malloc(PNG_IMAGE_SIZE(img));
	assert_non_null(px);
	assert_true(png_image_finish_read(&img, NULL, px, 0, NULL));
	unsigned w = img.width;
	/* Row 0: the title "sex", text only. */
	bool ink = false;
	for (unsigned x = 0; x < 60; x++)
		ink |= row_pixel(px, w, 0, x) == LM_CHART_RGB_TEXT;
	assert_true(ink);
	assert_int_equal(row_pixel(px, w, 0, x0 + 10), 0xffffff);
	/* Rows 1 and 2: women flagged at 0.252, men pass at 1. */
	assert_int_equal(row_pixel(px, w, 1, x0 + 10), LM_CHART_RGB_FLAGGED);
	assert_int_equal(row_pixel(px, w, 1, x0 + (unsigned) (0.252 * span) - 2),
	    LM_CHART_RGB_FLAGGED);
	assert_int_equal(
	    row_pixel(px, w, 1, x0 + (unsigned) (0.252 * span) + 3), 0xffffff);
	assert_int_equal(row_pixel(px, w, 2, x0 + span - 2), LM_CHART_RGB_PASS);
	/* Rows 7 and 8: D and not reported, excluded. */
	assert_int_equal(row_pixel(px, w, 7, x0 + 10), LM_CHART_RGB_EXCLUDED);
	assert_int_equal(row_pixel(px, w, 8, x0 + 10), LM_CHART_RGB_EXCLUDED);
	/* The four-fifths line crosses a row without a bar there. */
	assert_int_equal(row_pixel(px, w, 1, x0 + (unsigned) (0.8 * span + 0.5)),
	    LM_CHART_RGB_THRESHOLD);
	free(px);
}

static void
test_biased_scorer_flagged(void **state)
{
	(void) state;
	char demo_path[600], rk[600], report[600], chart[600];
	snprintf(demo_path, sizeof(demo_path), "%s", write_demographics());
	snprintf(rk, sizeof(rk), "%s", write_rankings("biased.json", true));
	snprintf(report, sizeof(report), "%s/report.md", S.dir);
	snprintf(chart, sizeof(chart), "%s/chart.png", S.dir);

	const char *args[] = {"audit", "--demographics", demo_path, "--rankings", rk,
	    "--top", "100", "--report", report, "--chart", chart, "--json", NULL};
	json_t *o = audit_json(args);
	assert_true(flag(o, "flagged"));
	json_t *sx = view(o, "sex");
	json_t *f = category(sx, "female"), *m = category(sx, "male");
	assert_true(flag(f, "flagged"));
	assert_true(num(f, "impact") < 0.8);
	assert_false(flag(m, "flagged"));
	assert_true(fabs(num(m, "impact") - 1.0) < 1e-9);
	assert_true(num(f, "skew") < 0 && num(m, "skew") > 0);
	assert_true(num(sx, "ndkl") > 0);
	/* The gap is independent of race: no race is flagged... */
	json_t *rv = view(o, "race_ethnicity");
	assert_int_equal(json_integer_value(json_object_get(rv, "flagged")), 0);
	/* ...but every intersection with women is. */
	json_t *in = view(o, "sex & race_ethnicity");
	assert_true(flag(category(in, "female & A"), "flagged"));
	assert_true(flag(category(in, "female & C"), "flagged"));
	assert_false(flag(category(in, "male & B"), "flagged"));
	check_exclusions(o);
	json_decref(o);

	/* The report names the verdicts; the chart draws them. */
	char *md = lmt_read_file(report, NULL);
	assert_non_null(md);
	assert_non_null(strstr(md, "# Bias audit"));
	assert_non_null(strstr(md, "| female | 5000 |"));
	assert_non_null(strstr(md, "FLAGGED (under 4/5)"));
	assert_non_null(strstr(md, "| D | 100 |"));
	assert_non_null(strstr(md, "excluded (under 2 %)"));
	assert_non_null(strstr(md, "![Impact ratios]("));
	free(md);
	check_chart(chart);

	/* The table says the same. */
	const char *table[] = {
	    "audit", "--demographics", demo_path, "--rankings", rk, "--top", "100", NULL};
	lmt_run_result r = lmt_matchsvc_cli(&S, table);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "FLAGGED (under 4/5)"));
	assert_non_null(strstr(r.out, "categories flagged under the four-fifths rule"));
	lmt_run_result_free(&r);
}

static void
expect_failure(const char *const args[], int status, const char *want)
{
	lmt_run_result r = lmt_matchsvc_cli(&S, args);
	assert_int_equal(r.status, status);
	if (strstr(r.err, want) == NULL)
		fail_msg("stderr lacks \"%s\": %s", want, r.err);
	lmt_run_result_free(&r);
}

/* The URL of a port of 127.0.0.1 where nothing listens. */
static void
unused_url(char *url, size_t len)
{
	snprintf(url, len, "tcp://127.0.0.1:%d", lmt_free_port());
}

static void
test_bad_input(void **state)
{
	(void) state;
	char twice[600], rk[600], broken[600];
	const char dup[] = "id,sex\ncand-1,female\ncand-1,male\n";
	snprintf(twice, sizeof(twice), "%s",
	    lmt_write_file(S.dir, "dup.csv", dup, strlen(dup)));
	snprintf(rk, sizeof(rk), "%s", write_rankings("r.json", false));
	snprintf(broken, sizeof(broken), "%s",
	    lmt_write_file(S.dir, "broken.json", "{\"rankings\":", 12));

	expect_failure((const char *const[]){"audit", "--demographics", twice,
	                   "--rankings", rk, NULL},
	    1, "cand-1 is listed twice");
	const char one[] = "id,sex\ncand-1,female\n";
	char ok[600];
	snprintf(
	    ok, sizeof(ok), "%s", lmt_write_file(S.dir, "one.csv", one, strlen(one)));
	expect_failure((const char *const[]){"audit", "--demographics", ok, "--rankings",
	                   broken, NULL},
	    1, "broken.json:1:");
	expect_failure((const char *const[]){"audit", "--rankings", rk, NULL}, 2,
	    "--demographics FILE is required");
	expect_failure((const char *const[]){"audit", "--demographics", ok, "--rankings",
	                   rk, "--job", "job-1", NULL},
	    2, "give either --rankings FILE or --jobs FILE / --job ID");
	const char quoted[] = "id,sex\n\"cand-1\",female\n";
	char q[600];
	snprintf(q, sizeof(q), "%s",
	    lmt_write_file(S.dir, "quoted.csv", quoted, strlen(quoted)));
	expect_failure(
	    (const char *const[]){"audit", "--demographics", q, "--rankings", rk, NULL},
	    1, "quoted.csv:2:");
	/* The id and five dimensions: one too many (it used to overflow the
	 * views, the intersection written past them). */
	const char six[] = "id,a,b,c,d,e\ncand-1,x,y,z,w,v\n";
	char wide[600];
	snprintf(wide, sizeof(wide), "%s",
	    lmt_write_file(S.dir, "wide.csv", six, strlen(six)));
	expect_failure((const char *const[]){"audit", "--demographics", wide,
	                   "--rankings", rk, NULL},
	    1, "wide.csv:1: more than 5 columns");

	/* A service nobody answers for: unavailable, exit 3. */
	char url[64], errpath[600];
	unused_url(url, sizeof(url));
	snprintf(errpath, sizeof(errpath), "%s/unavailable.err", S.dir);
	lmt_run_result r =
	    lmt_run((const char *const[]){lmt_bin("lunamatch"), "audit", "--demographics",
	                ok, "--job", "job-1", "--url", url, "--timeout-ms", "300", NULL},
	        NULL, errpath, LMT_MATCHSVC_CLI_MS);
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "UNAVAILABLE"));
	lmt_run_result_free(&r);
}

/* Bytes of the input files of many tiny values below, and the most memory
 * audit may take for one (kilobytes of resident memory). Parsed whole
 * without a limit, such a file took about 50 times its size (3 GB; under
 * AddressSanitizer more). */
#define TINY_FILE_BYTES (60u << 20)
#if defined(__SANITIZE_ADDRESS__)
#define TINY_FILE_RSS_KB (3072u << 10)
#else
#define TINY_FILE_RSS_KB (1536u << 10)
#endif

/* Writes name: head, TINY_FILE_BYTES of "[]," and tail. */
static const char *
write_tiny_values(const char *name, const char *head, const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail), n = TINY_FILE_BYTES / 3;
	char *text = malloc(hl + n * 3 + tl), *p = text;

	assert_non_null(text);
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, i + 1 < n ? "[]," : "[] ", 3);
		p += 3;
	}
	memcpy(p, tail, tl);
	p += tl;
	const char *path = lmt_write_file(S.dir, name, text, (size_t) (p - text));
	free(text);
	return path;
}

/* A rankings file or a line of a postings file of many tiny values is
 * refused, naming the file and the limit, before its parse takes many
 * times the file's size. */
static void
test_input_memory_bounded(void **state)
{
	(void) state;
	const char one[] = "id,sex\ncand-1,female\n";
	char demo[600], path[600];
	snprintf(demo, sizeof(demo), "%s",
	    lmt_write_file(S.dir, "tiny-demo.csv", one, strlen(one)));

	const char *const cases[][3] = {
	    {"tiny-rankings.json", "{\"rankings\": [", "]}"},
	    {"tiny-jobs.jsonl", "[", "]\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s",
		    write_tiny_values(cases[i][0], cases[i][1], cases[i][2]));
		lmt_run_result r = lmt_matchsvc_cli(
		    &S, (const char *const[]){"audit", "--demographics", demo,
		            i == 0 ? "--rankings" : "--jobs", path, NULL});
		assert_int_equal(r.status, 1);
		if ((unsigned long) r.maxrss_kb > TINY_FILE_RSS_KB)
			fail_msg("audit of %s took %ld kB of memory", cases[i][0],
			    r.maxrss_kb);
		if (strstr(r.err, cases[i][0]) == NULL ||
		    strstr(r.err, "MiB of memory") == NULL)
			fail_msg("stderr lacks the file and the limit: %s", r.err);
		lmt_run_result_free(&r);
		unlink(path);
	}
}

/*
 * Names in the demographics file that are not UTF-8 (a dimension, a
 * category) come out of --json with U+FFFD for the bad bytes, as the table
 * shows them. json_pack refused them: the category, or every view, was
 * left out with exit status 0.
 */
static void
test_json_names_not_utf8(void **state)
{
	(void) state;
	const char demo[] = "id,s\xffx\ncand-0,\xff\xfe\ncand-1,female\ncand-2,male\n";
	const char rank[] = "{\"rankings\":[{\"job\":\"j1\",\"candidates\":["
	                    "{\"id\":\"cand-0\",\"score\":3},{\"id\":\"cand-1\","
	                    "\"score\":2},{\"id\":\"cand-2\",\"score\":1}]}]}";
	char dp[600], rp[600];
	snprintf(
	    dp, sizeof(dp), "%s", lmt_write_file(S.dir, "bad8.csv", demo, strlen(demo)));
	snprintf(
	    rp, sizeof(rp), "%s", lmt_write_file(S.dir, "bad8.json", rank, strlen(rank)));

	json_t *o = audit_json((const char *const[]){"audit", "--demographics", dp,
	    "--rankings", rp, "--top", "2", "--json", NULL});
	json_t *v = view(o, "s\xef\xbf\xbdx");
	assert_int_equal(json_array_size(json_object_get(v, "categories")), 3);
	(void) category(v, "\xef\xbf\xbd\xef\xbf\xbd");
	(void) category(v, "female");
	json_decref(o);
}

/*
 * --top K selects from the engine's first K places: a ranked candidate
 * missing from the demographics file still takes a place. It used to be
 * dropped first, so that the candidate ranked K + 1 was counted as
 * selected.
 */
static void
test_top_counts_skipped_places(void **state)
{
	(void) state;
	const char demo[] = "id,sex\nc1,F\nc2,M\n";
	const char rank[] = "{\"rankings\":[{\"job\":\"j\",\"candidates\":["
	                    "{\"id\":\"zz\",\"score\":3},{\"id\":\"c1\",\"score\":2},"
	                    "{\"id\":\"c2\",\"score\":1}]}]}";
	char dp[600], rp[600];
	snprintf(
	    dp, sizeof(dp), "%s", lmt_write_file(S.dir, "d4.csv", demo, strlen(demo)));
	snprintf(
	    rp, sizeof(rp), "%s", lmt_write_file(S.dir, "r2.json", rank, strlen(rank)));

	json_t *o = audit_json((const char *const[]){"audit", "--demographics", dp,
	    "--rankings", rp, "--top", "1", "--json", NULL});
	json_t *v = view(o, "sex");
	assert_int_equal(
	    json_integer_value(json_object_get(o, "skipped_without_demographics")), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(category(v, "F"), "selected")), 0);
	assert_int_equal(json_integer_value(json_object_get(category(v, "F"), "top")), 0);
	assert_int_equal(
	    json_integer_value(json_object_get(category(v, "M"), "selected")), 0);
	json_decref(o);

	o = audit_json((const char *const[]){"audit", "--demographics", dp, "--rankings",
	    rp, "--top", "2", "--json", NULL});
	v = view(o, "sex");
	assert_int_equal(
	    json_integer_value(json_object_get(category(v, "F"), "selected")), 1);
	assert_int_equal(json_integer_value(json_object_get(category(v, "F"), "top")), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(category(v, "M"), "selected")), 0);
	assert_int_equal(json_integer_value(json_object_get(category(v, "M"), "top")), 0);
	json_decref(o);
}

/*
 * Past the limits on categories: a dimension with more than 256 fails the
 * audit; an intersection with more is left out with a note and the
 * dimensions are audited (the whole audit used to fail). A chart of more
 * than LM_CHART_ROWS_MAX rows draws the first ones and says so (the rest
 * used to be left out silently).
 */
static void
test_many_categories(void **state)
{
	(void) state;
	enum { N = 300, CATS = 250 };
	char *csv = malloc(TEXT_MAX), dp[600], rp[600], chart[600], report[600];
	size_t n = 0;

	assert_non_null(csv);
	/* a, c and d: 250 categories each; b: 2. Every candidate is a
	 * category of the intersection of its own: 300. */
	n += (size_t) snprintf(csv + n, TEXT_MAX - n, "id,a,b,c,d\n");
	for (int i = 0; i < N; i++)
		n += (size_t) snprintf(csv + n, TEXT_MAX - n, "p%d,a%d,b%d,c%d,d%d\n", i,
		    i % CATS, i / CATS, i * 7 % CATS, i * 11 % CATS);
	snprintf(dp, sizeof(dp), "%s", lmt_write_file(S.dir, "many.csv", csv, n));
	const char rank[] = "{\"rankings\":[{\"job\":\"j\",\"candidates\":["
	                    "{\"id\":\"p0\",\"score\":2},{\"id\":\"p1\",\"score\":1}]}]}";
	snprintf(
	    rp, sizeof(rp), "%s", lmt_write_file(S.dir, "many.json", rank, strlen(rank)));
	snprintf(chart, sizeof(chart), "%s/many.png", S.dir);
	snprintf(report, sizeof(report), "%s/many.md", S.dir);

	/* The table: the four dimensions, no intersection (one JSON line of
	 * 756 categories is longer than the test reads). */
	lmt_run_result r = lmt_matchsvc_cli(
	    &S, (const char *const[]){"audit", "--demographics", dp, "--rankings", rp,
	            "--chart", chart, "--report", report, NULL});
	if (r.status != 0)
		fail_msg("audit exited %d: %s", r.status, r.err);
	assert_non_null(strstr(r.err, "the intersection a & b & c & d has more than "
	                              "256 categories and is left out"));
	assert_non_null(strstr(r.err, "shows the first 512 of 756 rows"));
	assert_non_null(strstr(r.out, "\nd (NDKL@10 "));
	assert_non_null(strstr(r.out, "\nd249 "));
	assert_null(strstr(r.out, "a & b"));
	lmt_run_result_free(&r);
	char *md = lmt_read_file(report, NULL);
	assert_non_null(md);
	assert_non_null(strstr(md, "has more than 256 categories and is left out"));
	free(md);
	png_image img;
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	assert_true(png_image_begin_read_from_file(&img, chart));
	assert_int_equal(
	    img.height, 2 * LM_CHART_MARGIN + LM_CHART_ROWS_MAX * LM_CHART_ROW);
	png_image_free(&img);

	/* One dimension of 257 categories. */
	n = (size_t) snprintf(csv, TEXT_MAX, "id,a\n");
	for (int i = 0; i < 257; i++)
		n += (size_t) snprintf(csv + n, TEXT_MAX - n, "p%d,a%d\n", i, i);
	snprintf(dp, sizeof(dp), "%s", lmt_write_file(S.dir, "wide-a.csv", csv, n));
	free(csv);
	expect_failure(
	    (const char *const[]){"audit", "--demographics", dp, "--rankings", rp, NULL},
	    1, "wide-a.csv:258: a: more than 256 categories");
}

/* ---- against the match service -------------------------------------------------- */

/* Prepares a record given as JSON and writes it into the service's store. */
static void
store_json(lm_store_txn *t, const lmt_records *recs, bool posting, const char *json)
{
	ProtobufCMessage *m = NULL;
	char err[512];
	lm_reject why;
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(
	    lm_json_decode(posting ? &lunamatch__v1__job_posting__descriptor
	                           : &lunamatch__v1__candidate_profile__descriptor,
	        json, strlen(json), &m, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(
	    lmt_record_prepare(&recs->ctx, m, &why, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_pb_encode(m, &buf, &len), LM_OK);
	assert_int_equal(lm_store_put(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE,
	                     lmt_record_id(m), 1, buf, len),
	    LM_OK);
	free(buf);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Candidates prefix-j: two skills of four by j, and Go unless lacks_go. */
static void
store_profile(
    lm_store_txn *t, const lmt_records *recs, const char *prefix, int j, bool lacks_go)
{
	static const char *const extra[] = {
	    "PostgreSQL", "Docker", "Kubernetes", "Kafka"};
	char json[1024];

	snprintf(json, sizeof(json),
	    "{\"id\":\"%s-%d\",\"version\":1,\"headline\":\"Backend developer\","
	    "\"skills\":[%s{\"name\":\"%s\",\"years\":%d},{\"name\":\"%s\",\"years\":2}],"
	    "\"years_experience\":%d,\"updated_at\":1795000000}",
	    prefix, j, lacks_go ? "" : "{\"name\":\"Go\",\"years\":3},", extra[j % 4],
	    1 + j % 5, extra[(j + 1) % 4], 2 + j % 7);
	store_json(t, recs, false, json);
}

static void
test_service(void **state)
{
	lmt_records recs;
	lm_store *st = NULL;
	lm_store_txn *t = NULL;
	char csv[8192], twins[600], biased[600], saved[600], jobs[600];
	size_t n = 0;

	(void) state;
	lmt_records_open(&recs, 384);
	assert_int_equal(lm_store_open(S.data, NULL, &st), LM_OK);
	assert_int_equal(lm_store_begin(st, &t), LM_OK);
	static const char *const postings[] = {
	    "{\"id\":\"job-s-1\",\"version\":1,\"title\":\"Backend "
	    "Engineer\",\"skills\":["
	    "{\"name\":\"Go\",\"weight\":2},{\"name\":\"PostgreSQL\"},{\"name\":"
	    "\"Docker\"}],"
	    "\"requirement_groups\":[{\"label\":\"Go\",\"skills\":[\"Go\"]}],"
	    "\"posted_at\":1795000000}",
	    "{\"id\":\"job-s-2\",\"version\":1,\"title\":\"Platform "
	    "Engineer\",\"skills\":["
	    "{\"name\":\"Go\"},{\"name\":\"Kubernetes\",\"weight\":2},{\"name\":"
	    "\"Kafka\"}],"
	    "\"requirement_groups\":[{\"label\":\"Go\",\"skills\":[\"Go\"]}],"
	    "\"posted_at\":1795000000}",
	    "{\"id\":\"job-s-3\",\"version\":1,\"title\":\"Go Developer\",\"skills\":["
	    "{\"name\":\"Go\",\"weight\":3},{\"name\":\"Docker\"}],"
	    "\"requirement_groups\":[{\"label\":\"Go\",\"skills\":[\"Go\"]}],"
	    "\"posted_at\":1795000000}",
	};
	for (size_t i = 0; i < 3; i++)
		store_json(t, &recs, true, postings[i]);
	/* Twins: cand-x-j and cand-y-j are the same profile. */
	for (int j = 0; j < 20; j++) {
		store_profile(t, &recs, "cand-x", j, false);
		store_profile(t, &recs, "cand-y", j, false);
	}
	/* Category q lacks Go three times in four, category p never. */
	for (int j = 0; j < 20; j++) {
		store_profile(t, &recs, "cand-p", j, false);
		store_profile(t, &recs, "cand-q", j, j % 4 != 0);
	}
	assert_int_equal(lm_store_commit(t, NULL), LM_OK);
	lm_store_close(st);
	lmt_records_close(&recs);

	n = (size_t) snprintf(csv, sizeof(csv), "candidate_id,group\n");
	for (int j = 0; j < 20; j++)
		n += (size_t) snprintf(
		    csv + n, sizeof(csv) - n, "cand-x-%d,x\ncand-y-%d,y\n", j, j);
	snprintf(twins, sizeof(twins), "%s", lmt_write_file(S.dir, "twins.csv", csv, n));
	n = (size_t) snprintf(csv, sizeof(csv), "candidate_id,group\n");
	for (int j = 0; j < 20; j++)
		n += (size_t) snprintf(
		    csv + n, sizeof(csv) - n, "cand-p-%d,p\ncand-q-%d,q\n", j, j);
	snprintf(biased, sizeof(biased), "%s", lmt_write_file(S.dir, "pq.csv", csv, n));
	const char jl[] =
	    "{\"id\":\"job-s-1\"}\n{\"id\":\"job-s-2\"}\n{\"id\":\"job-s-3\"}\n";
	snprintf(jobs, sizeof(jobs), "%s",
	    lmt_write_file(S.dir, "jobs.jsonl", jl, strlen(jl)));
	snprintf(saved, sizeof(saved), "%s/saved.json", S.dir);

	/* Wait until the service has indexed every stored record. */
	assert_true(
	    lmt_wait_metric(S.http, "lunamatch_index_profiles", LMT_GE, 80, 10000) >= 80);
	assert_true(
	    lmt_wait_metric(S.http, "lunamatch_index_postings", LMT_GE, 3, 10000) >= 3);
	const char *a[] = {"audit", "--demographics", twins, "--jobs", jobs,
	    "--above-median", "--save-rankings", saved, "--json", NULL};
	json_t *o = audit_json(a);
	/* Twins score alike, so they are above the median (of the 40 candidates
	 * of this file) together or not at all. The others the service ranks
	 * are skipped: 20 p and the 5 q with Go, for each of 3 postings. */
	json_t *g = view(o, "group");
	json_int_t x = json_integer_value(json_object_get(category(g, "x"), "selected"));
	assert_true(x > 0 && x < 60);
	assert_int_equal(
	    json_integer_value(json_object_get(category(g, "y"), "selected")), x);
	assert_true(fabs(num(category(g, "y"), "impact") - 1.0) < 1e-9);
	assert_false(flag(o, "flagged"));
	assert_int_equal(
	    json_integer_value(json_object_get(o, "skipped_without_demographics")),
	    3 * 25);
	char *first = json_dumps(o, JSON_COMPACT);
	json_decref(o);

	/* The saved rankings give the same audit. */
	const char *again[] = {"audit", "--demographics", twins, "--rankings", saved,
	    "--above-median", "--json", NULL};
	o = audit_json(again);
	char *second = json_dumps(o, JSON_COMPACT);
	assert_string_equal(first, second);
	free(first);
	free(second);
	json_decref(o);

	/* A skill the postings require, held less often by one category. */
	const char *pq[] = {"audit", "--demographics", biased, "--job", "job-s-1",
	    "--job", "job-s-2", "--job", "job-s-3", "--above-median", "--json", NULL};
	o = audit_json(pq);
	g = view(o, "group");
	assert_true(flag(o, "flagged"));
	assert_true(flag(category(g, "q"), "flagged"));
	assert_false(flag(category(g, "p"), "flagged"));
	/* At most 5 of 20 q have Go, all 20 p do. */
	assert_true(num(category(g, "q"), "impact") < 0.5);
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_neutral_scorer_passes),
	    cmocka_unit_test(test_biased_scorer_flagged),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_input_memory_bounded),
	    cmocka_unit_test(test_json_names_not_utf8),
	    cmocka_unit_test(test_top_counts_skipped_places),
	    cmocka_unit_test(test_many_categories),
	    cmocka_unit_test(test_service),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
