/* reset = truncate: the test's database goes back to its init state in
 * place, so that the connections an application holds (a pool, a
 * session-wide connection) live through the reset, where the template
 * swap's DROP DATABASE ends them.
 *
 * The init state is the template's (what init_sql and init made): its
 * tables' rows and its sequences' values, read once per worker from the
 * template (a connection there would hold up a CREATE DATABASE from it:
 * it lasts only that long) and kept in the worker's memory.  A reset, in
 * one transaction on a connection to the test's database that the worker
 * keeps: TRUNCATE every table (those a test made too), put the init rows
 * back with COPY, set every sequence back (those a test made restart).
 * The schema is not reset: what a test created or altered stays. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../service.h"
#include "pg.h"

/* A table with rows in the init state, and those rows. */
struct init_rows {
    char *name; /* schema.table, quoted */
    char *cols; /* its column list, quoted: a column a test added takes its default */
    strbuf data; /* COPY's binary format */
};

struct init_seq {
    char *name;
    char *value; /* last_value */
    bool called; /* is_called */
};

struct pg_init_state {
    struct init_rows *rows;
    size_t n_rows;
    struct init_seq *seqs;
    size_t n_seqs;
    bool superuser; /* may set session_replication_role */
};

/* The user's tables and sequences: not the catalogs', not TOAST's, not a
 * session's temporary ones. */
#define USER_RELS                                                                              \
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "      \
    "WHERE c.relpersistence <> 't' AND n.nspname <> 'information_schema' "                      \
    "AND n.nspname !~ '^pg_(catalog|toast|temp_|toast_temp_)' "

void pg_init_state_free(struct pg_init_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_rows; i++) {
        free(st->rows[i].name);
        free(st->rows[i].cols);
        sb_free(&st->rows[i].data);
    }
    for (size_t i = 0; i < st->n_seqs; i++) {
        free(st->seqs[i].name);
        free(st->seqs[i].value);
    }
    free(st->rows);
    free(st->seqs);
    free(st);
}

/* The server's message, first line only, for ours to go on. */
static const char *pq_err(PGconn *c)
{
    static char m[1024];
    snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
    m[strcspn(m, "\n")] = '\0';
    return m;
}

static PGresult *query(PGconn *c, const char *sql, const char *label, terr *e)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    terr_set(e, EIO, "[%s] reset = truncate: %s", label, pq_err(c));
    PQclear(res);
    return NULL;
}

/* COPY name (cols) TO STDOUT, in binary: the rows, and how many. */
static int copy_out(PGconn *c, struct init_rows *t, long *n, const char *label, terr *e)
{
    _cleanup_free_ char *sql =
        xasprintf("COPY %s (%s) TO STDOUT (FORMAT binary)", t->name, t->cols);
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COPY_OUT;
    PQclear(res);
    if (!ok)
        return terr_set(e, EIO, "[%s] reset = truncate: reading the init rows of %s: %s", label,
                        t->name, pq_err(c));
    char *buf;
    int len;
    while ((len = PQgetCopyData(c, &buf, 0)) > 0) {
        sb_addn(&t->data, buf, (size_t)len);
        PQfreemem(buf);
    }
    res = PQgetResult(c);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    *n = ok ? atol(PQcmdTuples(res)) : 0;
    PQclear(res);
    while ((res = PQgetResult(c)))
        PQclear(res);
    return ok ? 0 : terr_set(e, EIO, "[%s] reset = truncate: reading the init rows of %s: %s",
                             label, t->name, pq_err(c));
}

static int read_rows(PGconn *c, struct pg_init_state *st, const char *label, terr *e)
{
    PGresult *res = query(c,
                          "SELECT format('%I.%I', n.nspname, c.relname), "
                          "(SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) "
                          " FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid "
                          " AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') "
                          USER_RELS "AND c.relkind = 'r' ORDER BY 1",
                          label, e);
    if (!res)
        return -EIO;
    int r = 0;
    for (int i = 0; i < PQntuples(res) && r == 0; i++) {
        if (PQgetisnull(res, i, 1)) /* no columns: nothing to keep */
            continue;
        struct init_rows t = {.name = xstrdup(PQgetvalue(res, i, 0)),
                              .cols = xstrdup(PQgetvalue(res, i, 1))};
        long n = 0;
        r = copy_out(c, &t, &n, label, e);
        if (r == 0 && n > 0) {
            st->rows = xrealloc(st->rows, (st->n_rows + 1) * sizeof(*st->rows));
            st->rows[st->n_rows++] = t;
            continue;
        }
        free(t.name);
        free(t.cols);
        sb_free(&t.data);
    }
    PQclear(res);
    return r;
}

