/*
 * store.h - the record store: postings, profiles and their change log in LMDB.
 *
 * One LMDB environment in the data directory holds the latest version of
 * every job posting and candidate profile (serialized protobuf, opaque to the
 * store), a durable change log (seq -> kind, id, version, deleted) that other
 * processes follow, and a little metadata. One process writes (ingest); many
 * read (match, the CLI), each through its own lm_store handle. The on-disk
 * format, tombstones, growth and how to follow the log are in docs/store.md.
 *
 * Upserts are idempotent: a put whose version is not greater than the stored
 * version (or the version of a deletion tombstone) is a no-op that returns
 * LM_ESTALE and is counted in the handle's stats. A write transaction is
 * durable when lm_store_commit returns LM_OK; a process killed at any point
 * leaves the last committed state. When the map is full the store doubles it
 * (up to max_map_size) and replays the transaction, invisibly to the caller.
 *
 * Threads: an lm_store handle may be used by many threads at once for reads
 * (get, foreach, changes, snapshot, stats, meta_get). A write transaction
 * belongs to the thread that began it, and a handle has at most one open.
 * Callbacks run inside a read transaction: they may call the read functions
 * of the same handle but must not begin, use or end a write transaction on it.
 * Such a nested read returns LM_EBUSY when another process grew the map
 * since the callback's transaction began (docs/store.md). Likewise a thread
 * holding a transaction or a callback of one store cannot grow or adopt the
 * map of another: that store's full-map write or resized-map read returns
 * LM_EBUSY (docs/store.md, "the same holds across handles").
 *
 * Processes: open a data directory at most once per process (LMDB forbids
 * two environments on the same files in one process; a second open returns
 * LM_EBUSY). A handle must not be used in a child after fork().
 */
#ifndef LUNAMATCH_STORE_H
#define LUNAMATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunamatch/v1/store.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_STORE_ID_MAX               128                /* bytes in a record id */
#define LM_STORE_VALUE_MAX            (4u * 1024 * 1024) /* bytes in a record value */
#define LM_STORE_DIR_MAX              3072               /* bytes in a dir path */
#define LM_STORE_META_KEY_MAX         128                /* bytes in a meta key */
#define LM_STORE_META_VALUE_MAX       (64u * 1024)       /* bytes in a meta value */
#define LM_STORE_MAP_SIZE_DEFAULT     (256ull << 20)
#define LM_STORE_MAX_MAP_SIZE_DEFAULT (64ull << 30)
#define LM_STORE_SCHEMA_VERSION       "1"
#define LM_STORE_READER_ID_MAX        128 /* bytes in a reader name */
/* Trimming defaults (lm_store_trim_opts); docs/store.md says why. */
#define LM_STORE_READER_LEASE_DEFAULT        300                /* seconds */
#define LM_STORE_TOMBSTONE_RETENTION_DEFAULT (30ll * 24 * 3600) /* seconds */
#define LM_STORE_TRIM_MAX_DEFAULT            1000
#define LM_STORE_TRIM_MAX                    100000

typedef struct lm_store lm_store;
typedef struct lm_store_txn lm_store_txn;

/* Record kinds; the numbers are those of lunamatch.v1.RecordKind. */
typedef enum lm_kind {
	LM_KIND_POSTING = 1,
	LM_KIND_PROFILE = 2,
} lm_kind;

/* Open flags. */
#define LM_STORE_RDONLY 0x1u /* read-only handle: no directory creation, no writes */

typedef struct lm_store_opts {
	uint64_t map_size;     /* initial map in bytes; 0 = LM_STORE_MAP_SIZE_DEFAULT */
	uint64_t max_map_size; /* growth limit; 0 = LM_STORE_MAX_MAP_SIZE_DEFAULT */
	unsigned flags;        /* LM_STORE_RDONLY */
} lm_store_opts;

/*
 * Opens (and, unless read-only, creates) the store in directory dir. A
 * missing directory is created with mode 0750 (with its missing parents).
 * opts may be NULL for the defaults. Errors: LM_EINVAL (bad options or path),
 * LM_E2BIG (a path of LM_STORE_DIR_MAX bytes or more), LM_ENOENT (read-only
 * and no store there), LM_ESCHEMA (the store has another schema version),
 * LM_EBUSY (dir already open in this process), LM_EACCES (the directory or
 * the data file may not be read or written), LM_EIO, LM_ESTORE, LM_ENOMEM. The caller
 * owns *out and frees it with lm_store_close.
 */
