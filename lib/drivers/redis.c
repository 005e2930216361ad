/* The `redis` driver: redis-server with a generated redis.conf in the
 * service's private directory.  A unix socket (mode 0700) by default, TCP on
 * 127.0.0.1 with tcp = yes; no persistence; readiness by sd_notify (redis
 * is built with libsystemd and sends READY=1 with `supervised systemd`),
 * with tcp = yes a password made per instance (requirepass, in the 0600
 * redis.conf, never in argv), which the driver's own connection gives too;
 * PING through hiredis (dlopen()ed on first use) as the probe; reset is
 * FLUSHALL, and SCRIPT FLUSH and FUNCTION FLUSH where INFO shows scripts
 * or functions.  hiredis's calls block, so they run in a worker (job.h),
 * a child of the helper that keeps one connection while requests come and
 * leaves when idle: the helper's loop only sends a request and later reads
 * the reply (a round trip costs some 50 us more than a call in the
 * helper; the helper no longer maps hiredis at all); stop is
 * SIGKILL (the data is disposable, and redis acts on SIGTERM only in its
 * 10 Hz cron). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "driver.h"
#include "dynlib.h" /* hiredis, loaded on first use */
#include "../job.h"
#include "../kit.h"
#include "../service.h"

#define CONNECT_TIMEOUT_MS 50
#define PING_TIMEOUT_MS 250

struct redis_data {
    redisContext *c;    /* in the worker: kept open, probes and resets reuse it */
    struct worker w;    /* in the helper: the child that talks to redis */
    char bin[PATH_MAX]; /* the redis-server found at prepare time */
    char password[33];  /* over TCP, made once per instance; "" on a unix socket */
};

static const char *const redis_vars[] = {"URL", "PASSWORD", NULL};

/* settings tether itself must own, or its variables would lie */
static const char *const owned[] = {"port",    "unixsocket", "dir",        "daemonize",
                                    "supervised", "logfile", "include", "requirepass"};

static int redis_configure(struct svc_conf *c, const char *file, terr *e)
{
    bool tcp = false;
    for (size_t i = 0; i < c->n_opts; i++) {
        const struct conf_kv *kv = &c->opts[i];
        if (streq(kv->key, "tcp")) {
            if (parse_bool(kv->value, &tcp) < 0)
                return terr_at(e, EINVAL, file, kv->line, "[%s] tcp = %s: say " BOOL_WORDS,
                               c->label, kv->value);
        } else if (strncmp(kv->key, "setting.", 8) == 0) {
            const char *name = kv->key + 8;
            bool ok = *name;
            for (const char *q = name; *q; q++)
                if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                      (*q >= '0' && *q <= '9') || *q == '-' || *q == '_'))
                    ok = false;
            if (!ok)
                return terr_at(e, EINVAL, file, kv->line,
                                "[%s] %s: the name after 'setting.' must be a redis.conf "
                                "directive (letters, digits, '-', '_')",
                                c->label, kv->key);
            for (size_t k = 0; k < ARRAY_SIZE(owned); k++)
                if (!strcasecmp(name, owned[k]))
                    return terr_at(e, EINVAL, file, kv->line,
                                    "[%s] %s is set by tether (use port = or tcp = yes "
                                    "for TCP; the directory, log and TCP password are the "
                                    "instance's): remove it",
                                    c->label, kv->key);
        } else if (streq(kv->key, "bin")) {
            if (!*kv->value)
                return terr_at(e, EINVAL, file, kv->line,
                                "[%s] bin is empty: give the redis-server to run, or "
                                "remove it to use the one on PATH",
                                c->label);
        } else {
            return terr_at(e, EINVAL, file, kv->line,
                            "[%s] unknown key '%s' for the redis driver (known: tcp, "
                            "setting.NAME, bin)",
                            c->label, kv->key);
        }
    }
    /* a port the user set means TCP too */
    if (tcp && c->port < 0)
        c->port = 0;
    if (c->port < 0 && !c->socket)
        c->socket = xstrdup("redis.sock");
    if (!c->ready_line)
        c->ready = READY_NOTIFY;
    if (!c->stop_signal_line)
        c->stop_signal = SIGKILL;
    return 0;
}

static int serve(struct job *j, const char *req, terr *e);

static struct redis_data *rdata(struct svc *s)
{
    if (!s->driver_data) {
        struct redis_data *d = xcalloc(1, sizeof(struct redis_data));
        worker_init(&d->w, s, serve);
        s->driver_data = d;
    }
    return s->driver_data;
}

static void disconnect(struct redis_data *d)
{
    if (d && d->c) {
        redisFree(d->c);
        d->c = NULL;
    }
}

/* A value as redis.conf reads it (sdssplitargs): double quotes, with
 * backslash escapes for quotes, backslashes and control bytes. */
