/* libFuzzer target: the sh output of `tether start` (out_assign, OUT_SH).
 *
 * The input is split at NUL bytes into values (any bytes but NUL, up to
 * 16 of them), assigned to V0, V1, ...  The output must be, for each
 * value, exactly
 *     V<i>=WORD; export V<i>;\n
 * where WORD, read by a strict, independent sh lexer, contains nothing
 * outside single quotes but \' -- no unquoted metacharacter, blank,
 * newline, $, `, \ escape of anything else -- and reads back as the value
 * byte for byte.  unquote_sh() (which reads CONFIGFILEs back) must agree.
 * tests/fuzz/eval-shells.py replays the corpus through real dash, bash and
 * bash --posix `eval` to check the same against the shells themselves. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "quote.h"

#define MAX_VALUES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *out)
{
    fprintf(stderr, "fuzz_eval_sh: %s\noutput:\n%s\n", what, out ? out : "");
    abort();
}

/* Strict lexer: WORD at *p up to the ';' that ends it.  Returns false if
 * anything but '...' and \' appears, or the word does not end in ';'. */
static bool strict_word(const char **p, strbuf *val)
{
    const char *s = *p;
    for (;;) {
        if (*s == '\'') {
            const char *end = strchr(s + 1, '\'');
            if (!end)
                return false;
            sb_addn(val, s + 1, (size_t)(end - s - 1));
            s = end + 1;
        } else if (s[0] == '\\' && s[1] == '\'') {
            sb_addc(val, '\'');
            s += 2;
        } else if (*s == ';') {
            *p = s;
            return true;
        } else {
            return false; /* an unquoted byte: could be code */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    struct var vars[MAX_VALUES];
    char names[MAX_VALUES][8];
    size_t n = 0;
    for (size_t off = 0; n < MAX_VALUES;) {
        snprintf(names[n], sizeof(names[n]), "V%zu", n);
        vars[n].name = names[n];
        vars[n].value = copy + off;
        off += strlen(copy + off) + 1;
        n++;
        if (off > size)
            break;
    }

    strbuf out = {0};
    out_assign(&out, OUT_SH, vars, n);
    const char *p = out.s;
    for (size_t i = 0; i < n; i++) {
        char head[16];
        size_t hn = (size_t)snprintf(head, sizeof(head), "%s=", vars[i].name);
        if (strncmp(p, head, hn) != 0)
            fail("an assignment does not start with NAME=", out.s);
        p += hn;

        strbuf v1 = {0};
        const char *q = p;
        if (!strict_word(&q, &v1))
            fail("unquoted bytes in a value", out.s);
        if (strlen(v1.s ? v1.s : "") != strlen(vars[i].value) ||
            strcmp(v1.s ? v1.s : "", vars[i].value) != 0)
            fail("the value does not read back byte for byte", out.s);

        strbuf v2 = {0};
        const char *u = p;
        if (unquote_sh(&u, &v2) < 0 || u != q || strcmp(v2.s ? v2.s : "", vars[i].value) != 0)
            fail("unquote_sh disagrees with the sh lexer", out.s);
        sb_free(&v1);
        sb_free(&v2);

        char tail[32];
        size_t tn = (size_t)snprintf(tail, sizeof(tail), "; export %s;\n", vars[i].name);
        if (strncmp(q, tail, tn) != 0)
            fail("an assignment does not end in '; export NAME;'", out.s);
        p = q + tn;
    }
    if (*p)
        fail("trailing output", out.s);
    sb_free(&out);
    free(copy);
    return 0;
}
