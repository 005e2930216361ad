#!/bin/bash
# Floor for `tether run postgresql -- true`, warm cache: copy an initdb'd
# cluster (tether's own cache entry, the same bytes), exec postgres on it
# with tether's settings, connect, SIGQUIT, wait, remove.  "cold", as the
# issue defines it: initdb, then as above (the copy of the fresh cluster
# included).  Runs postgres as the postgres user when root, as tether does.
set -e
mode=$1 cached=$2 probe=$3
dir=$(mktemp -d /dev/shm/floor-pg.XXXXXX)
pid=
# interrupted (hyperfine killed, Ctrl-C): leave no server or directory
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as=(); user=$(id -un)
if [ "$(id -u)" = 0 ]; then as=(setpriv --reuid=postgres --regid=postgres --clear-groups); user=postgres; chown postgres: "$dir"; fi
if [ "$mode" = cold-direct ]; then # stricter: the server runs on initdb's own output
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U "$user" --auth=trust --no-sync -E UTF8 --locale=C --wal-segsize=1 >/dev/null
elif [ "$mode" = cold ]; then
    cached="$dir/init"
    "${as[@]}" "$bin/initdb" -D "$cached" -U "$user" --auth=trust --no-sync -E UTF8 --locale=C --wal-segsize=1 >/dev/null
fi
[ "$mode" = cold-direct ] || cp -a "$cached" "$dir/data"
# tether's fixed settings (lib/drivers/postgresql.c), so that only the
# work differs
"${as[@]}" "$bin/postgres" -D "$dir/data" -k "$dir" -c listen_addresses= -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off -c dynamic_shared_memory_type=mmap \
    -c unix_socket_permissions=0700 -c wal_level=minimal -c max_wal_senders=0 \
    -c min_wal_size=2MB -c wal_recycle=off -c shared_buffers=32MB >/dev/null 2>&1 &
pid=$!
# tether's cached cluster holds the database it hands out, "tether", and
# (to stay small) no "postgres"; a fresh initdb has only "postgres"
db=tether; [ "$mode" = warm ] || db=postgres
"$probe" pg "$dir" 5432 "$user" "$db"
kill -QUIT "$pid"
wait "$pid" || true
pid=
