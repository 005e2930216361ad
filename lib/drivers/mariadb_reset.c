/* The mariadb driver's reset, in its worker (job.h), over the worker's
 * one connection.  The full reset: end the other sessions, drop every
 * database but the system's, create ours, replay init_sql (what the client
 * would do with it).  It costs the schema's DDL: 15 ms for 20 tables here,
 * of which DROP DATABASE is half.  The fast reset, when it can tell that a
 * test only wrote rows to tables that are empty in the init state: TRUNCATE
 * those (about 1 ms each), nothing else.  It can tell by comparing with
 * what the last full reset left (recorded then, and kept by the helper):
 * the database directory's files (names, inodes; the definitions' times:
 * any CREATE, ALTER, DROP, trigger or view changes them), the routines and
 * events, each table's AUTO_INCREMENT, which init-empty tables have a row,
 * and CHECKSUM TABLE of the tables that have init rows.  Anything else
 * (a changed init row, the schema, another database): the full reset. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kit.h"
#include "../service.h"
#include "mariadb.h"

int mdb_err(struct svc *s, MYSQL *c, const char *what, terr *e)
{
    return terr_set(e, EIO, "[%s] %s: %s (error %u)", s->conf->label, what, mysql_error(c),
                    mysql_errno(c));
}

/* Run sql (one or several statements) and drop its results: 0, or the
 * first error (the rest of a batch is not run). */
int mdb_exec(struct svc *s, MYSQL *c, const char *sql, size_t len, const char *what,
                    terr *e)
{
    if (mysql_real_query(c, sql, len) != 0)
        return mdb_err(s, c, what, e);
    for (;;) {
        MYSQL_RES *res = mysql_store_result(c);
        if (res)
            mysql_free_result(res);
        int n = mysql_next_result(c);
        if (n == -1)
            return 0;
        if (n > 0)
            return mdb_err(s, c, what, e);
    }
}

/* The other sessions ('k', id) and the databases ('d', name) that a reset
 * ends: every one but the system's. */
#define SURVEY                                                                                 \
    "SELECT 'k', ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "         \
    "AND USER <> 'system user' AND COMMAND NOT IN ('Daemon', 'Killed') "                       \
    "UNION ALL SELECT 'd', SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME "    \
    "NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"

/* Drop every database a test could have touched and create ours again,
 * empty. */
static int drop_all(struct svc *s, MYSQL *c, const strv *dbs, terr *e)
{
    strbuf sql = {0};
    for (size_t i = 0; i < dbs->n; i++) {
        _cleanup_free_ char *q = mdb_quote_ident(dbs->v[i]);
        sb_addf(&sql, "DROP DATABASE %s;\n", q);
    }
    _cleanup_free_ char *q = mdb_quote_ident(mdb_dbname(s->conf));
    sb_addf(&sql, "CREATE DATABASE %s;\nUSE %s", q, q);
    int r = mdb_exec(s, c, sql.s, sql.len, "reset", e);
    sb_free(&sql);
    return r;
}

/* Does line (len bytes) say "DELIMITER x"?  Then x into *delim. */
static bool delimiter_line(const char *line, size_t len, char **delim)
{
    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    if (len < 10 || strncasecmp(line, "delimiter", 9) != 0 || (line[9] != ' ' && line[9] != '\t'))
        return false;
    const char *v = line + 10;
    size_t n = len - 10;
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    free(*delim);
    *delim = xstrndup(v, n);
    return true;
}

/* Whether b (trimmed) ends with delim: then it is cut off. */
static bool ends_with_delim(strbuf *b, const char *delim)
{
    size_t n = b->len, dl = strlen(delim);
    while (n && strchr(" \t\r\n", b->s[n - 1]))
        n--;
    if (!dl || n < dl || memcmp(b->s + n - dl, delim, dl) != 0)
        return false;
    b->len = n - dl;
    b->s[b->len] = '\0';
    return true;
}

/* init_sql again, over this connection: what the client does with it.
 * Runs of ';'-ended statements go as one multi-statement batch (the
 * server parses them: strings and comments are its business); a
 * DELIMITER the client would read (mariadb-dump's triggers and routines)
 * is read here, and each statement it ends goes alone. */
