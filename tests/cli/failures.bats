#!/usr/bin/env bats
# When something fails: error messages never name a path that is gone by
# the time they are read; --keep-failed / TETHER_KEEP_FAILED=1 keep what
# failed (stopped) until `tether gc --kept`; `run -- CMD` exits 125 for a
# failure of tether's own, CMD's status otherwise.

bats_require_minimum_version 1.5.0
load helpers

# a service that says something, then exits before it is ready
bad_config() {
    config bad.ini <<EOF
[bad]
command = sh -c 'echo starting up; echo "fatal: no luck" >&2; exit 3'
ready = log:listening
EOF
}

# a service that is ready at once and runs until stopped
web_config() {
    config web.ini <<EOF
[web]
command = $TSERVER --tcp \${port} --say "web up on \${port}"
port = auto
EOF
}

# Every absolute path the output names must exist (now, after the command
# returned); prints those that do not.
missing_paths() {
    local p
    for p in $(printf '%s\n' "$output" | grep -oE '/[^ ():`'"'"'";,]+' | sed 's/[.:]$//' | sort -u); do
        [ -e "$p" ] || echo "$p"
    done
}

assert_paths_exist() {
    local gone
    gone="$(missing_paths)"
    [ -z "$gone" ] || {
        printf 'the message names paths that do not exist:\n%s\noutput:\n%s\n' "$gone" "$output" >&2
        return 1
    }
}

# nothing of ours runs or holds a port, whatever is left on disk
nothing_runs() {
    local ours
    ours="$(_our_pids)"
    [ -z "$(cookie_pids "$ours")" ] || { echo "processes with our cookie: $(cookie_pids "$ours")" >&2; return 1; }
    [ -z "$(helper_pids "$ours")" ] || { echo "helpers: $(helper_pids "$ours")" >&2; return 1; }
    [ -z "$(leaked_ports)" ] || { echo "ports: $(leaked_ports)" >&2; return 1; }
}

