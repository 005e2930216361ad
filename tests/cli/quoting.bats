#!/usr/bin/env bats
# Shell output of lib/quote.c: every value must come back byte for byte from
# `eval` in sh, dash, bash, bash --posix and tcsh, and no value may run code.
# Values are written to files and read by quote-emit, so no shell touches
# them on the way in.  Each shell prints every value followed by $SEP into
# one file, compared with cmp against the same built from the originals
# (one cmp instead of one per value: forks are the cost here).

SEP='
<<<quoting.bats separator>>>
'

setup() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    BUILD="${TETHER_BUILD:-build}"
    case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
    Q="$BUILD/tests/tools/quote-emit"
    [ -x "$Q" ] || { echo "missing $Q: build first (ninja -C $BUILD)" >&2; return 1; }
    T="$(mktemp -d)"
    M="$T/PWNED"   # marker prefix: a value that runs code creates $M-*
    mkdir "$T/v" "$T/got" "$T/cwd"
    # Files that globs left unquoted would match, one of them made to run
    # code if a glob result were re-parsed.
    touch "$T/cwd/a1" "$T/cwd/'a1'" "$T/cwd/X='x'; touch PWNED-glob; X='';"
    # What a brace expansion across quotes would run as a command.
    printf '#!/bin/sh\ntouch "%s-brace"\n' "$M" > "$T/cwd/evil"
    chmod +x "$T/cwd/evil"
    make_values
}

teardown() {
    rm -rf "$T"
}

