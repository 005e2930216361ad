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

# ---- mosquitto ----
# its reset is a restart: the floor is the same start and SIGKILL, as a plain script
if command -v mosquitto >/dev/null; then
    hf mosquitto -w 3 -r "$RUNS" "bench/floor-mosquitto.sh $PROBE" "$T -q run mosquitto -- true"
    eval "$("$T" -q start mosquitto)"
    hf reset-mosquitto -w 3 -r 50 "bench/floor-mosquitto.sh $PROBE" "$T -q reset mosquitto"
    eval "$("$T" stop)"
fi

# ---- nginx ----
# nothing to reset: a reset is tether's health check (GET /.tether-health)
if command -v nginx >/dev/null; then
    hf nginx -w 3 -r "$RUNS" "bench/floor-nginx.sh $PROBE" "$T -q run nginx -- true"
    eval "$("$T" -q start nginx)"
    hf reset-nginx -w 3 -r 50 "$T --version" "$T -q reset nginx"
    eval "$("$T" stop)"
fi

# ---- pgbouncer ----
# in front of PostgreSQL: both start at once, as tether starts them; the
# floor copies tether's cached cluster (made by the pg-warm row above)
if [ -x /usr/sbin/pgbouncer ]; then
    cached=$(ls -d "$TETHER_CACHE_DIR"/pg-*/data | head -1)
    hf pgbouncer -w 2 -r "$RUNS" "bench/floor-pgbouncer.sh $cached $PROBE" \
        "$T -q run postgresql pgbouncer -- true"
    eval "$("$T" -q start postgresql pgbouncer)"
    # floor: RECONNECT over the admin console by psql, the process the
    # recipe's reset runs (a psql start is most of it)
    hf reset-pgbouncer -w 3 -r 30 \
        "psql -X -q -h $TETHER_PGBOUNCER_SOCKET_DIR -p $TETHER_PGBOUNCER_PORT -U $TETHER_PGBOUNCER_USER -c RECONNECT pgbouncer" \
        "$T -q reset pgbouncer"
    eval "$("$T" stop)"
fi

# ---- influxdb ----
if command -v influxd >/dev/null; then
    hf influxdb -w 2 -r "$RUNS" "bench/floor-influxdb.sh $PROBE $((28000 + RANDOM % 1000)) $((29000 + RANDOM % 1000))" \
        "$T -q run influxdb -- true"
    eval "$("$T" -q start influxdb)"
    # floor: one process start (bash) and the same DROP+CREATE exchange
    hf reset-influxdb -w 3 -r 50 "bench/floor-influxdb-reset.sh $TETHER_INFLUXDB_PORT" \
        "$T -q reset influxdb"
    eval "$("$T" stop)"
fi

# ---- etcd ----
if command -v etcd >/dev/null; then
    hf etcd -w 2 -r "$RUNS" "bench/floor-etcd.sh $PROBE" "$T -q run etcd -- true"
    eval "$("$T" -q start etcd)"
    # reset: one DeleteRange through the JSON gateway vs a process start;
    # and vs etcdctl del --prefix "", what a test suite would run itself
    hf reset-etcd -w 3 -r 50 "$T --version" "$T -q reset etcd"
    hf reset-etcd-vs-etcdctl -w 3 -r 20 "etcdctl del --prefix ''" "$T -q reset etcd"
    eval "$("$T" stop)"
fi
# ---- nats ----
if [ -x /usr/sbin/nats-server ]; then
    port=$((28000 + RANDOM % 2000))
    hf nats -w 2 -r "$RUNS" "bench/floor-nats.sh $PROBE $port" "$T -q run nats -- true"
    eval "$("$T" -q start nats)"
    # core NATS has no state: the reset is the health check (CONNECT, PING)
    hf reset-nats -w 3 -r 50 "$T --version" "$T -q reset nats"
    eval "$("$T" stop)"
fi

# ---- zookeeper ----
# Both floors are a JVM's start to serving (0.5-0.9 s): ZooKeeper's reset is a
# restart on an emptied data dir, since no command deletes every znode
if command -v java >/dev/null && [ -r /usr/share/java/zookeeper.jar ]; then
    zport=$((28000 + RANDOM % 4000))
    hf zookeeper -w 2 -r 10 "bench/floor-zookeeper.sh $PROBE $zport run" "$T -q run zookeeper -- true"
    mkdir -p "$work/zk-floor"
    eval "$("$T" -q start zookeeper 2>/dev/null)"
    hf reset-zookeeper -w 2 -r 10 "bench/floor-zookeeper.sh $PROBE $zport reset $work/zk-floor" \
        "$T -q reset zookeeper"
    eval "$("$T" stop)"
    bench/floor-zookeeper.sh "$PROBE" "$zport" stop "$work/zk-floor"
fi

