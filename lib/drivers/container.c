/* The `container` driver: a service from an image (`image = NAME[:TAG]`),
 * run by podman or docker, under the same no-leak contract as any other.
 *
 * The contract across a runtime whose processes are not our children.
 * `podman run` is the helper's child, but the container's processes are
 * conmon's (containerd-shim's), reparented to PID 1: killing the client
 * leaves the container running (measured).  So the container's PID 1 is
 * ours, tether-cinit (src/cinit.c, static, bind-mounted in): it connects
 * to a unix socket that the helper listens on and never accepts (the
 * lease, in the service's directory, bind-mounted too).  When the
 * helper's process ends by any signal the kernel resets that connection;
 * cinit exits, the kernel kills the container's whole PID namespace, and
 * the runtime's exit command removes it (--rm): 0.10 s after a SIGKILL of
 * the helper, measured, without gc.  Every container carries the labels
 * tether.instance, tether.cookie and tether.service; stop and gc remove
 * what is left by name (`rm -f`).
 *
 * Cost: `image inspect` (36 ms) once per service, for the image's own
 * entrypoint and command (cinit goes in front of them) and a clear error
 * when the image is missing; then `podman run` itself. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "driver.h"
#include "../job.h"
#include "../kit.h"
#include "../service.h"
#include "tether-build.h"

#define LEASE_DIR ".lease"       /* in ${dir}: holds the lease socket */
#define IN_INIT "/.tether-init"  /* where cinit is mounted in the container */
#define IN_LEASE "/.tether-lease/sock"
#define RECORD "container"       /* in ${dir}: "RUNTIME\nNAME\n", for stop and gc */
/* How long a `rm -f` may take at stop or gc (measured: 0.1-0.3 s). */
#define RM_TIMEOUT_NS (10LL * 1000000000)

struct cdata {
    int lease;       /* listening, never accepted: the lease */
    char *runtime;   /* absolute path of podman or docker */
    char *name;      /* tether-ID-LABEL */
    strv entry;      /* the image's entrypoint + command (when no command =) */
    bool inspected;
};

static const char *const container_keys[] = {"image", "runtime", "container_port", "volume.",
                                             NULL};

static struct cdata *cdata(struct svc *s)
{
    if (!s->driver_data) {
        struct cdata *d = xcalloc(1, sizeof(*d));
        d->lease = -1;
        d->name = xasprintf("tether-%s-%s", svc_instance_id(s), s->conf->label);
        s->driver_data = d;
    }
    return s->driver_data;
}

static bool executable(const char *path)
{
    return access(path, X_OK) == 0;
}

static bool is_docker(const char *runtime)
{
    const char *b = strrchr(runtime, '/');
    return strstr(b ? b + 1 : runtime, "docker") != NULL;
}

/* runtime = podman | docker | a path; default: podman, else docker. */
static int find_runtime(const struct svc *s, char *out, size_t outsz, terr *e)
{
    const char *want = svc_opt(s->conf, "runtime");
    if (want && strchr(want, '/')) {
        snprintf(out, outsz, "%s", want);
        return 0;
    }
    if (want)
        return program_find(s->conf->label, want, want, out, outsz, e);
    if (program_find(s->conf->label, "podman", "podman", out, outsz, e) == 0)
        return 0;
    if (program_find(s->conf->label, "docker", "docker.io", out, outsz, NULL) == 0)
        return 0;
    return terr_set(e, ENOENT,
                    "[%s] image = %s needs a container runtime: neither podman nor docker is in "
                    "PATH (apt-get install podman, or docker.io)",
                    s->conf->label, svc_opt(s->conf, "image"));
}

/* reset = exec:CMD runs CMD inside the container: `RUNTIME exec NAME
 * CMD`, a command like any reset command (its exit status is the reset's). */
