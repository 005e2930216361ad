/* The public API (include/tether/tether.h). */
#include "tether-build.h"
#include <tether/tether.h>

const char *tether_version(void) { return TETHER_VERSION; }
