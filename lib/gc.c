/* Reaping stale instances: those whose helper no longer holds the lock
 * (it was SIGKILLed, or the machine lost power mid-run). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "drivers/driver.h"
#include "fsutil.h"
#include "instance.h"

/* A half-made (.tmp-*) or lock-less directory younger than this may belong
 * to a helper that is just starting. */
#define YOUNG_SECONDS 60

struct cookie_scan {
    const char *entry;
    int *pidfds;
    size_t n;
    size_t found;
};

static int cookie_visit(pid_t pid, void *ud)
{
    struct cookie_scan *cs = ud;
    if (pid == getpid() || !proc_has_env(pid, cs->entry))
        return 0;
    cs->found++;
    /* pidfd first, so that the wait below follows this very process */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    kill(pid, SIGKILL);
    if (fd >= 0) {
        cs->pidfds = xrealloc(cs->pidfds, (cs->n + 1) * sizeof(int));
        cs->pidfds[cs->n++] = fd;
    }
    return 0;
}

int kill_cookie_processes(const char *cookie)
{
    _cleanup_free_ char *entry = xasprintf("%s=%s", COOKIE_VAR, cookie);
    size_t total = 0;
    /* Repeat: a process may fork between the scan and its SIGKILL. */
    for (int round = 0; round < 20; round++) {
        struct cookie_scan cs = {.entry = entry};
        proc_foreach(cookie_visit, &cs);
        total += cs.found;
        for (size_t i = 0; i < cs.n; i++) {
            struct pollfd p = {.fd = cs.pidfds[i], .events = POLLIN};
            /* a SIGKILLed process exits promptly unless stuck in D state */
            poll(&p, 1, 5000);
            close(cs.pidfds[i]);
        }
        free(cs.pidfds);
        if (cs.found == 0)
            break;
    }
    return (int)total;
}

/* The recorded processes and everything below them, stopped (SIGSTOP) as
 * they are found so that none can fork behind our back, then killed. */
struct frozen {
    pid_t *pids;
    int *pidfds; /* -1 where pidfd_open is missing (ENOSYS) */
    size_t n;
};

static bool frozen_has(const struct frozen *f, pid_t pid)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->pids[i] == pid)
            return true;
    return false;
}

static int signal_frozen(const struct frozen *f, size_t i, int sig)
{
    if (f->pidfds[i] >= 0)
        return (int)syscall(SYS_pidfd_send_signal, f->pidfds[i], sig, NULL, 0);
    return kill(f->pids[i], sig);
}

/* Stop pid and add it.  With id, only if it still is that process (pid +
 * start time: a recycled pid belongs to someone else); without, pid is a
 * child of a stopped process, which cannot reap it, so it cannot be
 * recycled under us. */
static void freeze(struct frozen *f, pid_t pid, const struct proc_id *id)
{
    /* not ourselves: a gc run from inside the instance would stop itself */
    if (pid <= 0 || pid == getpid() || frozen_has(f, pid))
        return;
    /* the pidfd first, so that the signals follow this very process */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if ((fd < 0 && errno != ENOSYS) || (id && !proc_same(id))) {
        if (fd >= 0)
            close(fd);
        return;
    }
    f->pids = xrealloc(f->pids, (f->n + 1) * sizeof(*f->pids));
    f->pidfds = xrealloc(f->pidfds, (f->n + 1) * sizeof(*f->pidfds));
    f->pids[f->n] = pid;
    f->pidfds[f->n] = fd;
    if (signal_frozen(f, f->n, SIGSTOP) < 0) { /* not ours to stop */
        if (fd >= 0)
            close(fd);
        return;
    }
    f->n++;
}

/* Wait (briefly) until pid has stopped, so that its list of children is
 * final: a fork under way when SIGSTOP came completes first. */
static void wait_stopped(pid_t pid)
{
    long long deadline = now_ns() + 200LL * 1000000;
    char state = 0;
    while (proc_stat(pid, NULL, NULL, &state) == 0 && !strchr("TtZXx", state) &&
           now_ns() < deadline)
        usleep(1000);
}

static void freeze_children(struct frozen *f, size_t i)
{
    wait_stopped(f->pids[i]);
    _cleanup_free_ pid_t *kids = NULL;
    size_t n = 0;
    proc_children(f->pids[i], &kids, &n);
    for (size_t k = 0; k < n; k++)
        freeze(f, kids[k], NULL);
}

static void kill_frozen(struct frozen *f)
{
    long long deadline = now_ns() + 5000LL * 1000000;
    for (size_t i = 0; i < f->n; i++)
        signal_frozen(f, i, SIGKILL);
    /* a SIGKILLed process exits promptly unless stuck in D state */
    for (size_t i = 0; i < f->n; i++) {
        if (f->pidfds[i] >= 0) {
            pidfd_wait(f->pidfds[i], deadline);
            close(f->pidfds[i]);
            continue;
        }
        char state = 0;
        while (proc_stat(f->pids[i], NULL, NULL, &state) == 0 && !strchr("ZXx", state) &&
               now_ns() < deadline)
            usleep(10000);
    }
    free(f->pids);
    free(f->pidfds);
}

