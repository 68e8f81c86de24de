/*
 * config.c - option table, environment and command-line parsing.
 *
 * One table lists every option once: its flag, variable, type, default,
 * bounds and the programs that take it. Loading applies defaults, then the
 * environment, then getopt_long over the flags of the program.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <nng/nng.h>

#include "lunamatch/config.h"
#include "lunamatch/error.h"
#include "lunamatch/http.h"
#include "lunamatch/kafka.h"
#include "lunamatch/rpc.h"
#include "lunamatch/textfile.h"

#ifndef LM_SHARE_DIR
#define LM_SHARE_DIR "/usr/local/share/lunamatch"
#endif
#ifndef LM_VERSION
#define LM_VERSION "0.0.0"
#endif

/* T_TOPIC is a T_STR that must be a Kafka topic name (lm_kafka_topic_name_ok);
 * T_BROKERS one that must be a list of host:port (broker_ok). */
enum opt_type { T_STR, T_TOPIC, T_BROKERS, T_U32, T_U64, T_DBL, T_LEVEL, T_FLAG };

#define ALL   (LM_PROG_INGEST | LM_PROG_MATCH | LM_PROG_CLI | LM_PROG_DEVKAFKA)
#define SVC   (LM_PROG_INGEST | LM_PROG_MATCH)
#define KAFKA (LM_PROG_INGEST | LM_PROG_MATCH | LM_PROG_CLI)
/* Programs that read or write the ingest topics (match reads them to
 * derive the events of the partitions it owns). */
#define SOURCES (LM_PROG_INGEST | LM_PROG_MATCH | LM_PROG_CLI | LM_PROG_DEVKAFKA)
#define OFF(f)  offsetof(lm_config, f)

struct opt {
	const char *flag; /* long flag without dashes */
	const char *env;  /* environment variable, or NULL */
	enum opt_type type;
	size_t off;
	const char *def; /* default, as text */
	double min, max; /* bounds for numbers */
	unsigned progs;
	const char *help;
};

