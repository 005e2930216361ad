#!/usr/bin/env bats
# The redis and memcached drivers: no config needed, real clients connect,
# reset really empties, TCP variants, several services of one driver, gc
# after a SIGKILLed helper, a missing binary, many instances at once.

load helpers

setup() {
    tether_setup
    command -v redis-server >/dev/null || skip "redis-server is not installed (apt-get install redis-server)"
    command -v redis-cli >/dev/null || skip "redis-cli is not installed (apt-get install redis-tools)"
    command -v memcached >/dev/null || skip "memcached is not installed (apt-get install memcached)"
}

teardown() { tether_teardown; }

# mc ADDRESS REQUEST: send REQUEST (with \r\n escapes) to memcached at
# ADDRESS (a socket path or HOST:PORT) and print its reply
mc() {
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys
addr, req = sys.argv[1], sys.argv[2].encode().decode("unicode_escape").encode()
if addr.startswith("/"):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(addr)
else:
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(req)
ends = (b"END\r\n", b"STORED\r\n", b"OK\r\n", b"ERROR\r\n", b"NOT_FOUND\r\n", b"DELETED\r\n")
buf = b""
while not (buf.endswith(ends) or (buf.startswith(b"VERSION ") and buf.endswith(b"\r\n"))):
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
sys.stdout.write(buf.decode().replace("\r\n", "\n"))
EOF
}

@test "redis with no config file: redis-cli gets PONG over the private socket" {
    run tether run redis -- sh -c '
        redis-cli -s "$TETHER_REDIS_SOCKET" ping
        env | sort > "$WORK/env"
        stat -c %a "$TETHER_REDIS_SOCKET" > "$WORK/mode"
        cp "$TETHER_REDIS_DIR/redis.conf" "$WORK/redis.conf"
        cat "$TETHER_REDIS_CONFIGFILE" > "$WORK/configfile"'
    assert_status 0
    [ "$output" = PONG ]
    sock="$(sed -n 's/^TETHER_REDIS_SOCKET=//p' "$WORK/env")"
    [[ $sock == "$TETHER_DIR"/*/redis/redis.sock ]]
    grep -qx "TETHER_REDIS_URL=unix://$sock?db=0" "$WORK/env"
    grep -qx "REDIS_URL=unix://$sock?db=0" "$WORK/env"
    run ! grep -q '^TETHER_REDIS_PORT=' "$WORK/env"
    run ! grep -q '^TETHER_REDIS_HOST=' "$WORK/env"
    [ "$(cat "$WORK/mode")" = 700 ]
    grep -qx 'port 0' "$WORK/redis.conf"
    grep -qx 'save ""' "$WORK/redis.conf"
    grep -qx 'appendonly no' "$WORK/redis.conf"
    grep -qx 'supervised systemd' "$WORK/redis.conf"
    # the unprefixed variable is recorded, so that stop can unset it
    grep -q '^REDIS_URL=' "$WORK/configfile"
}

@test "redis and memcached in one run" {
    run tether run redis memcached -- sh -c '
        redis-cli -s "$TETHER_REDIS_SOCKET" ping
        env | sort > "$WORK/env"'
    assert_status 0
    [ "$output" = PONG ]
    sock="$(sed -n 's/^TETHER_MEMCACHED_SOCKET=//p' "$WORK/env")"
    [[ $sock == "$TETHER_DIR"/*/memcached/memcached.sock ]]
    grep -qx "TETHER_MEMCACHED_ADDRESS=$sock" "$WORK/env"
    # libmemcached's tools read MEMCACHED_SERVERS: no --servers needed
    grep -qx "MEMCACHED_SERVERS=$sock" "$WORK/env"
    run ! grep -q '^TETHER_MEMCACHED_PORT=' "$WORK/env"
    grep -q '^REDIS_URL=unix:///' "$WORK/env"
    # memcached answers its text protocol over the socket
    run tether run memcached -- sh -c '
        stat -c %a "$TETHER_MEMCACHED_SOCKET"
        '"$(declare -f mc)"'
        mc "$TETHER_MEMCACHED_ADDRESS" "set k 0 0 5\r\nhello\r\nget k\r\n"'
    assert_status 0
    [ "${lines[0]}" = 700 ]
    [ "${lines[1]}" = STORED ]
    [ "${lines[2]}" = "VALUE k 0 5" ]
    [ "${lines[3]}" = hello ]
}

