/*
 * textfile.c - the shared frame of lunamatch's line-based data files; see
 * textfile.h.
 *
 * The whole file is read into one NUL-terminated buffer and split in place:
 * each line's newline becomes its terminator, so lines handed out stay
 * valid as long as the buffer, which a loader may keep (lm_textfile_take).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/textfile.h"

#define READ_CHUNK (64u * 1024) /* first buffer size; doubled while reading */

struct lm_textfile {
	const char *path;
	lm_textfile_opts opts;
	char *err;
	size_t errlen;
	char *text; /* the file, NUL-terminated; NULL once taken */
	char *pos;  /* start of the next line */
	char *end;  /* text + length */
	unsigned line;
	bool done;
	char version[LM_TEXTFILE_VERSION_MAX + 1];
};

static int vfail(char *err, size_t errlen, const char *path, unsigned line, int code,
    const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

static int
vfail(char *err, size_t errlen, const char *path, unsigned line, int code,
    const char *fmt, va_list ap)
{
	int n;

	if (err == NULL || errlen == 0)
		return code;
	if (path == NULL)
		path = "(null)";
	if (line > 0)
		n = snprintf(err, errlen, "%s:%u: ", path, line);
	else
		n = snprintf(err, errlen, "%s: ", path);
	if (n < 0 || (size_t) n >= errlen)
		return code;
	vsnprintf(err + n, errlen - (size_t) n, fmt, ap);
	return code;
}

int
lm_textfile_errf(char *err, size_t errlen, const char *path, unsigned line, int code,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	code = vfail(err, errlen, path, line, code, fmt, ap);
	va_end(ap);
	return code;
}

int
lm_textfile_fail(lm_textfile *tf, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	code = vfail(tf->err, tf->errlen, tf->path, tf->line, code, fmt, ap);
	va_end(ap);
	return code;
}

/* Reads the whole file into a NUL-terminated buffer of at most file_max
 * bytes (plus the NUL). */
static int
read_all(lm_textfile *tf, FILE *f)
{
	size_t max = tf->opts.file_max;
	size_t cap = READ_CHUNK, len = 0;
	char *buf;

	if (cap > max + 2)
		cap = max + 2;
	if ((buf = malloc(cap)) == NULL)
		return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
	for (;;) {
		size_t want, n;
		if (len > max)
			break;
		if (len + 1 == cap) {
			/* Room for one byte past the limit, to detect it. */
			size_t ncap = cap * 2 < max + 2 ? cap * 2 : max + 2;
			char *nb = realloc(buf, ncap);
			if (nb == NULL) {
				free(buf);
				return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
			}
			buf = nb;
			cap = ncap;
		}
		want = cap - 1 - len;
		n = fread(buf + len, 1, want, f);
		len += n;
		if (n < want)
			break; /* end of file or error */
	}
	if (len <= max && ferror(f)) {
		free(buf);
		return lm_textfile_fail(tf, LM_EIO, "read error");
	}
	if (len > max) {
		free(buf);
		return lm_textfile_fail(tf, LM_E2BIG, "file larger than %zu bytes", max);
	}
	buf[len] = '\0';
	tf->text = buf;
	tf->pos = buf;
	tf->end = buf + len;
	return LM_OK;
}

int
lm_textfile_open(const char *path, const lm_textfile_opts *opts, char *err, size_t errlen,
    lm_textfile **out)
{
	lm_textfile *tf;
	FILE *f;
	int rv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL)
		return lm_textfile_errf(
		    err, errlen, path, 0, LM_EINVAL, "no output pointer");
	*out = NULL;
	if (path == NULL)
		return lm_textfile_errf(err, errlen, path, 0, LM_EINVAL, "no path");
	if (opts == NULL || opts->format == NULL ||
	    opts->version_max > LM_TEXTFILE_VERSION_MAX || opts->file_max >= SIZE_MAX - 2)
		return lm_textfile_errf(err, errlen, path, 0, LM_EINVAL, "bad options");
	if ((f = fopen(path, "rb")) == NULL) {
		int e = errno;
		return lm_textfile_errf(err, errlen, path, 0, lm_err_from_errno(e),
		    "cannot open: %s", strerror(e));
	}
	if ((tf = calloc(1, sizeof(*tf))) == NULL) {
		fclose(f);
		return lm_textfile_errf(err, errlen, path, 0, LM_ENOMEM, "out of memory");
	}
	tf->path = path;
	tf->opts = *opts;
	tf->err = err;
	tf->errlen = errlen;
	rv = read_all(tf, f);
	fclose(f);
	if (rv != LM_OK) {
		free(tf);
		return rv;
	}
	*out = tf;
	return LM_OK;
}

char *
lm_textfile_trim(char *s)
{
	char *e;
	while (*s == ' ')
		s++;
	e = s + strlen(s);
	while (e > s && e[-1] == ' ')
		*--e = '\0';
	return s;
}

size_t
lm_textfile_split(char *line, char **col, size_t max)
{
	size_t n = 0;

	for (char *p = line;;) {
		char *tab = strchr(p, '\t');
		if (tab != NULL)
			*tab = '\0';
		if (n < max)
			col[n] = lm_textfile_trim(p);
		n++;
		if (tab == NULL)
			return n;
		p = tab + 1;
	}
}

