/*
 * consumer.h - the Kafka side of ingest: consumer-group loop, batches,
 * offsets, rebalances, dead letters, metrics and health.
 *
 * One thread runs lm_consumer_run. It polls the postings and profiles
 * topics as a member of the group cfg->group_id, turns each message into a
 * decision (ingest.h) and closes a batch when librdkafka has no more
 * messages at hand and the batch before is written, when it holds
 * cfg->batch_max messages or when its first message is cfg->batch_ms old:
 * its rejects go to the DLQ and its store transaction runs on a writer
 * thread while the loop decides the next batch. Then the DLQ flush and -
 * only when both succeeded - the batch's offsets are stored for auto-commit
 * and a StoreNotify is published. One batch is written at a time, in
 * consumption order. A failed batch is retried in place with backoff (store
 * again, resend its dead letters not yet delivered or dropped for good)
 * until it succeeds or the service stops;
 * its offsets are never stored before that, nor those of any later batch,
 * so nothing is lost (at-least-once; versions make replays harmless).
 *
 * On partition revocation the batch in flight and the open batch are
 * finished (one attempt each; when the first is given up, so is the
 * second), offsets committed synchronously, then the partitions are
 * released (eager and cooperative protocols). On stop the batches are
 * finished the same way and the consumer closed, leaving the group and
 * committing the stored offsets, within the bounds below.
 *
 * A dead letter that the broker refuses for good (too large, invalid) is
 * dropped, logged and counted (lunamatch_ingest_dlq_failed_total) once,
 * however often its batch is retried, instead of blocking the partition;
 * see dlq.h.
 *
 * The store says when it was last current with the topics (offsets.h,
 * lm_ingest_current): at the first catch-up, then every
 * LM_CONSUMER_CURRENT_MS, once the partitions are stored up to the ends
 * the brokers gave at that time. A store last current longer ago than
 * cfg->store_max_age_s (the topics may have dropped the tombstones of what
 * was deleted meanwhile), or that does not say, is refilled: read again
 * from the beginning, then the records the topics no longer hold are
 * deleted (see "refilling" in consumer.c; docs/ingest.md).
 */
#ifndef LUNAMATCH_CONSUMER_H
#define LUNAMATCH_CONSUMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "lunamatch/config.h"
#include "lunamatch/metrics.h"
#include "lunamatch/record.h"
#include "lunamatch/store.h"
#include "notify.h"
#include "trimmer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* /healthz fails when the loop has not come round for this long. */
#define LM_CONSUMER_STALL_MS 60000
/* The loop counts as coming round while it waits for a store write this
 * long at most: a write that takes longer (a disk that stopped answering)
 * fails /healthz LM_CONSUMER_STALL_MS later. */
#define LM_CONSUMER_WRITE_STALL_MS 600000
/* Period of the consumer lag refresh (cheap: cached watermarks). */
#define LM_CONSUMER_LAG_MS 2000
/* Pauses between attempts of a failed batch: the first, the longest. */
#define LM_CONSUMER_BACKOFF_MIN_MS 100
#define LM_CONSUMER_BACKOFF_MAX_MS 5000
/*
 * Shutdown bounds. After a stop the loop ends within one poll (100 ms), or
 * at once when it is sending or waiting for a batch's dead letters (that
 * batch is then given up, its offsets not stored). The last batches' dead
 * letters get LM_CONSUMER_STOP_FLUSH_MS in all (sends and delivery waits),
 * leaving the group LM_CONSUMER_CLOSE_MS, and the DLQ producer
 * LM_DLQ_CLOSE_MS (dlq.h): about 10 s in all with the brokers down. Work
 * not confirmed by then is never acknowledged; it is consumed again after
 * the restart.
 */
#define LM_CONSUMER_STOP_FLUSH_MS 3000
#define LM_CONSUMER_CLOSE_MS      4000
/* The hard bound: lunamatch-ingest exits (status 1) when its shutdown has
 * not finished this long after the stop signal (a broker that neither
 * answers nor closes its connections can hold librdkafka's destroy). */
#define LM_CONSUMER_STOP_MAX_MS 12000

typedef struct lm_consumer lm_consumer;

