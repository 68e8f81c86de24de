/*
 * test_bench.c - the benchmark tools run as real processes: lunamatch-loadgen
 * writing generated records into a real LMDB store, and `lunamatch bench`
 * driving a real lunamatch-match over nng on 127.0.0.1 and a raw nng echo.
 *
 * loadgen: the counts it reports are what the store holds; the records are
 * prepared as ingest prepares them (skill ids of the taxonomy, salaries with
 * the rate table's version, locations geocoded with the gazetteer, postings
 * stamped with the fair-requirements list's version) and dated around now;
 * the store it fills first is marked as keeping ingest's positions, as
 * ingest reads the mark; a second run stores nothing new; a count whose map
 * exceeds the store's limit and a bad option value are usage errors that
 * name the limit or the option. bench: every measured call is accounted for (ok plus
 * errors by status equals the count asked for), the percentiles are ordered, the echo
 * phase uses the match phase's message sizes and concurrency and the ratios are computed
 * from the two phases; a 1 ms deadline produces errors that are counted by status, not
 * fatal; a server that is down gives exit 3; usage errors give exit 2; a data directory
 * without a store exit 1.
 * The request size reported is that of the envelopes a scripted REP peer
 * receives. A server stopped (SIGSTOP) in the middle of a count run: the
 * run ends at --time-limit with exit 1 and what it measured; a server
 * stopped before the run: the first warm-up call ends it, exit 3.
 * bench_index, the in-process benchmark, at a small size: every phase its
 * results file reports ran over the counts asked for.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/store.h"
#include "lunamatch/v1/rpc.pb-c.h"
#include "lunamatch/taxonomy.h"
#include "offsets.h"
#include "proc.h"
#include "svctest.h"

#define RUN_MS   120000 /* longest run of one command */
#define START_MS 30000  /* match ready */
#define POSTINGS 2000
#define PROFILES 300

static struct {
	char *dir;
	char data[4200], log[4300];
	char http[64], rpc[64], brokers[64];
	lmt_env env;
	lmt_proc *match;
	int serial;
} G;

/* Runs argv[0..] with the shared environment; stderr captured. */
static lmt_run_result
run(const char *const argv[])
{
	char errpath[4300];

	snprintf(errpath, sizeof(errpath), "%s/stderr.%d", G.dir, G.serial++);
	return lmt_run(argv, G.env.vec, errpath, RUN_MS);
}

static json_t *
parse_line(const char *out)
{
	json_error_t e;
	json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, &e);
	if (j == NULL)
		fail_msg("not JSON: %s (%s)", out, e.text);
	return j;
}

static double
num(const json_t *o, const char *path1, const char *path2)
{
	const json_t *v = json_object_get(o, path1);
	if (path2 != NULL)
		v = json_object_get(v, path2);
	if (!json_is_number(v))
		fail_msg("%s.%s is not a number", path1, path2 ? path2 : "");
	return json_number_value(v);
}

static int
setup(void **state)
{
	(void) state;
	memset(&G, 0, sizeof(G));
	G.dir = lmt_tmpdir("bench");
	snprintf(G.data, sizeof(G.data), "%s/var", G.dir);
	snprintf(G.log, sizeof(G.log), "%s/match.log", G.dir);
	snprintf(G.http, sizeof(G.http), "127.0.0.1:%d", lmt_free_port());
	snprintf(G.rpc, sizeof(G.rpc), "tcp://127.0.0.1:%d", lmt_free_port());
	/* No broker: events are off, and nothing listens there. */
	snprintf(G.brokers, sizeof(G.brokers), "127.0.0.1:%d", lmt_free_port());
	lmt_env_add(&G.env, "LUNAMATCH_DATA_DIR=%s", G.data);
	lmt_env_add(&G.env, "LUNAMATCH_TAXONOMY_FILE=%s", lmt_src("data/skills.tsv"));
	lmt_env_add(&G.env, "LUNAMATCH_RATES_FILE=%s", lmt_src("data/rates.tsv"));
	lmt_env_add(&G.env, "LUNAMATCH_FAIRNESS_FILE=%s",
	    lmt_src("data/fairness/requirements.tsv"));
	lmt_env_add(
	    &G.env, "LUNAMATCH_GAZETTEER_FILE=%s", lmt_src("data/geo/cities.tsv"));
	lmt_env_add(
	    &G.env, "LUNAMATCH_MODEL_FILE=%s", lmt_src("data/model/default.json"));
	lmt_env_add(&G.env, "LUNAMATCH_RPC_URL=%s", G.rpc);
	lmt_env_add(&G.env, "LUNAMATCH_HTTP_ADDR=%s", G.http);
	lmt_env_add(&G.env, "LUNAMATCH_BROKERS=%s", G.brokers);
	lmt_env_add(&G.env, "LUNAMATCH_EVENT_TOP_N=0");
	lmt_env_add(&G.env, "LUNAMATCH_WORKERS=2");
	lmt_env_add(&G.env, "LUNAMATCH_LOG_LEVEL=warn");
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_proc_free(G.match);
	lmt_env_free(&G.env);
	lmt_rmtree(G.dir);
	free(G.dir);
	return 0;
}

