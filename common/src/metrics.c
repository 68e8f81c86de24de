/*
 * metrics.c - metrics registry and Prometheus text rendering; see metrics.h.
 *
 * Families and series are allocated once and never move, so the pointers
 * handed out stay valid until lm_metrics_free(). The mutex guards the family
 * and series tables only; metric values are C11 atomics updated with relaxed
 * ordering (a scrape needs no ordering between different metrics). Doubles
 * are kept as their bit pattern in a 64-bit atomic and updated by
 * compare-and-swap.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/metrics.h"

const double lm_latency_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const size_t lm_latency_nbounds =
    sizeof(lm_latency_bounds) / sizeof(lm_latency_bounds[0]);

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct lm_counter {
	_Atomic uint64_t v;
};

struct lm_gauge {
	_Atomic uint64_t bits; /* a double */
};

struct lm_histogram {
	const double *bounds; /* the family's bounds */
	size_t nbounds;
	/* Per-bucket (not cumulative) counts; [nbounds] is the +Inf bucket. */
	_Atomic uint64_t buckets[LM_METRICS_MAX_BOUNDS + 1];
	_Atomic uint64_t sum_bits; /* a double */
};

struct series {
	char *labels;            /* "" when the series has no labels */
	double (*fn)(void *);    /* computed gauge, or NULL */
	uint64_t (*cfn)(void *); /* computed counter, or NULL */
	void *arg;
	union {
		struct lm_counter c;
		struct lm_gauge g;
		struct lm_histogram h;
	} u;
};

struct family {
	char *name;
	char *help;
	enum kind kind;
	double bounds[LM_METRICS_MAX_BOUNDS];
	size_t nbounds;
	struct series **series;
	size_t nseries, cap;
};

struct lm_metrics {
	pthread_mutex_t mu;
	struct family **fams;
	size_t nfams, cap;
	size_t total_series;
};

static uint64_t
d2u(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static double
u2d(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

static void
atomic_add_double(_Atomic uint64_t *bits, double d)
{
	uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
	    bits, &old, d2u(u2d(old) + d), memory_order_relaxed, memory_order_relaxed)) {
	}
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t
utf8_seq(const unsigned char *p)
{
	unsigned char c = p[0];
	uint32_t cp;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void
lm_metrics_label_escape(const char *in, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *) (in != NULL ? in : "");
	size_t o = 0;

	if (out == NULL || len == 0)
		return;
	while (*p != '\0') {
		char esc[2];
		const char *src;
		size_t need, adv;

		if (*p == '\\' || *p == '"' || *p == '\n') {
			esc[0] = '\\';
			esc[1] = *p == '\n' ? 'n' : (char) *p;
			src = esc;
			need = 2;
			adv = 1;
		} else if ((adv = utf8_seq(p)) == 0) {
			src = "?";
			need = 1;
			adv = 1;
		} else {
			src = (const char *) p;
			need = adv;
		}
		if (o + need >= len)
			break;
		memcpy(out + o, src, need);
		o += need;
		p += adv;
	}
	out[o] = '\0';
}

static bool
name_valid(const char *name)
{
	size_t n;

	if (name == NULL || name[0] == '\0')
		return false;
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             c == '_' || c == ':';
		if (!alpha && !(n > 0 && c >= '0' && c <= '9'))
			return false;
		if (n >= LM_METRICS_NAME_MAX)
			return false;
	}
	return true;
}

/* Checks a preformatted label set (see metrics.h). Returns NULL when valid,
 * else a static reason. */
