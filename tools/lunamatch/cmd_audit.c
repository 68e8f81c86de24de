/*
 * cmd_audit.c - `lunamatch audit`: a bias audit of the candidates the
 * engine ranks for a set of postings, by self-reported demographic
 * category.
 *
 *   audit --demographics FILE (--rankings FILE | --jobs FILE | --job ID...)
 *         [--top K] [--above-median] [--report FILE.md] [--chart FILE.png]
 *         [--save-rankings FILE] [--as-of T] [--timeout-ms N]
 *
 * The demographics file is kept outside the engine: ingest and match never
 * read it, the schema has no field for it, and this command reads it only
 * to count. It is CSV with a header row: the candidate id, then one column
 * per dimension (for example sex, race_ethnicity); an empty value or
 * "unknown" is the unknown category. Every candidate listed is considered
 * for every posting audited; ranked candidates missing from the file are
 * skipped (and counted).
 *
 * The rankings come from the match service (MatchCandidates for each posting
 * of --jobs or --job, up to 1000 candidates each; --save-rankings keeps them)
 * or from a rankings file: {"rankings": [{"job": ID, "candidates": [{"id":
 * ID, "score": S}, ...best first]}, ...]} (the scores may be left out
 * unless --above-median selects by them). The service's rankings are asked
 * for at --as-of (Unix seconds; default the service's clock); each ranking
 * keeps the model_version, index_seq and as_of of its answer, which
 * --save-rankings writes as keys of the ranking and a rankings file may
 * carry, so that the output can say what was audited: one model version, or
 * a warning that the rankings mix models. A candidate is selected for a
 * posting when it is among the first K ranked (--top, default 10), or, with
 * --above-median, when its score is above the median score of everyone
 * considered (those not ranked score 0), as Local Law 144 defines a scoring
 * rate.
 *
 * Reported per dimension and for the intersection of all dimensions:
 * selection rates, impact ratios against the most-selected category, the
 * four-fifths flag, categories under 2 % excluded, skew@K and NDKL@K
 * (fairness.h). Output: a table (or one JSON object with --json), and
 * optionally a Markdown report and a PNG chart of the impact ratios (its
 * first LM_CHART_ROWS_MAX rows; a note says when rows are left out).
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chart.h"
#include "cli.h"
#include "fairness.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/record.h"
#include "lunamatch/textfile.h"
#include "source.h"

#define CMD "audit"

/* Hard limits. */
#define AUDIT_FILE_MAX   (64u << 20) /* bytes of an input file */
#define AUDIT_PEOPLE_MAX 200000      /* candidates in the demographics file */
#define AUDIT_DIMS_MAX   4           /* demographic columns */
/* Categories of one dimension (more is an error) or of the intersection
 * (more leaves the intersection out). */
#define AUDIT_CATS_MAX  256
#define AUDIT_VALUE_MAX 64 /* bytes of one category name */
/* Bytes of a table's or a category's name: every dimension's, joined. */
#define AUDIT_NAME_MAX     (AUDIT_VALUE_MAX * AUDIT_DIMS_MAX + 3 * (AUDIT_DIMS_MAX - 1))
#define AUDIT_POSTINGS_MAX 10000 /* postings audited */
#define AUDIT_RANKED_MAX   1000  /* candidates ranked per posting (top_k) */
#define AUDIT_TOP_DEFAULT  10
/* Memory jansson may take to parse one input file, or one line of the
 * postings file (counted as lm_json_loadb_capped counts it). A parsed value
 * takes tens of bytes: rankings as --save-rankings writes them take about
 * 15 times their size, the most compact about 30 times, a file of empty
 * arrays 50 times (3 GB at AUDIT_FILE_MAX). */
#define AUDIT_PARSE_MEM_MAX ((size_t) 1 << 30)
#define ERRMSG_MAX          1024

#define UNKNOWN "unknown"

enum {
	OPT_DEMOGRAPHICS = 1,
	OPT_RANKINGS,
	OPT_JOBS,
	OPT_JOB,
	OPT_TOP,
	OPT_MEDIAN,
	OPT_REPORT,
	OPT_CHART,
	OPT_SAVE,
	OPT_TIMEOUT,
	OPT_AS_OF,
};

const struct option lm_cli_audit_options[] = {
    {"demographics", required_argument, NULL, OPT_DEMOGRAPHICS},
    {"rankings", required_argument, NULL, OPT_RANKINGS},
    {"jobs", required_argument, NULL, OPT_JOBS},
    {"job", required_argument, NULL, OPT_JOB},
    {"top", required_argument, NULL, OPT_TOP},
    {"above-median", no_argument, NULL, OPT_MEDIAN},
    {"report", required_argument, NULL, OPT_REPORT},
    {"chart", required_argument, NULL, OPT_CHART},
    {"save-rankings", required_argument, NULL, OPT_SAVE},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"as-of", required_argument, NULL, OPT_AS_OF},
    {NULL, 0, NULL, 0},
};

const char lm_cli_audit_usage[] =
    "Usage: " LM_CLI_PROG " [global options] audit --demographics FILE\n"
    "           (--rankings FILE | --jobs FILE | --job ID...) [options]\n"
    "\n"
    "Bias audit of the candidates the engine ranks for a set of postings.\n"
    "Reports, per demographic dimension and for their intersection, selection\n"
    "rates, impact ratios against the most-selected category, the four-fifths\n"
    "flag (impact ratio under 0.8), categories under 2 % excluded, and the\n"
    "ranking-exposure measures skew@K and NDKL@K. Prints a table (one JSON\n"
    "object with --json) and writes a Markdown report and a PNG chart on\n"
    "request.\n"
    "\n"
    "The demographics file is CSV with a header: candidate id, then one column\n"
    "per dimension of self-reported categories (empty or \"unknown\" = not\n"
    "reported). It is kept outside the engine: ingest and match never read it.\n"
    "\n"
    "Options:\n"
    "  --demographics FILE   candidate id -> categories (CSV), required\n"
    "  --rankings FILE       rankings as JSON: {\"rankings\": [{\"job\": ID,\n"
    "                        \"candidates\": [{\"id\": ID, \"score\": S}, ...]}]}\n"
    "  --jobs FILE           ask the match service (--url) for the candidates\n"
    "                        of every posting in FILE (JSON lines with \"id\")\n"
    "  --job ID              ask the match service for one posting (repeatable)\n"
    "  --top K               selected: the first K ranked (default 10); also\n"
    "                        the depth of skew@K and NDKL@K\n"
    "  --above-median        selected: score above the median of everyone\n"
    "                        considered (unranked candidates score 0); --top\n"
    "                        then sets only the depth of skew@K and NDKL@K\n"
    "  --report FILE         write the Markdown report\n"
    "  --chart FILE          write the PNG chart of the impact ratios\n"
    "  --save-rankings FILE  write the rankings read from the service as JSON\n"
    "  --as-of T             ask the service for the rankings at Unix time T\n"
    "                        (default: the service's clock), e.g. the as_of an\n"
    "                        earlier audit reports, to repeat it\n"
    "  --timeout-ms N        deadline of each call\n"
    "\n"
    "The output names the model version, index sequence and as_of of the\n"
    "rankings, and warns when they come from more than one model version.\n"
    "\n"
    "Exit status: 0 the audit ran (flagged or not; see the output), 1 it failed,\n"
    "2 usage error, 3 the service is unavailable.\n";

