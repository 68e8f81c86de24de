/*
 * test_kafka.c - the shared librdkafka layer: the idempotent producer every
 * durable sender builds (lm_kafka_producer_new) carries the settings its
 * contract names, takes extra settings, and refuses bad options with a
 * reason and no handle; a fatal error of such a producer is found
 * (lm_kafka_producer_dead). Those handles contact no broker. Topic
 * metadata (lm_kafka_topic_partitions, lm_kafka_topics_partitions,
 * lm_kafka_create_topics) and the partitions' log offsets
 * (lm_kafka_list_offsets) are read from librdkafka's mock cluster on
 * 127.0.0.1, which lists topics with the errors a real cluster gives.
 * A message's content-type header (lm_kafka_content_type) is the last one
 * whose name is content-type in any case.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"

static void
dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) m;
	(void) opaque;
}

static void
conf_is(rd_kafka_t *rk, const char *key, const char *want)
{
	char v[128];
	size_t n = sizeof(v);
	assert_int_equal(
	    rd_kafka_conf_get(rd_kafka_conf(rk), key, v, &n), RD_KAFKA_CONF_OK);
	assert_string_equal(v, want);
}

static void
test_producer(void **state)
{
	static const char *const extra[] = {"linger.ms", "7", NULL};
	lm_kafka_producer_opts o = {.brokers = "127.0.0.1:9",
	    .client_id = "test-producer",
	    .message_timeout_ms = 4321,
	    .extra = extra,
	    .dr_msg_cb = dr};
	rd_kafka_t *rk = NULL;
	char err[256];
	(void) state;

	assert_int_equal(lm_kafka_producer_new(&o, &rk, err, sizeof(err)), LM_OK);
	assert_non_null(rk);
	conf_is(rk, "enable.idempotence", "true");
	conf_is(rk, "acks", "-1"); /* "all" */
	conf_is(rk, "message.timeout.ms", "4321");
	conf_is(rk, "queue.buffering.max.kbytes", "65536");
	conf_is(rk, "linger.ms", "7");
	conf_is(rk, "client.id", "test-producer");
	rd_kafka_destroy(rk);
}

static void
test_producer_bad_options(void **state)
{
	static const char *const bad[] = {"no.such.property", "1", NULL};
	static const char *const odd[] = {"linger.ms", NULL};
	lm_kafka_producer_opts o = {.brokers = "127.0.0.1:9", .message_timeout_ms = 0};
	rd_kafka_t *rk = (void *) 1;
	char err[256] = "";
	(void) state;

	assert_int_equal(lm_kafka_producer_new(&o, &rk, err, sizeof(err)), LM_EINVAL);
	assert_null(rk);
	assert_non_null(strstr(err, "timeout"));

	o.message_timeout_ms = 1000;
	o.extra = bad;
	rk = (void *) 1;
	assert_int_equal(lm_kafka_producer_new(&o, &rk, err, sizeof(err)), LM_EINVAL);
	assert_null(rk);
	assert_non_null(strstr(err, "no.such.property"));

	o.extra = odd;
	assert_int_equal(lm_kafka_producer_new(&o, &rk, err, sizeof(err)), LM_EINVAL);
	assert_null(rk);

	o.extra = NULL;
	o.brokers = "";
	assert_int_equal(lm_kafka_producer_new(&o, &rk, err, sizeof(err)), LM_EINVAL);
	assert_null(rk);
}

/* A producer is dead only after a fatal error, raised here through
 * librdkafka's own test hook on the real handle. */
