#!/bin/bash
# Floor for `tether run redis -- true`: exec redis-server on a unix socket,
# PING until it answers, SIGKILL, wait.
set -e
dir=$(mktemp -d /dev/shm/floor-redis.XXXXXX)
redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --dir "$dir" --daemonize no >/dev/null 2>&1 &
pid=$!
until redis-cli -s "$dir/redis.sock" ping >/dev/null 2>&1; do :; done
kill -KILL "$pid"
wait "$pid" || true
rm -rf "$dir"
