/* A cmocka suite that uses tether for its servers: copy it as a start.
 *
 *   - PostgreSQL and Redis are started once for the whole group, and reset
 *     before each test (a fresh, empty database and a flushed Redis): three
 *     lines, tether_group_config() and libtether's cmocka-shaped
 *     tether_group_setup, tether_group_reset and tether_group_teardown;
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

/* ---- helpers ---- */

/* tether_group_setup leaves the group's services in each test's *state */
static PGconn *pg_connect(void **state)
{
    PGconn *c = PQconnectdb(tether_var(tether_get(*state, "postgresql"), "URL"));
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
    PGconn *c = pg_connect(state);
    assert_int_equal(pg_count(c, "orders"), 0);
    PQclear(PQexec(c, "create table orders (id int); insert into orders values (1)"));
    assert_int_equal(pg_count(c, "orders"), 1);
    PQfinish(c);

    redisContext *r = redis_connect(tether_get(*state, "redis"));
    assert_int_equal(redis_dbsize(r), 0);
    freeReplyObject(redisCommand(r, "SET %s %s", "session", "abc"));
    assert_int_equal(redis_dbsize(r), 1);
    redisFree(r);
}

static void test_sees_a_clean_slate(void **state)
{
    PGconn *c = pg_connect(state);
    assert_int_equal(pg_count(c, "orders"), 0);
    PQfinish(c);
    redisContext *r = redis_connect(tether_get(*state, "redis"));
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
    /* not the group's (tether_group(): its services, from anywhere): one of its own */
    tether_service *group_redis = tether_get(tether_group(), "redis");
    assert_string_not_equal(tether_var(mine, "SOCKET"), tether_var(group_redis, "SOCKET"));
    redisContext *r = redis_connect(mine);
    assert_int_equal(redis_dbsize(r), 0);
    freeReplyObject(redisCommand(r, "SET %s %s", "k", "v"));
    redisFree(r);
}

int main(void)
{
    /* after eval "$(tether start postgresql redis)" the tests use those (fast reruns:
     * TETHER_USE_EXISTING); otherwise they get private ones */
    tether_group_config(NULL, "postgresql redis", TETHER_USE_EXISTING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_writes, tether_group_reset),
        cmocka_unit_test_setup(test_sees_a_clean_slate, tether_group_reset),
        cmocka_unit_test_setup_teardown(test_own_redis, own_setup, own_teardown),
    };
    return cmocka_run_group_tests_name("tether example", tests, tether_group_setup,
                                       tether_group_teardown);
}
