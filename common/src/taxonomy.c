/*
 * taxonomy.c - loading data/skills.tsv and resolving skill names.
 *
 * The whole file is read into one buffer and split in place; skills point
 * into it. Every id, display name and alias is indexed by its lookup key in
 * the shared hash map (lunamatch/hashmap.h), so a lookup costs one key
 * computation and, on average, one or two probes.
 * Nothing changes after lm_taxonomy_load returns, which is what makes
 * concurrent readers safe.
 *
 * A name that is not in the table is compared by optimal string alignment
 * distance (Damerau-Levenshtein without repeated edits of one substring),
 * cut off as soon as a row of the matrix exceeds the bound, with the keys
 * that can be within the bound of it and share its first byte. Those are
 * one run of a table of every key sorted by first byte and length (built
 * once at load): a lookup reads the keys of its first byte whose length
 * differs by at most the bound, not the whole map.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/pb.h"
#include "lunamatch/taxonomy.h"
#include "lunamatch/text.h"
#include "lunamatch/textfile.h"

#define FORMAT_VERSION "1"

/* A key of the typo table. */
struct keyref {
	const char *key; /* owned by the hash map */
	uint32_t len;
	uint32_t skill;
};

struct lm_taxonomy {
	char *text; /* file contents, split in place; skills point here */
	lm_skill *skills;
	uint32_t *lines; /* line of each skill, for error messages */
	size_t nskills;
	size_t capskills;
	/* lookup key (malloc'd, owned here) -> skill index + 1, as a pointer */
	lm_hashmap *keys;
	/* Every key, sorted by first byte, then length, then bytes; the keys of
	 * first byte c are byfirst[c] .. byfirst[c + 1] - 1. Borrowed from keys. */
	struct keyref *sorted;
	size_t nsorted;
	size_t byfirst[257];
	char version[LM_TAXONOMY_VERSION_MAX + 1];
};

_Static_assert(LM_TAXONOMY_VERSION_MAX <= LM_TEXTFILE_VERSION_MAX, "version fits");

size_t
lm_skill_key(const char *name, char *buf, size_t len)
{
	size_t n = 0;

#define PUT(ch)                                                                          \
	do {                                                                             \
		if (n + 1 < len)                                                         \
			buf[n] = (char) (ch);                                            \
		n++;                                                                     \
	} while (0)

	for (const unsigned char *p = (const unsigned char *) name; p && *p; p++) {
		unsigned char c = *p;
		size_t blank =
		    c >= 0x80 ? lm_text_blank(p, strnlen((const char *) p, 3)) : 0;
		if (blank > 0) {
			p += blank - 1; /* dropped, as ASCII spaces are */
		} else if (c >= 'A' && c <= 'Z') {
			PUT(c - 'A' + 'a');
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		           c >= 0x80) {
			PUT(c);
		} else if (c == '+' || c == '#') {
			for (const char *s = c == '+' ? "plus" : "sharp"; *s; s++)
				PUT(*s);
		}
	}
#undef PUT
	if (len > 0)
		buf[n < len ? n : len - 1] = '\0';
	return n;
}

/* The skill index a key maps to. */
static uint32_t
key_skill(const void *v)
{
	return (uint32_t) ((uintptr_t) v - 1);
}

/* Checks a display name or alias (what names it in errors). */
static int
check_name(lm_textfile *tf, const char *what, const char *s)
{
	if (*s == '\0')
		return lm_textfile_fail(tf, LM_EPARSE, "empty %s", what);
	if (strlen(s) > LM_SKILL_NAME_MAX)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "%s longer than %d bytes", what, LM_SKILL_NAME_MAX);
	if (lm_text_has_control(s))
		return lm_textfile_fail(
		    tf, LM_EPARSE, "%s \"%s\" contains a control character", what, s);
	if (!lm_pb_utf8_valid(s, strlen(s)))
		return lm_textfile_fail(tf, LM_EPARSE, "%s is not valid UTF-8", what);
	return LM_OK;
}

/* Indexes text (an id, name or alias of skill idx) under its key. The same
 * key twice for one skill is fine; a key of another skill is a collision. */
