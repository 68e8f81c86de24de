/*
 * hashmap.c - open-addressing string map and the string hash; see
 * hashmap.h. One implementation for every table keyed by text (skill ids,
 * record ids, taxonomy keys), so that hashing and probing are written once.
 */
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"

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

int
lm_hashmap_new(lm_hashmap **out)
{
	*out = calloc(1, sizeof(**out));
	return *out == NULL ? LM_ENOMEM : LM_OK;
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
	s = find(m, key, lm_hash_str(key));
	return s != NULL ? s->value : NULL;
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
	h = lm_hash_str(key);
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
	h = lm_hash_str(key);
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
