/* libpq and hiredis, loaded on first use with dlopen().
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
#include "../util.h"

#define PQ_FUNCS(X)                                                                             \
    X(PQclear) X(PQcmdTuples) X(PQconnectdbParams) X(PQconnectStartParams) X(PQconninfoFree)    \
    X(PQconninfoParse) X(PQencryptPasswordConn) X(PQerrorMessage) X(PQescapeIdentifier)         \
    X(PQescapeLiteral) X(PQexec) X(PQfinish) X(PQfreemem) X(PQpingParams) X(PQresultStatus)     \
    X(PQserverVersion) X(PQstatus)
#define REDIS_FUNCS(X)                                                                          \
    X(freeReplyObject) X(redisCommand) X(redisConnectUnixWithTimeout)                             \
    X(redisConnectWithTimeout) X(redisFree) X(redisSetTimeout)

#define DYN_FIELD(f) __typeof__(f) *f;
struct pq_api { PQ_FUNCS(DYN_FIELD) };
struct redis_api { REDIS_FUNCS(DYN_FIELD) };
#undef DYN_FIELD

extern struct pq_api pq_api;
extern struct redis_api redis_api;

/* Load the library (once); -ENOENT with the package to install in e. */
int pq_load(terr *e);
int redis_load(terr *e);

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
#define freeReplyObject redis_api.freeReplyObject
#define redisCommand redis_api.redisCommand
#define redisConnectUnixWithTimeout redis_api.redisConnectUnixWithTimeout
#define redisConnectWithTimeout redis_api.redisConnectWithTimeout
#define redisFree redis_api.redisFree
#define redisSetTimeout redis_api.redisSetTimeout
#endif