static void
match_start(void)
{
	const char *argv[] = {lmt_bin("lunamatch-match"), NULL};
	assert_int_equal(lmt_proc_start_ex(argv, G.env.vec, G.log, &G.match), LM_OK);
	lmt_wait_ready(G.match, G.http, "lunamatch-match", G.log, START_MS);
}

/* ---- loadgen ------------------------------------------------------------------ */

/* Reads posting id from the store s as it was stored. */
static Lunamatch__V1__JobPosting *
stored_posting(lm_store *s, const char *id)
{
	Lunamatch__V1__JobPosting *p;
	void *bytes = NULL;
	size_t len = 0;
	uint64_t version = 0;

	assert_int_equal(
	    lm_store_get(s, LM_KIND_POSTING, id, &bytes, &len, &version), LM_OK);
	p = lunamatch__v1__job_posting__unpack(NULL, len, bytes);
	assert_non_null(p);
	free(bytes);
	return p;
}

/* The store as ingest finds it: marked as keeping its positions, postings
 * in a city of the gazetteer geocoded, every posting stamped with the
 * fair-requirements list's version. */
static void
assert_as_ingest_stores(void)
{
	lm_store_opts so = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	lm_fairness *fair = NULL;
	char err[256], id[32];
	bool kept = false;
	int found = 0;

	assert_int_equal(lm_fairness_load(lmt_src("data/fairness/requirements.tsv"),
	                     &fair, err, sizeof(err)),
	    LM_OK);
	assert_int_equal(lm_store_open(G.data, &so, &s), LM_OK);
	assert_int_equal(lm_ingest_positions_kept(s, &kept), LM_OK);
	assert_true(kept);
	for (int i = 0; i < 200 && found < 3; i++) {
		Lunamatch__V1__JobPosting *p;

		snprintf(id, sizeof(id), "gen-p%09d", i);
		p = stored_posting(s, id);
		assert_string_equal(p->fairness_version, lm_fairness_version(fair));
		for (size_t k = 0; k < p->n_locations; k++) {
			const Lunamatch__V1__Location *l = p->locations[k];
			if (strcmp(l->city, "Berlin") != 0 &&
			    strcmp(l->city, "London") != 0)
				continue;
			assert_true(l->geocoded);
			assert_true(l->geoname_id != 0);
			assert_true(l->latitude > 50.0 && l->latitude < 53.0);
			found++;
		}
		protobuf_c_message_free_unpacked(&p->base, NULL);
	}
	assert_true(found > 0);
	lm_store_close(s);
	lm_fairness_free(fair);
}

