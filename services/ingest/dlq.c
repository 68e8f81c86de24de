/*
 * dlq.c - the dead-letter producer; see dlq.h.
 *
 * Delivery reports are counted per flush "generation": each message carries
 * the generation it was sent in as its opaque, and only reports of the
 * current generation count towards the current flush, so a late report of a
 * message that an earlier (failed) flush gave up on cannot make a later batch
 * look delivered. The opaque also carries the message's index among the
 * generation's messages, by which its report finds the fate its sender gave
 * (lm_dlq_send); a fate is never written after its generation ended.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "lunamatch/clock.h"
#include "lunamatch/error.h"
#include "lunamatch/kafka.h"
#include "lunamatch/log.h"
#include "lunamatch/text.h"

#define LM_STR_(x) #x
#define LM_STR(x)  LM_STR_(x)

struct lm_dlq {
	rd_kafka_t *rk;
	char *topic;
	volatile int *fatal;  /* may be NULL */
	uint32_t gen;         /* current flush generation */
	lm_dlq_fate **fates;  /* of the generation's messages */
	void (*tick)(void *); /* lm_dlq_set_tick; may be NULL */
	void *tick_arg;
	size_t nfates, cap_fates;
	uint64_t sent, ok, failed;            /* of the current generation */
	uint64_t dropped_gen;                 /* of the current generation */
	uint64_t delivered;                   /* since creation */
	uint64_t dropped[LM_DLQ_DROP_COUNT_]; /* since creation */
};

/* All that a letter owns; see dlq.h. key and value are NULL when the
 * message had none (a null key, a tombstone), which the dead letter keeps. */
struct lm_dlq_letter {
	char topic[LM_KAFKA_TOPIC_MAX + 1];
	int32_t partition;
	int64_t offset;
	void *key;                   /* key_len bytes */
	size_t key_len;              /* at most LM_DLQ_KEY_MAX */
	size_t key_size;             /* of the message's key */
	void *value;                 /* value_len bytes */
	size_t value_len;            /* at most LM_DLQ_VALUE_MAX */
	size_t value_size;           /* of the message's value */
	rd_kafka_headers_t *headers; /* copy_headers */
	size_t bytes;                /* lm_dlq_letter_bytes */
};

/* Slice of a flush wait between looks at the stop flag. */
#define FLUSH_SLICE_MS 100
/* Slice of the wait for room in a full local queue. */
#define SEND_SLICE_MS 100

/* A message's opaque: its generation (high half) and its index among the
 * messages of that generation (low half). */
_Static_assert(sizeof(uintptr_t) >= 8, "the opaque holds a generation and an index");

static void *
tag(uint32_t gen, size_t i)
{
	return (void *) (((uintptr_t) gen << 32) | (uintptr_t) (uint32_t) i);
}

static uint32_t
tag_gen(const void *t)
{
	return (uint32_t) ((uintptr_t) t >> 32);
}

static size_t
tag_idx(const void *t)
{
	return (size_t) (uint32_t) (uintptr_t) t;
}

const char *
lm_dlq_drop_name(lm_dlq_drop r)
{
	switch (r) {
	case LM_DLQ_DROP_TOO_LARGE:
		return "too_large";
	case LM_DLQ_DROP_INVALID:
		return "invalid";
	default:
		return NULL;
	}
}

/* The drop reason of a delivery error no retry can fix, or -1 for an error
 * that may go away (broker down, timeout, authorization, ...). */
static int
permanent(rd_kafka_resp_err_t e)
{
	switch (e) {
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
		return LM_DLQ_DROP_TOO_LARGE;
	case RD_KAFKA_RESP_ERR_INVALID_MSG:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
	case RD_KAFKA_RESP_ERR__BAD_MSG:
		return LM_DLQ_DROP_INVALID;
	default:
		return -1;
	}
}

