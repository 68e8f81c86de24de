/*
 * config.h - configuration of every lunamatch binary.
 *
 * Values come from, in increasing precedence: built-in defaults, LUNAMATCH_*
 * environment variables, then command-line flags. Each option belongs to one
 * or more programs (lm_prog mask); a program accepts only its own options and
 * documents them in --help. Every value is validated; an invalid one is an
 * error naming the variable or flag, never silently replaced by a default.
 */
#ifndef LUNAMATCH_CONFIG_H
#define LUNAMATCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lunamatch/log.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_CFG_STR 512 /* capacity of every string option, with the NUL */

/* Programs, as a bit mask: which options a program takes. */
typedef enum lm_prog {
	LM_PROG_INGEST = 1u << 0,
	LM_PROG_MATCH = 1u << 1,
	LM_PROG_CLI = 1u << 2,
	LM_PROG_DEVKAFKA = 1u << 3,
} lm_prog;

/* Longest interval, in ms, between the decision log's syncs when answers do
 * not wait for them (LUNAMATCH_DECISION_LOG_SYNC_MS). */
#define LM_DECISION_LOG_SYNC_MS_MAX 10000

typedef struct lm_config {
	/* Kafka */
	char brokers[LM_CFG_STR];         /* LUNAMATCH_BROKERS, --brokers */
	char topic_postings[LM_CFG_STR];  /* LUNAMATCH_TOPIC_POSTINGS */
	char topic_profiles[LM_CFG_STR];  /* LUNAMATCH_TOPIC_PROFILES */
	char topic_matches[LM_CFG_STR];   /* LUNAMATCH_TOPIC_MATCHES */
	char topic_dlq[LM_CFG_STR];       /* LUNAMATCH_TOPIC_DLQ */
	char topic_decisions[LM_CFG_STR]; /* LUNAMATCH_TOPIC_DECISIONS */
	uint32_t decision_log;            /* LUNAMATCH_DECISION_LOG: 0 or 1 */
	uint32_t decision_log_sync_ms;    /* LUNAMATCH_DECISION_LOG_SYNC_MS, at most
	                                   * LM_DECISION_LOG_SYNC_MS_MAX */
	char group_id[LM_CFG_STR];        /* LUNAMATCH_GROUP_ID */
	char events_group_id[LM_CFG_STR]; /* LUNAMATCH_EVENTS_GROUP_ID */
	/* Store and data files */
	char data_dir[LM_CFG_STR];       /* LUNAMATCH_DATA_DIR, --data-dir */
	uint64_t map_size_mb;            /* LUNAMATCH_MAP_SIZE_MB: initial LMDB map */
	char taxonomy_file[LM_CFG_STR];  /* LUNAMATCH_TAXONOMY_FILE */
	char rates_file[LM_CFG_STR];     /* LUNAMATCH_RATES_FILE */
	char fairness_file[LM_CFG_STR];  /* LUNAMATCH_FAIRNESS_FILE (ingest) */
	char gazetteer_file[LM_CFG_STR]; /* LUNAMATCH_GAZETTEER_FILE (ingest) */
	char model_file[LM_CFG_STR];     /* LUNAMATCH_MODEL_FILE */
	uint32_t embedding_dim;          /* LUNAMATCH_EMBEDDING_DIM */
	/* Messaging */
	char rpc_url[LM_CFG_STR];      /* LUNAMATCH_RPC_URL, --url */
	char notify_url[LM_CFG_STR];   /* LUNAMATCH_NOTIFY_URL; "" = ipc://<data
	                                  dir>/notify.ipc */
	char http_addr[LM_CFG_STR];    /* LUNAMATCH_HTTP_ADDR, --http; "" = per-program
	                                  default */
	uint32_t http_idle_timeout_s;  /* LUNAMATCH_HTTP_IDLE_TIMEOUT_S */
	uint32_t http_max_connections; /* LUNAMATCH_HTTP_MAX_CONNECTIONS */
	uint32_t http_max_per_peer;    /* LUNAMATCH_HTTP_MAX_CONNECTIONS_PER_PEER */
	char tls_cert[LM_CFG_STR];     /* LUNAMATCH_TLS_CERT */
	char tls_key[LM_CFG_STR];      /* LUNAMATCH_TLS_KEY */
	char tls_ca[LM_CFG_STR];       /* LUNAMATCH_TLS_CA */
	/* Ingest */
	uint32_t batch_max; /* LUNAMATCH_BATCH_MAX: messages per store transaction */
	uint32_t batch_ms;  /* LUNAMATCH_BATCH_MS: longest wait to fill a batch */
	/* The epoch of a topic's positions (lm_store_pos) is its own epoch plus
	 * offsets_epoch, which counts for both. */
	uint32_t postings_epoch;        /* LUNAMATCH_POSTINGS_EPOCH */
	uint32_t profiles_epoch;        /* LUNAMATCH_PROFILES_EPOCH */
	uint32_t offsets_epoch;         /* LUNAMATCH_OFFSETS_EPOCH */
	uint32_t reader_lease_s;        /* LUNAMATCH_READER_LEASE_S: see lm_store_trim */
	uint64_t tombstone_retention_s; /* LUNAMATCH_TOMBSTONE_RETENTION_S */
	uint32_t store_max_age_s;       /* LUNAMATCH_STORE_MAX_AGE_S: a store last
	                                 * current longer ago is refilled */
	/* Match */
	uint32_t workers;            /* LUNAMATCH_WORKERS: scoring threads */
	uint32_t rpc_contexts;       /* LUNAMATCH_RPC_CONTEXTS: concurrent nng contexts */
	uint32_t max_request_bytes;  /* LUNAMATCH_MAX_REQUEST_BYTES: nng receive limit */
	uint32_t default_timeout_ms; /* LUNAMATCH_DEFAULT_TIMEOUT_MS */
	uint32_t rpc_idle_timeout_ms; /* LUNAMATCH_RPC_IDLE_TIMEOUT_MS */
	uint32_t rpc_max_connections; /* LUNAMATCH_RPC_MAX_CONNECTIONS; 0: the
	                               * server's default */
	uint32_t rpc_max_per_peer;    /* LUNAMATCH_RPC_MAX_CONNECTIONS_PER_PEER */
	uint64_t rpc_receive_budget;  /* LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES; 0: derived */
	uint32_t poll_ms;             /* LUNAMATCH_POLL_MS: change-log poll period */
	double event_min_score;       /* LUNAMATCH_EVENT_MIN_SCORE */
	uint32_t event_top_n;         /* LUNAMATCH_EVENT_TOP_N */
	/* LUNAMATCH_RPC_MAX_CONNECTION_AGE_MS: RPC connections this old are
	 * closed at a moment with no request in flight, after a pause of
	 * LM_RPC_AGE_QUIET_MS (10 ms); 0: never */
	uint32_t rpc_max_connection_age_ms;
	uint32_t rpc_send_timeout_ms; /* LUNAMATCH_RPC_SEND_TIMEOUT_MS */
	/* Dev broker */
	uint32_t partitions; /* LUNAMATCH_PARTITIONS */
	/* Everyone */
	lm_log_level log_level; /* LUNAMATCH_LOG_LEVEL */
	bool json;              /* --json: machine-readable CLI output */
	bool help;              /* --help was given */
	bool version;           /* --version was given */
	bool log_level_given;   /* --log-level was given */
	int argi;               /* index of the first non-option argument */
} lm_config;

