/*
 * index.h - the in-memory match index: every posting and profile by id, the
 * IDF statistics over the postings not closed, and exact top-k queries in both
 * directions, with explanations.
 *
 * Ranking is by score descending, ties by id ascending. A query returns
 * exactly the top k of an exhaustive scan of the scorer (score.h), but
 * reads only the lists of the subject's terms in the partitions its veto
 * key allows (adding up each record's skill shares, and leaving out the
 * list tiers that cannot lift a record to the k-th score), and evaluates
 * and fully scores only the records whose upper bound can still enter the
 * top k (docs/scoring.md, Ranking).
 *
 * Thread safety: every function may be called from any thread at any time.
 * Queries hold a read lock for their whole run and run concurrently with each
 * other; put/remove/replace/advance take the write lock, so a query sees the
 * index either before or after an update, never half of it. The index_seq
 * a query reports (the change-log position its data reflects) changes in
 * the same write-lock critical section as the data it accompanies. A closed or removed
 * record leaves the results of every query that starts after the update
 * returned. Nothing a query returns points into the index.
 *
 * IDF statistics count every stored posting that is not CLOSED, expired or
 * not (lm_skill_stats_counts): a query's answer depends on the records, the
 * model and its `now` alone, never on when it runs. Expiry is decided per
 * query by its `now`. The index clock (lm_index_advance) only moves the
 * open_postings gauge of lm_index_counts_get.
 */
#ifndef LUNAMATCH_MATCH_INDEX_H
#define LUNAMATCH_MATCH_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunamatch/record.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/records.pb-c.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_INDEX_TOP_K_MAX     1000  /* largest top_k of a query */
#define LM_INDEX_TOP_K_DEFAULT 10    /* top_k 0 means this */
#define LM_INDEX_EVENT_TOP_MAX 10000 /* largest n of lm_index_top_for_* */

typedef struct lm_index lm_index;

/* Creates an empty index scoring with model, which is borrowed: it must
 * outlive the index. Returns LM_OK, LM_EINVAL or LM_ENOMEM. */
int lm_index_new(const lm_model *model, lm_index **out);

/* Frees the index and every record in it. No call may be running. NULL is a
 * no-op. */
void lm_index_free(lm_index *idx);

/*
 * Records kept in a store. An index given the store that holds its records
 * (before any put; the store is borrowed and must outlive the index)
 * keeps no copy of the records put as stored (lm_index_prepare_stored):
 * only their prepared forms, which is all a query ranks with. What a
 * response shows of such a record (its explanation, GetPosting and
 * GetProfile, the summaries of lm_index_top_for_*) is decoded from the
 * store's bytes, read in place (lm_store_read), at the version the index
 * holds. The store is never behind the index (the follower applies what
 * the store committed), but it may be ahead: a record changed or deleted
 * whose change the index has not applied yet. A read that finds the store
 * holding another version of a record it shows, or none, builds nothing
 * from it: it is run again when the index has changed (at most
 * LM_INDEX_STALE_TRIES runs, each waiting up to LM_INDEX_STALE_WAIT_MS
 * for an update), and fails with LM_EBUSY (retry later) when the index
 * is still behind: an answer never mixes versions. A store read that fails
 * fails the call with the store's error. Records put with their bytes
 * (lm_index_prepare, lm_index_prepare_wire, the puts above) keep them, as
 * in an index without a store. Returns LM_OK, or LM_EINVAL when idx
 * already holds records. lm_index_store returns the store, or NULL.
 */
#define LM_INDEX_STALE_TRIES   4
#define LM_INDEX_STALE_WAIT_MS 50

struct lm_store;
int lm_index_set_store(lm_index *idx, struct lm_store *store);
struct lm_store *lm_index_store(const lm_index *idx);

/*
 * Inserts or replaces (by id) a record. seq is the change-log position of
 * the change; when it is not 0, the index_seq becomes seq in the same
 * critical section as the change (also on LM_ESTALE: the change is then
 * reflected by the newer version). 0 leaves the index_seq as it is. The
 * index always takes ownership of
 * rec, also on failure (then rec is freed): rec must be freeable with
 * protobuf_c_message_free_unpacked(&rec->base, NULL), as a message from
 * lunamatch__v1__job_posting__unpack(NULL, ...) is. Returns LM_OK,
 * LM_ESTALE (a record with a higher version is stored; nothing changed),
 * LM_EINVAL (rec NULL or without id) or LM_ENOMEM (nothing changed).
 * A CLOSED posting stays stored (for GetPosting and ExplainMatch) but is
 * never matched.
 */
