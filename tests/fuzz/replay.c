/* Replay a fuzz corpus without libFuzzer (built with gcc for `make check`):
 *     replay_TARGET DIR_OR_FILE...
 * feeds every regular file, in name order, to LLVMFuzzerTestOneInput().
 * A failing input aborts, like under the fuzzer; the name of the file being
 * run is printed first so the culprit is known. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    int r = read_file_at(AT_FDCWD, path, &data, &len);
    if (r < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(-r));
        return -1;
    }
    fprintf(stderr, "replay: %s\n", path);
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    free(data);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    size_t files = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            rc |= run_file(argv[i]) < 0;
            files++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, by_name);
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        for (int k = 0; k < n; k++) {
            char *p = xasprintf("%s/%s", argv[i], ents[k]->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                rc |= run_file(p) < 0;
                files++;
            }
            free(p);
            free(ents[k]);
        }
        free(ents);
    }
    if (files == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 1;
    }
    printf("replayed %zu inputs\n", files);
    return rc;
}
