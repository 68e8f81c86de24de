/*
 * loadgen.c - `lunamatch-loadgen`: writes generated postings and profiles
 * straight into a record store, so that benchmarks of the running services
 * need not push millions of records through Kafka and ingest.
 *
 *   lunamatch-loadgen [--data-dir DIR] [--postings N] [--profiles N]
 *                     [--seed S] [--batch B] [--id-prefix P]
 *
 * The records come from the benchmarks' generator (bench/bench_util.h) with
 * the skills of the taxonomy (LUNAMATCH_TAXONOMY_FILE, data/skills.tsv):
 * canonical ids and display names in a Zipf popularity order; postings and
 * profiles are two streams (PROFILE_SEED), so that neither count changes
 * the records of the other. Each record is then prepared exactly as ingest
 * prepares what it consumes, with the data
 * files ingest loads (lm_record_data_load: taxonomy, rate table,
 * fair-requirements list, gazetteer) and lm_posting_prepare /
 * lm_profile_prepare (validation, normalization, salaries in the reference
 * currency, locations geocoded, postings screened and stamped with the
 * list's version), and stored at version 1 through lm_store_put, in durable
 * transactions of --batch records. Dates are shifted so that they lie
 * around the current time, as a live feed's do.
 *
 * Transactions begin as ingest's batches do (lm_ingest_positions_begin): a
 * store loadgen writes first is marked as keeping ingest's Kafka positions,
 * so that an ingest started on it later consumes its topics from the start
 * instead of taking it for a store written before positions were kept.
 *
 * The map is sized for the whole load from the start, MAP_BYTES_PER_RECORD
 * per record, and may not exceed the store's growth limit (64 GiB, or
 * LUNAMATCH_MAP_SIZE_MB when that is larger, as for ingest); a load that
 * does not fit is refused as a usage error, naming the largest that does.
 *
 * Ids are <prefix>p<n> and <prefix>c<n> (n from 0, 9 digits), so a second run
 * with the same prefix stores nothing new: every put is a stale no-op,
 * counted and reported. A running ingest may write the same store meanwhile
 * (LMDB serializes the writers); a running match picks the records up
 * through its change-log poll.
 *
 * Exit status: 0 when every generated record was stored or already there,
 * 1 when the store failed or a record did not prepare, 2 for a usage error.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "lunamatch/config.h"
#include "lunamatch/error.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/recdata.h"
#include "lunamatch/record.h"
#include "lunamatch/store.h"
#include "lunamatch/textfile.h"
#include "offsets.h"

#define PROG "lunamatch-loadgen"
/* Most records of one kind per run. */
#define RECORDS_MAX 100000000ull
/* Most records per store transaction. */
#define BATCH_MAX 1000000ull
/* Map bytes reserved per record to write (about 1.2 KiB are used), so that
 * the map need not grow and replay midway. */
#define MAP_BYTES_PER_RECORD 2048ull
/* Longest --id-prefix, so that an id stays within LM_RECORD_ID_MAX. */
#define PREFIX_MAX 64
/* The profiles' seed, from --seed: their own stream, so that the profiles
 * of a seed are the same whatever the number of postings (and so those of
 * 10k, 100k and 1M postings are one set). "profiles" in ASCII. */
#define PROFILE_SEED(s) ((s) ^ 0x70726f66696c6573ull)

enum { OPT_DATA_DIR = 1, OPT_POSTINGS, OPT_PROFILES, OPT_SEED, OPT_BATCH, OPT_PREFIX };

static const struct option options[] = {
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"postings", required_argument, NULL, OPT_POSTINGS},
    {"profiles", required_argument, NULL, OPT_PROFILES},
    {"seed", required_argument, NULL, OPT_SEED},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"id-prefix", required_argument, NULL, OPT_PREFIX},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "Usage: " PROG " [options]\n"
	    "\n"
	    "Writes generated postings and profiles into the record store, prepared\n"
	    "as ingest prepares records, with the skills of the taxonomy.\n"
	    "\n"
	    "Options:\n"
	    "  --data-dir DIR    record store (LUNAMATCH_DATA_DIR, default ./var)\n"
	    "  --postings N      postings to write (default 10000)\n"
	    "  --profiles N      profiles to write (default 5000)\n"
	    "  --seed S          generator seed (default 1)\n"
	    "  --batch B         records per durable transaction (default 10000)\n"
	    "  --id-prefix P     id prefix (default gen-): an id is P, then p or c\n"
	    "                    (posting or profile), then the record's number\n"
	    "                    in 9 digits: gen-p000000000, gen-c000000000, ...\n"
	    "\n"
	    "Records are prepared with the data files ingest loads:\n"
	    "LUNAMATCH_TAXONOMY_FILE, LUNAMATCH_RATES_FILE, LUNAMATCH_FAIRNESS_FILE\n"
	    "and LUNAMATCH_GAZETTEER_FILE (defaults under data/).\n"
	    "LUNAMATCH_MAP_SIZE_MB sets the initial map size; the map for the whole\n"
	    "load may not exceed 64 GiB or LUNAMATCH_MAP_SIZE_MB, whichever is "
	    "larger.\n");
}

