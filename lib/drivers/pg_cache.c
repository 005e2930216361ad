/* PostgreSQL's use of the data-directory cache (datacache.h: the lock,
 * the temporary directory renamed into place, the spare copy).  initdb
 * costs about a second; copying its result a few milliseconds.  Here: the
 * server's binaries, the entry's key (server binary, owner, database
 * name, schema), and the build: initdb, then a server of its own to load
 * init_sql and init into the template, and what a crashed build leaves
 * in shared memory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../fsutil.h"
#include "../proc.h"
#include "../kit.h"
#include "../service.h"
#include "../spawn.h"
#include "datacache.h"
#include "pg.h"

#define CACHE_FORMAT "tether-pg-cache-4" /* 4: scram-sha-256 over TCP */
#define INIT_SQL_MAX (256 << 20) /* a schema, not a data load */
/* strerror(ENOSPC), as initdb and postgres write it in their messages */
#define NO_SPACE "No space left on device"

static bool is_exe(const char *dir, const char *name)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    return access(p, X_OK) == 0;
}

/* A postgres in PATH counts with its initdb beside it. */
static bool server_with_initdb(const char *path)
{
    _cleanup_free_ char *dir = xstrndup(path, strrchr(path, '/') - path);
    return *path == '/' && is_exe(dir, "postgres") && is_exe(dir, "initdb");
}

int pg_find_bindir(const struct svc_conf *c, char **bindir, terr *e)
{
    const char *bd = svc_opt(c, "bin_dir");
    if (bd) {
        if (!is_exe(bd, "postgres") || !is_exe(bd, "initdb"))
            return terr_set(e, ENOENT, "[%s] bin_dir = %s has no postgres and initdb: point it "
                            "at PostgreSQL's bin directory", c->label, bd);
        *bindir = xstrdup(bd);
        return 0;
    }
    const char *v = svc_opt(c, "version");
    if (v) {
        _cleanup_free_ char *d = xasprintf("/usr/lib/postgresql/%s/bin", v);
        if (!is_exe(d, "postgres") || !is_exe(d, "initdb"))
            return terr_set(e, ENOENT, "[%s] PostgreSQL %s is not installed (no %s/postgres): "
                            "apt-get install postgresql-%s", c->label, v, d, v);
        *bindir = take_ptr(&d);
        return 0;
    }
    /* the newest of Debian's versioned installs */
    long best = -1;
    DIR *dir = opendir("/usr/lib/postgresql");
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir))) {
            char *end;
            long n = strtol(de->d_name, &end, 10);
            if (*end || n <= best)
                continue;
            _cleanup_free_ char *d = xasprintf("/usr/lib/postgresql/%s/bin", de->d_name);
            if (is_exe(d, "postgres") && is_exe(d, "initdb"))
                best = n;
        }
        closedir(dir);
    }
    if (best >= 0) {
        *bindir = xasprintf("/usr/lib/postgresql/%ld/bin", best);
        return 0;
    }
    char found[4096];
    if (path_search("postgres", server_with_initdb, found, sizeof(found)) == 0) {
        *bindir = xstrndup(found, strrchr(found, '/') - found);
        return 0;
    }
    return terr_set(e, ENOENT, "[%s] postgres not found in /usr/lib/postgresql/*/bin or PATH: "
                    "install the Debian package postgresql (apt-get install postgresql), or "
                    "set bin_dir =", c->label);
}

/* init_sql is relative to the config file's directory. */
static char *init_sql_path(const struct svc *s)
{
    const char *f = svc_opt(s->conf, "init_sql");
    return f ? svc_config_path(s, f) : NULL;
}

/* init_sql: the file's name, for messages, and the text read from it */
struct init_sql {
    char *path, *text;
};

