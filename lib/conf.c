/* A config's sections and their keys, below the drivers: what a driver,
 * a recipe, kit.c, state.c and service.c read a section through (svc_opt,
 * config_path, config_varname...), the INI reader a recipe is read with
 * too (ini_read), and the keys every service takes (config_set_key).
 * The loader that resolves driver = through the registry, which lists
 * the drivers, is config.c, above them: with both in one file every
 * driver was in a cycle with the registry (docs/ARCHITECTURE.md).
 *
 * inih is used through ini_parse_stream() with our own reader because the
 * library (as built by Debian) neither passes line numbers to the handler
 * nor reports lines longer than its 200-byte buffer: it silently splits them
 * into two lines.  The reader therefore feeds one line at a time, counts
 * them, rejects over-long ones, and classifies each line the same way inih
 * will (section header, key, continuation) so that the handler knows where
 * it is.  Parsing only collects raw key/values per section; interpretation
 * happens once the whole file is read, because a value can still grow by
 * continuation lines. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "drivers/driver.h"
#include "proto.h"
#include "template.h"

/* [service] sections per config, [tether] not counted */
#define CONFIG_MAX_SERVICES 64

void errs_add(struct errlist *l, int r, const terr *e)
{
    if (r >= 0)
        return;
    /* the line, for the order of the file: "FILE:LINE: ..." */
    size_t fl = strlen(l->file);
    int line = INT_MAX;
    if (strncmp(e->msg, l->file, fl) == 0 && e->msg[fl] == ':' &&
        isdigit((unsigned char)e->msg[fl + 1]))
        line = atoi(e->msg + fl + 1);
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n] = (struct config_error){.line = line, .seq = l->n, .msg = xstrdup(e->msg)};
    if (l->n++ == 0)
        l->first = r;
}

static int by_line(const void *a, const void *b)
{
    const struct config_error *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* All of them, in the order of their lines, into e (as many as fit);
 * returns the first one's code. */
int errs_finish(struct errlist *l, terr *e)
{
    if (!l->n)
        return 0;
    qsort(l->v, l->n, sizeof(*l->v), by_line);
    _cleanup_sb_ strbuf b = {0};
    size_t i = 0;
    for (; i < l->n && b.len + strlen(l->v[i].msg) + 100 < TERR_MAX; i++)
        sb_addf(&b, "%s%s", i ? "\n" : "", l->v[i].msg);
    if (i < l->n)
        sb_addf(&b, "\n%s: ... and %zu more errors", l->file, l->n - i);
    for (size_t k = 0; k < l->n; k++)
        free(l->v[k].msg);
    free(l->v);
    l->v = NULL;
    l->n = 0;
    return terr_set(e, l->first, "%s", b.s);
}

bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

bool valid_label(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_alnum(*s) && *s != '_' && *s != '-')
            return false;
    return true;
}

/* export names end up in PREFIX_LABEL_NAME, so a leading digit is fine */
static bool valid_export_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_alnum(*s) && *s != '_')
            return false;
    return true;
}

static bool valid_env_name(const char *s)
{
    if (!valid_export_name(s))
        return false;
    return !(*s >= '0' && *s <= '9');
}

char *make_ulabel(const char *label)
{
    char *u = xstrdup(label);
    for (char *p = u; *p; p++)
        *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    return u;
}

static void kv_push(struct conf_kv **arr, size_t *n, const char *key, const char *value, int line)
{
    *arr = xrealloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[*n] = (struct conf_kv){.key = xstrdup(key), .value = xstrdup(value), .line = line};
    (*n)++;
}

static void kv_free(struct conf_kv *arr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(arr[i].key);
        free(arr[i].value);
    }
    free(arr);
}

void svc_conf_free(struct svc_conf *s)
{
    if (!s)
        return;
    free(s->label);
    free(s->ulabel);
    free(s->command);
    free(s->socket);
    free(s->ready_arg);
    if (s->health != s->ready_proto)
        proto_free(s->health);
    proto_free(s->ready_proto);
    proto_free(s->reset_proto);
    free(s->reset);
    strv_free(&s->after);
    strv_free(&s->keys_set);
    kv_free(s->exports, s->n_exports);
    kv_free(s->env, s->n_env);
    kv_free(s->opts, s->n_opts);
    free(s);
}

