/* Unit tests for lib/quote.c.  The shells themselves are exercised by
 * tests/cli/quoting.bats; here we pin the exact output and the sh round
 * trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quote.h"

typedef void (*quote_fn)(strbuf *, const char *);

static void check_quote(quote_fn fn, const char *in, const char *want)
{
    strbuf b = {0};
    fn(&b, in);
    assert_non_null(b.s);
    assert_string_equal(b.s, want);
    sb_free(&b);
}

/* Appends to what is already in the buffer. */
static void test_quote_appends(void **state)
{
    strbuf b = {0};
    sb_add(&b, "X=");
    quote_sh(&b, "a");
    assert_string_equal(b.s, "X='a'");
    sb_free(&b);
}

static void test_quote_sh(void **state)
{
    check_quote(quote_sh, "", "''");
    check_quote(quote_sh, "abc", "'abc'");
    check_quote(quote_sh, "'", "''\\'''");
    check_quote(quote_sh, "''", "''\\'''\\'''");
    check_quote(quote_sh, "it's", "'it'\\''s'");
    check_quote(quote_sh, "a\nb", "'a\nb'");
    check_quote(quote_sh, "$(touch x) `y` \"z\" \\ ! * ~ ; |",
                "'$(touch x) `y` \"z\" \\ ! * ~ ; |'");
    check_quote(quote_sh, "\x01\x7f\x80\xff", "'\x01\x7f\x80\xff'");
}

static void test_quote_csh(void **state)
{
    check_quote(quote_csh, "", "''");
    check_quote(quote_csh, "abc", "'abc'");
    check_quote(quote_csh, "'", "\\'");
    check_quote(quote_csh, "''", "\\'\\'");
    check_quote(quote_csh, "it's", "'it'\\''s'");
    check_quote(quote_csh, "a!b", "'a'\\!'b'");
    check_quote(quote_csh, "!", "\\!");
    check_quote(quote_csh, "a\\b", "'a'\\\\'b'");
    check_quote(quote_csh, "a\nb", "'a'$'\\n''b'");
    check_quote(quote_csh, "a\n", "'a'$'\\n'");
    check_quote(quote_csh, "\n\n", "$'\\n\\n'");
    check_quote(quote_csh, "a{x,y}b", "'a'$'\\173''x,y}b'");
    check_quote(quote_csh, "\\\n!", "\\\\$'\\n'\\!");
    check_quote(quote_csh, "$HOME `id` \"q\" \t\r * ~ ; }",
                "'$HOME `id` \"q\" \t\r * ~ ; }'");
    check_quote(quote_csh, "\x01\x7f\x80\xff", "'\x01\x7f\x80\xff'");
}

static void test_quote_csh_no_newline_or_brace(void **state)
{
    /* A raw newline breaks `eval "`...`"` in tcsh and a raw { lets the
     * unquoted `eval `...`` brace-expand across quotes. */
    strbuf b = {0};
    quote_csh(&b, "\n\na\n\r\nb\n{}{");
    assert_null(strchr(b.s, '\n'));
    assert_null(strchr(b.s, '{'));
    sb_free(&b);
}

static void test_quote_fish(void **state)
{
    check_quote(quote_fish, "", "''");
    check_quote(quote_fish, "abc", "'abc'");
    check_quote(quote_fish, "'", "'\\''");
    check_quote(quote_fish, "a\\b", "'a\\\\b'");
    check_quote(quote_fish, "\\'", "'\\\\\\''");
    check_quote(quote_fish, "$x (y) \"z\"\n", "'$x (y) \"z\"\n'");
    check_quote(quote_fish, "\x80\xff", "'\x80\xff'");
}

static void test_quote_json(void **state)
{
    check_quote(quote_json, "", "\"\"");
    check_quote(quote_json, "abc", "\"abc\"");
    check_quote(quote_json, "\"\\", "\"\\\"\\\\\"");
    check_quote(quote_json, "\n\t\r\b\f", "\"\\n\\t\\r\\b\\f\"");
    check_quote(quote_json, "\x01\x1f", "\"\\u0001\\u001f\"");
    check_quote(quote_json, "\x7f", "\"\x7f\"");
    check_quote(quote_json, "h\xc3\xa9 /'$", "\"h\xc3\xa9 /'$\"");
    check_quote(quote_json, "\x80\xff", "\"\x80\xff\"");
}

