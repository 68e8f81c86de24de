/*
 * dlq.h - the dead-letter producer of ingest.
 *
 * A rejected message is copied to the DLQ topic with its original key, value
 * and headers plus five headers that say why and where from:
 *   lunamatch-reason            reason token (ingest.h, lm_reject_name)
 *   lunamatch-error             one-line message naming the field
 *   lunamatch-source-topic      topic it was consumed from
 *   lunamatch-source-partition  decimal partition
 *   lunamatch-source-offset     decimal offset
 * (Headers of these names already on the message are replaced, so a message
 * that went through the DLQ twice carries only its latest verdict.)
 *
 * A dead letter is bounded so that it always fits the producer's and the
 * broker's message size limits (Kafka's default is about 1 MiB): a value
 * over LM_DLQ_VALUE_MAX bytes is cut to its first LM_DLQ_VALUE_MAX bytes and
 * marked with the header lunamatch-value-truncated: <original size>; a key
 * over LM_DLQ_KEY_MAX likewise (lunamatch-key-truncated); original headers
 * over LM_DLQ_HEADERS_MAX bytes in all, or more than LM_DLQ_HEADER_COUNT_MAX
 * of them, are left out (lunamatch-headers-dropped: <count>). A header name
 * is carried up to its first NUL byte, if it has one.
 *
 * Delivery failures are of two kinds. A transient one (broker down, timeout,
 * authorization) fails the flush, and the consumer retries the batch. A
 * permanent one, which no retry can fix (the message or its batch is too
 * large or invalid for the broker), drops that dead letter: it is logged as
 * an error, counted (lm_dlq_dropped) and does not fail the flush, so one bad
 * dead letter never blocks its partition.
 *
 * Sending is asynchronous; lm_dlq_flush waits until every message sent since
 * the previous flush has a delivery report and says whether all of them were
 * delivered. The consumer stores a batch's offsets only after that.
 *
 * A dead letter is sent from an lm_dlq_letter, a copy of what it needs of
 * the consumed message, so that the message can be destroyed as soon as it
 * is decided: librdkafka keeps the whole fetch response a message came in
 * (up to fetch.max.bytes) alive while any message of it is, so holding
 * rejected messages until their batch is done would let input with one
 * invalid message per fetch pin a fetch buffer per reject.
 *
 * Threads: one thread uses an lm_dlq (the consumer loop); delivery reports
 * are served inside lm_dlq_send and lm_dlq_flush on that thread. An
 * lm_dlq_letter is used by one thread at a time.
 */
#ifndef LUNAMATCH_DLQ_H
#define LUNAMATCH_DLQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_DLQ_H_REASON    "lunamatch-reason"
#define LM_DLQ_H_ERROR     "lunamatch-error"
#define LM_DLQ_H_TOPIC     "lunamatch-source-topic"
#define LM_DLQ_H_PARTITION "lunamatch-source-partition"
#define LM_DLQ_H_OFFSET    "lunamatch-source-offset"
/* Longest lunamatch-error value; longer messages are cut (at a UTF-8
 * character boundary). */
#define LM_DLQ_ERROR_MAX 512
/* How long librdkafka keeps trying to deliver one DLQ message. */
#define LM_DLQ_MESSAGE_TIMEOUT_MS 15000
/* Longest wait for queued dead letters in lm_dlq_free. Whatever is still
 * queued then belongs to a batch whose offsets were not stored, which is
 * therefore consumed (and dead-lettered) again. */
#define LM_DLQ_CLOSE_MS          2000
#define LM_DLQ_H_VALUE_TRUNCATED "lunamatch-value-truncated"
#define LM_DLQ_H_KEY_TRUNCATED   "lunamatch-key-truncated"
#define LM_DLQ_H_HEADERS_DROPPED "lunamatch-headers-dropped"
/* Most value bytes a dead letter carries. */
#define LM_DLQ_VALUE_MAX (256u << 10)
/* Most key bytes a dead letter carries. */
#define LM_DLQ_KEY_MAX (16u << 10)
/* Most bytes (names and values) of original headers a dead letter carries. */
#define LM_DLQ_HEADERS_MAX (64u << 10)
/* Most original headers a dead letter carries: headers of a few bytes or
 * none count little against LM_DLQ_HEADERS_MAX, but each takes memory and
 * room in the message. */
#define LM_DLQ_HEADER_COUNT_MAX 1024u
/* The producer's message.max.bytes: below the broker's default limit, and
 * above the largest dead letter (value, key, headers and overhead). */
#define LM_DLQ_PRODUCER_MSG_MAX 1000000

/* Why a dead letter was dropped for good; metric label values. */
typedef enum lm_dlq_drop {
	LM_DLQ_DROP_TOO_LARGE = 0, /* message or batch over a size limit */
	LM_DLQ_DROP_INVALID,       /* the broker refused the record as invalid */
	LM_DLQ_DROP_COUNT_
} lm_dlq_drop;

/* "too_large", "invalid"; NULL for an unknown value. */
const char *lm_dlq_drop_name(lm_dlq_drop r);

typedef struct lm_dlq lm_dlq;

/*
 * Creates an idempotent producer (acks=all) for topic on brokers, holding
 * at most queue_kb KiB of messages (0: LM_KAFKA_PRODUCER_QUEUE_KB; tests
 * set less to fill it quickly). fatal, if
 * not NULL, is set to 1 when librdkafka reports a fatal producer error; it
 * must outlive the lm_dlq. Returns LM_OK and *out, or LM_EINVAL/LM_EKAFKA/
 * LM_ENOMEM with the reason in err.
 */
