/* The config file: INI read by conf.c's reader, then turned into struct
 * svc_conf.  Parsing only collects raw key/values per section;
 * interpretation happens once the whole file is read, because a value can
 * still grow by continuation lines.  This is the loader, above the drivers:
 * it resolves driver = through the registry (lib/drivers/registry.c).
 * What the drivers read a section through is conf.c's, below them. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "conf.h"
#include "drivers/driver.h"
#include "instance.h" /* COOKIE_VAR */
#include "proto.h"
#include "template.h"

#define BUILTIN_FILE "(built-in)"

void config_free(struct tether_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_svcs; i++)
        svc_conf_free(c->svcs[i]);
    free(c->svcs);
    free(c->path);
    free(c->dir);
    free(c->prefix);
    free(c->drivers_dir);
    free(c);
}

static struct svc_conf *svc_new(struct tether_config *c, const char *label, int line)
{
    struct svc_conf *s = svc_conf_new(label, line);
    c->svcs = xrealloc(c->svcs, (c->n_svcs + 1) * sizeof(*c->svcs));
    c->svcs[c->n_svcs++] = s;
    return s;
}

struct svc_conf *config_find(const struct tether_config *c, const char *label)
{
    if (!c || !label)
        return NULL;
    size_t i = svc_index(c, label);
    return i == SIZE_MAX ? NULL : c->svcs[i];
}

/* The absolute directory of a config file: the working directory for a
 * name without a '/' (or no name), else the name's directory. */
static char *dir_of(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    _cleanup_free_ char *cwd = getcwd(NULL, 0);
    if (!slash)
        return xstrdup(cwd ? cwd : "/");
    if (slash == path)
        return xstrdup("/");
    _cleanup_free_ char *d = xstrndup(path, (size_t)(slash - path));
    if (d[0] == '/' || !cwd)
        return take_ptr(&d);
    return xasprintf("%s/%s", cwd, d);
}

const char *config_locate(const char *flag)
{
    if (flag)
        return flag;
    const char *env = getenv("TETHER_CONFIG");
    if (env && *env)
        return env;
    if (access("tether.ini", F_OK) == 0)
        return "tether.ini";
    return NULL;
}

/* A key of a [service] section: driver = through the registry, here above
 * the drivers; any other by conf.c's svc_key. */
static int section_key(const char *file, const struct tether_config *c, struct svc_conf *s,
                       const struct conf_kv *kv, terr *e)
{
    const char *k = kv->key, *v = kv->value;
    if (!streq(k, "driver"))
        return svc_key(file, s, kv, e);
    terr re = {0};
    s->driver = driver_lookup(c ? c->drivers_dir : NULL, v, &re);
    if (!s->driver && re.msg[0]) /* a recipe of that name, broken */
        return ferr(e, file, kv->line, "[%s] driver = %s: %s", s->label, v, re.msg);
    if (!s->driver) {
        _cleanup_sb_ strbuf all = {0};
        driver_names(c ? c->drivers_dir : NULL, &all, false);
        const char *near = driver_closest(c ? c->drivers_dir : NULL, v, false);
        _cleanup_free_ char *hint = near ? xasprintf("did you mean '%s'? ", near) : NULL;
        return ferr(e, file, kv->line,
                    "[%s] unknown driver '%s': %s(the drivers are: %s; driver = command "
                    "with command = ... runs anything else)",
                    s->label, v, hint ? hint : "", all.s);
    }
    return 0;
}

static int tether_key(const char *file, struct tether_config *c, const struct conf_kv *kv,
                      terr *e)
{
    static const char *const known[] = {"prefix", "drivers"};
    if (streq(kv->key, "drivers")) {
        if (!*kv->value)
            return ferr(e, file, kv->line,
                        "[tether] drivers is empty: give the directory of your recipes "
                        "(NAME.ini), relative to this file");
        free(c->drivers_dir);
        c->drivers_dir = config_path(c, kv->value);
        /* a misspelt directory would quietly leave the built-ins in place
         * of the project's recipes */
        struct stat st;
        if (stat(c->drivers_dir, &st) < 0 || !S_ISDIR(st.st_mode))
            return ferr(e, file, kv->line,
                        "[tether] drivers = %s: %s is not a directory (%s): create it, or fix "
                        "the path (relative to this file)",
                        kv->value, c->drivers_dir, stat(c->drivers_dir, &st) < 0 ? strerror(errno)
                                                                                : "a file");
        return 0;
    }
    if (!streq(kv->key, "prefix")) {
        const char *near = closest_word(kv->key, known, ARRAY_SIZE(known));
        _cleanup_free_ char *hint = near ? xasprintf(": did you mean '%s'?", near) : NULL;
        return ferr(e, file, kv->line, "[tether] unknown key '%s'%s (known: prefix, drivers)",
                    kv->key, hint ? hint : "");
    }
    const char *v = kv->value;
    bool ok = *v && !(*v >= '0' && *v <= '9');
    for (const char *q = v; *q; q++)
        if (!is_alnum(*q) && *q != '_')
            ok = false;
    if (!ok)
        return ferr(e, file, kv->line,
                    "[tether] prefix = %s: use letters, digits and '_', not starting with a "
                    "digit (e.g. prefix = MYAPP)",
                    v);
    free(c->prefix);
    c->prefix = make_ulabel(v);
    return 0;
}

