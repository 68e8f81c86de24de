/*
 * test_lmdb.c - the shared LMDB helpers on real environments in temporary
 * directories: error conversion, opening, named databases and the schema
 * check, map growth (by this process, and adopted after another process grew
 * it), the directory registry across fork(), big-endian keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lmtest.h"
#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/lmdb.h"

#define SMALL_MAP (256u * 1024)

static MDB_env *
open_env(const char *dir, uint64_t map, unsigned flags)
{
	lm_lmdb_env_opts o = {
	    .max_dbs = 4, .map_size = map, .flags = flags, .mode = 0600};
	MDB_env *env = NULL;
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_OK);
	assert_non_null(env);
	return env;
}

/* Waits for child pid and asserts that it exited with status 0. */
static void
expect_child_ok(pid_t pid)
{
	int st = -1;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st))
		fail_msg("child died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_err(void **state)
{
	(void) state;
	assert_int_equal(lm_lmdb_err(MDB_SUCCESS, "test", "x"), LM_OK);
	assert_int_equal(lm_lmdb_err(MDB_NOTFOUND, "test", "x"), LM_ENOENT);
	assert_int_equal(lm_lmdb_err(MDB_MAP_FULL, "test", "x"), LM_EMAPFULL);
	assert_int_equal(lm_lmdb_err(MDB_READERS_FULL, "test", "x"), LM_EBUSY);
	assert_int_equal(lm_lmdb_err(MDB_TXN_FULL, "test", "x"), LM_EBUSY);
	assert_int_equal(lm_lmdb_err(MDB_CORRUPTED, "test", "x"), LM_ESTORE);
	assert_int_equal(lm_lmdb_err(MDB_INVALID, NULL, "x"), LM_ESTORE);
	assert_int_equal(lm_lmdb_err(ENOMEM, "test", "x"), LM_ENOMEM);
	assert_int_equal(lm_lmdb_err(ENOENT, "test", "x"), LM_ENOENT);
	assert_int_equal(lm_lmdb_err(EACCES, "test", "x"), lm_err_from_errno(EACCES));
	/* A domain longer than the limit is cut in the event name, not refused. */
	assert_int_equal(
	    lm_lmdb_err(MDB_CORRUPTED,
	        "a-domain-name-that-is-much-longer-than-thirty-two-bytes", "x"),
	    LM_ESTORE);
}

static void
test_env_open(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("lmdb-open");
	char missing[1024];
	lm_lmdb_env_opts o = {.max_dbs = 2, .map_size = SMALL_MAP, .mode = 0600};
	MDB_env *env = (MDB_env *) &o; /* must be reset to NULL on error */

	assert_int_equal(lm_lmdb_env_open(dir, NULL, "test", &env), LM_EINVAL);
	assert_null(env);
	assert_int_equal(lm_lmdb_env_open(NULL, &o, "test", &env), LM_EINVAL);
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", NULL), LM_EINVAL);
	o.max_dbs = 0;
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_EINVAL);
	o.max_dbs = 2;
	o.map_size = 0;
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_EINVAL);
	o.map_size = SMALL_MAP;

	/* A missing directory, and read-only on a directory without files. */
	snprintf(missing, sizeof(missing), "%s/none", dir);
	env = (MDB_env *) &o;
	assert_int_equal(lm_lmdb_env_open(missing, &o, "test", &env), LM_ENOENT);
	assert_null(env);
	o.flags = MDB_RDONLY;
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_ENOENT);
	o.flags = 0;

	/* Created with the configured map, reader slots and file mode. */
	o.max_readers = 7;
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_OK);
	assert_int_equal(lm_lmdb_map_size(env), SMALL_MAP);
	unsigned readers = 0;
	assert_int_equal(mdb_env_get_maxreaders(env, &readers), MDB_SUCCESS);
	assert_int_equal(readers, 7);
	struct stat st;
	char path[1100];
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	mdb_env_close(env);
	lmt_rmtree(dir);
	free(dir);
}

/* Writes n values of 1000 bytes into a new environment in dir, in one
 * transaction, and closes it. */
