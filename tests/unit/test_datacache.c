/* datacache.c: concurrent builders build once, a killed builder's leftovers
 * are recovered by the next, the spare copy.  The builds here are a file
 * written by a callback that the test holds up through a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "drivers/datacache.h"
#include "fsutil.h"

struct t_build {
    int started; /* write end: one byte as the build starts, or -1 */
    int go;      /* read end: the build goes on at EOF, or -1 */
    int builds;  /* builds run (in this process) */
    int stales;  /* stale directories seen */
};

static int t_build(void *arg, int root, const char *dir, terr *e)
{
    struct t_build *t = arg;
    t->builds++;
    if (t->started >= 0)
        assert_int_equal(write(t->started, "s", 1), 1);
    char c;
    if (t->go >= 0)
        while (read(t->go, &c, 1) > 0)
            ;
    _cleanup_free_ char *data = xasprintf("%s/data", dir);
    if (mkdir(data, 0700) < 0)
        return terr_set(e, errno, "mkdir %s: %m", data);
    /* the count of builds of the whole test, in the root */
    int fd = openat(root, "builds", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "b\n", 2), 2);
    close(fd);
    _cleanup_free_ char *f = xasprintf("%s/file", data);
    fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "built", 5), 5);
    close(fd);
    return 0;
}

static void t_stale(void *arg, int root, const char *name)
{
    struct t_build *t = arg;
    struct stat st;
    assert_int_equal(fstatat(root, name, &st, 0), 0); /* called before it goes */
    t->stales++;
}

static char *root_dir;

static int setup(void **state)
{
    char tmpl[] = "/tmp/tether-datacache-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    root_dir = xasprintf("%s/cache", tmpl);
    setenv("TETHER_CACHE_DIR", root_dir, 1);
    return 0;
}

static int teardown(void **state)
{
    _cleanup_free_ char *parent = xstrndup(root_dir, strrchr(root_dir, '/') - root_dir);
    rm_rf_at(AT_FDCWD, parent, NULL);
    free(root_dir);
    return 0;
}

static struct datacache_build desc(struct t_build *t, const char *key)
{
    return (struct datacache_build){.label = "t", .what = "test", .key = key, .build = t_build,
                                    .stale = t_stale, .arg = t};
}

static int count_lines(int root, const char *name)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (read_file_at(root, name, &text, &len) < 0)
        return 0;
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

static int count_tmp(int root, const char *key)
{
    DIR *d = fdopendir(openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, key, strlen(key)) == 0 && strstr(de->d_name, ".tmp-");
    closedir(d);
    return n;
}

/* A process that gets the entry (building it if it must) and exits 0
 * when it has it, with the file the build wrote. */
static pid_t getter(const char *key, int started, int go, int go_w)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    close(go_w); /* the parent's alone: EOF when it closes it */
    struct t_build t = {.started = started, .go = go};
    struct datacache_build b = desc(&t, key);
    char *rootpath = NULL, *entry = NULL;
    terr e = {0};
    int root = datacache_root(&rootpath, &e);
    int fd = -1;
    if (root < 0 || datacache_get(&b, root, rootpath, &entry, &fd, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        _exit(1);
    }
    struct stat st;
    _exit(fstatat(fd, "file", &st, 0) == 0 ? 0 : 2);
}

/* Whether /proc/locks shows pid blocked on a lock (a "->" waiter line). */
static bool blocked_on_lock(pid_t pid)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (read_file_at(AT_FDCWD, "/proc/locks", &text, &len) < 0)
        return false;
    char want[32];
    snprintf(want, sizeof(want), " %d ", (int)pid);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "->") && strstr(line, "FLOCK") && strstr(line, want))
            return true;
    return false;
}

