/* Commands that act on running instances: stop, status, reset, logs,
 * list, gc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <time.h>

#include "cli.h"
#include "client.h"
#include "drivers/driver.h"
#include "hlog.h"
#include "instance.h"

extern char **environ;

#define STOP_TIMEOUT_NS (120LL * 1000000000LL)

static int fmt_opts(struct cli *c, int argc, char **argv, bool *all, bool *follow)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'}, {"fish", no_argument, NULL, 'F'},
        {"csh", no_argument, NULL, 'c'},  {"sh", no_argument, NULL, 's'},
        {"all", no_argument, NULL, 'a'},  {"follow", no_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'}, {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "scqaf", opts, NULL)) != -1) {
        switch (o) {
        case 'J': c->fmt = OUT_JSON; break;
        case 'F': c->fmt = OUT_FISH; break;
        case 'c': c->fmt = OUT_CSH; break;
        case 's': c->fmt = OUT_SH; break;
        case 'q': cli_quiet(c); break;
        case 'a':
            if (!all)
                return -1;
            *all = true;
            break;
        case 'f':
            if (!follow)
                return -1;
            *follow = true;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

static int open_root(char **path)
{
    terr e;
    int fd = state_root(path, &e);
    if (fd < 0)
        cli_err("%s", e.msg);
    return fd;
}

/* ---- stop ---- */

static void add_unset_names(strv *names, const struct env_svc *s)
{
    _cleanup_free_ char *cfname = xasprintf("%s/%s.env", s->instdir, s->label);
    strv fromfile = {0};
    configfile_names(cfname, &fromfile);
    for (size_t i = 0; i < fromfile.n; i++)
        if (!strv_contains(names, fromfile.v[i]))
            strv_push(names, fromfile.v[i]);
    strv_free(&fromfile);
    /* also whatever the environment has under this service's stem, so a
     * dead instance still leaves a clean shell */
    size_t sl = strlen(s->stem);
    for (char **p = environ; *p; p++) {
        const char *eq = strchr(*p, '=');
        if (!eq || strncmp(*p, s->stem, sl) != 0 || (*p)[sl] != '_')
            continue;
        _cleanup_free_ char *n = xstrndup(*p, (size_t)(eq - *p));
        if (!strv_contains(names, n))
            strv_push(names, n);
    }
    driver_globals_of(s->stem, names);
}

static int stop_one(const char *instdir, pid_t pid)
{
    terr e;
    long long t0 = now_ns();
    int r = instance_stop(instdir, pid, STOP_TIMEOUT_NS, &e);
    if (r < 0) {
        cli_err("%s", e.msg);
        return EXIT_FAIL;
    }
    char t[32];
    progress(PROGRESS_STEP, "instance %s stopped and cleaned up in %s", instdir,
             progress_since(t, t0));
    return r > 0 ? EXIT_FAIL : EXIT_OK; /* its helper warned: something is left undone */
}

static struct env_svc **newest_first(struct env_svc *svcs, size_t n);

