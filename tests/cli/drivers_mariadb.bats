#!/usr/bin/env bats
# The mariadb driver: no config needed, the mariadb client connects with no
# options, init_sql is loaded once and a reset brings it back, tcp = yes
# with a per-instance password that nobody else has, status, gc after a
# SIGKILLed helper, and the failures a user can cause.

load helpers

setup() {
    tether_setup
    [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null ||
        skip "mariadbd is not installed (apt-get install mariadb-server)"
    command -v mariadb >/dev/null || skip "the mariadb client is not installed (apt-get install mariadb-client)"
}

teardown() { tether_teardown; }

schema() {
    config schema.sql <<'EOF'
/*!40101 SET NAMES utf8mb4 */;
CREATE TABLE t1 (id int auto_increment primary key, v text);
INSERT INTO t1 (v) VALUES ('init-a'), ('init-b');
DELIMITER ;;
CREATE PROCEDURE two() BEGIN SELECT 2; END ;;
DELIMITER ;
CREATE VIEW v1 AS SELECT v FROM t1;
EOF
}

@test "mariadb with no config file: the mariadb client needs no options, over the private socket" {
    run tether -q run mariadb -- sh -c '
        mariadb -N -e "SELECT CONCAT(CURRENT_USER(), \" \", DATABASE(), \" \", @@skip_networking, \" \", @@character_set_server)" "$TETHER_MARIADB_DATABASE"
        env | sort > "$WORK/env"
        stat -c %a "$TETHER_MARIADB_DIR" > "$WORK/mode"
        stat -c %U "/proc/$(cat "$TETHER_MARIADB_PIDFILE")" > "$WORK/owner"'
    assert_status 0
    [ "$output" = "$(id -un)@localhost tether ON utf8mb4" ]
    sock="$(sed -n 's/^TETHER_MARIADB_SOCKET=//p' "$WORK/env")"
    [[ $sock == "$TETHER_DIR"/*/mariadb/mysqld.sock ]]
    grep -qx "TETHER_MARIADB_URL=mysql://$(id -un)@localhost/tether?unix_socket=$sock" "$WORK/env"
    grep -qx "MYSQL_UNIX_PORT=$sock" "$WORK/env"
    grep -qx "TETHER_MARIADB_USER=$(id -un)" "$WORK/env"
    grep -qx "TETHER_MARIADB_HOST=localhost" "$WORK/env"
    grep -qx "TETHER_MARIADB_DATABASE=tether" "$WORK/env"
    grep -qx "TETHER_MARIADB_PASSWORD=" "$WORK/env"
    grep -q "^MYSQL_HOME=$TETHER_DIR/.*/mariadb.client$" "$WORK/env"
    run ! grep -q '^TETHER_MARIADB_PORT=' "$WORK/env"
    run ! grep -q '^MYSQL_PWD=' "$WORK/env"
    [ "$(cat "$WORK/mode")" = 700 ]
    # as root it runs as mysql: a test's SELECT ... INTO OUTFILE must not write as root
    if [ "$(id -u)" = 0 ]; then [ "$(cat "$WORK/owner")" = mysql ]; else [ "$(cat "$WORK/owner")" = "$(id -un)" ]; fi
}

@test "init_sql is loaded once; reset drops what a test made and brings the init state back" {
    cfg="$(config m.ini <<EOF
[mariadb]
init_sql = $(schema)
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    mariadb tether -e "INSERT INTO t1 (v) VALUES ('test'); CREATE TABLE t2 (x int); CREATE DATABASE mine"
    [ "$(mariadb -N tether -e 'SELECT COUNT(*) FROM t1')" = 3 ]
    # a session left in a transaction, holding a lock, ends with the reset
    mariadb tether -e "BEGIN; INSERT INTO t1 (v) VALUES ('held'); SELECT SLEEP(600)" >/dev/null 2>&1 &
    held=$!
    wait_for 10 sh -c '[ "$(mariadb -N -e "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE \"SELECT SLEEP%\"")" = 1 ]'
    run tether reset mariadb
    assert_status 0
    wait_gone "$held"
    [ "$(mariadb -N tether -e 'SELECT GROUP_CONCAT(v ORDER BY id) FROM t1')" = "init-a,init-b" ]
    [ "$(mariadb -N tether -e 'SHOW TABLES' | tr '\n' ' ')" = "t1 v1 " ]
    [ "$(mariadb -N tether -e 'CALL two()')" = 2 ]
    [ "$(mariadb -N tether -e 'SELECT COUNT(*) FROM v1')" = 2 ]
    run mariadb -N -e "SHOW DATABASES LIKE 'mine'"
    [ -z "$output" ]
    # auto_increment starts again
    mariadb tether -e "INSERT INTO t1 (v) VALUES ('next')"
    [ "$(mariadb -N tether -e "SELECT id FROM t1 WHERE v = 'next'")" = 3 ]
    run tether status
    assert_status 0
    eval "$(tether stop)"
}

@test "reset after reset: rows, AUTO_INCREMENT, init rows, schema, routines and triggers all come back" {
    cfg="$(config m.ini <<EOF
[mariadb]
init_sql = $(schema)
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    q() { mariadb -N tether -e "$1"; }
    q "CREATE TABLE e1 (id int auto_increment primary key)"
    tether -q reset mariadb # a full reset, which records the init state
    [ "$(q 'SHOW TABLES' | tr '\n' ' ')" = "t1 v1 " ]
    # init rows changed, deleted, added to and taken back
    q "UPDATE t1 SET v = 'changed' WHERE id = 1"
    tether -q reset mariadb
    [ "$(q 'SELECT GROUP_CONCAT(v ORDER BY id) FROM t1')" = "init-a,init-b" ]
    q "DELETE FROM t1"
    tether -q reset mariadb
    [ "$(q 'SELECT GROUP_CONCAT(v ORDER BY id) FROM t1')" = "init-a,init-b" ]
    q "INSERT INTO t1 (v) VALUES ('x'); DELETE FROM t1 WHERE v = 'x'"
    tether -q reset mariadb
    q "INSERT INTO t1 (v) VALUES ('next')"
    [ "$(q "SELECT id FROM t1 WHERE v = 'next'")" = 3 ]
    tether -q reset mariadb
    # schema, triggers, routines, views
    q "ALTER TABLE t1 ADD COLUMN w int"
    tether -q reset mariadb
    [ "$(q "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'tether' AND TABLE_NAME = 't1'")" = 2 ]
    q "CREATE TRIGGER tr BEFORE INSERT ON t1 FOR EACH ROW SET NEW.v = 'trig'"
    tether -q reset mariadb
    [ "$(q "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'tether'")" = 0 ]
    q "DROP PROCEDURE two; CREATE PROCEDURE two() SELECT 3"
    tether -q reset mariadb
    [ "$(q 'CALL two()')" = 2 ]
    q "CREATE OR REPLACE VIEW v1 AS SELECT 1"
    tether -q reset mariadb
    [ "$(q 'SELECT COUNT(*) FROM v1')" = 2 ]
    eval "$(tether stop)"
}

@test "reset after reset: rows in init-empty tables go, AUTO_INCREMENT starts again, foreign keys or not" {
    cfg="$(config e.ini <<EOF
[mariadb]
init_sql = $(config empty.sql <<'SQL'
CREATE TABLE parent (id int auto_increment primary key);
CREATE TABLE child (id int auto_increment primary key, p int, FOREIGN KEY (p) REFERENCES parent (id));
CREATE TABLE other (id int auto_increment primary key);
CREATE TABLE seeded (v text);
INSERT INTO seeded VALUES ('s');
SQL
)
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    q() { mariadb -N tether -e "$1"; }
    tether -q reset mariadb
    # the fast reset makes only the tables a test wrote to anew
    ino() { stat -c %i "$TETHER_MARIADB_DIR/data/tether/seeded.ibd"; }
    before=$(ino)
    for round in 1 2 3; do
        q "INSERT INTO parent VALUES (); INSERT INTO child (p) VALUES (1); INSERT INTO other VALUES (), ()"
        tether -q reset mariadb
        [ "$(q 'SELECT (SELECT COUNT(*) FROM parent) + (SELECT COUNT(*) FROM child) + (SELECT COUNT(*) FROM other)')" = 0 ]
        [ "$(q 'SELECT GROUP_CONCAT(v) FROM seeded')" = s ]
    done
    q "INSERT INTO other VALUES (); DELETE FROM other"
    tether -q reset mariadb
    q "INSERT INTO other VALUES ()"
    [ "$(q 'SELECT id FROM other')" = 1 ]
    [ "$(ino)" = "$before" ]
    # a new worker (the last one left: killed here, or idle for 10 s)
    # starts from what the helper kept of the init state
    worker=$(ps --ppid "$TETHER_MARIADB_CONTROL_PID" -o pid=,stat=,comm= | awk '$3 != "mariadbd" && $2 !~ /Z/ {print $1}')
    [ -n "$worker" ]
    kill -KILL $worker
    for p in $worker; do wait_gone "$p"; done
    tether -q reset mariadb
    [ "$(q 'SELECT COUNT(*) FROM other')" = 0 ]
    [ "$(ino)" = "$before" ]
    eval "$(tether stop)"
}

@test "tcp = yes: the URL's password works, nothing else gets in, and it is on no command line" {
    cfg="$(config tcp.ini <<'EOF'
[mariadb]
tcp = yes
EOF
)"
    eval "$(tether -q -f "$cfg" start)"
    port=$TETHER_MARIADB_PORT pw=$TETHER_MARIADB_PASSWORD user=$TETHER_MARIADB_USER
    [ ${#pw} = 32 ]
    [ "$TETHER_MARIADB_URL" = "mysql://$user:$pw@127.0.0.1:$port/tether" ]
    [ "$MYSQL_HOST" = 127.0.0.1 ] && [ "$MYSQL_TCP_PORT" = "$port" ] && [ "$MYSQL_PWD" = "$pw" ]
    # the client with no options, over TCP
    [ "$(mariadb -N -e 'SELECT CURRENT_USER()')" = "$user@127.0.0.1" ]
    [ "$(env -u MYSQL_PWD -u MYSQL_HOME mariadb --no-defaults -h 127.0.0.1 -P "$port" -u "$user" -p"$pw" -N -e 'SELECT 1')" = 1 ]
    # no password, a wrong one, another account (install-db's root@127.0.0.1): refused
    run env -u MYSQL_PWD -u MYSQL_HOME mariadb --no-defaults -h 127.0.0.1 -P "$port" -u "$user" -e 'SELECT 1'
    assert_status 1
    assert_output_has "Access denied"
    run env -u MYSQL_PWD -u MYSQL_HOME mariadb --no-defaults -h 127.0.0.1 -P "$port" -u "$user" -pwrong -e 'SELECT 1'
    assert_status 1
    run env -u MYSQL_PWD -u MYSQL_HOME mariadb --no-defaults -h 127.0.0.1 -P "$port" -u nobody -e 'SELECT 1'
    assert_status 1
    [ "$(mariadb -N -e "SELECT COUNT(*) FROM mysql.user WHERE user NOT IN ('$user', 'mariadb.sys')")" = 0 ]
    pid="$(cat "$TETHER_MARIADB_PIDFILE")"
    ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$pw"
    [ "$(stat -c %a "$TETHER_MARIADB_DIR/init.sql")" = 600 ]
    [ "$(stat -c %a "$MYSQL_HOME/my.cnf")" = 600 ]
    run tether reset mariadb
    assert_status 0
    [ "$(mariadb -N -e 'SELECT 1')" = 1 ]
    eval "$(tether stop)"
}

@test "SIGKILL of the helper, then gc: no mariadbd is left" {
    eval "$(tether -q start mariadb)"
    pid="$(cat "$TETHER_MARIADB_PIDFILE")"
    helper="$TETHER_MARIADB_CONTROL_PID"
    [ "$(cat /proc/$pid/comm)" = mariadbd ]
    run tether status
    assert_status 0
    kill -KILL "$helper"
    wait_gone "$helper"
    run tether gc
    assert_status 0
    wait_gone "$pid"
    [ -z "$(ls -A "$TETHER_DIR")" ]
    eval "$(tether stop 2>/dev/null)" || true
    [ -z "${MYSQL_UNIX_PORT:-}" ] && [ -z "${MYSQL_HOME:-}" ]
}

@test "status says what is wrong when the server is gone; an SQL error in init_sql names the file" {
    eval "$(tether -q start mariadb)"
    pid="$(cat "$TETHER_MARIADB_PIDFILE")"
    kill -STOP "$pid"
    run tether status
    kill -CONT "$pid"
    assert_status 1
    eval "$(tether stop)"
    bad="$(config bad.sql <<'EOF'
CREATE TABLE ok (x int);
CREATE TABLE broken (x nonsense);
EOF
)"
    cfg="$(config bad.ini <<EOF
[mariadb]
init_sql = $bad
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "loading init_sql = $bad with the mariadb client failed"
    assert_output_has "at line 2: Unknown data type: 'nonsense'"
}

@test "bad options are FILE:LINE errors; a missing server names its package" {
    cfg="$(config opts.ini <<'EOF'
[mariadb]
tcp = maybe
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "opts.ini:2: [mariadb] tcp = maybe"
    cfg="$(config opts2.ini <<'EOF'
[mariadb]
setting.datadir = /elsewhere
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "opts2.ini:2: [mariadb] setting.datadir is set by tether"
    cfg="$(config opts3.ini <<'EOF'
[mariadb]
database = no way
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "opts3.ini:2: [mariadb] database = no way"
    cfg="$(config missing.ini <<'EOF'
[mariadb]
bin = /nonexistent
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "install the Debian package mariadb-server (apt-get install mariadb-server)"
}

@test "setting.NAME reaches mariadbd; two mariadb services get no native variables" {
    cfg="$(config two.ini <<'EOF'
[a]
driver = mariadb
setting.max_connections = 17

[b]
driver = mariadb
database = other
EOF
)"
    run tether -q -f "$cfg" run -- sh -c '
        mariadb -S "$TETHER_A_SOCKET" -N -e "SELECT @@max_connections"
        mariadb -S "$TETHER_B_SOCKET" -N -e "SELECT DATABASE()" "$TETHER_B_DATABASE"
        env > "$WORK/env"'
    assert_status 0
    [ "$output" = "$(printf '17\nother')" ] || { echo "$output"; false; }
    run ! grep -q '^MYSQL_UNIX_PORT=' "$WORK/env"
}

@test "_URL works as it is with SQLAlchemy (mysqlclient, PyMySQL), on the socket and over TCP" {
    "$PY" -c 'import sqlalchemy, MySQLdb, pymysql' 2>/dev/null ||
        skip "no SQLAlchemy, mysqlclient or PyMySQL (apt-get install python3-sqlalchemy python3-mysqldb python3-pymysql)"
    script="$(config sa.py <<'EOF'
import os, sqlalchemy
u = os.environ["TETHER_MARIADB_URL"]
for url in (u, u.replace("mysql://", "mysql+pymysql://", 1)):
    with sqlalchemy.create_engine(url).connect() as c:
        print(c.execute(sqlalchemy.text("SELECT DATABASE()")).scalar())
EOF
)"
    run tether -q run mariadb -- "$PY" "$script"
    assert_status 0
    [ "$output" = "$(printf 'tether\ntether')" ]
    cfg="$(config tcp.ini <<'EOF'
[mariadb]
tcp = yes
EOF
)"
    run tether -q -f "$cfg" run -- "$PY" "$script"
    assert_status 0
    [ "$output" = "$(printf 'tether\ntether')" ]
}