static void
fill_env(const char *dir, unsigned n)
{
	char val[1000];
	MDB_env *env = open_env(dir, 4u << 20, 0);
	MDB_txn *txn;
	MDB_dbi dbi;

	memset(val, 'v', sizeof(val));
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), MDB_SUCCESS);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), MDB_SUCCESS);
	for (unsigned i = 0; i < n; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%05u", i);
		MDB_val k = {strlen(key), key}, v = {sizeof(val), val};
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), MDB_SUCCESS);
	}
	assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);
	mdb_env_close(env);
}

/* A data file cut short is refused at open (LM_ESTORE) instead of being
 * mapped and read past its end (SIGBUS), where the cut shows without
 * reading the trees (lm_lmdb_env_open). */
static void
test_env_open_truncated(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("lmdb-cut");
	char path[1100];
	MDB_env *env;
	struct stat st;

	fill_env(dir, 400);

	/* Whole, it opens; cut to half, it does not, writable or read-only. */
	env = open_env(dir, 4u << 20, 0);
	mdb_env_close(env);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 64 * 1024);
	/* Cut within a page, and cut to whole pages below the main tree's
	 * root (the last commit wrote it after the leaves it points to). */
	const off_t cuts[] = {st.st_size / 2 + 100, 3 * 4096};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		assert_int_equal(truncate(path, cuts[i]), 0);
		lm_lmdb_env_opts o = {.max_dbs = 4, .map_size = 4u << 20, .mode = 0600};
		env = (MDB_env *) &o;
		assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_ESTORE);
		assert_null(env);
		o.flags = MDB_RDONLY;
		assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_ESTORE);
	}
	lmt_rmtree(dir);
	free(dir);
}

/* A meta page whose main-tree root is garbage so large that its end
 * overflows 64 bits is taken for what it is, a page past the file's end
 * (LM_ESTORE), not for one within it: the first read would otherwise go
 * through the map to nowhere. Both metas get it (the newer one counts). */
static void
test_env_open_garbage_root(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("lmdb-root");
	char path[1100];
	MDB_env *env;
	/* The main tree's root: after the page header (16), the meta's magic,
	 * version, address and map size (24) and the free-page tree (48), at
	 * offset 40 of its MDB_db. */
	const off_t root_at = 16 + 24 + 48 + 40;
	/* LMDB's page is the system's; (root + 1) * psize wraps. */
	const long psize = sysconf(_SC_PAGESIZE);
	const uint64_t garbage = UINT64_MAX / (uint64_t) psize + 1;
	int fd;

	fill_env(dir, 10);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_true((fd = open(path, O_WRONLY)) >= 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(
		    pwrite(fd, &garbage, sizeof(garbage), i * psize + root_at),
		    (ssize_t) sizeof(garbage));
	assert_int_equal(close(fd), 0);
	lm_lmdb_env_opts o = {.max_dbs = 4, .map_size = 4u << 20, .mode = 0600};
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_ESTORE);
	lmt_rmtree(dir);
	free(dir);
}

/* A sound file may end before the last page its meta page counts: LMDB
 * counts pages it allocated and freed again within a transaction without
 * writing them (a decision queue's file ended three pages early). Such a
 * file opens, and a later write works: here both metas count three pages
 * more than the file has, as such a commit leaves them. */
static void
test_env_open_unwritten_tail(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("lmdb-tail");
	char path[1100], val[1000];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	struct stat st;

	memset(val, 'v', sizeof(val));
	fill_env(dir, 40);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	/* mm_last_pg: after the page header (16 bytes), magic and version (8),
	 * address and map size (16) and the two trees (2 x 48). */
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (int page = 0; page < 2; page++) {
		off_t at = (off_t) page * 4096 + 16 + 8 + 16 + 96;
		uint64_t last;
		assert_int_equal(pread(fd, &last, sizeof(last), at), sizeof(last));
		assert_true((last + 1) * 4096 <= (uint64_t) st.st_size);
		last = (uint64_t) st.st_size / 4096 - 1 + 3;
		assert_int_equal(pwrite(fd, &last, sizeof(last), at), sizeof(last));
	}
	close(fd);
	env = open_env(dir, 4u << 20, 0);
	MDB_envinfo info;
	assert_int_equal(mdb_env_info(env, &info), MDB_SUCCESS);
	assert_true(((uint64_t) info.me_last_pgno + 1) * 4096 > (uint64_t) st.st_size);
	mdb_env_close(env);

	lm_lmdb_env_opts o = {.max_dbs = 4, .map_size = 4u << 20, .mode = 0600};
	assert_int_equal(lm_lmdb_env_open(dir, &o, "test", &env), LM_OK);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), MDB_SUCCESS);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), MDB_SUCCESS);
	MDB_val k = {3, "key"}, v = {sizeof(val), val};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), MDB_SUCCESS);
	assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);
	mdb_env_close(env);
	lmt_rmtree(dir);
	free(dir);
}

