/* Readiness, event-driven: a notify socket, an fd the service writes a
 * line to, inotify on the log, or connect attempts with exponential
 * backoff starting at 1 ms.  Never a fixed sleep. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "drivers/driver.h"
#include "fsutil.h"
#include "ports.h"
#include "proto.h"
#include "service.h"
#include "spawn.h"

#define CONNECT_DELAY_MIN 1000000LL  /* 1 ms */
#define CONNECT_DELAY_MAX 25000000LL /* 25 ms */
#define EXEC_DELAY_MIN 10000000LL    /* 10 ms: a probe command costs a fork+exec */
#define EXEC_DELAY_MAX 250000000LL

static int try_connect_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* loopback connects complete or fail at once: no need for O_NONBLOCK */
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int try_connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    close(fd);
    /* a full backlog still means someone is listening */
    return r == -EAGAIN ? 0 : r;
}

static char *unix_path(struct svc *s)
{
    char *p = NULL;
    if (svc_expand(s, s->conf->ready_arg, &p, NULL) < 0)
        return xstrdup(s->conf->ready_arg);
    if (p[0] != '/') {
        char *abs = xasprintf("%s/%s", s->dir, p);
        free(p);
        p = abs;
    }
    return p;
}

/* ---- whose listener answers on the service's port ---- */

struct claim {
    struct port_listener *l;
    bool *ours;
    size_t n, left; /* listeners, and those not yet found in our processes */
};

static void claim(struct claim *c, size_t k)
{
    if (!c->ours[k]) {
        c->ours[k] = true;
        c->left--;
    }
}

/* Mark the listeners whose socket one of pid's fds holds.  A process of
 * ours that runs as another uid and whose fds we may not see (root without
 * CAP_SYS_PTRACE, as in a container, looking at a server that runs as
 * postgres) vouches for the listeners of its own uid: only that uid, the
 * service's, could have made them.  Not so for our own uid: a process in
 * mid-exec shows EACCES for a moment, and a stranger of our uid would
 * pass. */
static void claim_fds(struct claim *c, pid_t pid)
{
    _cleanup_free_ unsigned long *ino = NULL;
    size_t n = 0;
    uid_t uid;
    if (proc_socket_inodes(pid, &ino, &n) == -EACCES && proc_fsuid(pid, &uid) == 0 &&
        uid != geteuid())
        for (size_t k = 0; k < c->n; k++)
            if (c->l[k].uid == uid)
                claim(c, k);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < c->n; k++)
            if (c->l[k].inode == ino[i])
                claim(c, k);
}

/* Walk root and its descendants until every listener is claimed. */
static void claim_tree(struct claim *c, pid_t root)
{
    _cleanup_free_ pid_t *pids = xmalloc(sizeof(*pids));
    size_t n = 1;
    pids[0] = root;
    for (size_t i = 0; i < n && c->left; i++) {
        claim_fds(c, pids[i]);
        proc_children(pids[i], &pids, &n);
    }
}

static bool main_pid_of_other(const struct svc *s, pid_t pid)
{
    for (size_t i = 0; i < s->inst->n_svcs; i++)
        if (&s->inst->svcs[i] != s && s->inst->svcs[i].pid == pid)
            return true;
    return false;
}

/* The service's processes are its main process's tree, and what the
 * helper (a child subreaper) adopted: a daemonising server's detached
 * child is no longer below the main process.  Other services' trees are
 * not this one's. */
static void claim_service(struct claim *c, const struct svc *s)
{
    claim_tree(c, s->pid);
    if (!c->left)
        return;
    _cleanup_free_ pid_t *kids = NULL;
    size_t n = 0;
    proc_children(getpid(), &kids, &n);
    for (size_t i = 0; i < n && c->left; i++)
        if (kids[i] != s->pid && !main_pid_of_other(s, kids[i]))
            claim_tree(c, kids[i]);
}

static void foreign_listener(struct svc *s, const struct port_listener *l)
{
    s->taken_by = l->uid;
    if (s->conf->port == 0 && s->port_tries > 0)
        svc_fail(s, "cannot get a port of its own: another process (uid %u), not the service, "
                 "listens on 127.0.0.1:%d, the last of the %d ports port = auto tried; find "
                 "who takes them with ss -ltnp 'sport = %d', and stop it",
                 (unsigned)l->uid, s->port, s->port_tries + 1, s->port);
    else
        svc_fail(s, "does not own port %d: another process (uid %u), not the service, listens "
                 "on 127.0.0.1:%d, so tether will not hand its address out; stop that process "
                 "(ss -ltnp 'sport = %d' shows it)%s",
                 s->port, (unsigned)l->uid, s->port, s->port,
                 s->conf->port > 0 ? " or choose another port" : "");
}

