#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hlog.h"
#include "progress.h"

char *hlog_name(const char *id)
{
    return xasprintf("%s" HLOG_SUFFIX, id);
}

bool hlog_is(const char *name, char *id, size_t size)
{
    size_t n = strlen(name), sl = strlen(HLOG_SUFFIX);
    if (n <= sl || name[0] == '.' || strcmp(name + n - sl, HLOG_SUFFIX) != 0 || n - sl >= size)
        return false;
    snprintf(id, size, "%.*s", (int)(n - sl), name);
    return true;
}

/* The log's text, up to HLOG_MAX: only a regular file of ours. */
static int read_log(int fd, strbuf *text)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
        return -EPERM;
    char buf[8192];
    ssize_t r;
    while (text->len < HLOG_MAX && (r = read(fd, buf, sizeof(buf))) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        sb_addn(text, buf, (size_t)r);
    }
    return 0;
}

/* Each warning's line: printed, or appended to into. */
static int show(const char *text, strbuf *into)
{
    int n = 0;
    size_t pl = strlen(WARN_PREFIX);
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        if (len > pl && strncmp(p, WARN_PREFIX, pl) == 0) {
            n++;
            if (into)
                sb_addf(into, "%.*s\n", (int)len, p);
            else
                warn("%.*s", (int)(len - pl), p + pl);
        }
        p += len + (p[len] == '\n');
    }
    return n;
}

int hlog_show(int rootfd, const char *id, bool take, strbuf *into)
{
    if (!*id || strchr(id, '/') || id[0] == '.')
        return 0;
    _cleanup_free_ char *name = hlog_name(id);
    _cleanup_close_ int fd = openat(rootfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (take && flock(fd, LOCK_EX | LOCK_NB) < 0)
        return -EBUSY; /* its helper lives: not ours to remove */
    _cleanup_sb_ strbuf text = {0};
    sb_add(&text, "");
    int r = read_log(fd, &text);
    if (r < 0)
        return r;
    int n = show(text.s, into);
    if (text.len >= HLOG_MAX) {
        n++;
        if (into)
            sb_add(into, WARN_PREFIX "(the helper's log said more; only its start is shown)\n");
        else
            warn("(the helper's log said more; only its start is shown)");
    }
    if (take)
        unlinkat(rootfd, name, 0);
    return n;
}

int hlog_show_dir(const char *instdir, bool take, strbuf *into)
{
    _cleanup_free_ char *c1 = xstrdup(instdir), *c2 = xstrdup(instdir);
    const char *root = dirname(c1), *id = basename(c2);
    _cleanup_close_ int rfd = open(root, O_DIRECTORY | O_CLOEXEC);
    return rfd < 0 ? 0 : hlog_show(rfd, id, take, into);
}
