/*
 * lmdb.h - the pieces of LMDB handling that every LMDB user of lunamatch
 * shares: error conversion, opening an environment, one environment per
 * directory per process, map growth and adoption of a map grown elsewhere,
 * named databases with a schema version, and big-endian integer keys.
 *
 * The record store (store.h) and the match outbox are built on these. Each
 * keeps its own locking: these functions take no lock, and the contracts
 * below say which transactions may be open when they run.
 *
 * Log events: a function that logs takes a `domain` (e.g. "store") and logs
 * under "<domain>.error", "<domain>.full", "<domain>.grow" or
 * "<domain>.schema"; domain must be at most LM_LMDB_DOMAIN_MAX bytes.
 */
#ifndef LUNAMATCH_LMDB_H
#define LUNAMATCH_LMDB_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_LMDB_DOMAIN_MAX 32 /* bytes of a log domain */
#define LM_LMDB_RESIZE_MAX 16 /* MDB_MAP_RESIZED retries of one begin */
#define LM_LMDB_SCHEMA_MAX 64 /* bytes of a schema version string */
#define LM_LMDB_BE64_LEN   8  /* bytes of a big-endian u64 */

/*
 * Converts an LMDB return code (an MDB_* code or an errno value) to an
 * lm_err: MDB_SUCCESS -> LM_OK, MDB_NOTFOUND -> LM_ENOENT, MDB_MAP_FULL ->
 * LM_EMAPFULL (these three are not logged), MDB_READERS_FULL and
 * MDB_TXN_FULL -> LM_EBUSY (logged as a warning), an errno value -> its
 * lm_err, any other MDB code -> LM_ESTORE (both logged as errors). `what`
 * names the failed call in the log line. MDB_PANIC also marks the process
 * (lm_lmdb_panicked).
 */
int lm_lmdb_err(int rc, const char *domain, const char *what);

/*
 * Whether a write failed (lm_err rc) for want of room: LM_EMAPFULL (the map
 * is full), LM_ENOSPC (the disk is), or LM_EIO, which is how LMDB reports a
 * write that a full disk cut short. A deletion needs room too (LMDB copies
 * the pages it touches): a store that must always be able to shrink splits
 * such a deletion into smaller transactions.
 */
bool lm_lmdb_no_room(int rc);

/*
 * Whether an environment of this process answered MDB_PANIC: LMDB failed
 * to write a meta page (an I/O error, a disk that filled up at that
 * moment) and refuses every transaction of that environment until it is
 * opened again, so only a restart recovers. The services' liveness checks
 * (/healthz) fail from then on, and with domain (may be NULL) the domain
 * of the first such environment is written. Any thread.
 */
bool lm_lmdb_panicked(char *domain, size_t len);

/* The liveness verdict of lm_lmdb_panicked, for lm_http_check_fn: LM_OK,
 * or LM_ESTORE with the reason in reason[0..len). */
int lm_lmdb_check_live(char *reason, size_t len);

typedef struct lm_lmdb_env_opts {
	unsigned max_dbs;     /* named databases; >= 1 */
	unsigned max_readers; /* reader slots; 0 = LMDB's default */
	uint64_t map_size;    /* initial map size in bytes; > 0 */
	unsigned flags;       /* flags of mdb_env_open (MDB_RDONLY, MDB_NOTLS, ...) */
	mode_t mode;          /* mode of created files */
} lm_lmdb_env_opts;

/*
 * Creates an environment with opts and opens it on the existing directory
 * dir; a writable one syncs dir once opened, so that the entries of the
 * files LMDB may just have created there last as long as their first
 * commit. On LM_OK the caller owns *out and closes it with mdb_env_close; on
 * error *out is NULL. Returns LM_ENOENT, not logged, when dir or (read-only)
 * its files are missing; LM_EINVAL for bad arguments; LM_ESTORE, logged
 * "<domain>.corrupt", when the data file was cut short as far as that shows
 * without reading its trees (within a page, or before the pages the last
 * commit wrote: a cut copy, which reading would end with SIGBUS);
 * other errors as lm_lmdb_err.
 */
int lm_lmdb_env_open(
    const char *dir, const lm_lmdb_env_opts *opts, const char *domain, MDB_env **out);

/* The current map size of env in bytes. */
uint64_t lm_lmdb_map_size(MDB_env *env);

/*
 * Sets the map size of env to size (0: adopt the size another process
 * recorded). Must run where no transaction of this process is open on env:
 * the caller's lock guarantees it. Returns LM_OK or an lm_err.
 */
typedef int (*lm_lmdb_resize_fn)(void *arg, MDB_env *env, uint64_t size);

