/*
 * test_devkafka.c - Kafka round trips against lunamatch-devkafka or a real
 * Apache Kafka broker.
 *
 * Without LUNAMATCH_TEST_BROKERS (or with it empty) the test starts
 * lunamatch-devkafka as a child process, reads its bootstrap address from the
 * first stdout line and also checks the program itself: configured topics
 * and partitions, --help, bad options, clean exit on SIGTERM, and exit 3
 * with devkafka.lost when a partition would lose messages, and little CPU
 * when idle with many partitions. With
 * LUNAMATCH_TEST_BROKERS=host:port (the broker that scripts/kafka.sh starts)
 * it runs the same produce/consume round trips against that broker, and
 * checks topic creation through the admin API.
 *
 * Round trips: librdkafka producer -> consumer group with committed offsets
 * (and a restarted member resuming after them), kcat -P -> librdkafka,
 * librdkafka -> kcat -C, kcat -L. Every message carries a run id so that
 * messages of earlier runs on a long-lived broker are ignored.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kafkatest.h"
#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "proc.h"

#define DEV_PARTITIONS 2
#define DEV_DLQ        "lmtest.dlq.v1"
#define START_MS       LMT_KAFKA_START_MS
#define IO_MS          30000 /* longest wait for one message to come back */
#define GROUP_MSGS     5
/* Partitions per topic of the tests of the watch on lost messages. */
#define WATCH_PARTITIONS 32

static struct {
	lmt_broker b;          /* b.real: LUNAMATCH_TEST_BROKERS given */
	char run[64];          /* unique per run: tags our messages */
	const char *topics[5]; /* the lunamatch topics, the dead letters' last */
} E;

/* A producer that sends at once. */
static lmt_producer *
new_producer(void)
{
	return lmt_producer_new(
	    E.b.brokers, "lmtest", (const char *const[]){"linger.ms", "0", NULL});
}

/* A consumer in `group` (NULL: a private group, for assign()). */
static rd_kafka_t *
new_consumer(const char *group)
{
	/* The high-level consumer needs a group even for assign(). */
	char reader[128];
	snprintf(reader, sizeof(reader), "lmtest-reader-%s", E.run);
	return lmt_kafka_consumer(E.b.brokers, "lmtest", group ? group : reader,
	    (const char *const[]){
	        "session.timeout.ms", "6000", "auto.offset.reset", "earliest", NULL});
}

/* Sends one message and waits until the broker acknowledged it. */
static void
produce(lmt_producer *p, const char *topic, int partition, const char *payload)
{
	int before = atomic_load(&p->delivered);
	lmt_produce(p, topic, partition, NULL, payload, strlen(payload), NULL);
	assert_int_equal(lmt_producer_flush(p, IO_MS), before + 1);
}

/* Polls c until a message whose payload starts with prefix arrives; copies
 * the payload into out. Returns false after IO_MS. */
static bool
consume_prefixed(rd_kafka_t *c, const char *prefix, char *out, size_t outlen,
    rd_kafka_message_t **keep)
{
	time_t end = time(NULL) + IO_MS / 1000;
	size_t pl = strlen(prefix);

	while (time(NULL) < end) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->len >= pl &&
		    memcmp(m->payload, prefix, pl) == 0) {
			size_t n = m->len < outlen - 1 ? m->len : outlen - 1;
			memcpy(out, m->payload, n);
			out[n] = '\0';
			if (keep != NULL)
				*keep = m;
			else
				rd_kafka_message_destroy(m);
			return true;
		}
		rd_kafka_message_destroy(m);
	}
	return false;
}

static int
group_setup(void **state)
{
	const char *real = lmt_kafka_real_brokers();
	(void) state;

	lmt_run_id(E.run, sizeof(E.run), "run-");
	E.topics[0] = "lunamatch.postings.v1";
	E.topics[1] = "lunamatch.profiles.v1";
	E.topics[2] = "lunamatch.matches.v1";
	E.topics[3] = "lunamatch.decisions.v1";
	if (real != NULL) {
		E.b.real = true;
		snprintf(E.b.brokers, sizeof(E.b.brokers), "%s", real);
		E.topics[4] = "lunamatch.ingest.dlq.v1";
		return 0;
	}
	const char *env[] = {"LUNAMATCH_TOPIC_DLQ=" DEV_DLQ, NULL};
	if (lmt_devkafka_start(&E.b, DEV_PARTITIONS, env) != LM_OK)
		return -1;
	E.topics[4] = DEV_DLQ;
	return 0;
}