static void tether_section(const char *file, struct tether_config *c, const struct ini_section *sec,
                           struct errlist *errs)
{
    for (size_t i = 0; i < sec->n; i++) {
        terr e;
        errs_add(errs, tether_key(file, c, &sec->kv[i], &e), &e);
    }
}

/* The keys every service takes (svc_key); export. and env. are prefixes. */
static const char *const common_keys[] = {"driver",  "command", "port",        "socket",
                                          "ready",   "health",  "timeout",     "reset",
                                          "after", "stop_signal", "stop_timeout", "export.",
                                          "env."};

static bool key_matches(const char *key, const char *known)
{
    size_t n = strlen(known);
    if (n && known[n - 1] == '.')
        return strncmp(key, known, n) == 0 && key[n];
    return streq(key, known);
}

/* "did you mean" for a key: whole keys, or the part before a dot against
 * the prefixes ("exprot.URL" -> "export.URL"). */
static char *key_suggestion(const char *key, const char *const *known, size_t n)
{
    const char *dot = strchr(key, '.');
    _cleanup_free_ const char **c = xcalloc(n, sizeof(*c));
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(known[i]);
        bool prefix = l && known[i][l - 1] == '.';
        c[i] = (dot != NULL) == prefix ? known[i] : NULL;
    }
    for (size_t i = 0; !dot && i < n; i++) /* "export = x": export.NAME */
        if (strncmp(key, known[i], strlen(key)) == 0 && streq(known[i] + strlen(key), "."))
            return xasprintf("%sNAME", known[i]);
    if (!dot) {
        const char *near = closest_word(key, c, n);
        return near ? xstrdup(near) : NULL;
    }
    _cleanup_free_ char *head = xstrndup(key, (size_t)(dot - key + 1));
    const char *near = closest_word(head, c, n);
    return near ? xasprintf("%s%s", near, dot + 1) : NULL;
}

/* What the errors in a service's keys leave unsure, so that the checks
 * that would only repeat them are skipped: a misspelt command = is not
 * also "has no command"; a bad port = is not also "unknown ${port}". */
enum {
    SVC_BAD = 1,          /* the driver's own checks are skipped */
    SVC_NAMES_UNSURE = 2, /* and the ${...} checks of it and of who uses it */
};

/* The keys that decide which ${names} a service has. */
static bool names_key(const char *k)
{
    return streq(k, "port") || streq(k, "socket") || streq(k, "driver") ||
           strncmp(k, "export.", 7) == 0;
}

/* "a, b, setting.NAME" */
static void add_key_list(strbuf *b, const char *const *keys)
{
    for (size_t k = 0; keys[k]; k++) {
        size_t l = strlen(keys[k]);
        sb_addf(b, "%s%s%s", k ? ", " : "", keys[k], l && keys[k][l - 1] == '.' ? "NAME" : "");
    }
}

/* Every key that neither every service nor s's driver knows: an error at
 * its own line, naming the closest known key, or else listing them.  Adds
 * to *flags. */
static void check_keys(const char *file, const struct svc_conf *s, struct errlist *errs,
                       int *flags)
{
    bool cmd = s->driver == &driver_command;
    strv common = {0}, known = {0};
    for (size_t i = 0; i < ARRAY_SIZE(common_keys); i++)
        if (cmd || !streq(common_keys[i], "command")) /* a driver builds its own */
            strv_push(&common, common_keys[i]);
    for (size_t i = 0; i < common.n; i++)
        strv_push(&known, common.v[i]);
    for (const char *const *k = s->driver->keys; k && *k; k++)
        strv_push(&known, *k);
    for (size_t i = 0; i < s->n_opts; i++) {
        const struct conf_kv *kv = &s->opts[i];
        bool ok = false;
        for (const char *const *k = s->driver->keys; k && *k && !ok; k++)
            ok = key_matches(kv->key, *k);
        if (ok)
            continue;
        _cleanup_free_ char *near =
            key_suggestion(kv->key, (const char *const *)known.v, known.n);
        _cleanup_sb_ strbuf list = {0};
        if (!cmd) {
            sb_addf(&list, " for the %s driver (known: ", s->driver->name);
            add_key_list(&list, s->driver->keys);
            sb_add(&list, "; and those of every service: ");
        } else {
            sb_add(&list, " (known: ");
        }
        add_key_list(&list, (const char *const *)common.v);
        sb_addc(&list, ')');
        terr e;
        if (near)
            ferr(&e, file, kv->line, "[%s] unknown key '%s': did you mean '%s'?", s->label,
                 kv->key, near);
        else
            ferr(&e, file, kv->line, "[%s] unknown key '%s'%s", s->label, kv->key, list.s);
        errs_add(errs, -EINVAL, &e);
        *flags |= SVC_BAD | (near && names_key(near) ? SVC_NAMES_UNSURE : 0);
    }
    strv_free(&common);
    strv_free(&known);
}

