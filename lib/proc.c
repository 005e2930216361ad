/* /proc parsing: enough to recognise a process again later (pid + start
 * time + boot id) and to find its children and environment. */
#include "proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Parse a decimal pid ("123"), rejecting signs, junk and overflow. */
static int parse_pid(const char *s, size_t n, pid_t *out)
{
    if (n == 0 || n > 10)
        return -EINVAL;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v <= 0 || v > INT_MAX)
        return -EINVAL;
    *out = (pid_t)v;
    return 0;
}

/* Return the next space-separated token of s (advancing *s), or NULL. */
static const char *next_token(const char **s, size_t *len)
{
    const char *p = *s;
    while (*p == ' ')
        p++;
    if (*p == '\0' || *p == '\n')
        return NULL;
    const char *start = p;
    while (*p && *p != ' ' && *p != '\n')
        p++;
    *len = (size_t)(p - start);
    *s = p;
    return start;
}

int proc_parse_stat(const char *stat, unsigned long long *starttime, pid_t *ppid, char *state)
{
    if (!stat)
        return -EINVAL;
    /* "PID (comm) S ppid ...": comm is arbitrary bytes (up to 15) and may
     * itself contain ") ", so the last ')' is the only reliable anchor. */
    const char *lp = strchr(stat, '(');
    const char *rp = strrchr(stat, ')');
    if (!lp || !rp || rp < lp || lp == stat || lp[-1] != ' ')
        return -EINVAL;
    pid_t pid;
    if (parse_pid(stat, (size_t)(lp - 1 - stat), &pid) < 0)
        return -EINVAL;
    const char *p = rp + 1;
    size_t len;
    const char *tok = next_token(&p, &len);
    if (!tok || tok != rp + 2 || len != 1 || !isalpha((unsigned char)tok[0]))
        return -EINVAL;
    char st = tok[0];

    pid_t pp = 0;
    unsigned long long start = 0;
    for (int field = 4; field <= 22; field++) {
        tok = next_token(&p, &len);
        if (!tok)
            return -EINVAL;
        if (field == 4) {
            /* ppid is 0 for init and kthreadd */
            if (len == 1 && tok[0] == '0')
                pp = 0;
            else if (parse_pid(tok, len, &pp) < 0)
                return -EINVAL;
        } else if (field == 22) {
            if (len > 20)
                return -EINVAL;
            for (size_t i = 0; i < len; i++) {
                if (tok[i] < '0' || tok[i] > '9')
                    return -EINVAL;
                unsigned long long d = (unsigned long long)(tok[i] - '0');
                if (start > (ULLONG_MAX - d) / 10)
                    return -EINVAL;
                start = start * 10 + d;
            }
        }
    }
    if (starttime)
        *starttime = start;
    if (ppid)
        *ppid = pp;
    if (state)
        *state = st;
    return 0;
}

/* Read /proc/PID/<what>; a vanished process is -ESRCH. */
static int read_proc_file(pid_t pid, const char *what, char **out, size_t *len)
{
    if (pid <= 0)
        return -ESRCH;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    size_t n;
    int r = read_file_at(AT_FDCWD, path, out, &n);
    /* ESRCH: the task died between open and read */
    if (r == -ENOENT || r == -ESRCH)
        return -ESRCH;
    if (r < 0)
        return r;
    /* read_file_at leaves an empty file's buffer unterminated */
    if (n == 0)
        **out = '\0';
    if (len)
        *len = n;
    return 0;
}

int proc_stat(pid_t pid, unsigned long long *starttime, pid_t *ppid, char *state)
{
    if (pid <= 0)
        return -ESRCH;
    /* one read into the stack: the helper looks at every new pid of the
     * machine (track.c), and a line is some 300 bytes (comm: 64 at most) */
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? -ESRCH : -errno;
    ssize_t n;
    do
        n = read(fd, buf, sizeof(buf) - 1);
    while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0)
        return err == ESRCH ? -ESRCH : -err; /* ESRCH: it died after the open */
    if ((size_t)n == sizeof(buf) - 1)
        return -EINVAL; /* no stat line is this long */
    buf[n] = '\0';
    return proc_parse_stat(buf, starttime, ppid, state);
}

