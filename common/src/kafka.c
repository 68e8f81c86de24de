/*
 * kafka.c - shared librdkafka configuration, error mapping, topic creation
 * and reachability checks; see kafka.h for the contracts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"

/* A single metadata attempt in lm_kafka_wait_metadata waits at most this
 * long, so that a retry follows soon after a broker comes up. */
#define WAIT_SLICE_MS 1000
/* Pause between failed attempts that returned early. */
#define WAIT_RETRY_MS 100
/* Extra time given to the admin result queue beyond the request timeout. */
#define ADMIN_GRACE_MS 1000

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Routes librdkafka's log lines to lm_log. Called from librdkafka threads;
 * lm_log is thread-safe. */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	lm_log_level l;

	if (level <= 3)
		l = LM_LOG_ERROR;
	else if (level == 4)
		l = LM_LOG_WARN;
	else if (level <= 6)
		l = LM_LOG_INFO;
	else
		l = LM_LOG_DEBUG;
	lm_log(l, "kafka.log", "%s %s: %s", rk ? rd_kafka_name(rk) : "-", fac ? fac : "-",
	    buf ? buf : "");
}

int
lm_kafka_set(
    rd_kafka_conf_t *c, const char *key, const char *value, char *err, size_t errlen)
{
	char reason[512];

	if (c == NULL || key == NULL || value == NULL) {
		snprintf(
		    err, errlen, "kafka property: missing configuration, key or value");
		return LM_EINVAL;
	}
	if (rd_kafka_conf_set(c, key, value, reason, sizeof(reason)) !=
	    RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka property %s: %s", key, reason);
		return LM_EINVAL;
	}
	return LM_OK;
}

int
lm_kafka_conf(const char *brokers, const char *client_id, rd_kafka_conf_t **out,
    char *err, size_t errlen)
{
	rd_kafka_conf_t *c;
	int rv;

	*out = NULL;
	if (client_id == NULL)
		client_id = "lunamatch";
	if (brokers != NULL &&
	    (brokers[0] == '\0' || strlen(brokers) >= LM_KAFKA_BROKERS_MAX)) {
		snprintf(err, errlen, "kafka brokers: must be 1..%d bytes",
		    LM_KAFKA_BROKERS_MAX - 1);
		return LM_EINVAL;
	}
	if (client_id[0] == '\0' || strlen(client_id) >= LM_KAFKA_CLIENT_ID_MAX) {
		snprintf(err, errlen, "kafka client id: must be 1..%d bytes",
		    LM_KAFKA_CLIENT_ID_MAX - 1);
		return LM_EINVAL;
	}
	if ((c = rd_kafka_conf_new()) == NULL) {
		snprintf(err, errlen, "kafka configuration: out of memory");
		return LM_ENOMEM;
	}
	rd_kafka_conf_set_log_cb(c, log_cb);
	if ((brokers != NULL && (rv = lm_kafka_set(c, "bootstrap.servers", brokers, err,
	                             errlen)) != LM_OK) ||
	    (rv = lm_kafka_set(c, "client.id", client_id, err, errlen)) != LM_OK ||
	    (rv = lm_kafka_set(c, "socket.keepalive.enable", "true", err, errlen)) !=
	        LM_OK ||
	    (rv = lm_kafka_set(c, "log.connection.close", "false", err, errlen)) != LM_OK)
		goto fail;
	*out = c;
	return LM_OK;
fail:
	rd_kafka_conf_destroy(c);
	return rv;
}

int
lm_kafka_producer_new(
    const lm_kafka_producer_opts *o, rd_kafka_t **out, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = NULL;
	char tmo[32], kb[32];
	int rv;

	*out = NULL;
	if (o->message_timeout_ms <= 0) {
		snprintf(err, errlen, "kafka producer: message timeout must be > 0");
		return LM_EINVAL;
	}
	snprintf(tmo, sizeof(tmo), "%d", o->message_timeout_ms);
	snprintf(kb, sizeof(kb), "%d", LM_KAFKA_PRODUCER_QUEUE_KB);
	if ((rv = lm_kafka_conf(o->brokers, o->client_id, &conf, err, errlen)) != LM_OK)
		return rv;
	if ((rv = lm_kafka_set(conf, "enable.idempotence", "true", err, errlen)) !=
	        LM_OK ||
	    (rv = lm_kafka_set(conf, "acks", "all", err, errlen)) != LM_OK ||
	    (rv = lm_kafka_set(conf, "message.timeout.ms", tmo, err, errlen)) != LM_OK ||
	    (rv = lm_kafka_set(conf, "queue.buffering.max.kbytes", kb, err, errlen)) !=
	        LM_OK)
		goto fail;
	for (size_t i = 0; o->extra != NULL && o->extra[i] != NULL; i += 2)
		if ((rv = lm_kafka_set(
		         conf, o->extra[i], o->extra[i + 1], err, errlen)) != LM_OK)
			goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, o->dr_msg_cb);
	rd_kafka_conf_set_error_cb(conf, o->error_cb);
	rd_kafka_conf_set_opaque(conf, o->opaque);
	/* rd_kafka_new owns conf from here on only when it succeeds. */
	if ((*out = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen)) == NULL) {
		rv = LM_EKAFKA;
		goto fail;
	}
	return LM_OK;
