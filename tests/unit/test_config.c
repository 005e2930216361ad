/* Unit tests for lib/config.c: reading, defaults, validation errors (each
 * with its line), dependency selection and config_locate. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "config.h"
#include "shipped.h"
#include "drivers/driver.h"

#define SEC 1000000000LL

static char tmpdir[PATH_MAX];
static char tmpfile_path[PATH_MAX + 16];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_config.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(tmpfile_path, sizeof(tmpfile_path), "%s/t.ini", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(tmpfile_path);
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/tether.ini", tmpdir);
    unlink(p);
    rmdir(tmpdir);
    return 0;
}

static const char *write_conf_n(const char *data, size_t len)
{
    FILE *f = fopen(tmpfile_path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return tmpfile_path;
}

static const char *write_conf(const char *data) { return write_conf_n(data, strlen(data)); }

static struct tether_config *load_ok(const char *data)
{
    terr e = {{0}};
    struct tether_config *c = NULL;
    if (config_load(write_conf(data), &c, &e) != 0)
        fail_msg("loading:\n%s\nfailed: %s", data, e.msg);
    assert_non_null(c);
    return c;
}

/* The message must be exactly PATH followed by `want`. */
static void check_err_n(const char *data, size_t len, const char *want, int idx)
{
    terr e = {{0}};
    struct tether_config *c = NULL;
    const char *path = write_conf_n(data, len);
    int r = config_load(path, &c, &e);
    if (r != -EINVAL)
        fail_msg("case %d: config_load returned %d (%s) for:\n%s", idx, r, e.msg, data);
    assert_null(c);
    size_t n = strlen(path);
    if (strncmp(e.msg, path, n) != 0 || !streq(e.msg + n, want))
        fail_msg("case %d: for:\n%s\ngot:  %s\nwant: %s%s", idx, data, e.msg, path, want);
}

static void check_err(const char *data, const char *want, int idx)
{
    check_err_n(data, strlen(data), want, idx);
}

