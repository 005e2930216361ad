/* Unit tests for the protocol checks in the config (lib/config.c with
 * lib/proto.c): ready = send:/http:, health =, reset = send:..., their
 * defaults, and their errors with FILE:LINE. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "drivers/driver.h"
#include "proto.h"

static struct tether_config *load_ok(const char *data)
{
    terr e = {{0}};
    struct tether_config *c = NULL;
    if (config_parse("t.ini", data, strlen(data), &c, &e) != 0)
        fail_msg("loading:\n%s\nfailed: %s", data, e.msg);
    return c;
}

static void check_err(const char *data, const char *want)
{
    terr e = {{0}};
    struct tether_config *c = NULL;
    assert_int_equal(config_parse("t.ini", data, strlen(data), &c, &e), -EINVAL);
    assert_null(c);
    if (!streq(e.msg, want))
        fail_msg("for:\n%s\ngot:  %s\nwant: %s", data, e.msg, want);
}

static void test_ready_expect(void **state)
{
    struct tether_config *c = load_ok("[r]\ncommand = redis-server --unixsocket ${socket}\n"
                                      "socket = auto\nready = send:PING expect:+PONG\n");
    struct svc_conf *s = c->svcs[0];
    assert_int_equal(s->ready, READY_EXPECT);
    assert_non_null(s->ready_proto);
    assert_int_equal(s->ready_proto->n_steps, 2);
    assert_string_equal(s->ready_proto->text, "send:PING expect:+PONG");
    assert_int_equal(s->ready_line, 4);
    /* no health = and no driver check: the ready check is the health check */
    assert_ptr_equal(s->health, s->ready_proto);
    assert_null(s->reset_proto);
    config_free(c);
}

static void test_ready_http_health_reset(void **state)
{
    struct tether_config *c = load_ok(
        "[w]\ncommand = python3 -m http.server ${port}\nport = auto\nready = http:/\n"
        "health = http:/healthz\nreset = to:tcp:${port} send:FLUSHALL expect:+OK\n"
        "[x]\ncommand = y\nport = auto\nready = http:/\nhealth = none\n");
    struct svc_conf *w = c->svcs[0], *x = c->svcs[1];
    assert_int_equal(w->ready, READY_HTTP);
    assert_true(proto_is_http(w->ready_proto));
    assert_non_null(w->health);
    assert_ptr_not_equal(w->health, w->ready_proto);
    assert_string_equal(w->health->http_path, "/healthz");
    assert_non_null(w->reset_proto);
    assert_null(w->reset);
    assert_false(w->reset_restart);
    assert_int_equal(w->reset_line, 6);
    assert_int_equal(x->ready, READY_HTTP);
    assert_null(x->health); /* health = none */
    config_free(c);

    /* a driver with a health check of its own keeps it */
    c = load_ok("[redis]\nready = send:PING expect:+PONG\n");
    assert_int_equal(c->svcs[0]->ready, READY_EXPECT);
    assert_null(c->svcs[0]->health);
    config_free(c);

    /* an ordinary reset command is not taken for a check */
    c = load_ok("[a]\ncommand = x\nreset = ./send:x\n");
    assert_null(c->svcs[0]->reset_proto);
    assert_string_equal(c->svcs[0]->reset, "./send:x");
    config_free(c);
}

static void test_errors(void **state)
{
    check_err("[a]\ncommand = x\nport = auto\nready = send:PING expext:+PONG\n",
              "t.ini:4: [a] ready = send:PING expext:+PONG: 'expext:+PONG' is not a word of "
              "this check: use send:TEXT, raw:TEXT, expect:TEXT, http:/PATH, to:unix:PATH or "
              "to:tcp:PORT, and quote text with spaces (\"send:SCRIPT FLUSH\")");
    check_err("[a]\ncommand = x\nport = auto\nreset = \"send:SCRIPT FLUSH expect:+OK\n",
              "t.ini:4: [a] reset = \"send:SCRIPT FLUSH expect:+OK: unterminated \" quote: close "
              "it with \"");
    check_err("[a]\ncommand = x\nport = auto\nhealth = send:PING\\q\n",
              "t.ini:4: [a] health = send:PING\\q: send:PING\\q: unknown escape \\q: use \\r \\n "
              "\\t \\\\ \\\" \\' or \\xHH");
    check_err("[a]\ncommand = x\nport = auto\nhealth = tcp\n",
              "t.ini:4: [a] health = tcp: use send:TEXT expect:TEXT (a line protocol), "
              "http:/PATH (a GET that must answer 2xx) or none");
    /* nothing to talk to */
    check_err("[a]\ncommand = x\nready = http:/\n",
              "t.ini:3: [a] ready = http:/: the service has neither a socket nor a port to talk "
              "to: add socket = auto or port = auto, or say where with to:unix:PATH or "
              "to:tcp:PORT");
    /* templates are checked like any other */
    check_err("[a]\ncommand = x\nport = auto\nready = send:'AUTH ${pasword}' expect:+OK\n",
              "t.ini:4: [a] unknown variable ${pasword} in ready (known: dir, instance, label, "
              "config_dir, port)");
    check_err("[a]\ncommand = x\nport = auto\nreset = to:tcp:${prot} send:X\n",
              "t.ini:4: [a] unknown variable ${prot} in reset (known: dir, instance, label, "
              "config_dir, port); did you mean ${port}?");
    check_err("[a]\ncommand = x\nhealth = to:unix:${sockt} send:X expect:Y\n",
              "t.ini:3: [a] unknown variable ${sockt} in health (known: dir, instance, label, "
              "config_dir)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_expect),
        cmocka_unit_test(test_ready_http_health_reset),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
