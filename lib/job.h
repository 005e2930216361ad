/* Slow work in a child of the helper, as an op (op.h): a job (one fork,
 * one reply, exit) or a worker (a child that stays while requests come).
 *
 * Made from pg_job.c without `struct pg`: any driver (or the helper) can
 * run code that may block (a library that only has blocking calls, a
 * connect with a timeout, a cache build) without blocking the loop.
 *
 * The child:
 *   - is forked with clone3(exit_signal 0): the kernel sends no SIGCHLD for
 *     it, and the helper's catch-all waitpid(-1) does not see it (only
 *     __WALL/__WCLONE waits do), so it is reaped by the code that started
 *     it (the op's step or cancel, through its pidfd), never by another;
 *   - dies with the helper (PR_SET_PDEATHSIG SIGKILL);
 *   - keeps only fds 0-2, its end of the reply socket and keep[]: a client
 *     connection or the control socket must not outlive the helper's close
 *     of them;
 *   - replies once on a SOCK_SEQPACKET socket: one message
 *     "R\0MESSAGE\0key\0value\0key\0value\0..." (R the decimal result;
 *     MESSAGE e->msg when R < 0, else "").
 *
 * Cost, measured on the project's 2-core VM: a fork of the helper (RSS
 * about 1.5 MiB) is 0.2-0.4 ms; a round trip to a worker 30-60 us.
 *
 * The op ends (step returns something other than OP_PENDING) once the
 * child has replied AND exited: a job that wants to go on after its reply
 * belongs in a worker.  Not for threaded callers: clone3 without glibc's
 * fork() runs none of its atfork handlers (the helper and the CLI are
 * single-threaded). */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "op.h"
#include "util.h"

struct svc;

/* What a job's (or worker request's) function sees, in the child. */
struct job {
    struct svc *s;
    void *arg;    /* job: job_start's arg; worker: points to its state (NULL at first) */
    int sock;     /* to the helper */
    bool replied;
    strv out;     /* key, value, ...: handed back with the reply */
};
/* A job's (or a request's) result: 0 or -errno, never > 0 (OP_STARTED and
 * OP_PENDING are the op's); a value goes back as a pair in j->out. */
typedef int (*job_fn)(struct job *j, terr *e);
/* The completion of a job op, in the helper: r is the job's result (or
 * the op's own failure: timeout, a death without a reply), out its pairs
 * (key, value, ...; empty on failure).  Returns the op's result; it may
 * start another op on the same op (job_start, worker_call...) and return
 * OP_STARTED to chain them: the step then returns OP_PENDING. */
typedef int (*job_then_fn)(struct op *op, int r, const strv *out, void *ud, terr *e);

/* Start fn(job) in a child: OP_STARTED (op filled: fd the reply socket,
 * pid the child, deadline 0 -- the caller may set op->deadline_ns, past
 * which the child is killed and the op fails with -ETIMEDOUT), or < 0 with
 * e set.  op->s must be the service (op_init). */
int job_start(struct op *op, struct svc *s, job_fn fn, void *arg, const int *keep,
              size_t n_keep, terr *e);
/* Set the completion of the job op (or worker call) just started
 * (default: none, the op's result is the job's). */
void job_then(struct op *op, job_then_fn then, void *ud);
/* For code without a loop (gc, the CLI, tests): run fn in a child and wait
 * for it (op_run_blocking), up to timeout_ns (0: none); the pairs go to
 * out (may be NULL). */
int job_run(struct svc *s, job_fn fn, void *arg, const int *keep, size_t n_keep,
            long long timeout_ns, strv *out, terr *e);
/* In the child: reply now (once; later calls do nothing). */
void job_reply(struct job *j, int r, const terr *e);
/* Fork a child as described above: the pid in the helper (and its pidfd
 * in *pidfd), 0 in the child; with sock, *sock is each side's end of the
 * reply socket.  < 0 with e set on failure. */
pid_t job_fork(struct svc *s, int *sock, int *pidfd, const int *keep, size_t n_keep, terr *e);
/* Kill (SIGKILL) and reap a child made by job_fork, through its pidfd
 * (closed).  Immediate once the kernel has delivered the SIGKILL. */
void job_kill(pid_t pid, int pidfd);

/* A worker: a child that serves requests one at a time, keeping its state
 * (a connection, a loaded library) between them, and exits once idle for
 * WORKER_IDLE_MS, so that the helper is back to its own small self between
 * test sessions.  serve(j, NULL) is called once as it starts (warm-up; its
 * result goes nowhere), then serve(j, req) per request, with j->arg
 * pointing to the worker's own state pointer. */
typedef int (*worker_fn)(struct job *j, const char *req, terr *e);
struct worker {
    struct svc *s;
    worker_fn serve;
    int fd;     /* to the worker, -1 none */
    pid_t pid;
    int pidfd;
    bool busy;  /* a call in flight: one at a time */
};
#define WORKER_IDLE_MS 10000
void worker_init(struct worker *w, struct svc *s, worker_fn serve);
/* Start the worker now (unless there is one), for a call that will come
 * soon: it warms up meanwhile.  0 or < 0. */
int worker_spawn(struct worker *w, terr *e);
/* Send req (at most 1023 bytes) and return OP_STARTED: the op's result is
 * the worker's reply to it; the caller sets op->deadline_ns (past it the
 * worker is killed and the call fails with -ETIMEDOUT; a new one starts
 * for the next call).  A worker that left for being idle just as the
 * request went is replaced and the request sent again, once.  -EBUSY if a
 * call is in flight. */
int worker_call(struct worker *w, struct op *op, const char *req, terr *e);
/* End the worker (its socket closed, killed and reaped): at cleanup, and
 * when what it holds is stale (the server restarted). */
void worker_stop(struct worker *w);
