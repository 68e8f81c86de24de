/*
 * offsets.h - where ingest resumes: the Kafka positions kept in the store.
 *
 * Every batch writes, in the same store transaction as its records, the
 * offset each of its partitions is stored up to (exclusive) and the epoch
 * of its topic (the operator's count of the topic's recreations,
 * lm_store_pos). So the store itself says how far it got, and a consumer
 * that starts on a store resumes where that store ends, whatever the
 * group's committed offsets say: a store that was lost and created again,
 * or restored from an older copy, is filled from where it actually ends
 * instead of from where its predecessor ended (docs/ingest.md, "Where
 * ingest resumes").
 *
 * The highest epoch a topic was ever stored at is kept too, so that a
 * configuration that lowers an epoch (under which new positions would
 * order before stored ones, and tombstones would be skipped as replays) is
 * refused at the start instead of losing deletions.
 *
 * Positions carry no topic: those of one kind's records compare only while
 * they come from one source. So the store also keeps, per kind, the source
 * its newest positions come from (lm_ingest_source): the topic, the Kafka
 * cluster's id and the epoch. A consumer whose topic or cluster differs
 * from it at the same epoch would order its tombstones before the stored
 * positions of another log, and is refused (consumer.c).
 *
 * The store also says when it was last current with its topics
 * (lm_ingest_current), and holds the state of a refill (lm_ingest_refill):
 * a store away for longer than the topics keep their tombstones is read
 * again from the beginning, and the records the topics no longer hold are
 * deleted (consumer.c, "refilling"; docs/ingest.md, "Stale stores and
 * refills").
 *
 * Meta keys: "ingest.offset.<topic hash>.<partition>",
 * "ingest.refill.<topic hash>.<partition>" and "ingest.epoch.<topic hash>"
 * (lm_hash_str, 16 hex digits), whose values hold the topic name too, so
 * that a hash collision reads as absent; "ingest.source.posting" and
 * "ingest.source.profile"; "ingest.positions" (lm_ingest_positions_mark);
 * "ingest.current" and "ingest.refill".
 */
#ifndef LUNAMATCH_INGEST_OFFSETS_H
#define LUNAMATCH_INGEST_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest.h"
#include "lunamatch/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Writes, in t, that partition of topic is stored up to next (exclusive),
 * at epoch. LM_OK, LM_EINVAL (topic empty or longer than
 * LM_INGEST_TOPIC_MAX, partition or next negative) or the store's error.
 */
int lm_ingest_offset_put(
    lm_store_txn *t, const char *topic, int32_t partition, uint32_t epoch, int64_t next);

/*
 * Writes, in t, topic's epoch as its highest: the consumer refuses to start
 * with an epoch below the stored one (lm_ingest_epoch_get), so the epoch it
 * writes is never lower. LM_OK, LM_EINVAL (topic as above) or the store's
 * error.
 */
int lm_ingest_epoch_put(lm_store_txn *t, const char *topic, uint32_t epoch);

/*
 * Reads the offset partition of topic is stored up to. LM_OK with *next and
 * *epoch (the epoch it was stored at); LM_ENOENT when the store holds none;
 * another store error.
 */
int lm_ingest_offset_get(
    lm_store *s, const char *topic, int32_t partition, uint32_t *epoch, int64_t *next);

/*
 * A store's first batch marks it as keeping its positions from the start
 * (lm_ingest_positions_mark, in that batch's transaction): in such a store
 * a partition without an offset was never stored and starts at the
 * beginning, while in a store written before positions were kept it may
 * hold records, and only the group's committed offset says how far.
 * lm_ingest_positions_kept sets *kept; LM_OK or a store error.
 */
int lm_ingest_positions_mark(lm_store_txn *t);
int lm_ingest_positions_kept(lm_store *s, bool *kept);

/*
 * Begins a write transaction on s in *t and, when s holds no change yet (a
 * new store), marks it in *t as keeping its positions
 * (lm_ingest_positions_mark; marking it again is harmless). Every writer
 * of a store ingest resumes on (ingest's batches, lunamatch-loadgen) begins
 * its transactions so, so that a store another writer filled first is not
 * taken for one written before positions were kept. LM_OK, or the store's
 * error with *t left NULL.
 */
