#!/bin/bash
# Floor for `tether run nats -- true`: write the recipe's config (a token,
# 127.0.0.1 on PORT) in a fresh directory, exec nats-server on it, wait for
# its INFO greeting (tether goes on to CONNECT with the token and PING:
# this floor is the stricter), SIGTERM, wait.
set -e
probe=$1 port=$2
dir=$(mktemp -d /dev/shm/floor-nats.XXXXXX)
token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
(umask 077; printf 'listen: "127.0.0.1:%s"\nauthorization { token: "%s" }\nmax_payload: 1048576\nserver_name: "floor"\n' \
    "$port" "$token" >"$dir/nats.conf")
/usr/sbin/nats-server -c "$dir/nats.conf" >/dev/null 2>&1 &
pid=$!
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
"$probe" tcp "$port" 'PING\r\n' 'INFO'
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
