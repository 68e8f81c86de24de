/*
 * bench_store.c - speed of the LMDB record store (lunamatch/store.h): put
 * throughput with 1, 100 and 1000 records per durable transaction, get
 * latency, snapshot load of N records (scan only, scan + protobuf decode,
 * and scan + decode + index insert as the match service does at start-up),
 * change-log follow throughput (entries only, and entries + get), and the
 * trimming that compacts the store (lm_store_trim with its default bound:
 * the change log, then tombstones of a tenth of the records), per call,
 * which is how long it holds the writer.
 *
 * Each put phase writes to a fresh store; the read phases use a store loaded
 * with N postings. Stores live in a temporary directory under --dir (default
 * $TMPDIR or /tmp; use a directory on the disk you care about: commits are
 * fsync'd, so batch-1 throughput is the disk's sync rate) that is removed at
 * the end. Results go to <out-dir>/<name>.json and <name>.txt.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "index.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "model.h"

#define ID_MAX       32
#define RECORDS_MAX  2000000
#define GETS_MAX     10000000
#define BATCH_MAX    100000
#define REPEATS      3    /* runs of each snapshot variant; the median is kept */
#define MIN_COMMITS  5    /* a put phase stops on time only after this many */
#define FOLLOW_BATCH 1000 /* entries per lm_store_changes call */
#define ERR_MAX      256

typedef struct opts {
	uint64_t batches[BENCH_LIST_MAX];
	size_t n_batches;
	uint64_t records;
	uint64_t gets;
	uint64_t max_seconds;
	uint64_t seed;
	const char *dir;
	const char *out_dir;
	const char *name;
	const char *commit;
} opts;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: bench_store [options]\n"
	    "  --records N        records in the read store and cap of each put phase\n"
	    "                     (default 50000)\n"
	    "  --batches LIST     records per transaction of the put phases\n"
	    "                     (default 1,100,1000)\n"
	    "  --gets N           timed gets (default 20000)\n"
	    "  --max-seconds S    time cap of one put phase (default 5)\n"
	    "  --seed N           data seed (default 1)\n"
	    "  --dir DIR          parent of the temporary stores (default $TMPDIR or "
	    "/tmp)\n"
	    "  --out-dir DIR      where results go (default .)\n"
	    "  --name NAME        result file base name (default store)\n"
	    "  --commit REV       source revision recorded with the results\n");
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
	    {"records", required_argument, NULL, 'r'},
	    {"batches", required_argument, NULL, 'b'},
	    {"gets", required_argument, NULL, 'g'},
	    {"max-seconds", required_argument, NULL, 'm'},
	    {"seed", required_argument, NULL, 'S'}, {"dir", required_argument, NULL, 'd'},
	    {"out-dir", required_argument, NULL, 'o'},
	    {"name", required_argument, NULL, 'n'},
	    {"commit", required_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *tmp = getenv("TMPDIR");
	int ch;

	memset(o, 0, sizeof(*o));
	o->batches[0] = 1;
	o->batches[1] = 100;
	o->batches[2] = 1000;
	o->n_batches = 3;
	o->records = 50000;
	o->gets = 20000;
	o->max_seconds = 5;
	o->seed = 1;
	o->dir = tmp && *tmp ? tmp : "/tmp";
	o->out_dir = ".";
	o->name = "store";
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'r':
			ok = bench_parse_u64(
			    optarg, 1, RECORDS_MAX, "--records", &o->records);
			break;
		case 'b':
			o->n_batches = bench_parse_list(optarg, o->batches,
			    BENCH_LIST_MAX, 1, BATCH_MAX, "--batches");
			ok = o->n_batches > 0;
			break;
		case 'g':
			ok = bench_parse_u64(optarg, 1, GETS_MAX, "--gets", &o->gets);
			break;
		case 'm':
			ok = bench_parse_u64(
			    optarg, 1, 3600, "--max-seconds", &o->max_seconds);
			break;
		case 'S':
			ok = bench_parse_u64(optarg, 0, INT64_MAX, "--seed", &o->seed);
			break;
		case 'd':
			o->dir = optarg;
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
		    stderr, "bench_store: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- data ---------------------------------------------------------------- */

/* The encoded postings every phase writes: ids[i] is "job-<i>". */
typedef struct dataset {
	size_t n;
	uint8_t **bytes;
	size_t *len;
	uint64_t total_bytes;
} dataset;

static void
dataset_free(dataset *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->bytes[i]);
	free(d->bytes);
	free(d->len);
	memset(d, 0, sizeof(*d));
}

