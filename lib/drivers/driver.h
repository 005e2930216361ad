/* The service driver interface: one small vtable per kind of server.
 * The core (helper.c) owns processes, readiness waiting, logs and cleanup;
 * a driver only says how its server is configured, started, probed, reset
 * and what it hands back. */
#pragma once
#include "../config.h"
#include "../util.h"

struct svc;

struct tether_driver {
    const char *name;    /* the config's driver = NAME */
    const char *package; /* Debian package that provides the server, for errors */

    /* Load time: validate driver-specific keys (svc_conf->opts) and fill
     * defaults (ready kind, stop signal...).  Errors as "FILE:LINE: msg";
     * `file` is the config path ("(built-in)" without one). */
    int (*configure)(struct svc_conf *c, const char *file, terr *e);
    /* Before each spawn: write config files into s->dir, etc. May be NULL. */
    int (*prepare)(struct svc *s, terr *e);
    /* The argv (and extra "NAME=value" environment) to exec. */
    int (*argv)(struct svc *s, strv *argv, strv *env, terr *e);
    /* One readiness/health probe for READY_DRIVER: 0 ready, -EAGAIN not yet,
     * anything else a hard failure.  May be NULL. */
    int (*probe)(struct svc *s, terr *e);
    /* The service just became ready (e.g. record what gc will need).  May
     * be NULL. */
    int (*on_ready)(struct svc *s, terr *e);
    /* Native reset (e.g. FLUSHALL).  NULL: the config's reset command or
     * restart. */
    int (*reset)(struct svc *s, terr *e);
    /* The reset talks to the server and fails clearly when it does not
     * answer: no health probe before it. */
    bool reset_checks_health;
    /* Runs after a reset's reply went out, while the test works: prepare
     * the next reset (e.g. a spare database copy).  May be NULL. */
    int (*after_reset)(struct svc *s, terr *e);
    /* Add the driver's variables with svc_setvar(). May be NULL. */
    int (*variables)(struct svc *s, terr *e);
    /* After all processes are gone: drop external state (databases, shared
     * memory).  May be NULL. */
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

/* Find a server binary: `bin` as given when it contains a '/', else
 * searched in $PATH.  0 and the path in out, or -ENOENT. */
int driver_which(const char *bin, char *out, size_t outsz);
