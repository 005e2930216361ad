/* Recipes: a server described as data (docs/drivers.md).
 *
 *   [driver]         program, package, description, tcp_warning
 *   [option NAME]    type (bool, int, string), default, min, max, values,
 *                    implied_by, help: a key the config's section may set
 *   [server]         command, args, cwd, user, stop_group, file.NAME,
 *                    export.NAME, global.NAME, and the keys every service
 *                    takes (port, socket, ready, reset, timeout, ...)
 *   [when OPT = V]   the same keys, for when option OPT is V (or root =
 *                    yes, when tether runs as root): a key replaces the
 *                    [server] one, args add words to the command line
 *
 * The recipe is read and checked once, with FILE:LINE errors; a config's
 * section then goes through configure() (options, then the keys of the
 * [server] and matching [when] sections that the section did not set
 * itself, through the config's own key parser), and the service through
 * prepare (find the program, write the files), argv and variables. */
#include "recipe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "driver.h"
#include "../kit.h"
#include "../service.h"
#include "../template.h"

/* OPT_TEMPLATE: a string with ${names} (a dependency's ${api.PORT}),
 * checked when the config is read and expanded when the service starts */
enum opt_type { OPT_BOOL, OPT_INT, OPT_STRING, OPT_TEMPLATE };

struct ropt {
    char *name;
    enum opt_type type;
    char *def; /* canonical: a bool is yes or no */
    long long min, max;
    strv values; /* string: the only values allowed (empty: any) */
    char *implied_by; /* bool: yes when the section sets this key */
    char *help;
    int line;
};

struct rsec {
    char *opt;   /* NULL for [server] */
    char *value; /* canonical */
    int line;
    struct conf_kv *kv;
    size_t n;
};

struct recipe {
    struct tether_driver d; /* first: recipe_of() */
    char *path;
    char *program, *package, *description, *tcp_warning;
    char *image, *container_port; /* [driver] image =: the fallback (containers.md) */
    struct ropt *opts;
    size_t n_opts;
    struct rsec *secs; /* [server] first, then each [when] in file order */
    size_t n_secs;
    strv keys, vars, globals, names, tmpls; /* NULL-terminated arrays the driver points at */
};

/* A service's run-time state. */
struct rdata {
    char program[PATH_MAX];
    /* ${password}: made the first time a template asks, kept for the
     * instance's life (a restart keeps the server's users and files) */
    char password[33];
    /* the template options' expanded values, name then value: a
     * dependency's variables are fixed for the instance's life */
    strv expanded;
    bool expanding; /* a template option that names itself */
    /* ${user}: the account the server runs as */
    char *user;
};

/* The keys every service takes that a recipe may set; they go through the
 * config's parser.  ("health" where the config has it.) */
static const char *const core_keys[] = {"port",    "socket",      "ready",        "reset",
                                        "health",  "timeout",     "stop_signal",  "stop_timeout",
                                        "env."};
/* The recipe's own keys in [server] and [when]. */
static const char *const own_keys[] = {"command", "args",    "cwd",     "user",   "stop_group",
                                       "file.",   "export.", "global."};
static const char *const builtin_names[] = {"dir",    "instance", "label",   "config_dir",
                                            "port",   "socket",   "program", "password",
                                            "user"};

static const struct tether_driver recipe_proto;

const struct recipe *recipe_of(const struct tether_driver *d)
{
    return d && d->configure == recipe_proto.configure ? (const struct recipe *)d : NULL;
}

static const struct recipe *of_conf(const struct svc_conf *c)
{
    return recipe_of(c->driver);
}

const struct tether_driver *recipe_driver(const struct recipe *r) { return &r->d; }
const char *recipe_path(const struct recipe *r) { return r->path; }
const char *recipe_description(const struct recipe *r) { return r->description; }

static bool prefixed(const char *key, const char *known)
{
    size_t n = strlen(known);
    if (n && known[n - 1] == '.')
        return strncmp(key, known, n) == 0 && key[n];
    return streq(key, known);
}

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (prefixed(key, list[i]))
            return true;
    return false;
}

static const struct ropt *find_opt(const struct recipe *r, const char *name)
{
    for (size_t i = 0; i < r->n_opts; i++)
        if (streq(r->opts[i].name, name))
            return &r->opts[i];
    return NULL;
}

/* ---- reading ---- */

struct rd {
    struct recipe *r;
    const char *file;
    strv errs; /* "FILE:LINE: ..." */
};

