/*
 * source.c - what computed the answers a command reports on, over all of
 * them (see source.h).
 */
#include "source.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lunamatch/error.h"

int
lm_cli_source_add(lm_cli_source *s, const char *model, uint64_t seq, int64_t as_of)
{
	bool seen = false;

	if (model == NULL || model[0] == '\0') {
		s->answers++;
		return LM_OK;
	}
	for (size_t i = 0; i < s->nmodels && !seen; i++)
		seen = strcmp(s->models[i], model) == 0;
	if (!seen) {
		char **v = realloc(s->models, (s->nmodels + 1) * sizeof(*v));
		if (v == NULL)
			return LM_ENOMEM;
		s->models = v;
		if ((v[s->nmodels] = strdup(model)) == NULL)
			return LM_ENOMEM;
		s->nmodels++;
	}
	s->answers++;
	if (s->recorded++ == 0) {
		s->seq_min = s->seq_max = seq;
		s->as_of_min = s->as_of_max = as_of;
		return LM_OK;
	}
	s->seq_min = seq < s->seq_min ? seq : s->seq_min;
	s->seq_max = seq > s->seq_max ? seq : s->seq_max;
	s->as_of_min = as_of < s->as_of_min ? as_of : s->as_of_min;
	s->as_of_max = as_of > s->as_of_max ? as_of : s->as_of_max;
	return LM_OK;
}

void
lm_cli_source_clear(lm_cli_source *s)
{
	for (size_t i = 0; i < s->nmodels; i++)
		free(s->models[i]);
	free(s->models);
	memset(s, 0, sizeof(*s));
}

void
lm_cli_source_text(const lm_cli_source *s, const char *what, char *buf, size_t len)
{
	char m[LM_CLI_CELL_MAX], t[64] = "", seq[64];
	struct tm tm;
	time_t at = (time_t) s->as_of_min;

	if (s->recorded == 0) {
		snprintf(buf, len, "model, index seq and as of not recorded");
		return;
	}
	if (s->nmodels > 1)
		snprintf(m, sizeof(m), "%zu model versions (MIXED)", s->nmodels);
	else
		lm_cli_printable(m, sizeof(m), s->models[0], strlen(s->models[0]));
	if (s->seq_min == s->seq_max)
		snprintf(seq, sizeof(seq), "%" PRIu64, s->seq_min);
	else
		snprintf(
		    seq, sizeof(seq), "%" PRIu64 "..%" PRIu64, s->seq_min, s->seq_max);
	if (gmtime_r(&at, &tm) != NULL)
		strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (s->as_of_min == s->as_of_max)
		snprintf(buf, len, "model %s, index seq %s, as of %" PRId64 " (%s)%s%s",
		    m, seq, s->as_of_min, t,
		    s->recorded < s->answers ? "; not recorded for some " : "",
		    s->recorded < s->answers ? what : "");
	else
		snprintf(buf, len,
		    "model %s, index seq %s, as of %" PRId64 "..%" PRId64
		    " (from %s)%s%s",
		    m, seq, s->as_of_min, s->as_of_max, t,
		    s->recorded < s->answers ? "; not recorded for some " : "",
		    s->recorded < s->answers ? what : "");
}

int
lm_cli_source_json(const lm_cli_source *s, json_t *o)
{
	json_t *models = json_array();
	bool known = s->recorded > 0, one = known && s->recorded == s->answers;

	for (size_t i = 0; i < s->nmodels && models != NULL; i++)
		if (json_array_append_new(models,
		        lm_cli_json_string(s->models[i], strlen(s->models[i]))) != 0) {
			json_decref(models);
			models = NULL;
		}
	return models == NULL ||
	               json_object_set_new(o, "model_version",
	                   one && s->nmodels == 1
	                       ? lm_cli_json_string(s->models[0], strlen(s->models[0]))
	                       : json_null()) != 0 ||
	               json_object_set_new(o, "model_versions", models) != 0 ||
	               json_object_set_new(
	                   o, "mixed_models", json_boolean(s->nmodels > 1)) != 0 ||
	               json_object_set_new(o, "as_of",
	                   one && s->as_of_min == s->as_of_max
	                       ? json_integer(s->as_of_min)
	                       : json_null()) != 0 ||
	               json_object_set_new(o, "as_of_min",
	                   known ? json_integer(s->as_of_min) : json_null()) != 0 ||
	               json_object_set_new(o, "as_of_max",
	                   known ? json_integer(s->as_of_max) : json_null()) != 0 ||
	               json_object_set_new(o, "index_seq_min",
	                   known ? json_integer((json_int_t) s->seq_min) : json_null()) !=
	                   0 ||
	               json_object_set_new(o, "index_seq_max",
	                   known ? json_integer((json_int_t) s->seq_max) : json_null()) !=
	                   0
	           ? -1
	           : 0;
}
