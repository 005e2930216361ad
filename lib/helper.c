/* The helper's event loop.  Single-threaded: one epoll over a signalfd,
 * a timerfd, the readiness sources, the control socket, the owner's lease
 * and the watched pid.  It is a child subreaper, so whatever a service
 * forks, however it detaches, comes back to us to be killed and reaped.
 *
 * Status protocol (start-up outcome, on status_fd): any number of
 * progress records ("P", the level's digit, the line, "\0": progress.h),
 * then "O" followed by NAME\0VALUE\0 pairs, or "E" followed by the error
 * message; then EOF. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "drivers/driver.h"
#include "fsutil.h"
#include "helper.h"
#include "progress.h"
#include "service.h"
#include "track.h"

enum tag {
    T_SIGNAL = 1, T_TIMER, T_LEASE, T_WATCH, T_CONTROL, T_CLIENT, T_READY, T_STATUS, T_TRACK
};
#define EV(tag, idx) (((uint64_t)(tag) << 32) | (uint32_t)(idx))

enum phase { PH_STARTING, PH_RUNNING, PH_STOPPING };

static struct {
    struct instance in;
    struct helper_opts *o;
    int ep, sigfd, timerfd, ctlfd, watchfd;
    int trackfd; /* periodic: the record of our descendants */
    struct track track;
    unsigned track_ticks;
    enum phase phase;
    bool start_failed;
    terr err;
    const char *why_stop;
    strv kept;        /* services whose cleanup failed */
    strbuf kept_why;  /* and why */
    bool keep;        /* keep the instance for the user (opts->keep_failed) */
    strbuf keep_why;  /* what failed: its KEPT_NOTE */
    strbuf keep_said; /* what the starter hears of it, after the error */
} H;

static void ep_add(int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    epoll_ctl(H.ep, EPOLL_CTL_ADD, fd, &ev);
}

static void ep_del(int fd)
{
    if (fd >= 0)
        epoll_ctl(H.ep, EPOLL_CTL_DEL, fd, NULL);
}

static struct svc *svc_by_label(const char *label)
{
    for (size_t i = 0; i < H.in.n_svcs; i++)
        if (strcasecmp(H.in.svcs[i].conf->label, label) == 0)
            return &H.in.svcs[i];
    return NULL;
}

/* ---- replies to control clients ---- */

static void reply(int *client, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int *client, const char *fmt, ...)
{
    if (*client < 0)
        return;
    strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    ssize_t n = send(*client, b.s, b.len, MSG_NOSIGNAL);
    (void)n;
    sb_free(&b);
    ep_del(*client);
    close(*client);
    *client = -1;
}

/* A failed reset may have left the service half reset (its database
 * dropped, the copy not made): status says so until a reset works.  One
 * line, as status's reply has one per service. */