static int
dataset_build(dataset *d, uint64_t n, uint64_t seed)
{
	bench_gen_opts go = {seed, 0};
	bench_gen *g = bench_gen_new(&go);
	char id[ID_MAX];

	memset(d, 0, sizeof(*d));
	d->bytes = calloc(n, sizeof(*d->bytes));
	d->len = calloc(n, sizeof(*d->len));
	if (d->bytes == NULL || d->len == NULL)
		goto nomem;
	for (uint64_t i = 0; i < n; i++) {
		Lunamatch__V1__JobPosting *p;
		int rc;
		snprintf(id, sizeof(id), "job-%08llu", (unsigned long long) i);
		p = bench_gen_posting(g, id);
		rc = lm_pb_encode(&p->base, &d->bytes[i], &d->len[i]);
		protobuf_c_message_free_unpacked(&p->base, NULL);
		if (rc != LM_OK)
			goto nomem;
		d->n++;
		d->total_bytes += d->len[i];
	}
	bench_gen_free(g);
	return 0;
nomem:
	fprintf(stderr, "bench_store: out of memory\n");
	bench_gen_free(g);
	dataset_free(d);
	return -1;
}

/* ---- temporary stores ---------------------------------------------------- */

/* Removes a store directory made by this program (its two LMDB files). */
static void
remove_store(const char *dir)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char path[BENCH_PATH_MAX];

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (unlink(path) != 0 && errno != ENOENT)
			fprintf(stderr, "bench_store: cannot remove %s: %s\n", path,
			    strerror(errno));
	}
	if (rmdir(dir) != 0 && errno != ENOENT)
		fprintf(
		    stderr, "bench_store: cannot remove %s: %s\n", dir, strerror(errno));
}

static int
open_store(const char *root, const char *sub, char *dir, size_t dirlen, lm_store **out)
{
	int n = snprintf(dir, dirlen, "%s/%s", root, sub);
	int rc;

	if (n < 0 || (size_t) n >= dirlen) {
		fprintf(stderr, "bench_store: path too long\n");
		return -1;
	}
	if ((rc = lm_store_open(dir, NULL, out)) != LM_OK) {
		fprintf(stderr, "bench_store: open %s: %s\n", dir, lm_strerror(rc));
		return -1;
	}
	return 0;
}

/* Writes records [from, to) of d in one transaction and commits it. */
static int
put_batch(lm_store *s, const dataset *d, size_t from, size_t to)
{
	lm_store_txn *t;
	char id[ID_MAX];
	int rc;

	if ((rc = lm_store_begin(s, &t)) != LM_OK)
		goto fail;
	for (size_t i = from; i < to; i++) {
		snprintf(id, sizeof(id), "job-%08llu", (unsigned long long) i);
		if ((rc = lm_store_put(
		         t, LM_KIND_POSTING, id, 1, d->bytes[i], d->len[i])) != LM_OK) {
			lm_store_abort(t);
			goto fail;
		}
	}
	if ((rc = lm_store_commit(t, NULL)) != LM_OK)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "bench_store: put: %s\n", lm_strerror(rc));
	return -1;
}

/* ---- put phases ---------------------------------------------------------- */

typedef struct put_result {
	uint64_t batch;
	uint64_t records;
	uint64_t commits;
	double seconds;
	bench_lat commit_lat; /* whole transaction: begin, puts, durable commit */
} put_result;