static int
add_key(lm_textfile *tf, struct lm_taxonomy *t, uint32_t idx, const char *what,
    const char *text)
{
	char key[LM_SKILL_KEY_MAX];
	size_t n = lm_skill_key(text, key, sizeof(key));
	void *v;
	char *copy;

	if (n == 0)
		return lm_textfile_fail(tf, LM_EPARSE,
		    "%s \"%s\" has no letters or digits to look it up by", what, text);
	if (n >= sizeof(key))
		return lm_textfile_fail(tf, LM_E2BIG,
		    "%s \"%s\" has a lookup key longer than %d bytes", what, text,
		    LM_SKILL_KEY_MAX - 1);
	if ((v = lm_hashmap_get(t->keys, key)) != NULL) {
		uint32_t o = key_skill(v);
		const lm_skill *other = &t->skills[o];
		if (o == idx)
			return LM_OK;
		if (strcmp(what, "id") == 0 && strcmp(other->id, text) == 0)
			return lm_textfile_fail(tf, LM_ESCHEMA,
			    "duplicate id \"%s\" (first on line %u)", text, t->lines[o]);
		return lm_textfile_fail(tf, LM_ESCHEMA,
		    "%s \"%s\" collides with skill \"%s\" (line %u): both look up as "
		    "\"%s\"",
		    what, text, other->id, t->lines[o], key);
	}
	if ((copy = malloc(n + 1)) == NULL)
		return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
	memcpy(copy, key, n + 1);
	if (lm_hashmap_put(t->keys, copy, (void *) ((uintptr_t) idx + 1)) != LM_OK) {
		free(copy);
		return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
	}
	return LM_OK;
}

/* Parses one skill line, split in place. */
static int
parse_skill(void *arg, lm_textfile *tf, char *line)
{
	struct lm_taxonomy *t = arg;
	char *col[4];
	size_t ncol = 0;
	char *p;
	lm_skill *sk;
	uint32_t idx;
	int rv;

	ncol = lm_textfile_split(line, col, 4);
	if (ncol != 4)
		return lm_textfile_fail(tf, LM_EPARSE,
		    "expected 4 tab-separated columns (id, name, category, aliases), "
		    "found %zu",
		    ncol);
	if (*col[0] == '\0')
		return lm_textfile_fail(tf, LM_EPARSE, "empty id");
	if (strlen(col[0]) > LM_SKILL_ID_MAX)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "id longer than %d bytes", LM_SKILL_ID_MAX);
	if (!lm_textfile_kebab(col[0]))
		return lm_textfile_fail(tf, LM_EPARSE,
		    "id \"%s\" is not lower-case kebab-case ASCII (a-z, 0-9, '-')",
		    col[0]);
	if ((rv = check_name(tf, "name", col[1])) != LM_OK)
		return rv;
	if (*col[2] == '\0')
		return lm_textfile_fail(tf, LM_EPARSE, "empty category");
	if (strlen(col[2]) > LM_SKILL_CATEGORY_MAX)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "category longer than %d bytes", LM_SKILL_CATEGORY_MAX);
	if (!lm_textfile_kebab(col[2]))
		return lm_textfile_fail(tf, LM_EPARSE,
		    "category \"%s\" is not lower-case kebab-case ASCII", col[2]);

	if (t->nskills >= LM_TAXONOMY_SKILLS_MAX)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "more than %d skills", LM_TAXONOMY_SKILLS_MAX);
	if (t->nskills == t->capskills) {
		size_t cap = t->capskills ? t->capskills * 2 : 256;
		lm_skill *skills = realloc(t->skills, cap * sizeof(*skills));
		uint32_t *lines;
		if (skills == NULL)
			return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
		t->skills = skills;
		if ((lines = realloc(t->lines, cap * sizeof(*lines))) == NULL)
			return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
		t->lines = lines;
		t->capskills = cap;
	}
	idx = (uint32_t) t->nskills;
	sk = &t->skills[idx];
	sk->id = col[0];
	sk->name = col[1];
	sk->category = col[2];
	t->lines[idx] = lm_textfile_line(tf);
	/* Counted before its keys go in, so collision messages can name it;
	 * any failure below fails the whole load. */
	t->nskills++;

	if ((rv = add_key(tf, t, idx, "id", col[0])) != LM_OK ||
	    (rv = add_key(tf, t, idx, "name", col[1])) != LM_OK)
		return rv;
	if (*col[3] == '\0')
		return LM_OK;

	size_t naliases = 0;
	for (p = col[3];;) {
		char *bar = strchr(p, '|');
		char *alias;
		if (bar != NULL)
			*bar = '\0';
		alias = lm_textfile_trim(p);
		if (++naliases > LM_TAXONOMY_ALIASES_MAX)
			return lm_textfile_fail(tf, LM_E2BIG, "more than %d aliases",
			    LM_TAXONOMY_ALIASES_MAX);
		if ((rv = check_name(tf, "alias", alias)) != LM_OK ||
		    (rv = add_key(tf, t, idx, "alias", alias)) != LM_OK)
			return rv;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return LM_OK;
}