/* One candidate of the demographics file. */
struct person {
	char *id;
	uint16_t cat[AUDIT_DIMS_MAX + 1]; /* per dimension, then the intersection */
};

/* The categories of one dimension (or of the intersection) and their
 * tallies. */
struct view {
	char name[AUDIT_NAME_MAX];
	char *cats[AUDIT_CATS_MAX];
	/* Of the intersection: the categories each of its own combines, per
	 * dimension. Names cannot tell combinations apart ("x & y" + "z" and
	 * "x" + "y & z"). */
	uint16_t keys[AUDIT_CATS_MAX][AUDIT_DIMS_MAX];
	lm_fair_group g[AUDIT_CATS_MAX];
	size_t ncats;
	double q[AUDIT_CATS_MAX]; /* share of the population */
	double ndkl_sum;
	size_t flagged;
};

/* One ranking: candidate ids best first, with scores, and what computed
 * it. */
struct ranking {
	char *job;
	char **ids;
	double *scores;
	size_t n;
	char *model; /* model_version of the answer; NULL: not recorded */
	uint64_t index_seq;
	int64_t as_of;
};

struct audit {
	struct person *people;
	size_t npeople;
	size_t ndims;
	struct view views[AUDIT_DIMS_MAX + 1];
	size_t nviews;
	bool no_intersection; /* its categories exceed AUDIT_CATS_MAX: left out */
	struct ranking *rankings;
	size_t nrankings;
	lm_cli_source src; /* what computed the rankings, over all of them */
	/* Per run. */
	size_t top;
	bool median;
	size_t skipped; /* ranked candidates without demographics */
	size_t placed;  /* rankings with someone of the population in the first K */
	double *score;  /* per person, this posting */
	double *tmp;
	bool *sel;
	size_t *cat;
	uint64_t *counts;
};

/* ---- demographics ----------------------------------------------------------- */

/* The index of category name in v, added when new; with key (nkey
 * entries), the category of the intersection that combines key, named name
 * when new. Returns 0; 1 when v holds AUDIT_CATS_MAX categories already,
 * none of them the one sought; -1 after printing an error. */
static int
intern(struct view *v, const char *name, bool unknown, const uint16_t *key, size_t nkey,
    uint16_t *out)
{
	for (size_t i = 0; i < v->ncats; i++)
		if (key != NULL ? !v->g[i].unknown &&
		                      memcmp(v->keys[i], key, nkey * sizeof(*key)) == 0
		                : strcmp(v->cats[i], name) == 0) {
			*out = (uint16_t) i;
			return 0;
		}
	if (v->ncats == AUDIT_CATS_MAX)
		return 1;
	if ((v->cats[v->ncats] = strdup(name)) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return -1;
	}
	if (key != NULL)
		memcpy(v->keys[v->ncats], key, nkey * sizeof(*key));
	v->g[v->ncats].name = v->cats[v->ncats];
	v->g[v->ncats].unknown = unknown;
	*out = (uint16_t) v->ncats++;
	return 0;
}

/* Splits a CSV line in place at commas into at most max fields. Quoted
 * fields are not supported (a '"' is an error). Returns the field count or
 * -1. */
static int
split_csv(char *line, char **f, int max)
{
	int n = 0;

	if (strchr(line, '"') != NULL)
		return -1;
	for (char *p = line;;) {
		if (n == max)
			return -1;
		f[n++] = p;
		char *c = strchr(p, ',');
		if (c == NULL)
			break;
		*c = '\0';
		p = c + 1;
	}
	for (int i = 0; i < n; i++) {
		char *s = f[i], *e;
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			*--e = '\0';
		f[i] = s;
	}
	return n;
}

static bool
is_unknown(const char *v)
{
	return v[0] == '\0' || strcasecmp(v, UNKNOWN) == 0 ||
	       strcasecmp(v, "not reported") == 0;
}

static int
cmp_person(const void *a, const void *b)
{
	return strcmp(((const struct person *) a)->id, ((const struct person *) b)->id);
}

/* Reads one data row of the demographics file into a->people. */
static int
read_person(struct audit *a, const char *path, size_t no, char **f, int nf)
{
	struct person *p = &a->people[a->npeople];
	char inter[sizeof(a->views[0].name)] = "", idt[LM_CLI_ID_TEXT];
	bool any_unknown = false;

	if ((size_t) nf != a->ndims + 1) {
		lm_cli_error(CMD, "%s:%zu: %d fields, the header has %zu", path, no, nf,
		    a->ndims + 1);
		return -1;
	}
	if (!lm_record_id_valid(f[0])) {
		lm_cli_error(CMD, "%s:%zu: \"%s\" is not a candidate id", path, no,
		    lm_cli_id_text(idt, f[0]));
		return -1;
	}
	for (size_t d = 0; d < a->ndims; d++) {
		const char *v = f[d + 1];
		bool unknown = is_unknown(v);
		if (strlen(v) >= AUDIT_VALUE_MAX) {
			lm_cli_error(CMD, "%s:%zu: a category longer than %d bytes", path,
			    no, AUDIT_VALUE_MAX - 1);
			return -1;
		}
		int rc = intern(
		    &a->views[d], unknown ? UNKNOWN : v, unknown, NULL, 0, &p->cat[d]);
		if (rc > 0) {
			char name[AUDIT_NAME_MAX];
			lm_cli_printable(name, sizeof(name), a->views[d].name,
			    strlen(a->views[d].name));
			lm_cli_error(CMD, "%s:%zu: %s: more than %d categories", path, no,
			    name, AUDIT_CATS_MAX);
		}
		if (rc != 0)
			return -1;
		any_unknown |= unknown;
		size_t len = strlen(inter);
		snprintf(inter + len, sizeof(inter) - len, "%s%s", d ? " & " : "",
		    unknown ? UNKNOWN : v);
	}
	/* Too many categories in the intersection leave it out, not the
	 * dimensions. */
	if (a->ndims > 1 && !a->no_intersection) {
		int rc = intern(&a->views[a->ndims], any_unknown ? UNKNOWN : inter,
		    any_unknown, any_unknown ? NULL : p->cat, a->ndims,
		    &p->cat[a->ndims]);
		if (rc < 0)
			return -1;
		a->no_intersection = rc > 0;
	}
	if ((p->id = strdup(f[0])) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return -1;
	}
	a->npeople++;
	return 0;
}

