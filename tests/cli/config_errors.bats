#!/usr/bin/env bats
# Scenario 9: bad configs give FILE:LINE: errors on stderr and exit status 2
# (125 from run -- CMD),
# and nothing is started (a good service in the same file never runs).

bats_require_minimum_version 1.5.0
load helpers

# bad_config LINE MESSAGE-PART: write stdin after a good [first] service
# (lines 1-4), run and start it, and check the error.  LINE counts from the
# top of the whole file.
bad_config() {
    local line="$1" part="$2" cfg cmd want
    cfg="$WORK/bad.ini"
    {
        echo "[first]"
        echo "command = sh -c 'touch $WORK/started; exec $TSERVER --tcp \${port}'"
        echo "port = auto"
        echo
        cat
    } >"$cfg"
    for cmd in "run -- true" "start"; do
        # shellcheck disable=SC2086
        run --separate-stderr tether -f "$cfg" $cmd
        # run -- CMD: 125, which CMD's own 2 cannot be taken for
        want=2
        [ "$cmd" = start ] || want=125
        [ "$status" -eq "$want" ] || {
            echo "tether $cmd: exit $status, want $want; stderr: $stderr" >&2
            return 1
        }
        [ -z "$output" ] || { echo "stdout not empty: $output" >&2; return 1; }
        case $stderr in
        "$cfg:$line: "*"$part"*) ;;
        *)
            echo "tether $cmd: want \"$cfg:$line: ...$part...\" on stderr, got:" >&2
            echo "$stderr" >&2
            return 1
            ;;
        esac
    done
    [ ! -e "$WORK/started" ] || { echo "a service was started" >&2; return 1; }
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "missing command" {
    bad_config 5 "no command" <<EOF
[web]
port = auto
EOF
}

@test "unknown key" {
    bad_config 7 "colour" <<EOF
[web]
command = $TSERVER --tcp \${port}
colour = blue
port = auto
EOF
}

@test "unknown \${name}" {
    bad_config 6 '${nope}' <<EOF
[web]
command = $TSERVER --tcp \${nope}
EOF
}

@test "unknown \${service.VAR}, and a service's variables without after =" {
    bad_config 7 '${first.NOPE}' <<EOF
[web]
command = $TSERVER --tcp \${port}
export.X = \${first.NOPE}
after = first
port = auto
EOF
    bad_config 6 "after" <<EOF
[web]
command = $TSERVER --tcp \${first.PORT}
EOF
}

@test "dependency cycle" {
    bad_config 7 "cycle" <<EOF
[a]
command = $TSERVER
after = c

[b]
command = $TSERVER
after = a

[c]
command = $TSERVER
after = b
EOF
}

@test "bad port" {
    bad_config 7 "port = 70000" <<EOF
[web]
command = $TSERVER --tcp \${port}
port = 70000
EOF
    bad_config 7 "port = http" <<EOF
[web]
command = $TSERVER --tcp \${port}
port = http
EOF
    bad_config 7 "port = 0" <<EOF
[web]
command = $TSERVER --tcp \${port}
port = 0
EOF
}

@test "other mistakes: after an unknown service, bad ready, bad timeout, bad signal, syntax" {
    bad_config 6 "no service [nosuch]" <<EOF
[web]
after = nosuch
command = $TSERVER
EOF
    bad_config 7 "ready = carrier-pigeon" <<EOF
[web]
command = $TSERVER
ready = carrier-pigeon
EOF
    bad_config 7 "timeout = soon" <<EOF
[web]
command = $TSERVER
timeout = soon
EOF
    bad_config 7 "stop_signal = NICELY" <<EOF
[web]
command = $TSERVER
stop_signal = NICELY
EOF
    bad_config 7 "duplicate key" <<EOF
[web]
command = $TSERVER
command = $TSERVER
EOF
    bad_config 6 "expected key = value" <<EOF
[web]
this line is not ini
EOF
    bad_config 7 "ready = tcp needs a port" <<EOF
[web]
command = $TSERVER
ready = tcp
EOF
}


@test "two services that make one variable, and env. names tether sets itself" {
    bad_config 10 "[web_x] PORT makes the variable TETHER_WEB_X_PORT, and so does [web] export.X_PORT (line 7)" <<EOF
[web]
command = $TSERVER
export.X_PORT = 1
[web_x]
command = $TSERVER --tcp \${port}
port = auto
EOF
    bad_config 10 "[web] export.X_PORT makes the variable TETHER_WEB_X_PORT, and so does [web_x] PORT (line 7)" <<EOF
[web_x]
command = $TSERVER --tcp \${port}
port = auto
[web]
command = $TSERVER
export.X_PORT = 1
EOF
    bad_config 7 "[web] env.TETHER_COOKIE: tether sets TETHER_COOKIE itself" <<EOF
[web]
command = $TSERVER
env.TETHER_COOKIE = not-yours
EOF
    bad_config 8 "[web] env.TETHER_FIRST_PORT would hide the variable that [first] PORT (line 3) makes" <<EOF
[web]
command = $TSERVER
after = first
env.TETHER_FIRST_PORT = 1
EOF
}

