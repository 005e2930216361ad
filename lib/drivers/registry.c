/* Where drivers come from: the C built-ins, and recipes (recipe.c) on the
 * search path.
 *
 * The search path, first match wins:
 *   1. the config's [tether] drivers = DIR (relative to the config file)
 *   2. $TETHER_DRIVERS (a directory, or several separated by ':')
 *   3. $XDG_DATA_HOME/tether/drivers (default ~/.local/share/tether/drivers)
 *   4. the C built-ins (command, postgresql, redis, mariadb, slapd, container)
 *   5. the recipes compiled into the binary (data/drivers, NAME.ini): "built-in"
 *   6. <datadir>/tether/drivers: the installed copies of those, and the
 *      recipes another package adds there (new names)
 * A user's recipe (1-3) of a built-in's name wins over the built-in.  The
 * compiled-in copy is what makes the shipped recipes work from the build
 * tree, in `make check` and in a binary copied without its data files: a
 * recipe is a few hundred bytes, and reading it from memory costs nothing
 * at start-up (a file is opened only when it shadows it).  It comes before
 * the installed directory so that a binary always runs its own recipes:
 * a copy left there by an older install cannot shadow them, and tests do
 * not depend on what is installed on the machine. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "driver.h"
#include "recipe.h"
#include "tether-build.h"

static const struct tether_driver *const drivers[] = {
    &driver_command,
    &driver_postgresql,
    &driver_redis,
    &driver_mariadb,
    &driver_slapd,
    &driver_container,
};

/* The recipes loaded so far, by file (or "built-in:NAME"): loaded once per
 * process and kept, as the C drivers are static (svc_conf points at them). */
static struct recipe **loaded;
static size_t n_loaded;

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The search path's directories before the C built-ins (user), after
 * them (the installed ones), into dirs. */
static void user_dirs(const char *config_dir, strv *dirs)
{
    if (config_dir)
        strv_push(dirs, config_dir);
    const char *env = getenv("TETHER_DRIVERS");
    for (const char *p = env; p && *p;) {
        size_t n = strcspn(p, ":");
        if (n)
            strv_push_own(dirs, xstrndup(p, n));
        p += n + (p[n] == ':');
    }
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && *xdg == '/')
        strv_pushf(dirs, "%s/tether/drivers", xdg);
    else if (home && *home)
        strv_pushf(dirs, "%s/.local/share/tether/drivers", home);
}

static const char *installed_dir(void)
{
    return TETHER_DATADIR "/tether/drivers";
}

static bool valid_name(const char *name)
{
    if (!*name || strlen(name) > 31) /* state.c records it in 32 bytes */
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

static const struct tether_driver *c_builtin(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
        if (streq(drivers[i]->name, name))
            return drivers[i];
    return NULL;
}

static const struct builtin_recipe *embedded(const char *name)
{
    for (size_t i = 0; i < n_builtin_recipes; i++)
        if (streq(builtin_recipes[i].name, name))
            return &builtin_recipes[i];
    return NULL;
}

/* The recipe in file `path` (text: its contents when compiled in, else
 * NULL), loaded once.  NULL with e set when it is broken. */
static const struct tether_driver *load(const char *path, const char *name, const char *text,
                                        terr *e)
{
    for (size_t i = 0; i < n_loaded; i++)
        if (streq(recipe_path(loaded[i]), path))
            return recipe_driver(loaded[i]);
    struct recipe *r = NULL;
    int rc = text ? recipe_parse(path, name, text, strlen(text), &r, e)
                  : recipe_load(path, name, &r, e);
    if (rc < 0)
        return NULL;
    loaded = xrealloc(loaded, (n_loaded + 1) * sizeof(*loaded));
    loaded[n_loaded++] = r;
    return recipe_driver(r);
}

/* The first dirs/NAME.ini that exists (malloc'd), or NULL. */
static char *first_file(const strv *dirs, const char *name)
{
    for (size_t i = 0; i < dirs->n; i++) {
        char *p = xasprintf("%s/%s.ini", dirs->v[i], name);
        if (is_file(p))
            return p;
        free(p);
    }
    return NULL;
}

static const struct tether_driver *in_dirs(const strv *dirs, const char *name, terr *e)
{
    _cleanup_free_ char *p = first_file(dirs, name);
    return p ? load(p, name, NULL, e) : NULL;
}

const struct tether_driver *driver_lookup(const char *config_dir, const char *name, terr *e)
{
    terr scratch = {{0}};
    terr *err = e ? e : &scratch;
    err->msg[0] = '\0';
    if (!valid_name(name))
        return NULL;
    _cleanup_strv_ strv dirs = {0};
    user_dirs(config_dir, &dirs);
    const struct tether_driver *d = in_dirs(&dirs, name, err);
    if (d || err->msg[0])
        return d;
    if ((d = c_builtin(name)))
        return d;
    const struct builtin_recipe *b = embedded(name);
    if (b) {
        _cleanup_free_ char *p = xasprintf(BUILTIN_RECIPE_PREFIX "%s.ini", name);
        return load(p, name, b->text, err);
    }
    strv_free(&dirs);
    strv_push(&dirs, installed_dir());
    return in_dirs(&dirs, name, err);
}

const struct tether_driver *driver_at(size_t i)
{
    if (i < ARRAY_SIZE(drivers))
        return drivers[i];
    i -= ARRAY_SIZE(drivers);
    return i < n_builtin_recipes ? driver_find(builtin_recipes[i].name) : NULL;
}

const struct tether_driver *driver_find(const char *name)
{
    return driver_lookup(NULL, name, NULL);
}

/* ---- listing ---- */

static int by_name(const void *a, const void *b)
{
    const struct driver_entry *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static bool listed(const struct driver_entry *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (streq(v[i].name, name))
            return true;
    return false;
}

static void add_entry(struct driver_entry **v, size_t *n, const char *name, const char *from,
                      const struct tether_driver *d, const char *err)
{
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n] = (struct driver_entry){.name = xstrdup(name), .from = xstrdup(from), .driver = d,
                                     .error = err ? xstrdup(err) : NULL};
    (*n)++;
}

/* Every NAME.ini of dir not already in v. */
static void add_dir(struct driver_entry **v, size_t *n, const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return;
    size_t start = *n;
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l <= 4 || !streq(de->d_name + l - 4, ".ini"))
            continue;
        _cleanup_free_ char *name = xstrndup(de->d_name, l - 4);
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
        if (!valid_name(name) || listed(*v, *n, name) || !is_file(path))
            continue;
        terr e = {0};
        const struct tether_driver *d = load(path, name, NULL, &e);
        add_entry(v, n, name, path, d, d ? NULL : e.msg);
    }
    closedir(dp);
    qsort(*v + start, *n - start, sizeof(**v), by_name);
}