static int
read_demographics(struct audit *a, const char *path)
{
	char *text = NULL, *line, *next, *f[AUDIT_DIMS_MAX + 1];
	size_t len, no = 0;
	int nf, rv = LM_CLI_EXIT_FAIL;

	if (lm_cli_read_file(CMD, path, AUDIT_FILE_MAX, &text, &len) != 0)
		return LM_CLI_EXIT_FAIL;
	if ((a->people = calloc(AUDIT_PEOPLE_MAX, sizeof(*a->people))) == NULL) {
		lm_cli_error(CMD, "out of memory");
		goto out;
	}
	for (line = text; line < text + len; line = next) {
		char *nl = memchr(line, '\n', (size_t) (text + len - line));
		next = nl ? nl + 1 : text + len;
		if (nl)
			*nl = '\0';
		no++;
		if (strspn(line, " \t\r") == strlen(line))
			continue;
		if ((nf = split_csv(line, f, AUDIT_DIMS_MAX + 1)) < 0) {
			lm_cli_error(CMD,
			    "%s:%zu: more than %d columns, or a quoted field", path, no,
			    AUDIT_DIMS_MAX + 1);
			goto out;
		}
		if (a->ndims == 0) {
			/* The header. */
			if (nf < 2) {
				lm_cli_error(CMD,
				    "%s:%zu: the header needs the id and at least one "
				    "dimension",
				    path, no);
				goto out;
			}
			a->ndims = (size_t) nf - 1;
			for (size_t d = 0; d < a->ndims; d++)
				snprintf(a->views[d].name, sizeof(a->views[d].name), "%s",
				    f[d + 1]);
			a->nviews = a->ndims;
			if (a->ndims > 1) {
				struct view *v = &a->views[a->ndims];
				char joined[sizeof(v->name)] = "";
				for (size_t d = 0; d < a->ndims; d++) {
					size_t l = strlen(joined);
					snprintf(joined + l, sizeof(joined) - l, "%s%s",
					    d ? " & " : "", a->views[d].name);
				}
				memcpy(v->name, joined, sizeof(joined));
				a->nviews++;
			}
			continue;
		}
		if (a->npeople == AUDIT_PEOPLE_MAX) {
			lm_cli_error(
			    CMD, "%s: more than %d candidates", path, AUDIT_PEOPLE_MAX);
			goto out;
		}
		if (read_person(a, path, no, f, nf) != 0)
			goto out;
	}
	if (a->npeople == 0) {
		lm_cli_error(CMD, "%s lists no candidates", path);
		goto out;
	}
	if (a->no_intersection) {
		char name[AUDIT_NAME_MAX];
		lm_cli_printable(name, sizeof(name), a->views[a->ndims].name,
		    strlen(a->views[a->ndims].name));
		a->nviews = a->ndims;
		lm_cli_error(CMD,
		    "note: %s: the intersection %s has more than %d categories and is "
		    "left out",
		    path, name, AUDIT_CATS_MAX);
	}
	qsort(a->people, a->npeople, sizeof(*a->people), cmp_person);
	for (size_t i = 1; i < a->npeople; i++)
		if (strcmp(a->people[i - 1].id, a->people[i].id) == 0) {
			lm_cli_error(
			    CMD, "%s: %s is listed twice", path, a->people[i].id);
			goto out;
		}
	rv = LM_CLI_EXIT_OK;
out:
	free(text);
	return rv;
}

static size_t
person_index(const struct audit *a, const char *id)
{
	struct person key = {(char *) id, {0}};
	const struct person *p =
	    bsearch(&key, a->people, a->npeople, sizeof(*a->people), cmp_person);
	return p ? (size_t) (p - a->people) : SIZE_MAX;
}

/* ---- rankings ------------------------------------------------------------------ */

/* Parses len bytes of text from path (line no of it; 0: the whole file)
 * within AUDIT_PARSE_MEM_MAX. Returns a new reference, or NULL after
 * reporting why. */
static json_t *
parse_json(const char *path, size_t no, const char *text, size_t len)
{
	json_error_t jerr;
	bool over = false;
	json_t *j = lm_json_loadb_capped(text, len, 0, AUDIT_PARSE_MEM_MAX, &jerr, &over);

	if (j != NULL)
		return j;
	if (!over)
		lm_cli_error(
		    CMD, "%s:%zu: %s", path, no ? no : (size_t) jerr.line, jerr.text);
	else if (no == 0)
		lm_cli_error(CMD,
		    "%s: parsing it would take more than %zu MiB of memory (too "
		    "many values)",
		    path, AUDIT_PARSE_MEM_MAX >> 20);
	else
		lm_cli_error(CMD,
		    "%s:%zu: parsing the line would take more than %zu MiB of "
		    "memory (too many values)",
		    path, no, AUDIT_PARSE_MEM_MAX >> 20);
	return NULL;
}

/* The first of ids[0..n) that an earlier one repeats, or NULL. */
static const char *
repeated(char *const *ids, size_t n)
{
	for (size_t i = 1; i < n; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(ids[k], ids[i]) == 0)
				return ids[i];
	return NULL;
}

/* Adds the ranking of posting job; a posting is audited once (twice would
 * count its candidates twice). */
static int
add_ranking(struct audit *a, const char *job, struct ranking **out)
{
	char idt[LM_CLI_ID_TEXT];

	for (size_t i = 0; i < a->nrankings; i++)
		if (strcmp(a->rankings[i].job, job) == 0) {
			lm_cli_error(
			    CMD, "posting %s is listed twice", lm_cli_id_text(idt, job));
			return -1;
		}
	if (a->nrankings == AUDIT_POSTINGS_MAX) {
		lm_cli_error(CMD, "more than %d postings", AUDIT_POSTINGS_MAX);
		return -1;
	}
	if (a->rankings == NULL &&
	    (a->rankings = calloc(AUDIT_POSTINGS_MAX, sizeof(*a->rankings))) == NULL)
		goto nomem;
	struct ranking *r = &a->rankings[a->nrankings];
	if ((r->job = strdup(job)) == NULL ||
	    (r->ids = calloc(AUDIT_RANKED_MAX, sizeof(*r->ids))) == NULL ||
	    (r->scores = calloc(AUDIT_RANKED_MAX, sizeof(*r->scores))) == NULL) {
		a->nrankings++; /* freed with the others */
		goto nomem;
	}
	a->nrankings++;
	*out = r;
	return 0;
nomem:
	lm_cli_error(CMD, "out of memory");
	return -1;
}

