/*
 * index.c - the in-memory match index; see index.h for the contract.
 *
 * Records live in two tables (postings, profiles): the shared hash map from
 * id to entry for lookups, and arrays by doc id (a small integer per
 * record, reused after a removal) of the entries and of their slots. Each
 * entry owns the scorer's prepared form of its record; the record itself
 * is decoded only for what a response shows (see struct ent), from the
 * entry's packed bytes or, in an index that reads its records from a store
 * (lm_index_set_store), from the store's bytes in place. One pthread
 * rwlock guards everything; the IDF statistics, the inverted lists
 * and the expiry heap change only under the write lock (the lists of a
 * new idf snapshot being built aside also under the read lock, by the one
 * thread that holds rb_lock; no query reads them).
 *
 * Queries avoid the scattered records: every prep is bound to the IDF
 * statistics (skill ids and words become small integers, see score.h); the
 * inverted lists (inverted.h) give the candidates of a query by term and
 * partition, with each posting's share of each of its skills (at the idf
 * snapshot, lm_idf_snap) and the sum of the shares that follow it, from
 * which a query finds the records that can reach its bar and bounds them;
 * the slots point at each record's veto key (which also bounds the score)
 * inside its prep, so that the few records a query evaluates are mostly
 * vetoed or bounded away by the key alone. Binding and unbinding write to the
 * statistics, so they happen under the write lock, as does freeing a bound
 * prep. The IDF statistics count every stored posting that is not closed
 * (lm_skill_stats_counts), expired or not: they depend on the records alone,
 * never on a clock, so the same records give the same scores at any time.
 * Only the count of postings open at the index clock (a gauge for
 * operators) follows the clock, through a min-heap of expiry times: an
 * expiry costs O(log n), not a pass over every posting.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index.h"
#include "lunamatch/alloc.h"
#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"
#include "inverted.h"
#include "score.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile CandidateProfile;

/*
 * One stored record. A record whose prep is self-contained
 * (lm_posting_prep_self_contained, lm_profile_prep_self_contained: every
 * validated one) is kept as its prep and its packed bytes (wire: the
 * indexed version, as stored), which are decoded only for the records a
 * response returns or explains (entry_view) and for GetPosting and
 * GetProfile; its prep has forgotten the record. Any other record keeps
 * its compact decoded record (rec).
 */
/*
 * A record: its prep, and the record itself in one of three forms. An
 * entry with wire keeps its packed bytes; one with rec keeps the decoded
 * compact record (a prep that is not self-contained reads it); one with
 * neither (put as stored) keeps nothing, and its bytes are read from the
 * index's store at `version` (entry_decode).
 */
struct ent {
	uint32_t slot;     /* the record's doc id: its place in v and slots */
	uint32_t wire_len; /* bytes of the packed record (at wire, or stored) */
	uint8_t part;      /* its partition of the inverted lists */
	/* A byte of its own: the load's two listing threads each write it for
	 * their own postings while reading the flags below of every one. */
	bool listed; /* in the inverted lists */
	/* Bits of one byte, written under the write lock only. */
	bool counted : 1;          /* postings: counted in the IDF statistics */
	bool live : 1;             /* postings: open and unexpired at the index clock */
	bool closed : 1;           /* postings: CLOSED */
	atomic_bool damage_logged; /* note_damaged logged this entry's record */
	/* Postings: 1 + its place in the expiry heap; 0 when not in it. A
	 * posting is in the heap exactly when it is live and has an expiry. */
	uint32_t hpos;
	const char *id; /* the prep's id */
	uint64_t version;
	ProtobufCMessage *rec; /* compact (lm_pb_compact), or NULL */
	uint8_t *wire;         /* the packed record, or NULL */
	union {
		lm_posting_prep *pp; /* in the postings' table */
		lm_profile_prep *cp; /* in the profiles' table */
	};
};

/* What a query reads of entry v[i] first, side by side in a dense array so
 * that most vetoed records are passed over without touching the entry or
 * the record: the veto key (in the prep, not copied) and the prep. */
struct slot {
	const lm_veto_key *key; /* the prep's veto key */
	const void *prep;       /* the entry's pp (postings) or cp (profiles) */
};

struct table {
	lm_hashmap *by_id;   /* id -> entry (keys point into the records) */
	struct ent **v;      /* by doc id: the entry, NULL for a free id */
	struct slot *slots;  /* slots[i] belongs to v[i] */
	uint32_t *free_docs; /* n_free doc ids to reuse */
	size_t n;            /* entries */
	size_t ndocs;        /* doc ids ever handed out: every id is below */
	size_t n_free, cap;  /* room in v, slots and free_docs */
};

/* A live posting's expiry, in the min-heap by `at`: one per posting, which
 * knows its place (ent.hpos), so that an update moves it and a removal
 * takes it out. */
struct expiry {
	int64_t at;
	uint32_t doc;
};

/* The updates' working memory (list_prepare, list_out, list_trim), under
 * the write lock: room for cap terms in each array. */
struct wbuf {
	uint32_t *terms; /* of the record being listed */
	float *shares;   /* of its terms */
	float *after;    /* what follows each of its terms (lm_inverted_after) */
	uint32_t *old;   /* of the record being taken out */
	size_t nold;     /* how many there are */
	size_t cap;
};

struct rebuild; /* a new idf snapshot's postings' lists being built (reshare_step) */
struct scratch; /* per-query working memory, pooled (see scratch_get) */
static void pool_free(lm_index *idx);

/* A sweep's window: 2^WINDOW doc ids, 8 MiB of slots (struct acc), which
 * a last-level cache of 16 MiB or more keeps. A window costs every list
 * read by window a seek at each end; smaller ones were slower on the
 * benchmark data up to a million postings (bench/README.md). */
#define WINDOW 20

struct lm_index {
	pthread_rwlock_t lock;
	const lm_model *model;
	struct table posts, profs;
	lm_skill_stats *stats;
	lm_inverted *piv, *civ; /* inverted lists of postings, of profiles */
	struct expiry *exp;     /* min-heap by at; nexp entries, room for expcap */
	size_t nexp, expcap;
	pthread_mutex_t pool_lock;
	struct scratch *pool;      /* free scratch, linked by next */
	_Atomic uint64_t scored;   /* pairs fully scored by queries, ever */
	_Atomic uint64_t reached;  /* records queries evaluated (read the keys of) */
	_Atomic uint64_t entries;  /* list entries queries read */
	lm_idf_snap *snap;         /* the idf the postings' list shares are at */
	size_t since_check;        /* list changes since the drift was checked */
	atomic_bool reshare_due;   /* a new snapshot is due (reshare_step) */
	_Atomic uint64_t reshares; /* snapshots taken by reshare_step, ever */
	/* The lists of a new snapshot being built (reshare_step), or NULL:
	 * set and cleared under the write lock and rb_lock, stepped under
	 * the read lock by the thread that holds rb_lock. retired: the lists
	 * it replaced (or itself, dropped), being freed a step at a time,
	 * under rb_lock; never both. stepping: whether either is set, for a
	 * look without a lock. */
	struct rebuild *rb;
	lm_inverted *retired;
	atomic_bool stepping;
	pthread_mutex_t rb_lock;
	int (*seam)(void *arg, size_t *budget); /* under rb_lock */
	void *seam_arg;
	_Atomic size_t walked;    /* doc ids the last step walked (0: held, failed) */
	_Atomic uint64_t damaged; /* reads of damaged records (note_damaged) */
	pthread_mutex_t dq_lock;  /* guards the two below */
	lm_index_damaged dq[LM_INDEX_DAMAGED_NOTED]; /* noted, for the follower */
	size_t ndq;
	bool loading;               /* lm_index_loading: no periodic re-snapshot */
	uint64_t gen;               /* changes of statistics or shares, ever */
	pthread_mutex_t drift_lock; /* guards the two below */
	uint64_t drift_gen;         /* gen that drift was computed at */
	double drift;               /* lm_idf_snap_drift at drift_gen */
	int64_t clock;              /* under the lock */
	size_t nlive;               /* live postings (see struct ent); under the lock */
	_Atomic uint64_t seq;
	_Atomic uint64_t updates; /* puts and removals, ever (stale_again) */
	struct lm_store *store;   /* where entries without bytes are; or NULL */
	/* Copies of the counts, stored under the write lock by publish_counts
	 * and read without any lock by lm_index_counts_get. */
	_Atomic uint64_t n_postings, n_open, n_profiles, n_listed;
	struct wbuf wr; /* under the write lock */
	int (*fault)(void *arg, lm_index_alloc what);
	void *fault_arg;
	uint32_t window; /* the sweep's window: 2^window doc ids; under the lock */
};

#define SWAP(type, a, b)                                                                 \
	do {                                                                             \
		type swap_tmp_ = (a);                                                    \
		(a) = (b);                                                               \
		(b) = swap_tmp_;                                                         \
	} while (0)

/* ---- tables ---------------------------------------------------------------- */

static int
table_init(struct table *t)
{
	memset(t, 0, sizeof(*t));
	return lm_hashmap_new(&t->by_id);
}

static struct ent *
table_find(const struct table *t, const char *id)
{
	return lm_hashmap_get(t->by_id, id);
}

/* Makes room for one more doc id (write lock held). The arrays double
 * with lm_big_realloc: from LM_BIG_MAP_MIN bytes on each is a mapping of
 * its own, which grows without a copy (lunamatch/alloc.h), so the write
 * lock is not held for a copy of every doc id's entry. */
static int
table_reserve(struct table *t)
{
	if (t->n_free == 0 && t->ndocs == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct ent **v;
		struct slot *sl;
		uint32_t *fd;
		if (cap > UINT32_MAX)
			return LM_ENOMEM;
		if ((v = lm_big_realloc(t->v, cap * sizeof(*v))) == NULL)
			return LM_ENOMEM;
		t->v = v;
		if ((sl = lm_big_realloc(t->slots, cap * sizeof(*sl))) == NULL)
			return LM_ENOMEM; /* v is larger than needed: harmless */
		t->slots = sl;
		if ((fd = lm_big_realloc(t->free_docs, cap * sizeof(*fd))) == NULL)
			return LM_ENOMEM;
		t->free_docs = fd;
		t->cap = cap;
	}
	return LM_OK;
}

/* Inserts e (its id set); table_reserve must have succeeded. The caller
 * sets t->slots[e->slot]. Returns LM_OK or LM_ENOMEM (nothing changed). */
static int
table_insert(struct table *t, struct ent *e)
{
	int rc;

	if ((rc = lm_hashmap_put(t->by_id, e->id, e)) != LM_OK)
		return rc;
	e->slot = t->n_free > 0 ? t->free_docs[--t->n_free] : (uint32_t) t->ndocs++;
	t->v[e->slot] = e;
	t->n++;
	return LM_OK;
}

/* Sets the slot of doc id `slot` of t. */
static void
table_set_slot(struct table *t, uint32_t slot, const lm_veto_key *key, const void *prep)
{
	t->slots[slot] = (struct slot){key, prep};
}

/* Takes e out of t (the caller frees it). Its slot is cleared: a doc id
 * that is free points at nothing, never at a prep about to be freed. */
static void
table_unlink(struct table *t, struct ent *e)
{
	lm_hashmap_remove(t->by_id, e->id);
	t->v[e->slot] = NULL;
	t->slots[e->slot] = (struct slot){NULL, NULL};
	t->free_docs[t->n_free++] = e->slot;
	t->n--;
}

/* Frees e, an entry of the postings' table when posting. */
static void
ent_free(struct ent *e, bool posting)
{
	if (e == NULL)
		return;
	if (posting)
		lm_posting_prep_free(e->pp);
	else
		lm_profile_prep_free(e->cp);
	free(e->rec); /* one block: compact_record */
	free(e->wire);
	free(e);
}

static void
table_destroy(struct table *t, bool posting)
{
	for (size_t i = 0; i < t->ndocs; i++)
		ent_free(t->v[i], posting);
	lm_big_free(t->v);
	lm_big_free(t->slots);
	lm_big_free(t->free_docs);
	lm_hashmap_free(t->by_id);
	memset(t, 0, sizeof(*t));
}

/* ---- partitions and inverted lists --------------------------------------------- */

/*
 * Postings are partitioned by remote policy, employment type and country
 * group, profiles by remote preference and country group: the fields of
 * the veto keys that the key pre-checks of the veto table (rules.c)
 * compare. A remote policy outside its enum puts a record in an "other"
 * bucket of the partitions of any country, and so does an employment type
 * outside its enum a posting in a partition of any country; the partitions
 * of these buckets are never skipped. The country partitions are not split
 * by employment type (below), so a posting located in one group is in a
 * partition of that group whatever its employment type, one outside the
 * enum included: the representative's employment type there is
 * unspecified, which no pre-check vetoes. (lm_posting_prepare and
 * lm_profile_prepare refuse values outside the enums, so records that
 * passed them are in no "other" bucket.)
 *
 * Country groups: a country sets one bit of a key's country_mask (prep.c;
 * a country that does not fold to ASCII sets all 64), and bit b belongs
 * to group b % LM_INDEX_COUNTRY_GROUPS. A record whose countries the
 * location veto compares (lm_key_located: a posting that is not remote and
 * names a country, a profile that names a country and does not relocate)
 * and whose countries are all in one group (lm_index_country_groups) is in
 * a partition of that group. Every other record (remote, no country,
 * relocating, countries in two groups or more, a mask of all bits) is in a
 * partition of any country. The country partitions are split no further
 * by employment type (postings) or remote preference (profiles), and
 * there are none for pairs of groups: each such split makes more, smaller
 * lists, and a query sets up a unit per term and partition visited; on the
 * benchmark data every one of them cost more instructions than the entries
 * it saved (bench/README.md).
 *
 * A query skips a partition when the pre-checks veto its representative
 * key: the partition's remote policy (a profile's of a country partition:
 * 0, unspecified), a posting's employment type (of a country partition:
 * 0, unspecified), for a country partition lm_key_locate of every bit of
 * its group, and nothing else (not closed, no expiry, no employment
 * wishes, not relocating). Such a veto holds for every record of the
 * partition, check by check:
 * - closed and expired: never veto the representative;
 * - employment type and remote policy: veto the representative only by a
 *   posting's remote policy and employment type, which every posting of
 *   the partition has as the representative (an unspecified type is never
 *   vetoed), or by a profile's remote preference, which is unspecified
 *   (never vetoed) but in the partitions of any country, where every
 *   profile has the representative's; a profile's employment wishes, which
 *   the representative lacks, never veto it;
 * - location: lm_key_located holds for the representative of a country
 *   partition and for every record in it; the bits of its group hold
 *   every bit of their masks, so a subject's mask disjoint from them is
 *   disjoint from each of theirs. The representative of a partition of any
 *   country names none, so the location veto never applies to it.
 */
#define REMOTE_OTHER 4u
#define REMOTE_LOCAL 3u /* remote buckets 0 .. 2 are not remote */
#define EMP_OTHER    6u
#define EMP_N        (EMP_OTHER + 1)
#define GROUPS       LM_INDEX_COUNTRY_GROUPS
#define ANY_PARTS    ((REMOTE_OTHER + 1) * EMP_N)
/* Postings: remote bucket r and employment bucket e of any country are
 * partition r * EMP_N + e; of country group g (r below REMOTE_LOCAL),
 * ANY_PARTS + g * REMOTE_LOCAL + r. Profiles: remote bucket r of any
 * country is partition r, country group g partition REMOTE_OTHER + 1 + g. */
#define POST_PARTS (ANY_PARTS + GROUPS * REMOTE_LOCAL)
#define PROF_PARTS (REMOTE_OTHER + 1 + GROUPS)
#define MAX_PARTS  (POST_PARTS > PROF_PARTS ? POST_PARTS : PROF_PARTS)
_Static_assert(MAX_PARTS <= LM_INVERTED_PARTS_MAX && MAX_PARTS <= 64,
    "a query keeps the partitions of a unit in a uint64_t mask");
_Static_assert(LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE == REMOTE_LOCAL,
    "the remote buckets below REMOTE_LOCAL are not remote");
_Static_assert(GROUPS >= 2 && GROUPS <= 32 && 64 % GROUPS == 0,
    "country groups in a uint32_t, each with 64 / GROUPS bits");
/* The bits of group 0: the lowest of each run of GROUPS bits. */
#define GROUP_LOW (UINT64_MAX / ((UINT64_C(1) << GROUPS) - 1))

static uint32_t
remote_bucket(int32_t r)
{
	return r >= 0 && r < (int32_t) REMOTE_OTHER ? (uint32_t) r : REMOTE_OTHER;
}

static uint32_t
emp_bucket(int32_t t)
{
	return t >= 0 && t < (int32_t) EMP_OTHER ? (uint32_t) t : EMP_OTHER;
}

uint32_t
lm_index_country_groups(uint64_t country_mask)
{
	uint32_t gs = 0;

	for (uint64_t m = country_mask; m != 0; m &= m - 1)
		gs |= 1u << ((uint32_t) __builtin_ctzll(m) % GROUPS);
	return gs;
}

/* The country group of a record whose countries the location veto
 * compares, with country_mask mask: GROUPS unless they are all in one. */
static uint32_t
country_group(uint64_t mask)
{
	uint32_t gs = lm_index_country_groups(mask);

	return __builtin_popcount(gs) == 1 ? (uint32_t) __builtin_ctz(gs) : GROUPS;
}

static uint8_t
posting_part(const lm_veto_key *k)
{
	uint32_t r = remote_bucket(k->remote), e = emp_bucket(k->employment_type);
	uint32_t g = r < REMOTE_LOCAL && lm_key_located(k, true)
	                 ? country_group(k->country_mask)
	                 : GROUPS;

	return (uint8_t) (g == GROUPS ? r * EMP_N + e : ANY_PARTS + g * REMOTE_LOCAL + r);
}

static uint8_t
profile_part(const lm_veto_key *k)
{
	uint32_t r = remote_bucket(k->remote);
	uint32_t g = r != REMOTE_OTHER && lm_key_located(k, false)
	                 ? country_group(k->country_mask)
	                 : GROUPS;

	return (uint8_t) (g == GROUPS ? r : REMOTE_OTHER + 1 + g);
}

/* Whether a query of scan sc (ranking postings when jobs) can skip part:
 * whether the pre-checks veto its representative key (above). */
static bool
part_skipped(const lm_scan *sc, bool jobs, uint32_t part)
{
	uint32_t r = 0, e = 0, g = GROUPS;
	lm_veto_key k;

	if (jobs && part < ANY_PARTS) {
		r = part / EMP_N;
		e = part % EMP_N;
	} else if (jobs) {
		r = (part - ANY_PARTS) % REMOTE_LOCAL;
		g = (part - ANY_PARTS) / REMOTE_LOCAL;
	} else if (part <= REMOTE_OTHER)
		r = part;
	else
		g = part - (REMOTE_OTHER + 1);
	if (r == REMOTE_OTHER || e == EMP_OTHER)
		return false;
	memset(&k, 0, sizeof(k));
	k.remote = (int32_t) r;
	k.employment_type = (int32_t) e;
	if (g != GROUPS)
		lm_key_locate(&k, GROUP_LOW << g);
	return lm_scan_vetoed(sc, &k);
}

/* Asks the failure seam (lm_index_set_fault) whether the allocations of
 * step what may happen: LM_OK in production. */
static int
fault_check(lm_index *idx, lm_index_alloc what)
{
	return idx->fault != NULL ? idx->fault(idx->fault_arg, what) : LM_OK;
}

/* Room in idx->wr for a record of up to n terms. Write lock held. LM_OK or
 * LM_ENOMEM (idx->wr keeps its room). */
/*
 * Whether a read that returned rc, begun when the index had made `since`
 * updates, runs again: it found the store without a record it shows at
 * the version the index holds (LM_EBUSY, entry_decode), and *tries, the
 * runs so far, is below LM_INDEX_STALE_TRIES. It then first waits, with
 * no lock held, until the index has been updated since or
 * LM_INDEX_STALE_WAIT_MS passed.
 */
static bool
stale_again(lm_index *idx, int rc, uint64_t since, int *tries)
{
	const struct timespec ms = {0, 1000000};

	if (rc != LM_EBUSY || ++*tries >= LM_INDEX_STALE_TRIES)
		return false;
	for (int i = 0; i < LM_INDEX_STALE_WAIT_MS && atomic_load(&idx->updates) == since;
	     i++)
		nanosleep(&ms, NULL);
	return true;
}

/* Room for n terms in w (and in w->old when with_old); LM_OK or LM_ENOMEM
 * (the room as it was, or more in some of the arrays). */
static int
wbuf_room(struct wbuf *w, size_t n, bool with_old)
{
	uint32_t *t;
	float *f;

	if (n <= w->cap)
		return LM_OK;
	if ((t = realloc(w->terms, n * sizeof(*t))) == NULL)
		return LM_ENOMEM;
	w->terms = t;
	if (with_old) {
		if ((t = realloc(w->old, n * sizeof(*t))) == NULL)
			return LM_ENOMEM;
		w->old = t;
	}
	if ((f = realloc(w->shares, n * sizeof(*f))) == NULL)
		return LM_ENOMEM;
	w->shares = f;
	if ((f = realloc(w->after, n * sizeof(*f))) == NULL)
		return LM_ENOMEM;
	w->after = f;
	w->cap = n;
	return LM_OK;
}

static int
wbuf_reserve(lm_index *idx, size_t n)
{
	if (n > idx->wr.cap && fault_check(idx, LM_INDEX_ALLOC_SCRATCH) != LM_OK)
		return LM_ENOMEM;
	return wbuf_room(&idx->wr, n, true);
}

/* A posting without skills of its own is bare: queries visit it whatever
 * their terms. */
static bool
prep_bare(const lm_posting_prep *pp)
{
	return pp != NULL && !lm_posting_prep_skills_present(pp);
}

/* Writes the shares at idf snapshot sn (which holds posting pp) of the n
 * terms of pp at terms, and what follows each, to shares and after. Reads
 * the index only. */
