#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "drivers/driver.h"
#include "ports.h"
#include "progress.h"
#include "service.h"
#include "spawn.h"
#include "template.h"

extern char **environ;

int svc_init(struct svc *s, struct instance *in, struct svc_conf *c, terr *e)
{
    memset(s, 0, sizeof(*s));
    s->conf = c;
    s->inst = in;
    s->port_lock = -1;
    s->ready_fd = -1;
    s->pending_client = -1;
    s->taken_by = (uid_t)-1;
    s->dir = xasprintf("%s/%s", in->dir, c->label);
    s->logpath = xasprintf("%s/%s.log", in->dir, c->label);
    if (mkdirat(in->dirfd, c->label, 0700) < 0 && errno != EEXIST)
        return terr_set(e, errno, "[%s] cannot create %s: %m", c->label, s->dir);
    if (c->socket) {
        s->sockpath = xasprintf("%s/%s", s->dir, c->socket);
        if (strlen(s->sockpath) >= 108)
            return terr_set(e, ENAMETOOLONG,
                            "[%s] socket path %s is longer than the 107 bytes a unix socket "
                            "allows: set TETHER_DIR to a shorter directory",
                            c->label, s->sockpath);
    }
    if (c->port >= 0) {
        s->port_lock = port_reserve(c->port, &s->port, e);
        if (s->port_lock < 0)
            return terr_prefix(e, s->port_lock, "[%s]", c->label);
    }
    return 0;
}