static void test_out_assign(void **state)
{
    struct var vars[] = {
        {.name = "A", .value = "x y"},
        {.name = "B_2", .value = "it's"},
    };
    static const struct {
        enum out_fmt fmt;
        const char *want;
    } cases[] = {
        {OUT_SH, "A='x y'; export A;\nB_2='it'\\''s'; export B_2;\n"},
        {OUT_CSH, "setenv A 'x y';\nsetenv B_2 'it'\\''s';\n"},
        {OUT_FISH, "set -gx A 'x y';\nset -gx B_2 'it\\'s';\n"},
        {OUT_JSON, "{\n  \"A\": \"x y\",\n  \"B_2\": \"it's\"\n}\n"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        strbuf b = {0};
        out_assign(&b, cases[i].fmt, vars, ARRAY_SIZE(vars));
        assert_string_equal(b.s, cases[i].want);
        sb_free(&b);
    }
}

static void test_out_assign_one_and_none(void **state)
{
    struct var v = {.name = "X", .value = ""};
    strbuf b = {0};

    out_assign(&b, OUT_JSON, &v, 1);
    assert_string_equal(b.s, "{\n  \"X\": \"\"\n}\n");
    sb_free(&b);

    out_assign(&b, OUT_JSON, NULL, 0);
    assert_string_equal(b.s, "{}\n");
    sb_free(&b);

    enum out_fmt shells[] = {OUT_SH, OUT_CSH, OUT_FISH};
    for (size_t i = 0; i < ARRAY_SIZE(shells); i++) {
        out_assign(&b, shells[i], NULL, 0);
        assert_int_equal(b.len, 0);
        sb_free(&b);
    }

    out_assign(&b, OUT_SH, &v, 1);
    assert_string_equal(b.s, "X=''; export X;\n");
    sb_free(&b);
}

static void test_out_unset(void **state)
{
    const char *const names[] = {"A", "B"};
    static const struct {
        enum out_fmt fmt;
        const char *want;
    } cases[] = {
        {OUT_SH, "unset A;\nunset B;\n"},
        {OUT_CSH, "unsetenv A;\nunsetenv B;\n"},
        {OUT_FISH, "set -e A;\nset -e B;\n"},
        {OUT_JSON, "{\"unset\": [\"A\", \"B\"]}\n"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        strbuf b = {0};
        out_unset(&b, cases[i].fmt, names, ARRAY_SIZE(names));
        assert_string_equal(b.s, cases[i].want);
        sb_free(&b);
    }

    strbuf b = {0};
    out_unset(&b, OUT_JSON, NULL, 0);
    assert_string_equal(b.s, "{\"unset\": []}\n");
    sb_free(&b);
}

/* Parse one word from `in`; check the value and what is left. */
static void check_unquote(const char *in, const char *want, const char *rest)
{
    strbuf out = {0};
    const char *p = in;
    assert_int_equal(unquote_sh(&p, &out), 0);
    assert_string_equal(out.s ? out.s : "", want);
    assert_string_equal(p, rest);
    sb_free(&out);
}

static void check_unquote_bad(const char *in)
{
    strbuf out = {0};
    sb_add(&out, "keep");
    const char *p = in;
    assert_int_equal(unquote_sh(&p, &out), -EINVAL);
    assert_ptr_equal(p, in);
    assert_string_equal(out.s, "keep");
    sb_free(&out);
}

static void test_unquote_sh(void **state)
{
    check_unquote("", "", "");
    check_unquote("''", "", "");
    check_unquote("plain", "plain", "");
    check_unquote("'a b'", "a b", "");
    check_unquote("'it'\\''s'", "it's", "");
    check_unquote("''\\'''", "'", "");
    check_unquote("'a\nb'", "a\nb", "");
    check_unquote("/tmp/x y", "/tmp/x", " y");
    check_unquote("'v'; export X;", "v", "; export X;");
    check_unquote("a\tb", "a", "\tb");
    check_unquote("a\nb", "a", "\nb");
    check_unquote("a|b", "a", "|b");
    check_unquote("pre'mid'\"post\"", "premidpost", "");
    check_unquote("\"a \\\" \\\\ \\$ \\` \\x\"", "a \" \\ $ ` \\x", "");
    check_unquote("\"a\\\nb\"", "ab", "");
    check_unquote("\"$HOME\"", "$HOME", "");
    check_unquote("a\\ b\\'c", "a b'c", "");
    check_unquote("a\\\nb", "ab", "");
    check_unquote("'\x80\xff'", "\x80\xff", "");
    check_unquote(" x", "", " x");
}

static void test_unquote_sh_appends(void **state)
{
    strbuf out = {0};
    sb_add(&out, "pre:");
    const char *p = "'v'";
    assert_int_equal(unquote_sh(&p, &out), 0);
    assert_string_equal(out.s, "pre:v");
    sb_free(&out);
}

static void test_unquote_sh_unterminated(void **state)
{
    check_unquote_bad("'abc");
    check_unquote_bad("'");
    check_unquote_bad("ok'abc");
    check_unquote_bad("\"abc");
    check_unquote_bad("\"abc\\\"");
    check_unquote_bad("'a'\\");
}

/* quote_sh then unquote_sh is the identity, for any bytes but NUL. */
static void test_sh_round_trip(void **state)
{
    static const char alphabet[] = "'\"\\$`!*~;|&<>() \t\n\r#";
    unsigned seed = 12345;
    char in[257];

    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand_r(&seed) % 256);
        for (size_t i = 0; i < n; i++) {
            int r = rand_r(&seed);
            /* Bias towards the characters that matter to a shell. */
            if (r % 3 == 0)
                in[i] = alphabet[(unsigned)(r >> 8) % (sizeof(alphabet) - 1)];
            else
                in[i] = (char)(1 + (unsigned)(r >> 8) % 255);
        }
        in[n] = '\0';

        strbuf q = {0}, out = {0};
        quote_sh(&q, in);
        sb_add(&q, "; rest");
        const char *p = q.s;
        assert_int_equal(unquote_sh(&p, &out), 0);
        assert_int_equal(out.len, n);
        assert_memory_equal(out.s ? out.s : "", in, n);
        assert_string_equal(p, "; rest");
        sb_free(&q);
        sb_free(&out);
    }
}