static int
put_phase(
    const char *root, const opts *o, const dataset *d, uint64_t batch, put_result *r)
{
	char sub[64], dir[BENCH_PATH_MAX];
	lm_store *s = NULL;
	uint64_t max_commits = (d->n + batch - 1) / batch;
	uint64_t *lat = calloc(max_commits, sizeof(*lat));
	uint64_t t0, deadline;
	size_t i = 0;
	int status = -1;

	memset(r, 0, sizeof(*r));
	r->batch = batch;
	snprintf(sub, sizeof(sub), "put-%llu", (unsigned long long) batch);
	if (lat == NULL) {
		fprintf(stderr, "bench_store: out of memory\n");
		return -1;
	}
	if (open_store(root, sub, dir, sizeof(dir), &s) != 0) {
		free(lat);
		return -1;
	}
	t0 = bench_now_ns();
	deadline = t0 + o->max_seconds * 1000000000ULL;
	while (i < d->n) {
		size_t to = i + batch < d->n ? i + batch : d->n;
		uint64_t c0 = bench_now_ns(), c1;
		if (put_batch(s, d, i, to) != 0)
			goto done;
		c1 = bench_now_ns();
		lat[r->commits++] = c1 - c0;
		r->records += to - i;
		i = to;
		if (r->commits >= MIN_COMMITS && c1 > deadline)
			break;
	}
	r->seconds = (double) (bench_now_ns() - t0) / 1e9;
	bench_lat_summarize(lat, (size_t) r->commits, &r->commit_lat);
	status = 0;
done:
	lm_store_close(s);
	remove_store(dir);
	free(lat);
	return status;
}

/* ---- read phases --------------------------------------------------------- */

typedef struct scan_ctx {
	uint64_t records, bytes, checksum;
	bool decode;
	lm_index *idx; /* set: decoded postings go into it */
	int rc;
} scan_ctx;

static int
scan_fn(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	scan_ctx *c = arg;
	ProtobufCMessage *m = NULL;
	char err[ERR_MAX];

	(void) id;
	(void) version;
	c->records++;
	c->bytes += len;
	if (len > 0)
		c->checksum += ((const uint8_t *) bytes)[len - 1];
	if (!c->decode)
		return 0;
	c->rc = lm_pb_decode(&lunamatch__v1__job_posting__descriptor, bytes, len,
	    LM_STORE_VALUE_MAX, &m, err, sizeof(err));
	if (c->rc != LM_OK) {
		fprintf(stderr, "bench_store: decode: %s\n", err);
		return 1;
	}
	if (c->idx == NULL) {
		protobuf_c_message_free_unpacked(m, NULL);
		return 0;
	}
	c->rc = lm_index_put_posting(c->idx, (Lunamatch__V1__JobPosting *) m, 0);
	return c->rc != LM_OK;
}

typedef enum snap_kind { SNAP_SCAN, SNAP_DECODE, SNAP_INDEX, SNAP_COUNT_ } snap_kind;

static const char *const snap_key[SNAP_COUNT_] = {
    "scan", "scan_decode", "scan_decode_index"};
static const char *const snap_label[SNAP_COUNT_] = {
    "snapshot scan only", "snapshot + decode", "snapshot + decode + index"};

/* Median over REPEATS runs of one snapshot variant, in milliseconds. */
static int
snapshot_phase(
    lm_store *s, const lm_model *model, snap_kind k, uint64_t expect, double *ms)
{
	double runs[REPEATS];

	for (int rep = 0; rep < REPEATS; rep++) {
		scan_ctx c = {0, 0, 0, k != SNAP_SCAN, NULL, LM_OK};
		uint64_t seq = 0, t0;
		int rc;

		if (k == SNAP_INDEX && (rc = lm_index_new(model, &c.idx)) != LM_OK) {
			fprintf(
			    stderr, "bench_store: lm_index_new: %s\n", lm_strerror(rc));
			return -1;
		}
		t0 = bench_now_ns();
		rc = lm_store_snapshot(s, scan_fn, NULL, &c, &seq);
		runs[rep] = (double) (bench_now_ns() - t0) / 1e6;
		lm_index_free(c.idx);
		bench_trim_heap();
		if (rc != LM_OK || c.rc != LM_OK || c.records != expect) {
			fprintf(stderr,
			    "bench_store: snapshot: %s, %llu of %llu records\n",
			    lm_strerror(rc != LM_OK ? rc : c.rc),
			    (unsigned long long) c.records, (unsigned long long) expect);
			return -1;
		}
	}
	for (int a = 0; a < REPEATS; a++)
		for (int b = a + 1; b < REPEATS; b++)
			if (runs[b] < runs[a]) {
				double x = runs[a];
				runs[a] = runs[b];
				runs[b] = x;
			}
	*ms = runs[REPEATS / 2];
	return 0;
}

