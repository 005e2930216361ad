/* libtether: private, disposable servers for test suites.
 *
 *     tether_service *pg = tether_service_new("postgresql", NULL);
 *     if (tether_setup(pg, 0) < 0)
 *         fail(tether_strerror(pg));
 *     connect_to(tether_var(pg, "URL"));
 *     ...
 *     tether_reset(pg);      // between tests: alive?  then empty it again
 *     ...
 *     tether_cleanup(pg);    // stop it, remove everything it made
 *     tether_service_free(pg);
 *
 * The service is run by a `tether` helper process (found through
 * $TETHER_BIN, else next to this library in a build tree, else at its
 * install path, else on $PATH) that is tied to the calling process: if
 * that process dies in any way, even by SIGKILL, the helper stops the
 * service and removes its state within a second.
 *
 * Every function that can fail returns 0 or a negative errno value and
 * keeps a message for people in tether_strerror().  The library never
 * exits, never prints (unless given a log callback), and is safe to use
 * from multi-threaded processes (one tether_service per thread at a time)
 * and across fork(): a forked child never stops its parent's services.
 * See docs/fixtures.md. */
#ifndef TETHER_TETHER_H
#define TETHER_TETHER_H

#ifdef __cplusplus
extern "C" {
#endif

#define TETHER_API __attribute__((visibility("default")))

/* tether_setup() flags. */
/* Attach to the running instance that <PREFIX>_<LABEL>_CONTROL_PID and
 * <PREFIX>_<LABEL>_CONFIGFILE in the environment name (as
 * `eval "$(tether start ...)"` sets them).  If they are set but that
 * instance is not running, setup fails (it never starts a new one
 * silently); if they are not set, setup makes a new instance.  cleanup
 * leaves an attached instance running. */
#define TETHER_USE_EXISTING 0x1u
/* Use the config's definition as it is (its fixed port, a fixed instance
 * directory) instead of a fresh private instance.  Only one user at a
 * time: a second one gets an "in use by pid N" error. */
#define TETHER_FIXED_INSTANCE 0x2u

typedef struct tether_service tether_service;

/* A service by name: a section of config_file, or a built-in driver
 * ("postgresql", "redis", "memcached") when config_file is NULL.  Returns
 * NULL only when out of memory; a bad name or config is reported by
 * tether_setup(). */
TETHER_API tether_service *tether_service_new(const char *name, const char *config_file);

/* Start (or attach to) the service; flags: TETHER_USE_EXISTING,
 * TETHER_FIXED_INSTANCE, or 0 for a fresh private instance. */
TETHER_API int tether_setup(tether_service *svc, unsigned flags);

/* Check that the service is alive and ready, then discard what the last
 * test did (empty database, flushed cache...).  A service that died is an
 * error that names it; it is never restarted silently.  A reset of a
 * built-in driver starts no process.  A helper that does not answer
 * (stopped, hung) is an error after $TETHER_HELPER_TIMEOUT (default 5 s;
 * a reset gets as long as the helper says it may take, plus that). */
TETHER_API int tether_reset(tether_service *svc);

/* Stop the service and remove everything it created; waits until that is
 * done.  An attached instance (TETHER_USE_EXISTING) is left running, and
 * in a forked child this does nothing but forget the instance. */
TETHER_API int tether_cleanup(tether_service *svc);

/* A variable of the service by short name ("URL", "PORT", "HOST",
 * "CONFIGFILE", ...: <PREFIX>_<LABEL>_<key>), or by full name
 * ("PGHOST", "TETHER_POSTGRESQL_URL").  NULL if it has none. */
TETHER_API const char *tether_var(const tether_service *svc, const char *key);

/* The n-th variable (full name and value), for passing them all on, e.g.
 * to a child process's environment.  Returns 0, or -1 past the end. */
TETHER_API int tether_var_at(const tether_service *svc, unsigned n, const char **name,
                             const char **value);

/* The service's label: its section name (or the driver name). */
TETHER_API const char *tether_label(const tether_service *svc);

/* The CONFIGFILE of the running instance: shell assignments of all its
 * variables, readable by other processes.  NULL before setup. */
TETHER_API const char *tether_config_file(const tether_service *svc);

/* The last error, for people ("" if none). */
TETHER_API const char *tether_strerror(const tether_service *svc);

/* Progress messages (started, attached, reset, stopped), for a test
 * runner's log.  NULL fn: none (the default). */
typedef void (*tether_log_fn)(void *userdata, const char *message);
TETHER_API void tether_set_log(tether_service *svc, tether_log_fn fn, void *userdata);

/* Free the handle; a service still set up is cleaned up first. */
TETHER_API void tether_service_free(tether_service *svc);

/* ---- several services at once ----
 *
 *     tether_services *all;
 *     if (tether_setup_all("tether.ini", NULL, 0, &all) < 0)
 *         fail(tether_strerror_all(all));
 *     connect_to(tether_var(tether_get(all, "db"), "URL"));
 *     tether_reset_all(all);      // between tests
 *     tether_cleanup_all(all);    // stop them all, remove everything
 *     tether_services_free(all);
 */
typedef struct tether_services tether_services;

/* Set up several services as ONE instance (one helper, `after =` honoured):
 * those named in `services` (separated by commas or blanks), or, when
 * services is NULL or empty, every service of config_file.  config_file
 * NULL: the built-in drivers named ("postgresql redis").  Flags as for
 * tether_setup; with TETHER_USE_EXISTING each service that the environment
 * names is attached, the others start together.  If one service fails,
 * the ones started are stopped, the attached ones let go, and the error
 * names the service.  *out is set even then (NULL only when out of
 * memory): read tether_strerror_all(*out), then tether_services_free(). */
TETHER_API int tether_setup_all(const char *config_file, const char *services, unsigned flags,
                                tether_services **out);

/* One service of the set by label (case ignored), NULL if it has none.
 * The handle belongs to the set: use tether_var(), tether_reset()... on
 * it, but do not free it; tether_cleanup() on it only lets go of it. */
TETHER_API tether_service *tether_get(const tether_services *all, const char *label);

/* tether_reset() of each service, in order; stops at the first error. */
TETHER_API int tether_reset_all(tether_services *all);

/* Stop every service of the set (attached ones keep running) and remove
 * everything they made; waits until that is done. */
TETHER_API int tether_cleanup_all(tether_services *all);

/* The last error of the set, for people ("" if none). */
TETHER_API const char *tether_strerror_all(const tether_services *all);

/* Free the set and its handles; cleans up first if needed. */
TETHER_API void tether_services_free(tether_services *all);

/* ---- cmocka: group setup, per-test reset, group teardown ----
 *
 *     const struct CMUnitTest tests[] = {
 *         cmocka_unit_test_setup(test_orders, tether_group_reset),
 *     };
 *     return cmocka_run_group_tests(tests, tether_group_setup, tether_group_teardown);
 *
 * and in a test: tether_get(*state, "postgresql").  They have cmocka's
 * shape (int f(void **state)) without needing cmocka.  *state is the
 * group's tether_services (also tether_group()).  What they set up:
 * tether_group_config()'s choice, else every service of $TETHER_CONFIG,
 * else of ./tether.ini, with TETHER_USE_EXISTING.  One group at a time
 * per process.  Made for test programs, they print their errors on
 * stderr ("tether: ..."), beside cmocka's own. */
TETHER_API void tether_group_config(const char *config_file, const char *services,
                                    unsigned flags);
TETHER_API int tether_group_setup(void **state);
TETHER_API int tether_group_reset(void **state);
TETHER_API int tether_group_teardown(void **state);
TETHER_API tether_services *tether_group(void);

/* The library's version, e.g. "0.1.0". */
TETHER_API const char *tether_version(void);

#ifdef __cplusplus
}
#endif
#endif
