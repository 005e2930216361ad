#!/usr/bin/env bats
# The postgresql driver: a private cluster copied from the per-user cache,
# run as the postgres user when we are root; or (server = URL) a unique
# database on an existing server.  Every test also checks that no
# postgres process, directory, socket, database or shared memory segment
# is left behind.

load helpers

setup() {
    tether_setup
    command -v psql >/dev/null || skip "psql is not installed"
    # root's servers run as postgres, which must reach our work files
    chmod 0711 "$WORK"
    _PIDS_WATCHER=""
    _SHM_BEFORE="$(shm_ids)"
    watch_our_pids
}

teardown() {
    teardown_tmpfs
    local leaked=""
    if [ -n "${_PIDS_WATCHER:-}" ]; then # set-up got that far
        kill "$_PIDS_WATCHER" 2>/dev/null && wait_gone "$_PIDS_WATCHER"
        leaked="$(our_new_segments)"
    fi
    # the stand-in for another server's segment, if a test made one
    if [ -n "${FOREIGN_SEGMENT:-}" ]; then ipcrm -m "$FOREIGN_SEGMENT" 2>/dev/null || true; fi
    tether_teardown
    [ -z "$leaked" ] || { echo "shared memory segments left:$leaked" >&2; return 1; }
}

# Segments count only when one of our processes made them: someone else's
# PostgreSQL on the machine (crashed, restarting, or another tether's
# instance SIGKILLed in its own test) makes and leaves segments too.  Our
# postmasters are gone by teardown, so a watcher notes, while the test
# runs, the pids of every process started under our TETHER_DIR.  (Not a
# job: tests wait for all their jobs.)
watch_our_pids() {
    _PIDS_SEEN="$BATS_TEST_TMPDIR/our-pids"
    (while :; do _our_pids; sleep 0.1; done) >"$_PIDS_SEEN" 3>&- &
    _PIDS_WATCHER=$!
    disown "$_PIDS_WATCHER"
}

# Segments with nothing attached, new since setup, made by a process of ours
our_new_segments() {
    local id cpid
    _our_pids >>"$_PIDS_SEEN"
    shm_ids | tr ' ' '\n' | while IFS=: read -r id cpid; do
        [ -n "$id" ] || continue
        case " $_SHM_BEFORE " in *" $id:"*) continue ;; esac
        if grep -qx "$cpid" "$_PIDS_SEEN"; then printf ' %s (made by pid %s)' "$id" "$cpid"; fi
    done
}

# System V shared memory segments with no process attached (a SIGKILLed
# postmaster's leftovers look like that), as ID:CREATOR_PID
shm_ids() { awk 'NR > 1 && $7 == 0 { print $2 ":" $5 }' /proc/sysvipc/shm 2>/dev/null | sort -n | tr '\n' ' '; }

psql_q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

json_get() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

@test "run -- CMD: psql connects to a private database over a private socket" {
    run tether run postgresql -- sh -c '
        psql -X -qAt -c "select current_database()" "$TETHER_POSTGRESQL_URL" &&
        test -S "$TETHER_POSTGRESQL_HOST/.s.PGSQL.$TETHER_POSTGRESQL_PORT" &&
        test "$PGHOST" = "$TETHER_POSTGRESQL_HOST" && psql -X -qAt -c "select 42"'
    assert_status 0
    assert_output_has "tether"
    assert_output_has "42"
}

@test "run -- CMD exits with the command's status" {
    run tether run postgresql -- sh -c 'exit 9'
    assert_status 9
}

@test "reset drops what the test made and keeps the init_sql schema" {
    printf 'CREATE TABLE kept (id int);\nINSERT INTO kept VALUES (1), (2);\n' >"$WORK/schema.sql"
    cfg=$(printf '[postgresql]\ninit_sql = schema.sql\ndbname = app\n' | config pg.ini)
    eval "$(tether -q -f "$cfg" start)"
    [ "$TETHER_POSTGRESQL_DBNAME" = app ]
    psql_q -c 'CREATE TABLE scratch (x int)' "$TETHER_POSTGRESQL_URL"
    psql_q -c 'INSERT INTO kept VALUES (3)' "$TETHER_POSTGRESQL_URL"
    # an open connection must not stop the reset
    psql_q -c 'select pg_sleep(60)' "$TETHER_POSTGRESQL_URL" 2>/dev/null &
    for round in 1 2 3; do
        run tether -q reset postgresql
        assert_status 0
        run psql_q -c "select count(*) from kept" "$TETHER_POSTGRESQL_URL"
        assert_status 0
        [ "$output" = 2 ]
        run psql_q -c "select to_regclass('scratch') is null" "$TETHER_POSTGRESQL_URL"
        [ "$output" = t ]
        psql_q -c 'CREATE TABLE scratch (x int)' "$TETHER_POSTGRESQL_URL"
    done
    eval "$(tether stop)"
    [ -z "${TETHER_POSTGRESQL_URL:-}" ] && [ -z "${PGHOST:-}" ]
}

