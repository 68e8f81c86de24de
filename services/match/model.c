/*
 * model.c - loading and validating the scoring model file (see model.h and
 * docs/scoring.md for the format).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lunamatch/error.h"
#include "model.h"

static const char *const feature_names[LM_FEAT_COUNT] = {
    "skills",
    "experience",
    "seniority",
    "salary",
    "location",
    "education",
    "career_goals",
    "freshness",
    "semantic",
};

/* The parameters: name, offset in lm_model_params, default and bounds. A
 * bound is exclusive when the matching flag is set. */
struct param {
	const char *name;
	size_t off;
	double def, min, max;
	int min_open;
};

#define POFF(f) offsetof(lm_model_params, f)

static const struct param params[] = {
    {"freshness_half_life_days", POFF(freshness_half_life_days), 30, 0, 3650, 1},
    {"seniority_step", POFF(seniority_step), 0.25, 0, 1, 1},
    {"education_step", POFF(education_step), 0.25, 0, 1, 1},
    {"salary_half_excess", POFF(salary_half_excess), 0.20, 0, 10, 1},
    {"location_country_credit", POFF(location_country_credit), 0.70, 0, 1, 0},
    {"relocate_credit", POFF(relocate_credit), 0.40, 0, 1, 0},
    {"preferred_share", POFF(preferred_share), 0.50, 0, 1, 0},
    {"commute_km", POFF(commute_km), 50, 0, 1000, 1},
    {"no_skills_gate", POFF(no_skills_gate), 0.45, 0, 1, 0},
};

#define NPARAMS (sizeof(params) / sizeof(params[0]))

static const double default_weights[LM_FEAT_COUNT] = {
    0.35,
    0.10,
    0.08,
    0.10,
    0.10,
    0.05,
    0.10,
    0.04,
    0.08,
};

const char *
lm_feature_name(lm_feature f)
{
	if ((int) f < 0 || f >= LM_FEAT_COUNT)
		return "unknown";
	return feature_names[f];
}

int
lm_feature_from_name(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < LM_FEAT_COUNT; i++)
		if (strcmp(name, feature_names[i]) == 0)
			return i;
	return -1;
}

void
lm_model_defaults(lm_model *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->version, sizeof(m->version), "builtin");
	memcpy(m->weights, default_weights, sizeof(m->weights));
	for (size_t i = 0; i < NPARAMS; i++)
		*(double *) (void *) ((char *) &m->params + params[i].off) =
		    params[i].def;
}

void
lm_model_free(lm_model *m)
{
	free(m);
}

/* A model_version is 1..LM_MODEL_VERSION_MAX printable ASCII bytes. */
static int
version_ok(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > LM_MODEL_VERSION_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char) v[i] <= 0x20 || (unsigned char) v[i] >= 0x7f)
			return 0;
	return 1;
}

static int
parse_weights(json_t *w, lm_model *m, const char *name, char *err, size_t errlen)
{
	const char *key;
	json_t *val;
	double sum = 0;

	if (!json_is_object(w)) {
		snprintf(err, errlen, "%s: \"weights\" must be an object", name);
		return LM_ESCHEMA;
	}
	json_object_foreach(w, key, val)
	{
		int f = lm_feature_from_name(key);
		double d;

		if (f < 0) {
			snprintf(err, errlen,
			    "%s: weights: unknown feature \"%.64s\" (known: skills, "
			    "experience, "
			    "seniority, salary, location, education, career_goals, "
			    "freshness, "
			    "semantic)",
			    name, key);
			return LM_ESCHEMA;
		}
		if (!json_is_number(val)) {
			snprintf(
			    err, errlen, "%s: weights.%s: must be a number", name, key);
			return LM_ESCHEMA;
		}
		d = json_number_value(val);
		if (!isfinite(d) || d < 0) {
			snprintf(err, errlen, "%s: weights.%s: negative weight %g", name,
			    key, d);
			return LM_ESCHEMA;
		}
		if (d > LM_MODEL_WEIGHT_MAX) {
			snprintf(err, errlen, "%s: weights.%s: %g is larger than %g",
			    name, key, d, LM_MODEL_WEIGHT_MAX);
			return LM_ESCHEMA;
		}
		m->weights[f] = d;
	}
	for (int f = 0; f < LM_FEAT_COUNT; f++)
		sum += m->weights[f];
	if (sum <= 0) {
		snprintf(err, errlen, "%s: weights: all weights are zero", name);
		return LM_ESCHEMA;
	}
	return LM_OK;
}

