/* The helper's event loop.  Single-threaded: one epoll over a signalfd,
 * a timerfd, the readiness sources, the services' ops (op.h), the control
 * socket, the owner's lease and the watched pid.  It is a child
 * subreaper, so whatever a service forks, however it detaches, comes back
 * to us to be killed and reaped.
 *
 * Nothing waits inside the loop (s6-supervise's state x event table): an
 * event moves a service from one state to the next, and anything slow is
 * an op whose fd is in the epoll set and whose deadline is in the timer.
 * A service's states (enum svc_state, plus what is in flight in its
 * struct run):
 *
 *   PENDING --start--> STARTING: prepare op (ACT_PREPARE), then the
 *       variables and the spawn, then readiness (events, timed probes, or
 *       the driver's probe op, ACT_PROBE) until READY, or its deadline
 *   READY: `status` runs a health op (ACT_HEALTH) and answers once every
 *       service checked; a reset makes it "resetting" (run.resetting):
 *       health op, then the driver's reset op (ACT_RESET), a reset command
 *       (reset_pid, its exit by SIGCHLD) or a restart (STOPPING, then
 *       PENDING again); the asking client gets its reply when that ends,
 *       and after_reset (ACT_AFTER_RESET) runs after it.  Others are served
 *       meanwhile.
 *   STOPPING: the stop signal went, SIGKILL at stop_timeout (the timer);
 *       SIGCHLD moves it to EXITED and on to what was to follow (a
 *       restart, another port, or the shutdown's next service)
 *   EXITED
 *
 * Shutdown is a phase (H.stopping): ops are cancelled at once (their
 * children killed and reaped by their op), a service already stopping is
 * SIGKILLed, and the others are stopped in reverse dependency order, each
 * once nothing that runs after it is left; the loop serves clients and
 * signals until the last one exited.
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
#include "op.h"
#include "hlog.h"
#include "progress.h"
#include "service.h"
#include "track.h"

enum tag {
    T_SIGNAL = 1, T_TIMER, T_LEASE, T_WATCH, T_CONTROL, T_CLIENT, T_READY, T_STATUS, T_TRACK,
    T_OP /* a service's op: idx is the service */
};
#define EV(tag, idx) (((uint64_t)(tag) << 32) | (uint32_t)(idx))

enum phase { PH_STARTING, PH_RUNNING };

/* What a service's op is doing. */
enum act { ACT_NONE, ACT_PREPARE, ACT_PROBE, ACT_ON_READY, ACT_HEALTH, ACT_RESET,
           ACT_AFTER_RESET, ACT_EXITS_SOON };
/* What comes once a stopping service has exited. */
enum then { THEN_NOTHING, THEN_RESTART, THEN_RETRY_PORT };

/* The helper's side of a service: its work in flight. */
struct run {
    struct op op;
    enum act act;
    int fd_reg;          /* op.fd in the epoll set, -1 none */
    bool resetting;      /* a reset is under way: its client waits */
    bool reset_queued;   /* asked while an op was in flight: starts after it */
    bool health_for_status; /* the ACT_HEALTH answers `status` (else a reset) */
    bool health_wanted;     /* a `status` waits for this service's op (after_reset)
                               to end, then for a check: not an older answer */
    int health_r;        /* the last health check's result */
    terr health_err;
    terr fail;           /* ACT_EXITS_SOON: what to say unless it crashed */
    bool fail_is_reset;  /* ... and whether the reset itself failed */
    long long reset_t0, reset_t1, reset_since; /* health check, reset: for -v */
    bool reset_checked;
    long long prep_t0;
    long long stop_deadline_ns; /* STOPPING: SIGKILL (then give up) at it */
    bool killed;         /* SIGKILL sent */
    enum then then;
    char *retry_why;
};

#define MAX_STATUS_WAITERS 64

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
    struct run *run;  /* one per service */
    bool stopping;    /* the shutdown phase */
    int status_waiters[MAX_STATUS_WAITERS]; /* `status` clients waiting for health ops */
    size_t n_status_waiters;
} H;

#define RUN(s) (&H.run[(s) - H.in.svcs])

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

/* The end of a reset (or restart): its client hears how it went, and the
 * service is no longer "resetting". */