/* Period of showing the store current again once caught up: the
 * partitions' ends are read from the brokers (LM_CONSUMER_ENDS_MS at most:
 * the loop waits meanwhile), and once the store holds them the time of
 * the read is recorded as when the store was last current. */
#define LM_CONSUMER_CURRENT_MS 60000
#define LM_CONSUMER_ENDS_MS    1000
/* Most records a step of a refill's sweep examines (lm_store_foreach_unmarked);
 * a step runs between batches, as a trim does. */
#define LM_CONSUMER_SWEEP_MAX 1000

/* Interval of librdkafka's commit of the stored offsets. */
#define LM_CONSUMER_AUTO_COMMIT_MS 1000
/* The group session timeout (session.timeout.ms); heartbeats go out every
 * 30% of it (heartbeat.interval.ms, 3 s of the default). */
#define LM_CONSUMER_SESSION_MS 10000

typedef struct lm_consumer_opts {
	const lm_config *cfg;     /* brokers, topics, group, batch limits */
	lm_store *store;          /* writable; borrowed */
	const lm_record_ctx *ctx; /* borrowed */
	lm_metrics *metrics;      /* where the lunamatch_ingest_* metrics go */
	lm_notify *notify;        /* may be NULL; borrowed */
	lm_trimmer *trimmer;      /* stepped between batches; may be NULL */
	/* The loop ends when *stop != 0. An atomic (lock-free, so a signal
	 * handler may write it) because other threads read it. */
	const atomic_int *stop;
	/* 0: LM_CONSUMER_AUTO_COMMIT_MS. Tests set it long to see the commits
	 * of a revocation or a close alone. */
	unsigned auto_commit_ms;
	/* 0: LM_CONSUMER_STALL_MS. Tests set it short to see a stall soon. */
	unsigned stall_ms;
	/* 0: LM_CONSUMER_WRITE_STALL_MS. Tests set it short to see a store
	 * write taken for stalled. */
	unsigned write_stall_ms;
	/* 0: LM_KAFKA_PRODUCER_QUEUE_KB. The DLQ producer's local queue in KiB;
	 * tests set it small to fill it with a few dead letters. */
	unsigned dlq_queue_kb;
	/* 0: LM_CONSUMER_SESSION_MS. Tests set it short: the mock cluster
	 * holds a rebalance after a member left or joined for the session
	 * timeout less 1 s. */
	unsigned session_ms;
	/* The wall clock in Unix seconds, which dates when the store was last
	 * current and tells its age. NULL: the system's (CLOCK_REALTIME).
	 * Tests set one ahead to come back to a store after a long absence. */
	int64_t (*wall_s)(void);
	/* 0: LM_CONSUMER_CURRENT_MS. Tests set it short. */
	unsigned current_ms;
	/* Reads the topics' partition counts from the cluster's metadata, as
	 * lm_kafka_topics_partitions (lunamatch/kafka.h) does. NULL: that
	 * one. Tests pass one that counts the reads. */
	int (*topics_partitions)(rd_kafka_t *rk, const char *const *topics, size_t n,
	    int timeout_ms, int *counts, int *rvs);
} lm_consumer_opts;

/*
 * Failure points of the consumer, for tests: lm_consumer_fail_next makes the
 * next n passes through a point fail, in the real code path, so that the
 * consumer's handling of that failure runs as it would in production.
 */
typedef enum lm_consumer_fault {
	/* The batch's store transaction fails (LM_EIO), nothing stored. */
	LM_CONSUMER_FAULT_STORE,
	/* The batch's dead letters are reported undelivered (LM_ETIMEDOUT)
	 * after the real flush: those delivered are sent again by the retry
	 * (those dropped for good are not). */
	LM_CONSUMER_FAULT_DLQ,
	/* Processing a consumed message fails for lack of memory (LM_ENOMEM):
	 * the batch so far is finished and the message is read again. */
	LM_CONSUMER_FAULT_READ,
	/* Until the first catch-up: the check's read of the group's committed
	 * offsets is reported timed out after the real call. */
	LM_CONSUMER_FAULT_COMMITTED,
	/* The batch's store transaction takes LM_CONSUMER_SLOW_STORE_MS longer
	 * (a slow disk): the next batch stays open meanwhile. */
	LM_CONSUMER_FAULT_SLOW_STORE,
	/* The store transaction that moves the store's offsets past the
	 * batch's delivered dead letters fails (LM_EIO). */
	LM_CONSUMER_FAULT_MOVE,
	/* At an assignment: the read of the group's committed offsets is
	 * reported timed out after the real call. */
	LM_CONSUMER_FAULT_RESUME_COMMITTED,
	/* Reading how far the store holds a partition fails (LM_EBUSY, as a
	 * full LMDB reader table gives): at an assignment, and at each check
	 * until the first catch-up. */
	LM_CONSUMER_FAULT_POSITION,
	LM_CONSUMER_FAULT_COUNT_
} lm_consumer_fault;

