/* What the helper's record of its descendants costs (lib/track.c, ticked
 * by lib/helper.c):
 *   treescan N [ITERATIONS]
 * forks N children that sleep (half of them with a child of their own, as
 * a server's workers), then prints the CPU time of
 *   - a look when nothing was born (proc_last_pid: every tick),
 *   - a new pid looked at (track_update over the last 256 pids),
 *   - a walk of the whole tree (track_rescan), per process. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "track.h"

static long long cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double us_since(long long t0, long long calls)
{
    return (double)(cpu_ns() - t0) / (double)calls / 1000.0;
}

static void spawn_tree(int n)
{
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            if (i % 2 && fork() == 0)
                pause();
            pause();
            _exit(0);
        }
    }
    usleep(200000); /* let the grandchildren be born */
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10;
    int iters = argc > 2 ? atoi(argv[2]) : 200;
    setpgid(0, 0);
    spawn_tree(n);
    struct track t;
    track_init(&t, getpid());
    track_rescan(&t);
    long long t0 = cpu_ns();
    for (int i = 0; i < iters; i++) {
        pid_t last;
        proc_last_pid(&last);
    }
    double look = us_since(t0, iters);
    /* ticks as they come: with whatever the machine forks meanwhile */
    t0 = cpu_ns();
    for (int i = 0; i < iters; i++) {
        usleep(10000);
        track_update(&t);
    }
    double tick = us_since(t0, iters);
    t0 = cpu_ns();
    for (int i = 0; i < iters; i++) {
        proc_last_pid(&t.last);
        t.last = t.last > 256 ? t.last - 256 : 1;
        track_update(&t);
    }
    double per_pid = us_since(t0, (long long)iters * 256);
    t0 = cpu_ns();
    for (int i = 0; i < iters; i++)
        track_rescan(&t);
    double walk = us_since(t0, iters);
    printf("tree %zu: look %.1f us, tick every 10 ms here %.1f us, new pid %.1f us, "
           "walk %.0f us (%.1f us per process)\n",
           t.n, look, tick, per_pid, walk, t.n ? walk / (double)t.n : 0.0);
    track_free(&t);
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    while (wait(NULL) > 0)
        ;
    return 0;
}
