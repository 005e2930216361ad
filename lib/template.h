/* ${name} templates in config values.  `$$` is a literal `$`.  Names are
 * [A-Za-z0-9_.-]+ (e.g. ${port}, ${dir}, ${postgresql.URL}).  ${name|url}
 * is the value percent-encoded (all but A-Z a-z 0-9 - . _ ~), for a part
 * of a URL (a password with an @ in it); ${name|urlpath} keeps '/' too,
 * for a path: unix://${socket|urlpath}. */
#pragma once
#include "util.h"

/* Look a name up; return 0 and set *value, or -ENOENT if unknown. */
typedef int (*tmpl_lookup_fn)(void *ud, const char *name, const char **value);

/* Expand `in`.  On an unknown name, a malformed `${` or nesting deeper than
 * allowed, fill e with "unknown variable ${name}" (or the syntax error)
 * and return -EINVAL. */
int tmpl_expand(const char *in, tmpl_lookup_fn lookup, void *ud, char **out, terr *e);

/* Call fn for each ${name} in `in` (for validation at load time). Returns
 * -EINVAL with e filled on a syntax error, or the first non-zero fn value. */
int tmpl_foreach(const char *in, int (*fn)(void *ud, const char *name, terr *e), void *ud,
                 terr *e);

/* ${port_NAME}: one more port of the service's (NAME of letters, digits
 * and '_'), reserved when first named (svc_port_named). */
bool tmpl_is_port_name(const char *name);

/* Split a command line into words the way sh does for quoting only:
 * 'single', "double" (with \" \\ \$ \` escapes), backslash escapes and
 * whitespace separation.  No expansion, globbing or operators: a value can
 * never run code.  -EINVAL with e filled on an unterminated quote. */
int split_words(const char *in, strv *out, terr *e);