int lm_store_open(const char *dir, const lm_store_opts *opts, lm_store **out);

/* Closes the handle; NULL is a no-op. No transaction or read may be running. */
void lm_store_close(lm_store *s);

/*
 * Begins the write transaction of this handle. Returns LM_EBUSY if one is
 * already open, LM_ENOTSUP on a read-only handle. The transaction is used by
 * the calling thread only and ends with lm_store_commit or lm_store_abort.
 */
int lm_store_begin(lm_store *s, lm_store_txn **out);

/*
 * Stores bytes[0..len) as record id of kind k at version (>= 1) and appends a
 * change entry. The bytes are copied (bytes may be NULL when len is 0).
 * Returns LM_OK; LM_ESTALE when version <= the stored version or <= the
 * version of its tombstone (a counted no-op; the transaction stays usable);
 * LM_EINVAL (bad kind, empty id, version 0) or LM_E2BIG (id longer than
 * LM_STORE_ID_MAX, value larger than LM_STORE_VALUE_MAX), which also leave the
 * transaction usable; LM_EMAPFULL or LM_ESTORE, after which the transaction
 * can only be aborted (commit will fail).
 */
int lm_store_put(lm_store_txn *t, lm_kind k, const char *id, uint64_t version,
    const void *bytes, size_t len);

/*
 * Where a change comes from: the position of its Kafka message. Positions of
 * one partition are ordered by (epoch, offset); positions of different
 * partitions are not ordered. epoch is the writer's count of restarts of the
 * partition's offsets (a topic deleted and created again); 0 until then.
 */
typedef struct lm_store_pos {
	uint32_t epoch;
	int32_t partition; /* >= 0 */
	int64_t offset;    /* >= 0 */
} lm_store_pos;

/*
 * As lm_store_put, and the stored value remembers pos (NULL: none; the value
 * then keeps the position of the value it replaces) as the position of its
 * last change, against which later deletions are ordered. Puts themselves
 * are ordered by version only. LM_EINVAL for a negative partition or offset.
 */
int lm_store_put_at(lm_store_txn *t, lm_kind k, const char *id, uint64_t version,
    const void *bytes, size_t len, const lm_store_pos *pos);

/*
 * Deletes record id: replaces it by a tombstone that keeps the deleted
 * version (max of version and the stored one) and appends a change entry with
 * deleted = true. version 0 deletes whatever is stored. Returns LM_OK;
 * LM_ENOENT when there is no live record (if version is above the version of
 * an existing tombstone, or there is none, a tombstone fence at version is
 * still recorded so that older upserts stay no-ops; no change entry);
 * LM_ESTALE (counted) when version < the stored version. Other errors as for
 * lm_store_put.
 */
int lm_store_delete(lm_store_txn *t, lm_kind k, const char *id, uint64_t version);

/*
 * As lm_store_delete, for a deletion that comes from position pos (NULL:
 * none). A deletion with version 0 whose pos is not after the position of
 * the live value's last change (same partition; see lm_store_pos) is a replay
 * of an older message: LM_ESTALE (counted), nothing changes. That is what
 * keeps a replayed Kafka tombstone from deleting a version written after it.
 * With a version, or without comparable positions, it deletes as
 * lm_store_delete does; the tombstone remembers pos.
 */
int lm_store_delete_at(lm_store_txn *t, lm_kind k, const char *id, uint64_t version,
    const lm_store_pos *pos);

/*
 * Sets a metadata key in the transaction (no change entry). Keys starting with
 * "store." are reserved (LM_EINVAL). Limits LM_STORE_META_KEY_MAX /
 * LM_STORE_META_VALUE_MAX (LM_E2BIG).
 */
int lm_store_meta_put(lm_store_txn *t, const char *key, const void *value, size_t len);

/*
 * Commits: on LM_OK every operation of the transaction is durable (synced to
 * disk) and *last_seq (may be NULL) is the store's last change seq. Always
 * frees t, also on error (then nothing of t is stored). LM_EBUSY means the
 * store changed under a transaction that had to be replayed after growing the
 * map (only possible with a second writer process), or the map was full
 * while this thread held another store's transaction or callback (see
 * above). LM_ENOSPC means the
 * disk (or quota) is full: a write failed with under 1 MiB left on the
 * store's filesystem; LM_EIO is any other failed write.
 */