/* Read a [service] section.  Returns SVC_ flags for its errors. */
static int svc_section(const char *file, struct tether_config *c, const struct ini_section *sec,
                       struct errlist *errs)
{
    struct svc_conf *s = svc_new(c, sec->name, sec->line);
    int flags = sec->lost ? SVC_BAD | SVC_NAMES_UNSURE : 0;
    bool no_driver = false;
    for (size_t i = 0; i < sec->n; i++) {
        terr e;
        int r = section_key(file, c, s, &sec->kv[i], &e);
        strv_push(&s->keys_set, sec->kv[i].key);
        errs_add(errs, r, &e);
        if (r < 0)
            flags |= SVC_BAD | (names_key(sec->kv[i].key) ? SVC_NAMES_UNSURE : 0);
        no_driver |= r < 0 && streq(sec->kv[i].key, "driver");
    }
    /* image = NAME makes a container service (drivers/container.c),
     * whatever the section is called: [redis] image = redis:7 */
    if (!s->driver && !no_driver && svc_opt(s, "image"))
        s->driver = &driver_container;
    if (!s->driver && !no_driver) {
        terr e = {0};
        const struct tether_driver *d = driver_lookup(c->drivers_dir, s->label, &e);
        if (!d && e.msg[0]) {
            errs_add(errs, ferr(&e, file, s->line, "[%s]: %s", s->label, e.msg), &e);
            flags |= SVC_BAD | SVC_NAMES_UNSURE;
            no_driver = true;
        }
        s->driver = d;
    }
    if (!s->driver)
        s->driver = &driver_command;
    if (!s->ready_line)
        s->ready = s->port >= 0 ? READY_TCP : READY_NONE;
    /* with an unknown driver, which keys it takes is anyone's guess */
    if (!no_driver)
        check_keys(file, s, errs, &flags);
    return flags;
}

/* ---- whole-config checks ---- */

static void check_after(const char *file, struct tether_config *c, struct errlist *errs)
{
    for (size_t i = 0; i < c->n_svcs; i++) {
        struct svc_conf *s = c->svcs[i];
        for (size_t j = 0; j < s->after.n; j++) {
            const struct svc_conf *t = config_find(c, s->after.v[j]);
            if (!t) {
                terr e;
                const char **labels = xcalloc(c->n_svcs, sizeof(*labels));
                for (size_t k = 0; k < c->n_svcs; k++)
                    labels[k] = c->svcs[k] == s ? NULL : c->svcs[k]->label;
                const char *near = closest_word(s->after.v[j], labels, c->n_svcs);
                _cleanup_free_ char *hint = near ? xasprintf(" (did you mean %s?)", near) : NULL;
                free(labels);
                errs_add(errs,
                         ferr(&e, file, s->after_line,
                              "[%s] after = %s: there is no service [%s]%s: define it, or "
                              "remove it from after",
                              s->label, s->after.v[j], s->after.v[j], hint ? hint : ""),
                         &e);
                continue;
            }
            /* store the label as its section spells it */
            if (!streq(t->label, s->after.v[j])) {
                free(s->after.v[j]);
                s->after.v[j] = xstrdup(t->label);
            }
        }
    }
}

static int cycle_dfs(const char *file, const struct tether_config *c, size_t i, int *color,
                     size_t *stack, size_t depth, terr *e)
{
    const struct svc_conf *s = c->svcs[i];
    color[i] = 1;
    stack[depth] = i;
    for (size_t k = 0; k < s->after.n; k++) {
        size_t j = svc_index(c, s->after.v[k]);
        if (j == SIZE_MAX)
            continue;
        if (color[j] == 1) {
            size_t from = 0;
            while (stack[from] != j)
                from++;
            _cleanup_sb_ strbuf b = {0};
            for (size_t x = from; x <= depth; x++)
                sb_addf(&b, "%s -> ", c->svcs[stack[x]]->label);
            sb_add(&b, c->svcs[j]->label);
            return ferr(e, file, c->svcs[j]->after_line,
                        "dependency cycle: %s: remove one of these from an after = list", b.s);
        }
        if (color[j] == 0) {
            int r = cycle_dfs(file, c, j, color, stack, depth + 1, e);
            if (r < 0)
                return r;
        }
    }
    color[i] = 2;
    return 0;
}

static int check_cycles(const char *file, const struct tether_config *c, terr *e)
{
    _cleanup_free_ int *color = xcalloc(c->n_svcs, sizeof(int));
    _cleanup_free_ size_t *stack = xcalloc(c->n_svcs, sizeof(size_t));
    for (size_t i = 0; i < c->n_svcs; i++)
        if (color[i] == 0) {
            int r = cycle_dfs(file, c, i, color, stack, 0, e);
            if (r < 0)
                return r;
        }
    return 0;
}

