#!/usr/bin/env bats
# Relative paths in a config are the project's: the program of command,
# reset, ready = exec: and postgresql's init, and init_sql, resolve against
# the config file's directory, whatever directory tether runs in; the
# service still runs in its private ${dir}.  ${config_dir} is that
# directory, for arguments.

bats_require_minimum_version 1.5.0
load helpers

# a project in $WORK/proj: bin/api-server (records its working directory,
# then runs the test server), bin/ready and bin/reset (leave a mark)
project() {
    mkdir -p "$WORK/proj/bin" "$WORK/elsewhere"
    cat >"$WORK/proj/bin/api-server" <<EOF
#!/bin/sh
pwd >"$WORK/api-cwd"
exec "$TSERVER" "\$@"
EOF
    printf '#!/bin/sh\ntouch "%s/ready-ran"\n' "$WORK" >"$WORK/proj/bin/ready"
    printf '#!/bin/sh\necho "$1" >"%s/reset-ran"\n' "$WORK" >"$WORK/proj/bin/reset"
    chmod +x "$WORK/proj/bin/"*
    cat >"$WORK/proj/tether.ini" <<'EOF'
[api]
command = ./bin/api-server --tcp ${port}
port = auto
ready = exec:bin/ready
reset = ./bin/reset ${config_dir}/fixtures
export.CONF = ${config_dir}/api.conf
EOF
    PROJ="$(cd "$WORK/proj" && pwd -P)"
}

@test "command = ./bin/api-server next to tether.ini works from another directory" {
    project
    cd "$WORK/elsewhere"
    run --separate-stderr tether -f ../proj/tether.ini run -- \
        sh -c '"$1" reset api && echo "conf=$TETHER_API_CONF dir=$TETHER_API_DIR"' sh "$TETHER"
    assert_status 0
    [ "$output" = "conf=$PROJ/api.conf dir=$(cat "$WORK/api-cwd")" ]
    # its working directory is still its private ${dir}, not the project
    case $(cat "$WORK/api-cwd") in "$TETHER_DIR"/*) ;; *) cat "$WORK/api-cwd" >&2; return 1 ;; esac
    [ -e "$WORK/ready-ran" ]
    [ "$(cat "$WORK/reset-ran")" = "$PROJ/fixtures" ]
}

@test "the same through \$TETHER_CONFIG and ./tether.ini" {
    project
    cd "$WORK/elsewhere"
    TETHER_CONFIG=../proj/tether.ini run tether run -- true
    assert_status 0
    rm "$WORK/ready-ran"
    cd "$WORK/proj"
    run tether run -- true
    assert_status 0
    [ -e "$WORK/ready-ran" ]
}

@test "a relative program that is not there is named by its full path" {
    project
    sed -i 's|^command = .*|command = ./bin/nope --tcp ${port}|' "$WORK/proj/tether.ini"
    cd "$WORK/elsewhere"
    run tether -f ../proj/tether.ini run -- true
    [ "$status" -ne 0 ]
    assert_output_has "$PROJ/bin/nope"
    assert_output_has "No such file or directory"
}

@test "a bare program name is still looked up in PATH, and an absolute one used as it is" {
    project
    cat >"$WORK/proj/tether.ini" <<EOF
[a]
command = sh -c 'touch "\$0"' $WORK/a-ran
[b]
command = $WORK/proj/bin/ready
EOF
    cd "$WORK/elsewhere"
    run tether -f ../proj/tether.ini run -- true
    assert_status 0
    [ -e "$WORK/a-ran" ] && [ -e "$WORK/ready-ran" ]
}

@test "postgresql: init = ./bin/load runs from the config's directory" {
    command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
        skip "PostgreSQL is not installed"
    mkdir -p "$WORK/proj/bin" "$WORK/elsewhere"
    # a cache of its own, gone with $WORK: the cluster is built with this init
    export TETHER_CACHE_DIR="$WORK/cache"
    table="t_$(basename "$WORK" | tr -cd 'a-zA-Z0-9' | tr 'A-Z' 'a-z')"
    printf '#!/bin/sh\nexec psql -v ON_ERROR_STOP=1 -qc "create table %s (x int)"\n' "$table" \
        >"$WORK/proj/bin/load"
    chmod 755 "$WORK/proj" "$WORK/proj/bin" "$WORK/proj/bin/load"
    chmod 711 "$WORK"
    printf '[postgresql]\ninit = ./bin/load\n' >"$WORK/proj/tether.ini"
    cd "$WORK/elsewhere"
    run --separate-stderr tether -f ../proj/tether.ini run -- psql -Atc "select count(*) from $table"
    assert_status 0
    [ "$output" = 0 ]
}

@test "redis: bin = ./bin/redis-server is the project's too" {
    command -v redis-server >/dev/null || skip "redis-server is not installed"
    mkdir -p "$WORK/proj/bin" "$WORK/elsewhere"
    printf '#!/bin/sh\ntouch "%s/wrapped"\nexec "%s" "$@"\n' "$WORK" "$(command -v redis-server)" \
        >"$WORK/proj/bin/redis-server"
    chmod +x "$WORK/proj/bin/redis-server"
    printf '[redis]\nbin = ./bin/redis-server\n' >"$WORK/proj/tether.ini"
    cd "$WORK/elsewhere"
    run tether -f ../proj/tether.ini run -- true
    assert_status 0
    [ -e "$WORK/wrapped" ]
}
