/*
 * fairness.c - loading data/fairness/requirements.tsv and finding its
 * phrases in text; see fairness.h for the contract.
 *
 * The file is read into one buffer and split in place: rule strings and the
 * words of every phrase point into it. Ingest screens every title, skill and
 * requirement of every posting, so matching is indexed: each phrase is filed
 * under the hash of its first literal word (its anchor), and a text's words
 * are looked up once each; only the phrases whose anchor hash equals a
 * word's are compared word by word.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/fairness.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"
#include "lunamatch/textfile.h"

#define FORMAT_VERSION "1"
#define WILDCARD       "*"

struct phrase {
	uint32_t rule; /* index into rules */
	uint32_t nwords;
	const char *words[LM_FAIRNESS_PHRASE_WORDS]; /* lower case; "*" = any */
	uint32_t lens[LM_FAIRNESS_PHRASE_WORDS];
	uint32_t anchor; /* index of the first word that is not "*" */
	uint64_t hash;   /* lm_hash_bytes of that word */
	bool except;     /* an exception ("!"): not indexed, see excepted() */
};

struct lm_fairness {
	char *text; /* file contents, split in place */
	lm_fair_rule *rules;
	size_t nrules, caprules;
	struct phrase *phrases;
	size_t nphrases, capphrases;
	/* The anchor index: the phrases of bucket b (anchor hash & mask) are
	 * bucket_phrases[bucket_start[b] .. bucket_start[b + 1]), ascending. */
	uint32_t *bucket_start;   /* mask + 2 entries */
	uint32_t *bucket_phrases; /* nphrases entries; no exceptions */
	uint64_t mask;
	/* Phrases are filed rule by rule: those of rule r are
	 * phrases[first[r] .. first[r + 1]). nrules + 1 entries. */
	uint32_t *first;
	char version[LM_FAIRNESS_VERSION_MAX + 1];
};

_Static_assert(LM_FAIRNESS_VERSION_MAX <= LM_TEXTFILE_VERSION_MAX, "version fits");

static bool
is_wildcard(const struct phrase *ph, uint32_t k)
{
	return ph->lens[k] == 1 && ph->words[k][0] == '*';
}

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Length of the UTF-8 space or punctuation mark that s starts with, or 0:
 * U+00A0 (no-break space), U+00AB and U+00BB (guillemets), U+2000..U+206F
 * (spaces, dashes, quotes, bullets), U+3000..U+3002 (ideographic space,
 * comma and full stop), U+FEFF. s is NUL-terminated: reading stops at the
 * first byte that does not fit. */
static size_t
punct_len(const unsigned char *s)
{
	if (s[0] == 0xc2 && (s[1] == 0xa0 || s[1] == 0xab || s[1] == 0xbb))
		return 2;
	if (s[0] == 0xe2 && (s[1] == 0x80 || s[1] == 0x81) && s[2] >= 0x80 &&
	    s[2] <= (s[1] == 0x80 ? 0xbf : 0xaf))
		return 3;
	if (s[0] == 0xe3 && s[1] == 0x80 && s[2] >= 0x80 && s[2] <= 0x82)
		return 3;
	if (s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
		return 3;
	return 0;
}

/*
 * The number of bytes at s[i] (i < n, s NUL-terminated) that belong to a
 * word, 0 when s[i] separates words. A word is made of ASCII letters and
 * digits and of bytes >= 0x80 that are not punct_len's marks; inside a word
 * (in_word), an apostrophe, ASCII or U+2019, belongs to it when a word byte
 * follows before n ("Young's" is one word: a name's possessive is not the
 * adjective "young").
 */
static size_t
word_part(const char *s, size_t i, size_t n, bool in_word)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t ap = 0;

	if (i >= n)
		return 0;
	if (is_alnum(u[i]) || (u[i] >= 0x80 && punct_len(u + i) == 0))
		return 1;
	if (!in_word)
		return 0;
	if (u[i] == '\'')
		ap = 1;
	else if (u[i] == 0xe2 && u[i + 1] == 0x80 && u[i + 2] == 0x99)
		ap = 3;
	return ap > 0 && word_part(s, i + ap, n, false) > 0 ? ap : 0;
}

/* The number of bytes that separate words at s[i] (word_part gave 0). */
static size_t
sep_len(const char *s, size_t i)
{
	size_t k = punct_len((const unsigned char *) s + i);
	return k > 0 ? k : 1;
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char) (c - 'A' + 'a') : c;
}