/*
 * Fills cfg from defaults, the environment and argv for program prog.
 * Options of other programs are rejected as unknown. --help and --version set
 * cfg->help / cfg->version and return LM_OK, whatever the environment holds
 * (its values are then not checked); the caller prints and exits.
 * Parsing stops at the first non-option argument (cfg->argi), so that a CLI
 * subcommand can take its own arguments. The addresses a service listens on
 * (match: the RPC URL; ingest and match: the effective notify URL) must be
 * nng URLs of a scheme it can use, a TCP one with a port number. On error
 * returns LM_EINVAL and writes a one-line reason naming the variable or flag
 * into err.
 */
int lm_config_load(
    lm_config *cfg, lm_prog prog, int argc, char **argv, char *err, size_t errlen);

/*
 * Enumerates the flags of prog: for i = 0, 1, ... returns LM_OK and the flag
 * name (without dashes) and whether it takes a value, then LM_ENOENT past the
 * last one. For programs that must recognize these flags among their own
 * arguments (the CLI accepts global flags after the command).
 */
int lm_config_flag(lm_prog prog, size_t i, const char **name, bool *has_arg);

/*
 * Writes s into buf (len bytes, at least 8) for an error message or a log:
 * printable ASCII as itself, '"' and '\\' as \" and \\, every other byte
 * (control bytes, DEL, bytes above ASCII) as \xNN, so that a configured
 * value cannot put line breaks or terminal escapes into what is printed;
 * "..." ends what does not fit. Returns buf.
 */
const char *lm_config_escape(const char *s, char *buf, size_t len);

/* The lunamatch version ("0.1.0"), for --version. */
const char *lm_version(void);

/* Writes the options of prog, with their variables and defaults, to out. */
void lm_config_usage(FILE *out, lm_prog prog);

/* The effective notify URL: cfg->notify_url or ipc://<data_dir>/notify.ipc.
 * Returns LM_E2BIG if it does not fit in buf. */
int lm_config_notify_url(const lm_config *cfg, char *buf, size_t len);

/*
 * Resolves a data file path: an existing path as given; otherwise, for a
 * relative path, the same path under the installed data directory
 * (<datadir>/lunamatch, with a leading "data/" removed). Returns LM_OK and
 * writes the path that exists, LM_ENOENT, or LM_EINVAL for an empty path or
 * one that names something other than a regular file (a directory).
 */
int lm_config_data_file(const char *path, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_CONFIG_H */
