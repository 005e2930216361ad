#!/usr/bin/env bats
# Container services (image =): a locally imported busybox image (no
# registry), used through curl; reset inside the container; status; stop,
# SIGKILL of the helper and of the owner leave no container (without gc);
# gc of a stale labelled container; a missing image; a recipe's image
# fallback.  Runs with podman (rootful, or rootless where the user has
# /etc/subuid entries).

load helpers

RT=podman

# rootless podman's run-time files (no XDG_RUNTIME_DIR, as in CI's user
# round): those it made for this file go at the end
PODMAN_RUNTIME_FILES="/tmp/podman-run-$EUID /tmp/containers-user-$EUID /dev/shm/libpod_rootless_lock_$EUID"

setup_file() {
    command -v podman >/dev/null || return 0
    local f
    PODMAN_NEW_FILES=""
    [ "$EUID" -eq 0 ] || for f in $PODMAN_RUNTIME_FILES; do
        [ -e "$f" ] || PODMAN_NEW_FILES+=" $f"
    done
    export PODMAN_NEW_FILES
    # rootless podman keeps its images under XDG_DATA_HOME, which each
    # test's setup points elsewhere: setup links it back
    export PODMAN_DATA="${XDG_DATA_HOME:-$HOME/.local/share}/containers"
    local d
    d="$(mktemp -d "${TMPDIR:-/tmp}/tether-img.XXXXXX")"
    mkdir -p "$d/root/bin" "$d/root/www"
    cp /usr/bin/busybox "$d/root/bin/busybox"
    echo hello >"$d/root/www/index.html"
    export IMG="localhost/tether-test-bb:$$"
    # an image with a command of its own (CMD), and none at all for the rest
    tar -C "$d/root" -cf "$d/root.tar" .
    IMPORT_ERR="$(podman import \
        --change 'CMD ["/bin/busybox","httpd","-f","-v","-h","/www","-p","8080"]' \
        "$d/root.tar" "$IMG" 2>&1 >/dev/null | tail -1)" || true
    export IMPORT_ERR
    rm -rf "$d"
}

teardown_file() {
    [ -n "${IMG:-}" ] && podman rmi -f "$IMG" >/dev/null 2>&1 || true
    # rootless podman keeps a pause process (catatonit -P) holding its user
    # namespace for the next command, forever: not ours, but not to be left
    local pause
    [ "$EUID" -eq 0 ] || for pause in "${XDG_RUNTIME_DIR:-/nonexistent}" "/tmp/podman-run-$EUID" "/tmp/containers-user-$EUID"; do
        [ -s "$pause/libpod/tmp/pause.pid" ] && kill -KILL "$(cat "$pause/libpod/tmp/pause.pid")" 2>/dev/null
    done
    # shellcheck disable=SC2086 # a list of paths without spaces
    [ -z "${PODMAN_NEW_FILES:-}" ] || rm -rf -- $PODMAN_NEW_FILES
    return 0
}

setup() {
    tether_setup
    command -v podman >/dev/null || skip "podman is not installed (apt-get install podman runc)"
    mkdir -p "$XDG_DATA_HOME" && ln -s "$PODMAN_DATA" "$XDG_DATA_HOME/containers"
    podman image exists "$IMG" 2>/dev/null ||
        skip "podman cannot import an image here (${IMPORT_ERR:-?}): rootless podman needs /etc/subuid and /etc/subgid entries for $(id -un)"
    _CT_BEFORE="$(containers)"
    _NET_BEFORE="$(podman network ls -q | sort | tr '\n' ' ')"
    _VOL_BEFORE="$(podman volume ls -q | sort | tr '\n' ' ')"
}

# this user's tether containers (any state), one name a line
containers() { podman ps -a --filter label=tether.instance --format '{{.Names}}' | sort; }
no_new_containers() { [ "$(containers)" = "$_CT_BEFORE" ]; }

teardown() {
    local left=""
    stop_dockerd
    if [ -n "${_CT_BEFORE+x}" ]; then
        wait_for 10 no_new_containers || left="containers: $(containers | tr '\n' ' ')"
        [ "$(podman network ls -q | sort | tr '\n' ' ')" = "$_NET_BEFORE" ] || left+=" networks"
        [ "$(podman volume ls -q | sort | tr '\n' ' ')" = "$_VOL_BEFORE" ] || left+=" volumes"
        for n in $(containers); do
            case " $_CT_BEFORE " in *" $n "*) ;; *) podman rm -f "$n" >/dev/null 2>&1 ;; esac
        done
    fi
    tether_teardown
    [ -z "$left" ] || { echo "LEFT BEHIND: $left" >&2; return 1; }
}

# rootless podman publishes ports through slirp4netns, which needs /dev/net/tun
need_port_publishing() {
    [ "$EUID" -eq 0 ] || [ -w /dev/net/tun ] ||
        skip "rootless port publishing (container_port) needs /dev/net/tun, which is root's only here (crw------- root): slirp4netns fails"
}

