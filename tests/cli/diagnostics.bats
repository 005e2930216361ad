#!/usr/bin/env bats
# What tether says when something goes wrong, and what it leaves out: the
# server's own answer in a failed health check, a PostgreSQL log that
# holds errors and their statements rather than checkpoints, and progress
# on stderr (-v each step, -q nothing, by default only long work).

load helpers

setup() {
    tether_setup
    # root's servers run as postgres, which must reach our work files
    chmod 0711 "$WORK"
}

teardown() { tether_teardown; }

need() {
    local b
    for b in "$@"; do
        command -v "$b" >/dev/null || skip "$b is not installed"
    done
}

psql_q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# ---- the server's own answer ----

@test "status and reset show redis's answer to the health check: NOAUTH" {
    need redis-server redis-cli
    eval "$(tether -q start redis)"
    [ "$(redis-cli -s "$TETHER_REDIS_SOCKET" config set requirepass sekrit)" = OK ]
    run tether status
    assert_status 1
    assert_output_has "NOAUTH Authentication required"
    assert_output_has "CONFIG SET requirepass"
    [[ $output != *"Device or resource busy"* ]]
    run tether reset redis
    assert_status 1
    assert_output_has "[redis] reset failed"
    assert_output_has "NOAUTH Authentication required"
    eval "$(tether stop)"
}

@test "status and reset show postgres's refusal: role not permitted to log in" {
    need psql
    eval "$(tether -q start postgresql)"
    psql_q -c "ALTER ROLE \"$TETHER_POSTGRESQL_USER\" NOLOGIN" "$TETHER_POSTGRESQL_URL"
    # tether's first connection is made now, and refused by the server
    run tether status
    assert_status 1
    assert_output_has "is not permitted to log in"
    [[ $output != *"Connection refused"* ]]
    run tether reset postgresql
    assert_status 1
    assert_output_has "[postgresql] reset failed"
    assert_output_has "is not permitted to log in"
    eval "$(tether stop)"
}

@test "a connection tether made before ALTER ROLE ... NOLOGIN does not hide it" {
    need psql
    eval "$(tether -q start postgresql)"
    tether -q reset postgresql # the worker connects, and keeps its connection
    psql_q -c "ALTER ROLE \"$TETHER_POSTGRESQL_USER\" NOLOGIN" "$TETHER_POSTGRESQL_URL"
    run tether status
    assert_status 1
    assert_output_has "role \"$TETHER_POSTGRESQL_USER\" is not permitted to log in"
    run tether reset postgresql
    assert_status 1
    assert_output_has "is not permitted to log in"
    eval "$(tether stop)"
}

# ---- the PostgreSQL log ----

@test "tether logs postgresql: a failing statement with its STATEMENT line, no checkpoints" {
    need psql
    eval "$(tether -q start postgresql)"
    # follow the log until the instance removes it: the shutdown's lines too
    tether logs postgresql -f >"$WORK/log" &
    follower=$!
    run ! psql_q -c "SELECT no_such_column_here FROM pg_class" "$TETHER_POSTGRESQL_URL"
    tether -q reset postgresql
    tether -q reset postgresql
    eval "$(tether stop)"
    wait "$follower"
    grep -q 'ERROR:  column "no_such_column_here" does not exist' "$WORK/log"
    grep -q 'STATEMENT:  SELECT no_such_column_here FROM pg_class' "$WORK/log"
    # time and pid on every line
    grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ [A-Z]+ \[[0-9]+\] STATEMENT:' "$WORK/log"
    run ! grep -q "checkpoint" "$WORK/log"
    run ! grep -q "connection authorized" "$WORK/log"
}

@test "setting.log_checkpoints = on overrides tether's off" {
    need psql
    cfg="$(config tether.ini <<'EOF'
[postgresql]
setting.log_checkpoints = on
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    tether -q reset postgresql
    run tether logs postgresql
    assert_status 0
    assert_output_has "checkpoint starting"
    eval "$(tether stop)"
}

# ---- progress on stderr ----