static void
test_producer_dead(void **state)
{
	lm_kafka_producer_opts o = {.brokers = "127.0.0.1:9",
	    .client_id = "test-producer",
	    .message_timeout_ms = 1000,
	    .dr_msg_cb = dr};
	rd_kafka_t *rk = NULL;
	char err[256];
	(void) state;

	assert_false(lm_kafka_producer_dead(NULL, "test.fatal"));
	assert_int_equal(lm_kafka_producer_new(&o, &rk, err, sizeof(err)), LM_OK);
	assert_false(lm_kafka_producer_dead(rk, "test.fatal"));
	assert_int_equal(
	    rd_kafka_test_fatal_error(
	        rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test fatal"),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_true(lm_kafka_producer_dead(rk, "test.fatal"));
	rd_kafka_destroy(rk);
}

/*
 * A topic the cluster lists with an error is not a missing topic: a topic
 * without a leader (being created, or its broker down) is a transient
 * LM_EBUSY, one the client may not see LM_EACCES; only UNKNOWN_TOPIC_OR_PART
 * (a topic being deleted) is LM_ENOENT. lm_kafka_topics_partitions gives
 * each of several topics its own result from one read. lm_kafka_create_topics
 * takes a leaderless topic as existing and refuses one it may not see.
 */
static void
test_topic_errors(void **state)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *owner, *rk;
	rd_kafka_mock_cluster_t *mc;
	char err[512] = "";
	int n = -1;
	(void) state;

	assert_int_equal(lm_kafka_conf(NULL, "lmtest-mock", &c, err, sizeof(err)), LM_OK);
	assert_non_null(owner = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err)));
	assert_non_null(mc = rd_kafka_mock_cluster_new(owner, 1));
	assert_int_equal(
	    rd_kafka_mock_topic_create(mc, "lmt.ok", 3, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_mock_topic_create(mc, "lmt.leaderless", 2, 1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_mock_topic_create(mc, "lmt.denied", 2, 1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_mock_topic_create(mc, "lmt.deleting", 2, 1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_mock_topic_set_error(
	    mc, "lmt.leaderless", RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
	rd_kafka_mock_topic_set_error(
	    mc, "lmt.denied", RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	rd_kafka_mock_topic_set_error(
	    mc, "lmt.deleting", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);

	c = NULL;
	assert_int_equal(lm_kafka_conf(rd_kafka_mock_cluster_bootstraps(mc),
	                     "lmtest-client", &c, err, sizeof(err)),
	    LM_OK);
	assert_non_null(rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err)));
	assert_int_equal(lm_kafka_wait_metadata(rk, 10000), LM_OK);

	assert_int_equal(lm_kafka_topic_partitions(rk, "lmt.ok", 10000, &n), LM_OK);
	assert_int_equal(n, 3);
	n = -1;
	assert_int_equal(lm_kafka_topic_partitions(rk, "lmt.none", 10000, &n), LM_ENOENT);
	assert_int_equal(
	    lm_kafka_topic_partitions(rk, "lmt.deleting", 10000, &n), LM_ENOENT);
	assert_int_equal(
	    lm_kafka_topic_partitions(rk, "lmt.leaderless", 10000, &n), LM_EBUSY);
	assert_int_equal(
	    lm_kafka_topic_partitions(rk, "lmt.denied", 10000, &n), LM_EACCES);
	assert_int_equal(n, -1);

	/* Several topics from one read: each with its own result, a count
	 * only where there is one. */
	static const char *const several[] = {"lmt.ok", "lmt.none", "lmt.denied"};
	int counts[3] = {-1, -1, -1}, rvs[3] = {-1, -1, -1};
	assert_int_equal(
	    lm_kafka_topics_partitions(rk, several, 3, 10000, counts, rvs), LM_OK);
	assert_int_equal(rvs[0], LM_OK);
	assert_int_equal(counts[0], 3);
	assert_int_equal(rvs[1], LM_ENOENT);
	assert_int_equal(rvs[2], LM_EACCES);
	assert_int_equal(counts[1], -1);
	assert_int_equal(counts[2], -1);
	static const char *const bad[] = {"lmt.ok", "bad/name"};
	assert_int_equal(
	    lm_kafka_topics_partitions(rk, bad, 2, 10000, counts, rvs), LM_EINVAL);
	assert_int_equal(
	    lm_kafka_topics_partitions(rk, several, 0, 10000, counts, rvs), LM_EINVAL);

	/* Existing topics, the leaderless one included, need no CreateTopics
	 * (which the mock cluster would never answer). */
	static const char *const exist[] = {"lmt.ok", "lmt.leaderless"};
	assert_int_equal(
	    lm_kafka_create_topics(rk, exist, 2, 1, 3000, err, sizeof(err)), LM_OK);
	static const char *const denied[] = {"lmt.ok", "lmt.denied"};
	err[0] = '\0';
	assert_int_equal(
	    lm_kafka_create_topics(rk, denied, 2, 1, 3000, err, sizeof(err)), LM_EACCES);
	if (strstr(err, "lmt.denied") == NULL || strstr(err, "uthoriz") == NULL)
		fail_msg("error \"%s\" does not name the topic and the cause", err);

	rd_kafka_destroy(rk);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
}

/*
 * lm_kafka_list_offsets reads every partition's log end and start from
 * one request, the same offsets as a watermark query of each partition;
 * a partition the cluster does not have fails the call and is named by
 * its index; bad arguments are refused.
 */
static void
test_list_offsets(void **state)
{
	static const int sent[3] = {5, 2, 0};
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *owner, *rk;
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_topic_partition_list_t *l;
	char err[512] = "";
	int bad = 7;
	(void) state;

	assert_int_equal(lm_kafka_conf(NULL, "lmtest-mock", &c, err, sizeof(err)), LM_OK);
	assert_non_null(owner = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err)));
	assert_non_null(mc = rd_kafka_mock_cluster_new(owner, 1));
	assert_int_equal(
	    rd_kafka_mock_topic_create(mc, "lmt.ends", 3, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
	c = NULL;
	assert_int_equal(lm_kafka_conf(rd_kafka_mock_cluster_bootstraps(mc),
	                     "lmtest-client", &c, err, sizeof(err)),
	    LM_OK);
	rd_kafka_conf_set_dr_msg_cb(c, dr);
	assert_non_null(rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err)));
	for (int p = 0; p < 3; p++)
		for (int i = 0; i < sent[p]; i++)
			assert_int_equal(
			    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("lmt.ends"),
			        RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_VALUE("x", 1),
			        RD_KAFKA_V_END),
			    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

	l = rd_kafka_topic_partition_list_new(3);
	for (int p = 2; p >= 0; p--) /* in another order than the partitions' */
		rd_kafka_topic_partition_list_add(l, "lmt.ends", p);
	assert_int_equal(
	    lm_kafka_list_offsets(rk, l, RD_KAFKA_OFFSET_END, 10000, &bad), LM_OK);
	assert_int_equal(bad, -1);
	for (int i = 0; i < 3; i++) {
		int64_t lo = -1, hi = -1;
		int32_t p = l->elems[i].partition;
		assert_int_equal(
		    rd_kafka_query_watermark_offsets(rk, "lmt.ends", p, &lo, &hi, 10000),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
		assert_int_equal(l->elems[i].offset, sent[p]);
		assert_int_equal(l->elems[i].offset, hi);
	}
	assert_int_equal(
	    lm_kafka_list_offsets(rk, l, RD_KAFKA_OFFSET_BEGINNING, 10000, NULL), LM_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(l->elems[i].offset, 0);

	/* A partition the topic does not have: named, and the others read. */
	rd_kafka_topic_partition_list_add(l, "lmt.ends", 9);
	assert_int_not_equal(
	    lm_kafka_list_offsets(rk, l, RD_KAFKA_OFFSET_END, 3000, &bad), LM_OK);
	assert_int_equal(bad, 3);
	assert_int_not_equal(l->elems[3].err, RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(l->elems[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
		assert_int_equal(l->elems[i].offset, sent[l->elems[i].partition]);
	}

	assert_int_equal(lm_kafka_list_offsets(rk, l, 42, 10000, &bad), LM_EINVAL);
	assert_int_equal(
	    lm_kafka_list_offsets(NULL, l, RD_KAFKA_OFFSET_END, 10000, &bad), LM_EINVAL);
	assert_int_equal(
	    lm_kafka_list_offsets(rk, l, RD_KAFKA_OFFSET_END, -1, &bad), LM_EINVAL);
	rd_kafka_topic_partition_list_destroy(l);
	l = rd_kafka_topic_partition_list_new(1);
	assert_int_equal(
	    lm_kafka_list_offsets(rk, l, RD_KAFKA_OFFSET_END, 10000, &bad), LM_EINVAL);
	rd_kafka_topic_partition_list_destroy(l);

	rd_kafka_destroy(rk);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(owner);
}

/* h's content type is want (NULL: none). */
static void
content_type_is(const rd_kafka_headers_t *h, const char *want)
{
	const void *v = (void *) 1;
	size_t n = 1;

	lm_kafka_content_type(h, &v, &n);
	if (want == NULL) {
		assert_null(v);
		assert_int_equal(n, 0);
		return;
	}
	assert_non_null(v);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
}

static void
test_content_type(void **state)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	(void) state;

	content_type_is(NULL, NULL);
	content_type_is(h, NULL);
	assert_int_equal(rd_kafka_header_add(h, "content-types", -1, "a/b", -1), 0);
	assert_int_equal(rd_kafka_header_add(h, "schema", -1, "c/d", -1), 0);
	content_type_is(h, NULL);
	/* The name in any case. */
	assert_int_equal(
	    rd_kafka_header_add(h, "Content-Type", -1, "application/json", -1), 0);
	content_type_is(h, "application/json");
	/* The last of several, whatever the case of either name; the value
	 * of the length it was given. */
	assert_int_equal(
	    rd_kafka_header_add(h, "CONTENT-TYPE", -1, "text/plain; q=1", 10), 0);
	content_type_is(h, "text/plain");
	assert_int_equal(
	    rd_kafka_header_add(h, "content-type", -1, "application/json", -1), 0);
	content_type_is(h, "application/json");
	/* A header without a value: present and empty. */
	assert_int_equal(rd_kafka_header_add(h, "content-TYPE", -1, NULL, 0), 0);
	content_type_is(h, "");
	rd_kafka_headers_destroy(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_producer),
	    cmocka_unit_test(test_producer_bad_options),
	    cmocka_unit_test(test_producer_dead),
	    cmocka_unit_test(test_topic_errors),
	    cmocka_unit_test(test_list_offsets),
	    cmocka_unit_test(test_content_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