static int cache_key(struct svc *s, struct pg *pg, char out[32], struct init_sql *is, terr *e)
{
    unsigned long long h = FNV1A_INIT;
    datacache_key_str(&h, CACHE_FORMAT);
    datacache_key_str(&h, pg->bindir);
    struct stat st;
    _cleanup_free_ char *bin = xasprintf("%s/postgres", pg->bindir);
    if (stat(bin, &st) == 0) { /* a server upgrade changes the binary */
        datacache_key_add(&h, &st.st_size, sizeof(st.st_size));
        datacache_key_add(&h, &st.st_mtim, sizeof(st.st_mtim));
    }
    datacache_key_str(&h, pg->os_user);
    datacache_key_add(&h, &s->uid, sizeof(s->uid));
    datacache_key_str(&h, pg_dbname(s->conf));
    datacache_key_str(&h, svc_opt(s->conf, "init"));
    if (svc_opt(s->conf, "init") && svc_config_dir(s)) /* one project's ./bin/load is not another's */
        datacache_key_str(&h, svc_config_dir(s));
    is->path = init_sql_path(s);
    is->text = NULL;
    if (is->path) {
        size_t len;
        /* as root too: a FIFO must not hang the start, nor a huge file eat memory */
        int r = read_file_trusted(AT_FDCWD, is->path, USER_PATH, INIT_SQL_MAX, &is->text, &len,
                                  e);
        if (r < 0)
            return terr_prefix(e, r, "[%s] cannot read init_sql = %s", s->conf->label,
                               is->path);
        datacache_key_add(&h, is->text, len);
    }
    snprintf(out, 32, "pg-%016llx", h);
    return 0;
}

