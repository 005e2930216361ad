#!/usr/bin/env bats
# Scenario 2: start, status, reset, stop round trips through eval (sh, csh
# via tcsh) and --json.

load helpers

web_config() {
    config web.ini <<EOF
[tether]
prefix = TT

[web]
command = $TSERVER --tcp \${port} --say web-says-hello
port = auto
reset = rm -f \${dir}/scratch
export.URL = http://127.0.0.1:\${port}/
EOF
}

@test "start/status/reset/stop round trip through eval in sh" {
    cfg="$(web_config)"
    run sh -c '
        set -e
        eval "$("$TETHER" -f "$1" start)"
        echo "$TT_WEB_CONTROL_PID" > "$WORK/helper"
        echo "$TT_WEB_PORT" > "$WORK/port"
        "$TETHER" status
        "$TETHER" logs web | grep -qx web-says-hello
        "$TETHER" list | grep -q " alive .*web(ready)"
        # the config file is readable by another process and gives the same values
        [ -r "$TT_WEB_CONFIGFILE" ]
        env -i sh -c ". \"\$0\"; echo \"\$TT_WEB_PORT|\$TT_WEB_URL|\$TT_WEB_PIDFILE\"" "$TT_WEB_CONFIGFILE" > "$WORK/sourced"
        echo "$TT_WEB_PORT|$TT_WEB_URL|$TT_WEB_PIDFILE" > "$WORK/direct"
        # reset runs the reset command
        touch "$TT_WEB_DIR/scratch" "$TT_WEB_DIR/keep"
        "$TETHER" reset
        [ ! -e "$TT_WEB_DIR/scratch" ]
        [ -e "$TT_WEB_DIR/keep" ]
        "$TETHER" reset web
        "$TETHER" stop > "$WORK/stop.out"
        eval "$(cat "$WORK/stop.out")"
        env | grep "^TT_" > "$WORK/left" || true
    ' sh "$cfg"
    assert_status 0
    [ "$(cat "$WORK/sourced")" = "$(cat "$WORK/direct")" ]
    [ ! -s "$WORK/left" ] || { cat "$WORK/left" >&2; false; }
    for v in CONTROL_PID CONFIGFILE PIDFILE DIR HOST PORT URL; do
        grep -qx "unset TT_WEB_$v;" "$WORK/stop.out"
    done
    helper="$(cat "$WORK/helper")"
    is_gone "$helper"
}

@test "status fails when nothing is started, stop says there is nothing to stop" {
    run tether status
    [ "$status" -ne 0 ]
    run tether stop
    [ "$status" -ne 0 ]
    assert_output_has "nothing to stop"
}

@test "reset = restart gives the service a new pid" {
    cfg="$(config restart.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
reset = restart
EOF
)"
    eval "$(tether -f "$cfg" start)"
    old="$(cat "$TETHER_WEB_PIDFILE")"
    run tether reset
    assert_status 0
    new="$(cat "$TETHER_WEB_PIDFILE")"
    [ "$new" != "$old" ]
    is_gone "$old"
    run ! is_gone "$new"
    [ "$(ping_tcp "$TETHER_WEB_PORT")" = pong ]
    run tether status
    assert_status 0
    eval "$(tether stop)"
    [ -z "${TETHER_WEB_CONTROL_PID:-}" ]
    wait_gone "$new" 5
}

@test "a failing reset command is reported" {
    cfg="$(config badreset.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
reset = sh -c 'echo reset-went-wrong >&2; exit 4'
EOF
)"
    eval "$(tether -f "$cfg" start)"
    run tether reset
    eval "$(tether stop)"
    [ "$status" -ne 0 ]
    assert_output_has "web"
}

