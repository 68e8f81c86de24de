/*
 * test_metrics.c - metrics registry: values, concurrency, registration rules,
 * label escaping and the exact Prometheus text rendering.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/metrics.h"

static lm_metrics *
new_registry(void)
{
	lm_metrics *m = NULL;
	assert_int_equal(lm_metrics_new(&m), LM_OK);
	assert_non_null(m);
	return m;
}

static char *
render(lm_metrics *m, size_t *len)
{
	char *text = NULL;
	size_t n = 0;
	assert_int_equal(lm_metrics_render(m, &text, &n), LM_OK);
	assert_non_null(text);
	assert_int_equal(strlen(text), n);
	if (len != NULL)
		*len = n;
	return text;
}

/* Compares text with the expected lines, one by one, and their count. */
static void
assert_lines(const char *text, const char *const *want, size_t nwant)
{
	const char *p = text;
	size_t i = 0;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		char line[512];
		assert_non_null(nl); /* every line ends with \n */
		assert_true((size_t) (nl - p) < sizeof(line));
		memcpy(line, p, (size_t) (nl - p));
		line[nl - p] = '\0';
		assert_true(i < nwant);
		assert_string_equal(line, want[i]);
		i++;
		p = nl + 1;
	}
	assert_int_equal(i, nwant);
}

static void
test_counter_gauge_values(void **state)
{
	(void) state;
	lm_metrics *m = new_registry();
	lm_counter *c = lm_metrics_counter(m, "lunamatch_t_total", "t", NULL);
	lm_gauge *g = lm_metrics_gauge(m, "lunamatch_t_gauge", "g", "");
	assert_non_null(c);
	assert_non_null(g);

	assert_int_equal(lm_counter_get(c), 0);
	lm_counter_add(c, 1);
	lm_counter_add(c, 41);
	assert_int_equal(lm_counter_get(c), 42);
	lm_counter_add(c, UINT64_C(1) << 40);
	assert_true(lm_counter_get(c) == (UINT64_C(1) << 40) + 42);

	assert_true(lm_gauge_get(g) == 0.0);
	lm_gauge_set(g, 2.5);
	assert_true(lm_gauge_get(g) == 2.5);
	lm_gauge_add(g, -1.25);
	assert_true(lm_gauge_get(g) == 1.25);
	lm_gauge_set(g, -7);
	assert_true(lm_gauge_get(g) == -7.0);

	/* NULL metrics (a failed registration) are ignored and read as 0. */
	lm_counter_add(NULL, 1);
	lm_gauge_set(NULL, 1);
	lm_gauge_add(NULL, 1);
	lm_histogram_observe(NULL, 1);
	assert_int_equal(lm_counter_get(NULL), 0);
	assert_true(lm_gauge_get(NULL) == 0.0);
	assert_int_equal(lm_histogram_count(NULL), 0);
	assert_true(lm_histogram_sum(NULL) == 0.0);

	lm_metrics_free(m);
	lm_metrics_free(NULL);
}

static void
test_histogram_values(void **state)
{
	(void) state;
	static const double b[] = {0.25, 0.5, 1};
	lm_metrics *m = new_registry();
	lm_histogram *h = lm_metrics_histogram(m, "lunamatch_t_seconds", "h", NULL, b, 3);
	assert_non_null(h);

	lm_histogram_observe(h, 0.25); /* le is inclusive */
	lm_histogram_observe(h, 0.5);
	lm_histogram_observe(h, 0.75);
	lm_histogram_observe(h, 2);
	lm_histogram_observe(h, NAN); /* dropped */
	assert_int_equal(lm_histogram_count(h), 4);
	assert_true(lm_histogram_sum(h) == 3.5);

	char *text = render(m, NULL);
	static const char *const want[] = {
	    "# HELP lunamatch_t_seconds h",
	    "# TYPE lunamatch_t_seconds histogram",
	    "lunamatch_t_seconds_bucket{le=\"0.25\"} 1",
	    "lunamatch_t_seconds_bucket{le=\"0.5\"} 2",
	    "lunamatch_t_seconds_bucket{le=\"1\"} 3",
	    "lunamatch_t_seconds_bucket{le=\"+Inf\"} 4",
	    "lunamatch_t_seconds_sum 3.5",
	    "lunamatch_t_seconds_count 4",
	};
	assert_lines(text, want, sizeof(want) / sizeof(want[0]));
	free(text);
	lm_metrics_free(m);
}