static int read_seqs(PGconn *c, struct pg_init_state *st, const char *label, terr *e)
{
    PGresult *res = query(c, "SELECT format('%I.%I', n.nspname, c.relname) " USER_RELS
                             "AND c.relkind = 'S' ORDER BY 1", label, e);
    if (!res)
        return -EIO;
    int r = 0;
    for (int i = 0; i < PQntuples(res) && r == 0; i++) {
        const char *name = PQgetvalue(res, i, 0);
        _cleanup_free_ char *sql = xasprintf("SELECT last_value, is_called FROM %s", name);
        PGresult *v = query(c, sql, label, e);
        if (!v || PQntuples(v) != 1) {
            r = v ? terr_set(e, EIO, "[%s] reset = truncate: sequence %s has no value", label,
                             name)
                  : -EIO;
            PQclear(v);
            break;
        }
        st->seqs = xrealloc(st->seqs, (st->n_seqs + 1) * sizeof(*st->seqs));
        st->seqs[st->n_seqs++] = (struct init_seq){xstrdup(name), xstrdup(PQgetvalue(v, 0, 0)),
                                                   streq(PQgetvalue(v, 0, 1), "t")};
        PQclear(v);
    }
    PQclear(res);
    return r;
}

int pg_init_state_read(PGconn *tmpl, struct pg_init_state **out, const char *label, terr *e)
{
    struct pg_init_state *st = xcalloc(1, sizeof(*st));
    const char *su = PQparameterStatus(tmpl, "is_superuser");
    st->superuser = su && streq(su, "on");
    int r = read_rows(tmpl, st, label, e);
    if (r == 0)
        r = read_seqs(tmpl, st, label, e);
    if (r < 0) {
        pg_init_state_free(st);
        return r;
    }
    *out = st;
    return 0;
}

static int rollback_gid(PGconn *c, const char *gid, const char *label, terr *e)
{
    char *lit = PQescapeLiteral(c, gid, strlen(gid));
    _cleanup_free_ char *sql = lit ? xasprintf("ROLLBACK PREPARED %s", lit) : NULL;
    PQfreemem(lit);
    return sql ? pg_exec(c, sql, label, e)
               : terr_set(e, EIO, "[%s] cannot quote prepared transaction %s", label, gid);
}

/* A test's PREPARE TRANSACTION outlives its session and holds its locks
 * (and makes DROP DATABASE fail: "being used by prepared transactions"):
 * roll back those of c's database, which only a session there may do.
 * Returns how many, or -errno. */
int pg_rollback_prepared(PGconn *c, const char *label, terr *e)
{
    PGresult *res = PQexec(c, "SELECT gid FROM pg_catalog.pg_prepared_xacts "
                              "WHERE database = current_database()");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int r = terr_set(e, EIO, "[%s] listing the prepared transactions: %s", label, pq_err(c));
        PQclear(res);
        return r;
    }
    int n = PQntuples(res), r = 0;
    for (int i = 0; i < n && r == 0; i++)
        r = rollback_gid(c, PQgetvalue(res, i, 0), label, e);
    PQclear(res);
    return r < 0 ? r : n;
}

/* One round trip: the database's tables ('r'; 'e' when it has not a single
 * page, so no row, which costs a stat() to tell) and sequences ('S'),
 * its prepared transactions ('x': a test's PREPARE TRANSACTION outlives
 * its session and holds its locks), and, as it goes (no row), the end of
 * the other sessions that hold a lock on a table there (a transaction left
 * open, a query still running), which would hold up TRUNCATE.  Idle
 * sessions, which hold none, stay. */
#define SURVEY                                                                                 \
    "SELECT CASE WHEN c.relkind = 'r' AND pg_catalog.pg_relation_size(c.oid) = 0 THEN 'e' "   \
    "ELSE c.relkind::text END, format('%I.%I', n.nspname, c.relname) " USER_RELS               \
    "AND c.relkind IN ('r', 'S') "                                                              \
    "UNION ALL SELECT 'x', gid FROM pg_catalog.pg_prepared_xacts "                             \
    "WHERE database = current_database() "                                                      \
    "UNION ALL SELECT 'k', NULL FROM (SELECT pg_catalog.pg_terminate_backend(l.pid) AS ok "    \
    "FROM (SELECT DISTINCT pid FROM pg_catalog.pg_locks WHERE locktype = 'relation' "          \
    "AND granted AND pid <> pg_catalog.pg_backend_pid() AND database = (SELECT oid FROM "     \
    "pg_catalog.pg_database WHERE datname = current_database())) l) t WHERE NOT t.ok "          \
    "ORDER BY 1, 2"

