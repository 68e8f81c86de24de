/*
 * lmdb.c - LMDB handling shared by the record store and the match outbox;
 * see lmdb.h.
 *
 * The directory registry is one list for the whole process, whichever
 * module opened the environment: LMDB's one-environment-per-file rule is a
 * property of the process, not of a module.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lunamatch/errconv.h"
#include "lunamatch/error.h"
#include "lunamatch/lmdb.h"
#include "lunamatch/log.h"

/* Set once an environment answered MDB_PANIC (lm_lmdb_panicked); the
 * domain of the first one, written before the flag. */
static atomic_bool panicked;
static char panic_domain[LM_LMDB_DOMAIN_MAX + 1];
static pthread_mutex_t panic_mtx = PTHREAD_MUTEX_INITIALIZER;

/* Builds "<domain>.<what>" into buf; a domain that is too long is cut. */
static const char *
event_name(char buf[LM_LMDB_DOMAIN_MAX + 16], const char *domain, const char *what)
{
	snprintf(buf, LM_LMDB_DOMAIN_MAX + 16, "%.*s.%s", LM_LMDB_DOMAIN_MAX,
	    domain != NULL ? domain : "lmdb", what);
	return buf;
}

/* Marks the process for a restart (lm_lmdb_panicked), naming the first
 * domain that failed for good. */
static void
mark_panicked(const char *domain)
{
	pthread_mutex_lock(&panic_mtx);
	if (!atomic_load(&panicked)) {
		snprintf(panic_domain, sizeof(panic_domain), "%s",
		    domain != NULL ? domain : "lmdb");
		atomic_store(&panicked, true);
	}
	pthread_mutex_unlock(&panic_mtx);
}

int
lm_lmdb_err(int rc, const char *domain, const char *what)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];
	switch (rc) {
	case MDB_SUCCESS:
		return LM_OK;
	case MDB_NOTFOUND:
		return LM_ENOENT;
	case MDB_MAP_FULL:
		return LM_EMAPFULL;
	case MDB_READERS_FULL:
	case MDB_TXN_FULL:
		lm_warn(
		    event_name(ev, domain, "error"), "%s: %s", what, mdb_strerror(rc));
		return LM_EBUSY;
	case MDB_PANIC:
		mark_panicked(domain);
		lm_error(event_name(ev, domain, "panic"),
		    "%s: %s: the environment refuses every transaction until the "
		    "process restarts",
		    what, mdb_strerror(rc));
		return LM_ESTORE;
	default:
		lm_error(
		    event_name(ev, domain, "error"), "%s: %s", what, mdb_strerror(rc));
		return rc > 0 ? lm_err_from_errno(rc) : LM_ESTORE;
	}
}

bool
lm_lmdb_no_room(int rc)
{
	return rc == LM_EMAPFULL || rc == LM_ENOSPC || rc == LM_EIO;
}

bool
lm_lmdb_panicked(char *domain, size_t len)
{
	if (!atomic_load(&panicked))
		return false;
	if (domain != NULL && len > 0) {
		pthread_mutex_lock(&panic_mtx);
		snprintf(domain, len, "%s", panic_domain);
		pthread_mutex_unlock(&panic_mtx);
	}
	return true;
}

int
lm_lmdb_check_live(char *reason, size_t len)
{
	char domain[LM_LMDB_DOMAIN_MAX + 1];

	if (!lm_lmdb_panicked(domain, sizeof(domain)))
		return LM_OK;
	snprintf(reason, len,
	    "the %s LMDB environment failed for good (MDB_PANIC): restart needed",
	    domain);
	return LM_ESTORE;
}

/*
 * LMDB's meta page as it lies in the data file (mdb.c: MDB_meta and MDB_db,
 * data version 1, 64-bit page numbers), after the page header. Read with
 * pread, not through the map, so that a file cut short is found before any
 * page past its end is touched.
 */
#define META_PAGE_HEADER 16u
#define META_MAGIC       0xBEEFC0DEu
#define META_VERSION     1u
#define PGNO_NONE        UINT64_MAX /* P_INVALID: an empty tree */