/* Counts and logs a dead letter dropped for good. */
static void
drop(lm_dlq *q, int why, rd_kafka_resp_err_t e)
{
	q->dropped[why]++;
	q->dropped_gen++;
	lm_error("dlq.dropped",
	    "dead-letter message dropped for good (%s): %s; the rejected message "
	    "is skipped without a dead letter",
	    lm_dlq_drop_name((lm_dlq_drop) why), rd_kafka_err2str(e));
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	lm_dlq *q = opaque;
	lm_dlq_fate *fate;
	int why;
	(void) rk;

	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		q->delivered++;
	if (tag_gen(m->_private) != q->gen || tag_idx(m->_private) >= q->nfates)
		return;
	fate = q->fates[tag_idx(m->_private)];
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		q->ok++;
		if (fate != NULL)
			*fate = LM_DLQ_DELIVERED;
	} else if ((why = permanent(m->err)) >= 0) {
		drop(q, why, m->err);
		if (fate != NULL)
			*fate = LM_DLQ_DROPPED;
	} else {
		q->failed++;
		if (fate != NULL)
			*fate = LM_DLQ_FAILED;
		lm_warn("dlq.undelivered", "dead-letter message not delivered: %s",
		    rd_kafka_err2str(m->err));
	}
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	lm_dlq *q = opaque;
	char fatal[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		lm_error("dlq.fatal", "fatal producer error: %s", fatal);
		if (q->fatal != NULL)
			*q->fatal = 1;
		return;
	}
	lm_warn("dlq.kafka_error", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t) err),
	    reason);
}

int
lm_dlq_new(const char *brokers, const char *topic, unsigned queue_kb, volatile int *fatal,
    lm_dlq **out, char *err, size_t errlen)
{
	char kb[16];
	const char *const extra[] = {"linger.ms", "5", "message.max.bytes",
	    LM_STR(LM_DLQ_PRODUCER_MSG_MAX), "queue.buffering.max.kbytes", kb, NULL};
	lm_kafka_producer_opts o = {.brokers = brokers,
	    .client_id = "lunamatch-ingest-dlq",
	    .message_timeout_ms = LM_DLQ_MESSAGE_TIMEOUT_MS,
	    .extra = extra,
	    .dr_msg_cb = dr_cb,
	    .error_cb = error_cb};
	lm_dlq *q;
	int rv;

	*out = NULL;
	snprintf(
	    kb, sizeof(kb), "%u", queue_kb > 0 ? queue_kb : LM_KAFKA_PRODUCER_QUEUE_KB);
	if ((q = calloc(1, sizeof(*q))) == NULL || (q->topic = strdup(topic)) == NULL) {
		free(q);
		snprintf(err, errlen, "out of memory");
		return LM_ENOMEM;
	}
	q->fatal = fatal;
	q->gen = 1;
	o.opaque = q;
	if ((rv = lm_kafka_producer_new(&o, &q->rk, err, errlen)) != LM_OK)
		goto fail;
	*out = q;
	return LM_OK;
fail:
	free(q->topic);
	free(q);
	return rv;
}

