/*
 * ingest.c - message -> decision, and batches of decisions -> one store
 * transaction; see ingest.h for the contracts.
 *
 * Every way a message can be bad ends in a REJECT decision with a reason
 * token from a small closed set (metric label, DLQ header) and a message that
 * names the field. Only resource failures are errors, because they say
 * nothing about the message and the batch is retried.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest.h"
#include "offsets.h"
#include "lunamatch/error.h"
#include "lunamatch/json.h"
#include "lunamatch/log.h"
#include "lunamatch/pb.h"
#include "lunamatch/text.h"

lm_ingest_format
lm_ingest_content_type(const void *value, size_t len)
{
	static const char *const protobuf_types[] = {"application/x-protobuf",
	    "application/protobuf", "application/vnd.google.protobuf",
	    "application/octet-stream"};
	const char *s = value, *semi;
	size_t b = 0, e;

	if (s == NULL)
		return LM_INGEST_PROTOBUF;
	/* Only the media type is read: a ';' after the limit, or none in a
	 * longer value, leaves it too long. */
	semi = memchr(s, ';',
	    len < LM_INGEST_CONTENT_TYPE_MAX + 1 ? len : LM_INGEST_CONTENT_TYPE_MAX + 1);
	e = semi != NULL ? (size_t) (semi - s) : len;
	if (e > LM_INGEST_CONTENT_TYPE_MAX)
		return LM_INGEST_UNSUPPORTED;
	while (b < e && (s[b] == ' ' || s[b] == '\t'))
		b++;
	while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	if (e == b)
		return LM_INGEST_PROTOBUF;
	if (e - b == strlen("application/json") &&
	    strncasecmp(s + b, "application/json", e - b) == 0)
		return LM_INGEST_JSON;
	for (size_t i = 0; i < sizeof(protobuf_types) / sizeof(protobuf_types[0]); i++)
		if (e - b == strlen(protobuf_types[i]) &&
		    strncasecmp(s + b, protobuf_types[i], e - b) == 0)
			return LM_INGEST_PROTOBUF;
	return LM_INGEST_UNSUPPORTED;
}