fail:
	rd_kafka_conf_destroy(conf);
	return rv;
}

bool
lm_kafka_producer_dead(rd_kafka_t *rk, const char *event)
{
	char why[256];
	rd_kafka_resp_err_t e;

	if (rk == NULL || (e = rd_kafka_fatal_error(rk, why, sizeof(why))) ==
	                      RD_KAFKA_RESP_ERR_NO_ERROR)
		return false;
	lm_error(event, "producer fatal error %s (%s); recreating the producer",
	    rd_kafka_err2name(e), why);
	return true;
}

int
lm_kafka_err(rd_kafka_resp_err_t e)
{
	switch (e) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return LM_OK;
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return LM_ETIMEDOUT;
	case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
		return LM_EEXIST;
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__NOENT:
		return LM_ENOENT;
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		return LM_EBUSY;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		return LM_E2BIG;
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
	case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
	case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
	case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
		return LM_EINVAL;
	case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
		return LM_ENOTSUP;
	case RD_KAFKA_RESP_ERR__DESTROY:
		return LM_ECLOSED;
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
		return LM_EACCES;
	default:
		return LM_EKAFKA;
	}
}

bool
lm_kafka_topic_name_ok(const char *t)
{
	size_t n = 0;

	if (t == NULL)
		return false;
	for (; t[n] != '\0'; n++) {
		char c = t[n];
		if (n >= LM_KAFKA_TOPIC_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n > 0 && strcmp(t, ".") != 0 && strcmp(t, "..") != 0;
}

void
lm_kafka_content_type(const rd_kafka_headers_t *h, const void **value, size_t *len)
{
	const char *name;
	const void *v;
	size_t n;

	*value = NULL;
	*len = 0;
	if (h == NULL)
		return;
	for (size_t i = 0;
	     rd_kafka_header_get_all(h, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR;
	     i++) {
		if (strcasecmp(name, "content-type") == 0) {
			*value = v != NULL ? v : "";
			*len = v != NULL ? n : 0;
		}
	}
}

/* Fetches the metadata of all topics; *md is freed by the caller with
 * rd_kafka_metadata_destroy. Never asks for a single topic, so that it cannot
 * trigger automatic topic creation on the broker. */
static rd_kafka_resp_err_t
all_topics(rd_kafka_t *rk, int timeout_ms, const struct rd_kafka_metadata **md)
{
	return rd_kafka_metadata(rk, 1, NULL, md, timeout_ms);
}

/* Finds topic in md: NO_ERROR with its partition count in *count, the
 * error the cluster lists it with, or UNKNOWN_TOPIC_OR_PART when it is not
 * listed. */
static rd_kafka_resp_err_t
md_topic(const struct rd_kafka_metadata *md, const char *topic, int *count)
{
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, topic) != 0)
			continue;
		if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
			*count = md->topics[i].partition_cnt;
		return md->topics[i].err;
	}
	return RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

/* What the error a topic is listed with means: UNKNOWN_TOPIC_OR_PART (also
 * a topic being deleted) is LM_ENOENT; no leader for now (a topic being
 * created, its broker down or moving) is LM_EBUSY, worth a retry; an
 * authorization failure LM_EACCES (lm_kafka_err); the rest as lm_kafka_err. */
static int
topic_err(rd_kafka_resp_err_t e)
{
	switch (e) {
	case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
	case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
	case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
	case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
	case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
	case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
		return LM_EBUSY;
	default:
		return lm_kafka_err(e);
	}
}

int
lm_kafka_topics_partitions(rd_kafka_t *rk, const char *const *topics, size_t n,
    int timeout_ms, int *counts, int *rvs)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e;

	if (rk == NULL || topics == NULL || n == 0 || timeout_ms < 0 || counts == NULL ||
	    rvs == NULL)
		return LM_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!lm_kafka_topic_name_ok(topics[i]))
			return LM_EINVAL;
	if ((e = all_topics(rk, timeout_ms, &md)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return lm_kafka_err(e);
	for (size_t i = 0; i < n; i++) {
		int count = 0;
		e = md_topic(md, topics[i], &count);
		rvs[i] = e == RD_KAFKA_RESP_ERR_NO_ERROR ? LM_OK : topic_err(e);
		if (rvs[i] == LM_OK)
			counts[i] = count;
	}
	rd_kafka_metadata_destroy(md);
	return LM_OK;
}

int
lm_kafka_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *count)
{
	int n = 0, trv = LM_OK, rv;

	if (count == NULL)
		return LM_EINVAL;
	if ((rv = lm_kafka_topics_partitions(rk, &topic, 1, timeout_ms, &n, &trv)) !=
	    LM_OK)
		return rv;
	if (trv == LM_OK)
		*count = n;
	return trv;
}