static const struct {
    const char *conf;
    const char *msg; /* after the file name */
} errcases[] = {
    /* what inih would reject or silently get wrong */
    {"[a]\ncommand = x\n[b\n", ":3: section header has no closing ']': write [name]"},
    {"[a]\ncommand = x\n[b ;]\n", ":3: section header has no closing ']': write [name]"},
    {"[a]\ncommand = x\njust some words\n",
     ":3: expected key = value, a [section] header or a ; comment, not \"just some words\""},
    {"; comment\ncommand = x\n[a]\ncommand = y\n",
     ":2: 'command' is outside any section: move it under [tether] or a [service] header"},
    {"[a]\n= x\n", ":2: missing key name before '=': write key = value"},
    {"[a]\ncommand = x\nport = 1\nport = 2\n",
     ":4: [a] duplicate key 'port' (first set on line 3): remove one, or indent this line to "
     "continue the value"},
    {"[a]\ncommand = x\n\n[a.b]\ncommand = x\n",
     ":4: invalid section name [a.b]: a service name uses only letters, digits, '_' and '-'"},
    {"[]\n", ":1: invalid section name []: a service name uses only letters, digits, '_' and '-'"},
    {"[ a ]\n",
     ":1: invalid section name [ a ]: a service name uses only letters, digits, '_' and '-'"},
    {"[Tether]\n", ":1: [Tether] is reserved: the global section is spelled [tether], and a "
                   "service cannot be called that"},
    {"[a]\ncommand = x\n\n[A]\ncommand = y\n",
     ":4: duplicate section [A] (first on line 1): merge the two or rename one"},
    {"[tether]\n[tether]\n",
     ":2: duplicate section [tether] (first on line 1): merge the two or rename one"},
    {"[my-db]\ncommand = x\n[my_db]\ncommand = y\n",
     ":3: [my_db] and [my-db] (line 1) both give the variable name MY_DB: rename one"},
    /* two makers of one variable: the last one would win, silently */
    {"[a]\ncommand = x\nexport.B_PORT = 1\n[a_b]\ncommand = y\nport = auto\n",
     ":6: [a_b] PORT makes the variable TETHER_A_B_PORT, and so does [a] export.B_PORT (line 3): "
     "rename one"},
    {"[a_b]\ncommand = y\nport = 7\n[a]\ncommand = x\nexport.B_HOST = 1\n",
     ":6: [a] export.B_HOST makes the variable TETHER_A_B_HOST, and so does [a_b] HOST (line 3): "
     "rename one"},
    {"[tether]\nprefix = lp\n[a]\ncommand = x\nexport.B_URL = 1\n[a-b]\ndriver = redis\n",
     ":6: [a-b] URL makes the variable LP_A_B_URL, and so does [a] export.B_URL (line 5): rename "
     "one"},
    {"[x]\ncommand = x\nexport.Y_CONFIGFILE = 1\n[x_y]\ncommand = y\n",
     ":4: [x_y] CONFIGFILE makes the variable TETHER_X_Y_CONFIGFILE, and so does [x] "
     "export.Y_CONFIGFILE (line 3): rename one"},
    {"[x_y]\ncommand = y\n[x]\ncommand = x\nexport.Y_CONTROL_PID = 1\n",
     ":5: [x] export.Y_CONTROL_PID makes the variable TETHER_X_Y_CONTROL_PID, and so does [x_y] "
     "CONTROL_PID (line 1): rename one"},
    {"[x]\ncommand = x\nexport.Y_PIDFILE = 1\n[x_y]\ncommand = y\n",
     ":4: [x_y] PIDFILE makes the variable TETHER_X_Y_PIDFILE, and so does [x] export.Y_PIDFILE "
     "(line 3): rename one"},
    {"[x]\ncommand = x\nexport.Y_SOCKET = 1\n[x_y]\ncommand = y\nsocket = auto\n",
     ":4: [x_y] SOCKET makes the variable TETHER_X_Y_SOCKET, and so does [x] export.Y_SOCKET "
     "(line 3): rename one"},
    {"[x]\ncommand = x\nexport.Y_Z = 1\n[x_y]\ncommand = y\nexport.Z = 2\n",
     ":6: [x_y] export.Z makes the variable TETHER_X_Y_Z, and so does [x] export.Y_Z (line 3): "
     "rename one"},
    {"[pg]\ndriver = postgresql\nexport.URL = u\n",
     ":3: [pg] export.URL clashes with the variable URL that the postgresql driver sets: pick "
     "another name"},
    {"[a]\ncommand = x\nenv.TETHER_COOKIE = mine\n",
     ":3: [a] env.TETHER_COOKIE: tether sets TETHER_COOKIE itself (it marks every process of an "
     "instance, for gc): remove it"},
    {"[a]\ncommand = x\nready = notify\nenv.NOTIFY_SOCKET = /tmp/s\n",
     ":4: [a] env.NOTIFY_SOCKET: tether sets NOTIFY_SOCKET itself (ready = notify listens "
     "there): remove it"},
    {"[db]\ncommand = d\nport = auto\n[a]\ncommand = x\nafter = db\nenv.TETHER_DB_PORT = 1\n",
     ":7: [a] env.TETHER_DB_PORT would hide the variable that [db] PORT (line 3) makes: remove "
     "it, or pick another name"},
    {"[a]\ncommand = x\nexport.X = 1\nenv.TETHER_A_X = 2\n",
     ":4: [a] env.TETHER_A_X would hide the variable that [a] export.X (line 3) makes: remove it, "
     "or pick another name"},
    /* [tether] */
    {"[tether]\nprefix = LP\nname = x\n[a]\ncommand = x\n",
     ":3: [tether] unknown key 'name' (known: prefix, drivers)"},
    {"[a]\ncommand = x\n[tether]\nprefix = 1LP\n",
     ":4: [tether] prefix = 1LP: use letters, digits and '_', not starting with a digit (e.g. "
     "prefix = MYAPP)"},
    {"[tether]\nprefix = L-P\n[a]\ncommand = x\n",
     ":2: [tether] prefix = L-P: use letters, digits and '_', not starting with a digit (e.g. "
     "prefix = MYAPP)"},
    /* no services */
    {"", ": no services defined: add a [name] section, e.g. [web] with command = ..."},
    {"# nothing\n[tether]\nprefix = X\n",
     ": no services defined: add a [name] section, e.g. [web] with command = ..."},
    /* service keys */
    {"[a]\ndriver = nosuch\ncommand = x\n",
     ":2: [a] unknown driver 'nosuch': (the drivers are: " SHIPPED_ALL "; "
     "driver = command with command = ... runs anything else)"},
    {"[a]\ndriver = postgress\n",
     ":2: [a] unknown driver 'postgress': did you mean 'postgresql'? (the drivers are: " SHIPPED_ALL "; driver = command with command = ... runs anything else)"},
    {"[a]\ncommand = sh -c 'x\n",
     ":2: [a] command: unterminated ' quote in: sh -c 'x: add the closing ' (write '\\'' for a "
     "quote inside quotes)"},
    {"[a]\ncommand =\n", ":2: [a] command is empty: say what to run"},
    {"[a]\ncommand = x\nport = 0\n",
     ":3: [a] port = 0: use auto (a free port is picked) or a number from 1 to 65535"},
    {"[a]\ncommand = x\nport = 65536\n",
     ":3: [a] port = 65536: use auto (a free port is picked) or a number from 1 to 65535"},
    {"[a]\ncommand = x\nport = 80x\n",
     ":3: [a] port = 80x: use auto (a free port is picked) or a number from 1 to 65535"},
    {"[a]\ncommand = x\nport = -1\n",
     ":3: [a] port = -1: use auto (a free port is picked) or a number from 1 to 65535"},
    {"[a]\ncommand = x\nsocket = ../s\n",
     ":3: [a] socket = ../s: use auto, or a plain file name (letters, digits, '.', '_', '-'; no "
     "'/') created in the service's directory"},
    {"[a]\ncommand = x\nsocket = ..\n",
     ":3: [a] socket = ..: use auto, or a plain file name (letters, digits, '.', '_', '-'; no "
     "'/') created in the service's directory"},
    {"[a]\ncommand = x\nready = maybe\n",
     ":3: [a] unknown ready = maybe: use none, tcp, unix:PATH, log:REGEX, exec:COMMAND, notify, "
     "fd:N, send:TEXT expect:TEXT or http:/PATH"},
    {"[a]\ncommand = x\nready = tcp:80\n",
     ":3: [a] ready = tcp takes no argument: write ready = tcp"},
    {"[a]\ncommand = x\nready = unix\n",
     ":3: [a] ready = unix needs an argument: write ready = unix:PATH"},
    {"[a]\ncommand = x\nready = log:\n",
     ":3: [a] ready = log needs an argument: write ready = log:REGEX"},
    {"[a]\ncommand = x\nready = exec:  \n",
     ":3: [a] ready = exec needs an argument: write ready = exec:COMMAND"},
    {"[a]\ncommand = x\nready = fd:2\n",
     ":3: [a] ready = fd:2: N must be a number from 3 to 1023 (0-2 are stdin, stdout and "
     "stderr)"},
    {"[a]\ncommand = x\nready = fd:x\n",
     ":3: [a] ready = fd:x: N must be a number from 3 to 1023 (0-2 are stdin, stdout and "
     "stderr)"},
    {"[a]\ncommand = x\nready = exec:sh -c \"x\n",
     ":3: [a] ready: unterminated \" quote in: sh -c \"x: add the closing \" (write \\\" for a "
     "quote inside quotes)"},
    {"[a]\ncommand = x\nready = tcp\n",
     ":3: [a] ready = tcp needs a port: add port = auto (or a number), or choose another ready "
     "= check"},
    {"[a]\ncommand = x\nreset =\n", ":3: [a] reset is empty: say what to run"},
    {"[b]\ncommand = y\n[a]\ncommand = x\nafter = b, c.d\n",
     ":5: [a] after: 'c.d' is not a service name: list section names separated by commas or "
     "spaces"},
    {"[a]\ncommand = x\nafter = nosuch\n",
     ":3: [a] after = nosuch: there is no service [nosuch]: define it, or remove it from after"},
    {"[a]\ncommand = x\ntimeout = soon\n",
     ":3: [a] timeout = soon is not a duration: use seconds (30, 1.5) or a unit (500ms, 2m, 1h)"},
    {"[a]\ncommand = x\ntimeout = 0\n", ":3: [a] timeout must be more than 0"},
    {"[a]\ncommand = x\nstop_timeout = -1\n",
     ":3: [a] stop_timeout = -1 is not a duration: use seconds (30, 1.5) or a unit (500ms, 2m, "
     "1h)"},
    {"[a]\ncommand = x\nstop_signal = FOO\n",
     ":3: [a] stop_signal = FOO: unknown signal: use a name like TERM, INT, QUIT or a number"},
    {"[a]\ncommand = x\nexport.a-b = x\n",
     ":3: [a] export.a-b: the name after 'export.' must use only letters, digits and '_'"},
    {"[a]\ncommand = x\nexport. = x\n",
     ":3: [a] export.: the name after 'export.' must use only letters, digits and '_'"},
    {"[a]\ncommand = x\nexport.PORT = x\n",
     ":3: [a] export.PORT clashes with the built-in variable PORT: pick another name"},
    {"[a]\ncommand = x\nenv.1X = y\n",
     ":3: [a] env.1X: the name after 'env.' must be an environment variable name (letters, "
     "digits and '_', not starting with a digit)"},
    /* dependency cycles, reported at the `after` line where the cycle starts */
    {"[a]\ncommand = x\nafter = b\n[b]\ncommand = y\nafter = c\n[c]\ncommand = z\nafter = a\n",
     ":3: dependency cycle: a -> b -> c -> a: remove one of these from an after = list"},
    {"[a]\ncommand = x\nafter = A\n",
     ":3: dependency cycle: a -> a: remove one of these from an after = list"},
    {"[x]\ncommand = x\n[a]\ncommand = x\nafter = x, b\n[b]\ncommand = y\nafter = a\n",
     ":5: dependency cycle: a -> b -> a: remove one of these from an after = list"},
    /* the command driver's configure */
    {"[tether]\n\n[a]\nport = auto\n",
     ":3: [a] has no command = ...: say what to run, e.g. command = python3 -m http.server "
     "${port}"},
    {"[a]\ncommand = x\ncolour = blue\n",
     ":3: [a] unknown key 'colour' (known: driver, command, port, socket, ready, health, "
     "timeout, reset, after, stop_signal, stop_timeout, export.NAME, env.NAME)"},
    {"[a]\ncommand = x\nexport = blue\n",
     ":3: [a] unknown key 'export': did you mean 'export.NAME'?"},
    /* a misspelt key is named at its own line, with the key it most likely
     * meant, and is not also "has no command" */
    {"[a]\ncomand = ./server\n", ":2: [a] unknown key 'comand': did you mean 'command'?"},
    {"[a]\ncommand = x\nprot = auto\n", ":3: [a] unknown key 'prot': did you mean 'port'?"},
    {"[a]\ncommand = x\nexprot.URL = u\n",
     ":3: [a] unknown key 'exprot.URL': did you mean 'export.URL'?"},
    {"[a]\ncommand = x\nstop_timout = 1\n",
     ":3: [a] unknown key 'stop_timout': did you mean 'stop_timeout'?"},
    {"[pg]\ndriver = postgresql\ninit_sq = s.sql\n",
     ":3: [pg] unknown key 'init_sq': did you mean 'init_sql'?"},
    {"[pg]\ndriver = postgresql\nsetings.work_mem = 1MB\n",
     ":3: [pg] unknown key 'setings.work_mem': did you mean 'setting.work_mem'?"},
    {"[pg]\ndriver = postgresql\nsetting. = 1\n",
     ":3: [pg] unknown key 'setting.' for the postgresql driver (known: bin_dir, version, tcp, "
     "dbname, user, init_sql, init, server, template, native_env, setting.NAME; and those of "
     "every service: driver, port, socket, ready, health, timeout, reset, after, stop_signal, "
     "stop_timeout, export.NAME, env.NAME)"},
    {"[r]\ndriver = redis\ncommand = redis-server\nbni = x\n",
     ":4: [r] unknown key 'bni': did you mean 'bin'?"},
    {"[tether]\nprefx = LP\n[a]\ncommand = x\n",
     ":2: [tether] unknown key 'prefx': did you mean 'prefix'? (known: prefix, drivers)"},
    /* a driver's command key is checked at load time like command */
    {"[pg]\ndriver = postgresql\ninit = ./load ${nope}\n",
     ":3: [pg] unknown variable ${nope} in init (known: dir, instance, label, config_dir)"},
    {"[pg]\ndriver = postgresql\ninit = ./load 'x\n",
     ":3: [pg] init: unterminated ' quote in: ./load 'x: add the closing ' (write '\\'' for a "
     "quote inside quotes)"},
    {"[pg]\ndriver = postgresql\nserver = postgresql://${host}/x\n",
     ":3: [pg] unknown variable ${host} in server (known: dir, instance, label, config_dir)"},
    /* templates: reported at the key's first line */
    {"[a]\ncommand = x ${nope}\n",
     ":2: [a] unknown variable ${nope} in command (known: dir, instance, label, config_dir)"},
    {"[a]\ncommand = x\n    ${nope}\n",
     ":2: [a] unknown variable ${nope} in command (known: dir, instance, label, config_dir)"},
    {"[a]\ncommand = x ${port}\n", ":2: [a] unknown variable ${port} in command (known: dir, "
                                   "instance, label, config_dir); set port = auto to get a port"},
    {"[a]\ncommand = x\nenv.S = ${socket}\nport = 1\n",
     ":3: [a] unknown variable ${socket} in env.S (known: dir, instance, label, config_dir, "
     "port); set "
     "socket = auto to get a socket"},
    {"[a]\ncommand = x ${PORT}\nport = 1\n",
     ":2: [a] unknown variable ${PORT} in command (known: dir, instance, label, config_dir, "
     "port); did you mean ${port}?"},
    {"[a]\ncommand = x ${prot}\nport = 1\n",
     ":2: [a] unknown variable ${prot} in command (known: dir, instance, label, config_dir, "
     "port); did you mean ${port}?"},
    {"[a]\ncommand = x ${config_dri}\n",
     ":2: [a] unknown variable ${config_dri} in command (known: dir, instance, label, "
     "config_dir); did you mean ${config_dir}?"},
    {"[b]\ncommand = y\nexport.URL = u\n[a]\ncommand = x ${b.URL}\n",
     ":5: [a] unknown variable ${b.URL} in command (known: dir, instance, label, config_dir); "
     "add b to "
     "after = to use its variables"},
    {"[a]\ncommand = x ${a.DIR}\n",
     ":2: [a] unknown variable ${a.DIR} in command (known: dir, instance, label, config_dir)"},
    {"[b]\ncommand = y\n[a]\ncommand = x\nafter = b\nreset = r ${b.PORT}\n",
     ":6: [a] unknown variable ${b.PORT} in reset (known: dir, instance, label, config_dir, b.DIR, "
     "b.CONTROL_PID, b.CONFIGFILE, b.PIDFILE)"},
    {"[b]\ncommand = y\nexport.URL = u\nport = 1\n[a]\ncommand = x\nafter = b\nexport.X = "
     "${b.url}\n",
     ":8: [a] unknown variable ${b.url} in export.X (known: dir, instance, label, config_dir, "
     "b.HOST, "
     "b.PORT, b.DIR, b.CONTROL_PID, b.CONFIGFILE, b.PIDFILE, b.URL); did you mean ${b.URL}?"},
    {"[a]\ncommand = x\nready = unix:${dir}/${sock}\n",
     ":3: [a] unknown variable ${sock} in ready (known: dir, instance, label, config_dir)"},
    {"[a]\ncommand = x\nready = log:${what}\n",
     ":3: [a] unknown variable ${what} in ready (known: dir, instance, label, config_dir)"},
    {"[a]\ncommand = x\nready = exec:check ${what}\n",
     ":3: [a] unknown variable ${what} in ready (known: dir, instance, label, config_dir)"},
    {"[a]\ncommand = x\nsocket = auto\nenv.A = ${socket} ${oops\n",
     ":4: [a] env.A: unterminated ${oops: close it with }, or write $$ for a literal $"},
    {"[a]\ncommand = x ${}\n",
     ":2: [a] command: empty variable name ${}: write ${name}, or $$ for a literal $"},
};

