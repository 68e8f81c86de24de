/*
 * prep.c - prepared records: a posting or profile with its skill ids
 * deduplicated and sorted, its title tokens split, and the scalars that
 * scoring reads copied next to each other; binding a prep to the corpus
 * statistics gives its skill ids symbols. See score.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lunamatch/error.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/pb.h"
#include "lunamatch/taxonomy.h"
#include "score_int.h"

#define TITLE_SCAN_MAX      512 /* bytes of a title looked at for tokens */
#define PREP_PREFETCH_BYTES 512 /* bytes of a prep that lm_prep_prefetch loads */

/* A 64-bit hash of text, never 0; fold: A-Z count as a-z (see
 * lm_hash_fold). */
static uint64_t
text_hash(const char *text, bool fold)
{
	return fold ? lm_hash_fold(text) : lm_hash_str(text);
}

bool
lm_text_caseeq(const char *a, uint64_t ha, const char *b, uint64_t hb)
{
	return ha == hb && strcasecmp(a, b) == 0;
}

int
lm_cmp_str(const void *a, const void *b)
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
	qsort(tok, n, sizeof(*tok), lm_cmp_str);
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
bool
lm_tokset_has(const struct tokset *ts, const uint64_t *h, const char *t, uint64_t th)
{
	for (size_t k = 0; k < ts->n; k++)
		if (h[k] == th && strcmp(ts->tok[k], t) == 0)
			return true;
	return false;
}

bool
lm_country_pack(const char *country, uint64_t *out)
{
	size_t len = strlen(country);

	if (len > COUNTRY_MAX)
		return false;
	*out = 0;
	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char) country[k];
		c = (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
		*out |= (uint64_t) c << (8 * k);
	}
	return true;
}

/* Packs the locations of locs that have a country into out (at most
 * cap); returns false when they do not fit (more of them, or a longer
 * country): then the scorer compares the record's locations. */
static bool
pack_locs(Lunamatch__V1__Location *const *locs, size_t n, struct ploc *out, size_t cap,
    uint32_t *n_out)
{
	*n_out = 0;
	for (size_t i = 0; i < n; i++) {
		const Lunamatch__V1__Location *l = locs[i];
		struct ploc *pl;

		if (l == NULL || l->country == NULL || l->country[0] == '\0')
			continue; /* never in common with anything */
		if (*n_out == cap)
			return false;
		pl = &out[*n_out];
		if (!lm_country_pack(l->country, &pl->country))
			return false;
		(*n_out)++;
		pl->city = l->city;
		pl->city_h = (l->city != NULL && l->city[0] != '\0')
		                 ? text_hash(l->city, true)
		                 : 0;
	}
	return true;
}

/* Whether every location of locs is geocoded (and there is one): only then
 * does a distance between two records decide where they meet. */
static bool
locs_geocoded(Lunamatch__V1__Location **locs, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (locs[i] == NULL)
			continue;
		if (!locs[i]->geocoded || !isfinite(locs[i]->latitude) ||
		    !isfinite(locs[i]->longitude))
			return false;
		k++;
	}
	return k > 0;
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
double
lm_rec_years(const CandidateProfile *c)
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
		if (locs[i] == NULL || locs[i]->country == NULL ||
		    locs[i]->country[0] == '\0')
			continue;
		for (const unsigned char *c = (const unsigned char *) locs[i]->country;
		     *c != '\0'; c++)
			if (*c >= 0x80)
				return UINT64_MAX;
		mask |= (uint64_t) 1 << (lm_hash_fold(locs[i]->country) >> 58);
	}
	return mask;
}

/*
 * Where a posting's prep keeps a text it reads (s not NULL): the shared
 * copy (lm_pb_share) when there is one, else its own copy at *at, which
 * moves past it. With at NULL it only measures: it adds the bytes of an
 * own copy to *need and returns NULL. A text shared while measuring is
 * shared again when placed, so the measure is never short. Ids are never
 * shared (share false): they do not repeat.
 */
static const char *
keep_text(const char *s, bool share, char **at, size_t *need)
{
	const char *sh;
	size_t n;

	if (s[0] == '\0')
		return "";
	if (share && (sh = lm_pb_share(s)) != NULL)
		return sh;
	n = strlen(s) + 1;
	if (at == NULL) {
		*need += n;
		return NULL;
	}
	sh = memcpy(*at, s, n);
	*at += n;
	return sh;
}