static void answer(struct svc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer(struct svc *s, const char *fmt, ...)
{
    strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    reply(&s->pending_client, "%s", b.s);
    sb_free(&b);
    RUN(s)->resetting = false;
    RUN(s)->reset_queued = false;
    s->restarting = false;
}

/* A warning the user must be able to find: the one warning path (the
 * terminal under run, the helper's log beside the instance under start). */
static void warn_svc(struct svc *s, const char *what, const terr *e)
{
    (void)s; /* e names it */
    warn("%s (%s)", e->msg, what);
}

/* ---- ops: a service's slow work, in the epoll set ---- */

static void op_watch(struct svc *s)
{
    struct run *u = RUN(s);
    if (u->op.fd >= 0) {
        /* op.h speaks poll's POLLIN/POLLOUT, which are epoll's values */
        _Static_assert(POLLIN == EPOLLIN && POLLOUT == EPOLLOUT, "poll and epoll bits differ");
        ep_add(u->op.fd, u->op.events ? (uint32_t)u->op.events : EPOLLIN,
               EV(T_OP, s - H.in.svcs));
        u->fd_reg = u->op.fd;
    }
}

static void op_unwatch(struct run *u)
{
    if (u->fd_reg >= 0)
        ep_del(u->fd_reg);
    u->fd_reg = -1;
}

/* A hook's answer: an op in flight (watch it, as act), or a result now. */
static bool op_begun(struct svc *s, int r, enum act act)
{
    if (r != OP_STARTED)
        return false;
    RUN(s)->act = act;
    op_watch(s);
    return true;
}

static void status_maybe_answer(void);

/* Abandon the service's op (its child killed and reaped by its cancel). */
static void op_drop(struct svc *s)
{
    struct run *u = RUN(s);
    if (!op_busy(&u->op) && u->act == ACT_NONE)
        return;
    op_unwatch(u);
    op_cancel(&u->op);
    op_init(&u->op, s, NULL);
    u->act = ACT_NONE;
    u->health_for_status = false;
    u->health_wanted = false;
    status_maybe_answer();
}

static void op_finished(struct svc *s, enum act act, int r, terr *e);

/* The op's fd is readable, or its deadline passed: one step. */
static void op_event(struct svc *s, bool timed_out)
{
    struct run *u = RUN(s);
    if (!op_busy(&u->op))
        return;
    op_unwatch(u); /* the step may close it, or swap it for another */
    terr e = {.msg = ""};
    int r = u->op.step(&u->op, timed_out, &e);
    if (r == OP_PENDING) {
        op_watch(s);
        return;
    }
    enum act act = u->act;
    u->act = ACT_NONE;
    op_init(&u->op, s, NULL);
    op_finished(s, act, r, &e);
}

/* Rewrite the state file: gc and stop go by it.  A failure is said once
 * per cause (the track timer retries every TRACK_PERIOD), and again
 * after a write that worked. */
static void save_state(void)
{
    static char said[TERR_MAX];
    terr e;
    if (instance_write_state(&H.in, &e) == 0) {
        said[0] = '\0';
    } else if (!streq(said, e.msg)) {
        snprintf(said, sizeof(said), "%s", e.msg);
        warn("%s (gc and stop go by it: what it does not list, they may miss)", e.msg);
    }
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
        save_state();
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
    if (H.phase == PH_STARTING && !H.start_failed && !H.stopping) {
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

/* The driver's on_ready said r (e why): the service is READY, and its
 * start (or restart) failed if r < 0. */
static void mark_ready(struct svc *s, int r, const terr *re)
{
    /* e.g. PostgreSQL's password for TCP: a server that nobody can log in
     * to is no start */
    bool failed = r < 0;
    if (failed) {
        s->err = *re;
        fail_start(s);
    }
    s->state = SVC_READY;
    s->deadline_ns = 0;
    op_drop(s); /* a probe still in flight has nothing more to say */
    RUN(s)->health_r = 0;
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
        failed = true; /* a restart says so too */
    }
    save_state();
    /* what it forked on its way to ready is on record before anyone hears
     * that it is ready */
    track_save(track_update(&H.track));
    if (s->restarting) {
        if (failed) {
            answer(s, "ERR %s", s->err.msg);
        } else {
            reset_outcome(s, NULL);
            answer(s, "OK restarted");
        }
    }
}

/* Its readiness check passed: no more probes, then the driver's on_ready
 * (an op when it talks to the server: PostgreSQL sets its TCP password
 * through its worker), then READY.  The readiness deadline still bounds
 * it. */
static void became_ready(struct svc *s)
{
    struct run *u = RUN(s);
    op_drop(s); /* a probe still in flight has nothing more to say */
    s->next_probe_ns = 0;
    if (s->ready_fd >= 0) {
        ep_del(s->ready_fd);
        ready_teardown(s);
    }
    const struct tether_driver *d = s->conf->driver;
    terr e = {.msg = ""};
    int r = 0;
    if (d->on_ready) {
        op_init(&u->op, s, "on_ready");
        r = d->on_ready(s, &u->op, &e);
        if (r == OP_STARTED && !u->op.deadline_ns)
            u->op.deadline_ns = s->deadline_ns ? s->deadline_ns
                                               : now_ns() + s->conf->timeout_ns;
        if (op_begun(s, r, ACT_ON_READY))
            return;
    }
    mark_ready(s, r, &e);
}

/* A start (or restart) failed: s->err says why. */
static void start_failure(struct svc *s)
{
    if (s->restarting)
        answer(s, "ERR %s", s->err.msg);
    fail_start(s);
}

static int prepared(struct svc *s, int r, terr *e);

/* PENDING -> STARTING: the driver's prepare (maybe an op), then prepared(). */
static int start_svc(struct svc *s)
{
    terr e = {.msg = ""};
    struct run *u = RUN(s);
    const struct tether_driver *d = s->conf->driver;
    u->prep_t0 = now_ns();
    s->state = SVC_STARTING; /* preparing: no pid, no readiness yet */
    s->deadline_ns = 0;
    s->next_probe_ns = 0;
    int r = 0;
    if (d->prepare) {
        op_init(&u->op, s, "prepare");
        r = d->prepare(s, &u->op, &e);
        if (op_begun(s, r, ACT_PREPARE))
            return 0;
    }
    return prepared(s, r, &e);
}

/* The prepare said r: the variables, the spawn, then readiness. */
static int prepared(struct svc *s, int r, terr *e)
{
    long long t0 = RUN(s)->prep_t0;
    if (r == 0)
        r = svc_compute_vars(s, e);
    long long t1 = now_ns();
    if (r == 0)
        r = svc_spawn(s, e);
    if (r < 0) {
        s->err = *e;
        s->state = SVC_EXITED;
        save_state();
        start_failure(s);
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
        became_ready(s);
        return 0;
    }
    s->deadline_ns = now_ns() + s->conf->timeout_ns;
    if (s->ready_fd >= 0)
        ep_add(s->ready_fd, EPOLLIN, EV(T_READY, s - H.in.svcs));
    save_state();
    if (s->conf->ready == READY_NONE)
        became_ready(s);
    return 0;
}

static void start_ready_ones(void)
{
    for (size_t i = 0; i < H.in.n_svcs && !H.start_failed; i++) {
        struct svc *s = &H.in.svcs[i];
        if (s->state == SVC_PENDING && deps_ready(s))
            (void)start_svc(s); /* a failure is reported by start_failure() */
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

static void stop_svc(struct svc *s, enum then then);

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
    if (s->restarting)
        answer(s, "ERR %s", s->err.msg);
    stop_svc(s, THEN_NOTHING);
    fail_start(s);
}

/* What a readiness check said: ready, not yet, or failed.  Another
 * process listening on an auto port won a race for it (a local user can
 * bind a port the moment tether picks it): try another port, once the
 * attempt on this one has stopped. */
static void ready_result(struct svc *s, int r)
{
    if (r == 0) {
        became_ready(s);
        return;
    }
    if (r == -EAGAIN)
        return;
    if (r == -EADDRINUSE && may_retry_port(s)) {
        drop_probe(s);
        struct run *u = RUN(s);
        free(u->retry_why);
        u->retry_why = s->taken_by == (uid_t)-1
                           ? xstrdup("was taken by another process")
                           : xasprintf("was taken by uid %u", (unsigned)s->taken_by);
        stop_svc(s, THEN_RETRY_PORT);
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

static bool reply_if_crashed(struct svc *s, int *c);

static void main_exited(struct svc *s, int status)
{
    s->exit_status = status;
    enum svc_state was = s->state;
    s->state = SVC_EXITED;
    struct run *u = RUN(s);
    bool op_for_reset = u->resetting && (u->act != ACT_NONE || u->reset_queued);
    op_drop(s); /* a probe, health check or reset of a server that is gone */
    if (op_for_reset) { /* its client hears that it crashed */
        int c = s->pending_client;
        s->pending_client = -1;
        reply_if_crashed(s, &c);
        u->resetting = u->reset_queued = false;
    }
    if (s->ready_fd >= 0) {
        ep_del(s->ready_fd);
        ready_teardown(s);
    }
    save_state();
    if (H.stopping)
        return;
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
    start_failure(s);
}

static void reset_done(struct svc *s, int status)
{
    s->reset_pid = 0;
    s->deadline_ns = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        reset_outcome(s, NULL);
        answer(s, "OK reset");
        return;
    }
    _cleanup_sb_ strbuf why = {0};
    describe_status(&why, status);
    svc_fail(s, "reset command (%s) %s", s->conf->reset, why.s);
    reset_outcome(s, s->err.msg);
    answer(s, "ERR %s", s->err.msg);
}

static void stopped(struct svc *s);

static void reap(void)
{
    for (;;) {
        int status;
        /* the children of ops (job.h) are not seen here: no __WALL */
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < H.in.n_svcs; i++) {
            struct svc *s = &H.in.svcs[i];
            if (pid == s->pid) {
                s->pid = 0;
                if (s->state != SVC_STOPPING) {
                    main_exited(s, status);
                } else {
                    kill(-pid, SIGKILL); /* stragglers of the group */
                    s->exit_status = status;
                    stopped(s);
                }
            } else if (pid == s->probe_pid) {
                s->probe_pid = 0;
                if (s->state == SVC_STARTING && !H.stopping)
                    ready_result(s, ready_exec_done(s, status));
            } else if (pid == s->reset_pid) {
                reset_done(s, status);
            }
        }
        /* anything else: an adopted orphan, now reaped */
    }
}

/* ---- stopping ---- */

/* Send the stop signal (to the whole process group: workers die with their
 * master) and go on at once: STOPPING until SIGCHLD says it exited, with
 * SIGKILL at stop_timeout (on_timer).  then: what follows its exit. */
static void stop_svc(struct svc *s, enum then then)
{
    struct run *u = RUN(s);
    op_drop(s);
    u->then = then;
    if (s->pid <= 0) { /* nothing runs (preparing, exited, external) */
        if (s->state == SVC_STARTING || s->state == SVC_READY)
            s->state = SVC_EXITED;
        stopped(s);
        return;
    }
    if (s->state == SVC_STOPPING) /* already on its way: the deadline stands */
        return;
    if (s->ready_fd >= 0) {
        ep_del(s->ready_fd);
        ready_teardown(s);
    }
    s->state = SVC_STOPPING;
    pid_t pid = s->pid;
    int sig = s->conf->stop_signal;
    /* the whole process group: workers die with their master (unless a
     * recipe says its master stops them: stop_group = no) */
    if (s->conf->stop_pid_only || kill(-pid, sig) < 0)
        kill(pid, sig);
    u->killed = sig == SIGKILL;
    /* after a SIGKILL, 10 s for the kernel to deliver it, then we give up */
    u->stop_deadline_ns = now_ns() + (u->killed ? 10LL * 1000000000LL : s->conf->stop_timeout_ns);
    save_state();
}

/* SIGKILL now: a stop past its stop_timeout, or the shutdown of a service
 * whose stop was already under way. */
static void kill_svc(struct svc *s)
{
    struct run *u = RUN(s);
    kill(-s->pid, SIGKILL);
    kill(s->pid, SIGKILL);
    u->killed = true;
    u->stop_deadline_ns = now_ns() + 10LL * 1000000000LL;
}

/* A stop past its deadline: SIGKILL, or, 10 s after it, give the process
 * up (the shutdown's kill of every descendant still gets it). */
static void stop_overdue(struct svc *s)
{
    struct run *u = RUN(s);
    if (!u->killed) {
        kill_svc(s);
        return;
    }
    svc_log(s, "pid %d did not die within 10 s of SIGKILL; giving up on it", (int)s->pid);
    s->pid = 0;
    stopped(s);
}

/* A stopping service has exited (or had nothing to stop): what follows. */
static void stopped(struct svc *s)
{
    struct run *u = RUN(s);
    if (s->state == SVC_STOPPING)
        s->state = SVC_EXITED;
    u->stop_deadline_ns = 0;
    u->killed = false;
    save_state();
    enum then then = u->then;
    u->then = THEN_NOTHING;
    if (H.stopping)
        return;
    if (then == THEN_RESTART) {
        s->state = SVC_PENDING;
        (void)start_svc(s); /* its reply comes with ready, or start_failure() */
    } else if (then == THEN_RETRY_PORT) {
        if (retry_port(s, u->retry_why ? u->retry_why : "was taken") < 0)
            ready_failed(s);
    }
}

/* As a child subreaper we are the parent of every descendant whose own
 * parent died, double-forkers and setsid escapers included: our children
 * are all there is.  (Scanning /proc for the cookie is gc's job, for when
 * we are dead: reading other processes' environ can stall for tens of
 * milliseconds while they exec.)  Once the loop is done: SIGKILLed
 * processes are reaped at once. */
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
        /* reap what we killed (blocking: they are dying); __WALL: a job's
         * child (job.h) a driver left behind too */
        while (n > 0) {
            int st;
            pid_t p = waitpid(-1, &st, __WALL);
            if (p < 0)
                break;
            n--;
        }
        while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
            ;
    }
}

/* Whether a service that runs after s (after = s) still has a process. */
static bool needed(const struct svc *s)
{
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        const struct svc *t = &H.in.svcs[i];
        if (t == s || t->pid <= 0)
            continue;
        for (size_t k = 0; k < t->conf->after.n; k++)
            if (strcasecmp(t->conf->after.v[k], s->conf->label) == 0)
                return true;
    }
    return false;
}

