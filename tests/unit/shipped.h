/* The drivers tether ships, as its messages list them: the C built-ins in
 * registry order, then the compiled-in recipes by name.  The one place a
 * test's expected message changes when a driver is added. */
#pragma once

/* those that run without a config (not command, not container) */
#define SHIPPED_C_RUNNABLE "postgresql, redis, mariadb, slapd"
#define SHIPPED_RECIPES                                                                         \
    "etcd, influxdb, memcached, mosquitto, nats, nginx, pgbouncer, rabbitmq, zookeeper"
/* "the built-in drivers are: ..." */
#define SHIPPED_RUNNABLE SHIPPED_C_RUNNABLE ", " SHIPPED_RECIPES
/* "the drivers are: ..." (a user's recipe goes between the two halves) */
#define SHIPPED_C "command, " SHIPPED_C_RUNNABLE ", container"
#define SHIPPED_ALL SHIPPED_C ", " SHIPPED_RECIPES
