/*
 * test_outbox.c - the durable outbox of new-match events on real LMDB files
 * in a temporary directory: threshold crossings and re-announcement, the
 * cursor written atomically with the events, pending / delivered / failed
 * bookkeeping, persistence across close and reopen, map growth, a full map
 * that still drains, and the event id (checked against sha256sum).
 */
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/error.h"
#include "lunamatch/pb.h"
#include "outbox.h"
#include "proc.h"

#define NOW 1750000000LL
#define MV  "model-1"

static char *tmp;
static char obdir[4096];

static int
setup(void **state)
{
	(void) state;
	tmp = lmt_tmpdir("outbox");
	snprintf(obdir, sizeof(obdir), "%s/outbox", tmp);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lmt_rmtree(tmp);
	free(tmp);
	return 0;
}

static lm_outbox *
open_ob(void)
{
	lm_outbox *ob = NULL;
	assert_int_equal(lm_outbox_open(obdir, &ob), LM_OK);
	assert_non_null(ob);
	return ob;
}

static lm_event_candidate
cand(const char *c, const char *j, uint64_t cv, uint64_t jv, double score,
    lm_pair_state st)
{
	lm_event_candidate x;
	memset(&x, 0, sizeof(x));
	x.candidate_id = c;
	x.job_id = j;
	x.candidate_version = cv;
	x.job_version = jv;
	x.score = score;
	x.state = st;
	x.trigger = LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_POSTING;
	x.summary = "4 of 5 skills";
	return x;
}

/* Enqueues one candidate and returns the number of events added. */
static size_t
enq1(lm_outbox *ob, lm_event_candidate c, uint64_t cursor)
{
	size_t n = 99;
	assert_int_equal(lm_outbox_enqueue_batch(ob, &c, 1, MV, NOW, cursor, &n), LM_OK);
	return n;
}

static lm_outbox_counts
counts(lm_outbox *ob)
{
	lm_outbox_counts c;
	assert_int_equal(lm_outbox_counts_get(ob, &c), LM_OK);
	return c;
}

static Lunamatch__V1__MatchEvent *
event_of(const Lunamatch__V1__OutboxEntry *e)
{
	ProtobufCMessage *m = NULL;
	char err[128];
	assert_int_equal(lm_pb_decode(&lunamatch__v1__match_event__descriptor,
	                     e->event.data, e->event.len, 65536, &m, err, sizeof(err)),
	    LM_OK);
	return (Lunamatch__V1__MatchEvent *) m;
}

/* ---- tests ---------------------------------------------------------------- */

static void
test_open_errors(void **state)
{
	lm_outbox *ob = (lm_outbox *) 1, *ob2 = (lm_outbox *) 1;
	char path[4200];
	FILE *f;
	(void) state;

	assert_int_equal(lm_outbox_open(NULL, &ob), LM_EINVAL);
	assert_null(ob);
	assert_int_equal(lm_outbox_open("", &ob), LM_EINVAL);
	snprintf(path, sizeof(path), "%s/file", tmp);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(lm_outbox_open(path, &ob), LM_EINVAL); /* not a directory */
	snprintf(path, sizeof(path), "%s/missing/outbox", tmp);
	assert_int_equal(lm_outbox_open(path, &ob), LM_ENOENT); /* parent missing */

	ob = open_ob(); /* creates the directory */
	assert_int_equal(lm_outbox_open(obdir, &ob2), LM_EEXIST);
	assert_null(ob2);
	lm_outbox_close(ob);
	lm_outbox_close(NULL);
	ob = open_ob(); /* open again after close */
	lm_outbox_close(ob);
}

static void
test_event_id(void **state)
{
	char a[LM_OUTBOX_EVENT_ID_LEN + 1], b[LM_OUTBOX_EVENT_ID_LEN + 1];
	(void) state;

	lm_event_id("c1", "j1", 1, 2, MV, a);
	assert_int_equal(strlen(a), 32);
	for (size_t i = 0; i < 32; i++)
		assert_true((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
	lm_event_id("c1", "j1", 1, 2, MV, b);
	assert_string_equal(a, b); /* deterministic */
	/* Every input counts. */
	lm_event_id("c2", "j1", 1, 2, MV, b);
	assert_string_not_equal(a, b);
	lm_event_id("c1", "j2", 1, 2, MV, b);
	assert_string_not_equal(a, b);
	lm_event_id("c1", "j1", 2, 2, MV, b);
	assert_string_not_equal(a, b);
	lm_event_id("c1", "j1", 1, 3, MV, b);
	assert_string_not_equal(a, b);
	lm_event_id("c1", "j1", 1, 2, "model-2", b);
	assert_string_not_equal(a, b);
	/* Fields are length-prefixed: moving bytes between ids changes it. */
	lm_event_id("c1j", "1", 1, 2, MV, b);
	assert_string_not_equal(a, b);
	lm_event_id("c1", "j1", 2, 1, MV, b);
	assert_string_not_equal(a, b); /* versions are not interchangeable */
}

/* Appends a u32 length and the string to buf. */
static size_t
put_str(unsigned char *buf, size_t off, const char *s)
{
	size_t n = strlen(s);
	buf[off] = (unsigned char) (n >> 24);
	buf[off + 1] = (unsigned char) (n >> 16);
	buf[off + 2] = (unsigned char) (n >> 8);
	buf[off + 3] = (unsigned char) n;
	memcpy(buf + off + 4, s, n);
	return off + 4 + n;
}

static size_t
put_u64(unsigned char *buf, size_t off, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		buf[off + (size_t) i] = (unsigned char) (v & 0xff);
		v >>= 8;
	}
	return off + 8;
}

/* The id is the first 128 bits of SHA-256 over the layout documented in
 * docs/events.md; sha256sum computes the reference. */
static void
test_event_id_is_sha256(void **state)
{
	unsigned char buf[1024];
	char path[4200], line[256], id[LM_OUTBOX_EVENT_ID_LEN + 1];
	const char *argv[] = {"sha256sum", path, NULL};
	lmt_proc *p = NULL;
	size_t off = 0;
	FILE *f;
	int st;
	(void) state;

	off = put_str(buf, off, "lunamatch.v1.MatchEvent");
	off = put_str(buf, off, "cand-7");
	off = put_str(buf, off, "job:42");
	off = put_u64(buf, off, 3);
	off = put_u64(buf, off, 0x0102030405060708ULL);
	off = put_str(buf, off, "default-2025.1");
	snprintf(path, sizeof(path), "%s/layout.bin", tmp);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(buf, 1, off, f), off);
	fclose(f);

	if (lmt_proc_start(argv, NULL, &p) == LM_ENOENT)
		skip();
	assert_non_null(p);
	assert_int_equal(lmt_proc_readline(p, line, sizeof(line), 10000), LM_OK);
	assert_int_equal(lmt_proc_wait(p, 10000, &st), LM_OK);
	assert_int_equal(st, 0);
	lmt_proc_free(p);

	assert_int_equal(lm_event_id("cand-7", "job:42", 3, 0x0102030405060708ULL,
	                     "default-2025.1", id),
	    LM_OK);
	assert_memory_equal(id, line, 32);
}

