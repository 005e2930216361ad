/* The floors' probe: retry until a server answers, as fast as a plain
 * script could, so that the floors are honest (no interpreter start-up).
 *   probe tcp PORT [REQUEST EXPECT]
 *   probe unix PATH [REQUEST EXPECT]
 *   probe pg HOST PORT USER DBNAME        (connects, like a test would)
 *   probe ldapi PATH                      (an anonymous LDAP bind, as tether's
 *                                          slapd driver checks readiness)
 * REQUEST may use \r\n escapes. */
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] == 'r') {
            *o++ = '\r';
            s++;
        } else if (s[0] == '\\' && s[1] == 'n') {
            *o++ = '\n';
            s++;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* An anonymous simple bind, and the start of its success answer: binary,
 * so lengths instead of strlen. */
static const char ldap_bind[] = "\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00";
static const char ldap_ok[] = "\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00";

static int try_ldapi(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    char buf[64];
    ssize_t n = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, ldap_bind, sizeof(ldap_bind) - 1) == (ssize_t)sizeof(ldap_bind) - 1)
        n = read(fd, buf, sizeof(buf));
    close(fd);
    return n >= (ssize_t)sizeof(ldap_ok) - 1 && memcmp(buf, ldap_ok, sizeof(ldap_ok) - 1) == 0
               ? 0 : -1;
}

static int try_once(int unix_, const char *where, const char *req, const char *expect)
{
    int fd = socket(unix_ ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int r;
    if (unix_) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", where);
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(where)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (r == 0 && req) {
        char buf[256];
        ssize_t n = write(fd, req, strlen(req));
        n = n > 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        r = n > 0 && strncmp(buf, expect, strlen(expect)) == 0 ? 0 : -1;
    }
    close(fd);
    return r;
}

int main(int argc, char **argv)
{
    struct timespec tiny = {0, 200000}; /* 0.2 ms between attempts */
    if (argc >= 3 && (strcmp(argv[1], "tcp") == 0 || strcmp(argv[1], "unix") == 0)) {
        int unix_ = strcmp(argv[1], "unix") == 0;
        char *req = argc >= 5 ? argv[3] : NULL;
        if (req)
            unescape(req);
        for (int i = 0; i < 100000; i++) {
            if (try_once(unix_, argv[2], req, req ? argv[4] : NULL) == 0)
                return 0;
            nanosleep(&tiny, NULL);
        }
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "ldapi") == 0) {
        for (int i = 0; i < 100000; i++) {
            if (try_ldapi(argv[2]) == 0)
                return 0;
            nanosleep(&tiny, NULL);
        }
        return 1;
    }
    if (argc == 6 && strcmp(argv[1], "pg") == 0) {
        const char *keys[] = {"host", "port", "user", "dbname", NULL};
        const char *vals[] = {argv[2], argv[3], argv[4], argv[5], NULL};
        for (int i = 0; i < 100000; i++) {
            PGconn *c = PQconnectdbParams(keys, vals, 0);
            int ok = PQstatus(c) == CONNECTION_OK;
            PQfinish(c);
            if (ok)
                return 0;
            nanosleep(&tiny, NULL);
        }
        return 1;
    }
    fprintf(stderr, "usage: probe tcp PORT [REQ EXPECT] | unix PATH [REQ EXPECT] | pg HOST PORT USER DB | ldapi PATH\n");
    return 2;
}
