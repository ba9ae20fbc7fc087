//! `agents:`: a full section, the defaults, and every refusal with its key path.

use std::path::Path;

use super::super::{ConfigError, RelayConfig};
use super::*;

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("server.crt", "-----BEGIN CERTIFICATE-----\nx\n"),
        ("server.key", "-----BEGIN PRIVATE KEY-----\nx\n"),
        ("client-ca.crt", "-----BEGIN CERTIFICATE-----\nx\n"),
        ("relay.token", "token"),
        ("agent-signing.key", "-----BEGIN PRIVATE KEY-----\nx\n"),
        ("empty.key", ""),
    ] {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    std::fs::create_dir(dir.path().join("state")).unwrap();
    dir
}

const BASE: &str = "listen: 127.0.0.1:8443
tls:
  cert: server.crt
  key: server.key
  client_ca: client-ca.crt
upstream:
  server: https://127.0.0.1:6443
  token_file: relay.token
oidc:
  issuer: https://idp.example.com
  audiences: [hoop-kube]
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(section: &str, dir: &Path) -> Result<RelayConfig, ConfigError> {
    RelayConfig::parse(&format!("{BASE}{section}"), dir, "relay.yaml", &no_env, &dir.join("no-sa"))
}

fn agents(section: &str) -> AgentsConfig {
    let dir = fixture();
    parse(section, dir.path()).unwrap().agents.expect("agents section")
}

/// The refusal's key path and one-line message.
fn refused(section: &str) -> (String, String) {
    let dir = fixture();
    let e = parse(section, dir.path()).expect_err("should be refused");
    let msg = e.to_string();
    assert!(!msg.contains('\n') && msg.starts_with("relay.yaml: "), "{msg}");
    (e.key().to_string(), msg)
}

