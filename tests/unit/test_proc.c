/* Unit tests for lib/proc.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc.h"

/* A pid that cannot exist: pid_max is at most 2^22. */
#define NO_PID ((pid_t)INT_MAX)

/* A child that blocks until the write end of its pipe is closed. */
struct waiter {
    pid_t pid;
    int release; /* write end; closing it lets the child exit */
};

/* Child side: keep only fd, so that every other waiter's release pipe
 * reaches EOF when the test closes it; exit at EOF. */
static void __attribute__((noreturn)) waiter_child(int fd)
{
    char c;
    if (fd > 3)
        close_range(3, (unsigned)fd - 1, 0);
    close_range((unsigned)fd + 1, ~0U, 0);
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
    _exit(0);
}

static void waiter_start(struct waiter *w)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        waiter_child(p[0]);
    close(p[0]);
    w->pid = pid;
    w->release = p[1];
}

static void waiter_stop(struct waiter *w)
{
    close(w->release);
    int status;
    assert_int_equal(waitpid(w->pid, &status, 0), w->pid);
    assert_true(WIFEXITED(status));
}

static void test_parse_stat(void **state)
{
    unsigned long long st;
    pid_t ppid;
    char s;

    const char *plain = "1234 (sleep) S 99 1234 1234 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 "
                        "987654 8192 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 "
                        "0 0 0 0 0\n";
    assert_int_equal(proc_parse_stat(plain, &st, &ppid, &s), 0);
    assert_int_equal(st, 987654);
    assert_int_equal(ppid, 99);
    assert_int_equal(s, 'S');

    /* comm with ") " and "(" inside: only the last ')' counts */
    const char *evil = "77 (a) b (c) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 -20 -5 3 0 "
                       "42 0 0\n";
    assert_int_equal(proc_parse_stat(evil, &st, &ppid, &s), 0);
    assert_int_equal(st, 42);
    assert_int_equal(ppid, 1);
    assert_int_equal(s, 'R');

    /* a comm that looks like the rest of the line */
    const char *fake = "5 (x) Z 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 1) Z 0 0 0 0 0 0 0 0 0 0 0 "
                       "0 0 0 0 0 0 0 555 1\n";
    assert_int_equal(proc_parse_stat(fake, &st, &ppid, &s), 0);
    assert_int_equal(st, 555);
    assert_int_equal(ppid, 0);
    assert_int_equal(s, 'Z');

    const char *spaces = "8 (  my prog  ) D 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7\n";
    assert_int_equal(proc_parse_stat(spaces, NULL, NULL, NULL), 0);
    assert_int_equal(proc_parse_stat(spaces, &st, NULL, NULL), 0);
    assert_int_equal(st, 7);
    assert_int_equal(proc_parse_stat(spaces, NULL, &ppid, NULL), 0);
    assert_int_equal(ppid, 3);
    assert_int_equal(proc_parse_stat(spaces, NULL, NULL, &s), 0);
    assert_int_equal(s, 'D');

    static const char *bad[] = {
        "",
        "\n",
        "garbage",
        "12 (x S 1 2 3",                                          /* no ')' */
        "12 x) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7",          /* no '(' */
        "(x) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7",            /* no pid */
        "ab (x) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7",         /* bad pid */
        "12 (x)",                                                 /* no state */
        "12 (x) S",                                               /* no ppid */
        "12 (x) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",           /* no starttime */
        "12 (x) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7x",        /* junk starttime */
        "12 (x) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 -7",        /* negative */
        "12 (x) S x 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7",         /* bad ppid */
        "12 (x) SS 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7",        /* bad state */
        "12 (x)S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 7",          /* no space */
        "12 (x) S 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 99999999999999999999999",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        st = 1;
        ppid = 1;
        s = '?';
        if (proc_parse_stat(bad[i], &st, &ppid, &s) != -EINVAL)
            fail_msg("accepted malformed stat line %zu: '%s'", i, bad[i]);
        /* outputs untouched on error */
        assert_int_equal(st, 1);
        assert_int_equal(ppid, 1);
        assert_int_equal(s, '?');
    }
    assert_int_equal(proc_parse_stat(NULL, &st, &ppid, &s), -EINVAL);
}

static void test_starttime_self_and_child(void **state)
{
    unsigned long long self, again, child;
    assert_int_equal(proc_starttime(getpid(), &self), 0);
    assert_int_equal(proc_starttime(getpid(), &again), 0);
    assert_true(self == again);
    assert_int_equal(proc_starttime(getpid(), NULL), 0);

    struct waiter w;
    waiter_start(&w);
    assert_int_equal(proc_starttime(w.pid, &child), 0);
    assert_true(child >= self);
    waiter_stop(&w);

    assert_int_equal(proc_starttime(NO_PID, &child), -ESRCH);
    assert_int_equal(proc_starttime(0, &child), -ESRCH);
    assert_int_equal(proc_starttime(-1, &child), -ESRCH);
}

