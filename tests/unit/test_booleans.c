/* Every boolean key of every driver (built-in or recipe: whatever
 * driver_at() lists and driver_find() returns) reads a boolean as
 * parse_bool does -- yes/no, true/false, on/off, 1/0 in any case -- and
 * refuses anything else with FILE:LINE.  The boolean keys are found, not
 * listed: a key that refuses "maybe" and takes one of the words is one, so
 * a new driver's or recipe's keys are covered without editing this file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "drivers/driver.h"

#define FILE_NAME "b.ini"
#define KEY_LINE 3 /* [s], driver = ..., then the key */

static const char *const yes_words[] = {"yes", "true", "on", "1", "YES", "True", "oN", "tRUE", "On", "yEs"};
static const char *const no_words[] = {"no", "false", "off", "0", "NO", "False", "oFF", "fALSE", "Off", "nO"};

/* Load "[s] driver = d, key = value": 0 and *out, or -errno and e. */
static int load(const struct tether_driver *d, const char *key, const char *value,
                struct tether_config **out, terr *e)
{
    char data[512];
    int n = snprintf(data, sizeof(data), "[s]\ndriver = %s\n%s = %s\n", d->name, key, value);
    assert_true(n > 0 && (size_t)n < sizeof(data));
    *out = NULL;
    return config_parse(FILE_NAME, data, (size_t)n, out, e);
}

static bool accepts(const struct tether_driver *d, const char *key, const char *value)
{
    struct tether_config *c;
    terr e;
    int r = load(d, key, value, &c, &e);
    config_free(c);
    return r == 0;
}

/* What the driver made of the section, to compare one spelling with
 * another: "YES" must mean what "yes" means. */
static void fingerprint(const struct tether_config *c, char *out, size_t n)
{
    const struct svc_conf *s = c->svcs[0];
    snprintf(out, n, "port=%d socket=%s ready=%d sig=%d stop=%lld timeout=%lld", s->port,
             s->socket ? s->socket : "-", (int)s->ready, s->stop_signal, s->stop_timeout_ns,
             s->timeout_ns);
}

static void loads_as(const struct tether_driver *d, const char *key, const char *value,
                     char *print, size_t n)
{
    struct tether_config *c;
    terr e;
    if (load(d, key, value, &c, &e) != 0)
        fail_msg("[%s driver] %s = %s refused: %s", d->name, key, value, e.msg);
    fingerprint(c, print, n);
    config_free(c);
}

/* key is a boolean of d: check every spelling, and the error for one that
 * is not. */
static void check_bool_key(const struct tether_driver *d, const char *key)
{
    char want_yes[256], want_no[256], got[256];
    loads_as(d, key, "yes", want_yes, sizeof(want_yes));
    loads_as(d, key, "no", want_no, sizeof(want_no));
    for (size_t i = 0; i < ARRAY_SIZE(yes_words); i++) {
        loads_as(d, key, yes_words[i], got, sizeof(got));
        if (!streq(got, want_yes))
            fail_msg("[%s driver] %s = %s is not read as yes (%s, not %s)", d->name, key,
                     yes_words[i], got, want_yes);
        loads_as(d, key, no_words[i], got, sizeof(got));
        if (!streq(got, want_no))
            fail_msg("[%s driver] %s = %s is not read as no (%s, not %s)", d->name, key,
                     no_words[i], got, want_no);
    }
    struct tether_config *c;
    terr e;
    assert_int_equal(load(d, key, "maybe", &c, &e), -EINVAL);
    config_free(c);
    char where[64], what[128];
    snprintf(where, sizeof(where), "%s:%d: ", FILE_NAME, KEY_LINE);
    snprintf(what, sizeof(what), "%s = maybe: say " BOOL_WORDS, key);
    if (strncmp(e.msg, where, strlen(where)) != 0 || !strstr(e.msg, what))
        fail_msg("[%s driver] %s = maybe: the error \"%s\" does not start with \"%s\" and say "
                 "\"%s\"",
                 d->name, key, e.msg, where, what);
}

/* A key that refuses "maybe" but takes one of the boolean words (not
 * counting 1 and 0, which a number takes too: memory = 1). */
static bool is_bool_key(const struct tether_driver *d, const char *key)
{
    if (accepts(d, key, "maybe"))
        return false;
    for (size_t i = 0; i < ARRAY_SIZE(yes_words); i++)
        if ((!streq(yes_words[i], "1") && accepts(d, key, yes_words[i])) ||
            (!streq(no_words[i], "0") && accepts(d, key, no_words[i])))
            return true;
    return false;
}

static bool listed(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (streq(v[i], s))
            return true;
    return false;
}

static void every_driver_reads_booleans_alike(void **state)
{
    (void)state;
    /* "driver.key" of every boolean key found */
    char found[64][64];
    const char *foundp[64];
    size_t nfound = 0;
    const struct tether_driver *d;
    for (size_t i = 0; (d = driver_at(i)); i++) {
        assert_ptr_equal(driver_find(d->name), d);
        for (const char *const *k = d->keys; k && *k; k++) {
            if ((*k)[strlen(*k) - 1] == '.') /* a prefix (setting.NAME): free text */
                continue;
            if (!is_bool_key(d, *k))
                continue;
            check_bool_key(d, *k);
            assert_true(nfound < ARRAY_SIZE(found));
            snprintf(found[nfound], sizeof(found[nfound]), "%s.%s", d->name, *k);
            foundp[nfound] = found[nfound];
            nfound++;
        }
    }
    /* the search finds the boolean keys there are (so that it cannot pass
     * by finding none): those of the drivers present today */
    static const char *const known[] = {"postgresql.tcp", "postgresql.native_env", "redis.tcp",
                                        "memcached.tcp"};
    for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
        char name[32];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(known[i], "."), known[i]);
        if (driver_find(name) && !listed(foundp, nfound, known[i]))
            fail_msg("%s was not found as a boolean key", known[i]);
    }
    assert_true(nfound > 0);
    print_message("boolean keys checked: %zu\n", nfound);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_driver_reads_booleans_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
