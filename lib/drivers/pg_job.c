/* Every libpq call of the helper runs in a child process.  libpq brings
 * libssl, libcrypto, GSSAPI and LDAP: loading it costs 10-15 ms and 5 MiB
 * of RSS, for as long as the helper lives, which is as long as the
 * instance.  A job (cache build, server = URL's create and drop, a
 * readiness ping) is a fork that loads it, replies and exits; resets and
 * health checks, which come often, go to a worker that stays while they
 * come (see worker()).
 *
 * i11-async: lib/job.{c,h} is this file's machinery without `struct pg`,
 * as ops (job_start, worker_call) that do not block the helper's loop.
 * This file still works as it did (blocking, reaped by the helper's
 * catch-all) until i11-pg moves postgresql onto job.h and removes it. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "../service.h"
#include "pg.h"

#define MSG_MAX 65536
/* A worker with nothing to do for this long exits: the helper is back to
 * its own small self between test sessions. */
#define WORKER_IDLE_MS 10000

/* One message: "R\0MESSAGE\0" then key\0value\0 pairs. */
void pg_job_reply(struct pg_job *j, int r, const terr *e)
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

/* The child keeps only what the job needs: a client connection or the
 * control socket held here would outlive the helper's close of it (a
 * client waiting for EOF would wait for the job). */