@test "SIGKILL of the owner of tether run: the helper takes mariadbd with it" {
    "$TETHER" -q run mariadb -- sh -c 'cat "$TETHER_MARIADB_PIDFILE" > "$WORK/pid"; echo $$ > "$WORK/cmd"; echo "$TETHER_MARIADB_CONTROL_PID" > "$WORK/helper"; exec sleep 600' 3>&- &
    owner=$!
    wait_file "$WORK/helper" 60
    pid=$(cat "$WORK/pid") helper=$(cat "$WORK/helper")
    kill -KILL "$owner"
    wait_gone "$helper" 20
    wait_gone "$pid" 20
    # the command itself is the owner's child, not tether's: ours to end
    kill -KILL "$(cat "$WORK/cmd")"
    wait_gone "$(cat "$WORK/cmd")"
}

@test "SIGKILL of the helper while it builds the cache: nothing is left, and the next start builds it" {
    export TETHER_CACHE_DIR="$WORK/cache"
    chmod 0711 "$WORK" # as root, mariadbd's user builds there
    "$TETHER" -q start mariadb >"$WORK/start.out" 2>&1 3>&- &
    # the helper: the tether-helper of this cache whose parent is not one
    # (its build job is a tether-helper too, a level down)
    find_helper() {
        local p env parent
        for p in $(pgrep -x tether-helper); do
            env=$(cat "/proc/$p/environ" 2>/dev/null | tr '\0' '\n') || true
            grep -qx "TETHER_CACHE_DIR=$WORK/cache" <<<"$env" || continue
            parent=$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ') || true
            if [ -n "$parent" ] && [ "$(ps -o comm= -p "$parent" 2>/dev/null)" != tether-helper ]; then
                echo "$p"
                return 0
            fi
        done
        return 0
    }
    wait_for 60 pgrep -f -- "--datadir=$WORK/cache/" >/dev/null
    helper=$(find_helper)
    [ -n "$helper" ] || { cat "$WORK/start.out" >&2; false; }
    kill -KILL "$helper"
    wait_gone "$helper"
    no_build() { ! pgrep -f -- "[-]-datadir=$WORK/cache/" >/dev/null; }
    wait_for 20 no_build
    run tether gc
    assert_status 0
    run tether -q run mariadb -- mariadb -N -e 'SELECT 1'
    assert_status 0
    [ "$output" = 1 ]
}