#[test]
fn full_section() {
    let dir = fixture();
    let text = "agents:
  store: state/agents.sqlite
  signing_key: agent-signing.key
  max_ttl_minutes: 60
  admins: [sre, platform]
  limits:
    - agent: claude-*
      requests_per_second: 0.5
      burst: 3
      max_mutating: 0
    - agent: \"*\"
      requests_per_second: 10
      burst: 20
      max_mutating: 100
      max_deletes: 5
      namespaces: [default, \"team-*\"]
";
    let cfg = parse(text, dir.path()).unwrap();
    let a = cfg.agents.clone().unwrap();
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(a.store, base.join("state/agents.sqlite"));
    assert_eq!(a.signing_key, base.join("agent-signing.key"));
    assert_eq!((a.max_ttl_minutes, a.max_ttl()), (60, Duration::from_secs(3600)));
    assert_eq!(a.admins, ["sre", "platform"]);
    let [first, all] = &a.limits[..] else { panic!("two rules: {:?}", a.limits) };
    assert_eq!((first.index, first.agent_pattern.as_str(), first.requests_per_second, first.burst), (0, "claude-*", Some(0.5), 3));
    assert_eq!((first.max_mutating, first.max_deletes, &first.namespaces), (Some(0), None, &None));
    assert_eq!((all.index, all.requests_per_second, all.burst, all.max_mutating, all.max_deletes), (1, Some(10.0), 20, Some(100), Some(5)));
    let (globs, patterns) = all.namespaces.as_ref().unwrap();
    assert_eq!((globs.len(), patterns.as_slice()), (2, &["default".to_string(), "team-*".to_string()][..]));
    let limiter = a.limiter();
    assert_eq!(limiter.rule_for("claude-code").map(|r| r.index), Some(0));
    assert_eq!(limiter.rule_for("bot").map(|r| r.index), Some(1));
    assert!(cfg.summary().contains("agents:        on: sessions up to 60 min"), "{}", cfg.summary());
}

#[test]
fn defaults() {
    let dir = fixture();
    let a = parse("agents:\n  signing_key: agent-signing.key\n", dir.path()).unwrap().agents.unwrap();
    let base = std::path::absolute(dir.path()).unwrap();
    assert_eq!(a.store, base.join(DEFAULT_AGENTS_STORE));
    assert_eq!(a.max_ttl_minutes, DEFAULT_MAX_TTL_MINUTES);
    assert_eq!(a.max_ttl(), Duration::from_secs(8 * 3600));
    assert!(a.admins.is_empty() && a.limits.is_empty());
    assert_eq!(a.limiter().rule_for("anything"), None);
    // Burst defaults to the rate rounded up, at least 1.
    let a = agents("agents:\n  signing_key: agent-signing.key\n  limits:\n    - agent: a\n      requests_per_second: 2.5\n    - agent: b\n      requests_per_second: 0.1\n    - agent: c\n      max_deletes: 0\n");
    assert_eq!(a.limits.iter().map(|l| l.burst).collect::<Vec<_>>(), [3, 1, 1]);
    assert_eq!((a.limits[2].requests_per_second, a.limits[2].max_deletes), (None, Some(0)));
    // No section: agents are off.
    assert!(parse("", dir.path()).unwrap().agents.is_none());
    assert!(!parse("", dir.path()).unwrap().summary().contains("agents:"));
    // Boundaries that pass.
    for ttl in [1, MAX_TTL_MINUTES] {
        assert_eq!(agents(&format!("agents:\n  signing_key: agent-signing.key\n  max_ttl_minutes: {ttl}\n")).max_ttl_minutes, ttl);
    }
}

#[test]
fn refusals_name_the_key() {
    let sk = "agents:\n  signing_key: agent-signing.key\n";
    let rule = |body: &str| format!("{sk}  limits:\n    - agent: bot\n{body}");
    let cases: Vec<(String, &str, &str)> = vec![
        ("agents:\n  store: x.sqlite\n".into(), "agents.signing_key", "is required"),
        (format!("{sk}  sigining_key: x\n"), "agents.sigining_key", "unknown key"),
        (format!("{sk}  max_ttl_minutes: 0\n"), "agents.max_ttl_minutes", "out of range"),
        (format!("{sk}  max_ttl_minutes: 10081\n"), "agents.max_ttl_minutes", "out of range"),
        (format!("{sk}  max_ttl_minutes: -5\n"), "agents.max_ttl_minutes", ""),
        (format!("{sk}  admins: [sre, \" \"]\n"), "agents.admins[1]", "is empty"),
        (format!("{sk}  store: \"\"\n"), "agents.store", "is empty"),
        (format!("{sk}  store: state\n"), "agents.store", "is a directory"),
        (format!("{sk}  store: nowhere/agents.sqlite\n"), "agents.store", "does not exist"),
        ("agents:\n  signing_key: missing.key\n".into(), "agents.signing_key", "cannot read"),
        ("agents:\n  signing_key: empty.key\n".into(), "agents.signing_key", "is empty"),
        ("agents:\n  signing_key: state\n".into(), "agents.signing_key", "not a regular file"),
        (rule("      requests_per_second: 0\n"), "agents.limits[0].requests_per_second", "more than 0"),
        (rule("      requests_per_second: -1\n"), "agents.limits[0].requests_per_second", "more than 0"),
        (rule("      requests_per_second: .nan\n"), "agents.limits[0].requests_per_second", "more than 0"),
        (rule("      requests_per_second: .inf\n"), "agents.limits[0].requests_per_second", "more than 0"),
        (rule("      requests_per_second: 100001\n"), "agents.limits[0].requests_per_second", "out of range"),
        (rule("      requests_per_second: ten\n"), "agents.limits[0].requests_per_second", ""),
        (rule("      requests_per_second: 1\n      burst: 0\n"), "agents.limits[0].burst", "out of range"),
        (rule("      burst: 5\n"), "agents.limits[0].burst", "needs requests_per_second"),
        (rule("      max_deletes: -1\n"), "agents.limits[0].max_deletes", ""),
        (rule("      max_mutating: 1.5\n"), "agents.limits[0].max_mutating", ""),
        (rule("      namespaces: []\n"), "agents.limits[0].namespaces", "is empty"),
        (rule("      namespaces: [default, \"team-[ab]\"]\n"), "agents.limits[0].namespaces[1]", "reserved"),
        (rule("      namespaces: [\"\"]\n"), "agents.limits[0].namespaces[0]", "is empty"),
        (rule("      requests: 5\n"), "agents.limits[0].requests", "unknown key"),
        (format!("{sk}  limits:\n    - requests_per_second: 1\n"), "agents.limits[0].agent", "is required"),
        (format!("{sk}  limits:\n    - agent: \"\"\n"), "agents.limits[0].agent", "is empty"),
        (format!("{sk}  limits:\n    - agent: \"{{a,b}}\"\n"), "agents.limits[0].agent", "reserved"),
        (format!("{sk}  limits:\n    - agent: \"*\"\n    - agent: \" bot\"\n"), "agents.limits[1].agent", "spaces"),
        (format!("{sk}  limits:\n    agent: bot\n"), "agents.limits", ""),
        ("agents: []\n".into(), "agents", ""),
    ];
    let wrong: Vec<String> = cases
        .into_iter()
        .filter_map(|(section, key, words)| {
            let (got, msg) = refused(&section);
            (got != key || !msg.contains(words)).then(|| format!("{section:?}: want key {key:?} and {words:?}, got {msg}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn unknown_top_level_key_lists_agents() {
    let (_, msg) = refused("agent:\n  signing_key: agent-signing.key\n");
    assert!(msg.contains("`agents`"), "{msg}");
}