static double
answer(void *arg)
{
	return *(const double *) arg;
}

static void
test_render_format(void **state)
{
	(void) state;
	static const double b[] = {0.001, 0.1};
	double fnval = 42;
	lm_metrics *m = new_registry();

	lm_counter *ok = lm_metrics_counter(m, "lunamatch_rpc_requests_total",
	    "RPC requests by method and code", "method=\"MatchJobs\",code=\"ok\"");
	lm_counter *bad = lm_metrics_counter(m, "lunamatch_rpc_requests_total",
	    "ignored: the first help wins", "method=\"MatchJobs\",code=\"einval\"");
	lm_gauge *g = lm_metrics_gauge(
	    m, "lunamatch_store_records", "records\\stored\nnow", "kind=\"job\"");
	lm_histogram *h = lm_metrics_histogram(
	    m, "lunamatch_rpc_seconds", "RPC latency", "method=\"MatchJobs\"", b, 2);
	/* A second series of the counter, registered after other families, is
	 * still rendered with its family. */
	lm_counter *plain = lm_metrics_counter(m, "lunamatch_plain_total", "", NULL);
	lm_counter *late = lm_metrics_counter(m, "lunamatch_rpc_requests_total", NULL,
	    "method=\"MatchCandidates\",code=\"ok\"");
	assert_int_equal(lm_metrics_gauge_fn(m, "lunamatch_uptime_seconds", "uptime",
	                     NULL, answer, &fnval),
	    LM_OK);
	assert_non_null(ok);
	assert_non_null(bad);
	assert_non_null(g);
	assert_non_null(h);
	assert_non_null(plain);
	assert_non_null(late);

	lm_counter_add(ok, 7);
	lm_counter_add(bad, 1);
	lm_counter_add(late, 3);
	lm_gauge_set(g, 0.1);
	lm_histogram_observe(h, 0.0009765625); /* 2^-10: sums exactly */
	lm_histogram_observe(h, 0.0625);
	lm_histogram_observe(h, 0.0625);
	lm_histogram_observe(h, 4);

	char *text = render(m, NULL);
	static const char *const want[] = {
	    "# HELP lunamatch_rpc_requests_total RPC requests by method and code",
	    "# TYPE lunamatch_rpc_requests_total counter",
	    "lunamatch_rpc_requests_total{method=\"MatchJobs\",code=\"ok\"} 7",
	    "lunamatch_rpc_requests_total{method=\"MatchJobs\",code=\"einval\"} 1",
	    "lunamatch_rpc_requests_total{method=\"MatchCandidates\",code=\"ok\"} 3",
	    "# HELP lunamatch_store_records records\\\\stored\\nnow",
	    "# TYPE lunamatch_store_records gauge",
	    "lunamatch_store_records{kind=\"job\"} 0.1",
	    "# HELP lunamatch_rpc_seconds RPC latency",
	    "# TYPE lunamatch_rpc_seconds histogram",
	    "lunamatch_rpc_seconds_bucket{method=\"MatchJobs\",le=\"0.001\"} 1",
	    "lunamatch_rpc_seconds_bucket{method=\"MatchJobs\",le=\"0.1\"} 3",
	    "lunamatch_rpc_seconds_bucket{method=\"MatchJobs\",le=\"+Inf\"} 4",
	    "lunamatch_rpc_seconds_sum{method=\"MatchJobs\"} 4.1259765625",
	    "lunamatch_rpc_seconds_count{method=\"MatchJobs\"} 4",
	    "# HELP lunamatch_plain_total ",
	    "# TYPE lunamatch_plain_total counter",
	    "lunamatch_plain_total 0",
	    "# HELP lunamatch_uptime_seconds uptime",
	    "# TYPE lunamatch_uptime_seconds gauge",
	    "lunamatch_uptime_seconds 42",
	};
	assert_lines(text, want, sizeof(want) / sizeof(want[0]));
	free(text);

	/* Computed gauges are read at render time. */
	fnval = 1e21;
	text = render(m, NULL);
	assert_non_null(strstr(text, "\nlunamatch_uptime_seconds 1e+21\n"));
	free(text);
	fnval = INFINITY;
	text = render(m, NULL);
	assert_non_null(strstr(text, "\nlunamatch_uptime_seconds +Inf\n"));
	free(text);
	fnval = NAN;
	text = render(m, NULL);
	assert_non_null(strstr(text, "\nlunamatch_uptime_seconds NaN\n"));
	free(text);

	lm_metrics_free(m);
}