/* Child: makes `commits` commits, each appending pages at the end of the
 * file (an open read transaction keeps freed pages from being used again),
 * so that the newest meta names a root past the file's previous end. Not
 * synced, to commit often. */
static int
append_writer(const char *dir, int commits)
{
	lm_lmdb_env_opts o = {
	    .max_dbs = 4, .map_size = 256u << 20, .flags = MDB_NOSYNC, .mode = 0600};
	MDB_env *env = NULL;
	MDB_txn *pin, *txn;
	MDB_dbi dbi;
	char val[200];

	memset(val, 'w', sizeof(val));
	if (lm_lmdb_env_open(dir, &o, "test", &env) != LM_OK ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &pin) != MDB_SUCCESS)
		return 1;
	for (int i = 0; i < commits; i++) {
		char key[16];
		snprintf(key, sizeof(key), "a%06d", i);
		MDB_val k = {strlen(key), key}, v = {sizeof(val), val};
		if (mdb_txn_begin(env, NULL, 0, &txn) != MDB_SUCCESS ||
		    mdb_dbi_open(txn, NULL, 0, &dbi) != MDB_SUCCESS ||
		    mdb_put(txn, dbi, &k, &v, 0) != MDB_SUCCESS ||
		    mdb_txn_commit(txn) != MDB_SUCCESS)
			return 2;
	}
	mdb_txn_abort(pin);
	mdb_env_close(env);
	return 0;
}

/*
 * A data file that another process extends while it commits is never
 * taken for one cut short: the pages a meta names were written before it,
 * so the file's length is taken after the metas are read.
 */
