/*
 * rankeval.c - NDCG, average precision, Jaccard and BM25 for `lunamatch
 * eval` (definitions in rankeval.h).
 *
 * A BM25 document is kept as its sorted distinct terms with their counts, so
 * that term frequency and document frequency are binary searches. The sizes
 * the evaluation works with (hundreds of documents) need nothing more.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "rankeval.h"

/* Judged grades of one query that NDCG sorts into the ideal ranking. */
#define IDEAL_MAX 4096

double
lm_ir_dcg(const int *grades, size_t n, size_t k)
{
	double dcg = 0;

	for (size_t i = 0; i < n && i < k; i++)
		if (grades[i] > 0)
			dcg += (pow(2.0, grades[i]) - 1.0) / log2((double) i + 2.0);
	return dcg;
}

static int
cmp_desc(const void *a, const void *b)
{
	int x = *(const int *) a, y = *(const int *) b;
	return (x < y) - (x > y);
}

double
lm_ir_ndcg(const int *grades, size_t n, const int *ideal, size_t nideal, size_t k)
{
	int best[IDEAL_MAX];
	double idcg;

	if (nideal > IDEAL_MAX)
		nideal = IDEAL_MAX;
	if (nideal == 0)
		return 0.0; /* ideal may be NULL then */
	memcpy(best, ideal, nideal * sizeof(*best));
	qsort(best, nideal, sizeof(*best), cmp_desc);
	idcg = lm_ir_dcg(best, nideal, k);
	return idcg > 0 ? lm_ir_dcg(grades, n, k) / idcg : 0.0;
}

double
lm_ir_average_precision(const int *grades, size_t n, size_t nrelevant, int min_grade)
{
	size_t hits = 0;
	double sum = 0;

	if (nrelevant == 0)
		return 0.0;
	for (size_t i = 0; i < n; i++)
		if (grades[i] >= min_grade) {
			hits++;
			sum += (double) hits / (double) (i + 1);
		}
	return sum / (double) nrelevant;
}

/* True when s occurs in v[0..n) before index end. */
static int
seen_before(const char *const *v, size_t end, const char *s)
{
	for (size_t i = 0; i < end; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

double
lm_ir_jaccard(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	size_t da = 0, db = 0, both = 0;

	for (size_t i = 0; i < na; i++)
		if (!seen_before(a, i, a[i])) {
			da++;
			if (seen_before(b, nb, a[i]))
				both++;
		}
	for (size_t i = 0; i < nb; i++)
		if (!seen_before(b, i, b[i]))
			db++;
	return da + db - both > 0 ? (double) both / (double) (da + db - both) : 0.0;
}

/* ---- BM25 ---------------------------------------------------------------- */

struct term {
	char *text;
	unsigned count;
};

struct doc {
	struct term *terms; /* sorted by text, distinct */
	size_t n;
	size_t len; /* all terms, repeats counted */
};

struct lm_bm25 {
	struct doc *docs;
	size_t n, cap;
	double total_len;
};

/*
 * Calls fn for each term of text in order (see rankeval.h for what a term
 * is), at most LM_BM25_TERMS_MAX times. Returns -1 when fn did.
 */
static int
each_term(const char *text, int (*fn)(void *, const char *), void *arg)
{
	char term[LM_BM25_TERM_MAX + 1];
	size_t len = 0, count = 0;

	for (const unsigned char *p = (const unsigned char *) text;; p++) {
		unsigned char c = *p;
		int word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
		if (c >= 'A' && c <= 'Z') {
			c = (unsigned char) (c - 'A' + 'a');
			word = 1;
		}
		if (word) {
			if (len < LM_BM25_TERM_MAX)
				term[len++] = (char) c;
			continue;
		}
		if (len > 0) {
			term[len] = '\0';
			len = 0;
			if (count++ == LM_BM25_TERMS_MAX)
				return 0;
			if (fn(arg, term) != 0)
				return -1;
		}
		if (c == '\0')
			return 0;
	}
}

static int
cmp_term(const void *a, const void *b)
{
	return strcmp(((const struct term *) a)->text, ((const struct term *) b)->text);
}

static const struct term *
find_term(const struct doc *d, const char *text)
{
	struct term key = {(char *) text, 0};
	if (d->n == 0)
		return NULL; /* d->terms is NULL then */
	return bsearch(&key, d->terms, d->n, sizeof(*d->terms), cmp_term);
}

/* Collects terms of a document being built (unsorted, repeats merged). */
struct collect {
	struct term *v;
	size_t n, cap, len;
};

static int
collect_term(void *arg, const char *text)
{
	struct collect *c = arg;

	c->len++;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].text, text) == 0) {
			c->v[i].count++;
			return 0;
		}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct term *v = realloc(c->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		c->v = v;
		c->cap = cap;
	}
	if ((c->v[c->n].text = strdup(text)) == NULL)
		return -1;
	c->v[c->n++].count = 1;
	return 0;
}

static void
free_terms(struct term *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].text);
	free(v);
}

int
lm_bm25_new(lm_bm25 **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return LM_ENOMEM;
	return LM_OK;
}

void
lm_bm25_free(lm_bm25 *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		free_terms(b->docs[i].terms, b->docs[i].n);
	free(b->docs);
	free(b);
}

int
lm_bm25_add(lm_bm25 *b, const char *text)
{
	struct collect c = {0};

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct doc *v = realloc(b->docs, cap * sizeof(*v));
		if (v == NULL)
			return LM_ENOMEM;
		b->docs = v;
		b->cap = cap;
	}
	if (each_term(text, collect_term, &c) != 0) {
		free_terms(c.v, c.n);
		return LM_ENOMEM;
	}
	if (c.n > 1) /* c.v is NULL for a text without terms */
		qsort(c.v, c.n, sizeof(*c.v), cmp_term);
	b->docs[b->n++] = (struct doc){c.v, c.n, c.len};
	b->total_len += (double) c.len;
	return LM_OK;
}

size_t
lm_bm25_count(const lm_bm25 *b)
{
	return b->n;
}

/* The query's distinct terms, scored against one document. */
struct query {
	const lm_bm25 *b;
	const struct doc *d;
	struct collect seen;
	double score;
};

static int
score_term(void *arg, const char *text)
{
	struct query *q = arg;
	size_t before = q->seen.n, df = 0;
	const struct term *t;

	if (collect_term(&q->seen, text) != 0)
		return -1;
	if (q->seen.n == before)
		return 0; /* counted once per query */
	if ((t = find_term(q->d, text)) == NULL)
		return 0;
	for (size_t i = 0; i < q->b->n; i++)
		if (find_term(&q->b->docs[i], text) != NULL)
			df++;
	double n = (double) q->b->n;
	double idf = log(1.0 + (n - (double) df + 0.5) / ((double) df + 0.5));
	double avgdl = q->b->total_len / n;
	double tf = t->count;
	q->score +=
	    idf * tf * (LM_BM25_K1 + 1) /
	    (tf + LM_BM25_K1 * (1 - LM_BM25_B + LM_BM25_B * (double) q->d->len / avgdl));
	return 0;
}

double
lm_bm25_score(const lm_bm25 *b, size_t doc, const char *query)
{
	struct query q = {b, NULL, {0}, 0};

	if (doc >= b->n)
		return 0.0;
	q.d = &b->docs[doc];
	/* Out of memory leaves the terms scored so far. */
	(void) each_term(query, score_term, &q);
	free_terms(q.seen.v, q.seen.n);
	return q.score;
}
