/*
 * bench_util.h - what the benchmarks share: a seeded random generator,
 * synthetic postings and profiles shaped like real traffic, clocks,
 * percentiles, resident memory, machine information and the writing of
 * result files (a JSON document and a plain-text table per run).
 *
 * Benchmarks are single programs run by bench/run.sh; nothing here is part
 * of liblunamatch. Generators abort on allocation failure: a benchmark that
 * cannot allocate its input has nothing to measure.
 */
#ifndef LUNAMATCH_BENCH_UTIL_H
#define LUNAMATCH_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "lunamatch/taxonomy.h"
#include "lunamatch/v1/records.pb-c.h"

/* The clock the synthetic records are dated against (Unix seconds); queries
 * pass the same value as `now`, so results do not depend on the wall clock. */
#define BENCH_NOW 1750000000LL
#define BENCH_DAY 86400LL

#define BENCH_SKILLS    500 /* distinct skill ids in the vocabulary */
#define BENCH_ZIPF_S    1.0 /* exponent of the skill popularity law */
#define BENCH_COUNTRIES 10
#define BENCH_EMBED_MAX 4096         /* largest accepted --embedding-dim */
#define BENCH_LIST_MAX  16           /* entries in a comma-separated size list */
#define BENCH_PATH_MAX  4096         /* bytes of a result file path */
#define BENCH_TEXT_MAX  (64u * 1024) /* bytes of a result table */

/* ---- random numbers ------------------------------------------------------ */

typedef struct bench_rng {
	uint64_t s;
} bench_rng;

