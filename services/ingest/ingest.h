/*
 * ingest.h - what ingest does with one Kafka message, and with a batch.
 *
 * This is the part of the ingest service that knows nothing about Kafka's
 * client library: a message is described by its kind (the topic tells it),
 * key, value and content-type header; lm_ingest_decide turns it into a
 * decision (store this normalized record, delete this id, or reject with a
 * reason token and a message). A batch collects decisions together with the
 * topic/partition/offset they came from, applies them to the record store in
 * ONE write transaction and reports, per partition, the offset to store once
 * the batch is done. The consumer loop (consumer.c) feeds it; the unit tests
 * drive it directly on real records and a real LMDB store.
 *
 * Thread-safety: the functions share no state; a batch belongs to one thread.
 */
#ifndef LUNAMATCH_INGEST_H
#define LUNAMATCH_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunamatch/record.h"
#include "lunamatch/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest message value ingest accepts (bytes); larger ones are rejected as
 * "oversize". The consumer sets fetch.message.max.bytes to this. */
#define LM_INGEST_MSG_MAX (1u << 20)
/* Longest media type considered: the part of a content-type header value
 * before any ';', blanks included. A longer one is unsupported; the
 * parameters after it are not read. */
#define LM_INGEST_CONTENT_TYPE_MAX 128
/* Capacity of a decision's error message, with the NUL. */
#define LM_INGEST_ERROR_MAX 256
/* Most bytes one batch holds: a batch is full when its PUT decisions'
 * normalized records and its rejected messages (the consumer counts the
 * copies of their key, value and headers held for their dead letters:
 * lm_dlq_letter_bytes) reach this many bytes, whatever its message count,
 * so that a batch stays bounded in memory. */
#define LM_INGEST_BATCH_BYTES_MAX (64u << 20)
/* Longest topic name a batch records (Kafka's own limit is 249). */
#define LM_INGEST_TOPIC_MAX 255

/* Reject reason tokens that are not lm_reject_name() values. Every token is
 * a stable snake_case word used as a metric label and a DLQ header. */
#define LM_INGEST_R_UNDECODABLE  "undecodable"  /* bytes are not the record */
#define LM_INGEST_R_BAD_JSON     "bad_json"     /* content-type JSON, text is not JSON */
#define LM_INGEST_R_SCHEMA       "schema"       /* JSON that does not fit the schema */
#define LM_INGEST_R_KEY_MISMATCH "key_mismatch" /* key missing or != record id */
#define LM_INGEST_R_OVERSIZE     "oversize"     /* message or record over a limit */

/* Payload encodings, from the content-type header. */
typedef enum lm_ingest_format {
	LM_INGEST_PROTOBUF = 0, /* no header, or a protobuf media type */
	LM_INGEST_JSON,         /* application/json (parameters ignored) */
	LM_INGEST_UNSUPPORTED,  /* anything else: rejected as "undecodable" */
} lm_ingest_format;

/*
 * Classifies a content-type header value of len bytes (not NUL-terminated;
 * NULL means the header is absent). The media type before any ';' is compared
 * case-insensitively with surrounding blanks ignored: "application/json" is
 * JSON; absent, empty, "application/x-protobuf", "application/protobuf",
 * "application/vnd.google.protobuf" and "application/octet-stream" are
 * protobuf; anything else, or a media type over LM_INGEST_CONTENT_TYPE_MAX
 * bytes, is unsupported. Parameters are not read, whatever their length.
 */
lm_ingest_format lm_ingest_content_type(const void *value, size_t len);

/* One consumed message, borrowed for the duration of the call. */
typedef struct lm_ingest_msg {
	lm_kind kind;    /* from the topic */
	const void *key; /* NULL: no key */
	size_t key_len;
	const void *value; /* NULL: tombstone */
	size_t value_len;
	const void *content_type; /* header value; NULL: no header */
	size_t content_type_len;
} lm_ingest_msg;