@test "-v: each step with its time on stderr; stdout is CMD's alone" {
    need psql
    run --separate-stderr tether -v run postgresql -- echo "CMD's own line"
    assert_status 0
    [ "$output" = "CMD's own line" ]
    ms='[0-9]+\.[0-9]+ m?s'
    grep -qE "^tether: config \(built-in\) read in $ms\$" <<<"$stderr"
    grep -qE "^tether: instance $TETHER_DIR/[0-9a-f]+ made in $ms \(helper pid [0-9]+\)\$" <<<"$stderr"
    grep -qE "^tether: \[postgresql\] prepared in $ms, started in $ms \(pid [0-9]+\)\$" <<<"$stderr"
    grep -qE "^tether: \[postgresql\] ready $ms after its start \(ready = notify" <<<"$stderr"
    grep -qE "^tether: 1 service ready in $ms\$" <<<"$stderr"
    grep -qE "^tether: echo exited with status 0 after $ms\$" <<<"$stderr"
    grep -qE "^tether: stopped and cleaned up in $ms\$" <<<"$stderr"
}

@test "-v start prints for eval as without it; -v reset and stop time their steps" {
    need redis-server redis-cli
    tether -q start redis >"$WORK/quiet.sh"
    eval "$(cat "$WORK/quiet.sh")"
    eval "$(tether stop)"
    tether -v start redis >"$WORK/verbose.sh" 2>"$WORK/err"
    # the same names, in the same order (the values are the new instance's)
    diff <(sed 's/=.*//' "$WORK/quiet.sh") <(sed 's/=.*//' "$WORK/verbose.sh")
    grep -qE '^tether: \[redis\] ready [0-9.]+ m?s after its start' "$WORK/err"
    eval "$(cat "$WORK/verbose.sh")"
    run --separate-stderr tether -v reset
    assert_status 0
    [ -z "$output" ]
    grep -qE '^tether: \[redis\] health check in [0-9.]+ m?s$' <<<"$stderr"
    grep -qE '^tether: \[redis\] reset in [0-9.]+ m?s$' <<<"$stderr"
    grep -qE '^tether: \[redis\] reset, [0-9.]+ m?s in all$' <<<"$stderr"
    # without -v: the outcome only
    run --separate-stderr tether reset
    [ "$stderr" = "tether: [redis] reset" ]
    tether -v stop >"$WORK/unset.sh" 2>"$WORK/err"
    grep -qE '^tether: instance .* stopped and cleaned up in [0-9.]+ m?s$' "$WORK/err"
    eval "$(cat "$WORK/unset.sh")"
    [ -z "${TETHER_REDIS_CONTROL_PID:-}" ]
}

@test "the PostgreSQL cache build says so by default, once; -q says nothing even then" {
    need psql
    # -q: a build, and not a word
    run --separate-stderr env TETHER_CACHE_DIR="$WORK/cache-q" "$TETHER" -q run postgresql -- true
    assert_status 0
    [ -z "$stderr" ] || { echo "-q printed: $stderr" >&2; false; }
    # the default: a build says what it does, and how long it took
    run --separate-stderr env TETHER_CACHE_DIR="$WORK/cache" "$TETHER" run postgresql -- true
    assert_status 0
    [ -z "$output" ]
    grep -qx 'tether: \[postgresql\] building the PostgreSQL cache, first run for this schema \.\.\.' <<<"$stderr"
    grep -qE '^tether: \[postgresql\] \.\.\. done in [0-9.]+ m?s$' <<<"$stderr"
    [ "$(wc -l <<<"$stderr")" -eq 2 ] || { echo "$stderr" >&2; false; }
    # built: nothing to say
    run --separate-stderr env TETHER_CACHE_DIR="$WORK/cache" "$TETHER" run postgresql -- true
    assert_status 0
    [ -z "$stderr" ] || { echo "printed: $stderr" >&2; false; }
}

@test "progress does not hide a failed start's error, and -q keeps the error" {
    cfg="$(config tether.ini <<'EOF'
[dies]
command = sh -c 'echo dying on purpose; exit 7'
ready = tcp
port = auto
EOF
)"
    run --separate-stderr tether -v -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    grep -qE '^tether: \[dies\] prepared in ' <<<"$stderr"
    grep -q 'exited with status 7' <<<"$stderr"
    run --separate-stderr tether -q -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    [[ $stderr != *"prepared in"* ]]
    grep -q 'exited with status 7' <<<"$stderr"
}