struct disk_db {
	uint32_t pad;
	uint16_t flags, depth;
	uint64_t branch_pages, leaf_pages, overflow_pages, entries, root;
};

struct disk_meta {
	uint32_t magic, version;
	uint64_t address, mapsize;
	struct disk_db dbs[2]; /* the free-page tree, the main tree */
	uint64_t last_pg, txnid;
};

_Static_assert(sizeof(struct disk_db) == 48, "MDB_db layout");
_Static_assert(sizeof(struct disk_meta) == 136, "MDB_meta layout");

/* Reads the meta of page i (0 or 1) of fd; false when it is not one. */
static bool
read_meta(int fd, unsigned psize, unsigned i, struct disk_meta *m)
{
	off_t at = (off_t) i * psize + META_PAGE_HEADER;

	return pread(fd, m, sizeof(*m), at) == (ssize_t) sizeof(*m) &&
	       m->magic == META_MAGIC && m->version == META_VERSION;
}

/*
 * Whether env's data file holds the pages its last commit wrote: the two
 * meta pages and the roots of the two trees the newer meta names. A file
 * cut short (a copy or a restore that ended early, a file system that lost
 * its tail) would be read past its end through the map, killing the
 * process with SIGBUS at the first such read: LMDB does not check, so this
 * does, once at open, as far as it can be told without reading the trees:
 * LMDB writes whole pages, so a length between two is a cut; and the roots
 * are written with every commit that changes their trees, before the meta
 * that names them, so a file that ends before a root is cut short. A cut
 * that keeps the roots and whole pages is not found. The file's length is
 * not compared with the last page number the meta counts: LMDB counts the
 * pages it allocated and freed again within a transaction without writing
 * them, so a sound file can end before that page (a decision queue did,
 * by three pages).
 *
 * Another process may be committing meanwhile: the metas are read before
 * the length, so that the roots they name are in the file (it never
 * shrinks). LM_OK or LM_ESTORE (logged "<domain>.corrupt").
 */
static int
check_length(MDB_env *env, const char *domain)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];
	struct disk_meta m[2], *cur;
	mdb_filehandle_t fd;
	MDB_stat st;
	struct stat fs;
	uint64_t need;
	int rc;

	if ((rc = mdb_env_stat(env, &st)) != MDB_SUCCESS ||
	    (rc = mdb_env_get_fd(env, &fd)) != MDB_SUCCESS)
		return lm_lmdb_err(rc, domain, "mdb_env_stat");
	need = 2 * (uint64_t) st.ms_psize;
	if (read_meta(fd, st.ms_psize, 0, &m[0]) &&
	    read_meta(fd, st.ms_psize, 1, &m[1])) {
		cur = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
		for (int i = 0; i < 2; i++) {
			uint64_t root = cur->dbs[i].root;
			if (root == PGNO_NONE)
				continue;
			/* A garbage root whose end does not fit in 64 bits lies
			 * past any file. */
			if (root >= UINT64_MAX / st.ms_psize)
				need = UINT64_MAX;
			else if ((root + 1) * st.ms_psize > need)
				need = (root + 1) * st.ms_psize;
		}
	}
	if (fstat(fd, &fs) != 0)
		return lm_lmdb_err(errno, domain, "fstat");
	/* LMDB writes whole pages: a length between two is a cut. */
	if ((uint64_t) fs.st_size % st.ms_psize != 0) {
		lm_error(event_name(ev, domain, "corrupt"),
		    "the data file has %lld bytes, not a whole number of %u-byte "
		    "pages: it was cut short",
		    (long long) fs.st_size, st.ms_psize);
		return LM_ESTORE;
	}
	if ((uint64_t) fs.st_size >= need)
		return LM_OK;
	lm_error(event_name(ev, domain, "corrupt"),
	    "the data file has %lld bytes but its last commit wrote pages up to "
	    "byte %llu: it was cut short",
	    (long long) fs.st_size, (unsigned long long) need);
	return LM_ESTORE;
}

/* Syncs the directory path: the names created in it become durable. A
 * file system that cannot sync a directory (EINVAL) has nothing to sync. */
