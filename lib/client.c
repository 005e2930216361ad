#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "client.h"
#include "hlog.h"
#include "fsutil.h"
#include "instance.h"

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **p = envp; p && *p; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

size_t env_services(char **envp, struct env_svc **out)
{
    size_t n = 0;
    *out = NULL;
    for (char **p = envp; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        static const char suffix[] = "_CONTROL_PID";
        size_t sl = sizeof(suffix) - 1;
        if (!eq || (size_t)(eq - *p) <= sl || strncmp(eq - sl, suffix, sl) != 0)
            continue;
        _cleanup_free_ char *stem = xstrndup(*p, (size_t)(eq - *p) - sl);
        _cleanup_free_ char *cfname = xasprintf("%s_CONFIGFILE", stem);
        const char *cf = env_get(envp, cfname);
        char *end;
        long pid = strtol(eq + 1, &end, 10);
        if (!cf || *end || pid <= 0)
            continue;
        _cleanup_free_ char *c1 = xstrdup(cf), *c2 = xstrdup(cf);
        const char *base = basename(c1);
        size_t bl = strlen(base);
        if (bl < 5 || strcmp(base + bl - 4, ".env") != 0)
            continue;
        *out = xrealloc(*out, (n + 1) * sizeof(**out));
        (*out)[n].stem = take_ptr(&stem);
        (*out)[n].label = xstrndup(base, bl - 4);
        (*out)[n].instdir = xstrdup(dirname(c2));
        (*out)[n].pid = (pid_t)pid;
        n++;
    }
    return n;
}

void env_services_free(struct env_svc *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].stem);
        free(v[i].label);
        free(v[i].instdir);
    }
    free(v);
}

