/*
 * skill_stats.c - corpus statistics (document frequencies of skill ids over
 * the stored postings that are not closed) and the symbol tables that turn
 * skill ids and words into small dense integers; see score.h
 * (lm_skill_stats) and score_int.h.
 *
 * A symbol table holds one node per text that is counted (df > 0) or
 * referenced (refs > 0); a node with neither is freed and its symbol
 * reused. Symbols are dense: by_sym[sym] is the node of sym, NULL for a
 * free one. Lookups by text go through the shared hash map.
 */
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "score_int.h"

struct sym_node {
	uint64_t df;
	uint64_t refs;
	uint32_t sym;
	char text[];
};

struct symtab {
	lm_hashmap *map;          /* text -> node (keys point into the nodes) */
	struct sym_node **by_sym; /* cap slots; below nsym: a node or NULL */
	uint32_t *free_syms;      /* cap slots; n_free symbols to reuse */
	uint32_t nsym;            /* symbols ever handed out (high-water mark) */
	uint32_t cap;
	uint32_t n_free;
};

struct lm_skill_stats {
	struct symtab skills;
	struct symtab words;
	uint64_t docs;
};

static void
symtab_clear(struct symtab *t)
{
	for (uint32_t i = 0; i < t->nsym; i++)
		free(t->by_sym[i]);
	lm_hashmap_free(t->map);
	free(t->by_sym);
	free(t->free_syms);
	memset(t, 0, sizeof(*t));
}