static int
sync_dir(const char *path, const char *domain)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e = 0;

	if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
		e = errno;
	if (fd >= 0)
		close(fd);
	if (e == 0)
		return LM_OK;
	lm_error(event_name(ev, domain, "open"), "cannot sync the directory %s: %s", path,
	    strerror(e));
	return lm_err_from_errno(e);
}

int
lm_lmdb_dir_make(const char *dir, mode_t mode, bool parents, const char *domain)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16], buf[PATH_MAX];
	size_t n = dir != NULL ? strlen(dir) : 0;
	struct stat st;
	int rc;

	if (n == 0 || n >= sizeof(buf))
		return LM_EINVAL;
	/* Without trailing slashes, so that the last one found below is the
	 * one before the created name. */
	while (n > 1 && dir[n - 1] == '/')
		n--;
	memcpy(buf, dir, n);
	buf[n] = '\0';
	for (size_t i = 1; i <= n; i++) {
		if ((buf[i] != '/' && buf[i] != '\0') || (!parents && i < n))
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) == 0) {
			/* Its name is an entry of the parent (up to the last '/'). */
			char *slash = strrchr(buf, '/');
			if (slash == NULL)
				rc = sync_dir(".", domain);
			else if (slash == buf)
				rc = sync_dir("/", domain);
			else {
				*slash = '\0';
				rc = sync_dir(buf, domain);
				*slash = '/';
			}
			if (rc != LM_OK)
				return rc;
		} else if (errno != EEXIST) {
			int e = errno;
			lm_error(event_name(ev, domain, "open"),
			    "cannot create the directory %s: %s", buf, strerror(e));
			return lm_err_from_errno(e);
		}
		if (i < n)
			buf[i] = dir[i];
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		lm_error(event_name(ev, domain, "open"), "%s is not a directory", dir);
		return LM_EINVAL;
	}
	return LM_OK;
}

int
lm_lmdb_env_open(
    const char *dir, const lm_lmdb_env_opts *opts, const char *domain, MDB_env **out)
{
	MDB_env *env = NULL;
	int rc;

	if (out == NULL)
		return LM_EINVAL;
	*out = NULL;
	if (dir == NULL || opts == NULL || opts->max_dbs == 0 || opts->map_size == 0 ||
	    (uint64_t) (size_t) opts->map_size != opts->map_size)
		return LM_EINVAL;
	if ((rc = mdb_env_create(&env)) != MDB_SUCCESS)
		return lm_lmdb_err(rc, domain, "mdb_env_create");
	if ((rc = mdb_env_set_maxdbs(env, (MDB_dbi) opts->max_dbs)) != MDB_SUCCESS ||
	    (opts->max_readers > 0 &&
	        (rc = mdb_env_set_maxreaders(env, opts->max_readers)) != MDB_SUCCESS) ||
	    (rc = mdb_env_set_mapsize(env, (size_t) opts->map_size)) != MDB_SUCCESS) {
		mdb_env_close(env);
		return lm_lmdb_err(rc, domain, "mdb_env_create");
	}
	if ((rc = mdb_env_open(env, dir, opts->flags, opts->mode)) != MDB_SUCCESS) {
		mdb_env_close(env);
		/* Missing files are an answer, not a failure: the caller says. */
		return rc == ENOENT ? LM_ENOENT : lm_lmdb_err(rc, domain, "mdb_env_open");
	}
	if ((rc = check_length(env, domain)) != LM_OK ||
	    (!(opts->flags & MDB_RDONLY) && (rc = sync_dir(dir, domain)) != LM_OK)) {
		mdb_env_close(env);
		return rc;
	}
	*out = env;
	return LM_OK;
}

uint64_t
lm_lmdb_map_size(MDB_env *env)
{
	MDB_envinfo info;
	mdb_env_info(env, &info);
	return (uint64_t) info.me_mapsize;
}

/*
 * The mark (mdb_env_set_userctx) of an environment left without a map:
 * mdb_env_set_mapsize unmaps the old map before it maps the new one, and
 * when that mapping fails (no address space) it keeps neither. LMDB has no
 * way back short of closing the environment, and any later transaction
 * would read through the unmapped pages, so transactions on a marked
 * environment are refused, and the process is marked for a restart.
 */
