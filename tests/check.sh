#!/bin/bash
# check.sh TARGET... [--as-user TARGET...]: runs every suite of `make check`
# (the make targets given), keeps going after a failure so that one run
# shows everything, and ends with one line that counts the tests of all
# suites and rounds: "check: N passed, M failed".
#
# The targets after --as-user run a second time as a normal user when we
# are root (CI is): a throwaway user (tether-check-XXXXXX, no login shell,
# home in a temporary directory) builds and tests a copy of the tree it
# owns.  The user, its copy, its processes, its IPC objects and its files in
# /tmp, /var/tmp and /dev/shm go at the end, also after SIGINT or SIGTERM;
# what its suites left there fails the round.  Not root, the first round
# already ran as a normal user: there is no second.
set -u
MAKE=${MAKE:-make}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
logs=$(mktemp -d)
passed=0 failed=0 bad_suites=()
user_name="" user_uid="" user_tmp=""

# ---- the throwaway user ----

user_create() {
    user_name="tether-check-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
    user_tmp=$(mktemp -d /tmp/tether-check.XXXXXX) || return 1
    chmod 0755 "$user_tmp"
    useradd --home-dir "$user_tmp/home" --no-create-home --shell /usr/sbin/nologin \
        --user-group --comment "tether make check, removed at its end" "$user_name" || {
        user_name=""
        return 1
    }
    user_uid=$(id -u "$user_name")
    mkdir -m 0700 "$user_tmp/home" "$user_tmp/src"
    user_copy_tree "$user_tmp/src" || return 1
    chown -R "$user_name:" "$user_tmp/home" "$user_tmp/src"
    echo "check: as-user round: user $user_name (uid $user_uid), tree $user_tmp/src" >&2
}

# the sources, without build directories: what git knows (tracked, and new
# files not ignored), else everything but build*/
user_copy_tree() {
    # shellcheck disable=SC2016 # the inner sh expands $f
    if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
            xargs -0 -r sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done' sh |
            tar --null -T - -cf -) | tar -C "$1" -xf -
    else
        tar -C "$ROOT" --exclude=./build --exclude='./build-*' -cf - . | tar -C "$1" -xf -
    fi
}

# run make TARGET in the copy as the user, with a clean environment: no
# XDG_RUNTIME_DIR, a home of its own, no stdin (as in CI); but make's own
# flags (`make -n check` runs nothing there either)
user_make() {
    setpriv --reuid="$user_uid" --regid="$(id -g "$user_name")" --init-groups --inh-caps=-all \
        env -i HOME="$user_tmp/home" USER="$user_name" LOGNAME="$user_name" SHELL=/bin/sh \
        PATH=/usr/local/bin:/usr/bin:/bin LANG="${LANG:-C.UTF-8}" ${CI:+CI="$CI"} \
        ${MAKEFLAGS:+MAKEFLAGS="$MAKEFLAGS"} \
        "$MAKE" -C "$user_tmp/src" --no-print-directory "$1" </dev/null
}

# what the user's suites left: processes, System V objects, files in the
# shared temporary directories (its PostgreSQL cache is meant to stay, and
# its default state directory, empty)
user_leftovers() {
    local kind
    # not zombies: dead, they hold nothing, and their reaping is init's
    # business (a daemonised helper's parent is init, which may be slow)
    ps -o pid=,stat=,args= -u "$user_uid" | awk '$2 !~ /^Z/' | sed 's/^ */process /'
    for kind in shm sem msg; do
        user_ipc "$kind" | sed "s/^/System V $kind id /"
    done
    find /tmp /var/tmp /dev/shm -xdev -mindepth 1 -maxdepth 1 -user "$user_uid" \
        ! -path "/dev/shm/tether-cache-$user_uid" \
        ! \( -path "/dev/shm/tether-$user_uid" -empty \) 2>/dev/null | sed 's/^/file /'
}

# ids of the user's System V objects of kind $1 (shm, sem, msg): owned or
# created by it
user_ipc() {
    awk -v u="$user_uid" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["uid"] == u || $c["cuid"] == u { print $2 }' "/proc/sysvipc/$1" 2>/dev/null
}

user_remove() {
    local i kind
    [ -n "$user_name" ] || return 0
    for i in $(seq 100); do
        pkill -KILL -u "$user_uid" 2>/dev/null || break
        sleep 0.1
    done
    for kind in shm:-m sem:-s msg:-q; do
        for i in $(user_ipc "${kind%%:*}"); do ipcrm "${kind#*:}" "$i" 2>/dev/null; done
    done
    find /tmp /var/tmp /dev/shm -xdev -mindepth 1 -maxdepth 1 -user "$user_uid" \
        -exec rm -rf -- {} + 2>/dev/null
    userdel "$user_name" 2>/dev/null || echo "check: userdel $user_name failed" >&2
    getent group "$user_name" >/dev/null && groupdel "$user_name" 2>/dev/null
    rm -rf -- "$user_tmp"
    user_name=""
}