static void quote_conf(strbuf *b, const char *v)
{
    sb_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_addf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            sb_addf(b, "\\x%02x", *p);
        else
            sb_addc(b, (char)*p);
    }
    sb_addc(b, '"');
}

static int redis_prepare(struct svc *s, struct op *op, terr *e)
{
    (void)op;
    struct svc_conf *c = s->conf;
    struct redis_data *d = rdata(s);
    worker_stop(&d->w); /* a new server: the old connection is dead */
    const char *bin = svc_opt(c, "bin");
    int r = program_find(c->label, bin ? bin : "redis-server", "redis-server", d->bin,
                         sizeof(d->bin), e);
    if (r < 0)
        return r;
    /* TCP is open to every local user: a password, kept across restarts
     * (the tests hold the variables).  Hex: nothing to quote anywhere. */
    if (s->port && !d->password[0] && (r = random_hex(d->password, 32)) < 0)
        return terr_set(e, -r, "[%s] cannot make a password for TCP (getrandom): %s", c->label,
                        strerror(-r));
    _cleanup_sb_ strbuf b = {0};
    sb_addf(&b, "# written by tether for [%s] at every start: edit the config's "
                "setting.NAME = VALUE instead\n",
            c->label);
    if (s->port)
        sb_addf(&b, "port %d\nbind 127.0.0.1\n", s->port);
    else
        sb_add(&b, "port 0\n");
    if (s->sockpath) {
        sb_add(&b, "unixsocket ");
        quote_conf(&b, s->sockpath);
        sb_add(&b, "\nunixsocketperm 700\n");
    }
    sb_add(&b, "save \"\"\nappendonly no\ndir ");
    quote_conf(&b, s->dir);
    sb_addf(&b, "\nsupervised %s\ndaemonize no\nlogfile \"\"\n",
            c->ready == READY_NOTIFY ? "systemd" : "no");
    for (size_t i = 0; i < c->n_opts; i++)
        if (strncmp(c->opts[i].key, "setting.", 8) == 0)
            sb_addf(&b, "%s %s\n", c->opts[i].key + 8, c->opts[i].value);
    if (d->password[0]) {
        sb_add(&b, "requirepass ");
        quote_conf(&b, d->password);
        sb_addc(&b, '\n');
    }
    _cleanup_close_ int dfd = open(s->dir, O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return terr_set(e, errno, "[%s] cannot open its directory %s: %m", c->label, s->dir);
    r = write_file_atomic(dfd, "redis.conf", b.s, b.len, 0600);
    if (r < 0)
        return terr_set(e, r, "[%s] cannot write %s/redis.conf: %s", c->label, s->dir,
                        strerror(-r));
    return 0;
}

static int redis_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    struct redis_data *d = rdata(s);
    strv_push(argv, d->bin);
    strv_pushf(argv, "%s/redis.conf", s->dir);
    return 0;
}

