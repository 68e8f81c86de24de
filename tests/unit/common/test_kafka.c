/*
 * test_kafka.c - the shared librdkafka layer: the idempotent producer every
 * durable sender builds (lm_kafka_producer_new) carries the settings its
 * contract names, takes extra settings, and refuses bad options with a
 * reason and no handle; a fatal error of such a producer is found
 * (lm_kafka_producer_dead). Nothing is contacted: librdkafka creates handles
 * without a broker.
 */
#include <librdkafka/rdkafka.h>
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_producer),
	    cmocka_unit_test(test_producer_bad_options),
	    cmocka_unit_test(test_producer_dead),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
