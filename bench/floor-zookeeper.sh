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
    "$probe" tcp "$port" srvr "Zookeeper version:"
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
    "$probe" tcp "$port" srvr "Zookeeper version:"
    ;;
stop)
    kill_old "$4"
    ;;
esac
