/* server = URL: no server of ours, a unique database on an existing one.
 * The database's name and the server are recorded in the service
 * directory (external-db) so that gc can drop it if the helper dies. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../fsutil.h"
#include "../kit.h"
#include "../service.h"
#include "pg.h"

#define RECORD "external-db"
#define RECORD_MAX 65536 /* a URL, two names */

/* The server as messages show it: with any password replaced by ***, as
 * errors end up on consoles and in CI logs.  Covers the URL's user:PASS@
 * and a password= in its query string or in a key=value string. */
static char *shown_url(const char *url)
{
    strbuf b = {0};
    const char *p = url, *scheme = strstr(url, "://");
    if (scheme && (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)) {
        const char *auth = scheme + 3;
        size_t alen = strcspn(auth, "/?");
        const char *at = memrchr(auth, '@', alen);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            sb_addn(&b, url, (size_t)(colon + 1 - url));
            sb_add(&b, "***");
            p = at;
        }
    }
    while (*p) {
        const char *k = strcasestr(p, "password");
        if (!k)
            break;
        const char *q = k + 8;
        q += strspn(q, " \t");
        bool key = (k == url || strchr("?& \t", k[-1])) && *q == '=';
        sb_addn(&b, p, (size_t)(q - p));
        p = q;
        if (!key)
            continue;
        sb_add(&b, "=***");
        p++;
        p += strspn(p, " \t");
        if (*p == '\'') { /* key='quoted \' value' */
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p)
                p++;
        } else {
            p += strcspn(p, "& \t");
        }
    }
    sb_add(&b, p);
    return sb_steal(&b);
}

