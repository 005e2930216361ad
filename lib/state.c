/* The per-user state root, instance directories, their locks and the
 * state file that lets gc find and verify an instance's processes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "drivers/driver.h"
#include "fsutil.h"
#include "instance.h"

/* A state file is a few lines per service (and a config path). */
#define STATE_MAX (1 << 20)

int state_root(char **path, terr *e)
{
    const char *env = getenv("TETHER_DIR");
    char *p;
    if (env && *env) {
        p = xstrdup(env);
    } else {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        struct stat st;
        /* XDG_RUNTIME_DIR is only ours if it exists and we own it (sudo
         * keeps the caller's value). */
        if (xdg && *xdg == '/' && stat(xdg, &st) == 0 && st.st_uid == getuid())
            p = xasprintf("%s/tether", xdg);
        else
            p = xasprintf("/dev/shm/tether-%u", (unsigned)getuid());
    }
    int fd = ensure_private_dir(p, getuid(), e);
    if (fd < 0) {
        terr_prefix(e, fd, "tether's state directory");
        free(p);
        return fd;
    }
    if (path)
        *path = p;
    else
        free(p);
    return fd;
}

void instance_fixed_id(char id[INSTANCE_ID_LEN + 1], const struct tether_config *cfg,
                       struct svc_conf *const *sel, size_t n)
{
    /* over "config\0label\0label\0..." */
    unsigned long long h = FNV1A_INIT;
    const char *path = cfg && cfg->path ? cfg->path : "(built-in)";
    for (size_t i = 0; i <= n; i++) {
        const char *s = i == 0 ? path : sel[i - 1]->label;
        h = fnv1a(h, s, strlen(s) + 1);
    }
    snprintf(id, INSTANCE_ID_LEN + 1, "fixed-%010llx", h & 0xffffffffffULL);
}

/* The fixed name is taken: say by whom, or reap it if its helper is gone.
 * Returns 0 to try again. */
