/*
 * filters.c - the filters of one request (JobFilters, CandidateFilters):
 * validated once per request, then applied to each pair as FILTER vetoes.
 * See score.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lunamatch/error.h"
#include "lunamatch/salary.h"
#include "score_int.h"

struct lm_filters {
	const Lunamatch__V1__JobFilters *jobs; /* one of the two is set */
	const Lunamatch__V1__CandidateFilters *candidates;
	const char **exclude; /* sorted copy of the exclude_ids pointers */
	size_t n_exclude;
	/* The filter's countries that pack (lm_country_pack); a country that
	 * does not pack equals no packed country of a record. */
	uint64_t *country;
	size_t n_country;
};

static int
filters_new(char **ids, size_t n, lm_filters **out)
{
	lm_filters *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return LM_ENOMEM;
	if (n > 0) {
		if ((f->exclude = calloc(n, sizeof(*f->exclude))) == NULL) {
			free(f);
			return LM_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			f->exclude[i] = ids[i] ? ids[i] : "";
		qsort(f->exclude, n, sizeof(*f->exclude), lm_cmp_str);
		f->n_exclude = n;
	}
	*out = f;
	return LM_OK;
}

/* Checks a list of a filter: at most LM_FILTER_LIST_MAX entries and, for a
 * list of strings (v not NULL), each at most LM_FILTER_ENTRY_MAX bytes,
 * adding them to *text, which must stay within LM_FILTER_TEXT_MAX: the
 * filters go into the decision log with the answer, whose records have a
 * size limit, and a request the log would refuse after the query ran must
 * be refused before it, as the caller's error. */
static int
check_list(
    const char *what, char *const *v, size_t n, size_t *text, char *err, size_t errlen)
{
	if (n > LM_FILTER_LIST_MAX) {
		snprintf(err, errlen, "filters.%s: %zu entries, at most %d allowed", what,
		    n, LM_FILTER_LIST_MAX);
		return LM_EINVAL;
	}
	for (size_t i = 0; v != NULL && i < n; i++) {
		size_t len = v[i] != NULL ? strlen(v[i]) : 0;
		if (len > LM_FILTER_ENTRY_MAX) {
			snprintf(err, errlen,
			    "filters.%s[%zu]: %zu bytes, at most %d allowed", what, i,
			    len, LM_FILTER_ENTRY_MAX);
			return LM_EINVAL;
		}
		if ((*text += len) > LM_FILTER_TEXT_MAX) {
			snprintf(err, errlen,
			    "filters: more than %d bytes of text in all lists together",
			    LM_FILTER_TEXT_MAX);
			return LM_EINVAL;
		}
	}
	return LM_OK;
}

/* Checks the n employment types v of a filter: each must be a value of
 * the EmploymentType enum other than UNSPECIFIED. A value outside the enum
 * is no record's (ingest refuses one) and UNSPECIFIED states no type, so a
 * filter naming either is the caller's mistake, refused rather than
 * answered with nothing. */
static int
check_employment_types(
    const Lunamatch__V1__EmploymentType *v, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int t = (int) v[i];
		if (t == LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_UNSPECIFIED) {
			snprintf(err, errlen,
			    "filters.employment_types[%zu]: EMPLOYMENT_TYPE_UNSPECIFIED "
			    "is not an employment type",
			    i);
			return LM_EINVAL;
		}
		if (protobuf_c_enum_descriptor_get_value(
		        &lunamatch__v1__employment_type__descriptor, t) == NULL) {
			snprintf(err, errlen,
			    "filters.employment_types[%zu]: unknown employment type %d",
			    i, t);
			return LM_EINVAL;
		}
	}
	return LM_OK;
}

/* Packs the n countries of a filter into (*out)->country. Returns LM_OK
 * or LM_ENOMEM (then *out is freed and NULL). */
static int
pack_countries(char *const *countries, size_t n, lm_filters **out)
{
	if (n > 0 && ((*out)->country = calloc(n, sizeof(uint64_t))) == NULL) {
		lm_filters_free(*out);
		*out = NULL;
		return LM_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const char *cc = countries[i];
		if (cc != NULL && cc[0] != '\0' &&
		    lm_country_pack(cc, &(*out)->country[(*out)->n_country]))
			(*out)->n_country++;
	}
	return LM_OK;
}

