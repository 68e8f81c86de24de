/*
 * test_salary.c - rate tables (the real data/rates.tsv and crafted ones),
 * annualization, rounding, validation and Salary message normalization.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/salary.h"

#define P_UNSPEC LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_UNSPECIFIED
#define P_HOUR   LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_HOUR
#define P_DAY    LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_DAY
#define P_WEEK   LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_WEEK
#define P_MONTH  LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_MONTH
#define P_YEAR   LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_YEAR

static lm_rates *
load_real(void)
{
	lm_rates *r = NULL;
	char err[512] = "";
	if (lm_rates_load(lmt_src("data/rates.tsv"), &r, err, sizeof(err)) != LM_OK)
		fail_msg("loading data/rates.tsv: %s", err);
	assert_non_null(r);
	return r;
}

/* A table with round-number rates, so that expected values are exact. */
static lm_rates *
load_crafted(const char *dir)
{
	lm_rates *r = NULL;
	char err[512] = "";
	static const char text[] =
	    "# version: test-7\nreference\tUSD\nEUR\t1.5\nJPY\t0.01\nGBP\t1.25\n";
	const char *path = lmt_write_file(dir, "rates.tsv", text, sizeof(text) - 1);
	if (lm_rates_load(path, &r, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	return r;
}

static void
test_real_table(void **state)
{
	(void) state;
	lm_rates *r = load_real();
	const char *need[] = {"USD", "EUR", "GBP", "CAD", "AUD", "INR", "JPY", "CHF",
	    "SEK", "NOK", "DKK", "PLN", "BRL", "MXN", "SGD", "HKD", "NZD", "ZAR", "CNY",
	    "KRW"};
	double d;

	assert_string_equal(lm_rates_version(r), "2026-11-01");
	assert_string_equal(lm_rates_reference(r), "USD");
	assert_true(lm_rates_count(r) >= 30);
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (lm_rates_lookup(r, need[i], &d) != LM_OK)
			fail_msg("%s missing from data/rates.tsv", need[i]);
		assert_true(d > 0);
	}
	assert_int_equal(lm_rates_lookup(r, "USD", &d), LM_OK);
	assert_true(d == 1.0);
	/* Sanity of direction: units of USD per unit, not the other way. */
	assert_int_equal(lm_rates_lookup(r, "EUR", &d), LM_OK);
	assert_true(d > 0.5 && d < 2);
	assert_int_equal(lm_rates_lookup(r, "JPY", &d), LM_OK);
	assert_true(d > 0.001 && d < 0.05);

	assert_int_equal(lm_rates_lookup(r, "XYZ", &d), LM_ENOENT);
	assert_int_equal(lm_rates_lookup(r, "usd", &d), LM_EINVAL);
	assert_int_equal(lm_rates_lookup(r, "USDX", &d), LM_EINVAL);
	assert_int_equal(lm_rates_lookup(r, NULL, &d), LM_EINVAL);
	lm_rates_free(r);
	lm_rates_free(NULL);
}

static void
test_currency_shape(void **state)
{
	(void) state;
	char out[4];

	assert_true(lm_currency_valid("USD"));
	assert_false(lm_currency_valid("usd"));
	assert_false(lm_currency_valid("US"));
	assert_false(lm_currency_valid("USDD"));
	assert_false(lm_currency_valid(" USD"));
	assert_false(lm_currency_valid("U$D"));
	assert_false(lm_currency_valid(""));
	assert_false(lm_currency_valid(NULL));

	assert_int_equal(lm_currency_parse(" usd\t", out), LM_OK);
	assert_string_equal(out, "USD");
	assert_int_equal(lm_currency_parse("Eur", out), LM_OK);
	assert_string_equal(out, "EUR");
	assert_int_equal(lm_currency_parse("eu", out), LM_EINVAL);
	assert_int_equal(lm_currency_parse("euro", out), LM_EINVAL);
	assert_int_equal(lm_currency_parse("e u r", out), LM_EINVAL);
	assert_int_equal(lm_currency_parse("", out), LM_EINVAL);
	assert_int_equal(lm_currency_parse(NULL, out), LM_EINVAL);
}

static void
test_annualize_periods(void **state)
{
	(void) state;
	lm_rates *r = load_real();
	int64_t a = -1;

	assert_true(lm_salary_period_factor(P_UNSPEC) == 1);
	assert_true(lm_salary_period_factor(P_HOUR) == 2080);
	assert_true(lm_salary_period_factor(P_DAY) == 260);
	assert_true(lm_salary_period_factor(P_WEEK) == 52);
	assert_true(lm_salary_period_factor(P_MONTH) == 12);
	assert_true(lm_salary_period_factor(P_YEAR) == 1);
	assert_true(lm_salary_period_factor(6) == 0);
	assert_true(lm_salary_period_factor(-1) == 0);

	assert_int_equal(lm_salary_annualize(r, 50, "USD", P_HOUR, &a), LM_OK);
	assert_int_equal(a, 104000);
	assert_int_equal(lm_salary_annualize(r, 400, "USD", P_DAY, &a), LM_OK);
	assert_int_equal(a, 104000);
	assert_int_equal(lm_salary_annualize(r, 2000, "USD", P_WEEK, &a), LM_OK);
	assert_int_equal(a, 104000);
	assert_int_equal(lm_salary_annualize(r, 8000, "USD", P_MONTH, &a), LM_OK);
	assert_int_equal(a, 96000);
	assert_int_equal(lm_salary_annualize(r, 120000, "USD", P_YEAR, &a), LM_OK);
	assert_int_equal(a, 120000);
	assert_int_equal(lm_salary_annualize(r, 120000, "USD", P_UNSPEC, &a), LM_OK);
	assert_int_equal(a, 120000);
	assert_int_equal(lm_salary_annualize(r, 0, "USD", P_HOUR, &a), LM_OK);
	assert_int_equal(a, 0);
	lm_rates_free(r);
}

static void
test_annualize_conversion(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("salary");
	lm_rates *r = load_crafted(dir);
	int64_t a = -1;

	assert_int_equal(lm_salary_annualize(r, 100000, "EUR", P_YEAR, &a), LM_OK);
	assert_int_equal(a, 150000);
	assert_int_equal(lm_salary_annualize(r, 500000, "JPY", P_MONTH, &a), LM_OK);
	assert_int_equal(a, 60000);
	assert_int_equal(lm_salary_annualize(r, 40, "GBP", P_HOUR, &a), LM_OK);
	assert_int_equal(a, 104000);

	/* Rounding to whole reference units, halves away from zero. */
	assert_int_equal(lm_salary_annualize(r, 1, "EUR", P_YEAR, &a), LM_OK);
	assert_int_equal(a, 2); /* 1.5 */
	assert_int_equal(lm_salary_annualize(r, 0.3, "EUR", P_YEAR, &a), LM_OK);
	assert_int_equal(a, 0); /* 0.45 */
	assert_int_equal(lm_salary_annualize(r, 49, "JPY", P_YEAR, &a), LM_OK);
	assert_int_equal(a, 0); /* 0.49 */
	assert_int_equal(lm_salary_annualize(r, 10.0049, "USD", P_HOUR, &a), LM_OK);
	assert_int_equal(a, 20810); /* 20810.19 */
	assert_int_equal(lm_salary_annualize(r, 10.0051, "USD", P_HOUR, &a), LM_OK);
	assert_int_equal(a, 20811); /* 20810.61 */

	/* With the real table the result is the documented product, rounded. */
	lm_rates *real = load_real();
	double eur;
	assert_int_equal(lm_rates_lookup(real, "EUR", &eur), LM_OK);
	assert_int_equal(lm_salary_annualize(real, 5000, "EUR", P_MONTH, &a), LM_OK);
	assert_int_equal(a, llround(5000 * 12 * eur));
	lm_rates_free(real);

	lm_rates_free(r);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_annualize_invalid(void **state)
{
	(void) state;
	lm_rates *r = load_real();
	int64_t a = 7;

	assert_int_equal(lm_salary_annualize(r, -1, "USD", P_YEAR, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, NAN, "USD", P_YEAR, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, INFINITY, "USD", P_YEAR, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, 1e300, "USD", P_HOUR, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, 100, "USD", 99, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, 100, "XYZ", P_YEAR, &a), LM_ENOENT);
	assert_int_equal(lm_salary_annualize(r, 100, "usd", P_YEAR, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, 100, NULL, P_YEAR, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, 100, "USD", P_YEAR, NULL), LM_EINVAL);
	assert_int_equal(a, 7); /* untouched on error */

	/* The absurdity limit is on the annual amount, boundary included. */
	assert_int_equal(lm_salary_annualize(r, 1e10, "USD", P_YEAR, &a), LM_OK);
	assert_int_equal(a, 10000000000LL);
	assert_int_equal(lm_salary_annualize(r, 1e10 + 1, "USD", P_YEAR, &a), LM_EINVAL);
	assert_int_equal(lm_salary_annualize(r, 1e7, "USD", P_HOUR, &a), LM_EINVAL);
	lm_rates_free(r);
}

/* Packs s and unpacks it with the default allocator, as ingest gets it. */
static Lunamatch__V1__Salary *
roundtrip(const Lunamatch__V1__Salary *s)
{
	size_t n = lunamatch__v1__salary__get_packed_size(s);
	uint8_t *buf = malloc(n ? n : 1);
	Lunamatch__V1__Salary *out;
	assert_non_null(buf);
	assert_int_equal(lunamatch__v1__salary__pack(s, buf), n);
	out = lunamatch__v1__salary__unpack(NULL, n, buf);
	free(buf);
	assert_non_null(out);
	return out;
}

static void
test_normalize(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("salary");
	lm_rates *r = load_crafted(dir);
	Lunamatch__V1__Salary in = LUNAMATCH__V1__SALARY__INIT;
	Lunamatch__V1__Salary *s;
	char err[256] = "";

	/* A producer-sent rates_version and annual values are overwritten. */
	in.min = 4000;
	in.max = 6000;
	in.currency = "EUR";
	in.period = P_MONTH;
	in.annual_min = 1;
	in.annual_max = 2;
	in.rates_version = "forged";
	s = roundtrip(&in);
	assert_int_equal(lm_salary_normalize(r, s, err, sizeof(err)), LM_OK);
	assert_string_equal(err, "");
	assert_int_equal(s->annual_min, 72000);
	assert_int_equal(s->annual_max, 108000);
	assert_string_equal(s->rates_version, "test-7");
	assert_string_equal(s->currency, "EUR");
	/* Normalizing twice replaces (and frees) the first version string. */
	assert_int_equal(lm_salary_normalize(r, s, err, sizeof(err)), LM_OK);
	assert_string_equal(s->rates_version, "test-7");
	protobuf_c_message_free_unpacked(&s->base, NULL);

	/* No rates_version sent: the default empty string is replaced. */
	in.rates_version = (char *) protobuf_c_empty_string;
	in.max = 0; /* open-ended */
	in.period = P_UNSPEC;
	in.min = 90000;
	in.currency = "USD";
	s = roundtrip(&in);
	assert_ptr_equal(s->rates_version, protobuf_c_empty_string);
	assert_int_equal(lm_salary_normalize(r, s, err, sizeof(err)), LM_OK);
	assert_int_equal(s->annual_min, 90000);
	assert_int_equal(s->annual_max, 0);
	assert_string_equal(s->rates_version, "test-7");
	protobuf_c_message_free_unpacked(&s->base, NULL);

	/* A stack message with a NULL field works too; the caller frees. */
	Lunamatch__V1__Salary st = LUNAMATCH__V1__SALARY__INIT;
	st.min = 30;
	st.max = 30;
	st.currency = "GBP";
	st.period = P_HOUR;
	st.rates_version = NULL;
	assert_int_equal(lm_salary_normalize(r, &st, err, sizeof(err)), LM_OK);
	assert_int_equal(st.annual_min, 78000);
	assert_int_equal(st.annual_max, 78000);
	free(st.rates_version);

	lm_rates_free(r);
	lmt_rmtree(dir);
	free(dir);
}

/* Expects normalize to fail with code and exactly message want, leaving the
 * message as it was. */
static void
expect_reject(const lm_rates *r, Lunamatch__V1__Salary *s, int code, const char *want)
{
	char err[256] = "";
	char *version = s->rates_version;
	assert_int_equal(lm_salary_normalize(r, s, err, sizeof(err)), code);
	assert_string_equal(err, want);
	assert_int_equal(s->annual_min, 0);
	assert_int_equal(s->annual_max, 0);
	assert_ptr_equal(s->rates_version, version);
}

static void
test_normalize_invalid(void **state)
{
	(void) state;
	lm_rates *r = load_real();
	Lunamatch__V1__Salary s = LUNAMATCH__V1__SALARY__INIT;

	s.min = 100000;
	s.max = 150000;
	s.currency = "XYZ";
	expect_reject(r, &s, LM_ENOENT, "salary.currency: unknown currency \"XYZ\"");
	s.currency = "usd";
	expect_reject(r, &s, LM_EINVAL,
	    "salary.currency: \"usd\" is not an ISO 4217 code (3 upper-case letters)");
	s.currency = " USD";
	expect_reject(r, &s, LM_EINVAL,
	    "salary.currency: \" USD\" is not an ISO 4217 code (3 upper-case letters)");
	s.currency = "US\"D\x01 and a very long tail";
	expect_reject(r, &s, LM_EINVAL,
	    "salary.currency: \"US?D? and a very...\" is not an ISO 4217 code "
	    "(3 upper-case letters)");
	s.currency = "";
	expect_reject(r, &s, LM_EINVAL, "salary.currency: missing");
	s.currency = NULL;
	expect_reject(r, &s, LM_EINVAL, "salary.currency: missing");

	s.currency = "USD";
	s.min = 300000;
	s.max = 200000;
	expect_reject(r, &s, LM_EINVAL, "salary: min 300000 > max 200000");
	s.min = -1;
	s.max = 0;
	expect_reject(r, &s, LM_EINVAL, "salary.min: must be a finite amount >= 0");
	s.min = NAN;
	expect_reject(r, &s, LM_EINVAL, "salary.min: must be a finite amount >= 0");
	s.min = 10;
	s.max = INFINITY;
	expect_reject(r, &s, LM_EINVAL,
	    "salary.max: must be a finite amount >= 0 (0 = open-ended)");
	s.max = 20;
	s.period = (Lunamatch__V1__SalaryPeriod) 42;
	expect_reject(r, &s, LM_EINVAL, "salary.period: unknown value 42");
	s.period = P_HOUR;
	s.min = 1e8;
	s.max = 0;
	expect_reject(r, &s, LM_EINVAL,
	    "salary.min: more than 10000000000 USD a year after conversion");
	s.min = 100;
	s.max = 1e8;
	expect_reject(r, &s, LM_EINVAL,
	    "salary.max: more than 10000000000 USD a year after conversion");

	char err[64];
	assert_int_equal(lm_salary_normalize(r, NULL, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(lm_salary_normalize(NULL, &s, err, sizeof(err)), LM_EINVAL);
	/* A NULL or tiny error buffer is fine. */
	s.currency = "XYZ";
	assert_int_equal(lm_salary_normalize(r, &s, NULL, 0), LM_ENOENT);
	assert_int_equal(lm_salary_normalize(r, &s, err, 4), LM_ENOENT);
	assert_string_equal(err, "sal");
	lm_rates_free(r);
}

/* Loads text as a rate file and expects failure with code, an error that
 * names "<file>:<line>:" (line 0: no line) and contains want. */
static void
expect_error(const char *dir, const char *text, int code, unsigned line, const char *want)
{
	lm_rates *r = (lm_rates *) 1;
	char err[512] = "";
	const char *path = lmt_write_file(dir, "bad.tsv", text, strlen(text));

	assert_int_equal(lm_rates_load(path, &r, err, sizeof(err)), code);
	assert_null(r);
	lmt_assert_file_error(err, path, line, want);
}

#define HDR "# rates\n# version: t1\n"

static void
test_load_errors(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("salary");

	expect_error(dir, HDR "EUR\t1.1\nreference\tUSD\n", LM_EPARSE, 3,
	    "rate before the \"reference\" line");
	expect_error(dir, HDR "reference\tUSD\nEUR\t1.1\nGBP\t1.3\nEUR\t1.2\n",
	    LM_ESCHEMA, 6, "EUR listed twice");
	expect_error(dir, HDR "reference\tUSD\neur\t1.1\n", LM_EPARSE, 4,
	    "\"eur\" is not an ISO 4217 code");
	expect_error(dir, HDR "reference\tUSD\nEUR\tabc\n", LM_EPARSE, 4,
	    "EUR: rate \"abc\" is not a number");
	expect_error(
	    dir, HDR "reference\tUSD\nEUR\t1.1x\n", LM_EPARSE, 4, "not a number");
	expect_error(dir, HDR "reference\tUSD\nEUR\t-1\n", LM_EPARSE, 4, "outside");
	expect_error(dir, HDR "reference\tUSD\nEUR\t0\n", LM_EPARSE, 4, "outside");
	expect_error(dir, HDR "reference\tUSD\nEUR\tnan\n", LM_EPARSE, 4, "not a number");
	/* Decimal only: no hexadecimal, no leading space. */
	expect_error(
	    dir, HDR "reference\tUSD\nEUR\t0x1.2p0\n", LM_EPARSE, 4, "not a number");
	expect_error(dir, HDR "reference\tUSD\nEUR\t\v1.5\n", LM_EPARSE, 4, "");
	expect_error(dir, HDR "reference\tUSD\nUSD\t1.01\n", LM_EPARSE, 4,
	    "reference currency's rate must be 1");
	expect_error(dir, HDR "reference\tUSD\nEUR 1.1\n", LM_EPARSE, 4,
	    "expected 2 tab-separated columns");
	expect_error(dir, HDR "reference\tUSD\nEUR\t1.1\t2\n", LM_EPARSE, 4,
	    "expected 2 tab-separated columns");
	expect_error(dir, HDR "reference\tUSD\nreference\tEUR\n", LM_EPARSE, 4,
	    "second reference line");
	expect_error(dir, HDR "reference\tusd\n", LM_EPARSE, 3, "reference \"usd\"");
	expect_error(dir, HDR "EUR\n", LM_EPARSE, 3, "expected 2 tab-separated columns");
	expect_error(
	    dir, "reference\tUSD\nEUR\t1.1\n", LM_EPARSE, 0, "missing \"# version");
	expect_error(dir, HDR "\n", LM_EPARSE, 0, "missing \"reference");
	expect_error(dir, "# format: 9\n", LM_EPARSE, 1, "unsupported format");

	char big[LM_RATES_LINE_MAX + 64];
	int n = snprintf(big, sizeof(big), HDR "reference\tUSD\nEUR\t1.");
	memset(big + n, '1', sizeof(big) - (size_t) n - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	expect_error(dir, big, LM_E2BIG, 4, "line longer than 256 bytes");

	lm_rates *r = NULL;
	char err[512], missing[1024];
	snprintf(missing, sizeof(missing), "%s/nope.tsv", dir);
	assert_int_equal(lm_rates_load(missing, &r, err, sizeof(err)), LM_ENOENT);
	assert_non_null(strstr(err, "nope.tsv"));
	assert_null(r);

	/* Accepted layout: CRLF, comments, no trailing newline, implicit
	 * reference rate. */
	static const char text[] =
	    "# version: 2027-01-01\r\n\r\nreference\tEUR\r\n# comment\r\nUSD\t0.9";
	const char *ok = lmt_write_file(dir, "ok.tsv", text, sizeof(text) - 1);
	if (lm_rates_load(ok, &r, err, sizeof(err)) != LM_OK)
		fail_msg("%s", err);
	double d = 0;
	assert_string_equal(lm_rates_reference(r), "EUR");
	assert_string_equal(lm_rates_version(r), "2027-01-01");
	assert_int_equal(lm_rates_count(r), 2);
	assert_int_equal(lm_rates_lookup(r, "EUR", &d), LM_OK);
	assert_true(d == 1.0);
	assert_int_equal(lm_rates_lookup(r, "USD", &d), LM_OK);
	assert_true(d == 0.9);
	lm_rates_free(r);

	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_table),
	    cmocka_unit_test(test_currency_shape),
	    cmocka_unit_test(test_annualize_periods),
	    cmocka_unit_test(test_annualize_conversion),
	    cmocka_unit_test(test_annualize_invalid),
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_normalize_invalid),
	    cmocka_unit_test(test_load_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
