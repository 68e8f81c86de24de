/*
 * storetest.c - damage written into a record store; see storetest.h.
 */
#include <lmdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "storetest.h"

/* The most a damaged value may have (lmt_store_damage). */
#define DAMAGE_VALUE_MAX 8192

enum { POKE, DAMAGE_HEADER, DAMAGE_BYTES };

/* In the child: opens dir's environment and database db, then puts key =
 * val, or spoils key's value as how says. Exits 0 when done. */
static void
child(const char *dir, const char *db, int how, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *) key}, v = {vlen, (void *) val};
	unsigned char buf[DAMAGE_VALUE_MAX];

	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0 ||
	    mdb_env_open(env, dir, 0, 0640) != 0 ||
	    mdb_txn_begin(env, NULL, 0, &txn) != 0 || mdb_dbi_open(txn, db, 0, &dbi) != 0)
		_exit(2);
	if (how != POKE) {
		if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size > sizeof(buf) ||
		    v.mv_size < 64)
			_exit(3);
		memcpy(buf, v.mv_data, v.mv_size);
		if (how == DAMAGE_HEADER)
			buf[0] = 0xff; /* no value format's mark; done twice, the same */
		else
			memset(buf + v.mv_size - 48, 0xff, 48); /* runs past the end */
		v.mv_data = buf;
	}
	if (mdb_put(txn, dbi, &k, &v, 0) != 0 || mdb_txn_commit(txn) != 0)
		_exit(4);
	mdb_env_close(env);
	_exit(0);
}

/*
 * Runs child in a forked process and waits for it. The child allocates
 * (LMDB does): an allocator lock another thread of the test held at the
 * fork stays held in the child for good, more often under a sanitizer's
 * allocator. A child that has not exited within CHILD_MS is killed and the
 * whole of it done again, up to CHILD_TRIES times; what it writes is the
 * same when written twice, so a child killed after its commit does no harm.
 */
#define CHILD_MS    10000
#define CHILD_TRIES 3

static void
in_child(const char *dir, const char *db, int how, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	for (int attempt = 0; attempt < CHILD_TRIES; attempt++) {
		int status = -1, waited = 0;
		pid_t pid = fork(), got = 0;

		assert_true(pid >= 0);
		if (pid == 0)
			child(dir, db, how, key, klen, val, vlen);
		while ((got = waitpid(pid, &status, WNOHANG)) == 0 && waited < CHILD_MS) {
			usleep(10 * 1000);
			waited += 10;
		}
		if (got == pid) {
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
			return;
		}
		assert_int_equal(got, 0);
		(void) kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		print_message("store child hung (attempt %d of %d), killed\n",
		    attempt + 1, CHILD_TRIES);
	}
	fail_msg("store child hung %d times", CHILD_TRIES);
}

void
lmt_store_poke(const char *dir, const char *db, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	in_child(dir, db, POKE, key, klen, val, vlen);
}

void
lmt_store_damage(const char *dir, bool posting, const char *id, bool header)
{
	in_child(dir, posting ? "postings" : "profiles",
	    header ? DAMAGE_HEADER : DAMAGE_BYTES, id, strlen(id), NULL, 0);
}
