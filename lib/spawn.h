/* Starting a service process with a clean slate. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "util.h"

struct spawn_opts {
    char *const *argv;
    char *const *envp; /* the complete environment */
    int log_fd;        /* stdout and stderr; -1: /dev/null */
    const char *cwd;   /* NULL: unchanged */
    int pass_fd;       /* -1, or an fd to hand over as pass_fd_as */
    int pass_fd_as;
    bool drop_privs;   /* run as uid/gid (when root) */
    uid_t uid;
    gid_t gid;
};

/* fork + exec in a new process group with default signal dispositions, an
 * empty mask, stdin from /dev/null, no other inherited fd, and
 * PR_SET_PDEATHSIG(SIGKILL).  Returns once exec has succeeded (or with the
 * exec error). */
int spawn_process(const struct spawn_opts *o, pid_t *pid, terr *e);
/* Last n lines of a file, for error messages ("" if unreadable). */
char *file_tail(const char *path, int nlines);