static void
test_loadgen(void **state)
{
	const char *gen[] = {lmt_bin("lunamatch-loadgen"), "--postings", "2000",
	    "--profiles", "300", "--batch", "700", NULL};
	const char *stats[] = {lmt_bin("lunamatch"), "store", "stats", "--json", NULL};
	const char *get[] = {lmt_bin("lunamatch"), "store", "get", "posting",
	    "gen-p000000007", "--json", NULL};
	lm_taxonomy *tax = NULL;
	char err[256];
	lmt_run_result r;
	json_t *j, *skills, *sal;
	size_t i;
	time_t now = time(NULL);

	(void) state;
	r = run(gen);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "stored 2300, already there 0, invalid 0"));
	lmt_run_result_free(&r);

	r = run(stats);
	assert_int_equal(r.status, 0);
	j = parse_line(r.out);
	assert_int_equal(num(j, "postings", NULL), POSTINGS);
	assert_int_equal(num(j, "profiles", NULL), PROFILES);
	assert_int_equal(num(j, "changes", NULL), POSTINGS + PROFILES);
	json_decref(j);
	lmt_run_result_free(&r);

	/* Prepared as ingest prepares: canonical taxonomy ids, salary stamped
	 * with the rate table's version, dates around now. */
	assert_int_equal(
	    lm_taxonomy_load(lmt_src("data/skills.tsv"), &tax, err, sizeof(err)), LM_OK);
	r = run(get);
	assert_int_equal(r.status, 0);
	j = parse_line(r.out);
	skills = json_object_get(j, "skills");
	assert_true(json_array_size(skills) >= 5);
	json_array_foreach(skills, i, sal)
	{
		const char *id = json_string_value(json_object_get(sal, "skill_id"));
		assert_non_null(id);
		assert_non_null(lm_taxonomy_get(tax, id));
	}
	sal = json_object_get(j, "salary");
	if (sal != NULL)
		assert_string_not_equal(
		    json_string_value(json_object_get(sal, "rates_version")), "bench");
	assert_true(fabs(num(j, "posted_at", NULL) - (double) now) < 91.0 * 86400);
	json_decref(j);
	lmt_run_result_free(&r);
	lm_taxonomy_free(tax);
	assert_as_ingest_stores();

	/* Ids are fixed by the prefix: a second run stores nothing new. */
	r = run(gen);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "stored 0, already there 2300, invalid 0"));
	lmt_run_result_free(&r);
}

/* Profile id of the store in dir, its time stamp cleared (the load's
 * shift of dates to now), packed: malloc'd bytes in *len. */
static uint8_t *
profile_bytes(const char *dir, const char *id, size_t *len)
{
	lm_store_opts so = {.flags = LM_STORE_RDONLY};
	lm_store *s = NULL;
	Lunamatch__V1__CandidateProfile *c;
	void *bytes = NULL;
	uint8_t *out;

	assert_int_equal(lm_store_open(dir, &so, &s), LM_OK);
	assert_int_equal(lm_store_get(s, LM_KIND_PROFILE, id, &bytes, len, NULL), LM_OK);
	c = lunamatch__v1__candidate_profile__unpack(NULL, *len, bytes);
	assert_non_null(c);
	free(bytes);
	c->updated_at = 0;
	*len = protobuf_c_message_get_packed_size(&c->base);
	out = malloc(*len);
	assert_non_null(out);
	protobuf_c_message_pack(&c->base, out);
	protobuf_c_message_free_unpacked(&c->base, NULL);
	lm_store_close(s);
	return out;
}

/* The profiles of a seed do not depend on the number of postings (they
 * were drawn after them from one stream: the profiles of "seed 1" differed
 * between the 10k, 100k and 1M benchmark stores). */
static void
test_loadgen_profiles_own_stream(void **state)
{
	char a[4300], b[4300];
	const char *gen_a[] = {lmt_bin("lunamatch-loadgen"), "--data-dir", a,
	    "--postings", "20", "--profiles", "3", NULL};
	const char *gen_b[] = {lmt_bin("lunamatch-loadgen"), "--data-dir", b,
	    "--postings", "30", "--profiles", "3", NULL};
	lmt_run_result r;

	(void) state;
	snprintf(a, sizeof(a), "%s/stream-a", G.dir);
	snprintf(b, sizeof(b), "%s/stream-b", G.dir);
	for (int i = 0; i < 2; i++) {
		r = run(i == 0 ? gen_a : gen_b);
		assert_int_equal(r.status, 0);
		lmt_run_result_free(&r);
	}
	for (int i = 0; i < 3; i++) {
		char id[32];
		size_t la, lb;
		snprintf(id, sizeof(id), "gen-c%09d", i);
		uint8_t *pa = profile_bytes(a, id, &la), *pb = profile_bytes(b, id, &lb);
		assert_int_equal(la, lb);
		assert_memory_equal(pa, pb, la);
		free(pa);
		free(pb);
	}
}

