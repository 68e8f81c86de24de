/*
 * storetest.h - damage written into a record store behind its back, as a
 * foreign writer or a disk fault would leave it, for the tests of what
 * reads it.
 *
 * Each call writes in a child process: LMDB forbids a second environment
 * of the same files in one process, and the test's own process usually has
 * the store open. Every function fails the running cmocka test on error.
 */
#ifndef LMT_STORETEST_H
#define LMT_STORETEST_H

#include <stdbool.h>
#include <stddef.h>

/* Puts key = val[0 .. vlen) into the named database ("postings",
 * "profiles", "readers", "changes", ...) of the store in dir. */
void lmt_store_poke(const char *dir, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen);

/* Rewrites the stored value of record id (a posting when posting, else a
 * profile) of the store in dir: header true spoils its header's magic byte
 * (the value does not decode), false the record's last 48 bytes (the header
 * and version stay valid; the record's bytes do not unpack). The value must
 * be 64 to 8192 bytes long. */
void lmt_store_damage(const char *dir, bool posting, const char *id, bool header);

#endif /* LMT_STORETEST_H */
