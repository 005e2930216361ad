/* MariaDB's use of the data-directory cache (datacache.h).  A
 * mariadb-install-db costs 0.36 s (1.8 s on this loaded machine), a copy
 * of its 21 MB result 15 ms: built once per key (the server binary, its
 * user, the account, the database and init_sql's text), then copied.  The
 * build: install-db, then a server of its own that creates the database,
 * loads init_sql with the mariadb client (which reads what mariadb-dump
 * writes: DELIMITER, comments, LOCK TABLES) and replaces install-db's
 * accounts by the one account tether hands out; then a clean shutdown,
 * so that the copies start without crash recovery.  Also the server's
 * command line, which the driver's servers share with the build's. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fsutil.h"
#include "../kit.h"
#include "../proc.h"
#include "../service.h"
#include "../spawn.h"
#include "datacache.h"
#include "mariadb.h"

#define CACHE_FORMAT "tether-mariadb-cache-1"
#define INIT_SQL_MAX (256 << 20) /* a schema, not a data load */
#define CLIENT_SHOWN 2048        /* of the client's messages in ours */

const char *mdb_dbname(const struct svc_conf *c)
{
    const char *d = svc_opt(c, "database");
    return d ? d : "tether";
}

void mdb_server_args(const char *bin, const char *dir, strv *argv)
{
    strv_push(argv, bin);
    strv_push(argv, "--no-defaults"); /* no /etc/mysql: nothing of the machine's server */
    strv_pushf(argv, "--datadir=%s/data", dir);
    strv_pushf(argv, "--socket=%s/" MDB_SOCKET, dir);
    strv_pushf(argv, "--pid-file=%s/mysqld.pid", dir);
    strv_pushf(argv, "--tmpdir=%s", dir);
    /* 21 MB of data, 0.09 s to ready: the defaults' 96 MB redo log and
     * 128 MB buffer pool cost a copy and a start each; the data is
     * disposable, so no flush per commit and no binary log */
    static const char *const fixed[] = {
        "--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M",
        "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-log-bin",
        "--performance-schema=0",
        /* 'user'@'127.0.0.1' means that address, without a DNS lookup */
        "--skip-name-resolve",
        /* what Debian's own 50-server.cnf sets, which --no-defaults skips:
         * the compiled-in default is latin1 */
        "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
    };
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        strv_push(argv, fixed[i]);
}

char *mdb_quote_ident(const char *name)
{
    strbuf b = {0};
    sb_addc(&b, '`');
    for (const char *p = name; *p; p++) {
        if (*p == '`')
            sb_addc(&b, '`');
        sb_addc(&b, *p);
    }
    sb_addc(&b, '`');
    return sb_steal(&b);
}

char *mdb_quote_str(const char *s)
{
    strbuf b = {0};
    sb_addc(&b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sb_addc(&b, '\\');
        sb_addc(&b, *p);
    }
    sb_addc(&b, '\'');
    return sb_steal(&b);
}

int mdb_read_init_sql(struct svc *s, struct mdb *m, terr *e)
{
    const char *f = svc_opt(s->conf, "init_sql");
    if (!f || m->init_path)
        return 0;
    m->init_path = svc_config_path(s, f);
    /* as root too: a FIFO must not hang the start, nor a huge file eat memory */
    int r = read_file_trusted(AT_FDCWD, m->init_path, USER_PATH, INIT_SQL_MAX, &m->init_text,
                              &m->init_len, e);
    if (r < 0) {
        r = terr_prefix(e, r, "[%s] cannot read init_sql = %s", s->conf->label, m->init_path);
        free(take_ptr(&m->init_path));
    }
    return r;
}

static void cache_key(struct svc *s, struct mdb *m, char out[32])
{
    unsigned long long h = FNV1A_INIT;
    datacache_key_str(&h, CACHE_FORMAT);
    datacache_key_str(&h, m->bin);
    struct stat st;
    if (stat(m->bin, &st) == 0) { /* a server upgrade changes the binary */
        datacache_key_add(&h, &st.st_size, sizeof(st.st_size));
        datacache_key_add(&h, &st.st_mtim, sizeof(st.st_mtim));
    }
    datacache_key_str(&h, m->os_user);
    datacache_key_add(&h, &s->uid, sizeof(s->uid));
    datacache_key_str(&h, m->db_user);
    datacache_key_str(&h, mdb_dbname(s->conf));
    datacache_key_add(&h, m->init_text ? m->init_text : "", m->init_len);
    snprintf(out, 32, "mariadb-%016llx", h);
}

