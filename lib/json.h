/* A small strict JSON reader for one flat object of strings, the output of
 * `tether start --json`: {"NAME": "value", ...}. */
#pragma once
#include <stddef.h>
#include "quote.h"
#include "util.h"

/* Parse text[0..len) (whitespace around the object is allowed, nothing
 * else).  Escapes: \" \\ \/ \b \f \n \r \t and \uXXXX (surrogate pairs
 * become one UTF-8 sequence); \u0000, raw control bytes, a lone
 * surrogate, a duplicate name or any other value type is an error.  Bytes
 * >= 0x80 pass through as they are.  Returns 0 and the pairs in *vars
 * (free with json_vars_free), or -EINVAL and the position in e. */
int json_flat_parse(const char *text, size_t len, struct var **vars, size_t *n, terr *e);
void json_vars_free(struct var *vars, size_t n);
