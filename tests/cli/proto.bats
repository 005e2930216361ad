#!/usr/bin/env bats
# Protocol checks (issue 11 item 2): ready, health and reset that talk to
# the server (send:/expect:, http:/), against a real redis-server and
# python3's http.server run by the command driver.

load helpers

REDIS="command = redis-server --port 0 --unixsocket \${socket} --save '' --appendonly no"

@test "ready = send:PING expect:+PONG: a redis on its socket is ready when it answers" {
    command -v redis-server >/dev/null || skip "no redis-server"
    cfg="$(config r.ini <<EOF
[cache]
$REDIS
socket = auto
ready = send:PING expect:+PONG
EOF
)"
    run tether -f "$cfg" run -- sh -c 'redis-cli -s "$TETHER_CACHE_SOCKET" ping'
    assert_status 0
    assert_output_has "PONG"
}

@test "ready = send:... expect:...: a wrong answer until the timeout fails, quoting it" {
    command -v redis-server >/dev/null || skip "no redis-server"
    cfg="$(config r.ini <<EOF
[cache]
$REDIS
socket = auto
timeout = 1
ready = send:PING expect:+PANG
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "did not become ready within 1 s (ready = send:PING expect:+PANG; the last try: [cache] ready = send:PING expect:+PANG: "
    assert_output_has "answered '+PONG', not '+PANG'..."
}

@test "ready = send:... expect:...: a server that accepts and never answers fails at the timeout, saying so" {
    cfg="$(config wedged.ini <<EOF
[mute]
command = $PY -c 'import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); print("listening", flush=True); time.sleep(3600)' \${socket}
socket = auto
timeout = 1
ready = send:PING expect:+PONG
EOF
)"
    t0=$(now_ms)
    run tether -f "$cfg" run -- true
    t1=$(now_ms)
    assert_status 125
    assert_output_has "[mute] ready = send:PING expect:+PONG: no answer within 1 s from $TETHER_DIR/"
    assert_output_has "/mute/sock"
    [ $((t1 - t0)) -lt 4000 ] || { echo "took $((t1 - t0)) ms" >&2; false; }
}

@test "ready = http:/: python's http.server on 127.0.0.1:\${port}; a 404 is not ready" {
    cfg="$(config w.ini <<EOF
[web]
command = $PY -m http.server --bind 127.0.0.1 \${port}
port = auto
ready = http:/
EOF
)"
    run tether -f "$cfg" run -- sh -c 'curl -sf -o /dev/null "http://127.0.0.1:$TETHER_WEB_PORT/" && echo fetched'
    assert_status 0
    assert_output_has "fetched"

    cfg="$(config w404.ini <<EOF
[web]
command = $PY -m http.server --bind 127.0.0.1 \${port}
port = auto
timeout = 5
ready = http:/no-such-page
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "[web] ready = http:/no-such-page: 127.0.0.1:"
    assert_output_has "answered HTTP status '404 File not found', not 2xx"
}