int ready_port_owner(struct svc *s, bool need)
{
    if (s->port <= 0 || s->external)
        return 0;
    _cleanup_free_ struct port_listener *l = NULL;
    size_t n = 0;
    int r = port_listeners(s->port, &l, &n);
    if (r < 0) {
        svc_fail(s, "cannot tell who listens on port %d (sock_diag, then /proc/net/tcp): %s; "
                 "tether counts only the service's own listener as ready",
                 s->port, strerror(-r));
        return r;
    }
    if (n == 0)
        return need ? -EAGAIN : 0;
    _cleanup_free_ bool *ours = xcalloc(n, sizeof(*ours));
    struct claim c = {.l = l, .ours = ours, .n = n, .left = n};
    claim_service(&c, s);
    for (size_t k = 0; k < n; k++)
        if (!ours[k]) {
            foreign_listener(s, &l[k]);
            return -EADDRINUSE;
        }
    return 0;
}

char *ready_describe(const struct svc *s)
{
    const struct svc_conf *c = s->conf;
    switch (c->ready) {
    case READY_NONE:
        return xstrdup("none");
    case READY_TCP:
        return xasprintf("tcp: connect to 127.0.0.1:%d", s->port);
    case READY_UNIX:
        return xasprintf("unix: connect to %s", c->ready_arg);
    case READY_LOG:
        return xasprintf("log: a line matching /%s/", c->ready_arg);
    case READY_EXEC:
        return xasprintf("exec: %s exits 0", c->ready_arg);
    case READY_NOTIFY:
        return xstrdup("notify: READY=1 on $NOTIFY_SOCKET");
    case READY_FD:
        return xasprintf("fd: a line written to fd %d", c->ready_fd);
    case READY_DRIVER:
        return xasprintf("the %s driver's probe", c->driver->name);
    case READY_EXPECT:
    case READY_HTTP: /* and what the last try got */
        return s->err.msg[0] ? xasprintf("%s; the last try: %s", c->ready_proto->text,
                                         s->err.msg)
                             : xstrdup(c->ready_proto->text);
    }
    return xstrdup("?");
}

int ready_setup(struct svc *s, strv *env, int *pass_fd, terr *e)
{
    struct svc_conf *c = s->conf;
    *pass_fd = -1;
    s->probe_delay_ns = c->ready == READY_EXEC ? EXEC_DELAY_MIN : CONNECT_DELAY_MIN;
    s->next_probe_ns = now_ns();
    sb_free(&s->line);
    switch (c->ready) {
    case READY_NOTIFY: {
        _cleanup_free_ char *path = xasprintf("%s/%s.notify", s->inst->dir, c->label);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
            return terr_set(e, ENAMETOOLONG,
                            "[%s] notify socket path %s is too long for a unix socket: set "
                            "TETHER_DIR to a shorter directory",
                            c->label, path);
        strcpy(sa.sun_path, path);
        unlink(path);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int r = terr_set(e, errno, "[%s] cannot bind notify socket %s: %m", c->label, path);
            if (fd >= 0)
                close(fd);
            return r;
        }
        /* a server that runs as another user must be able to send to it */
        if (s->run_as && chown(path, s->uid, s->gid) < 0) {
            int r = terr_set(e, errno, "[%s] cannot chown %s: %m", c->label, path);
            close(fd);
            return r;
        }
        s->ready_fd = fd;
        strv_pushf(env, "NOTIFY_SOCKET=%s", path);
        return 0;
    }
    case READY_FD: {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return terr_set(e, errno, "[%s] pipe: %m", c->label);
        fcntl(p[0], F_SETFL, O_NONBLOCK);
        s->ready_fd = p[0];
        *pass_fd = p[1];
        return 0;
    }
    case READY_LOG: {
        /* a template like any other value: log:listening on ${port} */
        _cleanup_free_ char *pattern = NULL;
        int rr = svc_expand(s, c->ready_arg, &pattern, e);
        if (rr < 0)
            return rr;
        if (s->ready_re) {
            regfree(s->ready_re);
            free(s->ready_re);
        }
        regex_t *re = xcalloc(1, sizeof(*re));
        int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[256];
            regerror(rc, re, msg, sizeof(msg));
            free(re);
            s->ready_re = NULL;
            return terr_set(e, EINVAL, "[%s] ready = log:%s: bad regular expression: %s",
                            c->label, pattern, msg);
        }
        s->ready_re = re;
        /* the file must exist to be watched; only output from now on counts */
        int lfd = open(s->logpath, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lfd < 0)
            return terr_set(e, errno, "[%s] cannot create %s: %m", c->label, s->logpath);
        off_t end = lseek(lfd, 0, SEEK_END);
        close(lfd);
        s->log_off = end > 0 ? (size_t)end : 0;
        int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0 || inotify_add_watch(fd, s->logpath, IN_MODIFY) < 0) {
            int r = terr_set(e, errno, "[%s] cannot watch %s: %m", c->label, s->logpath);
            if (fd >= 0)
                close(fd);
            return r;
        }
        s->ready_fd = fd;
        return 0;
    }
    default:
        return 0;
    }
}