# Value N goes to $T/v/N and, followed by $SEP, to $T/expected; values
# without blanks also to $T/expected-noblank.  ARGS is the quote-emit list.
make_values() {
    local n=0 v
    val() {
        printf -v v "$@"
        printf '%s' "$v" > "$T/v/$n"
        printf '%s%s' "$v" "$SEP" >> "$T/expected"
        printf 'x%s%s' "$v" "$SEP" >> "$T/expected-x"
        [[ $v == *[[:blank:]]* ]] || printf '%s%s' "$v" "$SEP" >> "$T/expected-noblank"
        n=$((n + 1))
    }
    val '%s' "'"
    val '%s' "''"
    val '%s' "it's"
    val '%s' "'\\''"
    val '%s' '"'
    val '%s' 'say "hi" "'
    val '%s' "\$(touch $M-dollar)"
    val '%s' "\`touch $M-backtick\`"
    val '%s' "\"\`touch $M-dq-backtick\`\""
    val '%s' "'; touch $M-semi; '"
    val '%s' "\"; touch $M-dq-semi; \""
    val '%s' "a; touch $M-plain-semi"
    val '%s' "a | touch $M-pipe"
    val '%s' "a && touch $M-and &"
    val '%s' 'a b'
    val '%s' '  two  spaces  '
    val '\t%s\t\t%s\t' 'tab' 'tabs'
    val 'line1\nline2'
    val 'trailing newline\n'
    val '\n\n\n'
    val 'a\\\nb'
    val '\\'
    val '%s' 'back\slash\\double\n'
    val '%s' 'trailing\'
    val '%s' '!'
    val '%s' 'a!b !! !$ !-1 ^a^b'
    val '%s' '\!'
    val '%s' '*'
    val '%s' 'a*'
    val '%s' 'x*'
    val '%s' '? [a] [!a]'
    val '%s' '~'
    val '%s' '~root'
    val '%s' 'a ~root ~/x'
    val '%s' '{a,b}'
    val '%s' 'a{x,y}b'
    val '%s' "{x,$T/cwd/evil}"
    val '%s' ';'
    val '%s' '|'
    val '%s' '$HOME ${HOME} $X:q $?X $#X %1 #comment =1 -'
    val '\r\r\n'
    val '\200\377\303\050\355\240\200'
    val '%s' ''
    val '%s' '-n'
    val '%s' '--'
    # Every byte but NUL.
    local i all=""
    for ((i = 1; i < 256; i++)); do printf -v all '%s\\%03o' "$all" "$i"; done
    val "$all"
    [ "$(wc -c < "$T/v/$((n - 1))")" -eq 255 ]
    # 10 KB, mixing the awkward characters with plain text.
    local chunk big=""
    chunk="abc 'q' \"d\" \$(touch $M-big) \`touch $M-big2\` \\ ! * ~ ; | { } "$'\t\n'
    while [ ${#big} -lt 10240 ]; do big="$big$chunk"; done
    val '%s' "${big:0:10240}"
    [ "$(wc -c < "$T/v/$((n - 1))")" -eq 10240 ]

    NVALS=$n
    # Guard the guards: only the one empty value may be empty.
    [ "$(find "$T/v" -type f -empty | wc -l)" -eq 1 ]
    ARGS=() NAMES=()
    for ((i = 0; i < NVALS; i++)); do ARGS+=("V$i" "$T/v/$i"); NAMES+=("V$i"); done
}

# Check that no value ran code, then cmp the readback in $T/got/$1 with $2
# (default $T/expected); on a mismatch show where.
check() {
    local want=${2:-$T/expected}
    check_no_markers
    if ! cmp "$want" "$T/got/$1"; then
        echo "$1: readback differs; want / got:" >&2
        diff <(od -c "$want") <(od -c "$T/got/$1") | head -20 >&2
        return 1
    fi
}

check_no_markers() {
    local found
    found="$(find "$T" -name 'PWNED*')"
    if [ -n "$found" ]; then
        echo "code ran: $found" >&2
        return 1
    fi
}

# sh: print every value, then SEP, with builtins only.
sh_reader() {
    local i
    printf "{\n"
    for ((i = 0; i < NVALS; i++)); do
        printf 'printf "%%s%%s" "$V%d" "$SEP"\n' "$i"
    done
    printf "} > '%s/got/%s'\n" "$T" "$1"
}

# tcsh: $X:q unquoted keeps each value one exact word ("$X:q" inside double
# quotes is NOT exact: tcsh drops the \ of a \<newline>), but an empty value
# gives no word at all, hence the x in front (see $T/expected-x).  One
# external printf gets them all.  A child sh then checks what was exported.
csh_reader() {
    local i fmt="%s$SEP"
    fmt="${fmt//$'\n'/\\n}"
    printf "printf '%s'" "$fmt"
    for ((i = 0; i < NVALS; i++)); do printf ' x$V%d:q' "$i"; done
    printf " > '%s/got/%s'\n" "$T" "$1"
    printf "sh -c 'printf \"%s\"" "$fmt"
    for ((i = 0; i < NVALS; i++)); do printf ' "$V%d"' "$i"; done
    printf "' > '%s/got/%s-env'\n" "$T" "$1"
}

@test "sh output round-trips through eval in sh, dash, bash, bash --posix" {
    "$Q" sh "${ARGS[@]}" > "$T/out"
    for sh in sh dash bash "bash --posix"; do
        tag="${sh// /}"
        { echo 'eval "$(cat "$1")"'; sh_reader "$tag"; } > "$T/script"
        # shellcheck disable=SC2086
        (cd "$T/cwd" && SEP="$SEP" $sh "$T/script" "$T/out")
        check "$tag"
    done
}

@test "sh output round-trips through eval \"\$(quote-emit ...)\" and ." {
    {
        printf 'eval "$(%q sh' "$Q"
        printf ' %q' "${ARGS[@]}"
        printf ')"\n'
        sh_reader cmd
    } > "$T/script"
    (cd "$T/cwd" && SEP="$SEP" dash "$T/script")
    check cmd

    "$Q" sh "${ARGS[@]}" > "$T/out"
    { echo ". '$T/out'"; sh_reader dot; } > "$T/script"
    (cd "$T/cwd" && SEP="$SEP" bash --posix "$T/script")
    check dot
}

@test "sh output exports the variables" {
    "$Q" sh "${ARGS[@]}" > "$T/out"
    for sh in dash bash; do
        sh_reader "env$sh" > "$T/reader"
        { echo 'eval "$(cat "$1")"'; echo "sh '$T/reader'"; } > "$T/script"
        (cd "$T/cwd" && SEP="$SEP" $sh "$T/script" "$T/out")
        check "env$sh"
    done
}

@test "interactive bash does not history-expand !" {
    "$Q" sh "${ARGS[@]}" > "$T/out"
    { echo 'set -H'; echo "eval \"\$(cat '$T/out')\""; sh_reader ibash; } > "$T/script"
    (cd "$T/cwd" && HOME="$T" SEP="$SEP" bash --norc -i < "$T/script" > /dev/null 2>&1)
    check ibash
}

# tcsh forms, under $LC_ALL and with the given prefix line.
tcsh_forms() {
    local pre=$1 tag=$2 cmd form line
    cmd="$(printf '%q csh' "$Q"; printf ' %q' "${ARGS[@]}")"
    for form in source evalcat evalcmd; do
        case $form in
        source) line="source '$T/out'" ;;
        evalcat) line="eval \"\`cat '$T/out'\`\"" ;;
        evalcmd) line="eval \"\`$cmd\`\"" ;;
        esac
        { echo "$pre"; echo "$line"; csh_reader "$tag$form"; } > "$T/script"
        (cd "$T/cwd" && tcsh -f "$T/script")
        check "$tag$form" "$T/expected-x"
        check "$tag$form-env"
    done
}

@test "csh output round-trips through tcsh source and eval \"\`...\`\"" {
    "$Q" csh "${ARGS[@]}" > "$T/out"
    LC_ALL=C tcsh_forms "" C
    LC_ALL=C.UTF-8 tcsh_forms "" U
    LC_ALL=C tcsh_forms "set backslash_quote" Cbq
    LC_ALL=C.UTF-8 tcsh_forms "set backslash_quote" Ubq
}