int svc_new_port(struct svc *s, terr *e)
{
    int old = s->port_lock;
    int r = port_reserve(0, &s->port, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    /* the old reservation is dropped only now, so we cannot get it back */
    close(old);
    s->port_lock = r;
    s->port_tries++;
    return 0;
}

static struct xport *xport_find(struct svc *s, const char *name)
{
    for (size_t i = 0; i < s->n_xports; i++)
        if (streq(s->xports[i].name, name))
            return &s->xports[i];
    return NULL;
}

int svc_port_named(struct svc *s, const char *name, int *port, terr *e)
{
    struct xport *x = xport_find(s, name);
    if (!x) {
        int p = 0, lock = port_reserve(0, &p, e);
        if (lock < 0)
            return terr_prefix(e, lock, "[%s] port_%s:", s->conf->label, name);
        s->xports = xrealloc(s->xports, (s->n_xports + 1) * sizeof(*s->xports));
        x = &s->xports[s->n_xports++];
        *x = (struct xport){.name = xstrdup(name), .port = p, .lock = lock};
        snprintf(x->text, sizeof(x->text), "%d", p);
    }
    *port = x->port;
    return 0;
}

void ready_teardown(struct svc *s)
{
    if (s->ready_fd >= 0)
        close(s->ready_fd);
    s->ready_fd = -1;
    if (s->ready_re) {
        regfree(s->ready_re);
        free(s->ready_re);
        s->ready_re = NULL;
    }
}

void svc_free(struct svc *s)
{
    ready_teardown(s);
    if (s->port_lock >= 0)
        close(s->port_lock);
    for (size_t i = 0; i < s->n_xports; i++) {
        close(s->xports[i].lock);
        free(s->xports[i].name);
    }
    free(s->xports);
    for (size_t i = 0; i < s->n_vars; i++) {
        free(s->vars[i].name);
        free(s->vars[i].value);
    }
    free(s->vars);
    for (size_t i = 0; i < s->n_gvars; i++) {
        free(s->gvars[i].name);
        free(s->gvars[i].value);
    }
    free(s->gvars);
    free(s->dir);
    free(s->logpath);
    free(s->sockpath);
    free(s->reset_err);
    free(s->cwd);
    sb_free(&s->line);
    sb_free(&s->port_retries);
    if (s->conf && s->conf->driver->free)
        s->conf->driver->free(s);
    else
        free(s->driver_data);
}

/* svc_expand's lookup: the service, and the name it did not know */
struct lookup_ctx {
    struct svc *s;
    char *unknown;
};

int svc_lookup(struct svc *s, const char *name, const char **value)
{
    static char buf[32];
    const struct tether_driver *d = s->conf ? s->conf->driver : NULL;
    if (d && d->lookup && !strchr(name, '.')) {
        int r = d->lookup(s, name, value);
        if (r != -ENOENT)
            return r;
    }
    if (streq(name, "dir"))
        *value = s->dir;
    else if (streq(name, "config_dir") && s->inst->cfg && s->inst->cfg->dir)
        *value = s->inst->cfg->dir;
    else if (streq(name, "instance"))
        *value = s->inst->dir;
    else if (streq(name, "label"))
        *value = s->conf->label;
    else if (streq(name, "port") && s->port) {
        snprintf(buf, sizeof(buf), "%d", s->port);
        *value = buf;
    } else if (streq(name, "socket") && s->sockpath)
        *value = s->sockpath;
    else if (tmpl_is_port_name(name)) {
        int p;
        terr e;
        if (svc_port_named(s, name + 5, &p, &e) < 0)
            return -EADDRINUSE;
        *value = xport_find(s, name + 5)->text;
    } else {
        const char *dot = strchr(name, '.');
        if (!dot)
            return -ENOENT;
        for (size_t i = 0; i < s->inst->n_svcs; i++) {
            struct svc *o = &s->inst->svcs[i];
            if (strlen(o->conf->label) == (size_t)(dot - name) &&
                strncasecmp(o->conf->label, name, (size_t)(dot - name)) == 0) {
                const char *v = svc_getvar(o, dot + 1);
                if (!v)
                    return -ENOENT;
                *value = v;
                return 0;
            }
        }
        return -ENOENT;
    }
    return 0;
}

static int lookup(void *ud, const char *name, const char **value)
{
    struct lookup_ctx *x = ud;
    int r = svc_lookup(x->s, name, value);
    if (r == -ENOENT && !x->unknown)
        x->unknown = xstrdup(name);
    return r;
}

/* The load time checks make this rare (a variable a driver declares but
 * did not set): say where, as they do, "FILE:LINE: [label] ...". */
static int expand_error(struct svc *s, const char *tmpl, const char *unknown, int r, terr *e)
{
    if (!e)
        return r;
    _cleanup_sb_ strbuf key = {0}, known = {0}, msg = {0};
    int line = config_key_of(s->conf, tmpl, &key);
    const struct tether_config *c = s->inst->cfg;
    if (!unknown) {
        terr why = *e;
        sb_addf(&msg, "[%s]%s%s: %s", s->conf->label, key.s ? " " : "", key.s ? key.s : "",
                why.msg);
    } else {
        if (c)
            config_known_names(c, s->conf, &known);
        sb_addf(&msg, "[%s] unknown variable ${%s}%s%s (known: %s)", s->conf->label, unknown,
                key.s ? " in " : "", key.s ? key.s : "", known.s ? known.s : "none");
    }
    if (c && c->path)
        return terr_at(e, r, c->path, line, "%s", msg.s);
    return terr_set(e, r, "%s", msg.s);
}

/* Expand text, a part of the config's value tmpl (a word of a command). */
static int expand_part(struct svc *s, const char *tmpl, const char *text, char **out, terr *e)
{
    struct lookup_ctx x = {.s = s};
    int r = tmpl_expand(text, lookup, &x, out, e);
    if (r < 0)
        r = expand_error(s, tmpl, x.unknown, r, e);
    free(x.unknown);
    return r;
}

int svc_expand(struct svc *s, const char *tmpl, char **out, terr *e)
{
    return expand_part(s, tmpl, tmpl, out, e);
}

int svc_compute_vars(struct svc *s, terr *e)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", (int)getpid());
    svc_setvar(s, "CONTROL_PID", buf);
    _cleanup_free_ char *cf = xasprintf("%s/%s.env", s->inst->dir, s->conf->label);
    _cleanup_free_ char *pf = xasprintf("%s/%s.pid", s->inst->dir, s->conf->label);
    svc_setvar(s, "CONFIGFILE", cf);
    svc_setvar(s, "PIDFILE", pf);
    svc_setvar(s, "DIR", s->dir);
    if (s->port) {
        snprintf(buf, sizeof(buf), "%d", s->port);
        svc_setvar(s, "HOST", "127.0.0.1");
        svc_setvar(s, "PORT", buf);
    }
    if (s->sockpath)
        svc_setvar(s, "SOCKET", s->sockpath);
    const struct tether_driver *d = s->conf->driver;
    if (d->variables) {
        int r = d->variables(s, e);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < s->conf->n_exports; i++) {
        char *v;
        int r = svc_expand(s, s->conf->exports[i].value, &v, e);
        if (r < 0)
            return r;
        svc_setvar(s, s->conf->exports[i].key, v);
        free(v);
    }
    return 0;
}

