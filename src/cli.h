/* The tether command line.  stdout carries only what a shell or a tool
 * evaluates; progress and errors go to stderr. */
#pragma once
#include <stdbool.h>
#include "progress.h"
#include "quote.h"
#include "util.h"

/* Exit codes (documented in tether(1)). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,   /* a service failed: start, health, reset */
    EXIT_USAGE = 2,  /* bad arguments or a bad config file */
    EXIT_NONE = 3,   /* no instance in the environment to act on */
    /* `run ... -- CMD`: tether or a service failed, whatever CMD did (as
     * env(1) and timeout(1): CMD's own 1 or 2 must not be taken for it) */
    EXIT_TETHER = 125,
    EXIT_NOEXEC = 127,
};

struct cli {
    const char *config_flag; /* -f */
    enum out_fmt fmt;
    bool quiet;   /* -q: errors only (progress_level PROGRESS_QUIET) */
    bool verbose; /* -v: each step with its time (PROGRESS_STEP) */
};

/* -q where a command takes it too: nothing but errors. */
void cli_quiet(struct cli *c);

void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_note(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int cmd_run(struct cli *c, int argc, char **argv, bool background);
/* The exit status of a usage error in argv (the whole command line):
 * EXIT_TETHER for `run ... -- CMD`, else EXIT_USAGE. */
int usage_status(int argc, char **argv);
int cmd_stop(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_reset(struct cli *c, int argc, char **argv);
int cmd_logs(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_gc(struct cli *c, int argc, char **argv);
int cmd_services(struct cli *c, int argc, char **argv);
int cmd_drivers(struct cli *c, int argc, char **argv);
int cmd_names(struct cli *c, int argc, char **argv);
