/* The state file: what gc trusts to find and verify an instance's
 * processes.  Round trips, and rejection of anything malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "instance.h"

static void roundtrip(void **state)
{
    struct state_info st, back;
    memset(&st, 0, sizeof(st));
    strcpy(st.id, "0123456789abcdef");
    strcpy(st.boot_id, "ea5ccd7c-06ba-4fd7-8ce7-38ef229fda9b");
    strcpy(st.cookie, "0123456789abcdef-aaaa");
    strcpy(st.prefix, "LP");
    strcpy(st.config, "/path with spaces/tether.ini");
    st.created = 1795737272;
    st.helper.pid = 4242;
    st.helper.starttime = 99999;
    st.n_svcs = 2;
    strcpy(st.svcs[0].label, "postgresql");
    st.svcs[0].proc.pid = 17;
    st.svcs[0].proc.starttime = 123;
    strcpy(st.svcs[0].state, "ready");
    strcpy(st.svcs[0].driver, "postgresql");
    strcpy(st.svcs[1].label, "app-server");
    strcpy(st.svcs[1].state, "pending");
    strcpy(st.svcs[1].driver, "command");
    strbuf b = {0};
    state_format(&b, &st);
    assert_int_equal(state_parse(b.s, &back), 0);
    assert_string_equal(back.id, st.id);
    assert_string_equal(back.boot_id, st.boot_id);
    assert_string_equal(back.cookie, st.cookie);
    assert_string_equal(back.prefix, "LP");
    assert_string_equal(back.config, st.config);
    assert_int_equal(back.created, st.created);
    assert_int_equal(back.helper.pid, 4242);
    assert_int_equal(back.helper.starttime, 99999);
    assert_int_equal(back.n_svcs, 2);
    assert_string_equal(back.svcs[0].label, "postgresql");
    assert_int_equal(back.svcs[0].proc.pid, 17);
    assert_int_equal(back.svcs[0].proc.starttime, 123);
    assert_string_equal(back.svcs[0].driver, "postgresql");
    assert_string_equal(back.svcs[1].label, "app-server");
    assert_string_equal(back.svcs[1].state, "pending");
    sb_free(&b);
}

static void old_service_lines_have_no_driver(void **state)
{
    struct state_info st;
    const char *text = "tether-state 1\nid x\ncookie c\nhelper 5 6\nservice web 7 8 ready\n";
    assert_int_equal(state_parse(text, &st), 0);
    assert_int_equal(st.n_svcs, 1);
    assert_string_equal(st.svcs[0].driver, "");
}

static void rejects_malformed(void **state)
{
    struct state_info st;
    const char *bad[] = {
        "",
        "tether-state 2\nid x\ncookie c\nhelper 5 6\n",         /* unknown version */
        "tether-state 1\nid x\ncookie c\n",                     /* no helper */
        "tether-state 1\nid x\nhelper 5 6\n",                   /* no cookie */
        "tether-state 1\nid x\ncookie c\nhelper -5 6\n",        /* bad pid */
        "tether-state 1\nid x\ncookie c\nhelper 0 6\n",         /* pid 0 would mean our group */
        "tether-state 1\nid x\ncookie c\nhelper 5 6\nservice a b c d\n",
        "tether-state 1\nid x\ncookie c\nhelper 5 6\nwhat is this\n",
        "tether-state 1\nid x\ncookie c\nhelper 5 6\ndescendant 0 6\n",  /* our group */
        "tether-state 1\nid x\ncookie c\nhelper 5 6\ndescendant -7 6\n",
        "tether-state 1\nid x\ncookie c\nhelper 5 6\ndescendant 7\n",     /* no start */
        "tether-state 1\nid x\ncookie c\nhelper 5 6\ndescendant 7 8 9\n", /* junk */
        "tether-state 1\nid x\ncookie c\nhelper 5 6\ndescendant 7 x\n",
        "tether-state 1\nid x\ncookie c\nhelper 5 6\npidns 4\n",
        "tether-state 1\nid x\ncookie c\nhelper 5 6\npidns 4 0\n",         /* no inode */
        "tether-state 1\nid x\ncookie c\nhelper 5 6\npidns a b\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(state_parse(bad[i], &st), 0);
}

static void too_many_services(void **state)
{
    strbuf b = {0};
    sb_add(&b, "tether-state 1\nid x\ncookie c\nhelper 5 6\n");
    for (int i = 0; i < 65; i++)
        sb_addf(&b, "service s%d 1 2 ready command\n", i);
    struct state_info st;
    assert_int_equal(state_parse(b.s, &st), -E2BIG);
    sb_free(&b);
}

static void roundtrip_pidns_and_descendants(void **state)
{
    struct state_info st, back;
    memset(&st, 0, sizeof(st));
    strcpy(st.id, "0123456789abcdef");
    strcpy(st.boot_id, "ea5ccd7c-06ba-4fd7-8ce7-38ef229fda9b");
    strcpy(st.cookie, "0123456789abcdef-aaaa");
    strcpy(st.prefix, "TETHER");
    strcpy(st.config, "/x/tether.ini");
    st.helper.pid = 4242;
    st.helper.starttime = 99999;
    st.pidns.dev = 4;
    st.pidns.ino = 4026531836ULL;
    st.n_descendants = STATE_MAX_DESCENDANTS;
    for (size_t i = 0; i < st.n_descendants; i++)
        st.descendants[i] = (struct proc_id){.pid = (pid_t)(100 + i), .starttime = 7 + i};
    strbuf b = {0};
    state_format(&b, &st);
    assert_int_equal(state_parse(b.s, &back), 0);
    assert_int_equal(back.pidns.dev, 4);
    assert_int_equal(back.pidns.ino, 4026531836ULL);
    assert_int_equal(back.n_descendants, STATE_MAX_DESCENDANTS);
    assert_int_equal(back.descendants[0].pid, 100);
    assert_int_equal(back.descendants[0].starttime, 7);
    assert_int_equal(back.descendants[STATE_MAX_DESCENDANTS - 1].pid,
                     100 + STATE_MAX_DESCENDANTS - 1);
    assert_string_equal(back.config, "/x/tether.ini");
    sb_free(&b);
}

