/*
 * score.h - the explainable scorer: hard filters (vetoes) and soft features
 * for one (candidate, posting) pair, and the corpus statistics it needs.
 *
 * Scoring is pure and deterministic: the result depends only on the two
 * records, the model, the corpus statistics, the filters and `now` (Unix
 * seconds, passed in; the clock is never read here). Formulas, vetoes and
 * explanations are described in docs/scoring.md.
 *
 * Records come in "prepared" (lm_posting_prep, lm_profile_prep): skill ids
 * deduplicated and sorted, title tokens split once, so that scanning many
 * pairs does not redo that work. A prep borrows its record, which must stay
 * alive and unchanged while the prep is in use. Preps, models, statistics and
 * filters are read-only during scoring: any number of threads may score with
 * the same objects at once, provided nobody modifies them meanwhile.
 *
 * Records are expected as ingest leaves them: skills carry canonical skill
 * ids (a skill without one is ignored), requirement groups carry skill_ids,
 * salaries carry annual_min/annual_max in the reference currency, countries
 * are upper case (compared case-insensitively anyway). Case-insensitive
 * comparisons (countries, cities, categories, industries) fold the ASCII
 * letters only, as strcasecmp does in the C locale the services run in.
 */
#ifndef LUNAMATCH_MATCH_SCORE_H
#define LUNAMATCH_MATCH_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunamatch/record.h"
#include "lunamatch/v1/match.pb-c.h"
#include "lunamatch/v1/records.pb-c.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits. */
#define LM_SKILL_SYMS_MAX  (1u << 24) /* distinct skill ids in one lm_skill_stats */
#define LM_SKILL_SYM_NONE  UINT32_MAX /* "no symbol" */
#define LM_KEY_SKILLS      24         /* skills of a posting its veto key holds */
#define LM_FILTER_LIST_MAX 1000       /* entries in one list of a request filter */
/* Bytes of one string of a filter list: the longest category a posting may
 * have (ids and country codes are shorter), so that a filter can name any. */
#define LM_FILTER_ENTRY_MAX         LM_RECORD_TEXT_MAX
#define LM_FILTER_TEXT_MAX          (64 * 1024) /* bytes of all filter strings of a request */
#define LM_TITLE_TOKENS_MAX         32 /* tokens of a title used by career-goal fit */
#define LM_TITLE_TOKEN_MAX          48 /* bytes of one token and its NUL; longer ones are cut */
#define LM_DESIRED_TITLES_MAX       32 /* desired titles of a profile that count */
#define LM_EXPLAIN_SUMMARY_SKILLS   5  /* matched/missing skills at SUMMARY level */
#define LM_EXPLAIN_IMPROVEMENTS_MAX 10 /* improvements at FULL level */
/* What searching the improvements of the matches of one query may cost,
 * in units of about a skill comparison (lm_explain_pair_within). */
#define LM_EXPLAIN_IMPROVE_BUDGET 4000000u
#define LM_EXPLAIN_TEXT_MAX       256 /* bytes of a summary, detail or reason */

/* Veto codes (Veto.code in match.proto). */
#define LM_VETO_POSTING_CLOSED    "POSTING_CLOSED"
#define LM_VETO_POSTING_EXPIRED   "POSTING_EXPIRED"
#define LM_VETO_REQUIREMENT_GROUP "REQUIREMENT_GROUP"
#define LM_VETO_EMPLOYMENT_TYPE   "EMPLOYMENT_TYPE"
#define LM_VETO_REMOTE_POLICY     "REMOTE_POLICY"
#define LM_VETO_LOCATION          "LOCATION"
#define LM_VETO_NO_OVERLAP        "NO_OVERLAP"
#define LM_VETO_FILTER            "FILTER"

/* ---- corpus statistics (for IDF) ---------------------------------------- */

