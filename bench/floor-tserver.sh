#!/bin/bash
# Floor for `tether run -- true` with a trivial service: start the same
# server, probe it until it answers, stop it, wait.  No tether involved.
set -e
tserver=$1 port=$2
"$tserver" --tcp "$port" >/dev/null 2>&1 &
pid=$!
until exec 3<>"/dev/tcp/127.0.0.1/$port"; do :; done 2>/dev/null
exec 3>&-
kill "$pid"
wait "$pid" || true
