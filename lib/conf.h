/* What the config loader (config.c) shares with conf.c, which is below the
 * drivers: a section's reading and its keys.  config.c's and conf.c's
 * own; everyone else goes through config.h (docs/ARCHITECTURE.md says why
 * the accessors live apart from the loader). */
#pragma once
#include <errno.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

/* The variables every service may get (svc_has_var): static, so that
 * config.c and conf.c each have it with its ARRAY_SIZE. */
static const char *const core_vars[] = {"HOST",        "PORT",       "SOCKET", "DIR",
                                        "CONTROL_PID", "CONFIGFILE", "PIDFILE"};

/* "FILE:LINE: msg" (or "FILE: msg" without a line) into e; returns -EINVAL. */
#define ferr(e, file, line, ...) terr_at((e), EINVAL, (file), (line), __VA_ARGS__)

/* Every error of a file, one "FILE:LINE: msg" a line: a user fixing a file
 * sees them all in one run, not one per run.  Each check records its error
 * here and goes on with the next key, section or service. */
struct config_error {
    int line; /* INT_MAX for an error of the whole file */
    size_t seq; /* the order found, among errors of one line */
    char *msg;
};

struct errlist {
    const char *file;
    struct config_error *v;
    size_t n;
    int first; /* the first error's code */
};

struct parser {
    const char *file; /* as given, for messages */
    const char *data;
    size_t len, pos;
    int line;      /* of the line inih is processing */
    bool cont;     /* that line continues the previous key's value */
    bool have_key; /* mirrors inih's prev_name: an indented line continues it */
    size_t vlen, vcap; /* the last key's value: its length and allocated size */
    struct ini_section *secs;
    size_t n_secs;
    ssize_t cur; /* current section in secs, -1 before the first header, SKIP_SECTION */
    bool drop_cont; /* the last key was refused: drop its continuation lines too */
    bool bad_header; /* this line is a section header that was refused */
    int err;     /* a fatal error: reading stops (it is in errs too) */
    struct errlist *errs;
    /* a recipe (ini_read): any section name, and continuation lines join
     * with a newline (a file's template keeps its lines) */
    bool recipe;
};

struct tctx {
    const char *file;
    const struct tether_config *c;
    const struct svc_conf *s;
    const bool *dep;
    const char *key;
    int line;
    bool full; /* check_var wrote a complete "FILE:LINE: ..." message */
};

void errs_add(struct errlist *l, int r, const terr *e);
int errs_finish(struct errlist *l, terr *e);
bool is_alnum(char ch);
bool valid_label(const char *s);
char *make_ulabel(const char *label);
size_t svc_index(const struct tether_config *c, const char *label);
/* inih over p's data, through the line-counting reader: inih's result. */
int conf_parse(struct parser *p);
int check_words(const char *file, const struct svc_conf *s, const char *key, int line,
                const char *v, terr *e);
/* Any key of a [service] section but driver =, which the loader resolves
 * through the registry (config.c). */
int svc_key(const char *file, struct svc_conf *s, const struct conf_kv *kv, terr *e);
void mark_deps(const struct tether_config *c, const struct svc_conf *s, bool *dep);
bool svc_has_var(const struct svc_conf *o, const char *var);
void list_known(const struct tctx *t, strbuf *b);
