/*
 * fairness.c - loading data/fairness/requirements.tsv and finding its
 * phrases in text; see fairness.h for the contract.
 *
 * The file is read into one buffer and split in place: rule strings and the
 * words of every phrase point into it. Phrases are few (hundreds) and texts
 * short (a title, a skill name), so matching compares every phrase at every
 * word of the text; no index is needed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/textfile.h"

#define FORMAT_VERSION "1"
#define WILDCARD       "*"

struct phrase {
	uint32_t rule; /* index into rules */
	uint32_t nwords;
	const char *words[LM_FAIRNESS_PHRASE_WORDS]; /* lower case; "*" = any */
	uint32_t lens[LM_FAIRNESS_PHRASE_WORDS];
};

struct lm_fairness {
	char *text; /* file contents, split in place */
	lm_fair_rule *rules;
	size_t nrules, caprules;
	struct phrase *phrases;
	size_t nphrases, capphrases;
	char version[LM_FAIRNESS_VERSION_MAX + 1];
};

_Static_assert(LM_FAIRNESS_VERSION_MAX <= LM_TEXTFILE_VERSION_MAX, "version fits");

static bool
is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c >= 0x80;
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char) (c - 'A' + 'a') : c;
}

/* Splits the phrase s (NUL-terminated, modified in place) into words. */
static int
parse_phrase(lm_textfile *tf, struct lm_fairness *f, uint32_t rule, char *s)
{
	struct phrase *ph;
	bool literal = false;

	if (f->nphrases == f->capphrases) {
		size_t cap = f->capphrases ? f->capphrases * 2 : 128;
		struct phrase *np = realloc(f->phrases, cap * sizeof(*np));
		if (np == NULL)
			return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
		f->phrases = np;
		f->capphrases = cap;
	}
	ph = &f->phrases[f->nphrases];
	memset(ph, 0, sizeof(*ph));
	ph->rule = rule;
	for (char *p = s; *p;) {
		char *w;
		if (*p == '*') {
			w = p++;
		} else if (is_word_byte((unsigned char) *p)) {
			w = p;
			for (; is_word_byte((unsigned char) *p); p++)
				*p = (char) lower((unsigned char) *p);
		} else {
			p++;
			continue;
		}
		if (ph->nwords == LM_FAIRNESS_PHRASE_WORDS)
			return lm_textfile_fail(tf, LM_E2BIG,
			    "phrase \"%s\" has more than %d words", s,
			    LM_FAIRNESS_PHRASE_WORDS);
		ph->words[ph->nwords] = w;
		ph->lens[ph->nwords] = (uint32_t) (p - w);
		literal = literal || *w != '*';
		ph->nwords++;
		/* The separator after a word ends it; the word's length is
		 * what matching reads, so the text may stay as it is. */
	}
	if (!literal)
		return lm_textfile_fail(tf, LM_EPARSE,
		    "phrase \"%s\" has no word to match (only \"*\" or punctuation)", s);
	f->nphrases++;
	return LM_OK;
}

/* Parses one rule line, split in place. */
static int
parse_rule(void *arg, lm_textfile *tf, char *line)
{
	struct lm_fairness *f = arg;
	char *col[4];
	size_t ncol = 0;
	char *p;
	lm_fair_rule *r;
	uint32_t idx;
	int rv;

	ncol = lm_textfile_split(line, col, 4);
	if (ncol != 4)
		return lm_textfile_fail(tf, LM_EPARSE,
		    "expected 4 tab-separated columns (id, category, phrases, reason), "
		    "found %zu",
		    ncol);
	for (size_t i = 0; i < 2; i++) {
		const char *what = i == 0 ? "rule id" : "category";
		if (strlen(col[i]) > LM_FAIRNESS_ID_MAX)
			return lm_textfile_fail(tf, LM_E2BIG, "%s longer than %d bytes",
			    what, LM_FAIRNESS_ID_MAX);
		if (!lm_textfile_kebab(col[i]))
			return lm_textfile_fail(tf, LM_EPARSE,
			    "%s \"%s\" is not lower-case kebab-case ASCII", what, col[i]);
	}
	if (*col[3] == '\0')
		return lm_textfile_fail(tf, LM_EPARSE, "empty reason");
	if (strlen(col[3]) > LM_FAIRNESS_REASON_MAX)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "reason longer than %d bytes", LM_FAIRNESS_REASON_MAX);
	for (size_t i = 0; i < f->nrules; i++)
		if (strcmp(f->rules[i].id, col[0]) == 0)
			return lm_textfile_fail(
			    tf, LM_ESCHEMA, "duplicate rule id \"%s\"", col[0]);
	if (f->nrules >= LM_FAIRNESS_RULES_MAX)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "more than %d rules", LM_FAIRNESS_RULES_MAX);
	if (f->nrules == f->caprules) {
		size_t cap = f->caprules ? f->caprules * 2 : 32;
		lm_fair_rule *nr = realloc(f->rules, cap * sizeof(*nr));
		if (nr == NULL)
			return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
		f->rules = nr;
		f->caprules = cap;
	}
	idx = (uint32_t) f->nrules;
	r = &f->rules[f->nrules++];
	r->id = col[0];
	r->category = col[1];
	r->reason = col[3];

	size_t nphrases = 0;
	for (p = col[2];;) {
		char *bar = strchr(p, '|');
		if (bar != NULL)
			*bar = '\0';
		if (++nphrases > LM_FAIRNESS_PHRASES_MAX)
			return lm_textfile_fail(tf, LM_E2BIG, "more than %d phrases",
			    LM_FAIRNESS_PHRASES_MAX);
		if ((rv = parse_phrase(tf, f, idx, lm_textfile_trim(p))) != LM_OK)
			return rv;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return LM_OK;
}

