/*
 * test_model.c - the scoring model file: the shipped default and every
 * validation error, with crafted files in a temporary directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "model.h"

static char *tmp;

static int
setup(void **state)
{
	(void) state;
	tmp = lmt_tmpdir("model");
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_rmtree(tmp);
	free(tmp);
	return 0;
}

/* Writes text to a file in the temporary directory; returns its path (see
 * lmt_write_file for how long it stays valid). */
static const char *
write_file(const char *name, const char *text)
{
	return lmt_write_file(tmp, name, text, strlen(text));
}

/* Loads text as a model file and expects rc with `want` in the error. */
static void
expect_error(const char *text, int rc, const char *want)
{
	char err[512] = "";
	lm_model *m = (lm_model *) 1;
	const char *path = write_file("bad.json", text);

	assert_int_equal(lm_model_load(path, &m, err, sizeof(err)), rc);
	assert_null(m);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
	assert_non_null(strstr(err, path)); /* errors name the file */
}

static void
test_default_file(void **state)
{
	char err[256] = "";
	lm_model *m = NULL, def;
	double sum = 0;

	(void) state;
	assert_int_equal(
	    lm_model_load(lmt_src("data/model/default.json"), &m, err, sizeof(err)),
	    LM_OK);
	assert_non_null(m);
	assert_string_equal(m->version, "default-2026.1");
	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		assert_true(m->weights[f] > 0);
		if (f != LM_FEAT_SKILLS)
			assert_true(m->weights[f] < m->weights[LM_FEAT_SKILLS]);
		sum += m->weights[f];
	}
	assert_float_equal(m->weights[LM_FEAT_SKILLS], 0.35, 1e-12);
	assert_float_equal(sum, 1.0, 1e-9);
	assert_float_equal(m->params.freshness_half_life_days, 30, 0);
	/* The built-in defaults are the same numbers as the shipped file. */
	lm_model_defaults(&def);
	assert_string_equal(def.version, "builtin");
	assert_memory_equal(def.weights, m->weights, sizeof(def.weights));
	assert_memory_equal(&def.params, &m->params, sizeof(def.params));
	lm_model_free(m);
	lm_model_free(NULL);
}

static void
test_feature_names(void **state)
{
	(void) state;
	for (int f = 0; f < LM_FEAT_COUNT; f++)
		assert_int_equal(
		    lm_feature_from_name(lm_feature_name((lm_feature) f)), f);
	assert_string_equal(lm_feature_name(LM_FEAT_CAREER_GOALS), "career_goals");
	assert_string_equal(lm_feature_name(LM_FEAT_COUNT), "unknown");
	assert_int_equal(lm_feature_from_name("skill"), -1);
	assert_int_equal(lm_feature_from_name(NULL), -1);
}

static void
test_minimal_file(void **state)
{
	char err[256] = "";
	lm_model *m = NULL;
	const char *path = write_file(
	    "min.json", "{\"model_version\":\"v7\",\"weights\":{\"skills\":2}}");

	(void) state;
	assert_int_equal(lm_model_load(path, &m, err, sizeof(err)), LM_OK);
	assert_string_equal(m->version, "v7");
	assert_float_equal(m->weights[LM_FEAT_SKILLS], 2, 0);
	/* Features the file leaves out weigh 0; parameters keep defaults. */
	assert_float_equal(m->weights[LM_FEAT_SALARY], 0, 0);
	assert_float_equal(m->params.seniority_step, 0.25, 0);
	lm_model_free(m);

	path =
	    write_file("p.json", "{\"model_version\":\"v8\",\"weights\":{\"salary\":1},"
	                         "\"params\":{\"freshness_half_life_days\":7,"
	                         "\"relocate_credit\":0}}");
	assert_int_equal(lm_model_load(path, &m, err, sizeof(err)), LM_OK);
	assert_float_equal(m->params.freshness_half_life_days, 7, 0);
	assert_float_equal(m->params.relocate_credit, 0, 0);
	lm_model_free(m);
}

