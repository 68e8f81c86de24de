/*
 * cmd_store.c - `lunamatch store`: read records and statistics straight from
 * the record store in the data directory, read-only, without any service
 * running. Safe next to a running ingest (LMDB readers never block the
 * writer).
 *
 *   store get posting|profile ID
 *   store list postings|profiles [--limit N]
 *   store stats
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "lunamatch/textfile.h"
#include "lunamatch/v1/records.pb-c.h"

#define CMD "store"
/* Largest --limit accepted. */
#define LIST_LIMIT_MAX 1000000000ull

enum { OPT_LIMIT = 1 };

const struct option lm_cli_store_options[] = {
    {"limit", required_argument, NULL, OPT_LIMIT},
    {NULL, 0, NULL, 0},
};

const char lm_cli_store_usage[] =
    "Usage: " LM_CLI_PROG " [global options] store get posting|profile ID\n"
    "       " LM_CLI_PROG " [global options] store list postings|profiles [--limit N]\n"
    "       " LM_CLI_PROG " [global options] store stats\n"
    "\n"
    "Reads the record store in --data-dir (LUNAMATCH_DATA_DIR) read-only.\n"
    "\n"
    "  get     prints one record as pretty JSON (one compact line with --json);\n"
    "          exit 1 when there is no record with that id\n"
    "  list    prints id, version and title (postings) or headline (profiles)\n"
    "          of every record in id order, as a table or, with --json, as\n"
    "          JSON lines {\"id\",\"version\",\"title\"|\"headline\"}\n"
    "  stats   prints record, tombstone and change-log counts and the map size,\n"
    "          as a table or, with --json, as one JSON object\n"
    "\n"
    "Options:\n"
    "  --limit N   list at most N records (1.."
    "1000000000; default all)\n";

/* Parses "posting"/"postings" and "profile"/"profiles". */
static bool
parse_kind(const char *s, lm_kind *k)
{
	if (strcmp(s, "posting") == 0 || strcmp(s, "postings") == 0)
		*k = LM_KIND_POSTING;
	else if (strcmp(s, "profile") == 0 || strcmp(s, "profiles") == 0)
		*k = LM_KIND_PROFILE;
	else
		return false;
	return true;
}

static const ProtobufCMessageDescriptor *
kind_desc(lm_kind k)
{
	return k == LM_KIND_POSTING ? &lunamatch__v1__job_posting__descriptor
	                            : &lunamatch__v1__candidate_profile__descriptor;
}

static int
open_store(const lm_config *cfg, lm_store **s)
{
	lm_store_opts o = {.flags = LM_STORE_RDONLY};
	int rc = lm_store_open(cfg->data_dir, &o, s);

	if (rc == LM_ENOENT)
		lm_cli_error(
		    CMD, "no record store in %s (see --data-dir)", cfg->data_dir);
	else if (rc != LM_OK)
		lm_cli_error(CMD, "cannot open the record store in %s: %s", cfg->data_dir,
		    lm_strerror(rc));
	return rc;
}

static int
do_get(const lm_config *cfg, lm_kind k, const char *id)
{
	lm_store *s = NULL;
	void *bytes = NULL;
	size_t len = 0;
	ProtobufCMessage *msg = NULL;
	char *text = NULL, err[512], what[LM_STORE_ID_MAX + 32];
	int rc, rv = LM_CLI_EXIT_FAIL;

	if (open_store(cfg, &s) != LM_OK)
		return LM_CLI_EXIT_FAIL;
	rc = lm_store_get(s, k, id, &bytes, &len, NULL);
	if (rc == LM_EINVAL) { /* the id's text: its length was checked */
		rv = lm_cli_usage_error(
		    CMD, "an id is 1..%d bytes of printable UTF-8", LM_STORE_ID_MAX);
		goto out;
	}
	if (rc == LM_ENOENT) {
		lm_cli_error(CMD, "no %s with id %s", lm_kind_name(k), id);
		goto out;
	}
	if (rc != LM_OK) {
		lm_cli_error(
		    CMD, "reading %s %s: %s", lm_kind_name(k), id, lm_strerror(rc));
		goto out;
	}
	rc = lm_pb_decode(
	    kind_desc(k), bytes, len, LM_STORE_VALUE_MAX, &msg, err, sizeof(err));
	if (rc != LM_OK) {
		lm_cli_error(CMD, "%s %s: stored value does not decode: %s",
		    lm_kind_name(k), id, err);
		goto out;
	}
	snprintf(what, sizeof(what), "%s %s", lm_kind_name(k), id);
	if (lm_cli_json_encode(CMD, what, msg, cfg->json ? 0 : LM_JSON_PRETTY, &text) !=
	    LM_OK)
		goto out;
	printf("%s\n", text);
	rv = lm_cli_stdout_written(CMD);
	if (!cfg->json)
		lm_cli_print_warnings(CMD, msg);
out:
	free(text);
	if (msg != NULL)
		protobuf_c_message_free_unpacked(msg, NULL);
	free(bytes);
	lm_store_close(s);
	return rv;
}