/* Every error of a file at once, in the order of the file, each on its own
 * line; nothing that only repeats one of them. */
static void test_every_error(void **state)
{
    (void)state;
    terr e = {{0}};
    struct tether_config *c = NULL;
    const char *f = TEST_SRCDIR "/configs/three-errors.ini";
    assert_int_equal(config_load(f, &c, &e), -EINVAL);
    assert_null(c);
    char want[3 * PATH_MAX + 1024];
    snprintf(want, sizeof(want),
             "%s:4: [web] unknown key 'comand': did you mean 'command'?\n"
             "%s:5: [web] port = 99999: use auto (a free port is picked) or a number from 1 to "
             "65535\n"
             "%s:8: [db] unknown driver 'postgress': did you mean 'postgresql'? (the drivers "
             "are: " SHIPPED_ALL "; driver = command with command = ... "
             "runs anything else)",
             f, f, f);
    assert_string_equal(e.msg, want);

    /* independent mistakes in separate services and whole-file checks */
    assert_int_equal(config_load(write_conf("[a]\ncommand = x ${nope}\n[b]\ncommand = y\n"
                                            "after = c\n[c]\ncommand = z\nafter = b\n"),
                                 &c, &e),
                     -EINVAL);
    snprintf(want, sizeof(want),
             "%s:2: [a] unknown variable ${nope} in command (known: dir, instance, label, "
             "config_dir)\n"
             "%s:5: dependency cycle: b -> c -> b: remove one of these from an after = list",
             tmpfile_path, tmpfile_path);
    assert_string_equal(e.msg, want);
}

