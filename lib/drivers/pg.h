/* The postgresql driver's pieces: the cluster cache and server mode. */
#pragma once
#include "dynlib.h"
#include <stdbool.h>
#include "../instance.h"
#include "../job.h"

#define PG_SOCKET_PORT 5432 /* the socket's name only, when there is no TCP */

struct pg {
    char *bindir;
    char *cache_entry; /* the cache's directory for this cluster (pg_cache_install) */
    char *build_tmp;   /* its build directory's name while a job builds it */
    char *os_user; /* runs the server; also the database superuser */
    char *password; /* os_user's over TCP (tcp = yes), made per instance; NULL without TCP */
    struct worker worker; /* resets, health checks, the TCP password (job.h) */
    bool auth_pending; /* tcp = yes: the password is set once the server is up */
    pid_t spare_pid; /* making the cache entry's next spare (pg_spare_start) */
    int spare_pidfd;
    /* server = URL mode */
    char *server_url;
    char *server_db; /* the unique database made for this instance */
    char *maint_db;
    strv server_vars; /* HOST, PORT, USER, URL_AUTH: parsed by the job */
};

/* pg_sql.c: the layer below the others */
const char *pg_dbname(const struct svc_conf *c);
/* The URL of a database: host and port in the authority for TCP, in the
 * query for a socket directory, so that libpq, psycopg2, psycopg 3,
 * SQLAlchemy and asyncpg all accept it.  password: NULL for none. */
void pg_url(strbuf *b, const char *user, const char *password, const char *host,
            const char *port, const char *db);
int pg_exec(PGconn *c, const char *sql, const char *label, terr *e);
/* name as a quoted SQL identifier (malloc'd) */
char *pg_quote_ident(PGconn *c, const char *name);
/* " STRATEGY = FILE_COPY" where the server has it (15+), else "" */
const char *pg_copy_strategy(PGconn *c);
void pg_server_args(struct svc *s, const char *bindir, const char *datadir, const char *sockdir,
                    int port, strv *argv);
/* The template a reset copies: <dbname>_template in a private cluster,
 * template = in server mode (NULL: CREATE DATABASE's default). */
char *pg_template_name(struct svc *s, struct pg *pg);

/* pg_cache.c */
int pg_find_bindir(const struct svc_conf *c, char **bindir, terr *e);
/* s->dir/data: the spare or a copy of the cache's initdb'd cluster for
 * this configuration, built first (in a job: OP_STARTED) if there is none.
 * 0 | OP_STARTED | < 0, as driver.h's prepare. */
int pg_cache_install(struct svc *s, struct pg *pg, struct op *op, terr *e);
/* At cleanup (every process gone): the directory of a build that was
 * abandoned (its job killed at a shutdown), and its servers' segments. */
void pg_cache_abandon(struct svc *s, struct pg *pg);
/* Make the entry's next spare copy (datacache_make_spare) in a child,
 * unless one is being made; pg_spare_reap() reaps it: without kill_it
 * only once it is done, with kill_it now. */
void pg_spare_start(struct svc *s, struct pg *pg, int dstdir);
void pg_spare_reap(struct pg *pg, bool kill_it);

/* pg_truncate.c: reset = truncate */
struct pg_init_state;
/* The init state: the rows and sequence values of tmpl's database. */
int pg_init_state_read(PGconn *tmpl, struct pg_init_state **out, const char *label, terr *e);
void pg_init_state_free(struct pg_init_state *st);
/* Bring c's database back to st, in one transaction; c stays open, and
 * so do the sessions that hold no lock there. */
int pg_truncate_reset(PGconn *c, const struct pg_init_state *st, long long lock_timeout_ms,
                      const char *label, terr *e);
/* Roll back the prepared transactions of c's database: how many, or -errno. */
int pg_rollback_prepared(PGconn *c, const char *label, terr *e);

/* pg_server.c: server = URL */
int pg_server_prepare(struct svc *s, struct pg *pg, struct op *op, terr *e);
int pg_server_variables(struct svc *s, struct pg *pg, terr *e);
PGconn *pg_server_connect(struct pg *pg, terr *e);
/* The same, to database db */
PGconn *pg_server_connect_db(struct pg *pg, const char *db, terr *e);
/* The session lock that whoever creates or drops database db holds (gc
 * included): a statement still running for a killed client ends first. */
int pg_server_lock(PGconn *c, const char *db, const char *label, terr *e);
int pg_server_cleanup(struct svc *s, struct pg *pg, terr *e);
int pg_server_reap(int svcdir_fd, terr *e);