int proc_starttime(pid_t pid, unsigned long long *starttime)
{
    return proc_stat(pid, starttime, NULL, NULL);
}

bool proc_same(const struct proc_id *id)
{
    if (!id)
        return false;
    unsigned long long start;
    char state;
    if (proc_stat(id->pid, &start, NULL, &state) < 0)
        return false;
    /* A zombie has already exited: it only waits to be reaped. */
    if (state == 'Z' || state == 'X' || state == 'x')
        return false;
    return start == id->starttime;
}

int proc_pidfd_open(pid_t pid)
{
    /* PIDFD_CLOEXEC does not exist: pidfds are always close-on-exec */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : fd;
}

pid_t proc_fork_pidfd(int *pidfd)
{
    int fd = -1;
    /* exit_signal 0: a "clone" child, which waitpid(-1) without __WALL
     * does not see (wait(2)) */
    struct clone_args ca = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)&fd,
                            .exit_signal = 0};
    long pid = syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid < 0 && errno == ENOSYS)
        pid = fork();
    if (pid < 0)
        return -errno;
    *pidfd = pid == 0 ? -1 : fd;
    return (pid_t)pid;
}

int proc_pidfd_reap(int pfd, pid_t pid, bool block, int *status)
{
    siginfo_t si = {0};
    int flags = WEXITED | __WALL | (block ? 0 : WNOHANG);
    int r;
    do
        r = pfd >= 0 ? waitid(P_PIDFD, (id_t)pfd, &si, flags)
                     : waitid(P_PID, (id_t)pid, &si, flags);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (si.si_pid == 0)
        return 0;
    if (status)
        *status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0)
                                           : W_EXITCODE(0, si.si_status);
    return 1;
}

int proc_pidfd_signal(int pfd, int sig)
{
    return syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) < 0 ? -errno : 0;
}

bool pidfd_wait(int pfd, long long deadline)
{
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int pr;
    do {
        long long left = deadline - now_ns();
        pr = poll(&p, 1, left > 0 ? (int)(left / 1000000 + 1) : 0);
    } while (pr < 0 && errno == EINTR);
    return pr > 0;
}

int proc_kill_wait(const struct proc_id *id, int sig, long long timeout_ns)
{
    long long deadline = now_ns() + timeout_ns;
    /* the pidfd first, so that the wait follows this very process */
    _cleanup_close_ int pfd = proc_pidfd_open(id->pid);
    if (pfd == -ESRCH)
        return 0;
    if (!proc_same(id))
        return 0;
    if (pfd >= 0) {
        (void)proc_pidfd_signal(pfd, sig); /* gone meanwhile: the wait says so */
        return pidfd_wait(pfd, deadline) ? 0 : -ETIMEDOUT;
    }
    kill(id->pid, sig);
    /* a zombie counts as gone (proc_same), as it does for the pidfd */
    while (proc_same(id)) {
        if (now_ns() >= deadline)
            return -ETIMEDOUT;
        usleep(10000);
    }
    return 0;
}

int proc_boot_id(char out[64])
{
    _cleanup_free_ char *buf = NULL;
    size_t len;
    int r = read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", &buf, &len);
    if (r < 0)
        return r;
    if (len == 0)
        return -EINVAL;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    if (len == 0 || len >= 64)
        return -EINVAL;
    memcpy(out, buf, len + 1);
    return 0;
}

bool proc_has_env(pid_t pid, const char *entry)
{
    if (!entry || !*entry)
        return false;
    _cleanup_free_ char *buf = NULL;
    size_t len;
    /* EACCES for another user's process: we cannot tell, so "no". */
    if (read_proc_file(pid, "environ", &buf, &len) < 0)
        return false;
    size_t elen = strlen(entry);
    for (size_t off = 0; off < len;) {
        const char *s = buf + off;
        const char *nul = memchr(s, '\0', len - off);
        size_t n = nul ? (size_t)(nul - s) : len - off;
        if (n == elen && memcmp(s, entry, n) == 0)
            return true;
        off += n + 1;
    }
    return false;
}

/* opendir() with O_CLOEXEC guaranteed (glibc's opendir does set it, but
 * say so explicitly since we may be forking children concurrently). */
