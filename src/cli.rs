//! The command line: every subcommand, its flags and their help text.
//!
//! Argument parsing stays close to argv (clap derive); each command's `run` resolves the values
//! and does the work. Errors leave here as `anyhow` chains that `main` prints on one line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

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
    /// Run the bundled Kubernetes API simulator (the test bed; no cluster needed).
    ///
    /// Serves TLS on --listen with HTTP/2 and HTTP/1.1, and writes into --state-dir:
    /// admin.kubeconfig (use it with `kubectl --kubeconfig`), ca.crt, relay.token,
    /// relay.crt/relay.key (the identity allowed to impersonate) and requests.jsonl (one line
    /// per request: method, raw path, effective user, groups, protocol, code).
    Sim(SimArgs),
    /// Run the whole stack on this machine: simulator, relay (dev mode), forwarders.
    ///
    /// Generates the relay's PKI and a built-in OIDC issuer into --dir, starts one forwarder per
    /// demo identity, and writes DIR/kubeconfig with the contexts demo-alice (alice, group dev)
    /// and demo-agent (agent-bot, acting for alice). Runs until interrupted.
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
}

/// `hoop-kube forward`.
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// The relay, https://HOST:PORT.
    #[arg(long)]
    pub relay: String,
    /// The CA that signed the relay's certificate (PEM).
    #[arg(long)]
    pub relay_ca: PathBuf,
    /// Client certificate for mutual TLS with the relay (PEM; issued at login).
    #[arg(long)]
    pub client_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub client_key: PathBuf,
    /// Where kubectl connects.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
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

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sim(a) => run_sim(a).await,
        Command::Demo(a) => run_demo(a).await,
        Command::Relay(a) => run_relay(a).await,
        Command::Forward(a) => run_forward(a).await,
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
    let stack = crate::demo::start(&dir, &crate::demo::demo_users(), crate::demo::Issuer::Dev, a.sim_listen).await.context("cannot start the demo")?;
    let kc = stack.kubeconfig.display();
    println!("hoop-kube demo is running (Ctrl-C to stop); state in {}", dir.display());
    println!("  simulator  {}", stack.sim.url);
    println!("  relay      {}   (config: {})", stack.relay.url, stack.relay_config.display());
    for (who, f) in &stack.forwarders {
        println!("  forwarder  {}   for {who}", f.url);
    }
    println!();
    println!("Try:");
    println!("  export KUBECONFIG={kc}");
    println!("  kubectl --context demo-alice get pods -A");
    println!("  kubectl --context demo-alice run web --image=nginx -- sh -c 'while true; do echo tick; sleep 1; done'");
    println!("  kubectl --context demo-alice logs -f web");
    println!("  kubectl --context demo-alice exec -it web -- sh");
    println!("  kubectl --context demo-alice port-forward pod/web 8080:80");
    println!("  kubectl --context demo-alice get pods -w");
    println!("  kubectl --context demo-agent get secrets");
    println!("The simulator's request log ({}) shows who the cluster saw.", dir.join("sim/requests.jsonl").display());
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    eprintln!("hoop-kube demo: stopping");
    Ok(())
}

async fn run_relay(a: RelayArgs) -> anyhow::Result<()> {
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

async fn run_forward(a: ForwardArgs) -> anyhow::Result<()> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let local_ca_dir = match a.local_ca_dir {
        Some(d) => d,
        None => crate::forward::local_ca::default_dir().context("no home directory; pass --local-ca-dir")?,
    };
    let cfg = crate::forward::ForwardConfig {
        listen: a.listen,
        relay: a.relay,
        relay_ca_pem: read(&a.relay_ca)?,
        client: crate::pki::Leaf { cert_pem: read(&a.client_cert)?, key_pem: read(&a.client_key)? },
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
