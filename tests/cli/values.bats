#!/usr/bin/env bats
# Scenario 8: values holding ', ", $(...), backticks, spaces, tabs, ! and
# newlines come back byte for byte through eval "$(tether start)" in sh,
# bash, dash and tcsh (and --json), and never run code.
#
# Values come from two routes: export.X = ... in the config (every special
# character but a newline: an INI value cannot hold one), and the state
# directory's own name, which tether puts into DIR, CONFIGFILE, PIDFILE and
# any ${dir} -- that one does hold a newline.  The quoting functions
# themselves are unit-tested with arbitrary bytes elsewhere
# (tests/unit/test_quote.c, tests/tools/quote-emit).

load helpers

NAMES="SQ DQ CMDSUB BTICK SPACES BACKSLASH MIX DOLLAR WHERE DIR CONFIGFILE"

setup() {
    tether_setup
    declare -gA VAL
    VAL[SQ]="it's a 'quoted' value"
    VAL[DQ]='say "hi" and "bye"'
    VAL[CMDSUB]='$(touch $WORK/pwned-cmdsub) and $(touch pwned-cmdsub2)'
    VAL[BTICK]='`touch $WORK/pwned-backtick` and `touch pwned-backtick2`'
    VAL[SPACES]=$'two  spaces,\ta tab and   three'
    VAL[BACKSLASH]='\ \\ \n \'"'"' \" \$HOME \`x\` end\'
    VAL[MIX]="a'b\"c;d|e&f<g>h*?[x]{a,b}~ !1 !! !\$ \$HOME \$\$ %s %n :q ^x^y^ \$?x"
    VAL[DOLLAR]='${HOME} $HOME $$ ${dir} $'
    # the state directory: a private directory whose name asks for trouble
    WEIRD="$TETHER_DIR/q'\"\$(touch pwned1)\`touch pwned2\`  a"$'\n'"b!"
    mkdir -m 0700 "$WEIRD"
    {
        echo "[tether]"
        echo "prefix = Q"
        echo "[v]"
        echo "command = $TSERVER --tcp \${port}"
        echo "port = auto"
        local k
        for k in SQ DQ CMDSUB BTICK SPACES BACKSLASH MIX DOLLAR; do
            # $$ is a literal $ in a config value
            echo "export.$k = ${VAL[$k]//\$/\$\$}"
        done
        echo 'export.WHERE = at ${dir} end'
    } >"$WORK/values.ini"
    CFG="$WORK/values.ini"
    export CFG NAMES
}

teardown() {
    # the test's own state directory must be empty; then the usual checks
    if [ -d "$WEIRD" ]; then
        rmdir "$WEIRD" 2>/dev/null || true
    fi
    tether_teardown
}

# check_values PREFIX: the files PREFIX.NAME hold each value, byte for byte
# (with SUFFIX appended: printenv adds a newline)
check_values() {
    local prefix="$1" suffix="${2:-}" k dir want
    dir="$(cat "$prefix.DIR")"
    dir="${dir%$suffix}"
    # DIR is WEIRD/<16 hex digits>/v
    [[ "$dir" == "$WEIRD"/????????????????/v ]] || {
        echo "DIR is wrong: $(printf '%q' "$dir")" >&2
        return 1
    }
    VAL[DIR]="$dir"
    VAL[CONFIGFILE]="${dir%/v}/v.env"
    VAL[WHERE]="at $dir end"
    for k in $NAMES; do
        want="${VAL[$k]}$suffix"
        if [ "$(od -An -c <"$prefix.$k")" != "$(printf '%s' "$want" | od -An -c)" ]; then
            echo "$k differs in $prefix:" >&2
            echo "  want: $(printf '%q' "$want")" >&2
            echo "  got:  $(printf '%q' "$(cat "$prefix.$k"; echo .)")" >&2
            return 1
        fi
    done
}

no_code_ran() {
    local pwned
    pwned="$(cd "$WORK" && ls -d pwned* 2>/dev/null || true)"
    [ -z "$pwned" ] || { echo "code ran: $pwned" >&2; return 1; }
}

instance_gone() {
    [ -z "$(ls -A "$WEIRD")" ]
}

sh_round_trip() {
    local shell="$1"
    command -v "$shell" >/dev/null || skip "$shell is not installed"
    cat >"$WORK/round.sh" <<'EOF'
cd "$WORK" || exit 1
out="$1"
eval "$("$TETHER" -f "$CFG" start)" || exit 3
for v in $NAMES; do
    eval "printf '%s' \"\$Q_V_$v\"" > "$out.var.$v"
    printenv "Q_V_$v" > "$out.env.$v"
done
# the config file, sourced by another shell, gives the same values
env -i sh -c '. "$1"; printf "%s" "$Q_V_MIX"' sh "$Q_V_CONFIGFILE" > "$out.sourced.MIX"
"$TETHER" status || exit 4
eval "$("$TETHER" stop)" || exit 5
[ -z "${Q_V_CONTROL_PID+set}" ] || exit 6
[ -z "${Q_V_MIX+set}" ] || exit 7
exit 0
EOF
    TETHER_DIR="$WEIRD" run "$shell" "$WORK/round.sh" "$WORK/$shell"
    assert_status 0
    check_values "$WORK/$shell.var"
    check_values "$WORK/$shell.env" $'\n'
    cmp "$WORK/$shell.sourced.MIX" <(printf '%s' "${VAL[MIX]}")
    no_code_ran
    instance_gone
}

@test "values come back byte for byte through eval in sh" {
    sh_round_trip sh
}

@test "values come back byte for byte through eval in bash" {
    sh_round_trip bash
}

@test "values come back byte for byte through eval in dash" {
    sh_round_trip dash
}

@test "values come back byte for byte through eval in tcsh (start -c)" {
    command -v tcsh >/dev/null || skip "tcsh is not installed"
    cat >"$WORK/round.csh" <<'EOF'
cd "$WORK"
eval "`$TETHER -f $CFG start -c`"
if ( $status != 0 ) exit 3
foreach v ( $NAMES )
    printenv Q_V_$v > "${OUT}.env.$v"
end
$TETHER status
if ( $status != 0 ) exit 4
eval "`$TETHER stop -c`"
if ( $status != 0 ) exit 5
if ( $?Q_V_CONTROL_PID ) exit 6
if ( $?Q_V_MIX ) exit 7
exit 0
EOF
    TETHER_DIR="$WEIRD" OUT="$WORK/tcsh" run tcsh -f "$WORK/round.csh"
    assert_status 0
    check_values "$WORK/tcsh.env" $'\n'
    no_code_ran
    instance_gone
}

@test "values come back byte for byte through --json" {
    TETHER_DIR="$WEIRD" tether -f "$CFG" start --json >"$WORK/vars.json"
    "$PY" - "$WORK/vars.json" "$WORK/json" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
for k, val in v.items():
    if k.startswith("Q_V_"):
        open(sys.argv[2] + "." + k[4:], "w", newline="").write(val)
EOF
    TETHER_DIR="$WEIRD" tether stop --all
    check_values "$WORK/json"
    no_code_ran
    instance_gone
}