void bench_rng_seed(bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(bench_rng *r);
/* Uniform in [0, n); 0 when n is 0. */
uint32_t bench_rng_below(bench_rng *r, uint32_t n);
/* Uniform in [0, 1). */
double bench_rng_unit(bench_rng *r);

/* ---- synthetic records --------------------------------------------------- */

/* Shape of the generated data; the same seed and options give the same
 * records on every machine. */
typedef struct bench_gen_opts {
	uint64_t seed;
	uint32_t embedding_dim; /* 0: no embeddings (the sample data has none) */
} bench_gen_opts;

typedef struct bench_gen bench_gen;

/* Creates a generator (precomputes the skill popularity table). Aborts on
 * allocation failure; free with bench_gen_free. */
bench_gen *bench_gen_new(const bench_gen_opts *o);
void bench_gen_free(bench_gen *g);

/*
 * Draws skills from taxonomy t instead of the ids sk001..sk500 named
 * "Skill N": up to BENCH_SKILLS of its skills with their canonical ids and
 * display names, in a popularity order drawn from the generator's seed (the
 * rest of the record stream is unchanged). Call before the first record; t
 * must outlive the generator.
 */
void bench_gen_use_taxonomy(bench_gen *g, const lm_taxonomy *t);

/* Starts the record stream of g again from seed, keeping its vocabulary
 * (the skills and their popularity order): a second stream of records of
 * the same shape, such as profiles that do not depend on how many postings
 * were drawn before them. */
void bench_gen_reseed(bench_gen *g, uint64_t seed);

/*
 * A posting / profile as ingest leaves it: canonical skill ids, upper-case
 * countries, annual salaries in the reference currency. Postings have 5..20
 * distinct skills drawn from a Zipf law over BENCH_SKILLS ids, 0..2
 * requirement groups over their own skills, 1..2 locations in
 * BENCH_COUNTRIES countries, a level, a salary range (85%), a posting date in
 * the last 90 days; 5% are closed, 30% expire in the next 60 days. Profiles
 * likewise. id is copied. The caller owns the result and frees it with
 * protobuf_c_message_free_unpacked(&rec->base, NULL).
 */
Lunamatch__V1__JobPosting *bench_gen_posting(bench_gen *g, const char *id);
Lunamatch__V1__CandidateProfile *bench_gen_profile(bench_gen *g, const char *id);

/* ---- measuring ----------------------------------------------------------- */

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* Resident set size of this process now, in bytes (from /proc/self/statm);
 * 0 when unknown. */
uint64_t bench_rss_bytes(void);

/* Peak resident set size of this process, in bytes (getrusage). */
uint64_t bench_maxrss_bytes(void);

/* CPU time (user + system) this process has used, in nanoseconds. */
uint64_t bench_cpu_ns(void);

/* User + system CPU seconds of the process pid from /proc/PID/stat (a child
 * not yet waited for, a zombie included); -1 when it cannot be read. */
double bench_proc_cpu_s(pid_t pid);

/* What else ran on the machine: CPU time of every process (from /proc/stat)
 * minus this one's and its children's, over a span. Numbers measured while
 * other work kept the CPUs busy are not comparable with a quiet run; the
 * result files say so. */
typedef struct bench_load {
	uint64_t wall0, sys0, own0;
} bench_load;

/* Most children bench_load_child registers; later ones are not counted
 * until they are waited for. */
#define BENCH_LOAD_CHILDREN_MAX 256

/* Registers a child this process started, so that its CPU time counts as
 * the benchmark's own while it runs. A child counts once it is waited for
 * (RUSAGE_CHILDREN) whether registered or not; only registered ones count
 * before. Not thread-safe: call it from the thread that starts children. */
void bench_load_child(pid_t pid);

/* CPU time of this process's children in nanoseconds: of those waited for
 * (RUSAGE_CHILDREN) plus, from /proc, of the registered ones not waited
 * for yet. The difference of two readings is what the children used in
 * between, whether they were waited for in between or not. */
uint64_t bench_children_cpu_ns(void);

void bench_load_start(bench_load *l);
/* Cores kept busy by other processes on average since bench_load_start
 * (0 when /proc/stat cannot be read). */
double bench_load_others(const bench_load *l);

/* Gives freed heap memory back to the system so that the next resident-size
 * reading starts from what is really in use. */
void bench_trim_heap(void);

/* Latency summary of n samples in nanoseconds; sorts v in place. */
typedef struct bench_lat {
	size_t n;
	double mean_us, p50_us, p95_us, p99_us, max_us;
} bench_lat;

void bench_lat_summarize(uint64_t *v, size_t n, bench_lat *out);

/* {"n":..,"mean_us":..,"p50_us":..,...}; a new reference. */
json_t *bench_lat_json(const bench_lat *l);

/* ---- options and results ------------------------------------------------- */

/* Parses "1000,10000,50000" into at most max values, each in [lo, hi].
 * Returns the count, or 0 on a malformed list (message on stderr). */
size_t bench_parse_list(
    const char *s, uint64_t *v, size_t max, uint64_t lo, uint64_t hi, const char *what);

/* Parses a decimal number in [lo, hi]; false (message on stderr) if not. */
bool bench_parse_u64(
    const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out);

/* {"date":..,"commit":..,"nproc":..,"cpu_model":..,"kernel":..,"build_type":..,
 * "loadavg_1m":..}: where and when this run happened (a load average near
 * nproc at the start means other work shared the CPUs). commit may be NULL ("unknown"). A
 * new reference. */
json_t *bench_machine_json(const char *commit);

/* Appends printf-formatted text to the result table (bounded by
 * BENCH_TEXT_MAX; the rest is dropped) and echoes it to stdout. */
typedef struct bench_text {
	char buf[BENCH_TEXT_MAX];
	size_t len;
} bench_text;

void bench_text_printf(bench_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The first lines of every result table: benchmark, date, commit, machine,
 * build and load, from a bench_machine_json document to which the run has
 * added "other_cores_busy" (bench_load_others at its end). */
void bench_text_header(bench_text *t, const char *bench, json_t *machine);

/* Writes <dir>/<name>.json (doc, pretty-printed) and <dir>/<name>.txt (the
 * table), each through a temporary file renamed into place. Returns 0, or -1
 * with a message on stderr. */
int bench_write_results(
    const char *dir, const char *name, json_t *doc, const bench_text *t);

#endif /* LUNAMATCH_BENCH_UTIL_H */
