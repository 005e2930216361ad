/* The helper: one process that owns one instance. */
#pragma once
#include "config.h"

struct helper_opts {
    struct tether_config *cfg;
    struct svc_conf **sel; /* services to run, in start order */
    size_t nsel;
    int status_fd;   /* gets the outcome of the start (see helper.c); -1: none */
    int lease_fd;    /* EOF on it means the owner is gone: clean up; -1: none */
    pid_t watch_pid; /* clean up when this process exits; 0: none */
    long long expire_ns; /* clean up after this long; 0: never */
    bool fixed;      /* the instance id follows from the config and services
                      * (instance_fixed_id): one user at a time */
    bool foreground; /* `tether run`: its warnings on the terminal (fd 2 as
                      * given), not in the log beside the instance (hlog.h) */
    bool keep_failed; /* keep the instance's directory (logs, data) when the
                       * start fails, or when the starter says its command
                       * failed ("finished" request): KEPT_NOTE */
};

/* Run the helper until it is told to stop, its owner goes, or the start
 * fails.  Returns the process exit status (0: clean shutdown after a good
 * start, 1: the start failed, 2: cleanup left something). */
int helper_main(struct helper_opts *o);

/* The control request with which `tether run` says that its command
 * ended, and how: "finished STATUS" (0 or the exit code).  The reply is
 * "OK" and a line, then the message (with its log's tail) of each service
 * that died while it ran, each ended by an RS (\x1e).  A failure (STATUS
 * non-zero, or a death) keeps the instance when the helper was told to
 * keep failed ones (keep_failed). */
#define REQ_FINISHED "finished "

/* The status channel (a socketpair) carries the helper's progress lines
 * while it starts (progress.h), then the outcome.  helper_read_progress()
 * reads what is there (call it when fd is readable), prints the progress
 * lines and keeps the rest in pending: 1 once the outcome has begun, or
 * the helper closed the channel; 0 while only progress came.
 * helper_read_status() reads the rest: 0 and the variables (fully named)
 * on success (and in notes, if given, what the user should hear: a port
 * retried), -errno and the message in e on failure.  After a success,
 * the starter must call helper_ack() once it has handed the variables on:
 * until then the helper treats the starter's death as its owner's. */
int helper_read_progress(int fd, strbuf *pending);
int helper_read_status(int fd, strbuf *pending, struct var **vars, size_t *n, strbuf *notes,
                       terr *e);
int helper_ack(int fd);
void vars_free(struct var *vars, size_t n);