static void test_valid_var_name(void **state)
{
    assert_true(valid_var_name("A"));
    assert_true(valid_var_name("_"));
    assert_true(valid_var_name("PGHOST"));
    assert_true(valid_var_name("a_1_B"));
    assert_true(valid_var_name("_9"));
    assert_false(valid_var_name(""));
    assert_false(valid_var_name(NULL));
    assert_false(valid_var_name("1A"));
    assert_false(valid_var_name("A-B"));
    assert_false(valid_var_name("A B"));
    assert_false(valid_var_name("A=B"));
    assert_false(valid_var_name("A;"));
    assert_false(valid_var_name("\xc3\xa9"));
    assert_false(valid_var_name("A\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_appends),
        cmocka_unit_test(test_quote_sh),
        cmocka_unit_test(test_quote_csh),
        cmocka_unit_test(test_quote_csh_no_newline_or_brace),
        cmocka_unit_test(test_quote_fish),
        cmocka_unit_test(test_quote_json),
        cmocka_unit_test(test_out_assign),
        cmocka_unit_test(test_out_assign_one_and_none),
        cmocka_unit_test(test_out_unset),
        cmocka_unit_test(test_unquote_sh),
        cmocka_unit_test(test_unquote_sh_appends),
        cmocka_unit_test(test_unquote_sh_unterminated),
        cmocka_unit_test(test_sh_round_trip),
        cmocka_unit_test(test_valid_var_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
