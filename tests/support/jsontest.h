/*
 * jsontest.h - reading the JSON reports of the CLI in tests.
 */
#ifndef LUNAMATCH_TEST_JSONTEST_H
#define LUNAMATCH_TEST_JSONTEST_H

#include <jansson.h>

/* The element of the array o[array] whose "name" is name (borrowed from o);
 * fails the test when there is none. */
json_t *lmt_json_named(json_t *o, const char *array, const char *name);

#endif