static int check_var(void *ud, const char *name, terr *e)
{
    struct tctx *t = ud;
    const struct svc_conf *s = t->s;
    if (streq(name, "dir") || streq(name, "instance") || streq(name, "label") ||
        streq(name, "config_dir") ||
        (streq(name, "port") && s->port >= 0) || (streq(name, "socket") && s->socket))
        return 0;
    for (const char *const *n = s->driver ? s->driver->names : NULL; n && *n; n++)
        if (streq(name, *n))
            return 0;
    if (tmpl_is_port_name(name))
        return 0;
    const char *dot = strchr(name, '.');
    const char *hint = "";
    _cleanup_free_ char *hintbuf = NULL;
    if (dot) {
        _cleanup_free_ char *svc = xstrndup(name, (size_t)(dot - name));
        size_t j = svc_index(t->c, svc);
        if (j != SIZE_MAX && t->dep[j] && svc_has_var(t->c->svcs[j], dot + 1))
            return 0;
        if (j != SIZE_MAX && !t->dep[j] && t->c->svcs[j] != s)
            hint = hintbuf = xasprintf("; add %s to after = to use its variables",
                                       t->c->svcs[j]->label);
    } else if (streq(name, "port") || streq(name, "socket")) {
        hint = streq(name, "port") ? "; set port = auto to get a port"
                                   : "; set socket = auto to get a socket";
    }
    _cleanup_sb_ strbuf known = {0};
    list_known(t, &known);
    if (!*hint) { /* a typo of a known name: ${prot}, ${db.PROT} */
        _cleanup_strv_ strv names = {0};
        for (char *p = known.s, *q; p; p = q ? q + 2 : NULL) {
            q = strstr(p, ", ");
            strv_push_own(&names, q ? xstrndup(p, (size_t)(q - p)) : xstrdup(p));
        }
        const char *near = closest_word(name, (const char *const *)names.v, names.n);
        if (near)
            hint = hintbuf = xasprintf("; did you mean ${%s}?", near);
    }
    t->full = true;
    return ferr(e, t->file, t->line, "[%s] unknown variable ${%s} in %s (known: %s)%s", s->label,
                name, t->key, known.s, hint);
}

static int check_tmpl(struct tctx *t, const char *key, int line, const char *v, terr *e)
{
    if (!v)
        return 0;
    t->key = key;
    t->line = line > 0 ? line : t->s->line;
    t->full = false;
    terr sub;
    int r = tmpl_foreach(v, check_var, t, &sub);
    if (r < 0 && t->full)
        return terr_set(e, r, "%s", sub.msg);
    if (r < 0) /* a syntax error: say where */
        return ferr(e, t->file, t->line, "[%s] %s: %s", t->s->label, key, sub.msg);
    return 0;
}

/* A command is split into words first and each word expanded (svc_argv):
 * check it the same way, so that a value like $'{'x} or $'{}' fails here,
 * with its line, and not when the service starts. */
static int check_tmpl_words(struct tctx *t, const char *key, int line, const char *v, terr *e)
{
    if (!v)
        return 0;
    _cleanup_strv_ strv w = {0};
    terr sub;
    if (split_words(v, &w, &sub) < 0) /* reported when the key was read */
        return 0;
    int r = 0;
    for (size_t i = 0; r == 0 && i < w.n; i++)
        r = check_tmpl(t, key, line, w.v[i], e);
    return r;
}

/* The ${names} of the protocol checks (proto.h) of s. */
static int check_proto_tmpls(struct tctx *t, const struct svc_conf *s, terr *e)
{
    int r = 0;
    if (s->ready_proto)
        r = check_tmpl(t, "ready", s->ready_line, s->ready_proto->text, e);
    if (r == 0 && s->health && s->health_line)
        r = check_tmpl(t, "health", s->health_line, s->health->text, e);
    if (r == 0 && s->reset_proto)
        r = check_tmpl(t, "reset", s->reset_line, s->reset_proto->text, e);
    return r;
}

/* A driver's own keys that hold commands or templates (postgresql's init
 * and server), checked like command and export.NAME. */
static void check_driver_tmpls(struct tctx *t, struct errlist *errs)
{
    const struct svc_conf *s = t->s;
    for (size_t k = 0; k < s->n_opts; k++) {
        const struct conf_kv *kv = &s->opts[k];
        terr e;
        for (const char *const *c = s->driver->command_keys; c && *c; c++) {
            if (!streq(kv->key, *c))
                continue;
            int r = check_words(t->file, s, kv->key, kv->line, kv->value, &e);
            errs_add(errs, r < 0 ? r : check_tmpl_words(t, kv->key, kv->line, kv->value, &e),
                     &e);
        }
        for (const char *const *c = s->driver->template_keys; c && *c; c++)
            if (streq(kv->key, *c))
                errs_add(errs, check_tmpl(t, kv->key, kv->line, kv->value, &e), &e);
    }
}

/* Services whose flags[] say SVC_NAMES_UNSURE, and those that use their
 * variables, are left out. */
static void check_templates(const char *file, const struct tether_config *c, const int *flags,
                            struct errlist *errs)
{
    for (size_t i = 0; i < c->n_svcs; i++) {
        const struct svc_conf *s = c->svcs[i];
        _cleanup_free_ bool *dep = xcalloc(c->n_svcs, sizeof(bool));
        mark_deps(c, s, dep);
        bool skip = flags[i] & SVC_NAMES_UNSURE;
        for (size_t j = 0; j < c->n_svcs; j++)
            skip |= dep[j] && (flags[j] & SVC_NAMES_UNSURE);
        if (skip)
            continue;
        struct tctx t = {.file = file, .c = c, .s = s, .dep = dep};
        terr e;
        errs_add(errs, check_tmpl_words(&t, "command", s->command_line, s->command, &e), &e);
        if (s->ready == READY_UNIX || s->ready == READY_LOG)
            errs_add(errs, check_tmpl(&t, "ready", s->ready_line, s->ready_arg, &e), &e);
        if (s->ready == READY_EXEC)
            errs_add(errs, check_tmpl_words(&t, "ready", s->ready_line, s->ready_arg, &e), &e);
        errs_add(errs, check_tmpl_words(&t, "reset", s->reset_line, s->reset, &e), &e);
        errs_add(errs, check_proto_tmpls(&t, s, &e), &e);
        for (size_t k = 0; k < s->n_exports; k++) {
            _cleanup_free_ char *key = xasprintf("export.%s", s->exports[k].key);
            errs_add(errs, check_tmpl(&t, key, s->exports[k].line, s->exports[k].value, &e), &e);
        }
        for (size_t k = 0; k < s->n_env; k++) {
            _cleanup_free_ char *key = xasprintf("env.%s", s->env[k].key);
            errs_add(errs, check_tmpl(&t, key, s->env[k].line, s->env[k].value, &e), &e);
        }
        check_driver_tmpls(&t, errs);
    }
}

