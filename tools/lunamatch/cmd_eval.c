/*
 * cmd_eval.c - `lunamatch eval`: how well the match service ranks a judged
 * evaluation set, next to two baselines computed in the same run.
 *
 *   eval [--set DIR] [--load] [--taxonomy-file F] [--rates-file F]
 *        [--fairness-file F] [--gazetteer-file F] [--embedding-dim N]
 *        [--as-of T] [--wait-ms N] [--timeout-ms N]
 *
 * The set (data/eval/, described in docs/eval-rubric.md) is three JSON-lines
 * files: postings.jsonl and profiles.jsonl (records as data/samples/ holds
 * them) and judgments.jsonl (a grade 0..3 per candidate/posting pair, or
 * must_not_appear; unlisted pairs are grade 0).
 *
 * The service must hold the set. With --load the command prepares the
 * records as ingest does (taxonomy, rate table, fair-requirements list,
 * gazetteer, embeddings of --embedding-dim values, as the services'
 * LUNAMATCH_EMBEDDING_DIM), writes them into the record store at --data-dir
 * itself (a
 * second writer beside ingest, as LMDB allows) and waits until the
 * service's index has caught up; otherwise the set must have been sent through ingest
 * (`lunamatch produce`). Either way every record is then read back from the
 * service (GetPosting, GetProfile), so that the baselines see the same
 * canonical skills as the engine. Records of the store that are not part of
 * the set are skipped in the service's answers.
 *
 * For every candidate with a judged posting it calls MatchJobs, and for
 * every posting with a judged candidate MatchCandidates, each for the whole
 * set, and ranks the same items with BM25 over title (headline) and skill
 * names and with the Jaccard similarity of canonical skill sets. It reports
 * per direction and ranker NDCG@5, NDCG@10, MAP (relevant: grade >= 1) and
 * violations: must-not-appear pairs within the first 10 results. The
 * output names what computed the engine's answers over all of them (model
 * versions, index positions, as_of; source.h): answers from more than one
 * model version (replicas during a roll-out) are reported as a mixed
 * evaluation, with a warning, not as the model of one answer.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/rpc.h"
#include "lunamatch/salary.h"
#include "lunamatch/store.h"
#include "lunamatch/taxonomy.h"
#include "lunamatch/textfile.h"
#include "rankeval.h"
#include "source.h"

#define CMD "eval"

/* Records of one kind in a set: one answer of the service (top_k <= 1000)
 * must be able to hold all of them. */
#define EVAL_RECORDS_MAX 1000
/* Bytes of one file of the set. */
#define EVAL_FILE_MAX (16u << 20)
/* Depth at which a must-not-appear pair counts as a violation. */
#define EVAL_VIOLATION_DEPTH 10
/* Grade from which a result counts as relevant for MAP. */
#define EVAL_RELEVANT  1
#define EVAL_GRADE_MAX 3
/* Default and longest wait for the service to index a loaded set. */
#define EVAL_WAIT_DEFAULT 30000
#define EVAL_WAIT_MAX     600000
/* Most values of an embedding, as LUNAMATCH_EMBEDDING_DIM allows. */
#define EVAL_EMBEDDING_DIM_MAX 4096
/* Bytes of the text a baseline reads from one record. */
#define EVAL_TEXT_MAX 8192
#define ERRMSG_MAX    1024

/* Engine violations listed one by one (table and JSON), the first found:
 * the output stays bounded. Their count is exact, and the output says how
 * many are not listed. */
#define EVAL_VIOLATIONS_LISTED 1000

/* Grade matrix value of a must-not-appear pair (its grade is 0). */
#define MUST_NOT (-1)

enum {
	OPT_SET = 1,
	OPT_LOAD,
	OPT_TAXONOMY,
	OPT_RATES,
	OPT_FAIRNESS,
	OPT_GAZETTEER,
	OPT_EMBEDDING_DIM,
	OPT_AS_OF,
	OPT_WAIT,
	OPT_TIMEOUT,
};