static int replay(struct svc *s, struct mdb *m, MYSQL *c, terr *e)
{
    strbuf batch = {0};
    char *delim = xstrdup(";");
    int r = 0;
    const char *p = m->init_text, *end = m->init_text + m->init_len;
    _cleanup_free_ char *what = xasprintf("reset: replaying init_sql = %s", m->init_path);
    while (p < end && r == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *nd = NULL;
        if (delimiter_line(p, len, &nd)) {
            if (batch.len)
                r = mdb_exec(s, c, batch.s, batch.len, what, e);
            batch.len = 0;
            free(delim);
            delim = nd;
        } else {
            sb_addn(&batch, p, len);
            sb_addc(&batch, '\n');
            if (!streq(delim, ";") && ends_with_delim(&batch, delim)) {
                r = mdb_exec(s, c, batch.s, batch.len, what, e);
                batch.len = 0;
            }
        }
        p += len + 1;
    }
    ends_with_delim(&batch, ";"); /* an empty statement at the end is an error */
    bool blank = strspn(batch.s ? batch.s : "", " \t\r\n") == batch.len;
    if (r == 0 && batch.len && !blank)
        r = mdb_exec(s, c, batch.s, batch.len, what, e);
    sb_free(&batch);
    free(delim);
    return r;
}


/* ---- the fast reset ---- */

/* A table of the init state. */
struct init_table {
    char *name;
    char *type;     /* BASE TABLE, SEQUENCE, VIEW... */
    char *autoinc;  /* information_schema's AUTO_INCREMENT, "" for none */
    bool seeded;    /* has rows in the init state */
    char *checksum; /* CHECKSUM TABLE's, when seeded */
};

struct mdb_init_state {
    unsigned long long files; /* the database directory's fingerprint */
    char *routines;           /* its routines' and events' */
    struct init_table *t;
    size_t n;
};

void mdb_init_state_free(struct mdb_init_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        free(st->t[i].name);
        free(st->t[i].type);
        free(st->t[i].autoinc);
        free(st->t[i].checksum);
    }
    free(st->t);
    free(st->routines);
    free(st);
}

/* Rows of a one-statement query, ncols cells each, into out ("" for
 * NULL).  0, or -EIO with e set. */
static int rows_of(struct svc *s, MYSQL *c, const char *sql, strv *out, unsigned ncols,
                   terr *e)
{
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return mdb_err(s, c, "reset", e);
    MYSQL_RES *res = mysql_store_result(c);
    if (!res)
        return mdb_err(s, c, "reset", e);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)))
        for (unsigned i = 0; i < ncols; i++)
            strv_push(out, row[i] ? row[i] : "");
    mysql_free_result(res);
    return 0;
}

/* The database's directory under the data directory: MariaDB writes '-'
 * and '.' (database = allows them) as @002d and @002e. */
static char *db_dir(struct svc *s)
{
    strbuf b = {0};
    sb_addf(&b, "%s/data/", s->dir);
    for (const char *p = mdb_dbname(s->conf); *p; p++)
        if (*p == '-' || *p == '.')
            sb_addf(&b, "@%04x", *p);
        else
            sb_addc(&b, *p);
    return sb_steal(&b);
}

static bool ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcasecmp(name + n - k, suffix) == 0;
}

/* Every file's name and inode, and the modification time of those that
 * hold definitions (.frm: tables and views, .TRG/.TRN: triggers, .par,
 * db.opt), not of data files, which the server writes when it likes.  An
 * order-independent sum: 0.1 ms for 40 files. */
static int files_print(struct svc *s, unsigned long long *out, terr *e)
{
    _cleanup_free_ char *path = db_dir(s);
    DIR *d = opendir(path);
    if (!d)
        return terr_set(e, errno, "[%s] reset: %s: %m", s->conf->label, path);
    unsigned long long sum = 0, n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        unsigned long long h = fnv1a(FNV1A_INIT, de->d_name, strlen(de->d_name));
        h = fnv1a(h, &st.st_ino, sizeof(st.st_ino));
        if (ends_with(de->d_name, ".frm") || ends_with(de->d_name, ".trg") ||
            ends_with(de->d_name, ".trn") || ends_with(de->d_name, ".par") ||
            streq(de->d_name, "db.opt"))
            h = fnv1a(h, &st.st_mtim, sizeof(st.st_mtim));
        sum += h;
        n++;
    }
    closedir(d);
    *out = sum ^ (n << 48);
    return 0;
}