static void one_line(char *msg)
{
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static void reset_outcome(struct svc *s, const char *failed)
{
    free(s->reset_err);
    s->reset_err = failed ? xstrdup(failed) : NULL;
    if (s->reset_err)
        one_line(s->reset_err);
}

/* ---- the record of our descendants ---- */

/* Every TRACK_PERIOD the helper adds to its record what was forked below it
 * since the last tick (track_update: a look at the kernel's last pid; if
 * something was born, a look at each new pid, or a walk of our tree when
 * that is cheaper), and every TRACK_SLOW_TICKS it walks the tree anyway, to
 * drop what exited.  Measured on the project's 2-core VM under a load of
 * 10-17 (bench/treescan; docs/RELIABILITY.md, "Adopted processes"): a look
 * costs 6 us, a new pid 6 us, a walk 30-35 us per process; the wakeup
 * itself costs more than all of it there (0.1-0.25 ms).  At 250 ms an idle
 * helper spent 0.10 % of a CPU with 1 process, 0.18 % with 11 and 0.24 %
 * with 101 (the machine forking 40-100 times a second); at 100 ms, 0.35 to
 * 0.5 %.  The period bounds the window in which a process forked just
 * before a SIGKILL of the helper is unknown to gc (which still finds it
 * below a recorded process, if that one lives). */
#define TRACK_PERIOD_NS (250LL * 1000000)
#define TRACK_SLOW_TICKS 20

/* The instance's view of the record (which track_* may have moved), and
 * the state file if the record changed. */
static void track_save(int changed)
{
    H.in.descendants = H.track.procs;
    H.in.n_descendants = H.track.n;
    if (changed > 0)
        instance_write_state(&H.in, NULL);
}

static void on_track_timer(void)
{
    uint64_t x;
    ssize_t n = read(H.trackfd, &x, sizeof(x));
    (void)n;
    track_save(++H.track_ticks % TRACK_SLOW_TICKS ? track_update(&H.track)
                                                  : track_rescan(&H.track));
}

static void track_start(void)
{
    track_init(&H.track, getpid());
    track_save(track_rescan(&H.track));
    H.trackfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct itimerspec its = {
        .it_interval = {.tv_nsec = TRACK_PERIOD_NS},
        .it_value = {.tv_nsec = TRACK_PERIOD_NS},
    };
    if (H.trackfd >= 0 && timerfd_settime(H.trackfd, 0, &its, NULL) == 0)
        ep_add(H.trackfd, EPOLLIN, EV(T_TRACK, 0));
}

/* ---- starting ---- */

static void fail_start(struct svc *s)
{
    if (H.phase == PH_STARTING && !H.start_failed) {
        H.start_failed = true;
        H.err = s->err;
        H.why_stop = "start failed";
    }
}

static bool deps_ready(struct svc *s)
{
    for (size_t i = 0; i < s->conf->after.n; i++) {
        struct svc *d = svc_by_label(s->conf->after.v[i]);
        if (d && d->state != SVC_READY)
            return false;
    }
    return true;
}

static void mark_ready(struct svc *s)
{
    terr re;
    /* e.g. PostgreSQL's password for TCP: a server that nobody can log in
     * to is no start */
    bool failed = s->conf->driver->on_ready && s->conf->driver->on_ready(s, &re) < 0;
    if (failed) {
        s->err = re;
        fail_start(s);
    }
    s->state = SVC_READY;
    s->deadline_ns = 0;
    if (progress_on(PROGRESS_STEP)) {
        char t[32];
        _cleanup_free_ char *how = ready_describe(s);
        progress(PROGRESS_STEP, "[%s] ready %s after its start (ready = %s)", s->conf->label,
                 progress_since(t, s->spawned_ns), how);
    }
    if (s->ready_fd >= 0) {
        ep_del(s->ready_fd);
        ready_teardown(s);
    }
    terr e;
    if (svc_write_files(s, &e) < 0) {
        s->err = e;
        fail_start(s);
    }
    instance_write_state(&H.in, NULL);
    /* what it forked on its way to ready is on record before anyone hears
     * that it is ready */
    track_save(track_update(&H.track));
    if (s->restarting) {
        s->restarting = false;
        if (failed) {
            reply(&s->pending_client, "ERR %s", s->err.msg);
        } else {
            reset_outcome(s, NULL);
            reply(&s->pending_client, "OK restarted");
        }
    }
}

static int start_svc(struct svc *s)
{
    terr e;
    long long t0 = now_ns();
    int r = svc_prepare(s, &e);
    if (r == 0)
        r = svc_compute_vars(s, &e);
    long long t1 = now_ns();
    if (r == 0)
        r = svc_spawn(s, &e);
    if (r < 0) {
        s->err = e;
        s->state = SVC_EXITED;
        return r;
    }
    s->spawned_ns = now_ns();
    if (progress_on(PROGRESS_STEP)) {
        char a[32], b[32];
        progress(PROGRESS_STEP, "[%s] prepared in %s, started in %s (pid %d)", s->conf->label,
                 progress_time(a, t1 - t0), progress_time(b, s->spawned_ns - t1),
                 (int)s->pid); /* pid 0: nothing to run (a database on a server) */
    }
    s->state = SVC_STARTING;
    if (r == 1) {
        mark_ready(s);
        return 0;
    }
    s->deadline_ns = now_ns() + s->conf->timeout_ns;
    if (s->ready_fd >= 0)
        ep_add(s->ready_fd, EPOLLIN, EV(T_READY, s - H.in.svcs));
    instance_write_state(&H.in, NULL);
    if (s->conf->ready == READY_NONE)
        mark_ready(s);
    return 0;
}

static void start_ready_ones(void)
{
    for (size_t i = 0; i < H.in.n_svcs && !H.start_failed; i++) {
        struct svc *s = &H.in.svcs[i];
        if (s->state == SVC_PENDING && deps_ready(s) && start_svc(s) < 0)
            fail_start(s);
    }
}

static bool all_ready(void)
{
    for (size_t i = 0; i < H.in.n_svcs; i++)
        if (H.in.svcs[i].state != SVC_READY)
            return false;
    return true;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -EPIPE;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Returns false if nobody heard it: whoever started us is gone and no one
 * knows our variables, so the instance must not live on. */
static bool send_status(void)
{
    int fd = H.o->status_fd;
    if (fd < 0)
        return true;
    strbuf b = {0};
    if (H.start_failed) {
        sb_addc(&b, 'E');
        sb_add(&b, H.err.msg);
        if (H.keep_said.len) /* on a line of its own, after the log's tail */
            sb_addf(&b, "%s%s", b.s[b.len - 1] == '\n' ? "" : "\n", H.keep_said.s);
    } else {
        sb_addc(&b, 'O');
        for (size_t i = 0; i < H.in.n_svcs; i++) {
            struct svc *s = &H.in.svcs[i];
            /* a note for the user: a pair with an empty name */
            if (s->port_retries.len) {
                _cleanup_free_ char *note = xasprintf("[%s] %s", s->conf->label,
                                                      s->port_retries.s);
                sb_addn(&b, "", 1);
                sb_addn(&b, note, strlen(note) + 1);
            }
            for (size_t k = 0; k < s->n_vars; k++) {
                _cleanup_free_ char *n = svc_varname(s, s->vars[k].name);
                sb_addn(&b, n, strlen(n) + 1);
                sb_addn(&b, s->vars[k].value, strlen(s->vars[k].value) + 1);
            }
            for (size_t k = 0; k < s->n_gvars; k++) {
                sb_addn(&b, s->gvars[k].name, strlen(s->gvars[k].name) + 1);
                sb_addn(&b, s->gvars[k].value, strlen(s->gvars[k].value) + 1);
            }
        }
    }
    int r = write_all(fd, b.s, b.len);
    sb_free(&b);
    progress_to(-1); /* the starter has its outcome: from now on, our log */
    if (r == 0 && !H.start_failed) {
        /* keep the channel for the starter's acknowledgement: it sends one
         * byte once it has handed the variables on (printed them, or
         * started the command); until then, its death means nobody knows
         * about us */
        shutdown(fd, SHUT_WR);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = EV(T_STATUS, 0)};
        epoll_ctl(H.ep, EPOLL_CTL_MOD, fd, &ev);
        return true;
    }
    ep_del(fd);
    close(fd);
    H.o->status_fd = -1;
    return r == 0;
}

/* ---- process exits ---- */

static bool addr_in_use(struct svc *s)
{
    int fd = open_file_trusted(AT_FDCWD, s->logpath, geteuid(), NULL);
    if (fd < 0)
        return false;
    char buf[8192];
    struct stat st;
    off_t off = fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(buf) - 1
                    ? st.st_size - (off_t)sizeof(buf) + 1
                    : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, off);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (char *p = buf; p < buf + n; p++)
        if (*p == '\0')
            *p = ' ';
    return strcasestr(buf, "address already in use") || strcasestr(buf, "EADDRINUSE") ||
           strcasestr(buf, "address in use");
}

