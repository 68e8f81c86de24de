/*
 * record.c - validation and normalization of postings and profiles; see
 * record.h for the contract. Everything that enters the store or the scorer
 * passes through here, so every rule lives in one place.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "lunamatch/record.h"
#include "lunamatch/text.h"

static const char *const reject_names[LM_REJECT_COUNT_] = {
    [LM_REJECT_NONE] = "none",
    [LM_REJECT_MISSING_FIELD] = "missing_field",
    [LM_REJECT_BAD_ID] = "bad_id",
    [LM_REJECT_OVERSIZE] = "oversize",
    [LM_REJECT_BAD_ENUM] = "unknown_enum",
    [LM_REJECT_BAD_COUNTRY] = "bad_country",
    [LM_REJECT_BAD_CURRENCY] = "bad_currency",
    [LM_REJECT_BAD_SALARY] = "bad_salary",
    [LM_REJECT_BAD_VALUE] = "bad_value",
    [LM_REJECT_BAD_UTF8] = "bad_utf8",
    [LM_REJECT_BAD_SKILL] = "bad_skill",
};

const char *
lm_reject_name(lm_reject r)
{
	if ((int) r < 0 || r >= LM_REJECT_COUNT_)
		return "unknown";
	return reject_names[r];
}

/* Assigned ISO 3166-1 alpha-2 codes, concatenated. */
static const char iso3166[] =
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ"
    "CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFO"
    "FRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJE"
    "JMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMO"
    "MPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPW"
    "PYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTM"
    "TNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

int
lm_country_valid(const char *cc)
{
	if (cc == NULL || strlen(cc) != 2 || !isupper((unsigned char) cc[0]) ||
	    !isupper((unsigned char) cc[1]))
		return 0;
	for (size_t i = 0; i + 1 < sizeof(iso3166); i += 2)
		if (iso3166[i] == cc[0] && iso3166[i + 1] == cc[1])
			return 1;
	return 0;
}

int
lm_record_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > LM_RECORD_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) id[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != ':' && c != '-')
			return 0;
	}
	return 1;
}

/* State of one prepare call: where errors go. */
struct prep {
	const lm_record_ctx *ctx;
	lm_reject *reason;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int
reject(struct prep *p, lm_reject r, const char *fmt, ...)
{
	va_list ap;
	*p->reason = r;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return LM_ESCHEMA;
}

/* Bytes of a rendered field path, with the NUL. */
#define FIELD_MAX 160
#define NOIDX     ((size_t) -1)

/*
 * The path of the field being checked, e.g. skills[2].name or
 * requirement_groups[0].skills[3]: base, then [i], then .sub, then [k], each
 * part optional. It is written out only when a reject names it, so that
 * valid records never format a path.
 */
struct field {
	const char *base;
	size_t i;
	const char *sub;
	size_t k;
};

#define FIELD(name) (&(struct field){(name), NOIDX, NULL, NOIDX})

/* Writes f into buf (len bytes) and returns buf. */
static const char *
path(const struct field *f, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s", f->base);
	if (f->i != NOIDX && n >= 0 && (size_t) n < len)
		n += snprintf(buf + n, len - (size_t) n, "[%zu]", f->i);
	if (f->sub != NULL && n >= 0 && (size_t) n < len)
		n += snprintf(buf + n, len - (size_t) n, ".%s", f->sub);
	if (f->k != NOIDX && n >= 0 && (size_t) n < len)
		snprintf(buf + n, len - (size_t) n, "[%zu]", f->k);
	return buf;
}

/*
 * Trims the string *sp in place and checks it: valid UTF-8, at most max
 * bytes, and present when required. Default (shared empty) strings are never
 * written to.
 */
static int
text(struct prep *p, char **sp, size_t max, int required, const struct field *field)
{
	char fb[FIELD_MAX];
	char *s = *sp;
	size_t n, b = 0;

	if (s == NULL || s[0] == '\0') {
		if (required)
			return reject(p, LM_REJECT_MISSING_FIELD, "%s: required",
			    path(field, fb, sizeof(fb)));
		return LM_OK;
	}
	if (!lm_pb_utf8_valid(s, strlen(s)))
		return reject(p, LM_REJECT_BAD_UTF8, "%s: not valid UTF-8",
		    path(field, fb, sizeof(fb)));
	n = strlen(s);
	for (size_t k; (k = lm_text_blank(s + b, n - b)) > 0;)
		b += k;
	/* The end of the last character that is not a blank (no blank starts
	 * with a UTF-8 continuation byte, so stepping a byte at a time past
	 * other characters never lands inside one). */
	size_t end = b;
	for (size_t i = b, k; i < n;) {
		if ((k = lm_text_blank(s + i, n - i)) > 0) {
			i += k;
		} else {
			i++;
			end = i;
		}
	}
	n = end;
	memmove(s, s + b, n - b);
	s[n - b] = '\0';
	if (n - b == 0 && required)
		return reject(p, LM_REJECT_MISSING_FIELD, "%s: required",
		    path(field, fb, sizeof(fb)));
	if (n - b > max)
		return reject(p, LM_REJECT_OVERSIZE, "%s: %zu bytes, limit %zu",
		    path(field, fb, sizeof(fb)), n - b, max);
	return LM_OK;
}

/* Replaces a protobuf-c string field with a malloc'd copy of v. */
static int
set_string(char **dst, const char *v)
{
	char *c = strdup(v);
	if (c == NULL)
		return LM_ENOMEM;
	if (*dst != NULL && *dst != protobuf_c_empty_string)
		free(*dst);
	*dst = c;
	return LM_OK;
}

static void
upcase(char *s)
{
	for (; s && *s; s++)
		*s = (char) toupper((unsigned char) *s);
}

static int
enum_valid(
    struct prep *p, const ProtobufCEnumDescriptor *d, int v, const struct field *field)
{
	char fb[FIELD_MAX];
	if (protobuf_c_enum_descriptor_get_value(d, v) == NULL)
		return reject(p, LM_REJECT_BAD_ENUM, "%s: unknown %s value %d",
		    path(field, fb, sizeof(fb)), d->name, v);
	return LM_OK;
}

static int
years(struct prep *p, float v, const struct field *field)
{
	char fb[FIELD_MAX];
	if (!isfinite(v) || v < 0 || v > LM_RECORD_YEARS_MAX)
		return reject(p, LM_REJECT_BAD_VALUE, "%s: %g is outside 0..%g",
		    path(field, fb, sizeof(fb)), (double) v,
		    (double) LM_RECORD_YEARS_MAX);
	return LM_OK;
}

/* A timestamp in seconds: 0 (unset) .. LM_RECORD_TIME_MAX. */
static int
timestamp(struct prep *p, int64_t v, const char *field)
{
	if (v < 0)
		return reject(p, LM_REJECT_BAD_VALUE, "%s: negative", field);
	if (v > LM_RECORD_TIME_MAX)
		return reject(p, LM_REJECT_BAD_VALUE,
		    "%s: %lld is after the year 2200 (%lld); timestamps are seconds",
		    field, (long long) v, (long long) LM_RECORD_TIME_MAX);
	return LM_OK;
}

static int
ident(struct prep *p, char **id, uint64_t version)
{
	int rv;
	/* The length is part of what makes an id valid: a long id is bad_id,
	 * not oversize. An inline record's id is optional: absent, empty or
	 * only spaces. */
	if ((rv = text(p, id, SIZE_MAX, !p->ctx->inline_record, FIELD("id"))) != LM_OK)
		return rv;
	if (*id == NULL || (*id)[0] == '\0')
		return LM_OK;
	if (!lm_record_id_valid(*id))
		return reject(p, LM_REJECT_BAD_ID,
		    "id: must be 1..%d bytes of letters, digits and . _ : -",
		    LM_RECORD_ID_MAX);
	if (version == 0 && !p->ctx->inline_record)
		return reject(p, LM_REJECT_MISSING_FIELD, "version: required (>= 1)");
	return LM_OK;
}

/* Removes element i of a protobuf-c message array, freeing it. */
static void
drop_message(void **arr, size_t *n, size_t i)
{
	protobuf_c_message_free_unpacked(arr[i], NULL);
	memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(arr[0]));
	(*n)--;
}