static int exec_reset(struct svc_conf *c)
{
    if (!c->reset || strncmp(c->reset, "exec:", 5) != 0)
        return 0;
    const char *rt = svc_opt(c, "runtime");
    char path[PATH_MAX];
    if (!rt)
        rt = path_search("podman", executable, path, sizeof(path)) == 0 ? "podman" : "docker";
    char *cmd = xasprintf("%s exec ${container} %s", rt, c->reset + 5);
    free(c->reset);
    c->reset = cmd;
    return 0;
}

static int configure(struct svc_conf *c, const char *file, terr *e)
{
    const char *img = svc_opt(c, "image"), *rt = svc_opt(c, "runtime");
    const char *cp = svc_opt(c, "container_port");
    if (!img || !*img)
        return terr_at(e, EINVAL, file, c->line,
                       "[%s] has no image = ...: name the image to run, e.g. image = "
                       "docker.io/library/redis:7",
                       c->label);
    if (rt && !strchr(rt, '/') && !streq(rt, "podman") && !streq(rt, "docker"))
        return terr_at(e, EINVAL, file, c->line,
                       "[%s] runtime = %s: use podman or docker (or a path to either)", c->label,
                       rt);
    char *end = NULL;
    long n = cp ? strtol(cp, &end, 10) : 1;
    if (cp && (*end || n < 1 || n > 65535))
        return terr_at(e, EINVAL, file, c->line,
                       "[%s] container_port = %s: give the port the server listens on inside "
                       "the container (1-65535)",
                       c->label, cp);
    if (cp && c->port < 0)
        return terr_at(e, EINVAL, file, c->line,
                       "[%s] container_port = %s needs port = auto (or a number): the host port "
                       "it is published on, 127.0.0.1 only",
                       c->label, cp);
    if (!c->ready_line)
        c->ready = c->port >= 0 ? READY_TCP : READY_NONE;
    return exec_reset(c);
}

/* ---- a command's output, in a job's child (where blocking is fine) ---- */

static int run_capture(char *const *argv, strbuf *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    char buf[4096];
    ssize_t k;
    while ((k = read(p[0], buf, sizeof(buf))) > 0 || (k < 0 && errno == EINTR))
        if (k > 0)
            sb_addn(out, buf, (size_t)k);
    close(p[0]);
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0)
        return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct inspect_arg {
    const char *runtime, *image, *label;
};

/* The image's entrypoint and command, separated by \x1f, the two lists
 * by \x1e (Go templates: podman's and docker's alike). */
static int job_inspect(struct job *j, terr *e)
{
    const struct inspect_arg *a = j->arg;
    char *argv[] = {(char *)a->runtime, "image", "inspect", "--format",
                    "{{range .Config.Entrypoint}}{{.}}{{\"\\x1f\"}}{{end}}{{\"\\x1e\"}}"
                    "{{range .Config.Cmd}}{{.}}{{\"\\x1f\"}}{{end}}",
                    (char *)a->image, NULL};
    _cleanup_sb_ strbuf out = {0};
    int r = run_capture(argv, &out);
    if (r < 0)
        return terr_set(e, -r, "[%s] %s image inspect: %s", a->label, a->runtime, strerror(-r));
    if (r == 0 && out.s && strchr(out.s, '\x1e')) {
        strv_push(&j->out, "entry");
        strv_push(&j->out, out.s);
        return 0;
    }
    const char *b = strrchr(a->runtime, '/');
    return terr_set(e, ENOENT,
                    "[%s] image %s is not on this machine (%s image inspect: %.200s): pull it "
                    "first (%s pull %s), or build or import it locally; tether never pulls",
                    a->label, a->image, b ? b + 1 : a->runtime, out.s ? out.s : "", b ? b + 1 : a->runtime,
                    a->image);
}

static int inspected(struct op *op, int r, const strv *out, void *ud, terr *e)
{
    struct cdata *d = ud;
    if (r < 0)
        return r;
    const char *v = out->n >= 2 ? out->v[1] : "\x1e";
    strv_free(&d->entry);
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, "\x1f\x1e");
        if (p[n] == '\x1f')
            strv_push_own(&d->entry, xstrndup(p, n));
        p += n + (p[n] ? 1 : 0);
    }
    d->inspected = true;
    return 0;
}

