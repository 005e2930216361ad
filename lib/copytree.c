/* Copying a cached PostgreSQL cluster into an instance, as fast as the
 * file system allows: 1,300 files, most of them small, so the cost is in
 * system calls per file.  A reflink where the file system can (tried
 * once), empty files without opening their source, and, as root, files
 * created as their final owner (setfsuid) instead of a chown each. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/fsuid.h>
#include <sys/stat.h>

#include "fsutil.h"

struct copy {
    bool no_clone; /* FICLONE failed once: this file system cannot */
    bool chown_to; /* files need a chown (we could not create them as uid) */
    uid_t uid;
    gid_t gid;
};

static int copy_file(struct copy *c, int sfd, int dfd, off_t size)
{
    if (!c->no_clone) {
        if (ioctl(dfd, FICLONE, sfd) == 0)
            return 0;
        c->no_clone = true;
    }
    off_t left = size;
    while (left > 0) {
        ssize_t n = copy_file_range(sfd, NULL, dfd, NULL, (size_t)left, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS)
                return -errno;
            break; /* fall back to read/write below */
        }
        if (n == 0)
            break;
        left -= n;
    }
    char buf[65536];
    while (left > 0) {
        ssize_t n = read(sfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : 0;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(dfd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -errno;
            off += w;
        }
        left -= n;
    }
    return 0;
}

/* The source tree may belong to a less trusted user (as root, the cache's
 * clusters are the server user's): a regular file at stat time may be a
 * FIFO by the open, which must not wait for a writer. */
static int open_source(int sdir, const char *name)
{
    int fd = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)))
        return fd;
    close(fd);
    errno = EINVAL;
    return -1;
}

static int copy_dir(struct copy *c, int sdir, int ddir, int depth, terr *e)
{
    if (depth > 64)
        return terr_set(e, ELOOP, "copy: directory tree too deep");
    int dupfd = fcntl(sdir, F_DUPFD_CLOEXEC, 3);
    DIR *d = dupfd >= 0 ? fdopendir(dupfd) : NULL;
    if (!d) {
        if (dupfd >= 0)
            close(dupfd);
        return terr_set(e, errno, "copy: %m");
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        const char *n = de->d_name;
        if (streq(n, ".") || streq(n, ".."))
            continue;
        struct stat st;
        if (fstatat(sdir, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = terr_set(e, errno, "copy: stat %s: %m", n);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(ddir, n, 0700) < 0) {
                r = terr_set(e, errno, "copy: mkdir %s: %m", n);
                break;
            }
            int s2 = openat(sdir, n, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int d2 = openat(ddir, n, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s2 < 0 || d2 < 0)
                r = terr_set(e, errno, "copy: open %s: %m", n);
            else
                r = copy_dir(c, s2, d2, depth + 1, e);
            if (r == 0 && c->chown_to && fchown(d2, c->uid, c->gid) < 0)
                r = terr_set(e, errno, "copy: chown %s: %m", n);
            if (r == 0 && fchmod(d2, st.st_mode & 07777) < 0)
                r = terr_set(e, errno, "copy: chmod %s: %m", n);
            if (s2 >= 0)
                close(s2);
            if (d2 >= 0)
                close(d2);
        } else if (S_ISREG(st.st_mode)) {
            int s2 = st.st_size > 0 ? open_source(sdir, n) : -2;
            int d2 = s2 == -1 ? -1
                              : openat(ddir, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                    O_CLOEXEC, st.st_mode & 07777);
            if (s2 == -1 || d2 < 0)
                r = terr_set(e, errno, "copy: open %s: %m", n);
            else if (s2 >= 0 && (r = copy_file(c, s2, d2, st.st_size)) < 0)
                terr_set(e, r, "copy: %s: %s", n, strerror(-r));
            else if (c->chown_to && fchown(d2, c->uid, c->gid) < 0)
                r = terr_set(e, errno, "copy: chown %s: %m", n);
            if (s2 >= 0)
                close(s2);
            if (d2 >= 0)
                close(d2);
        } else if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t l = readlinkat(sdir, n, target, sizeof(target) - 1);
            if (l < 0) {
                r = terr_set(e, errno, "copy: readlink %s: %m", n);
                break;
            }
            target[l] = '\0';
            if (symlinkat(target, ddir, n) < 0)
                r = terr_set(e, errno, "copy: symlink %s: %m", n);
            else if (c->chown_to && fchownat(ddir, n, c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0)
                r = terr_set(e, errno, "copy: chown symlink %s: %m", n);
        }
        /* sockets, fifos, devices: nothing a cluster needs copied */
    }
    closedir(d);
    return r;
}

/* As root, create everything as the final owner: the file system uid is
 * the thread's own, and we are single-threaded while copying. */
static bool become(uid_t uid, gid_t gid)
{
    if (geteuid() != 0)
        return false;
    setfsgid(gid);
    setfsuid(uid);
    return (uid_t)setfsuid((uid_t)-1) == uid && (gid_t)setfsgid((gid_t)-1) == gid;
}

int copy_tree(int srcfd, int dstparent, const char *dstname, bool chown_to, uid_t uid, gid_t gid,
              terr *e)
{
    struct stat st;
    if (fstat(srcfd, &st) < 0)
        return terr_set(e, errno, "copy: %m");
    struct copy c = {.chown_to = chown_to, .uid = uid, .gid = gid};
    bool as_owner = chown_to && become(uid, gid);
    if (as_owner)
        c.chown_to = false;
    int r = 0;
    _cleanup_close_ int dfd = -1;
    if (mkdirat(dstparent, dstname, 0700) < 0) {
        r = terr_set(e, errno, "copy: mkdir %s: %m", dstname);
        goto out;
    }
    dfd = openat(dstparent, dstname, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        r = terr_set(e, errno, "copy: open %s: %m", dstname);
        goto out;
    }
    if ((r = copy_dir(&c, srcfd, dfd, 0, e)) < 0)
        goto out;
    if (c.chown_to && fchown(dfd, uid, gid) < 0)
        r = terr_set(e, errno, "copy: chown %s: %m", dstname);
    else if (fchmod(dfd, st.st_mode & 07777) < 0)
        r = terr_set(e, errno, "copy: chmod %s: %m", dstname);
out:
    if (as_owner) {
        setfsuid(0);
        setfsgid(0);
    }
    return r;
}