static void rerr(struct rd *x, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rerr(struct rd *x, int line, const char *fmt, ...)
{
    _cleanup_sb_ strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    terr e;
    terr_at(&e, EINVAL, x->file, line, "%s", b.s);
    strv_push(&x->errs, e.msg);
}

static const char *kv_get(const struct ini_section *s, const char *key, int *line)
{
    for (size_t i = 0; i < s->n; i++)
        if (streq(s->kv[i].key, key)) {
            if (line)
                *line = s->kv[i].line;
            return s->kv[i].value;
        }
    return NULL;
}

/* Keys of s outside known: an error each, with the closest. */
static void only_keys(struct rd *x, const struct ini_section *s, const char *const *known,
                      size_t n)
{
    for (size_t i = 0; i < s->n; i++) {
        if (in_list(s->kv[i].key, known, n))
            continue;
        const char *near = closest_word(s->kv[i].key, known, n);
        _cleanup_sb_ strbuf list = {0};
        for (size_t k = 0; k < n; k++) {
            size_t l = strlen(known[k]);
            sb_addf(&list, "%s%s%s", k ? ", " : "", known[k], known[k][l - 1] == '.' ? "NAME" : "");
        }
        if (near)
            rerr(x, s->kv[i].line, "[%s] unknown key '%s': did you mean '%s'?", s->name,
                 s->kv[i].key, near);
        else
            rerr(x, s->kv[i].line, "[%s] unknown key '%s' (known: %s)", s->name, s->kv[i].key,
                 list.s);
    }
}

static void read_driver(struct rd *x, const struct ini_section *s)
{
    static const char *const known[] = {"program",     "package", "description",
                                        "tcp_warning", "image",   "container_port"};
    only_keys(x, s, known, ARRAY_SIZE(known));
    const char *v;
    if ((v = kv_get(s, "program", NULL)))
        x->r->program = xstrdup(v);
    if ((v = kv_get(s, "package", NULL)))
        x->r->package = xstrdup(v);
    if ((v = kv_get(s, "description", NULL)))
        x->r->description = xstrdup(v);
    if ((v = kv_get(s, "tcp_warning", NULL)))
        x->r->tcp_warning = xstrdup(v);
    if ((v = kv_get(s, "image", NULL)))
        x->r->image = xstrdup(v);
    if ((v = kv_get(s, "container_port", NULL)))
        x->r->container_port = xstrdup(v);
    if (!x->r->program)
        rerr(x, s->line, "[driver] has no program = NAME: say which server to run (a name "
                         "looked up in PATH, or an absolute path)");
    if (!x->r->package)
        rerr(x, s->line, "[driver] has no package = NAME: say which Debian package has the "
                         "program, for the error when it is missing");
}

static int parse_ll(const char *v, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return -EINVAL;
    *out = n;
    return 0;
}

static bool valid_opt_name(const char *n)
{
    if (!*n || (*n >= '0' && *n <= '9'))
        return false;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
            return false;
    return true;
}

/* A value of option o as a section writes it: canonical into *out (a bool
 * is yes or no), or -EINVAL and a message's ending ("say yes or no...") in why. */
static int opt_value(const struct ropt *o, const char *v, char **out, strbuf *why)
{
    long long n;
    bool b;
    switch (o->type) {
    case OPT_BOOL:
        if (parse_bool(v, &b) < 0) {
            sb_add(why, "say " BOOL_WORDS);
            return -EINVAL;
        }
        *out = xstrdup(b ? "yes" : "no");
        return 0;
    case OPT_INT:
        if (parse_ll(v, &n) < 0 || n < o->min || n > o->max) {
            sb_addf(why, "give a whole number from %lld to %lld", o->min, o->max);
            if (o->def)
                sb_addf(why, " (default %s)", o->def);
            return -EINVAL;
        }
        *out = xasprintf("%lld", n);
        return 0;
    case OPT_STRING:
    case OPT_TEMPLATE:
        if (o->values.n && !strv_contains(&o->values, v)) {
            sb_add(why, "use one of");
            for (size_t i = 0; i < o->values.n; i++)
                sb_addf(why, "%s %s", i ? "," : "", o->values.v[i]);
            return -EINVAL;
        }
        *out = xstrdup(v);
        return 0;
    }
    return -EINVAL;
}

static void read_option(struct rd *x, const struct ini_section *s, const char *name)
{
    static const char *const known[] = {"type", "default", "min", "max", "values", "implied_by",
                                        "help"};
    static const char *const reserved[] = {"driver", "command", "after"};
    only_keys(x, s, known, ARRAY_SIZE(known));
    if (!valid_opt_name(name) || streq(name, "bin") || streq(name, "root") ||
        in_list(name, reserved, ARRAY_SIZE(reserved)) ||
        in_list(name, core_keys, ARRAY_SIZE(core_keys)) ||
        in_list(name, builtin_names, ARRAY_SIZE(builtin_names))) {
        rerr(x, s->line,
             "[%s]: '%s' cannot be an option's name: use lower-case letters, digits and '_', "
             "and none of the keys every service takes, bin, root or a built-in ${name}",
             s->name, name);
        return;
    }
    struct recipe *r = x->r;
    if (find_opt(r, name)) {
        rerr(x, s->line, "[%s]: option '%s' is defined twice", s->name, name);
        return;
    }
    struct ropt o = {.name = xstrdup(name), .line = s->line, .min = LLONG_MIN, .max = LLONG_MAX};
    int line = s->line;
    const char *t = kv_get(s, "type", &line);
    if (!t || streq(t, "string"))
        o.type = OPT_STRING;
    else if (streq(t, "bool"))
        o.type = OPT_BOOL;
    else if (streq(t, "int"))
        o.type = OPT_INT;
    else if (streq(t, "template"))
        o.type = OPT_TEMPLATE;
    else
        rerr(x, line, "[%s] type = %s: use bool, int, string or template", s->name, t);
    const char *v;
    if ((v = kv_get(s, "min", &line)) && (o.type != OPT_INT || parse_ll(v, &o.min) < 0))
        rerr(x, line, "[%s] min = %s: only an int option has a min, a whole number", s->name, v);
    if ((v = kv_get(s, "max", &line)) && (o.type != OPT_INT || parse_ll(v, &o.max) < 0))
        rerr(x, line, "[%s] max = %s: only an int option has a max, a whole number", s->name, v);
    if ((v = kv_get(s, "values", &line))) {
        if (o.type != OPT_STRING && o.type != OPT_TEMPLATE)
            rerr(x, line, "[%s] values: only a string option has a list of values", s->name);
        _cleanup_strv_ strv w = {0};
        terr e;
        if (split_words(v, &w, &e) < 0 || !w.n)
            rerr(x, line, "[%s] values = %s: list the values separated by spaces", s->name, v);
        for (size_t i = 0; i < w.n; i++)
            strv_push(&o.values, w.v[i]);
    }
    if ((v = kv_get(s, "implied_by", &line))) {
        if (o.type != OPT_BOOL || !in_list(v, core_keys, ARRAY_SIZE(core_keys)))
            rerr(x, line, "[%s] implied_by = %s: a bool option is implied by one of the keys "
                          "every service takes (e.g. port)", s->name, v);
        o.implied_by = xstrdup(v);
    }
    if ((v = kv_get(s, "help", NULL)))
        o.help = xstrdup(v);
    if ((v = kv_get(s, "default", &line))) {
        _cleanup_sb_ strbuf why = {0};
        if (opt_value(&o, v, &o.def, &why) < 0)
            rerr(x, line, "[%s] default = %s: %s", s->name, v, why.s);
    } else if (o.type == OPT_BOOL) {
        o.def = xstrdup("no");
    } else if (o.type == OPT_INT) {
        rerr(x, s->line, "[%s] has no default = N: an int option needs one", s->name);
    }
    r->opts = xrealloc(r->opts, (r->n_opts + 1) * sizeof(*r->opts));
    r->opts[r->n_opts++] = o;
}

/* The ${names} a template of the recipe may use. */
struct tcheck {
    struct rd *x;
    const char *key;
    int line;
    bool argv; /* a command line: every local user reads it in ps */
};

static int check_name(void *ud, const char *name, terr *e)
{
    struct tcheck *t = ud;
    const struct recipe *r = t->x->r;
    if (t->argv && streq(name, "password")) {
        rerr(t->x, t->line, "${password} in %s: every local user can read a command line (ps); "
                            "write it into a file.NAME template (mode 0600) the server reads, or "
                            "an env.NAME", t->key);
        return terr_set(e, EINVAL, "reported");
    }
    if (strchr(name, '.') || find_opt(r, name) || streq(name, "bin") || tmpl_is_port_name(name))
        return 0; /* another service's variable: the config checks those */
    for (size_t i = 0; i < ARRAY_SIZE(builtin_names); i++)
        if (streq(name, builtin_names[i]))
            return 0;
    _cleanup_strv_ strv known = {0};
    _cleanup_sb_ strbuf list = {0};
    for (size_t i = 0; i < ARRAY_SIZE(builtin_names); i++) {
        strv_push(&known, builtin_names[i]);
        sb_addf(&list, "%s, ", builtin_names[i]);
    }
    sb_add(&list, "bin");
    for (size_t i = 0; i < r->n_opts; i++) {
        strv_push(&known, r->opts[i].name);
        sb_addf(&list, ", %s", r->opts[i].name);
    }
    const char *near = closest_word(name, (const char *const *)known.v, known.n);
    _cleanup_free_ char *hint = near ? xasprintf("; did you mean ${%s}?", near) : NULL;
    rerr(t->x, t->line, "unknown variable ${%s} in %s (known: %s, and SERVICE.NAME of a "
                        "service in after =)%s", name, t->key, list.s, hint ? hint : "");
    return terr_set(e, EINVAL, "reported");
}

static void check_template(struct rd *x, const struct conf_kv *kv, bool words)
{
    struct tcheck t = {.x = x, .key = kv->key, .line = kv->line, .argv = words};
    terr e;
    _cleanup_strv_ strv w = {0};
    if (!words) {
        if (tmpl_foreach(kv->value, check_name, &t, &e) < 0 && !streq(e.msg, "reported"))
            rerr(x, kv->line, "%s: %s", kv->key, e.msg);
        return;
    }
    if (split_words(kv->value, &w, &e) < 0) {
        rerr(x, kv->line, "%s: %s", kv->key, e.msg);
        return;
    }
    for (size_t i = 0; i < w.n; i++)
        if (tmpl_foreach(w.v[i], check_name, &t, &e) < 0 && !streq(e.msg, "reported"))
            rerr(x, kv->line, "%s: %s", kv->key, e.msg);
}

/* A key every service takes, as a config would have it: the recipe's
 * reader joins continuation lines with '\n' (file.NAME keeps its lines),
 * a config's with ' ', and a protocol check splits its words at blanks
 * only: a ready = send:... split over lines would be one word. */
static char *core_value(const char *v)
{
    char *s = xstrdup(v);
    for (char *p = s; (p = strchr(p, '\n')); p++)
        *p = ' ';
    return s;
}

/* A key every service takes, tried on a scratch section: its value is
 * checked by the config's own parser, at the recipe's line. */
static void check_core(struct rd *x, const char *sec, const struct conf_kv *kv)
{
    struct svc_conf *c = svc_conf_new(sec, 0);
    terr e;
    _cleanup_free_ char *v = core_value(kv->value);
    if (config_set_key(x->file, c, kv->key, v, kv->line, &e) < 0)
        strv_push(&x->errs, e.msg);
    else if (c->n_opts) /* not one the config knows (health before it had it) */
        rerr(x, kv->line, "[%s] unknown key '%s'", sec, kv->key);
    svc_conf_free(c);
}

static void read_keys(struct rd *x, const struct ini_section *s, struct rsec *out, bool server)
{
    _cleanup_strv_ strv known = {0};
    for (size_t i = 0; i < ARRAY_SIZE(own_keys); i++)
        if (server || (!streq(own_keys[i], "command") && !streq(own_keys[i], "global.")))
            strv_push(&known, own_keys[i]);
    for (size_t i = 0; i < ARRAY_SIZE(core_keys); i++)
        strv_push(&known, core_keys[i]);
    only_keys(x, s, (const char *const *)known.v, known.n);
    for (size_t i = 0; i < s->n; i++) {
        const struct conf_kv *kv = &s->kv[i];
        if (!in_list(kv->key, (const char *const *)known.v, known.n))
            continue;
        if (in_list(kv->key, core_keys, ARRAY_SIZE(core_keys)))
            check_core(x, s->name, kv);
        else if (streq(kv->key, "command") || streq(kv->key, "args"))
            check_template(x, kv, true);
        else if (streq(kv->key, "stop_group")) {
            bool b;
            if (parse_bool(kv->value, &b) < 0)
                rerr(x, kv->line, "[%s] stop_group = %s: say " BOOL_WORDS, s->name, kv->value);
        } else if (streq(kv->key, "user")) {
            if (!*kv->value)
                rerr(x, kv->line, "[%s] user is empty: name the accounts to try", s->name);
        } else if (strncmp(kv->key, "global.", 7) == 0) {
            /* the service variable it copies: one of the recipe's exports */
        } else if (strncmp(kv->key, "file.", 5) == 0) {
            const char *n = kv->key + 5;
            if (strchr(n, '/') || streq(n, ".") || streq(n, ".."))
                rerr(x, kv->line, "[%s] %s: a file's name is a plain name in the service's "
                                  "directory (no '/')", s->name, kv->key);
            check_template(x, kv, false);
        } else {
            check_template(x, kv, false);
        }
        out->kv = xrealloc(out->kv, (out->n + 1) * sizeof(*out->kv));
        out->kv[out->n++] = (struct conf_kv){.key = xstrdup(kv->key),
                                             .value = xstrdup(kv->value), .line = kv->line};
    }
}

/* "when tcp = yes" */
static void read_when(struct rd *x, const struct ini_section *s)
{
    const char *p = s->name + 4;
    p += strspn(p, " \t");
    size_t n = strcspn(p, " \t=");
    _cleanup_free_ char *opt = xstrndup(p, n);
    p += n;
    p += strspn(p, " \t");
    const char *v = *p == '=' ? p + 1 + strspn(p + 1, " \t") : NULL;
    if (!*opt || !v || !*v) {
        rerr(x, s->line, "[%s]: write [when OPTION = VALUE], e.g. [when tcp = yes]", s->name);
        return;
    }
    struct rsec w = {.line = s->line};
    static const struct ropt root = {"root", OPT_BOOL, NULL, 0, 0, {0}, NULL, NULL, 0};
    const struct ropt *o = streq(opt, "root") ? &root : find_opt(x->r, opt);
    _cleanup_sb_ strbuf why = {0};
    if (!o) {
        rerr(x, s->line, "[%s]: no option '%s' (define it in an [option %s] section; "
                         "root is tether running as root)", s->name, opt, opt);
        return;
    }
    if (opt_value(o, v, &w.value, &why) < 0) {
        rerr(x, s->line, "[%s]: %s", s->name, why.s);
        return;
    }
    w.opt = take_ptr(&opt);
    read_keys(x, s, &w, false);
    x->r->secs = xrealloc(x->r->secs, (x->r->n_secs + 1) * sizeof(*x->r->secs));
    x->r->secs[x->r->n_secs++] = w;
}

/* Make the driver's NULL-terminated lists from what was read. */
static void finish_driver(struct rd *x)
{
    struct recipe *r = x->r;
    for (size_t i = 0; i < r->n_opts; i++)
        strv_push(&r->keys, r->opts[i].name);
    strv_push(&r->keys, "bin");
    for (size_t i = 0; i < r->keys.n; i++)
        strv_push(&r->names, r->keys.v[i]);
    strv_push(&r->names, "program");
    strv_push(&r->names, "password");
    strv_push(&r->names, "user");
    for (size_t s = 0; s < r->n_secs; s++)
        for (size_t i = 0; i < r->secs[s].n; i++) {
            const struct conf_kv *kv = &r->secs[s].kv[i];
            if (strncmp(kv->key, "export.", 7) == 0 && !strv_contains(&r->vars, kv->key + 7))
                strv_push(&r->vars, kv->key + 7);
        }
    for (size_t s = 0; s < r->n_secs; s++)
        for (size_t i = 0; i < r->secs[s].n; i++) {
            const struct conf_kv *kv = &r->secs[s].kv[i];
            if (strncmp(kv->key, "global.", 7) != 0)
                continue;
            if (!strv_contains(&r->vars, kv->value))
                rerr(x, kv->line, "%s = %s: %s is none of the recipe's export.NAME", kv->key,
                     kv->value, kv->value);
            strv_push(&r->globals, kv->key + 7);
            strv_push(&r->globals, kv->value);
        }
    if (!r->n_secs || r->secs[0].opt)
        rerr(x, 0, "no [server] section with command = ...: say how to run the server");
    else {
        bool cmd = false;
        for (size_t i = 0; i < r->secs[0].n; i++)
            cmd |= streq(r->secs[0].kv[i].key, "command");
        if (!cmd)
            rerr(x, r->secs[0].line, "[server] has no command = ...: say how to run the server, "
                                     "e.g. command = ${program} --port ${port}");
    }
    /* the strv's arrays are NULL-terminated once pushed to; an empty one
     * is a NULL list, as a C driver's missing one */
    r->d.keys = (const char *const *)r->keys.v;
    r->d.vars = (const char *const *)r->vars.v;
    r->d.globals = (const char *const *)r->globals.v;
    r->d.names = (const char *const *)r->names.v;
    for (size_t i = 0; i < r->n_opts; i++)
        if (r->opts[i].type == OPT_TEMPLATE)
            strv_push(&r->tmpls, r->opts[i].name);
    r->d.template_keys = (const char *const *)r->tmpls.v;
    r->d.package = r->package;
    r->d.tcp_warning = r->tcp_warning;
    static const char *const program_keys[] = {"bin", NULL};
    r->d.program_keys = program_keys;
}

/* The line of "FILE:LINE: ..." (0 without one: errors of the whole file
 * go last), for errors in the order of the file. */
static long line_of(const char *msg, size_t skip)
{
    const char *p = msg + skip;
    return *p == ':' && p[1] >= '0' && p[1] <= '9' ? strtol(p + 1, NULL, 10) : LONG_MAX;
}

/* qsort_r's comparison; skip: the strlen of the file's name */
static int by_line(const void *a, const void *b, void *skip)
{
    size_t n = *(const size_t *)skip;
    long x = line_of(*(char *const *)a, n), y = line_of(*(char *const *)b, n);
    return (x > y) - (x < y);
}

int recipe_parse(const char *path, const char *name, const char *text, size_t len,
                 struct recipe **out, terr *e)
{
    struct ini_section *secs = NULL;
    size_t n = 0;
    int rc = ini_read(path, text, len, &secs, &n, e);
    if (rc < 0)
        return rc;
    struct recipe *r = xcalloc(1, sizeof(*r));
    r->d = recipe_proto;
    r->path = xstrdup(path);
    r->d.name = xstrdup(name);
    struct rd x = {.r = r, .file = path};
    const struct ini_section *drv = NULL, *server = NULL;
    /* [driver] and the options first: [server] and [when] use them */
    for (size_t i = 0; i < n; i++) {
        if (streq(secs[i].name, "driver"))
            drv = &secs[i];
        else if (streq(secs[i].name, "server"))
            server = &secs[i];
        else if (strncmp(secs[i].name, "option ", 7) == 0)
            read_option(&x, &secs[i], secs[i].name + 7 + strspn(secs[i].name + 7, " "));
        else if (strncmp(secs[i].name, "when ", 5) != 0 && strncmp(secs[i].name, "when\t", 5))
            rerr(&x, secs[i].line, "unknown section [%s] (a recipe has [driver], [option NAME], "
                                   "[server] and [when OPTION = VALUE])", secs[i].name);
    }
    if (drv)
        read_driver(&x, drv);
    else
        rerr(&x, 0, "no [driver] section: it names the program (program = NAME) and its "
                    "package");
    if (server) {
        r->secs = xcalloc(1, sizeof(*r->secs));
        r->secs[0].line = server->line;
        r->n_secs = 1;
        read_keys(&x, server, &r->secs[0], true);
    }
    for (size_t i = 0; i < n; i++)
        if (strncmp(secs[i].name, "when", 4) == 0 && (secs[i].name[4] == ' ' ||
                                                      secs[i].name[4] == '\t'))
            read_when(&x, &secs[i]);
    finish_driver(&x);
    ini_free(secs, n);
    if (x.errs.n) {
        size_t skip = strlen(path);
        qsort_r(x.errs.v, x.errs.n, sizeof(*x.errs.v), by_line, &skip);
        _cleanup_sb_ strbuf b = {0};
        for (size_t i = 0; i < x.errs.n && b.len + strlen(x.errs.v[i]) + 2 < TERR_MAX; i++)
            sb_addf(&b, "%s%s", i ? "\n" : "", x.errs.v[i]);
        strv_free(&x.errs);
        recipe_free(r);
        return terr_set(e, EINVAL, "%s", b.s);
    }
    *out = r;
    return 0;
}

int recipe_load(const char *path, const char *name, struct recipe **out, terr *e)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_file_at(AT_FDCWD, path, &text, &len);
    if (r < 0)
        return terr_set(e, r, "cannot read the recipe %s: %s", path, strerror(-r));
    return recipe_parse(path, name, text, len, out, e);
}