void ready_after_spawn(struct svc *s, int pass_fd)
{
    /* our copy of the write end must go, or EOF would never come */
    if (pass_fd >= 0)
        close(pass_fd);
}


/* x1.5 rather than x2: a server ready at 10 ms is seen by ~13 ms, not 15 */
static void backoff(struct svc *s)
{
    long long max = s->conf->ready == READY_EXEC ? EXEC_DELAY_MAX : CONNECT_DELAY_MAX;
    s->next_probe_ns = now_ns() + s->probe_delay_ns;
    long long next = s->probe_delay_ns + s->probe_delay_ns / 2;
    s->probe_delay_ns = next > max ? max : next;
}

int ready_probe(struct svc *s, struct op *op)
{
    struct svc_conf *c = s->conf;
    int r;
    switch (c->ready) {
    case READY_NONE:
        return 0;
    case READY_TCP:
        r = try_connect_tcp(s->port);
        break;
    case READY_UNIX: {
        _cleanup_free_ char *p = unix_path(s);
        r = try_connect_unix(p);
        break;
    }
    case READY_DRIVER:
        op_init(op, s, "readiness probe");
        r = c->driver->probe(s, op, &s->err);
        if (r == OP_STARTED)
            return r; /* ready_probe_done() takes it from there */
        return ready_probe_done(s, r);
    case READY_EXPECT:
    case READY_HTTP:
        op_init(op, s, "readiness check");
        s->err.msg[0] = '\0';
        r = ready_proto_probe(s, op, &s->err);
        if (r == OP_STARTED)
            return r; /* ready_probe_done() takes it from there */
        return ready_probe_done(s, r);
    case READY_EXEC:
        if (s->probe_pid > 0)
            return -EAGAIN; /* its exit is handled in the helper's SIGCHLD */
        r = svc_run_command(s, c->ready_arg, &s->probe_pid, &s->err);
        if (r < 0)
            return r;
        s->next_probe_ns = 0; /* the probe's exit schedules the next */
        return -EAGAIN;
    default:
        return -EAGAIN; /* event-driven kinds */
    }
    /* an answer on the port counts only from the service's own listener */
    if (r == 0)
        r = ready_port_owner(s, c->ready != READY_UNIX);
    if (r == 0 || r == -EADDRINUSE)
        return r;
    backoff(s);
    return -EAGAIN;
}

int ready_probe_done(struct svc *s, int r)
{
    if (r < 0 && r != -EAGAIN)
        return r;
    /* a protocol check may have had its answer on the socket: then the
     * port needs no listener, but may have none but the service's */
    if (r == 0)
        r = ready_port_owner(s, s->conf->ready == READY_DRIVER);
    if (r == 0 || r == -EADDRINUSE)
        return r;
    backoff(s);
    return -EAGAIN;
}

int ready_exec_done(struct svc *s, int status)
{
    s->probe_pid = 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return ready_port_owner(s, false);
    backoff(s);
    return -EAGAIN;
}

