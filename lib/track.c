/* The helper's record of its descendants (see track.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "track.h"

/* More new pids than this since the last look (a fork storm, or a helper
 * that was busy): one walk of our tree is cheaper than looking at each. */
#define TRACK_MAX_NEW 512
#define TRACK_WALK_COST 5

void track_init(struct track *t, pid_t root)
{
    memset(t, 0, sizeof(*t));
    t->root = root;
    _cleanup_free_ char *s = NULL;
    if (read_file_at(AT_FDCWD, "/proc/sys/kernel/pid_max", &s, NULL) == 0)
        t->pid_max = (pid_t)atoi(s);
    if (t->pid_max <= 0)
        t->pid_max = 4194304; /* the kernel's limit: a wrap is just a rescan */
}

void track_free(struct track *t)
{
    free(t->procs);
    t->procs = NULL;
    t->n = 0;
}

/* Index of pid in the record, or where it would go. */
static size_t find(const struct track *t, pid_t pid)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->procs[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool has(const struct track *t, pid_t pid)
{
    size_t i = find(t, pid);
    return i < t->n && t->procs[i].pid == pid;
}

int track_rescan(struct track *t)
{
    struct proc_id *now = NULL;
    size_t n = 0;
    /* the last pid first: whatever is forked during the walk is new next time */
    proc_last_pid(&t->last);
    int r = proc_descendants(t->root, &now, &n);
    if (r < 0) {
        free(now);
        return r;
    }
    /* proc_descendants sorts by pid; no memcmp: struct padding */
    bool same = n == t->n;
    for (size_t i = 0; same && i < n; i++)
        same = now[i].pid == t->procs[i].pid && now[i].starttime == t->procs[i].starttime;
    free(t->procs);
    t->procs = now;
    t->n = n;
    return same ? 0 : 1;
}

/* Threads get pids too, and their stat names the process's parent.  (Not
 * by pidfd_open's EINVAL: where that call is missing, as under valgrind,
 * every pid would look like a process.) */
static bool is_thread(pid_t pid)
{
    pid_t tgid;
    return proc_tgid(pid, &tgid) == 0 && tgid != pid;
}

/* Look at one pid handed out since the last look: ours if its parent is
 * the root or one of ours (a parent is born before its child, so a new
 * parent was looked at first).  True if the record changed. */
static bool look_at(struct track *t, pid_t pid)
{
    struct proc_id id = {.pid = pid};
    pid_t ppid = 0;
    bool alive = proc_stat(pid, &id.starttime, &ppid, NULL) == 0;
    size_t i = find(t, pid);
    bool changed = false;
    if (i < t->n && t->procs[i].pid == pid) {
        if (alive && t->procs[i].starttime == id.starttime)
            return false;
        /* what we had under this pid has exited: its children must not
         * inherit our trust */
        memmove(&t->procs[i], &t->procs[i + 1], (t->n - i - 1) * sizeof(*t->procs));
        t->n--;
        changed = true;
    }
    if (!alive || (ppid != t->root && !has(t, ppid)) || is_thread(pid))
        return changed;
    t->procs = xrealloc(t->procs, (t->n + 1) * sizeof(*t->procs));
    memmove(&t->procs[i + 1], &t->procs[i], (t->n - i) * sizeof(*t->procs));
    t->procs[i] = id;
    t->n++;
    return true;
}

int track_update(struct track *t)
{
    pid_t last;
    if (proc_last_pid(&last) < 0)
        return track_rescan(t);
    if (last == t->last)
        return 0; /* nobody was born: nothing can have joined us */
    long long count = (long long)last - t->last;
    if (count < 0)
        count += t->pid_max; /* wrapped */
    /* a walk costs some 5 looks per process of ours (bench/treescan): a
     * small tree on a busy machine is cheaper to walk */
    if (count > TRACK_MAX_NEW || count > TRACK_WALK_COST * ((long long)t->n + 1) ||
        last >= t->pid_max)
        return track_rescan(t);
    bool changed = false;
    pid_t pid = t->last;
    for (long long k = 0; k < count; k++) {
        /* in allocation order: after pid_max - 1 the kernel starts over low */
        pid = pid + 1 >= t->pid_max ? 1 : pid + 1;
        if (look_at(t, pid))
            changed = true;
    }
    t->last = last;
    return changed ? 1 : 0;
}
