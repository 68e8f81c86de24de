/*
 * consume.c - the topic reader that the CLI's reading commands (dlq tail,
 * watch) share; see cli.h.
 *
 * librdkafka's assign() needs a group id; a unique throwaway one
 * ("lunamatch-cli-<cmd>-<pid>-<time>") is used only locally: assign() joins
 * no group, and with auto-commit and the offset store off nothing is ever
 * committed under it, so the reader never disturbs another consumer.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"

/*
 * Limits on what librdkafka buffers for a reader, instead of its defaults
 * (about 1 GiB of pre-fetched messages per partition queue). A dead letter
 * is at most 1,000,000 bytes (ingest's dead-letter producer's
 * message.max.bytes, LM_DLQ_PRODUCER_MSG_MAX), so one partition fetch holds
 * at least two of them.
 *
 * A record larger than the fetch sizes (another producer's, up to the
 * topic's max.message.bytes) is still returned: the broker sends the first
 * record batch of the first non-empty partition of a fetch whole, whatever
 * fetch.max.bytes and max.partition.fetch.bytes say (KIP-74). The response
 * carrying it is then larger than a full fetch, and librdkafka refuses a
 * response over receive.message.max.bytes: it fails the connection
 * ("Invalid response size", an error it only logs) and fetches the same
 * offset again, for ever. So that limit is high enough for any record a
 * deployment stores on these topics (a broker's default message.max.bytes
 * is 1 MB; ingest's dead letters are at most 1,000,000 bytes) and still a
 * hard bound: 128 MiB, as librdkafka's default (100 MB) rounded up. A
 * reader holds at most one such record beyond the bounds below. A record
 * larger than that cannot be read by this tool.
 */
/* Most bytes one partition returns per fetch (and the largest request). */
#define CONSUME_MESSAGE_MAX "2097152"
/* Most bytes one fetch response carries, all partitions together, short of
 * a first record batch larger than that. */
#define CONSUME_FETCH_MAX "4194304"
/* Largest response accepted from a broker (see above). */
#define CONSUME_RECEIVE_MAX "134217728"
/* Most kilobytes and messages pre-fetched into the local queue. */
#define CONSUME_QUEUE_KBYTES   "16384"
#define CONSUME_QUEUE_MESSAGES "1000"

struct lm_cli_consumer {
	const char *cmd;
	char *topic; /* the topic read, for messages */
	rd_kafka_t *rk;
	int np;    /* partitions of the topic */
	bool *eof; /* per partition: its end was reached; NULL unless tracked */
	int neof;
};

static volatile sig_atomic_t stop_sig;

static void
on_signal(int sig)
{
	stop_sig = sig;
}

bool
lm_cli_interrupted(void)
{
	return stop_sig != 0;
}

