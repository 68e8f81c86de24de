/*
 * fairness.h - the fair-requirements list: phrases that, as a requirement of
 * a job posting, state or stand in for a protected attribute ("recent
 * graduate", "digital native", "native English speaker", "married",
 * "salesman"...).
 *
 * Ingest screens the title, skills and requirement groups of every posting
 * against the list (record.h): a flagged skill or requirement is dropped, so
 * nobody is scored or vetoed on it, and the posting carries a
 * ComplianceWarning naming the rule and the phrase. The list is loaded from
 * data/fairness/requirements.tsv (format in docs/data-files.md) and is
 * immutable after loading: any number of threads may read it concurrently.
 *
 * Text and phrases are compared as sequences of words: a word is a run of
 * ASCII letters and digits (lower-cased) and of other UTF-8 characters, and
 * an apostrophe (' or U+2019) between two such characters belongs to the
 * word; everything else separates words: ASCII punctuation and spaces, and
 * the UTF-8 ones too (no-break space, typographic quotes and dashes,
 * U+2000..U+206F, guillemets, ideographic space, comma and full stop). A phrase matches
 * when its words occur one after the other in the text; the phrase word "*" stands for
 * any one word. So "native
 * * speaker" matches "Native English speaker" and "native-Spanish speaker",
 * and "young" matches "young team", "'young'" and "\u201cyoung\u201d" but
 * not "Youngstown" nor "Young's modulus". A phrase written with a leading
 * "!" is an exception of its rule: a match of the rule's other phrases that
 * lies within a match of an exception does not count ("young" with
 * "!with young people" flags "young team", not "work with young people").
 */
#ifndef LUNAMATCH_FAIRNESS_H
#define LUNAMATCH_FAIRNESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits of the list file, enforced by lm_fairness_load. */
#define LM_FAIRNESS_FILE_MAX     (1024u * 1024) /* bytes in the whole file */
#define LM_FAIRNESS_LINE_MAX     4096           /* bytes in one line */
#define LM_FAIRNESS_RULES_MAX    1000           /* rules in one file */
#define LM_FAIRNESS_PHRASES_MAX  64             /* phrases of one rule */
#define LM_FAIRNESS_PHRASE_WORDS 8              /* words in one phrase */
#define LM_FAIRNESS_ID_MAX       64             /* bytes of a rule id or category */
#define LM_FAIRNESS_REASON_MAX   512            /* bytes of a reason */
#define LM_FAIRNESS_VERSION_MAX  64             /* bytes of the version string */
/* Longest text lm_fairness_match reads (titles, skill names and labels are
 * shorter); the rest is ignored. */
#define LM_FAIRNESS_TEXT_MAX 1024

typedef struct lm_fairness lm_fairness;

/* One rule. The strings belong to the list and live until lm_fairness_free.
 * id and category are lower-case kebab-case ASCII; reason is one sentence or
 * two of UTF-8 for people reading the warning. */
typedef struct lm_fair_rule {
	const char *id;
	const char *category;
	const char *reason;
} lm_fair_rule;

/* Where a rule matched in a text: bytes [start, end) of it. */
typedef struct lm_fair_hit {
	const lm_fair_rule *rule;
	size_t start, end;
} lm_fair_hit;

/*
 * Loads the list at path. On success returns LM_OK and stores a new list in
 * *out (free it with lm_fairness_free). On failure returns LM_ENOENT or
 * LM_EIO (cannot read), LM_E2BIG (a hard limit above), LM_EPARSE (column
 * count, malformed id or category, a phrase with no word or only "*", a
 * rule with only exceptions, missing version header), LM_ESCHEMA (duplicate rule id) or
 * LM_ENOMEM, and writes "<path>:<line>: <reason>" into err.
 */
int lm_fairness_load(const char *path, lm_fairness **out, char *err, size_t errlen);

/* Frees the list; NULL is a no-op. */
void lm_fairness_free(lm_fairness *f);

/* The file's "# version:" value. Owned by f. */
const char *lm_fairness_version(const lm_fairness *f);

/* Number of rules, and the i-th in file order (NULL when i >= count). */
size_t lm_fairness_count(const lm_fairness *f);
const lm_fair_rule *lm_fairness_at(const lm_fairness *f, size_t i);

/*
 * Finds the rules that match text (its first LM_FAIRNESS_TEXT_MAX bytes,
 * less a word that limit cuts):
 * for each rule, in file order, the earliest match of any of its phrases.
 * Writes at most max hits and returns the number of rules that matched
 * (which may exceed max). NULL f or text gives 0.
 */
size_t lm_fairness_match(
    const lm_fairness *f, const char *text, lm_fair_hit *hits, size_t max);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_FAIRNESS_H */