/*
 * mdb_env_set_mapsize(env, size) (0: the size another process grew the map
 * to), with no transaction of the process open. When LMDB unmapped the old
 * map and could not map the new one, env is left without a map: it is
 * marked so that lm_lmdb_txn_begin and lm_lmdb_grow refuse it with
 * LM_ESTORE, the process is marked for a restart (lm_lmdb_panicked), and
 * "<domain>.unmapped" is logged; the result is then LM_ENOMEM (or
 * LM_ESTORE). Use it, not mdb_env_set_mapsize, in an lm_lmdb_resize_fn.
 */
int lm_lmdb_set_mapsize(MDB_env *env, uint64_t size, const char *domain);

/*
 * Begins a transaction (flags: 0 or MDB_RDONLY). When another process grew
 * the map (MDB_MAP_RESIZED), calls resize(arg, env, 0) to adopt its size and
 * tries again, at most LM_LMDB_RESIZE_MAX times (then LM_EBUSY). resize may
 * be NULL when the caller itself excludes every transaction of the process;
 * lm_lmdb_set_mapsize is then called directly. Returns LM_OK with *out set,
 * LM_ESTORE for an environment left without a map (lm_lmdb_set_mapsize),
 * the error of resize, or an lm_err of mdb_txn_begin.
 */
int lm_lmdb_txn_begin(MDB_env *env, unsigned flags, lm_lmdb_resize_fn resize, void *arg,
    const char *domain, MDB_txn **out);

/*
 * Grows the map of env after MDB_MAP_FULL: doubles it, but not beyond max.
 * At max already it logs "<domain>.full" and returns LM_EMAPFULL; when the
 * larger map cannot be mapped (no address space left) it returns LM_ENOMEM
 * and the map stays as it was. The size
 * is set by resize(arg, env, size), or directly when resize is NULL (as for
 * lm_lmdb_txn_begin). On LM_OK logs "<domain>.grow".
 */
int lm_lmdb_grow(
    MDB_env *env, uint64_t max, lm_lmdb_resize_fn resize, void *arg, const char *domain);

/*
 * Opens the n named databases names[i] into *dbis[i] inside txn; flags is 0
 * or MDB_CREATE. Returns LM_OK, LM_ENOENT (a database is missing and flags
 * lack MDB_CREATE) or another lm_err.
 */
int lm_lmdb_dbs_open(MDB_txn *txn, const char *const *names, MDB_dbi *const *dbis,
    size_t n, unsigned flags, const char *domain);

/*
 * Checks that key in database dbi holds the schema version `version`. When
 * the key is missing and create is true, writes it (txn must be a write
 * transaction); missing otherwise is LM_ENOENT. A different version is
 * logged under "<domain>.schema" and is LM_ESCHEMA. Other errors as
 * lm_lmdb_err. version has at most LM_LMDB_SCHEMA_MAX bytes (LM_EINVAL).
 */
int lm_lmdb_schema_check(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *version,
    bool create, const char *domain);

/*
 * Creates the directory dir with mode, and its missing parents too when
 * parents is true (mkdir -p; else a missing parent is LM_ENOENT), and
 * makes each creation durable: the directory holding a created one is
 * synced, so that a crash of the machine cannot lose the directory a
 * committed environment lives in. Returns LM_OK when dir is a directory
 * (made or already there), LM_EINVAL when dir is empty, too long or not a
 * directory, or the error of mkdir or of the sync (logged
 * "<domain>.open").
 */
int lm_lmdb_dir_make(const char *dir, mode_t mode, bool parents, const char *domain);

/*
 * Claims the directory (dev, ino) for this process: LMDB allows one
 * environment per file per process. Returns LM_OK, LM_EBUSY when this
 * process has already claimed it, or LM_ENOMEM. Claims of a parent process
 * do not count after fork(). Thread-safe.
 */
int lm_lmdb_dir_claim(dev_t dev, ino_t ino);

/* Releases a claim of lm_lmdb_dir_claim; releasing an unclaimed directory
 * is a no-op. Thread-safe. */
void lm_lmdb_dir_release(dev_t dev, ino_t ino);

/* Writes v big-endian into p[0..8): such keys sort bytewise in number order. */
void lm_lmdb_put_be64(unsigned char *p, uint64_t v);

/* Reads a big-endian u64 from p[0..8). */
uint64_t lm_lmdb_get_be64(const unsigned char *p);

/* Writes v big-endian into p[0..4). */
void lm_lmdb_put_be32(unsigned char *p, uint32_t v);

/* Reads a big-endian u32 from p[0..4). */
uint32_t lm_lmdb_get_be32(const unsigned char *p);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_LMDB_H */
