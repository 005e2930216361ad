#!/bin/bash
# Floors for the mariadb driver.
#   floor-mariadb.sh run CACHED PROBE
#     `tether run mariadb -- true`, warm cache: copy tether's own cached
#     data directory (the same bytes), exec mariadbd on it with tether's
#     settings, wait until its socket takes a connection (the moment it
#     sends READY=1), SIGKILL, wait, remove.  As root it runs as mysql, as
#     tether does.
#   floor-mariadb.sh sql SOCKET N RESET_SQL [DIRTY_SQL]
#     a reset's own SQL over ONE open connection (the mariadb client), N
#     times, each after DIRTY_SQL (a test's writes, not counted: timed
#     alone and subtracted).  Prints the mean per reset, in ms.
set -e
mode=$1
if [ "$mode" = sql ]; then
    sock=$2 n=$3 reset=$4 dirty=${5:-}
    with=$(mktemp /dev/shm/floor-my.XXXXXX) without=$(mktemp /dev/shm/floor-my.XXXXXX)
    trap 'rm -f "$with" "$without"' EXIT
    for i in $(seq "$n"); do printf '%s\n%s\n' "$dirty" "$reset"; done >"$with"
    for i in $(seq "$n"); do printf '%s\n' "$dirty"; done >"$without"
    t0=$(date +%s%N)
    mariadb --no-defaults -S "$sock" tether <"$with" >/dev/null
    t1=$(date +%s%N)
    mariadb --no-defaults -S "$sock" tether <"$without" >/dev/null
    t2=$(date +%s%N)
    python3 -c "import sys; a,b,c,n=map(int,sys.argv[1:]); print(f'{((b-a)-(c-b))/n/1e6:.2f}')" "$t0" "$t1" "$t2" "$n"
    exit 0
fi
cached=$2 probe=$3
dir=$(mktemp -d /dev/shm/floor-my.XXXXXX)
pid=
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
as=()
if [ "$(id -u)" = 0 ]; then as=(setpriv --reuid=mysql --regid=mysql --clear-groups); chown mysql: "$dir"; fi
cp -a "$cached" "$dir/data"
# tether's fixed settings (lib/drivers/mariadb_cache.c), so that only the
# work differs
"${as[@]}" /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --tmpdir="$dir" --innodb-log-file-size=4M \
    --innodb-buffer-pool-size=16M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
    --skip-log-bin --performance-schema=0 --skip-name-resolve --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_general_ci --skip-networking >/dev/null 2>&1 &
pid=$!
"$probe" unix "$dir/mysqld.sock"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
