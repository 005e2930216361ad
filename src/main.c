#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tether-build.h"

static const char usage[] =
    "usage: tether [-f FILE] COMMAND [ARGS]\n"
    "\n"
    "Private, disposable servers for test suites.\n"
    "\n"
    "  run [SERVICE...]            start, wait for Ctrl-C (SIGINT/SIGTERM), stop and clean up\n"
    "  run [SERVICE...] -- CMD...  start, run CMD with the variables set, clean up, exit with "
    "CMD's status\n"
    "                              (125: tether or a service failed)\n"
    "  start [SERVICE...]          start in the background; print variables for eval\n"

    "  stop [--all | ID...]        stop what the environment names; print unset lines for eval\n"
    "  status                      exit 0 if every service the environment names is alive\n"
    "  reset [SERVICE...]          health check, then discard what the last test did\n"
    "  logs SERVICE [-f]           show (or follow) a service's log\n"
    "  list                        this user's instances\n"
    "  gc [--kept [ID...]]         reap stale instances (--kept: and kept failed ones)\n"
    "  drivers                     the drivers (built-in and recipes) and where each comes from\n"
    "\n"
    "Options: -f FILE (else $TETHER_CONFIG, else ./tether.ini), -s|-c|--fish|--json output,\n"
    "         -q quiet (errors only), -v verbose (each step with its time, on stderr).\n"
    "         run/start --keep-failed (or TETHER_KEEP_FAILED=1): keep a failed instance's\n"
    "         directory, stopped, with its logs and data.\n"
    "         `man tether` for the rest.\n";

int main(int argc, char **argv)
{
    struct cli c = {.fmt = OUT_SH};
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},    {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},    {NULL, 0, NULL, 0},
    };
    int o;
    progress_level = PROGRESS_NOTE;
    while ((o = getopt_long(argc, argv, "+f:hVqv", opts, NULL)) != -1) {
        switch (o) {
        case 'f':
            c.config_flag = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return EXIT_OK;
        case 'V':
            printf("tether %s\n", TETHER_VERSION);
            return EXIT_OK;
        case 'q':
            cli_quiet(&c);
            break;
        case 'v':
            c.quiet = false;
            c.verbose = true;
            progress_level = PROGRESS_STEP;
            break;
        default:
            fputs(usage, stderr);
            return usage_status(argc, argv);
        }
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* reset getopt for the subcommand */
    if (streq(cmd, "run"))
        return cmd_run(&c, sub_argc, sub_argv, false);
    if (streq(cmd, "start"))
        return cmd_run(&c, sub_argc, sub_argv, true);
    if (streq(cmd, "stop"))
        return cmd_stop(&c, sub_argc, sub_argv);
    if (streq(cmd, "status"))
        return cmd_status(&c, sub_argc, sub_argv);
    if (streq(cmd, "reset"))
        return cmd_reset(&c, sub_argc, sub_argv);
    if (streq(cmd, "logs"))
        return cmd_logs(&c, sub_argc, sub_argv);
    if (streq(cmd, "list"))
        return cmd_list(&c, sub_argc, sub_argv);
    if (streq(cmd, "gc"))
        return cmd_gc(&c, sub_argc, sub_argv);
    if (streq(cmd, "drivers"))
        return cmd_drivers(&c, sub_argc, sub_argv);
    if (streq(cmd, "_services")) /* hidden: for the shell completions */
        return cmd_services(&c, sub_argc, sub_argv);
    if (streq(cmd, "_names")) /* hidden: for the bindings (Python) */
        return cmd_names(&c, sub_argc, sub_argv);
    if (streq(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    cli_err("unknown command '%s' (try tether --help)", cmd);
    return EXIT_USAGE;
}
