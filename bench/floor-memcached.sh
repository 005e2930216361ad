#!/bin/bash
# Floor for `tether run memcached -- true`: exec memcached on a unix socket
# in a fresh directory, ask `version` until it answers, SIGKILL, wait.
set -e
probe=$1
dir=$(mktemp -d /dev/shm/floor-mc.XXXXXX)
user=(); [ "$(id -u)" = 0 ] && user=(-u root)
memcached -s "$dir/mc.sock" -a 0700 "${user[@]}" >/dev/null 2>&1 &
pid=$!
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
"$probe" unix "$dir/mc.sock" 'version\r\n' 'VERSION'
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