/* Removes element i of a protobuf-c string array, freeing it. */
static void
drop_string(char **arr, size_t *n, size_t i)
{
	if (arr[i] != protobuf_c_empty_string)
		free(arr[i]);
	memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(arr[0]));
	(*n)--;
}

/*
 * Fills the coordinates of l from the gazetteer, or clears them: they are
 * ingest's to set, whatever a producer sent.
 */
static int
geocode(struct prep *p, Lunamatch__V1__Location *l)
{
	const lm_city *c;

	l->geocoded = 0;
	l->latitude = 0;
	l->longitude = 0;
	l->geoname_id = 0;
	if (p->ctx->gazetteer == NULL || l->city[0] == '\0')
		return LM_OK;
	c = lm_gazetteer_lookup(p->ctx->gazetteer, l->city, l->country, l->region);
	if (c == NULL || !lm_country_valid(c->country))
		return LM_OK;
	if (l->country[0] == '\0' && set_string(&l->country, c->country) != LM_OK)
		return LM_ENOMEM;
	l->geocoded = 1;
	l->latitude = c->latitude;
	l->longitude = c->longitude;
	l->geoname_id = c->geoname_id;
	return LM_OK;
}

static int
locations(
    struct prep *p, size_t n, Lunamatch__V1__Location **locs, const struct field *field)
{
	char fb[FIELD_MAX];
	int rv;
	if (n > LM_RECORD_LOCATIONS_MAX)
		return reject(p, LM_REJECT_OVERSIZE, "%s: %zu entries, limit %d",
		    path(field, fb, sizeof(fb)), n, LM_RECORD_LOCATIONS_MAX);
	for (size_t i = 0; i < n; i++) {
		Lunamatch__V1__Location *l = locs[i];
		struct field f = {field->base, i, "city", NOIDX};
		if ((rv = text(p, &l->city, LM_RECORD_TEXT_MAX, 0, &f)) != LM_OK)
			return rv;
		f.sub = "region";
		if ((rv = text(p, &l->region, LM_RECORD_TEXT_MAX, 0, &f)) != LM_OK)
			return rv;
		f.sub = "country";
		if ((rv = text(p, &l->country, 8, 0, &f)) != LM_OK)
			return rv;
		if (l->country[0] != '\0') {
			upcase(l->country);
			if (!lm_country_valid(l->country))
				return reject(p, LM_REJECT_BAD_COUNTRY,
				    "%s: \"%s\" is not an ISO 3166-1 alpha-2 code",
				    path(&f, fb, sizeof(fb)), l->country);
		}
		if ((rv = geocode(p, l)) != LM_OK)
			return rv;
	}
	return LM_OK;
}

/* True when code is among v[0..n). */
static int
has_string(char *const *v, size_t n, const char *code)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], code) == 0)
			return 1;
	return 0;
}

