/* The fixture API (include/tether/tether.h): a service started by the
 * `tether` program in the background and tied to the calling process.
 *
 * Starting: posix_spawn `tether -q [-f CONFIG] start --json --watch-pid
 * OUR_PID NAME` (posix_spawn: safe in multi-threaded processes), read its
 * JSON.  The helper it leaves running watches our pid through a pidfd: when
 * this process exits, however it exits, the helper stops the service and
 * removes its state.  Nothing else of ours is inherited by the helper, so
 * a forked child of ours does not keep the service alive and cannot stop
 * it by exiting.
 *
 * Reset and stop talk to the helper directly (its control socket; SIGTERM
 * to its verified pid): no process is spawned for them. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "client.h"
#include "config.h"
#include "fsutil.h"
#include "json.h"
#include "tether-build.h"
#include <tether/tether.h>

extern char **environ;

#define STOP_TIMEOUT_NS (120LL * 1000000000LL)

struct tether_service {
    char *name;        /* as given */
    char *config_path; /* absolute, or NULL for built-in drivers */
    char *label;       /* the section name */
    char *stem;        /* PREFIX_LABEL */
    int cfg_rc;        /* < 0: the name or config is bad (cfg_err) */
    terr cfg_err;

    bool active;   /* set up and not yet cleaned up */
    bool attached; /* TETHER_USE_EXISTING: not ours to stop */
    bool in_set;   /* started by tether_setup_all: its set stops the instance */
    pid_t owner;   /* the process that set it up */
    pid_t helper;  /* CONTROL_PID */
    char *instdir;
    char *configfile;
    struct var *vars;
    size_t n_vars;

    tether_log_fn log;
    void *log_ud;
    terr err;
};

