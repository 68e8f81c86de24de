/*
 * dqueue.h - a durable FIFO of byte messages on LMDB.
 *
 * What a service must not lose while a broker is away goes here first: the
 * messages are appended in one synced transaction, read back oldest first,
 * and removed once the broker has acknowledged them. Each message gets a
 * sequence number that only grows (a big-endian u64 key), so the order of
 * appends is the order of reads, across restarts.
 *
 * One directory holds one queue (an LMDB environment of its own, created
 * with mode 0700 if missing); one process opens it at a time. The map
 * starts at LM_DQUEUE_MAP_SIZE and doubles when full, up to the maximum
 * given to lm_dqueue_open; beyond it appends fail with LM_EMAPFULL and
 * nothing already queued is touched.
 *
 * Thread-safety: every function may be called from any thread. Appends,
 * removals and syncs run one at a time, each holding the queue's write
 * lock across its transaction and disk sync. Reads (lm_dqueue_peek,
 * lm_dqueue_count) do not take that lock: an append never waits for a
 * peek, however many messages the peek passes to its callback (but for
 * the removal of damaged keys a peek met, which is a removal). Reads wait
 * for a removal, and for an append only while it grows the map (or after
 * a removal finds the map full); these in turn wait for the slice a
 * running peek is in, at most LM_DQUEUE_PEEK_SLICE of its callbacks.
 */
#ifndef LUNAMATCH_DQUEUE_H
#define LUNAMATCH_DQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_DQUEUE_MSG_MAX    (1u << 20)    /* bytes of one message */
#define LM_DQUEUE_MAP_SIZE   (16ull << 20) /* initial map size */
#define LM_DQUEUE_BATCH_MAX  100000        /* messages of one append or peek */
#define LM_DQUEUE_PEEK_SLICE 256           /* messages of one read transaction */

typedef struct lm_dqueue lm_dqueue;

/* A message to append: len bytes at data (copied). */
typedef struct lm_dqueue_msg {
	const void *data;
	size_t len;
} lm_dqueue_msg;

/*
 * Opens (creating if missing) the queue in directory dir, whose parent must
 * exist. max_map is the largest map in bytes (>= LM_DQUEUE_MAP_SIZE);
 * domain names the queue in logs (at most 32 bytes). On LM_OK the caller
 * owns *out and closes it with lm_dqueue_close. Errors: LM_EINVAL (bad
 * arguments, dir not a directory), LM_EEXIST (open in this process
 * already), LM_ESCHEMA (another format), LM_ESTORE or an errno-derived code.
 */
int lm_dqueue_open(
    const char *dir, uint64_t max_map, const char *domain, lm_dqueue **out);

/* Closes the queue; NULL is a no-op. No other call may be running. */
void lm_dqueue_close(lm_dqueue *q);

/*
 * Appends msgs[0..n) (1 <= n <= LM_DQUEUE_BATCH_MAX) in one transaction that
 * is on disk when LM_OK returns; *first_seq (may be NULL) is the sequence
 * number of msgs[0], the others follow it. All or none are stored. Errors:
 * LM_EINVAL, LM_E2BIG (a message over LM_DQUEUE_MSG_MAX), LM_EMAPFULL (the
 * queue is at its largest map), LM_ENOSPC, LM_EIO, LM_ESTORE.
 */
int lm_dqueue_append(
    lm_dqueue *q, const lm_dqueue_msg *msgs, size_t n, uint64_t *first_seq);

/* Called for each message of lm_dqueue_peek; data is valid during the call
 * only. Return 0 to go on, non-zero to stop. It must not call a function
 * of the queue (that could wait for itself). */
typedef int (*lm_dqueue_fn)(void *arg, uint64_t seq, const void *data, size_t len);

/*
 * Calls fn for the oldest messages with seq > after (0: from the start), at
 * most max (1..LM_DQUEUE_BATCH_MAX), in increasing seq order. The pass reads
 * slices of at most LM_DQUEUE_PEEK_SLICE messages, each in a read
 * transaction of its own, so it is not one snapshot: a slice also sees the
 * messages appended before it began (after every older one), and a message
 * removed during the pass may be passed or not. Returns LM_OK, an error,
 * or the non-zero value fn stopped with.
 *
 * A damaged key met on the way, one that is no sequence number (not 8
 * bytes, or seq 0: disk damage or another program's write), is no error:
 * it is passed over (fn never sees it), logged as "<domain>.corrupt" with
 * its size, and removed after the slice that met it, in a synced
 * transaction that waits and is waited for like lm_dqueue_remove; those
 * removed are counted (lm_dqueue_damaged). A removal that fails is
 * logged, and a later peek meets the key again.
 */
int lm_dqueue_peek(lm_dqueue *q, uint64_t after, size_t max, lm_dqueue_fn fn, void *arg);

/*
 * Removes the messages seqs[0..n) in one synced transaction, or, when a
 * full map or a full disk has no room for that, in several (dqueue.c): a
 * full queue can always be emptied. Seqs that are not queued are ignored. Returns LM_OK
 * or an error; on an error the transactions before it are removed. Appends wait for the
 * whole removal: the caller bounds n.
 */
int lm_dqueue_remove(lm_dqueue *q, const uint64_t *seqs, size_t n);

/*
 * Switches the queue between synced transactions (sync true, the default:
 * an append or a removal is on disk when it returns) and transactions that
 * are only written to the file (false; LMDB's MDB_NOSYNC): they survive a
 * crash of the process, but an operating system crash or a power loss
 * loses those since the last lm_dqueue_sync, and on a file system that
 * does not keep the order of writes can damage the queue. LM_OK or
 * LM_ESTORE.
 */
int lm_dqueue_set_sync(lm_dqueue *q, bool sync);

/* Flushes the transactions written so far to disk. LM_OK, LM_EIO,
 * LM_ENOSPC or LM_ESTORE. */
int lm_dqueue_sync(lm_dqueue *q);

/* Messages queued now (damaged keys not yet removed included). */
uint64_t lm_dqueue_count(lm_dqueue *q);

/* Damaged keys (see lm_dqueue_peek) removed from the queue since it was
 * opened. Any thread. */
uint64_t lm_dqueue_damaged(lm_dqueue *q);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_DQUEUE_H */
