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
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "demo" -d 'Run the whole stack on this machine: simulator, relay (dev mode), forwarders'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "relay" -d 'Run the relay: the only holder of the cluster credential'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "forward" -d 'Run a local forwarder: kubectl talks HTTPS to 127.0.0.1, the forwarder talks mutual TLS to the relay'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l listen -d 'Address to listen on; port 0 picks a free port (printed on start)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l state-dir -d 'Directory for the kubeconfig, certificates, relay identity and request log' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l kube-version -d 'Kubernetes version reported by /version (kubectl\'s dispatcher picks its binary by it)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l port-target -d 'Forward pod port PORT to a local TCP address instead of the built-in echo service (repeatable), e.g. --port-target 80=127.0.0.1:8080' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -l bookmark-seconds -d 'Seconds between BOOKMARK events on watches that allow them' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sim" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand demo" -l dir -d 'Directory for the demo\'s state (PKI, kubeconfig, logs); default: a new temporary directory' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand demo" -l sim-listen -d 'Where the simulator listens' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand demo" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check help" -l config -d 'The relay\'s YAML configuration' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check help" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Validate the configuration and print a summary (exit 1 with the offending key otherwise)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from check" -l config -d 'The relay\'s YAML configuration' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate the configuration and print a summary (exit 1 with the offending key otherwise)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l relay -d 'The relay, https://HOST:PORT' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l relay-ca -d 'The CA that signed the relay\'s certificate (PEM)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l client-cert -d 'Client certificate for mutual TLS with the relay (PEM; issued at login)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l client-key -d 'Its private key (PEM)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l listen -d 'Where kubectl connects' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l local-ca-dir -d 'Directory of the local CA (default: $XDG_CONFIG_HOME/hoop-kube/forward)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand completions" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand completions" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim demo relay forward completions help" -f -a "sim" -d 'Run the bundled Kubernetes API simulator (the test bed; no cluster needed)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim demo relay forward completions help" -f -a "demo" -d 'Run the whole stack on this machine: simulator, relay (dev mode), forwarders'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim demo relay forward completions help" -f -a "relay" -d 'Run the relay: the only holder of the cluster credential'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim demo relay forward completions help" -f -a "forward" -d 'Run a local forwarder: kubectl talks HTTPS to 127.0.0.1, the forwarder talks mutual TLS to the relay'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim demo relay forward completions help" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from sim demo relay forward completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from relay" -f -a "check" -d 'Validate the configuration and print a summary (exit 1 with the offending key otherwise)'