/* Document frequencies of skill ids over a set of postings, and the number
 * of postings. The index keeps one over the postings that
 * lm_skill_stats_counts names.
 *
 * It is also a symbol table: every skill id it counts or that a bound prep
 * (lm_posting_prep_bind) refers to has a small dense integer, its symbol,
 * so that scans (lm_scan) compare integers instead of strings. An id that
 * is neither counted nor referenced any more is forgotten and its symbol
 * reused. Not thread-safe for writes: callers serialize add/remove, binding,
 * unbinding and freeing bound preps against readers and scans. */
typedef struct lm_skill_stats lm_skill_stats;

typedef struct lm_posting_prep lm_posting_prep;
typedef struct lm_profile_prep lm_profile_prep;

int lm_skill_stats_new(lm_skill_stats **out);
void lm_skill_stats_free(lm_skill_stats *s); /* NULL is a no-op */

/* Whether the IDF statistics of a store count posting p: every stored
 * posting that is not CLOSED, expired or not. Expiry is decided by each
 * query at its own time (as_of), so that the statistics, and with them
 * every score, depend on the stored records alone and not on when they are
 * read: the same store and as_of give the same answer at any later time. */
bool lm_skill_stats_counts(const Lunamatch__V1__JobPosting *p);

/* Counts the posting once (N += 1) and each of its distinct skill ids once.
 * Returns LM_OK or LM_ENOMEM (then nothing changed). */
int lm_skill_stats_add(lm_skill_stats *s, const lm_posting_prep *p);

/* Undoes an earlier lm_skill_stats_add of the same posting (same skills). */
void lm_skill_stats_remove(lm_skill_stats *s, const lm_posting_prep *p);

/* N, the number of postings counted. s may be NULL (0). */
uint64_t lm_skill_stats_docs(const lm_skill_stats *s);

/* df(skill_id): postings counted that ask for the skill. s may be NULL (0). */
uint64_t lm_skill_stats_df(const lm_skill_stats *s, const char *skill_id);

/* idf(s) = ln(1 + N / (1 + df(s))); 1 for every skill when N is 0 or s is
 * NULL (no corpus: all skills equally important). */
double lm_skill_idf(const lm_skill_stats *s, const char *skill_id);

/* Skill ids s currently holds (counted or referenced by a bound prep). s may
 * be NULL (0). */
size_t lm_skill_stats_symbols(const lm_skill_stats *s);

/* ---- prepared records --------------------------------------------------- */

/* Prepares a posting / profile for scoring. The prep borrows rec (not
 * copied): rec must outlive it, but for a prep that forgot it.
 * Returns LM_OK, LM_EINVAL (rec NULL) or LM_ENOMEM. */
int lm_posting_prep_new(const Lunamatch__V1__JobPosting *rec, lm_posting_prep **out);
/* As lm_posting_prep_new, for a prep that lives for one request (an
 * inline subject, lm_score_records): its short texts are its own copies,
 * never added to the process-wide pool of shared texts (lm_pb_share), which
 * texts sent by clients would otherwise fill for good. */
int lm_posting_prep_new_request(
    const Lunamatch__V1__JobPosting *rec, lm_posting_prep **out);
void lm_posting_prep_free(lm_posting_prep *p); /* NULL is a no-op */
/* The record the prep reads; NULL once it forgot it. */
const Lunamatch__V1__JobPosting *lm_posting_prep_record(const lm_posting_prep *p);

/*
 * A posting's prep keeps copies of everything scoring and the request
 * filters read, except the record's countries when one does not pack
 * (longer than 8 bytes, which no validated record has). When it is
 * self-contained, lm_posting_prep_forget drops its pointer to the record,
 * which the caller may then free: scoring, binding and the filters work on
 * as before. Explanations need the record's display texts: a view of the
 * prep with a record of the same posting (the same version) explains
 * exactly as the prep did with it. A view is a copy of the prep's fields
 * that shares its arrays: it must not outlive p and is freed with
 * lm_posting_prep_view_free (never bound or unbound). The view functions
 * return LM_OK or LM_ENOMEM; NULL is a no-op for the free.
 */