static char unmapped_mark;

static bool
unmapped(MDB_env *env)
{
	return mdb_env_get_userctx(env) == &unmapped_mark;
}

int
lm_lmdb_set_mapsize(MDB_env *env, uint64_t size, const char *domain)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];
	int rc;

	if (unmapped(env))
		return LM_ESTORE;
	if ((rc = mdb_env_set_mapsize(env, (size_t) size)) == MDB_SUCCESS)
		return LM_OK;
	if (rc != EINVAL) { /* EINVAL: a transaction is open, nothing changed */
		mdb_env_set_userctx(env, &unmapped_mark);
		mark_panicked(domain);
		char want[48];
		if (size > 0)
			snprintf(
			    want, sizeof(want), "%llu bytes", (unsigned long long) size);
		else
			snprintf(
			    want, sizeof(want), "the size another process grew it to");
		lm_error(event_name(ev, domain, "unmapped"),
		    "cannot map %s (%s): the environment has no map left and refuses "
		    "every transaction until the process restarts",
		    want, mdb_strerror(rc));
		return rc == ENOMEM ? LM_ENOMEM : LM_ESTORE;
	}
	return lm_lmdb_err(rc, domain, "mdb_env_set_mapsize");
}

/* Sets the size with no lock: the caller excludes every transaction. */
static int
resize_or_set(
    lm_lmdb_resize_fn resize, void *arg, MDB_env *env, uint64_t size, const char *domain)
{
	if (resize != NULL)
		return resize(arg, env, size);
	return lm_lmdb_set_mapsize(env, size, domain);
}

int
lm_lmdb_txn_begin(MDB_env *env, unsigned flags, lm_lmdb_resize_fn resize, void *arg,
    const char *domain, MDB_txn **out)
{
	if (unmapped(env))
		return LM_ESTORE;
	for (int i = 0; i < LM_LMDB_RESIZE_MAX; i++) {
		int rc = mdb_txn_begin(env, NULL, flags, out);
		if (rc != MDB_MAP_RESIZED)
			return lm_lmdb_err(rc, domain, "mdb_txn_begin");
		if ((rc = resize_or_set(resize, arg, env, 0, domain)) != LM_OK)
			return rc;
	}
	return LM_EBUSY;
}

/*
 * Whether env's data file can be mapped at size bytes now.
 * mdb_env_set_mapsize unmaps the current map before it maps the new one, and
 * when that mapping fails it leaves the environment without a map, which
 * the next transaction reads through (a crash); the store would not know.
 * A trial mapping first turns a lack of address space into LM_ENOMEM with
 * the old map intact. (It needs the old and the new map at once, so under a
 * tight address-space limit it refuses a little earlier than LMDB would.)
 */