static const struct opt opts[] = {
    {"brokers", "LUNAMATCH_BROKERS", T_BROKERS, OFF(brokers), "127.0.0.1:9092", 0, 0,
        KAFKA, "Kafka bootstrap servers (host:port,...)"},
    {"topic-postings", "LUNAMATCH_TOPIC_POSTINGS", T_TOPIC, OFF(topic_postings),
        "lunamatch.postings.v1", 0, 0, SOURCES, "job postings topic"},
    {"topic-profiles", "LUNAMATCH_TOPIC_PROFILES", T_TOPIC, OFF(topic_profiles),
        "lunamatch.profiles.v1", 0, 0, SOURCES, "candidate profiles topic"},
    {"topic-matches", "LUNAMATCH_TOPIC_MATCHES", T_TOPIC, OFF(topic_matches),
        "lunamatch.matches.v1", 0, 0, LM_PROG_MATCH | LM_PROG_CLI | LM_PROG_DEVKAFKA,
        "match events topic"},
    {"topic-decisions", "LUNAMATCH_TOPIC_DECISIONS", T_TOPIC, OFF(topic_decisions),
        "lunamatch.decisions.v1", 0, 0, LM_PROG_MATCH | LM_PROG_DEVKAFKA,
        "decision log topic (every MatchJobs and MatchCandidates answer)"},
    {"decision-log", "LUNAMATCH_DECISION_LOG", T_U32, OFF(decision_log), "1", 0, 1,
        LM_PROG_MATCH, "1: log every answer before giving it; 0: no decision log"},
    {"decision-log-sync-ms", "LUNAMATCH_DECISION_LOG_SYNC_MS", T_U32,
        OFF(decision_log_sync_ms), "0", 0, LM_DECISION_LOG_SYNC_MS_MAX, LM_PROG_MATCH,
        "0: an answer waits until its decision is synced to disk; N: until it is "
        "written to the file (safe from a crash of the process), synced within N ms"},
    {"topic-dlq", "LUNAMATCH_TOPIC_DLQ", T_TOPIC, OFF(topic_dlq),
        "lunamatch.ingest.dlq.v1", 0, 0, LM_PROG_INGEST | LM_PROG_CLI | LM_PROG_DEVKAFKA,
        "dead-letter topic for rejected messages"},
    {"group-id", "LUNAMATCH_GROUP_ID", T_STR, OFF(group_id), "lunamatch-ingest", 0, 0,
        LM_PROG_INGEST | LM_PROG_MATCH,
        "ingest consumer group, one per replica (match reads its committed offsets)"},
    {"events-group-id", "LUNAMATCH_EVENTS_GROUP_ID", T_STR, OFF(events_group_id),
        "lunamatch-match-events", 0, 0, LM_PROG_MATCH,
        "consumer group shared by every match replica: partition owners emit events"},
    {"data-dir", "LUNAMATCH_DATA_DIR", T_STR, OFF(data_dir), "./var", 0, 0,
        SVC | LM_PROG_CLI, "record store directory"},
    {"map-size-mb", "LUNAMATCH_MAP_SIZE_MB", T_U64, OFF(map_size_mb), "256", 1,
        1024.0 * 1024, SVC, "initial record store map size; grows when full"},
    {"taxonomy-file", "LUNAMATCH_TAXONOMY_FILE", T_STR, OFF(taxonomy_file),
        "data/skills.tsv", 0, 0, SVC, "skills taxonomy"},
    {"rates-file", "LUNAMATCH_RATES_FILE", T_STR, OFF(rates_file), "data/rates.tsv", 0, 0,
        SVC, "currency rate table for salary normalization"},
    {"fairness-file", "LUNAMATCH_FAIRNESS_FILE", T_STR, OFF(fairness_file),
        "data/fairness/requirements.tsv", 0, 0, LM_PROG_INGEST,
        "fair-requirements list (flagged posting requirements)"},
    {"gazetteer-file", "LUNAMATCH_GAZETTEER_FILE", T_STR, OFF(gazetteer_file),
        "data/geo/cities.tsv", 0, 0, LM_PROG_INGEST,
        "cities with coordinates for location normalization"},
    {"model-file", "LUNAMATCH_MODEL_FILE", T_STR, OFF(model_file),
        "data/model/default.json", 0, 0, LM_PROG_MATCH,
        "scoring weights and model version"},
    {"embedding-dim", "LUNAMATCH_EMBEDDING_DIM", T_U32, OFF(embedding_dim), "384", 1,
        4096, SVC, "dimension of record embeddings"},
    {"url", "LUNAMATCH_RPC_URL", T_STR, OFF(rpc_url), "tcp://127.0.0.1:7700", 0, 0,
        LM_PROG_MATCH | LM_PROG_CLI,
        "RPC address (tcp://, ipc://, tls+tcp://); the CLI takes a comma-separated "
        "list of replicas"},
    {"notify-url", "LUNAMATCH_NOTIFY_URL", T_STR, OFF(notify_url), "", 0, 0, SVC,
        "store change notifications (default ipc://<data dir>/notify.ipc)"},
    {"http", "LUNAMATCH_HTTP_ADDR", T_STR, OFF(http_addr), "", 0, 0, SVC,
        "health and metrics address (default 127.0.0.1:7702 ingest, 127.0.0.1:7701 "
        "match)"},
    {"http-idle-timeout-s", "LUNAMATCH_HTTP_IDLE_TIMEOUT_S", T_U32,
        OFF(http_idle_timeout_s), "30", 1, LM_HTTP_IDLE_TIMEOUT_MAX_S, SVC,
        "health and metrics connections without progress for this long are closed"},
    {"http-max-connections", "LUNAMATCH_HTTP_MAX_CONNECTIONS", T_U32,
        OFF(http_max_connections), "128", 1, LM_HTTP_MAX_CONNECTIONS, SVC,
        "health and metrics connections open at once"},
    {"http-max-connections-per-peer", "LUNAMATCH_HTTP_MAX_CONNECTIONS_PER_PEER", T_U32,
        OFF(http_max_per_peer), "32", 1, LM_HTTP_MAX_CONNECTIONS, SVC,
        "health and metrics connections open at once from one IP address"},
    {"tls-cert", "LUNAMATCH_TLS_CERT", T_STR, OFF(tls_cert), "", 0, 0,
        LM_PROG_MATCH | LM_PROG_CLI, "PEM certificate for mutual TLS"},
    {"tls-key", "LUNAMATCH_TLS_KEY", T_STR, OFF(tls_key), "", 0, 0,
        LM_PROG_MATCH | LM_PROG_CLI, "PEM private key for mutual TLS"},
    {"tls-ca", "LUNAMATCH_TLS_CA", T_STR, OFF(tls_ca), "", 0, 0,
        LM_PROG_MATCH | LM_PROG_CLI, "PEM CA bundle that peers must chain to"},
    {"batch-max", "LUNAMATCH_BATCH_MAX", T_U32, OFF(batch_max), "2000", 1, 100000,
        LM_PROG_INGEST, "most messages per store transaction"},
    {"postings-epoch", "LUNAMATCH_POSTINGS_EPOCH", T_U32, OFF(postings_epoch), "0", 0,
        2147483647.0, LM_PROG_INGEST,
        "raise by one after recreating the postings topic (its offsets restart)"},
    {"profiles-epoch", "LUNAMATCH_PROFILES_EPOCH", T_U32, OFF(profiles_epoch), "0", 0,
        2147483647.0, LM_PROG_INGEST,
        "raise by one after recreating the profiles topic (its offsets restart)"},
    {"offsets-epoch", "LUNAMATCH_OFFSETS_EPOCH", T_U32, OFF(offsets_epoch), "0", 0,
        2147483647.0, LM_PROG_INGEST,
        "added to both topics' epochs: raise it only when both topics were "
        "recreated (docs/ingest.md)"},
    {"reader-lease-s", "LUNAMATCH_READER_LEASE_S", T_U32, OFF(reader_lease_s), "300", 60,
        604800, LM_PROG_INGEST,
        "change-log readers silent this long no longer hold back its trimming"},
    {"tombstone-retention-s", "LUNAMATCH_TOMBSTONE_RETENTION_S", T_U64,
        OFF(tombstone_retention_s), "2592000", 1, 315360000.0, LM_PROG_INGEST,
        "deletion tombstones are kept this long; keep it above the input topics' "
        "max.compaction.lag.ms + delete.retention.ms (docs/store.md)"},
    {"store-max-age-s", "LUNAMATCH_STORE_MAX_AGE_S", T_U32, OFF(store_max_age_s), "43200",
        600, 315360000.0, LM_PROG_INGEST,
        "a store last current with the topics longer ago than this is read again "
        "from them and loses the records they no longer hold; at most the input "
        "topics' delete.retention.ms less the longest catch-up after a start "
        "(docs/ingest.md)"},
    {"batch-ms", "LUNAMATCH_BATCH_MS", T_U32, OFF(batch_ms), "200", 1, 60000,
        LM_PROG_INGEST, "longest ms a batch stays open while messages keep coming"},
    {"workers", "LUNAMATCH_WORKERS", T_U32, OFF(workers), "4", 1, 256, LM_PROG_MATCH,
        "scoring worker threads"},
    {"rpc-contexts", "LUNAMATCH_RPC_CONTEXTS", T_U32, OFF(rpc_contexts), "64", 1, 4096,
        LM_PROG_MATCH, "concurrent RPC contexts"},
    /* LM_RPC_DEFAULT_MAX_REQUEST, as text. */
    {"max-request-bytes", "LUNAMATCH_MAX_REQUEST_BYTES", T_U32, OFF(max_request_bytes),
        "1048576", 1024, (double) LM_RPC_MAX_REQUEST_BYTES, LM_PROG_MATCH,
        "largest accepted RPC message"},
    {"rpc-idle-timeout-ms", "LUNAMATCH_RPC_IDLE_TIMEOUT_MS", T_U32,
        OFF(rpc_idle_timeout_ms), "300000", 100, 86400000, LM_PROG_MATCH,
        "RPC connections idle this long, with no request in flight, are closed"},
    {"rpc-max-connection-age-ms", "LUNAMATCH_RPC_MAX_CONNECTION_AGE_MS", T_U32,
        OFF(rpc_max_connection_age_ms), "300000", 0, 86400000, LM_PROG_MATCH,
        "RPC connections open this long (give or take a tenth) are closed at the "
        "first sweep (every 250 ms) that finds them with no request in flight, "
        "nor a request or answer for 10 ms, so that "
        "clients redial and "
        "replicas added by scaling get connections (0: never; else at least 1000)"},
    {"rpc-send-timeout-ms", "LUNAMATCH_RPC_SEND_TIMEOUT_MS", T_U32,
        OFF(rpc_send_timeout_ms), "10000", 100, 600000, LM_PROG_MATCH,
        "RPC connections that do not take a reply for this long, or send no "
        "request for this long after an answer of 256 KiB or more, are closed"},
    {"rpc-max-connections", "LUNAMATCH_RPC_MAX_CONNECTIONS", T_U32,
        OFF(rpc_max_connections), "0", 0, 65536, LM_PROG_MATCH,
        "RPC connections open at once (0: 4096); lowered to fit the receive "
        "budget and three quarters of the file descriptor limit, with a warning "
        "when set"},
    {"rpc-max-connections-per-peer", "LUNAMATCH_RPC_MAX_CONNECTIONS_PER_PEER", T_U32,
        OFF(rpc_max_per_peer), "1024", 1, 65536, LM_PROG_MATCH,
        "RPC connections open at once from one IP address"},
    {"rpc-receive-budget-bytes", "LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES", T_U64,
        OFF(rpc_receive_budget), "0", 0, 1099511627776.0, LM_PROG_MATCH,
        "memory RPC requests still arriving may hold; the connection limit is "
        "lowered to fit (0: a quarter of the container's memory limit)"},
    {"default-timeout-ms", "LUNAMATCH_DEFAULT_TIMEOUT_MS", T_U32, OFF(default_timeout_ms),
        "5000", 1, 600000, LM_PROG_MATCH | LM_PROG_CLI,
        "deadline of calls that set none"},
    {"poll-ms", "LUNAMATCH_POLL_MS", T_U32, OFF(poll_ms), "1000", 10, 600000,
        LM_PROG_MATCH, "change-log poll period"},
    {"event-min-score", "LUNAMATCH_EVENT_MIN_SCORE", T_DBL, OFF(event_min_score), "0.70",
        0, 1, LM_PROG_MATCH, "new-match event threshold"},
    {"event-top-n", "LUNAMATCH_EVENT_TOP_N", T_U32, OFF(event_top_n), "50", 0, 10000,
        LM_PROG_MATCH, "most events per changed record"},
    {"partitions", "LUNAMATCH_PARTITIONS", T_U32, OFF(partitions), "3", 1, 256,
        LM_PROG_DEVKAFKA, "partitions per topic"},
    {"log-level", "LUNAMATCH_LOG_LEVEL", T_LEVEL, OFF(log_level), "info", 0, 0, ALL,
        "debug, info, warn or error"},
    {"json", NULL, T_FLAG, OFF(json), NULL, 0, 0, LM_PROG_CLI, "machine-readable output"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* Most bytes an error message shows of a value, escaped. */
#define ESC_MAX 128

/*
 * Writes the first n bytes of s into buf (len bytes, at least 8) for an
 * error message: printable ASCII as itself, '"' and '\\' and every other
 * byte (control bytes, DEL, bytes above ASCII) escaped as \" \\ and \xNN,
 * so that a value cannot put line breaks or terminal escapes into a log
 * line or a terminal; "..." ends what does not fit. Returns buf.
 */
static const char *
esc_n(const char *s, size_t n, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];
		char e[5];
		size_t k;
		if (c == '"' || c == '\\') {
			e[0] = '\\', e[1] = (char) c, k = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			e[0] = '\\', e[1] = 'x', e[2] = hex[c >> 4], e[3] = hex[c & 15];
			k = 4;
		} else {
			e[0] = (char) c, k = 1;
		}
		if (o + k + 4 > len) { /* room for "..." and the NUL */
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, e, k);
		o += k;
	}
	buf[o] = '\0';
	return buf;
}