/* Kill what the state records: the helper, the services and every
 * descendant of the helper (it records what it adopts), each verified by
 * pid and start time, and whatever descends from those now.  Before the
 * cookie scan: a process that cleared its environment has no cookie. */
static void kill_recorded(const struct state_info *st)
{
    char boot[64] = "";
    proc_boot_id(boot);
    if (!streq(boot, st->boot_id))
        return; /* after a reboot every recorded pid is meaningless */
    struct frozen f = {0};
    freeze(&f, st->helper.pid, &st->helper);
    for (size_t i = 0; i < st->n_svcs; i++)
        freeze(&f, st->svcs[i].proc.pid, &st->svcs[i].proc);
    for (size_t i = 0; i < st->n_descendants; i++)
        freeze(&f, st->descendants[i].pid, &st->descendants[i]);
    for (size_t i = 0; i < f.n; i++) /* f.n grows as children are found */
        freeze_children(&f, i);
    kill_frozen(&f);
}

int gc_reap_instance(int rootfd, const char *id, terr *e)
{
    _cleanup_close_ int fd = openat(rootfd, id, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : terr_set(e, errno, "cannot open instance %s: %m", id);
    struct state_info st;
    if (state_read(fd, &st) == 0) {
        if (state_other_pidns(&st))
            return terr_set(e, EXDEV,
                            "instance %s belongs to another pid namespace (pid:[%llu]): its "
                            "processes are out of sight from here; run tether gc from there",
                            id, st.pidns.ino);
        kill_recorded(&st);
        kill_cookie_processes(st.cookie);
        /* what lives outside the processes: databases, shared memory */
        for (size_t i = 0; i < st.n_svcs; i++) {
            const struct tether_driver *d = driver_find(st.svcs[i].driver);
            if (!d || !d->reap || strchr(st.svcs[i].label, '/') || st.svcs[i].label[0] == '.')
                continue;
            int sfd = openat(fd, st.svcs[i].label, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sfd < 0)
                continue;
            _cleanup_free_ char *path = xasprintf("%s/%s", id, st.svcs[i].label);
            d->reap(sfd, path, NULL);
            close(sfd);
        }
    }
    int r = rm_rf_at(rootfd, id, e);
    if (r < 0)
        return terr_prefix(e, r, "cannot remove stale instance %s", id);
    return 0;
}

static bool is_old(int rootfd, const char *name)
{
    struct stat st;
    if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return false;
    return time(NULL) - st.st_mtime > YOUNG_SECONDS;
}

int gc_run(strbuf *report, terr *e)
{
    _cleanup_free_ char *root_path = NULL;
    _cleanup_close_ int root = state_root(&root_path, e);
    if (root < 0)
        return root;
    int dupfd = fcntl(root, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0)
        return terr_set(e, errno, "%s: %m", root_path);
    DIR *d = fdopendir(dupfd);
    if (!d) {
        close(dupfd);
        return terr_set(e, errno, "%s: %m", root_path);
    }
    int reaped = 0, ret = 0;
    struct dirent *de;
    strv names = {0};
    while ((de = readdir(d)))
        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
            strv_push(&names, de->d_name);
    closedir(d);
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i];
        if (name[0] == '.' && strncmp(name, ".tmp-", 5) != 0)
            continue; /* our own atomic-write temp files etc. */
        /* a young .tmp- directory is a helper being born: not even a
         * moment's flock on it, which would make its own lock fail */
        if (name[0] == '.' && !is_old(root, name))
            continue;
        _cleanup_close_ int ifd = openat(root, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ifd < 0)
            continue;
        _cleanup_close_ int lfd = openat(ifd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (lfd < 0) {
            if (!is_old(root, name))
                continue;
        } else if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
            continue; /* a live helper holds it */
        } else if (name[0] == '.' && !is_old(root, name)) {
            continue;
        }
        terr err;
        int r = gc_reap_instance(root, name, &err);
        if (r == -EXDEV) { /* not ours to judge from here: say so, no error */
            if (report)
                sb_addf(report, "tether: left %s/%s alone: %s\n", root_path, name, err.msg);
            continue;
        }
        if (r < 0) {
            if (ret == 0 && e)
                *e = err;
            ret = ret ? ret : r;
            continue;
        }
        reaped++;
        if (report)
            sb_addf(report, "tether: reaped stale instance %s/%s\n", root_path, name);
    }
    strv_free(&names);
    return ret < 0 ? ret : reaped;
}