typedef struct load {
	lm_store *store;
	lm_store_txn *txn;
	lm_record_ctx rctx;
	bench_gen *gen;  /* the postings' stream */
	bench_gen *pgen; /* the profiles', of their own seed (PROFILE_SEED) */
	int64_t shift;   /* added to every generated date */
	uint64_t batch, in_txn;
	uint64_t stored, stale, bad;
} load;

/* Commits the open transaction, if any. */
static int
commit(load *L)
{
	int rc;

	if (L->txn == NULL)
		return LM_OK;
	rc = lm_store_commit(L->txn, NULL);
	L->txn = NULL;
	L->in_txn = 0;
	if (rc != LM_OK)
		lm_error("loadgen.commit", "committing a batch: %s", lm_strerror(rc));
	return rc;
}

/* Encodes msg and stores it as record id of kind k, committing every
 * L->batch records. */
static int
put(load *L, lm_kind k, const char *id, const ProtobufCMessage *msg)
{
	uint8_t *bytes = NULL;
	size_t len = 0;
	int rc;

	if (L->txn == NULL &&
	    (rc = lm_ingest_positions_begin(L->store, &L->txn)) != LM_OK) {
		lm_error("loadgen.begin", "%s", lm_strerror(rc));
		return rc;
	}
	if ((rc = lm_pb_encode(msg, &bytes, &len)) != LM_OK)
		return rc;
	rc = lm_store_put(L->txn, k, id, 1, bytes, len);
	free(bytes);
	if (rc == LM_ESTALE) {
		L->stale++;
	} else if (rc != LM_OK) {
		lm_error(
		    "loadgen.put", "%s %s: %s", lm_kind_name(k), id, lm_strerror(rc));
		return rc;
	} else {
		L->stored++;
	}
	if (++L->in_txn >= L->batch)
		return commit(L);
	return LM_OK;
}

static int
load_postings(load *L, const char *prefix, uint64_t n)
{
	char id[PREFIX_MAX + 16], err[256];
	lm_reject why;

	for (uint64_t i = 0; i < n; i++) {
		Lunamatch__V1__JobPosting *p;
		int rc;

		snprintf(id, sizeof(id), "%sp%09" PRIu64, prefix, i);
		p = bench_gen_posting(L->gen, id);
		p->posted_at += L->shift;
		if (p->expires_at != 0)
			p->expires_at += L->shift;
		rc = lm_posting_prepare(&L->rctx, p, &why, err, sizeof(err));
		if (rc == LM_OK)
			rc = put(L, LM_KIND_POSTING, id, &p->base);
		else {
			lm_error("loadgen.prepare", "posting %s: %s", id, err);
			L->bad++;
			rc = LM_OK;
		}
		protobuf_c_message_free_unpacked(&p->base, NULL);
		if (rc != LM_OK)
			return rc;
	}
	return LM_OK;
}

static int
load_profiles(load *L, const char *prefix, uint64_t n)
{
	char id[PREFIX_MAX + 16], err[256];
	lm_reject why;

	for (uint64_t i = 0; i < n; i++) {
		Lunamatch__V1__CandidateProfile *c;
		int rc;

		snprintf(id, sizeof(id), "%sc%09" PRIu64, prefix, i);
		c = bench_gen_profile(L->pgen, id);
		c->updated_at += L->shift;
		rc = lm_profile_prepare(&L->rctx, c, &why, err, sizeof(err));
		if (rc == LM_OK)
			rc = put(L, LM_KIND_PROFILE, id, &c->base);
		else {
			lm_error("loadgen.prepare", "profile %s: %s", id, err);
			L->bad++;
			rc = LM_OK;
		}
		protobuf_c_message_free_unpacked(&c->base, NULL);
		if (rc != LM_OK)
			return rc;
	}
	return LM_OK;
}