int
lm_filters_for_jobs(
    const Lunamatch__V1__JobFilters *f, lm_filters **out, char *err, size_t errlen)
{
	size_t text = 0;
	int rc;

	*out = NULL;
	if (f == NULL)
		return LM_OK;
	if ((rc = check_list("countries", f->countries, f->n_countries, &text, err,
	         errlen)) != LM_OK ||
	    (rc = check_list("employment_types", NULL, f->n_employment_types, &text, err,
	         errlen)) != LM_OK ||
	    (rc = check_list("categories", f->categories, f->n_categories, &text, err,
	         errlen)) != LM_OK ||
	    (rc = check_list("exclude_ids", f->exclude_ids, f->n_exclude_ids, &text, err,
	         errlen)) != LM_OK ||
	    (rc = check_employment_types(
	         f->employment_types, f->n_employment_types, err, errlen)) != LM_OK)
		return rc;
	if (!isfinite(f->min_annual_salary) || f->min_annual_salary < 0) {
		snprintf(err, errlen, "filters.min_annual_salary: must be a number >= 0");
		return LM_EINVAL;
	}
	/* Ingest refuses a salary that comes to more than LM_SALARY_ANNUAL_MAX a
	 * year, so no posting pays more: a higher minimum is a unit mistake. */
	if (f->min_annual_salary > LM_SALARY_ANNUAL_MAX) {
		snprintf(err, errlen,
		    "filters.min_annual_salary: %.15g is above %.0f, the most an "
		    "annual salary can be",
		    f->min_annual_salary, LM_SALARY_ANNUAL_MAX);
		return LM_EINVAL;
	}
	if ((rc = filters_new(f->exclude_ids, f->n_exclude_ids, out)) != LM_OK)
		return rc;
	(*out)->jobs = f;
	return pack_countries(f->countries, f->n_countries, out);
}

int
lm_filters_for_candidates(
    const Lunamatch__V1__CandidateFilters *f, lm_filters **out, char *err, size_t errlen)
{
	size_t text = 0;
	int rc;

	*out = NULL;
	if (f == NULL)
		return LM_OK;
	if ((rc = check_list("countries", f->countries, f->n_countries, &text, err,
	         errlen)) != LM_OK ||
	    (rc = check_list("employment_types", NULL, f->n_employment_types, &text, err,
	         errlen)) != LM_OK ||
	    (rc = check_list("exclude_ids", f->exclude_ids, f->n_exclude_ids, &text, err,
	         errlen)) != LM_OK ||
	    (rc = check_employment_types(
	         f->employment_types, f->n_employment_types, err, errlen)) != LM_OK)
		return rc;
	if (!isfinite(f->min_years_experience) || f->min_years_experience < 0) {
		snprintf(
		    err, errlen, "filters.min_years_experience: must be a number >= 0");
		return LM_EINVAL;
	}
	if ((rc = filters_new(f->exclude_ids, f->n_exclude_ids, out)) != LM_OK)
		return rc;
	(*out)->candidates = f;
	return pack_countries(f->countries, f->n_countries, out);
}

void
lm_filters_free(lm_filters *f)
{
	if (f == NULL)
		return;
	free(f->exclude);
	free(f->country);
	free(f);
}

