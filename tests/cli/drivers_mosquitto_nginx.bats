#!/usr/bin/env bats
# The mosquitto and nginx recipes: no config needed, the real clients
# (mosquitto_pub/sub, curl) connect, reset, status, variables, TCP with a
# per-instance password, nginx's static root and reverse proxy, and nothing
# left after SIGKILL (nginx's workers included: their environment, and the
# TETHER_COOKIE in it, is overwritten by their process title, so the
# standard teardown cannot see them and these tests look for them by pid).

load helpers

setup() {
    tether_setup
    # in /usr/sbin, not on a normal user's PATH: the recipes name the path
    [ -x /usr/sbin/mosquitto ] || skip "mosquitto is not installed (apt-get install mosquitto)"
    command -v mosquitto_pub >/dev/null || skip "mosquitto_pub is not installed (apt-get install mosquitto-clients)"
    [ -x /usr/sbin/nginx ] || skip "nginx is not installed (apt-get install nginx-light)"
    command -v curl >/dev/null || skip "curl is not installed (apt-get install curl)"
}

teardown() { tether_teardown; }

# ---- mosquitto ----

@test "mosquitto with no config: mosquitto_pub/sub over the private unix socket" {
    run tether run mosquitto -- sh -c '
        mosquitto_pub --unix "$TETHER_MOSQUITTO_SOCKET" -t t/a -m hello -r
        mosquitto_sub --unix "$TETHER_MOSQUITTO_SOCKET" -t t/a -C 1 -W 5
        env | sort > "$WORK/env"
        cp "$TETHER_MOSQUITTO_DIR/mosquitto.conf" "$WORK/conf"'
    assert_status 0
    [ "$output" = hello ]
    sock="$(sed -n 's/^TETHER_MOSQUITTO_SOCKET=//p' "$WORK/env")"
    [[ $sock == "$TETHER_DIR"/*/mosquitto/mqtt.sock ]]
    grep -qx "TETHER_MOSQUITTO_URL=unix://$sock" "$WORK/env"
    run ! grep -q '^TETHER_MOSQUITTO_PORT=' "$WORK/env"
    run ! grep -q '^TETHER_MOSQUITTO_PASSWORD=' "$WORK/env"
    grep -qx 'persistence false' "$WORK/conf"
    grep -qx "listener 0 $sock" "$WORK/conf"
}

@test "mosquitto: reset drops retained messages (a restart), status is healthy" {
    eval "$(tether -q start mosquitto)"
    pid="$(cat "$TETHER_MOSQUITTO_PIDFILE")"
    mosquitto_pub --unix "$TETHER_MOSQUITTO_SOCKET" -t keep -m old -r
    [ "$(mosquitto_sub --unix "$TETHER_MOSQUITTO_SOCKET" -t keep -C 1 -W 5)" = old ]
    run tether status
    assert_status 0
    run tether reset mosquitto
    assert_status 0
    [ "$(cat "$TETHER_MOSQUITTO_PIDFILE")" != "$pid" ]
    is_gone "$pid"
    # -W: no retained message arrives, so it gives up (status 27)
    run --separate-stderr mosquitto_sub --unix "$TETHER_MOSQUITTO_SOCKET" -t keep -C 1 -W 1
    assert_status 27
    [ -z "$output" ]
    # a stopped broker still accepts on its socket: the MQTT health check sees it
    kill -STOP "$(cat "$TETHER_MOSQUITTO_PIDFILE")"
    run tether status
    kill -CONT "$(cat "$TETHER_MOSQUITTO_PIDFILE")"
    [ "$status" -ne 0 ]
    assert_output_has "[mosquitto] is unhealthy: health = raw:"
    eval "$(tether stop)"
    [ -z "${TETHER_MOSQUITTO_URL:-}" ]
}

@test "mosquitto tcp = yes: a per-instance password, hashed, never on a command line" {
    cfg="$(config tcp.ini <<'EOF'
[mosquitto]
tcp = yes
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    [ "$TETHER_MOSQUITTO_HOST" = 127.0.0.1 ]
    [ "$TETHER_MOSQUITTO_USER" = tether ]
    [ ${#TETHER_MOSQUITTO_PASSWORD} -eq 32 ]
    [ "$TETHER_MOSQUITTO_URL" = "mqtt://tether:$TETHER_MOSQUITTO_PASSWORD@127.0.0.1:$TETHER_MOSQUITTO_PORT" ]
    run ! grep -q '^TETHER_MOSQUITTO_SOCKET=' "$TETHER_MOSQUITTO_CONFIGFILE"
    mosquitto_pub -L "$TETHER_MOSQUITTO_URL/t/b" -m viaurl -r
    [ "$(mosquitto_sub -h 127.0.0.1 -p "$TETHER_MOSQUITTO_PORT" -u tether -P "$TETHER_MOSQUITTO_PASSWORD" -t t/b -C 1 -W 5)" = viaurl ]
    # anonymous and a wrong password are refused
    run mosquitto_pub -h 127.0.0.1 -p "$TETHER_MOSQUITTO_PORT" -t t/b -m x
    assert_output_has "not authorised"
    run mosquitto_pub -h 127.0.0.1 -p "$TETHER_MOSQUITTO_PORT" -u tether -P wrong -t t/b -m x
    assert_output_has "not authorised"
    # the password file holds a PBKDF2 hash, mode 0600; no process's
    # command line names the password
    [ "$(stat -c %a "$TETHER_MOSQUITTO_DIR/passwd")" = 600 ]
    grep -q '^tether:\$7\$' "$TETHER_MOSQUITTO_DIR/passwd"
    run ! grep -q "$TETHER_MOSQUITTO_PASSWORD" "$TETHER_MOSQUITTO_DIR/passwd"
    pid="$(cat "$TETHER_MOSQUITTO_PIDFILE")"
    [ "$(cat /proc/$pid/comm)" = mosquitto ]
    run ! grep -qa "$TETHER_MOSQUITTO_PASSWORD" /proc/[0-9]*/cmdline
    run tether status
    assert_status 0
    # a reset restarts it with the same password and port
    run tether reset
    assert_status 0
    run --separate-stderr mosquitto_sub -L "$TETHER_MOSQUITTO_URL/t/b" -C 1 -W 1
    assert_status 27
    [ -z "$output" ]
    mosquitto_pub -L "$TETHER_MOSQUITTO_URL/t/b" -m again
    eval "$(tether stop)"
}

@test "mosquitto: SIGKILL of the helper leaves no broker" {
    eval "$(tether -q start mosquitto)"
    pid="$(cat "$TETHER_MOSQUITTO_PIDFILE")"
    [ "$(cat /proc/$pid/comm)" = mosquitto ]
    kill -KILL "$TETHER_MOSQUITTO_CONTROL_PID"
    wait_gone "$TETHER_MOSQUITTO_CONTROL_PID"
    wait_gone "$pid"
    run tether gc
    assert_status 0
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

# ---- nginx ----

# nginx_procs PID: the pids of PID and its children (nginx's workers)
nginx_procs() { echo "$1" $(pgrep -P "$1" || true); }

@test "nginx with no config: curl over the unix socket serves the service's directory" {
    run tether run nginx -- sh -c '
        echo hello > "$TETHER_NGINX_DIR/index.html"
        curl -sf --unix-socket "$TETHER_NGINX_SOCKET" "$TETHER_NGINX_URL"
        curl -s -o /dev/null -w "%{http_code}\n" --unix-socket "$TETHER_NGINX_SOCKET" "${TETHER_NGINX_URL}nothing"
        env | sort > "$WORK/env"
        pgrep -P "$(cat "$TETHER_NGINX_PIDFILE")" > "$WORK/children" || true
        cp "$TETHER_NGINX_DIR/nginx.conf" "$TETHER_NGINX_DIR/process.conf" "$WORK/"
        ls "$TETHER_NGINX_DIR" > "$WORK/ls"'
    assert_status 0
    [ "${lines[0]}" = hello ]
    [ "${lines[1]}" = 404 ]
    sock="$(sed -n 's/^TETHER_NGINX_SOCKET=//p' "$WORK/env")"
    [[ $sock == "$TETHER_DIR"/*/nginx/nginx.sock ]]
    grep -qx "TETHER_NGINX_URL=http://localhost/" "$WORK/env"
    run ! grep -q '^TETHER_NGINX_PORT=' "$WORK/env"
    # one process: no worker to outlive it
    [ ! -s "$WORK/children" ]
    grep -qx 'master_process off;' "$WORK/process.conf"
    # every path nginx writes is in the service's directory
    for t in client_body proxy fastcgi uwsgi scgi; do
        grep -q "${t}_temp_path \"$TETHER_DIR/.*/nginx/${t}_temp\";" "$WORK/nginx.conf"
        grep -qx "${t}_temp" "$WORK/ls"
    done
    grep -q "pid \"$TETHER_DIR/.*/nginx/nginx.pid\";" "$WORK/nginx.conf"
    grep -qx 'error_log stderr;' "$WORK/nginx.conf"
}

@test "nginx: status is healthy, reset has nothing to do, SIGKILL of the helper leaves nothing" {
    eval "$(tether -q start nginx)"
    pid="$(cat "$TETHER_NGINX_PIDFILE")"
    run tether status
    assert_status 0
    echo one > "$TETHER_NGINX_DIR/f"
    run tether reset nginx
    assert_status 0
    [ "$(cat "$TETHER_NGINX_PIDFILE")" = "$pid" ]
    [ "$(curl -sf --unix-socket "$TETHER_NGINX_SOCKET" "${TETHER_NGINX_URL}f")" = one ]
    kill -STOP "$pid"
    run tether status
    kill -CONT "$pid"
    [ "$status" -ne 0 ]
    assert_output_has "[nginx] is unhealthy: health = http:/.tether-health"
    kill -KILL "$TETHER_NGINX_CONTROL_PID"
    wait_gone "$TETHER_NGINX_CONTROL_PID"
    wait_gone "$pid"
    run tether gc
    assert_status 0
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "nginx: docroot relative to the config, tcp = yes, and a reverse proxy to another service" {
    mkdir -p "$WORK/static"
    echo static-file > "$WORK/static/a.txt"
    cat >"$WORK/api.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f"api saw {self.path} host {self.headers['Host']}\n".encode())
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
    cfg="$(config web.ini <<'EOF'
[api]
command = python3 ${config_dir}/api.py ${port}
port = auto
ready = tcp

[files]
driver = nginx
docroot = static
tcp = yes

[web]
driver = nginx
after = api
proxy = http://127.0.0.1:${api.PORT}

[front]
driver = nginx
after = files
proxy = http://127.0.0.1:${files.PORT}
EOF
)"
    run --separate-stderr tether -f "$cfg" run -- sh -c '
        curl -sf "${TETHER_FILES_URL}a.txt"
        curl -sf --unix-socket "$TETHER_WEB_SOCKET" "${TETHER_WEB_URL}x/y"
        curl -sf --unix-socket "$TETHER_FRONT_SOCKET" "${TETHER_FRONT_URL}a.txt"
        env | sort > "$WORK/env"'
    assert_status 0
    [ "${lines[0]}" = static-file ]
    [ "${lines[1]}" = "api saw /x/y host localhost" ]
    [ "${lines[2]}" = static-file ]
    [[ $stderr == *"[files] nginx on TCP has no authentication"* ]]
    port="$(sed -n 's/^TETHER_FILES_PORT=//p' "$WORK/env")"
    grep -qx "TETHER_FILES_URL=http://127.0.0.1:$port/" "$WORK/env"
    run ! grep -q '^TETHER_FILES_SOCKET=' "$WORK/env"
}

@test "nginx: a proxy to a unix socket, and a proxy naming no dependency is refused at its line" {
    cfg="$(config unix.ini <<'EOF'
[back]
driver = nginx

[front]
driver = nginx
after = back
proxy = http://unix:${back.SOCKET}:
EOF
)"
    run tether -f "$cfg" run -- sh -c '
        echo back-file > "$TETHER_BACK_DIR/b.txt"
        curl -sf --unix-socket "$TETHER_FRONT_SOCKET" "${TETHER_FRONT_URL}b.txt"'
    assert_status 0
    [ "$output" = back-file ]
    cfg="$(config bad.ini <<'EOF'
[front]
driver = nginx
proxy = http://127.0.0.1:${api.PORT}
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "bad.ini:3: [front] unknown variable \${api.PORT} in proxy"
}

# start nginx with workers = 2: its master in $master, all three in $procs
start_workers() {
    cfg="$(config w.ini <<'EOF'
[nginx]
workers = 2
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    master="$(cat "$TETHER_NGINX_PIDFILE")"
    procs="$(nginx_procs "$master")"
    [ "$(echo $procs | wc -w)" = 3 ]
}

@test "nginx workers = 2: after SIGKILL of the helper and of the master, gc reaps the workers" {
    start_workers
    [ "$(curl -sf --unix-socket "$TETHER_NGINX_SOCKET" "${TETHER_NGINX_URL}.tether-health")" = ok ]
    kill -KILL "$master" "$TETHER_NGINX_CONTROL_PID"
    wait_gone "$TETHER_NGINX_CONTROL_PID"
    wait_gone "$master"
    # the workers were orphaned: only the helper's record of them finds them
    run tether gc
    assert_status 0
    for p in $procs; do wait_gone "$p"; done
    [ -z "$(ls -A "$TETHER_DIR")" ]
}

@test "nginx workers = 2: SIGKILL of the master alone, then stop: no worker is left" {
    start_workers
    kill -KILL "$master"
    wait_gone "$master"
    run tether status
    [ "$status" -ne 0 ]
    eval "$(tether stop 2>/dev/null)" || true
    for p in $procs; do wait_gone "$p"; done
}

@test "a missing server names its package; a bad option is an error at its line" {
    cfg="$(config missing.ini <<'EOF'
[mosquitto]
bin = /nonexistent

[nginx]
bin = /nonexistent
EOF
)"
    run tether -f "$cfg" run mosquitto -- true
    assert_status 125
    assert_output_has "[mosquitto] /nonexistent: no such executable file: fix the path, or install the Debian package mosquitto (apt-get install mosquitto)"
    run tether -f "$cfg" run nginx -- true
    assert_status 125
    assert_output_has "[nginx] /nonexistent: no such executable file: fix the path, or install the Debian package nginx (apt-get install nginx)"
    cfg="$(config bad.ini <<'EOF'
[mosquitto]
tcp = maybe

[nginx]
workers = 100
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "bad.ini:2: [mosquitto] tcp = maybe: say yes or no"
    assert_output_has "bad.ini:5: [nginx] workers = 100: give a whole number from 0 to 64"
}