bool lm_posting_prep_self_contained(const lm_posting_prep *p);
/* The same for a profile's prep: it reads its record only when a country
 * does not pack or a desired employment type is outside 0..63 (never for
 * a validated record). */
bool lm_profile_prep_self_contained(const lm_profile_prep *c);
/* The profile's counterparts of lm_posting_prep_forget, _view, _view_free
 * and _id, with the same contracts. */
void lm_profile_prep_forget(lm_profile_prep *c);
int lm_profile_prep_view(const lm_profile_prep *c,
    const Lunamatch__V1__CandidateProfile *rec, lm_profile_prep **view);
void lm_profile_prep_view_free(lm_profile_prep *view);
const char *lm_profile_prep_id(const lm_profile_prep *c);
void lm_posting_prep_forget(lm_posting_prep *p);
int lm_posting_prep_view(const lm_posting_prep *p, const Lunamatch__V1__JobPosting *rec,
    lm_posting_prep **view);
void lm_posting_prep_view_free(lm_posting_prep *view);

int lm_profile_prep_new(
    const Lunamatch__V1__CandidateProfile *rec, lm_profile_prep **out);
int lm_profile_prep_new_request(
    const Lunamatch__V1__CandidateProfile *rec, lm_profile_prep **out);
void lm_profile_prep_free(lm_profile_prep *p); /* NULL is a no-op */
const Lunamatch__V1__CandidateProfile *lm_profile_prep_record(const lm_profile_prep *p);

/*
 * Binds a prep to s: every skill id of the prep (for a posting also the
 * skill ids of its requirement groups) gets a symbol in s, which the prep
 * keeps and which s keeps alive until the prep is unbound. lm_scan scores
 * bound preps fast; a prep bound to s is also added to and removed from s
 * (lm_skill_stats_add/remove) by symbol. Binding changes nothing a score
 * depends on. A prep is bound to at most one lm_skill_stats at a time.
 * Returns LM_OK, LM_EINVAL (NULL, or already bound) or LM_ENOMEM (then
 * nothing changed). Writes to s: serialize as for lm_skill_stats_add.
 */
int lm_posting_prep_bind(lm_posting_prep *p, lm_skill_stats *s);
int lm_profile_prep_bind(lm_profile_prep *c, lm_skill_stats *s);

/* Releases the symbols a bound prep holds (writes to its lm_skill_stats). An
 * unbound prep or NULL is a no-op. lm_*_prep_free unbinds a bound prep, so
 * freeing a bound prep also writes to its stats; the stats must outlive the
 * preps bound to them. */
void lm_posting_prep_unbind(lm_posting_prep *p);
void lm_profile_prep_unbind(lm_profile_prep *c);

/* ---- request filters ---------------------------------------------------- */

/* The filters of one request (JobFilters or CandidateFilters of match.proto),
 * validated and prepared. Borrows the filter message: it must outlive the
 * lm_filters. A pair that fails a filter gets a FILTER veto. */
typedef struct lm_filters lm_filters;

/* Validates f (lists at most LM_FILTER_LIST_MAX entries, strings at most
 * LM_FILTER_ENTRY_MAX bytes and LM_FILTER_TEXT_MAX together, employment
 * types values of the enum other than UNSPECIFIED, numbers finite and >= 0,
 * min_annual_salary at most LM_SALARY_ANNUAL_MAX) and prepares it. f may be
 * NULL (*out is then NULL: no filters). Returns LM_OK, LM_EINVAL with a
 * reason in err, or LM_ENOMEM. */
int lm_filters_for_jobs(
    const Lunamatch__V1__JobFilters *f, lm_filters **out, char *err, size_t errlen);
int lm_filters_for_candidates(
    const Lunamatch__V1__CandidateFilters *f, lm_filters **out, char *err, size_t errlen);
void lm_filters_free(lm_filters *f); /* NULL is a no-op */

/* ---- scoring ------------------------------------------------------------ */

