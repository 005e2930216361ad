/* util.c: durations, signals, strings, atomic writes, file tails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "spawn.h"
#include "util.h"

static void durations(void **state)
{
    long long ns;
    assert_int_equal(parse_duration("30", &ns), 0);
    assert_true(ns == 30000000000LL);
    assert_int_equal(parse_duration("1.5", &ns), 0);
    assert_true(ns == 1500000000LL);
    assert_int_equal(parse_duration("250ms", &ns), 0);
    assert_true(ns == 250000000LL);
    assert_int_equal(parse_duration("2m", &ns), 0);
    assert_true(ns == 120000000000LL);
    assert_int_equal(parse_duration("1h", &ns), 0);
    assert_int_equal(parse_duration("1d", &ns), 0);
    assert_int_equal(parse_duration("", &ns), -EINVAL);
    assert_int_equal(parse_duration("-1", &ns), -EINVAL);
    assert_int_equal(parse_duration("5 s", &ns), -EINVAL);
    assert_int_equal(parse_duration("5x", &ns), -EINVAL);
    assert_int_equal(parse_duration("nan", &ns), -EINVAL);
    assert_int_equal(parse_duration("1e300", &ns), -ERANGE);
}

static void signals(void **state)
{
    assert_int_equal(parse_signal("TERM"), SIGTERM);
    assert_int_equal(parse_signal("SIGKILL"), SIGKILL);
    assert_int_equal(parse_signal("quit"), SIGQUIT);
    assert_int_equal(parse_signal("9"), 9);
    assert_int_equal(parse_signal("0"), -EINVAL);
    assert_int_equal(parse_signal("NOPE"), -EINVAL);
    assert_int_equal(parse_signal("999"), -EINVAL);
    assert_string_equal(signal_name(SIGINT), "INT");
}

static void strings(void **state)
{
    strbuf b = {0};
    for (int i = 0; i < 1000; i++)
        sb_addf(&b, "%d,", i);
    assert_true(b.len > 3000);
    assert_int_equal(strlen(b.s), b.len);
    char *s = sb_steal(&b);
    assert_null(b.s);
    assert_memory_equal(s, "0,1,2,", 6);
    free(s);
    strv v = {0};
    strv_push(&v, "a");
    strv_pushf(&v, "%s-%d", "b", 2);
    assert_true(strv_contains(&v, "b-2"));
    assert_false(strv_contains(&v, "c"));
    assert_null(v.v[v.n]);
    strv_free(&v);
    terr e;
    assert_int_equal(terr_set(&e, ENOENT, "x %d", 1), -ENOENT);
    assert_int_equal(terr_set(&e, -EIO, "y"), -EIO);
    assert_int_equal(terr_prefix(&e, -EIO, "[svc]"), -EIO);
    assert_string_equal(e.msg, "[svc]: y");
    char hex[17];
    assert_int_equal(random_hex(hex, 16), 0);
    assert_int_equal(strlen(hex), 16);
    assert_int_equal(strspn(hex, "0123456789abcdef"), 16);
}

static void files(void **state)
{
    char dir[] = "/tmp/tether-test-util.XXXXXX";
    assert_non_null(mkdtemp(dir));
    int dfd = open(dir, O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(write_file_atomic(dfd, "f", "hello", 5, 0600), 0);
    char *text;
    size_t len;
    assert_int_equal(read_file_at(dfd, "f", &text, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(text, "hello");
    free(text);
    struct stat st;
    assert_int_equal(fstatat(dfd, "f", &st, 0), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* an empty file reads as "" (NUL-terminated) */
    assert_int_equal(write_file_atomic(dfd, "empty", "", 0, 0600), 0);
    assert_int_equal(read_file_at(dfd, "empty", &text, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
    assert_int_equal(read_file_at(dfd, "missing", &text, &len), -ENOENT);
    /* the tail of a log: the last lines, quoted */
    char logpath[256];
    snprintf(logpath, sizeof(logpath), "%s/log", dir);
    FILE *f = fopen(logpath, "w");
    for (int i = 1; i <= 30; i++)
        fprintf(f, "line %d\n", i);
    fclose(f);
    char path[256];
    snprintf(path, sizeof(path), "%s/log", dir);
    char *tail = file_tail(path, 3);
    assert_string_equal(tail, "    | line 28\n    | line 29\n    | line 30\n");
    free(tail);
    tail = file_tail("/nonexistent", 3);
    assert_string_equal(tail, "");
    free(tail);
    close(dfd);
    int fd = open("/tmp", O_DIRECTORY | O_CLOEXEC);
    assert_int_equal(rm_rf_at(fd, dir + 5, NULL), 0);
    close(fd);
}

/* "did you mean": a likely typo, and nothing for an unrelated word */
static void closest(void **state)
{
    (void)state;
    static const char *const keys[] = {"command", "port", "socket", NULL, "stop_timeout",
                                       "init_sql", "postgresql"};
    size_t n = sizeof(keys) / sizeof(keys[0]);
    assert_string_equal(closest_word("comand", keys, n), "command");
    assert_string_equal(closest_word("prot", keys, n), "port"); /* a transposition */
    assert_string_equal(closest_word("Command", keys, n), "command");
    assert_string_equal(closest_word("PORT", keys, n), "port");
    assert_string_equal(closest_word("stop_timout", keys, n), "stop_timeout");
    assert_string_equal(closest_word("postgress", keys, n), "postgresql");
    assert_string_equal(closest_word("init_sq", keys, n), "init_sql");
    assert_null(closest_word("command", keys, n)); /* no typo */
    assert_null(closest_word("colour", keys, n));
    assert_null(closest_word("db", keys, n));
    assert_null(closest_word("", keys, n));
    assert_null(closest_word("x", NULL, 0));
    char longw[200];
    memset(longw, 'a', sizeof(longw) - 1);
    longw[sizeof(longw) - 1] = '\0';
    assert_null(closest_word(longw, keys, n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations),
        cmocka_unit_test(signals),
        cmocka_unit_test(strings),
        cmocka_unit_test(files),
        cmocka_unit_test(closest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
