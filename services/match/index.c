/*
 * index.c - the in-memory match index; see index.h for the contract.
 *
 * Records live in two tables (postings, profiles): the shared hash map from
 * id to entry for lookups and a dense array of the same entries for scans.
 * Each entry owns its decoded record and the scorer's prepared form of it.
 * One pthread rwlock guards everything; the IDF statistics change only
 * under the write lock.
 *
 * Scans are what queries spend their time on, so they avoid the scattered
 * records: every prep is bound to the IDF statistics (skill ids become
 * small integers, see score.h), and next to the dense array of entries a
 * dense array of slots holds each prep's veto key and pointer. A scan
 * (lm_scan) reads the slots in order, passes over most vetoed records
 * without touching them, prefetches the preps it will score and scores
 * those by symbol; the results are exactly those of lm_score_pair. Binding
 * and unbinding write to the statistics, so they happen under the write
 * lock, as does freeing a bound prep.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "score.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile CandidateProfile;

/* One stored record. */
struct ent {
	size_t slot;    /* position in the table's dense array */
	const char *id; /* points into rec */
	uint64_t version;
	ProtobufCMessage *rec;
	lm_posting_prep *pp; /* postings */
	lm_profile_prep *cp; /* profiles */
	bool counted;        /* postings: counted in the IDF statistics */
};

/* What a scan reads of entry v[i], side by side in a dense array so that
 * most records are passed over without touching the entry or the record. */
struct slot {
	lm_veto_key key;  /* copy of the prep's veto key */
	const void *prep; /* the entry's pp (postings) or cp (profiles) */
};

struct table {
	lm_hashmap *by_id;  /* id -> entry (keys point into the records) */
	struct ent **v;     /* dense array of every entry */
	struct slot *slots; /* slots[i] belongs to v[i] */
	size_t n, cap;      /* entries; room in v and slots */
};

struct lm_index {
	pthread_rwlock_t lock;
	const lm_model *model;
	struct table posts, profs;
	lm_skill_stats *stats;
	int64_t clock;               /* under the lock */
	_Atomic int64_t next_expiry; /* earliest expires_at of a counted posting */
	_Atomic uint64_t seq;
	/* Copies of the counts, stored under the write lock by publish_counts
	 * and read without any lock by lm_index_counts_get. */
	_Atomic uint64_t n_postings, n_open, n_profiles;
};

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

/* Makes room for one more entry in the dense arrays. */
static int
table_reserve(struct table *t)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct ent **v = realloc(t->v, cap * sizeof(*v));
		struct slot *sl;
		if (v == NULL)
			return LM_ENOMEM;
		t->v = v;
		if ((sl = realloc(t->slots, cap * sizeof(*sl))) == NULL)
			return LM_ENOMEM; /* v is larger than needed: harmless */
		t->slots = sl;
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
	e->slot = t->n;
	t->v[t->n++] = e;
	return LM_OK;
}

static void
table_unlink(struct table *t, struct ent *e)
{
	lm_hashmap_remove(t->by_id, e->id);
	t->v[e->slot] = t->v[t->n - 1];
	t->slots[e->slot] = t->slots[t->n - 1];
	t->v[e->slot]->slot = e->slot;
	t->n--;
}

static void
ent_free(struct ent *e)
{
	if (e == NULL)
		return;
	lm_posting_prep_free(e->pp);
	lm_profile_prep_free(e->cp);
	if (e->rec != NULL)
		protobuf_c_message_free_unpacked(e->rec, NULL);
	free(e);
}

static void
table_destroy(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		ent_free(t->v[i]);
	free(t->v);
	free(t->slots);
	lm_hashmap_free(t->by_id);
	memset(t, 0, sizeof(*t));
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
	atomic_init(&idx->next_expiry, INT64_MAX);
	atomic_init(&idx->seq, 0);
	atomic_init(&idx->n_postings, 0);
	atomic_init(&idx->n_open, 0);
	atomic_init(&idx->n_profiles, 0);
	if (table_init(&idx->posts) != LM_OK || table_init(&idx->profs) != LM_OK ||
	    lm_skill_stats_new(&idx->stats) != LM_OK) {
		table_destroy(&idx->posts);
		table_destroy(&idx->profs);
		free(idx);
		return LM_ENOMEM;
	}
	pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
	/* Updates must not starve behind a steady stream of queries. */
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	if (pthread_rwlock_init(&idx->lock, &attr) != 0) {
		pthread_rwlockattr_destroy(&attr);
		lm_skill_stats_free(idx->stats);
		table_destroy(&idx->posts);
		table_destroy(&idx->profs);
		free(idx);
		return LM_ENOMEM;
	}
	pthread_rwlockattr_destroy(&attr);
	*out = idx;
	return LM_OK;
}