@test "after a failed reset, status says so (not ready) until a reset works" {
    cfg="$(config flakyreset.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
reset = sh -c 'test -e $WORK/reset-ok || { echo half-reset >&2; exit 4; }'
EOF
)"
    eval "$(tether -f "$cfg" start)"
    run tether reset
    [ "$status" -ne 0 ]
    run tether status
    [ "$status" -eq 1 ]
    assert_output_has "[web] is unhealthy: the last reset failed"
    assert_output_has "exited with status 4"
    touch "$WORK/reset-ok"
    run tether reset
    assert_status 0
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "start --json: parseable, and stop with those variables cleans up" {
    cfg="$(web_config)"
    tether -f "$cfg" start --json >"$WORK/vars.json"
    "$PY" - "$WORK/vars.json" "$WORK/vars.sh" <<'EOF'
import json, shlex, sys
v = json.load(open(sys.argv[1]))
for k in ("CONTROL_PID", "CONFIGFILE", "PIDFILE", "DIR", "HOST", "PORT", "URL"):
    assert "TT_WEB_" + k in v, k
assert v["TT_WEB_URL"] == "http://127.0.0.1:%s/" % v["TT_WEB_PORT"]
with open(sys.argv[2], "w") as f:
    for k, val in v.items():
        f.write("export %s=%s\n" % (k, shlex.quote(val)))
EOF
    . "$WORK/vars.sh"
    [ "$(ping_tcp "$TT_WEB_PORT")" = pong ]
    run tether status
    assert_status 0
    run tether stop --json
    assert_status 0
    printf '%s\n' "$output" | grep '^{' >"$WORK/unset.json"
    "$PY" -c '
import json, sys
u = json.load(open(sys.argv[1]))["unset"]
assert "TT_WEB_CONTROL_PID" in u and "TT_WEB_PORT" in u, u' "$WORK/unset.json"
    is_gone "$TT_WEB_CONTROL_PID"
}

@test "start -c: the csh output works through tcsh, stop unsets" {
    command -v tcsh >/dev/null || skip "no tcsh"
    cfg="$(web_config)"
    cat >"$WORK/round.csh" <<'EOF'
eval "`$TETHER -f $CFG start -c`"
if ( $status != 0 ) exit 10
echo "$TT_WEB_CONTROL_PID" > $WORK/helper
echo "$TT_WEB_PORT" > $WORK/port
$TETHER status
if ( $status != 0 ) exit 11
eval "`$TETHER stop -c`"
if ( $status != 0 ) exit 12
if ( $?TT_WEB_PORT ) exit 13
if ( $?TT_WEB_CONTROL_PID ) exit 14
exit 0
EOF
    CFG="$cfg" run tcsh -f "$WORK/round.csh"
    assert_status 0
    [ -s "$WORK/port" ]
    is_gone "$(cat "$WORK/helper")"
}

@test "start: a service that crashes later makes status fail and name it; reset refuses" {
    cfg="$(config crash.ini <<EOF
[steady]
command = $TSERVER --tcp \${port}
port = auto

[flaky]
command = $TSERVER --tcp \${port} --crash-after 300
port = auto
EOF
)"
    eval "$(tether -f "$cfg" start)"
    svc="$(cat "$TETHER_FLAKY_PIDFILE")"
    wait_gone "$svc" 10
    run tether status
    [ "$status" -ne 0 ]
    assert_output_has "flaky"
    assert_output_has "status 3"
    run tether reset flaky
    [ "$status" -ne 0 ]
    assert_output_has "flaky"
    # the helper is still there: stop cleans up normally
    run tether stop
    assert_status 0
    is_gone "$TETHER_STEADY_CONTROL_PID"
}

@test "start --expire: the helper cleans up by itself" {
    cfg="$(web_config)"
    eval "$(tether -f "$cfg" start --expire 300ms)"
    wait_gone "$TT_WEB_CONTROL_PID" 10
    wait_for 5 sh -c '[ -z "$(ls -A "$TETHER_DIR")" ]'
    run tether status
    [ "$status" -ne 0 ]
}