static const char *
labels_invalid(const char *s, bool histogram)
{
	const char *names[LM_METRICS_MAX_LABELS];
	size_t lens[LM_METRICS_MAX_LABELS];
	size_t count = 0;
	const char *p = s;

	if (strlen(s) > LM_METRICS_LABELS_MAX)
		return "label set too long";
	while (*p != '\0') {
		const char *start = p;
		size_t nlen;

		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
			return "bad label name";
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       *p == '_' || (*p >= '0' && *p <= '9'))
			p++;
		nlen = (size_t) (p - start);
		if (nlen >= 2 && start[0] == '_' && start[1] == '_')
			return "reserved label name";
		if (histogram && nlen == 2 && start[0] == 'l' && start[1] == 'e')
			return "histogram label le is reserved";
		if (count == LM_METRICS_MAX_LABELS)
			return "too many labels";
		for (size_t i = 0; i < count; i++) {
			if (lens[i] == nlen && memcmp(names[i], start, nlen) == 0)
				return "duplicate label name";
		}
		names[count] = start;
		lens[count++] = nlen;
		if (p[0] != '=' || p[1] != '"')
			return "expected =\" after label name";
		p += 2;
		while (*p != '"') {
			size_t n;
			if (*p == '\0' || *p == '\n')
				return "unterminated label value";
			if (*p == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
					return "bad escape in label value";
				p += 2;
				continue;
			}
			if ((n = utf8_seq((const unsigned char *) p)) == 0)
				return "label value is not UTF-8";
			p += n;
		}
		p++;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				return "trailing comma";
		} else if (*p != '\0') {
			return "expected , between labels";
		}
	}
	return NULL;
}

static const char *
bounds_invalid(const double *bounds, size_t nbounds)
{
	if (bounds == NULL || nbounds == 0)
		return "no bucket bounds";
	if (nbounds > LM_METRICS_MAX_BOUNDS)
		return "too many bucket bounds";
	for (size_t i = 0; i < nbounds; i++) {
		if (!isfinite(bounds[i]))
			return "bucket bound not finite";
		if (i > 0 && !(bounds[i] > bounds[i - 1]))
			return "bucket bounds not strictly ascending";
	}
	return NULL;
}

int
lm_metrics_new(lm_metrics **out)
{
	lm_metrics *m;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return LM_ENOMEM;
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return LM_ENOMEM;
	}
	*out = m;
	return LM_OK;
}

static void
family_free(struct family *f)
{
	for (size_t i = 0; i < f->nseries; i++) {
		free(f->series[i]->labels);
		free(f->series[i]);
	}
	free(f->series);
	free(f->name);
	free(f->help);
	free(f);
}

void
lm_metrics_free(lm_metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfams; i++)
		family_free(m->fams[i]);
	free(m->fams);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static struct family *
family_find(lm_metrics *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->nfams; i++) {
		if (strncmp(m->fams[i]->name, name, len) == 0 &&
		    m->fams[i]->name[len] == '\0')
			return m->fams[i];
	}
	return NULL;
}

/* True if base + one of the histogram suffixes equals name. */
static bool
is_hist_series_name(const char *base, const char *name)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	size_t bl = strlen(base);

	if (strncmp(base, name, bl) != 0)
		return false;
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(name + bl, sfx[i]) == 0)
			return true;
	}
	return false;
}

/* Would a new family name clash with the series names of a histogram (or, for
 * a new histogram, with an existing family)? Called with the mutex held. */
static bool
family_name_clash(lm_metrics *m, const char *name, enum kind kind)
{
	for (size_t i = 0; i < m->nfams; i++) {
		struct family *f = m->fams[i];
		if (f->kind == K_HISTOGRAM && is_hist_series_name(f->name, name))
			return true;
		if (kind == K_HISTOGRAM && is_hist_series_name(name, f->name))
			return true;
	}
	return false;
}