@test "two driver = redis sections are two services with their own labels" {
    cfg="$(config two.ini <<'EOF'
[cache]
driver = redis

[sessions]
driver = redis
setting.maxmemory = 10mb
EOF
)"
    run tether -f "$cfg" run -- sh -c '
        redis-cli -s "$TETHER_CACHE_SOCKET" set who cache >/dev/null
        echo "[$(redis-cli -s "$TETHER_SESSIONS_SOCKET" get who)]"
        echo "[$(redis-cli -s "$TETHER_SESSIONS_SOCKET" config get maxmemory | tail -1)]"
        echo "[$(redis-cli -s "$TETHER_CACHE_SOCKET" get who)]"
        env | sort > "$WORK/env"'
    assert_status 0
    [ "${lines[0]}" = "[]" ]
    [ "${lines[1]}" = "[10485760]" ]
    [ "${lines[2]}" = "[cache]" ]
    grep -q '^TETHER_CACHE_URL=unix:///.*/cache/redis.sock?db=0$' "$WORK/env"
    grep -q '^TETHER_SESSIONS_URL=unix:///.*/sessions/redis.sock?db=0$' "$WORK/env"
    # two redis services: no single REDIS_URL to hand out
    ! grep -q '^REDIS_URL=' "$WORK/env"
}

@test "start, reset empties redis and memcached, stop unsets REDIS_URL" {
    out="$(tether start redis memcached)"
    eval "$out"
    [[ $out == *"REDIS_URL="* ]]
    [ -n "$REDIS_URL" ]
    redis-cli -s "$TETHER_REDIS_SOCKET" set foo bar
    [ "$(redis-cli -s "$TETHER_REDIS_SOCKET" get foo)" = bar ]
    [ "$(mc "$TETHER_MEMCACHED_ADDRESS" 'set k 0 0 1\r\nx\r\n')" = STORED ]
    [ "$(mc "$TETHER_MEMCACHED_ADDRESS" 'get k\r\n' | head -1)" = "VALUE k 0 1" ]
    run tether reset redis
    assert_status 0
    [ "$(redis-cli -s "$TETHER_REDIS_SOCKET" get foo)" = "" ]
    [ "$(redis-cli -s "$TETHER_REDIS_SOCKET" dbsize)" = 0 ]
    # memcached still has its key until its own reset
    [ "$(mc "$TETHER_MEMCACHED_ADDRESS" 'get k\r\n' | head -1)" = "VALUE k 0 1" ]
    run tether reset memcached
    assert_status 0
    [ "$(mc "$TETHER_MEMCACHED_ADDRESS" 'get k\r\n')" = END ]
    # again, on the kept connections; and status is healthy
    redis-cli -s "$TETHER_REDIS_SOCKET" set foo bar
    run tether reset
    assert_status 0
    [ "$(redis-cli -s "$TETHER_REDIS_SOCKET" dbsize)" = 0 ]
    run tether status
    assert_status 0
    out="$(tether stop)"
    [[ $out == *REDIS_URL* ]]
    eval "$out"
    [ -z "${REDIS_URL:-}" ]
    [ -z "${MEMCACHED_SERVERS:-}" ]
    [ -z "${TETHER_REDIS_CONTROL_PID:-}" ]
}

@test "tcp = yes: redis and memcached on 127.0.0.1 with a reserved port" {
    cfg="$(config tcp.ini <<'EOF'
[redis]
tcp = yes

[memcached]
tcp = yes
memory = 16
EOF
)"
    run --separate-stderr tether -f "$cfg" run -- sh -c '
        REDISCLI_AUTH="$TETHER_REDIS_PASSWORD" redis-cli -h "$TETHER_REDIS_HOST" -p "$TETHER_REDIS_PORT" ping
        redis-cli --no-auth-warning -u "$REDIS_URL" ping
        env | sort > "$WORK/env"
        '"$(declare -f mc)"'
        mc "$TETHER_MEMCACHED_ADDRESS" "stats\r\n" | grep limit_maxbytes
        mc "$TETHER_MEMCACHED_HOST:$TETHER_MEMCACHED_PORT" "version\r\n"'
    assert_status 0
    [ "${lines[0]}" = PONG ]
    [ "${lines[1]}" = PONG ]
    [[ ${lines[2]} == "STAT limit_maxbytes 16777216"* ]]
    [[ ${lines[3]} == "VERSION "* ]]
    port="$(sed -n 's/^TETHER_REDIS_PORT=//p' "$WORK/env")"
    mport="$(sed -n 's/^TETHER_MEMCACHED_PORT=//p' "$WORK/env")"
    [ -n "$port" ]
    [ -n "$mport" ]
    [ "$port" != "$mport" ]
    pw="$(sed -n 's/^TETHER_REDIS_PASSWORD=//p' "$WORK/env")"
    [ -n "$pw" ]
    grep -qx "TETHER_REDIS_URL=redis://default:$pw@127.0.0.1:$port/0" "$WORK/env"
    grep -qx "REDIS_URL=redis://default:$pw@127.0.0.1:$port/0" "$WORK/env"
    grep -qx "TETHER_MEMCACHED_ADDRESS=127.0.0.1:$mport" "$WORK/env"
    grep -qx "TETHER_MEMCACHED_HOST=127.0.0.1" "$WORK/env"
    run ! grep -q '^TETHER_REDIS_SOCKET=' "$WORK/env"
    ! grep -q '^TETHER_MEMCACHED_SOCKET=' "$WORK/env"
}