void svc_env_set(strv *env, const char *name, const char *value)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < env->n; i++)
        if (strncmp(env->v[i], name, n) == 0 && env->v[i][n] == '=') {
            free(env->v[i]);
            env->v[i] = xasprintf("%s=%s", name, value);
            return;
        }
    strv_pushf(env, "%s=%s", name, value);
}

void svc_setenv_global(struct svc *s, const char *name, const char *value)
{
    for (size_t i = 0; i < s->n_gvars; i++)
        if (streq(s->gvars[i].name, name)) {
            free(s->gvars[i].value);
            s->gvars[i].value = xstrdup(value);
            return;
        }
    s->gvars = xrealloc(s->gvars, (s->n_gvars + 1) * sizeof(*s->gvars));
    s->gvars[s->n_gvars].name = xstrdup(name);
    s->gvars[s->n_gvars].value = xstrdup(value);
    s->n_gvars++;
}

void svc_environ(struct svc *s, strv *env)
{
    for (char **p = environ; p && *p; p++)
        if (strncmp(*p, "NOTIFY_SOCKET=", 14) != 0 && strncmp(*p, "LISTEN_", 7) != 0)
            strv_push(env, *p);
    /* the variables of what it runs after, so an app finds its database */
    for (size_t i = 0; i < s->conf->after.n; i++) {
        for (size_t j = 0; j < s->inst->n_svcs; j++) {
            struct svc *o = &s->inst->svcs[j];
            if (strcasecmp(o->conf->label, s->conf->after.v[i]) != 0)
                continue;
            for (size_t k = 0; k < o->n_vars; k++) {
                _cleanup_free_ char *n = svc_varname(o, o->vars[k].name);
                svc_env_set(env, n, o->vars[k].value);
            }
            for (size_t k = 0; k < o->n_gvars; k++)
                svc_env_set(env, o->gvars[k].name, o->gvars[k].value);
        }
    }
    for (size_t k = 0; k < s->n_vars; k++) {
        _cleanup_free_ char *n = svc_varname(s, s->vars[k].name);
        svc_env_set(env, n, s->vars[k].value);
    }
    for (size_t i = 0; i < s->conf->n_env; i++) {
        char *v;
        if (svc_expand(s, s->conf->env[i].value, &v, NULL) == 0) {
            svc_env_set(env, s->conf->env[i].key, v);
            free(v);
        }
    }
    svc_env_set(env, COOKIE_VAR, s->inst->cookie);
}

