#!/usr/bin/env bats
# A half-removed instance (issue 9, messages): a gc or a helper killed while
# it removed an instance directory.  gc used to skip one without a lock file
# silently for 60 s (list showing it as stale meanwhile).  Now a removal
# renames the directory to .rm-ID under a lock on the directory itself, and
# gc reaps a .rm- directory nobody holds, and a lock-less one whose helper
# is dead, at once, saying so.

load helpers

web_config() {
    config web.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
EOF
}

# start an instance and SIGKILL its helper: a stale instance, in $instdir
stale_instance() {
    eval "$(tether -f "$(web_config)" start)"
    instdir="$(dirname "$TETHER_WEB_CONFIGFILE")"
    web="$(cat "$TETHER_WEB_PIDFILE")"
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
    wait_gone "$web" 5
}

@test "gc: an instance whose lock file is gone and whose helper is dead is reaped at once, and said so" {
    stale_instance
    # what a gc killed half-way through removing it in place left
    rm "$instdir/lock"
    run tether list
    assert_output_has "stale"
    run tether gc
    assert_status 0
    assert_output_has "reaped half-removed instance $instdir"
    assert_output_has "gc: reaped 1 stale instance"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "gc: a .rm- directory is reaped at once once nobody holds it; while someone does, it is left alone" {
    stale_instance
    id="${instdir##*/}"
    mv "$instdir" "$TETHER_DIR/.rm-$id"
    # a remover at work holds the directory's lock
    flock "$TETHER_DIR/.rm-$id" sh -c 'echo $$ > "$0"; exec sleep 1000' "$WORK/holder" &
    holder_job=$!
    wait_file "$WORK/holder"
    run tether gc
    assert_status 0
    assert_output_has "gc: reaped 0 stale instances"
    [ -d "$TETHER_DIR/.rm-$id" ]
    kill "$(cat "$WORK/holder")"
    wait "$holder_job" || true
    run tether list
    [[ $output != *"$id"* ]]
    run tether gc
    assert_status 0
    assert_output_has "reaped half-removed instance $TETHER_DIR/.rm-$id"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "gc: a lock-less instance whose helper is alive is left alone, and the report says why" {
    eval "$(tether -f "$(web_config)" start)"
    instdir="$(dirname "$TETHER_WEB_CONFIGFILE")"
    rm "$instdir/lock"
    run tether gc
    assert_status 0
    assert_output_has "left $instdir alone: it has no lock file, but its helper $TETHER_WEB_CONTROL_PID is alive"
    run tether status
    assert_status 0
    eval "$(tether stop)"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "gc killed while it removes an instance: the next gc reaps the rest at once" {
    stale_instance
    id="${instdir##*/}"
    # enough files that the removal takes a while
    "$PY" -c 'import os, sys
d = os.path.join(sys.argv[1], "junk"); os.mkdir(d)
for i in range(50000): open(os.path.join(d, "f%d" % i), "w").close()' "$instdir/web"
    # start a gc, and SIGKILL it as soon as it has begun the removal
    "$PY" - "$TETHER" "$TETHER_DIR" "$id" <<'EOF'
import os, signal, subprocess, sys, time
tether, root, inst = sys.argv[1:]
gc = subprocess.Popen([tether, "gc"], stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 60
while ".rm-" + inst not in os.listdir(root):
    if gc.poll() is not None or time.monotonic() > deadline:
        sys.exit("gc finished (or took too long) before its removal could be caught")
os.kill(gc.pid, signal.SIGKILL)
gc.wait()
EOF
    [ -d "$TETHER_DIR/.rm-$id" ]
    run tether gc
    assert_status 0
    assert_output_has "reaped half-removed instance $TETHER_DIR/.rm-$id"
    [ -z "$(ls -A "$TETHER_DIR")" ]
}
