/* The helper's record of its descendants (lib/track.c): what it forks,
 * and what those fork, is recorded with its start time; a process that is
 * not ours is not, even under a pid we had recorded once. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "track.h"

/* fork a child that forks a grandchild; both live until *release is
 * closed.  Returns the child, the grandchild in *grand. */
static pid_t family(pid_t *grand, int *release)
{
    int rel[2], rep[2];
    assert_int_equal(pipe2(rel, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(rel[1]);
        pid_t g = fork();
        if (g != 0)
            (void)!write(rep[1], &g, sizeof(g));
        char c;
        while (read(rel[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(rel[0]);
    close(rep[1]);
    while (read(rep[0], grand, sizeof(*grand)) < 0 && errno == EINTR)
        ;
    close(rep[0]);
    *release = rel[1];
    return child;
}

static bool recorded(const struct track *t, pid_t pid)
{
    unsigned long long start = 0;
    if (proc_starttime(pid, &start) < 0)
        return false;
    for (size_t i = 0; i < t->n; i++)
        if (t->procs[i].pid == pid)
            return t->procs[i].starttime == start;
    return false;
}

static void records_children_and_grandchildren(void **state)
{
    struct track t;
    track_init(&t, getpid());
    assert_true(track_rescan(&t) >= 0);
    pid_t g;
    int release;
    pid_t c = family(&g, &release);
    int changed = track_update(&t);
    bool rc = recorded(&t, c), rg = recorded(&t, g);
    int again = track_update(&t); /* nothing new of ours */
    int rescan = track_rescan(&t);
    bool still = recorded(&t, c) && recorded(&t, g);
    close(release);
    waitpid(c, NULL, 0);
    track_free(&t);
    assert_int_equal(changed, 1);
    assert_true(rc);
    assert_true(rg);
    assert_true(again == 0 || again == 1); /* others may fork meanwhile */
    assert_int_equal(rescan, 0);           /* the walk agrees */
    assert_true(still);
}

/* X forks Y and exits before we look: Y went to init, it is not ours. */
static void a_process_of_someone_else_is_not_recorded(void **state)
{
    struct track t;
    track_init(&t, getpid());
    assert_true(track_rescan(&t) >= 0);
    int rel[2], rep[2];
    assert_int_equal(pipe2(rel, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    pid_t x = fork();
    if (x == 0) {
        close(rel[1]);
        pid_t y = fork();
        if (y == 0) {
            char c;
            while (read(rel[0], &c, 1) < 0 && errno == EINTR)
                ;
            _exit(0);
        }
        (void)!write(rep[1], &y, sizeof(y));
        _exit(0);
    }
    close(rel[0]);
    close(rep[1]);
    pid_t y = -1;
    while (read(rep[0], &y, sizeof(y)) < 0 && errno == EINTR)
        ;
    close(rep[0]);
    waitpid(x, NULL, 0);
    pid_t ppid = x;
    for (int i = 0; i < 5000 && ppid == x; i++) {
        proc_stat(y, NULL, &ppid, NULL);
        usleep(1000);
    }
    track_update(&t);
    bool ry = recorded(&t, y), rx = recorded(&t, x);
    close(rel[1]);
    track_free(&t);
    assert_int_not_equal(ppid, x);
    if (ppid == getpid())
        skip(); /* we are somebody's subreaper: y is ours after all */
    assert_false(ry);
    assert_false(rx);
}

/* A pid we recorded once, reused by a stranger: the stale entry goes, and
 * the stranger's children are not trusted through it. */
static void a_reused_pid_is_forgotten(void **state)
{
    struct track t;
    track_init(&t, getpid());
    assert_true(track_rescan(&t) >= 0);
    pid_t g;
    int release;
    pid_t c = family(&g, &release);
    /* pretend c is a stranger that reused the pid of one of ours: we see
     * it first with another start time, and not as our child */
    unsigned long long start;
    assert_int_equal(proc_starttime(c, &start), 0);
    struct track fake = t;
    fake.root = 1;
    fake.procs = xmalloc(sizeof(*fake.procs));
    fake.procs[0] = (struct proc_id){.pid = c, .starttime = start + 1};
    fake.n = 1;
    fake.last = c - 1;
    int changed = track_update(&fake);
    bool rc = recorded(&fake, c), rg = recorded(&fake, g);
    size_t n = fake.n;
    close(release);
    waitpid(c, NULL, 0);
    track_free(&fake);
    track_free(&t);
    assert_int_equal(changed, 1);
    assert_false(rc);
    assert_false(rg);
    assert_int_equal(n, 0);
}

/* More new pids than it follows one by one: it walks the tree instead. */
static void many_new_pids_mean_a_rescan(void **state)
{
    struct track t;
    track_init(&t, getpid());
    pid_t g;
    int release;
    pid_t c = family(&g, &release);
    assert_int_equal(track_rescan(&t), 1);
    track_free(&t);
    track_init(&t, getpid());
    proc_last_pid(&t.last);
    t.last -= 10000; /* as if the helper had slept through 10000 forks */
    if (t.last <= 0)
        t.last += t.pid_max;
    int changed = track_update(&t);
    bool rc = recorded(&t, c), rg = recorded(&t, g);
    close(release);
    waitpid(c, NULL, 0);
    track_free(&t);
    assert_int_equal(changed, 1);
    assert_true(rc);
    assert_true(rg);
}

static void *idle_thread(void *arg)
{
    int fd = *(int *)arg;
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* A thread of our child gets a pid too, and its /proc/TID/stat names our
 * child's parent (us): it is not a process to record. */
static void threads_are_not_processes(void **state)
{
    struct track t;
    track_init(&t, getpid());
    assert_true(track_rescan(&t) >= 0);
    int rel[2], rep[2];
    assert_int_equal(pipe2(rel, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0) {
        close(rel[1]);
        pthread_t th;
        char ok = pthread_create(&th, NULL, idle_thread, &rel[0]) == 0;
        (void)!write(rep[1], &ok, 1);
        pthread_join(th, NULL);
        _exit(0);
    }
    close(rel[0]);
    close(rep[1]);
    char ok = 0;
    while (read(rep[0], &ok, 1) < 0 && errno == EINTR)
        ;
    close(rep[0]);
    track_update(&t);
    size_t n = t.n;
    bool rc = recorded(&t, c);
    close(rel[1]);
    waitpid(c, NULL, 0);
    track_free(&t);
    assert_int_equal(ok, 1);
    assert_true(rc);
    assert_int_equal(n, 1); /* the child; not its thread */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_children_and_grandchildren),
        cmocka_unit_test(a_process_of_someone_else_is_not_recorded),
        cmocka_unit_test(a_reused_pid_is_forgotten),
        cmocka_unit_test(many_new_pids_mean_a_rescan),
        cmocka_unit_test(threads_are_not_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
