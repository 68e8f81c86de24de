/*
 * hashmap.h - the one hash map of the code base: string keys to pointers,
 * and the string hashes.
 *
 * Open addressing with linear probing and backward-shift deletion, at most
 * half full, so a lookup costs one hash and, on average, one or two probes.
 * Growth is incremental: the map doubles into a new table and each later
 * put or remove moves a bounded number of old slots, so no single write
 * pays for rehashing the whole map (a lookup meanwhile may probe both
 * tables).
 * Keys are borrowed: the map keeps the pointer it was given, which must stay
 * valid and unchanged while the entry is in the map (typically the key lives
 * in the value, as an id inside a record). Not thread-safe for writes: the
 * caller serializes writers against readers; concurrent readers are safe.
 *
 * Keys come from peers (record ids from Kafka), so the map places them by a
 * keyed hash, SipHash-1-3, under a key drawn once per process from
 * getrandom(): with an unkeyed hash anyone could compute ids that share a
 * slot and make every put, lookup and remove walk all of them (hash
 * flooding). SipHash is a pseudorandom function of its key, so such ids
 * cannot be found without it; 1-3 rounds, as in the hash tables of Python
 * and Rust, costs about what FNV-1a did on ids. It is written here, not
 * taken from a library: the public client library compiles this file and
 * may need only nng and protobuf-c, libcrypto's SipHash is a MAC object
 * far slower per call than the hash, and libxxhash's seeded XXH3 has pairs
 * of texts that collide under a large share of seeds. Slots, and so
 * iteration order, differ from one process to the next; what the map
 * answers does not.
 */
#ifndef LUNAMATCH_HASHMAP_H
#define LUNAMATCH_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_HASHMAP_ENTRIES_MAX ((size_t) 1 << 30) /* entries in one map */

/* 64-bit FNV-1a (offset basis 14695981039346656037) with a final mix, so
 * that every bit of the result depends on every byte. Never 0, so that 0
 * can mean "no text". lm_hash_fold hashes the text with A-Z read as a-z (as
 * strcasecmp compares in the C locale): texts equal under strcasecmp have
 * equal folded hashes. Unkeyed and the same in every process and build
 * (stored keys depend on it): anyone can find texts with equal hashes, so
 * never let texts a peer chooses pick slots or buckets by it. */
uint64_t lm_hash_bytes(const void *data, size_t len);
uint64_t lm_hash_str(const char *s);
uint64_t lm_hash_fold(const char *s);

/* SipHash-1-3 of data under key (bytes as the reference implementation
 * reads them), the map's hash. */
uint64_t lm_siphash13(const unsigned char key[16], const void *data, size_t len);

typedef struct lm_hashmap lm_hashmap;

/* A new empty map. Returns LM_OK or LM_ENOMEM. The first call of a process
 * draws its hash key and may wait until the kernel's random source is ready
 * (only early in boot). */
int lm_hashmap_new(lm_hashmap **out);
void lm_hashmap_free(lm_hashmap *m); /* NULL is a no-op; values are not freed */

/* Entries in the map. m may be NULL (0). */
size_t lm_hashmap_count(const lm_hashmap *m);

/* Whether a growth is under way (entries still in the old table). */
bool lm_hashmap_growing(const lm_hashmap *m);

/* The slots that a lookup of each entry probes past its first, summed over
 * the entries: 0 when every entry sits where its probe starts. With well
 * spread hashes it stays near half the count; keys that share probe starts
 * make it grow with the square of their number. O(slots); for tests and
 * diagnostics. m may be NULL (0). */
size_t lm_hashmap_probes(const lm_hashmap *m);

/* The value of key, NULL when absent. */
void *lm_hashmap_get(const lm_hashmap *m, const char *key);

/* Sets key to value (value may not be NULL). A present key keeps its entry
 * and takes the new key pointer and value. Returns LM_OK, LM_EINVAL (NULL
 * key or value) or LM_ENOMEM / LM_E2BIG (then the map is unchanged). */
int lm_hashmap_put(lm_hashmap *m, const char *key, void *value);

/* Removes key; returns its value, NULL when it was absent. */
void *lm_hashmap_remove(lm_hashmap *m, const char *key);

/* Iteration in slot order: start with *iter = 0; each call that returns true
 * gives one entry. The map must not change during the iteration. The order
 * follows the process's hash key: a caller whose output shows it sorts. */
bool lm_hashmap_next(const lm_hashmap *m, size_t *iter, const char **key, void **value);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_HASHMAP_H */
