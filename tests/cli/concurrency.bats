#!/usr/bin/env bats
# Issue 5, part 2: 32 parallel `tether run` per driver and mixed, and 8
# parallel first-time PostgreSQL cache builds.  No collision (every run
# sees its own port, socket or database), no failure, nothing left
# (teardown).  The wall times are printed (bats -t / --show-output-of-
# passing-tests shows them; docs/RELIABILITY.md has the figures).

load helpers

setup() {
    tether_setup
    # a root-run postgres must reach files under WORK
    chmod 0711 "$WORK"
}

teardown() { tether_teardown; }

N=32

# CHECK for each kind: talks to the service, prints what identifies it
check_for() {
    case $1 in
    command) echo 'read -r l </dev/tcp/127.0.0.1/"$TETHER_WEB_PORT" && [ "$l" = pong ] && echo "web:$TETHER_WEB_PORT"' ;;
    redis) echo '[ "$(redis-cli -s "$TETHER_REDIS_SOCKET" ping)" = PONG ] && echo "redis:$TETHER_REDIS_SOCKET"' ;;
    memcached) echo '"$PY" -c "
import os, socket
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ[\"TETHER_MEMCACHED_SOCKET\"])
s.sendall(b\"version\r\n\")
assert s.recv(64).startswith(b\"VERSION\")" && echo "memcached:$TETHER_MEMCACHED_SOCKET"' ;;
    postgresql) echo '[ "$(psql -X -qAt -c "select 1" "$TETHER_POSTGRESQL_URL")" = 1 ] && echo "postgresql:$TETHER_POSTGRESQL_HOST"' ;;
    esac
}

need() {
    case $1 in
    redis) command -v redis-server >/dev/null && command -v redis-cli >/dev/null || skip "no redis-server" ;;
    memcached) command -v memcached >/dev/null || skip "no memcached" ;;
    postgresql) command -v psql >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || skip "no PostgreSQL" ;;
    esac
}

# parallel KIND...: one `tether run` per KIND, all at once; fails unless
# every one succeeds and every identity is distinct; prints the wall time
parallel() {
    local cfg start i kind failed=0 pids=() kinds=("$@")
    cfg=$(config web.ini <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
EOF
)
    start=$(now_ms)
    i=0
    for kind in "$@"; do
        i=$((i + 1))
        case $kind in
        command) "$TETHER" -q -f "$cfg" run -- bash -c "$(check_for command)" >"$WORK/id.$i" 2>"$WORK/err.$i" 3>&- & ;;
        *) "$TETHER" -q run "$kind" -- bash -c "$(check_for "$kind")" >"$WORK/id.$i" 2>"$WORK/err.$i" 3>&- & ;;
        esac
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            echo "run $((i + 1)) (${kinds[$i]}) failed:" >&2
            cat "$WORK/err.$((i + 1))" >&2
            failed=$((failed + 1))
        fi
    done
    echo "# $# parallel runs ($(printf '%s\n' "$@" | sort | uniq -c | awk '{printf "%s%d %s", sep, $1, $2; sep=", "}')): $(($(now_ms) - start)) ms wall, $failed failed" >&3
    [ "$failed" = 0 ]
    [ "$(cat "$WORK"/id.* | wc -l)" -eq $# ]
    [ "$(cat "$WORK"/id.* | sort -u | wc -l)" -eq $# ] || { echo "collision:" >&2; sort "$WORK"/id.* | uniq -d >&2; return 1; }
}

repeat() { local i; for ((i = 0; i < $2; i++)); do echo "$1"; done; }

@test "32 parallel runs: command services" {
    parallel $(repeat command $N)
}

@test "32 parallel runs: redis" {
    need redis
    parallel $(repeat redis $N)
}

@test "32 parallel runs: memcached" {
    need memcached
    parallel $(repeat memcached $N)
}

@test "32 parallel runs: postgresql (warm cache)" {
    need postgresql
    tether -q run postgresql -- true # the cache, built once beforehand
    parallel $(repeat postgresql $N)
}

@test "32 parallel runs: mixed, 8 of each driver" {
    need redis
    need memcached
    need postgresql
    tether -q run postgresql -- true
    parallel $(for i in $(seq 8); do echo command redis memcached postgresql; done)
}

@test "8 parallel first-time users build one PostgreSQL cache, all succeed" {
    need postgresql
    export TETHER_CACHE_DIR="$WORK/cache"
    parallel $(repeat postgresql 8)
    [ "$(ls -d "$WORK"/cache/pg-* | grep -vc '\.lock$')" -eq 1 ]
    ! ls -d "$WORK"/cache/*.tmp-* 2>/dev/null
}