static void logf_(tether_service *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(tether_service *s, const char *fmt, ...)
{
    if (!s->log)
        return;
    strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    s->log(s->log_ud, b.s);
    sb_free(&b);
}

/* ---- the handle ---- */

tether_service *tether_service_new(const char *name, const char *config_file)
{
    tether_service *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = xstrdup(name ? name : "");
    if (!name || !*name) {
        s->cfg_rc = terr_set(&s->cfg_err, EINVAL, "no service name given");
        return s;
    }
    struct tether_config *cfg = NULL;
    if (config_file) {
        char *abs = realpath(config_file, NULL);
        if (!abs) {
            s->cfg_rc = terr_set(&s->cfg_err, errno, "config file %s: %m", config_file);
            return s;
        }
        s->config_path = abs;
        s->cfg_rc = config_load(abs, &cfg, &s->cfg_err);
        /* a built-in driver the file has no section for: the built-in, as
         * `tether -f FILE start NAME` starts it (with its own names) */
        const char *names[] = {name};
        _cleanup_sb_ strbuf note = {0};
        int r = s->cfg_rc < 0 ? 0 : config_use_builtins(&cfg, names, 1, &note, &s->cfg_err);
        if (r < 0)
            s->cfg_rc = r;
        if (r > 0) {
            free(s->config_path);
            s->config_path = NULL;
        }
    } else {
        const char *names[] = {name};
        s->cfg_rc = config_builtin(names, 1, &cfg, &s->cfg_err);
    }
    if (s->cfg_rc < 0)
        return s;
    const struct svc_conf *c = config_find(cfg, name);
    if (!c) {
        s->cfg_rc = terr_set(&s->cfg_err, ENOENT, "%s has no service [%s]",
                             s->config_path ? s->config_path : "the built-in config", name);
    } else {
        s->label = xstrdup(c->label);
        s->stem = config_varname(cfg->prefix, c, NULL);
    }
    config_free(cfg);
    return s;
}

void tether_set_log(tether_service *s, tether_log_fn fn, void *ud)
{
    if (!s)
        return;
    s->log = fn;
    s->log_ud = ud;
}

const char *tether_strerror(const tether_service *s)
{
    return s ? s->err.msg : "no tether_service (out of memory?)";
}

const char *tether_label(const tether_service *s)
{
    return s && s->label ? s->label : (s ? s->name : NULL);
}

const char *tether_config_file(const tether_service *s)
{
    return s && s->active ? s->configfile : NULL;
}

const char *tether_var(const tether_service *s, const char *key)
{
    if (!s || !key || !s->active)
        return NULL;
    _cleanup_free_ char *full = xasprintf("%s_%s", s->stem, key);
    for (size_t i = 0; i < s->n_vars; i++)
        if (streq(s->vars[i].name, full))
            return s->vars[i].value;
    for (size_t i = 0; i < s->n_vars; i++)
        if (streq(s->vars[i].name, key))
            return s->vars[i].value;
    return NULL;
}

int tether_var_at(const tether_service *s, unsigned n, const char **name, const char **value)
{
    if (!s || !s->active || n >= s->n_vars)
        return -1;
    if (name)
        *name = s->vars[n].name;
    if (value)
        *value = s->vars[n].value;
    return 0;
}

static void forget(tether_service *s)
{
    json_vars_free(s->vars, s->n_vars);
    s->vars = NULL;
    s->n_vars = 0;
    free(s->instdir);
    free(s->configfile);
    s->instdir = s->configfile = NULL;
    s->helper = 0;
    s->active = s->attached = s->in_set = false;
}

/* After the variables are known: find the instance they name. */
static int take_vars(tether_service *s, struct var *vars, size_t n)
{
    s->vars = vars;
    s->n_vars = n;
    s->active = true; /* so that tether_var works */
    const char *pid = tether_var(s, "CONTROL_PID"), *cf = tether_var(s, "CONFIGFILE");
    char *end = NULL;
    long v = pid ? strtol(pid, &end, 10) : 0;
    if (!cf || *cf != '/' || !pid || *end || v <= 0) {
        s->active = false;
        return terr_set(&s->err, EPROTO,
                        "[%s] tether start did not hand back %s_CONTROL_PID and "
                        "%s_CONFIGFILE",
                        s->label, s->stem, s->stem);
    }
    s->helper = (pid_t)v;
    s->configfile = xstrdup(cf);
    _cleanup_free_ char *c = xstrdup(cf);
    s->instdir = xstrdup(dirname(c));
    return 0;
}

/* ---- finding and running the tether program ---- */

static bool executable(const char *path)
{
    struct stat st;
    return access(path, X_OK) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int find_tether(char **out, terr *e)
{
    const char *env = getenv("TETHER_BIN");
    if (env && *env) {
        if (!executable(env))
            return terr_set(e, errno ? errno : EACCES,
                            "TETHER_BIN=%s is not an executable file", env);
        *out = xstrdup(env);
        return 0;
    }
    /* a build tree: libtether.so next to the tether it was built with */
    Dl_info di;
    if (dladdr((void *)tether_setup, &di) && di.dli_fname) {
        _cleanup_free_ char *c1 = xstrdup(di.dli_fname), *c2 = xstrdup(di.dli_fname);
        if (strncmp(basename(c1), "libtether", 9) == 0) {
            _cleanup_free_ char *p = xasprintf("%s/tether", dirname(c2));
            if (executable(p)) {
                *out = take_ptr(&p);
                return 0;
            }
        }
    }
    if (executable(TETHER_BINDIR "/tether")) {
        *out = xstrdup(TETHER_BINDIR "/tether");
        return 0;
    }
    const char *path = getenv("PATH");
    if (path) {
        _cleanup_free_ char *copy = xstrdup(path);
        char *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            _cleanup_free_ char *p = xasprintf("%s/tether", *d ? d : ".");
            if (executable(p)) {
                *out = take_ptr(&p);
                return 0;
            }
        }
    }
    return terr_set(e, ENOENT,
                    "cannot find the tether program: not at %s/tether nor on $PATH; set "
                    "TETHER_BIN to its path",
                    TETHER_BINDIR);
}

/* Read stdout and stderr of the child until both are closed. */
static void read_both(int out, int err, strbuf *o, strbuf *e)
{
    struct pollfd p[2] = {{.fd = out, .events = POLLIN}, {.fd = err, .events = POLLIN}};
    strbuf *bufs[2] = {o, e};
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char buf[8192];
            ssize_t n = read(p[i].fd, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0)
                p[i].fd = -1;
            else
                sb_addn(bufs[i], buf, (size_t)n);
        }
    }
}

