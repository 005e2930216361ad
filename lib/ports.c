#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ports.h"

/* Below Linux's default ephemeral range (32768-60999), so that outgoing
 * connections do not take our ports between the bind test and the
 * server's own bind. */
#define PORT_MIN 20000
#define PORT_MAX 32000

/* "tether-port-UID-PORT": one namespace per uid, so that root's and a
 * user's instances never see each other's reservations as their own. */
static socklen_t reservation_name(struct sockaddr_un *sa, int port)
{
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "tether-port-%u-%d",
                     (unsigned)geteuid(), port);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Whether the name's holder is an instance of our uid: 1 yes, 0 no, or
 * -errno.  Ours listen, so a connect reaches them and SO_PEERCRED tells
 * their uid; a holder that only bound the name (ECONNREFUSED) or keeps its
 * queue full (EAGAIN) is not ours.  The connection stays queued at the
 * holder until it closes the name: its backlog is SOMAXCONN. */
static int held_by_us(const struct sockaddr_un *sa, socklen_t len)
{
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)sa, len) < 0)
        return errno == ECONNREFUSED || errno == EAGAIN ? 0 : -errno;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
        return -errno;
    return cred.uid == geteuid();
}

/* Take the port's reservation name: 0 with *fd holding it, 1 if another
 * uid squats the name (*fd = -1), -EADDRINUSE if an instance of ours holds
 * it, or another -errno. */
static int lock_port(int port, int *fd)
{
    *fd = -1;
    struct sockaddr_un sa;
    socklen_t len = reservation_name(&sa, port);
    _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    if (bind(s, (struct sockaddr *)&sa, len) < 0) {
        if (errno != EADDRINUSE)
            return -errno;
        int r = held_by_us(&sa, len);
        return r < 0 ? r : r ? -EADDRINUSE : 1;
    }
    if (listen(s, SOMAXCONN) < 0)
        return -errno;
    *fd = take_fd(&s);
    return 0;
}

/* Stands in for a reservation whose name another uid squats, so that the
 * caller still holds (and closes) one fd per port. */
static int unreserved(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

/* The port is free now if we can bind it (without SO_REUSEADDR, so that
 * TIME_WAIT leftovers count as taken too). */
static int port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int reserve_exact(int want, int *port, terr *e)
{
    int fd;
    int r = lock_port(want, &fd);
    if (r == -EADDRINUSE)
        return terr_set(e, r, "port %d is already reserved by another tether instance of yours: "
                        "use port = auto, or stop the other instance (tether list)", want);
    if (r < 0)
        return terr_set(e, r, "cannot reserve port %d: %s", want, strerror(-r));
    if (r == 1 && (fd = unreserved()) < 0)
        return terr_set(e, fd, "cannot reserve port %d: %s", want, strerror(-fd));
    r = port_bindable(want);
    if (r < 0) {
        close(fd);
        return terr_set(e, r, "port %d on 127.0.0.1 is not free (%s): use port = auto, "
                        "or stop whatever listens there (ss -ltnp 'sport = %d')",
                        want, strerror(-r), want);
    }
    *port = want;
    return fd;
}

int port_reserve(int want, int *port, terr *e)
{
    if (want > 0)
        return reserve_exact(want, port, e);
    /* a port whose name is squatted is the last resort: first one whose
     * name we can hold, which keeps out our own other instances too */
    int squatted = 0;
    for (int tries = 0; tries < 500; tries++) {
        unsigned rnd;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
            return terr_set(e, errno, "getrandom: %m");
        int p = PORT_MIN + (int)(rnd % (PORT_MAX - PORT_MIN));
        int fd;
        int r = lock_port(p, &fd);
        if (r < 0 && r != -EADDRINUSE)
            return terr_set(e, r, "cannot reserve port %d: %s", p, strerror(-r));
        if (r == 1 && !squatted && port_bindable(p) == 0)
            squatted = p;
        if (r != 0)
            continue;
        if (port_bindable(p) < 0) {
            close(fd);
            continue;
        }
        *port = p;
        return fd;
    }
    if (squatted) {
        *port = squatted;
        int fd = unreserved();
        return fd < 0 ? terr_set(e, fd, "cannot reserve port %d: %s", squatted, strerror(-fd))
                      : fd;
    }
    return terr_set(e, EADDRINUSE, "no free TCP port found in %d-%d after 500 tries", PORT_MIN,
                    PORT_MAX);
}

/* Whether a LISTEN socket bound to this address takes connections made to
 * localhost: 127.0.0.1, ::1, ::ffff:127.0.0.1 or a wildcard.  words are
 * the address as /proc/net/tcp{,6} print it: its 32-bit words in memory
 * order. */
static bool reaches_localhost(const uint32_t *words, int n)
{
    if (n == 1)
        return words[0] == htonl(INADDR_LOOPBACK) || words[0] == htonl(INADDR_ANY);
    struct in6_addr a;
    memcpy(&a, words, sizeof(a));
    return IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_IS_ADDR_LOOPBACK(&a) ||
           (IN6_IS_ADDR_V4MAPPED(&a) && words[3] == htonl(INADDR_LOOPBACK));
}

/* "0100007F" or 32 hex digits: 1 or 4 words, each printed by the kernel
 * with %08X from memory; 0 if it is neither. */
static int parse_addr(const char *hex, uint32_t words[4])
{
    size_t len = strlen(hex);
    if (len != 8 && len != 32)
        return 0;
    for (size_t i = 0; i < len / 8; i++) {
        char w[9];
        memcpy(w, hex + 8 * i, 8);
        w[8] = '\0';
        char *end;
        words[i] = (uint32_t)strtoul(w, &end, 16);
        if (*end)
            return 0;
    }
    return (int)(len / 8);
}

static void add_listener(struct port_listener **out, size_t *n, unsigned long inode, uid_t uid)
{
    *out = xrealloc(*out, (*n + 1) * sizeof(**out));
    (*out)[(*n)++] = (struct port_listener){.inode = inode, .uid = uid};
}

/* One line: "sl: LOCAL:PORT REMOTE:PORT ST tx:rx tr:when retr UID timeout
 * INODE ...".  True if it is a LISTEN socket (state 0A) on port that
 * reaches localhost. */
static bool parse_listener(const char *line, int port, struct port_listener *l)
{
    char addr[33];
    unsigned lport, st, uid;
    unsigned long inode;
    if (sscanf(line, " %*[0-9]: %32[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %u %*u %lu", addr, &lport,
               &st, &uid, &inode) != 5)
        return false;
    uint32_t words[4];
    int n = parse_addr(addr, words);
    if (st != 0x0A || (int)lport != port || !n || !reaches_localhost(words, n))
        return false;
    *l = (struct port_listener){.inode = inode, .uid = (uid_t)uid};
    return true;
}

void port_parse_listeners(const char *text, int port, struct port_listener **out, size_t *n)
{
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        _cleanup_free_ char *line = nl ? xstrndup(p, (size_t)(nl - p)) : xstrdup(p);
        struct port_listener l;
        if (parse_listener(line, port, &l))
            add_listener(out, n, l.inode, l.uid);
        p = nl ? nl + 1 : NULL;
    }
}

