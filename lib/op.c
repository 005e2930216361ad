/* The ops' two helpers for code without a loop (see op.h). */
#include <errno.h>
#include <poll.h>

#include "op.h"

static void op_done(struct op *op)
{
    op->step = NULL;
    op->cancel = NULL;
    op->fd = -1;
    op->events = 0;
    op->pid = 0;
    op->data = NULL;
    op->deadline_ns = 0;
}

void op_cancel(struct op *op)
{
    if (!op_busy(op))
        return;
    if (op->cancel)
        op->cancel(op);
    else if (op->fd >= 0)
        close(op->fd);
    op_done(op);
}

int op_run_blocking(struct op *op, terr *e)
{
    for (;;) {
        long long now = now_ns();
        bool timed_out = op->deadline_ns && now >= op->deadline_ns;
        if (!timed_out) { /* poll ignores fd -1: then it only sleeps to the deadline */
            int ms = -1;
            if (op->deadline_ns)
                ms = (int)((op->deadline_ns - now + 999999) / 1000000);
            struct pollfd p = {.fd = op->fd, .events = op->events ? op->events : POLLIN};
            int n = poll(&p, 1, ms);
            if (n < 0 && errno == EINTR)
                continue;
            timed_out = n == 0;
        }
        int r = op->step(op, timed_out, e);
        if (r != OP_PENDING) {
            op_done(op);
            return r;
        }
    }
}
