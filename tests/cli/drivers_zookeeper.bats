#!/usr/bin/env bats
# The zookeeper recipe: no config needed, zkCli (the real client) uses it,
# reset empties it, status checks it, nothing is left after a SIGKILL of
# the helper or of the owner, the JVM writes nothing to /tmp, and the
# failures a user can meet name their cause (and the package).

load helpers

ZKCLI=/usr/share/zookeeper/bin/zkCli.sh

setup() {
    tether_setup
    [ -x "$ZKCLI" ] || skip "zookeeper is not installed (apt-get install zookeeper)"
    command -v java >/dev/null || skip "java is not installed (apt-get install zookeeper)"
}

teardown() { tether_teardown; }

# zk URL: zkCli.sh runs the commands on stdin against URL (one JVM start,
# about 0.7 s); its own JVM writes no /tmp/hsperfdata either
zk() {
    CLIENT_JVMFLAGS=-XX:-UsePerfData "$ZKCLI" -server "$1" 2>/dev/null |
        grep -v -e '^WATCHER::' -e '^WatchedEvent' -e '^Connecting to' -e '^Welcome to' \
            -e '^JLine support' -e '^$' || true
}

@test "zookeeper with no config: zkCli writes and reads znodes; variables; zoo.cfg; one port" {
    run tether run zookeeper -- sh -c '
        env | sort > "$WORK/env"
        pid=$(cat "$TETHER_ZOOKEEPER_PIDFILE")
        tr "\0" " " < /proc/$pid/cmdline > "$WORK/cmdline"
        ss -ltnpH > "$WORK/listen"
        echo $pid > "$WORK/pid"
        printf "create /a x\ncreate /a/b y\nls /\nget /a/b\nquit\n" |
            CLIENT_JVMFLAGS=-XX:-UsePerfData '"$ZKCLI"' -server "$TETHER_ZOOKEEPER_URL" 2>/dev/null'
    assert_status 0
    assert_output_has "tether: warning: [zookeeper] ZooKeeper has no unix socket"
    assert_output_has "[a, zookeeper]"
    assert_output_has $'\ny\n'
    port="$(sed -n 's/^TETHER_ZOOKEEPER_PORT=//p' "$WORK/env")"
    [ -n "$port" ]
    grep -qx "TETHER_ZOOKEEPER_URL=127.0.0.1:$port" "$WORK/env"
    grep -qx "TETHER_ZOOKEEPER_HOST=127.0.0.1" "$WORK/env"
    # no client reads a native variable for ZooKeeper's address
    run ! grep -E '^(ZOOKEEPER|ZK)_' "$WORK/env"
    # run directly, as Debian's zkServer.sh does, tuned, tmpdir inside
    dir="$(sed -n 's/^TETHER_ZOOKEEPER_DIR=//p' "$WORK/env")"
    [[ "$(cat "$WORK/cmdline")" == */java\ *-XX:-UsePerfData* ]]
    [[ "$(cat "$WORK/cmdline")" == *" -Djava.io.tmpdir=$dir "* ]]
    [[ "$(cat "$WORK/cmdline")" == *" org.apache.zookeeper.server.ZooKeeperServerMain $dir/zoo.cfg "* ]]
    # only the reserved port: no Jetty admin server on 8080
    pid="$(cat "$WORK/pid")"
    [ "$(grep -c "pid=$pid," "$WORK/listen")" = 1 ]
    grep "pid=$pid," "$WORK/listen" | grep -q "127.0.0.1\]*:$port "
}

# zk_session PORT: open a ZooKeeper session by the wire protocol's
# ConnectRequest, at once (no retry, as zkCli and kazoo would); print its id
zk_session() {
    "$PY" - "$1" <<'EOF'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
req = struct.pack(">iqiqi", 0, 0, 30000, 0, 16) + bytes(16) + b"\0"
s.sendall(struct.pack(">i", len(req)) + req)
resp = s.recv(64)
assert len(resp) >= 20, "the server refused the session: %r" % resp
print(hex(struct.unpack(">iiiq", resp[:20])[3]))
EOF
}

