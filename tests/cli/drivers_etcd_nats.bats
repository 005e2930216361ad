#!/usr/bin/env bats
# The etcd and nats recipes: no config needed, the real clients (etcdctl;
# for NATS, which Debian packages no client of, its text protocol from
# Python) connect through the native variables, reset really empties etcd,
# the NATS token keeps other clients out and stays off the command line,
# SIGKILL of the helper or of the owner leaves nothing, and the failure
# paths (a missing server, a bad option) name the fix.

load helpers

setup() { tether_setup; }

need_etcd() {
    command -v etcd >/dev/null || skip "etcd is not installed (apt-get install etcd-server)"
    command -v etcdctl >/dev/null || skip "etcdctl is not installed (apt-get install etcd-client)"
}

# Debian's nats-server is in /usr/sbin, not on a normal user's PATH
need_nats() {
    [ -x /usr/sbin/nats-server ] || skip "nats-server is not installed (apt-get install nats-server)"
}

teardown() { tether_teardown; }

# nats_client URL: as a NATS client would, parse URL (nats://TOKEN@HOST:PORT),
# CONNECT with the token, subscribe to "t", publish "hello" to it, and
# print the server's first answer that is not INFO/PONG/+OK, e.g.
# "MSG t 1 5" or "-ERR 'Authorization Violation'"
nats_client() {
    "$PY" - "$1" <<'EOF'
import json, socket, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
s = socket.create_connection((u.hostname, u.port), timeout=5)
f = s.makefile("rb")
assert f.readline().startswith(b"INFO ")
opts = {"verbose": False, "pedantic": False}
if u.username:
    opts["auth_token"] = urllib.parse.unquote(u.username)
s.sendall(b"CONNECT %s\r\nSUB t 1\r\nPUB t 5\r\nhello\r\nPING\r\n" % json.dumps(opts).encode())
for line in f:
    line = line.decode().rstrip("\r\n")
    if line not in ("PONG", "+OK") and not line.startswith("INFO "):
        print(line)
        if line.startswith("MSG"):
            print(f.readline().decode().rstrip("\r\n"))
        break
EOF
}