/* Many errors: as many whole lines as fit, then how many more. */
static void test_many_errors(void **state)
{
    (void)state;
    strbuf b = {0};
    sb_add(&b, "[a]\ncommand = x\n");
    for (int i = 0; i < 200; i++)
        sb_addf(&b, "colour%d = x\n", i);
    terr e = {{0}};
    struct tether_config *c = NULL;
    assert_int_equal(config_load(write_conf(b.s), &c, &e), -EINVAL);
    sb_free(&b);
    assert_null(c);
    assert_true(strlen(e.msg) < TERR_MAX - 1);
    assert_non_null(strstr(e.msg, ":3: [a] unknown key 'colour0'"));
    const char *more = strstr(e.msg, " more errors");
    assert_non_null(more);
    assert_null(strchr(more, '\n'));
    for (const char *l = e.msg; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        assert_int_equal(strncmp(l, tmpfile_path, strlen(tmpfile_path)), 0);
}

/* ${config_dir} and the paths that resolve against it. */
static void test_config_dir(void **state)
{
    (void)state;
    struct tether_config *c =
        load_ok("[a]\ncommand = ${config_dir}/bin/x\nexport.D = ${config_dir}\n");
    assert_string_equal(c->dir, tmpdir);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s/bin/api-server", tmpdir);
    char *p = config_path(c, "bin/api-server");
    assert_string_equal(p, want);
    free(p);
    snprintf(want, sizeof(want), "%s/schema.sql", tmpdir);
    p = config_path(c, "./schema.sql");
    assert_string_equal(p, want);
    free(p);
    p = config_path(c, "/abs/x");
    assert_string_equal(p, "/abs/x");
    free(p);
    p = config_program(c, "python3", false); /* PATH's */
    assert_string_equal(p, "python3");
    free(p);
    snprintf(want, sizeof(want), "%s/bin", tmpdir);
    p = config_program(c, "bin", true); /* a directory */
    assert_string_equal(p, want);
    free(p);
    config_free(c);
    /* a driver's program and directory keys, made absolute at load time */
    c = load_ok("[r]\ndriver = redis\nbin = ./vendor/redis-server\n"
                "[m]\ndriver = memcached\nbin = memcached\n"
                "[pg]\ndriver = postgresql\nbin_dir = pg/bin\ninit_sql = s.sql\n");
    snprintf(want, sizeof(want), "%s/vendor/redis-server", tmpdir);
    assert_string_equal(svc_opt(c->svcs[0], "bin"), want);
    assert_string_equal(svc_opt(c->svcs[1], "bin"), "memcached");
    snprintf(want, sizeof(want), "%s/pg/bin", tmpdir);
    assert_string_equal(svc_opt(c->svcs[2], "bin_dir"), want);
    assert_string_equal(svc_opt(c->svcs[2], "init_sql"), "s.sql"); /* read by the driver */
    config_free(c);
    /* a config from memory with a relative name: the working directory's */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    terr e = {{0}};
    assert_int_equal(config_parse("t.ini", "[a]\ncommand = x\n", 16, &c, &e), 0);
    assert_string_equal(c->dir, cwd);
    config_free(c);
}

/* What a template error at run time says: the key and line of the value,
 * and the names the load time check would list. */
static void test_key_of(void **state)
{
    (void)state;
    struct tether_config *c =
        load_ok("[db]\ncommand = d\nport = auto\n[a]\ncommand = x\nafter = db\n"
                "reset = r\nready = exec:check\nexport.U = u\nenv.E = e\n"
                "[pg]\ndriver = postgresql\ninit = ./load\n");
    const struct svc_conf *a = c->svcs[1];
    strbuf k = {0};
    assert_int_equal(config_key_of(a, a->command, &k), 5);
    assert_string_equal(k.s, "command");
    k.len = 0;
    assert_int_equal(config_key_of(a, a->reset, &k), 7);
    assert_string_equal(k.s, "reset");
    k.len = 0;
    assert_int_equal(config_key_of(a, a->ready_arg, &k), 8);
    assert_string_equal(k.s, "ready");
    k.len = 0;
    assert_int_equal(config_key_of(a, a->exports[0].value, &k), 9);
    assert_string_equal(k.s, "export.U");
    k.len = 0;
    assert_int_equal(config_key_of(a, a->env[0].value, &k), 10);
    assert_string_equal(k.s, "env.E");
    k.len = 0;
    assert_int_equal(config_key_of(c->svcs[2], svc_opt(c->svcs[2], "init"), &k), 13);
    assert_string_equal(k.s, "init");
    k.len = 0;
    assert_int_equal(config_key_of(a, "elsewhere", &k), 0);
    sb_free(&k);
    strbuf known = {0};
    config_known_names(c, a, &known);
    assert_string_equal(known.s, "dir, instance, label, config_dir, db.HOST, db.PORT, db.DIR, "
                                 "db.CONTROL_PID, db.CONFIGFILE, db.PIDFILE");
    sb_free(&known);
    config_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(errcases); i++)
        check_err(errcases[i].conf, errcases[i].msg, (int)i);
}