void recipe_free(struct recipe *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_opts; i++) {
        free(r->opts[i].name);
        free(r->opts[i].def);
        free(r->opts[i].implied_by);
        free(r->opts[i].help);
        strv_free(&r->opts[i].values);
    }
    free(r->opts);
    for (size_t s = 0; s < r->n_secs; s++) {
        for (size_t i = 0; i < r->secs[s].n; i++) {
            free(r->secs[s].kv[i].key);
            free(r->secs[s].kv[i].value);
        }
        free(r->secs[s].kv);
        free(r->secs[s].opt);
        free(r->secs[s].value);
    }
    free(r->secs);
    strv_free(&r->keys);
    strv_free(&r->vars);
    strv_free(&r->names);
    strv_free(&r->globals);
    strv_free(&r->tmpls);
    free((char *)r->d.name);
    free(r->path);
    free(r->program);
    free(r->package);
    free(r->description);
    free(r->tcp_warning);
    free(r->image);
    free(r->container_port);
    free(r);
}

/* ---- a service of the recipe ---- */

/* Whether [when] section w applies to the section c (configured: its
 * options hold their canonical values). */
static bool applies(const struct rsec *w, const struct svc_conf *c)
{
    if (!w->opt)
        return true;
    if (streq(w->opt, "root"))
        return streq(w->value, geteuid() == 0 ? "yes" : "no");
    const char *v = svc_opt(c, w->opt);
    return v && streq(v, w->value);
}