web_config() {
    config tether.ini <<EOF
[web]
image = $IMG
command = /bin/busybox httpd -f -v -h /www -p 127.0.0.1:\${port}
port = auto
ready = http:/index.html
reset = exec:/bin/busybox rm -f /www/new.html
export.URL = http://127.0.0.1:\${port}/
EOF
}

@test "a container service: started from a local image, used with curl, reset inside it, status, stop" {
    cd "$WORK"
    web_config >/dev/null
    eval "$(tether start)"
    [ "$(curl -s "$TETHER_WEB_URL")" = hello ]
    name="$(containers | grep -v -x -F "$_CT_BEFORE" | head -1)"
    [ -n "$name" ]
    # labels name the instance and the cookie
    run podman inspect --format '{{index .Config.Labels "tether.instance"}} {{index .Config.Labels "tether.cookie"}}' "$name"
    assert_status 0
    [[ "$output" = "${name#tether-}"* ]] || [[ "$name" = "tether-${output%% *}-web" ]]
    [[ "$output" = *" ${output%% *}-"* ]]
    # reset = exec: runs inside the container
    podman exec "$name" /bin/busybox sh -c 'echo new >/www/new.html'
    [ "$(curl -s "${TETHER_WEB_URL}new.html")" = new ]
    run tether reset web
    assert_status 0
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${TETHER_WEB_URL}new.html")" = 404 ]
    run tether status
    assert_status 0
    assert_output_has "[web] ready"
    # the container's output is the service's log
    grep -q "response:200" "$TETHER_WEB_DIR/../web.log"
    eval "$(tether stop)"
    no_new_containers
}

@test "tether run: the image's own command, env.X and volume.PATH, published on 127.0.0.1 (container_port)" {
    need_port_publishing
    cd "$WORK"
    config tether.ini >/dev/null <<EOF
[web]
image = $IMG
port = auto
container_port = 8080
env.GREETING = hi
volume./data = \${dir}/data
EOF
    run tether run web -- sh -c 'curl -s "http://127.0.0.1:$TETHER_WEB_PORT/" && podman exec tether-$(basename "$(dirname "$TETHER_WEB_DIR")")-web /bin/busybox sh -c "echo \$GREETING >/data/x" && cat "$TETHER_WEB_DIR/data/x" && podman port tether-$(basename "$(dirname "$TETHER_WEB_DIR")")-web'
    assert_status 0
    assert_output_has hello
    assert_output_has hi
    assert_output_has "8080/tcp -> 127.0.0.1:"
}

@test "SIGKILL of the helper: the container is gone within 2 s, without gc, and no conmon is left" {
    cd "$WORK"
    web_config >/dev/null
    eval "$(tether start)"
    name="tether-$(basename "$(dirname "$TETHER_WEB_DIR")")-web"
    podman container exists "$name"
    conmon="$(pgrep -f "conmon .*--name $name" || true)"
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
    wait_for 2 no_new_containers
    for p in $conmon; do wait_gone "$p" 2; done
    ! curl -s -m 1 "$TETHER_WEB_URL" >/dev/null
    tether gc >/dev/null 2>&1
}

@test "SIGKILL of the owner: tether run's process killed, the container goes" {
    cd "$WORK"
    web_config >/dev/null
    # its output elsewhere: bats waits for whoever holds its fds
    "$TETHER" run web -- sh -c "echo \$\$ >'$WORK/cmd'; echo \$TETHER_WEB_CONTROL_PID >'$WORK/helper'; exec sleep 300" \
        >/dev/null 2>&1 3>&- &
    owner=$!
    wait_file "$WORK/helper"
    helper="$(cat "$WORK/helper")"
    kill -KILL "$owner"
    wait_gone "$helper" 10
    wait_for 5 no_new_containers
    # the test command, orphaned by an owner killed outright, is the caller's
    kill -KILL "$(cat "$WORK/cmd")" 2>/dev/null || true
}

