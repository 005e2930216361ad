#!/usr/bin/env bats
# Recipes: servers described by an INI file (docs/drivers.md), found in
# [tether] drivers = DIR, $TETHER_DRIVERS and $XDG_DATA_HOME/tether/drivers
# before the built-ins; `tether drivers` lists them.  The made-up server is
# tests/cli/lined.py, a line protocol in a few lines of Python.
load helpers

setup() {
    tether_setup
    export XDG_DATA_HOME="$WORK/share"
    unset TETHER_DRIVERS
    LINED="$BATS_TEST_DIRNAME/lined.py"
    export LINED
}

# recipe DIR NAME: the lined recipe as DIR/NAME.ini
recipe() {
    mkdir -p "$1"
    cat >"$1/$2.ini" <<EOF
[driver]
description = lined, a made-up line server
program = $PY
package = python3-minimal

[option tcp]
type = bool
implied_by = port

[option greeting]
default = hello

[server]
command = \${program} $LINED
cwd = \${dir}
ready = send:PING expect:+PONG
reset = send:FLUSH expect:OK
file.lined.conf = greeting \${greeting}
  label \${label}
env.LINED_GREETING = \${greeting}
export.ADDRESS = unix:\${socket}
global.LINED_ADDRESS = ADDRESS

[when tcp = no]
socket = lined.sock
args = unix \${socket}

[when tcp = yes]
port = auto
args = tcp \${port}
export.ADDRESS = tcp:127.0.0.1:\${port}

[when greeting = loud]
args = --loud
EOF
}

# say ADDRESS LINE: send LINE to lined at ADDRESS (unix:PATH or
# tcp:HOST:PORT), print its answer
say() {
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys
kind, _, where = sys.argv[1].partition(":")
if kind == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.connect(where)
else:
    host, _, port = where.rpartition(":")
    s = socket.create_connection((host, int(port)))
s.sendall(sys.argv[2].encode() + b"\r\n")
print(s.makefile().readline().strip())
EOF
}

@test "a user's recipe in [tether] drivers = runs a made-up server: options, files, cwd, readiness, reset, variables" {
    recipe "$WORK/recipes" lined
    cfg="$(config tether.ini <<'EOF'
[tether]
drivers = recipes

[lined]
greeting = Hi There
EOF
)"
    out="$(tether -f "$cfg" start)"
    eval "$out"
    [ "$LINED_ADDRESS" = "unix:$TETHER_LINED_SOCKET" ]
    [ "$TETHER_LINED_ADDRESS" = "$LINED_ADDRESS" ]
    [ "$TETHER_LINED_SOCKET" = "$TETHER_LINED_DIR/lined.sock" ]
    # the file from its template, 0600, read from the server's cwd = ${dir}
    [ "$(stat -c %a "$TETHER_LINED_DIR/lined.conf")" = 600 ]
    [ "$(cat "$TETHER_LINED_DIR/lined.conf")" = "$(printf 'greeting Hi There\nlabel lined')" ]
    [ "$(say "$LINED_ADDRESS" GREETING)" = "greeting Hi There" ]
    tr '\0' '\n' <"/proc/$(cat "$TETHER_LINED_PIDFILE")/environ" | grep -qx "LINED_GREETING=Hi There"
    run tether logs lined
    assert_output_has "lined ready in $TETHER_LINED_DIR args"
    [[ $output != *--loud* ]]
    # reset is the FLUSH exchange
    run tether reset lined
    assert_status 0
    run tether logs lined
    assert_output_has flushed
    run tether status
    assert_status 0
    out="$(tether stop)"
    [[ $out == *LINED_ADDRESS* ]]
}

@test "a recipe's [when] sections: tcp = yes (or a port) changes the command line and the address" {
    recipe "$WORK/recipes" lined
    cfg="$(config tether.ini <<'EOF'
[tether]
drivers = recipes
[a]
driver = lined
tcp = YES
greeting = loud
[b]
driver = lined
port = auto
EOF
)"
    run tether -f "$cfg" run -- sh -c 'echo "$TETHER_A_ADDRESS $TETHER_A_PORT $TETHER_B_ADDRESS $TETHER_B_PORT ${LINED_ADDRESS:-none}"; tr "\0" " " </proc/$(cat "$TETHER_A_PIDFILE")/cmdline'
    assert_status 0
    set -- ${lines[0]}
    [ "$1" = "tcp:127.0.0.1:$2" ]
    [ "$3" = "tcp:127.0.0.1:$4" ]
    [ "$5" = none ] # two services of lined: no LINED_ADDRESS
    [[ ${lines[1]} == *"lined.py tcp $2 --loud "* ]]
}