static int
parse_params(json_t *p, lm_model *m, const char *name, char *err, size_t errlen)
{
	const char *key;
	json_t *val;

	if (!json_is_object(p)) {
		snprintf(err, errlen, "%s: \"params\" must be an object", name);
		return LM_ESCHEMA;
	}
	json_object_foreach(p, key, val)
	{
		const struct param *pp = NULL;
		double d;

		for (size_t i = 0; i < NPARAMS; i++)
			if (strcmp(key, params[i].name) == 0)
				pp = &params[i];
		if (pp == NULL) {
			snprintf(err, errlen, "%s: params: unknown parameter \"%.64s\"",
			    name, key);
			return LM_ESCHEMA;
		}
		if (!json_is_number(val)) {
			snprintf(
			    err, errlen, "%s: params.%s: must be a number", name, key);
			return LM_ESCHEMA;
		}
		d = json_number_value(val);
		if (!isfinite(d) || d > pp->max || d < pp->min ||
		    (pp->min_open && d == pp->min)) {
			snprintf(err, errlen,
			    "%s: params.%s: %g is out of range %s%g, %g]", name, key, d,
			    pp->min_open ? "(" : "[", pp->min, pp->max);
			return LM_ESCHEMA;
		}
		*(double *) (void *) ((char *) &m->params + pp->off) = d;
	}
	/* Each in range is not enough: a candidate who must move would
	 * outscore one in another city of the job's country, and the score
	 * would rise just past commute_km. */
	if (m->params.relocate_credit > m->params.location_country_credit) {
		snprintf(err, errlen,
		    "%s: params.relocate_credit (%g) is above "
		    "params.location_country_credit (%g): a move would score above "
		    "another city of the job's country",
		    name, m->params.relocate_credit, m->params.location_country_credit);
		return LM_ESCHEMA;
	}
	return LM_OK;
}

int
lm_model_parse(const char *text, size_t len, const char *name, lm_model **out, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *root = NULL, *v;
	lm_model *m = NULL;
	const char *key;
	int rc;

	*out = NULL;
	if (name == NULL)
		name = "model";
	if (text == NULL) {
		snprintf(err, errlen, "%s: no text", name);
		return LM_EINVAL;
	}
	if (len > LM_MODEL_FILE_MAX) {
		snprintf(
		    err, errlen, "%s: larger than %u bytes", name, LM_MODEL_FILE_MAX);
		return LM_E2BIG;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(err, errlen, "%s:%d: %s", name, jerr.line, jerr.text);
		return LM_EPARSE;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: the model must be a JSON object", name);
		rc = LM_ESCHEMA;
		goto fail;
	}
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "model_version") != 0 && strcmp(key, "weights") != 0 &&
		    strcmp(key, "params") != 0 && strcmp(key, "description") != 0) {
			snprintf(err, errlen, "%s: unknown key \"%.64s\"", name, key);
			rc = LM_ESCHEMA;
			goto fail;
		}
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		rc = LM_ENOMEM;
		goto fail;
	}
	lm_model_defaults(m);
	memset(m->weights, 0, sizeof(m->weights));
	m->version[0] = '\0';

	v = json_object_get(root, "model_version");
	if (v == NULL) {
		snprintf(err, errlen, "%s: missing \"model_version\"", name);
		rc = LM_ESCHEMA;
		goto fail;
	}
	if (!json_is_string(v) || !version_ok(json_string_value(v))) {
		snprintf(err, errlen,
		    "%s: \"model_version\" must be 1..%d printable ASCII characters "
		    "without spaces",
		    name, LM_MODEL_VERSION_MAX);
		rc = LM_ESCHEMA;
		goto fail;
	}
	snprintf(m->version, sizeof(m->version), "%s", json_string_value(v));

	v = json_object_get(root, "description");
	if (v != NULL && !json_is_string(v)) {
		snprintf(err, errlen, "%s: \"description\" must be a string", name);
		rc = LM_ESCHEMA;
		goto fail;
	}
	v = json_object_get(root, "weights");
	if (v == NULL) {
		snprintf(err, errlen, "%s: missing \"weights\"", name);
		rc = LM_ESCHEMA;
		goto fail;
	}
	if ((rc = parse_weights(v, m, name, err, errlen)) != LM_OK)
		goto fail;
	v = json_object_get(root, "params");
	if (v != NULL && (rc = parse_params(v, m, name, err, errlen)) != LM_OK)
		goto fail;

	json_decref(root);
	*out = m;
	return LM_OK;
fail:
	json_decref(root);
	free(m);
	return rc;
}

int
lm_model_load(const char *path, lm_model **out, char *err, size_t errlen)
{
	FILE *f;
	char *buf = NULL;
	size_t n;
	int rc;

	*out = NULL;
	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "model file: no path given");
		return LM_EINVAL;
	}
	if ((f = fopen(path, "rb")) == NULL) {
		rc = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(rc));
		return rc == ENOENT ? LM_ENOENT : LM_EIO;
	}
	/* One byte more than the limit tells an oversized file apart. */
	if ((buf = malloc(LM_MODEL_FILE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return LM_ENOMEM;
	}
	n = fread(buf, 1, LM_MODEL_FILE_MAX + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = LM_EIO;
	} else if (n > LM_MODEL_FILE_MAX) {
		snprintf(
		    err, errlen, "%s: larger than %u bytes", path, LM_MODEL_FILE_MAX);
		rc = LM_E2BIG;
	} else {
		rc = lm_model_parse(buf, n, path, out, err, errlen);
	}
	fclose(f);
	free(buf);
	return rc;
}
