#!/usr/bin/env bats
# TCP ports against a hostile local user (issue 9, item 2).
#
# The hijacker (port_hijacker.py) does what any local user can: it binds
# 127.0.0.1:PORT before the service does, the moment tether has picked the
# port (a real attacker reads it from /proc/net/unix, where the reservation
# shows it).  tether must never hand out the hijacker's listener as the
# service: readiness counts only a listener held by the service's own
# processes.  On port = auto it tries another port; after its retries, or
# on a fixed port, it fails and says that another process listens there.
# As root the hijacker runs as nobody (another user: the attack); as a
# normal user it runs as that user, outside the service's processes, which
# must be refused just the same.
#
# To make the race deterministic, the service's program is wrapped by a
# script that hands the hijacker its port, waits (bounded) until the
# hijacker listens there, then runs the real server; the "armed" file says
# which attempts do so.

# The squatter (port_squatter.py) binds every reservation name another user
# could use to deny ports: tether must still get a port.

load helpers

setup() {
    tether_setup
    _HOSTILE=""
}

teardown() {
    stop_hostile
    tether_teardown
}

# the hijackers and squatters this test started
stop_hostile() {
    local p
    for p in $_HOSTILE; do kill -KILL "$p" 2>/dev/null || true; done
    for p in $_HOSTILE; do wait_gone "$p" 10 || true; done
    _HOSTILE=""
}

# another user when we are root, else ourselves; a command prefix rather
# than a function, so that `$AS_OTHER cmd &` makes $! the command itself
AS_OTHER=""
[ "$EUID" -ne 0 ] || AS_OTHER="setpriv --reuid=nobody --regid=nogroup --clear-groups"

other_uid() { if [ "$EUID" -eq 0 ]; then id -u nobody; else id -u; fi; }

# hijack REPLY: start the hijacker (the ports it takes go to
# $WORK/hijacked); it takes those the wrapper appends to $WORK/drop/ports,
# which another user must be able to read
hijack() {
    chmod 711 "$WORK"
    mkdir -p -m 755 "$WORK/drop"
    : >"$WORK/drop/ports"
    chmod 644 "$WORK/drop/ports"
    : >"$WORK/hijacked"
    $AS_OTHER "$PY" -u - "$1" "$WORK/drop/ports" 60 <"$BATS_TEST_DIRNAME/port_hijacker.py" \
        >"$WORK/hijacked" 2>"$WORK/hijacker.err" &
    _HOSTILE+=" $!"
    wait_for 10 grep -qx watching "$WORK/hijacked"
}

hijacked_ports() { grep -v watching "$WORK/hijacked" | tr '\n' ' '; }

# a free port outside tether's auto range
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wrapper BIN LABEL: a script $WORK/wrap that, while $WORK/armed exists
# (armed "once": only the first attempt), hands the service's port to the
# hijacker and waits until it listens there, then runs BIN with its
# arguments
wrapper() {
    cat >"$WORK/wrap" <<EOF
#!/bin/sh
if [ -e "$WORK/armed" ]; then
    grep -qx once "$WORK/armed" && rm -f "$WORK/armed"
    echo "\$TETHER_$2_PORT" >>"$WORK/drop/ports"
    hex=\$(printf '%04X' "\$TETHER_$2_PORT")
    i=0
    until grep -q "^ *[0-9]*: 0100007F:\$hex 00000000:0000 0A " /proc/net/tcp; do
        i=\$((i + 1))
        [ \$i -lt 1000 ] || { echo "wrap: nobody took port \$TETHER_$2_PORT" >&2; break; }
        sleep 0.01
    done
fi
exec $1 "\$@"
EOF
    chmod +x "$WORK/wrap"
}

# not_hijacked PORT: PORT is none of those the hijacker took
not_hijacked() {
    local taken
    taken="$(hijacked_ports)"
    [ -n "$taken" ] || { echo "the hijacker took no port:" >&2; cat "$WORK/hijacker.err" >&2; return 1; }
    case " $taken" in *" $1 "*) echo "tether handed out the hijacker's port $1" >&2; return 1 ;; esac
}