static void
posting_shares(const lm_index *idx, const lm_idf_snap *sn, const lm_posting_prep *pp,
    const uint32_t *terms, size_t n, float *shares, float *after)
{
	lm_idf_snap_term_shares(
	    sn, pp, idx->model->params.preferred_share, terms, n, shares);
	lm_inverted_after(terms, shares, n, after);
}

/* Writes the terms of posting pp (held in idf snapshot sn) to w with
 * their shares at sn and what follows each; returns how many. w must have
 * room for lm_prep_terms_max(pp, NULL) terms. Reads the index only: the
 * listing threads of a load call it at once (list_set). */
static size_t
posting_terms(
    const lm_index *idx, const lm_idf_snap *sn, const lm_posting_prep *pp, struct wbuf *w)
{
	size_t n = lm_prep_terms(pp, NULL, idx->stats, w->terms, w->cap);

	posting_shares(idx, sn, pp, w->terms, n, w->shares, w->after);
	return n;
}

/*
 * The postings' lists of a new idf snapshot, built while updates go on
 * (reshare_step): sn is the new snapshot, a copy of the index's taken at
 * the statistics of the moment it began, and iv the lists at sn of the
 * doc ids below next, as the postings listed under them are now. A step
 * (under the read lock) adds the listed postings of the next doc ids to
 * iv, in increasing doc order, computing their shares at sn; every change
 * of the index's postings' lists (under the write lock) is made to iv too
 * when its doc id is below next (list_prepare, list_commit, list_out,
 * list_trim), with the shares at sn, and sn holds every listed posting as
 * the index's snapshot does. So, once next passes the last doc id, iv is
 * what listing every listed posting at sn gives, and it replaces the
 * index's lists with sn as the snapshot, in one exchange of pointers. A
 * change that finds no memory for iv or sn marks the rebuild failed, and
 * the next step drops it; the change itself is not undone.
 */
struct rebuild {
	lm_idf_snap *sn;
	lm_inverted *iv;
	size_t next;
	bool failed;
	bool mirror; /* list_prepare made room in iv for what list_commit adds */
	/* Working memory: a step's terms, shares and what follows, and the
	 * shares and what follows of the listing list_prepare made room for
	 * (its terms are idx->wr's). */
	struct wbuf w;
};

static void
rebuild_free(struct rebuild *rb)
{
	if (rb == NULL)
		return;
	lm_inverted_free(rb->iv);
	lm_idf_snap_free(rb->sn);
	free(rb->w.terms);
	free(rb->w.shares);
	free(rb->w.after);
	free(rb);
}

/* The rebuild that changes of the postings' lists are made to as well,
 * or NULL. Write lock held. */
static struct rebuild *
rebuild_live(const lm_index *idx)
{
	return idx->rb != NULL && !idx->rb->failed ? idx->rb : NULL;
}

/* list_prepare of posting pp as doc, of its n terms at idx->wr.terms, for
 * the rebuild: sn holds it, and iv has room for it when doc is below
 * next. Write lock held. */
static void
rebuild_prepare(
    lm_index *idx, const lm_posting_prep *pp, uint8_t part, uint32_t doc, size_t n)
{
	struct rebuild *rb = rebuild_live(idx);

	if (rb == NULL)
		return;
	rb->mirror = false;
	if (fault_check(idx, LM_INDEX_ALLOC_REBUILD) != LM_OK ||
	    lm_idf_snap_hold(rb->sn, idx->stats, pp) != LM_OK) {
		rb->failed = true;
		return;
	}
	if (doc >= rb->next)
		return;
	if (fault_check(idx, LM_INDEX_ALLOC_REBUILD) != LM_OK ||
	    wbuf_room(&rb->w, n, false) != LM_OK) {
		rb->failed = true;
		return;
	}
	posting_shares(idx, rb->sn, pp, idx->wr.terms, n, rb->w.shares, rb->w.after);
	if (lm_inverted_reserve(rb->iv, part, idx->wr.terms, rb->w.shares, rb->w.after, n,
	        prep_bare(pp)) != LM_OK) {
		rb->failed = true;
		return;
	}
	rb->mirror = true;
}

/*
 * Listing a record in the inverted lists of its side (postings for pp,
 * profiles for cp), as doc id doc in partition part, is two steps, so that
 * a change of a record can make sure of everything it needs before it
 * takes the old listing out: list_prepare writes the record's terms and
 * their shares to idx->wr (a posting's at the idf snapshot, which then
 * counts the posting; a profile's 1 for a skill term and 0 for a word) and
 * makes room in the lists, returning LM_OK or LM_ENOMEM (nothing changed);
 * after LM_OK, list_commit, which cannot fail, adds it, and list_out of
 * another record of the same side may come between. list_out takes a
 * record out and never fails: idx->wr has room for the terms of every
 * stored record (wbuf_reserve at its put). list_trim then gives back the
 * room that record's entries leave (lm_inverted_trim: the lists it was
 * alone in are freed); only after the list_commit, whose room it may
 * take. Write lock held; the prep is bound to idx->stats.
 */
static int
list_prepare(lm_index *idx, const lm_posting_prep *pp, const lm_profile_prep *cp,
    uint8_t part, uint32_t doc, size_t *nterms)
{
	struct wbuf *w = &idx->wr;
	lm_inverted *iv = pp != NULL ? idx->piv : idx->civ;
	size_t n;

	if (pp != NULL) {
		if (fault_check(idx, LM_INDEX_ALLOC_SNAP) != LM_OK ||
		    lm_idf_snap_hold(idx->snap, idx->stats, pp) != LM_OK)
			return LM_ENOMEM;
		n = posting_terms(idx, idx->snap, pp, w);
	} else {
		n = lm_prep_terms(NULL, cp, idx->stats, w->terms, w->cap);
		for (size_t i = 0; i < n; i++)
			w->shares[i] = (w->terms[i] & 1u) == LM_TERM_SKILL ? 1.0f : 0.0f;
	}
	if (fault_check(idx, LM_INDEX_ALLOC_LISTS) != LM_OK ||
	    lm_inverted_reserve(iv, part, w->terms, w->shares,
	        pp != NULL ? w->after : NULL, n, prep_bare(pp)) != LM_OK) {
		if (pp != NULL)
			lm_idf_snap_remove(idx->snap, pp);
		return LM_ENOMEM;
	}
	if (pp != NULL)
		rebuild_prepare(idx, pp, part, doc, n);
	*nterms = n;
	return LM_OK;
}

/* The new listing of posting pp (doc, in partition part: the nterms terms
 * of idx->wr) in the lists being built for a new snapshot, when
 * list_prepare mirrored it there; rb may be NULL. */
static void
rebuild_commit(lm_index *idx, struct rebuild *rb, const lm_posting_prep *pp, uint8_t part,
    uint32_t doc, size_t nterms)
{
	if (rb == NULL)
		return;
	if (rb->mirror && lm_inverted_add(rb->iv, part, doc, idx->wr.terms, rb->w.shares,
	                      rb->w.after, nterms, prep_bare(pp)) != LM_OK)
		rb->failed = true;
	rb->mirror = false;
}

/* The old listing of posting pp (doc, in partition part: its n terms in
 * idx->wr.old) out of the lists being built for a new snapshot: its hold
 * on their snapshot, and its entries once the build has passed doc; rb
 * may be NULL. */
static void
rebuild_out(lm_index *idx, struct rebuild *rb, const lm_posting_prep *pp, uint8_t part,
    uint32_t doc, size_t n)
{
	if (rb == NULL)
		return;
	lm_idf_snap_remove(rb->sn, pp);
	if (doc < rb->next)
		lm_inverted_remove(rb->iv, part, doc, idx->wr.old, n, prep_bare(pp));
}

static void
list_commit(
    lm_index *idx, const lm_posting_prep *pp, uint8_t part, uint32_t doc, size_t nterms)
{
	lm_inverted *iv = pp != NULL ? idx->piv : idx->civ;
	struct rebuild *rb = pp != NULL ? rebuild_live(idx) : NULL;
	int rc;

	if (pp != NULL) {
		idx->gen++;
		idx->since_check++;
	}
	rc = lm_inverted_add(iv, part, doc, idx->wr.terms, idx->wr.shares,
	    pp != NULL ? idx->wr.after : NULL, nterms, prep_bare(pp));
	(void) rc; /* LM_OK: list_prepare made the room */
	rebuild_commit(idx, rb, pp, part, doc, nterms);
}

static void
list_out(lm_index *idx, const lm_posting_prep *pp, const lm_profile_prep *cp,
    uint8_t part, uint32_t doc)
{
	lm_inverted *iv = pp != NULL ? idx->piv : idx->civ;
	size_t n = lm_prep_terms(pp, cp, idx->stats, idx->wr.old, idx->wr.cap);
	struct rebuild *rb = pp != NULL ? rebuild_live(idx) : NULL;

	lm_inverted_remove(iv, part, doc, idx->wr.old, n, prep_bare(pp));
	idx->wr.nold = n;
	if (pp != NULL) {
		lm_idf_snap_remove(idx->snap, pp);
		idx->gen++;
		idx->since_check++;
	}
	rebuild_out(idx, rb, pp, part, doc, n);
}

/*
 * list_out of the old version of a record (pp_old or cp_old) and the
 * list_commit of its new one (pp or cp, listed by list_prepare) in the
 * same partition part, at once: the lists take the change with
 * lm_inverted_update, which overwrites the entries whose tier stays. The
 * lists being built for a new snapshot take it as a removal and an add
 * (rebuild_out, rebuild_commit).
 */
static void
list_replace(lm_index *idx, const lm_posting_prep *pp_old, const lm_profile_prep *cp_old,
    const lm_posting_prep *pp, uint8_t part, uint32_t doc, size_t nterms)
{
	bool posting = pp_old != NULL;
	lm_inverted *iv = posting ? idx->piv : idx->civ;
	struct rebuild *rb = posting ? rebuild_live(idx) : NULL;
	struct wbuf *w = &idx->wr;
	size_t n = lm_prep_terms(pp_old, cp_old, idx->stats, w->old, w->cap);

	lm_inverted_update(iv, part, doc, w->old, n, prep_bare(pp_old), w->terms,
	    w->shares, posting ? w->after : NULL, nterms, prep_bare(pp));
	w->nold = n;
	if (posting) {
		lm_idf_snap_remove(idx->snap, pp_old);
		idx->gen += 2; /* as list_out and list_commit count */
		idx->since_check += 2;
	}
	rebuild_out(idx, rb, pp_old, part, doc, n);
	rebuild_commit(idx, rb, pp, part, doc, nterms);
}

/* After list_out of a record of the postings (posting) or the profiles,
 * from partition part, and the list_commit that followed it if any. */
static void
list_trim(lm_index *idx, bool posting, uint8_t part)
{
	struct rebuild *rb = posting ? rebuild_live(idx) : NULL;

	lm_inverted_trim(posting ? idx->piv : idx->civ, part, idx->wr.old, idx->wr.nold);
	if (rb != NULL)
		lm_inverted_trim(rb->iv, part, idx->wr.old, idx->wr.nold);
}

/*
 * The shares in the postings' lists are at the idf snapshot; a query
 * multiplies them by the drift since (lm_idf_snap_drift), so a larger
 * drift loosens every bound. Writers check the drift every so many list
 * changes (at least half as many as there are postings) and take a new
 * snapshot when it exceeds DRIFT_MAX, computing every share again:
 * O(list entries), built aside (struct rebuild) in steps of about
 * RESHARE_STEP entries (or LM_INDEX_RESHARE_WALK doc ids walked), each
 * under the read lock, one after each update
 * (reshare_step), so that neither queries nor updates wait for more than
 * a step, and swapped in under the write lock. A loader that is done
 * (lm_index_loaded, before anyone reads the lists) takes one in place
 * whenever there is any drift. An index being
 * loaded (lm_index_loading) lists its postings only when the load ends
 * (list_loaded), at the final statistics: while it grows from nothing the
 * drift would pass DRIFT_MAX at about every doubling, and each time every
 * share would be computed again.
 */
#define DRIFT_MAX   1.1
#define CHECK_EVERY 1024
/* List entries a step of a rebuild adds at most, but for the last
 * posting's (0.4 ms at most on the benchmark data); the doc ids it walks
 * at most are LM_INDEX_RESHARE_WALK (index.h): one without a listed
 * posting (free, or a closed posting's) costs the read of its entry, one
 * cache miss at most, so a step across a long run of them is bounded too;
 * the work of freeing old lists in a step (lm_inverted_release: 128
 * lists, 1.5 ms at most); lm_index_advance takes up to
 * LM_INDEX_ADVANCE_STEPS steps. */
#define RESHARE_STEP 1024
#define RELEASE_STEP 32768

/* Without the table below: the share of one pair, and as what follows it
 * infinity, which bounds every sum (queries then read the entry whatever
 * their bar, and evaluate the posting). */
static float
reshare_one(void *arg, uint32_t doc, uint32_t term, float *after)
{
	lm_index *idx = arg;

	*after = INFINITY;
	return lm_idf_snap_share(
	    idx->snap, idx->posts.v[doc]->pp, idx->model->params.preferred_share, term);
}

/* Every listed posting's shares and what follows each
 * (lm_inverted_after), computed once per posting rather than once per list
 * entry: those of doc d at sh + off[d] and after + off[d], one per skill.
 * Over the posting's skills rather than its terms: they are the terms with
 * a share, and a skill without a term only adds to what follows. */
struct share_table {
	const lm_index *idx;
	size_t *off;
	float *sh, *after;
};

static float
reshare_cached(void *arg, uint32_t doc, uint32_t term, float *after)
{
	const struct share_table *st = arg;
	const lm_posting_prep *pp = st->idx->posts.v[doc]->pp;

	*after = lm_idf_snap_term_share(pp, st->after + st->off[doc], term);
	return lm_idf_snap_term_share(pp, st->sh + st->off[doc], term);
}

/* Fills st for every listed posting, its shares at snapshot sn; LM_ENOMEM
 * leaves nothing allocated. */
static int
share_table_new(const lm_index *idx, const lm_idf_snap *sn, struct share_table *st)
{
	const struct table *t = &idx->posts;
	size_t total = 0, most = 0;
	uint32_t *terms;

	st->idx = idx;
	st->sh = NULL;
	if ((st->off = malloc((t->ndocs + 1) * sizeof(*st->off))) == NULL)
		return LM_ENOMEM;
	for (size_t d = 0; d < t->ndocs; d++) {
		st->off[d] = total;
		if (t->v[d] != NULL && t->v[d]->listed) {
			size_t n = lm_idf_snap_nshares(t->v[d]->pp);
			total += n;
			most = n > most ? n : most;
		}
	}
	if ((st->sh = malloc(2 * (total + 1) * sizeof(*st->sh))) == NULL ||
	    (terms = malloc((most + 1) * sizeof(*terms))) == NULL) {
		free(st->sh);
		free(st->off);
		return LM_ENOMEM;
	}
	st->after = st->sh + total + 1;
	for (size_t d = 0; d < t->ndocs; d++) {
		const lm_posting_prep *pp;
		if (t->v[d] == NULL || !t->v[d]->listed)
			continue;
		pp = t->v[d]->pp;
		lm_idf_snap_skill_shares(
		    sn, pp, idx->model->params.preferred_share, st->sh + st->off[d]);
		for (size_t i = 0; i < lm_idf_snap_nshares(pp); i++)
			terms[i] = lm_idf_snap_skill_term(pp, i);
		lm_inverted_after(terms, st->sh + st->off[d], lm_idf_snap_nshares(pp),
		    st->after + st->off[d]);
	}
	free(terms);
	return LM_OK;
}

/* Write lock held. Checks the drift when due and, when it is too large,
 * marks a new snapshot due: reshare_step begins it once the lock is let
 * go. While one is being built the check waits for it to be in place.
 * When force (a loader is done, with nobody reading the lists yet), takes
 * it here whenever there was a change and any drift. */
static void
maybe_reshare(lm_index *idx, bool force)
{
	size_t every = idx->posts.n / 2 > CHECK_EVERY ? idx->posts.n / 2 : CHECK_EVERY;
	struct share_table st;

	if (idx->since_check == 0 || (!force && idx->since_check < every) ||
	    (!force && idx->rb != NULL))
		return;
	idx->since_check = 0;
	if (!(lm_idf_snap_drift(idx->snap, idx->stats) > (force ? 1 : DRIFT_MAX)))
		return;
	if (!force) {
		atomic_store(&idx->reshare_due, true);
		return;
	}
	atomic_store(&idx->reshare_due, false);
	if (idx->rb != NULL)
		idx->rb->failed = true; /* built at the shares replaced here */
	lm_idf_snap_reset(idx->snap, idx->stats);
	if (share_table_new(idx, idx->snap, &st) == LM_OK) {
		lm_inverted_reshare(idx->piv, reshare_cached, &st);
		free(st.off);
		free(st.sh);
	} else {
		lm_inverted_reshare(idx->piv, reshare_one, idx);
	}
	idx->gen++;
}

/*
 * Begins the rebuild that maybe_reshare marked due: the new snapshot is
 * taken and the empty lists made under the read lock (queries go on),
 * then set as idx->rb under the write lock, if no change of the postings'
 * lists came in between (another writer); else it stays due. When memory
 * is short it is tried again at the next check. rb_lock held.
 */
static void
reshare_begin(lm_index *idx)
{
	struct rebuild *rb = calloc(1, sizeof(*rb));
	uint64_t gen;
	int rc = rb != NULL ? LM_OK : LM_ENOMEM;

	pthread_rwlock_rdlock(&idx->lock);
	gen = idx->gen;
	if (rc == LM_OK && (rc = fault_check(idx, LM_INDEX_ALLOC_RESHARE)) == LM_OK &&
	    (rc = lm_idf_snap_renewed(idx->snap, idx->stats, &rb->sn)) == LM_OK)
		rc = lm_inverted_new(POST_PARTS, true, &rb->iv);
	pthread_rwlock_unlock(&idx->lock);
	if (rc != LM_OK) {
		atomic_store(&idx->reshare_due, false); /* at the next check */
		rebuild_free(rb);
		return;
	}
	pthread_rwlock_wrlock(&idx->lock);
	if (idx->gen == gen && idx->rb == NULL) {
		idx->rb = rb;
		rb = NULL;
		atomic_store(&idx->reshare_due, false);
		atomic_store(&idx->stepping, true);
	}
	pthread_rwlock_unlock(&idx->lock);
	rebuild_free(rb);
}

/* Read lock held, by the holder of rb_lock: adds the listed postings of
 * the doc ids from rb->next on to rb->iv, at rb->sn, until budget entries
 * were added, LM_INDEX_RESHARE_WALK doc ids were walked (listed or not)
 * or every doc id is in; marks rb failed when memory is short. */
static void
rebuild_docs(lm_index *idx, struct rebuild *rb, size_t budget)
{
	const struct table *t = &idx->posts;
	size_t added = 0, from = rb->next;

	while (rb->next < t->ndocs && added < budget &&
	       rb->next - from < LM_INDEX_RESHARE_WALK) {
		const struct ent *e = t->v[rb->next];
		size_t n;
		if (e != NULL && e->listed) {
			if (fault_check(idx, LM_INDEX_ALLOC_REBUILD) != LM_OK ||
			    wbuf_room(&rb->w, lm_prep_terms_max(e->pp, NULL), false) !=
			        LM_OK) {
				rb->failed = true;
				return;
			}
			n = posting_terms(idx, rb->sn, e->pp, &rb->w);
			if (lm_inverted_add(rb->iv, e->part, (uint32_t) rb->next,
			        rb->w.terms, rb->w.shares, rb->w.after, n,
			        prep_bare(e->pp)) != LM_OK) {
				rb->failed = true;
				return;
			}
			added += n;
		}
		rb->next++;
	}
}

/*
 * Takes the new snapshot that maybe_reshare marked due, a step at a time:
 * called after each update (and by lm_index_advance) with no lock held.
 * The first call begins it (reshare_begin); each later one asks the seam
 * (lm_index_set_reshare_seam) and adds up to RESHARE_STEP entries, walking
 * up to LM_INDEX_RESHARE_WALK doc ids, under the read lock
 * (rebuild_docs), so that queries go on and the next update
 * waits for one step at most. Once every doc id is in, the lists built
 * and their snapshot are exchanged with the index's under the write lock
 * (O(1)). A rebuild that failed is dropped, the old lists and snapshot
 * kept; it is tried again at the next check. The lists that go, old or
 * dropped, are freed by the next steps, RELEASE_STEP at a time (freeing
 * the lists of 100k postings at once took 23 ms). Another thread stepping
 * meanwhile (rb_lock) makes this call return at once. Returns whether the
 * step did any of this work (false: nothing due, another thread stepping,
 * or a step that added nothing, as the seam may ask).
 */
static bool
reshare_step(lm_index *idx)
{
	struct rebuild *rb = NULL;
	size_t budget = RESHARE_STEP, from;
	bool worked = true;
	int rc;

	if ((!atomic_load(&idx->stepping) && !atomic_load(&idx->reshare_due)) ||
	    pthread_mutex_trylock(&idx->rb_lock) != 0)
		return false;
	if (idx->retired != NULL) {
		if (lm_inverted_release(idx->retired, RELEASE_STEP)) {
			lm_inverted_free(idx->retired);
			idx->retired = NULL;
			atomic_store(&idx->stepping, false);
		}
		pthread_mutex_unlock(&idx->rb_lock);
		return true;
	}
	if (!atomic_load(&idx->stepping)) {
		reshare_begin(idx);
		worked = atomic_load(&idx->stepping);
		pthread_mutex_unlock(&idx->rb_lock);
		return worked;
	}
	rc = idx->seam != NULL ? idx->seam(idx->seam_arg, &budget) : LM_OK;
	pthread_rwlock_rdlock(&idx->lock);
	from = idx->rb->next;
	if (rc != LM_OK)
		idx->rb->failed = true;
	else if (!idx->rb->failed)
		rebuild_docs(idx, idx->rb, budget);
	atomic_store(&idx->walked, idx->rb->next - from);
	if (idx->rb->failed || idx->rb->next >= idx->posts.ndocs)
		rb = idx->rb;
	else
		worked = idx->rb->next > from;
	pthread_rwlock_unlock(&idx->lock);
	if (rb != NULL) {
		pthread_rwlock_wrlock(&idx->lock);
		if (!rb->failed && rb->next >= idx->posts.ndocs) {
			SWAP(lm_inverted *, idx->piv, rb->iv);
			SWAP(lm_idf_snap *, idx->snap, rb->sn);
			idx->gen++;
			atomic_fetch_add(&idx->reshares, 1);
		}
		if (rb->failed || rb->next >= idx->posts.ndocs) {
			idx->rb = NULL;
			idx->retired = rb->iv; /* the old lists, or those built */
			rb->iv = NULL;
		} else {
			rb = NULL; /* doc ids came meanwhile: more steps */
		}
		pthread_rwlock_unlock(&idx->lock);
	}
	pthread_mutex_unlock(&idx->rb_lock);
	rebuild_free(rb); /* the old snapshot, or the new one dropped */
	return worked;
}

