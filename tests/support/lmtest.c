/*
 * lmtest.c - helpers shared by the tests; see lmtest.h.
 */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lmtest.h"

#ifndef LMT_SOURCE_DIR
#define LMT_SOURCE_DIR "."
#endif

#define SLOTS    8
#define SLOT_LEN 4096

/* base/rel in the next of SLOTS per-thread buffers, cut at SLOT_LEN - 1
 * bytes; *fits (optional) tells whether it was not cut. */
static const char *
slot_path(const char *base, const char *rel, bool *fits)
{
	static __thread char bufs[SLOTS][SLOT_LEN];
	static __thread unsigned next;
	char *b = bufs[next++ % SLOTS];
	int n = snprintf(b, SLOT_LEN, "%s/%s", base, rel);
	if (fits != NULL)
		*fits = n > 0 && n < SLOT_LEN;
	return b;
}

const char *
lmt_src(const char *rel)
{
	const char *base = getenv("LUNAMATCH_SOURCE_DIR");
	return slot_path(base && *base ? base : LMT_SOURCE_DIR, rel, NULL);
}

const char *
lmt_bin(const char *name)
{
	const char *base = getenv("LUNAMATCH_BIN_DIR");
	return slot_path(base && *base ? base : "bin", name, NULL);
}

size_t
lmt_count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

char *
lmt_tmpdir(const char *tag)
{
	const char *t = getenv("TMPDIR");
	char *path = malloc(4096);
	assert_non_null(path);
	snprintf(path, 4096, "%s/lmtest-%s-XXXXXX", t && *t ? t : "/tmp", tag);
	if (mkdtemp(path) == NULL)
		fail_msg("mkdtemp %s: %s", path, strerror(errno));
	return path;
}

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void) sb;
	(void) flag;
	(void) ftw;
	return remove(p);
}

void
lmt_rmtree(const char *path)
{
	if (path != NULL)
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *
lmt_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			if (cap >= 64u << 20)
				goto fail;
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (nb == NULL)
				goto fail;
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

const char *
lmt_write_file(const char *dir, const char *name, const void *data, size_t len)
{
	bool fits;
	const char *path = slot_path(dir, name, &fits);
	FILE *f;

	if (!fits)
		fail_msg("path too long: %s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL)
		fail_msg("fopen %s: %s", path, strerror(errno));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

void
lmt_assert_file_error(const char *err, const char *path, unsigned line, const char *want)
{
	char prefix[SLOT_LEN + 32];

	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, prefix, want);
}

void *
lmt_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

char *
lmt_strdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		abort();
	return d;
}

void
lmt_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {(time_t) (ms / 1000), (long) (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void
lmt_run_id(char *buf, size_t len, const char *prefix)
{
	snprintf(buf, len, "%s%ld-%ld", prefix, (long) getpid(), (long) time(NULL));
}

void
lmt_stderr_begin(lmt_capture *c)
{
	fflush(stderr);
	if ((c->file = tmpfile()) == NULL || (c->saved = dup(STDERR_FILENO)) < 0 ||
	    dup2(fileno(c->file), STDERR_FILENO) < 0)
		fail_msg("cannot capture stderr: %s", strerror(errno));
}

char *
lmt_stderr_end(lmt_capture *c)
{
	long n = 0;
	char *text;

	fflush(stderr);
	if (dup2(c->saved, STDERR_FILENO) < 0)
		fail_msg("cannot restore stderr: %s", strerror(errno));
	close(c->saved);
	if (fseek(c->file, 0, SEEK_END) != 0 || (n = ftell(c->file)) < 0)
		fail_msg("cannot read the captured stderr: %s", strerror(errno));
	text = lmt_calloc((size_t) n + 1, 1);
	rewind(c->file);
	if (n > 0 && fread(text, 1, (size_t) n, c->file) != (size_t) n)
		fail_msg("cannot read the captured stderr");
	fclose(c->file);
	return text;
}
