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
    assert_output_has "reset redis failed"
    assert_output_has "NOAUTH Authentication required"
    eval "$(tether stop)"
}

@test "status and reset show postgres's refusal: role not permitted to log in" {
    need psql
    eval "$(tether -q start postgresql)"
    psql_q -c "ALTER ROLE $TETHER_POSTGRESQL_USER NOLOGIN" "$TETHER_POSTGRESQL_URL"
    # tether's first connection is made now, and refused by the server
    run tether status
    assert_status 1
    assert_output_has "is not permitted to log in"
    [[ $output != *"Connection refused"* ]]
    run tether reset postgresql
    assert_status 1
    assert_output_has "reset postgresql failed"
    assert_output_has "is not permitted to log in"
    eval "$(tether stop)"
}

@test "a connection tether made before ALTER ROLE ... NOLOGIN does not hide it" {
    need psql
    eval "$(tether -q start postgresql)"
    tether -q reset postgresql # the worker connects, and keeps its connection
    psql_q -c "ALTER ROLE $TETHER_POSTGRESQL_USER NOLOGIN" "$TETHER_POSTGRESQL_URL"
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
