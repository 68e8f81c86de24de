/*
 * bench_util.c - shared benchmark helpers; see bench_util.h.
 */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "lunamatch/clock.h"
#include "lunamatch/textfile.h"

#ifndef LM_BENCH_BUILD_TYPE
#define LM_BENCH_BUILD_TYPE "unknown"
#endif

#define CPUINFO_LINE_MAX 1024

/* ---- random numbers ------------------------------------------------------ */

void
bench_rng_seed(bench_rng *r, uint64_t seed)
{
	/* splitmix64 of the seed: any seed, 0 included, gives a good state */
	uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	r->s = (z ^ (z >> 31)) | 1;
}

uint64_t
bench_rng_next(bench_rng *r)
{
	uint64_t x = r->s; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 2685821657736338717ULL;
}

uint32_t
bench_rng_below(bench_rng *r, uint32_t n)
{
	return n == 0 ? 0 : (uint32_t) (bench_rng_next(r) % n);
}

double
bench_rng_unit(bench_rng *r)
{
	return (double) (bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static bool
chance(bench_rng *r, unsigned pct)
{
	return bench_rng_below(r, 100) < pct;
}

/* ---- synthetic records --------------------------------------------------- */

struct bench_gen {
	bench_rng rng;
	uint32_t embedding_dim;
	double cdf[BENCH_SKILLS]; /* cumulative Zipf probabilities by rank */
	size_t nskills;           /* vocabulary: BENCH_SKILLS or the taxonomy's size */
	/* With a taxonomy: the skill of each popularity rank, a seeded
	 * permutation of the taxonomy's skills. */
	const lm_skill *tax[BENCH_SKILLS];
};

static const char *const countries[BENCH_COUNTRIES] = {
    "US", "DE", "GB", "FR", "NL", "ES", "PL", "SE", "CA", "IN"};
/* Relative weight of each country: a few large markets, a long tail. */
static const unsigned country_weight[BENCH_COUNTRIES] = {30, 14, 12, 9, 7, 6, 6, 5, 6, 5};
static const char *const cities[BENCH_COUNTRIES][4] = {
    {"New York", "San Francisco", "Austin", "Chicago"},
    {"Berlin", "Munich", "Hamburg", "Cologne"},
    {"London", "Manchester", "Edinburgh", "Bristol"},
    {"Paris", "Lyon", "Toulouse", "Lille"},
    {"Amsterdam", "Rotterdam", "Utrecht", "Eindhoven"},
    {"Madrid", "Barcelona", "Valencia", "Seville"},
    {"Warsaw", "Krakow", "Wroclaw", "Gdansk"},
    {"Stockholm", "Gothenburg", "Malmo", "Uppsala"},
    {"Toronto", "Vancouver", "Montreal", "Ottawa"},
    {"Bengaluru", "Pune", "Hyderabad", "Chennai"},
};
static const char *const titles[] = {"Senior Data Engineer", "Data Engineer",
    "Machine Learning Engineer", "Backend Engineer", "Frontend Developer",
    "Full Stack Developer", "Site Reliability Engineer", "DevOps Engineer",
    "Data Scientist", "Data Analyst", "Product Manager", "Engineering Manager",
    "Mobile Developer", "Security Engineer", "Platform Engineer", "QA Engineer",
    "Cloud Architect", "Embedded Software Engineer", "Solutions Architect",
    "Technical Lead"};
#define N_TITLES (sizeof(titles) / sizeof(titles[0]))
static const char *const categories[] = {"Data", "Machine Learning", "Web",
    "Infrastructure", "Mobile", "Security", "Product", "Embedded"};
#define N_CATEGORIES (sizeof(categories) / sizeof(categories[0]))
static const char *const industries[] = {"Financial Services", "Retail", "Health",
    "Logistics", "Media", "Software", "Telecommunications", "Energy"};
#define N_INDUSTRIES (sizeof(industries) / sizeof(industries[0]))

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (p == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		abort();
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		abort();
	}
	return d;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
xprintf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return xstrdup(buf);
}

/* Zipf popularity over the first n ranks of the vocabulary. */
static void
set_vocabulary(bench_gen *g, size_t n)
{
	double sum = 0;

	g->nskills = n;
	for (size_t i = 0; i < g->nskills; i++) {
		sum += 1.0 / pow((double) (i + 1), BENCH_ZIPF_S);
		g->cdf[i] = sum;
	}
	for (size_t i = 0; i < g->nskills; i++)
		g->cdf[i] /= sum;
}

bench_gen *
bench_gen_new(const bench_gen_opts *o)
{
	bench_gen *g = xcalloc(1, sizeof(*g));

	bench_rng_seed(&g->rng, o->seed);
	g->embedding_dim = o->embedding_dim;
	set_vocabulary(g, BENCH_SKILLS);
	return g;
}

void
bench_gen_use_taxonomy(bench_gen *g, const lm_taxonomy *t)
{
	/* A copy of the generator, so that the records' stream stays what it
	 * is without a taxonomy. */
	size_t n = lm_taxonomy_count(t);
	size_t *perm;
	bench_rng pr = g->rng;

	if (n == 0)
		return;
	perm = xcalloc(n, sizeof(*perm));

	for (size_t i = 0; i < n; i++)
		perm[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = bench_rng_below(&pr, (uint32_t) i);
		size_t tmp = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = tmp;
	}
	for (size_t i = 0; i < n && i < BENCH_SKILLS; i++)
		g->tax[i] = lm_taxonomy_at(t, perm[i]);
	free(perm);
	set_vocabulary(g, n < BENCH_SKILLS ? n : BENCH_SKILLS);
}

void
bench_gen_reseed(bench_gen *g, uint64_t seed)
{
	bench_rng_seed(&g->rng, seed);
}

void
bench_gen_free(bench_gen *g)
{
	free(g);
}

/* A skill rank drawn from the Zipf law: rank 0 is the most popular. */
static uint32_t
zipf_rank(bench_gen *g)
{
	double u = bench_rng_unit(&g->rng);
	size_t lo = 0, hi = g->nskills - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (g->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (uint32_t) lo;
}

/* Fills out[0..n) with distinct skill ranks; returns how many it found (n,
 * unless the draw keeps hitting the same popular skills). */
static size_t
draw_skills(bench_gen *g, uint32_t *out, size_t n)
{
	size_t k = 0;

	for (unsigned tries = 0; k < n && tries < 1000; tries++) {
		uint32_t s = zipf_rank(g);
		bool dup = false;
		for (size_t i = 0; i < k && !dup; i++)
			dup = out[i] == s;
		if (!dup)
			out[k++] = s;
	}
	return k;
}

/* The canonical id and the display name of the skill of a rank. */
static char *
skill_id(const bench_gen *g, uint32_t rank)
{
	return g->tax[0] != NULL ? xstrdup(g->tax[rank]->id)
	                         : xprintf("sk%03u", rank + 1);
}

static char *
skill_name(const bench_gen *g, uint32_t rank)
{
	return g->tax[0] != NULL ? xstrdup(g->tax[rank]->name)
	                         : xprintf("Skill %u", rank + 1);
}

static uint32_t
pick_country(bench_rng *r)
{
	unsigned total = 0, x;

	for (size_t i = 0; i < BENCH_COUNTRIES; i++)
		total += country_weight[i];
	x = bench_rng_below(r, total);
	for (uint32_t i = 0; i < BENCH_COUNTRIES; i++) {
		if (x < country_weight[i])
			return i;
		x -= country_weight[i];
	}
	return 0;
}

static Lunamatch__V1__Location **
gen_locations(bench_rng *r, size_t *n)
{
	Lunamatch__V1__Location **v;

	*n = chance(r, 75) ? 1 : 2;
	v = xcalloc(*n, sizeof(*v));
	for (size_t i = 0; i < *n; i++) {
		uint32_t c = pick_country(r);
		v[i] = xcalloc(1, sizeof(*v[i]));
		lunamatch__v1__location__init(v[i]);
		v[i]->city = xstrdup(cities[c][bench_rng_below(r, 4)]);
		v[i]->country = xstrdup(countries[c]);
	}
	return v;
}

static float *
gen_embedding(bench_gen *g, size_t *n)
{
	float *v;

	*n = g->embedding_dim;
	if (*n == 0)
		return NULL;
	v = xcalloc(*n, sizeof(float));
	for (size_t i = 0; i < *n; i++)
		v[i] = (float) (bench_rng_unit(&g->rng) * 2.0 - 1.0);
	return v;
}

static Lunamatch__V1__ExperienceLevel
gen_level(bench_rng *r)
{
	/* ENTRY..LEAD, most in the middle */
	static const Lunamatch__V1__ExperienceLevel lv[] = {
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_ENTRY,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_ASSOCIATE,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_MID,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_MID,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_SENIOR,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_LEAD,
	    LUNAMATCH__V1__EXPERIENCE_LEVEL__EXPERIENCE_LEVEL_DIRECTOR};
	return lv[bench_rng_below(r, sizeof(lv) / sizeof(lv[0]))];
}

static Lunamatch__V1__RemotePolicy
gen_remote(bench_rng *r)
{
	uint32_t x = bench_rng_below(r, 100);
	return x < 40   ? LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_ONSITE
	       : x < 75 ? LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_HYBRID
	                : LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
}

static Lunamatch__V1__Salary *
gen_salary(bench_rng *r, Lunamatch__V1__ExperienceLevel lv, bool range)
{
	Lunamatch__V1__Salary *s = xcalloc(1, sizeof(*s));
	int64_t base = 35000 + (int64_t) lv * 15000 + (int64_t) bench_rng_below(r, 40000);

	lunamatch__v1__salary__init(s);
	s->currency = xstrdup("USD");
	s->period = LUNAMATCH__V1__SALARY_PERIOD__SALARY_PERIOD_YEAR;
	s->rates_version = xstrdup("bench");
	s->annual_min = base;
	s->annual_max =
	    range ? base + base * (10 + (int64_t) bench_rng_below(r, 40)) / 100 : 0;
	s->min = (double) s->annual_min;
	s->max = (double) s->annual_max;
	return s;
}

Lunamatch__V1__JobPosting *
bench_gen_posting(bench_gen *g, const char *id)
{
	bench_rng *r = &g->rng;
	Lunamatch__V1__JobPosting *p = xcalloc(1, sizeof(*p));
	uint32_t ranks[20];
	size_t n;

	lunamatch__v1__job_posting__init(p);
	p->id = xstrdup(id);
	p->version = 1;
	p->status = chance(r, 5) ? LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_CLOSED
	                         : LUNAMATCH__V1__POSTING_STATUS__POSTING_STATUS_OPEN;
	p->title = xstrdup(titles[bench_rng_below(r, N_TITLES)]);
	p->company = xprintf("Company %u", bench_rng_below(r, 2000));
	p->description = xstrdup("Build and run the systems behind our products with a "
	                         "small team that owns its services end to end.");
	p->category = xstrdup(categories[bench_rng_below(r, N_CATEGORIES)]);
	p->industry = xstrdup(industries[bench_rng_below(r, N_INDUSTRIES)]);
	p->job_function = xstrdup("Engineering");
	{
		uint32_t x = bench_rng_below(r, 100);
		p->employment_type =
		    x < 80   ? LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME
		    : x < 90 ? LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT
		    : x < 96 ? LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_PART_TIME
		             : LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_TEMPORARY;
	}
	p->experience_level = gen_level(r);
	p->min_years_experience =
	    chance(r, 30)
	        ? 0
	        : (float) ((p->experience_level - 2) * 2 + bench_rng_below(r, 3));
	p->education = (Lunamatch__V1__Education) bench_rng_below(r, 6);
	p->locations = gen_locations(r, &p->n_locations);
	p->remote = gen_remote(r);
	if (chance(r, 85))
		p->salary = gen_salary(r, p->experience_level, chance(r, 90));

	n = draw_skills(g, ranks, 5 + bench_rng_below(r, 16));
	p->n_skills = n;
	p->skills = xcalloc(n, sizeof(*p->skills));
	for (size_t i = 0; i < n; i++) {
		static const float weights[] = {1, 1, 1, 2, 3};
		Lunamatch__V1__PostingSkill *s = xcalloc(1, sizeof(*s));
		lunamatch__v1__posting_skill__init(s);
		s->skill_id = skill_id(g, ranks[i]);
		s->name = skill_name(g, ranks[i]);
		s->weight = weights[bench_rng_below(r, 5)];
		p->skills[i] = s;
	}

	{
		uint32_t x = bench_rng_below(r, 100);
		p->n_requirement_groups = x < 50 ? 0 : x < 85 ? 1 : 2;
	}
	p->requirement_groups =
	    xcalloc(p->n_requirement_groups, sizeof(*p->requirement_groups));
	for (size_t i = 0; i < p->n_requirement_groups; i++) {
		Lunamatch__V1__RequirementGroup *grp = xcalloc(1, sizeof(*grp));
		size_t k = 1 + bench_rng_below(r, 3);
		lunamatch__v1__requirement_group__init(grp);
		if (k > n)
			k = n;
		grp->label = xprintf("must-have %zu", i + 1);
		grp->min_years_experience =
		    chance(r, 70) ? 0 : (float) bench_rng_below(r, 6);
		grp->n_skill_ids = k;
		grp->skill_ids = xcalloc(k, sizeof(char *));
		grp->n_skills = k;
		grp->skills = xcalloc(k, sizeof(char *));
		for (size_t j = 0; j < k; j++) {
			uint32_t rk = ranks[bench_rng_below(r, (uint32_t) n)];
			grp->skill_ids[j] = skill_id(g, rk);
			grp->skills[j] = skill_name(g, rk);
		}
		p->requirement_groups[i] = grp;
	}
	p->posted_at = BENCH_NOW - (int64_t) bench_rng_below(r, 90 * BENCH_DAY);
	p->expires_at =
	    chance(r, 70) ? 0
	                  : BENCH_NOW + 1 + (int64_t) bench_rng_below(r, 60 * BENCH_DAY);
	p->embedding = gen_embedding(g, &p->n_embedding);
	return p;
}

Lunamatch__V1__CandidateProfile *
bench_gen_profile(bench_gen *g, const char *id)
{
	bench_rng *r = &g->rng;
	Lunamatch__V1__CandidateProfile *c = xcalloc(1, sizeof(*c));
	Lunamatch__V1__CareerGoals *goals;
	uint32_t ranks[20];
	size_t n;
	const char *title = titles[bench_rng_below(r, N_TITLES)];

	lunamatch__v1__candidate_profile__init(c);
	c->id = xstrdup(id);
	c->version = 1;
	c->experience_level = gen_level(r);
	c->years_experience = (float) ((c->experience_level - 2) * 3) +
	                      (float) bench_rng_below(r, 40) / 10.0f;
	c->headline = xprintf("%s, %.0f years", title, (double) c->years_experience);
	n = draw_skills(g, ranks, 5 + bench_rng_below(r, 16));
	c->n_skills = n;
	c->skills = xcalloc(n, sizeof(*c->skills));
	for (size_t i = 0; i < n; i++) {
		Lunamatch__V1__CandidateSkill *s = xcalloc(1, sizeof(*s));
		lunamatch__v1__candidate_skill__init(s);
		s->skill_id = skill_id(g, ranks[i]);
		s->name = skill_name(g, ranks[i]);
		s->years = (float) bench_rng_below(r, 100) / 10.0f;
		s->level = (Lunamatch__V1__SkillLevel) (1 + bench_rng_below(r, 4));
		c->skills[i] = s;
	}
	c->education = (Lunamatch__V1__Education) (1 + bench_rng_below(r, 6));
	c->locations = gen_locations(r, &c->n_locations);
	c->willing_to_relocate = chance(r, 30);
	c->remote = chance(r, 20)
	                ? LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_UNSPECIFIED
	                : gen_remote(r);
	if (chance(r, 80))
		c->desired_salary = gen_salary(r, c->experience_level, false);
	if (chance(r, 40)) {
		c->n_desired_employment_types = chance(r, 50) ? 1 : 2;
		c->desired_employment_types = xcalloc(
		    c->n_desired_employment_types, sizeof(*c->desired_employment_types));
		c->desired_employment_types[0] =
		    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_FULL_TIME;
		if (c->n_desired_employment_types > 1)
			c->desired_employment_types[1] =
			    LUNAMATCH__V1__EMPLOYMENT_TYPE__EMPLOYMENT_TYPE_CONTRACT;
	}
	goals = xcalloc(1, sizeof(*goals));
	lunamatch__v1__career_goals__init(goals);
	goals->n_desired_titles = 1 + bench_rng_below(r, 2);
	goals->desired_titles = xcalloc(goals->n_desired_titles, sizeof(char *));
	goals->desired_titles[0] = xstrdup(title);
	if (goals->n_desired_titles > 1)
		goals->desired_titles[1] = xstrdup(titles[bench_rng_below(r, N_TITLES)]);
	goals->n_desired_categories = 1;
	goals->desired_categories = xcalloc(1, sizeof(char *));
	goals->desired_categories[0] =
	    xstrdup(categories[bench_rng_below(r, N_CATEGORIES)]);
	goals->n_desired_industries = chance(r, 50) ? 1 : 0;
	goals->desired_industries = xcalloc(goals->n_desired_industries, sizeof(char *));
	if (goals->n_desired_industries > 0)
		goals->desired_industries[0] =
		    xstrdup(industries[bench_rng_below(r, N_INDUSTRIES)]);
	c->career_goals = goals;
	c->embedding = gen_embedding(g, &c->n_embedding);
	c->updated_at = BENCH_NOW - (int64_t) bench_rng_below(r, 30 * BENCH_DAY);
	return c;
}

/* ---- measuring ----------------------------------------------------------- */

uint64_t
bench_now_ns(void)
{
	return lm_clock_ns();
}

uint64_t
bench_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, resident = 0;
	long page = sysconf(_SC_PAGESIZE);
	int got;

	if (f == NULL)
		return 0;
	got = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	if (got != 2 || page <= 0)
		return 0;
	return (uint64_t) resident * (uint64_t) page;
}

uint64_t
bench_maxrss_bytes(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t) ru.ru_maxrss * 1024; /* Linux reports KiB */
}