struct svc_conf *svc_conf_new(const char *label, int line)
{
    struct svc_conf *s = xcalloc(1, sizeof(*s));
    s->label = xstrdup(label);
    s->ulabel = make_ulabel(label);
    s->line = line;
    s->port = -1;
    s->ready = READY_NONE;
    s->ready_fd = -1;
    s->timeout_ns = 30LL * 1000000000LL;
    s->stop_signal = SIGTERM;
    s->stop_timeout_ns = 5LL * 1000000000LL;
    return s;
}

size_t svc_index(const struct tether_config *c, const char *label)
{
    for (size_t i = 0; i < c->n_svcs; i++)
        if (strcasecmp(c->svcs[i]->label, label) == 0)
            return i;
    return SIZE_MAX;
}

char *config_program(const struct tether_config *c, const char *prog, bool any)
{
    if (!any && !strchr(prog, '/')) /* a bare name: PATH's */
        return xstrdup(prog);
    return config_path(c, prog);
}

char *config_path(const struct tether_config *c, const char *path)
{
    if (path[0] == '/' || !c || !c->dir)
        return xstrdup(path);
    while (path[0] == '.' && path[1] == '/') /* ./bin/x: dir/bin/x, as a message says it */
        path += 2 + strspn(path + 2, "/");
    return xasprintf("%s/%s", streq(c->dir, "/") ? "" : c->dir, path);
}

const char *svc_opt(const struct svc_conf *s, const char *key)
{
    for (size_t i = 0; s && i < s->n_opts; i++)
        if (streq(s->opts[i].key, key))
            return s->opts[i].value;
    return NULL;
}

/* ---- reading: inih plus a line-counting reader ---- */

/* after a header that was refused: its keys are not checked (they would
 * only repeat the header's error) */
#define SKIP_SECTION (-2)

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
    _cleanup_sb_ strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(&b, fmt, ap);
    va_end(ap);
    terr e;
    int r = ferr(&e, p->file, p->line, "%s", b.s);
    errs_add(p->errs, r, &e);
    return r;
}

/* An error after which the rest of the file is not read. */
#define pfatal(p, ...) ((p)->err = perr((p), __VA_ARGS__))

/* Same as inih's: the first char of `chars`, or an inline comment (';' after
 * whitespace), or the end. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s && (!chars || !strchr(chars, *s)) &&
           !(was_space && strchr(INI_INLINE_COMMENT_PREFIXES, *s))) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static void add_section(struct parser *p, char *name)
{
    p->secs = xrealloc(p->secs, (p->n_secs + 1) * sizeof(*p->secs));
    p->secs[p->n_secs] = (struct ini_section){.name = name, .line = p->line};
    p->cur = (ssize_t)p->n_secs++;
}

/* A recipe's section: its names ("option memory", "when tcp = yes") are
 * the recipe loader's to check; only a duplicate is refused here. */
static int recipe_section(struct parser *p, char *nm)
{
    for (size_t i = 0; i < p->n_secs; i++)
        if (streq(p->secs[i].name, nm)) {
            int r = perr(p, "duplicate section [%s] (first on line %d): merge the two", nm,
                         p->secs[i].line);
            free(nm);
            return r;
        }
    add_section(p, nm);
    return 0;
}

static int new_section(struct parser *p, const char *name, size_t n)
{
    _cleanup_free_ char *nm = xstrndup(name, n);
    if (p->recipe)
        return recipe_section(p, take_ptr(&nm));
    if (strcasecmp(nm, "tether") == 0 && !streq(nm, "tether"))
        return perr(p, "[%s] is reserved: the global section is spelled [tether], and a service "
                       "cannot be called that", nm);
    if (!streq(nm, "tether") && !valid_label(nm))
        return perr(p, "invalid section name [%s]: a service name uses only letters, digits, "
                       "'_' and '-'", nm);
    _cleanup_free_ char *u = make_ulabel(nm);
    for (size_t i = 0; i < p->n_secs; i++) {
        const struct ini_section *o = &p->secs[i];
        if (strcasecmp(o->name, nm) == 0)
            return perr(p, "duplicate section [%s] (first on line %d): merge the two or rename "
                           "one", nm, o->line);
        _cleanup_free_ char *ou = make_ulabel(o->name);
        if (streq(ou, u))
            return perr(p, "[%s] and [%s] (line %d) both give the variable name %s: rename one",
                        nm, o->name, o->line, u);
    }
    /* An instance's state file records at most 64 services (instance.h),
     * and the dependency checks are not meant for thousands (3000 took
     * 38 s): a config this big is a mistake or an attack. */
    size_t nsvc = 0;
    for (size_t i = 0; i < p->n_secs; i++)
        nsvc += !streq(p->secs[i].name, "tether");
    if (!streq(nm, "tether") && nsvc >= CONFIG_MAX_SERVICES)
        return pfatal(p, "more than %d services in one config: split it into several files",
                    CONFIG_MAX_SERVICES);
    add_section(p, take_ptr(&nm));
    return 0;
}

