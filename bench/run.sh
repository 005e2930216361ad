#!/bin/bash
# tether's benchmarks: every row is measured side by side with its floor,
# in the same hyperfine run, and reported as a ratio.  Data on tmpfs, as
# tether's default.  Usage: bench/run.sh [BUILD_DIR]   (make bench)
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(realpath "${1:-build}")
T="$B/tether"
PROBE="$B/bench/probe"
RUNS=${RUNS:-20}
work=$(mktemp -d /dev/shm/tether-bench.XXXXXX)
chmod 0711 "$work" # as root, postgres runs as the postgres user
export TETHER_DIR="$work/state" TETHER_CACHE_DIR="$work/cache"
mkdir -p "$TETHER_DIR"
export PATH="$B/tests/servers:$PATH"
cleanup() { "$T" stop --all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

hf() { # name, then hyperfine args
    local name=$1; shift
    hyperfine -N --style basic --export-json "$work/$name.json" "$@" >&2
    python3 - "$work/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
floor, ours = r[0], r[1]
print(f"| {sys.argv[2]} | {floor['median']*1000:.1f} ms | {ours['median']*1000:.1f} ms | {ours['median']/floor['median']:.2f}x |")
PY
}

echo "| what | floor (median) | tether (median) | ratio |"
echo "|---|---|---|---|"

cat > "$work/tserver.ini" <<INI
[trivial]
command = tserver --tcp \${port}
port = auto
INI
port=$((24000 + RANDOM % 4000))
hf trivial -w 3 -r "$RUNS" "bench/floor-tserver.sh $B/tests/servers/tserver $port" \
    "$T -q -f $work/tserver.ini run -- true"

if command -v redis-server >/dev/null; then
    hf redis -w 3 -r "$RUNS" "bench/floor-redis.sh $PROBE" "$T -q run redis -- true"
fi
if command -v memcached >/dev/null; then
    hf memcached -w 3 -r "$RUNS" "bench/floor-memcached.sh $PROBE" "$T -q run memcached -- true"
fi

# PostgreSQL, warm cache: the floor copies tether's own cached cluster
"$T" -q run postgresql -- true
cached=$(ls -d "$TETHER_CACHE_DIR"/pg-*/data | head -1)
hf pg-warm -w 2 -r "$RUNS" "bench/floor-postgresql.sh warm $cached $PROBE" \
    "$T -q run postgresql -- true"
hf pg-cold -w 1 -r 5 --prepare "rm -rf $TETHER_CACHE_DIR" \
    "bench/floor-postgresql.sh cold - $PROBE" "$T -q run postgresql -- true"
# a stricter floor than the issue's: the server runs on initdb's output itself
hf pg-cold-direct -w 1 -r 5 --prepare "rm -rf $TETHER_CACHE_DIR" \
    "bench/floor-postgresql.sh cold-direct - $PROBE" "$T -q run postgresql -- true"

# Resets, with a 20-table schema
python3 -c 'print("\n".join(f"CREATE TABLE t{i} (id serial primary key, v text);" for i in range(20)))' > "$work/schema.sql"
printf '[postgresql]\ninit_sql = %s\n' "$work/schema.sql" > "$work/pg.ini"
eval "$("$T" -q -f "$work/pg.ini" start postgresql)"
n=50
conninfo="host=$TETHER_POSTGRESQL_HOST port=$TETHER_POSTGRESQL_PORT user=$TETHER_POSTGRESQL_USER dbname=template1"
"$B/bench/pgreset" cmd 3 "$T" -q reset postgresql >/dev/null # warm the spare
floor=$("$B/bench/pgreset" floor "$conninfo" floorcopy tether_template $n)
ours=$("$B/bench/pgreset" cmd $n "$T" -q reset postgresql)
python3 -c "import sys; f,o=float(sys.argv[1]),float(sys.argv[2]); print(f'| reset postgresql, 20 tables, back to back (mean of $n) | {f:.1f} ms | {o:.1f} ms | {o/f:.2f}x |')" "$floor" "$ours"
# as in a test suite: each reset after a test body (100 ms here, not
# counted), which is when the pool makes the next copy
export PGRESET_GAP_MS=100
floor=$("$B/bench/pgreset" floor "$conninfo" floorcopy tether_template $n)
ours=$("$B/bench/pgreset" cmd $n "$T" -q reset postgresql)
unset PGRESET_GAP_MS
python3 -c "import sys; f,o=float(sys.argv[1]),float(sys.argv[2]); print(f'| reset postgresql, 20 tables, after a 100 ms test body (mean of $n) | {f:.1f} ms | {o:.1f} ms | {o/f:.2f}x |')" "$floor" "$ours"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$TETHER_POSTGRESQL_CONTROL_PID/status")
eval "$("$T" stop)"

# reset = truncate, which keeps the test's connections: the same schema,
# then with 100 init rows in 5 of its tables; before each reset a test's
# body (not counted) inserts a row into 2 tables.  The floor is a script
# that knows the schema and does the same work over one open connection:
# TRUNCATE the tables, set the sequences back, insert the init rows again.
trunc_row() { # title, init SQL for the rows (or "")
    local title=$1 rows=$2 floor_sql
    { cat "$work/schema.sql"; printf '%s\n' "$rows"; } > "$work/schema-t.sql"
    printf '[postgresql]\ninit_sql = %s\nreset = truncate\n' "$work/schema-t.sql" > "$work/pg-t.ini"
    eval "$("$T" -q -f "$work/pg-t.ini" start postgresql)"
    floor_sql="BEGIN; TRUNCATE $(python3 -c 'print(", ".join(f"t{i}" for i in range(20)))');
        $(python3 -c 'print(" ".join(f"SELECT setval(\x27t{i}_id_seq\x27, 1, false);" for i in range(20)))')
        $rows COMMIT"
    local ci="host=$TETHER_POSTGRESQL_HOST port=$TETHER_POSTGRESQL_PORT user=$TETHER_POSTGRESQL_USER dbname=$TETHER_POSTGRESQL_DBNAME"
    "$B/bench/pgreset" cmd 3 "$T" -q reset postgresql >/dev/null # the worker reads the init state
    export PGRESET_DIRTY_CONNINFO="$ci" PGRESET_DIRTY_SQL="INSERT INTO t7 (v) VALUES ('x'); INSERT INTO t8 (v) VALUES ('y')"
    floor=$("$B/bench/pgreset" sql "$ci" $n "$floor_sql")
    ours=$("$B/bench/pgreset" cmd $n "$T" -q reset postgresql)
    unset PGRESET_DIRTY_CONNINFO PGRESET_DIRTY_SQL
    python3 -c "import sys; f,o=float(sys.argv[1]),float(sys.argv[2]); print(f'| $title (mean of $n) | {f:.1f} ms | {o:.1f} ms | {o/f:.2f}x |')" "$floor" "$ours"
    eval "$("$T" stop)"
}
trunc_row "reset postgresql, reset = truncate, 20 tables, a test wrote to 2" ""
trunc_row "reset postgresql, reset = truncate, 20 tables, 100 init rows in 5, a test wrote to 2" \
    "$(python3 -c 'print(" ".join(f"INSERT INTO t{i} (v) SELECT \x27row \x27 || g FROM generate_series(1, 100) g;" for i in range(5)))')"

if command -v redis-server >/dev/null; then
    eval "$("$T" -q start redis memcached)"
    hf reset-redis -w 3 -r 50 "$T --version" "$T -q reset redis"
    hf reset-memcached -w 3 -r 50 "$T --version" "$T -q reset memcached"
    rss_r=$(awk '/VmRSS/ {print $2}' "/proc/$TETHER_REDIS_CONTROL_PID/status")
    eval "$("$T" stop)"
    echo "| helper RSS (redis + memcached instance) | | $rss_r KiB | |"
fi
echo "| helper RSS (postgresql instance) | | $rss KiB | |"

# ---- slapd ----
if [ -x /usr/sbin/slapd ]; then
    # warm cache: the floor copies tether's own cached database
    "$T" -q run slapd -- true
    cached=$(ls -d "$TETHER_CACHE_DIR"/slapd-*/data | head -1)
    hf slapd -w 2 -r "$RUNS" "bench/floor-slapd.sh $cached $PROBE" "$T -q run slapd -- true"
    # reset = a restart from the cached copy: the floor is that same kill,
    # copy, start and bind, in one process
    eval "$("$T" -q start slapd)"
    hf reset-slapd -w 2 -r "$RUNS" "bench/floor-slapd.sh $cached $PROBE" "$T -q reset slapd"
    eval "$("$T" stop)"
fi

# 16 concurrent PostgreSQL instances on this machine
start=$(date +%s.%N)
for i in $(seq 16); do "$T" -q run postgresql -- sh -c 'psql -qAt -c "select 1" "$TETHER_POSTGRESQL_URL" >/dev/null' & done
fail=0; for j in $(jobs -p); do wait "$j" || fail=$((fail+1)); done
end=$(date +%s.%N)
echo "| 16 concurrent postgresql instances (wall, $fail failed) | | $(python3 -c "print(f'{$end-$start:.2f} s')") | |"