/* Run argv; its stdout in *out, its stderr in *errout, its wait status in
 * *status (-1 if someone else reaped it). */
static int run_tether(char **argv, bool chdir_root, strbuf *out, strbuf *errout, int *status,
                      terr *e)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        int r = terr_set(e, errno, "pipe: %m");
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        return r;
    }
    /* (a caller that closed its stdin/stdout/stderr gets low fds from
     * pipe2, which the dup2s below would overwrite: move them up) */
    int *fds[4] = {&po[0], &po[1], &pe[0], &pe[1]};
    for (int i = 0; i < 4; i++)
        if (*fds[i] < 3) {
            int hi = fcntl(*fds[i], F_DUPFD_CLOEXEC, 3);
            if (hi >= 0) {
                close(*fds[i]);
                *fds[i] = hi;
            }
        }
    /* The environment as it is, less a config file that would override
     * the one we mean. */
    strv env = {0};
    for (char **p = environ; p && *p; p++)
        if (strncmp(*p, "TETHER_CONFIG=", 14) != 0)
            strv_push(&env, *p);
    if (!env.v)
        strv_pushf(&env, "PATH=/usr/bin:/bin");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    /* nothing else of ours: the helper outlives this call */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (chdir_root) /* so that no ./tether.ini is taken for the config */
        posix_spawn_file_actions_addchdir_np(&fa, "/");
    sigset_t none, dfl;
    sigemptyset(&none);
    sigfillset(&dfl);
    sigdelset(&dfl, SIGKILL);
    sigdelset(&dfl, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int r = posix_spawn(&pid, argv[0], &fa, &at, argv, env.v);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    strv_free(&env);
    close(po[1]);
    close(pe[1]);
    if (r != 0) {
        close(po[0]);
        close(pe[0]);
        return terr_set(e, r, "cannot run %s: %s", argv[0], strerror(r));
    }
    read_both(po[0], pe[0], out, errout);
    close(po[0]);
    close(pe[0]);
    *status = -1;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, 0);
        if (w == pid) {
            *status = st;
            break;
        }
        if (w < 0 && errno != EINTR)
            break; /* SIGCHLD ignored, or reaped by someone else */
    }
    return 0;
}

static void chomp(strbuf *b)
{
    while (b->len && (b->s[b->len - 1] == '\n' || b->s[b->len - 1] == ' '))
        b->s[--b->len] = '\0';
}

/* `tether start --json` of the labels as one instance tied to our pid: its
 * variables in *vars.  `what` names them in errors ("[a]", "[a], [b]"), first. */