static void
test_loadgen_usage(void **state)
{
	char dir[4300];
	const char *big[] = {lmt_bin("lunamatch-loadgen"), "--data-dir", dir,
	    "--postings", "40000000", NULL};
	const char *profiles[] = {lmt_bin("lunamatch-loadgen"), "--data-dir", dir,
	    "--postings", "100", "--profiles", "40000000", NULL};
	const char *escape[] = {lmt_bin("lunamatch-loadgen"), "--data-dir", dir,
	    "--postings", "1\033[2J", NULL};
	const char *negative[] = {
	    lmt_bin("lunamatch-loadgen"), "--data-dir", dir, "--postings", "-1", NULL};
	const char *batch[] = {
	    lmt_bin("lunamatch-loadgen"), "--data-dir", dir, "--batch", "0", NULL};
	const char *seed[] = {lmt_bin("lunamatch-loadgen"), "--data-dir", dir, "--seed",
	    "18446744073709551616", NULL};
	const char *help[] = {lmt_bin("lunamatch-loadgen"), "--help", NULL};
	lmt_run_result r;

	(void) state;
	snprintf(dir, sizeof(dir), "%s/usage", G.dir);
	/* The help shows the ids as test_loadgen finds them in the store. */
	r = run(help);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "gen-p000000000"));
	assert_non_null(strstr(r.out, "gen-c000000000"));
	lmt_run_result_free(&r);
	/* The map for 40005000 records exceeds the 64 GiB limit: the message
	 * names the limit and the largest load that fits. */
	r = run(big);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "limit of 65536 MiB"));
	assert_non_null(strstr(r.err, "at most 33554432 records fit"));
	assert_non_null(strstr(r.err, "with 5000 profiles, at most 33549432 postings"));
	lmt_run_result_free(&r);
	/* The profiles alone exceed it: no count of postings is suggested. */
	r = run(profiles);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "at most 33554432 records fit"));
	assert_null(strstr(r.err, "postings\n"));
	lmt_run_result_free(&r);
	/* A bad value is quoted escaped: no terminal escape reaches stderr. */
	r = run(escape);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--postings: \"1\\x1b[2J\" is not a count"));
	assert_null(strchr(r.err, '\033'));
	lmt_run_result_free(&r);
	r = run(negative);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--postings: \"-1\" is not a count"));
	lmt_run_result_free(&r);
	r = run(batch);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--batch: \"0\" is not a count from 1"));
	lmt_run_result_free(&r);
	/* 2^64 does not fit: refused, not read as 2^64 - 1. */
	r = run(seed);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--seed: \"18446744073709551616\" is not"));
	lmt_run_result_free(&r);
}

/* ---- bench ---------------------------------------------------------------------- */

static uint64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* A scripted MatchService: answers every request OK with an empty payload
 * and counts the requests and their bytes. Stops at stop or after
 * PEER_MS. */
#define PEER_MS 60000

typedef struct peer {
	nng_socket sock;
	pthread_t thread;
	atomic_bool stop;
	uint64_t n, bytes;
} peer;

static void *
peer_main(void *arg)
{
	peer *p = arg;
	uint64_t end = ms_now() + PEER_MS;

	while (!atomic_load(&p->stop) && ms_now() < end) {
		Lunamatch__V1__RpcRequest *req;
		Lunamatch__V1__RpcResponse resp = LUNAMATCH__V1__RPC_RESPONSE__INIT;
		nng_msg *m;
		size_t len;

		if (nng_recvmsg(p->sock, &m, 0) != 0)
			continue; /* the receive time-out: look at stop */
		len = nng_msg_len(m);
		req = lunamatch__v1__rpc_request__unpack(NULL, len, nng_msg_body(m));
		nng_msg_free(m);
		if (req == NULL)
			continue;
		p->n++;
		p->bytes += len;
		resp.request_id = req->request_id;
		resp.code = LUNAMATCH__V1__STATUS_CODE__OK;
		len = lunamatch__v1__rpc_response__get_packed_size(&resp);
		if (nng_msg_alloc(&m, len) == 0) {
			lunamatch__v1__rpc_response__pack(&resp, nng_msg_body(m));
			if (nng_sendmsg(p->sock, m, 0) != 0)
				nng_msg_free(m);
		}
		lunamatch__v1__rpc_request__free_unpacked(req, NULL);
	}
	return NULL;
}