static void test_long_lines(void **state)
{
    (void)state;
    char line[256], conf[512];
    /* 199 characters is the longest line inih takes */
    memset(line, 'x', sizeof(line));
    snprintf(conf, sizeof(conf), "[a]\n\ncommand = %.*s\n", 199 - 10, line);
    struct tether_config *c = load_ok(conf);
    assert_int_equal(strlen(c->svcs[0]->command), 189);
    config_free(c);
    /* also with a CR before the LF */
    snprintf(conf, sizeof(conf), "[a]\r\n\r\ncommand = %.*s\r\n", 199 - 10, line);
    c = load_ok(conf);
    assert_int_equal(strlen(c->svcs[0]->command), 189);
    config_free(c);
    /* one more, even on the last line without a newline */
    snprintf(conf, sizeof(conf), "[a]\n\ncommand = %.*s", 200 - 10, line);
    check_err(conf,
              ":3: line is longer than 199 characters: split it with indented continuation "
              "lines",
              0);
    snprintf(conf, sizeof(conf), "[a]\ncommand = x\n; %.*s\n", 250, line);
    check_err(conf,
              ":3: line is longer than 199 characters: split it with indented continuation "
              "lines",
              1);
}

static void test_nul_byte(void **state)
{
    (void)state;
    static const char conf[] = "[a]\ncommand = x\0y\n";
    check_err_n(conf, sizeof(conf) - 1,
                ":2: contains a NUL byte: the config must be a text file", 0);
}

static void test_unreadable(void **state)
{
    (void)state;
    terr e = {{0}};
    struct tether_config *c = NULL;
    assert_int_equal(config_load("/nonexistent/tether.ini", &c, &e), -ENOENT);
    assert_null(c);
    assert_string_equal(e.msg, "cannot read config file /nonexistent/tether.ini: No such file "
                               "or directory (give another one with -f FILE)");
}

static void test_defaults(void **state)
{
    (void)state;
    terr e = {{0}};
    struct tether_config *c = NULL;
    assert_int_equal(config_load(TEST_SRCDIR "/configs/minimal.ini", &c, &e), 0);
    char *real = realpath(TEST_SRCDIR "/configs/minimal.ini", NULL);
    assert_string_equal(c->path, real);
    free(real);
    assert_string_equal(c->prefix, "TETHER");
    assert_int_equal(c->n_svcs, 1);
    const struct svc_conf *s = c->svcs[0];
    assert_string_equal(s->label, "web");
    assert_string_equal(s->ulabel, "WEB");
    assert_ptr_equal(s->driver, &driver_command);
    assert_int_equal(s->line, 1);
    assert_string_equal(s->command, "python3 -m http.server");
    assert_int_equal(s->command_line, 2);
    assert_int_equal(s->port, -1);
    assert_null(s->socket);
    assert_int_equal(s->ready, READY_NONE);
    assert_null(s->ready_arg);
    assert_null(s->reset);
    assert_false(s->reset_restart);
    assert_int_equal(s->after.n, 0);
    assert_true(s->timeout_ns == 30 * SEC);
    assert_int_equal(s->stop_signal, SIGTERM);
    assert_true(s->stop_timeout_ns == 5 * SEC);
    assert_int_equal(s->n_exports + s->n_env + s->n_opts, 0);
    config_free(c);

    /* a port makes tcp the default readiness check */
    c = load_ok("[my-app]\ncommand = x\nport = auto\n");
    assert_string_equal(c->svcs[0]->ulabel, "MY_APP");
    assert_int_equal(c->svcs[0]->port, 0);
    assert_int_equal(c->svcs[0]->port_line, 3);
    assert_int_equal(c->svcs[0]->ready, READY_TCP);
    config_free(c);
    c = load_ok("[a]\ncommand = x\nport = 8080\nready = none\n");
    assert_int_equal(c->svcs[0]->port, 8080);
    assert_int_equal(c->svcs[0]->ready, READY_NONE);
    assert_int_equal(c->svcs[0]->ready_line, 4);
    config_free(c);
}

