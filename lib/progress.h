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

/* A duration for people: "12.3 ms" below a second, else "1.25 s". */
const char *progress_time(char buf[32], long long ns);
/* The same, since t0 (now_ns()). */
const char *progress_since(char buf[32], long long t0);
