/*
 * service.h - the MatchService method handlers (match.proto) over the
 * in-memory index, as a handler table for the RPC server (rpc_server.h).
 *
 * The service answers from the index it is given. It reports UNAVAILABLE for
 * every data method until it is marked loaded (the follower has applied the
 * start-up snapshot), and Check reports SERVING only when the index is loaded
 * and the RPC server (if one is attached) is serving, i.e. not draining.
 *
 * MatchJobs, MatchCandidates and ExplainMatch score at the request's as_of
 * (Unix seconds; 0 = the service clock, negative or more than
 * LM_MATCH_AS_OF_SKEW_MAX seconds ahead of it = INVALID_ARGUMENT) and answer
 * with that as_of, the model version and the index_seq of the scan: the same
 * store, model and as_of give the same bytes.
 *
 * Inline records in MatchJobs / MatchCandidates are copied and prepared with
 * lm_*_prepare (inline_record = 1) as ingest prepares stored ones, but
 * without the gazetteer and the fair-requirements list (match loads
 * neither): their locations are not geocoded and inline postings not
 * screened (docs/ingest.md). The request itself is never modified.
 *
 * Thread-safety: the handlers run on the RPC server's worker threads, any
 * number at once. lm_match_service_set_loaded and
 * lm_match_service_set_server may be called from any thread at any time;
 * lm_match_service_free only when no handler can run any more (after
 * lm_rpc_server_free).
 */
#ifndef LUNAMATCH_MATCH_SERVICE_H
#define LUNAMATCH_MATCH_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decisions.h"
#include "index.h"
#include "lunamatch/record.h"
#include "rpc_server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How far an as_of may be ahead of the service clock (seconds): the skew
 * between the clocks of replicas that a replayed as_of may come from. */
#define LM_MATCH_AS_OF_SKEW_MAX 300

/* The metadata key of the caller's identity, logged with each decision. */
#define LM_MATCH_CALLER_KEY "caller"

/* The service name Check answers for, besides "". */
#define LM_MATCH_SERVICE_NAME "lunamatch.v1.MatchService"

typedef struct lm_match_service lm_match_service;

/* Clock of the service: Unix seconds. */
typedef int64_t (*lm_match_clock_fn)(void *arg);

typedef struct lm_match_service_opts {
	lm_index *index;          /* required; borrowed, must outlive the service */
	lm_record_ctx record_ctx; /* for inline records; its pointers are borrowed */
	/* The `now` given to scoring; NULL = time(NULL). A fixed clock makes
	 * answers reproducible (tests, replays). */
	lm_match_clock_fn clock;
	void *clock_arg;
	/* The decision log (borrowed; NULL = off). When set, every MatchJobs
	 * and MatchCandidates answer is logged before it is given, and an
	 * answer that cannot be logged is refused with UNAVAILABLE: their
	 * commits (lm_rpc_commit) hold the reply until the decision is
	 * durable, without holding the worker. The log must outlive the RPC
	 * server (lm_rpc_server_free waits for the held replies). */
	lm_decisions *decisions;
} lm_match_service_opts;

/* Creates the service. The index starts "not loaded". Returns LM_OK,
 * LM_EINVAL (no index, or no taxonomy/rates in record_ctx) or LM_ENOMEM. */
int lm_match_service_new(const lm_match_service_opts *o, lm_match_service **out);

/* Frees the service; NULL is a no-op. No handler may be running. */
void lm_match_service_free(lm_match_service *s);

/* Marks the index loaded (true) or not (false). */
void lm_match_service_set_loaded(lm_match_service *s, bool loaded);
bool lm_match_service_loaded(const lm_match_service *s);

/* Attaches the RPC server whose serving state Check reports (borrowed; NULL
 * detaches). Without one, Check reports the loaded state alone. */
void lm_match_service_set_server(lm_match_service *s, lm_rpc_server *srv);

/* True when the index is loaded and the server (if attached) is not
 * draining; Check answers SERVING when this holds and the decision log (if
 * any) is healthy. */
bool lm_match_service_serving(const lm_match_service *s);

/*
 * The handler table of MatchService: MatchJobs, MatchCandidates,
 * ExplainMatch, GetPosting, GetProfile, Check, and the commits of the two
 * match methods (the decision log). Static storage; *n receives
 * the number of entries. Pass it to lm_rpc_server_new with the service as
 * arg and lunamatch__v1__match_service__descriptor as the service.
 */
const lm_rpc_method *lm_match_service_methods(size_t *n);

/* Failure point, for tests: the next n decisions of answers cannot be
 * built (out of memory, LM_ENOMEM) before they reach the decision log, in
 * the real code path: those answers are refused. Any thread. */
void lm_match_service_fail_decision_allocs(lm_match_service *s, unsigned n);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_SERVICE_H */