static DIR *opendir_at(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        int err = errno;
        close(fd);
        errno = err;
    }
    return d;
}

/* Calls fn for every numeric entry of an open directory. */
static int foreach_pid_in(DIR *d, int (*fn)(pid_t pid, void *ud), void *ud)
{
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de)
            return errno ? -errno : 0;
        pid_t pid;
        if (parse_pid(de->d_name, strlen(de->d_name), &pid) < 0)
            continue;
        int r = fn(pid, ud);
        if (r != 0)
            return r;
    }
}

int proc_foreach(int (*fn)(pid_t pid, void *ud), void *ud)
{
    if (!fn)
        return -EINVAL;
    DIR *d = opendir_at(AT_FDCWD, "/proc");
    if (!d)
        return -errno;
    int r = foreach_pid_in(d, fn, ud);
    closedir(d);
    return r;
}

struct children_ctx {
    pid_t parent;
    pid_t **out;
    size_t *n;
    size_t first;          /* index of the first pid this call appended */
    int task_fd;           /* /proc/PID/task, for the children files */
    bool no_children_file; /* kernel without CONFIG_PROC_CHILDREN */
};

static void append_child(struct children_ctx *c, pid_t pid)
{
    /* A child reparented between two threads' files could show up twice. */
    for (size_t i = c->first; i < *c->n; i++)
        if ((*c->out)[i] == pid)
            return;
    *c->out = xrealloc(*c->out, (*c->n + 1) * sizeof(pid_t));
    (*c->out)[(*c->n)++] = pid;
}

static int thread_children(pid_t tid, void *ud)
{
    struct children_ctx *c = ud;
    char path[32];
    snprintf(path, sizeof(path), "%d/children", (int)tid);
    _cleanup_free_ char *buf = NULL;
    size_t n;
    int r = read_file_at(c->task_fd, path, &buf, &n);
    if (r == -ENOENT || r == -ESRCH) {
        /* Either the thread just exited, or the kernel lacks the file. */
        snprintf(path, sizeof(path), "%d", (int)tid);
        if (r == -ENOENT && faccessat(c->task_fd, path, F_OK, 0) == 0) {
            c->no_children_file = true;
            return 1;
        }
        return 0;
    }
    if (r < 0)
        return r;
    if (n == 0) /* no children; read_file_at does not terminate "" */
        return 0;
    const char *p = buf;
    size_t len;
    const char *tok;
    while ((tok = next_token(&p, &len))) {
        pid_t pid;
        if (parse_pid(tok, len, &pid) < 0)
            return -EINVAL;
        append_child(c, pid);
    }
    return 0;
}

static int ppid_matches(pid_t pid, void *ud)
{
    struct children_ctx *c = ud;
    pid_t ppid;
    /* /proc/PID/stat's ppid is the parent's tgid, so this covers children
     * of every thread. */
    if (proc_stat(pid, NULL, &ppid, NULL) == 0 && ppid == c->parent)
        append_child(c, pid);
    return 0;
}

int proc_children(pid_t pid, pid_t **out, size_t *n)
{
    if (!out || !n)
        return -EINVAL;
    if (pid <= 0)
        return -ESRCH;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir_at(AT_FDCWD, path);
    if (!d)
        return errno == ENOENT ? -ESRCH : -errno;
    struct children_ctx c = {
        .parent = pid, .out = out, .n = n, .first = *n, .task_fd = dirfd(d),
    };
    int r = foreach_pid_in(d, thread_children, &c);
    closedir(d);
    if (c.no_children_file) {
        /* Without CONFIG_PROC_CHILDREN, scan every process's ppid. */
        *n = c.first;
        r = proc_foreach(ppid_matches, &c);
    }
    if (r < 0) {
        *n = c.first;
        return r;
    }
    return 0;
}

/* "socket:[12345]" -> 12345; 0 for any other link. */
static unsigned long socket_inode(const char *link)
{
    unsigned long ino;
    char end;
    return sscanf(link, "socket:[%lu%c", &ino, &end) == 2 && end == ']' ? ino : 0;
}

