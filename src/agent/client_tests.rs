use std::sync::Arc;

use super::*;
use crate::agent::launch;
use crate::agent::{SessionInfo, SessionState};
use crate::pki::{Actor, Ca, ClientCsr};

const SID: &str = "0190a0b0-1234-7000-8000-00000000abcd";
const ENGINEER_TOKEN: &str = "engineer.id.token";

// === pure parts ===

#[test]
fn ttls_parse_with_units_and_limits() {
    for (s, secs) in [("30m", 1800), ("1h", 3600), ("90s", 90), ("2h30m", 9000), ("1d", 86_400), ("7d", 604_800), ("1m", 60), (" 45m ", 2700), ("1h0m30s", 3630)] {
        assert_eq!(parse_ttl(s), Ok(Duration::from_secs(secs)), "{s}");
    }
    for bad in ["", "abc", "1x", "h", "10", "1h30", "-1h", "1.5h", "1 h", "1H", "m30"] {
        assert!(matches!(parse_ttl(bad), Err(TtlError::Invalid(_))), "{bad:?}: {:?}", parse_ttl(bad));
    }
    for short in ["0", "00", "0s", "0h", "59s", "0m59s"] {
        assert!(matches!(parse_ttl(short), Err(TtlError::TooShort(_))), "{short:?}");
    }
    assert_eq!(parse_ttl("0").unwrap_err().to_string(), "a ttl of 0 is too short: an agent session lasts at least 1m (60s)");
    assert_eq!(parse_ttl("0s").unwrap_err().to_string(), "a ttl of 0s is too short: an agent session lasts at least 1m (60s)");
    for long in ["8d", "168h1s", "99999999999999999999999h", "7d1s"] {
        assert!(matches!(parse_ttl(long), Err(TtlError::TooLong(_))), "{long:?}");
    }
    assert_eq!(parse_ttl("8d").unwrap_err().to_string(), "a ttl of 8d is too long: at most 7d (the relay may cap it further)");
    let e = parse_ttl("soon").unwrap_err().to_string();
    assert!(e.contains("\"soon\" is not a duration") && e.contains("2h30m"), "{e}");
}

#[test]
fn durations_format_compactly() {
    assert_eq!(format_duration(Duration::from_secs(9000)), "2h30m");
    assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(format_duration(Duration::from_secs(86_400 + 3600)), "1d1h");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn the_guard_refuses_inside_an_agent_session() {
    assert_eq!(check_agent_env(None), Ok(()));
    assert_eq!(check_agent_env(Some(OsStr::new(""))), Ok(()));
    let e = check_agent_env(Some(OsStr::new(SID))).unwrap_err();
    assert_eq!(
        format!("hoop-kube: {e}"),
        format!("hoop-kube: this process runs as agent session {SID} (hoop-kube run --agent); the engineer's credentials are not handed to agents — use the KUBECONFIG hoop-kube run set")
    );
    // What the environment holds is printed, but safely.
    let e = check_agent_env(Some(OsStr::new("x\u{1b}[31m\ny"))).unwrap_err();
    assert!(!e.to_string().chars().any(char::is_control), "{e:?}");
}

#[test]
fn session_ids_must_be_uuids() {
    assert_eq!(check_session_id(SID).unwrap(), SID);
    assert_eq!(check_session_id(&SID.to_uppercase()).unwrap(), SID, "canonical lower case");
    for bad in ["", "../../enroll", "0190a0b0-1234-7000-8000-00000000abc", "0190a0b012347000800000000000abcd", "{0190a0b0-1234-7000-8000-00000000abcd}", "0190a0b0-1234-7000-8000-00000000abcd/x"] {
        assert!(matches!(check_session_id(bad), Err(AgentClientError::BadId(_))), "{bad:?}");
    }
}

#[test]
fn command_lines_are_quoted_and_clipped() {
    let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    assert_eq!(command_line(&args(&["claude", "--model", "x"])), "claude --model x");
    assert_eq!(command_line(&args(&["sh", "-c", "kubectl get pods; echo it's"])), r"sh -c 'kubectl get pods; echo it'\''s'");
    assert_eq!(command_line(&args(&["a", ""])), "a ''");
    let long = command_line(&args(&["x", &"é".repeat(400)]));
    assert!(long.len() <= MAX_COMMAND_BYTES && long.ends_with('…'), "{} {long}", long.len());
    assert!(!command_line(&args(&["a\nb"])).contains('\n'));
}

#[test]
fn relay_urls_must_be_plain_https() {
    assert_eq!(relay_base("https://relay.example.com:8443/").unwrap(), "https://relay.example.com:8443");
    for bad in ["http://relay", "https://relay/api", "https://relay?x=1", "https://u:p@relay", "relay:443", ""] {
        assert!(matches!(relay_base(bad), Err(AgentClientError::BadUrl(_))), "{bad:?}");
    }
}

#[test]
fn refusals_surface_the_status_message_on_one_line() {
    let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"agent \"bot\" is not allowed for alice:\nno rule lets her","reason":"Forbidden","code":403}"#;
    let e = refused(403, status, "https://relay");
    assert!(matches!(e, AgentClientError::Refused { code: 403, .. }));
    assert_eq!(e.to_string(), "agent \"bot\" is not allowed for alice: no rule lets her");
    assert_eq!(refused(502, b"bad gateway\n", "https://relay").to_string(), "bad gateway");
    assert_eq!(refused(500, b"", "https://relay").to_string(), "the relay at https://relay answered HTTP 500");
    assert_eq!(refused(404, b"{}", "https://relay").to_string(), "the relay at https://relay answered HTTP 404");
}

