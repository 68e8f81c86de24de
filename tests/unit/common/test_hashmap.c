/*
 * test_hashmap.c - the shared string map: it agrees with a plain array
 * model through random puts and removes (backward-shift deletion keeps every
 * key findable), iterates every entry once, and the hash is FNV-1a with the
 * standard offset basis. Growth is incremental: puts, removes and lookups
 * that meet a growth under way agree with the model at every step. The map
 * places keys by SipHash-1-3 under a key of its own, so keys chosen to
 * collide under the public hash do not pile up.
 */
#include <stdio.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"

#define KEYS 5000

static void
test_hash_is_fnv1a(void **state)
{
	(void) state;
	/* FNV-1a 64 of "a" is af63dc4c8601ec8c (the published test vector);
	 * the map's hash is that value through the murmur3 finalizer. */
	uint64_t h = 0xaf63dc4c8601ec8cULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	assert_true(lm_hash_str("a") == h);
	assert_true(lm_hash_bytes("a", 1) == h);
	assert_true(lm_hash_fold("A") == h);
	assert_true(lm_hash_fold("New York") == lm_hash_fold("nEW yORK"));
	assert_true(lm_hash_str("New York") != lm_hash_str("new york"));
	assert_true(lm_hash_str("") != 0);
}

/* SipHash-1-3 under the all-zero key of the texts 00, 00 01, ... as the
 * reference implementation computes them. */
static void
test_siphash13(void **state)
{
	static const uint64_t want[] = {0xd1fba762150c532cULL, 0x68a914128e01e473ULL,
	    0x010bac45c41e3669ULL, 0x4d4c9a4a8ef6e0adULL, 0x7cc43f98813e4dbdULL,
	    0x5abe2169dff36275ULL, 0xe3c25f87624f1cdbULL, 0x2f098ab0c751325aULL,
	    0xead411e67ebe2eeaULL, 0x75927f9d95124362ULL, 0xaf9f77a65ab51a1dULL,
	    0xfe64ce8b6617fcffULL, 0xa6baf4fb0f9fe1c2ULL, 0xa0cf3211850f8e0dULL,
	    0x7f86049379fbfe67ULL, 0xf30eb725bb91c9eaULL, 0x8972188433a5c5b7ULL,
	    0x4883c49a2c009c1dULL};
	static const unsigned char zero[16];
	unsigned char text[sizeof(want) / sizeof(want[0])];

	(void) state;
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (unsigned char) i;
	for (size_t n = 0; n < sizeof(want) / sizeof(want[0]); n++)
		assert_true(lm_siphash13(zero, text, n) == want[n]);
}

