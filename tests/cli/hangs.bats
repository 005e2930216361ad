#!/usr/bin/env bats
# What used to hang forever (issue 9, item 4): a service that exits after
# it was ready while another is still starting.  Every command that could
# hang runs under `timeout`, so that the old code fails instead of blocking.

load helpers

# the instance's state file (there is one instance per test)
state_file() {
    local f
    for f in "$TETHER_DIR"/*/state; do [ -e "$f" ] && echo "$f"; done
}

# state_has REGEX: the state file has a line matching REGEX
state_has() {
    local f
    f="$(state_file)"
    [ -n "$f" ] && grep -qE "$1" "$f"
}

# svc_pid LABEL: the pid the state file records for a service
svc_pid() {
    awk -v l="$1" '$1 == "service" && $2 == l { print $3 }' "$(state_file)"
}

# ---- item 4: a service exits after it was ready, during the start ----

slow_second() {
    config slow.ini <<EOF
[a]
command = $1
ready = none

[b]
command = $TSERVER --never-ready
ready = log:^never
timeout = 60
EOF
}

@test "start: a service that exits after it was ready while another is starting fails at once" {
    cfg="$(slow_second "sh -c 'echo going; exit 7'")"
    run timeout 20 "$TETHER" -f "$cfg" start
    assert_status 1
    assert_output_has "service 'a' exited with status 7 after it was ready"
    assert_output_has "going" # its log's tail
    [[ $output != *TETHER_A_* ]]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "run -- CMD: a service killed after it was ready fails the start at once, names the signal" {
    cfg="$(slow_second "sh -c 'kill -KILL \$\$\$\$'")"
    run timeout 20 "$TETHER" -f "$cfg" run -- touch "$WORK/cmd-ran"
    assert_status 1
    assert_output_has "service 'a' was killed by signal KILL after it was ready"
    [ ! -e "$WORK/cmd-ran" ]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "start: a ready service exits while a later one waits for it through after = (no deadline left)" {
    # c waits for a and b; a is ready at once and exits; b becomes ready
    # after that, so c could never start, and nothing has a deadline
    cfg="$(config after.ini <<EOF
[a]
command = sh -c 'touch $WORK/a.exited; exit 3'
ready = none

[b]
command = $TSERVER --tcp \${port}
port = auto
ready = exec:test -e $WORK/a.exited

[c]
command = $TSERVER --tcp \${port}
port = auto
after = a, b
EOF
)"
    run timeout 20 "$TETHER" -f "$cfg" start
    assert_status 1
    assert_output_has "service 'a' exited with status 3 after it was ready"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "a ready service exits while a reset = restart of another is in flight: both answer, status names it" {
    touch "$WORK/b-go"
    cfg="$(config restart.ini <<EOF
[a]
command = $TSERVER --tcp \${port}
port = auto

[b]
command = $TSERVER --tcp \${port}
port = auto
ready = exec:test -e $WORK/b-go
reset = restart
EOF
)"
    eval "$(tether -f "$cfg" start)"
    rm "$WORK/b-go"
    timeout 20 "$TETHER" reset b >"$WORK/reset.out" 2>&1 &
    resetter=$!
    wait_for 10 state_has "^service b [0-9]+ [0-9]+ starting"
    kill -KILL "$(cat "$TETHER_A_PIDFILE")"
    wait_for 10 state_has "^service a [0-9]+ [0-9]+ exited"
    touch "$WORK/b-go"
    st=0
    wait "$resetter" || st=$?
    [ "$st" -eq 0 ] || { echo "reset exit $st" >&2; cat "$WORK/reset.out" >&2; false; }
    grep -q "b: restarted" "$WORK/reset.out"
    run timeout 20 "$TETHER" status
    assert_status 1
    assert_output_has "service 'a' is not running: it was killed by signal KILL"
    assert_output_has "b: ready"
    eval "$(tether stop)"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "a ready service exits in the starter's acknowledgement window: the start stands, status names it" {
    # The variables went out the moment every service was ready; an exit
    # after that, even before the starter has printed them, is a crash of
    # a started instance, reported by status (and reset), not a hang.
    cfg="$(config ack.ini <<EOF
[a]
command = $TSERVER --tcp \${port}
port = auto
ready = exec:test -e $WORK/go
EOF
)"
    "$TETHER" -f "$cfg" start >"$WORK/out" 2>"$WORK/err" 3>&- &
    starter=$!
    wait_for 10 state_has "^service a [1-9][0-9]* [0-9]+ starting"
    kill -STOP "$starter"
    touch "$WORK/go"
    wait_for 10 state_has "^service a [0-9]+ [0-9]+ ready"
    kill -KILL "$(svc_pid a)"
    wait_for 10 state_has "^service a [0-9]+ [0-9]+ exited"
    kill -CONT "$starter"
    st=0
    wait "$starter" || st=$?
    [ "$st" -eq 0 ] || { echo "start exit $st" >&2; cat "$WORK/err" >&2; false; }
    eval "$(cat "$WORK/out")"
    run timeout 20 "$TETHER" status
    assert_status 1
    assert_output_has "service 'a' is not running: it was killed by signal KILL"
    eval "$(tether stop)"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}