/* Enter the shutdown phase: every op cancelled, every waiting client
 * answered, a stop already under way finished with SIGKILL. */
static void begin_shutdown(void)
{
    if (H.stopping)
        return;
    H.stopping = true;
    for (size_t i = H.in.n_svcs; i-- > 0;) {
        struct svc *s = &H.in.svcs[i];
        op_drop(s);
        drop_probe(s);
        if (s->reset_pid > 0)
            kill(-s->reset_pid, SIGKILL);
        RUN(s)->then = THEN_NOTHING;
        if (s->state == SVC_STOPPING && s->pid > 0)
            kill_svc(s);
        if (s->pending_client >= 0)
            answer(s, "ERR the instance is shutting down (%s)",
                   H.why_stop ? H.why_stop : "stopped");
    }
    status_maybe_answer();
}

/* One step of the shutdown: stop what nothing still running needs.  True
 * once every service's process is gone. */
static bool shutdown_step(void)
{
    bool left = false;
    for (size_t i = H.in.n_svcs; i-- > 0;) {
        struct svc *s = &H.in.svcs[i];
        if (s->pid <= 0)
            continue;
        left = true;
        if (s->state != SVC_STOPPING && !needed(s))
            stop_svc(s, THEN_NOTHING);
    }
    return !left;
}

