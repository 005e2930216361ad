#!/bin/bash
# Floor for `tether run memcached -- true`: exec memcached on a unix socket,
# ask `version` until it answers, SIGKILL, wait.
set -e
dir=$(mktemp -d /dev/shm/floor-mc.XXXXXX)
user=(); [ "$(id -u)" = 0 ] && user=(-u root)
memcached -s "$dir/mc.sock" -a 0700 "${user[@]}" >/dev/null 2>&1 &
pid=$!
python3 - "$dir/mc.sock" <<'PY'
import socket, sys
while True:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
        s.sendall(b"version\r\n")
        if s.recv(64).startswith(b"VERSION"): break
    except OSError:
        pass
PY
kill -KILL "$pid"
wait "$pid" || true
rm -rf "$dir"