size_t driver_list(const char *config_dir, struct driver_entry **out)
{
    struct driver_entry *v = NULL;
    size_t n = 0;
    /* the C built-ins first, in their order, unless a user's recipe
     * shadows them (then it takes their place) */
    _cleanup_strv_ strv dirs = {0};
    user_dirs(config_dir, &dirs);
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++) {
        _cleanup_free_ char *p = first_file(&dirs, drivers[i]->name);
        terr e = {0};
        const struct tether_driver *d = p ? load(p, drivers[i]->name, NULL, &e) : drivers[i];
        add_entry(&v, &n, drivers[i]->name, p ? p : "built-in (C)", d, d ? NULL : e.msg);
    }
    for (size_t i = 0; i < dirs.n; i++)
        add_dir(&v, &n, dirs.v[i]);
    size_t start = n;
    for (size_t i = 0; i < n_builtin_recipes; i++) {
        if (listed(v, n, builtin_recipes[i].name))
            continue;
        terr e = {0};
        const struct tether_driver *d = driver_lookup(NULL, builtin_recipes[i].name, &e);
        add_entry(&v, &n, builtin_recipes[i].name, "built-in", d, d ? NULL : e.msg);
    }
    qsort(v + start, n - start, sizeof(*v), by_name);
    add_dir(&v, &n, installed_dir());
    *out = v;
    return n;
}

void driver_list_free(struct driver_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].from);
        free(v[i].error);
    }
    free(v);
}

void driver_names(const char *config_dir, strbuf *b, bool builtin_only)
{
    struct driver_entry *v;
    size_t n = driver_list(config_dir, &v);
    const char *sep = "";
    for (size_t i = 0; i < n; i++) {
        if ((builtin_only && (streq(v[i].name, "command") || streq(v[i].name, "container"))) || !v[i].driver)
            continue;
        sb_addf(b, "%s%s", sep, v[i].name);
        sep = ", ";
    }
    driver_list_free(v, n);
}

const char *driver_closest(const char *config_dir, const char *name, bool builtin_only)
{
    struct driver_entry *v;
    size_t n = driver_list(config_dir, &v);
    const char **names = xcalloc(n + 1, sizeof(*names));
    for (size_t i = 0; i < n; i++)
        names[i] = (builtin_only && (streq(v[i].name, "command") || streq(v[i].name, "container"))) || !v[i].driver ? NULL
                                                                                 : v[i].name;
    const char *near = closest_word(name, names, n);
    /* the name outlives the list: the driver's own */
    const char *res = NULL;
    for (size_t i = 0; near && i < n && !res; i++)
        if (names[i] == near && v[i].driver)
            res = v[i].driver->name;
    free(names);
    driver_list_free(v, n);
    return res;
}

void driver_globals_of(const char *stem, strv *names)
{
    struct driver_entry *v;
    size_t n = driver_list(NULL, &v);
    for (size_t i = 0; i < n; i++)
        for (const char *const *g = v[i].driver ? v[i].driver->globals : NULL; g && g[0] && g[1];
             g += 2) {
            _cleanup_free_ char *own = xasprintf("%s_%s", stem, g[1]);
            const char *gv = getenv(g[0]), *ov = getenv(own);
            if (gv && ov && streq(gv, ov) && !strv_contains(names, g[0]))
                strv_push(names, g[0]);
        }
    driver_list_free(v, n);
}