/* After the loop: what is left of the process tree, then the drivers'
 * cleanup (synchronous and bounded, driver.h). */
static int shutdown_all(void)
{
    int ret = 0;
    for (size_t i = 0; i < H.in.n_svcs && H.run; i++) {
        struct svc *s = &H.in.svcs[i];
        op_drop(s);
        if (s->pid > 0) { /* a loop that ended early (set-up, epoll) */
            kill(-s->pid, SIGKILL);
            kill(s->pid, SIGKILL);
        }
    }
    kill_descendants();
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct svc *s = &H.in.svcs[i];
        s->pid = 0;
        if (s->state != SVC_PENDING)
            s->state = SVC_EXITED;
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
        warn("instance %s could not be kept as it should (gc may not retry its cleanup): %s",
             H.in.dir, e.msg);
    return 2;
}

/* Keep the instance for the user to look at (--keep-failed): its logs and
 * data stay, its processes are gone like those of any stopped instance.
 * If the note cannot be written, gc would take it for a stale instance:
 * then it goes now, and the starter hears why. */
static int keep_failed_instance(void)
{
    terr e;
    save_state(); /* every service stopped: list says so */
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
    terr e;
    int r = root < 0 ? terr_set(&e, errno, "cannot open %s: %m", H.in.state_dir)
                     : instance_remove(root, H.in.id, &e);
    if (root >= 0)
        close(root);
    if (r < 0)
        warn("could not remove instance %s: %s; `tether gc` removes what is left", H.in.dir,
             e.msg);
    return r < 0 ? 2 : 0;
}

