/*
 * metrics.h - in-process metrics registry rendered as Prometheus text.
 *
 * A registry holds metric families (counters, gauges, histograms), each made
 * of series that differ by their label set. Registration and rendering take
 * the registry mutex (never while calling a computed gauge); updates (add, set, observe)
 * are lock-free atomics and may be called from any thread, including nng callbacks.
 *
 * Label cardinality: every distinct label set is a series that lives until
 * the registry is freed. Callers must only use label values from a small,
 * closed set (method names, lm_errname() codes, reason codes of a fixed
 * enum); never ids, free text or anything personal. Values that come from
 * input are escaped with lm_metrics_label_escape() and mapped onto a bounded
 * set first. The registry enforces LM_METRICS_MAX_SERIES as a last resort:
 * registrations past it fail (NULL, logged).
 */
#ifndef LUNAMATCH_METRICS_H
#define LUNAMATCH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_METRICS_NAME_MAX     128  /* longest metric name, without the NUL */
#define LM_METRICS_HELP_MAX     512  /* longest help text, without the NUL */
#define LM_METRICS_LABELS_MAX   1024 /* longest preformatted label set */
#define LM_METRICS_MAX_LABELS   16   /* labels per series */
#define LM_METRICS_MAX_BOUNDS   32   /* histogram buckets, without +Inf */
#define LM_METRICS_MAX_FAMILIES 1024
#define LM_METRICS_MAX_SERIES   8192                /* series over all families */
#define LM_METRICS_RENDER_MAX   (16u * 1024 * 1024) /* largest rendered text */

typedef struct lm_metrics lm_metrics;
typedef struct lm_counter lm_counter;
typedef struct lm_gauge lm_gauge;
typedef struct lm_histogram lm_histogram;

/* Creates an empty registry. Returns LM_OK or LM_ENOMEM. */
int lm_metrics_new(lm_metrics **out);

/* Frees the registry and every metric registered in it; NULL is a no-op.
 * No other thread may use the registry or its metrics any more. */
void lm_metrics_free(lm_metrics *m);

/*
 * Registration. name is the full Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*,
 * at most LM_METRICS_NAME_MAX; lunamatch uses the "lunamatch_" prefix). help
 * is one line of text (NULL = empty); the first registration of a name sets
 * it. labels is NULL/"" or a preformatted label set without braces such as
 * "method=\"MatchJobs\",code=\"ok\"": label names [a-zA-Z_][a-zA-Z0-9_]*
 * (not starting with "__", each at most once), values quoted and escaped as
 * lm_metrics_label_escape() does. Label sets are compared as strings, so
 * callers write the labels of a family in one fixed order.
 *
 * Registering the same name and labels again returns the same object. A name
 * already registered with another type (or, for histograms, other bounds),
 * an invalid name, label set or bound list, or a full registry gives NULL
 * and a log record. The returned object is owned by the registry and valid
 * until lm_metrics_free(). Thread-safe.
 */
lm_counter *lm_metrics_counter(
    lm_metrics *m, const char *name, const char *help, const char *labels);
lm_gauge *lm_metrics_gauge(
    lm_metrics *m, const char *name, const char *help, const char *labels);
/* bounds: finite upper bounds, strictly ascending, 1..LM_METRICS_MAX_BOUNDS of
 * them (copied); the +Inf bucket is implicit. A histogram may not use the
 * label "le". */
lm_histogram *lm_metrics_histogram(lm_metrics *m, const char *name, const char *help,
    const char *labels, const double *bounds, size_t nbounds);

/*
 * A gauge whose value is fn(arg), called during lm_metrics_render() on the
 * rendering thread, without the registry mutex held (so a slow fn delays
 * only its own render, never registration, updates or other renders). fn
 * must be thread-safe (renders may run concurrently, on any thread,
 * including nng callbacks such as an HTTP handler), should be quick and
 * must not block on locks held for long; it may call into this registry.
 * arg is borrowed and must stay valid until lm_metrics_free(). Returns LM_OK, LM_EEXIST
 * if the name and labels are already registered, LM_EINVAL for bad arguments or a type
 * clash, LM_E2BIG when the registry is full, or LM_ENOMEM.
 */
int lm_metrics_gauge_fn(lm_metrics *m, const char *name, const char *help,
    const char *labels, double (*fn)(void *arg), void *arg);

/* A counter whose value is fn(arg), for a count kept elsewhere that never
 * decreases (the index's reads, for one); as lm_metrics_gauge_fn in every
 * other respect. */
int lm_metrics_counter_fn(lm_metrics *m, const char *name, const char *help,
    const char *labels, uint64_t (*fn)(void *arg), void *arg);

/* Updates. A NULL metric is ignored, so a failed registration never crashes
 * the caller. Lock-free; any thread. */
void lm_counter_add(lm_counter *c, uint64_t n);
void lm_gauge_set(lm_gauge *g, double v);
void lm_gauge_add(lm_gauge *g, double d);
/* Adds v to the first bucket whose bound is >= v (or +Inf) and to the sum.
 * NaN is dropped. Latencies are observed in seconds. */
void lm_histogram_observe(lm_histogram *h, double v);

/* Current values; a NULL metric reads as 0. */
uint64_t lm_counter_get(const lm_counter *c);
double lm_gauge_get(const lm_gauge *g);
/* Observations so far (all buckets) and their sum. */
uint64_t lm_histogram_count(const lm_histogram *h);
double lm_histogram_sum(const lm_histogram *h);

/*
 * Renders every metric in the Prometheus text exposition format 0.0.4:
 * families in registration order, "# HELP" and "# TYPE" once per family,
 * then its series; histograms as cumulative name_bucket{...,le="..."} lines
 * ending with le="+Inf", then name_sum and name_count. On LM_OK *out is a
 * NUL-terminated malloc'd buffer the caller frees and *len its length (len
 * may be NULL). Returns LM_EINVAL, LM_ENOMEM or LM_E2BIG (over
 * LM_METRICS_RENDER_MAX). Thread-safe; computed gauges are called before
 * the registry mutex is taken (see lm_metrics_gauge_fn).
 */
int lm_metrics_render(lm_metrics *m, char **out, size_t *len);

/*
 * Escapes a label value for use between the quotes of a label set:
 * backslash, double quote and newline become \\, \" and \n; bytes that are
 * not valid UTF-8 become '?'. Writes at most len bytes including the NUL and
 * never cuts an escape sequence or a UTF-8 character in half; a value that
 * does not fit is truncated. NULL in gives "". len == 0 writes nothing.
 */
void lm_metrics_label_escape(const char *in, char *out, size_t len);

/* Default latency buckets in seconds: 0.0005 to 10. */
extern const double lm_latency_bounds[];
extern const size_t lm_latency_nbounds;

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_METRICS_H */
