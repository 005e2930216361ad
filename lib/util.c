#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

int terr_set(terr *e, int err, const char *fmt, ...)
{
    if (err == 0)
        err = EINVAL;
    if (err > 0)
        err = -err;
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return err;
}

int terr_at(terr *e, int err, const char *file, int line, const char *fmt, ...)
{
    if (!e)
        return terr_set(NULL, err, "%s", "");
    char msg[TERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        return terr_set(e, err, "%s:%d: %s", file, line, msg);
    return terr_set(e, err, "%s: %s", file, msg);
}

int terr_prefix(terr *e, int err, const char *fmt, ...)
{
    if (!e)
        return err;
    char pre[1024], old[TERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof(old));
    strbuf b = {0};
    sb_addf(&b, "%s: %s", pre, old);
    size_t n = b.len < sizeof(e->msg) - 1 ? b.len : sizeof(e->msg) - 1;
    memcpy(e->msg, b.s, n);
    e->msg[n] = '\0';
    sb_free(&b);
    return err;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        abort();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        abort();
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    char *p;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0)
        abort();
    return p;
}

void sb_grow(strbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->s = xrealloc(b->s, cap);
    b->cap = cap;
}

void sb_addn(strbuf *b, const char *s, size_t n)
{
    sb_grow(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_add(strbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }
void sb_addc(strbuf *b, char c) { sb_addn(b, &c, 1); }

void sb_vaddf(strbuf *b, const char *fmt, va_list ap)
{
    char *p;
    int n = vasprintf(&p, fmt, ap);
    if (n < 0)
        abort();
    sb_addn(b, p, (size_t)n);
    free(p);
}

void sb_addf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vaddf(b, fmt, ap);
    va_end(ap);
}

char *sb_steal(strbuf *b)
{
    char *s = b->s ? b->s : xstrdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void sb_free(strbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

void strv_push_own(strv *sv, char *s)
{
    if (sv->n + 2 > sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 8;
        sv->v = xrealloc(sv->v, sv->cap * sizeof(char *));
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
}

void strv_push(strv *sv, const char *s) { strv_push_own(sv, xstrdup(s)); }

void strv_pushf(strv *sv, const char *fmt, ...)
{
    char *p;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0)
        abort();
    strv_push_own(sv, p);
}

bool strv_contains(const strv *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (streq(sv->v[i], s))
            return true;
    return false;
}

void strv_free(strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

int read_file_at(int dirfd, const char *path, char **out, size_t *len)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    strbuf b = {0};
    for (;;) {
        sb_grow(&b, 4096);
        ssize_t n = read(fd, b.s + b.len, 4096);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            sb_free(&b);
            return r;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
    }
    sb_grow(&b, 0);
    b.s[b.len] = '\0';
    if (len)
        *len = b.len;
    *out = sb_steal(&b);
    return 0;
}

int write_file_atomic(int dirfd, const char *name, const char *data, size_t len, int mode)
{
    char tmp[512];
    char rnd[17];
    random_hex(rnd, 16);
    snprintf(tmp, sizeof(tmp), ".%s.%s.tmp", name, rnd);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            close(fd);
            unlinkat(dirfd, tmp, 0);
            return r;
        }
        off += (size_t)n;
    }
    /* fchmod: the umask must not make a CONFIGFILE unreadable to us */
    if (fchmod(fd, (mode_t)mode) < 0 || close(fd) < 0 || renameat(dirfd, tmp, dirfd, name) < 0) {
        int r = -errno;
        unlinkat(dirfd, tmp, 0);
        return r;
    }
    return 0;
}

unsigned long long fnv1a(unsigned long long h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int parse_duration(const char *s, long long *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || v != v)
        return -EINVAL;
    double mul = 1e9;
    if (*end == '\0' || streq(end, "s"))
        mul = 1e9;
    else if (streq(end, "ms"))
        mul = 1e6;
    else if (streq(end, "m") || streq(end, "min"))
        mul = 60e9;
    else if (streq(end, "h"))
        mul = 3600e9;
    else if (streq(end, "d"))
        mul = 86400e9;
    else
        return -EINVAL;
    double r = v * mul;
    if (r > 9e18)
        return -ERANGE;
    *ns = (long long)r;
    return 0;
}

int random_hex(char *out, size_t n)
{
    unsigned char raw[32];
    size_t need = (n + 1) / 2;
    if (need > sizeof(raw))
        return -EINVAL;
    size_t got = 0;
    while (got < need) {
        ssize_t r = getrandom(raw + got, need - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++)
        out[i] = hex[(raw[i / 2] >> ((i % 2) * 4)) & 0xf];
    out[n] = '\0';
    return 0;
}

static const struct {
    const char *name;
    int sig;
} sigs[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
    {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT},
    {"ALRM", SIGALRM}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"PWR", SIGPWR},
    {"WINCH", SIGWINCH},
};

int parse_signal(const char *s)
{
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        if (strcasecmp(s, sigs[i].name) == 0)
            return sigs[i].sig;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end && v > 0 && v < NSIG)
        return (int)v;
    return -EINVAL;
}