uint64_t
bench_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

/* Busy CPU time of the whole machine in nanoseconds: every field of the
 * "cpu" line of /proc/stat but idle and iowait. 0 when unreadable. */
static uint64_t
sys_busy_ns(void)
{
	FILE *f = fopen("/proc/stat", "r");
	unsigned long long v[8] = {0};
	long tck = sysconf(_SC_CLK_TCK);
	int got;

	if (f == NULL)
		return 0;
	got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
	    &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (got != 8 || tck <= 0)
		return 0;
	/* user nice system idle iowait irq softirq steal */
	return (uint64_t) (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) *
	       (1000000000ULL / (uint64_t) tck);
}

double
bench_proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is the
	 * 3rd field, utime and stime the 14th and 15th. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	        &st) != 2)
		return -1;
	return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

/* The children registered with bench_load_child. */
static pid_t load_children[BENCH_LOAD_CHILDREN_MAX];
static size_t nload_children;

void
bench_load_child(pid_t pid)
{
	if (pid > 0 && nload_children < BENCH_LOAD_CHILDREN_MAX)
		load_children[nload_children++] = pid;
}

uint64_t
bench_children_cpu_ns(void)
{
	struct rusage ru;
	double s = 0;

	if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
		s = (double) ru.ru_utime.tv_sec + (double) ru.ru_stime.tv_sec +
		    (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	for (size_t i = 0; i < nload_children; i++) {
		siginfo_t si;
		double c;
		/* Not waited for yet (a zombie still has its /proc entry). */
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t) load_children[i], &si,
		        WEXITED | WNOHANG | WNOWAIT) != 0)
			continue;
		if ((c = bench_proc_cpu_s(load_children[i])) > 0)
			s += c;
	}
	return (uint64_t) (s * 1e9);
}