/* One statement per query, their results in out[i] (ncols[i] cells a
 * row; 0 for a statement without a result).  How many statements
 * completed: n when all did, fewer with e set at the first error. */
static size_t results(struct svc *s, MYSQL *c, const char *sql, strv *out, const unsigned *ncols,
                      size_t n, terr *e)
{
    if (mysql_real_query(c, sql, strlen(sql)) != 0) {
        mdb_err(s, c, "reset", e);
        return 0;
    }
    size_t i = 0;
    for (;;) {
        MYSQL_RES *res = mysql_store_result(c);
        MYSQL_ROW row;
        while (res && i < n && (row = mysql_fetch_row(res)))
            for (unsigned k = 0; k < ncols[i]; k++)
                strv_push(&out[i], row[k] ? row[k] : "");
        if (res)
            mysql_free_result(res);
        i++;
        int more = mysql_next_result(c);
        if (more == -1)
            return i;
        if (more > 0) {
            mdb_err(s, c, "reset", e);
            return i;
        }
    }
}

/* The routines' and events' definitions, as one string. */
static char *routines_sql(const char *qdb)
{
    return xasprintf(
        "SELECT CONCAT((SELECT CONCAT(COUNT(*), ':', IFNULL(MD5(GROUP_CONCAT(CONCAT_WS(0x1f, "
        "type, name, param_list, returns, body, sql_mode, security_type, definer, comment) "
        "ORDER BY type, name SEPARATOR 0x1e)), '')) FROM mysql.proc WHERE db = %s), ' ', "
        "(SELECT CONCAT(COUNT(*), ':', IFNULL(MD5(GROUP_CONCAT(CONCAT_WS(0x1f, name, body, "
        "status, interval_value, interval_field, execute_at, starts, ends, on_completion) "
        "ORDER BY name SEPARATOR 0x1e)), '')) FROM mysql.event WHERE db = %s))",
        qdb, qdb);
}

/* name, type, AUTO_INCREMENT of every table and view */
static char *tables_sql(const char *qdb)
{
    return xasprintf("SELECT TABLE_NAME, TABLE_TYPE, AUTO_INCREMENT FROM "
                     "information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
                     qdb);
}

static bool has_rows_type(const char *type) { return !streq(type, "VIEW"); }

/* The names of the tables (names and types in t, at stride `stride`)
 * that have a row; "SELECT NULL LIMIT 0" when there are none to ask. */
static char *rows_sql(char *const *t, size_t n, size_t stride)
{
    strbuf sql = {0};
    for (size_t i = 0; i + 1 < n; i += stride) {
        if (!has_rows_type(t[i + 1]))
            continue;
        _cleanup_free_ char *qs = mdb_quote_str(t[i]);
        _cleanup_free_ char *qi = mdb_quote_ident(t[i]);
        sb_addf(&sql, "%s(SELECT %s FROM %s LIMIT 1)", sql.len ? " UNION ALL " : "", qs, qi);
    }
    if (!sql.len)
        sb_add(&sql, "SELECT NULL LIMIT 0");
    return sb_steal(&sql);
}

/* CHECKSUM TABLE of the seeded tables: "db.name", checksum pairs. */
static char *checksums_sql(const struct mdb_init_state *st)
{
    strbuf sql = {0};
    for (size_t i = 0; i < st->n; i++) {
        if (!st->t[i].seeded)
            continue;
        _cleanup_free_ char *qi = mdb_quote_ident(st->t[i].name);
        sb_addf(&sql, "%s%s", sql.len ? ", " : "CHECKSUM TABLE ", qi);
    }
    if (!sql.len)
        sb_add(&sql, "SELECT NULL, NULL LIMIT 0");
    return sb_steal(&sql);
}

