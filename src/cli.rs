//! The command line: every subcommand, its flags and their help text.
//!
//! Argument parsing stays close to argv (clap derive); each command's `run` resolves the values
//! and does the work. Errors leave here as `anyhow` chains that `main` prints on one line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

#[path = "cli/agents.rs"]
mod agents;
#[path = "cli/login.rs"]
mod login;
#[path = "cli/reviews.rs"]
mod reviews;
#[path = "cli/sessions.rs"]
mod sessions;

/// hoop-kube: a policy-enforcing, recording relay for kubectl, and the tools around it.
#[derive(Debug, Parser)]
#[command(name = "hoop-kube", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in: OIDC device flow, tokens into the OS keyring, a client certificate from the relay.
    ///
    /// Prints a URL and a code (and a QR code on a terminal) to approve in a browser on any
    /// device, waits for the approval, stores the ID and refresh tokens in the OS keyring (or with
    /// --token-store file in a 0600 file), then makes a key pair on this machine and has the
    /// relay certify it for mutual TLS (12 hours; renewed automatically). The first login of a
    /// profile needs --relay, --relay-ca-sha256 and --issuer; they are kept in the profile
    /// ($XDG_CONFIG_HOME/hoop-kube/profiles/NAME.json). Then run `hoop-kube kubeconfig`.
    Login(login::LoginArgs),
    /// Forget a profile's tokens, client key and certificate, here and in the keyring.
    ///
    /// The profile's forwarder stops by itself within seconds. --forget-profile also deletes
    /// the profile's settings.
    Logout(login::LogoutArgs),
    /// Show a profile's identity, groups, token and certificate expiry, relay and forwarder.
    ///
    /// Exits 1 when kubectl could not work through the profile right now.
    Status(login::StatusArgs),
    /// Add or update the kubeconfig context that uses this profile (idempotent).
    ///
    /// The cluster is the profile's local forwarder (its CA inline), the user is the exec plugin
    /// `hoop-kube credential --profile NAME` (interactiveMode IfAvailable, provideClusterInfo).
    /// Writes the first file of $KUBECONFIG, else ~/.kube/config, unless --kubeconfig is given;
    /// other entries are kept, and an up-to-date file is not touched.
    Kubeconfig(login::KubeconfigArgs),
    /// The kubectl exec credential plugin (kubectl runs it; you do not need to).
    ///
    /// Reads KUBERNETES_EXEC_INFO and prints an ExecCredential (client.authentication.k8s.io/v1
    /// or v1beta1) on stdout. A cached token is answered without any network call; an expiring
    /// one is refreshed once for all concurrent callers. When no refresh is possible it fails with
    /// one line naming `hoop-kube login` if kubectl is not interactive, and runs the device flow
    /// on stderr if it is. Starts the profile's forwarder when it is not running.
    Credential(login::CredentialArgs),
    /// Run a command as an AI agent, with a credential of its own that ends when the command does.
    ///
    /// The relay mints an agent session for you: a client certificate and a token that name you
    /// as the engineer and NAME as the agent, valid for at most --ttl and never beyond your own
    /// certificate. COMMAND runs with KUBECONFIG pointing at a private kubeconfig (in a new 0700
    /// directory under $XDG_RUNTIME_DIR, else the temporary directory) that holds only that
    /// credential and talks straight to the relay, and with HOOP_KUBE_AGENT_SESSION set to the
    /// session id; the rest of the environment is yours. The relay applies your policy narrowed
    /// by its agent rules and limits, and its records name both of you. SIGINT, SIGTERM and
    /// SIGHUP are passed on to COMMAND. When it exits, the session is revoked (every copy of the
    /// kubeconfig stops working) and the directory deleted; the exit status is COMMAND's (128+N
    /// when signal N ended it). Example: `hoop-kube run --agent claude-code --ttl 2h -- claude`.
    ///
    /// What this guards against: a careless agent running as your own OS user. It never gets
    /// your ID token, refresh token or client key, and `hoop-kube credential`, `login`, `run` and
    /// `agents` refuse to act with your credentials inside its session. It does not stop a hostile agent: one
    /// running as your user can still read your keyring and your files, or unset the variable.
    /// Run such an agent in a container or under another OS user, and give it only the
    /// kubeconfig of `hoop-kube agents mint`.
    Run(agents::RunArgs),
    /// Mint, list, revoke or stop AI agent sessions (see `hoop-kube run --help`).
    ///
    /// Uses your profile's credentials (--profile) directly with the relay's agents API: you
    /// manage your own agents' sessions; relay admins see and stop everyone's.
    Agents(agents::AgentsArgs),
    /// Run the bundled Kubernetes API simulator (the test bed; no cluster needed).
    ///
    /// Serves TLS on --listen with HTTP/2 and HTTP/1.1, and writes into --state-dir:
    /// admin.kubeconfig (use it with `kubectl --kubeconfig`), ca.crt, relay.token,
    /// relay.crt/relay.key (the identity allowed to impersonate) and requests.jsonl (one line
    /// per request: method, raw path, effective user, groups, protocol, code).
    Sim(SimArgs),
    /// Run the whole stack on this machine: simulator, relay (dev mode), forwarders.
    ///
    /// Generates the relay's PKI and a built-in OIDC issuer into --dir, logs the demo identities
    /// in through the real path (`hoop-kube login`: device flow approved by the built-in issuer,
    /// enrollment with the relay; file token store under DIR/state), and writes DIR/kubeconfig
    /// with the contexts demo-alice (alice, group dev) and demo-sam (sam, sre), whose users run
    /// the `hoop-kube credential` plugin, and demo-agent: the agent demo-bot, whose credential the
    /// relay minted for alice (as `hoop-kube agents mint` does). Runs until interrupted.
    Demo(DemoArgs),
    /// Run the relay: the only holder of the cluster credential.
    ///
    /// `hoop-kube relay --config relay.yaml` serves; `hoop-kube relay check --config relay.yaml`
    /// validates the file and prints a summary, or one line naming the offending key. See
    /// packaging/relay.example.yaml for every setting.
    Relay(RelayArgs),
    /// Run a local forwarder: kubectl talks HTTPS to 127.0.0.1, the forwarder talks mutual TLS
    /// to the relay.
    Forward(ForwardArgs),
    /// List, show, approve, deny or wait for reviews of held requests.
    ///
    /// Reaches the relay through a kubeconfig context (--kubeconfig, --context; default the
    /// current context of $KUBECONFIG or ~/.kube/config) with that context's identity: its
    /// token, token file or exec plugin (run as kubectl runs it). Only members of a review's
    /// reviewer groups may decide it, and the requester only when the rule allows self-approval.
    Reviews(reviews::ReviewsArgs),
    /// List, show, follow, replay or export the relay's records of requests and exec sessions.
    ///
    /// The relay records every request (who, which agent, what, the decision and its rule, the
    /// status code, the kubectl command) and every exec, attach and port-forward session.
    /// Reaches the relay as `reviews` does: through a kubeconfig context (--kubeconfig,
    /// --context; default the current context of $KUBECONFIG or ~/.kube/config) with that
    /// context's identity. You see your own records; members of the relay's `records.auditors`
    /// groups see everyone's.
    Sessions(sessions::SessionsArgs),
    /// Work with the relay's policy (`hoop-kube policy test`).
    #[command(subcommand)]
    Policy(PolicyAction),
    /// Print shell completions for SHELL to stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `hoop-kube sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Directory for the kubeconfig, certificates, relay identity and request log.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Kubernetes version reported by /version (kubectl's dispatcher picks its binary by it).
    #[arg(long, default_value = "1.32.5")]
    pub kube_version: String,
    /// Forward pod port PORT to a local TCP address instead of the built-in echo service
    /// (repeatable), e.g. --port-target 80=127.0.0.1:8080.
    #[arg(long = "port-target", value_parser = parse_port_target)]
    pub port_targets: Vec<(u16, SocketAddr)>,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 15)]
    pub bookmark_seconds: u64,
}