static void
test_enqueue_and_entry(void **state)
{
	lm_outbox *ob = open_ob();
	Lunamatch__V1__OutboxEntry *e = NULL;
	Lunamatch__V1__MatchEvent *me;
	lm_outbox_pair pr;
	char id[LM_OUTBOX_EVENT_ID_LEN + 1];
	lm_outbox_counts c;
	(void) state;

	assert_int_equal(enq1(ob, cand("c1", "j1", 1, 2, 0.8, LM_PAIR_ABOVE), 0), 1);
	c = counts(ob);
	assert_int_equal(c.pending, 1);
	assert_int_equal(c.enqueued_total, 1);
	assert_int_equal(c.pairs, 1);

	lm_event_id("c1", "j1", 1, 2, MV, id);
	assert_int_equal(lm_outbox_get_entry(ob, id, &e), LM_OK);
	assert_int_equal(e->attempts, 0);
	assert_int_equal(e->enqueued_at, NOW);
	assert_string_equal(e->last_error, "");
	me = event_of(e);
	assert_string_equal(me->event_id, id);
	assert_int_equal(
	    me->type, LUNAMATCH__V1__MATCH_EVENT_TYPE__MATCH_EVENT_TYPE_NEW_MATCH);
	assert_string_equal(me->candidate_id, "c1");
	assert_string_equal(me->job_id, "j1");
	assert_float_equal(me->score, 0.8, 0);
	assert_int_equal(
	    me->trigger, LUNAMATCH__V1__MATCH_TRIGGER__MATCH_TRIGGER_NEW_POSTING);
	assert_string_equal(me->explanation_summary, "4 of 5 skills");
	assert_string_equal(me->model_version, MV);
	assert_int_equal(me->created_at, NOW);
	assert_int_equal(me->candidate_version, 1);
	assert_int_equal(me->job_version, 2);
	protobuf_c_message_free_unpacked(&me->base, NULL);
	protobuf_c_message_free_unpacked(&e->base, NULL);

	assert_int_equal(lm_outbox_get_pair(ob, "c1", "j1", &pr), LM_OK);
	assert_true(pr.above);
	assert_string_equal(pr.other_id, "j1");
	assert_float_equal(pr.score, 0.8, 0);
	assert_int_equal(pr.candidate_version, 1);
	assert_int_equal(pr.job_version, 2);
	assert_int_equal(pr.updated_at, NOW);
	assert_int_equal(lm_outbox_get_pair(ob, "c1", "j2", &pr), LM_ENOENT);
	lm_outbox_close(ob);
}

