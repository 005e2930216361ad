/* Unit tests for lib/template.c: ${name} expansion and word splitting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "template.h"

static int lookup(void *ud, const char *name, const char **value)
{
    static const char *const vars[][2] = {
        {"port", "5432"},
        {"dir", "/tmp/x y"},
        {"db.URL", "postgres://h/${port}"}, /* must not be re-expanded */
        {"a-b_c.D", "ok"},
        {"empty", ""},
    };
    (void)ud;
    for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
        if (streq(vars[i][0], name)) {
            *value = vars[i][1];
            return 0;
        }
    return -ENOENT;
}

static void expand_ok(const char *in, const char *want)
{
    terr e = {{0}};
    char *out = NULL;
    int r = tmpl_expand(in, lookup, NULL, &out, &e);
    if (r != 0)
        fail_msg("expanding '%s': %s", in, e.msg);
    assert_string_equal(out, want);
    free(out);
}

static void expand_err(const char *in, const char *want_msg)
{
    terr e = {{0}};
    char *out = NULL;
    assert_int_equal(tmpl_expand(in, lookup, NULL, &out, &e), -EINVAL);
    assert_null(out);
    assert_string_equal(e.msg, want_msg);
}

/* ${name|url} and ${name|urlpath}: the value percent-encoded, the second
 * keeping '/'; a filter on an unknown name is still an unknown name. */
static void test_filters(void **state)
{
    (void)state;
    expand_ok("${dir|url}", "%2Ftmp%2Fx%20y");
    expand_ok("unix://${dir|urlpath}", "unix:///tmp/x%20y");
    expand_ok("${a-b_c.D|url}", "ok");
    expand_ok("${db.URL|url}", "postgres%3A%2F%2Fh%2F%24%7Bport%7D");
    expand_ok("${empty|url}", "");
    expand_err("${dir|sh}", "unknown filter |sh in ${dir|sh}: the filters are |url and |urlpath "
                            "(percent-encoding, the second keeping '/')");
    expand_err("${dir|}", "unknown filter | in ${dir|}: the filters are |url and |urlpath "
                          "(percent-encoding, the second keeping '/')");
    expand_err("${dir|url", "unterminated ${dir|url: a filter is a lower-case word, then }");
    expand_err("${dir|URL}", "unterminated ${dir|: a filter is a lower-case word, then }");
    expand_err("${nope|url}", "unknown variable ${nope}");
}

static void test_expand(void **state)
{
    (void)state;
    expand_ok("", "");
    expand_ok("plain text", "plain text");
    expand_ok("${port}", "5432");
    expand_ok("-p ${port} -D ${dir}", "-p 5432 -D /tmp/x y");
    expand_ok("${port}${port}", "54325432");
    expand_ok("${a-b_c.D}", "ok");
    expand_ok("[${empty}]", "[]");
    /* values are inserted as they are, never expanded again */
    expand_ok("${db.URL}", "postgres://h/${port}");
}

static void test_dollar(void **state)
{
    (void)state;
    expand_ok("$$", "$");
    expand_ok("$${port}", "${port}");
    expand_ok("$$$${port}", "$${port}");
    expand_ok("$$${port}", "$5432");
    expand_ok("cost $5", "cost $5");
    expand_ok("^ready$", "^ready$");
    expand_ok("$", "$");
    expand_ok("a$ b", "a$ b");
    expand_ok("$(x)", "$(x)");
    expand_ok("$port", "$port");
}

static void test_expand_errors(void **state)
{
    (void)state;
    expand_err("${nope}", "unknown variable ${nope}");
    expand_err("x ${port} ${Port}", "unknown variable ${Port}");
    expand_err("${}", "empty variable name ${}: write ${name}, or $$ for a literal $");
    expand_err("${port", "unterminated ${port: close it with }, or write $$ for a literal $");
    expand_err("${", "unterminated ${: close it with }, or write $$ for a literal $");
    expand_err("${po rt}",
               "invalid character ' ' in ${po...}: names use letters, digits, '_', '.' and '-'; "
               "write $$ for a literal $");
    expand_err("${a:-b}", "invalid character ':' in ${a...}: names use letters, digits, '_', "
                          "'.' and '-'; write $$ for a literal $");
    expand_err("${a${b}}", "invalid character '$' in ${a...}: names use letters, digits, '_', "
                           "'.' and '-'; write $$ for a literal $");
    expand_err("${\x01}", "invalid character 0x01 in ${...}: names use letters, digits, '_', "
                          "'.' and '-'; write $$ for a literal $");
}

struct seen {
    strv names;
    const char *stop_at;
};

static int collect(void *ud, const char *name, terr *e)
{
    struct seen *s = ud;
    strv_push(&s->names, name);
    if (s->stop_at && streq(name, s->stop_at))
        return terr_set(e, ENOENT, "stop at %s", name);
    return 0;
}

