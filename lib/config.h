/* The config file (INI, parsed with inih) and its validated model. */
#pragma once
#include <stdbool.h>
#include "quote.h"
#include "util.h"

struct tether_driver;

enum ready_kind {
    READY_NONE,   /* ready once exec() succeeded */
    READY_TCP,    /* connect() to 127.0.0.1:port succeeds */
    READY_UNIX,   /* connect() to a unix socket path succeeds (ready_arg) */
    READY_LOG,    /* the log matches an extended regex (ready_arg) */
    READY_EXEC,   /* a command exits 0 (ready_arg, split into words) */
    READY_NOTIFY, /* sd_notify READY=1 on $NOTIFY_SOCKET */
    READY_FD,     /* s6-style: a line written to inherited fd ready_fd */
    READY_DRIVER, /* the driver's own probe */
    READY_EXPECT, /* a send/expect exchange gets its answers (ready_proto) */
    READY_HTTP,   /* an HTTP GET answers 2xx (ready_proto) */
};

struct proto;

struct conf_kv {
    char *key;
    char *value;
    int line;
};

struct svc_conf {
    char *label;  /* section name as written: [a-z0-9_-]+ (case kept) */
    char *ulabel; /* LABEL for variable names: upper case, '-' -> '_' */
    const struct tether_driver *driver;
    int line; /* line of the [section] header */

    char *command; /* raw template, NULL for drivers that build their argv */
    int command_line;
    int port;       /* -1: none, 0: auto, >0: fixed */
    int port_line;
    char *socket;   /* socket = auto -> "sock" in ${dir}, or a name relative to ${dir} */
    enum ready_kind ready;
    char *ready_arg; /* unix path / regex / command template */
    int ready_fd;
    int ready_line;
    struct proto *ready_proto; /* READY_EXPECT, READY_HTTP (proto.h) */
    char *reset; /* command template, NULL if none */
    bool reset_restart;
    struct proto *reset_proto; /* reset = send:... expect:...: instead of a command */
    int reset_line;
    /* health = (proto.h), else the protocol ready check (when the driver
     * has no health check of its own); NULL: none (health = none) */
    struct proto *health;
    int health_line;
    strv after;
    int after_line;
    long long timeout_ns;      /* default 30 s */
    int stop_signal;           /* default SIGTERM */
    long long stop_timeout_ns; /* default 5 s */
    /* the lines of timeout, stop_signal, stop_timeout; 0: not set, so that
     * a driver's own default applies (never a comparison with the core's) */
    int timeout_line, stop_signal_line, stop_timeout_line;

    struct conf_kv *exports; /* export.NAME = template */
    size_t n_exports;
    struct conf_kv *env; /* env.NAME = template, set in the command's environment */
    size_t n_env;
    struct conf_kv *opts; /* any other key, for the driver to validate */
    size_t n_opts;
    strv keys_set; /* the keys the section itself set (config_key_set) */
    bool stop_pid_only; /* stop signals the main process, not its whole group */
};

struct tether_config {
    char *path;   /* absolute path of the file, NULL for built-in defaults */
    char *dir;    /* ${config_dir}: the file's absolute directory (without a file: the
                   * working directory), against which relative paths resolve */
    char *prefix; /* default TETHER */
    char *drivers_dir; /* [tether] drivers = DIR, absolute; NULL none */
    struct svc_conf **svcs; /* in file order */
    size_t n_svcs;
};

/* Parse and validate a config file.  Errors are "FILE:LINE: message"
 * (return -EINVAL); a file that cannot be read gives -errno. */
int config_load(const char *path, struct tether_config **out, terr *e);
/* The same from memory (data[0..len), NUL bytes included): `name` is used
 * in messages and as the config's path.  For tests and fuzzing. */
int config_parse(const char *name, const char *data, size_t len, struct tether_config **out,
                 terr *e);
/* A config with no file: one default section for each named built-in
 * driver (e.g. "postgresql", "redis"). */
int config_builtin(const char *const *names, size_t n, struct tether_config **out, terr *e);
void config_free(struct tether_config *c);
/* Only the [tether] drivers = of a config file, absolute (*out NULL when
 * it has none): for `tether drivers`, which lists even what a broken
 * config cannot load. */
