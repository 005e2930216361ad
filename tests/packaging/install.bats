#!/usr/bin/env bats
# `make install` into a prefix of its own: what it installs runs from there,
# with no PATH or LD_LIBRARY_PATH pointing at the build, and the shell
# completions it installs complete.
load ../cli/helpers

setup_file() {
    ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    PFX="$BATS_FILE_TMPDIR/prefix"
    # a build directory of its own: the prefix is compiled in (libtether
    # looks for PREFIX/bin/tether)
    make -C "$ROOT" --no-print-directory install BUILD="$BATS_FILE_TMPDIR/build" \
        PREFIX="$PFX" >"$BATS_FILE_TMPDIR/install.log" 2>&1 ||
        { cat "$BATS_FILE_TMPDIR/install.log" >&3; return 1; }
    LIBDIR=$(dirname "$(find "$PFX" -name libtether.so.0 | head -n 1)")
    export PFX LIBDIR
}

# a shell with nothing of the build's on its paths
clean_env() { env -u LD_LIBRARY_PATH -u TETHER_BIN PATH=/usr/bin:/bin "$@"; }
# the same with the prefix's tether on PATH (completions are for a `tether`)
installed_env() { env -u LD_LIBRARY_PATH -u TETHER_BIN PATH="$PFX/bin:/usr/bin:/bin" "$@"; }

@test "the installed tether runs, and starts a service" {
    run clean_env "$PFX/bin/tether" --version
    [ "$status" -eq 0 ]
    [ "$output" = "tether 0.1.0" ]
    cd "$WORK"
    run clean_env "$PFX/bin/tether" run redis -- sh -c 'redis-cli -s "$TETHER_REDIS_SOCKET" ping'
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "PONG" ]
}

@test "a C program built with pkg-config runs against the installed libtether" {
    cat >"$WORK/prog.c" <<'C'
#include <stdio.h>
#include <tether/tether.h>
int main(void)
{
    tether_service *r = tether_service_new("redis", NULL);
    if (!r || tether_setup(r, 0) < 0) {
        fprintf(stderr, "setup: %s\n", r ? tether_strerror(r) : "no memory");
        return 1;
    }
    printf("%s %s\n", tether_version(), tether_var(r, "SOCKET") ? "socket" : "none");
    int rc = tether_cleanup(r) < 0;
    tether_service_free(r);
    return rc;
}
C
    flags=$(PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --cflags --libs tether)
    # shellcheck disable=SC2086 # pkg-config's words
    cc -o "$WORK/prog" "$WORK/prog.c" $flags
    # the library comes from the prefix, found through the rpath
    run clean_env ldd "$WORK/prog"
    [[ "$output" == *"libtether.so.0 => $LIBDIR/libtether.so.0"* ]]
    # and it finds the installed program (PREFIX/bin/tether), not PATH's
    run clean_env "$WORK/prog"
    [ "$status" -eq 0 ]
    [ "$output" = "0.1.0 socket" ]
}

@test "make install puts the completions where each shell looks under the prefix" {
    [ -f "$PFX/share/bash-completion/completions/tether" ]
    [ -f "$PFX/share/zsh/site-functions/_tether" ]
    [ -f "$PFX/share/fish/vendor_completions.d/tether.fish" ]
}

# COMP_WORDS... -> what the bash completion offers
bash_complete() {
    installed_env PFX="$PFX" bash -c '
        source /usr/share/bash-completion/bash_completion
        source "$PFX/share/bash-completion/completions/tether"
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _tether "$1" "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}" 2>/dev/null
        printf "%s\n" "${COMPREPLY[@]}" | sort -u | tr "\n" " "' bash tether "$@"
}

# WORD... sorted as the completion helpers sort, space-terminated
sorted() { printf '%s\n' "$@" | sort -u | tr '\n' ' '; }

@test "bash completes commands, options and the config's services" {
    [ "$(bash_complete st)" = "start status stop " ]
    [ "$(bash_complete run --kee)" = "--keep-failed " ]
    # no config: the built-in drivers
    cd "$WORK"
    [ "$(bash_complete run '')" = "$(sorted $SHIPPED_RUNNABLE)" ]
    # ./tether.ini's sections, and -f FILE's, then the built-ins a file lacks
    printf '[tether]\nprefix = X\n[web]\ncommand = true\n[worker-1]\ncommand = true\n' >tether.ini
    printf '[other]\ncommand = true\n' >other.ini
    [ "$(bash_complete run w)" = "web worker-1 " ]
    [ "$(bash_complete -f other.ini run '')" = "$(sorted other $SHIPPED_RUNNABLE)" ]
    [ "$(bash_complete run -f other.ini '')" = "$(sorted other $SHIPPED_RUNNABLE)" ]
    [ "$(bash_complete logs '')" = "$(sorted web worker-1 $SHIPPED_RUNNABLE)" ]
    # after --: the command to run
    [[ "$(bash_complete run web -- redis-cl)" == "redis-cli "* ]]
    # a broken config: nothing, and no error on the terminal
    printf '[web]\ncomand = true\n' >tether.ini
    run bash_complete run ''
    [ "$output" = " " ] || [ -z "$output" ]
}

# LINE -> what zsh offers at its end (an interactive zsh on a pty)
zsh_complete() {
    local out="$WORK/zsh.out"
    rm -f "$out"
    installed_env zsh -f "$BATS_TEST_DIRNAME/zsh-complete.zsh" "$PFX/share/zsh/site-functions" \
        "$out" "$1"
    grep -v '^$' "$out" | sort -u | tr '\n' ' '
}

@test "zsh completes commands, options and the config's services" {
    command -v zsh >/dev/null || skip "no zsh (apt-get install zsh)"
    cd "$WORK"
    printf '[web]\ncommand = true\n[worker-1]\ncommand = true\n' >tether.ini
    [ "$(zsh_complete "tether st")" = "start status stop " ]
    [ "$(zsh_complete "tether run --kee")" = "--keep-failed " ]
    [ "$(zsh_complete "tether run ")" = "$(sorted web worker-1 $SHIPPED_RUNNABLE)" ]
    [ "$(zsh_complete "tether -f /dev/null run ")" = "" ]
}

@test "fish completes commands, options and the config's services" {
    command -v fish >/dev/null || skip "no fish (apt-get install fish)"
    cd "$WORK"
    printf '[web]\ncommand = true\n[worker-1]\ncommand = true\n' >tether.ini
    fish_complete() {
        # fish reads vendor_completions.d in $XDG_DATA_DIRS; no config of ours
        installed_env HOME="$WORK" XDG_CONFIG_HOME="$WORK/config" \
            XDG_DATA_DIRS="$PFX/share:/usr/share" fish -c "complete -C '$1'" |
            cut -f1 | sort -u | tr '\n' ' '
    }
    [ "$(fish_complete "tether st")" = "start status stop " ]
    [ "$(fish_complete "tether run --kee")" = "--keep-failed " ]
    [ "$(fish_complete "tether run ")" = "$(sorted web worker-1 $SHIPPED_RUNNABLE)" ]
}