static struct family *
family_add(lm_metrics *m, const char *name, const char *help, enum kind kind,
    const double *bounds, size_t nbounds)
{
	struct family *f;

	if (m->nfams == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct family **fams = realloc(m->fams, cap * sizeof(*fams));
		if (fams == NULL)
			return NULL;
		m->fams = fams;
		m->cap = cap;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->name = strdup(name);
	f->help = strdup(help != NULL ? help : "");
	if (f->name == NULL || f->help == NULL) {
		family_free(f);
		return NULL;
	}
	f->kind = kind;
	if (kind == K_HISTOGRAM) {
		memcpy(f->bounds, bounds, nbounds * sizeof(bounds[0]));
		f->nbounds = nbounds;
	}
	m->fams[m->nfams++] = f;
	return f;
}

static struct series *
series_add(struct family *f, const char *labels)
{
	struct series *s;

	if (f->nseries == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4;
		struct series **v = realloc(f->series, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		f->series = v;
		f->cap = cap;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->labels = strdup(labels)) == NULL) {
		free(s);
		return NULL;
	}
	if (f->kind == K_HISTOGRAM) {
		s->u.h.bounds = f->bounds;
		s->u.h.nbounds = f->nbounds;
		for (size_t i = 0; i <= LM_METRICS_MAX_BOUNDS; i++)
			atomic_init(&s->u.h.buckets[i], 0);
		atomic_init(&s->u.h.sum_bits, d2u(0.0));
	} else if (f->kind == K_GAUGE) {
		atomic_init(&s->u.g.bits, d2u(0.0));
	} else {
		atomic_init(&s->u.c.v, 0);
	}
	f->series[f->nseries++] = s;
	return s;
}

/*
 * Finds or creates the series name{labels} of the given kind. fn != NULL
 * registers a computed gauge, cfn != NULL a computed counter, which must
 * not exist yet. Returns LM_OK and *out, or an error after logging the
 * reason.
 */
static int
reg(lm_metrics *m, enum kind kind, const char *name, const char *help, const char *labels,
    const double *bounds, size_t nbounds, double (*fn)(void *), uint64_t (*cfn)(void *),
    void *arg, struct series **out)
{
	const char *why = NULL;
	struct family *f;
	struct series *s = NULL;
	int rv = LM_EINVAL;

	*out = NULL;
	if (labels == NULL)
		labels = "";
	if (m == NULL)
		why = "no registry";
	else if (!name_valid(name))
		why = "invalid metric name";
	else if (help != NULL && strlen(help) > LM_METRICS_HELP_MAX)
		why = "help text too long";
	else if (kind == K_HISTOGRAM)
		why = bounds_invalid(bounds, nbounds);
	if (why == NULL)
		why = labels_invalid(labels, kind == K_HISTOGRAM);
	if (why != NULL)
		goto out;

	pthread_mutex_lock(&m->mu);
	if ((f = family_find(m, name, strlen(name))) != NULL) {
		if (f->kind != kind) {
			why = "registered with another type";
			goto unlock;
		}
		if (kind == K_HISTOGRAM &&
		    (f->nbounds != nbounds ||
		        memcmp(f->bounds, bounds, nbounds * sizeof(bounds[0])) != 0)) {
			why = "registered with other bucket bounds";
			goto unlock;
		}
		for (size_t i = 0; i < f->nseries; i++) {
			if (strcmp(f->series[i]->labels, labels) != 0)
				continue;
			if (fn != NULL || cfn != NULL) {
				rv = LM_EEXIST;
				why = "already registered";
			} else if (f->series[i]->fn != NULL ||
			           f->series[i]->cfn != NULL) {
				why = "registered as a computed metric";
			} else {
				s = f->series[i];
				rv = LM_OK;
			}
			goto unlock;
		}
	}
	if (m->total_series >= LM_METRICS_MAX_SERIES ||
	    (f == NULL && m->nfams >= LM_METRICS_MAX_FAMILIES)) {
		rv = LM_E2BIG;
		why = "registry full";
		goto unlock;
	}
	if (f == NULL) {
		if (family_name_clash(m, name, kind)) {
			why = "name clashes with a histogram series";
			goto unlock;
		}
		if ((f = family_add(m, name, help, kind, bounds, nbounds)) == NULL) {
			rv = LM_ENOMEM;
			why = "out of memory";
			goto unlock;
		}
	}
	if ((s = series_add(f, labels)) == NULL) {
		rv = LM_ENOMEM;
		why = "out of memory";
		goto unlock;
	}
	s->fn = fn;
	s->cfn = cfn;
	s->arg = arg;
	m->total_series++;
	rv = LM_OK;
unlock:
	pthread_mutex_unlock(&m->mu);
out:
	if (rv != LM_OK) {
		lm_warn("metrics.register", "cannot register %s %s: %s", kind_names[kind],
		    name != NULL && strlen(name) <= LM_METRICS_NAME_MAX ? name
		                                                        : "(invalid)",
		    why != NULL ? why : lm_strerror(rv));
		return rv;
	}
	*out = s;
	return LM_OK;
}

lm_counter *
lm_metrics_counter(lm_metrics *m, const char *name, const char *help, const char *labels)
{
	struct series *s;
	if (reg(m, K_COUNTER, name, help, labels, NULL, 0, NULL, NULL, NULL, &s) != LM_OK)
		return NULL;
	return &s->u.c;
}

lm_gauge *
lm_metrics_gauge(lm_metrics *m, const char *name, const char *help, const char *labels)
{
	struct series *s;
	if (reg(m, K_GAUGE, name, help, labels, NULL, 0, NULL, NULL, NULL, &s) != LM_OK)
		return NULL;
	return &s->u.g;
}

lm_histogram *
lm_metrics_histogram(lm_metrics *m, const char *name, const char *help,
    const char *labels, const double *bounds, size_t nbounds)
{
	struct series *s;
	if (reg(m, K_HISTOGRAM, name, help, labels, bounds, nbounds, NULL, NULL, NULL,
	        &s) != LM_OK)
		return NULL;
	return &s->u.h;
}

/* Registers a computed gauge (fn) or counter (cfn), exactly one given. */
static int
reg_computed(lm_metrics *m, enum kind kind, const char *name, const char *help,
    const char *labels, double (*fn)(void *), uint64_t (*cfn)(void *), void *arg)
{
	struct series *s;
	if (fn == NULL && cfn == NULL) {
		lm_warn("metrics.register", "cannot register %s %s: no function",
		    kind_names[kind],
		    name != NULL && strlen(name) <= LM_METRICS_NAME_MAX ? name
		                                                        : "(invalid)");
		return LM_EINVAL;
	}
	return reg(m, kind, name, help, labels, NULL, 0, fn, cfn, arg, &s);
}

int
lm_metrics_gauge_fn(lm_metrics *m, const char *name, const char *help, const char *labels,
    double (*fn)(void *arg), void *arg)
{
	return reg_computed(m, K_GAUGE, name, help, labels, fn, NULL, arg);
}

int
lm_metrics_counter_fn(lm_metrics *m, const char *name, const char *help,
    const char *labels, uint64_t (*fn)(void *arg), void *arg)
{
	return reg_computed(m, K_COUNTER, name, help, labels, NULL, fn, arg);
}

void
lm_counter_add(lm_counter *c, uint64_t n)
{
	if (c != NULL)
		atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t
lm_counter_get(const lm_counter *c)
{
	return c != NULL ? atomic_load_explicit(&c->v, memory_order_relaxed) : 0;
}

void
lm_gauge_set(lm_gauge *g, double v)
{
	if (g != NULL)
		atomic_store_explicit(&g->bits, d2u(v), memory_order_relaxed);
}

void
lm_gauge_add(lm_gauge *g, double d)
{
	if (g != NULL)
		atomic_add_double(&g->bits, d);
}

double
lm_gauge_get(const lm_gauge *g)
{
	return g != NULL ? u2d(atomic_load_explicit(&g->bits, memory_order_relaxed))
	                 : 0.0;
}

void
lm_histogram_observe(lm_histogram *h, double v)
{
	size_t i = 0;

	if (h == NULL || isnan(v))
		return;
	while (i < h->nbounds && v > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&h->sum_bits, v);
}

uint64_t
lm_histogram_count(const lm_histogram *h)
{
	uint64_t n = 0;

	if (h == NULL)
		return 0;
	for (size_t i = 0; i <= h->nbounds; i++)
		n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
	return n;
}

double
lm_histogram_sum(const lm_histogram *h)
{
	return h != NULL ? u2d(atomic_load_explicit(&h->sum_bits, memory_order_relaxed))
	                 : 0.0;
}

/* Growing output buffer for rendering, capped at LM_METRICS_RENDER_MAX. */
struct buf {
	char *p;
	size_t len, cap;
	int err;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->err != LM_OK)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (b->len + n > LM_METRICS_RENDER_MAX) {
			b->err = LM_E2BIG;
			return;
		}
		if (cap > LM_METRICS_RENDER_MAX + 1)
			cap = LM_METRICS_RENDER_MAX + 1;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->err = LM_ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Formats a sample value as Prometheus does: shortest of %.15g / %.17g that
 * reads back exactly, and +Inf, -Inf, NaN. */
static void
fmt_double(char *out, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(out, len, "NaN");
	} else if (isinf(v)) {
		snprintf(out, len, "%s", v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(out, len, "%.15g", v);
		if (strtod(out, NULL) != v)
			snprintf(out, len, "%.17g", v);
	}
}

/* Writes "name<suffix>{labels,extra} " (braces only when there are labels). */
static void
put_series(struct buf *b, const char *name, const char *suffix, const char *labels,
    const char *extra)
{
	buf_puts(b, name);
	buf_puts(b, suffix);
	if (labels[0] != '\0' || extra[0] != '\0') {
		buf_puts(b, "{");
		buf_puts(b, labels);
		if (labels[0] != '\0' && extra[0] != '\0')
			buf_puts(b, ",");
		buf_puts(b, extra);
		buf_puts(b, "}");
	}
	buf_puts(b, " ");
}

static void
put_help(struct buf *b, const char *help)
{
	for (const char *p = help; *p != '\0'; p++) {
		if (*p == '\\')
			buf_puts(b, "\\\\");
		else if (*p == '\n')
			buf_puts(b, "\\n");
		else
			buf_add(b, p, 1);
	}
}

static void
render_histogram(struct buf *b, const struct family *f, const struct series *s)
{
	uint64_t counts[LM_METRICS_MAX_BOUNDS + 1];
	uint64_t cum = 0;
	char num[64], le[80];

	/* One snapshot, so that the buckets, +Inf and _count agree. */
	for (size_t i = 0; i <= f->nbounds; i++)
		counts[i] =
		    atomic_load_explicit(&s->u.h.buckets[i], memory_order_relaxed);
	for (size_t i = 0; i <= f->nbounds; i++) {
		cum += counts[i];
		if (i < f->nbounds) {
			fmt_double(num, sizeof(num), f->bounds[i]);
			snprintf(le, sizeof(le), "le=\"%s\"", num);
		} else {
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		}
		put_series(b, f->name, "_bucket", s->labels, le);
		snprintf(num, sizeof(num), "%" PRIu64 "\n", cum);
		buf_puts(b, num);
	}
	put_series(b, f->name, "_sum", s->labels, "");
	fmt_double(num, sizeof(num), lm_histogram_sum(&s->u.h));
	buf_puts(b, num);
	buf_puts(b, "\n");
	put_series(b, f->name, "_count", s->labels, "");
	snprintf(num, sizeof(num), "%" PRIu64 "\n", cum);
	buf_puts(b, num);
}

/* The value of a computed gauge or counter, read before rendering. */
struct fn_value {
	const struct series *s;
	double v;
	uint64_t c;
};

static bool
computed(const struct series *s)
{
	return s->fn != NULL || s->cfn != NULL;
}

/*
 * Calls every computed gauge and counter without holding the registry
 * mutex (a function may wait on a lock of its own, and registration or
 * another render must not wait behind it). The list of them is copied
 * under the mutex; series never move or go away before lm_metrics_free(),
 * so the copied pointers stay valid. On LM_OK *out (malloc'd, may be NULL
 * when n is 0) holds the values in registry order.
 */
static int
read_computed(lm_metrics *m, struct fn_value **out, size_t *n)
{
	struct fn_value *v = NULL;
	size_t k = 0, cnt = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nfams; i++)
		for (size_t j = 0; j < m->fams[i]->nseries; j++)
			cnt += computed(m->fams[i]->series[j]);
	if (cnt > 0 && (v = malloc(cnt * sizeof(*v))) == NULL) {
		pthread_mutex_unlock(&m->mu);
		return LM_ENOMEM;
	}
	for (size_t i = 0; i < m->nfams && k < cnt; i++)
		for (size_t j = 0; j < m->fams[i]->nseries && k < cnt; j++)
			if (computed(m->fams[i]->series[j]))
				v[k++].s = m->fams[i]->series[j];
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < k; i++) {
		if (v[i].s->fn != NULL)
			v[i].v = v[i].s->fn(v[i].s->arg);
		else
			v[i].c = v[i].s->cfn(v[i].s->arg);
	}
	*out = v;
	*n = k;
	return LM_OK;
}

