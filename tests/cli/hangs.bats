#!/usr/bin/env bats
# What used to hang forever (issue 9, items 4 and 5): a service that exits
# after it was ready while another is still starting, and a helper that
# does not answer (kill -STOP).  Every command that could hang runs under
# `timeout`, so that the old code fails instead of blocking.

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
    assert_output_has "[a] exited with status 7 after it was ready"
    assert_output_has "going" # its log's tail
    [[ $output != *TETHER_A_* ]]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "run -- CMD: a service killed after it was ready fails the start at once, names the signal" {
    cfg="$(slow_second "sh -c 'kill -KILL \$\$\$\$'")"
    run timeout 20 "$TETHER" -f "$cfg" run -- touch "$WORK/cmd-ran"
    assert_status 125
    assert_output_has "[a] was killed by signal KILL after it was ready"
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
    assert_output_has "[a] exited with status 3 after it was ready"
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
    grep -qF "[b] restarted" "$WORK/reset.out"
    run timeout 20 "$TETHER" status
    assert_status 1
    assert_output_has "[a] is not running: it was killed by signal KILL"
    assert_output_has "[b] ready"
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
    assert_output_has "[a] is not running: it was killed by signal KILL"
    eval "$(tether stop)"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

# ---- item 5: a helper that does not answer ----

web_config() {
    config web.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
reset = ${1:-sh -c 'echo reset >> $WORK/resets'}
timeout = ${2:-30}
EOF
}

@test "a stopped helper: status and reset fail within 5 s, name it and exit 1; after SIGCONT all is well" {
    cfg="$(web_config)"
    eval "$(tether -f "$cfg" start)"
    helper="$TETHER_WEB_CONTROL_PID"
    instdir="$(dirname "$TETHER_WEB_CONFIGFILE")"
    kill -STOP "$helper"
    run timeout 30 "$TETHER" status
    assert_status 1
    assert_output_has "[web] helper $helper of instance $instdir does not answer"
    assert_output_has "no reply to 'status' within 5 s"
    assert_output_has "it is stopped"
    assert_output_has "kill -CONT $helper"
    run timeout 30 "$TETHER" reset web
    assert_status 1
    assert_output_has "[web] reset: helper $helper of instance $instdir does not answer"
    assert_output_has "no reply to 'reset web' within 5 s"
    kill -CONT "$helper"
    run timeout 30 "$TETHER" status
    assert_status 0
    # the reset we gave up on is not run behind our back
    run timeout 30 "$TETHER" reset web
    assert_status 0
    [ "$(cat "$WORK/resets")" = reset ]
    eval "$(tether stop)"
    is_gone "$helper"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "TETHER_HELPER_TIMEOUT sets the wait; a bad value is an error" {
    cfg="$(web_config)"
    eval "$(tether -f "$cfg" start)"
    kill -STOP "$TETHER_WEB_CONTROL_PID"
    TETHER_HELPER_TIMEOUT=300ms run timeout 30 "$TETHER" status
    assert_status 1
    assert_output_has "no reply to 'status' within 0.3 s"
    kill -CONT "$TETHER_WEB_CONTROL_PID"
    TETHER_HELPER_TIMEOUT=soon run timeout 30 "$TETHER" status
    assert_status 1
    assert_output_has "TETHER_HELPER_TIMEOUT=soon is not a duration"
    eval "$(tether stop)"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "a reset that takes longer than TETHER_HELPER_TIMEOUT, but within the service's timeout, succeeds" {
    cfg="$(web_config "sh -c 'sleep 1; echo reset >> $WORK/resets'")"
    eval "$(tether -f "$cfg" start)"
    TETHER_HELPER_TIMEOUT=200ms run timeout 30 "$TETHER" reset web
    assert_status 0
    [ "$(cat "$WORK/resets")" = reset ]
    eval "$(tether stop)"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "a reset command that hangs fails after the service's timeout, and is killed" {
    cfg="$(web_config "sh -c 'echo \$\$\$\$ > $WORK/reset.pid; exec sleep 1000'" 1)"
    eval "$(tether -f "$cfg" start)"
    run timeout 30 "$TETHER" reset web
    assert_status 1
    assert_output_has "reset command"
    assert_output_has "did not finish within 1 s"
    grep -qE '^[0-9]+$' "$WORK/reset.pid"
    wait_gone "$(cat "$WORK/reset.pid")" 10
    # a failed reset leaves the service unhealthy until a reset works
    run timeout 30 "$TETHER" status
    assert_status 1
    assert_output_has "the last reset failed"
    eval "$(tether stop)"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}
