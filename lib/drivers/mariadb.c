/* The `mariadb` driver: a private mariadbd per instance on a data
 * directory copied from a per-user cache (mariadb_cache.c), on a unix
 * socket in its 0700 directory, or with tcp = yes on 127.0.0.1 too, where
 * its one account needs a password made per instance.  Ready by sd_notify
 * (Debian's mariadbd sends READY=1).  Health and reset go through
 * libmariadb (dlopen()ed) in a worker (job.h), never in the helper.
 *
 * As root it runs as `mysql` (or user =), not with --user=root: a test's
 * SQL with the FILE privilege (SELECT ... INTO OUTFILE, LOAD_FILE()) reads
 * and writes files as the server's user, which must not be root. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../kit.h"
#include "../service.h"
#include "driver.h"
#include "dynlib.h" /* libmariadb, loaded on first use */
#include "mariadb.h"

#define CONNECT_TIMEOUT_S 2

static const char *const known_keys[] = {"tcp",        "database", "init_sql", "user",
                                         "native_env", "bin",      "setting.", NULL};

static bool yes(const char *v)
{
    bool b = false;
    return v && parse_bool(v, &b) == 0 && b;
}

/* [A-Za-z0-9_.-]: a name that needs no care in a URL, a shell or a file name */
static bool plain_name(const char *v, size_t max)
{
    if (!*v || strlen(v) > max)
        return false;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return false;
    return true;
}

/* settings tether itself must own, or its variables would lie */
static const char *const owned[] = {"datadir", "socket", "port", "bind-address", "skip-networking",
                                    "pid-file", "tmpdir", "init-file", "user", "skip-grant-tables"};

static int check_setting(const struct svc_conf *c, const struct conf_kv *kv, const char *file,
                         terr *e)
{
    _cleanup_free_ char *name = xstrdup(kv->key + 8);
    for (char *p = name; *p; p++)
        *p = *p == '_' ? '-' : *p;
    bool ok = plain_name(name, 64) && !strchr(name, '.');
    if (!ok)
        return terr_at(e, EINVAL, file, kv->line, "[%s] %s: the name after 'setting.' must be "
                       "a mariadbd option (letters, digits, '-', '_')", c->label, kv->key);
    for (size_t k = 0; k < ARRAY_SIZE(owned); k++)
        if (streq(name, owned[k]))
            return terr_at(e, EINVAL, file, kv->line, "[%s] %s is set by tether (use tcp = yes "
                           "or port = for TCP; the directory, socket and accounts are the "
                           "instance's): remove it", c->label, kv->key);
    return 0;
}

static int mdb_configure(struct svc_conf *c, const char *file, terr *e)
{
    for (size_t i = 0; i < c->n_opts; i++) {
        const struct conf_kv *kv = &c->opts[i];
        bool b;
        int r = 0;
        if ((streq(kv->key, "tcp") || streq(kv->key, "native_env")) &&
            parse_bool(kv->value, &b) < 0)
            r = terr_at(e, EINVAL, file, kv->line, "[%s] %s = %s: say " BOOL_WORDS, c->label,
                        kv->key, kv->value);
        else if (streq(kv->key, "database") && !plain_name(kv->value, 64))
            r = terr_at(e, EINVAL, file, kv->line, "[%s] database = %s: 1 to 64 letters, "
                        "digits, '_', '-' or '.'", c->label, kv->value);
        else if (streq(kv->key, "bin") && !*kv->value)
            r = terr_at(e, EINVAL, file, kv->line, "[%s] bin is empty: give the mariadbd to "
                        "run, or remove it to use the one on PATH", c->label);
        else if (strncmp(kv->key, "setting.", 8) == 0)
            r = check_setting(c, kv, file, e);
        if (r < 0)
            return r;
    }
    if (c->command)
        return terr_at(e, EINVAL, file, c->command_line, "[%s] the mariadb driver builds its "
                       "own command: remove command = (use setting.NAME = VALUE for mariadbd "
                       "options)", c->label);
    if (yes(svc_opt(c, "tcp")) && c->port < 0)
        c->port = 0;
    if (!c->ready_line)
        c->ready = READY_NOTIFY; /* mariadbd sends READY=1 once it takes connections */
    if (!c->stop_signal_line)
        c->stop_signal = SIGKILL; /* the data is disposable: no shutdown to wait for */
    return 0;
}