int
lm_metrics_render(lm_metrics *m, char **out, size_t *len)
{
	struct buf b = {NULL, 0, 0, LM_OK};
	char num[64];
	struct fn_value *fv;
	size_t nfv, k = 0;
	int rv;

	if (m == NULL || out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (len != NULL)
		*len = 0;
	if ((rv = read_computed(m, &fv, &nfv)) != LM_OK)
		return rv;
	buf_add(&b, "", 0); /* an empty registry renders as "" */
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nfams && b.err == LM_OK; i++) {
		const struct family *f = m->fams[i];
		buf_puts(&b, "# HELP ");
		buf_puts(&b, f->name);
		buf_puts(&b, " ");
		put_help(&b, f->help);
		buf_puts(&b, "\n# TYPE ");
		buf_puts(&b, f->name);
		buf_puts(&b, " ");
		buf_puts(&b, kind_names[f->kind]);
		buf_puts(&b, "\n");
		for (size_t j = 0; j < f->nseries; j++) {
			const struct series *s = f->series[j];
			switch (f->kind) {
			case K_COUNTER:
				/* Computed metrics come in the order they were
				 * read; one registered since has no value yet
				 * and waits for the next render. */
				if (s->cfn != NULL && (k >= nfv || fv[k].s != s))
					break;
				put_series(&b, f->name, "", s->labels, "");
				snprintf(num, sizeof(num), "%" PRIu64 "\n",
				    s->cfn != NULL ? fv[k++].c : lm_counter_get(&s->u.c));
				buf_puts(&b, num);
				break;
			case K_GAUGE:
				if (s->fn != NULL && (k >= nfv || fv[k].s != s))
					break;
				put_series(&b, f->name, "", s->labels, "");
				fmt_double(num, sizeof(num),
				    s->fn != NULL ? fv[k++].v : lm_gauge_get(&s->u.g));
				buf_puts(&b, num);
				buf_puts(&b, "\n");
				break;
			case K_HISTOGRAM:
				render_histogram(&b, f, s);
				break;
			}
		}
	}
	pthread_mutex_unlock(&m->mu);
	free(fv);
	if (b.err != LM_OK) {
		free(b.p);
		if (b.err == LM_E2BIG)
			lm_warn("metrics.render", "rendered metrics exceed %u bytes",
			    (unsigned) LM_METRICS_RENDER_MAX);
		return b.err;
	}
	*out = b.p;
	if (len != NULL)
		*len = b.len;
	return LM_OK;
}