void
lm_dlq_free(lm_dlq *q)
{
	if (q == NULL)
		return;
	if (rd_kafka_flush(q->rk, LM_DLQ_CLOSE_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
		lm_warn("dlq.close", "%d dead-letter messages not delivered at close",
		    rd_kafka_outq_len(q->rk));
	rd_kafka_destroy(q->rk);
	free(q->fates);
	free(q->topic);
	free(q);
}

/* Copies s into buf (cap bytes) as one line of text: a control character
 * (lm_text_control), which ingest's error messages no longer hold
 * (lm_ingest_decision.error) but a caller's text might, becomes escapes
 * (\n, \r, \t, or \xHH for each of its bytes), and
 * the copy ends short of cap at a whole character or escape. Returns its
 * length. */
static size_t
clip_line(const char *s, char *buf, size_t cap)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t w = 0;

	while (*p != '\0') {
		char esc[16];
		const char *from = esc;
		size_t n, ctl = lm_text_control(p, p[1] != '\0' ? 2 : 1);
		if (ctl == 2) {
			n = (size_t) snprintf(
			    esc, sizeof(esc), "\\x%02x\\x%02x", p[0], p[1]);
		} else if (ctl == 1) {
			if (*p == '\n' || *p == '\r' || *p == '\t') {
				esc[0] = '\\';
				esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
				n = 2;
			} else {
				n = (size_t) snprintf(esc, sizeof(esc), "\\x%02x", *p);
			}
		} else {
			from = (const char *) p;
			for (n = 1; (p[n] & 0xC0) == 0x80; n++) /* continuation bytes */
				;
		}
		if (w + n >= cap)
			break;
		memcpy(buf + w, from, n);
		w += n;
		p += from == esc ? ctl : n;
	}
	buf[w] = '\0';
	return w;
}

/* Adds header name with the decimal value n. */
static void
add_size(rd_kafka_headers_t *h, const char *name, size_t n)
{
	char v[24];
	snprintf(v, sizeof(v), "%zu", n);
	rd_kafka_header_add(h, name, -1, v, (ssize_t) strlen(v));
}

/* Whether name is one of the headers a dead letter sets. */
static bool
ours(const char *name)
{
	static const char *const names[] = {LM_DLQ_H_REASON, LM_DLQ_H_ERROR,
	    LM_DLQ_H_TOPIC, LM_DLQ_H_PARTITION, LM_DLQ_H_OFFSET, LM_DLQ_H_VALUE_TRUNCATED,
	    LM_DLQ_H_KEY_TRUNCATED, LM_DLQ_H_HEADERS_DROPPED};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* A copy of m's headers without ours, or - when they exceed
 * LM_DLQ_HEADERS_MAX bytes or LM_DLQ_HEADER_COUNT_MAX headers - an empty
 * list noting how many were left out. A name is copied up to its first NUL,
 * as far as it is counted (librdkafka gives no name's length). */
static rd_kafka_headers_t *
copy_headers(const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *orig = NULL, *h;
	const char *name;
	const void *v;
	size_t n, total = 0, count = 0;

	if (rd_kafka_message_headers(m, &orig) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return rd_kafka_headers_new(8);
	for (; rd_kafka_header_get_all(orig, count, &name, &v, &n) ==
	       RD_KAFKA_RESP_ERR_NO_ERROR;
	     count++)
		total += strlen(name) + n;
	if (total > LM_DLQ_HEADERS_MAX || count > LM_DLQ_HEADER_COUNT_MAX) {
		if ((h = rd_kafka_headers_new(8)) != NULL)
			add_size(h, LM_DLQ_H_HEADERS_DROPPED, count);
		return h;
	}
	if ((h = rd_kafka_headers_new(count + 8)) == NULL)
		return NULL;
	for (size_t i = 0; i < count; i++)
		if (rd_kafka_header_get_all(orig, i, &name, &v, &n) ==
		        RD_KAFKA_RESP_ERR_NO_ERROR &&
		    !ours(name))
			rd_kafka_header_add(h, name, -1, v, (ssize_t) n);
	return h;
}

/* A copy of the first len bytes at p (NULL stays NULL) in *out. */
static int
copy_bytes(const void *p, size_t len, void **out)
{
	*out = NULL;
	if (p == NULL)
		return LM_OK;
	if ((*out = malloc(len > 0 ? len : 1)) == NULL)
		return LM_ENOMEM;
	memcpy(*out, p, len);
	return LM_OK;
}

int
lm_dlq_letter_new(const rd_kafka_message_t *m, lm_dlq_letter **out)
{
	lm_dlq_letter *l;
	const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : NULL;
	const char *name;
	const void *v;
	size_t n;
	int rv;

	*out = NULL;
	if (topic == NULL || strlen(topic) > LM_KAFKA_TOPIC_MAX)
		return LM_EINVAL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return LM_ENOMEM;
	memcpy(l->topic, topic, strlen(topic) + 1);
	l->partition = m->partition;
	l->offset = m->offset;
	l->key_size = m->key_len;
	l->key_len = m->key_len < LM_DLQ_KEY_MAX ? m->key_len : LM_DLQ_KEY_MAX;
	l->value_size = m->len;
	l->value_len = m->len < LM_DLQ_VALUE_MAX ? m->len : LM_DLQ_VALUE_MAX;
	if ((rv = copy_bytes(m->key, l->key_len, &l->key)) != LM_OK ||
	    (rv = copy_bytes(m->payload, l->value_len, &l->value)) != LM_OK)
		goto fail;
	if ((l->headers = copy_headers(m)) == NULL) {
		rv = LM_ENOMEM;
		goto fail;
	}
	l->bytes = sizeof(*l) + l->key_len + l->value_len;
	for (size_t i = 0; rd_kafka_header_get_all(l->headers, i, &name, &v, &n) ==
	                   RD_KAFKA_RESP_ERR_NO_ERROR;
	     i++)
		l->bytes += strlen(name) + n + LM_DLQ_HEADER_OVERHEAD;
	*out = l;
	return LM_OK;
fail:
	lm_dlq_letter_free(l);
	return rv;
}

size_t
lm_dlq_letter_bytes(const lm_dlq_letter *l)
{
	return l->bytes;
}

void
lm_dlq_letter_free(lm_dlq_letter *l)
{
	if (l == NULL)
		return;
	if (l->headers != NULL)
		rd_kafka_headers_destroy(l->headers);
	free(l->key);
	free(l->value);
	free(l);
}

/* Sets *fate (may be NULL) to f. */
static void
set_fate(lm_dlq_fate *fate, lm_dlq_fate f)
{
	if (fate != NULL)
		*fate = f;
}

int
lm_dlq_send(lm_dlq *q, const lm_dlq_letter *l, const char *reason, const char *error,
    int timeout_ms, lm_dlq_fate *fate)
{
	rd_kafka_headers_t *h = NULL;
	char ebuf[LM_DLQ_ERROR_MAX + 1], part[16], off[24];
	rd_kafka_resp_err_t e;
	int64_t end = lm_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0), left;
	int why;

	if (q->nfates == q->cap_fates) {
		size_t cap = q->cap_fates ? 2 * q->cap_fates : 64;
		lm_dlq_fate **f = realloc(q->fates, cap * sizeof(*f));
		if (f != NULL) {
			q->fates = f;
			q->cap_fates = cap;
		}
	}
	if (q->nfates == q->cap_fates ||
	    (h = rd_kafka_headers_copy(l->headers)) == NULL) {
		q->sent++;
		q->failed++;
		set_fate(fate, LM_DLQ_FAILED);
		lm_warn("dlq.produce", "cannot queue dead-letter message: %s",
		    lm_strerror(LM_ENOMEM));
		return LM_ENOMEM;
	}
	size_t elen = clip_line(error, ebuf, sizeof(ebuf));
	snprintf(part, sizeof(part), "%" PRId32, l->partition);
	snprintf(off, sizeof(off), "%" PRId64, l->offset);
	rd_kafka_header_add(h, LM_DLQ_H_REASON, -1, reason, (ssize_t) strlen(reason));
	rd_kafka_header_add(h, LM_DLQ_H_ERROR, -1, ebuf, (ssize_t) elen);
	rd_kafka_header_add(h, LM_DLQ_H_TOPIC, -1, l->topic, (ssize_t) strlen(l->topic));
	rd_kafka_header_add(h, LM_DLQ_H_PARTITION, -1, part, (ssize_t) strlen(part));
	rd_kafka_header_add(h, LM_DLQ_H_OFFSET, -1, off, (ssize_t) strlen(off));
	if (l->value_size > l->value_len)
		add_size(h, LM_DLQ_H_VALUE_TRUNCATED, l->value_size);
	if (l->key_size > l->key_len)
		add_size(h, LM_DLQ_H_KEY_TRUNCATED, l->key_size);

	/* Delivery reports served while waiting for room are of earlier
	 * messages: this one's index is taken only once it is queued. */
	for (;;) {
		e = rd_kafka_producev(q->rk, RD_KAFKA_V_TOPIC(q->topic),
		    RD_KAFKA_V_KEY(l->key, l->key_len),
		    RD_KAFKA_V_VALUE(l->value, l->value_len),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_OPAQUE(tag(q->gen, q->nfates)), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
		    (left = end - lm_clock_ms()) <= 0)
			break;
		rd_kafka_poll(q->rk, left < SEND_SLICE_MS ? (int) left : SEND_SLICE_MS);
		if (q->tick != NULL)
			q->tick(q->tick_arg);
	}
	if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
		rd_kafka_headers_destroy(h); /* not taken over on failure */
		return LM_EBUSY;             /* not counted: the caller may try again */
	}
	q->sent++;
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_headers_destroy(h);
		if ((why = permanent(e)) >= 0) {
			drop(q, why, e);
			set_fate(fate, LM_DLQ_DROPPED);
		} else {
			q->failed++;
			set_fate(fate, LM_DLQ_FAILED);
			lm_warn("dlq.produce", "cannot queue dead-letter message: %s",
			    rd_kafka_err2name(e));
		}
		return lm_kafka_err(e);
	}
	q->fates[q->nfates++] = fate;
	set_fate(fate, LM_DLQ_QUEUED);
	rd_kafka_poll(q->rk, 0); /* serve delivery reports */
	return LM_OK;
}

int
lm_dlq_flush(lm_dlq *q, int timeout_ms, const atomic_int *stop)
{
	int64_t end = lm_clock_ms() + timeout_ms, left;
	int rv = LM_OK;

	rd_kafka_poll(q->rk, 0);
	/* Until every message of this generation has its report: delivered,
	 * failed or dropped. (A flush returns early whenever it serves an
	 * event, hence the clock.) */
	while (q->ok + q->failed + q->dropped_gen < q->sent &&
	       (left = end - lm_clock_ms()) > 0 && (stop == NULL || !*stop)) {
		(void) rd_kafka_flush(
		    q->rk, left < FLUSH_SLICE_MS ? (int) left : FLUSH_SLICE_MS);
		if (q->tick != NULL)
			q->tick(q->tick_arg);
	}
	if (q->failed > 0)
		rv = LM_EKAFKA;
	else if (q->ok + q->dropped_gen < q->sent)
		rv = LM_ETIMEDOUT;
	q->gen++;
	q->sent = q->ok = q->failed = q->dropped_gen = 0;
	q->nfates = 0;
	if (rv != LM_OK) {
		/* Whatever of this generation has not reached a broker yet would
		 * only hold room that the messages' resend needs. The reports of
		 * the purged messages belong to the ended generation. */
		rd_kafka_resp_err_t pe = rd_kafka_purge(q->rk, RD_KAFKA_PURGE_F_QUEUE);
		if (pe != RD_KAFKA_RESP_ERR_NO_ERROR)
			lm_warn("dlq.purge", "queued dead letters not purged: %s",
			    rd_kafka_err2name(pe));
		rd_kafka_poll(q->rk, 0);
	}
	return rv;
}

void
lm_dlq_set_tick(lm_dlq *q, void (*tick)(void *arg), void *arg)
{
	q->tick = tick;
	q->tick_arg = arg;
}

uint64_t
lm_dlq_delivered(const lm_dlq *q)
{
	return q->delivered;
}

uint64_t
lm_dlq_dropped(const lm_dlq *q, lm_dlq_drop r)
{
	return (unsigned) r < LM_DLQ_DROP_COUNT_ ? q->dropped[r] : 0;
}

rd_kafka_t *
lm_dlq_kafka(lm_dlq *q)
{
	return q->rk;
}

void
lm_dlq_poll(lm_dlq *q)
{
	rd_kafka_poll(q->rk, 0);
}
