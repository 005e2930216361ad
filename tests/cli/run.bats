#!/usr/bin/env bats
# Scenario 1: tether run -- CMD.  Also: a fixed port that is taken, a
# server that says "address in use" once, a service flooding its log.

bats_require_minimum_version 1.5.0
load helpers

web_config() {
    config web.ini <<EOF
[tether]
prefix = TT

[web]
command = $TSERVER --tcp \${port} --say "web up on \${port}"
port = auto
export.URL = http://127.0.0.1:\${port}/
export.GREETING = hello world
EOF
}

@test "run -- CMD: the variables are there and the service answers" {
    cfg="$(web_config)"
    run tether -f "$cfg" run -- sh -c '
        env > "$WORK/env"
        cat "$TT_WEB_PIDFILE" > "$WORK/pidfile"
        tr "\0" "\n" < /proc/$TT_WEB_CONTROL_PID/comm > "$WORK/helper-comm"
        ls -d "$TT_WEB_DIR" > "$WORK/dir"
        "$PY" -c "
import socket, os
s = socket.create_connection((os.environ[\"TT_WEB_HOST\"], int(os.environ[\"TT_WEB_PORT\"])))
print(s.recv(10).decode(), end=\"\")" > "$WORK/pong"
        # the config file: readable, and sourcing it gives the same values
        ( env -i sh -c ". \"\$0\"; echo \"\$TT_WEB_PORT \$TT_WEB_URL \$TT_WEB_GREETING\"" "$TT_WEB_CONFIGFILE" ) > "$WORK/sourced"
        echo "$TT_WEB_PORT $TT_WEB_URL $TT_WEB_GREETING" > "$WORK/direct"
    '
    assert_status 0
    for v in PORT HOST CONTROL_PID CONFIGFILE PIDFILE DIR URL GREETING; do
        grep -q "^TT_WEB_$v=." "$WORK/env" || { echo "TT_WEB_$v missing" >&2; cat "$WORK/env" >&2; return 1; }
    done
    port="$(sed -n 's/^TT_WEB_PORT=//p' "$WORK/env")"
    grep -qx "TT_WEB_HOST=127.0.0.1" "$WORK/env"
    grep -qx "TT_WEB_URL=http://127.0.0.1:$port/" "$WORK/env"
    grep -qx "TT_WEB_GREETING=hello world" "$WORK/env"
    grep -qx "TT_WEB_DIR=$TETHER_DIR/[0-9a-f]*/web" "$WORK/env"
    [ "$(cat "$WORK/helper-comm")" = tether-helper ]
    [ -s "$WORK/pidfile" ]
    [ "$(cat "$WORK/pong")" = pong ]
    [ -s "$WORK/sourced" ]
    [ "$(cat "$WORK/sourced")" = "$(cat "$WORK/direct")" ]
    # the service is gone with everything else: the service's pid too
    svc="$(cat "$WORK/pidfile")"
    is_gone "$svc"
}

@test "run -- CMD: CMD's exit status is propagated" {
    cfg="$(web_config)"
    run tether -f "$cfg" run -- sh -c 'exit 7'
    assert_status 7
    run tether -f "$cfg" run -- true
    assert_status 0
    run tether -f "$cfg" run -- sh -c 'kill -TERM $$'
    assert_status 143
}

@test "run -- CMD: a missing CMD exits 127 and cleans up" {
    cfg="$(web_config)"
    run -127 tether -f "$cfg" run -- "$WORK/no-such-command" arg
    assert_status 127
    assert_output_has "no-such-command"
    run -127 tether -f "$cfg" run web -- no-such-command-on-path
    assert_status 127
    assert_output_has "no-such-command-on-path"
}

@test "run -- CMD: not found is 127 even past a PATH directory we may not search; not executable is 126" {
    cfg="$(web_config)"
    mkdir -m 0000 "$WORK/closed"
    if [ "$(id -u)" != 0 ]; then # root may search anything: nothing to show there
        PATH="$WORK/closed:$PATH" run -127 "$TETHER" -f "$cfg" run -- no-such-command-on-path
        chmod 0700 "$WORK/closed"
        assert_status 127
    fi
    chmod 0700 "$WORK/closed"
    printf 'echo hi\n' >"$WORK/not-executable"
    chmod 0644 "$WORK/not-executable"
    run -126 tether -f "$cfg" run -- "$WORK/not-executable"
    assert_status 126
    assert_output_has "Permission denied"
}

@test "run SERVICE -- CMD starts only that service and what it runs after" {
    cfg="$(config multi.ini <<EOF
[db]
command = $TSERVER --tcp \${port}
port = auto

[app]
command = $TSERVER --tcp \${port}
port = auto
after = db
export.DB = 127.0.0.1:\${db.PORT}

[other]
command = $TSERVER --tcp \${port}
port = auto
EOF
)"
    run tether -f "$cfg" run app -- sh -c 'env | grep "^TETHER_" | sort > "$WORK/env"'
    assert_status 0
    grep -q '^TETHER_DB_PORT=' "$WORK/env"
    grep -q '^TETHER_APP_PORT=' "$WORK/env"
    run ! grep -q '^TETHER_OTHER_' "$WORK/env"
    dbport="$(sed -n 's/^TETHER_DB_PORT=//p' "$WORK/env")"
    grep -qx "TETHER_APP_DB=127.0.0.1:$dbport" "$WORK/env"
}

@test "a fixed port that something else listens on gives a clear error" {
    # find a free port, then hold it with our own server
    port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    "$TSERVER" --tcp "$port" --say listening >"$WORK/holder.out" 2>&1 &
    holder=$!
    wait_file "$WORK/holder.out"
    cfg="$(config fixed.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = $port
EOF
)"
    run tether -f "$cfg" run -- true
    kill "$holder"; wait "$holder" || true
    [ "$status" -ne 0 ]
    assert_output_has "port $port"
    assert_output_has "not free"
}

@test "port = auto: a server that fails with 'address in use' is retried on another port" {
    cfg="$(config retry.ini <<EOF
[web]
command = $TSERVER --eaddrinuse-once $WORK/marker --tcp \${port}
port = auto
EOF
)"
    run tether -f "$cfg" run -- sh -c 'echo "$TETHER_WEB_PORT" > "$WORK/port"; ping_ok=$("$PY" -c "
import socket; print(socket.create_connection((\"127.0.0.1\", $TETHER_WEB_PORT)).recv(9).decode(), end=\"\")"); [ "$ping_ok" = pong ]'
    assert_status 0
    [ -e "$WORK/marker" ]
    [ -s "$WORK/port" ]
    # which port it gave up, why, and which it took: a note, and in the log
    [[ $output =~ "tether: [web] port "([0-9]+)" was in use (the service said so), retried on $(cat "$WORK/port")" ]]
    [ "${BASH_REMATCH[1]}" != "$(cat "$WORK/port")" ]
}

@test "a service that floods its log does not flood the console" {
    cfg="$(config flood.ini <<EOF
[noisy]
command = $TSERVER --tcp \${port} --flood
port = auto
EOF
)"
    run tether -f "$cfg" run -- timeout 10 sh -c '
        log="$TETHER_NOISY_DIR/../noisy.log"
        while [ "$(wc -c < "$log")" -lt 1000000 ]; do sleep 0.01; done
        touch "$WORK/flooded"'
    assert_status 0
    [ -e "$WORK/flooded" ]
    [ "${#output}" -lt 2000 ]
}

@test "run with no config and no service names is a usage error" {
    cd "$WORK"
    run tether run -- true
    assert_status 2
    assert_output_has "no config file"
}