static int
keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	unsigned char cx = (unsigned char) x->key[0], cy = (unsigned char) y->key[0];

	if (cx != cy)
		return cx < cy ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Fills t->sorted and t->byfirst from the hash map; LM_OK or LM_ENOMEM. */
static int
build_typo_table(struct lm_taxonomy *t)
{
	const char *k;
	void *v;
	size_t n = 0;

	t->nsorted = lm_hashmap_count(t->keys);
	if ((t->sorted = calloc(t->nsorted, sizeof(*t->sorted))) == NULL)
		return LM_ENOMEM;
	for (size_t it = 0; lm_hashmap_next(t->keys, &it, &k, &v);)
		t->sorted[n++] = (struct keyref){
		    .key = k, .len = (uint32_t) strlen(k), .skill = key_skill(v)};
	qsort(t->sorted, n, sizeof(*t->sorted), keyref_cmp);
	for (size_t c = 0, i = 0; c <= 256; c++) {
		while (i < n && (unsigned char) t->sorted[i].key[0] < c)
			i++;
		t->byfirst[c] = i;
	}
	return LM_OK;
}

int
lm_taxonomy_load(const char *path, lm_taxonomy **out, char *err, size_t errlen)
{
	static const lm_textfile_opts opts = {.file_max = LM_TAXONOMY_FILE_MAX,
	    .line_max = LM_TAXONOMY_LINE_MAX,
	    .format = FORMAT_VERSION,
	    .version_max = LM_TAXONOMY_VERSION_MAX};
	struct lm_taxonomy *t;
	int rv;

	if (out == NULL)
		return lm_textfile_errf(
		    err, errlen, path, 0, LM_EINVAL, "no output pointer");
	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL || lm_hashmap_new(&t->keys) != LM_OK) {
		free(t);
		return lm_textfile_errf(err, errlen, path, 0, LM_ENOMEM, "out of memory");
	}
	/* Skills point into the text: the taxonomy keeps it. */
	rv = lm_textfile_read(path, &opts, err, errlen, parse_skill, t, t->version,
	    sizeof(t->version), &t->text);
	if (rv == LM_OK && t->nskills == 0)
		rv = lm_textfile_errf(err, errlen, path, 0, LM_EPARSE, "no skills");
	if (rv == LM_OK && (rv = build_typo_table(t)) != LM_OK)
		rv = lm_textfile_errf(err, errlen, path, 0, rv, "out of memory");
	if (rv != LM_OK) {
		lm_taxonomy_free(t);
		return rv;
	}
	*out = t;
	return LM_OK;
}

void
lm_taxonomy_free(lm_taxonomy *t)
{
	const char *key;
	size_t it = 0;

	if (t == NULL)
		return;
	while (lm_hashmap_next(t->keys, &it, &key, NULL))
		free((char *) key);
	lm_hashmap_free(t->keys);
	free(t->sorted);
	free(t->skills);
	free(t->lines);
	free(t->text);
	free(t);
}

size_t
lm_taxonomy_count(const lm_taxonomy *t)
{
	return t ? t->nskills : 0;
}

const char *
lm_taxonomy_version(const lm_taxonomy *t)
{
	return t ? t->version : "";
}

const lm_skill *
lm_taxonomy_at(const lm_taxonomy *t, size_t i)
{
	return t && i < t->nskills ? &t->skills[i] : NULL;
}

/* The skill for a key of length n (n > 0), or NULL. */
static const lm_skill *
find_key(const lm_taxonomy *t, const char *key, size_t n)
{
	void *v;

	(void) n;
	if (t == NULL || (v = lm_hashmap_get(t->keys, key)) == NULL)
		return NULL;
	return &t->skills[key_skill(v)];
}

const lm_skill *
lm_taxonomy_lookup(const lm_taxonomy *t, const char *name)
{
	char key[LM_SKILL_KEY_MAX];
	size_t n = lm_skill_key(name, key, sizeof(key));

	if (n == 0 || n >= sizeof(key))
		return NULL;
	return find_key(t, key, n);
}