static int spawn_start(const char *config_path, const char *const *labels, size_t n, bool fixed,
                       const char *what, struct var **vars, size_t *nv, terr *e)
{
    _cleanup_free_ char *bin = NULL;
    int r = find_tether(&bin, e);
    if (r < 0)
        return r;
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    _cleanup_strv_ strv argv = {0};
    strv_push(&argv, bin);
    strv_push(&argv, "-q");
    if (config_path) {
        strv_push(&argv, "-f");
        strv_push(&argv, config_path);
    }
    strv_push(&argv, "start");
    strv_push(&argv, "--json");
    strv_push(&argv, "--watch-pid");
    strv_push(&argv, pid);
    if (fixed)
        strv_push(&argv, "--fixed");
    for (size_t i = 0; i < n; i++)
        strv_push(&argv, labels[i]);
    _cleanup_sb_ strbuf out = {0}, err = {0};
    int status = -1;
    r = run_tether(argv.v, config_path == NULL, &out, &err, &status, e);
    if (r < 0)
        return r;
    chomp(&err);
    bool ok = status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (ok && out.len && json_flat_parse(out.s, out.len, vars, nv, e) == 0)
        return 0;
    if (err.len) {
        const char *msg = err.s;
        if (strncmp(msg, "tether: ", 8) == 0)
            msg += 8;
        if (n == 1) /* what names it already */
            msg = unlabeled(msg, labels[0]);
        return terr_set(e, EIO, "%s cannot start: %s", what, msg);
    }
    if (!ok)
        return terr_set(e, EIO, "%s cannot start: %s exited with status %d", what, bin,
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    if (!out.len)
        return terr_set(e, EIO, "%s cannot start: %s start printed nothing", what, bin);
    return terr_prefix(e, -EIO, "%s cannot start", what);
}

static int start_new(tether_service *s, bool fixed)
{
    _cleanup_free_ char *what = xasprintf("[%s]", s->label);
    const char *labels[] = {s->label};
    struct var *vars = NULL;
    size_t n = 0;
    int r = spawn_start(s->config_path, labels, 1, fixed, what, &vars, &n, &s->err);
    if (r < 0)
        return r;
    r = take_vars(s, vars, n);
    if (r < 0)
        forget(s);
    return r;
}

/* ---- attaching to an instance the environment names ---- */

static int read_configfile(const char *path, struct var **vars, size_t *n, terr *e)
{
    _cleanup_free_ char *text = NULL;
    int r = read_file_trusted(AT_FDCWD, path, geteuid(), CONFIGFILE_MAX, &text, NULL, e);
    if (r < 0)
        return r;
    *vars = NULL;
    *n = 0;
    const char *p = text;
    while (*p) {
        const char *eq = strchr(p, '=');
        if (!eq)
            break;
        _cleanup_free_ char *name = xstrndup(p, (size_t)(eq - p));
        p = eq + 1;
        strbuf v = {0};
        if (!valid_var_name(name) || unquote_sh(&p, &v) < 0) {
            sb_free(&v);
            json_vars_free(*vars, *n);
            *vars = NULL;
            *n = 0;
            return terr_set(e, EINVAL, "%s is not a tether CONFIGFILE (bad line at byte %zu)",
                            path, (size_t)(eq - text));
        }
        *vars = xrealloc(*vars, (*n + 1) * sizeof(**vars));
        (*vars)[*n].name = take_ptr(&name);
        (*vars)[*n].value = sb_steal(&v);
        (*n)++;
        while (*p == '\n')
            p++;
    }
    return 0;
}

/* The helper's status line for our label: "label state rest". */
static int check_ready(tether_service *s)
{
    _cleanup_free_ char *reply = NULL;
    terr e;
    if (control_request(s->instdir, s->helper, "status", &reply, &e) < 0)
        return terr_set(&s->err, EIO, "[%s] %s", s->label, e.msg);
    size_t ll = strlen(s->label);
    for (const char *p = reply; p && *p;) {
        if (strncasecmp(p, s->label, ll) == 0 && p[ll] == ' ') {
            const char *st = p + ll + 1;
            size_t sl = strcspn(st, "\n");
            if (strncmp(st, "ready ", 6) == 0)
                return 0;
            return terr_set(&s->err, EIO,
                            "[%s] (%s) is not usable: it is %.*s; it is never "
                            "restarted silently: stop that instance and start a new one",
                            s->label, s->instdir, (int)sl, st);
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return terr_set(&s->err, ENOENT, "the instance %s has no service '%s'", s->instdir,
                    s->label);
}

static int attach(tether_service *s, const char *pidstr, const char *cf)
{
    char *end;
    long v = strtol(pidstr, &end, 10);
    if (!*pidstr || *end || v <= 0 || *cf != '/')
        return terr_set(&s->err, EINVAL,
                        "%s_CONTROL_PID=%s and %s_CONFIGFILE=%s do not name a tether instance",
                        s->stem, pidstr, s->stem, cf);
    _cleanup_free_ char *c = xstrdup(cf);
    _cleanup_free_ char *instdir = xstrdup(dirname(c));
    if (!instance_alive(instdir, (pid_t)v))
        return terr_set(&s->err, ESRCH,
                        "[%s] is not running: the environment names it "
                        "(%s_CONTROL_PID=%ld, %s_CONFIGFILE=%s), but that tether helper is "
                        "gone, so the service crashed or was stopped.  Start it again "
                        "(eval \"$(tether start ...)\"), or unset those variables to get a new "
                        "private instance",
                        s->label, s->stem, v, s->stem, cf);
    s->instdir = take_ptr(&instdir);
    s->configfile = xstrdup(cf);
    s->helper = (pid_t)v;
    int r = check_ready(s);
    struct var *vars = NULL;
    size_t n = 0;
    if (r == 0)
        r = read_configfile(cf, &vars, &n, &s->err);
    if (r < 0) {
        forget(s);
        return r;
    }
    free(s->instdir);
    free(s->configfile);
    s->instdir = s->configfile = NULL;
    if ((r = take_vars(s, vars, n)) < 0) {
        forget(s);
        return r;
    }
    s->attached = true;
    return 0;
}

/* ---- the fixture ---- */

int tether_setup(tether_service *s, unsigned flags)
{
    if (!s)
        return -EINVAL;
    s->err.msg[0] = '\0';
    if (s->cfg_rc < 0) {
        s->err = s->cfg_err;
        return s->cfg_rc;
    }
    if (flags & ~(TETHER_USE_EXISTING | TETHER_FIXED_INSTANCE))
        return terr_set(&s->err, EINVAL, "tether_setup: unknown flags 0x%x", flags);
    if (s->active)
        return terr_set(&s->err, EALREADY, "[%s] is already set up", s->label);
    s->owner = getpid();
    if (flags & TETHER_USE_EXISTING) {
        _cleanup_free_ char *pn = xasprintf("%s_CONTROL_PID", s->stem);
        _cleanup_free_ char *cn = xasprintf("%s_CONFIGFILE", s->stem);
        const char *pid = getenv(pn), *cf = getenv(cn);
        if ((pid && *pid) || (cf && *cf)) {
            if (!pid || !*pid || !cf || !*cf)
                return terr_set(&s->err, EINVAL,
                                "[%s] %s is set but %s is not, so the environment "
                                "does not say which instance to use (eval \"$(tether start "
                                "...)\" sets both)",
                                s->label, pid && *pid ? pn : cn, pid && *pid ? cn : pn);
            int r = attach(s, pid, cf);
            if (r == 0)
                logf_(s, "[%s] attached (helper pid %d, %s)", s->label,
                      (int)s->helper, s->configfile);
            return r;
        }
    }
    int r = start_new(s, flags & TETHER_FIXED_INSTANCE);
    if (r == 0)
        logf_(s, "[%s] started (helper pid %d, %s)", s->label, (int)s->helper,
              s->configfile);
    return r;
}

static int not_running(tether_service *s)
{
    return terr_set(&s->err, ESRCH,
                    "[%s] is not running: its tether helper (%s_CONTROL_PID=%d) is "
                    "gone, so the service crashed or was killed; it is not restarted silently",
                    s->label, s->stem, (int)s->helper);
}

int tether_reset(tether_service *s)
{
    if (!s)
        return -EINVAL;
    s->err.msg[0] = '\0';
    if (!s->active)
        return terr_set(&s->err, EINVAL, "[%s] is not set up (call tether_setup)",
                        tether_label(s));
    if (!instance_alive(s->instdir, s->helper))
        return not_running(s);
    _cleanup_free_ char *req = xasprintf("reset %s", s->label);
    _cleanup_free_ char *reply = NULL;
    terr e;
    if (control_request(s->instdir, s->helper, req, &reply, &e) < 0) {
        if (!instance_alive(s->instdir, s->helper))
            return not_running(s);
        return terr_set(&s->err, EIO, "[%s] reset: %s", s->label, e.msg);
    }
    if (strncmp(reply, "OK", 2) != 0)
        return terr_set(&s->err, EIO, "[%s] reset failed: %s", s->label,
                        unlabeled(strncmp(reply, "ERR ", 4) == 0 ? reply + 4 : reply, s->label));
    logf_(s, "[%s] reset", s->label);
    return 0;
}

int tether_cleanup(tether_service *s)
{
    if (!s)
        return -EINVAL;
    s->err.msg[0] = '\0';
    if (!s->active)
        return 0;
    if (s->attached) {
        logf_(s, "[%s] detached; it keeps running", s->label);
        forget(s);
        return 0;
    }
    if (s->in_set) {
        /* its instance holds the set's other services too: tether_cleanup_all stops it */
        forget(s);
        return 0;
    }
    if (getpid() != s->owner) {
        /* a forked child: the instance is its parent's */
        forget(s);
        return 0;
    }
    terr e;
    int r = instance_stop(s->instdir, s->helper, STOP_TIMEOUT_NS, &e);
    if (r < 0)
        return terr_set(&s->err, -r, "[%s] cannot stop: %s", s->label, e.msg);
    /* if we are a subreaper, the orphaned helper was ours to reap */
    while (waitpid(s->helper, NULL, WNOHANG) < 0 && errno == EINTR)
        ;
    logf_(s, "[%s] stopped, its state removed", s->label);
    forget(s);
    return 0;
}

void tether_service_free(tether_service *s)
{
    if (!s)
        return;
    if (s->active && tether_cleanup(s) < 0)
        forget(s);
    free(s->name);
    free(s->config_path);
    free(s->label);
    free(s->stem);
    free(s);
}

/* ---- every service of a config: one instance, one call ---- */

struct tether_services {
    tether_service **svc; /* in the order named, or the config's order */
    size_t n;
    char *config_path; /* absolute, or NULL for built-in drivers */
    pid_t owner;       /* the process that set it up */
    pid_t helper;      /* of the instance we started; 0: none */
    char *instdir;
    terr err;
};

static int add_member(tether_services *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcasecmp(tether_label(a->svc[i]), name) == 0)
            return 0; /* named twice: one service */
    tether_service *m = tether_service_new(name, a->config_path);
    if (!m)
        return terr_set(&a->err, ENOMEM, "out of memory");
    a->svc = xrealloc(a->svc, (a->n + 1) * sizeof(*a->svc));
    a->svc[a->n++] = m;
    if (m->cfg_rc < 0) {
        a->err = m->cfg_err;
        return m->cfg_rc;
    }
    return 0;
}

/* The members: the services named (commas or blanks between them), else
 * every service of the config file. */
static int set_members(tether_services *a, const char *config_file, const char *names)
{
    if (config_file) {
        a->config_path = realpath(config_file, NULL);
        if (!a->config_path)
            return terr_set(&a->err, errno, "config file %s: %m", config_file);
    }
    if (names && names[strspn(names, ", \t\n")]) {
        _cleanup_free_ char *copy = xstrdup(names);
        char *save = NULL;
        for (char *w = strtok_r(copy, ", \t\n", &save); w; w = strtok_r(NULL, ", \t\n", &save)) {
            int r = add_member(a, w);
            if (r < 0)
                return r;
        }
        return 0;
    }
    if (!a->config_path)
        return terr_set(&a->err, EINVAL,
                        "tether_setup_all: no config file and no services named: name the "
                        "built-in drivers (\"postgresql redis\") or give a config file");
    struct tether_config *cfg = NULL;
    int r = config_load(a->config_path, &cfg, &a->err);
    for (size_t i = 0; r == 0 && i < cfg->n_svcs; i++)
        r = add_member(a, cfg->svcs[i]->label);
    config_free(cfg);
    return r;
}

/* TETHER_USE_EXISTING: attach each member that the environment names. */
static int set_attach(tether_services *a)
{
    for (size_t i = 0; i < a->n; i++) {
        tether_service *m = a->svc[i];
        _cleanup_free_ char *pn = xasprintf("%s_CONTROL_PID", m->stem);
        _cleanup_free_ char *cn = xasprintf("%s_CONFIGFILE", m->stem);
        const char *pid = getenv(pn), *cf = getenv(cn);
        if (!(pid && *pid) && !(cf && *cf))
            continue;
        int r = tether_setup(m, TETHER_USE_EXISTING);
        if (r < 0) {
            a->err = m->err;
            return r;
        }
    }
    return 0;
}

static struct var *vars_copy(const struct var *v, size_t n)
{
    struct var *c = xcalloc(n ? n : 1, sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        c[i].name = xstrdup(v[i].name);
        c[i].value = xstrdup(v[i].value);
    }
    return c;
}

/* The instance that `tether start` made, from its first CONTROL_PID and
 * CONFIGFILE: before any member takes its variables, so that a failure
 * there can still stop it. */
static void set_instance(tether_services *a, const struct var *v, size_t n)
{
    const char *pid = NULL, *cf = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i].name);
        if (!pid && l > 12 && streq(v[i].name + l - 12, "_CONTROL_PID"))
            pid = v[i].value;
        if (!cf && l > 11 && streq(v[i].name + l - 11, "_CONFIGFILE"))
            cf = v[i].value;
    }
    long p = pid ? strtol(pid, NULL, 10) : 0;
    if (p <= 0 || !cf || *cf != '/')
        return; /* take_vars says what is missing */
    _cleanup_free_ char *c = xstrdup(cf);
    a->helper = (pid_t)p;
    a->instdir = xstrdup(dirname(c));
}