/* What a step wrote (out, a memfd), also appended to the service's log. */
static char *take_output(int fd, const char *logpath)
{
    char *all = memfd_take(fd, logpath);
    size_t len = strlen(all);
    if (len > CLIENT_SHOWN) { /* the end: where the error is */
        char *tail = xstrdup(all + len - CLIENT_SHOWN);
        free(all);
        return tail;
    }
    return all;
}

/* Run argv (as the server's user) with stdin from in (-1: /dev/null) to
 * its end; 0, or -EIO with what it said.  what: for the message. */
static int run_step(struct svc *s, char *const *argv, char *const *envp, int in,
                    const char *what, terr *e)
{
    _cleanup_close_ int out = memfd_create("tether-step", MFD_CLOEXEC);
    if (out < 0)
        return terr_set(e, errno, "[%s] memfd_create: %m", s->conf->label);
    struct spawn_opts o = {.argv = argv, .envp = envp, .log_fd = out, .pass_fd = in,
                           .pass_fd_as = 0, .cwd = "/", .drop_privs = s->run_as,
                           .uid = s->uid, .gid = s->gid};
    pid_t pid;
    int r = spawn_process(&o, &pid, e);
    if (r < 0)
        return terr_prefix(e, r, "[%s] %s", s->conf->label, what);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    _cleanup_free_ char *said = take_output(out, s->logpath);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return terr_set(e, EIO, "[%s] %s failed (status %d) while building the MariaDB cache%s:\n%s",
                    s->conf->label, what,
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                    s->run_as && streq(what, "mariadb-install-db") ? " (it runs as the server's user, who must be able to reach "
                                "the cache directory: check the modes of $TETHER_CACHE_DIR "
                                "and its parents)"
                              : "",
                    *said ? said : "(no output)");
}

