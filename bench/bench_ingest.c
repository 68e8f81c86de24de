/*
 * bench_ingest.c - ingest throughput as a user sees it: synthetic postings
 * and profiles waiting in the record topics, then lunamatch-ingest started
 * on an empty store; against the same topics in the same run, kcat's raw
 * consume (kcat -C to the end of every partition) as the reference.
 *
 * Reports, for ingest: the time from start to the first stored record (the
 * consumer group join), the rate over the whole run and the rate from the
 * first stored record to the last (durable: a record counts once its batch
 * transaction is committed and fsynced); for kcat: records per second. The
 * broker is lunamatch-devkafka (started here, with enough partitions to stay
 * under its 5 MiB per partition) or, with --brokers, a real Kafka broker.
 * Results go to <out-dir>/<name>.json and <name>.txt.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_util.h"
#include "lunamatch/v1/events.pb-c.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/store.h"

#define RECORDS_MAX   2000000
#define ENV_MAX       32
#define LINE_MAX_LEN  512
#define WAIT_STORE_MS 600000 /* longest wait for ingest to store everything */
#define POLL_STORE_MS 20

extern char **environ;

typedef struct opts {
	uint64_t postings, profiles, partitions, batch_max, seed;
	uint64_t probes;     /* event latency probes; 0: ingest throughput only */
	const char *brokers; /* NULL: start lunamatch-devkafka */
	const char *bin_dir;
	const char *taxonomy; /* skill names of the records */
	const char *out_dir;
	const char *name;
	const char *commit;
} opts;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: bench_ingest [options]\n"
	    "  --postings N     postings in the topic (default 100000)\n"
	    "  --profiles N     profiles in the topic (default 5000)\n"
	    "  --partitions N   partitions per topic (default 32)\n"
	    "  --batch-max N    LUNAMATCH_BATCH_MAX of ingest (default 2000)\n"
	    "  --probes N       then, with lunamatch-match running on the loaded\n"
	    "                   store, N new postings one at a time: latency until\n"
	    "                   their first MatchEvent is readable (default 0: off)\n"
	    "  --brokers LIST   a running Kafka broker (default: start "
	    "lunamatch-devkafka)\n"
	    "  --bin-dir DIR    where lunamatch-ingest and lunamatch-devkafka are\n"
	    "                   (default: the directory of this program)\n"
	    "  --taxonomy FILE  skill names for the records, also ingest's taxonomy\n"
	    "                   (default data/skills.tsv)\n"
	    "  --seed N         data seed (default 1)\n"
	    "  --out-dir DIR    where results go (default .)\n"
	    "  --name NAME      result file base name (default ingest)\n"
	    "  --commit REV     source revision recorded with the results\n");
}

