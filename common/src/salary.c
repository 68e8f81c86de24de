/*
 * salary.c - loading data/rates.tsv and annualizing salaries.
 *
 * A table holds one rate per possible three-letter code (26^3 doubles,
 * about 140 KiB), so a lookup is an index computation; 0 means "not listed".
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/salary.h"
#include "lunamatch/textfile.h"

#define NCODES         (26 * 26 * 26)
#define FORMAT_VERSION "1"

struct lm_rates {
	double rate[NCODES]; /* reference units per unit; 0 = not listed */
	size_t count;
	char reference[4];
	char version[LM_RATES_VERSION_MAX + 1];
};

_Static_assert(LM_RATES_VERSION_MAX <= LM_TEXTFILE_VERSION_MAX, "version fits");

/* Writes an error message for lm_salary_normalize; returns code. */
static int errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return code;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

bool
lm_currency_valid(const char *code)
{
	if (code == NULL)
		return false;
	for (int i = 0; i < 3; i++) {
		if (code[i] < 'A' || code[i] > 'Z')
			return false;
	}
	return code[3] == '\0';
}

int
lm_currency_parse(const char *text, char out[4])
{
	const char *p = text;
	int n = 0;

	if (text == NULL || out == NULL)
		return LM_EINVAL;
	out[0] = '\0';
	while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
		p++;
	for (; n < 3; n++, p++) {
		char c = *p;
		if (c >= 'a' && c <= 'z')
			c = (char) (c - 'a' + 'A');
		if (c < 'A' || c > 'Z')
			return LM_EINVAL;
		out[n] = c;
	}
	while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
		p++;
	if (*p != '\0')
		return LM_EINVAL;
	out[3] = '\0';
	return LM_OK;
}

/* Index of a valid code in lm_rates.rate. */
static size_t
code_index(const char *code)
{
	return (size_t) (code[0] - 'A') * 676 + (size_t) (code[1] - 'A') * 26 +
	       (size_t) (code[2] - 'A');
}

/* Parses "reference<TAB>CUR" or "CUR<TAB>rate" into the table arg; an
 * lm_textfile_line_fn. */
static int
parse_rate(void *arg, lm_textfile *tf, char *line)
{
	struct lm_rates *r = arg;
	char *tab = strchr(line, '\t');
	char *code, *val;
	double d;

	if (tab == NULL || strchr(tab + 1, '\t') != NULL)
		return lm_textfile_fail(
		    tf, LM_EPARSE, "expected 2 tab-separated columns (currency, rate)");
	*tab = '\0';
	code = lm_textfile_trim(line);
	val = lm_textfile_trim(tab + 1);

	if (strcmp(code, "reference") == 0) {
		if (r->reference[0] != '\0')
			return lm_textfile_fail(tf, LM_EPARSE, "second reference line");
		if (!lm_currency_valid(val))
			return lm_textfile_fail(tf, LM_EPARSE,
			    "reference \"%.16s\" is not an ISO 4217 code "
			    "(3 upper-case letters)",
			    val);
		memcpy(r->reference, val, 4);
		return LM_OK;
	}
	if (!lm_currency_valid(code))
		return lm_textfile_fail(tf, LM_EPARSE,
		    "\"%.16s\" is not an ISO 4217 code (3 upper-case letters)", code);
	if (r->reference[0] == '\0')
		return lm_textfile_fail(
		    tf, LM_EPARSE, "rate before the \"reference\" line");
	if (!lm_textfile_number(val, 1, &d))
		return lm_textfile_fail(
		    tf, LM_EPARSE, "%s: rate \"%.32s\" is not a number", code, val);
	if (d < LM_RATE_MIN || d > LM_RATE_MAX)
		return lm_textfile_fail(tf, LM_EPARSE, "%s: rate %g is outside %g..%g",
		    code, d, LM_RATE_MIN, LM_RATE_MAX);
	if (strcmp(code, r->reference) == 0 && d != 1.0)
		return lm_textfile_fail(
		    tf, LM_EPARSE, "%s: the reference currency's rate must be 1", code);
	if (r->rate[code_index(code)] != 0)
		return lm_textfile_fail(tf, LM_ESCHEMA, "%s listed twice", code);
	r->rate[code_index(code)] = d;
	r->count++;
	return LM_OK;
}

int
lm_rates_load(const char *path, lm_rates **out, char *err, size_t errlen)
{
	static const lm_textfile_opts opts = {.file_max = LM_RATES_FILE_MAX,
	    .line_max = LM_RATES_LINE_MAX,
	    .format = FORMAT_VERSION,
	    .version_max = LM_RATES_VERSION_MAX};
	struct lm_rates *r;
	int rv;

	if (out == NULL)
		return lm_textfile_errf(
		    err, errlen, path, 0, LM_EINVAL, "no output pointer");
	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return lm_textfile_errf(err, errlen, path, 0, LM_ENOMEM, "out of memory");
	rv = lm_textfile_read(path, &opts, err, errlen, parse_rate, r, r->version,
	    sizeof(r->version), NULL);
	if (rv == LM_OK && r->reference[0] == '\0')
		rv = lm_textfile_errf(err, errlen, path, 0, LM_EPARSE,
		    "missing \"reference<TAB>CUR\" line");
	if (rv != LM_OK) {
		free(r);
		return rv;
	}
	if (r->rate[code_index(r->reference)] == 0) {
		r->rate[code_index(r->reference)] = 1.0;
		r->count++;
	}
	*out = r;
	return LM_OK;
}