static void describe_status(strbuf *b, int status)
{
    if (WIFEXITED(status))
        sb_addf(b, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        sb_addf(b, "was killed by signal %s", signal_name(WTERMSIG(status)));
    else
        sb_add(b, "stopped");
}

static void stop_svc(struct svc *s);

/* Another port for an auto port that failed to start on this one (not on
 * a restart: the tests already hold the old port's variables). */
static bool may_retry_port(const struct svc *s)
{
    return s->conf->port == 0 && s->port_tries < 3 && !s->restarting;
}

/* Give the port up for another and start again, saying so in the logs and
 * in s->port_retries (for the start's outcome): a start that needed
 * another port must not look like one that did not. */
static int retry_port(struct svc *s, const char *why)
{
    int old = s->port;
    terr e;
    int r = svc_new_port(s, &e);
    if (r < 0) {
        svc_log(s, "port %d %s; no other port: %s", old, why, e.msg);
        return r;
    }
    sb_addf(&s->port_retries, "%sport %d %s, retried on %d", s->port_retries.len ? "; " : "",
            old, why, s->port);
    svc_log(s, "port %d %s: starting again on port %d", old, why, s->port);
    return start_svc(s);
}

/* An attempt given up for another port: its exec probe, still running,
 * must not answer for the next attempt (it would find no listener yet on
 * the new port, and a missing listener is no stranger's).  Its exit is
 * then reaped as anyone's. */
static void drop_probe(struct svc *s)
{
    if (s->probe_pid <= 0)
        return;
    kill(-s->probe_pid, SIGKILL);
    s->probe_pid = 0;
}

/* A readiness check failed for good (s->err says why). */
static void ready_failed(struct svc *s)
{
    if (s->restarting) {
        s->restarting = false;
        reply(&s->pending_client, "ERR %s", s->err.msg);
    }
    stop_svc(s);
    fail_start(s);
}

/* What a readiness check said: ready, not yet, or failed.  Another
 * process listening on an auto port won a race for it (a local user can
 * bind a port the moment tether picks it): try another port. */
static void ready_result(struct svc *s, int r)
{
    if (r == 0) {
        mark_ready(s);
        return;
    }
    if (r == -EAGAIN)
        return;
    if (r == -EADDRINUSE && may_retry_port(s)) {
        stop_svc(s);
        drop_probe(s);
        _cleanup_free_ char *why = s->taken_by == (uid_t)-1
                                       ? xstrdup("was taken by another process")
                                       : xasprintf("was taken by uid %u", (unsigned)s->taken_by);
        if (retry_port(s, why) == 0)
            return;
    }
    ready_failed(s);
}

/* A ready service died while others were still starting.  The start
 * cannot succeed: whatever waits for it through `after =` would wait
 * forever, and no deadline is left for a service that is still pending.
 * So it fails now, naming the one that died. */
static void exited_after_ready(struct svc *s, int status)
{
    _cleanup_sb_ strbuf why = {0};
    describe_status(&why, status);
    svc_fail(s, "%s after it was ready, while other services were still starting", why.s);
    fail_start(s);
}

static void main_exited(struct svc *s, int status)
{
    s->exit_status = status;
    enum svc_state was = s->state;
    s->state = SVC_EXITED;
    if (s->ready_fd >= 0) {
        ep_del(s->ready_fd);
        ready_teardown(s);
    }
    instance_write_state(&H.in, NULL);
    if (was == SVC_READY && H.phase == PH_STARTING) {
        exited_after_ready(s, status);
        return;
    }
    if (was != SVC_STARTING)
        return; /* a crash after the start: status and reset report it */
    /* "address in use" or an early exit on an auto port: another port */
    if (may_retry_port(s) && (addr_in_use(s) || H.phase == PH_STARTING)) {
        drop_probe(s);
        _cleanup_sb_ strbuf why = {0};
        if (addr_in_use(s))
            sb_add(&why, "was in use (the service said so)");
        else {
            sb_add(&why, "did not work: the service ");
            describe_status(&why, status);
            sb_add(&why, " before it was ready");
        }
        if (retry_port(s, why.s) == 0)
            return;
    }
    /* its own listener went with it: one left on the port is another's */
    if (ready_port_owner(s, false) < 0) {
        ready_failed(s);
        return;
    }
    _cleanup_sb_ strbuf why = {0};
    describe_status(&why, status);
    svc_fail(s, "%s before it was ready", why.s);
    if (s->restarting) {
        s->restarting = false;
        reply(&s->pending_client, "ERR %s", s->err.msg);
    }
    fail_start(s);
}

static void reset_done(struct svc *s, int status)
{
    s->reset_pid = 0;
    s->deadline_ns = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        reset_outcome(s, NULL);
        reply(&s->pending_client, "OK reset");
        return;
    }
    _cleanup_sb_ strbuf why = {0};
    describe_status(&why, status);
    svc_fail(s, "reset command (%s) %s", s->conf->reset, why.s);
    reset_outcome(s, s->err.msg);
    reply(&s->pending_client, "ERR %s", s->err.msg);
}