static int install_db(struct svc *s, struct mdb *m, const char *dir, strv *env, terr *e)
{
    char prog[PATH_MAX];
    int r = program_find(s->conf->label, "mariadb-install-db", "mariadb-server", prog,
                         sizeof(prog), e);
    if (r < 0)
        return r;
    _cleanup_strv_ strv argv = {0};
    strv_push(&argv, prog);
    strv_push(&argv, "--no-defaults");
    strv_pushf(&argv, "--datadir=%s/data", dir);
    /* root with no password, on the build's own socket only: the build's
     * accounts are replaced before any server of an instance starts */
    strv_push(&argv, "--auth-root-authentication-method=normal");
    strv_push(&argv, "--skip-test-db");
    if (s->run_as)
        strv_pushf(&argv, "--user=%s", m->os_user);
    strv_push(&argv, "--innodb-log-file-size=4M");
    strv_push(&argv, "--innodb-buffer-pool-size=16M");
    strv_push(&argv, "--skip-log-bin");
    strv_push(&argv, "--performance-schema=0");
    return run_step(s, argv.v, env->v, -1, "mariadb-install-db", e);
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

/* READY=1 on the notify socket (Debian's mariadbd sends it), or its exit,
 * or the service's timeout. */
static int wait_ready(struct svc *s, int nfd, pid_t pid, terr *e)
{
    _cleanup_close_ int pfd = proc_pidfd_open(pid);
    long long deadline = now_ns() + s->conf->timeout_ns;
    for (;;) {
        long long left = deadline - now_ns();
        if (left <= 0)
            return terr_set(e, ETIMEDOUT, "[%s] mariadbd did not start while building the "
                            "cache (no READY=1 within timeout =)", s->conf->label);
        struct pollfd p[2] = {{.fd = nfd, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
        int n = poll(p, pfd >= 0 ? 2 : 1, (int)(left / 1000000 + 1));
        if (n > 0 && (p[1].revents & POLLIN)) {
            _cleanup_free_ char *log = svc_log_excerpt(s);
            return terr_set(e, EIO, "[%s] mariadbd exited while building the cache;%s",
                            s->conf->label, log);
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            char buf[4096];
            ssize_t len = recv(nfd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
            buf[len > 0 ? len : 0] = '\0';
            if (strstr(buf, "READY=1"))
                return 0;
        }
    }
}

/* The one account handed out, everything else's removed: install-db's
 * root@localhost, root@HOSTNAME, root@127.0.0.1 and root@::1 (no
 * password, over TCP too) must not reach an instance. */
static char *accounts_sql(const struct mdb *m)
{
    _cleanup_free_ char *u = mdb_quote_str(m->db_user);
    return xasprintf("DELETE FROM mysql.global_priv WHERE User <> 'mariadb.sys';\n"
                     "DELETE FROM mysql.proxies_priv;\n"
                     "FLUSH PRIVILEGES;\n"
                     "CREATE USER %s@'localhost';\n"
                     "GRANT ALL PRIVILEGES ON *.* TO %s@'localhost' WITH GRANT OPTION;\n",
                     u, u);
}

/* The client, as root on the build's socket, with sql on its stdin. */
static int client(struct svc *s, const char *dir, const char *db, const char *sql, size_t len,
                  const char *what, strv *env, terr *e)
{
    char prog[PATH_MAX];
    int r = program_find(s->conf->label, "mariadb", "mariadb-client", prog, sizeof(prog), e);
    if (r < 0)
        return r;
    _cleanup_close_ int in = memfd_with("tether-sql", sql, len, e);
    if (in < 0)
        return terr_prefix(e, in, "[%s]", s->conf->label);
    _cleanup_strv_ strv argv = {0};
    strv_push(&argv, prog);
    strv_push(&argv, "--no-defaults");
    strv_pushf(&argv, "--socket=%s/" MDB_SOCKET, dir);
    strv_push(&argv, "--user=root");
    strv_push(&argv, "--batch");
    if (db)
        strv_pushf(&argv, "--database=%s", db);
    return run_step(s, argv.v, env->v, in, what, e);
}

static int load(struct svc *s, struct mdb *m, const char *dir, strv *env, terr *e)
{
    _cleanup_free_ char *qd = mdb_quote_ident(mdb_dbname(s->conf));
    _cleanup_free_ char *mk = xasprintf("CREATE DATABASE %s;\n", qd);
    int r = client(s, dir, NULL, mk, strlen(mk), "CREATE DATABASE", env, e);
    if (r == 0 && m->init_text) {
        _cleanup_free_ char *what = xasprintf("loading init_sql = %s with the mariadb client",
                                              m->init_path);
        r = client(s, dir, mdb_dbname(s->conf), m->init_text, m->init_len, what, env, e);
    }
    _cleanup_free_ char *acc = accounts_sql(m);
    if (r == 0)
        r = client(s, dir, NULL, acc, strlen(acc), "setting up the account", env, e);
    return r;
}

/* A server of the build's own on dir/data: load it, then a clean
 * shutdown (SIGTERM), so that the copies need no crash recovery. */
static int load_server(struct svc *s, struct mdb *m, const char *dir, strv *env, terr *e)
{
    _cleanup_strv_ strv argv = {0};
    mdb_server_args(m->bin, dir, &argv);
    strv_push(&argv, "--skip-networking");
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
        return terr_prefix(e, r, "[%s] mariadbd", s->conf->label);
    r = wait_ready(s, nfd, pid, e);
    if (r == 0)
        r = load(s, m, dir, env, e);
    kill(pid, r == 0 ? SIGTERM : SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        r = terr_set(e, EIO, "[%s] mariadbd did not shut down cleanly while building the "
                     "cache (status %d): see %s", s->conf->label, status, s->logpath);
    _cleanup_free_ char *sock = xasprintf("%s/notify", dir);
    unlink(sock);
    return r;
}

struct build_args {
    struct svc *s;
    struct mdb *m;
};

/* In the job's child (datacache.h): install-db into dir/data, then load. */
static int build(void *arg, int root, const char *dir, terr *e)
{
    (void)root;
    const struct build_args *a = arg;
    _cleanup_strv_ strv env = {0};
    svc_environ(a->s, &env); /* carries the cookie: gc finds a builder left behind */
    int r = install_db(a->s, a->m, dir, &env, e);
    return r < 0 ? r : load_server(a->s, a->m, dir, &env, e);
}

int mdb_cache_install(struct svc *s, struct mdb *m, struct op *op, terr *e)
{
    char key[32];
    cache_key(s, m, key);
    struct build_args ba = {.s = s, .m = m};
    struct datacache_build b = {.label = s->conf->label, .what = "MariaDB", .key = key,
                                .chown = s->run_as, .uid = s->uid, .gid = s->gid,
                                .build = build, .arg = &ba};
    return datacache_install(&m->cache, s, op, &b, e);
}