struct list_ctx {
	lm_kind kind;
	bool json;
	uint64_t limit; /* 0 = all */
	uint64_t printed;
	uint64_t bad; /* records that did not decode */
	int out_err;  /* writing stdout failed */
};

static const lm_cli_col list_cols[] = {{"ID", 32}, {"VERSION", 7}, {NULL, 0}};

static int
list_one(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct list_ctx *L = arg;
	ProtobufCMessage *msg = NULL;
	const char *text = NULL;
	char err[512], ver[24];

	if (lm_pb_decode(kind_desc(L->kind), bytes, len, LM_STORE_VALUE_MAX, &msg, err,
	        sizeof(err)) != LM_OK) {
		lm_cli_error(CMD, "%s %s: stored value does not decode: %s",
		    lm_kind_name(L->kind), id, err);
		L->bad++;
	} else if (L->kind == LM_KIND_POSTING) {
		text = ((Lunamatch__V1__JobPosting *) msg)->title;
	} else {
		text = ((Lunamatch__V1__CandidateProfile *) msg)->headline;
	}
	if (L->json) {
		json_t *o = json_object();
		json_object_set_new(o, "id", lm_cli_json_string(id, strlen(id)));
		json_object_set_new(o, "version", lm_json_uint64(version));
		if (text != NULL)
			json_object_set_new(o,
			    L->kind == LM_KIND_POSTING ? "title" : "headline",
			    lm_cli_json_string(text, strlen(text)));
		if (lm_cli_json_line(stdout, o) != 0)
			L->out_err = 1;
		json_decref(o);
	} else {
		const char *cells[3] = {id, ver, text ? text : "(undecodable)"};
		snprintf(ver, sizeof(ver), "%" PRIu64, version);
		lm_cli_table_row(stdout, list_cols, 3, cells);
	}
	if (msg != NULL)
		protobuf_c_message_free_unpacked(msg, NULL);
	L->printed++;
	if (L->out_err || (L->limit != 0 && L->printed >= L->limit))
		return -1;
	return 0;
}

static int
do_list(const lm_config *cfg, lm_kind k, uint64_t limit)
{
	lm_store *s = NULL;
	struct list_ctx L = {.kind = k, .json = cfg->json, .limit = limit};
	lm_cli_col cols[3];
	int rc;

	if (open_store(cfg, &s) != LM_OK)
		return LM_CLI_EXIT_FAIL;
	if (!cfg->json) {
		memcpy(cols, list_cols, sizeof(cols));
		cols[2].header = k == LM_KIND_POSTING ? "TITLE" : "HEADLINE";
		lm_cli_table_header(stdout, cols, 3);
	}
	rc = lm_store_foreach(s, k, list_one, &L);
	lm_store_close(s);
	if (lm_cli_stdout_written(CMD) != LM_CLI_EXIT_OK || L.out_err)
		return LM_CLI_EXIT_FAIL;
	if (rc != LM_OK && rc != -1) {
		lm_cli_error(CMD, "listing %ss: %s", lm_kind_name(k), lm_strerror(rc));
		return LM_CLI_EXIT_FAIL;
	}
	return L.bad == 0 ? LM_CLI_EXIT_OK : LM_CLI_EXIT_FAIL;
}

