#!/usr/bin/env bats
# The rabbitmq recipe: no config needed, pika publishes and consumes as the
# generated user (guest does not exist), reset drops queues, the variables,
# and nothing left, the private epmd included, after a stop, a SIGKILLed
# helper or a SIGKILLed owner; a missing server, a misspelt option.
# RabbitMQ takes seconds to boot: three starts in all.

load helpers

setup() {
    tether_setup
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] ||
        skip "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
    "$PY" -c 'import pika' 2>/dev/null || skip "pika is not installed (apt-get install python3-pika)"
}

teardown() { tether_teardown; }

# amqp ACTION: one pika step against $RABBITMQ_URL
#   put Q MSG: declare Q, publish MSG with a confirm;  get Q: print one message
#   has Q: exit 0 when Q exists;  guest: try guest/guest, print the outcome
amqp() {
    "$PY" - "$@" <<'EOF'
import os, sys, pika
act, args = sys.argv[1], sys.argv[2:]
params = pika.URLParameters(os.environ["RABBITMQ_URL"])
if act == "guest":
    params.credentials = pika.PlainCredentials("guest", "guest")
    try:
        pika.BlockingConnection(params)
        print("guest got in")
    except pika.exceptions.ProbableAuthenticationError:
        print("guest refused")
    sys.exit(0)
ch = pika.BlockingConnection(params).channel()
if act == "put":
    ch.confirm_delivery()
    ch.queue_declare(args[0])
    ch.basic_publish("", args[0], args[1].encode())
elif act == "get":
    _, _, body = ch.basic_get(args[0], auto_ack=True)
    print(body.decode())
elif act == "has":
    try:
        ch.queue_declare(args[0], passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        print(e)
        sys.exit(1)
EOF
}

# pids of the instance's processes (server, epmd, erl_child_setup...)
tree_pids() { pstree -p "$1" | grep -o '([0-9]*)' | tr -d '()'; }

@test "rabbitmq with no config: pika publishes and consumes; reset drops queues; status; variables" {
    eval "$(tether start rabbitmq)"
    pw="$TETHER_RABBITMQ_PASSWORD"
    [[ $pw =~ ^[0-9a-f]{32}$ ]]
    port="$TETHER_RABBITMQ_PORT"
    [ "$TETHER_RABBITMQ_HOST" = 127.0.0.1 ]
    [ "$TETHER_RABBITMQ_USER" = tether ]
    [ "$TETHER_RABBITMQ_VHOST" = / ]
    [ "$TETHER_RABBITMQ_URL" = "amqp://tether:$pw@127.0.0.1:$port/%2F" ]
    [ "$RABBITMQ_URL" = "$TETHER_RABBITMQ_URL" ]
    [ "$AMQP_URL" = "$TETHER_RABBITMQ_URL" ]
    # the password is on no command line of the instance's processes
    for p in $(cookie_pids); do
        run ! grep -q "$pw" "/proc/$p/cmdline"
    done
    amqp put work hello
    [ "$(amqp get work)" = hello ]
    amqp put work again
    [ "$(amqp guest)" = "guest refused" ]
    run tether status
    assert_status 0
    # the private epmd: the server's child, on the service's own port
    pid="$(cat "$TETHER_RABBITMQ_PIDFILE")"
    epmd="$(pgrep -P "$pid" -x epmd)"
    [ -n "$epmd" ]
    run env ERL_EPMD_PORT="$(tr '\0' '\n' <"/proc/$epmd/environ" | sed -n 's/^ERL_EPMD_PORT=//p')" epmd -names
    assert_status 0
    [[ $output == *"name rabbit at port"* ]]
    # the reset listener inside the broker: loopback, and the password or nothing
    ctl="$(sed -n 's/.*gen_tcp:listen(\([0-9]*\),.*/\1/p' "$TETHER_RABBITMQ_DIR/tether_ctl.erl")"
    [ "$(stat -c %a "$TETHER_RABBITMQ_DIR/tether_ctl.erl")" = 600 ]
    run "$PY" -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"RESET guess\r\n"); print(s.recv(100).decode().strip())' "$ctl"
    [ "$output" = "ERR not the password" ]
    amqp has work
    run tether reset rabbitmq
    assert_status 0
    run amqp has work
    assert_status 1
    [[ $output == *"no queue 'work'"* ]]
    # the user still works after the reset, in a vhost made anew
    amqp put fresh one
    [ "$(amqp get fresh)" = one ]
    eval "$(tether stop)"
    [ -z "${RABBITMQ_URL:-}" ]
    wait_gone "$epmd"
}

@test "SIGKILL of the helper: beam, its epmd, erl_child_setup and inet_gethost die with it" {
    eval "$(tether start rabbitmq)"
    helper="$TETHER_RABBITMQ_CONTROL_PID"
    pids="$(tree_pids "$helper")"
    pstree "$helper" | grep -q epmd
    pstree "$helper" | grep -q erl_child_setup
    kill -KILL "$helper"
    # no gc: every process of the tree goes by itself (PDEATHSIG, then EOF)
    for p in $pids; do wait_gone "$p"; done
    [ -z "$(cookie_pids)" ]
    run tether gc
    assert_status 0
    eval "$(tether stop 2>/dev/null)" || true
}

@test "tether run rabbitmq -- CMD: SIGKILL of the server takes its epmd; of the owner, the rest" {
    # "$TETHER", not the tether function: $! must be tether itself
    "$TETHER" run rabbitmq -- sh -c 'echo $$ >"$WORK/cmd"; env >"$WORK/env.tmp"; mv "$WORK/env.tmp" "$WORK/env"; exec sleep 600' 3>&- &
    owner=$!
    wait_file "$WORK/env" 120
    grep -q '^AMQP_URL=amqp://tether:' "$WORK/env"
    helper="$(sed -n 's/^TETHER_RABBITMQ_CONTROL_PID=//p' "$WORK/env")"
    pids="$(tree_pids "$helper")"
    server="$(pgrep -P "$helper" -x beam.smp)"
    epmd="$(pgrep -P "$server" -x epmd)"
    [ -n "$epmd" ]
    # the server SIGKILLed: its epmd goes with it (its parent death signal)
    kill -KILL "$server"
    wait_gone "$epmd"
    kill -KILL "$owner"
    wait_gone "$helper" 30
    for p in $pids; do wait_gone "$p"; done
    # the command is the owner's child, not the instance's: ours to end
    kill -KILL "$(cat "$WORK/cmd")"
}

@test "rabbitmq: a missing server names its package; a misspelt option is FILE:LINE" {
    cfg="$(config missing.ini <<'EOF'
[rabbitmq]
bin = /nonexistent/rabbitmq-server
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    [[ $output == *"install the Debian package rabbitmq-server"* ]]
    cfg="$(config typo.ini <<'EOF'
[rabbitmq]
vhosts = /x
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    [[ $output == *"typo.ini:2: [rabbitmq] unknown key 'vhosts': did you mean 'vhost'?"* ]]
}