/* The members not attached, started together as one instance: one helper,
 * `after =` honoured, and one failing service stops all of them. */
static int set_start(tether_services *a, bool fixed)
{
    strv labels = {0};
    _cleanup_sb_ strbuf what = {0};
    for (size_t i = 0; i < a->n; i++)
        if (!a->svc[i]->active) {
            sb_addf(&what, "%s[%s]", labels.n ? ", " : "", a->svc[i]->label);
            strv_push(&labels, a->svc[i]->label);
        }
    if (!labels.n)
        return 0;
    const char *w = what.s;
    struct var *vars = NULL;
    size_t nv = 0;
    int r = spawn_start(a->config_path, (const char *const *)labels.v, labels.n, fixed, w,
                        &vars, &nv, &a->err);
    strv_free(&labels);
    if (r < 0)
        return r;
    set_instance(a, vars, nv);
    for (size_t i = 0; r == 0 && i < a->n; i++) {
        tether_service *m = a->svc[i];
        if (m->active)
            continue;
        m->owner = getpid();
        r = take_vars(m, vars_copy(vars, nv), nv);
        if (r < 0) {
            a->err = m->err;
            forget(m);
            break;
        }
        m->in_set = true;
        logf_(m, "[%s] started (helper pid %d, %s)", m->label, (int)m->helper,
              m->configfile);
    }
    json_vars_free(vars, nv);
    return r;
}