@test "gc removes a stale instance's labelled container (one its lease could not end: paused)" {
    [ "$EUID" -eq 0 ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
        skip "rootless podman cannot pause a container on cgroup v1 (this machine): the stale container this test needs"
    cd "$WORK"
    web_config >/dev/null
    eval "$(tether start)"
    name="tether-$(basename "$(dirname "$TETHER_WEB_DIR")")-web"
    podman pause "$name" >/dev/null
    kill -KILL "$TETHER_WEB_CONTROL_PID"
    wait_gone "$TETHER_WEB_CONTROL_PID" 5
    podman container exists "$name"
    run tether gc
    assert_status 0
    ! podman container exists "$name"
}

@test "a missing image: an error that says how to pull it" {
    cd "$WORK"
    config tether.ini >/dev/null <<EOF
[web]
image = localhost/tether-no-such-image:1
port = auto
EOF
    run tether run web -- true
    [ "$status" -ne 0 ]
    assert_output_has "localhost/tether-no-such-image:1 is not on this machine"
    assert_output_has "podman pull localhost/tether-no-such-image:1"
}

@test "bad keys: FILE:LINE errors" {
    cd "$WORK"
    config tether.ini >/dev/null <<EOF
[web]
image = $IMG
container_port = 99999
port = auto
EOF
    run tether run web -- true
    [ "$status" -ne 0 ]
    assert_output_has "tether.ini:1: [web] container_port = 99999"
    config tether.ini >/dev/null <<EOF
[web]
image = $IMG
runtime = lxc
EOF
    run tether run web -- true
    [ "$status" -ne 0 ]
    assert_output_has "runtime = lxc: use podman or docker"
}

# bbweb_recipe PROGRAM: a recipe for busybox httpd, with the test image as
# its fallback
bbweb_recipe() {
    mkdir -p "$WORK/recipes"
    cat >"$WORK/recipes/bbweb.ini" <<EOF
[driver]
program = $1
package = busybox
image = $IMG
container_port = 8080

[server]
command = \${program} httpd -f -h $WORK/www -p 127.0.0.1:\${port}
port = auto
ready = http:/index.html
EOF
}

@test "a recipe with an image fallback: the program when installed, else the image" {
    need_port_publishing
    cd "$WORK"
    mkdir -p www && echo native >www/index.html
    config tether.ini >/dev/null <<EOF
[tether]
drivers = recipes
[bbweb]
EOF
    probe='curl -s "http://127.0.0.1:$TETHER_BBWEB_PORT/"; podman ps -q --filter label=tether.service=bbweb | wc -l'
    # installed: the program runs, no container
    bbweb_recipe busybox
    run tether run bbweb -- sh -c "$probe"
    assert_status 0
    [ "${lines[0]}" = native ]
    [ "${lines[1]}" = 0 ]
    # not installed: the image, with its own command, published on the port
    bbweb_recipe tether-no-such-httpd
    run tether run bbweb -- sh -c "$probe"
    assert_status 0
    [ "${lines[0]}" = hello ]
    [ "${lines[1]}" = 1 ]
}

# A private dockerd for one test (no bridge, no iptables: nothing of the
# machine's network changes), its own data-root, exec-root, pidfile and
# socket under $WORK/d; stop_dockerd removes it all.
start_dockerd() {
    [ "$EUID" -eq 0 ] || skip "a private dockerd needs root"
    command -v dockerd >/dev/null && command -v docker >/dev/null ||
        skip "docker is not installed (apt-get install docker.io): the docker runtime is not tested"
    DD="$(mktemp -d /tmp/tdd.XXXXXX)" # short: containerd's socket path must fit a sun_path
    dockerd --bridge=none --iptables=false --ip6tables=false --data-root "$DD/data" \
        --exec-root "$DD/x" --pidfile "$DD/pid" -H "unix://$DD/sock" >"$DD/log" 2>&1 &
    DD_PID=$!
    export DOCKER_HOST="unix://$DD/sock"
    wait_for 20 docker version >/dev/null 2>&1
}

stop_dockerd() {
    [ -n "${DD_PID:-}" ] || return 0
    kill -TERM "$DD_PID" 2>/dev/null
    wait_gone "$DD_PID" 20 || kill -KILL "$DD_PID"
    umount "$DD/x/netns/default" 2>/dev/null || true
    rm -rf "$DD"
    DD_PID=""
}

@test "docker: a private daemon; reset inside, status, SIGKILL of the helper -> no container within 2 s, stop" {
    start_dockerd
    d="$(mktemp -d "$WORK/img.XXXXXX")"
    mkdir -p "$d/bin" && cp /usr/bin/busybox "$d/bin/"
    tar -C "$d" -c . | docker import - localhost/tether-test-bb:1 >/dev/null
    cd "$WORK"
    # no port: with the host's network the server is containerd-shim's, not
    # in the helper's process tree, and tether's port ownership check
    # refuses a listener it cannot find there (see docs/containers.md)
    config tether.ini >/dev/null <<EOF
[job]
image = localhost/tether-test-bb:1
runtime = docker
command = /bin/busybox sh -c "echo started; exec /bin/busybox sleep 1000"
ready = log:started
reset = exec:/bin/busybox touch /reset-ran
EOF
    eval "$(tether start)"
    name="$(docker ps --format '{{.Names}}')"
    [ "$name" = "tether-$(basename "$(dirname "$TETHER_JOB_DIR")")-job" ]
    run tether reset job
    assert_status 0
    docker exec "$name" /bin/busybox test -e /reset-ran
    run tether status
    assert_status 0
    kill -KILL "$TETHER_JOB_CONTROL_PID"
    wait_gone "$TETHER_JOB_CONTROL_PID" 5
    docker_empty() { [ -z "$(docker ps -aq)" ]; }
    wait_for 2 docker_empty
    tether gc >/dev/null 2>&1
    eval "$(tether start)"
    [ -n "$(docker ps -q)" ]
    eval "$(tether stop)"
    docker_empty
    stop_dockerd
}