/* The last applicable setting of key, or NULL. */
static const struct conf_kv *setting(const struct recipe *r, const struct svc_conf *c,
                                     const char *key)
{
    const struct conf_kv *res = NULL;
    for (size_t s = 0; s < r->n_secs; s++)
        if (applies(&r->secs[s], c))
            for (size_t i = 0; i < r->secs[s].n; i++)
                if (streq(r->secs[s].kv[i].key, key))
                    res = &r->secs[s].kv[i];
    return res;
}

/* Every applicable key with prefix (export., file., env.), the last
 * setting of each name, in order of first appearance. */
static void settings(const struct recipe *r, const struct svc_conf *c, const char *prefix,
                     const struct conf_kv ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    for (size_t s = 0; s < r->n_secs; s++) {
        if (!applies(&r->secs[s], c))
            continue;
        for (size_t i = 0; i < r->secs[s].n; i++) {
            const struct conf_kv *kv = &r->secs[s].kv[i];
            if (!prefixed(kv->key, prefix))
                continue;
            size_t k = 0;
            while (k < *n && !streq((*out)[k]->key, kv->key))
                k++;
            if (k == *n) {
                *out = xrealloc(*out, (*n + 1) * sizeof(**out));
                (*n)++;
            }
            (*out)[k] = kv;
        }
    }
}

