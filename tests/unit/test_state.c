/* The state file: what gc trusts to find and verify an instance's
 * processes.  Round trips, and rejection of anything malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip),
        cmocka_unit_test(old_service_lines_have_no_driver),
        cmocka_unit_test(rejects_malformed),
        cmocka_unit_test(too_many_services),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