static const char *checksum_of(const strv *sums, size_t i)
{
    return i * 2 + 1 < sums->n ? sums->v[i * 2 + 1] : "";
}

/* What a full reset left: the state the fast one compares with.  Three
 * round trips, on the full reset's path only. */
static int record(struct svc *s, MYSQL *c, struct mdb_init_state **out, terr *e)
{
    struct mdb_init_state *st = xcalloc(1, sizeof(*st));
    _cleanup_free_ char *qdb = mdb_quote_str(mdb_dbname(s->conf));
    _cleanup_free_ char *rsql = routines_sql(qdb);
    _cleanup_free_ char *tsql = tables_sql(qdb);
    _cleanup_free_ char *sql = xasprintf("%s; %s", rsql, tsql);
    strv v[2] = {{0}, {0}};
    _cleanup_strv_ strv rows = {0};
    _cleanup_strv_ strv sums = {0};
    static const unsigned ncols[] = {1, 3};
    int r = files_print(s, &st->files, e);
    if (r == 0 && results(s, c, sql, v, ncols, 2, e) < 2)
        r = -EIO;
    _cleanup_free_ char *wsql = rows_sql(v[1].v, v[1].n, 3);
    if (r == 0)
        r = rows_of(s, c, wsql, &rows, 1, e);
    st->routines = xstrdup(v[0].n ? v[0].v[0] : "");
    st->t = xcalloc(v[1].n / 3 + 1, sizeof(*st->t));
    for (size_t i = 0; r == 0 && i + 2 < v[1].n; i += 3)
        st->t[st->n++] = (struct init_table){.name = xstrdup(v[1].v[i]),
                                             .type = xstrdup(v[1].v[i + 1]),
                                             .autoinc = xstrdup(v[1].v[i + 2]),
                                             .seeded = strv_contains(&rows, v[1].v[i])};
    _cleanup_free_ char *csql = checksums_sql(st);
    if (r == 0)
        r = rows_of(s, c, csql, &sums, 2, e);
    for (size_t i = 0, k = 0; r == 0 && i < st->n; i++)
        if (st->t[i].seeded)
            st->t[i].checksum = xstrdup(checksum_of(&sums, k++));
    strv_free(&v[0]);
    strv_free(&v[1]);
    if (r < 0) {
        mdb_init_state_free(st);
        return r;
    }
    *out = st;
    return 0;
}

/* Whether the tables still are as st has them (names, types,
 * AUTO_INCREMENT, and the seeded ones' checksums unless sums is NULL):
 * then *dirty gets those with a row they should not have.  false: a full
 * reset is needed. */
static bool tables_match(const struct mdb_init_state *st, const strv *t, const strv *rows,
                         const strv *sums, strv *dirty)
{
    if (t->n != st->n * 3)
        return false;
    for (size_t i = 0, k = 0; i < st->n; i++) {
        const struct init_table *it = &st->t[i];
        if (!streq(t->v[i * 3], it->name) || !streq(t->v[i * 3 + 1], it->type))
            return false;
        bool autoinc = streq(t->v[i * 3 + 2], it->autoinc);
        if (it->seeded && (!autoinc || (sums && !streq(checksum_of(sums, k++), it->checksum))))
            return false; /* its init rows changed: only a full reset brings them back */
        if (!it->seeded && (!autoinc || strv_contains(rows, it->name)))
            strv_push(dirty, it->name);
    }
    return true;
}

/* Whether TRUNCATE brings this table's AUTO_INCREMENT back by itself: to
 * 1 it does; one that init_sql set (AUTO_INCREMENT = N) is checked. */
static bool autoinc_is_plain(const struct mdb_init_state *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (streq(st->t[i].name, name))
            return !*st->t[i].autoinc || streq(st->t[i].autoinc, "1");
    return false;
}

/* TRUNCATE the dirty tables (foreign keys off: they are emptied together)
 * in one round trip, with the check of AUTO_INCREMENT where needed. */
