/*
 * offsets.c - the Kafka positions kept in the store; see offsets.h.
 *
 * Values: an offset is a big-endian u32 epoch, a big-endian u64 next
 * offset and the topic's name; a refill's offset the same after a
 * big-endian u64 refill id; an epoch is a big-endian u32 and the name;
 * a source is a big-endian u32 epoch, a byte with the topic name's length,
 * the name and the cluster id; the current time a big-endian u64 (Unix
 * seconds) and a byte (1: complete); a refill's state a big-endian u64 id,
 * a byte (1: active) and two big-endian u64 times (began, since).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/lmdb.h"
#include "offsets.h"

#define KEY_MAX   64 /* "ingest.refill." + 16 hex + "." + an int32 */
#define OFF_HDR   12 /* epoch, next */
#define EPOCH_HDR 4

static void
offset_key(char *key, const char *topic, int32_t partition)
{
	snprintf(key, KEY_MAX, "ingest.offset.%016" PRIx64 ".%" PRId32,
	    lm_hash_str(topic), partition);
}

static void
epoch_key(char *key, const char *topic)
{
	snprintf(key, KEY_MAX, "ingest.epoch.%016" PRIx64, lm_hash_str(topic));
}

static bool
topic_ok(const char *topic)
{
	size_t n = topic != NULL ? strlen(topic) : 0;
	return n > 0 && n <= LM_INGEST_TOPIC_MAX;
}

int
lm_ingest_offset_put(
    lm_store_txn *t, const char *topic, int32_t partition, uint32_t epoch, int64_t next)
{
	unsigned char v[OFF_HDR + LM_INGEST_TOPIC_MAX];
	char key[KEY_MAX];
	size_t n;

	if (!topic_ok(topic) || partition < 0 || next < 0)
		return LM_EINVAL;
	n = strlen(topic);
	offset_key(key, topic, partition);
	lm_lmdb_put_be32(v, epoch);
	lm_lmdb_put_be64(v + 4, (uint64_t) next);
	memcpy(v + OFF_HDR, topic, n);
	return lm_store_meta_put(t, key, v, OFF_HDR + n);
}

int
lm_ingest_epoch_put(lm_store_txn *t, const char *topic, uint32_t epoch)
{
	unsigned char v[EPOCH_HDR + LM_INGEST_TOPIC_MAX];
	char key[KEY_MAX];
	size_t n;

	if (!topic_ok(topic))
		return LM_EINVAL;
	n = strlen(topic);
	epoch_key(key, topic);
	lm_lmdb_put_be32(v, epoch);
	memcpy(v + EPOCH_HDR, topic, n);
	return lm_store_meta_put(t, key, v, EPOCH_HDR + n);
}

/* Reads meta key into a copy whose first hdr bytes are followed by topic's
 * name: LM_OK (*out to free), LM_ENOENT when absent or another topic's. */
static int
read_value(
    lm_store *s, const char *key, const char *topic, size_t hdr, unsigned char **out)
{
	void *v = NULL;
	size_t len = 0, n = strlen(topic);
	int rv;

	if ((rv = lm_store_meta_get(s, key, &v, &len)) != LM_OK)
		return rv;
	if (len != hdr + n || memcmp((unsigned char *) v + hdr, topic, n) != 0) {
		free(v);
		return LM_ENOENT;
	}
	*out = v;
	return LM_OK;
}

int
lm_ingest_offset_get(
    lm_store *s, const char *topic, int32_t partition, uint32_t *epoch, int64_t *next)
{
	char key[KEY_MAX];
	unsigned char *v;
	int rv;

	if (!topic_ok(topic) || partition < 0)
		return LM_EINVAL;
	offset_key(key, topic, partition);
	if ((rv = read_value(s, key, topic, OFF_HDR, &v)) != LM_OK)
		return rv;
	*epoch = lm_lmdb_get_be32(v);
	*next = (int64_t) lm_lmdb_get_be64(v + 4);
	free(v);
	return *next >= 0 ? LM_OK : LM_ESTORE;
}

int
lm_ingest_epoch_get(lm_store *s, const char *topic, uint32_t *epoch)
{
	char key[KEY_MAX];
	unsigned char *v;
	int rv;

	if (!topic_ok(topic))
		return LM_EINVAL;
	epoch_key(key, topic);
	if ((rv = read_value(s, key, topic, EPOCH_HDR, &v)) != LM_OK)
		return rv;
	*epoch = lm_lmdb_get_be32(v);
	free(v);
	return LM_OK;
}

