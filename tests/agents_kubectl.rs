//! AI agents through hoop-kube, with real kubectl: an agent credential minted by the relay for
//! an engineer does what the engineer's policy allows the agent and no more, is named upstream
//! and in the records, hits its session limits with machine-readable answers, is cut off at once
//! by `agents stop` (a running `kubectl logs -f` and `exec` end), dies when `hoop-kube run`'s
//! command exits (a copied kubeconfig stops working), and cannot be forged.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Cluster, Kubectl, Out, PolicyBed, Raw};
use hoop_kube::agent::client::{AgentApi, AgentKey};
use hoop_kube::agent::Minted;
use hoop_kube::forward::RelayTrust;

const POLICY: &str = r#"policy:
  rules:
    - name: team-may-use-the-cluster
      match:
        groups: [dev, sre]
      action: allow
    - name: agents-never-read-secrets
      match:
        agent: present
        verbs: [get, list, watch]
        resources: [secrets]
      action: deny
      message: agents never read secrets
    # Written for the agent, broader than its engineer: narrowing still refuses it.
    - name: bot-may-delete-in-locked
      match:
        agent: bot
        verbs: [delete]
        namespaces: [locked]
      action: allow
    - name: humans-never-delete-in-locked
      match:
        agent: absent
        verbs: [delete]
        namespaces: [locked]
      action: deny
records:
  auditors: [sre]
agents:
  signing_key: agent-signing.key
  admins: [sre]
  limits:
    - agent: bot
      requests_per_second: 4
      burst: 60
      max_deletes: 2
      namespaces: [default, locked, "team-*"]
"#;

const EXE: &str = env!("CARGO_BIN_EXE_hoop-kube");

/// The engineer alice's own agents API client in a bed (her certificate and static token).
fn alice_api(b: &PolicyBed) -> AgentApi {
    let dir = b.dir.path();
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let token = common::token_of(b.kubeconfig(), "as-alice");
    AgentApi::new(&b.stack.relay.url, RelayTrust::CaPem(read("relay/ca.crt")), &read("users/alice.crt"), &read("users/alice.key"), &token).unwrap()
}

/// Sam (sre: an agents admin).
fn sam_api(b: &PolicyBed) -> AgentApi {
    let dir = b.dir.path();
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let token = common::token_of(b.kubeconfig(), "as-sam");
    AgentApi::new(&b.stack.relay.url, RelayTrust::CaPem(read("relay/ca.crt")), &read("users/sam.crt"), &read("users/sam.key"), &token).unwrap()
}

/// Mint a session of `agent` for alice and write its kubeconfig, as `agents mint --out` does.
async fn mint(b: &PolicyBed, agent: &str) -> (Minted, AgentKey, PathBuf) {
    let api = alice_api(b);
    let (minted, key) = hoop_kube::agent::client::mint_session(&api, agent, Duration::from_secs(3600), Some("test".into())).await.expect("alice mints an agent session");
    let ca = std::fs::read_to_string(b.dir.path().join("relay/ca.crt")).unwrap();
    let dir = b.dir.path().join(format!("agents/{}", minted.session.id));
    let path = hoop_kube::agent::kubeconfig::write_agent_kubeconfig(&dir, &b.stack.relay.url, &ca, &minted, key.key_pem(), "agent", Some("default")).unwrap();
    (minted, key, path)
}

fn kubectl_with(kubeconfig: &Path) -> Kubectl {
    Kubectl { bin: common::kubectl("1.33"), kubeconfig: kubeconfig.to_path_buf(), cache: tempfile::tempdir().unwrap(), minor: "1.33".into() }
}

/// The `Status` kubectl printed with `-v=0` is only its message; the raw client reads the whole
/// object. `code` is hoop-kube's reason code from `details.causes`.
fn code_of(status: &serde_json::Value) -> Option<String> {
    status["details"]["causes"].as_array()?.iter().find(|c| c["reason"] == "HoopKubeCode").and_then(|c| c["message"].as_str()).map(str::to_string)
}

