/* libtether: private, disposable servers for test suites.
 * See docs/fixtures.md. */
#ifndef TETHER_TETHER_H
#define TETHER_TETHER_H

#ifdef __cplusplus
extern "C" {
#endif

#define TETHER_API __attribute__((visibility("default")))

/* The library's version, e.g. "0.1.0". */
TETHER_API const char *tether_version(void);

#ifdef __cplusplus
}
#endif
#endif
