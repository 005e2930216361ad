#!/usr/bin/env bats
# Scenario 7: 16 concurrent `tether run` with port = auto: all succeed, all
# ports are distinct while all 16 instances are up at once, nothing is left.

load helpers

N=16

@test "16 concurrent runs with port = auto: all succeed, 32 distinct ports" {
    cfg="$(config auto.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto

[side]
command = $TSERVER --tcp \${port}
port = auto
EOF
)"
    # Each CMD checks both services, records their ports, says it is up and
    # then blocks on its own fifo (no polling) until every run is up: the
    # ports must differ among instances that live at the same time.
    pids=()
    for i in $(seq 1 $N); do
        "$TETHER" -q -f "$cfg" run -- bash -c '
            "$PY" -c "
import os, socket
for l in (\"WEB\", \"SIDE\"):
    s = socket.create_connection((\"127.0.0.1\", int(os.environ[\"TETHER_%s_PORT\" % l])))
    assert s.recv(9) == b\"pong\\n\"
" || exit 8
            echo "$TETHER_WEB_PORT" > "$WORK/port.web.$0"
            echo "$TETHER_SIDE_PORT" > "$WORK/port.side.$0"
            mkfifo "$WORK/go.$0"
            exec 9<>"$WORK/go.$0"
            touch "$WORK/up.$0"
            read -r -t 120 -u 9 _ || exit 9' "$i" >"$WORK/out.$i" 2>&1 3>&- &
        pids+=($!)
    done
    # wait until all are up, or one run has ended early (it failed)
    deadline=$(($(now_ms) + 120000))
    shopt -s nullglob
    while :; do
        up=("$WORK"/up.*)
        [ ${#up[@]} -lt $N ] || break
        [ "$(jobs -rp | wc -l)" -eq $N ] || break
        [ "$(now_ms)" -le "$deadline" ] || break
        sleep 0.02
    done
    allup=${#up[@]}
    # release them all (opening read-write never blocks, even if one died)
    for f in "$WORK"/go.*; do
        exec {w}<>"$f"
        echo go >&$w
        exec {w}>&-
    done
    failed=0
    for i in $(seq 1 $N); do
        st=0
        wait "${pids[$((i - 1))]}" || st=$?
        if [ "$st" -ne 0 ]; then
            echo "run $i exited $st:" >&2
            cat "$WORK/out.$i" >&2
            failed=1
        fi
    done
    [ "$failed" = 0 ]
    [ "$allup" -eq $N ]
    [ "$(cat "$WORK"/port.* | wc -l)" -eq $((2 * N)) ]
    [ "$(cat "$WORK"/port.* | sort -u | wc -l)" -eq $((2 * N)) ]
}
