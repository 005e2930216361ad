#!/usr/bin/env bats
# `make wheel`: the one file a Python project needs.  Installed into a fresh
# venv (Debian's pytest, fixtures... through --system-site-packages, pip
# offline), it runs examples/python with nothing of the build on any path.
load ../cli/helpers

setup_file() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    DIST="$BATS_FILE_TMPDIR/dist"
    make -C "$ROOT" --no-print-directory wheel DIST="$DIST" >"$BATS_FILE_TMPDIR/wheel.log" 2>&1 ||
        { cat "$BATS_FILE_TMPDIR/wheel.log" >&3; return 1; }
    WHEEL=$(echo "$DIST"/tether-*.whl)
    VENV="$BATS_FILE_TMPDIR/venv"
    /usr/bin/python3 -m venv --system-site-packages --without-pip "$VENV"
    # Debian's pip, run by the venv's python, installs into the venv
    "$VENV/bin/python" -m pip install -q --no-index --no-cache-dir "$WHEEL" \
        >"$BATS_FILE_TMPDIR/pip.log" 2>&1 || { cat "$BATS_FILE_TMPDIR/pip.log" >&3; return 1; }
    export ROOT WHEEL VENV
}

# no build directory on PATH, no TETHER_BIN, no PYTHONPATH into the tree
venv_env() {
    env -u TETHER_BIN -u PYTHONPATH -u LD_LIBRARY_PATH PATH=/usr/bin:/bin PYTHONDONTWRITEBYTECODE=1 "$@"
}

@test "the wheel is a platform wheel that carries a tether needing only libc" {
    [[ "$WHEEL" == *-py3-none-linux_*.whl ]]
    run /usr/bin/python3 -m zipfile -l "$WHEEL"
    [[ "$output" == *"tether/_bin/tether"* ]]
    [[ "$output" == *"tether-0.1.0.data/scripts/tether"* ]]
    [[ "$output" == *"tether-0.1.0.dist-info/LICENSE"* ]]
    run ldd "$VENV/lib/python3."*/site-packages/tether/_bin/tether
    [ "$status" -eq 0 ]
    [[ "$output" != *libinih* ]]
}

@test "the installed module runs its bundled tether" {
    cd "$WORK"
    run venv_env "$VENV/bin/python" -c 'import tether._service as s; print(s.find_tether()); print(s.__file__)'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "$(echo "$VENV"/lib/python3.*/site-packages/tether/_bin/tether)" ]
    [[ "${lines[1]}" == "$VENV/"* ]]
    # and the script puts it on the venv's PATH
    run venv_env "$VENV/bin/tether" --version
    [ "$status" -eq 0 ]
    [ "$output" = "tether 0.1.0" ]
}

@test "examples/python pass with the wheel alone (its pytest plugin loads by itself)" {
    cd "$WORK"
    run venv_env "$VENV/bin/python" -m pytest -q -p no:cacheprovider --basetemp="$WORK/pt" \
        "$ROOT/examples/python"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *" passed"* ]]
}