@test "zookeeper: ready means serving; the JVM writes nothing to /tmp (no hsperfdata)" {
    touch "$WORK/marker"
    eval "$(tether -q start zookeeper)"
    # ready means serving: a session is accepted at once (after ruok's
    # imok it could still be refused)
    run zk_session "$TETHER_ZOOKEEPER_PORT"
    assert_status 0
    [[ $output == 0x* ]]
    pid="$(cat "$TETHER_ZOOKEEPER_PIDFILE")"
    [ "$(cat /proc/$pid/comm)" = java ]
    # the file a JVM without -XX:-UsePerfData keeps while it runs
    run ! ls -d /tmp/hsperfdata_*/"$pid" "${TMPDIR:-/tmp}"/hsperfdata_*/"$pid"
    echo "create /k v" | zk "$TETHER_ZOOKEEPER_URL"
    [ -n "$(ls "$TETHER_ZOOKEEPER_DIR/data/version-2")" ]
    eval "$(tether stop)"
    # (other users' directories there may be unreadable: their errors aside)
    found="$(find /tmp "${TMPDIR:-/tmp}" -maxdepth 2 -newer "$WORK/marker" -name "*$pid*" 2>/dev/null || true)"
    [ -z "$found" ]
}

@test "zookeeper reset: every znode but /zookeeper is gone; status is healthy" {
    eval "$(tether -q start zookeeper)"
    pid="$(cat "$TETHER_ZOOKEEPER_PIDFILE")"
    run zk "$TETHER_ZOOKEEPER_URL" <<<$'create /a x\ncreate /a/b y\ncreate /c z\nls /'
    assert_output_has "[a, c, zookeeper]"
    run tether reset zookeeper
    assert_status 0
    run tether status
    assert_status 0
    assert_output_has "[zookeeper] ready"
    # a restart on an emptied data dir: same port and variables, new pid
    [ "$(cat "$TETHER_ZOOKEEPER_PIDFILE")" != "$pid" ]
    wait_gone "$pid"
    run zk "$TETHER_ZOOKEEPER_URL" <<<$'ls /\nls /zookeeper'
    [ "${lines[0]}" = "[zookeeper]" ]
    eval "$(tether stop)"
}

@test "zookeeper status: a stopped JVM is unhealthy, a killed one has died" {
    eval "$(tether -q start zookeeper)"
    pid="$(cat "$TETHER_ZOOKEEPER_PIDFILE")"
    kill -STOP "$pid"
    run tether status
    kill -CONT "$pid"
    assert_status 1
    assert_output_has "[zookeeper] is unhealthy: health = raw:srvr \"expect:Zookeeper version:\": no answer within"
    run tether status
    assert_status 0
    kill -KILL "$pid"
    wait_gone "$pid"
    run tether status
    [ "$status" -ne 0 ]
    assert_output_has "[zookeeper]"
    eval "$(tether stop 2>/dev/null)" || true
}

@test "SIGKILL of the helper, then of an owner: no java is left" {
    eval "$(tether -q start zookeeper)"
    pid="$(cat "$TETHER_ZOOKEEPER_PIDFILE")"
    kill -KILL "$TETHER_ZOOKEEPER_CONTROL_PID"
    wait_gone "$TETHER_ZOOKEEPER_CONTROL_PID"
    wait_gone "$pid"
    run tether gc
    assert_status 0
    [ -z "$(ls -A "$TETHER_DIR")" ]

    # the owner (tether run) killed while its command runs
    "$TETHER" -q run zookeeper -- sh -c '
        echo "$TETHER_ZOOKEEPER_CONTROL_PID" > "$WORK/helper"
        cat "$TETHER_ZOOKEEPER_PIDFILE" > "$WORK/pid"
        exec sleep 60' &
    owner=$!
    wait_file "$WORK/pid" 30
    pid="$(cat "$WORK/pid")"
    kill -KILL "$owner"
    wait_gone "$pid"
    # the helper, which removes the instance's directory as it goes
    wait_gone "$(cat "$WORK/helper")"
    wait "$owner" || true
    run tether gc
    assert_status 0
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "zookeeper failures: no java, no zookeeper.jar, bad options" {
    # java missing from PATH: the package that brings it is named
    run env PATH=/nonexistent "$TETHER" run zookeeper -- true
    [ "$status" -ne 0 ]
    assert_output_has "[zookeeper] java not found in PATH: install the Debian package zookeeper (apt-get install zookeeper)"

    cfg="$(config zk.ini <<EOF
[zk]
driver = zookeeper
classpath = $WORK/none/zookeeper.jar
EOF
)"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "[zk] $WORK/none/zookeeper.jar: no such file: install the Debian package zookeeper (apt-get install zookeeper)"

    cfg="$(config bad.ini <<EOF
[zk]
driver = zookeeper
heap = lots
EOF
)"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "bad.ini:3: [zk] heap = lots: give a whole number from 16 to 65536"
    sed -i 's/^heap = lots$/log_level = loud/' "$cfg"
    run tether -f "$cfg" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "bad.ini:3: [zk] log_level = loud"
}
