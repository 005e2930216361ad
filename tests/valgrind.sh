#!/bin/bash
# Valgrind memcheck over tether's CLI paths and its unit/library tests
# (issue 5, part 5).  `make valgrind` runs it all (about 100 s on 2
# busy cores), `make valgrind-short` (in `make check`, about 60 s) the CLI
# cases and the unit tests, without postgresql, the fuzz corpora and the
# cmocka suite of libtether.
#
#   tests/valgrind.sh [--short] [BUILD_DIR]          (default: build)
#
# Every process run under valgrind writes its own log (--log-file=...%p),
# and so does every process it forks, whether it then execs or not
# (--child-silent-after-fork=no).  With --trace-children=no what is exec'd
# (servers, probes, the commands of `run`, the tether that libtether
# starts) runs natively: its log has the preamble and nothing after it.
# tether forks its helper without exec: the helper is checked like the
# command that started it, and is the process that matters most.
#
# Valgrind writes nothing when a process execs, and nothing when it is
# SIGKILLed, so a log without the final summary is read as follows:
#   - text after the preamble (an error between fork and exec): FAIL;
#   - the parent of another log: it forked under valgrind, so it never
#     exec'd: it was killed.  FAIL, unless the case kills one on purpose
#     (ALLOW_KILLED below; the gc case's helper is known by its pid);
#   - otherwise it exec'd (the EXEC'D column).
# A helper SIGKILLed before it forked anything would still pass for
# exec'd: hence each CLI case also says how many of its processes must
# end with a summary (the command and its helper), and a killed helper
# makes that count fall short.
#
# A checked process passes with "ERROR SUMMARY: 0 errors" (definite leaks
# count as errors: --errors-for-leak-kinds=definite) and no crash; a case
# passes when all its processes do and the command exits as expected.
#
# Note: valgrind 3.19 does not know pidfd_open (syscall 434, "WARNING:
# unhandled syscall" in the logs, harmless); stop and gc then fall back on
# kill(2) with start-time checks (proc_kill_wait() in lib/proc.c).  The
# helper's own waits (wait_child() in lib/helper.c) have no such fallback:
# under valgrind it SIGKILLs a service right after its stop signal.
set -u
SHORT=false
[ "${1:-}" = --short ] && { SHORT=true; shift; }
BUILD="$(cd "${1:-build}" && pwd)" || exit 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TETHER="$BUILD/tether"
TSERVER="$BUILD/tests/servers/tserver"
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 2; }
[ -x "$TETHER" ] || { echo "no $TETHER: build first" >&2; exit 2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/tether-valgrind.XXXXXX")"
LOGS="$TMP/logs"
mkdir -p "$LOGS" "$TMP/work" "$TMP/state"
chmod 0711 "$TMP" "$TMP/work" # a root-run postgres reaches its config
export TETHER_DIR="$TMP/state"
unset XDG_RUNTIME_DIR TETHER_CONFIG
for v in $(compgen -e); do
    case $v in *_CONTROL_PID | *_CONFIGFILE) unset "$v" ;; esac
done
KILLED=" "   # pids SIGKILLed on purpose
FAILED=0     # failures outside any case
START=$SECONDS
declare -A WANT_PROCS=() ALLOW_KILLED=() SECS=() BAD=()

# our processes, whatever they run: they have our TETHER_DIR
our_pids() {
    grep -lzs "^TETHER_DIR=$TMP/state\$" /proc/[0-9]*/environ 2>/dev/null |
        sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p' | grep -vx "$$"
}

cleanup() {
    local p
    for p in $(our_pids); do
        kill -KILL "$p" 2>/dev/null
    done
    "$TETHER" gc >/dev/null 2>&1
    rm -rf -- "$TMP"
}
trap cleanup EXIT

VG=(valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
    --trace-children=no --child-silent-after-fork=no --track-fds=no
    "--log-file=$LOGS/%q{VG_CASE}.%p.log")

# fail CASE MESSAGE, or fail - MESSAGE for the run as a whole
fail() {
    local case="$1"
    shift
    if [ "$case" = - ]; then
        echo "FAILED $*" >&2
        FAILED=$((FAILED + 1))
    else
        echo "FAILED $case: $*" >&2
        BAD[$case]=1
    fi
}

# vg CASE EXPECTED_STATUS PROCS CMD...: run CMD under valgrind as case
# CASE; PROCS processes of it must be checked (end with a summary), or "-"
vg() {
    local case="$1" want="$2" t0=$SECONDS st
    [ "$3" = - ] || WANT_PROCS[$case]=$3
    shift 3
    VG_CASE="$case" "${VG[@]}" "$@"
    st=$?
    SECS[$case]=$((${SECS[$case]:-0} + SECONDS - t0))
    if [ "$want" != any ] && [ "$st" != "$want" ]; then
        fail "$case" "exit status $st, expected $want: $*"
    fi
    return 0
}