/* The drift of the postings' shares at the current statistics, computed
 * once per change of them. Read lock held. */
static double
current_drift(lm_index *idx)
{
	double d;

	pthread_mutex_lock(&idx->drift_lock);
	if (idx->drift_gen != idx->gen || !(idx->drift >= 1)) {
		idx->drift = lm_idf_snap_drift(idx->snap, idx->stats);
		idx->drift_gen = idx->gen;
	}
	d = idx->drift;
	pthread_mutex_unlock(&idx->drift_lock);
	return d;
}

/* ---- expiry heap --------------------------------------------------------------- */

/* Makes room for one more expiry. Write lock held. The heap grows as the
 * tables' arrays do (table_reserve). */
static int
exp_reserve(lm_index *idx)
{
	struct expiry *v;
	size_t cap;

	if (idx->nexp < idx->expcap)
		return LM_OK;
	cap = idx->expcap ? idx->expcap * 2 : 256;
	if ((v = lm_big_realloc(idx->exp, cap * sizeof(*v))) == NULL)
		return LM_ENOMEM;
	idx->exp = v;
	idx->expcap = cap;
	return LM_OK;
}

/* Puts x at place i of the heap and tells its posting. */
static void
exp_place(lm_index *idx, size_t i, struct expiry x)
{
	idx->exp[i] = x;
	idx->posts.v[x.doc]->hpos = (uint32_t) i + 1;
}

/* Moves the expiry at place i up or down to where the heap order wants
 * it. */
static void
exp_fix(lm_index *idx, size_t i)
{
	struct expiry x = idx->exp[i];

	while (i > 0 && idx->exp[(i - 1) / 2].at > x.at) {
		exp_place(idx, i, idx->exp[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, m = l;
		if (l >= idx->nexp)
			break;
		if (l + 1 < idx->nexp && idx->exp[l + 1].at < idx->exp[l].at)
			m = l + 1;
		if (idx->exp[m].at >= x.at)
			break;
		exp_place(idx, i, idx->exp[m]);
		i = m;
	}
	exp_place(idx, i, x);
}

/*
 * Sets the expiry of posting e (write lock held): at, or none when at is
 * 0 (e is not live, or never expires). O(log n). A posting not in the heap
 * yet needs the room of exp_reserve.
 */
static void
exp_set(lm_index *idx, struct ent *e, int64_t at)
{
	size_t i;

	if (e->hpos == 0) {
		if (at == 0)
			return;
		i = idx->nexp++;
		idx->exp[i] = (struct expiry){at, e->slot};
	} else if (at != 0) {
		i = e->hpos - 1;
		idx->exp[i].at = at;
	} else {
		i = e->hpos - 1;
		e->hpos = 0;
		if (i == --idx->nexp)
			return;
		idx->exp[i] = idx->exp[idx->nexp];
	}
	exp_fix(idx, i);
}

/* ---- lifecycle --------------------------------------------------------------- */

int
lm_index_new(const lm_model *model, lm_index **out)
{
	lm_index *idx;
	pthread_rwlockattr_t attr;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (model == NULL)
		return LM_EINVAL;
	if ((idx = calloc(1, sizeof(*idx))) == NULL)
		return LM_ENOMEM;
	idx->model = model;
	idx->window = WINDOW;
	atomic_init(&idx->seq, 0);
	atomic_init(&idx->n_postings, 0);
	atomic_init(&idx->n_open, 0);
	atomic_init(&idx->n_profiles, 0);
	atomic_init(&idx->n_listed, 0);
	atomic_init(&idx->scored, 0);
	atomic_init(&idx->reached, 0);
	atomic_init(&idx->entries, 0);
	if (table_init(&idx->posts) != LM_OK || table_init(&idx->profs) != LM_OK ||
	    lm_skill_stats_new(&idx->stats) != LM_OK ||
	    lm_inverted_new(POST_PARTS, true, &idx->piv) != LM_OK ||
	    lm_inverted_new(PROF_PARTS, false, &idx->civ) != LM_OK ||
	    lm_idf_snap_new(&idx->snap) != LM_OK) {
		lm_inverted_free(idx->piv);
		lm_inverted_free(idx->civ);
		lm_skill_stats_free(idx->stats);
		table_destroy(&idx->posts, true);
		table_destroy(&idx->profs, false);
		free(idx);
		return LM_ENOMEM;
	}
	pthread_mutex_init(&idx->pool_lock, NULL);
	pthread_mutex_init(&idx->drift_lock, NULL);
	pthread_mutex_init(&idx->rb_lock, NULL);
	pthread_mutex_init(&idx->dq_lock, NULL);
	pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
	/* Updates must not starve behind a steady stream of queries. */
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	if (pthread_rwlock_init(&idx->lock, &attr) != 0) {
		pthread_rwlockattr_destroy(&attr);
		pthread_mutex_destroy(&idx->pool_lock);
		pthread_mutex_destroy(&idx->drift_lock);
		pthread_mutex_destroy(&idx->rb_lock);
		pthread_mutex_destroy(&idx->dq_lock);
		lm_idf_snap_free(idx->snap);
		lm_inverted_free(idx->piv);
		lm_inverted_free(idx->civ);
		lm_skill_stats_free(idx->stats);
		table_destroy(&idx->posts, true);
		table_destroy(&idx->profs, false);
		free(idx);
		return LM_ENOMEM;
	}
	pthread_rwlockattr_destroy(&attr);
	*out = idx;
	return LM_OK;
}

int
lm_index_set_store(lm_index *idx, struct lm_store *store)
{
	int rc = LM_EINVAL;

	if (idx == NULL)
		return LM_EINVAL;
	pthread_rwlock_wrlock(&idx->lock);
	if (idx->posts.n == 0 && idx->profs.n == 0) {
		idx->store = store;
		rc = LM_OK;
	}
	pthread_rwlock_unlock(&idx->lock);
	return rc;
}

struct lm_store *
lm_index_store(const lm_index *idx)
{
	return idx != NULL ? idx->store : NULL;
}

void
lm_index_free(lm_index *idx)
{
	if (idx == NULL)
		return;
	table_destroy(&idx->posts, true);
	table_destroy(&idx->profs, false);
	lm_inverted_free(idx->piv);
	lm_inverted_free(idx->civ);
	lm_idf_snap_free(idx->snap);
	rebuild_free(idx->rb);
	lm_inverted_free(idx->retired);
	lm_skill_stats_free(idx->stats);
	pool_free(idx);
	lm_big_free(idx->exp);
	free(idx->wr.terms);
	free(idx->wr.shares);
	free(idx->wr.after);
	free(idx->wr.old);
	pthread_mutex_destroy(&idx->pool_lock);
	pthread_mutex_destroy(&idx->drift_lock);
	pthread_mutex_destroy(&idx->rb_lock);
	pthread_mutex_destroy(&idx->dq_lock);
	pthread_rwlock_destroy(&idx->lock);
	free(idx);
}

/* ---- updates ----------------------------------------------------------------- */

static bool
posting_live(const JobPosting *p, int64_t clock)
{
	return p->status != LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED &&
	       (p->expires_at == 0 || p->expires_at > clock);
}

/* Write lock held: makes the current counts visible to
 * lm_index_counts_get. Each count is exact; the three are not one
 * snapshot (a reader may see one update's posting count and the previous
 * open count). */
/* Replaces the record *m (as protobuf_c_message_unpack leaves it) by its
 * compact copy (lm_pb_compact), which the entry keeps: one heap block
 * instead of one per string, array and nested message, a third of the
 * bytes. The original is freed, also on failure (LM_ENOMEM). */
static int
compact_record(ProtobufCMessage **m)
{
	ProtobufCMessage *c = NULL;
	int rc = lm_pb_compact(*m, &c, NULL);

	protobuf_c_message_free_unpacked(*m, NULL);
	*m = c;
	return rc;
}

static void
publish_counts(lm_index *idx)
{
	atomic_fetch_add(&idx->updates, 1);
	atomic_store(&idx->n_postings, (uint64_t) idx->posts.n);
	atomic_store(&idx->n_open, (uint64_t) idx->nlive);
	atomic_store(&idx->n_profiles, (uint64_t) idx->profs.n);
	atomic_store(&idx->n_listed,
	    (uint64_t) (lm_inverted_entries(idx->piv) + lm_inverted_entries(idx->civ)));
}

/* Write lock held: the index now reflects the change log up to seq (0:
 * unchanged), published in the critical section of the change. */
static void
publish_seq(lm_index *idx, uint64_t seq)
{
	if (seq != 0)
		atomic_store(&idx->seq, seq);
}

/*
 * The typed puts share these: rec is a record of the kind posting says,
 * decoded by protobuf-c (put_plain, which makes it compact) or compact
 * (put_compact); either way the put takes it over.
 */
static int
put_compact(lm_index *idx, bool posting, ProtobufCMessage *rec, uint64_t seq)
{
	lm_index_prepared ip;
	int rc;

	if (rec == NULL)
		return LM_EINVAL;
	if (idx == NULL) {
		free(rec);
		return LM_EINVAL;
	}
	if ((rc = lm_index_prepare(&ip, posting, rec)) != LM_OK)
		return rc;
	return lm_index_put_prepared(idx, &ip, seq);
}

static int
put_plain(lm_index *idx, bool posting, ProtobufCMessage *rec, uint64_t seq)
{
	int rc;

	if (rec == NULL)
		return LM_EINVAL;
	if (idx == NULL) {
		protobuf_c_message_free_unpacked(rec, NULL);
		return LM_EINVAL;
	}
	if ((rc = compact_record(&rec)) != LM_OK)
		return rc;
	return put_compact(idx, posting, rec, seq);
}

int
lm_index_put_posting(lm_index *idx, JobPosting *rec, uint64_t seq)
{
	return put_plain(idx, true, rec != NULL ? &rec->base : NULL, seq);
}

int
lm_index_prepare(lm_index_prepared *ip, bool posting, ProtobufCMessage *rec)
{
	return lm_index_prepare_wire(ip, posting, rec, NULL, 0);
}

static int prepare(lm_index_prepared *ip, bool posting, ProtobufCMessage *rec,
    const void *wire, size_t len, bool stored);

int
lm_index_prepare_wire(lm_index_prepared *ip, bool posting, ProtobufCMessage *rec,
    const void *wire, size_t len)
{
	return prepare(ip, posting, rec, wire, len, false);
}

int
lm_index_prepare_stored(
    lm_index_prepared *ip, bool posting, ProtobufCMessage *rec, size_t len)
{
	return prepare(ip, posting, rec, NULL, len, true);
}

/* Gives a self-contained prep its packed record: none when stored (the
 * store has it; len is its size), else a copy of the wire bytes len when
 * there are some, else rec encoded. A prep that is not self-contained
 * keeps its record instead. */
static int
prepare_wire(lm_index_prepared *ip, const void *wire, size_t len, bool stored)
{
	int rc;

	if (ip->posting ? !lm_posting_prep_self_contained(ip->prep)
	                : !lm_profile_prep_self_contained(ip->prep))
		return LM_OK;
	if (stored) {
		ip->stored = true;
		ip->wire_len = len;
	} else if (wire == NULL) {
		if ((rc = lm_pb_encode(ip->rec, &ip->wire, &ip->wire_len)) != LM_OK)
			return rc;
	} else {
		if ((ip->wire = malloc(len ? len : 1)) == NULL)
			return LM_ENOMEM;
		memcpy(ip->wire, wire, len);
		ip->wire_len = len;
	}
	return ip->wire_len <= UINT32_MAX ? LM_OK : LM_EINVAL;
}

static int
prepare(lm_index_prepared *ip, bool posting, ProtobufCMessage *rec, const void *wire,
    size_t len, bool stored)
{
	const char *id;
	int rc;

	if (ip == NULL)
		return LM_EINVAL;
	memset(ip, 0, sizeof(*ip));
	ip->posting = posting;
	if (rec == NULL)
		return LM_EINVAL;
	id = posting ? ((const JobPosting *) rec)->id
	             : ((const CandidateProfile *) rec)->id;
	if (id == NULL || id[0] == '\0') {
		free(rec);
		return LM_EINVAL;
	}
	rc = posting ? lm_posting_prep_new(
	                   (const JobPosting *) rec, (lm_posting_prep **) &ip->prep)
	             : lm_profile_prep_new((const CandidateProfile *) rec,
	                   (lm_profile_prep **) &ip->prep);
	if (rc != LM_OK) {
		free(rec);
		return rc;
	}
	ip->rec = rec;
	if ((rc = prepare_wire(ip, wire, len, stored)) != LM_OK)
		lm_index_prepared_clear(ip);
	return rc;
}

void
lm_index_prepared_clear(lm_index_prepared *ip)
{
	if (ip == NULL)
		return;
	if (ip->posting)
		lm_posting_prep_free(ip->prep);
	else
		lm_profile_prep_free(ip->prep);
	free(ip->rec);
	free(ip->wire);
	ip->prep = NULL;
	ip->rec = NULL;
	ip->wire = NULL;
	ip->wire_len = 0;
	ip->stored = false;
}

static int put_posting(lm_index *idx, lm_index_prepared *ip, uint64_t seq);
static int put_profile(lm_index *idx, lm_index_prepared *ip, uint64_t seq);

int
lm_index_put_prepared(lm_index *idx, lm_index_prepared *ip, uint64_t seq)
{
	if (ip == NULL || ip->rec == NULL)
		return LM_EINVAL;
	if (idx == NULL || (ip->stored && idx->store == NULL)) {
		lm_index_prepared_clear(ip);
		return LM_EINVAL;
	}
	return ip->posting ? put_posting(idx, ip, seq) : put_profile(idx, ip, seq);
}

int
lm_index_put_posting_compact(lm_index *idx, JobPosting *rec, uint64_t seq)
{
	return put_compact(idx, true, rec != NULL ? &rec->base : NULL, seq);
}

/* The put of a prepared posting: takes ownership of what ip holds (ip is
 * empty on return). A posting with wire bytes keeps them and its prep,
 * which forgets the record: the record is freed. */
static int
put_posting(lm_index *idx, lm_index_prepared *ip, uint64_t seq)
{
	JobPosting *rec = (JobPosting *) ip->rec;
	lm_posting_prep *pp = ip->prep;
	uint8_t *wire = ip->wire;
	size_t wire_len = ip->wire_len;
	bool bare = wire != NULL || ip->stored; /* the entry keeps no record */
	struct ent *e = NULL, *old;
	bool counted, live, listed;
	uint8_t part;
	size_t nterms = 0;
	int rc;

	memset(ip, 0, sizeof(*ip));
	pthread_rwlock_wrlock(&idx->lock);
	old = table_find(&idx->posts, rec->id);
	if (old != NULL && old->version > rec->version) {
		rc = LM_ESTALE;
		goto fail;
	}
	if ((rc = lm_posting_prep_bind(pp, idx->stats)) != LM_OK ||
	    (rc = exp_reserve(idx)) != LM_OK ||
	    (rc = wbuf_reserve(idx, lm_prep_terms_max(pp, NULL))) != LM_OK)
		goto fail;
	counted = lm_skill_stats_counts(rec);
	live = posting_live(rec, idx->clock);
	/* An index being loaded lists its postings when the load ends
	 * (lm_index_loaded). */
	listed = rec->status != LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED &&
	         !idx->loading;
	part = posting_part(lm_posting_prep_key(pp));
	if (counted && (rc = lm_skill_stats_add(idx->stats, pp)) != LM_OK)
		goto fail;
	if (old == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL ||
		    table_reserve(&idx->posts) != LM_OK ||
		    (e->id = lm_posting_prep_id(pp), table_insert(&idx->posts, e)) !=
		        LM_OK) {
			if (counted)
				lm_skill_stats_remove(idx->stats, pp);
			free(e);
			e = NULL;
			rc = LM_ENOMEM;
			goto fail;
		}
		if (listed &&
		    (rc = list_prepare(idx, pp, NULL, part, e->slot, &nterms)) != LM_OK) {
			if (counted)
				lm_skill_stats_remove(idx->stats, pp);
			table_unlink(&idx->posts, e);
			free(e);
			goto fail;
		}
		if (listed)
			list_commit(idx, pp, part, e->slot, nterms);
	} else {
		e = old;
		/* The new listing is made sure of before the old one goes. */
		if (listed &&
		    (rc = list_prepare(idx, pp, NULL, part, e->slot, &nterms)) != LM_OK) {
			if (counted)
				lm_skill_stats_remove(idx->stats, pp);
			goto fail;
		}
		if (e->listed && listed && e->part == part) {
			list_replace(idx, e->pp, NULL, pp, part, e->slot, nterms);
		} else {
			if (e->listed)
				list_out(idx, e->pp, NULL, e->part, e->slot);
			if (listed)
				list_commit(idx, pp, part, e->slot, nterms);
		}
		if (e->listed)
			list_trim(idx, true, e->part);
		if (e->counted)
			lm_skill_stats_remove(idx->stats, e->pp);
		if (e->live)
			idx->nlive--;
		/* The map's key must point into the new prep before the old
		 * one goes (same text: the key is present, nothing allocated). */
		e->id = lm_posting_prep_id(pp);
		(void) lm_hashmap_put(idx->posts.by_id, e->id, e);
		lm_posting_prep_free(e->pp);
		free(e->rec);
		free(e->wire);
	}
	e->rec = bare ? NULL : &rec->base;
	e->wire = wire;
	e->wire_len = (uint32_t) wire_len;
	e->pp = pp;
	table_set_slot(&idx->posts, e->slot, lm_posting_prep_key(pp), pp);
	e->version = rec->version;
	atomic_store(&e->damage_logged, false); /* a new version */
	e->closed = rec->status == LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
	e->counted = counted;
	e->live = live;
	idx->nlive += live;
	e->listed = listed;
	e->part = part;
	exp_set(idx, e, live ? rec->expires_at : 0);
	maybe_reshare(idx, false);
	publish_counts(idx);
	publish_seq(idx, seq);
	if (bare)
		lm_posting_prep_forget(pp); /* before any query reads it */
	pthread_rwlock_unlock(&idx->lock);
	if (bare)
		free(rec);
	reshare_step(idx);
	return LM_OK;
fail:
	lm_posting_prep_unbind(pp); /* the symbols are the index's: under the lock */
	if (rc == LM_ESTALE)
		publish_seq(idx, seq);
	pthread_rwlock_unlock(&idx->lock);
	lm_posting_prep_free(pp);
	free(rec);
	free(wire);
	return rc;
}

int
lm_index_put_profile(lm_index *idx, CandidateProfile *rec, uint64_t seq)
{
	return put_plain(idx, false, rec != NULL ? &rec->base : NULL, seq);
}

int
lm_index_put_profile_compact(lm_index *idx, CandidateProfile *rec, uint64_t seq)
{
	return put_compact(idx, false, rec != NULL ? &rec->base : NULL, seq);
}

/* The put of a prepared profile: as put_posting. */
static int
put_profile(lm_index *idx, lm_index_prepared *ip, uint64_t seq)
{
	CandidateProfile *rec = (CandidateProfile *) ip->rec;
	lm_profile_prep *cp = ip->prep;
	uint8_t *wire = ip->wire;
	size_t wire_len = ip->wire_len;
	bool bare = wire != NULL || ip->stored; /* the entry keeps no record */
	struct ent *e = NULL, *old;
	uint8_t part;
	size_t nterms = 0;
	int rc;

	memset(ip, 0, sizeof(*ip));
	pthread_rwlock_wrlock(&idx->lock);
	old = table_find(&idx->profs, rec->id);
	if (old != NULL && old->version > rec->version) {
		rc = LM_ESTALE;
		goto fail;
	}
	if ((rc = lm_profile_prep_bind(cp, idx->stats)) != LM_OK ||
	    (rc = wbuf_reserve(idx, lm_prep_terms_max(NULL, cp))) != LM_OK)
		goto fail;
	part = profile_part(lm_profile_prep_key(cp));
	if (old == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL ||
		    table_reserve(&idx->profs) != LM_OK ||
		    (e->id = lm_profile_prep_id(cp), table_insert(&idx->profs, e)) !=
		        LM_OK) {
			free(e);
			rc = LM_ENOMEM;
			goto fail;
		}
		if ((rc = list_prepare(idx, NULL, cp, part, e->slot, &nterms)) != LM_OK) {
			table_unlink(&idx->profs, e);
			free(e);
			goto fail;
		}
		list_commit(idx, NULL, part, e->slot, nterms);
	} else {
		e = old;
		if ((rc = list_prepare(idx, NULL, cp, part, e->slot, &nterms)) != LM_OK)
			goto fail;
		if (e->part == part) {
			list_replace(idx, NULL, e->cp, NULL, part, e->slot, nterms);
		} else {
			list_out(idx, NULL, e->cp, e->part, e->slot);
			list_commit(idx, NULL, part, e->slot, nterms);
		}
		list_trim(idx, false, e->part);
		e->id = lm_profile_prep_id(cp); /* as for postings: key first */
		(void) lm_hashmap_put(idx->profs.by_id, e->id, e);
		lm_profile_prep_free(e->cp);
		free(e->rec);
		free(e->wire);
	}
	e->rec = bare ? NULL : &rec->base;
	e->wire = wire;
	e->wire_len = (uint32_t) wire_len;
	e->cp = cp;
	table_set_slot(&idx->profs, e->slot, lm_profile_prep_key(cp), cp);
	e->version = rec->version;
	atomic_store(&e->damage_logged, false); /* a new version */
	e->listed = true;
	e->part = part;
	publish_counts(idx);
	publish_seq(idx, seq);
	if (bare)
		lm_profile_prep_forget(cp); /* before any query reads it */
	pthread_rwlock_unlock(&idx->lock);
	if (bare)
		free(rec);
	reshare_step(idx);
	return LM_OK;
fail:
	lm_profile_prep_unbind(cp);
	if (rc == LM_ESTALE)
		publish_seq(idx, seq);
	pthread_rwlock_unlock(&idx->lock);
	lm_profile_prep_free(cp);
	free(rec);
	free(wire);
	return rc;
}

