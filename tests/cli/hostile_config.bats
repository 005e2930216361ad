#!/usr/bin/env bats
# Hostile configs through the CLI (issue 5, part 3): huge values, NUL bytes,
# invalid UTF-8, deep ${} nesting, dependency cycles, too many services, an
# endless file.  Each gets a one-line FILE:LINE error (exit 2), quickly,
# and leaves nothing: TETHER_DIR stays empty (helpers.bash teardown also
# checks processes and ports).  tests/unit/test_config_hostile.c has the
# same cases at the parser level; tests/fuzz the random ones.

load helpers

# refused: run -- CMD exits 125 (tether's own failure), start 2 (a usage
# error), both with `want` in a single-line message, and make no instance
refused() {
    local cfg="$1" want="$2" cmd
    for cmd in "run -- true" "start"; do
        # shellcheck disable=SC2086
        run timeout 20 "$TETHER" -f "$cfg" $cmd
        if [ "$cmd" = start ]; then assert_status 2; else assert_status 125; fi
        assert_output_has "$want"
        [ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ] || {
            echo "error spans lines: $output" >&2
            return 1
        }
        no_instance
    done
}

no_instance() {
    local left
    left="$(cd "$TETHER_DIR" && find . -mindepth 1 | head -5)"
    [ -z "$left" ] || { echo "left in TETHER_DIR: $left" >&2; return 1; }
}

@test "a 1 MB value (continuation lines) is read in linear time and works" {
    "$PY" - "$WORK/big.ini" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("[a]\nready = none\ncommand = sh -c 'echo $# >${dir}/n; exec sleep 1000' sh\n")
    for i in range(7000):
        f.write("  " + "x" * 150 + "\n")
    f.write("export.BIG = ${port}\n")
    for i in range(500):
        f.write("  " + "y" * 150 + "\n")
    f.write("port = auto\n")
EOF
    SECONDS=0
    run timeout 60 "$TETHER" -f "$WORK/big.ini" run -- \
        sh -c 'cat "$TETHER_A_DIR/n"; printf %s "$TETHER_A_BIG" | wc -c'
    assert_status 0
    [ "$SECONDS" -lt 30 ] || { echo "took ${SECONDS}s" >&2; return 1; }
    # 7000 words; port (up to 5 digits) + 500 * 151
    [ "${lines[0]}" -eq 7000 ]
    [ "${lines[1]}" -ge 75501 ]
    [ "${lines[1]}" -le 75505 ]
    no_instance
}

@test "a value too big for the environment (> 128 KB) fails clearly" {
    "$PY" - "$WORK/env.ini" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("[a]\ncommand = sleep 1000\nexport.BIG = x\n")
    for i in range(1000):
        f.write("  " + "y" * 150 + "\n")
EOF
    run timeout 60 "$TETHER" -f "$WORK/env.ini" run -- true
    [ "$status" -ne 0 ]
    assert_output_has "too long"
    no_instance
}

@test "a line longer than inih's buffer is refused, not split" {
    "$PY" -c 'print("[a]\ncommand = echo " + "x" * 100000)' >"$WORK/long.ini"
    refused "$WORK/long.ini" "long.ini:2: line is longer than"
}

@test "a file over 4 MB, and an endless one, are refused at once" {
    head -c 5000000 /dev/zero | tr '\0' ';' >"$WORK/huge.ini"
    refused "$WORK/huge.ini" "huge.ini: more than 4 MB"
    SECONDS=0
    run timeout 20 "$TETHER" -f /dev/zero run -- true
    assert_status 125
    assert_output_has "/dev/zero: more than 4 MB"
    [ "$SECONDS" -lt 10 ]
    no_instance
}

@test "a NUL byte is refused with its line" {
    printf '[a]\ncommand = echo a\0b\n' >"$WORK/nul.ini"
    refused "$WORK/nul.ini" "nul.ini:2: contains a NUL byte"
    printf '[a]\ncommand = true\n[b]\0\n' >"$WORK/nul2.ini"
    refused "$WORK/nul2.ini" "nul2.ini:3: contains a NUL byte"
}

