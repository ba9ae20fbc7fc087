//! `hoop-kube run --agent` and `hoop-kube agents mint|list|revoke|stop`: an engineer's agent
//! sessions from the command line. Flags, help text and output here; the API client, the key,
//! the guard and the ttl parser are in [`crate::agent::client`], the kubeconfig in
//! [`crate::agent::kubeconfig`], the process handling in [`crate::agent::launch`].
//! Everything printed from a session went through [`crate::text::clip`]: it came from the relay.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::login::ProfileArg;
use crate::agent::client::{self, AgentApi};
use crate::agent::launch;
use crate::agent::kubeconfig;
use crate::agent::{SessionInfo, StopRequest, SESSION_ENV};
use crate::login::profile::Profile;

/// The ttl when --ttl is not given.
const DEFAULT_TTL: &str = "1h";

/// `hoop-kube run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The agent's name: lower-case letters, digits, '-' and '.' (at most 63), e.g. claude-code.
    /// Policy rules can match it; records show it beside your name.
    #[arg(long, value_name = "NAME", value_parser = parse_agent)]
    pub agent: String,
    /// How long the credential may live at most (30m, 1h, 90s, 2h30m; 1m to 7d). The relay may
    /// cap it (its agents.max_ttl_minutes, and never beyond your own certificate); it is revoked anyway
    /// when COMMAND exits.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TTL, value_parser = parse_ttl)]
    pub ttl: Duration,
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The default namespace of the agent's kubeconfig context.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Do not print the session line on stderr before COMMAND starts.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// The command to run as the agent, and its arguments (after --).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `hoop-kube agents`.
#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    #[command(subcommand)]
    pub action: AgentsAction,
}

/// `hoop-kube agents …` actions.
#[derive(Debug, clap::Subcommand)]
pub enum AgentsAction {
    /// Mint an agent credential into DIR/kubeconfig for an agent started elsewhere.
    ///
    /// For a CI job, a container, or an agent under another OS user: DIR/kubeconfig (mode 0600;
    /// DIR created 0700) holds the agent's certificate, key and token and points kubectl
    /// straight at the relay, so it works wherever it is copied. Nothing secret is written
    /// anywhere else. The session is not revoked when this command exits: it lives until --ttl
    /// runs out or `hoop-kube agents revoke ID` (or `agents stop NAME`) ends it.
    Mint(MintArgs),
    /// List your agent sessions, newest first, ended ones included.
    ///
    /// Columns: SESSION (the id to revoke), AGENT, ENGINEER, STATE (active, revoked, stopped,
    /// expired), EXPIRES (relative, and local time), REQUESTS (that reached the policy),
    /// MUTATING and DELETES (let through), COMMAND (what `hoop-kube run` launched).
    List(ListArgs),
    /// Revoke agent sessions by id: their certificate and token stop working at once.
    ///
    /// Revoking an ended session changes nothing and is not an error.
    Revoke(RevokeArgs),
    /// The kill switch: stop every active session of an agent at once.
    ///
    /// New requests are refused and open watches, logs, exec and port-forward streams are cut.
    /// You stop your own agent's sessions; relay admins may stop anyone's (--engineer narrows it
    /// to one engineer).
    Stop(StopArgs),
}

/// `hoop-kube agents mint`.
#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// The agent's name (as for `hoop-kube run --agent`).
    #[arg(long, value_name = "NAME", value_parser = parse_agent)]
    pub agent: String,
    /// The directory for the kubeconfig (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How long the credential lives (30m, 1h, 90s, 2h30m; 1m to 7d; the relay may cap it).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TTL, value_parser = parse_ttl)]
    pub ttl: Duration,
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The default namespace of the kubeconfig's context.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Replace an existing DIR/kubeconfig (the session it holds is not revoked).
    #[arg(long)]
    pub force: bool,
}

/// `hoop-kube agents list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Every engineer's sessions (relay admins only).
    #[arg(long)]
    pub all: bool,
    /// Only the sessions of this agent.
    #[arg(long, value_name = "NAME", value_parser = parse_agent)]
    pub agent: Option<String>,
    /// Output format: table, or json (the AgentSessionList as the relay sends it).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListOutput::Table)]
    pub output: ListOutput,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// `agents list -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListOutput {
    /// Aligned columns.
    Table,
    /// The AgentSessionList JSON.
    Json,
}

/// `hoop-kube agents revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Session ids, as `agents list` and `hoop-kube run` print them.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub profile: ProfileArg,
}

/// `hoop-kube agents stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// The agent whose active sessions to stop.
    #[arg(value_name = "NAME", value_parser = parse_agent)]
    pub agent: String,
    /// Only this engineer's sessions, by OIDC subject (admins; others always stop their own).
    #[arg(long, value_name = "SUBJECT")]
    pub engineer: Option<String>,
    #[command(flatten)]
    pub profile: ProfileArg,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    client::parse_ttl(s).map_err(|e| e.to_string())
}