/* Everything besides the pair that a score depends on. */
typedef struct lm_score_env {
	const lm_model *model;       /* required */
	const lm_skill_stats *stats; /* may be NULL: every skill has idf 1 */
	int64_t now;                 /* Unix seconds: expiry and freshness */
	const lm_filters *filters;   /* may be NULL: no request filters */
} lm_score_env;

/* The score of a pair in [0, 1]: the weighted mean of the features present,
 * 0 when a veto applies (then *eligible is false). eligible may be NULL.
 * Never fails. */
double lm_score_pair(const lm_score_env *env, const lm_profile_prep *c,
    const lm_posting_prep *p, bool *eligible);

/*
 * Scores a pair and explains it at the given level (match.proto
 * ExplainLevel: NONE leaves explanation NULL; UNSPECIFIED and SUMMARY give
 * summary, features, vetoes, failed groups and at most
 * LM_EXPLAIN_SUMMARY_SKILLS matched and missing skills; FULL gives every
 * skill and the improvements). The Match carries job_id, candidate_id,
 * score, the posting's title and company; rank is 0.
 *
 * On LM_OK *out is a new message that the caller owns and frees with
 * protobuf_c_message_free_unpacked(&(*out)->base, NULL): every part of it is
 * malloc'd and nothing points into the records. Fails only with LM_ENOMEM
 * (or LM_EINVAL for NULL arguments); *out is then NULL.
 */
int lm_explain_pair(const lm_score_env *env, const lm_profile_prep *c,
    const lm_posting_prep *p, Lunamatch__V1__ExplainLevel level,
    Lunamatch__V1__Match **out);

/*
 * lm_explain_pair with a budget for the improvements of FULL, shared by the
 * matches of one query (NULL: none). Searching a pair's improvements
 * scores it again once per skill the candidate lacks, so its cost grows
 * with the square of the posting's skills (its own and its requirement
 * groups'); it is charged its most: (skills + 2) tries of a whole
 * evaluation each, (skills + 1) skill comparisons and the rest of the
 * evaluation's work (distances between the records' locations, desired
 * title tokens; explain.c, try_cost). A pair whose charge is more than
 * *budget has no improvements, and then *budget becomes 0, so that no
 * later match has any either: the budget goes to the best matches, in the
 * order they are explained, and the answer stays the same for the same
 * request. At
 * LM_EXPLAIN_IMPROVE_BUDGET a query of 1000 matches of postings with 40
 * skills is explained in full, while one of postings with a hundred skills
 * and twenty groups of twenty has the improvements of its best 15 matches.
 */
int lm_explain_pair_within(const lm_score_env *env, const lm_profile_prep *c,
    const lm_posting_prep *p, Lunamatch__V1__ExplainLevel level, uint64_t *budget,
    Lunamatch__V1__Match **out);

/* ---- scans -------------------------------------------------------------- */

/*
 * A scan scores one subject (a profile or a posting) against many records
 * of the other side, as the index's queries do. It resolves the subject's
 * skills once; for the other side's preps that are bound to env->stats it
 * compares skills by symbol, takes idf from a per-scan cache of one log per
 * distinct skill, and rejects most vetoed pairs from the preps' own fields
 * before the full evaluation.
 *
 * Every result is exactly what lm_score_pair(env, ...) gives for the same
 * pair: the same score, bit for bit, and the same eligibility. Preps that
 * are not bound to env->stats are scored by lm_score_pair itself.
 *
 * lm_scan_new copies *env (its pointers are borrowed); the subject, the
 * model, the filters and env->stats must stay alive and unchanged while the
 * scan exists (the index holds its read lock). One scan is used by one
 * thread at a time. Exactly one of c and p is the subject (the other NULL).
 * Returns LM_OK, LM_EINVAL or LM_ENOMEM.
 */
typedef struct lm_scan lm_scan;

int lm_scan_new(const lm_score_env *env, const lm_profile_prep *c,
    const lm_posting_prep *p, lm_scan **out);
void lm_scan_free(lm_scan *sc); /* NULL is a no-op */

