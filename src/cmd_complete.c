/* tether _services: what the shell completions (completions/) offer after
 * `tether run`.  Hidden from the usage: it is for scripts, not people. */
#include <stdio.h>

#include "cli.h"
#include "config.h"
#include "drivers/driver.h"

/* The services `tether run` accepts here, one a line: the config's, or
 * without a config the built-in drivers.  A broken config prints its
 * error and nothing else (a completion shows no candidates). */
int cmd_services(struct cli *c, int argc, char **argv)
{
    if (argc > 1) {
        cli_err("_services takes no arguments");
        return EXIT_USAGE;
    }
    const char *path = config_locate(c->config_flag);
    if (!path) {
        const struct tether_driver *d;
        for (size_t i = 0; (d = driver_at(i)); i++)
            if (d != &driver_command)
                puts(d->name);
        return EXIT_OK;
    }
    struct tether_config *cfg;
    terr e;
    if (config_load(path, &cfg, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < cfg->n_svcs; i++)
        puts(cfg->svcs[i]->label);
    config_free(cfg);
    return EXIT_OK;
}