@test "the helper never loads libpq: its worker does, and leaves when idle" {
    eval "$(tether -q start postgresql)"
    helper=$TETHER_POSTGRESQL_CONTROL_PID
    run tether -q reset postgresql
    assert_status 0
    run tether -q reset postgresql
    assert_status 0
    run tether status
    assert_status 0
    if grep libpq "/proc/$helper/maps"; then
        echo "the helper (pid $helper) has libpq mapped" >&2
        return 1
    fi
    # the worker: the helper's one child with libpq, serving both resets
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    workers=""
    for k in $(ps -o pid= --ppid "$helper"); do
        [ "$k" != "$pm" ] && grep -q libpq "/proc/$k/maps" 2>/dev/null && workers+=" $k"
    done
    [ "$(echo $workers | wc -w)" = 1 ] || { echo "workers:$workers" >&2; return 1; }
    # idle for 10 s, it goes; the next reset starts another
    wait_gone $workers 20
    run tether -q reset postgresql
    assert_status 0
    eval "$(tether stop)"
}

@test "reset of a postgres that does not answer fails with the reason, and stop still cleans" {
    cfg=$(printf '[postgresql]\ntimeout = 4\n' | config pg.ini)
    eval "$(tether -q -f "$cfg" start)"
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    # no worker yet: its connection attempt gives up
    kill -STOP "$pm"
    run tether -q reset postgresql
    kill -CONT "$pm"
    assert_status 1
    assert_output_has "does not answer"
    # a worker already connected: the helper stops waiting for it (its
    # backend hangs too: the whole server is stopped)
    run tether -q reset postgresql
    assert_status 0
    all="$pm $(ps -o pid= --ppid "$pm")"
    kill -STOP $all
    run tether -q reset postgresql
    status_out=$(tether status 2>&1) && status_rc=0 || status_rc=$?
    kill -CONT $all
    assert_status 1
    # the worker's new connection gives up (2 s, half the timeout), or the
    # helper stops waiting for a worker stuck in its last request (4 s)
    [[ $output == *"did not answer within 4 s"* || $output == *"does not answer at"*"timeout expired"* ]] ||
        { echo "$output" >&2; false; }
    # status's health check gives up within 2 s too
    [ "$status_rc" = 1 ]
    case $status_out in *"did not answer within 2 s"* | *"health check did not finish in time"*) ;;
    *) echo "$status_out" >&2; false ;; esac
    run tether -q reset postgresql
    assert_status 0
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "a reset that failed leaves postgres marked not ready until a reset works" {
    cfg=$(printf '[postgresql]\ntimeout = 2\n' | config pg.ini)
    eval "$(tether -q -f "$cfg" start)"
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    kill -STOP "$pm"
    run tether -q reset postgresql
    kill -CONT "$pm"
    assert_status 1
    # the server answers again, but the reset may have dropped the database
    run tether status
    assert_status 1
    assert_output_has "[postgresql] is unhealthy: the last reset failed (reset it again): "
    run tether -q reset postgresql
    assert_status 0
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "a cache directory owned by someone else: the error names TETHER_CACHE_DIR" {
    if [ "$EUID" -eq 0 ]; then
        dir="$WORK/their-cache"
        mkdir "$dir"
        chown 65534 "$dir"
    else
        dir=/ # root's, and left as it is: only a directory of our own is ever changed
    fi
    run env TETHER_CACHE_DIR="$dir" "$TETHER" run postgresql -- true
    [ "$status" -ne 0 ]
    assert_output_has "$dir is owned by uid "
    assert_output_has "remove it or set TETHER_CACHE_DIR"
}

# A tmpfs of size $1 on a new directory $WORK/$2 (root only), unmounted by
# teardown_tmpfs.
tmpfs_dir() {
    [ "$EUID" -eq 0 ] || skip "mounting a small tmpfs needs root"
    mkdir "$WORK/$2"
    mount -t tmpfs -o "size=$1" tether-test "$WORK/$2" || skip "cannot mount a tmpfs here"
    _TMPFS+=" $WORK/$2"
}

teardown_tmpfs() {
    local m
    for m in ${_TMPFS:-}; do umount "$m" 2>/dev/null || umount -l "$m"; done
    _TMPFS=""
}

# /dev/shm/PostgreSQL.* files of the server's user that appeared since the
# listing $1 and that no live process maps: a crashed server's dynamic
# shared memory (another server's, while it runs, maps its own)
new_dsm_files() {
    local f owner
    owner="$(id -un)"
    [ "$owner" != root ] || owner=postgres
    for f in /dev/shm/PostgreSQL.*; do
        [ -e "$f" ] || continue
        case " $1 " in *" ${f##*/} "*) continue ;; esac
        [ "$(stat -c %U -- "$f")" = "$owner" ] || continue
        grep -qsF -- "$f" /proc/[0-9]*/maps && continue
        echo "$f"
    done
}