const char *
lm_config_escape(const char *s, char *buf, size_t len)
{
	return esc_n(s, strlen(s), buf, len);
}

/* Whether the n bytes at e are host:port or [v6]:port: a host name of
 * letters, digits, '.', '-' and '_', or an IPv6 address in brackets, and a
 * port from 1 to 65535. librdkafka takes an entry without a port (9092)
 * and a protocol prefix too; lunamatch wants both spelled out as host:port
 * so that a typo is refused at start rather than dialled for ever. */
static bool
broker_ok(const char *e, size_t n)
{
	size_t h = 0, p;
	unsigned long port = 0;

	if (n > 0 && e[0] == '[') {
		for (h = 1; h < n && e[h] != ']'; h++)
			if (!isxdigit((unsigned char) e[h]) && e[h] != ':' && e[h] != '.')
				return false;
		if (h == 1 || h >= n) /* "[]" or no ']' */
			return false;
		h++; /* past ']' */
	} else {
		for (; h < n && e[h] != ':'; h++)
			if (!isalnum((unsigned char) e[h]) && e[h] != '.' &&
			    e[h] != '-' && e[h] != '_')
				return false;
		if (h == 0)
			return false;
	}
	if (h >= n || e[h] != ':')
		return false;
	for (p = h + 1; p < n; p++) {
		if (e[p] < '0' || e[p] > '9' || p - h > 5)
			return false;
		port = port * 10 + (unsigned long) (e[p] - '0');
	}
	return p > h + 1 && port >= 1 && port <= 65535;
}