/* ---- the lease ---- */

/* Listen on ${dir}/.lease/sock (through /proc/self/fd: the state
 * directory's path may be longer than a sun_path). */
static int lease_open(struct svc *s, struct cdata *d, terr *e)
{
    if (d->lease >= 0)
        return 0;
    _cleanup_free_ char *dir = xasprintf("%s/" LEASE_DIR, s->dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return terr_set(e, errno, "[%s] mkdir %s: %s", s->conf->label, dir, strerror(errno));
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return terr_set(e, errno, "[%s] open %s: %s", s->conf->label, dir, strerror(errno));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/sock", dfd);
    unlinkat(dfd, "sock", 0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return terr_set(e, err, "[%s] the lease socket %s/sock: %s", s->conf->label, dir,
                        strerror(err));
    }
    /* rootless runtimes map the container's root to our uid: it may connect */
    d->lease = fd;
    return 0;
}

static int write_record(struct svc *s, const struct cdata *d, terr *e)
{
    _cleanup_close_ int dfd = open(s->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *rec = xasprintf("%s\n%s\n", d->runtime, d->name);
    if (dfd < 0 || write_file_atomic(dfd, RECORD, rec, strlen(rec), 0600) < 0)
        return terr_set(e, errno ? errno : EIO, "[%s] write %s/%s: %s", s->conf->label, s->dir,
                        RECORD, strerror(errno ? errno : EIO));
    return 0;
}

static int prepare(struct svc *s, struct op *op, terr *e)
{
    struct cdata *d = cdata(s);
    if (!d->runtime) {
        char path[PATH_MAX];
        int r = find_runtime(s, path, sizeof(path), e);
        if (r < 0)
            return r;
        d->runtime = xstrdup(path);
    }
    int r = lease_open(s, d, e);
    if (r >= 0)
        r = write_record(s, d, e);
    if (r < 0 || d->inspected)
        return r;
    static struct inspect_arg a; /* the job's child reads it: one at a time */
    a = (struct inspect_arg){d->runtime, svc_opt(s->conf, "image"), s->conf->label};
    r = job_start(op, s, job_inspect, &a, NULL, 0, e);
    if (r == OP_STARTED) {
        job_then(op, inspected, d);
        op->deadline_ns = now_ns() + RM_TIMEOUT_NS;
    }
    return r;
}

/* ---- the command line ---- */

/* tether-cinit: TETHER_CINIT, else beside the running program (the build
 * tree, or bindir), else the installed libexec one. */
static char *cinit_path(void)
{
    const char *env = getenv("TETHER_CINIT");
    if (env && *env)
        return xstrdup(env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            char *p = xasprintf("%s/tether-cinit", exe);
            if (access(p, X_OK) == 0)
                return p;
            free(p);
        }
    }
    return xstrdup(TETHER_LIBEXECDIR "/tether-cinit");
}

/* rootful podman 4.3 (crun and runc alike) fails with "setrlimit
 * RLIMIT_NOFILE: Operation not permitted" unless the limits are explicit
 * and within its own: our hard limit, but at most cap (podman lowers its
 * own nproc to 32768 and then cannot raise the container's above it:
 * measured, "error setting rlimit type 6"). */
static void push_ulimit(strv *argv, const char *name, int res, long long cap)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) < 0)
        return;
    long long h = rl.rlim_max == RLIM_INFINITY || (long long)rl.rlim_max > cap
                      ? cap : (long long)rl.rlim_max;
    strv_push(argv, "--ulimit");
    strv_pushf(argv, "%s=%lld:%lld", name, h, h);
}