static void
test_crossing(void **state)
{
	lm_outbox *ob = open_ob();
	lm_outbox_pair pr;
	char id1[33], id2[33];
	(void) state;

	/* Above for the first time: announced. */
	assert_int_equal(enq1(ob, cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	/* Still above with new versions and score: no second announcement. */
	assert_int_equal(enq1(ob, cand("c1", "j1", 2, 1, 0.95, LM_PAIR_ABOVE), 0), 0);
	assert_int_equal(lm_outbox_get_pair(ob, "c1", "j1", &pr), LM_OK);
	assert_true(pr.above);
	assert_int_equal(pr.candidate_version, 2); /* the state is refreshed */
	assert_float_equal(pr.score, 0.95, 0);
	/* Drops below: recorded, nothing announced. */
	assert_int_equal(enq1(ob, cand("c1", "j1", 3, 1, 0.4, LM_PAIR_BELOW), 0), 0);
	assert_int_equal(lm_outbox_get_pair(ob, "c1", "j1", &pr), LM_OK);
	assert_false(pr.above);
	assert_int_equal(enq1(ob, cand("c1", "j1", 4, 1, 0.3, LM_PAIR_BELOW), 0), 0);
	/* Rises again: announced again, with the new state's id. */
	assert_int_equal(enq1(ob, cand("c1", "j1", 5, 1, 0.85, LM_PAIR_ABOVE), 0), 1);
	assert_int_equal(counts(ob).pending, 2);
	lm_event_id("c1", "j1", 1, 1, MV, id1);
	lm_event_id("c1", "j1", 5, 1, MV, id2);
	assert_int_equal(lm_outbox_mark_delivered(ob, id1), LM_OK);
	assert_int_equal(lm_outbox_mark_delivered(ob, id2), LM_OK);

	/* A pair that is only ever below is recorded but never announced. */
	assert_int_equal(enq1(ob, cand("c2", "j1", 1, 1, 0.1, LM_PAIR_BELOW), 0), 0);
	assert_int_equal(lm_outbox_get_pair(ob, "c2", "j1", &pr), LM_OK);
	assert_false(pr.above);
	assert_int_equal(enq1(ob, cand("c2", "j1", 1, 2, 0.9, LM_PAIR_ABOVE), 0), 1);

	/* Down and up again in the same state: the event of that state is
	 * pending already, so it is not written twice; once delivered, a new
	 * crossing writes it again (consumers de-duplicate by event_id). */
	assert_int_equal(enq1(ob, cand("c3", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	assert_int_equal(enq1(ob, cand("c3", "j1", 1, 1, 0.2, LM_PAIR_BELOW), 0), 0);
	assert_int_equal(enq1(ob, cand("c3", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 0);
	lm_event_id("c3", "j1", 1, 1, MV, id1);
	assert_int_equal(lm_outbox_mark_delivered(ob, id1), LM_OK);
	assert_int_equal(enq1(ob, cand("c3", "j1", 1, 1, 0.2, LM_PAIR_BELOW), 0), 0);
	assert_int_equal(enq1(ob, cand("c3", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);

	/* GONE forgets the pair: a later match is new again. */
	assert_int_equal(enq1(ob, cand("c1", "j1", 0, 0, 0, LM_PAIR_GONE), 0), 0);
	assert_int_equal(lm_outbox_get_pair(ob, "c1", "j1", &pr), LM_ENOENT);
	assert_int_equal(
	    enq1(ob, cand("c1", "j1", 0, 0, 0, LM_PAIR_GONE), 0), 0); /* no-op */
	assert_int_equal(enq1(ob, cand("c1", "j1", 6, 2, 0.9, LM_PAIR_ABOVE), 0), 1);
	lm_outbox_close(ob);
}

static void
test_batch_order(void **state)
{
	lm_outbox *ob = open_ob();
	lm_event_candidate c[4];
	size_t n = 0;
	(void) state;

	/* Later candidates of a pair see the earlier ones of the same batch. */
	c[0] = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[1] = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[2] = cand("c1", "j1", 1, 1, 0.1, LM_PAIR_BELOW);
	c[3] = cand("c1", "j1", 2, 1, 0.9, LM_PAIR_ABOVE);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 4, MV, NOW, 0, &n), LM_OK);
	assert_int_equal(n, 2);
	assert_int_equal(counts(ob).pending, 2);
	assert_int_equal(lm_outbox_enqueue_batch(ob, NULL, 0, MV, NOW, 0, &n), LM_OK);
	assert_int_equal(n, 0);
	lm_outbox_close(ob);
}

static void
test_invalid_batch(void **state)
{
	lm_outbox *ob = open_ob();
	lm_event_candidate c[2];
	char long_id[200];
	size_t n = 7;
	(void) state;

	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	c[0] = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[1] = cand("c2", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[1].job_id = NULL;
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_EINVAL);
	assert_int_equal(n, 0);
	c[1].job_id = long_id;
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_EINVAL);
	c[1].job_id = "bad id"; /* outside the record id alphabet */
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_EINVAL);
	c[1].job_id = "j1";
	c[1].score = 1.5;
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_EINVAL);
	c[1].score = NAN;
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_EINVAL);
	c[1].score = 0.9;
	c[1].state = (lm_pair_state) 9;
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_EINVAL);
	c[1].state = LM_PAIR_ABOVE;
	c[1].summary = "\xff\xfe";
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_EINVAL);
	c[1].summary = NULL; /* allowed: empty summary */
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, NULL, NOW, 5, &n), LM_EINVAL);
	assert_int_equal(
	    lm_outbox_enqueue_batch(ob, c, 2, long_id, NOW, 5, &n), LM_EINVAL);
	assert_int_equal(
	    lm_outbox_enqueue_batch(ob, c, LM_OUTBOX_BATCH_MAX + 1, MV, NOW, 5, &n),
	    LM_EINVAL);
	assert_int_equal(lm_outbox_enqueue_batch(ob, NULL, 1, MV, NOW, 5, &n), LM_EINVAL);
	assert_int_equal(lm_outbox_enqueue_batch(NULL, c, 2, MV, NOW, 5, &n), LM_EINVAL);

	/* Nothing of the rejected batches was written: the valid first
	 * candidate is announced by the first batch that goes through. */
	uint64_t cur = 1;
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 0);
	assert_int_equal(counts(ob).pending, 0);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 5, &n), LM_OK);
	assert_int_equal(n, 2);
	lm_outbox_close(ob);
}

static void
test_summary_cut(void **state)
{
	lm_outbox *ob = open_ob();
	char summary[LM_OUTBOX_SUMMARY_MAX + 16];
	Lunamatch__V1__OutboxEntry *e = NULL;
	Lunamatch__V1__MatchEvent *me;
	char id[33];
	lm_event_candidate c = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	(void) state;

	/* 1023 ASCII bytes, then a 3-byte character across the limit. */
	memset(summary, 'a', LM_OUTBOX_SUMMARY_MAX - 1);
	memcpy(summary + LM_OUTBOX_SUMMARY_MAX - 1, "\xe2\x82\xac tail", 9);
	summary[LM_OUTBOX_SUMMARY_MAX + 8] = '\0';
	c.summary = summary;
	assert_int_equal(enq1(ob, c, 0), 1);
	lm_event_id("c1", "j1", 1, 1, MV, id);
	assert_int_equal(lm_outbox_get_entry(ob, id, &e), LM_OK);
	me = event_of(e); /* decodes: still valid UTF-8 */
	assert_int_equal(strlen(me->explanation_summary), LM_OUTBOX_SUMMARY_MAX - 1);
	protobuf_c_message_free_unpacked(&me->base, NULL);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	lm_outbox_close(ob);
}

static void
test_cursor(void **state)
{
	lm_outbox *ob = open_ob();
	lm_event_candidate c[2];
	uint64_t cur = 99;
	size_t n = 0;
	(void) state;

	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 0);
	c[0] = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[1] = cand("c2", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 1, MV, NOW, 10, &n), LM_OK);
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 10);
	/* Cursor 0: left alone. */
	assert_int_equal(lm_outbox_enqueue_batch(ob, NULL, 0, MV, NOW, 0, &n), LM_OK);
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 10);
	/* A batch ending before the cursor is refused as a whole: neither the
	 * events nor the pair states are written. */
	assert_int_equal(
	    lm_outbox_enqueue_batch(ob, &c[1], 1, MV, NOW, 9, &n), LM_ESTALE);
	assert_int_equal(n, 0);
	assert_int_equal(counts(ob).pending, 1);
	lm_outbox_pair pr;
	assert_int_equal(lm_outbox_get_pair(ob, "c2", "j1", &pr), LM_ENOENT);
	/* The same seq again is allowed (an empty tail of a batch). */
	assert_int_equal(lm_outbox_enqueue_batch(ob, &c[1], 1, MV, NOW, 10, &n), LM_OK);
	assert_int_equal(n, 1);
	assert_int_equal(lm_outbox_set_cursor(ob, 8), LM_ESTALE);
	assert_int_equal(lm_outbox_set_cursor(ob, 12), LM_OK);
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 12);
	assert_int_equal(lm_outbox_get_cursor(NULL, &cur), LM_EINVAL);
	lm_outbox_close(ob);

	/* The cursor is durable. */
	ob = open_ob();
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 12);
	lm_outbox_close(ob);
}

