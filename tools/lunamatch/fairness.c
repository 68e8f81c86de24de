/*
 * fairness.c - selection rates, impact ratios, skew@k and NDKL for
 * `lunamatch audit` (definitions in fairness.h).
 */
#include <math.h>
#include <string.h>

#include "fairness.h"

/* The sign of a / b - c / d (b, d > 0), exactly: a continued-fraction
 * expansion of both, so no product can overflow. */
static int
frac_cmp(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	for (int sign = 1;; sign = -sign) {
		uint64_t qa = a / b, qc = c / d, t;
		if (qa != qc)
			return qa < qc ? -sign : sign;
		a %= b;
		c %= d;
		if (a == 0 || c == 0)
			return a == c ? 0 : a == 0 ? -sign : sign;
		/* a / b < c / d exactly when b / a > d / c. */
		t = a, a = b, b = t;
		t = c, c = d, d = t;
	}
}

size_t
lm_fair_impact(lm_fair_group *g, size_t n)
{
	uint64_t all = 0;
	double best = 0;
	size_t flagged = 0, top = 0;

	for (size_t i = 0; i < n; i++)
		all += g[i].considered;
	for (size_t i = 0; i < n; i++) {
		g[i].rate = g[i].considered
		                ? (double) g[i].selected / (double) g[i].considered
		                : 0.0;
		g[i].share = all ? (double) g[i].considered / (double) all : 0.0;
		g[i].excluded = g[i].unknown || g[i].considered == 0 ||
		                g[i].share < LM_FAIR_MIN_SHARE;
		if (!g[i].excluded && g[i].rate > best) {
			best = g[i].rate;
			top = i;
		}
	}
	for (size_t i = 0; i < n; i++) {
		/* Nobody selected in any category compared: there is no rate to
		 * divide by, and no category is disadvantaged against another.
		 * The impact ratio is undefined (NaN), not 0, and nothing is
		 * flagged. The flag compares the counts exactly, as impact may
		 * round below 0.8 at exactly four fifths. */
		g[i].impact = g[i].excluded ? 0.0 : best > 0 ? g[i].rate / best : NAN;
		g[i].flagged = !g[i].excluded && best > 0 &&
		               frac_cmp(g[i].selected, g[i].considered,
		                   4 * g[top].selected, 5 * g[top].considered) < 0;
		flagged += g[i].flagged ? 1 : 0;
	}
	return flagged;
}

double
lm_fair_skew(
    uint64_t top, uint64_t top_total, uint64_t considered, uint64_t considered_total)
{
	if (top_total == 0 || considered == 0 || considered_total == 0)
		return NAN;
	double p = (double) top / (double) top_total;
	double q = (double) considered / (double) considered_total;
	return p > 0 ? log(p / q) : -INFINITY;
}

double
lm_fair_ndkl(const size_t *cat, size_t n, const double *q, size_t ncat, uint64_t *counts)
{
	double sum = 0, z = 0;

	if (n == 0)
		return 0.0;
	memset(counts, 0, ncat * sizeof(*counts));
	for (size_t i = 0; i < n; i++) {
		double kl = 0, w = 1.0 / log2((double) i + 2.0);
		counts[cat[i]]++;
		for (size_t c = 0; c < ncat; c++) {
			if (counts[c] == 0 || q[c] <= 0)
				continue;
			double p = (double) counts[c] / (double) (i + 1);
			kl += p * log(p / q[c]);
		}
		sum += w * kl;
		z += w;
	}
	return sum / z;
}
