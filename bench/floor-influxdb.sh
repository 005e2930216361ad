#!/bin/bash
# Floor for `tether run influxdb -- true`: influxd on the recipe's config
# (HTTP on a port and a unix socket, RPC moved, auth on) in a fresh
# directory; ready when the bootstrap query (the admin user and the
# database) has answered in full, over bash's /dev/tcp, once the probe
# (every 0.2 ms) finds it listening; SIGKILL, wait.  influxd answers the status line before it runs
# the statements, so the whole answer is read, as tether's check does.
set -e
probe=$1 port=$2 rpc=$3
dir=$(mktemp -d /dev/shm/floor-influx.XXXXXX)
pid=
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
pw=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$dir/influxdb.conf" <<INI
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
dir = "$dir/meta"
[data]
dir = "$dir/data"
wal-dir = "$dir/wal"
query-log-enabled = false
[monitor]
store-enabled = false
[http]
bind-address = "127.0.0.1:$port"
auth-enabled = true
unix-socket-enabled = true
bind-socket = "$dir/influxdb.sock"
unix-socket-permissions = "0700"
pprof-enabled = false
[logging]
level = "warn"
INI
influxd run -config "$dir/influxdb.conf" >/dev/null 2>&1 &
pid=$!
q="u=tether&p=$pw&q=CREATE+USER+tether+WITH+PASSWORD+%27$pw%27+WITH+ALL+PRIVILEGES%3BCREATE+DATABASE+%22tether%22"
"$probe" tcp "$port"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /query?%s HTTP/1.0\r\n\r\n' "$q" >&3
body=; while IFS= read -r line <&3; do body=$line; done
exec 3<&-
[[ $body == *'"statement_id":1}]}'* ]]
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
