/* tether run / tether start: the commands that make an instance. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cli.h"
#include "client.h"
#include "config.h"
#include "drivers/driver.h"
#include "helper.h"
#include "instance.h"

extern char **environ;

static int parse_fmt(int o, struct cli *c)
{
    switch (o) {
    case 's':
        c->fmt = OUT_SH;
        return 1;
    case 'c':
        c->fmt = OUT_CSH;
        return 1;
    case 'F':
        c->fmt = OUT_FISH;
        return 1;
    case 'J':
        c->fmt = OUT_JSON;
        return 1;
    }
    return 0;
}

/* Load the config the user means: a file, or built-in drivers by name. */
static int load_config(struct cli *c, char **names, size_t n, struct tether_config **cfg)
{
    terr e;
    const char *path = config_locate(c->config_flag);
    int r;
    if (path)
        r = config_load(path, cfg, &e);
    else if (n > 0)
        r = config_builtin((const char *const *)names, n, cfg, &e);
    else {
        cli_err("no config file: there is no ./tether.ini; give one with -f FILE or "
                "$TETHER_CONFIG, or name built-in services (tether run postgresql)");
        return EXIT_USAGE;
    }
    _cleanup_sb_ strbuf note = {0};
    if (r == 0 && path && n > 0 &&
        (r = config_use_builtins(cfg, (const char *const *)names, n, &note, &e)) > 0) {
        if (note.len)
            cli_note(c, "%s", note.s);
        path = NULL;
        r = 0;
    }
    if (r < 0) {
        /* config errors are FILE:LINE: ...; others get our prefix */
        fprintf(stderr, "%s%s\n", path ? "" : "tether: ", e.msg);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Close every fd from 3 up, except keep1 and keep2 (-1: none). */
static void close_fds_except(int keep1, int keep2)
{
    int keep[2] = {keep1 < keep2 ? keep1 : keep2, keep1 < keep2 ? keep2 : keep1};
    unsigned int lo = 3;
    for (int i = 0; i < 2; i++) {
        if (keep[i] < (int)lo)
            continue;
        if (keep[i] > (int)lo)
            syscall(SYS_close_range, lo, (unsigned int)keep[i] - 1, 0);
        lo = (unsigned int)keep[i] + 1;
    }
    syscall(SYS_close_range, lo, ~0U, 0);
}

static int wait_helper(pid_t helper)
{
    int status = 0;
    while (waitpid(helper, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* The instance directory the variables name (a CONFIGFILE is in it), or
 * NULL; malloc'd. */
static char *instance_dir(const struct var *vars, size_t n)
{
    static const char sfx[] = "_CONFIGFILE";
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(vars[i].name);
        const char *slash = strrchr(vars[i].value, '/');
        if (l > sizeof(sfx) - 1 && streq(vars[i].name + l - (sizeof(sfx) - 1), sfx) && slash)
            return xstrndup(vars[i].value, (size_t)(slash - vars[i].value));
    }
    return NULL;
}

/* The helper exited 2: something is left.  Say what (a database it could
 * not drop is in the note of the instance it kept for gc). */
static void say_leftover(const char *dir)
{
    terr e;
    if (dir && instance_leftover(dir, &e) < 0)
        cli_err("%s", e.msg);
    else
        cli_err("the helper could not remove everything; run `tether gc`");
}

/* The helper has exited: if it kept the instance after a failure
 * (--keep-failed), say where it is. */
static void say_kept(const char *dir)
{
    _cleanup_close_ int fd = dir ? open(dir, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    char why[TERR_MAX];
    if (fd >= 0 && instance_kept(fd, why) == KEPT_FAILED)
        cli_err("kept instance %s with its logs and data (tether list shows it; `tether gc "
                "--kept` removes it)", dir);
}

/* A failure of tether's own: with a command to run, 125, never a status
 * the command itself might have returned. */
static int failed(bool with_cmd, int code)
{
    return with_cmd ? EXIT_TETHER : code;
}

/* Whether args (after "run") hold a "--": a command follows. */
static bool has_command(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (streq(argv[i], "--"))
            return true;
    return false;
}

int usage_status(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (streq(argv[i], "run"))
            return has_command(argc - i, argv + i) ? EXIT_TETHER : EXIT_USAGE;
    return EXIT_USAGE;
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return EXIT_FAIL;
}

static void build_env(strv *env, const struct var *vars, size_t n)
{
    for (char **p = environ; p && *p; p++) {
        bool shadowed = false;
        for (size_t i = 0; i < n && !shadowed; i++) {
            size_t l = strlen(vars[i].name);
            shadowed = strncmp(*p, vars[i].name, l) == 0 && (*p)[l] == '=';
        }
        if (!shadowed)
            strv_push(env, *p);
    }
    for (size_t i = 0; i < n; i++)
        strv_pushf(env, "%s=%s", vars[i].name, vars[i].value);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether NAME exists in a PATH directory (execvp fails with EACCES when
 * it merely met a directory it may not search, like root's ~/.cargo/bin
 * in a PATH inherited through su). */
static bool on_path(const char *name)
{
    char buf[PATH_MAX];
    return path_search(name, exists, buf, sizeof(buf)) == 0;
}

/* Run CMD with the variables; returns its exit code, or -1 if we failed
 * (said why).  Signals sent to us (not the terminal's, which CMD gets
 * itself) are passed on. */
static int run_cmd(char **cmd, const struct var *vars, size_t n, int sigfd, const sigset_t *old)
{
    _cleanup_strv_ strv env = {0};
    build_env(&env, vars, n);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        cli_err("pipe: %m");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cli_err("fork: %m");
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        sigprocmask(SIG_SETMASK, old, NULL);
        environ = env.v;
        execvp(cmd[0], cmd);
        int err = errno;
        if (err == EACCES && !strchr(cmd[0], '/') && !on_path(cmd[0]))
            err = ENOENT; /* only a PATH directory was closed to us: not found, as in sh */
        ssize_t w = write(p[1], &err, sizeof(err));
        (void)w;
        _exit(err == ENOENT ? 127 : 126);
    }
    close(p[1]);
    int err = 0;
    if (read(p[0], &err, sizeof(err)) == sizeof(err))
        cli_err("cannot run '%s': %s", cmd[0], strerror(err));
    close(p[0]);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return exit_code(status);
        struct signalfd_siginfo si;
        struct pollfd pf = {.fd = sigfd, .events = POLLIN};
        if (poll(&pf, 1, -1) < 0 && errno != EINTR)
            return -1;
        while (read(sigfd, &si, sizeof(si)) == sizeof(si))
            if (si.ssi_signo != SIGCHLD && si.ssi_code == SI_USER)
                kill(pid, (int)si.ssi_signo);
    }
}

/* The exit status after a failure of tether's own (the helper killed, a
 * cleanup that failed), given ret so far: with a command, EXIT_TETHER,
 * saying what the command's own status was (unless EXIT_TETHER already
 * said why); without, EXIT_FAIL unless something failed already. */
static int own_failure(char **cmd, int ret)
{
    if (!cmd)
        return ret == EXIT_OK ? EXIT_FAIL : ret;
    if (ret != EXIT_OK && ret != EXIT_TETHER)
        cli_err("(the command itself exited with status %d)", ret);
    return EXIT_TETHER;
}

/* Whether the helper (our child) has exited, without reaping it. */
static bool helper_exited(pid_t helper)
{
    siginfo_t si = {0};
    return waitid(P_PID, (id_t)helper, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid;
}

/* CMD ended with status: tell the helper (which keeps the instance after
 * a failure, if asked to) and hear which services died meanwhile, each
 * message ending in RS.  Returns status, or EXIT_TETHER if a service died
 * or the helper could not be asked (a helper that is gone is the
 * caller's to report, once it is reaped). */
static int finish_cmd(const char *dir, pid_t helper, int status)
{
    terr e;
    _cleanup_free_ char *req = xasprintf(REQ_FINISHED "%d", status);
    _cleanup_free_ char *reply = NULL;
    if (!dir) {
        cli_err("the helper named no instance directory");
        return EXIT_TETHER;
    }
    int r = control_request(dir, helper, req, &reply, &e);
    if (r < 0 || strncmp(reply, "OK\n", 3) != 0) {
        /* nobody listens: the helper is dead or dying (killed), which the
         * caller reports once it has reaped it */
        if (helper_exited(helper) || r == -ECONNREFUSED || r == -ENOENT || r == -EPIPE ||
            r == -ECONNRESET)
            return status;
        cli_err("cannot tell the helper that the command ended: %s",
                reply ? reply : e.msg);
        return EXIT_TETHER;
    }
    bool died = false;
    char *save = NULL;
    for (char *m = strtok_r(reply + 3, "\x1e", &save); m; m = strtok_r(NULL, "\x1e", &save)) {
        m += strspn(m, "\n");
        for (size_t l = strlen(m); l && m[l - 1] == '\n';)
            m[--l] = '\0';
        if (*m) {
            cli_err("%s", m);
            died = true;
        }
    }
    if (died && status != 0)
        cli_err("(the command itself exited with status %d)", status);
    return died ? EXIT_TETHER : status;
}

/* What the user must know before a service listens on TCP (memcached has
 * no password there): on our stderr, the user's terminal, since the
 * helper's own goes to its log.  Not silenced by -q. */
static void warn_tcp(struct svc_conf *const *sel, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sel[i]->port >= 0 && sel[i]->driver->tcp_warning)
            fprintf(stderr, "tether: warning: [%s] %s\n", sel[i]->label,
                    sel[i]->driver->tcp_warning);
}

int cmd_run(struct cli *c, int argc, char **argv, bool background)
{
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},  {"json", no_argument, NULL, 'J'},
        {"fish", no_argument, NULL, 'F'},        {"csh", no_argument, NULL, 'c'},
        {"sh", no_argument, NULL, 's'},          {"expire", required_argument, NULL, 'E'},
        {"watch-pid", required_argument, NULL, 'W'}, {"quiet", no_argument, NULL, 'q'},
        {"fixed", no_argument, NULL, 'X'}, /* hidden: libtether's TETHER_FIXED_INSTANCE */
        {"keep-failed", no_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    long long expire = 0;
    pid_t watch = 0;
    bool fixed = false, keep;
    bool with_cmd = !background && has_command(argc, argv);
    terr ke;
    if (keep_failed_env(&keep, &ke) < 0) {
        cli_err("%s", ke.msg);
        return failed(with_cmd, EXIT_USAGE);
    }
    int o;
    while ((o = getopt_long(argc, argv, "+f:scq", opts, NULL)) != -1) {
        if (parse_fmt(o, c))
            continue;
        switch (o) {
        case 'f':
            c->config_flag = optarg;
            break;
        case 'q':
            cli_quiet(c);
            break;
        case 'X':
            fixed = true;
            break;
        case 'K':
            keep = true;
            break;
        case 'E':
            if (parse_duration(optarg, &expire) < 0 || expire <= 0) {
                cli_err("--expire %s: not a duration (e.g. 90, 30s, 10m, 2h)", optarg);
                return failed(with_cmd, EXIT_USAGE);
            }
            break;
        case 'W': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v <= 0 || kill((pid_t)v, 0) < 0) {
                cli_err("--watch-pid %s: no such process", optarg);
                return failed(with_cmd, EXIT_USAGE);
            }
            watch = (pid_t)v;
            break;
        }
        default:
            return failed(with_cmd, EXIT_USAGE);
        }
    }
    /* services up to "--", then the command */
    char **names = argv + optind;
    size_t n = 0;
    char **cmd = NULL;
    /* getopt swallows a "--" that directly follows the options */
    if (optind > 1 && streq(argv[optind - 1], "--"))
        cmd = argv + optind;
    for (int i = optind; i < argc && !cmd; i++) {
        if (streq(argv[i], "--")) {
            cmd = argv + i + 1;
            break;
        }
        n++;
    }
    if (cmd && (background || !*cmd)) {
        cli_err(background ? "start takes no command: use `tether run ... -- CMD`"
                           : "nothing after --: give the command to run");
        return failed(with_cmd, EXIT_USAGE);
    }
    struct tether_config *cfg = NULL;
    long long t0 = now_ns();
    char t[32];
    int r = load_config(c, names, n, &cfg);
    if (r)
        return failed(with_cmd, r);
    progress(PROGRESS_STEP, "config %s read in %s", cfg->path ? cfg->path : "(built-in)",
             progress_since(t, t0));
    struct svc_conf **sel = NULL;
    size_t nsel = 0;
    terr e;
    if (config_select(cfg, (const char *const *)names, n, &sel, &nsel, &e) < 0) {
        cli_err("%s", e.msg);
        config_free(cfg);
        return failed(with_cmd, EXIT_USAGE);
    }
    warn_tcp(sel, nsel);
    strbuf report = {0};
    long long tgc = now_ns();
    gc_run(&report, NULL); /* cheap when nothing is stale */
    if (report.len && !c->quiet)
        fputs(report.s, stderr);
    sb_free(&report);
    progress(PROGRESS_STEP, "stale instances checked in %s", progress_since(t, tgc));

    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &old);
    int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    int st[2], lease[2] = {-1, -1};
    if (sigfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st) < 0 ||
        (!background && pipe2(lease, O_CLOEXEC) < 0)) {
        cli_err("cannot set up: %m");
        return failed(with_cmd, EXIT_FAIL);
    }
    fflush(NULL);
    pid_t helper = fork();
    if (helper < 0) {
        cli_err("fork: %m");
        return failed(with_cmd, EXIT_FAIL);
    }
    if (helper == 0) {
        close(st[0]);
        close(sigfd);
        if (lease[1] >= 0)
            close(lease[1]);
        /* its own session (start) or group (run): the terminal's Ctrl-C
         * is ours to handle, in order, not the helper's */
        if (background)
            setsid();
        else
            setpgid(0, 0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            if (background)
                dup2(null, 2);
            close(null);
        }
        /* The helper outlives this command: it must not hold the caller's
         * files and pipes open (whoever waits for their EOF, a test runner
         * or a $(...), would hang until the instance stops). */
        close_fds_except(st[1], lease[0]);
        struct helper_opts ho = {.cfg = cfg, .sel = sel, .nsel = nsel, .status_fd = st[1],
                                 .lease_fd = lease[0], .watch_pid = watch, .expire_ns = expire,
                                 .fixed = fixed, .keep_failed = keep};
        _exit(helper_main(&ho));
    }
    close(st[1]);
    if (lease[0] >= 0)
        close(lease[0]);
    free(sel);

    /* wait for the outcome, passing a Ctrl-C on to the helper (as the
     * very signal: its error names it) */
    struct pollfd pf[2] = {{.fd = st[0], .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
    bool interrupted = false;
    strbuf pending = {0}; /* what came after the helper's progress lines */
    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof(si)) == sizeof(si))
                if (si.ssi_signo != SIGCHLD && !interrupted) {
                    interrupted = true;
                    kill(helper, (int)si.ssi_signo);
                }
        }
        if (pf[0].revents && helper_read_progress(st[0], &pending))
            break;
    }
    struct var *vars;
    size_t nvars;
    _cleanup_sb_ strbuf notes = {0};
    r = helper_read_status(st[0], &pending, &vars, &nvars, &notes, &e);
    if (r == 0 && notes.len)
        cli_note(c, "%s", notes.s);
    if (r < 0) {
        close(st[0]);
        wait_helper(helper);
        if (r == -EPIPE) /* it died without cleaning up: do it for it */
            gc_run(NULL, NULL);
        fprintf(stderr, "tether: %s\n", e.msg);
        config_free(cfg);
        return interrupted ? 130 : failed(with_cmd, EXIT_FAIL);
    }
    progress(PROGRESS_STEP, "%zu service%s ready in %s", nsel, nsel == 1 ? "" : "s",
             progress_since(t, t0));
    _cleanup_free_ char *dir = instance_dir(vars, nvars);
    int ret = EXIT_OK;
    int stop_sig = SIGTERM; /* what ends the instance: the user's own signal, if any */
    strbuf out = {0};
    if (background) {
        out_assign(&out, c->fmt, vars, nvars);
        fwrite(out.s, 1, out.len, stdout);
        /* only once the variables are out may the instance outlive us */
        if (fflush(stdout) != 0 || ferror(stdout) || helper_ack(st[0]) < 0) {
            cli_err("could not hand the variables on (stdout: %m); stopping the instance");
            kill(helper, SIGTERM);
            wait_helper(helper);
            ret = EXIT_FAIL;
        } else {
            cli_note(c, "started %zu service%s (helper pid %d); `eval \"$(tether stop)\"` stops "
                     "them", nsel, nsel == 1 ? "" : "s", (int)helper);
        }
        close(st[0]);
    } else if (cmd) {
        helper_ack(st[0]); /* the lease covers the rest */
        close(st[0]);
        long long tcmd = now_ns();
        ret = run_cmd(cmd, vars, nvars, sigfd, &old);
        if (ret >= 0)
            progress(PROGRESS_STEP, "%s exited with status %d after %s", cmd[0], ret,
                     progress_since(t, tcmd));
        ret = ret < 0 ? EXIT_TETHER : finish_cmd(dir, helper, ret);
    } else {
        helper_ack(st[0]);
        close(st[0]);
        out_assign(&out, OUT_SH, vars, nvars);
        if (!c->quiet)
            fwrite(out.s, 1, out.len, stderr);
        cli_note(c, "ready; press Ctrl-C to stop and clean up");
        for (bool done = false; !done;) {
            struct pollfd p = {.fd = sigfd, .events = POLLIN};
            if (poll(&p, 1, -1) < 0 && errno != EINTR)
                break;
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo != SIGCHLD) {
                    stop_sig = (int)si.ssi_signo;
                    done = true;
                } else if (waitpid(helper, NULL, WNOHANG) == helper) {
                    cli_err("the helper exited unexpectedly");
                    helper = 0;
                    done = true;
                    ret = EXIT_FAIL;
                }
            }
        }
    }
    sb_free(&out);
    if (!background && helper > 0) {
        if (!cmd)
            cli_note(c, "stopping");
        long long tstop = now_ns();
        kill(helper, stop_sig);
        int hs = wait_helper(helper);
        progress(PROGRESS_STEP, "stopped and cleaned up in %s", progress_since(t, tstop));
        /* a helper that was killed could not clean up: do it now, and say
         * so, since the services were not there for all of CMD's run */
        if (WIFSIGNALED(hs) && WTERMSIG(hs) != stop_sig) {
            cli_err("the helper was killed (signal %s) while the command ran; reaping what it "
                    "left", signal_name(WTERMSIG(hs)));
            gc_run(NULL, NULL);
            ret = own_failure(cmd, ret);
        } else if (WIFEXITED(hs) && WEXITSTATUS(hs) == 2) {
            say_leftover(dir);
            ret = own_failure(cmd, ret);
        } else {
            say_kept(dir);
        }
    }
    if (lease[1] >= 0)
        close(lease[1]);
    vars_free(vars, nvars);
    config_free(cfg);
    return ret;
}

