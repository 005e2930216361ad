/* Unit tests for pg_url() (lib/drivers/postgresql.c): the URL forms that
 * libpq, psycopg2, psycopg 3, SQLAlchemy and asyncpg all accept.  The
 * clients themselves are run by tests/python/test_clients.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drivers/pg.h"

static void check(const char *user, const char *password, const char *host, const char *port,
                  const char *db, const char *want)
{
    strbuf b = {0};
    pg_url(&b, user, password, host, port, db);
    assert_string_equal(b.s, want);
    sb_free(&b);
}

/* A socket directory goes in the query: SQLAlchemy would resolve it as a
 * host name in the authority. */
static void test_socket_directory_in_query(void **state)
{
    (void)state;
    check("postgres", NULL, "/dev/shm/tether-0/1f2e/postgresql", "5432", "tether",
          "postgresql://postgres@/tether?host=/dev/shm/tether-0/1f2e/postgresql&port=5432");
}

/* '+' would be a space to Python's query parsers; '&', '%', '#' and ' '
 * would end or change the value. */
static void test_socket_directory_encoded(void **state)
{
    (void)state;
    check("postgres", NULL, "/tmp/a b+c&d%e#f", "5432", "tether",
          "postgresql://postgres@/tether?host=/tmp/a%20b%2Bc%26d%25e%23f&port=5432");
}

static void test_tcp_with_password(void **state)
{
    (void)state;
    check("postgres", "0123abcd", "127.0.0.1", "25137", "tether",
          "postgresql://postgres:0123abcd@127.0.0.1:25137/tether");
    check("me@x", "p:w/d", "db.example", "5433", "my db",
          "postgresql://me%40x:p%3Aw%2Fd@db.example:5433/my%20db");
}

static void test_ipv6_bracketed(void **state)
{
    (void)state;
    check("u", NULL, "::1", "5432", "d", "postgresql://u@[::1]:5432/d");
}

/* server = URL with no host (libpq's default socket), several hosts, or an
 * abstract socket: all in the query. */
static void test_other_hosts_in_query(void **state)
{
    (void)state;
    check("", NULL, "", "5432", "d", "postgresql:///d?port=5432");
    check("u", NULL, "h1,h2", "5432,5433", "d", "postgresql://u@/d?host=h1,h2&port=5432,5433");
    check("u", NULL, "@abstract", "5432", "d", "postgresql://u@/d?host=%40abstract&port=5432");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_directory_in_query),
        cmocka_unit_test(test_socket_directory_encoded),
        cmocka_unit_test(test_tcp_with_password),
        cmocka_unit_test(test_ipv6_bracketed),
        cmocka_unit_test(test_other_hosts_in_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