static void test_foreach(void **state)
{
    (void)state;
    terr e = {{0}};
    struct seen s = {{0}};
    assert_int_equal(tmpl_foreach("a ${x} $${no} ${y.Z} $ ${x}", collect, &s, &e), 0);
    assert_int_equal(s.names.n, 3);
    assert_string_equal(s.names.v[0], "x");
    assert_string_equal(s.names.v[1], "y.Z");
    assert_string_equal(s.names.v[2], "x");
    strv_free(&s.names);

    /* the callback's error stops the walk and is returned as is */
    s.stop_at = "b";
    assert_int_equal(tmpl_foreach("${a}${b}${c}", collect, &s, &e), -ENOENT);
    assert_string_equal(e.msg, "stop at b");
    assert_int_equal(s.names.n, 2);
    strv_free(&s.names);

    /* syntax errors are found even after valid names */
    s.stop_at = NULL;
    assert_int_equal(tmpl_foreach("${a} ${b", collect, &s, &e), -EINVAL);
    assert_string_equal(e.msg, "unterminated ${b: close it with }, or write $$ for a literal $");
    strv_free(&s.names);
}

static void split_ok(const char *in, size_t n, ...)
{
    terr e = {{0}};
    strv w = {0};
    if (split_words(in, &w, &e) != 0)
        fail_msg("splitting '%s': %s", in, e.msg);
    if (w.n != n) {
        for (size_t i = 0; i < w.n; i++)
            print_message("word %zu: [%s]\n", i, w.v[i]);
        fail_msg("splitting '%s': %zu words, expected %zu", in, w.n, n);
    }
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(w.v[i], va_arg(ap, const char *));
    va_end(ap);
    if (n)
        assert_null(w.v[n]);
    strv_free(&w);
}

static void test_split(void **state)
{
    (void)state;
    split_ok("", 0);
    split_ok("   \t\n ", 0);
    split_ok("a", 1, "a");
    split_ok("  python3 -m  http.server\t${port} \n", 4, "python3", "-m", "http.server",
             "${port}");
    split_ok("sh -c 'rm -rf ${dir}/*'", 3, "sh", "-c", "rm -rf ${dir}/*");
    split_ok("\"a b\" 'c d'", 2, "a b", "c d");
    /* adjacent quoted and plain parts make one word */
    split_ok("\"a\"'b'c", 1, "abc");
    split_ok("x\"y z\"w", 1, "xy zw");
    /* empty quotes give an empty word, even next to others */
    split_ok("''", 1, "");
    split_ok("\"\"", 1, "");
    split_ok("a '' b", 3, "a", "", "b");
    split_ok("a''", 1, "a");
    /* backslash outside quotes escapes anything */
    split_ok("a\\ b", 1, "a b");
    split_ok("\\'x\\\"", 1, "'x\"");
    split_ok("\\\\", 1, "\\");
    split_ok("a\\", 1, "a\\");
    /* backslash-newline vanishes, also inside double quotes */
    split_ok("ab\\\ncd", 1, "abcd");
    split_ok("a \\\n b", 2, "a", "b");
    split_ok("\"a\\\nb\"", 1, "ab");
    /* inside double quotes only \" \\ \$ \` are escapes */
    split_ok("\"\\\" \\\\ \\$ \\` \\n \\a\"", 1, "\" \\ $ ` \\n \\a");
    /* inside single quotes nothing is special */
    split_ok("'\\n \" $x \\'", 1, "\\n \" $x \\");
    /* no operators, globbing or comments: all literal */
    split_ok("a;b | c > d * # e $(f) `g`", 10, "a;b", "|", "c", ">", "d", "*", "#", "e", "$(f)",
             "`g`");
    split_ok("'it'\\''s'", 1, "it's");
}

static void test_split_appends(void **state)
{
    (void)state;
    terr e = {{0}};
    strv w = {0};
    strv_push(&w, "first");
    assert_int_equal(split_words("b c", &w, &e), 0);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.v[0], "first");
    assert_string_equal(w.v[2], "c");
    /* on error, out is left as it was */
    assert_int_equal(split_words("d 'e", &w, &e), -EINVAL);
    assert_int_equal(w.n, 3);
    assert_null(w.v[3]);
    strv_free(&w);
}

static void split_err(const char *in, const char *want_msg)
{
    terr e = {{0}};
    strv w = {0};
    assert_int_equal(split_words(in, &w, &e), -EINVAL);
    assert_int_equal(w.n, 0);
    assert_string_equal(e.msg, want_msg);
    strv_free(&w);
}

static void test_split_errors(void **state)
{
    (void)state;
    split_err("a 'b", "unterminated ' quote in: a 'b: add the closing ' (write '\\'' for a "
                      "quote inside quotes)");
    split_err("\"b", "unterminated \" quote in: \"b: add the closing \" (write \\\" for a quote "
                     "inside quotes)");
    split_err("\"b\\\"", "unterminated \" quote in: \"b\\\": add the closing \" (write \\\" for a "
                         "quote inside quotes)");
    split_err("'", "unterminated ' quote in: ': add the closing ' (write '\\'' for a quote "
                   "inside quotes)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),        cmocka_unit_test(test_dollar),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_expand_errors), cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_split),         cmocka_unit_test(test_split_appends),
        cmocka_unit_test(test_split_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
