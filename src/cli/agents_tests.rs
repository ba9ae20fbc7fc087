use super::*;
use crate::agent::SessionState;
use crate::cli::{Cli, Command};
use clap::Parser as _;

const SID: &str = "0190a0b0-1234-7000-8000-00000000abcd";

fn session(state: SessionState, not_after: &str) -> SessionInfo {
    SessionInfo {
        id: SID.into(),
        agent: "claude-code".into(),
        subject: "u-123".into(),
        username: "alice".into(),
        groups: vec![],
        created_at: "2025-01-01T10:00:00Z".into(),
        not_after: not_after.into(),
        state,
        ended_at: None,
        ended_by: None,
        command: Some("claude --dangerously-skip-permissions \u{1b}[31m and a very long tail of arguments".into()),
        cert_serial: "ab".into(),
        requests: 1234,
        mutating: 5,
        deletes: 1,
    }
}

#[test]
fn the_list_table_has_every_column_aligned_and_clipped() {
    let now = DateTime::parse_from_rfc3339("2025-01-01T10:00:00Z").unwrap().with_timezone(&Utc);
    let mut ended = session(SessionState::Revoked, "2025-01-01T07:00:00Z");
    ended.id = "0190a0b0-1234-7000-8000-000000000001".into();
    ended.username = String::new();
    ended.command = None;
    let text = table(&[session(SessionState::Active, "2025-01-01T10:42:00Z"), ended], now, &Utc);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), HEADERS);
    assert!(lines[1].starts_with(&format!("{SID}  claude-code  alice     active   in 42m (2025-01-01 10:42)  1234      5         1        claude --dangerously-skip-permissions  …")), "{text}");
    assert!(lines[2].contains("u-123     revoked  3h ago (2025-01-01 07:00)"), "the subject when there is no user name: {text}");
    assert!(lines[2].ends_with("  -"), "{text}");
    // Columns line up: every row has the STATE column at the same offset.
    let at = lines[0].find("STATE").unwrap();
    assert!(lines[1][at..].starts_with("active") && lines[2][at..].starts_with("revoked"), "{text}");
    assert!(!text.contains('\u{1b}'), "no terminal escapes from the relay");
}

#[test]
fn relative_times_read_like_kubectl_ages() {
    assert_eq!(relative(30), "in 30s");
    assert_eq!(relative(-300), "5m ago");
    assert_eq!(relative(3 * 3600), "in 3h");
    assert_eq!(relative(-3 * 86_400), "3d ago");
}

#[test]
fn ended_sessions_say_what_ended_them() {
    let mut s = session(SessionState::Stopped, "2025-01-01T10:42:00Z");
    s.ended_by = Some("sam".into());
    let line = ended_line(&s);
    assert!(line.starts_with(&format!("{SID}: stopped (agent claude-code for alice")), "{line}");
    assert!(line.ends_with(", by sam)"), "{line}");
}

#[test]
fn run_takes_the_command_after_the_double_dash() {
    let cli = Cli::try_parse_from(["hoop-kube", "run", "--agent", "bot", "--ttl", "2h30m", "--profile", "work", "-n", "team-a", "--", "kubectl", "get", "pods", "--agent", "x"]).unwrap();
    let Command::Run(a) = cli.command else { panic!("not run") };
    assert_eq!(a.agent, "bot");
    assert_eq!(a.ttl, Duration::from_secs(9000));
    assert_eq!(a.profile.profile, "work");
    assert_eq!(a.namespace.as_deref(), Some("team-a"));
    assert_eq!(a.command, ["kubectl", "get", "pods", "--agent", "x"].map(OsString::from));
    let cli = Cli::try_parse_from(["hoop-kube", "run", "--agent", "bot", "--", "sh"]).unwrap();
    let Command::Run(a) = cli.command else { panic!("not run") };
    assert_eq!(a.ttl, Duration::from_secs(3600), "default 1h");
    assert!(!a.quiet);
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    let err = |args: &[&str]| Cli::try_parse_from(args).unwrap_err().to_string();
    let e = err(&["hoop-kube", "run", "--agent", "bot", "--ttl", "0", "--", "sh"]);
    assert!(e.contains("too short"), "{e}");
    let e = err(&["hoop-kube", "run", "--agent", "bot", "--ttl", "soon", "--", "sh"]);
    assert!(e.contains("is not a duration"), "{e}");
    let e = err(&["hoop-kube", "run", "--agent", "bot", "--ttl", "8d", "--", "sh"]);
    assert!(e.contains("too long"), "{e}");
    let e = err(&["hoop-kube", "run", "--agent", "Bot", "--", "sh"]);
    assert!(e.contains("lower-case letters"), "{e}");
    assert!(Cli::try_parse_from(["hoop-kube", "run", "--agent", "bot"]).is_err(), "a command is required");
    assert!(Cli::try_parse_from(["hoop-kube", "run", "--agent", "bot", "sh"]).is_err(), "the command comes after --");
    assert!(Cli::try_parse_from(["hoop-kube", "agents", "mint", "--agent", "bot"]).is_err(), "--out is required");
    assert!(Cli::try_parse_from(["hoop-kube", "agents", "revoke"]).is_err(), "at least one id");
}

#[test]
fn the_agents_subcommands_parse() {
    let cli = Cli::try_parse_from(["hoop-kube", "agents", "mint", "--agent", "ci-bot", "--out", "/tmp/x", "--ttl", "30m", "--force"]).unwrap();
    let Command::Agents(AgentsArgs { action: AgentsAction::Mint(m) }) = cli.command else { panic!("not mint") };
    assert_eq!((m.agent.as_str(), m.out.as_path(), m.ttl, m.force), ("ci-bot", Path::new("/tmp/x"), Duration::from_secs(1800), true));
    let cli = Cli::try_parse_from(["hoop-kube", "agents", "list", "--all", "--agent", "bot", "-o", "json"]).unwrap();
    let Command::Agents(AgentsArgs { action: AgentsAction::List(l) }) = cli.command else { panic!("not list") };
    assert!(l.all && l.agent.as_deref() == Some("bot") && l.output == ListOutput::Json);
    let cli = Cli::try_parse_from(["hoop-kube", "agents", "revoke", SID, SID]).unwrap();
    let Command::Agents(AgentsArgs { action: AgentsAction::Revoke(r) }) = cli.command else { panic!("not revoke") };
    assert_eq!(r.ids.len(), 2);
    let cli = Cli::try_parse_from(["hoop-kube", "agents", "stop", "bot", "--engineer", "u-123"]).unwrap();
    let Command::Agents(AgentsArgs { action: AgentsAction::Stop(s) }) = cli.command else { panic!("not stop") };
    assert_eq!((s.agent.as_str(), s.engineer.as_deref()), ("bot", Some("u-123")));
}

#[test]
fn run_help_states_the_threat_model() {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let help = cmd.find_subcommand_mut("run").unwrap().render_long_help().to_string();
    for needle in ["careless agent", "hostile agent", "container", "agents mint", "HOOP_KUBE_AGENT_SESSION", "128+N"] {
        assert!(help.contains(needle), "run --help must mention {needle:?}: {help}");
    }
}
