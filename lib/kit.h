/* The toolkit a C driver uses, and the narrow interface through which it
 * sees its instance.
 *
 * A driver (lib/drivers/NAME.c) gets a `struct svc *s` in every hook.  It
 * may read and set the service's own fields (s->conf, s->dir, s->logpath,
 * s->port, s->pid, s->run_as/uid/gid, s->external, s->driver_data) and
 * its variables (svc_setvar/svc_getvar, svc_setenv_global).  What belongs
 * to the instance or to the helper it reaches only through the functions
 * below: never s->inst->svcs, never a chmod of the instance or state
 * directories (svc_give_dir does what the run_as user needs), never a
 * branch on s->state (probe = "ready yet?" while starting, health = "does
 * this ready service answer?": two hooks, see driver.h).
 *
 * The toolkit, one of each (use it, don't write another):
 *   parse_bool        util.h   yes/no/true/false/on/off/1/0, any case
 *   terr_at           util.h   "FILE:LINE: msg" errors, for configure()
 *   url_encode        util.h   percent-encoding of a URL component
 *   program_find      util.h   a server binary in PATH, naming the Debian
 *                              package when it is missing
 *   proc_pidfd_open,  proc.h   pidfds; proc_fork_pidfd, a child only its
 *   pidfd_wait,                starter reaps (proc_pidfd_reap)
 *   proc_pidfd_reap
 *   job_start,        job.h    blocking code (a client library) in a child
 *   worker_call                of the helper, as an op (op.h)
 *   datacache_get     drivers/datacache.h  a per-user cache of built data
 *                              directories (initdb, mariadb-install-db),
 *                              the build a callback, and its spare copy
 *   svc_argv,         service.h  a config's command line, expanded
 *   svc_environ
 *   svc_log_excerpt   service.h  the log's tail, for a failure's message
 */
#pragma once
#include <stddef.h>
#include "instance.h"

struct tether_driver;

/* The instance's directory (its path, and an fd of it that the instance
 * owns: do not close it).  Files a driver keeps beside its service's
 * directory (records gc reads) go there, named after the label. */
const char *svc_instance_dir(const struct svc *s);
int svc_instance_fd(const struct svc *s);
/* The instance's id: random (or "fixed-..."), unique on this machine. */
const char *svc_instance_id(const struct svc *s);
/* A path of the config as the config means it (relative to its file's
 * directory; malloc'd), and that directory (NULL without a config file). */
char *svc_config_path(const struct svc *s, const char *path);
const char *svc_config_dir(const struct svc *s);
/* How many services of the instance (s included) have s's driver: a
 * driver sets unprefixed variables (PGHOST, REDIS_URL) only when it is
 * the one. */
size_t svc_count_same_driver(const struct svc *s);
/* For a server that runs as another user (s->run_as): let it traverse
 * (never list) the state root and the instance directory, whose names are
 * unguessable, and give it the service's own directory.  0, or -errno with
 * e naming the service and the directory. */
int svc_give_dir(struct svc *s, terr *e);
