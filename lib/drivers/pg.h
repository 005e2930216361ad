/* The postgresql driver's pieces: the cluster cache and server mode. */
#pragma once
#include "dynlib.h"
#include <stdbool.h>
#include "../instance.h"

struct pg {
    char *bindir;
    char *os_user; /* runs the server; also the database superuser */
    PGconn *conn;  /* maintenance connection, for resets */
    bool spare_ready;
    /* server = URL mode */
    char *server_url;
    char *server_db; /* the unique database made for this instance */
    char *maint_db;
};

const char *pg_dbname(const struct svc_conf *c);
int pg_exec(PGconn *c, const char *sql, const char *label, terr *e);
/* " STRATEGY = FILE_COPY" where the server has it (15+), else "" */
const char *pg_copy_strategy(PGconn *c);
int pg_remove_shm(int svcdir_fd);
void pg_server_args(struct svc *s, const char *bindir, const char *datadir, const char *sockdir,
                    int port, strv *argv);
/* The template a reset copies: <dbname>_template in a private cluster,
 * template = in server mode (NULL: CREATE DATABASE's default). */
char *pg_template_name(struct svc *s, struct pg *pg);

/* pg_cache.c */
int pg_find_bindir(const struct svc_conf *c, char **bindir, terr *e);
/* An initdb'd cluster for this configuration, built on first use; *fd is
 * its data directory. */
int pg_cache_get(struct svc *s, struct pg *pg, int *fd, terr *e);
/* The per-user cache root (created 0700, or 0711 for root). */
int pg_cache_root(char **path, terr *e);

/* pg_server.c: server = URL */
int pg_server_prepare(struct svc *s, struct pg *pg, terr *e);
int pg_server_variables(struct svc *s, struct pg *pg, terr *e);
PGconn *pg_server_connect(struct pg *pg, terr *e);
int pg_server_cleanup(struct svc *s, struct pg *pg, terr *e);
int pg_server_reap(int svcdir_fd, terr *e);
