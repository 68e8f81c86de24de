/*
 * score.c - vetoes, features, scores and explanations of one pair; see
 * score.h for the contract and docs/scoring.md for the formulas.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lunamatch/error.h"
#include "score.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile CandidateProfile;
typedef Lunamatch__V1__Explanation Explanation;

#define TITLE_SCAN_MAX      512 /* bytes of a title looked at for tokens */
#define PREP_PREFETCH_BYTES 512 /* bytes of a prep that lm_prep_prefetch loads */

/* ==== corpus statistics and skill symbols ================================= */

/*
 * One node per skill id that is counted (df > 0) or referenced by a bound
 * prep (refs > 0); a node with neither is freed and its symbol reused.
 * Symbols are dense: by_sym[sym] is the node of sym, NULL for a free one.
 */
struct df_node {
	struct df_node *next;
	uint64_t hash;
	uint64_t df;
	uint64_t refs; /* bound preps' references */
	uint32_t sym;
	char id[];
};

struct lm_skill_stats {
	struct df_node **buckets;
	size_t nbuckets; /* power of two */
	size_t nnodes;
	uint64_t docs;
	struct df_node **by_sym; /* sym_cap slots; below nsym: a node or NULL */
	uint32_t *free_syms;     /* sym_cap slots; n_free symbols to reuse */
	uint32_t nsym;           /* symbols ever handed out (high-water mark) */
	uint32_t sym_cap;
	uint32_t n_free;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char) *s;
		h *= 1099511628211ULL;
	}
	return h;
}

int
lm_skill_stats_new(lm_skill_stats **out)
{
	lm_skill_stats *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return LM_ENOMEM;
	s->nbuckets = 64;
	if ((s->buckets = calloc(s->nbuckets, sizeof(*s->buckets))) == NULL) {
		free(s);
		return LM_ENOMEM;
	}
	*out = s;
	return LM_OK;
}

void
lm_skill_stats_free(lm_skill_stats *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct df_node *n = s->buckets[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			free(n);
		}
	}
	free(s->buckets);
	free(s->by_sym);
	free(s->free_syms);
	free(s);
}

static struct df_node *
df_find(const lm_skill_stats *s, const char *id, uint64_t h)
{
	struct df_node *n = s->buckets[h & (s->nbuckets - 1)];

	for (; n != NULL; n = n->next)
		if (n->hash == h && strcmp(n->id, id) == 0)
			return n;
	return NULL;
}

/* Doubles the table when it is fuller than one node per bucket. A failed
 * resize leaves the table as it was (still correct, only slower). */
static void
df_grow(lm_skill_stats *s)
{
	size_t nb = s->nbuckets * 2;
	struct df_node **b;

	if (s->nnodes <= s->nbuckets || nb > ((size_t) 1 << 40))
		return;
	if ((b = calloc(nb, sizeof(*b))) == NULL)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct df_node *n = s->buckets[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
}

/* Makes room for one more symbol. */
static int
sym_reserve(lm_skill_stats *s)
{
	uint32_t cap;
	struct df_node **bs;
	uint32_t *fs;

	if (s->n_free > 0 || s->nsym < s->sym_cap)
		return LM_OK;
	if (s->sym_cap >= LM_SKILL_SYMS_MAX)
		return LM_ENOMEM;
	cap = s->sym_cap == 0 ? 256 : s->sym_cap * 2;
	if (cap > LM_SKILL_SYMS_MAX)
		cap = LM_SKILL_SYMS_MAX;
	if ((bs = realloc(s->by_sym, cap * sizeof(*bs))) == NULL)
		return LM_ENOMEM;
	s->by_sym = bs;
	if ((fs = realloc(s->free_syms, cap * sizeof(*fs))) == NULL)
		return LM_ENOMEM; /* by_sym is larger than needed: harmless */
	s->free_syms = fs;
	s->sym_cap = cap;
	return LM_OK;
}

/* A new node for id (hash h) with df 0, refs 0 and a symbol; NULL when out
 * of memory (or symbols). */
static struct df_node *
df_node_new(lm_skill_stats *s, const char *id, uint64_t h)
{
	size_t len = strlen(id);
	struct df_node *n;

	if (sym_reserve(s) != LM_OK || (n = malloc(sizeof(*n) + len + 1)) == NULL)
		return NULL;
	memcpy(n->id, id, len + 1);
	n->hash = h;
	n->df = 0;
	n->refs = 0;
	n->sym = s->n_free > 0 ? s->free_syms[--s->n_free] : s->nsym++;
	s->by_sym[n->sym] = n;
	n->next = s->buckets[h & (s->nbuckets - 1)];
	s->buckets[h & (s->nbuckets - 1)] = n;
	s->nnodes++;
	return n;
}

/* Frees n when nothing counts or references it any more. */
static void
df_node_release(lm_skill_stats *s, struct df_node *n)
{
	struct df_node **pp;

	if (n->df > 0 || n->refs > 0)
		return;
	for (pp = &s->buckets[n->hash & (s->nbuckets - 1)]; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	s->by_sym[n->sym] = NULL;
	s->free_syms[s->n_free++] = n->sym; /* room: n_free < nsym <= sym_cap */
	s->nnodes--;
	free(n);
}

/* The node of id, created (df 0, refs 0) when missing; NULL when out of
 * memory. */
static struct df_node *
df_intern(lm_skill_stats *s, const char *id)
{
	uint64_t h = hash_str(id);
	struct df_node *n = df_find(s, id, h);

	if (n == NULL && (n = df_node_new(s, id, h)) != NULL)
		df_grow(s);
	return n;
}

/* The symbol of id, LM_SKILL_SYM_NONE when s does not know it. */
static uint32_t
sym_lookup(const lm_skill_stats *s, const char *id)
{
	const struct df_node *n;

	if (s == NULL || id == NULL || id[0] == '\0')
		return LM_SKILL_SYM_NONE;
	n = df_find(s, id, hash_str(id));
	return n == NULL ? LM_SKILL_SYM_NONE : n->sym;
}

/* idf from N and df; the one formula both scoring paths use. */
static double
idf_of(uint64_t docs, uint64_t df)
{
	return log(1.0 + (double) docs / (1.0 + (double) df));
}

/* ==== prepared records ===================================================== */

struct pskill {
	const char *id;
	const char *name; /* display name: the producer's, or the id */
	double w;         /* posting weight; 1 when unset */
	uint32_t ord;     /* position in the record, to keep the first of duplicates */
	uint32_t sym;     /* symbol in the prep's `bound` stats; NONE while unbound */
};

struct cskill {
	const char *id;
	double years; /* the most of any entry with this id */
	uint32_t sym; /* symbol in the prep's `bound` stats; NONE while unbound */
};

/* Sorted, unique lower-case tokens of a title, with a hash of each. */
struct tokset {
	char *buf; /* one allocation: the text, then tok, then h */
	const char **tok;
	uint64_t *h; /* h[k] = text_hash(tok[k], false) */
	size_t n;
};

/* A location as the scorer compares it, without reading the record: its
 * country case-folded and packed into 8 bytes, and a hash of its city. */
struct ploc {
	uint64_t country; /* the country's bytes, A-Z folded to a-z, zero padded */
	uint64_t city_h;  /* text_hash(city, true); 0 when city is NULL or "" */
	const char *city; /* NULL or "" when it has none */
};

#define PREP_LOCS   4 /* locations a prep holds packed */
#define COUNTRY_MAX 8 /* bytes of a country that packs */

/* A requirement group that is not NULL, with its usable skill ids (not NULL,
 * not empty) in the prep's gids[off .. off + n). */
struct pgroup {
	const Lunamatch__V1__RequirementGroup *g;
	size_t off, n;
	float min_years;  /* g->min_years_experience */
	bool needs_skill; /* g lists skill ids: one of them is required */
};

struct lm_posting_prep {
	const JobPosting *rec;
	struct pskill *skills; /* distinct ids, sorted by id */
	size_t n_skills;
	struct tokset title;
	bool has_country;
	struct pgroup *groups; /* the record's groups that are not NULL, in order */
	size_t n_groups;
	const char **gids; /* usable skill ids of the groups (borrowed from rec) */
	uint32_t *gsym;    /* their symbols in `bound`; NONE while unbound */
	size_t n_gids;
	lm_skill_stats *bound;
	lm_veto_key key; /* what the quick veto test reads, copied from rec */
	/* What scoring reads of rec, copied so that scoring a pair touches the
	 * record as little as possible. */
	struct ploc locs[PREP_LOCS]; /* when locs_packed */
	uint8_t n_locs;
	bool locs_packed;
	uint64_t cat_h, ind_h;   /* text_hash(category/industry, true); 0: none */
	const uint64_t *title_h; /* copies of title.h, in this allocation */
	int64_t posted_at;
	int64_t salary_top; /* annual_max, else annual_min; 0 without a salary */
	const char *category, *industry;
	const float *embedding;
	size_t n_embedding;
	float min_years;
	int32_t level, education;
	/* skills, groups, gids, gsym and title_h live in the same allocation. */
};

struct lm_profile_prep {
	const CandidateProfile *rec;
	struct cskill *skills; /* distinct ids, sorted by id */
	size_t n_skills;
	struct tokset *titles; /* tokens of each desired title that has any */
	size_t n_titles;
	size_t titles_cap; /* slots allocated in titles */
	bool has_country;
	lm_skill_stats *bound;       /* skills[i].sym are symbols of it */
	struct ploc locs[PREP_LOCS]; /* when locs_packed */
	uint8_t n_locs;
	bool locs_packed;
	/* text_hash(.., true) of career_goals' desired categories, then of its
	 * desired industries (0 for a NULL entry); in this allocation. */
	uint64_t *goal_h;
	/* The distinct significant tokens of the desired titles (title_word_
	 * significant), which NO_OVERLAP looks for in a posting's title: texts
	 * borrowed from titles[], hashes text_hash(tok, false). One allocation
	 * (sig_h, then sig_tok), owned by the prep; NULL when there are none. */
	uint64_t *sig_h;
	const char **sig_tok;
	size_t n_sig;
	lm_veto_key key; /* what the quick veto test reads, copied from rec */
};

/* lm_veto_key.flags */
#define KEY_CLOSED      0x01u /* posting: CLOSED */
#define KEY_HAS_COUNTRY 0x02u /* a location with a country */
#define KEY_EMP_ANY     0x04u /* profile: desired employment types are listed */
#define KEY_EMP_EXACT   0x08u /* ... and emp_mask holds all of them */
#define KEY_RELOCATE    0x10u /* profile: willing to relocate */

int
lm_skill_stats_add(lm_skill_stats *s, const lm_posting_prep *p)
{
	struct df_node **added;
	size_t nadded = 0;

	if (p->bound == s) { /* the nodes exist: referenced by the binding */
		for (size_t i = 0; i < p->n_skills; i++)
			s->by_sym[p->skills[i].sym]->df++;
		s->docs++;
		return LM_OK;
	}
	if (p->n_skills > 0 && (added = calloc(p->n_skills, sizeof(*added))) == NULL)
		return LM_ENOMEM;
	else if (p->n_skills == 0)
		added = NULL;
	for (size_t i = 0; i < p->n_skills; i++) {
		struct df_node *n = df_intern(s, p->skills[i].id);

		if (n == NULL)
			goto nomem;
		n->df++;
		added[nadded++] = n;
	}
	s->docs++;
	free(added);
	return LM_OK;
nomem:
	for (size_t i = 0; i < nadded; i++) {
		added[i]->df--;
		df_node_release(s, added[i]);
	}
	free(added);
	return LM_ENOMEM;
}

static void
df_uncount(lm_skill_stats *s, struct df_node *n)
{
	if (n == NULL)
		return;
	if (n->df > 0)
		n->df--;
	df_node_release(s, n);
}

void
lm_skill_stats_remove(lm_skill_stats *s, const lm_posting_prep *p)
{
	for (size_t i = 0; i < p->n_skills; i++)
		df_uncount(s, p->bound == s ? s->by_sym[p->skills[i].sym]
		                            : df_find(s, p->skills[i].id,
		                                  hash_str(p->skills[i].id)));
	if (s->docs > 0)
		s->docs--;
}

uint64_t
lm_skill_stats_docs(const lm_skill_stats *s)
{
	return s == NULL ? 0 : s->docs;
}

uint64_t
lm_skill_stats_df(const lm_skill_stats *s, const char *skill_id)
{
	const struct df_node *n;

	if (s == NULL || skill_id == NULL)
		return 0;
	n = df_find(s, skill_id, hash_str(skill_id));
	return n == NULL ? 0 : n->df;
}

double
lm_skill_idf(const lm_skill_stats *s, const char *skill_id)
{
	if (s == NULL || s->docs == 0)
		return 1.0;
	return idf_of(s->docs, lm_skill_stats_df(s, skill_id));
}

size_t
lm_skill_stats_symbols(const lm_skill_stats *s)
{
	return s == NULL ? 0 : s->nnodes;
}

/* The i-th id or symbol of an array (of structs) with the given stride. */
static const char *
id_at(const char *const *ids, size_t stride, size_t i)
{
	return *(const char *const *) (const void *) ((const char *) ids + i * stride);
}

static uint32_t *
sym_at(uint32_t *syms, size_t stride, size_t i)
{
	return (uint32_t *) (void *) ((char *) syms + i * stride);
}

/* Takes a reference on the node of each of n ids (creating it) and stores
 * its symbol; on failure takes none. The i-th id is at ids + i * id_stride,
 * its symbol at syms + i * sym_stride (bytes: arrays or arrays of structs). */
static int
syms_bind(lm_skill_stats *s, const char *const *ids, size_t id_stride, uint32_t *syms,
    size_t sym_stride, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct df_node *d = df_intern(s, id_at(ids, id_stride, i));

		if (d == NULL) {
			while (i-- > 0) {
				d = s->by_sym[*sym_at(syms, sym_stride, i)];
				d->refs--;
				df_node_release(s, d);
				*sym_at(syms, sym_stride, i) = LM_SKILL_SYM_NONE;
			}
			return LM_ENOMEM;
		}
		d->refs++;
		*sym_at(syms, sym_stride, i) = d->sym;
	}
	return LM_OK;
}

static void
syms_unbind(lm_skill_stats *s, uint32_t *syms, size_t sym_stride, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct df_node *d = s->by_sym[*sym_at(syms, sym_stride, i)];
		d->refs--;
		df_node_release(s, d);
		*sym_at(syms, sym_stride, i) = LM_SKILL_SYM_NONE;
	}
}