/* The reported request size is the mean size of the envelopes the client
 * sent, request id and caller metadata included. */
static void
test_bench_request_size(void **state)
{
	char url[64];
	const char *argv[] = {lmt_bin("lunamatch"), "bench", "jobs", "--url", url,
	    "--count", "40", "--clients", "2", "--warmup", "0", "--no-echo", "--json",
	    NULL};
	peer p;
	lmt_run_result r;
	json_t *j;

	(void) state;
	memset(&p, 0, sizeof(p));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", lmt_free_port());
	assert_int_equal(nng_rep0_open(&p.sock), 0);
	assert_int_equal(nng_socket_set_ms(p.sock, NNG_OPT_RECVTIMEO, 100), 0);
	assert_int_equal(nng_listen(p.sock, url, NULL, 0), 0);
	assert_int_equal(pthread_create(&p.thread, NULL, peer_main, &p), 0);
	r = run(argv);
	atomic_store(&p.stop, true);
	pthread_join(p.thread, NULL);
	nng_close(p.sock);
	assert_int_equal(r.status, 0);
	assert_int_equal(p.n, 40);
	j = parse_line(r.out);
	assert_int_equal(num(j, "match", "ok"), 40);
	if (fabs(num(j, "match", "request_bytes") - (double) p.bytes / (double) p.n) >
	    1e-9)
		fail_msg("reported request size %f, the peer received %f",
		    num(j, "match", "request_bytes"), (double) p.bytes / (double) p.n);
	json_decref(j);
	lmt_run_result_free(&r);
}

/* Every call is counted once: ok plus the errors by status. */
static void
assert_accounted(const json_t *phase, double calls)
{
	const json_t *codes = json_object_get(phase, "errors_by_code");
	const char *k;
	const json_t *v;
	double errors = 0;

	assert_true(json_is_object(codes));
	json_object_foreach((json_t *) codes, k, v) errors += json_number_value(v);
	assert_true(num(phase, "calls", NULL) == calls);
	assert_true(num(phase, "errors", NULL) == errors);
	assert_true(num(phase, "ok", NULL) + errors == calls);
}

static void
assert_ordered(const json_t *phase)
{
	double p50 = num(phase, "p50_ms", NULL), p90 = num(phase, "p90_ms", NULL);
	double p99 = num(phase, "p99_ms", NULL), max = num(phase, "max_ms", NULL);

	assert_true(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max);
	assert_true(num(phase, "qps", NULL) > 0);
}

static void
test_bench_jobs(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch"), "bench", "jobs", "--count", "200",
	    "--clients", "4", "--top", "5", "--explain", "full", "--json", NULL};
	lmt_run_result r;
	json_t *j, *m, *e;

	(void) state;
	match_start();
	r = run(argv);
	assert_int_equal(r.status, 0);
	j = parse_line(r.out);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "MatchJobs");
	assert_string_equal(json_string_value(json_object_get(j, "explain")), "FULL");
	assert_int_equal(num(j, "stored_ids", NULL), PROFILES);
	assert_int_equal(num(j, "clients", NULL), 4);
	m = json_object_get(j, "match");
	e = json_object_get(j, "echo");
	assert_accounted(m, 200);
	assert_accounted(e, 200);
	assert_int_equal(num(m, "errors", NULL), 0);
	assert_int_equal(num(e, "errors", NULL), 0);
	assert_ordered(m);
	assert_ordered(e);
	/* The echo carries the match phase's message sizes. */
	assert_true(num(m, "request_bytes", NULL) > 20);
	assert_true(num(m, "response_bytes", NULL) > num(m, "request_bytes", NULL));
	assert_true(
	    fabs(num(e, "request_bytes", NULL) - num(m, "request_bytes", NULL)) <= 0.5);
	assert_true(
	    fabs(num(e, "response_bytes", NULL) - num(m, "response_bytes", NULL)) <= 0.5);
	assert_true(fabs(num(j, "ratio", "p50") -
	                 num(m, "p50_ms", NULL) / num(e, "p50_ms", NULL)) < 1e-9);
	assert_true(fabs(num(j, "ratio", "qps") -
	                 num(m, "qps", NULL) / num(e, "qps", NULL)) < 1e-9);
	json_decref(j);
	lmt_run_result_free(&r);
}

