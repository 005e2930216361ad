/* ${name} templates and shell-like word splitting.  Both are deliberately
 * tiny: no recursion, no expansion inside values, no operators, so a config
 * value can never turn into code or loop forever. */
#include "template.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

/* ${NAME|url}: the value percent-encoded for a URL's user, password or
 * query (a password with an @, a socket path as a host: %2Ftmp%2F...);
 * ${NAME|urlpath} keeps the '/'s, for a path (unix:///tmp/x%20y/s.sock). */
enum filter { FILTER_NONE, FILTER_URL, FILTER_URLPATH };

/* q points at the '|' after a name: read the filter and the closing '}'. */
static int parse_filter(const char *q, int n, const char *s, enum filter *f, const char **next,
                        terr *e)
{
    const char *fs = q + 1, *fq = fs;
    while (*fq >= 'a' && *fq <= 'z')
        fq++;
    int fn = (int)(fq - fs);
    if (*fq != '}')
        return terr_set(e, EINVAL, "unterminated ${%.*s|%.*s: a filter is a lower-case word, "
                        "then }", n, s, fn, fs);
    if (fn == 3 && strncmp(fs, "url", 3) == 0)
        *f = FILTER_URL;
    else if (fn == 7 && strncmp(fs, "urlpath", 7) == 0)
        *f = FILTER_URLPATH;
    else
        return terr_set(e, EINVAL, "unknown filter |%.*s in ${%.*s|%.*s}: the filters are "
                        "|url and |urlpath (percent-encoding, the second keeping '/')",
                        fn, fs, n, s, fn, fs);
    *next = fq + 1;
    return 0;
}

/* p points at "${".  On success, the name is [*name, *name + *len), *f its
 * filter and *next points past the closing '}'. */
static int parse_ref(const char *p, const char **name, size_t *len, enum filter *f,
                     const char **next, terr *e)
{
    const char *s = p + 2, *q = s;
    while (is_name_char(*q))
        q++;
    int n = (int)(q - s);
    *f = FILTER_NONE;
    if ((*q == '}' || *q == '|') && n > 0) {
        *name = s;
        *len = (size_t)n;
        *next = q + 1;
        return *q == '|' ? parse_filter(q, n, s, f, next, e) : 0;
    }
    if (*q == '}')
        return terr_set(e, EINVAL,
                        "empty variable name ${}: write ${name}, or $$ for a literal $");
    if (*q == '\0')
        return terr_set(e, EINVAL,
                        "unterminated ${%.*s: close it with }, or write $$ for a literal $", n, s);
    if ((unsigned char)*q >= ' ' && (unsigned char)*q < 0x7f)
        return terr_set(e, EINVAL,
                        "invalid character '%c' in ${%.*s...}: names use letters, digits, "
                        "'_', '.' and '-'; write $$ for a literal $",
                        *q, n, s);
    return terr_set(e, EINVAL,
                    "invalid character 0x%02x in ${%.*s...}: names use letters, digits, "
                    "'_', '.' and '-'; write $$ for a literal $",
                    (unsigned char)*q, n, s);
}

/* Walk `in`, calling text() for literal runs and var() for each ${name}. */
struct walker {
    void (*text)(void *ud, const char *s, size_t n);
    int (*var)(void *ud, const char *name, enum filter f, terr *e);
    int (*check)(void *ud, const char *name, terr *e); /* tmpl_foreach's fn */
    void *ud;
};

static int walk(const char *in, const struct walker *w, terr *e)
{
    const char *p = in;
    while (*p) {
        const char *d = strchr(p, '$');
        if (!d) {
            if (w->text)
                w->text(w->ud, p, strlen(p));
            break;
        }
        if (w->text && d > p)
            w->text(w->ud, p, (size_t)(d - p));
        if (d[1] == '$') {
            if (w->text)
                w->text(w->ud, "$", 1);
            p = d + 2;
        } else if (d[1] == '{') {
            const char *name = NULL, *next = NULL;
            size_t len = 0;
            enum filter f;
            int r = parse_ref(d, &name, &len, &f, &next, e);
            if (r < 0)
                return r;
            _cleanup_free_ char *nm = xstrndup(name, len);
            r = w->var ? w->var(w->ud, nm, f, e) : w->check(w->ud, nm, e);
            if (r != 0)
                return r;
            p = next;
        } else {
            /* a lone `$` (e.g. a regex anchor) is kept as written */
            if (w->text)
                w->text(w->ud, "$", 1);
            p = d + 1;
        }
    }
    return 0;
}

