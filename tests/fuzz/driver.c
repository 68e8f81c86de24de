/*
 * driver.c - replays inputs through a fuzz target without libFuzzer: each
 * argument is a file, or a directory whose regular files (in name order,
 * dot files skipped) are fed one by one to LLVMFuzzerTestOneInput. The
 * normal and the sanitizer builds run every target this way over its
 * committed corpus (tests/fuzz/corpus/<target>/) as a ctest test; a crash,
 * a sanitizer report or a failed check ends the process with the name of
 * the input on stderr.
 *
 * Exit status: 0 when every input ran, 1 when an input cannot be read or
 * when the arguments hold no input at all (a replay of nothing proves
 * nothing), 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzzsupport.h"

/* Largest input replayed: libFuzzer's inputs are smaller by default
 * (-max_len), corpus files far smaller. */
#define LMF_INPUT_MAX (8u << 20)

/* Runs the file at path; returns 0 or -1 when it cannot be read. */
static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	errno = 0;
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    (unsigned long) n > LMF_INPUT_MAX || fseek(f, 0, SEEK_SET) != 0)
		goto fail;
	/* One byte more than needed, so that an empty input is not NULL. */
	buf = malloc((size_t) n + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
		goto fail;
	fclose(f);
	fprintf(stderr, "running %s (%ld bytes)\n", path, n);
	LLVMFuzzerTestOneInput(buf, (size_t) n);
	free(buf);
	return 0;
fail:
	fprintf(stderr, "%s: cannot read (%s, at most %u bytes)\n", path,
	    errno ? strerror(errno) : "too large", LMF_INPUT_MAX);
	if (f != NULL)
		fclose(f);
	free(buf);
	return -1;
}

static int
skip_dots(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

/* Runs every regular file of dir; returns the count run or -1. */
static long
run_dir(const char *dir)
{
	struct dirent **ents = NULL;
	char path[4096];
	long run = 0;
	int n = scandir(dir, &ents, skip_dots, alphasort);

	if (n < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (run >= 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			run = run_file(path) == 0 ? run + 1 : -1;
		free(ents[i]);
	}
	free(ents);
	return run;
}

int
main(int argc, char **argv)
{
	long total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		long n;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		n = S_ISDIR(st.st_mode) ? run_dir(argv[i])
		                        : (run_file(argv[i]) == 0 ? 1 : -1);
		if (n < 0)
			return 1;
		total += n;
	}
	if (total == 0) {
		fprintf(stderr, "no input to run\n");
		return 1;
	}
	fprintf(stderr, "%ld inputs ran\n", total);
	return 0;
}