__attribute__((format(printf, 3, 4))) static int
reject(lm_ingest_decision *d, const char *reason, const char *fmt, ...)
{
	va_list ap;

	free(d->bytes);
	d->bytes = NULL;
	d->len = 0;
	d->action = LM_INGEST_REJECT;
	d->reason = reason;
	va_start(ap, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	/* It may quote the record: a character cut at the end goes, and the
	 * rest is made text (lm_ingest_decision.error). */
	if (strlen(d->error) == sizeof(d->error) - 1)
		d->error[lm_pb_utf8_fit(d->error, sizeof(d->error) - 1)] = '\0';
	lm_text_clean(d->error);
	return LM_OK;
}

/* Copies a key that must be a record id into d->id; false when it is not. */
static int
key_to_id(lm_ingest_decision *d, const void *key, size_t len)
{
	if (len == 0 || len > LM_RECORD_ID_MAX || memchr(key, '\0', len) != NULL)
		return 0;
	memcpy(d->id, key, len);
	d->id[len] = '\0';
	return lm_record_id_valid(d->id);
}

static int
decide_tombstone(const lm_ingest_msg *m, lm_ingest_decision *d)
{
	if (m->key == NULL || m->key_len == 0)
		return reject(d, lm_reject_name(LM_REJECT_MISSING_FIELD),
		    "tombstone without a key: the key must be the record id");
	if (!key_to_id(d, m->key, m->key_len)) {
		d->id[0] = '\0';
		return reject(d, lm_reject_name(LM_REJECT_BAD_ID),
		    "tombstone key: must be 1..%d bytes of letters, digits and . _ : -",
		    LM_RECORD_ID_MAX);
	}
	d->action = LM_INGEST_DELETE;
	return LM_OK;
}

/* True when lm_pb_decode's message err says a string is not UTF-8
 * (LM_PB_MSG_BAD_UTF8 ends it). */
static bool
pb_bad_utf8(const char *err)
{
	size_t n = strlen(err), k = strlen(LM_PB_MSG_BAD_UTF8);

	return n >= k && strcmp(err + n - k, LM_PB_MSG_BAD_UTF8) == 0;
}

/*
 * Maps a decoder failure to a decision (or returns LM_ENOMEM). The reason
 * comes from the return code rv and, for JSON, from the decoder's fault;
 * err is only quoted.
 */
static int
decode_failed(lm_ingest_decision *d, lm_ingest_format f, int rv, lm_json_fault fault,
    const char *err)
{
	const char *what = f == LM_INGEST_JSON ? "JSON" : "protobuf";

	if (rv == LM_ENOMEM)
		return LM_ENOMEM;
	if (rv == LM_E2BIG)
		return reject(d, LM_INGEST_R_OVERSIZE, "%s: %s", what, err);
	if (f == LM_INGEST_PROTOBUF)
		return reject(d,
		    pb_bad_utf8(err) ? lm_reject_name(LM_REJECT_BAD_UTF8)
		    : strstr(err, LM_PB_MSG_ENUM_RANGE) != NULL
		        ? lm_reject_name(LM_REJECT_BAD_ENUM)
		        : LM_INGEST_R_UNDECODABLE,
		    "protobuf: %s", err);
	if (fault == LM_JSON_FAULT_UTF8)
		return reject(d, lm_reject_name(LM_REJECT_BAD_UTF8), "JSON: %s", err);
	if (rv == LM_EPARSE)
		return reject(d, LM_INGEST_R_BAD_JSON, "JSON: %s", err);
	if (fault == LM_JSON_FAULT_ENUM)
		return reject(d, lm_reject_name(LM_REJECT_BAD_ENUM), "JSON: %s", err);
	return reject(d, LM_INGEST_R_SCHEMA, "JSON: %s", err);
}

#define FLAGGED_NAME  "lunamatch_ingest_flagged_postings_total"
#define FLAGGED_HELP  "Accepted postings with compliance warnings"
#define WARNINGS_NAME "lunamatch_ingest_compliance_warnings_total"
#define WARNINGS_HELP                                                                    \
	"Compliance warnings of accepted postings, by category of the "                  \
	"fair-requirements rule"

/* The warnings counter of a category: a closed set that comes from the
 * fair-requirements list (kebab-case, so no escaping is needed). */
static lm_counter *
warnings_counter(lm_metrics *m, const char *category)
{
	char labels[LM_FAIRNESS_ID_MAX + 16];

	snprintf(labels, sizeof(labels), "category=\"%s\"", category);
	return lm_metrics_counter(m, WARNINGS_NAME, WARNINGS_HELP, labels);
}

void
lm_ingest_compliance_metrics(const lm_record_ctx *ctx)
{
	if (ctx == NULL || ctx->metrics == NULL)
		return;
	lm_metrics_counter(ctx->metrics, FLAGGED_NAME, FLAGGED_HELP, NULL);
	for (size_t i = 0; i < lm_fairness_count(ctx->fairness); i++)
		warnings_counter(
		    ctx->metrics, lm_fairness_at(ctx->fairness, i)->category);
}

/*
 * Writes the log message of warning w of posting p (its phrase is a
 * posting's text, not personal data) into buf of len bytes (len 0: only
 * measures). Returns its length, without the NUL.
 */
static size_t
warning_text(const Lunamatch__V1__JobPosting *p,
    const Lunamatch__V1__ComplianceWarning *w, char *buf, size_t len)
{
	int n = snprintf(buf, len,
	    "posting %s version %llu: %s \"%s\" flagged by rule %s (%s)%s", p->id,
	    (unsigned long long) p->version, w->field, w->phrase, w->rule, w->category,
	    w->removed ? "; not used as a requirement" : "");
	return n > 0 ? (size_t) n : 0;
}

/*
 * Sets d->warnings to the log messages of an accepted posting's compliance
 * warnings and d->compliance to the counters that count them, both used
 * once it is stored (lm_ingest_batch_commit). LM_OK or LM_ENOMEM.
 */
static int
report_warnings(
    const lm_record_ctx *ctx, const Lunamatch__V1__JobPosting *p, lm_ingest_decision *d)
{
	size_t n = p->n_compliance_warnings, size = 0, at = 0;

	if (n == 0)
		return LM_OK;
	for (size_t i = 0; i < n; i++)
		size += warning_text(p, p->compliance_warnings[i], NULL, 0) + 1;
	if ((d->warnings = malloc(size)) == NULL)
		return LM_ENOMEM;
	for (size_t i = 0; i < n; i++)
		at += warning_text(
		          p, p->compliance_warnings[i], d->warnings + at, size - at) +
		      1;
	d->nwarnings = n;
	if (ctx->metrics != NULL) {
		if ((d->compliance = calloc(n + 1, sizeof(*d->compliance))) == NULL)
			return LM_ENOMEM;
		d->compliance[d->ncompliance++] =
		    lm_metrics_counter(ctx->metrics, FLAGGED_NAME, FLAGGED_HELP, NULL);
		for (size_t i = 0; i < n; i++)
			d->compliance[d->ncompliance++] = warnings_counter(
			    ctx->metrics, p->compliance_warnings[i]->category);
	}
	return LM_OK;
}

int
lm_ingest_decide(const lm_record_ctx *ctx, const lm_ingest_msg *m, lm_ingest_decision *d)
{
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *msg = NULL;
	lm_ingest_format f;
	lm_reject why = LM_REJECT_NONE;
	lm_json_fault fault = LM_JSON_FAULT_OTHER;
	char err[LM_INGEST_ERROR_MAX - 16];
	const char *id;
	uint64_t version;
	int rv;

	if (d == NULL)
		return LM_EINVAL;
	memset(d, 0, sizeof(*d));
	if (ctx == NULL || m == NULL ||
	    (m->kind != LM_KIND_POSTING && m->kind != LM_KIND_PROFILE))
		return LM_EINVAL;
	d->kind = m->kind;
	if (m->value == NULL)
		return decide_tombstone(m, d);

	if (m->value_len > LM_INGEST_MSG_MAX)
		return reject(d, LM_INGEST_R_OVERSIZE,
		    "message of %zu bytes exceeds the limit of %u bytes", m->value_len,
		    LM_INGEST_MSG_MAX);
	f = lm_ingest_content_type(m->content_type, m->content_type_len);
	if (f == LM_INGEST_UNSUPPORTED)
		return reject(d, LM_INGEST_R_UNDECODABLE,
		    "unsupported content-type (use application/json or protobuf)");

	desc = m->kind == LM_KIND_POSTING ? &lunamatch__v1__job_posting__descriptor
	                                  : &lunamatch__v1__candidate_profile__descriptor;
	if (f == LM_INGEST_JSON)
		rv = lm_json_decode_fault(
		    desc, m->value, m->value_len, &msg, err, sizeof(err), &fault);
	else
		rv = lm_pb_decode_capped(desc, m->value, m->value_len, LM_INGEST_MSG_MAX,
		    &msg, err, sizeof(err));
	if (rv != LM_OK)
		return decode_failed(d, f, rv, fault, err);
	/* Fields the schema lacks (a newer producer's) are ignored, as
	 * protobuf readers do: they are not stored, so nothing outside the
	 * schema reaches the store. JSON refuses unknown keys instead. */
	lm_pb_strip_unknown(msg, NULL);

	if (m->kind == LM_KIND_POSTING) {
		Lunamatch__V1__JobPosting *p = (Lunamatch__V1__JobPosting *) msg;
		rv = lm_posting_prepare(ctx, p, &why, err, sizeof(err));
		id = p->id;
		version = p->version;
	} else {
		Lunamatch__V1__CandidateProfile *c =
		    (Lunamatch__V1__CandidateProfile *) msg;
		rv = lm_profile_prepare(ctx, c, &why, err, sizeof(err));
		id = c->id;
		version = c->version;
	}
	if (rv == LM_ESCHEMA) {
		rv = reject(d,
		    why != LM_REJECT_NONE ? lm_reject_name(why) : LM_INGEST_R_SCHEMA,
		    "%s", err);
		goto out;
	}
	if (rv != LM_OK)
		goto out; /* LM_ENOMEM */

	if (m->key == NULL || m->key_len == 0) {
		rv = reject(d, LM_INGEST_R_KEY_MISMATCH,
		    "message has no key: the key must be the record id");
		goto out;
	}
	if (m->key_len != strlen(id) || memcmp(m->key, id, m->key_len) != 0) {
		rv = reject(
		    d, LM_INGEST_R_KEY_MISMATCH, "message key is not the record id");
		goto out;
	}
	if ((rv = lm_pb_encode(msg, &d->bytes, &d->len)) != LM_OK)
		goto out;
	if (d->len > LM_STORE_VALUE_MAX) {
		rv = reject(d, LM_INGEST_R_OVERSIZE,
		    "normalized record of %zu bytes exceeds the store limit", d->len);
		goto out;
	}
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->version = version;
	d->action = LM_INGEST_PUT;
	if (m->kind == LM_KIND_POSTING)
		rv = report_warnings(ctx, (const Lunamatch__V1__JobPosting *) msg, d);
out:
	protobuf_c_message_free_unpacked(msg, NULL);
	if (rv != LM_OK)
		lm_ingest_decision_clear(d);
	return rv;
}

void
lm_ingest_decision_clear(lm_ingest_decision *d)
{
	if (d == NULL)
		return;
	free(d->bytes);
	free(d->compliance);
	free(d->warnings);
	memset(d, 0, sizeof(*d));
}

struct lm_ingest_batch {
	size_t max, n;
	size_t bytes;               /* sum of ds[].len */
	lm_ingest_decision *ds;     /* max entries */
	lm_ingest_partition *parts; /* nparts of cap */
	size_t nparts, cap;
	struct {
		char topic[LM_INGEST_TOPIC_MAX + 1];
		uint32_t epoch;
	} epochs[LM_INGEST_EPOCH_TOPICS]; /* lm_ingest_batch_set_epoch */
	size_t nepochs;
	lm_ingest_source sources[3]; /* by lm_kind; topic "": none */
	uint64_t refill;             /* lm_ingest_batch_set_refill; 0: none */
};

int
lm_ingest_batch_new(size_t max, lm_ingest_batch **out)
{
	lm_ingest_batch *b;

	if (out == NULL || max == 0)
		return LM_EINVAL;
	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return LM_ENOMEM;
	if ((b->ds = calloc(max, sizeof(*b->ds))) == NULL) {
		free(b);
		return LM_ENOMEM;
	}
	b->max = max;
	*out = b;
	return LM_OK;
}

void
lm_ingest_batch_free(lm_ingest_batch *b)
{
	if (b == NULL)
		return;
	lm_ingest_batch_reset(b);
	free(b->ds);
	free(b->parts);
	free(b);
}

int
lm_ingest_batch_set_epoch(lm_ingest_batch *b, const char *topic, uint32_t epoch)
{
	size_t i;

	if (strlen(topic) > LM_INGEST_TOPIC_MAX)
		return LM_EINVAL;
	for (i = 0; i < b->nepochs && strcmp(b->epochs[i].topic, topic) != 0; i++)
		;
	if (i == LM_INGEST_EPOCH_TOPICS)
		return LM_E2BIG;
	if (i == b->nepochs) {
		snprintf(b->epochs[i].topic, sizeof(b->epochs[i].topic), "%s", topic);
		b->nepochs++;
	}
	b->epochs[i].epoch = epoch;
	return LM_OK;
}

int
lm_ingest_batch_set_source(lm_ingest_batch *b, lm_kind k, const lm_ingest_source *src)
{
	size_t n = strnlen(src->topic, sizeof(src->topic));

	if ((k != LM_KIND_POSTING && k != LM_KIND_PROFILE) || n == 0 ||
	    n > LM_INGEST_TOPIC_MAX ||
	    strnlen(src->cluster, sizeof(src->cluster)) > LM_INGEST_CLUSTER_MAX)
		return LM_EINVAL;
	b->sources[k] = *src;
	return LM_OK;
}

void
lm_ingest_batch_set_refill(lm_ingest_batch *b, uint64_t id)
{
	b->refill = id;
}

bool
lm_ingest_batch_holds(const lm_ingest_batch *b, lm_kind k, const char *id)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->ds[i].action != LM_INGEST_REJECT && b->ds[i].kind == k &&
		    strcmp(b->ds[i].id, id) == 0)
			return true;
	return false;
}

