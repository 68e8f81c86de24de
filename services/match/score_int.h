/*
 * score_int.h - what the files of the scorer share and nobody else reads:
 * the prepared records, the symbols of the corpus statistics, one pair's
 * evaluation and the rows of its explanation.
 *
 * The scorer is split by concept: skill_stats.c (corpus statistics and
 * symbols), prep.c (prepared records), filters.c (request filters), rules.c
 * (the table of vetoes and features, and the evaluation of a pair), scan.c
 * (one subject against many records), explain.c (explanations). The public
 * contract is score.h.
 */
#ifndef LUNAMATCH_MATCH_SCORE_INT_H
#define LUNAMATCH_MATCH_SCORE_INT_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "score.h"

typedef Lunamatch__V1__JobPosting JobPosting;
typedef Lunamatch__V1__CandidateProfile CandidateProfile;
typedef Lunamatch__V1__Explanation Explanation;

/* ---- symbols (skill_stats.c) ----------------------------------------------- */

/* The symbol of id in s, LM_SKILL_SYM_NONE when s does not know it (or s,
 * id NULL or empty). */
uint32_t lm_sym_lookup(const lm_skill_stats *s, const char *id);

/* Takes a reference on the symbol of id (creating it with df 0) and stores
 * it in *sym. Returns LM_OK or LM_ENOMEM (then *sym is NONE). */
int lm_sym_ref(lm_skill_stats *s, const char *id, uint32_t *sym);

/* Drops a reference taken by lm_sym_ref; NONE is a no-op. */
void lm_sym_unref(lm_skill_stats *s, uint32_t sym);

/* Symbols ever handed out: every symbol is below this. */
uint32_t lm_sym_limit(const lm_skill_stats *s);

/* idf of a symbol: the same value as lm_skill_idf of its id. */
double lm_sym_idf(const lm_skill_stats *s, uint32_t sym);

/* A lower bound of the idf of every symbol of s (no df exceeds the number
 * of documents counted): 1.0 while s counts none. */
double lm_sym_idf_min(const lm_skill_stats *s);

/* Words (folded categories, title tokens, folded cities) have their own
 * symbols in a second table of s, by reference as skills are, never
 * counted. Same contracts as the lm_sym_* functions above. */
uint32_t lm_word_lookup(const lm_skill_stats *s, const char *word);
int lm_word_ref(lm_skill_stats *s, const char *word, uint32_t *sym);
void lm_word_unref(lm_skill_stats *s, uint32_t sym);
uint32_t lm_word_limit(const lm_skill_stats *s);

/* ---- prepared records (prep.c) --------------------------------------------- */

/* A posting's skill, 24 bytes: postings hold many. Weights and years are
 * floats in the records, so floats hold them exactly. */
struct pskill {
	const char *id; /* the prep's (see lm_posting_prep) */
	float w;        /* posting weight; 1 when unset */
	uint32_t ord;   /* position in the record: the first entry of the id,
	                   whose display name lm_pskill_name gives */
	uint32_t sym;   /* symbol in the prep's `bound` stats; NONE while unbound */
	bool preferred; /* a nice-to-have (every entry of the id is preferred) */
	bool unknown;   /* not in the taxonomy: the id is "x:<key>" */
};

struct cskill {
	const char *id;
	float years;  /* the most of any entry with this id */
	uint32_t sym; /* symbol in the prep's `bound` stats; NONE while unbound */
};

/* Sorted, unique lower-case tokens of a title, with a hash of each. */
struct tokset {
	char *buf; /* one allocation: the text, then tok, then h; NULL in a
	              posting's prep, whose allocation holds them */
	const char **tok;
	uint64_t *h; /* h[k] = text_hash(tok[k], false) */
	size_t n;
};

/* A location as the scorer compares it, without reading the record: its
 * country case-folded and packed into 8 bytes, and a hash of its city. */
struct ploc {
	uint64_t country; /* the country's bytes, A-Z folded to a-z, zero padded */
	uint64_t city_h;  /* text_hash(city, true); 0 when city is NULL or "" */
	const char *city; /* NULL or "" when it has none; a posting prep's */
};

#define COUNTRY_MAX 8 /* bytes of a country that packs */

/* A geocoded location's position, degrees, as the record holds it. */
struct pgeo {
	double lat, lon;
};

/* Packs country (not NULL or empty) into *out, A-Z folded to a-z and zero
 * padded: two packed countries are equal exactly when strcasecmp says the
 * texts are. Returns false when it is longer than COUNTRY_MAX bytes. */
