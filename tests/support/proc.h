/*
 * proc.h - child processes, ports and HTTP for the integration tests.
 *
 * Integration tests run the real binaries (lunamatch-devkafka, the services,
 * kcat) as child processes: start one with extra environment, read its stdout
 * line by line with a deadline, signal it, wait for its exit with a deadline,
 * and always kill and reap it at the end. Every wait here is bounded in time.
 *
 * The primitives return LM_OK or an lm_err value (lunamatch/error.h); the
 * helpers of the last part (a program run to completion, a service stopped,
 * a free port, a child's environment) assert with cmocka instead and fail
 * the running test. A lmt_proc belongs to the thread that uses it; it is not
 * thread-safe.
 */
#ifndef LMT_PROC_H
#define LMT_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Most bytes of the child's stdout buffered while looking for a newline; a
 * longer line is returned truncated (see lmt_proc_readline). */
#define LMT_PROC_LINE_MAX 65536
/* Largest HTTP response body that lmt_http_get returns. */
#define LMT_HTTP_BODY_MAX (16u << 20)

typedef struct lmt_proc lmt_proc;

/*
 * Starts argv[0] (searched in PATH when it has no '/') with arguments argv
 * (NULL-terminated) and the test's environment plus env (NULL-terminated
 * "NAME=value" strings that add or replace variables; env may be NULL).
 * stdin is /dev/null, stdout is a pipe read by lmt_proc_readline, stderr goes
 * to stderr_path (truncated; NULL: the test's own stderr). The child runs
 * in its own process group and gets SIGKILL if the test process dies first.
 *
 * Returns LM_OK and the new process in *out (free with lmt_proc_free);
 * LM_ENOENT if the program is not found or not executable; LM_EINVAL for an
 * empty argv or a malformed env entry; an errno-derived lm_err otherwise.
 */
int lmt_proc_start_ex(const char *const argv[], const char *const env[],
    const char *stderr_path, lmt_proc **out);

/* lmt_proc_start_ex with stderr forwarded to the test's stderr. */
int lmt_proc_start(const char *const argv[], const char *const env[], lmt_proc **out);

/* The child's process id. */
pid_t lmt_proc_pid(const lmt_proc *p);

/*
 * Reads the next line of the child's stdout into buf (without the newline,
 * NUL-terminated), waiting at most timeout_ms. A final line without a
 * newline is returned at end of file. Returns LM_OK; LM_E2BIG when the line
 * did not fit in len - 1 bytes (or exceeded LMT_PROC_LINE_MAX): buf holds its
 * start and the rest of the line is discarded; LM_ETIMEDOUT; LM_ECLOSED at
 * end of file; LM_EINVAL for len == 0.
 */
int lmt_proc_readline(lmt_proc *p, char *buf, size_t len, int timeout_ms);

/* Sends sig to the child. Returns LM_OK, or LM_ECLOSED if it was reaped. */
int lmt_proc_signal(lmt_proc *p, int sig);

/*
 * Waits at most timeout_ms for the child to exit and reaps it. *status
 * receives its exit code, or 128 + the signal number if a signal ended it
 * (the shell's convention). Returns LM_OK, or LM_ETIMEDOUT with the child
 * still running. Once reaped, later calls return the same status at once.
 */
int lmt_proc_wait(lmt_proc *p, int timeout_ms, int *status);

/* The child's own peak resident memory in kilobytes (its ru_maxrss, not
 * that of other children), once lmt_proc_wait has reaped it; -1 before. */
long lmt_proc_maxrss_kb(const lmt_proc *p);

/* If the child was not reaped yet: kills (SIGKILL) its process group and
 * reaps it. Then closes the pipe and frees p. NULL is ignored. */
void lmt_proc_free(lmt_proc *p);

/* Waits until a TCP connection to host:port (numeric address) succeeds,
 * for at most timeout_ms. Returns LM_OK, LM_ETIMEDOUT or LM_EINVAL. */
int lmt_wait_tcp(const char *host, int port, int timeout_ms);