static int wait_exit(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* Two first users at once: one builds, the other waits for its lock and
 * uses what it built. */
static void concurrent_builders(void **state)
{
    int started[2], go[2];
    assert_int_equal(pipe2(started, O_CLOEXEC), 0);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    pid_t a = getter("k1", started[1], go[0], go[1]);
    char c;
    assert_int_equal(read(started[0], &c, 1), 1); /* a builds, held up */
    pid_t b = getter("k1", started[1], go[0], go[1]);
    while (!blocked_on_lock(b)) /* b waits for a's lock, not building */
        usleep(1000);
    close(go[1]);
    assert_int_equal(wait_exit(a), 0);
    assert_int_equal(wait_exit(b), 0);
    char *rootpath;
    terr e;
    int root = datacache_root(&rootpath, &e);
    assert_true(root >= 0);
    assert_int_equal(count_lines(root, "builds"), 1);
    assert_int_equal(count_tmp(root, "k1"), 0);
    close(started[0]);
    close(started[1]);
    close(go[0]);
    unlinkat(root, "builds", 0);
    close(root);
    free(rootpath);
}

/* A builder SIGKILLed half-way leaves its temporary directory and drops
 * its lock; the next user cleans it (stale callback first) and builds. */
static void killed_builder(void **state)
{
    int started[2], go[2];
    assert_int_equal(pipe2(started, O_CLOEXEC), 0);
    assert_int_equal(pipe2(go, O_CLOEXEC), 0);
    pid_t a = getter("k2", started[1], go[0], go[1]);
    char c;
    assert_int_equal(read(started[0], &c, 1), 1);
    kill(a, SIGKILL);
    int st = wait_exit(a);
    assert_true(WIFSIGNALED(st));
    char *rootpath;
    terr e;
    int root = datacache_root(&rootpath, &e);
    assert_true(root >= 0);
    assert_int_equal(count_tmp(root, "k2"), 1);
    struct t_build t = {.started = -1, .go = -1};
    struct datacache_build b = desc(&t, "k2");
    char *entry = NULL;
    int fd = -1;
    assert_int_equal(datacache_get(&b, root, rootpath, &entry, &fd, &e), 0);
    assert_int_equal(t.stales, 1);
    assert_int_equal(t.builds, 1);
    assert_int_equal(count_tmp(root, "k2"), 0);
    _cleanup_free_ char *want = xasprintf("%s/k2", rootpath);
    assert_string_equal(entry, want);
    struct stat sst;
    assert_int_equal(fstatat(fd, "file", &sst, 0), 0);
    /* warm: no build, no lock */
    close(fd);
    free(entry);
    assert_int_equal(datacache_get(&b, root, rootpath, &entry, &fd, &e), 0);
    assert_int_equal(t.builds, 1);
    close(fd);
    close(started[0]);
    close(started[1]);
    close(go[0]);
    close(go[1]);

    /* the spare: made once, taken by a rename, then made again */
    assert_int_equal(datacache_make_spare(entry, false, 0, 0), 0);
    _cleanup_free_ char *dst = xasprintf("%s/dst", rootpath);
    assert_int_equal(mkdir(dst, 0700), 0);
    int dfd = open(dst, O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(datacache_take_spare(entry, dfd, "data"), 0);
    assert_int_equal(fstatat(dfd, "data/file", &sst, 0), 0);
    assert_int_equal(datacache_take_spare(entry, dfd, "data2"), -ENOENT);
    close(dfd);
    free(entry);
    close(root);
    free(rootpath);
}

/* A build that fails leaves nothing behind and says why. */
static int t_fail(void *arg, int root, const char *dir, terr *e)
{
    _cleanup_free_ char *f = xasprintf("%s/junk", dir);
    close(open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    return terr_set(e, EIO, "[t] the build failed");
}

static void failed_build(void **state)
{
    char *rootpath;
    terr e;
    int root = datacache_root(&rootpath, &e);
    assert_true(root >= 0);
    struct t_build t = {.started = -1, .go = -1};
    struct datacache_build b = desc(&t, "k3");
    b.build = t_fail;
    char *entry = NULL;
    int fd = -1;
    assert_int_equal(datacache_get(&b, root, rootpath, &entry, &fd, &e), -EIO);
    assert_string_equal(e.msg, "[t] the build failed");
    assert_int_equal(t.stales, 1);
    assert_int_equal(count_tmp(root, "k3"), 0);
    close(root);
    free(rootpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_builders),
        cmocka_unit_test(killed_builder),
        cmocka_unit_test(failed_build),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
