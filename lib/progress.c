#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "progress.h"
#include "util.h"

int progress_level = PROGRESS_QUIET;
static int sink = -1;

/* warnings once no starter listens (warn_to, warn_to_log) */
static int warn_fd = -1;
static int log_dir = -1;
static char log_name[256];
static int log_fd = -1;

/* The record kind of a warning, where a progress record has its level. */
#define WARN_KIND 'W'

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

/* A record to the process that prints: 'P', the level's digit (or
 * WARN_KIND), the text, a NUL.  False if it could not go whole (the starter
 * is gone: nobody reads it). */
static bool send_record(char kind, const char *text)
{
    strbuf b = {0};
    sb_addf(&b, "P%c%s", kind, text);
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
    return n == 0;
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
        send_record((char)('0' + level), b.s);
    } else {
        /* one write per line: lines of concurrent tethers do not mix */
        fprintf(stderr, "tether: %s\n", b.s);
        fflush(stderr);
    }
    sb_free(&b);
}

void warn_to(int fd)
{
    warn_fd = fd;
}

void warn_to_file(int dirfd, const char *name)
{
    log_dir = dirfd;
    snprintf(log_name, sizeof(log_name), "%s", name);
}

static int write_whole(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The file, made at the first warning (the helper's log: most instances
 * never have one, and leave nothing beside their directory), and locked
 * for as long as we live (hlog.h: its readers wait for that). */
static int log_open(void)
{
    if (log_fd >= 0 || log_dir < 0)
        return log_fd;
    int fd = openat(log_dir, log_name, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        return log_fd = fd;
    /* on stderr with the warning that follows (the helper's: its own log) */
    fprintf(stderr, "tether: cannot open or lock %s for warnings: %m\n", log_name);
    if (fd >= 0)
        close(fd);
    log_dir = -1; /* once */
    return -1;
}

/* One line: a message may hold a log's tail or libpq's DETAIL lines. */
static void flatten(strbuf *b)
{
    while (b->len && (b->s[b->len - 1] == '\n' || b->s[b->len - 1] == ' '))
        b->s[--b->len] = '\0';
    for (char *p = b->s; p && *p; p++)
        if (*p == '\n')
            *p = ' ';
}

void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
}

void vwarn(const char *fmt, va_list ap)
{
    _cleanup_sb_ strbuf b = {0};
    sb_vaddf(&b, fmt, ap);
    flatten(&b);
    if (sink >= 0 && send_record(WARN_KIND, b.s))
        return;
    _cleanup_sb_ strbuf line = {0};
    sb_addf(&line, WARN_PREFIX "%s\n", b.s);
    int fd = warn_fd >= 0 ? warn_fd : log_open();
    if (fd >= 0 && write_whole(fd, line.s, line.len) == 0)
        return;
    fputs(line.s, stderr); /* one write: lines of concurrent tethers do not mix */
    fflush(stderr);
}

void progress_replay(const char *rec)
{
    if (rec[0] == WARN_KIND)
        warn("%s", rec + 1);
    else if (rec[0] >= '0' && rec[0] <= '9')
        progress(rec[0] - '0', "%s", rec + 1);
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
