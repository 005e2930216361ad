/* One service's life inside the helper: set-up, spawn, stop, files. */
#pragma once
#include "instance.h"
#include "op.h"

/* Directory, log, port reservation and the variables known before start. */
int svc_init(struct svc *s, struct instance *in, struct svc_conf *c, terr *e);
void svc_free(struct svc *s);
/* Expand a template in the service's context. */
int svc_expand(struct svc *s, const char *tmpl, char **out, terr *e);
/* The value of ${name} in the service's templates (dir, port, socket,
 * SERVICE.VAR...): 0, or -ENOENT.  The value may live in a static buffer
 * until the next call. */
int svc_lookup(struct svc *s, const char *name, const char **value);
/* Compute the variables (core + driver + exports); deps must be ready. */
int svc_compute_vars(struct svc *s, terr *e);
/* Set a variable that is not PREFIX_LABEL_-scoped (REDIS_URL, PGHOST), for
 * a driver's variables callback: printed by start, exported to run's
 * command and to the services that run after this one, and recorded in
 * the CONFIGFILE (so stop unsets it).  Replaces an existing one. */
void svc_setenv_global(struct svc *s, const char *name, const char *value);
/* The environment for the service's processes (malloc'd strv). */
void svc_environ(struct svc *s, strv *env);
/* Set a NAME=value in an environment (replacing NAME's value). */
void svc_env_set(strv *env, const char *name, const char *value);
/* The service's log, opened for appending: the fd or < 0 with e set. */
int svc_open_log(struct svc *s, terr *e);
/* Split a command template into words, then expand each word: a value
 * with spaces or quotes stays one argument and is never parsed again. */
int svc_argv(struct svc *s, const char *tmpl, strv *argv, terr *e);
/* Run a one-off command (reset, exec readiness) tied to the service. */
int svc_run_command(struct svc *s, const char *tmpl, pid_t *pid, terr *e);
/* Write the CONFIGFILE and PIDFILE. */
int svc_write_files(struct svc *s, terr *e);
/* Take another port after an "address in use" failure. */
int svc_new_port(struct svc *s, terr *e);
/* The service's port called name (${port_NAME}; NAME of letters, digits and
 * '_'): reserved on 127.0.0.1 the first time it is asked for, the same
 * afterwards, released when the service is freed.  0 with *port set, or
 * < 0 with e filled. */
int svc_port_named(struct svc *s, const char *name, int *port, terr *e);
/* A line "tether: ..." in the service's log (what `tether logs` and a
 * failure's tail show) and in the helper's. */
void svc_log(struct svc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Format the failure with the log's tail into s->err. */
void svc_fail(struct svc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last lines of the service's log, quoted, for an error message:
 * "last lines of its log (PATH):\n    | ...".  The path only when the log
 * outlives the message (in->name_logs): a failed start removes it with the
 * instance, unless the instance is kept. */
char *svc_log_excerpt(const struct svc *s);

/* --- spawn and readiness (ready.c, above service.c: it calls service.c,
 * never the other way) --- */
/* Prepare readiness, then spawn the server.  Returns 1 for an external
 * service, which has no process and is ready once prepared. */
int svc_spawn(struct svc *s, terr *e);
/* Before spawn: make the notify socket / fd pipe / inotify watch.  Adds
 * NOTIFY_SOCKET to env when needed; *pass_fd is the fd to hand over. */
int ready_setup(struct svc *s, strv *env, int *pass_fd, terr *e);
/* After spawn. */
void ready_after_spawn(struct svc *s, int pass_fd);
/* A timer-driven check (tcp/unix/driver probe): 0 ready, -EAGAIN not yet,
 * < 0 hard failure (s->err filled), or OP_STARTED: the driver's probe is
 * an op in flight in op; pass what its step returned to
 * ready_probe_done() (its message in s->err). */
int ready_probe(struct svc *s, struct op *op);
int ready_probe_done(struct svc *s, int r);
/* The service's ready_fd is readable: 0 ready, -EAGAIN not yet, < 0 failed. */
int ready_on_event(struct svc *s);
/* An exec readiness probe exited: 0 ready, -EAGAIN try again later. */
int ready_exec_done(struct svc *s, int status);
/* Close readiness resources (service.c: svc_free needs it). */
void ready_teardown(struct svc *s);
/* Whether the listeners on the service's port (localhost or wildcard:
 * port_listeners()) are all the service's own: sockets held by its main
 * process, its descendants, or what the helper adopted.  0 yes (with need,
 * there must be one), -EAGAIN none yet (with need), -EADDRINUSE another
 * process listens there (s->err says who and what to do). */
int ready_port_owner(struct svc *s, bool need);
/* A health check of a READY service: 0 healthy, < 0 why in e, or
 * OP_STARTED: the driver's health op is in flight in op (with a deadline);
 * pass what its step returned, and its e, to svc_health_done(). */
int svc_health_start(struct svc *s, struct op *op, terr *e);
int svc_health_done(struct svc *s, int r, terr *e);
/* The config's protocol checks (proto.h) as ops, with the driver hooks'
 * signatures and results (drivers/driver.h): ready = send:.../http:/ (a
 * wrong answer is "not yet"; the op's deadline is the service's), its
 * health = (HEALTH_TIMEOUT_NS), reset = send:... (timeout =). */
struct op;
int ready_proto_probe(struct svc *s, struct op *op, terr *e);
int svc_proto_health(struct svc *s, struct op *op, terr *e);
int svc_proto_reset(struct svc *s, struct op *op, terr *e);
/* The reset that talks to the server, as an op: the config's reset =
 * send:..., else the driver's own; NULL when there is none, or the config
 * says a command or restart. */
typedef int (*svc_op_fn)(struct svc *s, struct op *op, terr *e);
svc_op_fn svc_native_reset(const struct svc *s);
/* How readiness is described in messages ("tcp 127.0.0.1:8080"). */
char *ready_describe(const struct svc *s);