int lm_dlq_new(const char *brokers, const char *topic, unsigned queue_kb,
    volatile int *fatal, lm_dlq **out, char *err, size_t errlen);

/* Has tick(arg) called at least every 100 ms while lm_dlq_send waits for
 * room or lm_dlq_flush for reports (tick NULL: none), so that the caller
 * can show it is alive during long waits. */
void lm_dlq_set_tick(lm_dlq *q, void (*tick)(void *arg), void *arg);

/* Flushes for at most LM_DLQ_CLOSE_MS and frees; NULL is a no-op. */
void lm_dlq_free(lm_dlq *q);

/*
 * What became of one dead letter, as the reports of the current flush
 * generation (from one lm_dlq_flush to the next) tell. A report that comes
 * after its generation ended changes nothing.
 */
typedef enum lm_dlq_fate {
	LM_DLQ_UNSENT = 0, /* not queued: never sent, or the queue stayed full */
	LM_DLQ_QUEUED,     /* queued, no delivery report yet */
	LM_DLQ_DELIVERED,  /* acknowledged by the broker */
	LM_DLQ_DROPPED,    /* refused for good, counted in lm_dlq_dropped */
	LM_DLQ_FAILED      /* not delivered (transient): may be sent again */
} lm_dlq_fate;

/*
 * What a dead letter needs of one consumed message, owned by the letter and
 * independent of the message: its source topic, partition and offset, its
 * key cut to LM_DLQ_KEY_MAX bytes and its value cut to LM_DLQ_VALUE_MAX
 * (with their original sizes, for the truncation headers), and its headers
 * without ours, or none when they exceed LM_DLQ_HEADERS_MAX bytes or
 * LM_DLQ_HEADER_COUNT_MAX headers (with their count, for
 * lunamatch-headers-dropped). No timestamp: a dead letter
 * carries the time it is produced. A letter therefore holds at most about
 * LM_DLQ_VALUE_MAX + LM_DLQ_KEY_MAX + LM_DLQ_HEADERS_MAX bytes of message
 * data in at most LM_DLQ_HEADER_COUNT_MAX headers, whatever the message's
 * size.
 */
typedef struct lm_dlq_letter lm_dlq_letter;

/*
 * Copies what the dead letter of m needs into a new letter, *out, owned by
 * the caller (lm_dlq_letter_free); m is only read and may be destroyed at
 * once. Returns LM_OK, LM_EINVAL for a message without a topic or with a
 * topic name over LM_KAFKA_TOPIC_MAX bytes, or LM_ENOMEM.
 */
int lm_dlq_letter_new(const rd_kafka_message_t *m, lm_dlq_letter **out);

/* NULL is a no-op. */
void lm_dlq_letter_free(lm_dlq_letter *l);

/* What a copied header takes beyond its name and value: librdkafka's
 * header record and its allocation, as lm_dlq_letter_bytes counts it. */
#define LM_DLQ_HEADER_OVERHEAD 64u

/* The memory l holds: itself, its key and value, and its headers' names
 * and values with LM_DLQ_HEADER_OVERHEAD each. What a batch holding l
 * counts towards its byte bound. */
size_t lm_dlq_letter_bytes(const lm_dlq_letter *l);

/*
 * Queues the dead letter of l (its key, value and headers) with the reason
 * headers; l is only read and stays the caller's, so that it can be sent
 * again. reason and error must be NUL-terminated. A full local queue is
 * waited on for at most timeout_ms (0: not at all), serving delivery
 * reports meanwhile; when it is still full the message is not queued, does
 * not count for the next lm_dlq_flush and LM_EBUSY is returned, so that the
 * caller may try again. Otherwise returns LM_OK or another lm_kafka_err
 * value: a transient failure counts as an undelivered message for the next
 * lm_dlq_flush, a permanent one as a dropped message.
 *
 * fate (may be NULL) follows the message: set to LM_DLQ_QUEUED,
 * LM_DLQ_DROPPED or LM_DLQ_FAILED here, left as it was on LM_EBUSY, and
 * set by the message's delivery report when it comes before the next
 * lm_dlq_flush returns. It must stay valid until then.
 */
int lm_dlq_send(lm_dlq *q, const lm_dlq_letter *l, const char *reason, const char *error,
    int timeout_ms, lm_dlq_fate *fate);

/*
 * Waits at most timeout_ms for the delivery reports of every message sent
 * since the last flush, and gives up early once stop (may be NULL) is
 * non-zero. Returns LM_OK when each was delivered or dropped for good,
 * LM_EKAFKA when one failed transiently, LM_ETIMEDOUT when reports are
 * missing (also after a stop). Either way the counts start again from zero
 * (messages still in flight are reported to a later flush and do not count
 * there). Unless LM_OK, the messages still waiting in the local queue
 * (not yet sent to a broker) are purged, so that sending them again finds
 * room; their reports are not counted anywhere. lm_dlq_flush(q, 0, NULL)
 * ends the generation at once: the fates given to lm_dlq_send since the
 * last flush are no longer written.
 */
int lm_dlq_flush(lm_dlq *q, int timeout_ms, const atomic_int *stop);

/* Messages delivered since lm_dlq_new. */
uint64_t lm_dlq_delivered(const lm_dlq *q);

/* Serves pending delivery reports and errors without waiting, so that a
 * fatal producer error is seen even while nothing is dead-lettered. */
void lm_dlq_poll(lm_dlq *q);

/* The producer handle, owned by q; for tests and diagnostics. */
rd_kafka_t *lm_dlq_kafka(lm_dlq *q);

/* Messages dropped for good with reason r since lm_dlq_new. */
uint64_t lm_dlq_dropped(const lm_dlq *q, lm_dlq_drop r);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_DLQ_H */