static void
test_errors(void **state)
{
	(void) state;
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skils\":1}}", LM_ESCHEMA,
	    "unknown feature \"skils\"");
	expect_error(
	    "{\"model_version\":\"v\",\"weights\":{\"skills\":1,\"salary\":-0.5}}",
	    LM_ESCHEMA, "negative weight");
	expect_error(
	    "{\"weights\":{\"skills\":1}}", LM_ESCHEMA, "missing \"model_version\"");
	expect_error("{\"model_version\":\"\",\"weights\":{\"skills\":1}}", LM_ESCHEMA,
	    "model_version");
	expect_error("{\"model_version\":\"a b\",\"weights\":{\"skills\":1}}", LM_ESCHEMA,
	    "model_version");
	expect_error("{\"model_version\":7,\"weights\":{\"skills\":1}}", LM_ESCHEMA,
	    "model_version");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":0,\"salary\":0}}",
	    LM_ESCHEMA, "all weights are zero");
	expect_error("{\"model_version\":\"v\",\"weights\":{}}", LM_ESCHEMA,
	    "all weights are zero");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":\"1\"}}",
	    LM_ESCHEMA, "weights.skills: must be a number");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1e9}}", LM_ESCHEMA,
	    "larger than");
	expect_error("{\"model_version\":\"v\"}", LM_ESCHEMA, "missing \"weights\"");
	expect_error("{\"model_version\":\"v\",\"weights\":[1]}", LM_ESCHEMA,
	    "\"weights\" must be an object");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1},\"extra\":1}",
	    LM_ESCHEMA, "unknown key \"extra\"");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1},"
	             "\"params\":{\"speed\":1}}",
	    LM_ESCHEMA, "unknown parameter \"speed\"");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1},"
	             "\"params\":{\"freshness_half_life_days\":0}}",
	    LM_ESCHEMA, "params.freshness_half_life_days: 0 is out of range");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1},"
	             "\"params\":{\"relocate_credit\":1.5}}",
	    LM_ESCHEMA, "params.relocate_credit");
	/* Location credits must not rank a move abroad above another city of
	 * the job's country (the defaults are 0.7 and 0.4). */
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1},"
	             "\"params\":{\"relocate_credit\":0.8}}",
	    LM_ESCHEMA,
	    "params.relocate_credit (0.8) is above "
	    "params.location_country_credit (0.7)");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1},"
	             "\"params\":{\"location_country_credit\":0.3}}",
	    LM_ESCHEMA, "params.relocate_credit (0.4) is above");
	expect_error("{\"model_version\":\"v\",\"weights\":{\"skills\":1,\"skills\":2}}",
	    LM_EPARSE, "duplicate");
	expect_error("{\"model_version\":\"v\",", LM_EPARSE, "bad.json:1:");
	expect_error("[]", LM_ESCHEMA, "must be a JSON object");
}

static void
test_io_errors(void **state)
{
	char err[256] = "", path[4096];
	lm_model *m = NULL;
	char *big;
	FILE *f;

	(void) state;
	snprintf(path, sizeof(path), "%s/none.json", tmp);
	assert_int_equal(lm_model_load(path, &m, err, sizeof(err)), LM_ENOENT);
	assert_null(m);
	assert_non_null(strstr(err, "none.json"));
	assert_int_equal(lm_model_load("", &m, err, sizeof(err)), LM_EINVAL);

	/* Larger than LM_MODEL_FILE_MAX, even if it were valid JSON. */
	snprintf(path, sizeof(path), "%s/big.json", tmp);
	big = malloc(LM_MODEL_FILE_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', LM_MODEL_FILE_MAX + 1);
	big[LM_MODEL_FILE_MAX + 1] = '\0';
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs(big, f);
	fclose(f);
	assert_int_equal(lm_model_load(path, &m, err, sizeof(err)), LM_E2BIG);
	assert_int_equal(
	    lm_model_parse(big, LM_MODEL_FILE_MAX + 1, "x", &m, err, sizeof(err)),
	    LM_E2BIG);
	free(big);
	assert_null(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_file),
	    cmocka_unit_test(test_feature_names),
	    cmocka_unit_test(test_minimal_file),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_io_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
