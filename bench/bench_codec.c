/*
 * bench_codec.c - speed of the record codecs on the ingest and store paths:
 * protobuf encode and checked decode (lunamatch/pb.h) and JSON encode and
 * decode (lunamatch/json.h) of synthetic postings. Results go to
 * <out-dir>/<name>.json and <name>.txt.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/pb.h"

#define ID_MAX      32
#define RECORDS_MAX 1000000
#define REPEATS     3 /* runs of each codec operation; the median is kept */
#define ERR_MAX     256

typedef struct opts {
	uint64_t records;
	uint64_t seed;
	const char *out_dir;
	const char *name;
	const char *commit;
} opts;

static void
usage(FILE *f)
{
	fprintf(f, "usage: bench_codec [options]\n"
	           "  --records N      postings per run (default 10000)\n"
	           "  --seed N         data seed (default 1)\n"
	           "  --out-dir DIR    where results go (default .)\n"
	           "  --name NAME      result file base name (default codec)\n"
	           "  --commit REV     source revision recorded with the results\n");
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
	    {"records", required_argument, NULL, 'r'},
	    {"seed", required_argument, NULL, 'S'},
	    {"out-dir", required_argument, NULL, 'o'},
	    {"name", required_argument, NULL, 'n'},
	    {"commit", required_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	int ch;

	memset(o, 0, sizeof(*o));
	o->records = 10000;
	o->seed = 1;
	o->out_dir = ".";
	o->name = "codec";
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'r':
			ok = bench_parse_u64(
			    optarg, 1, RECORDS_MAX, "--records", &o->records);
			break;
		case 'S':
			ok = bench_parse_u64(optarg, 0, INT64_MAX, "--seed", &o->seed);
			break;
		case 'o':
			o->out_dir = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'C':
			o->commit = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			ok = false;
			break;
		}
		if (!ok) {
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(
		    stderr, "bench_codec: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

typedef enum op {
	OP_PB_ENCODE,
	OP_PB_DECODE,
	OP_JSON_ENCODE,
	OP_JSON_DECODE,
	OP_COUNT_
} op;

static const char *const op_key[OP_COUNT_] = {
    "pb_encode", "pb_decode", "json_encode", "json_decode"};
static const char *const op_label[OP_COUNT_] = {
    "protobuf encode", "protobuf decode (checked)", "JSON encode", "JSON decode"};

/* The postings and both of their encodings. */
typedef struct corpus {
	size_t n;
	Lunamatch__V1__JobPosting **recs;
	uint8_t **pb;
	size_t *pb_len;
	char **json;
	uint64_t pb_bytes, json_bytes;
} corpus;

static void
corpus_free(corpus *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->recs[i] != NULL)
			protobuf_c_message_free_unpacked(&c->recs[i]->base, NULL);
		free(c->pb[i]);
		free(c->json[i]);
	}
	free(c->recs);
	free(c->pb);
	free(c->pb_len);
	free(c->json);
	memset(c, 0, sizeof(*c));
}

static int
corpus_build(corpus *c, const opts *o)
{
	bench_gen_opts go = {o->seed, 0};
	bench_gen *g = bench_gen_new(&go);
	char id[ID_MAX];

	memset(c, 0, sizeof(*c));
	c->recs = calloc(o->records, sizeof(*c->recs));
	c->pb = calloc(o->records, sizeof(*c->pb));
	c->pb_len = calloc(o->records, sizeof(*c->pb_len));
	c->json = calloc(o->records, sizeof(*c->json));
	if (c->recs == NULL || c->pb == NULL || c->pb_len == NULL || c->json == NULL)
		goto fail;
	for (uint64_t i = 0; i < o->records; i++) {
		snprintf(id, sizeof(id), "job-%08llu", (unsigned long long) i);
		c->recs[i] = bench_gen_posting(g, id);
		c->n++;
		if (lm_pb_encode(&c->recs[i]->base, &c->pb[i], &c->pb_len[i]) != LM_OK ||
		    lm_json_encode(&c->recs[i]->base, 0, &c->json[i]) != LM_OK)
			goto fail;
		c->pb_bytes += c->pb_len[i];
		c->json_bytes += strlen(c->json[i]);
	}
	bench_gen_free(g);
	return 0;
fail:
	fprintf(stderr, "bench_codec: cannot build the corpus\n");
	bench_gen_free(g);
	corpus_free(c);
	return -1;
}

/* One pass of operation k over the corpus; returns its time in ns, or 0 on
 * failure (printed). */
static uint64_t
run_op(const corpus *c, op k)
{
	char err[ERR_MAX];
	uint64_t t0 = bench_now_ns();

	for (size_t i = 0; i < c->n; i++) {
		ProtobufCMessage *m = NULL;
		uint8_t *buf = NULL;
		char *text = NULL;
		size_t len;
		int rc;

		switch (k) {
		case OP_PB_ENCODE:
			rc = lm_pb_encode(&c->recs[i]->base, &buf, &len);
			free(buf);
			break;
		case OP_PB_DECODE:
			rc = lm_pb_decode(&lunamatch__v1__job_posting__descriptor,
			    c->pb[i], c->pb_len[i], c->pb_len[i], &m, err, sizeof(err));
			break;
		case OP_JSON_ENCODE:
			rc = lm_json_encode(&c->recs[i]->base, 0, &text);
			free(text);
			break;
		case OP_JSON_DECODE:
		default:
			rc = lm_json_decode(&lunamatch__v1__job_posting__descriptor,
			    c->json[i], strlen(c->json[i]), &m, err, sizeof(err));
			break;
		}
		if (m != NULL)
			protobuf_c_message_free_unpacked(m, NULL);
		if (rc != LM_OK) {
			fprintf(stderr, "bench_codec: %s of record %zu: %s\n",
			    op_label[k], i, lm_strerror(rc));
			return 0;
		}
	}
	return bench_now_ns() - t0;
}

int
main(int argc, char **argv)
{
	opts o;
	corpus c;
	double ms[OP_COUNT_];
	bench_text *text;
	json_t *doc, *machine, *ops;
	bench_load load;
	int status = 1;

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	machine = bench_machine_json(o.commit);
	bench_load_start(&load);
	if (corpus_build(&c, &o) != 0) {
		json_decref(machine);
		return 1;
	}
	if ((text = calloc(1, sizeof(*text))) == NULL) {
		corpus_free(&c);
		json_decref(machine);
		return 1;
	}
	for (int k = 0; k < OP_COUNT_; k++) {
		uint64_t runs[REPEATS];
		for (int rep = 0; rep < REPEATS; rep++)
			if ((runs[rep] = run_op(&c, (op) k)) == 0)
				goto done;
		for (int a = 0; a < REPEATS; a++)
			for (int b = a + 1; b < REPEATS; b++)
				if (runs[b] < runs[a]) {
					uint64_t x = runs[a];
					runs[a] = runs[b];
					runs[b] = x;
				}
		ms[k] = (double) runs[REPEATS / 2] / 1e6;
	}

	json_object_set_new(
	    machine, "other_cores_busy", json_real(bench_load_others(&load)));
	json_incref(machine); /* the table reads it after the document took it */
	ops = json_object();
	for (int k = 0; k < OP_COUNT_; k++) {
		uint64_t bytes = k <= OP_PB_DECODE ? c.pb_bytes : c.json_bytes;
		json_object_set_new(ops, op_key[k],
		    json_pack("{s:f,s:f,s:f}", "ms", ms[k], "records_per_s",
		        (double) c.n / (ms[k] / 1000.0), "mib_per_s",
		        (double) bytes / (1024.0 * 1024.0) / (ms[k] / 1000.0)));
	}
	doc = json_pack("{s:s,s:o,s:{s:I,s:I,s:f,s:f},s:o}", "benchmark", "codec",
	    "machine", machine, "params", "records", (json_int_t) o.records, "seed",
	    (json_int_t) o.seed, "avg_pb_bytes", (double) c.pb_bytes / (double) c.n,
	    "avg_json_bytes", (double) c.json_bytes / (double) c.n, "ops", ops);
	if (doc == NULL) {
		fprintf(stderr, "bench_codec: cannot build the result document\n");
		goto done;
	}
	bench_text_header(text, "bench_codec", machine);
	bench_text_printf(text,
	    "data         %zu postings, %.0f bytes protobuf, %.0f bytes JSON on "
	    "average\n\n",
	    c.n, (double) c.pb_bytes / (double) c.n,
	    (double) c.json_bytes / (double) c.n);
	bench_text_printf(
	    text, "%-28s %10s %12s %10s\n", "operation", "ms", "records/s", "MiB/s");
	for (int k = 0; k < OP_COUNT_; k++) {
		uint64_t bytes = k <= OP_PB_DECODE ? c.pb_bytes : c.json_bytes;
		bench_text_printf(text, "%-28s %10.1f %12.0f %10.1f\n", op_label[k],
		    ms[k], (double) c.n / (ms[k] / 1000.0),
		    (double) bytes / (1024.0 * 1024.0) / (ms[k] / 1000.0));
	}
	if (bench_write_results(o.out_dir, o.name, doc, text) == 0)
		status = 0;
	json_decref(doc);
done:
	free(text);
	corpus_free(&c);
	json_decref(machine);
	return status;
}