/// `hoop-kube demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's state (PKI, kubeconfig, logs); default: a new temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where the simulator listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sim_listen: SocketAddr,
}

/// `hoop-kube relay`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// The relay's YAML configuration.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Option<RelayAction>,
}

/// `hoop-kube relay …` actions.
#[derive(Debug, Subcommand)]
pub enum RelayAction {
    /// Validate the configuration and print a summary (exit 1 with the offending key otherwise).
    Check,
    /// Make the relay's certificates (`hoop-kube relay pki init`).
    #[command(subcommand)]
    Pki(RelayPkiAction),
}

/// `hoop-kube relay pki …` actions.
#[derive(Debug, Subcommand)]
pub enum RelayPkiAction {
    /// Create a new CA and the relay's serving certificate in --dir.
    ///
    /// Writes ca.crt, ca.key (mode 0600), relay.crt (the relay's certificate for every --host,
    /// followed by the CA, so clients find the CA in the chain) and relay.key (0600) into --dir,
    /// created with mode 0700. The one CA signs the relay's certificate and, with `enrollment`,
    /// the client certificates users get at `hoop-kube login`.
    ///
    /// Prints the CA's SHA-256 fingerprint (clients pin the relay by it) and the `tls:` and
    /// `enrollment:` sections to paste into relay.yaml. Refuses to overwrite any existing file
    /// unless --force is given: a new CA means a new fingerprint for every client.
    Init(RelayPkiInitArgs),
}