fn session(id: &str, agent: &str, state: SessionState) -> SessionInfo {
    SessionInfo {
        id: id.into(),
        agent: agent.into(),
        subject: "alice".into(),
        username: "alice".into(),
        groups: vec!["dev".into()],
        created_at: "2025-01-01T00:00:00Z".into(),
        not_after: "2099-01-01T00:00:00Z".into(),
        state,
        ended_at: None,
        ended_by: None,
        command: None,
        cert_serial: "ab".into(),
        requests: 0,
        mutating: 0,
        deletes: 0,
    }
}

/// What the relay answers a mint for `key`: a certificate signed by `ca` naming `actor`.
fn minted_for(ca: &Ca, csr_pem: &str, agent: &str, session_id: &str) -> Minted {
    let csr = ClientCsr::from_pem(csr_pem).unwrap();
    let actor = Actor { agent: agent.into(), session: session_id.into() };
    let issued = ca.sign_agent_csr(&csr, "alice", "alice", &actor, Utc::now().timestamp() + 3600).unwrap();
    Minted { api_version: API_VERSION.into(), kind: "AgentCredential".into(), session: session(session_id, agent, SessionState::Active), certificate: issued.cert_pem, token: "agent.token".into() }
}

#[test]
fn agent_keys_make_verified_csrs_and_check_what_comes_back() {
    let ca = Ca::generate("t", 1).unwrap();
    let key = AgentKey::generate().unwrap();
    assert!(!format!("{key:?}").contains("PRIVATE"), "the key stays out of Debug");
    let good = minted_for(&ca, key.csr_pem(), "bot", SID);
    assert!(key.check(&good).unwrap() > Utc::now());

    let other = AgentKey::generate().unwrap();
    let e = other.check(&good).unwrap_err().to_string();
    assert!(e.contains("another key"), "{e}");

    let mut wrong_session = good.clone();
    wrong_session.session.id = "0190a0b0-1234-7000-8000-0000000000ff".into();
    let e = key.check(&wrong_session).unwrap_err().to_string();
    assert!(e.contains("is not for agent \"bot\""), "{e}");
    let mut wrong_agent = good.clone();
    wrong_agent.session.agent = "other".into();
    assert!(key.check(&wrong_agent).is_err());

    let engineer = ca.subject_cert("alice", 1).unwrap();
    let mut not_an_agent = good;
    not_an_agent.certificate = engineer.cert_pem;
    assert!(key.check(&not_an_agent).is_err());
}

// === against a relay on 127.0.0.1 ===

/// A stand-in for the relay's agents API: mutual TLS with the relay's CA, the engineer's token,
/// and the contract's answers.
struct FakeRelay {
    url: String,
    ca: Arc<Ca>,
    engineer: crate::pki::Leaf,
}