/* ---- control socket ---- */

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
            keep_for("[%s] died while the command ran", H.in.svcs[i].conf->label);
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

/* ---- status: health checks as ops, one answer once all are in ---- */

static void status_line(strbuf *b, struct svc *s)
{
    struct run *u = RUN(s);
    const char *label = s->conf->label;
    if (u->resetting) {
        char t[32];
        sb_addf(b, "%s resetting (pid %d) for %s so far; its client waits for it\n", label,
                (int)s->pid, progress_since(t, u->reset_since));
    } else if (s->state == SVC_READY && u->health_r == 0 && s->reset_err) {
        sb_addf(b, "%s unhealthy the last reset failed (reset it again): %s\n", label,
                s->reset_err);
    } else if (s->state == SVC_READY && u->health_r == 0) {
        sb_addf(b, "%s ready %d\n", label, (int)s->pid);
    } else if (s->state == SVC_READY) {
        one_line(u->health_err.msg); /* libpq's messages end in a newline */
        sb_addf(b, "%s unhealthy %s\n", label, u->health_err.msg);
    } else if (s->state == SVC_EXITED) {
        sb_addf(b, "%s dead ", label);
        describe_status(b, s->exit_status);
        sb_addc(b, '\n');
    } else if (s->state == SVC_STOPPING || H.stopping) {
        sb_addf(b, "%s stopping %d\n", label, (int)s->pid);
    } else {
        sb_addf(b, "%s starting %d\n", label, (int)s->pid);
    }
}

/* Answer every waiting `status` once no health check for it is in flight. */
static void status_maybe_answer(void)
{
    if (!H.n_status_waiters || !H.run)
        return;
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct run *u = RUN(&H.in.svcs[i]);
        if ((u->act == ACT_HEALTH && u->health_for_status) || u->health_wanted)
            return;
    }
    strbuf b = {0};
    sb_add(&b, "OK\n");
    for (size_t i = 0; i < H.in.n_svcs; i++)
        status_line(&b, &H.in.svcs[i]);
    for (size_t k = 0; k < H.n_status_waiters; k++)
        reply(&H.status_waiters[k], "%s", b.s);
    H.n_status_waiters = 0;
    sb_free(&b);
}

/* A health check said r (e why). */
static void health_known(struct svc *s, int r, const terr *e)
{
    struct run *u = RUN(s);
    u->health_r = r;
    if (r < 0)
        u->health_err = *e;
}

/* A health check of s for the waiting `status` requests. */
static void status_check(struct svc *s)
{
    struct run *u = RUN(s);
    terr e = {.msg = ""};
    int r = svc_health_start(s, &u->op, &e);
    if (op_begun(s, r, ACT_HEALTH))
        u->health_for_status = true;
    else
        health_known(s, r, &e);
}

/* `status`: a health check of every READY service (its op, if any, joins
 * the epoll set); the answer goes once they are all in.  A service being
 * reset answers "resetting" at once; one running a short op (after_reset:
 * PostgreSQL's spare copy) is checked when that ends, so that status never
 * answers from a check older than the question.  Nothing here waits for a
 * server. */
static void status_request(int client)
{
    reap(); /* exits queued behind this request count */
    if (H.n_status_waiters == MAX_STATUS_WAITERS) {
        int c = client;
        reply(&c, "ERR busy: %d status requests are waiting already", MAX_STATUS_WAITERS);
        return;
    }
    H.status_waiters[H.n_status_waiters++] = client;
    for (size_t i = 0; i < H.in.n_svcs && !H.stopping; i++) {
        struct svc *s = &H.in.svcs[i];
        struct run *u = RUN(s);
        if (s->state != SVC_READY || u->resetting)
            continue;
        if (u->act == ACT_NONE)
            status_check(s);
        else if (!(u->act == ACT_HEALTH && u->health_for_status))
            u->health_wanted = true; /* after_reset: its end, then a check */
    }
    status_maybe_answer();
}

