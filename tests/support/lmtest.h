/*
 * lmtest.h - small helpers shared by the cmocka tests.
 *
 * Tests include <cmocka.h> through this header, in the order cmocka needs.
 */
#ifndef LMTEST_H
#define LMTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file in the source tree (LUNAMATCH_SOURCE_DIR, or the compiled-in
 * source directory). Returns a pointer to a static buffer per call slot:
 * valid until the 8th following call. */
const char *lmt_src(const char *rel);

/* Path of a built program in LUNAMATCH_BIN_DIR (for example
 * "lunamatch-ingest"). Same lifetime as lmt_src. */
const char *lmt_bin(const char *name);

/* Creates a fresh private directory under $TMPDIR (or /tmp) and returns its
 * path (malloc'd; the caller frees it after lmt_rmtree). Fails the test on
 * error. */
char *lmt_tmpdir(const char *tag);

/* Removes a directory tree; NULL is ignored. */
void lmt_rmtree(const char *path);

/* Reads a whole file (at most 64 MiB) into a NUL-terminated malloc'd buffer;
 * returns NULL on error. *len (optional) receives the size. */
char *lmt_read_file(const char *path, size_t *len);

#endif /* LMTEST_H */