static void
test_env_open_while_written(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("lmdb-busy");
	lm_lmdb_env_opts o = {
	    .max_dbs = 4, .map_size = 64u << 20, .flags = MDB_RDONLY, .mode = 0600};
	int refused = 0, opens = 0, st = -1;

	fill_env(dir, 1);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(append_writer(dir, 5000));
	while (waitpid(pid, &st, WNOHANG) == 0) {
		MDB_env *env = NULL;
		int rc = lm_lmdb_env_open(dir, &o, "test", &env);
		if (rc == LM_ESTORE)
			refused++;
		else
			assert_int_equal(rc, LM_OK);
		mdb_env_close(env);
		opens++;
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_true(opens > 0);
	assert_int_equal(refused, 0);
	lmt_rmtree(dir);
	free(dir);
}

static void
test_dbs_and_schema(void **state)
{
	(void) state;
	static const char *const names[] = {"one", "two", "meta"};
	char *dir = lmt_tmpdir("lmdb-dbs");
	MDB_dbi one, two, meta;
	MDB_dbi *const dbis[] = {&one, &two, &meta};
	MDB_env *env = open_env(dir, SMALL_MAP, 0);
	MDB_txn *txn;

	/* Without MDB_CREATE a missing database is LM_ENOENT. */
	assert_int_equal(lm_lmdb_txn_begin(env, 0, NULL, NULL, "test", &txn), LM_OK);
	assert_int_equal(lm_lmdb_dbs_open(txn, names, dbis, 3, 0, "test"), LM_ENOENT);
	assert_int_equal(
	    lm_lmdb_dbs_open(txn, names, dbis, 3, MDB_DUPSORT, "test"), LM_EINVAL);
	mdb_txn_abort(txn);

	/* Created; the schema key is missing until create writes it. */
	assert_int_equal(lm_lmdb_txn_begin(env, 0, NULL, NULL, "test", &txn), LM_OK);
	assert_int_equal(
	    lm_lmdb_dbs_open(txn, names, dbis, 3, MDB_CREATE, "test"), LM_OK);
	assert_int_equal(
	    lm_lmdb_schema_check(txn, meta, "schema", "3", false, "test"), LM_ENOENT);
	assert_int_equal(
	    lm_lmdb_schema_check(txn, meta, "schema", "3", true, "test"), LM_OK);
	assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);

	/* Read back in a read-only transaction: same version, another one,
	 * a version longer than the limit. */
	char longv[LM_LMDB_SCHEMA_MAX + 2];
	memset(longv, '9', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	assert_int_equal(
	    lm_lmdb_txn_begin(env, MDB_RDONLY, NULL, NULL, "test", &txn), LM_OK);
	assert_int_equal(lm_lmdb_dbs_open(txn, names, dbis, 3, 0, "test"), LM_OK);
	assert_int_equal(
	    lm_lmdb_schema_check(txn, meta, "schema", "3", false, "test"), LM_OK);
	assert_int_equal(
	    lm_lmdb_schema_check(txn, meta, "schema", "4", true, "test"), LM_ESCHEMA);
	assert_int_equal(
	    lm_lmdb_schema_check(txn, meta, "schema", "33", false, "test"), LM_ESCHEMA);
	assert_int_equal(
	    lm_lmdb_schema_check(txn, meta, "schema", longv, false, "test"), LM_EINVAL);
	assert_int_equal(
	    lm_lmdb_schema_check(txn, meta, NULL, "3", false, "test"), LM_EINVAL);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	lmt_rmtree(dir);
	free(dir);
}

struct resize_log {
	int calls;
	uint64_t last;
	int fail; /* lm_err to return instead of resizing; 0 = resize */
};

static int
resize_cb(void *arg, MDB_env *env, uint64_t size)
{
	struct resize_log *l = arg;
	l->calls++;
	l->last = size;
	if (l->fail != 0)
		return l->fail;
	return lm_lmdb_err(mdb_env_set_mapsize(env, (size_t) size), "test", "set");
}

/* Writes values into db until the map is full; returns how many fit. */
static int
fill_until_full(MDB_env *env, MDB_dbi db, int from)
{
	static char val[4096];
	int i = from;
	for (;; i++) {
		MDB_txn *txn;
		char key[16];
		MDB_val k, v = {sizeof(val), val};
		snprintf(key, sizeof(key), "%08d", i);
		k.mv_size = strlen(key);
		k.mv_data = key;
		assert_int_equal(
		    lm_lmdb_txn_begin(env, 0, NULL, NULL, "test", &txn), LM_OK);
		int rc = lm_lmdb_err(mdb_put(txn, db, &k, &v, 0), "test", "put");
		if (rc == LM_OK)
			rc = lm_lmdb_err(mdb_txn_commit(txn), "test", "commit");
		else
			mdb_txn_abort(txn);
		if (rc == LM_EMAPFULL)
			return i - from;
		assert_int_equal(rc, LM_OK);
		assert_true(i - from < 100000);
	}
}

static void
test_grow(void **state)
{
	(void) state;
	static const char *const names[] = {"data"};
	char *dir = lmt_tmpdir("lmdb-grow");
	MDB_dbi db;
	MDB_dbi *const dbis[] = {&db};
	MDB_env *env = open_env(dir, SMALL_MAP, 0);
	struct resize_log log = {0};
	MDB_txn *txn;

	assert_int_equal(lm_lmdb_txn_begin(env, 0, NULL, NULL, "test", &txn), LM_OK);
	assert_int_equal(
	    lm_lmdb_dbs_open(txn, names, dbis, 1, MDB_CREATE, "test"), LM_OK);
	assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);

	/* Full: one doubling through the callback makes room again. */
	int first = fill_until_full(env, db, 0);
	assert_true(first > 0);
	assert_int_equal(
	    lm_lmdb_grow(env, 4 * SMALL_MAP, resize_cb, &log, "test"), LM_OK);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.last, 2 * SMALL_MAP);
	assert_int_equal(lm_lmdb_map_size(env), 2 * SMALL_MAP);
	assert_true(fill_until_full(env, db, first) > 0);

	/* Without a callback; the last step stops at max, not at the double. */
	assert_int_equal(lm_lmdb_grow(env, 3 * SMALL_MAP, NULL, NULL, "test"), LM_OK);
	assert_int_equal(lm_lmdb_map_size(env), 3 * SMALL_MAP);
	assert_int_equal(
	    lm_lmdb_grow(env, 3 * SMALL_MAP, NULL, NULL, "test"), LM_EMAPFULL);
	assert_int_equal(lm_lmdb_map_size(env), 3 * SMALL_MAP);

	/* The callback's error is the result; the size stays. */
	log.fail = LM_EBUSY;
	assert_int_equal(
	    lm_lmdb_grow(env, 8 * SMALL_MAP, resize_cb, &log, "test"), LM_EBUSY);
	assert_int_equal(log.calls, 2);
	assert_int_equal(log.last, 6 * SMALL_MAP);
	assert_int_equal(lm_lmdb_map_size(env), 3 * SMALL_MAP);
	mdb_env_close(env);
	lmt_rmtree(dir);
	free(dir);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LMT_SANITIZED 1 /* sanitizers reserve terabytes of address space */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LMT_SANITIZED 1