/* Adds to *need the bytes of the own copies (keep_text) of the texts of
 * rec that a posting's prep reads outside its title: its id, category and
 * industry, the cities of its locations with a country, and its skills'
 * and groups' skill ids. */
static void
measure_texts(const JobPosting *rec, bool share, size_t *need)
{
	const char *top[] = {rec->category, rec->industry};

	if (rec->id != NULL)
		keep_text(rec->id, false, NULL, need);
	for (size_t i = 0; i < 2; i++)
		if (top[i] != NULL)
			keep_text(top[i], share, NULL, need);
	for (size_t i = 0; i < rec->n_locations; i++) {
		const Lunamatch__V1__Location *l = rec->locations[i];
		if (l != NULL && l->country != NULL && l->country[0] != '\0' &&
		    l->city != NULL)
			keep_text(l->city, share, NULL, need);
	}
	for (size_t i = 0; i < rec->n_skills; i++) {
		const Lunamatch__V1__PostingSkill *sk = rec->skills[i];
		if (sk != NULL && sk->skill_id != NULL && sk->skill_id[0] != '\0')
			keep_text(sk->skill_id, share, NULL, need);
	}
	for (size_t i = 0; i < rec->n_requirement_groups; i++) {
		const Lunamatch__V1__RequirementGroup *g = rec->requirement_groups[i];
		for (size_t k = 0; g != NULL && k < g->n_skill_ids; k++)
			if (g->skill_ids[k] != NULL && g->skill_ids[k][0] != '\0')
				keep_text(g->skill_ids[k], share, NULL, need);
	}
}

/* Collects the groups that are not NULL and their usable skill ids
 * (placed at *at, keep_text) into p->groups and p->gids, which have room
 * for them. */
