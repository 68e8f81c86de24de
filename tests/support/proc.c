/*
 * proc.c - child processes, TCP readiness and HTTP GET for the integration
 * tests; see proc.h for the contracts.
 *
 * Child processes are started with fork + execve. Everything the child needs
 * (resolved path, environment array, file descriptors) is prepared before
 * fork, because the test may already run librdkafka or nng threads and only
 * async-signal-safe calls are allowed between fork and exec. A close-on-exec
 * pipe reports a failed exec back to the parent.
 *
 * The helpers at the end (lmt_run, lmt_proc_stop, lmt_free_port, lmt_env_*)
 * build on the primitives and fail the running cmocka test on error.
 */
#define _GNU_SOURCE /* pipe2 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "proc.h"

extern char **environ;

#define PATH_MAX_LEN 4096
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct lmt_proc {
	pid_t pid;
	int out_fd; /* read end of the child's stdout; -1 once closed */
	bool reaped;
	int status;     /* exit code, or 128 + signal; valid when reaped */
	long maxrss_kb; /* peak resident memory; valid when reaped by lmt_proc_wait */
	bool eof;
	bool discarding; /* dropping the rest of an over-long line */
	char *buf;       /* LMT_PROC_LINE_MAX bytes of unread output */
	size_t n;
};

/* Resolves prog like execvp does, but in the parent. Writes the path that is
 * executable into out (PATH_MAX_LEN bytes). */
static int
resolve(const char *prog, char *out)
{
	const char *path, *p;

	if (strchr(prog, '/') != NULL) {
		if ((size_t) snprintf(out, PATH_MAX_LEN, "%s", prog) >= PATH_MAX_LEN)
			return LM_E2BIG;
		return access(out, X_OK) == 0 ? LM_OK : LM_ENOENT;
	}
	path = getenv("PATH");
	if (path == NULL || *path == '\0')
		path = DEFAULT_PATH;
	for (p = path;;) {
		const char *end = strchr(p, ':');
		size_t dl = end ? (size_t) (end - p) : strlen(p);
		int n =
		    snprintf(out, PATH_MAX_LEN, "%.*s/%s", (int) dl, dl ? p : ".", prog);
		if (n > 0 && n < PATH_MAX_LEN && access(out, X_OK) == 0)
			return LM_OK;
		if (end == NULL)
			return LM_ENOENT;
		p = end + 1;
	}
}

/* Builds the child's environment: environ without the variables that env
 * replaces, then env. The strings are not copied. */
static int
build_env(const char *const env[], char ***out)
{
	size_t ne = 0, nx = 0, k = 0;
	char **envp;

	for (; environ[ne] != NULL; ne++)
		;
	for (; env != NULL && env[nx] != NULL; nx++) {
		const char *eq = strchr(env[nx], '=');
		if (eq == NULL || eq == env[nx])
			return LM_EINVAL;
	}
	if ((envp = calloc(ne + nx + 1, sizeof(*envp))) == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < ne; i++) {
		bool replaced = false;
		for (size_t j = 0; j < nx && !replaced; j++) {
			size_t nl = (size_t) (strchr(env[j], '=') - env[j]) + 1;
			replaced = strncmp(environ[i], env[j], nl) == 0;
		}
		if (!replaced)
			envp[k++] = environ[i];
	}
	for (size_t j = 0; j < nx; j++)
		envp[k++] = (char *) env[j];
	envp[k] = NULL;
	*out = envp;
	return LM_OK;
}