static void
test_render_empty(void **state)
{
	(void) state;
	lm_metrics *m = new_registry();
	size_t len = 99;
	char *text = render(m, &len);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(text);
	assert_int_equal(lm_metrics_render(NULL, &text, &len), LM_EINVAL);
	assert_int_equal(lm_metrics_render(m, NULL, &len), LM_EINVAL);
	lm_metrics_free(m);
}

static void
test_duplicates_and_clashes(void **state)
{
	(void) state;
	static const double b1[] = {1, 2};
	static const double b2[] = {1, 3};
	double v = 1;
	lm_metrics *m = new_registry();

	lm_counter *c1 = lm_metrics_counter(m, "lunamatch_x_total", "x", "a=\"1\"");
	lm_counter *c2 = lm_metrics_counter(m, "lunamatch_x_total", "x", "a=\"1\"");
	lm_counter *c3 = lm_metrics_counter(m, "lunamatch_x_total", "x", "a=\"2\"");
	assert_non_null(c1);
	assert_ptr_equal(c1, c2);
	assert_ptr_not_equal(c1, c3);
	lm_counter_add(c2, 5);
	assert_int_equal(lm_counter_get(c1), 5);

	/* Same name, other type: NULL, whatever the labels. */
	assert_null(lm_metrics_gauge(m, "lunamatch_x_total", "x", "a=\"1\""));
	assert_null(lm_metrics_gauge(m, "lunamatch_x_total", "x", NULL));
	assert_null(lm_metrics_histogram(m, "lunamatch_x_total", "x", NULL, b1, 2));
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_x_total", "x", NULL, answer, &v),
	    LM_EINVAL);

	/* Histograms: same bounds give the same object, other bounds NULL. */
	lm_histogram *h1 = lm_metrics_histogram(m, "lunamatch_h", "h", NULL, b1, 2);
	assert_non_null(h1);
	assert_ptr_equal(lm_metrics_histogram(m, "lunamatch_h", "h", NULL, b1, 2), h1);
	assert_null(lm_metrics_histogram(m, "lunamatch_h", "h", "k=\"v\"", b2, 2));
	assert_null(lm_metrics_histogram(m, "lunamatch_h", "h", NULL, b1, 1));
	/* Names a histogram renders are taken, in both directions. */
	assert_null(lm_metrics_counter(m, "lunamatch_h_count", "", NULL));
	assert_null(lm_metrics_gauge(m, "lunamatch_h_sum", "", NULL));
	assert_null(lm_metrics_counter(m, "lunamatch_h_bucket", "", NULL));
	assert_non_null(lm_metrics_counter(m, "lunamatch_h_total", "", NULL));
	assert_non_null(lm_metrics_counter(m, "lunamatch_y_count", "", NULL));
	assert_null(lm_metrics_histogram(m, "lunamatch_y", "", NULL, b1, 2));

	/* Computed gauges: registered once; a plain gauge may not take the slot. */
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_g", "g", NULL, answer, &v), LM_OK);
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_g", "g", NULL, answer, &v), LM_EEXIST);
	assert_null(lm_metrics_gauge(m, "lunamatch_g", "g", NULL));
	lm_gauge *g2 = lm_metrics_gauge(m, "lunamatch_g", "g", "k=\"v\"");
	assert_non_null(g2);
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_g", "g", "k=\"v\"", answer, &v), LM_EEXIST);
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_g2", "g", NULL, NULL, NULL), LM_EINVAL);
	assert_int_equal(
	    lm_metrics_gauge_fn(NULL, "lunamatch_g3", "g", NULL, answer, &v), LM_EINVAL);

	/* Nothing failed left a trace in the output. */
	char *text = render(m, NULL);
	assert_null(strstr(text, "# TYPE lunamatch_h_count"));
	assert_null(strstr(text, "# TYPE lunamatch_h_sum"));
	assert_null(strstr(text, "lunamatch_y_bucket"));
	assert_non_null(strstr(text, "\nlunamatch_h_count 0\n"));
	assert_non_null(strstr(text, "\nlunamatch_x_total{a=\"1\"} 5\n"));
	assert_non_null(strstr(text, "\nlunamatch_g 1\nlunamatch_g{k=\"v\"} 0\n"));
	free(text);
	lm_metrics_free(m);
}

