#!/bin/bash
# Floor for `tether run postgresql pgbouncer -- true`: the warm PostgreSQL
# floor (a copy of tether's cached cluster, postgres on it with tether's
# settings) with pgbouncer started beside it, as tether starts them (at
# once), on the same pgbouncer.ini; ready when postgres takes a connection
# and pgbouncer's socket accepts (its READY=1 follows its listen); then
# both stopped.  As root both run as postgres, as tether does.
set -e
cached=$1 probe=$2
dir=$(mktemp -d /dev/shm/floor-pgb.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as=(); user=$(id -un)
mkdir "$dir/pg" "$dir/pgb"
if [ "$(id -u)" = 0 ]; then
    as=(setpriv --reuid=postgres --regid=postgres --clear-groups); user=postgres
    chown postgres: "$dir" "$dir/pg" "$dir/pgb"
fi
cp -a "$cached" "$dir/pg/data"
"${as[@]}" "$bin/postgres" -D "$dir/pg/data" -k "$dir/pg" -c listen_addresses= -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off -c dynamic_shared_memory_type=mmap \
    -c unix_socket_permissions=0700 -c wal_level=minimal -c max_wal_senders=0 \
    -c min_wal_size=2MB -c wal_recycle=off -c shared_buffers=32MB >/dev/null 2>&1 &
pids+=($!)
cat >"$dir/pgb/pgbouncer.ini" <<INI
[databases]
* = host=$dir/pg port=5432
[pgbouncer]
listen_addr =
listen_port = 6432
unix_socket_dir = $dir/pgb
unix_socket_mode = 0700
auth_type = trust
auth_file = $dir/pgb/users.txt
admin_users = $user
pool_mode = session
server_check_delay = 0
log_connections = 0
log_disconnections = 0
log_stats = 0
logfile =
pidfile =
INI
echo "\"$user\" \"\"" >"$dir/pgb/users.txt"
[ -z "${as[*]}" ] || chown postgres: "$dir/pgb"/*
"${as[@]}" /usr/sbin/pgbouncer "$dir/pgb/pgbouncer.ini" >/dev/null 2>&1 &
pids+=($!)
"$probe" pg "$dir/pg" 5432 "$user" tether
"$probe" unix "$dir/pgb/.s.PGSQL.6432"
kill -TERM "${pids[1]}"
kill -QUIT "${pids[0]}"
wait || true
pids=()