static bool scan_lines(struct svc *s, const char *data, size_t len, bool eof)
{
    sb_addn(&s->line, data, len);
    char *p = s->line.s;
    bool ready = false;
    for (;;) {
        char *nl = memchr(p, '\n', s->line.len - (size_t)(p - s->line.s));
        if (!nl)
            break;
        *nl = '\0';
        if (s->conf->ready == READY_FD)
            ready = true;
        else if (s->ready_re && regexec(s->ready_re, p, 0, NULL, 0) == 0)
            ready = true;
        p = nl + 1;
        if (ready)
            break;
    }
    /* keep the unfinished line, bounded so a flood cannot grow it */
    size_t rest = s->line.len - (size_t)(p - s->line.s);
    if (rest > 65536) {
        p += rest - 65536;
        rest = 65536;
    }
    memmove(s->line.s, p, rest);
    s->line.len = rest;
    s->line.s[rest] = '\0';
    (void)eof;
    return ready;
}

static int event_ready(struct svc *s)
{
    struct svc_conf *c = s->conf;
    char buf[8192];
    switch (c->ready) {
    case READY_NOTIFY:
        for (;;) {
            ssize_t n = recv(s->ready_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
            if (n < 0)
                return -EAGAIN;
            buf[n] = '\0';
            for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
                 l = strtok_r(NULL, "\n", &save))
                if (streq(l, "READY=1"))
                    return 0;
        }
    case READY_FD:
        for (;;) {
            ssize_t n = read(s->ready_fd, buf, sizeof(buf));
            if (n < 0)
                return -EAGAIN;
            if (n == 0) {
                close(s->ready_fd);
                s->ready_fd = -1;
                svc_fail(s, "closed fd %d without writing a line to it (ready = fd:%d)",
                         c->ready_fd, c->ready_fd);
                return -EPIPE;
            }
            if (scan_lines(s, buf, (size_t)n, false))
                return 0;
        }
    case READY_LOG: {
        while (read(s->ready_fd, buf, sizeof(buf)) > 0)
            ; /* drain the inotify events: the log itself says what is new */
        int fd = open_file_trusted(AT_FDCWD, s->logpath, geteuid(), NULL);
        if (fd < 0)
            return -EAGAIN;
        for (;;) {
            ssize_t n = pread(fd, buf, sizeof(buf), (off_t)s->log_off);
            if (n <= 0)
                break;
            s->log_off += (size_t)n;
            if (scan_lines(s, buf, (size_t)n, false)) {
                close(fd);
                return 0;
            }
        }
        close(fd);
        return -EAGAIN;
    }
    default:
        return -EAGAIN;
    }
}

int ready_on_event(struct svc *s)
{
    int r = event_ready(s);
    /* the service says it is ready: still, nobody else may listen on its port */
    return r == 0 ? ready_port_owner(s, false) : r;
}

int svc_health_start(struct svc *s, struct op *op, terr *e)
{
    struct svc_conf *c = s->conf;
    /* an external service (a database on a server) has no process of
     * ours: its driver's probe alone says whether it answers */
    if (s->state != SVC_READY || (!s->external && (s->pid <= 0 || kill(s->pid, 0) < 0)))
        return terr_set(e, ESRCH, "[%s] is not running", c->label);
    int r = 0;
    e->msg[0] = '\0';
    if (c->health) { /* health = send:PING expect:+PONG, or a protocol ready = */
        op_init(op, s, "health check");
        r = svc_proto_health(s, op, e);
        if (r == OP_STARTED)
            return r;
    } else if (c->ready == READY_TCP)
        r = try_connect_tcp(s->port);
    else if (c->ready == READY_UNIX) {
        _cleanup_free_ char *p = unix_path(s);
        r = try_connect_unix(p);
    } else if (c->driver->health) { /* PING, SELECT 1...: really answering */
        op_init(op, s, "health check");
        r = c->driver->health(s, op, e);
        if (r == OP_STARTED) {
            if (!op->deadline_ns)
                op->deadline_ns = now_ns() + HEALTH_TIMEOUT_NS;
            return r;
        }
    }
    return svc_health_done(s, r, e);
}

