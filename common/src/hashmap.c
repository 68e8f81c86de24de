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

struct slot {
	uint64_t hash; /* 0: empty */
	const char *key;
	void *value;
};

struct lm_hashmap {
	struct slot *slots;
	size_t nslots; /* power of two, or 0 before the first put */
	size_t n;
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
	free(m->slots);
	free(m);
}

size_t
lm_hashmap_count(const lm_hashmap *m)
{
	return m == NULL ? 0 : m->n;
}

/* The slot of key (hash h), or the empty slot where it would go. The table
 * is never full, so the probe ends. */
static struct slot *
probe(const lm_hashmap *m, const char *key, uint64_t h)
{
	size_t mask = m->nslots - 1;

	for (size_t i = (size_t) h & mask;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];
		if (s->hash == 0 || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
	}
}

void *
lm_hashmap_get(const lm_hashmap *m, const char *key)
{
	if (m == NULL || key == NULL || m->n == 0)
		return NULL;
	return probe(m, key, lm_hash_str(key))->value;
}

static int
resize(lm_hashmap *m, size_t nslots)
{
	struct slot *old = m->slots;
	size_t oldn = m->nslots;

	if ((m->slots = calloc(nslots, sizeof(*m->slots))) == NULL) {
		m->slots = old;
		return LM_ENOMEM;
	}
	m->nslots = nslots;
	for (size_t i = 0; i < oldn; i++)
		if (old[i].hash != 0)
			*probe(m, old[i].key, old[i].hash) = old[i];
	free(old);
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
	if (m->nslots > 0 && (s = probe(m, key, h))->hash != 0) {
		s->key = key;
		s->value = value;
		return LM_OK;
	}
	if (m->n >= LM_HASHMAP_ENTRIES_MAX)
		return LM_E2BIG;
	if (2 * (m->n + 1) > m->nslots &&
	    (rc = resize(m, m->nslots ? m->nslots * 2 : SLOTS_MIN)) != LM_OK)
		return rc;
	s = probe(m, key, h);
	s->hash = h;
	s->key = key;
	s->value = value;
	m->n++;
	return LM_OK;
}

void *
lm_hashmap_remove(lm_hashmap *m, const char *key)
{
	size_t mask, i, j;
	struct slot *s;
	void *value;

	if (m == NULL || key == NULL || m->n == 0)
		return NULL;
	s = probe(m, key, lm_hash_str(key));
	if (s->hash == 0)
		return NULL;
	value = s->value;
	mask = m->nslots - 1;
	i = (size_t) (s - m->slots);
	/* Backward shift: move later entries of the run into the hole when
	 * their home slot is not between the hole and them. */
	for (j = (i + 1) & mask; m->slots[j].hash != 0; j = (j + 1) & mask) {
		size_t home = (size_t) m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	memset(&m->slots[i], 0, sizeof(m->slots[i]));
	m->n--;
	return value;
}

bool
lm_hashmap_next(const lm_hashmap *m, size_t *iter, const char **key, void **value)
{
	if (m == NULL)
		return false;
	for (; *iter < m->nslots; (*iter)++) {
		const struct slot *s = &m->slots[*iter];
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