# shellcheck disable=SC2317 # run by the trap
cleanup() {
    user_remove
    rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the suites ----

# count one suite's log: meson ("Ok: N" / "Fail: N"), bats (ok / not ok),
# pytest ("1 failed, 83 passed in 57.82s"), chaos and valgrind ("chaos: N
# passed, M failed").  Only summary lines, which start with a count: a
# failing test's message may quote another pytest run's output ("E   3
# failed"), which is no count of ours.
count() { # LABEL RC LOG
    local p f summary
    summary=$(grep -E '^(=+ )?([a-z-]+: )?[0-9]+ (passed|failed|errors?)\b' "$3")
    p=$(($(grep -E '^Ok: +[0-9]+' "$3" | awk '{s+=$2} END {print s+0}') \
        + $(grep -cE '^ok [0-9]+' "$3") \
        + $(printf '%s\n' "$summary" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')))
    f=$(($(grep -E '^Fail: +[0-9]+' "$3" | awk '{s+=$2} END {print s+0}') \
        + $(grep -cE '^not ok [0-9]+' "$3") \
        + $(printf '%s\n' "$summary" | grep -oE '[0-9]+ (failed|errors?)' |
            awk '{s+=$1} END {print s+0}')))
    if [ "$2" -ne 0 ]; then
        bad_suites+=("$1")
        [ "$f" -gt 0 ] || f=1 # a suite that failed without saying why counts once
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

# all of it in a function, read whole before it runs: an edit of this file
# during a long check cannot derail the running one
main() {
    local target log rc maker left t0
    targets=() user_targets=()
    while [ $# -gt 0 ]; do
        case $1 in
        --as-user) shift; user_targets=("$@"); break ;;
        *) targets+=("$1"); shift ;;
        esac
    done

    for target in "${targets[@]}"; do
        echo "=== $target" >&2
        t0=$SECONDS
        "$MAKE" --no-print-directory "$target" 2>&1 | tee "$logs/$target.log"
        count "$target" "${PIPESTATUS[0]}" "$logs/$target.log"
        echo "=== $target: $((SECONDS - t0)) s" >&2
    done

    if [ ${#user_targets[@]} -gt 0 ] && [ "$(id -u)" != 0 ]; then
        echo "check: ${user_targets[*]} ran as $(id -un) (uid $(id -u)), not root: no second round" >&2
    elif [ ${#user_targets[@]} -gt 0 ]; then
        log="$logs/as-user.log"
        user_create >"$log" 2>&1
        rc=$?
        cat "$log" >&2
        if [ "$rc" -ne 0 ]; then
            count as-user "$rc" "$log"
        else
            for target in "${user_targets[@]}"; do
                echo "=== $target (as $user_name)" >&2
                t0=$SECONDS
                log="$logs/$target.as-user.log"
                # in the background, so that a SIGTERM's trap runs at once; the
                # log through a file, so that a process the suite left holding
                # its stdout cannot keep the round waiting
                : >"$log" # before tail opens it (the job below makes it late)
                user_make "$target" >"$log" 2>&1 &
                maker=$!
                tail -n +1 -f --pid="$maker" "$log" &
                wait "$maker"
                rc=$?
                wait $!
                count "$target (as $user_name)" "$rc" "$log"
                echo "=== $target (as $user_name): $((SECONDS - t0)) s" >&2
            done
            left=$(user_leftovers)
            if [ -n "$left" ]; then
                printf '%s\n' "$left" | sed "s/^/LEFTOVER of $user_name: /" | tee "$logs/as-user.log"
                count "as-user leftovers" 1 "$logs/as-user.log"
            fi
        fi
        user_remove
    fi

    if [ ${#bad_suites[@]} -gt 0 ]; then
        # the failures once more, last, where a truncated CI log still has them
        for target in "${bad_suites[@]}"; do
            log="$logs/${target%% (as *}.log"
            case $target in *"(as "*) log="$logs/${target%% (as *}.as-user.log" ;; as-user*) log="$logs/as-user.log" ;; esac
            grep -E '^not ok |LEAKED|LEFTOVER|^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT)|\[  (FAILED|ERROR)|^FAILED |Error [0-9]' \
                "$log" | tail -n 20 | sed "s/^/check: $target: /" >&2
        done
        echo "check: failing suites: ${bad_suites[*]}" >&2
    fi
    echo "check: $passed passed, $failed failed"
    [ ${#bad_suites[@]} -eq 0 ]
}

main "$@"
exit