int
lm_textfile_kebab(const char *s)
{
	if (*s == '\0' || *s == '-')
		return 0;
	for (; *s; s++) {
		if (*s == '-') {
			if (s[1] == '-' || s[1] == '\0')
				return 0;
		} else if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))) {
			return 0;
		}
	}
	return 1;
}

int
lm_textfile_number(const char *s, int real, double *out)
{
	const char *p = s;
	int digits = 0;
	char *end;

	if (real && *p == '-')
		p++;
	for (; *p >= '0' && *p <= '9'; p++)
		digits = 1;
	if (real && *p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			digits = 1;
	if (real && digits && (*p == 'e' || *p == 'E')) {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (!digits || *p != '\0')
		return 0;
	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && *end == '\0' && isfinite(*out);
}

int
lm_textfile_whole(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return 0;
	*out = (uint64_t) v;
	return 1;
}

/* Handles a '#' line: "# version: V" and "# format: F" are read, the rest
 * are comments. */
static int
header(lm_textfile *tf, char *line)
{
	char *p = lm_textfile_trim(line + 1);
	char *v;

	if (strncmp(p, "format:", 7) == 0) {
		v = lm_textfile_trim(p + 7);
		if (strcmp(v, tf->opts.format) != 0)
			return lm_textfile_fail(tf, LM_EPARSE,
			    "unsupported format \"%s\" (expected %s)", v,
			    tf->opts.format);
		return LM_OK;
	}
	if (strncmp(p, "version:", 8) != 0)
		return LM_OK;
	v = lm_textfile_trim(p + 8);
	if (tf->version[0] != '\0')
		return lm_textfile_fail(tf, LM_EPARSE, "second version header");
	if (*v == '\0')
		return lm_textfile_fail(tf, LM_EPARSE, "empty version");
	if (strlen(v) > tf->opts.version_max)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "version longer than %zu bytes", tf->opts.version_max);
	for (const char *c = v; *c; c++) {
		if (*c <= ' ' || *c > '~')
			return lm_textfile_fail(tf, LM_EPARSE,
			    "version must be printable ASCII without spaces");
	}
	memcpy(tf->version, v, strlen(v) + 1);
	return LM_OK;
}

int
lm_textfile_next(lm_textfile *tf, char **line)
{
	int rv;

	if (tf == NULL || line == NULL || tf->pos == NULL)
		return LM_EINVAL;
	*line = NULL;
	while (!tf->done && tf->pos < tf->end) {
		char *p = tf->pos;
		char *nl = memchr(p, '\n', (size_t) (tf->end - p));
		char *eol = nl ? nl : tf->end;
		size_t n = (size_t) (eol - p);

		tf->pos = nl ? nl + 1 : tf->end;
		tf->line++;
		if (memchr(p, '\0', n) != NULL)
			return lm_textfile_fail(tf, LM_EPARSE, "NUL byte in line");
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > tf->opts.line_max)
			return lm_textfile_fail(tf, LM_E2BIG,
			    "line longer than %zu bytes", tf->opts.line_max);
		p[n] = '\0';
		if (*lm_textfile_trim(p) == '\0')
			continue;
		if (p[0] != '#') {
			*line = p;
			return LM_OK;
		}
		if ((rv = header(tf, p)) != LM_OK)
			return rv;
	}
	tf->done = true;
	tf->line = 0;
	if (tf->version[0] == '\0')
		return lm_textfile_fail(
		    tf, LM_EPARSE, "missing \"# version: ...\" header line");
	return LM_ENOENT;
}

unsigned
lm_textfile_line(const lm_textfile *tf)
{
	return tf ? tf->line : 0;
}

const char *
lm_textfile_version(const lm_textfile *tf)
{
	return tf ? tf->version : "";
}

char *
lm_textfile_take(lm_textfile *tf)
{
	char *text;
	if (tf == NULL)
		return NULL;
	text = tf->text;
	tf->text = NULL;
	return text;
}

void
lm_textfile_close(lm_textfile *tf)
{
	if (tf == NULL)
		return;
	free(tf->text);
	free(tf);
}

int
lm_textfile_read(const char *path, const lm_textfile_opts *opts, char *err, size_t errlen,
    lm_textfile_line_fn fn, void *arg, char *version, size_t versionlen, char **text)
{
	lm_textfile *tf;
	char *line = NULL;
	int rv;

	if (text != NULL)
		*text = NULL;
	if (fn == NULL || version == NULL || opts == NULL ||
	    versionlen <= opts->version_max)
		return lm_textfile_errf(err, errlen, path, 0, LM_EINVAL, "bad arguments");
	if ((rv = lm_textfile_open(path, opts, err, errlen, &tf)) != LM_OK)
		return rv;
	while ((rv = lm_textfile_next(tf, &line)) == LM_OK) {
		if ((rv = fn(arg, tf, line)) != LM_OK)
			break;
	}
	/* LM_ENOENT is the end of the file only when lm_textfile_next says
	 * it: a handler's own LM_ENOENT stops the load like any error. */
	if (rv == LM_ENOENT && line == NULL) {
		rv = LM_OK;
		snprintf(version, versionlen, "%s", tf->version);
		if (text != NULL)
			*text = lm_textfile_take(tf);
	}
	lm_textfile_close(tf);
	return rv;
}
