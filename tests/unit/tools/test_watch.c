/*
 * test_watch.c - what `lunamatch watch` prints for one Kafka message
 * (lm_cli_watch_print), fed messages built here as the consumer hands them
 * out, and what the reading commands say when the look-up of their topic
 * fails (lm_cli_topic_status). Following a topic is tested against a
 * broker in tests/integration/test_cli.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cli.h"
#include "lmtest.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/pb.h"
#include "lunamatch/v1/events.pb-c.h"

LMT_TMPDIR_FIXTURES("tools-watch")

/* What lm_cli_watch_print(event, json) writes on stdout, in *out (a
 * malloc'd string); returns its result. */
static int
print_captured(const Lunamatch__V1__MatchEvent *e, bool json, char **out)
{
	rd_kafka_message_t m = {0};
	uint8_t *pb;
	size_t len;
	char path[4096];
	int saved, fd, rv;

	assert_int_equal(lm_pb_encode(&e->base, &pb, &len), LM_OK);
	m.payload = pb;
	m.len = len;
	m.partition = 2;
	m.offset = 7;
	snprintf(path, sizeof(path), "%s/stdout", dir);
	fflush(stdout);
	assert_true((saved = dup(STDOUT_FILENO)) >= 0);
	assert_non_null(freopen(path, "w", stdout));
	rv = lm_cli_watch_print(&m, json);
	fflush(stdout);
	assert_true((fd = dup2(saved, STDOUT_FILENO)) >= 0);
	close(saved);
	clearerr(stdout);
	free(pb);
	*out = lmt_read_file(path, NULL);
	return rv;
}

static void
event_init(Lunamatch__V1__MatchEvent *e, double score)
{
	lunamatch__v1__match_event__init(e);
	e->event_id = "0123456789abcdef0123456789abcdef";
	e->type = LUNAMATCH__V1__MATCH_EVENT_TYPE__MATCH_EVENT_TYPE_NEW_MATCH;
	e->candidate_id = "c1";
	e->job_id = "j1";
	e->score = score;
	e->model_version = "m1";
	e->created_at = 1700000000;
}

/* An event with a score that JSON numbers cannot carry is written in the
 * proto3 JSON form of such numbers, and the watch goes on. */
static void
test_json_nonfinite_score(void **state)
{
	(void) state;
	static const struct {
		double score;
		const char *text;
	} cases[] = {{NAN, "NaN"}, {INFINITY, "Infinity"}, {-INFINITY, "-Infinity"}};
	Lunamatch__V1__MatchEvent e;
	char *out;
	json_t *o;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		event_init(&e, cases[i].score);
		assert_int_equal(print_captured(&e, true, &out), 0);
		o = json_loads(out, 0, NULL);
		if (o == NULL)
			fail_msg("not one JSON line: %s", out);
		assert_string_equal(
		    json_string_value(json_object_get(o, "score")), cases[i].text);
		assert_string_equal(
		    json_string_value(json_object_get(o, "job_id")), "j1");
		json_decref(o);
		free(out);
	}

	/* Said on stderr in both forms, the table's too. */
	for (int json = 0; json < 2; json++) {
		lmt_capture cap;
		char *err;
		event_init(&e, NAN);
		lmt_stderr_begin(&cap);
		assert_int_equal(print_captured(&e, json, &out), 0);
		err = lmt_stderr_end(&cap);
		if (strstr(err, "offset 7: the event's score is not a finite number") ==
		    NULL)
			fail_msg("json %d: stderr: %s", json, err);
		free(err);
		free(out);
	}

	/* A finite score stays a number. */
	event_init(&e, 0.75);
	assert_int_equal(print_captured(&e, true, &out), 0);
	assert_non_null(o = json_loads(out, 0, NULL));
	assert_true(json_real_value(json_object_get(o, "score")) == 0.75);
	json_decref(o);
	free(out);
}

/* What lm_cli_topic_status(rc) writes on stderr, in *err (a malloc'd
 * string); returns its result. */
static int
topic_status_captured(int rc, char **err)
{
	char path[4096];
	int saved, fd, rv;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fflush(stderr);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_non_null(freopen(path, "w", stderr));
	rv = lm_cli_topic_status("watch", "127.0.0.1:42000", "lmt.events", rc);
	fflush(stderr);
	assert_true((fd = dup2(saved, STDERR_FILENO)) >= 0);
	close(saved);
	clearerr(stderr);
	*err = lmt_read_file(path, NULL);
	assert_non_null(*err);
	return rv;
}

