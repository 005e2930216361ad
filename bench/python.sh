#!/bin/bash
# What the Python binding costs on top of the tether program: imports, and a
# Redis started and stopped from Python against the same from the shell.
# Usage: bench/python.sh [BUILD_DIR]   (needs hyperfine; RUNS=20 by default)
# BEFORE=DIR also measures the tether package in DIR (an older python/ tree),
# in the same hyperfine runs, side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(realpath "${1:-build}")
T="$B/tether"
RUNS=${RUNS:-20}
PY=/usr/bin/python3
work=$(mktemp -d /dev/shm/tether-bench-py.XXXXXX)
export TETHER_DIR="$work/state" TETHER_BIN="$T"
mkdir -p "$TETHER_DIR"
cleanup() { "$T" stop --all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# copies of the package(s), byte-compiled as an installed package is
# (the tree may not be, under PYTHONDONTWRITEBYTECODE)
trees=()
for src in ${BEFORE:+"$BEFORE"} "$PWD/python"; do
    t="$work/py${#trees[@]}"
    mkdir -p "$t" && cp -r "$src/tether" "$t/" && "$PY" -m compileall -q "$t/tether" >/dev/null
    trees+=("$t")
done
# python CODE: one command per tree, each with the tree on its path
python() {
    for t in "${trees[@]}"; do
        echo "env PYTHONPATH=$t $PY -c '$1'"
    done
}

hf() { # hyperfine, then a table row per command: the wall time (median and
    # minimum), and the CPU time (user + system, mean), which a busy machine
    # changes less
    hyperfine -N --style basic -w 3 -r "$RUNS" --export-json "$work/r.json" "$@" >&2
    "$PY" - "$work/r.json" "$work" ${BEFORE:+before} now <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))["results"]
for x in r:
    what = x["command"].replace("env /", "/")
    for i, label in enumerate(sys.argv[3:]):  # which copy: before or now
        what = what.replace("env PYTHONPATH=%s/py%d " % (sys.argv[2], i), "(%s) " % label)
    what = what.replace(" -q -p no:cacheprovider --rootdir " + sys.argv[2], "")
    what = what.replace(sys.argv[2] + "/", "")
    what = what.replace(os.getcwd() + "/", "")
    print(f"| `{what}` | {x['median']*1000:.1f} ms | {x['min']*1000:.1f} ms | {(x['user']+x['system'])*1000:.1f} ms |")
PY
}

mapfile -t imports < <(python 'import tether'; python 'import tether.pytest_plugin')
mapfile -t starts < <(python 'import tether; s = tether.ExternalService("redis"); s.setUp(); s.cleanUp()')
# the light class, where the tree has it
for t in "${trees[@]}"; do
    if PYTHONPATH=$t "$PY" -c 'import tether; tether.Service' 2>/dev/null; then
        starts+=("env PYTHONPATH=$t $PY -c 'import tether; s = tether.Service(\"redis\"); s.setup(); s.cleanup()'")
    fi
done

echo "| what | wall (median) | wall (min) | CPU (user + system) |"
echo "|---|---|---|---|"
hf "env $PY -c pass" "env $PY -c 'import pytest'" "${imports[@]}"
hf "$T -q run redis -- true" "${starts[@]}"

# a pytest run of one test that uses Redis: through the plugin, against the
# same test started by the CLI (tether run), and a test without Redis
printf 'def test_plain():\n    pass\n' >"$work/test_plain.py"
printf 'def test_redis(tether_redis):\n    assert tether_redis.service_config["SOCKET"]\n' \
    >"$work/test_redis.py"
pytest="-m pytest -q -p no:cacheprovider --rootdir $work"
mapfile -t runs < <(for t in "${trees[@]}"; do
    echo "env PYTHONPATH=$t $PY $pytest -p tether.pytest_plugin $work/test_redis.py"
done)
hf "env $PY $pytest $work/test_plain.py" "$T -q run redis -- $PY $pytest $work/test_plain.py" \
    "${runs[@]}"