@test "\$XDG_DATA_HOME, \$TETHER_DRIVERS and [tether] drivers: a user's recipe shadows the built-in memcached, in that order" {
    recipe "$XDG_DATA_HOME/tether/drivers" memcached
    run tether run memcached -- sh -c 'echo "$TETHER_MEMCACHED_ADDRESS"'
    assert_status 0
    [[ $output == "unix:$TETHER_DIR/"*/memcached/lined.sock ]]
    run tether drivers
    assert_output_has "memcached    $XDG_DATA_HOME/tether/drivers/memcached.ini  lined, a made-up line server"
    # $TETHER_DRIVERS (a list: a directory without it is passed over) before XDG
    recipe "$WORK/env" memcached
    sed -i 's/made-up/env/' "$WORK/env/memcached.ini"
    export TETHER_DRIVERS="$WORK/none:$WORK/env"
    run tether drivers
    assert_output_has "memcached    $WORK/env/memcached.ini  lined, a env line server"
    run tether run memcached -- sh -c 'echo "$TETHER_MEMCACHED_ADDRESS"'
    assert_status 0
    [[ $output == unix:*/lined.sock ]]
    # the config's drivers = before all
    recipe "$WORK/cfg" memcached
    sed -i 's/made-up/config/' "$WORK/cfg/memcached.ini"
    printf '[tether]\ndrivers = cfg\n[memcached]\n' >"$WORK/tether.ini"
    cd "$WORK"
    run tether drivers
    assert_output_has "memcached    $WORK/cfg/memcached.ini  lined, a config line server"
    run tether run -- sh -c 'echo "$TETHER_MEMCACHED_ADDRESS"'
    assert_status 0
    [[ $output == unix:*/lined.sock ]]
}

@test "tether drivers: each driver and where it comes from; a broken recipe says why" {
    cd "$WORK"
    run --separate-stderr tether drivers
    assert_status 0
    # the C built-ins in registry order, then the recipes by name, each
    # compiled-in one with its description
    local i=0 d
    for d in $SHIPPED_C; do
        [ "${lines[i]}" = "$(printf '%-12s built-in (C)' "$d")" ]
        i=$((i + 1))
    done
    for d in $SHIPPED_RECIPES; do
        [[ ${lines[i]} == "$(printf '%-12s built-in  ' "$d")"?* ]]
        i=$((i + 1))
    done
    [ "${#lines[@]}" -eq "$i" ]
    assert_output_has "memcached    built-in  memcached, the memory cache"
    [ -z "$stderr" ]
    recipe "$WORK/r" lined
    printf '[driver]\nprogram = x\npackage = x\n[server]\ncommand = x\nready = bogus\n' >"$WORK/r/broken.ini"
    printf '[tether]\ndrivers = r\n[x]\ncommand = true\n' >tether.ini
    run --separate-stderr tether drivers
    assert_status 1
    # a user's recipes after the C built-ins, by name, then the shipped ones
    [ "$(printf '%s\n' "${lines[@]}" | awk '{print $1}' | tr '\n' ' ')" = "$(joined ' ' $SHIPPED_C broken lined $SHIPPED_RECIPES) " ]
    assert_output_has "broken       $WORK/r/broken.ini  broken: see the error"
    assert_output_has "lined        $WORK/r/lined.ini  lined, a made-up line server"
    [[ $stderr == "tether: $WORK/r/broken.ini:6: [server] unknown ready = bogus: "* ]]
    # a service of it: the config's error names both files
    printf '[tether]\ndrivers = r\n[x]\ndriver = broken\n' >tether.ini
    run tether run -- true
    assert_status 125
    assert_output_has "tether.ini:4: [x] driver = broken: $WORK/r/broken.ini:6: [server] unknown ready = bogus"
    # the completions offer the recipes
    printf '[tether]\ndrivers = r\n[x]\ncommand = true\n' >tether.ini
    run tether _services
    [ "$output" = "$(printf '%s\n' x postgresql redis mariadb slapd lined $SHIPPED_RECIPES)" ]
}

