/*
 * svctest.c - GET, readiness and /metrics samples of a running service;
 * see svctest.h for the contracts.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "proc.h"
#include "svctest.h"

/* Longest URL built from an address and a path. */
#define URL_MAX 512

int
lmt_http_status(const char *addr, const char *path, char **body, int timeout_ms)
{
	char url[URL_MAX];
	int status = 0;
	char *b = NULL;
	int n = snprintf(url, sizeof(url), "http://%s%s", addr, path);

	if (n <= 0 || (size_t) n >= sizeof(url))
		fail_msg("URL too long: http://%s%s", addr, path);
	if (lmt_http_get(url, &status, &b, NULL, timeout_ms) != LM_OK)
		status = 0;
	if (body != NULL)
		*body = b;
	else
		free(b);
	return status;
}

double
lmt_prom_value(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p != NULL && *p;
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

double
lmt_metric(const char *addr, const char *series)
{
	char *body = NULL;
	double v = -1;
	if (lmt_http_status(addr, "/metrics", &body, LMT_HTTP_MS) == 200)
		v = lmt_prom_value(body, series);
	free(body);
	return v;
}

void
lmt_wait_ready(const char *addr, const char *what, const char *log, int timeout_ms)
{
	int64_t end = lm_clock_ms() + timeout_ms;
	while (lm_clock_ms() < end) {
		if (lmt_http_status(addr, "/readyz", NULL, LMT_HTTP_MS) == 200)
			return;
		lmt_sleep_ms(100);
	}
	fail_msg("%s not ready within %d ms (log: %s)", what, timeout_ms, log);
}

double
lmt_wait_metric(
    const char *addr, const char *series, lmt_cmp cmp, double value, int timeout_ms)
{
	int64_t end = lm_clock_ms() + timeout_ms;
	double v;

	for (;;) {
		v = lmt_metric(addr, series);
		bool ok = cmp == LMT_EQ ? v == value : v >= value;
		if (ok || lm_clock_ms() >= end)
			return v;
		lmt_sleep_ms(100);
	}
}
