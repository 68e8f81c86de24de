/*
 * test_devkafka.c - Kafka round trips against lunamatch-devkafka or a real
 * Apache Kafka broker.
 *
 * Without LUNAMATCH_TEST_BROKERS (or with it empty) the test starts
 * lunamatch-devkafka as a child process, reads its bootstrap address from the
 * first stdout line and also checks the program itself: configured topics
 * and partitions, --help, bad options, clean exit on SIGTERM. With
 * LUNAMATCH_TEST_BROKERS=host:port (the broker that scripts/kafka.sh starts)
 * it runs the same produce/consume round trips against that broker, and
 * checks topic creation through the admin API.
 *
 * Round trips: librdkafka producer -> consumer group with committed offsets
 * (and a restarted member resuming after them), kcat -P -> librdkafka,
 * librdkafka -> kcat -C, kcat -L. Every message carries a run id so that
 * messages of earlier runs on a long-lived broker are ignored.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "proc.h"

#define DEV_PARTITIONS 2
#define DEV_DLQ        "lmtest.dlq.v1"
#define START_MS       30000 /* devkafka start-up, generous for sanitizer builds */
#define IO_MS          30000 /* longest wait for one message to come back */
#define GROUP_MSGS     5

static struct {
	bool real; /* LUNAMATCH_TEST_BROKERS given */
	char brokers[512];
	lmt_proc *dk; /* the devkafka child, when not real */
	char run[64]; /* unique per run: tags our messages */
	const char *topics[4];
	int delivered, failed;
} E;

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) opaque;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		E.delivered++;
	else
		E.failed++;
}

/* A producer, or a consumer in `group` (NULL: a private group, for
 * assign()). Waits until the broker answers metadata. */
static rd_kafka_t *
new_client(rd_kafka_type_t type, const char *group)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[512];

	assert_int_equal(lm_kafka_conf(E.brokers, "lmtest", &c, err, sizeof(err)), LM_OK);
	if (type == RD_KAFKA_PRODUCER) {
		rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
		assert_int_equal(
		    lm_kafka_set(c, "linger.ms", "0", err, sizeof(err)), LM_OK);
	} else {
		/* The high-level consumer needs a group even for assign(). */
		char reader[128];
		snprintf(reader, sizeof(reader), "lmtest-reader-%s", E.run);
		assert_int_equal(
		    lm_kafka_set(c, "group.id", group ? group : reader, err, sizeof(err)),
		    LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "enable.auto.commit", "false", err, sizeof(err)),
		    LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "session.timeout.ms", "6000", err, sizeof(err)),
		    LM_OK);
		assert_int_equal(
		    lm_kafka_set(c, "auto.offset.reset", "earliest", err, sizeof(err)),
		    LM_OK);
	}
	rk = rd_kafka_new(type, c, err, sizeof(err));
	if (rk == NULL)
		fail_msg("rd_kafka_new: %s", err);
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_poll_set_consumer(rk);
	assert_int_equal(lm_kafka_wait_metadata(rk, START_MS), LM_OK);
	return rk;
}