/* Decide what inih will make of this line, using inih's own rules. */
static int classify(struct parser *p, const char *line)
{
    const char *start = line;
    if (p->line == 1 && (unsigned char)start[0] == 0xEF && (unsigned char)start[1] == 0xBB &&
        (unsigned char)start[2] == 0xBF)
        start += 3;
    while (*start && isspace((unsigned char)*start))
        start++;
    p->cont = false;
    if (!*start || strchr(INI_START_COMMENT_PREFIXES, *start))
        return 0;
    if (p->have_key && start > line) {
        p->cont = true;
        return 0;
    }
    if (*start == '[') {
        const char *end = find_chars_or_comment(start + 1, "]");
        p->have_key = false;
        p->drop_cont = false;
        p->cur = SKIP_SECTION; /* until new_section() accepts it */
        p->bad_header = true;  /* until then, too */
        if (*end != ']')
            return perr(p, "section header has no closing ']': write [name]");
        int r = new_section(p, start + 1, (size_t)(end - start - 1));
        p->bad_header = r < 0;
        return r;
    }
    const char *end = find_chars_or_comment(start, "=:");
    if (*end != '=' && *end != ':') {
        size_t n = strlen(start);
        while (n && isspace((unsigned char)start[n - 1]))
            n--;
        return perr(p, "expected key = value, a [section] header or a ; comment, not \"%.*s\"",
                    (int)(n > 60 ? 60 : n), start);
    }
    p->have_key = true;
    return 0;
}

/* A line of the current section was refused: the checks that need all of
 * it (has it a command?) would only guess. */
static void lose_line(struct parser *p)
{
    if (p->cur >= 0)
        p->secs[p->cur].lost = true;
}

