#!/usr/bin/env bats
# Security (issue 5, part 4), one property per test:
#   - instance and cache directories are private (0700; 0711 where a
#     root-run PostgreSQL must let the postgres user traverse) and owned
#     right;
#   - symlinks and hard links planted in an instance, pointing outside, are
#     never followed or deleted through, by stop or by gc;
#   - another local user (nobody) can neither connect to a service's unix
#     socket nor read its CONFIGFILE;
#   - a state directory owned by someone else, or a symlink in its place,
#     is refused with a clear error (TETHER_DIR and /dev/shm/tether-$UID);
#   - as root, PostgreSQL leaves no postgres-owned file outside the
#     instance and the cache;
#   - credentials (server = URL with a password) land only in 0600 files,
#     never in messages, logs or command lines;
#   - as root, what the postgres user can write (its service directory, so
#     any test's COPY ... TO PROGRAM) steers nothing root does: a forged
#     segment record or postmaster.pid removes no other user's segment, a
#     FIFO or a link to /dev/zero hangs neither stop nor gc (issue 9.3).
#   - over TCP, PostgreSQL and redis need the instance's own password (any
#     local user reaches TCP), the unix socket none; memcached on TCP,
#     which has no authentication, is warned about on stderr.
# Tests that need root (setpriv, chown, the postgres user) skip otherwise.

load helpers

setup() {
    tether_setup
    ME="$(id -u)"
    # a root-run postgres must reach files under WORK
    chmod 0711 "$WORK"
}

teardown() {
    if [ -n "${SHM_DEFAULT:-}" ]; then rm -rf -- "$SHM_DEFAULT"; fi
    # what a test planted for the server to trip us with: gone before the
    # teardown's gc, which would trip over it too on a tether without the fix
    if [ -n "${PLANTED:-}" ]; then rm -f -- $PLANTED; fi
    if [ -n "${FOREIGN_PID:-}" ]; then kill -KILL "$FOREIGN_PID" && wait_gone "$FOREIGN_PID"; fi
    if [ -n "${FOREIGN_ID:-}" ]; then ipcrm -m "$FOREIGN_ID" 2>/dev/null || true; fi
    tether_teardown
}

need_root() { [ "$(id -u)" = 0 ] || skip "needs root"; }
need_pg() {
    command -v psql >/dev/null || skip "psql is not installed"
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || skip "no PostgreSQL server"
}
need_redis() { command -v redis-server >/dev/null || skip "redis-server is not installed"; }

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

# mode_of PATH: octal mode (no type bits), owner name
mode_of() { stat -c '%a %U' -- "$1"; }

assert_mode() {
    local got
    got="$(mode_of "$1")"
    [ "$got" = "$2" ] || { echo "$1: $got, want $2" >&2; return 1; }
}

# Every entry below DIR (not DIR itself): directories 0700, regular files
# 0600, sockets writable by their owner only; all owned by OWNER, except
# paths matching the extended regex SKIP.
assert_private_tree() {
    local dir="$1" owner="$2" skip="${3:-^$}" bad
    bad="$(find "$dir" -mindepth 1 -printf '%y %m %u %p\n' | grep -Ev -- "$skip" | awk -v o="$owner" '
        $3 != o { print; next }
        $1 == "d" && $2 != "700" { print; next }
        $1 == "f" && $2 != "600" { print; next }
        $1 == "s" && ($2 % 100) !~ /^[0145]?[0145]$/ { print; next }
        $1 != "d" && $1 != "f" && $1 != "s" { print }')"
    [ -z "$bad" ] || { printf 'not private:\n%s\n' "$bad" >&2; return 1; }
}

# a config with a unix-socket command service and a redis
web_and_redis_config() {
    config s.ini <<EOF
[web]
command = $TSERVER --unix \${socket}
socket = auto
ready = unix:\${socket}
[redis]
EOF
}

@test "instance directories are 0700 and ours: command and redis services" {
    need_redis
    cfg=$(web_and_redis_config)
    eval "$(tether -q -f "$cfg" start)"
    inst="${TETHER_WEB_CONFIGFILE%/*}"
    assert_mode "$TETHER_DIR" "700 $(id -un)"
    assert_mode "$inst" "700 $(id -un)"
    assert_mode "$TETHER_WEB_DIR" "700 $(id -un)"
    assert_mode "$TETHER_REDIS_DIR" "700 $(id -un)"
    assert_mode "$TETHER_WEB_CONFIGFILE" "600 $(id -un)"
    assert_private_tree "$inst" "$(id -un)"
    eval "$(tether stop)"
}

