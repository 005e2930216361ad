/* A per-user cache of built data directories, for servers whose first
 * start needs a slow initialisation (PostgreSQL's initdb and init_sql,
 * MariaDB's mariadb-install-db): built once per key, copied (or a spare
 * renamed) into each instance.
 *
 * Layout, under the root (datacache_root):
 *   KEY/data        the built directory, never changed once renamed there
 *   KEY/spare       a ready copy of KEY/data for the next instance
 *   KEY/spare.lock  held by whoever is making the spare (spare.tmp)
 *   KEY.lock        held by whoever is building KEY
 *   KEY.tmp-RANDOM  a build in progress; one left by a killed builder is
 *                   cleaned (stale callback, then removed) by the next
 *
 * What is built, and how, is the caller's: the build callback fills an
 * empty directory's "data" (it runs where datacache_get is called: in a
 * child of the helper, never in its loop, for it may take seconds and
 * wait for another builder's lock).  Nothing here knows PostgreSQL. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "../util.h"

struct datacache_build {
    const char *label; /* the service, for messages: "[label] ..." */
    const char *what;  /* "PostgreSQL": for progress and messages */
    const char *key;   /* the entry's name: [A-Za-z0-9_.-], unique per input */
    /* the build directory's owner (a run_as server user), when chown */
    bool chown;
    uid_t uid;
    gid_t gid;
    /* Fill dir/data (dir: an empty 0700 directory, the callback's own
     * until it returns).  0, or -errno with e filled. */
    int (*build)(void *arg, int root, const char *dir, terr *e);
    /* Before a dead or failed build's directory (root/name) is removed:
     * release what it held outside of it (a server's shared memory).  May
     * be NULL. */
    void (*stale)(void *arg, int root, const char *name);
    void *arg;
    void *stale_arg; /* stale's argument (NULL: arg) */
    /* The build directory's name (datacache_tmp_name), chosen by the
     * caller so that, if the build is abandoned (its job killed at a
     * shutdown), the caller can remove it at once (datacache_abandon)
     * instead of leaving it to the next builder.  NULL: a random one. */
    const char *tmp;
};

/* A cache key is FNV-1a over its fields (from FNV1A_INIT), each followed
 * by a separator byte so that "ab"+"c" is not "a"+"bc": add one field, or
 * a string (NULL counts as ""). */
void datacache_key_add(unsigned long long *h, const void *data, size_t n);
void datacache_key_str(unsigned long long *h, const char *s);

/* A fresh build directory name for key: "KEY.tmp-RANDOM" (malloc'd). */
char *datacache_tmp_name(const char *key);
/* Remove an abandoned build's directory (root/tmp, if it is there): its
 * stale callback, then the directory.  Only once its builder is dead. */
void datacache_abandon(const struct datacache_build *b, int root, const char *tmp);

/* The per-user cache root: $TETHER_CACHE_DIR, else
 * $XDG_RUNTIME_DIR/tether-cache, else /dev/shm/tether-cache-UID; created
 * 0700 (0711 as root: a run_as user must reach its entries).  Its fd, and
 * its path in *path (malloc'd). */
int datacache_root(char **path, terr *e);
/* KEY/data of the cache rooted at root (path rootpath): opened as it is,
 * or built under KEY.lock if nobody has (waiting for a concurrent builder
 * instead of building twice).  0 with its fd in *fd and the entry's path
 * (rootpath/KEY) in *entry (malloc'd), or -errno. */
int datacache_get(const struct datacache_build *b, int root, const char *rootpath, char **entry,
                  int *fd, terr *e);
/* Move the entry's spare into place as dstdir/name: 0, or -errno (no
 * spare, another file system...). */
int datacache_take_spare(const char *entry, int dstdir, const char *name);
/* Make the entry's next spare (a copy of KEY/data, owned by uid/gid when
 * chown), unless there is one or someone is making it: for a child that
 * runs it while the server starts.  0 made or not needed, -errno failed. */
int datacache_make_spare(const char *entry, bool chown, uid_t uid, gid_t gid);

/* ---- a service's use of the cache, as an op (op.h, job.h) ---- */

struct svc;
struct op;

/* What a driver keeps (in its driver_data) for one service. */
struct datacache_use {
    char *entry;     /* rootpath/KEY, once installed or being built */
    char *tmp;       /* the build directory's name while a job builds it */
    pid_t spare_pid; /* making the entry's next spare; reaped here */
    int spare_pidfd;
    /* for datacache_release: the build's stale callback and its argument,
     * which must live as long as the service (the svc itself, say) */
    void (*stale)(void *arg, int root, const char *name);
    void *stale_arg;
};
void datacache_use_init(struct datacache_use *u);
/* s->dir/data from the entry b->key: warm, its spare renamed into place
 * or a copy (owned by b->uid/gid when b->chown), now: 0.  Cold: a job
 * (job.h) takes the lock and builds (b->build runs in that child, on its
 * copy of b and of what b->arg points to), then the copy: OP_STARTED.
 * Either way the next spare is then made in a child that this code reaps.
 * < 0 with e set on failure. */
int datacache_install(struct datacache_use *u, struct svc *s, struct op *op,
                      const struct datacache_build *b, terr *e);
/* At cleanup, once every process of the service is gone: the spare's
 * maker killed and reaped, an abandoned build's directory removed (its
 * stale callback first), u's memory freed.  Again: nothing. */
void datacache_release(struct datacache_use *u);
