#!/usr/bin/env bats
# A helper that never blocks (issue 11, item 1): during a reset that takes
# 30 s, `tether status` from another shell answers within 100 ms and says
# the service is resetting; SIGTERM to `tether run`, or SIGKILL of its
# owner, removes every process and the instance directory within 1 s.
#
# The 30 s reset: a redis whose writes a test paused (CLIENT PAUSE 30000
# WRITE: PING, the health check, still answers; FLUSHALL waits), with
# timeout = 60; and a command service that ignores SIGTERM, reset by a
# restart with stop_timeout = 30.  Times are taken with the monotonic clock
# (Python's time.monotonic) and printed.

load helpers

need_redis() {
    command -v redis-server >/dev/null || skip "redis-server is not installed (apt-get install redis-server)"
    command -v redis-cli >/dev/null || skip "redis-cli is not installed (apt-get install redis-tools)"
}

redis_config() {
    config redis.ini <<EOF
[redis]
driver = redis
timeout = 60
EOF
}

restart_config() {
    config restart.ini <<EOF
[web]
command = $TSERVER --tcp \${port} --ignore-term
port = auto
reset = restart
stop_timeout = 30
timeout = 60
EOF
}

redis_sock() {
    local f
    for f in "$TETHER_DIR"/*/redis/redis.sock; do [ -S "$f" ] && echo "$f"; done
}

# the redis's FLUSHALL is under way (and waits for the pause to end)
flushing() {
    local sock
    sock="$(redis_sock)"
    [ -n "$sock" ] && redis-cli -s "$sock" client list | grep -q 'cmd=flushall'
}

# the state file says LABEL is stopping (a restart's stop has begun)
stopping() {
    grep -qE "^service $1 [0-9]+ [0-9]+ stopping" "$TETHER_DIR"/*/state 2>/dev/null
}

# timed_status: run `tether status`, print "MS STATUS" then its output
timed_status() {
    "$PY" - "$TETHER" <<'EOF'
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.run([sys.argv[1], "status"], capture_output=True, text=True, timeout=30)
ms = (time.monotonic() - t0) * 1000
print("%.1f %d" % (ms, p.returncode))
sys.stdout.write(p.stdout + p.stderr)
EOF
}