void
bench_load_start(bench_load *l)
{
	l->wall0 = bench_now_ns();
	l->sys0 = sys_busy_ns();
	l->own0 = bench_cpu_ns() + bench_children_cpu_ns();
}

double
bench_load_others(const bench_load *l)
{
	uint64_t wall = bench_now_ns() - l->wall0, sys = sys_busy_ns(), own;
	double others;

	if (l->sys0 == 0 || sys < l->sys0 || wall == 0)
		return 0;
	own = bench_cpu_ns() + bench_children_cpu_ns() - l->own0;
	others = ((double) (sys - l->sys0) - (double) own) / (double) wall;
	return others > 0 ? others : 0;
}

void
bench_trim_heap(void)
{
	malloc_trim(0);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), n >= 1. */
static double
pct_us(const uint64_t *v, size_t n, double q)
{
	size_t i = (size_t) ceil(q * (double) n);

	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return (double) v[i - 1] / 1000.0;
}

void
bench_lat_summarize(uint64_t *v, size_t n, bench_lat *out)
{
	double sum = 0;

	memset(out, 0, sizeof(*out));
	out->n = n;
	if (n == 0)
		return;
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double) v[i];
	out->mean_us = sum / (double) n / 1000.0;
	out->p50_us = pct_us(v, n, 0.50);
	out->p95_us = pct_us(v, n, 0.95);
	out->p99_us = pct_us(v, n, 0.99);
	out->max_us = (double) v[n - 1] / 1000.0;
}

