/*
 * test_dqueue.c - the durable FIFO on real LMDB files: order, removal,
 * sequence numbers that keep growing across an empty queue and a reopen,
 * a full map that refuses appends, keeps what it holds and can always be
 * emptied (a full disk too), unsynced transactions and an explicit sync, and the limits;
 * peeks that read in slices: an append does not wait for a peek, a growing
 * map waits for one slice of it; keys that are no sequence number are
 * passed over, logged, removed and counted.
 */
#define _GNU_SOURCE 1 /* unshare, CLONE_NEWNS */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lmtest.h"
#include "storetest.h"
#include "lunamatch/clock.h"
#include "lunamatch/dqueue.h"
#include "lunamatch/error.h"

#define WAIT_MS 10000 /* longest wait for the other thread of a test */

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

/* Exit codes of the disk-full child (test_remove_when_disk_full). */
#define DISK_OK      0
#define DISK_NOMOUNT 77    /* no mount namespace here: the test is skipped */
#define DISK_MSGS    20000 /* more than the disk holds */

/*
 * In a private mount namespace, fills a 4 MiB tmpfs with small messages
 * through a queue whose map could grow far beyond it, then removes every
 * message in one call: the deletion copies every leaf page it empties
 * entries from, which found no room on the full disk, and a queue that
 * could not shrink stayed full for good. Returns DISK_OK,
 * DISK_NOMOUNT, or the line of the failed check.
 */
static int
fill_and_empty(const char *root)
{
	char *dir = qdir(root), msg[400];
	lm_dqueue *q = NULL;
	lm_dqueue_msg m[16];
	uint64_t first = 0, n = 0, *rm = malloc(DISK_MSGS * sizeof(*rm));
	int rc = LM_OK;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", root, "tmpfs", 0, "size=4m") != 0)
		return DISK_NOMOUNT;
	if (rm == NULL)
		return __LINE__;
	memset(msg, 'x', sizeof(msg));
	for (size_t i = 0; i < 16; i++)
		m[i] = (lm_dqueue_msg){msg, sizeof(msg)};
	if (lm_dqueue_open(dir, 64ull << 20, "test", &q) != LM_OK)
		return __LINE__;
	while (n + 16 <= DISK_MSGS && (rc = lm_dqueue_append(q, m, 16, &first)) == LM_OK)
		n += 16;
	while (n < DISK_MSGS && (rc = lm_dqueue_append(q, m, 1, &first)) == LM_OK)
		n++;
	if ((rc != LM_ENOSPC && rc != LM_EIO) || n < 4000)
		return __LINE__;
	for (uint64_t i = 0; i < n; i++)
		rm[i] = i + 1;
	/* The room a removal freed takes messages again (its pages are
	 * reusable only after another write commits). */
	if (lm_dqueue_remove(q, rm, 200) != LM_OK ||
	    lm_dqueue_append(q, m, 16, &first) != LM_OK || first != n + 1)
		return __LINE__;
	n += 16;
	while (n < DISK_MSGS && (rc = lm_dqueue_append(q, m, 1, &first)) == LM_OK)
		n++;
	if (rc != LM_ENOSPC && rc != LM_EIO)
		return __LINE__;
	for (uint64_t i = 200; i < n; i++)
		rm[i] = i + 1;
	if (lm_dqueue_remove(q, rm + 200, n - 200) != LM_OK || lm_dqueue_count(q) != 0)
		return __LINE__;
	if (lm_dqueue_append(q, m, 16, &first) != LM_OK || first != n + 1)
		return __LINE__;
	lm_dqueue_close(q);
	free(rm);
	free(dir);
	return DISK_OK;
}

static void
test_remove_when_disk_full(void **state)
{
	char *root = lmt_tmpdir("dqueue-disk-full");
	pid_t pid = fork();
	int status = 0;
	(void) state;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fill_and_empty(root));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	lmt_rmtree(root);
	free(root);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == DISK_NOMOUNT)
		skip(); /* needs CAP_SYS_ADMIN for a private tmpfs */
	if (WEXITSTATUS(status) != DISK_OK)
		fail_msg("disk-full check failed at line %d", WEXITSTATUS(status));
}

/* The seqs a pass of lm_dqueue_peek saw, in order; it stops (9) when
 * stop_at were seen (0: never) or cap are full. */
struct many {
	uint64_t *seqs;
	size_t n, cap, stop_at;
};

static int
collect_many(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct many *s = arg;
	(void) data;
	(void) len;
	if (s->n == s->cap || (s->stop_at != 0 && s->n == s->stop_at))
		return 9;
	s->seqs[s->n++] = seq;
	return 0;
}

