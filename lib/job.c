/* Jobs and workers: slow work in a child of the helper, as ops (job.h). */
#include <dirent.h>
#include <errno.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "instance.h"
#include "job.h"
#include "proc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#define MSG_MAX 65536

static const char *label_of(const struct svc *s)
{
    return s && s->conf ? s->conf->label : "tether";
}

/* ---- the child's side ---- */

void job_reply(struct job *j, int r, const terr *e)
{
    if (j->replied)
        return;
    strbuf b = {0};
    sb_addf(&b, "%d", r);
    sb_addc(&b, '\0');
    sb_add(&b, r < 0 && e ? e->msg : "");
    sb_addc(&b, '\0');
    for (size_t i = 0; i + 1 < j->out.n; i += 2) {
        sb_add(&b, j->out.v[i]);
        sb_addc(&b, '\0');
        sb_add(&b, j->out.v[i + 1]);
        sb_addc(&b, '\0');
    }
    size_t len = b.len < MSG_MAX ? b.len : MSG_MAX;
    while (send(j->sock, b.s, len, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
    sb_free(&b);
    j->replied = true;
}

/* The child keeps only what the job needs (see job.h). */
static void close_fds_except(const int *keep, size_t n_keep)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    /* an fd at or above the soft limit was not opened by us: valgrind keeps
     * its log and its own files there, and a child that closed them would
     * end without its report */
    struct rlimit rl;
    long limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                     ? (long)rl.rlim_cur
                     : -1;
    int self = dirfd(d);
    int fds[1024];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < ARRAY_SIZE(fds)) {
        int fd = atoi(de->d_name);
        bool k = fd <= 2 || fd == self || de->d_name[0] == '.' || (limit > 0 && fd >= limit);
        for (size_t i = 0; i < n_keep && !k; i++)
            k = fd == keep[i];
        if (!k)
            fds[n++] = fd;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/* clone3 with no exit signal and a pidfd: see job.h.  -ENOSYS on a kernel
 * without clone3 (before 5.3): then fork(), which the helper's catch-all
 * may reap first (job_wait takes ECHILD as "gone"). */
static pid_t clone_quiet(int *pidfd)
{
    pid_t pid = proc_fork_pidfd(pidfd); /* proc.c: the one place that opens pidfds */
    if (pid < 0)
        errno = -pid;
    return pid < 0 ? -1 : pid;
}

pid_t job_fork(struct svc *s, int *sock, int *pidfd, const int *keep, size_t n_keep, terr *e)
{
    int sv[2] = {-1, -1};
    if (sock && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return terr_set(e, errno, "[%s] socketpair: %m", label_of(s));
    pid_t parent = getpid();
    int pfd = -1;
    pid_t pid = clone_quiet(&pfd);
    if (pid < 0) {
        int r = terr_set(e, errno, "[%s] cannot fork a job: %m", label_of(s));
        if (sock) {
            close(sv[0]);
            close(sv[1]);
        }
        return r;
    }
    if (pid > 0) {
        *pidfd = pfd; /* close-on-exec, as every pidfd is made */
        if (sock) {
            close(sv[1]);
            *sock = sv[0];
        }
        return pid;
    }
    /* the helper's death ends the child (and, through theirs, its own) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
        _exit(3);
    int kept[16];
    size_t n = 0;
    if (sock) {
        close(sv[0]);
        kept[n++] = *sock = sv[1];
    }
    for (size_t i = 0; i < n_keep && n < ARRAY_SIZE(kept); i++)
        kept[n++] = keep[i];
    close_fds_except(kept, n);
    return 0;
}

/* Reap pid if it has exited: 1 and its status, 0 still running. */
static int job_reaped(pid_t pid, int pidfd, int *status)
{
    int r = proc_pidfd_reap(pidfd, pid, false, status);
    if (r < 0) { /* ECHILD: reaped by another (the fork() fallback) */
        *status = 0;
        return 1;
    }
    return r;
}

void job_kill(pid_t pid, int pidfd)
{
    if (pid <= 0)
        return;
    if (pidfd >= 0)
        (void)proc_pidfd_signal(pidfd, SIGKILL);
    else
        kill(pid, SIGKILL);
    (void)proc_pidfd_reap(pidfd, pid, true, NULL);
    if (pidfd >= 0)
        close(pidfd);
}

_Noreturn static void job_child(struct svc *s, job_fn fn, void *arg, int sock)
{
    struct job j = {.s = s, .arg = arg, .sock = sock};
    terr e = {0};
    int r = fn(&j, &e);
    job_reply(&j, r, &e);
    _exit(r < 0 ? 1 : 0);
}

/* A reply into r (and e) and the pairs into out. */
static int parse(const struct svc *s, char *buf, size_t len, strv *out, terr *e)
{
    const char *end = buf + len;
    char *p = buf;
    const char *f[2];
    for (int i = 0; i < 2; i++) {
        char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            return terr_set(e, EPROTO, "[%s] a malformed reply from a job", label_of(s));
        f[i] = p;
        p = z + 1;
    }
    int r = atoi(f[0]);
    if (r < 0)
        terr_set(e, -r, "%s", f[1]);
    while (out && p < end) {
        char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            break;
        strv_push(out, p);
        p = z + 1;
    }
    return r;
}

/* ---- a job as an op ---- */

struct call;
static int call_step(struct op *op, bool timed_out, terr *e);

struct job_op {
    pid_t pid;
    int pidfd;
    int sock;     /* -1 once the reply (or EOF) came */
    bool got;     /* a reply came: r, e and out are its */
    int r;
    terr e;
    strv out;
    job_then_fn then;
    void *ud;
};

static void job_op_free(struct job_op *d)
{
    if (d->sock >= 0)
        close(d->sock);
    if (d->pidfd >= 0)
        close(d->pidfd);
    strv_free(&d->out);
    free(d);
}

static void job_cancel(struct op *op)
{
    struct job_op *d = op->data;
    job_kill(d->pid, d->pidfd);
    d->pidfd = -1;
    job_op_free(d);
}

/* The end of a job op: its result through the completion. */
static int job_finish(struct op *op, struct job_op *d, int r, terr *e)
{
    job_then_fn then = d->then;
    void *ud = d->ud;
    strv out = d->out;
    d->out = (strv){0};
    job_op_free(d);
    op->data = NULL;
    op->pid = 0;
    op->fd = -1;
    op->deadline_ns = 0;
    if (then) {
        r = then(op, r, &out, ud, e);
        if (r == OP_STARTED)
            r = OP_PENDING; /* then() chained another op on this one */
    }
    strv_free(&out);
    return r;
}

static int job_step(struct op *op, bool timed_out, terr *e)
{
    struct job_op *d = op->data;
    const char *label = label_of(op->s);
    if (timed_out) {
        pid_t pid = d->pid;
        job_kill(d->pid, d->pidfd);
        d->pidfd = -1;
        terr_set(e, ETIMEDOUT, "[%s] %s did not finish in time: its process (pid %d) was "
                 "killed", label, op->what ? op->what : "a job", (int)pid);
        return job_finish(op, d, -ETIMEDOUT, e);
    }
    if (d->sock >= 0) {
        char *buf = xmalloc(MSG_MAX);
        ssize_t n = recv(d->sock, buf, MSG_MAX, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            free(buf);
            return OP_PENDING;
        }
        if (n > 0 && !d->got) {
            d->got = true;
            d->r = parse(op->s, buf, (size_t)n, &d->out, &d->e);
        }
        free(buf);
        /* no pidfd (valgrind has neither clone3 nor pidfd_open): the
         * socket's EOF, when the child's end closes at its exit, is the
         * event to wait for instead */
        if (n > 0 && d->pidfd < 0)
            return OP_PENDING;
        close(d->sock);
        d->sock = -1;
    }
    int status;
    if (!job_reaped(d->pid, d->pidfd, &status)) {
        if (d->pidfd < 0) /* its end of the socket closed: it is exiting now */
            proc_pidfd_reap(-1, d->pid, true, &status);
        else {
            op->fd = d->pidfd; /* replied: wait for its exit (readable then) */
            return OP_PENDING;
        }
    }
    if (d->got) {
        *e = d->e;
        return job_finish(op, d, d->r, e);
    }
    terr_set(e, EIO, "[%s] %s: its process (pid %d) died without a word (%s %d)", label,
             op->what ? op->what : "a job", (int)d->pid,
             WIFSIGNALED(status) ? "signal" : "status",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return job_finish(op, d, -EIO, e);
}

int job_start(struct op *op, struct svc *s, job_fn fn, void *arg, const int *keep,
              size_t n_keep, terr *e)
{
    int sock = -1, pidfd = -1;
    pid_t pid = job_fork(s, &sock, &pidfd, keep, n_keep, e);
    if (pid < 0)
        return pid;
    if (pid == 0)
        job_child(s, fn, arg, sock);
    struct job_op *d = xcalloc(1, sizeof(*d));
    d->pid = pid;
    d->pidfd = pidfd;
    d->sock = sock;
    op->s = s;
    op->fd = sock;
    op->pid = pid;
    op->data = d;
    op->step = job_step;
    op->cancel = job_cancel;
    op->deadline_ns = 0;
    if (!op->what)
        op->what = "a job";
    return OP_STARTED;
}


static int copy_out(struct op *op, int r, const strv *out, void *ud, terr *e)
{
    (void)op;
    (void)e;
    strv *dst = ud;
    for (size_t i = 0; dst && i < out->n; i++)
        strv_push(dst, out->v[i]);
    return r;
}

int job_run(struct svc *s, job_fn fn, void *arg, const int *keep, size_t n_keep,
            long long timeout_ns, strv *out, terr *e)
{
    struct op op;
    op_init(&op, s, "a job");
    int r = job_start(&op, s, fn, arg, keep, n_keep, e);
    if (r < 0)
        return r;
    job_then(&op, copy_out, out);
    if (timeout_ns > 0)
        op.deadline_ns = now_ns() + timeout_ns;
    return op_run_blocking(&op, e);
}

/* ---- workers ---- */

_Noreturn static void worker_child(struct svc *s, worker_fn serve, int sock)
{
    void *state = NULL;
    char req[1024];
    { /* its warm-up, before any request: nobody waits for it */
        struct job j = {.s = s, .arg = &state, .sock = sock, .replied = true};
        terr e = {0};
        (void)serve(&j, NULL, &e);
    }
    for (;;) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int n = poll(&p, 1, WORKER_IDLE_MS);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        ssize_t len = recv(sock, req, sizeof(req) - 1, 0);
        if (len <= 0)
            break;
        req[len] = '\0';
        struct job j = {.s = s, .arg = &state, .sock = sock};
        terr e = {0};
        int r = serve(&j, req, &e);
        job_reply(&j, r, &e);
        strv_free(&j.out);
    }
    _exit(0);
}

void worker_init(struct worker *w, struct svc *s, worker_fn serve)
{
    *w = (struct worker){.s = s, .serve = serve, .fd = -1, .pidfd = -1};
}

void worker_stop(struct worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    job_kill(w->pid, w->pidfd);
    w->pid = 0;
    w->pidfd = -1;
    w->busy = false;
}

int worker_spawn(struct worker *w, terr *e)
{
    int status;
    if (w->fd >= 0 && !job_reaped(w->pid, w->pidfd, &status))
        return 0;
    if (w->fd >= 0) { /* it left for being idle: reaped just now */
        close(w->fd);
        if (w->pidfd >= 0)
            close(w->pidfd);
        w->fd = w->pidfd = -1;
        w->pid = 0;
    }
    int sock = -1, pidfd = -1;
    pid_t pid = job_fork(w->s, &sock, &pidfd, NULL, 0, e);
    if (pid < 0)
        return pid;
    if (pid == 0)
        worker_child(w->s, w->serve, sock);
    w->fd = sock;
    w->pid = pid;
    w->pidfd = pidfd;
    return 0;
}

struct call {
    struct worker *w;
    char req[1024];
    bool resent;
    job_then_fn then;
    void *ud;
};

static void call_cancel(struct op *op)
{
    struct call *c = op->data;
    worker_stop(c->w); /* mid-request: its state is unknown */
    free(c);
}

static int call_send(struct worker *w, const char *req, terr *e)
{
    int r = worker_spawn(w, e);
    if (r < 0)
        return r;
    if (send(w->fd, req, strlen(req), MSG_NOSIGNAL) < 0)
        return -errno;
    return 0;
}

static int call_step(struct op *op, bool timed_out, terr *e)
{
    struct call *c = op->data;
    struct worker *w = c->w;
    const char *label = label_of(op->s);
    int r;
    if (timed_out) {
        pid_t pid = w->pid;
        worker_stop(w);
        free(c);
        op->data = NULL;
        return terr_set(e, ETIMEDOUT, "[%s] %s did not finish in time (the worker that did it, "
                        "pid %d, was killed): is the server stopped or overloaded?", label,
                        op->what ? op->what : "a request", (int)pid);
    }
    char *buf = xmalloc(MSG_MAX);
    ssize_t n = recv(w->fd, buf, MSG_MAX, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        free(buf);
        return OP_PENDING;
    }
    if (n <= 0) { /* it died, or left for being idle as the request went */
        free(buf);
        worker_stop(w);
        if (!c->resent && call_send(w, c->req, e) == 0) {
            c->resent = true;
            w->busy = true;
            op->fd = w->fd;
            op->pid = w->pid;
            return OP_PENDING;
        }
        free(c);
        op->data = NULL;
        return terr_set(e, EIO, "[%s] the worker that does %s died", label,
                        op->what ? op->what : "its requests");
    }
    strv out = {0};
    r = parse(op->s, buf, (size_t)n, &out, e);
    free(buf);
    w->busy = false;
    job_then_fn then = c->then;
    void *ud = c->ud;
    free(c);
    op->data = NULL;
    op->fd = -1;
    op->pid = 0;
    op->deadline_ns = 0;
    if (then) {
        r = then(op, r, &out, ud, e);
        if (r == OP_STARTED)
            r = OP_PENDING;
    }
    strv_free(&out);
    return r;
}

int worker_call(struct worker *w, struct op *op, const char *req, terr *e)
{
    if (w->busy)
        return terr_set(e, EBUSY, "[%s] its worker is busy", label_of(w->s));
    int r = call_send(w, req, e);
    if (r == -EPIPE || r == -ECONNRESET) { /* gone idle: another */
        worker_stop(w);
        r = call_send(w, req, e);
    }
    if (r < 0)
        return r == -EPIPE || r == -ECONNRESET
                   ? terr_set(e, EIO, "[%s] cannot reach its worker", label_of(w->s))
                   : r;
    struct call *c = xcalloc(1, sizeof(*c));
    c->w = w;
    snprintf(c->req, sizeof(c->req), "%s", req);
    w->busy = true;
    op->s = w->s;
    op->fd = w->fd;
    op->pid = w->pid;
    op->data = c;
    op->step = call_step;
    op->cancel = call_cancel;
    op->deadline_ns = 0;
    return OP_STARTED;
}

void job_then(struct op *op, job_then_fn then, void *ud)
{
    if (op->step == job_step) {
        struct job_op *d = op->data;
        d->then = then;
        d->ud = ud;
    } else { /* a worker call */
        struct call *c = op->data;
        c->then = then;
        c->ud = ud;
    }
}