/* ---- variable names: one name, one maker ---- */

/* A variable tether makes for a service: its full name and where it
 * comes from (for messages: "export.X" or "PORT", and the line). */
struct made_var {
    char *name;
    const struct svc_conf *s;
    char *what;
    int line;
};

static void made_push(struct made_var **v, size_t *n, const struct tether_config *c,
                      const struct svc_conf *s, const char *short_name, const char *what, int line)
{
    _cleanup_free_ char *full = config_varname(c->prefix, s, short_name);
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].s == s && streq((*v)[i].name, full))
            return; /* a driver variable that is also a core one (PORT) */
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n] = (struct made_var){.name = take_ptr(&full), .s = s, .what = xstrdup(what),
                                 .line = line};
    (*n)++;
}

void config_var_names(const struct svc_conf *s, strv *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(core_vars); i++)
        if (svc_has_var(s, core_vars[i]) && !strv_contains(out, core_vars[i]))
            strv_push(out, core_vars[i]);
    for (const char *const *d = s->driver->vars; d && *d; d++)
        if (!strv_contains(out, *d))
            strv_push(out, *d);
    for (size_t i = 0; i < s->n_exports; i++)
        if (!strv_contains(out, s->exports[i].key))
            strv_push(out, s->exports[i].key);
}

/* Every variable s makes (as svc_compute_vars does, with every variable
 * its driver may set; config_var_names lists the same). */
static void vars_of(const struct tether_config *c, const struct svc_conf *s,
                    struct made_var **v, size_t *n)
{
    for (size_t i = 0; i < ARRAY_SIZE(core_vars); i++)
        if (svc_has_var(s, core_vars[i])) {
            bool port = streq(core_vars[i], "PORT") || streq(core_vars[i], "HOST");
            made_push(v, n, c, s, core_vars[i], core_vars[i],
                      port && s->port_line ? s->port_line : s->line);
        }
    for (const char *const *d = s->driver->vars; d && *d; d++)
        made_push(v, n, c, s, *d, *d, s->line);
    for (size_t i = 0; i < s->n_exports; i++) {
        _cleanup_free_ char *what = xasprintf("export.%s", s->exports[i].key);
        made_push(v, n, c, s, s->exports[i].key, what, s->exports[i].line);
    }
}

static void made_free(struct made_var *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].what);
    }
    free(v);
}

/* An export must not replace a variable of its own driver either. */
static void check_exports(const char *file, const struct svc_conf *s, struct errlist *errs)
{
    terr e;
    for (size_t i = 0; i < s->n_exports; i++)
        for (const char *const *d = s->driver->vars; d && *d; d++)
            if (streq(s->exports[i].key, *d))
                errs_add(errs,
                         ferr(&e, file, s->exports[i].line,
                              "[%s] export.%s clashes with the variable %s that the %s driver "
                              "sets: pick another name",
                              s->label, s->exports[i].key, *d, s->driver->name),
                         &e);
}

/* env.NAME must not hide what tether sets in a service's environment: its
 * cookie, the notify socket, or any service's variables. */
static int check_env_key(const char *file, const struct svc_conf *s, const struct conf_kv *kv,
                         const struct made_var *v, size_t n, terr *e)
{
    if (streq(kv->key, COOKIE_VAR) ||
        (streq(kv->key, "NOTIFY_SOCKET") && s->ready == READY_NOTIFY))
        return ferr(e, file, kv->line,
                    "[%s] env.%s: tether sets %s itself (%s): remove it", s->label, kv->key,
                    kv->key, streq(kv->key, COOKIE_VAR)
                                 ? "it marks every process of an instance, for gc"
                                 : "ready = notify listens there");
    for (size_t j = 0; j < n; j++)
        if (streq(kv->key, v[j].name))
            return ferr(e, file, kv->line,
                        "[%s] env.%s would hide the variable that [%s] %s (line %d) "
                        "makes: remove it, or pick another name",
                        s->label, kv->key, v[j].s->label, v[j].what, v[j].line);
    return 0;
}

static void check_env(const char *file, const struct svc_conf *s, const struct made_var *v,
                      size_t n, struct errlist *errs)
{
    for (size_t i = 0; i < s->n_env; i++) {
        terr e;
        errs_add(errs, check_env_key(file, s, &s->env[i], v, n, &e), &e);
    }
}

/* Two services must not make the same variable ([a] export.B_PORT and
 * [a_b]'s PORT both make PREFIX_A_B_PORT): the last one would win. */
