/* Unit tests for lib/fsutil.c.  Everything happens in a mkdtemp directory
 * that the group teardown removes. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"

static char tmp[256]; /* the mkdtemp directory */
static int tmpfd = -1;

static int setup(void **state)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int n = snprintf(tmp, sizeof(tmp), "%s/tether-fsutil-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof(tmp) || !mkdtemp(tmp))
        return -1;
    tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return tmpfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    terr e = {{0}};
    close(tmpfd);
    int r = rm_rf_at(AT_FDCWD, tmp, &e);
    if (r < 0)
        fprintf(stderr, "cleanup of %s failed: %s\n", tmp, e.msg);
    return r;
}

/* Helpers that return 0 or -errno, so that they also work in a forked
 * child where cmocka's asserts cannot be used. */
static int put(int dirfd, const char *name, const char *data)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t n = strlen(data);
    int r = write(fd, data, n) == (ssize_t)n ? 0 : -EIO;
    close(fd);
    return r;
}

static bool has(int dirfd, const char *name, const char *data)
{
    char *got = NULL;
    if (read_file_at(dirfd, name, &got, NULL) < 0)
        return false;
    bool ok = streq(got, data);
    free(got);
    return ok;
}

static bool exists(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int make_socket(int dirfd, const char *dir, const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    close(fd);
    return r;
}

#define TRY(x)                                                                  \
    do {                                                                        \
        int r_ = (x);                                                           \
        if (r_ < 0) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x,          \
                    strerror(-r_));                                             \
            return r_;                                                          \
        }                                                                       \
    } while (0)
#define TRYE(x) TRY((x) < 0 ? -errno : 0)

/* Build under base (absolute path of dirfd):
 *   outside/{file, dir/keep, hard}
 *   tree/a/b/c/d/file, tree/a/file2, tree/{lf, ld, dangling, hl, fifo, sock}
 *   tree/ro (0500, with a file), tree/none (0000, with a subdir) */
static int build_tree(int dirfd, const char *base)
{
    TRYE(mkdirat(dirfd, "outside", 0755));
    TRY(put(dirfd, "outside/file", "outside file"));
    TRYE(mkdirat(dirfd, "outside/dir", 0755));
    TRY(put(dirfd, "outside/dir/keep", "keep me"));
    TRY(put(dirfd, "outside/hard", "hard data"));

    TRYE(mkdirat(dirfd, "tree", 0755));
    TRYE(mkdirat(dirfd, "tree/a", 0755));
    TRYE(mkdirat(dirfd, "tree/a/b", 0755));
    TRYE(mkdirat(dirfd, "tree/a/b/c", 0755));
    TRYE(mkdirat(dirfd, "tree/a/b/c/d", 0755));
    TRY(put(dirfd, "tree/a/b/c/d/file", "x"));
    TRY(put(dirfd, "tree/a/file2", "y"));
    char target[PATH_MAX];
    snprintf(target, sizeof(target), "%s/outside/file", base);
    TRYE(symlinkat(target, dirfd, "tree/lf"));
    snprintf(target, sizeof(target), "%s/outside/dir", base);
    TRYE(symlinkat(target, dirfd, "tree/ld"));
    TRYE(symlinkat("../outside/dir", dirfd, "tree/a/ld-relative"));
    TRYE(symlinkat("/nonexistent/tether", dirfd, "tree/dangling"));
    TRYE(linkat(dirfd, "outside/hard", dirfd, "tree/hl", 0));
    TRYE(mkfifoat(dirfd, "tree/fifo", 0600));
    snprintf(target, sizeof(target), "%s/tree", base);
    TRY(make_socket(dirfd, target, "sock"));

    TRYE(mkdirat(dirfd, "tree/ro", 0755));
    TRY(put(dirfd, "tree/ro/locked", "z"));
    TRYE(mkdirat(dirfd, "tree/ro/sub", 0755));
    TRY(put(dirfd, "tree/ro/sub/f", "z"));
    TRYE(fchmodat(dirfd, "tree/ro/sub", 0500, 0));
    TRYE(fchmodat(dirfd, "tree/ro", 0500, 0));
    TRYE(mkdirat(dirfd, "tree/none", 0755));
    TRYE(mkdirat(dirfd, "tree/none/sub", 0755));
    TRYE(fchmodat(dirfd, "tree/none", 0, 0));
    return 0;
}

