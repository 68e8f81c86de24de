/*
 * bench_index.c - speed and memory of the in-memory match index (index.h):
 * build time and resident memory for N postings, latency percentiles of
 * MatchJobs (explain NONE, SUMMARY, FULL) and MatchCandidates, MatchJobs
 * throughput with 1..n query threads, and how long the puts of a follower
 * wait while the index takes a new idf snapshot.
 *
 * The data is synthetic but shaped like real traffic (bench_util.h) and
 * fully determined by --seed. Results go to <out-dir>/<name>.json and
 * <name>.txt; run it through bench/run.sh (`make bench`).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "index.h"
#include "lunamatch/error.h"
#include "lunamatch/taxonomy.h"
#include "model.h"

#define ID_MAX       32 /* bytes of a generated record id */
#define THREADS_MAX  64 /* largest entry of --threads */
#define POSTINGS_MAX 5000000
#define PROFILES_MAX 1000000
#define QUERIES_MAX  100000
#define WARMUP       5  /* untimed queries before each latency phase */
#define MIN_QUERIES  10 /* a phase stops on time only after this many */
#define ERR_MAX      256

typedef struct opts {
	uint64_t postings[BENCH_LIST_MAX];
	size_t n_postings;
	uint64_t threads[BENCH_LIST_MAX];
	size_t n_threads;
	uint64_t profiles;
	uint64_t queries;
	uint64_t max_seconds; /* time cap of one latency phase */
	uint64_t qps_seconds; /* length of one throughput phase */
	uint64_t top_k;
	uint64_t seed;
	uint64_t embedding_dim;
	const char *taxonomy; /* skills drawn from this taxonomy, or NULL */
	lm_taxonomy *tax;     /* loaded from it by main */
	const char *out_dir;
	const char *name;
	const char *commit;
} opts;

