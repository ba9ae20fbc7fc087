//! Enrollment at the relay (`POST /hoop-kube/v1/enroll`) as `hoop-kube login` uses it: a token
//! and a CSR in, a client certificate out that then works for real API calls — and every way to
//! get a certificate one should not have, refused with the right Kubernetes `Status`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::{raw_request_to, request, RawResponse};
use hoop_kube::demo::{self, Issuer, Stack, User};
use hoop_kube::pki::{self, Ca, Leaf};
use hoop_kube::relay::boot::{self, RunningRelay};
use hoop_kube::relay::config::RelayConfig;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};
use sha2::Digest;

const ENROLL: &str = "/hoop-kube/v1/enroll";
const PODS: &str = "/api/v1/namespaces/default/pods";
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The demo stack, plus two relays with its settings (whatever `enrollment` the demo itself
/// chose): `relay` with `enrollment: {ca_key: ca.key, max_certificate_hours: 2}` and `plain`
/// without enrollment.
struct Bed {
    stack: Stack,
    relay: RunningRelay,
    plain: RunningRelay,
    ca: Ca,
    _dir: tempfile::TempDir,
}

/// The config text without its top-level `enrollment:` section, if any.
fn without_enrollment(yaml: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in yaml.lines() {
        if !line.starts_with([' ', '#']) && !line.is_empty() {
            skipping = line.starts_with("enrollment:") || line.starts_with("agents:");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Bed {
    async fn start() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let users = vec![User { subject: "alice".into(), groups: vec!["dev".into()], context: "alice".into(), agent: None }];
        let stack = demo::start(dir.path(), &users, Issuer::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let rdir = dir.path().join("relay");
        let ca = Ca::from_pem(&std::fs::read_to_string(rdir.join("ca.crt")).unwrap(), &std::fs::read_to_string(rdir.join("ca.key")).unwrap()).unwrap();
        let base = without_enrollment(&std::fs::read_to_string(&stack.relay_config).unwrap());
        let start = |name: &str, text: String| {
            let path = rdir.join(name);
            std::fs::write(&path, text).unwrap();
            async move { boot::start(&RelayConfig::load(&path).unwrap()).await.unwrap() }
        };
        let relay = start("enroll.yaml", format!("{base}enrollment:\n  ca_key: ca.key\n  max_certificate_hours: 2\n")).await;
        let plain = start("plain.yaml", base).await;
        Bed { stack, relay, plain, ca, _dir: dir }
    }

    fn token(&self, sub: &str, groups: &[&str]) -> String {
        self.stack.dev_issuer.as_ref().unwrap().mint(sub, groups, demo::AUDIENCE, Duration::from_secs(600), json!({}))
    }

    fn tls(&self, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        let mut cfg = pki::client_config(Some(self.ca.cert_pem()), client, true).unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    async fn send_to(&self, relay: &RunningRelay, client: Option<&Leaf>, req: Vec<u8>) -> Result<RawResponse, String> {
        raw_request_to(relay.addr, self.tls(client), &req).await
    }

    /// POST a body to the enrolling relay without a client certificate.
    async fn post(&self, token: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        self.send_to(&self.relay, None, request("POST", ENROLL, token, headers, body)).await.expect("TLS without a client certificate")
    }

    async fn enroll(&self, token: &str, body: &Value) -> RawResponse {
        self.post(Some(token), &[JSON], body.to_string().as_bytes()).await
    }

    /// Requests the simulator has seen so far.
    fn upstream_count(&self) -> usize {
        std::fs::read_to_string(self.stack.dir.join("sim/requests.jsonl")).unwrap_or_default().lines().count()
    }
}

/// A key pair and a CSR that asks for a subject and SANs it must not get.
fn csr() -> (KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["kubernetes.default.svc".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "system:admin");
    params.distinguished_name.push(DnType::OrganizationName, "system:masters");
    params.subject_alt_names.push(SanType::URI(pki::subject_uri("root").try_into().unwrap()));
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

fn assert_status(r: &RawResponse, code: u16, reason: &str, needle: &str) {
    let v = r.json();
    assert_eq!(r.code, code, "{v}");
    assert_eq!((v["kind"].as_str(), v["reason"].as_str()), (Some("Status"), Some(reason)), "{v}");
    let message = v["message"].as_str().unwrap_or("");
    assert!(message.contains(needle), "message should mention {needle:?}: {v}");
    assert!(!message.contains('\n'), "one line: {message}");
}

fn seconds_until(rfc3339: &str) -> i64 {
    assert!(rfc3339.ends_with('Z'), "UTC: {rfc3339}");
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp() - chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_and_a_csr_become_a_certificate_that_works_through_the_relay() {
    let bed = Bed::start().await;
    let token = bed.token("alice", &["dev"]);
    let (key, csr) = csr();
    let r = bed.enroll(&token, &json!({ "csr": csr })).await;
    assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!((v["apiVersion"].as_str(), v["kind"].as_str()), (Some("hoop-kube.dev/v1"), Some("Enrollment")), "{v}");
    assert_eq!((v["subject"].as_str(), v["username"].as_str()), (Some("alice"), Some("alice")));
    assert_eq!(v["caCertificate"].as_str(), Some(bed.ca.cert_pem()));
    let life = seconds_until(v["notAfter"].as_str().unwrap());
    assert!((2 * 3600 - 5..=2 * 3600).contains(&life), "no lifetime asked: the relay's maximum (2 h), got {life} s");

    // The certificate names the token's subject, not what the CSR asked for.
    let cert_pem = v["certificate"].as_str().unwrap().to_string();
    let der = pki::certs_from_pem(&cert_pem, "issued").unwrap().remove(0);
    assert_eq!(pki::cert_subject(&der).map(|c| c.subject), Some("alice".into()));
    assert_eq!(pki::client_identity(&der), Some(("alice".into(), vec![])), "CN alice, no organization");
    let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let sans = &x.subject_alternative_name().unwrap().unwrap().value.general_names;
    assert_eq!(sans.len(), 1, "exactly one SAN: {sans:?}");
    assert!(!x.is_ca());
    assert_eq!(chrono::DateTime::parse_from_rfc3339(v["notAfter"].as_str().unwrap()).unwrap().timestamp(), x.validity().not_after.timestamp());

    // It works for a real API call through the relay (mTLS with the new certificate + the token),
    // on the enrolling relay and on any relay of the same CA.
    let leaf = Leaf { cert_pem, key_pem: key.serialize_pem() };
    for relay in [&bed.relay, &bed.plain] {
        let r = bed.send_to(relay, Some(&leaf), request("GET", PODS, Some(&token), &[], b"")).await.unwrap();
        assert_eq!(r.code, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["kind"], "PodList");
    }
    // Someone else's token with it is a subject mismatch.
    let bob = bed.send_to(&bed.relay, Some(&leaf), request("GET", PODS, Some(&bed.token("bob", &["dev"])), &[], b"")).await.unwrap();
    assert_status(&bob, 401, "Unauthorized", "the client certificate is for \"alice\" but the token is for \"bob\"");

    // A user who still has a certificate may enroll again over it.
    let again = bed.send_to(&bed.relay, Some(&leaf), request("POST", ENROLL, Some(&token), &[JSON], json!({ "csr": csr }).to_string().as_bytes())).await.unwrap();
    assert_eq!(again.code, 200, "{}", String::from_utf8_lossy(&again.body));
    assert_ne!(again.json()["certificate"], v["certificate"], "a new certificate (new serial)");
    // A member of an admitted group enrolls under their own name.
    let bob = bed.enroll(&bed.token("bob", &["dev"]), &json!({ "csr": csr })).await;
    assert_eq!((bob.code, bob.json()["subject"].as_str()), (200, Some("bob")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetimes_are_capped_at_the_maximum_and_shorter_requests_honoured() {
    let bed = Bed::start().await;
    let token = bed.token("alice", &["dev"]);
    let (_, csr) = csr();
    for (asked, want) in [(600, 600), (300, 300), (10 * 3600, 2 * 3600), (u64::MAX, 2 * 3600)] {
        let r = bed.enroll(&token, &json!({ "csr": csr, "lifetimeSeconds": asked })).await;
        assert_eq!(r.code, 200, "{asked}: {}", String::from_utf8_lossy(&r.body));
        let life = seconds_until(r.json()["notAfter"].as_str().unwrap());
        assert!((want - 5..=want).contains(&life), "asked {asked}: want {want} s, got {life} s");
    }
    for short in [0, 299] {
        assert_status(&bed.enroll(&token, &json!({ "csr": csr, "lifetimeSeconds": short })).await, 400, "BadRequest", "at least 300");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_and_outsiders_403() {
    let bed = Bed::start().await;
    let before = bed.upstream_count();
    let (_, csr) = csr();
    let body = json!({ "csr": csr });
    let issuer = bed.stack.dev_issuer.as_ref().unwrap();
    let (iss, kid, now) = (issuer.issuer().to_string(), issuer.kid(), chrono::Utc::now().timestamp());
    let claims = |over: Value| {
        let mut c = json!({"iss": iss, "sub": "alice", "aud": demo::AUDIENCE, "exp": now + 600, "iat": now, "nbf": now, "groups": ["dev"]});
        for (k, v) in over.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let es = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let good = issuer.mint_raw(es.clone(), claims(json!({})));
    let (head, payload) = {
        let mut it = good.split('.');
        (it.next().unwrap().to_string(), it.next().unwrap().to_string())
    };
    let root_sig = issuer.mint_raw(es.clone(), claims(json!({"sub": "root"}))).rsplit('.').next().unwrap().to_string();
    for (what, token, needle) in [
        ("expired", issuer.mint_raw(es.clone(), claims(json!({"exp": now - 3600}))), "expired"),
        ("wrong audience", issuer.mint_raw(es.clone(), claims(json!({"aud": "someone-else"}))), "audience"),
        ("forged: another token's signature", format!("{head}.{payload}.{root_sig}"), "signature"),
        ("alg none", issuer.mint_raw(json!({"alg": "none", "typ": "JWT"}), claims(json!({}))), "not supported"),
        ("garbage", "not.a.jwt".to_string(), "malformed"),
    ] {
        let r = bed.enroll(&token, &body).await;
        assert_status(&r, 401, "Unauthorized", needle);
        assert!(r.json()["message"].as_str().unwrap().contains("run `hoop-kube login`"), "{what}");
    }
    assert_status(&bed.post(None, &[JSON], body.to_string().as_bytes()).await, 401, "Unauthorized", "run `hoop-kube login`");
    assert_status(&bed.post(None, &[JSON, ("Authorization", "Basic YWxpY2U6cHc=")], body.to_string().as_bytes()).await, 401, "Unauthorized", "no bearer token");

    // carol verifies, but neither she nor her group is in the access list.
    let r = bed.enroll(&bed.token("carol", &["ops"]), &body).await;
    assert_status(&r, 403, "Forbidden", "User \"carol\" cannot enroll");
    assert!(r.json()["message"].as_str().unwrap().contains("access list"));
    assert_eq!(bed.upstream_count(), before, "enrollment never reaches the cluster");

    // The issuer's keys cannot be fetched (a token with a key the relay has not seen forces a
    // refetch): not the user's fault, 503.
    issuer.set_jwks_available(false);
    let rotated = issuer.mint_raw(json!({"alg": "ES256", "typ": "JWT", "kid": "rotated"}), claims(json!({})));
    assert_status(&bed.enroll(&rotated, &body).await, 503, "ServiceUnavailable", "retry shortly");
}

/// The DER of a PEM CSR with one byte of its signature (at the end) flipped, back in PEM.
fn flip_signature(pem: &str) -> String {
    let mut der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref().to_vec();
    let n = der.len();
    der[n - 5] ^= 0x01;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n", lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_with_the_right_status() {
    let bed = Bed::start().await;
    let token = bed.token("alice", &["dev"]);
    let (_, csr) = csr();
    let der_b64: String = csr.lines().filter(|l| !l.starts_with("-----")).collect();
    for (what, body, needle) in [
        ("garbage CSR", json!({"csr": "hello"}).to_string(), "not PEM"),
        ("truncated CSR", json!({"csr": csr[..csr.len() / 2]}).to_string(), "not PEM"),
        ("base64 without PEM armour", json!({"csr": der_b64}).to_string(), "not PEM"),
        ("a certificate, not a request", json!({"csr": bed.ca.cert_pem()}).to_string(), "not PEM"),
        ("bad signature", json!({"csr": flip_signature(&csr)}).to_string(), "signature does not verify"),
        ("duplicate keys", format!(r#"{{"csr": {0}, "csr": {0}}}"#, json!(csr)), "duplicate field"),
        ("unknown field", json!({"csr": csr, "subject": "root"}).to_string(), "unknown field"),
        ("snake_case field", json!({"csr": csr, "lifetime_seconds": 600}).to_string(), "unknown field"),
        ("no csr", json!({"lifetimeSeconds": 600}).to_string(), "missing field"),
        ("not an object", json!([csr]).to_string(), "not a JSON object"),
        ("not JSON", "csr=hello".to_string(), "not a JSON object"),
        ("trailing bytes", format!("{} {{}}", json!({"csr": csr})), "trailing"),
    ] {
        let r = bed.post(Some(&token), &[JSON], body.as_bytes()).await;
        assert_status(&r, 400, "BadRequest", needle);
        let _ = what;
    }
    let big = json!({"csr": "x".repeat(20 * 1024)}).to_string();
    assert_status(&bed.post(Some(&token), &[JSON], big.as_bytes()).await, 413, "RequestEntityTooLarge", "limit is 16384");
    // The same body chunked, with no Content-Length to refuse it up front: capped while reading.
    let mut chunked = format!("POST {ENROLL} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer {token}\r\n\r\n").into_bytes();
    for piece in big.as_bytes().chunks(4096) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_status(&bed.send_to(&bed.relay, None, chunked).await.unwrap(), 413, "RequestEntityTooLarge", "limit is 16384");

    let get = bed.send_to(&bed.relay, None, request("GET", ENROLL, Some(&token), &[], b"")).await.unwrap();
    assert_status(&get, 405, "MethodNotAllowed", "accepts only POST");
    let body = json!({"csr": csr}).to_string();
    assert_status(&bed.post(Some(&token), &[("Content-Type", "text/plain")], body.as_bytes()).await, 415, "UnsupportedMediaType", "application/json");
    assert_status(&bed.post(Some(&token), &[], body.as_bytes()).await, 415, "UnsupportedMediaType", "application/json");
    assert_eq!(bed.post(Some(&token), &[("Content-Type", "application/json; charset=utf-8")], body.as_bytes()).await.code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enrollment_the_endpoint_is_404_and_other_paths_need_a_certificate() {
    let bed = Bed::start().await;
    let before = bed.upstream_count();
    let token = bed.token("alice", &["dev"]);
    let (_, csr) = csr();
    let body = json!({"csr": csr}).to_string();
    let r = bed.send_to(&bed.plain, None, request("POST", ENROLL, Some(&token), &[JSON], body.as_bytes())).await.unwrap();
    assert_status(&r, 404, "NotFound", "enrollment is not enabled on this relay; set enrollment.ca_key in its config");

    // Any other request without a client certificate: 401, whatever the token says.
    for path in [PODS, "/api", "/version", "/hoop-kube/v1/enroll/", "/hoop-kube/v1/enrol"] {
        let r = bed.send_to(&bed.relay, None, request("GET", path, Some(&token), &[], b"")).await.unwrap();
        assert_status(&r, 401, "Unauthorized", "requires a client certificate");
        assert!(r.json()["message"].as_str().unwrap().contains("run `hoop-kube login`"), "{path}");
    }
    assert_eq!(bed.upstream_count(), before, "nothing reached the cluster");

    // A certificate that is presented must chain to the client CA, on every path.
    let foreign = Ca::generate("some other CA", 1).unwrap().subject_cert("alice", 1).unwrap();
    for (method, path) in [("GET", PODS), ("POST", ENROLL)] {
        let r = bed.send_to(&bed.relay, Some(&foreign), request(method, path, Some(&token), &[JSON], body.as_bytes())).await;
        assert!(r.is_err(), "{method} {path} with a foreign CA's certificate: handshake refused, got {:?}", r.map(|r| r.code));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_presents_its_ca_for_clients_to_pin() {
    let bed = Bed::start().await;
    let tcp = tokio::net::TcpStream::connect(bed.relay.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(bed.tls(None)).connect(name, tcp).await.unwrap();
    let chain = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(chain.len(), 2, "leaf + CA");
    let fingerprint: String = sha2::Sha256::digest(chain[1].as_ref()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(fingerprint, pki::ca_fingerprint(bed.ca.cert_pem()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_key_that_is_not_the_client_cas_stops_the_boot() {
    let bed = Bed::start().await;
    let rdir = bed.stack.dir.join("relay");
    let text = without_enrollment(&std::fs::read_to_string(&bed.stack.relay_config).unwrap()) + "enrollment:\n  ca_key: server.key\n";
    let path = rdir.join("wrong-key.yaml");
    std::fs::write(&path, text).unwrap();
    let e = boot::start(&RelayConfig::load(&path).unwrap()).await.err().expect("the boot fails");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.contains("enrollment.ca_key") && msg.contains("does not belong to the CA certificate"), "{msg}");
}