#endif
#endif

#ifndef LMT_SANITIZED
/* Child of test_grow_no_address_space: the address space limited to what
 * it uses plus limit bytes, commits into env until a grow fails; then a
 * transaction must still work on the old map. Returns 0, or the failed
 * step. */
static int
grow_without_room(const char *dir, uint64_t limit)
{
	static char val[65536];
	lm_lmdb_env_opts o = {.max_dbs = 4, .map_size = SMALL_MAP, .mode = 0600};
	struct rlimit rl;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi db;
	unsigned long vm_kb = 0;
	char line[256];
	int rc = LM_OK;
	FILE *f;

	if (lm_lmdb_env_open(dir, &o, "child", &env) != LM_OK)
		return 1;
	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return 2;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %lu kB", &vm_kb) == 1)
			break;
	fclose(f);
	rl.rlim_cur = rl.rlim_max = vm_kb * 1024 + limit;
	if (vm_kb == 0 || setrlimit(RLIMIT_AS, &rl) != 0)
		return 3;
	for (int i = 0; i < 100000 && rc == LM_OK; i++) {
		char key[16];
		MDB_val k, v = {sizeof(val), val};
		snprintf(key, sizeof(key), "%08d", i);
		k.mv_size = strlen(key);
		k.mv_data = key;
		if (mdb_txn_begin(env, NULL, 0, &txn) != MDB_SUCCESS ||
		    mdb_dbi_open(txn, NULL, 0, &db) != MDB_SUCCESS)
			return 4;
		int e = mdb_put(txn, db, &k, &v, 0);
		if (e == MDB_SUCCESS)
			e = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (e == MDB_MAP_FULL)
			rc = lm_lmdb_grow(env, 1ull << 40, NULL, NULL, "child");
		else if (e != MDB_SUCCESS)
			return 5;
	}
	if (rc != LM_ENOMEM)
		return 6;
	/* The old map is still there: a read transaction works. */
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != MDB_SUCCESS ||
	    mdb_dbi_open(txn, NULL, 0, &db) != MDB_SUCCESS)
		return 7;
	MDB_val k = {8, "00000000"}, v;
	if (mdb_get(txn, db, &k, &v) != MDB_SUCCESS || v.mv_size != sizeof(val))
		return 8;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return 0;
}
#endif

/* Growing the map when the process has no address space left for it fails
 * with LM_ENOMEM and leaves the old map in place (LMDB alone drops the old
 * map first, and the next transaction then crashed). Not under the
 * sanitizers, which need more address space than any such limit leaves. */
static void
test_grow_no_address_space(void **state)
{
	(void) state;
#ifdef LMT_SANITIZED
	skip();
#else
	char *dir = lmt_tmpdir("lmdb-no-room");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(grow_without_room(dir, 6 * SMALL_MAP));
	expect_child_ok(pid);
	lmt_rmtree(dir);
	free(dir);
#endif
}

/* Child: opens its own environment with a map of `map` bytes and commits
 * more than SMALL_MAP bytes of data (keys from `from`), so that the data
 * outgrows the parent's map and the parent's next begin sees
 * MDB_MAP_RESIZED. */
