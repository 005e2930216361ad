#!/bin/bash
# Floor for `tether run slapd -- true` and for `tether reset slapd` (a
# restart: the same kill, copy, start and readiness): copy a cached mdb
# database (tether's own cache entry, the same bytes), write tether's
# slapd.conf (lib/drivers/slapd.c: the four default schemas, back_mdb,
# rootpw), exec slapd on ldapi:// in a fresh directory, wait for an
# anonymous bind to succeed (probe ldapi), SIGKILL, wait, remove.
set -e
cached=$1 probe=$2
dir=$(mktemp -d /dev/shm/floor-slapd.XXXXXX)
pid=
# interrupted (hyperfine killed, Ctrl-C): leave no server or directory
trap 'if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
cp -a "$cached" "$dir/data"
s=/etc/ldap/schema
cat >"$dir/slapd.conf" <<CONF
include "$s/core.schema"
include "$s/cosine.schema"
include "$s/inetorgperson.schema"
include "$s/nis.schema"
modulepath /usr/lib/ldap
moduleload back_mdb
authz-regexp "^.*,cn=peercred,cn=external,cn=auth$" "cn=admin,dc=example,dc=com"
allow bind_anon_dn
database mdb
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw 0123456789abcdef0123456789abcdef
directory "$dir/data"
maxsize 67108864
dbnosync
access to * by sockurl.regex="^ldapi://" read by * none
CONF
/usr/sbin/slapd -dnone -f "$dir/slapd.conf" -h "ldapi://${dir//\//%2F}%2Fslapd.sock" >/dev/null 2>&1 &
pid=$!
"$probe" ldapi "$dir/slapd.sock"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
