/*
 * svctest.h - the HTTP side of a running service, as the integration tests
 * see it: GET on its address, the /readyz probe, and the samples of its
 * Prometheus /metrics text.
 *
 * addr is the service's LUNAMATCH_HTTP_ADDR ("127.0.0.1:port"). Every wait
 * is bounded by the timeout given; the waits fail the running cmocka test
 * when it passes. May be called from any thread.
 */
#ifndef LMT_SVCTEST_H
#define LMT_SVCTEST_H

#include "proc.h"

/* Adds to e what a lunamatch-match without a broker needs: the data files
 * of the source tree (taxonomy, rates, model), brokers on a free port
 * where nothing listens, events and the decision log off, 2 workers. The
 * data dir and addresses are the caller's. */
void lmt_env_match_offline(lmt_env *e);

/* Timeout of one GET made by lmt_metric and the waits below. */
#define LMT_HTTP_MS 3000

/* GET http://addr path, waiting at most timeout_ms. Returns the HTTP status,
 * or 0 when no answer came (refused, timed out, over LMT_HTTP_BODY_MAX).
 * With body not NULL, *body receives the malloc'd body (the caller frees
 * it; NULL with status 0). */
int lmt_http_status(const char *addr, const char *path, char **body, int timeout_ms);

/* The value of the sample named exactly `series` (name and labels as
 * printed, e.g. "x_total{kind=\"posting\"}") in Prometheus text, or -1
 * when there is none. */
double lmt_prom_value(const char *text, const char *series);

/* The value of series on addr's /metrics, or -1 when the service did not
 * answer 200 or has no such sample. */
double lmt_metric(const char *addr, const char *series);

/*
 * Polls addr's /readyz every 100 ms until it answers 200. Fails the test,
 * printing the last lines of log, when proc (may be NULL) exits first or
 * after timeout_ms ("<what> not ready within <ms> ms").
 */
void lmt_wait_ready(
    lmt_proc *proc, const char *addr, const char *what, const char *log, int timeout_ms);

/* How lmt_wait_metric compares the metric with its value. */
typedef enum lmt_cmp {
	LMT_EQ, /* equal */
	LMT_GE, /* greater or equal */
} lmt_cmp;

/* Polls series on addr every 100 ms until `metric cmp value` holds or
 * timeout_ms passed. Returns the last value read (-1 if none): the caller
 * asserts on it. */
double lmt_wait_metric(
    const char *addr, const char *series, lmt_cmp cmp, double value, int timeout_ms);

#endif /* LMT_SVCTEST_H */