static void test_proc_same(void **state)
{
    struct proc_id me = {.pid = getpid()};
    assert_int_equal(proc_starttime(me.pid, &me.starttime), 0);
    assert_true(proc_same(&me));
    struct proc_id wrong = me;
    wrong.starttime++;
    assert_false(proc_same(&wrong));
    assert_false(proc_same(NULL));

    struct waiter w;
    waiter_start(&w);
    struct proc_id id = {.pid = w.pid};
    assert_int_equal(proc_starttime(id.pid, &id.starttime), 0);
    assert_true(proc_same(&id));

    /* Exited but not reaped: a zombie is not "the same process alive". */
    close(w.release);
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    assert_int_equal(waitid(P_PID, (id_t)id.pid, &si, WEXITED | WNOWAIT), 0);
    assert_false(proc_same(&id));

    int status;
    assert_int_equal(waitpid(id.pid, &status, 0), id.pid);
    assert_false(proc_same(&id));
    struct proc_id none = {.pid = NO_PID};
    assert_false(proc_same(&none));
}

/* The one place that opens pidfds and the one pidfd wait: a live child's
 * pidfd is not readable until it exits, a signal goes through it, and a
 * pid that is gone is -ESRCH. */
static void test_pidfd(void **state)
{
    (void)state;
    struct waiter w;
    waiter_start(&w);
    int pfd = proc_pidfd_open(w.pid);
    if (pfd == -ENOSYS) { /* valgrind 3.19: callers fall back to kill(2) */
        waiter_stop(&w);
        skip();
    }
    assert_true(pfd >= 0);
    assert_true(fcntl(pfd, F_GETFD) & FD_CLOEXEC);
    long long t0 = now_ns();
    assert_false(pidfd_wait(pfd, t0 + 50 * 1000000LL));
    assert_true(now_ns() - t0 >= 50 * 1000000LL);
    assert_int_equal(proc_pidfd_signal(pfd, SIGKILL), 0);
    assert_true(pidfd_wait(pfd, now_ns() + 30 * 1000000000LL));
    int status;
    assert_int_equal(waitpid(w.pid, &status, 0), w.pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    close(w.release);
    assert_int_equal(proc_pidfd_signal(pfd, SIGKILL), -ESRCH); /* reaped */
    close(pfd);
    assert_int_equal(proc_pidfd_open(w.pid), -ESRCH);
}

/* Natively through a pidfd; under valgrind 3.19, which has no pidfd_open,
 * through kill(2) and polling (tests/valgrind.sh runs this test). */
static void test_kill_wait(void **state)
{
    (void)state;
    struct waiter w;
    waiter_start(&w);
    struct proc_id id = {.pid = w.pid};
    assert_int_equal(proc_starttime(id.pid, &id.starttime), 0);

    /* another start time: someone else, left alone */
    struct proc_id wrong = id;
    wrong.starttime++;
    assert_int_equal(proc_kill_wait(&wrong, SIGKILL, 0), 0);
    assert_true(proc_same(&id));

    /* a signal it ignores: still there at the deadline */
    assert_int_equal(proc_kill_wait(&id, SIGWINCH, 100 * 1000000LL), -ETIMEDOUT);
    assert_true(proc_same(&id));

    /* one it dies of: gone once it has exited, reaped or not */
    assert_int_equal(proc_kill_wait(&id, SIGTERM, 30 * 1000000000LL), 0);
    assert_false(proc_same(&id));
    int status;
    assert_int_equal(waitpid(id.pid, &status, 0), id.pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    close(w.release);
    assert_int_equal(proc_kill_wait(&id, SIGKILL, 0), 0);
    struct proc_id none = {.pid = NO_PID};
    assert_int_equal(proc_kill_wait(&none, SIGKILL, 0), 0);
}

static void test_boot_id(void **state)
{
    char id[64], again[64];
    assert_int_equal(proc_boot_id(id), 0);
    assert_int_equal(strlen(id), 36);
    assert_null(strchr(id, '\n'));
    assert_int_equal(id[8], '-');
    assert_int_equal(proc_boot_id(again), 0);
    assert_string_equal(id, again);
}

/* fork+execve /bin/sleep with a custom environment; returns once the exec
 * has happened (the CLOEXEC pipe closes), so environ is the new one. */
static pid_t spawn_sleep(char *const envp[])
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"sleep", "1000", NULL};
        close(p[0]);
        execve("/bin/sleep", argv, envp);
        int err = errno;
        (void)!write(p[1], &err, sizeof(err));
        _exit(127);
    }
    close(p[1]);
    int err = 0;
    ssize_t n;
    while ((n = read(p[0], &err, sizeof(err))) < 0 && errno == EINTR)
        ;
    close(p[0]);
    if (n != 0) {
        waitpid(pid, NULL, 0);
        fail_msg("execve /bin/sleep: %s", strerror(err));
    }
    /* EOF comes as exec closes our fds, a moment before the kernel records
     * where the new environment is (an empty /proc/PID/environ until
     * then): wait for it to show, up to a second */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    for (int i = 0; i < 1000; i++) {
        char c;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? read(fd, &c, 1) : -1;
        if (fd >= 0)
            close(fd);
        if (got == 1)
            break;
        usleep(1000);
    }
    return pid;
}

