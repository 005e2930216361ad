#!/usr/bin/env bats
# The pgbouncer and influxdb recipes: no config needed, their real clients
# (psql through pgbouncer, the influx CLI and curl), reset really resets,
# passwords on TCP, gc after a SIGKILLed helper, a missing binary, a bad
# option.

load helpers

setup() { tether_setup; }

need_pgbouncer() {
    # Debian's is in /usr/sbin, which the recipe names (not on a user's PATH)
    [ -x /usr/sbin/pgbouncer ] || skip "pgbouncer is not installed (apt-get install pgbouncer)"
    command -v psql >/dev/null || skip "psql is not installed (apt-get install postgresql-client)"
}

need_influxdb() {
    command -v influxd >/dev/null || skip "influxd is not installed (apt-get install influxdb)"
    command -v influx >/dev/null || skip "influx is not installed (apt-get install influxdb-client)"
    command -v curl >/dev/null || skip "curl is not installed (apt-get install curl)"
}

teardown() { tether_teardown; }

state_empty() { [ -z "$(ls -A "$TETHER_DIR")" ]; }

@test "influxdb with no config file: the influx CLI and curl, a private socket, the RPC port moved" {
    need_influxdb
    run tether run influxdb -- sh -c '
        set -e
        env | sort > "$WORK/env"
        cp "$TETHER_INFLUXDB_DIR/influxdb.conf" "$WORK/conf"
        stat -c %a "$TETHER_INFLUXDB_SOCKET" > "$WORK/mode"
        # INFLUX_USERNAME and INFLUX_PASSWORD are what the CLI reads
        influx -host 127.0.0.1 -port "$TETHER_INFLUXDB_PORT" -database "$TETHER_INFLUXDB_DATABASE" \
            -execute "INSERT cpu v=1"
        influx -host 127.0.0.1 -port "$TETHER_INFLUXDB_PORT" -database tether -format csv \
            -execute "SELECT v FROM cpu"
        curl -sS --unix-socket "$TETHER_INFLUXDB_SOCKET" -u "$INFLUX_USERNAME:$INFLUX_PASSWORD" \
            -XPOST http://x/query --data-urlencode "q=SHOW DATABASES"; echo'
    assert_status 0
    assert_output_has "cpu,"
    assert_output_has '"values":[["tether"]]'
    grep -q '^TETHER_INFLUXDB_URL=http://127.0.0.1:[0-9]*$' "$WORK/env"
    grep -q '^TETHER_INFLUXDB_DSN=influxdb://tether:[0-9a-f]\{32\}@127.0.0.1:[0-9]*/tether$' "$WORK/env"
    grep -qx 'TETHER_INFLUXDB_USER=tether' "$WORK/env"
    grep -qx 'TETHER_INFLUXDB_DATABASE=tether' "$WORK/env"
    grep -q '^INFLUX_PASSWORD=[0-9a-f]\{32\}$' "$WORK/env"
    [ "$(cat "$WORK/mode")" = 700 ]
    # the RPC listener is not on the fixed 127.0.0.1:8088
    grep -q '^bind-address = "127.0.0.1:[0-9]*"$' "$WORK/conf"
    run ! grep -q 8088 "$WORK/conf"
    grep -q "dir = \"$TETHER_DIR/" "$WORK/conf"
}