@test "etcd with no config: etcdctl reads ETCDCTL_ENDPOINTS, the private unix socket" {
    need_etcd
    run tether run etcd -- sh -c '
        etcdctl put greeting hello && etcdctl get --print-value-only greeting
        env | sort > "$WORK/env"
        stat -c %a "$TETHER_ETCD_DIR" "$TETHER_ETCD_DIR/data" > "$WORK/modes"
        ls "$TETHER_ETCD_DIR" > "$WORK/ls"
        tr "\0" " " < /proc/$(cat "$TETHER_ETCD_PIDFILE")/cmdline > "$WORK/cmdline"'
    assert_status 0
    [ "${lines[0]}" = OK ]
    [ "${lines[1]}" = hello ]
    sock="$(sed -n 's/^TETHER_ETCD_SOCKET=//p' "$WORK/env")"
    [[ $sock == "$TETHER_DIR"/*/etcd/etcd.sock:1 ]]
    grep -qx "TETHER_ETCD_URL=unix://$sock" "$WORK/env"
    grep -qx "ETCDCTL_ENDPOINTS=unix://$sock" "$WORK/env"
    run ! grep -q '^TETHER_ETCD_PORT=' "$WORK/env"
    # the client and peer sockets and the data are in the private dir
    [ "$(cat "$WORK/modes")" = "$(printf '700\n700')" ]
    grep -qx 'etcd.sock:1' "$WORK/ls"
    grep -qx 'peer.sock:1' "$WORK/ls"
    grep -q -- '--heartbeat-interval 10 --election-timeout 50 ' "$WORK/cmdline"
}

@test "etcd: reset deletes every key, status is healthy, stop unsets the variables" {
    need_etcd
    eval "$(tether start etcd)"
    [ -n "$ETCDCTL_ENDPOINTS" ]
    etcdctl put a 1 >/dev/null
    etcdctl put /deep/b 2 >/dev/null
    etcdctl put "" empty-key-is-refused 2>/dev/null || true
    [ "$(etcdctl get --prefix "" --keys-only | grep -c .)" = 2 ]
    run tether reset etcd
    assert_status 0
    [ -z "$(etcdctl get --prefix "")" ]
    # it still works after a reset
    etcdctl put c 3 >/dev/null
    [ "$(etcdctl get --print-value-only c)" = 3 ]
    run tether status
    assert_status 0
    assert_output_has "[etcd] ready"
    eval "$(tether stop)"
    [ -z "${ETCDCTL_ENDPOINTS:-}" ]
    [ -z "${TETHER_ETCD_URL:-}" ]
}

@test "etcd: python-etcd3 (gRPC) reaches the unix socket from TETHER_ETCD_URL" {
    need_etcd
    "$PY" -c 'import etcd3' 2>/dev/null || skip "python3-etcd3 is not installed (apt-get install python3-etcd3)"
    run tether run etcd -- "$PY" -c '
import os, etcd3
host, port = os.environ["TETHER_ETCD_URL"].rsplit(":", 1)
c = etcd3.client(host=host, port=int(port))
c.put("k", "from python")
print(c.get("k")[0].decode())'
    assert_status 0
    [ "${lines[-1]}" = "from python" ]
}

@test "etcd stopped (SIGSTOP): status says it is unhealthy" {
    need_etcd
    eval "$(tether start etcd)"
    pid="$(cat "$TETHER_ETCD_PIDFILE")"
    kill -STOP "$pid"
    run tether status
    kill -CONT "$pid"
    [ "$status" -ne 0 ]
    assert_output_has "[etcd]"
    assert_output_has "http:/health"
    eval "$(tether stop)"
}

@test "nats with no config: a client gets its message back with the token of NATS_URL" {
    need_nats
    run tether run nats -- sh -c '
        '"$(declare -f nats_client)"'
        nats_client "$NATS_URL"
        env | sort > "$WORK/env"
        stat -c %a "$TETHER_NATS_DIR/nats.conf" > "$WORK/mode"
        cp "$TETHER_NATS_DIR/nats.conf" "$WORK/nats.conf"
        ls -A "$TETHER_NATS_DIR" > "$WORK/ls"
        tr "\0" " " < /proc/$(cat "$TETHER_NATS_PIDFILE")/cmdline > "$WORK/cmdline"'
    assert_status 0
    [ "${lines[0]}" = "MSG t 1 5" ]
    [ "${lines[1]}" = hello ]
    port="$(sed -n 's/^TETHER_NATS_PORT=//p' "$WORK/env")"
    token="$(sed -n 's/^TETHER_NATS_TOKEN=//p' "$WORK/env")"
    [[ $token =~ ^[0-9a-f]{32}$ ]]
    grep -qx "TETHER_NATS_HOST=127.0.0.1" "$WORK/env"
    grep -qx "TETHER_NATS_URL=nats://$token@127.0.0.1:$port" "$WORK/env"
    grep -qx "NATS_URL=nats://$token@127.0.0.1:$port" "$WORK/env"
    # the token: in the 0600 config, not on the command line
    [ "$(cat "$WORK/mode")" = 600 ]
    grep -q "token: \"$token\"" "$WORK/nats.conf"
    run ! grep -q "$token" "$WORK/cmdline"
    # no monitoring port, no JetStream store: the config is all there is
    [ "$(cat "$WORK/ls")" = nats.conf ]
    run ! grep -q 'http\|monitor\|jetstream' "$WORK/nats.conf"
}

@test "nats: a client without the token, or with another, is refused" {
    need_nats
    eval "$(tether start nats)"
    run nats_client "nats://127.0.0.1:$TETHER_NATS_PORT"
    [ "$output" = "-ERR 'Authorization Violation'" ]
    run nats_client "nats://0123456789abcdef0123456789abcdef@127.0.0.1:$TETHER_NATS_PORT"
    [ "$output" = "-ERR 'Authorization Violation'" ]
    run nats_client "$NATS_URL"
    [ "${lines[0]}" = "MSG t 1 5" ]
    # nothing to reset in core NATS: the health check runs, and passes
    run tether reset nats
    assert_status 0
    run tether status
    assert_status 0
    assert_output_has "[nats] ready"
    eval "$(tether stop)"
    [ -z "${NATS_URL:-}" ]
}

@test "etcd and nats in one run; SIGKILL of the helper leaves no server" {
    need_etcd
    need_nats
    eval "$(tether start etcd nats)"
    epid="$(cat "$TETHER_ETCD_PIDFILE")"
    npid="$(cat "$TETHER_NATS_PIDFILE")"
    [ "$(cat /proc/$epid/comm)" = etcd ]
    [ "$(cat /proc/$npid/comm)" = nats-server ]
    kill -KILL "$TETHER_ETCD_CONTROL_PID"
    wait_gone "$TETHER_ETCD_CONTROL_PID"
    wait_gone "$epid"
    wait_gone "$npid"
    run tether gc
    assert_status 0
    [ -z "$(ls -A "$TETHER_DIR")" ]
    eval "$(tether stop 2>/dev/null)" || true
    [ -z "${ETCDCTL_ENDPOINTS:-}" ]
    [ -z "${NATS_URL:-}" ]
}

@test "SIGKILL of the owner (tether run) leaves no etcd or nats-server" {
    need_etcd
    need_nats
    "$TETHER" run etcd nats -- sh -c '
        cat "$TETHER_ETCD_PIDFILE" "$TETHER_NATS_PIDFILE" > "$WORK/pids.tmp"
        mv "$WORK/pids.tmp" "$WORK/pids"
        exec sleep 100' >"$WORK/run.out" 2>&1 &
    runpid=$!
    wait_file "$WORK/pids" 30
    kill -KILL "$runpid"
    wait "$runpid" || true
    for p in $(cat "$WORK/pids"); do wait_gone "$p"; done
    wait_for 10 sh -c '[ -z "$(ls -A "$TETHER_DIR")" ]'
}

@test "a missing etcd or nats-server names its Debian package" {
    cfg="$(config missing.ini <<'EOF'
[etcd]
bin = /nonexistent

[nats]
bin = /nonexistent
EOF
)"
    run tether -f "$cfg" run etcd -- true
    assert_status 125
    assert_output_has "[etcd] /nonexistent: no such executable file: fix the path, or install the Debian package etcd-server (apt-get install etcd-server)"
    run tether -f "$cfg" run nats -- true
    assert_status 125
    assert_output_has "[nats] /nonexistent: no such executable file: fix the path, or install the Debian package nats-server (apt-get install nats-server)"
}

@test "bad options are FILE:LINE errors" {
    cfg="$(config bad.ini <<'EOF'
[etcd]
election_timeout = 2

[nats]
max_payloads = 10
EOF
)"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "bad.ini:2: [etcd] election_timeout = 2"
    assert_output_has "bad.ini:5: [nats] unknown key 'max_payloads': did you mean 'max_payload'?"
}

@test "options reach the servers: election timeout and max_payload" {
    need_etcd
    need_nats
    cfg="$(config opts.ini <<'EOF'
[etcd]
heartbeat_interval = 20
election_timeout = 100

[nats]
max_payload = 4096
EOF
)"
    run tether -f "$cfg" run -- sh -c '
        tr "\0" " " < /proc/$(cat "$TETHER_ETCD_PIDFILE")/cmdline
        echo
        grep max_payload "$TETHER_NATS_DIR/nats.conf"
        etcdctl put k v'
    assert_status 0
    assert_output_has "--heartbeat-interval 20 --election-timeout 100 "
    assert_output_has "max_payload: 4096"
    assert_output_has "OK"
}