static void opt_push(struct svc_conf *c, const char *key, const char *value)
{
    c->opts = xrealloc(c->opts, (c->n_opts + 1) * sizeof(*c->opts));
    c->opts[c->n_opts++] = (struct conf_kv){.key = xstrdup(key), .value = xstrdup(value)};
}

/* tmpl_foreach's callback: a template option's value may not name one
 * (docroot = ${proxy} with proxy = ${docroot} would never end). */
static int names_no_template(void *ud, const char *name, terr *e)
{
    const struct ropt *o = find_opt(ud, name);
    if (o && o->type == OPT_TEMPLATE)
        return terr_set(e, EINVAL, "${%s} is a template option itself: write what it stands for",
                        name);
    return 0;
}

/* The section's options checked and made canonical; those it does not
 * set get their defaults (so that [when] and ${name} see every one). */
static int configure_options(const struct recipe *r, struct svc_conf *c, const char *file,
                             terr *e)
{
    for (size_t i = 0; i < c->n_opts; i++) {
        struct conf_kv *kv = &c->opts[i];
        if (streq(kv->key, "bin")) {
            if (!*kv->value)
                return terr_at(e, EINVAL, file, kv->line,
                                   "[%s] bin is empty: give the %s to run, or remove it to use "
                                   "the one on PATH", c->label, r->program);
            continue;
        }
        const struct ropt *o = find_opt(r, kv->key);
        if (!o) /* the config refused it already */
            continue;
        _cleanup_sb_ strbuf why = {0};
        char *v;
        if (opt_value(o, kv->value, &v, &why) < 0)
            return terr_at(e, EINVAL, file, kv->line, "[%s] %s = %s: %s", c->label, kv->key,
                               kv->value, why.s);
        int rc = o->type == OPT_TEMPLATE
                     ? tmpl_foreach(v, names_no_template, (void *)r, e) : 0;
        if (rc < 0) {
            free(v);
            return terr_prefix(e, rc, "%s:%d: [%s] %s = %s", file, kv->line, c->label, kv->key,
                               kv->value);
        }
        free(kv->value);
        kv->value = v;
    }
    for (size_t i = 0; i < r->n_opts; i++) {
        const struct ropt *o = &r->opts[i];
        if (svc_opt(c, o->name))
            continue;
        if (o->implied_by && config_key_set(c, o->implied_by))
            opt_push(c, o->name, "yes");
        else if (o->def)
            opt_push(c, o->name, o->def);
    }
    return 0;
}

