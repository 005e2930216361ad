/* tether _services: what the shell completions (completions/) offer after
 * `tether run`.  Hidden from the usage: it is for scripts, not people. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "drivers/driver.h"

/* The built-in drivers that `tether run` starts by name, except those
 * the config has a service of that name for (it starts that one). */
static void builtins(const struct tether_config *cfg)
{
    struct driver_entry *v;
    size_t n = driver_list(cfg ? cfg->drivers_dir : NULL, &v);
    for (size_t i = 0; i < n; i++) {
        bool shadowed = streq(v[i].name, "command") || streq(v[i].name, "container") || !v[i].driver;
        for (size_t j = 0; cfg && j < cfg->n_svcs && !shadowed; j++)
            shadowed = streq(cfg->svcs[j]->label, v[i].name);
        if (!shadowed)
            puts(v[i].name);
    }
    driver_list_free(v, n);
}

/* The services `tether run` accepts here, one a line: the config's, then
 * the built-in drivers, which start by name next to a config that lacks
 * them.  A broken config prints its error and nothing else (a completion
 * shows no candidates). */
int cmd_services(struct cli *c, int argc, char **argv)
{
    if (argc > 1) {
        cli_err("_services takes no arguments");
        return EXIT_USAGE;
    }
    const char *path = config_locate(c->config_flag);
    if (!path) {
        builtins(NULL);
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
    builtins(cfg);
    config_free(cfg);
    return EXIT_OK;
}