/* Whether st has init rows for table name. */
static bool has_rows(const struct pg_init_state *st, const char *name)
{
    for (size_t i = 0; i < st->n_rows; i++)
        if (streq(st->rows[i].name, name))
            return true;
    return false;
}

/* What to TRUNCATE (every table that has a page or init rows, in one
 * statement, CASCADE for the foreign keys of the rest: a test that touched
 * two tables costs two, whatever the schema) and the sequences a test
 * made, which restart; the prepared transactions go first.  Leaf tables
 * only: a partitioned table's partitions are tables of their own. */
static int plan(PGconn *c, const struct pg_init_state *st, strbuf *sql, const char *label,
                terr *e)
{
    PGresult *res = query(c, SURVEY, label, e);
    if (!res)
        return -EIO;
    for (int i = 0; i < PQntuples(res); i++)
        if (streq(PQgetvalue(res, i, 0), "x") &&
            rollback_gid(c, PQgetvalue(res, i, 1), label, e) < 0) {
            PQclear(res);
            return -EIO;
        }
    bool any = false;
    for (int i = 0; i < PQntuples(res); i++)
        if (streq(PQgetvalue(res, i, 0), "r") ||
            (streq(PQgetvalue(res, i, 0), "e") && has_rows(st, PQgetvalue(res, i, 1)))) {
            sb_add(sql, any ? ", " : "TRUNCATE ");
            sb_add(sql, PQgetvalue(res, i, 1));
            any = true;
        }
    if (any)
        sb_add(sql, " CASCADE;\n");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 1);
        bool init = false;
        for (size_t k = 0; k < st->n_seqs && !init; k++)
            init = streq(st->seqs[k].name, name);
        if (streq(PQgetvalue(res, i, 0), "S") && !init)
            sb_addf(sql, "ALTER SEQUENCE %s RESTART;\n", name);
    }
    int r = 0;
    for (size_t k = 0; k < st->n_seqs && r == 0; k++) {
        const char *name = st->seqs[k].name;
        char *lit = PQescapeLiteral(c, name, strlen(name));
        if (lit)
            sb_addf(sql, "SELECT pg_catalog.setval(%s, %s, %s);\n", lit, st->seqs[k].value,
                    st->seqs[k].called ? "true" : "false");
        else
            r = terr_set(e, EIO, "[%s] reset = truncate: cannot quote %s", label, name);
        PQfreemem(lit);
    }
    PQclear(res);
    return r;
}

static int copy_in(PGconn *c, const struct init_rows *t, const char *label, terr *e)
{
    _cleanup_free_ char *sql =
        xasprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", t->name, t->cols);
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    if (ok && (PQputCopyData(c, t->data.s, (int)t->data.len) != 1 ||
               PQputCopyEnd(c, NULL) != 1)) {
        ok = false;
        (void)PQputCopyEnd(c, "tether could not send the rows");
    }
    while ((res = PQgetResult(c))) {
        ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    return ok ? 0 : terr_set(e, EIO, "[%s] reset = truncate: putting back the init rows of %s: "
                             "%s (a test dropped it or changed its columns? reset = template resets the schema too)", label,
                             t->name, pq_err(c));
}

int pg_truncate_reset(PGconn *c, const struct pg_init_state *st, long long lock_timeout_ms,
                      const char *label, terr *e)
{
    strbuf sql = {0};
    /* replica: the init rows go back as they were, without the triggers
     * (user or foreign key) that a COPY would fire */
    sb_addf(&sql, "BEGIN;\nSET LOCAL lock_timeout = %lld;\n%s", lock_timeout_ms,
            st->superuser ? "SET LOCAL session_replication_role = replica;\n" : "");
    int r = plan(c, st, &sql, label, e);
    if (r == 0 && st->n_rows == 0) /* nothing to COPY: one round trip */
        sb_add(&sql, "COMMIT;\n");
    if (r == 0) {
        PGresult *res = PQexec(c, sql.s);
        const char *m = pq_err(c);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
            r = terr_set(e, EIO, "[%s] reset = truncate: %s%s", label, m,
                         strstr(m, "does not exist") ? " (a test dropped what the init state "
                                                       "had? reset = template resets the schema "
                                                       "too)"
                                                     : "");
        PQclear(res);
    }
    sb_free(&sql);
    for (size_t i = 0; r == 0 && i < st->n_rows; i++)
        r = copy_in(c, &st->rows[i], label, e);
    if (r == 0 && st->n_rows == 0)
        return 0;
    PGresult *res = PQexec(c, r == 0 ? "COMMIT" : "ROLLBACK");
    if (r == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
        r = terr_set(e, EIO, "[%s] reset = truncate: COMMIT: %s", label, pq_err(c));
    PQclear(res);
    return r;
}
