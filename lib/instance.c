/* Making an instance: a fresh locked directory under the state root, or
 * the fixed one claimed, reaping it first if its helper is gone.  Above
 * both state.c (the records it writes) and gc.c (the reaping), so that the
 * records stay below the reaper that reads them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "fsutil.h"
#include "instance.h"

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