typedef struct follow_ctx {
	lm_store *s;
	bool get;
	uint64_t entries;
	int rc;
} follow_ctx;

static int
follow_fn(void *arg, uint64_t seq, const Lunamatch__V1__ChangeEntry *e)
{
	follow_ctx *c = arg;
	void *bytes = NULL;
	size_t len = 0;

	(void) seq;
	c->entries++;
	if (!c->get)
		return 0;
	c->rc = lm_store_get(c->s, (lm_kind) e->kind, e->id, &bytes, &len, NULL);
	free(bytes);
	return c->rc != LM_OK;
}

/* Follows the whole change log from seq 0 in batches of FOLLOW_BATCH; the
 * median of REPEATS runs, in milliseconds. */
static int
follow_phase(lm_store *s, bool get, uint64_t expect, double *ms)
{
	double runs[REPEATS];

	for (int rep = 0; rep < REPEATS; rep++) {
		follow_ctx c = {s, get, 0, LM_OK};
		uint64_t after = 0, t0 = bench_now_ns();
		int rc = LM_OK;

		for (;;) {
			uint64_t last = after;
			rc = lm_store_changes(
			    s, after, FOLLOW_BATCH, follow_fn, &c, &last);
			if (rc != LM_OK || last == after)
				break;
			after = last;
		}
		runs[rep] = (double) (bench_now_ns() - t0) / 1e6;
		if (rc != LM_OK || c.rc != LM_OK || c.entries != expect) {
			fprintf(stderr, "bench_store: follow: %s, %llu of %llu entries\n",
			    lm_strerror(rc != LM_OK ? rc : c.rc),
			    (unsigned long long) c.entries, (unsigned long long) expect);
			return -1;
		}
	}
	for (int a = 0; a < REPEATS; a++)
		for (int b = a + 1; b < REPEATS; b++)
			if (runs[b] < runs[a]) {
				double x = runs[a];
				runs[a] = runs[b];
				runs[b] = x;
			}
	*ms = runs[REPEATS / 2];
	return 0;
}

/* One series of lm_store_trim calls until nothing is left. */
typedef struct trim_result {
	uint64_t calls, trimmed, removed;
	double ms;
	bench_lat lat; /* per call */
} trim_result;

typedef struct read_result {
	bench_lat get_lat;
	double gets_per_s;
	double snap_ms[SNAP_COUNT_];
	double follow_ms, follow_get_ms;
	trim_result trim_log, trim_tombs;
	uint64_t map_used;
} read_result;

/* Trims at now with the default bound until a call says nothing more. */
static int
trim_phase(lm_store *s, int64_t now, uint64_t most, trim_result *r)
{
	uint64_t *lat = calloc(most, sizeof(*lat));
	lm_store_trim_opts o = {.now = now};
	lm_store_trim_result tr = {.more = true};
	uint64_t t_all = 0;

	memset(r, 0, sizeof(*r));
	if (lat == NULL) {
		fprintf(stderr, "bench_store: out of memory\n");
		return -1;
	}
	while (tr.more && r->calls < most) {
		uint64_t t0 = bench_now_ns();
		int rc = lm_store_trim(s, &o, &tr);
		uint64_t t1 = bench_now_ns();
		if (rc != LM_OK) {
			fprintf(stderr, "bench_store: trim: %s\n", lm_strerror(rc));
			free(lat);
			return -1;
		}
		lat[r->calls++] = t1 - t0;
		t_all += t1 - t0;
		r->trimmed += tr.changes_trimmed;
		r->removed += tr.tombstones_removed;
	}
	r->ms = (double) t_all / 1e6;
	bench_lat_summarize(lat, (size_t) r->calls, &r->lat);
	free(lat);
	return 0;
}

/* Deletes every tenth posting (one transaction), then trims past the
 * tombstone retention. */