void
lm_index_free(lm_index *idx)
{
	if (idx == NULL)
		return;
	table_destroy(&idx->posts);
	table_destroy(&idx->profs);
	lm_skill_stats_free(idx->stats);
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

/* Lowers next_expiry to cover a newly counted posting. Write lock held. */
static void
note_expiry(lm_index *idx, const JobPosting *p)
{
	if (p->expires_at != 0 && p->expires_at < atomic_load(&idx->next_expiry))
		atomic_store(&idx->next_expiry, p->expires_at);
}

/* Write lock held: makes the current counts visible to
 * lm_index_counts_get. Each count is exact; the three are not one
 * snapshot (a reader may see one update's posting count and the previous
 * open count). */
static void
publish_counts(lm_index *idx)
{
	atomic_store(&idx->n_postings, (uint64_t) idx->posts.n);
	atomic_store(&idx->n_open, (uint64_t) lm_skill_stats_docs(idx->stats));
	atomic_store(&idx->n_profiles, (uint64_t) idx->profs.n);
}

int
lm_index_put_posting(lm_index *idx, JobPosting *rec)
{
	struct ent *e = NULL, *old;
	lm_posting_prep *pp = NULL;
	bool live;
	int rc;

	if (rec == NULL)
		return LM_EINVAL;
	if (idx == NULL || rec->id == NULL || rec->id[0] == '\0') {
		protobuf_c_message_free_unpacked(&rec->base, NULL);
		return LM_EINVAL;
	}
	if ((rc = lm_posting_prep_new(rec, &pp)) != LM_OK) {
		protobuf_c_message_free_unpacked(&rec->base, NULL);
		return rc;
	}
	pthread_rwlock_wrlock(&idx->lock);
	old = table_find(&idx->posts, rec->id);
	if (old != NULL && old->version > rec->version) {
		rc = LM_ESTALE;
		goto fail;
	}
	if ((rc = lm_posting_prep_bind(pp, idx->stats)) != LM_OK)
		goto fail;
	live = posting_live(rec, idx->clock);
	if (live && (rc = lm_skill_stats_add(idx->stats, pp)) != LM_OK)
		goto fail;
	if (old == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL ||
		    table_reserve(&idx->posts) != LM_OK ||
		    (e->id = rec->id, table_insert(&idx->posts, e)) != LM_OK) {
			if (live)
				lm_skill_stats_remove(idx->stats, pp);
			free(e);
			e = NULL;
			rc = LM_ENOMEM;
			goto fail;
		}
	} else {
		e = old;
		if (e->counted)
			lm_skill_stats_remove(idx->stats, e->pp);
		/* The map's key must point into the new record before the old
		 * one goes (same text: the key is present, nothing allocated). */
		e->id = rec->id;
		(void) lm_hashmap_put(idx->posts.by_id, e->id, e);
		lm_posting_prep_free(e->pp);
		protobuf_c_message_free_unpacked(e->rec, NULL);
	}
	e->rec = &rec->base;
	e->pp = pp;
	idx->posts.slots[e->slot].key = *lm_posting_prep_key(pp);
	idx->posts.slots[e->slot].prep = pp;
	e->version = rec->version;
	e->counted = live;
	if (live)
		note_expiry(idx, rec);
	publish_counts(idx);
	pthread_rwlock_unlock(&idx->lock);
	return LM_OK;
fail:
	lm_posting_prep_unbind(pp); /* the symbols are the index's: under the lock */
	pthread_rwlock_unlock(&idx->lock);
	lm_posting_prep_free(pp);
	protobuf_c_message_free_unpacked(&rec->base, NULL);
	return rc;
}

