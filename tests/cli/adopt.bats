#!/usr/bin/env bats
# Issue 9, items 6 and 7: what the helper adopts (as child subreaper) and
# whatever descends from its services is recorded in the instance state, so
# that gc after a SIGKILL of the helper is as good as a clean stop, even for
# a daemon that cleared its environment (no TETHER_COOKIE to find it by);
# and gc, status and stop from another pid namespace, or by another user,
# leave the instance alone and say why.
#
# The processes these tests make run under `env -i`: the helpers' leftover
# checks (which look for TETHER_DIR and TETHER_COOKIE in the environment)
# cannot see them, so each test notes its own (pid and start time, in
# $WORK/mine) and the teardown kills those that are still there.

load helpers

setup() {
    tether_setup
    # the daemons below clear their environment: give them absolute paths
    SLEEP="$(command -v sleep)"
    export SLEEP
}

teardown() {
    local pid start
    if [ -n "${WORK:-}" ] && [ -f "$WORK/mine" ]; then
        while read -r pid start; do
            [ "$(starttime "$pid" 2>/dev/null)" = "$start" ] && kill -KILL "$pid" 2>/dev/null
        done <"$WORK/mine"
    fi
    tether_teardown
}

# mine PIDFILE: wait for a pid file, note its process as ours, print the pid
mine() {
    local pid
    wait_file "$1" 10
    read -r pid <"$1"
    echo "$pid $(starttime "$pid")" >>"$WORK/mine"
    echo "$pid"
}

# the instance directory of the services in the environment
instdir() { dirname "$TETHER_WEB_CONFIGFILE"; }

# recorded PID: the instance state lists PID as one of its processes
recorded() { grep -q "^descendant $1 " "$(instdir)/state"; }

# kill_helper: SIGKILL the helper of the instance in the environment
kill_helper() {
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
}

# gc_reaps PID...: `tether gc` reaps the instance and every PID given
gc_reaps() {
    local p
    run tether gc
    assert_status 0
    assert_output_has "reaped 1 stale instance"
    for p in "$@"; do wait_gone "$p" 5; done
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

# daemon.sh PIDFILE: write our pid, then sleep with an empty environment
daemon_script() {
    cat >"$WORK/daemon.sh" <<'EOF'
echo $$ >"$1.tmp" && mv "$1.tmp" "$1"
exec "$SLEEP" 1007
EOF
}

@test "gc after SIGKILL of the helper kills an adopted daemon that cleared its environment" {
    daemon_script
    # the issue's case: setsid env -i, its parent subshell exits at once,
    # the daemon is adopted by the helper
    cfg="$(config envi.ini <<EOF
[web]
command = sh -c '(setsid env -i SLEEP=$SLEEP sh $WORK/daemon.sh $WORK/d.pid &); exec $SLEEP 1008'
ready = exec:test -s $WORK/d.pid
EOF
)"
    eval "$(tether -f "$cfg" start)"
    d="$(mine "$WORK/d.pid")"
    # ready means recorded: the helper scans its tree when a service is ready
    recorded "$d"
    run ! grep -q "TETHER_COOKIE" "/proc/$d/environ"
    kill_helper
    run ! is_gone "$d"
    gc_reaps "$d"
}

@test "gc kills a double-forked setsid env -i daemon forked after the service was ready" {
    daemon_script
    # forked late (on a signal), through two levels that both exit
    cat >"$WORK/svc.sh" <<'EOF'
trap '( (setsid env -i SLEEP="$SLEEP" sh "$1/daemon.sh" "$1/d.pid" &) & )' USR1
echo $$ >"$1/svc.pid.tmp" && mv "$1/svc.pid.tmp" "$1/svc.pid"
while :; do "$SLEEP" 0.05; done
EOF
    cfg="$(config late.ini <<EOF
[web]
command = sh $WORK/svc.sh $WORK
ready = exec:test -s $WORK/svc.pid
EOF
)"
    eval "$(tether -f "$cfg" start)"
    kill -USR1 "$(cat "$WORK/svc.pid")"
    d="$(mine "$WORK/d.pid")"
    # the helper notices the new process on its own, within its scan period
    wait_for 5 recorded "$d"
    kill_helper
    gc_reaps "$d"
}

