/* Unit tests for recipes (lib/drivers/recipe.c) and the search path
 * (lib/drivers/registry.c): every key, every error with its FILE:LINE,
 * options in a config (bools in any case, did you mean), and which recipe
 * wins where. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "shipped.h"
#include "drivers/driver.h"
#include "drivers/recipe.h"
#include "proto.h"

static char tmp[PATH_MAX];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/test_recipe.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp))
        return -1;
    /* nothing of the user's: only what a test puts there */
    unsetenv("TETHER_DRIVERS");
    char xdg[PATH_MAX + 8];
    snprintf(xdg, sizeof(xdg), "%s/xdg", tmp);
    setenv("XDG_DATA_HOME", xdg, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *rel, const char *text)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof(p), "%s/%s", tmp, rel);
    for (char *s = strchr(p + strlen(tmp) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(p, 0700);
        *s = '/';
    }
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static const char full[] =
    "# every key\n"
    "[driver]\n"
    "program = sh\n"
    "package = dash\n"
    "description = a test server\n"
    "tcp_warning = no password on TCP\n"
    "\n"
    "[option tcp]\n"
    "type = bool\n"
    "implied_by = port\n"
    "help = TCP instead of a socket\n"
    "\n"
    "[option size]\n"
    "type = int\n"
    "default = 8\n"
    "min = 1\n"
    "max = 64\n"
    "\n"
    "[option mode]\n"
    "values = fast safe\n"
    "default = safe\n"
    "\n"
    "[option name]\n"
    "type = string\n"
    "\n"
    "[server]\n"
    "command = ${program} -c \"exec sleep 100\" ${size}\n"
    "cwd = ${dir}\n"
    "user = nobody\n"
    "stop_group = no\n"
    "stop_signal = INT\n"
    "stop_timeout = 2s\n"
    "timeout = 9\n"
    "ready = log:up\n"
    "reset = restart\n"
    "env.SIZE = ${size}\n"
    "file.t.conf = size ${size}\n"
    "  mode ${mode}\n"
    "export.ADDRESS = ${socket}\n"
    "global.T_ADDRESS = ADDRESS\n"
    "\n"
    "[when tcp = no]\n"
    "socket = t.sock\n"
    "args = -s ${socket}\n"
    "\n"
    "[when tcp = yes]\n"
    "port = auto\n"
    "args = -p ${port}\n"
    "export.ADDRESS = 127.0.0.1:${port}\n"
    "\n"
    "[when mode = fast]\n"
    "args = --fast\n"
    "ready = tcp\n";

static struct recipe *parse_ok(const char *text)
{
    struct recipe *r = NULL;
    terr e = {{0}};
    if (recipe_parse("t.ini", "t", text, strlen(text), &r, &e) != 0)
        fail_msg("parsing failed: %s", e.msg);
    return r;
}

static bool has(const char *const *list, const char *s)
{
    for (; list && *list; list++)
        if (streq(*list, s))
            return true;
    return false;
}

static void test_every_key(void **state)
{
    (void)state;
    struct recipe *r = parse_ok(full);
    const struct tether_driver *d = recipe_driver(r);
    assert_ptr_equal(recipe_of(d), r);
    assert_null(recipe_of(&driver_redis));
    assert_string_equal(d->name, "t");
    assert_string_equal(d->package, "dash");
    assert_string_equal(d->tcp_warning, "no password on TCP");
    assert_string_equal(recipe_description(r), "a test server");
    for (const char *k = "tcp"; k; k = NULL)
        assert_true(has(d->keys, k));
    assert_true(has(d->keys, "size"));
    assert_true(has(d->keys, "mode"));
    assert_true(has(d->keys, "name"));
    assert_true(has(d->keys, "bin"));
    assert_true(has(d->vars, "ADDRESS"));
    assert_string_equal(d->globals[0], "T_ADDRESS");
    assert_string_equal(d->globals[1], "ADDRESS");
    assert_null(d->globals[2]);
    recipe_free(r);
}

/* A config with [tether] drivers = r and the recipe t: loaded or the error. */
static int load(const char *conf, struct tether_config **c, terr *e)
{
    put("r/t.ini", full);
    put("t.conf", conf);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/t.conf", tmp);
    return config_load(p, c, e);
}

static struct svc_conf *svc_ok(const char *conf, struct tether_config **c)
{
    terr e = {{0}};
    if (load(conf, c, &e) != 0)
        fail_msg("loading:\n%s\nfailed: %s", conf, e.msg);
    return (*c)->svcs[0];
}

static void test_config_options(void **state)
{
    (void)state;
    struct tether_config *c = NULL;
    /* defaults, and the [when tcp = no] keys */
    struct svc_conf *s = svc_ok("[tether]\ndrivers = r\n[a]\ndriver = t\n", &c);
    assert_string_equal(s->driver->name, "t");
    assert_string_equal(svc_opt(s, "tcp"), "no");
    assert_string_equal(svc_opt(s, "size"), "8");
    assert_string_equal(svc_opt(s, "mode"), "safe");
    assert_null(svc_opt(s, "name")); /* a string without a default */
    assert_string_equal(s->socket, "t.sock");
    assert_int_equal(s->port, -1);
    assert_int_equal(s->ready, READY_LOG);
    assert_string_equal(s->ready_arg, "up");
    assert_true(s->reset_restart);
    assert_int_equal(s->stop_signal, SIGINT);
    assert_int_equal(s->stop_timeout_ns, 2000000000LL);
    assert_int_equal(s->timeout_ns, 9000000000LL);
    assert_true(s->stop_pid_only);
    assert_int_equal(s->n_env, 1);
    config_free(c);

    /* bools in any case; the section's own keys win; [when] replaces */
    static const char *const yes[] = {"YES", "True", "on", "1"};
    for (size_t i = 0; i < 4; i++) {
        char conf[256];
        snprintf(conf, sizeof(conf),
                 "[a]\ndriver = t\ntcp = %s\nmode = fast\nstop_signal = TERM\nsize = 064\n"
                 "[tether]\ndrivers = r\n",
                 yes[i]);
        s = svc_ok(conf, &c);
        assert_string_equal(svc_opt(s, "tcp"), "yes");
        assert_string_equal(svc_opt(s, "size"), "64");
        assert_int_equal(s->port, 0);
        assert_null(s->socket);
        assert_int_equal(s->ready, READY_TCP); /* [when mode = fast] */
        assert_int_equal(s->stop_signal, SIGTERM);
        config_free(c);
    }
    /* a port implies tcp = yes; a section's ready wins over the recipe's */
    s = svc_ok("[tether]\ndrivers = r\n[t]\nport = 4000\nready = none\ntcp = No\n", &c);
    assert_string_equal(svc_opt(s, "tcp"), "no"); /* said, not implied */
    config_free(c);
    s = svc_ok("[tether]\ndrivers = r\n[t]\nport = 4000\nready = none\n", &c);
    assert_string_equal(svc_opt(s, "tcp"), "yes");
    assert_int_equal(s->port, 4000);
    assert_int_equal(s->ready, READY_NONE);
    config_free(c);
}

/* A protocol check over continuation lines: its words, split as a
 * config's would be (the reader joins a recipe's lines with '\n', which
 * is no blank to a protocol check). */
static void test_continued_check(void **state)
{
    (void)state;
    put("r/u.ini", "[driver]\nprogram = sh\npackage = dash\n[server]\ncommand = ${program}\n"
                   "socket = u.sock\nready = \"send:A B\"\n  send:C\n  expect:D\n");
    put("t.conf", "[tether]\ndrivers = r\n[u]\n");
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/t.conf", tmp);
    struct tether_config *c = NULL;
    terr e = {{0}};
    if (config_load(p, &c, &e) != 0)
        fail_msg("loading failed: %s", e.msg);
    const struct svc_conf *s = c->svcs[0];
    assert_non_null(s->ready_proto);
    assert_int_equal(s->ready_proto->n_steps, 3);
    config_free(c);
}

struct bad {
    const char *conf;
    const char *want; /* after "DIR/t.conf" */
};

static void test_config_errors(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"[tether]\ndrivers = r\n[a]\ndriver = t\ntcp = maybe\n",
         ":5: [a] tcp = maybe: say yes or no (or true/false, on/off, 1/0)"},
        {"[tether]\ndrivers = r\n[a]\ndriver = t\nsize = 65\n",
         ":5: [a] size = 65: give a whole number from 1 to 64 (default 8)"},
        {"[tether]\ndrivers = r\n[a]\ndriver = t\nsize = lots\n",
         ":5: [a] size = lots: give a whole number from 1 to 64 (default 8)"},
        {"[tether]\ndrivers = r\n[a]\ndriver = t\nmode = slow\n",
         ":5: [a] mode = slow: use one of fast, safe"},
        {"[tether]\ndrivers = r\n[a]\ndriver = t\nsiez = 3\n",
         ":5: [a] unknown key 'siez': did you mean 'size'?"},
        {"[tether]\ndrivers = r\n[a]\ndriver = t\nbin =\n",
         ":5: [a] bin is empty: give the sh to run, or remove it to use the one on PATH"},
        {"[tether]\ndrivers = r\n[a]\ndriver = u\n",
         ":4: [a] unknown driver 'u': did you mean 't'? (the drivers are: " SHIPPED_C ", t, " SHIPPED_RECIPES "; driver = command with command = ... runs "
         "anything else)"},
        {"[tether]\ndrivers = nosuch\n[a]\ncommand = x\n",
         NULL /* filled in below: it names the directory */},
        {"[tether]\ndriver = r\n[a]\ncommand = x\n",
         ":2: [tether] unknown key 'driver': did you mean 'drivers'? (known: prefix, drivers)"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct tether_config *c = NULL;
        terr e = {{0}};
        assert_int_equal(load(cases[i].conf, &c, &e), -EINVAL);
        char want[PATH_MAX * 2 + 512];
        if (cases[i].want)
            snprintf(want, sizeof(want), "%s/t.conf%s", tmp, cases[i].want);
        else
            snprintf(want, sizeof(want),
                     "%s/t.conf:2: [tether] drivers = nosuch: %s/nosuch is not a directory (No "
                     "such file or directory): create it, or fix the path (relative to this file)",
                     tmp, tmp);
        if (!streq(e.msg, want))
            fail_msg("case %zu:\ngot:  %s\nwant: %s", i, e.msg, want);
    }
}

