/* quote-emit FORMAT NAME FILE [NAME FILE...]   print out_assign() output
 * quote-emit --unset FORMAT NAME...            print out_unset() output
 * Each value is read byte for byte from FILE, so tests can feed any bytes
 * without a shell in between.  FORMAT: sh, csh, fish or json. */
#include "quote.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static int parse_fmt(const char *s, enum out_fmt *fmt)
{
    static const char *const names[] = {
        [OUT_SH] = "sh", [OUT_CSH] = "csh", [OUT_FISH] = "fish", [OUT_JSON] = "json",
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (streq(s, names[i])) {
            *fmt = (enum out_fmt)i;
            return 0;
        }
    }
    return -EINVAL;
}

static int usage(void)
{
    fprintf(stderr, "usage: quote-emit sh|csh|fish|json NAME FILE [NAME FILE...]\n"
                    "       quote-emit --unset sh|csh|fish|json NAME...\n");
    return 2;
}

int main(int argc, char **argv)
{
    _cleanup_sb_ strbuf out = {0};
    enum out_fmt fmt;

    if (argc >= 2 && streq(argv[1], "--unset")) {
        if (argc < 3 || parse_fmt(argv[2], &fmt) < 0)
            return usage();
        out_unset(&out, fmt, (const char *const *)argv + 3, (size_t)(argc - 3));
    } else {
        if (argc < 2 || parse_fmt(argv[1], &fmt) < 0 || argc % 2 != 0)
            return usage();
        size_t n = (size_t)(argc - 2) / 2;
        struct var *vars = xcalloc(n, sizeof(*vars));
        int rc = 0;
        for (size_t i = 0; i < n; i++) {
            const char *path = argv[3 + 2 * i];
            size_t len;
            vars[i].name = argv[2 + 2 * i];
            int r = read_file_at(AT_FDCWD, path, &vars[i].value, &len);
            if (r < 0) {
                fprintf(stderr, "quote-emit: %s: %s\n", path, strerror(-r));
                rc = 1;
            } else if (strlen(vars[i].value) != len) {
                fprintf(stderr, "quote-emit: %s: contains a NUL byte\n", path);
                rc = 1;
            }
        }
        if (rc == 0)
            out_assign(&out, fmt, vars, n);
        for (size_t i = 0; i < n; i++)
            free(vars[i].value);
        free(vars);
        if (rc)
            return rc;
    }
    if (out.len && fwrite(out.s, 1, out.len, stdout) != out.len)
        return 1;
    return fflush(stdout) == 0 ? 0 : 1;
}