/*
 * Checks remote_countries (upper-cased, valid, no duplicates, at most
 * LM_RECORD_REMOTE_MAX distinct ones) and gives a REMOTE posting without
 * any the countries of its locations. Linear in the entries, however many
 * repeat: a bit per code tells a repeat, and the distinct ones are swapped
 * to the front, so that the list stays whole if a later entry is refused.
 */
static int
remote_countries(struct prep *p, Lunamatch__V1__JobPosting *j)
{
	uint8_t seen[(26 * 26 + 7) / 8] = {0};
	char fb[FIELD_MAX], **cs = j->remote_countries;
	size_t w = 0;
	int rv;

	for (size_t i = 0; i < j->n_remote_countries; i++) {
		struct field f = {"remote_countries", i, NULL, NOIDX};
		unsigned bit;
		char *c;
		if ((rv = text(p, &cs[i], 8, 1, &f)) != LM_OK)
			return rv;
		upcase(cs[i]);
		if (!lm_country_valid(cs[i]))
			return reject(p, LM_REJECT_BAD_COUNTRY,
			    "%s: \"%s\" is not an ISO 3166-1 alpha-2 code",
			    path(&f, fb, sizeof(fb)), cs[i]);
		bit = (unsigned) (cs[i][0] - 'A') * 26 + (unsigned) (cs[i][1] - 'A');
		if (seen[bit / 8] & (1u << (bit % 8)))
			continue;
		seen[bit / 8] |= (uint8_t) (1u << (bit % 8));
		c = cs[i];
		cs[i] = cs[w];
		cs[w++] = c;
	}
	while (j->n_remote_countries > w)
		drop_string(cs, &j->n_remote_countries, j->n_remote_countries - 1);
	if (w > LM_RECORD_REMOTE_MAX)
		return reject(p, LM_REJECT_OVERSIZE,
		    "remote_countries: %zu countries, limit %d", w, LM_RECORD_REMOTE_MAX);
	if (j->remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE ||
	    j->n_remote_countries > 0)
		return LM_OK;
	for (size_t i = 0; i < j->n_locations; i++) {
		const char *cc = j->locations[i]->country;
		char **v;
		if (cc[0] == '\0' ||
		    has_string(j->remote_countries, j->n_remote_countries, cc))
			continue;
		v = realloc(
		    j->remote_countries, (j->n_remote_countries + 1) * sizeof(*v));
		if (v == NULL)
			return LM_ENOMEM;
		j->remote_countries = v;
		if ((v[j->n_remote_countries] = strdup(cc)) == NULL)
			return LM_ENOMEM;
		j->n_remote_countries++;
	}
	return LM_OK;
}

/*
 * Validates a salary and fills its normalized fields. A salary with no
 * amounts carries no information and is dropped (*sp = NULL).
 */
static int
salary(struct prep *p, Lunamatch__V1__Salary **sp, int desired, const struct field *field)
{
	char fb[FIELD_MAX];
	Lunamatch__V1__Salary *s = *sp;
	struct field f = {field->base, NOIDX, "currency", NOIDX};
	char why[256];
	double unit;
	int rv;

	if (s == NULL)
		return LM_OK;
	if (desired)
		s->max = 0; /* a desired salary is a floor only */
	if (!isfinite(s->min) || !isfinite(s->max) || s->min < 0 || s->max < 0)
		return reject(p, LM_REJECT_BAD_SALARY,
		    "%s: amounts must be finite and >= 0", path(field, fb, sizeof(fb)));
	if (s->min == 0 && s->max == 0) {
		protobuf_c_message_free_unpacked(&s->base, NULL);
		*sp = NULL;
		return LM_OK;
	}
	if ((rv = text(p, &s->currency, 8, 1, &f)) != LM_OK)
		return rv;
	upcase(s->currency);
	if (lm_rates_lookup(p->ctx->rates, s->currency, &unit) != LM_OK)
		return reject(p, LM_REJECT_BAD_CURRENCY, "%s: unknown currency \"%s\"",
		    path(&f, fb, sizeof(fb)), s->currency);
	f.sub = "period";
	if ((rv = enum_valid(p, &lunamatch__v1__salary_period__descriptor,
	         (int) s->period, &f)) != LM_OK)
		return rv;
	if (s->max != 0 && s->min > s->max)
		return reject(p, LM_REJECT_BAD_SALARY, "%s: min %.2f > max %.2f",
		    path(field, fb, sizeof(fb)), s->min, s->max);
	if ((rv = lm_salary_normalize(p->ctx->rates, s, why, sizeof(why))) != LM_OK) {
		if (rv == LM_ENOMEM)
			return rv;
		return reject(
		    p, LM_REJECT_BAD_SALARY, "%s: %s", path(field, fb, sizeof(fb)), why);
	}
	return LM_OK;
}

/*
 * Trims the skill name *name and stores its canonical id in *id_out and, when
 * match is not NULL, how it was read (a SkillMatch value) in *match.
 */
static int
canonical(
    struct prep *p, char **name, char **id_out, int *match, const struct field *field)
{
	char fb[FIELD_MAX];
	char id[LM_RECORD_TEXT_MAX + 16];
	const lm_skill *s;
	unsigned distance;
	int rv;

