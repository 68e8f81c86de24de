/*
 * test_dqueue.c - the durable FIFO on real LMDB files: order, removal,
 * sequence numbers that keep growing across an empty queue and a reopen,
 * a full map that refuses appends, keeps what it holds and can always be
 * emptied, unsynced transactions and an explicit sync, and the limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtest.h"
#include "lunamatch/dqueue.h"
#include "lunamatch/error.h"

struct seen {
	uint64_t seqs[64];
	char data[64][16];
	size_t n;
	size_t stop_at; /* return 9 on this many; 0: never */
};

static int
collect(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct seen *s = arg;
	if (s->stop_at != 0 && s->n == s->stop_at)
		return 9;
	assert_true(s->n < 64 && len < 16);
	s->seqs[s->n] = seq;
	memcpy(s->data[s->n], data, len);
	s->data[s->n][len] = '\0';
	s->n++;
	return 0;
}

static char *
qdir(const char *root)
{
	char *p = malloc(strlen(root) + 8);
	assert_non_null(p);
	sprintf(p, "%s/q", root);
	return p;
}

static void
test_fifo(void **state)
{
	char *root = lmt_tmpdir("dqueue"), *dir = qdir(root);
	lm_dqueue *q = NULL, *again = NULL;
	lm_dqueue_msg m[3] = {{"a", 1}, {"bb", 2}, {"", 0}};
	struct seen s = {0};
	uint64_t first = 0;
	(void) state;

	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(
	    lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &again), LM_EEXIST);
	assert_null(again);
	assert_int_equal(lm_dqueue_append(q, m, 3, &first), LM_OK);
	assert_int_equal(first, 1);
	assert_int_equal(lm_dqueue_append(q, &m[1], 1, &first), LM_OK);
	assert_int_equal(first, 4);
	assert_int_equal(lm_dqueue_count(q), 4);

	assert_int_equal(lm_dqueue_peek(q, 0, 10, collect, &s), LM_OK);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.data[0], "a");
	assert_string_equal(s.data[1], "bb");
	assert_string_equal(s.data[2], "");
	assert_int_equal(s.seqs[3], 4);
	/* After a seq, at most max, and a callback that stops. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(lm_dqueue_peek(q, 1, 2, collect, &s), LM_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.seqs[0], 2);
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	assert_int_equal(lm_dqueue_peek(q, 0, 10, collect, &s), 9);

	/* Removal, of queued and unknown seqs. */
	uint64_t rm[] = {1, 3, 77};
	assert_int_equal(lm_dqueue_remove(q, rm, 3), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 2);
	memset(&s, 0, sizeof(s));
	assert_int_equal(lm_dqueue_peek(q, 0, 10, collect, &s), LM_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.seqs[0], 2);
	assert_int_equal(s.seqs[1], 4);

	/* Emptied and reopened: what is left survives, seqs keep growing. */
	uint64_t rm2[] = {2, 4};
	assert_int_equal(lm_dqueue_remove(q, rm2, 2), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 0);
	assert_int_equal(lm_dqueue_append(q, m, 1, &first), LM_OK);
	lm_dqueue_close(q);
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 1);
	assert_int_equal(lm_dqueue_append(q, m, 1, &first), LM_OK);
	assert_int_equal(first, 6);

	/* Unsynced transactions, then an explicit sync: the same queue. */
	assert_int_equal(lm_dqueue_set_sync(q, false), LM_OK);
	assert_int_equal(lm_dqueue_append(q, m, 2, &first), LM_OK);
	assert_int_equal(first, 7);
	assert_int_equal(lm_dqueue_sync(q), LM_OK);
	assert_int_equal(lm_dqueue_set_sync(q, true), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 4);
	assert_int_equal(lm_dqueue_set_sync(NULL, true), LM_EINVAL);
	assert_int_equal(lm_dqueue_sync(NULL), LM_EINVAL);
	lm_dqueue_close(q);
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 4);
	lm_dqueue_close(q);
	lm_dqueue_close(NULL);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

/* At its largest map the queue refuses appends and keeps what it holds;
 * removing messages makes room again. A smaller limit than the initial map, an
 * empty batch and a message over the limit are refused. */