static void reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < H.in.n_svcs; i++) {
            struct svc *s = &H.in.svcs[i];
            if (pid == s->pid) {
                s->pid = 0;
                if (s->state != SVC_STOPPING)
                    main_exited(s, status);
                else
                    s->state = SVC_EXITED;
            } else if (pid == s->probe_pid) {
                s->probe_pid = 0;
                if (s->state == SVC_STARTING)
                    ready_result(s, ready_exec_done(s, status));
            } else if (pid == s->reset_pid) {
                reset_done(s, status);
            }
        }
        /* anything else: an adopted orphan, now reaped */
    }
}

/* ---- stopping ---- */

/* Wait for the child pid to exit, up to deadline; reap it. */
static bool wait_child(pid_t pid, long long deadline)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            if (pfd >= 0)
                close(pfd);
            return true;
        }
        if (pfd < 0 || now_ns() >= deadline) {
            if (pfd >= 0)
                close(pfd);
            return false;
        }
        pidfd_wait(pfd, deadline);
    }
}

static void stop_svc(struct svc *s)
{
    if (s->pid <= 0)
        return;
    pid_t pid = s->pid;
    s->state = SVC_STOPPING;
    int sig = s->conf->stop_signal;
    /* the whole process group: workers die with their master (unless a
     * recipe says its master stops them: stop_group = no) */
    if (s->conf->stop_pid_only || kill(-pid, sig) < 0)
        kill(pid, sig);
    if (sig == SIGKILL || !wait_child(pid, now_ns() + s->conf->stop_timeout_ns)) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        wait_child(pid, now_ns() + 10LL * 1000000000LL);
    }
    kill(-pid, SIGKILL); /* stragglers of the group */
    s->pid = 0;
    s->state = SVC_EXITED;
}

/* As a child subreaper we are the parent of every descendant whose own
 * parent died, double-forkers and setsid escapers included: our children
 * are all there is.  (Scanning /proc for the cookie is gc's job, for when
 * we are dead: reading other processes' environ can stall for tens of
 * milliseconds while they exec.) */
static void kill_descendants(void)
{
    for (int round = 0; round < 100; round++) {
        pid_t *kids = NULL;
        size_t n = 0;
        proc_children(getpid(), &kids, &n);
        for (size_t i = 0; i < n; i++)
            kill(kids[i], SIGKILL);
        free(kids);
        if (n == 0)
            break;
        /* reap what we killed (blocking: they are dying) */
        while (n > 0) {
            int st;
            pid_t p = waitpid(-1, &st, 0);
            if (p < 0)
                break;
            n--;
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }
}

static int shutdown_all(void)
{
    int ret = 0;
    H.phase = PH_STOPPING;
    for (size_t i = H.in.n_svcs; i-- > 0;) {
        struct svc *s = &H.in.svcs[i];
        if (s->probe_pid > 0)
            kill(-s->probe_pid, SIGKILL);
        if (s->reset_pid > 0)
            kill(-s->reset_pid, SIGKILL);
        stop_svc(s);
        reply(&s->pending_client, "ERR the instance is shutting down (%s)",
              H.why_stop ? H.why_stop : "stopped");
    }
    kill_descendants();
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct svc *s = &H.in.svcs[i];
        terr e;
        if (s->conf->driver->cleanup && s->conf->driver->cleanup(s, &e) < 0) {
            ret = 2;
            strv_push(&H.kept, s->conf->label);
            sb_addf(&H.kept_why, "%s%s", H.kept_why.len ? "; " : "", e.msg);
        }
    }
    return ret;
}

/* A cleanup failed (a database on a server that is down): the instance
 * stays with what lets gc retry, and the note says why to `tether stop`
 * (or run), which waits for us to exit and then reads it. */
static int keep_instance(void)
{
    sb_addf(&H.kept_why, "; its record stays in %s: run `tether gc` once the cause is fixed "
            "(it retries)", H.in.dir);
    terr e;
    if (instance_keep(H.in.dirfd, &H.kept, H.kept_why.s, &e) < 0)
        fprintf(stderr, "tether-helper: %s\n", e.msg);
    return 2;
}

/* Keep the instance for the user to look at (--keep-failed): its logs and
 * data stay, its processes are gone like those of any stopped instance.
 * If the note cannot be written, gc would take it for a stale instance:
 * then it goes now, and the starter hears why. */
static int keep_failed_instance(void)
{
    terr e;
    instance_write_state(&H.in, NULL); /* every service stopped: list says so */
    if (instance_keep_failed(H.in.dirfd, H.keep_why.s, &e) == 0) {
        sb_addf(&H.keep_said, "kept instance %s with its logs and data (tether list shows it; "
                "`tether gc --kept` removes it)", H.in.dir);
        return 0;
    }
    sb_addf(&H.keep_said, "could not keep instance %s as asked: %s; removed it", H.in.dir,
            e.msg);
    H.keep = false;
    return -1;
}