	if ((rv = text(p, name, LM_RECORD_TEXT_MAX, 1, field)) != LM_OK)
		return rv;
	if ((s = lm_taxonomy_resolve(p->ctx->taxonomy, *name, &distance)) != NULL) {
		if (match != NULL)
			*match =
			    distance == 0
			        ? LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT
			        : LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_TYPO;
		return set_string(id_out, s->id);
	}
	rv = lm_skill_unknown_id(*name, id, sizeof(id));
	if (rv == LM_EINVAL)
		return reject(p, LM_REJECT_BAD_SKILL, "%s: \"%s\" is not a skill name",
		    path(field, fb, sizeof(fb)), *name);
	if (rv == LM_E2BIG) /* a name of many '+' or '#', spelled out in ids */
		return reject(p, LM_REJECT_OVERSIZE, "%s: its skill id exceeds %zu bytes",
		    path(field, fb, sizeof(fb)), sizeof(id) - 1);
	if (rv != LM_OK)
		return rv;
	if (match != NULL)
		*match = LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_UNKNOWN;
	return set_string(id_out, id);
}

/*
 * Of two entries for one skill id, the one kept (name *a_name, read as *a)
 * takes the name of the one dropped (*b_name, read as b) when that name is
 * the skill's own and its own is a misspelling: the name and how it was
 * read stay a pair. An unknown name never shares an id with a known one.
 */
static void
surer_reading(char **a_name, Lunamatch__V1__SkillResolution *a, char **b_name,
    Lunamatch__V1__SkillResolution b)
{
	char *t;

	if (b != LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT ||
	    *a == LUNAMATCH__V1__SKILL_RESOLUTION__SKILL_RESOLUTION_EXACT)
		return;
	t = *a_name;
	*a_name = *b_name;
	*b_name = t; /* freed with the entry dropped */
	*a = b;
}

static int
string_list(struct prep *p, size_t n, char **v, size_t maxn, const struct field *field)
{
	char fb[FIELD_MAX];
	int rv;
	if (n > maxn)
		return reject(p, LM_REJECT_OVERSIZE, "%s: %zu entries, limit %zu",
		    path(field, fb, sizeof(fb)), n, maxn);
	for (size_t i = 0; i < n; i++) {
		struct field f = {field->base, i, NULL, NOIDX};
		if ((rv = text(p, &v[i], LM_RECORD_TEXT_MAX, 1, &f)) != LM_OK)
			return rv;
	}
	return LM_OK;
}

static int
embedding(struct prep *p, size_t n, const float *v, const struct field *field)
{
	char fb[FIELD_MAX];
	if (n == 0)
		return LM_OK;
	if (n != p->ctx->embedding_dim)
		return reject(p, LM_REJECT_BAD_VALUE, "%s: %zu values, expected %u",
		    path(field, fb, sizeof(fb)), n, p->ctx->embedding_dim);
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return reject(p, LM_REJECT_BAD_VALUE, "%s[%zu]: not finite",
			    path(field, fb, sizeof(fb)), i);
	return LM_OK;
}

/* Frees the n warnings of arr that are not NULL, and arr. */
static void
free_warnings(Lunamatch__V1__ComplianceWarning **arr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (arr[i] != NULL)
			protobuf_c_message_free_unpacked(&arr[i]->base, NULL);
	free(arr);
}

/* Appends w to the warnings of j, which own it from then on. On LM_ENOMEM
 * w is still the caller's. */
static int
push_warning(Lunamatch__V1__JobPosting *j, Lunamatch__V1__ComplianceWarning *w)
{
	Lunamatch__V1__ComplianceWarning **arr = realloc(
	    j->compliance_warnings, (j->n_compliance_warnings + 1) * sizeof(*arr));

	if (arr == NULL)
		return LM_ENOMEM;
	j->compliance_warnings = arr;
	arr[j->n_compliance_warnings++] = w;
	return LM_OK;
}

/* Appends a warning for hit h in text (the text of field) to j. phrase is
 * the flagged text: all of it, or with whole == 0 the matched words. */
static int
add_warning(Lunamatch__V1__JobPosting *j, const lm_fair_hit *h, const char *text,
    int whole, const char *field, int removed)
{
	Lunamatch__V1__ComplianceWarning *w;
	char phrase[LM_RECORD_TEXT_MAX + 1];
	size_t n = whole ? strlen(text) : h->end - h->start;
	int rv;

	if (j->n_compliance_warnings >= LM_RECORD_WARNINGS_MAX)
		return LM_OK;
	if (n > LM_RECORD_TEXT_MAX)
		n = LM_RECORD_TEXT_MAX;
	memcpy(phrase, text + (whole ? 0 : h->start), n);
	phrase[n] = '\0';
	if ((w = malloc(sizeof(*w))) == NULL)
		return LM_ENOMEM;
	lunamatch__v1__compliance_warning__init(w);
	if (push_warning(j, w) != LM_OK) {
		free(w);
		return LM_ENOMEM;
	}
	w->removed = removed != 0;
	if ((rv = set_string(&w->rule, h->rule->id)) != LM_OK ||
	    (rv = set_string(&w->category, h->rule->category)) != LM_OK ||
	    (rv = set_string(&w->phrase, phrase)) != LM_OK ||
	    (rv = set_string(&w->field, field)) != LM_OK ||
	    (rv = set_string(&w->reason, h->rule->reason)) != LM_OK)
		return rv;
	return LM_OK;
}

/*
 * Screens text (already validated) against the fair-requirements list: one
 * warning per matching rule. *flagged tells whether any rule matched. A
 * requirement (removed != 0) is quoted whole, other text by the match.
 */
static int
screen(struct prep *p, Lunamatch__V1__JobPosting *j, const char *text,
    const struct field *field, int removed, int *flagged)
{
	lm_fair_hit hits[8];
	size_t n = lm_fairness_match(p->ctx->fairness, text, hits, 8);
	char fb[FIELD_MAX];
	int rv;

	*flagged = n > 0;
	if (n > 0)
		path(field, fb, sizeof(fb));
	for (size_t i = 0; i < n && i < 8; i++)
		if ((rv = add_warning(j, &hits[i], text, removed, fb, removed)) != LM_OK)
			return rv;
	return LM_OK;
}

