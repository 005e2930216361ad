# bash completion for tether(1): commands, options, the config's services
# (from `tether _services`, which reads the config the command would) and,
# after `run ... --`, the command to run.

# shellcheck disable=SC2207 # the words are service names, ids and options: no spaces
_tether() {
    local cur prev words cword
    _init_completion || return

    # the command and any -f FILE given before or after it
    local i cmd="" file=() dashdash=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        -f | --file) file=(-f "${words[i + 1]}"); ((i++)) ;;
        --file=*) file=(-f "${words[i]#--file=}") ;;
        --) [[ -n $cmd ]] && { dashdash=$i; break; } ;;
        -*) ;;
        *) [[ -z $cmd ]] && cmd=${words[i]} ;;
        esac
    done

    if ((dashdash)); then
        _command_offset $((dashdash + 1))
        return
    fi
    case $prev in
    -f | --file)
        _filedir ini
        return
        ;;
    --expire | --watch-pid) return ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '-f --file -q --quiet -v --verbose -h --help -V --version' -- "$cur"))
        else
            COMPREPLY=($(compgen -W 'run start stop status reset logs list gc drivers help' -- "$cur"))
        fi
        return
    fi

    local opts="" words_=""
    case $cmd in
    run | start)
        opts='-f --file -s --sh -c --csh --fish --json -q --quiet --expire --watch-pid --keep-failed'
        words_=$("${words[0]}" "${file[@]}" _services 2>/dev/null)
        ;;
    reset)
        opts='-q --quiet'
        words_=$("${words[0]}" "${file[@]}" _services 2>/dev/null)
        ;;
    logs)
        opts='-f --follow'
        words_=$("${words[0]}" "${file[@]}" _services 2>/dev/null)
        ;;
    stop)
        opts='--all -s --sh -c --csh --fish --json -q --quiet'
        words_=$("${words[0]}" list 2>/dev/null | awk 'NR > 1 { print $1 }')
        ;;
    status) opts='-s --sh -c --csh --fish --json -q --quiet' ;;
    list) opts='-q --quiet' ;;
    gc) opts='--kept -q --quiet' ;;
    drivers) ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words_" -- "$cur"))
    fi
} && complete -F _tether tether
