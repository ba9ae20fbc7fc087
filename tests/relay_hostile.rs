//! The relay against hostile clients: every way to present a wrong identity, every path trick,
//! identity headers, oversized requests, a dead upstream. Each refusal must be the right
//! Kubernetes `Status` (or a refused TLS handshake: a certificate that is presented must chain to
//! the relay's client CA), and nothing refused may reach the cluster.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{raw_request_to, request, RawResponse};
use hoop_kube::demo::{self, Issuer, Stack, User};
use hoop_kube::pki::{self, Ca, Leaf};
use serde_json::json;

struct Bed {
    stack: Stack,
    _dir: tempfile::TempDir,
    ca: Ca,
}

impl Bed {
    async fn start() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let users = vec![User { subject: "alice".into(), groups: vec!["dev".into()], context: "alice".into(), agent: None }];
        let stack = demo::start(dir.path(), &users, Issuer::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let rdir = dir.path().join("relay");
        let ca = Ca::from_pem(&std::fs::read_to_string(rdir.join("ca.crt")).unwrap(), &std::fs::read_to_string(rdir.join("ca.key")).unwrap()).unwrap();
        Bed { stack, _dir: dir, ca }
    }

    fn issuer(&self) -> &hoop_kube::relay::dev_issuer::DevIssuer {
        self.stack.dev_issuer.as_ref().unwrap()
    }

    fn token(&self, sub: &str, groups: &[&str]) -> String {
        self.issuer().mint(sub, groups, demo::AUDIENCE, Duration::from_secs(600), json!({}))
    }