#define SOURCE_HDR 5 /* epoch, topic length */

static const char *
source_key(lm_kind k)
{
	return k == LM_KIND_POSTING ? "ingest.source.posting" : "ingest.source.profile";
}

int
lm_ingest_source_put(lm_store_txn *t, lm_kind k, const lm_ingest_source *src)
{
	unsigned char v[SOURCE_HDR + LM_INGEST_TOPIC_MAX + LM_INGEST_CLUSTER_MAX];
	size_t n, cn;

	if ((k != LM_KIND_POSTING && k != LM_KIND_PROFILE) || src == NULL ||
	    !topic_ok(src->topic))
		return LM_EINVAL;
	n = strlen(src->topic);
	cn = strnlen(src->cluster, LM_INGEST_CLUSTER_MAX + 1);
	if (cn > LM_INGEST_CLUSTER_MAX)
		return LM_EINVAL;
	lm_lmdb_put_be32(v, src->epoch);
	v[4] = (unsigned char) n;
	memcpy(v + SOURCE_HDR, src->topic, n);
	memcpy(v + SOURCE_HDR + n, src->cluster, cn);
	return lm_store_meta_put(t, source_key(k), v, SOURCE_HDR + n + cn);
}

int
lm_ingest_source_get(lm_store *s, lm_kind k, lm_ingest_source *src)
{
	void *raw = NULL;
	unsigned char *v;
	size_t len = 0, n;
	int rv;

	if (k != LM_KIND_POSTING && k != LM_KIND_PROFILE)
		return LM_EINVAL;
	if ((rv = lm_store_meta_get(s, source_key(k), &raw, &len)) != LM_OK)
		return rv;
	v = raw;
	n = len >= SOURCE_HDR ? v[4] : 0;
	if (n == 0 || len < SOURCE_HDR + n ||
	    len - SOURCE_HDR - n > LM_INGEST_CLUSTER_MAX ||
	    memchr(v + SOURCE_HDR, '\0', len - SOURCE_HDR) != NULL) {
		free(v);
		return LM_ESTORE;
	}
	memset(src, 0, sizeof(*src));
	src->epoch = lm_lmdb_get_be32(v);
	memcpy(src->topic, v + SOURCE_HDR, n);
	memcpy(src->cluster, v + SOURCE_HDR + n, len - SOURCE_HDR - n);
	free(v);
	return LM_OK;
}

#define POSITIONS_KEY "ingest.positions"

int
lm_ingest_positions_mark(lm_store_txn *t)
{
	return lm_store_meta_put(t, POSITIONS_KEY, "1", 1);
}

int
lm_ingest_positions_kept(lm_store *s, bool *kept)
{
	void *v = NULL;
	size_t len = 0;
	int rv = lm_store_meta_get(s, POSITIONS_KEY, &v, &len);

	free(v);
	*kept = rv == LM_OK;
	return rv == LM_ENOENT ? LM_OK : rv;
}

int
lm_ingest_positions_begin(lm_store *s, lm_store_txn **t)
{
	uint64_t seq = 0;
	int rv;

	*t = NULL;
	if ((rv = lm_store_last_seq(s, &seq)) != LM_OK)
		return rv;
	if ((rv = lm_store_begin(s, t)) != LM_OK) {
		*t = NULL;
		return rv;
	}
	if (seq == 0 && (rv = lm_ingest_positions_mark(*t)) != LM_OK)
		goto fail;
	return LM_OK;
fail:
	lm_store_abort(*t);
	*t = NULL;
	return rv;
}

bool
lm_ingest_source_same(
    const lm_ingest_source *stored, const char *topic, const char *cluster_id)
{
	if (strcmp(stored->topic, topic) != 0)
		return false;
	return stored->cluster[0] == '\0' || cluster_id == NULL ||
	       cluster_id[0] == '\0' ||
	       strncmp(stored->cluster, cluster_id, LM_INGEST_CLUSTER_MAX) == 0;
}

#define CURRENT_KEY "ingest.current"
#define CURRENT_LEN 9 /* at, complete */

int
lm_ingest_current_put(lm_store_txn *t, const lm_ingest_current *cur)
{
	unsigned char v[CURRENT_LEN];

	if (cur == NULL || cur->at < 0)
		return LM_EINVAL;
	lm_lmdb_put_be64(v, (uint64_t) cur->at);
	v[8] = cur->complete ? 1 : 0;
	return lm_store_meta_put(t, CURRENT_KEY, v, sizeof(v));
}