typedef enum lm_ingest_action {
	LM_INGEST_PUT = 1, /* store bytes as id at version */
	LM_INGEST_DELETE,  /* tombstone: delete id (any version) */
	LM_INGEST_REJECT,  /* dead-letter with reason and error */
} lm_ingest_action;

typedef struct lm_ingest_decision {
	lm_ingest_action action;
	lm_kind kind;
	char id[LM_RECORD_ID_MAX + 1]; /* PUT, DELETE */
	uint64_t version;              /* PUT */
	uint8_t *bytes;                /* PUT: normalized record, protobuf; owned */
	size_t len;         /* PUT: of bytes; REJECT: 0 from lm_ingest_decide: the
	                     * holder of the rejected message's dead letter sets
	                     * what it holds (the consumer: lm_dlq_letter_bytes) */
	const char *reason; /* REJECT: static token, see above */
	/* REJECT: what is wrong, naming the field; valid UTF-8 without
	 * control characters, whatever of the record it quotes. */
	char error[LM_INGEST_ERROR_MAX];
	lm_store_pos pos; /* the message's partition and offset: lm_ingest_batch_add */
	/* PUT of a posting with compliance warnings: the counters of
	 * ctx->metrics to add 1 to once it is stored (the flagged-postings
	 * counter, then one per warning, of its category); owned array of
	 * ncompliance counters borrowed from the registry; NULL: none. */
	lm_counter **compliance;
	size_t ncompliance;
	/* PUT of a posting with compliance warnings: the messages of its
	 * ingest.compliance log lines, one per warning, to log once it is
	 * stored; owned, nwarnings NUL-terminated strings back to back;
	 * NULL: none. */
	char *warnings;
	size_t nwarnings;
	bool stored; /* lm_ingest_batch_commit: stored by the last attempt */
} lm_ingest_decision;

/*
 * Registers, at 0, the metrics compliance warnings are counted in
 * (ctx->metrics; see lm_ingest_decide):
 * lunamatch_ingest_flagged_postings_total and
 * lunamatch_ingest_compliance_warnings_total{category} for every category of
 * ctx->fairness. Does nothing without ctx->metrics. Call once at start-up.
 */
void lm_ingest_compliance_metrics(const lm_record_ctx *ctx);

/*
 * Decides what to do with message m: size check, decoding by content-type
 * (lm_pb_decode, then the fields unknown to the schema dropped at every
 * depth; or lm_json_decode), lm_posting_prepare/lm_profile_prepare with
 * ctx, the key check (the key must equal the record id as stored, after
 * trimming, byte for byte), then serialization of the normalized record.
 * A tombstone needs a key that is a valid record id. An accepted
 * posting's compliance warnings are logged (event ingest.compliance, with
 * the phrase) and counted in ctx->metrics by lm_ingest_batch_commit once
 * the posting is stored, so that a batch tried again or a message read
 * again logs and counts them once; the decision holds what it needs for
 * that (d->warnings, d->compliance).
 *
 * Returns LM_OK with *d filled for every message, good or bad (bad input is
 * a REJECT decision, never an error); LM_ENOMEM or LM_EINVAL (NULL argument,
 * bad kind) otherwise, with *d cleared. The caller releases d with
 * lm_ingest_decision_clear.
 */
int lm_ingest_decide(
    const lm_record_ctx *ctx, const lm_ingest_msg *m, lm_ingest_decision *d);

/* Frees what d owns and zeroes it; NULL is a no-op. */
void lm_ingest_decision_clear(lm_ingest_decision *d);

/* Results of a committed batch, indexed by lm_kind (index 0 unused). */
typedef struct lm_ingest_counts {
	uint64_t stored[3];     /* new versions stored */
	uint64_t deleted[3];    /* live records deleted */
	uint64_t duplicates[3]; /* stale versions skipped, tombstones of absent records */
	uint64_t rejected;      /* REJECT decisions in the batch */
	uint64_t store_ops;     /* PUT and DELETE decisions in the batch */
} lm_ingest_counts;

