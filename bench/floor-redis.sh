#!/bin/bash
# Floor for `tether run redis -- true`: exec redis-server on a unix socket
# in a fresh directory, PING until it answers, SIGKILL, wait, remove.
set -e
probe=$1
dir=$(mktemp -d /dev/shm/floor-redis.XXXXXX)
redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --dir "$dir" --daemonize no >/dev/null 2>&1 &
pid=$!
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
"$probe" unix "$dir/redis.sock" 'PING\r\n' '+PONG'
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