/* type = template: the config checks its ${names} at its line (a
 * dependency's needs after =), and it may not name a template option. */
static void test_template_option(void **state)
{
    (void)state;
    put("r/tp.ini", "[driver]\nprogram = sh\npackage = dash\n"
                    "[option up]\ntype = template\ndefault = none\n"
                    "[option root_dir]\ntype = template\ndefault = ${dir}\n"
                    "[server]\ncommand = ${program}\nfile.x = ${up} ${root_dir}\n"
                    "[when up = none]\nfile.x = static\n");
    static const struct bad cases[] = {
        {"[tether]\ndrivers = r\n[a]\ndriver = tp\nup = http://127.0.0.1:${b.PORT}\n",
         ":5: [a] unknown variable ${b.PORT} in up (known: dir, instance, label, config_dir, up, "
         "root_dir, bin, program, password, user)"},
        {"[tether]\ndrivers = r\n[a]\ndriver = tp\nroot_dir = ${up}/x\n",
         ":5: [a] root_dir = ${up}/x: ${up} is a template option itself: write what it stands "
         "for"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct tether_config *c = NULL;
        terr e = {{0}};
        put("t.conf", cases[i].conf);
        char p[PATH_MAX + 16], want[PATH_MAX * 2 + 512];
        snprintf(p, sizeof(p), "%s/t.conf", tmp);
        assert_int_equal(config_load(p, &c, &e), -EINVAL);
        snprintf(want, sizeof(want), "%s/t.conf%s", tmp, cases[i].want);
        if (!streq(e.msg, want))
            fail_msg("case %zu:\ngot:  %s\nwant: %s", i, e.msg, want);
    }
    /* with after =, it loads; the value stays a template until the start */
    struct tether_config *c = NULL;
    terr e = {{0}};
    put("t.conf", "[tether]\ndrivers = r\n[b]\ncommand = x\nport = auto\n"
                  "[a]\ndriver = tp\nafter = b\nup = http://127.0.0.1:${b.PORT}\n");
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/t.conf", tmp);
    if (config_load(p, &c, &e) != 0)
        fail_msg("loading failed: %s", e.msg);
    assert_string_equal(svc_opt(c->svcs[1], "up"), "http://127.0.0.1:${b.PORT}");
    assert_string_equal(svc_opt(c->svcs[1], "root_dir"), "${dir}");
    config_free(c);
}

/* Every error of a recipe, with its line. */
static void test_recipe_errors(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"[server]\ncommand = x\n",
         ": no [driver] section: it names the program (program = NAME) and its package"},
        {"[driver]\npackage = x\n[server]\ncommand = x\n",
         ":1: [driver] has no program = NAME: say which server to run (a name looked up in "
         "PATH, or an absolute path)"},
        {"[driver]\nprogram = x\npackage = p\nprogam = y\n[server]\ncommand = x\n",
         ":4: [driver] unknown key 'progam': did you mean 'program'?"},
        {"[driver]\nprogram = x\npackage = p\n",
         ": no [server] section with command = ...: say how to run the server"},
        {"[driver]\nprogram = x\npackage = p\n[server]\nport = auto\n",
         ":4: [server] has no command = ...: say how to run the server, e.g. command = "
         "${program} --port ${port}"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\n[sever]\n",
         ":6: unknown section [sever] (a recipe has [driver], [option NAME], [server] and "
         "[when OPTION = VALUE])"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\n[server]\n",
         ":6: duplicate section [server] (first on line 4): merge the two"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = float\n[server]\ncommand = x\n",
         ":5: [option a] type = float: use bool, int, string or template"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = int\n[server]\ncommand = x\n",
         ":4: [option a] has no default = N: an int option needs one"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = int\ndefault = 1\nmin = z\n[server]\n"
         "command = x\n",
         ":7: [option a] min = z: only an int option has a min, a whole number"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = bool\nmax = 3\n[server]\ncommand = x\n",
         ":6: [option a] max = 3: only an int option has a max, a whole number"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = bool\ndefault = maybe\n[server]\n"
         "command = x\n",
         ":6: [option a] default = maybe: say yes or no (or true/false, on/off, 1/0)"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = int\ndefault = 9\nmax = 5\n[server]\n"
         "command = x\n",
         ":6: [option a] default = 9: give a whole number from -9223372036854775808 to 5"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = int\ndefault = 1\nvalues = 1 2\n"
         "[server]\ncommand = x\n",
         ":7: [option a] values: only a string option has a list of values"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntype = bool\nimplied_by = colour\n[server]\n"
         "command = x\n",
         ":6: [option a] implied_by = colour: a bool option is implied by one of the keys "
         "every service takes (e.g. port)"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\ntipe = bool\n[server]\ncommand = x\n",
         ":5: [option a] unknown key 'tipe': did you mean 'type'?"},
        {"[driver]\nprogram = x\npackage = p\n[option port]\n[server]\ncommand = x\n",
         ":4: [option port]: 'port' cannot be an option's name: use lower-case letters, "
         "digits and '_', and none of the keys every service takes, bin, root or a built-in "
         "${name}"},
        {"[driver]\nprogram = x\npackage = p\n[option a]\n[option a]\n[server]\ncommand = x\n",
         ":5: duplicate section [option a] (first on line 4): merge the two"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\ncomand = y\n",
         ":6: [server] unknown key 'comand': did you mean 'command'?"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\nready = bogus\n",
         ":6: [server] unknown ready = bogus: use none, tcp, unix:PATH, log:REGEX, "
         "exec:COMMAND, notify, fd:N, send:TEXT expect:TEXT or http:/PATH"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\nhealth = send:PING expect\n",
         ":6: [server] health = send:PING expect: 'expect' is not a word of this check: use "
         "send:TEXT, raw:TEXT, expect:TEXT, http:/PATH, to:unix:PATH or to:tcp:PORT, and quote "
         "text with spaces (\"send:SCRIPT FLUSH\")"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\nstop_group = sometimes\n",
         ":6: [server] stop_group = sometimes: say yes or no (or true/false, on/off, 1/0)"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\nuser =\n",
         ":6: [server] user is empty: name the accounts to try"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\nfile.a/b = x\n",
         ":6: [server] file.a/b: a file's name is a plain name in the service's directory "
         "(no '/')"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x \"y\n",
         ":5: command: unterminated \" quote in: x \"y: add the closing \" (write \\\" for a "
         "quote inside quotes)"},
        {"[driver]\nprogram = x\npackage = p\n[option size]\ntype = int\ndefault = 1\n[server]\n"
         "command = x ${siez}\n",
         ":8: unknown variable ${siez} in command (known: dir, instance, label, config_dir, "
         "port, socket, program, password, user, bin, size, and SERVICE.NAME of a service in after =); did "
         "you mean ${size}?"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\nglobal.X = URL\n",
         ":6: global.X = URL: URL is none of the recipe's export.NAME"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\n[when tcp = yes]\n",
         ":6: [when tcp = yes]: no option 'tcp' (define it in an [option tcp] section; root "
         "is tether running as root)"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\n[when tcp]\n",
         ":6: [when tcp]: write [when OPTION = VALUE], e.g. [when tcp = yes]"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\n[when root = maybe]\n",
         ":6: [when root = maybe]: say yes or no (or true/false, on/off, 1/0)"},
        {"[driver]\nprogram = x\npackage = p\n[server]\ncommand = x\n[when root = yes]\ncommand = y\n",
         ":7: [when root = yes] unknown key 'command' (known: args, cwd, user, stop_group, "
         "file.NAME, export.NAME, port, socket, ready, reset, health, timeout, stop_signal, "
         "stop_timeout, env.NAME)"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct recipe *r = NULL;
        terr e = {{0}};
        const char *text = cases[i].conf;
        assert_int_equal(recipe_parse("R.ini", "r", text, strlen(text), &r, &e), -EINVAL);
        assert_null(r);
        char want[1024];
        snprintf(want, sizeof(want), "R.ini%s", cases[i].want);
        if (!streq(e.msg, want))
            fail_msg("case %zu:\n%s\ngot:  %s\nwant: %s", i, text, e.msg, want);
    }
    /* every error at once, in the order of the file */
    static const char many[] = "[server]\ncomand = x\n[driver]\nprogam = x\n";
    struct recipe *r = NULL;
    terr e = {{0}};
    assert_int_equal(recipe_parse("R.ini", "r", many, strlen(many), &r, &e), -EINVAL);
    assert_string_equal(e.msg, "R.ini:1: [server] has no command = ...: say how to run the "
                               "server, e.g. command = ${program} --port ${port}\n"
                               "R.ini:2: [server] unknown key 'comand': did you mean "
                               "'command'?\n"
                               "R.ini:3: [driver] has no program = NAME: say which server to "
                               "run (a name looked up in PATH, or an absolute path)\n"
                               "R.ini:3: [driver] has no package = NAME: say which Debian "
                               "package has the program, for the error when it is missing\n"
                               "R.ini:4: [driver] unknown key 'progam': did you mean "
                               "'program'?");
}

