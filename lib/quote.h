/* Output for shells and tools: assignments that `eval` turns back into the
 * exact bytes of each value, and never into code. */
#pragma once
#include "util.h"

enum out_fmt { OUT_SH, OUT_CSH, OUT_FISH, OUT_JSON };

struct var {
    char *name;  /* NAME: [A-Za-z_][A-Za-z0-9_]* */
    char *value; /* any bytes but NUL */
};

/* Append `s` quoted so that the shell reads back exactly `s`. */
void quote_sh(strbuf *b, const char *s);
void quote_csh(strbuf *b, const char *s);
void quote_fish(strbuf *b, const char *s);
void quote_json(strbuf *b, const char *s); /* with the surrounding "" */

/* ssh-agent style output: sh: NAME='v'; export NAME;   csh: setenv NAME 'v';
 * fish: set -gx NAME 'v';   json: one object {"NAME": "v", ...}. */
void out_assign(strbuf *b, enum out_fmt fmt, const struct var *vars, size_t n);
/* unset NAME; / unsetenv NAME; / set -e NAME; / {"unset": ["NAME", ...]} */
void out_unset(strbuf *b, enum out_fmt fmt, const char *const *names, size_t n);

/* Undo quote_sh for one value: parses the output of quote_sh (and plain
 * words) starting at *p, advancing *p.  Used to read CONFIGFILEs back. */
int unquote_sh(const char **p, strbuf *out);

/* True if name is a valid environment variable name. */
bool valid_var_name(const char *name);
