/* The `slapd` driver: OpenLDAP's slapd with a generated slapd.conf in the
 * service's private directory, an mdb database copied from a per-user
 * cache (datacache.h), listening on ldapi:// (a unix socket in that 0700
 * directory) and, with tcp = yes, on ldap://127.0.0.1:PORT.
 *
 * Why C and not a recipe: the database is built once per (slapd binary,
 * suffix, schemas, init_ldif text) by slapadd and copied per instance, and
 * a reset puts that copy back before slapd starts again; a recipe has
 * neither a cache nor a step before the start that a template cannot say.
 *
 * Measured on the project's 2-core VM (loaded): slapadd of the base entry
 * 11-37 ms (once per key); the copy of the cached database (two files,
 * 40 KB: mdb grows its file as it writes, so the 64 MB map costs nothing)
 * 1-3 ms; slapd ready 25-35 ms (most of it reading the four schemas);
 * SIGKILL and reap 2-4 ms, SIGTERM 7-8 ms.  So a reset is a restart: kill,
 * copy, start, some 35 ms; deleting every entry and adding init_ldif back
 * over LDAP would leave entryUUIDs, timestamps and the contextCSN changed,
 * and costs a round trip per entry. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fsutil.h"
#include "../kit.h"
#include "../service.h"
#include "../spawn.h"
#include "../template.h"
#include "datacache.h"
#include "driver.h"

#define CACHE_FORMAT "tether-slapd-cache-1"
#define DEFAULT_SUFFIX "dc=example,dc=com"
#define DEFAULT_SCHEMAS "core cosine inetorgperson nis"
#define SCHEMA_DIR "/etc/ldap/schema"
/* Debian builds the backends as modules */
#define MODULE_DIR "/usr/lib/ldap"
#define INIT_LDIF_MAX (64 << 20)
/* mdb's map: address space only, the file grows as entries are written */
#define MAXSIZE (64 << 20)

/* An anonymous simple bind (message 1) and the start of its success
 * answer: LDAP's own "are you there", which slapd answers only once its
 * database is open (a connect alone succeeds while it reads the schemas). */
#define READY_CHECK                                                                              \
    "raw:\\x30\\x0c\\x02\\x01\\x01\\x60\\x07\\x02\\x01\\x03\\x04\\x00\\x80\\x00 "               \
    "expect:\\x30\\x0c\\x02\\x01\\x01\\x61\\x07\\x0a\\x01\\x00"

static const char *const slapd_vars[] = {"URL", "BASE", "BINDDN", "PASSWORD", NULL};
static const char *const known_keys[] = {"suffix", "schemas", "init_ldif", "tcp", "bin", NULL};

struct slapd_data {
    char bin[PATH_MAX];
    char password[33]; /* made once per instance, kept across restarts */
    struct datacache_use cache;
};

/* ---- configure ---- */

/* An RDN's value we can write into slapd.conf and an LDIF as it is:
 * printable ASCII without DN specials, quotes or backslashes. */
static bool plain_value(const char *v, size_t n)
{
    if (!n || v[0] == ' ' || v[n - 1] == ' ' || v[0] == '#')
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e || strchr("\\\"+,;<>=", v[i]))
            return false;
    return true;
}

static bool plain_attr(const char *a, size_t n)
{
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
              (a[i] >= '0' && a[i] <= '9') || a[i] == '-'))
            return false;
    return true;
}

/* suffix: attr=value RDNs separated by commas, plain ones. */
static bool valid_suffix(const char *s)
{
    for (const char *p = s;;) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        if (!eq || !plain_attr(p, (size_t)(eq - p)) || !plain_value(eq + 1, n - (eq + 1 - p)))
            return false;
        if (!p[n])
            return true;
        p += n + 1;
        p += strspn(p, " ");
    }
}

/* The objectClass lines of a base entry named by its first RDN's
 * attribute, or NULL when we know none (then init_ldif must hold it). */
