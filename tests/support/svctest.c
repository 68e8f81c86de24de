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

/* How much of a service's log a failed wait prints. */
#define LOG_TAIL_BYTES 4096

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

/* Prints the last LOG_TAIL_BYTES of the file at path to stderr, from the
 * first line that starts inside them. */
static void
print_log_tail(const char *path)
{
	char buf[LOG_TAIL_BYTES + 1];
	FILE *f = path != NULL ? fopen(path, "r") : NULL;
	size_t n;
	long size;

	if (f == NULL)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > LOG_TAIL_BYTES)
		fseek(f, size - LOG_TAIL_BYTES, SEEK_SET);
	else
		rewind(f);
	n = fread(buf, 1, LOG_TAIL_BYTES, f);
	fclose(f);
	buf[n] = '\0';
	const char *start = buf;
	const char *nl = strchr(buf, '\n');
	if (n == LOG_TAIL_BYTES && nl != NULL)
		start = nl + 1;
	fprintf(stderr, "---- last lines of %s ----\n%s---- end of %s ----\n", path,
	    start, path);
}

void
lmt_wait_ready(
    lmt_proc *proc, const char *addr, const char *what, const char *log, int timeout_ms)
{
	int64_t end = lm_clock_ms() + timeout_ms;
	int status;

	while (lm_clock_ms() < end) {
		if (lmt_http_status(addr, "/readyz", NULL, LMT_HTTP_MS) == 200)
			return;
		if (proc != NULL && lmt_proc_wait(proc, 0, &status) == LM_OK) {
			print_log_tail(log);
			fail_msg("%s exited with status %d before it was ready (log: %s)",
			    what, status, log);
		}
		lmt_sleep_ms(100);
	}
	print_log_tail(log);
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

void
lmt_env_match_offline(lmt_env *e)
{
	lmt_env_add(e, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(e, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(e, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(e, "LUNAMATCH_BROKERS=127.0.0.1:%d", lmt_free_port());
	lmt_env_add(e, "LUNAMATCH_EVENT_TOP_N=0");
	lmt_env_add(e, "LUNAMATCH_DECISION_LOG=0");
	lmt_env_add(e, "LUNAMATCH_WORKERS=2");
}