const struct option lm_cli_eval_options[] = {
    {"set", required_argument, NULL, OPT_SET},
    {"load", no_argument, NULL, OPT_LOAD},
    {"taxonomy-file", required_argument, NULL, OPT_TAXONOMY},
    {"rates-file", required_argument, NULL, OPT_RATES},
    {"fairness-file", required_argument, NULL, OPT_FAIRNESS},
    {"gazetteer-file", required_argument, NULL, OPT_GAZETTEER},
    {"embedding-dim", required_argument, NULL, OPT_EMBEDDING_DIM},
    {"as-of", required_argument, NULL, OPT_AS_OF},
    {"wait-ms", required_argument, NULL, OPT_WAIT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

const char lm_cli_eval_usage[] =
    "Usage: " LM_CLI_PROG " [global options] eval [--set DIR] [--load] [options]\n"
    "\n"
    "Measures how well the match service (--url) ranks a judged evaluation set\n"
    "(DIR: postings.jsonl, profiles.jsonl, judgments.jsonl; default data/eval):\n"
    "MatchJobs for every judged candidate and MatchCandidates for every judged\n"
    "posting, scored with NDCG@5, NDCG@10, MAP and violations (must-not-appear\n"
    "pairs in the first 10 results), next to two baselines computed in the same\n"
    "run: BM25 over title and skill names, and Jaccard of canonical skill sets.\n"
    "Prints a table, or one JSON object with --json, and lists the engine's\n"
    "violations: the first 1000 found, saying how many more there are (the\n"
    "counts are exact). The output names the model version, index sequence and\n"
    "as_of of the engine's answers, and warns when they come from more than one\n"
    "model version. The rubric and the set are described in\n"
    "docs/eval-rubric.md.\n"
    "\n"
    "The service must hold the set: either sent through ingest beforehand\n"
    "(lunamatch produce), or written by this command with --load.\n"
    "\n"
    "Options:\n"
    "  --set DIR             the evaluation set (default data/eval)\n"
    "  --load                prepare the set's records and write them into the\n"
    "                        service's record store at --data-dir (which must\n"
    "                        exist: it is not created), then wait until the\n"
    "                        service has indexed them (a record stored at the\n"
    "                        same or a newer version is kept as stored); fails\n"
    "                        when the service then serves another version of a\n"
    "                        record (it serves another store)\n"
    "  --taxonomy-file F     taxonomy for --load (default data/skills.tsv)\n"
    "  --rates-file F        currency rates for --load (default data/rates.tsv)\n"
    "  --fairness-file F     fair-requirements list --load screens postings with\n"
    "                        (default data/fairness/requirements.tsv)\n"
    "  --gazetteer-file F    cities that --load geocodes locations with\n"
    "                        (default data/geo/cities.tsv)\n"
    "  --embedding-dim N     values of a record's embedding for --load: the\n"
    "                        services' LUNAMATCH_EMBEDDING_DIM (default: that\n"
    "                        variable, else 384); records without an embedding\n"
    "                        are loaded as well\n"
    "  --as-of T             ask for the rankings at Unix time T (freshness and\n"
    "                        expiry), so that the numbers do not depend on the\n"
    "                        day they are measured (default: the service's clock)\n"
    "  --wait-ms N           longest wait for the index after --load\n"
    "                        (default 30000)\n"
    "  --timeout-ms N        deadline of each call\n"
    "\n"
    "Exit status: 0 the evaluation ran (whatever the numbers), 1 it failed\n"
    "(a bad set, a record the service does not hold or, with --load, holds at\n"
    "another version), 2 usage error, 3 the service is unavailable.\n";

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile Profile;

struct evalset {
	JobPosting *postings[EVAL_RECORDS_MAX];
	Profile *profiles[EVAL_RECORDS_MAX];
	size_t npostings, nprofiles;
	signed char *grade; /* [profile * npostings + posting]: 0..3 or MUST_NOT */
	bool *listed;       /* [the same]: the pair has a judgment line */
	size_t njudged, nmust_not;
	size_t npositive; /* judgments of grade 1 or more */
	/* With --load: the version the store holds of each record once the set
	 * is committed (the set's, or a newer one kept as stored), which the
	 * service must serve back; 0 without --load. */
	uint64_t posting_version[EVAL_RECORDS_MAX];
	uint64_t profile_version[EVAL_RECORDS_MAX];
};

/* The measures of one ranker in one direction, summed over queries. */
struct tally {
	size_t queries; /* with at least one relevant result */
	double ndcg5, ndcg10, ap;
	size_t violations;
};

enum { R_ENGINE, R_BM25, R_JACCARD, R_COUNT };
static const char *const ranker_name[R_COUNT] = {"engine", "bm25", "jaccard"};
enum { D_JOBS, D_CANDIDATES, D_COUNT };
static const char *const direction_name[D_COUNT] = {"jobs", "candidates"};

/* A must-not-appear pair the engine showed. */
struct violation {
	int direction;
	size_t profile, posting, rank;
};

struct run {
	const lm_config *cfg;
	lm_client *cl;
	unsigned timeout_ms;
	int64_t as_of; /* of every match request; 0: the service's clock */
	struct evalset *set;
	lm_bm25 *bm25[D_COUNT]; /* D_JOBS: postings; D_CANDIDATES: profiles */
	struct tally t[D_COUNT][R_COUNT];
	lm_cli_source src; /* what computed the engine's answers */
	struct violation viol[EVAL_VIOLATIONS_LISTED]; /* the first found */
	size_t nviol;
};

/* ---- reading the set ----------------------------------------------------- */

static const char *
record_id(const ProtobufCMessage *m)
{
	if (m->descriptor == &lunamatch__v1__job_posting__descriptor)
		return ((const JobPosting *) m)->id;
	return ((const Profile *) m)->id;
}

/*
 * Decodes the JSON lines of dir/name as records of type d into v (at most
 * EVAL_RECORDS_MAX). Returns an exit status, printing the error.
 */
static int
read_records(const char *dir, const char *name, const ProtobufCMessageDescriptor *d,
    ProtobufCMessage **v, size_t *n)
{
	char path[4096], err[512];
	char *text = NULL, *line, *next;
	size_t len, no = 0;
	int rv;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((rv = lm_cli_read_file(CMD, path, EVAL_FILE_MAX, &text, &len)) != 0)
		return rv;
	*n = 0;
	for (line = text; line < text + len; line = next) {
		ProtobufCMessage *m = NULL;
		char *nl = memchr(line, '\n', (size_t) (text + len - line));
		next = nl ? nl + 1 : text + len;
		no++;
		if (strspn(line, " \t\r\n") >= (size_t) (next - line))
			continue;
		if (*n == EVAL_RECORDS_MAX) {
			lm_cli_error(
			    CMD, "%s: more than %d records", path, EVAL_RECORDS_MAX);
			goto fail;
		}
		if (lm_json_decode(
		        d, line, (size_t) (next - line), &m, err, sizeof(err)) != LM_OK) {
			lm_cli_error(CMD, "%s:%zu: %s", path, no, err);
			goto fail;
		}
		if (!lm_record_id_valid(record_id(m))) {
			lm_cli_error(CMD, "%s:%zu: missing or invalid id", path, no);
			protobuf_c_message_free_unpacked(m, NULL);
			goto fail;
		}
		for (size_t i = 0; i < *n; i++)
			if (strcmp(record_id(v[i]), record_id(m)) == 0) {
				lm_cli_error(CMD, "%s:%zu: duplicate id %s", path, no,
				    record_id(m));
				protobuf_c_message_free_unpacked(m, NULL);
				goto fail;
			}
		v[(*n)++] = m;
	}
	free(text);
	if (*n == 0) {
		lm_cli_error(CMD, "%s holds no records", path);
		return LM_CLI_EXIT_FAIL;
	}
	return LM_CLI_EXIT_OK;
fail:
	free(text);
	return LM_CLI_EXIT_FAIL;
}

static size_t
posting_index(const struct evalset *s, const char *id)
{
	for (size_t i = 0; i < s->npostings; i++)
		if (strcmp(s->postings[i]->id, id) == 0)
			return i;
	return SIZE_MAX;
}

static size_t
profile_index(const struct evalset *s, const char *id)
{
	for (size_t i = 0; i < s->nprofiles; i++)
		if (strcmp(s->profiles[i]->id, id) == 0)
			return i;
	return SIZE_MAX;
}

/* The keys of a judgment line; judgment_keys refuses any other. */
static const char *const judgment_key[] = {
    "candidate", "job", "grade", "must_not_appear", "reason"};

/* Returns an exit status: 0 when every key of j (when an object) is one of
 * judgment_key, else 1, printing the first other key with line no. */
static int
judgment_keys(json_t *j, const char *path, size_t no)
{
	const char *key;
	json_t *v;
	char kt[LM_CLI_ID_TEXT];

	if (!json_is_object(j))
		return LM_CLI_EXIT_OK; /* json_unpack_ex says what it is */
	json_object_foreach(j, key, v)
	{
		size_t k = 0;
		while (k < sizeof(judgment_key) / sizeof(judgment_key[0]) &&
		       strcmp(key, judgment_key[k]) != 0)
			k++;
		if (k == sizeof(judgment_key) / sizeof(judgment_key[0])) {
			lm_cli_error(CMD,
			    "%s:%zu: unknown key \"%s\" (a judgment has candidate, "
			    "job, grade or must_not_appear, and reason)",
			    path, no, lm_cli_id_text(kt, key));
			return LM_CLI_EXIT_FAIL;
		}
	}
	return LM_CLI_EXIT_OK;
}

/* Reads one judgment line into the grade matrix. The line's parse may take
 * at most the memory a record line's decode may (lm_json_decode). */
static int
read_judgment(
    struct evalset *s, const char *path, size_t no, const char *line, size_t len)
{
	json_error_t jerr;
	bool over = false;
	size_t max_mem = LM_JSON_DECODE_FLOOR + LM_JSON_DECODE_FACTOR * len;
	json_t *j = lm_json_loadb_capped(line, len, 0, max_mem, &jerr, &over);
	const char *cand = NULL, *job = NULL;
	json_int_t grade = -1;
	int must_not = 0, rv = LM_CLI_EXIT_FAIL;
	size_t ci, pi;
	char ct[LM_CLI_ID_TEXT], jt[LM_CLI_ID_TEXT];

	if (j == NULL && over) {
		lm_cli_error(CMD,
		    "%s:%zu: parsing the line would take more than %zu MiB of memory "
		    "(too many values)",
		    path, no, max_mem >> 20);
		return rv;
	}
	if (j == NULL) {
		lm_cli_error(CMD, "%s:%zu: %s", path, no, jerr.text);
		return rv;
	}
	if (judgment_keys(j, path, no) != 0)
		goto out;
	if (json_unpack_ex(j, &jerr, 0, "{s:s, s:s, s?I, s?b, s?s}", "candidate", &cand,
	        "job", &job, "grade", &grade, "must_not_appear", &must_not, "reason",
	        &(const char *){NULL}) != 0) {
		lm_cli_error(CMD, "%s:%zu: %s", path, no, jerr.text);
		goto out;
	}
	if (must_not == (grade >= 0) || grade > EVAL_GRADE_MAX) {
		lm_cli_error(CMD,
		    "%s:%zu: a judgment has either a grade 0..%d or must_not_appear",
		    path, no, EVAL_GRADE_MAX);
		goto out;
	}
	if ((ci = profile_index(s, cand)) == SIZE_MAX ||
	    (pi = posting_index(s, job)) == SIZE_MAX) {
		lm_cli_error(CMD, "%s:%zu: %s or %s is not in the set", path, no,
		    lm_cli_id_text(ct, cand), lm_cli_id_text(jt, job));
		goto out;
	}
	size_t pair = ci * s->npostings + pi;
	if (s->listed[pair]) {
		lm_cli_error(CMD, "%s:%zu: %s / %s judged twice", path, no,
		    lm_cli_id_text(ct, cand), lm_cli_id_text(jt, job));
		goto out;
	}
	s->listed[pair] = true;
	s->grade[pair] = must_not ? MUST_NOT : (signed char) grade;
	s->njudged++;
	s->nmust_not += must_not ? 1 : 0;
	s->npositive += grade > 0 ? 1 : 0;
	rv = LM_CLI_EXIT_OK;
out:
	json_decref(j);
	return rv;
}

static int
read_judgments(struct evalset *s, const char *dir)
{
	char path[4096];
	char *text = NULL, *next;
	size_t len, no = 0;
	int rv;

	snprintf(path, sizeof(path), "%s/judgments.jsonl", dir);
	if ((rv = lm_cli_read_file(CMD, path, EVAL_FILE_MAX, &text, &len)) != 0)
		return rv;
	if ((s->grade = calloc(s->nprofiles * s->npostings, 1)) == NULL ||
	    (s->listed = calloc(s->nprofiles * s->npostings, sizeof(*s->listed))) ==
	        NULL) {
		free(text);
		lm_cli_error(CMD, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}
	for (char *line = text; line < text + len; line = next) {
		char *nl = memchr(line, '\n', (size_t) (text + len - line));
		next = nl ? nl + 1 : text + len;
		no++;
		if (strspn(line, " \t\r\n") >= (size_t) (next - line))
			continue;
		if ((rv = read_judgment(s, path, no, line, (size_t) (next - line))) != 0)
			break;
	}
	free(text);
	/* Grade 0 judgments alone make no query: nothing would be measured. */
	if (rv == 0 && s->npositive + s->nmust_not == 0) {
		lm_cli_error(CMD,
		    "%s holds no judgment with a grade 1..%d or must_not_appear: "
		    "nothing to measure",
		    path, EVAL_GRADE_MAX);
		rv = LM_CLI_EXIT_FAIL;
	}
	return rv;
}

static void
set_free(struct evalset *s)
{
	for (size_t i = 0; i < s->npostings; i++)
		protobuf_c_message_free_unpacked(&s->postings[i]->base, NULL);
	for (size_t i = 0; i < s->nprofiles; i++)
		protobuf_c_message_free_unpacked(&s->profiles[i]->base, NULL);
	free(s->grade);
	free(s->listed);
	memset(s, 0, sizeof(*s));
}

/* ---- loading into the store ------------------------------------------------ */

/* Prepares m as ingest would and adds it to the transaction; *stale counts
 * the records the store already holds at this version or a newer one. */
static int
load_one(const lm_record_ctx *ctx, lm_store_txn *t, ProtobufCMessage *m, size_t *stale)
{
	char err[512];
	lm_reject why;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;
	bool posting = m->descriptor == &lunamatch__v1__job_posting__descriptor;
	uint64_t version =
	    posting ? ((JobPosting *) m)->version : ((Profile *) m)->version;

	rc = posting ? lm_posting_prepare(ctx, (JobPosting *) m, &why, err, sizeof(err))
	             : lm_profile_prepare(ctx, (Profile *) m, &why, err, sizeof(err));
	if (rc != LM_OK) {
		size_t n = posting ? ((JobPosting *) m)->n_embedding
		                   : ((Profile *) m)->n_embedding;
		lm_cli_error(CMD, "%s is not a valid record (%s): %s%s", record_id(m),
		    lm_reject_name(why), err,
		    n > 0 && n != ctx->embedding_dim
		        ? " (--embedding-dim sets the dimension; it must be the "
		          "services' LUNAMATCH_EMBEDDING_DIM)"
		        : "");
		return LM_CLI_EXIT_FAIL;
	}
	if ((rc = lm_pb_encode(m, &buf, &len)) != LM_OK) {
		lm_cli_error(CMD, "cannot encode %s: %s", record_id(m), lm_strerror(rc));
		return LM_CLI_EXIT_FAIL;
	}
	rc = lm_store_put(t, posting ? LM_KIND_POSTING : LM_KIND_PROFILE, record_id(m),
	    version, buf, len);
	free(buf);
	/* LM_ESTALE: this version (or a newer one) is stored already. */
	if (rc == LM_ESTALE)
		(*stale)++;
	else if (rc != LM_OK) {
		lm_cli_error(CMD, "cannot store %s: %s", record_id(m), lm_strerror(rc));
		return LM_CLI_EXIT_FAIL;
	}
	return LM_CLI_EXIT_OK;
}

static int
load_file(const char *cmdname, const char *flag, const char *file, char *path, size_t len)
{
	if (lm_config_data_file(file, path, len) != LM_OK) {
		lm_cli_error(cmdname, "%s: %s not found", flag, file);
		return LM_CLI_EXIT_FAIL;
	}
	return LM_CLI_EXIT_OK;
}

/* Writes the set into the store at cfg->data_dir; *seq gets the store's
 * last change seq after the commit. */
static int
load_set(const lm_config *cfg, struct evalset *s, const char *taxonomy_file,
    const char *rates_file, const char *fairness_file, const char *gazetteer_file,
    uint32_t embedding_dim, uint64_t *seq)
{
	char path[4096], err[512];
	lm_taxonomy *tax = NULL;
	lm_rates *rates = NULL;
	lm_fairness *fair = NULL;
	lm_gazetteer *gaz = NULL;
	lm_store *st = NULL;
	lm_store_txn *t = NULL;
	lm_record_ctx ctx;
	size_t stale = 0;
	int rc, rv = LM_CLI_EXIT_FAIL;

	if (load_file(CMD, "--taxonomy-file", taxonomy_file, path, sizeof(path)) != 0)
		goto fail;
	if ((rc = lm_taxonomy_load(path, &tax, err, sizeof(err))) != LM_OK) {
		lm_cli_error(CMD, "%s", err);
		goto fail;
	}
	if (load_file(CMD, "--rates-file", rates_file, path, sizeof(path)) != 0)
		goto fail;
	if ((rc = lm_rates_load(path, &rates, err, sizeof(err))) != LM_OK) {
		lm_cli_error(CMD, "%s", err);
		goto fail;
	}
	/* Postings are screened as ingest screens them, so that the engine
	 * never scores a requirement ingest would have dropped. */
	if (load_file(CMD, "--fairness-file", fairness_file, path, sizeof(path)) != 0)
		goto fail;
	if ((rc = lm_fairness_load(path, &fair, err, sizeof(err))) != LM_OK) {
		lm_cli_error(CMD, "%s", err);
		goto fail;
	}
	/* Locations are geocoded as ingest geocodes them, so that the engine
	 * compares distances. */
	if (load_file(CMD, "--gazetteer-file", gazetteer_file, path, sizeof(path)) != 0)
		goto fail;
	if ((rc = lm_gazetteer_load(path, &gaz, err, sizeof(err))) != LM_OK) {
		lm_cli_error(CMD, "%s", err);
		goto fail;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.taxonomy = tax;
	ctx.rates = rates;
	ctx.fairness = fair;
	ctx.gazetteer = gaz;
	/* As ingest checks them: embeddings of the deployment's dimension. */
	ctx.embedding_dim = embedding_dim;
	/* --load writes into the service's store, which the service created:
	 * a directory without one is not it, so it is opened read-only first
	 * (no creation) and refused when there is no store there. */
	lm_store_opts ro = {.flags = LM_STORE_RDONLY};
	if ((rc = lm_store_open(cfg->data_dir, &ro, &st)) == LM_OK) {
		lm_store_close(st);
		st = NULL;
		rc = lm_store_open(cfg->data_dir, NULL, &st);
	}
	if (rc == LM_ENOENT) {
		lm_cli_error(CMD,
		    "no record store in %s: --load writes into the store of the "
		    "service (see --data-dir)",
		    cfg->data_dir);
		goto fail;
	}
	if (rc != LM_OK) {
		lm_cli_error(CMD, "cannot open the store in %s: %s", cfg->data_dir,
		    lm_strerror(rc));
		goto fail;
	}
	if ((rc = lm_store_begin(st, &t)) != LM_OK) {
		lm_cli_error(CMD, "cannot write the store: %s", lm_strerror(rc));
		goto fail;
	}
	for (size_t i = 0; i < s->npostings; i++)
		if (load_one(&ctx, t, &s->postings[i]->base, &stale) != 0)
			goto fail;
	for (size_t i = 0; i < s->nprofiles; i++)
		if (load_one(&ctx, t, &s->profiles[i]->base, &stale) != 0)
			goto fail;
	rc = lm_store_commit(t, seq);
	t = NULL;
	if (rc != LM_OK) {
		lm_cli_error(CMD, "cannot commit to the store: %s", lm_strerror(rc));
		goto fail;
	}
	/* The versions the service must serve back (fetch_set checks them). */
	for (size_t i = 0; i < s->npostings; i++)
		if ((rc = lm_store_get(st, LM_KIND_POSTING, s->postings[i]->id, NULL,
		         NULL, &s->posting_version[i])) != LM_OK) {
			lm_cli_error(CMD, "cannot read back %s: %s", s->postings[i]->id,
			    lm_strerror(rc));
			goto fail;
		}
	for (size_t i = 0; i < s->nprofiles; i++)
		if ((rc = lm_store_get(st, LM_KIND_PROFILE, s->profiles[i]->id, NULL,
		         NULL, &s->profile_version[i])) != LM_OK) {
			lm_cli_error(CMD, "cannot read back %s: %s", s->profiles[i]->id,
			    lm_strerror(rc));
			goto fail;
		}
	/* A record changed without a new version is not replaced: say so. */
	if (stale > 0)
		lm_cli_error(CMD,
		    "note: %zu records of the set were stored already at the same or a "
		    "newer version and were kept as stored",
		    stale);
	rv = LM_CLI_EXIT_OK;
fail:
	lm_store_abort(t);
	lm_store_close(st);
	lm_rates_free(rates);
	lm_taxonomy_free(tax);
	lm_fairness_free(fair);
	lm_gazetteer_free(gaz);
	return rv;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t) (ms / 1000), (long) (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Calls Check until the index has reached seq, for at most wait_ms. */
static int
wait_index(struct run *r, uint64_t seq, unsigned wait_ms)
{
	char errmsg[ERRMSG_MAX];

	for (unsigned waited = 0;; waited += 100) {
		Lunamatch__V1__HealthCheckRequest req =
		    LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
		Lunamatch__V1__HealthCheckResponse *resp = NULL;
		int status = 0;
		req.service = LM_RPC_SERVICE;
		int rc = lm_client_check(
		    r->cl, &req, r->timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		int rv = lm_cli_call_status(CMD, r->cfg, rc, status, errmsg);
		if (rv != 0)
			return rv;
		bool done = resp->index_seq >= seq;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		if (done)
			return LM_CLI_EXIT_OK;
		if (waited >= wait_ms) {
			lm_cli_error(CMD,
			    "the service did not index the loaded set (change %" PRIu64
			    ") within %u ms",
			    seq, wait_ms);
			return LM_CLI_EXIT_UNAVAILABLE;
		}
		sleep_ms(100);
	}
}

/*
 * With --load (loaded not 0), the service must serve the version of a
 * record that the store holds after the load: another version means that
 * it serves another store (--data-dir is not its own) or has not caught up,
 * and measuring would measure other records. Returns an exit status,
 * printing the error.
 */
static int
check_version(const char *what, const char *id, uint64_t served, uint64_t loaded)
{
	if (loaded == 0 || served == loaded)
		return LM_CLI_EXIT_OK;
	lm_cli_error(CMD,
	    "the service serves %s %s at version %" PRIu64 ", not version %" PRIu64
	    " just loaded: it serves another store than --data-dir or has not "
	    "caught up",
	    what, id, served, loaded);
	return LM_CLI_EXIT_FAIL;
}

/* Replaces every record of the set with the service's prepared copy; with
 * --load, checks that it is the version loaded (check_version). */
static int
fetch_set(struct run *r)
{
	struct evalset *s = r->set;
	char errmsg[ERRMSG_MAX];
	int status, rc, rv;

	for (size_t i = 0; i < s->npostings; i++) {
		Lunamatch__V1__GetPostingRequest req =
		    LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
		Lunamatch__V1__GetPostingResponse *resp = NULL;
		req.id = s->postings[i]->id;
		rc = lm_client_get_posting(
		    r->cl, &req, r->timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		if ((rv = lm_cli_call_status(CMD, r->cfg, rc, status, errmsg)) != 0) {
			if (status == LUNAMATCH__V1__STATUS_CODE__NOT_FOUND)
				lm_cli_error(CMD,
				    "posting %s is not in the service: load the set "
				    "first "
				    "(--load or lunamatch produce)",
				    req.id);
			return rv;
		}
		if (resp->posting == NULL) {
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			lm_cli_error(CMD, "the service sent no posting for %s", req.id);
			return LM_CLI_EXIT_FAIL;
		}
		protobuf_c_message_free_unpacked(&s->postings[i]->base, NULL);
		s->postings[i] = resp->posting;
		resp->posting = NULL;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		if ((rv = check_version("posting", s->postings[i]->id,
		         s->postings[i]->version, s->posting_version[i])) != 0)
			return rv;
	}
	for (size_t i = 0; i < s->nprofiles; i++) {
		Lunamatch__V1__GetProfileRequest req =
		    LUNAMATCH__V1__GET_PROFILE_REQUEST__INIT;
		Lunamatch__V1__GetProfileResponse *resp = NULL;
		req.id = s->profiles[i]->id;
		rc = lm_client_get_profile(
		    r->cl, &req, r->timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		if ((rv = lm_cli_call_status(CMD, r->cfg, rc, status, errmsg)) != 0) {
			if (status == LUNAMATCH__V1__STATUS_CODE__NOT_FOUND)
				lm_cli_error(CMD,
				    "profile %s is not in the service: load the set "
				    "first "
				    "(--load or lunamatch produce)",
				    req.id);
			return rv;
		}
		if (resp->profile == NULL) {
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			lm_cli_error(CMD, "the service sent no profile for %s", req.id);
			return LM_CLI_EXIT_FAIL;
		}
		protobuf_c_message_free_unpacked(&s->profiles[i]->base, NULL);
		s->profiles[i] = resp->profile;
		resp->profile = NULL;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		if ((rv = check_version("profile", s->profiles[i]->id,
		         s->profiles[i]->version, s->profile_version[i])) != 0)
			return rv;
	}
	return LM_CLI_EXIT_OK;
}

/* ---- baselines -------------------------------------------------------------- */

/* Appends s and a space to buf[0..len) at *pos, cutting what does not fit. */
static void
text_add(char *buf, size_t len, size_t *pos, const char *s)
{
	int n = snprintf(buf + *pos, len - *pos, "%s ", s);
	if (n > 0)
		*pos = *pos + (size_t) n < len ? *pos + (size_t) n : len - 1;
}

/* The words BM25 reads from a posting: its title and skill names. */
static void
posting_text(const JobPosting *p, char *buf, size_t len)
{
	size_t pos = 0;

	buf[0] = '\0';
	text_add(buf, len, &pos, p->title);
	for (size_t i = 0; i < p->n_skills; i++)
		text_add(buf, len, &pos, p->skills[i]->name);
}

/* The words BM25 reads from a profile: its headline and skill names. */
static void
profile_text(const Profile *c, char *buf, size_t len)
{
	size_t pos = 0;

	buf[0] = '\0';
	text_add(buf, len, &pos, c->headline);
	for (size_t i = 0; i < c->n_skills; i++)
		text_add(buf, len, &pos, c->skills[i]->name);
}

static double
jaccard(const JobPosting *p, const Profile *c)
{
	const char *a[LM_RECORD_SKILLS_MAX], *b[LM_RECORD_SKILLS_MAX];
	size_t na = 0, nb = 0;

	for (size_t i = 0; i < p->n_skills && na < LM_RECORD_SKILLS_MAX; i++)
		a[na++] = p->skills[i]->skill_id;
	for (size_t i = 0; i < c->n_skills && nb < LM_RECORD_SKILLS_MAX; i++)
		b[nb++] = c->skills[i]->skill_id;
	return lm_ir_jaccard(a, na, b, nb);
}

/* An item and its baseline score, for sorting. */
struct scored {
	size_t item;
	double score;
	const char *id;
};

static int
cmp_scored(const void *x, const void *y)
{
	const struct scored *a = x, *b = y;
	if (a->score != b->score)
		return a->score < b->score ? 1 : -1;
	return strcmp(a->id, b->id);
}

/*
 * The baseline ranking of every item of the other kind for query q in
 * direction d, written to order[0..n). Best first; ties by id.
 */
static void
rank_baseline(struct run *r, int d, int ranker, size_t q, size_t *order, size_t n,
    struct scored *tmp)
{
	struct evalset *s = r->set;
	char text[EVAL_TEXT_MAX];

	if (d == D_JOBS)
		profile_text(s->profiles[q], text, sizeof(text));
	else
		posting_text(s->postings[q], text, sizeof(text));
	for (size_t i = 0; i < n; i++) {
		const JobPosting *p = d == D_JOBS ? s->postings[i] : s->postings[q];
		const Profile *c = d == D_JOBS ? s->profiles[q] : s->profiles[i];
		tmp[i].item = i;
		tmp[i].id = d == D_JOBS ? p->id : c->id;
		tmp[i].score =
		    ranker == R_BM25 ? lm_bm25_score(r->bm25[d], i, text) : jaccard(p, c);
	}
	qsort(tmp, n, sizeof(*tmp), cmp_scored);
	for (size_t i = 0; i < n; i++)
		order[i] = tmp[i].item;
}

/* ---- measuring ---------------------------------------------------------------- */

static signed char
grade_of(const struct evalset *s, int d, size_t q, size_t item)
{
	return d == D_JOBS ? s->grade[q * s->npostings + item]
	                   : s->grade[item * s->npostings + q];
}

/* Adds the measures of ranking order[0..n) for query q to t. */
static void
measure(const struct evalset *s, int d, size_t q, const size_t *order, size_t n,
    size_t nitems, struct tally *t, int *grades, int *ideal)
{
	size_t nideal = 0, nrel = 0;

	for (size_t i = 0; i < n; i++) {
		signed char g = grade_of(s, d, q, order[i]);
		grades[i] = g > 0 ? g : 0;
		if (g == MUST_NOT && i < EVAL_VIOLATION_DEPTH)
			t->violations++;
	}
	for (size_t i = 0; i < nitems; i++) {
		signed char g = grade_of(s, d, q, i);
		if (g > 0)
			ideal[nideal++] = g;
		if (g >= EVAL_RELEVANT)
			nrel++;
	}
	if (nideal == 0)
		return;
	t->queries++;
	t->ndcg5 += lm_ir_ndcg(grades, n, ideal, nideal, 5);
	t->ndcg10 += lm_ir_ndcg(grades, n, ideal, nideal, 10);
	t->ap += lm_ir_average_precision(grades, n, nrel, EVAL_RELEVANT);
}

/* True when query q of direction d has any judgment. */
static bool
judged(const struct evalset *s, int d, size_t q)
{
	size_t n = d == D_JOBS ? s->npostings : s->nprofiles;
	for (size_t i = 0; i < n; i++)
		if (grade_of(s, d, q, i) != 0)
			return true;
	return false;
}

/* Records what computed one of the engine's answers. */
static int
note_source(struct run *r, const char *model, uint64_t seq, int64_t as_of)
{
	if (lm_cli_source_add(&r->src, model, seq, as_of) != LM_OK) {
		lm_cli_error(CMD, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}
	return LM_CLI_EXIT_OK;
}

/* The engine's ranking for query q in direction d, restricted to the set:
 * order[0..*n) (room for EVAL_RECORDS_MAX), each item at most once. */
static int
rank_engine(struct run *r, int d, size_t q, size_t *order, size_t *n)
{
	struct evalset *s = r->set;
	char errmsg[ERRMSG_MAX];
	int status = 0, rc, rv;
	Lunamatch__V1__Match **m;
	size_t nm;
	ProtobufCMessage *resp = NULL;

	if (d == D_JOBS) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__MatchJobsResponse *jr = NULL;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = s->profiles[q]->id;
		req.top_k = EVAL_RECORDS_MAX;
		req.as_of = r->as_of;
		req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
		rc = lm_client_match_jobs(
		    r->cl, &req, r->timeout_ms, &jr, &status, errmsg, sizeof(errmsg));
		if ((rv = lm_cli_call_status(CMD, r->cfg, rc, status, errmsg)) != 0)
			return rv;
		resp = &jr->base;
		m = jr->matches;
		nm = jr->n_matches;
		rv = note_source(r, jr->model_version, jr->index_seq, jr->as_of);
	} else {
		Lunamatch__V1__MatchCandidatesRequest req =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		Lunamatch__V1__MatchCandidatesResponse *cr = NULL;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = s->postings[q]->id;
		req.top_k = EVAL_RECORDS_MAX;
		req.as_of = r->as_of;
		req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
		rc = lm_client_match_candidates(
		    r->cl, &req, r->timeout_ms, &cr, &status, errmsg, sizeof(errmsg));
		if ((rv = lm_cli_call_status(CMD, r->cfg, rc, status, errmsg)) != 0)
			return rv;
		resp = &cr->base;
		m = cr->matches;
		nm = cr->n_matches;
		rv = note_source(r, cr->model_version, cr->index_seq, cr->as_of);
	}
	if (rv != 0) {
		protobuf_c_message_free_unpacked(resp, NULL);
		return rv;
	}
	/* Each item once, in the service's order: an answer with more matches
	 * than asked for, or with an id repeated, cannot overrun order. */
	bool seen[EVAL_RECORDS_MAX] = {false};
	*n = 0;
	for (size_t i = 0; i < nm && *n < EVAL_RECORDS_MAX; i++) {
		size_t item = d == D_JOBS ? posting_index(s, m[i]->job_id)
		                          : profile_index(s, m[i]->candidate_id);
		if (item == SIZE_MAX || seen[item])
			continue;
		seen[item] = true;
		order[(*n)++] = item;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return LM_CLI_EXIT_OK;
}

static int
run_direction(struct run *r, int d)
{
	struct evalset *s = r->set;
	size_t nq = d == D_JOBS ? s->nprofiles : s->npostings;
	size_t nitems = d == D_JOBS ? s->npostings : s->nprofiles;
	size_t order[EVAL_RECORDS_MAX], n;
	struct scored tmp[EVAL_RECORDS_MAX];
	int grades[EVAL_RECORDS_MAX], ideal[EVAL_RECORDS_MAX];
	char text[EVAL_TEXT_MAX];
	int rv;

	if (lm_bm25_new(&r->bm25[d]) != LM_OK)
		goto nomem;
	for (size_t i = 0; i < nitems; i++) {
		if (d == D_JOBS)
			posting_text(s->postings[i], text, sizeof(text));
		else
			profile_text(s->profiles[i], text, sizeof(text));
		if (lm_bm25_add(r->bm25[d], text) != LM_OK)
			goto nomem;
	}
	for (size_t q = 0; q < nq; q++) {
		if (!judged(s, d, q))
			continue;
		if ((rv = rank_engine(r, d, q, order, &n)) != 0)
			return rv;
		measure(s, d, q, order, n, nitems, &r->t[d][R_ENGINE], grades, ideal);
		for (size_t i = 0; i < n && i < EVAL_VIOLATION_DEPTH; i++)
			if (grade_of(s, d, q, order[i]) == MUST_NOT &&
			    r->nviol < EVAL_VIOLATIONS_LISTED)
				r->viol[r->nviol++] =
				    (struct violation){d, d == D_JOBS ? q : order[i],
				        d == D_JOBS ? order[i] : q, i + 1};
		for (int k = R_BM25; k < R_COUNT; k++) {
			rank_baseline(r, d, k, q, order, nitems, tmp);
			measure(
			    s, d, q, order, nitems, nitems, &r->t[d][k], grades, ideal);
		}
	}
	return LM_CLI_EXIT_OK;
nomem:
	lm_cli_error(CMD, "out of memory");
	return LM_CLI_EXIT_FAIL;
}

/* ---- output ---------------------------------------------------------------------- */

static double
mean(double sum, size_t n)
{
	return n ? sum / (double) n : 0.0;
}

/* The tally of ranker k over both directions. */
static struct tally
total(const struct run *r, int k)
{
	struct tally t = {0};
	for (int d = 0; d < D_COUNT; d++) {
		t.queries += r->t[d][k].queries;
		t.ndcg5 += r->t[d][k].ndcg5;
		t.ndcg10 += r->t[d][k].ndcg10;
		t.ap += r->t[d][k].ap;
		t.violations += r->t[d][k].violations;
	}
	return t;
}

/* NDCG@5 of the engine minus that of the better baseline, over all
 * queries. */
static double
margin(const struct run *r)
{
	struct tally e = total(r, R_ENGINE), b = total(r, R_BM25),
	             j = total(r, R_JACCARD);
	double best = mean(b.ndcg5, b.queries) > mean(j.ndcg5, j.queries)
	                  ? mean(b.ndcg5, b.queries)
	                  : mean(j.ndcg5, j.queries);
	return mean(e.ndcg5, e.queries) - best;
}

static json_t *
tally_json(const char *direction, int k, const struct tally *t)
{
	return json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:I}", "direction", direction,
	    "ranker", ranker_name[k], "queries", (json_int_t) t->queries, "ndcg5",
	    mean(t->ndcg5, t->queries), "ndcg10", mean(t->ndcg10, t->queries), "map",
	    mean(t->ap, t->queries), "violations", (json_int_t) t->violations);
}

static int
print_json(const struct run *r, const char *dir)
{
	json_t *res = json_array(), *o;
	struct tally e = total(r, R_ENGINE);
	int rv;

	for (int d = 0; d < D_COUNT; d++)
		for (int k = 0; k < R_COUNT; k++)
			json_array_append_new(
			    res, tally_json(direction_name[d], k, &r->t[d][k]));
	for (int k = 0; k < R_COUNT; k++) {
		struct tally t = total(r, k);
		json_array_append_new(res, tally_json("all", k, &t));
	}
	json_t *viol = json_array();
	for (size_t i = 0; i < r->nviol && viol != NULL; i++)
		json_array_append_new(
		    viol, json_pack("{s:s, s:s, s:s, s:I}", "direction",
		              direction_name[r->viol[i].direction], "candidate",
		              r->set->profiles[r->viol[i].profile]->id, "job",
		              r->set->postings[r->viol[i].posting]->id, "rank",
		              (json_int_t) r->viol[i].rank));
	const lm_cli_source *src = &r->src;
	bool one_seq = src->recorded > 0 && src->recorded == src->answers &&
	               src->seq_min == src->seq_max;
	o = json_pack("{s:o, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:I, s:{s:f, s:f, s:b}}",
	    "set", lm_cli_json_string(dir, strlen(dir)), "postings",
	    (json_int_t) r->set->npostings, "profiles", (json_int_t) r->set->nprofiles,
	    "judged_pairs", (json_int_t) r->set->njudged, "must_not_appear_pairs",
	    (json_int_t) r->set->nmust_not, "index_seq",
	    one_seq ? json_integer((json_int_t) src->seq_min) : json_null(), "results",
	    res, "violations", viol, "violations_not_listed",
	    (json_int_t) (e.violations - r->nviol), "target", "ndcg5_margin", margin(r),
	    "ndcg5_margin_min", 0.03, "met", margin(r) >= 0.03 && e.violations == 0);
	if (o != NULL && lm_cli_source_json(src, o) != 0) {
		json_decref(o);
		o = NULL;
	}
	if (o == NULL) {
		lm_cli_error(CMD, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}
	rv = LM_CLI_EXIT_OK;
	if (lm_cli_json_line(stdout, o) != 0) {
		lm_cli_error(CMD, "cannot write to standard output");
		rv = LM_CLI_EXIT_FAIL;
	}
	json_decref(o);
	return rv;
}

static void
print_table(const struct run *r, const char *dir)
{
	static const lm_cli_col cols[] = {{"DIRECTION", 11}, {"RANKER", 8},
	    {"QUERIES", 8}, {"NDCG@5", 7}, {"NDCG@10", 8}, {"MAP", 7}, {"VIOLATIONS", 0}};
	static const lm_cli_col vcols[] = {
	    {"DIRECTION", 11}, {"CANDIDATE", 24}, {"JOB", 24}, {"RANK", 0}};
	char q[32], a[32], b[32], c[32], v[32], src[LM_CLI_CELL_MAX + 256];
	struct tally e = total(r, R_ENGINE);

	lm_cli_source_text(&r->src, "answers", src, sizeof(src));
	printf("Evaluation set %s: %zu postings, %zu profiles, %zu judged pairs "
	       "(%zu must not appear); %s\n",
	    dir, r->set->npostings, r->set->nprofiles, r->set->njudged, r->set->nmust_not,
	    src);
	if (r->src.nmodels > 1)
		printf("WARNING: the engine's answers come from more than one model "
		       "version: this evaluation mixes models\n");
	lm_cli_table_header(stdout, cols, 7);
	for (int d = 0; d <= D_COUNT; d++)
		for (int k = 0; k < R_COUNT; k++) {
			struct tally t = d < D_COUNT ? r->t[d][k] : total(r, k);
			snprintf(q, sizeof(q), "%zu", t.queries);
			snprintf(a, sizeof(a), "%.4f", mean(t.ndcg5, t.queries));
			snprintf(b, sizeof(b), "%.4f", mean(t.ndcg10, t.queries));
			snprintf(c, sizeof(c), "%.4f", mean(t.ap, t.queries));
			snprintf(v, sizeof(v), "%zu", t.violations);
			const char *cells[] = {d < D_COUNT ? direction_name[d] : "all",
			    ranker_name[k], q, a, b, c, v};
			lm_cli_table_row(stdout, cols, 7, cells);
		}
	printf("Engine NDCG@5 minus the better baseline: %+.4f (target >= +0.03 with 0 "
	       "violations: %s)\n",
	    margin(r), margin(r) >= 0.03 && e.violations == 0 ? "met" : "not met");
	if (e.violations == 0)
		return;
	printf("\nEngine violations (must-not-appear pairs among the first %d "
	       "results):\n",
	    EVAL_VIOLATION_DEPTH);
	lm_cli_table_header(stdout, vcols, 4);
	for (size_t i = 0; i < r->nviol; i++) {
		snprintf(v, sizeof(v), "%zu", r->viol[i].rank);
		const char *cells[] = {direction_name[r->viol[i].direction],
		    r->set->profiles[r->viol[i].profile]->id,
		    r->set->postings[r->viol[i].posting]->id, v};
		lm_cli_table_row(stdout, vcols, 4, cells);
	}
	if (e.violations > r->nviol)
		printf("%zu more not listed\n", e.violations - r->nviol);
}

/* ---- the command ------------------------------------------------------------------ */

int
lm_cli_eval(const lm_config *cfg, int argc, char **argv)
{
	const char *dir = "data/eval", *taxonomy = "data/skills.tsv",
	           *rates = "data/rates.tsv",
	           *fairness = "data/fairness/requirements.tsv",
	           *gazetteer = "data/geo/cities.tsv";
	bool load = false;
	uint64_t v, seq = 0;
	uint32_t embedding_dim = 0; /* 0: not given (--embedding-dim) */
	unsigned wait_ms = EVAL_WAIT_DEFAULT;
	struct evalset *set = NULL;
	struct run r;
	int c, rv;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_eval_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_SET:
			dir = optarg;
			break;
		case OPT_LOAD:
			load = true;
			break;
		case OPT_TAXONOMY:
			taxonomy = optarg;
			break;
		case OPT_RATES:
			rates = optarg;
			break;
		case OPT_FAIRNESS:
			fairness = optarg;
			break;
		case OPT_GAZETTEER:
			gazetteer = optarg;
			break;
		case OPT_EMBEDDING_DIM:
			if (!lm_textfile_whole(optarg, 1, EVAL_EMBEDDING_DIM_MAX, &v))
				return lm_cli_usage_error(CMD,
				    "--embedding-dim: \"%s\" is not a number in 1..%d",
				    optarg, EVAL_EMBEDDING_DIM_MAX);
			embedding_dim = (uint32_t) v;
			break;
		case OPT_AS_OF:
			if (!lm_textfile_whole(optarg, 1, INT64_MAX, &v))
				return lm_cli_usage_error(CMD,
				    "--as-of: \"%s\" is not a Unix time in seconds",
				    optarg);
			r.as_of = (int64_t) v;
			break;
		case OPT_WAIT:
			if (!lm_textfile_whole(optarg, 0, EVAL_WAIT_MAX, &v))
				return lm_cli_usage_error(CMD,
				    "--wait-ms: \"%s\" is not a number in 0..%d", optarg,
				    EVAL_WAIT_MAX);
			wait_ms = (unsigned) v;
			break;
		case OPT_TIMEOUT:
			if (!lm_textfile_whole(optarg, 1, 600000, &v))
				return lm_cli_usage_error(CMD,
				    "--timeout-ms: \"%s\" is not a number in 1..600000",
				    optarg);
			r.timeout_ms = (unsigned) v;
			break;
		default:
			return lm_cli_usage_error(CMD, "bad option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return lm_cli_usage_error(
		    CMD, "unexpected argument \"%s\"", argv[optind]);
	/* The services' variable, read by --load alone and only without the
	 * flag: a bad value of it fails eval --load, no other command. */
	if (load && embedding_dim == 0) {
		const char *env = getenv("LUNAMATCH_EMBEDDING_DIM");
		embedding_dim = cfg->embedding_dim; /* the option's default */
		if (env != NULL && *env != '\0') {
			if (!lm_textfile_whole(env, 1, EVAL_EMBEDDING_DIM_MAX, &v))
				return lm_cli_usage_error(CMD,
				    "LUNAMATCH_EMBEDDING_DIM: \"%s\" is not a number in "
				    "1..%d",
				    env, EVAL_EMBEDDING_DIM_MAX);
			embedding_dim = (uint32_t) v;
		}
	}

	if ((set = calloc(1, sizeof(*set))) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}
	r.set = set;
	if ((rv = read_records(dir, "postings.jsonl",
	         &lunamatch__v1__job_posting__descriptor,
	         (ProtobufCMessage **) set->postings, &set->npostings)) != 0 ||
	    (rv = read_records(dir, "profiles.jsonl",
	         &lunamatch__v1__candidate_profile__descriptor,
	         (ProtobufCMessage **) set->profiles, &set->nprofiles)) != 0 ||
	    (rv = read_judgments(set, dir)) != 0)
		goto out;
	if (load && (rv = load_set(cfg, set, taxonomy, rates, fairness, gazetteer,
	                 embedding_dim, &seq)) != 0)
		goto out;
	if ((rv = lm_cli_client_open(CMD, cfg, &r.cl)) != 0)
		goto out;
	if (load && (rv = wait_index(&r, seq, wait_ms)) != 0)
		goto out;
	if ((rv = fetch_set(&r)) != 0)
		goto out;
	for (int d = 0; d < D_COUNT; d++)
		if ((rv = run_direction(&r, d)) != 0)
			goto out;
	if (r.src.nmodels > 1)
		lm_cli_error(CMD,
		    "warning: the engine's answers come from %zu model versions: this "
		    "evaluation mixes models",
		    r.src.nmodels);
	if (cfg->json) {
		rv = print_json(&r, dir);
	} else {
		print_table(&r, dir);
		rv = lm_cli_stdout_written(CMD);
	}
out:
	for (int d = 0; d < D_COUNT; d++)
		lm_bm25_free(r.bm25[d]);
	lm_client_close(r.cl);
	lm_cli_source_clear(&r.src);
	set_free(set);
	free(set);
	return rv;
}