/* Where a batch's messages came from, one entry per topic partition. */
typedef struct lm_ingest_partition {
	char topic[LM_INGEST_TOPIC_MAX + 1];
	int32_t partition;
	uint32_t epoch; /* of the topic (lm_ingest_batch_set_epoch) */
	int64_t first;  /* offset of the first message of the batch */
	int64_t next;   /* offset of the last message + 1 */
	int64_t reject; /* offset of its first REJECT decision; -1: none */
} lm_ingest_partition;

/* Bytes of a Kafka cluster id kept in a source (Kafka's are 22); a longer
 * id is kept and compared cut to this length. */
#define LM_INGEST_CLUSTER_MAX 64

/* Where the positions of one kind's records come from (offsets.h). */
typedef struct lm_ingest_source {
	char topic[LM_INGEST_TOPIC_MAX + 1];     /* 1..LM_INGEST_TOPIC_MAX bytes */
	char cluster[LM_INGEST_CLUSTER_MAX + 1]; /* "" when unknown */
	uint32_t epoch;                          /* the topic's (lm_store_pos) */
} lm_ingest_source;

/* Topics a batch keeps an epoch for (lm_ingest_batch_set_epoch). */
#define LM_INGEST_EPOCH_TOPICS 4

typedef struct lm_ingest_batch lm_ingest_batch;

/* Creates an empty batch of at most max (>= 1) messages. Returns LM_OK,
 * LM_EINVAL or LM_ENOMEM; free with lm_ingest_batch_free. */
int lm_ingest_batch_new(size_t max, lm_ingest_batch **out);

/* NULL is a no-op. */
void lm_ingest_batch_free(lm_ingest_batch *b);

/* Messages in the batch. */
size_t lm_ingest_batch_len(const lm_ingest_batch *b);
/* Bytes the batch holds: the sum of its decisions' len (normalized records,
 * and rejected messages held for their dead letters). */
size_t lm_ingest_batch_bytes(const lm_ingest_batch *b);
/* 1 when the batch holds its maximum of messages or at least
 * LM_INGEST_BATCH_BYTES_MAX bytes: it must be finished before another add. */
int lm_ingest_batch_full(const lm_ingest_batch *b);

/*
 * Sets the epoch of the positions of topic's messages added from now on (0
 * for a topic never set): the operator's count of recreations of that
 * topic, whose offsets then restart (lm_store_pos; docs/ingest.md). Each
 * topic has its own: a replay of one topic at the epoch another topic was
 * raised to would order its old tombstones after newer puts. Returns LM_OK,
 * LM_EINVAL for a topic name longer than LM_INGEST_TOPIC_MAX, or LM_E2BIG
 * when LM_INGEST_EPOCH_TOPICS other topics have one.
 */
int lm_ingest_batch_set_epoch(lm_ingest_batch *b, const char *topic, uint32_t epoch);

/*
 * Sets the source the positions of kind k's messages come from (a copy of
 * *src), which the transaction of every later commit records as the
 * store's source of k (lm_ingest_source_put, offsets.h). The caller sets it
 * only once it checked that the store's positions of k come from that
 * source or from an earlier epoch. Returns LM_OK or LM_EINVAL (bad kind,
 * topic or cluster).
 */
int lm_ingest_batch_set_source(
    lm_ingest_batch *b, lm_kind k, const lm_ingest_source *src);

/*
 * Makes the batch part of refill id (offsets.h, lm_ingest_refill; 0: none,
 * the default): from its next commit on, the transaction marks every record
 * a PUT or DELETE decision names (lm_store_mark), whatever the decision
 * did to the store, and records how far each partition was read again
 * under id (lm_ingest_refill_offset_put) beside its offset; so does
 * lm_ingest_batch_commit_delivered.
 */
