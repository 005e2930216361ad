/* Unit tests for lib/ports.c: who listens on a port (/proc/net/tcp and
 * tcp6 parsing), and reservations that another uid cannot block. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ports.h"
#include "proc.h"

#define HEADER                                                                                   \
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "        \
    "timeout inode\n"

/* One line as the kernel prints it: every 32-bit word of the address in
 * memory order with %08X, whatever the machine's byte order. */
static void line(strbuf *b, const void *addr, size_t len, int port, int st, unsigned uid,
                 unsigned long inode)
{
    sb_add(b, "   0: ");
    for (size_t i = 0; i < len / 4; i++) {
        uint32_t w;
        memcpy(&w, (const char *)addr + 4 * i, 4);
        sb_addf(b, "%08X", w);
    }
    sb_addf(b, ":%04X %0*d:0000 %02X 00000000:00000000 00:00000000 00000000 %5u        0 %lu 1 "
               "0000000000000000 100 0 0 10 0\n",
            port, (int)len * 2, 0, st, uid, inode);
}

static void v4(strbuf *b, const char *ip, int port, int st, unsigned uid, unsigned long inode)
{
    struct in_addr a;
    assert_int_equal(inet_pton(AF_INET, ip, &a), 1);
    line(b, &a, sizeof(a), port, st, uid, inode);
}

static void v6(strbuf *b, const char *ip, int port, int st, unsigned uid, unsigned long inode)
{
    struct in6_addr a;
    assert_int_equal(inet_pton(AF_INET6, ip, &a), 1);
    line(b, &a, sizeof(a), port, st, uid, inode);
}

static size_t parse(const char *text, int port, struct port_listener **l)
{
    size_t n = 0;
    *l = NULL;
    port_parse_listeners(text, port, l, &n);
    return n;
}

static void ipv4_listeners(void **state)
{
    strbuf b = {0};
    sb_add(&b, HEADER);
    v4(&b, "127.0.0.1", 20000, 0x0A, 65534, 111); /* the hijacker */
    v4(&b, "0.0.0.0", 20000, 0x0A, 1000, 222);    /* a wildcard takes 127.0.0.1 too */
    v4(&b, "127.0.0.2", 20000, 0x0A, 0, 333);     /* another loopback address: not ours */
    v4(&b, "10.1.2.3", 20000, 0x0A, 0, 444);      /* an outside address */
    v4(&b, "127.0.0.1", 20000, 0x01, 0, 555);     /* ESTABLISHED, not LISTEN */
    v4(&b, "127.0.0.1", 20001, 0x0A, 0, 666);     /* another port */
    v4(&b, "127.0.0.1", 65535, 0x0A, 0, 777);
    struct port_listener *l;
    assert_int_equal(parse(b.s, 20000, &l), 2);
    assert_int_equal(l[0].inode, 111);
    assert_int_equal(l[0].uid, 65534);
    assert_int_equal(l[1].inode, 222);
    assert_int_equal(l[1].uid, 1000);
    free(l);
    assert_int_equal(parse(b.s, 65535, &l), 1);
    assert_int_equal(l[0].inode, 777);
    free(l);
    assert_int_equal(parse(b.s, 20002, &l), 0);
    assert_null(l);
    sb_free(&b);
}

static void ipv6_listeners(void **state)
{
    strbuf b = {0};
    sb_add(&b, HEADER);
    v6(&b, "::", 31999, 0x0A, 1, 11);                /* dual-stack wildcard */
    v6(&b, "::1", 31999, 0x0A, 2, 12);               /* "localhost" clients try it */
    v6(&b, "::ffff:127.0.0.1", 31999, 0x0A, 3, 13);  /* v4-mapped loopback */
    v6(&b, "::ffff:10.0.0.1", 31999, 0x0A, 4, 14);   /* v4-mapped outside address */
    v6(&b, "2001:db8::1", 31999, 0x0A, 5, 15);       /* an outside address */
    v6(&b, "::1", 31999, 0x06, 6, 16);               /* TIME_WAIT */
    v6(&b, "fe80::1", 31999, 0x0A, 7, 17);
    struct port_listener *l;
    assert_int_equal(parse(b.s, 31999, &l), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(l[i].inode, 11 + i);
        assert_int_equal(l[i].uid, 1 + i);
    }
    free(l);
    sb_free(&b);
}

static void malformed_lines_are_skipped(void **state)
{
    struct port_listener *l;
    assert_int_equal(parse("", 20000, &l), 0);
    assert_int_equal(parse(HEADER, 20000, &l), 0);
    assert_int_equal(parse("\n\n\n", 20000, &l), 0);
    /* truncated before the inode; an address of the wrong length; bad hex;
     * junk; a line with no newline at the end still counts */
    const char *text = HEADER
        "   0: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"
        "   1: 00007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 9 1\n"
        "   2: 0100G07F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 9 1\n"
        "garbage 0A 4E20\n"
        "   3: 00000000:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000 42 0 99 1";
    assert_int_equal(parse(text, 20000, &l), 1);
    assert_int_equal(l[0].inode, 99);
    assert_int_equal(l[0].uid, 42);
    free(l);
}