static void test_full(void **state)
{
    (void)state;
    terr e = {{0}};
    struct tether_config *c = NULL;
    /* a path with ".." is stored resolved */
    if (config_load(TEST_SRCDIR "/configs/../configs/full.ini", &c, &e) != 0)
        fail_msg("%s", e.msg);
    char *real = realpath(TEST_SRCDIR "/configs/full.ini", NULL);
    assert_string_equal(c->path, real);
    free(real);
    assert_string_equal(c->prefix, "LP_1");
    assert_int_equal(c->n_svcs, 4);

    const struct svc_conf *pg = c->svcs[0];
    assert_string_equal(pg->label, "postgresql");
    assert_ptr_equal(pg->driver, &driver_command);
    assert_int_equal(pg->line, 5);
    /* continuation lines are joined with one space; their comments dropped */
    assert_string_equal(pg->command, "postgres -D ${dir} -p ${port} -k ${socket}");
    assert_int_equal(pg->command_line, 7);
    assert_int_equal(pg->port, 0);
    assert_string_equal(pg->socket, "sock");
    assert_int_equal(pg->ready, READY_EXEC);
    assert_string_equal(pg->ready_arg, "pg_isready -h 127.0.0.1 -p ${port}");
    assert_int_equal(pg->ready_line, 13);
    assert_true(pg->reset_restart);
    assert_null(pg->reset);
    assert_int_equal(pg->reset_line, 14);
    assert_true(pg->timeout_ns == 60 * SEC);
    assert_int_equal(pg->stop_signal, SIGINT);
    assert_true(pg->stop_timeout_ns == SEC / 2);
    assert_int_equal(pg->n_exports, 2);
    assert_string_equal(pg->exports[0].key, "URL");
    assert_string_equal(pg->exports[0].value, "postgresql://127.0.0.1:${port}/postgres");
    assert_int_equal(pg->exports[0].line, 18);
    assert_string_equal(pg->exports[1].key, "db_name");
    assert_string_equal(pg->exports[1].value, "postgres");

    const struct svc_conf *cache = c->svcs[1];
    assert_string_equal(cache->label, "cache");
    assert_int_equal(cache->port, 6390);
    assert_int_equal(cache->ready, READY_TCP);
    assert_int_equal(cache->after.n, 0);
    assert_string_equal(cache->reset, "redis-cli -p ${port} flushall");
    assert_false(cache->reset_restart);

    const struct svc_conf *lib = c->svcs[2];
    assert_string_equal(lib->label, "librarian");
    /* an empty first line: the value starts on the continuation */
    assert_string_equal(lib->command, "python3 -m http.server ${port} --bind 127.0.0.1 "
                                      "--directory ${dir}");
    assert_int_equal(lib->command_line, 28);
    /* `after` labels are stored as their sections spell them */
    assert_int_equal(lib->after.n, 2);
    assert_string_equal(lib->after.v[0], "postgresql");
    assert_string_equal(lib->after.v[1], "cache");
    assert_int_equal(lib->after_line, 32);
    assert_int_equal(lib->ready, READY_LOG);
    /* ';' not after a space is not a comment */
    assert_string_equal(lib->ready_arg, "Serving HTTP on [^ ]+ port [0-9]+;x$");
    assert_int_equal(lib->n_env, 3);
    assert_string_equal(lib->env[0].key, "DATABASE_URL");
    assert_string_equal(lib->env[0].value, "${postgresql.URL}");
    assert_int_equal(lib->env[0].line, 34);
    assert_string_equal(lib->env[1].key, "CACHE");
    assert_string_equal(lib->env[1].value, "${cache.HOST}:${cache.PORT} $$HOME");
    assert_int_equal(lib->n_exports, 1);
    assert_string_equal(lib->exports[0].key, "URL");

    const struct svc_conf *w = c->svcs[3];
    assert_string_equal(w->command, "sh -c 'echo ${librarian.URL} ${postgresql.CONTROL_PID}'");
    assert_int_equal(w->ready, READY_FD);
    assert_int_equal(w->ready_fd, 3);
    assert_null(w->ready_arg);
    assert_string_equal(w->socket, "w.sock");

    assert_ptr_equal(config_find(c, "LIBRARIAN"), lib);
    assert_ptr_equal(config_find(c, "cache"), cache);
    assert_null(config_find(c, "nope"));
    assert_null(config_find(c, "tether"));
    config_free(c);
}

static void test_crlf_bom(void **state)
{
    (void)state;
    terr e = {{0}};
    struct tether_config *c = NULL;
    if (config_load(TEST_SRCDIR "/configs/crlf-bom.ini", &c, &e) != 0)
        fail_msg("%s", e.msg);
    assert_string_equal(c->svcs[0]->label, "a");
    assert_string_equal(c->svcs[0]->command, "run it --now");
    assert_int_equal(c->svcs[0]->port, 80);
    assert_int_equal(c->svcs[0]->port_line, 4);
    config_free(c);
}

static void test_continuation(void **state)
{
    (void)state;
    /* a blank line does not end a value (inih follows Python's configparser);
     * comments on continuation lines are dropped like on the first line */
    struct tether_config *c = load_ok("[a]\n"
                                      "command = one ; first\n"
                                      "\ttwo;2 ; second\n"
                                      "\n"
                                      "  three\n"
                                      "# comment\n"
                                      "  ; comment\n"
                                      "  four\n"
                                      "env.X =\n"
                                      "  ; nothing yet\n"
                                      "  y\n"
                                      "env.Y =\n"
                                      "  ;\n"
                                      "after = \n"
                                      "  \n");
    const struct svc_conf *s = c->svcs[0];
    assert_string_equal(s->command, "one two;2 three four");
    assert_int_equal(s->command_line, 2);
    assert_string_equal(s->env[0].value, "y");
    assert_int_equal(s->env[0].line, 9);
    assert_string_equal(s->env[1].value, "");
    config_free(c);

    /* the first key of a section may be indented; after it, indentation continues */
    c = load_ok("[a]\n  command = x\n  port = 1\n");
    assert_string_equal(c->svcs[0]->command, "x port = 1");
    assert_int_equal(c->svcs[0]->port, -1);
    config_free(c);

    /* a key continued across lines is still one key for duplicates */
    check_err("[a]\ncommand = x\n  y\ncommand = z\n",
              ":4: [a] duplicate key 'command' (first set on line 2): remove one, or indent "
              "this line to continue the value",
              0);
}

