/* The narrow interface drivers see their instance through (kit.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kit.h"

const char *svc_instance_dir(const struct svc *s) { return s->inst->dir; }

int svc_instance_fd(const struct svc *s) { return s->inst->dirfd; }

const char *svc_instance_id(const struct svc *s) { return s->inst->id; }

char *svc_config_path(const struct svc *s, const char *path)
{
    return config_path(s->inst->cfg, path);
}

const char *svc_config_dir(const struct svc *s)
{
    return s->inst->cfg ? s->inst->cfg->dir : NULL;
}

size_t svc_count_same_driver(const struct svc *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->inst->n_svcs; i++)
        n += s->inst->svcs[i].conf->driver == s->conf->driver;
    return n;
}

int svc_give_dir(struct svc *s, terr *e)
{
    if (!s->run_as)
        return 0;
    if (chmod(s->inst->state_dir, 0711) < 0 || fchmod(s->inst->dirfd, 0711) < 0)
        return terr_set(e, errno, "[%s] cannot open %s to user %u: %m", s->conf->label,
                        s->inst->dir, (unsigned)s->uid);
    if (chown(s->dir, s->uid, s->gid) < 0)
        return terr_set(e, errno, "[%s] cannot chown %s: %m", s->conf->label, s->dir);
    return 0;
}