int
lm_index_remove_posting(lm_index *idx, const char *id, uint64_t seq)
{
	struct ent *e;

	if (idx == NULL || id == NULL)
		return LM_EINVAL;
	pthread_rwlock_wrlock(&idx->lock);
	publish_seq(idx, seq);
	if ((e = table_find(&idx->posts, id)) == NULL) {
		pthread_rwlock_unlock(&idx->lock);
		return LM_ENOENT;
	}
	if (e->counted)
		lm_skill_stats_remove(idx->stats, e->pp);
	if (e->live)
		idx->nlive--;
	exp_set(idx, e, 0);
	if (e->listed) {
		list_out(idx, e->pp, NULL, e->part, e->slot);
		list_trim(idx, true, e->part);
	}
	lm_posting_prep_unbind(e->pp);
	table_unlink(&idx->posts, e);
	maybe_reshare(idx, false);
	publish_counts(idx);
	pthread_rwlock_unlock(&idx->lock);
	ent_free(e, true);
	reshare_step(idx);
	return LM_OK;
}

int
lm_index_remove_profile(lm_index *idx, const char *id, uint64_t seq)
{
	struct ent *e;

	if (idx == NULL || id == NULL)
		return LM_EINVAL;
	pthread_rwlock_wrlock(&idx->lock);
	publish_seq(idx, seq);
	if ((e = table_find(&idx->profs, id)) == NULL) {
		pthread_rwlock_unlock(&idx->lock);
		return LM_ENOENT;
	}
	list_out(idx, NULL, e->cp, e->part, e->slot);
	list_trim(idx, false, e->part);
	lm_profile_prep_unbind(e->cp);
	table_unlink(&idx->profs, e);
	publish_counts(idx);
	pthread_rwlock_unlock(&idx->lock);
	ent_free(e, false);
	reshare_step(idx);
	return LM_OK;
}

/* Write lock held. Pops the expiries due by now: O(log n) per posting
 * that expires, nothing for the others. The IDF statistics keep expired
 * postings (see the top of this file). */
static void
advance_locked(lm_index *idx, int64_t now)
{
	bool changed = false;

	if (now <= idx->clock)
		return;
	idx->clock = now;
	while (idx->nexp > 0 && idx->exp[0].at <= now) {
		struct ent *e = idx->posts.v[idx->exp[0].doc];
		exp_set(idx, e, 0);
		e->live = false;
		idx->nlive--;
		changed = true;
	}
	if (changed)
		publish_counts(idx);
}

bool
lm_index_advance(lm_index *idx, int64_t now)
{
	bool worked = false;

	if (idx == NULL)
		return false;
	pthread_rwlock_wrlock(&idx->lock);
	advance_locked(idx, now);
	pthread_rwlock_unlock(&idx->lock);
	for (int i = 0; i < LM_INDEX_ADVANCE_STEPS &&
	                (atomic_load(&idx->stepping) || atomic_load(&idx->reshare_due));
	     i++)
		if (!(worked = reshare_step(idx)))
			break;
	return worked && atomic_load(&idx->stepping);
}

/* Under the write lock, so that a query reads the same sequence number for
 * the whole of its scan (it reads it under the read lock). The check before
 * the lock is safe: only the one loader writes seq. Nothing else: the
 * follower calls it after every change-log entry. */
void
lm_index_set_seq(lm_index *idx, uint64_t seq)
{
	if (atomic_load(&idx->seq) == seq)
		return;
	pthread_rwlock_wrlock(&idx->lock);
	atomic_store(&idx->seq, seq);
	pthread_rwlock_unlock(&idx->lock);
}

void
lm_index_loading(lm_index *idx)
{
	pthread_rwlock_wrlock(&idx->lock);
	idx->loading = true;
	pthread_rwlock_unlock(&idx->lock);
}

/*
 * The listing of a load's postings (list_loaded) runs on two threads: the
 * partitions are dealt to two sets holding about as many postings each,
 * and each thread lists the postings of its set in increasing doc order.
 * Different partitions' lists share nothing (inverted.h). What every
 * posting shares is done first, on the caller's thread alone: its hold on
 * the idf snapshot (lm_idf_snap_hold) and the failure seam. Meanwhile
 * nothing changes the snapshot or the statistics, which the threads read
 * (lm_idf_snap_term_shares, lm_prep_terms), nor a posting's part, closed
 * or pp; a thread reads and writes `listed` of its own postings only.
 */
struct lister {
	lm_index *idx;
	const bool *mine; /* by partition: the partitions of this thread */
	size_t upto;      /* the docs below upto were held */
	struct wbuf w;    /* its working memory (the caller's: idx->wr) */
	size_t listed;    /* postings it listed */
	int rc;
};

static bool
to_list(const struct ent *e)
{
	return e != NULL && !e->listed && !e->closed;
}

static void *
list_set(void *arg)
{
	struct lister *l = arg;
	const lm_index *idx = l->idx;
	const struct table *t = &idx->posts;

	for (size_t d = 0; d < l->upto; d++) {
		struct ent *e = t->v[d];
		const lm_posting_prep *pp;
		size_t n;
		/* part first: listed belongs to the other thread otherwise. */
		if (e == NULL || e->closed || !l->mine[e->part] || e->listed)
			continue;
		pp = e->pp;
		n = posting_terms(idx, idx->snap, pp, &l->w);
		if (lm_inverted_add(idx->piv, e->part, e->slot, l->w.terms, l->w.shares,
		        l->w.after, n, prep_bare(pp)) != LM_OK) {
			l->rc = LM_ENOMEM;
			break;
		}
		e->listed = true;
		l->listed++;
	}
	return NULL;
}

/* Deals the partitions of the postings left to list to mine[0] and
 * mine[1] (largest first, each to the set with fewer postings). */
static void
deal_parts(const struct table *t, bool mine[2][LM_INVERTED_PARTS_MAX])
{
	size_t count[LM_INVERTED_PARTS_MAX] = {0}, load[2] = {0, 0};

	for (size_t d = 0; d < t->ndocs; d++)
		if (to_list(t->v[d]))
			count[t->v[d]->part]++;
	for (;;) {
		size_t best = LM_INVERTED_PARTS_MAX;
		for (size_t p = 0; p < LM_INVERTED_PARTS_MAX; p++)
			if (count[p] > 0 &&
			    (best == LM_INVERTED_PARTS_MAX || count[p] > count[best]))
				best = p;
		if (best == LM_INVERTED_PARTS_MAX)
			return;
		int to = load[1] < load[0] ? 1 : 0;
		mine[to][best] = true;
		load[to] += count[best];
		count[best] = 0;
	}
}

/* Write lock held: lists every posting of a loading index that is not
 * closed (on two threads, above) and ends the loading. The statistics are
 * final, so each symbol's snapshot idf is its idf now: no share needs
 * computing again. A failure leaves the postings listed so far listed and
 * the index loading; a retry lists the rest. */
static int
list_loaded(lm_index *idx)
{
	bool mine[2][LM_INVERTED_PARTS_MAX];
	struct table *t = &idx->posts;
	struct lister l[2];
	struct wbuf hw = {0};
	size_t upto = t->ndocs, cap = idx->wr.cap;
	pthread_t th;
	bool helper = false;
	int rc = LM_OK;

	if (!idx->loading)
		return LM_OK;
	if (idx->rb != NULL)
		idx->rb->failed = true; /* it does not follow the listing here */
	for (size_t d = 0; d < t->ndocs; d++) {
		struct ent *e = t->v[d];
		if (!to_list(e))
			continue;
		if (fault_check(idx, LM_INDEX_ALLOC_SNAP) != LM_OK ||
		    lm_idf_snap_hold(idx->snap, idx->stats, e->pp) != LM_OK) {
			rc = LM_ENOMEM;
			upto = d;
			break;
		}
		if (fault_check(idx, LM_INDEX_ALLOC_LISTS) != LM_OK) {
			lm_idf_snap_remove(idx->snap, e->pp);
			rc = LM_ENOMEM;
			upto = d;
			break;
		}
	}
	memset(mine, 0, sizeof(mine));
	deal_parts(t, mine);
	for (int i = 0; i < 2; i++)
		l[i] = (struct lister){
		    .idx = idx, .mine = mine[i], .upto = upto, .rc = LM_OK};
	l[0].w = idx->wr;
	/* The helper thread's working memory; without it (or the thread),
	 * this thread lists both sets. */
	if (fault_check(idx, LM_INDEX_ALLOC_SCRATCH) == LM_OK) {
		hw.terms = malloc(cap * sizeof(*hw.terms));
		hw.shares = malloc(cap * sizeof(*hw.shares));
		hw.after = malloc(cap * sizeof(*hw.after));
	}
	if (hw.terms != NULL && hw.shares != NULL && hw.after != NULL) {
		hw.cap = cap;
		l[1].w = hw;
		helper = pthread_create(&th, NULL, list_set, &l[1]) == 0;
	}
	list_set(&l[0]);
	if (helper) {
		pthread_join(th, NULL);
	} else {
		l[1].w = idx->wr;
		list_set(&l[1]);
	}
	free(hw.terms);
	free(hw.shares);
	free(hw.after);
	/* A posting held but not listed lets go of the snapshot again, so
	 * that a retry finds it as it was. */
	for (int i = 0; i < 2; i++) {
		idx->gen += l[i].listed;
		idx->since_check += l[i].listed;
		if (l[i].rc != LM_OK)
			rc = l[i].rc;
	}
	for (size_t d = 0; d < upto; d++)
		if (to_list(t->v[d]))
			lm_idf_snap_remove(idx->snap, t->v[d]->pp);
	if (rc != LM_OK)
		return rc;
	idx->loading = false;
	maybe_reshare(idx, true);
	publish_counts(idx);
	return LM_OK;
}

int
lm_index_loaded(lm_index *idx)
{
	int rc;

	if (idx == NULL)
		return LM_EINVAL;
	pthread_rwlock_wrlock(&idx->lock);
	rc = list_loaded(idx);
	pthread_rwlock_unlock(&idx->lock);
	return rc;
}

int
lm_index_replace(lm_index *idx, lm_index *from, uint64_t seq)
{
	int rc;

	if (idx == NULL || from == NULL || from == idx || from->model != idx->model ||
	    from->store != idx->store) {
		if (from != idx)
			lm_index_free(from);
		return LM_EINVAL;
	}
	/* from is the caller's alone: its postings are listed (a load) or
	 * its snapshot brought up to date outside idx's lock. */
	if ((rc = lm_index_loaded(from)) != LM_OK) {
		lm_index_free(from);
		return rc;
	}
	maybe_reshare(from, true);
	pthread_rwlock_wrlock(&idx->lock);
	SWAP(struct table, idx->posts, from->posts);
	SWAP(struct table, idx->profs, from->profs);
	SWAP(lm_skill_stats *, idx->stats, from->stats);
	SWAP(lm_inverted *, idx->piv, from->piv);
	SWAP(lm_inverted *, idx->civ, from->civ);
	SWAP(lm_idf_snap *, idx->snap, from->snap);
	SWAP(size_t, idx->since_check, from->since_check);
	atomic_store(&idx->reshare_due, false); /* from's snapshot is new */
	if (idx->rb != NULL)
		idx->rb->failed = true; /* of the old content: the next step drops it */
	SWAP(struct wbuf, idx->wr, from->wr); /* room for from's records */
	idx->gen++;                           /* the cached drift was the old content's */
	SWAP(struct expiry *, idx->exp, from->exp);
	SWAP(size_t, idx->nexp, from->nexp);
	SWAP(size_t, idx->expcap, from->expcap);
	SWAP(size_t, idx->nlive, from->nlive);
	SWAP(int64_t, idx->clock, from->clock);
	advance_locked(idx, from->clock); /* the later clock of the two */
	publish_counts(idx);
	atomic_store(&idx->seq, seq);
	pthread_rwlock_unlock(&idx->lock);
	lm_index_free(from); /* the old content, outside the lock */
	return LM_OK;
}

uint64_t
lm_index_seq(lm_index *idx)
{
	return atomic_load(&idx->seq);
}

const lm_model *
lm_index_model(const lm_index *idx)
{
	return idx->model;
}

const char *
lm_index_model_version(const lm_index *idx)
{
	return idx->model->version;
}

void
lm_index_counts_get(lm_index *idx, lm_index_counts *out)
{
	out->postings = atomic_load(&idx->n_postings);
	out->open_postings = atomic_load(&idx->n_open);
	out->profiles = atomic_load(&idx->n_profiles);
	out->reached = atomic_load(&idx->reached);
	out->scored = atomic_load(&idx->scored);
	out->entries = atomic_load(&idx->entries);
	out->listed = atomic_load(&idx->n_listed);
	out->reshares = atomic_load(&idx->reshares);
	out->damaged = atomic_load(&idx->damaged);
}

size_t
lm_index_list_bytes(lm_index *idx)
{
	size_t b;

	pthread_mutex_lock(&idx->rb_lock);
	pthread_rwlock_rdlock(&idx->lock);
	b = lm_inverted_bytes(idx->piv) + lm_inverted_bytes(idx->civ);
	if (idx->rb != NULL)
		b += lm_inverted_bytes(idx->rb->iv);
	if (idx->retired != NULL)
		b += lm_inverted_bytes(idx->retired);
	pthread_rwlock_unlock(&idx->lock);
	pthread_mutex_unlock(&idx->rb_lock);
	return b;
}

void
lm_index_set_fault(lm_index *idx, int (*fault)(void *arg, lm_index_alloc what), void *arg)
{
	pthread_rwlock_wrlock(&idx->lock);
	idx->fault = fault;
	idx->fault_arg = arg;
	pthread_rwlock_unlock(&idx->lock);
}

void
lm_index_set_reshare_seam(
    lm_index *idx, int (*seam)(void *arg, size_t *budget), void *arg)
{
	pthread_mutex_lock(&idx->rb_lock);
	idx->seam = seam;
	idx->seam_arg = arg;
	pthread_mutex_unlock(&idx->rb_lock);
}

size_t
lm_index_reshare_walked(lm_index *idx)
{
	return atomic_load(&idx->walked);
}

/* The entry of doc in the tiers of a term list, or NULL. */
static const lm_inverted_ent *
find_ent(const lm_inverted_view tiers[LM_INVERTED_TIERS], uint32_t doc)
{
	for (uint32_t j = 0; j < LM_INVERTED_TIERS; j++) {
		uint32_t lo = 0, hi = tiers[j].n;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (tiers[j].e[mid].doc < doc)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < tiers[j].n && tiers[j].e[lo].doc == doc)
			return &tiers[j].e[lo];
	}
	return NULL;
}

#define CHECK_FAIL(...)                                                                  \
	do {                                                                             \
		snprintf(err, errlen, __VA_ARGS__);                                      \
		rc = LM_EINVAL;                                                          \
		goto done;                                                               \
	} while (0)

/* lm_index_check_lists of both tables' slots: each doc id's holds its
 * entry's veto key and prep, a free one's nothing. Read lock held. */
static int
check_slots(const lm_index *idx, char *err, size_t errlen)
{
	for (int side = 0; side < 2; side++) {
		const struct table *t = side == 0 ? &idx->posts : &idx->profs;
		for (size_t d = 0; d < t->ndocs; d++) {
			const struct ent *e = t->v[d];
			const void *prep = e == NULL   ? NULL
			                   : side == 0 ? (const void *) e->pp
			                               : (const void *) e->cp;
			const lm_veto_key *key = e == NULL   ? NULL
			                         : side == 0 ? lm_posting_prep_key(e->pp)
			                                     : lm_profile_prep_key(e->cp);
			if (t->slots[d].prep != prep || t->slots[d].key != key) {
				snprintf(err, errlen,
				    "%s doc id %zu: its slot is not its entry's",
				    side == 0 ? "posting" : "profile", d);
				return LM_EINVAL;
			}
		}
	}
	return LM_OK;
}

/* lm_index_check_lists of the expiry heap: in heap order, holding the
 * live postings with an expiry, each once at its place. Read lock held. */
static int
check_expiry(const lm_index *idx, char *err, size_t errlen)
{
	const struct table *t = &idx->posts;
	size_t want = 0;

	for (size_t i = 1; i < idx->nexp; i++)
		if (idx->exp[(i - 1) / 2].at > idx->exp[i].at) {
			snprintf(err, errlen,
			    "expiry heap: place %zu is before its parent", i);
			return LM_EINVAL;
		}
	for (size_t d = 0; d < t->ndocs; d++) {
		const struct ent *e = t->v[d];
		int64_t at =
		    e != NULL && e->live ? lm_posting_prep_key(e->pp)->expires_at : 0;
		size_t i = e != NULL ? e->hpos : 0;
		if ((at != 0) != (i != 0) ||
		    (i != 0 && (i > idx->nexp || idx->exp[i - 1].doc != d ||
		                   idx->exp[i - 1].at != at))) {
			snprintf(err, errlen,
			    "expiry heap: posting doc id %zu (expiry %lld) is %s", d,
			    (long long) at, i == 0 ? "not in it" : "not at its place");
			return LM_EINVAL;
		}
		want += at != 0;
	}
	if (want != idx->nexp) {
		snprintf(err, errlen,
		    "expiry heap: %zu expiries, %zu live postings expire", idx->nexp,
		    want);
		return LM_EINVAL;
	}
	return LM_OK;
}

/* lm_index_check_lists of the postings' lists iv at snapshot sn, for the
 * doc ids below upto. Read lock held. */
static int
check_postings(const lm_index *idx, const lm_inverted *iv, const lm_idf_snap *sn,
    size_t upto, const char *what, char *err, size_t errlen)
{
	const struct table *t = &idx->posts;
	struct wbuf w = {0};
	size_t want = 0, nall = 0, nbare = 0, most = 1;
	uint32_t nsym = lm_idf_snap_syms(sn);
	uint8_t *seen = calloc(t->ndocs + 1, 1);
	uint32_t *refs = NULL;
	int rc = LM_OK;

	for (size_t d = 0; d < t->ndocs; d++) {
		const struct ent *e = t->v[d];
		if (e == NULL || !e->listed)
			continue;
		if (lm_prep_terms_max(e->pp, NULL) > most)
			most = lm_prep_terms_max(e->pp, NULL);
		for (size_t i = 0; i < lm_idf_snap_nshares(e->pp); i++)
			if ((lm_idf_snap_skill_term(e->pp, i) >> 1) >= nsym)
				nsym = (lm_idf_snap_skill_term(e->pp, i) >> 1) + 1;
	}
	refs = calloc(nsym + 1, sizeof(*refs));
	w.terms = malloc(most * sizeof(*w.terms));
	w.shares = malloc(most * sizeof(*w.shares));
	w.after = malloc(most * sizeof(*w.after));
	w.cap = most;
	if (seen == NULL || refs == NULL || w.terms == NULL || w.shares == NULL ||
	    w.after == NULL)
		CHECK_FAIL("out of memory");
	/* The snapshot holds every listed posting, and no other. */
	for (size_t d = 0; d < t->ndocs; d++)
		if (t->v[d] != NULL && t->v[d]->listed)
			for (size_t i = 0; i < lm_idf_snap_nshares(t->v[d]->pp); i++)
				refs[lm_idf_snap_skill_term(t->v[d]->pp, i) >> 1]++;
	for (uint32_t sym = 0; sym < nsym; sym++)
		if (refs[sym] != lm_idf_snap_refs(sn, sym))
			CHECK_FAIL("%s: the snapshot counts %u postings' skills of "
			           "symbol %u, %u are listed",
			    what, lm_idf_snap_refs(sn, sym), sym, refs[sym]);
	for (size_t d = 0; d < t->ndocs && d < upto; d++) {
		const struct ent *e = t->v[d];
		size_t n;
		if (e == NULL || !e->listed)
			continue;
		n = posting_terms(idx, sn, e->pp, &w);
		for (size_t i = 0; i < n; i++) {
			lm_inverted_view tiers[LM_INVERTED_TIERS];
			const lm_inverted_ent *x;
			bool again = false;
			for (size_t k = 0; k < i; k++)
				again = again || w.terms[k] == w.terms[i];
			if (again)
				continue;
			want++;
			if (!lm_inverted_list(iv, e->part, w.terms[i], tiers) ||
			    (x = find_ent(tiers, (uint32_t) d)) == NULL)
				CHECK_FAIL(
				    "%s: %s (doc %zu) is not in the list of term %u",
				    what, e->id, d, w.terms[i]);
			if (x->share != w.shares[i] || x->after != w.after[i])
				CHECK_FAIL("%s: %s (doc %zu), term %u: share %.9g after "
				           "%.9g, at the snapshot %.9g after %.9g",
				    what, e->id, d, w.terms[i], x->share, x->after,
				    w.shares[i], w.after[i]);
		}
		nall++;
		nbare += prep_bare(e->pp);
	}
	if (lm_inverted_entries(iv) != want)
		CHECK_FAIL("%s: %zu entries, %zu postings' terms", what,
		    lm_inverted_entries(iv), want);
	for (int bare = 0; bare < 2; bare++) {
		size_t total = 0;
		memset(seen, 0, t->ndocs + 1);
		for (uint32_t p = 0; p < POST_PARTS; p++) {
			size_t n;
			const uint32_t *v = bare ? lm_inverted_bare(iv, p, &n)
			                         : lm_inverted_all(iv, p, &n);
			for (size_t i = 0; i < n; i++) {
				const struct ent *e = v[i] < t->ndocs ? t->v[v[i]] : NULL;
				if (v[i] >= upto || e == NULL || !e->listed ||
				    e->part != p || seen[v[i]] ||
				    (bare && !prep_bare(e->pp)))
					CHECK_FAIL("%s: doc %u is in the %s list of "
					           "partition %u",
					    what, v[i], bare ? "bare" : "every-posting",
					    p);
				seen[v[i]] = 1;
			}
			total += n;
		}
		if (total != (bare ? nbare : nall))
			CHECK_FAIL("%s: %zu postings in the %s lists, %zu listed", what,
			    total, bare ? "bare" : "every-posting", bare ? nbare : nall);
	}
done:
	free(seen);
	free(refs);
	free(w.terms);
	free(w.shares);
	free(w.after);
	return rc;
}

