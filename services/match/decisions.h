/*
 * decisions.h - the decision log: every MatchJobs and MatchCandidates answer
 * as a lunamatch.v1.Decision on the decisions topic, through a durable queue.
 *
 * Ranking people for jobs is a use of automated decisions that must be
 * traceable: who was ranked for what, when, by which model and which index
 * state, and what came out (docs/decision-log.md). lm_decisions_log writes
 * the decision into a durable queue (dqueue.h, <data dir>/decisions) and
 * returns once it is on disk; a sender thread produces the queued decisions
 * to Kafka with the idempotent producer (key subject_id, headers
 * content-type and schema) and removes each one its delivery report
 * confirms. A broker outage delays the log and never loses it; delivery is
 * at-least-once and consumers de-duplicate on decision_id.
 *
 * The service logs a decision before it answers, and refuses to answer
 * (UNAVAILABLE) when the decision cannot be logged: an answer that is not on
 * record is not given. Concurrent callers share one synced transaction
 * (group commit), so the log costs one disk sync per batch of answers, not
 * per answer. lm_decisions_log_async hands a decision over without waiting
 * and reports its write through a callback, so that the thread that made
 * the answer goes on to the next one while the disk syncs; the answer is
 * sent from the callback.
 *
 * Threads: lm_decisions_log, lm_decisions_log_async and the getters may be
 * called from any thread (not lm_decisions_log from nng callbacks: it waits
 * for the disk). lm_decisions_free must not race with other calls.
 */
#ifndef LUNAMATCH_MATCH_DECISIONS_H
#define LUNAMATCH_MATCH_DECISIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "lunamatch/config.h"
#include "lunamatch/metrics.h"
#include "lunamatch/v1/decisions.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_DECISIONS_SUBDIR             "decisions"   /* under the data directory */
#define LM_DECISIONS_BYTES_MAX          (256u * 1024) /* one serialized Decision */
#define LM_DECISIONS_QUEUE_MAX          4096 /* decisions in memory, waiting for or in a write */
#define LM_DECISIONS_INFLIGHT_MAX       10000 /* decisions produced and not yet removed */
#define LM_DECISIONS_MAP_MAX_DEFAULT    (4ull << 30) /* largest durable queue */
#define LM_DECISIONS_MESSAGE_TIMEOUT_MS 60000
#define LM_DECISIONS_RETRY_MIN_MS       500
#define LM_DECISIONS_RETRY_MAX_MS       30000
#define LM_DECISIONS_REPLICA_MAX        128
#define LM_DECISIONS_SYNC_MS_MAX        LM_DECISION_LOG_SYNC_MS_MAX /* config.h */
#define LM_DECISIONS_ID_LEN             32 /* hex digits of a decision id */
#define LM_DECISIONS_CONTENT_TYPE       "application/x-protobuf"
#define LM_DECISIONS_SCHEMA             "lunamatch.v1.Decision"

typedef struct lm_decisions lm_decisions;

typedef struct lm_decisions_opts {
	const char *brokers;      /* bootstrap servers; required */
	const char *topic;        /* the decisions topic; required */
	const char *data_dir;     /* the queue is <data_dir>/decisions; required */
	const char *client_id;    /* NULL: "lunamatch-match-decisions" */
	const char *replica;      /* NULL or "": the host name */
	lm_metrics *metrics;      /* may be NULL; borrowed, must outlive the log */
	uint64_t max_queue_bytes; /* 0: LM_DECISIONS_MAP_MAX_DEFAULT */
	int message_timeout_ms;   /* 0: LM_DECISIONS_MESSAGE_TIMEOUT_MS */
	/* When a decision counts as logged (docs/decision-log.md). 0 (the
	 * default): once its transaction is synced to disk. 1 to
	 * LM_DECISIONS_SYNC_MS_MAX: once it is written to the queue's file,
	 * which survives a crash of the process; the file is synced at most
	 * sync_ms later, so an operating system crash or a power loss can
	 * lose the decisions of that long (and, on a file system that does
	 * not keep the order of writes, damage the queue). */
	unsigned sync_ms;
} lm_decisions_opts;

/*
 * Opens the durable queue and creates the producer; nothing is sent before
 * lm_decisions_start. On LM_OK the caller owns *out (lm_decisions_free).
 * Errors: LM_EINVAL (missing or invalid options, logged), LM_EEXIST (the
 * queue is open in this process), LM_ESCHEMA, LM_ESTORE, LM_ENOMEM,
 * LM_EKAFKA.
 */
