/* The helper's record of its descendants: every process below it, with
 * its start time, for gc to kill if the helper dies (SIGKILL) before it can
 * clean up.  A fork below us tells us nothing (an orphan we adopt as child
 * subreaper signals only when it exits), so the record follows the
 * kernel's pid allocation instead: every pid handed out since the last look
 * lies after the last one then, in allocation order. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "proc.h"

struct track {
    pid_t root;             /* the helper */
    struct proc_id *procs;  /* sorted by pid */
    size_t n;
    pid_t last;             /* the kernel's last pid at the last look */
    pid_t pid_max;
};

void track_init(struct track *t, pid_t root);
void track_free(struct track *t);
/* Walk the whole tree below root again.  1 if the record changed, 0 if
 * not, -errno (record kept) on failure. */
int track_rescan(struct track *t);
/* Add what was created since the last look, if it descends from root;
 * rescan if too much happened to follow pid by pid.  1 if the record
 * changed, 0 if not. */
int track_update(struct track *t);