static void kill_and_reap(pid_t pid)
{
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
}

static void test_has_env(void **state)
{
    char *envp[] = {"A=1", "TETHER_TEST_MARK=xyz123", "LAST=z", NULL};
    pid_t pid = spawn_sleep(envp);
    bool exact = proc_has_env(pid, "TETHER_TEST_MARK=xyz123");
    bool first = proc_has_env(pid, "A=1");
    bool last = proc_has_env(pid, "LAST=z");
    bool other = proc_has_env(pid, "TETHER_TEST_MARK=xyz124");
    bool prefix = proc_has_env(pid, "TETHER_TEST_MARK=xyz");
    bool longer = proc_has_env(pid, "TETHER_TEST_MARK=xyz1234");
    bool name_only = proc_has_env(pid, "TETHER_TEST_MARK");
    bool empty = proc_has_env(pid, "");
    kill_and_reap(pid);

    assert_true(exact);
    assert_true(first);
    assert_true(last);
    assert_false(other);
    assert_false(prefix);
    assert_false(longer);
    assert_false(name_only);
    assert_false(empty);
    /* gone */
    assert_false(proc_has_env(pid, "TETHER_TEST_MARK=xyz123"));
    assert_false(proc_has_env(NO_PID, "A=1"));
    assert_false(proc_has_env(getpid(), "TETHER_TEST_MARK=xyz123"));
}

struct find_ctx {
    pid_t want;
    int seen, calls;
};

static int find_pid(pid_t pid, void *ud)
{
    struct find_ctx *c = ud;
    c->calls++;
    assert_true(pid > 0);
    if (pid == c->want)
        c->seen++;
    return 0;
}

static int stop_at_second(pid_t pid, void *ud)
{
    int *calls = ud;
    return ++*calls == 2 ? 42 : 0;
}

static void test_foreach(void **state)
{
    struct find_ctx c = {.want = getpid()};
    assert_int_equal(proc_foreach(find_pid, &c), 0);
    assert_int_equal(c.seen, 1);
    assert_true(c.calls >= 1);

    int calls = 0;
    assert_int_equal(proc_foreach(stop_at_second, &calls), 42);
    assert_int_equal(calls, 2);
}

static size_t count_pid(const pid_t *v, size_t n, pid_t pid)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += v[i] == pid;
    return k;
}

/* A thread that forks a child and then waits: the child's parent is that
 * thread, not the main one, so it must be found through its task too. */
struct forker {
    struct waiter w;
    int go[2]; /* main -> thread: finish */
    int ready[2];
};

