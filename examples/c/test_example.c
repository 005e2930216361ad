/* A cmocka suite that uses tether for its servers: copy it as a start.
 *
 *   - PostgreSQL and Redis are started once for the whole group, and reset
 *     before each test (a fresh, empty database and a flushed Redis);
 *   - one test gets a Redis of its own, started and removed around it.
 *
 * Build (see meson.build here, or by hand):
 *   cc test_example.c $(pkg-config --cflags --libs tether cmocka libpq hiredis)
 * Run: ./a.out -- nothing to set up; the servers go away when it exits,
 * even if it crashes or is killed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <tether/tether.h>

/* ---- the group's services ---- */

static tether_service *pg, *redis;

static int start(tether_service **s, const char *name)
{
    *s = tether_service_new(name, NULL);
    if (tether_setup(*s, TETHER_USE_EXISTING) < 0) {
        /* TETHER_USE_EXISTING: after eval "$(tether start postgresql redis)" the tests
         * use those (fast reruns); otherwise they get private ones */
        print_error("%s\n", tether_strerror(*s));
        return -1;
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return start(&pg, "postgresql") || start(&redis, "redis") ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int r = tether_cleanup(pg) | tether_cleanup(redis);
    tether_service_free(pg);
    tether_service_free(redis);
    return r ? -1 : 0;
}

/* before each test: alive? then discard what the last test did */
static int reset(void **state)
{
    (void)state;
    if (tether_reset(pg) < 0 || tether_reset(redis) < 0) {
        print_error("%s%s\n", tether_strerror(pg), tether_strerror(redis));
        return -1;
    }
    return 0;
}

/* ---- helpers ---- */

static PGconn *pg_connect(void)
{
    PGconn *c = PQconnectdb(tether_var(pg, "URL"));
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("%s", PQerrorMessage(c));
    return c;
}

static long pg_count(PGconn *c, const char *table)
{
    const char *params[] = {table};
    PGresult *r = PQexecParams(c, "select count(*) from pg_tables where tablename = $1", 1,
                               NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static redisContext *redis_connect(tether_service *s)
{
    /* the redis driver listens on a unix socket (TETHER_REDIS_SOCKET) */
    redisContext *c = redisConnectUnix(tether_var(s, "SOCKET"));
    if (!c || c->err)
        fail_msg("redis %s: %s", tether_var(s, "SOCKET"), c ? c->errstr : "out of memory");
    return c;
}

static long long redis_dbsize(redisContext *c)
{
    redisReply *r = redisCommand(c, "DBSIZE");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* ---- use case 2: shared services, reset between tests ---- */

static void test_writes(void **state)
{
    (void)state;
    PGconn *c = pg_connect();
    assert_int_equal(pg_count(c, "orders"), 0);
    PQclear(PQexec(c, "create table orders (id int); insert into orders values (1)"));
    assert_int_equal(pg_count(c, "orders"), 1);
    PQfinish(c);

    redisContext *r = redis_connect(redis);
    assert_int_equal(redis_dbsize(r), 0);
    freeReplyObject(redisCommand(r, "SET %s %s", "session", "abc"));
    assert_int_equal(redis_dbsize(r), 1);
    redisFree(r);
}

static void test_sees_a_clean_slate(void **state)
{
    (void)state;
    PGconn *c = pg_connect();
    assert_int_equal(pg_count(c, "orders"), 0);
    PQfinish(c);
    redisContext *r = redis_connect(redis);
    assert_int_equal(redis_dbsize(r), 0);
    redisFree(r);
}

/* ---- use case 1: a service for one test ---- */

static int own_setup(void **state)
{
    tether_service *s = tether_service_new("redis", NULL);
    *state = s;
    if (tether_setup(s, 0) < 0) {
        print_error("%s\n", tether_strerror(s));
        return -1;
    }
    return 0;
}

static int own_teardown(void **state)
{
    tether_service *s = *state;
    int r = tether_cleanup(s);
    if (r < 0)
        print_error("%s\n", tether_strerror(s));
    tether_service_free(s);
    return r < 0 ? -1 : 0;
}

static void test_own_redis(void **state)
{
    tether_service *mine = *state;
    /* not the group's: a private instance of its own */
    assert_string_not_equal(tether_var(mine, "SOCKET"), tether_var(redis, "SOCKET"));
    redisContext *r = redis_connect(mine);
    assert_int_equal(redis_dbsize(r), 0);
    freeReplyObject(redisCommand(r, "SET %s %s", "k", "v"));
    redisFree(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_writes, reset),
        cmocka_unit_test_setup(test_sees_a_clean_slate, reset),
        cmocka_unit_test_setup_teardown(test_own_redis, own_setup, own_teardown),
    };
    return cmocka_run_group_tests_name("tether example", tests, group_setup, group_teardown);
}