static int serve(struct job *j, const char *req, terr *e);

static struct mdb *mdb_of(struct svc *s)
{
    if (!s->driver_data) {
        struct mdb *m = xcalloc(1, sizeof(struct mdb));
        datacache_use_init(&m->cache);
        worker_init(&m->worker, s, serve);
        s->driver_data = m;
    }
    return s->driver_data;
}

/* Who runs the server (as root: user =, else mysql, else nobody) and the
 * account handed out: the owner's login name, which the mariadb client
 * sends when it is given none. */
static int pick_users(struct svc *s, struct mdb *m, terr *e)
{
    struct passwd *pw = getpwuid(geteuid());
    free(m->db_user);
    m->db_user = xstrdup(pw ? pw->pw_name : "tether");
    if (geteuid() != 0) {
        free(m->os_user);
        m->os_user = xstrdup(m->db_user);
        return 0;
    }
    const char *want = svc_opt(s->conf, "user");
    pw = getpwnam(want ? want : "mysql");
    if (!pw && !want)
        pw = getpwnam("nobody");
    if (!pw)
        return terr_set(e, ENOENT, "[%s] no user '%s' to run mariadbd as (tether does not run "
                        "it as root): create it, or set user = to an existing account",
                        s->conf->label, want ? want : "mysql");
    if (pw->pw_uid == 0)
        return terr_set(e, EINVAL, "[%s] user = %s is root: tether does not run mariadbd as "
                        "root (a test's SELECT ... INTO OUTFILE would write as root)",
                        s->conf->label, pw->pw_name);
    s->run_as = true;
    s->uid = pw->pw_uid;
    s->gid = pw->pw_gid;
    free(m->os_user);
    m->os_user = xstrdup(pw->pw_name);
    return 0;
}

/* bin =, else mariadbd in PATH, else /usr/sbin's (a user's PATH often
 * lacks /usr/sbin). */
static int find_server(struct svc *s, struct mdb *m, terr *e)
{
    const char *bin = svc_opt(s->conf, "bin");
    if (m->bin[0])
        return 0;
    if (!bin && access("/usr/sbin/mariadbd", X_OK) == 0 &&
        program_find(s->conf->label, "mariadbd", "mariadb-server", m->bin, sizeof(m->bin),
                     NULL) < 0)
        bin = "/usr/sbin/mariadbd";
    int r = program_find(s->conf->label, bin ? bin : "mariadbd", "mariadb-server", m->bin,
                         sizeof(m->bin), e);
    if (r < 0)
        m->bin[0] = '\0';
    return r;
}

/* tcp = yes: the account's password over TCP, set by the server itself
 * as it starts (--init-file, read before it takes a connection), from a
 * 0600 file of the server's user: never on a command line. */
