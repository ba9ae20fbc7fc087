//! `hoop-kube sessions list|show|replay|export|tail`: read the relay's records (one per
//! request) and watch recorded exec/attach sessions, from the kubeconfig you already use.
//!
//! The relay is reached as `hoop-kube reviews` reaches it: a kubeconfig context's server (the
//! local forwarder) and its user's credential. The calls are in [`crate::record::client`]; this
//! module turns flags into a [`Filter`] and records into tables and detail pages. Everything
//! printed from a record went through [`crate::text::clip`]: user agents, `Kubectl-Command` and
//! names are client-sent text and may hold terminal escapes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use chrono::TimeZone;

use crate::record::client::{Filter, RecordsClient, RecordsError, MAX_LIMIT};
use crate::record::event::{micro_time, now_micros, Decision, Record, Stage};
use crate::record::query::WatchLine;
use crate::record::replay::{self, ReplayOptions, ThreadSleeper};
use crate::review::client as target;

/// `hoop-kube sessions`.
#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    /// The kubeconfig (default: the first file of $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context whose relay and identity to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    #[command(subcommand)]
    pub action: SessionsAction,
}

/// `hoop-kube sessions …` actions.
#[derive(Debug, clap::Subcommand)]
pub enum SessionsAction {
    /// List recorded requests, newest first (default: the newest 100 you may see).
    ///
    /// One row per request: TIME (local), USER (`agent (for user)` when an agent acted),
    /// DECISION (and the deciding rule), CODE (`…` while still running), VERB, RESOURCE
    /// (group/resource/subresource, or the path of a non-resource request), NAMESPACE/NAME,
    /// KUBECTL (the kubectl command that sent it), SESSION (exec, attach or portforward when a
    /// session was recorded: replay it by the row's ID) and ID.
    List(ListArgs),
    /// Show one record in detail, and every request of the kubectl invocation it belongs to.
    ///
    /// With --kubectl-session, list the requests of one kubectl invocation (oldest first)
    /// instead.
    Show(ShowArgs),
    /// Play a recorded exec or attach session in this terminal, at its original pace.
    ///
    /// The recorded output goes to stdout exactly as it was (escape sequences included); notes
    /// go to stderr. Ctrl-C stops.
    Replay(ReplayArgs),
    /// Write a recorded session as asciicast v2 (for `asciinema play`) or as JSON.
    Export(ExportArgs),
    /// Follow requests as the relay records them, one line each, until Ctrl-C.
    ///
    /// In the table, a request appears when it completes; a long-running one (watch, exec,
    /// attach, port-forward) also when it starts. A warning on stderr says when the relay
    /// skipped records because this watch fell behind. If the relay ends the stream (a
    /// restart), tail prints how to resume and exits 1.
    Tail(TailArgs),
}

/// Filters shared by `list` and `tail`.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Only requests of this user: their user name or OIDC subject (default: every user whose
    /// records you may read: yourself, or everyone if you are an auditor).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only requests an agent made, by the agent's name (the token's act.sub), for any user.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Only requests received at or after this time: RFC 3339 (2025-01-31T14:00:00Z, or with
    /// an offset) or a duration before now (30s, 15m, 2h, 3d, 1w, 1h30m). Default: no lower
    /// bound for list; for tail, only new requests (with --since, tail first prints those
    /// since then).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only requests with this Kubernetes verb (get, list, watch, create, update, patch,
    /// delete, deletecollection; the lower-case method of a non-resource request).
    #[arg(long, value_name = "VERB")]
    pub verb: Option<String>,
    /// Only requests for this resource, by its plural name as in the URL (pods, deployments,
    /// secrets), not by kind or short name; any API group.
    #[arg(long, value_name = "RESOURCE")]
    pub resource: Option<String>,
    /// Only requests in this namespace.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Only requests the relay decided this way.
    #[arg(long, value_enum, value_name = "DECISION")]
    pub decision: Option<DecisionArg>,
}

