/* Talking to a server to see that it answers: a send/expect exchange on
 * a line protocol (redis `PING` -> `+PONG`, memcached `version` ->
 * `VERSION`, ZooKeeper `ruok` -> `imok`) or an HTTP GET that must answer
 * 2xx, over a unix socket or TCP on 127.0.0.1, as an op (op.h): nothing
 * in it waits.  Used by `ready =`, `health =` and `reset =` of a config
 * (and by recipes): the text is parsed once, when the config is loaded
 * (proto_parse), and run as an op each time (proto_start).
 *
 * The syntax, one line of words (see docs/config.md):
 *   send:TEXT     send TEXT and CRLF ("\r\n": every line protocol takes it)
 *   raw:TEXT      send TEXT as it is, without CRLF
 *   expect:TEXT   read an answer: it must begin with TEXT
 *   http:/PATH    GET /PATH (Host, Connection: close): the status must be 2xx
 *   to:unix:PATH  the server's unix socket (relative to ${dir})
 *   to:tcp:PORT   the server's port on 127.0.0.1
 * Without to:, the service's socket when it has one, else its port.
 * Words run in order on one connection.  A word with spaces is quoted
 * ("send:SCRIPT FLUSH" or send:'SCRIPT FLUSH'); TEXT takes C escapes
 * (\r \n \t \\ \" \' \xHH) and ${...} templates, expanded when it runs
 * (values go in as they are, never unescaped). */
#pragma once
#include <stdbool.h>
#include "op.h"
#include "util.h"

enum proto_to {
    PROTO_TO_SERVICE, /* the service's socket, else its port */
    PROTO_TO_UNIX,
    PROTO_TO_TCP,
};

enum proto_kind {
    PROTO_SEND,   /* text, then CRLF */
    PROTO_RAW,    /* text as it is */
    PROTO_EXPECT, /* the answer begins with text */
};

struct proto_step {
    enum proto_kind kind;
    char *text; /* as written (quotes removed): escapes and ${...} left in */
};

struct proto {
    char *text;         /* the whole value as written, for messages */
    enum proto_to to;
    char *to_arg;       /* PATH or PORT as written */
    char *http_path;    /* http:/PATH as written; NULL: the steps */
    struct proto_step *steps;
    size_t n_steps;
};

/* Whether a value is written in this syntax (its first word is one of the
 * words above): `ready =` and `reset =` take it beside their other forms. */
bool proto_is_spec(const char *text);
/* Parse text.  0, or -EINVAL with a message (without FILE:LINE, which the
 * caller adds) that says what is wrong and how to write it. */
int proto_parse(const char *text, struct proto **out, terr *e);
void proto_free(struct proto *p);
/* Whether p talks to the service's own socket or port (no to:): the
 * config then checks that the service has one. */
static inline bool proto_needs_service_target(const struct proto *p)
{
    return p->to == PROTO_TO_SERVICE;
}
/* Whether p is an HTTP GET. */
static inline bool proto_is_http(const struct proto *p) { return p->http_path != NULL; }

/* Expand a template ("${port}") in the caller's context: 0 and *out
 * (malloc'd), or < 0 with e filled.  svc_expand fits. */
typedef int (*proto_expand_fn)(void *ud, const char *tmpl, char **out, terr *e);

/* Where and for whom an exchange runs. */
struct proto_run {
    const char *label;      /* the service, for messages: "[label] key = text: ..." */
    const char *key;        /* "ready", "health", "reset" */
    const char *dir;        /* relative to:unix: paths are taken in it (${dir}) */
    const char *sockpath;   /* the service's socket, or NULL */
    int port;               /* its port, 0 none */
    proto_expand_fn expand; /* NULL: no ${...} allowed */
    void *ud;
    long long deadline_ns;  /* now_ns() clock: the whole exchange, connect included */
    /* readiness: a wrong answer is "not yet" (-EAGAIN) too, its message
     * kept: a server may answer 503 or -LOADING while it starts */
    bool starting;
};

/* Start the exchange as op (op_init()ed by the caller, who sets op->s):
 * OP_STARTED, then op->step() returns
 *   0            the server answered as expected (or 2xx)
 *   -EAGAIN      nobody listens yet (connection refused, no such socket,
 *                or closed before answering): a readiness check tries again
 *   -ETIMEDOUT   no (whole) answer by the deadline: "no answer within 2 s
 *                from PATH"
 *   -EPROTO      a wrong answer, quoted (cut, printable) in the message
 *   other < 0    another failure (e says why)
 * with e filled for every failure.  proto_start itself may return -EAGAIN
 * (refused at once) or another failure without starting the op. */
int proto_start(struct op *op, const struct proto *p, const struct proto_run *run, terr *e);

/* Decode the C escapes of text into out (NUL bytes included, out->len
 * counts them).  0, or -EINVAL with e saying which escape is wrong. */
int proto_unescape(const char *text, size_t n, strbuf *out, terr *e);