static int stop_all(void)
{
    _cleanup_free_ char *root = NULL;
    _cleanup_close_ int rfd = open_root(&root);
    if (rfd < 0)
        return EXIT_FAIL;
    DIR *d = fdopendir(fcntl(rfd, F_DUPFD_CLOEXEC, 3));
    if (!d)
        return EXIT_FAIL;
    strv ids = {0};
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            strv_push(&ids, de->d_name);
    closedir(d);
    /* as env_svc entries, to stop them in the same order as cmd_stop */
    struct env_svc *svcs = xcalloc(ids.n ? ids.n : 1, sizeof(*svcs));
    size_t n = 0;
    for (size_t i = 0; i < ids.n; i++) {
        _cleanup_close_ int fd = openat(rfd, ids.v[i], O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        struct state_info st;
        char why[TERR_MAX];
        if (fd < 0 || state_read(fd, &st) < 0)
            continue;
        if (instance_kept(fd, why) == KEPT_FAILED)
            continue; /* stopped already, and kept to look at: gc --kept */
        svcs[n].instdir = xasprintf("%s/%s", root, ids.v[i]);
        svcs[n++].pid = st.helper.pid;
    }
    strv_free(&ids);
    struct env_svc **order = newest_first(svcs, n);
    int ret = EXIT_OK;
    for (size_t i = 0; i < n; i++)
        if (stop_one(order[i]->instdir, order[i]->pid))
            ret = EXIT_FAIL;
    free(order);
    env_services_free(svcs, n);
    return ret;
}

/* When an instance's helper started (0 if unknown): boot-time ticks. */
static unsigned long long started(const struct env_svc *s)
{
    _cleanup_close_ int fd = open(s->instdir, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    struct state_info st;
    return fd >= 0 && state_read(fd, &st) == 0 ? st.helper.starttime : 0;
}

struct by_start {
    struct env_svc *s;
    unsigned long long t;
    size_t i; /* ties keep their order */
};

static int later_first(const void *a, const void *b)
{
    const struct by_start *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* The services in the order their instances should stop: the newest
 * first, the reverse of how they were started. */
static struct env_svc **newest_first(struct env_svc *svcs, size_t n)
{
    struct by_start *v = xcalloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (struct by_start){.s = &svcs[i], .t = started(&svcs[i]), .i = i};
    qsort(v, n, sizeof(*v), later_first);
    struct env_svc **order = xcalloc(n ? n : 1, sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = v[i].s;
    free(v);
    return order;
}

int cmd_stop(struct cli *c, int argc, char **argv)
{
    bool all = false;
    if (fmt_opts(c, argc, argv, &all, NULL) < 0)
        return EXIT_USAGE;
    struct env_svc *svcs;
    size_t n = env_services(environ, &svcs);
    int ret = EXIT_OK;
    strv names = {0};
    for (size_t i = 0; i < n; i++)
        add_unset_names(&names, &svcs[i]);
    /* one helper per instance: stop each once, the newest first (an
     * instance with a database on another's server = goes before it) */
    struct env_svc **order = newest_first(svcs, n);
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = streq(order[j]->instdir, order[i]->instdir);
        if (!seen && stop_one(order[i]->instdir, order[i]->pid))
            ret = EXIT_FAIL;
    }
    free(order);
    if (all && stop_all())
        ret = EXIT_FAIL;
    if (optind < argc) {
        _cleanup_free_ char *root = NULL;
        _cleanup_close_ int rfd = open_root(&root);
        for (int i = optind; rfd >= 0 && i < argc; i++) {
            _cleanup_free_ char *dir = xasprintf("%s/%s", root, argv[i]);
            _cleanup_close_ int fd =
                strchr(argv[i], '/') ? -1 : openat(rfd, argv[i], O_DIRECTORY | O_CLOEXEC);
            struct state_info st;
            if (fd < 0 || state_read(fd, &st) < 0) {
                cli_err("no instance '%s' in %s (see tether list)", argv[i], root);
                ret = EXIT_FAIL;
                continue;
            }
            if (stop_one(dir, st.helper.pid))
                ret = EXIT_FAIL;
        }
    }
    if (n == 0 && !all && optind >= argc) {
        cli_err("nothing to stop: no *_CONTROL_PID variable in the environment (did you "
                "eval \"$(tether start)\" in this shell?); use --all or an instance id");
        env_services_free(svcs, n);
        return EXIT_NONE;
    }
    strbuf out = {0};
    out_unset(&out, c->fmt, (const char *const *)names.v, names.n);
    if (names.n || c->fmt == OUT_JSON)
        fwrite(out.s, 1, out.len, stdout);
    sb_free(&out);
    strv_free(&names);
    env_services_free(svcs, n);
    return ret;
}

/* ---- status ---- */

/* The helper's line for a label: "label state rest". */
static const char *find_line(const char *reply, const char *label, char *state, size_t sl)
{
    size_t ll = strlen(label);
    for (const char *p = reply; p && *p;) {
        if (strncasecmp(p, label, ll) == 0 && p[ll] == ' ') {
            const char *st = p + ll + 1;
            size_t n = strcspn(st, " \n");
            snprintf(state, sl, "%.*s", (int)n, st);
            return st + n + (st[n] == ' ');
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static int check_svc(struct cli *c, const struct env_svc *s, bool *healthy)
{
    *healthy = false;
    terr e;
    int r = instance_reach(s->instdir, s->pid, &e);
    if (r < 0 && r != -ESRCH) {
        cli_err("[%s] %s", s->label, e.msg);
        return 0;
    }
    if (r < 0) {
        cli_err("[%s] is not running: its helper (%s_CONTROL_PID=%d) is gone (it was "
                "killed, stopped elsewhere, or its --expire/--watch-pid ran out); run `tether "
                "gc`, then start it again",
                s->label, s->stem, (int)s->pid);
        return 0;
    }
    _cleanup_free_ char *reply = NULL;
    if (control_request(s->instdir, s->pid, "status", &reply, &e) < 0) {
        cli_err("[%s] %s", s->label, e.msg);
        return 0;
    }
    char state[32] = "";
    const char *rest = find_line(reply, s->label, state, sizeof(state));
    if (!rest) {
        cli_err("[%s] is not part of instance %s", s->label, s->instdir);
        return 0;
    }
    size_t rl = strcspn(rest, "\n");
    if (streq(state, "ready")) {
        *healthy = true;
        cli_note(c, "[%s] ready (pid %.*s)", s->label, (int)rl, rest);
    } else if (streq(state, "dead")) {
        cli_err("[%s] is not running: it %.*s (it crashed; see `tether logs %s`)",
                s->label, (int)rl, rest, s->label);
    } else {
        const char *why = unlabeled(rest, s->label); /* the health check's names it too */
        cli_err("[%s] is %s: %.*s", s->label, state, (int)(rl - (size_t)(why - rest)), why);
    }
    return 0;
}

static size_t env_or_fail(struct env_svc **svcs, const char *what)
{
    size_t n = env_services(environ, svcs);
    if (n == 0)
        cli_err("nothing to %s: no *_CONTROL_PID and *_CONFIGFILE variables in the "
                "environment (eval \"$(tether start)\" first)",
                what);
    return n;
}

static int no_args(int argc, char **argv, const char *cmd)
{
    if (optind < argc) {
        cli_err("%s takes no argument ('%s'): see tether --help", cmd, argv[optind]);
        return -1;
    }
    return 0;
}

int cmd_status(struct cli *c, int argc, char **argv)
{
    if (fmt_opts(c, argc, argv, NULL, NULL) < 0 || no_args(argc, argv, "status") < 0)
        return EXIT_USAGE;
    struct env_svc *svcs;
    size_t n = env_or_fail(&svcs, "check");
    if (n == 0)
        return EXIT_NONE;
    int ret = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        bool ok;
        check_svc(c, &svcs[i], &ok);
        if (!ok)
            ret = EXIT_FAIL;
    }
    /* what each instance's helper warned of so far (hlog.h), once */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = streq(svcs[j].instdir, svcs[i].instdir);
        if (!seen)
            hlog_show_dir(svcs[i].instdir, false, NULL);
    }
    env_services_free(svcs, n);
    return ret;
}

/* ---- reset ---- */

/* A name that none of the services the environment names has: say which
 * it has, and the closest. */
static void no_such_service(const char *name, const struct env_svc *svcs, size_t n)
{
    _cleanup_sb_ strbuf have = {0};
    _cleanup_free_ const char **labels = xcalloc(n + 1, sizeof(*labels));
    for (size_t i = 0; i < n; i++) {
        sb_addf(&have, "%s%s", i ? ", " : "", svcs[i].label);
        labels[i] = svcs[i].label;
    }
    const char *near = closest_word(name, labels, n);
    if (!n)
        cli_err("no service '%s' in the environment (eval \"$(tether start)\" first)", name);
    else
        cli_err("no service '%s' in the environment%s%s%s (running: %s)", name,
                near ? ": did you mean '" : "", near ? near : "", near ? "'?" : "", have.s);
}

/* "reset" (or what the helper did instead), then with -v the steps the
 * helper timed (the reply's other lines) and the whole round trip. */
static void say_reset(const struct cli *c, const char *label, const char *reply, long long t0)
{
    char t[32];
    size_t n = strcspn(reply, "\n");
    if (!c->verbose) {
        cli_note(c, "[%s] %.*s", label, (int)n, reply);
        return;
    }
    for (const char *p = reply + n; *p == '\n';) {
        size_t m = strcspn(++p, "\n");
        progress(PROGRESS_STEP, "[%s] %.*s", label, (int)m, p);
        p += m;
    }
    /* the whole round trip: not to be read as the helper's step above */
    progress(PROGRESS_STEP, "[%s] %.*s, %s in all", label, (int)n, reply, progress_since(t, t0));
}

int cmd_reset(struct cli *c, int argc, char **argv)
{
    if (fmt_opts(c, argc, argv, NULL, NULL) < 0)
        return EXIT_USAGE;
    struct env_svc *svcs;
    size_t n = env_or_fail(&svcs, "reset");
    if (n == 0)
        return EXIT_NONE;
    int ret = EXIT_OK;
    for (int i = optind; i < argc; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            found = strcasecmp(svcs[j].label, argv[i]) == 0;
        if (!found) {
            no_such_service(argv[i], svcs, n);
            ret = EXIT_USAGE;
        }
    }
    for (size_t j = 0; j < n && ret == EXIT_OK; j++) {
        bool wanted = optind >= argc;
        for (int i = optind; i < argc && !wanted; i++)
            wanted = strcasecmp(svcs[j].label, argv[i]) == 0;
        if (!wanted)
            continue;
        if (!instance_alive(svcs[j].instdir, svcs[j].pid)) {
            bool ok;
            check_svc(c, &svcs[j], &ok);
            ret = EXIT_FAIL;
            continue;
        }
        terr e;
        _cleanup_free_ char *req = xasprintf("reset %s", svcs[j].label);
        _cleanup_free_ char *reply = NULL;
        long long t0 = now_ns();
        if (control_request(svcs[j].instdir, svcs[j].pid, req, &reply, &e) < 0) {
            cli_err("[%s] reset: %s", svcs[j].label, e.msg);
            ret = EXIT_FAIL;
        } else if (strncmp(reply, "OK", 2) != 0) {
            cli_err("[%s] reset failed: %s", svcs[j].label,
                    unlabeled(strncmp(reply, "ERR ", 4) == 0 ? reply + 4 : reply, svcs[j].label));
            ret = EXIT_FAIL;
        } else {
            say_reset(c, svcs[j].label, reply + 3, t0);
        }
    }
    env_services_free(svcs, n);
    return ret;
}

/* ---- logs ---- */

static int cat_from(int fd, off_t *off)
{
    char buf[65536];
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), *off);
        if (n <= 0)
            return (int)n;
        fwrite(buf, 1, (size_t)n, stdout);
        *off += n;
    }
}

int cmd_logs(struct cli *c, int argc, char **argv)
{
    bool follow = false;
    if (fmt_opts(c, argc, argv, NULL, &follow) < 0 || optind != argc - 1) {
        cli_err("usage: tether logs SERVICE [-f]");
        return EXIT_USAGE;
    }
    const char *label = argv[optind];
    struct env_svc *svcs;
    size_t n = env_services(environ, &svcs);
    _cleanup_free_ char *path = NULL;
    for (size_t i = 0; i < n && !path; i++)
        if (strcasecmp(svcs[i].label, label) == 0)
            path = xasprintf("%s/%s.log", svcs[i].instdir, svcs[i].label);
    if (!path)
        no_such_service(label, svcs, n);
    env_services_free(svcs, n);
    if (!path)
        return EXIT_NONE;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cli_err("cannot open %s: %m (has the instance stopped?)", path);
        return EXIT_FAIL;
    }
    off_t off = 0;
    cat_from(fd, &off);
    fflush(stdout);
    if (follow) {
        /* follow until the instance removes the log (it stopped) */
        int in = inotify_init1(IN_CLOEXEC);
        if (in >= 0 && inotify_add_watch(in, path, IN_MODIFY | IN_DELETE_SELF | IN_ATTRIB) >= 0) {
            char ev[4096];
            for (;;) {
                ssize_t r = read(in, ev, sizeof(ev));
                if (r <= 0)
                    break;
                cat_from(fd, &off);
                fflush(stdout);
                if (access(path, F_OK) < 0)
                    break;
            }
        }
        if (in >= 0)
            close(in);
    }
    close(fd);
    return EXIT_OK;
}

