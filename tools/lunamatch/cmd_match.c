/*
 * cmd_match.c - the CLI commands that ask the match service, over nng with
 * the C client (lunamatch/client.h):
 *
 *   match jobs --candidate ID [--top K] [--explain none|summary|full]
 *              [--remote-only] [--country CC]...
 *   match candidates --job ID [--top K] [--explain ...] [--remote-only]
 *              [--country CC]...
 *   explain --candidate ID --job ID
 *   get posting|profile ID
 *   health
 *
 * Results are readable tables (or text blocks) by default; with --json the
 * service's response is printed as one JSON line (lm_json_encode). Exit
 * statuses: 0 ok; 1 the call failed (NOT_FOUND, INVALID_ARGUMENT, ...);
 * 2 usage error; 3 the service is unavailable (no connection, no answer,
 * UNAVAILABLE, RESOURCE_EXHAUSTED, or Check says NOT_SERVING).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lunamatch/client.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/rpc.h"
#include "lunamatch/textfile.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/rpc.pb-c.h"

/* Hard limits of the options. */
#define TOP_MAX       1000 /* as the service's top_k */
#define COUNTRIES_MAX 64   /* --country options of one call */
#define ERRMSG_MAX    1024

enum {
	OPT_CANDIDATE = 1,
	OPT_JOB,
	OPT_TOP,
	OPT_EXPLAIN,
	OPT_REMOTE_ONLY,
	OPT_COUNTRY,
	OPT_TIMEOUT,
};

