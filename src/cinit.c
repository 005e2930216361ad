/* tether-cinit: PID 1 of a tether container, and the lease that ties the
 * container's life to its helper's.
 *
 * Why: a container's processes are not the helper's children (podman's
 * conmon, docker's containerd-shim hold them, reparented to PID 1), so
 * when the helper dies -- SIGKILL included -- nothing of the helper's own
 * reaches them: the `podman run` client dies with it (PR_SET_PDEATHSIG)
 * but the container keeps running (measured).  So the helper listens on a
 * unix socket in the service's directory, bind-mounted into the
 * container, and never accepts: we connect to it and wait.  When the
 * helper's process ends, the kernel closes its listening socket and
 * resets every connection still in its queue: our poll() sees POLLHUP at
 * once, we exit, and the kernel kills every process of the container's
 * PID namespace with its PID 1.  The runtime then sees the container end
 * (and --rm removes it).  No sidecar, no gc.
 *
 * Usage: tether-cinit LEASE_SOCKET -- PROGRAM [ARG...]
 *
 * Otherwise the usual small init (what --init's catatonit does): start
 * PROGRAM, forward the stop signals to it (a server as PID 1 would
 * ignore SIGTERM), reap orphans, exit with PROGRAM's status.
 *
 * Static (glibc -static, ~800 KB) because the image may have no libc at
 * all, or another one. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int lease_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        fprintf(stderr, "tether-cinit: lease path too long: %s\n", path);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        /* ECONNREFUSED: the helper is already gone; nothing may run */
        fprintf(stderr, "tether-cinit: no lease at %s (%s): the tether helper is gone\n", path,
                strerror(errno));
        return -1;
    }
    return fd;
}

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static int signals_fd(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(*forwarded); i++)
        sigaddset(&set, forwarded[i]);
    sigprocmask(SIG_BLOCK, &set, old);
    return signalfd(-1, &set, SFD_CLOEXEC);
}

static pid_t start(char **argv, const sigset_t *old)
{
    pid_t pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, old, NULL);
        setpgid(0, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "tether-cinit: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Reap every child; 1 with *code set once the main one has ended. */
static int reap(pid_t main_pid, int *code)
{
    int st, done = 0;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == main_pid) {
            *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            done = 1;
        }
    return done;
}

/* One signal from the signalfd: forward it, or reap.  1: the main child
 * has ended (*code its status). */
static int on_signal(int sfd, pid_t child, int *code)
{
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return 0;
    if (si.ssi_signo == SIGCHLD)
        return reap(child, code);
    kill(-child, (int)si.ssi_signo); /* its group: a shell's children too */
    kill(child, (int)si.ssi_signo);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: tether-cinit LEASE_SOCKET -- PROGRAM [ARG...]\n");
        return 2;
    }
    int lease = lease_connect(argv[1]);
    if (lease < 0)
        return 125;
    sigset_t old;
    int sfd = signals_fd(&old);
    pid_t child = sfd < 0 ? -1 : start(argv + 3, &old);
    if (child < 0) {
        perror("tether-cinit");
        return 125;
    }
    int code = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = lease, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return 125;
        if (p[1].revents) /* EOF, reset or hangup: the helper is gone */
            return 137;   /* and with PID 1, every process of the container */
        if (p[0].revents && on_signal(sfd, child, &code))
            return code;
    }
}