static char *reader(char *str, int num, void *stream)
{
    struct parser *p = stream;
    if (p->err || p->pos >= p->len)
        return NULL;
    const char *s = p->data + p->pos;
    const char *nl = memchr(s, '\n', p->len - p->pos);
    size_t n = nl ? (size_t)(nl - s) : p->len - p->pos;
    p->pos += n + (nl ? 1 : 0);
    p->line++;
    if (n && s[n - 1] == '\r')
        n--;
    if (memchr(s, '\0', n)) {
        pfatal(p, "contains a NUL byte: the config must be a text file");
        return NULL;
    }
    if (num < 3)
        return NULL;
    /* inih would silently cut a longer line in two and parse the rest as
     * a line of its own; it is left out instead (as a blank line) */
    if (n > (size_t)num - 1) {
        perr(p, "line is longer than %d characters: split it with indented continuation lines",
             num - 1);
        lose_line(p);
        str[0] = '\0';
        return str;
    }
    memcpy(str, s, n);
    str[n] = '\0';
    p->bad_header = false;
    /* recorded: go on with the next line, read as blank, or for a header
     * as "[]", which ends the last key for inih as the header would */
    if (classify(p, str) < 0) {
        if (!p->bad_header)
            lose_line(p);
        snprintf(str, (size_t)num, "%s", p->bad_header ? "[]" : "");
    }
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    if (p->err)
        return 0;
    /* every error below is recorded by perr(): 1 lets inih go on */
    if (p->cur == SKIP_SECTION || (p->cont && p->drop_cont))
        return 1;
    if (p->cur < 0) {
        if (!p->cont)
            perr(p, "'%s' is outside any section: move it under [tether] or a [service] header",
                 name);
        return 1;
    }
    struct ini_section *sec = &p->secs[p->cur];
    if (p->cont) {
        if (!sec->n) { /* cannot happen: have_key is reset by every header */
            perr(p, "indented line does not continue any key: remove the indentation");
            return 1;
        }
        /* inih (55) strips inline comments on the first line of a value but
         * not on continuation lines: do it here so both behave the same */
        _cleanup_free_ char *v = xstrdup(value);
        char *end = (char *)find_chars_or_comment(v, NULL);
        *end = '\0';
        while (end > v && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (!*v)
            return 1;
        /* appended in place: re-copying the value for each line made a
         * long value quadratic (a 1 MB one took 45 s); so did a strlen()
         * and a realloc() per line (21 s under valgrind): the length is
         * kept and the space doubled */
        struct conf_kv *kv = &sec->kv[sec->n - 1];
        size_t vl = strlen(v);
        if (p->vlen + vl + 2 > p->vcap) {
            p->vcap = 2 * (p->vlen + vl + 2);
            kv->value = xrealloc(kv->value, p->vcap);
        }
        if (p->vlen)
            kv->value[p->vlen++] = p->recipe ? '\n' : ' ';
        memcpy(kv->value + p->vlen, v, vl + 1);
        p->vlen += vl;
        return 1;
    }
    p->drop_cont = true;
    if (!*name) {
        perr(p, "missing key name before '=': write key = value");
        lose_line(p);
        return 1;
    }
    for (size_t i = 0; i < sec->n; i++)
        if (streq(sec->kv[i].key, name)) {
            perr(p, "[%s] duplicate key '%s' (first set on line %d): remove one, or indent this "
                    "line to continue the value",
                 sec->name, name, sec->kv[i].line);
            return 1;
        }
    p->drop_cont = false;
    kv_push(&sec->kv, &sec->n, name, value, p->line);
    p->vlen = strlen(value);
    p->vcap = p->vlen + 1;
    return 1;
}

static void parser_free(struct parser *p)
{
    for (size_t i = 0; i < p->n_secs; i++) {
        free(p->secs[i].name);
        kv_free(p->secs[i].kv, p->secs[i].n);
    }
    free(p->secs);
}

int conf_parse(struct parser *p)
{
    return ini_parse_stream(reader, p, handler, p);
}

int ini_read(const char *file, const char *data, size_t len, struct ini_section **secs,
             size_t *n, terr *e)
{
    struct errlist errs = {.file = file};
    struct parser p = {.file = file, .data = data, .len = len, .cur = -1, .errs = &errs,
                       .recipe = true};
    int ir = conf_parse(&p);
    terr sub;
    if (!p.err && ir == -2)
        errs_add(&errs, terr_set(&sub, ENOMEM, "%s: out of memory while parsing", file), &sub);
    int r = errs_finish(&errs, e);
    if (r < 0) {
        parser_free(&p);
        return r;
    }
    *secs = p.secs;
    *n = p.n_secs;
    return 0;
}

void ini_free(struct ini_section *secs, size_t n)
{
    struct parser p = {.secs = secs, .n_secs = n};
    parser_free(&p);
}

/* ---- interpreting a section ---- */

static int parse_port(const char *v, int *port)
{
    if (streq(v, "auto")) {
        *port = 0;
        return 0;
    }
    long n = 0;
    if (!*v || strlen(v) > 5)
        return -EINVAL;
    for (const char *q = v; *q; q++) {
        if (*q < '0' || *q > '9')
            return -EINVAL;
        n = n * 10 + (*q - '0');
    }
    if (n < 1 || n > 65535)
        return -EINVAL;
    *port = (int)n;
    return 0;
}

int check_words(const char *file, const struct svc_conf *s, const char *key, int line,
                const char *v, terr *e)
{
    _cleanup_strv_ strv w = {0};
    terr sub;
    if (split_words(v, &w, &sub) < 0)
        return ferr(e, file, line, "[%s] %s: %s", s->label, key, sub.msg);
    if (w.n == 0)
        return ferr(e, file, line, "[%s] %s is empty: say what to run", s->label, key);
    return 0;
}

/* ready =, health = or reset = in proto.h's syntax, into *out. */
static int parse_proto(const char *file, const struct svc_conf *s, const struct conf_kv *kv,
                       struct proto **out, terr *e)
{
    terr sub;
    proto_free(*out);
    *out = NULL;
    if (proto_parse(kv->value, out, &sub) < 0)
        return ferr(e, file, kv->line, "[%s] %s = %s: %s", s->label, kv->key, kv->value,
                    sub.msg);
    return 0;
}

static int parse_ready(const char *file, struct svc_conf *s, const struct conf_kv *kv, terr *e)
{
    const char *v = kv->value;
    if (proto_is_spec(v)) {
        s->ready_line = kv->line;
        int r = parse_proto(file, s, kv, &s->ready_proto, e);
        if (r == 0)
            s->ready = proto_is_http(s->ready_proto) ? READY_HTTP : READY_EXPECT;
        return r;
    }
    const char *colon = strchr(v, ':');
    size_t kn = colon ? (size_t)(colon - v) : strlen(v);
    const char *arg = colon ? colon + 1 : NULL;
    while (arg && isspace((unsigned char)*arg))
        arg++;
    static const struct {
        const char *name;
        enum ready_kind kind;
        bool arg;
    } kinds[] = {
        {"none", READY_NONE, false}, {"tcp", READY_TCP, false},  {"notify", READY_NOTIFY, false},
        {"unix", READY_UNIX, true},  {"log", READY_LOG, true},   {"exec", READY_EXEC, true},
        {"fd", READY_FD, true},      {"driver", READY_DRIVER, false},
    };
    s->ready_line = kv->line;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        if (strlen(kinds[i].name) != kn || strncmp(kinds[i].name, v, kn) != 0)
            continue;
        if (!kinds[i].arg && colon)
            return ferr(e, file, kv->line, "[%s] ready = %s takes no argument: write ready = %s",
                        s->label, kinds[i].name, kinds[i].name);
        if (kinds[i].arg && (!arg || !*arg))
            return ferr(e, file, kv->line, "[%s] ready = %s needs an argument: write ready = %s",
                        s->label, kinds[i].name,
                        kinds[i].kind == READY_UNIX  ? "unix:PATH"
                        : kinds[i].kind == READY_LOG ? "log:REGEX"
                        : kinds[i].kind == READY_FD  ? "fd:N"
                                                     : "exec:COMMAND");
        s->ready = kinds[i].kind;
        if (s->ready == READY_FD) {
            char *end;
            errno = 0;
            long fd = strtol(arg, &end, 10);
            if (errno || *end || end == arg || fd < 3 || fd > 1023)
                return ferr(e, file, kv->line,
                            "[%s] ready = fd:%s: N must be a number from 3 to 1023 (0-2 are "
                            "stdin, stdout and stderr)",
                            s->label, arg);
            s->ready_fd = (int)fd;
        } else if (kinds[i].arg) {
            s->ready_arg = xstrdup(arg);
            if (s->ready == READY_EXEC)
                return check_words(file, s, "ready", kv->line, arg, e);
        }
        return 0;
    }
    return ferr(e, file, kv->line,
                "[%s] unknown ready = %s: use none, tcp, unix:PATH, log:REGEX, exec:COMMAND, "
                "notify, fd:N, send:TEXT expect:TEXT or http:/PATH",
                s->label, v);
}