/* ---- list ---- */

int cmd_list(struct cli *c, int argc, char **argv)
{
    if (fmt_opts(c, argc, argv, NULL, NULL) < 0 || no_args(argc, argv, "list") < 0)
        return EXIT_USAGE;
    _cleanup_free_ char *root = NULL;
    _cleanup_close_ int rfd = open_root(&root);
    if (rfd < 0)
        return EXIT_FAIL;
    DIR *d = fdopendir(fcntl(rfd, F_DUPFD_CLOEXEC, 3));
    if (!d)
        return EXIT_FAIL;
    printf("%-16s %8s %8s %-6s %s\n", "ID", "HELPER", "AGE", "STATE", "SERVICES");
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_close_ int fd = openat(rfd, de->d_name, O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        struct state_info st;
        if (fd < 0 || state_read(fd, &st) < 0)
            continue;
        _cleanup_close_ int lfd = openat(fd, "lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        bool alive = lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0;
        char why[TERR_MAX];
        /* kept after a failure: the user's to look at (a failed cleanup
         * stays "stale": gc retries it) */
        bool kept = !alive && instance_kept(fd, why) == KEPT_FAILED;
        long long age = (long long)time(NULL) - st.created;
        strbuf sv = {0};
        for (size_t i = 0; i < st.n_svcs; i++)
            sb_addf(&sv, "%s%s(%s)", i ? "," : "", st.svcs[i].label, st.svcs[i].state);
        printf("%-16s %8d %7llds %-6s %s\n", st.id, (int)st.helper.pid, age,
               alive ? "alive" : kept ? "kept" : "stale", sv.s ? sv.s : "");
        sb_free(&sv);
    }
    closedir(d);
    return EXIT_OK;
}

/* ---- gc ---- */

/* gc's options: --kept, -q, and the output formats every command takes
 * (gc prints no variables). */
static int gc_opts(struct cli *c, int argc, char **argv, bool *kept)
{
    static const struct option opts[] = {
        {"kept", no_argument, NULL, 'K'}, {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'J'}, {"fish", no_argument, NULL, 'F'},
        {"csh", no_argument, NULL, 'c'},  {"sh", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "scq", opts, NULL)) != -1) {
        if (o == '?')
            return -1;
        if (o == 'q')
            c->quiet = true;
        if (o == 'K')
            *kept = true;
    }
    return 0;
}