static bool truncate_dirty(struct svc *s, MYSQL *c, const struct mdb_init_state *st,
                           const strv *dirty, const char *qdb)
{
    strbuf sql = {0};
    bool check = false;
    sb_add(&sql, "SET SESSION foreign_key_checks = 0");
    for (size_t i = 0; i < dirty->n; i++) {
        _cleanup_free_ char *qi = mdb_quote_ident(dirty->v[i]);
        sb_addf(&sql, "; TRUNCATE TABLE %s", qi);
        check = check || !autoinc_is_plain(st, dirty->v[i]);
    }
    sb_add(&sql, "; SET SESSION foreign_key_checks = 1");
    _cleanup_free_ char *tsql = tables_sql(qdb);
    if (check)
        sb_addf(&sql, "; %s", tsql);
    size_t n = dirty->n + 2 + check;
    strv *out = xcalloc(n, sizeof(strv));
    unsigned *ncols = xcalloc(n, sizeof(unsigned));
    ncols[n - 1] = check ? 3 : 0;
    terr e;
    bool ok = results(s, c, sql.s, out, ncols, n, &e) == n;
    _cleanup_strv_ strv none = {0};
    _cleanup_strv_ strv again = {0};
    if (ok && check)
        ok = tables_match(st, &out[n - 1], &none, NULL, &again) && again.n == 0;
    for (size_t i = 0; i < n; i++)
        strv_free(&out[i]);
    free(out);
    free(ncols);
    sb_free(&sql);
    return ok;
}

/* The checks of the fast reset, after the survey's statement in one round
 * trip: USE, routines, tables, rows of the init state's tables, checksums. */
#define CHECKS 5

/* The fast reset, if it can be done: true when the database is back to
 * st (whose fingerprint is then brought up to date).  v: the checks'
 * results. */
static bool fast_reset(struct svc *s, MYSQL *c, struct mdb_init_state *st, const strv *v)
{
    terr e;
    unsigned long long files = 0;
    if (files_print(s, &files, &e) < 0 || files != st->files || v[0].n != 1 ||
        !streq(v[0].v[0], st->routines))
        return false;
    _cleanup_strv_ strv dirty = {0};
    if (!tables_match(st, &v[1], &v[2], &v[3], &dirty))
        return false;
    if (dirty.n == 0)
        return true;
    _cleanup_free_ char *qdb = mdb_quote_str(mdb_dbname(s->conf));
    /* TRUNCATE makes new data files: the new fingerprint is the init state's */
    return truncate_dirty(s, c, st, &dirty, qdb) && files_print(s, &st->files, &e) == 0;
}

/* One round trip: the session's settings, the survey, and (with st) the
 * fast reset's checks.  DROP DATABASE and TRUNCATE wait for a killed
 * session's rollback: within timeout =; routines may be long. */
static char *first_sql(struct svc *s, const struct mdb_init_state *st)
{
    unsigned lw = (unsigned)(s->conf->timeout_ns / 1000000000LL);
    strbuf b = {0};
    sb_addf(&b, "SET SESSION lock_wait_timeout = %u, group_concat_max_len = 4294967295; "
                SURVEY, lw < 1 ? 1 : lw);
    if (!st)
        return sb_steal(&b);
    _cleanup_free_ char *qdb = mdb_quote_str(mdb_dbname(s->conf));
    _cleanup_free_ char *r = routines_sql(qdb);
    _cleanup_free_ char *t = tables_sql(qdb);
    _cleanup_strv_ strv names = {0};
    for (size_t i = 0; i < st->n; i++) {
        strv_push(&names, st->t[i].name);
        strv_push(&names, st->t[i].type);
    }
    _cleanup_free_ char *w = rows_sql(names.v, names.n, 2);
    _cleanup_free_ char *k = checksums_sql(st);
    _cleanup_free_ char *db = mdb_quote_ident(mdb_dbname(s->conf));
    /* a new worker's connection has no database yet: the names are ours */
    sb_addf(&b, "; USE %s; %s; %s; %s; %s", db, r, t, w, k);
    return sb_steal(&b);
}

/* Kill the other sessions (their locks would hold up DROP DATABASE and
 * TRUNCATE, as PostgreSQL's DROP DATABASE ... WITH (FORCE) ends them),
 * one by one: a session may be gone already; the databases into dbs. */