static int remove_instance(void)
{
    if (!H.in.dir)
        return 0;
    if (H.kept.n)
        return keep_instance();
    if (H.keep && keep_failed_instance() == 0)
        return 0;
    int root = open(H.in.state_dir, O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return 2;
    terr e;
    int r = instance_remove(root, H.in.id, &e);
    close(root);
    return r < 0 ? 2 : 0;
}

/* ---- control socket ---- */

/* Whether pid, failing its health check, is on its way out: a process
 * killed a moment ago closes its sockets before it becomes a zombie. */
static bool exits_soon(pid_t pid)
{
    _cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return errno == ESRCH;
    return pidfd_wait(pfd, now_ns() + 200000000LL);
}

/* A service found dead when asked for: say it crashed (and how). */
static bool reply_if_crashed(struct svc *s, int *c)
{
    if (s->state != SVC_EXITED)
        return false;
    _cleanup_sb_ strbuf why = {0};
    describe_status(&why, s->exit_status);
    svc_fail(s, "is not running: it %s (it crashed; this instance will not restart it "
             "silently: stop it and start a new one)",
             why.s);
    reply(c, "ERR %s", s->err.msg);
    return true;
}

/* How long a reset may take, at most: a restart stops the service
 * (stop_timeout, then up to 10 s for the SIGKILL) and waits for it to be
 * ready (timeout); a command or a driver's reset has timeout. */
static long long reset_budget_ns(const struct svc *s)
{
    return s->conf->stop_timeout_ns + 10LL * 1000000000LL + s->conf->timeout_ns;
}

/* Tell a client that can wait ("wait" line) that the answer may take up
 * to ns: it gives up only after that, and on a helper that is silent. */
static void promise(int client, bool can_wait, long long ns)
{
    if (!can_wait)
        return;
    char msg[40];
    int n = snprintf(msg, sizeof(msg), "WAIT %lld", ns);
    ssize_t w = send(client, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w; /* a client that went away hears nothing either way */
}

/* Whether the instance is to be kept after a failure (asked for, and the
 * first failure: its note says what failed). */
static void keep_for(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void keep_for(const char *fmt, ...)
{
    if (!H.o->keep_failed || H.keep)
        return;
    H.keep = true;
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&H.keep_why, fmt, ap);
    va_end(ap);
}

/* `tether run`'s command ended with status: which services died while it
 * ran (their logs' tails; the paths only if the instance will be kept). */
static void finished(int client, int status)
{
    reap(); /* exits queued behind this request count */
    if (status != 0)
        keep_for("the command exited with status %d", status);
    for (size_t i = 0; i < H.in.n_svcs; i++)
        if (H.in.svcs[i].state == SVC_EXITED)
            keep_for("service '%s' died while the command ran", H.in.svcs[i].conf->label);
    H.in.name_logs = H.keep;
    strbuf b = {0};
    sb_add(&b, "OK\n");
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct svc *s = &H.in.svcs[i];
        if (s->state != SVC_EXITED)
            continue;
        _cleanup_sb_ strbuf why = {0};
        describe_status(&why, s->exit_status);
        svc_fail(s, "%s while the command ran", why.s);
        sb_addf(&b, "%s\x1e", s->err.msg); /* RS: a message may have many lines */
    }
    int c = client;
    reply(&c, "%s", b.s);
    sb_free(&b);
}

/* A request is one line; the lines after it are options ("wait"). */
static void handle_request(int client, char *req)
{
    char *nl = strchr(req, '\n');
    bool can_wait = false;
    if (nl) {
        *nl = '\0';
        can_wait = strncmp(nl + 1, "wait", 4) == 0 && (nl[5] == '\0' || nl[5] == '\n');
    }
    if (streq(req, "status")) {
        reap(); /* exits queued behind this request count */
        strbuf b = {0};
        sb_add(&b, "OK\n");
        for (size_t i = 0; i < H.in.n_svcs; i++) {
            struct svc *s = &H.in.svcs[i];
            terr e;
            /* what is wrong now first, then what the last reset left */
            int health = s->state == SVC_READY ? svc_health(s, &e) : 0;
            if (s->state == SVC_READY && health == 0 && s->reset_err) {
                sb_addf(&b, "%s unhealthy the last reset failed (reset it again): %s\n",
                        s->conf->label, s->reset_err);
            } else if (s->state == SVC_READY && health == 0) {
                sb_addf(&b, "%s ready %d\n", s->conf->label, (int)s->pid);
            } else if (s->state == SVC_EXITED) {
                sb_addf(&b, "%s dead ", s->conf->label);
                describe_status(&b, s->exit_status);
                sb_addc(&b, '\n');
            } else if (s->state == SVC_READY) {
                one_line(e.msg); /* libpq's messages end in a newline */
                sb_addf(&b, "%s unhealthy %s\n", s->conf->label, e.msg);
            } else {
                sb_addf(&b, "%s starting %d\n", s->conf->label, (int)s->pid);
            }
        }
        int c = client;
        reply(&c, "%s", b.s);
        sb_free(&b);
        return;
    }
    if (strncmp(req, REQ_FINISHED, strlen(REQ_FINISHED)) == 0) {
        finished(client, atoi(req + strlen(REQ_FINISHED)));
        return;
    }
    if (strncmp(req, "reset ", 6) == 0) {
        struct svc *s = svc_by_label(req + 6);
        int c = client;
        if (!s) {
            reply(&c, "ERR no service '%s' in this instance", req + 6);
            return;
        }
        terr e;
        const struct tether_driver *d = s->conf->driver;
        svc_op_fn reset_op = svc_native_reset(s); /* the driver's, or reset = send:... */
        bool native = reset_op != NULL;
        /* a SIGCHLD may be queued behind this request: a crash must read
         * as a crash, not as whatever the health check stumbles on */
        reap();
        /* a driver whose reset talks to the server finds out by doing */
        bool check = s->state == SVC_READY && s->pending_client < 0 &&
                     !(native && !s->conf->reset_proto && d->reset_checks_health);
        long long t0 = now_ns();
        int health = check ? svc_health(s, &e) : 0;
        long long t1 = now_ns();
        if (health < 0 && s->pid > 0 && exits_soon(s->pid))
            reap();
        if (reply_if_crashed(s, &c))
            return;
        if (s->pending_client >= 0 || s->state != SVC_READY) {
            reply(&c, "ERR service '%s' is busy (starting or being reset)", s->conf->label);
            return;
        }
        if (health < 0) {
            reply(&c, "ERR %s", e.msg);
            return;
        }
        if (native || s->conf->reset_restart || s->conf->reset)
            promise(client, can_wait, reset_budget_ns(s));
        if (native) {
            struct op op;
            op_init(&op, s, "reset");
            int rr = reset_op(s, &op, &e);
            if (rr == OP_STARTED)
                rr = op_run_blocking(&op, &e);
            if (rr < 0) {
                if (s->pid > 0 && exits_soon(s->pid))
                    reap();
                reset_outcome(s, e.msg);
                if (!reply_if_crashed(s, &c))
                    reply(&c, "ERR %s", e.msg);
                return;
            }
            reset_outcome(s, NULL);
            /* the lines after the first: the steps, for -v */
            char a[32], b[32];
            progress_time(a, t1 - t0);
            progress_since(b, t1);
            if (check)
                reply(&c, "OK reset\nhealth check in %s\nreset in %s", a, b);
            else
                reply(&c, "OK reset\nreset in %s", b);
            if (d->after_reset && !s->conf->reset_proto) {
                op_init(&op, s, "after reset");
                if (d->after_reset(s, &op, &e) == OP_STARTED)
                    op_run_blocking(&op, &e);
            }
            return;
        }
        if (s->conf->reset_restart) {
            s->pending_client = client;
            s->restarting = true;
            stop_svc(s);
            s->state = SVC_PENDING;
            if (start_svc(s) < 0) {
                s->restarting = false;
                reply(&s->pending_client, "ERR %s", s->err.msg);
            }
            return;
        }
        if (s->conf->reset) {
            if (svc_run_command(s, s->conf->reset, &s->reset_pid, &e) < 0) {
                reply(&c, "ERR %s", e.msg);
                return;
            }
            s->pending_client = client;
            s->deadline_ns = now_ns() + s->conf->timeout_ns;
            return;
        }
        reply(&c, "OK nothing to reset");
        return;
    }
    int c = client;
    reply(&c, "ERR unknown request");
}

/* Whether a client hung up after its request: one that gave up waiting
 * (we were stopped, or busy) must not get a reset behind its back. */
static bool hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

static void on_client(int fd)
{
    if (hung_up(fd)) {
        ep_del(fd);
        close(fd);
        return;
    }
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        /* client went away: forget it wherever it waits */
        for (size_t i = 0; i < H.in.n_svcs; i++)
            if (H.in.svcs[i].pending_client == fd)
                H.in.svcs[i].pending_client = -1;
        ep_del(fd);
        close(fd);
        return;
    }
    buf[n] = '\0';
    ep_del(fd); /* one request per connection */
    handle_request(fd, buf);
}