@test "ready = tcp: a listener that another process bound first is never the service; auto retries" {
    wrapper "$TSERVER" WEB
    echo once >"$WORK/armed"
    cfg="$(config web.ini <<EOF
[web]
command = $WORK/wrap --tcp \${port}
port = auto
EOF
)"
    hijack 'hijacked\n'
    run tether -f "$cfg" run -- sh -c "$(declare -f ping_tcp); PY=$PY"'; echo "port=$TETHER_WEB_PORT"; ping_tcp "$TETHER_WEB_PORT"; "$1" logs web' sh "$TETHER"
    assert_status 0
    port="$(sed -n 's/^port=//p' <<<"$output")"
    not_hijacked "$port"
    # the service's own listener answered on the port handed out
    assert_output_has pong
    # and the retry is no secret: a note on stderr, a line in the log
    taken="$(hijacked_ports | awk '{print $1}')"
    assert_output_has "tether: [web] port $taken was taken by uid $(other_uid), retried on $port"
    assert_output_has "tether: port $taken was taken by uid $(other_uid): starting again on port $port"
}

@test "a retried port is still a success: -q says nothing about it" {
    wrapper "$TSERVER" WEB
    echo once >"$WORK/armed"
    cfg="$(config web.ini <<EOF
[web]
command = $WORK/wrap --tcp \${port}
port = auto
EOF
)"
    hijack 'hijacked\n'
    run tether -q -f "$cfg" run -- sh -c 'echo "port=$TETHER_WEB_PORT"'
    assert_status 0
    port="$(sed -n 's/^port=//p' <<<"$output")"
    not_hijacked "$port"
    [ "$output" = "port=$port" ]
}

@test "ready = tcp: a hijacker on every port auto tries fails the start and says who listens" {
    wrapper "$TSERVER" WEB
    echo always >"$WORK/armed"
    cfg="$(config web.ini <<EOF
[web]
command = $WORK/wrap --tcp \${port}
port = auto
EOF
)"
    hijack 'hijacked\n'
    run tether -f "$cfg" run -- echo ran-on-a-hijacked-port
    [ "$status" -ne 0 ]
    [[ $output != *ran-on-a-hijacked-port* ]]
    assert_output_has "[web] cannot get a port of its own: another process (uid $(other_uid))"
    assert_output_has "ss -ltnp"
    [ "$(hijacked_ports | wc -w)" -eq 4 ] # the first port and 3 retries
    # each port it gave up, and who held it
    read -r p1 p2 p3 p4 <<<"$(hijacked_ports)"
    u="$(other_uid)"
    assert_output_has "(before that, port $p1 was taken by uid $u, retried on $p2; port $p2 was taken by uid $u, retried on $p3; port $p3 was taken by uid $u, retried on $p4)"
}

@test "ready = tcp on a fixed port: a hijacker's listener is an error naming the port" {
    port="$(free_port)"
    wrapper "$TSERVER" WEB
    echo always >"$WORK/armed"
    cfg="$(config web.ini <<EOF
[web]
command = $WORK/wrap --tcp \${port}
port = $port
EOF
)"
    hijack 'hijacked\n'
    run tether -f "$cfg" run -- echo ran-on-a-hijacked-port
    [ "$status" -ne 0 ]
    [[ $output != *ran-on-a-hijacked-port* ]]
    [ "$(hijacked_ports)" = "$port " ]
    assert_output_has "[web] does not own port $port: another process (uid $(other_uid))"
    assert_output_has "choose another port"
}

@test "ready = exec: a probe that a hijacker answers does not make the service ready either" {
    wrapper "$TSERVER" WEB
    echo always >"$WORK/armed"
    cfg="$(config web.ini <<EOF
[web]
command = $WORK/wrap --tcp \${port}
port = auto
ready = exec:$PY -c "import socket; socket.create_connection(('127.0.0.1', \${port}))"
EOF
)"
    hijack 'hijacked\n'
    # bounded: the code before the ownership check could hang here
    run timeout 60 "$TETHER" -f "$cfg" run -- echo ran-on-a-hijacked-port
    [ "$status" -ne 0 ]
    [[ $output != *ran-on-a-hijacked-port* ]]
    assert_output_has "another process (uid $(other_uid))"
}

