/*
 * record.h - validation and normalization of postings and profiles.
 *
 * Every record enters the system through lm_posting_prepare or
 * lm_profile_prepare: ingest before storing, match for inline records in a
 * request. Preparing validates the record against the schema's rules and hard
 * limits, then normalizes it in place: strings trimmed, country and currency
 * codes upper-cased, skills mapped to canonical taxonomy ids (duplicates
 * merged), salaries annualized in the reference currency. A prepared record
 * is what the store holds and the scorer reads.
 */
#ifndef LUNAMATCH_RECORD_H
#define LUNAMATCH_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "lunamatch/fairness.h"
#include "lunamatch/gazetteer.h"
#include "lunamatch/metrics.h"
#include "lunamatch/salary.h"
#include "lunamatch/taxonomy.h"
#include "lunamatch/v1/records.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits on records. */
#define LM_RECORD_ID_MAX           128 /* bytes of [A-Za-z0-9._:-] */
#define LM_RECORD_TITLE_MAX        256 /* bytes */
#define LM_RECORD_TEXT_MAX         256 /* bytes of every other short string */
#define LM_RECORD_DESCRIPTION_MAX  16384
#define LM_RECORD_SKILLS_MAX       100
#define LM_RECORD_GROUPS_MAX       20
#define LM_RECORD_GROUP_SKILLS_MAX 20
#define LM_RECORD_LOCATIONS_MAX    20
#define LM_RECORD_GOALS_MAX        20 /* entries per career-goal list */
#define LM_RECORD_YEARS_MAX        80.0f
#define LM_RECORD_WARNINGS_MAX     32 /* compliance warnings kept per posting */
#define LM_RECORD_REMOTE_MAX       50 /* distinct remote_countries */
#define LM_RECORD_EMPLOYMENT_MAX   8  /* desired_employment_types entries */
/* Latest timestamp a record may carry (posted_at, expires_at, updated_at):
 * 2200-01-01T00:00:00Z in seconds. Anything later is not a date in seconds
 * (milliseconds, INT64_MAX as "never") and would, as posted_at, keep a
 * posting "posted in the future" at full freshness for good. */
#define LM_RECORD_TIME_MAX INT64_C(7258118400)

/* Why a record was rejected: a bounded set, used as a metrics label and a
 * dead-letter header. */
typedef enum lm_reject {
	LM_REJECT_NONE = 0,
	LM_REJECT_MISSING_FIELD, /* "missing_field": id, title, ... */
	LM_REJECT_BAD_ID,        /* "bad_id": id alphabet or length */
	LM_REJECT_OVERSIZE,      /* "oversize": a string or list over its limit */
	LM_REJECT_BAD_ENUM,      /* "unknown_enum": a value the schema lacks */
	LM_REJECT_BAD_COUNTRY,   /* "bad_country": not ISO 3166-1 alpha-2 */
	LM_REJECT_BAD_CURRENCY,  /* "bad_currency": not in the rate table */
	LM_REJECT_BAD_SALARY,    /* "bad_salary": negative, min > max, absurd */
	LM_REJECT_BAD_VALUE,     /* "bad_value": another number out of range */
	LM_REJECT_BAD_UTF8,      /* "bad_utf8" */
	LM_REJECT_BAD_SKILL,     /* "bad_skill": a skill name with no letters or digits */
	LM_REJECT_COUNT_
} lm_reject;

/* Stable snake_case token of a reason ("missing_field", ...). */
const char *lm_reject_name(lm_reject r);

/* What preparing needs. Every pointer must outlive the calls. */
typedef struct lm_record_ctx {
	const lm_taxonomy *taxonomy;
	const lm_rates *rates;
	/* The fair-requirements list postings are screened against; NULL
	 * screens nothing (see lm_posting_prepare). */
	const lm_fairness *fairness;
	/* The cities locations are geocoded with; NULL geocodes nothing. */
	const lm_gazetteer *gazetteer;
	/* Ingest only: the registry where lm_ingest_decide counts the
	 * compliance warnings of accepted postings; NULL counts nothing. */
	lm_metrics *metrics;
	uint32_t embedding_dim; /* a non-empty embedding must have this length */
	int inline_record;      /* an inline query record: id and version optional */
} lm_record_ctx;

/*
 * Validates and normalizes p in place.
 *
 * Skills naming one taxonomy id merge into the first of them, whatever
 * their order otherwise: a posting's keeps the largest weight and is
 * preferred only when every entry is; a profile's keeps the most years and
 * the highest level; either keeps an exact name (with its resolution) over
 * a misspelling.
 *
 * Locations (of postings and profiles) are geocoded with ctx->gazetteer:
 * when it finds the city (lm_gazetteer_lookup with the location's country
 * and region), geocoded, latitude, longitude and geoname_id are set, and an
 * empty country is filled in from the city; otherwise they are cleared.
 * A REMOTE posting without remote_countries gets the distinct countries of
 * its locations; remote_countries are upper-cased, checked and deduplicated.
 *
 * Postings that pass every check are then screened against ctx->fairness
 * (so whether a posting is valid never depends on the list): the title,
 * every skill name, and every requirement group's label and skills. A flagged skill is
 * removed from skills; a flagged skill of a group is removed from the group;
 * a group whose label is flagged, or that is left with no skill and no
 * experience requirement, is removed. Each flagged text gives a
 * ComplianceWarning in p->compliance_warnings (at most
 * LM_RECORD_WARNINGS_MAX) and p->fairness_version names the list. What the
 * producer sent there is replaced, but for the warnings of requirements an
 * earlier prepare removed: a warning marked removed whose rule the list
 * still has and still flags its phrase is kept (after the new ones, with
 * the list's category and reason, unless a new one has its rule and
 * field), so that preparing a prepared posting again gives the same
 * warnings. A flagged posting is still valid. p must have been allocated by
 * protobuf-c's unpacker or lm_json_decode (strings are freed and replaced with
 * malloc'd ones). Returns LM_OK, LM_ESCHEMA with *reason set and a message
 * naming the field in err, or LM_ENOMEM; on error p may be partly normalized
 * and must only be freed.
 */
int lm_posting_prepare(const lm_record_ctx *ctx, Lunamatch__V1__JobPosting *p,
    lm_reject *reason, char *err, size_t errlen);
int lm_profile_prepare(const lm_record_ctx *ctx, Lunamatch__V1__CandidateProfile *c,
    lm_reject *reason, char *err, size_t errlen);

/* True when id is 1..LM_RECORD_ID_MAX bytes of [A-Za-z0-9._:-]. */
int lm_record_id_valid(const char *id);

/* True when cc is an assigned ISO 3166-1 alpha-2 code (upper case). */
int lm_country_valid(const char *cc);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_RECORD_H */