/* Checks and normalizes the skills of j; flagged ones are dropped later, by
 * screen_posting. */
static int
posting_skills(struct prep *p, Lunamatch__V1__JobPosting *j)
{
	int rv, match;
	if (j->n_skills > LM_RECORD_SKILLS_MAX)
		return reject(p, LM_REJECT_OVERSIZE, "skills: %zu entries, limit %d",
		    j->n_skills, LM_RECORD_SKILLS_MAX);
	for (size_t i = 0; i < j->n_skills; i++) {
		Lunamatch__V1__PostingSkill *s = j->skills[i];
		struct field f = {"skills", i, "name", NOIDX};
		if ((rv = canonical(p, &s->name, &s->skill_id, &match, &f)) != LM_OK)
			return rv;
		s->resolution = (Lunamatch__V1__SkillResolution) match;
		if (!isfinite(s->weight) || s->weight < 0 || s->weight > 10)
			return reject(p, LM_REJECT_BAD_VALUE,
			    "skills[%zu].weight: %g is outside 0..10", i,
			    (double) s->weight);
		if (s->weight == 0)
			s->weight = 1.0f;
	}
	return LM_OK;
}

/*
 * Checks and normalizes the requirement groups of j. skill_ids and
 * skill_resolutions are filled one per entry of skills; screen_posting drops
 * flagged entries from all three and merge_duplicates the repeated ids.
 */
static int
requirement_groups(struct prep *p, Lunamatch__V1__JobPosting *j)
{
	int rv;
	if (j->n_requirement_groups > LM_RECORD_GROUPS_MAX)
		return reject(p, LM_REJECT_OVERSIZE,
		    "requirement_groups: %zu entries, limit %d", j->n_requirement_groups,
		    LM_RECORD_GROUPS_MAX);
	for (size_t i = 0; i < j->n_requirement_groups; i++) {
		Lunamatch__V1__RequirementGroup *g = j->requirement_groups[i];
		struct field f = {"requirement_groups", i, "label", NOIDX};
		if ((rv = text(p, &g->label, LM_RECORD_TEXT_MAX, 1, &f)) != LM_OK)
			return rv;
		f.sub = "min_years_experience";
		if ((rv = years(p, g->min_years_experience, &f)) != LM_OK)
			return rv;
		if (g->n_skills > LM_RECORD_GROUP_SKILLS_MAX)
			return reject(p, LM_REJECT_OVERSIZE,
			    "requirement_groups[%zu].skills: %zu entries, limit %d", i,
			    g->n_skills, LM_RECORD_GROUP_SKILLS_MAX);
		if (g->n_skills == 0 && g->min_years_experience == 0)
			return reject(p, LM_REJECT_MISSING_FIELD,
			    "requirement_groups[%zu]: needs skills or "
			    "min_years_experience",
			    i);
		for (size_t k = 0; k < g->n_skill_ids; k++)
			if (g->skill_ids[k] != protobuf_c_empty_string)
				free(g->skill_ids[k]);
		free(g->skill_ids);
		g->skill_ids = NULL;
		g->n_skill_ids = 0;
		free(g->skill_resolutions); /* ingest's to fill, like skill_ids */
		g->skill_resolutions = NULL;
		g->n_skill_resolutions = 0;
		if (g->n_skills == 0)
			continue;
		g->skill_ids = calloc(g->n_skills, sizeof(char *));
		if (g->skill_ids == NULL)
			return LM_ENOMEM;
		g->skill_resolutions = calloc(g->n_skills, sizeof(*g->skill_resolutions));
		if (g->skill_resolutions == NULL)
			return LM_ENOMEM;
		f.sub = "skills";
		for (size_t k = 0; k < g->n_skills; k++) {
			int match;
			f.k = k;
			if ((rv = canonical(p, &g->skills[k], &g->skill_ids[k], &match,
			         &f)) != LM_OK)
				return rv;
			g->n_skill_ids++;
			g->skill_resolutions[g->n_skill_resolutions++] =
			    (Lunamatch__V1__SkillResolution) match;
		}
	}
	return LM_OK;
}

/* Removes entry k of group g: the skill, its id and its resolution. */
static void
drop_group_skill(Lunamatch__V1__RequirementGroup *g, size_t k)
{
	drop_string(g->skills, &g->n_skills, k);
	drop_string(g->skill_ids, &g->n_skill_ids, k);
	memmove(&g->skill_resolutions[k], &g->skill_resolutions[k + 1],
	    (g->n_skill_resolutions - k - 1) * sizeof(g->skill_resolutions[0]));
	g->n_skill_resolutions--;
}

/*
 * The fields screen_fields screens as requirements (warnings marked
 * removed), as the templates of their paths: an index is any number below
 * its bound (the limit of that list). keep_removed keeps a producer's warning
 * only for a path one of these writes.
 */
static const struct requirement_field {
	struct field f;
	size_t imax, kmax;
} requirement_fields[] = {
    {{"skills", 0, "name", NOIDX}, LM_RECORD_SKILLS_MAX, 0},
    {{"requirement_groups", 0, "label", NOIDX}, LM_RECORD_GROUPS_MAX, 0},
    {{"requirement_groups", 0, "skills", 0}, LM_RECORD_GROUPS_MAX,
        LM_RECORD_GROUP_SKILLS_MAX},
};

