#include <string.h>
#include "driver.h"

static const struct tether_driver *const drivers[] = {
    &driver_command,
};

const struct tether_driver *driver_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
        if (streq(drivers[i]->name, name))
            return drivers[i];
    return NULL;
}