int svc_health_done(struct svc *s, int r, terr *e)
{
    struct svc_conf *c = s->conf;
    if (r == 0 && s->port > 0 && ready_port_owner(s, false) < 0) {
        *e = s->err;
        return -EADDRINUSE;
    }
    /* the server's own answer (NOAUTH, "not permitted to log in") says
     * what is wrong; an errno alone would hide it */
    if (r < 0 && e->msg[0])
        return r;
    if (r < 0 && s->external)
        return terr_set(e, r, "[%s] does not answer (%s)", c->label, strerror(-r));
    if (r < 0)
        return terr_set(e, r, "[%s] (pid %d) is running but does not answer (%s)",
                        c->label, (int)s->pid, strerror(-r));
    return 0;
}

/* The spawn lives with readiness: the notify socket, fd pipe or log
 * watch is made before the exec and handed over with it.  (service.c,
 * below this file, never calls into it: no cycle.) */
int svc_spawn(struct svc *s, terr *e)
{
    const struct tether_driver *d = s->conf->driver;
    int r;
    _cleanup_strv_ strv argv = {0};
    _cleanup_strv_ strv extra = {0};
    if ((r = d->argv(s, &argv, &extra, e)) < 0)
        return r;
    if (argv.n == 0) {
        if (s->external) {
            s->pid = 0;
            return 1; /* nothing to run: ready as soon as prepared */
        }
        return terr_set(e, EINVAL, "[%s] the command is empty", s->conf->label);
    }
    _cleanup_strv_ strv env = {0};
    svc_environ(s, &env);
    for (size_t i = 0; i < extra.n; i++) {
        char *eq = strchr(extra.v[i], '=');
        if (eq) {
            *eq = '\0';
            svc_env_set(&env, extra.v[i], eq + 1);
            *eq = '=';
        }
    }
    /* a restart must not find the last run's socket in its way */
    if (s->sockpath)
        unlink(s->sockpath);
    int pass_fd = -1;
    if ((r = ready_setup(s, &env, &pass_fd, e)) < 0)
        return r;
    _cleanup_close_ int log = svc_open_log(s, e);
    if (log < 0)
        return log;
    struct spawn_opts o = {.argv = argv.v, .envp = env.v, .log_fd = log, .cwd = s->cwd ? s->cwd : s->dir,
                           .pass_fd = pass_fd, .pass_fd_as = s->conf->ready_fd,
                           .drop_privs = s->run_as, .uid = s->uid, .gid = s->gid};
    r = spawn_process(&o, &s->pid, e);
    if (r < 0) {
        ready_teardown(s);
        if (pass_fd >= 0)
            close(pass_fd);
        return terr_prefix(e, r, "[%s]", s->conf->label);
    }
    proc_starttime(s->pid, &s->starttime);
    ready_after_spawn(s, pass_fd);
    s->exit_status = 0;
    return 0;
}

/* ---- protocol checks: ready/health/reset = send:... expect:..., http:/ ---- */

static int expand_cb(void *ud, const char *tmpl, char **out, terr *e)
{
    return svc_expand(ud, tmpl, out, e);
}

static int proto_op(struct svc *s, const struct proto *p, const char *key, long long deadline,
                    struct op *op, terr *e)
{
    bool ready = streq(key, "ready");
    struct proto_run run = {.label = s->conf->label, .key = key, .dir = s->dir,
                            .sockpath = s->sockpath, .port = s->port, .expand = expand_cb,
                            .ud = s, .deadline_ns = deadline,
                            /* its deadline is the end of timeout = */
                            .budget_ns = ready ? s->conf->timeout_ns : 0,
                            .starting = ready};
    return proto_start(op, p, &run, e);
}

int ready_proto_probe(struct svc *s, struct op *op, terr *e)
{
    long long deadline = s->deadline_ns ? s->deadline_ns : now_ns() + s->conf->timeout_ns;
    return proto_op(s, s->conf->ready_proto, "ready", deadline, op, e);
}

int svc_proto_health(struct svc *s, struct op *op, terr *e)
{
    return proto_op(s, s->conf->health, "health", now_ns() + HEALTH_TIMEOUT_NS, op, e);
}

int svc_proto_reset(struct svc *s, struct op *op, terr *e)
{
    return proto_op(s, s->conf->reset_proto, "reset", now_ns() + s->conf->timeout_ns, op, e);
}

svc_op_fn svc_native_reset(const struct svc *s)
{
    const struct svc_conf *c = s->conf;
    if (c->reset_proto)
        return svc_proto_reset;
    return c->reset || c->reset_restart ? NULL : c->driver->reset;
}
