/*
 * bench_data.c - cost of the data files on the ingest path: loading the
 * skills taxonomy, the fair-requirements list and the gazetteer (time and
 * resident memory), and what preparing a record asks of them per name:
 * a known skill (hash lookup), a misspelled one (a scan of every key), an
 * unknown one (the same scan, no result), screening a skill name, and
 * finding a city. Run from the source tree (reads data/ and
 * tests/data/skill-strings.tsv). Results go to <out-dir>/<name>.json and
 * <name>.txt.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/gazetteer.h"
#include "lunamatch/taxonomy.h"

#define ROUNDS_MAX 100000000
#define ERR_MAX    512

typedef struct opts {
	uint64_t rounds;
	const char *out_dir;
	const char *name;
	const char *commit;
} opts;

static void
usage(FILE *f)
{
	fprintf(f, "usage: bench_data [options]\n"
	           "  --rounds N       calls per operation (default 200000)\n"
	           "  --out-dir DIR    where results go (default .)\n"
	           "  --name NAME      result file base name (default data)\n"
	           "  --commit REV     source revision recorded with the results\n");
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {{"rounds", required_argument, NULL, 'r'},
	    {"out-dir", required_argument, NULL, 'o'},
	    {"name", required_argument, NULL, 'n'},
	    {"commit", required_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	int ch;

	memset(o, 0, sizeof(*o));
	o->rounds = 200000;
	o->out_dir = ".";
	o->name = "data";
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		bool ok = true;
		if (ch == 'r')
			ok = bench_parse_u64(
			    optarg, 1, ROUNDS_MAX, "--rounds", &o->rounds);
		else if (ch == 'o')
			o->out_dir = optarg;
		else if (ch == 'n')
			o->name = optarg;
		else if (ch == 'C')
			o->commit = optarg;
		else if (ch == 'h') {
			usage(stdout);
			exit(0);
		} else
			ok = false;
		if (!ok) {
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bench_data: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	return 0;
}

typedef enum op {
	OP_SKILL_KNOWN,
	OP_SKILL_TYPO,
	OP_SKILL_UNKNOWN,
	OP_SCREEN,
	OP_CITY,
	OP_COUNT_
} op;

static const char *const op_key[OP_COUNT_] = {
    "skill_known", "skill_typo", "skill_unknown", "fairness_screen", "city_lookup"};
static const char *const op_label[OP_COUNT_] = {"skill, known name",
    "skill, misspelled (scan)", "skill, unknown (scan)", "screen a skill name",
    "city by name and country"};

/* Names each operation cycles through. */
static const char *const known[] = {"Python", "Kubernetes", "NEC Code", "Salesforce",
    "Patient care", "Figma", "Financial modeling", "MIG welding"};
static const char *const typo[] = {"Pyhton", "Kubernets", "Slaesforce", "Terrafrom",
    "HIPPA", "Djnago", "Tablaeu", "Photshop"};
static const char *const unknown[] = {"Quantum basket weaving", "Underwater welding art",
    "Zorblax", "Interplanetary logistics", "Flebotomy", "Jave", "Ruby Slippers",
    "Llama herding"};
static const char *const screened[] = {"Native English speaker", "Python",
    "Recent graduate", "Financial modeling", "Digital native", "Customer service",
    "Team player", "MIG welding"};
static const char *const cities[][2] = {{"Chicago", "US"}, {"Bangalore", "IN"},
    {"Köln", "DE"}, {"Springfield", "US"}, {"Sao Paulo", "BR"}, {"Evanston", "US"},
    {"London", "GB"}, {"Atlantis", "GR"}};

struct data {
	lm_taxonomy *tax;
	lm_fairness *fair;
	lm_gazetteer *gaz;
};

/* Runs op rounds times; returns the nanoseconds taken and counts hits. */
static uint64_t
run_op(const struct data *d, op k, uint64_t rounds, uint64_t *hits)
{
	uint64_t t0 = bench_now_ns();
	lm_fair_hit h;

	*hits = 0;
	for (uint64_t i = 0; i < rounds; i++) {
		size_t j = (size_t) (i % 8);
		switch (k) {
		case OP_SKILL_KNOWN:
			*hits += lm_taxonomy_resolve(d->tax, known[j], NULL) != NULL;
			break;
		case OP_SKILL_TYPO:
			*hits += lm_taxonomy_resolve(d->tax, typo[j], NULL) != NULL;
			break;
		case OP_SKILL_UNKNOWN:
			*hits += lm_taxonomy_resolve(d->tax, unknown[j], NULL) != NULL;
			break;
		case OP_SCREEN:
			*hits += lm_fairness_match(d->fair, screened[j], &h, 1) > 0;
			break;
		case OP_CITY:
			*hits += lm_gazetteer_lookup(
			             d->gaz, cities[j][0], cities[j][1], NULL) != NULL;
			break;
		default:
			break;
		}
	}
	return bench_now_ns() - t0;
}