int
lm_posting_prep_bind(lm_posting_prep *p, lm_skill_stats *s)
{
	int rc;

	if (p == NULL || s == NULL || p->bound != NULL)
		return LM_EINVAL;
	if (p->n_skills > 0 &&
	    (rc = syms_bind(s, &p->skills[0].id, sizeof(*p->skills), &p->skills[0].sym,
	         sizeof(*p->skills), p->n_skills)) != LM_OK)
		return rc;
	if (p->n_gids > 0 && (rc = syms_bind(s, p->gids, sizeof(*p->gids), p->gsym,
	                          sizeof(*p->gsym), p->n_gids)) != LM_OK) {
		if (p->n_skills > 0)
			syms_unbind(
			    s, &p->skills[0].sym, sizeof(*p->skills), p->n_skills);
		return rc;
	}
	p->bound = s;
	return LM_OK;
}

void
lm_posting_prep_unbind(lm_posting_prep *p)
{
	if (p == NULL || p->bound == NULL)
		return;
	if (p->n_skills > 0)
		syms_unbind(p->bound, &p->skills[0].sym, sizeof(*p->skills), p->n_skills);
	if (p->n_gids > 0)
		syms_unbind(p->bound, p->gsym, sizeof(*p->gsym), p->n_gids);
	p->bound = NULL;
}

int
lm_profile_prep_bind(lm_profile_prep *c, lm_skill_stats *s)
{
	int rc;

	if (c == NULL || s == NULL || c->bound != NULL)
		return LM_EINVAL;
	if (c->n_skills > 0 &&
	    (rc = syms_bind(s, &c->skills[0].id, sizeof(*c->skills), &c->skills[0].sym,
	         sizeof(*c->skills), c->n_skills)) != LM_OK)
		return rc;
	c->bound = s;
	return LM_OK;
}

void
lm_profile_prep_unbind(lm_profile_prep *c)
{
	if (c == NULL || c->bound == NULL)
		return;
	if (c->n_skills > 0)
		syms_unbind(c->bound, &c->skills[0].sym, sizeof(*c->skills), c->n_skills);
	c->bound = NULL;
}

/* A 64-bit hash of text; fold: A-Z count as a-z (strcasecmp in the C
 * locale, which the services run in: equal strings under strcasecmp have
 * equal folded hashes). Never 0, so that 0 can mean "no text". */