enum { RF_SKILL, RF_GROUP_LABEL, RF_GROUP_SKILL };

/* Reads at *s the decimal index path() writes (no sign, no leading zero)
 * if it is below max, and moves *s past it. */
static int
read_index(const char **s, size_t max)
{
	size_t v = 0;
	const char *q = *s;

	if (!isdigit((unsigned char) *q) ||
	    (q[0] == '0' && isdigit((unsigned char) q[1])))
		return 0;
	for (; isdigit((unsigned char) *q); q++)
		if ((v = v * 10 + (size_t) (*q - '0')) >= max)
			return 0;
	*s = q;
	return 1;
}

/* Skips at *s the text t, when it is there. */
static int
read_text(const char **s, const char *t)
{
	size_t n = strlen(t);

	if (strncmp(*s, t, n) != 0)
		return 0;
	*s += n;
	return 1;
}

/* True when field is a path that screen_fields writes for a requirement. */
static int
requirement_path(const char *field)
{
	for (size_t t = 0; t < sizeof(requirement_fields) / sizeof(requirement_fields[0]);
	     t++) {
		const struct requirement_field *r = &requirement_fields[t];
		const char *s = field;

		if (read_text(&s, r->f.base) &&
		    (r->f.i == NOIDX || (read_text(&s, "[") && read_index(&s, r->imax) &&
		                            read_text(&s, "]"))) &&
		    (r->f.sub == NULL ||
		        (read_text(&s, ".") && read_text(&s, r->f.sub))) &&
		    (r->f.k == NOIDX || (read_text(&s, "[") && read_index(&s, r->kmax) &&
		                            read_text(&s, "]"))) &&
		    *s == '\0')
			return 1;
	}
	return 0;
}

/*
 * Screens the title (which stays), the skills and the requirement groups of
 * j. Flagged skills and groups are dropped; warnings name the fields as the
 * producer numbered them.
 */
static int
screen_fields(struct prep *p, Lunamatch__V1__JobPosting *j)
{
	int flagged, rv;

	if ((rv = screen(p, j, j->title, FIELD("title"), 0, &flagged)) != LM_OK)
		return rv;
	for (size_t i = 0, orig = 0; i < j->n_skills; orig++) {
		struct field f = requirement_fields[RF_SKILL].f;
		f.i = orig;
		if ((rv = screen(p, j, j->skills[i]->name, &f, 1, &flagged)) != LM_OK)
			return rv;
		if (flagged)
			drop_message((void **) j->skills, &j->n_skills, i);
		else
			i++;
	}
	for (size_t i = 0, orig = 0; i < j->n_requirement_groups; orig++) {
		Lunamatch__V1__RequirementGroup *g = j->requirement_groups[i];
		struct field f = requirement_fields[RF_GROUP_LABEL].f;
		f.i = orig;
		/* A flagged label is a flagged requirement, whatever its
		 * skills: the whole group goes. */
		if ((rv = screen(p, j, g->label, &f, 1, &flagged)) != LM_OK)
			return rv;
		if (flagged) {
			drop_message(
			    (void **) j->requirement_groups, &j->n_requirement_groups, i);
			continue;
		}
		f = requirement_fields[RF_GROUP_SKILL].f;
		f.i = orig;
		for (size_t k = 0, korig = 0; k < g->n_skills; korig++) {
			f.k = korig;
			if ((rv = screen(p, j, g->skills[k], &f, 1, &flagged)) != LM_OK)
				return rv;
			if (flagged)
				drop_group_skill(g, k);
			else
				k++;
		}
		if (g->n_skills == 0 && g->min_years_experience == 0)
			drop_message(
			    (void **) j->requirement_groups, &j->n_requirement_groups, i);
		else
			i++;
	}
	return LM_OK;
}

/* True when j has a warning of rule for field. */
static int
has_warning(const Lunamatch__V1__JobPosting *j, const char *rule, const char *field)
{
	for (size_t i = 0; i < j->n_compliance_warnings; i++)
		if (strcmp(j->compliance_warnings[i]->rule, rule) == 0 &&
		    strcmp(j->compliance_warnings[i]->field, field) == 0)
			return 1;
	return 0;
}

/*
 * Moves to j the warnings of old (n) that record a requirement an earlier
 * prepare dropped and that still apply: marked removed, their field is a
 * path screen_fields writes for a requirement (requirement_path: no other
 * text, so a producer cannot have any text logged as a field), their rule is
 * in the list and flags their phrase, and j has no warning of that rule for
 * that field yet. Their category and reason are the list's. Moved entries
 * of old become NULL; anything else a producer sent stays there.
 */
static int
keep_removed(struct prep *p, Lunamatch__V1__JobPosting *j,
    Lunamatch__V1__ComplianceWarning **old, size_t n)
{
	lm_fair_hit hits[8];
	int rv;

	for (size_t i = 0; i < n; i++) {
		Lunamatch__V1__ComplianceWarning *w = old[i];
		const lm_fair_rule *rule = NULL;
		size_t nh;

		if (j->n_compliance_warnings >= LM_RECORD_WARNINGS_MAX)
			break;
		if (!w->removed || strlen(w->phrase) > LM_RECORD_TEXT_MAX ||
		    !requirement_path(w->field) || has_warning(j, w->rule, w->field))
			continue;
		nh = lm_fairness_match(p->ctx->fairness, w->phrase, hits, 8);
		for (size_t k = 0; k < nh && k < 8 && rule == NULL; k++)
			if (strcmp(hits[k].rule->id, w->rule) == 0)
				rule = hits[k].rule;
		if (rule == NULL)
			continue;
		if ((rv = set_string(&w->category, rule->category)) != LM_OK ||
		    (rv = set_string(&w->reason, rule->reason)) != LM_OK ||
		    (rv = push_warning(j, w)) != LM_OK)
			return rv;
		old[i] = NULL;
	}
	return LM_OK;
}