static void close_fds_except(const int *keep, size_t n_keep)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int self = dirfd(d);
    int fds[1024];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < ARRAY_SIZE(fds)) {
        int fd = atoi(de->d_name);
        bool k = fd <= 2 || fd == self || de->d_name[0] == '.';
        for (size_t i = 0; i < n_keep && !k; i++)
            k = fd == keep[i];
        if (!k)
            fds[n++] = fd;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

pid_t pg_fork(struct svc *s, int *sock, const int *keep, size_t n_keep, terr *e)
{
    int sv[2] = {-1, -1};
    if (sock && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return terr_set(e, errno, "[%s] socketpair: %m", s->conf->label);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int r = terr_set(e, errno, "[%s] fork: %m", s->conf->label);
        if (sock) {
            close(sv[0]);
            close(sv[1]);
        }
        return r;
    }
    if (pid > 0) {
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

static int load_libpq(struct svc *s, terr *e)
{
    int r = pq_load(e);
    return r < 0 ? terr_prefix(e, r, "[%s]", s->conf->label) : 0;
}

_Noreturn static void job(struct svc *s, struct pg *pg, pg_job_fn fn, void *arg, int sock)
{
    struct pg_job j = {.s = s, .pg = pg, .arg = arg, .sock = sock};
    terr e = {0};
    int r = load_libpq(s, &e);
    if (r == 0)
        r = fn(&j, &e);
    pg_job_reply(&j, r, &e);
    _exit(r < 0 ? 1 : 0);
}

static int parse(char *buf, size_t len, strv *out, terr *e)
{
    const char *end = buf + len;
    char *p = buf;
    const char *f[2];
    for (int i = 0; i < 2; i++) {
        char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            return terr_set(e, EPROTO, "postgresql: malformed reply from a libpq job");
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

static int wait_status(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int pg_job_run(struct svc *s, struct pg *pg, pg_job_fn fn, void *arg, const int *keep,
               size_t n_keep, strv *out, terr *e)
{
    int sock;
    pid_t pid = pg_fork(s, &sock, keep, n_keep, e);
    if (pid < 0)
        return pid;
    if (pid == 0)
        job(s, pg, fn, arg, sock);
    _cleanup_free_ char *buf = xmalloc(MSG_MAX);
    ssize_t n;
    while ((n = recv(sock, buf, MSG_MAX, 0)) < 0 && errno == EINTR)
        ;
    close(sock);
    int status = wait_status(pid);
    if (n > 0)
        return parse(buf, (size_t)n, out, e);
    return terr_set(e, EIO, "[%s] the process that talks to postgres (pid %d) died without "
                    "a word (%s %d)", s->conf->label, (int)pid,
                    WIFSIGNALED(status) ? "signal" : "status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* The worker: a job that stays, for requests that come often (resets
 * between tests), so that each one costs neither the fork and libpq's
 * load nor a new connection.  It serves one request at a time; what it
 * does after its reply (the next spare) delays only the next request. */
_Noreturn static void worker(struct svc *s, struct pg *pg, pg_worker_fn serve, int sock)
{
    terr le = {0};
    int lr = load_libpq(s, &le);
    void *state = NULL;
    char req[1024];
    if (lr == 0) { /* its warm-up, before any request: nobody waits for it */
        struct pg_job j = {.s = s, .pg = pg, .arg = &state, .sock = sock, .replied = true};
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
        struct pg_job j = {.s = s, .pg = pg, .arg = &state, .sock = sock};
        terr e = {0};
        int r = lr < 0 ? lr : serve(&j, req, &e);
        pg_job_reply(&j, r, lr < 0 ? &le : &e);
        strv_free(&j.out);
    }
    _exit(0);
}

/* Forget the worker; the helper's SIGCHLD handling reaps it.  kill_it
 * only when it is known to be alive (it holds its end of the socket
 * open), never on a pid that may have been reaped and reused. */
static void worker_gone(struct pg *pg, bool kill_it)
{
    if (pg->worker_fd >= 0)
        close(pg->worker_fd);
    pg->worker_fd = -1;
    if (kill_it && pg->worker_pid > 0)
        kill(pg->worker_pid, SIGKILL);
    pg->worker_pid = 0;
}

static int worker_start(struct svc *s, struct pg *pg, pg_worker_fn serve, terr *e)
{
    int sock;
    pid_t pid = pg_fork(s, &sock, NULL, 0, e);
    if (pid < 0)
        return pid;
    if (pid == 0)
        worker(s, pg, serve, sock);
    pg->worker_fd = sock;
    pg->worker_pid = pid;
    return 0;
}

int pg_worker_spawn(struct svc *s, struct pg *pg, pg_worker_fn serve, terr *e)
{
    return pg->worker_fd >= 0 ? 0 : worker_start(s, pg, serve, e);
}

int pg_worker_call(struct svc *s, struct pg *pg, pg_worker_fn serve, const char *req,
                   long long timeout_ns, terr *e)
{
    _cleanup_free_ char *buf = xmalloc(MSG_MAX);
    /* twice: a worker may have just left for being idle */
    for (int attempt = 0; attempt < 2; attempt++) {
        int r;
        if (pg->worker_fd < 0 && (r = worker_start(s, pg, serve, e)) < 0)
            return r;
        if (send(pg->worker_fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
            worker_gone(pg, false);
            continue;
        }
        long long deadline = now_ns() + timeout_ns;
        ssize_t n = -1;
        for (;;) {
            long long left = deadline - now_ns();
            struct pollfd p = {.fd = pg->worker_fd, .events = POLLIN};
            int pr = left > 0 ? poll(&p, 1, (int)(left / 1000000 + 1)) : 0;
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0) {
                pid_t pid = pg->worker_pid;
                worker_gone(pg, true);
                return terr_set(e, ETIMEDOUT, "[%s] postgres (pid %d) did not answer within "
                                "%lld s (the worker that talks to it, pid %d, was killed): is "
                                "it stopped or overloaded?", s->conf->label, (int)s->pid,
                                timeout_ns / 1000000000LL, (int)pid);
            }
            n = recv(pg->worker_fd, buf, MSG_MAX, 0);
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        if (n <= 0) {
            worker_gone(pg, false);
            if (attempt == 0)
                continue;
            return terr_set(e, EIO, "[%s] the process that talks to postgres died",
                            s->conf->label);
        }
        return parse(buf, (size_t)n, NULL, e);
    }
    return terr_set(e, EIO, "[%s] cannot reach the process that talks to postgres",
                    s->conf->label);
}

void pg_worker_forget(struct pg *pg)
{
    /* closing its socket ends it; the helper reaps it */
    worker_gone(pg, false);
}