static int parse_after(const char *file, struct svc_conf *s, const struct conf_kv *kv, terr *e)
{
    s->after_line = kv->line;
    const char *p = kv->value;
    for (;;) {
        p += strspn(p, ", \t");
        if (!*p)
            return 0;
        size_t n = strcspn(p, ", \t");
        _cleanup_free_ char *l = xstrndup(p, n);
        if (!valid_label(l))
            return ferr(e, file, kv->line,
                        "[%s] after: '%s' is not a service name: list section names separated "
                        "by commas or spaces",
                        s->label, l);
        if (!strv_contains(&s->after, l))
            strv_push(&s->after, l);
        p += n;
    }
}

static int parse_duration_key(const char *file, const struct svc_conf *s,
                              const struct conf_kv *kv, bool zero_ok, long long *out, terr *e)
{
    long long ns;
    if (parse_duration(kv->value, &ns) < 0)
        return ferr(e, file, kv->line,
                    "[%s] %s = %s is not a duration: use seconds (30, 1.5) or a unit (500ms, "
                    "2m, 1h)",
                    s->label, kv->key, kv->value);
    if (ns == 0 && !zero_ok)
        return ferr(e, file, kv->line, "[%s] %s must be more than 0", s->label, kv->key);
    *out = ns;
    return 0;
}

