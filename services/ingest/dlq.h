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
 * Sending is asynchronous; lm_dlq_flush waits until every message sent since
 * the previous flush has a delivery report and says whether all of them were
 * delivered. The consumer stores a batch's offsets only after that.
 *
 * Threads: one thread uses an lm_dlq (the consumer loop); delivery reports
 * are served inside lm_dlq_send and lm_dlq_flush on that thread.
 */
#ifndef LUNAMATCH_DLQ_H
#define LUNAMATCH_DLQ_H

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

typedef struct lm_dlq lm_dlq;

/*
 * Creates an idempotent producer (acks=all) for topic on brokers. fatal, if
 * not NULL, is set to 1 when librdkafka reports a fatal producer error; it
 * must outlive the lm_dlq. Returns LM_OK and *out, or LM_EINVAL/LM_EKAFKA/
 * LM_ENOMEM with the reason in err.
 */
int lm_dlq_new(const char *brokers, const char *topic, volatile int *fatal, lm_dlq **out,
    char *err, size_t errlen);

/* Flushes for at most LM_DLQ_MESSAGE_TIMEOUT_MS and frees; NULL is a no-op. */
void lm_dlq_free(lm_dlq *q);

/*
 * Queues a copy of consumed message m (key, value, headers) with the reason
 * headers. reason and error must be NUL-terminated. A full local queue is
 * waited on for at most timeout_ms. Returns LM_OK, LM_ETIMEDOUT, or another
 * lm_kafka_err value; a failure counts as an undelivered message for the
 * next lm_dlq_flush.
 */
int lm_dlq_send(lm_dlq *q, const rd_kafka_message_t *m, const char *reason,
    const char *error, int timeout_ms);

/*
 * Waits at most timeout_ms for the delivery reports of every message sent
 * since the last flush. Returns LM_OK when all were delivered, LM_EKAFKA when
 * one failed, LM_ETIMEDOUT when reports are missing. Either way the counts
 * start again from zero (messages still in flight are reported to a later
 * flush and do not count there).
 */
int lm_dlq_flush(lm_dlq *q, int timeout_ms);

/* Messages delivered since lm_dlq_new. */
uint64_t lm_dlq_delivered(const lm_dlq *q);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_DLQ_H */
