/* The `postgresql` driver: a private cluster per instance, copied from a
 * per-user cache of initdb'd clusters; or (server = URL) a unique database
 * on an existing server.  Talks to the server with libpq only. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../fsutil.h"
#include "../progress.h"
#include "../kit.h"
#include "../service.h"
#include "../spawn.h"
#include "datacache.h"
#include "driver.h"
#include "pg.h"


static const char *const known_keys[] = {"bin_dir",  "version",    "tcp",      "dbname",
                                         "user",     "init_sql",   "init",     "server",
                                         "template", "native_env", "setting.", NULL};

/* A boolean key (checked by pg_configure): unset is no. */
static bool yes(const char *v)
{
    bool b = false;
    return v && parse_bool(v, &b) == 0 && b;
}

/* reset = template (the default: DROP DATABASE, then a copy of the
 * template) and reset = truncate (the same database, emptied and given its
 * init rows back: see pg_truncate.c) are the driver's own resets, not
 * commands: kept as its option "reset", and conf->reset left empty. */
static void reset_kind(struct svc_conf *c)
{
    if (!c->reset || (!streq(c->reset, "truncate") && !streq(c->reset, "template")))
        return;
    c->opts = xrealloc(c->opts, (c->n_opts + 1) * sizeof(*c->opts));
    c->opts[c->n_opts++] = (struct conf_kv){.key = xstrdup("reset"),
                                            .value = take_ptr(&c->reset),
                                            .line = c->reset_line};
}

static bool truncates(const struct svc_conf *c)
{
    const char *r = svc_opt(c, "reset");
    return r && streq(r, "truncate");
}

static int pg_configure(struct svc_conf *c, const char *file, terr *e)
{
    for (size_t i = 0; i < c->n_opts; i++) {
        const char *k = c->opts[i].key; /* one of known_keys: config.c checked */
        const char *v = c->opts[i].value;
        bool b;
        if ((streq(k, "tcp") || streq(k, "native_env")) && parse_bool(v, &b) < 0)
            return terr_at(e, EINVAL, file, c->opts[i].line, "[%s] %s = %s: say " BOOL_WORDS,
                           c->label, k, v);
        if (streq(k, "dbname") && (!*v || strlen(v) > 50))
            return terr_at(e, EINVAL, file, c->opts[i].line,
                           "[%s] dbname must be 1 to 50 characters", c->label);
    }
    reset_kind(c);
    if (c->command)
        return terr_at(e, EINVAL, file, c->command_line,
                        "[%s] the postgresql driver builds its own command: remove "
                        "command = (use setting.NAME = VALUE for server settings)",
                        c->label);
    if (svc_opt(c, "server")) {
        if (c->port > 0 || yes(svc_opt(c, "tcp")) || svc_opt(c, "init_sql") || svc_opt(c, "init"))
            return terr_at(e, EINVAL, file, c->line,
                            "[%s] server = URL runs no server: port, tcp, init_sql and "
                            "init do not apply (use template = to start from a database)",
                            c->label);
        if (!c->ready_line)
            c->ready = READY_NONE;
        return 0;
    }
    if (yes(svc_opt(c, "tcp")) && c->port < 0)
        c->port = 0;
    if (!c->ready_line)
        c->ready = READY_NOTIFY; /* Debian's postgres sends READY=1 (0.02 s from exec) */
    if (!c->stop_signal_line)
        c->stop_signal = SIGQUIT; /* immediate shutdown: the data is disposable */
    if (!c->stop_timeout_line)
        c->stop_timeout_ns = 2000000000LL;
    return 0;
}

static int serve(struct job *j, const char *req, terr *e);

static struct pg *pg_of(struct svc *s)
{
    if (!s->driver_data) {
        struct pg *pg = xcalloc(1, sizeof(struct pg));
        datacache_use_init(&pg->cache);
        worker_init(&pg->worker, s, serve);
        s->driver_data = pg;
    }
    return s->driver_data;
}

/* Who runs the server: as root, the `user =` account, else postgres, else
 * nobody (postgres refuses to run as root). */
static int pick_user(struct svc *s, struct pg *pg, terr *e)
{
    if (geteuid() != 0) {
        struct passwd *pw = getpwuid(geteuid());
        free(pg->os_user);
        pg->os_user = xstrdup(pw ? pw->pw_name : "tether");
        return 0;
    }
    const char *want = svc_opt(s->conf, "user");
    struct passwd *pw = getpwnam(want ? want : "postgres");
    if (!pw && !want)
        pw = getpwnam("nobody");
    if (!pw)
        return terr_set(e, ENOENT, "[%s] no user '%s' to run postgres as (it refuses to run as "
                        "root): create it, or set user = to an existing account",
                        s->conf->label, want ? want : "postgres");
    if (pw->pw_uid == 0)
        return terr_set(e, EINVAL, "[%s] user = %s is root, and postgres refuses to run as root",
                        s->conf->label, pw->pw_name);
    s->run_as = true;
    s->uid = pw->pw_uid;
    s->gid = pw->pw_gid;
    free(pg->os_user);
    pg->os_user = xstrdup(pw->pw_name);
    return 0;
}