/* Writes, in t, how far each partition of b is stored (lm_ingest_offset_put)
 * and, in a refill, read again: held at a reject while its dead letter may
 * be undelivered, or past the batch once (delivered). */
static int
put_offsets(const lm_ingest_batch *b, lm_store_txn *t, bool delivered)
{
	int rv = LM_OK;

	for (size_t i = 0; rv == LM_OK && i < b->nparts; i++) {
		const lm_ingest_partition *p = &b->parts[i];
		int64_t at = delivered ? p->next : lm_ingest_partition_stored(p);
		if (delivered && p->reject < 0)
			continue;
		rv = lm_ingest_offset_put(t, p->topic, p->partition, p->epoch, at);
		if (rv == LM_OK && b->refill != 0)
			rv = lm_ingest_refill_offset_put(
			    t, b->refill, p->topic, p->partition, p->epoch, at);
	}
	return rv;
}

static uint32_t
epoch_of(const lm_ingest_batch *b, const char *topic)
{
	for (size_t i = 0; i < b->nepochs; i++)
		if (strcmp(b->epochs[i].topic, topic) == 0)
			return b->epochs[i].epoch;
	return 0;
}

static lm_ingest_partition *
find_part(const lm_ingest_batch *b, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < b->nparts; i++)
		if (b->parts[i].partition == partition &&
		    strcmp(b->parts[i].topic, topic) == 0)
			return &b->parts[i];
	return NULL;
}