static void
usage(FILE *f)
{
	fprintf(f, "usage: bench_index [options]\n"
	           "  --postings LIST      posting counts to measure (default "
	           "1000,10000,50000)\n"
	           "  --profiles N         profiles in the index (default 5000)\n"
	           "  --queries N          queries per latency phase (default 200)\n"
	           "  --max-seconds S      time cap of one latency phase (default 10)\n"
	           "  --qps-seconds S      length of one throughput phase (default 3)\n"
	           "  --threads LIST       query threads for throughput (default 1,2)\n"
	           "  --top-k N            top_k of every query (default 10)\n"
	           "  --seed N             data seed (default 1)\n"
	           "  --embedding-dim N    embedding length, 0 for none (default 0)\n"
	           "  --taxonomy FILE      draw skills from this taxonomy, as\n"
	           "                       lunamatch-loadgen does (default: the\n"
	           "                       generator's own vocabulary)\n"
	           "  --out-dir DIR        where results go (default .)\n"
	           "  --name NAME          result file base name (default index)\n"
	           "  --commit REV         source revision recorded with the results\n");
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
	    {"postings", required_argument, NULL, 'p'},
	    {"profiles", required_argument, NULL, 'c'},
	    {"queries", required_argument, NULL, 'q'},
	    {"max-seconds", required_argument, NULL, 'm'},
	    {"qps-seconds", required_argument, NULL, 's'},
	    {"threads", required_argument, NULL, 't'},
	    {"top-k", required_argument, NULL, 'k'},
	    {"seed", required_argument, NULL, 'S'},
	    {"embedding-dim", required_argument, NULL, 'e'},
	    {"taxonomy", required_argument, NULL, 'T'},
	    {"out-dir", required_argument, NULL, 'o'},
	    {"name", required_argument, NULL, 'n'},
	    {"commit", required_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	int ch;

	memset(o, 0, sizeof(*o));
	o->postings[0] = 1000;
	o->postings[1] = 10000;
	o->postings[2] = 50000;
	o->n_postings = 3;
	o->threads[0] = 1;
	o->threads[1] = 2;
	o->n_threads = 2;
	o->profiles = 5000;
	o->queries = 200;
	o->max_seconds = 10;
	o->qps_seconds = 3;
	o->top_k = 10;
	o->seed = 1;
	o->out_dir = ".";
	o->name = "index";
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'p':
			o->n_postings = bench_parse_list(optarg, o->postings,
			    BENCH_LIST_MAX, 1, POSTINGS_MAX, "--postings");
			ok = o->n_postings > 0;
			break;
		case 't':
			o->n_threads = bench_parse_list(optarg, o->threads,
			    BENCH_LIST_MAX, 1, THREADS_MAX, "--threads");
			ok = o->n_threads > 0;
			break;
		case 'c':
			ok = bench_parse_u64(
			    optarg, 1, PROFILES_MAX, "--profiles", &o->profiles);
			break;
		case 'q':
			ok = bench_parse_u64(
			    optarg, 1, QUERIES_MAX, "--queries", &o->queries);
			break;
		case 'm':
			ok = bench_parse_u64(
			    optarg, 1, 3600, "--max-seconds", &o->max_seconds);
			break;
		case 's':
			ok = bench_parse_u64(
			    optarg, 1, 3600, "--qps-seconds", &o->qps_seconds);
			break;
		case 'k':
			ok = bench_parse_u64(
			    optarg, 1, LM_INDEX_TOP_K_MAX, "--top-k", &o->top_k);
			break;
		case 'S':
			ok = bench_parse_u64(optarg, 0, INT64_MAX, "--seed", &o->seed);
			break;
		case 'T':
			o->taxonomy = optarg;
			break;
		case 'e':
			ok = bench_parse_u64(optarg, 0, BENCH_EMBED_MAX,
			    "--embedding-dim", &o->embedding_dim);
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
		    stderr, "bench_index: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- queries ------------------------------------------------------------- */

typedef enum qkind {
	Q_JOBS_NONE,
	Q_JOBS_SUMMARY,
	Q_JOBS_FULL,
	Q_CANDIDATES_SUMMARY,
	Q_COUNT_
} qkind;

static const char *const qkind_key[Q_COUNT_] = {"match_jobs_none", "match_jobs_summary",
    "match_jobs_full", "match_candidates_summary"};
static const char *const qkind_label[Q_COUNT_] = {
    "MatchJobs NONE", "MatchJobs SUMMARY", "MatchJobs FULL", "MatchCandidates SUMMARY"};

/* What one query returned, for sanity figures next to the timings. */
typedef struct qstat {
	uint64_t considered, vetoed, matches;
} qstat;

/* Runs one query of kind k for subject number i; returns LM_OK or the
 * index's error (printed). */
static int
run_query(lm_index *idx, qkind k, uint64_t i, uint32_t top_k, qstat *st)
{
	char id[ID_MAX], err[ERR_MAX] = "";
	int rc;

	if (k == Q_CANDIDATES_SUMMARY) {
		Lunamatch__V1__MatchCandidatesRequest req;
		Lunamatch__V1__MatchCandidatesResponse *resp = NULL;

		snprintf(id, sizeof(id), "job-%08llu", (unsigned long long) i);
		lunamatch__v1__match_candidates_request__init(&req);
		req.subject_case =
		    LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID;
		req.job_id = id;
		req.top_k = top_k;
		req.explain = LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
		rc = lm_index_match_candidates(
		    idx, &req, BENCH_NOW, &resp, err, sizeof(err));
		if (rc == LM_OK) {
			st->considered += resp->considered;
			st->vetoed += resp->vetoed;
			st->matches += resp->n_matches;
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
	} else {
		Lunamatch__V1__MatchJobsRequest req;
		Lunamatch__V1__MatchJobsResponse *resp = NULL;

		snprintf(id, sizeof(id), "cand-%08llu", (unsigned long long) i);
		lunamatch__v1__match_jobs_request__init(&req);
		req.subject_case =
		    LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID;
		req.candidate_id = id;
		req.top_k = top_k;
		req.explain = k == Q_JOBS_NONE
		                  ? LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE
		              : k == Q_JOBS_FULL
		                  ? LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL
		                  : LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY;
		rc = lm_index_match_jobs(idx, &req, BENCH_NOW, &resp, err, sizeof(err));
		if (rc == LM_OK) {
			st->considered += resp->considered;
			st->vetoed += resp->vetoed;
			st->matches += resp->n_matches;
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
	}
	if (rc != LM_OK)
		fprintf(stderr, "bench_index: %s %s: %s (%s)\n", qkind_label[k], id,
		    lm_strerror(rc), err);
	return rc;
}

typedef struct phase_result {
	bench_lat lat;
	double vetoed_pct;   /* share of considered records vetoed */
	double avg_matches;  /* matches per response */
	uint64_t considered; /* records of the ranked side per query */
	double reached;      /* records evaluated (veto keys read) per query */
	double scored;       /* pairs fully scored per query (the rest was pruned) */
	double entries;      /* inverted-list entries read per query */
	double cpu_us;       /* CPU time of the process per query (one query thread) */
} phase_result;

/* Times up to o->queries queries of kind k (fewer when the phase exceeds
 * o->max_seconds) against random subjects. Returns 0 or -1. */
static int
latency_phase(lm_index *idx, const opts *o, qkind k, uint64_t n_subjects, bench_rng *rng,
    phase_result *out)
{
	uint64_t *samples = calloc(o->queries, sizeof(*samples));
	uint64_t deadline, n = 0, cpu0;
	qstat st = {0, 0, 0};
	lm_index_counts c0, c1;

	if (samples == NULL) {
		fprintf(stderr, "bench_index: out of memory\n");
		return -1;
	}
	for (int w = 0; w < WARMUP; w++) {
		qstat ignore = {0, 0, 0};
		if (run_query(idx, k, bench_rng_below(rng, (uint32_t) n_subjects),
		        (uint32_t) o->top_k, &ignore) != LM_OK) {
			free(samples);
			return -1;
		}
	}
	lm_index_counts_get(idx, &c0);
	cpu0 = bench_cpu_ns();
	deadline = bench_now_ns() + o->max_seconds * 1000000000ULL;
	while (n < o->queries) {
		uint64_t subject = bench_rng_below(rng, (uint32_t) n_subjects);
		uint64_t t0 = bench_now_ns(), t1;
		/* run_query frees the response after the index call returns; that
		 * free is part of serving a request, so it is measured too. */
		if (run_query(idx, k, subject, (uint32_t) o->top_k, &st) != LM_OK) {
			free(samples);
			return -1;
		}
		t1 = bench_now_ns();
		samples[n++] = t1 - t0;
		if (n >= MIN_QUERIES && t1 > deadline)
			break;
	}
	out->cpu_us = (double) (bench_cpu_ns() - cpu0) / 1e3 / (double) n;
	lm_index_counts_get(idx, &c1);
	out->reached = (double) (c1.reached - c0.reached) / (double) n;
	out->scored = (double) (c1.scored - c0.scored) / (double) n;
	out->entries = (double) (c1.entries - c0.entries) / (double) n;
	bench_lat_summarize(samples, (size_t) n, &out->lat);
	out->considered = st.considered / n;
	out->vetoed_pct =
	    st.considered ? 100.0 * (double) st.vetoed / (double) st.considered : 0.0;
	out->avg_matches = (double) st.matches / (double) n;
	free(samples);
	return 0;
}

/* ---- throughput ---------------------------------------------------------- */

typedef struct qps_shared {
	lm_index *idx;
	uint64_t n_subjects;
	uint32_t top_k;
	atomic_bool stop;
	atomic_bool failed;
} qps_shared;

typedef struct qps_worker {
	qps_shared *sh;
	uint64_t seed;
	uint64_t done;
	pthread_t th;
} qps_worker;

static void *
qps_main(void *arg)
{
	qps_worker *w = arg;
	bench_rng rng;
	qstat st = {0, 0, 0};

	bench_rng_seed(&rng, w->seed);
	while (!atomic_load(&w->sh->stop)) {
		if (run_query(w->sh->idx, Q_JOBS_SUMMARY,
		        bench_rng_below(&rng, (uint32_t) w->sh->n_subjects), w->sh->top_k,
		        &st) != LM_OK) {
			atomic_store(&w->sh->failed, true);
			break;
		}
		w->done++;
	}
	return NULL;
}

/* MatchJobs SUMMARY queries per second with nthreads threads querying for
 * o->qps_seconds. Returns the rate, or a negative value on failure; *cpu
 * gets the cores this process kept busy meanwhile (below nthreads when
 * something else ran on the machine or the threads waited on each other). */
static double
qps_phase(lm_index *idx, const opts *o, uint64_t nthreads, uint64_t *total, double *cpu,
    double *others)
{
	qps_shared sh;
	qps_worker w[THREADS_MAX];
	uint64_t t0, t1, c0, started = 0;
	bench_load load;
	struct timespec pause = {(time_t) o->qps_seconds, 0};

	sh.idx = idx;
	sh.n_subjects = o->profiles;
	sh.top_k = (uint32_t) o->top_k;
	atomic_init(&sh.stop, false);
	atomic_init(&sh.failed, false);
	*total = 0;
	bench_load_start(&load);
	c0 = bench_cpu_ns();
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < nthreads; i++) {
		w[i].sh = &sh;
		w[i].seed = o->seed * 1000 + 77 + i;
		w[i].done = 0;
		if (pthread_create(&w[i].th, NULL, qps_main, &w[i]) != 0) {
			fprintf(stderr, "bench_index: cannot start a query thread\n");
			atomic_store(&sh.failed, true);
			break;
		}
		started++;
	}
	while (nanosleep(&pause, &pause) != 0)
		;
	atomic_store(&sh.stop, true);
	for (uint64_t i = 0; i < started; i++) {
		pthread_join(w[i].th, NULL);
		*total += w[i].done;
	}
	t1 = bench_now_ns();
	*cpu = (double) (bench_cpu_ns() - c0) / (double) (t1 - t0);
	*others = bench_load_others(&load);
	if (atomic_load(&sh.failed))
		return -1;
	return (double) *total / ((double) (t1 - t0) / 1e9);
}

/* ---- puts across a new idf snapshot ---------------------------------------- */

typedef struct churn_result {
	bench_lat lat;     /* of each put */
	uint64_t puts;     /* puts until the new snapshot was in place */
	uint64_t reshares; /* snapshots taken meanwhile (0: none fell due) */
} churn_result;

#define CHURN_AFTER 10 /* puts after the new snapshot, in % of the postings */

/* Takes every skill and requirement group out of p. */
static void
strip_skills(Lunamatch__V1__JobPosting *p)
{
	for (size_t i = 0; i < p->n_skills; i++)
		protobuf_c_message_free_unpacked(&p->skills[i]->base, NULL);
	for (size_t i = 0; i < p->n_requirement_groups; i++)
		protobuf_c_message_free_unpacked(&p->requirement_groups[i]->base, NULL);
	free(p->skills);
	free(p->requirement_groups);
	p->skills = NULL;
	p->requirement_groups = NULL;
	p->n_skills = p->n_requirement_groups = 0;
}

/* Puts new postings without skills (new-<i>), one at a time as the
 * follower applies changes, until the index has taken a new idf snapshot
 * (lm_index_counts.reshares) or 2n were put, then CHURN_AFTER % of n more
 * (the index may still be freeing the old lists), timing each put. They
 * move every idf (N grows, no skill's count does; common skills' idf
 * most): the drift is first checked after about n puts (index.c: every
 * postings/2 changes), when it is past the bound, and the puts go on
 * while the snapshot is taken. Returns 0 or -1. */
static int
churn_phase(lm_index *idx, bench_gen *gen, uint64_t n, churn_result *out)
{
	uint64_t more = n * CHURN_AFTER / 100,
	         *samples = calloc(2 * n + more, sizeof(*samples));
	lm_index_counts c0, c;
	char id[ID_MAX];
	uint64_t i, end = 2 * n;

	memset(out, 0, sizeof(*out));
	if (samples == NULL) {
		fprintf(stderr, "bench_index: out of memory\n");
		return -1;
	}
	lm_index_counts_get(idx, &c0);
	c = c0;
	for (i = 0; i < end; i++) {
		Lunamatch__V1__JobPosting *p;
		uint64_t t0;
		int rc;
		snprintf(id, sizeof(id), "new-%08llu", (unsigned long long) i);
		p = bench_gen_posting(gen, id);
		strip_skills(p);
		t0 = bench_now_ns();
		rc = lm_index_put_posting(idx, p, n + 1 + i);
		samples[i] = bench_now_ns() - t0;
		if (rc != LM_OK) {
			fprintf(stderr, "bench_index: put: %s\n", lm_strerror(rc));
			free(samples);
			return -1;
		}
		lm_index_counts_get(idx, &c);
		if (c.reshares != c0.reshares && end == 2 * n) {
			out->puts = i + 1;
			end = i + 1 + more;
		}
	}
	if (out->puts == 0)
		out->puts = i;
	out->reshares = c.reshares - c0.reshares;
	bench_lat_summarize(samples, (size_t) i, &out->lat);
	free(samples);
	return 0;
}

/* ---- changes to stored postings ------------------------------------------ */

typedef struct writes_result {
	bench_lat update; /* a new version of a stored posting, its skills new */
	bench_lat edit;   /* a new version with its date posted changed only */
	bench_lat remove; /* a stored posting deleted */
} writes_result;

#define WRITES_MAX 2000 /* updates, then removals, of stored postings */

/* Times what a writer holds the index for when a stored posting changes:
 * min(n, WRITES_MAX) puts of a new version of a posting drawn at random
 * among the n built (job-<i>: new content, so its terms leave some lists
 * and join others), as many edits (a stored posting's new version with
 * only its date posted changed: its terms and shares stay, as when an
 * employer edits the text or the salary), then as many removals of
 * distinct ones, each as the
 * follower applies it. Steps left of a new idf snapshot (the churn phase's)
 * are taken first (lm_index_advance), so that they do not fall into these
 * times. Returns 0 or -1. */
static int
writes_phase(lm_index *idx, bench_gen *gen, bench_rng *rng, uint64_t n, uint64_t seq,
    writes_result *out)
{
	uint64_t k = n < WRITES_MAX ? n : WRITES_MAX,
	         *samples = calloc(k > 0 ? k : 1, sizeof(*samples));
	char id[ID_MAX];
	int rc = LM_OK;

	memset(out, 0, sizeof(*out));
	if (samples == NULL) {
		fprintf(stderr, "bench_index: out of memory\n");
		return -1;
	}
	for (int i = 0; i < 1000000 && lm_index_advance(idx, BENCH_NOW); i++)
		;
	for (uint64_t i = 0; i < k && rc == LM_OK; i++) {
		Lunamatch__V1__JobPosting *p;
		uint64_t t0;
		snprintf(id, sizeof(id), "job-%08llu",
		    (unsigned long long) (bench_rng_next(rng) % n));
		p = bench_gen_posting(gen, id);
		p->version = 2 + i; /* above every earlier version of the id */
		t0 = bench_now_ns();
		rc = lm_index_put_posting(idx, p, ++seq);
		samples[i] = bench_now_ns() - t0;
	}
	if (rc == LM_OK)
		bench_lat_summarize(samples, (size_t) k, &out->update);
	for (uint64_t i = 0; i < k && rc == LM_OK; i++) {
		Lunamatch__V1__JobPosting *p = NULL;
		uint64_t t0;
		snprintf(id, sizeof(id), "job-%08llu",
		    (unsigned long long) (bench_rng_next(rng) % n));
		if ((rc = lm_index_get_posting(idx, id, &p)) != LM_OK)
			break;
		p->version += 1;
		p->posted_at -= 3600;
		t0 = bench_now_ns();
		rc = lm_index_put_posting(idx, p, ++seq);
		samples[i] = bench_now_ns() - t0;
	}
	if (rc == LM_OK)
		bench_lat_summarize(samples, (size_t) k, &out->edit);
	/* Distinct ids, spread over the doc ids. */
	for (uint64_t i = 0; i < k && rc == LM_OK; i++) {
		uint64_t t0;
		snprintf(
		    id, sizeof(id), "job-%08llu", (unsigned long long) (i * (n / k)));
		t0 = bench_now_ns();
		rc = lm_index_remove_posting(idx, id, ++seq);
		samples[i] = bench_now_ns() - t0;
	}
	if (rc == LM_OK)
		bench_lat_summarize(samples, (size_t) k, &out->remove);
	free(samples);
	if (rc != LM_OK) {
		fprintf(stderr, "bench_index: change of a stored posting: %s\n",
		    lm_strerror(rc));
		return -1;
	}
	return 0;
}

/* ---- one index size ------------------------------------------------------ */

typedef struct size_result {
	uint64_t postings;
	double profiles_build_ms, postings_build_ms;
	double postings_build_cpu_ms; /* CPU time of the same span */
	uint64_t profiles_bytes, postings_bytes, rss_after;
	lm_index_counts counts;
	phase_result q[Q_COUNT_];
	double qps[BENCH_LIST_MAX];
	double qps_cpu[BENCH_LIST_MAX]; /* cores busy on average: CPU time / wall time */
	double qps_others[BENCH_LIST_MAX]; /* cores other processes kept busy meanwhile */
	uint64_t qps_queries[BENCH_LIST_MAX];
	churn_result churn;
	writes_result writes;
} size_result;

/* Builds an index of o->profiles profiles and n postings and measures it. */
static int
measure_size(const lm_model *model, const opts *o, uint64_t n, size_result *r)
{
	bench_gen_opts go = {o->seed, (uint32_t) o->embedding_dim};
	bench_gen *gen = bench_gen_new(&go);
	lm_index *idx = NULL;
	bench_rng rng;
	char id[ID_MAX];
	uint64_t rss0, rss1, rss2, t0, c0, ns = 0, cpu = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	r->postings = n;
	if (o->tax != NULL)
		bench_gen_use_taxonomy(gen, o->tax);
	bench_rng_seed(&rng, o->seed ^ 0xB0A7ULL);
	bench_trim_heap();
	rss0 = bench_rss_bytes();
	if ((rc = lm_index_new(model, &idx)) != LM_OK) {
		fprintf(stderr, "bench_index: lm_index_new: %s\n", lm_strerror(rc));
		bench_gen_free(gen);
		return -1;
	}
	lm_index_loading(idx); /* as the service's snapshot load */
	/* Generation is outside the timed span; its allocations become the
	 * index's records, so they count in the memory figure. */
	for (uint64_t i = 0; i < o->profiles; i++) {
		Lunamatch__V1__CandidateProfile *c;
		snprintf(id, sizeof(id), "cand-%08llu", (unsigned long long) i);
		c = bench_gen_profile(gen, id);
		t0 = bench_now_ns();
		rc = lm_index_put_profile(idx, c, 0);
		ns += bench_now_ns() - t0;
		if (rc != LM_OK)
			goto fail;
	}
	r->profiles_build_ms = (double) ns / 1e6;
	rss1 = bench_rss_bytes();
	ns = 0;
	for (uint64_t i = 0; i < n; i++) {
		Lunamatch__V1__JobPosting *p;
		snprintf(id, sizeof(id), "job-%08llu", (unsigned long long) i);
		p = bench_gen_posting(gen, id);
		t0 = bench_now_ns();
		c0 = bench_cpu_ns();
		rc = lm_index_put_posting(idx, p, 0);
		cpu += bench_cpu_ns() - c0;
		ns += bench_now_ns() - t0;
		if (rc != LM_OK)
			goto fail;
	}
	/* The service's loader publishes a snapshot with lm_index_replace,
	 * which first lists the postings (lm_index_loaded): part of the
	 * build. */
	t0 = bench_now_ns();
	c0 = bench_cpu_ns();
	if ((rc = lm_index_loaded(idx)) != LM_OK)
		goto fail;
	lm_index_set_seq(idx, n);
	cpu += bench_cpu_ns() - c0;
	ns += bench_now_ns() - t0;
	r->postings_build_ms = (double) ns / 1e6;
	r->postings_build_cpu_ms = (double) cpu / 1e6;
	rss2 = bench_rss_bytes();
	r->profiles_bytes = rss1 > rss0 ? rss1 - rss0 : 0;
	r->postings_bytes = rss2 > rss1 ? rss2 - rss1 : 0;
	r->rss_after = rss2;
	lm_index_advance(idx, BENCH_NOW);
	lm_index_counts_get(idx, &r->counts);

	for (int k = 0; k < Q_COUNT_; k++) {
		uint64_t subjects = k == Q_CANDIDATES_SUMMARY ? n : o->profiles;
		fprintf(stderr, "bench_index: %llu postings: %s\n",
		    (unsigned long long) n, qkind_label[k]);
		if (latency_phase(idx, o, (qkind) k, subjects, &rng, &r->q[k]) != 0)
			goto fail_quiet;
	}
	for (size_t t = 0; t < o->n_threads; t++) {
		fprintf(stderr, "bench_index: %llu postings: %llu thread(s)\n",
		    (unsigned long long) n, (unsigned long long) o->threads[t]);
		r->qps[t] = qps_phase(idx, o, o->threads[t], &r->qps_queries[t],
		    &r->qps_cpu[t], &r->qps_others[t]);
		if (r->qps[t] < 0)
			goto fail_quiet;
	}
	fprintf(stderr, "bench_index: %llu postings: puts across a new idf snapshot\n",
	    (unsigned long long) n);
	if (churn_phase(idx, gen, n, &r->churn) != 0)
		goto fail_quiet;
	fprintf(stderr, "bench_index: %llu postings: changes to stored postings\n",
	    (unsigned long long) n);
	if (writes_phase(idx, gen, &rng, n, lm_index_seq(idx), &r->writes) != 0)
		goto fail_quiet;
	lm_index_free(idx);
	bench_gen_free(gen);
	bench_trim_heap();
	return 0;
fail:
	fprintf(stderr, "bench_index: put: %s\n", lm_strerror(rc));
fail_quiet:
	lm_index_free(idx);
	bench_gen_free(gen);
	return -1;
}

/* ---- output -------------------------------------------------------------- */

static double
mib(uint64_t b)
{
	return (double) b / (1024.0 * 1024.0);
}

static json_t *
size_json(const opts *o, const size_result *r)
{
	json_t *q = json_object(), *qps = json_array();
	json_t *j;

	for (int k = 0; k < Q_COUNT_; k++) {
		json_t *l = bench_lat_json(&r->q[k].lat);
		json_object_set_new(l, "considered_per_query",
		    json_integer((json_int_t) r->q[k].considered));
		json_object_set_new(l, "vetoed_pct", json_real(r->q[k].vetoed_pct));
		json_object_set_new(l, "cpu_us_per_query", json_real(r->q[k].cpu_us));
		json_object_set_new(l, "reached_per_query", json_real(r->q[k].reached));
		json_object_set_new(
		    l, "fully_scored_per_query", json_real(r->q[k].scored));
		json_object_set_new(
		    l, "list_entries_per_query", json_real(r->q[k].entries));
		json_object_set_new(
		    l, "matches_per_query", json_real(r->q[k].avg_matches));
		json_object_set_new(q, qkind_key[k], l);
	}
	for (size_t t = 0; t < o->n_threads; t++)
		json_array_append_new(
		    qps, json_pack("{s:I,s:f,s:I,s:f,s:f}", "threads",
		             (json_int_t) o->threads[t], "qps", r->qps[t], "queries",
		             (json_int_t) r->qps_queries[t], "cpu_cores_busy",
		             r->qps_cpu[t], "other_cores_busy", r->qps_others[t]));
	j = json_pack("{s:I,s:I,s:I,s:{s:f,s:f,s:f,s:f},s:{s:I,s:I,s:f,s:f,s:I},s:o,s:o,"
	              "s:{s:I,s:I,s:o},s:{s:o,s:o,s:o}}",
	    "postings", (json_int_t) r->postings, "open_postings",
	    (json_int_t) r->counts.open_postings, "profiles",
	    (json_int_t) r->counts.profiles, "build", "profiles_ms", r->profiles_build_ms,
	    "postings_ms", r->postings_build_ms, "postings_cpu_ms",
	    r->postings_build_cpu_ms, "postings_per_s",
	    r->postings_build_ms > 0
	        ? (double) r->postings / (r->postings_build_ms / 1000.0)
	        : 0.0,
	    "memory", "profiles_bytes", (json_int_t) r->profiles_bytes, "postings_bytes",
	    (json_int_t) r->postings_bytes, "bytes_per_posting",
	    r->postings ? (double) r->postings_bytes / (double) r->postings : 0.0,
	    "bytes_per_profile",
	    (double) r->profiles_bytes /
	        (double) (r->counts.profiles ? r->counts.profiles : 1),
	    "rss_after_bytes", (json_int_t) r->rss_after, "latency", q, "qps", qps,
	    "reshare_puts", "puts", (json_int_t) r->churn.puts, "reshares",
	    (json_int_t) r->churn.reshares, "latency", bench_lat_json(&r->churn.lat),
	    "stored_posting_changes", "update", bench_lat_json(&r->writes.update), "edit",
	    bench_lat_json(&r->writes.edit), "remove", bench_lat_json(&r->writes.remove));
	return j;
}

static void
row_head(bench_text *t, const char *label)
{
	bench_text_printf(t, "%-36s", label);
}

static void
table(bench_text *t, const opts *o, const size_result *r, size_t nr, json_t *machine)
{
	bench_text_header(t, "bench_index", machine);
	bench_text_printf(t,
	    "data         %llu profiles, top_k %llu, seed %llu, embedding dim %llu, "
	    "up to %llu queries per phase%s%s\n\n",
	    (unsigned long long) o->profiles, (unsigned long long) o->top_k,
	    (unsigned long long) o->seed, (unsigned long long) o->embedding_dim,
	    (unsigned long long) o->queries, o->taxonomy != NULL ? ", skills from " : "",
	    o->taxonomy != NULL ? o->taxonomy : "");

	row_head(t, "postings");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22llu", (unsigned long long) r[i].postings);
	bench_text_printf(t, "\n");
	row_head(t, "open postings (IDF N)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(
		    t, " %22llu", (unsigned long long) r[i].counts.open_postings);
	bench_text_printf(t, "\n");
	row_head(t, "build postings (ms)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.1f", r[i].postings_build_ms);
	bench_text_printf(t, "\n");
	row_head(t, "build postings, CPU (ms)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.1f", r[i].postings_build_cpu_ms);
	bench_text_printf(t, "\n");
	row_head(t, "build CPU per posting (us)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.2f",
		    r[i].postings > 0
		        ? r[i].postings_build_cpu_ms * 1000.0 / (double) r[i].postings
		        : 0.0);
	bench_text_printf(t, "\n");
	row_head(t, "build rate (postings/s)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.0f",
		    r[i].postings_build_ms > 0
		        ? (double) r[i].postings / (r[i].postings_build_ms / 1000.0)
		        : 0.0);
	bench_text_printf(t, "\n");
	row_head(t, "memory postings (MiB)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.1f", mib(r[i].postings_bytes));
	bench_text_printf(t, "\n");
	row_head(t, "memory per posting (bytes)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.0f",
		    r[i].postings ? (double) r[i].postings_bytes / (double) r[i].postings
		                  : 0.0);
	bench_text_printf(t, "\n");
	row_head(t, "memory profiles (MiB)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.1f", mib(r[i].profiles_bytes));
	bench_text_printf(t, "\n");
	for (int k = 0; k < Q_COUNT_; k++) {
		char label[64];
		snprintf(label, sizeof(label), "%s p50/p95/p99 (ms)", qkind_label[k]);
		row_head(t, label);
		for (size_t i = 0; i < nr; i++) {
			char cell[64];
			snprintf(cell, sizeof(cell), "%.2f/%.2f/%.2f",
			    r[i].q[k].lat.p50_us / 1000.0, r[i].q[k].lat.p95_us / 1000.0,
			    r[i].q[k].lat.p99_us / 1000.0);
			bench_text_printf(t, " %22s", cell);
		}
		bench_text_printf(t, "\n");
	}
	for (int k = 0; k < Q_COUNT_; k++) {
		char label[64];
		snprintf(label, sizeof(label), "%s CPU per query (ms)", qkind_label[k]);
		row_head(t, label);
		for (size_t i = 0; i < nr; i++)
			bench_text_printf(t, " %22.2f", r[i].q[k].cpu_us / 1000.0);
		bench_text_printf(t, "\n");
	}
	for (int k = Q_JOBS_SUMMARY; k < Q_COUNT_;
	     k += Q_CANDIDATES_SUMMARY - Q_JOBS_SUMMARY) {
		char label[64];
		snprintf(label, sizeof(label), "%s entries/reached/scored",
		    k == Q_JOBS_SUMMARY ? "MatchJobs" : "MatchCandidates");
		row_head(t, label);
		for (size_t i = 0; i < nr; i++) {
			char cell[64];
			snprintf(cell, sizeof(cell), "%.0f/%.0f/%.0f", r[i].q[k].entries,
			    r[i].q[k].reached, r[i].q[k].scored);
			bench_text_printf(t, " %22s", cell);
		}
		bench_text_printf(t, "\n");
	}
	row_head(t, "MatchJobs vetoed share (%)");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22.1f", r[i].q[Q_JOBS_SUMMARY].vetoed_pct);
	bench_text_printf(t, "\n");
	for (size_t th = 0; th < o->n_threads; th++) {
		char label[64];
		snprintf(label, sizeof(label), "MatchJobs SUMMARY qps, %llu thread%s",
		    (unsigned long long) o->threads[th], o->threads[th] == 1 ? "" : "s");
		row_head(t, label);
		for (size_t i = 0; i < nr; i++) {
			char cell[64];
			snprintf(cell, sizeof(cell), "%.1f (%.2f cores)", r[i].qps[th],
			    r[i].qps_cpu[th]);
			bench_text_printf(t, " %22s", cell);
		}
		bench_text_printf(t, "\n");
	}
	row_head(t, "puts across a new idf snapshot");
	for (size_t i = 0; i < nr; i++)
		bench_text_printf(t, " %22llu", (unsigned long long) r[i].churn.puts);
	bench_text_printf(t, "\n");
	row_head(t, "  put p50/p99/max (ms)");
	for (size_t i = 0; i < nr; i++) {
		char cell[64];
		snprintf(cell, sizeof(cell), "%.2f/%.2f/%.1f",
		    r[i].churn.lat.p50_us / 1000.0, r[i].churn.lat.p99_us / 1000.0,
		    r[i].churn.lat.max_us / 1000.0);
		bench_text_printf(t, " %22s", cell);
	}
	bench_text_printf(t, "\n");
	for (int w = 0; w < 3; w++) {
		static const char *const heads[] = {"posting update p50/p99/max (ms)",
		    "posting edit p50/p99/max (ms)", "posting removal p50/p99/max (ms)"};
		row_head(t, heads[w]);
		for (size_t i = 0; i < nr; i++) {
			const bench_lat *l = w == 0   ? &r[i].writes.update
			                     : w == 1 ? &r[i].writes.edit
			                              : &r[i].writes.remove;
			char cell[64];
			snprintf(cell, sizeof(cell), "%.2f/%.2f/%.1f", l->p50_us / 1000.0,
			    l->p99_us / 1000.0, l->max_us / 1000.0);
			bench_text_printf(t, " %22s", cell);
		}
		bench_text_printf(t, "\n");
	}
	bench_text_printf(
	    t, "%-36s %22.1f\n", "peak RSS of the run (MiB)", mib(bench_maxrss_bytes()));
}

int
main(int argc, char **argv)
{
	opts o;
	lm_model model;
	size_result *res;
	json_t *doc, *runs, *machine;
	bench_text *text;
	bench_load load;
	int status = 1;

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	if (o.taxonomy != NULL) {
		char err[ERR_MAX];
		if (lm_taxonomy_load(o.taxonomy, &o.tax, err, sizeof(err)) != LM_OK) {
			fprintf(
			    stderr, "bench_index: taxonomy %s: %s\n", o.taxonomy, err);
			return 1;
		}
	}
	lm_model_defaults(&model);
	res = calloc(o.n_postings, sizeof(*res));
	text = calloc(1, sizeof(*text));
	if (res == NULL || text == NULL) {
		fprintf(stderr, "bench_index: out of memory\n");
		free(res);
		free(text);
		lm_taxonomy_free(o.tax);
		return 1;
	}
	machine = bench_machine_json(o.commit);
	bench_load_start(&load);
	for (size_t i = 0; i < o.n_postings; i++)
		if (measure_size(&model, &o, o.postings[i], &res[i]) != 0) {
			json_decref(machine);
			goto done;
		}
	json_object_set_new(
	    machine, "other_cores_busy", json_real(bench_load_others(&load)));
	runs = json_array();
	for (size_t i = 0; i < o.n_postings; i++)
		json_array_append_new(runs, size_json(&o, &res[i]));
	doc = json_pack("{s:s,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:s?},s:o,s:I}",
	    "benchmark", "index", "machine", machine, "params", "profiles",
	    (json_int_t) o.profiles, "queries", (json_int_t) o.queries, "top_k",
	    (json_int_t) o.top_k, "seed", (json_int_t) o.seed, "embedding_dim",
	    (json_int_t) o.embedding_dim, "qps_seconds", (json_int_t) o.qps_seconds,
	    "model_version", model.version, "taxonomy", o.taxonomy, "runs", runs,
	    "peak_rss_bytes", (json_int_t) bench_maxrss_bytes());
	if (doc == NULL) {
		fprintf(stderr, "bench_index: cannot build the result document\n");
		goto done;
	}
	table(text, &o, res, o.n_postings, machine);
	if (bench_write_results(o.out_dir, o.name, doc, text) == 0)
		status = 0;
	json_decref(doc);
done:
	free(res);
	free(text);
	lm_taxonomy_free(o.tax);
	return status;
}
