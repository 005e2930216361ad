#!/bin/bash
# Floor for `tether run nginx -- true`: exec nginx (one process, as the
# recipe's default) on a unix socket in a fresh directory with the recipe's
# config, GET /.tether-health until it answers 200, SIGTERM, wait, remove.
set -e
probe=$1
dir=$(mktemp -d /dev/shm/floor-nginx.XXXXXX)
cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log stderr;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    server {
        listen unix:$dir/nginx.sock;
        server_name localhost;
        location = /.tether-health { access_log off; return 200 "ok\n"; }
        root $dir;
    }
}
CONF
nginx -e stderr -p "$dir/" -c "$dir/nginx.conf" >/dev/null 2>&1 &
pid=$!
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
"$probe" unix "$dir/nginx.sock" 'GET /.tether-health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' 'HTTP/1.1 200'
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
