/*
 * rankeval.h - ranking-quality measures of `lunamatch eval`: NDCG and
 * average precision over graded relevance, and the two baseline rankers the
 * engine is compared with (BM25 over words, Jaccard of skill sets).
 *
 * Definitions (docs/eval-rubric.md quotes them):
 * - DCG@k = sum over ranks i = 1..min(k, n) of (2^grade_i - 1) / log2(i + 1);
 *   NDCG@k = DCG@k of the ranking / DCG@k of the ideal ranking (all judged
 *   grades of the query, best first); 0 when the ideal DCG is 0.
 * - AP = (sum of precision@i at each rank i holding a relevant result) /
 *   (number of relevant results the query has); relevant means grade >=
 *   the threshold given. MAP is the mean of AP over queries.
 * - BM25(q, d) = sum over query terms t (each distinct term once) of
 *   idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
 *   with idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5)), k1 = 1.2,
 *   b = 0.75. Terms are maximal runs of ASCII letters and digits (lower-cased)
 *   or of bytes >= 0x80.
 * - Jaccard(A, B) = |A n B| / |A u B| of two sets of strings (duplicates
 *   ignored), 0 when both are empty.
 *
 * The functions are pure and thread-safe; an lm_bm25 is built by one thread
 * and may then be read by many.
 */
#ifndef LUNAMATCH_CLI_RANKEVAL_H
#define LUNAMATCH_CLI_RANKEVAL_H

#include <stddef.h>

#define LM_BM25_K1 1.2
#define LM_BM25_B  0.75

/* Most terms kept from one text; further terms are ignored. */
#define LM_BM25_TERMS_MAX 4096
/* Most bytes of one term; longer runs are cut. */
#define LM_BM25_TERM_MAX 64

/* DCG@k of grades[0..n) (grade of the result at rank i + 1). */
double lm_ir_dcg(const int *grades, size_t n, size_t k);

/* NDCG@k of grades[0..n) against the judged grades ideal[0..nideal) of
 * the query (in any order; at most 4096 are used). */
double lm_ir_ndcg(const int *grades, size_t n, const int *ideal, size_t nideal, size_t k);

/* Average precision of grades[0..n) for a query with nrelevant results of
 * grade >= min_grade; 0 when nrelevant is 0. */
double lm_ir_average_precision(
    const int *grades, size_t n, size_t nrelevant, int min_grade);

/* Jaccard similarity of the sets a[0..na) and b[0..nb). */
double lm_ir_jaccard(const char *const *a, size_t na, const char *const *b, size_t nb);

/* A BM25 index of documents numbered in the order they were added. */
typedef struct lm_bm25 lm_bm25;

/* A new, empty index. Returns LM_OK or LM_ENOMEM. */
int lm_bm25_new(lm_bm25 **out);

/* Frees the index; NULL is a no-op. */
void lm_bm25_free(lm_bm25 *b);

/* Adds the document whose text is text (the caller may join several fields
 * with spaces); its number is the count of documents before it. Returns
 * LM_OK or LM_ENOMEM. */
int lm_bm25_add(lm_bm25 *b, const char *text);

/* Number of documents. */
size_t lm_bm25_count(const lm_bm25 *b);

/* BM25 of document doc for the query text (0 for doc out of range). */
double lm_bm25_score(const lm_bm25 *b, size_t doc, const char *query);

#endif /* LUNAMATCH_CLI_RANKEVAL_H */