int64_t
lm_ingest_batch_next(const lm_ingest_batch *b, const char *topic, int32_t partition)
{
	const lm_ingest_partition *p = find_part(b, topic, partition);
	return p != NULL ? p->next : -1;
}

size_t
lm_ingest_batch_len(const lm_ingest_batch *b)
{
	return b->n;
}

size_t
lm_ingest_batch_bytes(const lm_ingest_batch *b)
{
	return b->bytes;
}

int
lm_ingest_batch_full(const lm_ingest_batch *b)
{
	return b->n >= b->max || b->bytes >= LM_INGEST_BATCH_BYTES_MAX;
}

int
lm_ingest_batch_add(lm_ingest_batch *b, lm_ingest_decision *d, const char *topic,
    int32_t partition, int64_t offset)
{
	lm_ingest_partition *p = NULL;

	if (lm_ingest_batch_full(b) || strlen(topic) > LM_INGEST_TOPIC_MAX)
		return LM_E2BIG;
	if (offset < 0 || partition < 0)
		return LM_EINVAL;
	p = find_part(b, topic, partition);
	if (p != NULL && offset < p->next)
		return LM_EINVAL;
	if (p == NULL) {
		if (b->nparts == b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 8;
			lm_ingest_partition *np = realloc(b->parts, cap * sizeof(*np));
			if (np == NULL)
				return LM_ENOMEM;
			b->parts = np;
			b->cap = cap;
		}
		p = &b->parts[b->nparts++];
		snprintf(p->topic, sizeof(p->topic), "%s", topic);
		p->partition = partition;
		p->epoch = epoch_of(b, topic);
		p->first = offset;
		p->reject = -1;
	}
	if (d->action == LM_INGEST_REJECT && p->reject < 0)
		p->reject = offset;
	p->next = offset + 1;
	d->pos.epoch = p->epoch;
	d->pos.partition = partition;
	d->pos.offset = offset;
	b->bytes += d->len;
	b->ds[b->n++] = *d;
	memset(d, 0, sizeof(*d));
	return LM_OK;
}