int lm_index_put_posting(lm_index *idx, Lunamatch__V1__JobPosting *rec, uint64_t seq);
int lm_index_put_profile(
    lm_index *idx, Lunamatch__V1__CandidateProfile *rec, uint64_t seq);

/* The same for a compact record (lm_pb_compact, lm_pb_decode_compact of
 * lunamatch/pb.h), which the index keeps as it is: rec must be freeable
 * with free(rec); the index takes ownership also on failure. The puts
 * above compact their record first. */
int lm_index_put_posting_compact(
    lm_index *idx, Lunamatch__V1__JobPosting *rec, uint64_t seq);
int lm_index_put_profile_compact(
    lm_index *idx, Lunamatch__V1__CandidateProfile *rec, uint64_t seq);

/*
 * The same in two steps, so that a load can prepare records on several
 * threads and put them in order on one. lm_index_prepare takes a compact
 * record (a posting when `posting`, else a profile; ownership passes, also
 * on failure) and computes the scorer's prepared form of it: it reads no
 * index and may run on any thread. Returns LM_OK, LM_EINVAL (rec NULL or
 * without id; rec freed) or LM_ENOMEM (rec freed). lm_index_put_prepared
 * puts a prepared record as lm_index_put_*_compact do and takes ownership
 * of it, also on failure (*ip is then empty). lm_index_prepared_clear
 * frees a prepared record that is not put; an empty one or NULL is a
 * no-op.
 */
typedef struct lm_index_prepared {
	bool posting;
	bool stored;           /* the index's store holds the bytes: keep none */
	ProtobufCMessage *rec; /* the compact record */
	void *prep;            /* its lm_posting_prep or lm_profile_prep */
	uint8_t *wire;         /* the packed record, or NULL */
	size_t wire_len;       /* its size (also of a stored record's bytes) */
} lm_index_prepared;

int lm_index_prepare(lm_index_prepared *ip, bool posting, ProtobufCMessage *rec);

/* lm_index_prepare of a record whose packed bytes the caller has (wire,
 * len: the stored value rec was decoded from), which the index copies
 * instead of encoding rec again: a record is kept as its prepared form and
 * these bytes, decoded for what a response shows. wire NULL: as
 * lm_index_prepare. */
int lm_index_prepare_wire(lm_index_prepared *ip, bool posting, ProtobufCMessage *rec,
    const void *wire, size_t len);

/* lm_index_prepare of a record read from the store the index was given
 * (lm_index_set_store), len its stored size: the index keeps no bytes of
 * it but reads them from the store when a response shows the record. Its
 * put into an index without a store fails with LM_EINVAL. */
int lm_index_prepare_stored(
    lm_index_prepared *ip, bool posting, ProtobufCMessage *rec, size_t len);
int lm_index_put_prepared(lm_index *idx, lm_index_prepared *ip, uint64_t seq);
void lm_index_prepared_clear(lm_index_prepared *ip);

/* Removes a record. Returns LM_OK or LM_ENOENT, and cannot fail for want
 * of memory: its own change never allocates (a step of a new idf
 * snapshot's lists follows, as after a put, lm_index_set_reshare_seam;
 * its failure leaves the removal done). seq as for the puts (set on both
 * results). */
int lm_index_remove_posting(lm_index *idx, const char *id, uint64_t seq);
int lm_index_remove_profile(lm_index *idx, const char *id, uint64_t seq);

/*
 * Replaces every record of idx, with the statistics and lists, by those of
 * from, and sets the index_seq to seq, in one write-lock critical section:
 * a query sees all of the old content with the old index_seq or all of the
 * new with seq. This is how a snapshot is loaded: into a new index that no
 * query sees, then published at once. from must have been created with the
 * same model and be used by no other thread; it is freed (with the old
 * content), also on error. The index clock becomes the later of the two.
 * A loading `from` (lm_index_loading) is finished first (lm_index_loaded).
 * Returns LM_OK, LM_EINVAL or LM_ENOMEM (idx unchanged).
 */
