/*
 * gazetteer.h - cities with coordinates, and distances between places.
 *
 * Ingest normalizes the locations of postings and profiles with it: a
 * Location whose city the gazetteer knows gets latitude, longitude and the
 * GeoNames id (record.h), so that the scorer can compare places by distance
 * (lm_geo_distance_km) instead of by name. The table is loaded from
 * data/geo/cities.tsv (GeoNames cities of 15,000 people or more, CC BY 4.0;
 * format in docs/data-files.md, attribution in data/geo/LICENSE); nothing is
 * downloaded at run time. It is immutable after loading: any number of
 * threads may read it concurrently.
 *
 * Names are compared through a key that ignores case, spaces and
 * punctuation and reads accented Latin letters as their base letters, so
 * "Köln", "koln" and "KOLN" are one name, as are "Saint-Étienne" and
 * "saint etienne". A city is found by its name or any of its aliases
 * ("Bangalore" finds Bengaluru, "Cologne" finds Köln).
 */
#ifndef LUNAMATCH_GAZETTEER_H
#define LUNAMATCH_GAZETTEER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hard limits of the gazetteer file, enforced by lm_gazetteer_load. */
#define LM_GAZETTEER_FILE_MAX    (32u * 1024 * 1024) /* bytes in the whole file */
#define LM_GAZETTEER_LINE_MAX    8192                /* bytes in one line */
#define LM_GAZETTEER_CITIES_MAX  500000              /* cities in one file */
#define LM_GAZETTEER_ALIASES_MAX 64                  /* aliases of one city */
#define LM_GAZETTEER_NAME_MAX    200 /* bytes of a name, alias or region */
#define LM_GAZETTEER_VERSION_MAX 64  /* bytes of the version string */

/* Mean Earth radius (IUGG), the one lm_geo_distance_km uses. */
#define LM_EARTH_RADIUS_KM 6371.0088

typedef struct lm_gazetteer lm_gazetteer;

/* One city. Strings belong to the gazetteer and live until
 * lm_gazetteer_free. */
typedef struct lm_city {
	uint32_t geoname_id;
	const char *name;    /* as GeoNames writes it, UTF-8 */
	const char *country; /* ISO 3166-1 alpha-2 (or GeoNames' XK, Kosovo) */
	const char *admin1;  /* GeoNames first-level division code ("IL"); may be "" */
	const char *region; /* name of that division where known (US states); may be "" */
	double latitude;    /* degrees north, WGS 84 */
	double longitude;   /* degrees east, WGS 84 */
	uint32_t population;
} lm_city;

/*
 * Loads the gazetteer at path. On success returns LM_OK and stores it in
 * *out (free it with lm_gazetteer_free). On failure returns LM_ENOENT or
 * LM_EIO (cannot read), LM_E2BIG (a hard limit above), LM_EPARSE (column
 * count, a bad number, country code, coordinate or name, missing version
 * header), LM_ESCHEMA (duplicate GeoNames id) or LM_ENOMEM, and writes
 * "<path>:<line>: <reason>" into err.
 */
int lm_gazetteer_load(const char *path, lm_gazetteer **out, char *err, size_t errlen);

/* Frees the gazetteer; NULL is a no-op. */
void lm_gazetteer_free(lm_gazetteer *g);

/* The file's "# version:" value. Owned by g. */
const char *lm_gazetteer_version(const lm_gazetteer *g);

/* Number of cities, and the i-th in file order (NULL when i >= count). */
size_t lm_gazetteer_count(const lm_gazetteer *g);
const lm_city *lm_gazetteer_at(const lm_gazetteer *g, size_t i);

/*
 * The city called name (its name or an alias) in country (ISO alpha-2, any
 * case). Among several such cities, those whose admin1 code or region name
 * has the key of region (when region is not NULL or "") come first, then
 * the most populous. With country NULL or "", the city is found only when
 * every city of that name lies in one country (so "Chicago" is found, but
 * "Paris", in France and in Texas, is not). NULL when none is found or name
 * is NULL or empty.
 */
const lm_city *lm_gazetteer_lookup(
    const lm_gazetteer *g, const char *name, const char *country, const char *region);

/*
 * Great-circle distance in kilometres between two points given in degrees
 * (latitude north, longitude east), by the haversine formula on a sphere of
 * radius LM_EARTH_RADIUS_KM: within 0.5 % of the ellipsoidal distance, which
 * is plenty for "how far is the job". Symmetric, 0 for equal points, at most
 * half the circumference. Any thread.
 */
double lm_geo_distance_km(double lat1, double lon1, double lat2, double lon2);

#ifdef __cplusplus
}
#endif
#endif /* LUNAMATCH_GAZETTEER_H */