/* Run a build step to completion; its output goes to the service's log. */
static int run_step(struct svc *s, char *const *argv, char *const *envp, bool drop, terr *e)
{
    _cleanup_close_ int log = open(s->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct spawn_opts o = {.argv = argv, .envp = envp, .log_fd = log, .pass_fd = -1, .cwd = "/",
                           .drop_privs = drop && s->run_as, .uid = s->uid, .gid = s->gid};
    pid_t pid;
    int r = spawn_process(&o, &pid, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        _cleanup_free_ char *excerpt = svc_log_excerpt(s);
        /* a full disk is no matter of modes (build() says where) */
        bool modes = drop && s->run_as && !strstr(excerpt, NO_SPACE);
        return terr_set(e, EIO, "[%s] %s failed (status %d) while building the cluster cache%s;%s",
                        s->conf->label, argv[0],
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                        modes ? " (it runs as the server's user, who must be able "
                                "to reach the cache directory: check the modes of "
                                "$TETHER_CACHE_DIR and its parents)"
                              : "",
                        excerpt);
    }
    return 0;
}

/* psql: pg_dump writes a psql script (\restrict, \connect, COPY ... FROM
 * stdin with its rows inline), which only psql runs.  The server's own bin
 * directory first (Debian's has it), then PATH. */
static char *find_psql(const char *bindir)
{
    if (is_exe(bindir, "psql"))
        return xasprintf("%s/psql", bindir);
    char found[4096];
    return program_find("", "psql", "postgresql-client", found, sizeof(found), NULL) == 0 &&
                   *found == '/'
               ? xstrdup(found)
               : NULL;
}

#define PSQL_SHOWN 2048 /* of psql's messages in ours: the first error and its context */

/* psql's messages from its first error on, with "psql:<stdin>:" (what it
 * calls the script it reads on its stdin) replaced by the file's name:
 * "schema.sql:1234: ERROR:  ...", then its LINE, DETAIL, HINT, CONTEXT. */
static char *psql_error(const char *out, const char *path)
{
    const char *from = strstr(out, ": ERROR:");
    from = from ? from : strstr(out, ": FATAL:");
    from = from ? from : strstr(out, ": error:"); /* psql's own: a \connect that failed */
    if (from)
        while (from > out && from[-1] != '\n')
            from--;
    else /* what psql said last */
        from = strlen(out) > PSQL_SHOWN ? out + strlen(out) - PSQL_SHOWN : out;
    strbuf b = {0};
    size_t shown = 0;
    static const char tag[] = "psql:<stdin>:";
    for (const char *p = from; *p && shown < PSQL_SHOWN;) {
        if (strncmp(p, tag, sizeof(tag) - 1) == 0) {
            sb_addf(&b, "%s:", path);
            p += sizeof(tag) - 1;
            continue;
        }
        size_t n = strcspn(p, "\n");
        n += p[n] == '\n';
        if (shown + n > PSQL_SHOWN) {
            sb_addn(&b, p, PSQL_SHOWN - shown);
            sb_add(&b, "...");
            break;
        }
        sb_addn(&b, p, n);
        shown += n;
        p += n;
    }
    while (b.len && b.s[b.len - 1] == '\n')
        b.s[--b.len] = '\0';
    return sb_steal(&b);
}

/* Load init_sql (its text, read as path by cache_key) into the template
 * with psql, as `psql -X -v ON_ERROR_STOP=1 -f FILE` would: stop at the
 * first error.  psql reads the text read before (on its stdin, from a
 * memfd), never the user's path: that text is what the cache key says.
 * As root it runs as the server's user, like the server. */
static int load_sql(struct svc *s, struct pg *pg, const char *dir, const char *tmpl,
                    const char *path, const char *sql, strv *env, terr *e)
{
    _cleanup_free_ char *psql = find_psql(pg->bindir);
    if (!psql)
        return terr_set(e, ENOENT, "[%s] init_sql needs psql, which is neither in %s nor on "
                        "PATH: apt-get install postgresql-client", s->conf->label, pg->bindir);
    _cleanup_close_ int in = memfd_with("init_sql", sql, strlen(sql), e);
    if (in < 0)
        return terr_prefix(e, in, "[%s]", s->conf->label);
    _cleanup_close_ int out = memfd_with("psql", "", 0, e);
    if (out < 0)
        return terr_prefix(e, out, "[%s]", s->conf->label);
    char *const argv[] = {psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null",
                          "-h", (char *)dir, "-p", "5432", "-U", pg->os_user,
                          "-d", (char *)tmpl, "-f", "-", NULL};
    struct spawn_opts o = {.argv = argv, .envp = env->v, .log_fd = out, .pass_fd = in,
                           .pass_fd_as = 0, .cwd = "/", .drop_privs = s->run_as,
                           .uid = s->uid, .gid = s->gid};
    pid_t pid;
    int r = spawn_process(&o, &pid, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s] init_sql", s->conf->label);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    _cleanup_free_ char *said = memfd_take(out, s->logpath);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    _cleanup_free_ char *err = psql_error(said, path);
    /* pg_dump names the owners of what it dumps: roles this cluster has not */
    bool role = strstr(err, "ERROR:  role \"") && strstr(err, "\" does not exist");
    return terr_set(e, EIO, "[%s] %s\n(init_sql = %s, loaded with psql -v ON_ERROR_STOP=1 "
                    "while building the cluster cache, stopped there (psql status %d): fix the "
                    "file%s)", s->conf->label, *err ? err : "psql failed without a word", path,
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                    role ? ", or make the dump with pg_dump --no-owner --no-privileges" : "");
}

static PGconn *connect_db(const char *host, const char *user, const char *db, terr *e,
                          const char *label)
{
    const char *keys[] = {"host", "port", "user", "dbname", NULL};
    const char *vals[] = {host, "5432", user, db, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        terr_set(e, ECONNREFUSED, "[%s] cannot connect to the cache-building server: %s", label,
                 PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Make the template database, load the schema into it, and copy it to
 * the database handed out. */
static int load_schema(struct svc *s, struct pg *pg, const char *dir,
                       const struct init_sql *is, strv *env, terr *e)
{
    _cleanup_free_ char *tmpl = xasprintf("%s_template", pg_dbname(s->conf));
    /* template1, not postgres: the postgres database is dropped below, to
     * make every copy of the cluster smaller */
    PGconn *c = connect_db(dir, pg->os_user, "template1", e, s->conf->label);
    if (!c)
        return -ECONNREFUSED;
    _cleanup_free_ char *qt = pg_quote_ident(c, tmpl);
    _cleanup_free_ char *qd = pg_quote_ident(c, pg_dbname(s->conf));
    _cleanup_free_ char *mk = xasprintf("CREATE DATABASE %s%s", qt, pg_copy_strategy(c));
    _cleanup_free_ char *mark = xasprintf("ALTER DATABASE %s WITH IS_TEMPLATE true", qt);
    _cleanup_free_ char *copy =
        xasprintf("CREATE DATABASE %s TEMPLATE %s%s", qd, qt, pg_copy_strategy(c));
    int r = pg_exec(c, mk, s->conf->label, e);
    if (r == 0 && is->text)
        r = load_sql(s, pg, dir, tmpl, is->path, is->text, env, e);
    const char *init = svc_opt(s->conf, "init");
    if (r == 0 && init) {
        _cleanup_strv_ strv iargv = {0};
        _cleanup_strv_ strv ienv = {0};
        r = svc_argv(s, init, &iargv, e);
        for (size_t i = 0; r == 0 && i < env->n; i++)
            strv_push(&ienv, env->v[i]);
        strv_pushf(&ienv, "PGHOST=%s", dir);
        strv_push(&ienv, "PGPORT=5432");
        strv_pushf(&ienv, "PGUSER=%s", pg->os_user);
        strv_pushf(&ienv, "PGDATABASE=%s", tmpl);
        if (r == 0 && iargv.n == 0)
            r = terr_set(e, EINVAL, "[%s] init = is empty", s->conf->label);
        if (r == 0)
            r = run_step(s, iargv.v, ienv.v, false, e);
    }
    if (r == 0)
        r = pg_exec(c, mark, s->conf->label, e);
    if (r == 0)
        r = pg_exec(c, copy, s->conf->label, e);
    if (r == 0)
        r = pg_exec(c, "DROP DATABASE IF EXISTS postgres", s->conf->label, e);
    if (r == 0) /* with min_wal_size at its floor, this drops spare segments */
        r = pg_exec(c, "CHECKPOINT", s->conf->label, e);
    PQfinish(c);
    return r;
}

/* A READY=1 on the notify socket (Debian's postgres is built with
 * systemd support), with PQping as the fallback for servers without it. */
static int wait_ready(struct svc *s, struct pg *pg, const char *dir, int nfd, pid_t pid, terr *e)
{
    int pfd = proc_pidfd_open(pid);
    const char *keys[] = {"host", "port", "user", "dbname", NULL};
    const char *vals[] = {dir, "5432", pg->os_user, "template1", NULL};
    long long deadline = now_ns() + s->conf->timeout_ns;
    int delay = 2, r = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = nfd, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
        int n = poll(p, pfd >= 0 ? 2 : 1, delay);
        if (n > 0 && (p[1].revents & POLLIN)) {
            _cleanup_free_ char *log = svc_log_excerpt(s);
            r = terr_set(e, EIO, "[%s] postgres exited while building the cluster cache;%s",
                         s->conf->label, log);
            break;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            char buf[4096];
            ssize_t len = recv(nfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
            buf[len > 0 ? len : 0] = '\0';
            if (strstr(buf, "READY=1"))
                break;
            continue;
        }
        /* no word yet: a server without sd_notify is ready when it answers */
        if (PQpingParams(keys, vals, 0) == PQPING_OK)
            break;
        delay = delay * 2 > 50 ? 50 : delay * 2;
        if (now_ns() > deadline) {
            r = terr_set(e, ETIMEDOUT, "[%s] postgres did not start while building the cache",
                         s->conf->label);
            break;
        }
    }
    if (pfd >= 0)
        close(pfd);
    return r;
}

static int notify_socket(struct svc *s, const char *dir, strv *env, terr *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return terr_set(e, ENAMETOOLONG, "[%s] %s/notify is too long for a unix socket: set "
                        "TETHER_CACHE_DIR to a shorter directory", s->conf->label, dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        (s->run_as && chown(sa.sun_path, s->uid, s->gid) < 0)) {
        int r = terr_set(e, errno, "[%s] cannot make notify socket %s: %m", s->conf->label,
                         sa.sun_path);
        if (fd >= 0)
            close(fd);
        return r;
    }
    strv_pushf(env, "NOTIFY_SOCKET=%s", sa.sun_path);
    return fd;
}

/* Start a server on the fresh cluster, load it, shut it down cleanly (so
 * that the copies need no crash recovery). */
static int load_cluster(struct svc *s, struct pg *pg, const char *dir, const struct init_sql *is,
                        strv *env, terr *e)
{
    _cleanup_free_ char *data = xasprintf("%s/data", dir);
    _cleanup_strv_ strv argv = {0};
    pg_server_args(NULL, pg->bindir, data, dir, 5432, &argv);
    /* a server that lives for a second needs no autovacuum */
    strv_push(&argv, "-c");
    strv_push(&argv, "autovacuum=off");
    _cleanup_strv_ strv senv = {0};
    for (size_t i = 0; i < env->n; i++)
        strv_push(&senv, env->v[i]);
    _cleanup_close_ int nfd = notify_socket(s, dir, &senv, e);
    if (nfd < 0)
        return nfd;
    _cleanup_close_ int log = open(s->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct spawn_opts o = {.argv = argv.v, .envp = senv.v, .log_fd = log, .pass_fd = -1,
                           .cwd = "/", .drop_privs = s->run_as, .uid = s->uid, .gid = s->gid};
    pid_t pid;
    int r = spawn_process(&o, &pid, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    r = wait_ready(s, pg, dir, nfd, pid, e);
    if (r == 0)
        r = load_schema(s, pg, dir, is, env, e);
    kill(pid, SIGINT); /* fast shutdown: a clean checkpoint */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    _cleanup_free_ char *sock = xasprintf("%s/notify", dir);
    unlink(sock);
    return r;
}

/* What PostgreSQL's own headers say (storage/pg_shmem.h, ipc/dsm.c): the
 * System V segment starts with a PGShmemHeader, whose dsm_control names the
 * dynamic shared memory control segment, which lists the other segments.
 * The layout has held since 9.4. */
#define PG_SHMEM_MAGIC 679834894     /* PGShmemMagic */
#define PG_DSM_MAGIC 0x9a503d32u     /* PG_DYNSHMEM_CONTROL_MAGIC */
#define PG_SHMEM_HEADER_SIZE 56      /* magic, pid, 2 sizes, dsm_control, index, dev, ino */
#define PG_DSM_CONTROL_MAX (4 << 20) /* 16 + 40 bytes per slot, 5 slots per backend */

/* /dev/shm/PostgreSQL.<handle>, if it is a file of uid's. */
static void unlink_dsm(int shmdir, uint32_t handle, uid_t uid)
{
    char name[32];
    snprintf(name, sizeof(name), "PostgreSQL.%u", handle);
    struct stat st;
    if (fstatat(shmdir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        st.st_uid == uid)
        unlinkat(shmdir, name, 0);
}

/* The segments that control segment lists, then itself: what PostgreSQL's
 * dsm_cleanup_using_control_segment() does at the next start of a server
 * that crashed; a build's server never starts again. */
static void remove_dsm_set(uint32_t control, uid_t uid)
{
    _cleanup_close_ int shmdir = open("/dev/shm", O_DIRECTORY | O_CLOEXEC);
    if (shmdir < 0)
        return;
    char name[32];
    snprintf(name, sizeof(name), "PostgreSQL.%u", control);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    uint32_t h[3]; /* magic, nitems, maxitems; then the items */
    if (read_file_trusted(shmdir, name, uid, PG_DSM_CONTROL_MAX, &buf, &len, NULL) == 0 &&
        len >= 16 && (memcpy(h, buf, sizeof(h)), h[0] == PG_DSM_MAGIC) && h[2] > 0 &&
        h[1] <= h[2]) {
        /* an item is {handle, refcnt, ...}: 8 bytes before 13, 40 since */
        size_t off = (len - 16) % h[2] == 0 ? 16 : 12, stride = (len - off) / h[2];
        for (uint32_t i = 0; i < h[1] && stride >= 8; i++) {
            uint32_t item[2];
            memcpy(item, buf + off + i * stride, sizeof(item));
            if (item[1] != 0) /* 0: a free slot */
                unlink_dsm(shmdir, item[0], uid);
        }
    }
    unlink_dsm(shmdir, control, uid);
}

/* A crashed build server's dynamic segments (posix: initdb's servers run
 * with the default, not the mmap tether's own servers use), found through
 * its System V segment id, if that one is the data directory's. */
static void remove_dsm_of(int id, const struct stat *data, uid_t uid)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) < 0 || ds.shm_segsz < PG_SHMEM_HEADER_SIZE)
        return;
    const char *p = shmat(id, NULL, SHM_RDONLY);
    if (p == (const char *)-1)
        return;
    int32_t magic;
    uint32_t control;
    uint64_t dev, ino;
    memcpy(&magic, p, sizeof(magic));
    memcpy(&control, p + 24, sizeof(control));
    memcpy(&dev, p + 40, sizeof(dev));
    memcpy(&ino, p + 48, sizeof(ino));
    shmdt(p);
    if (magic == PG_SHMEM_MAGIC && dev == (uint64_t)data->st_dev &&
        ino == (uint64_t)data->st_ino && control != 0)
        remove_dsm_set(control, uid);
}

/* A server of the build that PANICs (initdb's bootstrap, out of space)
 * aborts and leaves its System V segment.  Its key is the data
 * directory's inode number (postgres 12+; the next ones if that is taken):
 * remove those, once nothing is attached, made by the server's user. */
static void remove_build_shm(struct svc *s, int root, const char *tmp)
{
    _cleanup_free_ char *data = xasprintf("%s/data", tmp);
    struct stat st;
    if (fstatat(root, data, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    uid_t uid = s->run_as ? s->uid : geteuid();
    FILE *f = fopen("/proc/sysvipc/shm", "re");
    char line[512];
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        int key, id, cpid, lpid;
        unsigned perms, owner, group, cuid;
        unsigned long size, nattch;
        if (sscanf(line, "%d %d %o %lu %d %d %lu %u %u %u", &key, &id, &perms, &size, &cpid,
                   &lpid, &nattch, &owner, &group, &cuid) == 10 &&
            (unsigned)key - (unsigned)st.st_ino < 16 && nattch == 0 && cuid == uid) {
            remove_dsm_of(id, &st, uid);
            shmctl(id, IPC_RMID, NULL);
        }
    }
    fclose(f);
}

/* In the job's child (see pg_cache_get): initdb into dir/data, then
 * load the schema with a server of its own. */
struct build_args {
    struct svc *s;
    struct pg *pg;
    const struct init_sql *is;
};

static int build(void *arg, int root, const char *dir, terr *e)
{
    (void)root;
    const struct build_args *a = arg;
    struct svc *s = a->s;
    struct pg *pg = a->pg;
    int r = pq_load(e); /* in the job's child: the helper never loads libpq */
    if (r < 0)
        return terr_prefix(e, r, "[%s]", s->conf->label);
    _cleanup_strv_ strv env = {0};
    _cleanup_strv_ strv argv = {0};
    svc_environ(s, &env); /* carries the cookie: gc finds a builder left behind */
    strv_pushf(&argv, "%s/initdb", pg->bindir);
    strv_push(&argv, "-D");
    strv_pushf(&argv, "%s/data", dir);
    strv_pushf(&argv, "--username=%s", pg->os_user);
    /* the unix socket sits in a 0700 directory: its owner alone gets
     * there, and needs no password.  TCP is open to every local user: a
     * password, set per instance once its server is up (never here: the
     * cache is shared by the owner's instances) */
    strv_push(&argv, "--auth-local=trust");
    strv_push(&argv, "--auth-host=scram-sha-256");
    strv_push(&argv, "--no-sync");
    strv_push(&argv, "--no-clean"); /* ours to remove, once its segment is found */
    strv_push(&argv, "--encoding=UTF8");
    strv_push(&argv, "--locale=C");
    strv_push(&argv, "--wal-segsize=1"); /* 1 MB segments: a smaller copy */
    r = run_step(s, argv.v, env.v, true, e);
    return r < 0 ? r : load_cluster(s, pg, dir, a->is, &env, e);
}

static void build_stale(void *arg, int root, const char *name)
{
    remove_build_shm(arg, root, name); /* arg: the svc */
}

/* s->dir/data from the cache of initdb'd clusters (datacache.h): a copy
 * now, or a build in a job first. */
int pg_cache_install(struct svc *s, struct pg *pg, struct op *op, terr *e)
{
    char key[32];
    struct init_sql is = {0};
    int r = cache_key(s, pg, key, &is, e);
    struct build_args ba = {.s = s, .pg = pg, .is = &is};
    struct datacache_build b = {.label = s->conf->label, .what = "PostgreSQL", .key = key,
                                .chown = s->run_as, .uid = s->uid, .gid = s->gid,
                                .build = build, .stale = build_stale, .arg = &ba,
                                .stale_arg = s};
    pg->cache.stale_arg = s;
    if (r == 0)
        r = datacache_install(&pg->cache, s, op, &b, e);
    free(is.path);
    free(is.text);
    return r;
}
