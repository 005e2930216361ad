/* File-system helpers for the state directory: safe removal, ownership
 * checks, and reading files that a less trusted user could have touched. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include "util.h"

/* Remove dirfd/name recursively, using only *at() calls: never follows a
 * symlink (a planted link is unlinked, never followed), never crosses a
 * mount point (entries on another device are left and reported with
 * -EXDEV), and copes with entries vanishing underneath.  A missing name
 * is success. */
int rm_rf_at(int dirfd, const char *name, terr *e);

/* open_file_trusted(), read_file_trusted() of a path the user named (an
 * init_sql file): its symlinks are followed, as the user's shell would,
 * and anyone may own it. */
#define USER_PATH ((uid_t)-1)

/* Open dirfd/path to read a file that someone less trusted may have
 * planted or swapped (as root, a service's directory belongs to its server
 * user): no component of a relative path may be a symlink (of an absolute
 * one, the last), the open never blocks (a FIFO), and what was opened must
 * be a regular file that owner owns and nobody else may write.  With
 * owner USER_PATH, only the last condition is dropped and symlinks are
 * followed: still a regular file, still no wait.  A blocking
 * O_RDONLY|O_CLOEXEC fd, or -errno with the reason in e: -ELOOP a symlink,
 * -EINVAL not a regular file, -EPERM another owner or writable by others,
 * -ENOENT missing. */
int open_file_trusted(int dirfd, const char *path, uid_t owner, terr *e);

/* The same, and read it whole: more than max bytes is -EFBIG (/proc's
 * files, which say size 0, are capped too).  *out is NUL-terminated; len
 * may be NULL. */
int read_file_trusted(int dirfd, const char *path, uid_t owner, size_t max, char **out,
                      size_t *len, terr *e);

/* Make sure `path` is a directory owned by uid with mode 0700, creating it
 * (and only the last component) if missing.  Refuses symlinks, other
 * owners and group/world access with a message that says what to do.
 * Returns an O_DIRECTORY|O_CLOEXEC fd on success (>= 0). */
int ensure_private_dir(const char *path, uid_t uid, terr *e);
/* The same for a directory that another variable than TETHER_DIR chooses
 * (TETHER_CACHE_DIR): the errors name var as the way out. */
int ensure_private_dir_var(const char *path, uid_t uid, const char *var, terr *e);

/* mkdir -p with mode for each created component. */
int mkdir_p(const char *path, int mode);

/* Copy the directory tree srcfd (an open directory) to dstparent/dstname,
 * which must not exist.  Regular files are reflinked where the file system
 * can (FICLONE), else copied in the kernel (copy_file_range).  Modes are
 * kept; with chown_to, everything created is owned by uid:gid.  Symlinks
 * are copied as links; other special files are skipped. */
int copy_tree(int srcfd, int dstparent, const char *dstname, bool chown_to, uid_t uid, gid_t gid,
              terr *e);

/* An anonymous file (memfd_create, name for /proc) holding data, at
 * offset 0: a child's stdin, or with len 0 a place for its output.  The
 * fd, or -errno with e filled. */
int memfd_with(const char *name, const char *data, size_t len, terr *e);
/* All that fd (a memfd a child wrote) holds, read from offset 0, and also
 * appended to the log file logpath (a service's log): malloc'd. */
char *memfd_take(int fd, const char *logpath);
