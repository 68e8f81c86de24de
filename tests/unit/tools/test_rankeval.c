/*
 * test_rankeval.c - the ranking measures of `lunamatch eval` against values
 * computed by hand from their definitions (rankeval.h).
 */
#include <math.h>
#include <stdlib.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "rankeval.h"

#define EPS 1e-9

static void
test_dcg_and_ndcg(void **state)
{
	(void) state;
	/* Ranked grades 3, 2, 0, 1 of a query whose judged grades are 3, 2, 1:
	 * DCG = 7 + 3/log2(3) + 1/log2(5); ideal = 7 + 3/log2(3) + 1/log2(4). */
	const int ranked[] = {3, 2, 0, 1};
	const int ideal[] = {1, 3, 2}; /* any order */
	double dcg = 7 + 3 / log2(3) + 1 / log2(5);
	double idcg = 7 + 3 / log2(3) + 1 / log2(4);

	assert_true(fabs(lm_ir_dcg(ranked, 4, 5) - dcg) < EPS);
	assert_true(fabs(lm_ir_ndcg(ranked, 4, ideal, 3, 5) - dcg / idcg) < EPS);
	assert_true(fabs(lm_ir_ndcg(ranked, 4, ideal, 3, 5) - 0.992619504174702) < 1e-12);
	/* The cut-off: at k = 2 both rankings agree. */
	assert_true(fabs(lm_ir_ndcg(ranked, 4, ideal, 3, 2) - 1.0) < EPS);
	/* Nothing relevant: 0, with no ideal list at all. */
	assert_true(lm_ir_ndcg(ranked, 4, NULL, 0, 5) == 0.0);
	/* The best item last of two: (7/log2(3)) / 7. */
	const int late[] = {0, 3};
	const int one[] = {3};
	assert_true(fabs(lm_ir_ndcg(late, 2, one, 1, 5) - 1 / log2(3)) < EPS);
	assert_true(lm_ir_ndcg(late, 2, one, 1, 1) == 0.0);
	/* Nothing relevant judged: 0, not a division by zero. */
	const int zero[] = {0};
	assert_true(lm_ir_ndcg(ranked, 4, zero, 1, 5) == 0.0);
	/* A relevant item that was never returned lowers NDCG. */
	const int two[] = {3, 3};
	assert_true(fabs(lm_ir_ndcg(one, 1, two, 2, 5) - 7 / (7 + 7 / log2(3))) < EPS);
}

static void
test_average_precision(void **state)
{
	(void) state;
	/* Relevant at ranks 1 and 3, a third relevant item never returned:
	 * (1/1 + 2/3) / 3. */
	const int g[] = {1, 0, 2, 0};
	assert_true(fabs(lm_ir_average_precision(g, 4, 3, 1) - (1 + 2.0 / 3) / 3) < EPS);
	/* With the threshold at 2 only rank 3 counts: (1/3) / 1. */
	assert_true(fabs(lm_ir_average_precision(g, 4, 1, 2) - 1.0 / 3) < EPS);
	assert_true(lm_ir_average_precision(g, 4, 0, 1) == 0.0);
}

static void
test_jaccard(void **state)
{
	(void) state;
	const char *a[] = {"go", "sql", "python"};
	const char *b[] = {"sql", "python", "java", "java"};
	/* {sql, python} of {go, sql, python, java}; the repeat is ignored. */
	assert_true(fabs(lm_ir_jaccard(a, 3, b, 4) - 0.5) < EPS);
	assert_true(fabs(lm_ir_jaccard(a, 3, a, 3) - 1.0) < EPS);
	assert_true(lm_ir_jaccard(a, 0, b, 0) == 0.0);
	assert_true(lm_ir_jaccard(a, 1, b, 1) == 0.0);
}

static void
test_bm25(void **state)
{
	lm_bm25 *b = NULL;

	(void) state;
	assert_int_equal(lm_bm25_new(&b), LM_OK);
	assert_int_equal(lm_bm25_add(b, "Go go, Python"), LM_OK); /* 3 terms */
	assert_int_equal(lm_bm25_add(b, "Java"), LM_OK);          /* 1 term */
	assert_int_equal(lm_bm25_add(b, "python SQL"), LM_OK);    /* 2 terms */
	assert_int_equal(lm_bm25_count(b), 3);
	/* N = 3, avgdl = 2. "go": df 1, idf = ln(1 + 2.5/1.5); in doc 0 tf 2,
	 * |d| 3: 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 1.5)). */
	double idf = log(1 + 2.5 / 1.5);
	assert_true(fabs(lm_bm25_score(b, 0, "GO") - idf * 4.4 / 3.65) < EPS);
	assert_true(fabs(lm_bm25_score(b, 0, "go") - 1.1823695104798893) < 1e-12);
	/* A repeated query term counts once. "python": df 2, idf = ln(1.6);
	 * doc 2: tf 1, |d| 2 = avgdl: 2.2 / 2.2. */
	assert_true(fabs(lm_bm25_score(b, 2, "python Python") - log(1.6)) < EPS);
	/* Terms the document lacks add nothing; out of range is 0. */
	assert_true(lm_bm25_score(b, 1, "go python") == 0.0);
	assert_true(lm_bm25_score(b, 9, "go") == 0.0);
	/* Sums over terms. */
	assert_true(
	    fabs(lm_bm25_score(b, 0, "go python") -
	         (lm_bm25_score(b, 0, "go") + lm_bm25_score(b, 0, "python"))) < EPS);
	/* A document without terms (an empty title, punctuation only) is a
	 * document that matches nothing. */
	assert_int_equal(lm_bm25_add(b, ""), LM_OK);
	assert_int_equal(lm_bm25_add(b, " -- !"), LM_OK);
	assert_int_equal(lm_bm25_count(b), 5);
	assert_true(lm_bm25_score(b, 3, "go") == 0.0);
	assert_true(lm_bm25_score(b, 4, "go") == 0.0);
	lm_bm25_free(b);
	lm_bm25_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dcg_and_ndcg),
	    cmocka_unit_test(test_average_precision),
	    cmocka_unit_test(test_jaccard),
	    cmocka_unit_test(test_bm25),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