int
lmt_proc_start_ex(const char *const argv[], const char *const env[],
    const char *stderr_path, lmt_proc **out)
{
	char path[PATH_MAX_LEN];
	char **envp = NULL;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	int devnull = -1, errfd = -1;
	pid_t parent = getpid();
	lmt_proc *p = NULL;
	int child_errno = 0;
	ssize_t r;
	int rv;

	*out = NULL;
	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
		return LM_EINVAL;
	if ((rv = resolve(argv[0], path)) != LM_OK)
		return rv;
	if ((rv = build_env(env, &envp)) != LM_OK)
		return rv;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->buf = malloc(LMT_PROC_LINE_MAX)) == NULL) {
		rv = LM_ENOMEM;
		goto fail;
	}
	p->out_fd = -1;
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    (stderr_path != NULL &&
	        (errfd = open(
	             stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) ||
	    pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
		rv = lm_err_from_errno(errno);
		goto fail;
	}

	p->pid = fork();
	if (p->pid < 0) {
		rv = lm_err_from_errno(errno);
		goto fail;
	}
	if (p->pid == 0) {
		/* Child: async-signal-safe calls only. */
		sigset_t none;
		int e;
		if (dup2(devnull, 0) < 0 || dup2(outp[1], 1) < 0 ||
		    (errfd >= 0 && dup2(errfd, 2) < 0))
			goto child_fail;
		/* Own process group: lmt_proc_free kills what the child
		 * started too (shell wrappers, interpreter shims). */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execve(path, (char *const *) argv, envp);
	child_fail:
		e = errno;
		r = write(errp[1], &e, sizeof(e));
		(void) r;
		_exit(127);
	}

	setpgid(p->pid, p->pid); /* as the child does: whoever runs first wins */
	close(outp[1]);
	outp[1] = -1;
	close(errp[1]);
	errp[1] = -1;
	/* EOF: exec succeeded (the pipe closed on exec); 4 bytes: it failed. */
	do {
		r = read(errp[0], &child_errno, sizeof(child_errno));
	} while (r < 0 && errno == EINTR);
	if (r == (ssize_t) sizeof(child_errno)) {
		int st;
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
		rv = child_errno == ENOENT || child_errno == EACCES
		         ? LM_ENOENT
		         : lm_err_from_errno(child_errno);
		goto fail;
	}
	p->out_fd = outp[0];
	outp[0] = -1;
	rv = LM_OK;
	*out = p;
	p = NULL;
fail:
	if (p != NULL) {
		free(p->buf);
		free(p);
	}
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (devnull >= 0)
		close(devnull);
	if (errfd >= 0)
		close(errfd);
	free(envp);
	return rv;
}

int
lmt_proc_start(const char *const argv[], const char *const env[], lmt_proc **out)
{
	return lmt_proc_start_ex(argv, env, NULL, out);
}

pid_t
lmt_proc_pid(const lmt_proc *p)
{
	return p->pid;
}

/* Copies the first k buffered bytes into buf as a line and drops k + skip
 * bytes from the buffer. Returns LM_E2BIG if the line was cut. */
static int
take_line(lmt_proc *p, size_t k, size_t skip, char *buf, size_t len)
{
	size_t c = k < len - 1 ? k : len - 1;
	memcpy(buf, p->buf, c);
	buf[c] = '\0';
	memmove(p->buf, p->buf + k + skip, p->n - k - skip);
	p->n -= k + skip;
	return c < k ? LM_E2BIG : LM_OK;
}

int
lmt_proc_readline(lmt_proc *p, char *buf, size_t len, int timeout_ms)
{
	int64_t deadline = lm_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	if (len == 0)
		return LM_EINVAL;
	buf[0] = '\0';
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->n);
		if (nl != NULL) {
			size_t k = (size_t) (nl - p->buf);
			if (p->discarding) {
				memmove(p->buf, nl + 1, p->n - k - 1);
				p->n -= k + 1;
				p->discarding = false;
				continue;
			}
			return take_line(p, k, 1, buf, len);
		}
		if (p->discarding) {
			p->n = 0;
		} else if (p->n == LMT_PROC_LINE_MAX) {
			take_line(p, p->n, 0, buf, len);
			p->discarding = true;
			return LM_E2BIG;
		}
		if (p->eof) {
			if (p->n > 0 && !p->discarding)
				return take_line(p, p->n, 0, buf, len);
			p->n = 0;
			return LM_ECLOSED;
		}

		int64_t left = deadline - lm_clock_ms();
		struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
		int pr = poll(&pfd, 1, left > 0 ? (int) left : 0);
		if (pr < 0 && errno != EINTR)
			return lm_err_from_errno(errno);
		if (pr <= 0) {
			if (lm_clock_ms() >= deadline)
				return LM_ETIMEDOUT;
			continue;
		}
		ssize_t r = read(p->out_fd, p->buf + p->n, LMT_PROC_LINE_MAX - p->n);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return lm_err_from_errno(errno);
		}
		if (r == 0)
			p->eof = true;
		p->n += (size_t) r;
	}
}

