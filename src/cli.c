/* The CLI's own helpers, which every command uses: below main.c (which
 * dispatches to the commands) and the cmd_*.c files, so that the commands
 * need not call back into main.c. */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

void cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tether: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_note(const struct cli *c, const char *fmt, ...)
{
    if (c->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprogress(PROGRESS_NOTE, fmt, ap);
    va_end(ap);
}

void cli_quiet(struct cli *c)
{
    c->quiet = true;
    c->verbose = false;
    progress_level = PROGRESS_QUIET;
}