static void *forker_main(void *arg)
{
    struct forker *f = arg;
    int p[2] = {-1, -1};
    pid_t pid = -1;
    if (pipe2(p, O_CLOEXEC) == 0)
        pid = fork();
    if (pid == 0)
        waiter_child(p[0]);
    close(p[0]);
    f->w.pid = pid;
    f->w.release = p[1];
    (void)!write(f->ready[1], "x", 1);
    char c;
    while (read(f->go[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void test_children(void **state)
{
    struct waiter a, b;
    waiter_start(&a);
    waiter_start(&b);

    struct forker f = {.w = {.pid = -1, .release = -1}};
    assert_int_equal(pipe2(f.go, O_CLOEXEC), 0);
    assert_int_equal(pipe2(f.ready, O_CLOEXEC), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, forker_main, &f), 0);
    char c;
    ssize_t n;
    while ((n = read(f.ready[0], &c, 1)) < 0 && errno == EINTR)
        ;

    pid_t *kids = xmalloc(sizeof(pid_t));
    kids[0] = 12345; /* existing entries are kept: the call appends */
    size_t nkids = 1;
    int r = proc_children(getpid(), &kids, &nkids);

    /* release everything before asserting, so a failure leaks nothing */
    (void)!write(f.go[1], "x", 1);
    pthread_join(th, NULL);
    waiter_stop(&a);
    waiter_stop(&b);
    if (f.w.pid > 0)
        waiter_stop(&f.w);
    close(f.go[0]);
    close(f.go[1]);
    close(f.ready[0]);
    close(f.ready[1]);

    assert_int_equal(n, 1);
    assert_true(f.w.pid > 0);
    assert_int_equal(r, 0);
    assert_true(nkids >= 4);
    assert_int_equal(kids[0], 12345);
    assert_int_equal(count_pid(kids, nkids, a.pid), 1);
    assert_int_equal(count_pid(kids, nkids, b.pid), 1);
    assert_int_equal(count_pid(kids, nkids, f.w.pid), 1);
    assert_int_equal(count_pid(kids, nkids, getpid()), 0);
    free(kids);

    /* all reaped now */
    kids = NULL;
    nkids = 0;
    assert_int_equal(proc_children(getpid(), &kids, &nkids), 0);
    assert_int_equal(count_pid(kids, nkids, a.pid), 0);
    free(kids);

    kids = NULL;
    nkids = 0;
    assert_int_equal(proc_children(NO_PID, &kids, &nkids), -ESRCH);
    assert_int_equal(nkids, 0);
    free(kids);
}

/* A child that forks a grandchild; both wait on the same release pipe. */
static void test_descendants(void **state)
{
    int rel[2], rep[2];
    assert_int_equal(pipe2(rel, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(rel[1]);
        pid_t g = fork();
        if (g == 0)
            waiter_child(rel[0]);
        (void)!write(rep[1], &g, sizeof(g));
        waiter_child(rel[0]);
    }
    close(rel[0]);
    close(rep[1]);
    pid_t grand = -1;
    ssize_t n;
    while ((n = read(rep[0], &grand, sizeof(grand))) < 0 && errno == EINTR)
        ;
    close(rep[0]);

    struct proc_id *d = xmalloc(sizeof(*d));
    d[0] = (struct proc_id){.pid = 12345, .starttime = 6}; /* kept: the call appends */
    size_t nd = 1;
    int r = proc_descendants(getpid(), &d, &nd);
    unsigned long long cs = 0, gs = 0;
    proc_starttime(child, &cs);
    proc_starttime(grand, &gs);
    size_t found_c = 0, found_g = 0, self = 0;
    for (size_t i = 1; i < nd; i++) {
        found_c += d[i].pid == child && d[i].starttime == cs;
        found_g += d[i].pid == grand && d[i].starttime == gs;
        self += d[i].pid == getpid();
    }
    close(rel[1]); /* both exit */
    int status;
    waitpid(child, &status, 0);

    assert_int_equal(n, (ssize_t)sizeof(grand));
    assert_int_equal(r, 0);
    assert_int_equal(d[0].pid, 12345);
    assert_int_equal(found_c, 1);
    assert_int_equal(found_g, 1);
    assert_int_equal(self, 0);
    free(d);

    d = NULL;
    nd = 0;
    assert_int_equal(proc_descendants(NO_PID, &d, &nd), -ESRCH);
    assert_int_equal(nd, 0);
    free(d);
}

static void test_last_pid(void **state)
{
    pid_t before = 0, after = 0;
    assert_int_equal(proc_last_pid(&before), 0);
    assert_true(before > 0);
    struct waiter w;
    waiter_start(&w);
    assert_int_equal(proc_last_pid(&after), 0);
    waiter_stop(&w);
    /* a fork hands out a new pid: the last one moves */
    assert_int_not_equal(after, before);
}

static void test_pidns(void **state)
{
    struct pidns_id a = {0}, b = {0};
    assert_int_equal(proc_pidns(&a), 0);
    assert_int_equal(proc_pidns(&b), 0);
    assert_true(a.ino != 0);
    assert_true(a.dev == b.dev && a.ino == b.ino);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_stat),
        cmocka_unit_test(test_starttime_self_and_child),
        cmocka_unit_test(test_proc_same),
        cmocka_unit_test(test_kill_wait),
        cmocka_unit_test(test_pidfd),
        cmocka_unit_test(test_boot_id),
        cmocka_unit_test(test_has_env),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_children),
        cmocka_unit_test(test_descendants),
        cmocka_unit_test(test_last_pid),
        cmocka_unit_test(test_pidns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