/* The op a `status` waited for ended: now its check, unless a reset came
 * first (then it says "resetting"). */
static void status_check_wanted(struct svc *s)
{
    struct run *u = RUN(s);
    if (!u->health_wanted || u->act != ACT_NONE)
        return;
    u->health_wanted = false;
    if (s->state == SVC_READY && !u->resetting && !H.stopping)
        status_check(s);
    status_maybe_answer();
}

/* ---- reset: resetting until its op, command or restart ends ---- */

static void reset_go(struct svc *s);
static void reset_begin(struct svc *s);
static bool health_checked(struct svc *s, int r, terr *e);

/* A failure with the service still running: a process killed a moment
 * ago closes its sockets before it becomes a zombie, so wait up to 200 ms
 * for its exit (an op on its pidfd: nothing blocks) and say "crashed" if
 * it comes, else what failed. */
static int exits_soon_step(struct op *op, bool timed_out, terr *e)
{
    (void)timed_out;
    (void)e;
    close(op->fd);
    return 0;
}

static void fail_reply(struct svc *s, const terr *why, bool reset_failed)
{
    struct run *u = RUN(s);
    u->fail = *why;
    u->fail_is_reset = reset_failed;
    int pfd = s->pid > 0 ? proc_pidfd_open(s->pid) : -1;
    if (pfd >= 0) {
        op_init(&u->op, s, "a look at whether it exits");
        u->op.fd = pfd;
        u->op.deadline_ns = now_ns() + 200000000LL;
        u->op.step = exits_soon_step;
        (void)op_begun(s, OP_STARTED, ACT_EXITS_SOON);
        return;
    }
    terr e = {.msg = ""};
    op_finished(s, ACT_EXITS_SOON, 0, &e);
}

static void failed_for_good(struct svc *s)
{
    struct run *u = RUN(s);
    reap();
    if (u->fail_is_reset)
        reset_outcome(s, u->fail.msg);
    int c = s->pending_client;
    s->pending_client = -1;
    if (!reply_if_crashed(s, &c))
        reply(&c, "ERR %s", u->fail.msg);
    u->resetting = false;
}

static void reset_request(int client, const char *label, bool can_wait)
{
    struct svc *s = svc_by_label(label);
    int c = client;
    if (!s) {
        reply(&c, "ERR no service '%s' in this instance", label);
        return;
    }
    struct run *u = RUN(s);
    /* a SIGCHLD may be queued behind this request: a crash must read
     * as a crash, not as whatever the health check stumbles on */
    reap();
    if (H.stopping) {
        reply(&c, "ERR the instance is shutting down (%s)", H.why_stop ? H.why_stop : "stopped");
        return;
    }
    if (reply_if_crashed(s, &c))
        return;
    if (u->resetting || s->pending_client >= 0 || s->state != SVC_READY) {
        reply(&c, "ERR [%s] is busy (starting or being reset)", s->conf->label);
        return;
    }
    if (svc_native_reset(s) || s->conf->reset_restart || s->conf->reset)
        promise(client, can_wait, reset_budget_ns(s));
    s->pending_client = client;
    u->resetting = true;
    u->reset_since = now_ns();
    if (u->act != ACT_NONE) { /* after_reset, or a status's health check */
        u->reset_queued = true;
        return;
    }
    reset_begin(s);
}

/* The health check first, unless the driver's reset finds out by doing. */
static void reset_begin(struct svc *s)
{
    struct run *u = RUN(s);
    const struct tether_driver *d = s->conf->driver;
    bool native = svc_native_reset(s) != NULL; /* the driver's, or reset = send:... */
    u->reset_queued = false;
    u->reset_checked = !(native && !s->conf->reset_proto && d->reset_checks_health);
    u->reset_t0 = now_ns();
    if (!u->reset_checked) {
        reset_go(s);
        return;
    }
    terr e = {.msg = ""};
    int r = svc_health_start(s, &u->op, &e);
    u->health_for_status = false;
    if (!op_begun(s, r, ACT_HEALTH))
        (void)health_checked(s, r, &e);
}

static void reset_go(struct svc *s)
{
    struct run *u = RUN(s);
    svc_op_fn native = svc_native_reset(s); /* the driver's, or reset = send:... */
    terr e = {.msg = ""};
    u->reset_t1 = now_ns();
    if (native) {
        op_init(&u->op, s, "reset");
        int r = native(s, &u->op, &e);
        if (op_begun(s, r, ACT_RESET)) {
            if (!u->op.deadline_ns)
                u->op.deadline_ns = now_ns() + s->conf->timeout_ns;
            return;
        }
        op_finished(s, ACT_RESET, r, &e);
        return;
    }
    if (s->conf->reset_restart) {
        s->restarting = true;
        stop_svc(s, THEN_RESTART);
        return;
    }
    if (s->conf->reset) {
        if (svc_run_command(s, s->conf->reset, &s->reset_pid, &e) < 0) {
            answer(s, "ERR %s", e.msg);
            return;
        }
        s->deadline_ns = now_ns() + s->conf->timeout_ns;
        return;
    }
    answer(s, "OK nothing to reset");
}

