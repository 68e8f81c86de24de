/*
 * salary.h - currency rate table and salary normalization.
 *
 * Producers state pay per hour, day, week, month or year in any ISO 4217
 * currency. Ingest turns every range into whole annual amounts in the
 * reference currency of a versioned rate table (data/rates.tsv, format in
 * docs/data-files.md), so that match compares like with like and a record
 * says which table produced its numbers (Salary.rates_version).
 *
 * A rate table is immutable after loading: any number of threads may read it
 * concurrently; only lm_rates_free needs them all to be done.
 */
#ifndef LUNAMATCH_SALARY_H
#define LUNAMATCH_SALARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunamatch/v1/records.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits of the rate file, enforced by lm_rates_load. */
#define LM_RATES_FILE_MAX    (1024u * 1024) /* bytes in the whole file */
#define LM_RATES_LINE_MAX    256            /* bytes in one line, without the newline */
#define LM_RATES_VERSION_MAX 64             /* bytes in the version string */
#define LM_RATE_MIN          1e-9           /* smallest accepted rate */
#define LM_RATE_MAX          1e6            /* largest accepted rate */

/* Largest annual amount, in reference units, that a salary may come to.
 * Anything above is a unit mistake, not a salary. */
#define LM_SALARY_ANNUAL_MAX 1e10

typedef struct lm_rates lm_rates;

/*
 * Loads the rate table at path. On success returns LM_OK and stores a new
 * table in *out (free it with lm_rates_free). On failure returns LM_ENOENT or
 * LM_EIO (file cannot be read), LM_E2BIG (a hard limit above), LM_EPARSE
 * (bad syntax, bad code or rate, missing version or reference line),
 * LM_ESCHEMA (a currency listed twice) or LM_ENOMEM, and writes
 * "<path>:<line>: <reason>" into err.
 */
int lm_rates_load(const char *path, lm_rates **out, char *err, size_t errlen);

/* Frees a rate table. NULL is a no-op. */
void lm_rates_free(lm_rates *r);

/* The file's "# version:" value, e.g. "2026-11-01". Owned by r. */
const char *lm_rates_version(const lm_rates *r);

/* The reference currency, e.g. "USD". Owned by r. */
const char *lm_rates_reference(const lm_rates *r);

/* Number of currencies in the table, the reference included. */
size_t lm_rates_count(const lm_rates *r);

/* True when code is exactly three upper-case ASCII letters (the shape of an
 * ISO 4217 code; whether the table knows it is lm_rates_lookup's job). */
bool lm_currency_valid(const char *code);

/* Parses a currency as a producer may write it: surrounding ASCII
 * whitespace is dropped and letters are upper-cased (" usd " -> "USD").
 * Writes the code and a NUL into out. Returns LM_OK or LM_EINVAL when the
 * result is not three ASCII letters. */
int lm_currency_parse(const char *text, char out[4]);

/* Stores in *per_unit how many reference units one unit of currency is
 * worth. Returns LM_OK, LM_EINVAL when currency is not a valid code, or
 * LM_ENOENT when the table does not list it. */
int lm_rates_lookup(const lm_rates *r, const char *currency, double *per_unit);

/* Periods per year of a Lunamatch__V1__SalaryPeriod value: UNSPECIFIED and
 * YEAR 1, HOUR 2080, DAY 260, WEEK 52, MONTH 12; 0 for any other value. */
double lm_salary_period_factor(int period);

/*
 * Converts amount per period in currency into a whole annual amount in the
 * reference currency, rounded to the nearest unit (halves away from zero).
 * Returns LM_OK; LM_EINVAL when amount is negative or not finite, period is
 * not a SalaryPeriod value, currency is not a valid code, or the result
 * exceeds LM_SALARY_ANNUAL_MAX; LM_ENOENT when the table lacks currency.
 */
int lm_salary_annualize(const lm_rates *r, double amount, const char *currency,
    int period, int64_t *annual_ref);

/*
 * Validates s and fills its normalized fields. s->currency must already be
 * three upper-case letters that the table knows (use lm_currency_parse to
 * clean producer input first); min >= 0; max == 0 (open-ended) or
 * max >= min; period a SalaryPeriod value. On success sets annual_min,
 * annual_max (0 when max is 0) and rates_version, and returns LM_OK. On
 * failure returns LM_EINVAL (LM_ENOENT for an unknown currency), writes a
 * reason naming the field into err (e.g. "salary.currency: unknown currency
 * \"XYZ\"") and leaves s unchanged.
 *
 * Ownership: rates_version is set to a malloc'd copy, so that
 * protobuf_c_message_free_unpacked(msg, NULL) frees it. The previous value
 * is freed with free() unless it is NULL or protobuf_c_empty_string, so it
 * must come from unpacking with the default allocator or from malloc.
 */
int lm_salary_normalize(
    const lm_rates *r, Lunamatch__V1__Salary *s, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_SALARY_H */
