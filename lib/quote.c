/* Quoting for shells and JSON.
 *
 * sh (dash, bash, bash --posix): 'abc', with ' written as '\''.  Inside
 * single quotes nothing is special, not even ! in interactive bash.  Only
 * eval "$(tether start)" is exact and safe: unquoted, the output is split
 * and globbed before eval re-parses it, so X='x*' plus a file named
 * "X='x'; cmd; X='';" in the current directory runs cmd.
 *
 * csh (tested with tcsh 6.24: LANG=C and C.UTF-8, `set backslash_quote` on
 * and off, interactive and not): bytes go inside '...', except
 *   ' \ !      written \' \\ \! outside quotes: ! history-expands inside
 *             '...' (even in a sourced file), and under backslash_quote \
 *             quotes \ and ' inside '...' too;
 *   newline   written $'\n': `...` output is split into words at newlines
 *             even inside "", so the classic '\<newline>' (fine for
 *             `source`) reaches eval as '\ ' and the value changes;
 *   {         written $'\173': the ssh-agent form  eval `tether start -c`
 *             (unquoted) splits the output at blanks and brace-expands each
 *             word regardless of quotes, so a raw 'a{x,y}b' duplicates the
 *             trailing ';' and eval runs a command `ayb`.
 * Every value (bytes 0x01-0xff, 10 KB, many newlines) then round-trips byte
 * for byte through all of
 *     source FILE
 *     eval "`cat FILE`"          eval "`tether start -c`"
 * and  eval `tether start -c`  runs no code, though runs of blanks, tabs and
 * a ~ after a blank do not survive it (writing blanks as $'\040' too would
 * fix that, at the cost of every value with a space on older tcsh).
 * $'...' needs tcsh >= 6.23.01 (2021-12); older tcsh should reject a value
 * holding a newline or { as a bad variable name before running the line
 * (not tested here).
 *
 * fish: '...' with \ and ' escaped by a backslash.
 * JSON: "..." escaping " \ and control bytes; other bytes pass through, so
 * the output is valid JSON only if the value is valid UTF-8. */
#include "quote.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

void quote_sh(strbuf *b, const char *s)
{
    sb_addc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sb_add(b, "'\\''");
        else
            sb_addc(b, *p);
    }
    sb_addc(b, '\'');
}

/* How quote_csh writes one byte: inside '...', inside $'...' (as the given
 * escape), or outside any quotes (as the given escape). */
enum csh_mode { CSH_NONE, CSH_PLAIN, CSH_ANSI };

static enum csh_mode csh_class(char c, const char **esc)
{
    switch (c) {
    case '\'': *esc = "\\'"; return CSH_NONE;
    case '\\': *esc = "\\\\"; return CSH_NONE;
    case '!': *esc = "\\!"; return CSH_NONE;
    case '\n': *esc = "\\n"; return CSH_ANSI;
    case '{': *esc = "\\173"; return CSH_ANSI;
    default: *esc = NULL; return CSH_PLAIN;
    }
}

void quote_csh(strbuf *b, const char *s)
{
    enum csh_mode cur = CSH_NONE;

    if (!*s) {
        sb_add(b, "''");
        return;
    }
    for (const char *p = s; *p; p++) {
        const char *esc;
        enum csh_mode m = csh_class(*p, &esc);
        if (m != cur) {
            if (cur != CSH_NONE)
                sb_addc(b, '\'');
            if (m == CSH_ANSI)
                sb_addc(b, '$');
            if (m != CSH_NONE)
                sb_addc(b, '\'');
            cur = m;
        }
        if (esc)
            sb_add(b, esc);
        else
            sb_addc(b, *p);
    }
    if (cur != CSH_NONE)
        sb_addc(b, '\'');
}

void quote_fish(strbuf *b, const char *s)
{
    sb_addc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sb_addc(b, '\\');
        sb_addc(b, *p);
    }
    sb_addc(b, '\'');
}

