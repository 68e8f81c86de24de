/*
 * textfile.h - reading the line-based data files of lunamatch
 * (data/rates.tsv, data/skills.tsv; format in docs/data-files.md).
 *
 * The files share one frame: UTF-8 text lines ended by "\n" or "\r\n" (the
 * last newline may be missing), blank lines, and '#' comment lines among
 * which "# format: F" names the format (only one is accepted) and
 * "# version: V" the version of the data, which must appear exactly once.
 * An lm_textfile reads the whole file under hard limits, handles that frame
 * and hands the other lines, one by one, to the loader of the file, which
 * reports its own errors through lm_textfile_fail so that every message has
 * the form "<path>:<line>: <reason>".
 *
 * An lm_textfile is used by one thread at a time.
 */
#ifndef LUNAMATCH_TEXTFILE_H
#define LUNAMATCH_TEXTFILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_TEXTFILE_VERSION_MAX 64 /* bytes of a "# version:" value, at most */

typedef struct lm_textfile lm_textfile;

typedef struct lm_textfile_opts {
	size_t file_max;    /* bytes in the whole file (LM_E2BIG beyond) */
	size_t line_max;    /* bytes in one line without "\n" or "\r\n" (LM_E2BIG) */
	const char *format; /* the one accepted "# format:" value */
	size_t version_max; /* bytes of the version; <= LM_TEXTFILE_VERSION_MAX */
} lm_textfile_opts;

/*
 * Writes "<path>:<line>: <message>" (or "<path>: <message>" for line 0; a
 * NULL path is written "(null)") into err[0..errlen) and returns code. err
 * may be NULL (nothing is written). For errors of a loader before or
 * without an lm_textfile.
 */
int lm_textfile_errf(char *err, size_t errlen, const char *path, unsigned line, int code,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * Reads the file at path into memory. On LM_OK *out is the reader (free it
 * with lm_textfile_close) and err (when not NULL) holds "". Errors, also
 * written to err as lm_textfile_errf:
 * LM_EINVAL (NULL path, out or opts, or version_max above
 * LM_TEXTFILE_VERSION_MAX), LM_ENOENT and other errno codes (cannot open),
 * LM_EIO (read error), LM_E2BIG (larger than file_max), LM_ENOMEM. err and
 * the path must stay valid until lm_textfile_close (messages of later calls
 * go there too).
 */
int lm_textfile_open(const char *path, const lm_textfile_opts *opts, char *err,
    size_t errlen, lm_textfile **out);

/*
 * The next data line: not blank, not a '#' line. On LM_OK *line is the line,
 * NUL-terminated, without its newline, a "\r" before it and trailing spaces
 * (leading ones are kept); it points into the file's buffer, which the
 * caller may modify in place, and lives until lm_textfile_close (or for
 * good after lm_textfile_take). Returns LM_ENOENT at the end of the file
 * when the version header was present. Errors, written to err: LM_EPARSE (a
 * NUL byte, another format, a missing, repeated, empty or non-printable
 * version), LM_E2BIG (a line or the version too long).
 */
int lm_textfile_next(lm_textfile *tf, char **line);

/* The number (from 1) of the line last returned by lm_textfile_next; 0
 * before the first and after the end of the file. */
unsigned lm_textfile_line(const lm_textfile *tf);

/* The "# version:" value read so far ("" before it). Owned by tf. */
const char *lm_textfile_version(const lm_textfile *tf);

/* Writes an error for the current line (see lm_textfile_line) into the
 * err buffer given to lm_textfile_open and returns code. */
int lm_textfile_fail(lm_textfile *tf, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Removes ASCII spaces (only ' ') from both ends of s: the end is cut in
 * place, the start is returned. For the columns of a data line. */
char *lm_textfile_trim(char *s);

/*
 * Splits line in place at its tabs into columns, each trimmed as
 * lm_textfile_trim does, and stores the first max of them in col. Returns
 * the number of columns the line has, which may differ from max: loaders
 * check it against the count their format wants.
 */
size_t lm_textfile_split(char *line, char **col, size_t max);

/* True (non-zero) when s is lower-case kebab-case ASCII: groups of a-z and
 * 0-9 joined by single '-' ("google-cloud", "age"); the form of ids and
 * categories in the data files. */
int lm_textfile_kebab(const char *s);

/*
 * Reads s as a decimal number, the one syntax of numbers in the data files
 * and the settings: digits only for a whole number (real false); for a
 * real, an optional minus, digits with an optional fraction and an optional
 * exponent. strtod alone would also take spaces, a plus, hexadecimal, inf
 * and nan. True, with the value in *out, when s is such a number and
 * finite.
 */
int lm_textfile_number(const char *s, int real, double *out);

/*
 * Reads s as a whole number of that syntax (digits only) exactly, whatever
 * its size: true, with the value in *out, when s is one in [min, max]. A
 * number past 2^64 - 1 is out of every range, not read as 2^64 - 1.
 */
int lm_textfile_whole(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Hands the file's buffer (which the returned lines point into) to the
 * caller, who frees it with free(); lm_textfile_close then leaves it. */
char *lm_textfile_take(lm_textfile *tf);

/* Frees the reader and, unless taken, the buffer; NULL is a no-op. */
void lm_textfile_close(lm_textfile *tf);

/* A loader's handler of one data line (see lm_textfile_next for line).
 * Returns LM_OK to go on, or an error written with lm_textfile_fail. */
typedef int (*lm_textfile_line_fn)(void *arg, lm_textfile *tf, char *line);

/*
 * The whole read of a loader: opens path (as lm_textfile_open), calls
 * fn(arg, tf, line) for every data line in order and stops at its first
 * error, checks the headers at the end (as lm_textfile_next) and copies the
 * version into version[0..versionlen). On LM_OK with text not NULL, *text
 * is the file's buffer, which the lines given to fn point into (the caller
 * frees it with free()); otherwise the buffer is freed. Returns LM_OK or the
 * first error, written to err; LM_EINVAL when the version does not fit.
 */
int lm_textfile_read(const char *path, const lm_textfile_opts *opts, char *err,
    size_t errlen, lm_textfile_line_fn fn, void *arg, char *version, size_t versionlen,
    char **text);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_TEXTFILE_H */
