/* Progress: what tether is doing, for the user's stderr, by level.  One
 * print path for every process: the CLI prints on its own stderr; the
 * helper, while it starts an instance, sends the same lines to the CLI
 * that waits for it (over the start's status channel, helper.c), which
 * prints them.  Never stdout (that is for eval), never an error (errors
 * go up as terr messages and are printed whatever the level). */
#pragma once
#include <stdarg.h>
#include <stdbool.h>

enum progress_level {
    PROGRESS_QUIET = 0, /* -q: nothing */
    PROGRESS_NOTE = 1,  /* the default: long work ("building the cache ...") and outcomes */
    PROGRESS_STEP = 2,  /* -v: each step, with its time */
};

/* What is shown: lines of this level and below.  PROGRESS_QUIET until the
 * CLI sets it, so that a program linked with libtether stays silent. */
extern int progress_level;

/* Where lines go: -1 (the default) prints "tether: TEXT\n" on stderr; a
 * socket gets helper records (see helper.c), sent whole. */
void progress_to(int fd);
/* That fd (-1: stderr), for a child that reports progress to keep open. */
int progress_fd(void);

bool progress_on(int level);
void progress(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vprogress(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Warnings: something went wrong that the work survives (a state file
 * not rewritten, a database not dropped, a directory left behind).  One
 * path, whatever the level (-q too): "tether: warning: TEXT" on one line
 * (TEXT's newlines become spaces), written whole.  Where it goes:
 *  - a helper that is starting an instance: to the starter, which prints
 *    it (a record on the status channel, as progress lines are);
 *  - else to the fd given to warn_to() (`tether run`'s helper: the
 *    terminal), or to the helper's log in the state root (warn_to_file(),
 *    hlog.h) that `tether status`, `stop` and gc show;
 *  - else (the CLI, a program linked with libtether) on stderr. */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vwarn(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Where warnings go once no starter listens: fd (-1: stderr). */
void warn_to(int fd);
/* ... or the file dirfd/name (dirfd kept open), made when the first
 * warning comes and locked while we live: the helper's log (hlog.h). */
void warn_to_file(int dirfd, const char *name);
/* The prefix of a warning's line. */
#define WARN_PREFIX "tether: warning: "

/* The reading side of the status channel: one record a helper sent (a
 * progress line or a warning, without its NUL), printed as it says. */
void progress_replay(const char *rec);

/* A duration for people: "12.3 ms" below a second, else "1.25 s". */
const char *progress_time(char buf[32], long long ns);
/* The same, since t0 (now_ns()). */
const char *progress_since(char buf[32], long long t0);
