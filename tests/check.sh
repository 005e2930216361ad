#!/bin/bash
# Runs every suite of `make check` (the targets given), keeps going after a
# failure so that one run shows everything, and ends with one line that
# counts the tests of all suites: "check: N passed, M failed".
set -u
MAKE=${MAKE:-make}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
passed=0 failed=0 bad_suites=()
for target in "$@"; do
    echo "=== $target" >&2
    "$MAKE" --no-print-directory "$target" 2>&1 | tee "$logs/$target.log"
    rc=${PIPESTATUS[0]}
    log="$logs/$target.log"
    # per-runner counts: meson ("Ok: N" / "Fail: N"), bats (ok / not ok),
    # pytest ("N passed", "N failed"), chaos ("N passed, M failed")
    p=$(( $(grep -E '^Ok: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}') \
        + $(grep -cE '^ok [0-9]+' "$log") \
        + $(grep -oE '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}') ))
    f=$(( $(grep -E '^Fail: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}') \
        + $(grep -cE '^not ok [0-9]+' "$log") \
        + $(grep -oE '[0-9]+ (failed|errors?)' "$log" | awk '{s+=$1} END {print s+0}') ))
    if [ "$rc" -ne 0 ]; then
        bad_suites+=("$target")
        [ "$f" -gt 0 ] || f=1 # a suite that failed without saying why counts once
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
if [ ${#bad_suites[@]} -gt 0 ]; then
    # the failures once more, last, where a truncated CI log still has them
    for target in "${bad_suites[@]}"; do
        grep -E '^not ok |LEAKED|^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT)|\[  (FAILED|ERROR)|^FAILED |Error [0-9]' \
            "$logs/$target.log" | tail -n 20 | sed "s/^/check: $target: /" >&2
    done
    echo "check: failing suites: ${bad_suites[*]}" >&2
fi
echo "check: $passed passed, $failed failed"
[ ${#bad_suites[@]} -eq 0 ]