static void
test_model(void **state)
{
	static char keys[KEYS][16];
	static bool in[KEYS];
	lm_hashmap *m = NULL;
	uint64_t r = 88172645463325252ULL;
	size_t n = 0, it = 0, seen = 0;
	const char *k;
	void *v;

	(void) state;
	assert_int_equal(lm_hashmap_new(&m), LM_OK);
	assert_null(lm_hashmap_get(m, "x"));
	assert_null(lm_hashmap_remove(m, "x"));
	assert_int_equal(lm_hashmap_put(m, NULL, keys), LM_EINVAL);
	assert_int_equal(lm_hashmap_put(m, "x", NULL), LM_EINVAL);
	for (size_t i = 0; i < KEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
	for (int step = 0; step < 40000; step++) {
		size_t i;
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		i = (size_t) (r % KEYS);
		if ((r >> 40) % 3 != 0) {
			assert_int_equal(lm_hashmap_put(m, keys[i], keys[i]), LM_OK);
			n += !in[i];
			in[i] = true;
		} else {
			assert_ptr_equal(
			    lm_hashmap_remove(m, keys[i]), in[i] ? keys[i] : NULL);
			n -= in[i];
			in[i] = false;
		}
		if (step % 4000 == 0)
			for (size_t j = 0; j < KEYS; j++)
				assert_ptr_equal(
				    lm_hashmap_get(m, keys[j]), in[j] ? keys[j] : NULL);
	}
	assert_int_equal(lm_hashmap_count(m), n);
	while (lm_hashmap_next(m, &it, &k, &v)) {
		assert_ptr_equal(k, v);
		assert_true(in[(size_t) (((const char(*)[16]) v) - keys)]);
		seen++;
	}
	assert_int_equal(seen, n);
	lm_hashmap_free(m);
	lm_hashmap_free(NULL);
	assert_int_equal(lm_hashmap_count(NULL), 0);
}

#define GROW_KEYS 40000

/* Every key agrees with the model. */
static void
check_all(const lm_hashmap *m, char (*keys)[16], const bool *in, size_t n)
{
	for (size_t j = 0; j < n; j++)
		assert_ptr_equal(lm_hashmap_get(m, keys[j]), in[j] ? keys[j] : NULL);
}

static void
test_growth(void **state)
{
	static char keys[GROW_KEYS][16];
	static bool in[GROW_KEYS];
	lm_hashmap *m = NULL;
	uint64_t r = 0x9e3779b97f4a7c15ULL;
	size_t n = 0, growing_puts = 0, growing_removes = 0, growths = 0, it = 0;
	bool was = false;
	void *v;

	(void) state;
	assert_int_equal(lm_hashmap_new(&m), LM_OK);
	assert_false(lm_hashmap_growing(m));
	assert_false(lm_hashmap_growing(NULL));
	for (size_t i = 0; i < GROW_KEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "id-%zu", i);
	/* Grows through many doublings while a third of the writes remove. */
	for (int step = 0; step < 120000; step++) {
		size_t i, other;
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		i = (size_t) (r % GROW_KEYS);
		other = (size_t) ((r >> 20) % GROW_KEYS);
		bool growing = lm_hashmap_growing(m);
		if ((r >> 50) % 3 != 0) {
			assert_int_equal(lm_hashmap_put(m, keys[i], keys[i]), LM_OK);
			n += !in[i];
			in[i] = true;
			growing_puts += growing;
		} else {
			assert_ptr_equal(
			    lm_hashmap_remove(m, keys[i]), in[i] ? keys[i] : NULL);
			n -= in[i];
			in[i] = false;
			growing_removes += growing;
		}
		growths += !was && lm_hashmap_growing(m);
		was = lm_hashmap_growing(m);
		assert_ptr_equal(lm_hashmap_get(m, keys[i]), in[i] ? keys[i] : NULL);
		assert_ptr_equal(
		    lm_hashmap_get(m, keys[other]), in[other] ? keys[other] : NULL);
		if (was && step % 97 == 0)
			check_all(m, keys, in, GROW_KEYS);
		assert_int_equal(lm_hashmap_count(m), n);
	}
	assert_true(growths >= 8);
	assert_true(growing_puts > 1000 && growing_removes > 500);
	check_all(m, keys, in, GROW_KEYS);
	/* Iteration while nothing grows, then while a growth is under way. */
	for (int round = 0; round < 2; round++) {
		size_t seen = 0;
		it = 0;
		while (lm_hashmap_next(m, &it, NULL, &v)) {
			assert_true(in[(size_t) (((char(*)[16]) v) - keys)]);
			seen++;
		}
		assert_int_equal(seen, n);
		/* Puts until a growth starts. */
		for (size_t i = 0; i < GROW_KEYS && !lm_hashmap_growing(m); i++)
			if (!in[i]) {
				assert_int_equal(
				    lm_hashmap_put(m, keys[i], keys[i]), LM_OK);
				in[i] = true;
				n++;
			}
		assert_true(lm_hashmap_growing(m));
	}
	/* Removing everything, growth or not, leaves an empty map. */
	for (size_t i = 0; i < GROW_KEYS; i++)
		assert_ptr_equal(lm_hashmap_remove(m, keys[i]), in[i] ? keys[i] : NULL);
	assert_int_equal(lm_hashmap_count(m), 0);
	it = 0;
	assert_false(lm_hashmap_next(m, &it, NULL, NULL));
	lm_hashmap_free(m);
}

#define FLOOD_KEYS 1000
#define FLOOD_MASK 2047 /* the slots of the map that holds FLOOD_KEYS, less 1 */

/* Writes "post-" and the decimal digits of i to key. */
static void
flood_key(char *key, uint32_t i)
{
	char digits[10];
	size_t n = 0;

	memcpy(key, "post-", 5);
	do
		digits[n++] = (char) ('0' + i % 10);
	while ((i /= 10) != 0);
	for (size_t j = 0; j < n; j++)
		key[5 + j] = digits[n - 1 - j];
	key[5 + n] = '\0';
}

/* Hash flooding: ids that someone who can publish postings has chosen so
 * that their unkeyed hash (lm_hash_str, which anyone can compute) has the
 * same low bits, which would give them one home slot in every table of up
 * to FLOOD_MASK + 1 slots. The map's keyed hash spreads them as any other
 * keys: lookups of all of them probe about FLOOD_KEYS / 2 slots past their
 * start, not FLOOD_KEYS^2 / 2. */
static void
test_flooding(void **state)
{
	static char keys[FLOOD_KEYS][16];
	lm_hashmap *m = NULL;
	uint64_t home = lm_hash_str("post-0") & FLOOD_MASK;
	size_t n = 0;

	(void) state;
	for (uint32_t i = 0; n < FLOOD_KEYS; i++) {
		flood_key(keys[n], i);
		if ((lm_hash_str(keys[n]) & FLOOD_MASK) == home)
			n++;
	}
	assert_int_equal(lm_hashmap_new(&m), LM_OK);
	for (size_t i = 0; i < FLOOD_KEYS; i++)
		assert_int_equal(lm_hashmap_put(m, keys[i], keys[i]), LM_OK);
	assert_int_equal(lm_hashmap_count(m), FLOOD_KEYS);
	assert_false(lm_hashmap_growing(m));
	assert_in_range(lm_hashmap_probes(m), 0, 4 * FLOOD_KEYS);
	for (size_t i = 0; i < FLOOD_KEYS; i += 2)
		assert_ptr_equal(lm_hashmap_remove(m, keys[i]), keys[i]);
	assert_in_range(lm_hashmap_probes(m), 0, 2 * FLOOD_KEYS);
	for (size_t i = 0; i < FLOOD_KEYS; i++)
		assert_ptr_equal(lm_hashmap_get(m, keys[i]), i % 2 ? keys[i] : NULL);
	lm_hashmap_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_is_fnv1a),
	    cmocka_unit_test(test_siphash13),
	    cmocka_unit_test(test_model),
	    cmocka_unit_test(test_growth),
	    cmocka_unit_test(test_flooding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