static bool
map_fits(MDB_env *env, uint64_t size)
{
	mdb_filehandle_t fd;
	void *p;

	if (size > SIZE_MAX || mdb_env_get_fd(env, &fd) != MDB_SUCCESS)
		return true; /* nothing to try with: LMDB's own check decides */
	if ((p = mmap(NULL, (size_t) size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
		return false;
	munmap(p, (size_t) size);
	return true;
}

int
lm_lmdb_grow(
    MDB_env *env, uint64_t max, lm_lmdb_resize_fn resize, void *arg, const char *domain)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];
	uint64_t cur, next;
	int rc;

	if (unmapped(env))
		return LM_ESTORE;
	cur = lm_lmdb_map_size(env);
	if (cur >= max) {
		lm_error(event_name(ev, domain, "full"),
		    "map of %llu bytes is full and at its maximum",
		    (unsigned long long) cur);
		return LM_EMAPFULL;
	}
	next = cur > max / 2 ? max : cur * 2;
	if (!map_fits(env, next)) {
		lm_error(event_name(ev, domain, "grow"),
		    "cannot map %llu bytes (out of address space); the map stays at %llu",
		    (unsigned long long) next, (unsigned long long) cur);
		return LM_ENOMEM;
	}
	if ((rc = resize_or_set(resize, arg, env, next, domain)) != LM_OK)
		return rc;
	lm_info(event_name(ev, domain, "grow"), "map grown from %llu to %llu bytes",
	    (unsigned long long) cur, (unsigned long long) lm_lmdb_map_size(env));
	return LM_OK;
}

int
lm_lmdb_dbs_open(MDB_txn *txn, const char *const *names, MDB_dbi *const *dbis, size_t n,
    unsigned flags, const char *domain)
{
	if (txn == NULL || names == NULL || dbis == NULL ||
	    (flags & ~(unsigned) MDB_CREATE) != 0)
		return LM_EINVAL;
	for (size_t i = 0; i < n; i++) {
		int rc = mdb_dbi_open(txn, names[i], flags, dbis[i]);
		if (rc != MDB_SUCCESS)
			return lm_lmdb_err(rc, domain, "mdb_dbi_open");
	}
	return LM_OK;
}

int
lm_lmdb_schema_check(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *version,
    bool create, const char *domain)
{
	char ev[LM_LMDB_DOMAIN_MAX + 16];
	MDB_val k, v;
	size_t vlen;
	int rc;

	if (txn == NULL || key == NULL || version == NULL)
		return LM_EINVAL;
	vlen = strnlen(version, LM_LMDB_SCHEMA_MAX + 1);
	if (vlen > LM_LMDB_SCHEMA_MAX)
		return LM_EINVAL;
	k.mv_size = strlen(key);
	k.mv_data = (void *) key;
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND && create) {
		v.mv_size = vlen;
		v.mv_data = (void *) version;
		return lm_lmdb_err(
		    mdb_put(txn, dbi, &k, &v, 0), domain, "mdb_put schema");
	}
	if (rc != MDB_SUCCESS)
		return lm_lmdb_err(rc, domain, "mdb_get schema");
	if (v.mv_size != vlen || memcmp(v.mv_data, version, vlen) != 0) {
		lm_error(event_name(ev, domain, "schema"),
		    "%s schema version %.*s, expected %s",
		    domain != NULL ? domain : "lmdb",
		    (int) (v.mv_size < 16 ? v.mv_size : 16), (const char *) v.mv_data,
		    version);
		return LM_ESCHEMA;
	}
	return LM_OK;
}

/* ---- directory registry ------------------------------------------------- */

struct claim {
	dev_t dev;
	ino_t ino;
	pid_t pid;
	struct claim *next;
};
static pthread_mutex_t claims_lock = PTHREAD_MUTEX_INITIALIZER;
static struct claim *claims;

int
lm_lmdb_dir_claim(dev_t dev, ino_t ino)
{
	struct claim *c;
	pid_t pid = getpid();
	int rc = LM_OK;

	pthread_mutex_lock(&claims_lock);
	for (c = claims; c != NULL; c = c->next) {
		if (c->pid == pid && c->dev == dev && c->ino == ino) {
			rc = LM_EBUSY;
			goto out;
		}
	}
	if ((c = malloc(sizeof(*c))) == NULL) {
		rc = LM_ENOMEM;
		goto out;
	}
	c->dev = dev;
	c->ino = ino;
	c->pid = pid;
	c->next = claims;
	claims = c;
out:
	pthread_mutex_unlock(&claims_lock);
	return rc;
}

void
lm_lmdb_dir_release(dev_t dev, ino_t ino)
{
	pid_t pid = getpid();
	pthread_mutex_lock(&claims_lock);
	for (struct claim **pp = &claims; *pp != NULL; pp = &(*pp)->next) {
		struct claim *c = *pp;
		if (c->pid == pid && c->dev == dev && c->ino == ino) {
			*pp = c->next;
			free(c);
			break;
		}
	}
	pthread_mutex_unlock(&claims_lock);
}

/* ---- big-endian integers ------------------------------------------------ */

void
lm_lmdb_put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char) (v & 0xff);
		v >>= 8;
	}
}

uint64_t
lm_lmdb_get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < LM_LMDB_BE64_LEN; i++)
		v = (v << 8) | p[i];
	return v;
}

void
lm_lmdb_put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = (unsigned char) (v & 0xff);
		v >>= 8;
	}
}

uint32_t
lm_lmdb_get_be32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = (v << 8) | p[i];
	return v;
}