fn cause(status: &serde_json::Value, field: &str) -> Option<String> {
    status["details"]["causes"].as_array()?.iter().find(|c| c["field"] == field).and_then(|c| c["message"].as_str()).map(str::to_string)
}

fn refused(o: &Out, what: &str) {
    assert_ne!(o.code, 0, "{what} should have been refused: {o:?}");
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_is_its_engineer_narrowed_and_named_everywhere() {
    let b = PolicyBed::start(&common::team(), POLICY).await;
    let k = Kubectl::new("1.33", &b);
    k.ok(&["--context", "as-alice", "create", "namespace", "locked"]).await;
    k.ok(&["--context", "as-alice", "run", "web", "--image=nginx", "-n", "locked"]).await;
    k.ok(&["--context", "as-alice", "create", "secret", "generic", "db", "--from-literal=password=hunter2"]).await;

    // What the policy allows the agent, it does; through its own credential, straight to the relay.
    assert!(k.ok(&["--context", "as-agent", "get", "pods", "-n", "locked"]).await.contains("web"));
    // What it denies the agent, it refuses, with the rule's message.
    let o = k.run(&["--context", "as-agent", "get", "secret", "db"]).await;
    refused(&o, "an agent's secret read");
    assert!(o.stderr.contains("agents-never-read-secrets") && o.stderr.contains("agents never read secrets"), "{o:?}");
    // The engineer (control) reads it.
    k.ok(&["--context", "as-alice", "get", "secret", "db"]).await;
    // A rule written for the agent cannot allow what its engineer may not do.
    let o = k.run(&["--context", "as-agent", "delete", "pod", "web", "-n", "locked", "--wait=false"]).await;
    refused(&o, "an agent's delete its engineer may not do");
    assert!(o.stderr.contains("humans-never-delete-in-locked"), "the engineer's rule decides: {o:?}");

    // Machine-readable answers.
    let raw = Raw::new(b.kubeconfig(), "as-agent");
    let (code, _, body) = raw.get("/api/v1/namespaces/default/secrets/db", &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 403, "{status}");
    assert_eq!(code_of(&status).as_deref(), Some("PolicyDenied"), "{status}");
    assert_eq!(cause(&status, "rule").as_deref(), Some("agents-never-read-secrets"), "{status}");

    // Upstream, the agent is alice with the agent and its session as user extras.
    let session = b.stack.relay.state.agents.as_ref().unwrap().registry.list(&Default::default()).into_iter().find(|s| s.agent == "bot").expect("the bed minted bot").id;
    let log = b.requests();
    let agent_reqs: Vec<_> = log.iter().filter(|r| r["extra"]["hoop-kube.dev/agent"][0] == "bot").collect();
    assert!(!agent_reqs.is_empty(), "the cluster saw the agent");
    for r in &agent_reqs {
        assert_eq!(r["user"], "alice", "{r}");
        assert_eq!(r["extra"]["hoop-kube.dev/agent-session"][0], session.as_str(), "{r}");
    }
    assert!(!log.iter().any(|r| r["extra"]["hoop-kube.dev/agent"][0] == "bot" && r["uri"].as_str().unwrap_or("").contains("/secrets")), "no agent secret read reached the cluster");
    assert!(!log.iter().any(|r| r["method"] == "DELETE"), "no refused delete reached the cluster");

    // Records name engineer and agent; `sessions list --agent` filters them.
    let alice = Raw::new(b.kubeconfig(), "as-alice");
    let (code, _, body) = alice.get("/hoop-kube/v1/records?agent=bot", &[]).await;
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = list["items"].as_array().unwrap();
    assert!(items.len() >= 3, "{list}");
    for r in items {
        assert_eq!((r["username"].as_str(), r["agent"].as_str(), r["agentSession"].as_str()), (Some("alice"), Some("bot"), Some(session.as_str())), "{r}");
    }
    assert!(items.iter().any(|r| r["decision"] == "deny" && r["rule"] == "agents-never-read-secrets"), "{list}");
    let o = tokio::process::Command::new(EXE)
        .args(["sessions", "list", "--agent", "bot", "--context", "as-alice", "--kubeconfig"])
        .arg(b.kubeconfig())
        .env("HOME", b.home.path())
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && listed.contains("bot (for alice)") && !listed.contains("\n  alice  "), "{listed}{}", String::from_utf8_lossy(&o.stderr));

    // The agent reads its own session's records only, never alice's others.
    let (code, _, body) = raw.get("/hoop-kube/v1/records", &[]).await;
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|r| r["agentSession"] == session.as_str()), "{list}");
    let (code, _, _) = raw.get("/hoop-kube/v1/records?user=sam", &[]).await;
    assert_eq!(code, 403);
    // An agent cannot mint agents, extend itself or stop others.
    let (code, _, body) = raw.get("/hoop-kube/v1/agents", &[]).await;
    assert_eq!(code, 403, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_are_enforced_and_reported() {
    let b = PolicyBed::start(&common::team(), POLICY).await;
    let k = Kubectl::new("1.33", &b);
    for p in ["a", "b", "c"] {
        k.ok(&["--context", "as-alice", "run", p, "--image=nginx"]).await;
    }
    // Namespaces: only the allowed ones; cluster-scoped reads are outside every namespace.
    let o = k.run(&["--context", "as-agent", "get", "pods", "-n", "kube-system"]).await;
    refused(&o, "a namespace outside the agent's limit");
    assert!(o.stderr.contains("namespaces"), "{o:?}");
    refused(&k.run(&["--context", "as-agent", "get", "nodes"]).await, "a cluster-scoped read");
    k.ok(&["--context", "as-agent", "get", "pods"]).await;
    // Deletes: two, then the limit.
    k.ok(&["--context", "as-agent", "delete", "pod", "a", "--wait=false"]).await;
    k.ok(&["--context", "as-agent", "delete", "pod", "b", "--wait=false"]).await;
    let o = k.run(&["--context", "as-agent", "delete", "pod", "c", "--wait=false"]).await;
    refused(&o, "a third delete");
    assert!(o.stderr.contains("max_deletes"), "{o:?}");
    k.ok(&["--context", "as-alice", "get", "pod", "c"]).await;
    let raw = Raw::new(b.kubeconfig(), "as-agent");
    let resp = raw.client.delete(format!("{}/api/v1/namespaces/default/pods/c", raw.server)).bearer_auth(&raw.token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let status: serde_json::Value = resp.json().await.unwrap();
    assert_eq!((code_of(&status).as_deref(), cause(&status, "limit").as_deref()), (Some("DeleteLimit"), Some("max_deletes")), "{status}");
    let (_, _, body) = raw.get("/api/v1/namespaces/kube-system/pods", &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code_of(&status).as_deref(), Some("NamespaceNotAllowed"), "{status}");

    // Rate: a burst beyond the bucket gets 429 with retryAfterSeconds and Retry-After.
    let mut limited = None;
    for _ in 0..120 {
        let resp = raw.client.get(format!("{}/api/v1/namespaces/default/pods", raw.server)).bearer_auth(&raw.token).send().await.unwrap();
        if resp.status().as_u16() == 429 {
            let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            limited = Some((retry, resp.json::<serde_json::Value>().await.unwrap()));
            break;
        }
    }
    let (retry, status) = limited.expect("120 requests at once exceed 4 per second with a burst of 60");
    assert_eq!(status["reason"], "TooManyRequests", "{status}");
    assert_eq!((code_of(&status).as_deref(), cause(&status, "limit").as_deref()), (Some("RateLimited"), Some("requests_per_second")), "{status}");
    assert!(status["details"]["retryAfterSeconds"].as_u64().is_some_and(|s| s >= 1), "{status}");
    assert_eq!(retry.as_deref(), Some(status["details"]["retryAfterSeconds"].to_string().as_str()));
    // The engineer is not limited by her agent's limits.
    k.ok(&["--context", "as-alice", "get", "pods", "-n", "kube-system"]).await;
    // The session's counters show what it spent.
    let listed = alice_api(&b).list(false, Some("bot")).await.unwrap();
    let s = listed.items.iter().find(|s| s.state == hoop_kube::agent::SessionState::Active).unwrap();
    assert_eq!(s.deletes, 2, "{s:?}");
}

/// Send one GET with the given client identity (PEM cert + key) and bearer token.
async fn raw_get(relay: &str, ca: &str, identity_pem: &str, token: &str, path: &str) -> Result<(u16, serde_json::Value), String> {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .identity(reqwest::Identity::from_pem(identity_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = client.get(format!("{relay}{path}")).bearer_auth(token).send().await.map_err(|e| format!("{e:?}"))?;
    let code = resp.status().as_u16();
    Ok((code, resp.json().await.unwrap_or_default()))
}

/// Re-encode a JWT's payload with `edit` applied, keeping the header and the (now wrong)
/// signature.
fn edit_payload(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    format!("{}.{}.{}", parts[0], b64.encode(serde_json::to_vec(&payload).unwrap()), parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_agent_credentials_are_refused() {
    let b = PolicyBed::start(&common::team(), POLICY).await;
    let dir = b.dir.path();
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let (ca, relay) = (read("relay/ca.crt"), b.stack.relay.url.clone());
    let (one, one_key, _) = mint(&b, "bot").await;
    let (two, two_key, _) = mint(&b, "bot").await;
    let id_one = format!("{}{}", one.certificate, one_key.key_pem());
    let path = "/api/v1/namespaces/default/pods";

    // The genuine credential works.
    assert_eq!(raw_get(&relay, &ca, &id_one, &one.token, path).await.unwrap().0, 200);

    let unauthorized = |what: &str, got: Result<(u16, serde_json::Value), String>, code: &str| {
        let (status, body) = got.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(code_of(&body).as_deref(), Some(code), "{what}: {body}");
    };
    // Edited claims (the signature no longer matches).
    for (what, edit) in [
        ("another engineer", Box::new(|p: &mut serde_json::Value| p["sub"] = "sam".into()) as Box<dyn FnOnce(&mut serde_json::Value)>),
        ("another agent", Box::new(|p: &mut serde_json::Value| p["act"]["sub"] = "root".into())),
        ("actor swapped", Box::new(|p: &mut serde_json::Value| {
            let sub = p["sub"].clone();
            p["sub"] = p["act"]["sub"].clone();
            p["act"]["sub"] = sub;
        })),
        ("a later expiry", Box::new(|p: &mut serde_json::Value| p["exp"] = (p["exp"].as_i64().unwrap() + 86400).into())),
    ] {
        unauthorized(what, raw_get(&relay, &ca, &id_one, &edit_payload(&one.token, edit), path).await, "AgentCredentialRejected");
    }
    // Validly signed by the relay's key, but expired, or for session two with session one's
    // certificate (the actor of the certificate and of the token differ).
    let key = hoop_kube::agent::token::SigningKey::from_pem(&read("relay/agent-signing.key")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = |session: &str, iat: i64, exp: i64| hoop_kube::agent::token::Claims { subject: "alice".into(), agent: "bot".into(), session: session.into(), issued_at: iat, not_before: iat, expires_at: exp };
    let expired = key.mint(&claims(&one.session.id, now - 7200, now - 3600)).unwrap();
    unauthorized("an expired token", raw_get(&relay, &ca, &id_one, &expired, path).await, "AgentCredentialRejected");
    unauthorized("session two's token with session one's certificate", raw_get(&relay, &ca, &id_one, &two.token, path).await, "AgentCredentialRejected");
    // Signed by another key.
    let other = hoop_kube::agent::token::SigningKey::generate().unwrap();
    unauthorized("a token from another key", raw_get(&relay, &ca, &id_one, &other.mint(&claims(&one.session.id, now, now + 600)).unwrap(), path).await, "AgentCredentialRejected");
    // The agent token with the engineer's own certificate; the engineer's token with the agent's.
    let alice_id = format!("{}{}", read("users/alice.crt"), read("users/alice.key"));
    unauthorized("an agent token with an engineer certificate", raw_get(&relay, &ca, &alice_id, &one.token, path).await, "AgentCredentialRejected");
    let alice_token = common::token_of(b.kubeconfig(), "as-alice");
    unauthorized("an engineer token with an agent certificate", raw_get(&relay, &ca, &id_one, &alice_token, path).await, "AgentCredentialRejected");
    // An identity-provider token claiming to act for alice.
    let dev = b.stack.dev_issuer.as_ref().unwrap();
    let delegated = dev.mint("alice", &["dev"], hoop_kube::demo::AUDIENCE, Duration::from_secs(600), serde_json::json!({"act": {"sub": "bot"}}));
    unauthorized("an issuer token with an act claim", raw_get(&relay, &ca, &alice_id, &delegated, path).await, "AgentCredentialRejected");
    // An agent certificate from another CA: the TLS handshake fails.
    let rogue = hoop_kube::pki::Ca::generate("rogue", 1).unwrap();
    let rogue_key = rcgen::KeyPair::generate().unwrap();
    let csr = hoop_kube::pki::ClientCsr::from_pem(&rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().serialize_request(&rogue_key).unwrap().pem().unwrap()).unwrap();
    let actor = hoop_kube::pki::Actor { agent: "bot".into(), session: one.session.id.clone() };
    let forged = rogue.sign_agent_csr(&csr, "alice", "alice", &actor, now + 600).unwrap();
    let got = raw_get(&relay, &ca, &format!("{}{}", forged.cert_pem, rogue_key.serialize_pem()), &one.token, path).await;
    assert!(got.is_err(), "a certificate from another CA never gets an answer: {got:?}");
    // Session two still works: nothing above disturbed it.
    assert_eq!(raw_get(&relay, &ca, &format!("{}{}", two.certificate, two_key.key_pem()), &two.token, path).await.unwrap().0, 200);
    // Nothing forged reached the cluster as alice's agent beyond the two genuine reads.
    let reached = b.requests().iter().filter(|r| r["extra"]["hoop-kube.dev/agent-session"][0] == one.session.id.as_str()).count();
    assert_eq!(reached, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_stop_cuts_logs_and_exec_at_once() {
    let b = PolicyBed::start(&common::team(), POLICY).await;
    let k = Kubectl::new("1.33", &b);
    k.ok(&["--context", "as-alice", "run", "ticker", "--image=busybox", "--", "sh", "-c", "while true; do echo tick; sleep 1; done"]).await;
    let (minted, _key, kubeconfig) = mint(&b, "bot").await;

    // kubectl 1.27 execs over SPDY, 1.33 over WebSocket; both run `logs -f` and `exec -i`.
    let mut running = Vec::new();
    for minor in ["1.27", "1.33"] {
        let mut k = kubectl_with(&kubeconfig);
        k.bin = common::kubectl(minor);
        let mut logs = k.cmd(&["logs", "-f", "ticker"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut exec = k.cmd(&["exec", "-i", "ticker", "--", "sh"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Both are running: logs has printed, exec answers.
        let mut out = tokio::io::BufReader::new(logs.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)).await.expect("logs -f prints").unwrap();
        assert_eq!(line, "tick\n", "kubectl {minor}");
        let mut stdin = exec.stdin.take().unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stdin, b"echo alive\n").await.unwrap();
        let mut exec_out = tokio::io::BufReader::new(exec.stdout.take().unwrap());
        let mut got = String::new();
        tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncBufReadExt::read_line(&mut exec_out, &mut got)).await.expect("exec answers").unwrap();
        assert_eq!(got, "alive\n", "kubectl {minor}");
        running.push((minor, logs, exec, stdin, out, exec_out, k));
    }

    // sam (an agents admin) stops every session of `bot`.
    let stopped = sam_api(&b).stop(&hoop_kube::agent::StopRequest { agent: "bot".into(), subject: None }).await.unwrap();
    assert!(stopped.items.iter().any(|s| s.id == minted.session.id && s.ended_by.as_deref() == Some("sam")), "{stopped:?}");
    // Every stream ends at once, though stdin is still open and the pod still ticks.
    let mut kubectls = Vec::new();
    for (minor, mut logs, mut exec, stdin, _out, _exec_out, k) in running {
        kubectls.push(k);
        tokio::time::timeout(Duration::from_secs(10), logs.wait()).await.unwrap_or_else(|_| panic!("kubectl {minor} logs -f was not cut")).unwrap();
        let exec_done = tokio::time::timeout(Duration::from_secs(10), exec.wait()).await.unwrap_or_else(|_| panic!("kubectl {minor} exec was not cut")).unwrap();
        // Over WebSocket kubectl reports the cut as an error. Over SPDY (kubectl ≤ 1.29) it takes
        // a closed connection for the end of the command and exits 0: the cut still happened
        // (it ended within the timeout while its stdin was open), but only the agent's next
        // request tells it why.
        if minor != "1.27" {
            assert!(!exec_done.success(), "kubectl {minor} exec ended with an error: {exec_done:?}");
        }
        drop(stdin);
    }
    // And the credential is dead: kubectl (with a warm discovery cache) prints why.
    let warm = kubectls.last().expect("two versions");
    let o = warm.run(&["get", "pods"]).await;
    refused(&o, "a stopped session's request");
    assert!(o.stderr.contains("was stopped by sam"), "{o:?}");
    assert_status(&kubeconfig, 401, "AgentSessionEnded", "was stopped by sam").await;
    // The engineer is not affected.
    k.ok(&["--context", "as-alice", "get", "pods"]).await;
    // The exec sessions' records end as stopped.
    let alice = Raw::new(b.kubeconfig(), "as-alice");
    let (_, _, body) = alice.get(&format!("/hoop-kube/v1/records?agentSession={}", minted.session.id), &[]).await;
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let execs: Vec<_> = list["items"].as_array().unwrap().iter().filter(|r| r["subresource"] == "exec").collect();
    assert_eq!(execs.len(), 2, "{list}");
    assert!(execs.iter().all(|r| r["completed"].is_string()), "the exec records are completed: {list}");
}

/// What the relay answers an agent kubeconfig's credential now: code, reason code, message.
async fn assert_status(kubeconfig: &Path, code: u16, reason_code: &str, message: &str) {
    let k: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    let raw = Raw::new(kubeconfig, k["current-context"].as_str().unwrap());
    let (got, _, body) = raw.get("/api/v1/namespaces/default/pods", &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got, code, "{status}");
    assert_eq!(code_of(&status).as_deref(), Some(reason_code), "{status}");
    assert!(status["message"].as_str().unwrap().contains(message), "{status}");
}

/// The demo stack with real logins (device flow against the built-in issuer, file token store),
/// for the `hoop-kube run` and `hoop-kube agents` commands, which work from a profile.
struct LoggedIn {
    stack: hoop_kube::demo::Stack,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl LoggedIn {
    async fn start() -> LoggedIn {
        let dir = tempfile::tempdir().unwrap();
        let users = vec![hoop_kube::demo::User { subject: "alice".into(), groups: vec!["dev".into()], context: "alice".into(), agent: None }];
        let stack = hoop_kube::demo::start_with(dir.path(), &users, hoop_kube::demo::Issuer::Dev, "127.0.0.1:0".parse().unwrap(), Some(POLICY)).await.unwrap();
        let kubeconfig = hoop_kube::demo::login_users(&stack, &users, Path::new(EXE)).await.unwrap();
        LoggedIn { stack, dir, kubeconfig }
    }

    fn hoop_kube(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(EXE);
        c.args(args)
            .env(hoop_kube::login::profile::CONFIG_DIR_ENV, self.dir.path().join("config"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .env_remove(hoop_kube::agent::SESSION_ENV)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_agent_gives_the_command_its_own_credential_and_revokes_it_on_exit() {
    let bed = LoggedIn::start().await;
    let out = bed.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let kubectl = common::kubectl("1.33");
    let cache = bed.dir.path().join("kube-cache");
    let script = format!(
        r#"set -u
k="{kubectl} --cache-dir {cache}"
$k get pods > {out}/pods.txt 2>&1; echo $? > {out}/pods.code
$k get secrets > {out}/secrets.txt 2>&1; echo $? > {out}/secrets.code
{exe} credential --profile alice > {out}/credential.txt 2>&1; echo $? > {out}/credential.code
{exe} agents list --profile alice > {out}/agents.txt 2>&1; echo $? > {out}/agents.code
cp "$KUBECONFIG" {out}/copied.kubeconfig
echo "$KUBECONFIG" > {out}/kubeconfig.path
echo "$HOOP_KUBE_AGENT_SESSION" > {out}/session
exit 7"#,
        kubectl = kubectl.display(),
        cache = cache.display(),
        out = out.display(),
        exe = EXE,
    );
    let o = bed.hoop_kube(&["run", "--agent", "bot", "--ttl", "30m", "--profile", "alice", "--", "sh", "-c", &script]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "run exits with its command's status: {stderr}");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    // What the policy allows the agent it did; what it denies it refused.
    assert_eq!(read("pods.code").trim(), "0", "{}", read("pods.txt"));
    assert_ne!(read("secrets.code").trim(), "0");
    assert!(read("secrets.txt").contains("agents never read secrets"), "{}", read("secrets.txt"));
    // The engineer's own credentials are not handed out inside the agent session.
    assert_ne!(read("credential.code").trim(), "0");
    assert!(read("credential.txt").contains("agent session"), "{}", read("credential.txt"));
    assert!(!read("credential.txt").contains("\"token\""), "no token printed: {}", read("credential.txt"));
    assert_ne!(read("agents.code").trim(), "0", "nor does it act as the engineer: {}", read("agents.txt"));
    assert!(read("agents.txt").contains("agent session"), "{}", read("agents.txt"));
    // The private kubeconfig is gone, and a copy of it no longer works.
    let private = PathBuf::from(read("kubeconfig.path").trim());
    assert!(!private.exists(), "{} should be deleted", private.display());
    let session = read("session").trim().to_string();
    assert!(hoop_kube::record::id::is_id(&session), "{session:?}");
    let copied = kubectl_with(&out.join("copied.kubeconfig"));
    let o = copied.run(&["get", "pods"]).await;
    // (A fresh kubectl starts with discovery, whose 401s it prints as "You must be logged in"
    // without the server's message, exactly as with kube-apiserver.)
    assert!(o.code != 0 && o.stderr.contains("You must be logged in"), "the copied kubeconfig after exit: {o:?}");
    assert_status(&out.join("copied.kubeconfig"), 401, "AgentSessionEnded", "was revoked by alice").await;
    // The session is listed as revoked, by alice.
    let o = bed.hoop_kube(&["agents", "list", "--profile", "alice", "-o", "json"]).output().await.unwrap();
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
    let s = list["items"].as_array().unwrap().iter().find(|s| s["id"] == session.as_str()).unwrap().clone();
    assert_eq!((s["state"].as_str(), s["agent"].as_str(), s["endedBy"].as_str()), (Some("revoked"), Some("bot"), Some("alice")), "{s}");

    // `agents mint --out` for an agent started elsewhere; `agents stop` ends it.
    let minted_dir = bed.dir.path().join("minted");
    let o = bed.hoop_kube(&["agents", "mint", "--agent", "ci-bot", "--ttl", "10m", "--profile", "alice", "--out"]).arg(&minted_dir).output().await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ci = kubectl_with(&minted_dir.join("kubeconfig"));
    ci.ok(&["get", "pods"]).await;
    let o = bed.hoop_kube(&["agents", "stop", "ci-bot", "--profile", "alice"]).output().await.unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ci-bot"), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let o = ci.run(&["get", "pods"]).await;
    refused(&o, "a stopped minted credential");
    assert!(o.stderr.contains("was stopped by alice"), "{o:?}");
    // `agents revoke ID` ends one session by its id.
    let second = bed.dir.path().join("second");
    let o = bed.hoop_kube(&["agents", "mint", "--agent", "ci-bot", "--profile", "alice", "--out"]).arg(&second).output().await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bed.hoop_kube(&["agents", "list", "--agent", "ci-bot", "--profile", "alice", "-o", "json"]).output().await.unwrap();
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let active: Vec<&str> = list["items"].as_array().unwrap().iter().filter(|s| s["state"] == "active").filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(active.len(), 1, "{list}");
    let o = bed.hoop_kube(&["agents", "revoke", active[0], "--profile", "alice"]).output().await.unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(active[0]), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_status(&second.join("kubeconfig"), 401, "AgentSessionEnded", "was revoked by alice").await;
    // The engineer's own kubeconfig still works.
    let mut k = kubectl_with(&bed.kubeconfig);
    k.cache = tempfile::tempdir().unwrap();
    let o = k.cmd(&["--context", "alice", "get", "pods"]).env(hoop_kube::login::profile::CONFIG_DIR_ENV, bed.dir.path().join("config")).env("XDG_STATE_HOME", bed.dir.path().join("state")).output().await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(bed.stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reviewer_denies_an_agents_request_and_stops_the_agent() {
    let policy = POLICY.replace(
        "records:\n",
        "    - name: agent-deletes-need-sre\n      match:\n        agent: present\n        verbs: [delete]\n      action: review\n      reviewers: [sre]\nreview:\n  hold_seconds: 1\nrecords:\n",
    );
    let b = PolicyBed::start(&common::team(), &policy).await;
    let k = Kubectl::new("1.33", &b);
    k.ok(&["--context", "as-alice", "run", "web", "--image=nginx"]).await;
    // The agent's delete is held, then answered with what an agent framework needs to wait.
    let raw = Raw::new(b.kubeconfig(), "as-agent");
    let resp = raw.client.delete(format!("{}/api/v1/namespaces/default/pods/web", raw.server)).bearer_auth(&raw.token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let status: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(code_of(&status).as_deref(), Some("ReviewPending"), "{status}");
    assert_eq!(cause(&status, "rule").as_deref(), Some("agent-deletes-need-sre"), "{status}");
    assert!(status["details"]["retryAfterSeconds"].as_u64().is_some(), "{status}");
    let review = cause(&status, "review").expect("the review id");
    // sam denies it and stops the agent in one step.
    let o = tokio::process::Command::new(EXE)
        .args(["reviews", "deny", &review, "--reason", "not during the freeze", "--stop-agent", "--context", "as-sam", "--kubeconfig"])
        .arg(b.kubeconfig())
        .env("HOME", b.home.path())
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("denied") && out.contains("stopped agent session"), "{out}{}", String::from_utf8_lossy(&o.stderr));
    // The agent is cut off; the engineer is not, and nothing was deleted.
    let (code, _, body) = raw.get("/api/v1/namespaces/default/pods", &[]).await;
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, code_of(&status).as_deref()), (401, Some("AgentSessionEnded")), "{status}");
    assert!(status["message"].as_str().unwrap().contains("stopped by sam"), "{status}");
    k.ok(&["--context", "as-alice", "get", "pod", "web"]).await;
    assert!(!b.requests().iter().any(|r| r["method"] == "DELETE"), "the held delete never reached the cluster");
}