/* 0 if tree is gone and outside intact, else a step number. */
static int check_removed(int dirfd)
{
    if (exists(dirfd, "tree"))
        return 1;
    if (!has(dirfd, "outside/file", "outside file"))
        return 2;
    if (!has(dirfd, "outside/dir/keep", "keep me"))
        return 3;
    if (!has(dirfd, "outside/hard", "hard data"))
        return 4;
    struct stat st;
    if (fstatat(dirfd, "outside/hard", &st, 0) < 0 || st.st_nlink != 1)
        return 5;
    if (fstatat(dirfd, "outside/dir", &st, 0) < 0 || (st.st_mode & 07777) != 0755)
        return 6;
    return 0;
}

static void test_rm_rf_tree(void **state)
{
    assert_int_equal(mkdirat(tmpfd, "t1", 0755), 0);
    char base[512];
    snprintf(base, sizeof(base), "%s/t1", tmp);
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(build_tree(fd, base), 0);

    terr e = {{0}};
    int r = rm_rf_at(fd, "tree", &e);
    if (r < 0)
        fail_msg("rm_rf_at: %s", e.msg);
    assert_int_equal(check_removed(fd), 0);
    close(fd);
}

/* The 0500/0000 directories only resist a non-root user: as root, build
 * and remove the tree again as nobody in a child. */
static void test_rm_rf_unprivileged(void **state)
{
    if (geteuid() != 0) {
        /* test_rm_rf_tree already ran unprivileged */
        skip();
    }
    const uid_t nobody = 65534;
    /* mkdtemp made it 0700: let nobody through */
    assert_int_equal(fchmod(tmpfd, 0711), 0);
    assert_int_equal(mkdirat(tmpfd, "t2", 0755), 0);
    assert_int_equal(fchownat(tmpfd, "t2", nobody, nobody, 0), 0);
    char base[512];
    snprintf(base, sizeof(base), "%s/t2", tmp);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(nobody, nobody, nobody) < 0 ||
            setresuid(nobody, nobody, nobody) < 0)
            _exit(100);
        int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            _exit(errno == EACCES ? 77 : 101); /* TMPDIR not reachable for nobody */
        if (build_tree(fd, base) < 0)
            _exit(102);
        /* confirm the permissions really bite for this user */
        if (unlinkat(fd, "tree/ro/locked", 0) == 0 || errno != EACCES)
            _exit(103);
        terr e = {{0}};
        if (rm_rf_at(fd, "tree", &e) < 0) {
            fprintf(stderr, "rm_rf_at as nobody: %s\n", e.msg);
            _exit(104);
        }
        _exit(check_removed(fd));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_rm_rf_simple_cases(void **state)
{
    terr e = {{0}};
    assert_int_equal(rm_rf_at(tmpfd, "does-not-exist", &e), 0);
    assert_int_equal(rm_rf_at(tmpfd, "does-not-exist", NULL), 0);

    /* a plain file */
    assert_int_equal(put(tmpfd, "plain", "p"), 0);
    assert_int_equal(rm_rf_at(tmpfd, "plain", &e), 0);
    assert_false(exists(tmpfd, "plain"));

    /* the top is a symlink to a directory: only the link goes */
    assert_int_equal(mkdirat(tmpfd, "target", 0755), 0);
    assert_int_equal(put(tmpfd, "target/f", "keep"), 0);
    assert_int_equal(symlinkat("target", tmpfd, "link"), 0);
    assert_int_equal(rm_rf_at(tmpfd, "link", &e), 0);
    assert_false(exists(tmpfd, "link"));
    assert_true(has(tmpfd, "target/f", "keep"));

    /* an empty directory, by absolute path */
    assert_int_equal(mkdirat(tmpfd, "empty", 0700), 0);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/empty", tmp);
    assert_int_equal(rm_rf_at(AT_FDCWD, path, &e), 0);
    assert_false(exists(tmpfd, "empty"));

    assert_int_equal(rm_rf_at(tmpfd, "target", &e), 0);
    assert_false(exists(tmpfd, "target"));

    /* what a service user plants: a FIFO (opening it would wait for a
     * writer: alarm() turns a hang into a failure) and links to devices,
     * at the top and inside */
    alarm(10);
    assert_int_equal(mkfifoat(tmpfd, "fifo-top", 0600), 0);
    assert_int_equal(rm_rf_at(tmpfd, "fifo-top", &e), 0);
    assert_false(exists(tmpfd, "fifo-top"));
    assert_int_equal(mkdirat(tmpfd, "planted", 0700), 0);
    assert_int_equal(mkfifoat(tmpfd, "planted/fifo", 0600), 0);
    assert_int_equal(symlinkat("/dev/zero", tmpfd, "planted/zero"), 0);
    assert_int_equal(symlinkat("/dev/tty", tmpfd, "planted/tty"), 0);
    assert_int_equal(rm_rf_at(tmpfd, "planted", &e), 0);
    assert_false(exists(tmpfd, "planted"));
    alarm(0);
}