@test "gc kills a recorded grandchild whose parent (not the helper) exits after the helper died" {
    # mid: a child of the service, with an empty environment, in its own
    # session; it forks the grandchild and lives until we let it exit
    cat >"$WORK/mid.sh" <<'EOF'
"$SLEEP" 1009 &
echo $! >"$1/g.pid.tmp" && mv "$1/g.pid.tmp" "$1/g.pid"
echo $$ >"$1/mid.pid.tmp" && mv "$1/mid.pid.tmp" "$1/mid.pid"
exec "$SLEEP" 1010
EOF
    cfg="$(config mid.ini <<EOF
[web]
command = sh -c 'setsid env -i SLEEP=$SLEEP sh $WORK/mid.sh $WORK & exec $SLEEP 1008'
ready = exec:test -s $WORK/mid.pid
EOF
)"
    eval "$(tether -f "$cfg" start)"
    g="$(mine "$WORK/g.pid")"
    mid="$(mine "$WORK/mid.pid")"
    recorded "$g"
    recorded "$mid"
    # the grandchild's parent is mid, not the helper
    read -r stat <"/proc/$g/stat"
    set -- ${stat##*) }
    [ "$2" = "$mid" ]
    kill_helper
    # mid dies after the helper: the grandchild goes to init, unrecorded by
    # anyone but the state file
    kill -KILL "$mid"
    wait_gone "$mid" 5
    run ! is_gone "$g"
    gc_reaps "$g"
}

@test "gc kills what a recorded process forks after the helper died" {
    # the recorded process outlives the helper and forks only then: gc
    # finds the new one as its descendant, not through the record
    cat >"$WORK/late.sh" <<'EOF'
echo $$ >"$1/late.pid.tmp" && mv "$1/late.pid.tmp" "$1/late.pid"
while [ ! -e "$1/go" ]; do "$SLEEP" 0.02; done
"$SLEEP" 1011 &
echo $! >"$1/g.pid.tmp" && mv "$1/g.pid.tmp" "$1/g.pid"
wait
EOF
    cfg="$(config late.ini <<EOF
[web]
command = sh -c 'setsid env -i SLEEP=$SLEEP sh $WORK/late.sh $WORK & exec $SLEEP 1008'
ready = exec:test -s $WORK/late.pid
EOF
)"
    eval "$(tether -f "$cfg" start)"
    late="$(mine "$WORK/late.pid")"
    recorded "$late"
    kill_helper
    touch "$WORK/go"
    g="$(mine "$WORK/g.pid")"
    gc_reaps "$late" "$g"
}

@test "gc kills a daemon that left its session and process group (python setsid, setpgid)" {
    command -v "$PY" >/dev/null || skip "no python3"
    cat >"$WORK/py.py" <<'EOF'
import os, sys
if os.fork():
    os._exit(0)
os.setpgid(0, 0)
if os.fork():
    os._exit(0)
os.setsid()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
os.execve(os.environ["SLEEP"], ["sleep", "1012"], {})
EOF
    cfg="$(config py.ini <<EOF
[web]
command = sh -c 'env -i SLEEP=$SLEEP $PY $WORK/py.py $WORK/d.pid; exec $SLEEP 1008'
ready = exec:test -s $WORK/d.pid
EOF
)"
    eval "$(tether -f "$cfg" start)"
    d="$(mine "$WORK/d.pid")"
    read -r stat <"/proc/$d/stat"
    set -- ${stat##*) }
    [ "$4" = "$d" ] && [ "$3" = "$d" ] # its own session and group
    recorded "$d"
    kill_helper
    gc_reaps "$d"
}

@test "a clean stop and gc agree: stop kills the same env -i daemon" {
    daemon_script
    cfg="$(config envi.ini <<EOF
[web]
command = sh -c '(setsid env -i SLEEP=$SLEEP sh $WORK/daemon.sh $WORK/d.pid &); exec $SLEEP 1008'
ready = exec:test -s $WORK/d.pid
EOF
)"
    eval "$(tether -f "$cfg" start)"
    d="$(mine "$WORK/d.pid")"
    eval "$(tether stop)"
    wait_gone "$d" 5
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

# ---- the record is checked before anything is killed ----

# write_state DIR HELPER_PID HELPER_START [LINE...]: a stale instance
write_state() {
    local dir="$1" helper="$2" hstart="$3"
    shift 3
    mkdir -m 0700 "$dir"
    : >"$dir/lock"
    {
        printf 'tether-state 1\nid %s\nboot %s\ncookie %s-f00dfeedf00dfeed\n' \
            "${dir##*/}" "$(cat /proc/sys/kernel/random/boot_id)" "${dir##*/}"
        printf 'prefix TETHER\ncreated %s\nhelper %s %s\n' "$(date +%s)" "$helper" "$hstart"
        printf '%s\n' "$@"
        printf 'config /nonexistent/tether.ini\n'
    } >"$dir/state"
}

@test "gc: a recorded descendant with the right pid and start time is killed, and its children" {
    sh -c '"$SLEEP" 1013 & echo $! > "$WORK/child.pid"; wait' 3>&- &
    victim=$!
    child="$(mine "$WORK/child.pid")"
    write_state "$TETHER_DIR/0123456789abcdef" 999999 1 \
        "descendant $victim $(starttime "$victim")"
    run tether gc
    assert_status 0
    wait_gone "$victim" 5
    wait_gone "$child" 5
    [ ! -e "$TETHER_DIR/0123456789abcdef" ]
}

