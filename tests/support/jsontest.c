/*
 * jsontest.c - reading the JSON reports of the CLI in tests (jsontest.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jsontest.h"

json_t *
lmt_json_named(json_t *o, const char *array, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(o, array), i, v)
	{
		const char *n = json_string_value(json_object_get(v, "name"));
		if (n != NULL && strcmp(n, name) == 0)
			return v;
	}
	fail_msg("no %s named %s", array, name);
	return NULL;
}
