/*
 * test_fairness.c - the measures of `lunamatch audit` against values
 * computed by hand from their definitions (fairness.h).
 */
#include <math.h>

#include "fairness.h"
#include "lmtest.h"

#define EPS 1e-9

static void
test_impact(void **state)
{
	(void) state;
	lm_fair_group g[] = {
	    {.name = "a", .considered = 100, .selected = 50},
	    {.name = "b", .considered = 100, .selected = 30},
	    {.name = "c", .considered = 4, .selected = 4}, /* 4 of 254: under 2 % */
	    {.name = "unknown", .unknown = true, .considered = 50, .selected = 45},
	};

	assert_int_equal(lm_fair_impact(g, 4), 1);
	assert_true(fabs(g[0].rate - 0.5) < EPS);
	assert_true(fabs(g[1].rate - 0.3) < EPS);
	assert_true(fabs(g[0].share - 100.0 / 254) < EPS);
	/* The best rate among included categories is a's, not c's (1.0) nor
	 * unknown's (0.9). */
	assert_true(fabs(g[0].impact - 1.0) < EPS);
	assert_true(fabs(g[1].impact - 0.6) < EPS);
	assert_false(g[0].flagged);
	assert_true(g[1].flagged);
	assert_true(g[2].excluded);
	assert_false(g[2].flagged);
	assert_true(g[3].excluded);
	assert_false(g[3].flagged);

	/* Exactly four fifths passes. */
	lm_fair_group h[] = {
	    {.name = "x", .considered = 10, .selected = 5},
	    {.name = "y", .considered = 10, .selected = 4},
	};
	assert_int_equal(lm_fair_impact(h, 2), 0);
	assert_true(fabs(h[1].impact - 0.8) < EPS);
	/* Exactly four fifths whose quotient of quotients rounds below 0.8 in
	 * floating point: (1/3) / (5/12) = 4/5. */
	lm_fair_group r[] = {
	    {.name = "x", .considered = 12, .selected = 5},
	    {.name = "y", .considered = 3, .selected = 1},
	};
	assert_int_equal(lm_fair_impact(r, 2), 0);
	assert_false(r[1].flagged);
	assert_true(fabs(r[1].impact - 0.8) < EPS);
	/* Just under four fifths is flagged: (1/3) / (5/12 + a little). */
	lm_fair_group s[] = {
	    {.name = "x", .considered = 1200000, .selected = 500001},
	    {.name = "y", .considered = 300000, .selected = 100000},
	};
	assert_int_equal(lm_fair_impact(s, 2), 1);
	assert_true(s[1].flagged);

	/* Nobody selected: nothing to compare, nothing flagged, and the
	 * impact ratio is undefined, not 0 (which reads as the worst ratio,
	 * next to a verdict that passes). An excluded category keeps 0. */
	lm_fair_group z[] = {
	    {.name = "x", .considered = 10},
	    {.name = "y", .considered = 10},
	    {.name = "?", .unknown = true, .considered = 10},
	};
	assert_int_equal(lm_fair_impact(z, 3), 0);
	assert_true(isnan(z[0].impact));
	assert_true(isnan(z[1].impact));
	assert_false(z[0].flagged || z[1].flagged);
	assert_true(z[2].excluded);
	assert_true(z[2].impact == 0.0);

	/* Only the excluded category selected: the same for the others. */
	lm_fair_group u[] = {
	    {.name = "x", .considered = 10},
	    {.name = "?", .unknown = true, .considered = 10, .selected = 5},
	};
	assert_int_equal(lm_fair_impact(u, 2), 0);
	assert_true(isnan(u[0].impact));
	assert_false(u[0].flagged);
}

static void
test_skew(void **state)
{
	(void) state;
	/* 2 of 10 places for a category that is half the pool: ln(0.2 / 0.5). */
	assert_true(fabs(lm_fair_skew(2, 10, 50, 100) - log(0.4)) < EPS);
	assert_true(fabs(lm_fair_skew(5, 10, 50, 100)) < EPS);
	assert_true(isinf(lm_fair_skew(0, 10, 50, 100)));
	assert_true(lm_fair_skew(0, 10, 50, 100) < 0);
	/* Undefined, not parity: nobody placed, or a category with no share
	 * of the pool. */
	assert_true(isnan(lm_fair_skew(0, 0, 50, 100)));
	assert_true(isnan(lm_fair_skew(0, 10, 0, 100)));
	assert_true(isnan(lm_fair_skew(0, 0, 0, 0)));
}

static void
test_ndkl(void **state)
{
	uint64_t counts[2];
	const double q[] = {0.5, 0.5};

	(void) state;
	/* Both places to category 0: KL = ln 2 at every prefix, so NDKL = ln 2. */
	const size_t same[] = {0, 0};
	assert_true(fabs(lm_fair_ndkl(same, 2, q, 2, counts) - log(2)) < EPS);
	/* Alternating: ln 2 at prefix 1, 0 at prefix 2:
	 * ln 2 / (1 + 1/log2(3)). */
	const size_t alt[] = {0, 1};
	assert_true(
	    fabs(lm_fair_ndkl(alt, 2, q, 2, counts) - log(2) / (1 + 1 / log2(3))) < EPS);
	assert_true(lm_fair_ndkl(alt, 0, q, 2, counts) == 0.0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_impact),
	    cmocka_unit_test(test_skew),
	    cmocka_unit_test(test_ndkl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