async fn fake_relay() -> FakeRelay {
    use tokio::net::TcpListener;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca = Arc::new(Ca::generate("relay CA", 1).unwrap());
    let leaf = ca.server_cert(&["127.0.0.1"], 1).unwrap();
    let chain = crate::pki::Leaf { cert_pem: format!("{}{}", leaf.cert_pem, ca.cert_pem()), key_pem: leaf.key_pem.clone() };
    let tls = Arc::new(pki::relay_server_config(&chain, ca.cert_pem()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let signer = ca.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
            let ca = signer.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let peer = stream.get_ref().1.peer_certificates().and_then(|c| c.first().and_then(pki::cert_subject)).map(|s| s.subject);
                let svc = hyper::service::service_fn(move |req| {
                    let (ca, peer) = (ca.clone(), peer.clone());
                    async move { Ok::<_, std::convert::Infallible>(answer(req, peer, &ca).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new()).serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
            });
        }
    });
    let engineer = ca.subject_cert("alice", 1).unwrap();
    FakeRelay { url, ca, engineer }
}

fn reply(code: u16, body: serde_json::Value) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body.to_string())));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
    r
}

fn status(code: u16, message: &str) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    reply(code, serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}))
}

async fn answer(req: http::Request<hyper::body::Incoming>, peer: Option<String>, ca: &Ca) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt as _;
    let bearer = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    if peer.as_deref() != Some("alice") || bearer.as_deref() != Some(&format!("Bearer {ENGINEER_TOKEN}")) {
        return status(401, "the agents API needs the engineer's client certificate and ID token");
    }
    let (method, path, query) = (req.method().clone(), req.uri().path().to_string(), req.uri().query().unwrap_or_default().to_string());
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let list = |items: Vec<SessionInfo>| serde_json::json!({"apiVersion": API_VERSION, "kind": "AgentSessionList", "items": items});
    let rest = path.strip_prefix(API_PATH).unwrap_or("?");
    match (method.as_str(), rest) {
        ("POST", "") => {
            let m: MintRequest = match serde_json::from_slice(&body) {
                Ok(m) => m,
                Err(e) => return status(400, &e.to_string()),
            };
            if m.agent == "forbidden" {
                return status(403, "agent \"forbidden\" may not act for alice:\nno agents rule allows it");
            }
            let mut minted = minted_for(ca, &m.csr, &m.agent, SID);
            minted.session.command = m.command;
            reply(200, serde_json::to_value(minted).unwrap())
        }
        ("GET", "") => {
            let mut s = session(SID, "bot", SessionState::Active);
            s.command = Some(query);
            reply(200, list(vec![s]))
        }
        ("POST", "/stop") => {
            let r: StopRequest = serde_json::from_slice(&body).unwrap();
            let mut s = session(SID, &r.agent, SessionState::Stopped);
            s.ended_by = r.subject;
            reply(200, list(vec![s]))
        }
        ("GET", id) => reply(200, serde_json::to_value(session(&id[1..], "bot", SessionState::Active)).unwrap()),
        ("DELETE", id) => {
            let mut s = session(&id[1..], "bot", SessionState::Revoked);
            s.ended_by = Some("alice".into());
            reply(200, serde_json::to_value(s).unwrap())
        }
        _ => status(404, "no such agents API path"),
    }
}