/* The pair (subject profile, p) of a profile scan, or (c, subject posting)
 * of a posting scan: the score, and *eligible (may be NULL). Called on a
 * scan of the other kind: 0, not eligible. */
double lm_scan_posting(lm_scan *sc, const lm_posting_prep *p, bool *eligible);
double lm_scan_profile(lm_scan *sc, const lm_profile_prep *c, bool *eligible);

/*
 * The fields of a prep that decide most vetoes, small enough that a scan
 * over many records can keep them side by side (the index holds a copy per
 * record in a dense array) and skip most vetoed records without touching
 * them. Filled by the prep (the pointer lives as long as the prep); read by
 * lm_scan_vetoed. The fields are the scorer's business.
 */
typedef struct lm_veto_key {
	int64_t expires_at;
	uint64_t country_mask;
	uint64_t emp_mask;
	double years;
	int32_t employment_type;
	int32_t remote;
	uint32_t flags;
	/* The scalars that bound a score (lm_scan_key_bound). */
	uint32_t n_embedding;
	int64_t posted_at; /* posting */
	int64_t salary;    /* posting: top of its range; profile: desired minimum */
	float min_years;   /* posting */
	int32_t level;     /* experience level */
	int32_t education;
	/* A bound record's skills when it has at most LM_KEY_SKILLS (n_sk; 0
	 * otherwise): n_sk symbols and (postings; NULL for profiles) weights,
	 * in room the prep's allocation holds for as many as the record has
	 * (at most LM_KEY_SKILLS), right after the prep. */
	uint32_t n_sk;
	uint32_t *sk_sym;
	float *sk_w;
	uint32_t sk_pref, sk_unknown; /* posting: bit i set when skill i is
	                                 preferred / unknown */
} lm_veto_key;

const lm_veto_key *lm_posting_prep_key(const lm_posting_prep *p);

/* Whether the location veto compares the countries of the record whose key
 * k is (a posting's when posting, else a profile's) with those of the other
 * side: a posting that is not remote and names a country, a profile that
 * names a country and does not relocate. The veto applies to a pair of two
 * such records whose country masks are disjoint (and to no other pair by
 * their countries). */
bool lm_key_located(const lm_veto_key *k, bool posting);

/* Makes k name the countries of country_mask: lm_key_located then holds
 * for k as a profile's key when it does not relocate, and as a posting's
 * when it is not remote. */
void lm_key_locate(lm_veto_key *k, uint64_t country_mask);

/* The posting's id, owned by the prep (NULL when the record has none). */
const char *lm_posting_prep_id(const lm_posting_prep *p);
const lm_veto_key *lm_profile_prep_key(const lm_profile_prep *c);

/* A hint that a scan will soon read the prep (a lm_posting_prep or
 * lm_profile_prep): starts loading its first cache lines. Harmless with any
 * valid prep pointer; never faults. */
void lm_prep_prefetch(const void *prep);

/* True only when the pair of the subject and the record whose key `other`
 * is (a posting's for a profile scan, a profile's for a posting scan) is
 * vetoed: then lm_scan_posting/profile would return 0, not eligible. False
 * says nothing. */
bool lm_scan_vetoed(const lm_scan *sc, const lm_veto_key *other);

/*
 * The two stages of a pruned query over bound preps. Stage one,
 * lm_scan_*_bound, puts an upper bound of the pair's score from the feature
 * table (every feature at its exact value or its largest possible one) in
 * *bound: LM_PAIR_BELOW when it is below floor (the pair cannot reach floor;
 * its vetoes were not run), else LM_PAIR_VETOED when a veto applies (exactly
 * as lm_scan_posting/profile would say) or LM_PAIR_OK. Stage two,
 * lm_scan_*_score: the exact score of a pair stage one found OK, bit for
 * bit lm_score_pair's, without running the vetoes again. A prep not bound
 * to env->stats gets its exact score as its bound.
 */
typedef enum lm_pair_state { LM_PAIR_OK, LM_PAIR_VETOED, LM_PAIR_BELOW } lm_pair_state;