/* The store identity next to the cursor; a rebase may lower the cursor. */
static void
test_store_id_and_rebase(void **state)
{
	lm_outbox *ob = open_ob();
	char id[LM_OUTBOX_STORE_ID_MAX + 1], small[4], longid[LM_OUTBOX_STORE_ID_MAX + 2];
	uint64_t cur = 0;
	(void) state;

	assert_int_equal(lm_outbox_get_store_id(ob, id, sizeof(id)), LM_ENOENT);
	assert_string_equal(id, "");
	assert_int_equal(lm_outbox_set_cursor(ob, 40), LM_OK);
	assert_int_equal(lm_outbox_rebase(ob, "store-a", 40), LM_OK);
	assert_int_equal(lm_outbox_get_store_id(ob, id, sizeof(id)), LM_OK);
	assert_string_equal(id, "store-a");
	assert_int_equal(lm_outbox_get_store_id(ob, small, sizeof(small)), LM_E2BIG);
	/* Another store: the cursor goes back, which set_cursor refuses. */
	assert_int_equal(lm_outbox_set_cursor(ob, 3), LM_ESTALE);
	assert_int_equal(lm_outbox_rebase(ob, "store-b", 3), LM_OK);
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 3);
	/* Bad input. */
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(lm_outbox_rebase(ob, longid, 0), LM_EINVAL);
	assert_int_equal(lm_outbox_rebase(ob, "", 0), LM_EINVAL);
	assert_int_equal(lm_outbox_rebase(ob, NULL, 0), LM_EINVAL);
	assert_int_equal(lm_outbox_rebase(NULL, "x", 0), LM_EINVAL);
	assert_int_equal(lm_outbox_get_store_id(NULL, id, sizeof(id)), LM_EINVAL);
	assert_int_equal(lm_outbox_get_store_id(ob, NULL, 1), LM_EINVAL);
	lm_outbox_close(ob);

	/* Durable. */
	ob = open_ob();
	assert_int_equal(lm_outbox_get_store_id(ob, id, sizeof(id)), LM_OK);
	assert_string_equal(id, "store-b");
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 3);
	lm_outbox_close(ob);
}

struct collect {
	char ids[64][33];
	uint32_t attempts[64];
	size_t n;
	size_t stop_after;
};

static int
collect_cb(void *arg, const char *event_id, const Lunamatch__V1__OutboxEntry *entry)
{
	struct collect *c = arg;
	assert_true(c->n < 64);
	memcpy(c->ids[c->n], event_id, 33);
	c->attempts[c->n] = entry->attempts;
	c->n++;
	return c->stop_after != 0 && c->n >= c->stop_after;
}

/* For lm_outbox_pending_skip: the first two ids of `before` are skipped,
 * the entries shown are collected in `shown`. */
struct skip_pair {
	struct collect before, shown;
};

static bool
skip_pair_skip(void *arg, const char *event_id)
{
	const struct collect *before = &((struct skip_pair *) arg)->before;
	return strcmp(event_id, before->ids[0]) == 0 ||
	       strcmp(event_id, before->ids[1]) == 0;
}

static int
skip_pair_cb(void *arg, const char *event_id, const Lunamatch__V1__OutboxEntry *entry)
{
	return collect_cb(&((struct skip_pair *) arg)->shown, event_id, entry);
}

