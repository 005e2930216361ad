#!/bin/bash
# Floor for `tether run etcd -- true`: exec etcd as the recipe does (a
# one-member cluster on unix sockets in a fresh directory, heartbeat 10 ms,
# election 50 ms), GET /health until it answers 200 (etcd says 503 until
# it has elected itself: the moment it sends READY=1), SIGTERM, wait.
set -e
probe=$1
dir=$(mktemp -d /dev/shm/floor-etcd.XXXXXX)
cd "$dir"
etcd --name floor --data-dir "$dir/data" --log-level error --logger zap \
    --heartbeat-interval 10 --election-timeout 50 \
    --listen-client-urls unix://etcd.sock:1 --advertise-client-urls unix://etcd.sock:1 \
    --listen-peer-urls unix://peer.sock:1 --initial-advertise-peer-urls unix://peer.sock:1 \
    --initial-cluster floor=unix://peer.sock:1 >/dev/null 2>&1 &
pid=$!
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
"$probe" unix "$dir/etcd.sock:1" 'GET /health HTTP/1.1\r\nHost: etcd\r\n\r\n' 'HTTP/1.1 200'
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