# memcached on TCP through the wrapper (wrapper ... MC), whose port is hijacked
mc_config() {
    config mc.ini <<EOF
[mc]
driver = memcached
tcp = yes
memory = 16
bin = $WORK/wrap
EOF
}

@test "memcached tcp = yes: a hijacker answering VERSION is never the service" {
    command -v memcached >/dev/null || skip "memcached is not installed (apt-get install memcached)"
    wrapper "$(command -v memcached)" MC
    echo once >"$WORK/armed"
    cfg="$(mc_config)"
    hijack 'VERSION hijacked\r\n'
    run tether -f "$cfg" run -- sh -c 'echo "$TETHER_MC_PORT"'
    assert_status 0
    not_hijacked "$output"
}

@test "memcached tcp = yes: a hijacker on every port fails the start" {
    command -v memcached >/dev/null || skip "memcached is not installed (apt-get install memcached)"
    wrapper "$(command -v memcached)" MC
    echo always >"$WORK/armed"
    cfg="$(mc_config)"
    hijack 'VERSION hijacked\r\n'
    run tether -f "$cfg" run -- echo ran-on-a-hijacked-port
    [ "$status" -ne 0 ]
    [[ $output != *ran-on-a-hijacked-port* ]]
    assert_output_has "[mc] cannot get a port of its own: another process (uid $(other_uid))"
}

@test "redis tcp = yes, ready = driver: a hijacker answering PONG is never the service" {
    command -v redis-server >/dev/null || skip "redis-server is not installed (apt-get install redis-server)"
    command -v redis-cli >/dev/null || skip "redis-cli is not installed (apt-get install redis-tools)"
    wrapper "$(command -v redis-server)" RD
    echo once >"$WORK/armed"
    cfg="$(config rd.ini <<EOF
[rd]
driver = redis
tcp = yes
ready = driver
bin = $WORK/wrap
EOF
)"
    hijack '+PONG\r\n'
    run --separate-stderr tether -f "$cfg" run -- sh -c 'echo "$TETHER_RD_PORT"; redis-cli --no-auth-warning -u "$TETHER_RD_URL" info server | grep -c ^redis_version'
    assert_status 0
    not_hijacked "${lines[0]}"
    [ "${lines[1]}" = 1 ]
    [[ $stderr == *"tether: [rd] port "*" was taken by uid $(other_uid), retried on ${lines[0]}"* ]]
}

@test "redis tcp = yes: a hijacker on every port fails the start, whatever the readiness" {
    command -v redis-server >/dev/null || skip "redis-server is not installed (apt-get install redis-server)"
    wrapper "$(command -v redis-server)" RD
    for ready in driver notify; do
        echo always >"$WORK/armed"
        cfg="$(config rd.ini <<EOF
[rd]
driver = redis
tcp = yes
ready = $ready
bin = $WORK/wrap
EOF
)"
        hijack '+PONG\r\n'
        run tether -f "$cfg" run -- echo ran-on-a-hijacked-port
        [ "$status" -ne 0 ]
        [[ $output != *ran-on-a-hijacked-port* ]]
        assert_output_has "[rd] "
        assert_output_has "another process (uid $(other_uid))"
        stop_hostile
    done
}