/* After a failed setup: stop what we started, let go of what we attached. */
static void set_undo(tether_services *a)
{
    if (a->helper) {
        terr e;
        if (instance_stop(a->instdir, a->helper, STOP_TIMEOUT_NS, &e) >= 0)
            while (waitpid(a->helper, NULL, WNOHANG) < 0 && errno == EINTR)
                ;
    }
    for (size_t i = 0; i < a->n; i++)
        forget(a->svc[i]);
    free(a->instdir);
    a->instdir = NULL;
    a->helper = 0;
}

int tether_setup_all(const char *config_file, const char *services, unsigned flags,
                     tether_services **out)
{
    if (!out)
        return -EINVAL;
    tether_services *a = *out = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->owner = getpid();
    if (flags & ~(TETHER_USE_EXISTING | TETHER_FIXED_INSTANCE))
        return terr_set(&a->err, EINVAL, "tether_setup_all: unknown flags 0x%x", flags);
    int r = set_members(a, config_file, services);
    if (r == 0 && (flags & TETHER_USE_EXISTING))
        r = set_attach(a);
    if (r == 0)
        r = set_start(a, flags & TETHER_FIXED_INSTANCE);
    if (r < 0)
        set_undo(a);
    return r;
}

tether_service *tether_get(const tether_services *a, const char *label)
{
    for (size_t i = 0; a && label && i < a->n; i++)
        if (strcasecmp(tether_label(a->svc[i]), label) == 0)
            return a->svc[i];
    return NULL;
}