static int
add_ranked(struct ranking *r, const char *id, double score)
{
	char idt[LM_CLI_ID_TEXT];

	if (r->n == AUDIT_RANKED_MAX) {
		lm_cli_error(CMD, "%s: more than %d ranked candidates",
		    lm_cli_id_text(idt, r->job), AUDIT_RANKED_MAX);
		return -1;
	}
	if ((r->ids[r->n] = strdup(id)) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return -1;
	}
	r->scores[r->n++] = score;
	return 0;
}

/* Records what computed r, the last ranking of a: model (NULL or "" = not
 * recorded). */
static int
set_source(
    struct audit *a, struct ranking *r, const char *model, uint64_t seq, int64_t as_of)
{
	if (lm_cli_source_add(&a->src, model, seq, as_of) != LM_OK) {
		lm_cli_error(CMD, "out of memory");
		return -1;
	}
	if (model == NULL || model[0] == '\0')
		return 0;
	if ((r->model = strdup(model)) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return -1;
	}
	r->index_seq = seq;
	r->as_of = as_of;
	return 0;
}

static int
read_rankings(struct audit *a, const char *path)
{
	char *text = NULL;
	size_t len, i, k;
	json_error_t jerr;
	json_t *root = NULL, *list, *e, *c;
	int rv = LM_CLI_EXIT_FAIL;

	if (lm_cli_read_file(CMD, path, AUDIT_FILE_MAX, &text, &len) != 0)
		return LM_CLI_EXIT_FAIL;
	if ((root = parse_json(path, 0, text, len)) == NULL)
		goto out;
	if ((list = json_object_get(root, "rankings")) == NULL || !json_is_array(list)) {
		lm_cli_error(CMD, "%s: no \"rankings\" array", path);
		goto out;
	}
	json_array_foreach(list, i, e)
	{
		const char *job = NULL, *model = NULL;
		json_int_t seq = 0, as_of = 0;
		json_t *cands = NULL;
		struct ranking *r;
		if (json_unpack_ex(e, &jerr, 0, "{s:s, s:o, s?s, s?I, s?I}", "job", &job,
		        "candidates", &cands, "model_version", &model, "index_seq", &seq,
		        "as_of", &as_of) != 0 ||
		    !json_is_array(cands) || seq < 0) {
			lm_cli_error(CMD,
			    "%s: rankings[%zu]: needs \"job\" and a "
			    "\"candidates\" array (and may have \"model_version\", "
			    "\"index_seq\" and \"as_of\")",
			    path, i);
			goto out;
		}
		if (add_ranking(a, job, &r) != 0 ||
		    set_source(a, r, model, (uint64_t) seq, (int64_t) as_of) != 0)
			goto out;
		json_array_foreach(cands, k, c)
		{
			const char *id = NULL;
			double score = 0;
			if (json_unpack_ex(c, &jerr, 0, "{s:s, s?F}", "id", &id, "score",
			        &score) != 0) {
				lm_cli_error(CMD, "%s: rankings[%zu].candidates[%zu]: %s",
				    path, i, k, jerr.text);
				goto out;
			}
			/* Selection by score must not read a missing one as 0. */
			if (a->median && json_object_get(c, "score") == NULL) {
				lm_cli_error(CMD,
				    "%s: rankings[%zu].candidates[%zu]: no \"score\" "
				    "(--above-median selects by score)",
				    path, i, k);
				goto out;
			}
			if (add_ranked(r, id, score) != 0)
				goto out;
		}
	}
	rv = LM_CLI_EXIT_OK;
out:
	json_decref(root);
	free(text);
	return rv;
}

/* Reads the ids of the postings in a JSON-lines file. */
static int
read_job_ids(const char *path, char ***ids, size_t *n)
{
	char *text = NULL, *next;
	size_t len, no = 0;
	int rv = LM_CLI_EXIT_FAIL;

	if (lm_cli_read_file(CMD, path, AUDIT_FILE_MAX, &text, &len) != 0)
		return LM_CLI_EXIT_FAIL;
	for (char *line = text; line < text + len; line = next) {
		char *nl = memchr(line, '\n', (size_t) (text + len - line));
		json_error_t jerr;
		const char *id = NULL;
		next = nl ? nl + 1 : text + len;
		no++;
		if (strspn(line, " \t\r\n") >= (size_t) (next - line))
			continue;
		json_t *j = parse_json(path, no, line, (size_t) (next - line));
		if (j == NULL)
			goto out;
		if (json_unpack_ex(j, &jerr, 0, "{s:s}", "id", &id) != 0) {
			lm_cli_error(CMD, "%s:%zu: %s", path, no, jerr.text);
			json_decref(j);
			goto out;
		}
		if (*n == AUDIT_POSTINGS_MAX) {
			lm_cli_error(
			    CMD, "%s: more than %d postings", path, AUDIT_POSTINGS_MAX);
			json_decref(j);
			goto out;
		}
		(*ids)[(*n)++] = strdup(id);
		json_decref(j);
		if ((*ids)[*n - 1] == NULL) {
			lm_cli_error(CMD, "out of memory");
			goto out;
		}
	}
	rv = LM_CLI_EXIT_OK;
out:
	free(text);
	return rv;
}

