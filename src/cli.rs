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