static void
test_bench_candidates_duration(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch"), "bench", "candidates", "--duration",
	    "1", "--clients", "2", "--no-echo", "--json", NULL};
	const char *text[] = {lmt_bin("lunamatch"), "bench", "candidates", "--count",
	    "20", "--clients", "2", NULL};
	lmt_run_result r;
	json_t *j, *m;

	(void) state;
	r = run(argv);
	assert_int_equal(r.status, 0);
	j = parse_line(r.out);
	assert_string_equal(
	    json_string_value(json_object_get(j, "method")), "MatchCandidates");
	assert_int_equal(num(j, "stored_ids", NULL), POSTINGS);
	assert_null(json_object_get(j, "echo"));
	m = json_object_get(j, "match");
	assert_accounted(m, num(m, "calls", NULL));
	assert_true(num(m, "calls", NULL) > 0);
	assert_true(num(m, "seconds", NULL) >= 1.0 && num(m, "seconds", NULL) < 30);
	json_decref(j);
	lmt_run_result_free(&r);

	/* The table names both phases and the ratio. */
	r = run(text);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "MatchCandidates "));
	assert_non_null(strstr(r.out, "nng echo "));
	assert_non_null(strstr(r.out, "match / echo: p50 "));
	lmt_run_result_free(&r);
}

/* A report that cannot be written fails, saying so: the table exited 1
 * without a word. */
static void
test_bench_unwritten(void **state)
{
	const char *table[] = {lmt_bin("lunamatch"), "bench", "candidates", "--count",
	    "4", "--clients", "1", "--warmup", "0", NULL};
	char errpath[4300];

	(void) state;
	snprintf(errpath, sizeof(errpath), "%s/stderr.%d", G.dir, G.serial++);
	lmt_expect_unwritten(table, G.env.vec, errpath, RUN_MS);
}

/* A 1 ms deadline: calls that miss it are errors by status, not a failure
 * of the run (unless none succeeded, or a warm-up call got no connection in
 * time: exit 3). */
static void
test_bench_deadline(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch"), "bench", "jobs", "--count", "100",
	    "--clients", "4", "--timeout-ms", "1", "--no-echo", "--json", NULL};
	lmt_run_result r;

	(void) state;
	r = run(argv);
	if (r.status != 0 && r.status != 3)
		fail_msg("exit %d, expected 0 or 3\nstdout: %s\nstderr: %s", r.status,
		    r.out, r.err ? r.err : "");
	if (r.status == 0) {
		json_t *j = parse_line(r.out);
		assert_accounted(json_object_get(j, "match"), 100);
		json_decref(j);
	} else if (strstr(r.err, "server unreachable") == NULL) {
		/* A warm-up call that got no connection in 1 ms ends the run
		 * as unreachable; else the measured calls all failed. */
		assert_non_null(strstr(r.err, "no call succeeded (100 errors)"));
	}
	lmt_run_result_free(&r);
}

/* A server stopped in the middle of a count run: the run ends at
 * --time-limit and reports what it has, exit 1 for the failed calls. */
