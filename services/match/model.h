/*
 * model.h - the scoring model: feature weights, tuning parameters and the
 * model version, loaded from a JSON file (LUNAMATCH_MODEL_FILE).
 *
 * The model is immutable after loading: any number of threads may read it
 * concurrently without locks. The format and the meaning of every weight and
 * parameter are in docs/scoring.md; data/model/default.json is the default.
 */
#ifndef LUNAMATCH_MATCH_MODEL_H
#define LUNAMATCH_MATCH_MODEL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits of a model file, enforced by lm_model_load/lm_model_parse. */
#define LM_MODEL_FILE_MAX    (64u * 1024) /* bytes in the whole file */
#define LM_MODEL_VERSION_MAX 64           /* bytes in model_version, without the NUL */
#define LM_MODEL_WEIGHT_MAX  1000.0       /* largest accepted weight */

/* The soft features of a score, in the order explanations list them. */
typedef enum lm_feature {
	LM_FEAT_SKILLS = 0,
	LM_FEAT_EXPERIENCE,
	LM_FEAT_SENIORITY,
	LM_FEAT_SALARY,
	LM_FEAT_LOCATION,
	LM_FEAT_EDUCATION,
	LM_FEAT_CAREER_GOALS,
	LM_FEAT_FRESHNESS,
	LM_FEAT_SEMANTIC,
	LM_FEAT_COUNT /* number of features; not a feature */
} lm_feature;

/* Tuning parameters; the defaults apply to every one a file leaves out. */
typedef struct lm_model_params {
	double freshness_half_life_days; /* posting age at which freshness is 0.5 */
	double seniority_step;           /* value lost per level of seniority apart */
	double education_step;           /* value lost per education level short */
	double salary_half_excess;       /* relative excess over the range top that halves
	                                    salary fit */
	double location_country_credit;  /* same country, no common city */
	double relocate_credit; /* beyond commuting distance, candidate relocates */
	double preferred_share; /* share of the gap left by the required skills
	                           that the preferred ones can fill */
	double commute_km;      /* farthest geocoded place an on-site or hybrid
	                           job can be commuted to */
	double no_skills_gate;  /* gate of a posting that lists no skills */
} lm_model_params;

typedef struct lm_model {
	char version[LM_MODEL_VERSION_MAX + 1];
	double weights[LM_FEAT_COUNT]; /* >= 0; a feature left out of the file has 0 */
	lm_model_params params;
} lm_model;

/* The feature's name as used in model files and explanations ("skills",
 * "career_goals", ...); "unknown" for an out-of-range value. Static. */
const char *lm_feature_name(lm_feature f);

/* The feature called name, or -1 when there is none. */
int lm_feature_from_name(const char *name);

/*
 * Loads the model file at path. On success returns LM_OK and stores a new
 * model in *out (free it with lm_model_free). On failure *out is NULL, err
 * holds "<path>: <reason>" and the result is LM_ENOENT or LM_EIO (cannot
 * read), LM_E2BIG (larger than LM_MODEL_FILE_MAX), LM_EPARSE (not JSON),
 * LM_ESCHEMA (missing or bad model_version, unknown feature or parameter,
 * negative, non-numeric or too large weight, every weight zero, parameter
 * out of range) or LM_ENOMEM.
 */
int lm_model_load(const char *path, lm_model **out, char *err, size_t errlen);

/* As lm_model_load, from len bytes of JSON text; name prefixes errors. */
int lm_model_parse(const char *text, size_t len, const char *name, lm_model **out,
    char *err, size_t errlen);

/* Fills m with the built-in defaults (the same values as
 * data/model/default.json, version "builtin"). */
void lm_model_defaults(lm_model *m);

/* Frees a model. NULL is a no-op. */
void lm_model_free(lm_model *m);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_MODEL_H */