static void check_names(const char *file, const struct tether_config *c, struct errlist *errs)
{
    struct made_var *v = NULL;
    size_t n = 0;
    for (size_t i = 0; i < c->n_svcs; i++)
        vars_of(c, c->svcs[i], &v, &n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            if (!streq(v[i].name, v[j].name))
                continue;
            bool later = v[i].line >= v[j].line;
            const struct made_var *a = later ? &v[i] : &v[j], *b = later ? &v[j] : &v[i];
            terr e;
            errs_add(errs,
                     ferr(&e, file, a->line,
                          "[%s] %s makes the variable %s, and so does [%s] %s (line %d): "
                          "rename one",
                          a->s->label, a->what, a->name, b->s->label, b->what, b->line),
                     &e);
        }
    for (size_t i = 0; i < c->n_svcs; i++) {
        check_exports(file, c->svcs[i], errs);
        check_env(file, c->svcs[i], v, n, errs);
    }
    made_free(v, n);
}

/* A driver's keys that name a program (redis's bin) or a directory
 * (postgresql's bin_dir) are the project's like command's program: made
 * absolute against the config's directory here, once, so the driver never
 * meets a path relative to wherever tether happens to run. */
static void resolve_paths(const struct tether_config *c, struct svc_conf *s)
{
    for (size_t i = 0; i < s->n_opts; i++) {
        struct conf_kv *kv = &s->opts[i];
        bool prog = false, dir = false;
        for (const char *const *k = s->driver->program_keys; k && *k; k++)
            prog |= streq(kv->key, *k);
        for (const char *const *k = s->driver->dir_keys; k && *k; k++)
            dir |= streq(kv->key, *k);
        if (!*kv->value || (!dir && !(prog && strchr(kv->value, '/'))))
            continue;
        char *abs = config_program(c, kv->value, dir);
        free(kv->value);
        kv->value = abs;
    }
}

/* The protocol checks (proto.h) need something to talk to; and without a
 * health = of its own (or of its driver) a service's health check is its
 * protocol ready check. */
static int check_protos(const char *file, struct svc_conf *s, terr *e)
{
    const struct {
        const char *key;
        const struct proto *p;
        int line;
    } keys[] = {{"ready", s->ready_proto, s->ready_line},
                {"health", s->health, s->health_line},
                {"reset", s->reset_proto, s->reset_line}};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (keys[i].p && proto_needs_service_target(keys[i].p) && !s->socket && s->port < 0)
            return ferr(e, file, keys[i].line,
                        "[%s] %s = %s: the service has neither a socket nor a port to talk "
                        "to: add socket = auto or port = auto, or say where with "
                        "to:unix:PATH or to:tcp:PORT",
                        s->label, keys[i].key, keys[i].p->text);
    if (!s->health_line && s->ready_proto && !s->driver->health)
        s->health = s->ready_proto;
    return 0;
}

/* The driver's checks of one service, and the ready kinds it allows. */
static int check_service(const char *file, struct svc_conf *s, terr *e)
{
    int r;
    if (s->driver->configure && (r = s->driver->configure(s, file, e)) < 0)
        return r;
    if (s->ready == READY_DRIVER && !s->driver->probe)
        return ferr(e, file, s->ready_line ? s->ready_line : s->line,
                    "[%s] ready = driver: the %s driver has no probe of its own; choose "
                    "tcp, unix:PATH, log:REGEX, exec:COMMAND, notify, fd:N, send:TEXT "
                    "expect:TEXT or http:/PATH",
                    s->label, s->driver->name);
    if (s->ready == READY_TCP && s->port < 0)
        return ferr(e, file, s->ready_line ? s->ready_line : s->line,
                    "[%s] ready = tcp needs a port: add port = auto (or a number), or "
                    "choose another ready = check",
                    s->label);
    return check_protos(file, s, e);
}

/* Everything that needs the whole config: references, cycles, the drivers'
 * own checks, then templates (a driver may have set a port or ready kind).
 * flags[i]: what the errors in service i's keys leave unsure (SVC_). */
static void finish(const char *file, struct tether_config *c, int *flags, struct errlist *errs)
{
    terr e;
    check_after(file, c, errs);
    errs_add(errs, check_cycles(file, c, &e), &e);
    for (size_t i = 0; i < c->n_svcs; i++) {
        if (flags[i] & SVC_BAD)
            continue;
        resolve_paths(c, c->svcs[i]);
        int r = check_service(file, c->svcs[i], &e);
        errs_add(errs, r, &e);
        if (r < 0) /* it may not have set the port or socket it would have */
            flags[i] |= SVC_BAD | SVC_NAMES_UNSURE;
    }
    check_names(file, c, errs);
    check_templates(file, c, flags, errs);
}

/* Parse data[0..len) into c (whose path is set); frees c on error. */
static int parse_into(struct tether_config *c, const char *path, const char *data, size_t len,
                      struct tether_config **out, terr *e)
{
    int r;
    c->prefix = xstrdup("TETHER");