static void
test_bench_stopped_mid_run(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch"), "bench", "jobs", "--count",
	    "10000000", "--clients", "2", "--timeout-ms", "500", "--time-limit", "4",
	    "--warmup", "0", "--no-echo", "--json", NULL};
	char errpath[4300], line[65536];
	lmt_proc *b = NULL;
	uint64_t t0 = ms_now();
	int status = -1;
	json_t *j, *m;

	(void) state;
	snprintf(errpath, sizeof(errpath), "%s/stderr.midrun", G.dir);
	assert_int_equal(lmt_proc_start_ex(argv, G.env.vec, errpath, &b), LM_OK);
	sleep(1);
	assert_int_equal(lmt_proc_signal(G.match, SIGSTOP), LM_OK);
	if (lmt_proc_wait(b, 30000, &status) != LM_OK) {
		lmt_proc_signal(G.match, SIGCONT);
		lmt_proc_free(b);
		fail_msg("bench still running 30 s after a 4 s time limit");
	}
	assert_int_equal(lmt_proc_signal(G.match, SIGCONT), LM_OK);
	assert_true(ms_now() - t0 < 15000);
	assert_int_equal(status, 1);
	assert_int_equal(lmt_proc_readline(b, line, sizeof(line), 5000), LM_OK);
	j = parse_line(line);
	m = json_object_get(j, "match");
	assert_true(json_is_true(json_object_get(m, "time_limited")));
	assert_int_equal(num(j, "time_limit_s", NULL), 4);
	assert_true(num(m, "ok", NULL) > 0);
	assert_true(num(m, "errors", NULL) > 0);
	assert_accounted(m, num(m, "calls", NULL));
	json_decref(j);
	lmt_proc_free(b);
}

/* A server that does not answer: the first warm-up call ends the run. */
static void
test_bench_warmup_unreachable(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch"), "bench", "jobs", "--duration", "1",
	    "--clients", "2", "--timeout-ms", "2000", NULL};
	lmt_run_result r;
	uint64_t t0;

	(void) state;
	assert_int_equal(lmt_proc_signal(G.match, SIGSTOP), LM_OK);
	t0 = ms_now();
	r = run(argv);
	assert_int_equal(lmt_proc_signal(G.match, SIGCONT), LM_OK);
	/* Five warm-up calls of 2 s each per client, then a second of
	 * measuring, took 12 s. */
	if (ms_now() - t0 >= 8000)
		fail_msg("the run took %" PRIu64 " ms", ms_now() - t0);
	assert_int_equal(r.status, 3);
	assert_non_null(strstr(r.err, "server unreachable"));
	assert_string_equal(r.out, "");
	lmt_run_result_free(&r);
	/* The next tests get a server that was never stopped. */
	lmt_proc_free(G.match);
	G.match = NULL;
	match_start();
}

/* A server that is gone: no call succeeds, exit 3, and the errors by
 * status go with the error to standard error; standard output stays empty
 * in both forms (with --json they used to be printed there as text). */
static void
test_bench_server_down(void **state)
{
	const char *argv[] = {lmt_bin("lunamatch"), "bench", "jobs", "--count", "4",
	    "--clients", "2", "--timeout-ms", "300", "--warmup", "0", NULL, NULL};
	lmt_run_result r;

	(void) state;
	lmt_proc_stop(&G.match, 30000);
	for (int json = 0; json <= 1; json++) {
		argv[11] = json ? "--json" : NULL;
		r = run(argv);
		assert_int_equal(r.status, 3);
		assert_non_null(strstr(r.err, "no call succeeded (4 errors)"));
		assert_non_null(
		    strstr(r.err, "lunamatch bench: MatchJobs errors: 4 UNAVAILABLE"));
		if (r.out[0] != '\0')
			fail_msg(
			    "stdout%s not empty: %s", json ? " (--json)" : "", r.out);
		lmt_run_result_free(&r);
	}
}

/* The in-process index benchmark at a small size: every phase it reports
 * ran over the counts asked for. At 600 postings the writes phases change
 * min(600, 2000) postings each; the qps phase ran for a while. */