int lm_index_replace(lm_index *idx, lm_index *from, uint64_t seq);

/* Moves the index clock forward to now (never back): postings that expired
 * by then leave the open_postings count. Scores do not depend on it. It
 * also takes steps of a new idf snapshot's lists being built
 * (lm_index_set_reshare_seam), so that one is put in place while no
 * update comes, and returns true when they all did work and more is left:
 * the caller (the follower) calls again without waiting, after looking for
 * changes, so that a build finishes at the speed of steps, each update
 * waiting for one step at most. */
bool lm_index_advance(lm_index *idx, int64_t now);

/* The change-log position the index reflects, reported in responses.
 * lm_index_set_seq moves it without a change of data (a change-log entry
 * that changes nothing in the index), under the write lock; it is a no-op
 * when the index is at seq already. A query reads it under the read lock
 * of its scan. A change of data sets it with the change (the seq of
 * put/remove/replace); one loader (the follower) sets it. */
void lm_index_set_seq(lm_index *idx, uint64_t seq);
uint64_t lm_index_seq(lm_index *idx);

/*
 * Marks idx as being filled by a loader before any query reads it (a
 * snapshot load into the index lm_index_replace then publishes, or a
 * benchmark's build). Its postings go into the inverted lists only when the
 * load ends, all at once at the final IDF statistics, so that no share is
 * computed twice: by lm_index_loaded, which lm_index_replace calls on
 * `from`. Until then queries on idx do not see the postings put; answers
 * after the load are those of an index that took the same records one at a
 * time (but for the vetoed count of pruned queries, match.proto).
 * lm_index_loaded returns LM_OK (also when idx is not loading), LM_EINVAL
 * or LM_ENOMEM (then idx is still loading; a retry lists the rest).
 */
void lm_index_loading(lm_index *idx);
int lm_index_loaded(lm_index *idx);

/*
 * Failure injection: fault, when set, is asked before each allocating step
 * of an update that comes after the record was checked (what names the
 * step); any result but LM_OK makes the step fail as if memory had run
 * out, and the update returns LM_ENOMEM with the index unchanged. Reads
 * ask it too before they decode a record's kept bytes (RECORD: for a
 * query's stored subject and the matches it returns, ExplainMatch,
 * GetPosting, GetProfile, the top lists of events); they then return
 * LM_ENOMEM. The allocations of a new idf snapshot's build (RESHARE,
 * REBUILD: lm_index_set_reshare_seam), asked about by a step or, for
 * REBUILD, by an update's change made to the build too, fail the build
 * alone: it is dropped, the old lists and snapshot kept, and the update
 * goes through. NULL (no seam) is the default and what production uses.
 * Removals ask only for RESHARE and REBUILD (their own change never
 * allocates, and the failure of the step that follows it does not undo
 * it).
 */
typedef enum lm_index_alloc {
	LM_INDEX_ALLOC_SCRATCH, /* room for a record's terms (updates; the load's second
	                           listing thread) */
	LM_INDEX_ALLOC_SNAP,    /* the idf snapshot's room for a posting */
	LM_INDEX_ALLOC_LISTS,   /* room in the inverted lists */
	LM_INDEX_ALLOC_RECORD,  /* a read's decoding of a record's bytes */
	LM_INDEX_ALLOC_RESHARE, /* the start of a new idf snapshot's lists, built
	                           aside after an update (it is then taken at the
	                           next check), under the read lock */
	LM_INDEX_ALLOC_REBUILD, /* room in that snapshot or in those lists, for a
	                           step or for an update's change made to them too */
} lm_index_alloc;

void lm_index_set_fault(
    lm_index *idx, int (*fault)(void *arg, lm_index_alloc what), void *arg);