@test "as root, a PostgreSQL instance is 0711 down to its own directory, which postgres owns" {
    need_root
    need_pg
    eval "$(tether -q start postgresql)"
    inst="${TETHER_POSTGRESQL_CONFIGFILE%/*}"
    # exactly what lib/drivers/postgresql.c open_path_for() sets: traverse,
    # never list, for the state root and the instance
    assert_mode "$TETHER_DIR" "711 root"
    assert_mode "$inst" "711 root"
    assert_mode "$TETHER_POSTGRESQL_DIR" "700 postgres"
    assert_mode "$TETHER_POSTGRESQL_DATADIR" "700 postgres"
    assert_mode "$TETHER_POSTGRESQL_CONFIGFILE" "600 root"
    # the instance's own files are root's and private; the server's are
    # postgres' and private (the notify socket is postgres', 0755 at most)
    assert_private_tree "$inst" root "/postgresql($|/|\.notify$)"
    assert_private_tree "$TETHER_POSTGRESQL_DIR" postgres
    # tether's own records are beside it, out of postgres' reach
    assert_mode "$inst/postgresql.rec" "700 root"
    assert_mode "$inst/postgresql.notify" "755 postgres"
    eval "$(tether stop)"
    # a reused state root is tightened back by the next instance? no: 0711
    # is accepted (ensure_private_dir); it never gets wider than that
    assert_mode "$TETHER_DIR" "711 root"
}

@test "the PostgreSQL cache is private: 0711 root (0700 otherwise), clusters 0700" {
    need_pg
    export TETHER_CACHE_DIR="$WORK/cache"
    run tether run postgresql -- true
    assert_status 0
    if [ "$ME" = 0 ]; then
        assert_mode "$TETHER_CACHE_DIR" "711 root"
        owner=postgres
    else
        assert_mode "$TETHER_CACHE_DIR" "700 $(id -un)"
        owner="$(id -un)"
    fi
    n=0
    for d in "$TETHER_CACHE_DIR"/pg-*; do
        case $d in *.lock) assert_mode "$d" "600 $(id -un)"; continue ;; esac
        n=$((n + 1))
        assert_mode "$d" "700 $owner"
        assert_mode "$d/data" "700 $owner"
    done
    [ "$n" -ge 1 ]
    # nothing in it for group or others
    bad="$(find "$TETHER_CACHE_DIR" -mindepth 1 -perm /077 ! -type l -printf '%m %u %p\n')"
    [ -z "$bad" ] || { printf 'group/world bits:\n%s\n' "$bad" >&2; return 1; }
}

# plant_links DIR: symlinks and a hard link in DIR to $WORK/outside
plant_links() {
    ln -s "$WORK/outside/dir" "$1/link-to-dir"
    ln -s "$WORK/outside/file" "$1/link-to-file"
    ln -s "$WORK/outside" "$1/link-to-tree"
    ln "$WORK/outside/file" "$1/hardlink"
    mkdir "$1/sub"
    ln -s "$WORK/outside/dir" "$1/sub/deeper"
    ln "$WORK/outside/dir/inner" "$1/sub/hard-inner"
}

make_outside() {
    mkdir -p "$WORK/outside/dir"
    echo precious >"$WORK/outside/file"
    echo inner >"$WORK/outside/dir/inner"
}

assert_outside_intact() {
    [ "$(cat "$WORK/outside/file")" = precious ]
    [ "$(cat "$WORK/outside/dir/inner")" = inner ]
    # the hard links are gone: one name each again
    [ "$(stat -c %h "$WORK/outside/file")" = 1 ]
    [ "$(stat -c %h "$WORK/outside/dir/inner")" = 1 ]
    [ "$(ls -A "$WORK/outside" | tr '\n' ' ')" = "dir file " ]
}

@test "links planted in an instance are removed, never followed: stop" {
    make_outside
    cfg=$(printf '[svc]\ncommand = sleep 1000\n' | config l.ini)
    eval "$(tether -q -f "$cfg" start)"
    plant_links "${TETHER_SVC_CONFIGFILE%/*}"
    plant_links "$TETHER_SVC_DIR"
    eval "$(tether stop)"
    assert_outside_intact
}

@test "links planted in an instance are removed, never followed: gc after SIGKILL" {
    make_outside
    cfg=$(printf '[svc]\ncommand = sleep 1000\n' | config l.ini)
    eval "$(tether -q -f "$cfg" start)"
    plant_links "${TETHER_SVC_CONFIGFILE%/*}"
    plant_links "$TETHER_SVC_DIR"
    kill -KILL "$TETHER_SVC_CONTROL_PID"
    wait_gone "$TETHER_SVC_CONTROL_PID"
    run tether gc
    assert_status 0
    assert_outside_intact
    eval "$(tether stop 2>/dev/null)" || true
}

@test "links planted by the service itself, and the service dir swapped for a link, are not followed" {
    make_outside
    cfg=$(config l.ini <<EOF
[svc]
command = sh -c 'ln -s $WORK/outside \${dir}/mine && ln $WORK/outside/file \${dir}/hard && exec sleep 1000'
EOF
)
    eval "$(tether -q -f "$cfg" start)"
    wait_for 10 test -L "$TETHER_SVC_DIR/mine"
    # the service directory itself replaced by a symlink to the outside
    mv "$TETHER_SVC_DIR" "$TETHER_SVC_DIR.moved"
    ln -s "$WORK/outside" "$TETHER_SVC_DIR"
    eval "$(tether stop)"
    assert_outside_intact
}

