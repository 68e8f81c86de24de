/*
 * gazetteer.c - loading data/geo/cities.tsv, finding cities by name, and
 * great-circle distances; see gazetteer.h for the contract.
 *
 * The file is read into one buffer and split in place; cities point into it.
 * Every name and alias of a city is indexed by the 64-bit hash of its key in
 * one array sorted by hash, then by population (largest first): a lookup is
 * a binary search and a short walk over the cities that share the hash,
 * each checked against the key itself, so a hash collision never gives a
 * wrong city. No per-name allocation: about 16 bytes per name and alias.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lunamatch/error.h"
#include "lunamatch/gazetteer.h"
#include "lunamatch/hashmap.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"
#include "lunamatch/textfile.h"

#define FORMAT_VERSION "1"
#define NCOLS          9
#define KEY_MAX        (LM_GAZETTEER_NAME_MAX + 1) /* a key is never longer */

struct city {
	lm_city pub;
	const char *aliases; /* the column as written: names separated by '|' */
};

struct entry {
	uint64_t hash;
	uint32_t city;
	uint32_t population; /* the city's, for the order of the index */
};

struct lm_gazetteer {
	char *text; /* file contents, split in place */
	struct city *cities;
	size_t ncities, capcities;
	struct entry *index; /* sorted by hash, population desc, file order */
	size_t nindex, capindex;
	char version[LM_GAZETTEER_VERSION_MAX + 1];
};

_Static_assert(LM_GAZETTEER_VERSION_MAX <= LM_TEXTFILE_VERSION_MAX, "version fits");

/*
 * Base letters of U+00C0..U+024F (Latin-1 Supplement, Latin Extended-A and
 * -B) and of U+1E00..U+1EFF (Latin Extended Additional); '.' where the
 * character is not a letter with a base letter. The first 192 are written by
 * hand (they include letters such as ß and Ł that have no decomposition);
 * the rest are the letters Unicode names "LATIN <CAPITAL|SMALL> LETTER <X>
 * WITH ...", X being the base (the Romanian ș and ț, the Vietnamese ộ).
 */
static const char latin_base[] = "AAAAAAACEEEEIIII"
                                 "DNOOOOO.OUUUUY.s"
                                 "aaaaaaaceeeeiiii"
                                 "dnooooo.ouuuuy.y"
                                 "AaAaAaCcCcCcCcDd"
                                 "DdEeEeEeEeEeGgGg"
                                 "GgGgHhHhIiIiIiIi"
                                 "IiIiJjKkkLlLlLlL"
                                 "lLlNnNnNnnNnOoOo"
                                 "OoOoRrRrRrSsSsSs"
                                 "SsTtTtTtUuUuUuUu"
                                 "UuUuWwYyYZzZzZzs"
                                 "bBBb...Cc.DDd..."
                                 ".FfG...IKkl..NnO"
                                 "Oo..Pp.....tTtTU"
                                 "u.VYyZz........."
                                 ".............AaI"
                                 "iOoUuUuUuUuUu.Aa"
                                 "Aa..GgGgKkOoOo.."
                                 "j...Gg..NnAa..Oo"
                                 "AaAaEeEeIiIiOoOo"
                                 "RrRrUuUuSsTt..Hh"
                                 "Nd..ZzAaEeOoOoOo"
                                 "OoYylnt...ACcLTs"
                                 "z..B..EeJj.qRrYy";
_Static_assert(sizeof(latin_base) - 1 == 0x250 - 0xc0, "one letter per code point");

static const char latin_additional[] = "AaBbBbBbCcDdDdDd"
                                       "DdDdEeEeEeEeEeFf"
                                       "GgHhHhHhHhHhIiIi"
                                       "KkKkKkLlLlLlLlMm"
                                       "MmMmNnNnNnNnOoOo"
                                       "OoOoPpPpRrRrRrRr"
                                       "SsSsSsSsSsTtTtTt"
                                       "TtUuUuUuUuUuVvVv"
                                       "WwWwWwWwWwXxXxYy"
                                       "ZzZzZzhtwya....."
                                       "AaAaAaAaAaAaAaAa"
                                       "AaAaAaAaEeEeEeEe"
                                       "EeEeEeEeIiIiOoOo"
                                       "OoOoOoOoOoOoOoOo"
                                       "OoOoUuUuUuUuUuUu"
                                       "UuYyYyYyYy....Yy";
_Static_assert(sizeof(latin_additional) - 1 == 0x100, "one letter per code point");

/*
 * Writes the key of s[0..n) (stopping early at a NUL) into buf, at most
 * len - 1 bytes and a NUL, and returns the key's whole length: ASCII letters
 * lower-cased and digits kept, accented Latin letters read as their base
 * letter, combining diacritical marks (U+0300..U+036F) dropped, so that a
 * name written decomposed has the key of its composed form, other non-ASCII
 * bytes kept, everything else dropped.
 */