int
lm_kafka_list_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, int64_t which,
    int timeout_ms, int *failed)
{
	rd_kafka_resp_err_t e;

	if (failed != NULL)
		*failed = -1;
	if (rk == NULL || l == NULL || l->cnt == 0 || timeout_ms < 0 ||
	    (which != RD_KAFKA_OFFSET_END && which != RD_KAFKA_OFFSET_BEGINNING))
		return LM_EINVAL;
	/* A ListOffsets request asks by timestamp; the two special ones ask
	 * for the log's end and start. */
	for (int i = 0; i < l->cnt; i++)
		l->elems[i].offset = which;
	if ((e = rd_kafka_offsets_for_times(rk, l, timeout_ms)) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR) {
		/* librdkafka may leave the special values asked for in place:
		 * none of them may read as an offset. */
		for (int i = 0; i < l->cnt; i++)
			l->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
		return lm_kafka_err(e);
	}
	for (int i = 0; i < l->cnt; i++)
		if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (failed != NULL)
				*failed = i;
			return lm_kafka_err(l->elems[i].err);
		}
	return LM_OK;
}

int
lm_kafka_create_topics(rd_kafka_t *rk, const char *const *topics, size_t n,
    int partitions, int timeout_ms, char *err, size_t errlen)
{
	rd_kafka_NewTopic_t **nt = NULL;
	rd_kafka_AdminOptions_t *opts = NULL;
	rd_kafka_queue_t *q = NULL;
	rd_kafka_event_t *ev = NULL;
	const rd_kafka_CreateTopics_result_t *res;
	const rd_kafka_topic_result_t **tres;
	char reason[512];
	const struct rd_kafka_metadata *md = NULL;
	const char *first_new = "";
	size_t cnt = 0, nnew = 0;
	rd_kafka_resp_err_t e;
	int64_t start = lm_clock_ms();
	int left, rv = LM_OK;

	if (rk == NULL || topics == NULL || n == 0 || n > LM_KAFKA_CREATE_TOPICS_MAX) {
		snprintf(err, errlen, "kafka topics: need 1..%d topics",
		    LM_KAFKA_CREATE_TOPICS_MAX);
		return LM_EINVAL;
	}
	if (partitions < 1 || partitions > LM_KAFKA_PARTITIONS_MAX || timeout_ms <= 0) {
		snprintf(err, errlen,
		    "kafka topics: partitions must be 1..%d and the timeout positive",
		    LM_KAFKA_PARTITIONS_MAX);
		return LM_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!lm_kafka_topic_name_ok(topics[i])) {
			snprintf(err, errlen,
			    "kafka topic \"%.64s\": not 1..%d characters of "
			    "[a-zA-Z0-9._-]",
			    topics[i] ? topics[i] : "(null)", LM_KAFKA_TOPIC_MAX);
			return LM_EINVAL;
		}
	}

	/* Ask for the missing topics only: brokers without a controller (the
	 * mock cluster) never answer CreateTopics, but list existing topics. */
	if ((e = all_topics(rk, timeout_ms, &md)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka metadata: %s", rd_kafka_err2str(e));
		return lm_kafka_err(e);
	}
	if ((nt = calloc(n, sizeof(*nt))) == NULL) {
		snprintf(err, errlen, "kafka topics: out of memory");
		rv = LM_ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		int have = 0;
		/* A topic listed without a leader exists: it is not created again. */
		e = md_topic(md, topics[i], &have);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR || topic_err(e) == LM_EBUSY)
			continue;
		if (e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
			snprintf(err, errlen, "kafka topic %s: %s", topics[i],
			    rd_kafka_err2str(e));
			rv = topic_err(e);
			goto done;
		}
		/* -1: the broker's default.replication.factor. */
		nt[nnew] = rd_kafka_NewTopic_new(
		    topics[i], partitions, -1, reason, sizeof(reason));
		if (nt[nnew] == NULL) {
			snprintf(err, errlen, "kafka topic %s: %s", topics[i], reason);
			rv = LM_EINVAL;
			goto done;
		}
		if (nnew++ == 0)
			first_new = topics[i];
	}
	if (nnew == 0)
		goto done;
	left = timeout_ms - (int) (lm_clock_ms() - start);
	if (left <= 0) {
		snprintf(
		    err, errlen, "kafka topics: no time left after the metadata request");
		rv = LM_ETIMEDOUT;
		goto done;
	}
	if ((opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)) ==
	        NULL ||
	    (q = rd_kafka_queue_new(rk)) == NULL) {
		snprintf(err, errlen, "kafka topics: out of memory");
		rv = LM_ENOMEM;
		goto done;
	}
	if (rd_kafka_AdminOptions_set_request_timeout(
	        opts, left, reason, sizeof(reason)) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_AdminOptions_set_operation_timeout(
	        opts, left, reason, sizeof(reason)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka topics: %s", reason);
		rv = LM_EINVAL;
		goto done;
	}
	rd_kafka_CreateTopics(rk, nt, nnew, opts, q);
	if ((ev = rd_kafka_queue_poll(q, left + ADMIN_GRACE_MS)) == NULL) {
		snprintf(err, errlen,
		    "kafka topic %s: no answer to CreateTopics within %d ms", first_new,
		    timeout_ms);
		rv = LM_ETIMEDOUT;
		goto done;
	}
	if ((e = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka topic %s: cannot create: %s", first_new,
		    rd_kafka_event_error_string(ev));
		rv = lm_kafka_err(e);
		goto done;
	}
	if ((res = rd_kafka_event_CreateTopics_result(ev)) == NULL) {
		snprintf(err, errlen, "kafka topics: unexpected %s event",
		    rd_kafka_event_name(ev));
		rv = LM_EKAFKA;
		goto done;
	}
	tres = rd_kafka_CreateTopics_result_topics(res, &cnt);
	for (size_t i = 0; i < cnt; i++) {
		e = rd_kafka_topic_result_error(tres[i]);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			lm_info("kafka.topic.created", "topic %s, %d partitions",
			    rd_kafka_topic_result_name(tres[i]), partitions);
		} else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			const char *s = rd_kafka_topic_result_error_string(tres[i]);
			snprintf(err, errlen, "kafka topic %s: %s",
			    rd_kafka_topic_result_name(tres[i]),
			    s ? s : rd_kafka_err2str(e));
			rv = lm_kafka_err(e);
			goto done;
		}
	}
	if (cnt != nnew) {
		snprintf(
		    err, errlen, "kafka topics: %zu results for %zu topics", cnt, nnew);
		rv = LM_EKAFKA;
	}
