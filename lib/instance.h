/* An instance: one helper, its state directory and the services it owns. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "config.h"
#include "proc.h"
#include "quote.h"
#include "util.h"

#define COOKIE_VAR "TETHER_COOKIE"
/* In an instance directory kept after its cleanup failed: why (text). */
#define LEFTOVER_NOTE "cleanup-failed"
/* In an instance directory kept on the user's request (--keep-failed,
 * TETHER_KEEP_FAILED=1) after its start or `run`'s command failed: why
 * (text).  Its processes are gone; only `tether gc --kept` removes it. */
#define KEPT_NOTE "kept-failed"
#define KEEP_FAILED_VAR "TETHER_KEEP_FAILED"
#define INSTANCE_ID_LEN 16

enum svc_state { SVC_PENDING, SVC_STARTING, SVC_READY, SVC_STOPPING, SVC_EXITED };

struct instance;

/* A service at run time (the helper's view). */
struct svc {
    struct svc_conf *conf;
    struct instance *inst;
    enum svc_state state;
    char *dir;      /* ${dir}: <instance>/<label> */
    char *logpath;  /* <instance>/<label>.log */
    char *sockpath; /* ${socket} or NULL */
    char *cwd;      /* its working directory; NULL: dir */
    int port;       /* allocated port, 0 if none */
    int port_lock;  /* fd holding the port reservation */
    int port_tries;
    /* ${port_NAME}: more ports a server needs (RabbitMQ's distribution,
     * InfluxDB's RPC), reserved the first time a template names one and
     * held for the service's life, a restart included */
    struct xport {
        char *name;
        int port, lock;
        char text[8];
    } *xports;
    size_t n_xports;
    struct var *vars; /* short names: "PORT", "URL"... */
    size_t n_vars;
    pid_t pid;
    unsigned long long starttime;
    int exit_status; /* wait status once exited */
    long long deadline_ns;  /* readiness or stop deadline, 0 = none */
    long long spawned_ns;   /* when its process was started (progress: time to ready) */
    long long next_probe_ns;
    long long probe_delay_ns;
    pid_t probe_pid; /* exec readiness probe in flight */
    pid_t reset_pid; /* reset command in flight */
    int ready_fd;    /* notify socket, fd pipe, or inotify fd */
    size_t log_off;  /* log: bytes of the log already scanned */
    strbuf line;     /* partial line for log/fd readiness */
    int pending_client;     /* control client waiting for a reset/restart */
    char *reset_err; /* the last reset failed (why): not ready until one works */
    bool restarting;
    terr err;
    void *ready_re; /* compiled regex for READY_LOG */
    bool run_as;    /* drop privileges to uid/gid (set by a driver when root) */
    uid_t uid;
    gid_t gid;
    bool external;  /* no process of ours: e.g. a database on an existing server */
    void *driver_data;
    struct var *gvars; /* unprefixed variables (REDIS_URL): svc_setenv_global() */
    size_t n_gvars;
    uid_t taken_by;    /* who held the port, when a stranger's listener was found */
    strbuf port_retries; /* "port 4312 was taken by uid 65534, retried on 4313; ..." */
};

struct instance {
    char id[INSTANCE_ID_LEN + 1];
    char *state_dir; /* per-user root */
    char *dir;       /* <state_dir>/<id> */
    int dirfd;
    int lock_fd;
    char cookie[64]; /* value of TETHER_COOKIE for everything we start */
    char boot_id[64];
    struct pidns_id pidns; /* ino 0: unknown */
    /* the helper's descendants at its last scan (helper.c: track_scan) */
    struct proc_id *descendants;
    size_t n_descendants;
    char *prefix;
    struct tether_config *cfg;
    struct svc *svcs; /* in start order */
    size_t n_svcs;
    long long created; /* unix time */
    /* error messages may name the logs' paths: the logs outlive the
     * message (the instance runs on, or will be kept) */
    bool name_logs;
};

/* Set a service variable (short name) — replaces an existing one. */
void svc_setvar(struct svc *s, const char *name, const char *value);
const char *svc_getvar(const struct svc *s, const char *name);
/* Full variable name: PREFIX_LABEL_NAME (malloc'd). */
char *svc_varname(const struct svc *s, const char *name);

/* --- state directory (state.c) --- */
/* The per-user root: $TETHER_DIR, else $XDG_RUNTIME_DIR/tether, else
 * /dev/shm/tether-$UID; created 0700 and checked.  Returns a dirfd. */
int state_root(char **path, terr *e);
/* (instance.c, above gc.c, which it calls) Create a fresh locked instance directory (atomically: gc never sees a
 * half-made one).  With in->id already set (instance_fixed_id), that
 * name is claimed instead of a random one: a live holder is an "in use by
 * pid N" error (-EBUSY), a stale one is reaped first. */