@test "invalid UTF-8: refused in a name, kept byte for byte in a value" {
    printf '[\xc3\xa9t\xe9]\ncommand = true\n' >"$WORK/u1.ini"
    refused "$WORK/u1.ini" "u1.ini:1: invalid section name"
    printf '[a]\ncommand = true ${d\xffir}\n' >"$WORK/u2.ini"
    refused "$WORK/u2.ini" "u2.ini:2: [a] command: invalid character 0xff"
    printf '[a]\ncommand = sleep 1000\nexport.V = \xff\xfe \xc3\x28 \xed\xa0\x80 \x80\n' >"$WORK/u3.ini"
    run timeout 20 "$TETHER" -f "$WORK/u3.ini" run -- sh -c 'printf %s "$TETHER_A_V" >"$WORK/got"'
    assert_status 0
    printf '\xff\xfe \xc3\x28 \xed\xa0\x80 \x80' >"$WORK/want"
    cmp "$WORK/want" "$WORK/got"
    no_instance
}

@test "deep and broken \${} nesting is refused with its line" {
    printf '[a]\ncommand = echo ${${${${dir}}}}\n' >"$WORK/n1.ini"
    refused "$WORK/n1.ini" "n1.ini:2: [a] command: invalid character '\$' in \${...}"
    "$PY" -c 'print("[a]\ncommand = echo"); [print("  " + "${" * 60) for i in range(2000)]' >"$WORK/n2.ini"
    refused "$WORK/n2.ini" "n2.ini:2: [a] command: invalid character '\$'"
    printf '[a]\ncommand = echo ${dir\n' >"$WORK/n3.ini"
    refused "$WORK/n3.ini" "n3.ini:2: [a] command: unterminated \${dir"
    # quotes go before expansion: caught when loading, not at start
    printf "[a]\ncommand = echo \$'{'nope}\n" >"$WORK/n4.ini"
    refused "$WORK/n4.ini" "n4.ini:2: [a] unknown variable \${nope} in command"
    printf "[a]\ncommand = echo \$'{}'\n" >"$WORK/n5.ini"
    refused "$WORK/n5.ini" "n5.ini:2: [a] command: empty variable name"
}

@test "dependency cycles are refused, naming the cycle" {
    printf '[a]\ncommand = true\nafter = a\n' >"$WORK/c1.ini"
    refused "$WORK/c1.ini" "dependency cycle: a -> a"
    printf '[a]\ncommand = true\nafter = c\n[b]\ncommand = true\nafter = a\n[c]\ncommand = true\nafter = b\n' >"$WORK/c2.ini"
    refused "$WORK/c2.ini" "dependency cycle: a -> c -> b -> a"
    "$PY" -c '
for i in range(64):
    print("[s%d]\ncommand = true\nafter = s%d" % (i, (i + 1) % 64))' >"$WORK/c3.ini"
    refused "$WORK/c3.ini" "dependency cycle: s0 -> s1 -> s2"
}

@test "thousands of services are refused at once" {
    "$PY" -c '
for i in range(20000):
    print("[s%d]\ncommand = true\nafter = s%d" % (i, i + 1))' >"$WORK/many.ini"
    SECONDS=0
    refused "$WORK/many.ini" "many.ini:193: more than 64 services in one config"
    [ "$SECONDS" -lt 10 ]
}

@test "random bytes are an error, never a crash" {
    local i
    for i in 1 2 3 4 5 6 7 8; do
        head -c 4000 /dev/urandom >"$WORK/r$i.ini"
        run timeout 20 "$TETHER" -f "$WORK/r$i.ini" run -- true
        [ "$status" -eq 125 ] || { echo "status $status: $output" >&2; return 1; }
        assert_output_has "r$i.ini:"
    done
    no_instance
}