/// `hoop-kube relay pki init`.
#[derive(Debug, clap::Args)]
pub struct RelayPkiInitArgs {
    /// Directory for ca.crt, ca.key, relay.crt and relay.key (created 0700 if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// A DNS name or IP address clients reach the relay by; repeat for several (at least one).
    #[arg(long = "host", value_name = "NAME", required = true)]
    pub hosts: Vec<String>,
    /// Validity of relay.crt in days, 1 to 3650 (the CA is valid for ten years).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Replace existing files: a new CA, so clients must pin the new fingerprint and log in again.
    #[arg(long)]
    pub force: bool,
}

/// `hoop-kube policy …` actions.
#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Explain the decision for a described request, rule by rule.
    ///
    /// Reads only the `policy:` section of --config (checked exactly as `relay check` does),
    /// parses METHOD PATH with the relay's own request parser, and prints the decision, the
    /// deciding rule, every rule that matched with its action, reviewers and mask, and the message
    /// kubectl would print. Example:
    /// `hoop-kube policy test --config relay.yaml --as alice --group dev DELETE
    /// /api/v1/namespaces/prod-eu/pods/web-1`.
    ///
    /// Exit status: 0 allowed, 1 denied (also for a path the relay refuses), 3 held for review,
    /// 2 on errors (unreadable or invalid config, bad --object, bad arguments).
    Test(PolicyTestArgs),
}

/// `hoop-kube policy test`.
#[derive(Debug, clap::Args)]
pub struct PolicyTestArgs {
    /// The relay's YAML configuration (only its `policy:` section is read).
    #[arg(long)]
    pub config: PathBuf,
    /// The token subject asking (also its user name).
    #[arg(long = "as", value_name = "SUBJECT")]
    pub subject: String,
    /// A group of the user; repeat for several.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The agent acting for the user (the token's `act.sub`).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// The object of a create/update/patch (JSON or YAML), seen by CEL as `object`.
    #[arg(long, value_name = "FILE")]
    pub object: Option<PathBuf>,
    /// The HTTP method: GET, POST, PUT, PATCH, DELETE, …
    pub method: String,
    /// The raw path as kubectl sends it, with an optional ?query,
    /// e.g. /api/v1/namespaces/prod/pods/web-1/exec?command=sh.
    pub path: String,
}

/// `hoop-kube forward`.
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// Run the forwarder of a logged-in profile: relay, pin, listen address, certificate and key
    /// all come from it, and a renewed certificate is picked up while running (this is what
    /// `hoop-kube credential` starts in the background).
    #[arg(long, conflicts_with_all = ["relay", "relay_ca", "client_cert", "client_key", "listen"])]
    pub profile: Option<String>,
    /// The relay, https://HOST:PORT.
    #[arg(long, required_unless_present = "profile")]
    pub relay: Option<String>,
    /// The CA that signed the relay's certificate (PEM).
    #[arg(long, required_unless_present = "profile")]
    pub relay_ca: Option<PathBuf>,
    /// Client certificate for mutual TLS with the relay (PEM).
    #[arg(long, required_unless_present = "profile")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, required_unless_present = "profile")]
    pub client_key: Option<PathBuf>,
    /// Where kubectl connects (default 127.0.0.1:0, a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory of the local CA (default: $XDG_CONFIG_HOME/hoop-kube/forward).
    #[arg(long)]
    pub local_ca_dir: Option<PathBuf>,
}

fn parse_port_target(s: &str) -> Result<(u16, SocketAddr), String> {
    let (port, addr) = s.split_once('=').ok_or_else(|| format!("expected PORT=ADDRESS, got {s:?}"))?;
    let port = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
    let addr = addr.parse().map_err(|_| format!("invalid address {addr:?} (use IP:PORT)"))?;
    Ok((port, addr))
}

