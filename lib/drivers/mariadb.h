/* The mariadb driver's pieces, in layers (no file uses one above it):
 *   mariadb.c        the driver: hooks, the worker (health, reset), variables
 *   mariadb_reset.c  the reset, in the worker: full, or fast when it can tell
 *   mariadb_cache.c  the data-directory cache (mariadb-install-db, init_sql)
 *                    and the server's command line, which both share */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include "../job.h"
#include "dynlib.h"
#include "datacache.h"

#define MDB_SOCKET "mysqld.sock" /* in the service's (or the build's) directory */

struct mdb {
    char bin[PATH_MAX];   /* mariadbd */
    char *os_user;        /* runs the server: the owner, or (as root) mysql */
    char *db_user;        /* the account handed out: the owner's login name */
    char *password;       /* tcp = yes: the account's over TCP, made per instance */
    char *init_path;      /* init_sql = (absolute), NULL without */
    char *init_text;      /* its text: loaded into the cache, replayed by reset */
    size_t init_len;
    struct datacache_use cache;
    struct worker worker; /* health and reset (libmariadb, job.h) */
    char *init_record;    /* what the last full reset recorded (mdb_init_state_save) */
};

/* database = (default "tether") */
const char *mdb_dbname(const struct svc_conf *c);
/* The settings every server of ours runs with, for the data directory
 * DIR/data, socket DIR/mysqld.sock, pid file and tmpdir in DIR. */
void mdb_server_args(const char *bin, const char *dir, strv *argv);
/* ` quoted identifier, ' quoted string (malloc'd) */
char *mdb_quote_ident(const char *name);
char *mdb_quote_str(const char *s);
/* init_sql = into m (its path and text), once. */
int mdb_read_init_sql(struct svc *s, struct mdb *m, terr *e);
/* s->dir/data: a copy of the cache's install-db'd (and init_sql-loaded)
 * directory for this configuration, built first in a job (OP_STARTED)
 * if there is none.  0 | OP_STARTED | < 0, as driver.h's prepare. */
int mdb_cache_install(struct svc *s, struct mdb *m, struct op *op, terr *e);

/* mariadb_reset.c, in the worker */
struct mdb_init_state;
void mdb_init_state_free(struct mdb_init_state *st);
/* st as text, for the helper to keep (a worker leaves when idle: the next
 * one starts from it); NULL when it does not fit a reply.  And back. */
char *mdb_init_state_save(const struct mdb_init_state *st);
struct mdb_init_state *mdb_init_state_load(const char *text);
/* Bring the instance back to its init state over c: the fast reset when
 * *st (what the last full one recorded) shows a test only wrote rows to
 * init-empty tables, else the full one (and *st recorded anew). */
int mdb_reset_db(struct svc *s, struct mdb *m, MYSQL *c, struct mdb_init_state **st, terr *e);
/* mysql_error() as e, naming the service and what was done */
int mdb_err(struct svc *s, MYSQL *c, const char *what, terr *e);
/* Run sql (one or several statements), dropping its results: 0, or the
 * first error (the rest of a batch is not run). */
int mdb_exec(struct svc *s, MYSQL *c, const char *sql, size_t len, const char *what, terr *e);