static void
test_pending_delivered_failed(void **state)
{
	lm_outbox *ob = open_ob();
	lm_event_candidate c[5];
	const char *cids[5] = {"c1", "c2", "c3", "c4", "c5"};
	struct collect col;
	Lunamatch__V1__OutboxEntry *e = NULL;
	lm_outbox_counts k;
	char id[33];
	size_t n;
	(void) state;

	for (int i = 0; i < 5; i++)
		c[i] = cand(cids[i], "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 5, MV, NOW, 0, &n), LM_OK);
	assert_int_equal(n, 5);

	memset(&col, 0, sizeof(col));
	assert_int_equal(lm_outbox_pending(ob, 100, collect_cb, &col), LM_OK);
	assert_int_equal(col.n, 5);
	for (size_t i = 1; i < col.n; i++)
		assert_true(strcmp(col.ids[i - 1], col.ids[i]) < 0); /* event_id order */
	memset(&col, 0, sizeof(col));
	assert_int_equal(lm_outbox_pending(ob, 2, collect_cb, &col), LM_OK);
	assert_int_equal(col.n, 2); /* max */
	memset(&col, 0, sizeof(col));
	col.stop_after = 3;
	assert_int_equal(lm_outbox_pending(ob, 100, collect_cb, &col), LM_OK);
	assert_int_equal(col.n, 3); /* the callback stops */
	/* Entries skipped by id are not shown and count towards max. */
	{
		struct skip_pair sp;
		memset(&sp, 0, sizeof(sp));
		sp.before = col;
		assert_int_equal(
		    lm_outbox_pending_skip(ob, 4, skip_pair_skip, skip_pair_cb, &sp),
		    LM_OK);
		assert_int_equal(sp.shown.n, 2);
		assert_string_equal(sp.shown.ids[0], col.ids[2]);
		assert_true(strcmp(sp.shown.ids[1], col.ids[2]) > 0);
	}

	/* Failures count attempts and keep the entry. */
	lm_event_id("c1", "j1", 1, 1, MV, id);
	assert_int_equal(
	    lm_outbox_mark_failed(ob, id, "Local: Message timed out"), LM_OK);
	assert_int_equal(lm_outbox_mark_failed(ob, id, "_MSG_TIMED_OUT"), LM_OK);
	assert_int_equal(lm_outbox_get_entry(ob, id, &e), LM_OK);
	assert_int_equal(e->attempts, 2);
	assert_string_equal(e->last_error, "_MSG_TIMED_OUT");
	protobuf_c_message_free_unpacked(&e->base, NULL);
	/* A long error is cut; a NULL one is empty. */
	char longerr[LM_OUTBOX_ERROR_MAX + 50];
	memset(longerr, 'e', sizeof(longerr) - 1);
	longerr[sizeof(longerr) - 1] = '\0';
	assert_int_equal(lm_outbox_mark_failed(ob, id, longerr), LM_OK);
	assert_int_equal(lm_outbox_get_entry(ob, id, &e), LM_OK);
	assert_int_equal(strlen(e->last_error), LM_OUTBOX_ERROR_MAX);
	assert_int_equal(e->attempts, 3);
	protobuf_c_message_free_unpacked(&e->base, NULL);

	k = counts(ob);
	assert_int_equal(k.pending, 5);
	assert_int_equal(k.failed_total, 3);

	/* Delivery removes; repeated and unknown ids are skipped. */
	assert_int_equal(lm_outbox_mark_delivered(ob, id), LM_OK);
	assert_int_equal(lm_outbox_mark_delivered(ob, id), LM_ENOENT);
	assert_int_equal(lm_outbox_mark_failed(ob, id, "x"), LM_ENOENT);
	assert_int_equal(lm_outbox_get_entry(ob, id, &e), LM_ENOENT);
	assert_null(e);
	char ids[4][33];
	const char *idp[5];
	for (int i = 0; i < 4; i++) {
		lm_event_id(cids[i + 1], "j1", 1, 1, MV, ids[i]);
		idp[i] = ids[i];
	}
	idp[4] = id; /* already delivered */
	assert_int_equal(lm_outbox_mark_delivered_batch(ob, idp, 5, &n), LM_OK);
	assert_int_equal(n, 4);
	k = counts(ob);
	assert_int_equal(k.pending, 0);
	assert_int_equal(k.delivered_total, 5);
	assert_int_equal(k.enqueued_total, 5);

	/* Malformed ids. */
	assert_int_equal(lm_outbox_mark_delivered(ob, "abc"), LM_EINVAL);
	assert_int_equal(
	    lm_outbox_mark_delivered(ob, "0123456789ABCDEF0123456789abcdef"), LM_EINVAL);
	assert_int_equal(lm_outbox_mark_failed(ob, NULL, "x"), LM_EINVAL);
	assert_int_equal(lm_outbox_get_entry(ob, "zz", &e), LM_EINVAL);
	assert_int_equal(lm_outbox_pending(ob, 10, NULL, NULL), LM_EINVAL);
	lm_outbox_close(ob);
}

static void
test_pairs_of(void **state)
{
	lm_outbox *ob = open_ob();
	lm_event_candidate c[5];
	lm_outbox_pair *p = NULL;
	size_t n = 0;
	bool trunc = true;
	(void) state;

	c[0] = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[1] = cand("c1", "j2", 1, 1, 0.2, LM_PAIR_BELOW);
	c[2] = cand("c2", "j1", 1, 1, 0.8, LM_PAIR_ABOVE);
	c[3] = cand("c10", "j1", 1, 1, 0.8, LM_PAIR_ABOVE); /* "c1" is a prefix of it */
	c[4] = cand("c1", "j10", 1, 1, 0.8, LM_PAIR_ABOVE);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 5, MV, NOW, 0, NULL), LM_OK);

	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_CANDIDATE, "c1", 100, &p, &n, &trunc),
	    LM_OK);
	assert_int_equal(n, 3);
	assert_false(trunc);
	assert_string_equal(p[0].other_id, "j1");
	assert_true(p[0].above);
	assert_string_equal(p[1].other_id, "j10");
	assert_string_equal(p[2].other_id, "j2");
	assert_false(p[2].above);
	assert_float_equal(p[2].score, 0.2, 0);
	free(p);

	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_JOB, "j1", 100, &p, &n, &trunc), LM_OK);
	assert_int_equal(n, 3);
	assert_string_equal(p[0].other_id, "c1");
	assert_string_equal(p[1].other_id, "c10");
	assert_string_equal(p[2].other_id, "c2");
	assert_float_equal(p[2].score, 0.8, 0);
	free(p);

	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_JOB, "j1", 2, &p, &n, &trunc), LM_OK);
	assert_int_equal(n, 2);
	assert_true(trunc);
	free(p);

	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_JOB, "j9", 10, &p, &n, &trunc), LM_OK);
	assert_int_equal(n, 0);
	assert_null(p);

	/* GONE removes the pair from both views. */
	c[0] = cand("c1", "j1", 0, 0, 0, LM_PAIR_GONE);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 1, MV, NOW, 0, NULL), LM_OK);
	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_JOB, "j1", 10, &p, &n, NULL), LM_OK);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].other_id, "c10");
	free(p);
	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_CANDIDATE, "c1", 10, &p, &n, NULL), LM_OK);
	assert_int_equal(n, 2);
	free(p);

	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_JOB, "j1", 0, &p, &n, NULL), LM_EINVAL);
	assert_int_equal(
	    lm_outbox_pairs_of(ob, (lm_outbox_side) 7, "j1", 10, &p, &n, NULL),
	    LM_EINVAL);
	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_JOB, "", 10, &p, &n, NULL), LM_EINVAL);
	lm_outbox_close(ob);
}

/* Paging with lm_outbox_pairs_after visits every pair of a subject once,
 * in order, on both sides; a pair removed between two pages is not needed
 * to resume. */