static int
grow_elsewhere(const char *dir, uint64_t map, int from)
{
	static char val[3000]; /* one overflow page each */
	lm_lmdb_env_opts o = {.max_dbs = 4, .map_size = map, .mode = 0600};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi db;
	if (lm_lmdb_env_open(dir, &o, "child", &env) != LM_OK)
		return 1;
	if (mdb_txn_begin(env, NULL, 0, &txn) != MDB_SUCCESS ||
	    mdb_dbi_open(txn, NULL, 0, &db) != MDB_SUCCESS)
		return 2;
	for (int i = from; i < from + 2 * (int) (SMALL_MAP / 4096); i++) {
		char key[16];
		MDB_val k, v = {sizeof(val), val};
		snprintf(key, sizeof(key), "%08d", i);
		k.mv_size = strlen(key);
		k.mv_data = key;
		if (mdb_put(txn, db, &k, &v, 0) != MDB_SUCCESS)
			return 3;
	}
	if (mdb_txn_commit(txn) != MDB_SUCCESS)
		return 4;
	mdb_env_close(env);
	return 0;
}

static void
test_resized_elsewhere(void **state)
{
	(void) state;
	char *dir = lmt_tmpdir("lmdb-resized");
	MDB_env *env = open_env(dir, SMALL_MAP, 0);
	struct resize_log log = {0};
	MDB_txn *txn;

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(grow_elsewhere(dir, 4 * SMALL_MAP, 0));
	expect_child_ok(pid);

	/* The begin adopts the size (size 0 to the callback), then succeeds. */
	assert_int_equal(
	    lm_lmdb_txn_begin(env, MDB_RDONLY, resize_cb, &log, "test", &txn), LM_OK);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.last, 0);
	mdb_txn_abort(txn);
	assert_int_equal(lm_lmdb_map_size(env), 4 * SMALL_MAP);

	/* A failing adoption is returned as is. */
	mdb_env_close(env);
	env = open_env(dir, SMALL_MAP, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(grow_elsewhere(dir, 8 * SMALL_MAP, 1000));
	expect_child_ok(pid);
	log.calls = 0;
	log.fail = LM_ECLOSED;
	assert_int_equal(
	    lm_lmdb_txn_begin(env, MDB_RDONLY, resize_cb, &log, "test", &txn),
	    LM_ECLOSED);
	assert_int_equal(log.calls, 1);
	/* Without a callback the size is adopted directly. */
	assert_int_equal(
	    lm_lmdb_txn_begin(env, MDB_RDONLY, NULL, NULL, "test", &txn), LM_OK);
	mdb_txn_abort(txn);
	assert_int_equal(lm_lmdb_map_size(env), 8 * SMALL_MAP);
	mdb_env_close(env);
	lmt_rmtree(dir);
	free(dir);
}

#ifndef LMT_SANITIZED
/* Child: opens an environment with a small map, has a grandchild grow the
 * data (and the map, to 64 MiB) elsewhere, then, with too little address
 * space left for that map, begins transactions. Returns 0 when the first
 * fails to adopt the size and the later ones are refused (not crashed);
 * else the failed step. */
static int
adopt_without_room(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	struct rlimit rl;
	unsigned long vm_kb = 0;
	char line[256];
	int st = -1, rc;
	FILE *f;
	pid_t pid;

	env = open_env(dir, SMALL_MAP, 0);
	if ((pid = fork()) < 0)
		return 1;
	if (pid == 0)
		_exit(grow_elsewhere(dir, 64u << 20, 0));
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 2;
	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return 3;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %lu kB", &vm_kb) == 1)
			break;
	fclose(f);
	rl.rlim_cur = rl.rlim_max = vm_kb * 1024 + (4u << 20);
	if (vm_kb == 0 || setrlimit(RLIMIT_AS, &rl) != 0)
		return 4;
	if (lm_lmdb_panicked(NULL, 0))
		return 5;
	rc = lm_lmdb_txn_begin(env, MDB_RDONLY, NULL, NULL, "child", &txn);
	if (rc != LM_ENOMEM)
		return 6;
	for (int i = 0; i < 3; i++)
		if (lm_lmdb_txn_begin(env, MDB_RDONLY, NULL, NULL, "child", &txn) !=
		    LM_ESTORE)
			return 7;
	if (lm_lmdb_grow(env, 1ull << 30, NULL, NULL, "child") != LM_ESTORE)
		return 8;
	if (!lm_lmdb_panicked(line, sizeof(line)) || strcmp(line, "child") != 0)
		return 9;
	return 0; /* the environment is not closed: it has no map to unmap */
}
#endif

/* Adopting a map another process grew, when the process has no address
 * space left for it, leaves LMDB without a map: later transactions are
 * refused with LM_ESTORE and the process is marked for a restart, where
 * the next one crashed reading through the unmapped pages. Not under the
 * sanitizers (see test_grow_no_address_space). */