/* LM_OK when every entry of the comma-separated list is broker_ok (an
 * empty list is left to the check of empty options); otherwise LM_EINVAL
 * with the first bad entry named, escaped, in err. */
static int
check_brokers(const char *list, const char *what, char *err, size_t errlen)
{
	char shown[ESC_MAX + 4];

	if (list[0] == '\0')
		return LM_OK;
	for (const char *e = list;; e++) {
		size_t n = strcspn(e, ","), lead = strspn(e, " "), t = n;
		/* Spaces around an entry are allowed, as librdkafka skips them. */
		while (t > lead && e[t - 1] == ' ')
			t--;
		if (!broker_ok(e + lead, lead < n ? t - lead : 0)) {
			snprintf(err, errlen,
			    "%s: broker \"%s\" is not host:port ([v6]:port for an IPv6 "
			    "address, port 1..65535; entries separated by commas)",
			    what, esc_n(e, n, shown, sizeof(shown)));
			return LM_EINVAL;
		}
		e += n;
		if (*e == '\0')
			return LM_OK;
	}
}

/* Stores text as the value of o in cfg; `what` names the source in errors. */
static int
set_value(lm_config *cfg, const struct opt *o, const char *text, const char *what,
    char *err, size_t errlen)
{
	char *p = (char *) cfg + o->off;
	char shown[ESC_MAX + 4];
	double d;

	switch (o->type) {
	case T_TOPIC:
		if (!lm_kafka_topic_name_ok(text)) {
			snprintf(err, errlen,
			    "%s: not a Kafka topic name (1..%d characters of "
			    "[a-zA-Z0-9._-], not \".\" or \"..\")",
			    what, LM_KAFKA_TOPIC_MAX);
			return LM_EINVAL;
		}
		/* fall through */
	case T_BROKERS:
		if (o->type == T_BROKERS &&
		    check_brokers(text, what, err, errlen) != LM_OK)
			return LM_EINVAL;
		/* fall through */
	case T_STR:
		if (strlen(text) >= LM_CFG_STR) {
			snprintf(err, errlen, "%s: value longer than %d bytes", what,
			    LM_CFG_STR - 1);
			return LM_EINVAL;
		}
		memcpy(p, text, strlen(text) + 1);
		return LM_OK;
	case T_FLAG:
		*(bool *) p = true;
		return LM_OK;
	case T_LEVEL:
		if (lm_log_level_parse(text, (lm_log_level *) (void *) p) != LM_OK) {
			snprintf(err, errlen,
			    "%s: \"%s\" is not one of debug, info, warn, error", what,
			    lm_config_escape(text, shown, sizeof(shown)));
			return LM_EINVAL;
		}
		return LM_OK;
	case T_U32:
	case T_U64:
	case T_DBL:
		if (!lm_textfile_number(text, o->type == T_DBL, &d)) {
			snprintf(err, errlen, "%s: \"%s\" is not a number", what,
			    lm_config_escape(text, shown, sizeof(shown)));
			return LM_EINVAL;
		}
		if (o->type != T_DBL && d != floor(d)) {
			snprintf(err, errlen, "%s: \"%s\" is not a whole number", what,
			    lm_config_escape(text, shown, sizeof(shown)));
			return LM_EINVAL;
		}
		if (d < o->min || d > o->max) {
			if (o->type == T_DBL)
				snprintf(err, errlen, "%s: %s is outside %g..%g", what,
				    text, o->min, o->max);
			else
				snprintf(err, errlen, "%s: %s is outside %.0f..%.0f",
				    what, text, o->min, o->max);
			return LM_EINVAL;
		}
		if (o->type == T_U32)
			*(uint32_t *) (void *) p = (uint32_t) d;
		else if (o->type == T_U64)
			*(uint64_t *) (void *) p = (uint64_t) d;
		else
			*(double *) (void *) p = d;
		return LM_OK;
	}
	return LM_EINTERNAL;
}