/* tcp = yes: the password TCP clients need, made once per instance (a
 * restart keeps the server's data, and the password with it).  Hex: 128
 * bits that need no quoting in a URL, a conninfo or a shell. */
static int make_password(struct svc *s, struct pg *pg, terr *e)
{
    if (!s->port || pg->password)
        return 0;
    char pw[33];
    int r = random_hex(pw, 32);
    if (r < 0)
        return terr_set(e, -r, "[%s] cannot make a password for TCP (getrandom): %s",
                        s->conf->label, strerror(-r));
    pg->password = xstrdup(pw);
    return 0;
}

/* A private cluster: its user, binaries, directory and password, then
 * its data from the cache (a cold cache is built in a job: OP_STARTED).
 * server = URL: the unique database, made by a job. */
static int pg_prepare(struct svc *s, struct op *op, terr *e)
{
    struct pg *pg = pg_of(s);
    int r;
    if (svc_opt(s->conf, "server"))
        return pg_server_prepare(s, pg, op, e);
    if ((r = pick_user(s, pg, e)) < 0)
        return r;
    if (!pg->bindir && (r = pg_find_bindir(s->conf, &pg->bindir, e)) < 0)
        return r;
    if ((r = svc_give_dir(s, e)) < 0)
        return r;
    if ((r = make_password(s, pg, e)) < 0)
        return r;
    /* a restart (reset = restart) keeps the data it has */
    _cleanup_free_ char *pv = xasprintf("%s/data/PG_VERSION", s->dir);
    if (access(pv, F_OK) == 0)
        return 0;
    return pg_cache_install(s, pg, op, e);
}

static int pg_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    struct pg *pg = pg_of(s);
    if (svc_opt(s->conf, "server")) {
        s->external = true;
        return 0; /* no server of ours */
    }
    _cleanup_free_ char *data = xasprintf("%s/data", s->dir);
    pg_server_args(s, pg->bindir, data, s->dir, s->port ? s->port : PG_SOCKET_PORT, argv);
    /* the worker that sets the password once the server is up: it loads
     * libpq (10-15 ms) while the server starts, not after (it knows the
     * variables by now: they come before the argv).  If it cannot start,
     * the call in pg_on_ready() tries again and says why.  A worker of an
     * earlier try (another port after "address in use") knows the old
     * variables: a new server gets a new worker. */
    if (pg->password) {
        worker_stop(&pg->worker);
        pg->auth_pending = true; /* its warm-up makes the SCRAM verifier */
        (void)worker_spawn(&pg->worker, NULL);
    }
    return 0;
}

/* libpq's own variables, so that psql and every libpq program just work:
 * only when there is exactly one postgresql service to point them at. */
static void native_env(struct svc *s)
{
    const char *ne = svc_opt(s->conf, "native_env");
    if (ne && !yes(ne))
        return;
    if (svc_count_same_driver(s) != 1)
        return;
    svc_setenv_global(s, "PGHOST", svc_getvar(s, "HOST"));
    svc_setenv_global(s, "PGPORT", svc_getvar(s, "PORT"));
    svc_setenv_global(s, "PGDATABASE", svc_getvar(s, "DBNAME"));
    svc_setenv_global(s, "PGUSER", svc_getvar(s, "USER"));
    const char *pw = svc_getvar(s, "PASSWORD");
    if (pw && *pw)
        svc_setenv_global(s, "PGPASSWORD", pw);
}