void
lm_rates_free(lm_rates *r)
{
	free(r);
}

const char *
lm_rates_version(const lm_rates *r)
{
	return r ? r->version : "";
}

const char *
lm_rates_reference(const lm_rates *r)
{
	return r ? r->reference : "";
}

size_t
lm_rates_count(const lm_rates *r)
{
	return r ? r->count : 0;
}

int
lm_rates_lookup(const lm_rates *r, const char *currency, double *per_unit)
{
	double d;

	if (r == NULL || per_unit == NULL || !lm_currency_valid(currency))
		return LM_EINVAL;
	if ((d = r->rate[code_index(currency)]) == 0)
		return LM_ENOENT;
	*per_unit = d;
	return LM_OK;
}

double
lm_salary_period_factor(int period)
{
	switch (period) {
	case LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_UNSPECIFIED:
	case LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_YEAR:
		return 1;
	case LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_HOUR:
		return 2080;
	case LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_DAY:
		return 260;
	case LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_WEEK:
		return 52;
	case LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_MONTH:
		return 12;
	default:
		return 0;
	}
}

int
lm_salary_annualize(const lm_rates *r, double amount, const char *currency, int period,
    int64_t *annual_ref)
{
	double factor = lm_salary_period_factor(period);
	double rate, annual;
	int rv;

	if (annual_ref == NULL || factor == 0 || !isfinite(amount) || amount < 0)
		return LM_EINVAL;
	if ((rv = lm_rates_lookup(r, currency, &rate)) != LM_OK)
		return rv;
	annual = amount * factor * rate;
	if (!(annual <= LM_SALARY_ANNUAL_MAX))
		return LM_EINVAL;
	*annual_ref = (int64_t) llround(annual);
	return LM_OK;
}

/* Copies at most 16 bytes of s into out for an error message, with
 * anything but printable ASCII (and '"', '\\') shown as '?'. */
static const char *
shown(const char *s, char out[20])
{
	size_t i = 0;
	for (; s[i] != '\0' && i < 16; i++) {
		char c = s[i];
		out[i] = (c >= ' ' && c <= '~' && c != '"' && c != '\\') ? c : '?';
	}
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

int
lm_salary_normalize(const lm_rates *r, Lunamatch__V1__Salary *s, char *err, size_t errlen)
{
	const char *cur;
	char show[20];
	double rate;
	int64_t amin = 0, amax = 0;
	char *version;
	int rv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (r == NULL || s == NULL)
		return errf(err, errlen, LM_EINVAL, "salary: missing");
	cur = s->currency ? s->currency : "";
	if (*cur == '\0')
		return errf(err, errlen, LM_EINVAL, "salary.currency: missing");
	if (!lm_currency_valid(cur))
		return errf(err, errlen, LM_EINVAL,
		    "salary.currency: \"%s\" is not an ISO 4217 code (3 upper-case "
		    "letters)",
		    shown(cur, show));
	if (lm_rates_lookup(r, cur, &rate) != LM_OK)
		return errf(err, errlen, LM_ENOENT,
		    "salary.currency: unknown currency \"%s\"", cur);
	if (lm_salary_period_factor((int) s->period) == 0)
		return errf(err, errlen, LM_EINVAL, "salary.period: unknown value %d",
		    (int) s->period);
	if (!isfinite(s->min) || s->min < 0)
		return errf(
		    err, errlen, LM_EINVAL, "salary.min: must be a finite amount >= 0");
	if (!isfinite(s->max) || s->max < 0)
		return errf(err, errlen, LM_EINVAL,
		    "salary.max: must be a finite amount >= 0 (0 = open-ended)");
	if (s->max != 0 && s->max < s->min)
		return errf(err, errlen, LM_EINVAL, "salary: min %.15g > max %.15g",
		    s->min, s->max);
	if ((rv = lm_salary_annualize(r, s->min, cur, (int) s->period, &amin)) != LM_OK)
		return errf(err, errlen, rv,
		    "salary.min: more than %.0f %s a year after conversion",
		    LM_SALARY_ANNUAL_MAX, lm_rates_reference(r));
	if (s->max != 0 &&
	    (rv = lm_salary_annualize(r, s->max, cur, (int) s->period, &amax)) != LM_OK)
		return errf(err, errlen, rv,
		    "salary.max: more than %.0f %s a year after conversion",
		    LM_SALARY_ANNUAL_MAX, lm_rates_reference(r));
	if ((version = strdup(lm_rates_version(r))) == NULL)
		return errf(err, errlen, LM_ENOMEM, "salary: out of memory");
	if (s->rates_version != NULL && s->rates_version != protobuf_c_empty_string)
		free(s->rates_version);
	s->rates_version = version;
	s->annual_min = amin;
	s->annual_max = amax;
	return LM_OK;
}
