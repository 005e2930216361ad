/* TCP port reservation shared by every tether instance on the machine. */
#pragma once
#include "util.h"

/* Reserve a port on 127.0.0.1: `want` > 0 for that port, 0 for any free
 * one.  The reservation is an abstract unix socket named after the port,
 * held until the returned fd is closed: it vanishes with its holder, so a
 * SIGKILLed helper can never leave a stale lock behind. */
int port_reserve(int want, int *port, terr *e);
/* True if some tether instance holds a reservation for port. */
bool port_reserved(int port);
