/* Unit tests for lib/proto.c: send/expect exchanges and HTTP GETs run as
 * ops (op_run_blocking) against tiny servers forked here, on a unix
 * socket and on TCP; and the parser. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "fsutil.h"
#include "proto.h"

/* ---- the servers ---- */

/* What a server does with its one connection. */
struct script {
    /* lines it must be sent, in order, each answered by reply[i] (NULL
     * ends; an expected line NULL: answer at once, before reading) */
    const char *in[8];
    const char *reply[8];
    bool bytewise;     /* answer one byte at a time */
    bool wedged;       /* accept, never answer */
    bool http;         /* read a request up to its blank line, answer reply[0] */
    size_t count;      /* read this many bytes, then answer "+<count>" */
    const char *http_want; /* the request line it must get */
};

struct server {
    char dir[64];
    char path[128]; /* the unix socket, "" for TCP */
    int port;
    pid_t pid;
};

static void put(int fd, const char *s, bool bytewise)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = bytewise ? 1 : n - i;
        ssize_t w = write(fd, s + i, k);
        if (w <= 0)
            return; /* the client had enough (+PONG without its \r\n) */
        i += (size_t)w;
        if (bytewise) { /* a slow server: each byte in a segment of its own */
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Read one line (up to \n, \r\n cut) into buf; false on EOF. */
static bool get_line(int fd, char *buf, size_t sz)
{
    size_t n = 0;
    char c;
    while (read(fd, &c, 1) == 1) {
        if (c == '\n') {
            if (n && buf[n - 1] == '\r')
                n--;
            buf[n] = '\0';
            return true;
        }
        if (n + 1 < sz)
            buf[n++] = c;
    }
    return false;
}

static void drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void serve(int c, const struct script *sc)
{
    char line[4096];
    if (sc->wedged) {
        drain(c); /* until the client gives up */
        _exit(0);
    }
    if (sc->count) {
        size_t got = 0;
        char buf[65536];
        ssize_t n;
        while (got < sc->count && (n = read(c, buf, sizeof(buf))) > 0)
            got += (size_t)n;
        snprintf(line, sizeof(line), "+%zu\r\n", got);
        put(c, line, false);
        drain(c);
        _exit(got == sc->count ? 0 : 1);
    }
    if (sc->http) {
        bool first = true, ok = false, host = false, close_ = false;
        while (get_line(c, line, sizeof(line)) && line[0]) {
            if (first)
                ok = streq(line, sc->http_want);
            first = false;
            host |= strncmp(line, "Host: ", 6) == 0;
            close_ |= streq(line, "Connection: close");
        }
        put(c, sc->reply[0], sc->bytewise);
        close(c);
        _exit(ok && host && close_ ? 0 : 1);
    }
    for (size_t i = 0; sc->reply[i]; i++) {
        if (sc->in[i] && (!get_line(c, line, sizeof(line)) || !streq(line, sc->in[i])))
            _exit(10 + (int)i);
        put(c, sc->reply[i], sc->bytewise);
    }
    drain(c);
    _exit(0);
}

static void server_start(struct server *sv, bool tcp, const struct script *sc)
{
    memset(sv, 0, sizeof(*sv));
    int l;
    if (tcp) {
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
        socklen_t len = sizeof(sa);
        getsockname(l, (struct sockaddr *)&sa, &len);
        sv->port = ntohs(sa.sin_port);
    } else {
        strcpy(sv->dir, "/tmp/tproto.XXXXXX");
        assert_non_null(mkdtemp(sv->dir));
        snprintf(sv->path, sizeof(sv->path), "%s/s.sock", sv->dir);
        l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, sv->path);
        assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    assert_int_equal(listen(l, 4), 0);
    sv->pid = fork();
    assert_true(sv->pid >= 0);
    if (sv->pid == 0) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            _exit(2);
        if (tcp) {
            int one = 1;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        serve(c, sc);
    }
    close(l);
}

/* The server's exit status (0: it got what it should have). */
static int server_end(struct server *sv)
{
    int st = 0;
    assert_int_equal(waitpid(sv->pid, &st, 0), sv->pid);
    if (sv->path[0]) {
        unlink(sv->path);
        rmdir(sv->dir);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- running a check ---- */

static int expand(void *ud, const char *tmpl, char **out, terr *e)
{
    (void)ud;
    if (streq(tmpl, "${password}")) {
        *out = xstrdup("p\\w d"); /* a backslash: goes in as it is */
        return 0;
    }
    return terr_set(e, EINVAL, "unknown variable %s", tmpl);
}

/* Run spec against sv (its socket, else its port) with a deadline ms
 * away; e gets the message. */
static int run_ms(const char *spec, const struct server *sv, long ms, terr *e)
{
    struct proto *p = NULL;
    terr pe = {{0}};
    if (proto_parse(spec, &p, &pe) < 0)
        fail_msg("parsing %s: %s", spec, pe.msg);
    struct proto_run run = {.label = "svc", .key = "ready", .dir = "/nonexistent",
                            .sockpath = sv && sv->path[0] ? sv->path : NULL,
                            .port = sv ? sv->port : 0, .expand = expand,
                            .deadline_ns = now_ns() + ms * 1000000LL};
    struct op op;
    op_init(&op, NULL, "check");
    e->msg[0] = '\0';
    int r = proto_start(&op, p, &run, e);
    if (r == OP_STARTED)
        r = op_run_blocking(&op, e);
    assert_false(op_busy(&op));
    proto_free(p);
    return r;
}

static int run(const char *spec, const struct server *sv, terr *e)
{
    return run_ms(spec, sv, 5000, e);
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

/* ---- exchanges ---- */

static void ping(bool tcp, bool bytewise)
{
    struct script sc = {.in = {"PING"}, .reply = {"+PONG\r\n"}, .bytewise = bytewise};
    struct server sv;
    int fds = open_fds();
    server_start(&sv, tcp, &sc);
    terr e;
    assert_int_equal(run("send:PING expect:+PONG", &sv, &e), 0);
    assert_int_equal(server_end(&sv), 0);
    assert_int_equal(open_fds(), fds); /* the socket and the epoll fd are closed */
}

static void test_match_unix(void **state) { ping(false, false); }
static void test_match_tcp(void **state) { ping(true, false); }
static void test_bytewise_unix(void **state) { ping(false, true); }
static void test_bytewise_tcp(void **state) { ping(true, true); }

static void test_prefix(void **state)
{
    /* memcached: the version follows */
    struct script sc = {.in = {"version"}, .reply = {"VERSION 1.6.18\r\n"}};
    struct server sv;
    server_start(&sv, true, &sc);
    terr e;
    assert_int_equal(run("send:version expect:VERSION", &sv, &e), 0);
    assert_int_equal(server_end(&sv), 0);
}

static void test_no_newline_then_close(void **state)
{
    /* ZooKeeper: imok, no newline, and the connection closes */
    struct script sc = {.in = {"ruok"}, .reply = {"imok"}};
    struct server sv;
    server_start(&sv, false, &sc);
    terr e;
    assert_int_equal(run("send:ruok expect:imok", &sv, &e), 0);
    assert_int_equal(server_end(&sv), 0);
}

static void test_mismatch(void **state)
{
    struct script sc = {.in = {"PING"}, .reply = {"-NOAUTH Authentication required.\r\n"}};
    struct server sv;
    server_start(&sv, false, &sc);
    terr e;
    assert_int_equal(run("send:PING expect:+PONG", &sv, &e), -EPROTO);
    assert_int_equal(server_end(&sv), 0);
    char want[512];
    snprintf(want, sizeof(want),
             "[svc] ready = send:PING expect:+PONG: %s answered '-NOAUTH Authentication "
             "required.', not '+PONG'...",
             sv.path);
    assert_string_equal(e.msg, want);
}

static void test_mismatch_cut_printable(void **state)
{
    char reply[400];
    memset(reply, 'x', sizeof(reply));
    memcpy(reply, "-\x01\x1b", 3);
    strcpy(reply + sizeof(reply) - 3, "\r\n");
    struct script sc = {.in = {"PING"}, .reply = {reply}, .bytewise = false};
    struct server sv;
    server_start(&sv, true, &sc);
    terr e;
    assert_int_equal(run("send:PING expect:+PONG", &sv, &e), -EPROTO);
    server_end(&sv);
    assert_non_null(strstr(e.msg, "answered '-\\x01\\x1bxxx"));
    assert_non_null(strstr(e.msg, "xxx'..., not '+PONG'"));
    assert_null(strchr(e.msg, '\x1b'));
}

static void test_refused(void **state)
{
    terr e;
    /* no such socket */
    struct server none = {.path = "/nonexistent/tproto.sock"};
    assert_int_equal(run("send:PING expect:+PONG", &none, &e), -EAGAIN);
    assert_non_null(strstr(e.msg, "no socket /nonexistent/tproto.sock yet"));
    /* a port bound but not listening: refused, and nobody else takes it */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    getsockname(s, (struct sockaddr *)&sa, &len);
    struct server tcp = {.port = ntohs(sa.sin_port)};
    assert_int_equal(run("send:PING expect:+PONG", &tcp, &e), -EAGAIN);
    assert_non_null(strstr(e.msg, "connection refused by 127.0.0.1:"));
    assert_int_equal(run("http:/", &tcp, &e), -EAGAIN);
    close(s);
}

static void wedged(bool tcp)
{
    struct script sc = {.wedged = true};
    struct server sv;
    server_start(&sv, tcp, &sc);
    terr e;
    long long t0 = now_ns();
    assert_int_equal(run_ms("send:PING expect:+PONG", &sv, 300, &e), -ETIMEDOUT);
    long long took = now_ns() - t0;
    assert_true(took >= 300000000LL && took < 2000000000LL);
    assert_int_equal(server_end(&sv), 0);
    char want[512];
    snprintf(want, sizeof(want), "[svc] ready = send:PING expect:+PONG: no answer within 0.3 s from %s",
             tcp ? "" : sv.path);
    if (tcp)
        assert_non_null(strstr(e.msg, "no answer within 0.3 s from 127.0.0.1:"));
    else
        assert_string_equal(e.msg, want);
}

static void test_wedged_unix(void **state) { wedged(false); }
static void test_wedged_tcp(void **state) { wedged(true); }

static void test_half_answer_then_silence(void **state)
{
    /* "+PO" and nothing more: the answer is quoted as unfinished */
    struct script sc = {.in = {"PING", NULL}, .reply = {"+PO", NULL}};
    sc.wedged = false;
    struct server sv;
    /* the server answers "+PO" then drains until the client closes */
    server_start(&sv, false, &sc);
    terr e;
    assert_int_equal(run_ms("send:PING expect:+PONG", &sv, 300, &e), -ETIMEDOUT);
    server_end(&sv);
    assert_non_null(strstr(e.msg, "answered '+PO' and then nothing more within 0.3 s"));
}

static void test_partial_writes(void **state)
{
    /* more than a socket buffer holds: send() stops short and resumes
     * when the server has read */
    size_t n = 4 << 20;
    char *big = xmalloc(n + 64);
    strcpy(big, "raw:");
    memset(big + 4, 'a', n);
    snprintf(big + 4 + n, 64, " expect:+%zu", n);
    struct script sc = {.count = n};
    struct server sv;
    server_start(&sv, false, &sc);
    terr e;
    assert_int_equal(run(big, &sv, &e), 0);
    assert_int_equal(server_end(&sv), 0);
    free(big);
}

static void test_sequence(void **state)
{
    /* a redis reset over TCP: AUTH, FLUSHALL, SCRIPT FLUSH on one
     * connection, the password from a template, taken as it is */
    struct script sc = {.in = {"AUTH default p\\w d", "FLUSHALL", "SCRIPT FLUSH"},
                        .reply = {"+OK\r\n", "+OK\r\n", "+OK\r\n"},
                        .bytewise = true};
    struct server sv;
    server_start(&sv, true, &sc);
    terr e;
    assert_int_equal(run("send:'AUTH default ${password}' expect:+OK send:FLUSHALL expect:+OK "
                         "\"send:SCRIPT FLUSH\" expect:+OK",
                         &sv, &e),
                     0);
    assert_int_equal(server_end(&sv), 0);
}

static void test_sequence_second_wrong(void **state)
{
    /* answers come in one segment: the second line is the second answer */
    struct script sc = {.in = {"A", NULL}, .reply = {"+OK ignored\r\n-ERR no\r\n", NULL}};
    struct server sv;
    server_start(&sv, false, &sc);
    terr e;
    assert_int_equal(run("send:A expect:+OK expect:+OK", &sv, &e), -EPROTO);
    server_end(&sv);
    assert_non_null(strstr(e.msg, "answered '-ERR no', not '+OK'... (answer 2 of 2)"));
}

static void test_banner_and_escapes(void **state)
{
    /* a greeting first; raw: sends no CRLF, so the line is ended by hand */
    struct script sc = {.in = {NULL, "HELO\tx"}, .reply = {"220 hi\r\n", "250 ok\r\n"}};
    struct server sv;
    server_start(&sv, false, &sc);
    terr e;
    assert_int_equal(run("expect:220 raw:HELO\\tx\\r\\n expect:'250 ok\\r\\n'", &sv, &e), 0);
    assert_int_equal(server_end(&sv), 0);
}

static void test_to(void **state)
{
    struct script sc = {.in = {"PING"}, .reply = {"+PONG\r\n"}};
    struct server sv;
    server_start(&sv, true, &sc);
    terr e;
    char spec[256];
    snprintf(spec, sizeof(spec), "to:tcp:%d send:PING expect:+PONG", sv.port);
    struct server other = {.path = "/nonexistent/sock"}; /* not the default */
    other.port = 0;
    assert_int_equal(run(spec, &other, &e), 0);
    assert_int_equal(server_end(&sv), 0);

    server_start(&sv, false, &sc);
    snprintf(spec, sizeof(spec), "to:unix:%s send:PING expect:+PONG", sv.path);
    assert_int_equal(run(spec, NULL, &e), 0);
    assert_int_equal(server_end(&sv), 0);
    /* relative: in the service's directory */
    assert_int_equal(run("to:unix:x.sock send:PING expect:+PONG", NULL, &e), -EAGAIN);
    assert_non_null(strstr(e.msg, "no socket /nonexistent/x.sock yet"));
    /* no target at all */
    assert_int_equal(run("send:PING expect:+PONG", NULL, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "neither a socket nor a port"));
}

/* ---- HTTP ---- */

static int http(const char *status_line, bool tcp, terr *e)
{
    struct script sc = {.http = true, .reply = {status_line}, .http_want = "GET /healthz?x=1 HTTP/1.1",
                        .bytewise = true};
    struct server sv;
    server_start(&sv, tcp, &sc);
    int r = run("http:/healthz?x=1", &sv, e);
    assert_int_equal(server_end(&sv), 0);
    return r;
}

static void test_http_ok(void **state)
{
    terr e;
    assert_int_equal(http("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, &e), 0);
    assert_int_equal(http("HTTP/1.0 204 No Content\r\n\r\n", false, &e), 0);
}

static void test_http_not_ok(void **state)
{
    terr e;
    assert_int_equal(http("HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n", true, &e),
                     -EPROTO);
    assert_non_null(strstr(e.msg, "[svc] ready = http:/healthz?x=1: 127.0.0.1:"));
    assert_non_null(strstr(e.msg, "answered HTTP status '301 Moved Permanently', not 2xx"));
    assert_int_equal(http("HTTP/1.1 404 Not Found\r\n\r\n", false, &e), -EPROTO);
    assert_non_null(strstr(e.msg, "'404 Not Found', not 2xx"));
    assert_int_equal(http("HTTP/1.1 503 Service Unavailable\r\n\r\n", true, &e), -EPROTO);
    assert_non_null(strstr(e.msg, "'503 Service Unavailable', not 2xx"));
    assert_int_equal(http("SSH-2.0-OpenSSH_9.2\r\n", true, &e), -EPROTO);
    assert_non_null(strstr(e.msg, "answered 'SSH-2.0-OpenSSH_9.2', which is not an HTTP status line"));
    assert_int_equal(http("HTTP/1.1 2000 OK\r\n\r\n", true, &e), -EPROTO);
    assert_non_null(strstr(e.msg, "not an HTTP status line"));
    assert_int_equal(http("", false, &e), -EAGAIN);
    assert_non_null(strstr(e.msg, "closed the connection without answering"));
}

/* ---- parsing ---- */

static void parse_err(const char *spec, const char *want)
{
    struct proto *p = NULL;
    terr e = {{0}};
    assert_int_equal(proto_parse(spec, &p, &e), -EINVAL);
    assert_null(p);
    if (!strstr(e.msg, want))
        fail_msg("parsing '%s': '%s' does not say '%s'", spec, e.msg, want);
}

static void test_parse(void **state)
{
    struct proto *p = NULL;
    terr e;
    assert_int_equal(proto_parse("  to:unix:r.sock \"send:SCRIPT FLUSH\" expect:'+O K' raw:x\\\"y",
                                 &p, &e), 0);
    assert_int_equal(p->to, PROTO_TO_UNIX);
    assert_string_equal(p->to_arg, "r.sock");
    assert_int_equal(p->n_steps, 3);
    assert_int_equal(p->steps[0].kind, PROTO_SEND);
    assert_string_equal(p->steps[0].text, "SCRIPT FLUSH");
    assert_int_equal(p->steps[1].kind, PROTO_EXPECT);
    assert_string_equal(p->steps[1].text, "+O K");
    assert_int_equal(p->steps[2].kind, PROTO_RAW);
    assert_string_equal(p->steps[2].text, "x\\\"y"); /* decoded when it runs */
    assert_true(proto_needs_service_target(p) == false);
    proto_free(p);
    assert_int_equal(proto_parse("http:/ to:tcp:${port}", &p, &e), 0);
    assert_true(proto_is_http(p));
    assert_int_equal(p->to, PROTO_TO_TCP);
    proto_free(p);

    assert_true(proto_is_spec("send:PING"));
    assert_true(proto_is_spec("\"send:A B\""));
    assert_true(proto_is_spec(" http:/"));
    assert_false(proto_is_spec("tcp"));
    assert_false(proto_is_spec("unix:/x"));
    assert_false(proto_is_spec("exec:redis-cli ping"));
    assert_false(proto_is_spec("./reset.sh"));

    strbuf b = {0};
    assert_int_equal(proto_unescape("a\\x00b\\r\\n\\\\", 12, &b, &e), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.s, "a\0b\r\n\\", 6);
    sb_free(&b);
}

static void test_parse_errors(void **state)
{
    parse_err("", "says nothing to send or expect");
    parse_err("to:tcp:80", "says nothing to send or expect");
    parse_err("send:", "send: needs text after the colon");
    parse_err("send: PING", "send: needs text after the colon: write send:TEXT (quoted when");
    parse_err("PING", "'PING' is not a word of this check");
    parse_err("send:PING expext:+PONG", "'expext:+PONG' is not a word");
    parse_err("\"send:SCRIPT FLUSH", "unterminated \" quote");
    parse_err("send:a\\q", "send:a\\q: unknown escape \\q");
    parse_err("send:a\\x4", "\\x needs two hex digits");
    parse_err("send:a\\", "a lone \\ at the end");
    parse_err("send:${pass", "unterminated ${pass");
    parse_err("to:tcp:0 send:x", "to:tcp:0: write to:unix:PATH");
    parse_err("to:udp:53 send:x", "to:udp:53: write to:unix:PATH");
    parse_err("to:tcp:1 to:tcp:2 send:x", "to: given twice");
    parse_err("http:healthz", "the path begins with /");
    parse_err("http:/ send:x", "either http:/PATH or send:/expect:");
    parse_err("http:/a http:/b", "http: given twice");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_unix),
        cmocka_unit_test(test_match_tcp),
        cmocka_unit_test(test_bytewise_unix),
        cmocka_unit_test(test_bytewise_tcp),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_no_newline_then_close),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_mismatch_cut_printable),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_wedged_unix),
        cmocka_unit_test(test_wedged_tcp),
        cmocka_unit_test(test_half_answer_then_silence),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_sequence_second_wrong),
        cmocka_unit_test(test_banner_and_escapes),
        cmocka_unit_test(test_to),
        cmocka_unit_test(test_http_ok),
        cmocka_unit_test(test_http_not_ok),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