int
lm_ingest_batch_commit(
    lm_ingest_batch *b, lm_store *s, lm_ingest_counts *counts, uint64_t *last_seq)
{
	lm_ingest_counts c;
	lm_store_txn *t = NULL;
	int rv;

	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < b->n; i++) {
		if (b->ds[i].action == LM_INGEST_REJECT)
			c.rejected++;
		else
			c.store_ops++;
	}
	if (b->n == 0) {
		*counts = c;
		return LM_OK;
	}
	if ((rv = lm_ingest_positions_begin(s, &t)) != LM_OK)
		return rv;
	for (size_t i = 0; rv == LM_OK && i < b->nepochs; i++)
		rv = lm_ingest_epoch_put(t, b->epochs[i].topic, b->epochs[i].epoch);
	for (lm_kind k = LM_KIND_POSTING; rv == LM_OK && k <= LM_KIND_PROFILE; k++)
		if (b->sources[k].topic[0] != '\0')
			rv = lm_ingest_source_put(t, k, &b->sources[k]);
	if (rv == LM_OK)
		rv = put_offsets(b, t, false);
	if (rv != LM_OK) {
		lm_store_abort(t);
		return rv;
	}
	for (size_t i = 0; i < b->n; i++) {
		lm_ingest_decision *d = &b->ds[i];
		d->stored = false;
		if (d->action == LM_INGEST_PUT) {
			rv = lm_store_put_at(
			    t, d->kind, d->id, d->version, d->bytes, d->len, &d->pos);
			d->stored = rv == LM_OK;
			if (rv == LM_OK)
				c.stored[d->kind]++;
			else if (rv == LM_ESTALE)
				c.duplicates[d->kind]++;
		} else if (d->action == LM_INGEST_DELETE) {
			rv = lm_store_delete_at(t, d->kind, d->id, 0, &d->pos);
			if (rv == LM_OK)
				c.deleted[d->kind]++;
			else if (rv == LM_ENOENT || rv == LM_ESTALE)
				c.duplicates[d->kind]++;
		} else {
			continue;
		}
		/* A refill marks what it read, whatever it did to the store. */
		if (b->refill != 0 &&
		    (rv == LM_OK || rv == LM_ESTALE || rv == LM_ENOENT ||
		        rv == LM_EINVAL || rv == LM_E2BIG)) {
			int mv = lm_store_mark(t, d->kind, d->id);
			if (mv != LM_OK && mv != LM_EINVAL && mv != LM_E2BIG) {
				lm_store_abort(t);
				return mv;
			}
		}
		if (rv == LM_OK || rv == LM_ESTALE || rv == LM_ENOENT)
			continue;
		if (rv == LM_EINVAL || rv == LM_E2BIG) {
			/* The decision already checked id, version and size: a
			 * bug, not a reason to retry the batch forever. */
			lm_error("ingest.skip", "%s %s version %llu: %s",
			    lm_kind_name(d->kind), d->id, (unsigned long long) d->version,
			    lm_strerror(rv));
			continue;
		}
		lm_store_abort(t);
		return rv;
	}
	if ((rv = lm_store_commit(t, last_seq)) != LM_OK)
		return rv;
	for (size_t i = 0; i < b->n; i++) {
		const lm_ingest_decision *d = &b->ds[i];
		const char *w = d->warnings;
		if (!d->stored)
			continue;
		for (size_t j = 0; j < d->nwarnings; j++, w += strlen(w) + 1)
			lm_warn("ingest.compliance", "%s", w);
		for (size_t j = 0; j < d->ncompliance; j++)
			lm_counter_add(d->compliance[j], 1);
	}
	*counts = c;
	return LM_OK;
}

int64_t
lm_ingest_partition_stored(const lm_ingest_partition *p)
{
	return p->reject >= 0 ? p->reject : p->next;
}

int
lm_ingest_batch_commit_delivered(const lm_ingest_batch *b, lm_store *s)
{
	lm_store_txn *t = NULL;
	bool held = false;
	int rv;

	for (size_t i = 0; i < b->nparts && !held; i++)
		held = b->parts[i].reject >= 0;
	if (!held)
		return LM_OK;
	if ((rv = lm_store_begin(s, &t)) != LM_OK)
		return rv;
	if ((rv = put_offsets(b, t, true)) != LM_OK) {
		lm_store_abort(t);
		return rv;
	}
	return lm_store_commit(t, NULL);
}

const lm_ingest_partition *
lm_ingest_batch_partitions(const lm_ingest_batch *b, size_t *n)
{
	*n = b->nparts;
	return b->parts;
}

void
lm_ingest_batch_reset(lm_ingest_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		lm_ingest_decision_clear(&b->ds[i]);
	b->n = 0;
	b->bytes = 0;
	b->nparts = 0;
}