static void end_sessions(MYSQL *c, const strv *sv, strv *dbs)
{
    for (size_t i = 0; i + 1 < sv->n; i += 2) {
        if (sv->v[i][0] == 'k') {
            _cleanup_free_ char *kill = xasprintf("KILL CONNECTION %s", sv->v[i + 1]);
            (void)mysql_real_query(c, kill, strlen(kill));
        } else {
            strv_push(dbs, sv->v[i + 1]);
        }
    }
}

int mdb_reset_db(struct svc *s, struct mdb *m, MYSQL *c, struct mdb_init_state **st, terr *e)
{
    _cleanup_free_ char *sql = first_sql(s, *st);
    strv v[2 + CHECKS] = {{0}};
    static const unsigned ncols[] = {0, 2, 0, 1, 3, 1, 2};
    size_t want = *st ? 2 + CHECKS : 2;
    terr why;
    size_t done = results(s, c, sql, v, ncols, want, &why);
    int r = 0;
    if (done < 2) /* the survey failed: no reset */
        r = terr_set(e, EIO, "%s", why.msg);
    _cleanup_strv_ strv dbs = {0};
    end_sessions(c, &v[1], &dbs);
    bool only_ours = dbs.n == 1 && streq(dbs.v[0], mdb_dbname(s->conf));
    bool fast = r == 0 && *st && done == want && only_ours && fast_reset(s, c, *st, v + 3);
    for (size_t i = 0; i < ARRAY_SIZE(v); i++)
        strv_free(&v[i]);
    if (r < 0 || fast)
        return r;
    mdb_init_state_free(take_ptr(st));
    r = drop_all(s, c, &dbs, e);
    if (r == 0 && m->init_text)
        r = replay(s, m, c, e);
    if (r == 0) /* not a reason to fail the reset: the next one is a full one */
        (void)record(s, c, st, NULL);
    return r;
}

/* ---- the record, kept by the helper across workers ---- */

#define RECORD_MAX 32768 /* a reply is at most 64 KiB (job.c) */

char *mdb_init_state_save(const struct mdb_init_state *st)
{
    strbuf b = {0};
    sb_addf(&b, "%llx\n%s\n", st->files, st->routines);
    for (size_t i = 0; i < st->n; i++) {
        const struct init_table *t = &st->t[i];
        if (strpbrk(t->name, "\t\n")) { /* a name this format cannot hold */
            sb_free(&b);
            return NULL;
        }
        sb_addf(&b, "%s\t%s\t%s\t%d\t%s\n", t->name, t->type, t->autoinc, t->seeded,
                t->checksum ? t->checksum : "");
    }
    if (b.len > RECORD_MAX) {
        sb_free(&b);
        return NULL;
    }
    return sb_steal(&b);
}

/* The next tab-ended (or line-ended) field of *p, advancing past it. */
static char *field(char **p, char end)
{
    char *f = *p, *q = strchr(f, end);
    if (!q)
        return NULL;
    *q = '\0';
    *p = q + 1;
    return f;
}

struct mdb_init_state *mdb_init_state_load(const char *text)
{
    _cleanup_free_ char *copy = xstrdup(text);
    char *p = copy, *files = field(&p, '\n'), *routines = files ? field(&p, '\n') : NULL;
    if (!routines)
        return NULL;
    struct mdb_init_state *st = xcalloc(1, sizeof(*st));
    st->files = strtoull(files, NULL, 16);
    st->routines = xstrdup(routines);
    while (*p) {
        char *f[5];
        for (int k = 0; k < 5; k++)
            f[k] = field(&p, k < 4 ? '\t' : '\n');
        if (!f[4]) {
            mdb_init_state_free(st);
            return NULL;
        }
        st->t = xrealloc(st->t, (st->n + 1) * sizeof(*st->t));
        st->t[st->n++] = (struct init_table){.name = xstrdup(f[0]), .type = xstrdup(f[1]),
                                             .autoinc = xstrdup(f[2]), .seeded = *f[3] == '1',
                                             .checksum = *f[3] == '1' ? xstrdup(f[4]) : NULL};
    }
    return st;
}