# ---- mariadb ----
if [ -x /usr/sbin/mariadbd ] && command -v mariadb >/dev/null; then
    "$T" -q run mariadb -- true # builds the cache entry the floor copies
    cached=$(ls -d "$TETHER_CACHE_DIR"/mariadb-*/data | head -1)
    hf mariadb -w 2 -r "$RUNS" "bench/floor-mariadb.sh run $cached $PROBE" "$T -q run mariadb -- true"
    # resets with the 20-table schema.  Each floor: the same reset's SQL
    # over one open connection, plus one process start ($T --version)
    printf '[mariadb]\ninit_sql = %s\n' "$work/schema.sql" > "$work/my.ini"
    eval "$("$T" -q -f "$work/my.ini" start mariadb)"
    my="mariadb --no-defaults -S $TETHER_MARIADB_SOCKET tether"
    hyperfine -N --style none -w 3 -r 30 --export-json "$work/myver.json" "$T --version" >/dev/null 2>&1
    myrow() { # title, the floor's reset SQL, the test's SQL before each reset
        local floor
        floor=$(bench/floor-mariadb.sh sql "$TETHER_MARIADB_SOCKET" 30 "$2" "$3")
        hyperfine -N --style none -w 3 -r 30 --prepare "$my -e \"$3\"" \
            --export-json "$work/myreset.json" "$T -q reset mariadb" >/dev/null 2>&1
        python3 - "$work/myver.json" "$work/myreset.json" "$floor" "$1" <<'PY'
import json, sys
ver = json.load(open(sys.argv[1]))["results"][0]["median"] * 1000
ours = json.load(open(sys.argv[2]))["results"][0]["median"] * 1000
f = float(sys.argv[3]) + ver
print(f"| {sys.argv[4]} | {f:.1f} ms | {ours:.1f} ms | {ours/f:.2f}x |")
PY
    }
    # a test wrote rows to 2 of the tables: TRUNCATE those
    myrow "reset mariadb, 20 tables, a test wrote to 2 (floor: TRUNCATE the 2)" \
        "TRUNCATE t7; TRUNCATE t8;" "INSERT INTO t7 (v) VALUES ('x'); INSERT INTO t8 (v) VALUES ('y');"
    # a test made a table: the full reset
    myrow "reset mariadb, 20 tables, a test made a table (floor: DROP + CREATE DATABASE + replay)" \
        "DROP DATABASE tether; CREATE DATABASE tether; USE tether; $(tr '\n' ' ' < "$work/schema.sql")" \
        "CREATE OR REPLACE TABLE extra (i int);"
    eval "$("$T" stop)"
fi

# ---- rabbitmq ----
# The run floor is the broker's boot (a BEAM start and Mnesia: seconds,
# so fewer runs); the reset floor is bench/probe sending the RESET line
# to the broker's tether_ctl listener (one process start, same exchange).
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    hf rabbitmq -w 1 -r 5 "bench/floor-rabbitmq.sh start" "$T -q run rabbitmq -- true"
    eval "$("$T" -q start rabbitmq)"
    ctl=$(sed -n 's/.*gen_tcp:listen(\([0-9]*\),.*/\1/p' "$TETHER_RABBITMQ_DIR/tether_ctl.erl")
    hf reset-rabbitmq -w 3 -r 20 "$PROBE tcp $ctl 'RESET $TETHER_RABBITMQ_PASSWORD\r\n' OK" "$T -q reset rabbitmq"
    eval "$("$T" stop)"
fi

# ---- container ----
# An image service (docs/containers.md) vs a plain `podman run --rm` of the
# same image waiting for the same GET; reset = exec: vs the `podman exec`
# it runs.  The image: busybox-static imported locally (no registry).
if command -v podman >/dev/null && [ -x /usr/bin/busybox ] && [ "$(id -u)" = 0 ]; then
    img=localhost/tether-bench-bb:1
    mkdir -p "$work/img/bin" "$work/img/www"
    cp /usr/bin/busybox "$work/img/bin/" && echo hello >"$work/img/www/index.html"
    tar -C "$work/img" -c . | podman import - "$img" >/dev/null
    printf '%s\n' '[web]' "image = $img" \
        'command = /bin/busybox httpd -f -h /www -p 127.0.0.1:${port}' 'port = auto' \
        'ready = http:/index.html' 'reset = exec:/bin/busybox true' >"$work/container.ini"
    hf container -w 2 -r "$RUNS" "bench/floor-container.sh $PROBE $img" \
        "env TETHER_CONFIG=$work/container.ini $T -q run web -- true"
    eval "$(TETHER_CONFIG="$work/container.ini" "$T" -q start web)"
    cname="tether-$(basename "$(dirname "$TETHER_WEB_DIR")")-web"
    hf reset-container -w 2 -r 10 "podman exec $cname /bin/busybox true" \
        "env TETHER_CONFIG=$work/container.ini $T -q reset web"
    eval "$("$T" stop)"
    podman rmi -f "$img" >/dev/null
fi

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
