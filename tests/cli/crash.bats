#!/usr/bin/env bats
# Scenarios 3 and 4: the helper or the owner dies or is signalled; gc, and
# gc never kills a process that merely reuses a recorded pid.

load helpers

two_config() {
    config two.ini <<EOF
[db]
command = $TSERVER --tcp \${port}
port = auto

[web]
command = $TSERVER --tcp \${port} --say ready
port = auto
ready = log:^ready$
after = db
EOF
}

# write_state DIR HELPER_PID HELPER_START SVC_PID SVC_START [BOOT]
write_state() {
    local dir="$1" boot="${6:-$(cat /proc/sys/kernel/random/boot_id)}"
    mkdir -m 0700 "$dir"
    : >"$dir/lock"
    cat >"$dir/state" <<EOF
tether-state 1
id ${dir##*/}
boot $boot
cookie ${dir##*/}-f00dfeedf00dfeed
prefix TETHER
created $(date +%s)
helper $2 $3
service web $4 $5 ready command
config /nonexistent/tether.ini
EOF
}

@test "SIGKILL of the helper: services die, status names them, gc removes the rest" {
    cfg="$(two_config)"
    eval "$(tether -f "$cfg" start)"
    db="$(cat "$TETHER_DB_PIDFILE")"
    web="$(cat "$TETHER_WEB_PIDFILE")"
    run ! is_gone "$db"
    run ! is_gone "$web"
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
    wait_gone "$db" 5
    wait_gone "$web" 5
    run tether status
    [ "$status" -ne 0 ]
    assert_output_has "[db]"
    assert_output_has "[web]"
    assert_output_has "not running"
    # the instance directory is still there: it is stale
    [ -n "$(ls -A "$TETHER_DIR")" ]
    run tether list
    assert_status 0
    assert_output_has "stale"
    run tether gc
    assert_status 0
    assert_output_has "reaped"
    [ -z "$(ls -A "$TETHER_DIR")" ]
    # stop still leaves a clean shell
    run tether stop
    assert_output_has "unset TETHER_WEB_PORT"
}

@test "SIGKILL of the helper: an escaped daemon is reaped by gc through its cookie" {
    cfg="$(config esc.ini <<EOF
[web]
command = $TSERVER --tcp \${port} --escape $WORK/escaper.pid
port = auto
EOF
)"
    eval "$(tether -f "$cfg" start)"
    esc="$(cat "$WORK/escaper.pid")"
    run ! is_gone "$esc"
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
    # the escaper has no parent death signal: only the cookie finds it
    run tether gc
    assert_status 0
    wait_gone "$esc" 5
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "the next run reaps a stale instance first" {
    cfg="$(two_config)"
    eval "$(tether -f "$cfg" start)"
    old="$(basename "$(dirname "$TETHER_WEB_CONFIGFILE")")"
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
    run tether -f "$cfg" run -- sh -c '[ ! -e "$TETHER_DIR/$0" ]' "$old"
    assert_status 0
    assert_output_has "reaped stale instance"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "gc: a process that reuses a recorded pid (wrong start time) is not killed" {
    sleep 1000 3>&- &
    victim=$!
    start="$(starttime "$victim")"
    write_state "$TETHER_DIR/0123456789abcdef" "$victim" "$((start + 1))" "$victim" "$((start + 7))"
    run tether gc
    alive=1
    is_gone "$victim" && alive=0
    kill "$victim" 2>/dev/null || true
    wait "$victim" || true
    assert_status 0
    [ "$alive" = 1 ]
    [ ! -e "$TETHER_DIR/0123456789abcdef" ]
}

@test "gc: a recorded pid from another boot is not killed, even with the right start time" {
    sleep 1000 3>&- &
    victim=$!
    start="$(starttime "$victim")"
    write_state "$TETHER_DIR/0123456789abcdef" "$victim" "$start" "$victim" "$start" \
        00000000-0000-0000-0000-000000000000
    run tether gc
    alive=1
    is_gone "$victim" && alive=0
    kill "$victim" 2>/dev/null || true
    wait "$victim" || true
    assert_status 0
    [ "$alive" = 1 ]
    [ ! -e "$TETHER_DIR/0123456789abcdef" ]
}

@test "gc: a recorded process with the right pid and start time is killed" {
    sleep 1000 3>&- &
    victim=$!
    start="$(starttime "$victim")"
    write_state "$TETHER_DIR/0123456789abcdef" "$victim" "$start" "$victim" "$start"
    run tether gc
    assert_status 0
    wait_gone "$victim" 5
    st=0
    wait "$victim" || st=$?
    [ "$st" -eq 137 ] # SIGKILL
    [ ! -e "$TETHER_DIR/0123456789abcdef" ]
}

@test "gc leaves a live instance alone" {
    cfg="$(two_config)"
    eval "$(tether -f "$cfg" start)"
    run tether gc
    assert_status 0
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "SIGKILL of the process that called run: the helper notices and cleans up" {
    cfg="$(two_config)"
    "$TETHER" -f "$cfg" run -- sh -c '
        echo "$TETHER_WEB_CONTROL_PID $(cat "$TETHER_DB_PIDFILE") $(cat "$TETHER_WEB_PIDFILE") $$" > "$WORK/pids.tmp"
        mv "$WORK/pids.tmp" "$WORK/pids"
        exec sleep 60' 2>"$WORK/err" 3>&- &
    runner=$!
    wait_file "$WORK/pids"
    read -r helper db web cmd <"$WORK/pids"
    kill -KILL "$runner"
    wait "$runner" || true
    wait_gone "$helper" 10
    wait_gone "$db" 5
    wait_gone "$web" 5
    # CMD is the caller's own process: not tether's to kill
    kill "$cmd"
    wait_gone "$cmd" 5
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "SIGINT to tether run (foreground): stops, cleans up, exits 0" {
    cfg="$(two_config)"
    "$TETHER" -f "$cfg" run 2>"$WORK/err" 3>&- &
    runner=$!
    wait_for 10 grep -q "press Ctrl-C" "$WORK/err"
    grep -q "^TETHER_WEB_PORT=" "$WORK/err"
    helper="$(sed -n "s/^TETHER_WEB_CONTROL_PID='\([0-9]*\)'.*/\1/p" "$WORK/err")"
    [ -n "$helper" ]
    kill -INT "$runner"
    st=0
    wait "$runner" || st=$?
    [ "$st" -eq 0 ] || { cat "$WORK/err" >&2; false; }
    is_gone "$helper"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "SIGTERM to tether run -- CMD is passed on to CMD, then everything is cleaned" {
    cfg="$(two_config)"
    "$TETHER" -f "$cfg" run -- sh -c '
        trap "echo got-term > \"\$WORK/term\"; exit 5" TERM
        echo "$TETHER_WEB_CONTROL_PID" > "$WORK/helper.tmp"; mv "$WORK/helper.tmp" "$WORK/helper"
        while :; do sleep 0.05; done' 2>"$WORK/err" 3>&- &
    runner=$!
    wait_file "$WORK/helper"
    kill -TERM "$runner"
    st=0
    wait "$runner" || st=$?
    [ "$st" -eq 5 ] || { echo "exit $st" >&2; cat "$WORK/err" >&2; false; }
    [ -e "$WORK/term" ]
    is_gone "$(cat "$WORK/helper")"
}

@test "SIGTERM to the helper of a started instance cleans up everything" {
    cfg="$(two_config)"
    eval "$(tether -f "$cfg" start)"
    db="$(cat "$TETHER_DB_PIDFILE")"
    web="$(cat "$TETHER_WEB_PIDFILE")"
    kill -TERM "$TETHER_DB_CONTROL_PID"
    wait_gone "$TETHER_DB_CONTROL_PID" 10
    is_gone "$db"
    is_gone "$web"
    [ -z "$(ls -A "$TETHER_DIR")" ]
    run tether status
    [ "$status" -ne 0 ]
}

@test "SIGTERM to the helper: a service that ignores SIGTERM is SIGKILLed after stop_timeout" {
    cfg="$(config stubborn.ini <<EOF
[web]
command = $TSERVER --tcp \${port} --ignore-term
port = auto
stop_timeout = 200ms
EOF
)"
    eval "$(tether -f "$cfg" start)"
    web="$(cat "$TETHER_WEB_PIDFILE")"
    SECONDS=0
    run tether stop
    assert_status 0
    [ "$SECONDS" -lt 5 ]
    is_gone "$web"
}

@test "SIGKILL of the helper, then stop alone reaps the rest and unsets" {
    cfg="$(config esc.ini <<EOF
[web]
command = $TSERVER --tcp \${port} --escape $WORK/escaper.pid
port = auto
EOF
)"
    eval "$(tether -f "$cfg" start)"
    esc="$(cat "$WORK/escaper.pid")"
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
    run tether stop
    assert_status 0
    assert_output_has "unset TETHER_WEB_CONTROL_PID"
    wait_gone "$esc" 5
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "SIGKILL of tether start while a service is starting: the helper cleans up" {
    cfg="$(config slow.ini <<EOF
[web]
command = sh -c 'echo starting > $WORK/spawned; exec $TSERVER --never-ready'
ready = log:^never
timeout = 60
EOF
)"
    "$TETHER" -f "$cfg" start >"$WORK/out" 2>"$WORK/err" 3>&- &
    starter=$!
    wait_file "$WORK/spawned"
    kill -KILL "$starter"
    wait "$starter" || true
    # the helper notices that nobody reads its answer any more
    wait_for 10 sh -c '[ -z "$(ls -A "$TETHER_DIR")" ]'
    [ ! -s "$WORK/out" ]
}

@test "SIGHUP or SIGTERM to tether start while a service is starting: the error names that signal" {
    cfg="$(config slow.ini <<EOF
[web]
command = sh -c 'echo starting > $WORK/spawned; exec $TSERVER --never-ready'
ready = log:^never
timeout = 60
EOF
)"
    for sig in HUP TERM; do
        rm -f "$WORK/spawned"
        "$TETHER" -f "$cfg" start >"$WORK/out" 2>"$WORK/err" 3>&- &
        starter=$!
        wait_file "$WORK/spawned"
        kill -"$sig" "$starter"
        st=0
        wait "$starter" || st=$?
        [ "$st" -eq 130 ] || { echo "exit $st" >&2; cat "$WORK/err" >&2; false; }
        grep -q "interrupted (SIG$sig)" "$WORK/err" || { cat "$WORK/err" >&2; false; }
        [ ! -s "$WORK/out" ]
        [ -z "$(ls -A "$TETHER_DIR")" ]
    done
}

@test "SIGINT to tether run while a service is still starting: exit 130, nothing left" {
    cfg="$(config slow.ini <<EOF
[web]
command = sh -c 'echo starting > $WORK/spawned; exec $TSERVER --never-ready'
ready = log:^never
timeout = 60
EOF
)"
    "$TETHER" -f "$cfg" run -- touch "$WORK/cmd-ran" 2>"$WORK/err" 3>&- &
    runner=$!
    wait_file "$WORK/spawned"
    kill -INT "$runner"
    st=0
    wait "$runner" || st=$?
    [ "$st" -eq 130 ] || { echo "exit $st" >&2; cat "$WORK/err" >&2; false; }
    grep -q "interrupted (SIGINT)" "$WORK/err" || { cat "$WORK/err" >&2; false; }
    [ ! -e "$WORK/cmd-ran" ]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}