static int
do_stats(const lm_config *cfg)
{
	lm_store *s = NULL;
	struct lm_store_stats st;
	int rc;
	static const char *const names[] = {"postings", "profiles", "tombstones",
	    "changes", "last_seq", "low_water", "map_size", "map_used"};
	enum { NSTATS = sizeof(names) / sizeof(names[0]) };
	uint64_t vals[NSTATS];

	if (open_store(cfg, &s) != LM_OK)
		return LM_CLI_EXIT_FAIL;
	rc = lm_store_stats(s, &st);
	lm_store_close(s);
	if (rc != LM_OK) {
		lm_cli_error(CMD, "reading statistics: %s", lm_strerror(rc));
		return LM_CLI_EXIT_FAIL;
	}
	/* The per-handle counters (stale_skipped, map_grows) are always 0 for
	 * this read-only handle and are not shown. */
	vals[0] = st.postings;
	vals[1] = st.profiles;
	vals[2] = st.tombstones;
	vals[3] = st.changes;
	vals[4] = st.last_seq;
	vals[5] = st.low_water;
	vals[6] = st.map_size;
	vals[7] = st.map_used;
	if (cfg->json) {
		json_t *o = json_object();
		json_object_set_new(o, "data_dir",
		    lm_cli_json_string(cfg->data_dir, strlen(cfg->data_dir)));
		for (size_t i = 0; i < NSTATS; i++)
			json_object_set_new(
			    o, names[i], json_integer((json_int_t) vals[i]));
		rc = lm_cli_json_line(stdout, o);
		json_decref(o);
		if (rc != 0) {
			lm_cli_error(CMD, "cannot write to standard output");
			return LM_CLI_EXIT_FAIL;
		}
		return LM_CLI_EXIT_OK;
	}
	for (size_t i = 0; i < NSTATS; i++)
		printf("%-12s %" PRIu64 "\n", names[i], vals[i]);
	return lm_cli_stdout_written(CMD);
}

int
lm_cli_store(const lm_config *cfg, int argc, char **argv)
{
	uint64_t limit = 0;
	bool have_limit = false;
	const char *sub;
	lm_kind k;
	int c;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_store_options, first)) != -1;
	     first = false) {
		if (c == OPT_LIMIT) {
			if (!lm_textfile_whole(optarg, 1, LIST_LIMIT_MAX, &limit))
				return lm_cli_usage_error(CMD,
				    "--limit: \"%s\" is not a number in 1..%llu", optarg,
				    LIST_LIMIT_MAX);
			have_limit = true;
		} else {
			return lm_cli_usage_error(CMD, "bad option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return lm_cli_usage_error(CMD, "missing subcommand: get, list or stats");
	sub = argv[0];
	if (have_limit && strcmp(sub, "list") != 0)
		return lm_cli_usage_error(CMD, "--limit applies to store list only");
	if (strcmp(sub, "get") == 0) {
		if (argc != 3)
			return lm_cli_usage_error(
			    CMD, "usage: store get posting|profile ID");
		if (!parse_kind(argv[1], &k))
			return lm_cli_usage_error(CMD,
			    "unknown record kind \"%s\": posting or profile", argv[1]);
		int rv = lm_cli_check_id(CMD, lm_kind_name(k), argv[2]);
		return rv == LM_CLI_EXIT_OK ? do_get(cfg, k, argv[2]) : rv;
	}
	if (strcmp(sub, "list") == 0) {
		if (argc != 2)
			return lm_cli_usage_error(
			    CMD, "usage: store list postings|profiles [--limit N]");
		if (!parse_kind(argv[1], &k))
			return lm_cli_usage_error(CMD,
			    "unknown record kind \"%s\": postings or profiles", argv[1]);
		return do_list(cfg, k, limit);
	}
	if (strcmp(sub, "stats") == 0) {
		if (argc != 1)
			return lm_cli_usage_error(CMD, "store stats takes no arguments");
		return do_stats(cfg);
	}
	return lm_cli_usage_error(
	    CMD, "unknown subcommand \"%s\": get, list or stats", sub);
}