/*
 * Fills what screening fills in, for a posting that passed every check
 * (whether a posting is valid never depends on the list): fairness_version,
 * and the warnings of screen_fields plus those of requirements an earlier
 * prepare dropped (keep_removed), so that preparing a prepared posting
 * again (a stored record published again) gives the same warnings.
 */
static int
screen_posting(struct prep *p, Lunamatch__V1__JobPosting *j)
{
	Lunamatch__V1__ComplianceWarning **old = j->compliance_warnings;
	size_t nold = j->n_compliance_warnings;
	int rv;

	j->compliance_warnings = NULL;
	j->n_compliance_warnings = 0;
	if ((rv = set_string(&j->fairness_version,
	         p->ctx->fairness ? lm_fairness_version(p->ctx->fairness) : "")) ==
	        LM_OK &&
	    (rv = screen_fields(p, j)) == LM_OK)
		rv = keep_removed(p, j, old, nold);
	free_warnings(old, nold);
	return rv;
}

/* Merges the skills of j that share an id, and the ids a group repeats. */
static void
merge_duplicates(Lunamatch__V1__JobPosting *j)
{
	/* Aliases of one skill: the first keeps the larger weight and the
	 * surer reading, and is preferred only when both are
	 * (docs/scoring.md). */
	for (size_t i = 0; i < j->n_skills; i++) {
		for (size_t k = i + 1; k < j->n_skills;) {
			Lunamatch__V1__PostingSkill *a = j->skills[i], *b = j->skills[k];
			if (strcmp(a->skill_id, b->skill_id) == 0) {
				if (b->weight > a->weight)
					a->weight = b->weight;
				a->preferred = a->preferred && b->preferred;
				surer_reading(
				    &a->name, &a->resolution, &b->name, b->resolution);
				drop_message((void **) j->skills, &j->n_skills, k);
			} else {
				k++;
			}
		}
	}
	/* skill_resolutions stay one per entry of skills. */
	for (size_t i = 0; i < j->n_requirement_groups; i++) {
		Lunamatch__V1__RequirementGroup *g = j->requirement_groups[i];
		for (size_t k = 1; k < g->n_skill_ids;) {
			int dup = 0;
			for (size_t m = 0; m < k && !dup; m++)
				dup = strcmp(g->skill_ids[m], g->skill_ids[k]) == 0;
			if (dup)
				drop_string(g->skill_ids, &g->n_skill_ids, k);
			else
				k++;
		}
	}
}

static void
prep_init(
    struct prep *p, const lm_record_ctx *ctx, lm_reject *reason, char *err, size_t errlen)
{
	p->ctx = ctx;
	p->reason = reason;
	p->err = err;
	p->errlen = errlen;
	*reason = LM_REJECT_NONE;
	if (errlen > 0)
		err[0] = '\0';
}

int
lm_posting_prepare(const lm_record_ctx *ctx, Lunamatch__V1__JobPosting *j,
    lm_reject *reason, char *err, size_t errlen)
{
	struct prep p;
	int rv;

	prep_init(&p, ctx, reason, err, errlen);
	if ((rv = ident(&p, &j->id, j->version)) != LM_OK ||
	    (rv = text(&p, &j->title, LM_RECORD_TITLE_MAX, 1, FIELD("title"))) != LM_OK ||
	    (rv = text(&p, &j->company, LM_RECORD_TEXT_MAX, 0, FIELD("company"))) !=
	        LM_OK ||
	    (rv = text(&p, &j->description, LM_RECORD_DESCRIPTION_MAX, 0,
	         FIELD("description"))) != LM_OK ||
	    (rv = text(&p, &j->category, LM_RECORD_TEXT_MAX, 0, FIELD("category"))) !=
	        LM_OK ||
	    (rv = text(&p, &j->industry, LM_RECORD_TEXT_MAX, 0, FIELD("industry"))) !=
	        LM_OK ||
	    (rv = text(&p, &j->job_function, LM_RECORD_TEXT_MAX, 0,
	         FIELD("job_function"))) != LM_OK)
		return rv;
	if ((rv = enum_valid(&p, &lunamatch__v1__posting_status__descriptor,
	         (int) j->status, FIELD("status"))) != LM_OK ||
	    (rv = enum_valid(&p, &lunamatch__v1__employment_type__descriptor,
	         (int) j->employment_type, FIELD("employment_type"))) != LM_OK ||
	    (rv = enum_valid(&p, &lunamatch__v1__experience_level__descriptor,
	         (int) j->experience_level, FIELD("experience_level"))) != LM_OK ||
	    (rv = enum_valid(&p, &lunamatch__v1__education__descriptor,
	         (int) j->education, FIELD("education"))) != LM_OK ||
	    (rv = enum_valid(&p, &lunamatch__v1__remote_policy__descriptor,
	         (int) j->remote, FIELD("remote"))) != LM_OK)
		return rv;
	if ((rv = years(&p, j->min_years_experience, FIELD("min_years_experience"))) !=
	        LM_OK ||
	    (rv = locations(&p, j->n_locations, j->locations, FIELD("locations"))) !=
	        LM_OK ||
	    (rv = remote_countries(&p, j)) != LM_OK ||
	    (rv = salary(&p, &j->salary, 0, FIELD("salary"))) != LM_OK ||
	    (rv = posting_skills(&p, j)) != LM_OK ||
	    (rv = requirement_groups(&p, j)) != LM_OK ||
	    (rv = embedding(&p, j->n_embedding, j->embedding, FIELD("embedding"))) !=
	        LM_OK)
		return rv;
	if ((rv = timestamp(&p, j->posted_at, "posted_at")) != LM_OK ||
	    (rv = timestamp(&p, j->expires_at, "expires_at")) != LM_OK)
		return rv;
	if (j->expires_at != 0 && j->posted_at != 0 && j->expires_at < j->posted_at)
		return reject(&p, LM_REJECT_BAD_VALUE, "expires_at: before posted_at");
	if ((rv = screen_posting(&p, j)) != LM_OK)
		return rv;
	merge_duplicates(j);
	return LM_OK;
}

