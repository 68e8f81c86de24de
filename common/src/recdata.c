/*
 * recdata.c - the data files records are prepared with; see recdata.h.
 */
#include <stdio.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/recdata.h"

#define PATH_MAX_LEN 4096

/* Resolves file for setting name into path; LM_ENOENT with a message in err
 * when it does not exist or is not a regular file. */
static int
resolve(
    const char *name, const char *file, char *path, size_t len, char *err, size_t errlen)
{
	int rc = lm_config_data_file(file, path, len);

	if (rc == LM_OK)
		return LM_OK;
	snprintf(err, errlen, "%s: \"%s\" %s", name, file,
	    rc == LM_ENOENT   ? "not found"
	    : rc == LM_EINVAL ? "is not a regular file"
	                      : "is too long a path");
	return rc;
}

/* Prefixes err with the setting's name after a loader's failure. */
static int
loaded(int rc, const char *name, char *err, size_t errlen)
{
	char msg[512];

	if (rc == LM_OK)
		return LM_OK;
	snprintf(msg, sizeof(msg), "%s", err);
	snprintf(err, errlen, "%s: %s", name, msg);
	return rc;
}

int
lm_record_data_load(const lm_config *cfg, lm_record_data *d, char *err, size_t errlen)
{
	char path[PATH_MAX_LEN];
	int rc;

	memset(d, 0, sizeof(*d));
	if ((rc = resolve("LUNAMATCH_TAXONOMY_FILE", cfg->taxonomy_file, path,
	         sizeof(path), err, errlen)) != LM_OK ||
	    (rc = loaded(lm_taxonomy_load(path, &d->taxonomy, err, errlen),
	         "LUNAMATCH_TAXONOMY_FILE", err, errlen)) != LM_OK)
		goto fail;
	if ((rc = resolve("LUNAMATCH_RATES_FILE", cfg->rates_file, path, sizeof(path),
	         err, errlen)) != LM_OK ||
	    (rc = loaded(lm_rates_load(path, &d->rates, err, errlen),
	         "LUNAMATCH_RATES_FILE", err, errlen)) != LM_OK)
		goto fail;
	if ((rc = resolve("LUNAMATCH_FAIRNESS_FILE", cfg->fairness_file, path,
	         sizeof(path), err, errlen)) != LM_OK ||
	    (rc = loaded(lm_fairness_load(path, &d->fairness, err, errlen),
	         "LUNAMATCH_FAIRNESS_FILE", err, errlen)) != LM_OK)
		goto fail;
	if ((rc = resolve("LUNAMATCH_GAZETTEER_FILE", cfg->gazetteer_file, path,
	         sizeof(path), err, errlen)) != LM_OK ||
	    (rc = loaded(lm_gazetteer_load(path, &d->gazetteer, err, errlen),
	         "LUNAMATCH_GAZETTEER_FILE", err, errlen)) != LM_OK)
		goto fail;
	return LM_OK;
fail:
	lm_record_data_free(d);
	return rc;
}

lm_record_ctx
lm_record_data_ctx(const lm_record_data *d, const lm_config *cfg)
{
	lm_record_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.taxonomy = d->taxonomy;
	ctx.rates = d->rates;
	ctx.fairness = d->fairness;
	ctx.gazetteer = d->gazetteer;
	ctx.embedding_dim = cfg->embedding_dim;
	return ctx;
}

void
lm_record_data_free(lm_record_data *d)
{
	lm_gazetteer_free(d->gazetteer);
	lm_fairness_free(d->fairness);
	lm_rates_free(d->rates);
	lm_taxonomy_free(d->taxonomy);
	memset(d, 0, sizeof(*d));
}