/*
 * A new idf snapshot's postings' lists are built aside a step at a time,
 * one step after each update and up to LM_INDEX_ADVANCE_STEPS by
 * lm_index_advance (the follower calls it once per read of the change
 * log, so that a change waits for that many steps at most), then put
 * in place at once (docs/scoring.md, Shares). A step goes through the doc
 * ids in order, adding the listed postings, until it added its budget of
 * list entries or walked LM_INDEX_RESHARE_WALK doc ids, listed, closed or
 * free alike: a long run of doc ids without a listed posting bounds a step
 * as entries do. Test seam: seam, when set, is asked before each step,
 * with the build's lock held and not the index's read or write lock, with
 * *budget the list entries the step may add (it adds whole postings until
 * it added that many). It may change it (0: no step this time) or return
 * anything but LM_OK to make the step fail as if memory had run out: the
 * lists and snapshot then stay the old ones, and a later check takes a
 * new one. The seam (and a fault hook, lm_index_set_fault, called during a
 * step) may call only functions that take neither lock, such as
 * lm_index_reshare_walked: lm_index_list_bytes and lm_index_check_lists
 * take the build's lock and would wait for ever. NULL (no seam) is the
 * default and what production uses.
 */
#define LM_INDEX_RESHARE_WALK  4096
#define LM_INDEX_ADVANCE_STEPS 16
void lm_index_set_reshare_seam(
    lm_index *idx, int (*seam)(void *arg, size_t *budget), void *arg);

/* For tests: the doc ids the last step walked (the listed postings it
 * added and the free or closed doc ids it passed over); 0 after a step
 * the seam held (budget 0) or failed. Lock-free, so that the reshare seam
 * may call it. */
size_t lm_index_reshare_walked(lm_index *idx);

/*
 * For tests: LM_OK when the postings' lists hold exactly the entries of
 * the postings listed (every stored posting that is not CLOSED, once a
 * load is done), each with its share at the idf snapshot and what follows
 * it, every such posting once in its partition's list of every posting
 * and, when it has no skills of its own, in the bare list, and the
 * snapshot counting the skills of these postings and no others; and, while a
 * new snapshot's lists are being built, the same of those at the new
 * snapshot for the doc ids the build has passed; every tier of the
 * postings' and the profiles' lists as queries rely on it
 * (lm_inverted_check: ordered, exact block maxima, bounds); every doc
 * id's slot (the veto key and prep queries read) its entry's; and the
 * expiry heap in heap order, holding each live posting with an expiry
 * once, at the place the posting knows, and nothing else. Else LM_EINVAL
 * with the first difference in err. O(list entries), under the read lock.
 */
int lm_index_check_lists(lm_index *idx, char *err, size_t errlen);

/* The sweep of a query reads the lists a window of 2^window doc ids at a
 * time, so that the per-query slots it adds to stay in the cache (index.c,
 * sweep; 2^20 by default). lm_index_set_window sets it (clamped to 4 ..
 * 31; 0: the default), for tests that want many windows on small data and
 * for tuning; answers never depend on it. lm_index_window returns it. Both
 * take the lock. */
void lm_index_set_window(lm_index *idx, uint32_t window);
uint32_t lm_index_window(lm_index *idx);

/* The model the index scores with (borrowed, as given to lm_index_new), and
 * its version (owned by the model). */
const lm_model *lm_index_model(const lm_index *idx);
const char *lm_index_model_version(const lm_index *idx);

/* Country groups of the partitions (see index.c): the groups that the
 * countries of a veto key's country_mask are in, bit g for group g (0 ..
 * LM_INDEX_COUNTRY_GROUPS - 1). A posting that is not remote and a profile
 * that does not relocate, with countries in one group, are listed in
 * partitions of that group, which a query whose subject's countries are
 * all in other groups skips. */
#define LM_INDEX_COUNTRY_GROUPS 8
uint32_t lm_index_country_groups(uint64_t country_mask);

typedef struct lm_index_counts {
	uint64_t postings;      /* every stored posting, closed ones included */
	uint64_t open_postings; /* open and unexpired at the index clock */
	uint64_t profiles;
	uint64_t reached;  /* records queries evaluated (read the veto keys of), ever */
	uint64_t scored;   /* pairs queries fully scored, ever (the rest were pruned) */
	uint64_t entries;  /* inverted-list entries queries read, ever */
	uint64_t listed;   /* entries the term lists hold now (both sides) */
	uint64_t reshares; /* idf snapshots updates took (shares computed again), ever */
	/* Reads of a stored record for an answer (MatchJobs, MatchCandidates,
	 * ExplainMatch, GetPosting, GetProfile, the top lists of events) that
	 * found it damaged, ever: left out of a match list, or the call failed
	 * with LM_EPARSE. */
	uint64_t damaged;
} lm_index_counts;