/* A peek reads the queue in slices of LM_DQUEUE_PEEK_SLICE messages: over
 * their edges it passes every message once, in order, after `after`, at
 * most max, skips removed ones and stops when its callback does. */
static void
test_peek_slices(void **state)
{
	char *root = lmt_tmpdir("dqueue-slices"), *dir = qdir(root);
	enum { S = LM_DQUEUE_PEEK_SLICE, QUEUED = 2 * S + 3 };
	lm_dqueue_msg m[QUEUED];
	struct many s = {.cap = QUEUED};
	lm_dqueue *q = NULL;
	uint64_t first = 0, rm[5];
	(void) state;

	assert_non_null(s.seqs = calloc(QUEUED, sizeof(*s.seqs)));
	for (size_t i = 0; i < QUEUED; i++)
		m[i] = (lm_dqueue_msg){"m", 1};
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_append(q, m, QUEUED, &first), LM_OK);
	assert_int_equal(first, 1);

	assert_int_equal(lm_dqueue_peek(q, 0, 2 * S + 1, collect_many, &s), LM_OK);
	assert_int_equal(s.n, 2 * S + 1);
	for (size_t i = 0; i < s.n; i++)
		assert_int_equal(s.seqs[i], i + 1);
	s.n = 0;
	assert_int_equal(
	    lm_dqueue_peek(q, S - 1, LM_DQUEUE_BATCH_MAX, collect_many, &s), LM_OK);
	assert_int_equal(s.n, S + 4);
	for (size_t i = 0; i < s.n; i++)
		assert_int_equal(s.seqs[i], S + i);
	/* Five removed across the edge of the first slice. */
	for (size_t i = 0; i < 5; i++)
		rm[i] = S - 2 + i;
	assert_int_equal(lm_dqueue_remove(q, rm, 5), LM_OK);
	s.n = 0;
	assert_int_equal(
	    lm_dqueue_peek(q, 0, LM_DQUEUE_BATCH_MAX, collect_many, &s), LM_OK);
	assert_int_equal(s.n, QUEUED - 5);
	for (size_t i = 0; i < s.n; i++)
		assert_int_equal(s.seqs[i], i < S - 3 ? i + 1 : i + 6);
	s.n = 0;
	s.stop_at = S + 1;
	assert_int_equal(lm_dqueue_peek(q, 0, LM_DQUEUE_BATCH_MAX, collect_many, &s), 9);
	assert_int_equal(s.n, S + 1);
	s.n = 0;
	assert_int_equal(
	    lm_dqueue_peek(q, UINT64_MAX, LM_DQUEUE_BATCH_MAX, collect_many, &s), LM_OK);
	assert_int_equal(s.n, 0);
	assert_int_equal(
	    lm_dqueue_peek(q, QUEUED, LM_DQUEUE_BATCH_MAX, collect_many, &s), LM_OK);
	assert_int_equal(s.n, 0);
	lm_dqueue_close(q);
	free(s.seqs);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

/* A pass of lm_dqueue_peek while another thread appends msg: the callback
 * starts the append at the first message and waits there, at most WAIT_MS,
 * for it to return (until_returned) or to begin. */
struct overlap {
	lm_dqueue *q;
	lm_dqueue_msg msg;
	bool until_returned;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	bool go;           /* the callback asks for the append */
	bool begun;        /* the append is called */
	bool appended;     /* it returned */
	int rc;            /* its result */
	uint64_t seq;      /* the seq it got */
	bool during;       /* it returned while the callback waited */
	struct many seen;  /* the pass */
};

static void
overlap_init(struct overlap *o, lm_dqueue *q, size_t cap)
{
	pthread_condattr_t ca;

	memset(o, 0, sizeof(*o));
	o->q = q;
	pthread_mutex_init(&o->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cv, &ca);
	pthread_condattr_destroy(&ca);
	o->seen.cap = cap;
	assert_non_null(o->seen.seqs = calloc(cap, sizeof(*o->seen.seqs)));
}

static void
overlap_destroy(struct overlap *o)
{
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o->seen.seqs);
}