static void
test_bench_index_phases(void **state)
{
	char outdir[4300], path[4400];
	const char *argv[] = {lmt_bin("bench_index"), "--postings", "600", "--profiles",
	    "120", "--queries", "25", "--max-seconds", "5", "--qps-seconds", "1",
	    "--threads", "1", "--out-dir", outdir, "--commit", "test", NULL};
	const char *phases[] = {"match_jobs_none", "match_jobs_summary",
	    "match_jobs_full", "match_candidates_summary"};
	json_error_t e;
	json_t *j, *r, *w;
	lmt_run_result res;

	(void) state;
	snprintf(outdir, sizeof(outdir), "%s/bench-index", G.dir);
	assert_int_equal(mkdir(outdir, 0700), 0);
	res = run(argv);
	assert_int_equal(res.status, 0);
	lmt_run_result_free(&res);
	snprintf(path, sizeof(path), "%s/index.json", outdir);
	j = json_load_file(path, 0, &e);
	if (j == NULL)
		fail_msg("%s: %s", path, e.text);
	r = json_array_get(json_object_get(j, "runs"), 0);
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(j, "runs")), 1);
	assert_true(num(r, "postings", NULL) == 600);
	assert_true(num(r, "profiles", NULL) == 120);
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		const json_t *l =
		    json_object_get(json_object_get(r, "latency"), phases[i]);
		assert_non_null(l);
		assert_true(num(l, "n", NULL) == 25);
		assert_true(num(l, "matches_per_query", NULL) > 0);
		assert_true(num(l, "matches_per_query", NULL) <= 10);
		assert_true(num(l, "p50_us", NULL) <= num(l, "p99_us", NULL));
	}
	assert_true(
	    num(json_array_get(json_object_get(r, "qps"), 0), "queries", NULL) > 0);
	w = json_object_get(r, "stored_posting_changes");
	assert_true(num(w, "update", "n") == 600);
	assert_true(num(w, "edit", "n") == 600);
	assert_true(num(w, "remove", "n") == 600);
	assert_true(num(json_object_get(r, "reshare_puts"), "puts", NULL) > 0);
	json_decref(j);
}

static void
test_bench_usage(void **state)
{
	const char *both[] = {lmt_bin("lunamatch"), "bench", "jobs", "--count", "5",
	    "--duration", "2", NULL};
	const char *kind[] = {lmt_bin("lunamatch"), "bench", "postings", NULL};
	const char *clients[] = {
	    lmt_bin("lunamatch"), "bench", "jobs", "--clients", "0", NULL};
	const char *limit[] = {lmt_bin("lunamatch"), "bench", "jobs", "--duration", "2",
	    "--time-limit", "5", NULL};
	const char *badurl[] = {lmt_bin("lunamatch"), "bench", "jobs", "--url",
	    "bogus://x", "--count", "1", "--no-echo", NULL};
	char nostore[4300];
	const char *empty[] = {
	    lmt_bin("lunamatch"), "bench", "jobs", "--data-dir", nostore, NULL};
	lmt_run_result r;

	(void) state;
	r = run(both);
	assert_int_equal(r.status, 2);
	lmt_run_result_free(&r);
	r = run(kind);
	assert_int_equal(r.status, 2);
	lmt_run_result_free(&r);
	r = run(clients);
	assert_int_equal(r.status, 2);
	lmt_run_result_free(&r);
	r = run(limit);
	assert_int_equal(r.status, 2);
	lmt_run_result_free(&r);
	/* A URL the client refuses: a usage error, as for every command. */
	r = run(badurl);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "cannot connect"));
	lmt_run_result_free(&r);
	snprintf(nostore, sizeof(nostore), "%s/none", G.dir);
	r = run(empty);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "cannot open the record store"));
	lmt_run_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_loadgen),
	    cmocka_unit_test(test_loadgen_profiles_own_stream),
	    cmocka_unit_test(test_loadgen_usage),
	    cmocka_unit_test(test_bench_request_size),
	    cmocka_unit_test(test_bench_jobs),
	    cmocka_unit_test(test_bench_candidates_duration),
	    cmocka_unit_test(test_bench_unwritten),
	    cmocka_unit_test(test_bench_deadline),
	    cmocka_unit_test(test_bench_stopped_mid_run),
	    cmocka_unit_test(test_bench_warmup_unreachable),
	    cmocka_unit_test(test_bench_server_down),
	    cmocka_unit_test(test_bench_usage),
	    cmocka_unit_test(test_bench_index_phases),
	};
	/* LMT_TEST_FILTER=test_loadgen* runs some tests (a cmocka glob). */
	if (getenv("LMT_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("LMT_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