@test "csh output holds one line per variable" {
    "$Q" csh "${ARGS[@]}" > "$T/out"
    [ "$(wc -l < "$T/out")" -eq "$NVALS" ]
}

@test "interactive tcsh does not history-expand !" {
    "$Q" csh "${ARGS[@]}" > "$T/out"
    for form in "source '$T/out'" "eval \"\`cat '$T/out'\`\""; do
        { echo "$form"; csh_reader itcsh; echo exit; } > "$T/script"
        (cd "$T/cwd" && HOME="$T" tcsh -f -i < "$T/script" > /dev/null 2>&1)
        check itcsh "$T/expected-x"
        check itcsh-env
    done
}

# ssh-agent style  eval `cmd`  (unquoted): tcsh splits the output at blanks
# and brace-expands it, so blanks may change (and a ~ after one expand);
# values without blanks must survive, and nothing may run.
@test "tcsh eval \`...\` unquoted runs no code" {
    # One value at a time: a value that tcsh fails on must not hide others.
    : > "$T/got/unq"
    for ((i = 0; i < NVALS; i++)); do
        "$Q" csh "V$i" "$T/v/$i" > "$T/out"
        rd="true"
        if ! LC_ALL=C grep -q '[[:blank:]]' "$T/v/$i"; then
            rd="sh -c 'printf \"%s%s\" \"\$V$i\" \"\$SEP\"' >> '$T/got/unq'"
        fi
        (cd "$T/cwd" && LC_ALL=C SEP="$SEP" tcsh -f -c "eval \`cat '$T/out'\`; $rd" 2>/dev/null) || true
    done
    check unq "$T/expected-noblank"
}

@test "unset output removes the variables" {
    "$Q" sh A "$T/v/0" B "$T/v/1" > "$T/out"
    "$Q" --unset sh A B >> "$T/out"
    run dash -c '. "$1"; echo "${A-unset} ${B-unset}"' sh "$T/out"
    [ "$status" -eq 0 ]
    [ "$output" = "unset unset" ]

    "$Q" csh A "$T/v/0" B "$T/v/1" > "$T/out"
    "$Q" --unset csh A B >> "$T/out"
    run tcsh -f -c "source '$T/out'; sh -c 'echo \${A-unset} \${B-unset}'"
    [ "$status" -eq 0 ]
    [ "$output" = "unset unset" ]

    run "$Q" --unset fish A B
    [ "$output" = "$(printf 'set -e A;\nset -e B;')" ]
    run "$Q" --unset json A B
    [ "$output" = '{"unset": ["A", "B"]}' ]
}

@test "json output parses and gives the UTF-8 values back" {
    "$Q" json "${ARGS[@]}" > "$T/out"
    python3 - "$T/out" "$T/v" "$NVALS" <<'EOF'
import json, sys
out, vdir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(out, 'rb') as f:
    raw = f.read()
# Invalid UTF-8 passes through unchanged: parse it that way too.
obj = json.loads(raw.decode('utf-8', 'surrogateescape'))
assert list(obj) == ['V%d' % i for i in range(n)], list(obj)
checked = 0
for i in range(n):
    with open('%s/%d' % (vdir, i), 'rb') as f:
        b = f.read()
    assert obj['V%d' % i].encode('utf-8', 'surrogateescape') == b, i
    try:
        want = b.decode('utf-8')
    except UnicodeDecodeError:
        continue
    assert obj['V%d' % i] == want, (i, obj['V%d' % i], want)
    checked += 1
assert checked == n - 2, checked
EOF
    check_no_markers
}

@test "json output of only valid UTF-8 is strict JSON" {
    printf 'h\303\251 "q" \\ \n\t\001 \342\202\254' > "$T/u"
    "$Q" json A "$T/u" B "$T/v/0" > "$T/out"
    run python3 -c 'import json,sys; d=json.load(open(sys.argv[1], encoding="utf-8")); sys.stdout.write(d["A"] + "|" + d["B"])' "$T/out"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf 'h\303\251 "q" \\ \n\t\001 \342\202\254|'"'")" ]
    run "$Q" json
    [ "$output" = "{}" ]
}

# fish is not installed here: only the form is checked.
@test "fish output has the documented form" {
    printf "it's a \\\\ \$x" > "$T/f"
    run "$Q" fish X "$T/f"
    [ "$output" = "set -gx X 'it\\'s a \\\\ \$x';" ]
}

@test "quote-emit usage errors" {
    run "$Q"
    [ "$status" -eq 2 ]
    run "$Q" zsh A "$T/v/0"
    [ "$status" -eq 2 ]
    run "$Q" sh A
    [ "$status" -eq 2 ]
    run "$Q" sh A "$T/nonexistent"
    [ "$status" -eq 1 ]
}
