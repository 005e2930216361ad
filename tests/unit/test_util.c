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

/* The one URL encoder: unreserved ASCII stays whatever the locale, the
 * caller's reserved bytes stay, everything else is %XX (upper case). */
static void url_encoding(void **state)
{
    (void)state;
    strbuf b = {0};
    url_encode(&b, "aZ09-._~", NULL);
    assert_string_equal(b.s, "aZ09-._~");
    sb_free(&b);
    url_encode(&b, "a b+c&d%e#f/g,h@i:j?k=l", "");
    assert_string_equal(b.s, "a%20b%2Bc%26d%25e%23f%2Fg%2Ch%40i%3Aj%3Fk%3Dl");
    sb_free(&b);
    url_encode(&b, "/tmp/a,b c", "/,");
    assert_string_equal(b.s, "/tmp/a,b%20c");
    sb_free(&b);
    url_encode(&b, "\xc3\xa9\x01\x7f", NULL); /* UTF-8 e-acute, controls: byte by byte */
    assert_string_equal(b.s, "%C3%A9%01%7F");
    sb_free(&b);
    url_encode(&b, "", NULL);
    assert_true(b.len == 0);
    sb_free(&b);
}

/* The one FILE:LINE error form: with a line, without one, and the errno
 * it returns. */
static void file_line_errors(void **state)
{
    (void)state;
    terr e = {0};
    assert_int_equal(terr_at(&e, EINVAL, "/etc/t.ini", 12, "[%s] bad %s", "db", "key"), -EINVAL);
    assert_string_equal(e.msg, "/etc/t.ini:12: [db] bad key");
    assert_int_equal(terr_at(&e, ENOENT, "t.ini", 0, "no [%s]", "x"), -ENOENT);
    assert_string_equal(e.msg, "t.ini: no [x]");
    assert_int_equal(terr_at(&e, -EIO, "t.ini", 3, "x"), -EIO);
    assert_int_equal(terr_at(NULL, EPERM, "t.ini", 3, "x"), -EPERM);
}

/* The one boolean parser: the eight words in any case, nothing else (not
 * even with spaces, or a prefix of a word), *out untouched on error. */
static void booleans(void **state)
{
    (void)state;
    static const char *const t[] = {"yes", "YES", "Yes", "true", "TRUE", "tRuE", "on", "ON",
                                    "oN", "1"};
    static const char *const f[] = {"no", "NO", "No", "false", "FALSE", "fAlSe", "off", "OFF",
                                    "oFf", "0"};
    static const char *const bad[] = {"maybe", "", " yes", "yes ", "y", "n", "ye", "tru",
                                      "2", "01", "-1", "yes!", "onn", "nope"};
    bool b;
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        b = false;
        assert_int_equal(parse_bool(t[i], &b), 0);
        assert_true(b);
        b = true;
        assert_int_equal(parse_bool(f[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        b = true;
        if (parse_bool(bad[i], &b) != -EINVAL)
            fail_msg("parse_bool(\"%s\") was taken", bad[i]);
        assert_true(b);
    }
    assert_int_equal(parse_bool(NULL, &b), -EINVAL);
}

static char *mkdtemp_s(void)
{
    char tmpl[] = "/tmp/tether-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return strdup(tmpl);
}

/* The one server-binary finder: PATH through path_search, a path as
 * given, and a missing program names the Debian package to install. */
static void program_finder(void **state)
{
    (void)state;
    char *dir = mkdtemp_s();
    char *prog = xasprintf("%s/fakeserver", dir);
    char *data = xasprintf("%s/datafile", dir);
    int fd = open(prog, O_WRONLY | O_CREAT, 0755);
    assert_true(fd >= 0);
    close(fd);
    fd = open(data, O_WRONLY | O_CREAT, 0644); /* not executable: never picked */
    assert_true(fd >= 0);
    close(fd);
    char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    char *path = xasprintf("/nonexistent:%s", dir);
    setenv("PATH", path, 1);
    char out[4096];
    terr e = {0};
    assert_int_equal(program_find("cache", "fakeserver", "fakepkg", out, sizeof(out), &e), 0);
    assert_string_equal(out, prog);
    assert_int_equal(program_find("cache", prog, "fakepkg", out, sizeof(out), &e), 0);
    assert_string_equal(out, prog);
    assert_int_equal(program_find("cache", "datafile", "fakepkg", out, sizeof(out), &e),
                     -ENOENT);
    assert_int_equal(program_find("cache", "memcached-no-such", "memcached", out, sizeof(out),
                                  &e),
                     -ENOENT);
    assert_string_equal(e.msg, "[cache] memcached-no-such not found in PATH: install the Debian "
                               "package memcached (apt-get install memcached)");
    assert_int_equal(program_find("cache", data, "memcached", out, sizeof(out), &e), -ENOENT);
    assert_non_null(strstr(e.msg, "[cache] "));
    assert_non_null(strstr(e.msg, data));
    assert_non_null(strstr(e.msg, "install the Debian package memcached (apt-get install "
                                  "memcached)"));
    assert_int_equal(program_find("cache", "", "memcached", out, sizeof(out), &e), -ENOENT);
    assert_non_null(strstr(e.msg, "apt-get install memcached"));
    if (old)
        setenv("PATH", old, 1);
    free(old);
    unlink(prog);
    unlink(data);
    rmdir(dir);
    free(path);
    free(prog);
    free(data);
    free(dir);
}

/* A message that quotes another names the service once. */
static void unlabel(void **state)
{
    (void)state;
    assert_string_equal(unlabeled("[web] is not running", "web"), "is not running");
    assert_string_equal(unlabeled("[Web]: cannot connect", "web"), "cannot connect");
    assert_string_equal(unlabeled("[webx] is not running", "web"), "[webx] is not running");
    assert_string_equal(unlabeled("[db] is not running", "web"), "[db] is not running");
    assert_string_equal(unlabeled("helper 12 does not answer", "web"), "helper 12 does not answer");
    assert_string_equal(unlabeled("[web]", "web"), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations),
        cmocka_unit_test(signals),
        cmocka_unit_test(strings),
        cmocka_unit_test(files),
        cmocka_unit_test(closest),
        cmocka_unit_test(url_encoding),
        cmocka_unit_test(file_line_errors),
        cmocka_unit_test(program_finder),
        cmocka_unit_test(booleans),
        cmocka_unit_test(unlabel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