/*
 * Pairs of options that must differ, and why. A pair is checked for each
 * program that takes both options: ingest and match read both input topics,
 * ingest writes the dead-letter topic, match reads ingest's group, owns the
 * events group and writes the matches and decisions topics (the latter only
 * with the decision log on).
 */
static const struct {
	size_t a, b;
	const char *why;
} distinct[] = {
    {OFF(topic_postings), OFF(topic_profiles),
        "job postings and candidate profiles would share one topic, and each "
        "would be rejected as the other"},
    {OFF(topic_dlq), OFF(topic_postings),
        "rejected messages would be read again as job postings"},
    {OFF(topic_dlq), OFF(topic_profiles),
        "rejected messages would be read again as candidate profiles"},
    {OFF(events_group_id), OFF(group_id),
        "match's event owners would commit their positions in ingest's group, "
        "and ingest could skip records after a restart"},
    {OFF(topic_matches), OFF(topic_postings),
        "match events would be read as job postings"},
    {OFF(topic_matches), OFF(topic_profiles),
        "match events would be read as candidate profiles"},
    {OFF(topic_decisions), OFF(topic_postings),
        "decisions would be read as job postings"},
    {OFF(topic_decisions), OFF(topic_profiles),
        "decisions would be read as candidate profiles"},
    {OFF(topic_matches), OFF(topic_decisions),
        "match events and decisions would share one topic"},
};

/* The option stored at offset off of lm_config. */
static const struct opt *
opt_at(size_t off)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].off == off)
			return &opts[i];
	return NULL;
}

/* String options that may not be empty in the programs that take them. An
 * empty group id is no group to librdkafka, and match's event owners would
 * take their default group for it, past the check that it differs from the
 * ingest group. */
static const size_t nonempty[] = {
    OFF(brokers), OFF(data_dir), OFF(group_id), OFF(events_group_id)};

/* LM_OK when no pair of distinct that prog takes holds the same value twice;
 * otherwise LM_EINVAL with both options named in err. */
static int
check_distinct(const lm_config *cfg, lm_prog prog, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(distinct) / sizeof(distinct[0]); i++) {
		const struct opt *a = opt_at(distinct[i].a);
		const struct opt *b = opt_at(distinct[i].b);
		if (!(a->progs & b->progs & prog))
			continue;
		/* Without the decision log match writes no decisions. */
		if ((a->off == OFF(topic_decisions) || b->off == OFF(topic_decisions)) &&
		    (prog & LM_PROG_MATCH) && cfg->decision_log == 0)
			continue;
		if (strcmp((const char *) cfg + a->off, (const char *) cfg + b->off) != 0)
			continue;
		snprintf(err, errlen, "%s (--%s) and %s (--%s) must differ: %s", a->env,
		    a->flag, b->env, b->flag, distinct[i].why);
		return LM_EINVAL;
	}
	return LM_OK;
}

