/*
 * replica.h - one replica of the match service for the tests of the
 * `lunamatch` commands that talk to it: a real index (empty, or holding the
 * sample records of data/samples) behind the real MatchService handlers,
 * served by the real RPC server on a URL of the test's choosing.
 */
#ifndef LMT_REPLICA_H
#define LMT_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "index.h"
#include "model.h"
#include "records.h"
#include "rpc_server.h"
#include "service.h"

typedef struct lmt_replica {
	char url[600];
	lmt_records recs;
	lm_model *model;
	lm_index *idx;
	lm_match_service *svc;
	lm_rpc_server *srv;
} lmt_replica;

/* What a replica serves: the model file it scores with, whether it holds
 * the sample postings and profiles (those that fail ingest's preparation
 * are left out) at index position seq, and the service clock (NULL: the
 * wall clock). */
typedef struct lmt_replica_opts {
	const char *model_path;
	bool samples;
	uint64_t seq;
	lm_match_clock_fn clock;
} lmt_replica_opts;

/* Starts r serving on url (at most 599 bytes); fails the test when it
 * cannot. */
void lmt_replica_start(lmt_replica *r, const char *url, const lmt_replica_opts *o);

/* Stops r and frees what it holds. */
void lmt_replica_stop(lmt_replica *r);

#endif /* LMT_REPLICA_H */