static int open_control(terr *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", H.in.dir);
    if (n >= (int)sizeof(sa.sun_path))
        return terr_set(e, ENAMETOOLONG,
                        "the instance directory %s is too long for a unix socket: set "
                        "TETHER_DIR to a shorter directory",
                        H.in.dir);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        int r = terr_set(e, errno, "cannot listen on %s: %m", sa.sun_path);
        if (fd >= 0)
            close(fd);
        return r;
    }
    return fd;
}

/* ---- the loop ---- */

static void arm_timer(void)
{
    long long next = 0;
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct svc *s = &H.in.svcs[i];
        if (s->reset_pid > 0 && s->deadline_ns && (!next || s->deadline_ns < next))
            next = s->deadline_ns;
        if (s->state != SVC_STARTING)
            continue;
        if (s->deadline_ns && (!next || s->deadline_ns < next))
            next = s->deadline_ns;
        bool timed = s->conf->ready == READY_TCP || s->conf->ready == READY_UNIX ||
                     s->conf->ready == READY_DRIVER || s->conf->ready == READY_EXPECT ||
                     s->conf->ready == READY_HTTP ||
                     (s->conf->ready == READY_EXEC && s->probe_pid == 0);
        if (timed && s->next_probe_ns && (!next || s->next_probe_ns < next))
            next = s->next_probe_ns;
    }
    struct itimerspec its = {0};
    if (next) {
        long long now = now_ns();
        long long d = next > now ? next - now : 1;
        its.it_value.tv_sec = d / 1000000000LL;
        its.it_value.tv_nsec = d % 1000000000LL;
    }
    timerfd_settime(H.timerfd, 0, &its, NULL);
}

/* A reset command past its deadline: the client hears why now; the
 * command is killed and reaped like any other. */
static void reset_overdue(struct svc *s)
{
    kill(-s->reset_pid, SIGKILL);
    s->deadline_ns = 0;
    svc_fail(s, "reset command (%s) did not finish within %g s (timeout =); it was killed",
             s->conf->reset, (double)s->conf->timeout_ns / 1e9);
    reply(&s->pending_client, "ERR %s", s->err.msg);
}