const char *tether_strerror_all(const tether_services *a)
{
    return a ? a->err.msg : "no tether_services (out of memory?)";
}

int tether_reset_all(tether_services *a)
{
    if (!a)
        return -EINVAL;
    a->err.msg[0] = '\0';
    for (size_t i = 0; i < a->n; i++) {
        int r = tether_reset(a->svc[i]);
        if (r < 0) {
            a->err = a->svc[i]->err;
            return r;
        }
    }
    return 0;
}

int tether_cleanup_all(tether_services *a)
{
    if (!a)
        return -EINVAL;
    a->err.msg[0] = '\0';
    if (a->helper && getpid() == a->owner) {
        terr e;
        int r = instance_stop(a->instdir, a->helper, STOP_TIMEOUT_NS, &e);
        if (r < 0)
            return terr_set(&a->err, -r, "cannot stop the services of %s: %s", a->instdir,
                            e.msg);
        /* if we are a subreaper, the orphaned helper was ours to reap */
        while (waitpid(a->helper, NULL, WNOHANG) < 0 && errno == EINTR)
            ;
        for (size_t i = 0; i < a->n; i++)
            if (a->svc[i]->in_set)
                logf_(a->svc[i], "[%s] stopped, its state removed", a->svc[i]->label);
    }
    for (size_t i = 0; i < a->n; i++)
        tether_cleanup(a->svc[i]); /* attached, or in the set: cannot fail */
    free(a->instdir);
    a->instdir = NULL;
    a->helper = 0;
    return 0;
}