int svc_open_log(struct svc *s, terr *e)
{
    int fd = open(s->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return terr_set(e, errno, "[%s] cannot open its log %s: %m", s->conf->label, s->logpath);
    return fd;
}

int svc_argv(struct svc *s, const char *tmpl, strv *argv, terr *e)
{
    _cleanup_strv_ strv words = {0};
    int r = split_words(tmpl, &words, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    for (size_t i = 0; i < words.n; i++) {
        char *w;
        if ((r = expand_part(s, tmpl, words.v[i], &w, e)) < 0)
            return r;
        /* A program named by a relative path (./bin/api-server, bin/x) is
         * the project's, found from the config file's directory as
         * init_sql is, whatever directory tether runs in; its working
         * directory stays ${dir}, so what it writes there goes with the
         * instance.  (Procfile runners make ./x work by running from the
         * Procfile's directory, docker-compose resolves paths against
         * its file's: the same expectation.)  A bare name is looked up in
         * PATH; arguments are the program's business: ${config_dir}/FILE
         * names a file of the project. */
        if (i == 0) {
            char *abs = config_program(s->inst->cfg, w, false);
            free(w);
            w = abs;
        }
        strv_push_own(argv, w);
    }
    return 0;
}

int svc_run_command(struct svc *s, const char *tmpl, pid_t *pid, terr *e)
{
    _cleanup_strv_ strv argv = {0};
    int r = svc_argv(s, tmpl, &argv, e);
    if (r < 0)
        return r;
    if (argv.n == 0)
        return terr_set(e, EINVAL, "[%s] empty command", s->conf->label);
    _cleanup_strv_ strv env = {0};
    svc_environ(s, &env);
    _cleanup_close_ int log = svc_open_log(s, e);
    if (log < 0)
        return log;
    struct spawn_opts o = {.argv = argv.v, .envp = env.v, .log_fd = log, .cwd = s->dir,
                           .pass_fd = -1, .drop_privs = s->run_as, .uid = s->uid, .gid = s->gid};
    r = spawn_process(&o, pid, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    return 0;
}

int svc_write_files(struct svc *s, terr *e)
{
    strbuf b = {0};
    for (size_t i = 0; i < s->n_vars; i++) {
        _cleanup_free_ char *n = svc_varname(s, s->vars[i].name);
        sb_add(&b, n);
        sb_addc(&b, '=');
        quote_sh(&b, s->vars[i].value);
        sb_addc(&b, '\n');
    }
    for (size_t i = 0; i < s->n_gvars; i++) {
        sb_add(&b, s->gvars[i].name);
        sb_addc(&b, '=');
        quote_sh(&b, s->gvars[i].value);
        sb_addc(&b, '\n');
    }
    _cleanup_free_ char *cf = xasprintf("%s.env", s->conf->label);
    int r = write_file_atomic(s->inst->dirfd, cf, b.s ? b.s : "", b.len, 0600);
    sb_free(&b);
    if (r < 0)
        return terr_set(e, r, "[%s] cannot write %s/%s: %s", s->conf->label, s->inst->dir, cf,
                        strerror(-r));
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)s->pid);
    _cleanup_free_ char *pf = xasprintf("%s.pid", s->conf->label);
    r = write_file_atomic(s->inst->dirfd, pf, pid, (size_t)n, 0600);
    if (r < 0)
        return terr_set(e, r, "[%s] cannot write %s/%s: %s", s->conf->label, s->inst->dir, pf,
                        strerror(-r));
    return 0;
}

void svc_log(struct svc *s, const char *fmt, ...)
{
    _cleanup_sb_ strbuf b = {0};
    sb_add(&b, "tether: ");
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    sb_addc(&b, '\n');
    _cleanup_close_ int fd = svc_open_log(s, NULL);
    if (fd >= 0 && write(fd, b.s, b.len) < 0)
        warn("[%s] cannot write to its log %s: %m (what tether says about it is lost there)",
             s->conf->label, s->logpath);
    fputs(b.s, stderr); /* the helper's own log */
}

char *svc_log_excerpt(const struct svc *s)
{
    _cleanup_free_ char *tail = file_tail(s->logpath, 20);
    _cleanup_free_ char *where = s->inst->name_logs ? xasprintf(" (%s)", s->logpath)
                                                    : xstrdup("");
    if (*tail)
        return xasprintf("\nlast lines of its log%s:\n%s", where, tail);
    return xasprintf(" (its log%s is empty)", where);
}

void svc_fail(struct svc *s, const char *fmt, ...)
{
    strbuf b = {0};
    sb_addf(&b, "[%s] ", s->conf->label);
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    /* a start that failed on its last port: say which it had tried */
    if (s->port_retries.len)
        sb_addf(&b, " (before that, %s)", s->port_retries.s);
    _cleanup_free_ char *log = svc_log_excerpt(s);
    sb_add(&b, log);
    snprintf(s->err.msg, sizeof(s->err.msg), "%s", b.s);
    sb_free(&b);
}
