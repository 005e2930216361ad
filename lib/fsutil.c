/* File-system helpers for the state directory.  rm_rf_at() runs over
 * directories that services (and possibly other users) could write into,
 * so it only ever works relative to directory fds it opened itself with
 * O_NOFOLLOW, and checks every directory it opens for a mount crossing. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* Deep enough for any real tree; each level holds an fd and a DIR. */
#define RM_MAX_DEPTH 256

struct rm_frame {
    DIR *d;
    int fd;
    char *name;  /* name in the parent directory */
    bool failed; /* something beneath was left behind: rmdir cannot work */
    int passes;  /* rescans after an unexpected ENOTEMPTY */
};

struct rm_ctx {
    struct rm_frame *st; /* explicit stack: no recursion, no stack overflow */
    size_t n, cap;
    dev_t dev; /* device of the top directory */
    int err;   /* first error, reported in e */
    int more;  /* further errors, only counted */
    strbuf msg;
};

enum rm_why { RM_ERRNO, RM_MOUNT, RM_DEEP };

/* "top/sub/.../name" for messages (name NULL: the innermost open dir). */
static char *rm_path(const struct rm_ctx *c, const char *name)
{
    strbuf b = {0};
    for (size_t i = 0; i < c->n; i++) {
        if (i)
            sb_addc(&b, '/');
        sb_add(&b, c->st[i].name);
    }
    if (name) {
        if (c->n)
            sb_addc(&b, '/');
        sb_add(&b, name);
    }
    return sb_steal(&b);
}

static void rm_fail(struct rm_ctx *c, enum rm_why why, int err, const char *name)
{
    if (c->n > 0)
        c->st[c->n - 1].failed = true;
    if (c->err) {
        c->more++;
        return;
    }
    _cleanup_free_ char *path = rm_path(c, name);
    switch (why) {
    case RM_MOUNT:
        c->err = -EXDEV;
        sb_addf(&c->msg, "%s is a mount point; not removed: unmount it", path);
        break;
    case RM_DEEP:
        c->err = -ELOOP;
        sb_addf(&c->msg, "%s is nested more than %d directories deep; not removed", path,
                RM_MAX_DEPTH);
        break;
    case RM_ERRNO:
        c->err = -err;
        sb_addf(&c->msg, "cannot remove %s: %s", path, strerror(err));
        break;
    }
}

/* STATX_ATTR_MOUNT_ROOT also catches bind mounts from the same file
 * system, which have the same st_dev.  Old kernels: st_dev only. */
static bool is_mount_root(int fd)
{
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) < 0)
        return false;
    return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
           (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static void rm_unlink(struct rm_ctx *c, int pfd, const char *name)
{
    if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
        rm_fail(c, RM_ERRNO, errno, name);
}

/* Remove pfd/name if it is not a directory, else open it and push it. */
static void rm_entry(struct rm_ctx *c, int pfd, const char *name)
{
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            rm_fail(c, RM_ERRNO, errno, name);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        /* symlinks and hard links alike: only this name goes */
        rm_unlink(c, pfd, name);
        return;
    }
    /* Cheap pre-check so that a foreign mount is not even opened (it may
     * be a hung network file system); re-checked on the fd below. */
    if (c->n > 0 && st.st_dev != c->dev) {
        rm_fail(c, RM_MOUNT, 0, name);
        return;
    }
    if (c->n >= RM_MAX_DEPTH) {
        rm_fail(c, RM_DEEP, 0, name);
        return;
    }
    /* O_PATH first: it needs no permission on the directory itself, so
     * the mount checks come before we change anything about it. */
    _cleanup_close_ int pathfd =
        openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (pathfd < 0) {
        if (errno == ENOENT)
            return;
        if (errno == ENOTDIR || errno == ELOOP) /* swapped for a file or link */
            rm_unlink(c, pfd, name);
        else
            rm_fail(c, RM_ERRNO, errno, name);
        return;
    }
    /* Check what was actually opened: the name may have been swapped. */
    struct stat fst;
    if (fstat(pathfd, &fst) < 0) {
        rm_fail(c, RM_ERRNO, errno, name);
        return;
    }
    dev_t want = c->dev;
    if (c->n == 0) {
        /* The top itself: compare with its parent ("..", which leaves a
         * mount), as dirfd may be AT_FDCWD with an absolute name. */
        struct stat pst;
        _cleanup_close_ int up = openat(pathfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        want = up >= 0 && fstat(up, &pst) == 0 ? pst.st_dev : fst.st_dev;
    }
    if (fst.st_dev != want || is_mount_root(pathfd)) {
        rm_fail(c, RM_MOUNT, 0, name);
        return;
    }
    /* A service may have made a directory 0500: without u+wx we could not
     * empty it, without u+r not even list it.  chmod through the O_PATH
     * fd (as glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does) changes exactly
     * this directory, never a link's target. */
    if ((fst.st_mode & S_IRWXU) != S_IRWXU) {
        char fdpath[64];
        mode_t mode = (fst.st_mode & 07777) | S_IRWXU;
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", pathfd);
        /* a failure of both shows as the openat's EACCES below, which says
         * what it could not open */
        if (chmod(fdpath, mode) < 0 && fchmodat(pfd, name, mode, AT_SYMLINK_NOFOLLOW) < 0)
            errno = 0;
    }
    int fd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rm_fail(c, RM_ERRNO, errno, name);
        return;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        rm_fail(c, RM_ERRNO, errno, name);
        close(fd);
        return;
    }
    if (c->n == 0)
        c->dev = fst.st_dev;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->st = xrealloc(c->st, c->cap * sizeof(*c->st));
    }
    c->st[c->n++] = (struct rm_frame){.d = d, .fd = fd, .name = xstrdup(name)};
}