@test "influxdb: reset drops and makes the database again; status; no password, no access" {
    need_influxdb
    eval "$(tether start influxdb)"
    q() { curl -sS -u "tether:$TETHER_INFLUXDB_PASSWORD" -XPOST "$TETHER_INFLUXDB_URL/query?db=tether" \
        --data-urlencode "q=$1"; }
    curl -sS -u "tether:$TETHER_INFLUXDB_PASSWORD" -XPOST "$TETHER_INFLUXDB_URL/write?db=tether" \
        --data-binary 'm v=1'
    run q 'SELECT * FROM m'
    assert_output_has '"name":"m"'
    run tether reset influxdb
    assert_status 0
    run q 'SELECT * FROM m'
    [[ $output != *'"name":"m"'* ]]
    run q 'SHOW DATABASES'
    assert_output_has '"values":[["tether"]]'
    run tether status
    assert_status 0
    # a local user without the instance's password gets nothing
    run curl -sS -o /dev/null -w '%{http_code}' -XPOST "$TETHER_INFLUXDB_URL/query" \
        --data-urlencode 'q=SHOW DATABASES'
    [ "$output" = 401 ]
    run curl -sS -o /dev/null -w '%{http_code}' -u tether:wrong -XPOST "$TETHER_INFLUXDB_URL/query" \
        --data-urlencode 'q=SHOW DATABASES'
    [ "$output" = 401 ]
    # status reports a stopped server (the ping gets no answer)
    kill -STOP "$(cat "$TETHER_INFLUXDB_PIDFILE")"
    run tether status
    kill -CONT "$(cat "$TETHER_INFLUXDB_PIDFILE")"
    [ "$status" -ne 0 ]
    eval "$(tether stop)"
}