bool lm_country_pack(const char *country, uint64_t *out);

/* A requirement group that is not NULL, with its usable skill ids (not NULL,
 * not empty) in the prep's gids[off .. off + n). */
struct pgroup {
	uint32_t gi; /* its place in the record's requirement_groups */
	uint32_t off, n;
	float min_years;  /* g->min_years_experience */
	bool needs_skill; /* g lists skill ids: one of them is required */
};

/*
 * A posting as the scorer and the request filters read it. The prep owns
 * every text it reads (its id, category, industry, skill ids and cities:
 * shared copies, lm_pb_share, or its own) and its embedding, so it outlives
 * its record. Scoring a pair and applying the filters read the record only
 * when a country of the posting does not pack (!locs_packed, or remote
 * countries with !rc_packed: never for a validated record, see
 * lm_posting_prep_self_contained); explanations (collect and detail mode)
 * read it for display texts, through a view that carries the record
 * (lm_posting_prep_view) when the prep has forgotten it.
 */
struct lm_posting_prep {
	const JobPosting *rec; /* NULL once forgotten (lm_posting_prep_forget) */
	const char *id;        /* a copy of rec->id */
	struct pskill *skills; /* n_skills distinct ids, sorted by id */
	struct tokset title;
	struct pgroup *groups; /* the record's n_groups groups that are not NULL,
	                          in order */
	const char **gids;     /* n_gids usable skill ids of the groups (as
	                          skills[].id) */
	uint32_t *gsym;        /* their symbols in `bound`; NONE while unbound */
	lm_skill_stats *bound;
	uint32_t *wsym; /* while bound: n_wsym symbols of its words (lm_prep_word) */
	uint32_t n_skills, n_groups, n_gids, n_wsym;
	lm_veto_key key; /* what the quick veto test reads, copied from rec */
	/* What scoring reads of rec, copied so that scoring a pair touches the
	 * record as little as possible. */
	/* When locs_packed (every country packs, as every country of a
	 * validated record does): its n_locs locations that have a country, in
	 * order. */
	const struct ploc *locs;
	/* The record lists remote countries (has_rc): when rc_packed, the n_rc
	 * packed ones that are not NULL or empty (the others match nothing). */
	const uint64_t *rc;
	/* When geo: the positions of the record's n_ll locations that are not
	 * NULL, in order. */
	const struct pgeo *ll;
	uint32_t n_locs, n_rc, n_ll, n_embedding;
	bool has_country;
	bool geo; /* every location is geocoded, and there is one */
	bool locs_packed, has_rc, rc_packed;
	uint64_t cat_h, ind_h;           /* text_hash(category/industry, true); 0: none */
	const uint64_t *title_h;         /* title.h */
	const char *category, *industry; /* as skills[].id */
	const float *embedding;          /* n_embedding floats, a copy of rec's */
	/* key holds its posting date, salary (annual_max, else annual_min; 0
	 * without a salary), min_years, level and education. */
	/* skills, groups, gids, gsym, title, rc, ll, locs, the embedding and
	 * the prep's own texts live in the same allocation. */
};

/*
 * A profile as the scorer and the request filters read it: the prep owns
 * copies of what they read (its id, cities and career-goal texts: shared
 * copies or its own; its embedding and scalars, in its veto key). Scoring
 * and the filters read the record only when a country of the profile does
 * not pack or a desired employment type is outside 0..63 (never for a
 * validated record: lm_profile_prep_self_contained); explanations read it
 * for display texts.
 */