int
lm_ingest_current_get(lm_store *s, lm_ingest_current *cur)
{
	void *raw = NULL;
	unsigned char *v;
	size_t len = 0;
	int rv;

	if ((rv = lm_store_meta_get(s, CURRENT_KEY, &raw, &len)) != LM_OK)
		return rv;
	v = raw;
	rv = LM_ESTORE;
	if (len == CURRENT_LEN && v[8] <= 1 && lm_lmdb_get_be64(v) <= INT64_MAX) {
		cur->at = (int64_t) lm_lmdb_get_be64(v);
		cur->complete = v[8] == 1;
		rv = LM_OK;
	}
	free(raw);
	return rv;
}

#define REFILL_KEY "ingest.refill"
#define REFILL_LEN 25 /* id, active, began, since */

int
lm_ingest_refill_put(lm_store_txn *t, const lm_ingest_refill *r)
{
	unsigned char v[REFILL_LEN];

	if (r == NULL || r->began < 0 || r->since < 0)
		return LM_EINVAL;
	lm_lmdb_put_be64(v, r->id);
	v[8] = r->active ? 1 : 0;
	lm_lmdb_put_be64(v + 9, (uint64_t) r->began);
	lm_lmdb_put_be64(v + 17, (uint64_t) r->since);
	return lm_store_meta_put(t, REFILL_KEY, v, sizeof(v));
}

int
lm_ingest_refill_get(lm_store *s, lm_ingest_refill *r)
{
	void *raw = NULL;
	unsigned char *v;
	size_t len = 0;
	int rv;

	if ((rv = lm_store_meta_get(s, REFILL_KEY, &raw, &len)) != LM_OK)
		return rv;
	v = raw;
	rv = LM_ESTORE;
	if (len == REFILL_LEN && v[8] <= 1 && lm_lmdb_get_be64(v + 9) <= INT64_MAX &&
	    lm_lmdb_get_be64(v + 17) <= INT64_MAX) {
		r->id = lm_lmdb_get_be64(v);
		r->active = v[8] == 1;
		r->began = (int64_t) lm_lmdb_get_be64(v + 9);
		r->since = (int64_t) lm_lmdb_get_be64(v + 17);
		rv = LM_OK;
	}
	free(raw);
	return rv;
}

#define REFILL_OFF_HDR (8 + OFF_HDR) /* refill id, epoch, next */

static void
refill_key(char *key, const char *topic, int32_t partition)
{
	snprintf(key, KEY_MAX, "ingest.refill.%016" PRIx64 ".%" PRId32,
	    lm_hash_str(topic), partition);
}

int
lm_ingest_refill_offset_put(lm_store_txn *t, uint64_t id, const char *topic,
    int32_t partition, uint32_t epoch, int64_t next)
{
	unsigned char v[REFILL_OFF_HDR + LM_INGEST_TOPIC_MAX];
	char key[KEY_MAX];
	size_t n;

	if (id == 0 || !topic_ok(topic) || partition < 0 || next < 0)
		return LM_EINVAL;
	n = strlen(topic);
	refill_key(key, topic, partition);
	lm_lmdb_put_be64(v, id);
	lm_lmdb_put_be32(v + 8, epoch);
	lm_lmdb_put_be64(v + 12, (uint64_t) next);
	memcpy(v + REFILL_OFF_HDR, topic, n);
	return lm_store_meta_put(t, key, v, REFILL_OFF_HDR + n);
}

int
lm_ingest_refill_offset_get(lm_store *s, uint64_t id, const char *topic,
    int32_t partition, uint32_t *epoch, int64_t *next)
{
	char key[KEY_MAX];
	unsigned char *v;
	int rv;

	if (id == 0 || !topic_ok(topic) || partition < 0)
		return LM_EINVAL;
	refill_key(key, topic, partition);
	if ((rv = read_value(s, key, topic, REFILL_OFF_HDR, &v)) != LM_OK)
		return rv;
	if (lm_lmdb_get_be64(v) != id) {
		free(v);
		return LM_ENOENT;
	}
	*epoch = lm_lmdb_get_be32(v + 8);
	*next = (int64_t) lm_lmdb_get_be64(v + 12);
	free(v);
	return *next >= 0 ? LM_OK : LM_ESTORE;
}