lm_pair_state lm_scan_posting_bound(
    lm_scan *sc, const lm_posting_prep *p, double floor, double *bound);
lm_pair_state lm_scan_profile_bound(
    lm_scan *sc, const lm_profile_prep *c, double floor, double *bound);
double lm_scan_posting_score(lm_scan *sc, const lm_posting_prep *p);
double lm_scan_profile_score(lm_scan *sc, const lm_profile_prep *c);

/*
 * The terms of a record as the index's inverted lists know it: skill terms
 * (the symbols of a posting's skill ids and requirement-group skill ids, or
 * of a profile's skill ids) and word terms (a posting's significant title
 * tokens and category; a profile's significant desired-title tokens and
 * desired categories). A pair escapes the NO_OVERLAP veto only when the posting has
 * no skill ids at all or the two share a term; sharing a term may also be
 * a coincidence that the exact test rejects. Exactly one of pp and cp is
 * given. A prep bound to s gives its own symbols; any other looks them up in
 * s (a text s does not know has no term). Writes at most cap terms (each
 * sym << 1 | LM_TERM_SKILL or LM_TERM_WORD) and returns their number;
 * lm_prep_terms_max is enough room.
 */
#define LM_TERM_SKILL 0u
#define LM_TERM_WORD  1u
#define LM_WORD_MAX   128 /* bytes of a word with its NUL; longer ones are cut */

size_t lm_prep_terms_max(const lm_posting_prep *pp, const lm_profile_prep *cp);
size_t lm_prep_terms(const lm_posting_prep *pp, const lm_profile_prep *cp,
    const lm_skill_stats *s, uint32_t *out, size_t cap);

/* Whether a posting has skill ids (its own or its groups'): only then can
 * NO_OVERLAP veto it. */
bool lm_posting_prep_has_skills(const lm_posting_prep *pp);

/* An upper bound of the score of the pair of the subject and the record
 * whose key `other` is, from the keys alone (the feature table's key
 * bounds): never below what lm_scan_posting/profile give for the pair. */
double lm_scan_key_bound(lm_scan *sc, const lm_veto_key *other);

/* Whether the posting lists skills of its own: only then is the skills
 * feature present in its pairs, and its skills value their gate. */
bool lm_posting_prep_skills_present(const lm_posting_prep *pp);

/*
 * Skill shares, for bounds over inverted lists. For a posting with skills,
 * the share of its skill i is what having the skill adds at most to the
 * skills value: its importance w_i * idf_i (idf capped as for the skills
 * feature) over the sum of its group's (the required skills, or the
 * preferred ones times preferred_share; every skill when none is required).
 * The skills value of a pair is at most the sum of the shares of the
 * posting's skills the candidate has (rules.c proves it), and the score of
 * an eligible pair at most its skills value.
 *
 * lm_posting_shares writes the shares of the n_skills skills of pp, in the
 * order of its skills, with idf[i] the (uncapped) idf of skill i, to out.
 */
void lm_posting_shares(
    const lm_posting_prep *pp, const double *idf, double preferred_share, double *out);

/* For a scan with a posting subject that lists skills: the share of skill
 * term `term` (lm_prep_terms) of the subject at the scan's statistics, 0
 * for a term that is not one of its skills (a word or a requirement-group
 * skill only). INFINITY (no bound) for a posting subject without skills of
 * its own and for a profile subject. */
double lm_scan_term_share(const lm_scan *sc, uint32_t term);

/*
 * An idf snapshot, so that inverted lists of postings can hold each
 * posting's share of each of its skills although idf moves with the
 * corpus: shares are computed at the snapshot's idf of every symbol, and
 * the drift (the largest over the smallest ratio of current to snapshot
 * idf over the symbols of the postings added) bounds how much a share can
 * have grown since: every idf of a posting, capped or not, moved by a
 * factor within [lo, hi], so share_now <= share_snapshot * hi / lo.
 * Not thread-safe for writes: the index changes it under its write lock.
 */
typedef struct lm_idf_snap lm_idf_snap;