struct lm_profile_prep {
	const CandidateProfile *rec;
	const char *id;        /* a copy of rec->id */
	struct cskill *skills; /* distinct ids, sorted by id */
	size_t n_skills;
	struct tokset *titles; /* tokens of each desired title that has any */
	size_t n_titles;
	size_t titles_cap; /* slots allocated in titles */
	bool has_country;
	bool geo;              /* every location is geocoded, and there is one */
	lm_skill_stats *bound; /* skills[i].sym are symbols of it */
	uint32_t *wsym;        /* while bound: symbols of its words */
	uint32_t n_wsym;
	/* When locs_packed (every country packs): its locations that have a
	 * country, in order. */
	const struct ploc *locs;
	uint32_t n_locs;
	bool locs_packed;
	/* When geo: the positions of its locations that are not NULL, in
	 * order. */
	const struct pgeo *ll;
	size_t n_ll;
	/* career_goals' desired categories, then its desired industries
	 * (NULL for a NULL entry), and text_hash(.., true) of each (0 for a
	 * NULL entry). */
	const char **goal;
	uint64_t *goal_h;
	size_t n_goal_cat, n_goal_ind;
	const float *embedding; /* a copy of rec's */
	size_t n_embedding;
	float years_raw; /* rec->years_experience as stored (key.years: as
	                    scored) */
	/* The distinct significant tokens of the desired titles (title_word_
	 * significant), which NO_OVERLAP looks for in a posting's title: texts
	 * borrowed from titles[], hashes text_hash(tok, false). One allocation
	 * (sig_h, then sig_tok), owned by the prep; NULL when there are none. */
	uint64_t *sig_h;
	const char **sig_tok;
	size_t n_sig;
	lm_veto_key key; /* what the quick veto test reads, copied from rec:
	                    also its remote preference, level, education,
	                    desired salary, employment types and relocation */
	/* skills, goal_h, goal, ll, locs, the embedding and the prep's own
	 * texts live in the same allocation. */
};

/* lm_veto_key.flags */
#define KEY_CLOSED      0x01u  /* posting: CLOSED */
#define KEY_HAS_COUNTRY 0x02u  /* a location with a country */
#define KEY_EMP_ANY     0x04u  /* profile: desired employment types are listed */
#define KEY_EMP_EXACT   0x08u  /* ... and emp_mask holds all of them */
#define KEY_RELOCATE    0x10u  /* profile: willing to relocate */
#define KEY_SKILLS      0x20u  /* posting: has skills (the skills feature is present) */
#define KEY_GOALS       0x40u  /* profile: has career goals */
#define KEY_SK_KEYED    0x80u  /* bound, and every skill is in sk_sym (sk_w) */
#define KEY_SK_PLAIN    0x100u /* posting: no preferred and no unknown skill */

/* strcasecmp(a, b) == 0 for texts whose folded hashes are ha and hb. */
bool lm_text_caseeq(const char *a, uint64_t ha, const char *b, uint64_t hb);

/* Whether token t (hash th) is one of the tokens of ts, whose hashes are
 * h[] (copies of ts->h). */
bool lm_tokset_has(
    const struct tokset *ts, const uint64_t *h, const char *t, uint64_t th);

/* The display name of skill s of pp: the producer's name of the first
 * entry of its id in the record, or the id. */
const char *lm_pskill_name(const lm_posting_prep *pp, const struct pskill *s);

/* Whether the profile has skill id (then *years, when years is not NULL,
 * is the most years of any entry with that id). */
bool lm_profile_has_skill(const lm_profile_prep *c, const char *id, double *years);

/* Total years of experience as the scorer counts them (finite, else 0). */
double lm_rec_years(const CandidateProfile *c);

int lm_cmp_str(const void *a, const void *b);

/* ---- evaluation (rules.c) -------------------------------------------------- */

/* A hypothetical change to the candidate, for improvements. */
struct ovr {
	const char *add_skill; /* the candidate also has this skill id; or NULL */
	double years;          /* total years of experience; < 0: the record's */
	int education;         /* education level; 0: the record's */
};

extern const struct ovr lm_no_ovr; /* no change */

/* Where vetoes go when an explanation is built (collect mode). */
struct vsink {
	Explanation *e;
	int oom;
};

struct eval {
	double value[LM_FEAT_COUNT];
	bool present[LM_FEAT_COUNT];
	double wsum;  /* weights of the features present */
	double gate;  /* the skills gate: the skills value, or no_skills_gate */
	double score; /* 0 when vetoed */
	bool eligible;
	bool detail; /* fill the detail strings below */
	char text[LM_FEAT_COUNT][LM_EXPLAIN_TEXT_MAX];
	/* skills feature, for explanations */
	double sk_req, sk_pref; /* sums of importance of required / preferred skills */
	double sk_cap[2];       /* the idf caps of unknown skills (lm_unknown_idf_caps) */
	size_t sk_have;
};

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
	bool vetted; /* the pair is known to be eligible: skip the vetoes */
	/* A posting scan's weight * idf per symbol of the subject's skills and
	 * their total (key bounds only); NULL otherwise. */
	const double *imp;
	double imp_tot;
};

static inline bool
fast_has(const struct fast *fx, uint32_t sym)
{
	return sym != LM_SKILL_SYM_NONE && fx->mark[sym] == fx->stamp;
}

static inline double
clamp01(double x)
{
	return x > 0 ? (x < 1 ? x : 1) : 0; /* NaN gives 0 */
}