static void *
overlap_append(void *arg)
{
	struct overlap *o = arg;
	uint64_t seq = 0;

	pthread_mutex_lock(&o->mu);
	while (!o->go)
		pthread_cond_wait(&o->cv, &o->mu);
	o->begun = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	int rc = lm_dqueue_append(o->q, &o->msg, 1, &seq);
	pthread_mutex_lock(&o->mu);
	o->rc = rc;
	o->seq = seq;
	o->appended = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

static int
overlap_seen(void *arg, uint64_t seq, const void *data, size_t len)
{
	struct overlap *o = arg;
	int rc = collect_many(&o->seen, seq, data, len);
	if (rc != 0 || o->seen.n > 1)
		return rc;
	struct timespec until = lm_clock_deadline(WAIT_MS);
	pthread_mutex_lock(&o->mu);
	o->go = true;
	pthread_cond_broadcast(&o->cv);
	while (!(o->until_returned ? o->appended : o->begun) &&
	       pthread_cond_timedwait(&o->cv, &o->mu, &until) == 0)
		;
	o->during = o->appended;
	pthread_mutex_unlock(&o->mu);
	return 0;
}

/* Runs a peek of the whole queue with an append beside it (struct overlap);
 * returns the peek's result. A peek that called no callback lets the
 * append go once it returned. */
static int
overlap_run(struct overlap *o)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, overlap_append, o), 0);
	int rc = lm_dqueue_peek(o->q, 0, LM_DQUEUE_BATCH_MAX, overlap_seen, o);
	pthread_mutex_lock(&o->mu);
	o->go = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	assert_int_equal(pthread_join(t, NULL), 0);
	return rc;
}

/*
 * An append does not wait for a pass of lm_dqueue_peek, however many
 * messages the pass has: the append returns while the pass is inside its
 * callback, and a later slice of the pass passes the appended message
 * after the ones that were queued. The decision log's sender produces up
 * to 10,000 decisions in one pass, and the peek held the queue's lock for
 * all of it: the writer's synced appends, and every answer waiting for
 * its decision to be logged, waited for the whole pass.
 */
static void
test_append_during_peek(void **state)
{
	char *root = lmt_tmpdir("dqueue-overlap"), *dir = qdir(root);
	enum { QUEUED = 2 * LM_DQUEUE_PEEK_SLICE + 1 };
	lm_dqueue_msg m[QUEUED];
	lm_dqueue *q = NULL;
	struct overlap o;
	uint64_t first = 0;
	(void) state;

	for (size_t i = 0; i < QUEUED; i++)
		m[i] = (lm_dqueue_msg){"queued", 6};
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_append(q, m, QUEUED, &first), LM_OK);
	overlap_init(&o, q, QUEUED + 1);
	o.msg = (lm_dqueue_msg){"new", 3};
	o.until_returned = true;

	assert_int_equal(overlap_run(&o), LM_OK);
	assert_int_equal(o.rc, LM_OK);
	assert_true(o.during);
	assert_int_equal(o.seq, first + QUEUED);
	assert_int_equal(o.seen.n, QUEUED + 1);
	for (size_t i = 0; i < o.seen.n; i++)
		assert_int_equal(o.seen.seqs[i], first + i);
	assert_int_equal(lm_dqueue_count(q), QUEUED + 1);
	overlap_destroy(&o);
	lm_dqueue_close(q);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

/*
 * An append that grows the map while a peek passes a full map's messages
 * (tens of thousands: the growth usually comes in the middle of the pass):
 * the growth waits for the slice the peek is in, since no transaction may
 * be open then, and the peek's next slice for the growth. Both complete,
 * the peek passes every message that was queued, in order, and the
 * appended one if the growth came before its last slice.
 */