/* ${option} in a key every service takes, replaced by its value (with
 * '$' doubled, so that it is never read as a template again); the other
 * ${names} stay for the config's own expansion. */
struct optx {
    const struct recipe *r;
    const struct svc_conf *c;
    strv keep; /* the values handed out */
};

static int optx_lookup(void *ud, const char *name, const char **value)
{
    struct optx *x = ud;
    const char *v = find_opt(x->r, name) ? svc_opt(x->c, name) : NULL;
    _cleanup_sb_ strbuf b = {0};
    const struct ropt *o = find_opt(x->r, name);
    if (!o) {
        sb_addf(&b, "${%s}", name);
    } else if (o->type == OPT_TEMPLATE) { /* for the config's expansion */
        sb_add(&b, v ? v : "");
    } else {
        for (const char *p = v ? v : ""; *p; p++)
            sb_add(&b, *p == '$' ? "$$" : (char[]){*p, 0});
    }
    strv_push_own(&x->keep, sb_steal(&b));
    *value = x->keep.v[x->keep.n - 1];
    return 0;
}

static int with_options(const struct recipe *r, const struct svc_conf *c,
                        const struct conf_kv *kv, char **out, terr *e)
{
    struct optx x = {.r = r, .c = c};
    /* "$$" must stay "$$": expand only the ${...}, copy the rest */
    _cleanup_sb_ strbuf b = {0};
    int rc = 0;
    for (const char *p = kv->value; *p && rc == 0;) {
        const char *d = strstr(p, "${");
        const char *dd = strstr(p, "$$");
        if (dd && (!d || dd < d)) {
            sb_addn(&b, p, (size_t)(dd - p) + 2);
            p = dd + 2;
            continue;
        }
        if (!d) {
            sb_add(&b, p);
            break;
        }
        sb_addn(&b, p, (size_t)(d - p));
        const char *end = strchr(d, '}');
        if (!end) {
            sb_add(&b, d);
            break;
        }
        _cleanup_free_ char *one = xstrndup(d, (size_t)(end - d + 1)), *v = NULL;
        rc = tmpl_expand(one, optx_lookup, &x, &v, e);
        if (rc == 0)
            sb_add(&b, v);
        p = end + 1;
    }
    strv_free(&x.keep);
    if (rc == 0)
        *out = sb_steal(&b);
    return rc;
}

static bool is_exe(const char *path) { return access(path, X_OK) == 0; }

static void add_opt(struct svc_conf *c, const char *key, const char *value)
{
    c->opts = xrealloc(c->opts, (c->n_opts + 1) * sizeof(*c->opts));
    c->opts[c->n_opts++] = (struct conf_kv){xstrdup(key), xstrdup(value), c->line};
}

/* "Run this program if installed, else this image": a recipe with
 * [driver] image = whose program is not here makes the section a
 * container service (drivers/container.c), keeping the keys every
 * service takes (port, ready, health, reset, timeouts) that the recipe
 * set; its command, files and ${names} are the program's, not the
 * image's.  1 when it did. */