static void
test_adopt_no_address_space(void **state)
{
	(void) state;
#ifdef LMT_SANITIZED
	skip();
#else
	char *dir = lmt_tmpdir("lmdb-adopt-no-room");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(adopt_without_room(dir));
	expect_child_ok(pid);
	lmt_rmtree(dir);
	free(dir);
#endif
}

static void
test_dir_claim(void **state)
{
	(void) state;
	assert_int_equal(lm_lmdb_dir_claim(1, 100), LM_OK);
	assert_int_equal(lm_lmdb_dir_claim(1, 100), LM_EBUSY);
	assert_int_equal(lm_lmdb_dir_claim(2, 100), LM_OK); /* other device */
	assert_int_equal(lm_lmdb_dir_claim(1, 101), LM_OK); /* other inode */

	/* A child process owns no claims of its parent, and its release does
	 * not drop the parent's. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		lm_lmdb_dir_release(1, 100);
		if (lm_lmdb_dir_claim(1, 100) != LM_OK)
			_exit(1);
		if (lm_lmdb_dir_claim(1, 100) != LM_EBUSY)
			_exit(2);
		_exit(0);
	}
	expect_child_ok(pid);
	assert_int_equal(lm_lmdb_dir_claim(1, 100), LM_EBUSY);

	lm_lmdb_dir_release(1, 100);
	lm_lmdb_dir_release(1, 100); /* unclaimed: no-op */
	lm_lmdb_dir_release(9, 9);
	assert_int_equal(lm_lmdb_dir_claim(1, 100), LM_OK);
	lm_lmdb_dir_release(1, 100);
	lm_lmdb_dir_release(2, 100);
	lm_lmdb_dir_release(1, 101);
}

