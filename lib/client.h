/* Talking to running instances: finding them from the environment,
 * control requests, stopping. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "util.h"

/* A service named by <STEM>_CONTROL_PID and <STEM>_CONFIGFILE variables. */
struct env_svc {
    char *stem;    /* LP_LIBRARIAN */
    char *label;   /* librarian (from the CONFIGFILE's name) */
    char *instdir; /* the instance directory */
    pid_t pid;     /* CONTROL_PID */
};

/* Every service the environment (envp) names.  Returns the count. */
size_t env_services(char **envp, struct env_svc **out);
void env_services_free(struct env_svc *v, size_t n);

/* Is the helper recorded in instdir/state alive (pid and start time)? */
bool instance_alive(const char *instdir, pid_t pid);
/* Can the helper pid of instdir be reached from here?  0 if it is alive;
 * -ESRCH if it is gone; -EACCES if the instance belongs to another user;
 * -EXDEV if to another pid namespace (its pids mean nothing here).  e says
 * which. */
int instance_reach(const char *instdir, pid_t pid, terr *e);

/* How long a helper may take to answer a request: $TETHER_HELPER_TIMEOUT
 * (a duration), else 5 s.  A helper that needs longer (a reset) says so
 * first ("WAIT NS"), and gets that much more. */
#define HELPER_TIMEOUT_VAR "TETHER_HELPER_TIMEOUT"
#define HELPER_TIMEOUT_NS (5LL * 1000000000LL)
int helper_timeout(long long *ns, terr *e);

/* Send one request on instdir/control to the helper (pid helper, for the
 * messages), wait for the reply (malloc'd).  A helper that does not
 * answer in time is -ETIMEDOUT: "helper N of instance DIR does not
 * answer". */
int control_request(const char *instdir, pid_t helper, const char *req, char **reply, terr *e);

/* SIGTERM the helper (verified by pid and start time) and wait until it
 * has cleaned up; if it is already dead, reap what it left (gc).  A
 * cleanup that failed (the instance was kept for gc) is an error that
 * says why.  Then the warnings its helper left in its log (hlog.h) are
 * printed (warn()) and the log removed: 1 if there were any, else 0. */
int instance_stop(const char *instdir, pid_t pid, long long timeout_ns, terr *e);

/* A CONFIGFILE is a few lines per variable: read no more than this. */
#define CONFIGFILE_MAX (1 << 20)

/* 0, or -EAGAIN and why when the helper of instdir, now gone, kept the
 * instance because its cleanup failed (a database it could not drop). */
int instance_leftover(const char *instdir, terr *e);

/* Names of the variables a CONFIGFILE defines (for unset lines). */
int configfile_names(const char *path, strv *names);
