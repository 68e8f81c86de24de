/*
 * owner.h - new-match events derived by the owner of a record's Kafka
 * partition, so that replicas of the match service emit each event once.
 *
 * Every replica holds the whole store (its own ingest consumer group feeds
 * it) and its own index. Event derivation is a Kafka consumer of its own:
 * it reads the postings and profiles topics in ONE group shared by every
 * replica (LUNAMATCH_EVENTS_GROUP_ID, default LM_OWNER_GROUP_DEFAULT), so
 * each partition, and with it each record (the key decides the partition),
 * has exactly one owner at a time. For every message of its partitions, in
 * partition order, the owner:
 *
 *   1. decides what ingest decides (lm_ingest_decide: the same rule, not a
 *      copy): a rejected message derives nothing;
 *   2. waits until the local index reflects the message: a put of version v
 *      when the index holds the id at v or later, a tombstone when the
 *      index no longer holds the id. When that cannot tell (the record was
 *      deleted or re-created by a later message), the replica's own ingest
 *      group is asked for its committed offset of the partition: once ingest
 *      has committed past the message and the index has applied the store's
 *      change log as far as it went then, the index reflects it;
 *   3. derives the events of the batch into the outbox (lm_events_on_owned,
 *      in durable transactions: a large batch is split into several, and
 *      one that fails part-way is derived again in full), and only then
 *      commits the messages' offsets in the shared group. A derivation
 *      that fails is retried (the member serves the group between the
 *      tries and gives the batch up when its partitions are revoked),
 *      except a message's whose derivation reads a stored record that
 *      does not decode (damaged): that message is skipped, counted
 *      (lunamatch_events_derive_skipped_total) and logged (owner.skip).
 *      A pair whose decision below needs the stored position of a
 *      damaged record is announced, not skipped: its other owner may
 *      announce it too, under the same event id
 *      (lunamatch_events_pairs_damaged_position_total).
 *
 * A pair is announced once, by one of its two records' owners, even when
 * they are different replicas deriving at the same moment. Before it
 * derives, an owner commits a claim on its batch's partitions (the
 * committed offset stays at the batch's first message; the metadata names
 * the batch's end). A postings owner then reads its cut, the log end
 * offsets of the profiles topic, adds it to its claim, waits until its own
 * index holds every profile before the cut and until the profiles' owners
 * have derived them all, and announces the pairs whose profile version is
 * inside the cut. A profiles owner waits until its index holds every
 * posting derived or claimed, and announces a pair when the posting's
 * version is derived already, or claimed with a cut that does not hold the
 * profile; a posting not yet claimed is left to its owner, whose cut, read
 * after its claim, will hold the profile. Positions of records come from
 * the store (lm_store_get_pos). Pairs left to the other side are counted
 * (lunamatch_events_pairs_deferred_total) and not recorded.
 *
 * A rebalance hands partitions over through the committed offsets: nothing
 * is lost, and the new owner repeats at most the uncommitted tail (the
 * batch in progress, whose claim it finds); what it announces from such
 * messages is counted (lunamatch_events_handover_pairs_total). Event ids
 * are deterministic, so subscribers drop the repeats of pairs at the record
 * versions the previous owner derived; the new owner derives from its own
 * index as it is then, and a pair whose record it holds at a later version
 * is announced under that version, with another id. A replica that joins
 * starts from the group's offsets and announces nothing old. A group with
 * no offsets yet starts at the beginning of the topics (a new deployment:
 * every record is new to subscribers).
 *
 * Positions name neither a topic nor a cluster: they compare with the
 * owner's offsets only when the store was written from the topics it reads
 * on the cluster its brokers are of. Ingest records that source per kind
 * (lm_ingest_source_get); while the store's source of either kind is
 * another topic or cluster (a misconfiguration, a move half done), the
 * owner does not join the events group: owner.source says what differs,
 * lm_owner_stats.refused (lunamatch_events_owner_source_refused) shows it,
 * the other replicas derive the events, and it joins once the source is its
 * own. A store without a source is accepted.
 *
 * Threads: two of its own (lm_owner_start), one per topic, each a member
 * of the shared group that polls its consumer and derives; the postings
 * one may wait for the profiles one. lm_owner_wake and lm_owner_stats_get
 * may be called from any thread.
 */
#ifndef LUNAMATCH_MATCH_OWNER_H
#define LUNAMATCH_MATCH_OWNER_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "index.h"
#include "lunamatch/metrics.h"
#include "lunamatch/record.h"
#include "lunamatch/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_OWNER_GROUP_DEFAULT "lunamatch-match-events"
#define LM_OWNER_BATCH_MAX     500 /* messages derived together, then committed */
/* Bytes (key and value) of the messages a member holds, polled while its
 * batch waits, for the next batch; past it they are given back and read
 * again later. A batch keeps no message bytes. */
#define LM_OWNER_HELD_BYTES_MAX (64u << 20)
#define LM_OWNER_SESSION_MS     10000   /* a dead owner's partitions move after this */
#define LM_OWNER_HEARTBEAT_MS   1000    /* the members' heartbeat; a session exceeds it */
#define LM_OWNER_SESSION_MS_MAX 3600000 /* librdkafka's session.timeout.ms maximum */
#define LM_OWNER_PROBE_MS       500     /* ingest's committed offsets asked this often */
#define LM_OWNER_VIEW_PROBE_MS  20      /* the same, while waiting for the other side */
#define LM_OWNER_PARTITIONS_MAX 128     /* partitions of either topic */
#define LM_OWNER_WAIT_NOTE_MS   10000   /* a wait this long is logged (owner.wait) */
#define LM_OWNER_SWEEP_MS       1000    /* a step of the pair-state sweep this often */
/* Pauses before a failed derivation is retried: the first, the longest. */
#define LM_OWNER_RETRY_MIN_MS 100
#define LM_OWNER_RETRY_MAX_MS 5000