int
main(int argc, char **argv)
{
	opts o;
	struct data d = {0};
	char err[ERR_MAX];
	double load_ms[3], load_mib[3], ns[OP_COUNT_];
	uint64_t hits[OP_COUNT_];
	static const char *const what[3] = {"taxonomy", "fairness", "gazetteer"};
	bench_text *text = NULL;
	json_t *doc = NULL, *machine, *ops, *loads;
	bench_load load;
	int status = 1;

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	machine = bench_machine_json(o.commit);
	bench_load_start(&load);
	for (int w = 0; w < 3; w++) {
		uint64_t rss0, t0;
		int rv;
		bench_trim_heap();
		rss0 = bench_rss_bytes();
		t0 = bench_now_ns();
		if (w == 0)
			rv =
			    lm_taxonomy_load("data/skills.tsv", &d.tax, err, sizeof(err));
		else if (w == 1)
			rv = lm_fairness_load(
			    "data/fairness/requirements.tsv", &d.fair, err, sizeof(err));
		else
			rv = lm_gazetteer_load(
			    "data/geo/cities.tsv", &d.gaz, err, sizeof(err));
		load_ms[w] = (double) (bench_now_ns() - t0) / 1e6;
		load_mib[w] = (double) (bench_rss_bytes() - rss0) / (1024.0 * 1024.0);
		if (rv != LM_OK) {
			fprintf(
			    stderr, "bench_data: %s (run from the source tree)\n", err);
			goto done;
		}
	}
	for (int k = 0; k < OP_COUNT_; k++) {
		uint64_t rounds = k == OP_SKILL_TYPO || k == OP_SKILL_UNKNOWN
		                      ? (o.rounds / 100 > 0 ? o.rounds / 100 : 1)
		                      : o.rounds;
		ns[k] = (double) run_op(&d, (op) k, rounds, &hits[k]) / (double) rounds;
		hits[k] = hits[k] * 8 / rounds; /* of the 8 names cycled through */
	}

	json_object_set_new(
	    machine, "other_cores_busy", json_real(bench_load_others(&load)));
	json_incref(machine);
	loads = json_object();
	for (int w = 0; w < 3; w++)
		json_object_set_new(loads, what[w],
		    json_pack("{s:f,s:f}", "ms", load_ms[w], "rss_mib", load_mib[w]));
	ops = json_object();
	for (int k = 0; k < OP_COUNT_; k++)
		json_object_set_new(ops, op_key[k],
		    json_pack("{s:f,s:I}", "ns_per_call", ns[k], "found_of_8",
		        (json_int_t) hits[k]));
	doc = json_pack("{s:s,s:o,s:{s:I,s:I,s:I,s:I},s:o,s:o}", "benchmark", "data",
	    "machine", machine, "params", "rounds", (json_int_t) o.rounds, "skills",
	    (json_int_t) lm_taxonomy_count(d.tax), "fairness_rules",
	    (json_int_t) lm_fairness_count(d.fair), "cities",
	    (json_int_t) lm_gazetteer_count(d.gaz), "load", loads, "ops", ops);
	if (doc == NULL || (text = calloc(1, sizeof(*text))) == NULL) {
		fprintf(stderr, "bench_data: out of memory\n");
		goto done;
	}
	bench_text_header(text, "bench_data", machine);
	bench_text_printf(text,
	    "data         %zu skills, %zu fairness rules, %zu cities\n\n",
	    lm_taxonomy_count(d.tax), lm_fairness_count(d.fair),
	    lm_gazetteer_count(d.gaz));
	bench_text_printf(text, "%-28s %10s %10s\n", "load", "ms", "RSS MiB");
	for (int w = 0; w < 3; w++)
		bench_text_printf(
		    text, "%-28s %10.1f %10.1f\n", what[w], load_ms[w], load_mib[w]);
	bench_text_printf(text, "\n%-28s %12s %10s\n", "per call", "ns", "found/8");
	for (int k = 0; k < OP_COUNT_; k++)
		bench_text_printf(text, "%-28s %12.0f %10llu\n", op_label[k], ns[k],
		    (unsigned long long) hits[k]);
	if (bench_write_results(o.out_dir, o.name, doc, text) == 0)
		status = 0;
done:
	json_decref(doc);
	json_decref(machine);
	free(text);
	lm_taxonomy_free(d.tax);
	lm_fairness_free(d.fair);
	lm_gazetteer_free(d.gaz);
	return status;
}