/*
 * Performs GET url (http:// only) with nng's HTTP client, waiting at most
 * timeout_ms. On LM_OK, *status is the HTTP status and *body a malloc'd,
 * NUL-terminated copy of the body (the caller frees it) of *len bytes
 * (len may be NULL). Returns LM_EINVAL for a bad URL, LM_ETIMEDOUT,
 * LM_E2BIG for a body above LMT_HTTP_BODY_MAX, LM_ENNG for other transport
 * errors, LM_ENOMEM.
 */
int lmt_http_get(const char *url, int *status, char **body, size_t *len, int timeout_ms);

/* ---- asserting helpers ---------------------------------------------------- */

/* Most bytes of stdout that lmt_run collects. */
#define LMT_RUN_OUT_MAX (4u << 20)

/* What a program run to completion printed, and how it ended. */
typedef struct lmt_run_result {
	int status;     /* as lmt_proc_wait gives it */
	char *out;      /* stdout, NUL-terminated; every line ends in '\n' */
	char *err;      /* stderr, NUL-terminated; NULL when not captured */
	long maxrss_kb; /* the program's peak resident memory (lmt_proc_maxrss_kb) */
} lmt_run_result;

/*
 * Runs argv with env (as lmt_proc_start_ex) to completion: collects stdout
 * line by line (each read waits at most timeout_ms; more than
 * LMT_RUN_OUT_MAX bytes fail the test), waits at most timeout_ms for the
 * exit, and, when stderr_path is not NULL, sends stderr there and reads it
 * back into err. Fails the test if the program does not start, a read
 * fails or times out, or it does not exit in time. Free the result with
 * lmt_run_result_free.
 */
lmt_run_result lmt_run(const char *const argv[], const char *const env[],
    const char *stderr_path, int timeout_ms);

/* Frees out and err and zeroes r. */
void lmt_run_result_free(lmt_run_result *r);

/* Most arguments lmt_run_cli passes. */
#define LMT_RUN_CLI_ARGS 30

/*
 * lmt_run of `lunamatch [cmd] args... [opt val]` (the tool in
 * LUNAMATCH_BIN_DIR; cmd and opt may be NULL; args NULL-terminated), with
 * stderr through stderr_path. More than LMT_RUN_CLI_ARGS arguments before
 * opt fail the test.
 */
lmt_run_result lmt_run_cli(const char *cmd, const char *const args[], const char *opt,
    const char *val, const char *stderr_path, int timeout_ms);

/* Most arguments lmt_expect_unwritten passes. */
#define LMT_UNWRITTEN_ARGS 40

/*
 * Runs argv (argv[0] a path; at most LMT_UNWRITTEN_ARGS entries) with env
 * and its stdout on /dev/full, where every write fails, and asserts that
 * it exits with status 1 saying on stderr (written to stderr_path) that it
 * cannot write to standard output.
 */
void lmt_expect_unwritten(const char *const argv[], const char *const env[],
    const char *stderr_path, int timeout_ms);

/* Sends SIGTERM to *p, asserts that it exits with status 0 within
 * timeout_ms, frees it and sets *p to NULL. */
void lmt_proc_stop(lmt_proc **p, int timeout_ms);

/* A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's
 * ephemeral range (so that no outgoing connection or port-0 listener can
 * take it before the service binds it); never the same port twice in one
 * process. Fails the test when none is free. */
int lmt_free_port(void);

/* Most variables an lmt_env holds. */
#define LMT_ENV_MAX 32

/* A child's extra environment, built one "NAME=value" string at a time.
 * Zero-initialise it; vec is the NULL-terminated array for
 * lmt_proc_start_ex. The strings are owned by the lmt_env. */
typedef struct lmt_env {
	size_t n;
	char *vars[LMT_ENV_MAX];
	const char *vec[LMT_ENV_MAX + 1];
} lmt_env;

/* Appends one printf-formatted "NAME=value"; fails the test beyond
 * LMT_ENV_MAX entries or on allocation failure. */
void lmt_env_add(lmt_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the strings and empties e. */
void lmt_env_free(lmt_env *e);

#endif /* LMT_PROC_H */