static int image_fallback(const struct recipe *r, struct svc_conf *c, const char *file, terr *e)
{
    char path[PATH_MAX];
    if (!r->image || svc_opt(c, "bin"))
        return 0;
    if (strchr(r->program, '/') ? is_exe(r->program)
                                : path_search(r->program, is_exe, path, sizeof(path)) == 0)
        return 0;
    add_opt(c, "image", r->image);
    if (r->container_port)
        add_opt(c, "container_port", r->container_port);
    c->driver = &driver_container;
    int rc = driver_container.configure(c, file, e);
    return rc < 0 ? rc : 1;
}

static int recipe_configure(struct svc_conf *c, const char *file, terr *e)
{
    const struct recipe *r = of_conf(c);
    int rc = configure_options(r, c, file, e);
    if (rc < 0)
        return rc;
    /* the keys every service takes: the recipe's, unless the section set
     * them (a section's ready = or stop_signal = wins) */
    bool ready_set = config_key_set(c, "ready");
    for (size_t k = 0; k < ARRAY_SIZE(core_keys); k++) {
        const struct conf_kv **kv;
        size_t n;
        settings(r, c, core_keys[k], &kv, &n);
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (config_key_set(c, kv[i]->key))
                continue;
            _cleanup_free_ char *v = NULL, *raw = core_value(kv[i]->value);
            struct conf_kv one = *kv[i];
            one.value = raw;
            rc = with_options(r, c, &one, &v, e);
            /* at the section's line: the config's later checks of it (an
             * unknown ${db.URL}) name the config's section, where the
             * fix (after =) goes; and a key with a line is one set */
            if (rc == 0)
                rc = config_set_key(r->path, c, kv[i]->key, v, c->line > 0 ? c->line : 1, e);
            if (rc < 0)
                rc = terr_prefix(e, rc, "%s:%d: [%s] driver = %s", r->path, kv[i]->line,
                                 c->label, r->d.name);
            ready_set |= streq(kv[i]->key, "ready");
        }
        free(kv);
        if (rc < 0)
            return rc;
    }
    if (!ready_set) /* as a section without ready = gets it, with the recipe's port */
        c->ready = c->port >= 0 ? READY_TCP : READY_NONE;
    const struct conf_kv *g = setting(r, c, "stop_group");
    bool group = true;
    if (g)
        parse_bool(g->value, &group);
    c->stop_pid_only = !group;
    rc = image_fallback(r, c, file, e);
    return rc < 0 ? rc : 0;
}

static struct rdata *rdata(struct svc *s)
{
    if (!s->driver_data)
        s->driver_data = xcalloc(1, sizeof(struct rdata));
    return s->driver_data;
}

static int rlookup(void *ud, const char *name, const char **value)
{
    return svc_lookup(ud, name, value);
}

/* A template option's value, *value, expanded once: the config checked its
 * ${names} when it was read (a dependency's needs after =). */
static int template_opt(struct svc *s, struct rdata *d, const char *name, const char **value)
{
    for (size_t i = 0; i + 1 < d->expanded.n; i += 2)
        if (streq(d->expanded.v[i], name)) {
            *value = d->expanded.v[i + 1];
            return 0;
        }
    if (d->expanding) /* docroot = ${docroot} */
        return -ELOOP;
    d->expanding = true;
    char *v = NULL;
    terr e;
    int rc = tmpl_expand(*value, rlookup, s, &v, &e);
    d->expanding = false;
    if (rc < 0)
        return rc;
    strv_push(&d->expanded, name);
    strv_push_own(&d->expanded, v);
    *value = v;
    return 0;
}

/* The first account of user = (a list of names) that exists: *pw, left
 * NULL when none does. */
static int first_user(const char *list, struct passwd **pw, terr *e)
{
    _cleanup_strv_ strv names = {0};
    int rc = split_words(list, &names, e);
    for (size_t i = 0; rc == 0 && i < names.n && !*pw; i++)
        *pw = getpwnam(names.v[i]);
    return rc;
}

/* ${user}: as root, the first account of user = that exists (what
 * pick_user runs the server as), else tether's own: the role name a
 * server keyed on its OS user (PostgreSQL's initdb) has, which a recipe
 * cannot otherwise know (pgbouncer's auth_file, admin_users). */
static int user_name(struct svc *s, const struct recipe *r, char **out)
{
    const struct conf_kv *u = setting(r, s->conf, "user");
    struct passwd *pw = NULL;
    terr e;
    if (u && geteuid() == 0)
        (void)first_user(u->value, &pw, &e); /* none: tether's own, as pick_user says */
    if (!pw)
        pw = getpwuid(geteuid());
    if (!pw)
        return -ENOENT;
    *out = xstrdup(pw->pw_name);
    return 0;
}

/* ${option}, ${program}, ${password}, ${user}: the driver's lookup hook, so that
 * every template of the service sees them (svc_lookup asks it first). */
static int recipe_lookup(struct svc *s, const char *name, const char **value)
{
    const struct recipe *r = of_conf(s->conf);
    struct rdata *d = rdata(s);
    if (streq(name, "program")) {
        *value = d->program;
        return 0;
    }
    if (streq(name, "password")) {
        /* hex: 128 bits that no URL, config file or shell needs to quote */
        int rc = d->password[0] ? 0 : random_hex(d->password, 32);
        *value = d->password;
        return rc;
    }
    if (streq(name, "user")) {
        int rc = d->user ? 0 : user_name(s, r, &d->user);
        *value = d->user;
        return rc;
    }
    const struct ropt *o = find_opt(r, name);
    if (o || streq(name, "bin")) {
        const char *v = svc_opt(s->conf, name);
        *value = v ? v : "";
        return o && o->type == OPT_TEMPLATE ? template_opt(s, d, name, value) : 0;
    }
    return -ENOENT;
}