static void
test_pairs_after(void **state)
{
	static const char *const jobs[] = {"j1", "j10", "j2", "j3", "j4"};
	lm_outbox *ob = open_ob();
	lm_event_candidate c[6];
	lm_outbox_pair *p = NULL;
	size_t n = 0, seen = 0;
	bool trunc = true;
	char after[LM_OUTBOX_ID_MAX + 1] = "";
	(void) state;

	for (size_t i = 0; i < 5; i++)
		c[i] = cand("c1", jobs[i], 1, 1, 0.5, LM_PAIR_BELOW);
	c[5] = cand("c10", "j1", 1, 1, 0.5, LM_PAIR_BELOW); /* another subject */
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 6, MV, NOW, 0, NULL), LM_OK);

	do {
		assert_int_equal(lm_outbox_pairs_after(ob, LM_OUTBOX_CANDIDATE, "c1",
		                     after, 2, &p, &n, &trunc, NULL),
		    LM_OK);
		assert_true(n <= 2);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(p[i].other_id, jobs[seen++]);
		if (n > 0)
			snprintf(after, sizeof(after), "%s", p[n - 1].other_id);
		free(p);
		/* The last pair read goes away before the next read. */
		if (strcmp(after, "j10") == 0) {
			c[0] = cand("c1", "j10", 0, 0, 0, LM_PAIR_GONE);
			assert_int_equal(
			    lm_outbox_enqueue_batch(ob, c, 1, MV, NOW, 0, NULL), LM_OK);
		}
	} while (trunc);
	assert_int_equal(seen, 5);

	/* By job, after a candidate id that is a prefix of another. */
	assert_int_equal(lm_outbox_pairs_after(
	                     ob, LM_OUTBOX_JOB, "j1", "c1", 10, &p, &n, &trunc, NULL),
	    LM_OK);
	assert_int_equal(n, 1);
	assert_false(trunc);
	assert_string_equal(p[0].other_id, "c10");
	free(p);
	assert_int_equal(lm_outbox_pairs_after(
	                     ob, LM_OUTBOX_JOB, "j1", NULL, 10, &p, &n, &trunc, NULL),
	    LM_OK);
	assert_int_equal(n, 2);
	free(p);
	assert_int_equal(lm_outbox_pairs_after(
	                     ob, LM_OUTBOX_JOB, "j1", "c10", 10, &p, &n, &trunc, NULL),
	    LM_OK);
	assert_int_equal(n, 0);
	assert_null(p);
	lm_outbox_close(ob);
}

/* Overwrites the recorded state of pair cid/jid in the outbox (no process
 * holds it open) with bytes that do not decode. */
static void
damage_pair(const char *cid, const char *jid)
{
	char key[300];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	static const unsigned char junk[] = {0xff, 0x00, 0x01};
	int n = snprintf(key, sizeof(key), "%s%c%s", cid, '\0', jid);

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, obdir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "announced", 0, &dbi), 0);
	k.mv_size = (size_t) n;
	k.mv_data = key;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	v.mv_size = sizeof(junk);
	v.mv_data = (void *) junk;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/*
 * A recorded pair state that does not decode (disk damage) is taken as
 * not above: the pairs of either record are still listed, and the next
 * write of the pair replaces it (a pair above announces again). Before,
 * every read of the record's pairs and every write of the pair failed, so
 * the derivation of each of its records failed at every retry and held up
 * the events of their partitions for good.
 */
/*
 * lm_outbox_pair_ids_after visits every pair once, page by page, in key
 * order (candidate id, then job id: "c1" before "c10", both before "c2"),
 * also when the last pair read is forgotten before the next page; its
 * arguments are checked.
 */
static void
test_pair_ids_after(void **state)
{
	static const char *const want[][2] = {{"c1", "j1"}, {"c1", "j2"}, {"c10", "j1"},
	    {"c2", "j1"}, {"c2", "j10"}, {"c3", "j3"}};
	lm_outbox *ob = open_ob();
	lm_event_candidate c[6];
	lm_outbox_pair_ids *ids = NULL, last;
	size_t n = 0, seen = 0;
	bool more = true;
	(void) state;

	for (size_t i = 0; i < 6; i++)
		c[5 - i] = cand(want[i][0], want[i][1], 1, 1, 0.5,
		    i % 2 ? LM_PAIR_ABOVE : LM_PAIR_BELOW);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 6, MV, NOW, 0, NULL), LM_OK);
	memset(&last, 0, sizeof(last));
	do {
		assert_int_equal(lm_outbox_pair_ids_after(ob, last.candidate_id,
		                     last.job_id, 3, &ids, &n, &more),
		    LM_OK);
		assert_true(n <= 3);
		for (size_t i = 0; i < n; i++, seen++) {
			assert_string_equal(ids[i].candidate_id, want[seen][0]);
			assert_string_equal(ids[i].job_id, want[seen][1]);
		}
		if (n > 0)
			last = ids[n - 1];
		free(ids);
		if (strcmp(last.candidate_id, "c10") == 0) { /* the first page's last */
			c[0] = cand("c10", "j1", 0, 0, 0, LM_PAIR_GONE);
			assert_int_equal(
			    lm_outbox_enqueue_batch(ob, c, 1, MV, NOW, 0, NULL), LM_OK);
		}
	} while (more);
	assert_int_equal(seen, 6);

	/* Past the last pair: nothing, no more. */
	assert_int_equal(
	    lm_outbox_pair_ids_after(ob, "c3", "j3", 10, &ids, &n, &more), LM_OK);
	assert_int_equal(n, 0);
	assert_null(ids);
	assert_false(more);
	assert_int_equal(
	    lm_outbox_pair_ids_after(ob, "", NULL, 0, &ids, &n, &more), LM_EINVAL);
	assert_int_equal(
	    lm_outbox_pair_ids_after(ob, "c1", "", 1, &ids, &n, &more), LM_EINVAL);
	assert_int_equal(
	    lm_outbox_pair_ids_after(ob, NULL, NULL, 1, &ids, &n, NULL), LM_EINVAL);
	lm_outbox_close(ob);
}