static int
trim_tombstones_phase(lm_store *s, uint64_t n, trim_result *r)
{
	lm_store_txn *t;
	char id[ID_MAX];
	int rc;

	if ((rc = lm_store_begin(s, &t)) != LM_OK) {
		fprintf(stderr, "bench_store: delete: %s\n", lm_strerror(rc));
		return -1;
	}
	for (uint64_t i = 0; i < n; i += 10) {
		snprintf(id, sizeof(id), "job-%08llu", (unsigned long long) i);
		if ((rc = lm_store_delete(t, LM_KIND_POSTING, id, 0)) != LM_OK) {
			lm_store_abort(t);
			fprintf(stderr, "bench_store: delete: %s\n", lm_strerror(rc));
			return -1;
		}
	}
	if ((rc = lm_store_commit(t, NULL)) != LM_OK) {
		fprintf(stderr, "bench_store: delete: %s\n", lm_strerror(rc));
		return -1;
	}
	return trim_phase(s,
	    (int64_t) time(NULL) + LM_STORE_TOMBSTONE_RETENTION_DEFAULT + 1,
	    2 * n / LM_STORE_TRIM_MAX_DEFAULT + 10, r);
}

static int
get_phase(lm_store *s, const opts *o, uint64_t n, read_result *r)
{
	uint64_t *lat = calloc(o->gets, sizeof(*lat));
	bench_rng rng;
	char id[ID_MAX];
	uint64_t t_all = 0;

	if (lat == NULL) {
		fprintf(stderr, "bench_store: out of memory\n");
		return -1;
	}
	bench_rng_seed(&rng, o->seed ^ 0x6E75ULL);
	for (uint64_t i = 0; i < o->gets; i++) {
		void *bytes = NULL;
		size_t len;
		uint64_t t0, t1;
		int rc;

		snprintf(id, sizeof(id), "job-%08llu",
		    (unsigned long long) bench_rng_below(&rng, (uint32_t) n));
		t0 = bench_now_ns();
		rc = lm_store_get(s, LM_KIND_POSTING, id, &bytes, &len, NULL);
		t1 = bench_now_ns();
		free(bytes);
		if (rc != LM_OK) {
			fprintf(stderr, "bench_store: get %s: %s\n", id, lm_strerror(rc));
			free(lat);
			return -1;
		}
		lat[i] = t1 - t0;
		t_all += t1 - t0;
	}
	bench_lat_summarize(lat, (size_t) o->gets, &r->get_lat);
	r->gets_per_s = t_all ? (double) o->gets / ((double) t_all / 1e9) : 0.0;
	free(lat);
	return 0;
}

static int
read_phases(const char *root, const opts *o, const dataset *d, read_result *r)
{
	char dir[BENCH_PATH_MAX];
	lm_store *s = NULL;
	lm_model model;
	struct lm_store_stats st;
	int status = -1;

	memset(r, 0, sizeof(*r));
	lm_model_defaults(&model);
	if (open_store(root, "read", dir, sizeof(dir), &s) != 0)
		return -1;
	fprintf(stderr, "bench_store: loading %zu records\n", d->n);
	for (size_t i = 0; i < d->n; i += 1000)
		if (put_batch(s, d, i, i + 1000 < d->n ? i + 1000 : d->n) != 0)
			goto done;
	if (lm_store_stats(s, &st) == LM_OK)
		r->map_used = st.map_used;
	fprintf(stderr, "bench_store: get\n");
	if (get_phase(s, o, d->n, r) != 0)
		goto done;
	for (int k = 0; k < SNAP_COUNT_; k++) {
		fprintf(stderr, "bench_store: %s\n", snap_label[k]);
		if (snapshot_phase(s, &model, (snap_kind) k, d->n, &r->snap_ms[k]) != 0)
			goto done;
	}
	fprintf(stderr, "bench_store: follow\n");
	if (follow_phase(s, false, d->n, &r->follow_ms) != 0 ||
	    follow_phase(s, true, d->n, &r->follow_get_ms) != 0)
		goto done;
	fprintf(stderr, "bench_store: trim\n");
	if (trim_phase(s, 0, 2 * d->n / LM_STORE_TRIM_MAX_DEFAULT + 10, &r->trim_log) !=
	        0 ||
	    trim_tombstones_phase(s, d->n, &r->trim_tombs) != 0)
		goto done;
	status = 0;
done:
	lm_store_close(s);
	remove_store(dir);
	return status;
}

/* ---- output -------------------------------------------------------------- */

static double
per_s(uint64_t n, double ms)
{
	return ms > 0 ? (double) n / (ms / 1000.0) : 0.0;
}