@test "health: status says a SIGSTOPped redis is unhealthy, within the health check's 2 s" {
    command -v redis-server >/dev/null || skip "no redis-server"
    cfg="$(config r.ini <<EOF
[cache]
$REDIS
socket = auto
ready = send:PING expect:+PONG
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    run tether status
    assert_status 0
    pid=$(cat "$TETHER_CACHE_PIDFILE")
    kill -STOP "$pid"
    t0=$(now_ms)
    run tether status
    t1=$(now_ms)
    kill -CONT "$pid"
    assert_status 1
    assert_output_has "[cache] is unhealthy: health = send:PING expect:+PONG: no answer within 2 s from $TETHER_CACHE_SOCKET"
    [ $((t1 - t0)) -lt 4000 ] || { echo "status took $((t1 - t0)) ms" >&2; false; }
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "health = http:/...: its own check, apart from ready" {
    cfg="$(config w.ini <<EOF
[web]
command = $PY -m http.server --bind 127.0.0.1 \${port}
port = auto
ready = http:/
health = http:/missing
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    run tether status
    assert_status 1
    assert_output_has "[web] is unhealthy: health = http:/missing: 127.0.0.1:$TETHER_WEB_PORT answered HTTP status '404 File not found', not 2xx"
    # and a reset, which checks health first, says the same
    run tether -q reset web
    assert_status 1
    assert_output_has "answered HTTP status '404 File not found'"
    eval "$(tether stop)"
}

@test "reset = send:FLUSHALL expect:+OK clears the keys" {
    command -v redis-server >/dev/null || skip "no redis-server"
    cfg="$(config r.ini <<EOF
[cache]
$REDIS
socket = auto
ready = send:PING expect:+PONG
reset = send:FLUSHALL expect:+OK
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    redis-cli -s "$TETHER_CACHE_SOCKET" set k v >/dev/null
    [ "$(redis-cli -s "$TETHER_CACHE_SOCKET" exists k)" = 1 ]
    run tether -q reset cache
    assert_status 0
    [ "$(redis-cli -s "$TETHER_CACHE_SOCKET" exists k)" = 0 ]
    eval "$(tether stop)"
}

@test "reset over TCP: AUTH, FLUSHALL and SCRIPT FLUSH on one connection; a wrong answer fails it" {
    command -v redis-server >/dev/null || skip "no redis-server"
    cfg="$(config r.ini <<EOF
[cache]
command = redis-server --port \${port} --bind 127.0.0.1 --requirepass s3cret --save '' --appendonly no
port = auto
ready = send:'AUTH default s3cret' expect:+OK send:PING expect:+PONG
reset = send:'AUTH default s3cret' expect:+OK send:FLUSHALL expect:+OK "send:SCRIPT FLUSH" expect:+OK
[bad]
command = redis-server --port \${port} --bind 127.0.0.1 --save '' --appendonly no
port = auto
ready = send:PING expect:+PONG
reset = send:FLUSHALL expect:+FLUSHED
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    cli() { redis-cli --no-auth-warning -a s3cret -p "$TETHER_CACHE_PORT" "$@"; }
    cli set k v >/dev/null
    sha=$(cli script load "return 1")
    [ "$(cli script exists "$sha")" = 1 ]
    run tether -q reset cache
    assert_status 0
    [ "$(cli exists k)" = 0 ]
    [ "$(cli script exists "$sha")" = 0 ]

    run tether -q reset bad
    assert_status 1
    assert_output_has "[bad] reset failed: reset = send:FLUSHALL expect:+FLUSHED: 127.0.0.1:$TETHER_BAD_PORT answered '+OK', not '+FLUSHED'..."
    eval "$(tether stop)"
}

@test "a reset talking to a SIGSTOPped redis: status answers at once meanwhile, the reset fails at its timeout" {
    command -v redis-server >/dev/null || skip "no redis-server"
    cfg="$(config r.ini <<EOF
[cache]
$REDIS
socket = auto
timeout = 3
ready = send:PING expect:+PONG
health = none
reset = send:FLUSHALL expect:+OK
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    pid=$(cat "$TETHER_CACHE_PIDFILE")
    kill -STOP "$pid"
    tether -q reset cache >"$WORK/reset.out" 2>&1 &
    rpid=$!
    resetting() { tether status 2>&1 | grep -q "resetting"; }
    wait_for 3 resetting
    t0=$(now_ms)
    run tether status
    t1=$(now_ms)
    assert_output_has "resetting"
    [ $((t1 - t0)) -lt 500 ] || { echo "status took $((t1 - t0)) ms during the reset" >&2; false; }
    rc=0
    wait "$rpid" || rc=$?
    kill -CONT "$pid"
    [ "$rc" = 1 ] || { cat "$WORK/reset.out" >&2; false; }
    grep -qF "[cache] reset failed: reset = send:FLUSHALL expect:+OK: no answer within 3 s from $TETHER_CACHE_SOCKET" "$WORK/reset.out" ||
        { cat "$WORK/reset.out" >&2; false; }
    eval "$(tether stop)"
}

@test "a protocol check with nothing to talk to is a FILE:LINE error" {
    cfg="$(config bad.ini <<EOF
[a]
command = true
ready = send:PING expect:+PONG
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "bad.ini:3: [a] ready = send:PING expect:+PONG: the service has neither a socket nor a port to talk to"
}