@test "gc: a recorded descendant pid reused by another process (start time differs) is not killed" {
    sh -c '"$SLEEP" 1014 & echo $! > "$WORK/child.pid"; wait' 3>&- &
    victim=$!
    child="$(mine "$WORK/child.pid")"
    write_state "$TETHER_DIR/0123456789abcdef" 999999 1 \
        "descendant $victim $(($(starttime "$victim") + 3))"
    run tether gc
    alive=1
    { is_gone "$victim" || is_gone "$child"; } && alive=0
    kill "$victim" "$child" 2>/dev/null || true
    wait "$victim" || true
    assert_status 0
    [ "$alive" = 1 ]
    [ ! -e "$TETHER_DIR/0123456789abcdef" ]
}

@test "gc run by a recorded process does not stop itself" {
    cat >"$WORK/inside.sh" <<'EOF'
echo $$ >"$1/sh.pid.tmp" && mv "$1/sh.pid.tmp" "$1/sh.pid"
while [ ! -e "$1/go" ]; do "$SLEEP" 0.02; done
# gc's pid on record before gc runs: gc kills this shell at once
sh -c 'echo $$ >"$1/gc.pid.tmp" && mv "$1/gc.pid.tmp" "$1/gc.pid" && exec "$TETHER" gc' \
    sh "$1" >"$1/gc.out" 2>&1 &
wait
EOF
    sh "$WORK/inside.sh" "$WORK" 3>&- &
    inside="$(mine "$WORK/sh.pid")"
    write_state "$TETHER_DIR/0123456789abcdef" 999999 1 \
        "descendant $inside $(starttime "$inside")"
    touch "$WORK/go"
    gc="$(mine "$WORK/gc.pid")"
    # it kills the recorded process that started it, and finishes
    wait_gone "$gc" 10
    wait_gone "$inside" 5
    grep -q "reaped 1 stale instance" "$WORK/gc.out"
    [ ! -e "$TETHER_DIR/0123456789abcdef" ]
}

# ---- pid namespaces and other users ----

# in_pidns CMD...: run CMD in a new pid namespace with its own /proc (a
# normal user gets one inside a user namespace where it is root)
in_pidns() {
    if [ "$(id -u)" = 0 ]; then
        unshare -fp --mount-proc "$@"
    else
        unshare -Urfp --mount-proc "$@"
    fi
}

need_unshare() {
    in_pidns true 2>/dev/null || skip "unshare -fp --mount-proc (-U as a user) does not work here"
}

@test "gc in another pid namespace leaves a stale host instance and its processes alone" {
    need_unshare
    daemon_script
    cfg="$(config envi.ini <<EOF
[web]
command = sh -c '(setsid env -i SLEEP=$SLEEP sh $WORK/daemon.sh $WORK/d.pid &); exec $SLEEP 1008'
ready = exec:test -s $WORK/d.pid
EOF
)"
    eval "$(tether -f "$cfg" start)"
    d="$(mine "$WORK/d.pid")"
    inst="$(instdir)"
    kill_helper
    run in_pidns "$TETHER" gc
    assert_status 0
    assert_output_has "belongs to another pid namespace (pid:["
    assert_output_has "reaped 0 stale instances"
    [ -e "$inst/state" ]
    run ! is_gone "$d"
    # from its own namespace, gc does the job
    gc_reaps "$d"
}

@test "status and stop from another pid namespace say so, and leave the instance running" {
    need_unshare
    cfg="$(config one.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
EOF
)"
    eval "$(tether -f "$cfg" start)"
    run in_pidns "$TETHER" status
    [ "$status" -ne 0 ]
    assert_output_has "belongs to another pid namespace (pid:["
    assert_output_has "run tether from there"
    [[ $output != *"is gone"* ]]
    run in_pidns "$TETHER" stop
    [ "$status" -ne 0 ]
    assert_output_has "belongs to another pid namespace (pid:["
    run in_pidns "$TETHER" gc
    assert_status 0
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "status run by another user says whose instance it is, not that the helper is gone" {
    [ "$(id -u)" = 0 ] || skip "needs root (to run as nobody)"
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$TETHER" --version >/dev/null 2>&1 ||
        skip "nobody cannot run $TETHER"
    cfg="$(config one.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
EOF
)"
    eval "$(tether -f "$cfg" start)"
    run setpriv --reuid=nobody --regid=nogroup --clear-groups "$TETHER" status
    [ "$status" -ne 0 ]
    assert_output_has "belongs to another user (uid 0)"
    [[ $output != *"is gone"* ]]
    run setpriv --reuid=nobody --regid=nogroup --clear-groups "$TETHER" stop
    [ "$status" -ne 0 ]
    assert_output_has "belongs to another user (uid 0)"
    run tether status
    assert_status 0
    eval "$(tether stop)"
}
