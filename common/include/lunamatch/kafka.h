/*
 * kafka.h - the small layer between lunamatch and librdkafka.
 *
 * Every Kafka client of the project (ingest's consumer, match's producer, the
 * CLI, the dev broker) builds its configuration here, so that all of them
 * share one set of defaults, route librdkafka's own logs into lm_log and turn
 * librdkafka error codes into lm_err values in one place. Topic creation and
 * "is the cluster reachable" are here too, because every program needs them
 * at start-up.
 *
 * All functions may be called from any thread; the rd_kafka_t passed in is
 * only used through librdkafka's thread-safe API.
 */
#ifndef LUNAMATCH_KAFKA_H
#define LUNAMATCH_KAFKA_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest bootstrap.servers list and client.id that lm_kafka_conf accepts. */
#define LM_KAFKA_BROKERS_MAX   1024
#define LM_KAFKA_CLIENT_ID_MAX 128
/* Kafka's own limit on topic names (249 characters of [a-zA-Z0-9._-]). */
#define LM_KAFKA_TOPIC_MAX 249
/* Most topics and partitions per topic that lm_kafka_create_topics takes. */
#define LM_KAFKA_CREATE_TOPICS_MAX 64
#define LM_KAFKA_PARTITIONS_MAX    10000

/*
 * fetch.wait.max.ms of the consumers whose records are on the path of a new
 * match (ingest, the event owner). Apache Kafka answers a fetch as soon as
 * data arrives, whatever this is; librdkafka's mock cluster (devkafka) waits
 * it out, so it bounds how late a new record reaches a consumer there
 * (librdkafka's default, 500 ms, made events take about half a second on
 * devkafka). An idle consumer sends a fetch per broker this often.
 */
#define LM_KAFKA_FETCH_WAIT_MS "20"

/*
 * The timeout to give rd_kafka_seek_partitions: -1, no limit (librdkafka's
 * convention for its timeouts). A seek is local to the client (its fetcher
 * takes the new position, typically within microseconds), and librdkafka
 * before 2.1.0 reads that timeout as microseconds: 5000 gave up after 5 ms
 * on a loaded machine, and the partition was not rewound.
 */
#define LM_KAFKA_SEEK_WAIT (-1)

/*
 * Creates a configuration with bootstrap.servers = brokers (omitted when
 * brokers is NULL, e.g. for the handle that owns a mock cluster), client.id =
 * client_id (NULL gives "lunamatch"), a log callback that writes librdkafka's
 * logs through lm_log with event "kafka.log" (syslog levels 0-3 error, 4 warn,
 * 5-6 info, 7 debug), and the project defaults: socket.keepalive.enable=true,
 * log.connection.close=false (idle disconnects are not errors).
 *
 * On LM_OK, *out is a new configuration that the caller owns: it passes it to
 * rd_kafka_new (which takes it over on success) or frees it with
 * rd_kafka_conf_destroy. On error, *out is NULL and err holds a one-line
 * reason; LM_EINVAL for an empty, too long or rejected value, LM_ENOMEM.
 */
int lm_kafka_conf(const char *brokers, const char *client_id, rd_kafka_conf_t **out,
    char *err, size_t errlen);

/*
 * The producers whose messages must arrive once and in order, whatever
 * retries happen (ingest's dead letters, match events, the decision log):
 * lm_kafka_conf's defaults plus acks=all, enable.idempotence=true,
 * message.timeout.ms, at most LM_KAFKA_PRODUCER_QUEUE_KB of messages held
 * (queue.buffering.max.kbytes: a produce beyond it fails with
 * RD_KAFKA_RESP_ERR__QUEUE_FULL until delivery reports make room), the
 * pairs of `extra` (key, value, ..., NULL; NULL for none) and the
 * callbacks, which get `opaque`.
 *
 * An idempotent producer can raise a fatal error (the broker lost its
 * sequence state, or fenced it): from then on every message fails with
 * RD_KAFKA_RESP_ERR__FATAL and the handle is of no further use. error_cb sees
 * err RD_KAFKA_RESP_ERR__FATAL (rd_kafka_fatal_error names the cause); its
 * owner must destroy the handle and, to go on, create a new one.
 *
 * Returns LM_OK with *out the new handle, or an lm_kafka_conf/lm_kafka_set
 * error, or LM_EKAFKA when librdkafka refuses the configuration; err holds
 * a one-line reason and *out is NULL then.
 */
#define LM_KAFKA_PRODUCER_QUEUE_KB 65536 /* 64 MiB held by one producer */