static size_t
place_key(const char *s, size_t n, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t o = 0;

#define PUT(ch)                                                                          \
	do {                                                                             \
		if (o + 1 < len)                                                         \
			buf[o] = (char) (ch);                                            \
		o++;                                                                     \
	} while (0)

	for (size_t i = 0; i < n && p[i] != '\0'; i++) {
		unsigned char c = p[i];
		size_t blank = c >= 0x80 ? lm_text_blank(p + i,
		                               strnlen(s + i, n - i < 3 ? n - i : 3))
		                         : 0;
		if (blank > 0) {
			i += blank - 1; /* dropped, as ASCII spaces are */
		} else if (c >= 'A' && c <= 'Z') {
			PUT(c - 'A' + 'a');
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			PUT(c);
		} else if (c >= 0xc3 && c <= 0xcd && i + 1 < n &&
		           (p[i + 1] & 0xc0) == 0x80) {
			unsigned cp = ((unsigned) (c & 0x1f) << 6) | (p[i + 1] & 0x3f);
			char b = cp < 0x250 ? latin_base[cp - 0xc0] : '.';
			if (cp >= 0x300 && cp <= 0x36f) {
				/* a combining mark: dropped */
			} else if (b == '.') {
				PUT(c);
				PUT(p[i + 1]);
			} else {
				PUT(b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
			}
			i++;
		} else if (c == 0xe1 && i + 2 < n && p[i + 1] >= 0xb8 &&
		           p[i + 1] <= 0xbb && (p[i + 2] & 0xc0) == 0x80) {
			unsigned cp =
			    ((unsigned) (p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
			char b = latin_additional[cp - 0xe00];
			if (b == '.') {
				PUT(c);
				PUT(p[i + 1]);
				PUT(p[i + 2]);
			} else {
				PUT(b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
			}
			i += 2;
		} else if (c >= 0x80) {
			PUT(c);
		}
	}
#undef PUT
	if (len > 0)
		buf[o < len ? o : len - 1] = '\0';
	return o;
}

/* The key of s[0..n) and its hash; false when the key is empty or too long
 * to be the key of a name in the file. */
static bool
key_hash(const char *s, size_t n, char *key, uint64_t *h)
{
	size_t k = place_key(s, n, key, KEY_MAX);
	if (k == 0 || k >= KEY_MAX)
		return false;
	*h = lm_hash_bytes(key, k);
	return true;
}

static bool
parse_double(const char *s, double lo, double hi, double *out)
{
	return lm_textfile_number(s, 1, out) && *out >= lo && *out <= hi;
}

static bool
parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (!lm_textfile_whole(s, 0, UINT32_MAX, &v))
		return false;
	*out = (uint32_t) v;
	return true;
}

/* Adds an index entry for name s[0..n) of city idx, unless the city already
 * has one with the same hash (a name and an alias that look up alike). */
static int
add_entry(lm_textfile *tf, struct lm_gazetteer *g, uint32_t idx, size_t first,
    const char *s, size_t n)
{
	char key[KEY_MAX];
	uint64_t h;

	if (n > LM_GAZETTEER_NAME_MAX)
		return lm_textfile_fail(tf, LM_E2BIG,
		    "name or alias longer than %d bytes", LM_GAZETTEER_NAME_MAX);
	if (!key_hash(s, n, key, &h))
		return lm_textfile_fail(
		    tf, LM_EPARSE, "name or alias with no letters or digits");
	for (size_t i = first; i < g->nindex; i++)
		if (g->index[i].hash == h)
			return LM_OK;
	if (g->nindex == g->capindex) {
		size_t cap = g->capindex ? g->capindex * 2 : 4096;
		struct entry *ni = realloc(g->index, cap * sizeof(*ni));
		if (ni == NULL)
			return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
		g->index = ni;
		g->capindex = cap;
	}
	g->index[g->nindex].hash = h;
	g->index[g->nindex].city = idx;
	g->index[g->nindex].population = g->cities[idx].pub.population;
	g->nindex++;
	return LM_OK;
}

/* Parses one city line, split in place. */
static int
parse_city(void *arg, lm_textfile *tf, char *line)
{
	struct lm_gazetteer *g = arg;
	char *col[NCOLS];
	size_t ncol = 0, first, naliases = 0;
	char *p;
	struct city *c;
	uint32_t idx;
	int rv;

	ncol = lm_textfile_split(line, col, NCOLS);
	if (ncol != NCOLS)
		return lm_textfile_fail(tf, LM_EPARSE,
		    "expected %d tab-separated columns (geoname id, name, country, "
		    "admin1, "
		    "region, latitude, longitude, population, aliases), found %zu",
		    NCOLS, ncol);
	for (size_t i = 0; i < NCOLS; i++) {
		if (lm_text_has_control(col[i]))
			return lm_textfile_fail(
			    tf, LM_EPARSE, "column %zu has a control character", i + 1);
		/* A name in another encoding would never match its key. */
		if (!lm_pb_utf8_valid(col[i], strlen(col[i])))
			return lm_textfile_fail(
			    tf, LM_EPARSE, "column %zu is not valid UTF-8", i + 1);
	}
	if (g->ncities >= LM_GAZETTEER_CITIES_MAX)
		return lm_textfile_fail(
		    tf, LM_E2BIG, "more than %d cities", LM_GAZETTEER_CITIES_MAX);
	if (g->ncities == g->capcities) {
		size_t cap = g->capcities ? g->capcities * 2 : 1024;
		struct city *nc = realloc(g->cities, cap * sizeof(*nc));
		if (nc == NULL)
			return lm_textfile_fail(tf, LM_ENOMEM, "out of memory");
		g->cities = nc;
		g->capcities = cap;
	}
	idx = (uint32_t) g->ncities;
	c = &g->cities[idx];
	memset(c, 0, sizeof(*c));
	if (!parse_u32(col[0], &c->pub.geoname_id) || c->pub.geoname_id == 0)
		return lm_textfile_fail(
		    tf, LM_EPARSE, "geoname id \"%s\" is not a positive integer", col[0]);
	if (*col[1] == '\0')
		return lm_textfile_fail(tf, LM_EPARSE, "empty name");
	/* Two capitals: GeoNames also uses user-assigned codes such as XK. */
	if (strlen(col[2]) != 2 || col[2][0] < 'A' || col[2][0] > 'Z' ||
	    col[2][1] < 'A' || col[2][1] > 'Z')
		return lm_textfile_fail(tf, LM_EPARSE,
		    "country \"%s\" is not a two-letter country code", col[2]);
	if (strlen(col[3]) > LM_GAZETTEER_NAME_MAX ||
	    strlen(col[4]) > LM_GAZETTEER_NAME_MAX)
		return lm_textfile_fail(tf, LM_E2BIG,
		    "admin1 or region longer than %d bytes", LM_GAZETTEER_NAME_MAX);
	if (!parse_double(col[5], -90, 90, &c->pub.latitude))
		return lm_textfile_fail(
		    tf, LM_EPARSE, "latitude \"%s\" is not a number in -90..90", col[5]);
	if (!parse_double(col[6], -180, 180, &c->pub.longitude))
		return lm_textfile_fail(tf, LM_EPARSE,
		    "longitude \"%s\" is not a number in -180..180", col[6]);
	if (!parse_u32(col[7], &c->pub.population))
		return lm_textfile_fail(
		    tf, LM_EPARSE, "population \"%s\" is not an integer", col[7]);
	c->pub.name = col[1];
	c->pub.country = col[2];
	c->pub.admin1 = col[3];
	c->pub.region = col[4];
	c->aliases = col[8];
	g->ncities++;

	first = g->nindex;
	if ((rv = add_entry(tf, g, idx, first, col[1], strlen(col[1]))) != LM_OK)
		return rv;
	for (p = col[8]; *p != '\0';) {
		char *bar = strchr(p, '|');
		size_t n = bar ? (size_t) (bar - p) : strlen(p);
		if (++naliases > LM_GAZETTEER_ALIASES_MAX)
			return lm_textfile_fail(tf, LM_E2BIG, "more than %d aliases",
			    LM_GAZETTEER_ALIASES_MAX);
		if ((rv = add_entry(tf, g, idx, first, p, n)) != LM_OK)
			return rv;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return LM_OK;
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	if (x->population != y->population)
		return x->population > y->population ? -1 : 1;
	return x->city < y->city ? -1 : x->city > y->city;
}

static int
cmp_id(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
	return x < y ? -1 : x > y;
}

/* Sorts the index and checks that GeoNames ids are unique. */
static int
finish(struct lm_gazetteer *g, const char *path, char *err, size_t errlen)
{
	uint32_t *ids;

	if (g->ncities == 0)
		return lm_textfile_errf(err, errlen, path, 0, LM_EPARSE, "no cities");
	if ((ids = malloc(g->ncities * sizeof(*ids))) == NULL)
		return lm_textfile_errf(err, errlen, path, 0, LM_ENOMEM, "out of memory");
	for (size_t i = 0; i < g->ncities; i++)
		ids[i] = g->cities[i].pub.geoname_id;
	qsort(ids, g->ncities, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < g->ncities; i++) {
		if (ids[i] == ids[i - 1]) {
			uint32_t dup = ids[i];
			free(ids);
			return lm_textfile_errf(err, errlen, path, 0, LM_ESCHEMA,
			    "geoname id %u appears twice", dup);
		}
	}
	free(ids);
	qsort(g->index, g->nindex, sizeof(*g->index), cmp_entry);
	return LM_OK;
}

int
lm_gazetteer_load(const char *path, lm_gazetteer **out, char *err, size_t errlen)
{
	static const lm_textfile_opts opts = {.file_max = LM_GAZETTEER_FILE_MAX,
	    .line_max = LM_GAZETTEER_LINE_MAX,
	    .format = FORMAT_VERSION,
	    .version_max = LM_GAZETTEER_VERSION_MAX};
	struct lm_gazetteer *g;
	int rv;

	if (out == NULL)
		return lm_textfile_errf(
		    err, errlen, path, 0, LM_EINVAL, "no output pointer");
	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return lm_textfile_errf(err, errlen, path, 0, LM_ENOMEM, "out of memory");
	rv = lm_textfile_read(path, &opts, err, errlen, parse_city, g, g->version,
	    sizeof(g->version), &g->text);
	if (rv == LM_OK)
		rv = finish(g, path, err, errlen);
	if (rv != LM_OK) {
		lm_gazetteer_free(g);
		return rv;
	}
	*out = g;
	return LM_OK;
}

void
lm_gazetteer_free(lm_gazetteer *g)
{
	if (g == NULL)
		return;
	free(g->cities);
	free(g->index);
	free(g->text);
	free(g);
}

const char *
lm_gazetteer_version(const lm_gazetteer *g)
{
	return g ? g->version : "";
}

size_t
lm_gazetteer_count(const lm_gazetteer *g)
{
	return g ? g->ncities : 0;
}

const lm_city *
lm_gazetteer_at(const lm_gazetteer *g, size_t i)
{
	return g && i < g->ncities ? &g->cities[i].pub : NULL;
}

/* True when s[0..n) has the key key. */
static bool
same_key(const char *s, size_t n, const char *key)
{
	char k[KEY_MAX];
	size_t len = place_key(s, n, k, sizeof(k));
	return len < sizeof(k) && strcmp(k, key) == 0;
}

/* True when the name or an alias of c has the key key. */
static bool
city_has_key(const struct city *c, const char *key)
{
	if (same_key(c->pub.name, strlen(c->pub.name), key))
		return true;
	for (const char *p = c->aliases; *p != '\0';) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t) (bar - p) : strlen(p);
		if (same_key(p, n, key))
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

/* True when region names c's first-level division (code or name). */
static bool
in_region(const lm_city *c, const char *region)
{
	char key[KEY_MAX];
	if (!key_hash(region, strlen(region), key, &(uint64_t){0}))
		return false;
	return (c->admin1[0] != '\0' && same_key(c->admin1, strlen(c->admin1), key)) ||
	       (c->region[0] != '\0' && same_key(c->region, strlen(c->region), key));
}

const lm_city *
lm_gazetteer_lookup(
    const lm_gazetteer *g, const char *name, const char *country, const char *region)
{
	char key[KEY_MAX];
	uint64_t h;
	size_t lo = 0, hi;
	const lm_city *best = NULL;
	bool any_country = country == NULL || country[0] == '\0';
	bool want_region = region != NULL && region[0] != '\0';

	if (g == NULL || name == NULL || !key_hash(name, strlen(name), key, &h))
		return NULL;
	hi = g->nindex;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g->index[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Entries of one hash are in order of population, largest first. */
	for (size_t i = lo; i < g->nindex && g->index[i].hash == h; i++) {
		const struct city *c = &g->cities[g->index[i].city];
		if (!any_country && strcasecmp(c->pub.country, country) != 0)
			continue;
		if (!city_has_key(c, key))
			continue;
		if (any_country && best != NULL &&
		    strcmp(best->country, c->pub.country) != 0)
			return NULL; /* the name alone does not tell the country */
		if (best == NULL)
			best = &c->pub;
		if (want_region && in_region(&c->pub, region)) {
			if (!any_country)
				return &c->pub;
			if (!in_region(best, region))
				best = &c->pub;
		}
	}
	return best;
}

double
lm_geo_distance_km(double lat1, double lon1, double lat2, double lon2)
{
	const double rad = M_PI / 180.0;
	double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
	double a = sin(dlat / 2) * sin(dlat / 2) +
	           cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);

	if (a > 1)
		a = 1;
	return 2 * LM_EARTH_RADIUS_KM * asin(sqrt(a));
}