# the one instance directory in TETHER_DIR
only_instance() {
    local dirs=("$TETHER_DIR"/*)
    [ "${#dirs[@]}" -eq 1 ] && [ -d "${dirs[0]}" ] || { echo "instances: ${dirs[*]}" >&2; return 1; }
    echo "${dirs[0]}"
}

no_instance() {
    [ -z "$(ls -A "$TETHER_DIR")" ] || { echo "left: $(ls -A "$TETHER_DIR")" >&2; return 1; }
}

# ---- messages name no path that is gone ----

@test "a failed start shows the log's tail but names no path that the cleanup removed" {
    cfg="$(bad_config)"
    for cmd in "run -- true" "run" "start"; do
        # shellcheck disable=SC2086
        run tether -f "$cfg" $cmd
        [ "$status" -ne 0 ]
        assert_output_has "[bad] exited with status 3 before it was ready"
        assert_output_has "| fatal: no luck"
        assert_output_has "last lines of its log:"
        [[ $output != *"$TETHER_DIR"* ]] || { echo "names the instance: $output" >&2; return 1; }
        assert_paths_exist
        no_instance
    done
}

@test "a service that dies while CMD runs: the message has its log's tail and no path that is gone" {
    cfg="$(web_config)"
    run tether -f "$cfg" run -- sh -c 'kill -KILL "$(cat "$TETHER_WEB_PIDFILE")"; while kill -0 "$(cat "$TETHER_WEB_PIDFILE")" 2>/dev/null; do sleep 0.01; done'
    assert_status 125
    assert_output_has "[web] was killed by signal KILL while the command ran"
    assert_output_has "| web up on"
    [[ $output != *"$TETHER_DIR"* ]]
    assert_paths_exist
    no_instance
}

# ---- --keep-failed, TETHER_KEEP_FAILED ----

@test "run --keep-failed: a failed start keeps the instance, stopped; list shows it kept; gc leaves it; gc --kept removes it" {
    cfg="$(bad_config)"
    run tether -f "$cfg" run --keep-failed -- true
    assert_status 125
    dir="$(only_instance)"
    assert_output_has "kept instance $dir with its logs and data"
    assert_output_has "last lines of its log ($dir/bad.log):"
    assert_paths_exist
    grep -q "fatal: no luck" "$dir/bad.log"
    [ ! -e "$dir/control" ]
    nothing_runs
    run tether list
    assert_status 0
    [[ $output == *"$(basename "$dir")"*" kept "*"bad(exited)"* ]] || { echo "$output" >&2; return 1; }
    # neither the gc before every start nor `tether gc` takes it
    run tether -f "$(web_config)" run -- true
    assert_status 0
    run tether gc
    assert_status 0
    [ -d "$dir" ]
    run tether gc --kept
    assert_status 0
    assert_output_has "removed kept instance $dir"
    no_instance
    nothing_runs
}

@test "TETHER_KEEP_FAILED=1: a failed start keeps the instance (start and run), 0 and empty do not" {
    cfg="$(bad_config)"
    TETHER_KEEP_FAILED=1 run tether -f "$cfg" start
    assert_status 1
    dir="$(only_instance)"
    assert_output_has "kept instance $dir"
    assert_paths_exist
    nothing_runs
    run tether gc --kept
    no_instance
    TETHER_KEEP_FAILED=1 run tether -f "$cfg" run
    assert_status 1
    dir="$(only_instance)"
    run tether gc --kept
    for v in 0 "" no OFF False; do
        TETHER_KEEP_FAILED=$v run tether -f "$cfg" run -- true
        assert_status 125
        [[ $output != *"kept instance"* ]]
        no_instance
    done
    # a boolean as every key reads one (parse_bool), in any case
    TETHER_KEEP_FAILED=YES run tether -f "$cfg" start
    assert_status 1
    assert_output_has "kept instance $(only_instance)"
    run tether gc --kept
    no_instance
}

@test "TETHER_KEEP_FAILED=maybe is a usage error before anything starts, not a guess" {
    cfg="$(bad_config)"
    TETHER_KEEP_FAILED=maybe run tether -f "$cfg" start
    assert_status 2
    assert_output_has "TETHER_KEEP_FAILED=maybe: say yes or no"
    TETHER_KEEP_FAILED=maybe run tether -f "$cfg" run -- true
    assert_status 125
    no_instance
}

@test "run --keep-failed: a start interrupted by SIGINT is no failure: exit 130, nothing kept" {
    cfg="$(config slow.ini <<EOF
[web]
command = sh -c 'echo starting > $WORK/spawned; exec $TSERVER --never-ready'
ready = log:^never
timeout = 60
EOF
)"
    "$TETHER" -f "$cfg" run --keep-failed -- true 2>"$WORK/err" 3>&- &
    runner=$!
    wait_file "$WORK/spawned"
    kill -INT "$runner"
    st=0
    wait "$runner" || st=$?
    [ "$st" -eq 130 ] || { echo "exit $st" >&2; cat "$WORK/err" >&2; false; }
    run ! grep -q "kept instance" "$WORK/err"
    no_instance
}

@test "run --keep-failed -- CMD: a failing command keeps the stopped instance, a passing one does not" {
    cfg="$(web_config)"
    run tether -f "$cfg" run --keep-failed -- sh -c 'cat "$TETHER_WEB_PIDFILE" >"$WORK/pid"; exit 3'
    assert_status 3
    dir="$(only_instance)"
    assert_output_has "kept instance $dir with its logs and data"
    assert_paths_exist
    grep -q "web up on" "$dir/web.log"
    is_gone "$(cat "$WORK/pid")"
    nothing_runs
    run tether list
    [[ $output == *" kept "*"web(exited)"* ]] || { echo "$output" >&2; return 1; }
    run tether gc --kept
    no_instance
    run tether -f "$cfg" run --keep-failed -- true
    assert_status 0
    [ -z "$output" ]
    no_instance
}

@test "run --keep-failed -- CMD: a service that died while CMD ran keeps the instance; its log's path exists" {
    cfg="$(web_config)"
    TETHER_KEEP_FAILED=1 run tether -f "$cfg" run -- sh -c 'kill -KILL "$(cat "$TETHER_WEB_PIDFILE")"; while kill -0 "$(cat "$TETHER_WEB_PIDFILE")" 2>/dev/null; do sleep 0.01; done'
    assert_status 125
    dir="$(only_instance)"
    assert_output_has "[web] was killed by signal KILL while the command ran"
    assert_output_has "last lines of its log ($dir/web.log):"
    assert_output_has "kept instance $dir"
    assert_paths_exist
    nothing_runs
    run tether gc --kept
    no_instance
}

@test "gc --kept leaves running instances alone, stop --all leaves kept ones; gc takes no other option" {
    cfg="$(web_config)"
    eval "$(tether -f "$cfg" start)"
    run tether -f "$(bad_config)" run --keep-failed -- true
    assert_status 125
    run tether stop --all
    assert_status 0
    dir="$(only_instance)"
    [ -e "$dir/kept-failed" ]
    eval "$(tether -f "$cfg" start)"
    run tether gc --kept
    assert_status 0
    # the running one is still there and answers
    [ "$(ping_tcp "$TETHER_WEB_PORT")" = pong ]
    [ "$(ls "$TETHER_DIR" | wc -l)" -eq 1 ]
    eval "$(tether stop)"
    no_instance
    run tether gc --bogus
    assert_status 2
}

@test "gc --kept ID removes that kept instance only; an id that is not kept is an error" {
    cfg="$(bad_config)"
    run tether -f "$cfg" run --keep-failed -- true
    first="$(only_instance)"
    eval "$(tether -f "$(web_config)" start)"
    run tether -f "$cfg" run --keep-failed -- true
    second=""
    for d in "$TETHER_DIR"/*; do
        if [ "$d" != "$first" ] && [ -e "$d/kept-failed" ]; then second="$(basename "$d")"; fi
    done
    [ -n "$second" ]
    running="$(basename "$(dirname "$TETHER_WEB_CONFIGFILE")")"
    run tether gc --kept "$running"
    assert_status 1
    assert_output_has "no kept instance '$running'"
    run tether gc --kept nosuch ../x
    assert_status 1
    run tether gc --kept "$second"
    assert_status 0
    assert_output_has "removed kept instance $TETHER_DIR/$second"
    [ -d "$first" ] && [ ! -e "$TETHER_DIR/$second" ]
    [ "$(ping_tcp "$TETHER_WEB_PORT")" = pong ]
    eval "$(tether stop)"
    run tether gc --kept "$(basename "$first")"
    assert_status 0
    no_instance
}

# ---- exit status of run -- CMD ----

@test "run -- CMD exits 125 for every failure of tether's own, CMD's status otherwise" {
    cfg="$(web_config)"
    # CMD's own statuses, including 1, 2 and 125
    for s in 0 1 2 125; do
        run tether -f "$cfg" run -- sh -c "exit $s"
        assert_status "$s"
    done
    # usage errors
    run tether -f "$cfg" run --bogus -- true
    assert_status 125
    run tether --bogus run -- true
    assert_status 125
    run tether -f "$cfg" run --expire nope -- true
    assert_status 125
    run tether -f "$cfg" run --
    assert_status 125
    # config errors, an unknown service
    run tether -f "$WORK/nope.ini" run -- true
    assert_status 125
    printf '[a]\ncommand = x\n[b\n' >"$WORK/broken.ini"
    run tether -f "$WORK/broken.ini" run -- true
    assert_status 125
    run tether -f "$cfg" run nosuch -- true
    assert_status 125
    # a service that fails to start
    run tether -f "$(bad_config)" run -- true
    assert_status 125
    # not found, not executable: as a shell says
    run -127 tether -f "$cfg" run -- "$WORK/no-such-command"
    assert_status 127
    : >"$WORK/not-executable"
    run -126 tether -f "$cfg" run -- "$WORK/not-executable"
    assert_status 126
    no_instance
}

@test "run -- CMD: a service that died while CMD ran is 125 even if CMD passed, and says what CMD returned" {
    cfg="$(web_config)"
    kill_web='kill -KILL "$(cat "$TETHER_WEB_PIDFILE")"; while kill -0 "$(cat "$TETHER_WEB_PIDFILE")" 2>/dev/null; do sleep 0.01; done'
    run tether -f "$cfg" run -- sh -c "$kill_web"
    assert_status 125
    [[ $output != *"the command itself exited"* ]]
    run tether -f "$cfg" run -- sh -c "$kill_web; exit 4"
    assert_status 125
    assert_output_has "(the command itself exited with status 4)"
    no_instance
}

@test "run -- CMD: a helper killed while CMD ran is 125" {
    cfg="$(web_config)"
    run tether -f "$cfg" run -- sh -c 'kill -KILL "$TETHER_WEB_CONTROL_PID"; exit 0'
    assert_status 125
    assert_output_has "the helper was killed (signal KILL) while the command ran"
    [[ $output != *"cannot tell the helper"* ]]
    no_instance
}

@test "start, run without CMD and gc keep their exit codes" {
    run tether -f "$(bad_config)" start
    assert_status 1
    run tether -f "$(bad_config)" run
    assert_status 1
    run tether -f "$WORK/nope.ini" start
    assert_status 2
    run tether -f "$WORK/nope.ini" run
    assert_status 2
    run tether --bogus run
    assert_status 2
    run tether start --bogus
    assert_status 2
    run tether gc
    assert_status 0
    no_instance
}