static void
produce(rd_kafka_t *p, const char *topic, int partition, const char *payload)
{
	int before = E.delivered;
	rd_kafka_resp_err_t e =
	    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
	        RD_KAFKA_V_VALUE((void *) payload, strlen(payload)),
	        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(p, IO_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(E.failed, 0);
	assert_int_equal(E.delivered, before + 1);
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
	const char *b = getenv("LUNAMATCH_TEST_BROKERS");
	char line[512];
	(void) state;

	snprintf(E.run, sizeof(E.run), "run-%ld-%ld", (long) getpid(), (long) time(NULL));
	if (b != NULL && *b != '\0') {
		E.real = true;
		snprintf(E.brokers, sizeof(E.brokers), "%s", b);
		E.topics[0] = "lunamatch.postings.v1";
		E.topics[1] = "lunamatch.profiles.v1";
		E.topics[2] = "lunamatch.matches.v1";
		E.topics[3] = "lunamatch.ingest.dlq.v1";
		return 0;
	}
	const char *argv[] = {lmt_bin("lunamatch-devkafka"), "--partitions", "2", NULL};
	const char *env[] = {"LUNAMATCH_TOPIC_DLQ=" DEV_DLQ, NULL};
	if (lmt_proc_start(argv, env, &E.dk) != LM_OK) {
		fprintf(stderr, "cannot start %s\n", argv[0]);
		return -1;
	}
	if (lmt_proc_readline(E.dk, line, sizeof(line), START_MS) != LM_OK ||
	    strncmp(line, "127.0.0.1:", 10) != 0) {
		fprintf(stderr, "devkafka printed no bootstrap address: \"%s\"\n", line);
		return -1;
	}
	snprintf(E.brokers, sizeof(E.brokers), "%s", line);
	E.topics[0] = "lunamatch.postings.v1";
	E.topics[1] = "lunamatch.profiles.v1";
	E.topics[2] = "lunamatch.matches.v1";
	E.topics[3] = DEV_DLQ;
	return 0;
}

static int
group_teardown(void **state)
{
	(void) state;
	lmt_proc_free(E.dk);
	E.dk = NULL;
	return 0;
}

/* The four topics exist; on devkafka with the configured names and count. */
static void
test_topics(void **state)
{
	rd_kafka_t *p = new_client(RD_KAFKA_PRODUCER, NULL);
	char err[512];
	(void) state;

	for (int i = 0; i < 4; i++) {
		int n = 0;
		assert_int_equal(
		    lm_kafka_topic_partitions(p, E.topics[i], IO_MS, &n), LM_OK);
		if (E.real)
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
	rd_kafka_destroy(p);
}

/* Topic creation: real brokers create, idempotently; the mock has no
 * controller to ask, so a missing topic times out there. */
static void
test_create_topics(void **state)
{
	rd_kafka_t *p = new_client(RD_KAFKA_PRODUCER, NULL);
	char err[512], name[128];
	const char *t[1] = {name};
	const char *bad[1] = {"no spaces"};
	int n = 0;
	(void) state;

	snprintf(name, sizeof(name), "lmtest.create.%s", E.run);
	assert_int_equal(
	    lm_kafka_create_topics(p, bad, 1, 1, IO_MS, err, sizeof(err)), LM_EINVAL);
	assert_non_null(strstr(err, "no spaces"));
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 1, 0, IO_MS, err, sizeof(err)), LM_EINVAL);
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 0, 1, IO_MS, err, sizeof(err)), LM_EINVAL);
	if (!E.real) {
		assert_int_equal(
		    lm_kafka_create_topics(p, t, 1, 2, 1500, err, sizeof(err)),
		    LM_ETIMEDOUT);
		assert_non_null(strstr(err, name));
		rd_kafka_destroy(p);
		return;
	}
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 1, 2, IO_MS, err, sizeof(err)), LM_OK);
	assert_int_equal(
	    lm_kafka_create_topics(p, t, 1, 5, IO_MS, err, sizeof(err)), LM_OK);
	/* Metadata may lag creation by a moment on a real broker. */
	for (int i = 0; i < 50; i++) {
		if (lm_kafka_topic_partitions(p, name, IO_MS, &n) == LM_OK)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(n, 2);
	rd_kafka_destroy(p);
}

/* Produce with librdkafka, consume with a consumer group, commit; a new
 * member of the group resumes after the committed offsets. */
