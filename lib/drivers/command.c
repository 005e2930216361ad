/* The `command` driver: any user-defined server, described in the config. */
#include <errno.h>
#include "driver.h"
#include "../service.h"

static int command_configure(struct svc_conf *c, const char *file, terr *e)
{
    if (!c->command)
        return terr_at(e, EINVAL, file, c->line,
                        "[%s] has no command = ...: say what to run, e.g. "
                        "command = python3 -m http.server ${port}",
                        c->label);
    return 0;
}

static int command_argv(struct svc *s, strv *argv, strv *env, terr *e)
{
    return svc_argv(s, s->conf->command, argv, e);
}

const struct tether_driver driver_command = {
    .name = "command",
    .configure = command_configure,
    .argv = command_argv,
    .keys = (const char *const[]){NULL}, /* only the keys every service has */
};