static int expand(struct svc *s, const struct conf_kv *kv, const char *text, char **out, terr *e)
{
    const struct recipe *r = of_conf(s->conf);
    int rc = tmpl_expand(text, rlookup, s, out, e);
    if (rc < 0)
        return terr_prefix(e, rc, "[%s] %s:%d: %s", s->conf->label, r->path, kv->line, kv->key);
    return 0;
}

static int words(struct svc *s, const struct conf_kv *kv, strv *argv, terr *e)
{
    _cleanup_strv_ strv w = {0};
    int rc = split_words(kv->value, &w, e);
    for (size_t i = 0; rc == 0 && i < w.n; i++) {
        char *v;
        rc = expand(s, kv, w.v[i], &v, e);
        if (rc == 0)
            strv_push_own(argv, v);
    }
    return rc;
}

/* As root: the first account of user = that exists (a server that refuses
 * root, like postgres), which gets the service's directory. */
static int pick_user(struct svc *s, const struct recipe *r, terr *e)
{
    const struct conf_kv *u = setting(r, s->conf, "user");
    if (!u || geteuid() != 0)
        return 0;
    struct passwd *pw = NULL;
    int rc = first_user(u->value, &pw, e);
    if (rc < 0)
        return rc;
    if (!pw)
        return terr_set(e, ENOENT, "[%s] none of the users %s exists to run %s as (user = in %s): "
                        "create one", s->conf->label, u->value, r->program, r->path);
    s->run_as = pw->pw_uid != 0;
    s->uid = pw->pw_uid;
    s->gid = pw->pw_gid;
    return s->run_as ? svc_give_dir(s, e) : 0;
}

static int write_files(struct svc *s, const struct recipe *r, terr *e)
{
    const struct conf_kv **kv;
    size_t n;
    settings(r, s->conf, "file.", &kv, &n);
    int rc = 0;
    _cleanup_close_ int dfd = n ? open(s->dir, O_DIRECTORY | O_CLOEXEC) : -1;
    if (n && dfd < 0)
        rc = terr_set(e, errno, "[%s] cannot open its directory %s: %m", s->conf->label, s->dir);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        _cleanup_free_ char *text = NULL;
        if ((rc = expand(s, kv[i], kv[i]->value, &text, e)) < 0)
            break;
        _cleanup_free_ char *body = xasprintf("%s\n", text);
        const char *name = kv[i]->key + 5;
        /* 0600: a file may hold a password */
        rc = write_file_atomic(dfd, name, body, strlen(body), 0600);
        if (rc == 0 && s->run_as && fchownat(dfd, name, s->uid, s->gid, 0) < 0)
            rc = -errno;
        if (rc < 0)
            rc = terr_set(e, rc, "[%s] cannot write %s/%s: %s", s->conf->label, s->dir, name,
                          strerror(-rc));
    }
    free(kv);
    return rc;
}

/* Synchronous: it finds a program and writes small files. */
static int recipe_prepare(struct svc *s, struct op *op, terr *e)
{
    const struct recipe *r = of_conf(s->conf);
    struct rdata *d = rdata(s);
    const char *bin = svc_opt(s->conf, "bin");
    int rc = program_find(s->conf->label, bin ? bin : r->program, r->package, d->program,
                          sizeof(d->program), e);
    if (rc < 0)
        return rc;
    rc = pick_user(s, r, e);
    if (rc == 0)
        rc = write_files(s, r, e);
    if (rc == 0) {
        const struct conf_kv *cwd = setting(r, s->conf, "cwd");
        free(s->cwd);
        s->cwd = NULL;
        if (cwd)
            rc = expand(s, cwd, cwd->value, &s->cwd, e);
    }
    return rc;
}

static int recipe_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    const struct recipe *r = of_conf(s->conf);
    int rc = words(s, setting(r, s->conf, "command"), argv, e);
    for (size_t k = 0; rc == 0 && k < r->n_secs; k++) {
        if (!applies(&r->secs[k], s->conf))
            continue;
        for (size_t i = 0; rc == 0 && i < r->secs[k].n; i++)
            if (streq(r->secs[k].kv[i].key, "args"))
                rc = words(s, &r->secs[k].kv[i], argv, e);
    }
    return rc;
}

static int recipe_variables(struct svc *s, terr *e)
{
    const struct recipe *r = of_conf(s->conf);
    const struct conf_kv **kv;
    size_t n;
    settings(r, s->conf, "export.", &kv, &n);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *v;
        if ((rc = expand(s, kv[i], kv[i]->value, &v, e)) == 0) {
            svc_setvar(s, kv[i]->key + 7, v);
            free(v);
        }
    }
    free(kv);
    /* REDIS_URL and the like: only when nothing else could mean it */
    size_t same = svc_count_same_driver(s);
    for (const char *const *g = r->d.globals; rc == 0 && same == 1 && g && g[0] && g[1]; g += 2) {
        const char *v = svc_getvar(s, g[1]);
        if (v)
            svc_setenv_global(s, g[0], v);
    }
    return rc;
}

static void recipe_free_svc(struct svc *s)
{
    struct rdata *d = s->driver_data;
    if (d) {
        strv_free(&d->expanded);
        free(d->user);
    }
    free(s->driver_data);
    s->driver_data = NULL;
}

static const struct tether_driver recipe_proto = {
    .configure = recipe_configure,
    .prepare = recipe_prepare,
    .argv = recipe_argv,
    .lookup = recipe_lookup,
    .variables = recipe_variables,
    .free = recipe_free_svc,
};