/* One sock_diag reply: a listener on port reaching localhost is added. */
static void diag_listener(const struct inet_diag_msg *m, int family, int port,
                          struct port_listener **out, size_t *n)
{
    if (ntohs(m->id.idiag_sport) == port &&
        reaches_localhost(m->id.idiag_src, family == AF_INET ? 1 : 4))
        add_listener(out, n, m->idiag_inode, (uid_t)m->idiag_uid);
}

/* Read a sock_diag dump to its end: 0, or -errno from the kernel. */
static int diag_read(int fd, int family, int port, struct port_listener **out, size_t *n)
{
    _Alignas(struct nlmsghdr) char buf[16384];
    for (;;) {
        ssize_t len = recv(fd, buf, sizeof(buf), 0);
        if (len < 0 && errno == EINTR)
            continue;
        if (len <= 0)
            return len < 0 ? -errno : -EIO;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len);
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type == NLMSG_DONE)
                return 0;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *err = NLMSG_DATA(h);
                return err->error ? err->error : -EIO;
            }
            if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                diag_listener(NLMSG_DATA(h), family, port, out, n);
        }
    }
}

/* The kernel's socket table, LISTEN sockets only: it walks the listening
 * hash alone, where reading /proc/net/tcp walks every established bucket
 * too (milliseconds on a machine with a large table). */
static int diag_listeners(int fd, int family, int port, struct port_listener **out, size_t *n)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req = {
        .nlh = {.nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
        .r = {.sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP,
              .idiag_states = 1U << TCP_LISTEN},
    };
    if (send(fd, &req, sizeof(req), 0) < 0)
        return -errno;
    return diag_read(fd, family, port, out, n);
}

/* The same from /proc/net/tcp and tcp6, where sock_diag is missing. */
static int proc_listeners(int port, struct port_listener **out, size_t *n)
{
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *text = NULL;
        int r = read_file_at(AT_FDCWD, files[i], &text, NULL);
        if (r == -ENOENT && i == 1)
            continue; /* no IPv6 */
        if (r < 0)
            return r;
        port_parse_listeners(text, port, out, n);
    }
    return 0;
}

int port_listeners(int port, struct port_listener **out, size_t *n)
{
    size_t first = *n;
    _cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    int r = fd < 0 ? -errno : diag_listeners(fd, AF_INET, port, out, n);
    /* a kernel without IPv6 has no handler for it: none there */
    if (r == 0 && (r = diag_listeners(fd, AF_INET6, port, out, n)) == -ENOENT)
        r = 0;
    if (r == 0)
        return 0;
    *n = first;
    return proc_listeners(port, out, n);
}