/* Names the option of getopt_long's result c for messages. */
static const char *
option_name(int c)
{
	for (const struct option *o = options; o->name != NULL; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

/*
 * Checks that the map for records records fits the store's growth limit,
 * setting so's initial map and limit as ingest sets them from
 * LUNAMATCH_MAP_SIZE_MB (map_mb). False, with a message on stderr, when
 * it does not fit.
 */
static bool
size_map(lm_store_opts *so, uint64_t map_mb, uint64_t postings, uint64_t profiles)
{
	uint64_t records = postings + profiles, fit;

	so->map_size = map_mb << 20;
	so->max_map_size = so->map_size > LM_STORE_MAX_MAP_SIZE_DEFAULT
	                       ? so->map_size
	                       : LM_STORE_MAX_MAP_SIZE_DEFAULT;
	fit = so->max_map_size / MAP_BYTES_PER_RECORD;
	if (records > fit) {
		fprintf(stderr,
		    PROG ": %" PRIu64 " postings and %" PRIu64 " profiles need a map of "
		         "%" PRIu64 " MiB (%llu bytes per record), more than the store's "
		         "limit of %" PRIu64
		         " MiB (64 GiB, or LUNAMATCH_MAP_SIZE_MB when "
		         "larger); at most %" PRIu64 " records fit\n",
		    postings, profiles,
		    (uint64_t) ((records * MAP_BYTES_PER_RECORD) >> 20),
		    MAP_BYTES_PER_RECORD, so->max_map_size >> 20, fit);
		if (profiles < fit)
			fprintf(stderr,
			    PROG ": with %" PRIu64 " profiles, at most %" PRIu64
			         " postings\n",
			    profiles, fit - profiles);
		return false;
	}
	if (so->map_size < records * MAP_BYTES_PER_RECORD)
		so->map_size = records * MAP_BYTES_PER_RECORD;
	return true;
}

int
main(int argc, char **argv)
{
	lm_config cfg;
	char *cargv[] = {argv[0], NULL};
	char err[512], esc[256];
	const char *prefix = "gen-";
	uint64_t postings = 10000, profiles = 5000, seed = 1, batch = 10000;
	lm_record_data data = {0};
	load L = {0};
	lm_store_opts so = {0};
	uint64_t t0;
	int c, rc, rv = 1;

	/* The environment's settings (LUNAMATCH_DATA_DIR, data files, map
	 * size), as ingest reads them; the flags below override them. */
	if (lm_config_load(&cfg, LM_PROG_INGEST, 1, cargv, err, sizeof(err)) != LM_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		return 2;
	}
	lm_log_set_service("loadgen");
	lm_log_set_level(cfg.log_level);
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		const char *want = NULL;
		switch (c) {
		case OPT_DATA_DIR:
			if (strlen(optarg) >= sizeof(cfg.data_dir))
				want = "a shorter path";
			else
				snprintf(
				    cfg.data_dir, sizeof(cfg.data_dir), "%s", optarg);
			break;
		case OPT_POSTINGS:
			if (!lm_textfile_whole(optarg, 0, RECORDS_MAX, &postings))
				want = "a count from 0 to 100000000";
			break;
		case OPT_PROFILES:
			if (!lm_textfile_whole(optarg, 0, RECORDS_MAX, &profiles))
				want = "a count from 0 to 100000000";
			break;
		case OPT_SEED:
			if (!lm_textfile_whole(optarg, 0, UINT64_MAX, &seed))
				want = "an unsigned 64-bit integer";
			break;
		case OPT_BATCH:
			if (!lm_textfile_whole(optarg, 1, BATCH_MAX, &batch))
				want = "a count from 1 to 1000000";
			break;
		case OPT_PREFIX:
			prefix = optarg;
			if (strlen(prefix) > PREFIX_MAX ||
			    (*prefix != '\0' && !lm_record_id_valid(prefix)))
				want = "at most 64 of [A-Za-z0-9._:-]";
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (want != NULL) {
			fprintf(stderr, PROG ": --%s: \"%s\" is not %s\n", option_name(c),
			    lm_config_escape(optarg, esc, sizeof(esc)), want);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG ": unexpected argument \"%s\"\n",
		    lm_config_escape(argv[optind], esc, sizeof(esc)));
		return 2;
	}
	if (!size_map(&so, cfg.map_size_mb, postings, profiles))
		return 2;

	if (lm_record_data_load(&cfg, &data, err, sizeof(err)) != LM_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		goto out;
	}
	if ((rc = lm_store_open(cfg.data_dir, &so, &L.store)) != LM_OK) {
		fprintf(stderr, PROG ": cannot open the record store in %s: %s\n",
		    cfg.data_dir, lm_strerror(rc));
		goto out;
	}
	L.rctx = lm_record_data_ctx(&data, &cfg);
	L.gen = bench_gen_new(&(bench_gen_opts){.seed = seed});
	bench_gen_use_taxonomy(L.gen, data.taxonomy);
	L.pgen = bench_gen_new(&(bench_gen_opts){.seed = seed});
	bench_gen_use_taxonomy(L.pgen, data.taxonomy);
	bench_gen_reseed(L.pgen, PROFILE_SEED(seed));
	L.shift = (int64_t) time(NULL) - BENCH_NOW;
	L.batch = batch;

	t0 = bench_now_ns();
	rc = load_postings(&L, prefix, postings);
	if (rc == LM_OK)
		rc = load_profiles(&L, prefix, profiles);
	if (rc == LM_OK)
		rc = commit(&L);
	else
		lm_store_abort(L.txn);
	if (rc != LM_OK) {
		fprintf(stderr,
		    PROG ": stopped: %s (records of the failed batch are not stored)\n",
		    lm_strerror(rc));
		goto out;
	}
	printf("stored %" PRIu64 ", already there %" PRIu64 ", invalid %" PRIu64
	       " in %.1f s\n",
	    L.stored, L.stale, L.bad, (double) (bench_now_ns() - t0) / 1e9);
	rv = L.bad == 0 ? 0 : 1;
out:
	bench_gen_free(L.gen);
	bench_gen_free(L.pgen);
	lm_store_close(L.store);
	lm_record_data_free(&data);
	return rv;
}
