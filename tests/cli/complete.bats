#!/usr/bin/env bats
# tether _services, the hidden command behind the shell completions: the
# services `tether run` would accept here, one a line, on stdout only.
load helpers

@test "_services: without a config, the built-in drivers" {
    cd "$WORK"
    run --separate-stderr tether _services
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '%s\n' $SHIPPED_RUNNABLE)" ]
    [ -z "$stderr" ]
}

@test "_services: the config's services in file order, from ./tether.ini, \$TETHER_CONFIG or -f, then the built-ins it lacks" {
    cd "$WORK"
    printf '[tether]\nprefix = X\n[web]\ncommand = true\n[Worker-1]\ncommand = true\n' >tether.ini
    printf '[other]\ncommand = true\n[redis]\n' >other.ini
    run tether _services
    [ "$output" = "$(printf '%s\n' web Worker-1 $SHIPPED_RUNNABLE)" ]
    run env TETHER_CONFIG=other.ini "$TETHER" _services
    [ "$output" = "$(printf '%s\n' other redis ${SHIPPED_RUNNABLE/redis /})" ]
    run tether -f other.ini _services
    [ "$output" = "$(printf '%s\n' other redis ${SHIPPED_RUNNABLE/redis /})" ]
}

@test "_services: a broken config says where on stderr, exit 2, nothing on stdout" {
    cd "$WORK"
    printf '[web]\ncomand = true\n' >tether.ini
    run --separate-stderr tether _services
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    [[ "$stderr" == tether.ini:* ]]
    run --separate-stderr tether _services extra
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"_services takes no arguments"* ]]
}