int
lm_index_check_lists(lm_index *idx, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&idx->rb_lock);
	pthread_rwlock_rdlock(&idx->lock);
	rc = check_slots(idx, err, errlen);
	if (rc == LM_OK)
		rc = check_expiry(idx, err, errlen);
	if (rc == LM_OK)
		rc = check_postings(
		    idx, idx->piv, idx->snap, SIZE_MAX, "lists", err, errlen);
	if (rc == LM_OK && rebuild_live(idx) != NULL)
		rc = check_postings(idx, idx->rb->iv, idx->rb->sn, idx->rb->next,
		    "lists being built", err, errlen);
	/* What queries rely on in every tier: order, block maxima, bounds. */
	if (rc == LM_OK)
		rc = lm_inverted_check(idx->piv, err, errlen);
	if (rc == LM_OK)
		rc = lm_inverted_check(idx->civ, err, errlen);
	if (rc == LM_OK && rebuild_live(idx) != NULL)
		rc = lm_inverted_check(idx->rb->iv, err, errlen);
	pthread_rwlock_unlock(&idx->lock);
	pthread_mutex_unlock(&idx->rb_lock);
	return rc;
}

void
lm_index_set_window(lm_index *idx, uint32_t window)
{
	pthread_rwlock_wrlock(&idx->lock);
	if (window == 0)
		window = WINDOW;
	idx->window = window < 4 ? 4 : window > 31 ? 31 : window;
	pthread_rwlock_unlock(&idx->lock);
}

uint32_t
lm_index_window(lm_index *idx)
{
	uint32_t w;

	pthread_rwlock_rdlock(&idx->lock);
	w = idx->window;
	pthread_rwlock_unlock(&idx->lock);
	return w;
}

/* ---- top-k ------------------------------------------------------------------- */

struct hit {
	double score;
	const char *id;
	struct ent *e;
};

/* Ranking order: score descending, then id ascending. Ids in one scan are
 * unique, so this is a total order. */
static bool
better(const struct hit *a, const struct hit *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	return strcmp(a->id, b->id) < 0;
}

static int
cmp_hit(const void *a, const void *b)
{
	return better(a, b) ? -1 : (better(b, a) ? 1 : 0);
}

/* A bounded heap whose root is the worst kept hit. */
struct heap {
	struct hit *v;
	size_t n, cap;
};

static void
sift_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, w = i;
		if (l < h->n && better(&h->v[w], &h->v[l]))
			w = l;
		if (r < h->n && better(&h->v[w], &h->v[r]))
			w = r;
		if (w == i)
			return;
		struct hit t = h->v[i];
		h->v[i] = h->v[w];
		h->v[w] = t;
		i = w;
	}
}

static void
heap_offer(struct heap *h, const struct hit *x)
{
	if (h->cap == 0)
		return;
	if (h->n < h->cap) {
		size_t i = h->n++;
		h->v[i] = *x;
		while (i > 0) {
			size_t p = (i - 1) / 2;
			if (!better(&h->v[p], &h->v[i]))
				break;
			struct hit t = h->v[p];
			h->v[p] = h->v[i];
			h->v[i] = t;
			i = p;
		}
		return;
	}
	if (better(x, &h->v[0])) {
		h->v[0] = *x;
		sift_down(h, 0);
	}
}

/* ---- queries: candidates from the lists, exact top-k with bounds --------------- */

/*
 * A query ranks the records of one side for a subject, exactly, fully
 * evaluating few of them: block-max skipping over impact-tiered,
 * doc-ordered inverted lists, with a share per record and term and, for
 * postings, a prefix bound (inverted.h).
 *
 * Units are the tiers of the lists of the subject's terms (lm_prep_terms)
 * in the partitions that the subject's key does not veto. A record on a
 * unit adds its stored share times the unit's multiplier to the bound of
 * its skills value: ranking postings, the shares are at the idf snapshot
 * and the multiplier is the drift since (lm_idf_snap_drift), which bounds
 * how far any sum of shares, what follows an entry included, can have
 * grown; ranking profiles, a profile stores 1 for a skill and 0 for a word
 * and the multiplier is the subject's share of the term
 * (lm_scan_term_share). The skills value of a pair, which bounds the score
 * of an eligible pair, is at most the sum over the units the record is on
 * (score.h, lm_posting_shares). A unit's share bound and key bound are its
 * tier's largest share and key times the multiplier. The pairs the shares
 * cannot bound have no skills feature: their gate, params.no_skills_gate,
 * bounds them. They are the postings without skills of their own (the
 * bare lists, always read), and every record when the subject is a posting
 * without skills of its own (every record of the partitions when it has no
 * skill ids at all: NO_OVERLAP cannot veto).
 *
 * 1. Seed: the units of the largest share bounds are accumulated (term at
 *    a time) until they reach SEED_CANDS records; the best max(4k, 64) by
 *    partial sum are evaluated (below), in doubling batches until the heap
 *    is full, which sets the bar (the k-th score kept, or min_score).
 * 2. Sweep: the records that can reach the bar are found and their sums
 *    completed, or bounded, from the lists in doc order (see sweep).
 * 3. Records are evaluated in decreasing bound order while the bound
 *    reaches the bar: the key pre-checks and key bound from the dense
 *    slots (lm_scan_vetoed, lm_scan_key_bound), then the exact vetoes and
 *    bound (lm_scan_*_bound), then the full score. Once a bound is below
 *    the bar no later record can enter, so the result is exactly the top k
 *    of an exhaustive scan, ties by id included (a bound equal to the bar
 *    is still evaluated).
 *
 * Records on no list of the subject's terms are vetoed by NO_OVERLAP, and
 * those of skipped partitions by the key pre-checks. `vetoed` counts the
 * records found vetoed: every one when the query returns fewer than k
 * matches (nothing was pruned), otherwise those the partitions, the lists
 * and the vetoes of the evaluated records removed.
 */
#define FIRST_BATCH 64   /* records evaluated to set the bar, at least */
#define SEED_CANDS  4096 /* records accumulated before units are left out */
#define TERM_SLACK  1e-4 /* relative and absolute, on a sum of shares */
/* From PREFETCH_DOCS doc ids on (2 MiB of slots, far more than the cache
 * keeps), the sweep asks for the slot of the entry PREFETCH_AHEAD places
 * ahead before it needs it; below that the slots stay in the cache and the
 * hint would only cost instructions. */
#define PREFETCH_DOCS  (1u << 18)
#define PREFETCH_AHEAD 16

/* A record to rank; during and after the sweep also its sum and the least
 * of what follows its entries read (see sweep). */
struct cand {
	double bound;
	uint32_t doc;
	float acc, after;
};

/* A unit: tier `tier` of the list of `term`. ub bounds what a record on it
 * adds (over the partitions visited); mult turns a stored share into that. */
struct term_bound {
	double ub;
	float mult;
	float kub;  /* bounds the keys of its entries times mult */
	float afix; /* profiles: what follows each entry (prefix_units) */
	uint32_t term, tier;
	uint32_t ti;    /* the term's place in the subject's terms */
	size_t entries; /* records on it (over the partitions visited) */
	uint64_t parts; /* the partitions visited where it has entries, a bit each */
};

/* A sweep's place in one partition's part of a unit (a tier, ordered by
 * doc): entries e[pos .. n) are still to come. */
struct cursor {
	const lm_inverted_ent *e;
	const float *bm; /* the tier's block maxima of keys */
	uint32_t pos, n;
	float mult;
	uint32_t band; /* see sweep */
	bool dense;    /* read a window at a time */
	bool whole;    /* every entry's key reaches the bar: nothing to complete */
	bool fixed;    /* profiles: every entry keyed kfix, afix following */
	float kfix, afix;
	double kfind; /* an entry finds when its key reaches this (cursor_new) */
};

/* A doc's slot in a query: mark == the query's stamp when the seed
 * accumulated the doc (acc its sum so far), stamp + 1 when it was
 * evaluated, stamp + 2 when the sweep found it (its sum and what follows
 * are in cands[idx]: ranking the few records found, the query then reads
 * them in order). Side by side, so that adding a share touches one cache
 * line. */
struct acc {
	uint32_t mark;
	union {
		float acc;
		uint32_t idx;
	} v;
};

/* Working memory of one query, reused through the index's pool: a struct
 * acc per doc id in as. */
struct scratch {
	struct scratch *next;
	struct acc *as;
	size_t mark_cap;
	uint32_t stamp;
	struct cand *cands;
	size_t cand_cap;
	uint32_t *terms;
	struct term_bound *tb;
	float *tf; /* two slots by term: see prefix_units */
	size_t term_cap;
	struct cursor *cur; /* the sweep's cursors, room for cur_cap */
	size_t cur_cap;
	uint64_t *open; /* the sweep's open records, a bit by doc: see sweep */
	size_t open_cap;
	uint32_t *live; /* prune_open's records not dropped, room for live_cap */
	size_t live_cap;
};

static void
scratch_free(struct scratch *s)
{
	if (s == NULL)
		return;
	free(s->as);
	free(s->cands);
	free(s->terms);
	free(s->tb);
	free(s->tf);
	free(s->cur);
	free(s->open);
	free(s->live);
	free(s);
}

static void
pool_free(lm_index *idx)
{
	while (idx->pool != NULL) {
		struct scratch *s = idx->pool;
		idx->pool = s->next;
		scratch_free(s);
	}
}

/* A scratch with mark room for ndocs docs, cands for ncand and terms for
 * nterms (new stamps); NULL when out of memory. Read lock held (ndocs
 * cannot change meanwhile). */