/* The nng schemes of the RPC address match listens on, and of the notify
 * address ingest listens on and match dials: those another process can
 * reach. inproc:// is not one: clients and ingest could never connect,
 * while match's in-process self-probe answered and /readyz said 200. */
static const char *const rpc_schemes[] = {
    "tcp", "tcp4", "tcp6", "tls+tcp", "tls+tcp4", "tls+tcp6", "ipc", "abstract", NULL};
static const char *const notify_schemes[] = {
    "tcp", "tcp4", "tcp6", "ipc", "abstract", NULL};

/*
 * LM_OK when url is an nng address a service can use: it parses, its
 * scheme is one of schemes (NULL-terminated), a TCP one names a port and
 * an ipc one's path fits a Unix socket. Otherwise LM_EINVAL with a reason
 * naming var in err.
 */
static int
check_url(const char *var, const char *url, const char *const *schemes, char *err,
    size_t errlen)
{
	const size_t sun_max = sizeof(((struct sockaddr_un *) NULL)->sun_path);
	char shown[ESC_MAX + 4];
	nng_url *u = NULL;
	bool known = false;
	int rc = LM_EINVAL;

	lm_config_escape(url, shown, sizeof(shown));
	if (url[0] == '\0' || nng_url_parse(&u, url) != 0) {
		snprintf(err, errlen, "%s: \"%s\" is not a usable address", var, shown);
		return LM_EINVAL;
	}
	for (size_t i = 0; schemes[i] != NULL && !known; i++)
		known = strcmp(u->u_scheme, schemes[i]) == 0;
	if (!known)
		snprintf(err, errlen, "%s: \"%s\" is not a usable address", var, shown);
	else if (strcmp(u->u_scheme, "ipc") == 0 && strlen(u->u_path) >= sun_max)
		snprintf(err, errlen,
		    "%s: \"%s\": the socket path is longer than a Unix socket takes "
		    "(%zu bytes); use a shorter one (for the notify socket, a shorter "
		    "LUNAMATCH_DATA_DIR or LUNAMATCH_NOTIFY_URL)",
		    var, shown, sun_max - 1);
	/* Without a port nng listens on one the kernel picks (and dials port
	 * 0): a typo that would serve where no client looks. */
	else if (strstr(u->u_scheme, "tcp") != NULL && !lm_rpc_port_ok(u->u_port, true))
		snprintf(err, errlen, "%s: \"%s\" needs a port, a number from 0 to 65535",
		    var, shown);
	else
		rc = LM_OK;
	nng_url_free(u);
	return rc;
}

/* Says why getopt_long refused arg: a value given to an option that takes
 * none ("--help=1"), or an option it does not know (optopt names a short
 * one within a cluster). */
static void
unknown(const char *arg, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	char shown[ESC_MAX + 4];

	if (strncmp(arg, "--", 2) == 0 && eq != NULL && optopt != 0)
		snprintf(err, errlen, "option %s takes no value",
		    esc_n(arg, (size_t) (eq - arg), shown, sizeof(shown)));
	else if (strncmp(arg, "--", 2) == 0 || optopt <= ' ' || optopt >= 0x7f)
		snprintf(err, errlen, "unknown option %s (see --help)",
		    lm_config_escape(arg, shown, sizeof(shown)));
	else
		snprintf(err, errlen, "unknown option -%c (see --help)", optopt);
}

/* Whether the long option typed as arg ("--name" or "--name=value") is
 * spelled out in full as name: getopt_long also takes an unambiguous
 * prefix of it. */
static bool
spelled_out(const char *arg, const char *name)
{
	size_t n;

	if (strncmp(arg, "--", 2) != 0)
		return false;
	n = strcspn(arg + 2, "=");
	return n == strlen(name) && strncmp(arg + 2, name, n) == 0;
}

