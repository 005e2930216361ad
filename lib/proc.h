/* /proc parsing: identify a process beyond its pid (pid + start time +
 * boot id), so that nothing ever kills an unrelated process that reused a
 * recorded pid. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "util.h"

struct proc_id {
    pid_t pid;
    unsigned long long starttime; /* field 22 of /proc/PID/stat, clock ticks since boot */
};

/* Parse the contents of a /proc/PID/stat file; the comm field may contain
 * spaces and parentheses.  Fills starttime, ppid and state. */
int proc_parse_stat(const char *stat, unsigned long long *starttime, pid_t *ppid, char *state);
/* Read /proc/PID/stat. -ESRCH if the process does not exist. */
int proc_starttime(pid_t pid, unsigned long long *starttime);
/* Read /proc/PID/stat: start time, parent and state letter (each may be
 * NULL). -ESRCH if the process does not exist. */
int proc_stat(pid_t pid, unsigned long long *starttime, pid_t *ppid, char *state);
/* True if pid is alive (not a zombie) and has the recorded start time. */
bool proc_same(const struct proc_id *id);
/* Send sig to the process id (if it still is that process: pid and start
 * time) and wait up to timeout_ns for it to exit.  Through a pidfd; where
 * pidfd_open fails (ENOSYS: kernels before 5.3, valgrind 3.19) with
 * kill(2) and polling /proc, the start-time check narrowing, not closing,
 * the window for a recycled pid.  0 once it is gone (or was not there),
 * -ETIMEDOUT if it still runs. */
int proc_kill_wait(const struct proc_id *id, int sig, long long timeout_ns);
/* The one place that opens pidfds: a pidfd for pid (close-on-exec), or
 * -errno (-ESRCH: no such process; -ENOSYS: kernels before 5.3 and
 * valgrind 3.19, where callers fall back to kill(2) and /proc). */
int proc_pidfd_open(pid_t pid);
/* fork(), but the child's exit sends no SIGCHLD and only a wait that asks
 * for such children (__WALL, as proc_pidfd_reap does) reaps it: a
 * catch-all waitpid(-1) (the helper's) leaves it to the code that started
 * it.  *pidfd gets its pidfd (clone3's CLONE_PIDFD).  Where clone3 is
 * missing (ENOSYS: valgrind 3.19, kernels before 5.3) a plain fork, with
 * *pidfd -1.  The pid in the parent, 0 in the child, or -errno. */
pid_t proc_fork_pidfd(int *pidfd);
/* Reap the child of proc_fork_pidfd (pfd, or pid when pfd is -1): with
 * block, wait for it; without, only if it has exited.  1 reaped (*status
 * its wait status, if not NULL), 0 still running, -errno (-ECHILD: reaped
 * already). */
int proc_pidfd_reap(int pfd, pid_t pid, bool block, int *status);
/* Send sig through a pidfd: 0 or -errno. */
int proc_pidfd_signal(int pfd, int sig);
/* The one pidfd wait: until its process exits (true) or deadline, a
 * now_ns() time, passes (false).  Never for the helper's loop, which puts
 * the pidfd in its epoll set instead. */
bool pidfd_wait(int pfd, long long deadline);
/* The kernel's boot id (/proc/sys/kernel/random/boot_id), 36 chars + NUL. */
int proc_boot_id(char out[64]);
/* True if /proc/PID/environ contains the exact entry "name=value". */
bool proc_has_env(pid_t pid, const char *entry);
/* Call fn for every pid in /proc (numeric entries). Stops early if fn
 * returns non-zero and returns that value. */
int proc_foreach(int (*fn)(pid_t pid, void *ud), void *ud);
/* Append the pids of the direct children of pid (all its threads) to out. */
int proc_children(pid_t pid, pid_t **out, size_t *n);
/* Append the inodes of the sockets among pid's open fds (the N of the
 * links "socket:[N]" in /proc/PID/fd) to out.  -ESRCH if pid is gone,
 * -EACCES if its fds cannot be seen (another user's process, or one that
 * made itself non-dumpable). */
int proc_socket_inodes(pid_t pid, unsigned long **out, size_t *n);
/* The filesystem uid of pid (/proc/PID/status), the uid its new sockets
 * belong to.  -ESRCH if pid is gone. */
int proc_fsuid(pid_t pid, uid_t *uid);
/* The thread group (process) that pid belongs to: pid itself unless pid
 * is a thread's id.  -ESRCH if pid is gone. */
int proc_tgid(pid_t pid, pid_t *tgid);
/* Every descendant of pid (children, theirs, and so on), each with its
 * start time, appended to out; processes that exit meanwhile are left out. */
int proc_descendants(pid_t pid, struct proc_id **out, size_t *n);
/* The last pid the kernel handed out in our pid namespace (the fifth field
 * of /proc/loadavg): while it stays the same, no process was created. */
int proc_last_pid(pid_t *out);

/* A pid namespace: device and inode of /proc/PID/ns/pid ("pid:[INO]"). */
struct pidns_id {
    unsigned long long dev, ino;
};
/* The pid namespace of the calling process. */
int proc_pidns(struct pidns_id *out);