static int
group_teardown(void **state)
{
	(void) state;
	lmt_broker_close(&E.b);
	return 0;
}

/* The four topics exist; on devkafka with the configured names and count. */
static void
test_topics(void **state)
{
	lmt_producer *prod = new_producer();
	rd_kafka_t *p = prod->rk;
	char err[512];
	(void) state;

	for (size_t i = 0; i < sizeof(E.topics) / sizeof(E.topics[0]); i++) {
		int n = 0;
		assert_int_equal(
		    lm_kafka_topic_partitions(p, E.topics[i], IO_MS, &n), LM_OK);
		if (E.b.real)
			assert_true(n >= 1);
		else
			assert_int_equal(n, DEV_PARTITIONS);
	}
	int n = 0;
	assert_int_equal(
	    lm_kafka_topic_partitions(p, "lmtest.no-such-topic", IO_MS, &n), LM_ENOENT);
	assert_int_equal(lm_kafka_topic_partitions(p, "bad/name", IO_MS, &n), LM_EINVAL);
	/* Existing topics: success on both brokers (no CreateTopics is sent). */
	assert_int_equal(
	    lm_kafka_create_topics(p, E.topics, 4, 3, IO_MS, err, sizeof(err)), LM_OK);
	lmt_producer_free(prod);
}

/* Topic creation: real brokers create, idempotently; the mock has no
 * controller to ask, so a missing topic times out there. */
static void
test_create_topics(void **state)
{
	lmt_producer *prod = new_producer();
	rd_kafka_t *p = prod->rk;
	char err[512], name[128];
	const char *t[1] = {name};
	const char *bad[1] = {"no spaces"};
	(void) state;

	snprintf(name, sizeof(name), "lmtest.create.%s", E.run);
	assert_int_equal(
	    lm_kafka_create_topics(p, bad, 1, 1, IO_MS, err, sizeof(err)), LM_EINVAL);
	assert_non_null(strstr(err, "no spaces"));
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 1, 0, IO_MS, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 0, 1, IO_MS, err, sizeof(err)), LM_EINVAL);
	if (!E.b.real) {
		assert_int_equal(
		    lm_kafka_create_topics(p, t, 1, 2, 1500, err, sizeof(err)),
		    LM_ETIMEDOUT);
		assert_non_null(strstr(err, name));
		lmt_producer_free(prod);
		return;
	}
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 1, 2, IO_MS, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 1, 5, IO_MS, err, sizeof(err)), LM_OK);
	/* Metadata may lag creation by a moment on a real broker. */
	assert_int_equal(lmt_kafka_wait_topic(p, name, 5000), 2);
	lmt_producer_free(prod);
}

/* Produce with librdkafka, consume with a consumer group, commit; a new
 * member of the group resumes after the committed offsets. */
