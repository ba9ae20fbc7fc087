//! `hoop-kube demo`: the whole stack on one machine.
//!
//! Starts the bundled Kubernetes API simulator, a relay in dev mode (PKI generated into the demo
//! directory, a built-in OIDC issuer, a `relay.yaml` written and loaded like any other), and one
//! local forwarder per demo identity, then writes a kubeconfig with the contexts `demo-alice`
//! (alice, group `dev`), `demo-sam` (sam, `sre`) and `demo-agent` (the agent `demo-bot`, whose
//! credential the relay minted for alice). The same stack, with
//! an external issuer instead of the built-in one, is what the end-to-end tests run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use crate::forward::{self, ForwardConfig, Forwarding};
use crate::pki::{self, Ca, PkiError};
use crate::relay::boot::{self, RunningRelay};
use crate::relay::config::RelayConfig;
use crate::relay::dev_issuer::DevIssuer;
use crate::sim::{self, SimConfig};

/// The audience (client id) the demo's tokens are for.
pub const AUDIENCE: &str = "hoop-kube";

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error("simulator: {0}")]
    Sim(#[from] sim::SimError),
    #[error("certificates: {0}")]
    Pki(#[from] PkiError),
    #[error("relay: {0}")]
    Relay(#[from] boot::BootError),
    #[error("relay config: {0}")]
    Config(#[from] crate::relay::config::ConfigError),
    #[error("forwarder: {0}")]
    Forward(#[from] forward::ForwardError),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("dev OIDC issuer: {0}")]
    Issuer(std::io::Error),
    #[error("agent credential: {0}")]
    Agent(String),
}

/// One identity of the demo: an engineer, or an agent acting for one.
pub struct User {
    /// The OIDC subject; for an agent, its engineer's.
    pub subject: String,
    pub groups: Vec<String>,
    /// The kubeconfig context name.
    pub context: String,
    /// For an agent context: the agent's name. Its credential is minted at the relay for
    /// `subject` through the agents API, and its context talks to the relay directly, exactly
    /// as `hoop-kube agents mint` writes it.
    pub agent: Option<String>,
}

/// Where the stack's tokens come from.
pub enum Issuer {
    /// The relay's built-in dev issuer (the demo).
    Dev,
    /// An external issuer (the tests' oidc-provider); tokens are supplied per user.
    External { issuer: String, tokens: BTreeMap<String, String> },
}

/// A running stack.
pub struct Stack {
    pub dir: PathBuf,
    pub sim: sim::Running,
    pub relay: RunningRelay,
    pub forwarders: BTreeMap<String, Forwarding>,
    pub kubeconfig: PathBuf,
    pub dev_issuer: Option<DevIssuer>,
    pub relay_config: PathBuf,
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), DemoError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|source| DemoError::Write { path: p.display().to_string(), source })?;
    }
    pki::write_file(path, text.as_bytes(), private).map_err(|e| match e {
        PkiError::Write { path, source } => DemoError::Write { path, source },
        other => DemoError::Pki(other),
    })
}

/// The demo identities.
pub fn demo_users() -> Vec<User> {
    vec![
        User { subject: "alice".into(), groups: vec!["dev".into()], context: "demo-alice".into(), agent: None },
        User { subject: "alice".into(), groups: vec!["dev".into()], context: "demo-agent".into(), agent: Some("demo-bot".into()) },
        User { subject: "sam".into(), groups: vec!["sre".into()], context: "demo-sam".into(), agent: None },
    ]
}

/// The demo's policy: the team may use the cluster; agents never read secrets and never exec;
/// deletes and privileged pods need approval by `sre`; nobody execs into `kube-system`; and
/// everyone sees Secret values, env literals, service-account tokens and Secret values in logs
/// and exec output masked (profile `secrets`). Every request is recorded; `sre` reads everyone's
/// records, and the audit export is `relay/audit.jsonl` in the demo directory.
pub const DEMO_POLICY: &str = r#"policy:
  rules:
    - name: team-may-use-the-cluster
      match:
        groups: [dev, sre]
      action: allow
      mask: secrets
    - name: agents-never-read-secrets
      match:
        agent: present
        verbs: [get, list, watch]
        resources: [secrets]
      action: deny
      message: agents never read secrets; ask a human to look
    - name: agents-never-exec
      match:
        agent: present
        verbs: [exec, attach, portforward]
      action: deny
    - name: deletes-need-approval
      match:
        verbs: [delete, deletecollection]
      action: review
      reviewers: [sre]
    - name: privileged-pods-need-approval
      match:
        verbs: [create]
        resources: [pods]
      cel: "has(object.spec) && object.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged == true)"
      action: review
      reviewers: [sre]
    - name: no-exec-in-kube-system
      match:
        verbs: [exec, attach]
        namespaces: [kube-system]
      action: deny
records:
  auditors: [sre]
  export:
    file: audit.jsonl
mask_profiles:
  secrets:
    secret_data: true
    env_literals: true
    serviceaccount_tokens: true
    logs: true
"#;

/// The stack's `agents:` section: sessions up to 8 hours, `sre` may stop anyone's agents.
pub const DEMO_AGENTS: &str = "agents:\n  signing_key: agent-signing.key\n  admins: [sre]\n";

/// Start the stack in `dir` for `users`.
pub async fn start(dir: &Path, users: &[User], issuer: Issuer, sim_listen: SocketAddr) -> Result<Stack, DemoError> {
    start_with(dir, users, issuer, sim_listen, None).await
}

/// Like [`start`], with `policy` (a `policy:` YAML section, e.g. [`DEMO_POLICY`]) added to the
/// relay's config; without one the access list alone decides.
pub async fn start_with(dir: &Path, users: &[User], issuer: Issuer, sim_listen: SocketAddr, policy: Option<&str>) -> Result<Stack, DemoError> {
    let sim = sim::start(SimConfig::new(sim_listen, dir.join("sim"))).await?;

    // The relay's PKI: one CA signs the serving certificate and the users' client certificates.
    let rdir = dir.join("relay");
    let ca = Ca::generate("hoop-kube demo relay CA", 365)?;
    let serving = ca.server_cert(&["127.0.0.1", "localhost"], 365)?;
    write(&rdir.join("ca.crt"), ca.cert_pem(), false)?;
    write(&rdir.join("ca.key"), &ca.key_pem(), true)?;
    write(&rdir.join("server.crt"), &format!("{}{}", serving.cert_pem, ca.cert_pem()), false)?;
    write(&rdir.join("server.key"), &serving.key_pem, true)?;

    let (dev_issuer, issuer_url, tokens) = match issuer {
        Issuer::Dev => {
            let dev = DevIssuer::start().await.map_err(DemoError::Issuer)?;
            let mut tokens = BTreeMap::new();
            for u in users {
                let groups: Vec<&str> = u.groups.iter().map(String::as_str).collect();
                tokens.insert(u.subject.clone(), dev.mint(&u.subject, &groups, AUDIENCE, Duration::from_secs(12 * 3600), json!({})));
            }
            let url = dev.issuer().to_string();
            (Some(dev), url, tokens)
        }
        Issuer::External { issuer, tokens } => (None, issuer, tokens),
    };

    let relay_yaml = format!(
        "# Written by hoop-kube demo.\nlisten: 127.0.0.1:0\ntls:\n  cert: server.crt\n  key: server.key\n  client_ca: ca.crt\nupstream:\n  server: {server}\n  ca: {sim_ca}\n  token_file: {token}\noidc:\n  issuer: {issuer_url}\n  audiences: [{AUDIENCE}]\nenrollment:\n  ca_key: ca.key\naccess:\n  subjects: [{subjects}]\n  groups: [dev]\n",
        subjects = users.iter().map(|u| serde_json::Value::String(u.subject.clone()).to_string()).collect::<Vec<_>>().join(", "),
        server = sim.url,
        sim_ca = dir.join("sim/ca.crt").display(),
        token = dir.join("sim/relay.token").display(),
    ) + policy.unwrap_or("");
    // Agent sessions are always on in the stack (unless the policy text brings its own
    // `agents:` section): the relay signs agent tokens with this key.
    let relay_yaml = if relay_yaml.lines().any(|l| l.starts_with("agents:")) { relay_yaml } else { format!("{relay_yaml}\n{DEMO_AGENTS}") };
    write(&rdir.join("agent-signing.key"), &crate::agent::token::SigningKey::generate().map_err(|e| DemoError::Agent(e.to_string()))?.to_pem(), true)?;
    let relay_config = rdir.join("relay.yaml");
    write(&relay_config, &relay_yaml, false)?;
    let cfg = RelayConfig::load(&relay_config)?;
    let relay = boot::start(&cfg).await?;

    let mut forwarders = BTreeMap::new();
    let (mut clusters, mut kube_users, mut contexts) = (Vec::new(), Vec::new(), Vec::new());
    let mut leaves: BTreeMap<String, pki::Leaf> = BTreeMap::new();
    for u in users.iter().filter(|u| u.agent.is_none()) {
        let leaf = ca.subject_cert(&u.subject, 12)?;
        write(&dir.join(format!("users/{}.crt", u.subject)), &leaf.cert_pem, false)?;
        write(&dir.join(format!("users/{}.key", u.subject)), &leaf.key_pem, true)?;
        let fwd = forward::start(ForwardConfig {
            listen: "127.0.0.1:0".parse().map_err(|_| DemoError::Issuer(std::io::Error::other("bad address")))?,
            relay: relay.url.clone(),
            trust: forward::RelayTrust::CaPem(ca.cert_pem().to_string()),
            client: forward::RelayIdentity::new(&leaf)?,
            local_ca_dir: dir.join("forward"),
        })
        .await?;
        let token = tokens.get(&u.subject).cloned().unwrap_or_default();
        let ca_data = base64::engine::general_purpose::STANDARD.encode(&fwd.ca_pem);
        let name = &u.context;
        clusters.push(json!({"name": name, "cluster": {"server": fwd.url, "certificate-authority-data": ca_data}}));
        kube_users.push(json!({"name": name, "user": {"token": token}}));
        contexts.push(json!({"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}));
        forwarders.insert(u.subject.clone(), fwd);
        leaves.insert(u.subject.clone(), leaf);
    }
    // Agents: minted for their engineer through the relay's agents API, as `hoop-kube agents
    // mint` does; their contexts talk to the relay directly.
    for u in users {
        let Some(agent) = &u.agent else { continue };
        let leaf = match leaves.get(&u.subject) {
            Some(l) => l.clone(),
            None => ca.subject_cert(&u.subject, 12)?,
        };
        let token = tokens.get(&u.subject).cloned().unwrap_or_default();
        let api = crate::agent::client::AgentApi::new(&relay.url, forward::RelayTrust::CaPem(ca.cert_pem().to_string()), &leaf.cert_pem, &leaf.key_pem, &token).map_err(|e| DemoError::Agent(e.to_string()))?;
        let (minted, key) = crate::agent::client::mint_session(&api, agent, Duration::from_secs(8 * 3600), Some(format!("hoop-kube demo ({})", u.context)))
            .await
            .map_err(|e| DemoError::Agent(format!("minting agent {agent} for {}: {e}", u.subject)))?;
        let one = crate::agent::kubeconfig::agent_kubeconfig(&relay.url, ca.cert_pem(), &minted, key.key_pem(), &u.context, Some("default"));
        for (list, key) in [(&mut clusters, "clusters"), (&mut kube_users, "users"), (&mut contexts, "contexts")] {
            list.extend(one[key].as_array().cloned().unwrap_or_default());
        }
    }
    let mut kube = json!({"apiVersion": "v1", "kind": "Config", "clusters": clusters, "users": kube_users, "contexts": contexts, "preferences": {}});
    if let Some(first) = users.first() {
        kube["current-context"] = json!(first.context);
    }
    let kubeconfig = dir.join("static.kubeconfig");
    write(&kubeconfig, &serde_json::to_string_pretty(&kube).unwrap_or_default(), true)?;
    Ok(Stack { dir: dir.to_path_buf(), sim, relay, forwarders, kubeconfig, dev_issuer, relay_config })
}

/// What the demo's exec-plugin kubeconfig needs beside the stack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoLoginError {
    #[error("the demo has no built-in issuer to log in with")]
    NoDevIssuer,
    #[error("cannot run {what}: {reason}")]
    Run { what: String, reason: String },
}

/// Log every demo user in through the real path — `hoop-kube login` (device flow against the
/// built-in issuer, which the demo approves for that user; enrollment with the relay) and
/// `hoop-kube kubeconfig` — with every file under `dir` (`config/`, `state/`; the file token
/// store, so the demo leaves nothing in the OS keyring). Writes `dir/kubeconfig`, whose users
/// run `exe credential`: kubectl gets its tokens and starts its forwarders exactly as it does
/// for an engineer. Returns the kubeconfig's path.
pub async fn login_users(stack: &Stack, users: &[User], exe: &Path) -> Result<PathBuf, DemoLoginError> {
    let dev = stack.dev_issuer.as_ref().ok_or(DemoLoginError::NoDevIssuer)?;
    let dir = &stack.dir;
    let ca = std::fs::read_to_string(dir.join("relay/ca.crt")).map_err(|e| DemoLoginError::Run { what: "the relay CA".into(), reason: e.to_string() })?;
    let pin = crate::relay_trust::fingerprint_of_pem(&ca).map_err(|e| DemoLoginError::Run { what: "the relay CA".into(), reason: e.to_string() })?;
    let kubeconfig = dir.join("kubeconfig");
    let state = dir.join("state");
    for u in users.iter().filter(|u| u.agent.is_none()) {
        let groups: Vec<&str> = u.groups.iter().map(String::as_str).collect();
        dev.register_user(&u.subject, &groups, json!({}));
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| DemoLoginError::Run { what: "a free port".into(), reason: e.to_string() })?.port();
        let profile = &u.context;
        let run = |args: Vec<String>| {
            let mut c = tokio::process::Command::new(exe);
            c.args(&args)
                .env(crate::login::profile::CONFIG_DIR_ENV, dir.join("config"))
                .env("XDG_STATE_HOME", &state)
                .env_remove("KUBECONFIG")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            c
        };
        let fail = |what: &str, reason: String| DemoLoginError::Run { what: format!("hoop-kube {what} for {profile}"), reason };
        let seen = dev.device_authorizations();
        let login = run(vec![
            "login".into(), "--profile".into(), profile.clone(), "--relay".into(), stack.relay.url.clone(), "--relay-ca-sha256".into(), pin.clone(),
            "--issuer".into(), dev.issuer().to_string(), "--token-store".into(), "file".into(), "--forward-listen".into(), format!("127.0.0.1:{port}"), "--no-qr".into(),
        ])
        .spawn()
        .map_err(|e| fail("login", e.to_string()))?;
        // The login asks for a device code; approve exactly that one, for this user.
        let pending = dev.wait_for_login(seen, Duration::from_secs(30)).await.ok_or_else(|| fail("login", "no device code was requested within 30 s".into()))?;
        dev.approve(&pending.user_code, &u.subject).map_err(|e| fail("login", e.to_string()))?;
        let out = login.wait_with_output().await.map_err(|e| fail("login", e.to_string()))?;
        if !out.status.success() {
            return Err(fail("login", String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or("failed").to_string()));
        }
        let state_env = format!("XDG_STATE_HOME={}", state.display());
        let out = run(vec!["kubeconfig".into(), "--profile".into(), profile.clone(), "--context".into(), u.context.clone(), "--namespace".into(), "default".into(), "--kubeconfig".into(), kubeconfig.display().to_string(), "--exec-env".into(), state_env])
            .output()
            .await
            .map_err(|e| fail("kubeconfig", e.to_string()))?;
        if !out.status.success() {
            return Err(fail("kubeconfig", String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
    }
    add_agent_contexts(stack, users, &kubeconfig).map_err(|reason| DemoLoginError::Run { what: "the agent contexts".into(), reason })?;
    Ok(kubeconfig)
}

/// Copy the agents' contexts (minted at start, talking to the relay directly) from the stack's
/// static kubeconfig into the logged-in one.
fn add_agent_contexts(stack: &Stack, users: &[User], kubeconfig: &Path) -> Result<(), String> {
    let names: Vec<&str> = users.iter().filter(|u| u.agent.is_some()).map(|u| u.context.as_str()).collect();
    if names.is_empty() {
        return Ok(());
    }
    let read = |p: &Path| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let from = read(&stack.kubeconfig)?;
    let mut to = read(kubeconfig)?;
    for key in ["clusters", "users", "contexts"] {
        let picked: Vec<serde_json::Value> = from[key].as_array().into_iter().flatten().filter(|e| e["name"].as_str().is_some_and(|n| names.contains(&n))).cloned().collect();
        match to[key].as_array_mut() {
            Some(list) => list.extend(picked),
            None => to[key] = serde_json::Value::Array(picked),
        }
    }
    let text = serde_json::to_string_pretty(&to).map_err(|e| e.to_string())?;
    write(kubeconfig, &text, true).map_err(|e| e.to_string())
}

/// Log the demo users out (their background forwarders stop).
pub async fn logout_users(stack: &Stack, users: &[User], exe: &Path) {
    for u in users {
        let _ = tokio::process::Command::new(exe)
            .args(["logout", "--profile", &u.context])
            .env(crate::login::profile::CONFIG_DIR_ENV, stack.dir.join("config"))
            .env("XDG_STATE_HOME", stack.dir.join("state"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }
}