int rm_rf_at(int dirfd, const char *name, terr *e)
{
    if (!name || !*name)
        return terr_set(e, EINVAL, "rm_rf_at: empty name");
    struct rm_ctx c = {0};
    rm_entry(&c, dirfd, name);
    while (c.n > 0) {
        struct rm_frame *f = &c.st[c.n - 1];
        errno = 0;
        struct dirent *de = readdir(f->d);
        if (de) {
            if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                rm_entry(&c, f->fd, de->d_name); /* may move c.st */
            continue;
        }
        if (errno)
            rm_fail(&c, RM_ERRNO, errno, NULL);
        int pfd = c.n > 1 ? c.st[c.n - 2].fd : dirfd;
        if (!f->failed && unlinkat(pfd, f->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
            /* Deleting while reading may make some file systems skip
             * entries, or something is still creating files: rescan. */
            if ((errno == ENOTEMPTY || errno == EEXIST) && f->passes < 3) {
                f->passes++;
                rewinddir(f->d);
                continue;
            }
            rm_fail(&c, RM_ERRNO, errno, NULL);
        }
        bool failed = f->failed;
        closedir(f->d);
        free(f->name);
        c.n--;
        if (failed && c.n > 0)
            c.st[c.n - 1].failed = true;
    }
    free(c.st);
    if (!c.err)
        return 0;
    if (c.more)
        sb_addf(&c.msg, " (and %d more problem%s)", c.more, c.more == 1 ? "" : "s");
    int r = terr_set(e, c.err, "%s", c.msg.s);
    sb_free(&c.msg);
    return r;
}

static const char *type_name(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFIFO:
        return "a FIFO";
    case S_IFSOCK:
        return "a socket";
    case S_IFDIR:
        return "a directory";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFLNK:
        return "a symlink";
    default:
        return "not a regular file";
    }
}

/* Why openat(dirfd, name, ...O_NOFOLLOW) failed: a symlink gets its own
 * message (and -ELOOP) whatever the flags made of it. */
static int open_failed(int dirfd, const char *name, const char *path, int err, terr *e)
{
    struct stat st;
    if (err == ELOOP ||
        (err == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISLNK(st.st_mode)))
        return terr_set(e, ELOOP, "%s: a symlink, not followed", path);
    return terr_set(e, err, "cannot open %s: %s", path, strerror(err));
}

/* The directory that holds path's last component, reached from dirfd
 * without following a symlink: *dfd (-1: dirfd itself) and *base, the last
 * component.  An absolute path's directories are the caller's choice. */
static int walk_to_parent(int dirfd, const char *path, int *dfd, const char **base, terr *e)
{
    *dfd = -1;
    *base = path;
    const char *slash;
    while (path[0] != '/' && (slash = strchr(*base, '/'))) {
        _cleanup_free_ char *name = xstrndup(*base, (size_t)(slash - *base));
        *base = slash + 1;
        if (!*name) /* "a//b" */
            continue;
        int at = *dfd >= 0 ? *dfd : dirfd;
        int fd = openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int r = fd < 0 ? open_failed(at, name, path, errno, e) : 0;
        if (*dfd >= 0)
            close(*dfd);
        *dfd = fd;
        if (r < 0)
            return r;
    }
    return 0;
}

/* What fd is may be trusted to hold what owner wrote. */
static int check_trusted(int fd, const char *path, uid_t owner, terr *e)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return terr_set(e, errno, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return terr_set(e, EINVAL, "%s is %s, not a regular file: not read", path,
                        type_name(st.st_mode));
    if (owner == USER_PATH)
        return 0;
    if (st.st_uid != owner)
        return terr_set(e, EPERM, "%s is owned by uid %u, not uid %u: not trusted", path,
                        (unsigned)st.st_uid, (unsigned)owner);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return terr_set(e, EPERM, "%s is writable by others (mode %04o): not trusted", path,
                        (unsigned)(st.st_mode & 07777));
    return 0;
}

int open_file_trusted(int dirfd, const char *path, uid_t owner, terr *e)
{
    if (!path || !*path)
        return terr_set(e, EINVAL, "open_file_trusted: empty path");
    int pfd = -1;
    const char *base = path;
    bool follow = owner == USER_PATH;
    int r = follow ? 0 : walk_to_parent(dirfd, path, &pfd, &base, e);
    if (r < 0)
        return r;
    int at = pfd >= 0 ? pfd : dirfd;
    /* O_NONBLOCK: opening a FIFO would wait for a writer, forever */
    _cleanup_close_ int fd = openat(at, base, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
                                                  (follow ? 0 : O_NOFOLLOW));
    r = fd < 0 ? open_failed(at, base, path, errno, e) : check_trusted(fd, path, owner, e);
    if (pfd >= 0)
        close(pfd);
    if (r < 0)
        return r;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return terr_set(e, errno, "%s: fcntl: %s", path, strerror(errno));
    return take_fd(&fd);
}