@test "a recipe's options: an unknown one and a bad value are FILE:LINE errors, with a did-you-mean" {
    recipe "$WORK/recipes" lined
    cfg="$(config tether.ini <<'EOF'
[tether]
drivers = recipes
[lined]
greting = x
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "$cfg:4: [lined] unknown key 'greting': did you mean 'greeting'?"
    cfg="$(config t2.ini <<'EOF'
[tether]
drivers = recipes
[lined]
tcp = maybe
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "$cfg:4: [lined] tcp = maybe: say yes or no (or true/false, on/off, 1/0)"
}

@test "a recipe whose program is missing names its package, and leaves nothing behind" {
    mkdir -p "$WORK/r"
    printf '[driver]\nprogram = tether-no-such-server\npackage = tether-nosuch\n[server]\ncommand = ${program}\n' >"$WORK/r/nosuch.ini"
    printf '[tether]\ndrivers = r\n[n]\ndriver = nosuch\n[m]\ndriver = nosuch\nbin = /nonexistent/x\n' >"$WORK/tether.ini"
    cd "$WORK"
    run tether run n -- true
    assert_status 125
    assert_output_has "[n] tether-no-such-server not found in PATH: install the Debian package tether-nosuch (apt-get install tether-nosuch)"
    run tether run m -- true
    assert_status 125
    assert_output_has "[m] /nonexistent/x: no such executable file: fix the path, or install the Debian package tether-nosuch (apt-get install tether-nosuch)"
}

@test "stop_group = no: the stop signal goes to the server's main process, not its whole group" {
    mkdir -p "$WORK/r"
    # a main process whose child logs the TERM it gets; the main one waits
    # for its child on TERM, so that the child's line is written first
    cat >"$WORK/grp.sh" <<'EOF'
sh -c 'trap "echo child-TERM >>\"$LOG\"; exit 0" TERM; echo up >>"$LOG"; while :; do sleep 0.05; done' &
child=$!
trap 'wait $child; exit 0' TERM
wait $child
EOF
    cat >"$WORK/r/grp.ini" <<'EOF'
[driver]
program = sh
package = dash
[option group]
type = bool
default = yes
[server]
command = ${program} ${config_dir}/grp.sh
env.LOG = ${config_dir}/child.log
ready = exec:test -s ${config_dir}/child.log
stop_signal = TERM
stop_timeout = 1
[when group = no]
stop_group = no
EOF
    cd "$WORK"
    for g in yes no; do
        rm -f child.log
        printf '[tether]\ndrivers = r\n[g]\ndriver = grp\ngroup = %s\n' "$g" >tether.ini
        eval "$(tether start)"
        pid="$(cat "$TETHER_G_PIDFILE")"
        eval "$(tether stop)"
        wait_gone "$pid"
        cp child.log "$g.log"
    done
    [ "$(cat yes.log)" = "$(printf 'up\nchild-TERM')" ]
    [ "$(cat no.log)" = up ]
}

@test "user = as root: the server runs as the first of its users that exists, in a directory it owns" {
    [ "$(id -u)" = 0 ] || skip "only root switches users"
    id nobody >/dev/null 2>&1 || skip "no user nobody"
    mkdir -p "$WORK/r"
    cat >"$WORK/r/asuser.ini" <<'EOF2'
[driver]
program = sh
package = dash
[server]
command = ${program} -c "id -un >whoami; exec sleep 1000"
user = tether-no-such-user nobody
ready = exec:test -s ${dir}/whoami
file.secret = only for the server
EOF2
    printf '[tether]\ndrivers = r\n[u]\ndriver = asuser\n' >"$WORK/tether.ini"
    cd "$WORK"
    run tether run -- sh -c 'cat "$TETHER_U_DIR/whoami"; stat -c "%U %a" "$TETHER_U_DIR" "$TETHER_U_DIR/secret"; ps -o user= -p "$(cat "$TETHER_U_PIDFILE")"'
    assert_status 0
    [ "${lines[0]}" = nobody ]
    [ "${lines[1]}" = "nobody 700" ]
    [ "${lines[2]}" = "nobody 600" ]
    [ "${lines[3]}" = nobody ]
    # none of them exists: an error that names them
    sed -i 's/^user = .*/user = tether-no-such-user/' r/asuser.ini
    run tether run -- true
    assert_status 125
    assert_output_has "[u] none of the users tether-no-such-user exists to run sh as (user = in $WORK/r/asuser.ini): create one"
}

