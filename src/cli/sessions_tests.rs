use super::*;
use clap::Parser as _;

const ID: &str = "0196f2a8-5b7e-7c3d-8e9f-0a1b2c3d4e5f";
const SID: &str = "0196f2a8-5b7f-7000-8000-000000000001";
/// 2023-11-14 22:13:20 UTC.
const T: i64 = 1_700_000_000_000_000;

fn get_pod() -> Record {
    Record {
        id: ID.into(),
        received: T,
        completed: Some(T + 1500),
        latency_us: Some(1500),
        subject: "u-123".into(),
        username: "alice".into(),
        groups: vec!["dev".into()],
        kubectl_command: Some("kubectl get".into()),
        kubectl_session: Some("ks-1".into()),
        verb: "get".into(),
        api_version: "v1".into(),
        resource: "pods".into(),
        namespace: "default".into(),
        name: "web".into(),
        method: "GET".into(),
        path: "/api/v1/namespaces/default/pods/web".into(),
        decision: Decision::Allow,
        rule: Some("dev-read".into()),
        code: Some(200),
        ..Record::default()
    }
}

#[test]
fn table_rows_show_agents_rules_sessions_and_cut_long_names() {
    let mut agent = get_pod();
    agent.agent = Some("agent-bot".into());
    agent.decision = Decision::Deny;
    agent.rule = Some("agents-never-read-secrets".into());
    agent.resource = "secrets".into();
    agent.code = Some(403);
    let mut refused = get_pod();
    refused.username = String::new();
    refused.subject = String::new();
    refused.decision = Decision::Refused;
    refused.rule = None;
    refused.code = Some(401);
    refused.kubectl_command = None;
    refused.resource = String::new();
    refused.namespace = String::new();
    refused.name = String::new();
    refused.verb = "get".into();
    refused.path = "/version".into();
    let mut exec = get_pod();
    exec.subresource = "exec".into();
    exec.verb = "create".into();
    exec.session = Some(SID.into());
    exec.completed = None;
    exec.code = Some(101);
    exec.kubectl_command = Some("kubectl exec".into());
    exec.api_group = "apps".into();
    let mut long = get_pod();
    long.name = format!("web-{}\u{1b}[31m", "x".repeat(60));
    let text = table(&[get_pod(), agent, refused, exec, long], &chrono::Utc);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "TIME                 USER                   DECISION                          CODE  \
         VERB    RESOURCE        NAMESPACE/NAME                            KUBECTL       \
         SESSION  ID"
    );
    assert_eq!(
        lines[1],
        format!(
            "2023-11-14 22:13:20  alice                  allow (dev-read)                  \
             200   get     pods            default/web                               \
             kubectl get   -        {ID}"
        )
    );
    assert!(
        lines[2].contains("  agent-bot (for alice)  "),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("  deny (agents-never-read-secrets)  403  "),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("  -  "), "{}", lines[3]);
    assert!(lines[3].contains("  refused  "), "{}", lines[3]);
    assert!(lines[3].contains("  /version  "), "{}", lines[3]);
    assert!(lines[4].contains("  101…  "), "{}", lines[4]);
    assert!(lines[4].contains("  apps/pods/exec  "), "{}", lines[4]);
    assert!(lines[4].contains("  exec     "), "{}", lines[4]);
    let cut = format!("default/web-{}…", "x".repeat(MAX_CELL - 13));
    assert!(lines[5].contains(&cut), "{}", lines[5]);
    assert!(!text.contains('\u{1b}'));
    // Every row ends with the full id.
    assert!(lines[1..].iter().all(|l| l.ends_with(ID)));
    let width = lines[0].chars().count() + ID.len() - "ID".len();
    assert!(lines[1..].iter().all(|l| l.chars().count() == width));
}

#[test]
fn tail_rows_have_fixed_widths() {
    let header = tail_header();
    let mut long = get_pod();
    long.username = "someone-with-a-very-long-name@example.com".into();
    let a = tail_row(&get_pod(), &chrono::Utc);
    let b = tail_row(&long, &chrono::Utc);
    let column = |line: &str, what: &str| line.find(what).map(|i| line[..i].chars().count());
    assert_eq!(column(&a, ID), column(&b, ID));
    assert_eq!(column(&header, "ID\n"), column(&a, ID));
    assert_eq!(a.chars().count(), b.chars().count());
    assert!(b.contains("someone-with-a-ve…"), "{b}");
    // Which stages a table tail prints.
    let mut exec = get_pod();
    exec.subresource = "exec".into();
    assert!(tail_shows(Stage::ResponseComplete, &get_pod()));
    assert!(!tail_shows(Stage::RequestReceived, &get_pod()));
    assert!(!tail_shows(Stage::ResponseStarted, &get_pod()));
    assert!(tail_shows(Stage::ResponseStarted, &exec));
}

