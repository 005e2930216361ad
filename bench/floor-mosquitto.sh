#!/bin/bash
# Floor for `tether run mosquitto -- true` (and for `tether reset
# mosquitto`, a restart): exec mosquitto on a unix socket in a fresh
# directory with the recipe's settings, connect until it accepts (it sends
# READY=1 right after it opens its listeners), SIGKILL, wait, remove.
set -e
probe=$1
dir=$(mktemp -d /dev/shm/floor-mqtt.XXXXXX)
printf 'user root\npersistence false\nlog_dest stderr\nlistener 0 %s\nallow_anonymous true\n' \
    "$dir/mqtt.sock" >"$dir/mosquitto.conf"
mosquitto -c "$dir/mosquitto.conf" >/dev/null 2>&1 &
pid=$!
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
"$probe" unix "$dir/mqtt.sock"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