static int push_volumes(struct svc *s, strv *argv, terr *e)
{
    const struct svc_conf *c = s->conf;
    for (size_t i = 0; i < c->n_opts; i++) {
        if (strncmp(c->opts[i].key, "volume.", 7) != 0)
            continue;
        char *host = NULL;
        int r = svc_expand(s, c->opts[i].value, &host, e);
        if (r < 0)
            return r;
        if (mkdir(host, 0700) < 0 && errno != EEXIST) {
            r = terr_set(e, errno, "[%s] volume.%s = %s: mkdir: %s", c->label,
                         c->opts[i].key + 7, host, strerror(errno));
            free(host);
            return r;
        }
        strv_push(argv, "-v");
        strv_pushf(argv, "%s:%s", host, c->opts[i].key + 7);
        free(host);
    }
    return 0;
}

static void push_net(struct svc *s, strv *argv)
{
    const char *cp = svc_opt(s->conf, "container_port");
    if (!cp) { /* the server listens on ${port} in the host's network */
        strv_push(argv, "--network=host");
        return;
    }
    strv_push(argv, "-p");
    strv_pushf(argv, "127.0.0.1:%d:%s", s->port, cp);
}

static void push_labels(struct svc *s, strv *argv)
{
    _cleanup_strv_ strv env = {0};
    svc_environ(s, &env);
    const char *cookie = "";
    for (size_t i = 0; i < env.n; i++)
        if (strncmp(env.v[i], "TETHER_COOKIE=", 14) == 0)
            cookie = env.v[i] + 14;
    strv_push(argv, "--label");
    strv_pushf(argv, "tether.instance=%s", svc_instance_id(s));
    strv_push(argv, "--label");
    strv_pushf(argv, "tether.cookie=%s", cookie);
    strv_push(argv, "--label");
    strv_pushf(argv, "tether.service=%s", s->conf->label);
}

static int container_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    struct cdata *d = cdata(s);
    char runc[PATH_MAX];
    strv_push(argv, d->runtime);
    strv_push(argv, "run");
    strv_push(argv, "--rm");
    strv_push(argv, "--pull=never"); /* never a registry: a missing image is an error */
    strv_push(argv, "--name");
    strv_push(argv, d->name);
    push_labels(s, argv);
    push_ulimit(argv, "nofile", RLIMIT_NOFILE, 1048576);
    push_ulimit(argv, "nproc", RLIMIT_NPROC, 32768);
    /* crun 1.8 fails on this kernel's hybrid cgroup layout; runc works */
    if (!is_docker(d->runtime) && path_search("runc", executable, runc, sizeof(runc)) == 0) {
        strv_push(argv, "--runtime");
        strv_push(argv, runc);
    }
    push_net(s, argv);
    for (size_t i = 0; i < s->conf->n_env; i++) { /* the value stays in the environment */
        strv_push(argv, "-e");
        strv_push(argv, s->conf->env[i].key);
    }
    _cleanup_free_ char *init = cinit_path();
    strv_push(argv, "-v");
    strv_pushf(argv, "%s:" IN_INIT ":ro", init);
    strv_push(argv, "-v");
    strv_pushf(argv, "%s/" LEASE_DIR ":/.tether-lease", s->dir);
    int r = push_volumes(s, argv, e);
    if (r < 0)
        return r;
    strv_push(argv, "--entrypoint");
    strv_push(argv, IN_INIT);
    strv_push(argv, svc_opt(s->conf, "image"));
    strv_push(argv, IN_LEASE);
    strv_push(argv, "--");
    if (s->conf->command)
        return svc_argv(s, s->conf->command, argv, e);
    if (d->entry.n == 0)
        return terr_set(e, EINVAL,
                        "[%s] image %s has no entrypoint or command: give one with command = ...",
                        s->conf->label, svc_opt(s->conf, "image"));
    for (size_t i = 0; i < d->entry.n; i++)
        strv_push(argv, d->entry.v[i]);
    (void)env;
    return 0;
}

/* ---- stop, gc ---- */