/* Deeper than the limit: -ELOOP, the rest is still removed as far as it
 * goes, and no stack overflow either way. */
static void test_rm_rf_deep(void **state)
{
    assert_int_equal(mkdirat(tmpfd, "deep", 0755), 0);
    int fd = openat(tmpfd, "deep", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int mid = -1;
    for (int i = 0; i < 300; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        assert_int_equal(put(fd, "f", "x"), 0);
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        if (i == 100)
            mid = fd;
        else
            close(fd);
        fd = next;
    }
    close(fd);

    terr e = {{0}};
    assert_int_equal(rm_rf_at(tmpfd, "deep", &e), -ELOOP);
    assert_non_null(strstr(e.msg, "nested more than"));
    assert_true(exists(tmpfd, "deep"));
    assert_false(exists(tmpfd, "deep/f")); /* the shallow parts went */

    /* from the middle it is within the limit */
    assert_int_equal(rm_rf_at(mid, "d", &e), 0);
    close(mid);
    assert_int_equal(rm_rf_at(tmpfd, "deep", &e), 0);
    assert_false(exists(tmpfd, "deep"));
}

/* Mount points need root and a private mount namespace. */
static int mount_child(void)
{
    if (unshare(CLONE_NEWNS) < 0)
        return 77;
    /* "none": the kernel ignores the type here, valgrind reads it */
    if (mount(NULL, "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
        return 77;
    char base[512], p[PATH_MAX + 32];
    snprintf(base, sizeof(base), "%s/mnt", tmp);
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    if (mkdirat(fd, "tree", 0755) < 0 || mkdirat(fd, "tree/m", 0755) < 0 ||
        mkdirat(fd, "tree/sub", 0755) < 0 || mkdirat(fd, "tree/sub/bind", 0755) < 0 ||
        put(fd, "tree/file", "f") < 0 || mkdirat(fd, "src", 0755) < 0 ||
        put(fd, "src/keep", "keep") < 0 || mkdirat(fd, "top", 0755) < 0)
        return 2;
    snprintf(p, sizeof(p), "%s/tree/m", base);
    if (mount("tmpfs", p, "tmpfs", 0, "size=1m") < 0)
        return 77;
    if (put(fd, "tree/m/inside", "in") < 0)
        return 3;
    /* a bind mount of the same file system has the same st_dev */
    char src[1024];
    snprintf(src, sizeof(src), "%s/src", base);
    snprintf(p, sizeof(p), "%s/tree/sub/bind", base);
    if (mount(src, p, "none", MS_BIND, NULL) < 0)
        return 4;
    snprintf(p, sizeof(p), "%s/top", base);
    if (mount("tmpfs", p, "tmpfs", 0, "size=1m") < 0 || put(fd, "top/x", "x") < 0)
        return 5;
    /* not even the mode of what is mounted may change */
    if (fchmodat(fd, "src", 0500, 0) < 0)
        return 6;

    terr e = {{0}};
    int r = rm_rf_at(fd, "tree", &e);
    if (r != -EXDEV)
        return 10;
    if (!strstr(e.msg, "is a mount point; not removed: unmount it") ||
        !strstr(e.msg, "tree/"))
        return 11;
    if (!has(fd, "tree/m/inside", "in") || !has(fd, "src/keep", "keep") ||
        !exists(fd, "tree/sub/bind/keep"))
        return 12;
    struct stat st;
    if (fstatat(fd, "src", &st, 0) < 0 || (st.st_mode & 07777) != 0500)
        return 15;
    if (exists(fd, "tree/file"))
        return 13;

    /* the top itself a mount point */
    if (rm_rf_at(fd, "top", &e) != -EXDEV || !has(fd, "top/x", "x"))
        return 14;

    /* unmounted, the rest goes */
    snprintf(p, sizeof(p), "%s/tree/m", base);
    if (umount(p) < 0)
        return 20;
    snprintf(p, sizeof(p), "%s/tree/sub/bind", base);
    if (umount(p) < 0)
        return 21;
    snprintf(p, sizeof(p), "%s/top", base);
    if (umount(p) < 0)
        return 22;
    if (rm_rf_at(fd, "tree", &e) != 0 || exists(fd, "tree") || !has(fd, "src/keep", "keep"))
        return 23;
    close(fd);
    return 0;
}

static void test_rm_rf_mount(void **state)
{
    if (geteuid() != 0)
        skip();
    assert_int_equal(mkdirat(tmpfd, "mnt", 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(mount_child());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip(); /* no CAP_SYS_ADMIN here (container) */
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the namespace died with the child, and its mounts with it */
    terr e = {{0}};
    assert_int_equal(rm_rf_at(tmpfd, "mnt", &e), 0);
}

static void check_private(int fd, const char *path)
{
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(st.st_uid, geteuid());
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    struct stat st2;
    assert_int_equal(stat(path, &st2), 0);
    assert_true(st.st_ino == st2.st_ino && st.st_dev == st2.st_dev);
    close(fd);
}

static void test_ensure_private_dir(void **state)
{
    char path[PATH_MAX], other[PATH_MAX];
    terr e = {{0}};
    uid_t me = geteuid();

    /* created */
    snprintf(path, sizeof(path), "%s/priv", tmp);
    check_private(ensure_private_dir(path, me, &e), path);
    /* accepted as it is */
    check_private(ensure_private_dir(path, me, &e), path);

    /* too open, but ours: fixed silently */
    assert_int_equal(chmod(path, 0755), 0);
    check_private(ensure_private_dir(path, me, &e), path);
    assert_int_equal(chmod(path, 0500), 0);
    check_private(ensure_private_dir(path, me, &e), path);

    /* a umask that strips owner bits does not stick */
    snprintf(path, sizeof(path), "%s/priv-umask", tmp);
    mode_t old = umask(0777);
    int fd = ensure_private_dir(path, me, &e);
    umask(old);
    check_private(fd, path);

    /* someone else's */
    snprintf(path, sizeof(path), "%s/priv", tmp);
    assert_int_equal(ensure_private_dir(path, me + 1, &e), -EPERM);
    char want[128];
    snprintf(want, sizeof(want), "is owned by uid %u, not you (uid %u)", (unsigned)me,
             (unsigned)me + 1);
    assert_non_null(strstr(e.msg, want));
    assert_non_null(strstr(e.msg, "TETHER_DIR"));

    /* a symlink to a perfectly good private dir is still refused */
    snprintf(other, sizeof(other), "%s/priv-link", tmp);
    assert_int_equal(symlink(path, other), 0);
    memset(&e, 0, sizeof(e));
    assert_int_equal(ensure_private_dir(other, me, &e), -ELOOP);
    assert_non_null(strstr(e.msg, "priv-link is a symlink, not a directory"));
    assert_non_null(strstr(e.msg, "hijack"));

    /* a dangling symlink: mkdir must not create its target */
    snprintf(other, sizeof(other), "%s/priv-dangling", tmp);
    char target[PATH_MAX + 16];
    snprintf(target, sizeof(target), "%s/planted", tmp);
    assert_int_equal(symlink(target, other), 0);
    memset(&e, 0, sizeof(e));
    assert_int_equal(ensure_private_dir(other, me, &e), -ELOOP);
    assert_non_null(strstr(e.msg, "is a symlink"));
    assert_false(exists(tmpfd, "planted"));

    /* a regular file */
    snprintf(other, sizeof(other), "%s/priv-file", tmp);
    assert_int_equal(put(tmpfd, "priv-file", "x"), 0);
    memset(&e, 0, sizeof(e));
    assert_int_equal(ensure_private_dir(other, me, &e), -ENOTDIR);
    assert_non_null(strstr(e.msg, "priv-file is not a directory"));

    /* only the last component is created */
    snprintf(other, sizeof(other), "%s/no-parent/priv", tmp);
    memset(&e, 0, sizeof(e));
    assert_int_equal(ensure_private_dir(other, me, &e), -ENOENT);
    assert_non_null(strstr(e.msg, "no-parent/priv"));
    assert_false(exists(tmpfd, "no-parent"));
}

static void test_mkdir_p(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/mk/a//b/c/", tmp);
    assert_int_equal(mkdir_p(path, 0750), 0);
    struct stat st;
    assert_int_equal(fstatat(tmpfd, "mk/a/b/c", &st, 0), 0);
    assert_true(S_ISDIR(st.st_mode));
    mode_t um = umask(0);
    umask(um);
    assert_int_equal(st.st_mode & 0777, 0750 & ~um);
    /* again: everything exists */
    assert_int_equal(mkdir_p(path, 0750), 0);
    /* through a symlink to a directory, like mkdir -p */
    assert_int_equal(symlinkat("mk/a", tmpfd, "mk-link"), 0);
    snprintf(path, sizeof(path), "%s/mk-link/b/new", tmp);
    assert_int_equal(mkdir_p(path, 0700), 0);
    assert_true(exists(tmpfd, "mk/a/b/new"));
    /* a file in the way */
    assert_int_equal(put(tmpfd, "mk/file", "x"), 0);
    snprintf(path, sizeof(path), "%s/mk/file/sub", tmp);
    assert_int_equal(mkdir_p(path, 0700), -ENOTDIR);
    snprintf(path, sizeof(path), "%s/mk/file", tmp);
    assert_int_equal(mkdir_p(path, 0700), -ENOTDIR);
    assert_int_equal(mkdir_p("", 0700), -EINVAL);
}

/* ---- read_file_trusted: files a less trusted user may have planted ---- */

/* read_file_trusted in a child under alarm(): a FIFO that blocked the
 * open or the read must fail the test, not hang it.  The child's result
 * (-errno, or the length read) comes back in its exit status. */
static int read_guarded(int dirfd, const char *path, uid_t owner, size_t max, terr *e)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        alarm(5);
        char *out = NULL;
        size_t len = 0;
        terr ce = {{0}};
        int r = read_file_trusted(dirfd, path, owner, max, &out, &len, &ce);
        if (write(p[1], ce.msg, sizeof(ce.msg)) < 0)
            _exit(99);
        _exit(r < 0 ? -r : (int)(len < 100 ? len : 100) + 150);
    }
    close(p[1]);
    memset(e, 0, sizeof(*e));
    ssize_t n = read(p[0], e->msg, sizeof(e->msg));
    (void)n;
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("read_file_trusted(%s) hung (killed by signal %d)", path, WTERMSIG(status));
    assert_true(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    return code >= 150 ? code - 150 : -code;
}

static void expect_refused(int dirfd, const char *path, uid_t owner, size_t max, int err,
                           const char *says)
{
    terr e;
    int r = read_guarded(dirfd, path, owner, max, &e);
    if (r != -err)
        fail_msg("%s: got %d (%s), want %d", path, r, e.msg, -err);
    if (!strstr(e.msg, says))
        fail_msg("%s: message \"%s\" does not say \"%s\"", path, e.msg, says);
}

static void test_read_trusted_ok(void **state)
{
    assert_int_equal(mkdirat(tmpfd, "rt", 0700), 0);
    assert_int_equal(mkdirat(tmpfd, "rt/sub", 0700), 0);
    assert_int_equal(put(tmpfd, "rt/sub/rec", "12 34\n"), 0);
    assert_int_equal(fchmodat(tmpfd, "rt/sub/rec", 0600, 0), 0);
    char *out = NULL;
    size_t len = 0;
    terr e = {{0}};
    assert_int_equal(read_file_trusted(tmpfd, "rt/sub/rec", geteuid(), 6, &out, &len, &e), 0);
    assert_string_equal(out, "12 34\n");
    assert_int_equal(len, 6);
    free(out);
    /* an empty file is "", terminated */
    assert_int_equal(put(tmpfd, "rt/empty", ""), 0);
    assert_int_equal(read_file_trusted(tmpfd, "rt/empty", USER_PATH, 0, &out, NULL, &e), 0);
    assert_string_equal(out, "");
    free(out);
    /* the fd it hands out is blocking again */
    int fd = open_file_trusted(tmpfd, "rt/sub/rec", geteuid(), &e);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    close(fd);
}

static void test_read_trusted_refuses(void **state)
{
    assert_int_equal(mkdirat(tmpfd, "rr", 0700), 0);
    assert_int_equal(put(tmpfd, "rr/real", "x"), 0);
    assert_int_equal(fchmodat(tmpfd, "rr/real", 0600, 0), 0);
    assert_int_equal(mkfifoat(tmpfd, "rr/fifo", 0600), 0);
    assert_int_equal(symlinkat("/dev/zero", tmpfd, "rr/zero"), 0);
    assert_int_equal(symlinkat("real", tmpfd, "rr/link"), 0);
    assert_int_equal(symlinkat(".", tmpfd, "rr/dirlink"), 0);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/rr", tmp);
    assert_int_equal(make_socket(tmpfd, path, "sock"), 0);
    uid_t me = geteuid();

    expect_refused(tmpfd, "rr/fifo", me, 100, EINVAL, "is a FIFO, not a regular file");
    expect_refused(tmpfd, "rr/fifo", USER_PATH, 100, EINVAL, "FIFO");
    expect_refused(tmpfd, "rr/zero", geteuid(), 100, ELOOP, "a symlink, not followed");
    /* a path the user named: followed, but /dev/zero is still no file */
    expect_refused(tmpfd, "rr/zero", USER_PATH, 100, EINVAL, "a character device");
    expect_refused(tmpfd, "rr/link", me, 100, ELOOP, "rr/link: a symlink");
    /* a symlink on the way there is refused as well */
    expect_refused(tmpfd, "rr/dirlink/real", me, 100, ELOOP, "rr/dirlink/real: a symlink");
    expect_refused(tmpfd, "rr/sock", USER_PATH, 100, ENXIO, "cannot open rr/sock");
    expect_refused(tmpfd, "rr", USER_PATH, 100, EINVAL, "is a directory");
    expect_refused(AT_FDCWD, "/dev/zero", USER_PATH, 100, EINVAL, "a character device");
    expect_refused(tmpfd, "rr/missing", me, 100, ENOENT, "No such file");
    /* someone else's, or writable by others */
    expect_refused(tmpfd, "rr/real", me + 1, 100, EPERM, "not trusted");
    assert_int_equal(fchmodat(tmpfd, "rr/real", 0620, 0), 0);
    expect_refused(tmpfd, "rr/real", me, 100, EPERM, "writable by others (mode 0620)");
    /* USER_PATH takes the file as it is, through a link too */
    assert_int_equal(read_guarded(tmpfd, "rr/real", USER_PATH, 100, &(terr){{0}}), 1);
    assert_int_equal(read_guarded(tmpfd, "rr/dirlink/link", USER_PATH, 100, &(terr){{0}}), 1);
}

static void test_read_trusted_size_cap(void **state)
{
    assert_int_equal(mkdirat(tmpfd, "rs", 0700), 0);
    char big[10001];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(put(tmpfd, "rs/big", big), 0);
    assert_int_equal(fchmodat(tmpfd, "rs/big", 0600, 0), 0);
    terr e = {{0}};
    char *out = NULL;
    size_t len = 0;
    /* exactly the cap is fine, one byte more is not */
    assert_int_equal(read_file_trusted(tmpfd, "rs/big", geteuid(), 10000, &out, &len, &e), 0);
    assert_int_equal(len, 10000);
    free(out);
    expect_refused(tmpfd, "rs/big", geteuid(), 9999, EFBIG, "larger than 9999 bytes");
    /* /proc's files say size 0: the cap holds while reading */
    expect_refused(AT_FDCWD, "/proc/self/maps", USER_PATH, 10, EFBIG, "larger than 10 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rm_rf_tree),
        cmocka_unit_test(test_rm_rf_unprivileged),
        cmocka_unit_test(test_rm_rf_simple_cases),
        cmocka_unit_test(test_rm_rf_deep),
        cmocka_unit_test(test_rm_rf_mount),
        cmocka_unit_test(test_ensure_private_dir),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_read_trusted_ok),
        cmocka_unit_test(test_read_trusted_refuses),
        cmocka_unit_test(test_read_trusted_size_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