static void
prep_groups(lm_posting_prep *p, const JobPosting *rec, bool share, char **at)
{
	for (size_t i = 0; i < rec->n_requirement_groups; i++) {
		const Lunamatch__V1__RequirementGroup *g = rec->requirement_groups[i];
		struct pgroup *pg;

		if (g == NULL)
			continue;
		pg = &p->groups[p->n_groups++];
		pg->gi = (uint32_t) i;
		pg->off = p->n_gids;
		pg->min_years = g->min_years_experience;
		pg->needs_skill = g->n_skill_ids > 0;
		for (size_t k = 0; k < g->n_skill_ids; k++)
			if (g->skill_ids[k] != NULL && g->skill_ids[k][0] != '\0') {
				p->gsym[p->n_gids] = LM_SKILL_SYM_NONE;
				p->gids[p->n_gids++] =
				    keep_text(g->skill_ids[k], share, at, NULL);
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

static float
skill_weight(float w)
{
	return (isfinite(w) && w > 0) ? w : 1.0f;
}

const char *
lm_pskill_name(const lm_posting_prep *pp, const struct pskill *s)
{
	const Lunamatch__V1__PostingSkill *r = pp->rec->skills[s->ord];

	return r->name != NULL && r->name[0] != '\0' ? r->name : r->skill_id;
}

_Static_assert(_Alignof(struct pgroup) <= _Alignof(uint32_t),
    "a posting prep's groups lie between 8-byte and 4-byte arrays");

static int posting_prep(const JobPosting *rec, bool share, lm_posting_prep **out);

/* The room for skills a prep's veto key has: as many as the record has
 * skill entries, at most LM_KEY_SKILLS. The key holds its skills only
 * when its distinct skill ids, which are no more than its entries, are at
 * most LM_KEY_SKILLS: then they fit. */
static size_t
key_skills(size_t entries)
{
	return entries < LM_KEY_SKILLS ? entries : LM_KEY_SKILLS;
}

int
lm_posting_prep_new(const JobPosting *rec, lm_posting_prep **out)
{
	return posting_prep(rec, true, out);
}

int
lm_posting_prep_new_request(const JobPosting *rec, lm_posting_prep **out)
{
	return posting_prep(rec, false, out);
}

/* A posting's prep; share: its short texts may be the pool's (keep_text). */
static int
posting_prep(const JobPosting *rec, bool share, lm_posting_prep **out)
{
	lm_posting_prep *p;
	size_t n = 0, ng = 0, nid = 0, nll = 0, nlocs = 0, text = 0, own = 0, size, nk;
	struct tokset title;
	struct pgeo *ll;
	struct ploc *locs;
	uint64_t *rc;
	float *emb;
	bool geo;
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
	geo = locs_geocoded(rec->locations, rec->n_locations);
	for (size_t i = 0; i < rec->n_locations; i++) {
		const Lunamatch__V1__Location *l = rec->locations[i];
		nll += geo && l != NULL;
		nlocs += l != NULL && l->country != NULL && l->country[0] != '\0';
	}
	measure_texts(rec, share, &own);
	if (tokenize(rec->title, &title) != LM_OK)
		return LM_ENOMEM;
	if (title.n > 0)
		text = (size_t) ((const char *) title.tok - title.buf);
	/* One allocation: the prep, then the veto key's skills (key_room),
	 * ll, locs, skills, title_h, rc, gids, the title's tokens, groups,
	 * gsym, the embedding, the tokens' text and the texts the prep keeps
	 * its own copy of (in the order of their alignment). The title's token
	 * set lives there too: its hashes are title_h. */
	nk = key_skills(rec->n_skills);
	size = sizeof(*p) + nk * (sizeof(*p->key.sk_sym) + sizeof(*p->key.sk_w)) +
	       nll * sizeof(*p->ll) + nlocs * sizeof(*p->locs) +
	       rec->n_skills * sizeof(*p->skills) + ng * sizeof(*p->groups) +
	       title.n * (sizeof(*p->title_h) + sizeof(*p->title.tok)) +
	       rec->n_remote_countries * sizeof(*p->rc) +
	       nid * (sizeof(*p->gids) + sizeof(*p->gsym)) +
	       rec->n_embedding * sizeof(*p->embedding) + text + own;
	if ((p = calloc(1, size)) == NULL) {
		tokset_clear(&title);
		return LM_ENOMEM;
	}
	at = (char *) (p + 1);
	p->key.sk_sym = (uint32_t *) (void *) at;
	at += nk * sizeof(*p->key.sk_sym);
	p->key.sk_w = (float *) (void *) at;
	at += nk * sizeof(*p->key.sk_w); /* 8 bytes a skill: aligned still */
	ll = (struct pgeo *) (void *) at;
	at += nll * sizeof(*p->ll);
	locs = (struct ploc *) (void *) at;
	at += nlocs * sizeof(*p->locs);
	p->skills = (struct pskill *) (void *) at;
	at += rec->n_skills * sizeof(*p->skills);
	p->title.h = (uint64_t *) (void *) at;
	p->title_h = p->title.h;
	if (title.n > 0)
		memcpy(at, title.h, title.n * sizeof(*p->title_h));
	at += title.n * sizeof(*p->title_h);
	rc = (uint64_t *) (void *) at;
	at += rec->n_remote_countries * sizeof(*p->rc);
	p->gids = (const char **) (void *) at;
	at += nid * sizeof(*p->gids);
	p->title.tok = (const char **) (void *) at;
	at += title.n * sizeof(*p->title.tok);
	p->groups = (struct pgroup *) (void *) at;
	at += ng * sizeof(*p->groups);
	p->gsym = (uint32_t *) (void *) at;
	at += nid * sizeof(*p->gsym);
	emb = (float *) (void *) at;
	if (rec->n_embedding > 0)
		memcpy(emb, rec->embedding, rec->n_embedding * sizeof(*emb));
	at += rec->n_embedding * sizeof(*emb);
	if (title.n > 0)
		memcpy(at, title.buf, text);
	for (size_t k = 0; k < title.n; k++)
		p->title.tok[k] = at + (title.tok[k] - title.buf);
	at += text;
	p->title.n = title.n;
	tokset_clear(&title);
	p->rec = rec;
	/* The texts the prep reads, placed in the order measure_texts
	 * measured them. */
	p->id = rec->id != NULL ? keep_text(rec->id, false, &at, NULL) : NULL;
	p->category =
	    rec->category != NULL ? keep_text(rec->category, share, &at, NULL) : NULL;
	p->industry =
	    rec->industry != NULL ? keep_text(rec->industry, share, &at, NULL) : NULL;
	p->locs_packed =
	    pack_locs(rec->locations, rec->n_locations, locs, nlocs, &p->n_locs);
	for (size_t k = 0; k < p->n_locs; k++)
		if (locs[k].city != NULL)
			locs[k].city = keep_text(locs[k].city, share, &at, NULL);
	p->locs = locs;
	for (size_t i = 0; i < rec->n_skills; i++) {
		const Lunamatch__V1__PostingSkill *s = rec->skills[i];
		if (s == NULL || s->skill_id == NULL || s->skill_id[0] == '\0')
			continue;
		p->skills[n].id = keep_text(s->skill_id, share, &at, NULL);
		p->skills[n].w = skill_weight(s->weight);
		p->skills[n].preferred = s->preferred;
		p->skills[n].unknown = strncmp(s->skill_id, LM_SKILL_UNKNOWN_PREFIX,
		                           sizeof(LM_SKILL_UNKNOWN_PREFIX) - 1) == 0;
		p->skills[n].ord = (uint32_t) i;
		p->skills[n].sym = LM_SKILL_SYM_NONE;
		n++;
	}
	prep_groups(p, rec, share, &at);
	/* Duplicates of an id: the first entry (its name), the largest weight
	 * (entries of one id sort by their position in the record). */
	if (n > 1) {
		qsort(p->skills, n, sizeof(*p->skills), cmp_pskill);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (k > 0 && strcmp(p->skills[k - 1].id, p->skills[i].id) == 0) {
				if (p->skills[i].w > p->skills[k - 1].w)
					p->skills[k - 1].w = p->skills[i].w;
				p->skills[k - 1].preferred &= p->skills[i].preferred;
				continue;
			}
			p->skills[k++] = p->skills[i];
		}
		n = k;
	}
	p->n_skills = n;
	p->cat_h =
	    (rec->category && rec->category[0]) ? text_hash(rec->category, true) : 0;
	p->ind_h =
	    (rec->industry && rec->industry[0]) ? text_hash(rec->industry, true) : 0;
	p->has_country = locs_have_country(rec->locations, rec->n_locations);
	p->geo = geo;
	for (size_t i = 0; geo && i < rec->n_locations; i++)
		if (rec->locations[i] != NULL) {
			ll[p->n_ll].lat = rec->locations[i]->latitude;
			ll[p->n_ll++].lon = rec->locations[i]->longitude;
		}
	p->ll = ll;
	p->has_rc = rec->n_remote_countries > 0;
	p->rc_packed = true;
	for (size_t i = 0; i < rec->n_remote_countries && p->rc_packed; i++) {
		const char *cc = rec->remote_countries[i];
		if (cc != NULL && cc[0] != '\0')
			p->rc_packed = lm_country_pack(cc, &rc[p->n_rc++]);
	}
	p->rc = rc;
	p->key.country_mask = country_mask(rec->locations, rec->n_locations);
	p->key.expires_at = rec->expires_at;
	p->key.employment_type = (int32_t) rec->employment_type;
	p->key.remote = (int32_t) rec->remote;
	p->key.flags =
	    (p->has_country ? KEY_HAS_COUNTRY : 0) |
	    (rec->status == LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED
	            ? KEY_CLOSED
	            : 0);
	p->key.posted_at = rec->posted_at;
	if (rec->salary != NULL)
		p->key.salary = rec->salary->annual_max > 0 ? rec->salary->annual_max
		                                            : rec->salary->annual_min;
	p->embedding = rec->n_embedding > 0 ? emb : NULL;
	p->n_embedding = rec->n_embedding;
	p->key.min_years = rec->min_years_experience;
	p->key.level = (int32_t) rec->experience_level;
	p->key.education = (int32_t) rec->education;
	if (p->n_skills > 0)
		p->key.flags |= KEY_SKILLS | KEY_SK_PLAIN;
	for (size_t i = 0; i < p->n_skills; i++)
		if (p->skills[i].preferred || p->skills[i].unknown)
			p->key.flags &= ~KEY_SK_PLAIN;
	p->key.n_embedding = (uint32_t) p->n_embedding;
	*out = p;
	return LM_OK;
}

void
lm_posting_prep_free(lm_posting_prep *p)
{
	if (p == NULL)
		return;
	lm_posting_prep_unbind(p);
	free(p); /* with its title, skills, groups, gids and gsym */
}

const JobPosting *
lm_posting_prep_record(const lm_posting_prep *p)
{
	return p->rec;
}

bool
lm_profile_prep_self_contained(const lm_profile_prep *c)
{
	return c->locs_packed &&
	       (!(c->key.flags & KEY_EMP_ANY) || (c->key.flags & KEY_EMP_EXACT));
}

void
lm_profile_prep_forget(lm_profile_prep *c)
{
	if (c != NULL && lm_profile_prep_self_contained(c))
		c->rec = NULL;
}

int
lm_profile_prep_view(
    const lm_profile_prep *c, const CandidateProfile *rec, lm_profile_prep **view)
{
	if ((*view = malloc(sizeof(**view))) == NULL)
		return LM_ENOMEM;
	**view = *c;
	(*view)->rec = rec;
	return LM_OK;
}

void
lm_profile_prep_view_free(lm_profile_prep *view)
{
	free(view); /* the arrays are c's */
}

const char *
lm_profile_prep_id(const lm_profile_prep *c)
{
	return c->id;
}

bool
lm_posting_prep_self_contained(const lm_posting_prep *p)
{
	return p->locs_packed && (!p->has_rc || p->rc_packed);
}

void
lm_posting_prep_forget(lm_posting_prep *p)
{
	if (p != NULL && lm_posting_prep_self_contained(p))
		p->rec = NULL;
}

int
lm_posting_prep_view(
    const lm_posting_prep *p, const JobPosting *rec, lm_posting_prep **view)
{
	if ((*view = malloc(sizeof(**view))) == NULL)
		return LM_ENOMEM;
	**view = *p;
	(*view)->rec = rec;
	return LM_OK;
}

void
lm_posting_prep_view_free(lm_posting_prep *view)
{
	free(view); /* the arrays are p's */
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
	           sizeof(title_fillers[0]), lm_cmp_str) == NULL;
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

/* measure_texts for a profile: its id, the cities of its locations with a
 * country, its skill ids and its career goals' categories and
 * industries. */
static void
measure_profile_texts(const CandidateProfile *rec, bool share, size_t *need)
{
	const Lunamatch__V1__CareerGoals *g = rec->career_goals;

	if (rec->id != NULL)
		keep_text(rec->id, false, NULL, need);
	for (size_t i = 0; i < rec->n_locations; i++) {
		const Lunamatch__V1__Location *l = rec->locations[i];
		if (l != NULL && l->country != NULL && l->country[0] != '\0' &&
		    l->city != NULL)
			keep_text(l->city, share, NULL, need);
	}
	for (size_t i = 0; i < rec->n_skills; i++) {
		const Lunamatch__V1__CandidateSkill *sk = rec->skills[i];
		if (sk != NULL && sk->skill_id != NULL && sk->skill_id[0] != '\0')
			keep_text(sk->skill_id, share, NULL, need);
	}
	for (size_t i = 0; g != NULL && i < g->n_desired_categories; i++)
		if (g->desired_categories[i] != NULL)
			keep_text(g->desired_categories[i], share, NULL, need);
	for (size_t i = 0; g != NULL && i < g->n_desired_industries; i++)
		if (g->desired_industries[i] != NULL)
			keep_text(g->desired_industries[i], share, NULL, need);
}

static int profile_prep(const CandidateProfile *rec, bool share, lm_profile_prep **out);

int
lm_profile_prep_new(const CandidateProfile *rec, lm_profile_prep **out)
{
	return profile_prep(rec, true, out);
}

int
lm_profile_prep_new_request(const CandidateProfile *rec, lm_profile_prep **out)
{
	return profile_prep(rec, false, out);
}

/* A profile's prep; share as for posting_prep. */
static int
profile_prep(const CandidateProfile *rec, bool share, lm_profile_prep **out)
{
	lm_profile_prep *c;
	const Lunamatch__V1__CareerGoals *g;
	size_t n = 0, ngoal, nll = 0, nlocs = 0, own = 0, nk, kroom;
	struct pgeo *ll;
	struct ploc *locs;
	float *emb;
	bool geo;
	char *at;

	*out = NULL;
	if (rec == NULL)
		return LM_EINVAL;
	g = rec->career_goals;
	ngoal = g ? g->n_desired_categories + g->n_desired_industries : 0;
	geo = locs_geocoded(rec->locations, rec->n_locations);
	for (size_t i = 0; i < rec->n_locations; i++) {
		const Lunamatch__V1__Location *l = rec->locations[i];
		nll += geo && l != NULL;
		nlocs += l != NULL && l->country != NULL && l->country[0] != '\0';
	}
	measure_profile_texts(rec, share, &own);

	/* One allocation: the prep, then the veto key's skills (key_room,
	 * rounded up to 8 bytes), ll, locs, skills, goal_h, goal, the
	 * embedding and the texts it keeps its own copy of. */
	nk = key_skills(rec->n_skills);
	kroom = (nk * sizeof(*c->key.sk_sym) + 7) & ~(size_t) 7;
	if ((c = calloc(1, sizeof(*c) + kroom + nll * sizeof(*c->ll) +
	                       nlocs * sizeof(*c->locs) +
	                       rec->n_skills * sizeof(*c->skills) +
	                       ngoal * (sizeof(*c->goal_h) + sizeof(*c->goal)) +
	                       rec->n_embedding * sizeof(*c->embedding) + own)) == NULL)
		return LM_ENOMEM;
	at = (char *) (c + 1);
	c->key.sk_sym = (uint32_t *) (void *) at;
	at += kroom;
	ll = (struct pgeo *) (void *) at;
	at += nll * sizeof(*c->ll);
	locs = (struct ploc *) (void *) at;
	at += nlocs * sizeof(*c->locs);
	c->skills = (struct cskill *) (void *) at;
	at += rec->n_skills * sizeof(*c->skills);
	c->goal_h = (uint64_t *) (void *) at;
	at += ngoal * sizeof(*c->goal_h);
	c->goal = (const char **) (void *) at;
	at += ngoal * sizeof(*c->goal);
	emb = (float *) (void *) at;
	if (rec->n_embedding > 0)
		memcpy(emb, rec->embedding, rec->n_embedding * sizeof(*emb));
	at += rec->n_embedding * sizeof(*emb);
	c->id = rec->id != NULL ? keep_text(rec->id, false, &at, NULL) : NULL;
	for (size_t i = 0; i < ngoal; i++) {
		const char *gs = i < g->n_desired_categories
		                     ? g->desired_categories[i]
		                     : g->desired_industries[i - g->n_desired_categories];
		c->goal_h[i] = gs != NULL ? text_hash(gs, true) : 0;
		c->goal[i] = gs != NULL ? keep_text(gs, share, &at, NULL) : NULL;
	}
	c->n_goal_cat = g ? g->n_desired_categories : 0;
	c->n_goal_ind = g ? g->n_desired_industries : 0;
	c->rec = rec;
	for (size_t i = 0; i < rec->n_skills; i++) {
		const Lunamatch__V1__CandidateSkill *s = rec->skills[i];
		if (s == NULL || s->skill_id == NULL || s->skill_id[0] == '\0')
			continue;
		c->skills[n].id = keep_text(s->skill_id, share, &at, NULL);
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
	c->geo = geo;
	for (size_t i = 0; geo && i < rec->n_locations; i++)
		if (rec->locations[i] != NULL) {
			ll[c->n_ll].lat = rec->locations[i]->latitude;
			ll[c->n_ll++].lon = rec->locations[i]->longitude;
		}
	c->ll = ll;
	c->locs_packed =
	    pack_locs(rec->locations, rec->n_locations, locs, nlocs, &c->n_locs);
	for (size_t k = 0; k < c->n_locs; k++)
		if (locs[k].city != NULL)
			locs[k].city = keep_text(locs[k].city, share, &at, NULL);
	c->locs = locs;
	c->embedding = rec->n_embedding > 0 ? emb : NULL;
	c->n_embedding = rec->n_embedding;
	c->years_raw = rec->years_experience;
	c->key.country_mask = country_mask(rec->locations, rec->n_locations);
	c->key.years = lm_rec_years(rec);
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
	if (rec->career_goals != NULL)
		c->key.flags |= KEY_GOALS;
	c->key.n_embedding = (uint32_t) rec->n_embedding;
	c->key.salary = rec->desired_salary != NULL ? rec->desired_salary->annual_min : 0;
	c->key.level = (int32_t) rec->experience_level;
	c->key.education = (int32_t) rec->education;
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

/* Takes a reference on the symbol of each of n ids and stores it; on
 * failure takes none. The i-th id is at ids + i * id_stride, its symbol at
 * syms + i * sym_stride (bytes: arrays or arrays of structs). */
static int
syms_bind(lm_skill_stats *s, const char *const *ids, size_t id_stride, uint32_t *syms,
    size_t sym_stride, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (lm_sym_ref(s, id_at(ids, id_stride, i),
		        sym_at(syms, sym_stride, i)) != LM_OK) {
			while (i-- > 0) {
				lm_sym_unref(s, *sym_at(syms, sym_stride, i));
				*sym_at(syms, sym_stride, i) = LM_SKILL_SYM_NONE;
			}
			return LM_ENOMEM;
		}
	}
	return LM_OK;
}

static void
syms_unbind(lm_skill_stats *s, uint32_t *syms, size_t sym_stride, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		lm_sym_unref(s, *sym_at(syms, sym_stride, i));
		*sym_at(syms, sym_stride, i) = LM_SKILL_SYM_NONE;
	}
}

/* ---- words and terms ---- */

/*
 * The words of a prep that NO_OVERLAP's career-goal test compares, as the
 * index looks them up: a posting's significant title tokens (the others
 * match no profile's words) and its category; a profile's significant
 * desired-title tokens and its desired categories.
 * A category is its text ASCII-folded behind CATEGORY_MARK (a byte no token
 * has), cut at LM_WORD_MAX bytes: texts equal under strcasecmp give equal
 * words, so a word can only find more records than the test accepts, never
 * fewer.
 */
#define CATEGORY_MARK '\x01'

static void
category_word(const char *text, char *buf)
{
	size_t n = 0;

	buf[n++] = CATEGORY_MARK;
	for (const unsigned char *c = (const unsigned char *) text;
	     *c != '\0' && n + 1 < LM_WORD_MAX; c++)
		buf[n++] = (char) ((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
	buf[n] = '\0';
}

/* Words of a posting (pp) or a profile (cp; the other NULL), one per call:
 * *i counts from 0; false when there is none left. */
static bool
next_word(const lm_posting_prep *pp, const lm_profile_prep *cp, size_t *i, char *buf)
{
	for (;; (*i)++) {
		size_t k = *i;
		if (pp != NULL) {
			if (k < pp->title.n) {
				if (!title_word_significant(pp->title.tok[k]))
					continue; /* never a query's word */
				snprintf(buf, LM_WORD_MAX, "%s", pp->title.tok[k]);
				(*i)++;
				return true;
			}
			if (k == pp->title.n && pp->category != NULL &&
			    pp->category[0] != '\0') {
				category_word(pp->category, buf);
				(*i)++;
				return true;
			}
			if (k >= pp->title.n)
				return false;
		} else {
			size_t nc = cp->n_goal_cat;
			if (k < cp->n_sig) {
				snprintf(buf, LM_WORD_MAX, "%s", cp->sig_tok[k]);
				(*i)++;
				return true;
			}
			if (k >= cp->n_sig + nc)
				return false;
			if (cp->goal[k - cp->n_sig] != NULL &&
			    cp->goal[k - cp->n_sig][0] != '\0') {
				category_word(cp->goal[k - cp->n_sig], buf);
				(*i)++;
				return true;
			}
		}
	}
}

/* The most words a prep can have. */
static size_t
words_max(const lm_posting_prep *pp, const lm_profile_prep *cp)
{
	if (pp != NULL)
		return pp->title.n + 1;
	return cp->n_sig + cp->n_goal_cat;
}

/* References the symbols of the prep's words into *wsym / *n. */
static int
words_bind(lm_skill_stats *s, const lm_posting_prep *pp, const lm_profile_prep *cp,
    uint32_t **wsym, uint32_t *n)
{
	char buf[LM_WORD_MAX];
	size_t max = words_max(pp, cp), it = 0;

	*wsym = NULL;
	*n = 0;
	if (max == 0)
		return LM_OK;
	if ((*wsym = malloc(max * sizeof(**wsym))) == NULL)
		return LM_ENOMEM;
	while (next_word(pp, cp, &it, buf)) {
		if (lm_word_ref(s, buf, &(*wsym)[*n]) != LM_OK) {
			while (*n > 0)
				lm_word_unref(s, (*wsym)[--*n]);
			free(*wsym);
			*wsym = NULL;
			return LM_ENOMEM;
		}
		(*n)++;
	}
	return LM_OK;
}

static void
words_unbind(lm_skill_stats *s, uint32_t **wsym, uint32_t *n)
{
	for (size_t i = 0; i < *n; i++)
		lm_word_unref(s, (*wsym)[i]);
	free(*wsym);
	*wsym = NULL;
	*n = 0;
}

/* Appends term t to out (room: cap) unless it is NONE. */
static void
put_term(uint32_t *out, size_t *n, size_t cap, uint32_t sym, uint32_t kind)
{
	if (sym != LM_SKILL_SYM_NONE && *n < cap && sym < (UINT32_MAX >> 1))
		out[(*n)++] = sym << 1 | kind;
}

size_t
lm_prep_terms_max(const lm_posting_prep *pp, const lm_profile_prep *cp)
{
	return (pp != NULL ? pp->n_skills + pp->n_gids : cp->n_skills) +
	       words_max(pp, cp);
}

size_t
lm_prep_terms(const lm_posting_prep *pp, const lm_profile_prep *cp,
    const lm_skill_stats *s, uint32_t *out, size_t cap)
{
	lm_skill_stats *b = pp != NULL ? pp->bound : cp->bound;
	char buf[LM_WORD_MAX];
	size_t n = 0, it = 0;

	if (pp != NULL) {
		for (size_t i = 0; i < pp->n_skills; i++)
			put_term(out, &n, cap,
			    b == s ? pp->skills[i].sym
			           : lm_sym_lookup(s, pp->skills[i].id),
			    LM_TERM_SKILL);
		for (size_t i = 0; i < pp->n_gids; i++)
			put_term(out, &n, cap,
			    b == s ? pp->gsym[i] : lm_sym_lookup(s, pp->gids[i]),
			    LM_TERM_SKILL);
	} else {
		for (size_t i = 0; i < cp->n_skills; i++)
			put_term(out, &n, cap,
			    b == s ? cp->skills[i].sym
			           : lm_sym_lookup(s, cp->skills[i].id),
			    LM_TERM_SKILL);
	}
	if (b == s) {
		const uint32_t *w = pp != NULL ? pp->wsym : cp->wsym;
		size_t nw = pp != NULL ? pp->n_wsym : cp->n_wsym;
		for (size_t i = 0; i < nw; i++)
			put_term(out, &n, cap, w[i], LM_TERM_WORD);
	} else {
		while (next_word(pp, cp, &it, buf))
			put_term(out, &n, cap, lm_word_lookup(s, buf), LM_TERM_WORD);
	}
	return n;
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
	if ((rc = words_bind(s, p, NULL, &p->wsym, &p->n_wsym)) != LM_OK) {
		if (p->n_skills > 0)
			syms_unbind(
			    s, &p->skills[0].sym, sizeof(*p->skills), p->n_skills);
		if (p->n_gids > 0)
			syms_unbind(s, p->gsym, sizeof(*p->gsym), p->n_gids);
		return rc;
	}
	p->bound = s;
	if (p->n_skills <= LM_KEY_SKILLS) {
		p->key.flags |= KEY_SK_KEYED;
		p->key.n_sk = (uint32_t) p->n_skills;
		p->key.sk_pref = p->key.sk_unknown = 0;
		for (size_t i = 0; i < p->n_skills; i++) {
			p->key.sk_sym[i] = p->skills[i].sym;
			p->key.sk_w[i] = (float) p->skills[i].w;
			p->key.sk_pref |= (uint32_t) p->skills[i].preferred << i;
			p->key.sk_unknown |= (uint32_t) p->skills[i].unknown << i;
		}
	}
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
	words_unbind(p->bound, &p->wsym, &p->n_wsym);
	p->key.n_sk = 0;
	p->key.flags &= ~KEY_SK_KEYED;
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
	if ((rc = words_bind(s, NULL, c, &c->wsym, &c->n_wsym)) != LM_OK) {
		if (c->n_skills > 0)
			syms_unbind(
			    s, &c->skills[0].sym, sizeof(*c->skills), c->n_skills);
		return rc;
	}
	if (c->n_skills <= LM_KEY_SKILLS) {
		c->key.flags |= KEY_SK_KEYED;
		c->key.n_sk = (uint32_t) c->n_skills;
		for (size_t i = 0; i < c->n_skills; i++) {
			c->key.sk_sym[i] = c->skills[i].sym;
		}
	}
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
	words_unbind(c->bound, &c->wsym, &c->n_wsym);
	c->key.n_sk = 0;
	c->key.flags &= ~KEY_SK_KEYED;
	c->bound = NULL;
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

const char *
lm_posting_prep_id(const lm_posting_prep *p)
{
	return p->id;
}

const lm_veto_key *
lm_profile_prep_key(const lm_profile_prep *c)
{
	return &c->key;
}

bool
lm_profile_has_skill(const lm_profile_prep *c, const char *id, double *years)
{
	struct cskill key = {id, 0, LM_SKILL_SYM_NONE};
	const struct cskill *s;

	if (c->n_skills == 0)
		return false;
	s = bsearch(&key, c->skills, c->n_skills, sizeof(*c->skills), cmp_cskill);
	if (s != NULL && years != NULL)
		*years = s->years;
	return s != NULL;
}

bool
lm_posting_prep_has_skills(const lm_posting_prep *pp)
{
	return pp->n_skills > 0 || pp->n_gids > 0;
}

bool
lm_posting_prep_skills_present(const lm_posting_prep *pp)
{
	return pp->n_skills > 0;
}