static void
test_grow_during_peek(void **state)
{
	char *root = lmt_tmpdir("dqueue-grow"), *dir = qdir(root);
	enum { LEN = 200, BATCH = 1000 };
	char msg[LEN];
	lm_dqueue_msg m[BATCH];
	lm_dqueue *q = NULL;
	struct overlap o;
	uint64_t first = 0, n = 0;
	int rc;
	(void) state;

	memset(msg, 'x', sizeof(msg));
	for (size_t i = 0; i < BATCH; i++)
		m[i] = (lm_dqueue_msg){msg, LEN};
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	while ((rc = lm_dqueue_append(q, m, BATCH, &first)) == LM_OK)
		n += BATCH;
	for (size_t b = BATCH / 10; b > 0; b /= 10)
		while ((rc = lm_dqueue_append(q, m, b, &first)) == LM_OK)
			n += b;
	assert_int_equal(rc, LM_EMAPFULL);
	assert_true(n > 100 * LM_DQUEUE_PEEK_SLICE && n < LM_DQUEUE_BATCH_MAX);
	lm_dqueue_close(q);
	/* The same queue, allowed to grow: the next append must. */
	assert_int_equal(lm_dqueue_open(dir, 4 * LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	overlap_init(&o, q, n + 1);
	o.msg = m[0];

	assert_int_equal(overlap_run(&o), LM_OK);
	assert_int_equal(o.rc, LM_OK);
	assert_int_equal(o.seq, n + 1);
	assert_true(o.seen.n == n || o.seen.n == n + 1);
	for (size_t i = 0; i < o.seen.n; i++)
		assert_int_equal(o.seen.seqs[i], i + 1);
	assert_int_equal(lm_dqueue_count(q), n + 1);
	overlap_destroy(&o);
	lm_dqueue_close(q);
	lmt_rmtree(root);
	free(dir);
	free(root);
}

/*
 * Keys that are no sequence number (not 8 bytes, or seq 0: disk damage or
 * another program's write), before the first message, between two, at a
 * slice's end and after the last, are passed over by a peek, logged once
 * each with the queue's name and their size, removed and counted; the
 * messages are read as ever. (A peek used to fail on such a key with
 * LM_ESTORE, and the key stayed counted for good.)
 */
static void
test_damaged_keys(void **state)
{
	enum { QUEUED = LM_DQUEUE_PEEK_SLICE + 4 };
	char *root = lmt_tmpdir("dqueue"), *dir = qdir(root), *log;
	unsigned char keys[6][9];
	size_t lens[6] = {3, 9, 8, 9, 9, 9};
	const uint64_t at[6] = {0, 0, 0, 2, LM_DQUEUE_PEEK_SLICE, QUEUED};
	lm_dqueue_msg m[QUEUED];
	lm_dqueue *q = NULL;
	uint64_t seqs[QUEUED];
	struct many s;
	lmt_capture cap;
	uint64_t first = 0;
	(void) state;

	for (size_t i = 0; i < QUEUED; i++)
		m[i] = (lm_dqueue_msg){"m", 1};
	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_append(q, m, QUEUED, &first), LM_OK);
	assert_int_equal(first, 1);
	lm_dqueue_close(q);
	/* Big-endian seq at[i] and an extra byte: 3 zero bytes (before seq
	 * 1), seq 0 with one more byte, seq 0 itself, and keys right after
	 * seq 2, the last seq of the first slice and the last seq. */
	for (size_t i = 0; i < 6; i++) {
		for (int b = 0; b < 8; b++)
			keys[i][b] = (unsigned char) (at[i] >> (56 - 8 * b));
		keys[i][8] = 'x';
		lmt_store_poke(dir, "messages", keys[i], lens[i], "x", 1);
	}

	assert_int_equal(lm_dqueue_open(dir, LM_DQUEUE_MAP_SIZE, "test", &q), LM_OK);
	assert_int_equal(lm_dqueue_count(q), QUEUED + 6);
	assert_int_equal(lm_dqueue_damaged(q), 0);
	s = (struct many){.seqs = seqs, .cap = QUEUED};
	lmt_stderr_begin(&cap);
	int rc = lm_dqueue_peek(q, 0, LM_DQUEUE_BATCH_MAX, collect_many, &s);
	log = lmt_stderr_end(&cap);
	assert_int_equal(rc, LM_OK);
	assert_int_equal(s.n, QUEUED);
	for (size_t i = 0; i < s.n; i++)
		assert_int_equal(s.seqs[i], i + 1);
	assert_int_equal(lmt_count(log, "\"test.corrupt\""), 6);
	assert_int_equal(lmt_count(log, "key of 9 bytes"), 4);
	assert_int_equal(lmt_count(log, "key of 3 bytes"), 1);
	assert_null(strstr(log, "record store"));
	free(log);
	assert_int_equal(lm_dqueue_count(q), QUEUED);
	assert_int_equal(lm_dqueue_damaged(q), 6);

	/* Gone: a second pass finds them no more. */
	s = (struct many){.seqs = seqs, .cap = QUEUED};
	lmt_stderr_begin(&cap);
	assert_int_equal(
	    lm_dqueue_peek(q, 1, LM_DQUEUE_BATCH_MAX, collect_many, &s), LM_OK);
	log = lmt_stderr_end(&cap);
	assert_int_equal(s.n, QUEUED - 1);
	assert_null(strstr(log, "corrupt"));
	free(log);
	lm_dqueue_close(q);
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
	    cmocka_unit_test(test_remove_when_disk_full),
	    cmocka_unit_test(test_peek_slices),
	    cmocka_unit_test(test_append_during_peek),
	    cmocka_unit_test(test_grow_during_peek),
	    cmocka_unit_test(test_damaged_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