# gone_after SIGNAL PID: send it, then wait (up to 30 s) until every
# process of this test's instance (helpers, tether commands, anything with
# its cookie, as found now) and every instance directory are gone; print
# the milliseconds it took
gone_after() {
    local pids
    pids="$(_our_pids)"
    pids="$( (cookie_pids "$pids"; helper_pids "$pids") | sort -u | tr '\n' ' ')"
    [ -n "$pids" ] || { echo "no process to watch" >&2; return 1; }
    "$PY" - "$1" "$2" "$TETHER_DIR" $pids <<'EOF'
import os, signal, sys, time
sig, target, d = getattr(signal, "SIG" + sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pids = [int(p) for p in sys.argv[4:]]
def gone(p):
    try:
        with open("/proc/%d/stat" % p) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True
t0 = time.monotonic()
os.kill(target, sig)
while time.monotonic() - t0 < 30:
    if all(gone(p) for p in pids) and not os.listdir(d):
        print("%.0f" % ((time.monotonic() - t0) * 1000))
        sys.exit(0)
    time.sleep(0.002)
print("left after 30 s: pids %s, dir %s" % ([p for p in pids if not gone(p)], os.listdir(d)),
      file=sys.stderr)
sys.exit(1)
EOF
}

# assert_ms LIMIT WHAT MS
assert_ms() {
    echo "# $2: $3 ms (target: < $1 ms)" >&3
    [ "${3%.*}" -lt "$1" ] || { echo "$2 took $3 ms, more than $1 ms" >&2; return 1; }
}

@test "status answers within 100 ms during a 30 s redis reset, and says resetting" {
    need_redis
    cfg="$(redis_config)"
    eval "$(tether -f "$cfg" start)"
    redis-cli -s "$TETHER_REDIS_SOCKET" client pause 30000 write >/dev/null
    "$TETHER" reset redis >"$WORK/reset.out" 2>&1 &
    reset=$!
    wait_for 10 flushing
    out="$(timed_status)"
    printf '%s\n' "$out"
    read -r ms rc <<<"$out"
    assert_ms 100 "status during the reset" "$ms"
    [[ $out == *"resetting"* ]]
    # the reset still works once the server writes again
    redis-cli -s "$TETHER_REDIS_SOCKET" client unpause >/dev/null
    wait "$reset"
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "status answers within 100 ms during a 30 s restart reset (stop_timeout = 30), and says resetting" {
    cfg="$(restart_config)"
    eval "$(tether -f "$cfg" start)"
    "$TETHER" reset web >"$WORK/reset.out" 2>&1 &
    reset=$!
    wait_for 10 stopping web
    out="$(timed_status)"
    printf '%s\n' "$out"
    read -r ms rc <<<"$out"
    assert_ms 100 "status during the restart" "$ms"
    [[ $out == *"resetting"* ]]
    ms="$(gone_after TERM "$TETHER_WEB_CONTROL_PID")"
    assert_ms 1000 "SIGTERM to the helper during the restart: all gone" "$ms"
    wait "$reset" || true
    eval "$(tether stop 2>/dev/null)" || true
}

# during_redis_reset SIGNAL WHAT: `tether run` whose command pauses redis's
# writes for 30 s and resets it (FLUSHALL waits), then SIGNAL to the run
# (TERM), or the death of the run as the helper's owner (KILL): everything
# goes within 1 s.
during_redis_reset() {
    need_redis
    cfg="$(redis_config)"
    "$TETHER" -f "$cfg" run -- sh -c '
        redis-cli -s "$TETHER_REDIS_SOCKET" client pause 30000 write >/dev/null &&
        exec "$TETHER" reset redis' >"$WORK/run.out" 2>&1 &
    runpid=$!
    wait_for 10 flushing
    ms="$(gone_after "$1" "$runpid")"
    assert_ms 1000 "$2 during the reset: all gone" "$ms"
    wait "$runpid" || true
}

# during_restart SIGNAL WHAT: the same during a 30 s `reset = restart` of
# a server that ignores SIGTERM.
during_restart() {
    cfg="$(restart_config)"
    "$TETHER" -f "$cfg" run -- "$TETHER" reset web >"$WORK/run.out" 2>&1 &
    runpid=$!
    wait_for 10 stopping web
    ms="$(gone_after "$1" "$runpid")"
    assert_ms 1000 "$2 during the restart: all gone" "$ms"
    wait "$runpid" || true
}

@test "SIGTERM to tether run during a 30 s redis reset removes everything within 1 s" {
    during_redis_reset TERM "SIGTERM to run"
}

@test "SIGKILL of the owner (tether run) during a 30 s redis reset removes everything within 1 s" {
    during_redis_reset KILL "SIGKILL of the owner"
}

@test "SIGTERM to tether run during a 30 s restart reset removes everything within 1 s" {
    during_restart TERM "SIGTERM to run"
}

@test "SIGKILL of the owner (tether run) during a 30 s restart reset removes everything within 1 s" {
    during_restart KILL "SIGKILL of the owner"
}

@test "a redis killed during its reset: the reset's client hears it crashed, at once" {
    need_redis
    cfg="$(redis_config)"
    eval "$(tether -f "$cfg" start)"
    redis-cli -s "$TETHER_REDIS_SOCKET" client pause 30000 write >/dev/null
    "$TETHER" reset redis >"$WORK/reset.out" 2>&1 &
    reset=$!
    wait_for 10 flushing
    kill -KILL "$(cat "$TETHER_REDIS_PIDFILE")"
    # the reset's op is dropped with the server, and its client answered
    wait_gone "$reset" 5
    run cat "$WORK/reset.out"
    assert_output_has "crashed"
    run ! wait "$reset"
    eval "$(tether stop 2>/dev/null)" || true
}