/* Rounds to 0.1 so that the JSON stays readable. */
static json_t *
real1(double x)
{
	return json_real(round(x * 10.0) / 10.0);
}

json_t *
bench_lat_json(const bench_lat *l)
{
	return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "n", (json_int_t) l->n, "mean_us",
	    real1(l->mean_us), "p50_us", real1(l->p50_us), "p95_us", real1(l->p95_us),
	    "p99_us", real1(l->p99_us), "max_us", real1(l->max_us));
}

/* ---- options and results ------------------------------------------------- */

bool
bench_parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *what, uint64_t *out)
{
	if (lm_textfile_whole(s, lo, hi, out))
		return true;
	fprintf(stderr, "bench: %s must be a number in [%llu, %llu], got \"%s\"\n", what,
	    (unsigned long long) lo, (unsigned long long) hi, s ? s : "");
	return false;
}

size_t
bench_parse_list(
    const char *s, uint64_t *v, size_t max, uint64_t lo, uint64_t hi, const char *what)
{
	char buf[256];
	size_t n = 0;
	char *save = NULL;

	if (s == NULL || strlen(s) >= sizeof(buf)) {
		fprintf(stderr, "bench: %s: list missing or too long\n", what);
		return 0;
	}
	memcpy(buf, s, strlen(s) + 1);
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == max) {
			fprintf(stderr, "bench: %s: more than %zu entries\n", what, max);
			return 0;
		}
		if (!bench_parse_u64(tok, lo, hi, what, &v[n]))
			return 0;
		n++;
	}
	if (n == 0)
		fprintf(stderr, "bench: %s: empty list\n", what);
	return n;
}