static void test_driver_default(void **state)
{
    (void)state;
    /* a section named after a built-in driver gets it; others get command */
    struct tether_config *c = load_ok("[command]\ncommand = x\n[other]\ncommand = y\n"
                                      "[explicit]\ndriver = command\ncommand = z\n");
    assert_ptr_equal(c->svcs[0]->driver, driver_find("command"));
    assert_ptr_equal(c->svcs[1]->driver, &driver_command);
    assert_ptr_equal(c->svcs[2]->driver, &driver_command);
    config_free(c);
}

static void test_templates_ok(void **state)
{
    (void)state;
    /* transitive dependencies, case-insensitive service names, $$ */
    struct tether_config *c = load_ok("[db]\ncommand = d\nport = auto\nexport.URL = x\n"
                                      "socket = auto\n"
                                      "[api]\ncommand = a ${DB.URL} ${dir} ${label}\n"
                                      "after = db\nexport.API_URL = ${instance}\n"
                                      "[web]\ncommand = w $${nope} ${api.API_URL} ${db.PORT} "
                                      "${db.SOCKET} ${db.HOST} ${Db.PIDFILE} ${db.CONFIGFILE}\n"
                                      "after = api\nport = 1\nreset = r ${port}\n"
                                      "env.A = ${api.CONTROL_PID} ${api.DIR}\n");
    assert_int_equal(c->n_svcs, 3);
    config_free(c);
    /* near misses of one variable name: TETHER_A_B is not TETHER_A_B_PORT */
    c = load_ok("[a]\ncommand = x\nport = auto\nexport.B = 1\nexport.b_PORT = 2\n"
                "[a_b]\ncommand = y\nport = auto\nenv.TETHER_A_B_PORTS = 3\n");
    assert_int_equal(c->n_svcs, 2);
    config_free(c);
}

static void select_check(const struct tether_config *c, const char *const *names, size_t n,
                         const char *want)
{
    terr e = {{0}};
    struct svc_conf **sel = NULL;
    size_t nsel = 0;
    if (config_select(c, names, n, &sel, &nsel, &e) != 0)
        fail_msg("%s", e.msg);
    strbuf b = {0};
    for (size_t i = 0; i < nsel; i++)
        sb_addf(&b, "%s%s", i ? " " : "", sel[i]->label);
    assert_string_equal(b.s ? b.s : "", want);
    sb_free(&b);
    free(sel);
}

static void test_select(void **state)
{
    (void)state;
    struct tether_config *c = load_ok("[app]\ncommand = x\nafter = db, cache\n"
                                      "[other]\ncommand = x\n"
                                      "[db]\ncommand = x\nafter = base\n"
                                      "[cache]\ncommand = x\n"
                                      "[base]\ncommand = x\n");
    /* all: a dependency goes first, independent ones keep file order */
    select_check(c, NULL, 0, "other cache base db app");
    const char *app[] = {"app"};
    select_check(c, app, 1, "cache base db app");
    const char *db[] = {"DB"};
    select_check(c, db, 1, "base db");
    const char *two[] = {"other", "base", "other"};
    select_check(c, two, 3, "other base");
    const char *both[] = {"db", "app"};
    select_check(c, both, 2, "cache base db app");

    terr e = {{0}};
    struct svc_conf **sel = NULL;
    size_t nsel = 0;
    const char *bad[] = {"db", "nope"};
    assert_int_equal(config_select(c, bad, 2, &sel, &nsel, &e), -EINVAL);
    assert_null(sel);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want),
             "no service 'nope' in %s (it has: app, other, db, cache, base; the built-in "
             "drivers are: " SHIPPED_RUNNABLE ")",
             c->path);
    assert_string_equal(e.msg, want);
    /* a typo of one of its services or of a built-in */
    const char *typo[] = {"cahce"};
    assert_int_equal(config_select(c, typo, 1, &sel, &nsel, &e), -EINVAL);
    snprintf(want, sizeof(want),
             "no service 'cahce' in %s: did you mean 'cache'? (it has: app, other, db, cache, "
             "base; the built-in drivers are: " SHIPPED_RUNNABLE ")",
             c->path);
    assert_string_equal(e.msg, want);
    config_free(c);
}

static void test_svc_opt(void **state)
{
    (void)state;
    struct conf_kv opts[] = {{.key = "version", .value = "16", .line = 3},
                             {.key = "db", .value = "app", .line = 4}};
    struct svc_conf s = {.opts = opts, .n_opts = 2};
    assert_string_equal(svc_opt(&s, "db"), "app");
    assert_string_equal(svc_opt(&s, "version"), "16");
    assert_null(svc_opt(&s, "Version"));
    assert_null(svc_opt(&s, "nope"));
}

static void test_builtin(void **state)
{
    (void)state;
    terr e = {{0}};
    struct tether_config *c = NULL;
    const char *cmd[] = {"command"};
    assert_int_equal(config_builtin(cmd, 1, &c, &e), -EINVAL);
    assert_null(c);
    assert_string_equal(e.msg, "unknown service 'command' (the built-in drivers are: " SHIPPED_RUNNABLE "; anything else needs a config "
                               "file: -f FILE, $TETHER_CONFIG or ./tether.ini)");
    const char *nope[] = {"redsi"};
    assert_int_equal(config_builtin(nope, 1, &c, &e), -EINVAL);
    assert_string_equal(e.msg, "unknown service 'redsi': did you mean 'redis'? (the built-in "
                               "drivers are: " SHIPPED_RUNNABLE "; anything else needs "
                               "a config file: -f FILE, $TETHER_CONFIG or ./tether.ini)");
    assert_int_equal(config_builtin(NULL, 0, &c, &e), -EINVAL);
    assert_null(c);

    /* the built-in drivers present in this build, if any */
    static const char *const known[] = {"postgresql", "redis", "mysql", "memcached", "minio"};
    for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
        if (!driver_find(known[i]))
            continue;
        const char *names[] = {known[i], known[i]};
        if (config_builtin(names, 2, &c, &e) != 0)
            fail_msg("%s: %s", known[i], e.msg);
        assert_null(c->path);
        assert_string_equal(c->prefix, "TETHER");
        assert_int_equal(c->n_svcs, 1);
        assert_string_equal(c->svcs[0]->label, known[i]);
        assert_ptr_equal(c->svcs[0]->driver, driver_find(known[i]));
        config_free(c);
        c = NULL;
    }
}

