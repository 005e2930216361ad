/* The data-directory cache (see datacache.h): a lock per entry so that
 * concurrent first users build it once, a temporary directory renamed into
 * place so that nobody ever sees a half-built one, a spare copy so that the
 * next instance starts with a rename. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "../fsutil.h"
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
            b->stale(b->arg, root, stale.v[i]);
        rm_rf_at(root, stale.v[i], NULL);
    }
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
        b->stale(b->arg, root, tmp);
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