/* The "model name" line of /proc/cpuinfo, or "unknown". */
static void
cpu_model(char *out, size_t outlen)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[CPUINFO_LINE_MAX];

	snprintf(out, outlen, "unknown");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *colon;
		if (strncmp(line, "model name", 10) != 0 ||
		    (colon = strchr(line, ':')) == NULL)
			continue;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(out, outlen, "%s", colon);
		break;
	}
	fclose(f);
}

json_t *
bench_machine_json(const char *commit)
{
	char cpu[256], date[64], kernel[256] = "unknown";
	time_t t = time(NULL);
	struct tm tm;
	struct utsname u;
	double load = -1;
	FILE *f;

	cpu_model(cpu, sizeof(cpu));
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(date, sizeof(date), "unknown");
	if (uname(&u) == 0)
		snprintf(
		    kernel, sizeof(kernel), "%s %s %s", u.sysname, u.release, u.machine);
	if ((f = fopen("/proc/loadavg", "r")) != NULL) {
		if (fscanf(f, "%lf", &load) != 1)
			load = -1;
		fclose(f);
	}
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:f}", "date", date, "commit",
	    commit && *commit ? commit : "unknown", "nproc",
	    (json_int_t) sysconf(_SC_NPROCESSORS_ONLN), "cpu_model", cpu, "kernel",
	    kernel, "build_type", LM_BENCH_BUILD_TYPE, "loadavg_1m", load);
}