int
lm_index_put_profile(lm_index *idx, CandidateProfile *rec)
{
	struct ent *e = NULL, *old;
	lm_profile_prep *cp = NULL;
	int rc;

	if (rec == NULL)
		return LM_EINVAL;
	if (idx == NULL || rec->id == NULL || rec->id[0] == '\0') {
		protobuf_c_message_free_unpacked(&rec->base, NULL);
		return LM_EINVAL;
	}
	if ((rc = lm_profile_prep_new(rec, &cp)) != LM_OK) {
		protobuf_c_message_free_unpacked(&rec->base, NULL);
		return rc;
	}
	pthread_rwlock_wrlock(&idx->lock);
	old = table_find(&idx->profs, rec->id);
	if (old != NULL && old->version > rec->version) {
		rc = LM_ESTALE;
		goto fail;
	}
	if ((rc = lm_profile_prep_bind(cp, idx->stats)) != LM_OK)
		goto fail;
	if (old == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL ||
		    table_reserve(&idx->profs) != LM_OK ||
		    (e->id = rec->id, table_insert(&idx->profs, e)) != LM_OK) {
			free(e);
			rc = LM_ENOMEM;
			goto fail;
		}
	} else {
		e = old;
		e->id = rec->id; /* as for postings: key first */
		(void) lm_hashmap_put(idx->profs.by_id, e->id, e);
		lm_profile_prep_free(e->cp);
		protobuf_c_message_free_unpacked(e->rec, NULL);
	}
	e->rec = &rec->base;
	e->cp = cp;
	idx->profs.slots[e->slot].key = *lm_profile_prep_key(cp);
	idx->profs.slots[e->slot].prep = cp;
	e->version = rec->version;
	publish_counts(idx);
	pthread_rwlock_unlock(&idx->lock);
	return LM_OK;
fail:
	lm_profile_prep_unbind(cp);
	pthread_rwlock_unlock(&idx->lock);
	lm_profile_prep_free(cp);
	protobuf_c_message_free_unpacked(&rec->base, NULL);
	return rc;
}

int
lm_index_remove_posting(lm_index *idx, const char *id)
{
	struct ent *e;

	if (idx == NULL || id == NULL)
		return LM_EINVAL;
	pthread_rwlock_wrlock(&idx->lock);
	if ((e = table_find(&idx->posts, id)) == NULL) {
		pthread_rwlock_unlock(&idx->lock);
		return LM_ENOENT;
	}
	if (e->counted)
		lm_skill_stats_remove(idx->stats, e->pp);
	lm_posting_prep_unbind(e->pp);
	table_unlink(&idx->posts, e);
	publish_counts(idx);
	pthread_rwlock_unlock(&idx->lock);
	ent_free(e);
	return LM_OK;
}

int
lm_index_remove_profile(lm_index *idx, const char *id)
{
	struct ent *e;

	if (idx == NULL || id == NULL)
		return LM_EINVAL;
	pthread_rwlock_wrlock(&idx->lock);
	if ((e = table_find(&idx->profs, id)) == NULL) {
		pthread_rwlock_unlock(&idx->lock);
		return LM_ENOENT;
	}
	lm_profile_prep_unbind(e->cp);
	table_unlink(&idx->profs, e);
	publish_counts(idx);
	pthread_rwlock_unlock(&idx->lock);
	ent_free(e);
	return LM_OK;
}

/* Write lock held. */
static void
advance_locked(lm_index *idx, int64_t now)
{
	int64_t next = INT64_MAX;

	if (now <= idx->clock)
		return;
	idx->clock = now;
	if (now < atomic_load(&idx->next_expiry))
		return;
	for (size_t i = 0; i < idx->posts.n; i++) {
		struct ent *e = idx->posts.v[i];
		const JobPosting *p = (const JobPosting *) e->rec;
		if (!e->counted || p->expires_at == 0)
			continue;
		if (p->expires_at <= now) {
			lm_skill_stats_remove(idx->stats, e->pp);
			e->counted = false;
		} else if (p->expires_at < next) {
			next = p->expires_at;
		}
	}
	atomic_store(&idx->next_expiry, next);
	publish_counts(idx);
}

void
lm_index_advance(lm_index *idx, int64_t now)
{
	if (idx == NULL)
		return;
	pthread_rwlock_wrlock(&idx->lock);
	advance_locked(idx, now);
	pthread_rwlock_unlock(&idx->lock);
}

/* Called by queries before they take the read lock: keeps the statistics
 * free of postings expired at now. Cheap unless one has expired. */
static void
maybe_advance(lm_index *idx, int64_t now)
{
	if (now >= atomic_load(&idx->next_expiry))
		lm_index_advance(idx, now);
}

void
lm_index_set_seq(lm_index *idx, uint64_t seq)
{
	atomic_store(&idx->seq, seq);
}

