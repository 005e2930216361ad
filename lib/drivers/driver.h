/* The service driver interface: one small vtable per kind of server.
 *
 * Who does what.  The helper (helper.c) owns the service's processes, its
 * state (pending, starting, ready, resetting, stopping, exited), readiness
 * waiting, logs, the instance directory and the cleanup order; it runs one
 * event loop in which nothing waits.  A driver says how its server is
 * configured, prepared, started, probed, health-checked and reset, and
 * what it hands back.  What it may see of its instance, and the toolkit it
 * builds on (one boolean parser, URL encoder, FILE:LINE formatter,
 * server-binary finder, pidfd wait, job/worker, data-directory cache), is
 * listed in lib/kit.h: never s->inst, never s->state.
 *
 * Hooks that may take time start an op (op.h) instead of waiting: they get
 * an idle op (op_init'ed: op->s is the service, op->fd -1), and either
 * finish at once (0, -EAGAIN, < 0 with e set) or fill the op and return
 * OP_STARTED; the helper then puts op->fd in its epoll set, arms its timer
 * for op->deadline_ns, and calls op->step() until it returns something
 * other than OP_PENDING: that is the hook's result, with the same meaning.
 * A hook whose op has no deadline gets none from the helper except where
 * said below.  job.h runs blocking code (a library with only blocking
 * calls) in a child as such an op; every child a driver starts is reaped
 * by the op's step or cancel (job.c does it), never by the helper's
 * catch-all.  The helper cancels ops (op_cancel) when the service stops,
 * and at once at shutdown.  At most one op per service is in flight: the
 * helper never calls a hook while the service's op is busy.
 *
 * Without a loop (gc, unit tests) op_run_blocking() drives the op.
 *
 * configure, argv and variables stay synchronous: they compute from what
 * is in memory or write a small file.  cleanup too (see there). */
#pragma once
#include "../config.h"
#include "../op.h"
#include "../util.h"

struct svc;

/* How long the helper lets a health op run, when it sets no deadline:
 * PQping's connect_timeout was 2 s. */
#define HEALTH_TIMEOUT_NS (2LL * 1000000000)

struct tether_driver {
    const char *name;    /* the config's driver = NAME */
    const char *package; /* Debian package that provides the server, for errors */

