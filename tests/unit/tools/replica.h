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

/* The service clock of a replica of the samples: their reference time
 * plus an hour; and its index position. */
#define LMT_REPLICA_NOW 1795003600
#define LMT_REPLICA_SEQ 42

/* Starts r serving on ipc://<dir>/<name>.ipc (at most 599 bytes), scoring
 * with the model file model_path. With samples, it holds the sample
 * postings and profiles (those that fail ingest's preparation are left
 * out) at index position LMT_REPLICA_SEQ and its clock stands at
 * LMT_REPLICA_NOW; without, it starts empty on the wall clock. Fails the
 * test when it cannot start. */
void lmt_replica_start(lmt_replica *r, const char *dir, const char *name,
    const char *model_path, bool samples);

/* Stops r and frees what it holds. */
void lmt_replica_stop(lmt_replica *r);

#endif /* LMT_REPLICA_H */