/* rm -f NAME: 0, or the runtime's exit status with its words in out. */
static int rm_container(const char *runtime, const char *name, strbuf *out)
{
    /* docker's rm has no --ignore: its "No such container" is success */
    bool docker = is_docker(runtime);
    char *argv[] = {(char *)runtime, "rm", "-f", (char *)name, docker ? NULL : "--ignore", NULL};
    int r = -EIO;
    /* a paused container, unfrozen by the rm, ends by its lease and its
     * runtime's own --rm cleanup races ours: "container state improper:
     * stopped" (measured); the next rm finds it stopped and removes it */
    for (int i = 0; i < 3 && r != 0; i++) {
        sb_free(out);
        r = run_capture(argv, out);
        if (r != 0 && docker && out->s && strstr(out->s, "No such container"))
            r = 0;
    }
    return r;
}

struct rm_arg {
    const char *runtime, *name;
};

static int job_rm(struct job *j, terr *e)
{
    const struct rm_arg *a = j->arg;
    _cleanup_sb_ strbuf out = {0};
    int r = rm_container(a->runtime, a->name, &out);
    if (r != 0)
        return terr_set(e, EIO, "%s rm -f %s failed (exit %d): %.300s", a->runtime, a->name, r,
                        out.s ? out.s : "");
    return 0;
}

/* The process is gone.  A rootful client that ended by itself removed
 * its container (--rm) before exiting; one that was killed (stop_timeout)
 * may have left it: then rm -f.  Rootless, conmon is the helper's (a
 * subreaper's) descendant, killed with the rest at stop before it runs
 * its --rm exit command: the container stays "Up" with no process
 * (measured), so rm -f always (53 ms when it is gone already). */
static int cleanup(struct svc *s, terr *e)
{
    struct cdata *d = s->driver_data;
    if (!d)
        return 0;
    if (d->lease >= 0)
        close(take_fd(&d->lease));
    bool clean = geteuid() == 0 && WIFEXITED(s->exit_status) && WEXITSTATUS(s->exit_status) < 125;
    if (!d->runtime || clean)
        return 0;
    struct rm_arg a = {d->runtime, d->name};
    return job_run(s, job_rm, &a, NULL, 0, RM_TIMEOUT_NS, NULL, e);
}

/* gc: the record names the runtime and the container. */
static int reap(int svcdir_fd, const char *svcdir, terr *e)
{
    _cleanup_free_ char *rec = NULL;
    size_t len = 0;
    if (read_file_at(svcdir_fd, RECORD, &rec, &len) < 0)
        return 0; /* never started one */
    char *nl = strchr(rec, '\n');
    if (!nl)
        return 0;
    *nl = 0;
    char *name = nl + 1;
    name[strcspn(name, "\n")] = 0;
    _cleanup_sb_ strbuf out = {0};
    int r = rm_container(rec, name, &out);
    if (r != 0)
        return terr_set(e, EIO, "%s: %s rm -f %s failed (exit %d): %.300s", svcdir, rec, name, r,
                        out.s ? out.s : "");
    return 0;
}

static void container_free(struct svc *s)
{
    struct cdata *d = s->driver_data;
    if (!d)
        return;
    if (d->lease >= 0)
        close(d->lease);
    free(d->runtime);
    free(d->name);
    strv_free(&d->entry);
    free(d);
}

/* ${container}: the container's name, for a command that reaches into it
 * (reset = exec:CMD is `podman exec ${container} CMD`). */
static int lookup(struct svc *s, const char *name, const char **value)
{
    if (!streq(name, "container"))
        return -ENOENT;
    *value = cdata(s)->name;
    return 0;
}

const struct tether_driver driver_container = {
    .lookup = lookup,
    .names = (const char *const[]){"container", NULL},
    .name = "container",
    .package = "podman",
    .configure = configure,
    .prepare = prepare,
    .argv = container_argv,
    .cleanup = cleanup,
    .reap = reap,
    .free = container_free,
    .keys = container_keys,
    .template_keys = (const char *const[]){"volume.", NULL},
};