static const char *base_classes(const char *attr, size_t n)
{
    static const char *const m[][2] = {
        {"dc", "objectClass: dcObject\nobjectClass: organization\n"},
        {"o", "objectClass: organization\n"},
        {"ou", "objectClass: organizationalUnit\n"},
        {"c", "objectClass: country\n"},
        {"l", "objectClass: locality\n"},
        {"cn", "objectClass: organizationalRole\n"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(m); i++)
        if (strlen(m[i][0]) == n && !strncasecmp(attr, m[i][0], n))
            return m[i][1];
    return NULL;
}

/* A schema word: a name in /etc/ldap/schema, or a path with a '/'. */
static bool valid_schema_word(const char *w)
{
    if (strchr(w, '/'))
        return !strchr(w, '"') && !strchr(w, '\\');
    return plain_attr(w, strlen(w)) || strchr(w, '_');
}

static int check_schemas(const struct svc_conf *c, const struct conf_kv *kv, const char *file,
                         terr *e)
{
    _cleanup_strv_ strv w = {0};
    int r = split_words(kv->value, &w, e);
    if (r == 0 && !w.n)
        r = terr_set(e, EINVAL, "is empty");
    for (size_t i = 0; r == 0 && i < w.n; i++)
        if (!valid_schema_word(w.v[i]))
            r = terr_set(e, EINVAL, "'%s' is no schema name", w.v[i]);
    if (r < 0)
        return terr_at(e, EINVAL, file, kv->line,
                       "[%s] schemas = %s: %s: list names of " SCHEMA_DIR "/NAME.schema (default "
                       DEFAULT_SCHEMAS ") or paths of .schema files, separated by spaces",
                       c->label, kv->value, e->msg);
    return 0;
}

static int check_key(const struct svc_conf *c, const struct conf_kv *kv, const char *file,
                     terr *e)
{
    bool b;
    const char *k = kv->key, *v = kv->value;
    if (streq(k, "tcp") && parse_bool(v, &b) < 0)
        return terr_at(e, EINVAL, file, kv->line, "[%s] tcp = %s: say " BOOL_WORDS, c->label, v);
    if (streq(k, "suffix") && !valid_suffix(v))
        return terr_at(e, EINVAL, file, kv->line,
                       "[%s] suffix = %s: write a DN of plain attr=value parts separated by "
                       "commas, e.g. suffix = " DEFAULT_SUFFIX " (no quotes, backslashes, '+' "
                       "or non-ASCII)", c->label, v);
    if (streq(k, "schemas"))
        return check_schemas(c, kv, file, e);
    if ((streq(k, "init_ldif") || streq(k, "bin")) && !*v)
        return terr_at(e, EINVAL, file, kv->line,
                       "[%s] %s is empty: name a file, or remove the line", c->label, k);
    return 0;
}

static const char *suffix_of(const struct svc_conf *c)
{
    const char *v = svc_opt(c, "suffix");
    return v ? v : DEFAULT_SUFFIX;
}

static int slapd_configure(struct svc_conf *c, const char *file, terr *e)
{
    bool tcp = false;
    for (size_t i = 0; i < c->n_opts; i++) {
        int r = check_key(c, &c->opts[i], file, e);
        if (r < 0)
            return r;
        if (streq(c->opts[i].key, "tcp"))
            parse_bool(c->opts[i].value, &tcp);
    }
    if (c->command)
        return terr_at(e, EINVAL, file, c->command_line,
                       "[%s] the slapd driver writes its own slapd.conf and command: remove "
                       "command = (suffix =, schemas = and init_ldif = are its options)",
                       c->label);
    const char *suffix = suffix_of(c);
    size_t an = strcspn(suffix, "=");
    if (!base_classes(suffix, an) && !svc_opt(c, "init_ldif"))
        return terr_at(e, EINVAL, file, c->line,
                       "[%s] suffix = %s: tether makes a base entry for a suffix that starts "
                       "with dc=, o=, ou=, c=, l= or cn=; for %.*s= give init_ldif = FILE whose "
                       "first entry is dn: %s", c->label, suffix, (int)an, suffix, suffix);
    if (tcp && c->port < 0)
        c->port = 0; /* a port the user set means TCP too */
    if (!c->socket)
        c->socket = xstrdup("slapd.sock"); /* ldapi:// always: the ready check uses it */
    int r = 0;
    if (!c->ready_line)
        r = config_set_key(file, c, "ready", READY_CHECK, c->line > 0 ? c->line : 1, e);
    if (!c->reset_line)
        c->reset_restart = true; /* the cached database copied back: see above */
    if (!c->stop_signal_line)
        c->stop_signal = SIGKILL; /* the data is disposable; SIGTERM costs 5 ms more */
    return r;
}

/* ---- the data ---- */

static struct slapd_data *sdata(struct svc *s)
{
    if (!s->driver_data) {
        struct slapd_data *d = xcalloc(1, sizeof(*d));
        datacache_use_init(&d->cache);
        s->driver_data = d;
    }
    return s->driver_data;
}

/* The schema files, in order: /etc/ldap/schema/NAME.schema or paths. */
static int schema_paths(struct svc *s, strv *out, terr *e)
{
    const char *v = svc_opt(s->conf, "schemas");
    _cleanup_strv_ strv w = {0};
    int r = split_words(v ? v : DEFAULT_SCHEMAS, &w, e);
    for (size_t i = 0; r == 0 && i < w.n; i++) {
        char *p = strchr(w.v[i], '/') ? svc_config_path(s, w.v[i])
                                       : xasprintf(SCHEMA_DIR "/%s.schema", w.v[i]);
        strv_push_own(out, p);
        if (access(p, R_OK) < 0)
            r = terr_set(e, errno, "[%s] schemas: %s: %m (%s)", s->conf->label, p,
                         strchr(w.v[i], '/') ? "fix the path"
                         : "a name in schemas = is that of " SCHEMA_DIR "/NAME.schema, which "
                           "the Debian package slapd installs");
    }
    return r;
}

static void fnv_file(unsigned long long *h, const char *path)
{
    struct stat st;
    datacache_key_add(h, path, strlen(path));
    if (stat(path, &st) == 0) { /* an upgrade changes it */
        datacache_key_add(h, &st.st_size, sizeof(st.st_size));
        datacache_key_add(h, &st.st_mtim, sizeof(st.st_mtim));
    }
}

/* What a build needs, in the job's child (a copy of it). */
struct build_args {
    struct svc *s;
    const char *bin, *suffix;
    const strv *schemas;
    char *ldif; /* init_ldif's text, or NULL */
    char *ldif_path;
};

static int read_init_ldif(struct svc *s, struct build_args *a, terr *e)
{
    const char *f = svc_opt(s->conf, "init_ldif");
    if (!f)
        return 0;
    a->ldif_path = svc_config_path(s, f);
    size_t len;
    /* as root too: a FIFO must not hang the start, nor a huge file eat memory */
    int r = read_file_trusted(AT_FDCWD, a->ldif_path, USER_PATH, INIT_LDIF_MAX, &a->ldif, &len, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s] cannot read init_ldif = %s", s->conf->label, a->ldif_path);
    if (strlen(a->ldif) != len)
        return terr_set(e, EINVAL, "[%s] init_ldif = %s has a NUL byte: is it LDIF?",
                        s->conf->label, a->ldif_path);
    return 0;
}

static void cache_key(const struct build_args *a, char out[40])
{
    unsigned long long h = FNV1A_INIT;
    datacache_key_add(&h, CACHE_FORMAT, strlen(CACHE_FORMAT));
    fnv_file(&h, a->bin);
    datacache_key_add(&h, a->suffix, strlen(a->suffix));
    for (size_t i = 0; i < a->schemas->n; i++)
        fnv_file(&h, a->schemas->v[i]);
    if (a->ldif)
        datacache_key_add(&h, a->ldif, strlen(a->ldif));
    snprintf(out, 40, "slapd-%016llx", h);
}

/* slapd.conf, for the server (with rootpw) or for the build's slapadd. */
static void conf_text(strbuf *b, const char *label, const strv *schemas, const char *suffix,
                      const char *dbdir, const char *password)
{
    sb_addf(b, "# written by tether for [%s] at every start\n", label);
    for (size_t i = 0; i < schemas->n; i++)
        sb_addf(b, "include \"%s\"\n", schemas->v[i]);
    if (access(MODULE_DIR "/back_mdb.la", F_OK) == 0)
        sb_add(b, "modulepath " MODULE_DIR "\nmoduleload back_mdb\n");
    /* ldapi's EXTERNAL identity is the socket's owner (a 0700
     * directory): the admin; a DN without a password (LDAPBINDDN set,
     * no -w) binds anonymously instead of failing */
    sb_addf(b, "authz-regexp \"^.*,cn=peercred,cn=external,cn=auth$\" \"cn=admin,%s\"\n"
               "allow bind_anon_dn\n", suffix);
    sb_addf(b, "database mdb\nsuffix \"%s\"\nrootdn \"cn=admin,%s\"\n", suffix, suffix);
    if (password)
        sb_addf(b, "rootpw %s\n", password);
    sb_addf(b, "directory \"%s\"\nmaxsize %d\ndbnosync\n", dbdir, MAXSIZE);
    /* anonymous reads on the private socket only: over TCP every local
     * user could connect */
    sb_add(b, "access to * by sockurl.regex=\"^ldapi://\" read by * none\n");
}

static int write_conf(int dfd, const char *name, const char *text, const char *label,
                      const char *dir, terr *e)
{
    int r = write_file_atomic(dfd, name, text, strlen(text), 0600);
    if (r < 0)
        return terr_set(e, r, "[%s] cannot write %s/%s: %s", label, dir, name, strerror(-r));
    return 0;
}

/* The LDIF slapadd loads: the base entry (unless init_ldif has it), then
 * init_ldif. */
static bool has_entry(const char *ldif, const char *dn)
{
    size_t n = strlen(dn);
    for (const char *p = ldif; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncasecmp(p, "dn:", 3) != 0)
            continue;
        const char *v = p + 3 + strspn(p + 3, " ");
        size_t l = strcspn(v, "\r\n");
        while (l && v[l - 1] == ' ')
            l--;
        if (l == n && !strncasecmp(v, dn, n))
            return true;
    }
    return false;
}