/* Lock-free (never waits for the index lock, so it is safe in a metrics
 * gauge or an nng callback while a long scan runs); any thread. Each count
 * is the value after some completed update; the three need not come from
 * the same update. */
void lm_index_counts_get(lm_index *idx, lm_index_counts *out);

/* Bytes the inverted lists of both sides hold as allocated
 * (lm_inverted_bytes), without the allocator's own: those queries read,
 * and those of a new idf snapshot being built or, after it is put in
 * place, the old ones not freed yet (lm_index_set_reshare_seam). Takes the
 * read lock and the build's (a step due meanwhile on another thread is
 * skipped, as when two threads step at once), and is O(partitions *
 * terms): for tests and diagnostics, not for a gauge. */
size_t lm_index_list_bytes(lm_index *idx);

/*
 * Jobs for a candidate: a stored profile (req->candidate_id) or an inline
 * one (req->profile, normalized by the caller as ingest would). top_k 0
 * means LM_INDEX_TOP_K_DEFAULT. Scores are computed at now (req->as_of is
 * the caller's business: the service passes it as now); the response
 * carries now as as_of, and the model version and index_seq read under the
 * lock of the scan. Postings that a veto or a request filter
 * removes are counted in `vetoed` and never returned.
 *
 * On LM_OK *out is a new response (caller frees it with
 * protobuf_c_message_free_unpacked(&(*out)->base, NULL)). Errors: LM_EINVAL
 * (no subject, top_k above LM_INDEX_TOP_K_MAX, bad filters; reason in err),
 * LM_ENOENT (no such stored profile), LM_ENOMEM. An index that reads its
 * records from a store may also fail with LM_EBUSY (the store is ahead of
 * the index for a record the answer shows) or a store error; so may every
 * read below that shows a record (lm_index_set_store).
 *
 * A record whose stored bytes do not decode (damaged: its value in the
 * store, or bytes that do not unpack; never a failure of the store, the
 * disk or memory) cannot be shown. A damaged match is left out of the
 * answer, which is the exact top_k of the other records; each is counted
 * (lm_index_counts.damaged) and logged once per record version
 * (index.damaged). A damaged stored subject (read from the store only when
 * the answer has a match to explain: ranking uses its prepared form, so an
 * answer without matches succeeds), or more than LM_INDEX_DAMAGED_MAX
 * damaged matches in one answer, fail with LM_EPARSE, the record named in
 * err; so do the reads below that need a damaged
 * record (lm_index_explain, lm_index_get_*), counted alike.
 */
#define LM_INDEX_DAMAGED_MAX 16
int lm_index_match_jobs(lm_index *idx, const Lunamatch__V1__MatchJobsRequest *req,
    int64_t now, Lunamatch__V1__MatchJobsResponse **out, char *err, size_t errlen);

/* Candidates for a job: a stored posting (req->job_id) or an inline one.
 * Matches carry the candidate's headline as title and no company. Same
 * contract as lm_index_match_jobs. */
int lm_index_match_candidates(lm_index *idx,
    const Lunamatch__V1__MatchCandidatesRequest *req, int64_t now,
    Lunamatch__V1__MatchCandidatesResponse **out, char *err, size_t errlen);

/* One stored pair explained at FULL level, vetoed or not (score 0 and
 * eligible false when vetoed), with the posting's compliance warnings, the
 * model version, the index_seq and as_of = now. Caller frees *out.
 * LM_ENOENT when either record is not stored; LM_EPARSE when either is
 * damaged (see above), with *posting_damaged (may be NULL) true when it is
 * the posting, false when it is the profile. */
int lm_index_explain(lm_index *idx, const char *candidate_id, const char *job_id,
    int64_t now, Lunamatch__V1__ExplainMatchResponse **out, bool *posting_damaged);