int proc_socket_inodes(pid_t pid, unsigned long **out, size_t *n)
{
    if (!out || !n)
        return -EINVAL;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir_at(AT_FDCWD, path);
    if (!d)
        return errno == ENOENT ? -ESRCH : -errno;
    int r = 0;
    for (struct dirent *de; r == 0 && (de = readdir(d));) {
        char link[64];
        ssize_t len = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
        /* root without CAP_SYS_PTRACE may list another uid's fds but not
         * read them */
        if (len < 0 && (errno == EACCES || errno == EPERM))
            r = -EACCES;
        if (len <= 0) /* ".", "..", or an fd closed meanwhile */
            continue;
        link[len] = '\0';
        unsigned long ino = socket_inode(link);
        if (!ino)
            continue;
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = ino;
    }
    closedir(d);
    return r;
}

/* What follows "NAME:" on its line of /proc/PID/status, into val. */
static int status_field(pid_t pid, const char *name, char *val, size_t size)
{
    _cleanup_free_ char *buf = NULL;
    int r = read_proc_file(pid, "status", &buf, NULL);
    if (r < 0)
        return r;
    _cleanup_free_ char *key = xasprintf("\n%s:", name);
    const char *p = strstr(buf, key);
    if (!p)
        return -EINVAL;
    p += strlen(key);
    snprintf(val, size, "%.*s", (int)strcspn(p, "\n"), p);
    return 0;
}

int proc_fsuid(pid_t pid, uid_t *uid)
{
    char val[128];
    unsigned fs;
    int r = status_field(pid, "Uid", val, sizeof(val));
    /* "Uid:\treal\teffective\tsaved\tfilesystem" */
    if (r == 0 && sscanf(val, "%*u %*u %*u %u", &fs) != 1)
        r = -EINVAL;
    if (r == 0)
        *uid = (uid_t)fs;
    return r;
}

int proc_tgid(pid_t pid, pid_t *tgid)
{
    char val[64];
    int t;
    int r = status_field(pid, "Tgid", val, sizeof(val));
    if (r == 0 && (sscanf(val, "%d", &t) != 1 || t <= 0))
        r = -EINVAL;
    if (r == 0)
        *tgid = (pid_t)t;
    return r;
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* The tree below pid, breadth first; a pid may show up twice if it was
 * reparented between two reads (sorted and made unique by the caller). */
static int tree_below(pid_t pid, pid_t **pids, size_t *n)
{
    int r = proc_children(pid, pids, n);
    if (r < 0)
        return r;
    /* *n grows while we walk: each process appends its own children; the
     * bound stops a fork bomb from growing this without limit */
    for (size_t i = 0; i < *n && *n < 65536; i++) {
        r = proc_children((*pids)[i], pids, n);
        if (r < 0 && r != -ESRCH)
            return r;
    }
    return 0;
}

int proc_descendants(pid_t pid, struct proc_id **out, size_t *n)
{
    _cleanup_free_ pid_t *pids = NULL;
    size_t np = 0;
    int r = tree_below(pid, &pids, &np);
    if (r < 0)
        return r;
    if (np)
        qsort(pids, np, sizeof(*pids), cmp_pid);
    for (size_t i = 0; i < np; i++) {
        unsigned long long start;
        if ((i > 0 && pids[i] == pids[i - 1]) || proc_starttime(pids[i], &start) < 0)
            continue;
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = (struct proc_id){.pid = pids[i], .starttime = start};
    }
    return 0;
}

int proc_last_pid(pid_t *out)
{
    char buf[128];
    _cleanup_close_ int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    if (len <= 0)
        return len < 0 ? -errno : -EINVAL;
    buf[len] = '\0';
    /* "0.00 0.01 0.05 1/123 4567\n" */
    const char *p = buf, *tok = NULL;
    size_t tl = 0;
    for (int field = 0; field < 5; field++)
        if (!(tok = next_token(&p, &tl)))
            return -EINVAL;
    return parse_pid(tok, tl, out);
}

int proc_pidns(struct pidns_id *out)
{
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) < 0)
        return -errno;
    out->dev = (unsigned long long)st.st_dev;
    out->ino = (unsigned long long)st.st_ino;
    return 0;
}