void
bench_text_printf(bench_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n >= sizeof(t->buf) - t->len)
		n = (int) (sizeof(t->buf) - t->len - 1);
	fwrite(t->buf + t->len, 1, (size_t) n, stdout);
	fflush(stdout);
	t->len += (size_t) n;
}

void
bench_text_header(bench_text *t, const char *bench, json_t *machine)
{
	bench_text_printf(t, "%-12s %s  commit %s\n", bench,
	    json_string_value(json_object_get(machine, "date")),
	    json_string_value(json_object_get(machine, "commit")));
	bench_text_printf(t, "machine      %lld x %s, %s\n",
	    (long long) json_integer_value(json_object_get(machine, "nproc")),
	    json_string_value(json_object_get(machine, "cpu_model")),
	    json_string_value(json_object_get(machine, "kernel")));
	bench_text_printf(t, "build        %s\n",
	    json_string_value(json_object_get(machine, "build_type")));
	bench_text_printf(t,
	    "load         %.2f at the start (1 min average); other processes kept "
	    "%.2f cores busy during the run\n",
	    json_real_value(json_object_get(machine, "loadavg_1m")),
	    json_real_value(json_object_get(machine, "other_cores_busy")));
}

/* Writes data[0..len) and, if nl, a final newline to path through path.tmp
 * and a rename. */