static int pg_variables(struct svc *s, terr *e)
{
    struct pg *pg = pg_of(s);
    if (svc_opt(s->conf, "server")) {
        int r = pg_server_variables(s, pg, e);
        native_env(s);
        return r;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", s->port ? s->port : PG_SOCKET_PORT);
    const char *host = s->port ? "127.0.0.1" : s->dir;
    const char *db = pg_dbname(s->conf);
    strbuf u = {0};
    pg_url(&u, pg->os_user, pg->password, host, port, db);
    svc_setvar(s, "URL", u.s);
    sb_free(&u);
    svc_setvar(s, "HOST", host);
    svc_setvar(s, "PORT", port);
    svc_setvar(s, "DBNAME", db);
    svc_setvar(s, "USER", pg->os_user);
    /* empty over the unix socket, which needs none */
    svc_setvar(s, "PASSWORD", pg->password ? pg->password : "");
    _cleanup_free_ char *data = xasprintf("%s/data", s->dir);
    svc_setvar(s, "DATADIR", data);
    native_env(s);
    return 0;
}

/* A connection to database db (in a job or the worker: job.h).  Through the unix
 * socket, which the server always has in its directory (-k): it needs no
 * password, even with tcp = yes. */
static PGconn *conn_to(struct svc *s, struct pg *pg, const char *db, terr *e)
{
    if (pg->server_url)
        return pg_server_connect_db(pg, db, e);
    const char *host = s->dir, *port = svc_getvar(s, "PORT");
    /* within the helper's own wait for the reply (the service's timeout) */
    long long half = s->conf->timeout_ns / 2000000000LL;
    char ct[16];
    snprintf(ct, sizeof(ct), "%lld", half < 2 ? 2 : half > 5 ? 5 : half); /* libpq: 2 at least */
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *vals[] = {host, port, svc_getvar(s, "USER"), db, ct, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        /* a FATAL is the server's answer: "role ... is not permitted to log in" */
        const char *msg = PQerrorMessage(c);
        terr_set(e, ECONNREFUSED, "[%s] postgres (pid %d) %s at %s: %s", s->conf->label,
                 (int)s->pid, strstr(msg, "FATAL:") ? "refused the connection" : "does not answer",
                 host, msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* The maintenance database's: template1, or server = URL's own. */
static PGconn *maint_conn(struct svc *s, struct pg *pg, terr *e)
{
    return pg->server_url ? pg_server_connect(pg, e) : conn_to(s, pg, "template1", e);
}

/* The next reset's copy of the template, made while the test runs. */
static int make_spare(struct svc *s, struct pg *pg, PGconn *c, terr *e)
{
    _cleanup_free_ char *spare = xasprintf("%s_spare", pg_dbname(s->conf));
    _cleanup_free_ char *qspare = pg_quote_ident(c, spare);
    _cleanup_free_ char *tmpl = pg_template_name(s, pg);
    _cleanup_free_ char *qt = pg_quote_ident(c, tmpl);
    _cleanup_free_ char *drop = xasprintf("DROP DATABASE IF EXISTS %s", qspare);
    _cleanup_free_ char *sql =
        xasprintf("CREATE DATABASE %s TEMPLATE %s%s", qspare, qt, pg_copy_strategy(c));
    int r = pg_exec(c, drop, s->conf->label, e);
    return r < 0 ? r : pg_exec(c, sql, s->conf->label, e);
}

/* The reset worker's own state (job.h). */
struct reset_state {
    PGconn *c;
    bool spare_ready; /* this worker made the spare after the last reset */
    bool locked;      /* server = URL: c holds the database's lock */
    char *verifier;   /* tcp = yes: the password's SCRAM verifier, made ahead */
    PGconn *dbc;      /* reset = truncate: to the test's database */
    struct pg_init_state *init; /* reset = truncate: what it goes back to */
};

/* The SCRAM verifier of the TCP password: PBKDF2 with 4096 rounds, 7.5 ms
 * of CPU here.  With the algorithm given, libpq asks the server nothing:
 * any connection object will do, even one that never connected. */
static char *make_verifier(struct svc *s, struct pg *pg, PGconn *c, terr *e)
{
    PGconn *none = NULL;
    if (!c) {
        const char *k[] = {"tether_no_connection", NULL}, *v[] = {"", NULL};
        c = none = PQconnectStartParams(k, v, 0); /* fails at once: no I/O */
    }
    char *pv = c ? PQencryptPasswordConn(c, pg->password, svc_getvar(s, "USER"),
                                         "scram-sha-256")
                 : NULL;
    char *r = pv ? xstrdup(pv) : NULL;
    if (!r)
        terr_set(e, EIO, "[%s] cannot make the SCRAM verifier of the TCP password: %s",
                 s->conf->label, c ? PQerrorMessage(c) : "out of memory");
    if (pv)
        PQfreemem(pv);
    if (none)
        PQfinish(none);
    return r;
}

/* The worker's warm-up, as the server starts (tcp = yes): the verifier,
 * off the start's critical path. */
static void prepare_auth(struct svc *s, struct pg *pg, struct reset_state *st)
{
    if (pg->auth_pending && !st->verifier)
        st->verifier = make_verifier(s, pg, NULL, NULL);
}

/* The password TCP clients need (tcp = yes), set as the server comes up.
 * What goes to the server is a SCRAM verifier made here, never the
 * password itself: not even a logged statement can show it.  Written to
 * pg_authid directly (as superuser): ALTER ROLE ... PASSWORD would spend
 * another 4096 PBKDF2 rounds (8-14 ms here, on the start's critical path)
 * making sure the verifier is not that of an empty password. */
static int set_password(struct svc *s, struct pg *pg, struct reset_state *st, PGconn *c,
                        terr *e)
{
    if (!st->verifier && !(st->verifier = make_verifier(s, pg, c, e)))
        return -EIO;
    const char *user = svc_getvar(s, "USER");
    char *lv = PQescapeLiteral(c, st->verifier, strlen(st->verifier));
    char *lu = PQescapeLiteral(c, user, strlen(user));
    _cleanup_free_ char *sql =
        lv && lu ? xasprintf("UPDATE pg_catalog.pg_authid SET rolpassword = %s "
                             "WHERE rolname = %s", lv, lu)
                 : NULL;
    if (lv)
        PQfreemem(lv);
    if (lu)
        PQfreemem(lu);
    if (!sql)
        return terr_set(e, EIO, "[%s] cannot quote the SCRAM verifier: %s", s->conf->label,
                        PQerrorMessage(c));
    PGresult *res = PQexec(c, sql);
    int r = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) /* the message without the verifier */
        r = terr_set(e, EIO, "[%s] cannot set the password TCP clients need (UPDATE pg_authid "
                     "of role %s): %s", s->conf->label, user, PQerrorMessage(c));
    else if (!streq(PQcmdTuples(res), "1"))
        r = terr_set(e, ENOENT, "[%s] cannot set the password TCP clients need: no role %s",
                     s->conf->label, user);
    PQclear(res);
    return r;
}

/* A role that may not log in (a test ran ALTER ROLE ... NOLOGIN) locks
 * every new connection out, while the worker's own, made before, works
 * on: ask, in the round trip that checks the server answers. */
static int check_login(struct svc *s, PGconn *c, terr *e)
{
    PGresult *res = PQexec(c, "SELECT FROM pg_catalog.pg_roles "
                              "WHERE rolname = current_user AND NOT rolcanlogin");
    int r = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        r = terr_set(e, EIO, "[%s] postgres (pid %d) does not answer: %s", s->conf->label,
                     (int)s->pid, PQerrorMessage(c));
    else if (!streq(PQcmdTuples(res), "0")) /* a row: the role may not log in */
        r = terr_set(e, EACCES, "[%s] role \"%s\" is not permitted to log in (a test ran ALTER "
                     "ROLE ... NOLOGIN?): no new connection works; stop this instance and "
                     "start a new one", s->conf->label, svc_getvar(s, "USER"));
    PQclear(res);
    return r;
}

/* Roll back db's prepared transactions, which DROP DATABASE refuses to
 * outlive ("being used by prepared transactions"): how many, or -errno. */
static int rollback_prepared_in(struct svc *s, struct pg *pg, const char *db, terr *e)
{
    PGconn *c = conn_to(s, pg, db, e);
    if (!c)
        return -ECONNREFUSED;
    int n = pg_rollback_prepared(c, s->conf->label, e);
    PQfinish(c);
    return n;
}

/* reset = truncate: on a connection to the test's database that stays, as
 * the test's own do.  The init state is read from the template at the
 * worker's first reset. */
static int truncate_reset(struct svc *s, struct pg *pg, struct reset_state *st, const char *db,
                          terr *e)
{
    if (st->dbc && PQstatus(st->dbc) != CONNECTION_OK) {
        PQfinish(st->dbc);
        st->dbc = NULL;
    }
    if (!st->init) {
        _cleanup_free_ char *tmpl = pg_template_name(s, pg);
        PGconn *t = conn_to(s, pg, tmpl ? tmpl : "template1", e);
        if (!t)
            return -ECONNREFUSED;
        int r = pg_init_state_read(t, &st->init, s->conf->label, e);
        PQfinish(t);
        if (r < 0)
            return r;
    }
    if (!st->dbc && !(st->dbc = conn_to(s, pg, db, e)))
        return -ECONNREFUSED;
    /* a lock that never comes fails the reset before the helper gives up */
    return pg_truncate_reset(st->dbc, st->init, s->conf->timeout_ns / 2000000, s->conf->label,
                             e);
}

/* The worker's requests: "auth" (tcp = yes: the server just came up, set
 * its password), "ping" (status's health check) and "reset".
 * Reset (reset = template, the default): the test's database is dropped
 * (FORCE ends its connections; its prepared transactions, which FORCE
 * cannot end, are rolled back) and replaced by a pristine copy of the
 * template: the spare made after the previous reset when there is one (a
 * rename), else a fresh copy.  "spare" (after_reset): the next reset's
 * copy, made while the test runs.  reset = truncate: see truncate_reset(). */
static int serve_request(struct job *j, const char *req, terr *e)
{
    struct svc *s = j->s;
    struct pg *pg = s->driver_data; /* this child's copy */
    struct reset_state **sp = j->arg;
    if (!*sp)
        *sp = xcalloc(1, sizeof(**sp));
    struct reset_state *st = *sp;
    int r = pq_load(e); /* once: libpq stays loaded in the worker */
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    if (!req) {
        prepare_auth(s, pg, st);
        return 0;
    }
    bool auth = streq(req, "auth");
    /* auth: a new server (a restart's), which an old connection cannot reach */
    if (st->c && (auth || PQstatus(st->c) != CONNECTION_OK)) {
        PQfinish(st->c);
        st->c = NULL;
        st->locked = false;
    }
    if (st->dbc && auth) {
        PQfinish(st->dbc);
        st->dbc = NULL;
    }
    const char *db = pg->server_db ? pg->server_db : pg_dbname(s->conf);
    /* reset = truncate's own connection to the test's database serves the
     * health check and the login check: no connection to template1 */
    if (!auth && !pg->server_url && st->dbc && PQstatus(st->dbc) == CONNECTION_OK) {
        r = check_login(s, st->dbc, e);
        if (r < 0 || streq(req, "ping"))
            return r;
        if (truncates(s->conf))
            return truncate_reset(s, pg, st, db, e);
    }
    if (!st->c && !(st->c = maint_conn(s, pg, e)))
        return -ECONNREFUSED;
    PGconn *c = st->c;
    if (auth)
        return set_password(s, pg, st, c, e);
    if (streq(req, "ping")) /* the health check: a round trip */
        return check_login(s, c, e);
    if (streq(req, "spare")) {
        st->spare_ready = !pg->server_url && !truncates(s->conf) &&
                          make_spare(s, pg, c, e) == 0;
        return 0; /* without one, the next reset makes a fresh copy */
    }
    /* on a shared server, a CREATE that outlives us (the helper killed in
     * mid reset) must end before gc's DROP: hold the lock gc takes, for as
     * long as this connection lives */
    if (pg->server_url && !st->locked) {
        int lr = pg_server_lock(c, db, s->conf->label, e);
        if (lr < 0)
            return lr;
        st->locked = true;
    }
    if (truncates(s->conf)) {
        r = check_login(s, c, e); /* as below */
        return r < 0 ? r : truncate_reset(s, pg, st, db, e);
    }
    _cleanup_free_ char *qdb = pg_quote_ident(c, db);
    _cleanup_free_ char *drop = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", qdb);
    _cleanup_free_ char *spare = xasprintf("%s_spare", db);
    _cleanup_free_ char *qspare = pg_quote_ident(c, spare);
    _cleanup_free_ char *sql = NULL;
    r = check_login(s, c, e); /* a reset that the tests cannot use is no reset */
    if (r == 0 && (r = pg_exec(c, drop, s->conf->label, e)) < 0 &&
        rollback_prepared_in(s, pg, db, NULL) > 0)
        r = pg_exec(c, drop, s->conf->label, e);
    if (r == 0 && st->spare_ready) {
        sql = xasprintf("ALTER DATABASE %s RENAME TO %s", qspare, qdb);
        if (pg_exec(c, sql, s->conf->label, NULL) < 0)
            free(take_ptr(&sql));
    }
    st->spare_ready = false;
    if (r == 0 && !sql) {
        _cleanup_free_ char *tmpl = pg_template_name(s, pg);
        _cleanup_free_ char *qt = tmpl ? pg_quote_ident(c, tmpl) : NULL;
        sql = qt ? xasprintf("CREATE DATABASE %s TEMPLATE %s%s", qdb, qt, pg_copy_strategy(c))
                 : xasprintf("CREATE DATABASE %s", qdb);
        r = pg_exec(c, sql, s->conf->label, e);
    }
    return r;
}

/* A request, then (on our own server) the maintenance connection goes:
 * it is on template1, CREATE DATABASE's default template, which cannot be
 * copied while anyone is connected to it ("source database template1 is
 * being accessed by other users").  A test suite that makes its own
 * database (Django's and pytest-django's test runners do) or a
 * `server = URL` pointed at this server would fail whenever a reset or a
 * status had come before.  On a shared server (server = URL) it stays: it
 * holds our database's lock, and is on that server's maintenance database.
 * After a reset that worked it stays until the "spare" that after_reset
 * sends at once: one connection per reset, not two (a connection costs
 * some 5 ms of the next back-to-back reset). */
static int serve(struct job *j, const char *req, terr *e)
{
    int r = serve_request(j, req, e);
    struct reset_state *st = *(struct reset_state **)j->arg;
    bool spare_next = req && streq(req, "reset") && r == 0 && !truncates(j->s->conf);
    if (st && st->c && !spare_next && !((struct pg *)j->s->driver_data)->server_url) {
        PQfinish(st->c);
        st->c = NULL;
    }
    return r;
}

/* The worker resets; the helper waits for its reply off its loop, up to
 * the service's timeout (and truncate's lock wait ends before it). */
static int pg_reset(struct svc *s, struct op *op, terr *e)
{
    op->what = "reset";
    int r = worker_call(&pg_of(s)->worker, op, "reset", e);
    if (r == OP_STARTED)
        op->deadline_ns = now_ns() + s->conf->timeout_ns;
    return r;
}

/* The next reset's spare copy of the template, while the test runs. */
static int pg_after_reset(struct svc *s, struct op *op, terr *e)
{
    struct pg *pg = pg_of(s);
    if (pg->server_url || truncates(s->conf))
        return 0;
    op->what = "spare copy";
    int r = worker_call(&pg->worker, op, "spare", e);
    if (r == OP_STARTED)
        op->deadline_ns = now_ns() + s->conf->timeout_ns;
    return r;
}

static int job_ping(struct job *j, terr *e)
{
    struct svc *s = j->s;
    int r = pq_load(e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    const char *keys[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    /* the unix socket, as maint_conn() */
    const char *vals[] = {s->dir, svc_getvar(s, "PORT"), svc_getvar(s, "USER"),
                          svc_getvar(s, "DBNAME"), "1", NULL};
    PGPing p = PQpingParams(keys, vals, 0);
    return p == PQPING_OK ? 0 : p == PQPING_NO_ATTEMPT ? -EINVAL : -EAGAIN;
}

/* PQping in a job, for `ready = driver`: -EAGAIN says "not yet". */
static int pg_probe(struct svc *s, struct op *op, terr *e)
{
    op->what = "readiness ping";
    int r = job_start(op, s, job_ping, NULL, NULL, 0, e);
    if (r == OP_STARTED) /* PQping's own connect_timeout is 1 s */
        op->deadline_ns = now_ns() + HEALTH_TIMEOUT_NS;
    return r;
}

/* A ready server is asked through the worker (which a reset will use
 * too); the helper bounds it by HEALTH_TIMEOUT_NS. */
static int pg_health(struct svc *s, struct op *op, terr *e)
{
    op->what = "health check";
    return worker_call(&pg_of(s)->worker, op, "ping", e);
}

/* Tether's own record of the server's System V segment, written once the
 * server is ready: postgres removes postmaster.pid as it shuts down, and a
 * helper killed half-way through a stop must not take the segment's id
 * with it.  The record lives in INSTANCE/LABEL.rec, beside the service's
 * directory and not in it: as root, that directory belongs to the server's
 * user, and what a test's SQL can write there (COPY ... TO PROGRAM) must
 * neither choose the segment that root removes nor make it wait on a FIFO
 * or read /dev/zero. */
#define RECORDS ".rec"
#define SHM_RECORD "shm"
#define SHM_RECORD_MAX 256
#define PIDFILE_MAX 4096 /* postmaster.pid: eight short lines */

struct shm_rec {
    unsigned long key;
    int id;
    pid_t pm;  /* the postmaster that made it */
    uid_t uid; /* the server's user, who must have made it and own it */
};

static uid_t server_uid(const struct svc *s) { return s->run_as ? s->uid : geteuid(); }

/* INSTANCE/LABEL.rec (made if create): only ours, or an error.  -ENOENT
 * (no message) when there is none. */
static int open_records(int instfd, const char *label, bool create, terr *e)
{
    _cleanup_free_ char *name = xasprintf("%s" RECORDS, label);
    if (create && mkdirat(instfd, name, 0700) < 0 && errno != EEXIST)
        return terr_set(e, errno, "[%s] cannot create %s: %m", label, name);
    _cleanup_close_ int fd = openat(instfd, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT
                               : terr_set(e, errno, "[%s] cannot open %s: %m", label, name);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077))
        return terr_set(e, EPERM, "[%s] %s is not tether's own 0700 directory: not trusted",
                        label, name);
    return take_fd(&fd);
}

/* Lines 1 and 7 of postmaster.pid: the postmaster's pid, the segment's key
 * and id.  Postgres writes it: a file of the server's user. */
static int shm_from_pidfile(int svcdir_fd, uid_t uid, struct shm_rec *rec, terr *e)
{
    _cleanup_free_ char *text = NULL;
    int r = read_file_trusted(svcdir_fd, "data/postmaster.pid", uid, PIDFILE_MAX, &text, NULL,
                              e);
    if (r < 0)
        return r;
    const char *p = text;
    for (int line = 1; line < 7 && p; line++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    int pm;
    if (sscanf(text, "%d", &pm) != 1 || pm <= 0 || !p ||
        sscanf(p, "%lu %d", &rec->key, &rec->id) != 2)
        return terr_set(e, EINVAL, "data/postmaster.pid names no shared memory segment");
    rec->pm = pm;
    rec->uid = uid;
    return 0;
}

static int shm_from_record(int recfd, struct shm_rec *rec, terr *e)
{
    _cleanup_free_ char *text = NULL;
    int r = read_file_trusted(recfd, SHM_RECORD, geteuid(), SHM_RECORD_MAX, &text, NULL, e);
    if (r < 0)
        return r;
    int pm;
    unsigned uid;
    if (sscanf(text, "%lu %d %d %u", &rec->key, &rec->id, &pm, &uid) != 4 || pm <= 0)
        return terr_set(e, EINVAL, RECORDS "/" SHM_RECORD " is not a segment record");
    rec->pm = pm;
    rec->uid = uid;
    return 0;
}

/* What gc will need to remove the server's System V segment after a crash
 * of everything: a record beside the instance's state. */
static int record_shm(struct svc *s, terr *e)
{
    int r;
    _cleanup_close_ int fd = open(s->dir, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    struct shm_rec rec = {0};
    /* none to be read: cleanup falls back to postmaster.pid */
    if (fd < 0 || shm_from_pidfile(fd, server_uid(s), &rec, NULL) < 0)
        return 0;
    rec.pm = s->pid; /* ours for certain, whatever the file says */
    _cleanup_close_ int rfd = open_records(svc_instance_fd(s), s->conf->label, true, e);
    if (rfd < 0)
        return rfd;
    char line[96];
    int n = snprintf(line, sizeof(line), "%lu %d %d %u\n", rec.key, rec.id, (int)rec.pm,
                     (unsigned)rec.uid);
    r = write_file_atomic(rfd, SHM_RECORD, line, (size_t)n, 0600);
    if (r < 0)
        return terr_set(e, r, "[%s] cannot write %s/%s" RECORDS "/" SHM_RECORD ": %s",
                        s->conf->label, svc_instance_dir(s), s->conf->label, strerror(-r));
    return 0;
}

/* The worker set the TCP password: TCP clients may log in from now on. */
static int auth_set(struct op *op, int r, const strv *out, void *ud, terr *e)
{
    (void)out;
    (void)ud;
    if (r < 0)
        return r;
    pg_of(op->s)->auth_pending = false;
    return record_shm(op->s, e);
}

static int pg_on_ready(struct svc *s, struct op *op, terr *e)
{
    if (s->external)
        return 0;
    /* before anyone is told where the server is: until then TCP clients
     * are refused (a role without a password fails scram-sha-256) */
    struct pg *pg = pg_of(s);
    if (!pg->password)
        return record_shm(s, e);
    op->what = "setting the TCP password";
    int r = worker_call(&pg->worker, op, "auth", e);
    if (r != OP_STARTED)
        return r < 0 ? r : auth_set(op, r, NULL, NULL, e);
    job_then(op, auth_set, NULL);
    return OP_STARTED;
}

/* Remove segment id if it is the one rec means: made and owned by the
 * server's user, created by our postmaster, and (with_key) rec's key. */
static int remove_if_ours(int id, const struct shm_rec *rec, bool with_key, terr *e)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) < 0)
        return 0; /* gone already, or not ours to see */
    if ((with_key && (unsigned long)ds.shm_perm.__key != rec->key) ||
        ds.shm_perm.uid != rec->uid || ds.shm_perm.cuid != rec->uid || ds.shm_cpid != rec->pm)
        return 0; /* not the one we think */
    if (shmctl(id, IPC_RMID, NULL) < 0)
        return terr_set(e, errno, "cannot remove shared memory segment %d: %m", id);
    return 0;
}

/* After a crash of one of its processes the postmaster reinitialises with
 * a new segment: catch those too, by their creator (our postmaster) and
 * only when nothing is attached. */
static void remove_shm_of(const struct shm_rec *rec, const char *label)
{
    FILE *f = fopen("/proc/sysvipc/shm", "re");
    if (!f)
        return;
    char line[512];
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        long key;
        int id, pid, lpid;
        unsigned perms;
        unsigned long size, nattch;
        if (sscanf(line, "%ld %d %o %lu %d %d %lu", &key, &id, &perms, &size, &pid, &lpid,
                   &nattch) == 7 &&
            pid == rec->pm && nattch == 0) {
            terr e;
            if (remove_if_ours(id, rec, false, &e) < 0) /* the main one still goes */
                warn("[%s] %s: it stays until the next boot, or `ipcrm -m %d`", label, e.msg, id);
        }
    }
    fclose(f);
}

/* A SIGKILLed postmaster leaves its System V segment: remove it, going by
 * our record, or by postmaster.pid when the server never got ready (read
 * as the file of uid, the server's user). */
static int remove_shm(int recfd, int svcdir_fd, uid_t uid, const char *label, terr *e)
{
    struct shm_rec rec = {0};
    int r = recfd >= 0 ? shm_from_record(recfd, &rec, e) : -ENOENT;
    if (r == -ENOENT && svcdir_fd >= 0)
        r = shm_from_pidfile(svcdir_fd, uid, &rec, e);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return terr_prefix(e, r, "cannot tell which shared memory segment to remove");
    remove_shm_of(&rec, label);
    /* Even while attached: the backends of a SIGKILLed postmaster notice
     * its death only a moment later, and the record goes with the
     * instance directory.  IPC_RMID frees it as the last one detaches. */
    return remove_if_ours(rec.id, &rec, true, e);
}

static int pg_cleanup(struct svc *s, terr *e)
{
    struct pg *pg = pg_of(s);
    worker_stop(&pg->worker);
    datacache_release(&pg->cache);
    if (pg->server_url)
        return pg_server_cleanup(s, pg, e);
    _cleanup_close_ int fd = open(s->dir, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_close_ int rfd = open_records(svc_instance_fd(s), s->conf->label, false, e);
    if (rfd < 0 && rfd != -ENOENT)
        return rfd; /* its message names the service */
    int r = remove_shm(rfd, fd, server_uid(s), s->conf->label, e);
    return r < 0 ? terr_prefix(e, r, "[%s]", s->conf->label) : 0;
}

/* gc has the service's directory (id/label): our records are beside it,
 * and its owner is the server's user (pg_prepare made it so). */
static int pg_reap(int svcdir_fd, const char *svcdir, terr *e)
{
    const char *slash = strrchr(svcdir, '/');
    const char *label = slash ? slash + 1 : svcdir;
    _cleanup_close_ int instfd = openat(svcdir_fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int rfd = instfd < 0 ? -ENOENT : open_records(instfd, label, false, e);
    if (rfd < 0 && rfd != -ENOENT)
        return rfd; /* its message names the service */
    struct stat st;
    if (fstat(svcdir_fd, &st) < 0)
        return terr_set(e, errno, "[%s] %s: %m", label, svcdir);
    int r = remove_shm(rfd, svcdir_fd, st.st_uid, label, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", label);
    return pg_server_reap(svcdir_fd, e);
}

static void pg_free(struct svc *s)
{
    struct pg *pg = s->driver_data;
    if (!pg)
        return;
    worker_stop(&pg->worker);
    datacache_release(&pg->cache);
    free(pg->bindir);
    free(pg->os_user);
    free(pg->password);
    free(pg->server_url);
    free(pg->server_db);
    free(pg->maint_db);
    strv_free(&pg->server_vars);
    free(pg);
    s->driver_data = NULL;
}

static const char *const pg_vars[] = {"URL",  "HOST",     "PORT",    "DBNAME",
                                      "USER", "PASSWORD", "DATADIR", NULL};
static const char *const pg_globals[] = {"PGHOST",     "HOST",     "PGPORT", "PORT",
                                         "PGUSER",     "USER",     "PGDATABASE", "DBNAME",
                                         "PGPASSWORD", "PASSWORD", NULL};

const struct tether_driver driver_postgresql = {
    .name = "postgresql",
    .package = "postgresql",
    .configure = pg_configure,
    .prepare = pg_prepare,
    .argv = pg_argv,
    .probe = pg_probe,
    .health = pg_health,
    .on_ready = pg_on_ready,
    .reset = pg_reset,
    .after_reset = pg_after_reset,
    .reset_checks_health = true,
    .variables = pg_variables,
    .cleanup = pg_cleanup,
    .reap = pg_reap,
    .free = pg_free,
    .vars = pg_vars,
    .globals = pg_globals,
    .keys = known_keys,
    .command_keys = (const char *const[]){"init", NULL},
    .template_keys = (const char *const[]){"server", NULL},
    .dir_keys = (const char *const[]){"bin_dir", NULL},
};