static json_t *
trim_json(const trim_result *t)
{
	return json_pack("{s:I,s:I,s:I,s:f,s:o}", "calls", (json_int_t) t->calls,
	    "changes_trimmed", (json_int_t) t->trimmed, "tombstones_removed",
	    (json_int_t) t->removed, "ms", t->ms, "call_latency",
	    bench_lat_json(&t->lat));
}

static void
trim_row(bench_text *t, const char *label, const trim_result *r)
{
	bench_text_printf(t, "%-26s %8llu %10llu %10llu %9.1f %18.2f/%.2f/%.2f\n", label,
	    (unsigned long long) r->calls, (unsigned long long) r->trimmed,
	    (unsigned long long) r->removed, r->ms, r->lat.p50_us / 1000.0,
	    r->lat.p95_us / 1000.0, r->lat.max_us / 1000.0);
}

static json_t *
results_json(const opts *o, const dataset *d, const put_result *p, const read_result *r,
    json_t *machine)
{
	json_t *puts = json_array(), *snap = json_object();

	for (size_t i = 0; i < o->n_batches; i++) {
		json_t *j = json_pack("{s:I,s:I,s:I,s:f,s:f,s:o}", "batch",
		    (json_int_t) p[i].batch, "records", (json_int_t) p[i].records,
		    "commits", (json_int_t) p[i].commits, "seconds", p[i].seconds,
		    "records_per_s",
		    p[i].seconds > 0 ? (double) p[i].records / p[i].seconds : 0.0,
		    "transaction_latency", bench_lat_json(&p[i].commit_lat));
		json_array_append_new(puts, j);
	}
	for (int k = 0; k < SNAP_COUNT_; k++)
		json_object_set_new(snap, snap_key[k],
		    json_pack("{s:f,s:f}", "ms", r->snap_ms[k], "records_per_s",
		        per_s(d->n, r->snap_ms[k])));
	return json_pack("{s:s,s:o,s:{s:I,s:I,s:I,s:f,s:s},s:o,s:{s:o,s:f},s:o,"
	                 "s:{s:f,s:f,s:f,s:f},s:{s:o,s:o},s:I,s:I}",
	    "benchmark", "store", "machine", machine, "params", "records",
	    (json_int_t) o->records, "gets", (json_int_t) o->gets, "seed",
	    (json_int_t) o->seed, "avg_value_bytes",
	    d->n ? (double) d->total_bytes / (double) d->n : 0.0, "durability",
	    "fsync on every commit", "put", puts, "get", "latency",
	    bench_lat_json(&r->get_lat), "gets_per_s", r->gets_per_s, "snapshot", snap,
	    "follow", "ms", r->follow_ms, "entries_per_s", per_s(d->n, r->follow_ms),
	    "with_get_ms", r->follow_get_ms, "with_get_entries_per_s",
	    per_s(d->n, r->follow_get_ms), "trim", "change_log", trim_json(&r->trim_log),
	    "tombstones", trim_json(&r->trim_tombs), "map_used_bytes",
	    (json_int_t) r->map_used, "peak_rss_bytes",
	    (json_int_t) bench_maxrss_bytes());
}