static int
write_file(const char *path, const char *data, size_t len, bool nl)
{
	char tmp[BENCH_PATH_MAX];
	FILE *f;
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	bool ok;

	if (n < 0 || (size_t) n >= sizeof(tmp)) {
		fprintf(stderr, "bench: path too long: %s\n", path);
		return -1;
	}
	if ((f = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "bench: cannot write %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	ok = fwrite(data, 1, len, f) == len && (!nl || fputc('\n', f) != EOF);
	if (fclose(f) != 0)
		ok = false;
	if (!ok) {
		fprintf(stderr, "bench: cannot write %s: %s\n", tmp, strerror(errno));
		remove(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "bench: cannot rename %s: %s\n", tmp, strerror(errno));
		remove(tmp);
		return -1;
	}
	return 0;
}

int
bench_write_results(const char *dir, const char *name, json_t *doc, const bench_text *t)
{
	char path[BENCH_PATH_MAX];
	char *json;
	int n, rc;

	n = snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	if (n < 0 || (size_t) n >= sizeof(path)) {
		fprintf(stderr, "bench: result path too long\n");
		return -1;
	}
	if ((json = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
	                                JSON_REAL_PRECISION(7))) == NULL) {
		fprintf(stderr, "bench: cannot encode results\n");
		return -1;
	}
	rc = write_file(path, json, strlen(json), true);
	free(json);
	if (rc != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
	return write_file(path, t->buf, t->len, false);
}