static void
test_invalid_registrations(void **state)
{
	(void) state;
	static const double ok_b[] = {0.1, 1};
	lm_metrics *m = new_registry();
	char longname[LM_METRICS_NAME_MAX + 2];

	static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "a.b", "é"};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
		assert_null(lm_metrics_counter(m, bad_names[i], "", NULL));
	assert_null(lm_metrics_counter(m, NULL, "", NULL));
	assert_null(lm_metrics_counter(NULL, "lunamatch_ok", "", NULL));
	assert_non_null(lm_metrics_counter(m, "_a:b_C9", "", NULL));
	assert_non_null(lm_metrics_counter(m, ":x", "", NULL));

	memset(longname, 'a', sizeof(longname));
	longname[LM_METRICS_NAME_MAX] = '\0';
	assert_non_null(lm_metrics_counter(m, longname, "", NULL));
	longname[LM_METRICS_NAME_MAX] = 'a';
	longname[LM_METRICS_NAME_MAX + 1] = '\0';
	assert_null(lm_metrics_counter(m, longname, "", NULL));

	char longhelp[LM_METRICS_HELP_MAX + 2];
	memset(longhelp, 'h', sizeof(longhelp));
	longhelp[LM_METRICS_HELP_MAX + 1] = '\0';
	assert_null(lm_metrics_counter(m, "lunamatch_help", longhelp, NULL));

	static const char *const bad_labels[] = {
	    "a",               /* no value */
	    "a=b",             /* unquoted */
	    "a=\"b",           /* unterminated */
	    "a=\"b\"x",        /* junk after the value */
	    "a=\"b\",",        /* trailing comma */
	    ",a=\"b\"",        /* leading comma */
	    "a =\"b\"",        /* space */
	    "1a=\"b\"",        /* bad name */
	    "__a=\"b\"",       /* reserved */
	    "a=\"1\",a=\"2\"", /* duplicate */
	    "a=\"\\q\"",       /* bad escape */
	    "a=\"x\ny\"",      /* raw newline */
	    "a=\"\xff\"",      /* not UTF-8 */
	    "a=\"\xc0\xaf\"",  /* overlong */
	    "{a=\"b\"}",       /* braces are added by the registry */
	};
	for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
		assert_null(
		    lm_metrics_counter(m, "lunamatch_l_total", "", bad_labels[i]));
	assert_non_null(lm_metrics_counter(
	    m, "lunamatch_l_total", "", "a=\"\",b_2=\"x\\\\y\\\"z\\n\",c=\"h\xc3\xa9\""));

	/* Too many labels; exactly LM_METRICS_MAX_LABELS is fine. */
	char labels[LM_METRICS_LABELS_MAX + 64];
	size_t n = 0;
	for (int i = 0; i < LM_METRICS_MAX_LABELS; i++)
		n += (size_t) snprintf(
		    labels + n, sizeof(labels) - n, "%sl%d=\"v\"", i ? "," : "", i);
	assert_non_null(lm_metrics_counter(m, "lunamatch_many_total", "", labels));
	snprintf(labels + n, sizeof(labels) - n, ",extra=\"v\"");
	assert_null(lm_metrics_counter(m, "lunamatch_many_total", "", labels));
	/* Too long a label set. */
	memcpy(labels, "a=\"", 3);
	memset(labels + 3, 'v', LM_METRICS_LABELS_MAX);
	labels[LM_METRICS_LABELS_MAX + 3] = '"';
	labels[LM_METRICS_LABELS_MAX + 4] = '\0';
	assert_null(lm_metrics_counter(m, "lunamatch_long_total", "", labels));

	/* Histograms: "le" is reserved, bounds must be sane. */
	assert_null(lm_metrics_histogram(m, "lunamatch_hh", "", "le=\"1\"", ok_b, 2));
	assert_non_null(lm_metrics_counter(m, "lunamatch_le_total", "", "le=\"1\""));
	static const double desc[] = {1, 0.5};
	static const double same[] = {1, 1};
	static const double nan_b[] = {0.1, NAN};
	static const double inf_b[] = {0.1, INFINITY};
	double many[LM_METRICS_MAX_BOUNDS + 1];
	for (size_t i = 0; i <= LM_METRICS_MAX_BOUNDS; i++)
		many[i] = (double) i;
	assert_null(lm_metrics_histogram(m, "lunamatch_hh", "", NULL, NULL, 2));
	assert_null(lm_metrics_histogram(m, "lunamatch_hh", "", NULL, ok_b, 0));
	assert_null(lm_metrics_histogram(m, "lunamatch_hh", "", NULL, desc, 2));
	assert_null(lm_metrics_histogram(m, "lunamatch_hh", "", NULL, same, 2));
	assert_null(lm_metrics_histogram(m, "lunamatch_hh", "", NULL, nan_b, 2));
	assert_null(lm_metrics_histogram(m, "lunamatch_hh", "", NULL, inf_b, 2));
	assert_null(lm_metrics_histogram(
	    m, "lunamatch_hh", "", NULL, many, LM_METRICS_MAX_BOUNDS + 1));
	lm_histogram *h = lm_metrics_histogram(
	    m, "lunamatch_hh", "", NULL, many, LM_METRICS_MAX_BOUNDS);
	assert_non_null(h);
	lm_histogram_observe(h, 1000);
	assert_int_equal(lm_histogram_count(h), 1);

	lm_metrics_free(m);
}