int
lm_skill_stats_new(lm_skill_stats **out)
{
	lm_skill_stats *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return LM_ENOMEM;
	if (lm_hashmap_new(&s->skills.map) != LM_OK ||
	    lm_hashmap_new(&s->words.map) != LM_OK) {
		lm_skill_stats_free(s);
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
	symtab_clear(&s->skills);
	symtab_clear(&s->words);
	free(s);
}

static struct sym_node *
node_find(const struct symtab *t, const char *text)
{
	return lm_hashmap_get(t->map, text);
}

/* Makes room for one more symbol. */
static int
sym_reserve(struct symtab *t)
{
	uint32_t cap;
	struct sym_node **bs;
	uint32_t *fs;

	if (t->n_free > 0 || t->nsym < t->cap)
		return LM_OK;
	if (t->cap >= LM_SKILL_SYMS_MAX)
		return LM_ENOMEM;
	cap = t->cap == 0 ? 256 : t->cap * 2;
	if (cap > LM_SKILL_SYMS_MAX)
		cap = LM_SKILL_SYMS_MAX;
	if ((bs = realloc(t->by_sym, cap * sizeof(*bs))) == NULL)
		return LM_ENOMEM;
	t->by_sym = bs;
	if ((fs = realloc(t->free_syms, cap * sizeof(*fs))) == NULL)
		return LM_ENOMEM; /* by_sym is larger than needed: harmless */
	t->free_syms = fs;
	t->cap = cap;
	return LM_OK;
}

/* The node of text, created (df 0, refs 0, a symbol) when missing; NULL
 * when out of memory (or symbols). */
static struct sym_node *
node_intern(struct symtab *t, const char *text)
{
	struct sym_node *n = node_find(t, text);
	size_t len;

	if (n != NULL)
		return n;
	len = strlen(text);
	if (sym_reserve(t) != LM_OK || (n = malloc(sizeof(*n) + len + 1)) == NULL)
		return NULL;
	memcpy(n->text, text, len + 1);
	n->df = 0;
	n->refs = 0;
	if (lm_hashmap_put(t->map, n->text, n) != LM_OK) {
		free(n);
		return NULL;
	}
	n->sym = t->n_free > 0 ? t->free_syms[--t->n_free] : t->nsym++;
	t->by_sym[n->sym] = n;
	return n;
}

/* Frees n when nothing counts or references it any more. */
static void
node_release(struct symtab *t, struct sym_node *n)
{
	if (n->df > 0 || n->refs > 0)
		return;
	lm_hashmap_remove(t->map, n->text);
	t->by_sym[n->sym] = NULL;
	t->free_syms[t->n_free++] = n->sym; /* room: n_free < nsym <= cap */
	free(n);
}

static uint32_t
tab_lookup(const struct symtab *t, const char *text)
{
	const struct sym_node *n;

	if (text == NULL || text[0] == '\0')
		return LM_SKILL_SYM_NONE;
	n = node_find(t, text);
	return n == NULL ? LM_SKILL_SYM_NONE : n->sym;
}

static int
tab_ref(struct symtab *t, const char *text, uint32_t *sym)
{
	struct sym_node *n = node_intern(t, text);

	if (n == NULL) {
		*sym = LM_SKILL_SYM_NONE;
		return LM_ENOMEM;
	}
	n->refs++;
	*sym = n->sym;
	return LM_OK;
}

static void
tab_unref(struct symtab *t, uint32_t sym)
{
	struct sym_node *n;

	if (sym == LM_SKILL_SYM_NONE)
		return;
	n = t->by_sym[sym];
	n->refs--;
	node_release(t, n);
}

uint32_t
lm_sym_lookup(const lm_skill_stats *s, const char *id)
{
	return s == NULL ? LM_SKILL_SYM_NONE : tab_lookup(&s->skills, id);
}

int
lm_sym_ref(lm_skill_stats *s, const char *id, uint32_t *sym)
{
	return tab_ref(&s->skills, id, sym);
}

void
lm_sym_unref(lm_skill_stats *s, uint32_t sym)
{
	tab_unref(&s->skills, sym);
}

uint32_t
lm_sym_limit(const lm_skill_stats *s)
{
	return s == NULL ? 0 : s->skills.nsym;
}

uint32_t
lm_word_lookup(const lm_skill_stats *s, const char *word)
{
	return s == NULL ? LM_SKILL_SYM_NONE : tab_lookup(&s->words, word);
}

int
lm_word_ref(lm_skill_stats *s, const char *word, uint32_t *sym)
{
	return tab_ref(&s->words, word, sym);
}

void
lm_word_unref(lm_skill_stats *s, uint32_t sym)
{
	tab_unref(&s->words, sym);
}

uint32_t
lm_word_limit(const lm_skill_stats *s)
{
	return s == NULL ? 0 : s->words.nsym;
}

/* idf from N and df; the one formula every scoring path uses. */
static double
idf_of(uint64_t docs, uint64_t df)
{
	return log(1.0 + (double) docs / (1.0 + (double) df));
}

double
lm_sym_idf_min(const lm_skill_stats *s)
{
	/* Each counted document counts a symbol at most once: df <= docs. */
	if (s == NULL || s->docs == 0)
		return 1.0;
	return idf_of(s->docs, s->docs);
}

double
lm_sym_idf(const lm_skill_stats *s, uint32_t sym)
{
	if (s == NULL || s->docs == 0)
		return 1.0;
	return idf_of(s->docs, sym == LM_SKILL_SYM_NONE ? 0 : s->skills.by_sym[sym]->df);
}

bool
lm_skill_stats_counts(const Lunamatch__V1__JobPosting *p)
{
	return p->status != LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED;
}

int
lm_skill_stats_add(lm_skill_stats *s, const lm_posting_prep *p)
{
	struct sym_node **added;
	size_t nadded = 0;

	if (p->bound == s) { /* the nodes exist: referenced by the binding */
		for (size_t i = 0; i < p->n_skills; i++)
			s->skills.by_sym[p->skills[i].sym]->df++;
		s->docs++;
		return LM_OK;
	}
	if (p->n_skills == 0)
		added = NULL;
	else if ((added = calloc(p->n_skills, sizeof(*added))) == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < p->n_skills; i++) {
		struct sym_node *n = node_intern(&s->skills, p->skills[i].id);

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
		node_release(&s->skills, added[i]);
	}
	free(added);
	return LM_ENOMEM;
}

void
lm_skill_stats_remove(lm_skill_stats *s, const lm_posting_prep *p)
{
	for (size_t i = 0; i < p->n_skills; i++) {
		struct sym_node *n = p->bound == s
		                         ? s->skills.by_sym[p->skills[i].sym]
		                         : node_find(&s->skills, p->skills[i].id);
		if (n == NULL)
			continue;
		if (n->df > 0)
			n->df--;
		node_release(&s->skills, n);
	}
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
	const struct sym_node *n;

	if (s == NULL || skill_id == NULL)
		return 0;
	n = node_find(&s->skills, skill_id);
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
	return s == NULL ? 0 : lm_hashmap_count(s->skills.map);
}