    struct errlist errs = {.file = path};
    struct parser p = {.file = path, .data = data, .len = len, .cur = -1, .errs = &errs};
    int ir = conf_parse(&p);
    terr sub;
    if (!p.err && ir == -2)
        errs_add(&errs, terr_set(&sub, ENOMEM, "%s: out of memory while parsing", path), &sub);
    else if (!p.err && ir != 0 && !errs.n) /* the reader mirrors inih: should not happen */
        errs_add(&errs, ferr(&sub, path, ir, "syntax error: expected key = value or [section]"),
                 &sub);
    _cleanup_free_ int *flags = xcalloc(p.n_secs + 1, sizeof(int));
    /* [tether] first, wherever it is: its drivers = decides what a
     * service's driver = NAME finds */
    for (size_t i = 0; !p.err && i < p.n_secs; i++)
        if (streq(p.secs[i].name, "tether"))
            tether_section(path, c, &p.secs[i], &errs);
    for (size_t i = 0; !p.err && i < p.n_secs; i++) {
        if (!streq(p.secs[i].name, "tether")) {
            size_t k = c->n_svcs;
            flags[k] = svc_section(path, c, &p.secs[i], &errs);
        }
    }
    bool fatal = p.err != 0;
    ini_free(p.secs, p.n_secs);
    if (!fatal && c->n_svcs == 0 && !errs.n)
        errs_add(&errs,
                 ferr(&sub, path, 0,
                      "no services defined: add a [name] section, e.g. [web] with command = ..."),
                 &sub);
    if (!fatal && c->n_svcs)
        finish(path, c, flags, &errs);
    r = errs_finish(&errs, e);
    if (r < 0) {
        config_free(c);
        return r;
    }
    *out = c;
    return 0;
}

/* A config is small: refuse to read more than this (-f /dev/zero). */
#define CONFIG_MAX_BYTES (4 << 20)

static int read_config(const char *path, char **out, size_t *len, terr *e)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return terr_set(e, errno,
                        "cannot read config file %s: %s (give another one with -f FILE)", path,
                        strerror(errno));
    _cleanup_sb_ strbuf b = {0};
    for (;;) {
        sb_grow(&b, 65536);
        ssize_t n = read(fd, b.s + b.len, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return terr_set(e, errno,
                            "cannot read config file %s: %s (give another one with -f FILE)",
                            path, strerror(errno));
        if (n == 0)
            break;
        b.len += (size_t)n;
        if (b.len > CONFIG_MAX_BYTES)
            return terr_set(e, EFBIG, "%s: more than %d MB: that is not a tether config", path,
                            CONFIG_MAX_BYTES >> 20);
    }
    b.s[b.len] = '\0';
    *len = b.len;
    *out = sb_steal(&b);
    return 0;
}

int config_load(const char *path, struct tether_config **out, terr *e)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_config(path, &data, &len, e);
    if (r < 0)
        return r;
    struct tether_config *c = xcalloc(1, sizeof(*c));
    c->path = realpath(path, NULL);
    if (!c->path) {
        r = -errno;
        config_free(c);
        return terr_set(e, r, "cannot resolve config file %s: %s", path, strerror(-r));
    }
    c->dir = dir_of(c->path);
    return parse_into(c, path, data, len, out, e);
}

int config_drivers_dir(const char *path, char **out, terr *e)
{
    *out = NULL;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_config(path, &data, &len, e);
    if (r < 0)
        return r;
    struct ini_section *secs;
    size_t n;
    if ((r = ini_read(path, data, len, &secs, &n, e)) < 0)
        return r;
    _cleanup_free_ char *abs = realpath(path, NULL);
    struct tether_config c = {.dir = dir_of(abs ? abs : path)};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; streq(secs[i].name, "tether") && k < secs[i].n; k++)
            if (streq(secs[i].kv[k].key, "drivers") && *secs[i].kv[k].value) {
                free(*out);
                *out = config_path(&c, secs[i].kv[k].value);
            }
    free(c.dir);
    ini_free(secs, n);
    return 0;
}

int config_parse(const char *name, const char *data, size_t len, struct tether_config **out,
                 terr *e)
{
    struct tether_config *c = xcalloc(1, sizeof(*c));
    c->path = xstrdup(name);
    c->dir = dir_of(name);
    return parse_into(c, name, data, len, out, e);
}

/* config_builtin, with the recipes of a config's [tether] drivers =
 * (ddir, NULL none) found too: `tether run NAME` beside that config. */
static int builtin_in(const char *ddir, const char *const *names, size_t n,
                      struct tether_config **out, terr *e)
{
    if (n == 0)
        return terr_set(e, EINVAL,
                        "no services named: name a built-in service (e.g. postgresql), or "
                        "write a tether.ini");
    struct tether_config *c = xcalloc(1, sizeof(*c));
    c->prefix = xstrdup("TETHER");
    c->dir = dir_of(NULL);
    c->drivers_dir = ddir ? xstrdup(ddir) : NULL;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        terr de = {{0}};
        const struct tether_driver *d =
            valid_label(names[i]) ? driver_lookup(ddir, names[i], &de) : NULL;
        if (!d && de.msg[0]) {
            r = terr_set(e, EINVAL, "%s", de.msg);
            break;
        }
        /* command and container run only what a config says */
        if (!d || d == &driver_command || d == &driver_container) {
            r = config_unknown_name(NULL, names[i], e);
            break;
        }
        if (config_find(c, names[i]))
            continue;
        struct svc_conf *s = svc_new(c, names[i], 0);
        s->driver = d;
    }
    if (r == 0) {
        struct errlist errs = {.file = BUILTIN_FILE};
        _cleanup_free_ int *flags = xcalloc(c->n_svcs + 1, sizeof(int));
        finish(BUILTIN_FILE, c, flags, &errs);
        r = errs_finish(&errs, e);
    }
    if (r < 0) {
        config_free(c);
        return r;
    }
    *out = c;
    return 0;
}

