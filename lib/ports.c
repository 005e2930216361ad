#include <errno.h>
#include <netinet/in.h>
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

static int lock_port(int port)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "tether-port-%d", port);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
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

bool port_reserved(int port)
{
    int fd = lock_port(port);
    if (fd < 0)
        return fd == -EADDRINUSE;
    close(fd);
    return false;
}

int port_reserve(int want, int *port, terr *e)
{
    if (want > 0) {
        int fd = lock_port(want);
        if (fd < 0)
            return terr_set(e, fd,
                            fd == -EADDRINUSE
                                ? "port %d is already reserved by another tether instance: "
                                  "use port = auto, or stop the other instance (tether list)"
                                : "cannot reserve port %d: %s",
                            want, strerror(-fd));
        int r = port_bindable(want);
        if (r < 0) {
            close(fd);
            return terr_set(e, r, "port %d on 127.0.0.1 is not free (%s): use port = auto, "
                            "or stop whatever listens there (ss -ltnp 'sport = %d')",
                            want, strerror(-r), want);
        }
        *port = want;
        return fd;
    }
    for (int tries = 0; tries < 500; tries++) {
        unsigned rnd;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
            return terr_set(e, errno, "getrandom: %m");
        int p = PORT_MIN + (int)(rnd % (PORT_MAX - PORT_MIN));
        int fd = lock_port(p);
        if (fd < 0)
            continue;
        if (port_bindable(p) < 0) {
            close(fd);
            continue;
        }
        *port = p;
        return fd;
    }
    return terr_set(e, EADDRINUSE, "no free TCP port found in %d-%d after 500 tries", PORT_MIN,
                    PORT_MAX);
}
