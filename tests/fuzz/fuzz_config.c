/* libFuzzer target: the config parser and ${} template expansion.
 *
 * Any bytes are a config file.  config_parse() must either accept them or
 * fail with a one-line "fuzz.ini:..." message, never crash, hang or leak.
 * For an accepted config, every template-bearing value is expanded the way
 * the helper does it at start time (commands split into words first, then
 * each word expanded; other values expanded whole) with a lookup that
 * returns fixed strings: a value the loader accepted must always expand,
 * and config_select() must order services after their dependencies.
 *
 * Separately, the raw input (cut at its first NUL) goes through
 * tmpl_expand() and split_words() directly, with a lookup whose values are
 * framed by a marker byte removed from the input, to check that expansion
 * is never recursive: one framed value per ${name}, nothing more.
 *
 * Built twice: with clang -fsanitize=fuzzer for fuzzing (meson -Dfuzz=true)
 * and with gcc and replay.c, which feeds it the committed corpus in
 * `make check`. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "template.h"

#define FILE_NAME "fuzz.ini"
#define MARK '\x7f'

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_config: %s: %s\n", what, detail ? detail : "");
    abort();
}

/* Fixed values with the characters that would matter if a value were
 * expanded again or split again. */
static int lookup_fixed(void *ud, const char *name, const char **value)
{
    static const char *const vals[] = {"", "v a l", "'\"\\$`", "${dir}", "$$", "/tmp/x y"};
    (void)ud;
    *value = vals[strlen(name) % ARRAY_SIZE(vals)];
    return 0;
}

static void expand_whole(const char *what, const char *tmpl)
{
    if (!tmpl)
        return;
    char *out = NULL;
    terr e = {{0}};
    if (tmpl_expand(tmpl, lookup_fixed, NULL, &out, &e) < 0) {
        fprintf(stderr, "template %s: %s\n", tmpl, e.msg);
        fail(what, "a value the loader accepted does not expand");
    }
    free(out);
}

/* As svc_argv(): split into words, then expand each word. */
static void expand_words(const char *what, const char *tmpl)
{
    if (!tmpl)
        return;
    _cleanup_strv_ strv w = {0};
    terr e = {{0}};
    if (split_words(tmpl, &w, &e) < 0) {
        fprintf(stderr, "command %s: %s\n", tmpl, e.msg);
        fail(what, "a command the loader accepted does not split");
    }
    for (size_t i = 0; i < w.n; i++)
        expand_whole(what, w.v[i]);
}

static void check_config(const struct tether_config *c)
{
    for (size_t i = 0; i < c->n_svcs; i++) {
        const struct svc_conf *s = c->svcs[i];
        if (!s->label || !s->ulabel || !s->driver)
            fail("service", "missing label or driver");
        expand_words("command", s->command);
        expand_words("reset", s->reset);
        if (s->ready == READY_EXEC)
            expand_words("ready", s->ready_arg);
        else if (s->ready == READY_UNIX || s->ready == READY_LOG)
            expand_whole("ready", s->ready_arg);
        for (size_t k = 0; k < s->n_exports; k++)
            expand_whole("export", s->exports[k].value);
        for (size_t k = 0; k < s->n_env; k++)
            expand_whole("env", s->env[k].value);
    }
    struct svc_conf **sel = NULL;
    size_t n = 0;
    terr e = {{0}};
    if (config_select(c, NULL, 0, &sel, &n, &e) < 0)
        fail("config_select", e.msg);
    if (n != c->n_svcs)
        fail("config_select", "did not select every service");
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < sel[i]->after.n; a++) {
            bool before = false;
            for (size_t j = 0; j < i; j++)
                before |= strcasecmp(sel[j]->label, sel[i]->after.v[a]) == 0;
            if (!before)
                fail("config_select", "a service comes before one it depends on");
        }
    free(sel);
}

static int count_ref(void *ud, const char *name, terr *e)
{
    (void)name;
    (void)e;
    (*(size_t *)ud)++;
    return 0;
}

static int lookup_framed(void *ud, const char *name, const char **value)
{
    (void)ud;
    (void)name;
    *value = "\x7f${x}$$\x7f";
    return 0;
}

static void check_template(const char *in)
{
    size_t refs = 0;
    terr e = {{0}};
    int r1 = tmpl_foreach(in, count_ref, &refs, &e);
    char *out = NULL;
    int r2 = tmpl_expand(in, lookup_framed, NULL, &out, &e);
    if ((r1 < 0) != (r2 < 0))
        fail("template", "tmpl_foreach and tmpl_expand disagree");
    if (r2 < 0) {
        if (!e.msg[0])
            fail("template", "error without a message");
        return;
    }
    size_t marks = 0;
    for (const char *p = out; *p; p++)
        marks += *p == MARK;
    if (marks != 2 * refs || strlen(out) > strlen(in) + refs * 7) {
        fprintf(stderr, "in=%s\nout=%s\n", in, out);
        fail("template", "expansion is not one value per ${name}");
    }
    free(out);

    _cleanup_strv_ strv w = {0};
    if (split_words(in, &w, &e) < 0 && !e.msg[0])
        fail("split_words", "error without a message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    struct tether_config *c = NULL;
    terr e = {{0}};
    int r = config_parse(FILE_NAME, (const char *)data, size, &c, &e);
    if (r < 0) {
        if (c)
            fail("config_parse", "set *out on error");
        /* every error of the file, one a line, each FILE:LINE: or FILE: */
        for (const char *l = e.msg; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
            if (strncmp(l, FILE_NAME ":", strlen(FILE_NAME) + 1) != 0)
                fail("an error line does not start with FILE:", e.msg);
    } else {
        if (!c || c->n_svcs == 0)
            fail("config_parse", "success without services");
        check_config(c);
        config_free(c);
    }

    /* the raw bytes as one template: up to the first NUL, marker removed */
    char *in = malloc(size + 1);
    size_t n = 0;
    for (size_t i = 0; i < size && data[i]; i++)
        if (data[i] != (uint8_t)MARK)
            in[n++] = (char)data[i];
    in[n] = '\0';
    check_template(in);
    free(in);
    return 0;
}