impl Cli {
    /// Whether the command finishes quickly and serves nothing (a single-threaded runtime is
    /// enough, and cheaper to start: `credential` runs on every kubectl call).
    pub fn short_lived(&self) -> bool {
        matches!(self.command, Command::Credential(_) | Command::Status(_) | Command::Logout(_) | Command::Kubeconfig(_) | Command::Login(_) | Command::Reviews(_) | Command::Sessions(_) | Command::Agents(_) | Command::Completions { .. })
    }
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sim(a) => run_sim(a).await,
        Command::Demo(a) => run_demo(a).await,
        Command::Relay(a) => run_relay(a).await,
        Command::Forward(a) => run_forward(a).await,
        Command::Policy(PolicyAction::Test(a)) => run_policy_test(a),
        Command::Reviews(a) => reviews::run(a).await,
        Command::Sessions(a) => sessions::run(a).await,
        Command::Login(a) => login::run_login(a).await,
        Command::Logout(a) => login::run_logout(a).await,
        Command::Status(a) => login::run_status(a).await,
        Command::Kubeconfig(a) => login::run_kubeconfig(a).await,
        Command::Credential(a) => login::run_credential(a).await,
        Command::Run(a) => agents::run_agent(a).await,
        Command::Agents(a) => agents::run(a).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hoop-kube", &mut std::io::stdout());
            Ok(())
        }
    }
}

async fn run_sim(a: SimArgs) -> anyhow::Result<()> {
    let mut cfg = crate::sim::SimConfig::new(a.listen, &a.state_dir);
    cfg.kube_version = a.kube_version;
    cfg.port_targets = a.port_targets;
    cfg.bookmark_interval = Duration::from_secs(a.bookmark_seconds.max(1));
    let running = crate::sim::start(cfg).await.context("cannot start the simulator")?;
    eprintln!("hoop-kube sim: serving the Kubernetes API on {}", running.url);
    eprintln!("  kubectl --kubeconfig {} get pods", running.kubeconfig.display());
    eprintln!("  request log: {}", a.state_dir.join("requests.jsonl").display());
    tokio::select! {
        r = running.task => r.context("the simulator stopped unexpectedly")?,
        _ = tokio::signal::ctrl_c() => eprintln!("hoop-kube sim: stopping"),
    }
    Ok(())
}