int lm_store_commit(lm_store_txn *t, uint64_t *last_seq);

/* Discards the transaction and frees it; NULL is a no-op. */
void lm_store_abort(lm_store_txn *t);

/*
 * Reads record id of kind k. On LM_OK *bytes is a malloc'd copy (the caller
 * frees it; never NULL, even for an empty value), *len its size and *version
 * its version; any of the three may be NULL. LM_ENOENT when absent or deleted.
 */
int lm_store_get(
    lm_store *s, lm_kind k, const char *id, void **bytes, size_t *len, uint64_t *version);

/*
 * Reads record id of kind k without a copy: calls fn once with its id,
 * version and bytes, which point into the store's map and are valid during
 * the call only (it runs inside a read transaction of its own, as the
 * callbacks of lm_store_foreach do). Returns LM_ENOENT when the record is
 * absent or deleted (fn is not called), another error of the store, or
 * what fn returns. Each call takes a reader slot of the store for its
 * length (LMDB's reader table is shared by every process; see
 * docs/store.md).
 */
typedef int (*lm_store_record_fn)(
    void *arg, const char *id, uint64_t version, const void *bytes, size_t len);

int lm_store_read(
    lm_store *s, lm_kind k, const char *id, lm_store_record_fn fn, void *arg);

/*
 * As lm_store_read; *damaged (may be NULL) tells where an error comes
 * from: true when the stored value was read and does not decode (a bad
 * header or position, store.corrupt logged): the record itself is
 * damaged and every read of it fails alike. False for every other error
 * (LMDB, the disk, memory, a reader slot) and for fn's, whatever its code.
 */
int lm_store_read_checked(lm_store *s, lm_kind k, const char *id, lm_store_record_fn fn,
    void *arg, bool *damaged);

/*
 * Reads the version of live record id of kind k and the Kafka position of
 * the change that wrote it (see lm_store_pos). On LM_OK *version (may be
 * NULL) is set, and *has_pos tells whether *pos holds a position (a value
 * written without one, by lm_store_put, has none). LM_ENOENT when absent
 * or deleted.
 */
int lm_store_get_pos(lm_store *s, lm_kind k, const char *id, uint64_t *version,
    lm_store_pos *pos, bool *has_pos);

/* As lm_store_get_pos, with *damaged (may be NULL) as for
 * lm_store_read_checked. */
int lm_store_get_pos_checked(lm_store *s, lm_kind k, const char *id, uint64_t *version,
    lm_store_pos *pos, bool *has_pos, bool *damaged);

/* Reads a metadata value into a malloc'd copy (NUL-terminated for
 * convenience; *len excludes the NUL). LM_ENOENT when absent. */
int lm_store_meta_get(lm_store *s, const char *key, void **value, size_t *len);

/*
 * lm_store_record_fn (above), for lm_store_foreach and lm_store_snapshot:
 * called once per live record, in id order (bytewise). The id and bytes are
 * valid during the call only. Return 0 to continue, non-zero to stop.
 */

/* Calls fn for every live record of kind k, in one consistent snapshot.
 * Returns LM_OK, an error, or the non-zero value fn stopped with. */
int lm_store_foreach(lm_store *s, lm_kind k, lm_store_record_fn fn, void *arg);

/*
 * Called once per change entry, in seq order. e is valid during the call
 * only. Return 0 to continue, non-zero to stop (the entry then counts as not
 * consumed).
 */
typedef int (*lm_store_change_fn)(
    void *arg, uint64_t seq, const Lunamatch__V1__ChangeEntry *e);

/*
 * Delivers the change entries with seq > after_seq, in order, at most max
 * (max >= 1, else LM_EINVAL). *last_seq_seen (may be NULL) receives the seq of
 * the last entry fn returned 0 for, or after_seq if none. Returns LM_OK, an
 * error (LM_EPARSE for a corrupt entry; LM_ENOMEM when one could not be
 * decoded for want of memory; LM_EGONE when entries after after_seq
 * were trimmed, see lm_store_trim: the reader must load a snapshot again), or
 * the non-zero value fn stopped with.
 */
