/*
 * random.h - random bytes from the kernel, for the ids and keys that must
 * not repeat or be guessed: store identities, decision ids, refill ids,
 * the hash map's key, the client's request id base.
 *
 * One source, read one way: getrandom(2), retried when a signal cuts the
 * wait for the kernel's pool (it blocks only until the pool is first ready,
 * early in a machine's boot), and never a short read taken for a whole one.
 */
#ifndef LUNAMATCH_RANDOM_H
#define LUNAMATCH_RANDOM_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest n of one call: what getrandom gives whole in one read. */
#define LM_RANDOM_MAX 256

/*
 * Fills buf[0..n) with random bytes. wait: block until the kernel's pool
 * is ready (only early in boot); otherwise fail at once then. Returns
 * LM_OK; LM_EINVAL (buf NULL, n 0 or above LM_RANDOM_MAX); LM_EBUSY
 * (!wait, the pool not ready yet); LM_EIO (no random source: a kernel
 * without getrandom, or a sandbox that refuses it). buf is unspecified on
 * failure.
 */
int lm_random_bytes(void *buf, size_t n, bool wait);

/*
 * Writes 2 * n random lower-case hex digits and a NUL into hex (room for
 * 2 * n + 1 bytes), from n random bytes (lm_random_bytes, waiting). Same
 * returns; hex is "" on failure.
 */
int lm_random_hex(char *hex, size_t n);

#ifdef __cplusplus
}
#endif

#endif