@test "start --watch-pid: the instance goes when the watched process does" {
    cfg="$(web_config)"
    sleep 1000 3>&- &
    watched=$!
    eval "$(tether -f "$cfg" start --watch-pid "$watched")"
    [ "$(ping_tcp "$TT_WEB_PORT")" = pong ]
    kill "$watched"
    wait "$watched" || true
    wait_gone "$TT_WEB_CONTROL_PID" 10
    wait_for 5 sh -c '[ -z "$(ls -A "$TETHER_DIR")" ]'
}

@test "start: the helper keeps none of the caller's files or pipes open" {
    cfg="$(web_config)"
    # a pipe whose reader waits for EOF, as a test runner or $(...) would
    tether -f "$cfg" start 7>"$WORK/held" >"$WORK/vars" 8> >(cat >/dev/null)
    . "$WORK/vars"
    held="$(find "/proc/$TT_WEB_CONTROL_PID/fd" -lname "$WORK/held" 2>/dev/null)"
    fds="$(ls -l "/proc/$TT_WEB_CONTROL_PID/fd/")"
    eval "$(tether stop)"
    [ -z "$held" ] || { echo "the helper holds the caller's fd: $fds" >&2; false; }
}

@test "prefix = myapp or MyApp: start, run and stop name the variables MYAPP_WEB_*; _names says so" {
    for prefix in myapp MyApp; do
        cfg="$WORK/p-$prefix.ini"
        printf '[tether]\nprefix = %s\n\n[web]\ncommand = %s --tcp ${port}\nport = auto\n' \
            "$prefix" "$TSERVER" >"$cfg"
        run sh -c '
            set -e
            eval "$("$TETHER" -f "$1" start)"
            echo "$MYAPP_WEB_CONTROL_PID" >"$WORK/helper"
            [ -n "$MYAPP_WEB_PORT" ] && [ -f "$MYAPP_WEB_CONFIGFILE" ]
            "$TETHER" status
            "$TETHER" stop >"$WORK/unset"
            eval "$(cat "$WORK/unset")"
            [ -z "${MYAPP_WEB_PORT+set}" ] && [ -z "${MYAPP_WEB_CONTROL_PID+set}" ]
            grep -x "unset MYAPP_WEB_CONFIGFILE;" "$WORK/unset"
        ' sh "$cfg"
        assert_status 0
        is_gone "$(cat "$WORK/helper")"
        run tether -f "$cfg" run -- sh -c 'echo "port=$MYAPP_WEB_PORT pid=$MYAPP_WEB_CONTROL_PID"'
        assert_status 0
        [[ $output =~ port=[0-9]+\ pid=[0-9]+ ]]
        # the names a binding takes instead of making them: the config's, and
        # a built-in's that the file has no section for (as start does)
        tether -f "$cfg" _names --json Web >"$WORK/web.json"
        tether -f "$cfg" _names --json redis >"$WORK/redis.json"
        "$PY" - "$WORK/web.json" "$WORK/redis.json" "$cfg" <<'EOF'
import json, sys
[web] = json.load(open(sys.argv[1]))
assert web["name"] == "Web" and web["label"] == "web", web
assert web["config_file"] == sys.argv[3] and web["stem"] == "MYAPP_WEB", web
for k in ("CONTROL_PID", "CONFIGFILE", "PIDFILE", "DIR", "HOST", "PORT"):
    assert web["vars"][k] == "MYAPP_WEB_" + k, web
[redis] = json.load(open(sys.argv[2]))
assert redis["config_file"] is None and redis["stem"] == "TETHER_REDIS", redis
assert redis["vars"]["CONTROL_PID"] == "TETHER_REDIS_CONTROL_PID", redis
EOF
    done
    wait_for 5 sh -c '[ -z "$(ls -A "$TETHER_DIR")" ]'
}

@test "_names: an unknown service or a bad config is start's error, on stderr" {
    cfg="$(web_config)"
    run --separate-stderr tether -f "$cfg" _names nosuch
    assert_status 2
    [ -z "$output" ]
    [[ $stderr == *"no service 'nosuch'"* ]]
    run tether -f "$cfg" _names
    assert_status 2
}
