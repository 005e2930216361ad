# fish completion for tether(1): commands, options, the config's services
# (from `tether _services`, which reads the config the command would) and,
# after `run ... --`, the command to run.

set -l commands run start stop status reset logs list gc drivers help

# the services `tether run` would accept, with any -f FILE on the line
function __tether_services
    set -l line (commandline -opc)
    set -l file
    for i in (seq 2 (count $line))
        switch $line[$i]
            case -f --file
                set file -f $line[(math $i + 1)]
            case '--file=*'
                set file -f (string replace -- --file= '' $line[$i])
        end
    end
    command $line[1] $file _services 2>/dev/null
end

function __tether_ids
    set -l line (commandline -opc)
    command $line[1] list 2>/dev/null | tail -n +2 | string replace -r ' .*' ''
end

# after `run ... --`: complete the command to run
function __tether_after_dashdash
    set -l line (commandline -opc)
    contains -- -- $line[3..-1]
end

complete -c tether -f
complete -c tether -n "not __fish_seen_subcommand_from $commands" -s f -l file -r -F -d 'config file'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -s q -l quiet -d 'only errors'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -s v -l verbose -d 'each step with its time'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -s h -l help -d 'show the usage'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -s V -l version -d 'show the version'

complete -c tether -n "not __fish_seen_subcommand_from $commands" -a run -d 'start, run a command or wait for Ctrl-C, clean up'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a start -d 'start in the background, print variables for eval'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a stop -d 'stop what the environment names'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a status -d 'exit 0 if every service named is alive'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a reset -d 'health check, then discard what the last test did'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a logs -d "show or follow a service's log"
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a list -d "this user's instances"
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a gc -d 'reap stale instances'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a drivers -d 'the drivers and recipes, and where each comes from'
complete -c tether -n "not __fish_seen_subcommand_from $commands" -a help -d 'show the usage'

# run and start
set -l rs '__fish_seen_subcommand_from run start; and not __tether_after_dashdash'
complete -c tether -n $rs -a '(__tether_services)' -d service
complete -c tether -n $rs -s f -l file -r -F -d 'config file'
complete -c tether -n $rs -l expire -x -d 'stop after this long'
complete -c tether -n $rs -l watch-pid -x -a '(__fish_complete_pids)' -d 'stop when this process ends'
complete -c tether -n $rs -l keep-failed -d 'keep what failed: logs and data'
complete -c tether -n __tether_after_dashdash -x -a '(__fish_complete_subcommand --fcs-skip=(math (contains -i -- -- (commandline -opc)) - 1))'

# output formats
for c in run start stop status reset
    complete -c tether -n "__fish_seen_subcommand_from $c; and not __tether_after_dashdash" -s s -l sh -d 'sh assignments'
    complete -c tether -n "__fish_seen_subcommand_from $c; and not __tether_after_dashdash" -s c -l csh -d 'csh assignments'
    complete -c tether -n "__fish_seen_subcommand_from $c; and not __tether_after_dashdash" -l fish -d 'fish assignments'
    complete -c tether -n "__fish_seen_subcommand_from $c; and not __tether_after_dashdash" -l json -d JSON
end

complete -c tether -n '__fish_seen_subcommand_from reset logs' -a '(__tether_services)' -d service
complete -c tether -n '__fish_seen_subcommand_from logs' -s f -l follow -d 'follow the log'
complete -c tether -n '__fish_seen_subcommand_from stop' -a '(__tether_ids)' -d instance
complete -c tether -n '__fish_seen_subcommand_from stop' -l all -d "every instance of this user"
complete -c tether -n '__fish_seen_subcommand_from gc' -l kept -d 'also remove kept instances'
