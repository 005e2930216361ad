#!/usr/bin/env bats
# tests/check.sh's second round as a throwaway user (make check as root,
# so CI): the targets after --as-user run as a new user with a clean
# environment, both rounds are counted, and the user with all it made goes
# at the end: after a clean round, after one that left things, and after a
# SIGTERM in mid round.  A stand-in for make (MAKE=) reports what it sees,
# so that these tests take seconds.  Root only.

load helpers

setup() {
    tether_setup
    [ "$(id -u)" = 0 ] || skip "needs root: the round creates a user"
    # the stand-in must be reachable by the new user
    chmod 0711 "$WORK"
    mkdir -m 0755 "$WORK/bin"
    mkdir -m 1777 "$WORK/drop"
    cat >"$WORK/bin/make" <<EOF
#!/bin/sh
# make [-C DIR] --no-print-directory TARGET
[ "\$1" = -C ] && dir=\$2
for a; do t=\$a; done
case \$t in
report)
    echo "ok 1 \$t uid=\$(id -u) user=\$(id -un) home=\$HOME xdg=\${XDG_RUNTIME_DIR-unset} dir=\$dir"
    [ -z "\$dir" ] || [ ! -r "\$dir/tests/check.sh" ] || echo "ok 2 the copy is readable" ;;
leave)
    [ "\$(id -u)" != 0 ] || exit 1 # only ever as the throwaway user
    setsid sleep 1000 </dev/null >/dev/null 2>&1 &
    touch /tmp/tether-check-leftover.\$\$
    ipcmk -M 4096 >/dev/null
    echo "ok 1 left three things" ;;
hang)
    id -u >$WORK/drop/hang
    exec sleep 1000 ;;
*) echo "ok 1 \$t" ;;
esac
EOF
    chmod 0755 "$WORK/bin/make"
}

check() { env MAKE="$WORK/bin/make" "$ROOT/tests/check.sh" "$@"; }

# the user a round made, from its first line: NAME UID
round_user() { sed -n 's/^check: as-user round: user \([^ ]*\) (uid \([0-9]*\)).*/\1 \2/p' <<<"$1"; }

# nothing of user NAME (uid UID) is left: the user, its group, processes,
# files in the shared temporary directories, System V segments
assert_user_gone() {
    local name="$1" uid="$2" left
    ! getent passwd "$name" || { echo "user $name is still there" >&2; return 1; }
    ! getent group "$name" || { echo "group $name is still there" >&2; return 1; }
    left="$(pgrep -a -u "$uid")$(find /tmp /var/tmp /dev/shm -maxdepth 1 -user "$uid")"
    left+="$(awk -v u="$uid" 'NR > 1 && ($8 == u || $10 == u)' /proc/sysvipc/shm)"
    [ -z "$left" ] || { printf 'left of uid %s:\n%s\n' "$uid" "$left" >&2; return 1; }
}

@test "check.sh as root: the --as-user targets run again as a new user, both rounds count, the user goes" {
    run check report --as-user report
    assert_status 0
    assert_output_has "ok 1 report uid=0 "
    line="$(grep '^ok 1 report uid=[1-9]' <<<"$output")"
    [[ $line == *" user=tether-check-"* ]]
    [[ $line == *" xdg=unset "* ]]
    [[ $line == *" home=/tmp/tether-check."*/home" "* ]]
    assert_output_has "ok 2 the copy is readable"
    assert_output_has "check: 3 passed, 0 failed"
    read -r name uid <<<"$(round_user "$output")"
    [ -n "$name" ] && [ "$uid" -gt 0 ]
    dir="${line##* dir=}"
    [ ! -e "${dir%/src}" ]
    assert_user_gone "$name" "$uid"
}

@test "check.sh as root: what the user round left fails it, and goes" {
    run check --as-user leave
    assert_status 1
    read -r name uid <<<"$(round_user "$output")"
    assert_output_has "LEFTOVER of $name: process"
    assert_output_has "sleep 1000"
    assert_output_has "LEFTOVER of $name: file /tmp/tether-check-leftover."
    assert_output_has "LEFTOVER of $name: System V shm id"
    assert_output_has "check: 1 passed, 1 failed"
    assert_user_gone "$name" "$uid"
}

@test "check.sh as root: SIGTERM in mid round removes the user and stops its processes" {
    # env execs check.sh: $! is its pid
    env MAKE="$WORK/bin/make" "$ROOT/tests/check.sh" --as-user hang >"$WORK/out" 2>&1 &
    pid=$!
    wait_file "$WORK/drop/hang" 60
    uid=$(cat "$WORK/drop/hang")
    read -r name _ <<<"$(round_user "$(cat "$WORK/out")")"
    [ -n "$name" ]
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 143 ]
    assert_user_gone "$name" "$uid"
}

@test "check.sh as a normal user: no second round" {
    run setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env MAKE="$WORK/bin/make" "$ROOT/tests/check.sh" report --as-user report
    assert_status 0
    assert_output_has "no second round"
    assert_output_has "check: 1 passed, 0 failed"
}