int svc_key(const char *file, struct svc_conf *s, const struct conf_kv *kv, terr *e)
{
    const char *k = kv->key, *v = kv->value;
    if (streq(k, "driver")) { /* the registry's: config.c, above the drivers */
        return ferr(e, file, kv->line,
                    "[%s] driver = %s: only a config's own [%s] section can name its driver",
                    s->label, v, s->label);
    } else if (streq(k, "command")) {
        s->command = xstrdup(v);
        s->command_line = kv->line;
        return check_words(file, s, "command", kv->line, v, e);
    } else if (streq(k, "port")) {
        s->port_line = kv->line;
        if (parse_port(v, &s->port) < 0)
            return ferr(e, file, kv->line,
                        "[%s] port = %s: use auto (a free port is picked) or a number from 1 "
                        "to 65535",
                        s->label, v);
    } else if (streq(k, "socket")) {
        const char *name = streq(v, "auto") ? "sock" : v;
        bool ok = *name && !streq(name, ".") && !streq(name, "..");
        for (const char *q = name; *q; q++)
            if (!is_alnum(*q) && !strchr("._-", *q))
                ok = false;
        if (!ok)
            return ferr(e, file, kv->line,
                        "[%s] socket = %s: use auto, or a plain file name (letters, digits, "
                        "'.', '_', '-'; no '/') created in the service's directory",
                        s->label, v);
        s->socket = xstrdup(name);
    } else if (streq(k, "ready")) {
        return parse_ready(file, s, kv, e);
    } else if (streq(k, "reset")) {
        s->reset_line = kv->line;
        if (streq(v, "restart")) {
            s->reset_restart = true;
            return 0;
        }
        if (proto_is_spec(v))
            return parse_proto(file, s, kv, &s->reset_proto, e);
        s->reset = xstrdup(v);
        return check_words(file, s, "reset", kv->line, v, e);
    } else if (streq(k, "health")) {
        s->health_line = kv->line;
        if (streq(v, "none")) {
            proto_free(s->health);
            s->health = NULL;
            return 0;
        }
        if (!proto_is_spec(v))
            return ferr(e, file, kv->line,
                        "[%s] health = %s: use send:TEXT expect:TEXT (a line protocol), "
                        "http:/PATH (a GET that must answer 2xx) or none",
                        s->label, v);
        return parse_proto(file, s, kv, &s->health, e);
    } else if (streq(k, "after")) {
        return parse_after(file, s, kv, e);
    } else if (streq(k, "timeout")) {
        s->timeout_line = kv->line;
        return parse_duration_key(file, s, kv, false, &s->timeout_ns, e);
    } else if (streq(k, "stop_timeout")) {
        s->stop_timeout_line = kv->line;
        return parse_duration_key(file, s, kv, true, &s->stop_timeout_ns, e);
    } else if (streq(k, "stop_signal")) {
        s->stop_signal_line = kv->line;
        int sig = parse_signal(v);
        if (sig < 0)
            return ferr(e, file, kv->line,
                        "[%s] stop_signal = %s: unknown signal: use a name like TERM, INT, QUIT "
                        "or a number",
                        s->label, v);
        s->stop_signal = sig;
    } else if (strncmp(k, "export.", 7) == 0) {
        const char *name = k + 7;
        if (!valid_export_name(name))
            return ferr(e, file, kv->line,
                        "[%s] %s: the name after 'export.' must use only letters, digits and "
                        "'_'",
                        s->label, k);
        for (size_t i = 0; i < ARRAY_SIZE(core_vars); i++)
            if (streq(name, core_vars[i]))
                return ferr(e, file, kv->line,
                            "[%s] %s clashes with the built-in variable %s: pick another name",
                            s->label, k, core_vars[i]);
        kv_push(&s->exports, &s->n_exports, name, v, kv->line);
    } else if (strncmp(k, "env.", 4) == 0) {
        const char *name = k + 4;
        if (!valid_env_name(name))
            return ferr(e, file, kv->line,
                        "[%s] %s: the name after 'env.' must be an environment variable name "
                        "(letters, digits and '_', not starting with a digit)",
                        s->label, k);
        kv_push(&s->env, &s->n_env, name, v, kv->line);
    } else {
        kv_push(&s->opts, &s->n_opts, k, v, kv->line);
    }
    return 0;
}

