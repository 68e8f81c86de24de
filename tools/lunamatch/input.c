/*
 * input.c - reading a whole input file of a command under a hard size limit
 * (see cli.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int
lm_cli_read_file(const char *cmd, const char *path, size_t max, char **buf, size_t *len)
{
	FILE *f = NULL;
	char *b = NULL;
	size_t n = 0, cap = 0;

	*buf = NULL;
	*len = 0;
	if ((f = fopen(path, "rb")) == NULL) {
		lm_cli_error(cmd, "cannot open %s: %s", path, strerror(errno));
		return LM_CLI_EXIT_FAIL;
	}
	for (;;) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			if (cap > max)
				break;
			char *nb = realloc(b, ncap + 1);
			if (nb == NULL) {
				lm_cli_error(cmd, "out of memory reading %s", path);
				goto fail;
			}
			b = nb;
			cap = ncap;
		}
		size_t got = fread(b + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		lm_cli_error(cmd, "cannot read %s", path);
		goto fail;
	}
	if (n > max) {
		lm_cli_error(cmd, "%s is larger than %zu bytes", path, max);
		goto fail;
	}
	fclose(f);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return LM_CLI_EXIT_OK;
fail:
	fclose(f);
	free(b);
	return LM_CLI_EXIT_FAIL;
}