const lm_skill *
lm_taxonomy_get(const lm_taxonomy *t, const char *id)
{
	const lm_skill *s = lm_taxonomy_lookup(t, id);
	return s && strcmp(s->id, id) == 0 ? s : NULL;
}

/*
 * Optimal string alignment distance between a (n bytes) and b (m bytes), or
 * bound + 1 when it exceeds bound. Both are at most LM_SKILL_KEY_MAX - 1
 * bytes.
 */
static unsigned
osa_distance(const char *a, size_t n, const char *b, size_t m, unsigned bound)
{
	unsigned rows[3][LM_SKILL_KEY_MAX];
	unsigned *pp = rows[0], *prev = rows[1], *cur = rows[2];

	if ((n > m ? n - m : m - n) > bound)
		return bound + 1;
	for (size_t j = 0; j <= m; j++)
		prev[j] = (unsigned) j;
	for (size_t i = 1; i <= n; i++) {
		unsigned rowmin;
		cur[0] = (unsigned) i;
		rowmin = cur[0];
		for (size_t j = 1; j <= m; j++) {
			unsigned cost = a[i - 1] != b[j - 1];
			unsigned v = prev[j - 1] + cost;
			if (prev[j] + 1 < v)
				v = prev[j] + 1;
			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
				v = pp[j - 2] + 1;
			cur[j] = v;
			if (v < rowmin)
				rowmin = v;
		}
		if (rowmin > bound)
			return bound + 1;
		unsigned *t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[m] <= bound ? prev[m] : bound + 1;
}

const lm_skill *
lm_taxonomy_resolve(const lm_taxonomy *t, const char *name, unsigned *distance)
{
	char key[LM_SKILL_KEY_MAX];
	size_t n = lm_skill_key(name, key, sizeof(key));
	const lm_skill *s;
	unsigned bound, best;
	uint32_t found = UINT32_MAX;
	bool tie = false;
	unsigned c;

	if (distance != NULL)
		*distance = 0;
	if (t == NULL || n == 0 || n >= sizeof(key))
		return NULL;
	if ((s = find_key(t, key, n)) != NULL)
		return s;
	if ((bound = LM_SKILL_TYPO_DISTANCE(n)) == 0)
		return NULL;
	best = bound + 1;
	/* People seldom misspell the first letter, and words that differ there
	 * are usually other words ("internal" and "external", "pediatrics" and
	 * "geriatrics"): only keys of the same first byte are compared. */
	c = (unsigned char) key[0];
	for (size_t i = t->byfirst[c]; i < t->byfirst[c + 1]; i++) {
		const struct keyref *r = &t->sorted[i];
		uint32_t skill = r->skill;
		unsigned d;
		if (r->len + bound < n)
			continue;
		if (r->len > n + bound)
			break;
		d = osa_distance(key, n, r->key, r->len, best < bound ? best : bound);
		if (d < best) {
			best = d;
			found = skill;
			tie = false;
		} else if (d == best && d <= bound && skill != found) {
			tie = true;
		}
	}
	if (found == UINT32_MAX || tie)
		return NULL;
	if (distance != NULL)
		*distance = best;
	return &t->skills[found];
}

int
lm_skill_unknown_id(const char *name, char *buf, size_t len)
{
	const size_t plen = sizeof(LM_SKILL_UNKNOWN_PREFIX) - 1;

	if (name == NULL || buf == NULL || len == 0)
		return LM_EINVAL;
	buf[0] = '\0';
	if (lm_skill_key(name, NULL, 0) == 0)
		return LM_EINVAL;
	if (len <= plen || lm_skill_key(name, buf + plen, len - plen) >= len - plen) {
		buf[0] = '\0';
		return LM_E2BIG;
	}
	memcpy(buf, LM_SKILL_UNKNOWN_PREFIX, plen);
	return LM_OK;
}

int
lm_taxonomy_canonical(const lm_taxonomy *t, const char *name, char *buf, size_t len)
{
	const lm_skill *s;
	size_t idlen;

	if (t == NULL || name == NULL || buf == NULL || len == 0)
		return LM_EINVAL;
	if ((s = lm_taxonomy_resolve(t, name, NULL)) == NULL)
		return lm_skill_unknown_id(name, buf, len);
	buf[0] = '\0';
	if ((idlen = strlen(s->id)) >= len)
		return LM_E2BIG;
	memcpy(buf, s->id, idlen + 1);
	return LM_OK;
}
