# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_hoop_kube_global_optspecs
    string join \n h/help V/version
end

function __fish_hoop_kube_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_hoop_kube_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_hoop_kube_using_subcommand
    set -l cmd (__fish_hoop_kube_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "sim" -d 'Run the bundled Kubernetes API simulator (the test bed; no cluster needed)'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l listen -d 'Address to listen on; port 0 picks a free port (printed on start)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l state-dir -d 'Directory for the kubeconfig, certificates, relay identity and request log' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l kube-version -d 'Kubernetes version reported by /version (kubectl\'s dispatcher picks its binary by it)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l port-target -d 'Forward pod port PORT to a local TCP address instead of the built-in echo service (repeatable), e.g. --port-target 80=127.0.0.1:8080' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l bookmark-seconds -d 'Seconds between BOOKMARK events on watches that allow them' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand completions" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand completions" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim completions help" -f -a "sim" -d 'Run the bundled Kubernetes API simulator (the test bed; no cluster needed)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim completions help" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
