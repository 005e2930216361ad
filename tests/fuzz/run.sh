#!/bin/bash
# Fuzz each target for SECONDS (default 600), then merge what it found into
# the committed corpus (libFuzzer -merge=1 keeps only inputs that add
# coverage).  `make fuzz [FUZZ_SECONDS=N]` runs it; `make check` replays
# the corpus.  Needs clang (apt-get install clang).
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]        (default: 600 build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
B=${2:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is not installed (apt-get install clang)" >&2; exit 2; }
[ -f "$B/build.ninja" ] || CC=clang meson setup "$B" -Dfuzz=true -Dbuildtype=debugoptimized >/dev/null
ninja -C "$B" tests/fuzz/fuzz_config tests/fuzz/fuzz_eval_sh >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/tether-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in config eval_sh; do
    corpus=tests/fuzz/corpus/$t
    mkdir -p "$work/$t" "$work/art-$t"
    cp -a "$corpus/." "$work/$t/"
    dict=(); [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    echo "fuzz: $t for $secs s" >&2
    "$B/tests/fuzz/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$work/art-$t/" "$work/$t" 2>"$work/$t.log" || {
        tail -40 "$work/$t.log" >&2
        mkdir -p tests/fuzz/crashes && cp "$work/art-$t"/* tests/fuzz/crashes/ 2>/dev/null || true
        echo "fuzz: $t FAILED: the input is in tests/fuzz/crashes/" >&2
        exit 1
    }
    grep -E '^Done|stat::number_of_executed_units|stat::average_exec_per_sec' "$work/$t.log" | sed "s/^/fuzz: $t: /" >&2
    "$B/tests/fuzz/fuzz_$t" -merge=1 "$corpus" "$work/$t" 2>"$work/$t.merge" ||
        { tail -20 "$work/$t.merge" >&2; exit 1; }
    grep -E 'MERGE-OUTER: [0-9]+ new files' "$work/$t.merge" | sed "s/^/fuzz: $t: /" >&2
done