static int
profile_skills(struct prep *p, Lunamatch__V1__CandidateProfile *c)
{
	int rv, match;
	if (c->n_skills > LM_RECORD_SKILLS_MAX)
		return reject(p, LM_REJECT_OVERSIZE, "skills: %zu entries, limit %d",
		    c->n_skills, LM_RECORD_SKILLS_MAX);
	for (size_t i = 0; i < c->n_skills; i++) {
		Lunamatch__V1__CandidateSkill *s = c->skills[i];
		struct field f = {"skills", i, "name", NOIDX};
		if ((rv = canonical(p, &s->name, &s->skill_id, &match, &f)) != LM_OK)
			return rv;
		s->resolution = (Lunamatch__V1__SkillResolution) match;
		f.sub = "years";
		if ((rv = years(p, s->years, &f)) != LM_OK)
			return rv;
		f.sub = "level";
		if ((rv = enum_valid(p, &lunamatch__v1__skill_level__descriptor,
		         (int) s->level, &f)) != LM_OK)
			return rv;
	}
	/* Merge duplicates: the first keeps the most years, the highest level
	 * and the surer reading. */
	for (size_t i = 0; i < c->n_skills; i++) {
		for (size_t k = i + 1; k < c->n_skills;) {
			Lunamatch__V1__CandidateSkill *a = c->skills[i],
			                              *b = c->skills[k];
			if (strcmp(a->skill_id, b->skill_id) == 0) {
				if (b->years > a->years)
					a->years = b->years;
				if (b->level > a->level)
					a->level = b->level;
				surer_reading(
				    &a->name, &a->resolution, &b->name, b->resolution);
				drop_message((void **) c->skills, &c->n_skills, k);
			} else {
				k++;
			}
		}
	}
	return LM_OK;
}

int
lm_profile_prepare(const lm_record_ctx *ctx, Lunamatch__V1__CandidateProfile *c,
    lm_reject *reason, char *err, size_t errlen)
{
	struct prep p;
	int rv;

	prep_init(&p, ctx, reason, err, errlen);
	if ((rv = ident(&p, &c->id, c->version)) != LM_OK ||
	    (rv = text(&p, &c->headline, LM_RECORD_TEXT_MAX, 0, FIELD("headline"))) !=
	        LM_OK ||
	    (rv = profile_skills(&p, c)) != LM_OK ||
	    (rv = years(&p, c->years_experience, FIELD("years_experience"))) != LM_OK)
		return rv;
	if ((rv = enum_valid(&p, &lunamatch__v1__experience_level__descriptor,
	         (int) c->experience_level, FIELD("experience_level"))) != LM_OK ||
	    (rv = enum_valid(&p, &lunamatch__v1__education__descriptor,
	         (int) c->education, FIELD("education"))) != LM_OK ||
	    (rv = enum_valid(&p, &lunamatch__v1__remote_policy__descriptor,
	         (int) c->remote, FIELD("remote"))) != LM_OK)
		return rv;
	if (c->n_desired_employment_types > LM_RECORD_EMPLOYMENT_MAX)
		return reject(&p, LM_REJECT_OVERSIZE,
		    "desired_employment_types: %zu entries, limit %d",
		    c->n_desired_employment_types, LM_RECORD_EMPLOYMENT_MAX);
	for (size_t i = 0; i < c->n_desired_employment_types; i++) {
		struct field f = {"desired_employment_types", i, NULL, NOIDX};
		if ((rv = enum_valid(&p, &lunamatch__v1__employment_type__descriptor,
		         (int) c->desired_employment_types[i], &f)) != LM_OK)
			return rv;
	}
	if ((rv = locations(&p, c->n_locations, c->locations, FIELD("locations"))) !=
	        LM_OK ||
	    (rv = salary(&p, &c->desired_salary, 1, FIELD("desired_salary"))) != LM_OK ||
	    (rv = embedding(&p, c->n_embedding, c->embedding, FIELD("embedding"))) !=
	        LM_OK)
		return rv;
	if (c->career_goals != NULL) {
		Lunamatch__V1__CareerGoals *g = c->career_goals;
		if ((rv = string_list(&p, g->n_desired_titles, g->desired_titles,
		         LM_RECORD_GOALS_MAX, FIELD("career_goals.desired_titles"))) !=
		        LM_OK ||
		    (rv = string_list(&p, g->n_desired_categories, g->desired_categories,
		         LM_RECORD_GOALS_MAX,
		         FIELD("career_goals.desired_categories"))) != LM_OK ||
		    (rv = string_list(&p, g->n_desired_industries, g->desired_industries,
		         LM_RECORD_GOALS_MAX,
		         FIELD("career_goals.desired_industries"))) != LM_OK)
			return rv;
	}
	return timestamp(&p, c->updated_at, "updated_at");
}