#[test]
fn details_show_every_field() {
    let mut r = get_pod();
    r.agent = Some("agent-bot".into());
    r.session = Some(SID.into());
    r.review = Some("r-1".into());
    r.source_ips = vec!["10.0.0.1".into()];
    r.user_agent = Some("kubectl/v1.32\u{7}".into());
    r.query = Some("timeout=32s".into());
    let d = details(&r, &chrono::Utc);
    for want in [
        format!("id:               {ID}\n"),
        "stage:            ResponseComplete\n".to_string(),
        "received:         2023-11-14 22:13:20.000000 +00:00\n".into(),
        "latency:          1.5 ms\n".into(),
        "user:             alice (subject u-123)\n".into(),
        "agent:            agent-bot\n".into(),
        "user agent:       kubectl/v1.32 \n".into(),
        "kubectl session:  ks-1\n".into(),
        "request:          GET /api/v1/namespaces/default/pods/web?timeout=32s\n".into(),
        "resource:         pods (v1)\n".into(),
        "decision:         allow (rule dev-read)\n".into(),
        "review:           r-1 (`hoop-kube reviews show r-1`)\n".into(),
        "code:             200\n".into(),
        format!("session:          {SID} (`hoop-kube sessions replay {ID}`)\n"),
    ] {
        assert!(d.contains(&want), "{want:?} missing from\n{d}");
    }
}

#[test]
fn flags_parse_and_map_onto_the_filter() {
    let cli = crate::cli::Cli::try_parse_from([
        "hoop-kube",
        "sessions",
        "list",
        "--user",
        "alice",
        "--since",
        "1h",
        "--decision",
        "deny",
        "--limit",
        "5",
        "-o",
        "audit",
        "-n",
        "prod",
        "--context",
        "c",
    ])
    .unwrap();
    let crate::cli::Command::Sessions(a) = cli.command else {
        panic!()
    };
    assert_eq!(a.context.as_deref(), Some("c"));
    let SessionsAction::List(l) = a.action else {
        panic!()
    };
    let f = l.filter.filter();
    assert_eq!(
        f.query(crate::record::client::QueryKind::Records),
        "user=alice&since=1h&namespace=prod&decision=deny"
    );
    assert_eq!((l.limit, l.output), (Some(5), ListOutput::Audit));
    let parse = |args: &[&str]| {
        crate::cli::Cli::try_parse_from(["hoop-kube", "sessions"].iter().chain(args).copied())
    };
    assert!(parse(&["list", "--limit", "0"]).is_err());
    assert!(parse(&["list", "--limit", "1001"]).is_err());
    assert!(parse(&["list", "--decision", "maybe"]).is_err());
    assert!(parse(&["show"]).is_err(), "an id or --kubectl-session");
    assert!(parse(&["show", ID, "--kubectl-session", "k"]).is_err());
    assert!(parse(&["show", "--kubectl-session", "k"]).is_ok());
    assert!(parse(&["replay", ID, "--speed", "0"]).is_err());
    assert!(parse(&["replay", ID, "--speed", "2", "--max-idle", "500ms"]).is_ok());
    assert!(parse(&["export", ID, "--format", "json", "-o", "x.json"]).is_ok());
    assert!(
        parse(&["tail", "--until", "1h"]).is_err(),
        "until does not apply to tail"
    );
}

/// Help is documentation: every `sessions` command and flag explains itself.
#[test]
fn every_command_and_flag_is_documented() {
    use clap::CommandFactory as _;
    let mut cli = crate::cli::Cli::command();
    cli.build();
    let sessions = cli.find_subcommand("sessions").unwrap().clone();
    let mut todo = vec![sessions];
    while let Some(cmd) = todo.pop() {
        if cmd.get_name() != "help" {
            assert!(cmd.get_about().is_some(), "{} has no help", cmd.get_name());
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" {
                assert!(
                    arg.get_help().is_some(),
                    "{}: --{id} has no help",
                    cmd.get_name()
                );
            }
        }
        todo.extend(cmd.get_subcommands().cloned());
    }
}

#[test]
fn durations_and_speeds() {
    assert_eq!(parse_max_idle("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(parse_max_idle("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_max_idle("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_max_idle("1.5"), Ok(Duration::from_millis(1500)));
    for bad in ["", "s", "-1s", "1h", "1e3", "NaN", "100000m"] {
        assert!(parse_max_idle(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_speed("0.5"), Ok(0.5));
    for bad in ["0", "-1", "inf", "NaN", "x", "1001"] {
        assert!(parse_speed(bad).is_err(), "{bad}");
    }
    assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(human_duration(Duration::from_secs(192)), "3m12s");
    assert_eq!(latency(12), "12 µs");
    assert_eq!(latency(2_500_000), "2.50 s");
}

#[test]
fn exports_are_written_atomically_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.cast");
    std::fs::write(&path, "old").unwrap();
    write_atomic(&path, b"new\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary left"
    );
    let e = write_atomic(&dir.path().join("no/such/dir/x"), b"x").unwrap_err();
    assert!(format!("{e:#}").starts_with("cannot write "), "{e:#}");
}

#[test]
fn broken_pipes_are_not_errors() {
    let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    assert!(is_broken_pipe(&e.context("writing")));
    assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    let e = anyhow::Error::from(RecordsError::BadId("x".into()));
    assert!(!is_broken_pipe(&e));
    assert!(check_id("x").is_err() && check_id(ID).is_ok());
}