/// A relay decision, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DecisionArg {
    /// Forwarded: a policy rule (or the access list alone) allowed it.
    Allow,
    /// Refused by a policy rule (403).
    Deny,
    /// Held for review and not approved (pending, denied or expired).
    Review,
    /// Forwarded on an approval it spent.
    Approved,
    /// Refused before the policy (authentication, forbidden headers, hostile paths, the access
    /// list).
    Refused,
}

impl DecisionArg {
    fn decision(self) -> Decision {
        match self {
            DecisionArg::Allow => Decision::Allow,
            DecisionArg::Deny => Decision::Deny,
            DecisionArg::Review => Decision::Review,
            DecisionArg::Approved => Decision::Approved,
            DecisionArg::Refused => Decision::Refused,
        }
    }
}

impl FilterArgs {
    fn filter(&self) -> Filter {
        Filter {
            user: self.user.clone(),
            agent: self.agent.clone(),
            since: self.since.clone(),
            verb: self.verb.clone(),
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            decision: self.decision.map(DecisionArg::decision),
            ..Filter::default()
        }
    }
}

/// `hoop-kube sessions list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only requests received before this time (RFC 3339 or a duration before now, as
    /// --since). Default: up to now.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many records, the newest (1 to 1000; default 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: Option<u16>,
    /// Output format: table, json (the RecordList as the relay sends it) or audit (one
    /// audit.k8s.io/v1 Event per line, JSON lines for audit tooling).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListOutput::Table)]
    pub output: ListOutput,
}

/// `sessions list -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListOutput {
    /// Aligned columns.
    Table,
    /// The RecordList JSON.
    Json,
    /// audit.k8s.io/v1 Events, one per line.
    Audit,
}

/// `hoop-kube sessions show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The record id (a UUID v7, as `sessions list` prints it).
    #[arg(
        required_unless_present = "kubectl_session",
        conflicts_with = "kubectl_session"
    )]
    pub id: Option<String>,
    /// List the requests of one kubectl invocation instead of a record: its Kubectl-Session
    /// (`show ID` prints it as "kubectl session").
    #[arg(long, value_name = "SESSION")]
    pub kubectl_session: Option<String>,
    /// Output format: text (the record's fields, then its kubectl invocation as a table) or
    /// json (the Record; with --kubectl-session a RecordList, oldest first).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ShowOutput::Text)]
    pub output: ShowOutput,
}

/// `sessions show -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowOutput {
    /// Fields and a table.
    Text,
    /// The JSON the relay sent.
    Json,
}

/// `hoop-kube sessions replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// A record id whose request recorded a session (SESSION column of `sessions list`), or
    /// the session id itself.
    pub id: String,
    /// Playback speed: 2 plays twice as fast, 0.5 at half speed, 1 as recorded.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = parse_speed)]
    pub speed: f64,
    /// Shorten every pause longer than this to it (before --speed applies): 1s, 500ms, 2m,
    /// or plain seconds like 1.5 (default: pauses play as recorded).
    #[arg(long, value_name = "DURATION", value_parser = parse_max_idle)]
    pub max_idle: Option<Duration>,
}

/// `hoop-kube sessions export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A record id whose request recorded a session, or the session id itself.
    pub id: String,
    /// asciicast (v2: `asciinema play FILE` and `hoop-kube sessions replay` play it) or json
    /// (the session's metadata, its record and every event with its data in base64).
    #[arg(long, value_enum, default_value_t = ExportFormat::Asciicast)]
    pub format: ExportFormat,
    /// Write to FILE instead of stdout: atomically (a temporary file renamed over it) and
    /// readable only by you (mode 0600).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `sessions export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// asciicast v2 text.
    Asciicast,
    /// The session export JSON.
    Json,
}

/// `hoop-kube sessions tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Output format: table (one row per request, flushed as it arrives) or json (each watch
    /// line as the relay sends it: {"type":"RECORD","stage":…,"record":{…}}, every stage).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TailOutput::Table)]
    pub output: TailOutput,
}