int lm_ingest_positions_begin(lm_store *s, lm_store_txn **t);

/*
 * The highest epoch topic was stored at: LM_OK with *epoch, LM_ENOENT when
 * none was, another store error.
 */
int lm_ingest_epoch_get(lm_store *s, const char *topic, uint32_t *epoch);

/*
 * Writes, in t, src as the source of the positions of kind k's records.
 * LM_OK, LM_EINVAL (bad kind or topic, cluster longer than
 * LM_INGEST_CLUSTER_MAX) or the store's error.
 */
int lm_ingest_source_put(lm_store_txn *t, lm_kind k, const lm_ingest_source *src);

/*
 * Reads the source of kind k's positions into *src: LM_OK; LM_ENOENT when
 * the store keeps none (no batch stored since sources were kept);
 * LM_ESTORE for a damaged value; another store error.
 */
int lm_ingest_source_get(lm_store *s, lm_kind k, lm_ingest_source *src);

/*
 * Whether positions read from topic on the brokers of cluster cluster_id
 * come from the source stored (as lm_ingest_source_get gives it): the same
 * topic, and the same cluster unless either id is unknown (stored->cluster
 * "", cluster_id NULL or "": brokers older than Kafka 0.10.1, or not asked
 * yet). cluster_id is compared cut to LM_INGEST_CLUSTER_MAX bytes, as a
 * source keeps it. Epochs are the caller's to compare: ingest takes a
 * higher epoch as a new source, match's owner has none. stored and topic
 * must not be NULL.
 */
bool lm_ingest_source_same(
    const lm_ingest_source *stored, const char *topic, const char *cluster_id);

/*
 * When the store was last current with its topics. at (Unix seconds): no
 * tombstone the store has not read was removed from the topics before at
 * plus their delete.retention.ms, because every record the store holds was
 * read from the topics at or after at, or (complete) every message written
 * to the topics before at is stored. complete: the store held the whole of
 * its topics at `at` (it had caught up with them); false while the store is
 * filled for the first time (at: when that began) or refilled.
 */
typedef struct lm_ingest_current {
	int64_t at;
	bool complete;
} lm_ingest_current;

/* Writes, in t, cur as when the store was last current. LM_OK,
 * LM_EINVAL (at negative) or the store's error. */
int lm_ingest_current_put(lm_store_txn *t, const lm_ingest_current *cur);

/* Reads when the store was last current: LM_OK; LM_ENOENT when the store
 * does not say (written before it did, or by another program); LM_ESTORE
 * for a damaged value; another store error. */
int lm_ingest_current_get(lm_store *s, lm_ingest_current *cur);

/*
 * The refill of a store: id tells it from every refill begun in the store
 * before it (0: none; one more than the one before, or a random id after a
 * damaged record of it: consumer.c, damaged_refill_id), active says that
 * refill id runs (begun, not finished), began when it began and since the
 * store's lm_ingest_current at then (0: unknown), both Unix seconds.
 */
typedef struct lm_ingest_refill {
	uint64_t id;
	bool active;
	int64_t began;
	int64_t since;
} lm_ingest_refill;

/* Writes r in t: LM_OK, LM_EINVAL (a negative time) or the store's error. */
int lm_ingest_refill_put(lm_store_txn *t, const lm_ingest_refill *r);

/* Reads the refill state: LM_OK; LM_ENOENT when no refill ever began;
 * LM_ESTORE for a damaged value; another store error. */
int lm_ingest_refill_get(lm_store *s, lm_ingest_refill *r);

/*
 * How far refill id read partition of topic again (next offset, at epoch):
 * written by each batch of the refill beside lm_ingest_offset_put. get:
 * LM_OK; LM_ENOENT when refill id has not read the partition (nothing, or
 * only an earlier refill did); another store error. Arguments as for
 * lm_ingest_offset_put and _get; id >= 1.
 */
int lm_ingest_refill_offset_put(lm_store_txn *t, uint64_t id, const char *topic,
    int32_t partition, uint32_t epoch, int64_t next);
int lm_ingest_refill_offset_get(lm_store *s, uint64_t id, const char *topic,
    int32_t partition, uint32_t *epoch, int64_t *next);

#ifdef __cplusplus
}
#endif

#endif