static void
test_label_escape(void **state)
{
	(void) state;
	char out[64];

	lm_metrics_label_escape("a\\b\"c\nd", out, sizeof(out));
	assert_string_equal(out, "a\\\\b\\\"c\\nd");
	lm_metrics_label_escape(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	lm_metrics_label_escape("plain_code-1 ok", out, sizeof(out));
	assert_string_equal(out, "plain_code-1 ok");
	/* Valid UTF-8 is kept; invalid bytes become '?'. */
	lm_metrics_label_escape("caf\xc3\xa9 \xff\xfe x\xe2\x82", out, sizeof(out));
	assert_string_equal(out, "caf\xc3\xa9 ?? x??");
	lm_metrics_label_escape("\xed\xa0\x80", out, sizeof(out)); /* a surrogate */
	assert_string_equal(out, "???");

	/* Truncation never splits an escape or a character. */
	lm_metrics_label_escape("ab\"cd", out, 4);
	assert_string_equal(out, "ab");
	lm_metrics_label_escape("ab\"cd", out, 5);
	assert_string_equal(out, "ab\\\"");
	lm_metrics_label_escape("a\xc3\xa9", out, 3);
	assert_string_equal(out, "a");
	lm_metrics_label_escape("abc", out, 1);
	assert_string_equal(out, "");
	out[0] = 'z';
	lm_metrics_label_escape("abc", out, 0);
	assert_int_equal(out[0], 'z');
	lm_metrics_label_escape("abc", NULL, 8);

	/* Escaped input is accepted as a label value and rendered verbatim. */
	char labels[128];
	lm_metrics_label_escape("bad \"x\"\n\\", out, sizeof(out));
	snprintf(labels, sizeof(labels), "reason=\"%s\"", out);
	lm_metrics *m = new_registry();
	lm_counter *c = lm_metrics_counter(m, "lunamatch_rejects_total", "r", labels);
	assert_non_null(c);
	lm_counter_add(c, 2);
	char *text = render(m, NULL);
	assert_non_null(strstr(
	    text, "\nlunamatch_rejects_total{reason=\"bad \\\"x\\\"\\n\\\\\"} 2\n"));
	free(text);
	lm_metrics_free(m);
}

static void
test_latency_bounds(void **state)
{
	(void) state;
	assert_int_equal(lm_latency_nbounds, 14);
	assert_true(lm_latency_bounds[0] == 0.0005);
	assert_true(lm_latency_bounds[lm_latency_nbounds - 1] == 10);
	for (size_t i = 1; i < lm_latency_nbounds; i++)
		assert_true(lm_latency_bounds[i] > lm_latency_bounds[i - 1]);
	lm_metrics *m = new_registry();
	lm_histogram *h = lm_metrics_histogram(
	    m, "lunamatch_lat_seconds", "", NULL, lm_latency_bounds, lm_latency_nbounds);
	assert_non_null(h);
	lm_histogram_observe(h, 0.003);
	char *text = render(m, NULL);
	assert_non_null(strstr(text, "lunamatch_lat_seconds_bucket{le=\"0.0025\"} 0\n"));
	assert_non_null(strstr(text, "lunamatch_lat_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(text, "lunamatch_lat_seconds_bucket{le=\"10\"} 1\n"));
	free(text);
	lm_metrics_free(m);
}

static void
test_series_limit(void **state)
{
	(void) state;
	lm_metrics *m = new_registry();
	char labels[32];

	for (int i = 0; i < LM_METRICS_MAX_SERIES; i++) {
		snprintf(labels, sizeof(labels), "i=\"%d\"", i);
		assert_non_null(
		    lm_metrics_counter(m, "lunamatch_many_total", "", labels));
	}
	assert_null(lm_metrics_counter(m, "lunamatch_many_total", "", "i=\"new\""));
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_other", "", NULL, answer, NULL), LM_E2BIG);
	/* Existing series are still found. */
	assert_non_null(lm_metrics_counter(m, "lunamatch_many_total", "", "i=\"7\""));
	lm_metrics_free(m);
}

#define NTHREADS 8
#define NITER    20000

struct worker {
	lm_metrics *m;
	lm_counter *c; /* as registered by the main thread */
	int same;      /* this thread's registration returned the same objects */
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	lm_counter *c = lm_metrics_counter(w->m, "lunamatch_conc_total", "c", "k=\"v\"");
	lm_gauge *g = lm_metrics_gauge(w->m, "lunamatch_conc_gauge", "g", NULL);
	lm_histogram *h = lm_metrics_histogram(w->m, "lunamatch_conc_seconds", "h", NULL,
	    lm_latency_bounds, lm_latency_nbounds);
	w->same = c == w->c;
	for (int i = 0; i < NITER; i++) {
		lm_counter_add(c, 1);
		lm_gauge_add(g, 0.5);
		lm_histogram_observe(h, (i % 2) ? 0.25 : 20.0);
		if (i % 5000 == 0) {
			char *text = NULL;
			if (lm_metrics_render(w->m, &text, NULL) == LM_OK)
				free(text);
		}
	}
	return NULL;
}

static void
test_concurrent_updates(void **state)
{
	(void) state;
	lm_metrics *m = new_registry();
	pthread_t th[NTHREADS];
	struct worker w[NTHREADS];
	lm_counter *c = lm_metrics_counter(m, "lunamatch_conc_total", "c", "k=\"v\"");
	assert_non_null(c);

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){m, c, 0};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].same, 1);
	}
	lm_gauge *g = lm_metrics_gauge(m, "lunamatch_conc_gauge", "g", NULL);
	lm_histogram *h = lm_metrics_histogram(m, "lunamatch_conc_seconds", "h", NULL,
	    lm_latency_bounds, lm_latency_nbounds);
	const uint64_t total = (uint64_t) NTHREADS * NITER;
	assert_true(lm_counter_get(c) == total);
	assert_true(lm_gauge_get(g) == 0.5 * (double) total);
	assert_true(lm_histogram_count(h) == total);
	/* Halves at 0.25 and at 20: exact in binary floating point. */
	assert_true(lm_histogram_sum(h) == (double) total / 2 * 20.25);

	char want[128];
	char *text = render(m, NULL);
	snprintf(want, sizeof(want), "\nlunamatch_conc_total{k=\"v\"} %llu\n",
	    (unsigned long long) total);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want),
	    "\nlunamatch_conc_seconds_bucket{le=\"0.25\"} %llu\n",
	    (unsigned long long) total / 2);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "\nlunamatch_conc_seconds_bucket{le=\"10\"} %llu\n",
	    (unsigned long long) total / 2);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want),
	    "\nlunamatch_conc_seconds_bucket{le=\"+Inf\"} %llu\n",
	    (unsigned long long) total);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "\nlunamatch_conc_seconds_count %llu\n",
	    (unsigned long long) total);
	assert_non_null(strstr(text, want));
	free(text);
	lm_metrics_free(m);
}