static int write_init_file(struct svc *s, struct mdb *m, terr *e)
{
    char pw[33];
    int r;
    if (!m->password && (r = random_hex(pw, 32)) < 0)
        return terr_set(e, -r, "[%s] cannot make a password for TCP (getrandom): %s",
                        s->conf->label, strerror(-r));
    if (!m->password)
        m->password = xstrdup(pw);
    _cleanup_free_ char *u = mdb_quote_str(m->db_user);
    _cleanup_free_ char *p = mdb_quote_str(m->password);
    _cleanup_free_ char *sql =
        xasprintf("CREATE OR REPLACE USER %s@'127.0.0.1' IDENTIFIED BY %s;\n"
                  "GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1' WITH GRANT OPTION;\n",
                  u, p, u);
    _cleanup_close_ int dfd = open(s->dir, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    r = dfd < 0 ? -errno : write_file_atomic(dfd, "init.sql", sql, strlen(sql), 0600);
    if (r == 0 && s->run_as && fchownat(dfd, "init.sql", s->uid, s->gid, AT_SYMLINK_NOFOLLOW) < 0)
        r = -errno;
    if (r < 0)
        return terr_set(e, -r, "[%s] cannot write %s/init.sql: %s", s->conf->label, s->dir,
                        strerror(-r));
    return 0;
}

/* INSTANCE/LABEL.client/my.cnf, the mariadb client's settings for this
 * service: Debian's /etc/mysql/mariadb.cnf names the system's socket, and
 * an option file wins over MYSQL_UNIX_PORT; $MYSQL_HOME/my.cnf is read
 * after it.  Beside the service's directory (which, as root, is the
 * server user's), 0600: it holds the TCP password. */
static int write_client_cnf(struct svc *s, struct mdb *m, terr *e)
{
    _cleanup_free_ char *name = xasprintf("%s.client", s->conf->label);
    int ifd = svc_instance_fd(s);
    if (mkdirat(ifd, name, 0700) < 0 && errno != EEXIST)
        return terr_set(e, errno, "[%s] cannot create %s/%s: %m", s->conf->label,
                        svc_instance_dir(s), name);
    _cleanup_close_ int dfd = openat(ifd, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    strbuf b = {0};
    sb_addf(&b, "# written by tether for [%s]\n[client]\nsocket=\"%s/" MDB_SOCKET "\"\n"
                "user=\"%s\"\n", s->conf->label, s->dir, m->db_user);
    if (s->port)
        sb_addf(&b, "host=127.0.0.1\nport=%d\nprotocol=tcp\npassword=\"%s\"\n", s->port,
                m->password);
    int r = dfd < 0 ? -errno : write_file_atomic(dfd, "my.cnf", b.s, b.len, 0600);
    sb_free(&b);
    if (r < 0)
        return terr_set(e, -r, "[%s] cannot write %s/%s/my.cnf: %s", s->conf->label,
                        svc_instance_dir(s), name, strerror(-r));
    return 0;
}

static int mdb_prepare(struct svc *s, struct op *op, terr *e)
{
    struct mdb *m = mdb_of(s);
    int r;
    worker_stop(&m->worker); /* a new server: the old connection is dead */
    if ((r = pick_users(s, m, e)) < 0 || (r = find_server(s, m, e)) < 0 ||
        (r = mdb_read_init_sql(s, m, e)) < 0 || (r = svc_give_dir(s, e)) < 0)
        return r;
    if ((s->port && (r = write_init_file(s, m, e)) < 0) || (r = write_client_cnf(s, m, e)) < 0)
        return r;
    /* a restart keeps the data it has */
    _cleanup_free_ char *sys = xasprintf("%s/data/mysql", s->dir);
    if (access(sys, F_OK) == 0)
        return 0;
    return mdb_cache_install(s, m, op, e);
}

static int mdb_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    (void)env;
    (void)e;
    struct mdb *m = mdb_of(s);
    mdb_server_args(m->bin, s->dir, argv);
    if (s->port) {
        strv_pushf(argv, "--port=%d", s->port);
        strv_push(argv, "--bind-address=127.0.0.1");
        strv_pushf(argv, "--init-file=%s/init.sql", s->dir);
    } else {
        strv_push(argv, "--skip-networking");
    }
    /* the user's settings last: the last one wins */
    for (size_t i = 0; i < s->conf->n_opts; i++)
        if (strncmp(s->conf->opts[i].key, "setting.", 8) == 0)
            strv_pushf(argv, "--%s=%s", s->conf->opts[i].key + 8, s->conf->opts[i].value);
    /* the worker loads libmariadb while the server starts */
    (void)worker_spawn(&m->worker, NULL);
    return 0;
}

/* The client's own variables, so that the mariadb client and every
 * libmariadb program just work: only when there is one mariadb service.
 * Over TCP the host, port and password; else the socket. */
static void native_env(struct svc *s)
{
    const char *ne = svc_opt(s->conf, "native_env");
    if ((ne && !yes(ne)) || svc_count_same_driver(s) != 1)
        return;
    svc_setenv_global(s, "MYSQL_HOME", svc_getvar(s, "CLIENT_DIR"));
    if (s->port) {
        svc_setenv_global(s, "MYSQL_HOST", svc_getvar(s, "HOST"));
        svc_setenv_global(s, "MYSQL_TCP_PORT", svc_getvar(s, "PORT"));
        svc_setenv_global(s, "MYSQL_PWD", svc_getvar(s, "PASSWORD"));
    } else {
        svc_setenv_global(s, "MYSQL_UNIX_PORT", svc_getvar(s, "SOCKET"));
    }
}

static int mdb_variables(struct svc *s, terr *e)
{
    (void)e;
    struct mdb *m = mdb_of(s);
    _cleanup_free_ char *sock = xasprintf("%s/" MDB_SOCKET, s->dir);
    const char *db = mdb_dbname(s->conf);
    const char *user = m->db_user ? m->db_user : "";
    char port[16];
    strbuf u = {0};
    sb_add(&u, "mysql://");
    url_encode(&u, user, "");
    if (s->port) {
        snprintf(port, sizeof(port), "%d", s->port);
        sb_addf(&u, ":%s@127.0.0.1:%s/", m->password ? m->password : "", port);
        url_encode(&u, db, "");
    } else { /* mysqlclient, PyMySQL (through SQLAlchemy) read unix_socket */
        sb_add(&u, "@localhost/");
        url_encode(&u, db, "");
        sb_add(&u, "?unix_socket=");
        url_encode(&u, sock, "/");
    }
    svc_setvar(s, "URL", u.s);
    sb_free(&u);
    svc_setvar(s, "SOCKET", sock);
    svc_setvar(s, "HOST", s->port ? "127.0.0.1" : "localhost");
    if (s->port)
        svc_setvar(s, "PORT", port);
    svc_setvar(s, "USER", user);
    svc_setvar(s, "PASSWORD", m->password && s->port ? m->password : "");
    svc_setvar(s, "DATABASE", db);
    _cleanup_free_ char *cd = xasprintf("%s/%s.client", svc_instance_dir(s), s->conf->label);
    svc_setvar(s, "CLIENT_DIR", cd);
    native_env(s);
    return 0;
}

/* ---- the worker (job.h): one connection, kept ---- */

struct conn {
    MYSQL *c;
    struct mdb_init_state *init; /* what the fast reset compares with */
};

/* Over the socket, as the instance's account (which needs no password
 * there, even with tcp = yes). */
static int connect_db(struct svc *s, struct conn *cn, terr *e)
{
    if (cn->c)
        return 0;
    MYSQL *c = mysql_init(NULL);
    if (!c)
        return terr_set(e, ENOMEM, "[%s] mysql_init: out of memory", s->conf->label);
    unsigned ct = CONNECT_TIMEOUT_S;
    unsigned rt = (unsigned)(s->conf->timeout_ns / 1000000000LL);
    rt = rt < 1 ? 1 : rt;
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    const char *sock = svc_getvar(s, "SOCKET");
    if (!mysql_real_connect(c, "localhost", svc_getvar(s, "USER"), NULL, NULL, 0, sock,
                            CLIENT_MULTI_STATEMENTS)) {
        terr_set(e, ECONNREFUSED, "[%s] mariadbd (pid %d) does not answer on %s: %s",
                 s->conf->label, (int)s->pid, sock, mysql_error(c));
        mysql_close(c);
        return -ECONNREFUSED;
    }
    (void)fcntl(mysql_get_socket(c), F_SETFD, FD_CLOEXEC);
    cn->c = c;
    return 0;
}

static void disconnect(struct conn *cn)
{
    if (cn->c)
        mysql_close(cn->c);
    cn->c = NULL;
}

static int ping(struct svc *s, struct conn *cn, terr *e)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = !cn->c;
        int r = connect_db(s, cn, e);
        if (r < 0)
            return r;
        if (mysql_ping(cn->c) == 0)
            return 0;
        r = terr_set(e, EIO, "[%s] mariadbd (pid %d) does not answer: %s", s->conf->label,
                     (int)s->pid, mysql_error(cn->c));
        disconnect(cn);
        if (fresh)
            return r;
    }
    return -EIO;
}