static void
test_group_roundtrip(void **state)
{
	char group[128], payload[256], got[256];
	lmt_producer *p = new_producer();
	rd_kafka_t *c;
	rd_kafka_topic_partition_list_t *sub;
	bool seen[GROUP_MSGS] = {false};
	int nseen = 0;
	time_t end;
	(void) state;

	snprintf(group, sizeof(group), "lmtest-group-%s", E.run);
	for (int i = 0; i < GROUP_MSGS; i++) {
		snprintf(payload, sizeof(payload), "%s group %d", E.run, i);
		produce(p, E.topics[0], RD_KAFKA_PARTITION_UA, payload);
	}

	c = new_consumer(group);
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, E.topics[0], RD_KAFKA_PARTITION_UA);
	assert_int_equal(rd_kafka_subscribe(c, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
	snprintf(payload, sizeof(payload), "%s group ", E.run);
	end = time(NULL) + IO_MS / 1000;
	while (nseen < GROUP_MSGS && time(NULL) < end) {
		if (!consume_prefixed(c, payload, got, sizeof(got), NULL))
			break;
		int i = atoi(got + strlen(payload));
		assert_in_range(i, 0, GROUP_MSGS - 1);
		if (!seen[i]) {
			seen[i] = true;
			nseen++;
		}
	}
	assert_int_equal(nseen, GROUP_MSGS);
	assert_int_equal(rd_kafka_commit(c, NULL, 0), RD_KAFKA_RESP_ERR_NO_ERROR);

	/* The committed offsets are readable back from the group. */
	rd_kafka_topic_partition_list_t *asg = NULL;
	assert_int_equal(rd_kafka_assignment(c, &asg), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_true(asg->cnt >= 1);
	assert_int_equal(rd_kafka_committed(c, asg, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	int64_t total = 0;
	for (int i = 0; i < asg->cnt; i++)
		total += asg->elems[i].offset > 0 ? asg->elems[i].offset : 0;
	assert_true(total >= GROUP_MSGS);
	rd_kafka_topic_partition_list_destroy(asg);
	assert_int_equal(rd_kafka_consumer_close(c), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_destroy(c);

	/* A new member starts after the commit: the next message of ours it
	 * sees is the one produced now, not a replay. */
	snprintf(payload, sizeof(payload), "%s group after", E.run);
	produce(p, E.topics[0], RD_KAFKA_PARTITION_UA, payload);
	c = new_consumer(group);
	assert_int_equal(rd_kafka_subscribe(c, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
	snprintf(payload, sizeof(payload), "%s group ", E.run);
	assert_true(consume_prefixed(c, payload, got, sizeof(got), NULL));
	assert_string_equal(got + strlen(payload), "after");
	assert_int_equal(rd_kafka_consumer_close(c), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_destroy(c);
	rd_kafka_topic_partition_list_destroy(sub);
	lmt_producer_free(p);
}

/* Runs kcat with args (NULL-terminated) on the test's broker; asserts exit
 * status 0 and returns its output (free with lmt_run_result_free). */
#define KCAT(...) kcat((const char *const[]){__VA_ARGS__, NULL})
static lmt_run_result
kcat(const char *const args[])
{
	const char *argv[16] = {"kcat", "-b", E.b.brokers};
	size_t n = 3;

	for (size_t i = 0; args[i] != NULL; i++) {
		assert_true(n < 15);
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	lmt_run_result r = lmt_run(argv, NULL, NULL, IO_MS);
	assert_int_equal(r.status, 0);
	return r;
}

/* kcat produces a message, librdkafka reads it back. */
static void
test_kcat_produce(void **state)
{
	char *dir = lmt_tmpdir("kcat");
	char payload[256], got[256];
	(void) state;

	snprintf(payload, sizeof(payload), "%s from kcat", E.run);
	const char *file = lmt_write_file(dir, "msg", payload, strlen(payload));
	lmt_run_result r = KCAT("-P", "-t", E.topics[1], "-p", "0", file);
	lmt_run_result_free(&r);

	/* Partition 0 from the beginning, by a group-less consumer. */
	rd_kafka_t *c = new_consumer(NULL);
	lmt_kafka_assign(c, E.topics[1], 1, NULL);
	assert_true(consume_prefixed(c, payload, got, sizeof(got), NULL));
	assert_string_equal(got, payload);
	lmt_kafka_consumer_free(c);
	lmt_rmtree(dir);
	free(dir);
}

/* librdkafka produces a message, kcat -C prints it. */
static void
test_kcat_consume(void **state)
{
	lmt_producer *p = new_producer();
	char payload[256];
	bool found = false;
	(void) state;

	snprintf(payload, sizeof(payload), "%s to kcat", E.run);
	produce(p, E.topics[2], 0, payload);
	lmt_producer_free(p);

	lmt_run_result r = KCAT("-C", "-t", E.topics[2], "-p", "0", "-o", "beginning",
	    "-e", "-q", "-f", "%s\\n");
	char *save = NULL;
	for (char *line = strtok_r(r.out, "\n", &save); line != NULL && !found;
	     line = strtok_r(NULL, "\n", &save))
		found = strcmp(line, payload) == 0;
	assert_true(found);
	lmt_run_result_free(&r);
}

/* kcat -L lists the broker and the topics. */
static void
test_kcat_list(void **state)
{
	int nseen = 0;
	(void) state;

	lmt_run_result r = KCAT("-L");
	for (int i = 0; i < 4; i++) {
		char want[300];
		snprintf(want, sizeof(want), "topic \"%s\"", E.topics[i]);
		nseen += strstr(r.out, want) != NULL;
	}
	assert_int_equal(nseen, 4);
	lmt_run_result_free(&r);
}

/* --help, bad options and stray arguments. */
static void
test_cli(void **state)
{
	lmt_proc *k = NULL;
	lmt_run_result r;
	(void) state;

	if (E.b.real)
		skip();
	const char *help[] = {lmt_bin("lunamatch-devkafka"), "--help", NULL};
	r = lmt_run(help, NULL, NULL, START_MS);
	assert_non_null(strstr(r.out, "--partitions"));
	assert_non_null(strstr(r.out, "5 MiB"));
	assert_int_equal(r.status, 0);
	lmt_run_result_free(&r);

	/* Refused before anything is printed on stdout. */
	const char *bad[] = {lmt_bin("lunamatch-devkafka"), "--partitions", "0", NULL};
	r = lmt_run(bad, NULL, NULL, START_MS);
	assert_string_equal(r.out, "");
	assert_int_equal(r.status, 2);
	lmt_run_result_free(&r);

	const char *stray[] = {lmt_bin("lunamatch-devkafka"), "extra", NULL};
	r = lmt_run(stray, NULL, NULL, START_MS);
	assert_int_equal(r.status, 2);
	lmt_run_result_free(&r);

	const char *nope[] = {"lmtest-no-such-program", NULL};
	assert_int_equal(lmt_proc_start(nope, NULL, &k), LM_ENOENT);
	assert_null(k);
}

/*
 * More than the mock cluster keeps in a partition (7 messages of 900 KB, over
 * its 5 MiB): the oldest are discarded, and devkafka says so and exits with
 * status 3 instead of serving a partition with a hole. The partition is one
 * of many, not the first.
 */
static void
test_lost(void **state)
{
	lmt_broker b = {0};
	int st = -1;
	(void) state;

	if (E.b.real)
		skip();
	const char *const env[] = {"LUNAMATCH_TOPIC_POSTINGS=lmtest.lost", NULL};
	assert_int_equal(lmt_devkafka_start(&b, WATCH_PARTITIONS, env), LM_OK);
	lmt_producer *p = lmt_producer_new(b.brokers, "lmtest", NULL);
	char *big = malloc(900 * 1000);
	assert_non_null(big);
	memset(big, 'x', 900 * 1000);
	for (int i = 0; i < 7; i++)
		lmt_produce(
		    p, "lmtest.lost", WATCH_PARTITIONS - 3, NULL, big, 900 * 1000, NULL);
	assert_int_equal(lmt_producer_flush(p, IO_MS), 7);
	lmt_producer_free(p);
	free(big);
	assert_int_equal(lmt_proc_wait(b.dk, IO_MS, &st), LM_OK);
	assert_int_equal(st, 3);
	lmt_broker_close(&b);
}

/* CPU time (user + system) of pid in clock ticks, from /proc/pid/stat. */
static long long
cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	long long ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The fields after the command name, which ends at the last ')':
	 * state is field 3, utime 14 and stime 15. */
	p = strrchr(buf, ')');
	assert_non_null(p);
	assert_int_equal(
	    sscanf(
	        p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st),
	    2);
	return ut + st;
}

/* Idle with as many partitions as bench_ingest uses, devkafka's watch on
 * lost messages costs next to no CPU (it once kept a tenth of a core
 * busy). */
static void
test_idle_cpu(void **state)
{
	lmt_broker b = {0};
	long long t0, t1;
	double cores;
	(void) state;

	if (E.b.real)
		skip();
	assert_int_equal(lmt_devkafka_start(&b, WATCH_PARTITIONS, NULL), LM_OK);
	sleep(1);
	t0 = cpu_ticks(lmt_proc_pid(b.dk));
	sleep(3);
	t1 = cpu_ticks(lmt_proc_pid(b.dk));
	cores = (double) (t1 - t0) / (double) sysconf(_SC_CLK_TCK) / 3.0;
	if (cores > 0.04)
		fail_msg("idle devkafka with %d partitions used %.3f cores",
		    WATCH_PARTITIONS, cores);
	lmt_proc_stop(&b.dk, 10000);
	lmt_broker_close(&b);
}

/* SIGTERM stops devkafka with status 0 within a few seconds. Runs last. */
static void
test_sigterm(void **state)
{
	(void) state;

	if (E.b.real)
		skip();
	lmt_proc_stop(&E.b.dk, 10000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_topics),
	    cmocka_unit_test(test_create_topics),
	    cmocka_unit_test(test_group_roundtrip),
	    cmocka_unit_test(test_kcat_produce),
	    cmocka_unit_test(test_kcat_consume),
	    cmocka_unit_test(test_kcat_list),
	    cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_lost),
	    cmocka_unit_test(test_idle_cpu),
	    cmocka_unit_test(test_sigterm),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
