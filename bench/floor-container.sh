#!/bin/bash
# Floor for `tether run web -- true` with an image service: a plain
# `podman run --rm` of the same image with the same flags (runc, explicit
# ulimits, host network, --init for signals), a GET until it answers 200,
# then `podman rm -f -t 0` (a SIGTERM to the client alone leaves the
# container up: measured) and wait for the client.
#   floor-container.sh PROBE IMAGE
set -e
probe=$1 image=$2
port=$((20000 + RANDOM % 20000))
name=floor-ct-$$
podman run --rm --pull=never --name "$name" --runtime runc --network=host --init \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    "$image" /bin/busybox httpd -f -h /www -p "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true; wait 2>/dev/null || true' EXIT
"$probe" tcp "$port" 'GET /index.html HTTP/1.0\r\n\r\n' 'HTTP/1.1 200'