int lm_store_changes(lm_store *s, uint64_t after_seq, size_t max, lm_store_change_fn fn,
    void *arg, uint64_t *last_seq_seen);

/* The seq of the last committed change entry (0 for an empty log). After a
 * damaged key at the log's end (lm_store_stats' damaged), the seq that key
 * could stand for: the next entry gets the seq above it. */
int lm_store_last_seq(lm_store *s, uint64_t *seq);

/*
 * Consistent snapshot for building an index: in ONE read transaction, stores
 * the change-log seq of the snapshot in *seq (may be NULL), then calls
 * postings_fn for every live posting and profiles_fn for every live profile
 * (either fn may be NULL to skip that kind). A reader that loads the snapshot
 * and then follows lm_store_changes from *seq misses nothing and sees nothing
 * twice. Returns as lm_store_foreach.
 */
int lm_store_snapshot(lm_store *s, lm_store_record_fn postings_fn,
    lm_store_record_fn profiles_fn, void *arg, uint64_t *seq);

/* As lm_store_snapshot, but a damaged record (a value that does not decode,
 * a key of an impossible size), which fails lm_store_snapshot with
 * LM_ESTORE, is passed over: logged (store.corrupt, with its kind and id)
 * and counted in *damaged (may be NULL: not counted), and the walk goes
 * on. */
int lm_store_snapshot_checked(lm_store *s, lm_store_record_fn postings_fn,
    lm_store_record_fn profiles_fn, void *arg, uint64_t *seq, uint64_t *damaged);

/*
 * Marks: a set of (kind, id) pairs beside the records, for a writer that
 * reads its whole source again and must then find the records the source
 * no longer holds (ingest's refill, docs/ingest.md). It marks every record
 * it reads, in the transaction that applies what it read, then walks the
 * live records it did not mark (lm_store_foreach_unmarked) and deletes
 * them, and clears the marks. A mark is independent of the record: an id
 * that is absent, or whose write was stale, may be marked, and a later
 * write or deletion of the record leaves its mark. Marks are kept in their
 * own database and are not part of the change log (docs/store.md,
 * "Marks"). Writable handles only.
 */

/* Marks record id of kind k in t. LM_OK; LM_EINVAL (bad kind or id) or
 * LM_E2BIG (id too long), which leave t usable; other errors as for
 * lm_store_put. */
int lm_store_mark(lm_store_txn *t, lm_kind k, const char *id);

/* Removes every mark, in t. Errors as for lm_store_put. */
int lm_store_marks_clear(lm_store_txn *t);

/*
 * Calls fn for each live record of kind k that is not marked, among the
 * next max (>= 1) records in id order (bytewise; live ones and tombstones
 * count, damaged values are passed over: store.corrupt) after id `after`
 * (NULL or "": from the first), in one read transaction. next (at least
 * LM_STORE_ID_MAX + 1 bytes) receives the last id examined, and *end
 * whether the walk reached the end of the kind (next is "" then). Returns
 * LM_OK, LM_EINVAL, LM_E2BIG (after too long), LM_ENOTSUP on a read-only
 * handle, another store error, or the non-zero value fn stopped with.
 */
int lm_store_foreach_unmarked(lm_store *s, lm_kind k, const char *after, size_t max,
    lm_store_record_fn fn, void *arg, char *next, bool *end);

/* Named by its struct tag only: lm_store_stats is also the function below,
 * and C gives typedefs and functions one namespace. */
struct lm_store_stats {
	uint64_t postings;      /* live postings */
	uint64_t profiles;      /* live profiles */
	uint64_t tombstones;    /* deletion tombstones, both kinds */
	uint64_t changes;       /* entries in the change log */
	uint64_t last_seq;      /* last change seq */
	uint64_t low_water;     /* entries up to this seq were trimmed (0: none) */
	uint64_t map_size;      /* current map size in bytes */
	uint64_t map_used;      /* bytes of the map in use (last page) */
	uint64_t stale_skipped; /* LM_ESTALE results of this handle */
	uint64_t map_grows;     /* map growths by this handle */
	uint64_t marks;         /* marked records (lm_store_mark); 0 in a
	                         * read-only handle */
	uint64_t damaged;       /* damaged entries met by this handle's reads
	                         * and writes, each logged (store.corrupt): keys
	                         * (of a foreign writer) found at the change
	                         * log's end, once per key (the next seq goes
	                         * above what such a key could stand for), and
	                         * record values that do not decode, replaced by
	                         * a committed put or deletion, and live or
	                         * tombstone counters that are not 8 bytes
	                         * long, recounted (once per counter) */
};