static void
test_damaged_pair_state(void **state)
{
	lm_outbox *ob = open_ob();
	lm_event_candidate c[2];
	lm_outbox_pair *p = NULL, pr;
	size_t n = 0;
	(void) state;

	c[0] = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[1] = cand("c2", "j1", 1, 1, 0.8, LM_PAIR_ABOVE);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 2, MV, NOW, 0, NULL), LM_OK);
	lm_outbox_close(ob);
	damage_pair("c1", "j1");

	ob = open_ob();
	assert_int_equal(lm_outbox_get_pair(ob, "c1", "j1", &pr), LM_ESTORE);
	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_CANDIDATE, "c1", 10, &p, &n, NULL), LM_OK);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].other_id, "j1");
	assert_false(p[0].above);
	free(p);
	assert_int_equal(
	    lm_outbox_pairs_of(ob, LM_OUTBOX_JOB, "j1", 10, &p, &n, NULL), LM_OK);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].other_id, "c1");
	assert_false(p[0].above);
	assert_string_equal(p[1].other_id, "c2");
	assert_true(p[1].above);
	free(p);
	/* Written again: above now, and announced (at new versions). */
	assert_int_equal(enq1(ob, cand("c1", "j1", 2, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	assert_int_equal(lm_outbox_get_pair(ob, "c1", "j1", &pr), LM_OK);
	assert_true(pr.above);
	assert_int_equal(pr.candidate_version, 2);
	lm_outbox_close(ob);
}

static void
test_persistence(void **state)
{
	lm_outbox *ob = open_ob();
	lm_event_candidate c[3];
	lm_outbox_pair pr;
	lm_outbox_counts k;
	struct collect col;
	char id[33];
	(void) state;

	c[0] = cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[1] = cand("c2", "j1", 1, 1, 0.9, LM_PAIR_ABOVE);
	c[2] = cand("c3", "j1", 1, 1, 0.3, LM_PAIR_BELOW);
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, 3, MV, NOW, 42, NULL), LM_OK);
	lm_event_id("c1", "j1", 1, 1, MV, id);
	assert_int_equal(lm_outbox_mark_delivered(ob, id), LM_OK);
	lm_event_id("c2", "j1", 1, 1, MV, id);
	assert_int_equal(lm_outbox_mark_failed(ob, id, "broker down"), LM_OK);
	lm_outbox_close(ob);

	ob = open_ob();
	k = counts(ob);
	assert_int_equal(k.pending, 1);
	assert_int_equal(k.enqueued_total, 2);
	assert_int_equal(k.delivered_total, 1);
	assert_int_equal(k.failed_total, 1);
	assert_int_equal(k.pairs, 3);
	memset(&col, 0, sizeof(col));
	assert_int_equal(lm_outbox_pending(ob, 10, collect_cb, &col), LM_OK);
	assert_int_equal(col.n, 1);
	assert_string_equal(col.ids[0], id);
	assert_int_equal(col.attempts[0], 1);
	/* The crossing state survives: c1 is not announced again... */
	assert_int_equal(enq1(ob, cand("c1", "j1", 2, 1, 0.9, LM_PAIR_ABOVE), 0), 0);
	/* ...and c3, below before the restart, is announced when it rises. */
	assert_int_equal(lm_outbox_get_pair(ob, "c3", "j1", &pr), LM_OK);
	assert_false(pr.above);
	assert_int_equal(enq1(ob, cand("c3", "j1", 2, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	uint64_t cur;
	assert_int_equal(lm_outbox_get_cursor(ob, &cur), LM_OK);
	assert_int_equal(cur, 42);
	lm_outbox_close(ob);
}

/* An outbox written with another schema version is refused. */
static void
test_schema_mismatch(void **state)
{
	lm_outbox *ob = open_ob();
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, (void *) "schema"}, v = {1, (void *) "9"};
	(void) state;

	lm_outbox_close(ob);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, obdir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	ob = (lm_outbox *) 1;
	assert_int_equal(lm_outbox_open(obdir, &ob), LM_ESCHEMA);
	assert_null(ob);
}

/* One batch larger than the initial map: the map grows and the batch is
 * written whole. */
static void
test_map_growth(void **state)
{
	enum { N = 60000 };
	lm_outbox *ob = open_ob();
	lm_event_candidate *c = calloc(N, sizeof(*c));
	char(*ids)[24] = calloc(N, 24);
	char summary[LM_OUTBOX_SUMMARY_MAX + 1];
	size_t n = 0;
	(void) state;

	assert_non_null(c);
	assert_non_null(ids);
	memset(summary, 's', LM_OUTBOX_SUMMARY_MAX);
	summary[LM_OUTBOX_SUMMARY_MAX] = '\0';
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], 24, "cand-%06d", i);
		c[i] = cand(ids[i], "job-1", 1, 1, 0.9, LM_PAIR_ABOVE);
		c[i].summary = summary;
	}
	assert_int_equal(lm_outbox_enqueue_batch(ob, c, N, MV, NOW, 7, &n), LM_OK);
	assert_int_equal(n, N);
	lm_outbox_close(ob);
	ob = open_ob();
	assert_int_equal(counts(ob).pending, N);
	assert_int_equal(counts(ob).pairs, N);
	lm_outbox_close(ob);
	free(c);
	free(ids);
}

struct idlist {
	char (*id)[LM_OUTBOX_EVENT_ID_LEN + 1];
	const char **ptr;
	size_t n;
};

static int
collect_id(void *arg, const char *event_id, const Lunamatch__V1__OutboxEntry *entry)
{
	struct idlist *l = arg;
	(void) entry;
	memcpy(l->id[l->n], event_id, LM_OUTBOX_EVENT_ID_LEN + 1);
	l->ptr[l->n] = l->id[l->n];
	l->n++;
	return 0;
}

/* An outbox whose largest map is full removes the events the broker
 * acknowledged, a sender's batch of them and then the rest, and then takes
 * new ones: in one transaction the deletion found no room in the full map,
 * and the outbox stayed full for good. */
