#!/bin/bash
# Floors for ZooKeeper, whose cost is a JVM's start to serving (0.5-0.9 s here):
#   floor-zookeeper.sh PROBE PORT run
#     for `tether run zookeeper -- true`: java ... ZooKeeperServerMain on
#     127.0.0.1:PORT with a fresh data dir, as the recipe runs it (same
#     flags, no sh in front), `srvr` until `Zookeeper version:`, SIGKILL, wait, remove.
#   floor-zookeeper.sh PROBE PORT reset DIR
#     for `tether reset zookeeper` (a restart on an emptied data dir): SIGKILL
#     the JVM DIR/pid names, wait for it, empty DIR/data, start a new JVM
#     (left running, its pid in DIR/pid), `srvr` until `Zookeeper version:`.
#   floor-zookeeper.sh PROBE PORT stop DIR: kill what reset left.
set -e
probe=$1 port=$2 mode=$3

start() { # DIR: a JVM on DIR, its pid in $pid
    mkdir -p "$1/data"
    printf '%s\n' tickTime=2000 "dataDir=$1/data" clientPortAddress=127.0.0.1 \
        "clientPort=$port" admin.enableServer=false 4lw.commands.whitelist=ruok,srvr \
        forceSync=no maxClientCnxns=0 >"$1/zoo.cfg"
    java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m -XX:-UsePerfData \
        -Djava.io.tmpdir="$1" -Dzookeeper.jmx.log4j.disable=true \
        -Dorg.slf4j.simpleLogger.logFile=System.out -Dorg.slf4j.simpleLogger.defaultLogLevel=error \
        -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
        org.apache.zookeeper.server.ZooKeeperServerMain "$1/zoo.cfg" >/dev/null 2>&1 </dev/null &
    pid=$!
}

# Until it listens, bench/probe's tight loop (0.2 ms) costs the JVM nothing
# (refused connects); from then until it serves, each probe is a request
# it must answer (and log), so the floor backs off as tether does (x1.5 from
# 1 ms, at most 25 ms): the tight loop made the floor 0.3-0.6 s slower.
serving() {
    local line delay=1
    "$probe" tcp "$port" ruok imok
    while :; do
        line=
        if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
            printf srvr >&3
            IFS= read -r line <&3 || true
            exec 3<&-
        fi 2>/dev/null
        [[ $line == "Zookeeper version:"* ]] && return 0
        sleep "0.$(printf %03d "$delay")"
        delay=$((delay * 3 / 2 + 1 > 25 ? 25 : delay * 3 / 2 + 1))
    done
}

kill_old() { # DIR: SIGKILL DIR/pid's JVM (not our child) and wait for it
    local old
    old=$(cat "$1/pid" 2>/dev/null) || return 0
    kill -KILL "$old" 2>/dev/null || true
    while [ -e "/proc/$old" ] && [ "$(awk '{print $3}' "/proc/$old/stat" 2>/dev/null)" != Z ]; do
        sleep 0.001
    done
    rm -f "$1/pid"
}

case $mode in
run)
    dir=$(mktemp -d /dev/shm/floor-zk.XXXXXX)
    pid=
    trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
    start "$dir"
    serving
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    ;;
reset)
    dir=$4
    kill_old "$dir"
    rm -rf -- "$dir/data"
    start "$dir"
    echo "$pid" >"$dir/pid"
    serving
    ;;
stop)
    kill_old "$4"
    ;;
esac
