#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "driver.h"

static const struct tether_driver *const drivers[] = {
    &driver_command,
    &driver_postgresql,
    &driver_redis,
    &driver_memcached,
};

/* The i-th driver, NULL past the last. */
const struct tether_driver *driver_at(size_t i)
{
    return i < ARRAY_SIZE(drivers) ? drivers[i] : NULL;
}

const struct tether_driver *driver_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
        if (streq(drivers[i]->name, name))
            return drivers[i];
    return NULL;
}

void driver_names(strbuf *b, bool builtin_only)
{
    const char *sep = "";
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++) {
        if (builtin_only && drivers[i] == &driver_command)
            continue;
        sb_addf(b, "%s%s", sep, drivers[i]->name);
        sep = ", ";
    }
}

const char *driver_closest(const char *name, bool builtin_only)
{
    const char *names[ARRAY_SIZE(drivers)];
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
        names[i] = builtin_only && drivers[i] == &driver_command ? NULL : drivers[i]->name;
    return closest_word(name, names, ARRAY_SIZE(drivers));
}

void driver_globals_of(const char *stem, strv *names)
{
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
        for (const char *const *g = drivers[i]->globals; g && g[0] && g[1]; g += 2) {
            _cleanup_free_ char *own = xasprintf("%s_%s", stem, g[1]);
            const char *gv = getenv(g[0]), *ov = getenv(own);
            if (gv && ov && streq(gv, ov) && !strv_contains(names, g[0]))
                strv_push(names, g[0]);
        }
}