static void on_timer(void)
{
    uint64_t x;
    ssize_t n = read(H.timerfd, &x, sizeof(x));
    (void)n;
    long long now = now_ns();
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct svc *s = &H.in.svcs[i];
        if (s->reset_pid > 0 && s->deadline_ns && now >= s->deadline_ns)
            reset_overdue(s);
        if (s->state != SVC_STARTING)
            continue;
        if (s->next_probe_ns && now >= s->next_probe_ns) {
            int r = ready_probe(s);
            if (r != -EAGAIN) {
                ready_result(s, r);
                continue;
            }
        }
        if (s->deadline_ns && now >= s->deadline_ns) {
            _cleanup_free_ char *how = ready_describe(s);
            double secs = (double)s->conf->timeout_ns / 1e9;
            svc_fail(s, "did not become ready within %g s (ready = %s); raise timeout = or fix "
                     "its readiness check",
                     secs, how);
            if (s->restarting) {
                s->restarting = false;
                reply(&s->pending_client, "ERR %s", s->err.msg);
            }
            stop_svc(s);
            fail_start(s);
        }
    }
}

static bool on_signal(void)
{
    struct signalfd_siginfo si;
    bool stop = false;
    while (read(H.sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            reap();
        else {
            stop = true;
            H.why_stop = si.ssi_signo == SIGTERM ? "SIGTERM"
                         : si.ssi_signo == SIGINT ? "SIGINT"
                                                  : "SIGHUP";
        }
    }
    return stop;
}

static int setup(terr *e)
{
    struct helper_opts *o = H.o;
    /* all five arguments: prctl() reads them, whatever the option */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_SET_NAME, "tether-helper", 0, 0, 0);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    H.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    H.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    H.ep = epoll_create1(EPOLL_CLOEXEC);
    if (H.sigfd < 0 || H.timerfd < 0 || H.ep < 0)
        return terr_set(e, errno, "helper set-up: %m");
    ep_add(H.sigfd, EPOLLIN, EV(T_SIGNAL, 0));
    ep_add(H.timerfd, EPOLLIN, EV(T_TIMER, 0));
    if (o->lease_fd >= 0)
        ep_add(o->lease_fd, EPOLLIN | EPOLLRDHUP, EV(T_LEASE, 0));
    if (o->status_fd >= 0)
        ep_add(o->status_fd, EPOLLRDHUP, EV(T_STATUS, 0)); /* the starter is gone */
    if (o->watch_pid > 0) {
        H.watchfd = (int)syscall(SYS_pidfd_open, o->watch_pid, 0);
        if (H.watchfd < 0)
            return terr_set(e, errno, "--watch-pid %d: %m", (int)o->watch_pid);
        ep_add(H.watchfd, EPOLLIN, EV(T_WATCH, 0));
    }
    H.in.cfg = o->cfg;
    H.in.prefix = o->cfg->prefix;
    H.in.name_logs = o->keep_failed; /* a failed start keeps them */
    H.in.lock_fd = -1;
    H.in.dirfd = -1;
    if (o->fixed)
        instance_fixed_id(H.in.id, o->cfg, o->sel, o->nsel);
    long long t0 = now_ns();
    int r = instance_create(&H.in, e);
    if (r < 0)
        return r;
    char t[32];
    progress(PROGRESS_STEP, "instance %s made in %s (helper pid %d)", H.in.dir,
             progress_since(t, t0), (int)getpid());
    /* our own diagnostics go to a file in the instance, never a console */
    int log = openat(H.in.dirfd, "helper.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log >= 0) {
        dup2(log, 2);
        close(log);
    }
    H.ctlfd = open_control(e);
    if (H.ctlfd < 0)
        return H.ctlfd;
    ep_add(H.ctlfd, EPOLLIN, EV(T_CONTROL, 0));
    H.in.svcs = xcalloc(o->nsel, sizeof(struct svc));
    for (size_t i = 0; i < o->nsel; i++) {
        H.in.n_svcs = i + 1;
        if ((r = svc_init(&H.in.svcs[i], &H.in, o->sel[i], e)) < 0)
            return r;
    }
    instance_write_state(&H.in, NULL);
    track_start();
    return 0;
}

int helper_main(struct helper_opts *o)
{
    memset(&H, 0, sizeof(H));
    H.o = o;
    H.ctlfd = H.watchfd = H.trackfd = -1;
    H.phase = PH_STARTING;
    /* the starter prints our progress (at the level it was given) */
    if (o->status_fd >= 0)
        progress_to(o->status_fd);
    int ret = 0;
    if (setup(&H.err) < 0) {
        H.start_failed = true;
        goto out;
    }
    if (o->expire_ns > 0) {
        /* expiry is a second timer: the first follows readiness deadlines */
        int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        struct itimerspec its = {.it_value = {.tv_sec = o->expire_ns / 1000000000LL,
                                              .tv_nsec = o->expire_ns % 1000000000LL}};
        if (t >= 0 && timerfd_settime(t, 0, &its, NULL) == 0)
            ep_add(t, EPOLLIN, EV(T_WATCH, 1));
    }
    start_ready_ones();
    for (;;) {
        if (H.start_failed)
            break;
        /* start what became startable first: a service that is ready at
         * once (ready = none) must count before we go back to sleep */
        if (H.phase == PH_STARTING)
            start_ready_ones();
        if (H.start_failed)
            break;
        if (H.phase == PH_STARTING && all_ready()) {
            H.phase = PH_RUNNING;
            H.in.name_logs = true; /* they live as long as we run */
            if (!send_status()) {
                H.why_stop = "the starting command went away";
                break;
            }
        }
        arm_timer();
        struct epoll_event evs[16];
        int n = epoll_wait(H.ep, evs, 16, -1);
        if (n < 0 && errno != EINTR)
            break;
        bool stop = false;
        for (int i = 0; i < n && !stop; i++) {
            uint32_t tag = (uint32_t)(evs[i].data.u64 >> 32);
            uint32_t idx = (uint32_t)evs[i].data.u64;
            switch (tag) {
            case T_SIGNAL:
                stop = on_signal();
                break;
            case T_TIMER:
                on_timer();
                break;
            case T_TRACK:
                on_track_timer();
                break;
            case T_LEASE: {
                char buf[64];
                ssize_t r = read(o->lease_fd, buf, sizeof(buf));
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    stop = true;
                    H.why_stop = "the owner went away";
                }
                break;
            }
            case T_WATCH:
                stop = true;
                H.why_stop = idx ? "expired" : "the watched process exited";
                break;
            case T_STATUS: {
                char ack = 0;
                if (H.phase == PH_RUNNING && read(o->status_fd, &ack, 1) == 1 && ack == 'A') {
                    ep_del(o->status_fd);
                    close(o->status_fd);
                    o->status_fd = -1;
                    break;
                }
                stop = true;
                H.why_stop = "the starting command went away before it handed the variables on";
                break;
            }
            case T_CONTROL: {
                int c = accept4(H.ctlfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c >= 0)
                    ep_add(c, EPOLLIN, EV(T_CLIENT, c));
                break;
            }
            case T_CLIENT:
                on_client((int)idx);
                break;
            case T_READY: {
                struct svc *s = &H.in.svcs[idx];
                if (s->state != SVC_STARTING || s->ready_fd < 0)
                    break;
                ready_result(s, ready_on_event(s));
                break;
            }
            }
        }
        if (stop || H.start_failed)
            break;
    }