/* Asks the service for the candidates of each posting in jobs[0..n). */
static int
fetch_rankings(struct audit *a, const lm_config *cfg, char **jobs, size_t n,
    unsigned timeout_ms, int64_t as_of)
{
	lm_client *cl = NULL;
	char errmsg[ERRMSG_MAX];
	int rv, status = 0;

	if ((rv = lm_cli_client_open(CMD, cfg, &cl)) != 0)
		return rv;
	for (size_t i = 0; i < n && rv == 0; i++) {
		Lunamatch__V1__MatchCandidatesRequest req =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__INIT;
		Lunamatch__V1__MatchCandidatesResponse *resp = NULL;
		struct ranking *r;
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = jobs[i];
		req.top_k = AUDIT_RANKED_MAX;
		req.as_of = as_of;
		req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE;
		int rc = lm_client_match_candidates(
		    cl, &req, timeout_ms, &resp, &status, errmsg, sizeof(errmsg));
		if ((rv = lm_cli_call_status(CMD, cfg, rc, status, errmsg)) != 0)
			break;
		if (add_ranking(a, jobs[i], &r) != 0 ||
		    set_source(a, r, resp->model_version, resp->index_seq, resp->as_of) !=
		        0)
			rv = LM_CLI_EXIT_FAIL;
		for (size_t k = 0; rv == 0 && k < resp->n_matches; k++)
			if (add_ranked(r, resp->matches[k]->candidate_id,
			        resp->matches[k]->score) != 0)
				rv = LM_CLI_EXIT_FAIL;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	lm_client_close(cl);
	return rv;
}

static int
save_rankings(const struct audit *a, const char *path)
{
	json_t *list = json_array(), *root = json_pack("{s:o}", "rankings", list);
	int rv = LM_CLI_EXIT_FAIL;

	if (root == NULL)
		goto nomem;
	for (size_t i = 0; i < a->nrankings; i++) {
		const struct ranking *r = &a->rankings[i];
		json_t *c = json_array(), *e;
		if (c == NULL ||
		    json_array_append_new(list,
		        e = json_pack("{s:s, s:o}", "job", r->job, "candidates", c)) != 0)
			goto nomem;
		if (r->model != NULL &&
		    (json_object_set_new(e, "model_version",
		         lm_cli_json_string(r->model, strlen(r->model))) != 0 ||
		        json_object_set_new(e, "index_seq",
		            json_integer((json_int_t) r->index_seq)) != 0 ||
		        json_object_set_new(e, "as_of", json_integer(r->as_of)) != 0))
			goto nomem;
		for (size_t k = 0; k < r->n; k++)
			if (json_array_append_new(
			        c, json_pack("{s:s, s:f}", "id", r->ids[k], "score",
			               r->scores[k])) != 0)
				goto nomem;
	}
	if (json_dump_file(root, path, JSON_COMPACT) != 0)
		lm_cli_error(CMD, "cannot write %s", path);
	else
		rv = LM_CLI_EXIT_OK;
	json_decref(root);
	return rv;
nomem:
	json_decref(root);
	lm_cli_error(CMD, "out of memory");
	return LM_CLI_EXIT_FAIL;
}

/* ---- counting ----------------------------------------------------------------- */

static int
cmp_double(const void *x, const void *y)
{
	double a = *(const double *) x, b = *(const double *) y;
	return (a > b) - (a < b);
}

/* Tallies one posting's ranking into every view. */
static void
tally(struct audit *a, const struct ranking *r)
{
	size_t nr = 0, depth = 0;
	size_t *ranked = a->cat; /* person indices of the ranking, in order */

	for (size_t i = 0; i < a->npeople; i++) {
		a->score[i] = 0;
		a->sel[i] = false;
	}
	for (size_t k = 0; k < r->n; k++) {
		size_t p = person_index(a, r->ids[k]);
		if (p == SIZE_MAX || a->sel[p]) {
			a->skipped += p == SIZE_MAX ? 1 : 0;
			continue;
		}
		a->sel[p] = true; /* marks "ranked" until selection below */
		a->score[p] = r->scores[k];
		ranked[nr++] = p;
		/* K counts the engine's places: a candidate skipped above still
		 * takes one. ranked[0..depth) are in the first K. */
		if (k < a->top)
			depth = nr;
	}
	if (a->median) {
		memcpy(a->tmp, a->score, a->npeople * sizeof(*a->tmp));
		qsort(a->tmp, a->npeople, sizeof(*a->tmp), cmp_double);
		double med =
		    a->npeople % 2
		        ? a->tmp[a->npeople / 2]
		        : (a->tmp[a->npeople / 2 - 1] + a->tmp[a->npeople / 2]) / 2;
		for (size_t i = 0; i < a->npeople; i++)
			a->sel[i] = a->score[i] > med;
	} else {
		for (size_t i = 0; i < a->npeople; i++)
			a->sel[i] = false;
		for (size_t k = 0; k < depth; k++)
			a->sel[ranked[k]] = true;
	}
	/* A ranking without anyone of the population in its first K has no
	 * distribution to compare: it is left out of NDKL's mean. */
	a->placed += depth > 0 ? 1 : 0;
	for (size_t vi = 0; vi < a->nviews; vi++) {
		struct view *v = &a->views[vi];
		size_t cats[AUDIT_RANKED_MAX];
		for (size_t i = 0; i < a->npeople; i++) {
			lm_fair_group *g = &v->g[a->people[i].cat[vi]];
			g->considered++;
			g->selected += a->sel[i] ? 1 : 0;
		}
		for (size_t k = 0; k < depth; k++) {
			cats[k] = a->people[ranked[k]].cat[vi];
			v->g[cats[k]].top++;
		}
		v->ndkl_sum += lm_fair_ndkl(cats, depth, v->q, v->ncats, a->counts);
	}
}

static int
run_audit(struct audit *a)
{
	if ((a->score = calloc(a->npeople, sizeof(*a->score))) == NULL ||
	    (a->tmp = calloc(a->npeople, sizeof(*a->tmp))) == NULL ||
	    (a->sel = calloc(a->npeople, sizeof(*a->sel))) == NULL ||
	    (a->cat = calloc(AUDIT_RANKED_MAX, sizeof(*a->cat))) == NULL ||
	    (a->counts = calloc(AUDIT_CATS_MAX, sizeof(*a->counts))) == NULL) {
		lm_cli_error(CMD, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}
	for (size_t vi = 0; vi < a->nviews; vi++) {
		struct view *v = &a->views[vi];
		for (size_t i = 0; i < a->npeople; i++)
			v->q[a->people[i].cat[vi]] += 1.0 / (double) a->npeople;
	}
	for (size_t i = 0; i < a->nrankings; i++)
		tally(a, &a->rankings[i]);
	for (size_t vi = 0; vi < a->nviews; vi++)
		a->views[vi].flagged = lm_fair_impact(a->views[vi].g, a->views[vi].ncats);
	return LM_CLI_EXIT_OK;
}

/* ---- output -------------------------------------------------------------------- */

static double
skew(const struct view *v, const lm_fair_group *g)
{
	uint64_t top = 0, considered = 0;
	for (size_t i = 0; i < v->ncats; i++) {
		top += v->g[i].top;
		considered += v->g[i].considered;
	}
	return lm_fair_skew(g->top, top, g->considered, considered);
}

static const char *
verdict(const lm_fair_group *g)
{
	if (g->unknown)
		return "excluded (not reported)";
	if (g->excluded)
		return "excluded (under 2 %)";
	if (isnan(g->impact))
		return "n/a (none selected)";
	return g->flagged ? "FLAGGED (under 4/5)" : "ok";
}

static size_t
flagged_total(const struct audit *a)
{
	size_t n = 0;
	for (size_t vi = 0; vi < a->nviews; vi++)
		n += a->views[vi].flagged;
	return n;
}

static void
selection_text(const struct audit *a, char *buf, size_t len)
{
	if (a->median)
		snprintf(buf, len, "score above the median");
	else
		snprintf(buf, len, "top %zu", a->top);
}

/* skew@K as text: "n/a" when undefined (fairness.h). */
static void
fmt_skew(char *buf, size_t len, double s)
{
	if (isnan(s))
		snprintf(buf, len, "n/a");
	else if (isinf(s))
		snprintf(buf, len, "-inf");
	else
		snprintf(buf, len, "%+.3f", s);
}

/* The mean NDKL@K of the rankings that place someone of the population in
 * their first K; NaN (undefined, not "proportional") when none does. */
static double
ndkl(const struct audit *a, const struct view *v)
{
	return a->placed ? v->ndkl_sum / (double) a->placed : NAN;
}

/* The impact ratio as text: "-" for an excluded category, "n/a" when
 * undefined (nobody of the categories compared selected; fairness.h). */
static void
fmt_impact(char *buf, size_t len, const lm_fair_group *g)
{
	if (g->excluded)
		snprintf(buf, len, "-");
	else if (isnan(g->impact))
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%.3f", g->impact);
}

/* NDKL@K as text: "n/a" when undefined. */
static void
fmt_ndkl(char *buf, size_t len, double d)
{
	if (isnan(d))
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%.4f", d);
}

static void
print_table(const struct audit *a)
{
	static const lm_cli_col cols[] = {{"CATEGORY", 34}, {"CONSIDERED", 11},
	    {"SELECTED", 9}, {"RATE", 7}, {"IMPACT", 7}, {"SKEW@K", 7}, {"VERDICT", 0}};
	char name[LM_CLI_CELL_MAX], c1[32], c2[32], c3[32], c4[32], c5[32], nd[32],
	    sel[64], src[LM_CLI_CELL_MAX + 256];

	selection_text(a, sel, sizeof(sel));
	printf("Audit of %zu postings, %zu candidates; selected: %s; K = %zu; %zu "
	       "ranked candidates without demographics skipped\n",
	    a->nrankings, a->npeople, sel, a->top, a->skipped);
	lm_cli_source_text(&a->src, "rankings", src, sizeof(src));
	printf("Rankings: %s\n", src);
	if (a->src.nmodels > 1)
		printf("WARNING: the rankings come from more than one model version: "
		       "this audit mixes models\n");
	for (size_t vi = 0; vi < a->nviews; vi++) {
		const struct view *v = &a->views[vi];
		lm_cli_printable(name, sizeof(name), v->name, strlen(v->name));
		fmt_ndkl(nd, sizeof(nd), ndkl(a, v));
		printf("\n%s (NDKL@%zu %s)\n", name, a->top, nd);
		lm_cli_table_header(stdout, cols, 7);
		for (size_t i = 0; i < v->ncats; i++) {
			const lm_fair_group *g = &v->g[i];
			lm_cli_printable(name, sizeof(name), g->name, strlen(g->name));
			snprintf(c1, sizeof(c1), "%" PRIu64, g->considered);
			snprintf(c2, sizeof(c2), "%" PRIu64, g->selected);
			snprintf(c3, sizeof(c3), "%.4f", g->rate);
			fmt_impact(c4, sizeof(c4), g);
			fmt_skew(c5, sizeof(c5), skew(v, g));
			const char *cells[] = {name, c1, c2, c3, c4, c5, verdict(g)};
			lm_cli_table_row(stdout, cols, 7, cells);
		}
	}
	printf("\n%zu categories flagged under the four-fifths rule\n", flagged_total(a));
}

/* skew@K as JSON: null when undefined, "-Infinity" (the proto3 JSON form)
 * when the category never reaches the first K. */
static json_t *
skew_json(double s)
{
	if (isnan(s))
		return json_null();
	return isinf(s) ? json_string("-Infinity") : json_real(s);
}

static int
print_json(const struct audit *a)
{
	json_t *views = json_array(), *o;
	char sel[64];
	int rv;

	selection_text(a, sel, sizeof(sel));
	for (size_t vi = 0; vi < a->nviews && views != NULL; vi++) {
		const struct view *v = &a->views[vi];
		json_t *cats = json_array();
		for (size_t i = 0; i < v->ncats && cats != NULL; i++) {
			const lm_fair_group *g = &v->g[i];
			double s = skew(v, g);
			/* Names come from the file: not always UTF-8, which
			 * json_pack refuses (s:s); replaced as the table does. */
			if (json_array_append_new(cats,
			        json_pack("{s:o, s:I, s:I, s:I, s:f, s:f, s:o, s:o, s:b, "
			                  "s:b, s:b}",
			            "name", lm_cli_json_string(g->name, strlen(g->name)),
			            "considered", (json_int_t) g->considered, "selected",
			            (json_int_t) g->selected, "top", (json_int_t) g->top,
			            "rate", g->rate, "share", g->share, "impact",
			            isnan(g->impact) ? json_null() : json_real(g->impact),
			            "skew", skew_json(s), "unknown", g->unknown,
			            "excluded", g->excluded, "flagged", g->flagged)) !=
			    0) {
				json_decref(cats);
				cats = NULL;
			}
		}
		if (cats == NULL ||
		    json_array_append_new(views,
		        json_pack("{s:o, s:o, s:I, s:o}", "name",
		            lm_cli_json_string(v->name, strlen(v->name)), "ndkl",
		            isnan(ndkl(a, v)) ? json_null() : json_real(ndkl(a, v)),
		            "flagged", (json_int_t) v->flagged, "categories", cats)) !=
		        0) {
			json_decref(views);
			views = NULL;
		}
	}
	o = json_pack("{s:I, s:I, s:s, s:I, s:I, s:b, s:I, s:o}", "postings",
	    (json_int_t) a->nrankings, "candidates", (json_int_t) a->npeople, "selection",
	    sel, "k", (json_int_t) a->top, "skipped_without_demographics",
	    (json_int_t) a->skipped, "flagged", flagged_total(a) > 0,
	    "flagged_categories", (json_int_t) flagged_total(a), "views", views);
	if (o != NULL && lm_cli_source_json(&a->src, o) != 0) {
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

/* Writes s into a Markdown table cell: printable, '|' escaped. */
static void
md_cell(FILE *f, const char *s)
{
	char buf[LM_CLI_CELL_MAX];

	lm_cli_printable(buf, sizeof(buf), s, strlen(s));
	for (const char *p = buf; *p; p++) {
		if (*p == '|')
			fputc('\\', f);
		fputc(*p, f);
	}
}

/* The report's lines on what computed the rankings. */
static void
write_source(FILE *f, const struct audit *a)
{
	const lm_cli_source *s = &a->src;
	char t[64] = "";
	struct tm tm;
	time_t at = (time_t) s->as_of_min;

	if (s->recorded == 0) {
		fprintf(f, "- Model version, index sequence, as of: not recorded\n");
		return;
	}
	if (s->nmodels > 1) {
		fprintf(
		    f, "- Model versions: %zu: **the rankings mix models**:", s->nmodels);
		for (size_t i = 0; i < s->nmodels; i++) {
			fprintf(f, " ");
			md_cell(f, s->models[i]);
		}
		fprintf(f, "\n");
	} else {
		fprintf(f, "- Model version: ");
		md_cell(f, s->models[0]);
		fprintf(f, "\n");
	}
	if (s->seq_min == s->seq_max)
		fprintf(f, "- Index sequence: %" PRIu64 "\n", s->seq_min);
	else
		fprintf(f, "- Index sequence: %" PRIu64 " to %" PRIu64 "\n", s->seq_min,
		    s->seq_max);
	if (gmtime_r(&at, &tm) != NULL)
		strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (s->as_of_min == s->as_of_max)
		fprintf(f, "- As of: %" PRId64 " (%s)\n", s->as_of_min, t);
	else
		fprintf(f, "- As of: %" PRId64 " (%s) to %" PRId64 "\n", s->as_of_min, t,
		    s->as_of_max);
	if (s->recorded < a->nrankings)
		fprintf(f, "- Rankings without a recorded model version: %zu\n",
		    a->nrankings - s->recorded);
}

static int
write_report(const struct audit *a, const char *path, const char *chart)
{
	FILE *f = fopen(path, "w");
	char sel[64], sk[32], nd[32], im[32];

	if (f == NULL) {
		lm_cli_error(CMD, "cannot create %s", path);
		return LM_CLI_EXIT_FAIL;
	}
	selection_text(a, sel, sizeof(sel));
	fprintf(f,
	    "# Bias audit\n\n"
	    "- Postings audited: %zu\n"
	    "- Candidates considered per posting: %zu (everyone in the demographics "
	    "file)\n"
	    "- Selected: %s\n"
	    "- Ranked candidates without demographics, skipped: %zu\n"
	    "- Categories flagged under the four-fifths rule: %zu\n",
	    a->nrankings, a->npeople, sel, a->skipped, flagged_total(a));
	write_source(f, a);
	fprintf(f,
	    "\n"
	    "The selection rate of a category is the share of its candidate/posting "
	    "pairs that were selected. The impact ratio divides it by the highest "
	    "rate among the categories that are not excluded; under %.2f the "
	    "category is flagged. Categories holding under %.0f %% of the pairs, and "
	    "candidates who did not report a category, are excluded from the ratios "
	    "and still listed. skew@%zu is ln(share of the first %zu places / share "
	    "of the candidates); NDKL@%zu is the normalized discounted KL divergence "
	    "of the first %zu places from the candidates' distribution (0 = "
	    "proportional), averaged over the postings that place someone of the "
	    "candidates there.\n",
	    LM_FAIR_FOUR_FIFTHS, LM_FAIR_MIN_SHARE * 100, a->top, a->top, a->top, a->top);
	if (a->no_intersection) {
		fprintf(f, "\nThe intersection ");
		md_cell(f, a->views[a->ndims].name);
		fprintf(
		    f, " has more than %d categories and is left out.\n", AUDIT_CATS_MAX);
	}
	for (size_t vi = 0; vi < a->nviews; vi++) {
		const struct view *v = &a->views[vi];
		fprintf(f, "\n## ");
		md_cell(f, v->name);
		fmt_ndkl(nd, sizeof(nd), ndkl(a, v));
		fprintf(f,
		    "\n\nNDKL@%zu: %s\n\n"
		    "| Category | Considered | Selected | Selection rate | Impact ratio "
		    "| skew@%zu | Verdict |\n"
		    "|---|---:|---:|---:|---:|---:|---|\n",
		    a->top, nd, a->top);
		for (size_t i = 0; i < v->ncats; i++) {
			const lm_fair_group *g = &v->g[i];
			fmt_skew(sk, sizeof(sk), skew(v, g));
			fprintf(f, "| ");
			md_cell(f, g->name);
			fprintf(f, " | %" PRIu64 " | %" PRIu64 " | %.4f | ",
			    g->considered, g->selected, g->rate);
			fmt_impact(im, sizeof(im), g);
			fprintf(f, "%s | %s | %s |\n", im, sk, verdict(g));
		}
	}
	if (chart != NULL)
		fprintf(f,
		    "\n## Chart\n\n![Impact ratios](%s)\n\n"
		    "The impact ratio of every category, table by table: green passes, "
		    "red is flagged, grey is excluded (drawn at full length, no ratio) "
		    "or "
		    "undefined, nobody being selected (drawn at full length, n/a); "
		    "the blue line marks %.2f.\n",
		    chart, LM_FAIR_FOUR_FIFTHS);
	if (fclose(f) != 0) {
		lm_cli_error(CMD, "cannot write %s", path);
		return LM_CLI_EXIT_FAIL;
	}
	return LM_CLI_EXIT_OK;
}

static int
write_chart(const struct audit *a, const char *path)
{
	lm_chart_row rows[LM_CHART_ROWS_MAX];
	size_t n = 0, wanted = 0;
	char err[512];

	for (size_t vi = 0; vi < a->nviews; vi++) {
		const struct view *v = &a->views[vi];
		wanted += 1 + v->ncats;
		if (n < LM_CHART_ROWS_MAX)
			rows[n++] = (lm_chart_row){v->name, 0, LM_CHART_TITLE};
		for (size_t i = 0; i < v->ncats && n < LM_CHART_ROWS_MAX; i++)
			rows[n++] = (lm_chart_row){v->g[i].name, v->g[i].impact,
			    v->g[i].excluded        ? LM_CHART_EXCLUDED
			    : isnan(v->g[i].impact) ? LM_CHART_UNDEFINED
			    : v->g[i].flagged       ? LM_CHART_FLAGGED
			                            : LM_CHART_PASS};
	}
	if (wanted > n)
		lm_cli_error(CMD,
		    "note: %s shows the first %zu of %zu rows (titles and categories); "
		    "the tables hold them all",
		    path, n, wanted);
	if (lm_chart_write(path, rows, n, LM_FAIR_FOUR_FIFTHS, err, sizeof(err)) !=
	    LM_OK) {
		lm_cli_error(CMD, "%s", err);
		return LM_CLI_EXIT_FAIL;
	}
	return LM_CLI_EXIT_OK;
}

static void
audit_free(struct audit *a)
{
	for (size_t i = 0; i < a->npeople; i++)
		free(a->people[i].id);
	free(a->people);
	for (size_t vi = 0; vi < AUDIT_DIMS_MAX + 1; vi++)
		for (size_t i = 0; i < a->views[vi].ncats; i++)
			free(a->views[vi].cats[i]);
	for (size_t i = 0; i < a->nrankings; i++) {
		struct ranking *r = &a->rankings[i];
		for (size_t k = 0; k < r->n; k++)
			free(r->ids[k]);
		free(r->ids);
		free(r->scores);
		free(r->job);
		free(r->model);
	}
	free(a->rankings);
	lm_cli_source_clear(&a->src);
	free(a->score);
	free(a->tmp);
	free(a->sel);
	free(a->cat);
	free(a->counts);
	free(a);
}

int
lm_cli_audit(const lm_config *cfg, int argc, char **argv)
{
	const char *demographics = NULL, *rankings = NULL, *jobs_file = NULL,
	           *report = NULL, *chart = NULL, *save = NULL;
	char **jobs = NULL;
	size_t njobs = 0;
	unsigned timeout_ms = 0;
	uint64_t v;
	int64_t as_of = 0;
	struct audit *a = NULL;
	int c, rv = LM_CLI_EXIT_FAIL;

	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (jobs = calloc(AUDIT_POSTINGS_MAX, sizeof(*jobs))) == NULL) {
		lm_cli_error(CMD, "out of memory");
		goto out;
	}
	a->top = AUDIT_TOP_DEFAULT;
	for (bool first = true;
	     (c = lm_cli_getopt(argc, argv, "", lm_cli_audit_options, first)) != -1;
	     first = false) {
		switch (c) {
		case OPT_DEMOGRAPHICS:
			demographics = optarg;
			break;
		case OPT_RANKINGS:
			rankings = optarg;
			break;
		case OPT_JOBS:
			jobs_file = optarg;
			break;
		case OPT_JOB:
			/* rv stays at its failure value for the paths below. */
			if (lm_cli_check_id(CMD, "--job", optarg) != LM_CLI_EXIT_OK) {
				rv = LM_CLI_EXIT_USAGE;
				goto out;
			}
			if (njobs == AUDIT_POSTINGS_MAX) {
				rv = lm_cli_usage_error(
				    CMD, "--job: at most %d", AUDIT_POSTINGS_MAX);
				goto out;
			}
			for (size_t i = 0; i < njobs; i++)
				if (strcmp(jobs[i], optarg) == 0) {
					rv = lm_cli_usage_error(CMD,
					    "--job: posting %s is listed twice", optarg);
					goto out;
				}
			if ((jobs[njobs++] = strdup(optarg)) == NULL) {
				lm_cli_error(CMD, "out of memory");
				goto out;
			}
			break;
		case OPT_TOP:
			if (!lm_textfile_whole(optarg, 1, AUDIT_RANKED_MAX, &v)) {
				rv = lm_cli_usage_error(CMD,
				    "--top: \"%s\" is not a number in 1..%d", optarg,
				    AUDIT_RANKED_MAX);
				goto out;
			}
			a->top = (size_t) v;
			break;
		case OPT_MEDIAN:
			a->median = true;
			break;
		case OPT_REPORT:
			report = optarg;
			break;
		case OPT_CHART:
			chart = optarg;
			break;
		case OPT_SAVE:
			save = optarg;
			break;
		case OPT_TIMEOUT:
			if (!lm_textfile_whole(optarg, 1, 600000, &v)) {
				rv = lm_cli_usage_error(CMD,
				    "--timeout-ms: \"%s\" is not a number in 1..600000",
				    optarg);
				goto out;
			}
			timeout_ms = (unsigned) v;
			break;
		case OPT_AS_OF:
			if (!lm_textfile_whole(optarg, 1, INT64_MAX, &v)) {
				rv = lm_cli_usage_error(CMD,
				    "--as-of: \"%s\" is not a Unix time in seconds",
				    optarg);
				goto out;
			}
			as_of = (int64_t) v;
			break;
		default:
			rv = lm_cli_usage_error(CMD, "bad option %s", argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		rv = lm_cli_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (demographics == NULL) {
		rv = lm_cli_usage_error(CMD, "--demographics FILE is required");
		goto out;
	}
	if ((rankings != NULL) + (jobs_file != NULL || njobs > 0) != 1) {
		rv = lm_cli_usage_error(
		    CMD, "give either --rankings FILE or --jobs FILE / --job ID");
		goto out;
	}
	if (save != NULL && rankings != NULL) {
		rv = lm_cli_usage_error(
		    CMD, "--save-rankings keeps rankings read from the service");
		goto out;
	}
	if (as_of != 0 && rankings != NULL) {
		rv = lm_cli_usage_error(
		    CMD, "--as-of asks the service; the rankings of a file are computed");
		goto out;
	}
	if ((rv = read_demographics(a, demographics)) != 0)
		goto out;
	if (rankings != NULL) {
		rv = read_rankings(a, rankings);
	} else {
		if (jobs_file != NULL &&
		    (rv = read_job_ids(jobs_file, &jobs, &njobs)) != 0)
			goto out;
		const char *twice = repeated(jobs, njobs);
		if (twice != NULL) {
			char idt[LM_CLI_ID_TEXT];
			lm_cli_error(CMD, "posting %s is listed twice",
			    lm_cli_id_text(idt, twice));
			rv = LM_CLI_EXIT_FAIL;
			goto out;
		}
		rv = fetch_rankings(a, cfg, jobs, njobs, timeout_ms, as_of);
		if (rv == 0 && save != NULL)
			rv = save_rankings(a, save);
	}
	if (rv != 0)
		goto out;
	if (a->nrankings == 0) {
		lm_cli_error(CMD, "no postings to audit");
		rv = LM_CLI_EXIT_FAIL;
		goto out;
	}
	if ((rv = run_audit(a)) != 0)
		goto out;
	if (a->src.nmodels > 1)
		lm_cli_error(CMD,
		    "warning: the rankings come from %zu model versions: this audit "
		    "mixes "
		    "models",
		    a->src.nmodels);
	if (chart != NULL && (rv = write_chart(a, chart)) != 0)
		goto out;
	if (report != NULL && (rv = write_report(a, report, chart)) != 0)
		goto out;
	if (cfg->json) {
		rv = print_json(a);
	} else {
		print_table(a);
		rv = lm_cli_stdout_written(CMD);
	}
out:
	if (jobs != NULL)
		for (size_t i = 0; i < njobs; i++)
			free(jobs[i]);
	free(jobs);
	if (a != NULL)
		audit_free(a);
	return rv;
}