/* Fills st from one read transaction plus the handle's counters. */
int lm_store_stats(lm_store *s, struct lm_store_stats *st);

/*
 * Readers of the change log. A reader that follows the log (a match
 * service) records, under a name unique among the store's readers, the seq
 * it has applied, and renews it at least every lease / 4 (a heartbeat, also
 * when the seq did not move): lm_store_trim keeps every entry after the
 * lowest seq of the readers heard from within the lease. at is the time of
 * the record in Unix seconds, 0 = now (LM_EINVAL when negative). Each call
 * is a write transaction of its own: LM_EBUSY while this handle has one
 * open, LM_ENOTSUP on a read-only handle; LM_EINVAL / LM_E2BIG for a bad
 * name (1.. LM_STORE_READER_ID_MAX bytes of printable UTF-8, as record ids).
 */
int lm_store_reader_set(lm_store *s, const char *reader, uint64_t seq, int64_t at);

/* Forgets reader (a reader that stops cleanly). LM_ENOENT when unknown;
 * otherwise as lm_store_reader_set. */
int lm_store_reader_remove(lm_store *s, const char *reader);

typedef struct lm_store_trim_opts {
	int64_t now;                 /* Unix seconds, >= 0; 0 = time(NULL) */
	int64_t reader_lease_s;      /* 0 = LM_STORE_READER_LEASE_DEFAULT */
	int64_t tombstone_retention; /* seconds; 0 = the default */
	size_t max;                  /* work bound; 0 = LM_STORE_TRIM_MAX_DEFAULT, at most
	                              * LM_STORE_TRIM_MAX */
} lm_store_trim_opts;

typedef struct lm_store_trim_result {
	uint64_t changes_trimmed;    /* change entries removed */
	uint64_t tombstones_removed; /* tombstones older than the retention removed */
	uint64_t readers;            /* readers within their lease */
	uint64_t readers_expired;    /* readers past their lease, forgotten */
	uint64_t low_water;          /* entries up to this seq are now trimmed */
	uint64_t damaged;            /* damaged record keys and values passed over, reader
	                              * records and change keys removed (each logged:
	                              * store.corrupt) */
	bool more;                   /* stopped at the bound: call again soon */
} lm_store_trim_result;

/*
 * Compacts the store, in ONE write transaction bounded by opts->max (NULL:
 * the defaults):
 *
 *  - frees the slots of LMDB's reader table held by processes that died
 *    inside a read (they pin the pages of their snapshot);
 *  - forgets the readers not heard from within the lease;
 *  - removes at most max of the oldest change entries, those with seq <= the
 *    lowest seq of the remaining readers (all of them when there is no
 *    reader); the newest entry always stays, so that seqs never restart;
 *  - examines at most max record values, going on from where the previous
 *    call of this handle stopped (a cycle through both kinds), and removes
 *    the tombstones deleted more than the retention ago. A tombstone written
 *    before tombstones carried their time gets the time of this call.
 *
 * A reader whose position is below the trimmed entries gets LM_EGONE from
 * lm_store_changes. The caller repeats the call while *r says more, leaving
 * its writes room in between; a call that changes nothing writes nothing.
 * Returns LM_OK, LM_EINVAL (bad options), LM_EBUSY (a write transaction of
 * this handle is open), LM_ENOTSUP (read-only) or a store error (nothing
 * trimmed then). r may be NULL.
 */
int lm_store_trim(lm_store *s, const lm_store_trim_opts *opts, lm_store_trim_result *r);

/* "posting" / "profile"; "unknown" for any other value. */
const char *lm_kind_name(lm_kind k);

/* Whether the store takes id as a record id (what its writes and reads
 * check: 1..LM_STORE_ID_MAX bytes of UTF-8 text without control
 * characters). A change entry naming another id is damaged. */
bool lm_store_id_ok(const char *id);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_STORE_H */