/* tether gc --kept ID...: only those kept instances. */
static int gc_kept_ids(struct cli *c, int argc, char **argv)
{
    int ret = EXIT_OK;
    for (int i = optind; i < argc; i++) {
        strbuf report = {0};
        terr e;
        int r = gc_remove_kept(argv[i], &report, &e);
        if (r < 0 && !report.len) /* else the report says it */
            cli_err("gc: %s", e.msg);
        if (report.len && (!c->quiet || r < 0))
            fputs(report.s, stderr);
        sb_free(&report);
        if (r < 0)
            ret = EXIT_FAIL;
    }
    return ret;
}

int cmd_gc(struct cli *c, int argc, char **argv)
{
    bool kept = false;
    if (gc_opts(c, argc, argv, &kept) < 0 || (!kept && no_args(argc, argv, "gc") < 0))
        return EXIT_USAGE;
    if (kept && optind < argc)
        return gc_kept_ids(c, argc, argv);
    strbuf report = {0};
    terr e;
    int r = kept ? gc_run_kept(&report, &e) : gc_run_retrying(&report, &e);
    if (report.len && !c->quiet)
        fputs(report.s, stderr);
    sb_free(&report);
    if (r < 0) {
        cli_err("gc: %s", e.msg);
        return EXIT_FAIL;
    }
    cli_note(c, "gc: reaped %d stale instance%s", r, r == 1 ? "" : "s");
    return EXIT_OK;
}