/* libpq's message without its trailing newline, for ours to go on. */
static const char *pq_msg(PGconn *c, char *buf, size_t n)
{
    snprintf(buf, n, "%s", PQerrorMessage(c));
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* Until c's socket is ready for ev: 0, or -ETIMEDOUT at the deadline. */
static int wait_sock(PGconn *c, short ev, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ns();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = PQsocket(c), .events = ev};
        int r = poll(&p, 1, (int)(left / 1000000 + 1));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int timed_out(terr *e, const char *what, long long timeout_ns)
{
    return terr_set(e, ETIMEDOUT, "%s: no answer within %g s (is the server stopped or "
                    "overloaded?)", what, (double)timeout_ns / 1e9);
}

/* Connect with the URL's own settings and our database, giving up at the
 * deadline: a server that accepts connections but never answers (stopped,
 * hung) must not hold up a stop or gc for ever. */
static PGconn *connect_until(const char *url, const char *dbname, long long timeout_ns,
                             terr *e)
{
    long long deadline = now_ns() + timeout_ns;
    const char *keys[] = {"dbname", "dbname", NULL};
    const char *vals[] = {url, dbname, NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int r = 0;
    while (c && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED && r == 0) {
        r = wait_sock(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (r == 0)
            st = PQconnectPoll(c);
    }
    if (c && st == PGRES_POLLING_OK && PQstatus(c) == CONNECTION_OK)
        return c;
    if (r == -ETIMEDOUT) {
        terr_set(e, ETIMEDOUT, "no answer within %g s (is the server stopped or "
                 "overloaded?)", (double)timeout_ns / 1e9);
    } else {
        char m[1024];
        terr_set(e, ECONNREFUSED, "%s", c ? pq_msg(c, m, sizeof(m)) : "out of memory");
    }
    if (c)
        PQfinish(c);
    return NULL;
}

/* PQexec with a deadline: 0, or the first error of the statements in sql. */
static int exec_until(PGconn *c, const char *sql, long long deadline, long long timeout_ns,
                      terr *e)
{
    char m[1024];
    if (!PQsendQuery(c, sql))
        return terr_set(e, EIO, "%s: %s", sql, pq_msg(c, m, sizeof(m)));
    int r = 0;
    while (r == 0 && PQflush(c) == 1)
        r = wait_sock(c, POLLOUT, deadline);
    for (;;) {
        while (r == 0 && PQisBusy(c)) {
            r = wait_sock(c, POLLIN, deadline);
            if (r == 0 && !PQconsumeInput(c))
                return terr_set(e, EIO, "%s: %s", sql, pq_msg(c, m, sizeof(m)));
        }
        if (r < 0)
            return r == -ETIMEDOUT ? timed_out(e, sql, timeout_ns)
                                   : terr_set(e, -r, "%s: %s", sql, strerror(-r));
        PGresult *res = PQgetResult(c);
        if (!res)
            return 0;
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            r = terr_set(e, EIO, "%s: %s", sql, pq_msg(c, m, sizeof(m)));
        if (r < 0) /* the rest of the results, already there or on their way */
            return r;
    }
}

static PGconn *connect_url(const char *url, const char *dbname, terr *e)
{
    PGconn *c = connect_until(url, dbname, 5000000000LL, e);
    if (!c) {
        _cleanup_free_ char *shown = shown_url(url);
        terr_prefix(e, -ECONNREFUSED, "cannot connect to server = %s", shown);
    }
    return c;
}

PGconn *pg_server_connect(struct pg *pg, terr *e)
{
    return connect_url(pg->server_url, pg->maint_db, e);
}

PGconn *pg_server_connect_db(struct pg *pg, const char *db, terr *e)
{
    return connect_url(pg->server_url, db, e);
}

/* A session lock per database name, held by its creator from before the
 * record until its connection ends.  A creator killed in mid CREATE
 * DATABASE leaves the statement running on the server: gc's DROP would
 * find nothing yet and the database would appear after it.  gc takes the
 * same lock first, so it drops only once the CREATE is over. */
#define LOCK_CLASS 0x74657468 /* "teth" */

int pg_server_lock(PGconn *c, const char *db, const char *label, terr *e)
{
    unsigned long long h = fnv1a(FNV1A_INIT, db, strlen(db));
    char sql[128];
    snprintf(sql, sizeof(sql),
             "SET lock_timeout = '120s'; SELECT pg_advisory_lock(%d, %d); RESET lock_timeout",
             LOCK_CLASS, (int32_t)(uint32_t)(h ^ (h >> 32)));
    return pg_exec(c, sql, label, e);
}

static const char *out_get(const strv *out, const char *key)
{
    for (size_t i = 0; i + 1 < out->n; i += 2)
        if (streq(out->v[i], key))
            return out->v[i + 1];
    return NULL;
}

/* In a job: parse the URL, then lock, record and create the database.
 * Hands back the maintenance database and the parts of the URL that the
 * variables show. */
static int job_create(struct job *j, terr *e)
{
    struct svc *s = j->s;
    struct pg *pg = s->driver_data; /* the child's copy */
    int r = pq_load(e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    PQconninfoOption *opts = PQconninfoParse(pg->server_url, NULL);
    if (!opts) {
        _cleanup_free_ char *shown = shown_url(pg->server_url);
        return terr_set(e, EINVAL, "[%s] server = %s is not a valid connection string or URL",
                        s->conf->label, shown);
    }
    /* which database to connect to while creating ours: the URL's own */
    free(pg->maint_db);
    pg->maint_db = xstrdup("postgres");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (streq(o->keyword, "dbname")) {
            free(pg->maint_db);
            pg->maint_db = xstrdup(o->val);
        } else if (streq(o->keyword, "host") || streq(o->keyword, "port") ||
                   streq(o->keyword, "user") || streq(o->keyword, "password")) {
            strv_push(&j->out, o->keyword);
            strv_push(&j->out, o->val);
        }
    }
    PQconninfoFree(opts);
    strv_push(&j->out, "maint");
    strv_push(&j->out, pg->maint_db);
    PGconn *c = pg_server_connect(pg, e);
    if (!c)
        return terr_prefix(e, -ECONNREFUSED, "[%s]", s->conf->label);
    r = pg_server_lock(c, pg->server_db, s->conf->label, e);
    if (r < 0) {
        PQfinish(c);
        return r;
    }
    /* record first: if we die between CREATE and the record, gc could not
     * know the database */
    _cleanup_free_ char *rec =
        xasprintf("%s\n%s\n%s\n%lld\n", pg->server_url, pg->maint_db, pg->server_db,
                  s->conf->timeout_ns);
    _cleanup_close_ int dfd = open(s->dir, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    r = dfd < 0 ? -errno : write_file_atomic(dfd, RECORD, rec, strlen(rec), 0600);
    if (r < 0) {
        PQfinish(c);
        return terr_set(e, -r, "[%s] cannot record the database in %s/%s: %s", s->conf->label,
                        s->dir, RECORD, strerror(-r));
    }
    _cleanup_free_ char *qd = pg_quote_ident(c, pg->server_db);
    const char *t = svc_opt(s->conf, "template");
    _cleanup_free_ char *qt = t ? pg_quote_ident(c, t) : NULL;
    _cleanup_free_ char *sql = t ? xasprintf("CREATE DATABASE %s TEMPLATE %s", qd, qt)
                                 : xasprintf("CREATE DATABASE %s", qd);
    r = pg_exec(c, sql, s->conf->label, e);
    PQfinish(c);
    return r;
}

/* In the helper, once the job is over: what it handed back. */
static int created(struct op *op, int r, const strv *out, void *ud, terr *e)
{
    (void)ud;
    (void)e;
    struct svc *s = op->s;
    struct pg *pg = s->driver_data;
    strv_free(&pg->server_vars);
    for (size_t i = 0; i < out->n; i++)
        strv_push(&pg->server_vars, out->v[i]);
    const char *maint = out_get(&pg->server_vars, "maint");
    if (maint) {
        free(pg->maint_db);
        pg->maint_db = xstrdup(maint);
    }
    _cleanup_free_ char *rec = xasprintf("%s/%s", s->dir, RECORD);
    if (r < 0 && access(rec, F_OK) < 0) /* nothing made: nothing to drop */
        free(take_ptr(&pg->server_db));
    return r;
}

int pg_server_prepare(struct svc *s, struct pg *pg, struct op *op, terr *e)
{
    s->external = true;
    if (pg->server_db)
        return 0;
    _cleanup_free_ char *url = NULL;
    int r = svc_expand(s, svc_opt(s->conf, "server"), &url, e);
    if (r < 0)
        return r;
    /* unique: the instance id is random, the label unique in it */
    strbuf name = {0};
    sb_addf(&name, "%s_%s_", pg_dbname(s->conf), svc_instance_id(s));
    for (const char *p = s->conf->label; *p; p++)
        sb_addc(&name, isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_');
    pg->server_db = sb_steal(&name);
    pg->server_url = take_ptr(&url);
    op->what = "creating the database";
    r = job_start(op, s, job_create, NULL, NULL, 0, e);
    if (r < 0) {
        free(take_ptr(&pg->server_db));
        return r;
    }
    job_then(op, created, NULL);
    /* the connect's 5 s and the lock's 120 s are the job's own bounds */
    return r;
}

int pg_server_variables(struct svc *s, struct pg *pg, terr *e)
{
    (void)e;
    if (!pg->server_url || !pg->server_db)
        return 0;
    const strv *v = &pg->server_vars;
    const char *host = out_get(v, "host"), *port = out_get(v, "port");
    const char *user = out_get(v, "user"), *password = out_get(v, "password");
    host = host ? host : "";
    port = port ? port : "5432";
    user = user ? user : "";
    strbuf u = {0};
    pg_url(&u, user, password, host, port, pg->server_db);
    svc_setvar(s, "URL", u.s);
    sb_free(&u);
    svc_setvar(s, "HOST", host);
    svc_setvar(s, "PORT", port);
    svc_setvar(s, "DBNAME", pg->server_db);
    svc_setvar(s, "USER", user);
    return 0;
}

/* The lock, then the drop, all within timeout_ns; the message names the
 * database, the server and the cause. */
static int drop_db(const char *url, const char *maint, const char *db, long long timeout_ns,
                   terr *e)
{
    long long deadline = now_ns() + timeout_ns;
    PGconn *c = connect_until(url, maint, timeout_ns, e);
    int r = c ? 0 : terr_prefix(e, -ECONNREFUSED, "cannot connect");
    if (c) {
        _cleanup_free_ char *qd = pg_quote_ident(c, db);
        _cleanup_free_ char *sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", qd);
        unsigned long long h = fnv1a(FNV1A_INIT, db, strlen(db));
        _cleanup_free_ char *lock = xasprintf("SELECT pg_advisory_lock(%d, %d)", LOCK_CLASS,
                                              (int32_t)(uint32_t)(h ^ (h >> 32)));
        r = exec_until(c, lock, deadline, timeout_ns, e);
        if (r == 0)
            r = exec_until(c, sql, deadline, timeout_ns, e);
        PQfinish(c);
    }
    if (r < 0) {
        _cleanup_free_ char *shown = shown_url(url);
        terr_prefix(e, r, "cannot drop database %s on server = %s", db, shown);
    }
    return r;
}

static int job_drop(struct job *j, terr *e)
{
    struct pg *pg = j->s->driver_data;
    int r = pq_load(e);
    return r < 0 ? r : drop_db(pg->server_url, pg->maint_db, pg->server_db,
                               j->s->conf->timeout_ns, e);
}

int pg_server_cleanup(struct svc *s, struct pg *pg, terr *e)
{
    if (!pg->server_db || !pg->maint_db)
        return 0;
    /* drop_db gives up at the service's timeout and says why; the job's
     * own deadline only catches a child that hangs past it */
    int r = job_run(s, job_drop, NULL, NULL, 0, s->conf->timeout_ns + 5000000000LL, NULL, e);
    if (r < 0) { /* the record stays, for gc to retry */
        terr why = *e;
        return terr_set(e, -r, "[%s] %s", s->conf->label, why.msg);
    }
    _cleanup_free_ char *rec = xasprintf("%s/%s", s->dir, RECORD);
    unlink(rec);
    return 0;
}

int pg_server_reap(int svcdir_fd, terr *e)
{
    _cleanup_free_ char *text = NULL;
    /* written by us (no server of ours runs as anyone else here) */
    int r = read_file_trusted(svcdir_fd, RECORD, geteuid(), RECORD_MAX, &text, NULL, e);
    if (r < 0)
        return r == -ENOENT ? 0 : terr_prefix(e, r, "cannot tell which database to drop");
    char *save = NULL;
    char *url = strtok_r(text, "\n", &save);
    char *maint = strtok_r(NULL, "\n", &save);
    char *db = strtok_r(NULL, "\n", &save);
    char *timeout = strtok_r(NULL, "\n", &save);
    if (!url || !maint || !db)
        return 0;
    /* the service's timeout bounds gc's wait as it bounded the helper's
     * (a record written before it was kept there: the default) */
    long long timeout_ns = timeout ? strtoll(timeout, NULL, 10) : 0;
    if (timeout_ns <= 0)
        timeout_ns = 30LL * 1000000000LL;
    /* gc runs in the tether command, not in a helper: libpq right here */
    r = pq_load(e);
    if (r < 0)
        return r;
    r = drop_db(url, maint, db, timeout_ns, e);
    return r < 0 ? r : unlinkat(svcdir_fd, RECORD, 0) < 0 && errno != ENOENT ? -errno : 0;
}
