# Common set-up and tear-down for tether's CLI tests.  Load it with
#     load helpers
# and, in a .bats file that defines its own setup/teardown, call
# tether_setup / tether_teardown from them.
#
# Every test gets its own state directory (TETHER_DIR) and work directory
# (WORK, for configs and files), and its teardown FAILS the test when
# anything was left behind:
#   - an entry in TETHER_DIR (an instance directory);
#   - a process carrying TETHER_COOKIE= (every service tether starts does)
#     or a tether helper, started under this test's TETHER_DIR;
#   - a port reservation (abstract unix socket @tether-port-UID-N) held by such a
#     process, or one that appeared during the test and whose holder cannot
#     be seen.
# Checks are scoped to this test's TETHER_DIR (every service inherits it) so
# that other tether users on the machine cannot make a test fail.  After a
# failure, teardown kills what was left so later tests start clean.

# `run ! CMD`: a bare `! CMD` in mid-test never fails it (set -e spares
# negations, as it spares all but the last command of an && list)
bats_require_minimum_version 1.5.0

ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
TETHER_BUILD="${TETHER_BUILD:-$ROOT/build}"
TETHER="$TETHER_BUILD/tether"
TSERVER="$TETHER_BUILD/tests/servers/tserver"

# The drivers tether ships, as its lists name them: the C built-ins in
# registry order, then the compiled-in recipes by name.  The one place a
# test's expected list changes when a driver is added.
SHIPPED_C="command postgresql redis mariadb slapd container"
SHIPPED_RECIPES="etcd influxdb memcached mosquitto nats nginx pgbouncer rabbitmq zookeeper"
# those that run without a config: all but command and container
SHIPPED_RUNNABLE="postgresql redis mariadb slapd $SHIPPED_RECIPES"
# joined SEP WORD...: the words joined by SEP
joined() {
    local sep=$1 out=${2:-}
    shift 2 || return 0
    local w
    for w; do out+="$sep$w"; done
    printf '%s' "$out"
}
export TETHER TSERVER TETHER_BUILD

# python3 on PATH may be a slow pyenv shim
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
export PY

tether() { "$TETHER" "$@"; }

tether_setup() {
    _TETHER_SETUP_DONE=""
    unset TETHER_DIR WORK
    [ -x "$TETHER" ] || { echo "no $TETHER: build first (ninja -C build)" >&2; return 1; }
    [ -x "$TSERVER" ] || { echo "no $TSERVER: build first (ninja -C build)" >&2; return 1; }
    unset XDG_RUNTIME_DIR TETHER_CONFIG TETHER_DRIVERS
    # no instance variables from the caller's shell
    local v
    for v in $(compgen -e); do
        case $v in *_CONTROL_PID | *_CONFIGFILE) unset "$v" ;; esac
    done
    TETHER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tether-test.XXXXXX")"
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/tether-work.XXXXXX")"
    export TETHER_DIR WORK
    # no recipes of the user's (~/.local/share/tether/drivers)
    export XDG_DATA_HOME="$WORK/share"
    _PORTS_BEFORE=" $(_port_inodes | tr '\n' ' ')"
    _TETHER_SETUP_DONE=1
}

tether_teardown() {
    local problems
    # without a complete set-up there is nothing of ours to check (and an
    # empty TETHER_DIR would match everybody's processes)
    [ -n "${_TETHER_SETUP_DONE:-}" ] && [ -n "${TETHER_DIR:-}" ] || return 0
    # background jobs the test left running (its own sleeps and commands,
    # not tether's business) if it failed before it could stop them
    local p
    for p in $(jobs -p); do kill -KILL "$p" 2>/dev/null || true; done
    problems="$(leftovers)"
    if [ -n "$problems" ]; then
        kill_leftovers
    fi
    rm -rf -- "$TETHER_DIR" "$WORK"
    if [ -n "$problems" ]; then
        printf 'LEFT BEHIND:\n%s\n' "$problems" >&2
        return 1
    fi
}

setup() { tether_setup; }
teardown() { tether_teardown; }

# ---- leftover detection ----