int
lm_config_load(
    lm_config *cfg, lm_prog prog, int argc, char **argv, char *err, size_t errlen)
{
	struct option longopts[NOPTS + 3];
	const struct opt *byidx[NOPTS];
	bool given[NOPTS];
	size_t n = 0;
	char what[128], env_err[256] = "";
	int rv, env_rc = LM_OK;

	memset(cfg, 0, sizeof(*cfg));
	memset(given, 0, sizeof(given));
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		if (o->def != NULL &&
		    (rv = set_value(cfg, o, o->def, o->flag, err, errlen)) != LM_OK)
			return rv;
	}
	for (size_t i = 0; i < NOPTS; i++) {
		if (!(opts[i].progs & prog))
			continue;
		longopts[n].name = opts[i].flag;
		longopts[n].has_arg =
		    opts[i].type == T_FLAG ? no_argument : required_argument;
		longopts[n].flag = NULL;
		longopts[n].val = 1000 + (int) n;
		byidx[n++] = &opts[i];
	}
	longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
	longopts[n] = (struct option){NULL, 0, NULL, 0};

	/* "+" stops at the first non-option; ":" reports a missing argument.
	 * optind 0, not 1: glibc then also forgets a cluster of short options
	 * a previous parse stopped in ("-xh" refused at x would go on at h). */
	optind = 0;
	opterr = 0;
	for (;;) {
		int li = -1, before = optind;
		int c = getopt_long(argc, argv, "+:hV", longopts, &li);
		if (c == -1)
			break;
		/* The services take every long option spelled out only: a
		 * prefix would silently become whichever option it begins
		 * (--rpc-max-connections was taken as
		 * --rpc-max-connections-per-peer before the former existed),
		 * and a prefix that is unambiguous today may not be after an
		 * option is added. The CLI keeps GNU prefixes (docs/cli.md).
		 * A long option is the whole of argv[before]: optind 0 is the
		 * first call, which starts at argv[1]. */
		if (li >= 0 && (prog & SVC)) {
			const char *arg = argv[before > 0 ? before : 1];
			if (!spelled_out(arg, longopts[li].name)) {
				char shown[ESC_MAX + 4];
				size_t k = strcspn(arg, "=");
				snprintf(err, errlen,
				    "option %s is not spelled out: write --%s (options "
				    "may not be abbreviated)",
				    esc_n(arg, k, shown, sizeof(shown)),
				    longopts[li].name);
				return LM_EINVAL;
			}
		}
		if (c == 'h') {
			cfg->help = true;
		} else if (c == 'V') {
			cfg->version = true;
		} else if (c == ':') {
			char shown[ESC_MAX + 4];
			snprintf(err, errlen, "option %s needs a value",
			    lm_config_escape(argv[optind - 1], shown, sizeof(shown)));
			return LM_EINVAL;
		} else if (c == '?') {
			/* optind moved past the argument unless a cluster of
			 * short options ("-xh") goes on. */
			unknown(optind > before ? argv[optind - 1] : argv[optind], err,
			    errlen);
			return LM_EINVAL;
		} else {
			const struct opt *o = byidx[c - 1000];
			cfg->log_level_given |= o->type == T_LEVEL;
			given[o - opts] = true;
			snprintf(what, sizeof(what), "--%s", o->flag);
			if ((rv = set_value(cfg, o, optarg ? optarg : "", what, err,
			         errlen)) != LM_OK)
				return rv;
		}
	}
	/* The environment, under the flags: a variable whose option a flag
	 * set is not read at all, so that the flag wins over a bad value of
	 * it too. The first bad variable left is reported after --help and
	 * --version have answered, whatever the environment holds (a pod
	 * with a bad ConfigMap can still say what it runs). */
	for (size_t i = 0; i < NOPTS && env_rc == LM_OK; i++) {
		const struct opt *o = &opts[i];
		const char *v;
		if (!(o->progs & prog) || given[i] || o->env == NULL ||
		    (v = getenv(o->env)) == NULL)
			continue;
		snprintf(what, sizeof(what), "%s", o->env);
		env_rc = set_value(cfg, o, v, what, env_err, sizeof(env_err));
	}
	cfg->argi = optind;
	if (cfg->help || cfg->version)
		return LM_OK;
	if (env_rc != LM_OK) {
		snprintf(err, errlen, "%s", env_err);
		return env_rc;
	}
	for (size_t i = 0; i < sizeof(nonempty) / sizeof(nonempty[0]); i++) {
		const struct opt *o = opt_at(nonempty[i]);
		if ((o->progs & prog) && *((const char *) cfg + o->off) == '\0') {
			snprintf(
			    err, errlen, "%s/--%s must not be empty", o->env, o->flag);
			return LM_EINVAL;
		}
	}
	if ((cfg->tls_cert[0] != '\0') != (cfg->tls_key[0] != '\0')) {
		snprintf(
		    err, errlen, "LUNAMATCH_TLS_CERT and LUNAMATCH_TLS_KEY go together");
		return LM_EINVAL;
	}
	if ((rv = check_distinct(cfg, prog, err, errlen)) != LM_OK)
		return rv;
	/* The RPC server lowers its connection limit to what the budget holds,
	 * but never below one connection: a budget under one request would
	 * leave the replica one client. */
	if ((prog & LM_PROG_MATCH) && cfg->rpc_receive_budget != 0 &&
	    cfg->rpc_receive_budget < cfg->max_request_bytes) {
		snprintf(err, errlen,
		    "LUNAMATCH_RPC_RECEIVE_BUDGET_BYTES (--rpc-receive-budget-bytes) "
		    "%llu is less than one request of LUNAMATCH_MAX_REQUEST_BYTES "
		    "(--max-request-bytes) %u; give 0 to derive it from the memory "
		    "limit",
		    (unsigned long long) cfg->rpc_receive_budget,
		    (unsigned) cfg->max_request_bytes);
		return LM_EINVAL;
	}
	/* A shorter age would make clients dial for nearly every call. */
	if ((prog & LM_PROG_MATCH) && cfg->rpc_max_connection_age_ms != 0 &&
	    cfg->rpc_max_connection_age_ms < 1000) {
		snprintf(err, errlen,
		    "LUNAMATCH_RPC_MAX_CONNECTION_AGE_MS (--rpc-max-connection-age-ms) "
		    "%u is below 1000; give 0 to never close connections for their age",
		    (unsigned) cfg->rpc_max_connection_age_ms);
		return LM_EINVAL;
	}
	/* The addresses the services listen on, so that a typo is refused
	 * before anything starts. The CLI's --url is a list, checked where it
	 * dials. */
	if ((prog & LM_PROG_MATCH) &&
	    (rv = check_url("LUNAMATCH_RPC_URL (--url)", cfg->rpc_url, rpc_schemes, err,
	         errlen)) != LM_OK)
		return rv;
	if (prog & SVC) {
		char notify[LM_CFG_STR + 64];
		if (lm_config_notify_url(cfg, notify, sizeof(notify)) != LM_OK) {
			snprintf(
			    err, errlen, "LUNAMATCH_NOTIFY_URL (--notify-url): too long");
			return LM_EINVAL;
		}
		if ((rv = check_url("LUNAMATCH_NOTIFY_URL (--notify-url)", notify,
		         notify_schemes, err, errlen)) != LM_OK)
			return rv;
		/* Empty: the program's default. */
		if (cfg->http_addr[0] != '\0' &&
		    lm_http_addr_check(cfg->http_addr) != LM_OK) {
			char shown[ESC_MAX + 4];
			snprintf(err, errlen,
			    "LUNAMATCH_HTTP_ADDR (--http): \"%s\" is not host:port or "
			    "[v6]:port (port 0..65535)",
			    lm_config_escape(cfg->http_addr, shown, sizeof(shown)));
			return LM_EINVAL;
		}
	}
	return LM_OK;
}