/*
 * A topic that cannot be looked up is named in the error. One this client
 * is not authorized for is not "cannot reach Kafka" (Kafka answered) and
 * not unavailable (a retry does not help: exit 1); one without a leader
 * for now is unavailable (exit 3), and said to be so. Both used to read
 * "cannot reach Kafka at <brokers>: ..." without the topic.
 */
static void
test_topic_status(void **state)
{
	(void) state;
	char *err;

	assert_int_equal(topic_status_captured(LM_EACCES, &err), LM_CLI_EXIT_FAIL);
	if (strstr(err, "lmt.events") == NULL || strstr(err, "not authorized") == NULL ||
	    strstr(err, "cannot reach") != NULL)
		fail_msg("EACCES: %s", err);
	free(err);

	assert_int_equal(topic_status_captured(LM_EBUSY, &err), LM_CLI_EXIT_UNAVAILABLE);
	if (strstr(err, "lmt.events") == NULL || strstr(err, "no leader") == NULL ||
	    strstr(err, "cannot reach") != NULL)
		fail_msg("EBUSY: %s", err);
	free(err);

	assert_int_equal(topic_status_captured(LM_ENOENT, &err), LM_CLI_EXIT_FAIL);
	if (strstr(err, "topic lmt.events does not exist") == NULL)
		fail_msg("ENOENT: %s", err);
	free(err);

	/* No answer: Kafka cannot be reached; the topic is named too. */
	assert_int_equal(
	    topic_status_captured(LM_ETIMEDOUT, &err), LM_CLI_EXIT_UNAVAILABLE);
	if (strstr(err, "cannot reach Kafka at 127.0.0.1:42000") == NULL ||
	    strstr(err, "lmt.events") == NULL)
		fail_msg("ETIMEDOUT: %s", err);
	free(err);
}

/*
 * An error that ends a read names the topic: fetches of the mock cluster's
 * topic answered "not authorized" end the read (-1) with a message naming
 * it. It read "lunamatch watch: Broker: Topic authorization failed", which
 * does not say of which topic (--topic-* may point anywhere).
 */
static void
test_read_error_names_topic(void **state)
{
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_t *mrk;
	rd_kafka_mock_cluster_t *mc;
	lm_cli_consumer *c = NULL;
	lm_config cfg;
	char errbuf[256], path[4096];
	int saved, fd, rv = 0;
	(void) state;

	assert_int_equal(
	    lm_kafka_conf(NULL, "lmtest-mock", &conf, errbuf, sizeof(errbuf)), LM_OK);
	assert_non_null(
	    mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, sizeof(errbuf)));
	assert_non_null(mc = rd_kafka_mock_cluster_new(mrk, 1));
	assert_int_equal(rd_kafka_mock_topic_create(mc, "lmt.watch-read", 1, 1), 0);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(
	    cfg.brokers, sizeof(cfg.brokers), "%s", rd_kafka_mock_cluster_bootstraps(mc));
	assert_int_equal(
	    rd_kafka_mock_broker_push_request_error_rtts(mc, 1, 1 /* Fetch */, 3,
	        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0,
	        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0,
	        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0),
	    0);

	snprintf(path, sizeof(path), "%s/read-stderr", dir);
	fflush(stderr);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_non_null(freopen(path, "w", stderr));
	int orc = lm_cli_consumer_open(
	    &cfg, "watch", "lmt.watch-read", RD_KAFKA_OFFSET_BEGINNING, false, 10000, &c);
	int64_t deadline = lm_clock_ms() + 20000;
	while (orc == LM_CLI_EXIT_OK && rv == 0 && lm_clock_ms() < deadline) {
		rd_kafka_message_t *m = NULL;
		rv = lm_cli_consumer_next(c, 200, &m);
		if (rv == 1)
			rd_kafka_message_destroy(m);
	}
	fflush(stderr);
	assert_true((fd = dup2(saved, STDERR_FILENO)) >= 0);
	close(saved);
	clearerr(stderr);
	lm_cli_consumer_close(c);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(mrk);

	char *err = lmt_read_file(path, NULL);
	assert_non_null(err);
	assert_int_equal(orc, LM_CLI_EXIT_OK);
	if (rv != -1 || strstr(err, "topic lmt.watch-read") == NULL ||
	    strstr(err, "uthorization") == NULL)
		fail_msg("read returned %d; stderr: %s", rv, err);
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_nonfinite_score),
	    cmocka_unit_test(test_topic_status),
	    cmocka_unit_test(test_read_error_names_topic),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