int lm_idf_snap_new(lm_idf_snap **out); /* LM_OK or LM_ENOMEM */
void lm_idf_snap_free(lm_idf_snap *sn); /* NULL is a no-op */

/* Adds posting pp (bound to s): a symbol of its skills that no posting
 * added has gets its current idf in s as its snapshot idf. Returns LM_OK
 * or LM_ENOMEM (nothing changed): it allocates before it changes anything. */
int lm_idf_snap_hold(lm_idf_snap *sn, const lm_skill_stats *s, const lm_posting_prep *pp);
/* Writes the shares of n terms of lm_prep_terms of added posting pp
 * (rounded up; 0 for a term that is not one of its skills) to out. It only
 * reads sn (a failed allocation for a posting of more than 64 skills gives
 * shares of 1, which bound every share), so threads may call it at once
 * while nothing changes sn. */
void lm_idf_snap_term_shares(const lm_idf_snap *sn, const lm_posting_prep *pp,
    double preferred_share, const uint32_t *terms, size_t n, float *out);
/* Undoes lm_idf_snap_hold of the same posting. */
void lm_idf_snap_remove(lm_idf_snap *sn, const lm_posting_prep *pp);
/* The share of term in added posting pp at the snapshot (rounded up). */
float lm_idf_snap_share(const lm_idf_snap *sn, const lm_posting_prep *pp,
    double preferred_share, uint32_t term);
/* The same for many terms of pp: lm_idf_snap_skill_shares writes the
 * shares of its lm_idf_snap_nshares(pp) skills to out, from which
 * lm_idf_snap_term_share picks the share of a term. */
size_t lm_idf_snap_nshares(const lm_posting_prep *pp);
void lm_idf_snap_skill_shares(
    const lm_idf_snap *sn, const lm_posting_prep *pp, double preferred_share, float *out);
float lm_idf_snap_term_share(const lm_posting_prep *pp, const float *sh, uint32_t term);
/* The term (lm_prep_terms) of skill i of pp, i below lm_idf_snap_nshares. */
uint32_t lm_idf_snap_skill_term(const lm_posting_prep *pp, size_t i);
/* How many skills of the postings added have symbol sym (for checks of
 * the index's accounting); 0 for every symbol from lm_idf_snap_syms on. */
uint32_t lm_idf_snap_refs(const lm_idf_snap *sn, uint32_t sym);
uint32_t lm_idf_snap_syms(const lm_idf_snap *sn);
/* The drift factor hi / lo (>= 1) at s's current idf. */
double lm_idf_snap_drift(const lm_idf_snap *sn, const lm_skill_stats *s);
/* Takes a new snapshot: every symbol's current idf in s (drift 1). The
 * shares of the postings added must then be computed again. */
void lm_idf_snap_reset(lm_idf_snap *sn, const lm_skill_stats *s);
/* A copy of sn taken at s's current idf (as lm_idf_snap_reset leaves it),
 * sn unchanged: a new snapshot prepared while sn still serves. LM_OK or
 * LM_ENOMEM (*out NULL). */
int lm_idf_snap_renewed(
    const lm_idf_snap *sn, const lm_skill_stats *s, lm_idf_snap **out);

/* Pairs the scan scored through its fast path (bound preps), for tests. */
uint64_t lm_scan_fast_pairs(const lm_scan *sc);

/* lm_score_pair on plain records (prepares both for the call). Returns
 * LM_OK, LM_EINVAL or LM_ENOMEM. */
int lm_score_records(const lm_score_env *env, const Lunamatch__V1__CandidateProfile *c,
    const Lunamatch__V1__JobPosting *p, double *score, bool *eligible);

/* lm_explain_pair on plain records. */
int lm_explain_records(const lm_score_env *env, const Lunamatch__V1__CandidateProfile *c,
    const Lunamatch__V1__JobPosting *p, Lunamatch__V1__ExplainLevel level,
    Lunamatch__V1__Match **out);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_MATCH_SCORE_H */