static void reset_finished(struct svc *s, int r, terr *e)
{
    struct run *u = RUN(s);
    const struct tether_driver *d = s->conf->driver;
    if (r < 0) {
        fail_reply(s, e, true);
        return;
    }
    reset_outcome(s, NULL);
    /* a reset that worked talked to the server: a health check that passed
     * (status answers from it while after_reset keeps the service busy,
     * not from an older failed one) */
    health_known(s, 0, NULL);
    /* the lines after the first: the steps, for -v */
    char a[32], b[32];
    progress_time(a, u->reset_t1 - u->reset_t0);
    progress_since(b, u->reset_t1);
    if (u->reset_checked)
        answer(s, "OK reset\nhealth check in %s\nreset in %s", a, b);
    else
        answer(s, "OK reset\nreset in %s", b);
    if (!d->after_reset || s->conf->reset_proto)
        return;
    terr ae = {.msg = ""};
    op_init(&u->op, s, "after reset");
    int ar = d->after_reset(s, &u->op, &ae);
    if (op_begun(s, ar, ACT_AFTER_RESET))
        return;
    if (ar < 0)
        warn_svc(s, "after its reset", &ae);
}

/* A health check's outcome (after svc_health_done): for status, or for a
 * reset (true: the reset took it on). */
static bool health_checked(struct svc *s, int r, terr *e)
{
    struct run *u = RUN(s);
    health_known(s, r, e);
    if (u->health_for_status) {
        u->health_for_status = false;
        status_maybe_answer();
        return false;
    }
    if (!u->resetting)
        return false;
    if (r < 0)
        fail_reply(s, e, false);
    else
        reset_go(s);
    return true;
}

/* What an op of the service said: the state moves on. */
static void op_finished(struct svc *s, enum act act, int r, terr *e)
{
    struct run *u = RUN(s);
    switch (act) {
    case ACT_NONE:
        break;
    case ACT_PREPARE:
        (void)prepared(s, r, e);
        break;
    case ACT_PROBE: /* a "not yet" too: ready_describe() quotes the last one */
        if (r < 0)
            s->err = *e;
        if (s->state == SVC_STARTING)
            ready_result(s, ready_probe_done(s, r));
        break;
    case ACT_ON_READY:
        mark_ready(s, r, e);
        break;
    case ACT_HEALTH:
        if (health_checked(s, svc_health_done(s, r, e), e))
            return;
        break;
    case ACT_RESET:
        reset_finished(s, r, e);
        return;
    case ACT_AFTER_RESET:
        if (r < 0)
            warn_svc(s, "after its reset", e);
        break;
    case ACT_EXITS_SOON:
        failed_for_good(s);
        break;
    }
    if (u->reset_queued && u->act == ACT_NONE && !H.stopping)
        reset_begin(s);
    status_check_wanted(s);
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
        status_request(client);
        return;
    }
    if (strncmp(req, REQ_FINISHED, strlen(REQ_FINISHED)) == 0) {
        finished(client, atoi(req + strlen(REQ_FINISHED)));
        return;
    }
    if (strncmp(req, "reset ", 6) == 0) {
        reset_request(client, req + 6, can_wait);
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

static void earliest(long long *next, long long t)
{
    if (t && (!*next || t < *next))
        *next = t;
}

/* The timer: the next readiness probe or deadline, op deadline, stop
 * deadline or reset command deadline. */
static void arm_timer(void)
{
    long long next = 0;
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct svc *s = &H.in.svcs[i];
        struct run *u = RUN(s);
        if (op_busy(&u->op))
            earliest(&next, u->op.deadline_ns);
        if (s->state == SVC_STOPPING)
            earliest(&next, u->stop_deadline_ns);
        if (s->reset_pid > 0 && s->deadline_ns && (!next || s->deadline_ns < next))
            next = s->deadline_ns;
        if (s->state != SVC_STARTING || H.stopping)
            continue;
        earliest(&next, s->deadline_ns); /* a probe op in flight too: it ends there */
        if (u->act != ACT_NONE)
            continue;
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
    answer(s, "ERR %s", s->err.msg);
}

/* A readiness deadline passed (a probe op in flight is dropped with it). */
static void ready_overdue(struct svc *s)
{
    _cleanup_free_ char *how = ready_describe(s);
    double secs = (double)s->conf->timeout_ns / 1e9;
    svc_fail(s, "did not become ready within %g s (ready = %s); raise timeout = or fix "
             "its readiness check",
             secs, how);
    if (s->restarting)
        answer(s, "ERR %s", s->err.msg);
    stop_svc(s, THEN_NOTHING);
    fail_start(s);
}

static void on_timer(void)
{
    uint64_t x;
    ssize_t n = read(H.timerfd, &x, sizeof(x));
    (void)n;
    long long now = now_ns();
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        struct svc *s = &H.in.svcs[i];
        struct run *u = RUN(s);
        if (op_busy(&u->op) && u->op.deadline_ns && now >= u->op.deadline_ns)
            op_event(s, true);
        if (s->state == SVC_STOPPING && u->stop_deadline_ns && now >= u->stop_deadline_ns)
            stop_overdue(s);
        if (s->reset_pid > 0 && s->deadline_ns && now >= s->deadline_ns)
            reset_overdue(s);
        if (s->state != SVC_STARTING || H.stopping || u->act == ACT_PREPARE)
            continue;
        if (s->deadline_ns && now >= s->deadline_ns) {
            ready_overdue(s);
            continue;
        }
        if (u->act == ACT_NONE && s->next_probe_ns && now >= s->next_probe_ns) {
            int r = ready_probe(s, &u->op);
            if (!op_begun(s, r, ACT_PROBE) && r != -EAGAIN)
                ready_result(s, r);
        }
    }
}

