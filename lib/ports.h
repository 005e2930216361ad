/* TCP ports: the reservation shared by every tether instance of a user,
 * and who listens on a port (/proc/net/tcp and tcp6). */
#pragma once
#include <sys/types.h>
#include "util.h"

/* Reserve a port on 127.0.0.1: `want` > 0 for that port, 0 for any free
 * one.  The reservation is an abstract unix socket named after the uid and
 * the port, held until the returned fd is closed: it vanishes with its
 * holder, so a SIGKILLed helper can never leave a stale lock behind.  A
 * name held by another uid (anyone can bind any abstract name) is a
 * squatter and does not block: the port is then used unreserved, and the
 * readiness check that the listener is the service's own catches a
 * collision. */
int port_reserve(int want, int *port, terr *e);

/* A LISTEN socket on a port, as /proc/net/tcp{,6} show it. */
struct port_listener {
    unsigned long inode; /* 0: the socket is closing, no fd holds it */
    uid_t uid;           /* the uid that made the socket */
};

/* Append to *out the LISTEN sockets on port found in text (the contents of
 * /proc/net/tcp or /proc/net/tcp6) that a client connecting to localhost
 * can reach: bound to 127.0.0.1, ::1, ::ffff:127.0.0.1 or a wildcard
 * address.  Lines that do not parse (the header) are skipped. */
void port_parse_listeners(const char *text, int port, struct port_listener **out, size_t *n);
/* The same from this network namespace's /proc/net/tcp and tcp6 (a
 * kernel without IPv6 has no tcp6).  0 or -errno. */
int port_listeners(int port, struct port_listener **out, size_t *n);