static const char *from_of(const char *name, const char *config_dir)
{
    static char from[PATH_MAX];
    struct driver_entry *v;
    size_t n = driver_list(config_dir, &v);
    from[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (streq(v[i].name, name))
            snprintf(from, sizeof(from), "%s", v[i].from);
    driver_list_free(v, n);
    return from;
}

static const char mini[] = "[driver]\nprogram = true\npackage = coreutils\n[server]\ncommand = ${program}\n";

/* [tether] drivers, then $TETHER_DRIVERS, then XDG, then the C built-ins,
 * then the installed and compiled-in recipes; a user's recipe of a
 * built-in's name wins. */
static void test_search_path(void **state)
{
    (void)state;
    char cfg[PATH_MAX + 8], env[PATH_MAX * 2 + 16], xdg[PATH_MAX + 32], p[PATH_MAX + 64];
    snprintf(cfg, sizeof(cfg), "%s/cfg", tmp);
    snprintf(env, sizeof(env), "%s/nothing:%s/env", tmp, tmp);
    snprintf(xdg, sizeof(xdg), "%s/xdg/tether/drivers", tmp);
    /* the compiled-in memcached, and the C redis */
    const struct tether_driver *d = driver_lookup(NULL, "memcached", NULL);
    assert_non_null(d);
    assert_string_equal(recipe_path(recipe_of(d)), "(built-in)/memcached.ini");
    assert_string_equal(from_of("memcached", NULL), "built-in");
    assert_ptr_equal(driver_lookup(NULL, "redis", NULL), &driver_redis);
    assert_string_equal(from_of("redis", NULL), "built-in (C)");
    assert_null(driver_lookup(NULL, "x", NULL));
    assert_null(driver_lookup(NULL, "../x", NULL)); /* a name, never a path */

    /* XDG shadows the built-ins */
    put("xdg/tether/drivers/x.ini", mini);
    put("xdg/tether/drivers/redis.ini", mini);
    put("xdg/tether/drivers/memcached.ini", mini);
    snprintf(p, sizeof(p), "%s/x.ini", xdg);
    assert_string_equal(recipe_path(recipe_of(driver_lookup(NULL, "x", NULL))), p);
    snprintf(p, sizeof(p), "%s/redis.ini", xdg);
    assert_string_equal(recipe_path(recipe_of(driver_lookup(NULL, "redis", NULL))), p);
    assert_string_equal(from_of("redis", NULL), p);
    snprintf(p, sizeof(p), "%s/memcached.ini", xdg);
    assert_string_equal(recipe_path(recipe_of(driver_lookup(NULL, "memcached", NULL))), p);
    assert_string_equal(from_of("memcached", NULL), p);

    /* $TETHER_DRIVERS shadows XDG, each of its directories in order */
    setenv("TETHER_DRIVERS", env, 1);
    put("env/x.ini", mini);
    snprintf(p, sizeof(p), "%s/env/x.ini", tmp);
    assert_string_equal(recipe_path(recipe_of(driver_lookup(NULL, "x", NULL))), p);
    put("nothing/x.ini", mini);
    snprintf(p, sizeof(p), "%s/nothing/x.ini", tmp);
    assert_string_equal(recipe_path(recipe_of(driver_lookup(NULL, "x", NULL))), p);
    assert_string_equal(from_of("x", NULL), p);

    /* the config's drivers = shadows them all */
    put("cfg/x.ini", mini);
    snprintf(p, sizeof(p), "%s/cfg/x.ini", tmp);
    assert_string_equal(recipe_path(recipe_of(driver_lookup(cfg, "x", NULL))), p);
    assert_string_equal(from_of("x", cfg), p);

    /* a broken recipe is an error, not a fall back to the next one */
    put("cfg/redis.ini", "[driver]\n");
    terr e = {{0}};
    assert_null(driver_lookup(cfg, "redis", &e));
    snprintf(p, sizeof(p), "%s/cfg/redis.ini: no [server] section", tmp);
    assert_non_null(strstr(e.msg, p));
    unsetenv("TETHER_DRIVERS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key),
        cmocka_unit_test_setup_teardown(test_config_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continued_check, setup, teardown),
        cmocka_unit_test(test_recipe_errors),
        cmocka_unit_test_setup_teardown(test_search_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
