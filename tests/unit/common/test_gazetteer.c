/*
 * test_gazetteer.c - the gazetteer: the real data/geo/cities.tsv (names,
 * aliases, accents, countries, regions), distances, loader errors on crafted
 * files.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/gazetteer.h"

static lm_gazetteer *G;

static int
setup(void **state)
{
	char err[512] = "";
	(void) state;
	if (lm_gazetteer_load(lmt_src("data/geo/cities.tsv"), &G, err, sizeof(err)) !=
	    LM_OK)
		fail_msg("loading data/geo/cities.tsv: %s", err);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lm_gazetteer_free(G);
	return 0;
}

/* The name of the city found, or "-". */
static const char *
find(const char *name, const char *country, const char *region)
{
	const lm_city *c = lm_gazetteer_lookup(G, name, country, region);
	return c ? c->name : "-";
}

static void
test_real_file(void **state)
{
	(void) state;
	assert_true(lm_gazetteer_count(G) >= 30000);
	assert_true(strlen(lm_gazetteer_version(G)) > 0);
	static const char *const cases[][4] = {
	    {"Chicago", "US", NULL, "Chicago"},
	    {"chicago", "us", "", "Chicago"},
	    {"Bangalore", "IN", NULL, "Bengaluru"},
	    {"Bengaluru", "IN", NULL, "Bengaluru"},
	    {"Cologne", "DE", NULL, "Köln"},
	    {"KÖLN", "DE", NULL, "Köln"},
	    {"koln", "DE", NULL, "Köln"},
	    {"München", "DE", NULL, "Munich"},
	    {"Zurich", "CH", NULL, "Zürich"},
	    {"Sao Paulo", "BR", NULL, "São Paulo"},
	    {"New York", "US", "NY", "New York City"},
	    {"Saigon", "VN", NULL, "Ho Chi Minh City"},
	    /* Latin Extended-B and Additional: the Romanian comma letters
	     * (the file writes the older cedilla ones) and Vietnamese. */
	    {"Constan\u021ba", "RO", NULL, "Constan\u0163a"},
	    {"Ia\u0219i", "RO", NULL, "Ia\u015fi"},
	    {"Timi\u0219oara", "RO", NULL, "Timi\u015foara"},
	    {"H\u00e0 N\u1ed9i", "VN", NULL, "Hanoi"},
	    {"Hu\u1ebf", "VN", NULL, "Hu\u1ebf"},
	    /* Written decomposed: the combining marks are dropped. */
	    {"Bucures\u0326ti", "RO", NULL, "Bucharest"},
	    {"Ko\u0308ln", "DE", NULL, "K\u00f6ln"},
	    {"Den Haag", "NL", NULL, "The Hague"},
	    {"Paris", "FR", NULL, "Paris"},
	    {"Chicago", NULL, NULL, "Chicago"},
	    {"Paris", NULL, NULL, "-"}, /* France and Texas */
	    {"Atlantis", "US", NULL, "-"},
	    {"Chicago", "FR", NULL, "-"},
	    {"", "US", NULL, "-"},
	    {" - ", "US", NULL, "-"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = find(cases[i][0], cases[i][1], cases[i][2]);
		if (strcmp(got, cases[i][3]) != 0)
			fail_msg("%s, %s, %s: %s, want %s", cases[i][0],
			    cases[i][1] ? cases[i][1] : "(null)",
			    cases[i][2] ? cases[i][2] : "(null)", got, cases[i][3]);
	}
	const lm_city *c = lm_gazetteer_lookup(G, "Chicago", "US", NULL);
	assert_int_equal(c->geoname_id, 4887398);
	assert_string_equal(c->admin1, "IL");
	assert_string_equal(c->region, "Illinois");
	assert_true(
	    fabs(c->latitude - 41.85) < 0.01 && fabs(c->longitude + 87.65) < 0.01);
	assert_true(c->population > 2000000);
	assert_null(lm_gazetteer_lookup(NULL, "Chicago", "US", NULL));
	assert_null(lm_gazetteer_lookup(G, NULL, "US", NULL));
}

/* Several cities of one name in one country: the region decides, else the
 * most populous. */
static void
test_region(void **state)
{
	(void) state;
	const lm_city *il = lm_gazetteer_lookup(G, "Springfield", "US", "IL");
	const lm_city *ma = lm_gazetteer_lookup(G, "Springfield", "US", "Massachusetts");
	const lm_city *any = lm_gazetteer_lookup(G, "Springfield", "US", NULL);
	const lm_city *other = lm_gazetteer_lookup(G, "Springfield", "US", "Texas");

	assert_non_null(il);
	assert_string_equal(il->admin1, "IL");
	assert_non_null(ma);
	assert_string_equal(ma->admin1, "MA");
	assert_non_null(any);
	assert_string_equal(any->admin1, "MO"); /* the most populous */
	assert_ptr_equal(other, any);
	assert_string_equal(
	    lm_gazetteer_lookup(G, "Portland", "US", "Maine")->admin1, "ME");
	assert_string_equal(lm_gazetteer_lookup(G, "Portland", "US", NULL)->admin1, "OR");
	/* Without a country, the region alone does not pick among countries. */
	assert_null(lm_gazetteer_lookup(G, "Evanston", NULL, "IL"));
	assert_string_equal(lm_gazetteer_lookup(G, "Evanston", "US", NULL)->admin1, "IL");
}

static void
test_distance(void **state)
{
	(void) state;
	const lm_city *chi = lm_gazetteer_lookup(G, "Chicago", "US", NULL);
	const lm_city *eva = lm_gazetteer_lookup(G, "Evanston", "US", "IL");
	const lm_city *mia = lm_gazetteer_lookup(G, "Miami", "US", "FL");
	const lm_city *blr = lm_gazetteer_lookup(G, "Bengaluru", "IN", NULL);
	double d1 = lm_geo_distance_km(
	    chi->latitude, chi->longitude, eva->latitude, eva->longitude);
	double d2 = lm_geo_distance_km(
	    chi->latitude, chi->longitude, mia->latitude, mia->longitude);
	double d3 = lm_geo_distance_km(
	    chi->latitude, chi->longitude, blr->latitude, blr->longitude);

	/* Evanston is next door, Miami is not: the reason for coordinates. */
	assert_true(d1 > 15 && d1 < 25);
	assert_true(d2 > 1850 && d2 < 1950);
	assert_true(d3 > 13600 && d3 < 13900);
	assert_true(lm_geo_distance_km(mia->latitude, mia->longitude, chi->latitude,
	                chi->longitude) == d2);
	assert_true(lm_geo_distance_km(10, 20, 10, 20) == 0);
	/* A quarter and a half of a great circle. */
	assert_true(
	    fabs(lm_geo_distance_km(0, 0, 0, 90) - M_PI / 2 * LM_EARTH_RADIUS_KM) < 1e-6);
	assert_true(
	    fabs(lm_geo_distance_km(90, 0, -90, 0) - M_PI * LM_EARTH_RADIUS_KM) < 1e-6);
	assert_true(fabs(lm_geo_distance_km(0, 179.5, 0, -179.5) -
	                 M_PI / 180 * LM_EARTH_RADIUS_KM) < 1e-6);
}

static void
test_load_errors(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("gazetteer");
	static const char ok_line[] =
	    "1\tAlpha\tUS\tIL\tIllinois\t41.5\t-87.5\t100\tAlfa|Alpha Town\n";
	static const struct {
		const char *body;
		int rv;
		const char *msg;
	} cases[] = {
	    {"1\tAlpha\tUS\tIL\tIllinois\t41.5\t-87.5\t100\n", LM_EPARSE,
	        ":3: expected 9"},
	    {"0\tAlpha\tUS\t\t\t1\t1\t1\t\n", LM_EPARSE, "geoname id"},
	    {"x\tAlpha\tUS\t\t\t1\t1\t1\t\n", LM_EPARSE, "geoname id"},
	    {"1\t\tUS\t\t\t1\t1\t1\t\n", LM_EPARSE, "empty name"},
	    {"1\tAlpha\tUSA\t\t\t1\t1\t1\t\n", LM_EPARSE, "country"},
	    {"1\tAlpha\tUS\t\t\t91\t1\t1\t\n", LM_EPARSE, "latitude"},
	    {"1\tAlpha\tUS\t\t\t1\t-181\t1\t\n", LM_EPARSE, "longitude"},
	    {"1\tAlpha\tUS\t\t\t1\tnan\t1\t\n", LM_EPARSE, "longitude"},
	    {"1\tAlpha\tUS\t\t\t1\t1\t-5\t\n", LM_EPARSE, "population"},
	    {"1\tAlpha\tUS\t\t\t1\t1\t1\t--\n", LM_EPARSE, "no letters"},
	    {"1\tAlpha\tUS\t\t\t1\t1\t1\t\n1\tBeta\tUS\t\t\t1\t1\t1\t\n", LM_ESCHEMA,
	        "geoname id 1 appears twice"},
	    {"", LM_EPARSE, "no cities"},
	    /* Latin-1, not UTF-8: its names would never match. */
	    {"1\tK\xf6ln\tDE\t\t\t1\t1\t1\t\n", LM_EPARSE, "column 2 is not valid UTF-8"},
	    {"1\tKoeln\tDE\t\t\t1\t1\t1\tK\xf6ln\n", LM_EPARSE,
	        "column 9 is not valid UTF-8"},
	};
	char text[512], err[256];
	lm_gazetteer *g = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = snprintf(
		    text, sizeof(text), "# format: 1\n# version: t\n%s", cases[i].body);
		const char *path = lmt_write_file(dir, "bad.tsv", text, (size_t) n);
		int rv = lm_gazetteer_load(path, &g, err, sizeof(err));
		if (rv != cases[i].rv || strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: %s (%s), want %s with \"%s\"", i,
			    lm_strerror(rv), err, lm_strerror(cases[i].rv), cases[i].msg);
		assert_null(g);
	}
	int n = snprintf(text, sizeof(text), "# format: 1\n# version: t\n%s", ok_line);
	const char *path = lmt_write_file(dir, "ok.tsv", text, (size_t) n);
	assert_int_equal(lm_gazetteer_load(path, &g, err, sizeof(err)), LM_OK);
	assert_int_equal(lm_gazetteer_count(g), 1);
	assert_string_equal(lm_gazetteer_at(g, 0)->name, "Alpha");
	assert_null(lm_gazetteer_at(g, 1));
	assert_string_equal(
	    lm_gazetteer_lookup(g, "alpha town", "us", NULL)->name, "Alpha");
	assert_string_equal(lm_gazetteer_lookup(g, "ALFA", NULL, "il")->name, "Alpha");
	lm_gazetteer_free(g);
	lm_gazetteer_free(NULL);
	assert_int_equal(
	    lm_gazetteer_load(lmt_src("no/such/cities.tsv"), &g, err, sizeof(err)),
	    LM_ENOENT);
	lmt_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_file),
	    cmocka_unit_test(test_region),
	    cmocka_unit_test(test_distance),
	    cmocka_unit_test(test_load_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
