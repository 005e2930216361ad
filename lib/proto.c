/* Send/expect exchanges and HTTP GETs as ops (proto.h).
 *
 * One op holds one connection: the op's fd is the socket, and its events
 * what the exchange waits for now: POLLOUT while connecting or sending,
 * POLLIN while reading. */
#include "proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "template.h"

/* An answer is quoted in messages up to this many bytes. */
#define QUOTE_MAX 100
/* A wrong answer is read on to the end of its line (to quote it), but no
 * further than this; an HTTP status line no longer than this either. */
#define LINE_MAX_BYTES 1024

/* ---- parsing ---- */

static const char *const words[] = {"send:", "raw:", "expect:", "http:", "to:"};

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

static const char *skip_blanks(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

bool proto_is_spec(const char *text)
{
    const char *p = skip_blanks(text);
    if (*p == '"' || *p == '\'')
        p++;
    for (size_t i = 0; i < ARRAY_SIZE(words); i++)
        if (strncmp(p, words[i], strlen(words[i])) == 0)
            return true;
    return false;
}

/* The next word of *pp into w: quotes group (and are dropped), a
 * backslash and the byte after it are kept for proto_unescape.  1 a word,
 * 0 the end, < 0 an unterminated quote. */
static int next_word(const char **pp, strbuf *w, terr *e)
{
    const char *p = skip_blanks(*pp);
    if (!*p)
        return 0;
    sb_free(w);
    sb_addn(w, "", 0);
    char q = 0;
    while (*p && (q || !is_blank(*p))) {
        if (!q && (*p == '"' || *p == '\'')) {
            q = *p++;
        } else if (q && *p == q) {
            q = 0;
            p++;
        } else if (*p == '\\' && p[1]) {
            sb_addn(w, p, 2);
            p += 2;
        } else {
            sb_addc(w, *p++);
        }
    }
    if (q)
        return terr_set(e, EINVAL, "unterminated %c quote: close it with %c", q, q);
    *pp = p;
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int proto_unescape(const char *text, size_t n, strbuf *out, terr *e)
{
    sb_addn(out, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '\\') {
            sb_addc(out, text[i]);
            continue;
        }
        if (++i == n)
            return terr_set(e, EINVAL, "a lone \\ at the end: write \\\\ for a backslash");
        switch (text[i]) {
        case 'r': sb_addc(out, '\r'); break;
        case 'n': sb_addc(out, '\n'); break;
        case 't': sb_addc(out, '\t'); break;
        case '\\': case '"': case '\'': sb_addc(out, text[i]); break;
        case 'x': {
            int hi = i + 1 < n ? hexval(text[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(text[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return terr_set(e, EINVAL, "\\x needs two hex digits (\\x20 is a space)");
            char c = (char)(hi * 16 + lo);
            sb_addn(out, &c, 1);
            i += 2;
            break;
        }
        default:
            return terr_set(e, EINVAL,
                            "unknown escape \\%c: use \\r \\n \\t \\\\ \\\" \\' or \\xHH",
                            text[i]);
        }
    }
    return 0;
}

static int no_check(void *ud, const char *name, terr *e)
{
    (void)ud, (void)name, (void)e;
    return 0;
}

/* The text of a send:, raw: or expect: word: escapes and template syntax
 * are checked now, so that a mistake is a FILE:LINE error at load. */
static int check_text(const char *word, const char *text, terr *e)
{
    if (!*text)
        return terr_set(e, EINVAL, "%s needs text after the colon: write %sTEXT (quoted when "
                        "it has spaces)", word, word);
    _cleanup_sb_ strbuf b = {0};
    terr sub;
    if (proto_unescape(text, strlen(text), &b, &sub) < 0 || tmpl_foreach(text, no_check, NULL, &sub) < 0)
        return terr_set(e, EINVAL, "%s%s: %s", word, text, sub.msg);
    return 0;
}

static bool is_port_text(const char *v)
{
    if (strstr(v, "${"))
        return true; /* a template: checked when it is expanded */
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    return !errno && *v && !*end && n >= 1 && n <= 65535;
}

static int parse_to(struct proto *p, const char *arg, terr *e)
{
    if (p->to != PROTO_TO_SERVICE)
        return terr_set(e, EINVAL, "to: given twice: one connection, one target");
    if (strncmp(arg, "unix:", 5) == 0 && arg[5]) {
        p->to = PROTO_TO_UNIX;
        p->to_arg = xstrdup(arg + 5);
    } else if (strncmp(arg, "tcp:", 4) == 0 && is_port_text(arg + 4)) {
        p->to = PROTO_TO_TCP;
        p->to_arg = xstrdup(arg + 4);
    } else {
        return terr_set(e, EINVAL,
                        "to:%s: write to:unix:PATH (a socket, relative to ${dir}) or "
                        "to:tcp:PORT (a port from 1 to 65535 on 127.0.0.1)",
                        arg);
    }
    return 0;
}

static int parse_word(struct proto *p, const char *w, terr *e)
{
    static const struct {
        const char *word;
        enum proto_kind kind;
    } steps[] = {{"send:", PROTO_SEND}, {"raw:", PROTO_RAW}, {"expect:", PROTO_EXPECT}};
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        size_t l = strlen(steps[i].word);
        if (strncmp(w, steps[i].word, l) != 0)
            continue;
        int r = check_text(steps[i].word, w + l, e);
        if (r < 0)
            return r;
        p->steps = xrealloc(p->steps, (p->n_steps + 1) * sizeof(*p->steps));
        p->steps[p->n_steps++] = (struct proto_step){.kind = steps[i].kind,
                                                     .text = xstrdup(w + l)};
        return 0;
    }
    if (strncmp(w, "to:", 3) == 0)
        return parse_to(p, w + 3, e);
    if (strncmp(w, "http:", 5) == 0) {
        const char *path = w + 5;
        if (p->http_path)
            return terr_set(e, EINVAL, "http: given twice: one GET per check");
        if (path[0] != '/' && strncmp(path, "${", 2) != 0)
            return terr_set(e, EINVAL, "http:%s: the path begins with / (http:/healthz)", path);
        terr sub;
        if (tmpl_foreach(path, no_check, NULL, &sub) < 0)
            return terr_set(e, EINVAL, "http:%s: %s", path, sub.msg);
        p->http_path = xstrdup(path);
        return 0;
    }
    return terr_set(e, EINVAL,
                    "'%s' is not a word of this check: use send:TEXT, raw:TEXT, expect:TEXT, "
                    "http:/PATH, to:unix:PATH or to:tcp:PORT, and quote text with spaces "
                    "(\"send:SCRIPT FLUSH\")",
                    w);
}

int proto_parse(const char *text, struct proto **out, terr *e)
{
    struct proto *p = xcalloc(1, sizeof(*p));
    p->text = xstrdup(text);
    const char *q = text;
    _cleanup_sb_ strbuf w = {0};
    int r;
    while ((r = next_word(&q, &w, e)) > 0)
        if ((r = parse_word(p, w.s, e)) < 0)
            break;
    if (r == 0 && p->http_path && p->n_steps)
        r = terr_set(e, EINVAL,
                     "http: is a check of its own: write either http:/PATH or send:/expect: "
                     "words, not both");
    else if (r == 0 && !p->http_path && !p->n_steps)
        r = terr_set(e, EINVAL,
                     "says nothing to send or expect: write e.g. send:PING expect:+PONG, or "
                     "http:/PATH");
    if (r < 0) {
        proto_free(p);
        return r;
    }
    *out = p;
    return 0;
}

void proto_free(struct proto *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_steps; i++)
        free(p->steps[i].text);
    free(p->steps);
    free(p->text);
    free(p->to_arg);
    free(p->http_path);
    free(p);
}

/* ---- running ---- */

enum xkind { X_SEND, X_EXPECT, X_HTTP };

struct xstep {
    enum xkind kind;
    strbuf b; /* bytes to send, or the answer's expected beginning */
};

struct pst {
    bool starting;      /* proto_run's */
    long long budget_ns; /* proto_run's */
    char *who;   /* "[label] ready = send:PING expect:+PONG" */
    char *where; /* "/path/sock" or "127.0.0.1:6379" */
    int sock;
    short events; /* what the op waits on sock for now */
    bool connecting;
    long long t0;
    struct xstep *x;
    size_t n, i;
    size_t n_expect, i_expect; /* for "answer 2 of 3" */
    size_t off;  /* bytes of x[i] sent */
    bool skip;   /* reading the rest of a matched answer's line */
    strbuf rx;   /* the answer so far (what follows a matched line included) */
};

static void pst_free(struct pst *st)
{
    if (st->sock >= 0)
        close(st->sock);
    for (size_t i = 0; i < st->n; i++)
        sb_free(&st->x[i].b);
    free(st->x);
    sb_free(&st->rx);
    free(st->who);
    free(st->where);
    free(st);
}

static void proto_cancel(struct op *op)
{
    pst_free(op->data);
}

/* text with its templates expanded and, outside them, its escapes
 * decoded: a value (a password with a backslash) goes in as it is. */
static int expand_text(const struct proto_run *run, const char *text, strbuf *out, terr *e)
{
    sb_addn(out, "", 0);
    const char *p = text;
    while (*p) {
        size_t lit = 0;
        while (p[lit] && !(p[lit] == '$' && (p[lit + 1] == '{' || p[lit + 1] == '$')))
            lit += p[lit] == '\\' && p[lit + 1] ? 2 : 1;
        int r = proto_unescape(p, lit, out, e);
        if (r < 0)
            return r;
        p += lit;
        if (!*p)
            break;
        if (p[1] == '$') {
            sb_addc(out, '$');
            p += 2;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end || !run->expand)
            return terr_set(e, EINVAL, "%s: ${...} cannot be expanded here", text);
        _cleanup_free_ char *ref = xstrndup(p, (size_t)(end - p + 1));
        _cleanup_free_ char *v = NULL;
        if ((r = run->expand(run->ud, ref, &v, e)) < 0)
            return r;
        sb_add(out, v);
        p = end + 1;
    }
    return 0;
}

static struct xstep *add_x(struct pst *st, enum xkind kind)
{
    st->x = xrealloc(st->x, (st->n + 1) * sizeof(*st->x));
    st->x[st->n] = (struct xstep){.kind = kind};
    return &st->x[st->n++];
}

static int build_steps(struct pst *st, const struct proto *p, const struct proto_run *run,
                       terr *e)
{
    if (p->http_path) {
        _cleanup_sb_ strbuf path = {0};
        int r = expand_text(run, p->http_path, &path, e);
        if (r < 0)
            return terr_prefix(e, r, "http:%s", p->http_path);
        for (size_t i = 0; i < path.len; i++)
            if ((unsigned char)path.s[i] <= ' ' || path.s[i] == 0x7f)
                return terr_set(e, EINVAL,
                                "http:%s: the path has a space or control byte: write it "
                                "%%-encoded (%%20)",
                                p->http_path);
        /* the Host a server may insist on (HTTP/1.1 requires one) */
        const char *host = strchr(st->where, '/') ? "localhost" : st->where;
        struct xstep *x = add_x(st, X_SEND);
        sb_addf(&x->b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tether\r\nAccept: */*\r\n"
                       "Connection: close\r\n\r\n", path.s, host);
        add_x(st, X_HTTP);
        st->n_expect = 1;
        return 0;
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        const struct proto_step *ps = &p->steps[i];
        struct xstep *x = add_x(st, ps->kind == PROTO_EXPECT ? X_EXPECT : X_SEND);
        int r = expand_text(run, ps->text, &x->b, e);
        if (r == 0 && ps->kind == PROTO_EXPECT && !x->b.len)
            r = terr_set(e, EINVAL, "is empty once expanded: an answer begins with something");
        if (r < 0)
            return terr_prefix(e, r, "%s%s",
                               ps->kind == PROTO_SEND  ? "send:"
                               : ps->kind == PROTO_RAW ? "raw:"
                                                       : "expect:",
                               ps->text);
        if (ps->kind == PROTO_SEND)
            sb_add(&x->b, "\r\n");
        st->n_expect += ps->kind == PROTO_EXPECT;
    }
    return 0;
}

/* Where to connect: into sa, and its description into st->where. */
static int target(struct pst *st, const struct proto *p, const struct proto_run *run,
                  struct sockaddr_storage *sa, socklen_t *len, terr *e)
{
    _cleanup_free_ char *arg = NULL;
    int port = 0;
    const char *path = NULL;
    if (p->to != PROTO_TO_SERVICE) {
        _cleanup_sb_ strbuf b = {0};
        int r = expand_text(run, p->to_arg, &b, e);
        if (r < 0)
            return terr_prefix(e, r, "to:%s", p->to_arg);
        arg = sb_steal(&b);
    }
    if (p->to == PROTO_TO_UNIX) {
        path = arg;
    } else if (p->to == PROTO_TO_TCP) {
        char *end;
        long n = strtol(arg, &end, 10);
        if (*end || end == arg || n < 1 || n > 65535)
            return terr_set(e, EINVAL, "to:tcp:%s is %s, not a port from 1 to 65535",
                            p->to_arg, arg);
        port = (int)n;
    } else if (run->sockpath) {
        path = run->sockpath;
    } else if (run->port > 0) {
        port = run->port;
    } else {
        return terr_set(e, EINVAL,
                        "the service has neither a socket nor a port to talk to: add "
                        "to:unix:PATH or to:tcp:PORT, or give it socket = auto or port = auto");
    }
    if (port) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        *in = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        *len = sizeof(*in);
        st->where = xasprintf("127.0.0.1:%d", port);
        return 0;
    }
    st->where = path[0] == '/' || !run->dir ? xstrdup(path) : xasprintf("%s/%s", run->dir, path);
    struct sockaddr_un *un = (struct sockaddr_un *)sa;
    *un = (struct sockaddr_un){.sun_family = AF_UNIX};
    if (strlen(st->where) >= sizeof(un->sun_path))
        return terr_set(e, ENAMETOOLONG,
                        "the socket path %s is longer than a unix socket takes (%zu bytes): "
                        "set TETHER_DIR to a shorter directory",
                        st->where, sizeof(un->sun_path) - 1);
    strcpy(un->sun_path, st->where);
    *len = sizeof(*un);
    return 0;
}

/* "'-ERR unknown command'": the first line of an answer, cut and
 * printable. */
static void quote(strbuf *b, const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    if (nl)
        n = (size_t)(nl - s);
    if (n && s[n - 1] == '\r')
        n--;
    bool cut = n > QUOTE_MAX;
    if (cut)
        n = QUOTE_MAX;
    sb_addc(b, '\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '\'')
            sb_addf(b, "\\%c", c);
        else if (c == '\r')
            sb_add(b, "\\r");
        else if (c == '\t')
            sb_add(b, "\\t");
        else if (c < ' ' || c >= 0x7f)
            sb_addf(b, "\\x%02x", c);
        else
            sb_addc(b, (char)c);
    }
    sb_addc(b, '\'');
    if (cut)
        sb_add(b, "...");
}

static int fail(struct pst *st, terr *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct pst *st, terr *e, int err, const char *fmt, ...)
{
    _cleanup_sb_ strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    return terr_set(e, err, "%s: %s", st->who, b.s);
}

/* Wait for sock to be ready for events (the step hands it to the op). */
static int want(struct pst *st, short events)
{
    st->events = events;
    return OP_PENDING;
}

static int refused(struct pst *st, int err, terr *e)
{
    if (err == ENOENT)
        return fail(st, e, EAGAIN, "no socket %s yet", st->where);
    if (err == ECONNREFUSED)
        return fail(st, e, EAGAIN, "connection refused by %s (nobody listens there yet)",
                    st->where);
    if (err == EAGAIN) /* a unix socket's listen queue is full */
        return fail(st, e, EAGAIN, "%s does not accept connections (its listen queue is full)",
                    st->where);
    return fail(st, e, err, "cannot connect to %s: %s", st->where, strerror(err));
}

/* An expected answer of one more, whose end of line is still to come. */
static bool more_after(const struct pst *st) { return st->i + 1 < st->n; }

/* Decide on x[i], an expect, with what rx holds: 0 matched (rx keeps what
 * follows), OP_PENDING read more, < 0 failed. */
static int check_expect(struct pst *st, bool eof, bool final, terr *e)
{
    const strbuf *want_b = &st->x[st->i].b;
    size_t have = st->rx.len, need = want_b->len;
    size_t m = have < need ? have : need;
    if (st->skip) { /* the rest of the last matched line */
        char *nl = memchr(st->rx.s, '\n', have);
        if (!nl) {
            st->rx.len = 0;
            return eof ? fail(st, e, ECONNRESET, "%s closed the connection after answer %zu of "
                                                 "%zu", st->where, st->i_expect, st->n_expect)
                       : OP_PENDING;
        }
        size_t rest = have - (size_t)(nl + 1 - st->rx.s);
        memmove(st->rx.s, nl + 1, rest);
        st->rx.len = rest;
        st->rx.s[rest] = '\0';
        st->skip = false;
        return check_expect(st, eof, final, e);
    }
    if (memcmp(st->rx.s, want_b->s, m) != 0) {
        if (!memchr(st->rx.s, '\n', have) && !eof && !final && have < LINE_MAX_BYTES)
            return OP_PENDING; /* the whole line, to quote it */
        _cleanup_sb_ strbuf q = {0}, w = {0};
        quote(&q, st->rx.s, have);
        quote(&w, want_b->s, want_b->len);
        _cleanup_free_ char *nth = st->n_expect > 1 ? xasprintf(" (answer %zu of %zu)",
                                                                st->i_expect + 1, st->n_expect)
                                                    : xstrdup("");
        return fail(st, e, EPROTO, "%s answered %s, not %s...%s", st->where, q.s, w.s, nth);
    }
    if (have < need) {
        if (!eof)
            return OP_PENDING;
        if (!have)
            return fail(st, e, EAGAIN, "%s closed the connection without answering",
                        st->where);
        _cleanup_sb_ strbuf q = {0}, w = {0};
        quote(&q, st->rx.s, have);
        quote(&w, want_b->s, want_b->len);
        return fail(st, e, EPROTO, "%s answered %s and closed the connection, not %s...",
                    st->where, q.s, w.s);
    }
    /* matched: what follows on its line is not the next answer's */
    memmove(st->rx.s, st->rx.s + need, have - need);
    st->rx.len = have - need;
    st->rx.s[st->rx.len] = '\0';
    st->skip = more_after(st) && want_b->s[need - 1] != '\n';
    st->i_expect++;
    return 0;
}

/* Decide on an HTTP answer: 0 2xx, OP_PENDING read more, < 0 failed. */
static int check_http(struct pst *st, bool eof, bool final, terr *e)
{
    const char *s = st->rx.s;
    size_t have = st->rx.len;
    char *nl = memchr(s, '\n', have);
    bool http = strncmp(s, "HTTP/", have < 5 ? have : 5) == 0;
    if (!nl && !eof && have < LINE_MAX_BYTES && !final)
        return OP_PENDING; /* the whole line, to judge it or quote it */
    if (!nl && !eof && have < LINE_MAX_BYTES && http)
        return -EINPROGRESS; /* final: unfinished, not wrong */
    if (!have)
        return fail(st, e, EAGAIN, "%s closed the connection without answering", st->where);
    _cleanup_sb_ strbuf q = {0};
    quote(&q, s, have);
    int major, minor, status, n = 0;
    if (!nl || !http || sscanf(s, "HTTP/%d.%d %3d%n", &major, &minor, &status, &n) != 3 ||
        n != 12 || (s[n] != ' ' && s[n] != '\r' && s[n] != '\n'))
        return fail(st, e, EPROTO, "%s answered %s, which is not an HTTP status line",
                    st->where, q.s);
    if (status < 200 || status > 299) {
        _cleanup_sb_ strbuf r = {0};
        quote(&r, s + 9, have - 9);
        return fail(st, e, EPROTO, "%s answered HTTP status %s, not 2xx", st->where, r.s);
    }
    return 0;
}

/* Do what can be done now. */
static int advance(struct pst *st, terr *e)
{
    if (st->connecting) {
        int err = 0;
        socklen_t l = sizeof(err);
        if (getsockopt(st->sock, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            err = errno;
        if (err)
            return refused(st, err, e);
        st->connecting = false;
    }
    while (st->i < st->n) {
        struct xstep *x = &st->x[st->i];
        if (x->kind == X_SEND) {
            ssize_t n = send(st->sock, x->b.s + st->off, x->b.len - st->off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return want(st, POLLOUT);
            if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
                return fail(st, e, EAGAIN, "%s closed the connection before it was sent "
                                           "everything", st->where);
            if (n < 0)
                return fail(st, e, errno, "cannot send to %s: %m", st->where);
            st->off += (size_t)n;
            if (st->off == x->b.len) {
                st->off = 0;
                st->i++;
            }
            continue;
        }
        int r = OP_PENDING;
        if (x->kind == X_EXPECT && st->rx.len) /* a line that came with the last */
            r = check_expect(st, false, false, e);
        if (r == OP_PENDING) {
            char buf[4096];
            ssize_t n = recv(st->sock, buf, sizeof(buf), MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return want(st, POLLIN);
            if (n < 0 && errno != ECONNRESET)
                return fail(st, e, errno, "cannot read from %s: %m", st->where);
            if (n > 0)
                sb_addn(&st->rx, buf, (size_t)n);
            bool eof = n <= 0;
            r = x->kind == X_HTTP ? check_http(st, eof, false, e)
                                  : check_expect(st, eof, false, e);
        }
        if (r < 0)
            return r;
        if (r == 0)
            st->i++;
    }
    return 0;
}

static int timed_out(struct pst *st, terr *e)
{
    long long ms = (st->budget_ns ? st->budget_ns : now_ns() - st->t0) / 1000000;
    ms = (ms + 50) / 100 * 100; /* 2 s, 0.3 s: not 1.999 s */
    char secs[32];
    snprintf(secs, sizeof(secs), "%g s", (double)ms / 1000);
    if (st->connecting)
        return fail(st, e, ETIMEDOUT, "%s did not accept the connection within %s", st->where,
                    secs);
    if (st->i < st->n && st->x[st->i].kind == X_SEND)
        return fail(st, e, ETIMEDOUT, "%s did not read what was sent within %s", st->where,
                    secs);
    if (st->skip)
        return fail(st, e, ETIMEDOUT, "%s did not end the line of its answer %zu within %s",
                    st->where, st->i_expect, secs);
    if (!st->rx.len)
        return fail(st, e, ETIMEDOUT, "no answer within %s from %s", secs, st->where);
    /* a wrong beginning is quoted as such, a right one as unfinished */
    int r = st->x[st->i].kind == X_HTTP ? check_http(st, false, true, e)
                                        : check_expect(st, false, true, e);
    if (r < 0 && r != -EINPROGRESS)
        return r;
    _cleanup_sb_ strbuf q = {0};
    quote(&q, st->rx.s, st->rx.len);
    return fail(st, e, ETIMEDOUT, "%s answered %s and then nothing more within %s", st->where,
                q.s, secs);
}

static int proto_step(struct op *op, bool deadline, terr *e)
{
    struct pst *st = op->data;
    int r = deadline ? timed_out(st, e) : advance(st, e);
    if (r == OP_PENDING) {
        op->events = st->events;
        return r;
    }
    if (r == -EPROTO && st->starting)
        r = -EAGAIN;
    pst_free(st);
    op->data = NULL;
    return r;
}

int proto_start(struct op *op, const struct proto *p, const struct proto_run *run, terr *e)
{
    struct pst *st = xcalloc(1, sizeof(*st));
    st->sock = -1;
    st->starting = run->starting;
    st->budget_ns = run->budget_ns;
    st->t0 = now_ns();
    sb_addn(&st->rx, "", 0); /* never NULL: compared before anything came */
    st->who = xasprintf("[%s] %s = %s", run->label, run->key, p->text);
    struct sockaddr_storage sa = {0};
    socklen_t len = 0;
    e->msg[0] = '\0';
    int r = target(st, p, run, &sa, &len, e);
    if (r == 0)
        r = build_steps(st, p, run, e);
    if (r < 0) {
        terr_prefix(e, r, "%s", st->who);
        pst_free(st);
        return r;
    }
    st->sock = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (st->sock < 0) {
        r = fail(st, e, errno, "cannot make a socket: %m");
        pst_free(st);
        return r;
    }
    if (connect(st->sock, (struct sockaddr *)&sa, len) < 0) {
        if (errno != EINPROGRESS) {
            r = refused(st, errno, e);
            pst_free(st);
            return r;
        }
        st->connecting = true;
    }
    want(st, st->connecting || st->x[0].kind == X_SEND ? POLLOUT : POLLIN);
    op->fd = st->sock;
    op->events = st->events;
    op->deadline_ns = run->deadline_ns;
    op->step = proto_step;
    op->cancel = proto_cancel;
    op->data = st;
    return OP_STARTED;
}