typedef struct lm_owner_opts {
	const char *brokers;         /* required */
	const char *topic_postings;  /* required */
	const char *topic_profiles;  /* required */
	const char *group_id;        /* NULL or "": LM_OWNER_GROUP_DEFAULT */
	const char *ingest_group_id; /* this replica's ingest group; required */
	const char *client_id;       /* NULL: "lunamatch-match-events" */
	lm_store *store;             /* required; borrowed */
	lm_index *index;             /* required; borrowed */
	lm_events *events;           /* required; borrowed */
	const lm_record_ctx *rctx;   /* required; borrowed (ingest's rule needs it) */
	lm_metrics *metrics;         /* may be NULL; borrowed */
	size_t held_bytes_max;       /* 0: LM_OWNER_HELD_BYTES_MAX */
	/* 0: LM_OWNER_SESSION_MS; else more than LM_OWNER_HEARTBEAT_MS and
	 * at most LM_OWNER_SESSION_MS_MAX (LM_EINVAL otherwise; brokers also
	 * refuse less than their group.min.session.timeout.ms, 6000 by
	 * default). Tests set it short (3000 or
	 * more): the mock cluster holds a rebalance after a member left or
	 * joined for the session timeout less 1 s. */
	unsigned session_ms;
	/* Whether the index holds the store's records (the follower loaded
	 * its snapshot; lm_follower_loaded), asked by any thread. The sweep of
	 * stranded pair states (lm_events_sweep_pairs) runs only while it says
	 * so: an index still loading holds no record, and every pair would
	 * read as gone. NULL: no sweep. */
	bool (*index_loaded)(void *arg);
	void *index_loaded_arg;
} lm_owner_opts;

typedef struct lm_owner lm_owner;

/* Creates the owner and its two Kafka handles (nothing is contacted yet).
 * Options are copied, borrowed objects must outlive the owner. Returns
 * LM_OK, LM_EINVAL (logged), LM_EKAFKA or LM_ENOMEM; *out is NULL then. */
int lm_owner_new(const lm_owner_opts *o, lm_owner **out);

/* Starts the threads: each waits until this replica's ingest has stored
 * what the topics held at the start, by its group's committed offsets and
 * by the store's own positions (see "joining" in owner.c), and the store's
 * positions come from the owner's topics and cluster (as above), then
 * joins the group and derives. Returns LM_OK, LM_EINVAL
 * (already started) or an errno-derived code. A member that cannot
 * subscribe when its wait ends logs owner.subscribe and stays out of the
 * group (the other replicas take its partitions); lm_owner_stats.joined
 * shows it. */
int lm_owner_start(lm_owner *ow);

/* The index moved (the follower's on_applied): a message waiting for it is
 * looked at again now. Any thread; NULL is a no-op. */
void lm_owner_wake(lm_owner *ow);

/* Sleeps until lm_owner_wake has been called since the caller last saw
 * the wake-ups, the owner stops, or ms pass. *seen is the caller's own:
 * 0 for a caller that has seen none, then what the last call left there
 * (the count of wake-ups so far), so that a wake-up that came while the
 * caller was not waiting (busy, or looking at what it waits for) ends
 * its next wait at once, and one wake-up wakes every caller waiting. Each
 * member thread waits here with its own *seen; tests call it from
 * threads of their own. Any thread. */
void lm_owner_wait_wake(lm_owner *ow, uint64_t *seen, int64_t ms);

/* Stops the threads (a batch still waiting is left uncommitted, with its
 * claim, for the next owner), leaves the group and frees everything.
 * NULL is a no-op. */
void lm_owner_free(lm_owner *ow);

typedef struct lm_owner_stats {
	uint64_t messages;   /* messages whose events are derived and committed
	                        (counted when the commit lands) */
	uint64_t rejected;   /* of which ingest's rule rejects (nothing derived) */
	uint64_t probes;     /* questions to the ingest group's committed offsets */
	uint64_t failures;   /* failed steps (derivations, claims, messages not
	                        decided); each retried */
	uint64_t ahead;      /* derivations retried quietly because the store was
	                        ahead of the index for a record they show */
	uint64_t rebalances; /* partition assignments received */
	uint64_t deferred;   /* new pairs left to the other record's owner */
	uint64_t handover;   /* pairs announced from a previous owner's claim */
	uint64_t skipped;    /* messages whose derivation was skipped: a stored
	                        record it reads is damaged (owner.skip) */
	uint64_t damaged;    /* pairs announced here because the stored position
	                        of one of their records is damaged; each counted
	                        once, when written to the outbox */
	int partitions;      /* partitions owned now */
	int joined;          /* members in the events group: 2 once joined, 0 while
	                        ingest catches up or the source is refused; 1
	                        when a subscribe failed (owner.subscribe is
	                        logged) */
	bool failing;        /* the last derivation failed and is being retried */
	bool refused;        /* the store's positions come from another topic or
	                        cluster than the owner reads: it stays out of the
	                        group (owner.source is logged) */
	uint64_t held_peak;  /* the most bytes of messages a member held at once
	                        for its next batch (LM_OWNER_HELD_BYTES_MAX) */
} lm_owner_stats;

/* Any thread. */
void lm_owner_stats_get(lm_owner *ow, lm_owner_stats *out);

/* Failure point, for tests: the next n messages either member polls cannot
 * be decided (ingest's rule fails with LM_ENOMEM, as out of memory would),
 * in the real code path. Any thread; NULL is a no-op. */
void lm_owner_fail_decides(lm_owner *ow, unsigned n);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_OWNER_H */
