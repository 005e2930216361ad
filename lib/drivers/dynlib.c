#define DYNLIB_IMPL
#include "dynlib.h"

#include <dlfcn.h>
#include <errno.h>

struct pq_api pq_api;
struct redis_api redis_api;
struct my_api my_api;

static int load(void **handle, const char *const *sonames, const char *package,
                const char *const *names, void **slots, size_t n, terr *e)
{
    if (*handle)
        return 0;
    void *h = NULL;
    for (const char *const *so = sonames; *so && !h; so++)
        h = dlopen(*so, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return terr_set(e, ENOENT, "cannot load %s (%s): apt-get install %s", sonames[0],
                        dlerror(), package);
    for (size_t i = 0; i < n; i++) {
        slots[i] = dlsym(h, names[i]);
        if (!slots[i]) {
            dlclose(h);
            return terr_set(e, ENOENT, "%s has no %s: install a newer %s", sonames[0], names[i],
                            package);
        }
    }
    *handle = h;
    return 0;
}

#define DYN_NAME(f) #f,
int pq_load(terr *e)
{
    static void *handle;
    static const char *const sonames[] = {"libpq.so.5", "libpq.so", NULL};
    static const char *const names[] = {PQ_FUNCS(DYN_NAME)};
    return load(&handle, sonames, "libpq5", names, (void **)&pq_api, ARRAY_SIZE(names), e);
}

int redis_load(terr *e)
{
    static void *handle;
    static const char *const sonames[] = {"libhiredis.so.0.14", "libhiredis.so.1.1.0",
                                          "libhiredis.so", NULL};
    static const char *const names[] = {REDIS_FUNCS(DYN_NAME)};
    return load(&handle, sonames, "libhiredis0.14", names, (void **)&redis_api,
                ARRAY_SIZE(names), e);
}

int my_load(terr *e)
{
    static void *handle;
    static const char *const sonames[] = {"libmariadb.so.3", "libmariadb.so", NULL};
    static const char *const names[] = {MY_FUNCS(DYN_NAME)};
    return load(&handle, sonames, "libmariadb3", names, (void **)&my_api, ARRAY_SIZE(names), e);
}