@test "another user squatting every reservation name cannot deny tether a port" {
    [ "$EUID" -eq 0 ] || skip "needs root, to run the squatter as another user (nobody)"
    [ "$(ulimit -Hn)" -ge 17000 ] || skip "the squatter needs 17000 fds (ulimit -Hn is $(ulimit -Hn))"
    # the old global names, and the per-uid names of our uid
    for who in - "$EUID"; do
        $AS_OTHER "$PY" -u - "$who" 60 <"$BATS_TEST_DIRNAME/port_squatter.py" >"$WORK/squat$who" 2>&1 &
        _HOSTILE+=" $!"
    done
    wait_for 30 grep -qx ready "$WORK/squat-"
    wait_for 30 grep -qx ready "$WORK/squat$EUID"
    cfg="$(config web.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
EOF
)"
    run tether -f "$cfg" run -- sh -c "$(declare -f ping_tcp); PY=$PY"'; ping_tcp "$TETHER_WEB_PORT"'
    assert_status 0
    [ "$output" = pong ]
}

@test "one user's instances still never share a port: a port another instance reserved is refused" {
    port="$(free_port)"
    cfg="$(config a.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = $port
EOF
)"
    eval "$(tether -f "$cfg" start)"
    cp "$cfg" "$WORK/b.ini"
    run tether -f "$WORK/b.ini" run -- echo ran-on-a-taken-port
    [ "$status" -ne 0 ]
    assert_output_has "port $port is already reserved by another tether instance of yours"
    eval "$(tether stop)"
}


@test "root without CAP_SYS_PTRACE: PostgreSQL tcp = yes, running as postgres, is still its own" {
    [ "$EUID" -eq 0 ] || skip "needs root (the server runs as postgres only under root)"
    command -v pg_ctlcluster >/dev/null || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 ||
        skip "PostgreSQL is not installed (apt-get install postgresql)"
    # as in a container: root may list the postgres user's /proc/PID/fd but
    # not read its links; the listener's uid (postgres) vouches for it
    cfg="$(config pg.ini <<'EOF'
[pg]
driver = postgresql
tcp = yes
EOF
)"
    run setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace "$TETHER" -f "$cfg" run -- \
        sh -c 'psql -X -qAt "$TETHER_PG_URL" -c "select 7*6" </dev/null'
    assert_status 0
    [ "${lines[-1]}" = 42 ]
}

@test "a daemonising server's listener, adopted by the helper, is still the service's own" {
    # the server double-forks away from the main process: the helper, a
    # child subreaper, adopts it, and its listener counts as the service's
    cfg="$(config web.ini <<EOF
[web]
command = sh -c '($TSERVER --tcp \${port} &); exec sleep 1000'
port = auto
EOF
)"
    run tether -f "$cfg" run -- sh -c "$(declare -f ping_tcp); PY=$PY"'; ping_tcp "$TETHER_WEB_PORT"'
    assert_status 0
    [ "$output" = pong ]
}

@test "a retry on another port: the first attempt's exec probe, still running, does not make the next one ready" {
    # attempt 1 fails with "address in use" while its probe is running;
    # attempt 2 never listens.  The first probe then succeeds: it must not
    # count for attempt 2 (it used to, with no listener on the new port).
    cat >"$WORK/svc.sh" <<EOF
#!/bin/sh
if [ ! -e "$WORK/attempt1" ]; then
    : >"$WORK/attempt1"
    until [ -e "$WORK/probing" ]; do sleep 0.01; done
    echo "bind: Address already in use" >&2
    exit 1
fi
: >"$WORK/attempt2"
exec sleep 1000
EOF
    cat >"$WORK/probe.sh" <<EOF
#!/bin/sh
[ ! -e "$WORK/probing" ] || exit 1
: >"$WORK/probing"
until [ -e "$WORK/attempt2" ]; do sleep 0.01; done
exit 0
EOF
    chmod +x "$WORK/svc.sh" "$WORK/probe.sh"
    cfg="$(config web.ini <<EOF
[web]
command = $WORK/svc.sh
port = auto
ready = exec:$WORK/probe.sh
timeout = 3
EOF
)"
    run timeout 60 "$TETHER" -f "$cfg" run -- echo ran-before-ready
    [ "$status" -ne 0 ]
    [[ $output != *ran-before-ready* ]]
    assert_output_has "did not become ready within 3 s"
    [ -e "$WORK/attempt2" ]
}