static void
test_be64(void **state)
{
	(void) state;
	unsigned char a[8], b[8];
	static const unsigned char want[8] = {
	    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
	lm_lmdb_put_be64(a, 0x0123456789abcdefull);
	assert_memory_equal(a, want, 8);
	assert_int_equal(lm_lmdb_get_be64(a), 0x0123456789abcdefull);
	lm_lmdb_put_be64(a, UINT64_MAX);
	assert_int_equal(lm_lmdb_get_be64(a), UINT64_MAX);
	/* Bytewise order is number order. */
	lm_lmdb_put_be64(a, 255);
	lm_lmdb_put_be64(b, 256);
	assert_true(memcmp(a, b, 8) < 0);
	lm_lmdb_put_be64(a, 0);
	assert_int_equal(lm_lmdb_get_be64(a), 0);
}

/* MDB_PANIC is a store error that also marks the process for the
 * liveness checks, with the domain of the first environment that failed;
 * other errors do not. */
static void
test_panic(void **state)
{
	char domain[32] = "", why[256] = "";
	(void) state;

	assert_int_equal(lm_lmdb_err(MDB_CORRUPTED, "outbox", "mdb_get"), LM_ESTORE);
	assert_false(lm_lmdb_panicked(domain, sizeof(domain)));
	assert_int_equal(lm_lmdb_check_live(why, sizeof(why)), LM_OK);
	assert_int_equal(lm_lmdb_err(MDB_PANIC, "outbox", "mdb_txn_begin"), LM_ESTORE);
	assert_int_equal(lm_lmdb_err(MDB_PANIC, "store", "mdb_txn_begin"), LM_ESTORE);
	assert_true(lm_lmdb_panicked(domain, sizeof(domain)));
	assert_string_equal(domain, "outbox");
	assert_true(lm_lmdb_panicked(NULL, 0));
	assert_int_equal(lm_lmdb_check_live(why, sizeof(why)), LM_ESTORE);
	assert_non_null(strstr(why, "outbox"));
}

/* Runs lm_lmdb_dir_make(dir), or with env lm_lmdb_env_open of a writable
 * environment in dir, in a child that runs as an unprivileged user when the
 * test runs as root (permission bits bind no root); returns true when it
 * failed with LM_EACCES. */
static bool
dir_denied(const char *dir, bool env)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(100);
		if (env) {
			lm_lmdb_env_opts o = {
			    .max_dbs = 1, .map_size = SMALL_MAP, .mode = 0600};
			MDB_env *e = NULL;
			int rc = lm_lmdb_env_open(dir, &o, "test", &e);
			mdb_env_close(e);
			_exit(rc == LM_EACCES ? 0 : 1);
		}
		_exit(lm_lmdb_dir_make(dir, 0700, false, "test") == LM_EACCES ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_not_equal(WEXITSTATUS(status), 100);
	return WEXITSTATUS(status) == 0;
}

/*
 * lm_lmdb_dir_make creates every missing component with the mode, accepts
 * a directory that is there, refuses what is not one, and syncs the
 * directory that holds each one it created: shown by a parent the process
 * may write but not read (so not open to sync), where the creation itself
 * succeeds and the call still fails. A writable environment syncs its
 * directory (the entries of the files LMDB created) the same way.
 */
static void
test_dir_make(void **state)
{
	char *root = lmt_tmpdir("lmdb-mkdir");
	char deep[4200], file[4200], wo[4200], made[4200], big[PATH_MAX + 8];
	struct stat st;
	mode_t um = umask(022);

	(void) state;
	snprintf(deep, sizeof(deep), "%s/a/b/c", root);
	assert_int_equal(lm_lmdb_dir_make(deep, 0750, false, "test"), LM_ENOENT);
	assert_int_equal(lm_lmdb_dir_make(deep, 0750, true, "test"), LM_OK);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	snprintf(made, sizeof(made), "%s/a", root);
	assert_int_equal(stat(made, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	assert_int_equal(lm_lmdb_dir_make(deep, 0750, true, "test"), LM_OK);
	snprintf(made, sizeof(made), "%s/a/b/c/", root);
	assert_int_equal(lm_lmdb_dir_make(made, 0750, true, "test"), LM_OK);

	snprintf(file, sizeof(file), "%s/f", root);
	int fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(lm_lmdb_dir_make(file, 0750, true, "test"), LM_EINVAL);
	snprintf(made, sizeof(made), "%s/f/x", root);
	assert_int_not_equal(lm_lmdb_dir_make(made, 0750, true, "test"), LM_OK);
	assert_int_equal(lm_lmdb_dir_make("", 0750, true, "test"), LM_EINVAL);
	assert_int_equal(lm_lmdb_dir_make(NULL, 0750, true, "test"), LM_EINVAL);
	memset(big, 'd', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(lm_lmdb_dir_make(big, 0750, true, "test"), LM_EINVAL);

	/* Writable and searchable, not readable: mkdir works, the sync of the
	 * parent cannot open it. */
	snprintf(wo, sizeof(wo), "%s/wo", root);
	assert_int_equal(mkdir(wo, 0700), 0);
	assert_int_equal(chmod(root, 0755), 0);
	assert_int_equal(chmod(wo, 0333), 0);
	snprintf(made, sizeof(made), "%s/wo/new", root);
	assert_true(dir_denied(made, false));
	assert_int_equal(stat(made, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* A trailing slash names the same directory: its parent is synced. */
	snprintf(made, sizeof(made), "%s/wo/new2//", root);
	assert_true(dir_denied(made, false));
	snprintf(made, sizeof(made), "%s/wo/new", root);
	/* Already there: nothing created, nothing to sync. */
	assert_false(dir_denied(made, false));
	assert_true(dir_denied(wo, true));
	snprintf(made, sizeof(made), "%s/wo/data.mdb", root);
	assert_int_equal(stat(made, &st), 0);

	umask(um);
	assert_int_equal(chmod(wo, 0700), 0);
	lmt_rmtree(root);
	free(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_err),
	    cmocka_unit_test(test_env_open),
	    cmocka_unit_test(test_env_open_truncated),
	    cmocka_unit_test(test_env_open_garbage_root),
	    cmocka_unit_test(test_env_open_unwritten_tail),
	    cmocka_unit_test(test_env_open_while_written),
	    cmocka_unit_test(test_dbs_and_schema),
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_grow_no_address_space),
	    cmocka_unit_test(test_resized_elsewhere),
	    cmocka_unit_test(test_adopt_no_address_space),
	    cmocka_unit_test(test_dir_claim),
	    cmocka_unit_test(test_dir_make),
	    cmocka_unit_test(test_be64),
	    /* Last: it marks the process as failed for good. */
	    cmocka_unit_test(test_panic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