static void
table(bench_text *t, const opts *o, const dataset *d, const put_result *p,
    const read_result *r, json_t *machine)
{
	bench_text_header(t, "bench_store", machine);
	bench_text_printf(t,
	    "data         %zu postings, %.0f bytes each on average, seed %llu; "
	    "every commit is fsync'd\n\n",
	    d->n, d->n ? (double) d->total_bytes / (double) d->n : 0.0,
	    (unsigned long long) o->seed);
	bench_text_printf(t, "%-26s %10s %10s %12s %28s\n", "put phase", "records",
	    "commits", "records/s", "txn p50/p95/p99 (ms)");
	for (size_t i = 0; i < o->n_batches; i++) {
		char label[64], cell[64];
		snprintf(label, sizeof(label), "batch of %llu",
		    (unsigned long long) p[i].batch);
		snprintf(cell, sizeof(cell), "%.2f/%.2f/%.2f",
		    p[i].commit_lat.p50_us / 1000.0, p[i].commit_lat.p95_us / 1000.0,
		    p[i].commit_lat.p99_us / 1000.0);
		bench_text_printf(t, "%-26s %10llu %10llu %12.0f %28s\n", label,
		    (unsigned long long) p[i].records, (unsigned long long) p[i].commits,
		    p[i].seconds > 0 ? (double) p[i].records / p[i].seconds : 0.0, cell);
	}
	bench_text_printf(t, "\n%-26s %12s %12s\n", "read phase", "ms", "per second");
	bench_text_printf(t,
	    "%-26s %12s %12.0f   p50/p95/p99 %.1f/%.1f/%.1f us (%zu gets)\n",
	    "get (random id)", "-", r->gets_per_s, r->get_lat.p50_us, r->get_lat.p95_us,
	    r->get_lat.p99_us, r->get_lat.n);
	for (int k = 0; k < SNAP_COUNT_; k++)
		bench_text_printf(t, "%-26s %12.1f %12.0f\n", snap_label[k],
		    r->snap_ms[k], per_s(d->n, r->snap_ms[k]));
	bench_text_printf(t, "%-26s %12.1f %12.0f\n", "follow change log", r->follow_ms,
	    per_s(d->n, r->follow_ms));
	bench_text_printf(t, "%-26s %12.1f %12.0f\n", "follow + get each record",
	    r->follow_get_ms, per_s(d->n, r->follow_get_ms));
	bench_text_printf(t, "\n%-26s %8s %10s %10s %9s %25s\n", "trim (default bound)",
	    "calls", "entries", "tombstones", "ms", "call p50/p95/max (ms)");
	trim_row(t, "change log, no reader", &r->trim_log);
	trim_row(t, "tombstones of 1/10", &r->trim_tombs);
	bench_text_printf(t, "\n%-26s %12.1f\n", "store map used (MiB)",
	    (double) r->map_used / (1024.0 * 1024.0));
	bench_text_printf(t, "%-26s %12.1f\n", "peak RSS of the run (MiB)",
	    (double) bench_maxrss_bytes() / (1024.0 * 1024.0));
}

int
main(int argc, char **argv)
{
	opts o;
	dataset d;
	put_result p[BENCH_LIST_MAX];
	read_result r;
	char root[BENCH_PATH_MAX];
	json_t *doc, *machine;
	bench_text *text = NULL;
	bench_load load;
	int status = 1, n;

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	n = snprintf(root, sizeof(root), "%s/lunamatch-bench-store-XXXXXX", o.dir);
	if (n < 0 || (size_t) n >= sizeof(root)) {
		fprintf(stderr, "bench_store: --dir too long\n");
		return 2;
	}
	if (mkdtemp(root) == NULL) {
		fprintf(stderr, "bench_store: cannot create a directory in %s: %s\n",
		    o.dir, strerror(errno));
		return 1;
	}
	lm_log_set_level(LM_LOG_WARN); /* no store.open lines between the tables */
	machine = bench_machine_json(o.commit);
	bench_load_start(&load);
	if (dataset_build(&d, o.records, o.seed) != 0)
		goto done_dir;
	if ((text = calloc(1, sizeof(*text))) == NULL) {
		fprintf(stderr, "bench_store: out of memory\n");
		goto done;
	}
	for (size_t i = 0; i < o.n_batches; i++) {
		fprintf(stderr, "bench_store: put, batch of %llu\n",
		    (unsigned long long) o.batches[i]);
		if (put_phase(root, &o, &d, o.batches[i], &p[i]) != 0)
			goto done;
	}
	if (read_phases(root, &o, &d, &r) != 0)
		goto done;
	json_object_set_new(
	    machine, "other_cores_busy", json_real(bench_load_others(&load)));
	json_incref(machine); /* the table reads it after the document took it */
	doc = results_json(&o, &d, p, &r, machine);
	if (doc == NULL) {
		fprintf(stderr, "bench_store: cannot build the result document\n");
		goto done;
	}
	table(text, &o, &d, p, &r, machine);
	if (bench_write_results(o.out_dir, o.name, doc, text) == 0)
		status = 0;
	json_decref(doc);
done:
	free(text);
	dataset_free(&d);
done_dir:
	json_decref(machine);
	if (rmdir(root) != 0)
		fprintf(
		    stderr, "bench_store: cannot remove %s: %s\n", root, strerror(errno));
	return status;
}
