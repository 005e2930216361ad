#!/usr/bin/env bats
# Never drop an error: what the helper could not do reaches the user.  In
# `tether run` its warnings go to the terminal; a helper in the background
# (`tether start`) keeps them in its log beside the instance directory
# (STATE_ROOT/ID.log, made at the first warning), which `tether status`
# shows, and `tether stop` (or gc, for an instance that went without a
# stop) shows and removes.

bats_require_minimum_version 1.5.0
load helpers

web_config() {
    config web.ini <<EOF
[tether]
prefix = TT
[web]
command = $TSERVER --tcp \${port}
port = auto
EOF
}

# Make the helper's next write of its state file fail, for root too: the
# name is a directory (the rename onto it fails).  Then the service dies:
# the helper writes its state.
break_state() {
    mv "$TT_WEB_DIR/../state" "$WORK/state.saved"
    mkdir -p "$TT_WEB_DIR/../state/x"
    kill "$(cat "$TT_WEB_PIDFILE")"
}

# Put the state back: status and stop find the helper by it.
mend_state() {
    rm -r "$TT_WEB_DIR/../state"
    mv "$WORK/state.saved" "$TT_WEB_DIR/../state"
}

# $id, $log: the instance's id and its helper's log
instance_names() {
    id=$(basename "$(cd "$TT_WEB_DIR/.." && pwd)")
    log="$TETHER_DIR/$id.log"
}

@test "a state file the helper cannot write: status shows the warning, stop too, then nothing is left" {
    eval "$(tether -q -f "$(web_config)" start)"
    instance_names
    [ ! -e "$log" ] # no warning, no log
    break_state
    wait_file "$log"
    mend_state
    # beside the instance, not in it: the helper removes that as it exits
    [ "$(dirname "$log")" = "$TETHER_DIR" ]
    run tether status
    assert_output_has "tether: warning: cannot write $TETHER_DIR/$id/state: Is a directory"
    # said once, though the helper retries at every tick of its record
    [ "$(grep -c 'warning: cannot write' "$log")" -eq 1 ]
    run tether stop
    assert_status 1
    assert_output_has "tether: warning: cannot write $TETHER_DIR/$id/state: Is a directory"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "a helper that went without a stop: stop shows its warnings after it exited" {
    eval "$(tether -q -f "$(web_config)" start)"
    instance_names
    break_state
    wait_file "$log"
    mend_state
    kill -TERM "$TT_WEB_CONTROL_PID" # as --expire or --watch-pid would end it
    wait_gone "$TT_WEB_CONTROL_PID"
    [ ! -e "$TETHER_DIR/$id" ]
    [ -s "$log" ]
    run tether stop
    assert_status 1
    assert_output_has "tether: warning: cannot write $TETHER_DIR/$id/state"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "gc of a SIGKILLed helper shows its warnings and removes its log" {
    eval "$(tether -q -f "$(web_config)" start)"
    instance_names
    break_state
    wait_file "$log"
    mend_state
    kill -KILL "$TT_WEB_CONTROL_PID"
    wait_gone "$TT_WEB_CONTROL_PID"
    run tether gc
    assert_output_has "tether: warning: cannot write $TETHER_DIR/$id/state"
    [ -z "$(ls -A "$TETHER_DIR")" ]
    unset TT_WEB_CONTROL_PID
}

@test "run: the helper's warnings go to the terminal, and no log is left" {
    cfg=$(web_config)
    # the command breaks the state file and kills the service, then waits
    # until the helper has reaped it: `finished` writes the state
    run --separate-stderr tether -q -f "$cfg" run -- sh -c '
        d=$(dirname "$TT_WEB_DIR"); pid=$(cat "$TT_WEB_PIDFILE")
        mv "$d/state" "$d/state.saved" && mkdir -p "$d/state/x" && kill "$pid"
        while kill -0 "$pid" 2>/dev/null && ! grep -q "^State:.*Z" /proc/$pid/status 2>/dev/null; do
            sleep 0.01
        done'
    case $stderr in
    *"tether: warning: cannot write $TETHER_DIR/"*"/state: Is a directory"*) ;;
    *) echo "stderr: $stderr" >&2; return 1 ;;
    esac
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "run: a directory the helper cannot remove is named on the terminal, with why" {
    [ "$EUID" -eq 0 ] || skip "mounting a tmpfs needs root"
    cfg=$(web_config)
    # a mount in the service's directory: the helper never removes across one
    run --separate-stderr tether -q -f "$cfg" run -- sh -c '
        mkdir "$TT_WEB_DIR/m" && mount -t tmpfs tether-test "$TT_WEB_DIR/m" &&
        echo "$TT_WEB_DIR" >"$0"' "$WORK/dir" || true
    [ -s "$WORK/dir" ] || skip "cannot mount a tmpfs here"
    left=$(ls -d "$TETHER_DIR"/.rm-*)
    umount "$left/web/m"
    case $stderr in
    *"tether: warning: could not remove instance $(cat "$WORK/dir" | xargs dirname): "*"web/m is a mount point; not removed: unmount it"*) ;;
    *) echo "stderr: $stderr" >&2; return 1 ;;
    esac
    tether -q gc
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "start: a warning while the instance starts is printed by start itself, even with -q" {
    # the service breaks the state file before it listens: the helper's
    # write as it becomes ready fails
    cfg=$(config web.ini <<EOF
[tether]
prefix = TT
[web]
command = sh -c 'd=\${dir}/..; mv \$d/state \$d/state.saved && mkdir -p \$d/state/x && exec $TSERVER --tcp \${port}'
port = auto
EOF
)
    run --separate-stderr tether -q -f "$cfg" start
    assert_status 0
    case $stderr in
    *"tether: warning: cannot write $TETHER_DIR/"*"/state: Is a directory"*) ;;
    *) echo "stderr: $stderr" >&2; return 1 ;;
    esac
    eval "$output"
    rm -r "$TT_WEB_DIR/../state"
    mv "$TT_WEB_DIR/../state.saved" "$TT_WEB_DIR/../state"
    run tether stop
    assert_status 0 # it was said already
    [ -z "$(ls -A "$TETHER_DIR")" ]
}
