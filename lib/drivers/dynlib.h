/* libpq, hiredis and libmariadb, loaded on first use with dlopen().
 *
 * Linking them would make every tether process (every `tether reset`, every
 * helper) map some 25 shared libraries (libpq alone brings OpenSSL,
 * Kerberos, LDAP, GnuTLS...): tens of milliseconds of start-up per command
 * and a megabyte more RSS per helper.  Only the drivers that talk to those
 * servers pay for them, and only when they do.
 *
 * Include this instead of <libpq-fe.h> / <hiredis/hiredis.h>: the calls
 * keep their names and go through the loaded pointers. */
#pragma once
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <mysql.h>
#include "../util.h"

#define PQ_FUNCS(X)                                                                             \
    X(PQclear) X(PQconnectdbParams) X(PQconninfoFree) X(PQconninfoParse) X(PQerrorMessage)      \
    X(PQescapeIdentifier) X(PQexec) X(PQfinish) X(PQfreemem) X(PQpingParams)                     \
    X(PQresultStatus) X(PQserverVersion) X(PQstatus)                                             \
    /* the asynchronous calls, for talking to a server with a deadline */                     \
    X(PQconnectStartParams) X(PQconnectPoll) X(PQsocket) X(PQsendQuery) X(PQconsumeInput)       \
    X(PQisBusy) X(PQgetResult) X(PQflush) X(PQsetnonblocking)                \
    /* the TCP password */                                                                       \
    X(PQcmdTuples) X(PQencryptPasswordConn) X(PQescapeLiteral)                                \
    /* reset = truncate: its listings, and the init rows copied out and back */                \
    X(PQntuples) X(PQgetvalue) X(PQgetisnull) X(PQparameterStatus) X(PQgetCopyData)             \
    X(PQputCopyData) X(PQputCopyEnd)
#define REDIS_FUNCS(X)                                                                          \
    X(freeReplyObject) X(redisCommand) X(redisConnectUnixWithTimeout)                             \
    X(redisConnectWithTimeout) X(redisFree) X(redisSetTimeout) X(redisCommandArgv)

#define MY_FUNCS(X)                                                                             \
    X(mysql_init) X(mysql_options) X(mysql_real_connect) X(mysql_close) X(mysql_error)         \
    X(mysql_errno) X(mysql_real_query) X(mysql_next_result) X(mysql_store_result)               \
    X(mysql_free_result) X(mysql_fetch_row) X(mysql_ping) X(mysql_get_socket)

#define DYN_FIELD(f) __typeof__(f) *f;
struct pq_api { PQ_FUNCS(DYN_FIELD) };
struct redis_api { REDIS_FUNCS(DYN_FIELD) };
struct my_api { MY_FUNCS(DYN_FIELD) };
#undef DYN_FIELD

extern struct pq_api pq_api;
extern struct redis_api redis_api;
extern struct my_api my_api;

/* Load the library (once); -ENOENT with the package to install in e. */
int pq_load(terr *e);
int redis_load(terr *e);
int my_load(terr *e);

#ifndef DYNLIB_IMPL
#define PQclear pq_api.PQclear
#define PQcmdTuples pq_api.PQcmdTuples
#define PQconnectdbParams pq_api.PQconnectdbParams
#define PQconnectStartParams pq_api.PQconnectStartParams
#define PQconninfoFree pq_api.PQconninfoFree
#define PQconninfoParse pq_api.PQconninfoParse
#define PQencryptPasswordConn pq_api.PQencryptPasswordConn
#define PQerrorMessage pq_api.PQerrorMessage
#define PQescapeIdentifier pq_api.PQescapeIdentifier
#define PQescapeLiteral pq_api.PQescapeLiteral
#define PQexec pq_api.PQexec
#define PQfinish pq_api.PQfinish
#define PQfreemem pq_api.PQfreemem
#define PQpingParams pq_api.PQpingParams
#define PQresultStatus pq_api.PQresultStatus
#define PQserverVersion pq_api.PQserverVersion
#define PQstatus pq_api.PQstatus
#define PQconnectStartParams pq_api.PQconnectStartParams
#define PQconnectPoll pq_api.PQconnectPoll
#define PQsocket pq_api.PQsocket
#define PQsendQuery pq_api.PQsendQuery
#define PQconsumeInput pq_api.PQconsumeInput
#define PQisBusy pq_api.PQisBusy
#define PQgetResult pq_api.PQgetResult
#define PQflush pq_api.PQflush
#define PQsetnonblocking pq_api.PQsetnonblocking
#define PQntuples pq_api.PQntuples
#define PQgetvalue pq_api.PQgetvalue
#define PQgetisnull pq_api.PQgetisnull
#define PQparameterStatus pq_api.PQparameterStatus
#define PQgetCopyData pq_api.PQgetCopyData
#define PQputCopyData pq_api.PQputCopyData
#define PQputCopyEnd pq_api.PQputCopyEnd
#define freeReplyObject redis_api.freeReplyObject
#define redisCommand redis_api.redisCommand
#define redisCommandArgv redis_api.redisCommandArgv
#define redisConnectUnixWithTimeout redis_api.redisConnectUnixWithTimeout
#define redisConnectWithTimeout redis_api.redisConnectWithTimeout
#define redisFree redis_api.redisFree
#define redisSetTimeout redis_api.redisSetTimeout
#define mysql_init my_api.mysql_init
#define mysql_options my_api.mysql_options
#define mysql_real_connect my_api.mysql_real_connect
#define mysql_close my_api.mysql_close
#define mysql_error my_api.mysql_error
#define mysql_errno my_api.mysql_errno
#define mysql_real_query my_api.mysql_real_query
#define mysql_next_result my_api.mysql_next_result
#define mysql_store_result my_api.mysql_store_result
#define mysql_free_result my_api.mysql_free_result
#define mysql_fetch_row my_api.mysql_fetch_row
#define mysql_ping my_api.mysql_ping
#define mysql_get_socket my_api.mysql_get_socket
#endif
