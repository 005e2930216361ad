/* Jobs and workers (lib/job.c): a job's result and pairs reach its
 * completion; a job past its deadline is killed and reaped by the op; a
 * worker keeps its state between calls, and a call to a worker that left
 * is sent again to a new one; no child is left for a catch-all to reap. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "job.h"

static int job_pairs(struct job *j, terr *e)
{
    (void)e;
    strv_push(&j->out, "host");
    strv_push(&j->out, (const char *)j->arg);
    return 0;
}

static int job_fails(struct job *j, terr *e)
{
    (void)j;
    return terr_set(e, EACCES, "not permitted: %s", "because");
}

static int job_sleeps(struct job *j, terr *e)
{
    (void)j;
    (void)e;
    pause();
    return 0;
}

/* No child of ours is left, zombie or not (every job reaped by its op). */
static void no_children(void)
{
    siginfo_t si = {0};
    int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | __WALL);
    assert_true(r < 0 && errno == ECHILD);
}

static void test_job_result_and_pairs(void **st)
{
    (void)st;
    terr e = {0};
    strv out = {0};
    assert_int_equal(job_run(NULL, job_pairs, "127.0.0.1", NULL, 0, 0, &out, &e), 0);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.v[0], "host");
    assert_string_equal(out.v[1], "127.0.0.1");
    strv_free(&out);
    assert_int_equal(job_run(NULL, job_fails, NULL, NULL, 0, 0, NULL, &e), -EACCES);
    assert_string_equal(e.msg, "not permitted: because");
    no_children();
}

static void test_job_deadline_kills_and_reaps(void **st)
{
    (void)st;
    terr e = {0};
    long long t0 = now_ns();
    assert_int_equal(job_run(NULL, job_sleeps, NULL, NULL, 0, 100000000LL, NULL, &e),
                     -ETIMEDOUT);
    assert_true(now_ns() - t0 < 2000000000LL);
    assert_non_null(strstr(e.msg, "was killed"));
    no_children();
}

static void test_job_is_an_op(void **st)
{
    (void)st;
    terr e = {0};
    struct op op;
    op_init(&op, NULL, "a test job");
    assert_int_equal(job_start(&op, NULL, job_sleeps, NULL, NULL, 0, &e), OP_STARTED);
    assert_true(op_busy(&op));
    assert_true(op.fd >= 0);
    assert_true(op.pid > 0);
    /* the caller is not blocked; cancel kills and reaps at once */
    op_cancel(&op);
    assert_false(op_busy(&op));
    no_children();
}

/* A worker's state: how many requests it served. */
static int serve_count(struct job *j, const char *req, terr *e)
{
    long *n = *(long **)j->arg;
    if (!n)
        *(long **)j->arg = n = calloc(1, sizeof(*n));
    if (!req)
        return 0;
    if (strcmp(req, "exit") == 0)
        _exit(0);
    if (strcmp(req, "fail") == 0)
        return terr_set(e, EIO, "asked to fail");
    strv_pushf(&j->out, "n");
    strv_pushf(&j->out, "%ld", ++*n);
    return 0;
}

/* The count the worker handed back, through the call's completion. */
static int take_count(struct op *op, int r, const strv *out, void *ud, terr *e)
{
    (void)op;
    (void)e;
    if (r == 0 && out->n == 2)
        *(int *)ud = atoi(out->v[1]);
    return r;
}

static int call(struct worker *w, const char *req, terr *e)
{
    struct op op;
    op_init(&op, NULL, "a call");
    int r = worker_call(w, &op, req, e);
    if (r != OP_STARTED)
        return r;
    int n = -1;
    job_then(&op, take_count, &n);
    op.deadline_ns = now_ns() + 5000000000LL;
    r = op_run_blocking(&op, e);
    return r < 0 ? r : n;
}

static void test_worker_keeps_state_and_comes_back(void **st)
{
    (void)st;
    terr e = {0};
    struct worker w;
    worker_init(&w, NULL, serve_count);
    assert_int_equal(call(&w, "count", &e), 1);
    assert_int_equal(call(&w, "count", &e), 2);
    assert_int_equal(call(&w, "fail", &e), -EIO);
    assert_string_equal(e.msg, "asked to fail");
    /* a worker that dies mid-call is replaced, and the request sent again */
    pid_t first = w.pid;
    assert_int_equal(call(&w, "exit", &e), -EIO);
    assert_int_equal(call(&w, "count", &e), 1); /* a new one: fresh state */
    assert_true(w.pid != first);
    worker_stop(&w);
    no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_result_and_pairs),
        cmocka_unit_test(test_job_deadline_kills_and_reaps),
        cmocka_unit_test(test_job_is_an_op),
        cmocka_unit_test(test_worker_keeps_state_and_comes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