@test "tether run NAME beside a config whose drivers = has NAME.ini (and no [NAME]) starts that recipe with its defaults" {
    recipe "$WORK/recipes" lined
    printf '[tether]\ndrivers = recipes\n[web]\ncommand = true\n' >"$WORK/tether.ini"
    cd "$WORK"
    run tether run lined -- sh -c 'echo "$TETHER_LINED_ADDRESS"; cat "$TETHER_LINED_DIR/lined.conf"'
    assert_status 0
    [[ ${lines[0]} == unix:*/lined/lined.sock ]]
    [ "${lines[1]}" = "greeting hello" ]
}

@test "a recipe's \${password}: made per instance, the same in files, readiness and variables, never on a command line; \${NAME|url} percent-encodes" {
    recipe "$WORK/recipes" lined
    cat >>"$WORK/recipes/lined.ini" <<'EOF2'
[when greeting = secret]
file.secret = ${password}
ready = send:AUTH-${password} expect:AUTH-${password}
export.URL = lined://:${password}@/${socket|urlpath}?dir=${dir|url}
export.RPC = ${port_rpc}
EOF2
    cfg="$(config tether.ini <<'EOF2'
[tether]
drivers = recipes
[a-b]
driver = lined
greeting = secret
reset = restart
EOF2
)"
    eval "$(tether -f "$cfg" start)"
    pw="$(cat "$TETHER_A_B_DIR/secret")"
    [[ $pw =~ ^[0-9a-f]{32}$ ]]
    [ "$(stat -c %a "$TETHER_A_B_DIR/secret")" = 600 ]
    [ "$TETHER_A_B_URL" = "lined://:$pw@/$TETHER_A_B_SOCKET?dir=${TETHER_A_B_DIR//\//%2F}" ]
    # a restart keeps it; another instance has its own
    pid="$(cat "$TETHER_A_B_PIDFILE")"
    tether reset a-b
    [ "$(cat "$TETHER_A_B_PIDFILE")" != "$pid" ]
    [ "$(cat "$TETHER_A_B_DIR/secret")" = "$pw" ]
    run tether -f "$cfg" run -- sh -c 'cat "$TETHER_A_B_DIR/secret"'
    assert_status 0
    [[ $output =~ ^[0-9a-f]{32}$ && $output != "$pw" ]]
    eval "$(tether stop)"
    # on a command line, ps shows it to every local user: refused
    printf '[driver]\nprogram = x\npackage = x\n[server]\ncommand = x --auth ${password}\n' >"$WORK/recipes/leaky.ini"
    run tether -f "$cfg" drivers
    assert_status 1
    assert_output_has "$WORK/recipes/leaky.ini:5: \${password} in command: every local user can read a command line (ps)"
}

@test "\${port_NAME} gives any service more reserved ports, the same in every template, held while it runs" {
    cfg="$(config tether.ini <<'EOF'
[web]
command = python3 -m http.server ${port_admin} --bind 127.0.0.1 --directory ${dir}
ready = http:/ to:tcp:${port_admin}
export.ADMIN = ${port_admin}
export.OTHER = ${port_other}
EOF
)"
    eval "$(tether -f "$cfg" start)"
    [[ $TETHER_WEB_ADMIN =~ ^[0-9]+$ && $TETHER_WEB_OTHER =~ ^[0-9]+$ ]]
    [ "$TETHER_WEB_ADMIN" != "$TETHER_WEB_OTHER" ]
    curl -fsS "http://127.0.0.1:$TETHER_WEB_ADMIN/" >/dev/null
    eval "$(tether stop)"
    # a misspelt name is still a load time error
    printf '[web]\ncommand = true ${prot_admin}\n' >"$cfg"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "unknown variable \${prot_admin} in command"
}