static struct scratch *
scratch_get(lm_index *idx, size_t ndocs, size_t ncand, size_t nterms)
{
	struct scratch *s;

	pthread_mutex_lock(&idx->pool_lock);
	if ((s = idx->pool) != NULL)
		idx->pool = s->next;
	pthread_mutex_unlock(&idx->pool_lock);
	if (s == NULL && (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if (s->mark_cap < ndocs) {
		size_t cap = ndocs + ndocs / 4 + 64;
		struct acc *a = realloc(s->as, cap * sizeof(*a));
		if (a == NULL)
			goto nomem;
		memset(a, 0, cap * sizeof(*a));
		s->as = a;
		s->mark_cap = cap;
		s->stamp = 0;
	}
	if (s->cand_cap < ncand) {
		size_t cap = ncand + ncand / 4 + 64;
		struct cand *c = realloc(s->cands, cap * sizeof(*c));
		if (c == NULL)
			goto nomem;
		s->cands = c;
		s->cand_cap = cap;
	}
	if (s->term_cap < nterms) {
		uint32_t *t = realloc(s->terms, nterms * sizeof(*t));
		struct term_bound *tb;
		float *tm;
		if (t == NULL)
			goto nomem;
		s->terms = t;
		if ((tb = realloc(s->tb, nterms * LM_INVERTED_TIERS * sizeof(*tb))) ==
		    NULL)
			goto nomem;
		s->tb = tb;
		if ((tm = realloc(s->tf, 2 * nterms * sizeof(*tm))) == NULL)
			goto nomem;
		s->tf = tm;
		s->term_cap = nterms;
	}
	/* Three stamps a query; wrapped, old marks could look current. */
	s->stamp += 3;
	if (s->stamp < 3 || s->stamp >= UINT32_MAX - 2) {
		memset(s->as, 0, s->mark_cap * sizeof(*s->as));
		s->stamp = 3;
	}
	return s;
nomem:
	scratch_free(s);
	return NULL;
}

static void
scratch_put(lm_index *idx, struct scratch *s)
{
	pthread_mutex_lock(&idx->pool_lock);
	s->next = idx->pool;
	idx->pool = s;
	pthread_mutex_unlock(&idx->pool_lock);
}

/* Reorders c[0..n) so that c[k] has the (k+1)-th largest bound, every
 * entry before it one at least as large and every entry after it one at
 * most as large (Wirth's selection). k < n. */
static void
select_top(struct cand *c, size_t n, size_t k)
{
	ptrdiff_t lo = 0, hi = (ptrdiff_t) n - 1, kk = (ptrdiff_t) k;

	while (lo < hi) {
		double x = c[kk].bound;
		ptrdiff_t i = lo, j = hi;
		do {
			while (c[i].bound > x)
				i++;
			while (x > c[j].bound)
				j--;
			if (i <= j) {
				struct cand t = c[i];
				c[i] = c[j];
				c[j] = t;
				i++;
				j--;
			}
		} while (i <= j);
		if (j < kk)
			lo = i;
		if (kk < i)
			hi = j;
	}
}

/* The score a candidate must reach to enter h: the k-th best kept when h
 * is full, else min_score. */
static double
bar(const struct heap *h, double min_score)
{
	return h->cap > 0 && h->n == h->cap ? h->v[0].score : min_score;
}

/* One query's ranking state (see rank). */
struct ranking {
	lm_scan *sc;
	const struct table *t;
	const lm_inverted *iv;
	uint8_t vis[MAX_PARTS]; /* the partitions visited: not skipped, not empty */
	uint32_t nvis;
	size_t nunits; /* the units' partitions: the sum of their sizes */
	bool jobs;
	bool unbounded; /* the shares bound no record: gate bounds each */
	float gate;     /* params.no_skills_gate, rounded up */
	double min_score;
	struct heap *h;
	struct scratch *s;
	size_t ncand;     /* records accumulated: s->cands[0 .. ncand) */
	size_t nvetoed;   /* records found vetoed */
	uint64_t scored;  /* records fully scored */
	uint64_t reached; /* records evaluated (their veto keys read) */
	uint64_t entries; /* list entries read */
	uint32_t found;   /* the stamp of the records to rank: see struct acc */
	float tau;        /* after the sweep: see sweep */
	uint64_t seeded;  /* records the seed evaluated */
	size_t nlive;     /* s->live[0 .. nlive), or SIZE_MAX: see prune_open */
	bool partial;     /* some list entries were left unread */
	uint32_t ahead;   /* PREFETCH_AHEAD, or 0 for no prefetching */
	uint32_t window;  /* the index's window (see sweep) */
};

/* Adds docs to the candidates with the gate of a posting without skills
 * as their bound (no share bounds them). */
static void
collect(struct ranking *q, const uint32_t *docs, size_t n)
{
	struct scratch *s = q->s;

	for (size_t i = 0; i < n; i++) {
		uint32_t d = docs[i];
		if (s->as[d].mark != s->stamp) {
			s->as[d].mark = s->stamp;
			s->as[d].v.acc = q->gate;
			s->cands[q->ncand++].doc = d;
		}
	}
}

/* Adds (as accumulate does) the entries e[0 .. n) of unit tb. */
static void
add_entries(
    struct ranking *q, const lm_inverted_ent *e, size_t n, const struct term_bound *tb)
{
	struct scratch *s = q->s;
	struct acc *as = s->as;
	uint32_t stamp = s->stamp;
	float mult = tb->mult;

	q->entries += n;
	for (size_t i = 0; i < n; i++) {
		uint32_t d = e[i].doc;
		float c = e[i].share * mult;
		if (as[d].mark == stamp)
			as[d].v.acc += c;
		else if (as[d].mark != stamp + 1) {
			as[d].mark = stamp;
			as[d].v.acc = c;
			s->cands[q->ncand++].doc = d;
		}
	}
}

/* Adds what unit tb gives each record on it to the record's sum. */
static void
accumulate(struct ranking *q, const struct term_bound *tb)
{
	for (uint64_t m = tb->parts; m != 0; m &= m - 1) {
		const lm_inverted_ent *e;
		const float *bm;
		float mx;
		size_t n;
		e = lm_inverted_tier(q->iv, (uint32_t) __builtin_ctzll(m), tb->term,
		    tb->tier, &n, &bm, &mx, &mx);
		add_entries(q, e, n, tb);
	}
}

/* Evaluates record d (marking it evaluated): the key pre-checks and key
 * bound, the exact vetoes and bound, the full score, into the heap. */
static void
evaluate(struct ranking *q, uint32_t d)
{
	const struct slot *sl = &q->t->slots[d];
	double floor = bar(q->h, q->min_score), b;
	lm_pair_state st;
	struct hit x;

	q->s->as[d].mark = q->s->stamp + 1;
	q->reached++;
	if (lm_scan_vetoed(q->sc, sl->key)) {
		q->nvetoed++;
		return;
	}
	if (q->h->cap == 0 || lm_scan_key_bound(q->sc, sl->key) < floor)
		return;
	st = q->jobs ? lm_scan_posting_bound(q->sc, sl->prep, floor, &b)
	             : lm_scan_profile_bound(q->sc, sl->prep, floor, &b);
	if (st == LM_PAIR_VETOED)
		q->nvetoed++;
	if (st != LM_PAIR_OK)
		return;
	x.score = q->jobs ? lm_scan_posting_score(q->sc, sl->prep)
	                  : lm_scan_profile_score(q->sc, sl->prep);
	q->scored++;
	if (x.score < q->min_score)
		return;
	x.e = q->t->v[d];
	x.id = x.e->id;
	heap_offer(q->h, &x);
}

static size_t
first_batch(const struct ranking *q)
{
	return 4 * q->h->cap > FIRST_BATCH ? 4 * q->h->cap : FIRST_BATCH;
}

/* Steps 1 and 2: evaluates the best records not evaluated yet by partial
 * sum (not a bound yet: the order only finds good scores early), to raise
 * the bar. */
static void
seed(struct ranking *q)
{
	struct cand *cv = q->s->cands;
	size_t n = q->ncand, lo = 0, m = first_batch(q);

	for (size_t i = 0; i < n; i++) {
		const struct acc *a = &q->s->as[cv[i].doc];
		cv[i].bound = a->mark == q->s->stamp ? a->v.acc : -INFINITY;
	}
	/* Until the heap is full: below that the bar lets every record in. */
	while (lo < n) {
		if (m < n - lo)
			select_top(cv + lo, n - lo, m - 1);
		else
			m = n - lo;
		for (size_t i = lo; i < lo + m; i++)
			if (q->s->as[cv[i].doc].mark == q->s->stamp)
				evaluate(q, cv[i].doc);
		lo += m;
		if (q->h->n >= q->h->cap)
			break;
		m *= 2;
	}
}

/* The bound of record d, found and not evaluated, with the slack: its sum,
 * plus after the sweep what it may lack (see sweep), or the gate for every
 * record when the shares bound none. */
static double
doc_bound(const struct ranking *q, const struct cand *c)
{
	double b;

	if (q->unbounded)
		b = q->gate;
	else if (q->found == q->s->stamp)
		b = q->s->as[c->doc].v.acc;
	else
		b = (double) c->acc + (c->after < q->tau ? c->after : q->tau);
	return b * (1 + TERM_SLACK) + TERM_SLACK;
}

/* Restores the max-heap order by bound of c[0 .. n) below place i. */
static void
cand_sift(struct cand *c, size_t n, size_t i)
{
	struct cand x = c[i];

	for (;;) {
		size_t l = 2 * i + 1, w;
		if (l >= n)
			break;
		w = l + 1 < n && c[l + 1].bound > c[l].bound ? l + 1 : l;
		if (!(c[w].bound > x.bound))
			break;
		c[i] = c[w];
		i = w;
	}
	c[i] = x;
}

/* Step 3: the records not evaluated yet, their bounds their sums plus
 * rest (the bounds of the units not read), best first while they reach the
 * bar: those that reach the bar when the step begins go in a max-heap by
 * bound, whose root is evaluated next, so that only the records evaluated
 * are ever put in order. */
static void
visit(struct ranking *q)
{
	struct cand *cv = q->s->cands;
	const struct acc *as = q->s->as;
	size_t n = 0;
	double floor = bar(q->h, q->min_score);
	/* After a sweep that dropped records, only those left (in increasing
	 * place: each is read before its place is written). */
	bool left = q->found != q->s->stamp && q->nlive != SIZE_MAX;
	size_t from = left ? q->nlive : q->ncand;

	for (size_t k = 0; k < from; k++) {
		size_t i = left ? q->s->live[k] : k;
		uint32_t d = cv[i].doc;
		double b;
		/* Without a sweep, the seed's records evaluated are among them. */
		if (q->found == q->s->stamp && as[d].mark != q->found)
			continue;
		b = doc_bound(q, &cv[i]);
		if (b < floor)
			continue;
		cv[n].bound = b;
		cv[n++].doc = d;
	}
	for (size_t i = n / 2; i-- > 0;)
		cand_sift(cv, n, i);
	while (n > 0) {
		uint32_t d = cv[0].doc;
		if (cv[0].bound < bar(q->h, q->min_score))
			return; /* every other bound is at most this one */
		cv[0] = cv[--n];
		cand_sift(cv, n, 0);
		/* The next root's key loads while this one is evaluated, and the
		 * slots of its children, one of which is likely the root after
		 * it, so that its key's address is at hand then. */
		if (n > 0)
			__builtin_prefetch(q->t->slots[cv[0].doc].key);
		for (size_t c = 1; c < 3 && c < n; c++)
			__builtin_prefetch(&q->t->slots[cv[c].doc]);
		evaluate(q, d);
	}
}

static int
cmp_term_bound(const void *a, const void *b)
{
	const struct term_bound *x = a, *y = b;
	return x->ub > y->ub ? -1 : (x->ub < y->ub ? 1 : 0);
}

/*
 * Step 2, the sweep, once the seed has set the bar theta. The units are
 * read again in two passes:
 *
 * - Finding: of the units whose key bound (inverted.h: share plus what
 *   follows) times the multiplier reaches theta, the entries whose keys
 *   do; blocks whose key maximum is below theta are skipped unread
 *   (block-max skipping). A record whose sum reaches theta has every entry
 *   up to its first term among the subject's keyed at least that sum, so
 *   it is found; a record not found cannot reach theta.
 * - Completing: the other entries are added to the records found, and only
 *   to them, by bands of decreasing key bound (first the entries below
 *   theta of the units above, then the units of each tier below, in
 *   decreasing tier), while the records found that the bands left could
 *   still lift to theta are so many that evaluating them would cost more
 *   (EVAL_COST list entries each) than reading the next band.
 * - Between the first band and the others, raise_bar evaluates the
 *   records found with the best bounds so far, which raises theta for the
 *   bands after it: at a million postings the seed's bar is about 20%
 *   below the final one, and the records found number tens of thousands.
 *
 * Then every entry keyed at least tau of a record found has been read,
 * where tau bounds the keys of the bands left: what a record lacks is at
 * most tau (the key of its first entry left) and at most what follows its
 * last entry read (every entry left follows it), and its bound is its sum
 * plus the smaller. Ranking profiles, the keys and what follows come from
 * the subject's side, one per unit (prefix_units). The seed's records are
 * found again or not at all; the ones it evaluated stay evaluated.
 *
 * A list with many entries per window of 2^window doc ids is read a window
 * at a time, all such lists side by side, so that the slots being added
 * to stay in the cache; a sparser one in one go, rather than coming back
 * to it (a cache miss) in every window. The units that find are completed
 * in the same read, a window after its finding (read_cursors), and the
 * records found that can no longer reach theta are dropped only from the
 * second band on: one pass less over the units read most. A unit whose
 * least key (lm_inverted_tier_kmin) reaches theta is not completed at all.
 */
#define EVAL_COST 64 /* list entries read cost about one evaluation */
#define DENSE_MIN 4  /* entries per window of a list read by window */

/* Grows *p (of *cap elements of size sz) to at least n; LM_OK or
 * LM_ENOMEM. */
static int
grow(void **p, size_t *cap, size_t n, size_t sz)
{
	void *v;

	if (n <= *cap)
		return LM_OK;
	n += n / 4 + 16;
	if ((v = realloc(*p, n * sz)) == NULL)
		return LM_ENOMEM;
	*p = v;
	*cap = n;
	return LM_OK;
}

/* Whether key times mult reaches theta, with the slack. */
static bool
key_reaches(double key, float mult, double theta)
{
	return !(key * mult * (1 + TERM_SLACK) + TERM_SLACK < theta);
}

/* An entry's key as the sweep compares it (lm_inverted_key_sum): never
 * above lm_inverted_key, which the block and tier maxima are made of, and
 * never below the tier's lm_inverted_tier_kmin. One function for the
 * finding and the completing pass, which must agree on which entries the
 * finding pass added. */
static inline double
ent_key(const lm_inverted_ent *e)
{
	return lm_inverted_key_sum(e);
}

/* The least key (lm_inverted_key_sum) of an entry of cursor c that finds
 * at bar theta: one whose key times c->mult reaches theta (key_reaches,
 * solved for the key once per cursor; the slack dwarfs the rounding of
 * the division). Every entry or none of a unit whose keys are fixed
 * (profiles), and none of a unit that does not find (finds false): the
 * finding pass never reads it, so the completing pass must add all of
 * it. The finding pass adds the entries keyed at least this, and the
 * completing pass the others: one threshold keeps the two apart. */
static double
kfind(const struct cursor *c, bool finds, double theta)
{
	if (!finds)
		return INFINITY;
	if (c->fixed || !(c->mult > 0))
		return key_reaches(c->fixed ? c->kfix : 0, 1, theta) ? -INFINITY
		                                                     : INFINITY;
	return (theta - TERM_SLACK) / ((1 + TERM_SLACK) * (double) c->mult);
}

/* The place of c's first entry at or past doc, from entry i on (the
 * entries before i are below doc), found a block at a time. A doc past
 * the last entry (the end of the last window, or of a sparse cursor's one
 * read) is answered from that entry alone: the walk would touch the last
 * entry of every block, cache lines the finding pass skips by the block
 * maxima. */
static uint32_t
cursor_seek(const struct cursor *c, uint32_t i, uint32_t doc)
{
	if (i >= c->n || c->e[i].doc >= doc)
		return i; /* the usual case of a window's first entry */
	if (c->e[c->n - 1].doc < doc)
		return c->n;
	while (i < c->n) {
		uint32_t end = (i / LM_INVERTED_BLOCK + 1) * LM_INVERTED_BLOCK;
		if (end > c->n)
			end = c->n;
		if (c->e[end - 1].doc < doc) {
			i = end;
			continue;
		}
		while (i < end) { /* the block's last entry is at or past doc */
			uint32_t mid = i + (end - i) / 2;
			if (c->e[mid].doc < doc)
				i = mid + 1;
			else
				end = mid;
		}
		break;
	}
	return i;
}

/* Finds entry e of cursor c (cursor_find): when its key reaches kfind,
 * adds it to its record, which it makes found when it is neither found
 * nor evaluated by the seed yet. */
static inline void
find_one(struct ranking *q, const struct cursor *c, const lm_inverted_ent *e)
{
	struct acc *as = q->s->as;
	uint32_t d = e->doc, found = q->found;
	float sh, af;

	if (ent_key(e) < c->kfind)
		return;
	sh = e->share * c->mult;
	af = c->fixed ? c->afix : e->after * c->mult;
	if (as[d].mark == found) {
		struct cand *x = &q->s->cands[as[d].v.idx];
		x->acc += sh;
		if (af < x->after)
			x->after = af;
	} else if (as[d].mark != found - 1) {
		struct cand *x = &q->s->cands[q->ncand];
		as[d].mark = found;
		as[d].v.idx = (uint32_t) q->ncand++;
		q->s->open[d >> 6] |= (uint64_t) 1 << (d & 63);
		x->doc = d;
		x->acc = sh;
		x->after = af;
	}
}

/* The finding pass of c over its entries from doc lo to below lim. It
 * leaves c->pos at the first of them, for the completing pass of the same
 * window. */
static void
cursor_find(struct ranking *q, struct cursor *c, uint32_t lo, uint32_t lim)
{
	const struct acc *as = q->s->as;
	const lm_inverted_ent *e = c->e;
	uint32_t i = cursor_seek(c, c->pos, lo), stop = cursor_seek(c, i, lim);
	uint32_t ahead = q->ahead;
	uint64_t nread = 0;

	c->pos = i;
	while (i < stop) {
		uint32_t end = (i / LM_INVERTED_BLOCK + 1) * LM_INVERTED_BLOCK;
		if (end > stop)
			end = stop;
		if (c->bm[i / LM_INVERTED_BLOCK] < c->kfind) {
			i = end;
			continue;
		}
		nread += end - i;
		for (; ahead > 0 && i < end && i + ahead < stop; i++) {
			__builtin_prefetch(&as[e[i + ahead].doc]);
			find_one(q, c, &e[i]);
		}
		for (; i < end; i++)
			find_one(q, c, &e[i]);
	}
	q->entries += nread;
}

/* Completes entry e of cursor c (cursor_complete): adds it to its record
 * when the record is found and open and the finding pass did not add it
 * (keyed below kfind). tau_after bounds the keys of every entry left unread after this
 * band. An entry lowers its record's `after` only when its key reaches
 * tau_after: keys fall along a record's own order, so such an entry comes
 * before every unread one, whose shares its `after` then bounds. A
 * lower-keyed entry (a band may hold some below units of later bands) may
 * come after an unread one, and its `after` would understate what is
 * missing. */
static inline void
complete_one(
    struct ranking *q, const struct cursor *c, const lm_inverted_ent *e, double tau_after)
{
	uint32_t d = e->doc;
	struct cand *x;
	float af;

	if (!(q->s->open[d >> 6] >> (d & 63) & 1) || ent_key(e) >= c->kfind)
		return;
	x = &q->s->cands[q->s->as[d].v.idx];
	x->acc += e->share * c->mult;
	af = c->fixed ? c->afix : e->after * c->mult;
	if (af < x->after &&
	    (c->fixed ? (double) c->kfix : ent_key(e) * c->mult) >= tau_after)
		x->after = af;
}

/* The completing pass of c over its entries from doc lo to below lim. */
static void
cursor_complete(
    struct ranking *q, struct cursor *c, uint32_t lo, uint32_t lim, double tau_after)
{
	const lm_inverted_ent *e = c->e;
	const uint64_t *open = q->s->open;
	uint32_t first = cursor_seek(c, c->pos, lo), stop = cursor_seek(c, first, lim);
	uint32_t ahead = q->ahead, i = first;

	for (; ahead > 0 && i + ahead < stop; i++) {
		uint32_t d = e[i + ahead].doc;
		if (open[d >> 6] >> (d & 63) & 1)
			__builtin_prefetch(&q->s->as[d]);
		complete_one(q, c, &e[i], tau_after);
	}
	for (; i < stop; i++)
		complete_one(q, c, &e[i], tau_after);
	q->entries += stop - first;
	c->pos = stop;
}

/* Whether record x, found, missing at most tau, can still be lifted to
 * theta; if not, drops it: its sum becomes minus infinity (the bar only
 * rises: it can never enter) and it leaves the open set, so that no later
 * band completes it. */
static inline bool
still_open(uint64_t *open, struct cand *x, double tau, double theta)
{
	double b = (double) x->acc + (x->after < tau ? x->after : tau);

	if (!(b * (1 + TERM_SLACK) + TERM_SLACK < theta))
		return true;
	if (x->acc > -INFINITY) {
		x->acc = -INFINITY;
		open[x->doc >> 6] &= ~((uint64_t) 1 << (x->doc & 63));
	}
	return false;
}

/* Returns the number of records found that missing at most tau could
 * lift to theta, and drops the others (still_open). */
static size_t
prune_open(struct ranking *q, double tau, double theta)
{
	uint64_t *open = q->s->open;
	uint32_t *live = q->s->live;
	struct cand *cv = q->s->cands;
	size_t n = 0;

	/* The first time every record found, then those left. */
	if (q->nlive == SIZE_MAX) {
		for (size_t i = 0; i < q->ncand; i++)
			if (still_open(open, &cv[i], tau, theta))
				live[n++] = (uint32_t) i;
	} else {
		for (size_t k = 0; k < q->nlive; k++)
			if (still_open(open, &cv[live[k]], tau, theta))
				live[n++] = live[k];
	}
	q->nlive = n;
	return n;
}

/* The records found with the largest bounds that raise_bar evaluates: one
 * in RAISE_SHARE of those found, none below RAISE_MIN (too few found for
 * the bar to matter), at most RAISE_MAX. */
#define RAISE_SHARE 256
#define RAISE_MIN   16
#define RAISE_MAX   512

/*
 * Raises the bar theta between the first band and the others: evaluates
 * the records found with the largest bounds (their sums so far plus at
 * most tau, as still_open bounds them), best first while they reach the
 * bar, and drops each evaluated one from the open set as still_open drops
 * a record (no band completes it, visit passes it over). The seed's bar
 * comes from partial sums over a few units; after the first band the
 * records found have most of their sums, so their best are far likelier
 * to be the top k, and the higher bar lets prune_open end the bands
 * sooner. Returns the bar.
 */
static double
raise_bar(struct ranking *q, double tau, double theta)
{
	/* The records with the m largest bounds, each bound negated so that
	 * cand_sift's max-heap keeps the least of them at its root. */
	struct cand p[RAISE_MAX];
	struct cand *cv = q->s->cands;
	size_t m = q->ncand / RAISE_SHARE, n = 0;

	if (m < RAISE_MIN)
		return theta;
	if (m > RAISE_MAX)
		m = RAISE_MAX;
	for (size_t i = 0; i < q->ncand; i++) {
		double b = (double) cv[i].acc + (cv[i].after < tau ? cv[i].after : tau);
		if (b * (1 + TERM_SLACK) + TERM_SLACK < theta)
			continue;
		if (n < m) {
			p[n].bound = -b;
			p[n++].doc = cv[i].doc;
			if (n == m)
				for (size_t j = n / 2; j-- > 0;)
					cand_sift(p, n, j);
		} else if (-b < p[0].bound) {
			p[0].bound = -b;
			p[0].doc = cv[i].doc;
			cand_sift(p, n, 0);
		}
	}
	if (n < m)
		for (size_t j = n / 2; j-- > 0;)
			cand_sift(p, n, j);
	/* Heapsort: the largest bound first. */
	for (size_t end = n; end > 1; end--) {
		struct cand t = p[0];
		p[0] = p[end - 1];
		p[end - 1] = t;
		cand_sift(p, end - 1, 0);
	}
	for (size_t j = 0; j < n; j++) {
		/* A record found keeps its place in the candidates in its slot. */
		struct cand *x = &cv[q->s->as[p[j].doc].v.idx];
		if (-p[j].bound * (1 + TERM_SLACK) + TERM_SLACK < bar(q->h, q->min_score))
			break; /* every bound after it is at most this one */
		evaluate(q, x->doc);
		x->acc = -INFINITY;
		q->s->open[x->doc >> 6] &= ~((uint64_t) 1 << (x->doc & 63));
	}
	return bar(q->h, q->min_score);
}

/* A band of the completing pass: cursors cur[from .. to) (band 0: those of
 * the units that find records), entries in all, and tau, the key bound of
 * what the bands after it hold. */
struct band {
	size_t from, to, entries;
	double tau;
};

/* The place of c's kind in the order of the cursors: by band, and in a
 * band the dense ones (read by window) first. */
static size_t
cursor_bucket(const struct cursor *c)
{
	return 2 * (size_t) c->band + (c->dense ? 0 : 1);
}

/* How read_cursors reads: the finding pass, the completing pass, or both
 * (band 0, whose units are read by both). */
enum pass { PASS_FIND, PASS_COMPLETE, PASS_BOTH };

/* Reads cursors cur[from .. to) (tau_after: the key bound of what is left
 * unread after them, for completing). Both passes over the same cursors
 * read the sparse ones' finding first, then window by window each dense
 * one's finding and then its completing, while the window's entries are in
 * the cache, and the sparse ones' completing last: a record's entries are
 * all in one window, so every entry of it that finds is read before any
 * that completes, as with one pass after the other. */
static void
read_cursors(struct ranking *q, size_t from, size_t to, enum pass pass, double tau_after)
{
	struct cursor *cur = q->s->cur;
	size_t nwin = (q->t->ndocs >> q->window) + 1, dense = from;

	for (size_t i = from; i < to; i++) {
		cur[i].pos = 0;
		dense += cur[i].dense;
	}
	for (size_t i = dense; pass == PASS_BOTH && i < to; i++)
		cursor_find(q, &cur[i], 0, UINT32_MAX);
	for (size_t w = 0; w < nwin && dense > from; w++) {
		uint64_t end = (uint64_t) (w + 1) << q->window;
		uint32_t lo = (uint32_t) (w << q->window);
		uint32_t lim = end > UINT32_MAX ? UINT32_MAX : (uint32_t) end;
		for (size_t i = from; i < dense; i++)
			if (pass == PASS_COMPLETE)
				cursor_complete(q, &cur[i], lo, lim, tau_after);
			else
				cursor_find(q, &cur[i], lo, lim);
		for (size_t i = from; pass == PASS_BOTH && i < dense; i++)
			if (!cur[i].whole)
				cursor_complete(q, &cur[i], lo, lim, tau_after);
	}
	for (size_t i = dense; i < to; i++)
		if (pass == PASS_FIND)
			cursor_find(q, &cur[i], 0, UINT32_MAX);
		else if (!cur[i].whole)
			cursor_complete(q, &cur[i], 0, UINT32_MAX, tau_after);
}

/* Sweeps the units tb[0 .. ntb) (see above). Returns LM_OK or LM_ENOMEM
 * (nothing changed then). */
static int
sweep(struct ranking *q, size_t ntb)
{
	struct scratch *s = q->s;
	const struct term_bound *tb = s->tb;
	struct band band[LM_INVERTED_TIERS + 1];
	double own[LM_INVERTED_TIERS + 1]; /* by band: its largest key bound */
	size_t nc = 0, nwin = (q->t->ndocs >> q->window) + 1;
	size_t nwords = q->t->ndocs / 64 + 1, room = q->nunits + 1;
	size_t nbucket[2 * (LM_INVERTED_TIERS + 1)] = {0};
	struct cursor *made; /* the cursors as made, before their order */
	double theta = bar(q->h, q->min_score), tau = theta;
	uint32_t found = s->stamp + 2;

	if (grow((void **) &s->cur, &s->cur_cap, 2 * room, sizeof(*s->cur)) != LM_OK ||
	    grow((void **) &s->live, &s->live_cap, s->cand_cap, sizeof(*s->live)) !=
	        LM_OK ||
	    grow((void **) &s->open, &s->open_cap, nwords, sizeof(*s->open)) != LM_OK)
		return LM_ENOMEM;
	memset(s->open, 0, nwords * sizeof(*s->open));
	made = s->cur + room;
	q->nlive = SIZE_MAX;
	/* With a bar, records keyed below it everywhere are not found. */
	q->partial = theta > -INFINITY;
	/* Cursors by band: 0 for the units that find, then one per tier
	 * below, in decreasing tier. */
	for (size_t b = 0; b <= LM_INVERTED_TIERS; b++) {
		band[b].entries = 0;
		own[b] = 0;
	}
	for (size_t u = 0; u < ntb; u++) {
		bool finds = key_reaches(tb[u].kub, 1, theta);
		uint32_t b = finds ? 0 : LM_INVERTED_TIERS - tb[u].tier;
		for (uint64_t m = tb[u].parts; m != 0; m &= m - 1) {
			uint32_t part = (uint32_t) __builtin_ctzll(m);
			struct cursor *c = &made[nc];
			float mx;
			size_t n;
			if ((c->e = lm_inverted_tier(q->iv, part, tb[u].term, tb[u].tier,
			         &n, &c->bm, &mx, &mx)) == NULL)
				continue;
			c->pos = 0;
			c->n = (uint32_t) n;
			c->mult = tb[u].mult;
			c->band = b;
			c->dense = n >= DENSE_MIN * nwin;
			c->fixed = !q->jobs;
			c->kfix = tb[u].kub;
			c->afix = tb[u].afix;
			c->kfind = kfind(c, finds, theta);
			/* A unit that finds, whose least key reaches the bar too,
			 * was read whole by the finding (profiles: every key is
			 * kfix). */
			c->whole = finds && lm_inverted_tier_kmin(q->iv, part, tb[u].term,
			                        tb[u].tier) >= c->kfind;
			band[b].entries += n;
			if (tb[u].kub > own[b])
				own[b] = tb[u].kub;
			nbucket[cursor_bucket(c)]++;
			nc++;
		}
	}
	/* In place by band, and in a band the dense ones first (a counting
	 * sort: the order of the units within a bucket is kept). */
	for (size_t k = 0, at = 0; k < 2 * (LM_INVERTED_TIERS + 1); k++) {
		size_t n = nbucket[k];
		nbucket[k] = at;
		at += n;
	}
	for (size_t i = 0; i < nc; i++)
		s->cur[nbucket[cursor_bucket(&made[i])]++] = made[i];
	for (size_t b = 0; b <= LM_INVERTED_TIERS; b++) {
		band[b].from = b == 0 ? 0 : band[b - 1].to;
		band[b].to = nbucket[2 * b + 1];
	}
	/* tau after band b: the largest key bound of the bands after it. */
	band[LM_INVERTED_TIERS].tau = 0;
	for (size_t b = LM_INVERTED_TIERS; b-- > 0;)
		band[b].tau = own[b + 1] > band[b + 1].tau ? own[b + 1] : band[b + 1].tau;
	q->seeded = q->reached;
	q->ncand = 0;
	q->found = found;
	/* The postings without skills: their gate bounds them. */
	for (uint32_t v = 0; q->jobs && v < q->nvis; v++) {
		size_t n;
		const uint32_t *docs = lm_inverted_bare(q->iv, q->vis[v], &n);
		for (size_t i = 0; i < n; i++)
			if (s->as[docs[i]].mark != found - 1) {
				struct cand *x = &s->cands[q->ncand];
				s->as[docs[i]].mark = found;
				s->as[docs[i]].v.idx = (uint32_t) q->ncand++;
				s->open[docs[i] >> 6] |= (uint64_t) 1 << (docs[i] & 63);
				x->doc = docs[i];
				x->acc = q->gate;
				x->after = 0;
			}
	}
	/* Band 0 is found and completed in one read. */
	read_cursors(q, band[0].from, band[0].to, PASS_BOTH, band[0].tau);
	tau = band[0].tau < tau ? band[0].tau : tau;
	if (theta > -INFINITY)
		theta = raise_bar(q, tau, theta);
	for (size_t b = 1; b <= LM_INVERTED_TIERS && tau > 0; b++) {
		if (band[b].from < band[b].to) {
			/* The records left bound the records prune_open keeps. */
			size_t left = q->nlive == SIZE_MAX ? q->ncand : q->nlive;
			if (!((double) left * EVAL_COST > (double) band[b].entries) ||
			    !((double) prune_open(q, tau, theta) * EVAL_COST >
			        (double) band[b].entries))
				break;
			read_cursors(
			    q, band[b].from, band[b].to, PASS_COMPLETE, band[b].tau);
		}
		tau = band[b].tau < tau ? band[b].tau : tau;
	}
	q->tau = lm_float_up(tau > 0 ? tau : 0);
	return LM_OK;
}

/* Ranking profiles, whose entries' keys are their shares: the prefix
 * bounds come from the subject's side. Order the subject's terms by their
 * multipliers (its shares), largest first: a profile whose first term in
 * that order among its own is t gets at most t's multiplier plus those of
 * the terms after it, P(t). That is the key bound of every entry of t's
 * units (c->kfix), and what follows every one of them P(t) minus t's
 * multiplier (c->afix). */
static void
prefix_units(struct ranking *q, size_t nterms)
{
	struct term_bound *tb = q->s->tb;
	float *mult = q->s->tf, *after = q->s->tf + nterms;

	for (size_t t = 0; t < nterms; t++)
		mult[t] = tb[t * LM_INVERTED_TIERS].mult;
	lm_inverted_after(q->s->terms, mult, nterms, after);
	for (size_t i = 0; i < nterms * LM_INVERTED_TIERS; i++) {
		tb[i].kub = lm_float_up((double) tb[i].mult + after[tb[i].ti]);
		tb[i].afix = after[tb[i].ti];
	}
}

/* Fills the units of the subject's terms (q->s->terms[0 .. nterms)) with
 * their bounds over the partitions visited, sorted by decreasing bound;
 * returns their number. Read lock held. */
static size_t
units(lm_index *idx, struct ranking *q, size_t nterms)
{
	struct term_bound *tb = q->s->tb;
	size_t ntb = nterms * LM_INVERTED_TIERS;
	double drift = q->jobs ? current_drift(idx) : 1;
	lm_inverted_view tv[LM_INVERTED_TIERS];

	for (size_t ti = 0; ti < nterms; ti++) {
		struct term_bound *u = &tb[ti * LM_INVERTED_TIERS];
		uint32_t term = q->s->terms[ti];
		double m = q->jobs ? drift : lm_scan_term_share(q->sc, term);
		float mult;
		if (isinf(m) || isnan(m)) {
			q->unbounded = true;
			m = 0;
		}
		mult = lm_float_up(m);
		for (uint32_t j = 0; j < LM_INVERTED_TIERS; j++) {
			u[j].ub = 0;
			u[j].mult = mult;
			u[j].kub = 0;
			u[j].afix = 0;
			u[j].term = term;
			u[j].tier = j;
			u[j].ti = (uint32_t) ti;
			u[j].entries = 0;
			u[j].parts = 0;
		}
		for (uint32_t v = 0; v < q->nvis; v++) {
			uint32_t part = q->vis[v];
			if (!lm_inverted_list(q->iv, part, term, tv))
				continue;
			for (uint32_t j = 0; j < LM_INVERTED_TIERS; j++) {
				double sb;
				float kb;
				if (tv[j].n == 0)
					continue;
				sb = (double) tv[j].max * mult;
				kb = lm_float_up((double) tv[j].kmax * mult);
				u[j].parts |= (uint64_t) 1 << part;
				q->nunits++;
				u[j].entries += tv[j].n;
				if (sb > u[j].ub)
					u[j].ub = sb;
				if (kb > u[j].kub)
					u[j].kub = kb;
			}
		}
	}
	if (!q->jobs && !q->unbounded)
		prefix_units(q, nterms);
	if (q->unbounded)
		for (size_t i = 0; i < ntb; i++)
			tb[i].ub = INFINITY;
	if (ntb > 1)
		qsort(tb, ntb, sizeof(*tb), cmp_term_bound);
	return ntb;
}

/* Ranks the records of the other side for subject cp (postings) or pp
 * (profiles) into h, keeping eligible ones with score >= min_score.
 * *considered: the records of that side; *vetoed: those a veto removes.
 * Read lock held. Returns LM_OK or LM_ENOMEM. */
static int
rank(lm_index *idx, const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, double min_score, struct heap *h, uint64_t *considered,
    uint64_t *vetoed)
{
	bool jobs = cp != NULL;
	const struct table *t = jobs ? &idx->posts : &idx->profs;
	bool every = !jobs && !lm_posting_prep_has_skills(pp);
	uint32_t nparts = jobs ? POST_PARTS : PROF_PARTS;
	size_t nterms, ntb, k = 0, in_parts = 0;
	struct ranking q = {0};
	int rc;

	if ((rc = lm_scan_new(env, cp, pp, &q.sc)) != LM_OK)
		return rc;
	nterms = lm_prep_terms_max(pp, cp);
	if ((q.s = scratch_get(idx, t->ndocs, t->n, nterms)) == NULL) {
		lm_scan_free(q.sc);
		return LM_ENOMEM;
	}
	q.t = t;
	q.iv = jobs ? idx->piv : idx->civ;
	q.jobs = jobs;
	q.min_score = min_score;
	q.h = h;
	q.gate = lm_float_up(idx->model->params.no_skills_gate);
	q.ahead = t->ndocs >= PREFETCH_DOCS ? PREFETCH_AHEAD : 0;
	q.window = idx->window;
	nterms = lm_prep_terms(pp, cp, idx->stats, q.s->terms, nterms);
	/* An empty partition costs a look at its size. */
	for (uint32_t part = 0; part < nparts; part++) {
		size_t n;
		const uint32_t *docs = lm_inverted_all(q.iv, part, &n);
		if (n == 0 || part_skipped(q.sc, jobs, part))
			continue;
		q.vis[q.nvis++] = (uint8_t) part;
		in_parts += n;
		if (every)
			collect(&q, docs, n);
		else if (jobs) {
			docs = lm_inverted_bare(q.iv, part, &n);
			collect(&q, docs, n);
		}
	}
	ntb = every ? 0 : units(idx, &q, nterms);

	while (k < ntb && q.ncand < SEED_CANDS)
		accumulate(&q, &q.s->tb[k++]);
	seed(&q);
	q.found = q.s->stamp;
	if (k < ntb && (q.unbounded || sweep(&q, ntb) != LM_OK))
		for (; k < ntb; k++) /* every record bounded alike: read all */
			accumulate(&q, &q.s->tb[k]);
	visit(&q);

	atomic_fetch_add(&idx->scored, q.scored);
	atomic_fetch_add(&idx->reached, q.reached);
	atomic_fetch_add(&idx->entries, q.entries);
	*considered = t->n;
	/* When units were left unread, their records are not known to be
	 * vetoed: only those of the partitions skipped and those evaluated. */
	*vetoed = (q.partial ? t->n - in_parts : t->n - q.ncand - q.seeded) + q.nvetoed;
	scratch_put(idx, q.s);
	lm_scan_free(q.sc);
	if (h->n > 1)
		qsort(h->v, h->n, sizeof(*h->v), cmp_hit);
	return LM_OK;
}

static void
seterr(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

static int
check_top_k(uint32_t *k, char *err, size_t errlen)
{
	if (*k == 0)
		*k = LM_INDEX_TOP_K_DEFAULT;
	if (*k > LM_INDEX_TOP_K_MAX) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "top_k %u is above the limit of %d", *k,
			    LM_INDEX_TOP_K_MAX);
		return LM_EINVAL;
	}
	return LM_OK;
}

/* Replaces a string field of a message with a copy of s. */
static int
set_str(char **field, const char *s)
{
	char *d = strdup(s ? s : "");

	if (d == NULL)
		return LM_ENOMEM;
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = d;
	return LM_OK;
}

/*
 * A stored record as explanations read it: its prep with its record. A
 * prep that forgot its record gets a view (lm_posting_prep_view,
 * lm_profile_prep_view) with the record decoded from the entry's packed
 * bytes, the version the index holds: an answer explains what it ranked,
 * whatever the store holds by then. Read lock held; release with
 * view_done.
 */
struct view {
	const lm_posting_prep *pp; /* a posting's, or NULL */
	const lm_profile_prep *cp; /* a profile's, or NULL */
	const ProtobufCMessage *rec;
	lm_posting_prep *own_pp; /* the view, or NULL */
	lm_profile_prep *own_cp;
	ProtobufCMessage *wrec; /* the decoded record (compact), or NULL */
};

static void
view_done(struct view *v)
{
	lm_posting_prep_view_free(v->own_pp);
	lm_profile_prep_view_free(v->own_cp);
	free(v->wrec);
	memset(v, 0, sizeof(*v));
}

/* A decoding of an entry's bytes (entry_decode). */
struct decoding {
	const struct ent *e;
	const ProtobufCMessageDescriptor *d;
	bool compact;
	ProtobufCMessage *out;
	bool damaged; /* the bytes do not unpack (not for want of memory) */
};

/* Decodes bytes[0..len), a packed record of version, for d (an
 * lm_store_record_fn). LM_EBUSY when version is not the entry's. */
static int
decode_bytes(void *arg, const char *id, uint64_t version, const void *bytes, size_t len)
{
	struct decoding *dc = arg;

	(void) id;
	if (version != dc->e->version)
		return LM_EBUSY;
	/* The bytes of this version passed lm_pb_decode's checks when the
	 * index was given the record (or this process encoded them): they
	 * are unpacked without the checks. */
	if (dc->compact) {
		int rc = lm_pb_unpack_compact(dc->d, bytes, len, &dc->out);
		dc->damaged = rc == LM_EPARSE;
		return rc == LM_OK ? LM_OK : LM_ENOMEM;
	}
	dc->out = protobuf_c_message_unpack(dc->d, NULL, len, bytes);
	if (dc->out == NULL) {
		/* A NULL from protobuf-c's unpacker does not say whether the
		 * bytes or the memory failed; the compact unpacker tells. */
		ProtobufCMessage *c = NULL;
		dc->damaged = lm_pb_unpack_compact(dc->d, bytes, len, &c) == LM_EPARSE;
		free(c);
		return LM_ENOMEM;
	}
	return LM_OK;
}

/*
 * Decodes the record of entry e (a posting's when posting), which keeps
 * no decoded record: compact (lm_pb_decode_compact; the caller frees *out
 * with free) or not (protobuf_c_message_unpack; freed with
 * protobuf_c_message_free_unpacked). From the entry's bytes, or, for an
 * entry put as stored, from the index's store in place: LM_EBUSY when the
 * store holds another version of the record or none (the index has not
 * applied its change yet: lm_index_set_store), or the store's error.
 * LM_ENOMEM when decoding fails or the fault seam says so
 * (LM_INDEX_ALLOC_RECORD). Read lock held. *damaged (may be NULL) is set
 * true when the error comes from the stored record's own bytes: its value
 * in the store does not decode (lm_store_read_checked), or its bytes do
 * not unpack (told by the compact unpacker); reading it again fails
 * alike. Never
 * for an error of the store, the disk or memory.
 */
static int
entry_decode(lm_index *idx, const struct ent *e, bool posting, bool compact,
    ProtobufCMessage **out, bool *damaged)
{
	struct decoding dc = {e,
	    posting ? &lunamatch__v1__job_posting__descriptor
	            : &lunamatch__v1__candidate_profile__descriptor,
	    compact, NULL, false};
	bool bad_value = false;
	int rc;

	*out = NULL;
	if (fault_check(idx, LM_INDEX_ALLOC_RECORD) != LM_OK)
		return LM_ENOMEM;
	if (e->wire != NULL)
		rc = decode_bytes(&dc, e->id, e->version, e->wire, e->wire_len);
	else
		rc = lm_store_read_checked(idx->store,
		    posting ? LM_KIND_POSTING : LM_KIND_PROFILE, e->id, decode_bytes, &dc,
		    &bad_value);
	if (rc == LM_ENOENT)
		rc = LM_EBUSY; /* deleted in the store, not yet in the index */
	if (rc != LM_OK && damaged != NULL && (bad_value || dc.damaged))
		*damaged = true;
	*out = dc.out;
	return rc;
}

/*
 * An answer met entry e (a posting's when posting) whose stored record is
 * damaged (entry_decode): counted (lm_index_counts.damaged) each time,
 * logged once per entry (index.damaged, with its id and version; a new
 * version of the record is a new entry), and noted for the follower to
 * remove (lm_index_take_damaged) unless it is noted already. Read lock
 * held; any thread.
 */
static void
note_damaged(lm_index *idx, struct ent *e, bool posting)
{
	bool noted = false;

	atomic_fetch_add(&idx->damaged, 1);
	if (!atomic_exchange(&e->damage_logged, true))
		lm_error("index.damaged",
		    "the stored %s %s version %" PRIu64
		    " does not decode (damaged): left out of match lists, and the "
		    "calls that need it fail until it is taken out of the index",
		    posting ? "posting" : "profile", e->id, e->version);
	if (strlen(e->id) > LM_RECORD_ID_MAX)
		return;
	pthread_mutex_lock(&idx->dq_lock);
	for (size_t i = 0; i < idx->ndq && !noted; i++)
		noted = idx->dq[i].posting == posting &&
		        idx->dq[i].version == e->version &&
		        strcmp(idx->dq[i].id, e->id) == 0;
	if (!noted && idx->ndq < LM_INDEX_DAMAGED_NOTED) {
		lm_index_damaged *d = &idx->dq[idx->ndq++];
		d->posting = posting;
		d->version = e->version;
		strcpy(d->id, e->id);
	}
	pthread_mutex_unlock(&idx->dq_lock);
}

size_t
lm_index_take_damaged(lm_index *idx, lm_index_damaged *out, size_t max)
{
	size_t n;

	if (idx == NULL || out == NULL)
		return 0;
	pthread_mutex_lock(&idx->dq_lock);
	n = idx->ndq < max ? idx->ndq : max;
	memcpy(out, idx->dq, n * sizeof(*out));
	memmove(idx->dq, idx->dq + n, (idx->ndq - n) * sizeof(*out));
	idx->ndq -= n;
	pthread_mutex_unlock(&idx->dq_lock);
	return n;
}

/* Fills *v for entry e, a posting's when posting. Returns LM_OK or an
 * error of entry_decode (damaged as there, may be NULL). */
static int
entry_view(
    lm_index *idx, const struct ent *e, bool posting, struct view *v, bool *damaged)
{
	int rc;

	memset(v, 0, sizeof(*v));
	v->pp = posting ? e->pp : NULL;
	v->cp = posting ? NULL : e->cp;
	if (e->rec != NULL) {
		v->rec = e->rec;
		return LM_OK;
	}
	if ((rc = entry_decode(idx, e, posting, true, &v->wrec, damaged)) != LM_OK)
		goto fail;
	v->rec = v->wrec;
	rc = posting
	         ? lm_posting_prep_view(e->pp, (const JobPosting *) v->rec, &v->own_pp)
	         : lm_profile_prep_view(
	               e->cp, (const CandidateProfile *) v->rec, &v->own_cp);
	if (rc != LM_OK)
		goto fail;
	if (posting)
		v->pp = v->own_pp;
	else
		v->cp = v->own_cp;
	return LM_OK;
fail:
	view_done(v);
	return rc;
}

/* lm_explain_pair of a profile and a posting, one of them the stored
 * entry e (a posting's when cp is set), decoded only for this
 * (entry_view; damaged as there, may be NULL); the other a prep with its
 * record. A candidate's match carries its headline as title and no
 * company. */
static int
explain_stored(lm_index *idx, const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct ent *e, Lunamatch__V1__ExplainLevel level,
    uint64_t *budget, Lunamatch__V1__Match **m, bool *damaged)
{
	struct view v;
	int rc;

	*m = NULL;
	if ((rc = entry_view(idx, e, cp != NULL, &v, damaged)) != LM_OK)
		return rc;
	rc = cp != NULL ? lm_explain_pair_within(env, cp, v.pp, level, budget, m)
	                : lm_explain_pair_within(env, v.cp, pp, level, budget, m);
	if (rc == LM_OK && cp == NULL) {
		if (set_str(&(*m)->title, ((const CandidateProfile *) v.rec)->headline) !=
		    LM_OK) {
			protobuf_c_message_free_unpacked(&(*m)->base, NULL);
			*m = NULL;
			rc = LM_ENOMEM;
		} else {
			if ((*m)->company != protobuf_c_empty_string)
				free((*m)->company);
			(*m)->company = (char *) protobuf_c_empty_string;
		}
	}
	view_done(&v);
	return rc;
}

/* Whether e is one of skip[0 .. n). */
static bool
skipped(struct ent *const *skip, size_t n, const struct ent *e)
{
	for (size_t i = 0; i < n; i++)
		if (skip[i] == e)
			return true;
	return false;
}

/* Builds the ranked Match list of a scan: of postings for cp, or of
 * profiles for pp (a prep with its record), from the first k hits of h
 * that are not among skip[0 .. nskip) (records known to be damaged). Read
 * lock held, so the improvements of FULL share one
 * LM_EXPLAIN_IMPROVE_BUDGET per build; a build again after a damaged
 * record (build_undamaged) starts a fresh one, so that the answer is the
 * one a store without that record gives. When a hit's stored record is
 * damaged, *bad (else NULL) is its entry and an error of entry_decode is
 * returned. */
static int
build_matches(lm_index *idx, const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct heap *h, size_t k, struct ent *const *skip,
    size_t nskip, Lunamatch__V1__ExplainLevel level, Lunamatch__V1__Match ***out,
    size_t *n_out, struct ent **bad)
{
	Lunamatch__V1__Match **v;
	uint64_t budget = LM_EXPLAIN_IMPROVE_BUDGET;

	*out = NULL;
	*n_out = 0;
	*bad = NULL;
	if (h->n == 0 || k == 0)
		return LM_OK;
	if ((v = calloc(h->n < k ? h->n : k, sizeof(*v))) == NULL)
		return LM_ENOMEM;
	*out = v;
	for (size_t i = 0; i < h->n && *n_out < k; i++) {
		struct ent *e = h->v[i].e;
		Lunamatch__V1__Match *m;
		bool damaged = false;
		if (skipped(skip, nskip, e))
			continue;
		int rc =
		    explain_stored(idx, env, cp, pp, e, level, &budget, &m, &damaged);
		if (rc != LM_OK) {
			*bad = damaged ? e : NULL;
			return rc;
		}
		v[(*n_out)++] = m;
		m->rank = (uint32_t) *n_out;
		m->score = h->v[i].score;
	}
	return LM_OK;
}

/* Builds the list of the best k hits of h that are not among skip[0 ..
 * nskip), with arg. When a hit's stored record is damaged, *bad (else
 * NULL) is its entry, an error of entry_decode is returned and no part of
 * the list is left. */
typedef int (*build_fn)(void *arg, const struct heap *h, size_t k,
    struct ent *const *skip, size_t nskip, struct ent **bad);

/*
 * The rule for a damaged match, one for every list of matches (queries
 * and the top lists of events): *hp holds the ranking of the records of
 * the other side for cp or pp (rank, with min_score, considered and
 * vetoed), of cap k, and build makes the list from it. A ranked record
 * whose stored record is damaged cannot be shown: it is left out
 * (note_damaged), and the ranking runs again for one more record per
 * record left out, so that the list is of the exact best k of the other
 * records. More than LM_INDEX_DAMAGED_MAX of them fail with LM_EPARSE,
 * *last the last one (else NULL). hp->v grows for the extra records (the
 * caller frees it). Read lock held.
 */
static int
build_undamaged(lm_index *idx, const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, double min_score, struct heap *hp, size_t k,
    uint64_t *considered, uint64_t *vetoed, build_fn build, void *arg, struct ent **last)
{
	struct ent *skip[LM_INDEX_DAMAGED_MAX];
	size_t nskip = 0;
	int rc;

	*last = NULL;
	for (;;) {
		struct ent *bad = NULL;
		struct hit *v;
		rc = build(arg, hp, k, skip, nskip, &bad);
		if (bad == NULL)
			return rc;
		note_damaged(idx, bad, cp != NULL);
		if (nskip == LM_INDEX_DAMAGED_MAX) {
			*last = bad;
			return LM_EPARSE;
		}
		skip[nskip++] = bad;
		if ((v = realloc(hp->v, (k + nskip) * sizeof(*v))) == NULL)
			return LM_ENOMEM;
		hp->v = v;
		hp->cap = k + nskip;
		hp->n = 0;
		if ((rc = rank(idx, env, cp, pp, min_score, hp, considered, vetoed)) !=
		    LM_OK)
			return rc;
	}
}

/*
 * One match query, as MatchJobs and MatchCandidates share it. jobs: the
 * subject is a profile and postings are ranked (jf, profile are read);
 * otherwise the subject is a posting and profiles are ranked (cf, posting).
 * The subject is the inline record when there is one, else the stored
 * record `id`. The answer goes to fields of the caller's response.
 */
struct query {
	bool jobs;
	bool subject_ok; /* the request names a subject (checked by the caller) */
	uint32_t top_k;
	Lunamatch__V1__ExplainLevel explain;
	const Lunamatch__V1__JobFilters *jf;       /* may be NULL */
	const Lunamatch__V1__CandidateFilters *cf; /* may be NULL */
	const CandidateProfile *profile;           /* inline subject, or NULL */
	const JobPosting *posting;                 /* inline subject, or NULL */
	const char *id;
	uint64_t *considered, *vetoed;
	Lunamatch__V1__Match ***matches;
	size_t *n_matches;
	char **model_version;
	uint64_t *index_seq;
	int64_t *as_of;
};

/* Points the answer fields of query q at those of resp, a MatchJobsResponse
 * or a MatchCandidatesResponse (they name them alike). */
#define QUERY_ANSWER_INTO(q, resp)                                                       \
	do {                                                                             \
		(q)->considered = &(resp)->considered;                                   \
		(q)->vetoed = &(resp)->vetoed;                                           \
		(q)->matches = &(resp)->matches;                                         \
		(q)->n_matches = &(resp)->n_matches;                                     \
		(q)->model_version = &(resp)->model_version;                             \
		(q)->index_seq = &(resp)->index_seq;                                     \
		(q)->as_of = &(resp)->as_of;                                             \
	} while (0)

static void matches_clear(Lunamatch__V1__Match ***v, size_t *n);

/* A query's build_fn: its Match list (build_matches) for the subject cp
 * or pp (a prep with its record), into q's answer. */
struct query_build {
	lm_index *idx;
	const lm_score_env *env;
	const lm_profile_prep *cp;
	const lm_posting_prep *pp;
	const struct query *q;
};

static int
build_query(void *arg, const struct heap *h, size_t k, struct ent *const *skip,
    size_t nskip, struct ent **bad)
{
	struct query_build *qb = arg;
	int rc = build_matches(qb->idx, qb->env, qb->cp, qb->pp, h, k, skip, nskip,
	    qb->q->explain, qb->q->matches, qb->q->n_matches, bad);

	if (*bad != NULL)
		matches_clear(qb->q->matches, qb->q->n_matches);
	return rc;
}

/*
 * The part of run_query under the read lock: the stored subject (unless
 * own_cp or own_pp is the inline one), the ranking of the best k and the
 * answer. The caller clears the matches of an LM_EBUSY answer (a record
 * shown was not in the store at its version) before it runs again.
 *
 * A ranked record whose stored record is damaged (entry_decode) cannot be
 * shown: it is left out (note_damaged), and the ranking runs again for one
 * more record per record left out, so that the answer is the exact top k
 * of the other records. More than LM_INDEX_DAMAGED_MAX of them in one
 * answer, or a damaged stored subject, fail the query with LM_EPARSE, the
 * record named in err. hp->v grows for the extra records (the caller
 * frees it).
 */
static int
query_locked(lm_index *idx, const struct query *q, const lm_profile_prep *own_cp,
    const lm_posting_prep *own_pp, const lm_filters *filters, int64_t now,
    struct heap *hp, size_t k, char *err, size_t errlen)
{
	const lm_profile_prep *cp, *rank_cp;
	const lm_posting_prep *pp, *rank_pp;
	struct ent *subj = NULL; /* a stored subject */
	struct view sv = {NULL, NULL, NULL, NULL, NULL, NULL};
	lm_score_env env;
	bool damaged = false;
	int rc;

	pthread_rwlock_rdlock(&idx->lock);
	cp = own_cp;
	pp = own_pp;
	if (cp == NULL && pp == NULL) {
		struct ent *e = table_find(q->jobs ? &idx->profs : &idx->posts, q->id);
		if (e == NULL) {
			pthread_rwlock_unlock(&idx->lock);
			seterr(
			    err, errlen, q->jobs ? "no such candidate" : "no such job");
			return LM_ENOENT;
		}
		cp = q->jobs ? e->cp : NULL;
		pp = q->jobs ? NULL : e->pp;
		subj = e;
	}
	env.model = idx->model;
	env.stats = idx->stats;
	env.now = now;
	env.filters = filters;
	rank_cp = cp;
	rank_pp = pp;
	hp->cap = k;
	rc = rank(idx, &env, rank_cp, rank_pp, -INFINITY, hp, q->considered, q->vetoed);
	/* A stored subject is decoded once, when there is a match to
	 * explain. */
	if (rc == LM_OK && subj != NULL && hp->n > 0) {
		if ((rc = entry_view(idx, subj, !q->jobs, &sv, &damaged)) == LM_OK) {
			pp = q->jobs ? NULL : sv.pp;
			cp = q->jobs ? sv.cp : NULL;
		} else if (damaged) {
			note_damaged(idx, subj, !q->jobs);
			snprintf(err, errlen,
			    "the stored %s \"%s\" is damaged: its record does not decode",
			    q->jobs ? "candidate" : "posting", subj->id);
			rc = LM_EPARSE;
		}
	}
	if (rc == LM_OK) {
		struct query_build qb = {idx, &env, cp, pp, q};
		struct ent *last;
		rc = build_undamaged(idx, &env, rank_cp, rank_pp, -INFINITY, hp, k,
		    q->considered, q->vetoed, build_query, &qb, &last);
		if (last != NULL)
			snprintf(err, errlen,
			    "more than %d stored records this answer ranks are damaged "
			    "(the last: %s \"%s\"): their records do not decode",
			    LM_INDEX_DAMAGED_MAX, q->jobs ? "posting" : "candidate",
			    last->id);
	}
	/* What the answer was computed from, under the lock of the scan (the
	 * sequence number changes under the write lock only). */
	if (rc == LM_OK &&
	    (rc = set_str(q->model_version, idx->model->version)) == LM_OK) {
		*q->index_seq = lm_index_seq(idx);
		*q->as_of = now;
	}
	view_done(&sv);
	pthread_rwlock_unlock(&idx->lock);
	return rc;
}

/* Frees the matches *v (n of them) of an answer that is built again. */
static void
matches_clear(Lunamatch__V1__Match ***v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		protobuf_c_message_free_unpacked(&(*v)[i]->base, NULL);
	free(*v);
	*v = NULL;
	*n = 0;
}

/* Runs q at now and fills its answer fields, which the caller frees with
 * its response, also on failure. Returns LM_OK, LM_EINVAL (bad top_k, no
 * subject, bad filters), LM_ENOENT (no such stored subject), LM_ENOMEM,
 * LM_EPARSE (damaged records: query_locked), or LM_EBUSY or a store error
 * (records in a store: it runs again while stale_again says so); the
 * reason of an error goes to err. */
static int
run_query(lm_index *idx, const struct query *q, int64_t now, char *err, size_t errlen)
{
	lm_profile_prep *own_cp = NULL;
	lm_posting_prep *own_pp = NULL;
	lm_filters *filters = NULL;
	struct heap h = {NULL, 0, 0};
	uint32_t k = q->top_k;
	uint64_t since;
	int tries = 0, rc;

	if ((rc = check_top_k(&k, err, errlen)) != LM_OK)
		return rc;
	if (!q->subject_ok) {
		seterr(err, errlen,
		    q->jobs ? "no candidate_id or profile given"
		            : "no job_id or posting given");
		return LM_EINVAL;
	}
	rc = q->jobs ? lm_filters_for_jobs(q->jf, &filters, err, errlen)
	             : lm_filters_for_candidates(q->cf, &filters, err, errlen);
	if (rc != LM_OK)
		return rc;
	if ((q->jobs && q->profile != NULL &&
	        (rc = lm_profile_prep_new_request(q->profile, &own_cp)) != LM_OK) ||
	    (!q->jobs && q->posting != NULL &&
	        (rc = lm_posting_prep_new_request(q->posting, &own_pp)) != LM_OK))
		goto done;
	if ((h.v = calloc(k, sizeof(*h.v))) == NULL) {
		rc = LM_ENOMEM;
		goto done;
	}
	h.cap = k;

	do {
		since = atomic_load(&idx->updates);
		h.n = 0;
		rc = query_locked(
		    idx, q, own_cp, own_pp, filters, now, &h, k, err, errlen);
		if (rc == LM_EBUSY)
			matches_clear(q->matches, q->n_matches);
	} while (stale_again(idx, rc, since, &tries));
done:
	free(h.v);
	lm_profile_prep_free(own_cp);
	lm_posting_prep_free(own_pp);
	lm_filters_free(filters);
	return rc;
}

int
lm_index_match_jobs(lm_index *idx, const Lunamatch__V1__MatchJobsRequest *req,
    int64_t now, Lunamatch__V1__MatchJobsResponse **out, char *err, size_t errlen)
{
	Lunamatch__V1__MatchJobsResponse *resp;
	struct query q = {.jobs = true};
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (idx == NULL || req == NULL) {
		seterr(err, errlen, "no request");
		return LM_EINVAL;
	}
	if (req->subject_case == LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_PROFILE)
		q.profile = req->profile;
	else if (req->subject_case ==
	         LUNAMATCH__V1__MATCH_JOBS_REQUEST__SUBJECT_CANDIDATE_ID)
		q.id = req->candidate_id;
	q.subject_ok = q.profile != NULL || (q.id != NULL && q.id[0] != '\0');
	q.top_k = req->top_k;
	q.explain = req->explain;
	q.jf = req->filters;
	if ((resp = malloc(sizeof(*resp))) == NULL)
		return LM_ENOMEM;
	lunamatch__v1__match_jobs_response__init(resp);
	QUERY_ANSWER_INTO(&q, resp);
	if ((rc = run_query(idx, &q, now, err, errlen)) != LM_OK)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	else
		*out = resp;
	return rc;
}

int
lm_index_match_candidates(lm_index *idx, const Lunamatch__V1__MatchCandidatesRequest *req,
    int64_t now, Lunamatch__V1__MatchCandidatesResponse **out, char *err, size_t errlen)
{
	Lunamatch__V1__MatchCandidatesResponse *resp;
	struct query q = {.jobs = false};
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (idx == NULL || req == NULL) {
		seterr(err, errlen, "no request");
		return LM_EINVAL;
	}
	if (req->subject_case == LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_POSTING)
		q.posting = req->posting;
	else if (req->subject_case ==
	         LUNAMATCH__V1__MATCH_CANDIDATES_REQUEST__SUBJECT_JOB_ID)
		q.id = req->job_id;
	q.subject_ok = q.posting != NULL || (q.id != NULL && q.id[0] != '\0');
	q.top_k = req->top_k;
	q.explain = req->explain;
	q.cf = req->filters;
	if ((resp = malloc(sizeof(*resp))) == NULL)
		return LM_ENOMEM;
	lunamatch__v1__match_candidates_response__init(resp);
	QUERY_ANSWER_INTO(&q, resp);
	if ((rc = run_query(idx, &q, now, err, errlen)) != LM_OK)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	else
		*out = resp;
	return rc;
}

/* Copies the compliance warnings of posting p into resp (ExplainMatch shows
 * them to the reviewer). */
static int
copy_warnings(const JobPosting *p, Lunamatch__V1__ExplainMatchResponse *resp)
{
	if (p->n_compliance_warnings == 0)
		return LM_OK;
	resp->compliance_warnings =
	    calloc(p->n_compliance_warnings, sizeof(*resp->compliance_warnings));
	if (resp->compliance_warnings == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < p->n_compliance_warnings; i++) {
		ProtobufCMessage *w;
		int rc;
		if (p->compliance_warnings[i] == NULL)
			continue;
		if ((rc = lm_pb_copy(&p->compliance_warnings[i]->base, &w)) != LM_OK)
			return rc;
		resp->compliance_warnings[resp->n_compliance_warnings++] =
		    (Lunamatch__V1__ComplianceWarning *) w;
	}
	return LM_OK;
}

/* One run of lm_index_explain: *out is set on LM_OK only, *posting_damaged
 * on LM_EPARSE only. */
static int
explain_once(lm_index *idx, const char *candidate_id, const char *job_id, int64_t now,
    Lunamatch__V1__ExplainMatchResponse **out, bool *posting_damaged)
{
	Lunamatch__V1__ExplainMatchResponse *resp;
	struct ent *c, *p;
	lm_score_env env;
	bool damaged = false;
	int rc;

	if ((resp = malloc(sizeof(*resp))) == NULL)
		return LM_ENOMEM;
	lunamatch__v1__explain_match_response__init(resp);
	pthread_rwlock_rdlock(&idx->lock);
	c = table_find(&idx->profs, candidate_id);
	p = table_find(&idx->posts, job_id);
	if (c == NULL || p == NULL) {
		rc = LM_ENOENT;
	} else {
		env.model = idx->model;
		env.stats = idx->stats;
		env.now = now;
		env.filters = NULL;
		struct view v, vc;
		if ((rc = entry_view(idx, p, true, &v, &damaged)) != LM_OK && damaged) {
			note_damaged(idx, p, true);
			*posting_damaged = true;
			rc = LM_EPARSE;
		} else if (rc == LM_OK) {
			if ((rc = entry_view(idx, c, false, &vc, &damaged)) == LM_OK) {
				rc = lm_explain_pair(&env, vc.cp, v.pp,
				    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL,
				    &resp->match);
				view_done(&vc);
			} else if (damaged) {
				note_damaged(idx, c, false);
				*posting_damaged = false;
				rc = LM_EPARSE;
			}
			if (rc == LM_OK)
				rc = copy_warnings((const JobPosting *) v.rec, resp);
			view_done(&v);
		}
		if (rc == LM_OK &&
		    (rc = set_str(&resp->model_version, idx->model->version)) == LM_OK) {
			resp->index_seq = lm_index_seq(idx);
			resp->as_of = now;
		}
	}
	pthread_rwlock_unlock(&idx->lock);
	if (rc != LM_OK) {
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		return rc;
	}
	resp->eligible = resp->match->explanation->n_vetoes == 0;
	*out = resp;
	return LM_OK;
}

int
lm_index_explain(lm_index *idx, const char *candidate_id, const char *job_id, int64_t now,
    Lunamatch__V1__ExplainMatchResponse **out, bool *posting_damaged)
{
	uint64_t since;
	int tries = 0, rc;
	bool pd = false;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (idx == NULL || candidate_id == NULL || job_id == NULL)
		return LM_EINVAL;
	do {
		since = atomic_load(&idx->updates);
		rc = explain_once(idx, candidate_id, job_id, now, out, &pd);
	} while (stale_again(idx, rc, since, &tries));
	if (posting_damaged != NULL)
		*posting_damaged = pd;
	return rc;
}

/* A copy of the record of entry e (a posting's when posting) that the
 * caller frees with protobuf_c_message_free_unpacked: decoded from its
 * bytes, or copied from its decoded record. LM_EPARSE when its stored
 * record is damaged (note_damaged). Read lock held. */
static int
copy_record(lm_index *idx, struct ent *e, bool posting, ProtobufCMessage **out)
{
	bool damaged = false;
	int rc;

	*out = NULL;
	if (e->rec != NULL)
		return lm_pb_copy(e->rec, out);
	if ((rc = entry_decode(idx, e, posting, false, out, &damaged)) != LM_OK &&
	    damaged) {
		note_damaged(idx, e, posting);
		rc = LM_EPARSE;
	}
	return rc;
}

/* The copy of stored record id (copy_record), a posting when posting. */
static int
get_record(lm_index *idx, bool posting, const char *id, ProtobufCMessage **out)
{
	struct ent *e;
	uint64_t since;
	int tries = 0, rc;

	*out = NULL;
	if (idx == NULL || id == NULL)
		return LM_EINVAL;
	do {
		since = atomic_load(&idx->updates);
		pthread_rwlock_rdlock(&idx->lock);
		e = table_find(posting ? &idx->posts : &idx->profs, id);
		rc = e == NULL ? LM_ENOENT : copy_record(idx, e, posting, out);
		pthread_rwlock_unlock(&idx->lock);
	} while (stale_again(idx, rc, since, &tries));
	return rc;
}

int
lm_index_get_posting(lm_index *idx, const char *id, JobPosting **out)
{
	ProtobufCMessage *m = NULL;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	rc = get_record(idx, true, id, &m);
	*out = (JobPosting *) m;
	return rc;
}

int
lm_index_get_profile(lm_index *idx, const char *id, CandidateProfile **out)
{
	ProtobufCMessage *m = NULL;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	rc = get_record(idx, false, id, &m);
	*out = (CandidateProfile *) m;
	return rc;
}

int
lm_index_record_size(lm_index *idx, bool posting, const char *id, uint64_t *size)
{
	const struct ent *e;

	if (idx == NULL || id == NULL || size == NULL)
		return LM_EINVAL;
	pthread_rwlock_rdlock(&idx->lock);
	e = table_find(posting ? &idx->posts : &idx->profs, id);
	if (e != NULL)
		*size = e->rec != NULL ? protobuf_c_message_get_packed_size(e->rec)
		                       : e->wire_len;
	pthread_rwlock_unlock(&idx->lock);
	return e != NULL ? LM_OK : LM_ENOENT;
}

int
lm_index_record_version(lm_index *idx, bool posting, const char *id, uint64_t *version)
{
	const struct ent *e;

	if (idx == NULL || id == NULL || version == NULL)
		return LM_EINVAL;
	pthread_rwlock_rdlock(&idx->lock);
	e = table_find(posting ? &idx->posts : &idx->profs, id);
	if (e != NULL)
		*version = e->version;
	pthread_rwlock_unlock(&idx->lock);
	return e != NULL ? LM_OK : LM_ENOENT;
}

int
lm_index_pair_score(lm_index *idx, const char *candidate_id, const char *job_id,
    int64_t now, double *score, bool *eligible)
{
	const struct ent *c, *p;
	lm_score_env env;
	int rc = LM_OK;

	if (idx == NULL || candidate_id == NULL || job_id == NULL || score == NULL)
		return LM_EINVAL;
	pthread_rwlock_rdlock(&idx->lock);
	c = table_find(&idx->profs, candidate_id);
	p = table_find(&idx->posts, job_id);
	if (c == NULL || p == NULL) {
		rc = LM_ENOENT;
	} else {
		env.model = idx->model;
		env.stats = idx->stats;
		env.now = now;
		env.filters = NULL;
		*score = lm_score_pair(&env, c->cp, p->pp, eligible);
	}
	pthread_rwlock_unlock(&idx->lock);
	return rc;
}

void
lm_top_list_clear(lm_top_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].id);
		free(l->items[i].summary);
	}
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* A top list's build_fn: the items of out for the subject cp or pp (a
 * prep with its record), whose matches are explained at SUMMARY. */