int
lm_fairness_load(const char *path, lm_fairness **out, char *err, size_t errlen)
{
	static const lm_textfile_opts opts = {.file_max = LM_FAIRNESS_FILE_MAX,
	    .line_max = LM_FAIRNESS_LINE_MAX,
	    .format = FORMAT_VERSION,
	    .version_max = LM_FAIRNESS_VERSION_MAX};
	struct lm_fairness *f;
	int rv;

	if (out == NULL)
		return lm_textfile_errf(
		    err, errlen, path, 0, LM_EINVAL, "no output pointer");
	*out = NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return lm_textfile_errf(err, errlen, path, 0, LM_ENOMEM, "out of memory");
	rv = lm_textfile_read(path, &opts, err, errlen, parse_rule, f, f->version,
	    sizeof(f->version), &f->text);
	if (rv == LM_OK && f->nrules == 0)
		rv = lm_textfile_errf(err, errlen, path, 0, LM_EPARSE, "no rules");
	if (rv != LM_OK) {
		lm_fairness_free(f);
		return rv;
	}
	*out = f;
	return LM_OK;
}

void
lm_fairness_free(lm_fairness *f)
{
	if (f == NULL)
		return;
	free(f->rules);
	free(f->phrases);
	free(f->text);
	free(f);
}

const char *
lm_fairness_version(const lm_fairness *f)
{
	return f ? f->version : "";
}

size_t
lm_fairness_count(const lm_fairness *f)
{
	return f ? f->nrules : 0;
}

const lm_fair_rule *
lm_fairness_at(const lm_fairness *f, size_t i)
{
	return f && i < f->nrules ? &f->rules[i] : NULL;
}

struct word {
	uint32_t start, len;
};

/* True when the words of ph occur in text from word i on. */
static bool
phrase_at(
    const struct phrase *ph, const char *text, const struct word *w, size_t nw, size_t i)
{
	if (i + ph->nwords > nw)
		return false;
	for (uint32_t k = 0; k < ph->nwords; k++) {
		const struct word *tw = &w[i + k];
		if (ph->words[k][0] == '*' && ph->lens[k] == 1)
			continue;
		if (tw->len != ph->lens[k])
			return false;
		for (uint32_t b = 0; b < tw->len; b++)
			if (lower((unsigned char) text[tw->start + b]) !=
			    (unsigned char) ph->words[k][b])
				return false;
	}
	return true;
}

size_t
lm_fairness_match(const lm_fairness *f, const char *text, lm_fair_hit *hits, size_t max)
{
	struct word w[LM_FAIRNESS_TEXT_MAX / 2 + 1];
	size_t nw = 0, n = 0, len;

	if (f == NULL || text == NULL)
		return 0;
	len = strnlen(text, LM_FAIRNESS_TEXT_MAX);
	for (size_t i = 0; i < len;) {
		if (!is_word_byte((unsigned char) text[i])) {
			i++;
			continue;
		}
		size_t s = i;
		while (i < len && is_word_byte((unsigned char) text[i]))
			i++;
		w[nw].start = (uint32_t) s;
		w[nw].len = (uint32_t) (i - s);
		nw++;
	}
	/* Phrases are stored rule by rule, in file order. */
	for (size_t p = 0; p < f->nphrases;) {
		uint32_t rule = f->phrases[p].rule;
		size_t best = SIZE_MAX, bestlen = 0;
		for (; p < f->nphrases && f->phrases[p].rule == rule; p++) {
			const struct phrase *ph = &f->phrases[p];
			for (size_t i = 0; i < nw && i < best; i++) {
				if (phrase_at(ph, text, w, nw, i)) {
					best = i;
					bestlen = ph->nwords;
					break;
				}
			}
		}
		if (best == SIZE_MAX)
			continue;
		if (n < max) {
			hits[n].rule = &f->rules[rule];
			hits[n].start = w[best].start;
			hits[n].end =
			    w[best + bestlen - 1].start + w[best + bestlen - 1].len;
		}
		n++;
	}
	return n;
}
