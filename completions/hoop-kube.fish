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
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "login" -d 'Log in: OIDC device flow, tokens into the OS keyring, a client certificate from the relay'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "logout" -d 'Forget a profile\'s tokens, client key and certificate, here and in the keyring'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "status" -d 'Show a profile\'s identity, groups, token and certificate expiry, relay and forwarder'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "kubeconfig" -d 'Add or update the kubeconfig context that uses this profile (idempotent)'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "credential" -d 'The kubectl exec credential plugin (kubectl runs it; you do not need to)'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "run" -d 'Run a command as an AI agent, with a credential of its own that ends when the command does'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "agents" -d 'Mint, list, revoke or stop AI agent sessions (see `hoop-kube run --help`)'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "sim" -d 'Run the bundled Kubernetes API simulator (the test bed; no cluster needed)'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "demo" -d 'Run the whole stack on this machine: simulator, relay (dev mode), forwarders'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "relay" -d 'Run the relay: the only holder of the cluster credential'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "forward" -d 'Run a local forwarder: kubectl talks HTTPS to 127.0.0.1, the forwarder talks mutual TLS to the relay'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "reviews" -d 'List, show, approve, deny or wait for reviews of held requests'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "sessions" -d 'List, show, follow, replay or export the relay\'s records of requests and exec sessions'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "policy" -d 'Work with the relay\'s policy (`hoop-kube policy test`)'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c hoop-kube -n "__fish_hoop_kube_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l relay -d 'The relay, https://HOST[:PORT] (required the first time; kept in the profile)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l relay-ca-sha256 -d 'SHA-256 fingerprint of the relay\'s CA, as printed by `hoop-kube relay pki init` (required the first time unless --relay-ca is given; kept in the profile)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l relay-ca -d 'The relay\'s CA certificate (PEM) instead of its fingerprint' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l issuer -d 'The OpenID issuer URL (required the first time; kept in the profile)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l client-id -d 'The OAuth client id registered at the issuer (default: hoop-kube)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l scope -d 'An extra scope to ask for, e.g. groups (repeatable; openid offline_access email profile are always asked for)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l token-store -d 'Where tokens and the client key are kept: the OS keyring, or a 0600 file under $XDG_STATE_HOME/hoop-kube for machines without one (headless CI, containers)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l forward-listen -d 'Where this profile\'s local forwarder listens (loopback, fixed port; default 127.0.0.1:6643)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -l no-qr -d 'Do not draw the QR code (it is never drawn when stdout is not a terminal)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand login" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand logout" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand logout" -l forget-profile -d 'Also delete the profile\'s settings (relay, issuer, pin)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand logout" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand logout" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand status" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand status" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -l context -d 'Name of the context (and of its cluster and user entries); default hoop-kube-PROFILE' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -l kubeconfig -d 'The file to update; default: the first entry of $KUBECONFIG, else ~/.kube/config' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -l namespace -d 'The context\'s default namespace' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -l exec-env -d 'Extra environment for the plugin, NAME=VALUE (repeatable), e.g. XDG_STATE_HOME for a setup kept apart from the user\'s own. HOOP_KUBE_CONFIG_DIR is passed on when it is set' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -l no-switch -d 'Leave current-context alone (by default the new context becomes the current one)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand kubeconfig" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand credential" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand credential" -l no-forwarder -d 'Do not start the profile\'s forwarder when it is not running'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand credential" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand credential" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand run" -l agent -d 'The agent\'s name: lower-case letters, digits, \'-\' and \'.\' (at most 63), e.g. claude-code. Policy rules can match it; records show it beside your name' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand run" -l ttl -d 'How long the credential may live at most (30m, 1h, 90s, 2h30m; 1m to 7d). The relay may cap it (its agents.max_ttl_minutes, and never beyond your own certificate); it is revoked anyway when COMMAND exits' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand run" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand run" -s n -l namespace -d 'The default namespace of the agent\'s kubeconfig context' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand run" -s q -l quiet -d 'Do not print the session line on stderr before COMMAND starts'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand run" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and not __fish_seen_subcommand_from mint list revoke stop help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and not __fish_seen_subcommand_from mint list revoke stop help" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and not __fish_seen_subcommand_from mint list revoke stop help" -f -a "mint" -d 'Mint an agent credential into DIR/kubeconfig for an agent started elsewhere'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and not __fish_seen_subcommand_from mint list revoke stop help" -f -a "list" -d 'List your agent sessions, newest first, ended ones included'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and not __fish_seen_subcommand_from mint list revoke stop help" -f -a "revoke" -d 'Revoke agent sessions by id: their certificate and token stop working at once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and not __fish_seen_subcommand_from mint list revoke stop help" -f -a "stop" -d 'The kill switch: stop every active session of an agent at once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and not __fish_seen_subcommand_from mint list revoke stop help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -l agent -d 'The agent\'s name (as for `hoop-kube run --agent`)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -l out -d 'The directory for the kubeconfig (created 0700 if missing)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -l ttl -d 'How long the credential lives (30m, 1h, 90s, 2h30m; 1m to 7d; the relay may cap it)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -s n -l namespace -d 'The default namespace of the kubeconfig\'s context' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -l force -d 'Replace an existing DIR/kubeconfig (the session it holds is not revoked)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from mint" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from list" -l agent -d 'Only the sessions of this agent' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format: table, or json (the AgentSessionList as the relay sends it)' -r -f -a "table\t'Aligned columns'
json\t'The AgentSessionList JSON'"
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from list" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from list" -l all -d 'Every engineer\'s sessions (relay admins only)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from revoke" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from stop" -l engineer -d 'Only this engineer\'s sessions, by OIDC subject (admins; others always stop their own)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from stop" -l profile -d 'The profile: one relay and one identity (several can live side by side)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from stop" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "mint" -d 'Mint an agent credential into DIR/kubeconfig for an agent started elsewhere'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "list" -d 'List your agent sessions, newest first, ended ones included'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke agent sessions by id: their certificate and token stop working at once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "stop" -d 'The kill switch: stop every active session of an agent at once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand agents; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
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
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check pki help" -l config -d 'The relay\'s YAML configuration' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check pki help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check pki help" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check pki help" -f -a "check" -d 'Validate the configuration and print a summary (exit 1 with the offending key otherwise)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check pki help" -f -a "pki" -d 'Make the relay\'s certificates (`hoop-kube relay pki init`)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and not __fish_seen_subcommand_from check pki help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from check" -l config -d 'The relay\'s YAML configuration' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from pki" -l config -d 'The relay\'s YAML configuration' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from pki" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from pki" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from pki" -f -a "init" -d 'Create a new CA and the relay\'s serving certificate in --dir'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from pki" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate the configuration and print a summary (exit 1 with the offending key otherwise)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "pki" -d 'Make the relay\'s certificates (`hoop-kube relay pki init`)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand relay; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l profile -d 'Run the forwarder of a logged-in profile: relay, pin, listen address, certificate and key all come from it, and a renewed certificate is picked up while running (this is what `hoop-kube credential` starts in the background)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l relay -d 'The relay, https://HOST:PORT' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l relay-ca -d 'The CA that signed the relay\'s certificate (PEM)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l client-cert -d 'Client certificate for mutual TLS with the relay (PEM)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l client-key -d 'Its private key (PEM)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l listen -d 'Where kubectl connects (default 127.0.0.1:0, a free port)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -l local-ca-dir -d 'Directory of the local CA (default: $XDG_CONFIG_HOME/hoop-kube/forward)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand forward" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -f -a "list" -d 'List the pending reviews you requested or may decide (--all: every state)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -f -a "show" -d 'Show one review in detail'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -f -a "approve" -d 'Approve a review: the held request (or its next identical retry) runs once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -f -a "deny" -d 'Deny a review; the held request gets a 403 with your reason'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -f -a "wait" -d 'Wait until a review is decided (progress on stderr); exit 0 when approved, 1 otherwise'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and not __fish_seen_subcommand_from list show approve deny wait help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from list" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from list" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from list" -l all -d 'Also approved, denied, spent and expired reviews'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from show" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from show" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from approve" -l reason -d 'An optional note kept with the approval' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from approve" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from approve" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from approve" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from approve" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from deny" -l reason -d 'Why (required; the requester sees it)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from deny" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from deny" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from deny" -l stop-agent -d 'Also stop the agent that made the request (its sessions for that engineer)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from deny" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from deny" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from wait" -l timeout -d 'Give up after this many seconds (exit 1)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from wait" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from wait" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from wait" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from wait" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the pending reviews you requested or may decide (--all: every state)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one review in detail'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from help" -f -a "approve" -d 'Approve a review: the held request (or its next identical retry) runs once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from help" -f -a "deny" -d 'Deny a review; the held request gets a 403 with your reason'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from help" -f -a "wait" -d 'Wait until a review is decided (progress on stderr); exit 0 when approved, 1 otherwise'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand reviews; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -f -a "list" -d 'List recorded requests, newest first (default: the newest 100 you may see)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -f -a "show" -d 'Show one record in detail, and every request of the kubectl invocation it belongs to'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -f -a "replay" -d 'Play a recorded exec or attach session in this terminal, at its original pace'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -f -a "export" -d 'Write a recorded session as asciicast v2 (for `asciinema play`) or as JSON'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -f -a "tail" -d 'Follow requests as the relay records them, one line each, until Ctrl-C'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export tail help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l user -d 'Only requests of this user: their user name or OIDC subject (default: every user whose records you may read: yourself, or everyone if you are an auditor)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l agent -d 'Only requests an agent made, by the agent\'s name (the token\'s act.sub), for any user' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l since -d 'Only requests received at or after this time: RFC 3339 (2025-01-31T14:00:00Z, or with an offset) or a duration before now (30s, 15m, 2h, 3d, 1w, 1h30m). Default: no lower bound for list; for tail, only new requests (with --since, tail first prints those since then)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l verb -d 'Only requests with this Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection; the lower-case method of a non-resource request)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l resource -d 'Only requests for this resource, by its plural name as in the URL (pods, deployments, secrets), not by kind or short name; any API group' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -s n -l namespace -d 'Only requests in this namespace' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l decision -d 'Only requests the relay decided this way' -r -f -a "allow\t'Forwarded: a policy rule (or the access list alone) allowed it'
deny\t'Refused by a policy rule (403)'
review\t'Held for review and not approved (pending, denied or expired)'
approved\t'Forwarded on an approval it spent'
refused\t'Refused before the policy (authentication, forbidden headers, hostile paths, the access list)'"
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l until -d 'Only requests received before this time (RFC 3339 or a duration before now, as --since). Default: up to now' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l limit -d 'At most this many records, the newest (1 to 1000; default 100)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format: table, json (the RecordList as the relay sends it) or audit (one audit.k8s.io/v1 Event per line, JSON lines for audit tooling)' -r -f -a "table\t'Aligned columns'
json\t'The RecordList JSON'
audit\t'audit.k8s.io/v1 Events, one per line'"
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from show" -l kubectl-session -d 'List the requests of one kubectl invocation instead of a record: its Kubectl-Session (`show ID` prints it as "kubectl session")' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format: text (the record\'s fields, then its kubectl invocation as a table) or json (the Record; with --kubectl-session a RecordList, oldest first)' -r -f -a "text\t'Fields and a table'
json\t'The JSON the relay sent'"
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from show" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from show" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from replay" -l speed -d 'Playback speed: 2 plays twice as fast, 0.5 at half speed, 1 as recorded' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from replay" -l max-idle -d 'Shorten every pause longer than this to it (before --speed applies): 1s, 500ms, 2m, or plain seconds like 1.5 (default: pauses play as recorded)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from replay" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from replay" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from replay" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from export" -l format -d 'asciicast (v2: `asciinema play FILE` and `hoop-kube sessions replay` play it) or json (the session\'s metadata, its record and every event with its data in base64)' -r -f -a "asciicast\t'asciicast v2 text'
json\t'The session export JSON'"
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from export" -s o -l output -d 'Write to FILE instead of stdout: atomically (a temporary file renamed over it) and readable only by you (mode 0600)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from export" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from export" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from export" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l user -d 'Only requests of this user: their user name or OIDC subject (default: every user whose records you may read: yourself, or everyone if you are an auditor)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l agent -d 'Only requests an agent made, by the agent\'s name (the token\'s act.sub), for any user' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l since -d 'Only requests received at or after this time: RFC 3339 (2025-01-31T14:00:00Z, or with an offset) or a duration before now (30s, 15m, 2h, 3d, 1w, 1h30m). Default: no lower bound for list; for tail, only new requests (with --since, tail first prints those since then)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l verb -d 'Only requests with this Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection; the lower-case method of a non-resource request)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l resource -d 'Only requests for this resource, by its plural name as in the URL (pods, deployments, secrets), not by kind or short name; any API group' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -s n -l namespace -d 'Only requests in this namespace' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l decision -d 'Only requests the relay decided this way' -r -f -a "allow\t'Forwarded: a policy rule (or the access list alone) allowed it'
deny\t'Refused by a policy rule (403)'
review\t'Held for review and not approved (pending, denied or expired)'
approved\t'Forwarded on an approval it spent'
refused\t'Refused before the policy (authentication, forbidden headers, hostile paths, the access list)'"
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -s o -l output -d 'Output format: table (one row per request, flushed as it arrives) or json (each watch line as the relay sends it: {"type":"RECORD","stage":…,"record":{…}}, every stage)' -r -f -a "table\t'Rows'
json\t'JSON lines'"
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l kubeconfig -d 'The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -l context -d 'The kubeconfig context whose relay and identity to use (default: its current context)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from tail" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "list" -d 'List recorded requests, newest first (default: the newest 100 you may see)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one record in detail, and every request of the kubectl invocation it belongs to'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "replay" -d 'Play a recorded exec or attach session in this terminal, at its original pace'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "export" -d 'Write a recorded session as asciicast v2 (for `asciinema play`) or as JSON'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "tail" -d 'Follow requests as the relay records them, one line each, until Ctrl-C'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and not __fish_seen_subcommand_from test help" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and not __fish_seen_subcommand_from test help" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and not __fish_seen_subcommand_from test help" -f -a "test" -d 'Explain the decision for a described request, rule by rule'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and not __fish_seen_subcommand_from test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from test" -l config -d 'The relay\'s YAML configuration (only its `policy:` section is read)' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from test" -l as -d 'The token subject asking (also its user name)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from test" -l group -d 'A group of the user; repeat for several' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from test" -l agent -d 'The agent acting for the user (the token\'s `act.sub`)' -r
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from test" -l object -d 'The object of a create/update/patch (JSON or YAML), seen by CEL as `object`' -r -F
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from test" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "test" -d 'Explain the decision for a described request, rule by rule'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand completions" -s h -l help -d 'Print help'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand completions" -s V -l version -d 'Print version'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "login" -d 'Log in: OIDC device flow, tokens into the OS keyring, a client certificate from the relay'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "logout" -d 'Forget a profile\'s tokens, client key and certificate, here and in the keyring'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "status" -d 'Show a profile\'s identity, groups, token and certificate expiry, relay and forwarder'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "kubeconfig" -d 'Add or update the kubeconfig context that uses this profile (idempotent)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "credential" -d 'The kubectl exec credential plugin (kubectl runs it; you do not need to)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "run" -d 'Run a command as an AI agent, with a credential of its own that ends when the command does'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "agents" -d 'Mint, list, revoke or stop AI agent sessions (see `hoop-kube run --help`)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "sim" -d 'Run the bundled Kubernetes API simulator (the test bed; no cluster needed)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "demo" -d 'Run the whole stack on this machine: simulator, relay (dev mode), forwarders'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "relay" -d 'Run the relay: the only holder of the cluster credential'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "forward" -d 'Run a local forwarder: kubectl talks HTTPS to 127.0.0.1, the forwarder talks mutual TLS to the relay'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "reviews" -d 'List, show, approve, deny or wait for reviews of held requests'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "sessions" -d 'List, show, follow, replay or export the relay\'s records of requests and exec sessions'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "policy" -d 'Work with the relay\'s policy (`hoop-kube policy test`)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "completions" -d 'Print shell completions for SHELL to stdout'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and not __fish_seen_subcommand_from login logout status kubeconfig credential run agents sim demo relay forward reviews sessions policy completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "mint" -d 'Mint an agent credential into DIR/kubeconfig for an agent started elsewhere'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "list" -d 'List your agent sessions, newest first, ended ones included'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "revoke" -d 'Revoke agent sessions by id: their certificate and token stop working at once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from agents" -f -a "stop" -d 'The kill switch: stop every active session of an agent at once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from relay" -f -a "check" -d 'Validate the configuration and print a summary (exit 1 with the offending key otherwise)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from relay" -f -a "pki" -d 'Make the relay\'s certificates (`hoop-kube relay pki init`)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from reviews" -f -a "list" -d 'List the pending reviews you requested or may decide (--all: every state)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from reviews" -f -a "show" -d 'Show one review in detail'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from reviews" -f -a "approve" -d 'Approve a review: the held request (or its next identical retry) runs once'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from reviews" -f -a "deny" -d 'Deny a review; the held request gets a 403 with your reason'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from reviews" -f -a "wait" -d 'Wait until a review is decided (progress on stderr); exit 0 when approved, 1 otherwise'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "list" -d 'List recorded requests, newest first (default: the newest 100 you may see)'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "show" -d 'Show one record in detail, and every request of the kubectl invocation it belongs to'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "replay" -d 'Play a recorded exec or attach session in this terminal, at its original pace'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "export" -d 'Write a recorded session as asciicast v2 (for `asciinema play`) or as JSON'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "tail" -d 'Follow requests as the relay records them, one line each, until Ctrl-C'
complete -c hoop-kube -n "__fish_hoop_kube_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "test" -d 'Explain the decision for a described request, rule by rule'
