/*
 * recdata.h - the data files records are prepared with.
 *
 * Ingest prepares every record it stores with the taxonomy, the rate table,
 * the fair-requirements list and the gazetteer named by its configuration
 * (LUNAMATCH_TAXONOMY_FILE, LUNAMATCH_RATES_FILE, LUNAMATCH_FAIRNESS_FILE,
 * LUNAMATCH_GAZETTEER_FILE). Whatever else writes records into the store
 * loads them through lm_record_data_load too, so that its records are
 * prepared exactly as ingest's are.
 */
#ifndef LUNAMATCH_RECDATA_H
#define LUNAMATCH_RECDATA_H

#include <stddef.h>

#include "lunamatch/config.h"
#include "lunamatch/fairness.h"
#include "lunamatch/gazetteer.h"
#include "lunamatch/record.h"
#include "lunamatch/salary.h"
#include "lunamatch/taxonomy.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_record_data {
	lm_taxonomy *taxonomy;
	lm_rates *rates;
	lm_fairness *fairness;
	lm_gazetteer *gazetteer;
} lm_record_data;

/*
 * Resolves (lm_config_data_file) and loads the four data files of cfg into
 * *d. LM_OK; otherwise LM_ENOENT (a file not found) or the loader's error,
 * with a message naming the setting in err, and *d holds nothing.
 */
int lm_record_data_load(
    const lm_config *cfg, lm_record_data *d, char *err, size_t errlen);

/* A preparation context over d with cfg's embedding dimension; d must
 * outlive it. Fields the caller sets afterwards (metrics) are zero. */
lm_record_ctx lm_record_data_ctx(const lm_record_data *d, const lm_config *cfg);

/* Frees what d holds and zeroes it; d may be empty. */
void lm_record_data_free(lm_record_data *d);

#ifdef __cplusplus
}
#endif

#endif