int
lm_config_flag(lm_prog prog, size_t i, const char **name, bool *has_arg)
{
	for (size_t k = 0; k < NOPTS; k++) {
		if (!(opts[k].progs & prog))
			continue;
		if (i-- == 0) {
			*name = opts[k].flag;
			*has_arg = opts[k].type != T_FLAG;
			return LM_OK;
		}
	}
	return LM_ENOENT;
}

const char *
lm_version(void)
{
	return LM_VERSION;
}

void
lm_config_usage(FILE *out, lm_prog prog)
{
	fprintf(out, "Options (flag, environment variable, default):\n");
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		if (!(o->progs & prog))
			continue;
		fprintf(out, "  --%-20s %s\n", o->flag, o->help);
		if (o->env != NULL)
			fprintf(out, "  %-22s %s%s%s\n", "", o->env,
			    o->def && *o->def ? ", default " : "",
			    o->def && *o->def ? o->def : "");
	}
	fprintf(out, "  --%-20s %s\n  --%-20s %s\n", "help", "show this help", "version",
	    "print the version (" LM_VERSION ")");
}

int
lm_config_notify_url(const lm_config *cfg, char *buf, size_t len)
{
	int n;
	if (cfg->notify_url[0] != '\0')
		n = snprintf(buf, len, "%s", cfg->notify_url);
	else
		n = snprintf(buf, len, "ipc://%s/notify.ipc", cfg->data_dir);
	return (n < 0 || (size_t) n >= len) ? LM_E2BIG : LM_OK;
}

/* LM_OK when st is a regular file's, LM_EINVAL otherwise (a directory). */
static int
regular(const struct stat *st)
{
	return S_ISREG(st->st_mode) ? LM_OK : LM_EINVAL;
}

int
lm_config_data_file(const char *path, char *buf, size_t len)
{
	struct stat st;
	const char *rel = path;
	int n;

	if (path == NULL || *path == '\0')
		return LM_EINVAL;
	if (stat(path, &st) == 0) {
		n = snprintf(buf, len, "%s", path);
		return (n < 0 || (size_t) n >= len) ? LM_E2BIG : regular(&st);
	}
	if (path[0] == '/')
		return LM_ENOENT;
	if (strncmp(rel, "data/", 5) == 0)
		rel += 5;
	n = snprintf(buf, len, "%s/%s", LM_SHARE_DIR, rel);
	if (n < 0 || (size_t) n >= len)
		return LM_E2BIG;
	return stat(buf, &st) == 0 ? regular(&st) : LM_ENOENT;
}