/* A state file from before pid namespaces were recorded: as it always was,
 * the same namespace. */
static void no_pidns_line_is_this_namespace(void **state)
{
    struct state_info st;
    char text[256];
    char boot[64] = "";
    assert_int_equal(proc_boot_id(boot), 0);
    snprintf(text, sizeof(text), "tether-state 1\nid x\nboot %s\ncookie c\nhelper 5 6\n", boot);
    assert_int_equal(state_parse(text, &st), 0);
    assert_int_equal(st.pidns.ino, 0);
    assert_int_equal(st.n_descendants, 0);
    assert_false(state_other_pidns(&st));
}

static void other_pidns(void **state)
{
    struct state_info st;
    memset(&st, 0, sizeof(st));
    assert_int_equal(proc_boot_id(st.boot_id), 0);
    assert_int_equal(proc_pidns(&st.pidns), 0);
    assert_false(state_other_pidns(&st)); /* ours */
    st.pidns.ino++;
    assert_true(state_other_pidns(&st));
    st.pidns.ino--;
    st.pidns.dev++;
    assert_true(state_other_pidns(&st));
    /* another boot: that namespace is long gone, its record is stale */
    strcpy(st.boot_id, "00000000-0000-0000-0000-000000000000");
    assert_false(state_other_pidns(&st));
}

static void too_many_descendants(void **state)
{
    strbuf b = {0};
    sb_add(&b, "tether-state 1\nid x\ncookie c\nhelper 5 6\n");
    for (int i = 0; i <= STATE_MAX_DESCENDANTS; i++)
        sb_addf(&b, "descendant %d 2\n", 10 + i);
    struct state_info st;
    assert_int_equal(state_parse(b.s, &st), -E2BIG);
    sb_free(&b);
}

/* The two reasons an instance outlives its helper stay apart: a failed
 * cleanup (gc retries it) wins over a keep on request (gc --kept). */
static void kept_reasons(void **state)
{
    char dir[] = "/tmp/tether-unit-kept.XXXXXX", why[TERR_MAX];
    assert_non_null(mkdtemp(dir));
    int fd = open(dir, O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(instance_kept(fd, why), KEPT_NOT);
    int ctl = openat(fd, "control", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(ctl >= 0);
    close(ctl);
    terr e;
    assert_int_equal(instance_keep_failed(fd, "the command exited with status 1", &e), 0);
    assert_int_equal(instance_kept(fd, why), KEPT_FAILED);
    assert_string_equal(why, "the command exited with status 1");
    assert_int_equal(faccessat(fd, "control", F_OK, 0), -1); /* nobody answers there */
    strv none = {0};
    assert_int_equal(instance_keep(fd, &none, "db drop failed", &e), 0);
    assert_int_equal(instance_kept(fd, why), KEPT_CLEANUP);
    assert_string_equal(why, "db drop failed");
    close(fd);
    assert_int_equal(rm_rf_at(AT_FDCWD, dir, NULL), 0);
}

static void keep_failed_variable(void **state)
{
    (void)state;
    bool keep = true;
    terr e;
    assert_int_equal(unsetenv(KEEP_FAILED_VAR), 0);
    assert_int_equal(keep_failed_env(&keep, &e), 0);
    assert_false(keep);
    /* every boolean as parse_bool reads it, in any case */
    const char *off[] = {"", "0", "no", "No", "false", "FALSE", "off", "oFF"};
    const char *on[] = {"1", "yes", "YES", "true", "True", "on", "oN"};
    for (size_t i = 0; i < ARRAY_SIZE(off); i++) {
        setenv(KEEP_FAILED_VAR, off[i], 1);
        keep = true;
        assert_int_equal(keep_failed_env(&keep, &e), 0);
        assert_false(keep);
    }
    for (size_t i = 0; i < ARRAY_SIZE(on); i++) {
        setenv(KEEP_FAILED_VAR, on[i], 1);
        keep = false;
        assert_int_equal(keep_failed_env(&keep, &e), 0);
        assert_true(keep);
    }
    /* anything else is an error that names the variable, not a guess */
    setenv(KEEP_FAILED_VAR, "maybe", 1);
    assert_int_equal(keep_failed_env(&keep, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "TETHER_KEEP_FAILED=maybe: say yes or no"));
    unsetenv(KEEP_FAILED_VAR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip),
        cmocka_unit_test(old_service_lines_have_no_driver),
        cmocka_unit_test(rejects_malformed),
        cmocka_unit_test(too_many_services),
        cmocka_unit_test(roundtrip_pidns_and_descendants),
        cmocka_unit_test(no_pidns_line_is_this_namespace),
        cmocka_unit_test(other_pidns),
        cmocka_unit_test(too_many_descendants),
        cmocka_unit_test(kept_reasons),
        cmocka_unit_test(keep_failed_variable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