/*
 * A computed gauge that waits on a lock of its caller's (as the match
 * service's index gauges wait for its read lock) must hold up only its own
 * render: registration, updates and a render on another thread go on, and
 * a gauge may itself register metrics.
 */
static pthread_mutex_t g_gate = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_in_slow, g_slow_calls;

static double
slow_gauge(void *arg)
{
	(void) arg;
	/* The first call waits for the gate; later calls are quick. */
	if (atomic_fetch_add(&g_slow_calls, 1) == 0) {
		atomic_store(&g_in_slow, 1);
		pthread_mutex_lock(&g_gate);
		pthread_mutex_unlock(&g_gate);
	}
	return 7;
}

static double
registering_gauge(void *arg)
{
	/* Calls back into the registry from a gauge function. */
	lm_counter *c = lm_metrics_counter(arg, "lunamatch_from_gauge_total", "x", NULL);
	return c != NULL ? 1 : 0;
}

struct render_job {
	lm_metrics *m;
	char *text;
	atomic_int done;
};

static void *
render_main(void *arg)
{
	struct render_job *j = arg;
	assert_int_equal(lm_metrics_render(j->m, &j->text, NULL), LM_OK);
	atomic_store(&j->done, 1);
	return NULL;
}

static void *
register_main(void *arg)
{
	struct render_job *j = arg;
	lm_counter *c = lm_metrics_counter(j->m, "lunamatch_late_total", "late", NULL);
	lm_counter_add(c, 3);
	atomic_store(&j->done, 1);
	return NULL;
}