    fn tls(&self, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        let mut cfg = pki::client_config(Some(self.ca.cert_pem()), client, true).unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    async fn send(&self, client: Option<&Leaf>, req: Vec<u8>) -> Result<RawResponse, String> {
        raw_request_to(self.stack.relay.addr, self.tls(client), &req).await
    }

    async fn get(&self, client: &Leaf, token: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        self.send(Some(client), request("GET", path, Some(token), headers, b"")).await.expect("TLS accepted")
    }

    /// Requests the simulator has seen so far.
    fn upstream_count(&self) -> usize {
        std::fs::read_to_string(self.stack.dir.join("sim/requests.jsonl")).unwrap_or_default().lines().count()
    }
}

fn assert_status(r: &RawResponse, code: u16, reason: &str, needle: &str) {
    let v = r.json();
    assert_eq!(r.code, code, "{v}");
    assert_eq!((v["kind"].as_str(), v["reason"].as_str()), (Some("Status"), Some(reason)), "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains(needle), "message should mention {needle:?}: {v}");
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_checked() {
    let bed = Bed::start().await;
    let token = bed.token("alice", &["dev"]);
    let alice = bed.ca.subject_cert("alice", 1).unwrap();
    assert_eq!(bed.get(&alice, &token, PODS, &[]).await.code, 200);

    // No client certificate: the handshake succeeds (enrollment needs it to), the request is a 401
    // that says what to do, and nothing reaches the cluster.
    let before = bed.upstream_count();
    let anonymous = bed.send(None, request("GET", PODS, Some(&token), &[], b"")).await.expect("TLS without a client certificate is accepted");
    assert_status(&anonymous, 401, "Unauthorized", "requires a client certificate");
    assert!(anonymous.json()["message"].as_str().unwrap().contains("run `hoop-kube login`"));
    assert_eq!(bed.upstream_count(), before);
    let other = Ca::generate("some other CA", 1).unwrap().subject_cert("alice", 1).unwrap();
    assert!(bed.send(Some(&other), request("GET", PODS, Some(&token), &[], b"")).await.is_err(), "foreign CA: handshake refused");
    let expired = bed.ca.subject_cert("alice", -1).unwrap();
    assert!(bed.send(Some(&expired), request("GET", PODS, Some(&token), &[], b"")).await.is_err(), "expired certificate: handshake refused");
    // A certificate of the right CA that names no hoop-kube subject (a plain CN/O certificate).
    let plain = bed.ca.client_cert("alice", &["dev"], 1).unwrap();
    assert_status(&bed.get(&plain, &token, PODS, &[]).await, 401, "Unauthorized", "names no hoop-kube subject");
    // Certificate for bob, token for alice.
    let bob = bed.ca.subject_cert("bob", 1).unwrap();
    assert_status(&bed.get(&bob, &token, PODS, &[]).await, 401, "Unauthorized", "the client certificate is for \"bob\" but the token is for \"alice\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401() {
    let bed = Bed::start().await;
    let alice = bed.ca.subject_cert("alice", 1).unwrap();
    let before = bed.upstream_count();
    let iss = bed.issuer().issuer().to_string();
    let kid = bed.issuer().kid();
    let now = chrono::Utc::now().timestamp();
    let claims = |over: serde_json::Value| {
        let mut c = json!({"iss": iss, "sub": "alice", "aud": demo::AUDIENCE, "exp": now + 600, "iat": now, "nbf": now, "groups": ["dev"]});
        for (k, v) in over.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let es = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let good = bed.issuer().mint_raw(es.clone(), claims(json!({})));
    assert_eq!(bed.get(&alice, &good, PODS, &[]).await.code, 200);
    let (h, p, _) = {
        let mut it = good.split('.');
        (it.next().unwrap().to_string(), it.next().unwrap().to_string(), it.next().unwrap().to_string())
    };
    let other_sig = bed.issuer().mint_raw(es.clone(), claims(json!({"sub": "mallory"}))).rsplit('.').next().unwrap().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("expired", bed.issuer().mint_raw(es.clone(), claims(json!({"exp": now - 3600})))),
        ("not yet valid", bed.issuer().mint_raw(es.clone(), claims(json!({"nbf": now + 3600})))),
        ("wrong audience", bed.issuer().mint_raw(es.clone(), claims(json!({"aud": "someone-else"})))),
        ("wrong issuer", bed.issuer().mint_raw(es.clone(), claims(json!({"iss": "https://evil.example"})))),
        ("alg none", bed.issuer().mint_raw(json!({"alg": "none", "typ": "JWT"}), claims(json!({})))),
        ("HS256 with the public key", bed.issuer().mint_raw(json!({"alg": "HS256", "typ": "JWT", "kid": kid}), claims(json!({})))),
        ("unknown kid", bed.issuer().mint_raw(json!({"alg": "ES256", "typ": "JWT", "kid": "no-such-key"}), claims(json!({})))),
        ("tampered payload", format!("{h}.{}.{}", p.replace('A', "B"), good.rsplit('.').next().unwrap())),
        ("signature of another token", format!("{h}.{p}.{other_sig}")),
        ("truncated", good[..good.len() - 10].to_string()),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in cases {
        let r = bed.get(&alice, &token, PODS, &[]).await;
        assert_eq!(r.code, 401, "{what}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["reason"], "Unauthorized", "{what}");
        assert!(!String::from_utf8_lossy(&r.body).contains(&token[..20.min(token.len())]), "{what}: the token is not echoed back");
    }
    let no_token = bed.send(Some(&alice), request("GET", PODS, None, &[], b"")).await.unwrap();
    assert_status(&no_token, 401, "Unauthorized", "no bearer token");
    assert_eq!(bed.upstream_count(), before + 1, "only the one good request reached the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_path_tricks_and_sizes_are_refused() {
    let bed = Bed::start().await;
    let token = bed.token("alice", &["dev"]);
    let alice = bed.ca.subject_cert("alice", 1).unwrap();
    let before = bed.upstream_count();
    for h in ["Impersonate-User", "Impersonate-Group", "Impersonate-Uid", "Impersonate-Extra-Scopes", "impersonate-anything-new", "X-Remote-User", "X-Remote-Group", "x-remote-extra-foo"] {
        assert_status(&bed.get(&alice, &token, PODS, &[(h, "system:admin")]).await, 403, "Forbidden", "impersonation through the hoop-kube relay is not allowed");
    }
    for path in [
        "/api/v1/namespaces/default/secrets%2Fx",
        "/api/v1/namespaces/default/secrets%2fx",
        "/api/v1/namespaces/default/secrets%252Fx",
        "/api/v1/namespaces/default/configmaps/../secrets/x",
        "/api/v1/namespaces/default/configmaps/%2e%2e/secrets/x",
        "/api/v1/namespaces/default/configmaps/.%2E/secrets/x",
        "/api/v1/namespaces/default/pods%5c..%5csecrets",
        "/api/v1//namespaces/default/secrets",
        "/api/v1/namespaces/default/pods/%00",
    ] {
        assert_status(&bed.get(&alice, &token, path, &[]).await, 400, "BadRequest", "invalid request path");
    }
    let big = "x".repeat(100 * 1024);
    assert_status(&bed.get(&alice, &token, PODS, &[("X-Padding", &big)]).await, 431, "RequestHeaderFieldsTooLarge", "larger than the relay's limit");
    let body = vec![b'{'; 4 * 1024 * 1024];
    let r = bed.send(Some(&alice), request("POST", "/api/v1/namespaces/default/configmaps", Some(&token), &[("Content-Type", "application/json")], &body)).await.unwrap();
    assert_status(&r, 413, "RequestEntityTooLarge", "limit is");
    assert_eq!(bed.upstream_count(), before, "nothing refused reached the cluster");
    // The same body chunked, with no Content-Length to refuse it up front.
    let mut chunked = b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n".to_vec();
    chunked.extend_from_slice(format!("Authorization: Bearer {token}\r\n\r\n").as_bytes());
    for _ in 0..64 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend_from_slice(&vec![b' '; 64 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = bed.send(Some(&alice), chunked).await.unwrap();
    assert_status(&r, 413, "RequestEntityTooLarge", "limit is");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_outside_the_access_list_are_403() {
    let bed = Bed::start().await;
    let carol = bed.ca.subject_cert("carol", 1).unwrap();
    let r = bed.get(&carol, &bed.token("carol", &["ops"]), PODS, &[]).await;
    assert_status(&r, 403, "Forbidden", "User \"carol\" cannot list resource \"pods\"");
    assert!(r.json()["message"].as_str().unwrap().contains("access list"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_a_503_that_says_so() {
    let bed = Bed::start().await;
    // A second relay with the same settings but an upstream nobody listens on.
    let cfg_path = bed.stack.relay_config.clone();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let text = std::fs::read_to_string(&cfg_path).unwrap().replace(&bed.stack.sim.url, &format!("https://{dead}"));
    let dead_cfg = cfg_path.with_file_name("dead.yaml");
    std::fs::write(&dead_cfg, text).unwrap();
    let cfg = hoop_kube::relay::config::RelayConfig::load(&dead_cfg).unwrap();
    let relay = hoop_kube::relay::boot::start(&cfg).await.unwrap();
    let alice = bed.ca.subject_cert("alice", 1).unwrap();
    let r = raw_request_to(relay.addr, bed.tls(Some(&alice)), &request("GET", PODS, Some(&bed.token("alice", &["dev"])), &[], b"")).await.unwrap();
    assert_status(&r, 503, "ServiceUnavailable", "is unreachable");
}
