/*
 * matchsvc.h - a lunamatch-match service of its own for a test of the CLI's
 * match-side commands: a fresh data directory, a lunamatch-devkafka broker
 * for its events, the service on free loopback ports, and a way to run the
 * `lunamatch` tool against it.
 *
 * Every function fails the running cmocka test on error. A lmt_matchsvc
 * belongs to the thread that started it.
 */
#ifndef LMT_MATCHSVC_H
#define LMT_MATCHSVC_H

#include "kafkatest.h"
#include "proc.h"

/* Longest wait for the service to become ready. */
#define LMT_MATCHSVC_START_MS 30000
/* Longest run of one CLI command. */
#define LMT_MATCHSVC_CLI_MS 60000

typedef struct lmt_matchsvc {
	char *dir;      /* temporary directory: data/, match.log */
	char data[512]; /* the record store directory */
	char log[512];  /* the service's stderr */
	char rpc_url[64];
	char http[64];
	lmt_broker broker;
	lmt_env env;
	lmt_proc *proc;
} lmt_matchsvc;

/* Starts the service on an empty store (tag names the temporary
 * directory) and waits until it is ready. Zero-initialise m first. */
void lmt_matchsvc_start(lmt_matchsvc *m, const char *tag);

/* Stops the service (asserting a clean exit) and the broker, removes the
 * directory and zeroes m. */
void lmt_matchsvc_stop(lmt_matchsvc *m);

/* Prepares the sample records of data/samples/ as ingest would and writes
 * them into the service's store in one transaction (as ingest would, from
 * this process); the service picks them up from the change log. Returns the
 * number of postings and profiles written (either pointer may be NULL). */
void lmt_matchsvc_load_samples(lmt_matchsvc *m, size_t *postings, size_t *profiles);

/* Runs `lunamatch args... --url <service> --data-dir <store>` (args is
 * NULL-terminated, at most 30 entries) to completion; stderr is captured
 * into the result. Free the result with lmt_run_result_free. */
lmt_run_result lmt_matchsvc_cli(const lmt_matchsvc *m, const char *const args[]);

/* lmt_matchsvc_cli with the tool's stdout on /dev/full: asserts that it
 * fails (exit 1) saying that it cannot write to standard output. */
void lmt_matchsvc_cli_unwritten(const lmt_matchsvc *m, const char *const args[]);

#endif /* LMT_MATCHSVC_H */