@test "another user can neither connect to a service's socket nor read its CONFIGFILE" {
    need_root
    need_redis
    cfg=$(web_and_redis_config)
    eval "$(tether -q -f "$cfg" start)"
    # the sockets work for us...
    [ "$(ping_unix "$TETHER_WEB_SOCKET")" = pong ]
    [ "$(redis-cli -s "$TETHER_REDIS_SOCKET" ping)" = PONG ]
    # ...and not for nobody
    for sock in "$TETHER_WEB_SOCKET" "$TETHER_REDIS_SOCKET"; do
        run as_nobody "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("refused"); sys.exit(0)
print("connected"); sys.exit(1)' "$sock"
        assert_status 0
        [ "$output" = refused ]
    done
    run as_nobody redis-cli -s "$TETHER_REDIS_SOCKET" ping
    [ "$output" != PONG ]
    for f in "$TETHER_WEB_CONFIGFILE" "$TETHER_REDIS_CONFIGFILE"; do
        run as_nobody cat "$f"
        [ "$status" -ne 0 ]
        assert_output_has "Permission denied"
    done
    run as_nobody ls "$TETHER_DIR"
    [ "$status" -ne 0 ]
    eval "$(tether stop)"
}

@test "another user can neither connect to PostgreSQL's socket nor read its CONFIGFILE (root: 0711 path)" {
    need_root
    need_pg
    eval "$(tether -q start postgresql)"
    sock="$TETHER_POSTGRESQL_HOST/.s.PGSQL.$TETHER_POSTGRESQL_PORT"
    [ -S "$sock" ]
    run psql -X -qAt -c "select 1" "$TETHER_POSTGRESQL_URL"
    assert_status 0
    # the path is traversable (0711) but the socket's directory is not
    run as_nobody psql -X -qAt -h "$TETHER_POSTGRESQL_HOST" -p "$TETHER_POSTGRESQL_PORT" \
        -U postgres -c "select 1" tether
    [ "$status" -ne 0 ]
    assert_output_has "Permission denied"
    run as_nobody cat "$TETHER_POSTGRESQL_CONFIGFILE"
    [ "$status" -ne 0 ]
    assert_output_has "Permission denied"
    # listing the instance (0711) is refused too: the names stay secret
    run as_nobody ls "${TETHER_POSTGRESQL_CONFIGFILE%/*}"
    [ "$status" -ne 0 ]
    run as_nobody ls "$TETHER_DIR"
    [ "$status" -ne 0 ]
    eval "$(tether stop)"
}

@test "a state directory owned by someone else is refused" {
    need_root
    mkdir -m 0700 "$WORK/state"
    chown nobody:nogroup "$WORK/state"
    TETHER_DIR="$WORK/state" run "$TETHER" run redis -- true
    [ "$status" -ne 0 ]
    assert_output_has "$WORK/state is owned by uid 65534, not you (uid 0)"
    [ -z "$(ls -A "$WORK/state")" ]
    assert_mode "$WORK/state" "700 nobody"
}

@test "a cache directory owned by someone else, or a symlink, is refused" {
    need_root
    need_pg
    mkdir -m 0700 "$WORK/cache" "$WORK/bait"
    chown nobody:nogroup "$WORK/cache"
    TETHER_CACHE_DIR="$WORK/cache" run "$TETHER" run postgresql -- true
    [ "$status" -ne 0 ]
    assert_output_has "cache directory: $WORK/cache is owned by uid 65534, not you (uid 0)"
    [ -z "$(ls -A "$WORK/cache")" ]
    ln -s "$WORK/bait" "$WORK/cache2"
    TETHER_CACHE_DIR="$WORK/cache2" run "$TETHER" run postgresql -- true
    [ "$status" -ne 0 ]
    assert_output_has "$WORK/cache2 is a symlink, not a directory"
    [ -z "$(ls -A "$WORK/bait")" ]
}

@test "a symlink in place of the state directory is refused, and not followed" {
    mkdir -m 0700 "$WORK/real"
    ln -s "$WORK/real" "$WORK/state"
    TETHER_DIR="$WORK/state" run "$TETHER" run redis -- true
    [ "$status" -ne 0 ]
    assert_output_has "$WORK/state is a symlink, not a directory"
    [ -z "$(ls -A "$WORK/real")" ]
    # also for gc and list, which only read
    for cmd in gc list; do
        TETHER_DIR="$WORK/state" run "$TETHER" "$cmd"
        [ "$status" -ne 0 ]
        assert_output_has "is a symlink"
    done
}

@test "a state directory of ours that others can write is tightened to 0700" {
    mkdir -m 0777 "$WORK/state"
    chmod 0777 "$WORK/state"
    cfg=$(printf '[svc]\ncommand = sleep 1000\n' | config l.ini)
    TETHER_DIR="$WORK/state" run "$TETHER" -f "$cfg" run -- true
    assert_status 0
    assert_mode "$WORK/state" "700 $(id -un)"
}