int config_drivers_dir(const char *path, char **out, terr *e);

/* Pick the services named (all if n == 0), add what they depend on, and
 * order them so that each comes after its `after` services.  Returns a
 * newly allocated array of borrowed pointers. */
int config_select(const struct tether_config *c, const char *const *names, size_t n,
                  struct svc_conf ***out, size_t *nout, terr *e);

/* A name that is neither a service of c (NULL: no file) nor a built-in
 * driver: an error that lists both, with the closest as "did you mean". */
int config_unknown_name(const struct tether_config *c, const char *name, terr *e);

/* A path as the config means it: absolute as it is, relative against the
 * config's directory.  Newly allocated.  Used for init_sql and for the
 * program of command, reset, ready = exec: and init (svc_argv). */
char *config_path(const struct tether_config *c, const char *path);
/* The same for a program: a bare name (no '/') stays as it is, for PATH
 * (unless any: a directory name, relative like any other path). */
char *config_program(const struct tether_config *c, const char *prog, bool any);

/* The names a template of s may use ("dir, instance, ..."), as the load
 * time error lists them, into b. */
void config_known_names(const struct tether_config *c, const struct svc_conf *s, strbuf *b);
/* Which key of s holds the template `value` (that very pointer: command,
 * reset, ready, export.NAME, env.NAME or a driver key): its name into
 * key (e.g. "export.URL") and its line; 0 if it is none of them. */
int config_key_of(const struct svc_conf *s, const char *value, strbuf *key);

/* `tether run NAME...` next to a config file that has none of the NAMEs,
 * all of them built-in drivers: replace *cfg by the built-ins alone, as
 * if there were no file (the README's `tether run postgresql` beside a
 * project's tether.ini), and return 1, with a note for the user when the
 * file has a service of that driver under another name.  0: *cfg is kept
 * (config_select then says what is wrong). */
int config_use_builtins(struct tether_config **cfg, const char *const *names, size_t n,
                        strbuf *note, terr *e);

/* Set one of the keys every service takes (port, socket, ready, reset,
 * stop_signal...) as if the section had it at file:line: a recipe's
 * defaults go through the same checks as the user's keys. */
int config_set_key(const char *file, struct svc_conf *s, const char *key, const char *value,
                   int line, terr *e);
/* A section with every default, outside any config (a recipe checks its
 * keys on one), and its freeing. */
struct svc_conf *svc_conf_new(const char *label, int line);
void svc_conf_free(struct svc_conf *s);
/* Whether the config's section of s set key itself. */
bool config_key_set(const struct svc_conf *s, const char *key);

/* An INI file read as the config is (line numbers, duplicate keys and
 * over-long lines refused with FILE:LINE) but with any section name, and
 * continuation lines joined by newlines: a recipe (lib/drivers/recipe.c). */
struct ini_section {
    char *name;
    int line;
    bool lost; /* a line of it was refused: what it said is unknown */
    struct conf_kv *kv;
    size_t n;
};
int ini_read(const char *file, const char *data, size_t len, struct ini_section **secs,
             size_t *n, terr *e);
void ini_free(struct ini_section *secs, size_t n);

struct svc_conf *config_find(const struct tether_config *c, const char *label);
/* The full name of s's variable `name` under prefix: PREFIX_LABEL_NAME
 * ("MYAPP_WEB_URL"); with name NULL the stem every one of them starts
 * with, PREFIX_LABEL.  Newly allocated.  The one place that makes these
 * names: the helper, the config's checks, the library and `tether _names`
 * (which hands them to the Python binding) all come here. */
char *config_varname(const char *prefix, const struct svc_conf *s, const char *name);
/* The short names (PORT, URL, CONTROL_PID...) of the variables s gets, added
 * to out: the core ones that apply, its driver's and its exports. */
void config_var_names(const struct svc_conf *s, strv *out);
/* The value of a driver-specific key, or NULL. */
const char *svc_opt(const struct svc_conf *s, const char *key);
/* Find the config file: -f value, else $TETHER_CONFIG, else ./tether.ini.
 * Returns NULL when none was given and ./tether.ini does not exist. */
const char *config_locate(const char *flag);