done:
	if (ev != NULL)
		rd_kafka_event_destroy(ev);
	if (q != NULL)
		rd_kafka_queue_destroy(q);
	if (opts != NULL)
		rd_kafka_AdminOptions_destroy(opts);
	for (size_t i = 0; nt != NULL && i < nnew; i++)
		rd_kafka_NewTopic_destroy(nt[i]);
	free(nt);
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	return rv;
}

int
lm_kafka_wait_metadata(rd_kafka_t *rk, int timeout_ms)
{
	int64_t deadline;

	if (rk == NULL || timeout_ms < 0)
		return LM_EINVAL;
	deadline = lm_clock_ms() + timeout_ms;
	for (;;) {
		const struct rd_kafka_metadata *md = NULL;
		int64_t left = deadline - lm_clock_ms();
		int slice =
		    left < WAIT_SLICE_MS ? (int) (left > 0 ? left : 1) : WAIT_SLICE_MS;
		int64_t t0 = lm_clock_ms();

		if (rd_kafka_metadata(rk, 0, NULL, &md, slice) ==
		    RD_KAFKA_RESP_ERR_NO_ERROR) {
			int brokers = md->broker_cnt;
			rd_kafka_metadata_destroy(md);
			if (brokers > 0)
				return LM_OK;
		}
		if (lm_clock_ms() >= deadline)
			return LM_ETIMEDOUT;
		/* A quick failure (connection refused) would spin: pause. */
		if (lm_clock_ms() - t0 < WAIT_RETRY_MS) {
			left = deadline - lm_clock_ms();
			sleep_ms(left < WAIT_RETRY_MS ? (int) (left > 0 ? left : 0)
			                              : WAIT_RETRY_MS);
		}
	}
}
