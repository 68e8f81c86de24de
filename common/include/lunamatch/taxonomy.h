/*
 * taxonomy.h - the skills taxonomy: canonical skill ids and their aliases.
 *
 * Postings and profiles name skills the way people write them ("GCP",
 * "Google Cloud Platform", "google-cloud"). Ingest maps every name to one
 * canonical id through this table so that matching compares ids, not
 * spellings. The table is loaded from data/skills.tsv (format in
 * docs/data-files.md) and is immutable after loading: any number of threads
 * may read it concurrently without locks; only lm_taxonomy_free needs them
 * all to be done.
 *
 * Names are compared through their lookup key (lm_skill_key), which ignores
 * case, spacing and punctuation but keeps '+' and '#' significant, so "C",
 * "C++" and "C#" stay three different skills.
 *
 * A name whose key matches no skill may still be a misspelling of one
 * ("Pyhton", "Kubernets"): lm_taxonomy_resolve accepts it when exactly one
 * skill has a key within a small edit distance (optimal string alignment:
 * insertions, deletions, substitutions and transpositions of adjacent bytes)
 * that grows with the length of the key, LM_SKILL_TYPO_DISTANCE(n).
 */
#ifndef LUNAMATCH_TAXONOMY_H
#define LUNAMATCH_TAXONOMY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits of the taxonomy file, enforced by lm_taxonomy_load. */
#define LM_TAXONOMY_FILE_MAX    (8u * 1024 * 1024) /* bytes in the whole file */
#define LM_TAXONOMY_LINE_MAX    4096   /* bytes in one line, without the newline */
#define LM_TAXONOMY_SKILLS_MAX  100000 /* skills in one file */
#define LM_TAXONOMY_ALIASES_MAX 64     /* aliases of one skill */
#define LM_SKILL_ID_MAX         64     /* bytes in a skill id */
#define LM_SKILL_NAME_MAX       128    /* bytes in a display name or alias */
#define LM_SKILL_CATEGORY_MAX   64     /* bytes in a category */
#define LM_TAXONOMY_VERSION_MAX 64     /* bytes in the version string */

/* Capacity, with the NUL, of a buffer that holds any key of a known skill.
 * A name whose key is longer cannot be in the taxonomy. */
#define LM_SKILL_KEY_MAX 256

/* The edit distance a key of n bytes may be from a skill's key and still
 * resolve to it: none below 5 bytes (short names such as "Go", "R", "SQL" or
 * "Java" are too close to each other and to ordinary words), one up to 8,
 * two from 9. */
#define LM_SKILL_TYPO_DISTANCE(n) ((n) < 5 ? 0u : (n) < 9 ? 1u : 2u)

/* Prefix of the canonical form of a skill the taxonomy does not know. No
 * taxonomy id contains ':', so the two never collide. */
#define LM_SKILL_UNKNOWN_PREFIX "x:"

typedef struct lm_taxonomy lm_taxonomy;

/* One skill. The strings belong to the taxonomy and live until
 * lm_taxonomy_free. id is lower-case kebab-case ASCII; name is the display
 * name (UTF-8); category is a lower-case kebab-case group such as "cloud". */
typedef struct lm_skill {
	const char *id;
	const char *name;
	const char *category;
} lm_skill;

/*
 * Loads the taxonomy file at path. On success returns LM_OK and stores a new
 * taxonomy in *out (free it with lm_taxonomy_free). On failure returns
 * LM_ENOENT or LM_EIO (file cannot be read), LM_E2BIG (a hard limit above),
 * LM_EPARSE (bad syntax: column count, empty or malformed id, missing version
 * header), LM_ESCHEMA (duplicate id, alias or name shared by two skills) or
 * LM_ENOMEM, and writes "<path>:<line>: <reason>" into err.
 */
int lm_taxonomy_load(const char *path, lm_taxonomy **out, char *err, size_t errlen);

/* Frees a taxonomy and every lm_skill it returned. NULL is a no-op. */
void lm_taxonomy_free(lm_taxonomy *t);

/* Number of skills. */
size_t lm_taxonomy_count(const lm_taxonomy *t);

/* The file's "# version:" value, e.g. "2026.11". Owned by t. */
const char *lm_taxonomy_version(const lm_taxonomy *t);

/* The i-th skill in file order, or NULL when i >= count. For listing. */
const lm_skill *lm_taxonomy_at(const lm_taxonomy *t, size_t i);

/*
 * Writes the lookup key of name into buf (at most len - 1 bytes and a NUL
 * when len > 0) and returns the length of the whole key, like snprintf: a
 * result >= len means buf holds a truncated key. The key keeps ASCII letters
 * (lower-cased) and digits, spells '+' as "plus" and '#' as "sharp", keeps
 * bytes >= 0x80 (UTF-8 sequences) unchanged and drops everything else
 * (spaces, '-', '_', '.', '/', ...). So "Node.js" and "nodejs" share a key,
 * as do "google-cloud", "Google Cloud" and "GOOGLE_CLOUD"; "C++" gives
 * "cplusplus", "C#" "csharp" and "C" "c". NULL name gives an empty key.
 */
size_t lm_skill_key(const char *name, char *buf, size_t len);

/* The skill whose id, display name or alias has the key of name; NULL when
 * none does or name is NULL. Average O(1). */
const lm_skill *lm_taxonomy_lookup(const lm_taxonomy *t, const char *name);

/*
 * The skill that name stands for, typos included: the skill whose key equals
 * the key of name (then *distance = 0), or else the unique skill with an id,
 * display name or alias whose key starts with the same byte and is the
 * nearest to it, at a distance of at most LM_SKILL_TYPO_DISTANCE(key length) (then
 * *distance is that distance). NULL when there is none, or when two skills are equally
 * near, since a guess between them would be arbitrary. distance may be NULL. Costs one
 * hash probe when the name is known, otherwise a distance to each key of the
 * same first byte whose length is within the bound (a sorted table).
 */
const lm_skill *lm_taxonomy_resolve(
    const lm_taxonomy *t, const char *name, unsigned *distance);

/* The skill whose canonical id is exactly id; NULL otherwise. */
const lm_skill *lm_taxonomy_get(const lm_taxonomy *t, const char *id);

/*
 * Writes the canonical form of the skill called name into buf: the id of
 * lm_taxonomy_resolve's skill when there is one, otherwise the unknown form
 * of lm_skill_unknown_id. Returns LM_OK, LM_EINVAL when name is NULL or its
 * key is empty (nothing but spaces and punctuation), or LM_E2BIG when the
 * result does not fit in len bytes (buf then holds an empty string).
 */
int lm_taxonomy_canonical(const lm_taxonomy *t, const char *name, char *buf, size_t len);

/*
 * Writes the canonical form of a skill the taxonomy does not know into buf:
 * LM_SKILL_UNKNOWN_PREFIX followed by the key of name (so "Quantum
 * Basket-Weaving" becomes "x:quantumbasketweaving"). Same results as
 * lm_taxonomy_canonical.
 */
int lm_skill_unknown_id(const char *name, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_TAXONOMY_H */
