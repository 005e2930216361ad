#!/usr/bin/env bats
# Scenario 5: a service that daemonises (double fork + setsid) is still
# killed at stop: the helper is a child subreaper, and every process that
# carries the instance's cookie goes.

load helpers

escape_config() {
    config esc.ini <<EOF
[web]
command = $TSERVER --tcp \${port} --escape $WORK/escaper.pid
port = auto
EOF
}

@test "stop kills a double-forked, setsid escaper" {
    cfg="$(escape_config)"
    eval "$(tether -f "$cfg" start)"
    esc="$(cat "$WORK/escaper.pid")"
    run ! is_gone "$esc"
    # it really escaped: another session, and not the service's child
    svc="$(cat "$TETHER_WEB_PIDFILE")"
    read -r stat <"/proc/$svc/stat"
    set -- ${stat##*) }
    svc_sid="$4"
    read -r stat <"/proc/$esc/stat"
    set -- ${stat##*) }
    [ "$2" != "$svc" ]     # parent: not the service
    [ "$4" != "$svc_sid" ] # session: not the service's
    eval "$(tether stop)"
    is_gone "$esc"
}

@test "run -- CMD: the escaper goes when CMD ends" {
    cfg="$(escape_config)"
    run tether -f "$cfg" run -- sh -c 'cat "$WORK/escaper.pid" > "$WORK/esc"'
    assert_status 0
    is_gone "$(cat "$WORK/esc")"
}

@test "a service whose whole process group ignores SIGTERM, with an escaper, is gone after stop" {
    cfg="$(config stubborn.ini <<EOF
[web]
command = $TSERVER --tcp \${port} --ignore-term --escape $WORK/escaper.pid
port = auto
stop_timeout = 100ms
EOF
)"
    eval "$(tether -f "$cfg" start)"
    esc="$(cat "$WORK/escaper.pid")"
    svc="$(cat "$TETHER_WEB_PIDFILE")"
    run tether stop
    assert_status 0
    is_gone "$esc"
    is_gone "$svc"
}