static uint64_t
text_hash(const char *text, bool fold)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a, then a final mix */

	for (const unsigned char *c = (const unsigned char *) text; *c != '\0'; c++) {
		h ^= (uint64_t) ((fold && *c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h != 0 ? h : 1;
}

/* strcasecmp(a, b) == 0 for texts whose folded hashes are ha and hb. */
static bool
text_caseeq(const char *a, uint64_t ha, const char *b, uint64_t hb)
{
	return ha == hb && strcasecmp(a, b) == 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static bool
is_tok_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '#' || c >= 0x80;
}

/* Splits text into sorted unique lower-case tokens (see LM_TITLE_TOKENS_MAX,
 * LM_TITLE_TOKEN_MAX). An empty result allocates nothing; otherwise one
 * allocation holds exactly the text, tok and h. */
static int
tokenize(const char *text, struct tokset *ts)
{
	size_t len = text ? strnlen(text, TITLE_SCAN_MAX) : 0, n = 0, w = 0, room;
	size_t off[LM_TITLE_TOKENS_MAX];
	const char *tok[LM_TITLE_TOKENS_MAX];
	char *buf, *nb;

	memset(ts, 0, sizeof(*ts));
	if (len == 0)
		return LM_OK;
	if ((buf = malloc(len + LM_TITLE_TOKENS_MAX + 1)) == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < len && n < LM_TITLE_TOKENS_MAX;) {
		size_t start, tl = 0;

		while (i < len && !is_tok_byte((unsigned char) text[i]))
			i++;
		if (i >= len)
			break;
		start = w;
		while (i < len && is_tok_byte((unsigned char) text[i])) {
			unsigned char c = (unsigned char) text[i++];
			if (tl + 1 < LM_TITLE_TOKEN_MAX) {
				buf[w++] = (char) ((c >= 'A' && c <= 'Z') ? c + 32 : c);
				tl++;
			}
		}
		buf[w++] = '\0';
		tok[n++] = buf + start;
	}
	qsort(tok, n, sizeof(*tok), cmp_str);
	for (size_t i = 0; i < n; i++)
		if (ts->n == 0 || strcmp(tok[ts->n - 1], tok[i]) != 0)
			tok[ts->n++] = tok[i];
	if (ts->n == 0) {
		free(buf);
		return LM_OK;
	}
	for (size_t i = 0; i < ts->n; i++)
		off[i] = (size_t) (tok[i] - buf);
	room = (w + 7) & ~(size_t) 7;
	if ((nb = realloc(buf, room + ts->n * (sizeof(*ts->tok) + sizeof(*ts->h)))) ==
	    NULL) {
		free(buf);
		ts->n = 0;
		return LM_ENOMEM;
	}
	ts->buf = nb;
	ts->tok = (const char **) (void *) (nb + room);
	ts->h = (uint64_t *) (void *) (ts->tok + ts->n);
	for (size_t i = 0; i < ts->n; i++) {
		ts->tok[i] = nb + off[i];
		ts->h[i] = text_hash(ts->tok[i], false);
	}
	return LM_OK;
}

static void
tokset_clear(struct tokset *ts)
{
	free(ts->buf);
	memset(ts, 0, sizeof(*ts));
}

/* Whether the token t (hash th) is one of the n tokens whose hashes are
 * h[] (copies of ts->h) and texts ts->tok[]: the tokens' texts are read
 * only when a hash matches. */
static bool
tokset_has(const struct tokset *ts, const uint64_t *h, const char *t, uint64_t th)
{
	for (size_t k = 0; k < ts->n; k++)
		if (h[k] == th && strcmp(ts->tok[k], t) == 0)
			return true;
	return false;
}

/* Packs the locations of locs that have a country into out (at most
 * PREP_LOCS); returns false when they do not fit (more of them, or a longer
 * country): then the scorer compares the record's locations. */
static bool
pack_locs(
    Lunamatch__V1__Location *const *locs, size_t n, struct ploc *out, uint8_t *n_out)
{
	*n_out = 0;
	for (size_t i = 0; i < n; i++) {
		const Lunamatch__V1__Location *l = locs[i];
		struct ploc *pl;
		size_t len;

		if (l == NULL || l->country == NULL || l->country[0] == '\0')
			continue; /* never in common with anything */
		len = strlen(l->country);
		if (*n_out == PREP_LOCS || len > COUNTRY_MAX)
			return false;
		pl = &out[(*n_out)++];
		pl->country = 0;
		for (size_t k = 0; k < len; k++) {
			unsigned char c = (unsigned char) l->country[k];
			c = (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
			pl->country |= (uint64_t) c << (8 * k);
		}
		pl->city = l->city;
		pl->city_h = (l->city != NULL && l->city[0] != '\0')
		                 ? text_hash(l->city, true)
		                 : 0;
	}
	return true;
}

static bool
locs_have_country(Lunamatch__V1__Location **locs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (locs[i] != NULL && locs[i]->country != NULL &&
		    locs[i]->country[0] != '\0')
			return true;
	return false;
}

/* Total years of experience as the scorer counts them (finite, else 0). */
static double
rec_years(const CandidateProfile *c)
{
	double y = (double) c->years_experience;
	return isfinite(y) && y > 0 ? y : 0;
}

/*
 * A 64-bit summary of the countries of locs: one bit per country, chosen by
 * a hash of its ASCII-lower-cased text. When two records share a country
 * (strcasecmp equal), their masks share that bit; so disjoint masks prove
 * that they share none. A country with a byte above 0x7f (whose case
 * folding depends on the locale) sets every bit: nothing is proved.
 */
static uint64_t
country_mask(Lunamatch__V1__Location *const *locs, size_t n)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < n; i++) {
		const unsigned char *c;
		uint64_t h = 1469598103934665603ULL;

		if (locs[i] == NULL || locs[i]->country == NULL ||
		    locs[i]->country[0] == '\0')
			continue;
		for (c = (const unsigned char *) locs[i]->country; *c != '\0'; c++) {
			if (*c >= 0x80)
				return UINT64_MAX;
			h ^= (uint64_t) ((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
			h *= 1099511628211ULL;
		}
		h ^=
		    h >> 33; /* mix the bits: FNV's top bits barely vary for short text */
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 33;
		h *= 0xc4ceb9fe1a85ec53ULL;
		h ^= h >> 33;
		mask |= (uint64_t) 1 << (h >> 58);
	}
	return mask;
}

/* Collects the groups that are not NULL and their usable skill ids into
 * p->groups and p->gids, which have room for them (count_groups). */
static void
prep_groups(lm_posting_prep *p)
{
	const JobPosting *rec = p->rec;

	for (size_t i = 0; i < rec->n_requirement_groups; i++) {
		const Lunamatch__V1__RequirementGroup *g = rec->requirement_groups[i];
		struct pgroup *pg;

		if (g == NULL)
			continue;
		pg = &p->groups[p->n_groups++];
		pg->g = g;
		pg->off = p->n_gids;
		pg->min_years = g->min_years_experience;
		pg->needs_skill = g->n_skill_ids > 0;
		for (size_t k = 0; k < g->n_skill_ids; k++)
			if (g->skill_ids[k] != NULL && g->skill_ids[k][0] != '\0') {
				p->gsym[p->n_gids] = LM_SKILL_SYM_NONE;
				p->gids[p->n_gids++] = g->skill_ids[k];
			}
		pg->n = p->n_gids - pg->off;
	}
}

static int
cmp_pskill(const void *a, const void *b)
{
	const struct pskill *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	if (c != 0)
		return c;
	return x->ord < y->ord ? -1 : (x->ord > y->ord ? 1 : 0);
}

static int
cmp_cskill(const void *a, const void *b)
{
	return strcmp(((const struct cskill *) a)->id, ((const struct cskill *) b)->id);
}

static double
skill_weight(float w)
{
	return (isfinite(w) && w > 0) ? (double) w : 1.0;
}

int
lm_posting_prep_new(const JobPosting *rec, lm_posting_prep **out)
{
	lm_posting_prep *p;
	size_t n = 0, ng = 0, nid = 0, size;
	struct tokset title;
	char *at;

	*out = NULL;
	if (rec == NULL)
		return LM_EINVAL;
	for (size_t i = 0; i < rec->n_requirement_groups; i++) {
		if (rec->requirement_groups[i] == NULL)
			continue;
		ng++;
		nid += rec->requirement_groups[i]->n_skill_ids;
	}
	if (tokenize(rec->title, &title) != LM_OK)
		return LM_ENOMEM;
	/* One allocation: the prep, then skills, groups, title_h, gids and
	 * gsym (in the order of their alignment). */
	size = sizeof(*p) + rec->n_skills * sizeof(*p->skills) + ng * sizeof(*p->groups) +
	       title.n * sizeof(*p->title_h) +
	       nid * (sizeof(*p->gids) + sizeof(*p->gsym));
	if ((p = calloc(1, size)) == NULL) {
		tokset_clear(&title);
		return LM_ENOMEM;
	}
	p->title = title;
	at = (char *) (p + 1);
	p->skills = (struct pskill *) (void *) at;
	at += rec->n_skills * sizeof(*p->skills);
	p->groups = (struct pgroup *) (void *) at;
	at += ng * sizeof(*p->groups);
	p->title_h = (const uint64_t *) (void *) at;
	if (title.n > 0)
		memcpy(at, title.h, title.n * sizeof(*p->title_h));
	at += title.n * sizeof(*p->title_h);
	p->gids = (const char **) (void *) at;
	at += nid * sizeof(*p->gids);
	p->gsym = (uint32_t *) (void *) at;
	p->rec = rec;
	for (size_t i = 0; i < rec->n_skills; i++) {
		const Lunamatch__V1__PostingSkill *s = rec->skills[i];
		if (s == NULL || s->skill_id == NULL || s->skill_id[0] == '\0')
			continue;
		p->skills[n].id = s->skill_id;
		p->skills[n].name = (s->name && s->name[0]) ? s->name : s->skill_id;
		p->skills[n].w = skill_weight(s->weight);
		p->skills[n].ord = (uint32_t) i;
		p->skills[n].sym = LM_SKILL_SYM_NONE;
		n++;
	}
	/* Duplicates of an id: the first entry's name, the largest weight
	 * (entries of one id sort by their position in the record). */
	if (n > 1) {
		qsort(p->skills, n, sizeof(*p->skills), cmp_pskill);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (k > 0 && strcmp(p->skills[k - 1].id, p->skills[i].id) == 0) {
				if (p->skills[i].w > p->skills[k - 1].w)
					p->skills[k - 1].w = p->skills[i].w;
				continue;
			}
			p->skills[k++] = p->skills[i];
		}
		n = k;
	}
	p->n_skills = n;
	prep_groups(p);
	p->locs_packed = pack_locs(rec->locations, rec->n_locations, p->locs, &p->n_locs);
	p->cat_h =
	    (rec->category && rec->category[0]) ? text_hash(rec->category, true) : 0;
	p->ind_h =
	    (rec->industry && rec->industry[0]) ? text_hash(rec->industry, true) : 0;
	p->has_country = locs_have_country(rec->locations, rec->n_locations);
	p->key.country_mask = country_mask(rec->locations, rec->n_locations);
	p->key.expires_at = rec->expires_at;
	p->key.employment_type = (int32_t) rec->employment_type;
	p->key.remote = (int32_t) rec->remote;
	p->key.flags =
	    (p->has_country ? KEY_HAS_COUNTRY : 0) |
	    (rec->status == LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED
	            ? KEY_CLOSED
	            : 0);
	p->posted_at = rec->posted_at;
	if (rec->salary != NULL)
		p->salary_top = rec->salary->annual_max > 0 ? rec->salary->annual_max
		                                            : rec->salary->annual_min;
	p->category = rec->category;
	p->industry = rec->industry;
	p->embedding = rec->embedding;
	p->n_embedding = rec->n_embedding;
	p->min_years = rec->min_years_experience;
	p->level = (int32_t) rec->experience_level;
	p->education = (int32_t) rec->education;
	*out = p;
	return LM_OK;
}

void
lm_posting_prep_free(lm_posting_prep *p)
{
	if (p == NULL)
		return;
	lm_posting_prep_unbind(p);
	tokset_clear(&p->title);
	free(p); /* with skills, groups, gids and gsym */
}

const JobPosting *
lm_posting_prep_record(const lm_posting_prep *p)
{
	return p->rec;
}

/*
 * Title words that say nothing about the kind of work: connecting words,
 * and words of rank or level ("Senior", "Lead", "Manager", "II"). Sorted
 * (strcmp) for bsearch; tokens are lower case. Digits-only tokens ("2")
 * are levels too. Listed in docs/scoring.md (NO_OVERLAP).
 */
static const char *const title_fillers[] = {"a", "an", "and", "associate", "at", "chief",
    "director", "entry", "for", "head", "i", "ii", "iii", "in", "intern", "iv", "jr",
    "junior", "lead", "level", "manager", "mid", "of", "on", "or", "principal", "senior",
    "sr", "staff", "the", "to", "trainee", "v", "vp", "with"};

/* Whether a title token (lower case) names the kind of work: not a filler
 * word and not only digits. */
static bool
title_word_significant(const char *tok)
{
	const char *t = tok;

	while (*t >= '0' && *t <= '9')
		t++;
	if (*t == '\0')
		return false;
	return bsearch(&tok, title_fillers,
	           sizeof(title_fillers) / sizeof(title_fillers[0]),
	           sizeof(title_fillers[0]), cmp_str) == NULL;
}

/* Collects the distinct significant tokens of c->titles into c->sig_h and
 * c->sig_tok. Returns LM_OK or LM_ENOMEM. */
static int
prep_sig_tokens(lm_profile_prep *c)
{
	size_t total = 0;

	for (size_t i = 0; i < c->n_titles; i++)
		total += c->titles[i].n;
	if (total == 0)
		return LM_OK;
	if ((c->sig_h = malloc(total * (sizeof(*c->sig_h) + sizeof(*c->sig_tok)))) ==
	    NULL)
		return LM_ENOMEM;
	c->sig_tok = (const char **) (void *) (c->sig_h + total);
	for (size_t i = 0; i < c->n_titles; i++) {
		const struct tokset *ts = &c->titles[i];
		for (size_t k = 0; k < ts->n; k++) {
			bool seen = false;
			if (!title_word_significant(ts->tok[k]))
				continue;
			for (size_t j = 0; j < c->n_sig && !seen; j++)
				seen = c->sig_h[j] == ts->h[k] &&
				       strcmp(c->sig_tok[j], ts->tok[k]) == 0;
			if (seen)
				continue;
			c->sig_h[c->n_sig] = ts->h[k];
			c->sig_tok[c->n_sig++] = ts->tok[k];
		}
	}
	return LM_OK;
}

int
lm_profile_prep_new(const CandidateProfile *rec, lm_profile_prep **out)
{
	lm_profile_prep *c;
	const Lunamatch__V1__CareerGoals *g;
	size_t n = 0, ngoal;

	*out = NULL;
	if (rec == NULL)
		return LM_EINVAL;
	g = rec->career_goals;
	ngoal = g ? g->n_desired_categories + g->n_desired_industries : 0;

	/* One allocation: the prep, then skills, then goal_h. */
	if ((c = calloc(1, sizeof(*c) + rec->n_skills * sizeof(*c->skills) +
	                       ngoal * sizeof(*c->goal_h))) == NULL)
		return LM_ENOMEM;
	c->skills = (struct cskill *) (void *) (c + 1);
	c->goal_h = (uint64_t *) (void *) (c->skills + rec->n_skills);
	for (size_t i = 0; i < ngoal; i++) {
		const char *gs = i < g->n_desired_categories
		                     ? g->desired_categories[i]
		                     : g->desired_industries[i - g->n_desired_categories];
		c->goal_h[i] = gs != NULL ? text_hash(gs, true) : 0;
	}
	c->rec = rec;
	for (size_t i = 0; i < rec->n_skills; i++) {
		const Lunamatch__V1__CandidateSkill *s = rec->skills[i];
		if (s == NULL || s->skill_id == NULL || s->skill_id[0] == '\0')
			continue;
		c->skills[n].id = s->skill_id;
		c->skills[n].years = (isfinite(s->years) && s->years > 0) ? s->years : 0;
		c->skills[n].sym = LM_SKILL_SYM_NONE;
		n++;
	}
	if (n > 1) {
		qsort(c->skills, n, sizeof(*c->skills), cmp_cskill);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (k > 0 && strcmp(c->skills[k - 1].id, c->skills[i].id) == 0) {
				if (c->skills[i].years > c->skills[k - 1].years)
					c->skills[k - 1].years = c->skills[i].years;
				continue;
			}
			c->skills[k++] = c->skills[i];
		}
		n = k;
	}
	c->n_skills = n;
	if (rec->career_goals != NULL && rec->career_goals->n_desired_titles > 0) {
		size_t nt = rec->career_goals->n_desired_titles;
		if (nt > LM_DESIRED_TITLES_MAX)
			nt = LM_DESIRED_TITLES_MAX;
		if ((c->titles = calloc(nt, sizeof(*c->titles))) == NULL)
			goto nomem;
		c->titles_cap = nt;
		for (size_t i = 0; i < nt; i++) {
			if (tokenize(rec->career_goals->desired_titles[i],
			        &c->titles[c->n_titles]) != LM_OK)
				goto nomem;
			if (c->titles[c->n_titles].n > 0)
				c->n_titles++;
		}
		if (prep_sig_tokens(c) != LM_OK)
			goto nomem;
	}
	c->has_country = locs_have_country(rec->locations, rec->n_locations);
	c->locs_packed = pack_locs(rec->locations, rec->n_locations, c->locs, &c->n_locs);
	c->key.country_mask = country_mask(rec->locations, rec->n_locations);
	c->key.years = rec_years(rec);
	c->key.remote = (int32_t) rec->remote;
	c->key.flags =
	    (c->has_country ? KEY_HAS_COUNTRY : 0) |
	    (rec->willing_to_relocate ? KEY_RELOCATE : 0) |
	    (rec->n_desired_employment_types > 0 ? KEY_EMP_ANY | KEY_EMP_EXACT : 0);
	for (size_t i = 0; i < rec->n_desired_employment_types; i++) {
		int t = (int) rec->desired_employment_types[i];
		if (t >= 0 && t < 64)
			c->key.emp_mask |= (uint64_t) 1 << t;
		else
			c->key.flags &= ~KEY_EMP_EXACT;
	}
	*out = c;
	return LM_OK;
nomem:
	lm_profile_prep_free(c);
	return LM_ENOMEM;
}

void
lm_profile_prep_free(lm_profile_prep *c)
{
	if (c == NULL)
		return;
	lm_profile_prep_unbind(c);
	for (size_t i = 0; i < c->titles_cap; i++)
		tokset_clear(&c->titles[i]);
	free(c->titles);
	free(c->sig_h); /* with sig_tok */
	free(c);        /* with skills */
}

const CandidateProfile *
lm_profile_prep_record(const lm_profile_prep *c)
{
	return c->rec;
}

/* ==== filters ============================================================== */

struct lm_filters {
	const Lunamatch__V1__JobFilters *jobs; /* one of the two is set */
	const Lunamatch__V1__CandidateFilters *candidates;
	const char **exclude; /* sorted copy of the exclude_ids pointers */
	size_t n_exclude;
};

static int
filters_new(char **ids, size_t n, lm_filters **out)
{
	lm_filters *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return LM_ENOMEM;
	if (n > 0) {
		if ((f->exclude = calloc(n, sizeof(*f->exclude))) == NULL) {
			free(f);
			return LM_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			f->exclude[i] = ids[i] ? ids[i] : "";
		qsort(f->exclude, n, sizeof(*f->exclude), cmp_str);
		f->n_exclude = n;
	}
	*out = f;
	return LM_OK;
}

static int
check_list(const char *what, size_t n, char *err, size_t errlen)
{
	if (n > LM_FILTER_LIST_MAX) {
		snprintf(err, errlen, "filters.%s: %zu entries, at most %d allowed", what,
		    n, LM_FILTER_LIST_MAX);
		return LM_EINVAL;
	}
	return LM_OK;
}

int
lm_filters_for_jobs(
    const Lunamatch__V1__JobFilters *f, lm_filters **out, char *err, size_t errlen)
{
	int rc;

	*out = NULL;
	if (f == NULL)
		return LM_OK;
	if ((rc = check_list("countries", f->n_countries, err, errlen)) != LM_OK ||
	    (rc = check_list("employment_types", f->n_employment_types, err, errlen)) !=
	        LM_OK ||
	    (rc = check_list("categories", f->n_categories, err, errlen)) != LM_OK ||
	    (rc = check_list("exclude_ids", f->n_exclude_ids, err, errlen)) != LM_OK)
		return rc;
	if (!isfinite(f->min_annual_salary) || f->min_annual_salary < 0) {
		snprintf(err, errlen, "filters.min_annual_salary: must be a number >= 0");
		return LM_EINVAL;
	}
	if ((rc = filters_new(f->exclude_ids, f->n_exclude_ids, out)) != LM_OK)
		return rc;
	(*out)->jobs = f;
	return LM_OK;
}

int
lm_filters_for_candidates(
    const Lunamatch__V1__CandidateFilters *f, lm_filters **out, char *err, size_t errlen)
{
	int rc;

	*out = NULL;
	if (f == NULL)
		return LM_OK;
	if ((rc = check_list("countries", f->n_countries, err, errlen)) != LM_OK ||
	    (rc = check_list("employment_types", f->n_employment_types, err, errlen)) !=
	        LM_OK ||
	    (rc = check_list("exclude_ids", f->n_exclude_ids, err, errlen)) != LM_OK)
		return rc;
	if (!isfinite(f->min_years_experience) || f->min_years_experience < 0) {
		snprintf(
		    err, errlen, "filters.min_years_experience: must be a number >= 0");
		return LM_EINVAL;
	}
	if ((rc = filters_new(f->exclude_ids, f->n_exclude_ids, out)) != LM_OK)
		return rc;
	(*out)->candidates = f;
	return LM_OK;
}

void
lm_filters_free(lm_filters *f)
{
	if (f == NULL)
		return;
	free(f->exclude);
	free(f);
}

/* ==== names for humans ===================================================== */

static const char *
level_name(int v)
{
	static const char *const n[] = {"unspecified", "intern", "entry", "associate",
	    "mid", "senior", "lead", "director", "executive"};
	return (v >= 0 && v <= 8) ? n[v] : "unknown";
}

static const char *
education_name(int v)
{
	static const char *const n[] = {"unspecified", "no degree", "high school",
	    "associate degree", "bachelor", "master", "doctorate"};
	return (v >= 0 && v <= 6) ? n[v] : "unknown";
}

static const char *
remote_name(int v)
{
	static const char *const n[] = {"unspecified", "onsite", "hybrid", "remote"};
	return (v >= 0 && v <= 3) ? n[v] : "unknown";
}

static const char *
employment_name(int v)
{
	static const char *const n[] = {"unspecified", "full-time", "part-time",
	    "contract", "temporary", "internship"};
	return (v >= 0 && v <= 5) ? n[v] : "unknown";
}

/* ==== evaluation =========================================================== */

/* A hypothetical change to the candidate, for improvements. */
struct ovr {
	const char *add_skill; /* the candidate also has this skill id; or NULL */
	double years;          /* total years of experience; < 0: the record's */
	int education;         /* education level; 0: the record's */
};

static const struct ovr no_ovr = {NULL, -1, 0};

/* Where vetoes go when an explanation is built (collect mode). */
struct vsink {
	Explanation *e;
	int oom;
};

struct eval {
	double value[LM_FEAT_COUNT];
	bool present[LM_FEAT_COUNT];
	double wsum;  /* weights of the features present */
	double score; /* 0 when vetoed */
	bool eligible;
	bool detail; /* fill the detail strings below */
	char text[LM_FEAT_COUNT][LM_EXPLAIN_TEXT_MAX];
	/* skills feature, for explanations */
	double sk_tot; /* sum of weight * idf over the posting's skills */
	size_t sk_have;
};

static double
clamp01(double x)
{
	return x > 0 ? (x < 1 ? x : 1) : 0; /* NaN gives 0 */
}

/*
 * How a scan answers the skill questions of one pair (fast mode): by
 * symbols of the stats instead of by id strings. The candidate has symbol s
 * when mark[s] == stamp; idf[s] caches idf(s) for the scan (< 0: not yet).
 * Only used with no_ovr.
 */
struct fast {
	const uint32_t *psym; /* symbols of the posting's skills[]; NULL: skills[].sym */
	const uint32_t *gsym; /* symbols of the posting's gids[] */
	const uint32_t *mark;
	uint32_t stamp;
	double *idf;
	const lm_skill_stats *stats;
};

static bool
fast_has(const struct fast *fx, uint32_t sym)
{
	return sym != LM_SKILL_SYM_NONE && fx->mark[sym] == fx->stamp;
}

/* The same value as lm_skill_idf of the symbol's id. */
static double
fast_idf(const struct fast *fx, uint32_t sym)
{
	const lm_skill_stats *s = fx->stats;
	double v;

	if (s == NULL || s->docs == 0)
		return 1.0;
	if (sym == LM_SKILL_SYM_NONE)
		return idf_of(s->docs, 0);
	if ((v = fx->idf[sym]) < 0)
		v = fx->idf[sym] = idf_of(s->docs, s->by_sym[sym]->df);
	return v;
}

static bool
cand_has(const lm_profile_prep *c, const struct ovr *o, const char *id, double *years)
{
	struct cskill key = {id, 0, LM_SKILL_SYM_NONE};
	const struct cskill *s;

	if (o->add_skill != NULL && strcmp(o->add_skill, id) == 0) {
		if (years)
			*years = 0;
		return true;
	}
	if (c->n_skills == 0)
		return false;
	s = bsearch(&key, c->skills, c->n_skills, sizeof(*c->skills), cmp_cskill);
	if (s != NULL && years)
		*years = s->years;
	return s != NULL;
}

static double
cand_years(const CandidateProfile *c, const struct ovr *o)
{
	double y = o->years >= 0 ? o->years : (double) c->years_experience;
	return isfinite(y) && y > 0 ? y : 0;
}

static int
cand_education(const CandidateProfile *c, const struct ovr *o)
{
	return o->education > 0 ? o->education : (int) c->education;
}

/* Appends one veto (collect mode). Returns false in fast mode: the caller
 * stops at the first veto. */
static bool veto(struct vsink *vs, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool
veto(struct vsink *vs, const char *code, const char *fmt, ...)
{
	Lunamatch__V1__Veto *v, **arr;
	char reason[LM_EXPLAIN_TEXT_MAX];
	va_list ap;

	if (vs == NULL)
		return false;
	if (vs->oom)
		return true;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	arr = realloc(vs->e->vetoes, (vs->e->n_vetoes + 1) * sizeof(*arr));
	if (arr == NULL) {
		vs->oom = 1;
		return true;
	}
	vs->e->vetoes = arr;
	if ((v = malloc(sizeof(*v))) == NULL) {
		vs->oom = 1;
		return true;
	}
	lunamatch__v1__veto__init(v);
	arr[vs->e->n_vetoes++] = v;
	if ((v->code = strdup(code)) == NULL || (v->reason = strdup(reason)) == NULL)
		vs->oom = 1;
	return true;
}

static void
add_failed_group(struct vsink *vs, const char *label)
{
	char **arr;

	if (vs->oom)
		return;
	arr = realloc(vs->e->failed_requirement_groups,
	    (vs->e->n_failed_requirement_groups + 1) * sizeof(*arr));
	if (arr == NULL) {
		vs->oom = 1;
		return;
	}
	vs->e->failed_requirement_groups = arr;
	if ((arr[vs->e->n_failed_requirement_groups] = strdup(label)) == NULL)
		vs->oom = 1;
	else
		vs->e->n_failed_requirement_groups++;
}

/* The display text of a requirement group: its label, else its skills. */
static void
group_text(const Lunamatch__V1__RequirementGroup *g, char *buf, size_t len)
{
	size_t w = 0;

	if (g->label != NULL && g->label[0] != '\0') {
		snprintf(buf, len, "%s", g->label);
		return;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < g->n_skill_ids && w + 1 < len; i++) {
		const char *nm =
		    (g->n_skills == g->n_skill_ids && g->skills[i] && g->skills[i][0])
		        ? g->skills[i]
		        : g->skill_ids[i];
		int r = snprintf(buf + w, len - w, "%s%s", i ? ", " : "", nm ? nm : "");
		if (r < 0)
			break;
		w += (size_t) r;
	}
	if (w >= len)
		w = len - 1;
	if (w == 0)
		snprintf(buf, len, "requirement");
}

static bool
str_in(const char *s, char *const *list, size_t n)
{
	if (s == NULL || s[0] == '\0')
		return false;
	for (size_t i = 0; i < n; i++)
		if (list[i] != NULL && strcasecmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool
locs_in(Lunamatch__V1__Location *const *locs, size_t n, char *const *countries, size_t nc)
{
	for (size_t i = 0; i < n; i++)
		if (locs[i] != NULL && str_in(locs[i]->country, countries, nc))
			return true;
	return false;
}

static bool
excluded(const lm_filters *f, const char *id)
{
	return f->n_exclude > 0 && id != NULL &&
	       bsearch(&id, f->exclude, f->n_exclude, sizeof(*f->exclude), cmp_str) !=
	           NULL;
}

/* The request filters. Returns false when one fails in fast mode. */
static bool
check_filters(
    const lm_filters *f, const CandidateProfile *c, const JobPosting *p, struct vsink *vs)
{
	if (f == NULL)
		return true;
	if (f->jobs != NULL) {
		const Lunamatch__V1__JobFilters *jf = f->jobs;
		if (excluded(f, p->id) &&
		    !veto(vs, LM_VETO_FILTER, "filter: job excluded"))
			return false;
		if (jf->remote_only &&
		    p->remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
		    !veto(vs, LM_VETO_FILTER, "filter: remote jobs only; this one is %s",
		        remote_name(p->remote)))
			return false;
		if (jf->n_countries > 0 &&
		    !locs_in(
		        p->locations, p->n_locations, jf->countries, jf->n_countries) &&
		    !veto(vs, LM_VETO_FILTER,
		        "filter: no job location in the requested countries"))
			return false;
		if (jf->min_annual_salary > 0) {
			int64_t top = 0;
			if (p->salary != NULL)
				top = p->salary->annual_max > 0 ? p->salary->annual_max
				                                : p->salary->annual_min;
			if ((double) top < jf->min_annual_salary &&
			    !veto(vs, LM_VETO_FILTER,
			        top > 0 ? "filter: pays at most %.0f a year, below %.0f"
			                : "filter: salary unknown (%.0f), minimum %.0f "
			                  "requested",
			        (double) top, jf->min_annual_salary))
				return false;
		}
		if (jf->n_employment_types > 0) {
			bool ok = false;
			for (size_t i = 0; i < jf->n_employment_types; i++)
				ok = ok || (p->employment_type != 0 &&
				               (int) jf->employment_types[i] ==
				                   (int) p->employment_type);
			if (!ok && !veto(vs, LM_VETO_FILTER,
			               "filter: employment type %s not requested",
			               employment_name(p->employment_type)))
				return false;
		}
		if (jf->n_categories > 0 &&
		    !str_in(p->category, jf->categories, jf->n_categories) &&
		    !veto(vs, LM_VETO_FILTER, "filter: category not requested"))
			return false;
		if (jf->posted_after > 0 && p->posted_at < jf->posted_after &&
		    !veto(vs, LM_VETO_FILTER, "filter: posted before the requested date"))
			return false;
	}
	if (f->candidates != NULL) {
		const Lunamatch__V1__CandidateFilters *cf = f->candidates;
		if (excluded(f, c->id) &&
		    !veto(vs, LM_VETO_FILTER, "filter: candidate excluded"))
			return false;
		if (cf->n_countries > 0 &&
		    !locs_in(
		        c->locations, c->n_locations, cf->countries, cf->n_countries) &&
		    !veto(vs, LM_VETO_FILTER,
		        "filter: no preferred location in the requested countries"))
			return false;
		if (cf->min_years_experience > 0 &&
		    !((double) c->years_experience >=
		        (double) cf->min_years_experience) &&
		    !veto(vs, LM_VETO_FILTER,
		        "filter: %.1f years of experience, %.1f requested",
		        (double) c->years_experience, (double) cf->min_years_experience))
			return false;
		if (cf->n_employment_types > 0 && c->n_desired_employment_types > 0) {
			bool ok = false;
			for (size_t i = 0; i < cf->n_employment_types; i++)
				for (size_t j = 0; j < c->n_desired_employment_types; j++)
					ok = ok || cf->employment_types[i] ==
					               c->desired_employment_types[j];
			if (!ok && !veto(vs, LM_VETO_FILTER,
			               "filter: candidate accepts none of the requested "
			               "employment types"))
				return false;
		}
		if (cf->remote_only &&
		    c->remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
		    !veto(vs, LM_VETO_FILTER,
		        "filter: candidates preferring remote work only"))
			return false;
	}
	return true;
}

/* Whether text (folded hash h, 0: no text) equals one of the n goals
 * case-insensitively; goal_h[i] is text_hash(goals[i], true). The category
 * and industry parts of career_goals, and NO_OVERLAP, ask this. */
static bool
goal_hit(
    const char *text, uint64_t h, char *const *goals, size_t n, const uint64_t *goal_h)
{
	if (h == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (goals[i] != NULL && text_caseeq(text, h, goals[i], goal_h[i]))
			return true;
	return false;
}

/* Whether the candidate has one of the posting's skills or one of the
 * skill ids of its requirement groups. */
static bool
shares_skill(const lm_profile_prep *cp, const lm_posting_prep *pp, const struct ovr *o,
    const struct fast *fx)
{
	if (fx != NULL) {
		for (size_t i = 0; i < pp->n_skills; i++)
			if (fast_has(
			        fx, fx->psym != NULL ? fx->psym[i] : pp->skills[i].sym))
				return true;
		for (size_t k = 0; k < pp->n_gids; k++)
			if (fast_has(fx, fx->gsym[k]))
				return true;
		return false;
	}
	for (size_t i = 0; i < pp->n_skills; i++)
		if (cand_has(cp, o, pp->skills[i].id, NULL))
			return true;
	for (size_t k = 0; k < pp->n_gids; k++)
		if (cand_has(cp, o, pp->gids[k], NULL))
			return true;
	return false;
}

/* Whether the candidate's career goals point at the role: a desired
 * category is the posting's category, or a significant word of a desired
 * title is in the posting's title. Industries do not count: an industry is
 * the employer's sector, not the work. */
static bool
goals_point(const lm_profile_prep *cp, const lm_posting_prep *pp)
{
	const Lunamatch__V1__CareerGoals *g = cp->rec->career_goals;

	if (g == NULL)
		return false;
	if (goal_hit(pp->category, pp->cat_h, g->desired_categories,
	        g->n_desired_categories, cp->goal_h))
		return true;
	for (size_t k = 0; k < cp->n_sig; k++)
		if (tokset_has(&pp->title, pp->title_h, cp->sig_tok[k], cp->sig_h[k]))
			return true;
	return false;
}

/* The NO_OVERLAP veto: the posting lists skills (its own or its groups'),
 * the candidate has none of them, and the goals do not point at the role. */
static bool
no_overlap(const lm_profile_prep *cp, const lm_posting_prep *pp, const struct ovr *o,
    const struct fast *fx)
{
	return (pp->n_skills > 0 || pp->n_gids > 0) && !shares_skill(cp, pp, o, fx) &&
	       !goals_point(cp, pp);
}

/* The hard filters. Returns false at the first veto in fast mode (vs NULL);
 * in collect mode records every veto and returns whether none applied. */
static bool
check_vetoes(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct ovr *o, const struct fast *fx,
    struct vsink *vs)
{
	const CandidateProfile *c = cp->rec;
	const JobPosting *p = pp->rec;
	size_t before = vs ? vs->e->n_vetoes : 0;
	char gtext[LM_EXPLAIN_TEXT_MAX];

	/* Scalars of p are read from pp's copies (the same values). */
	if ((pp->key.flags & KEY_CLOSED) &&
	    !veto(vs, LM_VETO_POSTING_CLOSED, "the posting is closed"))
		return false;
	if (pp->key.expires_at != 0 && pp->key.expires_at <= env->now &&
	    !veto(vs, LM_VETO_POSTING_EXPIRED, "the posting expired"))
		return false;
	for (size_t i = 0; i < pp->n_groups; i++) {
		const struct pgroup *pg = &pp->groups[i];
		const Lunamatch__V1__RequirementGroup *g = pg->g;
		bool skill_ok = !pg->needs_skill, years_ok;
		double y = cand_years(c, o);

		for (size_t k = 0; k < pg->n && !skill_ok; k++)
			skill_ok = fx != NULL
			               ? fast_has(fx, fx->gsym[pg->off + k])
			               : cand_has(cp, o, pp->gids[pg->off + k], NULL);
		years_ok = !(isfinite(pg->min_years) && pg->min_years > 0 &&
		             y < (double) pg->min_years);
		if (skill_ok && years_ok)
			continue;
		if (vs == NULL)
			return false;
		group_text(g, gtext, sizeof(gtext));
		if (!skill_ok && !years_ok)
			veto(vs, LM_VETO_REQUIREMENT_GROUP,
			    "requires one of: %s, and %.1f years of experience (has "
			    "%.1f)",
			    gtext, (double) pg->min_years, y);
		else if (!skill_ok)
			veto(vs, LM_VETO_REQUIREMENT_GROUP, "requires one of: %s", gtext);
		else
			veto(vs, LM_VETO_REQUIREMENT_GROUP,
			    "%s: requires %.1f years of experience (has %.1f)", gtext,
			    (double) pg->min_years, y);
		add_failed_group(vs, gtext);
	}
	if (c->n_desired_employment_types > 0 && pp->key.employment_type != 0) {
		bool ok = false;
		for (size_t i = 0; i < c->n_desired_employment_types; i++)
			ok = ok || (int32_t) c->desired_employment_types[i] ==
			               pp->key.employment_type;
		if (!ok &&
		    !veto(vs, LM_VETO_EMPLOYMENT_TYPE,
		        "the job is %s; the candidate wants other employment types",
		        employment_name(pp->key.employment_type)))
			return false;
	}
	if (c->remote == LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
	    pp->key.remote == LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE &&
	    !veto(
	        vs, LM_VETO_REMOTE_POLICY, "onsite job; the candidate wants remote work"))
		return false;
	if (pp->key.remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
	    pp->has_country && cp->has_country && !c->willing_to_relocate) {
		bool common = false;
		if (pp->locs_packed && cp->locs_packed)
			for (size_t i = 0; i < pp->n_locs && !common; i++)
				for (size_t j = 0; j < cp->n_locs && !common; j++)
					common =
					    pp->locs[i].country == cp->locs[j].country;
		else
			for (size_t i = 0; i < p->n_locations && !common; i++)
				if (p->locations[i] != NULL)
					for (size_t j = 0; j < c->n_locations && !common;
					     j++)
						common =
						    c->locations[j] != NULL &&
						    str_in(p->locations[i]->country,
						        &c->locations[j]->country, 1);
		if (!common &&
		    !veto(vs, LM_VETO_LOCATION,
		        "no job location in the candidate's countries, and the "
		        "candidate does not relocate"))
			return false;
	}
	if (no_overlap(cp, pp, o, fx) &&
	    !veto(vs, LM_VETO_NO_OVERLAP,
	        "no skill in common with the posting, and the role is not among the "
	        "career goals"))
		return false;
	if (!check_filters(env->filters, c, p, vs))
		return false;
	return vs == NULL || vs->e->n_vetoes == before;
}

/* Remote-policy fit [posting][candidate], both specified. */
static const double remote_fit[4][4] = {
    {0, 0, 0, 0}, {0, 1.0, 0.5, 0.0}, /* posting onsite */
    {0, 0.75, 1.0, 0.5},              /* posting hybrid */
    {0, 0.5, 0.75, 1.0},              /* posting remote */
};

#define DETAIL(ev, f, ...)                                                               \
	do {                                                                             \
		if ((ev)->detail)                                                        \
			snprintf((ev)->text[f], sizeof((ev)->text[f]), __VA_ARGS__);     \
	} while (0)

static void
feat_skills(const lm_score_env *env, const lm_profile_prep *cp, const lm_posting_prep *pp,
    const struct ovr *o, const struct fast *fx, struct eval *ev)
{
	double tot = 0, have = 0;
	size_t nh = 0;

	/* Both paths add the same products in the same order (skills[] order). */
	if (fx != NULL) {
		for (size_t i = 0; i < pp->n_skills; i++) {
			uint32_t sym = fx->psym != NULL ? fx->psym[i] : pp->skills[i].sym;
			double imp = pp->skills[i].w * fast_idf(fx, sym);
			tot += imp;
			if (fast_has(fx, sym)) {
				have += imp;
				nh++;
			}
		}
	} else {
		for (size_t i = 0; i < pp->n_skills; i++) {
			double imp =
			    pp->skills[i].w * lm_skill_idf(env->stats, pp->skills[i].id);
			tot += imp;
			if (cand_has(cp, o, pp->skills[i].id, NULL)) {
				have += imp;
				nh++;
			}
		}
	}
	ev->sk_tot = tot;
	ev->sk_have = nh;
	if (pp->n_skills == 0 || !(tot > 0))
		return;
	ev->present[LM_FEAT_SKILLS] = true;
	ev->value[LM_FEAT_SKILLS] = clamp01(have / tot);
	DETAIL(ev, LM_FEAT_SKILLS, "%zu of %zu skills, %.0f%% of importance", nh,
	    pp->n_skills, 100.0 * ev->value[LM_FEAT_SKILLS]);
}

static void
feat_experience(const CandidateProfile *c, const lm_posting_prep *p, const struct ovr *o,
    struct eval *ev)
{
	double need = p->min_years, y = cand_years(c, o);

	if (!(isfinite(need) && need > 0))
		return;
	ev->present[LM_FEAT_EXPERIENCE] = true;
	ev->value[LM_FEAT_EXPERIENCE] = y >= need ? 1.0 : clamp01(y / need);
	DETAIL(ev, LM_FEAT_EXPERIENCE, "%.1f years of experience, %.1f wanted", y, need);
}

static void
feat_seniority(const lm_model *m, const CandidateProfile *c, const lm_posting_prep *p,
    struct eval *ev)
{
	int a = (int) c->experience_level, b = (int) p->level, d;

	if (a < 1 || a > 8 || b < 1 || b > 8)
		return;
	d = a > b ? a - b : b - a;
	ev->present[LM_FEAT_SENIORITY] = true;
	ev->value[LM_FEAT_SENIORITY] = clamp01(1.0 - d * m->params.seniority_step);
	if (d == 0)
		DETAIL(ev, LM_FEAT_SENIORITY, "same level (%s)", level_name(b));
	else
		DETAIL(ev, LM_FEAT_SENIORITY, "candidate %s, job %s: %d level%s apart",
		    level_name(a), level_name(b), d, d == 1 ? "" : "s");
}

static void
feat_salary(const lm_model *m, const CandidateProfile *c, const lm_posting_prep *p,
    struct eval *ev)
{
	int64_t top, want;

	if (p->salary_top <= 0 || c->desired_salary == NULL)
		return; /* salary_top is 0 when the posting has no salary */
	top = p->salary_top;
	want = c->desired_salary->annual_min;
	if (top <= 0 || want <= 0)
		return;
	ev->present[LM_FEAT_SALARY] = true;
	if (want <= top) {
		ev->value[LM_FEAT_SALARY] = 1.0;
		DETAIL(ev, LM_FEAT_SALARY, "desired %lld a year, job pays up to %lld",
		    (long long) want, (long long) top);
	} else {
		double excess = (double) (want - top) / (double) top;
		ev->value[LM_FEAT_SALARY] =
		    clamp01(pow(0.5, excess / m->params.salary_half_excess));
		DETAIL(ev, LM_FEAT_SALARY,
		    "desired %lld a year is %.0f%% above the job's %lld",
		    (long long) want, 100.0 * excess, (long long) top);
	}
}

static void
feat_location(const lm_model *m, const lm_profile_prep *cp, const lm_posting_prep *pp,
    struct eval *ev)
{
	const CandidateProfile *c = cp->rec;
	const JobPosting *p = pp->rec;
	double sum = 0;
	int parts = 0;
	char a[LM_EXPLAIN_TEXT_MAX / 2] = "", b[LM_EXPLAIN_TEXT_MAX / 2] = "";

	int prem = pp->key.remote;

	if (prem >= 1 && prem <= 3 && c->remote >= 1 && c->remote <= 3) {
		sum += remote_fit[prem][c->remote];
		parts++;
		if (ev->detail)
			snprintf(a, sizeof(a), "%s job, prefers %s", remote_name(prem),
			    remote_name(c->remote));
	}
	if (prem != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
	    pp->has_country && cp->has_country) {
		double best = 0;
		/* best is a maximum: the order of the pairs does not matter. */
		if (pp->locs_packed && cp->locs_packed) {
			for (size_t i = 0; i < pp->n_locs; i++) {
				const struct ploc *pl = &pp->locs[i];
				for (size_t j = 0; j < cp->n_locs; j++) {
					const struct ploc *cl = &cp->locs[j];
					double v;
					if (pl->country != cl->country)
						continue;
					v = (pl->city_h != 0 && cl->city_h != 0 &&
					        !text_caseeq(pl->city, pl->city_h,
					            cl->city, cl->city_h))
					        ? m->params.location_country_credit
					        : 1.0;
					if (v > best)
						best = v;
				}
			}
		} else
			for (size_t i = 0; i < p->n_locations; i++) {
				const Lunamatch__V1__Location *pl = p->locations[i];
				if (pl == NULL)
					continue;
				for (size_t j = 0; j < c->n_locations; j++) {
					const Lunamatch__V1__Location *cl =
					    c->locations[j];
					double v;
					if (cl == NULL ||
					    !str_in(pl->country, &cl->country, 1))
						continue;
					v = (pl->city && pl->city[0] && cl->city &&
					        cl->city[0] &&
					        strcasecmp(pl->city, cl->city) != 0)
					        ? m->params.location_country_credit
					        : 1.0;
					if (v > best)
						best = v;
				}
			}
		if (best == 0 && c->willing_to_relocate)
			best = m->params.relocate_credit;
		sum += best;
		parts++;
		if (ev->detail)
			snprintf(b, sizeof(b), "%s",
			    best == 1.0                                 ? "same place"
			    : best == m->params.location_country_credit ? "same country"
			    : best > 0 ? "needs relocation"
			               : "no common country");
	}
	if (parts == 0)
		return;
	ev->present[LM_FEAT_LOCATION] = true;
	ev->value[LM_FEAT_LOCATION] = clamp01(sum / parts);
	DETAIL(ev, LM_FEAT_LOCATION, "%s%s%s", a, (a[0] && b[0]) ? "; " : "", b);
}

static void
feat_education(const lm_model *m, const CandidateProfile *c, const lm_posting_prep *p,
    const struct ovr *o, struct eval *ev)
{
	int need = (int) p->education, have = cand_education(c, o);

	if (need < 1 || need > 6 || have < 1 || have > 6)
		return;
	ev->present[LM_FEAT_EDUCATION] = true;
	if (have >= need) {
		ev->value[LM_FEAT_EDUCATION] = 1.0;
		DETAIL(ev, LM_FEAT_EDUCATION, "%s meets %s", education_name(have),
		    education_name(need));
	} else {
		ev->value[LM_FEAT_EDUCATION] =
		    clamp01(1.0 - (need - have) * m->params.education_step);
		DETAIL(ev, LM_FEAT_EDUCATION, "%s, %d level%s below %s",
		    education_name(have), need - have, need - have == 1 ? "" : "s",
		    education_name(need));
	}
}

static void
feat_career(const lm_profile_prep *cp, const lm_posting_prep *pp, struct eval *ev)
{
	const Lunamatch__V1__CareerGoals *g = cp->rec->career_goals;
	const lm_posting_prep *p = pp; /* category and industry: copies of rec's */
	double sum = 0, best = 0;
	int parts = 0;
	char t1[64] = "", t2[64] = "", t3[64] = "";

	if (g == NULL)
		return;
	if (cp->n_titles > 0 && pp->title.n > 0) {
		for (size_t i = 0; i < cp->n_titles; i++) {
			size_t hit = 0;
			for (size_t k = 0; k < cp->titles[i].n; k++)
				hit += tokset_has(&pp->title, pp->title_h,
				    cp->titles[i].tok[k], cp->titles[i].h[k]);
			double v = (double) hit / (double) cp->titles[i].n;
			if (v > best)
				best = v;
		}
		sum += best;
		parts++;
		if (ev->detail)
			snprintf(t1, sizeof(t1), "title %.0f%% like a desired one",
			    100.0 * best);
	}
	if (g->n_desired_categories > 0 && p->cat_h != 0) {
		bool hit = goal_hit(p->category, p->cat_h, g->desired_categories,
		    g->n_desired_categories, cp->goal_h);
		sum += hit;
		parts++;
		if (ev->detail)
			snprintf(t2, sizeof(t2), "category %s",
			    hit ? "desired" : "not desired");
	}
	if (g->n_desired_industries > 0 && p->ind_h != 0) {
		bool hit = goal_hit(p->industry, p->ind_h, g->desired_industries,
		    g->n_desired_industries, cp->goal_h + g->n_desired_categories);
		sum += hit;
		parts++;
		if (ev->detail)
			snprintf(t3, sizeof(t3), "industry %s",
			    hit ? "desired" : "not desired");
	}
	if (parts == 0)
		return;
	ev->present[LM_FEAT_CAREER_GOALS] = true;
	ev->value[LM_FEAT_CAREER_GOALS] = clamp01(sum / parts);
	DETAIL(ev, LM_FEAT_CAREER_GOALS, "%s%s%s%s%s", t1,
	    (t1[0] && (t2[0] || t3[0])) ? "; " : "", t2, (t2[0] && t3[0]) ? "; " : "",
	    t3);
}

static void
feat_freshness(const lm_model *m, const lm_posting_prep *p, int64_t now, struct eval *ev)
{
	double days;

	if (p->posted_at <= 0)
		return;
	days = now > p->posted_at ? (double) (now - p->posted_at) / 86400.0 : 0.0;
	ev->present[LM_FEAT_FRESHNESS] = true;
	ev->value[LM_FEAT_FRESHNESS] =
	    clamp01(pow(0.5, days / m->params.freshness_half_life_days));
	DETAIL(ev, LM_FEAT_FRESHNESS, "posted %.0f day%s ago", floor(days),
	    floor(days) == 1 ? "" : "s");
}

static void
feat_semantic(const CandidateProfile *c, const lm_posting_prep *p, struct eval *ev)
{
	double dot = 0, na = 0, nb = 0, cosv;

	if (c->n_embedding == 0 || c->n_embedding != p->n_embedding)
		return;
	for (size_t i = 0; i < c->n_embedding; i++) {
		double a = c->embedding[i], b = p->embedding[i];
		dot += a * b;
		na += a * a;
		nb += b * b;
	}
	if (!(na > 0) || !(nb > 0))
		return;
	cosv = dot / sqrt(na * nb);
	if (!isfinite(cosv))
		return;
	cosv = cosv > 1 ? 1 : (cosv < -1 ? -1 : cosv);
	ev->present[LM_FEAT_SEMANTIC] = true;
	ev->value[LM_FEAT_SEMANTIC] = clamp01((cosv + 1.0) / 2.0);
	DETAIL(ev, LM_FEAT_SEMANTIC, "embedding cosine %.2f", cosv);
}

/*
 * Evaluates a pair. Fast mode (vs NULL): stops at the first veto with score
 * 0. Collect mode: records every veto in vs and computes every feature even
 * when vetoed (for the explanation); the score is still 0 when vetoed.
 */
static void
evaluate(const lm_score_env *env, const lm_profile_prep *cp, const lm_posting_prep *pp,
    const struct ovr *o, const struct fast *fx, struct vsink *vs, struct eval *ev)
{
	const lm_model *m = env->model;
	double num = 0;

	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		ev->present[f] = false;
		ev->value[f] = 0;
		ev->text[f][0] = '\0';
	}
	ev->score = 0;
	ev->wsum = 0;
	ev->sk_tot = 0;
	ev->sk_have = 0;
	ev->eligible = check_vetoes(env, cp, pp, o, fx, vs);
	if (!ev->eligible && vs == NULL)
		return;

	feat_skills(env, cp, pp, o, fx, ev);
	feat_experience(cp->rec, pp, o, ev);
	feat_seniority(m, cp->rec, pp, ev);
	feat_salary(m, cp->rec, pp, ev);
	feat_location(m, cp, pp, ev);
	feat_education(m, cp->rec, pp, o, ev);
	feat_career(cp, pp, ev);
	feat_freshness(m, pp, env->now, ev);
	feat_semantic(cp->rec, pp, ev);

	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		if (!ev->present[f] || !(m->weights[f] > 0))
			continue;
		num += m->weights[f] * ev->value[f];
		ev->wsum += m->weights[f];
	}
	if (ev->eligible && ev->wsum > 0)
		ev->score = clamp01(num / ev->wsum);
}

double
lm_score_pair(const lm_score_env *env, const lm_profile_prep *c, const lm_posting_prep *p,
    bool *eligible)
{
	struct eval ev;

	ev.detail = false;
	evaluate(env, c, p, &no_ovr, NULL, NULL, &ev);
	if (eligible != NULL)
		*eligible = ev.eligible;
	return ev.score;
}

/* ==== scans ================================================================ */

struct lm_scan {
	lm_score_env env;
	const lm_profile_prep *cp; /* the subject: a profile ... */
	const lm_posting_prep *pp; /* ... or a posting */
	const lm_skill_stats *stats;
	uint32_t *mark; /* nsym slots: see struct fast */
	uint32_t stamp;
	double *idf;         /* nsym slots, -1 until computed */
	uint32_t *subj;      /* posting subject: symbols of skills[], then gids[] */
	uint64_t fast_pairs; /* pairs scored through the fast path */
};

int
lm_scan_new(const lm_score_env *env, const lm_profile_prep *c, const lm_posting_prep *p,
    lm_scan **out)
{
	lm_scan *sc;
	size_t nsym;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (env == NULL || env->model == NULL || (c == NULL) == (p == NULL))
		return LM_EINVAL;
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return LM_ENOMEM;
	sc->env = *env;
	sc->cp = c;
	sc->pp = p;
	sc->stats = env->stats;
	nsym = sc->stats != NULL ? sc->stats->nsym : 0;
	if ((sc->mark = calloc(nsym + 1, sizeof(*sc->mark))) == NULL ||
	    (sc->idf = malloc((nsym + 1) * sizeof(*sc->idf))) == NULL)
		goto nomem;
	for (size_t i = 0; i < nsym; i++)
		sc->idf[i] = -1;
	sc->stamp = 1;
	if (c != NULL) {
		for (size_t i = 0; i < c->n_skills; i++) {
			uint32_t sym = sym_lookup(sc->stats, c->skills[i].id);
			if (sym != LM_SKILL_SYM_NONE)
				sc->mark[sym] = sc->stamp;
		}
	} else {
		size_t n = p->n_skills + p->n_gids;
		if ((sc->subj = malloc((n + 1) * sizeof(*sc->subj))) == NULL)
			goto nomem;
		for (size_t i = 0; i < p->n_skills; i++)
			sc->subj[i] = sym_lookup(sc->stats, p->skills[i].id);
		for (size_t k = 0; k < p->n_gids; k++)
			sc->subj[p->n_skills + k] = sym_lookup(sc->stats, p->gids[k]);
	}
	*out = sc;
	return LM_OK;
nomem:
	lm_scan_free(sc);
	return LM_ENOMEM;
}

void
lm_scan_free(lm_scan *sc)
{
	if (sc == NULL)
		return;
	free(sc->mark);
	free(sc->idf);
	free(sc->subj);
	free(sc);
}

uint64_t
lm_scan_fast_pairs(const lm_scan *sc)
{
	return sc == NULL ? 0 : sc->fast_pairs;
}

/*
 * True only when check_vetoes would veto the pair (never the other way
 * round), from the keys alone: closed or expired posting, employment type,
 * remote policy, no common country (by the country masks). c is a profile's
 * key, p a posting's.
 */
static bool
key_veto(int64_t now, const lm_veto_key *c, const lm_veto_key *p)
{
	int32_t et = p->employment_type;

	if ((p->flags & KEY_CLOSED) || (p->expires_at != 0 && p->expires_at <= now))
		return true;
	if ((c->flags & (KEY_EMP_ANY | KEY_EMP_EXACT)) == (KEY_EMP_ANY | KEY_EMP_EXACT) &&
	    et != 0 && (et < 0 || et >= 64 || !((c->emp_mask >> et) & 1)))
		return true;
	if (c->remote == LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
	    p->remote == LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE)
		return true;
	return p->remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
	       (p->flags & KEY_HAS_COUNTRY) && (c->flags & KEY_HAS_COUNTRY) &&
	       !(c->flags & KEY_RELOCATE) && (p->country_mask & c->country_mask) == 0;
}

/* As key_veto, also trying the requirement groups and NO_OVERLAP (exactly). */
static bool
quick_veto(const lm_score_env *env, const lm_profile_prep *cp, const lm_posting_prep *pp,
    const struct fast *fx)
{
	if (key_veto(env->now, &cp->key, &pp->key))
		return true;
	for (size_t i = 0; i < pp->n_groups; i++) {
		const struct pgroup *pg = &pp->groups[i];
		bool skill_ok = !pg->needs_skill;

		for (size_t k = 0; k < pg->n && !skill_ok; k++)
			skill_ok = fast_has(fx, fx->gsym[pg->off + k]);
		if (!skill_ok || (isfinite(pg->min_years) && pg->min_years > 0 &&
		                     cp->key.years < (double) pg->min_years))
			return true;
	}
	return no_overlap(cp, pp, &no_ovr, fx);
}

void
lm_prep_prefetch(const void *prep)
{
	/* The first lines of a prep: its fields and the start of its skills. */
	for (size_t off = 0; off < PREP_PREFETCH_BYTES; off += 64)
		__builtin_prefetch((const char *) prep + off);
}

const lm_veto_key *
lm_posting_prep_key(const lm_posting_prep *p)
{
	return &p->key;
}

const lm_veto_key *
lm_profile_prep_key(const lm_profile_prep *c)
{
	return &c->key;
}

bool
lm_scan_vetoed(const lm_scan *sc, const lm_veto_key *other)
{
	return sc->cp != NULL ? key_veto(sc->env.now, &sc->cp->key, other)
	                      : key_veto(sc->env.now, other, &sc->pp->key);
}

static double
scan_pair(lm_scan *sc, const lm_profile_prep *c, const lm_posting_prep *p,
    const struct fast *fx, bool *eligible)
{
	struct eval ev;

	sc->fast_pairs++;
	if (quick_veto(&sc->env, c, p, fx)) {
		if (eligible != NULL)
			*eligible = false;
		return 0;
	}
	ev.detail = false;
	evaluate(&sc->env, c, p, &no_ovr, fx, NULL, &ev);
	if (eligible != NULL)
		*eligible = ev.eligible;
	return ev.score;
}

double
lm_scan_posting(lm_scan *sc, const lm_posting_prep *p, bool *eligible)
{
	struct fast fx;

	if (sc->cp == NULL) { /* a posting subject: not a pair of this scan */
		if (eligible != NULL)
			*eligible = false;
		return 0;
	}
	if (sc->stats == NULL || p->bound != sc->stats)
		return lm_score_pair(&sc->env, sc->cp, p, eligible);
	fx.psym = NULL;
	fx.gsym = p->gsym;
	fx.mark = sc->mark;
	fx.stamp = sc->stamp;
	fx.idf = sc->idf;
	fx.stats = sc->stats;
	return scan_pair(sc, sc->cp, p, &fx, eligible);
}

double
lm_scan_profile(lm_scan *sc, const lm_profile_prep *c, bool *eligible)
{
	struct fast fx;

	if (sc->pp == NULL) { /* a profile subject: not a pair of this scan */
		if (eligible != NULL)
			*eligible = false;
		return 0;
	}
	if (sc->stats == NULL || c->bound != sc->stats)
		return lm_score_pair(&sc->env, c, sc->pp, eligible);
	if (++sc->stamp == 0) { /* wrapped: old marks could look current */
		memset(sc->mark, 0, (sc->stats->nsym + 1) * sizeof(*sc->mark));
		sc->stamp = 1;
	}
	for (size_t i = 0; i < c->n_skills; i++)
		sc->mark[c->skills[i].sym] = sc->stamp;
	fx.psym = sc->subj;
	fx.gsym = sc->subj + sc->pp->n_skills;
	fx.mark = sc->mark;
	fx.stamp = sc->stamp;
	fx.idf = sc->idf;
	fx.stats = sc->stats;
	return scan_pair(sc, c, sc->pp, &fx, eligible);
}

/* ==== explanations ========================================================= */

struct skill_row {
	const struct pskill *s;
	double importance;
	double years;
	bool have;
};

static int
cmp_skill_row(const void *a, const void *b)
{
	const struct skill_row *x = a, *y = b;

	if (x->importance != y->importance)
		return x->importance > y->importance ? -1 : 1;
	return strcmp(x->s->id, y->s->id);
}

struct improve {
	char action[LM_EXPLAIN_TEXT_MAX];
	double gain;
};

static int
cmp_improve(const void *a, const void *b)
{
	const struct improve *x = a, *y = b;

	if (x->gain != y->gain)
		return x->gain > y->gain ? -1 : 1;
	return strcmp(x->action, y->action);
}

static Lunamatch__V1__SkillMatch *
new_skill_match(const struct skill_row *r)
{
	Lunamatch__V1__SkillMatch *sm = malloc(sizeof(*sm));

	if (sm == NULL)
		return NULL;
	lunamatch__v1__skill_match__init(sm);
	sm->importance = r->importance;
	sm->candidate_years = r->have ? (float) r->years : 0.0f;
	if ((sm->skill_id = strdup(r->s->id)) == NULL ||
	    (sm->name = strdup(r->s->name)) == NULL) {
		protobuf_c_message_free_unpacked(&sm->base, NULL);
		return NULL;
	}
	return sm;
}

static int
fill_skills(const lm_score_env *env, const lm_profile_prep *cp, const lm_posting_prep *pp,
    double tot, bool full, Explanation *e)
{
	struct skill_row *rows;
	size_t n = pp->n_skills, nm = 0, nx = 0, cap = LM_EXPLAIN_SUMMARY_SKILLS;

	if (n == 0)
		return LM_OK;
	if ((rows = calloc(n, sizeof(*rows))) == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		double w = pp->skills[i].w * lm_skill_idf(env->stats, pp->skills[i].id);
		rows[i].s = &pp->skills[i];
		rows[i].importance = tot > 0 ? w / tot : 0;
		rows[i].have = cand_has(cp, &no_ovr, pp->skills[i].id, &rows[i].years);
		if (rows[i].have)
			nm++;
		else
			nx++;
	}
	qsort(rows, n, sizeof(*rows), cmp_skill_row);
	if (!full) {
		nm = nm < cap ? nm : cap;
		nx = nx < cap ? nx : cap;
	}
	if ((nm > 0 &&
	        (e->matched_skills = calloc(nm, sizeof(*e->matched_skills))) == NULL) ||
	    (nx > 0 &&
	        (e->missing_skills = calloc(nx, sizeof(*e->missing_skills))) == NULL))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].have && e->n_matched_skills < nm) {
			if ((e->matched_skills[e->n_matched_skills] =
			            new_skill_match(&rows[i])) == NULL)
				goto nomem;
			e->n_matched_skills++;
		} else if (!rows[i].have && e->n_missing_skills < nx) {
			if ((e->missing_skills[e->n_missing_skills] =
			            new_skill_match(&rows[i])) == NULL)
				goto nomem;
			e->n_missing_skills++;
		}
	}
	free(rows);
	return LM_OK;
nomem:
	free(rows);
	return LM_ENOMEM;
}

static int
fill_features(const lm_model *m, const struct eval *ev, Explanation *e)
{
	size_t n = 0;

	for (int f = 0; f < LM_FEAT_COUNT; f++)
		n += ev->present[f];
	if (n == 0)
		return LM_OK;
	if ((e->features = calloc(n, sizeof(*e->features))) == NULL)
		return LM_ENOMEM;
	for (int f = 0; f < LM_FEAT_COUNT; f++) {
		Lunamatch__V1__FeatureContribution *fc;
		if (!ev->present[f])
			continue;
		if ((fc = malloc(sizeof(*fc))) == NULL)
			return LM_ENOMEM;
		lunamatch__v1__feature_contribution__init(fc);
		e->features[e->n_features++] = fc;
		fc->value = ev->value[f];
		fc->weight = m->weights[f];
		fc->contribution = (ev->wsum > 0 && m->weights[f] > 0)
		                       ? ev->value[f] * m->weights[f] / ev->wsum
		                       : 0;
		if ((fc->feature = strdup(lm_feature_name((lm_feature) f))) == NULL ||
		    (fc->detail = strdup(ev->text[f])) == NULL)
			return LM_ENOMEM;
	}
	return LM_OK;
}

/* Adds an improvement candidate when the change raises the score. */
static void try_improvement(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct ovr *o, double base, struct improve *list,
    size_t *n, size_t cap, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static void
try_improvement(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct ovr *o, double base, struct improve *list,
    size_t *n, size_t cap, const char *fmt, ...)
{
	struct eval ev;
	va_list ap;

	if (*n >= cap)
		return;
	ev.detail = false;
	evaluate(env, cp, pp, o, NULL, NULL, &ev);
	if (!(ev.score - base > 1e-12))
		return;
	list[*n].gain = ev.score - base;
	va_start(ap, fmt);
	vsnprintf(list[*n].action, sizeof(list[*n].action), fmt, ap);
	va_end(ap);
	(*n)++;
}

static bool
seen_id(const char **ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

static int
fill_improvements(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, double base, Explanation *e)
{
	const JobPosting *p = pp->rec;
	const CandidateProfile *c = cp->rec;
	size_t cap = pp->n_skills + 2, n = 0, nseen = 0;
	struct improve *list;
	const char **seen;
	double need_years = 0;
	int rc = LM_OK;

	for (size_t i = 0; i < p->n_requirement_groups; i++)
		if (p->requirement_groups[i] != NULL)
			cap += p->requirement_groups[i]->n_skill_ids;
	if ((list = calloc(cap, sizeof(*list))) == NULL)
		return LM_ENOMEM;
	if ((seen = calloc(cap, sizeof(*seen))) == NULL) {
		free(list);
		return LM_ENOMEM;
	}
	for (size_t i = 0; i < pp->n_skills; i++) {
		struct ovr o = {pp->skills[i].id, -1, 0};
		if (cand_has(cp, &no_ovr, o.add_skill, NULL))
			continue;
		seen[nseen++] = o.add_skill;
		try_improvement(env, cp, pp, &o, base, list, &n, cap, "add skill: %s",
		    pp->skills[i].name);
	}
	for (size_t i = 0; i < p->n_requirement_groups; i++) {
		const Lunamatch__V1__RequirementGroup *g = p->requirement_groups[i];
		if (g == NULL)
			continue;
		if (isfinite(g->min_years_experience) &&
		    g->min_years_experience > need_years)
			need_years = g->min_years_experience;
		for (size_t k = 0; k < g->n_skill_ids; k++) {
			struct ovr o = {g->skill_ids[k], -1, 0};
			const char *nm;
			if (o.add_skill == NULL || o.add_skill[0] == '\0' ||
			    seen_id(seen, nseen, o.add_skill) ||
			    cand_has(cp, &no_ovr, o.add_skill, NULL))
				continue;
			seen[nseen++] = o.add_skill;
			nm = (g->n_skills == g->n_skill_ids && g->skills[k] &&
			         g->skills[k][0])
			         ? g->skills[k]
			         : o.add_skill;
			try_improvement(
			    env, cp, pp, &o, base, list, &n, cap, "add skill: %s", nm);
		}
	}
	if (isfinite(p->min_years_experience) && p->min_years_experience > need_years)
		need_years = p->min_years_experience;
	if (need_years > cand_years(c, &no_ovr)) {
		struct ovr o = {NULL, need_years, 0};
		try_improvement(env, cp, pp, &o, base, list, &n, cap,
		    "reach %.1f years of experience", need_years);
	}
	if (p->education >= 1 && p->education <= 6 && c->education >= 1 &&
	    c->education < p->education) {
		struct ovr o = {NULL, -1, (int) p->education};
		try_improvement(env, cp, pp, &o, base, list, &n, cap,
		    "reach education: %s", education_name(p->education));
	}
	qsort(list, n, sizeof(*list), cmp_improve);
	if (n > LM_EXPLAIN_IMPROVEMENTS_MAX)
		n = LM_EXPLAIN_IMPROVEMENTS_MAX;
	if (n > 0 && (e->improvements = calloc(n, sizeof(*e->improvements))) == NULL)
		rc = LM_ENOMEM;
	for (size_t i = 0; rc == LM_OK && i < n; i++) {
		Lunamatch__V1__Improvement *im = malloc(sizeof(*im));
		if (im == NULL) {
			rc = LM_ENOMEM;
			break;
		}
		lunamatch__v1__improvement__init(im);
		e->improvements[e->n_improvements++] = im;
		im->score_gain = list[i].gain;
		if ((im->action = strdup(list[i].action)) == NULL)
			rc = LM_ENOMEM;
	}
	free(seen);
	free(list);
	return rc;
}

/* Appends to buf like snprintf at offset *w, never past len. */
static void append(char *buf, size_t len, size_t *w, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
append(char *buf, size_t len, size_t *w, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*w + 1 >= len)
		return;
	va_start(ap, fmt);
	r = vsnprintf(buf + *w, len - *w, fmt, ap);
	va_end(ap);
	if (r > 0)
		*w = (size_t) r >= len - *w ? len - 1 : *w + (size_t) r;
}

/* One line: band and score, skills, the best and weakest other feature and
 * the most important missing skill; or the first veto. */
static void
make_summary(const lm_model *m, const lm_posting_prep *pp, const struct eval *ev,
    const Explanation *e, char *buf, size_t len)
{
	const char *band;
	int best = -1, worst = -1;
	size_t w = 0;

	buf[0] = '\0';
	if (!ev->eligible) {
		if (e->n_vetoes > 0)
			append(buf, len, &w, "not eligible: %s", e->vetoes[0]->reason);
		else
			append(buf, len, &w, "not eligible");
		if (e->n_vetoes > 1)
			append(buf, len, &w, " (+%zu more)", e->n_vetoes - 1);
		return;
	}
	if (!(ev->wsum > 0)) {
		append(buf, len, &w, "no comparable data");
		return;
	}
	band = ev->score >= 0.75   ? "strong"
	       : ev->score >= 0.5  ? "good"
	       : ev->score >= 0.25 ? "fair"
	                           : "weak";
	append(buf, len, &w, "%s match (%.2f)", band, ev->score);
	if (ev->present[LM_FEAT_SKILLS])
		append(buf, len, &w, ": %zu/%zu skills", ev->sk_have, pp->n_skills);
	for (int f = LM_FEAT_SKILLS + 1; f < LM_FEAT_COUNT; f++) {
		if (!ev->present[f] || !(m->weights[f] > 0))
			continue;
		if (best < 0 || ev->value[f] > ev->value[best])
			best = f;
		if (ev->value[f] < 1 && (worst < 0 || ev->value[f] < ev->value[worst]))
			worst = f;
	}
	if (best >= 0 && ev->value[best] >= 0.5 && best != worst)
		append(
		    buf, len, &w, "; best fit: %s", lm_feature_name((lm_feature) best));
	if (worst >= 0 && ev->value[worst] < 0.5)
		append(
		    buf, len, &w, "; weakest: %s", lm_feature_name((lm_feature) worst));
	if (e->n_missing_skills > 0)
		append(buf, len, &w, "; missing %s", e->missing_skills[0]->name);
}

int
lm_explain_pair(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, Lunamatch__V1__ExplainLevel level,
    Lunamatch__V1__Match **out)
{
	const JobPosting *p;
	const CandidateProfile *c;
	Lunamatch__V1__Match *mt;
	Explanation *e;
	struct eval *ev = NULL;
	struct vsink vs;
	char summary[LM_EXPLAIN_TEXT_MAX];
	bool full = level == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_FULL;
	int rc = LM_ENOMEM;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (env == NULL || env->model == NULL || cp == NULL || pp == NULL)
		return LM_EINVAL;
	p = pp->rec;
	c = cp->rec;
	if ((mt = malloc(sizeof(*mt))) == NULL)
		return LM_ENOMEM;
	lunamatch__v1__match__init(mt);
	if ((mt->job_id = strdup(p->id ? p->id : "")) == NULL ||
	    (mt->candidate_id = strdup(c->id ? c->id : "")) == NULL ||
	    (mt->title = strdup(p->title ? p->title : "")) == NULL ||
	    (mt->company = strdup(p->company ? p->company : "")) == NULL)
		goto fail;
	if (level == LUNAMATCH__V1__EXPLAIN_LEVEL__EXPLAIN_LEVEL_NONE) {
		mt->score = lm_score_pair(env, cp, pp, NULL);
		*out = mt;
		return LM_OK;
	}
	if ((e = malloc(sizeof(*e))) == NULL)
		goto fail;
	lunamatch__v1__explanation__init(e);
	mt->explanation = e;
	if ((ev = malloc(sizeof(*ev))) == NULL)
		goto fail;
	vs.e = e;
	vs.oom = 0;
	ev->detail = true;
	evaluate(env, cp, pp, &no_ovr, NULL, &vs, ev);
	if (vs.oom)
		goto fail;
	mt->score = ev->score;
	if ((e->model_version = strdup(env->model->version)) == NULL)
		goto fail;
	if (fill_features(env->model, ev, e) != LM_OK)
		goto fail;
	if (fill_skills(env, cp, pp, ev->sk_tot, full, e) != LM_OK)
		goto fail;
	if (full && fill_improvements(env, cp, pp, ev->score, e) != LM_OK)
		goto fail;
	make_summary(env->model, pp, ev, e, summary, sizeof(summary));
	if ((e->summary = strdup(summary)) == NULL)
		goto fail;
	free(ev);
	*out = mt;
	return LM_OK;
fail:
	free(ev);
	protobuf_c_message_free_unpacked(&mt->base, NULL);
	return rc;
}

int
lm_score_records(const lm_score_env *env, const CandidateProfile *c, const JobPosting *p,
    double *score, bool *eligible)
{
	lm_profile_prep *cp = NULL;
	lm_posting_prep *pp = NULL;
	int rc;

	if (env == NULL || env->model == NULL || score == NULL)
		return LM_EINVAL;
	if ((rc = lm_profile_prep_new(c, &cp)) != LM_OK ||
	    (rc = lm_posting_prep_new(p, &pp)) != LM_OK)
		goto out;
	*score = lm_score_pair(env, cp, pp, eligible);
out:
	lm_profile_prep_free(cp);
	lm_posting_prep_free(pp);
	return rc;
}

int
lm_explain_records(const lm_score_env *env, const CandidateProfile *c,
    const JobPosting *p, Lunamatch__V1__ExplainLevel level, Lunamatch__V1__Match **out)
{
	lm_profile_prep *cp = NULL;
	lm_posting_prep *pp = NULL;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if ((rc = lm_profile_prep_new(c, &cp)) != LM_OK ||
	    (rc = lm_posting_prep_new(p, &pp)) != LM_OK)
		goto out;
	rc = lm_explain_pair(env, cp, pp, level, out);
out:
	lm_profile_prep_free(cp);
	lm_posting_prep_free(pp);
	return rc;
}