static void
test_group_roundtrip(void **state)
{
	char group[128], payload[256], got[256];
	rd_kafka_t *p = new_client(RD_KAFKA_PRODUCER, NULL);
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

	c = new_client(RD_KAFKA_CONSUMER, group);
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
	c = new_client(RD_KAFKA_CONSUMER, group);
	assert_int_equal(rd_kafka_subscribe(c, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
	snprintf(payload, sizeof(payload), "%s group ", E.run);
	assert_true(consume_prefixed(c, payload, got, sizeof(got), NULL));
	assert_string_equal(got + strlen(payload), "after");
	assert_int_equal(rd_kafka_consumer_close(c), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_destroy(c);
	rd_kafka_topic_partition_list_destroy(sub);
	rd_kafka_destroy(p);
}

/* Assigns partition 0 of topic from the beginning to a group-less consumer. */
static rd_kafka_t *
partition_reader(const char *topic)
{
	rd_kafka_t *c = new_client(RD_KAFKA_CONSUMER, NULL);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, topic, 0)->offset =
	    RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(l);
	return c;
}

/* kcat produces a message, librdkafka reads it back. */
static void
test_kcat_produce(void **state)
{
	char *dir = lmt_tmpdir("kcat");
	char file[4200], payload[256], got[256];
	int st = -1;
	lmt_proc *k = NULL;
	FILE *f;
	(void) state;

	snprintf(payload, sizeof(payload), "%s from kcat", E.run);
	snprintf(file, sizeof(file), "%s/msg", dir);
	assert_non_null(f = fopen(file, "w"));
	fputs(payload, f);
	fclose(f);
	const char *argv[] = {
	    "kcat", "-b", E.brokers, "-P", "-t", E.topics[1], "-p", "0", file, NULL};
	assert_int_equal(lmt_proc_start(argv, NULL, &k), LM_OK);
	assert_int_equal(lmt_proc_wait(k, IO_MS, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(k);

	rd_kafka_t *c = partition_reader(E.topics[1]);
	assert_true(consume_prefixed(c, payload, got, sizeof(got), NULL));
	assert_string_equal(got, payload);
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	lmt_rmtree(dir);
	free(dir);
}

/* librdkafka produces a message, kcat -C prints it. */
static void
test_kcat_consume(void **state)
{
	rd_kafka_t *p = new_client(RD_KAFKA_PRODUCER, NULL);
	char payload[256], line[512];
	bool found = false;
	lmt_proc *k = NULL;
	int st = -1;
	(void) state;

	snprintf(payload, sizeof(payload), "%s to kcat", E.run);
	produce(p, E.topics[2], 0, payload);
	rd_kafka_destroy(p);

	const char *argv[] = {"kcat", "-b", E.brokers, "-C", "-t", E.topics[2], "-p", "0",
	    "-o", "beginning", "-e", "-q", "-f", "%s\\n", NULL};
	assert_int_equal(lmt_proc_start(argv, NULL, &k), LM_OK);
	for (int i = 0; i < 100000 && !found; i++) {
		int rv = lmt_proc_readline(k, line, sizeof(line), IO_MS);
		if (rv == LM_ECLOSED || rv == LM_ETIMEDOUT)
			break;
		found = strcmp(line, payload) == 0;
	}
	assert_true(found);
	assert_int_equal(lmt_proc_wait(k, IO_MS, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(k);
}

/* kcat -L lists the broker and the topics. */
static void
test_kcat_list(void **state)
{
	char line[1024];
	bool seen[4] = {false};
	int nseen = 0, st = -1;
	lmt_proc *k = NULL;
	(void) state;

	const char *argv[] = {"kcat", "-b", E.brokers, "-L", NULL};
	assert_int_equal(lmt_proc_start(argv, NULL, &k), LM_OK);
	for (int n = 0; n < 100000; n++) {
		if (lmt_proc_readline(k, line, sizeof(line), IO_MS) != LM_OK)
			break;
		for (int i = 0; i < 4; i++) {
			char want[300];
			snprintf(want, sizeof(want), "topic \"%s\"", E.topics[i]);
			if (!seen[i] && strstr(line, want) != NULL) {
				seen[i] = true;
				nseen++;
			}
		}
	}
	assert_int_equal(nseen, 4);
	assert_int_equal(lmt_proc_wait(k, IO_MS, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(k);
}

/* --help, bad options and stray arguments. */
static void
test_cli(void **state)
{
	char line[1024];
	bool partitions = false;
	lmt_proc *k = NULL;
	int st = -1;
	(void) state;

	if (E.real)
		skip();
	const char *help[] = {lmt_bin("lunamatch-devkafka"), "--help", NULL};
	assert_int_equal(lmt_proc_start(help, NULL, &k), LM_OK);
	for (int n = 0; n < 1000; n++) {
		if (lmt_proc_readline(k, line, sizeof(line), START_MS) != LM_OK)
			break;
		partitions = partitions || strstr(line, "--partitions") != NULL;
	}
	assert_true(partitions);
	assert_int_equal(lmt_proc_wait(k, START_MS, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(k);

	const char *bad[] = {lmt_bin("lunamatch-devkafka"), "--partitions", "0", NULL};
	assert_int_equal(lmt_proc_start(bad, NULL, &k), LM_OK);
	assert_int_equal(lmt_proc_readline(k, line, sizeof(line), START_MS), LM_ECLOSED);
	assert_int_equal(lmt_proc_wait(k, START_MS, &st), LM_OK);
	assert_int_equal(st, 2);
	lmt_proc_free(k);

	const char *stray[] = {lmt_bin("lunamatch-devkafka"), "extra", NULL};
	assert_int_equal(lmt_proc_start(stray, NULL, &k), LM_OK);
	assert_int_equal(lmt_proc_wait(k, START_MS, &st), LM_OK);
	assert_int_equal(st, 2);
	lmt_proc_free(k);

	const char *nope[] = {"lmtest-no-such-program", NULL};
	assert_int_equal(lmt_proc_start(nope, NULL, &k), LM_ENOENT);
	assert_null(k);
}

/* SIGTERM stops devkafka with status 0 within a few seconds. Runs last. */
static void
test_sigterm(void **state)
{
	int st = -1;
	(void) state;

	if (E.real)
		skip();
	assert_int_equal(lmt_proc_signal(E.dk, SIGTERM), LM_OK);
	assert_int_equal(lmt_proc_wait(E.dk, 10000, &st), LM_OK);
	assert_int_equal(st, 0);
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
	    cmocka_unit_test(test_sigterm),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