/* Waits up to 3 s for *flag. */
static bool
wait_flag(atomic_int *flag)
{
	for (int i = 0; i < 3000 && !atomic_load(flag); i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return atomic_load(flag) != 0;
}

static void
test_slow_gauge_does_not_block_registry(void **state)
{
	(void) state;
	lm_metrics *m = new_registry();
	pthread_t slow, other, reg;
	struct render_job js = {m, NULL, 0}, jo = {m, NULL, 0}, jr = {m, NULL, 0};

	atomic_store(&g_in_slow, 0);
	atomic_store(&g_slow_calls, 0);
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_slow", "slow", NULL, slow_gauge, NULL),
	    LM_OK);
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_reg", "reg", NULL, registering_gauge, m),
	    LM_OK);
	pthread_mutex_lock(&g_gate);
	assert_int_equal(pthread_create(&slow, NULL, render_main, &js), 0);
	assert_true(wait_flag(&g_in_slow));
	/* The first render now waits inside slow_gauge. */
	assert_int_equal(pthread_create(&reg, NULL, register_main, &jr), 0);
	bool reg_done = wait_flag(&jr.done);
	assert_int_equal(pthread_create(&other, NULL, render_main, &jo), 0);
	bool other_done = wait_flag(&jo.done);
	bool slow_done = atomic_load(&js.done) != 0;
	pthread_mutex_unlock(&g_gate); /* never leave the threads stuck */
	pthread_join(slow, NULL);
	pthread_join(reg, NULL);
	pthread_join(other, NULL);
	assert_true(reg_done);
	assert_true(other_done);
	assert_false(slow_done);
	assert_non_null(strstr(jo.text, "\nlunamatch_slow 7\n"));
	assert_non_null(strstr(jo.text, "\nlunamatch_late_total 3\n"));
	assert_non_null(strstr(js.text, "\nlunamatch_reg 1\n"));
	/* Registered by the gauge during the first render: there next time. */
	char *text = render(m, NULL);
	assert_non_null(strstr(text, "\nlunamatch_from_gauge_total 0\n"));
	free(text);
	free(js.text);
	free(jo.text);
	lm_metrics_free(m);
}

/* A computed gauge registered while a render reads the others is skipped
 * by that render and shown by the next. */