int instance_create(struct instance *in, terr *e);
/* The fixed instance id for a config and its selected services:
 * "fixed-" and a hash of the config's path and the labels. */
void instance_fixed_id(char id[INSTANCE_ID_LEN + 1], const struct tether_config *cfg,
                       struct svc_conf *const *sel, size_t n);
/* (Re)write <instance>/state from the instance's current processes. */
int instance_write_state(struct instance *in, terr *e);

/* What a state file says; used by gc, stop, list and status. */
struct state_svc {
    char label[128];
    struct proc_id proc;
    char state[16];
    char driver[32];
};
/* At most this many descendants are recorded: past it, gc has the cookie and
 * the trees of the recorded processes to find the rest. */
#define STATE_MAX_DESCENDANTS 1024
struct state_info {
    char id[INSTANCE_ID_LEN + 1];
    char boot_id[64];
    struct pidns_id pidns; /* ino 0: not recorded (older state files) */
    char cookie[64];
    char prefix[64];
    char config[4096];
    long long created;
    struct proc_id helper;
    struct state_svc svcs[64];
    size_t n_svcs;
    /* every process below the helper (as child subreaper it adopts what
     * its services detach), so that gc finds even those without a cookie */
    struct proc_id descendants[STATE_MAX_DESCENDANTS];
    size_t n_descendants;
};
int state_parse(const char *text, struct state_info *st);
void state_format(strbuf *b, const struct state_info *st);
int state_read(int instfd, struct state_info *st);
/* True if st was written in another pid namespace during this boot: its
 * pids mean nothing here, and its processes may be out of sight. */
bool state_other_pidns(const struct state_info *st);

/* --- gc (gc.c) --- */
/* Reap every stale instance of this user: kill its verified processes and
 * everything carrying its cookie, then remove its directory.  Returns the
 * number reaped (>= 0) or -errno. */
int gc_run(strbuf *report, terr *e);
/* Kill and reap one instance whose lock we hold: 0, or 1 when it finished
 * a cleanup that had failed before (the instance had a LEFTOVER_NOTE).  A
 * drop that fails again keeps the instance for the next gc (-EAGAIN);
 * -EBUSY if another process is removing it right now. */
int gc_reap_instance(int rootfd, const char *id, terr *e);
/* As gc_run, and also retry the instances whose cleanup failed (a
 * database on a server that was down): `tether gc`.  gc_run, which runs
 * before every start, leaves those: a hung server would delay each start
 * by the service's timeout. */
int gc_run_retrying(strbuf *report, terr *e);
/* As gc_run_retrying, and also remove the instances kept after a failure
 * (KEPT_NOTE): `tether gc --kept`. */
int gc_run_kept(strbuf *report, terr *e);
/* Remove the one instance id kept after a failure: `tether gc --kept ID`.
 * -ENOENT if there is no such kept instance. */
int gc_remove_kept(const char *id, strbuf *report, terr *e);
/* Why an instance directory outlived its helper. */
enum kept_reason {
    KEPT_NOT = 0,
    KEPT_CLEANUP, /* its cleanup failed: LEFTOVER_NOTE; `tether gc` retries */
    KEPT_FAILED,  /* kept on request after a failure: KEPT_NOTE; `tether gc --kept` */
};
/* After a failed cleanup: write why into the instance's LEFTOVER_NOTE and
 * remove everything but the state, the lock, the note and the directories
 * of labels (which hold the records the next gc needs to retry). */
int instance_keep(int instfd, const strv *labels, const char *why, terr *e);
/* After a failure, on the user's request: write why into the instance's
 * KEPT_NOTE; everything else stays (logs, data), less the control socket
 * that nobody answers any more. */
int instance_keep_failed(int instfd, const char *why, terr *e);
/* Whether (and why) the instance instfd was kept; why gets its note ("" if
 * it has none). */
enum kept_reason instance_kept(int instfd, char why[TERR_MAX]);
/* Whether the user asked to keep failed instances: $TETHER_KEEP_FAILED, a
 * boolean as parse_bool reads it (unset or "": no).  Another value is an
 * error (-EINVAL), not a guess either way. */
int keep_failed_env(bool *keep, terr *e);
/* Remove the directory of instance rootfd/id (whose processes are gone),
 * renamed to .rm-ID while it goes so that a remover killed half-way
 * leaves something gc recognises and reaps at once. */
int instance_remove(int rootfd, const char *id, terr *e);
/* SIGKILL every process whose environment carries COOKIE_VAR=cookie, until
 * none is left (waits for them to die). */
int kill_cookie_processes(const char *cookie);
