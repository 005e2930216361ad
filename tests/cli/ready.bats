#!/usr/bin/env bats
# Scenario 6: readiness.  A service that never becomes ready fails within
# its timeout and shows its log tail; one that exits early fails with its
# status and log; every ready = kind works and does not declare a service
# ready before it is.

load helpers

ms() { date +%s%3N; }

@test "a service that never becomes ready fails within its timeout and shows its log tail" {
    cfg="$(config never.ini <<EOF
[web]
command = sh -c 'echo "warming up, please hold"; echo "still-cold-on-stderr" >&2; exec $TSERVER --never-ready'
port = auto
timeout = 1
EOF
)"
    t0="$(ms)"
    run tether -f "$cfg" run -- true
    t1="$(ms)"
    [ "$status" -ne 0 ]
    [ $((t1 - t0)) -lt 5000 ] || { echo "took $((t1 - t0)) ms" >&2; false; }
    [ $((t1 - t0)) -ge 900 ]
    assert_output_has "[web]"
    assert_output_has "did not become ready within 1 s"
    assert_output_has "warming up, please hold"
    assert_output_has "still-cold-on-stderr"
}

@test "start: a service that never becomes ready fails, prints nothing to eval, leaves nothing" {
    cfg="$(config never.ini <<EOF
[web]
command = sh -c 'echo "never-ready-marker"; exec $TSERVER --never-ready'
ready = log:^listening
timeout = 500ms
EOF
)"
    tether -f "$cfg" start >"$WORK/out" 2>"$WORK/err" && false
    [ ! -s "$WORK/out" ]
    grep -q never-ready-marker "$WORK/err"
}

@test "a service that exits early fails with its status and log" {
    cfg="$(config early.ini <<EOF
[web]
command = $TSERVER --exit 3
ready = log:never
EOF
)"
    t0="$(ms)"
    run tether -f "$cfg" run -- true
    t1="$(ms)"
    [ "$status" -ne 0 ]
    [ $((t1 - t0)) -lt 5000 ]
    assert_output_has "[web]"
    assert_output_has "exited with status 3"
    assert_output_has "fatal: giving up"
}

@test "a service on an auto port that keeps exiting early fails after its retries" {
    cfg="$(config early.ini <<EOF
[web]
command = $TSERVER --exit 3 --tcp \${port}
port = auto
EOF
)"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "exited with status 3"
    assert_output_has "fatal: giving up"
}

@test "a missing server binary fails clearly" {
    cfg="$(config missing.ini <<EOF
[web]
command = $WORK/no-such-server --port \${port}
port = auto
EOF
)"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "no-such-server"
}

@test "every ready = kind works, and none declares a service ready before it is" {
    # each server listens only after 300 ms; CMD connects to every one at once
    cfg="$(config kinds.ini <<EOF
[tcp]
command = $TSERVER --delay 300 --tcp \${port}
port = auto
ready = tcp

[log]
command = $TSERVER --delay 300 --tcp \${port} --say "accepting connections on \${port}"
port = auto
ready = log:^accepting connections on [0-9]+$

[notify]
command = $TSERVER --delay 300 --tcp \${port} --notify
port = auto
ready = notify

[fd]
command = $TSERVER --delay 300 --tcp \${port} --ready-fd 3
port = auto
ready = fd:3

[unix]
command = $TSERVER --delay 300 --unix \${dir}/sock
ready = unix:\${dir}/sock

[unixrel]
command = $TSERVER --delay 300 --unix sock
ready = unix:sock

[exec]
command = $TSERVER --delay 300 --unix \${dir}/sock
ready = exec:test -S \${dir}/sock
EOF
)"
    run tether -f "$cfg" run -- "$PY" -c '
import os, socket
def tcp(label):
    return socket.create_connection(("127.0.0.1", int(os.environ["TETHER_%s_PORT" % label])))
def unix(label):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["TETHER_%s_DIR" % label] + "/sock")
    return s
for label, conn in (("TCP", tcp), ("LOG", tcp), ("NOTIFY", tcp), ("FD", tcp),
                    ("UNIX", unix), ("UNIXREL", unix), ("EXEC", unix)):
    got = conn(label).recv(9).decode()
    assert got == "pong\n", (label, got)
'
    assert_status 0
}

@test "socket = auto gives \${socket} and the SOCKET variable" {
    cfg="$(config sock.ini <<EOF
[web]
command = $TSERVER --delay 100 --unix \${socket}
socket = auto
ready = unix:\${socket}
EOF
)"
    run tether -f "$cfg" run -- sh -c '[ -S "$TETHER_WEB_SOCKET" ] && [ "$TETHER_WEB_SOCKET" = "$TETHER_WEB_DIR/sock" ]'
    assert_status 0
}

@test "services start in dependency order, each after the one before is ready" {
    cfg="$(config chain.ini <<EOF
[a]
command = $TSERVER --delay 200 --tcp \${port}
port = auto

[b]
command = sh -c 'exec $TSERVER --tcp \${port} --say "a at \$TETHER_A_PORT"'
port = auto
after = a
ready = log:^a at [0-9]+$
EOF
)"
    run tether -f "$cfg" run -- sh -c 'grep -qx "a at $TETHER_A_PORT" "$TETHER_B_DIR/../b.log"'
    assert_status 0
}

@test "a failing dependency stops the start, and its dependents never run" {
    cfg="$(config chainfail.ini <<EOF
[a]
command = $TSERVER --exit 4
ready = log:x

[b]
command = sh -c 'touch $WORK/b-ran; exec $TSERVER --tcp \${port}'
port = auto
after = a
EOF
)"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "[a]"
    assert_output_has "status 4"
    [ ! -e "$WORK/b-ran" ]
}

@test "a failed start shows only the last 20 lines of a flooded log" {
    cfg="$(config floodfail.ini <<EOF
[web]
command = $TSERVER --flood --crash-after 0
ready = log:^never$
EOF
)"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "exited with status 3"
    assert_output_has "crashing as asked"
    [ "$(printf '%s\n' "$output" | grep -c "flood line")" -le 20 ]
    [ "${#output}" -lt 5000 ]
}