static void
test_gauge_fn_order(void **state)
{
	(void) state;
	lm_metrics *m = new_registry();
	double v = 2;
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_a", "a", "k=\"1\"", answer, &v), LM_OK);
	assert_non_null(lm_metrics_gauge(m, "lunamatch_a", "a", "k=\"2\""));
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_a", "a", "k=\"3\"", answer, &v), LM_OK);
	char *text = render(m, NULL);
	assert_non_null(strstr(text, "lunamatch_a{k=\"1\"} 2\nlunamatch_a{k=\"2\"} 0\n"
	                             "lunamatch_a{k=\"3\"} 2\n"));
	free(text);
	lm_metrics_free(m);
}

static uint64_t
count_of(void *arg)
{
	return *(const uint64_t *) arg;
}

/* Computed counters: rendered as counters with the function's value at each
 * render, in their family's order among computed gauges and plain series;
 * registered once, and no other type takes their name. */
static void
test_counter_fn(void **state)
{
	(void) state;
	lm_metrics *m = new_registry();
	uint64_t n = UINT64_C(18446744073709551615), k = 7;
	double v = 2;

	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_g", "g", NULL, answer, &v), LM_OK);
	assert_int_equal(lm_metrics_counter_fn(m, "lunamatch_reads_total", "reads",
	                     "side=\"jobs\"", count_of, &n),
	    LM_OK);
	assert_non_null(lm_metrics_counter(
	    m, "lunamatch_reads_total", "reads", "side=\"candidates\""));
	assert_int_equal(lm_metrics_counter_fn(m, "lunamatch_reads_total", "reads",
	                     "side=\"x\"", count_of, &k),
	    LM_OK);
	assert_int_equal(lm_metrics_counter_fn(m, "lunamatch_reads_total", "reads",
	                     "side=\"jobs\"", count_of, &n),
	    LM_EEXIST);
	assert_null(lm_metrics_counter(m, "lunamatch_reads_total", "", "side=\"jobs\""));
	assert_int_equal(
	    lm_metrics_gauge_fn(m, "lunamatch_reads_total", "", NULL, answer, &v),
	    LM_EINVAL);
	assert_int_equal(
	    lm_metrics_counter_fn(m, "lunamatch_g", "", "k=\"1\"", count_of, &n),
	    LM_EINVAL);
	assert_int_equal(
	    lm_metrics_counter_fn(m, "lunamatch_c2_total", "", NULL, NULL, NULL),
	    LM_EINVAL);

	char *text = render(m, NULL);
	static const char *const want[] = {
	    "# HELP lunamatch_g g",
	    "# TYPE lunamatch_g gauge",
	    "lunamatch_g 2",
	    "# HELP lunamatch_reads_total reads",
	    "# TYPE lunamatch_reads_total counter",
	    "lunamatch_reads_total{side=\"jobs\"} 18446744073709551615",
	    "lunamatch_reads_total{side=\"candidates\"} 0",
	    "lunamatch_reads_total{side=\"x\"} 7",
	};
	assert_lines(text, want, sizeof(want) / sizeof(want[0]));
	free(text);
	n = 12;
	k = 9;
	v = 3;
	text = render(m, NULL);
	assert_non_null(strstr(text, "\nlunamatch_g 3\n"));
	assert_non_null(strstr(text, "\nlunamatch_reads_total{side=\"jobs\"} 12\n"));
	assert_non_null(strstr(text, "\nlunamatch_reads_total{side=\"x\"} 9\n"));
	free(text);
	lm_metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counter_gauge_values),
	    cmocka_unit_test(test_histogram_values),
	    cmocka_unit_test(test_render_format),
	    cmocka_unit_test(test_render_empty),
	    cmocka_unit_test(test_duplicates_and_clashes),
	    cmocka_unit_test(test_invalid_registrations),
	    cmocka_unit_test(test_label_escape),
	    cmocka_unit_test(test_latency_bounds),
	    cmocka_unit_test(test_series_limit),
	    cmocka_unit_test(test_concurrent_updates),
	    cmocka_unit_test(test_slow_gauge_does_not_block_registry),
	    cmocka_unit_test(test_gauge_fn_order),
	    cmocka_unit_test(test_counter_fn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