#define LM_CONSUMER_SLOW_STORE_MS 2000

/* Arms failure point f for its next n passes (0 disarms). Any thread. */
void lm_consumer_fail_next(lm_consumer *c, lm_consumer_fault f, unsigned n);

/*
 * Creates the consumer, its DLQ producer and its metrics (all values 0).
 * Does not contact the brokers yet. Reads when the store was last current
 * and, for a store past cfg->store_max_age_s or of unknown age, begins its
 * refill in the store (logged as store.refill and counted), or resumes one
 * an earlier run began; a new, empty store records when its first filling
 * began. Everything borrowed must outlive the consumer. Returns LM_OK and
 * *out; LM_EINVAL (with the reason in err) for configuration that Kafka
 * refuses, topics that collide, an epoch below the store's or a topic
 * other than the one the store's positions come from at the same epoch
 * (docs/ingest.md); LM_EKAFKA; LM_ENOMEM; the store's error.
 */
int lm_consumer_new(
    const lm_consumer_opts *o, lm_consumer **out, char *err, size_t errlen);

/*
 * Subscribes and runs the loop until *stop is set, then finishes the batch,
 * commits and closes the consumer. Transient Kafka errors (broker down,
 * network) are logged and retried. Returns LM_OK after a stop; otherwise
 * the loop ends without storing the batch's offsets, logging why
 * (consumer.stop), and returns LM_EKAFKA after a fatal librdkafka error or
 * a seek that failed, the store's error when it cannot say how far it
 * holds a partition being assigned, LM_ENOMEM, or LM_EINVAL, with nothing
 * consumed, when the brokers are of another cluster than the one the
 * store's positions come from at the configured epoch (docs/ingest.md).
 */
int lm_consumer_run(lm_consumer *c);

/* Frees the consumer (after lm_consumer_run returned, or without it having
 * run); NULL is a no-op. */
void lm_consumer_free(lm_consumer *c);

/* The librdkafka handle of the consumer, or with dlq of its dead-letter
 * producer, owned by c; for tests and diagnostics (for example
 * rd_kafka_test_fatal_error). Any thread. */
rd_kafka_t *lm_consumer_kafka(lm_consumer *c, bool dlq);

/* lm_http check functions; arg is the lm_consumer. Any thread. live: the
 * loop came round, or went on waiting for the DLQ (every 100 ms of such a
 * wait counts) or for the store's writer (for LM_CONSUMER_WRITE_STALL_MS at
 * most), within LM_CONSUMER_STALL_MS (lm_consumer_opts.stall_ms).
 * ready: partitions assigned, the last batch did not fail, no committed
 * offset of the group ahead of the store is being set back (see "setting
 * the group back" in consumer.c), and the consumer has caught up once:
 * every partition assigned to it was stored up to the end it had when
 * first seen (see "catching up" in consumer.c), the partitions assigned
 * were every partition of both topics (an ingest reads all of them into its
 * own store), with no set-back owed, and
 * a refill of the store (see "refilling") finished, so that a new replica
 * serves no queries from a half-filled store, nor a stale one. A store
 * that held the whole of its topics within cfg->store_max_age_s
 * (lm_ingest_current, offsets.h) counts as caught up from the start, so
 * that a restart during a broker outage is started. started: the last
 * condition alone, which once true stays true: the pod's readiness
 * (docs/deployment.md), which a broker outage or a failing batch must not
 * take away from the match service beside it. */
int lm_consumer_live(void *arg, char *reason, size_t len);
int lm_consumer_ready(void *arg, char *reason, size_t len);
int lm_consumer_started(void *arg, char *reason, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_CONSUMER_H */