uint64_t
lm_index_seq(lm_index *idx)
{
	return atomic_load(&idx->seq);
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

#define SCAN_PREFETCH 8 /* slots a scan looks ahead to prefetch */

/* Scores subject against every record of the other side (cp set: postings;
 * pp set: profiles), keeping eligible hits with score >= min_score. Read
 * lock held. Returns LM_OK or LM_ENOMEM. */
static int
scan(const lm_index *idx, const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, double min_score, struct heap *h, uint64_t *considered,
    uint64_t *vetoed)
{
	const struct table *t = cp != NULL ? &idx->posts : &idx->profs;
	lm_scan *sc;
	int rc;

	if ((rc = lm_scan_new(env, cp, pp, &sc)) != LM_OK)
		return rc;
	for (size_t i = 0; i < t->n; i++) {
		const struct slot *sl = &t->slots[i];
		struct hit x;
		bool ok;

		/* Records are scattered in memory: start loading the prep of a
		 * record a few slots ahead while this one is scored. */
		if (i + SCAN_PREFETCH < t->n &&
		    !lm_scan_vetoed(sc, &t->slots[i + SCAN_PREFETCH].key))
			lm_prep_prefetch(t->slots[i + SCAN_PREFETCH].prep);
		(*considered)++;
		/* Most vetoed records are rejected here, from the dense slot
		 * array, without touching the entry or the record. */
		if (lm_scan_vetoed(sc, &sl->key)) {
			(*vetoed)++;
			continue;
		}
		x.score = cp != NULL ? lm_scan_posting(sc, sl->prep, &ok)
		                     : lm_scan_profile(sc, sl->prep, &ok);
		if (!ok) {
			(*vetoed)++;
			continue;
		}
		if (x.score < min_score)
			continue;
		x.e = t->v[i];
		x.id = x.e->id;
		heap_offer(h, &x);
	}
	lm_scan_free(sc);
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

/* Builds the ranked Match list of a scan. Read lock held. */
static int
build_matches(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct heap *h, Lunamatch__V1__ExplainLevel level,
    Lunamatch__V1__Match ***out, size_t *n_out)
{
	Lunamatch__V1__Match **v;

	*out = NULL;
	*n_out = 0;
	if (h->n == 0)
		return LM_OK;
	if ((v = calloc(h->n, sizeof(*v))) == NULL)
		return LM_ENOMEM;
	*out = v;
	for (size_t i = 0; i < h->n; i++) {
		const struct ent *e = h->v[i].e;
		Lunamatch__V1__Match *m;
		int rc = cp != NULL ? lm_explain_pair(env, cp, e->pp, level, &m)
		                    : lm_explain_pair(env, e->cp, pp, level, &m);
		if (rc != LM_OK)
			return rc;
		v[(*n_out)++] = m;
		m->rank = (uint32_t) (i + 1);
		m->score = h->v[i].score;
		if (cp == NULL) {
			const CandidateProfile *c = lm_profile_prep_record(e->cp);
			if (set_str(&m->title, c->headline) != LM_OK)
				return LM_ENOMEM;
			if (m->company != protobuf_c_empty_string)
				free(m->company);
			m->company = (char *) protobuf_c_empty_string;
		}
	}
	return LM_OK;
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
	} while (0)

/* Runs q at now and fills its answer fields, which the caller frees with
 * its response, also on failure. Returns LM_OK, LM_EINVAL (bad top_k, no
 * subject, bad filters), LM_ENOENT (no such stored subject) or LM_ENOMEM;
 * the reason of an error goes to err. */
static int
run_query(lm_index *idx, const struct query *q, int64_t now, char *err, size_t errlen)
{
	lm_profile_prep *own_cp = NULL;
	lm_posting_prep *own_pp = NULL;
	const lm_profile_prep *cp;
	const lm_posting_prep *pp;
	lm_filters *filters = NULL;
	struct heap h = {NULL, 0, 0};
	uint32_t k = q->top_k;
	lm_score_env env;
	int rc;

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
	        (rc = lm_profile_prep_new(q->profile, &own_cp)) != LM_OK) ||
	    (!q->jobs && q->posting != NULL &&
	        (rc = lm_posting_prep_new(q->posting, &own_pp)) != LM_OK))
		goto done;
	if ((h.v = calloc(k, sizeof(*h.v))) == NULL) {
		rc = LM_ENOMEM;
		goto done;
	}
	h.cap = k;

	maybe_advance(idx, now);
	pthread_rwlock_rdlock(&idx->lock);
	cp = own_cp;
	pp = own_pp;
	if (cp == NULL && pp == NULL) {
		const struct ent *e =
		    table_find(q->jobs ? &idx->profs : &idx->posts, q->id);
		if (e == NULL) {
			pthread_rwlock_unlock(&idx->lock);
			seterr(
			    err, errlen, q->jobs ? "no such candidate" : "no such job");
			rc = LM_ENOENT;
			goto done;
		}
		cp = q->jobs ? e->cp : NULL;
		pp = q->jobs ? NULL : e->pp;
	}
	env.model = idx->model;
	env.stats = idx->stats;
	env.now = now;
	env.filters = filters;
	rc = scan(idx, &env, cp, pp, -INFINITY, &h, q->considered, q->vetoed);
	if (rc == LM_OK)
		rc =
		    build_matches(&env, cp, pp, &h, q->explain, q->matches, q->n_matches);
	pthread_rwlock_unlock(&idx->lock);
	if (rc == LM_OK && (rc = set_str(q->model_version, idx->model->version)) == LM_OK)
		*q->index_seq = lm_index_seq(idx);
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

int
lm_index_explain(lm_index *idx, const char *candidate_id, const char *job_id, int64_t now,
    Lunamatch__V1__ExplainMatchResponse **out)
{
	Lunamatch__V1__ExplainMatchResponse *resp;
	const struct ent *c, *p;
	lm_score_env env;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (idx == NULL || candidate_id == NULL || job_id == NULL)
		return LM_EINVAL;
	if ((resp = malloc(sizeof(*resp))) == NULL)
		return LM_ENOMEM;
	lunamatch__v1__explain_match_response__init(resp);
	maybe_advance(idx, now);
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
		rc = lm_explain_pair(&env, c->cp, p->pp,
		    LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL, &resp->match);
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

/* A deep copy of a message through its wire form. */
static int
copy_message(const ProtobufCMessage *m, ProtobufCMessage **out)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);

	*out = NULL;
	if (buf == NULL)
		return LM_ENOMEM;
	protobuf_c_message_pack(m, buf);
	*out = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	free(buf);
	return *out == NULL ? LM_ENOMEM : LM_OK;
}