const struct option lm_cli_match_options[] = {
    {"candidate", required_argument, NULL, OPT_CANDIDATE},
    {"job", required_argument, NULL, OPT_JOB},
    {"top", required_argument, NULL, OPT_TOP},
    {"explain", required_argument, NULL, OPT_EXPLAIN},
    {"remote-only", no_argument, NULL, OPT_REMOTE_ONLY},
    {"country", required_argument, NULL, OPT_COUNTRY},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

const struct option lm_cli_explain_options[] = {
    {"candidate", required_argument, NULL, OPT_CANDIDATE},
    {"job", required_argument, NULL, OPT_JOB},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

const struct option lm_cli_get_options[] = {
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

const struct option lm_cli_health_options[] = {
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

#define EXIT_CODES                                                                       \
	"Exit status: 0 ok, 1 the call failed (e.g. NOT_FOUND), 2 usage error,\n"        \
	"3 the service is unavailable.\n"

const char lm_cli_match_usage[] =
    "Usage: " LM_CLI_PROG " [global options] match jobs --candidate ID [options]\n"
    "       " LM_CLI_PROG " [global options] match candidates --job ID [options]\n"
    "\n"
    "Asks the match service (--url, LUNAMATCH_RPC_URL) for the best jobs for a\n"
    "stored candidate, or the best candidates for a stored job posting, best\n"
    "first, and prints rank, score, id, title and the explanation summary as a\n"
    "table (with --explain full, every match's full explanation follows), or\n"
    "the whole response as one JSON line with --json.\n"
    "\n"
    "Options:\n"
    "  --candidate ID        the candidate (match jobs)\n"
    "  --job ID              the job posting (match candidates)\n"
    "  --top K               results to return, 1..1000 (default 10)\n"
    "  --explain LEVEL       none, summary (default) or full\n"
    "  --remote-only         only remote postings / candidates who want remote\n"
    "  --country CC          only postings in / candidates preferring country CC\n"
    "                        (ISO 3166-1 alpha-2; repeat for several)\n"
    "  --timeout-ms N        deadline of the call (default --default-timeout-ms)\n"
    "\n" EXIT_CODES;

const char lm_cli_explain_usage[] =
    "Usage: " LM_CLI_PROG " [global options] explain --candidate ID --job ID\n"
    "\n"
    "Explains one candidate/job pair in full: eligibility and score, the vetoes\n"
    "that rule it out, the failed requirement groups, every feature's value,\n"
    "weight and contribution, matched and missing skills, and the changes that\n"
    "would raise the score. With --json, prints the response as one JSON line.\n"
    "A pair that is not eligible is still a successful answer (exit 0).\n"
    "\n"
    "Options:\n"
    "  --candidate ID   the candidate\n"
    "  --job ID         the job posting\n"
    "  --timeout-ms N   deadline of the call\n"
    "\n" EXIT_CODES;

const char lm_cli_get_usage[] =
    "Usage: " LM_CLI_PROG " [global options] get posting|profile ID\n"
    "\n"
    "Prints one record as the match service holds it (normalized), as pretty\n"
    "JSON, or as one compact JSON line with --json.\n"
    "\n"
    "Options:\n"
    "  --timeout-ms N   deadline of the call\n"
    "\n" EXIT_CODES;

const char lm_cli_health_usage[] =
    "Usage: " LM_CLI_PROG " [global options] health\n"
    "\n"
    "Calls Check on the match service and prints its serving status, the\n"
    "numbers of open postings and profiles in its index, the change-log\n"
    "position the index reflects and the model version (one JSON object with\n"
    "--json). Exit 0 when SERVING, 3 when NOT_SERVING (loading or draining)\n"
    "or unreachable.\n"
    "\n"
    "Options:\n"
    "  --timeout-ms N   deadline of the call\n"
    "\n" EXIT_CODES;

/* ---- shared --------------------------------------------------------------- */

/* Prints msg as JSON: one compact line, or pretty with LM_JSON_PRETTY in
 * flags. A non-finite float is written as a string, with a warning. */
static int
print_json(const char *cmd, const ProtobufCMessage *msg, unsigned flags)
{
	char *text = NULL;

	if (lm_cli_json_encode(cmd, "the answer", msg, flags, &text) != LM_OK)
		return LM_CLI_EXIT_FAIL;
	printf("%s\n", text);
	free(text);
	return lm_cli_stdout_written(cmd);
}

static bool
parse_timeout(const char *cmd, const char *s, unsigned *out, int *rv)
{
	uint64_t v;

	if (!lm_textfile_whole(s, 1, 600000, &v)) {
		*rv = lm_cli_usage_error(
		    cmd, "--timeout-ms: \"%s\" is not a number in 1..600000", s);
		return false;
	}
	*out = (unsigned) v;
	return true;
}

/* A cell: printable text of s, cut to the cell limit. */
static const char *
cell(char *buf, size_t len, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return "-";
	lm_cli_printable(buf, len, s, strlen(s));
	return buf;
}

/* ---- explanation text ----------------------------------------------------------- */

static void
print_skills(const char *title, Lunamatch__V1__SkillMatch **v, size_t n, bool years)
{
	static const lm_cli_col cols[] = {
	    {"SKILL", 32}, {"IMPORTANCE", 11}, {"YEARS", 0}};
	char name[LM_CLI_CELL_MAX], imp[32], yrs[32];

	if (n == 0)
		return;
	printf("%s:\n", title);
	lm_cli_table_header(stdout, cols, years ? 3 : 2);
	for (size_t i = 0; i < n; i++) {
		const Lunamatch__V1__SkillMatch *s = v[i];
		snprintf(imp, sizeof(imp), "%.2f", s->importance);
		snprintf(yrs, sizeof(yrs), "%.1f", (double) s->candidate_years);
		const char *cells[] = {
		    cell(name, sizeof(name), s->name[0] ? s->name : s->skill_id), imp,
		    yrs};
		lm_cli_table_row(stdout, cols, years ? 3 : 2, cells);
	}
}

/* Prints every part of an explanation, indented by the tables. */
static void
print_explanation(const Lunamatch__V1__Explanation *e)
{
	static const lm_cli_col fcols[] = {
	    {"FEATURE", 14}, {"VALUE", 7}, {"WEIGHT", 7}, {"CONTRIB", 8}, {"DETAIL", 0}};
	static const lm_cli_col vcols[] = {{"VETO", 18}, {"REASON", 0}};
	static const lm_cli_col icols[] = {{"GAIN", 7}, {"ACTION", 0}};
	char a[LM_CLI_CELL_MAX], b[LM_CLI_CELL_MAX], v1[32], v2[32], v3[32];

	if (e == NULL)
		return;
	if (e->summary[0] != '\0')
		printf("Summary: %s\n", cell(a, sizeof(a), e->summary));
	if (e->n_vetoes > 0) {
		printf("Vetoes:\n");
		lm_cli_table_header(stdout, vcols, 2);
		for (size_t i = 0; i < e->n_vetoes; i++) {
			const char *cells[] = {cell(a, sizeof(a), e->vetoes[i]->code),
			    cell(b, sizeof(b), e->vetoes[i]->reason)};
			lm_cli_table_row(stdout, vcols, 2, cells);
		}
	}
	if (e->n_failed_requirement_groups > 0) {
		printf("Failed requirement groups:\n");
		for (size_t i = 0; i < e->n_failed_requirement_groups; i++)
			printf("  - %s\n",
			    cell(a, sizeof(a), e->failed_requirement_groups[i]));
	}
	if (e->n_features > 0) {
		printf("Features:\n");
		lm_cli_table_header(stdout, fcols, 5);
		for (size_t i = 0; i < e->n_features; i++) {
			const Lunamatch__V1__FeatureContribution *f = e->features[i];
			lm_cli_score_text(v1, f->value);
			snprintf(v2, sizeof(v2), "%.2f", f->weight);
			lm_cli_score_text(v3, f->contribution);
			const char *cells[] = {cell(a, sizeof(a), f->feature), v1, v2, v3,
			    cell(b, sizeof(b), f->detail)};
			lm_cli_table_row(stdout, fcols, 5, cells);
		}
	}
	print_skills("Matched skills", e->matched_skills, e->n_matched_skills, true);
	print_skills("Missing skills", e->missing_skills, e->n_missing_skills, false);
	if (e->n_improvements > 0) {
		printf("Improvements:\n");
		lm_cli_table_header(stdout, icols, 2);
		for (size_t i = 0; i < e->n_improvements; i++) {
			/* Listed gains are positive: none reads as +0.000. */
			double g = e->improvements[i]->score_gain;
			if (g > 0 && g < 0.0005)
				snprintf(v1, sizeof(v1), "+<0.001");
			else
				snprintf(v1, sizeof(v1), "+%.3f", g);
			const char *cells[] = {
			    v1, cell(a, sizeof(a), e->improvements[i]->action)};
			lm_cli_table_row(stdout, icols, 2, cells);
		}
	}
}

/* ---- match ---------------------------------------------------------------------- */

static void
print_matches(Lunamatch__V1__Match **v, size_t n, bool jobs,
    Lunamatch__V1__ExplainLevel level, uint64_t considered, uint64_t vetoed,
    const char *model, uint64_t seq)
{
	static const lm_cli_col jcols[] = {{"RANK", 5}, {"SCORE", 6}, {"JOB", 30},
	    {"TITLE", 40}, {"COMPANY", 28}, {"SUMMARY", 0}};
	static const lm_cli_col ccols[] = {{"RANK", 5}, {"SCORE", 6}, {"CANDIDATE", 30},
	    {"HEADLINE", 50}, {"SUMMARY", 0}};
	const lm_cli_col *cols = jobs ? jcols : ccols;
	size_t ncols = jobs ? 6 : 5;
	char rank[16], score[16], id[LM_CLI_CELL_MAX], title[LM_CLI_CELL_MAX],
	    company[LM_CLI_CELL_MAX], summary[LM_CLI_CELL_MAX];

	lm_cli_table_header(stdout, cols, ncols);
	for (size_t i = 0; i < n; i++) {
		const Lunamatch__V1__Match *m = v[i];
		snprintf(rank, sizeof(rank), "%" PRIu32, m->rank);
		lm_cli_score_text(score, m->score);
		cell(id, sizeof(id), jobs ? m->job_id : m->candidate_id);
		const char *sum = cell(summary, sizeof(summary),
		    m->explanation != NULL ? m->explanation->summary : NULL);
		if (jobs) {
			const char *cells[] = {rank, score, id,
			    cell(title, sizeof(title), m->title),
			    cell(company, sizeof(company), m->company), sum};
			lm_cli_table_row(stdout, cols, ncols, cells);
		} else {
			const char *cells[] = {
			    rank, score, id, cell(title, sizeof(title), m->title), sum};
			lm_cli_table_row(stdout, cols, ncols, cells);
		}
	}
	printf("%zu shown; %" PRIu64 " considered, %" PRIu64
	       " vetoed; model %s, index seq %" PRIu64 "\n",
	    n, considered, vetoed, cell(id, sizeof(id), model), seq);
	if (level == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL) {
		for (size_t i = 0; i < n; i++) {
			printf("\n#%" PRIu32 " %s / %s (score %s)\n", v[i]->rank,
			    cell(id, sizeof(id), v[i]->candidate_id),
			    cell(title, sizeof(title), v[i]->job_id),
			    lm_cli_score_text(score, v[i]->score));
			print_explanation(v[i]->explanation);
		}
	}
}

bool
lm_cli_parse_explain(const char *s, Lunamatch__V1__ExplainLevel *out)
{
	if (strcmp(s, "none") == 0)
		*out = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
	else if (strcmp(s, "summary") == 0)
		*out = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
	else if (strcmp(s, "full") == 0)
		*out = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	else
		return false;
	return true;
}

/* Two ASCII letters, upper-cased into out. */
static bool
parse_country(const char *s, char out[3])
{
	if (strlen(s) != 2)
		return false;
	for (int i = 0; i < 2; i++) {
		char c = s[i];
		if (c >= 'a' && c <= 'z')
			c = (char) (c - 'a' + 'A');
		if (c < 'A' || c > 'Z')
			return false;
		out[i] = c;
	}
	out[2] = '\0';
	return true;
}

int
lm_cli_match(const lm_config *cfg, int argc, char **argv)
{
	const char *cmd = "match";
	const char *candidate = NULL, *job = NULL;
	uint64_t top = 0;
	Lunamatch__V1__ExplainLevel level =
	    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
	bool remote_only = false;
	char countries[COUNTRIES_MAX][3];
	char *country_ptrs[COUNTRIES_MAX];
	size_t ncountries = 0;
	unsigned timeout_ms = 0;
	char errmsg[ERRMSG_MAX] = "";
	lm_client *cl = NULL;
	int c, rv, status = 0, rc;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_match_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_CANDIDATE:
			candidate = optarg;
			break;
		case OPT_JOB:
			job = optarg;
			break;
		case OPT_TOP:
			if (!lm_textfile_whole(optarg, 1, TOP_MAX, &top))
				return lm_cli_usage_error(cmd,
				    "--top: \"%s\" is not a number in 1..%d", optarg,
				    TOP_MAX);
			break;
		case OPT_EXPLAIN:
			if (!lm_cli_parse_explain(optarg, &level))
				return lm_cli_usage_error(cmd,
				    "--explain: \"%s\" is not none, summary or full",
				    optarg);
			break;
		case OPT_REMOTE_ONLY:
			remote_only = true;
			break;
		case OPT_COUNTRY:
			if (ncountries == COUNTRIES_MAX)
				return lm_cli_usage_error(
				    cmd, "--country: at most %d", COUNTRIES_MAX);
			if (!parse_country(optarg, countries[ncountries]))
				return lm_cli_usage_error(cmd,
				    "--country: \"%s\" is not a two-letter country code",
				    optarg);
			country_ptrs[ncountries] = countries[ncountries];
			ncountries++;
			break;
		case OPT_TIMEOUT:
			if (!parse_timeout(cmd, optarg, &timeout_ms, &rv))
				return rv;
			break;
		default:
			return lm_cli_usage_error(cmd, "bad option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return lm_cli_usage_error(cmd, "missing subcommand: jobs or candidates");
	if (argc > 1)
		return lm_cli_usage_error(cmd, "unexpected argument \"%s\"", argv[1]);
	bool jobs = strcmp(argv[0], "jobs") == 0;
	if (!jobs && strcmp(argv[0], "candidates") != 0)
		return lm_cli_usage_error(
		    cmd, "unknown subcommand \"%s\": jobs or candidates", argv[0]);
	if (jobs && (candidate == NULL || job != NULL))
		return lm_cli_usage_error(
		    cmd, "match jobs takes --candidate ID (and no --job)");
	if (!jobs && (job == NULL || candidate != NULL))
		return lm_cli_usage_error(
		    cmd, "match candidates takes --job ID (and no --candidate)");
	/* An id no record can have is the caller's error, not a call. */
	if ((rv = lm_cli_check_id(cmd, jobs ? "--candidate" : "--job",
	         jobs ? candidate : job)) != LM_CLI_EXIT_OK)
		return rv;

	if ((rv = lm_cli_client_open(cmd, cfg, &cl)) != LM_CLI_EXIT_OK)
		return rv;
	if (jobs) {
		Lunamatch__V1__MatchJobsRequest req =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__INIT;
		Lunamatch__V1__JobFilters f = LUNAMATCH__V1__JOB_FILTERS__INIT;
		Lunamatch__V1__MatchJobsResponse *resp = NULL;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = (char *) candidate;
		req.top_k = (uint32_t) top;
		req.explain = level;
		if (remote_only || ncountries > 0) {
			f.remote_only = remote_only;
			f.n_countries = ncountries;
			f.countries = country_ptrs;
			req.filters = &f;
		}
		rc = lm_client_match_jobs(
		    cl, &req, timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		rv = lm_cli_call_status(cmd, cfg, rc, status, errmsg);
		if (rv == LM_CLI_EXIT_OK) {
			if (cfg->json)
				rv = print_json(cmd, &resp->base, LM_JSON_EMIT_DEFAULTS);
			else
				print_matches(resp->matches, resp->n_matches, true, level,
				    resp->considered, resp->vetoed, resp->model_version,
				    resp->index_seq);
		}
		if (resp != NULL)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else {
		Lunamatch__V1__MatchCandidatesRequest req =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		Lunamatch__V1__CandidateFilters f =
		    LUNAMATCH__V1__CANDIDATE_FILTERS__INIT;
		Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = (char *) job;
		req.top_k = (uint32_t) top;
		req.explain = level;
		if (remote_only || ncountries > 0) {
			f.remote_only = remote_only;
			f.n_countries = ncountries;
			f.countries = country_ptrs;
			req.filters = &f;
		}
		rc = lm_client_match_candidates(
		    cl, &req, timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		rv = lm_cli_call_status(cmd, cfg, rc, status, errmsg);
		if (rv == LM_CLI_EXIT_OK) {
			if (cfg->json)
				rv = print_json(cmd, &resp->base, LM_JSON_EMIT_DEFAULTS);
			else
				print_matches(resp->matches, resp->n_matches, false,
				    level, resp->considered, resp->vetoed,
				    resp->model_version, resp->index_seq);
		}
		if (resp != NULL)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	lm_client_close(cl);
	if (rv == LM_CLI_EXIT_OK)
		rv = lm_cli_stdout_written(cmd);
	return rv;
}

/* ---- explain --------------------------------------------------------------------- */

int
lm_cli_explain(const lm_config *cfg, int argc, char **argv)
{
	const char *cmd = "explain";
	Lunamatch__V1__ExplainMatchRequest req =
	    LUNAMATCH__V1__EXPLAIN_MATCH_REQUEST__INIT;
	Lunamatch__V1__ExplainMatchResponse *resp = NULL;
	unsigned timeout_ms = 0;
	char errmsg[ERRMSG_MAX] = "", a[LM_CLI_CELL_MAX], b[LM_CLI_CELL_MAX];
	lm_client *cl = NULL;
	int c, rv, status = 0, rc;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_explain_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_CANDIDATE:
			req.candidate_id = optarg;
			break;
		case OPT_JOB:
			req.job_id = optarg;
			break;
		case OPT_TIMEOUT:
			if (!parse_timeout(cmd, optarg, &timeout_ms, &rv))
				return rv;
			break;
		default:
			return lm_cli_usage_error(cmd, "bad option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return lm_cli_usage_error(
		    cmd, "unexpected argument \"%s\"", argv[optind]);
	if (req.candidate_id == NULL || req.job_id == NULL)
		return lm_cli_usage_error(
		    cmd, "explain takes --candidate ID and --job ID");
	if ((rv = lm_cli_check_id(cmd, "--candidate", req.candidate_id)) !=
	        LM_CLI_EXIT_OK ||
	    (rv = lm_cli_check_id(cmd, "--job", req.job_id)) != LM_CLI_EXIT_OK)
		return rv;

	if ((rv = lm_cli_client_open(cmd, cfg, &cl)) != LM_CLI_EXIT_OK)
		return rv;
	rc = lm_client_explain_match(
	    cl, &req, timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
	rv = lm_cli_call_status(cmd, cfg, rc, status, errmsg);
	if (rv == LM_CLI_EXIT_OK) {
		if (cfg->json) {
			rv = print_json(cmd, &resp->base, LM_JSON_EMIT_DEFAULTS);
		} else {
			const Lunamatch__V1__Match *m = resp->match;
			char score[LM_CLI_SCORE_TEXT];
			printf("%s / %s: %s, score %s",
			    cell(a, sizeof(a), req.candidate_id),
			    cell(b, sizeof(b), req.job_id),
			    resp->eligible ? "eligible" : "NOT ELIGIBLE",
			    lm_cli_score_text(score, m ? m->score : 0.0));
			if (m != NULL && m->explanation != NULL &&
			    m->explanation->model_version[0])
				printf(" (model %s)",
				    cell(a, sizeof(a), m->explanation->model_version));
			printf("\n");
			if (m != NULL && m->title[0] != '\0')
				printf("Job: %s%s%s\n", cell(a, sizeof(a), m->title),
				    m->company[0] ? " at " : "",
				    m->company[0] ? cell(b, sizeof(b), m->company) : "");
			if (m != NULL)
				print_explanation(m->explanation);
			/* The posting's flagged requirements, for the reviewer. */
			for (size_t i = 0; i < resp->n_compliance_warnings; i++) {
				char line[8 * LM_CLI_CELL_MAX];
				lm_cli_warning_text(
				    line, sizeof(line), resp->compliance_warnings[i]);
				printf("%s\n", line);
			}
			rv = lm_cli_stdout_written(cmd);
		}
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	lm_client_close(cl);
	return rv;
}

/* ---- get --------------------------------------------------------------------------- */

int
lm_cli_get(const lm_config *cfg, int argc, char **argv)
{
	const char *cmd = "get";
	unsigned timeout_ms = 0;
	char errmsg[ERRMSG_MAX] = "";
	lm_client *cl = NULL;
	int c, rv, status = 0, rc;
	bool posting;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_get_options, first)) != -1;
	     first = false) {
		if (c != OPT_TIMEOUT)
			return lm_cli_usage_error(cmd, "bad option %s", argv[optind - 1]);
		if (!parse_timeout(cmd, optarg, &timeout_ms, &rv))
			return rv;
	}
	argc -= optind;
	argv += optind;
	if (argc != 2)
		return lm_cli_usage_error(cmd, "usage: get posting|profile ID");
	if (strcmp(argv[0], "posting") == 0)
		posting = true;
	else if (strcmp(argv[0], "profile") == 0)
		posting = false;
	else
		return lm_cli_usage_error(
		    cmd, "\"%s\" is not posting or profile", argv[0]);
	if ((rv = lm_cli_check_id(cmd, argv[0], argv[1])) != LM_CLI_EXIT_OK)
		return rv;

	if ((rv = lm_cli_client_open(cmd, cfg, &cl)) != LM_CLI_EXIT_OK)
		return rv;
	unsigned flags = cfg->json ? 0 : LM_JSON_PRETTY;
	if (posting) {
		Lunamatch__V1__GetPostingRequest req =
		    LUNAMATCH__V1__GET_POSTING_REQUEST__INIT;
		Lunamatch__V1__GetPostingResponse *resp = NULL;
		req.id = argv[1];
		rc = lm_client_get_posting(
		    cl, &req, timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		rv = lm_cli_call_status(cmd, cfg, rc, status, errmsg);
		if (rv == LM_CLI_EXIT_OK)
			rv = resp->posting != NULL
			         ? print_json(cmd, &resp->posting->base, flags)
			         : LM_CLI_EXIT_FAIL;
		if (rv == LM_CLI_EXIT_OK && !cfg->json)
			lm_cli_print_warnings(cmd, &resp->posting->base);
		if (resp != NULL)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else {
		Lunamatch__V1__GetProfileRequest req =
		    LUNAMATCH__V1__GET_PROFILE_REQUEST__INIT;
		Lunamatch__V1__GetProfileResponse *resp = NULL;
		req.id = argv[1];
		rc = lm_client_get_profile(
		    cl, &req, timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		rv = lm_cli_call_status(cmd, cfg, rc, status, errmsg);
		if (rv == LM_CLI_EXIT_OK)
			rv = resp->profile != NULL
			         ? print_json(cmd, &resp->profile->base, flags)
			         : LM_CLI_EXIT_FAIL;
		if (resp != NULL)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	lm_client_close(cl);
	return rv;
}

/* ---- health -------------------------------------------------------------------------
 */

static const char *
serving_name(int s)
{
	switch (s) {
	case LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING:
		return "SERVING";
	case LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
		return "NOT_SERVING";
	case LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN:
		return "SERVICE_UNKNOWN";
	default:
		return "UNKNOWN";
	}
}

int
lm_cli_health(const lm_config *cfg, int argc, char **argv)
{
	const char *cmd = "health";
	Lunamatch__V1__HealthCheckRequest req = LUNAMATCH__V1__HEALTH_CHECK_REQUEST__INIT;
	Lunamatch__V1__HealthCheckResponse *resp = NULL;
	unsigned timeout_ms = 0;
	char errmsg[ERRMSG_MAX] = "", a[LM_CLI_CELL_MAX];
	lm_client *cl = NULL;
	int c, rv, status = 0, rc;

	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_health_options, first)) != -1;
	     first = false) {
		if (c != OPT_TIMEOUT)
			return lm_cli_usage_error(cmd, "bad option %s", argv[optind - 1]);
		if (!parse_timeout(cmd, optarg, &timeout_ms, &rv))
			return rv;
	}
	if (optind < argc)
		return lm_cli_usage_error(
		    cmd, "unexpected argument \"%s\"", argv[optind]);
	if ((rv = lm_cli_client_open(cmd, cfg, &cl)) != LM_CLI_EXIT_OK)
		return rv;
	req.service = LM_RPC_SERVICE;
	rc =
	    lm_client_check(cl, &req, timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
	rv = lm_cli_call_status(cmd, cfg, rc, status, errmsg);
	if (rv == LM_CLI_EXIT_OK) {
		if (cfg->json) {
			rv = print_json(cmd, &resp->base, LM_JSON_EMIT_DEFAULTS);
		} else {
			printf("%s  %s: %" PRIu64 " open postings, %" PRIu64
			       " profiles, index seq %" PRIu64 ", model %s\n",
			    serving_name(resp->status), cfg->rpc_url, resp->postings,
			    resp->profiles, resp->index_seq,
			    cell(a, sizeof(a), resp->model_version));
			rv = lm_cli_stdout_written(cmd);
		}
		if (rv == LM_CLI_EXIT_OK &&
		    resp->status !=
		        LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
			rv =
			    resp->status ==
			            LUNAMATCH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
			        ? LM_CLI_EXIT_UNAVAILABLE
			        : LM_CLI_EXIT_FAIL;
	}
	if (resp != NULL)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	lm_client_close(cl);
	return rv;
}