# pids of processes started under our TETHER_DIR, or a directory inside it
# (they inherit it), which includes this test's own shells
_our_pids() {
    local re="" c i
    [ -n "${TETHER_DIR:-}" ] || return 0
    for ((i = 0; i < ${#TETHER_DIR}; i++)); do
        c="${TETHER_DIR:i:1}"
        case $c in [][\\.*^\$+?\(\){}\|]) re+="\\$c" ;; *) re+="$c" ;; esac
    done
    grep -lzsE -e "^TETHER_DIR=$re(/.*)?\$" /proc/[0-9]*/environ 2>/dev/null |
        sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}

# pids of processes that carry a tether cookie, started under our TETHER_DIR
# (from the pids given, else from _our_pids)
cookie_pids() {
    local files=() p
    for p in ${1-$(_our_pids)}; do files+=("/proc/$p/environ"); done
    [ ${#files[@]} -gt 0 ] || return 0
    grep -lzs '^TETHER_COOKIE=' "${files[@]}" 2>/dev/null |
        sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}

# pids of tether helpers (and tether commands) running under our TETHER_DIR
# (from the pids given, else from _our_pids)
helper_pids() {
    local p comm
    for p in ${1-$(_our_pids)}; do
        read -r comm 2>/dev/null <"/proc/$p/comm" || continue
        case $comm in tether-helper | tether) echo "$p" ;; esac
    done
}

_port_inodes() {
    local line f
    while read -r line; do
        # shellcheck disable=SC2086
        set -- $line
        case $8 in @tether-port-*) echo "$7" ;; esac
    done </proc/net/unix
}

# Port reservations made during the test that are still held by one of our
# processes, or (as root) whose holder cannot be seen: "NAME held by pid N...".
# Those that existed before the test are someone else's.
leaked_ports() {
    local new ino socks owners p ours name mine
    new=""
    for ino in $(_port_inodes); do
        case " $_PORTS_BEFORE " in *" $ino "*) ;; *) new+=" $ino" ;; esac
    done
    [ -n "$new" ] || return 0
    mine="$(_our_pids | tr '\n' ' ')"
    socks="$(find /proc/[0-9]*/fd -type l -lname 'socket:*' -printf '%p %l\n' 2>/dev/null)"
    for ino in $new; do
        name="$(awk -v i="$ino" '$7 == i { print $8 }' /proc/net/unix)"
        [ -n "$name" ] || continue # gone meanwhile
        owners="$(printf '%s\n' "$socks" | awk -v s="socket:[$ino]" '$2 == s { split($1, a, "/"); print a[3] }' | sort -u)"
        ours=""
        for p in $owners; do
            case " $mine " in *" $p "*) ours="$ours $p" ;; esac
        done
        if [ -n "$ours" ]; then
            echo "$name held by pid$ours"
        elif [ -z "$owners" ] && [ "$EUID" -eq 0 ] &&
            awk -v i="$ino" '$7 == i { f = 1 } END { exit !f }' /proc/net/unix; then
            # root sees every process's fds; another user cannot see root's,
            # so then an unattributed reservation is someone else's
            echo "$name (holder not visible)"
        fi
    done
}

# Print what was left behind, one line each; nothing when clean.
leftovers() {
    local p ours entries
    entries="$(shopt -s nullglob dotglob; cd "$TETHER_DIR" 2>/dev/null && echo *)"
    [ -z "$entries" ] || echo "in TETHER_DIR: $entries"
    ours="$(_our_pids)"
    for p in $(cookie_pids "$ours"); do
        echo "process $p with TETHER_COOKIE: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    done
    for p in $(helper_pids "$ours"); do
        echo "tether process $p ($(cat "/proc/$p/comm" 2>/dev/null)) still running:" \
            "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    done
    leaked_ports
}

kill_leftovers() {
    local p round
    for round in 1 2 3; do
        for p in $(helper_pids) $(cookie_pids); do kill -KILL "$p" 2>/dev/null; done
        for p in $(helper_pids) $(cookie_pids); do wait_gone "$p" 5; done
    done
    # what the dead instances recorded (a SIGKILLed postmaster's segment, a
    # server = URL database) goes with gc, before their directories do
    "$TETHER" gc >/dev/null 2>&1 || true
}

# ---- waiting for events (bounded polling, never a fixed sleep) ----

# true when pid $1 does not exist or is a zombie
is_gone() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    stat="${stat##*) }"
    [ "${stat%% *}" = Z ] || [ "${stat%% *}" = X ]
}

# now_ms: monotonic enough for bounding waits (bash 5's EPOCHREALTIME)
now_ms() {
    local t="${EPOCHREALTIME/[.,]/}"
    echo $((t / 1000))
}

# wait_gone PID [SECONDS]: wait until PID has exited (default 10 s)
wait_gone() {
    local pid="$1" limit="${2:-10}" deadline
    deadline=$(($(now_ms) + limit * 1000))
    while ! is_gone "$pid"; do
        [ "$(now_ms)" -le "$deadline" ] || { echo "pid $pid still alive after ${limit}s" >&2; return 1; }
        sleep 0.01
    done
}

# wait_for SECONDS CMD...: retry CMD until it succeeds
wait_for() {
    local limit="$1" deadline
    shift
    deadline=$(($(now_ms) + limit * 1000))
    until "$@"; do
        [ "$(now_ms)" -le "$deadline" ] || { echo "timed out after ${limit}s waiting for: $*" >&2; return 1; }
        sleep 0.01
    done
}

# wait_file PATH [SECONDS]: wait for a non-empty file
wait_file() { wait_for "${2:-10}" test -s "$1"; }

# ---- small utilities ----

# config NAME: write stdin to $WORK/NAME, print the path
config() {
    cat >"$WORK/$1"
    echo "$WORK/$1"
}

# connect to 127.0.0.1:PORT and print what the server says
ping_tcp() {
    "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
sys.stdout.write(s.recv(100).decode())
EOF
}

ping_unix() {
    "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
sys.stdout.write(s.recv(100).decode())
EOF
}

# field 22 of /proc/PID/stat: the start time, in clock ticks since boot
starttime() {
    local stat
    read -r stat <"/proc/$1/stat" || return 1
    stat="${stat##*) }"
    # after "comm) ", field 3 is the first: 22 - 2 = 20th word
    set -- $stat
    echo "${20}"
}

# assert_status N: after bats' run, fail unless it exited N (and show the output)
assert_status() {
    local want="$1"
    [ "$status" -eq "$want" ] || {
        echo "expected exit status $want, got $status; output:" >&2
        printf '%s\n' "$output" >&2
        return 1
    }
}

assert_output_has() {
    case $output in
    *"$1"*) return 0 ;;
    esac
    printf 'output does not contain "%s":\n%s\n' "$1" "$output" >&2
    return 1
}