int
lmt_proc_signal(lmt_proc *p, int sig)
{
	if (p->reaped)
		return LM_ECLOSED;
	return kill(p->pid, sig) == 0 ? LM_OK : lm_err_from_errno(errno);
}

int
lmt_proc_wait(lmt_proc *p, int timeout_ms, int *status)
{
	int64_t deadline = lm_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	while (!p->reaped) {
		int st;
		struct rusage ru;
		pid_t r = wait4(p->pid, &st, WNOHANG, &ru);
		if (r == p->pid) {
			p->reaped = true;
			p->maxrss_kb = ru.ru_maxrss;
			p->status = WIFEXITED(st)     ? WEXITSTATUS(st)
			            : WIFSIGNALED(st) ? 128 + WTERMSIG(st)
			                              : 255;
			break;
		}
		if (r < 0 && errno != EINTR)
			return lm_err_from_errno(errno);
		int64_t left = deadline - lm_clock_ms();
		if (left <= 0)
			return LM_ETIMEDOUT;
		lmt_sleep_ms(left < 10 ? left : 10);
	}
	if (status != NULL)
		*status = p->status;
	return LM_OK;
}

long
lmt_proc_maxrss_kb(const lmt_proc *p)
{
	return p->reaped ? p->maxrss_kb : -1;
}

void
lmt_proc_free(lmt_proc *p)
{
	if (p == NULL)
		return;
	if (!p->reaped) {
		int st;
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	free(p->buf);
	free(p);
}

int
lmt_wait_tcp(const char *host, int port, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int64_t deadline = lm_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	memset(&ss, 0, sizeof(ss));
	if (host == NULL || port <= 0 || port > 65535)
		return LM_EINVAL;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *) &ss)->sin_addr) == 1) {
		((struct sockaddr_in *) &ss)->sin_family = AF_INET;
		((struct sockaddr_in *) &ss)->sin_port = htons((uint16_t) port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *) &ss)->sin6_addr) ==
	           1) {
		((struct sockaddr_in6 *) &ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *) &ss)->sin6_port = htons((uint16_t) port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return LM_EINVAL;
	}
	for (;;) {
		int fd =
		    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		bool ok = false;
		if (fd < 0)
			return lm_err_from_errno(errno);
		if (connect(fd, (struct sockaddr *) &ss, sl) == 0) {
			ok = true;
		} else if (errno == EINPROGRESS) {
			int64_t left = deadline - lm_clock_ms();
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t el = sizeof(soerr);
			if (poll(&pfd, 1,
			        left > 500 ? 500 : (left > 0 ? (int) left : 0)) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) == 0 &&
			    soerr == 0)
				ok = true;
		}
		close(fd);
		if (ok)
			return LM_OK;
		int64_t left = deadline - lm_clock_ms();
		if (left <= 0)
			return LM_ETIMEDOUT;
		lmt_sleep_ms(left < 50 ? left : 50);
	}
}

