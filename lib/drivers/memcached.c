/* The `memcached` driver: memcached on a unix socket (mode 0700) in the
 * service's private directory, or on 127.0.0.1 with tcp = yes.  Ready when
 * it answers `version`; reset is `flush_all`, over one connection kept for
 * the service's life; stop is SIGKILL (memcached takes a whole second to
 * exit on SIGTERM, and its data is disposable).  The text protocol is two
 * lines, so no client library. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "driver.h"
#include "../service.h"

#define CONNECT_TIMEOUT_MS 50
#define VERSION_TIMEOUT_MS 250
#define FLUSH_TIMEOUT_MS 5000
#define DEFAULT_MEMORY_MB 64

struct mc_data {
    int fd;             /* kept open: probes and resets reuse it; -1 none */
    char bin[PATH_MAX]; /* the memcached found at prepare time */
};

static const char *const mc_vars[] = {"ADDRESS", NULL};

static int parse_yesno(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || streq(v, "1"))
        *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
             streq(v, "0"))
        *out = false;
    else
        return -EINVAL;
    return 0;
}

static int parse_memory(const char *v, long *mb)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > 1048576)
        return -EINVAL;
    *mb = n;
    return 0;
}

static int mc_configure(struct svc_conf *c, const char *file, terr *e)
{
    bool tcp = false;
    for (size_t i = 0; i < c->n_opts; i++) {
        const struct conf_kv *kv = &c->opts[i];
        long mb;
        if (streq(kv->key, "tcp")) {
            if (parse_yesno(kv->value, &tcp) < 0)
                return terr_at(e, EINVAL, file, kv->line, "[%s] tcp = %s: use yes or no", c->label, kv->value);
        } else if (streq(kv->key, "memory")) {
            if (parse_memory(kv->value, &mb) < 0)
                return terr_at(e, EINVAL, file, kv->line,
                                "[%s] memory = %s: give the cache size in megabytes, a "
                                "whole number from 1 to 1048576 (default %d)",
                                c->label, kv->value, DEFAULT_MEMORY_MB);
        } else if (streq(kv->key, "bin")) {
            if (!*kv->value)
                return terr_at(e, EINVAL, file, kv->line,
                                "[%s] bin is empty: give the memcached to run, or remove "
                                "it to use the one on PATH",
                                c->label);
        } else {
            return terr_at(e, EINVAL, file, kv->line,
                            "[%s] unknown key '%s' for the memcached driver (known: tcp, "
                            "memory, bin)",
                            c->label, kv->key);
        }
    }
    /* a port the user set means TCP too */
    if (tcp && c->port < 0)
        c->port = 0;
    if (c->port >= 0 && c->socket)
        return terr_at(e, EINVAL, file, c->port_line ? c->port_line : c->line,
                        "[%s] memcached listens on a unix socket or on TCP, not both: "
                        "remove socket = or tcp = yes / port =",
                        c->label);
    if (c->port < 0 && !c->socket)
        c->socket = xstrdup("memcached.sock");
    if (!c->ready_line)
        c->ready = READY_DRIVER;
    if (!c->stop_signal_line)
        c->stop_signal = SIGKILL;
    return 0;
}

static struct mc_data *mdata(struct svc *s)
{
    if (!s->driver_data) {
        struct mc_data *d = xcalloc(1, sizeof(*d));
        d->fd = -1;
        s->driver_data = d;
    }
    return s->driver_data;
}

static void disconnect(struct mc_data *d)
{
    if (d && d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
}

static int mc_prepare(struct svc *s, struct op *op, terr *e)
{
    (void)op;
    struct mc_data *d = mdata(s);
    disconnect(d); /* a new server: the old connection is dead */
    const char *bin = svc_opt(s->conf, "bin");
    return program_find(s->conf->label, bin ? bin : "memcached", "memcached", d->bin,
                        sizeof(d->bin), e);
}

static int mc_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    struct mc_data *d = mdata(s);
    const char *mem = svc_opt(s->conf, "memory");
    strv_push(argv, d->bin);
    if (s->port) {
        strv_push(argv, "-l");
        strv_push(argv, "127.0.0.1");
        strv_push(argv, "-p");
        strv_pushf(argv, "%d", s->port);
        strv_push(argv, "-U");
        strv_push(argv, "0");
    } else {
        strv_push(argv, "-s");
        strv_push(argv, s->sockpath);
        strv_push(argv, "-a");
        strv_push(argv, "0700");
    }
    strv_push(argv, "-m");
    if (mem)
        strv_push(argv, mem);
    else
        strv_pushf(argv, "%d", DEFAULT_MEMORY_MB);
    /* memcached refuses to run as root without -u; a disposable test
     * server keeps root (the unix socket is made after the switch, in a
     * directory only we can enter) */
    if (geteuid() == 0) {
        strv_push(argv, "-u");
        strv_push(argv, "root");
    }
    return 0;
}

static char *where(const struct svc *s)
{
    return s->port ? xasprintf("127.0.0.1:%d", s->port) : xasprintf("unix socket %s", s->sockpath);
}

/* Wait for fd to be ready for `events` until deadline: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ns();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)((left + 999999) / 1000000));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

/* A non-blocking connect with a short timeout: 0 with d->fd set, or -errno
 * (ENOENT / ECONNREFUSED while the server is not up yet). */
