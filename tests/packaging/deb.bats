#!/usr/bin/env bats
# `make deb`: the package has what make install installs, and once
# installed with dpkg -i, the README's tour works from /usr/bin; dpkg -r
# takes it all away again.  Root only (dpkg -i), and only on a machine
# whose own tether package it would not replace.
load ../cli/helpers

# bats 1.8 cannot skip in setup_file: it says why, and each test skips
setup_file() {
    if [ "$(id -u)" != 0 ]; then
        export DEB_SKIP="dpkg -i needs root (make check's as-user round skips the package)"
        return 0
    fi
    if dpkg-query -W -f '${Status}' tether 2>/dev/null | grep -q installed; then
        export DEB_SKIP="a tether package is installed on this machine: not replacing it"
        return 0
    fi
    ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    DIST="$BATS_FILE_TMPDIR/dist"
    # the unit suite, which dpkg-buildpackage would run, is make check's own
    DEB_BUILD_OPTIONS=nocheck make -C "$ROOT" --no-print-directory deb DIST="$DIST" \
        >"$BATS_FILE_TMPDIR/deb.log" 2>&1 || { tail -n 40 "$BATS_FILE_TMPDIR/deb.log" >&3; return 1; }
    DEB=$(echo "$DIST"/tether_*.deb)
    export ROOT DEB
}

teardown_file() {
    # whatever a test did, the package goes (it was not there before)
    if [ -n "${DEB:-}" ] && dpkg-query -W tether >/dev/null 2>&1; then
        dpkg -P tether >/dev/null
    fi
}

setup() {
    [ -z "${DEB_SKIP:-}" ] || skip "$DEB_SKIP"
    tether_setup
}

# nothing of the build's or of /usr/local on the paths
sys_env() { env -u LD_LIBRARY_PATH -u TETHER_BIN -u PYTHONPATH PATH=/usr/bin:/bin "$@"; }

@test "the package holds the program, library, header, pkg-config file, man page, completions and Python module" {
    run dpkg-deb -c "$DEB"
    for f in usr/bin/tether usr/include/tether/tether.h usr/lib/x86_64-linux-gnu/libtether.so.0 \
        usr/lib/x86_64-linux-gnu/libtether.so usr/lib/x86_64-linux-gnu/pkgconfig/tether.pc \
        usr/share/man/man1/tether.1.gz usr/share/bash-completion/completions/tether \
        usr/share/zsh/vendor-completions/_tether usr/share/fish/vendor_completions.d/tether.fish \
        usr/lib/python3/dist-packages/tether/__init__.py \
        usr/lib/python3/dist-packages/tether-0.1.0.dist-info/entry_points.txt \
        usr/share/doc/tether/copyright; do
        [[ "$output" == *" ./$f"* ]] || { echo "no $f in $DEB"; return 1; }
    done
    # unpacked anywhere, the program runs
    dpkg -x "$DEB" "$WORK/x"
    run "$WORK/x/usr/bin/tether" --version
    [ "$output" = "tether 0.1.0" ]
}

@test "dpkg -i, then the README's tour from /usr/bin, then dpkg -r" {
    run dpkg -i "$DEB"
    echo "$output"
    [ "$status" -eq 0 ]
    cd "$WORK"
    run sys_env tether run postgresql -- psql -X -qAt -c 'select 1'
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "1" ]
    run sys_env tether run redis -- sh -c 'redis-cli -s "$TETHER_REDIS_SOCKET" ping'
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "PONG" ]
    run sys_env man -w tether
    [ "$output" = /usr/share/man/man1/tether.1.gz ]

    # the Python module, with its pytest plugin registered
    run sys_env /usr/bin/python3 -c 'import tether, importlib.metadata as m
print(tether.__file__)
print(sorted(e.value for e in m.entry_points(group="pytest11") if e.name.startswith("tether")))'
    [ "${lines[0]}" = /usr/lib/python3/dist-packages/tether/__init__.py ]
    [ "${lines[1]}" = "['tether.pytest_plugin']" ]

    # the completions, from where Debian's shells look (no XDG_DATA_DIRS, no fpath)
    run sys_env bash -c 'source /usr/share/bash-completion/bash_completion
        COMP_WORDS=(tether st); COMP_CWORD=1; COMP_LINE="tether st"; COMP_POINT=9
        _completion_loader tether; _tether tether st tether; echo "${COMPREPLY[*]}"'
    [ "$output" = "start stop status" ]
    run sys_env env HOME="$WORK" XDG_CONFIG_HOME="$WORK/config" fish -c 'complete -C "tether st"'
    [ "$(echo "$output" | cut -f1 | sort | tr '\n' ' ')" = "start status stop " ]
    sys_env zsh -f "$BATS_TEST_DIRNAME/zsh-complete.zsh" "$WORK" "$WORK/zsh.out" "tether st"
    [ "$(grep -v '^$' "$WORK/zsh.out" | sort -u | tr '\n' ' ')" = "start status stop " ]

    # a C program built against it, with nothing but pkg-config
    printf '#include <tether/tether.h>\n#include <stdio.h>\nint main(void) { puts(tether_version()); return 0; }\n' >v.c
    # shellcheck disable=SC2046 # pkg-config's words
    sys_env cc -o v v.c $(sys_env pkg-config --cflags --libs tether)
    run sys_env ./v
    [ "$output" = "0.1.0" ]

    run dpkg -P tether
    [ "$status" -eq 0 ]
    run ! dpkg-query -W tether
    [ ! -e /usr/bin/tether ]
    [ ! -e /usr/lib/x86_64-linux-gnu/libtether.so.0 ]
    [ ! -e /usr/lib/python3/dist-packages/tether ]
    [ ! -e /usr/share/doc/tether ]
}