bool
lm_str_in(const char *s, char *const *list, size_t n)
{
	if (s == NULL || s[0] == '\0')
		return false;
	for (size_t i = 0; i < n; i++)
		if (list[i] != NULL && strcasecmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool
locs_in(Lunamatch__V1__Location *const *locs, size_t n, char *const *countries, size_t nc)
{
	for (size_t i = 0; i < n; i++)
		if (locs[i] != NULL && lm_str_in(locs[i]->country, countries, nc))
			return true;
	return false;
}

/* Whether a location of the posting p is in one of the countries of the
 * job filters f. */
static bool
posting_in(const lm_filters *f, const lm_posting_prep *p)
{
	const Lunamatch__V1__JobFilters *jf = f->jobs;

	if (!p->locs_packed)
		return locs_in(p->rec->locations, p->rec->n_locations, jf->countries,
		    jf->n_countries);
	for (size_t i = 0; i < p->n_locs; i++)
		for (size_t k = 0; k < f->n_country; k++)
			if (p->locs[i].country == f->country[k])
				return true;
	return false;
}

static bool
excluded(const lm_filters *f, const char *id)
{
	return f->n_exclude > 0 && id != NULL &&
	       bsearch(&id, f->exclude, f->n_exclude, sizeof(*f->exclude), lm_cmp_str) !=
	           NULL;
}

/* Whether a location of the profile c is in one of the countries of the
 * candidate filters f. */
static bool
profile_in(const lm_filters *f, const lm_profile_prep *c)
{
	const Lunamatch__V1__CandidateFilters *cf = f->candidates;

	if (!c->locs_packed)
		return locs_in(c->rec->locations, c->rec->n_locations, cf->countries,
		    cf->n_countries);
	for (size_t i = 0; i < c->n_locs; i++)
		for (size_t k = 0; k < f->n_country; k++)
			if (c->locs[i].country == f->country[k])
				return true;
	return false;
}

/* Whether the profile c accepts one of the employment types of the
 * candidate filters f (it lists some). */
static bool
profile_accepts(const lm_filters *f, const lm_profile_prep *c)
{
	const Lunamatch__V1__CandidateFilters *cf = f->candidates;
	const CandidateProfile *r = c->rec;

	for (size_t i = 0; i < cf->n_employment_types; i++) {
		int t = (int) cf->employment_types[i];
		if (c->key.flags & KEY_EMP_EXACT) { /* emp_mask holds them all */
			if (t >= 0 && t < 64 && ((c->key.emp_mask >> t) & 1))
				return true;
			continue;
		}
		for (size_t j = 0; j < r->n_desired_employment_types; j++)
			if (cf->employment_types[i] == r->desired_employment_types[j])
				return true;
	}
	return false;
}

/* The request filters. Returns false when one fails in fast mode. */
bool
lm_check_filters(const lm_filters *f, const lm_profile_prep *c, const lm_posting_prep *p,
    struct vsink *vs)
{
	if (f == NULL)
		return true;
	if (f->jobs != NULL) {
		const Lunamatch__V1__JobFilters *jf = f->jobs;
		if (excluded(f, p->id) &&
		    !lm_veto_row(vs, LM_VETO_FILTER, "filter: job excluded"))
			return false;
		if (jf->remote_only &&
		    p->key.remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
		    !lm_veto_row(vs, LM_VETO_FILTER,
		        "filter: remote jobs only; this one is %s",
		        lm_remote_name(p->key.remote)))
			return false;
		if (jf->n_countries > 0 && !posting_in(f, p) &&
		    !lm_veto_row(vs, LM_VETO_FILTER,
		        "filter: no job location in the requested countries"))
			return false;
		if (jf->min_annual_salary > 0) {
			int64_t top = p->key.salary;
			if ((double) top < jf->min_annual_salary) {
				if (vs == NULL)
					return false;
				struct lm_num_pair st =
				    lm_num_pair((double) top, jf->min_annual_salary, 0);
				lm_veto_row(vs, LM_VETO_FILTER,
				    top > 0 ? "filter: pays at most %s a year, below %s"
				            : "filter: salary unknown (%s), minimum %s "
				              "requested",
				    st.a, st.b);
			}
		}
		if (jf->n_employment_types > 0) {
			bool ok = false;
			for (size_t i = 0; i < jf->n_employment_types; i++)
				ok = ok || (p->key.employment_type != 0 &&
				               (int) jf->employment_types[i] ==
				                   (int) p->key.employment_type);
			if (!ok && !lm_veto_row(vs, LM_VETO_FILTER,
			               "filter: employment type %s not requested",
			               lm_employment_name(p->key.employment_type)))
				return false;
		}
		if (jf->n_categories > 0 &&
		    !lm_str_in(p->category, jf->categories, jf->n_categories) &&
		    !lm_veto_row(vs, LM_VETO_FILTER, "filter: category not requested"))
			return false;
		if (jf->posted_after > 0 && p->key.posted_at < jf->posted_after &&
		    !lm_veto_row(
		        vs, LM_VETO_FILTER, "filter: posted before the requested date"))
			return false;
	}
	if (f->candidates != NULL) {
		const Lunamatch__V1__CandidateFilters *cf = f->candidates;
		if (excluded(f, c->id) &&
		    !lm_veto_row(vs, LM_VETO_FILTER, "filter: candidate excluded"))
			return false;
		if (cf->n_countries > 0 && !profile_in(f, c) &&
		    !lm_veto_row(vs, LM_VETO_FILTER,
		        "filter: no preferred location in the requested countries"))
			return false;
		if (cf->min_years_experience > 0 &&
		    !((double) c->years_raw >= (double) cf->min_years_experience)) {
			if (vs == NULL)
				return false;
			struct lm_num_pair yt = lm_num_pair(
			    (double) c->years_raw, (double) cf->min_years_experience, 1);
			lm_veto_row(vs, LM_VETO_FILTER,
			    "filter: %s years of experience, %s requested", yt.a, yt.b);
		}
		if (cf->n_employment_types > 0 && (c->key.flags & KEY_EMP_ANY) &&
		    !profile_accepts(f, c) &&
		    !lm_veto_row(vs, LM_VETO_FILTER,
		        "filter: candidate accepts none of the requested employment "
		        "types"))
			return false;
		if (cf->remote_only &&
		    c->key.remote != LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE &&
		    !lm_veto_row(vs, LM_VETO_FILTER,
		        "filter: candidates preferring remote work only"))
			return false;
	}
	return true;
}