/// `sessions tail -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TailOutput {
    /// Rows.
    Table,
    /// JSON lines.
    Json,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err(format!(
            "{s:?}: expected a number above 0, at most 1000 (2 = twice as fast)"
        )),
    }
}

fn parse_max_idle(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?}: expected a duration like 1s, 500ms, 2m or 1.5 (seconds)");
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(v * scale)
        .ok()
        .filter(|d| *d <= Duration::from_secs(24 * 3600))
        .ok_or_else(bad)
}

pub async fn run(a: SessionsArgs) -> anyhow::Result<()> {
    match run_action(a).await {
        // `sessions list | head`: the reader left, which is not an error.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn connect(a: &SessionsArgs) -> anyhow::Result<RecordsClient> {
    let path = target::default_kubeconfig(a.kubeconfig.as_deref());
    let context = a.context.clone();
    let t = tokio::task::spawn_blocking(move || target::resolve(&path, context.as_deref()))
        .await
        .context("the credential lookup stopped")??;
    Ok(RecordsClient::new(t)?)
}

/// Refuse a malformed id before the kubeconfig's credential plugin runs.
fn check_id(id: &str) -> anyhow::Result<()> {
    if crate::record::id::is_id(id) {
        Ok(())
    } else {
        Err(RecordsError::BadId(crate::text::clip(id, 60)).into())
    }
}

async fn run_action(a: SessionsArgs) -> anyhow::Result<()> {
    match &a.action {
        SessionsAction::List(l) => {
            let mut f = l.filter.filter();
            f.until.clone_from(&l.until);
            f.limit = l.limit.map(usize::from);
            f.validate()?;
            let c = connect(&a).await?;
            list(&c, &f, l.output).await
        }
        SessionsAction::Show(s) => {
            if let Some(id) = &s.id {
                check_id(id)?;
            }
            let c = connect(&a).await?;
            show(&c, s).await
        }
        SessionsAction::Replay(r) => {
            check_id(&r.id)?;
            let c = connect(&a).await?;
            replay_session(&c, r).await
        }
        SessionsAction::Export(e) => {
            check_id(&e.id)?;
            let c = connect(&a).await?;
            export(&c, e).await
        }
        SessionsAction::Tail(t) => {
            let f = t.filter.filter();
            f.validate()?;
            let c = connect(&a).await?;
            tail(&c, &f, t.output).await
        }
    }
}

fn out(text: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()
}

async fn list(c: &RecordsClient, f: &Filter, output: ListOutput) -> anyhow::Result<()> {
    let (count, text) = match output {
        ListOutput::Audit => {
            let events = c.list_audit(f).await?.items;
            let mut text = String::new();
            for e in &events {
                text.push_str(&serde_json::to_string(e)?);
                text.push('\n');
            }
            (events.len(), text)
        }
        ListOutput::Json => {
            let list = c.list(f).await?;
            (
                list.items.len(),
                serde_json::to_string_pretty(&list)? + "\n",
            )
        }
        ListOutput::Table => {
            let items = c.list(f).await?.items;
            if items.is_empty() {
                eprintln!("no records match (context {})", c.target().context);
                return Ok(());
            }
            (items.len(), table(&items, &chrono::Local))
        }
    };
    out(&text)?;
    let limit = f.limit.unwrap_or(crate::record::store::DEFAULT_LIMIT);
    if count >= limit {
        eprintln!(
            "showing the newest {count}; narrow with --since/--until{}",
            if limit < MAX_LIMIT {
                " or raise --limit (at most 1000)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

async fn show(c: &RecordsClient, s: &ShowArgs) -> anyhow::Result<()> {
    let json = s.output == ShowOutput::Json;
    let Some(id) = &s.id else {
        let ks = s.kubectl_session.as_deref().unwrap_or_default();
        let items = c.kubectl_session(ks).await?;
        if json {
            let list = crate::record::query::RecordList::new(items);
            return Ok(out(&(serde_json::to_string_pretty(&list)? + "\n"))?);
        }
        if items.is_empty() {
            anyhow::bail!("no records of kubectl session {ks:?} that you may see");
        }
        return Ok(out(&table(&items, &chrono::Local))?);
    };
    let r = c.get(id).await?;
    if json {
        return Ok(out(&(serde_json::to_string_pretty(&r)? + "\n"))?);
    }
    let mut text = details(&r, &chrono::Local);
    if let Some(ks) = &r.kubectl_session {
        let items = c.kubectl_session(ks).await?;
        text.push_str(&format!(
            "\nrequests of this kubectl invocation ({}, oldest first):\n",
            count(items.len(), "request")
        ));
        text.push_str(&table(&items, &chrono::Local));
    }
    Ok(out(&text)?)
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

async fn replay_session(c: &RecordsClient, r: &ReplayArgs) -> anyhow::Result<()> {
    let sref = c.resolve_session(&r.id).await?;
    let cast = c.session_cast(sref.session()).await?;
    let title = cast
        .lines()
        .next()
        .and_then(|h| replay::parse_header(h).ok())
        .and_then(|h| h.title)
        .map(|t| format!(" ({})", crate::text::one_line(&t, 120)))
        .unwrap_or_default();
    let pace = if (r.speed - 1.0).abs() < f64::EPSILON {
        String::new()
    } else {
        format!(" at {}x", r.speed)
    };
    eprintln!(
        "hoop-kube: replaying session {}{title}{pace}; Ctrl-C stops",
        sref.session()
    );
    let opts = ReplayOptions {
        speed: r.speed,
        max_idle: r.max_idle,
    };
    let stats = tokio::task::spawn_blocking(move || {
        let mut stdout = std::io::stdout().lock();
        replay::replay(cast.as_bytes(), &mut stdout, opts, &mut ThreadSleeper)
    })
    .await
    .context("the replay stopped")??;
    eprintln!(
        "\nhoop-kube: end of session {} ({} written, {})",
        sref.session(),
        count(
            usize::try_from(stats.output_bytes).unwrap_or(usize::MAX),
            "byte"
        ),
        human_duration(stats.waited)
    );
    Ok(())
}

async fn export(c: &RecordsClient, e: &ExportArgs) -> anyhow::Result<()> {
    let sref = c.resolve_session(&e.id).await?;
    let bytes = match e.format {
        ExportFormat::Asciicast => c.session_cast(sref.session()).await?.into_bytes(),
        ExportFormat::Json => {
            let export = c.session_json(sref.session()).await?;
            let mut v = serde_json::to_vec_pretty(&export)?;
            v.push(b'\n');
            v
        }
    };
    match &e.output {
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(&bytes)?;
            o.flush()?;
        }
        Some(path) => {
            write_atomic(path, &bytes)?;
            eprintln!(
                "hoop-kube: wrote session {} to {} ({})",
                sref.session(),
                path.display(),
                count(bytes.len(), "byte")
            );
        }
    }
    Ok(())
}

/// Write `bytes` to `path` atomically, `0600` ([`crate::atomic_file`]), then flush the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    path.file_name().with_context(|| format!("{} is not a file name", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    crate::atomic_file::write(path, bytes, 0o600).map_err(|e| e.source).with_context(|| format!("cannot write {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

async fn tail(c: &RecordsClient, f: &Filter, output: TailOutput) -> anyhow::Result<()> {
    let mut watch = c.watch(f).await?;
    // Where a resumed tail or a list of skipped records should start.
    let mut resume = now_micros();
    if output == TailOutput::Table {
        out(&tail_header())?;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let line = tokio::select! {
            line = watch.next() => line?,
            _ = &mut ctrl_c => return Ok(()),
        };
        match line {
            Some(WatchLine::Record { stage, record }) => {
                resume = resume.max(record.received);
                let text = match output {
                    TailOutput::Json => WatchLine::Record { stage, record }.to_line(),
                    TailOutput::Table if tail_shows(stage, &record) => {
                        tail_row(&record, &chrono::Local)
                    }
                    TailOutput::Table => continue,
                };
                out(&text)?;
            }
            Some(WatchLine::Missed { count: n }) => eprintln!(
                "hoop-kube: warning: the relay skipped {} (this watch fell behind); list them \
                 with `hoop-kube sessions list --since {}`",
                count(usize::try_from(n).unwrap_or(usize::MAX), "record"),
                micro_time(resume)
            ),
            None => anyhow::bail!(
                "the relay ended the watch stream (did it restart?); resume with `hoop-kube \
                 sessions tail --since {}`",
                micro_time(resume)
            ),
        }
    }
}

/// Whether the table tail prints a row for this stage: every request when it completes, a
/// long-running one also when it starts.
fn tail_shows(stage: Stage, r: &Record) -> bool {
    stage == Stage::ResponseComplete || (stage == Stage::ResponseStarted && r.is_long_running())
}

// === tables ===

const HEADERS: [&str; 10] = [
    "TIME",
    "USER",
    "DECISION",
    "CODE",
    "VERB",
    "RESOURCE",
    "NAMESPACE/NAME",
    "KUBECTL",
    "SESSION",
    "ID",
];

/// Longest cell of `list` (the ID column is never cut).
const MAX_CELL: usize = 40;

/// Fixed widths of `tail` (the last column, ID, is not padded).
const TAIL_WIDTHS: [usize; 9] = [19, 18, 18, 4, 8, 20, 28, 14, 11];

fn local_time<Tz: TimeZone>(micros: i64, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    tz.timestamp_micros(micros)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| micro_time(micros))
}

/// The cells of one record, cleaned of control characters, not yet cut.
fn cells<Tz: TimeZone>(r: &Record, tz: &Tz) -> [String; 10]
where
    Tz::Offset: std::fmt::Display,
{
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let user = match &r.agent {
        Some(a) => format!("{a} (for {})", or_dash(&r.username)),
        None => or_dash(&r.username),
    };
    let decision = match &r.rule {
        Some(rule) => format!("{} ({rule})", r.decision.as_str()),
        None => r.decision.as_str().to_string(),
    };
    let running = if r.completed.is_none() { "…" } else { "" };
    let code = match r.code {
        Some(c) => format!("{c}{running}"),
        None if running.is_empty() => "-".into(),
        None => running.into(),
    };
    let resource = if r.resource.is_empty() {
        r.path.clone()
    } else {
        [r.api_group.as_str(), &r.resource, &r.subresource]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    };
    let target = match (r.namespace.as_str(), r.name.as_str()) {
        ("", "") => "-".to_string(),
        ("", n) => n.to_string(),
        (ns, "") => format!("{ns}/"),
        (ns, n) => format!("{ns}/{n}"),
    };
    let session = match (&r.session, r.subresource.as_str()) {
        (None, _) => "-".to_string(),
        (Some(_), "") => "yes".to_string(),
        (Some(_), sub) => sub.to_string(),
    };
    [
        local_time(r.received, tz),
        user,
        decision,
        code,
        or_dash(&r.verb),
        or_dash(&resource),
        target,
        or_dash(r.kubectl_command.as_deref().unwrap_or("")),
        session,
        r.id.clone(),
    ]
    .map(|c| crate::text::clip(&c, usize::MAX))
}

/// Aligned rows with a header, for `list` and `show`.
fn table<Tz: TimeZone>(records: &[Record], tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut rows: Vec<[String; 10]> = vec![HEADERS.map(str::to_string)];
    for r in records {
        let mut c = cells(r, tz);
        for cell in c.iter_mut().take(9) {
            *cell = crate::text::clip(cell, MAX_CELL);
        }
        rows.push(c);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        text.push_str(&join(row, &widths));
    }
    text
}

fn join(row: &[String; 10], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        if i + 1 == row.len() {
            line.push_str(cell);
        } else {
            line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
        }
    }
    line.truncate(line.trim_end().len());
    line.push('\n');
    line
}

fn tail_header() -> String {
    join(&HEADERS.map(str::to_string), &TAIL_WIDTHS)
}

/// One `tail` row: fixed widths, so rows line up without seeing the next ones.
fn tail_row<Tz: TimeZone>(r: &Record, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut c = cells(r, tz);
    for (cell, w) in c.iter_mut().zip(TAIL_WIDTHS) {
        *cell = crate::text::clip(cell, w);
    }
    join(&c, &TAIL_WIDTHS)
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn latency(us: u64) -> String {
    match us {
        0..1000 => format!("{us} µs"),
        1000..1_000_000 => format!("{:.1} ms", us as f64 / 1000.0),
        _ => format!("{:.2} s", us as f64 / 1_000_000.0),
    }
}

/// Every field of one record, one per line, for `show`.
fn details<Tz: TimeZone>(r: &Record, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let clean = |s: &str| crate::text::clip(s, 2000);
    let time = |t: i64| {
        tz.timestamp_micros(t)
            .single()
            .map(|d| d.format("%Y-%m-%d %H:%M:%S%.6f %:z").to_string())
            .unwrap_or_else(|| micro_time(t))
    };
    let mut lines: Vec<(&str, String)> = vec![
        ("id:", r.id.clone()),
        ("stage:", r.stage().as_str().into()),
        ("received:", time(r.received)),
    ];
    if let Some(t) = r.started {
        lines.push(("started:", time(t)));
    }
    if let Some(t) = r.completed {
        lines.push(("completed:", time(t)));
    }
    if let Some(l) = r.latency_us {
        lines.push(("latency:", latency(l)));
    }
    let user = if r.username.is_empty() && r.subject.is_empty() {
        "- (not authenticated)".to_string()
    } else {
        format!("{} (subject {})", clean(&r.username), clean(&r.subject))
    };
    lines.push(("user:", user));
    if !r.groups.is_empty() {
        lines.push(("groups:", clean(&r.groups.join(", "))));
    }
    let optional = [
        ("agent:", &r.agent),
        ("agent session:", &r.agent_session),
        ("client cert:", &r.client_cert_serial),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            lines.push((k, clean(v)));
        }
    }
    if !r.source_ips.is_empty() {
        lines.push(("source IPs:", clean(&r.source_ips.join(", "))));
    }
    let optional = [
        ("user agent:", &r.user_agent),
        ("kubectl:", &r.kubectl_command),
        ("kubectl session:", &r.kubectl_session),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            lines.push((k, clean(v)));
        }
    }
    lines.push((
        "request:",
        clean(&format!("{} {}", r.method, r.request_uri())),
    ));
    lines.push(("verb:", clean(&r.verb)));
    if !r.resource.is_empty() {
        let gv = match (r.api_group.as_str(), r.api_version.as_str()) {
            ("", v) => v.to_string(),
            (g, v) => format!("{g}/{v}"),
        };
        let res = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        lines.push(("resource:", clean(&format!("{res} ({gv})"))));
    }
    if !r.namespace.is_empty() {
        lines.push(("namespace:", clean(&r.namespace)));
    }
    if !r.name.is_empty() {
        lines.push(("name:", clean(&r.name)));
    }
    let decision = match &r.rule {
        Some(rule) => format!("{} (rule {})", r.decision.as_str(), clean(rule)),
        None => r.decision.as_str().to_string(),
    };
    lines.push(("decision:", decision));
    if let Some(review) = &r.review {
        lines.push((
            "review:",
            format!("{} (`hoop-kube reviews show {0}`)", clean(review)),
        ));
    }
    let code = match r.code {
        Some(c) => c.to_string(),
        None => "- (no response yet)".into(),
    };
    lines.push(("code:", code));
    lines.push(("bytes:", format!("{} in, {} out", r.bytes_in, r.bytes_out)));
    lines.push(("masked:", format!("{} values", r.masked)));
    if let Some(s) = &r.session {
        lines.push((
            "session:",
            format!("{} (`hoop-kube sessions replay {}`)", clean(s), r.id),
        ));
    }
    let mut text = String::new();
    for (k, v) in lines {
        text.push_str(&format!("{k:<17} {v}\n"));
    }
    text
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