static int read_state(const char *instdir, struct state_info *st)
{
    _cleanup_close_ int fd = open(instdir, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    return state_read(fd, st);
}

bool instance_alive(const char *instdir, pid_t pid)
{
    struct state_info st = {0};
    if (read_state(instdir, &st) < 0 || st.helper.pid != pid)
        return false;
    return proc_same(&st.helper);
}

/* The instance directory is not ours to read: say whose it is (the state
 * root above it is private, so its owner is found one level up). */
static int other_user(const char *instdir, terr *e)
{
    _cleanup_free_ char *c = xstrdup(instdir);
    struct stat st;
    if (stat(instdir, &st) < 0 && stat(dirname(c), &st) < 0)
        return terr_set(e, EACCES, "instance %s cannot be reached from here (uid %u): %s; run "
                        "tether as the user who started it",
                        instdir, (unsigned)getuid(), strerror(EACCES));
    return terr_set(e, EACCES,
                    "instance %s belongs to another user (uid %u) and cannot be reached from "
                    "here (uid %u); run tether as that user",
                    instdir, (unsigned)st.st_uid, (unsigned)getuid());
}

static int other_pidns(const char *instdir, const struct state_info *st, terr *e)
{
    return terr_set(e, EXDEV,
                    "instance %s belongs to another pid namespace (pid:[%llu]); run tether "
                    "from there",
                    instdir, st->pidns.ino);
}

int instance_reach(const char *instdir, pid_t pid, terr *e)
{
    struct state_info st = {0};
    int r = read_state(instdir, &st);
    if (r == -EACCES || r == -EPERM)
        return other_user(instdir, e);
    if (r == 0 && state_other_pidns(&st))
        return other_pidns(instdir, &st, e);
    if (r < 0 || st.helper.pid != pid || !proc_same(&st.helper))
        return terr_set(e, ESRCH, "the helper of %s (pid %d) is gone", instdir, (int)pid);
    return 0;
}

int helper_timeout(long long *ns, terr *e)
{
    const char *v = getenv(HELPER_TIMEOUT_VAR);
    *ns = HELPER_TIMEOUT_NS;
    if (!v || !*v)
        return 0;
    if (parse_duration(v, ns) < 0 || *ns <= 0)
        return terr_set(e, EINVAL, "%s=%s is not a duration (e.g. 5, 500ms, 1m)",
                        HELPER_TIMEOUT_VAR, v);
    return 0;
}

/* Make the socket's next blocking calls give up at deadline (on a unix
 * socket, connect and send follow SO_SNDTIMEO, recv SO_RCVTIMEO). */
static int until(int fd, int opt, long long deadline)
{
    long long left = deadline - now_ns();
    if (left <= 0)
        return -EAGAIN;
    struct timeval tv = {.tv_sec = left / 1000000000LL, .tv_usec = left % 1000000000LL / 1000};
    if (tv.tv_sec == 0 && tv.tv_usec == 0)
        tv.tv_usec = 1; /* 0 would mean "wait forever" */
    return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

/* What a silent helper is doing instead of answering (/proc/PID/stat). */
static void why_silent(strbuf *b, pid_t pid)
{
    char state = '?';
    if (proc_stat(pid, NULL, NULL, &state) < 0)
        sb_add(b, "it has just died, or is not ours to see");
    else if (state == 'T' || state == 't')
        sb_addf(b, "it is stopped (SIGSTOP, or a debugger holds it): `kill -CONT %d` resumes it",
                (int)pid);
    else if (state == 'D')
        sb_add(b, "it is blocked in the kernel (state D: a hung file system?)");
    else
        sb_add(b, "it is busy or hung");
}

static int no_answer(terr *e, const char *instdir, pid_t pid, const char *req, long long waited)
{
    _cleanup_sb_ strbuf why = {0};
    why_silent(&why, pid);
    return terr_set(e, ETIMEDOUT,
                    "helper %d of instance %s does not answer: no reply to '%s' within %.3g s; %s; "
                    "`kill -KILL %d` then `tether gc` removes the instance (%s sets the wait)",
                    (int)pid, instdir, req, (double)waited / 1e9, why.s, (int)pid,
                    HELPER_TIMEOUT_VAR);
}

/* Receive one message by deadline: its length, or -errno (-EAGAIN: the
 * deadline passed). */
static ssize_t recv_by(int fd, char *buf, size_t size, long long deadline)
{
    for (;;) {
        int r = until(fd, SO_RCVTIMEO, deadline);
        if (r < 0)
            return r;
        ssize_t n = recv(fd, buf, size, 0);
        if (n >= 0 || errno != EINTR)
            return n < 0 ? -errno : n;
    }
}

/* Connect and send by deadline.  A helper that is stopped still accepts
 * (the kernel queues the connection) until its backlog is full. */
static int send_by(int fd, const struct sockaddr_un *sa, const char *msg, long long deadline)
{
    int r = until(fd, SO_SNDTIMEO, deadline);
    if (r < 0)
        return r;
    while (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
        if (errno != EINTR || (r = until(fd, SO_SNDTIMEO, deadline)) < 0)
            return r < 0 ? r : -errno;
    while (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
        if (errno != EINTR || (r = until(fd, SO_SNDTIMEO, deadline)) < 0)
            return r < 0 ? r : -errno;
    return 0;
}

int control_request(const char *instdir, pid_t helper, const char *req, char **reply, terr *e)
{
    long long answer;
    int r = helper_timeout(&answer, e);
    if (r < 0)
        return r;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", instdir) >=
        (int)sizeof(sa.sun_path))
        return terr_set(e, ENAMETOOLONG, "%s/control: path too long", instdir);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return terr_set(e, errno, "socket: %m");
    long long t0 = now_ns(), deadline = t0 + answer;
    /* "wait": we understand a WAIT NS message before a slow answer */
    _cleanup_free_ char *msg = xasprintf("%s\nwait", req);
    r = send_by(fd, &sa, msg, deadline);
    if (r == -EAGAIN || r == -ETIMEDOUT)
        return no_answer(e, instdir, helper, req, deadline - t0);
    if (r < 0)
        return terr_set(e, -r, "cannot reach the helper at %s: %s", sa.sun_path, strerror(-r));
    char *buf = xmalloc(65536);
    ssize_t n;
    long long ns;
    while ((n = recv_by(fd, buf, 65535, deadline)) > 0) {
        buf[n] = '\0';
        if (sscanf(buf, "WAIT %lld", &ns) != 1 || ns < 0)
            break;
        deadline = now_ns() + ns + answer; /* the helper is working on it */
    }
    if (n <= 0)
        free(buf);
    if (n == -EAGAIN)
        return no_answer(e, instdir, helper, req, deadline - t0);
    if (n <= 0)
        return terr_set(e, EPIPE, "the helper at %s closed the connection without an answer "
                        "(did it die?)", instdir);
    *reply = buf;
    return 0;
}

int instance_leftover(const char *instdir, terr *e)
{
    _cleanup_close_ int fd = open(instdir, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    char why[TERR_MAX];
    if (fd < 0 || instance_kept(fd, why) != KEPT_CLEANUP)
        return 0;
    return terr_set(e, EAGAIN, "%s", *why ? why : "the cleanup failed (no reason recorded)");
}

static int stop_helper(const char *instdir, pid_t pid, long long timeout_ns, terr *e)
{
    struct state_info st = {0};
    int r = read_state(instdir, &st);
    if (r == -ENOENT)
        return 0; /* already gone */
    if (r == -EACCES || r == -EPERM)
        return other_user(instdir, e);
    if (r == 0 && state_other_pidns(&st))
        return other_pidns(instdir, &st, e);
    if (r < 0)
        return terr_set(e, r, "cannot read %s/state: %s", instdir, strerror(-r));
    if (st.helper.pid == pid && proc_kill_wait(&st.helper, SIGTERM, timeout_ns) == -ETIMEDOUT)
        return terr_set(e, ETIMEDOUT,
                        "the helper (pid %d) did not finish cleaning up in time; "
                        "try again, or kill -9 %d and run `tether gc`",
                        (int)pid, (int)pid);
    if (st.helper.pid == pid && instance_leftover(instdir, e) < 0)
        return -EAGAIN; /* gc retries: not now, a second wait for the same server */
    /* Whatever is left (the helper was SIGKILLed, or died mid-cleanup):
     * reap it like gc would, under the instance's lock. */
    _cleanup_free_ char *c1 = xstrdup(instdir), *c2 = xstrdup(instdir);
    const char *root = dirname(c1), *id = basename(c2);
    _cleanup_close_ int rfd = open(root, O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        return 0;
    _cleanup_free_ char *lockpath = xasprintf("%s/lock", instdir);
    _cleanup_close_ int lfd = open(lockpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (lfd < 0)
        return 0;
    if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
        return terr_set(e, EBUSY, "instance %s is still locked by a live helper", instdir);
    r = gc_reap_instance(rfd, id, e);
    return r < 0 ? r : 0;
}

int instance_stop(const char *instdir, pid_t pid, long long timeout_ns, terr *e)
{
    int r = stop_helper(instdir, pid, timeout_ns, e);
    /* what its helper could not do, now that it is gone (also when it went
     * before us: expired, or its owner went) */
    int n = hlog_show_dir(instdir, true, NULL);
    return r < 0 ? r : n > 0;
}

int configfile_names(const char *path, strv *names)
{
    _cleanup_free_ char *text = NULL;
    /* the instance's, so ours: never a FIFO that hangs `stop` */
    int r = read_file_trusted(AT_FDCWD, path, geteuid(), CONFIGFILE_MAX, &text, NULL, NULL);
    if (r < 0)
        return r;
    const char *p = text;
    while (*p) {
        const char *eq = strchr(p, '=');
        if (!eq)
            break;
        _cleanup_free_ char *name = xstrndup(p, (size_t)(eq - p));
        if (valid_var_name(name))
            strv_push(names, name);
        p = eq + 1;
        strbuf v = {0};
        if (unquote_sh(&p, &v) < 0) {
            sb_free(&v);
            break;
        }
        sb_free(&v);
        while (*p == '\n')
            p++;
    }
    return 0;
}