/* Splits the phrase s (NUL-terminated, modified in place) into words; a
 * leading "!" makes it an exception. */
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
	if (s[0] == '!') {
		ph->except = true;
		s++;
	}
	for (size_t i = 0, n = strlen(s); i < n;) {
		char *w = s + i;
		if (s[i] == '*') {
			i++;
		} else if (word_part(s, i, n, false) > 0) {
			for (size_t k, start = i;
			     (k = word_part(s, i, n, i > start)) > 0;)
				for (; k > 0; k--, i++)
					s[i] = (char) lower((unsigned char) s[i]);
		} else {
			i += sep_len(s, i);
			continue;
		}
		if (ph->nwords == LM_FAIRNESS_PHRASE_WORDS)
			return lm_textfile_fail(tf, LM_E2BIG,
			    "phrase \"%s\" has more than %d words", s,
			    LM_FAIRNESS_PHRASE_WORDS);
		ph->words[ph->nwords] = w;
		ph->lens[ph->nwords] = (uint32_t) (s + i - w);
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
	/* The reason goes into every flagged posting as it is: a record with
	 * a string that is not UTF-8 could never be read back. */
	for (size_t i = 2; i < 4; i++) {
		const char *what = i == 2 ? "the phrases" : "the reason";
		if (lm_text_has_control(col[i]))
			return lm_textfile_fail(
			    tf, LM_EPARSE, "%s: a control character", what);
		if (!lm_pb_utf8_valid(col[i], strlen(col[i])))
			return lm_textfile_fail(
			    tf, LM_EPARSE, "%s: not valid UTF-8", what);
	}
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

	size_t nphrases = 0, nexcept = 0;
	for (p = col[2];;) {
		char *bar = strchr(p, '|');
		if (bar != NULL)
			*bar = '\0';
		if (++nphrases > LM_FAIRNESS_PHRASES_MAX)
			return lm_textfile_fail(tf, LM_E2BIG, "more than %d phrases",
			    LM_FAIRNESS_PHRASES_MAX);
		if ((rv = parse_phrase(tf, f, idx, lm_textfile_trim(p))) != LM_OK)
			return rv;
		nexcept += f->phrases[f->nphrases - 1].except;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	if (nexcept == nphrases)
		return lm_textfile_fail(
		    tf, LM_EPARSE, "only exceptions (\"!\" phrases): no phrase to match");
	return LM_OK;
}

/* Files every phrase under its anchor word (parse_phrase made sure each has
 * one). Returns LM_OK or LM_ENOMEM. */
static int
build_index(struct lm_fairness *f)
{
	size_t nb = 16;

	while (nb < 2 * f->nphrases)
		nb *= 2;
	f->mask = nb - 1;
	f->bucket_start = calloc(nb + 1, sizeof(*f->bucket_start));
	f->bucket_phrases = calloc(f->nphrases + 1, sizeof(*f->bucket_phrases));
	f->first = calloc(f->nrules + 1, sizeof(*f->first));
	if (f->bucket_start == NULL || f->bucket_phrases == NULL || f->first == NULL)
		return LM_ENOMEM;
	for (size_t p = f->nphrases; p > 0; p--)
		f->first[f->phrases[p - 1].rule] = (uint32_t) (p - 1);
	f->first[f->nrules] = (uint32_t) f->nphrases;
	for (size_t p = 0; p < f->nphrases; p++) {
		struct phrase *ph = &f->phrases[p];
		ph->anchor = 0;
		while (is_wildcard(ph, ph->anchor))
			ph->anchor++;
		ph->hash = lm_hash_bytes(ph->words[ph->anchor], ph->lens[ph->anchor]);
		if (!ph->except)
			f->bucket_start[(ph->hash & f->mask) + 1]++;
	}
	for (size_t b = 0; b < nb; b++)
		f->bucket_start[b + 1] += f->bucket_start[b];
	/* Filled in phrase order, so every bucket lists its phrases ascending;
	 * bucket_start[b] runs ahead while filling and is moved back after. */
	for (size_t p = 0; p < f->nphrases; p++)
		if (!f->phrases[p].except)
			f->bucket_phrases[f->bucket_start[f->phrases[p].hash &
			                                  f->mask]++] = (uint32_t) p;
	for (size_t b = nb; b > 0; b--)
		f->bucket_start[b] = f->bucket_start[b - 1];
	f->bucket_start[0] = 0;
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
	if (rv == LM_OK && (rv = build_index(f)) != LM_OK)
		rv = lm_textfile_errf(err, errlen, path, 0, rv, "out of memory");
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
	free(f->bucket_start);
	free(f->bucket_phrases);
	free(f->first);
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

/* The best place found for one rule: its earliest word, and there the
 * phrase that comes first in the file. */
struct found {
	uint32_t rule, phrase, word;
};

/* True when the words of ph occur in low (the text, lower-cased) from word
 * i on. */
static bool
phrase_at(
    const struct phrase *ph, const char *low, const struct word *w, size_t nw, size_t i)
{
	if (i + ph->nwords > nw)
		return false;
	for (uint32_t k = 0; k < ph->nwords; k++) {
		const struct word *tw = &w[i + k];
		if (is_wildcard(ph, k))
			continue;
		if (tw->len != ph->lens[k] ||
		    memcmp(low + tw->start, ph->words[k], tw->len) != 0)
			return false;
	}
	return true;
}

/* True when an exception of rule matches words that cover words
 * [i, i + n) of the text: then the match there does not count. */
static bool
excepted(const struct lm_fairness *f, uint32_t rule, const char *low,
    const struct word *w, size_t nw, size_t i, size_t n)
{
	for (uint32_t p = f->first[rule]; p < f->first[rule + 1]; p++) {
		const struct phrase *ex = &f->phrases[p];
		if (!ex->except || ex->nwords < n)
			continue;
		for (size_t x = i + n >= ex->nwords ? i + n - ex->nwords : 0; x <= i; x++)
			if (phrase_at(ex, low, w, nw, x))
				return true;
	}
	return false;
}

/* Notes that phrase p of f matches from word i: kept when it is the rule's
 * first place (earliest word, then earliest phrase). */
static void
note(
    const struct lm_fairness *f, struct found *fs, size_t *nfound, uint32_t p, uint32_t i)
{
	uint32_t rule = f->phrases[p].rule;

	for (size_t k = 0; k < *nfound; k++) {
		if (fs[k].rule != rule)
			continue;
		if (i < fs[k].word || (i == fs[k].word && p < fs[k].phrase)) {
			fs[k].word = i;
			fs[k].phrase = p;
		}
		return;
	}
	fs[(*nfound)++] = (struct found){rule, p, i};
}

size_t
lm_fairness_match(const lm_fairness *f, const char *text, lm_fair_hit *hits, size_t max)
{
	struct word w[LM_FAIRNESS_TEXT_MAX / 2 + 1];
	struct found fs[LM_FAIRNESS_RULES_MAX];
	char low[LM_FAIRNESS_TEXT_MAX];
	size_t nw = 0, nfound = 0, len;

	if (f == NULL || text == NULL)
		return 0;
	/* A few bytes past the limit are looked at, so that a word the limit
	 * cuts is seen to be cut: it is not read, as its first part is not a
	 * word of the text ("Youngstown" cut after "Young"). */
	len = strnlen(text, LM_FAIRNESS_TEXT_MAX + 4);
	for (size_t i = 0; i < len && i < LM_FAIRNESS_TEXT_MAX;) {
		size_t s = i, k;
		if (word_part(text, i, len, false) == 0) {
			i += sep_len(text, i);
			continue;
		}
		while ((k = word_part(text, i, len, i > s)) > 0)
			i += k;
		if (i > LM_FAIRNESS_TEXT_MAX)
			break;
		for (size_t b = s; b < i; b++)
			low[b] = (char) lower((unsigned char) text[b]);
		w[nw].start = (uint32_t) s;
		w[nw].len = (uint32_t) (i - s);
		nw++;
	}
	for (size_t j = 0; j < nw; j++) {
		uint64_t h = lm_hash_bytes(low + w[j].start, w[j].len);
		uint64_t b = h & f->mask;
		for (uint32_t x = f->bucket_start[b]; x < f->bucket_start[b + 1]; x++) {
			uint32_t p = f->bucket_phrases[x];
			const struct phrase *ph = &f->phrases[p];
			if (ph->hash != h || j < ph->anchor ||
			    !phrase_at(ph, low, w, nw, j - ph->anchor) ||
			    excepted(f, ph->rule, low, w, nw, j - ph->anchor, ph->nwords))
				continue;
			/* At most one entry per rule, so fs cannot overflow. */
			note(f, fs, &nfound, p, (uint32_t) (j - ph->anchor));
		}
	}
	/* Hits in rule order (the file's), as the contract says. */
	for (size_t a = 1; a < nfound; a++) {
		struct found t = fs[a];
		size_t k = a;
		for (; k > 0 && fs[k - 1].rule > t.rule; k--)
			fs[k] = fs[k - 1];
		fs[k] = t;
	}
	for (size_t k = 0; k < nfound && k < max; k++) {
		const struct phrase *ph = &f->phrases[fs[k].phrase];
		const struct word *last = &w[fs[k].word + ph->nwords - 1];
		hits[k].rule = &f->rules[fs[k].rule];
		hits[k].start = w[fs[k].word].start;
		hits[k].end = last->start + last->len;
	}
	return nfound;
}