/* A key the user set is honoured even when its value is the core's
 * default: a driver's own default (postgresql's 2 s stop_timeout and
 * SIGQUIT, redis's SIGKILL) replaces only a key that was not set, which
 * config.c records (the key's line), never guessed by comparing with the
 * core's default. */
static void test_explicit_defaults(void **state)
{
    (void)state;
    terr e = {{0}};
    struct tether_config *c = NULL;
    static const char core[] = "[s]\ncommand = x\n";
    assert_int_equal(config_parse("c.ini", core, sizeof(core) - 1, &c, &e), 0);
    const struct svc_conf base = *c->svcs[0]; /* the core's defaults */
    config_free(c);
    size_t differ = 0;
    const struct tether_driver *d;
    for (size_t i = 0; (d = driver_at(i)); i++) {
        if (d == &driver_command || d == &driver_container) /* needs its own keys */
            continue;
        _cleanup_free_ char *bare = xasprintf("[s]\ndriver = %s\n", d->name);
        if (config_parse("d.ini", bare, strlen(bare), &c, &e) != 0)
            fail_msg("%s: %s", d->name, e.msg);
        const struct svc_conf own = *c->svcs[0];
        differ += own.stop_signal != base.stop_signal;
        differ += own.stop_timeout_ns != base.stop_timeout_ns;
        differ += own.timeout_ns != base.timeout_ns;
        config_free(c);
        _cleanup_free_ char *set = xasprintf(
            "[s]\ndriver = %s\nstop_signal = %d\nstop_timeout = %lldms\ntimeout = %lldms\n",
            d->name, base.stop_signal, base.stop_timeout_ns / 1000000,
            base.timeout_ns / 1000000);
        if (config_parse("d.ini", set, strlen(set), &c, &e) != 0)
            fail_msg("%s: %s", d->name, e.msg);
        const struct svc_conf *s = c->svcs[0];
        if (s->stop_signal != base.stop_signal || s->stop_timeout_ns != base.stop_timeout_ns ||
            s->timeout_ns != base.timeout_ns)
            fail_msg("%s driver: stop_signal = %d, stop_timeout = %lld ns, timeout = %lld ns "
                     "were set, and it has %d, %lld, %lld",
                     d->name, base.stop_signal, base.stop_timeout_ns, base.timeout_ns,
                     s->stop_signal, s->stop_timeout_ns, s->timeout_ns);
        config_free(c);
    }
    /* there are driver defaults for this to be about (postgresql's) */
    assert_true(differ > 0);
}

static void test_locate(void **state)
{
    (void)state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char *saved = getenv("TETHER_CONFIG") ? xstrdup(getenv("TETHER_CONFIG")) : NULL;
    assert_int_equal(chdir(tmpdir), 0);

    unsetenv("TETHER_CONFIG");
    assert_null(config_locate(NULL));
    setenv("TETHER_CONFIG", "", 1);
    assert_null(config_locate(NULL));
    FILE *f = fopen("tether.ini", "w");
    assert_non_null(f);
    fclose(f);
    assert_string_equal(config_locate(NULL), "tether.ini");
    setenv("TETHER_CONFIG", "/etc/x.ini", 1);
    assert_string_equal(config_locate(NULL), "/etc/x.ini");
    assert_string_equal(config_locate("given.ini"), "given.ini");
    unlink("tether.ini");
    assert_string_equal(config_locate(NULL), "/etc/x.ini");

    assert_int_equal(chdir(cwd), 0);
    if (saved)
        setenv("TETHER_CONFIG", saved, 1);
    else
        unsetenv("TETHER_CONFIG");
    free(saved);
}

static void test_free_null(void **state)
{
    (void)state;
    config_free(NULL);
}

/* Drivers' defaults apply to what the file does not set, whatever value
 * it sets: "was this set" flags, not comparisons with the core's default
 * (stop_timeout = 5 is the core's default and stayed 2 s for postgresql;
 * stop_signal = TERM became KILL for redis and memcached). */
static void test_driver_defaults_only_unset(void **state)
{
    (void)state;
    struct tether_config *c =
        load_ok("[pg]\ndriver = postgresql\nstop_timeout = 5\nstop_signal = TERM\n"
                "[pg2]\ndriver = postgresql\n"
                "[r]\ndriver = redis\nstop_signal = TERM\n[r2]\ndriver = redis\n"
                "[m]\ndriver = memcached\nstop_signal = 15\n");
    assert_true(c->svcs[0]->stop_timeout_ns == 5000000000LL);
    assert_int_equal(c->svcs[0]->stop_signal, SIGTERM);
    assert_true(c->svcs[1]->stop_timeout_ns == 2000000000LL); /* postgresql's own */
    assert_int_equal(c->svcs[1]->stop_signal, SIGQUIT);
    assert_int_equal(c->svcs[2]->stop_signal, SIGTERM);
    assert_int_equal(c->svcs[3]->stop_signal, SIGKILL); /* redis's own */
    assert_int_equal(c->svcs[4]->stop_signal, SIGTERM);
    config_free(c);
}

/* config_set_key is below the drivers (conf.c): a recipe sets the keys
 * every service takes through it, but driver = only the loader resolves,
 * through the registry above the drivers. */
static void test_set_key(void **state)
{
    (void)state;
    struct svc_conf *s = svc_conf_new("cache", 0);
    terr e;
    assert_int_equal(config_set_key("r.ini", s, "port", "auto", 3, &e), 0);
    assert_int_equal(s->port, 0);
    assert_int_equal(config_set_key("r.ini", s, "driver", "redis", 4, &e), -EINVAL);
    assert_string_equal(e.msg, "r.ini:4: [cache] driver = redis: only a config's own [cache] "
                               "section can name its driver");
    assert_null(s->driver);
    svc_conf_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_every_error),  cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_config_dir),   cmocka_unit_test(test_key_of),
        cmocka_unit_test(test_nul_byte),     cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_full),
        cmocka_unit_test(test_crlf_bom),     cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_driver_default), cmocka_unit_test(test_templates_ok),
        cmocka_unit_test(test_select),       cmocka_unit_test(test_svc_opt),
        cmocka_unit_test(test_builtin),      cmocka_unit_test(test_locate),
        cmocka_unit_test(test_explicit_defaults),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_driver_defaults_only_unset),
        cmocka_unit_test(test_set_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
