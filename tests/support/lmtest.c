/*
 * lmtest.c - helpers shared by the tests; see lmtest.h.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmtest.h"

#ifndef LMT_SOURCE_DIR
#define LMT_SOURCE_DIR "."
#endif

static const char *
slot_path(const char *base, const char *rel)
{
	static __thread char bufs[8][4096];
	static __thread unsigned next;
	char *b = bufs[next++ % 8];
	snprintf(b, sizeof(bufs[0]), "%s/%s", base, rel);
	return b;
}

const char *
lmt_src(const char *rel)
{
	const char *base = getenv("LUNAMATCH_SOURCE_DIR");
	return slot_path(base && *base ? base : LMT_SOURCE_DIR, rel);
}

const char *
lmt_bin(const char *name)
{
	const char *base = getenv("LUNAMATCH_BIN_DIR");
	return slot_path(base && *base ? base : "bin", name);
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