struct top_build {
	lm_index *idx;
	const lm_score_env *env;
	const lm_profile_prep *cp;
	const lm_posting_prep *pp;
	lm_top_list *out;
};

static void
top_items_clear(lm_top_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].id);
		free(l->items[i].summary);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static int
build_top(void *arg, const struct heap *h, size_t k, struct ent *const *skip,
    size_t nskip, struct ent **bad)
{
	struct top_build *tb = arg;
	lm_top_list *out = tb->out;
	bool damaged = false;
	int rc = LM_OK;

	*bad = NULL;
	if (h->n == 0 || k == 0)
		return LM_OK;
	if ((out->items = calloc(h->n < k ? h->n : k, sizeof(*out->items))) == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < h->n && out->n < k; i++) {
		struct ent *o = h->v[i].e;
		lm_top_item *it = &out->items[out->n];
		Lunamatch__V1__Match *m = NULL;

		if (skipped(skip, nskip, o))
			continue;
		rc = explain_stored(tb->idx, tb->env, tb->cp, tb->pp, o,
		    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, NULL, &m,
		    &damaged);
		if (rc != LM_OK) {
			if (damaged) {
				*bad = o;
				top_items_clear(out);
			}
			return rc;
		}
		it->id = strdup(o->id);
		it->summary = strdup(m->explanation->summary);
		protobuf_c_message_free_unpacked(&m->base, NULL);
		if (it->id == NULL || it->summary == NULL) {
			free(it->id);
			free(it->summary);
			return LM_ENOMEM;
		}
		it->score = h->v[i].score;
		it->version = o->version;
		out->n++;
	}
	return LM_OK;
}