@test "a cache build that runs out of space says so, and where" {
    local dsm_before
    dsm_before="$(ls /dev/shm | tr '\n' ' ')"
    tmpfs_dir 2m cache
    run env TETHER_CACHE_DIR="$WORK/cache" "$TETHER" run postgresql -- true
    teardown_tmpfs
    # initdb's servers use posix dynamic shared memory; the one that
    # crashed on the full disk must not leave it in /dev/shm
    local left
    left="$(new_dsm_files "$dsm_before")"
    [ -z "$left" ] || { echo "left in /dev/shm: $left" >&2; rm -f -- $left; false; }
    [ "$status" -ne 0 ]
    assert_output_has "no space left on device in $WORK/cache"
    assert_output_has "set TETHER_CACHE_DIR"
    [[ $output != *"check the modes"* ]] || { echo "$output" >&2; false; }
}

@test "a reset whose copy fails after its drop: status says the reset failed, not ready" {
    # (as one that runs out of space: the database is dropped, its new copy
    # fails) a session on the template makes CREATE DATABASE ... TEMPLATE fail
    eval "$(tether -q start postgresql)"
    mkfifo "$WORK/sql"
    psql -X -q -d tether_template <"$WORK/sql" >"$WORK/holder.out" 2>&1 &
    holder=$!
    exec 8>"$WORK/sql"
    echo "SELECT 'connected';" >&8
    wait_for 10 grep -q connected "$WORK/holder.out"
    run tether -q reset postgresql
    [ "$status" -ne 0 ]
    assert_output_has "is being accessed by other users"
    [ "$(psql_q -d template1 -c "select count(*) from pg_database where datname = 'tether'")" = 0 ]
    run tether status
    [ "$status" -eq 1 ]
    assert_output_has "[postgresql] is unhealthy: the last reset failed (reset it again): "
    exec 8>&-
    wait "$holder"
    run tether -q reset postgresql
    assert_status 0
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "reset of a postgres that was SIGKILLed says it crashed" {
    eval "$(tether -q start postgresql)"
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    kill -KILL "$pm"
    run tether -q reset postgresql
    assert_status 1
    assert_output_has "crashed"
    eval "$(tether stop)"
}

@test "the next instance starts from the spare copy (a rename), and a half-made spare is cleared" {
    export TETHER_CACHE_DIR="$WORK/cache"
    run tether -q run postgresql -- true
    assert_status 0
    entry=$(ls -d "$WORK"/cache/pg-*/ | head -1)
    # a maker killed half-way: the next maker removes its leftovers
    rm -rf "$entry/spare"
    mkdir "$entry/spare.tmp" && touch "$entry/spare.tmp/junk"
    eval "$(tether -q start postgresql)"
    wait_for 20 test -d "$entry/spare"
    [ ! -e "$entry/spare.tmp" ]
    inode=$(stat -c %i "$entry/spare")
    eval "$(tether stop)"
    eval "$(tether -q start postgresql)"
    # the spare became this instance's data directory
    [ "$(stat -c %i "$TETHER_POSTGRESQL_DATADIR")" = "$inode" ]
    psql_q -c 'select 1' "$TETHER_POSTGRESQL_URL"
    wait_for 20 test -d "$entry/spare"
    [ "$(stat -c %i "$entry/spare")" != "$inode" ]
    eval "$(tether stop)"
    # one entry: the cluster, its spare and the spare's lock
    [ "$(ls "$entry" | tr '\n' ' ')" = "data spare spare.lock " ]
}

@test "a bad init_sql fails the start with the server's error, and leaves nothing" {
    printf 'CREATE TABLE oops (;\n' >"$WORK/bad.sql"
    cfg=$(printf '[postgresql]\ninit_sql = bad.sql\n' | config pg.ini)
    export TETHER_CACHE_DIR="$WORK/cache"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "init_sql"
    assert_output_has "syntax error"
    [ -z "$(ls "$WORK/cache" | grep -v '\.lock$')" ]
}

@test "--keep-failed: a failing command keeps the stopped cluster with its data; gc --kept removes it" {
    run tether run --keep-failed postgresql -- sh -c 'psql -X -q -c "create table kept_t (x int)" && exit 1'
    assert_status 1
    dirs=("$TETHER_DIR"/*)
    [ "${#dirs[@]}" -eq 1 ]
    dir="${dirs[0]}"
    assert_output_has "kept instance $dir with its logs and data"
    [ -s "$dir/postgresql/data/PG_VERSION" ]
    [ -s "$dir/postgresql.log" ]
    # stopped: no postgres of ours, no socket, no port (teardown: no segment)
    [ -z "$(cookie_pids)" ] && [ -z "$(helper_pids)" ]
    [ -z "$(find "$dir" -name '.s.PGSQL.*')" ]
    run tether list
    [[ $output == *" kept "*"postgresql(exited)"* ]] || { echo "$output" >&2; return 1; }
    run tether gc
    [ -d "$dir" ]
    # as root the data belongs to postgres: gc removes it all the same
    run tether gc --kept
    assert_status 0
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "init_sql loads what pg_dump writes: meta-commands, COPY with inline rows, sequences" {
    export TETHER_CACHE_DIR="$WORK/cache"
    cat >"$WORK/src.sql" <<'SQL'
CREATE SEQUENCE ticket_seq START 100;
CREATE TABLE item (id serial PRIMARY KEY, name text NOT NULL, note text);
INSERT INTO item (name, note) VALUES ('a', E'tab\there'), ('b', NULL), (E'back\\slash', E'line\ntwo');
SELECT nextval('ticket_seq'), nextval('ticket_seq');
CREATE VIEW item_names AS SELECT name FROM item;
CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS $$SELECT count(*) FROM item$$;
SQL
    # a plain-format dump of a real database, as people keep them
    tether -q run postgresql -- sh -c 'psql -X -q -v ON_ERROR_STOP=1 -f "$0" >/dev/null &&
        pg_dump "$TETHER_POSTGRESQL_URL" >"$1"' "$WORK/src.sql" "$WORK/dump.sql"
    grep -q '^COPY public.item (id, name, note) FROM stdin;$' "$WORK/dump.sql"
    grep -q "^SELECT pg_catalog.set_config('search_path', '', false);$" "$WORK/dump.sql"
    cfg=$(printf '[postgresql]\ninit_sql = dump.sql\n' | config pg.ini)
    run tether -q -f "$cfg" run -- psql -X -qAt -v ON_ERROR_STOP=1 \
        -c "select id, name, coalesce(note, 'NULL') from item order by id" \
        -c "select item_count(), nextval('ticket_seq'), nextval('item_id_seq')" \
        -c "select string_agg(name, ',' order by name) from item_names"
    assert_status 0
    [ "$output" = "$(printf '1|a|tab\there\n2|b|NULL\n3|back\\slash|line\ntwo\n3|102|4\na,b,back\\slash')" ]
}

@test "an init_sql error shows FILE:LINE and the server's error first, uncut, after 2,000 lines" {
    export TETHER_CACHE_DIR="$WORK/cache"
    for i in $(seq 1999); do
        echo "CREATE TABLE t$i (id int, name text, note text DEFAULT 'a default that makes the line longer');"
    done >"$WORK/schema.sql"
    echo 'INSERT INTO missing_table VALUES (1);' >>"$WORK/schema.sql"
    echo 'CREATE TABLE after_the_error (x int);' >>"$WORK/schema.sql"
    cfg=$(printf '[postgresql]\ninit_sql = schema.sql\n' | config pg.ini)
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    first=$(printf '%s\n' "$output" | grep -m1 'ERROR')
    [ "$first" = "tether: [postgresql] $WORK/schema.sql:2000: ERROR:  relation \"missing_table\" does not exist" ]
    assert_output_has "LINE 1: INSERT INTO missing_table VALUES (1);"
    assert_output_has "fix the file)"
    # none of the SQL that loaded is pasted into the message
    ! printf '%s\n' "$output" | grep -q 'CREATE TABLE'
    [ -z "$(ls "$WORK/cache" | grep -v '\.lock$')" ]
}

@test "four first-time users at once build one good cache" {
    export TETHER_CACHE_DIR="$WORK/cache"
    for i in 1 2 3 4; do
        tether -q run postgresql -- sh -c 'psql -X -qAt -c "select 1" "$TETHER_POSTGRESQL_URL" > "$0"' "$WORK/out$i" &
    done
    fail=0
    for j in $(jobs -p); do wait "$j" || fail=$((fail + 1)); done
    [ "$fail" -eq 0 ]
    for i in 1 2 3 4; do [ "$(cat "$WORK/out$i")" = 1 ]; done
    [ "$(ls -d "$WORK"/cache/pg-* | grep -vc '\.lock$')" -eq 1 ]
    ! ls -d "$WORK"/cache/*.tmp-* 2>/dev/null
}

@test "server = URL: a unique database on an existing server, dropped at the end" {
    eval "$(tether -q start postgresql)"
    server_url="$TETHER_POSTGRESQL_URL"
    cfg=$(printf '[tether]\nprefix = SRV\n[app]\ndriver = postgresql\nserver = %s\n' "$server_url" | config srv.ini)
    run env -u PGHOST -u PGPORT -u PGDATABASE -u PGUSER "$TETHER" -f "$cfg" run -- sh -c '
        psql -X -qAt -c "create table t (x int)" "$SRV_APP_URL" && echo "db=$SRV_APP_DBNAME"'
    assert_status 0
    db="${output##*db=}"
    [ -n "$db" ]
    [ "$db" != tether ]
    run psql_q -c "select count(*) from pg_database where datname = '$db'" "$server_url"
    [ "$output" = 0 ]
    eval "$(tether stop)"
}

@test "server = URL: SIGKILL of the helper, then gc drops the database" {
    eval "$(tether -q start postgresql)"
    server_url="$TETHER_POSTGRESQL_URL"
    cfg=$(printf '[tether]\nprefix = SRV\n[app]\ndriver = postgresql\nserver = %s\n' "$server_url" | config srv.ini)
    out="$("$TETHER" -q -f "$cfg" start --json)"
    helper=$(json_get "$out" SRV_APP_CONTROL_PID)
    db=$(json_get "$out" SRV_APP_DBNAME)
    run psql_q -c "select count(*) from pg_database where datname = '$db'" "$server_url"
    [ "$output" = 1 ]
    kill -KILL "$helper"
    wait_gone "$helper"
    run tether gc
    assert_status 0
    run psql_q -c "select count(*) from pg_database where datname = '$db'" "$server_url"
    [ "$output" = 0 ]
    eval "$(tether stop)"
}

# For the tests below: a private server (tether's own) and a config whose
# service "app" makes a database on it, with a short timeout so that a
# hung server costs little ($server_url, $cfg, $postmaster).
server_for_app() {
    eval "$(tether -q start postgresql)"
    server_url="$TETHER_POSTGRESQL_URL"
    postmaster=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    cfg=$(printf '[tether]\nprefix = SRV\n[app]\ndriver = postgresql\nserver = %s\ntimeout = 2\n' "$server_url" | config srv.ini)
}

# `tether stop` of app alone (the server's variables stay in the shell)
stop_app() { timeout 60 env -u TETHER_POSTGRESQL_CONTROL_PID "$TETHER" stop "$app_id"; }

db_count() { psql_q -c "select count(*) from pg_database where datname = '$1'" "$server_url"; }

# Start app; $app_id, $app_db and $app_helper say what it made.
start_app() {
    local out
    out="$("$TETHER" -q -f "$cfg" start --json)"
    app_helper=$(json_get "$out" SRV_APP_CONTROL_PID)
    app_db=$(json_get "$out" SRV_APP_DBNAME)
    app_id=$(basename "$(dirname "$(json_get "$out" SRV_APP_CONFIGFILE)")")
    [ "$(db_count "$app_db")" = 1 ]
}

# The server's socket moved away and back: a server that is down, then up.
server_down() { mv "$TETHER_POSTGRESQL_HOST/.s.PGSQL.5432" "$TETHER_POSTGRESQL_HOST/.s.PGSQL.5432.away"; }
server_up() { mv "$TETHER_POSTGRESQL_HOST/.s.PGSQL.5432.away" "$TETHER_POSTGRESQL_HOST/.s.PGSQL.5432"; }

@test "server = URL: one stop of the server's instance and the database's stops the newer first" {
    for how in env all; do
        server_for_app
        eval "$("$TETHER" -q -f "$cfg" start)"
        if [ $how = env ]; then
            run tether stop
        else
            run tether stop --all
        fi
        assert_status 0
        [ -z "$(ls -A "$TETHER_DIR")" ]
        unset SRV_APP_CONTROL_PID TETHER_POSTGRESQL_CONTROL_PID
    done
}

@test "server = URL: stop while the server hangs fails, names the database, and gc drops it later" {
    server_for_app
    start_app
    kill -STOP "$postmaster"
    run stop_app
    kill -CONT "$postmaster"
    [ "$status" -ne 0 ]
    [ "$status" -ne 124 ]
    assert_output_has "cannot drop database $app_db on server = "
    assert_output_has "no answer within 2 s"
    assert_output_has "tether gc"
    # the record is kept: the instance directory, without its helper
    [ -d "$TETHER_DIR/$app_id" ]
    is_gone "$app_helper"
    [ "$(db_count "$app_db")" = 1 ]
    run tether gc
    assert_status 0
    assert_output_has "retried the cleanup of stale instance $TETHER_DIR/$app_id: done"
    [ "$(db_count "$app_db")" = 0 ]
    [ ! -e "$TETHER_DIR/$app_id" ]
    eval "$(tether stop)"
}

@test "server = URL: gc while the server hangs keeps the record and says so; it retries" {
    server_for_app
    start_app
    kill -STOP "$postmaster"
    run stop_app
    [ "$status" -ne 0 ]
    [ "$status" -ne 124 ]
    run timeout 60 "$TETHER" gc
    kill -CONT "$postmaster"
    [ "$status" -ne 0 ]
    [ "$status" -ne 124 ]
    assert_output_has "cannot drop database $app_db on server = "
    assert_output_has "kept instance $app_id"
    [ -d "$TETHER_DIR/$app_id" ]
    [ "$(db_count "$app_db")" = 1 ]
    run tether gc
    assert_status 0
    [ "$(db_count "$app_db")" = 0 ]
    [ ! -e "$TETHER_DIR/$app_id" ]
    eval "$(tether stop)"
}

@test "server = URL: helper SIGKILLed while the server is down: gc keeps the record, drops it once the server is back" {
    server_for_app
    start_app
    kill -KILL "$app_helper"
    wait_gone "$app_helper"
    server_down
    # stop, which reaps for the dead helper, fails the same way
    run stop_app
    [ "$status" -ne 0 ]
    assert_output_has "cannot drop database $app_db on server = "
    assert_output_has "kept instance $app_id"
    run tether gc
    [ "$status" -ne 0 ]
    assert_output_has "cannot drop database $app_db on server = "
    assert_output_has "kept instance $app_id"
    # a start's own gc neither retries nor removes it
    run "$TETHER" -q -f "$cfg" run -- true
    [ -d "$TETHER_DIR/$app_id" ]
    server_up
    [ "$(db_count "$app_db")" = 1 ]
    run tether gc
    assert_status 0
    assert_output_has "retried the cleanup of stale instance $TETHER_DIR/$app_id: done"
    [ "$(db_count "$app_db")" = 0 ]
    [ ! -e "$TETHER_DIR/$app_id" ]
    eval "$(tether stop)"
}

@test "server = URL: run whose server went down fails at the end and names the database" {
    server_for_app
    run "$TETHER" -q -f "$cfg" run -- sh -c 'mv "$0/.s.PGSQL.5432" "$0/.s.PGSQL.5432.away"; echo "db=$SRV_APP_DBNAME"' "$TETHER_POSTGRESQL_HOST"
    [ "$status" -ne 0 ]
    assert_output_has "cannot drop database "
    db=$(printf '%s\n' "$output" | sed -n 's/^db=//p')
    [ -n "$db" ]
    assert_output_has "cannot drop database $db on server = "
    server_up
    [ "$(db_count "$db")" = 1 ]
    run tether gc
    assert_status 0
    [ "$(db_count "$db")" = 0 ]
    eval "$(tether stop)"
}

# For the two tests below: a server with a database "tmpl" and a config
# whose service "app" makes its databases from it ($server_url, $cfg).
server_with_template() {
    eval "$(tether -q start postgresql)"
    server_url="$TETHER_POSTGRESQL_URL"
    psql_q -c "create database tmpl" "$server_url"
    cfg=$(printf '[tether]\nprefix = SRV\n[app]\ndriver = postgresql\nserver = %s\ntemplate = tmpl\n' "$server_url" | config srv.ini)
}

# Hold a lock on the template from a transaction on fd 8, so that any
# CREATE DATABASE ... TEMPLATE tmpl waits (commands started meanwhile must
# close fd 8: only we may hold the holder's input open).
hold_template() {
    mkfifo "$WORK/sql"
    psql -X -q "$server_url" <"$WORK/sql" >"$WORK/holder.out" 2>&1 &
    holder=$!
    exec 8>"$WORK/sql"
    echo "BEGIN; COMMENT ON DATABASE tmpl IS 'held'; SELECT 'locked';" >&8
    wait_for 10 grep -q locked "$WORK/holder.out"
}

release_template() {
    echo "COMMIT;" >&8
    exec 8>&-
    wait "$holder"
}

create_waiting() {
    [ "$(psql_q -c "select count(*) from pg_stat_activity where wait_event_type = 'Lock'
        and query like 'CREATE DATABASE%TEMPLATE%'" "$server_url")" = 1 ]
}

create_over() {
    [ "$(psql_q -c "select count(*) from pg_stat_activity
        where query like 'CREATE DATABASE%TEMPLATE%'" "$server_url")" = 0 ]
}

# Once the CREATE is over (it may still be copying), none of app's
# databases may be left on the server.
assert_no_app_database() {
    wait_for 20 create_over
    run psql_q -c "select datname from pg_database where datname like 'tether_%_app'" "$server_url"
    [ -z "$output" ] || { echo "left on the server: $output; gc said: $(cat "$WORK/gc.out")" >&2; return 1; }
}

@test "server = URL: helper SIGKILLed in mid CREATE DATABASE, gc still drops it once created" {
    server_with_template
    hold_template
    "$TETHER" -q -f "$cfg" start >/dev/null 2>&1 8>&- &
    starter=$!
    wait_for 20 create_waiting
    helper=$(pgrep -P "$starter" -x tether-helper)
    [ -n "$helper" ]
    kill -KILL "$helper"
    wait_gone "$helper"
    # start (which reaps for its dead helper) and gc, while the CREATE
    # still waits: neither may drop "nothing" and go
    "$TETHER" gc >"$WORK/gc.out" 2>&1 8>&- &
    gc=$!
    release_template
    wait "$gc"
    wait "$starter" || true
    assert_no_app_database
    eval "$(tether stop)"
}

@test "server = URL: helper SIGKILLed in mid reset, gc drops the database its worker was making" {
    server_with_template
    eval "$("$TETHER" -q -f "$cfg" start)"
    helper=$SRV_APP_CONTROL_PID
    hold_template
    "$TETHER" -q reset app >/dev/null 2>&1 8>&- &
    resetter=$!
    wait_for 20 create_waiting
    kill -KILL "$helper"
    wait_gone "$helper"
    "$TETHER" gc >"$WORK/gc.out" 2>&1 8>&- &
    gc=$!
    release_template
    wait "$gc"
    wait "$resetter" || true
    assert_no_app_database
    unset SRV_APP_CONTROL_PID
    eval "$(tether stop)"
}

@test "SIGKILL of the helper: postgres goes, gc leaves no process, directory or segment" {
    eval "$(tether -q start postgresql)"
    helper=$TETHER_POSTGRESQL_CONTROL_PID
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    datadir=$TETHER_POSTGRESQL_DATADIR
    kill -KILL "$helper"
    wait_gone "$helper"
    wait_gone "$pm"
    run tether status
    [ "$status" -ne 0 ]
    assert_output_has "postgresql"
    run tether gc
    assert_status 0
    [ ! -e "$datadir" ]
    eval "$(tether stop 2>/dev/null)" || true
}

@test "SIGKILL of the helper while a backend still holds the segment: gc frees it all the same" {
    eval "$(tether -q start postgresql)"
    helper=$TETHER_POSTGRESQL_CONTROL_PID
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    # a backend that cannot notice its postmaster's death: still attached
    # when gc runs, as happens by chance when gc is quick
    child=$(pgrep -P "$pm" | head -1)
    [ -n "$child" ]
    kill -STOP "$child"
    kill -KILL "$helper"
    wait_gone "$helper"
    wait_gone "$pm"
    run tether gc
    assert_status 0
    kill -KILL "$child"
    wait_gone "$child"
    # teardown: no segment without a process attached is left
    eval "$(tether stop 2>/dev/null)" || true
}

@test "teardown counts the segment our postmaster left, and not someone else's" {
    eval "$(tether -q start postgresql)"
    helper=$TETHER_POSTGRESQL_CONTROL_PID
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    wait_for 5 grep -qx "$pm" "$_PIDS_SEEN"
    # another server's segment with nothing attached, made during the test
    FOREIGN_SEGMENT=$(env -u TETHER_DIR ipcmk -M 4096 | awk '{ print $NF }')
    kill -KILL "$helper" "$pm"
    wait_gone "$helper"
    wait_gone "$pm"
    # its backends notice the postmaster's death a moment later
    wait_for 10 sh -c "awk -v p=$pm 'NR > 1 && \$5 == p && \$7 == 0' /proc/sysvipc/shm | grep -q ."
    left="$(our_new_segments)"
    [[ $left == *"(made by pid $pm)"* ]] || { echo "not counted: pid $pm's segment ($left)" >&2; false; }
    [[ $left != *" $FOREIGN_SEGMENT ("* ]] || { echo "counted someone else's: $left" >&2; false; }
    run tether gc
    assert_status 0
    [ -z "$(our_new_segments)" ]
}

@test "16 concurrent instances, each with its own directory and socket" {
    for i in $(seq 16); do
        tether -q run postgresql -- sh -c 'psql -X -qAt -c "select 1" "$TETHER_POSTGRESQL_URL" >/dev/null && echo "$TETHER_POSTGRESQL_HOST" > "$0"' "$WORK/host$i" &
    done
    fail=0
    for j in $(jobs -p); do wait "$j" || fail=$((fail + 1)); done
    [ "$fail" -eq 0 ]
    [ "$(cat "$WORK"/host* | sort -u | wc -l)" -eq 16 ]
}

@test "tcp = yes listens on 127.0.0.1 with a reserved port" {
    cfg=$(printf '[postgresql]\ntcp = yes\n' | config pg.ini)
    run tether -f "$cfg" run -- sh -c '
        test "$TETHER_POSTGRESQL_HOST" = 127.0.0.1 &&
        psql -X -qAt -h 127.0.0.1 -p "$TETHER_POSTGRESQL_PORT" -c "select 7" "$TETHER_POSTGRESQL_URL"'
    assert_status 0
    assert_output_has 7
}

@test "a missing server names the package to install" {
    cfg=$(printf '[postgresql]\nbin_dir = /nonexistent\n' | config pg.ini)
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "bin_dir"
    cfg=$(printf '[postgresql]\nversion = 3\n' | config pg2.ini)
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "apt-get install postgresql-3"
}

@test "bad postgresql keys are config errors with their line" {
    cfg=$(printf '[postgresql]\ntcp = maybe\n' | config pg.ini)
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "pg.ini:2:"
    cfg=$(printf '[postgresql]\n\ncolour = blue\n' | config pg2.ini)
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "pg2.ini:3:"
    assert_output_has "unknown key 'colour'"
}

@test "server = URL: status asks the server (the database has no process of ours), and says why it does not answer" {
    server_for_app
    start_app
    run env -u TETHER_POSTGRESQL_CONTROL_PID SRV_APP_CONTROL_PID="$app_helper" \
        SRV_APP_CONFIGFILE="$TETHER_DIR/$app_id/app.env" "$TETHER" status
    assert_status 0
    assert_output_has "[app] ready"
    # the connection the helper checks with is ended by the server
    psql_q -c "select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() and backend_type = 'client backend'" "$server_url" >/dev/null
    run env -u TETHER_POSTGRESQL_CONTROL_PID SRV_APP_CONTROL_PID="$app_helper" \
        SRV_APP_CONFIGFILE="$TETHER_DIR/$app_id/app.env" "$TETHER" status
    assert_status 1
    assert_output_has "terminating connection due to administrator command"
    run stop_app
    assert_status 0
    [ "$(db_count "$app_db")" = 0 ]
    eval "$(tether stop)"
}

# A bin_dir whose initdb waits for $WORK/flags/go before it runs the real
# one: a cold cache build (a new bin_dir is a new cache key) that lasts as
# long as the test wants.  The wrapper writes its pid first.
slow_initdb_bin() {
    local real
    real=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$real/initdb" ] || skip "no /usr/lib/postgresql/*/bin/initdb"
    mkdir -p "$WORK/bin" "$WORK/flags"
    chmod 0755 "$WORK/bin"
    chmod 1777 "$WORK/flags" # as root, initdb runs as postgres
    ln -s "$real/postgres" "$WORK/bin/postgres"
    cat >"$WORK/bin/initdb" <<EOF
#!/bin/sh
echo \$\$ >"$WORK/flags/initdb.pid"
while [ ! -e "$WORK/flags/go" ]; do sleep 0.05; done
exec "$real/initdb" "\$@"
EOF
    chmod 0755 "$WORK/bin/initdb"
    export TETHER_CACHE_DIR="$WORK/cache"
}

# Nothing of the instance is left: no helper or tether command, no process
# with its cookie (the build's initdb included), no build directory in the
# cache, an empty TETHER_DIR.
nothing_left() {
    [ -z "$(cookie_pids)" ] && [ -z "$(helper_pids)" ] && is_gone "$1" &&
        ! compgen -G "$WORK/cache/*.tmp-*" >/dev/null &&
        [ -z "$(ls -A "$TETHER_DIR")" ]
}

# run_during_cold_initdb SIGNAL: `tether run` during a cold build held up
# in initdb, then SIGNAL to the run (TERM), or the death of the run as the
# helper's owner (KILL): everything goes within 1 s.
run_during_cold_initdb() {
    slow_initdb_bin
    cfg=$(printf '[postgresql]\nbin_dir = %s\n' "$WORK/bin" | config pg.ini)
    "$TETHER" -f "$cfg" run postgresql -- true 2>"$WORK/run.err" 3>&- &
    run_pid=$!
    wait_file "$WORK/flags/initdb.pid" 60
    initdb=$(cat "$WORK/flags/initdb.pid")
    compgen -G "$WORK/cache/*.tmp-*" >/dev/null # the build's directory is there
    t0=$(now_ms)
    kill -"$1" "$run_pid"
    local ok=0
    wait_for 1 nothing_left "$initdb" || ok=1
    echo "# SIG$1 to run (the owner) during a cold initdb: all gone after $(($(now_ms) - t0)) ms (target: < 1000 ms)" >&3
    [ "$ok" = 0 ] || {
        echo "after $(($(now_ms) - t0)) ms:" >&2
        leftovers >&2
        ls -la "$WORK/cache" >&2
        cat "$WORK/run.err" >&2
        return 1
    }
    wait "$run_pid" || true
}

@test "SIGTERM to run during a slow cold initdb removes everything within 1 s" {
    run_during_cold_initdb TERM
}

@test "SIGKILL of the owner during a slow cold initdb removes everything within 1 s" {
    run_during_cold_initdb KILL
}

@test "a cold build held up in initdb goes on, and the next start is warm" {
    slow_initdb_bin
    cfg=$(printf '[postgresql]\nbin_dir = %s\n' "$WORK/bin" | config pg.ini)
    "$TETHER" -f "$cfg" run postgresql -- psql -X -qAt -c 'select 5' >"$WORK/out" 2>&1 3>&- &
    run_pid=$!
    wait_file "$WORK/flags/initdb.pid" 60
    touch "$WORK/flags/go"
    wait "$run_pid"
    grep -qx 5 "$WORK/out"
    ! compgen -G "$WORK/cache/*.tmp-*" >/dev/null
    rm "$WORK/flags/initdb.pid"
    run tether -f "$cfg" run postgresql -- true
    assert_status 0
    [ ! -e "$WORK/flags/initdb.pid" ] # no second build
}

# status_fast: `tether status` answers within 100 ms; its output in $out
status_fast() {
    local t0 t1
    t0=$(now_ms)
    out=$("$TETHER" status 2>&1) || true
    t1=$(now_ms)
    [ $((t1 - t0)) -lt 100 ] || { echo "status took $((t1 - t0)) ms: $out" >&2; return 2; }
}

@test "status during a slow reset answers within 100 ms and says resetting" {
    cfg=$(printf '[postgresql]\ntimeout = 20\n' | config pg.ini)
    eval "$(tether -q -f "$cfg" start)"
    run tether -q reset postgresql # the worker is connected
    assert_status 0
    pm=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    all="$pm $(ps -o pid= --ppid "$pm")"
    kill -STOP $all
    "$TETHER" -q reset postgresql >"$WORK/reset.out" 2>&1 3>&- &
    reset_pid=$!
    seen=""
    for _ in $(seq 200); do
        status_fast || { kill -CONT $all; false; }
        case $out in *resetting*) seen=1; break ;; esac
    done
    # a few more while it lasts: each one fast
    for _ in 1 2 3 4 5; do status_fast || { kill -CONT $all; false; }; done
    kill -CONT $all
    [ -n "$seen" ] || { echo "never said resetting: $out" >&2; false; }
    wait "$reset_pid"
    run tether status
    assert_status 0
    eval "$(tether stop)"
}
