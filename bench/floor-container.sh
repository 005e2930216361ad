#!/bin/bash
# Floor for `tether run web -- true` with an image service: a plain
# `podman run --rm` of the same image with the same flags (runc, explicit
# ulimits, host network, --init for SIGTERM), a GET until it answers 200,
# then SIGTERM (proxied to the container) and wait for the client, which
# removes the container (--rm).
#   floor-container.sh PROBE IMAGE
set -e
probe=$1 image=$2
port=$((20000 + RANDOM % 20000))
podman run --rm --pull=never --runtime runc --network=host --init \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    "$image" /bin/busybox httpd -f -h /www -p "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi' EXIT
"$probe" tcp "$port" 'GET /index.html HTTP/1.0\r\n\r\n' '200'
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