static int mc_connect(struct svc *s, struct mc_data *d)
{
    union {
        struct sockaddr sa;
        struct sockaddr_un un;
        struct sockaddr_in in;
    } a = {0};
    socklen_t len;
    int fd;
    if (s->port) {
        a.in = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        len = sizeof(a.in);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    } else {
        if (strlen(s->sockpath) >= sizeof(a.un.sun_path))
            return -ENAMETOOLONG;
        a.un.sun_family = AF_UNIX;
        strcpy(a.un.sun_path, s->sockpath);
        len = sizeof(a.un);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    }
    if (fd < 0)
        return -errno;
    if (connect(fd, &a.sa, len) < 0) {
        int r = -errno;
        if (r == -EINPROGRESS) {
            int err = 0;
            socklen_t el = sizeof(err);
            r = wait_fd(fd, POLLOUT, now_ns() + CONNECT_TIMEOUT_MS * 1000000LL);
            if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                r = -errno;
            else if (r == 0 && err)
                r = -err;
        } else if (r == -EAGAIN) {
            r = -ECONNREFUSED; /* a full backlog: not answering */
        }
        if (r < 0) {
            close(fd);
            return r;
        }
    }
    d->fd = fd;
    return 0;
}

/* Send req and read one line of reply into buf (NUL-terminated, without
 * "\r\n").  0, or -errno. */
static int roundtrip(int fd, const char *req, char *buf, size_t bufsz, int timeout_ms)
{
    long long deadline = now_ns() + timeout_ms * 1000000LL;
    size_t off = 0, n = strlen(req);
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r < 0)
                return r;
            continue;
        }
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + got, bufsz - 1 - got, 0);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w < 0)
                return w;
            continue;
        }
        if (r < 0)
            return -errno;
        got += (size_t)r;
        buf[got] = '\0';
        char *eol = strstr(buf, "\r\n");
        if (eol) {
            *eol = '\0';
            return 0;
        }
        if (got >= bufsz - 1)
            return -EPROTO;
    }
}

/* One request on the kept connection (remade once if it broke).  Returns 0
 * with the reply line in buf, -ECONNREFUSED/-ENOENT when it cannot connect,
 * or another -errno. */
static int request(struct svc *s, const char *req, char *buf, size_t bufsz, int timeout_ms,
                   terr *e)
{
    struct mc_data *d = mdata(s);
    const char *what = strndupa(req, strcspn(req, "\r\n"));
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = d->fd < 0;
        int r = fresh ? mc_connect(s, d) : 0;
        if (r < 0) {
            _cleanup_free_ char *w = where(s);
            return terr_set(e, r, "service '%s': cannot connect to memcached on %s: %s",
                            s->conf->label, w, strerror(-r));
        }
        r = roundtrip(d->fd, req, buf, bufsz, timeout_ms);
        if (r == 0)
            return 0;
        _cleanup_free_ char *w = where(s);
        terr_set(e, r, "service '%s': `%s` to memcached on %s failed: %s", s->conf->label, what,
                 w, strerror(-r));
        disconnect(d);
        if (fresh || r == -ETIMEDOUT)
            return r;
    }
    return -EIO;
}

/* `version`: readiness (starting: any failure is "not yet") or health.
 * Synchronous, bounded by VERSION_TIMEOUT_MS (memcached becomes a recipe,
 * whose exchanges are proto.c's ops). */
static int version(struct svc *s, bool starting, terr *e)
{
    char buf[256];
    int r = request(s, "version\r\n", buf, sizeof(buf), VERSION_TIMEOUT_MS, e);
    if (r < 0)
        return starting ? -EAGAIN : r;
    if (strncmp(buf, "VERSION ", 8) != 0)
        return terr_set(e, EPROTO,
                        "service '%s' does not answer `version` with VERSION (it said \"%.64s\"): "
                        "is it memcached?",
                        s->conf->label, buf);
    return 0;
}

static int mc_probe(struct svc *s, struct op *op, terr *e)
{
    (void)op;
    return version(s, true, e);
}

static int mc_health(struct svc *s, struct op *op, terr *e)
{
    (void)op;
    return version(s, false, e);
}

static int mc_reset(struct svc *s, struct op *op, terr *e)
{
    (void)op;
    char buf[256];
    int r = request(s, "flush_all\r\n", buf, sizeof(buf), FLUSH_TIMEOUT_MS, e);
    if (r < 0)
        return r;
    if (!streq(buf, "OK"))
        return terr_set(e, EIO, "service '%s': flush_all failed: memcached said \"%.64s\"",
                        s->conf->label, buf);
    return 0;
}

static int mc_variables(struct svc *s, terr *e)
{
    if (s->port) {
        char buf[32];
        snprintf(buf, sizeof(buf), "127.0.0.1:%d", s->port);
        svc_setvar(s, "ADDRESS", buf);
    } else {
        svc_setvar(s, "ADDRESS", s->sockpath);
    }
    return 0;
}

static int mc_cleanup(struct svc *s, terr *e)
{
    disconnect(s->driver_data);
    return 0;
}

static void mc_free(struct svc *s)
{
    disconnect(s->driver_data);
    free(s->driver_data);
    s->driver_data = NULL;
}

const struct tether_driver driver_memcached = {
    .name = "memcached",
    .package = "memcached",
    .configure = mc_configure,
    .prepare = mc_prepare,
    .argv = mc_argv,
    .probe = mc_probe,
    .health = mc_health,
    .reset = mc_reset,
    .variables = mc_variables,
    .cleanup = mc_cleanup,
    .free = mc_free,
    .vars = mc_vars,
    .keys = (const char *const[]){"tcp", "memory", "bin", NULL},
    .program_keys = (const char *const[]){"bin", NULL},
    /* Debian's memcached has SASL for the binary protocol only, and an
     * experimental ASCII auth file (-Y): common clients speak neither, so
     * tether uses neither, and TCP is open to every local user */
    .tcp_warning = "memcached on TCP has no authentication: every local user can read, "
                   "change and flush it (use the default unix socket, mode 0700, unless a "
                   "client needs TCP)",
};
