#!/usr/bin/env bats
# The slapd driver: OpenLDAP on ldapi:// in the service's directory, used
# through ldap-utils (ldapsearch, ldapadd, ldapwhoami, ldapdelete); the
# cached database and init_ldif; reset back to it; TCP with the admin's
# password; SIGKILL of the helper and of the owner; the failures.

load helpers

setup() {
    tether_setup
    [ -x /usr/sbin/slapd ] || command -v slapd >/dev/null ||
        skip "slapd is not installed (apt-get install slapd)"
    command -v ldapsearch >/dev/null || skip "ldapsearch is not installed (apt-get install ldap-utils)"
    # each test its own cache: a cold build is part of what it checks
    export TETHER_CACHE_DIR="$WORK/cache"
    printf '%s' "$PERSON" >"$WORK/person.ldif"
}

teardown() { tether_teardown; }

PERSON='dn: cn=alice,dc=example,dc=com
objectClass: person
cn: alice
sn: Smith
'

@test "slapd with no config: ldapsearch, ldapadd and ldapwhoami through ldap.conf's variables" {
    run --separate-stderr tether run slapd -- sh -c '
        env | sort > "$WORK/env"
        stat -c %a "$TETHER_SLAPD_DIR" "$TETHER_SLAPD_DIR/slapd.conf" > "$WORK/modes"
        cat /proc/$(cat "$TETHER_SLAPD_PIDFILE")/cmdline | tr "\0" " " > "$WORK/cmdline"
        ldapsearch -x -LLL -s base dn
        ldapwhoami -Q -Y EXTERNAL
        ldapwhoami -x -D "$TETHER_SLAPD_BINDDN" -w "$TETHER_SLAPD_PASSWORD"
        ldapadd -Q -Y EXTERNAL -f "$WORK/person.ldif"
        ldapsearch -x -LLL "(cn=alice)" sn'
    assert_status 0
    [ "${lines[0]}" = "dn: dc=example,dc=com" ]
    [ "${lines[1]}" = "dn:cn=admin,dc=example,dc=com" ]
    [ "${lines[2]}" = "dn:cn=admin,dc=example,dc=com" ]
    assert_output_has 'adding new entry "cn=alice,dc=example,dc=com"'
    assert_output_has "sn: Smith"
    sock="$(sed -n 's/^TETHER_SLAPD_SOCKET=//p' "$WORK/env")"
    [[ $sock == "$TETHER_DIR"/*/slapd/slapd.sock ]]
    enc="$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$sock")"
    grep -qx "TETHER_SLAPD_URL=ldapi://$enc" "$WORK/env"
    grep -qx "LDAPURI=ldapi://$enc" "$WORK/env"
    grep -qx "TETHER_SLAPD_BASE=dc=example,dc=com" "$WORK/env"
    grep -qx "LDAPBASE=dc=example,dc=com" "$WORK/env"
    grep -qx "TETHER_SLAPD_BINDDN=cn=admin,dc=example,dc=com" "$WORK/env"
    grep -qx "LDAPBINDDN=cn=admin,dc=example,dc=com" "$WORK/env"
    pw="$(sed -n 's/^TETHER_SLAPD_PASSWORD=//p' "$WORK/env")"
    [[ $pw =~ ^[0-9a-f]{32}$ ]]
    run ! grep -q '^TETHER_SLAPD_PORT=' "$WORK/env"
    # the socket's directory is the owner's alone; slapd.conf holds the password
    [ "$(cat "$WORK/modes")" = "$(printf '700\n600')" ]
    # the password is in the 0600 slapd.conf, never on the command line
    [[ $(cat "$WORK/cmdline") == *"-h ldapi://$enc"* ]]
    run ! grep -q "$pw" "$WORK/cmdline"
}

@test "reset restores the cached database; status is healthy; stop unsets LDAPURI" {
    out="$(tether start slapd)"
    eval "$out"
    [[ $out == *"LDAPURI="* ]]
    printf '%s' "$PERSON" | ldapadd -Q -Y EXTERNAL
    ldapmodify -Q -Y EXTERNAL <<'EOF'
dn: dc=example,dc=com
changetype: modify
replace: o
o: changed
EOF
    [ "$(ldapsearch -x -LLL '(cn=alice)' dn)" = "dn: cn=alice,dc=example,dc=com" ]
    pid="$(cat "$TETHER_SLAPD_PIDFILE")"
    run tether reset slapd
    assert_status 0
    is_gone "$pid"
    [ -z "$(ldapsearch -x -LLL '(cn=alice)' dn)" ]
    [ "$(ldapsearch -x -LLL -s base o | grep '^o:')" = "o: example" ]
    # again, and the variables (the password too) stay the same
    printf '%s' "$PERSON" | ldapadd -x -D "$LDAPBINDDN" -w "$TETHER_SLAPD_PASSWORD" >/dev/null
    run tether reset
    assert_status 0
    [ -z "$(ldapsearch -x -LLL '(cn=alice)' dn)" ]
    run tether status
    assert_status 0
    out="$(tether stop)"
    [[ $out == *LDAPURI* ]]
    eval "$out"
    [ -z "${LDAPURI:-}" ]
    [ -z "${LDAPBASE:-}" ]
    [ -z "${LDAPBINDDN:-}" ]
}

@test "suffix, schemas and init_ldif: loaded once into the cache, restored by reset" {
    cat >"$WORK/init.ldif" <<'EOF'
dn: o=test
objectClass: organization
o: test

dn: ou=people,o=test
objectClass: organizationalUnit
ou: people

dn: uid=bob,ou=people,o=test
objectClass: inetOrgPerson
objectClass: posixAccount
uid: bob
cn: Bob
sn: Jones
uidNumber: 1000
gidNumber: 1000
homeDirectory: /home/bob
EOF
    cfg="$(config ldap.ini <<'EOF'
[ldap]
driver = slapd
suffix = o=test
schemas = core cosine nis inetorgperson
init_ldif = init.ldif
EOF
)"
    eval "$(tether -f "$cfg" start)"
    [ "$TETHER_LDAP_BASE" = o=test ]
    [ "$LDAPBINDDN" = cn=admin,o=test ]
    [ "$(ldapsearch -x -LLL '(uid=bob)' homeDirectory | grep ^home)" = "homeDirectory: /home/bob" ]
    ldapdelete -Q -Y EXTERNAL uid=bob,ou=people,o=test
    [ -z "$(ldapsearch -x -LLL '(uid=bob)' dn)" ]
    run tether -f "$cfg" reset ldap
    assert_status 0
    [ "$(ldapsearch -x -LLL '(uid=bob)' dn)" = "dn: uid=bob,ou=people,o=test" ]
    eval "$(tether -f "$cfg" stop)"
    # one cache entry, used again (not rebuilt) by the next instance
    entries="$(ls -d "$TETHER_CACHE_DIR"/slapd-*[0-9a-f])"
    [ "$(echo "$entries" | wc -l)" = 1 ]
    run tether -v -f "$cfg" run -- ldapsearch -x -LLL '(uid=bob)' dn
    assert_status 0
    run ! grep -q "building the slapd cache" <<<"$output"
    # a changed init_ldif is another entry
    sed -i 's/Jones/Brown/' "$WORK/init.ldif"
    run tether -f "$cfg" run -- ldapsearch -x -LLL '(uid=bob)' sn
    assert_status 0
    assert_output_has "sn: Brown"
    [ "$(ls -d "$TETHER_CACHE_DIR"/slapd-*[0-9a-f] | wc -l)" = 2 ]
}

@test "tcp = yes: ldap://127.0.0.1:PORT wants the admin's password; anonymous sees nothing there" {
    cfg="$(config tcp.ini <<'EOF'
[slapd]
tcp = yes
EOF
)"
    run --separate-stderr tether -f "$cfg" run -- sh -c '
        env | sort > "$WORK/env"
        echo "anon:$(ldapsearch -x -LLL -H "$LDAPURI" -s base dn 2>&1)"
        ldapsearch -x -LLL -H "$LDAPURI" -D "$LDAPBINDDN" -w "$TETHER_SLAPD_PASSWORD" -s base dn
        ldapsearch -x -LLL -H "$LDAPURI" -D "$LDAPBINDDN" -w wrong -s base dn 2>&1
        ldapsearch -x -LLL -H "ldapi://$(printf %s "$TETHER_SLAPD_SOCKET" | sed "s|/|%2F|g")" -s base dn'
    assert_status 0
    [ "${lines[0]}" = "anon:No such object (32)" ]
    [ "${lines[1]}" = "dn: dc=example,dc=com" ]
    [ "${lines[2]}" = "ldap_bind: Invalid credentials (49)" ]
    [ "${lines[3]}" = "dn: dc=example,dc=com" ]
    port="$(sed -n 's/^TETHER_SLAPD_PORT=//p' "$WORK/env")"
    [ -n "$port" ]
    grep -qx "TETHER_SLAPD_URL=ldap://127.0.0.1:$port" "$WORK/env"
    grep -qx "LDAPURI=ldap://127.0.0.1:$port" "$WORK/env"
    grep -qx "TETHER_SLAPD_HOST=127.0.0.1" "$WORK/env"
}

@test "two slapd services: their own databases, no LDAPURI" {
    cfg="$(config two.ini <<'EOF'
[a]
driver = slapd

[b]
driver = slapd
suffix = dc=other
EOF
)"
    run --separate-stderr tether -f "$cfg" run -- sh -c '
        env | sort > "$WORK/env"
        ldapsearch -x -LLL -H "$TETHER_A_URL" -b "$TETHER_A_BASE" -s base dn
        ldapsearch -x -LLL -H "$TETHER_B_URL" -b "$TETHER_B_BASE" -s base dn'
    assert_status 0
    [ "${lines[0]}" = "dn: dc=example,dc=com" ]
    [ "${lines[1]}" = "dn: dc=other" ]
    run ! grep -q '^LDAP' "$WORK/env"
}

@test "SIGKILL of the helper, then gc: no slapd is left" {
    eval "$(tether start slapd)"
    pid="$(cat "$TETHER_SLAPD_PIDFILE")"
    helper="$TETHER_SLAPD_CONTROL_PID"
    [ "$(cat /proc/$pid/comm)" = slapd ]
    kill -KILL "$helper"
    wait_gone "$helper"
    wait_gone "$pid"
    run tether gc
    assert_status 0
    [ -z "$(ls -A "$TETHER_DIR")" ]
    eval "$(tether stop 2>/dev/null)" || true
    [ -z "${LDAPURI:-}" ]
}

@test "SIGKILL of the owner (tether run) leaves no slapd" {
    # the command is the test's (tether leaves it to its caller): its pid
    # is kept to end it, and bats' fd 3 closed, or bats waits for it
    "$TETHER" run slapd -- sh -c 'echo $$ > "$WORK/cmd"; cat "$TETHER_SLAPD_PIDFILE" > "$WORK/pid"; exec sleep 600' \
        >"$WORK/run.out" 2>&1 3>&- &
    owner=$!
    wait_file "$WORK/pid"
    pid="$(cat "$WORK/pid")"
    [ "$(cat /proc/$pid/comm)" = slapd ]
    kill -KILL "$owner"
    wait_gone "$pid"
    wait_for 10 sh -c '[ -z "$(ls -A "$TETHER_DIR")" ]'
    for p in $(cookie_pids); do wait_gone "$p"; done
    kill -KILL "$(cat "$WORK/cmd")"
}

@test "failures: a missing slapd names its package; bad options name FILE:LINE" {
    cfg="$(config missing.ini <<'EOF'
[slapd]
bin = /nonexistent/slapd
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "[slapd] /nonexistent/slapd: no such executable file: fix the path, or install the Debian package slapd (apt-get install slapd)"
    cfg="$(config bad.ini <<'EOF'
[slapd]
suffix = dc=a"b
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has 'bad.ini:2: [slapd] suffix = dc=a"b: write a DN of plain attr=value parts'
    cfg="$(config nobase.ini <<'EOF'
[slapd]
suffix = uid=x
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "nobase.ini:1: [slapd] suffix = uid=x: tether makes a base entry"
    cfg="$(config key.ini <<'EOF'
[slapd]
sufix = o=x
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "key.ini:2: [slapd] unknown key 'sufix'"
    assert_output_has "did you mean 'suffix'"
    cfg="$(config schema.ini <<'EOF'
[slapd]
schemas = core nosuch
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "[slapd] schemas: /etc/ldap/schema/nosuch.schema: No such file or directory"
}

@test "an init_ldif that slapadd refuses fails the start with slapadd's words" {
    printf 'dn: cn=x,dc=example,dc=com\nobjectClass: nosuchclass\ncn: x\n' >"$WORK/bad.ldif"
    cfg="$(config ldif.ini <<'EOF'
[slapd]
init_ldif = bad.ldif
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "[slapd] slapadd ("
    assert_output_has "$WORK/bad.ldif"
    assert_output_has "nosuchclass"
    # nothing half-built is left in the cache
    [ -z "$(ls -d "$TETHER_CACHE_DIR"/slapd-*[0-9a-f] 2>/dev/null)" ]
    run tether -f "$cfg" run -- true
    assert_status 125
    cfg="$(config noldif.ini <<'EOF'
[slapd]
init_ldif = missing.ldif
EOF
)"
    run tether -f "$cfg" run -- true
    assert_status 125
    assert_output_has "[slapd] cannot read init_ldif = $WORK/missing.ldif"
}