#[tokio::test]
async fn the_api_speaks_mutual_tls_and_the_contract() {
    let relay = fake_relay().await;
    let api = AgentApi::new(&relay.url, RelayTrust::CaPem(relay.ca.cert_pem().to_string()), &relay.engineer.cert_pem, &relay.engineer.key_pem, ENGINEER_TOKEN).unwrap();
    assert!(!format!("{api:?}").contains(ENGINEER_TOKEN));

    let (minted, key) = mint_session(&api, "bot", Duration::from_secs(600), Some("kubectl get pods".into())).await.unwrap();
    assert_eq!(minted.session.id, SID);
    assert_eq!(minted.session.command.as_deref(), Some("kubectl get pods"));
    assert!(key.key_pem().contains("PRIVATE KEY"));
    assert_eq!(api.server_ca_pem().await.unwrap(), relay.ca.cert_pem());

    let l = api.list(true, Some("bot")).await.unwrap();
    assert_eq!(l.items[0].command.as_deref(), Some("all=true&agent=bot"));
    assert_eq!(api.list(false, None).await.unwrap().items[0].command.as_deref(), Some(""));
    assert_eq!(api.get(SID).await.unwrap().id, SID);
    let r = api.revoke(&SID.to_uppercase()).await.unwrap();
    assert_eq!((r.id.as_str(), r.state), (SID, SessionState::Revoked));
    let s = api.stop(&StopRequest { agent: "bot".into(), subject: Some("bob".into()) }).await.unwrap();
    assert_eq!((s.items[0].agent.as_str(), s.items[0].ended_by.as_deref()), ("bot", Some("bob")));

    // Refusals: the Status message, on one line.
    let e = mint_session(&api, "forbidden", Duration::from_secs(600), None).await.unwrap_err();
    assert!(matches!(e, AgentClientError::Refused { code: 403, .. }), "{e:?}");
    assert_eq!(e.to_string(), "agent \"forbidden\" may not act for alice: no agents rule allows it");
    // Bad input never leaves the machine.
    assert!(matches!(api.revoke("../enroll").await, Err(AgentClientError::BadId(_))));
    assert!(matches!(api.list(false, Some("Bad Name")).await, Err(AgentClientError::Name(_))));
    assert!(matches!(mint_session(&api, "-bot", Duration::from_secs(600), None).await, Err(AgentClientError::Name(_))));

    // Another token: the relay's 401 Status, surfaced as is.
    let stranger = AgentApi::new(&relay.url, RelayTrust::CaPem(relay.ca.cert_pem().to_string()), &relay.engineer.cert_pem, &relay.engineer.key_pem, "other").unwrap();
    let e = stranger.list(false, None).await.unwrap_err();
    assert_eq!(e.to_string(), "the agents API needs the engineer's client certificate and ID token");
}

