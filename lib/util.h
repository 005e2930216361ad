/* Small shared helpers: error buffers, growable strings and string vectors,
 * cleanup attributes.  Everything in lib/ returns 0 or -errno and, on error,
 * fills a terr with a message that names the service/file, the cause and
 * the fix. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#define TERR_MAX 4096

typedef struct terr {
    char msg[TERR_MAX];
} terr;

/* Format msg into e (if non-NULL) and return -abs(err) (err 0 -> -EINVAL). */
int terr_set(terr *e, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "FILE:LINE: msg" (or "FILE: msg" when line <= 0) into e: the one form
 * of an error about a config file's key, for config.c and the drivers'
 * configure().  Returns -abs(err) (err 0 -> -EINVAL). */
int terr_at(terr *e, int err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Prepend "prefix: " to the message already in e; returns err unchanged. */
int terr_prefix(terr *e, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Growable NUL-terminated byte string.  Allocation failure aborts: a test
 * harness that runs out of memory has no better option. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

void sb_grow(strbuf *b, size_t extra);
void sb_addn(strbuf *b, const char *s, size_t n);
void sb_add(strbuf *b, const char *s);
void sb_addc(strbuf *b, char c);
void sb_addf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(strbuf *b, const char *fmt, va_list ap);
char *sb_steal(strbuf *b); /* returns the string ("" if empty), resets b */
void sb_free(strbuf *b);

/* NULL-terminated vector of owned strings. */
typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

void strv_push(strv *sv, const char *s);      /* copies s */
void strv_push_own(strv *sv, char *s);        /* takes ownership */
void strv_pushf(strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool strv_contains(const strv *sv, const char *s);
void strv_free(strv *sv);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Cleanup attributes for single-exit unwinding. */
static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void sb_freep(strbuf *b) { sb_free(b); }
static inline void strv_freep(strv *v) { strv_free(v); }
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_sb_ _cleanup_(sb_freep)
#define _cleanup_strv_ _cleanup_(strv_freep)

static inline int take_fd(int *fd) { int r = *fd; *fd = -1; return r; }
static inline void *take_ptr(void *pp) { void **p = pp; void *r = *p; *p = NULL; return r; }

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define streq(a, b) (strcmp((a), (b)) == 0)

/* Read a whole (small) file; returns 0 or -errno. *out is NUL-terminated. */
int read_file_at(int dirfd, const char *path, char **out, size_t *len);
/* Write data to dir/name atomically (tmp file + rename), with mode. */
int write_file_atomic(int dirfd, const char *name, const char *data, size_t len, int mode);
/* Monotonic clock in nanoseconds. */
long long now_ns(void);

/* 64-bit FNV-1a of n bytes, continuing from h (start with FNV1A_INIT):
 * cache keys, fixed instance ids and lock ids, never security. */
#define FNV1A_INIT 0xcbf29ce484222325ULL
unsigned long long fnv1a(unsigned long long h, const void *data, size_t n);
/* A boolean as configs say it: yes/no, true/false, on/off, 1/0, in any
 * case.  0 and *out, or -EINVAL (the caller names the file, line and key).
 * The one parser for every key, driver and recipe. */
int parse_bool(const char *s, bool *out);
/* What parse_bool takes, for its errors: "tcp = maybe: say " BOOL_WORDS. */
#define BOOL_WORDS "yes or no (or true/false, on/off, 1/0)"
/* A message that names its service names it first, as "[LABEL] ...";
 * one that quotes another's drops that one's own "[label] " (or
 * "[label]: "), so that the label comes once: msg past it. */
const char *unlabeled(const char *msg, const char *label);
/* Parse "30", "1.5", "500ms", "2m", "1h", "1d" into nanoseconds. */
int parse_duration(const char *s, long long *ns);
/* Random lowercase hex string of n chars (n < 64). */
int random_hex(char *out, size_t n);
/* Signal name ("TERM", "SIGTERM", "15") to number; -EINVAL if unknown. */
int parse_signal(const char *s);
/* Look for name in $PATH (a default when unset) as execvp does: the first
 * entry where ok(candidate) holds, an empty entry being the current
 * directory.  0 and the candidate in out, or -ENOENT. */
int path_search(const char *name, bool (*ok)(const char *path), char *out, size_t outsz);
const char *signal_name(int sig);
/* A server's program: `name` as given when it holds a '/' (an executable
 * file, or an error), else the first executable file of that name in
 * $PATH (path_search).  0 and its path in out, or -ENOENT with a message
 * that names the service (label), the program and the Debian package to
 * install: "[cache] memcached not found in PATH: install the Debian
 * package memcached (apt-get install memcached)". */
int program_find(const char *label, const char *name, const char *package, char *out,
                 size_t outsz, terr *e);
/* Percent-encode s for a URL component (RFC 3986): the unreserved bytes
 * (ASCII letters, digits, "-._~") and those in keep (NULL: none; "/" for
 * a path, "/," for a list of socket directories in a query) stay, every
 * other byte becomes %XX.  The one URL encoder. */
void url_encode(strbuf *b, const char *s, const char *keep);
/* The candidate (of n, NULLs skipped) closest to word by edit distance
 * (with transpositions; or the same but for case), when it is close
 * enough to be a likely typo: for "did you mean ...?" hints.  NULL if none. */
const char *closest_word(const char *word, const char *const *cands, size_t n);
