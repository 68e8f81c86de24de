/*
 * hashmap.c - open-addressing string map and the string hashes; see
 * hashmap.h. One implementation for every table keyed by text (skill ids,
 * record ids, taxonomy keys), so that hashing and probing are written once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/random.h"

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL
#define SLOTS_MIN  16 /* a power of two */
/* Old slots moved per put or remove while the map grows: a growth costs
 * each writer a bounded slice of work instead of one pass over the whole
 * table (a writer holding a lock against readers would stall them for it).
 * The new table has room for as many puts as the old one has slots / 2
 * before it must grow again; moving MIGRATE_STEP >= 2 slots per write ends
 * the move well before that. */
#define MIGRATE_STEP 64

struct slot {
	uint64_t hash; /* 0: empty */
	const char *key;
	void *value;
};

/* One open-addressing table. */
struct table {
	struct slot *slots;
	size_t nslots; /* power of two, or 0 */
};

/*
 * While the map grows, entries live in two tables: cur (twice the size) and
 * old, whose slots are moved to cur a few at a time, walking cyclically
 * from the empty slot `from` up to `to`. Slots in [from, to) of old are
 * moved and empty. A run of old that reaches into that range started after
 * `from` (which was empty), so a probe of old whose home lies in the moved
 * range starts at `to` instead; deletions shift entries backwards only
 * within the unmoved range, which keeps that true.
 */
struct lm_hashmap {
	uint64_t k0, k1; /* the key of the hash: the process's, see seed_once() */
	struct table cur, old;
	size_t from, to, left; /* moving: old slots still to visit */
	size_t n;              /* entries in both tables */
};

/* The mixing step of MurmurHash3 (fmix64): FNV's high bits barely vary
 * for short texts, and slots are chosen from the low bits of the mix. */
static uint64_t
mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h != 0 ? h : 1;
}

uint64_t
lm_hash_bytes(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = FNV_OFFSET;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return mix(h);
}

uint64_t
lm_hash_str(const char *s)
{
	return lm_hash_bytes(s, strlen(s));
}