static void
test_full_map_drains(void **state)
{
	enum { BATCH = 500, ACKED = 5000 };
	lm_outbox *ob = open_ob();
	lm_event_candidate *c = calloc(BATCH, sizeof(*c));
	char(*ids)[48] = calloc(BATCH, 48);
	char summary[LM_OUTBOX_SUMMARY_MAX + 1];
	struct idlist l = {
	    calloc(ACKED, LM_OUTBOX_EVENT_ID_LEN + 1), calloc(ACKED, sizeof(char *)), 0};
	size_t n = 0, total = 0, removed = 0;
	int rc, round = 0;
	(void) state;

	assert_non_null(c);
	assert_non_null(ids);
	assert_non_null(l.id);
	assert_non_null(l.ptr);
	memset(summary, 's', LM_OUTBOX_SUMMARY_MAX);
	summary[LM_OUTBOX_SUMMARY_MAX] = '\0';
	lm_outbox_set_map_max(ob, LM_OUTBOX_MAP_SIZE);
	for (size_t size = BATCH;; round++) {
		for (size_t i = 0; i < size; i++) {
			snprintf(ids[i], 48, "cand-%03d-%04zu", round, i);
			c[i] = cand(ids[i], "job-1", 1, 1, 0.9, LM_PAIR_ABOVE);
			c[i].summary = summary;
		}
		rc = lm_outbox_enqueue_batch(ob, c, size, MV, NOW, 0, &n);
		if (rc == LM_OK)
			total += n;
		else if (size > 1)
			size = 1; /* fill what is left one by one */
		else
			break;
	}
	assert_int_equal(rc, LM_EMAPFULL);
	assert_true(total > ACKED);
	assert_int_equal(counts(ob).pending, total);

	assert_int_equal(lm_outbox_pending(ob, ACKED, collect_id, &l), LM_OK);
	assert_int_equal(l.n, ACKED);
	assert_int_equal(
	    lm_outbox_mark_delivered_batch(ob, l.ptr, ACKED, &removed), LM_OK);
	assert_int_equal(removed, ACKED);
	assert_int_equal(counts(ob).pending, total - ACKED);
	assert_int_equal(counts(ob).delivered_total, ACKED);
	c[0] = cand("cand-new", "job-1", 1, 1, 0.9, LM_PAIR_ABOVE);
	assert_int_equal(enq1(ob, c[0], 0), 1);
	lm_outbox_close(ob);
	free(l.id);
	free(l.ptr);
	free(c);
	free(ids);
}

/* The results of the next write transactions, in order (then LM_OK). */
struct script {
	int rc[4];
	size_t n, at;
};

static int
script_fault(void *arg)
{
	struct script *s = arg;
	return s->at < s->n ? s->rc[s->at++] : LM_OK;
}

/*
 * A deletion split for a full map that fails partway reports what it did
 * remove, which the delivered total counts. Before, it reported 0 while
 * the total had grown by the first part, so that the caller's count of
 * deliveries fell behind the total for good (the ids it tries again are
 * not pending any more).
 */
static void
test_split_delivery_fails_partway(void **state)
{
	lm_outbox *ob = open_ob();
	struct idlist l = {
	    calloc(4, LM_OUTBOX_EVENT_ID_LEN + 1), calloc(4, sizeof(char *)), 0};
	/* The whole deletion finds the map full; of its halves, the first is
	 * written and the second fails. */
	struct script sc = {{LM_EMAPFULL, LM_OK, LM_ESTORE}, 3, 0};
	size_t removed = 99;
	(void) state;

	assert_non_null(l.id);
	assert_non_null(l.ptr);
	assert_int_equal(enq1(ob, cand("c1", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	assert_int_equal(enq1(ob, cand("c2", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	assert_int_equal(enq1(ob, cand("c3", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	assert_int_equal(enq1(ob, cand("c4", "j1", 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
	assert_int_equal(lm_outbox_pending(ob, 4, collect_id, &l), LM_OK);
	assert_int_equal(l.n, 4);
	lm_outbox_set_map_max(ob, LM_OUTBOX_MAP_SIZE);
	lm_outbox_set_fault(ob, script_fault, &sc);

	assert_int_equal(
	    lm_outbox_mark_delivered_batch(ob, l.ptr, 4, &removed), LM_ESTORE);
	assert_int_equal(sc.at, 3);
	assert_int_equal(counts(ob).pending, 2);
	assert_int_equal(removed, 2);
	assert_int_equal(counts(ob).delivered_total, 2);
	/* Tried again: the rest are removed and counted once. */
	assert_int_equal(lm_outbox_mark_delivered_batch(ob, l.ptr, 4, &removed), LM_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(counts(ob).pending, 0);
	assert_int_equal(counts(ob).delivered_total, 4);
	lm_outbox_close(ob);
	free(l.id);
	free(l.ptr);
}

/*
 * A full disk splits a deletion as a full map does: the write that failed
 * for want of room (LM_ENOSPC, or LM_EIO, LMDB's report of a write a full
 * disk cut short) is done in halves. Before, the outbox retried the whole
 * deletion, which found no room again, and never drained.
 */
static void
test_split_delivery_disk_full(void **state)
{
	static const int full[] = {LM_ENOSPC, LM_EIO};
	(void) state;

	for (size_t f = 0; f < sizeof(full) / sizeof(full[0]); f++) {
		lm_outbox *ob = open_ob();
		struct idlist l = {
		    calloc(4, LM_OUTBOX_EVENT_ID_LEN + 1), calloc(4, sizeof(char *)), 0};
		struct script sc = {{full[f]}, 1, 0};
		size_t removed = 99;

		assert_non_null(l.id);
		assert_non_null(l.ptr);
		const char *job = f == 0 ? "j1" : "j2";

		assert_int_equal(
		    enq1(ob, cand("c1", job, 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
		assert_int_equal(
		    enq1(ob, cand("c2", job, 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
		assert_int_equal(
		    enq1(ob, cand("c3", job, 1, 1, 0.9, LM_PAIR_ABOVE), 0), 1);
		assert_int_equal(lm_outbox_pending(ob, 3, collect_id, &l), LM_OK);
		assert_int_equal(l.n, 3);
		lm_outbox_set_fault(ob, script_fault, &sc);
		assert_int_equal(
		    lm_outbox_mark_delivered_batch(ob, l.ptr, 3, &removed), LM_OK);
		assert_int_equal(sc.at, 1);
		assert_int_equal(removed, 3);
		assert_int_equal(counts(ob).pending, 0);
		assert_int_equal(counts(ob).delivered_total, 3 * (f + 1));
		lm_outbox_close(ob);
		free(l.id);
		free(l.ptr);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test(test_event_id),
	    cmocka_unit_test_setup_teardown(test_event_id_is_sha256, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enqueue_and_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crossing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_summary_cut, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cursor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_id_and_rebase, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_pending_delivered_failed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pairs_of, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pairs_after, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pair_ids_after, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_pair_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_map_drains, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_split_delivery_fails_partway, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_split_delivery_disk_full, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