/* One run of top_for of the best k, into the room of *hp (which grows as
 * build_undamaged says; the caller frees it); out is cleared on failure. A
 * damaged match is left out (build_undamaged); a damaged subject, or more
 * than LM_INDEX_DAMAGED_MAX damaged matches, fail with out->damaged. */
static int
top_once(lm_index *idx, bool posting, const char *id, double min_score, int64_t now,
    struct heap *hp, size_t k, lm_top_list *out)
{
	struct ent *subj;
	struct view sv = {NULL, NULL, NULL, NULL, NULL, NULL}; /* a posting subject's */
	struct ent *bad = NULL; /* the entry whose record is damaged */
	struct top_build tb;
	uint64_t considered = 0, vetoed = 0;
	lm_score_env env;
	bool damaged = false;
	int rc = LM_OK;

	hp->n = 0;
	hp->cap = k;
	pthread_rwlock_rdlock(&idx->lock);
	subj = table_find(posting ? &idx->posts : &idx->profs, id);
	if (subj == NULL) {
		rc = LM_ENOENT;
		goto done;
	}
	out->subject_version = subj->version;
	env.model = idx->model;
	env.stats = idx->stats;
	env.now = now;
	env.filters = NULL;
	if ((rc = rank(idx, &env, posting ? NULL : subj->cp, posting ? subj->pp : NULL,
	         min_score, hp, &considered, &vetoed)) != LM_OK)
		goto done;
	if (hp->n > 0 && (rc = entry_view(idx, subj, posting, &sv, &damaged)) != LM_OK) {
		if (damaged) {
			note_damaged(idx, subj, posting);
			bad = subj;
			rc = LM_EPARSE;
		}
		goto done;
	}
	tb = (struct top_build){idx, &env, sv.cp, sv.pp, out};
	rc = build_undamaged(idx, &env, posting ? NULL : subj->cp,
	    posting ? subj->pp : NULL, min_score, hp, k, &considered, &vetoed, build_top,
	    &tb, &bad);
done:
	view_done(&sv);
	if (rc != LM_OK)
		lm_top_list_clear(out);
	if (bad != NULL) {
		out->damaged = true;
		out->damaged_posting = bad == subj ? posting : !posting;
		snprintf(out->damaged_id, sizeof(out->damaged_id), "%s", bad->id);
	}
	pthread_rwlock_unlock(&idx->lock);
	return rc;
}

static int
top_for(lm_index *idx, bool posting, const char *id, uint32_t n, double min_score,
    int64_t now, lm_top_list *out)
{
	struct heap h = {NULL, 0, 0};
	uint64_t since;
	int tries = 0, rc;

	if (out == NULL)
		return LM_EINVAL;
	memset(out, 0, sizeof(*out));
	if (idx == NULL || id == NULL || n > LM_INDEX_EVENT_TOP_MAX || isnan(min_score))
		return LM_EINVAL;
	if (n > 0 && (h.v = calloc(n, sizeof(*h.v))) == NULL)
		return LM_ENOMEM;
	do {
		since = atomic_load(&idx->updates);
		rc = top_once(idx, posting, id, min_score, now, &h, n, out);
	} while (stale_again(idx, rc, since, &tries));
	free(h.v);
	return rc;
}

int
lm_index_top_for_posting(lm_index *idx, const char *job_id, uint32_t n, double min_score,
    int64_t now, lm_top_list *out)
{
	return top_for(idx, true, job_id, n, min_score, now, out);
}

int
lm_index_top_for_profile(lm_index *idx, const char *candidate_id, uint32_t n,
    double min_score, int64_t now, lm_top_list *out)
{
	return top_for(idx, false, candidate_id, n, min_score, now, out);
}