fn parse_agent(s: &str) -> Result<String, String> {
    crate::agent::check_name(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

/// The engineer's agents API for `profile`; a device-flow login only when stdin is a terminal.
async fn api(profile: &str) -> anyhow::Result<(Profile, AgentApi)> {
    let p = Profile::load(profile)?;
    let api = AgentApi::for_profile(&p, std::io::stdin().is_terminal(), |w| eprintln!("hoop-kube: warning: {w}")).await?;
    Ok((p, api))
}

/// The kubeconfig context of an agent credential.
fn context_name(agent: &str) -> String {
    format!("hoop-kube-agent-{agent}")
}

/// `notAfter` in local time, or the relay's text when it does not parse.
fn local(rfc3339: &str) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %Z").to_string(),
        Err(_) => crate::text::clip(rfc3339, 40),
    }
}

/// `hoop-kube run --agent NAME -- COMMAND…`. Exits the process itself with COMMAND's status.
pub async fn run_agent(a: RunArgs) -> anyhow::Result<()> {
    client::refuse_in_agent_session()?;
    let (p, api) = api(&a.profile.profile).await?;
    let line = client::command_line(&a.command);
    let (minted, key) = client::mint_session(&api, &a.agent, a.ttl, Some(line)).await?;
    let s = &minted.session;
    let id = s.id.clone();

    // From here on every way out revokes the session and deletes the directory; a signal no
    // longer ends hoop-kube, it is passed on to COMMAND (or stops it from starting).
    let ran = async {
        let signals = launch::Signals::listen()?;
        let ca = api.server_ca_pem().await?;
        let dir = launch::PrivateDir::create("hoop-kube-agent")?;
        let path = kubeconfig::write_agent_kubeconfig(dir.path(), api.relay_url(), &ca, &minted, key.key_pem(), &context_name(&a.agent), a.namespace.as_deref())?;
        if !a.quiet {
            eprintln!(
                "hoop-kube: agent {} runs as session {id} for {} until {}; revoked when the command exits",
                s.agent,
                crate::text::clip(&s.username, 80),
                local(&s.not_after)
            );
        }
        let env = [("KUBECONFIG", path.as_os_str()), (SESSION_ENV, id.as_ref())];
        let status = launch::run(&a.command[0], &a.command[1..], &env, signals).await?;
        anyhow::Ok((status, dir))
    }
    .await;
    let revoked = revoke_at_exit(&p, &api, &id).await;
    if let Err(r) = &revoked {
        eprintln!("{}", revoke_hint(&id, &s.not_after, r));
    }
    let code = match ran {
        Ok((status, dir)) => {
            if let Err(e) = dir.remove() {
                eprintln!("hoop-kube: warning: cannot delete the agent's kubeconfig directory: {e}");
            }
            launch::exit_code(&status)
        }
        Err(e) => match e.downcast_ref::<launch::LaunchError>() {
            Some(launch::LaunchError::Interrupted { signal }) => {
                eprintln!("hoop-kube: {e}");
                128 + signal
            }
            _ => return Err(e),
        },
    };
    // A command that succeeded still fails when its credential outlives it.
    let code = if code == 0 && revoked.is_err() { 1 } else { code };
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Revoke with fresh engineer credentials (the ID token may have expired while COMMAND ran; no
/// login prompt now), else with the ones the session was minted with.
async fn revoke_at_exit(p: &Profile, minted_with: &AgentApi, id: &str) -> Result<(), client::AgentClientError> {
    match AgentApi::for_profile(p, false, |_| {}).await {
        Ok(fresh) => fresh.revoke(id).await.map(drop),
        Err(_) => minted_with.revoke(id).await.map(drop),
    }
}

fn revoke_hint(id: &str, not_after: &str, e: &client::AgentClientError) -> String {
    format!("hoop-kube: could not revoke agent session {id} ({e}); it still works until {}: run hoop-kube agents revoke {id}", local(not_after))
}

/// `hoop-kube agents …`.
pub async fn run(a: AgentsArgs) -> anyhow::Result<()> {
    match a.action {
        AgentsAction::Mint(m) => mint(m).await,
        AgentsAction::List(l) => {
            let (_, api) = api(&l.profile.profile).await?;
            let list = api.list(l.all, l.agent.as_deref()).await?;
            match l.output {
                ListOutput::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                ListOutput::Table if list.items.is_empty() => eprintln!("no agent sessions{}", l.agent.map(|n| format!(" of agent {n}")).unwrap_or_default()),
                ListOutput::Table => print!("{}", table(&list.items, Utc::now(), &chrono::Local)),
            }
            Ok(())
        }
        AgentsAction::Revoke(r) => {
            for id in &r.ids {
                client::check_session_id(id)?;
            }
            let (_, api) = api(&r.profile.profile).await?;
            let mut failed = 0;
            for id in &r.ids {
                match api.revoke(id).await {
                    Ok(s) => println!("{}", ended_line(&s)),
                    Err(e) => {
                        eprintln!("hoop-kube: {id}: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} sessions could not be revoked (see above)", r.ids.len());
            }
            Ok(())
        }
        AgentsAction::Stop(s) => {
            let (_, api) = api(&s.profile.profile).await?;
            let stopped = api.stop(&StopRequest { agent: s.agent.clone(), subject: s.engineer.clone() }).await?;
            if stopped.items.is_empty() {
                println!("no active session of agent {} to stop", s.agent);
            }
            for i in &stopped.items {
                println!("{}", ended_line(i));
            }
            Ok(())
        }
    }
}

/// `hoop-kube agents mint`.
async fn mint(m: MintArgs) -> anyhow::Result<()> {
    client::refuse_in_agent_session()?;
    let target = m.out.join(kubeconfig::FILE_NAME);
    if !m.force && std::fs::symlink_metadata(&target).is_ok() {
        anyhow::bail!("{} already exists; pass --force to replace it (the session it holds stays valid until it expires or `hoop-kube agents revoke ID`)", target.display());
    }
    let (_, api) = api(&m.profile.profile).await?;
    let (minted, key) = client::mint_session(&api, &m.agent, m.ttl, None).await?;
    let s = &minted.session;
    let written = async {
        let ca = api.server_ca_pem().await?;
        anyhow::Ok(kubeconfig::write_agent_kubeconfig(&m.out, api.relay_url(), &ca, &minted, key.key_pem(), &context_name(&m.agent), m.namespace.as_deref())?)
    }
    .await;
    let path = match written {
        Ok(p) => p,
        Err(e) => {
            // Nobody will ever hold this credential: end it now.
            let _ = api.revoke(&s.id).await;
            return Err(e.context(format!("minted session {} but could not write {} (the session was revoked)", s.id, target.display())));
        }
    };
    println!("agent session {} for agent {} ({}), until {}", s.id, s.agent, s.username, local(&s.not_after));
    println!("  KUBECONFIG={} kubectl get pods", shown(&path));
    println!("  end it early: hoop-kube agents revoke {}", s.id);
    Ok(())
}

fn shown(p: &Path) -> String {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs.display().to_string()
}

/// `ID: revoked (agent bot for alice, at …, by alice)`.
fn ended_line(s: &SessionInfo) -> String {
    let c = |t: &str| crate::text::clip(t, 80);
    let mut line = format!("{}: {} (agent {} for {}", c(&s.id), s.state.as_str(), c(&s.agent), c(&s.username));
    if let Some(at) = &s.ended_at {
        line.push_str(&format!(", at {}", local(at)));
    }
    if let Some(by) = &s.ended_by {
        line.push_str(&format!(", by {}", c(by)));
    }
    line.push(')');
    line
}

// === the table ===

const HEADERS: [&str; 9] = ["SESSION", "AGENT", "ENGINEER", "STATE", "EXPIRES", "REQUESTS", "MUTATING", "DELETES", "COMMAND"];
/// Widest AGENT, ENGINEER and COMMAND cell.
const MAX_CELL: usize = 40;

/// `in 42m` / `3h ago` (coarse, like kubectl's AGE).
fn relative(secs: i64) -> String {
    let (n, future) = (secs.unsigned_abs(), secs >= 0);
    let d = match n {
        0..120 => format!("{n}s"),
        120..7200 => format!("{}m", n / 60),
        7200..172_800 => format!("{}h", n / 3600),
        _ => format!("{}d", n / 86_400),
    };
    if future {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

/// The `agents list` table, at `now`, times in `tz`.
fn table<Tz: TimeZone>(items: &[SessionInfo], now: DateTime<Utc>, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut rows: Vec<[String; 9]> = vec![HEADERS.map(str::to_string)];
    for s in items {
        let expires = match DateTime::parse_from_rfc3339(&s.not_after) {
            Ok(t) => format!("{} ({})", relative((t.with_timezone(&Utc) - now).num_seconds()), t.with_timezone(tz).format("%Y-%m-%d %H:%M")),
            Err(_) => crate::text::clip(&s.not_after, 30),
        };
        let engineer = if s.username.is_empty() { &s.subject } else { &s.username };
        rows.push([
            crate::text::clip(&s.id, 40),
            crate::text::clip(&s.agent, MAX_CELL),
            crate::text::clip(engineer, MAX_CELL),
            s.state.as_str().to_string(),
            expires,
            s.requests.to_string(),
            s.mutating.to_string(),
            s.deletes.to_string(),
            s.command.as_deref().map(|c| crate::text::clip(c, MAX_CELL)).unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..9).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[path = "agents_tests.rs"]
mod tests;