static struct timeval ms_tv(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static char *where(const struct svc *s)
{
    return s->sockpath && !s->port ? xasprintf("unix socket %s", s->sockpath)
                                   : xasprintf("127.0.0.1:%d", s->port);
}

/* AUTH on a fresh connection (tcp = yes).  The password goes as its own
 * argument, and no message shows it. */
static int auth(struct svc *s, struct redis_data *d, terr *e)
{
    redisSetTimeout(d->c, ms_tv(PING_TIMEOUT_MS));
    redisReply *rep = redisCommand(d->c, "AUTH %s", d->password);
    bool ok = rep && rep->type == REDIS_REPLY_STATUS;
    _cleanup_free_ char *w = where(s);
    if (!ok)
        terr_set(e, EACCES, "[%s] AUTH on %s failed: %s", s->conf->label, w,
                 !rep ? (d->c->errstr[0] ? d->c->errstr : "no answer")
                 : rep->type == REDIS_REPLY_ERROR && rep->str ? rep->str : "unexpected reply");
    if (rep)
        freeReplyObject(rep);
    if (ok)
        return 0;
    disconnect(d);
    return -ECONNREFUSED;
}

/* Connect (if not connected): 0, or -ECONNREFUSED with the reason in e. */
static int ensure_connected(struct svc *s, struct redis_data *d, terr *e)
{
    if (d->c)
        return 0;
    int r = redis_load(e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    redisContext *c = s->sockpath && !s->port
                          ? redisConnectUnixWithTimeout(s->sockpath, ms_tv(CONNECT_TIMEOUT_MS))
                          : redisConnectWithTimeout("127.0.0.1", s->port,
                                                    ms_tv(CONNECT_TIMEOUT_MS));
    if (!c)
        return terr_set(e, ENOMEM, "[%s] cannot allocate a redis connection", s->conf->label);
    if (c->err) {
        _cleanup_free_ char *w = where(s);
        terr_set(e, ECONNREFUSED, "[%s] cannot connect to redis on %s: %s",
                 s->conf->label, w, c->errstr);
        redisFree(c);
        return -ECONNREFUSED;
    }
    /* hiredis makes its socket without SOCK_CLOEXEC; the helper is single
     * threaded, so nothing forks between the two calls */
    fcntl(c->fd, F_SETFD, FD_CLOEXEC);
    d->c = c;
    return d->password[0] ? auth(s, d, e) : 0;
}

/* cmd's words as the command's arguments ("SCRIPT FLUSH" is two): cmd is
 * one of this file's own, at most a few plain words. */
static redisReply *command_words(redisContext *c, const char *cmd)
{
    _cleanup_free_ char *copy = xstrdup(cmd);
    const char *argv[4];
    size_t argc = 0;
    char *save = NULL;
    for (char *w = strtok_r(copy, " ", &save); w && argc < ARRAY_SIZE(argv);
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    return redisCommandArgv(c, (int)argc, argv, NULL);
}

/* One command, on the kept connection; a connection that broke (the
 * server restarted) is remade once.  Returns the reply or NULL (e set). */
static redisReply *command(struct svc *s, const char *cmd, int timeout_ms, terr *e)
{
    struct redis_data *d = rdata(s);
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = !d->c;
        int r = ensure_connected(s, d, e);
        if (r < 0)
            return NULL;
        redisSetTimeout(d->c, ms_tv(timeout_ms));
        redisReply *rep = command_words(d->c, cmd);
        if (rep)
            return rep;
        _cleanup_free_ char *w = where(s);
        terr_set(e, EIO, "[%s] %s on %s failed: %s", s->conf->label, cmd, w,
                 d->c->errstr[0] ? d->c->errstr : "no answer");
        disconnect(d);
        if (fresh)
            break;
    }
    return NULL;
}

/* What an authentication error means here: a test changed what tether
 * logs in with, which FLUSHALL does not undo. */
static const char *locked_out(const char *err)
{
    if (strncmp(err, "NOAUTH", 6) != 0 && strncmp(err, "WRONGPASS", 9) != 0 &&
        strncmp(err, "NOPERM", 6) != 0)
        return "";
    return " (did a test set a password or change the default user, with CONFIG SET "
           "requirepass or ACL SETUSER? a reset does not undo that: stop this instance and "
           "start a new one)";
}

/* PING: readiness (starting: any failure is "not yet") or health. */
static int ping(struct svc *s, bool starting, terr *e)
{
    int r = redis_load(e); /* a missing library is no reason to wait */
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    redisReply *rep = command(s, "PING", PING_TIMEOUT_MS, e);
    if (!rep)
        return starting ? -EAGAIN : -ECONNREFUSED;
    if (rep->type == REDIS_REPLY_ERROR) /* e.g. LOADING */
        r = starting ? -EAGAIN
                     : terr_set(e, EBUSY, "[%s] (pid %d) answers PING with an error: "
                                "%s%s", s->conf->label, (int)s->pid, rep->str,
                                locked_out(rep->str));
    else if (!(rep->type == REDIS_REPLY_STATUS && rep->str && !strcasecmp(rep->str, "PONG")))
        r = terr_set(e, EPROTO, "[%s] does not answer PING with PONG: is it redis?",
                     s->conf->label);
    freeReplyObject(rep);
    return r;
}


/* A reset's commands may take the service's timeout = (a test may have
 * paused the server's writes: CLIENT PAUSE). */
static int flush_ms(const struct svc *s)
{
    long long ms = s->conf->timeout_ns / 1000000;
    return ms > INT_MAX ? INT_MAX : ms < 1 ? 1 : (int)ms;
}

/* One command of a reset, which must answer +OK.  With may_lack, a server
 * without the command (FUNCTION before redis 7, when INFO did not tell)
 * has nothing of that kind to clear, and the reset goes on. */
static int reset_step(struct svc *s, const char *cmd, bool may_lack, terr *e)
{
    redisReply *rep = command(s, cmd, flush_ms(s), e);
    if (!rep)
        return -EIO;
    int r = 0;
    bool lacks = may_lack && rep->type == REDIS_REPLY_ERROR && rep->str &&
                 !strncasecmp(rep->str, "ERR unknown command", 19);
    if (!lacks && rep->type != REDIS_REPLY_STATUS)
        r = terr_set(e, EIO, "[%s] %s failed: %s", s->conf->label, cmd,
                     rep->type == REDIS_REPLY_ERROR && rep->str ? rep->str : "unexpected reply");
    freeReplyObject(rep);
    return r;
}

/* The number after "name:" in an INFO reply, or -1 without that line. */
static long info_count(const char *info, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = info; p;) {
        if (strncmp(p, name, n) == 0 && p[n] == ':')
            return strtol(p + n + 1, NULL, 10);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}

/* How many scripts and function libraries the server holds (-1: it does
 * not say, as when INFO was renamed away).  INFO memory costs some 20 us
 * in the server, where SCRIPT FLUSH costs 150 us even with nothing to
 * flush (it makes a new Lua interpreter). */
static int held(struct svc *s, long *scripts, long *libraries, terr *e)
{
    *scripts = *libraries = -1;
    redisReply *rep = command(s, "INFO memory", flush_ms(s), e);
    if (!rep)
        return -EIO;
    if (rep->type == REDIS_REPLY_STRING && rep->str) {
        *scripts = info_count(rep->str, "number_of_cached_scripts");
        *libraries = info_count(rep->str, "number_of_libraries");
        /* before redis 7 no such line, and no functions */
        if (*libraries < 0 && *scripts >= 0)
            *libraries = 0;
    }
    freeReplyObject(rep);
    return 0;
}

/* FLUSHALL leaves the scripts (EVAL's cache, SCRIPT LOAD) and, from
 * redis 7 on, the functions (FUNCTION LOAD): a test's own as much as its
 * keys. */
static int reset_all(struct svc *s, terr *e)
{
    long scripts = -1, libraries = -1;
    int r = reset_step(s, "FLUSHALL", false, e);
    if (r == 0)
        r = held(s, &scripts, &libraries, e);
    if (r == 0 && scripts != 0)
        r = reset_step(s, "SCRIPT FLUSH", false, e);
    if (r == 0 && libraries != 0)
        r = reset_step(s, "FUNCTION FLUSH", true, e);
    return r;
}

/* The worker's requests: "probe" (readiness: a failure is "not yet"),
 * "health" and "reset"; NULL, its warm-up, loads hiredis. */
static int serve(struct job *j, const char *req, terr *e)
{
    struct svc *s = j->s;
    if (!req || !*req) {
        int r = redis_load(e);
        return r < 0 ? terr_prefix(e, r, "[%s]", s->conf->label) : 0;
    }
    if (streq(req, "probe"))
        return ping(s, true, e);
    if (streq(req, "health"))
        return ping(s, false, e);
    if (streq(req, "reset"))
        return reset_all(s, e);
    return terr_set(e, EINVAL, "[%s] unknown request '%s' to the redis worker", s->conf->label,
                    req);
}

static int ask(struct svc *s, struct op *op, const char *req, terr *e)
{
    return worker_call(&rdata(s)->w, op, req, e);
}

static int redis_probe(struct svc *s, struct op *op, terr *e)
{
    return ask(s, op, "probe", e);
}

static int redis_health(struct svc *s, struct op *op, terr *e)
{
    return ask(s, op, "health", e);
}

static int redis_reset(struct svc *s, struct op *op, terr *e)
{
    return ask(s, op, "reset", e);
}

static int redis_variables(struct svc *s, terr *e)
{
    _cleanup_sb_ strbuf url = {0};
    struct redis_data *d = rdata(s);
    if (s->port && d->password[0]) {
        /* "default": redis-cli 7 sends an empty user name as one; hex: no escapes */
        sb_addf(&url, "redis://default:%s@127.0.0.1:%d/0", d->password, s->port);
    } else if (s->port) {
        sb_addf(&url, "redis://127.0.0.1:%d/0", s->port);
    } else {
        /* the form redis-py's from_url() reads; db=0 as over TCP */
        sb_add(&url, "unix://");
        url_encode(&url, s->sockpath, "/");
        sb_add(&url, "?db=0");
    }
    svc_setvar(s, "URL", url.s);
    svc_setvar(s, "PASSWORD", d->password); /* empty on a unix socket, which needs none */
    if (svc_count_same_driver(s) == 1)
        svc_setenv_global(s, "REDIS_URL", url.s);
    return 0;
}

static int redis_cleanup(struct svc *s, terr *e)
{
    struct redis_data *d = s->driver_data;
    if (d)
        worker_stop(&d->w);
    return 0;
}

static void redis_free(struct svc *s)
{
    struct redis_data *d = s->driver_data;
    if (d) {
        worker_stop(&d->w);
        disconnect(d);
    }
    free(d);
    s->driver_data = NULL;
}

const struct tether_driver driver_redis = {
    .name = "redis",
    .package = "redis-server",
    .configure = redis_configure,
    .prepare = redis_prepare,
    .argv = redis_argv,
    .probe = redis_probe,
    .health = redis_health,
    .reset = redis_reset,
    .variables = redis_variables,
    .cleanup = redis_cleanup,
    .free = redis_free,
    .vars = redis_vars,
    .globals = (const char *const[]){"REDIS_URL", "URL", NULL},
    .keys = (const char *const[]){"tcp", "setting.", "bin", NULL},
    .program_keys = (const char *const[]){"bin", NULL},
};