int config_set_key(const char *file, struct svc_conf *s, const char *key, const char *value,
                   int line, terr *e)
{
    struct conf_kv kv = {.key = (char *)key, .value = (char *)value, .line = line};
    return svc_key(file, s, &kv, e);
}

bool config_key_set(const struct svc_conf *s, const char *key)
{
    return strv_contains(&s->keys_set, key);
}

/* Mark in dep[] everything s needs, directly or not. */
void mark_deps(const struct tether_config *c, const struct svc_conf *s, bool *dep)
{
    for (size_t k = 0; k < s->after.n; k++) {
        size_t j = svc_index(c, s->after.v[k]);
        if (j != SIZE_MAX && !dep[j]) {
            dep[j] = true;
            mark_deps(c, c->svcs[j], dep);
        }
    }
}

bool svc_has_var(const struct svc_conf *o, const char *var)
{
    for (size_t i = 0; i < ARRAY_SIZE(core_vars); i++)
        if (streq(var, core_vars[i]))
            return !((streq(var, "PORT") || streq(var, "HOST")) && o->port < 0) &&
                   !(streq(var, "SOCKET") && !o->socket);
    for (size_t i = 0; i < o->n_exports; i++)
        if (streq(var, o->exports[i].key))
            return true;
    for (const char *const *d = o->driver->vars; d && *d; d++)
        if (streq(var, *d))
            return true;
    return false;
}

void list_known(const struct tctx *t, strbuf *b)
{
    sb_add(b, "dir, instance, label, config_dir");
    if (t->s->port >= 0)
        sb_add(b, ", port");
    if (t->s->socket)
        sb_add(b, ", socket");
    for (const char *const *n = t->s->driver ? t->s->driver->names : NULL; n && *n; n++)
        sb_addf(b, ", %s", *n);
    for (size_t i = 0; i < t->c->n_svcs; i++) {
        if (!t->dep[i])
            continue;
        const struct svc_conf *o = t->c->svcs[i];
        for (size_t k = 0; k < ARRAY_SIZE(core_vars); k++)
            if (svc_has_var(o, core_vars[k]))
                sb_addf(b, ", %s.%s", o->label, core_vars[k]);
        for (size_t k = 0; k < o->n_exports; k++)
            sb_addf(b, ", %s.%s", o->label, o->exports[k].key);
        for (const char *const *d = o->driver->vars; d && *d; d++)
            sb_addf(b, ", %s.%s", o->label, *d);
    }
}

void config_known_names(const struct tether_config *c, const struct svc_conf *s, strbuf *b)
{
    _cleanup_free_ bool *dep = xcalloc(c->n_svcs + 1, sizeof(bool));
    mark_deps(c, s, dep);
    struct tctx t = {.c = c, .s = s, .dep = dep};
    list_known(&t, b);
}

int config_key_of(const struct svc_conf *s, const char *value, strbuf *key)
{
    const struct {
        const char *name;
        const char *value;
        int line;
    } fixed[] = {{"command", s->command, s->command_line},
                 {"reset", s->reset, s->reset_line},
                 {"ready", s->ready_arg, s->ready_line}};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        if (value == fixed[i].value) {
            sb_add(key, fixed[i].name);
            return fixed[i].line;
        }
    const struct {
        const char *prefix;
        const struct conf_kv *kv;
        size_t n;
    } lists[] = {{"export.", s->exports, s->n_exports},
                 {"env.", s->env, s->n_env},
                 {"", s->opts, s->n_opts}};
    for (size_t l = 0; l < ARRAY_SIZE(lists); l++)
        for (size_t i = 0; i < lists[l].n; i++)
            if (value == lists[l].kv[i].value) {
                sb_addf(key, "%s%s", lists[l].prefix, lists[l].kv[i].key);
                return lists[l].kv[i].line;
            }
    return 0;
}

char *config_varname(const char *prefix, const struct svc_conf *s, const char *name)
{
    if (!name)
        return xasprintf("%s_%s", prefix, s->ulabel);
    return xasprintf("%s_%s_%s", prefix, s->ulabel, name);
}
