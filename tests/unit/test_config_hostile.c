/* Hostile configs (issue 5, part 3): huge values, NUL bytes, invalid
 * UTF-8, deep ${} nesting, dependency cycles, too many services.  Each
 * gets a one-line "FILE:LINE: ..." error or loads, quickly, without a
 * crash; the parse goes through config_parse() (from memory) and, for the
 * size limit, config_load(). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "template.h"

#define NAME "h.ini"

static struct tether_config *parse_ok(const char *data, size_t len)
{
    terr e = {{0}};
    struct tether_config *c = NULL;
    if (config_parse(NAME, data, len, &c, &e) != 0)
        fail_msg("parse failed: %s", e.msg);
    assert_non_null(c);
    return c;
}

/* Every line of the error (one per error of the file) must start with
 * "h.ini:", and one of them contain `want`. */
static void parse_err(const char *data, size_t len, const char *want)
{
    terr e = {{0}};
    struct tether_config *c = NULL;
    int r = config_parse(NAME, data, len, &c, &e);
    if (r >= 0)
        fail_msg("parse succeeded, expected an error with: %s", want);
    assert_null(c);
    bool ok = strstr(e.msg, want) != NULL;
    for (const char *l = e.msg; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        ok &= strncmp(l, NAME ":", strlen(NAME) + 1) == 0;
    if (!ok)
        fail_msg("got:  %s\nwant: %s: ...%s...", e.msg, NAME, want);
}

static void parse_err_s(const char *data, const char *want) { parse_err(data, strlen(data), want); }

static double elapsed(long long t0) { return (double)(now_ns() - t0) / 1e9; }

static void test_huge_value(void **state)
{
    (void)state;
    /* 1 MB in one value, by continuation lines: linear, not quadratic */
    strbuf b = {0};
    sb_add(&b, "[a]\ncommand = echo\n");
    for (int i = 0; i < 7000; i++) {
        sb_add(&b, "  ");
        for (int k = 0; k < 150; k++)
            sb_addc(&b, (char)('a' + (i + k) % 26));
        sb_addc(&b, '\n');
    }
    long long t0 = now_ns();
    struct tether_config *c = parse_ok(b.s, b.len);
    double t = elapsed(t0);
    size_t len = strlen(c->svcs[0]->command);
    /* freed before the checks, which leave by longjmp on a failure */
    config_free(c);
    sb_free(&b);
    assert_int_equal(len, 4 + 7000 * 151);
    if (t > 5.0)
        fail_msg("a 1 MB value took %.1f s to parse", t);
}

static void test_long_line(void **state)
{
    (void)state;
    strbuf b = {0};
    sb_add(&b, "[a]\ncommand = echo ");
    for (int i = 0; i < 100000; i++)
        sb_addc(&b, 'x');
    sb_addc(&b, '\n');
    parse_err(b.s, b.len, ":2: line is longer than");
    sb_free(&b);
}

static void test_too_big_file(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/hostile.XXXXXX", base && *base ? base : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char buf[65536];
    memset(buf, ';', sizeof(buf));
    for (int i = 0; i < 80; i++) /* 5 MB of comment */
        assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
    close(fd);
    terr e = {{0}};
    struct tether_config *c = NULL;
    assert_int_equal(config_load(path, &c, &e), -EFBIG);
    assert_null(c);
    assert_non_null(strstr(e.msg, "more than 4 MB"));
    unlink(path);

    /* an endless file is cut off too */
    assert_int_equal(config_load("/dev/zero", &c, &e), -EFBIG);
    assert_null(c);
}

static void test_nul(void **state)
{
    (void)state;
    static const char a[] = "[a]\ncommand = echo a\0b\n";
    parse_err(a, sizeof(a) - 1, ":2: contains a NUL byte");
    static const char b[] = "[a]\ncommand = x\n\0";
    parse_err(b, sizeof(b) - 1, ":3: contains a NUL byte");
    static const char c[] = "\0";
    parse_err(c, 1, ":1: contains a NUL byte");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    /* in a value: kept byte for byte (values are bytes, not text) */
    static const char v[] = "[a]\ncommand = echo \xff\xfe \xc3\x28 \xed\xa0\x80\n"
                            "export.X = \x80${port}\xc0\n"
                            "port = auto\n";
    struct tether_config *c = parse_ok(v, sizeof(v) - 1);
    assert_string_equal(c->svcs[0]->command, "echo \xff\xfe \xc3\x28 \xed\xa0\x80");
    assert_string_equal(c->svcs[0]->exports[0].value, "\x80${port}\xc0");
    config_free(c);
    /* in a name: refused */
    parse_err_s("[\xc3\xa9t\xe9]\ncommand = x\n", ":1: invalid section name");
    parse_err_s("[a]\ncommand = x\nexport.\xff = 1\n",
                ":3: [a] export.\xff: the name after 'export.' must use only");
    parse_err_s("[a]\ncommand = x ${d\xffir}\n", ":2: [a] command: invalid character 0xff");
    /* a BOM is fine, a broken one is a syntax error */
    c = parse_ok("\xef\xbb\xbf[a]\ncommand = x\n", 19);
    config_free(c);
    parse_err_s("\xef\xbb[a]\ncommand = x\n", ":1: expected key = value");
}

static void test_nesting(void **state)
{
    (void)state;
    parse_err_s("[a]\ncommand = echo ${${dir}}\n", ":2: [a] command: invalid character '$'");
    parse_err_s("[a]\ncommand = echo ${dir\n", ":2: [a] command: unterminated ${dir");
    parse_err_s("[a]\ncommand = echo ${}\n", ":2: [a] command: empty variable name");
    /* quotes are removed before expansion, as when the service starts */
    parse_err_s("[a]\ncommand = echo $'{'nope}\n", ":2: [a] unknown variable ${nope}");
    parse_err_s("[a]\ncommand = echo $'{}'\n", ":2: [a] command: empty variable name");
    parse_err_s("[a]\ncommand = x\nreset = echo \"$\"{nope}\n",
                ":3: [a] unknown variable ${nope} in reset");

    /* 60000 levels, by continuation lines: an error, no stack overflow */
    strbuf b = {0};
    sb_add(&b, "[a]\ncommand = echo\n");
    for (int i = 0; i < 1000; i++) {
        sb_add(&b, "  ");
        for (int k = 0; k < 60; k++)
            sb_add(&b, "${");
        sb_addc(&b, '\n');
    }
    parse_err(b.s, b.len, ":2: [a] command: invalid character '$' in ${...}");
    sb_free(&b);

    /* and through tmpl_expand itself, without the line limit */
    strbuf t = {0};
    for (int i = 0; i < 100000; i++)
        sb_add(&t, "${");
    sb_add(&t, "dir");
    for (int i = 0; i < 100000; i++)
        sb_addc(&t, '}');
    char *out = NULL;
    terr e = {{0}};
    assert_int_equal(tmpl_expand(t.s, NULL, NULL, &out, &e), -EINVAL);
    assert_null(out);
    assert_non_null(strstr(e.msg, "invalid character '$'"));
    sb_free(&t);
}

static void test_cycles(void **state)
{
    (void)state;
    parse_err_s("[a]\ncommand = x\nafter = a\n", "dependency cycle: a -> a");
    parse_err_s("[a]\ncommand = x\nafter = b\n[b]\ncommand = y\nafter = a\n",
                "dependency cycle: a -> b -> a");
    /* the longest possible: 64 services in a ring, named in the error */
    strbuf b = {0};
    for (int i = 0; i < 64; i++)
        sb_addf(&b, "[s%d]\ncommand = x\nafter = s%d\n", i, (i + 1) % 64);
    long long t0 = now_ns();
    parse_err(b.s, b.len, "dependency cycle: s0 -> s1 -> s2");
    assert_true(elapsed(t0) < 2.0);
    sb_free(&b);
}

static void test_too_many_services(void **state)
{
    (void)state;
    strbuf b = {0};
    sb_add(&b, "[tether]\nprefix = X\n");
    for (int i = 0; i < 64; i++)
        sb_addf(&b, "[s%d]\ncommand = x\n%s%d\n", i, i + 1 < 64 ? "after = s" : "; ", i + 1);
    struct tether_config *c = parse_ok(b.s, b.len); /* 64: fine */
    assert_int_equal(c->n_svcs, 64);
    config_free(c);
    /* thousands (a chain took 38 s for 3000) */
    for (int i = 64; i < 5000; i++)
        sb_addf(&b, "[s%d]\ncommand = x\nafter = s%d\n", i, i + 1);
    long long t0 = now_ns();
    parse_err(b.s, b.len, ":195: more than 64 services in one config");
    assert_true(elapsed(t0) < 2.0);
    sb_free(&b);
}

static void test_garbage(void **state)
{
    (void)state;
    /* all 256 byte values, as one file: an error, not a crash */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)(255 - i);
    parse_err(all, sizeof(all), NAME ":");
    parse_err_s("", "no services defined");
    parse_err_s("\n\n\n", "no services defined");
    parse_err_s("[tether]\n", "no services defined");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_value),   cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_too_big_file), cmocka_unit_test(test_nul),
        cmocka_unit_test(test_invalid_utf8), cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_cycles),       cmocka_unit_test(test_too_many_services),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