static int
parse_opts(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
	    {"postings", required_argument, NULL, 'p'},
	    {"profiles", required_argument, NULL, 'P'},
	    {"partitions", required_argument, NULL, 'n'},
	    {"batch-max", required_argument, NULL, 'b'},
	    {"probes", required_argument, NULL, 'L'},
	    {"brokers", required_argument, NULL, 'B'},
	    {"bin-dir", required_argument, NULL, 'd'},
	    {"taxonomy", required_argument, NULL, 't'},
	    {"seed", required_argument, NULL, 'S'},
	    {"out-dir", required_argument, NULL, 'o'},
	    {"name", required_argument, NULL, 'N'},
	    {"commit", required_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	static char self_dir[BENCH_PATH_MAX];
	int ch;

	memset(o, 0, sizeof(*o));
	o->postings = 100000;
	o->profiles = 5000;
	o->partitions = 32;
	o->batch_max = 2000;
	o->seed = 1;
	o->out_dir = ".";
	o->name = "ingest";
	o->taxonomy = "data/skills.tsv";
	snprintf(self_dir, sizeof(self_dir), "%s", argv[0]);
	char *slash = strrchr(self_dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		snprintf(self_dir, sizeof(self_dir), ".");
	o->bin_dir = self_dir;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'p':
			ok = bench_parse_u64(
			    optarg, 1, RECORDS_MAX, "--postings", &o->postings);
			break;
		case 'P':
			ok = bench_parse_u64(
			    optarg, 0, RECORDS_MAX, "--profiles", &o->profiles);
			break;
		case 'n':
			ok = bench_parse_u64(
			    optarg, 1, 256, "--partitions", &o->partitions);
			break;
		case 'b':
			ok = bench_parse_u64(
			    optarg, 1, 100000, "--batch-max", &o->batch_max);
			break;
		case 'L':
			ok = bench_parse_u64(optarg, 0, 100000, "--probes", &o->probes);
			break;
		case 'B':
			o->brokers = optarg;
			break;
		case 'd':
			o->bin_dir = optarg;
			break;
		case 't':
			o->taxonomy = optarg;
			break;
		case 'S':
			ok = bench_parse_u64(optarg, 0, INT64_MAX, "--seed", &o->seed);
			break;
		case 'o':
			o->out_dir = optarg;
			break;
		case 'N':
			o->name = optarg;
			break;
		case 'C':
			o->commit = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			ok = false;
			break;
		}
		if (!ok) {
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(
		    stderr, "bench_ingest: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- child processes ------------------------------------------------------ */

/* Starts argv with extra (NULL-terminated "NAME=value", taking precedence
 * over the inherited environment), stdout to out_fd (-1: /dev/null) and
 * stderr to err_path (NULL: /dev/null). Returns the pid or -1. */
static pid_t
spawn(char *const argv[], char *const extra[], int out_fd, const char *err_path)
{
	posix_spawn_file_actions_t fa;
	char *envp[1024];
	size_t n = 0;
	pid_t pid = -1;

	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 64; i++)
		envp[n++] = extra[i];
	for (size_t i = 0; environ[i] != NULL && n < 1023; i++)
		envp[n++] = environ[i];
	envp[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	else
		posix_spawn_file_actions_addopen(
		    &fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO,
	    err_path != NULL ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
	    0600);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	bench_load_child(pid);
	return pid;
}

static int
wait_exit(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Starts lunamatch-devkafka with the topics; *brokers gets its address. */
static pid_t
devkafka_start(const opts *o, char *const topics_env[], char *brokers, size_t len)
{
	char path[BENCH_PATH_MAX], parts[32];
	int fds[2];
	FILE *f;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/lunamatch-devkafka", o->bin_dir);
	snprintf(parts, sizeof(parts), "%u", (unsigned) o->partitions);
	char *argv[] = {path, "--partitions", parts, NULL};
	if (pipe(fds) != 0)
		return -1;
	pid = spawn(argv, topics_env, fds[1], NULL);
	close(fds[1]);
	if (pid < 0 || (f = fdopen(fds[0], "r")) == NULL) {
		close(fds[0]);
		return -1;
	}
	if (fgets(brokers, (int) len, f) == NULL) {
		fclose(f);
		kill(pid, SIGKILL);
		wait_exit(pid);
		return -1;
	}
	brokers[strcspn(brokers, "\n")] = '\0';
	fclose(f); /* devkafka ignores SIGPIPE */
	return pid;
}

/* ---- producing ------------------------------------------------------------ */

/* Display names of data/skills.tsv, in file order (at most NAMES_MAX). */
#define NAMES_MAX 4096
static char *skill_names[NAMES_MAX];
static size_t nnames;

static int
load_names(const char *path)
{
	char line[4096];
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		fprintf(stderr, "bench_ingest: cannot read %s\n", path);
		return -1;
	}
	while (nnames < NAMES_MAX && fgets(line, sizeof(line), f) != NULL) {
		char *tab, *end;
		if (line[0] == '#' || (tab = strchr(line, '\t')) == NULL)
			continue;
		if ((end = strchr(tab + 1, '\t')) == NULL)
			continue;
		*end = '\0';
		if ((skill_names[nnames] = strdup(tab + 1)) == NULL)
			abort();
		nnames++;
	}
	fclose(f);
	return nnames > 0 ? 0 : -1;
}

/* The generator names skills "Skill <rank>"; users send names the taxonomy
 * knows, so each becomes the display name of a taxonomy skill. */
static void
rename_skill(char **name)
{
	unsigned rank = 0;

	if (sscanf(*name, "Skill %u", &rank) != 1)
		return;
	free(*name);
	if ((*name = strdup(skill_names[rank % nnames])) == NULL)
		abort();
}

static void
realistic_skills(ProtobufCMessage *m, bool posting)
{
	if (posting) {
		Lunamatch__V1__JobPosting *p = (Lunamatch__V1__JobPosting *) m;
		for (size_t i = 0; i < p->n_skills; i++)
			rename_skill(&p->skills[i]->name);
		for (size_t i = 0; i < p->n_requirement_groups; i++)
			for (size_t j = 0; j < p->requirement_groups[i]->n_skills; j++)
				rename_skill(&p->requirement_groups[i]->skills[j]);
	} else {
		Lunamatch__V1__CandidateProfile *c =
		    (Lunamatch__V1__CandidateProfile *) m;
		for (size_t i = 0; i < c->n_skills; i++)
			rename_skill(&c->skills[i]->name);
	}
}

static int
produce_all(const opts *o, const char *brokers, const char *postings,
    const char *profiles, uint64_t *bytes)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk;
	char err[256], id[32];
	bench_gen_opts go = {.seed = o->seed};
	bench_gen *g = bench_gen_new(&go);
	int rv = -1;

	*bytes = 0;
	if (lm_kafka_conf(brokers, "bench-ingest", &conf, err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(conf, "linger.ms", "20", err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(conf, "queue.buffering.max.messages", "2000000", err,
	        sizeof(err)) != LM_OK ||
	    lm_kafka_set(conf, "queue.buffering.max.kbytes", "2000000", err,
	        sizeof(err)) != LM_OK ||
	    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_ingest: producer: %s\n", err);
		bench_gen_free(g);
		return -1;
	}
	for (uint64_t i = 0; i < o->postings + o->profiles; i++) {
		bool posting = i < o->postings;
		ProtobufCMessage *m;
		uint8_t *buf;
		size_t len;
		snprintf(id, sizeof(id), "%s-%07llu", posting ? "job" : "cand",
		    (unsigned long long) i);
		m = posting ? &bench_gen_posting(g, id)->base
		            : &bench_gen_profile(g, id)->base;
		realistic_skills(m, posting);
		if (lm_pb_encode(m, &buf, &len) != LM_OK)
			abort();
		protobuf_c_message_free_unpacked(m, NULL);
		*bytes += len;
		while (
		    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(posting ? postings : profiles),
		        RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE(buf, len),
		        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
		        RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		rd_kafka_poll(rk, 0);
	}
	if (rd_kafka_flush(rk, 120000) == RD_KAFKA_RESP_ERR_NO_ERROR)
		rv = 0;
	else
		fprintf(stderr, "bench_ingest: not everything was delivered\n");
	rd_kafka_destroy(rk);
	bench_gen_free(g);
	return rv;
}

/* kcat -C of topic to the end of every partition; nanoseconds, 0 on error. */
static uint64_t
kcat_consume(const char *brokers, const char *topic)
{
	char *argv[] = {"kcat", "-C", "-b", (char *) brokers, "-t", (char *) topic, "-o",
	    "beginning", "-e", "-q", "-f", "%o\n", NULL};
	uint64_t t0 = bench_now_ns();
	pid_t pid = spawn(argv, NULL, -1, NULL);

	if (pid < 0 || wait_exit(pid) != 0) {
		fprintf(stderr, "bench_ingest: kcat failed\n");
		return 0;
	}
	return bench_now_ns() - t0;
}

/* ---- ingest --------------------------------------------------------------- */

/* Live records in the store at dir, -1 when it cannot be read (yet). */
static int64_t
stored(lm_store **s, const char *dir)
{
	lm_store_opts so = {.flags = LM_STORE_RDONLY};
	struct lm_store_stats st;

	if (*s == NULL && lm_store_open(dir, &so, s) != LM_OK) {
		*s = NULL;
		return -1;
	}
	if (lm_store_stats(*s, &st) != LM_OK)
		return -1;
	return (int64_t) (st.postings + st.profiles);
}

typedef struct ingest_run {
	double join_s, total_s, steady_s;
	double cpu_s, steady_cpu_s; /* user + system time of lunamatch-ingest */
	int64_t steady_n;           /* records stored after the first poll that saw one */
} ingest_run;

static int
run_ingest(
    const opts *o, char *const env[], const char *data, const char *log, ingest_run *r)
{
	char path[BENCH_PATH_MAX];
	lm_store *s = NULL;
	int64_t want = (int64_t) (o->postings + o->profiles), n = 0, n_first = 0;
	uint64_t t0, t_first = 0, t_end = 0;
	double cpu_first = 0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/lunamatch-ingest", o->bin_dir);
	char *argv[] = {path, NULL};
	t0 = bench_now_ns();
	if ((pid = spawn(argv, env, -1, log)) < 0) {
		fprintf(stderr, "bench_ingest: cannot start %s\n", path);
		return -1;
	}
	while (n < want && bench_now_ns() - t0 < (uint64_t) WAIT_STORE_MS * 1000000) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr,
			    "bench_ingest: lunamatch-ingest exited (log: %s)\n", log);
			lm_store_close(s);
			return -1;
		}
		n = stored(&s, data);
		if (n > 0 && t_first == 0) {
			t_first = bench_now_ns();
			cpu_first = bench_proc_cpu_s(pid);
			n_first = n;
		}
		if (n < want)
			usleep(POLL_STORE_MS * 1000);
	}
	t_end = bench_now_ns();
	r->cpu_s = bench_proc_cpu_s(pid);
	r->steady_cpu_s = r->cpu_s - cpu_first;
	lm_store_close(s);
	kill(pid, SIGTERM);
	wait_exit(pid);
	if (n < want) {
		fprintf(stderr, "bench_ingest: %lld of %lld records stored (log: %s)\n",
		    (long long) n, (long long) want, log);
		return -1;
	}
	r->join_s = (double) (t_first - t0) / 1e9;
	r->total_s = (double) (t_end - t0) / 1e9;
	r->steady_s = (double) (t_end - t_first) / 1e9;
	r->steady_n = want - n_first;
	return 0;
}

/* ---- event latency -------------------------------------------------------- */

#define PROBE_WAIT_MS 10000  /* longest wait for one probe's first event */
#define WARMUP_MS     300000 /* match loading the store, then the first event */
#define PROBE_SKILLS  3

static const char *const probe_skills[PROBE_SKILLS] = {"Python", "SQL", "Kubernetes"};

/* Sends one record (protobuf, key = id) and waits for its delivery. */
static int
send_record(rd_kafka_t *rk, const char *topic, const char *id, ProtobufCMessage *m)
{
	uint8_t *buf;
	size_t len;

	if (lm_pb_encode(m, &buf, &len) != LM_OK)
		return -1;
	if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(id, strlen(id)),
	        RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
	        RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		free(buf);
		return -1;
	}
	return rd_kafka_flush(rk, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* The profile every probe matches: remote, three skills of five years. */
static int
send_magnet(rd_kafka_t *rk, const char *topic)
{
	Lunamatch__V1__CandidateProfile c = LUNAMATCH__V1__CANDIDATE_PROFILE__INIT;
	Lunamatch__V1__CandidateSkill sk[PROBE_SKILLS], *skp[PROBE_SKILLS];

	for (int i = 0; i < PROBE_SKILLS; i++) {
		lunamatch__v1__candidate_skill__init(&sk[i]);
		sk[i].name = (char *) probe_skills[i];
		sk[i].years = 5;
		skp[i] = &sk[i];
	}
	c.id = "cand-bench-magnet";
	c.version = 1;
	c.headline = "Platform engineer";
	c.n_skills = PROBE_SKILLS;
	c.skills = skp;
	c.years_experience = 6;
	c.remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	return send_record(rk, topic, c.id, &c.base);
}

static int
send_probe(rd_kafka_t *rk, const char *topic, const char *id)
{
	Lunamatch__V1__JobPosting j = LUNAMATCH__V1__JOB_POSTING__INIT;
	Lunamatch__V1__PostingSkill sk[PROBE_SKILLS], *skp[PROBE_SKILLS];

	for (int i = 0; i < PROBE_SKILLS; i++) {
		lunamatch__v1__posting_skill__init(&sk[i]);
		sk[i].name = (char *) probe_skills[i];
		sk[i].weight = 1;
		skp[i] = &sk[i];
	}
	j.id = (char *) id;
	j.version = 1;
	j.title = "Platform engineer";
	j.n_skills = PROBE_SKILLS;
	j.skills = skp;
	j.remote = LUNAMATCH__V1__REMOTE_POLICY__REMOTE_POLICY_REMOTE;
	j.posted_at = (int64_t) time(NULL);
	return send_record(rk, topic, id, &j.base);
}

/* A reader of every partition of topic from its end. */
static rd_kafka_t *
events_reader(const char *brokers, const char *topic, int partitions)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *rk;
	char err[256], group[64];
	rd_kafka_topic_partition_list_t *l;

	snprintf(group, sizeof(group), "bench-events-%d", (int) getpid());
	if (lm_kafka_conf(brokers, "bench-events", &conf, err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(conf, "group.id", group, err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(conf, "enable.auto.commit", "false", err, sizeof(err)) !=
	        LM_OK ||
	    lm_kafka_set(conf, "fetch.wait.max.ms", "5", err, sizeof(err)) != LM_OK ||
	    (rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_ingest: events reader: %s\n", err);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	l = rd_kafka_topic_partition_list_new(partitions);
	for (int p = 0; p < partitions; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset =
		    RD_KAFKA_OFFSET_END;
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	return rk;
}

/* Polls rk until an event for job id arrives; true then, false after ms. */
static bool
await_event(rd_kafka_t *rk, const char *id, uint64_t ms)
{
	uint64_t end = bench_now_ns() + ms * 1000000;
	bool seen = false;

	while (!seen && bench_now_ns() < end) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			Lunamatch__V1__MatchEvent *e =
			    lunamatch__v1__match_event__unpack(NULL, m->len, m->payload);
			seen =
			    e != NULL && e->job_id != NULL && strcmp(e->job_id, id) == 0;
			if (e != NULL)
				lunamatch__v1__match_event__free_unpacked(e, NULL);
		}
		rd_kafka_message_destroy(m);
	}
	return seen;
}

typedef struct latency_run {
	bench_lat lat;
	double warmup_s;
	uint64_t missed;
} latency_run;

/*
 * With ingest and match running on the loaded store: the magnet profile,
 * then probes one at a time, each timed from its send to its first
 * MatchEvent read back from the matches topic.
 */
static int
run_latency(const opts *o, char *const ienv[], char *const menv[], const char *brokers,
    const char *postings, const char *profiles, const char *matches, const char *dir,
    latency_run *lr)
{
	char path[BENCH_PATH_MAX], ilog[BENCH_PATH_MAX], mlog[BENCH_PATH_MAX], id[48];
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *prod = NULL, *reader = NULL;
	uint64_t *ns = calloc(o->probes, sizeof(*ns)), t0;
	pid_t ing = -1, mat = -1;
	size_t n = 0;
	char err[256] = "";
	int rv = -1;

	memset(lr, 0, sizeof(*lr));
	snprintf(ilog, sizeof(ilog), "%s/ingest-latency.log", dir);
	snprintf(mlog, sizeof(mlog), "%s/match.log", dir);
	snprintf(path, sizeof(path), "%s/lunamatch-ingest", o->bin_dir);
	char *iargv[] = {path, NULL};
	char mpath[BENCH_PATH_MAX];
	snprintf(mpath, sizeof(mpath), "%s/lunamatch-match", o->bin_dir);
	char *margv[] = {mpath, NULL};
	if (ns == NULL ||
	    lm_kafka_conf(brokers, "bench-probe", &conf, err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(conf, "linger.ms", "0", err, sizeof(err)) != LM_OK ||
	    (prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) == NULL ||
	    (reader = events_reader(brokers, matches, (int) o->partitions)) == NULL)
		goto done;
	t0 = bench_now_ns();
	if ((ing = spawn(iargv, ienv, -1, ilog)) < 0 ||
	    (mat = spawn(margv, menv, -1, mlog)) < 0 || send_magnet(prod, profiles) != 0)
		goto done;
	/* Warm-up: match loads the store; the first probe's event says it
	 * follows the change log and emits. */
	for (int i = 0; !lr->warmup_s; i++) {
		snprintf(id, sizeof(id), "job-probe-warm-%d", i);
		if (send_probe(prod, postings, id) != 0)
			goto done;
		if (await_event(reader, id, 5000))
			lr->warmup_s = (double) (bench_now_ns() - t0) / 1e9;
		else if (bench_now_ns() - t0 > (uint64_t) WARMUP_MS * 1000000) {
			fprintf(stderr,
			    "bench_ingest: no MatchEvent for a probe within %d s (logs: "
			    "%s, %s)\n",
			    WARMUP_MS / 1000, ilog, mlog);
			goto done;
		}
	}
	for (uint64_t i = 0; i < o->probes; i++) {
		snprintf(id, sizeof(id), "job-probe-%llu", (unsigned long long) i);
		uint64_t s0 = bench_now_ns();
		if (send_probe(prod, postings, id) != 0)
			goto done;
		if (await_event(reader, id, PROBE_WAIT_MS))
			ns[n++] = bench_now_ns() - s0;
		else
			lr->missed++;
	}
	bench_lat_summarize(ns, n, &lr->lat);
	rv = 0;
done:
	if (rv != 0 && err[0] != '\0')
		fprintf(stderr, "bench_ingest: latency: %s\n", err);
	if (mat > 0) {
		kill(mat, SIGTERM);
		wait_exit(mat);
	}
	if (ing > 0) {
		kill(ing, SIGTERM);
		wait_exit(ing);
	}
	if (reader != NULL) {
		rd_kafka_consumer_close(reader);
		rd_kafka_destroy(reader);
	}
	if (prod != NULL)
		rd_kafka_destroy(prod);
	free(ns);
	return rv;
}

int
main(int argc, char **argv)
{
	opts o;
	char tmpl[] = "/tmp/bench-ingest-XXXXXX", brokers[LINE_MAX_LEN];
	char postings[64], profiles[64], matches[64], dlq[64], group[64];
	char data[BENCH_PATH_MAX], log[BENCH_PATH_MAX];
	char e_post[128], e_prof[128], e_match[128], e_dlq[128],
	    e_brokers[LINE_MAX_LEN + 32], e_data[BENCH_PATH_MAX + 32], e_group[128],
	    e_tax[BENCH_PATH_MAX + 32], e_batch[64], e_notify[BENCH_PATH_MAX + 64];
	pid_t dk = -1;
	uint64_t bytes = 0, kcat_ns = 0;
	ingest_run ir;
	bench_load load;
	bench_text *text = NULL;
	json_t *machine, *doc;
	int status = 1;

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	if (mkdtemp(tmpl) == NULL) {
		perror("bench_ingest: mkdtemp");
		return 1;
	}
	snprintf(postings, sizeof(postings), "bench.%d.postings", (int) getpid());
	snprintf(profiles, sizeof(profiles), "bench.%d.profiles", (int) getpid());
	snprintf(matches, sizeof(matches), "bench.%d.matches", (int) getpid());
	snprintf(dlq, sizeof(dlq), "bench.%d.dlq", (int) getpid());
	snprintf(group, sizeof(group), "bench-%d", (int) getpid());
	snprintf(data, sizeof(data), "%s/data", tmpl);
	snprintf(log, sizeof(log), "%s/ingest.log", tmpl);
	snprintf(e_post, sizeof(e_post), "LUNAMATCH_TOPIC_POSTINGS=%s", postings);
	snprintf(e_prof, sizeof(e_prof), "LUNAMATCH_TOPIC_PROFILES=%s", profiles);
	snprintf(e_match, sizeof(e_match), "LUNAMATCH_TOPIC_MATCHES=%s", matches);
	snprintf(e_dlq, sizeof(e_dlq), "LUNAMATCH_TOPIC_DLQ=%s", dlq);
	char *topics_env[] = {e_post, e_prof, e_match, e_dlq, NULL};

	machine = bench_machine_json(o.commit);
	bench_load_start(&load);
	if (o.brokers == NULL) {
		if ((dk = devkafka_start(&o, topics_env, brokers, sizeof(brokers))) < 0) {
			fprintf(
			    stderr, "bench_ingest: cannot start lunamatch-devkafka\n");
			goto done;
		}
	} else {
		rd_kafka_conf_t *conf = NULL;
		rd_kafka_t *rk;
		char err[256];
		const char *names[] = {postings, profiles, dlq, matches};
		snprintf(brokers, sizeof(brokers), "%s", o.brokers);
		if (lm_kafka_conf(brokers, "bench-admin", &conf, err, sizeof(err)) !=
		        LM_OK ||
		    (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) ==
		        NULL ||
		    lm_kafka_create_topics(rk, names, 4, (int) o.partitions, 30000, err,
		        sizeof(err)) != LM_OK) {
			fprintf(stderr, "bench_ingest: topics: %s\n", err);
			goto done;
		}
		rd_kafka_destroy(rk);
	}
	printf("bench_ingest: producing %llu postings and %llu profiles to %s\n",
	    (unsigned long long) o.postings, (unsigned long long) o.profiles, brokers);
	if (load_names(o.taxonomy) != 0 ||
	    produce_all(&o, brokers, postings, profiles, &bytes) != 0)
		goto done;

	uint64_t a = kcat_consume(brokers, postings), b = kcat_consume(brokers, profiles);
	if (a == 0 || b == 0)
		goto done;
	kcat_ns = a + b;

	snprintf(e_brokers, sizeof(e_brokers), "LUNAMATCH_BROKERS=%s", brokers);
	snprintf(e_data, sizeof(e_data), "LUNAMATCH_DATA_DIR=%s", data);
	snprintf(e_tax, sizeof(e_tax), "LUNAMATCH_TAXONOMY_FILE=%s", o.taxonomy);
	snprintf(e_group, sizeof(e_group), "LUNAMATCH_GROUP_ID=%s", group);
	snprintf(e_batch, sizeof(e_batch), "LUNAMATCH_BATCH_MAX=%llu",
	    (unsigned long long) o.batch_max);
	snprintf(
	    e_notify, sizeof(e_notify), "LUNAMATCH_NOTIFY_URL=ipc://%s/notify.ipc", tmpl);
	char *ienv[] = {e_post, e_prof, e_dlq, e_brokers, e_data, e_group, e_batch,
	    e_notify, e_tax, "LUNAMATCH_HTTP_ADDR=127.0.0.1:0",
	    "LUNAMATCH_LOG_LEVEL=warn", NULL};
	if (run_ingest(&o, ienv, data, log, &ir) != 0)
		goto done;
	latency_run lr = {0};
	if (o.probes > 0) {
		char e_rpc[64], e_http[64];
		snprintf(e_rpc, sizeof(e_rpc), "LUNAMATCH_RPC_URL=tcp://127.0.0.1:%d",
		    20000 + (int) getpid() % 20000);
		snprintf(e_http, sizeof(e_http), "LUNAMATCH_HTTP_ADDR=127.0.0.1:%d",
		    40000 + (int) getpid() % 20000);
		/* Match reads ingest's committed offsets (its group) to know
		 * when a record is stored. */
		char *menv[] = {e_post, e_prof, e_match, e_brokers, e_data, e_group,
		    e_tax, e_rpc, e_http, e_notify, "LUNAMATCH_LOG_LEVEL=warn", NULL};
		if (run_latency(&o, ienv, menv, brokers, postings, profiles, matches,
		        tmpl, &lr) != 0)
			goto done;
	}

	double total = (double) (o.postings + o.profiles);
	double kcat_rate = total / ((double) kcat_ns / 1e9);
	/* After the join: the records stored after the first poll that saw
	 * one, in the time and CPU time from that poll. */
	double steady = ir.steady_s > 0 ? (double) ir.steady_n / ir.steady_s : 0;
	double overall = total / ir.total_s;
	double cpu_us =
	    ir.steady_n > 0 ? ir.steady_cpu_s / (double) ir.steady_n * 1e6 : 0;
	json_object_set_new(
	    machine, "other_cores_busy", json_real(bench_load_others(&load)));
	json_incref(machine);
	doc = json_pack("{s:s,s:o,s:{s:s,s:I,s:I,s:I,s:I,s:f},s:{s:f},"
	                "s:{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}}",
	    "benchmark", "ingest", "machine", machine, "params", "broker",
	    o.brokers ? "kafka" : "devkafka", "postings", (json_int_t) o.postings,
	    "profiles", (json_int_t) o.profiles, "partitions", (json_int_t) o.partitions,
	    "batch_max", (json_int_t) o.batch_max, "avg_record_bytes",
	    (double) bytes / total, "kcat", "records_per_s", kcat_rate, "ingest",
	    "join_s", ir.join_s, "total_s", ir.total_s, "steady_s", ir.steady_s,
	    "records_per_s_overall", overall, "records_per_s_after_join", steady,
	    "ratio_to_kcat", steady / kcat_rate, "cpu_s", ir.cpu_s,
	    "cpu_us_per_record_after_join", cpu_us);
	if ((text = calloc(1, sizeof(*text))) == NULL || doc == NULL)
		goto done;
	if (o.probes > 0) {
		json_t *lj = bench_lat_json(&lr.lat);
		json_object_set_new(lj, "missed", json_integer((json_int_t) lr.missed));
		json_object_set_new(lj, "warmup_s", json_real(lr.warmup_s));
		json_object_set_new(doc, "event_latency", lj);
	}
	bench_text_header(text, "bench_ingest", machine);
	bench_text_printf(text,
	    "data         %llu postings + %llu profiles, %.0f bytes each on average, "
	    "%llu partitions per topic, %s, LUNAMATCH_BATCH_MAX=%llu\n\n",
	    (unsigned long long) o.postings, (unsigned long long) o.profiles,
	    (double) bytes / total, (unsigned long long) o.partitions,
	    o.brokers ? "real Kafka" : "lunamatch-devkafka",
	    (unsigned long long) o.batch_max);
	bench_text_printf(
	    text, "%-40s %12.0f records/s\n", "kcat -C (raw consume)", kcat_rate);
	bench_text_printf(
	    text, "%-40s %12.2f s\n", "ingest: start to first stored (join)", ir.join_s);
	bench_text_printf(
	    text, "%-40s %12.0f records/s\n", "ingest: durable, after the join", steady);
	bench_text_printf(
	    text, "%-40s %12.0f records/s\n", "ingest: durable, overall", overall);
	bench_text_printf(
	    text, "%-40s %12.2f\n", "ingest after join / kcat", steady / kcat_rate);
	bench_text_printf(text, "%-40s %12.1f us/record (%.1f s in all)\n",
	    "ingest CPU (user+sys), after the join", cpu_us, ir.cpu_s);
	if (o.probes > 0) {
		bench_text_printf(text,
		    "\nevent latency: a new posting produced -> its first MatchEvent "
		    "read "
		    "from the matches topic, %zu probes (%llu missed), lunamatch-match "
		    "ready %.1f s after start\n",
		    lr.lat.n, (unsigned long long) lr.missed, lr.warmup_s);
		bench_text_printf(text, "%-40s %8.1f / %.1f / %.1f / %.1f ms\n",
		    "p50 / p95 / p99 / max", lr.lat.p50_us / 1000, lr.lat.p95_us / 1000,
		    lr.lat.p99_us / 1000, lr.lat.max_us / 1000);
	}
	if (bench_write_results(o.out_dir, o.name, doc, text) == 0)
		status = 0;
	json_decref(doc);
done:
	if (dk > 0) {
		kill(dk, SIGTERM);
		wait_exit(dk);
	}
	free(text);
	json_decref(machine);
	if (status == 0) {
		char cmd[sizeof(tmpl) + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_ingest: cannot remove %s\n", tmpl);
	} else {
		fprintf(stderr, "bench_ingest: files kept in %s\n", tmpl);
	}
	return status;
}