/*
 * Evaluates a pair. Fast mode (vs NULL): stops at the first veto with score
 * 0. Collect mode: records every veto in vs and computes every feature even
 * when vetoed (for the explanation); the score is still 0 when vetoed. fx
 * NULL compares skills by id (the reference path); otherwise by symbol.
 */
void lm_evaluate(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct ovr *o, const struct fast *fx,
    struct vsink *vs, struct eval *ev);

/* True only when the pair of the profile key c and the posting key p is
 * vetoed at now: the pre-checks of the veto table. */
bool lm_key_vetoed(int64_t now, const lm_veto_key *c, const lm_veto_key *p);

/* The skills gate of a pair: the score is the gate times the weighted mean
 * of the features present, skills counted as 1 there. The gate is the
 * skills value when the feature is present, else params.no_skills_gate. */
double lm_skills_gate(const lm_model *m, bool present, double skills);

/* Writes to cap[0] (required) and cap[1] (preferred) the largest idf an
 * unknown skill of the posting of that kind counts with: the median idf of
 * its known skills of the same kind; INFINITY when it has no unknown skill
 * or no known skill of the kind. fx as for lm_evaluate (NULL: by id). */
void lm_unknown_idf_caps(const lm_score_env *env, const lm_posting_prep *pp,
    const struct fast *fx, double cap[2]);

/* The raw importance of the posting's skill i: its weight times its idf,
 * the idf at most cap[preferred] for an unknown skill. */
double lm_skill_imp(const lm_score_env *env, const lm_posting_prep *pp,
    const struct fast *fx, size_t i, const double cap[2]);

/* Whether a veto applies to the pair (fast mode: key pre-checks, then the
 * exact tests of the veto table). */
bool lm_vetoed(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct fast *fx);

/* An upper bound of the score of the pair of profile key c and posting key
 * p at now, from the key bounds of the feature table. */
double lm_key_bound(const lm_model *m, int64_t now, const lm_veto_key *c,
    const lm_veto_key *p, const struct fast *fx);

/* An upper bound of the score of an eligible pair, from the bound rules of
 * the feature table (fast mode only). */
double lm_score_bound(const lm_score_env *env, const lm_profile_prep *cp,
    const lm_posting_prep *pp, const struct fast *fx);

/* The request filters (filters.c): false when one fails in fast mode (vs
 * NULL); in collect mode every failure is a row in vs. They read the
 * preps, not the records (but as lm_*_prep_self_contained say). */
bool lm_check_filters(const lm_filters *f, const lm_profile_prep *c,
    const lm_posting_prep *p, struct vsink *vs);

/* Whether s (not NULL or empty) equals one of the n texts of list
 * case-insensitively. */
bool lm_str_in(const char *s, char *const *list, size_t n);

/* ---- explanation rows (explain.c) ------------------------------------------ */

/* snprintf for the texts of explanations, which quote records (skill
 * names, cities, labels): when the text does not fit in len bytes, it is
 * cut before the character that does not fit whole, so that it stays
 * UTF-8 (responses and events refuse text that is not). */
void lm_textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lm_vtextf(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Numbers compared in a text ("requires 5.0 years (has 4.96)"). */
#define LM_NUM_TEXT 32
struct lm_num_pair {
	char a[LM_NUM_TEXT], b[LM_NUM_TEXT];
};

/* Writes a and b with prec decimals, or with as many more (up to 6) as it
 * takes for two different numbers not to print alike, so that the text of
 * a failed comparison never reads as a met one. Numbers that still print
 * alike with 6, as s, print as s and the neighbour of s on the far side of
 * it from the other (a requirement of 0.1 years against 0.099999994 stays
 * 0.100000, against 0.099999). */
struct lm_num_pair lm_num_pair(double a, double b, int prec);

/* Appends one veto row (collect mode). Returns false in fast mode (vs
 * NULL): the caller stops at the first veto. */
bool lm_veto_row(struct vsink *vs, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends a failed requirement group's label (collect mode). */
void lm_failed_group_row(struct vsink *vs, const char *label);

/* The display text of a requirement group: its label, else its skills. */
void lm_group_text(const Lunamatch__V1__RequirementGroup *g, char *buf, size_t len);

/* Names of enum values for humans; "unknown" out of range. Static. */
const char *lm_level_name(int v);
const char *lm_education_name(int v);
const char *lm_remote_name(int v);
const char *lm_employment_name(int v);

#endif /* LUNAMATCH_MATCH_SCORE_INT_H */