static void
test_limits(void **state)
{
	char *root = lmt_tmpdir("dqueue-full"), *dir = qdir(root);
	lm_dqueue *q = NULL;
	char *big = calloc(1, LM_DQUEUE_MSG_MAX + 1);
	lm_dqueue_msg m = {big, LM_DQUEUE_MSG_MAX};
	uint64_t first = 0, n = 0;
	int rc = LM_OK;
	(void) state;

	assert_non_null(big);
	assert_int_equal(
	    lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE - 1, "test", &q), LM_EINVAL);
	assert_int_equal(lm_dqueue_open(dir, 2 * LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_append(q, &m, 0, NULL), LM_EINVAL);
	m.len = LM_DQUEUE_MSG_MAX + 1;
	assert_int_equal(lm_dqueue_append(q, &m, 1, NULL), LM_E2BIG);
	m.len = LM_DQUEUE_MSG_MAX;
	for (int i = 0; i < 64 && (rc = lm_dqueue_append(q, &m, 1, &first)) == LM_OK; i++)
		n++;
	assert_int_equal(rc, LM_EMAPFULL);
	assert_true(n > 16); /* the map grew once before it was full */
	assert_int_equal(lm_dqueue_count(q), n);
	uint64_t rm[] = {1, 2, 3, 4};
	assert_int_equal(lm_dqueue_remove(q, rm, 4), LM_OK);
	m.len = 1024;
	assert_int_equal(lm_dqueue_append(q, &m, 1, &first), LM_OK);
	assert_int_equal(first, n + 1);
	assert_int_equal(lm_dqueue_count(q), n - 3);
	lm_dqueue_close(q);
	free(big);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

/* A queue whose largest map is full of small messages still removes them:
 * a deletion copies the pages on its path (LMDB never writes in place), so
 * it needs room too, and may take a little beyond the largest map. */
static void
test_remove_when_full(void **state)
{
	char *root = lmt_tmpdir("dqueue-full-small"), *dir = qdir(root);
	lm_dqueue *q = NULL;
	char small[200];
	lm_dqueue_msg m[64];
	uint64_t first = 0, n = 0, rm[64];
	int rc = LM_OK;
	(void) state;

	memset(small, 'x', sizeof(small));
	for (size_t i = 0; i < 64; i++)
		m[i] = (lm_dqueue_msg){small, sizeof(small)};
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	while ((rc = lm_dqueue_append(q, m, 64, &first)) == LM_OK)
		n += 64;
	assert_int_equal(rc, LM_EMAPFULL);
	while ((rc = lm_dqueue_append(q, m, 1, &first)) == LM_OK)
		n++;
	assert_int_equal(rc, LM_EMAPFULL);
	for (uint64_t i = 0; i < 64; i++)
		rm[i] = i + 1;
	assert_int_equal(lm_dqueue_remove(q, rm, 1), LM_OK);
	assert_int_equal(lm_dqueue_remove(q, rm + 1, 63), LM_OK);
	assert_int_equal(lm_dqueue_count(q), n - 64);
	lm_dqueue_close(q);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

/* A full queue emptied by one removal takes messages of the size that
 * filled it again: LMDB reuses the pages a commit freed only after a later
 * write commits, and an append that fails is aborted, so 1 MiB appends into
 * the emptied queue kept failing with LM_EMAPFULL until a smaller write
 * committed. */
static void
test_append_after_emptied(void **state)
{
	char *root = lmt_tmpdir("dqueue-refill"), *dir = qdir(root);
	lm_dqueue *q = NULL;
	char *big = malloc(LM_DQUEUE_MSG_MAX);
	uint64_t first = 0, n = 0, seq[64];
	int rc;
	(void) state;

	assert_non_null(big);
	memset(big, 'x', LM_DQUEUE_MSG_MAX);
	lm_dqueue_msg m = {big, LM_DQUEUE_MSG_MAX};
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	while ((rc = lm_dqueue_append(q, &m, 1, &first)) == LM_OK)
		seq[n++] = first;
	assert_int_equal(rc, LM_EMAPFULL);
	assert_true(n > 4 && n < 64);
	assert_int_equal(lm_dqueue_remove(q, seq, n), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(lm_dqueue_append(q, &m, 1, &first), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 5);
	lm_dqueue_close(q);
	free(big);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

/* A queue whose largest map is full of messages of a decision's size
 * (3 KB) removes a sender's batch of 1,250, then everything: in one
 * transaction the deletion found no room, and the queue stayed full for
 * good. */
static void
test_remove_batch_when_full(void **state)
{
	char *root = lmt_tmpdir("dqueue-full-batch"), *dir = qdir(root);
	lm_dqueue *q = NULL;
	char *msg = malloc(3000);
	lm_dqueue_msg m[16];
	uint64_t first = 0, n = 0, *rm;
	int rc = LM_OK;
	(void) state;

	assert_non_null(msg);
	memset(msg, 'x', 3000);
	for (size_t i = 0; i < 16; i++)
		m[i] = (lm_dqueue_msg){msg, 3000};
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	while ((rc = lm_dqueue_append(q, m, 16, &first)) == LM_OK)
		n += 16;
	while ((rc = lm_dqueue_append(q, m, 1, &first)) == LM_OK)
		n++;
	assert_int_equal(rc, LM_EMAPFULL);
	assert_true(n > 1250);
	assert_non_null(rm = malloc(n * sizeof(*rm)));
	for (uint64_t i = 0; i < n; i++)
		rm[i] = i + 1;
	assert_int_equal(lm_dqueue_remove(q, rm, 1250), LM_OK);
	assert_int_equal(lm_dqueue_count(q), n - 1250);
	assert_int_equal(lm_dqueue_append(q, m, 16, &first), LM_OK);
	assert_int_equal(first, n + 1);
	assert_int_equal(lm_dqueue_remove(q, rm + 1250, n - 1250), LM_OK);
	assert_int_equal(lm_dqueue_count(q), 16);
	lm_dqueue_close(q);
	free(rm);
	free(msg);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fifo),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_remove_when_full),
	    cmocka_unit_test(test_append_after_emptied),
	    cmocka_unit_test(test_remove_batch_when_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