static int fixed_taken(int root, struct instance *in, terr *e)
{
    _cleanup_close_ int fd = openat(root, in->id, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0; /* gone meanwhile */
    _cleanup_close_ int lfd = openat(fd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        /* its helper writes the state file right after taking the name */
        struct state_info st;
        for (int i = 0; i < 200 && state_read(fd, &st) < 0; i++)
            usleep(10000);
        if (state_read(fd, &st) == 0)
            return terr_set(e, EBUSY,
                            "the fixed instance %s/%s is in use by pid %d (its tether helper, "
                            "started for %s): only one user at a time; stop it (tether stop "
                            "%s) or use a unique instance",
                            in->state_dir, in->id, (int)st.helper.pid, st.config, in->id);
        return terr_set(e, EBUSY, "the fixed instance %s/%s is in use by another tether helper",
                        in->state_dir, in->id);
    }
    int r = gc_reap_instance(root, in->id, e);
    return r < 0 ? terr_prefix(e, r, "the fixed instance %s/%s is stale", in->state_dir, in->id)
                 : 0;
}

int instance_create(struct instance *in, terr *e)
{
    _cleanup_close_ int root = state_root(&in->state_dir, e);
    if (root < 0)
        return root;
    char tmp[64];
    int r;
    bool fixed = in->id[0] != '\0';
    for (int tries = 0;; tries++) {
        char rnd[INSTANCE_ID_LEN + 1];
        random_hex(rnd, INSTANCE_ID_LEN);
        if (!fixed) /* a fixed id keeps its name; only the temporary one is random */
            memcpy(in->id, rnd, sizeof(rnd));
        snprintf(tmp, sizeof(tmp), ".tmp-%s", rnd);
        if (mkdirat(root, tmp, 0700) == 0)
            break;
        if (errno != EEXIST || tries > 8)
            return terr_set(e, errno, "cannot create an instance directory in %s: %m",
                            in->state_dir);
    }
    /* Lock before the directory gets its real name: gc treats an unlocked
     * instance as stale, and must never see ours unlocked. */
    _cleanup_close_ int dfd = openat(root, tmp, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return terr_set(e, errno, "cannot open %s/%s: %m", in->state_dir, tmp);
    in->lock_fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (in->lock_fd < 0 || flock(in->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = terr_set(e, errno, "cannot lock %s/%s/lock: %m", in->state_dir, tmp);
        rm_rf_at(root, tmp, NULL);
        return r;
    }
    for (int tries = 0;; tries++) {
        if (!fixed ? renameat(root, tmp, root, in->id) == 0
                   : renameat2(root, tmp, root, in->id, RENAME_NOREPLACE) == 0)
            break;
        if (!fixed || errno != EEXIST || tries >= 3)
            r = terr_set(e, errno, "cannot rename %s/%s: %m", in->state_dir, tmp);
        else
            r = fixed_taken(root, in, e);
        if (r < 0) {
            rm_rf_at(root, tmp, NULL);
            return r;
        }
    }
    in->dir = xasprintf("%s/%s", in->state_dir, in->id);
    in->dirfd = take_fd(&dfd);
    in->created = (long long)time(NULL);
    proc_boot_id(in->boot_id);
    proc_pidns(&in->pidns);
    char rnd[17];
    random_hex(rnd, 16);
    snprintf(in->cookie, sizeof(in->cookie), "%s-%s", in->id, rnd);
    return instance_write_state(in, e);
}

int instance_write_state(struct instance *in, terr *e)
{
    struct state_info st;
    memset(&st, 0, sizeof(st));
    snprintf(st.id, sizeof(st.id), "%s", in->id);
    snprintf(st.boot_id, sizeof(st.boot_id), "%s", in->boot_id);
    st.pidns = in->pidns;
    snprintf(st.cookie, sizeof(st.cookie), "%s", in->cookie);
    snprintf(st.prefix, sizeof(st.prefix), "%s", in->prefix ? in->prefix : "TETHER");
    snprintf(st.config, sizeof(st.config), "%s",
             in->cfg && in->cfg->path ? in->cfg->path : "(built-in)");
    st.created = in->created;
    st.helper.pid = getpid();
    proc_starttime(st.helper.pid, &st.helper.starttime);
    for (size_t i = 0; i < in->n_svcs && st.n_svcs < ARRAY_SIZE(st.svcs); i++) {
        struct svc *s = &in->svcs[i];
        struct state_svc *o = &st.svcs[st.n_svcs++];
        snprintf(o->label, sizeof(o->label), "%s", s->conf->label);
        o->proc.pid = s->pid;
        o->proc.starttime = s->starttime;
        static const char *const names[] = {"pending", "starting", "ready", "stopping",
                                            "exited"};
        snprintf(o->state, sizeof(o->state), "%s", names[s->state]);
        snprintf(o->driver, sizeof(o->driver), "%s", s->conf->driver->name);
    }
    st.n_descendants = in->n_descendants < STATE_MAX_DESCENDANTS ? in->n_descendants
                                                                 : STATE_MAX_DESCENDANTS;
    if (st.n_descendants)
        memcpy(st.descendants, in->descendants, st.n_descendants * sizeof(st.descendants[0]));
    _cleanup_sb_ strbuf b = {0};
    state_format(&b, &st);
    int r = write_file_atomic(in->dirfd, "state", b.s, b.len, 0600);
    if (r < 0)
        return terr_set(e, r, "cannot write %s/state: %s", in->dir, strerror(-r));
    return 0;
}

void state_format(strbuf *b, const struct state_info *st)
{
    sb_addf(b, "tether-state 1\nid %s\nboot %s\ncookie %s\nprefix %s\ncreated %lld\n", st->id,
            st->boot_id, st->cookie, st->prefix, st->created);
    if (st->pidns.ino)
        sb_addf(b, "pidns %llu %llu\n", st->pidns.dev, st->pidns.ino);
    sb_addf(b, "helper %d %llu\n", (int)st->helper.pid, st->helper.starttime);
    for (size_t i = 0; i < st->n_svcs; i++)
        sb_addf(b, "service %s %d %llu %s %s\n", st->svcs[i].label, (int)st->svcs[i].proc.pid,
                st->svcs[i].proc.starttime, st->svcs[i].state,
                st->svcs[i].driver[0] ? st->svcs[i].driver : "command");
    for (size_t i = 0; i < st->n_descendants; i++)
        sb_addf(b, "descendant %d %llu\n", (int)st->descendants[i].pid,
                st->descendants[i].starttime);
    /* last: the path may contain spaces; it runs to the end of the line */
    sb_addf(b, "config %s\n", st->config);
}

static int parse_descendant(const char *line, struct state_info *st)
{
    if (st->n_descendants >= ARRAY_SIZE(st->descendants))
        return -E2BIG;
    struct proc_id *d = &st->descendants[st->n_descendants];
    int pid, end = 0;
    if (sscanf(line, "descendant %d %llu%n", &pid, &d->starttime, &end) != 2 || line[end] ||
        pid <= 0)
        return -EINVAL;
    d->pid = pid;
    st->n_descendants++;
    return 0;
}

int state_parse(const char *text, struct state_info *st)
{
    memset(st, 0, sizeof(*st));
    if (strncmp(text, "tether-state 1\n", 15) != 0)
        return -EINVAL;
    const char *p = text + 15;
    bool have_helper = false;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[4200];
        if (len >= sizeof(line))
            return -EINVAL;
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);
        int pid;
        if (sscanf(line, "id %16s", st->id) == 1 || sscanf(line, "boot %63s", st->boot_id) == 1 ||
            sscanf(line, "cookie %63s", st->cookie) == 1 ||
            sscanf(line, "prefix %63s", st->prefix) == 1 ||
            sscanf(line, "created %lld", &st->created) == 1)
            continue;
        if (sscanf(line, "helper %d %llu", &pid, &st->helper.starttime) == 2) {
            if (pid <= 0)
                return -EINVAL;
            st->helper.pid = pid;
            have_helper = true;
            continue;
        }
        if (strncmp(line, "descendant ", 11) == 0) {
            int r = parse_descendant(line, st);
            if (r < 0)
                return r;
            continue;
        }
        if (strncmp(line, "pidns ", 6) == 0) {
            if (sscanf(line, "pidns %llu %llu", &st->pidns.dev, &st->pidns.ino) != 2 ||
                st->pidns.ino == 0)
                return -EINVAL;
            continue;
        }
        if (strncmp(line, "service ", 8) == 0) {
            if (st->n_svcs >= ARRAY_SIZE(st->svcs))
                return -E2BIG;
            struct state_svc *s = &st->svcs[st->n_svcs];
            int got = sscanf(line, "service %127s %d %llu %15s %31s", s->label, &pid,
                             &s->proc.starttime, s->state, s->driver);
            if (got < 4 || pid < 0)
                return -EINVAL;
            s->proc.pid = pid;
            st->n_svcs++;
            continue;
        }
        if (strncmp(line, "config ", 7) == 0) {
            snprintf(st->config, sizeof(st->config), "%.4095s", line + 7);
            continue;
        }
        if (*line)
            return -EINVAL;
    }
    if (!have_helper || !*st->cookie || !*st->id)
        return -EINVAL;
    return 0;
}

bool state_other_pidns(const struct state_info *st)
{
    struct pidns_id me;
    char boot[64] = "";
    /* after a reboot no process of the old namespace is left anywhere */
    if (!st->pidns.ino || proc_pidns(&me) < 0 || proc_boot_id(boot) < 0 ||
        !streq(boot, st->boot_id))
        return false;
    return me.dev != st->pidns.dev || me.ino != st->pidns.ino;
}

int state_read(int instfd, struct state_info *st)
{
    _cleanup_free_ char *text = NULL;
    /* ours (the instance directory is), never a FIFO, never endless */
    int r = read_file_trusted(instfd, "state", geteuid(), STATE_MAX, &text, NULL, NULL);
    if (r < 0)
        return r;
    return state_parse(text, st);
}

void svc_setvar(struct svc *s, const char *name, const char *value)
{
    for (size_t i = 0; i < s->n_vars; i++)
        if (streq(s->vars[i].name, name)) {
            free(s->vars[i].value);
            s->vars[i].value = xstrdup(value);
            return;
        }
    s->vars = xrealloc(s->vars, (s->n_vars + 1) * sizeof(*s->vars));
    s->vars[s->n_vars].name = xstrdup(name);
    s->vars[s->n_vars].value = xstrdup(value);
    s->n_vars++;
}

const char *svc_getvar(const struct svc *s, const char *name)
{
    for (size_t i = 0; i < s->n_vars; i++)
        if (streq(s->vars[i].name, name))
            return s->vars[i].value;
    return NULL;
}

char *svc_varname(const struct svc *s, const char *name)
{
    return config_varname(s->inst->prefix, s->conf, name);
}
