/* Slow work off the helper's loop.
 *
 * Anything that can take time (a readiness or health probe that talks to
 * the server, a reset, a cache build, a job in a child) is an op: the code
 * that starts it fills a struct op and returns OP_STARTED; the helper puts
 * op->fd in its epoll set (for op->events) and arms its timer for
 * op->deadline_ns, and calls op->step() when the fd is ready (or hung up)
 * or the deadline passed.
 * Nothing waits inside the loop: a step does what can be done now and
 * returns.  This is s6-supervise's "a kill only changes state, the next
 * event moves it on" and Redis's serverCron noticing a finished child.
 *
 * Return conventions, for the hooks that may start an op (driver.h) and
 * for step():
 *   0            done, it worked (ready, healthy, reset, built)
 *   OP_STARTED   (hooks only) in flight: op is filled, wait for step()
 *   OP_PENDING   (step only) not finished yet: wait again (step may change
 *                op->fd and op->deadline_ns first)
 *   -EAGAIN      done, not yet (a readiness probe: try again later)
 *   other < 0    failed, e says why (naming the service, cause and fix)
 *
 * Ownership: the code that started the op owns what op->data points to
 * and every child it forked; step() (when it returns anything but
 * OP_PENDING) and cancel() release them and reap the child, so that every
 * child is reaped by the code that started it.  cancel() never blocks: it
 * SIGKILLs and reaps (a SIGKILLed child is reaped at once with a blocking
 * waitpid on its pid, which the kernel makes immediate once it is dead;
 * a pidfd in the loop's set is the alternative when that is not so). */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "util.h"

#define OP_STARTED 1
#define OP_PENDING 2

struct svc;
struct op;

typedef int (*op_step_fn)(struct op *op, bool timed_out, terr *e);
typedef void (*op_cancel_fn)(struct op *op);

struct op {
    struct svc *s;        /* the service it works for (messages name it) */
    int fd;               /* wait for it to be ready; -1: only the deadline */
    short events;         /* for what: POLLIN (also 0) or POLLOUT (a connect
                             in progress, a full socket); a step may change it */
    long long deadline_ns;/* now_ns() clock; 0 none.  At it, step() is called
                             with timed_out and must not return OP_PENDING */
    op_step_fn step;
    op_cancel_fn cancel;  /* NULL: close(fd) is enough */
    pid_t pid;            /* a child the op runs in, 0 none (for cancel and
                             for the helper's catch-all reaper to leave alone) */
    void *data;           /* the op's own state */
    const char *what;     /* "reset", "health check"...: for status and logs */
};

/* Clear an op (fd -1, everything else 0). */
static inline void op_init(struct op *op, struct svc *s, const char *what)
{
    *op = (struct op){.s = s, .fd = -1, .what = what};
}

/* Drive an op to its end by polling its fd until its deadline: for the
 * places that have no loop of their own (gc, the CLI, unit tests).  The
 * helper never calls it.  Returns what the last step returned. */
int op_run_blocking(struct op *op, terr *e);
/* Abandon an op in flight (its cancel, or close its fd); op is then idle. */
void op_cancel(struct op *op);
/* Whether an op is in flight. */
static inline bool op_busy(const struct op *op) { return op->step != NULL; }