@test "the default /dev/shm/tether-\$UID: someone else's, or a symlink, is refused" {
    need_root
    need_redis
    SHM_DEFAULT=/dev/shm/tether-65534
    [ ! -e "$SHM_DEFAULT" ] && [ ! -L "$SHM_DEFAULT" ] || skip "$SHM_DEFAULT exists"
    # as nobody, with no TETHER_DIR and no XDG_RUNTIME_DIR: the default path
    nob() { as_nobody env -u TETHER_DIR -u XDG_RUNTIME_DIR HOME=/ "$TETHER" "$@"; }

    mkdir -m 0700 "$SHM_DEFAULT" # root's
    run nob run redis -- true
    [ "$status" -ne 0 ]
    assert_output_has "$SHM_DEFAULT is owned by uid 0, not you (uid 65534)"
    [ -z "$(ls -A "$SHM_DEFAULT")" ]
    rmdir "$SHM_DEFAULT"

    mkdir -m 0777 "$WORK/bait"
    ln -s "$WORK/bait" "$SHM_DEFAULT"
    run nob run redis -- true
    [ "$status" -ne 0 ]
    assert_output_has "$SHM_DEFAULT is a symlink, not a directory"
    [ -z "$(ls -A "$WORK/bait")" ]
    rm "$SHM_DEFAULT"

    # and a world-writable one owned by nobody is tightened, then works
    mkdir -m 0777 "$SHM_DEFAULT"
    chown nobody:nogroup "$SHM_DEFAULT"
    chmod 0777 "$SHM_DEFAULT"
    run nob list
    assert_status 0
    assert_mode "$SHM_DEFAULT" "700 nobody"
}

# SysV segments created by PID (the postmaster), if any remain
segments_of() { awk -v p="$1" 'NR > 1 && $5 == p { print $2 }' /proc/sysvipc/shm; }

# new postgres-owned entries: directly in the world-writable directories
# (the postgres user cannot write below others' directories there) and
# anywhere in its own directories.  bench/floor-postgresql.sh, run by
# others on a shared machine, makes /dev/shm/floor-pg.*: not ours.
postgres_files_since() {
    {
        find /tmp /var/tmp /dev/shm -mindepth 1 -maxdepth 1 -user postgres -newer "$1" 2>/dev/null |
            grep -v '^/dev/shm/floor-pg\.'
        find /var/run/postgresql /var/lib/postgresql /var/log/postgresql /run/postgresql \
            -user postgres -newer "$1" 2>/dev/null
        # and anywhere below our own WORK but the cache
        find "$WORK" -user postgres -newer "$1" 2>/dev/null | grep -v "^$WORK/cache"
    } | sort -u
}

# Paths a live process holds: open or mapped, a bound unix socket (and its
# lock file), or a postgres process's working directory (a server's data
# directory) with all below it, as DIR/.  Once our servers are gone, these
# are someone else's: the developer's own PostgreSQL, another suite's.
held_paths() {
    {
        find /proc/[0-9]*/fd /proc/[0-9]*/map_files -type l -printf '%l\n' 2>/dev/null
        awk 'NR > 1 && $8 ~ /^\// { print $8; print $8 ".lock" }' /proc/net/unix
        find /proc/[0-9]*/cwd -maxdepth 0 -user postgres -printf '%l/\n' 2>/dev/null | grep -vx /
    } | sed 's/ (deleted)$//' | sort -u
}

# the paths on stdin that no live process holds, nor names in a pid file
# (pg_ctlcluster's /run/postgresql/VERSION-CLUSTER.pid)
unheld() {
    local held p d n
    held="$(held_paths)"
    while read -r p; do
        grep -qxF -- "$p" <<<"$held" && continue
        for d in $(grep '/$' <<<"$held"); do
            case $p/ in "$d"*) continue 2 ;; esac
        done
        if [ -f "$p" ] && read -r n <"$p" 2>/dev/null && [[ $n =~ ^[0-9]+$ ]] && [ -d "/proc/$n" ]; then
            continue
        fi
        echo "$p"
    done
}