typedef struct lm_kafka_producer_opts {
	const char *brokers;
	const char *client_id;
	int message_timeout_ms; /* > 0 */
	const char *const *extra;
	void (*dr_msg_cb)(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
	void (*error_cb)(rd_kafka_t *rk, int err, const char *reason, void *opaque);
	void *opaque;
} lm_kafka_producer_opts;

int lm_kafka_producer_new(
    const lm_kafka_producer_opts *o, rd_kafka_t **out, char *err, size_t errlen);

/* Whether the producer rk (from lm_kafka_producer_new) raised a fatal error:
 * then it logs the cause as event `event` (error level) and returns true,
 * and the caller destroys rk (purging what it holds first if it wants the
 * reports) and makes a new one. False for a NULL rk. Call it after
 * rd_kafka_poll, from the thread that owns rk. */
bool lm_kafka_producer_dead(rd_kafka_t *rk, const char *event);

/*
 * True when t is a name Kafka allows for a topic: 1..LM_KAFKA_TOPIC_MAX
 * characters of [a-zA-Z0-9._-], and neither "." nor "..". False for NULL.
 * A name that passes is also taken literally by librdkafka's subscribe,
 * which reads a name starting with '^' as a regular expression.
 */
bool lm_kafka_topic_name_ok(const char *t);

/*
 * The content-type header among a message's headers h (NULL: none), as
 * every reader of the record topics takes it (ingest's consumer, the event
 * owner): the last header whose name is "content-type" in any case.
 * *value and *len are its value, borrowed from h (a header without a value
 * gives "" and 0), or NULL and 0 when h holds none. What the value means is
 * ingest's rule (lm_ingest_content_type).
 */
void lm_kafka_content_type(const rd_kafka_headers_t *h, const void **value, size_t *len);

/* Sets one librdkafka property. Returns LM_OK, or LM_EINVAL with
 * librdkafka's reason (unknown property or invalid value) in err. */
int lm_kafka_set(
    rd_kafka_conf_t *c, const char *key, const char *value, char *err, size_t errlen);

/*
 * Converts a librdkafka error to an lm_err: LM_OK for no error; LM_ETIMEDOUT
 * for the timeouts (client, request, queue and message); LM_EEXIST for
 * TOPIC_ALREADY_EXISTS; LM_ENOENT for an unknown topic or partition;
 * LM_EBUSY for a full producer queue; LM_E2BIG for a message too large;
 * LM_EINVAL for invalid arguments or configuration; LM_ENOTSUP for a feature
 * the broker lacks; LM_ECLOSED when the handle is being destroyed; LM_EACCES
 * for a failed authentication or authorization (topic, group, cluster,
 * transactional id); LM_EKAFKA for everything else. Callers log
 * rd_kafka_err2name(e) next to it.
 */
int lm_kafka_err(rd_kafka_resp_err_t e);

/*
 * Makes sure that each of the n topics exists: one metadata request finds
 * the missing ones, and only those are created (CreateTopics) with
 * `partitions` partitions and the broker's default replication factor.
 * Idempotent: a topic that already exists (whatever its partition count,
 * also when another client creates it meanwhile, or while it has no leader)
 * is success. Waits at most about timeout_ms (> 0) in total.
 *
 * librdkafka's mock cluster (lunamatch-devkafka) has no controller and never
 * answers CreateTopics: there, existing topics are success and a missing one
 * ends in LM_ETIMEDOUT.
 *
 * Returns LM_OK; LM_EINVAL for a bad name (empty, longer than
 * LM_KAFKA_TOPIC_MAX, characters outside [a-zA-Z0-9._-]), n of 0 or above
 * LM_KAFKA_CREATE_TOPICS_MAX, partitions outside 1..LM_KAFKA_PARTITIONS_MAX
 * or a creation the broker refuses as invalid; LM_EACCES for a topic the
 * cluster lists as not authorized; LM_ETIMEDOUT; or another lm_kafka_err
 * value. err names the failing topic.
 */
int lm_kafka_create_topics(rd_kafka_t *rk, const char *const *topics, size_t n,
    int partitions, int timeout_ms, char *err, size_t errlen);

/*
 * Waits until the cluster answers a metadata request listing at least one
 * broker, retrying for at most timeout_ms. Returns LM_OK, LM_ETIMEDOUT when no
 * broker answered in time, or LM_EINVAL for a negative timeout.
 */
int lm_kafka_wait_metadata(rd_kafka_t *rk, int timeout_ms);

/*
 * Reads the partition count of topic from the cluster's metadata into
 * *count. Returns LM_OK; LM_ENOENT when the topic does not exist (or is
 * being deleted); LM_EBUSY when the cluster lists it without a leader for
 * now (being created, its broker down or moving: try again later);
 * LM_EACCES when this client is not authorized to see it; LM_EINVAL for a
 * bad name; LM_ETIMEDOUT or another lm_kafka_err value. *count is written
 * only on LM_OK.
 */
int lm_kafka_topic_partitions(
    rd_kafka_t *rk, const char *topic, int timeout_ms, int *count);

/*
 * Reads the partition counts of n topics from one read of the cluster's
 * metadata: rvs[i] is what lm_kafka_topic_partitions returns for topics[i],
 * and counts[i] its partition count, written only when rvs[i] is LM_OK.
 * Returns LM_OK when the metadata was read, whatever each topic's result;
 * LM_EINVAL for n of 0, a NULL argument or a bad name among the topics;
 * LM_ETIMEDOUT or another lm_kafka_err value when the metadata was not
 * read (counts and rvs untouched).
 */
int lm_kafka_topics_partitions(rd_kafka_t *rk, const char *const *topics, size_t n,
    int timeout_ms, int *counts, int *rvs);

/*
 * Reads the log end (which RD_KAFKA_OFFSET_END: the offset the next
 * message will take, as the high watermark of
 * rd_kafka_query_watermark_offsets) or the log start
 * (RD_KAFKA_OFFSET_BEGINNING) of every partition of l into its offset,
 * within timeout_ms, with one request to each partition's leader instead
 * of one round trip per partition: a consumer's loop that waits for the
 * answer waits once. The isolation level is rk's, as for the watermarks.
 * Returns LM_OK when every partition's offset was read; else the
 * lm_kafka_err of the first failure, *failed (may be NULL) being the
 * index in l of the partition that failed (its leader unknown: the other
 * partitions without an err hold their offsets), or -1 when the request
 * failed (a broker's error, the timeout: every offset is then
 * RD_KAFKA_OFFSET_INVALID, none read). LM_EINVAL
 * for a NULL rk or l, an empty l, another `which` or a negative
 * timeout.
 */
int lm_kafka_list_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
    int64_t which, int timeout_ms, int *failed);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_KAFKA_H */