/* The real /proc/net/tcp: a listener we make is found, with its socket's
 * inode and our uid, and our own fds hold that inode. */
static void live_listener_and_its_fd(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);

    struct port_listener *l = NULL;
    size_t n = 0;
    assert_int_equal(port_listeners(ntohs(sa.sin_port), &l, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(l[0].inode, st.st_ino);
    assert_int_equal(l[0].uid, geteuid());
    free(l);
    /* the /proc/net/tcp fallback sees the same */
    _cleanup_free_ char *text = NULL;
    assert_int_equal(read_file_at(AT_FDCWD, "/proc/net/tcp", &text, NULL), 0);
    assert_int_equal(parse(text, ntohs(sa.sin_port), &l), 1);
    assert_int_equal(l[0].inode, st.st_ino);
    assert_int_equal(l[0].uid, geteuid());
    free(l);

    unsigned long *ino = NULL;
    size_t k = 0;
    assert_int_equal(proc_socket_inodes(getpid(), &ino, &k), 0);
    bool found = false;
    for (size_t i = 0; i < k; i++)
        found |= ino[i] == st.st_ino;
    assert_true(found);
    free(ino);
    assert_int_equal(proc_socket_inodes((pid_t)0x7fffffff, &ino, &k), -ESRCH);
    uid_t uid = (uid_t)-1;
    assert_int_equal(proc_fsuid(getpid(), &uid), 0);
    assert_int_equal(uid, geteuid());
    assert_int_equal(proc_fsuid((pid_t)0x7fffffff, &uid), -ESRCH);

    close(fd);
    n = 0;
    l = NULL;
    assert_int_equal(port_listeners(ntohs(sa.sin_port), &l, &n), 0);
    assert_int_equal(n, 0);
    free(l);
}

/* An IPv6 listener on ::1 counts (clients of "localhost" may try it
 * first); one on 127.0.0.2 does not. */
static void live_ipv6_and_other_loopback(void **state)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        skip(); /* no IPv6 here */
    }
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    int port = ntohs(sa.sin6_port);
    /* the same port on 127.0.0.2 */
    int fd4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1)};
    assert_int_equal(bind(fd4, (struct sockaddr *)&sa4, sizeof(sa4)), 0);
    assert_int_equal(listen(fd4, 1), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    struct port_listener *l = NULL;
    size_t n = 0;
    assert_int_equal(port_listeners(port, &l, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(l[0].inode, st.st_ino);
    free(l);
    close(fd4);
    close(fd);
}

/* A free port outside tether's auto range (the kernel's ephemeral one). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Bind the reservation name of port as a squatter would: 0 bound only, 1
 * listening, 2 listening with a full queue (*extra holds its client). */
static int squat(int port, int how, int *extra)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "tether-port-%u-%d",
                     (unsigned)geteuid(), port);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    *extra = -1;
    if (how >= 1)
        assert_int_equal(listen(fd, 0), 0);
    if (how == 2) {
        *extra = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_int_equal(connect(*extra, (struct sockaddr *)&sa, len), 0);
    }
    return fd;
}

/* Our own reservation blocks a second one; a name held by something that
 * is not one of our instances (bound only, or a full queue, as a squatter
 * of another uid would) does not. */
static void reservations(void **state)
{
    int port = free_port();
    int got = 0;
    terr e;
    int held = port_reserve(port, &got, &e);
    assert_true(held >= 0);
    assert_int_equal(got, port);
    assert_int_equal(port_reserve(port, &got, &e), -EADDRINUSE);
    assert_non_null(strstr(e.msg, "already reserved by another tether instance of yours"));
    close(held);

    for (int how = 0; how < 3; how += 2) {
        int extra;
        int sq = squat(port, how, &extra);
        got = 0;
        int fd = port_reserve(port, &got, &e);
        assert_true(fd >= 0);
        assert_int_equal(got, port);
        close(fd);
        close(sq);
        if (extra >= 0)
            close(extra);
    }
    /* a squatter listening as our own uid looks like one of our instances */
    int extra;
    int sq = squat(port, 1, &extra);
    assert_int_equal(port_reserve(port, &got, &e), -EADDRINUSE);
    close(sq);

    held = port_reserve(0, &got, &e);
    assert_true(held >= 0);
    assert_true(got >= 20000 && got < 32000);
    close(held);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ipv4_listeners),
        cmocka_unit_test(ipv6_listeners),
        cmocka_unit_test(malformed_lines_are_skipped),
        cmocka_unit_test(live_listener_and_its_fd),
        cmocka_unit_test(live_ipv6_and_other_loopback),
        cmocka_unit_test(reservations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