int
lmt_http_get(const char *url, int *status, char **body, size_t *len, int timeout_ms)
{
	nng_url *u = NULL;
	nng_http_client *c = NULL;
	nng_http_req *req = NULL;
	nng_http_res *res = NULL;
	nng_aio *aio = NULL;
	void *data = NULL;
	size_t sz = 0;
	int rv, nrv;

	*body = NULL;
	if (len != NULL)
		*len = 0;
	if (url == NULL || strncmp(url, "http://", 7) != 0 || nng_url_parse(&u, url) != 0)
		return LM_EINVAL;
	if ((nrv = nng_http_client_alloc(&c, u)) != 0 ||
	    (nrv = nng_http_req_alloc(&req, u)) != 0 ||
	    (nrv = nng_http_res_alloc(&res)) != 0 ||
	    (nrv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		rv = nrv == NNG_ENOMEM ? LM_ENOMEM : LM_ENNG;
		goto done;
	}
	nng_aio_set_timeout(aio, timeout_ms > 0 ? timeout_ms : 1);
	nng_http_client_transact(c, req, res, aio);
	nng_aio_wait(aio);
	if ((nrv = nng_aio_result(aio)) != 0) {
		rv = nrv == NNG_ETIMEDOUT ? LM_ETIMEDOUT : LM_ENNG;
		goto done;
	}
	nng_http_res_get_data(res, &data, &sz);
	if (sz > LMT_HTTP_BODY_MAX) {
		rv = LM_E2BIG;
		goto done;
	}
	if ((*body = malloc(sz + 1)) == NULL) {
		rv = LM_ENOMEM;
		goto done;
	}
	if (sz > 0)
		memcpy(*body, data, sz);
	(*body)[sz] = '\0';
	if (len != NULL)
		*len = sz;
	*status = (int) nng_http_res_get_status(res);
	rv = LM_OK;
done:
	if (aio != NULL)
		nng_aio_free(aio);
	if (res != NULL)
		nng_http_res_free(res);
	if (req != NULL)
		nng_http_req_free(req);
	if (c != NULL)
		nng_http_client_free(c);
	if (u != NULL)
		nng_url_free(u);
	return rv;
}

/* ---- asserting helpers ---------------------------------------------------- */

lmt_run_result
lmt_run_cli(const char *cmd, const char *const args[], const char *opt, const char *val,
    const char *stderr_path, int timeout_ms)
{
	const char *argv[LMT_RUN_CLI_ARGS + 4]; /* the program, opt, val, NULL */
	size_t n = 0;

	argv[n++] = lmt_bin("lunamatch");
	if (cmd != NULL)
		argv[n++] = cmd;
	for (size_t i = 0; args[i] != NULL; i++) {
		if (n > LMT_RUN_CLI_ARGS)
			fail_msg("lmt_run_cli: more than %d arguments", LMT_RUN_CLI_ARGS);
		argv[n++] = args[i];
	}
	if (opt != NULL) {
		argv[n++] = opt;
		argv[n++] = val;
	}
	argv[n] = NULL;
	return lmt_run(argv, NULL, stderr_path, timeout_ms);
}

void
lmt_expect_unwritten(const char *const argv[], const char *const env[],
    const char *stderr_path, int timeout_ms)
{
	const char *sh[LMT_UNWRITTEN_ARGS + 4] = {
	    "/bin/sh", "-c", "exec \"$0\" \"$@\" > /dev/full"};
	size_t n = 3;

	for (size_t i = 0; argv[i] != NULL; i++) {
		if (i >= LMT_UNWRITTEN_ARGS)
			fail_msg("lmt_expect_unwritten: more than %d arguments",
			    LMT_UNWRITTEN_ARGS);
		sh[n++] = argv[i];
	}
	sh[n] = NULL;
	lmt_run_result r = lmt_run(sh, env, stderr_path, timeout_ms);
	if (r.status != 1 || strstr(r.err, "cannot write to standard output") == NULL)
		fail_msg("%s %s with stdout on /dev/full: exit %d, stderr: %s", argv[0],
		    argv[1] != NULL ? argv[1] : "", r.status, r.err);
	lmt_run_result_free(&r);
}

lmt_run_result
lmt_run(const char *const argv[], const char *const env[], const char *stderr_path,
    int timeout_ms)
{
	lmt_run_result r = {.status = -1};
	lmt_proc *p = NULL;
	char *line = malloc(LMT_PROC_LINE_MAX);
	char why[128] = "";
	size_t n = 0;
	int rc;

	if (line == NULL || (r.out = calloc(1, 1)) == NULL) {
		free(line);
		fail_msg("%s: out of memory", argv[0]);
	}
	if ((rc = lmt_proc_start_ex(argv, env, stderr_path, &p)) != LM_OK) {
		free(line);
		lmt_run_result_free(&r);
		fail_msg("cannot start %s: %s", argv[0], lm_strerror(rc));
	}
	while (
	    (rc = lmt_proc_readline(p, line, LMT_PROC_LINE_MAX, timeout_ms)) == LM_OK) {
		size_t l = strlen(line);
		char *grown =
		    n + l + 2 <= LMT_RUN_OUT_MAX ? realloc(r.out, n + l + 2) : NULL;
		if (grown == NULL) {
			snprintf(why, sizeof(why),
			    "more than %u bytes on stdout (or no memory)",
			    LMT_RUN_OUT_MAX);
			break;
		}
		r.out = grown;
		memcpy(r.out + n, line, l);
		n += l;
		r.out[n++] = '\n';
		r.out[n] = '\0';
	}
	free(line);
	if (why[0] == '\0' && rc != LM_ECLOSED)
		snprintf(why, sizeof(why), "reading stdout: %s", lm_strerror(rc));
	if (why[0] == '\0' && lmt_proc_wait(p, timeout_ms, &r.status) != LM_OK)
		snprintf(why, sizeof(why), "still running after %d ms", timeout_ms);
	if (why[0] == '\0')
		r.maxrss_kb = lmt_proc_maxrss_kb(p);
	lmt_proc_free(p); /* kills it if it still runs */
	if (why[0] == '\0' && stderr_path != NULL &&
	    (r.err = lmt_read_file(stderr_path, NULL)) == NULL)
		snprintf(
		    why, sizeof(why), "cannot read back stderr from %s", stderr_path);
	if (why[0] != '\0') {
		lmt_run_result_free(&r);
		fail_msg("%s: %s", argv[0], why);
	}
	return r;
}

void
lmt_run_result_free(lmt_run_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

void
lmt_proc_stop(lmt_proc **p, int timeout_ms)
{
	int st = -1;

	assert_non_null(*p);
	assert_int_equal(lmt_proc_signal(*p, SIGTERM), LM_OK);
	assert_int_equal(lmt_proc_wait(*p, timeout_ms, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(*p);
	*p = NULL;
}

/* Ports handed out by lmt_free_port: [PORT_FIRST, low end of the kernel's
 * ephemeral range). A port from the ephemeral range could be taken by any
 * outgoing connection or port-0 listener (a Kafka client, the mock
 * cluster's brokers) between the check and the service's bind. */
#define PORT_FIRST     10000
#define EPHEMERAL_FILE "/proc/sys/net/ipv4/ip_local_port_range"
#define EPHEMERAL_LOW  32768 /* when the file cannot be read */

static int
ephemeral_low(void)
{
	FILE *f = fopen(EPHEMERAL_FILE, "r");
	int lo = EPHEMERAL_LOW;

	if (f != NULL) {
		if (fscanf(f, "%d", &lo) != 1 || lo <= PORT_FIRST + 1000 || lo > 65535)
			lo = EPHEMERAL_LOW;
		fclose(f);
	}
	return lo;
}

/* Whether a TCP listener could bind 127.0.0.1:port now. SO_REUSEADDR is
 * not set, so a port with connections in TIME_WAIT is refused as well. */
static bool
port_free(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t) port);
	ok = bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

int
lmt_free_port(void)
{
	/* A start that differs between processes, then consecutive ports, so
	 * that one process never hands out the same port twice. */
	static int next;
	int lo = PORT_FIRST, hi = ephemeral_low(), span = hi - lo;

	if (next == 0)
		next = lo + (int) (((unsigned) getpid() * 2654435761u ^
		                       (unsigned) lm_clock_ms()) %
		                   (unsigned) span);
	for (int tries = 0; tries < span; tries++) {
		int port = next;
		next = next + 1 < hi ? next + 1 : lo;
		if (port_free(port))
			return port;
	}
	fail_msg("no free TCP port in [%d, %d) on 127.0.0.1", lo, hi);
	return -1;
}

void
lmt_env_add(lmt_env *e, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (e->n >= LMT_ENV_MAX)
		fail_msg("more than %d environment variables", LMT_ENV_MAX);
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n > 0);
	char *s = malloc((size_t) n + 1);
	assert_non_null(s);
	va_start(ap, fmt);
	vsnprintf(s, (size_t) n + 1, fmt, ap);
	va_end(ap);
	assert_non_null(strchr(s, '='));
	e->vars[e->n] = s;
	e->vec[e->n++] = s;
	e->vec[e->n] = NULL;
}

void
lmt_env_free(lmt_env *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->vars[i]);
	memset(e, 0, sizeof(*e));
}