/* The consumer handle; NULL after printing why. */
static rd_kafka_t *
new_handle(const lm_config *cfg, const char *cmd, bool track_eof)
{
	rd_kafka_conf_t *c = NULL;
	rd_kafka_t *rk;
	char err[512], group[96];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(group, sizeof(group), "lunamatch-cli-%.16s-%ld-%lld-%ld", cmd,
	    (long) getpid(), (long long) ts.tv_sec, ts.tv_nsec);
	if (lm_kafka_conf(cfg->brokers, "lunamatch-cli", &c, err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "group.id", group, err, sizeof(err)) != LM_OK ||
	    (track_eof && lm_kafka_set(c, "enable.partition.eof", "true", err,
	                      sizeof(err)) != LM_OK) ||
	    lm_kafka_set(c, "enable.auto.commit", "false", err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "enable.auto.offset.store", "false", err, sizeof(err)) !=
	        LM_OK ||
	    lm_kafka_set(c, "auto.offset.reset", "earliest", err, sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "message.max.bytes", CONSUME_MESSAGE_MAX, err, sizeof(err)) !=
	        LM_OK ||
	    lm_kafka_set(c, "max.partition.fetch.bytes", CONSUME_MESSAGE_MAX, err,
	        sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "fetch.max.bytes", CONSUME_FETCH_MAX, err, sizeof(err)) !=
	        LM_OK ||
	    lm_kafka_set(c, "receive.message.max.bytes", CONSUME_RECEIVE_MAX, err,
	        sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "queued.max.messages.kbytes", CONSUME_QUEUE_KBYTES, err,
	        sizeof(err)) != LM_OK ||
	    lm_kafka_set(c, "queued.min.messages", CONSUME_QUEUE_MESSAGES, err,
	        sizeof(err)) != LM_OK) {
		lm_cli_error(cmd, "%s", err);
		if (c != NULL)
			rd_kafka_conf_destroy(c);
		return NULL;
	}
	if ((rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err))) == NULL) {
		lm_cli_error(cmd, "cannot create the Kafka consumer: %s", err);
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

int
lm_cli_consumer_open(const lm_config *cfg, const char *cmd, const char *topic,
    int64_t start, bool track_eof, int timeout_ms, lm_cli_consumer **out)
{
	lm_cli_consumer *c;
	rd_kafka_topic_partition_list_t *l = NULL;
	rd_kafka_resp_err_t ae;
	struct sigaction sa;
	int rc, rv = LM_CLI_EXIT_FAIL;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		lm_cli_error(cmd, "out of memory");
		return LM_CLI_EXIT_FAIL;
	}
	c->cmd = cmd;
	if ((c->topic = strdup(topic)) == NULL) {
		lm_cli_error(cmd, "out of memory");
		goto fail;
	}
	if ((c->rk = new_handle(cfg, cmd, track_eof)) == NULL)
		goto fail;
	rc = lm_kafka_topic_partitions(c->rk, topic, timeout_ms, &c->np);
	if (rc != LM_OK) {
		rv = lm_cli_topic_status(cmd, cfg->brokers, topic, rc);
		goto fail;
	}
	if ((track_eof && (c->eof = calloc((size_t) c->np, sizeof(*c->eof))) == NULL) ||
	    (l = rd_kafka_topic_partition_list_new(c->np)) == NULL) {
		lm_cli_error(cmd, "out of memory");
		goto fail;
	}
	for (int p = 0; p < c->np; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = start;
	ae = rd_kafka_assign(c->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
		lm_cli_error(cmd, "cannot assign the partitions of %s: %s", topic,
		    rd_kafka_err2str(ae));
		goto fail;
	}

	stop_sig = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	*out = c;
	return LM_CLI_EXIT_OK;
fail:
	lm_cli_consumer_close(c);
	return rv;
}

int
lm_cli_consumer_next(lm_cli_consumer *c, int poll_ms, rd_kafka_message_t **out)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, poll_ms);
	int rv = 0;

	*out = NULL;
	if (m == NULL)
		return 0;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		*out = m;
		return 1;
	}
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (c->eof != NULL && m->partition >= 0 && m->partition < c->np &&
		    !c->eof[m->partition]) {
			c->eof[m->partition] = true;
			c->neof++;
		}
	} else {
		if (m->partition >= 0)
			lm_cli_error(c->cmd, "topic %s, partition %" PRId32 ": %s",
			    c->topic, m->partition, rd_kafka_message_errstr(m));
		else
			lm_cli_error(
			    c->cmd, "topic %s: %s", c->topic, rd_kafka_message_errstr(m));
		if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
		    m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		    m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
			rv = -1;
	}
	rd_kafka_message_destroy(m);
	return rv;
}

bool
lm_cli_consumer_at_end(const lm_cli_consumer *c)
{
	return c->eof != NULL && c->neof >= c->np;
}

void
lm_cli_consumer_close(lm_cli_consumer *c)
{
	if (c == NULL)
		return;
	if (c->rk != NULL) {
		rd_kafka_consumer_close(c->rk);
		rd_kafka_destroy(c->rk);
	}
	free(c->eof);
	free(c->topic);
	free(c);
}