# vg_out VAR CASE PROCS CMD...: the same for a command whose output is
# eval'd (start, stop), expected to succeed
vg_out() {
    local var="$1" case="$2" t0=$SECONDS o
    [ "$3" = - ] || WANT_PROCS[$case]=$3
    shift 3
    o="$(VG_CASE="$case" "${VG[@]}" "$@")" || fail "$case" "exit status $?: $*"
    printf -v "$var" '%s' "$o"
    SECS[$case]=$((${SECS[$case]:-0} + SECONDS - t0))
}

# wait until pid $1 is gone (it may be a helper writing its log)
wait_gone() {
    local i
    for ((i = 0; i < 3000; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.02
    done
    echo "pid $1 still running" >&2
    return 1
}

cfg="$TMP/work/c.ini"
cat >"$cfg" <<EOF
[web]
command = $TSERVER --tcp \${port}
port = auto
reset = true
export.URL = http://127.0.0.1:\${port}/
[worker]
command = sleep 1000
after = web
env.WEB = \${web.URL}
EOF
bad="$TMP/work/bad.ini"

echo "== CLI"
vg help 0 1 "$TETHER" --help >/dev/null
vg version any 1 "$TETHER" --version >/dev/null 2>&1

# run: the command and its helper
vg run-command 0 2 "$TETHER" -f "$cfg" run -- true
vg run-command-fail 7 2 "$TETHER" -f "$cfg" run -- sh -c 'exit 7'
# protocol checks (proto.c) in the helper: ready, status's health, reset
pcfg="$TMP/work/p.ini"
cat >"$pcfg" <<EOF
[greeter]
command = $TSERVER --unix \${socket}
socket = auto
ready = expect:pong
health = expect:pong
reset = expect:pong
EOF
vg run-proto 0 2 "$TETHER" -f "$pcfg" run -- sh -c '"$1" status && "$1" reset' sh "$TETHER"
if command -v redis-server >/dev/null; then
    vg run-redis 0 2 "$TETHER" run redis -- true
fi
if command -v memcached >/dev/null; then
    vg run-memcached 0 2 "$TETHER" run memcached -- true
fi
if ! $SHORT && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    vg run-postgresql 0 2 "$TETHER" run postgresql -- true
fi

# start / status / reset / list / stop, the helper in the background (its
# log is the start case's)
vg_out out start 2 "$TETHER" -q -f "$cfg" start
eval "$out"
helper="${TETHER_WEB_CONTROL_PID:-}"
[ -n "$helper" ] || fail start "no TETHER_WEB_CONTROL_PID in: $out"
vg status 0 1 "$TETHER" status
vg reset 0 1 "$TETHER" reset
vg list 0 1 "$TETHER" list >/dev/null
vg_out out stop 1 "$TETHER" stop
eval "$out"
[ -z "$helper" ] || wait_gone "$helper"
vg status-stopped any 1 "$TETHER" status 2>/dev/null

# gc: a helper SIGKILLed (its log has no summary), then gc reaps it
vg_out out gc-victim 1 "$TETHER" -q -f "$cfg" start
eval "$out"
victim="${TETHER_WEB_CONTROL_PID:-}"
if [ -n "$victim" ]; then
    kill -KILL "$victim"
    KILLED+="$victim "
    wait_gone "$victim"
else
    fail gc-victim "no TETHER_WEB_CONTROL_PID in: $out"
fi
vg gc 0 1 "$TETHER" gc 2>/dev/null
vg gc-empty 0 1 "$TETHER" gc 2>/dev/null
vg list-empty 0 1 "$TETHER" list >/dev/null
unset TETHER_WEB_CONTROL_PID TETHER_WORKER_CONTROL_PID

# configs that are refused
vg bad-missing 125 1 "$TETHER" -f "$TMP/work/nope.ini" run -- true 2>/dev/null
printf '[a]\ncommand = x\n[b\n' >"$bad"
vg bad-syntax 125 1 "$TETHER" -f "$bad" run -- true 2>/dev/null
printf '[a]\ncommand = x\nafter = b\n[b]\ncommand = y\nafter = a\n' >"$bad"
vg bad-cycle 125 1 "$TETHER" -f "$bad" run -- true 2>/dev/null
printf '[a]\ncommand = x ${nope}\n' >"$bad"
vg bad-variable 2 1 "$TETHER" -f "$bad" start 2>/dev/null
printf '[a]\ncommand = x\0y\n' >"$bad"
vg bad-nul 125 1 "$TETHER" -f "$bad" run -- true 2>/dev/null
printf '[a]\ncommand = %s --exit 3\nready = tcp\nport = auto\n' "$TSERVER" >"$bad"
vg bad-start 125 2 "$TETHER" -f "$bad" run -- true 2>/dev/null
vg bad-usage 2 1 "$TETHER" frobnicate 2>/dev/null

echo "== unit and library tests"
cd "$TMP/work" || exit 2
for t in "$BUILD"/tests/unit/test_* "$BUILD"/tests/fixture/test_json; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    vg "unit-$(basename "$t")" 0 - "$t" >/dev/null 2>&1
done
if ! $SHORT; then
    for t in config eval_sh; do
        [ -x "$BUILD/tests/fuzz/replay_$t" ] || continue
        vg "fuzz-replay-$t" 0 - "$BUILD/tests/fuzz/replay_$t" "$ROOT/tests/fuzz/corpus/$t" >/dev/null 2>&1
    done
    if [ -x "$BUILD/tests/fixture/test_fixture" ]; then
        # test_sigkill_owner SIGKILLs a test process that owns services
        ALLOW_KILLED[lib-test_fixture]=1
        TETHER_BIN="$TETHER" vg lib-test_fixture 0 - "$BUILD/tests/fixture/test_fixture" >/dev/null 2>&1
    fi
fi
cd "$ROOT" || exit 2

# everything that still runs under valgrind writes its log at exit
for ((i = 0; i < 3000; i++)); do
    busy=
    for p in $(our_pids); do
        case "$(readlink "/proc/$p/exe" 2>/dev/null)" in */valgrind/*) busy=$p ;; esac
    done
    [ -z "$busy" ] && break
    sleep 0.02
done
[ -z "$busy" ] || fail - "still running under valgrind after 60 s: pid $busy"

# ---- the verdict, from the logs ----
# parent pid of each log's process
declare -A PARENT_OF=()
for f in "$LOGS"/*.log; do
    [ -e "$f" ] || continue
    pp=$(sed -n 's/^==[0-9]*== Parent PID: \([0-9]*\)$/\1/p' "$f" | head -1)
    [ -n "$pp" ] && PARENT_OF[$pp]=1
done
echo
printf '%-26s %6s %7s %7s %7s %12s %5s\n' CASE CHECKED "EXEC'D" KILLED ERRORS "DEF. LOST" SECS
total_procs=0 total_exec=0 total_err=0 total_leak=0 ncases=0
for c in $(ls "$LOGS" | sed 's/\.[0-9]*\.log$//' | sort -u); do
    ncases=$((ncases + 1))
    procs=0 execd=0 killed=0 errs=0 leak=0
    for f in "$LOGS/$c".*.log; do
        pid="${f%.log}"
        pid="${pid##*.}"
        if ! grep -q "ERROR SUMMARY:" "$f"; then
            # the preamble ends with "Parent PID: N" and an empty line;
            # "--PID-- WARNING: unhandled syscall" (pidfd_open, which
            # valgrind 3.19 lacks: our code falls back) is valgrind's own
            body=$(sed '1,/^==[0-9]*== Parent PID: /d' "$f" | grep -v -e '^==[0-9]*== *$' -e '^--[0-9]*-- ')
            if [ -n "$body" ]; then
                fail "$c" "pid $pid wrote this without a summary (an error before exec, or killed):"
                cat "$f" >&2
            elif case "$KILLED" in *" $pid "*) true ;; *) false ;; esac; then
                killed=$((killed + 1))
            elif [ -n "${PARENT_OF[$pid]:-}" ]; then
                killed=$((killed + 1))
                [ "$killed" -le "${ALLOW_KILLED[$c]:-0}" ] ||
                    fail "$c" "pid $pid forked under valgrind and left no summary: killed ($f)"
            else
                execd=$((execd + 1))
            fi
            continue
        fi
        procs=$((procs + 1))
        e=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tr -d , | tail -1)
        l=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | tail -1)
        errs=$((errs + ${e:-0}))
        leak=$((leak + ${l:-0}))
        if [ "${e:-0}" != 0 ] || [ "${l:-0}" != 0 ]; then
            fail "$c" "pid $pid: errors ${e:-0}, definitely lost ${l:-0} bytes:"
            cat "$f" >&2
        elif grep -qE 'Process terminating with default action of signal [0-9]+ \(SIG(SEGV|BUS|ILL|FPE|ABRT)\)' "$f"; then
            fail "$c" "pid $pid crashed:"
            cat "$f" >&2
        fi
    done
    if [ -n "${WANT_PROCS[$c]:-}" ] && [ "$procs" != "${WANT_PROCS[$c]}" ]; then
        fail "$c" "$procs process(es) checked, expected ${WANT_PROCS[$c]} (the command and its helper)"
    fi
    printf '%-26s %6d %7d %7d %7d %12d %5s\n' "$c" "$procs" "$execd" "$killed" "$errs" "$leak" "${SECS[$c]:-}"
    total_procs=$((total_procs + procs))
    total_exec=$((total_exec + execd))
    total_err=$((total_err + errs))
    total_leak=$((total_leak + leak))
done
printf '%-26s %6d %7d %7s %7d %12d %5d\n' TOTAL "$total_procs" "$total_exec" "" "$total_err" "$total_leak" $((SECONDS - START))
left="$(ls -A "$TETHER_DIR")"
[ -z "$left" ] || fail - "left in TETHER_DIR: $left"
[ "${#BAD[@]}" = 0 ] || echo "valgrind: failing cases: ${!BAD[*]}" >&2
# the line tests/check.sh counts
echo "valgrind: $((ncases - ${#BAD[@]})) passed, $((${#BAD[@]} + FAILED)) failed ($((SECONDS - START)) s)"
[ "${#BAD[@]}" = 0 ] && [ "$FAILED" = 0 ]