/* SIGCHLD reaps; SIGTERM, SIGINT, SIGHUP: why to stop (NULL: keep on). */
static const char *on_signal(void)
{
    struct signalfd_siginfo si;
    const char *why = NULL;
    while (read(H.sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            reap();
        else
            why = si.ssi_signo == SIGTERM ? "SIGTERM"
                  : si.ssi_signo == SIGINT ? "SIGINT"
                                           : "SIGHUP";
    }
    return why;
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
        H.watchfd = proc_pidfd_open(o->watch_pid);
        if (H.watchfd < 0)
            return terr_set(e, -H.watchfd, "--watch-pid %d: %s", (int)o->watch_pid,
                            strerror(-H.watchfd));
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
    /* warnings: on run's terminal, or in our log beside the instance
     * (hlog.h), which outlives it */
    if (o->foreground)
        warn_to(fcntl(2, F_DUPFD_CLOEXEC, 3));
    else if ((r = open(H.in.state_dir, O_DIRECTORY | O_CLOEXEC)) >= 0) {
        _cleanup_free_ char *name = hlog_name(H.in.id);
        warn_to_file(r, name);
    }
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
    H.run = xcalloc(o->nsel, sizeof(struct run));
    for (size_t i = 0; i < o->nsel; i++) {
        op_init(&H.run[i].op, &H.in.svcs[i], NULL);
        H.run[i].fd_reg = -1;
    }
    for (size_t i = 0; i < o->nsel; i++) {
        H.in.n_svcs = i + 1;
        if ((r = svc_init(&H.in.svcs[i], &H.in, o->sel[i], e)) < 0)
            return r;
    }
    save_state();
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
        if (!H.stopping && H.start_failed)
            begin_shutdown();
        /* start what became startable first: a service that is ready at
         * once (ready = none) must count before we go back to sleep */
        if (!H.stopping && H.phase == PH_STARTING)
            start_ready_ones();
        if (!H.stopping && H.start_failed)
            begin_shutdown();
        if (!H.stopping && H.phase == PH_STARTING && all_ready()) {
            H.phase = PH_RUNNING;
            H.in.name_logs = true; /* they live as long as we run */
            if (!send_status()) {
                H.why_stop = "the starting command went away";
                begin_shutdown();
            }
        }
        if (H.stopping && shutdown_step())
            break;
        arm_timer();
        struct epoll_event evs[16];
        int n = epoll_wait(H.ep, evs, 16, -1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            uint32_t tag = (uint32_t)(evs[i].data.u64 >> 32);
            uint32_t idx = (uint32_t)evs[i].data.u64;
            const char *why = NULL;
            switch (tag) {
            case T_SIGNAL:
                why = on_signal();
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
                    why = "the owner went away";
                    ep_del(o->lease_fd); /* hung up: it would wake us forever */
                }
                break;
            }
            case T_WATCH:
                why = idx ? "expired" : "the watched process exited";
                ep_del(idx ? -1 : H.watchfd);
                break;
            case T_STATUS: {
                char ack = 0;
                if (H.phase == PH_RUNNING && read(o->status_fd, &ack, 1) == 1 && ack == 'A') {
                    ep_del(o->status_fd);
                    close(o->status_fd);
                    o->status_fd = -1;
                    break;
                }
                why = "the starting command went away before it handed the variables on";
                ep_del(o->status_fd);
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
                if (s->state != SVC_STARTING || s->ready_fd < 0 || H.stopping)
                    break;
                ready_result(s, ready_on_event(s));
                break;
            }
            case T_OP:
                if (idx < H.in.n_svcs)
                    op_event(&H.in.svcs[idx], false);
                break;
            }
            if (why && !H.stopping) {
                H.why_stop = why;
                begin_shutdown();
            }
        }
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
    for (size_t i = 0; i < H.in.n_svcs; i++) {
        svc_free(&H.in.svcs[i]);
        free(H.run[i].retry_why);
    }
    free(H.in.svcs);
    free(H.run);
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
            progress_replay(rec + 1);
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