    /* Load time: validate driver-specific keys (svc_conf->opts) and fill
     * defaults (ready kind, stop signal...).  Errors as "FILE:LINE: msg";
     * `file` is the config path ("(built-in)" without one). */
    int (*configure)(struct svc_conf *c, const char *file, terr *e);
    /* Before each spawn (and each restart): write config files into s->dir,
     * build or copy data (a cache)...  0 | OP_STARTED | < 0.  May be NULL. */
    int (*prepare)(struct svc *s, struct op *op, terr *e);
    /* The argv (and extra "NAME=value" environment) to exec. */
    int (*argv)(struct svc *s, strv *argv, strv *env, terr *e);
    /* Readiness only (ready = driver), while the service starts: 0 ready,
     * OP_STARTED, -EAGAIN not yet (the helper probes again after a
     * backoff), anything else a hard failure.  The helper bounds the
     * whole wait by the service's timeout = (its op is cancelled then).
     * May be NULL (then ready = driver is refused at load time). */
    int (*probe)(struct svc *s, struct op *op, terr *e);
    /* Is this READY service answering (PING, SELECT 1)?  0 | OP_STARTED |
     * < 0 with e saying why in the server's own words (it reaches the user
     * as is).  Used by `status` and before a reset.  The helper gives its
     * op HEALTH_TIMEOUT_NS unless the op sets an earlier deadline.  May be
     * NULL: then a live process and (tcp/unix) a connect are the check. */
    int (*health)(struct svc *s, struct op *op, terr *e);
    /* The service just passed its readiness check (e.g. record what gc will
     * need, set a password): 0 | OP_STARTED | < 0 (the start fails).  It is
     * READY once this is done; the readiness deadline bounds the op unless
     * it sets its own.  May be NULL. */
    int (*on_ready)(struct svc *s, struct op *op, terr *e);
    /* Native reset (e.g. FLUSHALL): 0 | OP_STARTED | < 0.  The service is
     * "resetting" meanwhile (status says so; the client waits for the
     * reply, nobody else does).  The helper gives the op the service's
     * timeout = unless it sets an earlier deadline.  NULL: the config's
     * reset command or restart. */
    int (*reset)(struct svc *s, struct op *op, terr *e);
    /* The reset talks to the server and fails clearly when it does not
     * answer: no health probe before it. */
    bool reset_checks_health;
    /* Runs after a reset's reply went out, while the test works: prepare
     * the next reset (e.g. a spare database copy).  0 | OP_STARTED | < 0
     * (logged as a warning: the reset itself worked).  A reset asked for
     * meanwhile waits for it.  May be NULL. */
    int (*after_reset)(struct svc *s, struct op *op, terr *e);
    /* A name of the driver's own in the service's templates, wherever they
     * are expanded (its files, command line, ready = send:..., exports): a
     * recipe's options, ${program}, ${password}.  0 with *value set (valid
     * until the service is freed), -ENOENT for a name it does not have.
     * Names with a '.' never reach it.  May be NULL. */
    int (*lookup)(struct svc *s, const char *name, const char **value);
    /* The names lookup has (NULL-terminated), which the config's load time
     * checks accept in the service's own templates. */
    const char *const *names;
    /* Add the driver's variables with svc_setvar(). May be NULL. */
    int (*variables)(struct svc *s, terr *e);
    /* After all processes are gone: drop external state (databases, shared
     * memory).  Synchronous: it runs once, in the shutdown, after every
     * process is gone and nothing else is served; it must bound its own
     * waits (a job with a deadline: job_run).  May be NULL. */
    int (*cleanup)(struct svc *s, terr *e);
    /* The same for gc, which has only the dead instance's service
     * directory (svcdir_fd) to go on.  May be NULL. */
    int (*reap)(int svcdir_fd, const char *svcdir, terr *e);
    /* Free driver_data.  May be NULL (then free() is used). */
    void (*free)(struct svc *s);
    /* The variables the driver sets (NULL-terminated), so that other
     * services' templates can name them: ${postgresql.URL}. */
    const char *const *vars;
    /* Said on the user's stderr by run and start when the service listens
     * on TCP (e.g. that it has no password there).  May be NULL. */
    const char *tcp_warning;
    /* Variables outside the service's prefix that it may set, paired with
     * the service variable each copies: {"REDIS_URL", "URL", NULL}. */
    const char *const *globals;
    /* The driver's own keys (NULL-terminated; one ending in '.' is a
     * prefix: "setting." takes setting.NAME).  The config refuses any other
     * key before configure() runs, naming the closest known one. */
    const char *const *keys;
    /* Those of its keys that are command lines (split into words, ${...}
     * expanded, the program found like command's) or templates: the
     * config checks their ${names} at load time. */
    const char *const *command_keys;
    const char *const *template_keys;
    /* Those of its keys that name a program (a bare name is looked up in
     * PATH) or a directory: a relative one is made absolute against the
     * config file's directory when the config is loaded. */
    const char *const *program_keys;
    const char *const *dir_keys;
};

/* Add to names the globals (PGHOST, REDIS_URL...) whose value in this
 * environment is that of the service's own variable under stem: they were
 * set by that service, and stop unsets them even once it is gone. */
void driver_globals_of(const char *stem, strv *names);

/* The driver `name` as a config with [tether] drivers = config_dir (NULL
 * without) finds it: a user's recipe, a C built-in, an installed or
 * compiled-in recipe (registry.c has the order).  NULL when there is none;
 * NULL with e set (if e is not NULL) when the recipe of that name is broken
 * (its "FILE:LINE: ..." errors). */
const struct tether_driver *driver_lookup(const char *config_dir, const char *name, terr *e);
/* driver_lookup without a config. */
const struct tether_driver *driver_find(const char *name);
/* The i-th of the drivers tether ships, as driver_find finds them: the C
 * built-ins, then the compiled-in recipes; NULL past the last. */
const struct tether_driver *driver_at(size_t i);

/* What `tether drivers` lists: every driver the search path offers, the
 * C built-ins first, then recipes by name. */
struct driver_entry {
    char *name;
    char *from;   /* "built-in (C)", "built-in" (a compiled-in recipe), or the recipe's file */
    const struct tether_driver *driver; /* NULL: the recipe is broken (error) */
    char *error;
};
size_t driver_list(const char *config_dir, struct driver_entry **out);
void driver_list_free(struct driver_entry *v, size_t n);
/* "command, postgresql, redis, memcached" into b (without command when
 * builtin_only: the drivers that run with no config file). */
void driver_names(const char *config_dir, strbuf *b, bool builtin_only);
/* The driver name a typo most likely meant ("postgress"), or NULL. */
const char *driver_closest(const char *config_dir, const char *name, bool builtin_only);

extern const struct tether_driver driver_command;
extern const struct tether_driver driver_postgresql;
extern const struct tether_driver driver_redis;
extern const struct tether_driver driver_mariadb;
extern const struct tether_driver driver_slapd;
extern const struct tether_driver driver_container;