@test "as root, PostgreSQL leaves no postgres-owned file outside the instance and the cache" {
    need_root
    need_pg
    export TETHER_CACHE_DIR="$WORK/cache"
    # tmpfs and ext4 keep nanoseconds: -newer needs no waiting
    touch "$WORK/marker"
    run tether run postgresql -- sh -c 'head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid"'
    assert_status 0
    pm1="$output"
    eval "$(tether -q start postgresql)"
    pm2=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    run tether reset
    assert_status 0
    eval "$(tether stop)"
    wait_gone "$pm1"
    wait_gone "$pm2"
    # someone else's server may be between making a /dev/shm/PostgreSQL.N
    # and mapping it, or unmapping and removing it: ours stay
    ours_left() { postgres_files_since "$WORK/marker" | unheld; }
    none_left() { [ -z "$(ours_left)" ]; }
    wait_for 2 none_left ||
        { printf 'postgres-owned files left:\n%s\n' "$(ours_left)" >&2; return 1; }
    [ -z "$(segments_of "$pm1")$(segments_of "$pm2")" ]
    # and inside the state directory nothing at all
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "a server = URL password lands only in 0600 files: not in messages, logs or command lines" {
    need_pg
    eval "$(tether -q start postgresql)"
    pw="Sekr1t-$RANDOM$RANDOM"
    base="postgresql://$TETHER_POSTGRESQL_USER:$pw@"
    # the server is on a unix socket: give it as a host parameter
    url="${base}/tether?host=$TETHER_POSTGRESQL_HOST&port=$TETHER_POSTGRESQL_PORT"
    cfg=$(printf '[tether]\nprefix = SRV\n[app]\ndriver = postgresql\nserver = %s\n' "$url" | config srv.ini)
    out="$("$TETHER" -q -f "$cfg" start 2>"$WORK/start.err")"
    eval "$out"
    [ -n "$SRV_APP_CONTROL_PID" ]
    # every file holding it is 0600, below private directories
    files="$(grep -rlF -- "$pw" "$TETHER_DIR" || true)"
    [ -n "$files" ]
    for f in $files; do
        assert_mode "$f" "600 $(id -un)"
    done
    inst="${SRV_APP_CONFIGFILE%/*}"
    assert_mode "$inst" "700 $(id -un)"
    # no process shows it in its command line (world-readable in /proc)
    run grep -lsF -- "$pw" /proc/[0-9]*/cmdline
    [ -z "$output" ]
    # nor in any log, nor in what start said on stderr
    run ! grep -rqF -- "$pw" "$WORK/start.err" "$TETHER_DIR"/*/*.log
    eval "$(tether stop)"

    # a failing server: the message names the server, not the password
    bad="postgresql://someone:$pw@127.0.0.1:1/x"
    cfg=$(printf '[app]\ndriver = postgresql\nserver = %s\n' "$bad" | config bad.ini)
    run "$TETHER" -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "server = postgresql://someone:***@127.0.0.1:1/x"
    [[ $output != *"$pw"* ]]
    cfg=$(printf "[app]\ndriver = postgresql\nserver = host=127.0.0.1 port=1 password='%s'\n" "$pw" | config bad2.ini)
    run "$TETHER" -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "password=***"
    [[ $output != *"$pw"* ]]
}

# ---- as root, the postgres user's files steer nothing root does (9.3) ----

# SQL as the server's user, as any test may run it
pg_sql() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# A System V segment of another user (nobody), in use by its process
# (FOREIGN_PID): what a forged record would name.  Sets FOREIGN_KEY,
# FOREIGN_ID, FOREIGN_CPID.
foreign_segment() {
    FOREIGN_KEY=$((0x54e70000 + RANDOM))
    # not through as_nobody: $! must be the python process itself; and
    # without bats' fd 3, which bats would wait for
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$PY" -c '
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm_id = libc.shmget(int(sys.argv[1]), 4096, 0o1000 | 0o600)  # IPC_CREAT
if shm_id < 0 or libc.shmat(shm_id, None, 0) == ctypes.c_void_p(-1).value:
    sys.exit("shm: errno %d" % ctypes.get_errno())
print(shm_id, flush=True)
time.sleep(300)
' "$FOREIGN_KEY" >"$WORK/foreign" 3>&- &
    FOREIGN_PID=$!
    wait_file "$WORK/foreign"
    FOREIGN_ID="$(cat "$WORK/foreign")"
    FOREIGN_CPID="$(awk -v i="$FOREIGN_ID" 'NR > 1 && $2 == i { print $5 }' /proc/sysvipc/shm)"
    [ "$FOREIGN_CPID" = "$FOREIGN_PID" ]
}

# the foreign segment is still there, nobody's, with its key (a removed
# segment that is still attached shows key 0)
assert_foreign_intact() {
    local line
    line="$(awk -v i="$FOREIGN_ID" 'NR > 1 && $2 == i' /proc/sysvipc/shm)"
    [ -n "$line" ] || { echo "segment $FOREIGN_ID of nobody was removed" >&2; return 1; }
    set -- $line
    [ "$1" = "$FOREIGN_KEY" ] && [ "$8" = "$(id -u nobody)" ]
}

# start PostgreSQL as root; PM is its postmaster, DIR the postgres-owned
# service directory, INST the instance.  With MEM_LIMIT_KB, the helper (and
# its servers) run under that ulimit -v.
start_pg_as_root() {
    need_root
    need_pg
    eval "$({ [ -z "${MEM_LIMIT_KB:-}" ] || ulimit -v "$MEM_LIMIT_KB"; } && tether -q start postgresql)"
    PM=$(head -1 "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")
    DIR=$TETHER_POSTGRESQL_DIR
    INST=${TETHER_POSTGRESQL_CONFIGFILE%/*}
    [ "$(stat -c %U "$DIR")" = postgres ]
}

# SIGKILL the helper: postgres follows; wait until no backend holds its
# segment any more (so gc's sweep of the postmaster's segments may take it)
kill_helper() {
    kill -KILL "$TETHER_POSTGRESQL_CONTROL_PID"
    wait_gone "$TETHER_POSTGRESQL_CONTROL_PID"
    wait_gone "$PM"
    wait_for 10 sh -c "! awk -v p=$PM 'NR > 1 && \$5 == p && \$7 > 0 { f = 1 } END { exit !f }' /proc/sysvipc/shm"
}

@test "as root, a segment record the server rewrote makes stop remove no other user's segment" {
    need_root
    foreign_segment
    start_pg_as_root
    # where tether kept its record before, and any such name: the server
    # owns the directory, so it can replace root's file there
    pg_sql "COPY (SELECT 1) TO PROGRAM 'rm -f $DIR/shm-segment; echo $FOREIGN_KEY $FOREIGN_ID $FOREIGN_CPID >$DIR/shm-segment'"
    [ "$(stat -c %U "$DIR/shm-segment")" = postgres ]
    run timeout 30 "$TETHER" stop
    assert_status 0
    assert_foreign_intact
    wait_gone "$PM"
    [ -z "$(segments_of "$PM")" ]
}

@test "as root, a postmaster.pid the server forged makes gc remove no other user's segment" {
    need_root
    foreign_segment
    start_pg_as_root
    # a helper killed before the server was ready has recorded nothing:
    # gc goes by postmaster.pid, which the server's user can rewrite
    rm -f "$INST/postgresql.rec/shm"
    pg_sql "COPY (SELECT 1) TO PROGRAM 'rm -f $DIR/shm-segment; sed -i \"7s/.*/$FOREIGN_KEY $FOREIGN_ID/\" $TETHER_POSTGRESQL_DATADIR/postmaster.pid'"
    [ "$(sed -n 7p "$TETHER_POSTGRESQL_DATADIR/postmaster.pid")" = "$FOREIGN_KEY $FOREIGN_ID" ]
    kill_helper
    run timeout 30 "$TETHER" gc
    assert_status 0
    assert_foreign_intact
    # and the postmaster's own segment went all the same
    [ -z "$(segments_of "$PM")" ]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "as root, FIFOs the server planted in its directory hang no stop" {
    start_pg_as_root
    PLANTED="$DIR/shm-segment $DIR/data/postmaster.opts"
    pg_sql "COPY (SELECT 1) TO PROGRAM 'rm -f $PLANTED && mkfifo $PLANTED'"
    [ -p "$DIR/shm-segment" ]
    run timeout 30 "$TETHER" stop
    assert_status 0
    wait_gone "$PM"
    [ -z "$(segments_of "$PM")" ]
}

@test "as root, a FIFO the server planted hangs neither gc nor a later run after the helper died" {
    start_pg_as_root
    PLANTED="$DIR/shm-segment"
    pg_sql "COPY (SELECT 1) TO PROGRAM 'rm -f $PLANTED && mkfifo $PLANTED'"
    kill_helper
    # a run in the same state directory reaps the stale instance first
    cfg=$(printf '[svc]\ncommand = sleep 1000\n' | config s.ini)
    run timeout 30 "$TETHER" -f "$cfg" run -- true
    assert_status 0
    run timeout 30 "$TETHER" gc
    assert_status 0
    [ -z "$(segments_of "$PM")" ]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "as root, a link to /dev/zero the server planted is not read: stop and gc finish" {
    # a tether that read it would grow until its memory limit stops it
    MEM_LIMIT_KB=2097152
    start_pg_as_root
    PLANTED="$DIR/shm-segment"
    pg_sql "COPY (SELECT 1) TO PROGRAM 'rm -f $PLANTED && ln -s /dev/zero $PLANTED'"
    run timeout 30 sh -c 'ulimit -v 1048576 && exec "$TETHER" stop'
    assert_status 0
    wait_gone "$PM"
    [ -z "$(segments_of "$PM")" ]

    start_pg_as_root
    PLANTED="$DIR/shm-segment"
    pg_sql "COPY (SELECT 1) TO PROGRAM 'rm -f $PLANTED && ln -s /dev/zero $PLANTED'"
    kill_helper
    run timeout 30 sh -c 'ulimit -v 1048576 && exec "$TETHER" gc'
    assert_status 0
    [ -z "$(segments_of "$PM")" ]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

# ---- TCP needs the instance's password (issue 9, item 1) ----
# Over TCP the server cannot tell one local user from another: a client
# without the password is any local user.  So these tests try TCP without
# it as ourselves (any uid), and as nobody too when we are root.

# nopw_env CMD...: run CMD with no password from the environment or a file
nopw_env() { env -u PGPASSWORD -u REDISCLI_AUTH PGPASSFILE="$WORK/no-pgpass" "$@"; }

# assert_secret_private SECRET: SECRET is in 0600 files of ours only, in no
# command line (world-readable in /proc), and in no log
assert_secret_private() {
    local pw="$1" files f
    files="$(grep -rlF -- "$pw" "$TETHER_DIR" || true)"
    [ -n "$files" ]
    for f in $files; do
        assert_mode "$f" "600 $(id -un)"
    done
    run grep -lsF -- "$pw" /proc/[0-9]*/cmdline
    [ -z "$output" ]
    run ! grep -rqF -- "$pw" "$TETHER_DIR"/*/*.log "$TETHER_DIR"/*/*/*.log
}

@test "tcp = yes PostgreSQL: TCP needs the instance's password, the unix socket does not" {
    need_pg
    cfg=$(printf '[postgresql]\ntcp = yes\n' | config pg.ini)
    eval "$(tether -q -f "$cfg" start)"
    pw="$TETHER_POSTGRESQL_PASSWORD"
    user="$TETHER_POSTGRESQL_USER"
    port="$TETHER_POSTGRESQL_PORT"
    # without the password, over TCP: refused (the attack: before, any
    # local user was in as the superuser, COPY ... TO PROGRAM and all)
    run nopw_env psql -X -w -qAt -h 127.0.0.1 -p "$port" -U "$user" \
        -c "copy (select 1) to program 'true'" tether
    [ "$status" -ne 0 ]
    assert_output_has "no password supplied"
    # 128 bits of hex: nothing in it needs quoting anywhere
    [[ $pw =~ ^[0-9a-f]{32}$ ]]
    [ "$PGPASSWORD" = "$pw" ]
    [ "$TETHER_POSTGRESQL_URL" = "postgresql://$user:$pw@127.0.0.1:$port/tether" ]
    run env PGPASSWORD=wrong psql -X -w -qAt -h 127.0.0.1 -p "$port" -U "$user" -c "select 1" tether
    [ "$status" -ne 0 ]
    assert_output_has "password authentication failed"
    # with it: the URL, and libpq's own variables
    run nopw_env psql -X -w -qAt -c "select current_user" "$TETHER_POSTGRESQL_URL"
    assert_status 0
    [ "$output" = "$user" ]
    run psql -X -w -qAt -c "select 2"
    assert_status 0
    [ "$output" = 2 ]
    # the unix socket, in the service's 0700 directory: no password
    run nopw_env psql -X -w -qAt -h "$TETHER_POSTGRESQL_DIR" -p "$port" -U "$user" -c "select 3" tether
    assert_status 0
    [ "$output" = 3 ]
    # the driver's own connections (reset, health) still get in
    run tether reset postgresql
    assert_status 0
    run tether status
    assert_status 0
    assert_mode "$TETHER_POSTGRESQL_CONFIGFILE" "600 $(id -un)"
    assert_secret_private "$pw"
    eval "$(tether stop)"
    [ -z "${PGPASSWORD:-}" ]
}

@test "tcp = yes PostgreSQL: each instance has its own password, none in the shared cache" {
    need_pg
    cfg=$(printf '[tether]\nprefix = A\n[postgresql]\ntcp = yes\n' | config a.ini)
    out_a="$(tether -q -f "$cfg" start)"
    cfg=$(printf '[tether]\nprefix = B\n[postgresql]\ntcp = yes\n' | config b.ini)
    out_b="$(tether -q -f "$cfg" start)"
    eval "$out_a"
    eval "$out_b"
    # B without a password: refused
    run env -u PGPASSWORD PGPASSFILE="$WORK/no-pgpass" psql -X -w -qAt -h 127.0.0.1 \
        -p "$B_POSTGRESQL_PORT" -U "$B_POSTGRESQL_USER" -c "select 1" tether
    [ "$status" -ne 0 ]
    [ -n "$A_POSTGRESQL_PASSWORD" ]
    [ -n "$B_POSTGRESQL_PASSWORD" ]
    [ "$A_POSTGRESQL_PASSWORD" != "$B_POSTGRESQL_PASSWORD" ]
    # A's password does not open B
    run env PGPASSWORD="$A_POSTGRESQL_PASSWORD" psql -X -w -qAt -h 127.0.0.1 \
        -p "$B_POSTGRESQL_PORT" -U "$B_POSTGRESQL_USER" -c "select 1" tether
    [ "$status" -ne 0 ]
    assert_output_has "password authentication failed"
    run env PGPASSWORD="$B_POSTGRESQL_PASSWORD" psql -X -w -qAt -h 127.0.0.1 \
        -p "$B_POSTGRESQL_PORT" -U "$B_POSTGRESQL_USER" -c "select 1" tether
    assert_status 0
    eval "$(tether stop)"
}

@test "tcp = yes PostgreSQL: a password that cannot be set fails the start, with the reason" {
    need_pg
    # a server where setting the password fails: it must not be handed out open or unusable
    cfg=$(printf '[postgresql]\ntcp = yes\nsetting.default_transaction_read_only = on\n' | config ro.ini)
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "cannot set the password TCP clients need"
    assert_output_has "read-only transaction"
    # the verifier is no more shown than the password
    [[ $output != *SCRAM-SHA-256* ]]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "tcp = yes PostgreSQL with reset = restart: the restarted server keeps the password, and needs it" {
    need_pg
    cfg=$(printf '[postgresql]\ntcp = yes\nreset = restart\n' | config rs.ini)
    eval "$(tether -q -f "$cfg" start)"
    before="$(cat "$TETHER_POSTGRESQL_PIDFILE")"
    run tether reset postgresql
    assert_status 0
    [ "$(cat "$TETHER_POSTGRESQL_PIDFILE")" != "$before" ]
    run nopw_env psql -X -w -qAt -h 127.0.0.1 -p "$TETHER_POSTGRESQL_PORT" \
        -U "$TETHER_POSTGRESQL_USER" -c "select 1" tether
    [ "$status" -ne 0 ]
    assert_output_has "no password supplied"
    run psql -X -w -qAt -c "select 5" "$TETHER_POSTGRESQL_URL"
    assert_status 0
    [ "$output" = 5 ]
    eval "$(tether stop)"
}

@test "tcp = yes redis: TCP needs the instance's password; the driver's reset and health check AUTH" {
    need_redis
    cfg=$(printf '[redis]\ntcp = yes\n' | config r.ini)
    eval "$(tether -q -f "$cfg" start)"
    pw="$TETHER_REDIS_PASSWORD"
    port="$TETHER_REDIS_PORT"
    # without the password: NOAUTH
    run nopw_env redis-cli -h 127.0.0.1 -p "$port" set k v
    [ "$output" != OK ]
    assert_output_has "NOAUTH"
    [[ $pw =~ ^[0-9a-f]{32}$ ]]
    [ "$TETHER_REDIS_URL" = "redis://default:$pw@127.0.0.1:$port/0" ]
    [ "$REDIS_URL" = "$TETHER_REDIS_URL" ]
    # with it (REDISCLI_AUTH keeps it off the command line)
    run env REDISCLI_AUTH="$pw" redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" set k v
    assert_status 0
    [ "$output" = OK ]
    # the driver's own connection AUTHs: reset empties, status is healthy
    run tether reset redis
    assert_status 0
    run env REDISCLI_AUTH="$pw" redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" exists k
    [ "$output" = 0 ]
    run tether status
    assert_status 0
    assert_mode "$TETHER_REDIS_DIR/redis.conf" "600 $(id -un)"
    assert_mode "$TETHER_REDIS_CONFIGFILE" "600 $(id -un)"
    assert_secret_private "$pw"
    eval "$(tether stop)"
}

@test "another local user (nobody) is refused over TCP without the password, let in with it" {
    need_root # to be someone else
    need_pg
    need_redis
    cfg=$(printf '[postgresql]\ntcp = yes\n[redis]\ntcp = yes\n' | config tcp.ini)
    eval "$(tether -q -f "$cfg" start)"
    pg="-h 127.0.0.1 -p $TETHER_POSTGRESQL_PORT -U $TETHER_POSTGRESQL_USER"
    # shellcheck disable=SC2086
    run as_nobody env -u PGPASSWORD PGPASSFILE=/nonexistent HOME=/nonexistent \
        psql -X -w -qAt $pg -c "copy (select 1) to program 'true'" tether
    [ "$status" -ne 0 ]
    assert_output_has "no password supplied"
    run as_nobody env -u REDISCLI_AUTH redis-cli -h 127.0.0.1 -p "$TETHER_REDIS_PORT" config get dir
    [[ $output != *"$TETHER_REDIS_DIR"* ]]
    assert_output_has "NOAUTH"
    # the password is the gate, not the uid
    # shellcheck disable=SC2086
    run as_nobody env PGPASSWORD="$TETHER_POSTGRESQL_PASSWORD" HOME=/nonexistent \
        psql -X -w -qAt $pg -c "select 4" tether
    assert_status 0
    [ "$output" = 4 ]
    run as_nobody env REDISCLI_AUTH="$TETHER_REDIS_PASSWORD" redis-cli --no-auth-warning \
        -h 127.0.0.1 -p "$TETHER_REDIS_PORT" ping
    [ "$output" = PONG ]
    # and nobody cannot read it where it is kept
    for f in "$TETHER_POSTGRESQL_CONFIGFILE" "$TETHER_REDIS_CONFIGFILE" "$TETHER_REDIS_DIR/redis.conf"; do
        run as_nobody cat "$f"
        [ "$status" -ne 0 ]
    done
    eval "$(tether stop)"
}

@test "redis and PostgreSQL on a unix socket need no password, and have none" {
    need_redis
    need_pg
    eval "$(tether -q start redis postgresql)"
    # set, and empty: a template may name ${redis.PASSWORD} either way
    [ "${TETHER_REDIS_PASSWORD-unset}" = "" ]
    [ "${TETHER_POSTGRESQL_PASSWORD-unset}" = "" ]
    [ -z "${PGPASSWORD:-}" ]
    [[ $TETHER_POSTGRESQL_URL == "postgresql://$TETHER_POSTGRESQL_USER@"* ]]
    run nopw_env redis-cli -s "$TETHER_REDIS_SOCKET" ping
    [ "$output" = PONG ]
    run nopw_env psql -X -w -qAt -c "select 1" "$TETHER_POSTGRESQL_URL"
    assert_status 0
    [ "$output" = 1 ]
    ! grep -q requirepass "$TETHER_REDIS_DIR/redis.conf"
    eval "$(tether stop)"
}

@test "setting.requirepass is refused: tether owns redis's password" {
    cfg=$(printf '[redis]\ntcp = yes\nsetting.requirepass = x\n' | config r.ini)
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "r.ini:3:"
    assert_output_has "requirepass"
}

@test "memcached on TCP: run and start warn on the user's stderr that it has no authentication" {
    command -v memcached >/dev/null || skip "memcached is not installed"
    cfg=$(printf '[memcached]\ntcp = yes\n' | config m.ini)
    run --separate-stderr tether -q -f "$cfg" run -- true
    assert_status 0
    [[ $stderr == *"warning: [memcached] memcached on TCP has no authentication"* ]]
    out="$(tether -q -f "$cfg" start 2>"$WORK/start.err")"
    grep -q "memcached on TCP has no authentication" "$WORK/start.err"
    eval "$out"
    eval "$(tether stop)"
    # on its unix socket: no warning
    run --separate-stderr tether -q run memcached -- true
    assert_status 0
    [ -z "$stderr" ]
}
