/* tether drivers: what `driver = NAME` can name here, and where each comes
 * from (a C built-in, a compiled-in recipe, or a recipe's file on the
 * search path: registry.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "drivers/driver.h"
#include "drivers/recipe.h"

int cmd_drivers(struct cli *c, int argc, char **argv)
{
    if (argc > 1) {
        cli_err("drivers takes no arguments");
        return EXIT_USAGE;
    }
    _cleanup_free_ char *dir = NULL;
    const char *path = config_locate(c->config_flag);
    terr e;
    if (path && config_drivers_dir(path, &dir, &e) < 0) {
        cli_err("%s", e.msg);
        return EXIT_USAGE;
    }
    struct driver_entry *v;
    size_t n = driver_list(dir, &v);
    int status = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        const struct recipe *r = recipe_of(v[i].driver);
        const char *what = r && recipe_description(r) ? recipe_description(r) : "";
        if (!v[i].driver) {
            what = "broken: see the error";
            cli_err("%s", v[i].error);
            status = EXIT_FAIL;
        }
        printf("%-12s %s%s%s\n", v[i].name, v[i].from, *what ? "  " : "", what);
    }
    driver_list_free(v, n);
    return status;
}
