/* Reaping stale instances: those whose helper no longer holds the lock
 * (it was SIGKILLed, or the machine lost power mid-run). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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
    int fd = proc_pidfd_open(pid);
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
            /* a SIGKILLed process exits promptly unless stuck in D state */
            pidfd_wait(cs.pidfds[i], now_ns() + 5000000000LL);
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
        return proc_pidfd_signal(f->pidfds[i], sig);
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
    int fd = proc_pidfd_open(pid);
    if ((fd < 0 && fd != -ENOSYS) || (id && !proc_same(id))) {
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

static int write_note(int instfd, const char *note, const char *why, terr *e)
{
    int r = write_file_atomic(instfd, note, why, strlen(why), 0600);
    return r < 0 ? terr_set(e, -r, "cannot write %s: %s", note, strerror(-r)) : 0;
}

int instance_keep_failed(int instfd, const char *why, terr *e)
{
    int r = write_note(instfd, KEPT_NOTE, why, e);
    if (r < 0)
        return r;
    if (unlinkat(instfd, "control", 0) < 0 && errno != ENOENT)
        return terr_set(e, errno, "cannot remove the control socket: %m");
    return 0;
}

int keep_failed_env(bool *keep, terr *e)
{
    const char *v = getenv(KEEP_FAILED_VAR);
    *keep = false;
    if (!v || !*v || parse_bool(v, keep) == 0)
        return 0;
    return terr_set(e, EINVAL, "%s=%s: say " BOOL_WORDS " (or leave it unset)", KEEP_FAILED_VAR,
                    v);
}

int instance_keep(int instfd, const strv *labels, const char *why, terr *e)
{
    int r = write_note(instfd, LEFTOVER_NOTE, why, e);
    if (r < 0)
        return r;
    int dupfd = fcntl(instfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = dupfd < 0 ? NULL : fdopendir(dupfd);
    if (!d) {
        if (dupfd >= 0)
            close(dupfd);
        return terr_set(e, errno, "cannot read the instance directory: %m");
    }
    strv names = {0};
    struct dirent *de;
    while ((de = readdir(d)))
        if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && !streq(de->d_name, "state") &&
            !streq(de->d_name, "lock") && !streq(de->d_name, LEFTOVER_NOTE) &&
            !strv_contains(labels, de->d_name))
            strv_push(&names, de->d_name);
    closedir(d);
    int ret = 0;
    for (size_t i = 0; i < names.n; i++) {
        terr re;
        int rr = rm_rf_at(instfd, names.v[i], &re);
        if (rr < 0 && ret == 0) {
            ret = rr;
            if (e)
                *e = re;
        }
    }
    strv_free(&names);
    return ret;
}

/* Each service's driver drops what lives outside the processes
 * (databases, shared memory); the labels whose drop failed go in failed,
 * their messages in why. */
static void reap_outside(int fd, const char *id, const struct state_info *st, strv *failed,
                         strbuf *why)
{
    for (size_t i = 0; i < st->n_svcs; i++) {
        const struct tether_driver *d = driver_find(st->svcs[i].driver);
        if (!d || !d->reap || strchr(st->svcs[i].label, '/') || st->svcs[i].label[0] == '.')
            continue;
        int sfd = openat(fd, st->svcs[i].label, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", id, st->svcs[i].label);
        terr re;
        if (d->reap(sfd, path, &re) < 0) {
            strv_push(failed, st->svcs[i].label);
            sb_addf(why, "%s%s", why->len ? "; " : "", re.msg);
        }
        close(sfd);
    }
}

/* A drop failed (the server is down or hung): keep what lets the next gc
 * retry it (state, lock, the services' records) and say why. */
static int keep_for_retry(int fd, const char *id, const strv *failed, const strbuf *why,
                          terr *e)
{
    terr ke;
    if (instance_keep(fd, failed, why->s, &ke) < 0)
        return terr_set(e, EAGAIN, "%s; and instance %s could not be kept as it should: %s",
                        why->s, id, ke.msg);
    return terr_set(e, EAGAIN, "%s; kept instance %s with its record: the next `tether gc` "
                    "retries", why->s, id);
}

/* Lock the directory rootfd/id itself (fd: open on it) for its removal.
 * -EBUSY: a helper or gc is removing it right now. */
static int lock_removal(int fd, const char *id, terr *e)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    return terr_set(e, errno == EWOULDBLOCK ? EBUSY : errno,
                    "instance %s is being removed by another process", id);
}

/* Remove rootfd/id, whose directory fd holds the removal lock.  It is
 * renamed to .rm-ID first: one killed half-way (a helper or a gc) leaves a
 * name that says so, which the next gc reaps at once once the lock is
 * free, and no lock-less instance that looks like one being born. */
static int remove_locked(int rootfd, const char *id, terr *e)
{
    _cleanup_free_ char *gone = xasprintf(".rm-%s", id);
    const char *name = id;
    if (strncmp(id, ".rm-", 4) != 0 &&
        renameat2(rootfd, id, rootfd, gone, RENAME_NOREPLACE) == 0)
        name = gone; /* else (a .rm- of the same fixed id is left): in place */
    return rm_rf_at(rootfd, name, e);
}

int instance_remove(int rootfd, const char *id, terr *e)
{
    _cleanup_close_ int fd = openat(rootfd, id, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : terr_set(e, errno, "cannot open instance %s: %m", id);
    int r = lock_removal(fd, id, e);
    return r < 0 ? r : remove_locked(rootfd, id, e);
}

int gc_reap_instance(int rootfd, const char *id, terr *e)
{
    _cleanup_close_ int fd = openat(rootfd, id, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : terr_set(e, errno, "cannot open instance %s: %m", id);
    int r = lock_removal(fd, id, e);
    if (r < 0)
        return r;
    char why_kept[TERR_MAX];
    bool retry = instance_kept(fd, why_kept) == KEPT_CLEANUP;
    struct state_info st;
    if (state_read(fd, &st) == 0) {
        if (state_other_pidns(&st))
            return terr_set(e, EXDEV,
                            "instance %s belongs to another pid namespace (pid:[%llu]): its "
                            "processes are out of sight from here; run tether gc from there",
                            id, st.pidns.ino);
        kill_recorded(&st);
        kill_cookie_processes(st.cookie);
        strv failed = {0};
        _cleanup_sb_ strbuf why = {0};
        reap_outside(fd, id, &st, &failed, &why);
        int kr = failed.n ? keep_for_retry(fd, id, &failed, &why, e) : 0;
        strv_free(&failed);
        if (kr < 0)
            return kr;
    }
    r = remove_locked(rootfd, id, e);
    if (r < 0)
        return terr_prefix(e, r, "cannot remove stale instance %s", id);
    return retry ? 1 : 0;
}

static bool is_old(int rootfd, const char *name)
{
    struct stat st;
    if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return false;
    return time(NULL) - st.st_mtime > YOUNG_SECONDS;
}

static bool read_note(int instfd, const char *note, char why[TERR_MAX])
{
    _cleanup_close_ int fd = openat(instfd, note, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, why, TERR_MAX - 1);
    why[n > 0 ? n : 0] = '\0';
    return fd >= 0;
}

/* A failed cleanup first: it is what gc must retry, kept or not. */
enum kept_reason instance_kept(int instfd, char why[TERR_MAX])
{
    if (read_note(instfd, LEFTOVER_NOTE, why))
        return KEPT_CLEANUP;
    return read_note(instfd, KEPT_NOTE, why) ? KEPT_FAILED : KEPT_NOT;
}

/* instance_kept() of the instance root/name. */
static enum kept_reason is_kept(int root, const char *name, char why[TERR_MAX])
{
    _cleanup_close_ int ifd = openat(root, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    why[0] = '\0';
    return ifd >= 0 ? instance_kept(ifd, why) : KEPT_NOT;
}

/* Reap name, whose lock we hold, and say what happened in report (the
 * error also in err). */
static int reap_one(int root, const char *root_path, const char *name, const char *how,
                    strbuf *report, terr *err)
{
    char before[TERR_MAX];
    enum kept_reason kept = is_kept(root, name, before);
    int r = gc_reap_instance(root, name, err);
    if (r == -EBUSY)
        return r; /* someone else is removing it right now */
    if (r == -EXDEV) { /* not ours to judge from here: say so, no error */
        if (report)
            sb_addf(report, "tether: left %s/%s alone: %s\n", root_path, name, err->msg);
        return r;
    }
    if (r < 0 && report)
        sb_addf(report, "tether: %s/%s: %s\n", root_path, name, err->msg);
    else if (r == 1 && report)
        sb_addf(report, "tether: retried the cleanup of stale instance %s/%s: done (it had "
                "failed: %s)\n", root_path, name, before);
    else if (kept == KEPT_FAILED && report)
        sb_addf(report, "tether: removed kept instance %s/%s\n", root_path, name);
    else if (report)
        sb_addf(report, "tether: reaped %s instance %s/%s\n", how, root_path, name);
    return r;
}

/* The helper a lock-less instance records, if it is alive (it may be
 * removing the instance in place, as helpers before .rm- names did). */
static pid_t live_helper(int ifd)
{
    struct state_info st;
    return state_read(ifd, &st) == 0 && proc_same(&st.helper) ? st.helper.pid : 0;
}

/* Whether gc may reap the entry name of the state root now: what it is
 * ("stale", "half-removed"), or NULL to leave it (then, where that is not
 * obvious, the report says why).  *lock: the instance's lock file, locked
 * by us, to hold while it is reaped. */
static const char *reapable(int root, const char *name, int *lock, strbuf *report,
                            const char *root_path)
{
    if (strncmp(name, ".rm-", 4) == 0)
        return "half-removed"; /* a remover died half-way, or is at it: locked */
    bool born = strncmp(name, ".tmp-", 5) == 0;
    if (name[0] == '.' && !born)
        return NULL; /* our own atomic-write temp files etc. */
    /* a young .tmp- directory is a helper being born: not even a
     * moment's flock on it, which would make its own lock fail */
    if (born && !is_old(root, name))
        return NULL;
    _cleanup_close_ int ifd = openat(root, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ifd < 0)
        return NULL;
    _cleanup_close_ int lfd = openat(ifd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (lfd >= 0) {
        if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
            return NULL; /* a live helper holds it */
        *lock = take_fd(&lfd);
        return "stale";
    }
    if (born)
        return "stale";
    /* Every instance has its lock from birth (.tmp- until locked), so one
     * without it was half-removed: reap it now, unless its helper lives. */
    pid_t helper = live_helper(ifd);
    if (!helper)
        return "half-removed";
    if (report)
        sb_addf(report, "tether: left %s/%s alone: it has no lock file, but its helper %d is "
                "alive (still removing it?); run gc again once it has exited\n",
                root_path, name, (int)helper);
    return NULL;
}

/* What a gc reaps besides stale instances. */
enum gc_mode {
    GC_AUTO,  /* before every start: nothing else */
    GC_RETRY, /* `tether gc`: instances whose cleanup failed, too */
    GC_KEPT,  /* `tether gc --kept`: and those kept after a failure */
};

static int gc_scan(strbuf *report, enum gc_mode mode, terr *e)
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
    int reaped = 0, failed = 0, ret = 0;
    struct dirent *de;
    strv names = {0};
    while ((de = readdir(d)))
        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
            strv_push(&names, de->d_name);
    closedir(d);
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i];
        _cleanup_close_ int lock = -1;
        const char *how = reapable(root, name, &lock, report, root_path);
        if (!how)
            continue;
        char why[TERR_MAX];
        enum kept_reason kept = is_kept(root, name, why);
        if (kept == KEPT_CLEANUP && mode == GC_AUTO)
            continue; /* a failed drop: `tether gc` retries it */
        if (kept == KEPT_FAILED && mode != GC_KEPT)
            continue; /* the user's to look at, until `tether gc --kept` */
        terr err;
        int r = reap_one(root, root_path, name, how, report, &err);
        if (r == -EBUSY || r == -EXDEV)
            continue;
        if (r < 0 && !failed++ && !report && e)
            *e = err; /* nowhere else to say it */
        else if (r >= 0)
            reaped++;
    }
    if (failed && report)
        ret = terr_set(e, EAGAIN, "could not finish %d stale instance%s (see above); run "
                       "`tether gc` again once the cause is fixed", failed,
                       failed == 1 ? "" : "s");
    else if (failed)
        ret = -EAGAIN;
    strv_free(&names);
    return ret < 0 ? ret : reaped;
}

int gc_run(strbuf *report, terr *e)
{
    return gc_scan(report, GC_AUTO, e);
}

int gc_run_retrying(strbuf *report, terr *e)
{
    return gc_scan(report, GC_RETRY, e);
}

int gc_run_kept(strbuf *report, terr *e)
{
    return gc_scan(report, GC_KEPT, e);
}

int gc_remove_kept(const char *id, strbuf *report, terr *e)
{
    _cleanup_free_ char *root_path = NULL;
    _cleanup_close_ int root = state_root(&root_path, e);
    if (root < 0)
        return root;
    char why[TERR_MAX];
    if (strchr(id, '/') || id[0] == '.' || is_kept(root, id, why) != KEPT_FAILED)
        return terr_set(e, ENOENT, "no kept instance '%s' in %s (see tether list)", id,
                        root_path);
    _cleanup_close_ int lock = -1;
    if (!reapable(root, id, &lock, NULL, root_path))
        return terr_set(e, EBUSY, "instance %s/%s is in use", root_path, id);
    int r = reap_one(root, root_path, id, "kept", report, e);
    return r < 0 ? r : 0;
}