@test "pgbouncer with no config file: psql through it reaches the PostgreSQL service" {
    need_pgbouncer
    run tether run postgresql pgbouncer -- sh -c '
        set -e
        env | sort > "$WORK/env"
        stat -c %a "$TETHER_PGBOUNCER_DIR" > "$WORK/mode"
        psql -X -At "$TETHER_PGBOUNCER_URL" -c "SELECT current_database()"
        # the admin console answers too
        psql -X -At -h "$TETHER_PGBOUNCER_SOCKET_DIR" -p "$TETHER_PGBOUNCER_PORT" \
            -U "$TETHER_PGBOUNCER_USER" pgbouncer -c "SHOW VERSION"'
    assert_status 0
    assert_output_has tether
    assert_output_has "PgBouncer 1."
    dir="$(sed -n 's/^TETHER_PGBOUNCER_DIR=//p' "$WORK/env")"
    [[ $dir == "$TETHER_DIR"/*/pgbouncer ]]
    grep -q "^TETHER_PGBOUNCER_URL=postgresql://[a-z_0-9-]*@/tether?host=%2F.*pgbouncer&port=[0-9]*$" "$WORK/env"
    [ "$(cat "$WORK/mode")" = 700 ]
    # PG* stay PostgreSQL's unless asked (native_env = yes)
    grep -qx "PGHOST=${dir%/pgbouncer}/postgresql" "$WORK/env"
}

@test "pgbouncer: a reset of PostgreSQL behind it, a reset of its own, status" {
    need_pgbouncer
    eval "$(tether start postgresql pgbouncer)"
    psql -X -q "$TETHER_PGBOUNCER_URL" -c 'CREATE TABLE t (a int)'
    # its pool holds a server connection to the database that the reset drops
    run psql -X -At -h "$TETHER_PGBOUNCER_SOCKET_DIR" -p "$TETHER_PGBOUNCER_PORT" \
        -U "$TETHER_PGBOUNCER_USER" pgbouncer -c 'SHOW SERVERS'
    assert_output_has "$TETHER_PGBOUNCER_USER"
    run tether reset postgresql
    assert_status 0
    run psql -X -At "$TETHER_PGBOUNCER_URL" -c "SELECT count(*) FROM pg_class WHERE relname = 't'"
    assert_status 0
    [ "$output" = 0 ]
    run tether reset pgbouncer
    assert_status 0
    run psql -X -At "$TETHER_PGBOUNCER_URL" -c 'SELECT 1'
    [ "$output" = 1 ]
    run tether status
    assert_status 0
    kill -STOP "$(cat "$TETHER_PGBOUNCER_PIDFILE")"
    run tether status
    kill -CONT "$(cat "$TETHER_PGBOUNCER_PIDFILE")"
    [ "$status" -ne 0 ]
    assert_output_has "[pgbouncer]"
    eval "$(tether stop)"
}

@test "pgbouncer tcp = yes: a password on TCP; native_env = yes leads PG* through it" {
    need_pgbouncer
    cfg="$(config tether.ini <<'END'
[db]
driver = postgresql
native_env = no

[pool]
driver = pgbouncer
after = db
postgresql = db
tcp = yes
native_env = yes
END
)"
    run tether -f "$cfg" run -- sh -c '
        env | sort > "$WORK/env"
        psql -X -At -c "SELECT 1"
        psql -X -At "$TETHER_POOL_URL" -c "SELECT 2"
        PGPASSWORD=wrong psql -X -At -h 127.0.0.1 -p "$TETHER_POOL_PORT" -c "SELECT 3"
        echo "wrong: $?"'
    assert_status 0
    assert_output_has 1
    assert_output_has 2
    assert_output_has "wrong: 2"
    dir="$(sed -n 's/^TETHER_POOL_DIR=//p' "$WORK/env")"
    grep -qx "PGHOST=$dir" "$WORK/env"
    grep -q '^TETHER_POOL_URL=postgresql://[a-z_0-9-]*:[0-9a-f]\{32\}@127.0.0.1:[0-9]*/tether$' "$WORK/env"
    grep -q '^TETHER_POOL_PASSWORD=[0-9a-f]\{32\}$' "$WORK/env"
}

@test "SIGKILL of the helper, then gc: no pgbouncer, postgres or influxd is left" {
    need_influxdb
    need_pgbouncer
    eval "$(tether start postgresql pgbouncer influxdb)"
    bpid="$(cat "$TETHER_PGBOUNCER_PIDFILE")"
    ppid_="$(cat "$TETHER_POSTGRESQL_PIDFILE")"
    ipid="$(cat "$TETHER_INFLUXDB_PIDFILE")"
    helper="$TETHER_PGBOUNCER_CONTROL_PID"
    [ "$(cat /proc/$bpid/comm)" = pgbouncer ]
    [ "$(cat /proc/$ipid/comm)" = influxd ]
    kill -KILL "$helper"
    wait_gone "$helper"
    run tether gc
    assert_status 0
    wait_gone "$bpid"
    wait_gone "$ppid_"
    wait_gone "$ipid"
    [ -z "$(ls -A "$TETHER_DIR")" ]
    eval "$(tether stop 2>/dev/null)" || true
}

@test "SIGKILL of the owner (tether run): pgbouncer, postgres and influxd go with it" {
    need_influxdb
    need_pgbouncer
    "$TETHER" run postgresql pgbouncer influxdb -- sh -c \
        'echo "$TETHER_PGBOUNCER_PIDFILE $TETHER_POSTGRESQL_PIDFILE $TETHER_INFLUXDB_PIDFILE" >"$WORK/pf.tmp"
         echo $$ >"$WORK/cmd"; mv "$WORK/pf.tmp" "$WORK/pf"; exec sleep 100' 3>&- &
    run_pid=$!
    wait_file "$WORK/pf" 60
    pids=()
    for f in $(cat "$WORK/pf"); do pids+=("$(cat "$f")"); done
    kill -KILL "$run_pid"
    for p in "${pids[@]}"; do wait_gone "$p"; done
    wait_for 10 state_empty
    wait "$run_pid" || true
    # the command is the test's own (run's child, orphaned by the kill)
    kill "$(cat "$WORK/cmd")" 2>/dev/null || true
}

@test "a missing server names its package; a bad option its line" {
    need_influxdb
    need_pgbouncer
    run env PATH=/nonexistent "$TETHER" run influxdb -- /bin/true
    assert_status 125
    assert_output_has "[influxdb] influxd not found in PATH: install the Debian package influxdb (apt-get install influxdb)"
    cfg="$(config bad.ini <<'END'
[postgresql]

[pgbouncer]
bin = /nonexistent
END
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "[pgbouncer] /nonexistent: no such executable file: fix the path, or install the Debian package pgbouncer (apt-get install pgbouncer)"
    cfg="$(config opt.ini <<'END'
[pgbouncer]
pool_mode = sometimes

[influxdb]
databse = x
END
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "opt.ini:2: [pgbouncer] pool_mode = sometimes: use one of session, transaction, statement"
    assert_output_has "opt.ini:5: [influxdb] unknown key 'databse': did you mean 'database'?"
}