void tether_services_free(tether_services *a)
{
    if (!a)
        return;
    if (a->helper && tether_cleanup_all(a) < 0)
        a->helper = 0;
    for (size_t i = 0; i < a->n; i++)
        tether_service_free(a->svc[i]);
    free(a->svc);
    free(a->config_path);
    free(a->instdir);
    free(a);
}

/* ---- cmocka's group setup, teardown and per-test setup ---- */

static struct {
    bool configured;
    char *config_file, *services;
    unsigned flags;
    tether_services *all;
} group;

void tether_group_config(const char *config_file, const char *services, unsigned flags)
{
    free(group.config_file);
    free(group.services);
    group.config_file = config_file ? xstrdup(config_file) : NULL;
    group.services = services ? xstrdup(services) : NULL;
    group.flags = flags;
    group.configured = true;
}

tether_services *tether_group(void)
{
    return group.all;
}

/* (test programs: the message goes to stderr, where cmocka's own go) */
static int group_fail(const char *what)
{
    fprintf(stderr, "tether: %s: %s\n", what, tether_strerror_all(group.all));
    return -1;
}

int tether_group_setup(void **state)
{
    const char *cf = getenv("TETHER_CONFIG");
    const char *config = group.configured ? group.config_file : cf && *cf ? cf : "tether.ini";
    unsigned flags = group.configured ? group.flags : TETHER_USE_EXISTING;
    if (group.all) {
        fprintf(stderr, "tether: tether_group_setup: a group is set up already "
                        "(tether_group_teardown ends it)\n");
        return -1;
    }
    if (tether_setup_all(config, group.configured ? group.services : NULL, flags, &group.all) <
        0) {
        group_fail("tether_group_setup");
        tether_services_free(group.all);
        group.all = NULL;
        return -1;
    }
    if (state)
        *state = group.all;
    return 0;
}

int tether_group_reset(void **state)
{
    if (state && !*state)
        *state = group.all;
    if (!group.all) {
        fprintf(stderr, "tether: tether_group_reset: no group set up (tether_group_setup)\n");
        return -1;
    }
    return tether_reset_all(group.all) < 0 ? group_fail("tether_group_reset") : 0;
}

int tether_group_teardown(void **state)
{
    int r = 0;
    if (group.all && tether_cleanup_all(group.all) < 0)
        r = group_fail("tether_group_teardown");
    tether_services_free(group.all);
    group.all = NULL;
    if (state)
        *state = NULL;
    return r;
}