out:
    if (H.phase == PH_STARTING && !H.start_failed) {
        H.start_failed = true;
        terr_set(&H.err, EINTR, "the start was interrupted (%s) before every service was ready",
                 H.why_stop ? H.why_stop : "stopped");
    } else if (H.start_failed) { /* a failure, not the user's Ctrl-C */
        keep_for("the start failed: %s", H.err.msg);
    }
    if (H.start_failed)
        ret = 1;
    int r = shutdown_all();
    if (r)
        ret = r > ret ? r : ret;
    /* the status goes out only when nothing is left: a failed start must
     * not return before its debris is gone */
    if (remove_instance() != 0 && !ret)
        ret = 2;
    if (H.start_failed && H.kept.n) { /* the starter hears of it too */
        terr start = H.err;
        terr_set(&H.err, EIO, "%s; and its cleanup failed: %s", start.msg, H.kept_why.s);
    }
    send_status();
    strv_free(&H.kept);
    sb_free(&H.kept_why);
    sb_free(&H.keep_why);
    sb_free(&H.keep_said);
    for (size_t i = 0; i < H.in.n_svcs; i++)
        svc_free(&H.in.svcs[i]);
    free(H.in.svcs);
    track_free(&H.track);
    free(H.in.dir);
    free(H.in.state_dir);
    if (H.in.lock_fd >= 0)
        close(H.in.lock_fd);
    return ret;
}

/* ---- the reading side of the status pipe ---- */

void vars_free(struct var *vars, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(vars[i].name);
        free(vars[i].value);
    }
    free(vars);
}

/* Print the progress records at the front of b and drop them; true once
 * what is left is the outcome ("O" or "E"), or the start of it. */
static bool take_progress(strbuf *b)
{
    size_t off = 0;
    while (off < b->len && b->s[off] == 'P') {
        const char *end = memchr(b->s + off, '\0', b->len - off);
        if (!end)
            break; /* the rest of it comes with the next read */
        const char *rec = b->s + off;
        if (end - rec >= 2)
            progress(rec[1] - '0', "%s", rec + 2);
        off = (size_t)(end - b->s) + 1;
    }
    if (off) {
        b->len -= off;
        memmove(b->s, b->s + off, b->len + 1);
    }
    return b->len > 0 && b->s[0] != 'P';
}

int helper_read_progress(int fd, strbuf *pending)
{
    char buf[8192];
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) < 0 && errno == EINTR)
        ;
    if (r <= 0)
        return 1; /* EOF: the outcome, if any, is all there */
    sb_addn(pending, buf, (size_t)r);
    return take_progress(pending) ? 1 : 0;
}

int helper_read_status(int fd, strbuf *pending, struct var **vars, size_t *n, strbuf *notes,
                       terr *e)
{
    strbuf b = *pending;
    *pending = (strbuf){0};
    char buf[8192];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        sb_addn(&b, buf, (size_t)r);
        take_progress(&b);
    }
    take_progress(&b);
    *vars = NULL;
    *n = 0;
    if (b.len == 0) {
        sb_free(&b);
        return terr_set(e, EPIPE, "the helper died before it said whether the start worked "
                        "(run `tether gc`; see the system log for an OOM kill)");
    }
    if (b.s[0] == 'E') {
        terr_set(e, EIO, "%s", b.s + 1);
        sb_free(&b);
        return -EIO;
    }
    size_t off = 1;
    while (off < b.len) {
        const char *name = b.s + off;
        size_t nl = strlen(name);
        if (off + nl + 1 >= b.len)
            break;
        const char *val = name + nl + 1;
        off += nl + 1 + strlen(val) + 1;
        if (nl == 0) { /* a note (send_status) */
            if (notes)
                sb_addf(notes, "%s%s", notes->len ? "\n" : "", val);
            continue;
        }
        *vars = xrealloc(*vars, (*n + 1) * sizeof(**vars));
        (*vars)[*n].name = xstrdup(name);
        (*vars)[*n].value = xstrdup(val);
        (*n)++;
    }
    sb_free(&b);
    return 0;
}

int helper_ack(int fd)
{
    char a = 'A';
    return write(fd, &a, 1) == 1 ? 0 : -errno;
}