@test "SIGKILL of the helper, then gc: no redis-server or memcached is left" {
    eval "$(tether start redis memcached)"
    rpid="$(cat "$TETHER_REDIS_PIDFILE")"
    mpid="$(cat "$TETHER_MEMCACHED_PIDFILE")"
    helper="$TETHER_REDIS_CONTROL_PID"
    [ "$(cat /proc/$rpid/comm)" = redis-server ]
    [ "$(cat /proc/$mpid/comm)" = memcached ]
    kill -KILL "$helper"
    wait_gone "$helper"
    run tether gc
    assert_status 0
    is_gone "$rpid"
    is_gone "$mpid"
    [ -z "$(ls -A "$TETHER_DIR")" ]
    # stop on the dead instance still clears the service's variables
    eval "$(tether stop 2>/dev/null)" || true
    [ -z "${TETHER_REDIS_CONTROL_PID:-}" ]
    [ -z "${TETHER_MEMCACHED_ADDRESS:-}" ]
    [ -z "${MEMCACHED_SERVERS:-}" ]
}

@test "a missing server binary names the package to install" {
    cfg="$(config missing.ini <<'EOF'
[redis]
bin = /nonexistent

[memcached]
bin = /nonexistent
EOF
)"
    run tether -f "$cfg" run redis -- true
    assert_status 125
    assert_output_has "[redis] /nonexistent: no such executable file: fix the path, or install the Debian package redis-server (apt-get install redis-server)"
    run tether -f "$cfg" run memcached -- true
    assert_status 125
    assert_output_has "[memcached] /nonexistent: no such executable file: fix the path, or install the Debian package memcached (apt-get install memcached)"
    # not on PATH
    run env PATH=/nonexistent "$TETHER" run redis -- /bin/true
    assert_status 125
    assert_output_has "[redis] redis-server not found in PATH: install the Debian package redis-server (apt-get install redis-server)"
    run env PATH=/nonexistent "$TETHER" run memcached -- /bin/true
    assert_status 125
    assert_output_has "[memcached] memcached not found in PATH: install the Debian package memcached (apt-get install memcached)"
}

@test "unknown keys are rejected with the known ones" {
    cfg="$(config bad.ini <<'EOF'
[r]
driver = redis
colour = blue
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "bad.ini:3: [r] unknown key 'colour' for the redis driver (known: tcp, setting.NAME, bin; and those of every service: driver, port, socket, ready, health, timeout, reset, after, stop_signal, stop_timeout, export.NAME, env.NAME)"
    cfg="$(config bad2.ini <<'EOF'
[m]
driver = memcached
memory = lots
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "bad2.ini:3: [m] memory = lots"
}

@test "16 concurrent tether run redis -- true all succeed" {
    pids=()
    for i in $(seq 16); do
        "$TETHER" -q run redis -- true >"$WORK/out.$i" 2>&1 &
        pids+=($!)
    done
    fails=0
    for i in $(seq 16); do
        wait "${pids[$((i - 1))]}" || { fails=$((fails + 1)); cat "$WORK/out.$i" >&2; }
    done
    [ "$fails" -eq 0 ]
}

@test "stop unsets REDIS_URL and PGHOST... even when the instance is already gone" {
    command -v redis-server >/dev/null || skip "redis-server is not installed"
    eval "$(tether -q start redis)"
    [ -n "$REDIS_URL" ]
    kill -KILL "$TETHER_REDIS_CONTROL_PID"
    wait_gone "$TETHER_REDIS_CONTROL_PID" 5
    tether gc >/dev/null 2>&1
    # someone else's PGHOST, not copied from any service of ours, stays
    export PGHOST=/elsewhere
    eval "$(tether stop 2>/dev/null)"
    [ -z "${REDIS_URL:-}" ]
    [ -z "${TETHER_REDIS_URL:-}" ]
    [ "$PGHOST" = /elsewhere ]
}

@test "MEMCACHED_SERVERS: memccat needs no --servers; with two memcached services it is not set" {
    command -v memccat >/dev/null || skip "no memccat (apt-get install libmemcached-tools)"
    run tether run memcached -- sh -c '
        '"$(declare -f mc)"'
        mc "$MEMCACHED_SERVERS" "set k 0 0 2\r\nhi\r\n" >/dev/null
        memccat k'
    assert_status 0
    [ "$output" = hi ]
    cfg="$(config two.ini <<'EOF'
[a]
driver = memcached
[b]
driver = memcached
EOF
)"
    run tether -f "$cfg" run -- sh -c 'echo "${MEMCACHED_SERVERS:-unset} $TETHER_A_ADDRESS"'
    assert_status 0
    [[ $output == "unset $TETHER_DIR/"*/a/memcached.sock ]]
}
