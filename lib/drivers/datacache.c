/* The data-directory cache (see datacache.h): a lock per entry so that
 * concurrent first users build it once, a temporary directory renamed into
 * place so that nobody ever sees a half-built one, a spare copy so that the
 * next instance starts with a rename. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "../fsutil.h"
#include "../instance.h"
#include "../job.h"
#include "../proc.h"
#include "../progress.h"
#include "datacache.h"

/* strerror(ENOSPC), as initdb, postgres and most servers write it */
#define NO_SPACE "No space left on device"

int datacache_root(char **path, terr *e)
{
    const char *env = getenv("TETHER_CACHE_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    char *p;
    if (env && *env)
        p = xstrdup(env);
    else if (xdg && *xdg == '/' && stat(xdg, &st) == 0 && st.st_uid == getuid())
        p = xasprintf("%s/tether-cache", xdg);
    else
        p = xasprintf("/dev/shm/tether-cache-%u", (unsigned)getuid());
    int fd = ensure_private_dir_var(p, getuid(), "TETHER_CACHE_DIR", e);
    if (fd < 0) {
        terr_prefix(e, fd, "tether's cache directory");
        free(p);
        return fd;
    }
    /* root's entries belong to the server's user, who must reach them */
    if (geteuid() == 0 && fchmod(fd, 0711) < 0) {
        int r = terr_set(e, errno, "tether's cache directory %s: chmod 0711: %m", p);
        close(fd);
        free(p);
        return r;
    }
    *path = p;
    return fd;
}

/* A build that ran out of room says so, and where: the step's message
 * tells, or (in any language) the file system is full with the failed
 * build still on it. */
static int out_of_space(const struct datacache_build *b, int root, const char *rootpath, int r,
                        terr *e)
{
    struct statvfs v;
    bool have = fstatvfs(root, &v) == 0;
    bool full_now = have && (unsigned long long)v.f_bavail * v.f_frsize < 1 << 20;
    if (r != -ENOSPC && !(e && strstr(e->msg, NO_SPACE)) && !full_now)
        return r;
    char room[96] = "";
    if (have)
        snprintf(room, sizeof(room), " (%llu of %llu MB free when it failed)",
                 (unsigned long long)v.f_bavail * v.f_frsize >> 20,
                 (unsigned long long)v.f_blocks * v.f_frsize >> 20);
    terr was = e ? *e : (terr){{0}};
    return terr_set(e, ENOSPC, "[%s] no space left on device in %s%s while building the %s "
                    "cache: free some space there, or set TETHER_CACHE_DIR to a directory with "
                    "room for it; what failed: %s",
                    b->label, rootpath, room, b->what, was.msg);
}

/* Builds that died half-way (nobody else can be building: we hold the
 * entry's lock): what they held, then their directories. */
static void remove_stale(const struct datacache_build *b, int root)
{
    /* a description of its own: a dup would share root's read offset */
    int dfd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    struct dirent *de;
    size_t kl = strlen(b->key);
    _cleanup_strv_ strv stale = {0};
    while ((de = readdir(d)))
        if (strncmp(de->d_name, b->key, kl) == 0 && strncmp(de->d_name + kl, ".tmp-", 5) == 0)
            strv_push(&stale, de->d_name);
    closedir(d);
    for (size_t i = 0; i < stale.n; i++) {
        if (b->stale)
            b->stale(b->stale_arg ? b->stale_arg : b->arg, root, stale.v[i]);
        rm_rf_at(root, stale.v[i], NULL);
    }
}

void datacache_key_add(unsigned long long *h, const void *data, size_t n)
{
    *h = fnv1a(fnv1a(*h, data, n), "\xff", 1);
}

void datacache_key_str(unsigned long long *h, const char *s)
{
    datacache_key_add(h, s ? s : "", s ? strlen(s) : 0);
}

char *datacache_tmp_name(const char *key)
{
    char rnd[17];
    if (random_hex(rnd, 16) < 0) /* no getrandom: unique enough for a name */
        snprintf(rnd, sizeof(rnd), "%d-%llx", (int)getpid(), (unsigned long long)now_ns());
    return xasprintf("%s.tmp-%s", key, rnd);
}

void datacache_abandon(const struct datacache_build *b, int root, const char *tmp)
{
    struct stat st;
    if (fstatat(root, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return; /* renamed into place, or never made */
    if (b->stale)
        b->stale(b->stale_arg ? b->stale_arg : b->arg, root, tmp);
    rm_rf_at(root, tmp, NULL);
}

static int build(const struct datacache_build *b, int root, const char *rootpath, terr *e)
{
    int r = 0;
    _cleanup_free_ char *tmp = b->tmp ? xstrdup(b->tmp) : datacache_tmp_name(b->key);
    _cleanup_free_ char *dir = xasprintf("%s/%s", rootpath, tmp);
    if (mkdirat(root, tmp, 0700) < 0)
        return terr_set(e, errno, "[%s] cannot create %s: %m", b->label, dir);
    if (b->chown && fchownat(root, tmp, b->uid, b->gid, AT_SYMLINK_NOFOLLOW) < 0)
        r = terr_set(e, errno, "[%s] cannot chown %s: %m", b->label, dir);
    if (r == 0)
        r = b->build(b->arg, root, dir, e);
    if (r == 0 && renameat(root, tmp, root, b->key) < 0)
        r = terr_set(e, errno, "[%s] cannot rename %s into the cache: %m", b->label, dir);
    if (r == 0)
        return 0;
    r = out_of_space(b, root, rootpath, r, e);
    datacache_abandon(b, root, tmp);
    return r;
}

static int open_data(int root, const char *key)
{
    _cleanup_free_ char *data = xasprintf("%s/data", key);
    return openat(root, data, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
}

/* Under the entry's lock: open it, or build it. */
static int locked_get(const struct datacache_build *b, int root, const char *rootpath, int *fd,
                      terr *e)
{
    _cleanup_free_ char *lockname = xasprintf("%s.lock", b->key);
    _cleanup_close_ int lock =
        openat(root, lockname, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0)
        return terr_set(e, errno, "[%s] cannot open %s/%s: %m", b->label, rootpath, lockname);
    /* a builder that dies drops it: the kernel releases a dead process's flock */
    while (flock(lock, LOCK_EX) < 0)
        if (errno != EINTR)
            return terr_set(e, errno, "[%s] cannot lock %s/%s: %m", b->label, rootpath,
                            lockname);
    /* someone may have built it while we waited */
    *fd = open_data(root, b->key);
    if (*fd >= 0)
        return 0;
    remove_stale(b, root);
    long long t0 = now_ns();
    progress(PROGRESS_NOTE, "[%s] building the %s cache, first run for this schema ...",
             b->label, b->what);
    int r = build(b, root, rootpath, e);
    if (r < 0)
        return r;
    char t[32];
    progress(PROGRESS_NOTE, "[%s] ... done in %s", b->label, progress_since(t, t0));
    *fd = open_data(root, b->key);
    if (*fd < 0)
        return terr_set(e, errno, "[%s] the %s cache %s/%s/data vanished: %m", b->label, b->what,
                        rootpath, b->key);
    return 0;
}

int datacache_get(const struct datacache_build *b, int root, const char *rootpath, char **entry,
                  int *fd, terr *e)
{
    *fd = open_data(root, b->key);
    int r = *fd >= 0 ? 0 : locked_get(b, root, rootpath, fd, e);
    if (r == 0)
        *entry = xasprintf("%s/%s", rootpath, b->key);
    return r;
}

int datacache_take_spare(const char *entry, int dstdir, const char *name)
{
    _cleanup_close_ int kd = open(entry, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (kd < 0)
        return -errno;
    return renameat(kd, "spare", dstdir, name) < 0 ? -errno : 0;
}

/* One spare per entry: its maker holds spare.lock, and a maker killed
 * half-way leaves spare.tmp for the next one to remove. */
int datacache_make_spare(const char *entry, bool chown, uid_t uid, gid_t gid)
{
    _cleanup_close_ int kd = open(entry, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (kd < 0)
        return -errno;
    if (faccessat(kd, "spare", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    setpriority(PRIO_PROCESS, 0, 10); /* behind the servers that are starting */
    _cleanup_close_ int lock =
        openat(kd, "spare.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0)
        return -errno;
    if (flock(lock, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? 0 : -errno; /* someone is making it */
    if (faccessat(kd, "spare", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    rm_rf_at(kd, "spare.tmp", NULL);
    _cleanup_close_ int src = openat(kd, "data", O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    int r = src < 0 ? -errno : copy_tree(src, kd, "spare.tmp", chown, uid, gid, NULL);
    if (r == 0 && renameat2(kd, "spare.tmp", kd, "spare", RENAME_NOREPLACE) < 0)
        r = -errno;
    if (r < 0)
        rm_rf_at(kd, "spare.tmp", NULL);
    return r;
}

void datacache_use_init(struct datacache_use *u)
{
    *u = (struct datacache_use){.spare_pidfd = -1};
}

/* Reap the spare's maker: without kill_it only if it is done. */
static void spare_reap(struct datacache_use *u, bool kill_it)
{
    if (u->spare_pid <= 0)
        return;
    if (kill_it) /* its copy is not needed now; the next maker starts over */
        (void)proc_pidfd_signal(u->spare_pidfd, SIGKILL);
    if (proc_pidfd_reap(u->spare_pidfd, u->spare_pid, kill_it, NULL) == 0)
        return; /* still copying */
    if (u->spare_pidfd >= 0)
        close(u->spare_pidfd);
    u->spare_pidfd = -1;
    u->spare_pid = 0;
}

/* The next instance's spare, made while this one's server starts (mostly
 * on the other core), so that it starts with a rename instead of a copy.
 * A child of job_fork: the helper's catch-all leaves it to spare_reap. */
static void spare_start(struct datacache_use *u, struct svc *s, int dstdir)
{
    spare_reap(u, false);
    if (u->spare_pid > 0)
        return;
    struct stat a, b;
    /* a spare on another file system could not be renamed into place */
    if (stat(u->entry, &a) < 0 || fstat(dstdir, &b) < 0 || a.st_dev != b.st_dev)
        return;
    int pfd = -1;
    pid_t pid = job_fork(s, NULL, &pfd, NULL, 0, NULL);
    if (pid < 0) /* costs only speed */
        return;
    if (pid == 0)
        _exit(datacache_make_spare(u->entry, s->run_as, s->uid, s->gid) < 0 ? 1 : 0);
    u->spare_pid = pid;
    u->spare_pidfd = pfd;
}

/* The entry's data into s->dir/data: its spare renamed, else a copy. */
static int copy_in(struct datacache_use *u, struct svc *s, terr *e)
{
    _cleanup_free_ char *data = xasprintf("%s/data", u->entry);
    _cleanup_close_ int cache = open(data, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (cache < 0)
        return terr_set(e, errno, "[%s] the cache entry %s: %m", s->conf->label, data);
    _cleanup_close_ int dfd = open(s->dir, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0)
        return terr_set(e, errno, "[%s] %s: %m", s->conf->label, s->dir);
    int r;
    if (datacache_take_spare(u->entry, dfd, "data") < 0 &&
        (r = copy_tree(cache, dfd, "data", s->run_as, s->uid, s->gid, e)) < 0)
        return terr_prefix(e, r, "[%s] copying %s into %s", s->conf->label, data, s->dir);
    spare_start(u, s, dfd);
    return 0;
}

struct get_args {
    struct datacache_build b;
    int root;
    const char *rootpath;
};

static int job_get(struct job *j, terr *e)
{
    struct get_args *a = j->arg;
    _cleanup_free_ char *entry = NULL;
    _cleanup_close_ int fd = -1;
    return datacache_get(&a->b, a->root, a->rootpath, &entry, &fd, e);
}

static int built(struct op *op, int r, const strv *out, void *ud, terr *e)
{
    (void)out;
    struct datacache_use *u = ud;
    free(take_ptr(&u->tmp)); /* renamed, or removed by the job */
    return r < 0 ? r : copy_in(u, op->s, e);
}

int datacache_install(struct datacache_use *u, struct svc *s, struct op *op,
                      const struct datacache_build *b, terr *e)
{
    _cleanup_free_ char *rootpath = NULL;
    _cleanup_close_ int root = datacache_root(&rootpath, e);
    if (root < 0)
        return terr_prefix(e, root, "[%s]", b->label);
    free(u->entry);
    u->entry = xasprintf("%s/%s", rootpath, b->key);
    _cleanup_close_ int fd = open_data(root, b->key);
    if (fd >= 0)
        return copy_in(u, s, e); /* warm: a rename or a copy, a few ms */
    /* cold: the lock and the build in a job, whose child has its own copy
     * of b and what it points to; its progress goes where the helper's
     * does; the build directory's name is ours to remove if it is killed */
    free(u->tmp);
    u->tmp = datacache_tmp_name(b->key);
    u->stale = b->stale;
    struct get_args ga = {.b = *b, .root = root, .rootpath = rootpath};
    ga.b.tmp = u->tmp;
    int keep[] = {root, progress_fd()};
    op->what = "building the cache";
    int r = job_start(op, s, job_get, &ga, keep, keep[1] >= 0 ? 2 : 1, e);
    if (r == OP_STARTED)
        job_then(op, built, u);
    else
        free(take_ptr(&u->tmp));
    return r;
}

void datacache_release(struct datacache_use *u)
{
    spare_reap(u, true);
    if (u->tmp && u->entry) {
        _cleanup_free_ char *rootpath = xstrndup(u->entry, strrchr(u->entry, '/') - u->entry);
        _cleanup_close_ int root = open(rootpath, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        struct datacache_build b = {.stale = u->stale, .arg = u->stale_arg};
        if (root >= 0)
            datacache_abandon(&b, root, u->tmp);
    }
    free(take_ptr(&u->tmp));
    free(take_ptr(&u->entry));
}
