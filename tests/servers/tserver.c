/* tserver: a tiny, dependency-free server for tether's CLI tests.
 *
 *   --tcp PORT        listen on 127.0.0.1:PORT
 *   --unix PATH       listen on a unix socket (an old file is replaced)
 *                     every connection gets "pong\n", then is closed
 *   --delay MS        wait that long before listening
 *   --notify          send READY=1 to $NOTIFY_SOCKET once listening
 *   --ready-fd N      write "ready\n" to fd N once listening
 *   --say TEXT        print TEXT and a newline on stdout once listening
 *   --never-ready     never listen, never say anything: just wait
 *   --exit CODE       print "fatal: giving up" on stderr and exit CODE at once
 *   --ignore-term     ignore SIGTERM
 *   --escape PIDFILE  double fork + setsid a grandchild that sleeps forever;
 *                     its pid goes to PIDFILE before we listen
 *   --crash-after MS  exit 3 that long after being ready
 *   --flood           write about 1 MB of log lines once ready, keep serving
 *   --eaddrinuse-once MARKER
 *                     without MARKER: create it, print "bind: Address already
 *                     in use" and exit 1; with it: behave normally
 *
 * Everything waits on events (poll, pause): no busy loop. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "tserver: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: tserver [--tcp PORT] [--unix PATH] [--delay MS] [--notify] "
                    "[--ready-fd N] [--say TEXT] [--never-ready] [--exit CODE] "
                    "[--ignore-term] [--escape PIDFILE] [--crash-after MS] [--flood] "
                    "[--eaddrinuse-once MARKER]\n");
    exit(2);
}

static long num(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        usage();
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void forever(void)
{
    for (;;)
        pause();
}

static int listen_tcp(long port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("bind");
    if (listen(fd, 64) < 0)
        die("listen");
    return fd;
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "tserver: %s: path too long\n", path);
        exit(1);
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("bind");
    if (listen(fd, 64) < 0)
        die("listen");
    return fd;
}

static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) {
        fprintf(stderr, "tserver: --notify: NOTIFY_SOCKET is not set\n");
        exit(1);
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path)) {
        fprintf(stderr, "tserver: NOTIFY_SOCKET too long\n");
        exit(1);
    }
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    static const char msg[] = "READY=1\nSTATUS=serving\n";
    if (sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        die("sendto NOTIFY_SOCKET");
    close(fd);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

/* Double fork + setsid: the grandchild leaves our process group and
 * session, is re-parented, and sleeps forever.  Its pid is in PIDFILE
 * before this returns. */
static void escape(const char *pidfile)
{
    pid_t mid = fork();
    if (mid < 0)
        die("fork");
    if (mid == 0) {
        setsid();
        pid_t gc = fork();
        if (gc < 0)
            _exit(1);
        if (gc == 0) {
            forever();
            _exit(0);
        }
        char tmp[4096], buf[32];
        snprintf(tmp, sizeof(tmp), "%s.tmp", pidfile);
        int n = snprintf(buf, sizeof(buf), "%d\n", (int)gc);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            _exit(1);
        if (write(fd, buf, (size_t)n) != n || close(fd) < 0 || rename(tmp, pidfile) < 0)
            _exit(1);
        _exit(0);
    }
    int st;
    while (waitpid(mid, &st, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "tserver: --escape: could not write %s\n", pidfile);
        exit(1);
    }
}

static void flood(void)
{
    char line[128];
    size_t total = 0;
    for (int i = 0; total < (1u << 20); i++) {
        int n = snprintf(line, sizeof(line),
                         "flood line %07d: the quick brown fox jumps over the lazy dog\n", i);
        fwrite(line, 1, (size_t)n, stdout);
        total += (size_t)n;
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long tcp = -1, delay = 0, ready_fd = -1, exit_code = -1, crash_after = -1;
    const char *unix_path = NULL, *say = NULL, *escape_pidfile = NULL, *marker = NULL;
    bool notify = false, never_ready = false, ignore_term = false, do_flood = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
#define ARG() (has ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "--tcp"))
            tcp = num(ARG());
        else if (!strcmp(a, "--unix"))
            unix_path = ARG();
        else if (!strcmp(a, "--delay"))
            delay = num(ARG());
        else if (!strcmp(a, "--notify"))
            notify = true;
        else if (!strcmp(a, "--ready-fd"))
            ready_fd = num(ARG());
        else if (!strcmp(a, "--say"))
            say = ARG();
        else if (!strcmp(a, "--never-ready"))
            never_ready = true;
        else if (!strcmp(a, "--exit"))
            exit_code = num(ARG());
        else if (!strcmp(a, "--ignore-term"))
            ignore_term = true;
        else if (!strcmp(a, "--escape"))
            escape_pidfile = ARG();
        else if (!strcmp(a, "--crash-after"))
            crash_after = num(ARG());
        else if (!strcmp(a, "--flood"))
            do_flood = true;
        else if (!strcmp(a, "--eaddrinuse-once"))
            marker = ARG();
        else
            usage();
#undef ARG
    }
    if (tcp > 65535)
        usage();

    if (exit_code >= 0) {
        fprintf(stderr, "fatal: giving up\n");
        exit((int)exit_code);
    }
    if (marker) {
        int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            close(fd);
            fprintf(stderr, "bind: Address already in use\n");
            exit(1);
        }
        if (errno != EEXIST)
            die(marker);
    }
    if (ignore_term)
        signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (escape_pidfile)
        escape(escape_pidfile);
    if (delay > 0)
        sleep_ms(delay);
    if (never_ready)
        forever();

    struct pollfd pfd[2];
    int nfd = 0;
    if (tcp >= 0)
        pfd[nfd++] = (struct pollfd){.fd = listen_tcp(tcp), .events = POLLIN};
    if (unix_path)
        pfd[nfd++] = (struct pollfd){.fd = listen_unix(unix_path), .events = POLLIN};

    if (say) {
        printf("%s\n", say);
        fflush(stdout);
    }
    if (ready_fd >= 0) {
        write_all((int)ready_fd, "ready\n", 6);
        close((int)ready_fd);
    }
    if (notify)
        notify_ready();
    if (do_flood)
        flood();

    long long crash_at = crash_after >= 0 ? now_ms() + crash_after : -1;
    for (;;) {
        int timeout = -1;
        if (crash_at >= 0) {
            long long left = crash_at - now_ms();
            if (left <= 0) {
                fprintf(stderr, "tserver: crashing as asked (--crash-after)\n");
                exit(3);
            }
            timeout = left > 1000000 ? 1000000 : (int)left;
        }
        int n = poll(pfd, (nfds_t)nfd, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        for (int i = 0; i < nfd; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            int c = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            ssize_t w = write(c, "pong\n", 5);
            (void)w;
            close(c);
        }
    }
}
