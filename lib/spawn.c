#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "spawn.h"

extern char **environ;

static void child_fail(int pipefd, int err)
{
    ssize_t n = write(pipefd, &err, sizeof(err));
    (void)n;
    _exit(127);
}

/* Runs between fork and exec: only async-signal-safe calls. */
static void child(const struct spawn_opts *o, int pipefd, pid_t parent)
{
    setpgid(0, 0);
    struct sigaction sa = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL); /* fails harmlessly for KILL/STOP */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nullfd < 0)
        child_fail(pipefd, errno);
    int out = o->log_fd >= 0 ? o->log_fd : nullfd;
    /* move the fd to pass out of the way of 0-2 before dup2'ing them */
    int pass = -1;
    if (o->pass_fd >= 0) {
        pass = fcntl(o->pass_fd, F_DUPFD_CLOEXEC, 100);
        if (pass < 0)
            child_fail(pipefd, errno);
    }
    if (dup2(nullfd, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        child_fail(pipefd, errno);
    /* No inherited fd survives exec, including ones leaked without
     * O_CLOEXEC by whoever started us; the error pipe stays usable until
     * exec succeeds. */
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (pass >= 0 && dup2(pass, o->pass_fd_as) < 0)
        child_fail(pipefd, errno);

    if (o->drop_privs && geteuid() == 0) {
        if (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0)
            child_fail(pipefd, errno);
    }
    /* after the privilege drop, which would clear it */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(pipefd, errno);
    if (getppid() != parent)
        child_fail(pipefd, ESRCH); /* the helper died before we could be tied to it */
    if (o->cwd && chdir(o->cwd) < 0)
        child_fail(pipefd, errno);
    environ = (char **)o->envp;
    execvp(o->argv[0], o->argv);
    child_fail(pipefd, errno);
}

int spawn_process(const struct spawn_opts *o, pid_t *pid, terr *e)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return terr_set(e, errno, "pipe: %m");
    pid_t parent = getpid();
    pid_t c = fork();
    if (c < 0) {
        int r = terr_set(e, errno, "fork: %m");
        close(p[0]);
        close(p[1]);
        return r;
    }
    if (c == 0) {
        close(p[0]);
        child(o, p[1], parent);
    }
    close(p[1]);
    int err = 0;
    ssize_t n;
    do
        n = read(p[0], &err, sizeof(err));
    while (n < 0 && errno == EINTR);
    close(p[0]);
    if (n == sizeof(err)) {
        /* exec failed: reap the child here, it never ran anything */
        waitpid(c, NULL, 0);
        return terr_set(e, err, "cannot run '%s': %s%s", o->argv[0], strerror(err),
                        err != ENOENT              ? ""
                        : strchr(o->argv[0], '/') ? " (no such file)"
                                                  : " (is it installed and on PATH?)");
    }
    *pid = c;
    return 0;
}

char *file_tail(const char *path, int nlines)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int fd = open_file_trusted(AT_FDCWD, path, geteuid(), NULL); /* a log: ours */
    if (fd < 0)
        return xstrdup("");
    /* only the end matters: a flooded log must not cost us its size */
    struct stat st;
    off_t start = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 65536)
        start = st.st_size - 65536;
    text = xmalloc(65537);
    ssize_t n = pread(fd, text, 65536, start);
    close(fd);
    if (n <= 0)
        return xstrdup("");
    len = (size_t)n;
    text[len] = '\0';
    if (len && text[len - 1] == '\n')
        text[--len] = '\0';
    size_t i = len;
    int lines = 0;
    while (i > 0) {
        if (text[i - 1] == '\n' && ++lines == nlines)
            break;
        i--;
    }
    strbuf b = {0};
    const char *p = text + i;
    /* indent each line so the tail reads as a quotation in the error */
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        sb_add(&b, "    | ");
        sb_addn(&b, p, l);
        sb_addc(&b, '\n');
        p += l + (nl ? 1 : 0);
    }
    return sb_steal(&b);
}