int lm_decisions_new(const lm_decisions_opts *o, lm_decisions **out);

/* Starts the writer and sender threads. LM_OK or LM_ENOMEM. */
int lm_decisions_start(lm_decisions *d);

/*
 * Stops the threads: decisions already handed to lm_decisions_log are
 * written first; what Kafka has not acknowledged stays queued for the next
 * start. Closes the queue and frees d. NULL is a no-op.
 */
void lm_decisions_free(lm_decisions *d);

/*
 * Logs the decision rec with a new random decision_id, decided_at_ms = now
 * and, when rec's is empty, this instance's replica name (rec itself is not
 * changed), and returns once it is durable in the queue (as sync_ms says). id (may be
 * NULL; LM_DECISIONS_ID_LEN + 1 bytes) receives the decision id. Returns LM_OK; LM_E2BIG
 * (over LM_DECISIONS_BYTES_MAX); LM_EBUSY (LM_DECISIONS_QUEUE_MAX decisions already wait
 * for the disk); LM_ECLOSED (not started or stopping); or the queue's error (LM_EMAPFULL,
 * LM_ENOSPC, LM_EIO...), after which the log is unhealthy until a write succeeds.
 */
int lm_decisions_log(lm_decisions *d, const Lunamatch__V1__Decision *rec, char *id);

/*
 * Called once for each decision handed to lm_decisions_log_async, on the
 * log's writer thread, after its transaction: rc is LM_OK when the decision
 * is durable in the queue, else the queue's error (LM_EMAPFULL, LM_ENOSPC,
 * LM_EIO, LM_ENOMEM...). It must not block and must not call into the log.
 */
typedef void (*lm_decisions_done_fn)(void *arg, int rc);

/*
 * Like lm_decisions_log, but returns once the decision is serialized and
 * queued for the writer; done(arg, rc) reports its write later. On LM_OK
 * done is called exactly once, also when the log stops meanwhile
 * (lm_decisions_free writes what was handed in first). On an error
 * (LM_EINVAL, LM_EIO, LM_E2BIG, LM_EBUSY, LM_ECLOSED, LM_ENOMEM) done is
 * never called.
 */
int lm_decisions_log_async(lm_decisions *d, const Lunamatch__V1__Decision *rec,
    lm_decisions_done_fn done, void *arg);

/*
 * Counts in lunamatch_decisions_log_errors_total an answer refused because
 * its caller could not build its decision (out of memory) before handing
 * it to lm_decisions_log or lm_decisions_log_async, which count their own
 * refusals. Any thread; NULL is a no-op.
 */
void lm_decisions_count_refused(lm_decisions *d);

/*
 * For /readyz: false after a failed write or sync, until a write succeeds,
 * the sender removes sent decisions from the queue (room again, the usual
 * end of a broker outage), or LM_DECISIONS_READY_RETRY_MS pass. The last
 * lets traffic try again after a failure that nothing else would clear (a
 * full disk freed meanwhile): a replica taken out of service would
 * otherwise get no answer to log, and stay out for good. A failed deferred
 * sync (sync_ms above 0) is cleared by a sync that works only: the writer
 * retries it by itself, and each failure starts the
 * LM_DECISIONS_READY_RETRY_MS again.
 */
bool lm_decisions_healthy(lm_decisions *d);

#define LM_DECISIONS_READY_RETRY_MS 30000

/* Failure points, for tests: the next n removals of sent decisions from
 * the queue fail (LM_EIO) in the real code path. Any thread. */
void lm_decisions_fail_removals(lm_decisions *d, unsigned n);

/* The same for the writer's deferred syncs (sync_ms above 0). */
void lm_decisions_fail_syncs(lm_decisions *d, unsigned n);

/* The same for the sender's reads of the queue; returns how many of the
 * failures armed before were left unused. */
unsigned lm_decisions_fail_reads(lm_decisions *d, unsigned n);

/* Decisions in the durable queue, not yet acknowledged by Kafka. */
uint64_t lm_decisions_pending(lm_decisions *d);

/* The librdkafka producer the sender uses now, owned by d; for tests (for
 * example rd_kafka_test_fatal_error). After a fatal error the sender replaces
 * it: the pointer is valid until then. */
struct rd_kafka_s *lm_decisions_kafka(lm_decisions *d);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_DECISIONS_H */
