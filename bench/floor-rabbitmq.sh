#!/bin/bash
# Floor for `tether run rabbitmq -- true`; what it is made of: a BEAM start.
#   floor-rabbitmq.sh: start RabbitMQ as the recipe does (a private
#     epmd tied to it by PDEATHSIG, every RABBITMQ_*/ERL_* path private,
#     the same rabbitmq.conf), wait for its sd_notify READY=1, SIGKILL it.
#     The broker's boot (~3-6 s here, mostly the VM and Mnesia) is it.
# The reset's floor is in run.sh: bench/probe sending the same RESET line to
# the broker's tether_ctl listener (one process start, the same exchange).
set -e
bin=/usr/lib/rabbitmq/bin
dir=$(mktemp -d /dev/shm/floor-rmq.XXXXXX)
port=$((20000 + RANDOM % 10000))
pid=
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
default_user = tether
default_pass = $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
default_vhost = /
log.console = true
log.console.level = warning
log.file = false
EOF
export HOME=$dir RABBITMQ_CONF_ENV_FILE=/dev/null RABBITMQ_NODENAME=rabbit@localhost \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$((port + 1)) \
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config \
    RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_LOGS=- \
    RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins RABBITMQ_ENABLED_PLUGINS='' \
    RABBITMQ_PLUGINS_EXPAND_DIR=$dir/plugins RABBITMQ_PID_FILE=$dir/rabbitmq.pid \
    RABBITMQ_FEATURE_FLAGS_FILE=$dir/feature_flags RABBITMQ_QUORUM_DIR=$dir/quorum \
    RABBITMQ_STREAM_DIR=$dir/stream ERL_EPMD_PORT=$((port + 2)) ERL_EPMD_ADDRESS=127.0.0.1 \
    ERL_AFLAGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}" \
    NOTIFY_SOCKET=$dir/notify
# the READY=1 listener: its interpreter starts while the broker boots
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
while b"READY=1" not in s.recv(4096): pass' "$NOTIFY_SOCKET" &
ready=$!
until [ -S "$NOTIFY_SOCKET" ]; do sleep 0.001; done
(
    setpriv --pdeathsig KILL epmd -address 127.0.0.1 &
    until epmd -names >/dev/null 2>&1; do sleep 0.005; done
    exec "$bin/rabbitmq-server"
) >/dev/null 2>&1 &
pid=$!
wait "$ready"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