void quote_json(strbuf *b, const char *s)
{
    sb_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_add(b, "\\\""); break;
        case '\\': sb_add(b, "\\\\"); break;
        case '\n': sb_add(b, "\\n"); break;
        case '\t': sb_add(b, "\\t"); break;
        case '\r': sb_add(b, "\\r"); break;
        case '\b': sb_add(b, "\\b"); break;
        case '\f': sb_add(b, "\\f"); break;
        default:
            if (*p < 0x20)
                sb_addf(b, "\\u%04x", *p);
            else
                sb_addc(b, (char)*p);
        }
    }
    sb_addc(b, '"');
}

void out_assign(strbuf *b, enum out_fmt fmt, const struct var *vars, size_t n)
{
    if (fmt == OUT_JSON) {
        if (n == 0) {
            sb_add(b, "{}\n");
            return;
        }
        sb_add(b, "{\n");
        for (size_t i = 0; i < n; i++) {
            sb_add(b, "  ");
            quote_json(b, vars[i].name);
            sb_add(b, ": ");
            quote_json(b, vars[i].value);
            sb_add(b, i + 1 < n ? ",\n" : "\n");
        }
        sb_add(b, "}\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = vars[i].name, *value = vars[i].value;
        switch (fmt) {
        case OUT_SH:
            sb_addf(b, "%s=", name);
            quote_sh(b, value);
            sb_addf(b, "; export %s;\n", name);
            break;
        case OUT_CSH:
            sb_addf(b, "setenv %s ", name);
            quote_csh(b, value);
            sb_add(b, ";\n");
            break;
        case OUT_FISH:
            sb_addf(b, "set -gx %s ", name);
            quote_fish(b, value);
            sb_add(b, ";\n");
            break;
        case OUT_JSON:
            break;
        }
    }
}

void out_unset(strbuf *b, enum out_fmt fmt, const char *const *names, size_t n)
{
    if (fmt == OUT_JSON) {
        sb_add(b, "{\"unset\": [");
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_add(b, ", ");
            quote_json(b, names[i]);
        }
        sb_add(b, "]}\n");
        return;
    }
    static const char *const verb[] = {
        [OUT_SH] = "unset", [OUT_CSH] = "unsetenv", [OUT_FISH] = "set -e",
    };
    for (size_t i = 0; i < n; i++)
        sb_addf(b, "%s %s;\n", verb[fmt], names[i]);
}

/* Characters that end an unquoted sh word. */
static bool sh_word_end(char c)
{
    return c == '\0' || strchr(" \t\n;&|<>()", c);
}

int unquote_sh(const char **p, strbuf *out)
{
    const char *s = *p;
    size_t start = out->len;

    while (!sh_word_end(*s)) {
        if (*s == '\'') {
            const char *end = strchr(s + 1, '\'');
            if (!end)
                goto bad;
            sb_addn(out, s + 1, (size_t)(end - s - 1));
            s = end + 1;
        } else if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (!*s)
                    goto bad;
                /* Inside "", \ escapes only these; \<newline> vanishes. */
                if (*s == '\\' && s[1] && strchr("\"\\$`\n", s[1])) {
                    s++;
                    if (*s == '\n')
                        continue;
                }
                sb_addc(out, *s);
            }
            s++;
        } else if (*s == '\\') {
            if (!s[1])
                goto bad;
            if (s[1] != '\n')
                sb_addc(out, s[1]);
            s += 2;
        } else {
            sb_addc(out, *s++);
        }
    }
    *p = s;
    return 0;
bad:
    /* Leave *p and out as they were so that the caller can report. */
    out->len = start;
    if (out->s)
        out->s[start] = '\0';
    return -EINVAL;
}

bool valid_var_name(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        bool alpha = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_';
        if (!alpha && !(p != name && *p >= '0' && *p <= '9'))
            return false;
    }
    return true;
}
