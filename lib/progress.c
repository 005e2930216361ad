#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>

#include "progress.h"
#include "util.h"

int progress_level = PROGRESS_QUIET;
static int sink = -1;

void progress_to(int fd)
{
    sink = fd;
}

int progress_fd(void)
{
    return sink;
}

bool progress_on(int level)
{
    return level <= progress_level && level > PROGRESS_QUIET;
}

/* A record to the process that prints: 'P', the level's digit, the text,
 * a NUL.  Lost if it cannot go (the starter is gone: nobody reads it). */
static void send_record(int level, const char *text)
{
    strbuf b = {0};
    sb_addf(&b, "P%d%s", level, text);
    sb_addn(&b, "", 1); /* the NUL that ends it */
    const char *p = b.s;
    size_t n = b.len;
    while (n) {
        ssize_t w = send(sink, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    sb_free(&b);
}

void progress(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprogress(level, fmt, ap);
    va_end(ap);
}

void vprogress(int level, const char *fmt, va_list ap)
{
    if (!progress_on(level))
        return;
    strbuf b = {0};
    sb_vaddf(&b, fmt, ap);
    if (sink >= 0) {
        send_record(level, b.s);
    } else {
        /* one write per line: lines of concurrent tethers do not mix */
        fprintf(stderr, "tether: %s\n", b.s);
        fflush(stderr);
    }
    sb_free(&b);
}

const char *progress_time(char buf[32], long long ns)
{
    if (ns < 1000000000LL)
        snprintf(buf, 32, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(buf, 32, "%.2f s", (double)ns / 1e9);
    return buf;
}

const char *progress_since(char buf[32], long long t0)
{
    return progress_time(buf, now_ns() - t0);
}
