/*
 * source.h - what computed the match service's answers that a command of
 * the `lunamatch` tool reports on (audit, eval): the model versions, index
 * positions and as_of times over all the answers, so that a report of
 * answers from more than one model version (replicas during a model
 * roll-out) says that it mixes models instead of naming one of them.
 */
#ifndef LUNAMATCH_CLI_SOURCE_H
#define LUNAMATCH_CLI_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Zero-initialised before the first lm_cli_source_add; used by one thread. */
typedef struct lm_cli_source {
	size_t answers;  /* answers added */
	size_t recorded; /* of them, with a model version */
	char **models;   /* the distinct model versions, first seen first; owned */
	size_t nmodels;
	uint64_t seq_min, seq_max; /* over the recorded answers */
	int64_t as_of_min, as_of_max;
} lm_cli_source;

/*
 * Adds one answer computed by model (NULL or "": not recorded, and seq and
 * as_of are not counted) at index position seq for the time as_of.
 * Returns LM_OK, or LM_ENOMEM with s unchanged.
 */
int lm_cli_source_add(lm_cli_source *s, const char *model, uint64_t seq, int64_t as_of);

/* Frees what s holds and zeroes it. */
void lm_cli_source_clear(lm_cli_source *s);

/*
 * One line (no newline) naming what computed the answers: "model M, index
 * seq S, as of T (date)", with ranges where the answers differ, "N model
 * versions (MIXED)" instead of a model when they mix models, and a note
 * when some answers (called what, e.g. "rankings") recorded nothing.
 * Model versions are made printable.
 */
void lm_cli_source_text(const lm_cli_source *s, const char *what, char *buf, size_t len);

/*
 * Adds to o the keys "model_version" (null unless every answer recorded
 * one and the same), "model_versions" (every one seen), "mixed_models",
 * "as_of" (null unless every answer recorded one and the same),
 * "as_of_min", "as_of_max", "index_seq_min" and "index_seq_max" (null when
 * no answer recorded them). Returns 0, or -1 when out of memory.
 */
int lm_cli_source_json(const lm_cli_source *s, json_t *o);

#endif /* LUNAMATCH_CLI_SOURCE_H */
