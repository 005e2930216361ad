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

static void kill_verified(const struct proc_id *id, const char *boot_ok)
{
    if (id->pid <= 0 || !boot_ok)
        return;
    /* pid + start time: a recycled pid belongs to someone else; a
     * SIGKILLed process exits promptly unless stuck in D state */
    proc_kill_wait(id, SIGKILL, 5000LL * 1000000);
}

int gc_reap_instance(int rootfd, const char *id, terr *e)
{
    _cleanup_close_ int fd = openat(rootfd, id, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : terr_set(e, errno, "cannot open instance %s: %m", id);
    struct state_info st;
    if (state_read(fd, &st) == 0) {
        char boot[64] = "";
        proc_boot_id(boot);
        /* after a reboot every recorded pid is meaningless */
        const char *same_boot = streq(boot, st.boot_id) ? "yes" : NULL;
        kill_verified(&st.helper, same_boot);
        for (size_t i = 0; i < st.n_svcs; i++)
            kill_verified(&st.svcs[i].proc, same_boot);
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