int config_builtin(const char *const *names, size_t n, struct tether_config **out, terr *e)
{
    return builtin_in(NULL, names, n, out, e);
}

int config_unknown_name(const struct tether_config *c, const char *name, terr *e)
{
    _cleanup_sb_ strbuf have = {0}, builtin = {0};
    const char *ddir = c ? c->drivers_dir : NULL;
    struct driver_entry *drv;
    size_t n = c ? c->n_svcs : 0, nd = driver_list(ddir, &drv);
    _cleanup_free_ const char **cands = xcalloc(n + nd + 1, sizeof(*cands));
    for (size_t k = 0; c && k < n; k++) {
        sb_addf(&have, "%s%s", k ? ", " : "", c->svcs[k]->label);
        cands[k] = c->svcs[k]->label;
    }
    driver_names(ddir, &builtin, true);
    for (size_t k = 0; k < nd; k++)
        cands[n + k] = streq(drv[k].name, "command") || streq(drv[k].name, "container") ||
                               !drv[k].driver
                           ? NULL
                           : drv[k].name;
    _cleanup_free_ char *hint = NULL;
    const char *near = closest_word(name, cands, n + nd);
    if (near)
        hint = xasprintf(": did you mean '%s'?", near);
    driver_list_free(drv, nd);
    const struct tether_driver *d = valid_label(name) ? driver_lookup(ddir, name, NULL) : NULL;
    if (c && c->path && d && d != &driver_command && d != &driver_container)
        return terr_set(e, EINVAL,
                        "no service '%s' in %s (it has: %s): to start the built-in %s driver "
                        "with them, add a [%s] section; on its own: tether run %s",
                        name, c->path, have.s, name, name, name);
    if (!c || !c->path)
        return terr_set(e, EINVAL,
                        "unknown service '%s'%s (the built-in drivers are: %s; anything else "
                        "needs a config file: -f FILE, $TETHER_CONFIG or ./tether.ini)",
                        name, hint ? hint : "", builtin.s);
    return terr_set(e, EINVAL,
                    "no service '%s' in %s%s (it has: %s; the built-in drivers are: %s)", name,
                    c->path, hint ? hint : "", have.s, builtin.s);
}

int config_use_builtins(struct tether_config **cfg, const char *const *names, size_t n,
                        strbuf *note, terr *e)
{
    if (!*cfg || n == 0)
        return 0;
    const char *ddir = (*cfg)->drivers_dir;
    for (size_t i = 0; i < n; i++) {
        const struct tether_driver *d =
            valid_label(names[i]) ? driver_lookup(ddir, names[i], NULL) : NULL;
        if (config_find(*cfg, names[i]) || !d || d == &driver_command || d == &driver_container)
            return 0;
    }
    struct tether_config *b = NULL;
    int r = builtin_in(ddir, names, n, &b, e);
    if (r < 0)
        return r;
    /* the file may have one under another name: say which, as it may be
     * the one that was meant (with its init_sql) */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < (*cfg)->n_svcs; k++)
            if (streq((*cfg)->svcs[k]->driver->name, names[i]))
                sb_addf(note,
                        "%s%s has no [%s]: starting the built-in %s driver with its defaults; "
                        "its [%s] (driver = %s) starts with: tether run %s",
                        note->len ? "\n" : "", (*cfg)->path, names[i], names[i],
                        (*cfg)->svcs[k]->label, names[i], (*cfg)->svcs[k]->label);
    config_free(*cfg);
    *cfg = b;
    return 1;
}

int config_select(const struct tether_config *c, const char *const *names, size_t n,
                  struct svc_conf ***out, size_t *nout, terr *e)
{
    _cleanup_free_ bool *want = xcalloc(c->n_svcs, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        size_t j = svc_index(c, names[i]);
        if (j == SIZE_MAX)
            return config_unknown_name(c, names[i], e);
        want[j] = true;
        mark_deps(c, c->svcs[j], want);
    }
    if (n == 0)
        for (size_t i = 0; i < c->n_svcs; i++)
            want[i] = true;

    /* Kahn's algorithm, always taking the first ready one in file order, so
     * independent services keep the order of the file. */
    size_t total = 0;
    for (size_t i = 0; i < c->n_svcs; i++)
        total += want[i];
    struct svc_conf **res = xcalloc(total, sizeof(*res));
    _cleanup_free_ bool *done = xcalloc(c->n_svcs, sizeof(bool));
    size_t k = 0;
    while (k < total) {
        size_t pick = SIZE_MAX;
        for (size_t i = 0; i < c->n_svcs && pick == SIZE_MAX; i++) {
            if (!want[i] || done[i])
                continue;
            bool ready = true;
            for (size_t a = 0; a < c->svcs[i]->after.n && ready; a++) {
                size_t j = svc_index(c, c->svcs[i]->after.v[a]);
                if (j != SIZE_MAX && !done[j])
                    ready = false;
            }
            if (ready)
                pick = i;
        }
        if (pick == SIZE_MAX) { /* config_load rejects cycles; be safe anyway */
            free(res);
            return terr_set(e, EINVAL, "%s: dependency cycle among the selected services",
                            c->path ? c->path : BUILTIN_FILE);
        }
        done[pick] = true;
        res[k++] = c->svcs[pick];
    }
    *out = res;
    *nout = total;
    return 0;
}