struct expand_ctx {
    strbuf out;
    tmpl_lookup_fn lookup;
    void *ud;
};

static void expand_text(void *ud, const char *s, size_t n)
{
    struct expand_ctx *x = ud;
    sb_addn(&x->out, s, n);
}

static int expand_var(void *ud, const char *name, enum filter f, terr *e)
{
    struct expand_ctx *x = ud;
    const char *v = NULL;
    int r = x->lookup(x->ud, name, &v);
    if (r == -ENOENT || (r == 0 && !v))
        return terr_set(e, EINVAL, "unknown variable ${%s}", name);
    if (r < 0)
        return terr_set(e, r, "cannot expand ${%s}: %s", name, strerror(-r));
    /* appended as is: a value is never expanded again */
    if (f != FILTER_NONE)
        url_encode(&x->out, v, f == FILTER_URLPATH ? "/" : "");
    else
        sb_add(&x->out, v);
    return 0;
}

int tmpl_expand(const char *in, tmpl_lookup_fn lookup, void *ud, char **out, terr *e)
{
    struct expand_ctx x = {.lookup = lookup, .ud = ud};
    struct walker w = {.text = expand_text, .var = expand_var, .ud = &x};
    int r = walk(in, &w, e);
    if (r < 0) {
        sb_free(&x.out);
        return r;
    }
    *out = sb_steal(&x.out);
    return 0;
}

int tmpl_foreach(const char *in, int (*fn)(void *ud, const char *name, terr *e), void *ud,
                 terr *e)
{
    struct walker w = {.check = fn, .ud = ud};
    return walk(in, &w, e);
}

bool tmpl_is_port_name(const char *name)
{
    if (strncmp(name, "port_", 5) != 0 || !name[5])
        return false;
    for (const char *p = name + 5; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

int split_words(const char *in, strv *out, terr *e)
{
    _cleanup_sb_ strbuf w = {0};
    _cleanup_strv_ strv words = {0};
    bool in_word = false; /* set by any quote too, so '' is an empty word */
    const char *p = in;
    while (*p) {
        char ch = *p;
        if (is_blank(ch)) {
            if (in_word) {
                strv_push_own(&words, sb_steal(&w));
                in_word = false;
            }
            p++;
        } else if (ch == '\\') {
            if (p[1] == '\n') { /* line continuation: vanishes */
                p += 2;
            } else if (p[1] == '\0') { /* nothing to escape: keep it */
                sb_addc(&w, '\\');
                in_word = true;
                p++;
            } else {
                sb_addc(&w, p[1]);
                in_word = true;
                p += 2;
            }
        } else if (ch == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end)
                return terr_set(e, EINVAL,
                                "unterminated ' quote in: %s: add the closing ' (write '\\'' "
                                "for a quote inside quotes)",
                                in);
            sb_addn(&w, p + 1, (size_t)(end - p - 1));
            in_word = true;
            p = end + 1;
        } else if (ch == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    return terr_set(e, EINVAL,
                                    "unterminated \" quote in: %s: add the closing \" (write "
                                    "\\\" for a quote inside quotes)",
                                    in);
                if (*p == '"')
                    break;
                if (*p == '\\' && p[1] == '\n') {
                    p += 2;
                } else if (*p == '\\' && p[1] && strchr("\"\\$`", p[1])) {
                    sb_addc(&w, p[1]);
                    p += 2;
                } else {
                    sb_addc(&w, *p++);
                }
            }
            in_word = true;
            p++;
        } else {
            sb_addc(&w, ch);
            in_word = true;
            p++;
        }
    }
    if (in_word)
        strv_push_own(&words, sb_steal(&w));
    /* only now touch out, so that it is unchanged on error */
    for (size_t i = 0; i < words.n; i++)
        strv_push_own(out, take_ptr(&words.v[i]));
    words.n = 0;
    return 0;
}
