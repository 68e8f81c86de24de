/*
 * kafkatest.h - Kafka for the integration tests: the broker a test runs
 * against (a fresh lunamatch-devkafka, or the Apache Kafka broker named by
 * LUNAMATCH_TEST_BROKERS), producers that count their deliveries, consumers
 * that read assigned partitions, and the small librdkafka chores around
 * them.
 *
 * Everything here except lmt_devkafka_start fails the running cmocka test
 * on error (it may be called from group set-ups too). Handles belong to the
 * thread that made them, apart from the delivery counters of a producer,
 * which librdkafka's callbacks update atomically.
 */
#ifndef LMT_KAFKATEST_H
#define LMT_KAFKATEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <protobuf-c/protobuf-c.h>

#include "proc.h"

/* devkafka start-up, and a new client's first metadata answer: generous
 * for sanitizer builds. */
#define LMT_KAFKA_START_MS 30000
/* Topic creation, one metadata request, a flush. */
#define LMT_KAFKA_IO_MS 30000
/* How long lmt_broker_close waits for devkafka to exit on SIGTERM. */
#define LMT_DEVKAFKA_STOP_MS 10000
/* Longest bootstrap address kept (devkafka's first stdout line). */
#define LMT_KAFKA_BROKERS_MAX 512

/* LUNAMATCH_TEST_BROKERS when it is set and not empty, else NULL. */
const char *lmt_kafka_real_brokers(void);

/* The broker of a test. Zero-initialise; release with lmt_broker_close. */
typedef struct lmt_broker {
	bool real;                           /* LUNAMATCH_TEST_BROKERS in use */
	char brokers[LMT_KAFKA_BROKERS_MAX]; /* bootstrap address */
	lmt_proc *dk;                        /* the devkafka child; NULL if real */
} lmt_broker;

/*
 * Starts lunamatch-devkafka --partitions <partitions> with env added to its
 * environment (NULL-terminated "NAME=value" strings, e.g. topic names; may
 * be NULL) and reads its bootstrap address from the first stdout line
 * (at most LMT_KAFKA_START_MS). Does not assert: returns LM_OK, or an
 * lm_err with the reason on stderr and b->dk NULL, so that a group set-up
 * can return -1.
 */
int lmt_devkafka_start(lmt_broker *b, int partitions, const char *const env[]);

/* A topic the test needs: its name and the services' variable for it
 * (e.g. "LUNAMATCH_TOPIC_POSTINGS"). */
typedef struct lmt_topic {
	const char *var;
	const char *name;
} lmt_topic;

/*
 * The test's broker with its own n topics of `partitions` partitions: on
 * the real broker (lmt_kafka_real_brokers) they are created and waited for
 * until each reports that many partitions; otherwise a fresh devkafka
 * starts with each topic's var=name in its environment.
 */
void lmt_broker_open(lmt_broker *b, int partitions, const lmt_topic *topics, size_t n);

/* Stops the devkafka child (SIGTERM and SIGCONT, at most
 * LMT_DEVKAFKA_STOP_MS, then SIGKILL) and frees it; a real broker is left
 * alone. NULL is ignored. */
void lmt_broker_close(lmt_broker *b);

/*
 * Waits until the cluster's metadata lists topic (it may lag creation on a
 * real broker), asking every 100 ms for at most about timeout_ms. Returns
 * its partition count, 0 if it never showed.
 */
int lmt_kafka_wait_topic(rd_kafka_t *rk, const char *topic, int timeout_ms);

/*
 * Creates topic with `partitions` partitions (replication 1) on the mock
 * cluster mc and returns the mock's answer (it does not assert: a topic
 * that exists is an error), after a pause of LMT_MOCK_OP_PAUSE_MS: the mock
 * cluster of librdkafka 2.0.2 may miss the wake-up of a request that comes
 * while it finishes the one before (it drains its wake-up pipe after
 * serving its queue), and then serves it only on its next 1 s tick: about
 * every other creation in a row took a second more without the pause.
 */
rd_kafka_resp_err_t lmt_mock_topic_create(
    rd_kafka_mock_cluster_t *mc, const char *topic, int partitions);

/* See lmt_mock_topic_create. */
#define LMT_MOCK_OP_PAUSE_MS 5

/* A producer that counts the outcome of every message it sends. */
typedef struct lmt_producer {
	rd_kafka_t *rk;
	atomic_int delivered; /* acknowledged by the broker */
	atomic_int failed;    /* given up on */
} lmt_producer;

/*
 * A producer on brokers with client.id client_id and the extra librdkafka
 * properties props ("name", "value", ..., NULL; may be NULL), after the
 * cluster answered metadata. Free with lmt_producer_free.
 */
lmt_producer *lmt_producer_new(
    const char *brokers, const char *client_id, const char *const props[]);

/* Destroys the handle (messages not flushed are dropped). NULL is
 * ignored. */
void lmt_producer_free(lmt_producer *p);

/*
 * Queues one message (copied) for topic and partition (RD_KAFKA_PARTITION_UA:
 * the partitioner's choice), key may be NULL, value NULL is a tombstone,
 * headers ("name", "value", ..., NULL) may be NULL. Waits while the queue
 * is full (at most about 10 s), then serves delivery reports.
 */
void lmt_produce(lmt_producer *p, const char *topic, int32_t partition, const char *key,
    const void *value, size_t len, const char *const headers[]);

/* lmt_produce of the protobuf encoding of m, key as given. */
void lmt_produce_pb(
    lmt_producer *p, const char *topic, const char *key, const ProtobufCMessage *m);

/* Flushes (at most timeout_ms), asserts that nothing failed so far and
 * returns how many messages the producer delivered since it was made. */
int lmt_producer_flush(lmt_producer *p, int timeout_ms);

/*
 * A consumer on brokers in group (group.id; offsets are never committed by
 * themselves: enable.auto.commit=false) with the extra properties props
 * (as lmt_producer_new), its events on the consumer queue, after the
 * cluster answered metadata. Release with lmt_kafka_consumer_free.
 */
rd_kafka_t *lmt_kafka_consumer(const char *brokers, const char *client_id,
    const char *group, const char *const props[]);

/* Assigns partitions 0 .. n - 1 of topic to c, starting at from[i] (from
 * NULL: each at the beginning). */
void lmt_kafka_assign(rd_kafka_t *c, const char *topic, int n, const int64_t *from);

/* Closes the consumer (leaving its group) and destroys it. NULL is
 * ignored. */
void lmt_kafka_consumer_free(rd_kafka_t *c);

/* Group's committed offset of topic's partition (negative: none), asked by
 * a consumer of its own that never joins the group; *metalen (may be NULL)
 * gets the length of the metadata committed with it. */
int64_t lmt_group_committed(const char *brokers, const char *group, const char *topic,
    int32_t partition, size_t *metalen);

/* The value of the last header called name of m as a malloc'd,
 * NUL-terminated string of *len bytes (len may be NULL), or NULL when m has
 * no such header. */
char *lmt_kafka_header(const rd_kafka_message_t *m, const char *name, size_t *len);

/*
 * Polls c (assigned to a matches topic) once, waiting at most timeout_ms.
 * Returns the decoded lunamatch.v1.MatchEvent of a data message (free it
 * with protobuf_c_message_free_unpacked), after asserting the contract of
 * events.proto: the key is the candidate_id and the event_id 32 hex digits;
 * NULL when nothing came or the message was not an event (an error, a
 * partition end).
 */
struct Lunamatch__V1__MatchEvent *lmt_poll_match_event(rd_kafka_t *c, int timeout_ms);

#endif /* LMT_KAFKATEST_H */
