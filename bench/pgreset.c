/* Reset benchmark: the floor is DROP DATABASE + CREATE DATABASE ... TEMPLATE
 * over one open libpq connection; tether's is `tether reset SERVICE` as a
 * test would run it (a process per reset).  Both are timed here, in one
 * run, and printed as a mean per reset.
 *   pgreset floor CONNINFO DBNAME TEMPLATE N
 *   pgreset sql CONNINFO N SQL      (reset = truncate's floor: a script's SQL)
 *   pgreset cmd N COMMAND [ARGS...]
 * With PGRESET_GAP_MS=G, each reset follows G ms of idle time (a test's
 * body), which is not counted: what a test waits for per reset.  With
 * PGRESET_DIRTY_CONNINFO and PGRESET_DIRTY_SQL, that body also runs the
 * SQL (a test's writes), not counted either. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the test's writes before each reset, on a connection of their own */
static void dirty(void)
{
    static PGconn *c;
    const char *ci = getenv("PGRESET_DIRTY_CONNINFO"), *sql = getenv("PGRESET_DIRTY_SQL");
    if (!ci || !sql)
        return;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = PQconnectdb(ci);
    }
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

/* the idle time before each reset, outside the measurement */
static double gap(void)
{
    dirty();
    const char *g = getenv("PGRESET_GAP_MS");
    long ms = g ? atol(g) : 0;
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return now();
}

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "floor") == 0) {
        PGconn *c = PQconnectdb(argv[2]);
        if (PQstatus(c) != CONNECTION_OK) {
            fprintf(stderr, "%s", PQerrorMessage(c));
            return 1;
        }
        int n = atoi(argv[5]);
        char drop[512], create[512];
        snprintf(drop, sizeof(drop), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", argv[3]);
        snprintf(create, sizeof(create), "CREATE DATABASE \"%s\" TEMPLATE \"%s\"", argv[3], argv[4]);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double t0 = gap();
            if (!exec_ok(c, drop) || !exec_ok(c, create))
                return 1;
            sum += now() - t0;
        }
        printf("%.3f\n", sum / n * 1000);
        PQfinish(c);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "sql") == 0) {
        PGconn *c = PQconnectdb(argv[2]);
        if (PQstatus(c) != CONNECTION_OK) {
            fprintf(stderr, "%s", PQerrorMessage(c));
            return 1;
        }
        int n = atoi(argv[3]);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double t0 = gap();
            PGresult *r = PQexec(c, argv[4]);
            if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
                fprintf(stderr, "%s", PQerrorMessage(c));
                return 1;
            }
            PQclear(r);
            sum += now() - t0;
        }
        printf("%.3f\n", sum / n * 1000);
        PQfinish(c);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "cmd") == 0) {
        int n = atoi(argv[2]);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double t0 = gap();
            pid_t p = fork();
            if (p == 0) {
                execvp(argv[3], argv + 3);
                _exit(127);
            }
            int st;
            waitpid(p, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "%s failed\n", argv[3]);
                return 1;
            }
            sum += now() - t0;
        }
        printf("%.3f\n", sum / n * 1000);
        return 0;
    }
    fprintf(stderr, "usage: pgreset floor CONNINFO DB TEMPLATE N | pgreset sql CONNINFO N SQL | "
                    "pgreset cmd N CMD...\n");
    return 2;
}