static char *load_ldif(const struct build_args *a)
{
    _cleanup_sb_ strbuf b = {0};
    if (!a->ldif || !has_entry(a->ldif, a->suffix)) {
        size_t an = strcspn(a->suffix, "="), vn = strcspn(a->suffix + an + 1, ",");
        const char *v = a->suffix + an + 1;
        sb_addf(&b, "dn: %s\n%s%.*s: %.*s\n", a->suffix, base_classes(a->suffix, an), (int)an,
                a->suffix, (int)vn, v);
        if (!strncasecmp(a->suffix, "dc=", 3))
            sb_addf(&b, "o: %.*s\n", (int)vn, v);
        sb_add(&b, "\n");
    }
    if (a->ldif)
        sb_add(&b, a->ldif);
    return sb_steal(&b);
}

static int run_slapadd(const struct build_args *a, const char *dir, terr *e)
{
    struct svc *s = a->s;
    _cleanup_strv_ strv argv = {0}, env = {0};
    svc_environ(s, &env); /* carries the cookie: gc finds a builder left behind */
    strv_push(&argv, a->bin);
    strv_push(&argv, "-Ta"); /* slapadd: one binary */
    strv_pushf(&argv, "-f%s/slapd.conf", dir);
    strv_pushf(&argv, "-l%s/load.ldif", dir);
    _cleanup_close_ int log = open(s->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct spawn_opts o = {.argv = argv.v, .envp = env.v, .log_fd = log, .pass_fd = -1,
                           .cwd = "/"};
    pid_t pid;
    int r = spawn_process(&o, &pid, e), status = 0;
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    _cleanup_free_ char *excerpt = svc_log_excerpt(s);
    return terr_set(e, EIO, "[%s] slapadd (%s -Ta) failed (status %d) loading %s into the "
                    "cache: fix the LDIF or the schemas;%s", s->conf->label, a->bin,
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                    a->ldif_path ? a->ldif_path : "the base entry", excerpt);
}

/* datacache's build: dir/data made by slapadd, nothing else left. */
static int build(void *arg, int root, const char *dir, terr *e)
{
    (void)root;
    const struct build_args *a = arg;
    const char *label = a->s->conf->label;
    _cleanup_close_ int dfd = open(dir, O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || mkdirat(dfd, "data", 0700) < 0)
        return terr_set(e, errno, "[%s] cannot make %s/data: %m", label, dir);
    _cleanup_sb_ strbuf conf = {0};
    _cleanup_free_ char *db = xasprintf("%s/data", dir), *ldif = load_ldif(a);
    conf_text(&conf, label, a->schemas, a->suffix, db, NULL);
    int r = write_conf(dfd, "slapd.conf", conf.s, label, dir, e);
    if (r == 0)
        r = write_conf(dfd, "load.ldif", ldif, label, dir, e);
    if (r == 0)
        r = run_slapadd(a, dir, e);
    /* the lock file is remade by slapd; the rest was the build's */
    (void)unlinkat(dfd, "data/lock.mdb", 0);
    (void)unlinkat(dfd, "slapd.conf", 0);
    (void)unlinkat(dfd, "load.ldif", 0);
    return r;
}

/* ---- prepare, argv ---- */

/* slapd lives in /usr/sbin, which a user's PATH may lack. */
static int find_bin(struct svc *s, struct slapd_data *d, terr *e)
{
    const char *bin = svc_opt(s->conf, "bin");
    if (bin)
        return program_find(s->conf->label, bin, "slapd", d->bin, sizeof(d->bin), e);
    if (program_find(s->conf->label, "slapd", "slapd", d->bin, sizeof(d->bin), NULL) == 0)
        return 0;
    if (access("/usr/sbin/slapd", X_OK) == 0) {
        snprintf(d->bin, sizeof(d->bin), "/usr/sbin/slapd");
        return 0;
    }
    return terr_set(e, ENOENT, "[%s] slapd not found in PATH or /usr/sbin: install the Debian "
                    "package slapd (apt-get install slapd), or set bin =", s->conf->label);
}

/* Paths go into slapd.conf between double quotes. */
static int quotable(struct svc *s, const char *path, terr *e)
{
    if (!strchr(path, '"') && !strchr(path, '\\'))
        return 0;
    return terr_set(e, EINVAL, "[%s] %s has a '\"' or '\\', which slapd.conf cannot quote: "
                    "move it (TETHER_STATE_DIR, TETHER_CACHE_DIR)", s->conf->label, path);
}

static int slapd_prepare(struct svc *s, struct op *op, terr *e)
{
    struct slapd_data *d = sdata(s);
    int r = find_bin(s, d, e);
    if (r < 0)
        return r;
    /* hex: nothing to quote in slapd.conf or a URL */
    if (!d->password[0] && (r = random_hex(d->password, 32)) < 0)
        return terr_set(e, -r, "[%s] cannot make a password (getrandom): %s", s->conf->label,
                        strerror(-r));
    _cleanup_strv_ strv schemas = {0};
    struct build_args a = {.s = s, .bin = d->bin, .suffix = suffix_of(s->conf),
                           .schemas = &schemas};
    _cleanup_sb_ strbuf conf = {0};
    _cleanup_free_ char *db = xasprintf("%s/data", s->dir);
    _cleanup_close_ int dfd = open(s->dir, O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        r = terr_set(e, errno, "[%s] cannot open its directory %s: %m", s->conf->label, s->dir);
    if (r == 0 && (r = quotable(s, s->dir, e)) == 0 && (r = schema_paths(s, &schemas, e)) == 0)
        r = read_init_ldif(s, &a, e);
    if (r == 0) {
        conf_text(&conf, s->conf->label, &schemas, a.suffix, db, d->password);
        r = write_conf(dfd, "slapd.conf", conf.s, s->conf->label, s->dir, e);
    }
    /* a restart (reset) starts from the cached database again */
    if (r == 0 && (r = rm_rf_at(dfd, "data", e)) < 0)
        r = terr_prefix(e, r, "[%s] removing %s", s->conf->label, db);
    if (r == 0) {
        char key[40];
        cache_key(&a, key);
        struct datacache_build b = {.label = s->conf->label, .what = "slapd", .key = key,
                                    .build = build, .arg = &a};
        r = datacache_install(&d->cache, s, op, &b, e);
    }
    free(a.ldif);
    free(a.ldif_path);
    return r;
}

/* ldapi://%2Fpath%2Fslapd.sock: the socket's path as one URL host. */
static void ldapi_url(strbuf *b, const char *path)
{
    sb_add(b, "ldapi://");
    url_encode(b, path, "");
}

static int slapd_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    (void)env;
    (void)e;
    struct slapd_data *d = sdata(s);
    _cleanup_sb_ strbuf urls = {0};
    ldapi_url(&urls, s->sockpath);
    if (s->port)
        sb_addf(&urls, " ldap://127.0.0.1:%d", s->port);
    strv_push(argv, d->bin);
    /* -d: in the foreground, logging to stderr (the service's log);
     * "none" is its errors and its start and stop, no line per operation */
    strv_push(argv, "-dnone");
    strv_pushf(argv, "-f%s/slapd.conf", s->dir);
    strv_push(argv, "-h");
    strv_push(argv, urls.s);
    return 0;
}

static int slapd_variables(struct svc *s, terr *e)
{
    (void)e;
    struct slapd_data *d = sdata(s);
    const char *suffix = suffix_of(s->conf);
    _cleanup_sb_ strbuf url = {0};
    if (s->port)
        sb_addf(&url, "ldap://127.0.0.1:%d", s->port);
    else
        ldapi_url(&url, s->sockpath);
    _cleanup_free_ char *binddn = xasprintf("cn=admin,%s", suffix);
    svc_setvar(s, "URL", url.s);
    svc_setvar(s, "BASE", suffix);
    svc_setvar(s, "BINDDN", binddn);
    svc_setvar(s, "PASSWORD", d->password);
    if (svc_count_same_driver(s) == 1) { /* ldap.conf's own names */
        svc_setenv_global(s, "LDAPURI", url.s);
        svc_setenv_global(s, "LDAPBASE", suffix);
        svc_setenv_global(s, "LDAPBINDDN", binddn);
    }
    return 0;
}

static int slapd_cleanup(struct svc *s, terr *e)
{
    (void)e;
    struct slapd_data *d = s->driver_data;
    if (d)
        datacache_release(&d->cache);
    return 0;
}

static void slapd_free(struct svc *s)
{
    struct slapd_data *d = s->driver_data;
    if (d)
        datacache_release(&d->cache);
    free(d);
    s->driver_data = NULL;
}

const struct tether_driver driver_slapd = {
    .name = "slapd",
    .package = "slapd",
    .configure = slapd_configure,
    .prepare = slapd_prepare,
    .argv = slapd_argv,
    .variables = slapd_variables,
    .cleanup = slapd_cleanup,
    .free = slapd_free,
    .vars = slapd_vars,
    .globals = (const char *const[]){"LDAPURI", "URL", "LDAPBASE", "BASE", "LDAPBINDDN",
                                     "BINDDN", NULL},
    .keys = known_keys,
    .program_keys = (const char *const[]){"bin", NULL},
};
