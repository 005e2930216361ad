/* progress.c and the helper's status channel: progress records go before
 * the outcome, may arrive split, and are printed by level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"
#include "hlog.h"
#include "progress.h"

static void times(void **state)
{
    (void)state;
    char t[32];
    assert_string_equal(progress_time(t, 1234567), "1.2 ms");
    assert_string_equal(progress_time(t, 999000000), "999.0 ms");
    assert_string_equal(progress_time(t, 1250000000), "1.25 s");
}

/* What the sending side puts on the channel at each level. */
static void records(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    progress_to(sv[0]);
    progress_level = PROGRESS_NOTE;
    progress(PROGRESS_NOTE, "building %s ...", "x");
    progress(PROGRESS_STEP, "not at this level");
    progress_level = PROGRESS_QUIET;
    progress(PROGRESS_NOTE, "not when quiet");
    progress_to(-1);
    close(sv[0]);
    char buf[256];
    ssize_t n = read(sv[1], buf, sizeof(buf));
    close(sv[1]);
    assert_int_equal(n, 17); /* with the NUL that ends the record */
    assert_memory_equal(buf, "P1building x ...", 17);
}

/* The reading side: records split across reads, printed by the reader's
 * level on stderr, then the outcome. */
static void reading(void **state)
{
    (void)state;
    int sv[2], err[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC | O_NONBLOCK), 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(err[1], 2);
    progress_level = PROGRESS_NOTE;
    strbuf pending = {0};
    static const char part1[] = "P2a step\0P1buil";
    static const char part2[] = "ding\0Ox\0y\0";
    assert_int_equal(write(sv[1], part1, sizeof(part1) - 1), sizeof(part1) - 1);
    assert_int_equal(helper_read_progress(sv[0], &pending), 0);
    assert_int_equal(write(sv[1], part2, sizeof(part2) - 1), sizeof(part2) - 1);
    assert_int_equal(helper_read_progress(sv[0], &pending), 1);
    shutdown(sv[1], SHUT_WR);
    struct var *vars;
    size_t nv;
    terr e;
    assert_int_equal(helper_read_status(sv[0], &pending, &vars, &nv, NULL, &e), 0);
    assert_int_equal(nv, 1);
    assert_string_equal(vars[0].name, "x");
    assert_string_equal(vars[0].value, "y");
    vars_free(vars, nv);
    dup2(saved, 2);
    close(saved);
    char out[256] = "";
    ssize_t n = read(err[0], out, sizeof(out) - 1);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "tether: building\n");
    progress_level = PROGRESS_QUIET;
    close(err[0]);
    close(err[1]);
    close(sv[0]);
    close(sv[1]);
}

/* Only progress, then EOF: the helper died before its outcome. */
static void no_outcome(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    static const char msg[] = "P1x\0";
    assert_int_equal(write(sv[1], msg, sizeof(msg) - 1), sizeof(msg) - 1);
    close(sv[1]);
    strbuf pending = {0};
    assert_int_equal(helper_read_progress(sv[0], &pending), 0);
    assert_int_equal(helper_read_progress(sv[0], &pending), 1);
    struct var *vars;
    size_t nv;
    terr e;
    assert_int_equal(helper_read_status(sv[0], &pending, &vars, &nv, NULL, &e), -EPIPE);
    assert_non_null(strstr(e.msg, "died before it said"));
    close(sv[0]);
}

/* A warning goes whatever the level, as one line (a message may hold a
 * log's tail): on the channel as a 'W' record, which the reader prints. */
static void warnings(void **state)
{
    (void)state;
    int sv[2], err[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    progress_level = PROGRESS_QUIET;
    progress_to(sv[0]);
    warn("[db] could not drop %s:\nERROR: it is in use\n", "x");
    progress_to(-1);
    char buf[256];
    ssize_t n = read(sv[1], buf, sizeof(buf));
    static const char rec[] = "PW[db] could not drop x: ERROR: it is in use";
    assert_int_equal(n, sizeof(rec));
    assert_memory_equal(buf, rec, sizeof(rec));
    /* the reader, quiet (-q) too */
    assert_int_equal(pipe2(err, O_CLOEXEC | O_NONBLOCK), 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(err[1], 2);
    assert_int_equal(write(sv[1], buf, (size_t)n), n);
    strbuf pending = {0};
    assert_int_equal(helper_read_progress(sv[0], &pending), 0);
    dup2(saved, 2);
    close(saved);
    char out[256] = "";
    n = read(err[0], out, sizeof(out) - 1);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "tether: warning: [db] could not drop x: ERROR: it is in use\n");
    sb_free(&pending);
    close(err[0]);
    close(err[1]);
    close(sv[0]);
    close(sv[1]);
}

/* The helper's log: made at the first warning, locked while its writer
 * lives (stop and gc wait for that), shown, then removed. */
static void helper_log(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/tether-hlog.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    int root = open(tmpl, O_DIRECTORY | O_CLOEXEC);
    assert_true(root >= 0);
    char id[64];
    assert_true(hlog_is("0123abcd.log", id, sizeof(id)));
    assert_string_equal(id, "0123abcd");
    assert_false(hlog_is(".rm-0123abcd.log", id, sizeof(id)));
    assert_false(hlog_is("0123abcd", id, sizeof(id)));
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) { /* the helper */
        char c;
        warn_to_file(root, "0123abcd.log");
        warn("first");
        warn("second\nof two lines");
        if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    strbuf got = {0};
    assert_int_equal(hlog_show(root, "0123abcd", true, &got), -EBUSY);
    assert_int_equal(hlog_show(root, "0123abcd", false, &got), 2);
    assert_string_equal(got.s, "tether: warning: first\ntether: warning: second of two lines\n");
    assert_int_equal(write(go[1], "g", 1), 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(st, 0);
    sb_free(&got);
    assert_int_equal(hlog_show(root, "0123abcd", true, &got), 2);
    struct stat sst;
    assert_int_equal(fstatat(root, "0123abcd.log", &sst, 0), -1); /* gone */
    assert_int_equal(hlog_show(root, "0123abcd", true, &got), 0);
    sb_free(&got);
    close(root);
    rmdir(tmpl);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times),
        cmocka_unit_test(records),
        cmocka_unit_test(reading),
        cmocka_unit_test(no_outcome),
        cmocka_unit_test(warnings),
        cmocka_unit_test(helper_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