void lm_ingest_batch_set_refill(lm_ingest_batch *b, uint64_t id);

/* Whether the batch holds a PUT or DELETE decision for record id of kind
 * k: a record the batch will mark once committed. */
bool lm_ingest_batch_holds(const lm_ingest_batch *b, lm_kind k, const char *id);

/* The offset the batch expects next from topic/partition (the last one
 * added + 1), or -1 when the batch holds nothing of it. An offset below it
 * cannot be added: the consumer finishes the batch first (a partition
 * rewound by an offset reset). */
int64_t lm_ingest_batch_next(
    const lm_ingest_batch *b, const char *topic, int32_t partition);

/*
 * Appends decision d of the message at topic/partition/offset and takes over
 * what d owns (d is zeroed). The position goes to the store with the change,
 * so that a replayed tombstone never deletes a version stored after it
 * (lm_store_delete_at). Offsets of one partition must ascend. The add
 * that crosses LM_INGEST_BATCH_BYTES_MAX is accepted (a batch always takes
 * its first message); the batch is full after it. Returns
 * LM_OK; LM_E2BIG when full or the topic name is too long; LM_EINVAL for an
 * offset that does not ascend; LM_ENOMEM. On error d is left as it was.
 */
int lm_ingest_batch_add(lm_ingest_batch *b, lm_ingest_decision *d, const char *topic,
    int32_t partition, int64_t offset);

/*
 * Applies the PUT and DELETE decisions, in order, in one write transaction
 * of s and commits it (durable on LM_OK). A PUT is applied when its version
 * is newer than the stored one; a DELETE (a tombstone, which has no version)
 * when its position comes after the live version's last change, or when the
 * positions do not compare: replaying any part of a partition is harmless.
 * The same transaction records how far each partition of the batch is
 * stored (lm_ingest_partition_stored), the epoch of each topic given
 * one and the source of each kind given one (lm_ingest_offset_put,
 * lm_ingest_epoch_put, lm_ingest_source_put, offsets.h), also for a
 * batch of rejects only; an empty batch opens no transaction. Once the
 * transaction is committed, the compliance warnings of the PUTs it stored
 * (not those skipped as stale) are logged and counted
 * (lm_ingest_decision.warnings, .compliance).
 * *counts (required) is filled; *last_seq (may be NULL) receives the
 * store's last change seq after the commit (unchanged when no transaction
 * ran). Returns LM_OK or the store error, after which nothing of the batch
 * is stored (nor counted) and the batch may be committed again later.
 */
int lm_ingest_batch_commit(
    lm_ingest_batch *b, lm_store *s, lm_ingest_counts *counts, uint64_t *last_seq);

/*
 * The offset lm_ingest_batch_commit records for partition p: its next
 * offset, or its first rejected message while that message's dead letter
 * may be undelivered. The store is then never past a dead letter that is
 * not out yet, so a consumer that resumes from the store alone (when the
 * group's committed offsets cannot be read) sends it again instead of
 * skipping it.
 */
int64_t lm_ingest_partition_stored(const lm_ingest_partition *p);

/*
 * Once the batch's dead letters are delivered: records, in one write
 * transaction of s, that the partitions held at a rejected message are
 * stored up to their next offset. LM_OK (also when no partition was held:
 * no transaction) or the store error, after which the store stays at the
 * rejected messages and a consumer resuming from it reads them again.
 */
int lm_ingest_batch_commit_delivered(const lm_ingest_batch *b, lm_store *s);

/* The partitions of the batch (in order of first appearance) and their
 * count; valid until the next add or reset. */
const lm_ingest_partition *lm_ingest_batch_partitions(
    const lm_ingest_batch *b, size_t *n);

/* Empties the batch, freeing what its decisions own. */
void lm_ingest_batch_reset(lm_ingest_batch *b);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_INGEST_H */