uint64_t
lm_hash_fold(const char *s)
{
	uint64_t h = FNV_OFFSET;

	for (const unsigned char *c = (const unsigned char *) s; *c != '\0'; c++) {
		h ^= (uint64_t) ((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
		h *= FNV_PRIME;
	}
	return mix(h);
}

static uint64_t
rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

/* The little-endian 64-bit word at p (any alignment). */
static uint64_t
le64(const unsigned char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

#define SIPROUND                                                                         \
	do {                                                                             \
		v0 += v1;                                                                \
		v1 = rotl(v1, 13) ^ v0;                                                  \
		v0 = rotl(v0, 32);                                                       \
		v2 += v3;                                                                \
		v3 = rotl(v3, 16) ^ v2;                                                  \
		v0 += v3;                                                                \
		v3 = rotl(v3, 21) ^ v0;                                                  \
		v2 += v1;                                                                \
		v1 = rotl(v1, 17) ^ v2;                                                  \
		v2 = rotl(v2, 32);                                                       \
	} while (0)

/* SipHash-1-3 of data under the key (k0, k1). */
static uint64_t
sip13(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + (len & ~(size_t) 7);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t m, last = (uint64_t) len << 56;

	for (; p != end; p += 8) {
		m = le64(p);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	switch (len & 7) {
	case 7:
		last |= (uint64_t) p[6] << 48;
		/* fall through */
	case 6:
		last |= (uint64_t) p[5] << 40;
		/* fall through */
	case 5:
		last |= (uint64_t) p[4] << 32;
		/* fall through */
	case 4:
		last |= (uint64_t) p[3] << 24;
		/* fall through */
	case 3:
		last |= (uint64_t) p[2] << 16;
		/* fall through */
	case 2:
		last |= (uint64_t) p[1] << 8;
		/* fall through */
	case 1:
		last |= p[0];
	}
	v3 ^= last;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
lm_siphash13(const unsigned char key[16], const void *data, size_t len)
{
	return sip13(le64(key), le64(key + 8), data, len);
}

static struct {
	pthread_once_t once;
	uint64_t k0, k1;
} seed_of = {PTHREAD_ONCE_INIT, 0, 0};

/* Draws the process's key from the kernel's random source, which blocks
 * only until it is first ready. A kernel without getrandom gets a key from
 * the clock, the process id and addresses that ASLR places. */
static void
seed_once(void)
{
	unsigned char raw[16];
	struct timespec ts;

	if (lm_random_bytes(raw, sizeof(raw), true) == LM_OK) {
		seed_of.k0 = le64(raw);
		seed_of.k1 = le64(raw + 8);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	seed_of.k0 = (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
	seed_of.k1 = ((uint64_t) getpid() << 32) ^ (uint64_t) (uintptr_t) &ts ^
	             rotl((uint64_t) (uintptr_t) &seed_of, 29);
}

/* The map's hash of key, never 0. */
static uint64_t
key_hash(const lm_hashmap *m, const char *key)
{
	uint64_t h = sip13(m->k0, m->k1, key, strlen(key));
	return h != 0 ? h : 1;
}

int
lm_hashmap_new(lm_hashmap **out)
{
	pthread_once(&seed_of.once, seed_once);
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return LM_ENOMEM;
	(*out)->k0 = seed_of.k0;
	(*out)->k1 = seed_of.k1;
	return LM_OK;
}

void
lm_hashmap_free(lm_hashmap *m)
{
	if (m == NULL)
		return;
	free(m->cur.slots);
	free(m->old.slots);
	free(m);
}

size_t
lm_hashmap_count(const lm_hashmap *m)
{
	return m == NULL ? 0 : m->n;
}

bool
lm_hashmap_growing(const lm_hashmap *m)
{
	return m != NULL && m->old.slots != NULL;
}

/* Whether slot i of old has been moved. */
static bool
moved(const lm_hashmap *m, size_t i)
{
	size_t mask = m->old.nslots - 1;
	return ((i - m->from) & mask) < ((m->to - m->from) & mask);
}

/* The slot of key (hash h) in t, or the empty slot where it would go,
 * probing from slot `at`. A table is never full, so the probe ends. */
static struct slot *
probe_at(const struct table *t, const char *key, uint64_t h, size_t at)
{
	size_t mask = t->nslots - 1;
	for (size_t i = at & mask;; i = (i + 1) & mask) {
		struct slot *s = &t->slots[i];
		if (s->hash == 0 || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
	}
}

static struct slot *
probe(const struct table *t, const char *key, uint64_t h)
{
	return probe_at(t, key, h, (size_t) h);
}

/* The slot of key in old while moving, or NULL when it is not there. */
static struct slot *
probe_old(const lm_hashmap *m, const char *key, uint64_t h)
{
	size_t home = (size_t) h & (m->old.nslots - 1);
	struct slot *s;

	if (m->old.slots == NULL)
		return NULL;
	s = probe_at(&m->old, key, h, moved(m, home) ? m->to : home);
	return s->hash != 0 ? s : NULL;
}

/* The entry of key in either table, or NULL. */
static struct slot *
find(const lm_hashmap *m, const char *key, uint64_t h)
{
	struct slot *s;

	if (m->cur.nslots > 0 && (s = probe(&m->cur, key, h))->hash != 0)
		return s;
	return probe_old(m, key, h);
}

void *
lm_hashmap_get(const lm_hashmap *m, const char *key)
{
	struct slot *s;

	if (m == NULL || key == NULL || m->n == 0)
		return NULL;
	s = find(m, key, key_hash(m, key));
	return s != NULL ? s->value : NULL;
}

/* The probe length past the start of every entry of t, summed; old: t is
 * the old table of m, whose probes may start at `to`. */
static size_t
table_probes(const lm_hashmap *m, const struct table *t, bool old)
{
	size_t mask = t->nslots - 1, sum = 0;

	for (size_t i = 0; i < t->nslots; i++) {
		size_t at;
		if (t->slots[i].hash == 0)
			continue;
		at = (size_t) t->slots[i].hash & mask;
		if (old && moved(m, at))
			at = m->to;
		sum += (i - at) & mask;
	}
	return sum;
}

size_t
lm_hashmap_probes(const lm_hashmap *m)
{
	if (m == NULL)
		return 0;
	return table_probes(m, &m->cur, false) + table_probes(m, &m->old, true);
}

/* Moves up to `steps` slots of old into cur; frees old when all are. */
static void
migrate(lm_hashmap *m, size_t steps)
{
	size_t mask = m->old.nslots - 1;

	while (m->old.slots != NULL && steps-- > 0) {
		struct slot *s = &m->old.slots[m->to];
		if (s->hash != 0) {
			*probe(&m->cur, s->key, s->hash) = *s;
			memset(s, 0, sizeof(*s));
		}
		m->to = (m->to + 1) & mask;
		if (--m->left == 0) {
			free(m->old.slots);
			memset(&m->old, 0, sizeof(m->old));
		}
	}
}

/* Starts growing into a table of nslots: the current one becomes old. */
static int
grow(lm_hashmap *m, size_t nslots)
{
	struct slot *slots;
	size_t i;

	/* A growth still under way ends first (a slice of work is bounded
	 * only while writes outpace growths, which MIGRATE_STEP ensures). */
	migrate(m, SIZE_MAX);
	if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
		return LM_ENOMEM;
	m->old = m->cur;
	m->cur.slots = slots;
	m->cur.nslots = nslots;
	if (m->old.slots == NULL)
		return LM_OK;
	for (i = 0; m->old.slots[i].hash != 0; i++)
		; /* at most half full: an empty slot exists */
	m->from = i;
	m->to = i;
	m->left = m->old.nslots;
	return LM_OK;
}

int
lm_hashmap_put(lm_hashmap *m, const char *key, void *value)
{
	uint64_t h;
	struct slot *s;
	int rc;

	if (m == NULL || key == NULL || value == NULL)
		return LM_EINVAL;
	h = key_hash(m, key);
	if ((s = find(m, key, h)) != NULL) {
		s->key = key;
		s->value = value;
		return LM_OK;
	}
	if (m->n >= LM_HASHMAP_ENTRIES_MAX)
		return LM_E2BIG;
	if (2 * (m->n + 1) > m->cur.nslots &&
	    (rc = grow(m, m->cur.nslots ? m->cur.nslots * 2 : SLOTS_MIN)) != LM_OK)
		return rc;
	s = probe(&m->cur, key, h);
	s->hash = h;
	s->key = key;
	s->value = value;
	m->n++;
	migrate(m, MIGRATE_STEP);
	return LM_OK;
}

/* Empties slot s of t by backward shift: later entries of its run move into
 * the hole when their home is not between the hole and them. In old, the
 * run ends before the moved range (whose slots are empty), and an entry
 * whose home lies in that range is farther from its home than from any
 * hole of the run, as its probe from `to` needs. */
static void
erase(struct table *t, struct slot *s)
{
	size_t mask = t->nslots - 1, i = (size_t) (s - t->slots), j;

	for (j = (i + 1) & mask; t->slots[j].hash != 0; j = (j + 1) & mask) {
		size_t home = (size_t) t->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	memset(&t->slots[i], 0, sizeof(t->slots[i]));
}

void *
lm_hashmap_remove(lm_hashmap *m, const char *key)
{
	struct slot *s;
	uint64_t h;
	void *value;

	if (m == NULL || key == NULL || m->n == 0)
		return NULL;
	h = key_hash(m, key);
	if (m->cur.nslots > 0 && (s = probe(&m->cur, key, h))->hash != 0) {
		value = s->value;
		erase(&m->cur, s);
	} else if ((s = probe_old(m, key, h)) != NULL) {
		value = s->value;
		erase(&m->old, s);
	} else {
		return NULL;
	}
	m->n--;
	migrate(m, MIGRATE_STEP);
	return value;
}

bool
lm_hashmap_next(const lm_hashmap *m, size_t *iter, const char **key, void **value)
{
	if (m == NULL)
		return false;
	for (; *iter < m->cur.nslots + m->old.nslots; (*iter)++) {
		size_t i = *iter;
		const struct slot *s = i < m->cur.nslots
		                           ? &m->cur.slots[i]
		                           : &m->old.slots[i - m->cur.nslots];
		if (s->hash != 0) {
			if (key != NULL)
				*key = s->key;
			if (value != NULL)
				*value = s->value;
			(*iter)++;
			return true;
		}
	}
	return false;
}