/* Deep copies of stored records; the caller frees them with
 * protobuf_c_message_free_unpacked(&(*out)->base, NULL). LM_ENOENT when not
 * stored; LM_EPARSE when damaged (see above). */
int lm_index_get_posting(lm_index *idx, const char *id, Lunamatch__V1__JobPosting **out);
int lm_index_get_profile(
    lm_index *idx, const char *id, Lunamatch__V1__CandidateProfile **out);

/* The serialized size of a stored record (posting true: a posting, else a
 * profile), computed on the index's own copy: nothing is copied. LM_ENOENT
 * when not stored. */
int lm_index_record_size(lm_index *idx, bool posting, const char *id, uint64_t *size);

/* The version of a stored record (posting true: a posting, else a
 * profile), from the index alone: nothing is decoded or read from a
 * store. LM_ENOENT when not stored. */
int lm_index_record_version(
    lm_index *idx, bool posting, const char *id, uint64_t *version);

/*
 * A record an answer found damaged in the store (its stored value or
 * record does not decode), at the version the index holds. A load of the
 * store skips such a record (lm_store_snapshot_checked), so an index that
 * keeps it differs from a fresh one in its statistics and counts: the
 * follower takes these (lm_index_take_damaged) and removes each record
 * still damaged at that version.
 */
typedef struct lm_index_damaged {
	bool posting; /* a posting, else a profile */
	uint64_t version;
	char id[LM_RECORD_ID_MAX + 1];
} lm_index_damaged;

/* Records noted and not yet taken, at most; more are dropped (an answer
 * that meets one of them again notes it again). */
#define LM_INDEX_DAMAGED_NOTED 64

/* Moves up to max of the damaged records noted since the last call to out,
 * oldest first, and returns how many. Any thread. */
size_t lm_index_take_damaged(lm_index *idx, lm_index_damaged *out, size_t max);

/* The score of one stored pair (0 and *eligible false when vetoed;
 * eligible may be NULL). LM_ENOENT when either record is not stored. */
int lm_index_pair_score(lm_index *idx, const char *candidate_id, const char *job_id,
    int64_t now, double *score, bool *eligible);

/* One counterpart of a record, for new-match events. */
typedef struct lm_top_item {
	char *id; /* the other record's id */
	double score;
	uint64_t version; /* the other record's version */
	char *summary;    /* explanation summary line */
} lm_top_item;

typedef struct lm_top_list {
	uint64_t subject_version; /* version of the record asked about */
	size_t n;
	lm_top_item *items; /* best first (score desc, id asc) */
	/* On a failure only: true when it comes from a record the list reads
	 * whose stored bytes do not decode (damaged, see
	 * lm_index_match_jobs): the subject, or the last of more than
	 * LM_INDEX_DAMAGED_MAX damaged matches; asking again fails alike.
	 * Never for an error of the store, the disk or memory. Then
	 * damaged_posting and damaged_id name that record. */
	bool damaged;
	bool damaged_posting;
	char damaged_id[LM_RECORD_ID_MAX + 1];
} lm_top_list;

/*
 * The best n (at most LM_INDEX_EVENT_TOP_MAX) eligible profiles for a stored
 * posting, or postings for a stored profile, with score >= min_score. Fills
 * *out (release with lm_top_list_clear). Returns LM_OK, LM_ENOENT (subject
 * not stored), LM_EINVAL, LM_ENOMEM, or, for an index that reads its
 * records from the store, LM_EBUSY or the store's error. A damaged match
 * is left out as in lm_index_match_jobs (the list is the exact best n of
 * the other records, counted and logged alike); a damaged subject (when
 * the list has a match, as in lm_index_match_jobs), or more than
 * LM_INDEX_DAMAGED_MAX damaged matches, fail with LM_EPARSE and
 * out->damaged. A closed or expired posting has no matches.
 */
int lm_index_top_for_posting(lm_index *idx, const char *job_id, uint32_t n,
    double min_score, int64_t now, lm_top_list *out);
int lm_index_top_for_profile(lm_index *idx, const char *candidate_id, uint32_t n,
    double min_score, int64_t now, lm_top_list *out);

/* Frees what a lm_top_list holds and zeroes it. NULL is a no-op. */
void lm_top_list_clear(lm_top_list *l);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_INDEX_H */