int read_file_trusted(int dirfd, const char *path, uid_t owner, size_t max, char **out,
                      size_t *len, terr *e)
{
    _cleanup_close_ int fd = open_file_trusted(dirfd, path, owner, e);
    if (fd < 0)
        return fd;
    _cleanup_sb_ strbuf b = {0};
    for (;;) {
        /* never more than max + 1 bytes: one too many says "too big" */
        size_t chunk = b.len < 4096 ? 4096 : b.len;
        if (chunk > max + 1 - b.len)
            chunk = max + 1 - b.len;
        sb_grow(&b, chunk);
        ssize_t n = read(fd, b.s + b.len, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return terr_set(e, errno, "cannot read %s: %s", path, strerror(errno));
        if (n == 0)
            break;
        b.len += (size_t)n;
        if (b.len > max)
            return terr_set(e, EFBIG, "%s is larger than %zu bytes: not read", path, max);
    }
    sb_grow(&b, 0);
    b.s[b.len] = '\0';
    if (len)
        *len = b.len;
    *out = sb_steal(&b);
    return 0;
}

int ensure_private_dir(const char *path, uid_t uid, terr *e)
{
    return ensure_private_dir_var(path, uid, "TETHER_DIR", e);
}

int ensure_private_dir_var(const char *path, uid_t uid, const char *var, terr *e)
{
    if (mkdir(path, 0700) == 0) {
        /* a umask like 0277 must not leave us a directory we cannot use */
        if (fchmodat(AT_FDCWD, path, 0700, AT_SYMLINK_NOFOLLOW) < 0 && errno != EOPNOTSUPP)
            return terr_set(e, errno, "cannot make %s mode 0700: %s", path, strerror(errno));
    } else if (errno == ENOENT) {
        return terr_set(e, ENOENT, "cannot create %s: its parent directory does not exist",
                        path);
    } else if (errno != EEXIST) {
        return terr_set(e, errno, "cannot create %s: %s", path, strerror(errno));
    }

    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        struct stat st;
        if (err == ELOOP ||
            (err == ENOTDIR && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)))
            return terr_set(e, ELOOP,
                            "%s is a symlink, not a directory: remove it (someone may be "
                            "trying to hijack tether's state)",
                            path);
        if (err == ENOTDIR)
            return terr_set(e, err, "%s is not a directory: remove it or set %s", path, var);
        /* someone else's, and closed to us: say so, not just EACCES */
        if (err == EACCES && lstat(path, &st) == 0 && st.st_uid != uid)
            return terr_set(e, EPERM,
                            "%s is owned by uid %u, not you (uid %u): remove it or set %s",
                            path, (unsigned)st.st_uid, (unsigned)uid, var);
        return terr_set(e, err, "cannot open %s: %s", path, strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return terr_set(e, errno, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return terr_set(e, ENOTDIR, "%s is not a directory: remove it or set %s", path, var);
    if (st.st_uid != uid)
        return terr_set(e, EPERM, "%s is owned by uid %u, not you (uid %u): remove it or set %s",
                        path, (unsigned)st.st_uid, (unsigned)uid, var);
    /* It is ours, so tightening it is safe; fd pins the very directory. */
    /* 0711 is accepted: a root-run instance whose server drops to another
     * user needs that user to traverse (never list) the directory. */
    if (((st.st_mode & 0700) != 0700 || (st.st_mode & 0066) != 0) && fchmod(fd, 0700) < 0)
        return terr_set(e, errno, "cannot chmod 0700 %s: %s", path, strerror(errno));
    return take_fd(&fd);
}

int mkdir_p(const char *path, int mode)
{
    if (!path || !*path)
        return -EINVAL;
    _cleanup_free_ char *p = xstrdup(path);
    size_t len = strlen(p);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        if (p[i - 1] == '/') /* "//" or trailing "/" */
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, (mode_t)mode) < 0) {
            int err = errno;
            struct stat st;
            /* EEXIST, but also EACCES/EROFS for a parent that exists */
            if (stat(p, &st) < 0)
                return -err;
            if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        }
        p[i] = saved;
    }
    return 0;
}

int memfd_with(const char *name, const char *data, size_t len, terr *e)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return terr_set(e, errno, "memfd_create: %m");
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int r = terr_set(e, n < 0 ? errno : EIO, "writing %s to a memfd: %m", name);
            close(fd);
            return r;
        }
        off += (size_t)n;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

char *memfd_take(int fd, const char *logpath)
{
    strbuf b = {0};
    char buf[8192];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            sb_addn(&b, buf, (size_t)n);
    _cleanup_close_ int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log >= 0 && b.len)
        (void)!write(log, b.s, b.len);
    return sb_steal(&b);
}