@test "two redis services: neither sets REDIS_URL, each has its own URL" {
    command -v redis-server >/dev/null || skip "redis-server is not installed"
    cfg=$(printf '[a]\ndriver = redis\n[b]\ndriver = redis\n' | config two.ini)
    run --separate-stderr tether -f "$cfg" run -- sh -c 'echo "R=${REDIS_URL-unset} A=$TETHER_A_URL B=$TETHER_B_URL"'
    assert_status 0
    case $output in "R=unset A=unix:///"*" B=unix:///"*) ;; *) echo "got: $output" >&2; return 1 ;; esac
}

@test "every error of a file at once, each at its own line: a misspelt key, a bad port, an unknown driver" {
    cfg="$WORK/three.ini"
    cat >"$cfg" <<EOF
[web]
comand = sh -c 'touch $WORK/started; exec $TSERVER --tcp \${port}'
port = 99999

[db]
driver = postgress
EOF
    run --separate-stderr tether -f "$cfg" run -- touch "$WORK/ran"
    assert_status 125
    [ "${#stderr_lines[@]}" -eq 3 ] || { echo "want 3 lines, got: $stderr" >&2; return 1; }
    [ "${stderr_lines[0]}" = "$cfg:2: [web] unknown key 'comand': did you mean 'command'?" ]
    [[ ${stderr_lines[1]} == "$cfg:3: [web] port = 99999: use auto"* ]]
    [[ ${stderr_lines[2]} == "$cfg:6: [db] unknown driver 'postgress': did you mean 'postgresql'? (the drivers are: $(joined ', ' $SHIPPED_C $SHIPPED_RECIPES);"* ]]
    [ ! -e "$WORK/started" ] && [ ! -e "$WORK/ran" ]
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "a driver's misspelt key names the driver's own key" {
    bad_config 7 "[pg] unknown key 'init_sq': did you mean 'init_sql'?" <<EOF
[pg]
driver = postgresql
init_sq = schema.sql
EOF
}

@test "run NAME that is neither a service nor a built-in lists both, with the closest" {
    cfg="$(config app.ini <<EOF
[files]
command = $TSERVER
EOF
)"
    run --separate-stderr tether -f "$cfg" run fils -- true
    assert_status 125
    [ "$stderr" = "tether: no service 'fils' in $cfg: did you mean 'files'? (it has: files; the built-in drivers are: $(joined ', ' $SHIPPED_RUNNABLE))" ]
    # without a config file: the built-ins
    cd "$WORK"
    run --separate-stderr tether run redsi -- true
    assert_status 125
    [ "$stderr" = "tether: unknown service 'redsi': did you mean 'redis'? (the built-in drivers are: $(joined ', ' $SHIPPED_RUNNABLE); anything else needs a config file: -f FILE, \$TETHER_CONFIG or ./tether.ini)" ]
}

@test "run NAME: a built-in that ./tether.ini does not define starts on its own" {
    command -v redis-server >/dev/null || skip "redis-server is not installed"
    cd "$WORK"
    cat >tether.ini <<EOF
[files]
command = sh -c 'touch $WORK/files-started; exec $TSERVER'
[cache]
driver = redis
EOF
    run --separate-stderr tether run redis -- sh -c 'echo "$TETHER_REDIS_URL ${TETHER_FILES_DIR-nofiles}"'
    assert_status 0
    [[ $output == unix://*" nofiles" ]]
    [ ! -e "$WORK/files-started" ]
    # the file's own redis under another name may be the one that was meant
    [[ $stderr == *"tether.ini has no [redis]: starting the built-in redis driver with its defaults; its [cache] (driver = redis) starts with: tether run cache"* ]]
    # mixed with the file's services, it must be in the file
    run --separate-stderr tether run files redis -- true
    assert_status 125
    [[ $stderr == *"no service 'redis' in $WORK/tether.ini (it has: files, cache): to start the built-in redis driver with them, add a [redis] section; on its own: tether run redis" ]]
}

@test "run postgresql next to a tether.ini without [postgresql] (the README's tour)" {
    command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
        skip "PostgreSQL is not installed"
    cd "$WORK"
    printf '[files]\ncommand = %s\n' "$TSERVER" >tether.ini
    run --separate-stderr tether run postgresql -- sh -c 'echo "db=$PGDATABASE"'
    assert_status 0
    [ "$output" = "db=tether" ]
}

@test "reset and logs of a NAME that is not running list those that are" {
    cfg="$(config app.ini <<EOF
[files]
command = $TSERVER
[cache]
command = $TSERVER
EOF
)"
    run tether -f "$cfg" run -- sh -c '"$1" reset fils; echo "rc=$?"; "$1" logs cahce; echo "rc=$?"' sh "$TETHER"
    assert_status 0
    assert_output_has "tether: no service 'fils' in the environment: did you mean 'files'? (running: files, cache)"
    assert_output_has "tether: no service 'cahce' in the environment: did you mean 'cache'? (running: files, cache)"
    assert_output_has "rc=2"
}