async fn run_demo(a: DemoArgs) -> anyhow::Result<()> {
    let dir = match a.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("hoop-kube-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let users = crate::demo::demo_users();
    let stack = crate::demo::start_with(&dir, &users, crate::demo::Issuer::Dev, a.sim_listen, Some(crate::demo::DEMO_POLICY)).await.context("cannot start the demo")?;
    let exe = std::env::current_exe().context("cannot locate the hoop-kube executable")?;
    eprintln!("hoop-kube demo: logging the demo users in (device flow, approved by the demo's issuer)…");
    let kubeconfig = crate::demo::login_users(&stack, &users, &exe).await.context("cannot log the demo users in")?;
    let kc = kubeconfig.display();
    println!("hoop-kube demo is running (Ctrl-C to stop); state in {}", dir.display());
    println!("  simulator  {}", stack.sim.url);
    println!("  relay      {}   (config: {})", stack.relay.url, stack.relay_config.display());
    if let Some(dev) = &stack.dev_issuer {
        println!("  issuer     {}   (built-in; approve logins at {}/device)", dev.issuer(), dev.issuer());
    }
    println!("  kubeconfig {kc}   (demo-alice and demo-sam run `hoop-kube credential`; demo-agent is the agent demo-bot, minted for alice)");
    println!();
    println!("Try:");
    println!("  export KUBECONFIG={kc}");
    println!("  kubectl --context demo-alice get pods -A");
    println!("  kubectl --context demo-alice run web --image=nginx -- sh -c 'while true; do echo tick; sleep 1; done'");
    println!("  kubectl --context demo-alice logs -f web");
    println!("  kubectl --context demo-alice exec -it web -- sh");
    println!("  kubectl --context demo-alice port-forward pod/web 8080:80");
    println!("  kubectl --context demo-alice get pods -w");
    println!("  kubectl --context demo-alice create secret generic db --from-literal=password=hunter2");
    println!("  kubectl --context demo-alice get secret db -o yaml    # data.password is masked (hoop-kube:masked)");
    println!("  kubectl --context demo-agent get secrets        # denied: agents never read secrets");
    println!("  HOOP_KUBE_CONFIG_DIR={} XDG_STATE_HOME={} hoop-kube run --agent bot --profile demo-alice -- kubectl get pods", dir.join("config").display(), dir.join("state").display());
    println!("  kubectl --context demo-alice delete pod web     # held for approval by sre; meanwhile:");
    println!("  hoop-kube reviews list --context demo-sam; hoop-kube reviews approve ID --context demo-sam");
    println!("  hoop-kube sessions tail --context demo-sam       # every request, live (sam is an auditor)");
    println!("  hoop-kube sessions list --context demo-alice     # alice's own records; the exec session's ID, then:");
    println!("  hoop-kube sessions replay ID --context demo-alice");
    println!("  tail -f {}/relay/audit.jsonl   # the audit.k8s.io/v1 export", dir.display());
    println!("  hoop-kube policy test --config {} --as alice --group dev --agent demo-bot GET /api/v1/namespaces/default/secrets", stack.relay_config.display());
    println!("  HOOP_KUBE_CONFIG_DIR={} XDG_STATE_HOME={} hoop-kube status --profile demo-alice", dir.join("config").display(), dir.join("state").display());
    println!("The simulator's request log ({}) shows who the cluster saw.", dir.join("sim/requests.jsonl").display());
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    crate::demo::logout_users(&stack, &users, &exe).await;
    eprintln!("hoop-kube demo: stopping");
    Ok(())
}

async fn run_relay(a: RelayArgs) -> anyhow::Result<()> {
    if let Some(RelayAction::Pki(RelayPkiAction::Init(p))) = a.action {
        let opts = crate::relay::pki_init::PkiInit { dir: p.dir, hosts: p.hosts, days: p.days, force: p.force };
        let created = crate::relay::pki_init::init(&opts)?;
        println!("hoop-kube relay pki init: wrote ca.crt, ca.key, relay.crt and relay.key in {}", created.dir.display());
        println!("CA fingerprint (SHA-256): {}", created.fingerprint);
        println!("Keep ca.key and agent-signing.key secret (anyone holding them can mint credentials). Add to relay.yaml:\n");
        print!("{}", created.snippet());
        return Ok(());
    }
    let path = a.config.context("--config is required: the relay's YAML file (see packaging/relay.example.yaml)")?;
    let cfg = crate::relay::config::RelayConfig::load(&path)?;
    if let Some(RelayAction::Check) = a.action {
        println!("{}", cfg.summary());
        return Ok(());
    }
    let running = crate::relay::boot::start(&cfg).await?;
    eprintln!("hoop-kube relay: serving on {}", running.url);
    tokio::select! {
        r = running.task => r.context("the relay stopped unexpectedly")?,
        _ = tokio::signal::ctrl_c() => eprintln!("hoop-kube relay: stopping"),
    }
    Ok(())
}

/// Exits the process itself: its exit status is the decision (see `PolicyAction::Test`).
fn run_policy_test(a: PolicyTestArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let t = crate::policy::explain::TestRequest { config: a.config, subject: a.subject, groups: a.groups, agent: a.agent, object: a.object, method: a.method, target: a.path };
    let mut out = std::io::stdout().lock();
    let code = match crate::policy::explain::run(&t, &mut out) {
        Ok(outcome) => outcome.code(),
        Err(e) => {
            eprintln!("hoop-kube: {e}");
            2
        }
    };
    let _ = out.flush();
    std::process::exit(code)
}

async fn run_forward(a: ForwardArgs) -> anyhow::Result<()> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let local_ca_dir = match a.local_ca_dir {
        Some(d) => d,
        None => crate::forward::local_ca::default_dir().context("no home directory; pass --local-ca-dir")?,
    };
    if let Some(name) = &a.profile {
        let p = crate::login::profile::Profile::load(name)?;
        let f = crate::forward::for_profile::start(&p, local_ca_dir).await?;
        eprintln!("hoop-kube forward: profile \"{name}\": kubectl can connect to {}, relay {}", f.forwarding.url, p.relay_url);
        tokio::select! {
            why = f.watch(&p) => anyhow::bail!("stopping the forwarder of profile \"{name}\": {why}"),
            _ = tokio::signal::ctrl_c() => eprintln!("hoop-kube forward: stopping"),
        }
        return Ok(());
    }
    let need = |v: Option<PathBuf>, flag: &str| v.with_context(|| format!("{flag} is required without --profile"));
    let cfg = crate::forward::ForwardConfig {
        listen: a.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
        relay: a.relay.context("--relay is required without --profile")?,
        trust: crate::forward::RelayTrust::CaPem(read(&need(a.relay_ca, "--relay-ca")?)?),
        client: crate::forward::RelayIdentity::new(&crate::pki::Leaf { cert_pem: read(&need(a.client_cert, "--client-cert")?)?, key_pem: read(&need(a.client_key, "--client-key")?)? })?,
        local_ca_dir,
    };
    let f = crate::forward::start(cfg).await.context("cannot start the forwarder")?;
    eprintln!("hoop-kube forward: kubectl can connect to {} (local CA: {} bytes PEM)", f.url, f.ca_pem.len());
    tokio::select! {
        r = f.task => r.context("the forwarder stopped unexpectedly")?,
        _ = tokio::signal::ctrl_c() => eprintln!("hoop-kube forward: stopping"),
    }
    Ok(())
}