/* One service's names as JSON: which config it comes from (null: the
 * built-in driver), its stem and each of its variables' full name. */
static void names_json(strbuf *b, const struct tether_config *cfg, const char *name,
                       const struct svc_conf *s)
{
    _cleanup_free_ char *stem = config_varname(cfg->prefix, s, NULL);
    _cleanup_strv_ strv vars = {0};
    config_var_names(s, &vars);
    sb_add(b, "  {\"name\": ");
    quote_json(b, name);
    sb_add(b, ", \"label\": ");
    quote_json(b, s->label);
    sb_add(b, ", \"config_file\": ");
    if (cfg->path)
        quote_json(b, cfg->path);
    else
        sb_add(b, "null");
    sb_add(b, ", \"stem\": ");
    quote_json(b, stem);
    sb_add(b, ",\n   \"vars\": {");
    for (size_t i = 0; i < vars.n; i++) {
        _cleanup_free_ char *full = config_varname(cfg->prefix, s, vars.v[i]);
        sb_add(b, i ? ", " : "");
        quote_json(b, vars.v[i]);
        sb_add(b, ": ");
        quote_json(b, full);
    }
    sb_add(b, "}}");
}

/* tether _names NAME...: the names `tether start NAME...` would hand back,
 * without starting anything, as JSON (one entry per NAME, in order).  For
 * bindings (the Python one): they take every variable name from here and
 * from start's output, never computing one themselves.  Hidden from the
 * usage, as _services: it is for programs. */
int cmd_names(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1)
        if (o != 'J')
            return EXIT_USAGE;
    char **names = argv + optind;
    size_t n = (size_t)(argc - optind);
    if (n == 0) {
        cli_err("_names takes the services to name: tether _names SERVICE...");
        return EXIT_USAGE;
    }
    struct tether_config *cfg = NULL;
    int r = load_config(c, names, n, &cfg);
    if (r)
        return r;
    struct svc_conf **sel = NULL;
    size_t nsel = 0;
    terr e;
    if (config_select(cfg, (const char *const *)names, n, &sel, &nsel, &e) < 0) {
        cli_err("%s", e.msg);
        config_free(cfg);
        return EXIT_USAGE;
    }
    free(sel);
    _cleanup_sb_ strbuf b = {0};
    sb_add(&b, "[\n");
    for (size_t i = 0; i < n; i++) {
        names_json(&b, cfg, names[i], config_find(cfg, names[i]));
        sb_add(&b, i + 1 < n ? ",\n" : "\n");
    }
    sb_add(&b, "]\n");
    fwrite(b.s, 1, b.len, stdout);
    config_free(cfg);
    return EXIT_OK;
}
