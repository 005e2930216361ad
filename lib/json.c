/* See json.h. */
#include <errno.h>
#include <string.h>

#include "json.h"

struct jp {
    const char *s, *end;
    const char *start;
    terr *e;
};

static int bad(struct jp *p, const char *what)
{
    return terr_set(p->e, EINVAL, "invalid JSON from tether start at byte %zu: %s",
                    (size_t)(p->s - p->start), what);
}

static void skip_ws(struct jp *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int hex4(struct jp *p, unsigned *out)
{
    if (p->end - p->s < 4)
        return bad(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *p->s++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return bad(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

static void put_utf8(strbuf *b, unsigned cp)
{
    if (cp < 0x80) {
        sb_addc(b, (char)cp);
    } else if (cp < 0x800) {
        sb_addc(b, (char)(0xc0 | (cp >> 6)));
        sb_addc(b, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        sb_addc(b, (char)(0xe0 | (cp >> 12)));
        sb_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
        sb_addc(b, (char)(0x80 | (cp & 0x3f)));
    } else {
        sb_addc(b, (char)(0xf0 | (cp >> 18)));
        sb_addc(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
        sb_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
        sb_addc(b, (char)(0x80 | (cp & 0x3f)));
    }
}

/* A string, p->s at its opening quote. */
static int string(struct jp *p, strbuf *out)
{
    if (p->s >= p->end || *p->s != '"')
        return bad(p, "expected a string");
    p->s++;
    for (;;) {
        if (p->s >= p->end)
            return bad(p, "unterminated string");
        unsigned char c = (unsigned char)*p->s;
        if (c == '"') {
            p->s++;
            return 0;
        }
        if (c < 0x20)
            return bad(p, "raw control byte in a string");
        if (c != '\\') {
            sb_addc(out, (char)c);
            p->s++;
            continue;
        }
        p->s++;
        if (p->s >= p->end)
            return bad(p, "unterminated escape");
        char esc = *p->s++;
        switch (esc) {
        case '"': sb_addc(out, '"'); break;
        case '\\': sb_addc(out, '\\'); break;
        case '/': sb_addc(out, '/'); break;
        case 'b': sb_addc(out, '\b'); break;
        case 'f': sb_addc(out, '\f'); break;
        case 'n': sb_addc(out, '\n'); break;
        case 'r': sb_addc(out, '\r'); break;
        case 't': sb_addc(out, '\t'); break;
        case 'u': {
            unsigned cp;
            int r = hex4(p, &cp);
            if (r < 0)
                return r;
            if (cp == 0)
                return bad(p, "\\u0000 cannot be part of a value");
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return bad(p, "lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (p->end - p->s < 2 || p->s[0] != '\\' || p->s[1] != 'u')
                    return bad(p, "high surrogate without its low half");
                p->s += 2;
                if ((r = hex4(p, &lo)) < 0)
                    return r;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return bad(p, "high surrogate without its low half");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(out, cp);
            break;
        }
        default:
            return bad(p, "unknown escape");
        }
    }
}

void json_vars_free(struct var *vars, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(vars[i].name);
        free(vars[i].value);
    }
    free(vars);
}

int json_flat_parse(const char *text, size_t len, struct var **vars, size_t *n, terr *e)
{
    struct jp p = {.s = text, .end = text + len, .start = text, .e = e};
    struct var *v = NULL;
    size_t nv = 0;
    int r;
    *vars = NULL;
    *n = 0;
    if (memchr(text, '\0', len))
        return terr_set(e, EINVAL, "invalid JSON from tether start: a NUL byte");
    skip_ws(&p);
    if (p.s >= p.end || *p.s != '{')
        return bad(&p, "expected '{'");
    p.s++;
    skip_ws(&p);
    if (p.s < p.end && *p.s == '}') {
        p.s++;
        goto done;
    }
    for (;;) {
        strbuf name = {0}, value = {0};
        skip_ws(&p);
        if ((r = string(&p, &name)) < 0)
            goto fail_kv;
        for (size_t i = 0; i < nv; i++)
            if (streq(v[i].name, name.s)) {
                r = bad(&p, "duplicate name");
                goto fail_kv;
            }
        skip_ws(&p);
        if (p.s >= p.end || *p.s != ':') {
            r = bad(&p, "expected ':'");
            goto fail_kv;
        }
        p.s++;
        skip_ws(&p);
        if ((r = string(&p, &value)) < 0)
            goto fail_kv;
        v = xrealloc(v, (nv + 1) * sizeof(*v));
        v[nv].name = sb_steal(&name);
        v[nv].value = sb_steal(&value);
        nv++;
        skip_ws(&p);
        if (p.s < p.end && *p.s == ',') {
            p.s++;
            continue;
        }
        if (p.s < p.end && *p.s == '}') {
            p.s++;
            break;
        }
        r = bad(&p, "expected ',' or '}'");
        goto fail;
    fail_kv:
        sb_free(&name);
        sb_free(&value);
        goto fail;
    }
done:
    skip_ws(&p);
    if (p.s != p.end) {
        r = bad(&p, "trailing data after the object");
        goto fail;
    }
    *vars = v;
    *n = nv;
    return 0;
fail:
    json_vars_free(v, nv);
    return r;
}