const char *signal_name(int sig)
{
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        if (sigs[i].sig == sig)
            return sigs[i].name;
    return "?";
}

int path_search(const char *name, bool (*ok)(const char *path), char *out, size_t outsz)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        size_t n = strcspn(p, ":");
        int w = n ? snprintf(out, outsz, "%.*s/%s", (int)n, p, name)
                  : snprintf(out, outsz, "./%s", name);
        if (w > 0 && (size_t)w < outsz && ok(out))
            return 0;
        if (!p[n])
            return -ENOENT;
        p += n + 1;
    }
}

/* Optimal string alignment distance (Levenshtein plus adjacent
 * transpositions: "prot" is one edit from "port"). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) /* keys and names are short; a long word is no typo of them */
        return SIZE_MAX;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

const char *closest_word(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) /* only the case differs: ${PORT}, Command */
        if (cands[i] && strcasecmp(word, cands[i]) == 0 && strcmp(word, cands[i]) != 0)
            return cands[i];
    for (size_t i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        size_t d = edit_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    /* a third of the word may be wrong, at least one letter: "comand",
     * "postgress", "prot"; but "db" is no typo of "tcp" */
    size_t len = strlen(word);
    size_t max = len / 3 > 1 ? len / 3 : 1;
    return best && best_d > 0 && best_d <= max ? best : NULL;
}

const char *unlabeled(const char *msg, const char *label)
{
    size_t n = strlen(label);
    if (msg[0] != '[' || strncasecmp(msg + 1, label, n) != 0 || msg[n + 1] != ']')
        return msg;
    const char *p = msg + n + 2;
    p += *p == ':';
    return p + (*p == ' ');
}

int parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"yes", "true", "on", "1"}, *const f[] = {"no", "false", "off", "0"};
    for (size_t i = 0; s && i < ARRAY_SIZE(t); i++) {
        if (strcasecmp(s, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

void url_encode(strbuf *b, const char *s, const char *keep)
{
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        /* ASCII's unreserved set, whatever the locale's isalnum() says */
        bool unreserved = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                          (*q >= '0' && *q <= '9') || strchr("-._~", *q);
        if (unreserved || (keep && strchr(keep, *q)))
            sb_addc(b, (char)*q);
        else
            sb_addf(b, "%%%02X", *q);
    }
}

static bool is_exec_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int program_find(const char *label, const char *name, const char *package, char *out,
                 size_t outsz, terr *e)
{
    if (!*name)
        return terr_set(e, ENOENT, "[%s] the program to run is empty: name one, or install "
                        "the Debian package %s (apt-get install %s)", label, package, package);
    if (strchr(name, '/')) {
        if (is_exec_file(name) && (size_t)snprintf(out, outsz, "%s", name) < outsz)
            return 0;
        return terr_set(e, ENOENT, "[%s] %s: no such executable file: fix the path, or "
                        "install the Debian package %s (apt-get install %s)", label, name,
                        package, package);
    }
    if (path_search(name, is_exec_file, out, outsz) == 0)
        return 0;
    return terr_set(e, ENOENT, "[%s] %s not found in PATH: install the Debian package %s "
                    "(apt-get install %s)", label, name, package, package);
}