#[tokio::test]
async fn a_pinned_relay_hands_over_its_ca_for_the_agent_kubeconfig() {
    let relay = fake_relay().await;
    let pin = crate::relay_trust::fingerprint_of_pem(relay.ca.cert_pem()).unwrap();
    let api = AgentApi::new(&relay.url, RelayTrust::Pin(pin.clone()), &relay.engineer.cert_pem, &relay.engineer.key_pem, ENGINEER_TOKEN).unwrap();
    let same = |pem: &str| pki::certs_from_pem(pem, "x").unwrap() == pki::certs_from_pem(relay.ca.cert_pem(), "x").unwrap();
    // Before any call: a handshake of its own.
    assert!(same(&api.server_ca_pem().await.unwrap()));
    // After a call: the CA that call matched.
    mint_session(&api, "bot", Duration::from_secs(600), None).await.unwrap();
    assert!(same(&api.server_ca_pem().await.unwrap()));
    assert!(same(&crate::relay_trust::fetch_pinned_ca(&relay.url, &pin).await.unwrap()));

    // Another pin: the handshake fails, with the reason.
    let wrong = AgentApi::new(&relay.url, RelayTrust::Pin("ab".repeat(32)), &relay.engineer.cert_pem, &relay.engineer.key_pem, ENGINEER_TOKEN).unwrap();
    let e = wrong.list(false, None).await.unwrap_err();
    assert!(matches!(e, AgentClientError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("pinned CA"), "{e}");
    let e = crate::relay_trust::fetch_pinned_ca(&relay.url, &"ab".repeat(32)).await.unwrap_err();
    assert!(e.to_string().contains("pinned CA"), "{e}");
}

#[tokio::test]
async fn unusable_parts_and_unreachable_relays_are_one_line() {
    let relay = fake_relay().await;
    let ca = RelayTrust::CaPem(relay.ca.cert_pem().to_string());
    let other = Ca::generate("x", 1).unwrap().subject_cert("alice", 1).unwrap();
    let e = AgentApi::new(&relay.url, ca.clone(), &relay.engineer.cert_pem, &other.key_pem, ENGINEER_TOKEN).unwrap_err();
    assert!(matches!(e, AgentClientError::Tls(_)), "a key that is not the certificate's: {e:?}");
    assert!(matches!(AgentApi::new("http://127.0.0.1:1", ca.clone(), &relay.engineer.cert_pem, &relay.engineer.key_pem, "t"), Err(AgentClientError::BadUrl(_))));
    assert!(matches!(AgentApi::new(&relay.url, RelayTrust::Pin("nope".into()), &relay.engineer.cert_pem, &relay.engineer.key_pem, "t"), Err(AgentClientError::Trust(_))));

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let api = AgentApi::new(&format!("https://{closed}"), ca, &relay.engineer.cert_pem, &relay.engineer.key_pem, "t").unwrap();
    let e = api.list(false, None).await.unwrap_err();
    assert!(matches!(e, AgentClientError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().starts_with(&format!("cannot reach the relay at https://{closed}: ")) && !e.to_string().contains('\n'), "{e}");
}

// === launch ===

#[test]
fn private_dirs_are_0700_and_go_away() {
    let base = tempfile::tempdir().unwrap();
    let d = launch::PrivateDir::create_in(base.path(), "hoop-kube-agent").unwrap();
    let p = d.path().to_path_buf();
    assert!(p.file_name().unwrap().to_string_lossy().starts_with("hoop-kube-agent-"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o700);
    }
    std::fs::write(p.join("kubeconfig"), "secret").unwrap();
    d.remove().unwrap();
    assert!(!p.exists());
    let d = launch::PrivateDir::create_in(base.path(), "x").unwrap();
    let p = d.path().to_path_buf();
    drop(d);
    assert!(!p.exists(), "dropped means deleted");
    let e = launch::PrivateDir::create_in(&base.path().join("missing"), "x").unwrap_err();
    assert!(e.to_string().starts_with("cannot create a private directory in "), "{e}");
}

#[cfg(unix)]
#[tokio::test]
async fn commands_run_with_the_agent_environment_and_report_their_status() {
    let sh = OsStr::new("sh");
    let args_then = |s: &str| vec![OsString::from("-c"), OsString::from(s)];
    let env = [("KUBECONFIG", OsStr::new("/tmp/agent/kubeconfig")), (SESSION_ENV, OsStr::new(SID))];
    let ok = launch::run(sh, &args_then(&format!("test \"$KUBECONFIG\" = /tmp/agent/kubeconfig && test \"${SESSION_ENV}\" = {SID} && test -n \"$PATH\"")), &env, launch::Signals::manual().1).await.unwrap();
    assert_eq!(launch::exit_code(&ok), 0);
    let three = launch::run(sh, &args_then("exit 3"), &env, launch::Signals::manual().1).await.unwrap();
    assert_eq!(launch::exit_code(&three), 3);
    let killed = launch::run(sh, &args_then("kill -TERM $$"), &env, launch::Signals::manual().1).await.unwrap();
    assert_eq!(launch::exit_code(&killed), 128 + 15);
    let e = launch::run(OsStr::new("/nonexistent/agent"), &[], &env, launch::Signals::manual().1).await.unwrap_err();
    assert!(e.to_string().starts_with("cannot run \"/nonexistent/agent\": "), "{e}");
}

#[cfg(unix)]
#[tokio::test]
async fn signals_are_passed_on_to_the_command() {
    let child = tokio::process::Command::new("sh").args(["-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut child = child;
    let mut out = child.stdout.take().unwrap();
    // Wait until the trap is set.
    let mut buf = [0u8; 6];
    tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(15).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), launch::supervise(child, &mut rx)).await.unwrap().unwrap();
    assert_eq!(launch::exit_code(&status), 42);

    // A signal before the command starts: it is not started.
    let (tx, signals) = launch::Signals::manual();
    tx.send(2).unwrap();
    let e = launch::run(OsStr::new("sh"), &[OsString::from("-c"), OsString::from("exit 0")], &[], signals).await.unwrap_err();
    assert!(matches!(e, launch::LaunchError::Interrupted { signal: 2 }), "{e:?}");
}