/* The reset; the record that the fast reset compares with goes back to
 * the helper, for the next worker (this one leaves when idle). */
static int reset(struct job *j, struct conn *cn, terr *e)
{
    struct svc *s = j->s;
    struct mdb *m = s->driver_data;
    if (!cn->init && m->init_record)
        cn->init = mdb_init_state_load(m->init_record);
    int r = ping(s, cn, e); /* a connection the server dropped is remade */
    if (r == 0)
        r = mdb_reset_db(s, m, cn->c, &cn->init, e);
    if (r < 0) {
        disconnect(cn); /* its session may be half-way through a batch */
        return r;
    }
    _cleanup_free_ char *rec = cn->init ? mdb_init_state_save(cn->init) : NULL;
    strv_push(&j->out, "init");
    strv_push(&j->out, rec ? rec : "");
    return 0;
}

/* The worker's requests: "health" and "reset"; NULL, its warm-up, loads
 * libmariadb and connects. */
static int serve(struct job *j, const char *req, terr *e)
{
    struct svc *s = j->s;
    struct conn **st = j->arg;
    int r = my_load(e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    if (!*st)
        *st = xcalloc(1, sizeof(struct conn));
    if (!req || !*req)
        return 0;
    if (streq(req, "health"))
        return ping(s, *st, e);
    if (streq(req, "reset"))
        return reset(j, *st, e);
    return terr_set(e, EINVAL, "[%s] unknown request '%s' to the mariadb worker", s->conf->label,
                    req);
}

static int mdb_health(struct svc *s, struct op *op, terr *e)
{
    op->what = "health check";
    return worker_call(&mdb_of(s)->worker, op, "health", e);
}

/* The worker's record of the init state, kept here. */
static int reset_done(struct op *op, int r, const strv *out, void *ud, terr *e)
{
    (void)ud;
    (void)e;
    struct mdb *m = mdb_of(op->s);
    for (size_t i = 0; r == 0 && i + 1 < out->n; i += 2)
        if (streq(out->v[i], "init")) {
            free(m->init_record);
            m->init_record = *out->v[i + 1] ? xstrdup(out->v[i + 1]) : NULL;
        }
    return r;
}

static int mdb_reset(struct svc *s, struct op *op, terr *e)
{
    op->what = "reset";
    int r = worker_call(&mdb_of(s)->worker, op, "reset", e);
    if (r == OP_STARTED) {
        op->deadline_ns = now_ns() + s->conf->timeout_ns;
        job_then(op, reset_done, NULL);
    }
    return r;
}

static int mdb_cleanup(struct svc *s, terr *e)
{
    (void)e;
    struct mdb *m = mdb_of(s);
    worker_stop(&m->worker);
    datacache_release(&m->cache);
    return 0;
}

static void mdb_free(struct svc *s)
{
    struct mdb *m = s->driver_data;
    if (!m)
        return;
    worker_stop(&m->worker);
    datacache_release(&m->cache);
    free(m->os_user);
    free(m->db_user);
    free(m->password);
    free(m->init_path);
    free(m->init_text);
    free(m->init_record);
    free(m);
    s->driver_data = NULL;
}

static const char *const mdb_vars[] = {"URL",  "SOCKET",   "HOST",     "PORT",
                                       "USER", "PASSWORD", "DATABASE", "CLIENT_DIR", NULL};
static const char *const mdb_globals[] = {"MYSQL_UNIX_PORT", "SOCKET", "MYSQL_HOST", "HOST",
                                          "MYSQL_TCP_PORT",  "PORT",   "MYSQL_PWD",  "PASSWORD",
                                          "MYSQL_HOME", "CLIENT_DIR", NULL};

const struct tether_driver driver_mariadb = {
    .name = "mariadb",
    .package = "mariadb-server",
    .configure = mdb_configure,
    .prepare = mdb_prepare,
    .argv = mdb_argv,
    .health = mdb_health,
    .reset = mdb_reset,
    .reset_checks_health = true,
    .variables = mdb_variables,
    .cleanup = mdb_cleanup,
    .free = mdb_free,
    .vars = mdb_vars,
    .globals = mdb_globals,
    .keys = known_keys,
    .program_keys = (const char *const[]){"bin", NULL},
};
