#!/bin/bash
# foreign-servers.sh CMD [ARG...]: run CMD while servers that are not the
# suite's run beside it, as on a developer's machine: a PostgreSQL cluster
# (posix dynamic shared memory, System V main segment, parallel queries
# that make and remove /dev/shm/PostgreSQL.* files all the time), a
# redis-server on a TCP port and a unix socket, and now and then a System V
# segment with nothing attached (what a crashed server leaves).  Every test
# must count only what it made itself, so CMD must pass all the same.
# Everything is stopped and removed when CMD ends, or on SIGINT/SIGTERM.
#
# Run as root (the servers run as the postgres and nobody users).  To keep
# the foreign servers away from other users of the machine, run it in
# private namespaces:
#   unshare --ipc --net --mount --propagation private sh -c \
#     'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && ip link set lo up &&
#      tests/foreign-servers.sh bats tests/cli'
set -u
[ "$(id -u)" = 0 ] || { echo "foreign-servers.sh: run as root" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: foreign-servers.sh CMD [ARG...]" >&2; exit 2; }
pgbin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/foreign-servers.XXXXXX)
chmod 0755 "$dir"
touch "$dir/segments"
pids=()

cleanup() {
    trap - EXIT INT TERM
    # fast, not immediate: an immediate stop leaves the server's posix
    # segments (/dev/shm/PostgreSQL.N) behind
    local p s
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    [ -f "$dir/pg/postmaster.pid" ] &&
        runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null 2>&1
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    # the segments made below (the ones it had no time to remove)
    while read -r s; do ipcrm -m "$s" 2>/dev/null; done <"$dir/segments"
    rm -rf -- "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PostgreSQL on port 5999, its socket in $dir
mkdir "$dir/pg" "$dir/sock" && touch "$dir/pg.log" && chown postgres: "$dir/pg" "$dir/sock" "$dir/pg.log"
runuser -u postgres -- "$pgbin/initdb" -D "$dir/pg" -A trust -U postgres >/dev/null || exit 1
cat >>"$dir/pg/postgresql.conf" <<CONF
port = 5999
unix_socket_directories = '$dir/sock'
listen_addresses = ''
dynamic_shared_memory_type = posix
shared_memory_type = sysv
parallel_setup_cost = 0
parallel_tuple_cost = 0
min_parallel_table_scan_size = 0
CONF
runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w start >/dev/null 2>&1 || exit 1
psql_f() { runuser -u postgres -- psql -X -qAt -h "$dir/sock" -p 5999 -d postgres "$@"; }
psql_f -c 'CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g' >/dev/null || exit 1
# parallel queries: each makes a /dev/shm/PostgreSQL.N and removes it
(while :; do psql_f -c 'SELECT count(*) FROM t' >/dev/null 2>&1; sleep 0.2; done) &
pids+=($!)

# redis on a TCP port and a socket, as user nobody
chown nobody: "$dir" 2>/dev/null
setpriv --reuid=nobody --regid=nogroup --clear-groups redis-server --port 6399 --bind 127.0.0.1 --unixsocket "$dir/redis.sock" \
    --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
pids+=($!)

# a System V segment with nothing attached, now and then (a crashed server's)
(while :; do
    s=$(setpriv --reuid=nobody --regid=nogroup --clear-groups ipcmk -M 65536 | awk '{print $NF}')
    echo "$s" >>"$dir/segments"
    sleep 1
    ipcrm -m "$s" 2>/dev/null
    sleep 1
done) &
pids+=($!)

"$@"