int
lm_index_get_posting(lm_index *idx, const char *id, JobPosting **out)
{
	const struct ent *e;
	ProtobufCMessage *m = NULL;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (idx == NULL || id == NULL)
		return LM_EINVAL;
	pthread_rwlock_rdlock(&idx->lock);
	e = table_find(&idx->posts, id);
	rc = e == NULL ? LM_ENOENT : copy_message(e->rec, &m);
	pthread_rwlock_unlock(&idx->lock);
	*out = (JobPosting *) m;
	return rc;
}

int
lm_index_get_profile(lm_index *idx, const char *id, CandidateProfile **out)
{
	const struct ent *e;
	ProtobufCMessage *m = NULL;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (idx == NULL || id == NULL)
		return LM_EINVAL;
	pthread_rwlock_rdlock(&idx->lock);
	e = table_find(&idx->profs, id);
	rc = e == NULL ? LM_ENOENT : copy_message(e->rec, &m);
	pthread_rwlock_unlock(&idx->lock);
	*out = (CandidateProfile *) m;
	return rc;
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
	maybe_advance(idx, now);
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

static int
top_for(lm_index *idx, bool posting, const char *id, uint32_t n, double min_score,
    int64_t now, lm_top_list *out)
{
	const struct ent *subj;
	struct heap h = {NULL, 0, 0};
	uint64_t considered = 0, vetoed = 0;
	lm_score_env env;
	int rc = LM_OK;

	if (out == NULL)
		return LM_EINVAL;
	memset(out, 0, sizeof(*out));
	if (idx == NULL || id == NULL || n > LM_INDEX_EVENT_TOP_MAX || isnan(min_score))
		return LM_EINVAL;
	if (n > 0 && (h.v = calloc(n, sizeof(*h.v))) == NULL)
		return LM_ENOMEM;
	h.cap = n;
	maybe_advance(idx, now);
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
	if ((rc = scan(idx, &env, posting ? NULL : subj->cp, posting ? subj->pp : NULL,
	         min_score, &h, &considered, &vetoed)) != LM_OK)
		goto done;
	if (h.n > 0 && (out->items = calloc(h.n, sizeof(*out->items))) == NULL) {
		rc = LM_ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < h.n; i++) {
		const struct ent *o = h.v[i].e;
		lm_top_item *it = &out->items[out->n];
		Lunamatch__V1__Match *m = NULL;

		rc = posting
		         ? lm_explain_pair(&env, o->cp, subj->pp,
		               LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, &m)
		         : lm_explain_pair(&env, subj->cp, o->pp,
		               LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_SUMMARY, &m);
		if (rc != LM_OK)
			goto done;
		it->id = strdup(o->id);
		it->summary = strdup(m->explanation->summary);
		protobuf_c_message_free_unpacked(&m->base, NULL);
		if (it->id == NULL || it->summary == NULL) {
			free(it->id);
			free(it->summary);
			rc = LM_ENOMEM;
			goto done;
		}
		it->score = h.v[i].score;
		it->version = o->version;
		out->n++;
	}
done:
	pthread_rwlock_unlock(&idx->lock);
	free(h.v);
	if (rc != LM_OK)
		lm_top_list_clear(out);
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
