/* The PostgreSQL driver's bottom layer: names, the URL, the server's
 * command line and the libpq helpers that the cache (pg_cache.c), server
 * = URL (pg_server.c), truncate (pg_truncate.c) and the driver
 * (postgresql.c) share.  It calls none of them: the files above it form
 * no cycle. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../config.h"
#include "pg.h"

const char *pg_dbname(const struct svc_conf *c)
{
    const char *d = svc_opt(c, "dbname");
    return d ? d : "tether";
}

void pg_server_args(struct svc *s, const char *bindir, const char *datadir, const char *sockdir,
                    int port, strv *argv)
{
    strv_pushf(argv, "%s/postgres", bindir);
    strv_push(argv, "-D");
    strv_push(argv, datadir);
    strv_push(argv, "-k");
    strv_push(argv, sockdir);
    /* throwaway data: nothing needs to survive a crash */
    static const char *const fixed[] = {
        "fsync=off", "synchronous_commit=off", "full_page_writes=off",
        "dynamic_shared_memory_type=mmap", /* no /dev/shm segments to leak */
        "unix_socket_permissions=0700", "wal_level=minimal", "max_wal_senders=0",
        "logging_collector=off", "log_line_prefix=%m [%p] ",
        /* the log is read to find a failing test: errors with their
         * statement, not a checkpoint per CREATE DATABASE (15 logs them) */
        "log_checkpoints=off", "log_min_messages=warning", "log_min_error_statement=error",
        "log_error_verbosity=default", "log_connections=off", "log_disconnections=off",
        "min_wal_size=2MB", "wal_recycle=off", /* no spare WAL segments: smaller copies */
        /* 128 MB of shared memory costs 10 ms of every start here; a test
         * database's pages are in tmpfs's page cache anyway */
        "shared_buffers=32MB",
    };
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
        strv_push(argv, "-c");
        strv_push(argv, fixed[i]);
    }
    strv_push(argv, "-c");
    strv_pushf(argv, "port=%d", port);
    strv_push(argv, "-c");
    strv_push(argv, port != PG_SOCKET_PORT || (s && s->port) ? "listen_addresses=127.0.0.1"
                                                             : "listen_addresses=");
    if (!s)
        return;
    /* the user's settings last: the last -c wins */
    for (size_t i = 0; i < s->conf->n_opts; i++)
        if (strncmp(s->conf->opts[i].key, "setting.", 8) == 0) {
            strv_push(argv, "-c");
            strv_pushf(argv, "%s=%s", s->conf->opts[i].key + 8, s->conf->opts[i].value);
        }
}

/* A name or an address, which goes in the URL's authority; a socket
 * directory (or an abstract one, '@'), several hosts, or none go in the
 * query instead. */
static bool tcp_host(const char *host)
{
    return *host && *host != '/' && *host != '@' && !strchr(host, ',');
}

void pg_url(strbuf *b, const char *user, const char *password, const char *host,
            const char *port, const char *db)
{
    sb_add(b, "postgresql://");
    if (*user) {
        url_encode(b, user, "");
        if (password) {
            sb_addc(b, ':');
            url_encode(b, password, "");
        }
        sb_addc(b, '@');
    }
    bool tcp = tcp_host(host);
    if (tcp && strchr(host, ':'))
        sb_addf(b, "[%s]:%s", host, port); /* IPv6 */
    else if (tcp) {
        url_encode(b, host, "");
        sb_addf(b, ":%s", port);
    }
    sb_addc(b, '/');
    url_encode(b, db, "");
    if (tcp)
        return;
    /* SQLAlchemy 1.4 takes the authority's host for a name to resolve,
     * even percent-encoded: a socket directory goes in the query, which
     * libpq, psycopg, SQLAlchemy and asyncpg all read; the port names
     * the socket file, whatever PGPORT says.  '+' is encoded: Python's
     * query parsers read it as a space. */
    if (*host) {
        sb_add(b, "?host=");
        url_encode(b, host, "/,"); /* a list of hosts stays one */
        sb_add(b, "&port=");
    } else {
        sb_add(b, "?port=");
    }
    url_encode(b, port, ",");
}

int pg_exec(PGconn *c, const char *sql, const char *label, terr *e)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    int r = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        r = terr_set(e, EIO, "[%s] %s: %s", label, sql, PQerrorMessage(c));
    PQclear(res);
    return r;
}

/* Copying a small template: FILE_COPY copies its files (11 ms here for
 * a 20-table schema) where 15's default, WAL_LOG, writes every page to
 * the WAL (52 ms).  Its two checkpoints cost little with fsync off. */
const char *pg_copy_strategy(PGconn *c)
{
    return PQserverVersion(c) >= 150000 ? " STRATEGY = FILE_COPY" : "";
}

char *pg_quote_ident(PGconn *c, const char *name)
{
    char *q = PQescapeIdentifier(c, name, strlen(name));
    char *r = xstrdup(q ? q : "\"\"");
    PQfreemem(q);
    return r;
}

char *pg_template_name(struct svc *s, struct pg *pg)
{
    if (pg->server_url) {
        const char *t = svc_opt(s->conf, "template");
        return t ? xstrdup(t) : NULL;
    }
    return xasprintf("%s_template", pg_dbname(s->conf));
}

