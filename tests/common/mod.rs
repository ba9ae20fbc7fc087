//! Shared test helpers: find the real kubectl binaries, start the simulator, run kubectl.
#![allow(dead_code)]

pub mod browser;
pub mod idp;
pub mod login_bed;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hoop_kube::sim::{self, Running, SimConfig};

/// The versioned kubectl binaries (`kubectl.1.27` … `kubectl.1.33`) that ship beside the kubectl
/// dispatcher on PATH. Found at run time; a missing one fails the test that needs it.
pub fn kubectl_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let k = dir.join("kubectl");
        if k.exists() {
            let real = std::fs::canonicalize(&k).unwrap_or(k);
            if let Some(parent) = real.parent() {
                return parent.to_path_buf();
            }
        }
    }
    panic!("kubectl is not on PATH; the kubectl matrix tests need the kubectl dispatcher and its versioned binaries (kubectl.1.27 … kubectl.1.33)");
}

/// The path of `kubectl.<minor>`; panics with a clear message if it is missing.
pub fn kubectl(minor: &str) -> PathBuf {
    let p = kubectl_dir().join(format!("kubectl.{minor}"));
    assert!(p.exists(), "{} is missing: the kubectl matrix needs every version 1.27 … 1.33 beside the dispatcher", p.display());
    p
}

/// A running simulator in a temporary state directory.
pub struct Sim {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

impl Sim {
    pub async fn start() -> Sim {
        Sim::start_version("1.32.5").await
    }

    /// A simulator whose `/version` reports `version`.
    pub async fn start_version(version: &str) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
        cfg.kube_version = version.into();
        cfg.bookmark_interval = Duration::from_secs(1);
        let running = sim::start(cfg).await.expect("sim starts");
        Sim { running, dir }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.running.kubeconfig
    }

    /// Parsed request-log lines.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("requests.jsonl")).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Something kubectl can be pointed at: the simulator directly, or the whole relayed stack.
pub trait Cluster {
    /// The kubeconfig kubectl uses.
    fn kubeconfig(&self) -> &Path;
    /// The simulator's request log, parsed.
    fn requests(&self) -> Vec<serde_json::Value>;
}

impl Cluster for Sim {
    fn kubeconfig(&self) -> &Path {
        Sim::kubeconfig(self)
    }
    fn requests(&self) -> Vec<serde_json::Value> {
        Sim::requests(self)
    }
}

/// kubectl → forward → relay → simulator, with tokens from the real oidc-provider test IdP.
pub struct Relayed {
    pub stack: hoop_kube::demo::Stack,
    pub dir: tempfile::TempDir,
    pub idp: idp::Idp,
}

impl Relayed {
    /// The stack for `subject` (an IdP user: alice is in group dev, bob in ops, carol in none).
    pub async fn start(subjects: &[&str]) -> Relayed {
        let idp = idp::Idp::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut tokens = std::collections::BTreeMap::new();
        let mut users = Vec::new();
        for s in subjects {
            tokens.insert(s.to_string(), idp.token(s, hoop_kube::demo::AUDIENCE, 3600).await);
            users.push(hoop_kube::demo::User { subject: s.to_string(), groups: vec![], context: format!("as-{s}"), agent: None });
        }
        let issuer = hoop_kube::demo::Issuer::External { issuer: idp.issuer.clone(), tokens };
        let stack = hoop_kube::demo::start(dir.path(), &users, issuer, "127.0.0.1:0".parse().unwrap()).await.expect("the relayed stack starts");
        Relayed { stack, dir, idp }
    }

    /// The relay's own upstream token (it must never reach a client).
    pub fn relay_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sim/relay.token")).unwrap()
    }
}

impl Cluster for Relayed {
    fn kubeconfig(&self) -> &Path {
        &self.stack.kubeconfig
    }
    fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("sim/requests.jsonl")).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Output of one kubectl run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A kubectl of one version, pointed at one simulator, with its own discovery cache.
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache: tempfile::TempDir,
    pub minor: String,
}

impl Kubectl {
    pub fn new(minor: &str, cluster: &dyn Cluster) -> Kubectl {
        Kubectl { bin: kubectl(minor), kubeconfig: cluster.kubeconfig().to_path_buf(), cache: tempfile::tempdir().unwrap(), minor: minor.into() }
    }

    pub fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig).arg("--cache-dir").arg(self.cache.path()).args(args);
        c.env("HOME", self.cache.path()).env_remove("KUBECONFIG");
        c.kill_on_drop(true);
        c
    }

    /// Run to completion with `stdin` (or none), with a generous timeout.
    pub async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut c = self.cmd(args);
        c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("kubectl starts");
        if let Some(data) = stdin {
            let mut si = child.stdin.take().unwrap();
            si.write_all(data).await.unwrap();
            drop(si);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl.{} {args:?} did not finish within 60 s", self.minor))
            .expect("kubectl runs");
        Out { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None).await
    }

    /// Run and require exit 0; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert_eq!(o.code, 0, "kubectl.{} {args:?} failed: {}{}", self.minor, o.stdout, o.stderr);
        o.stdout
    }
}

/// A raw HTTPS/1.1 response.
#[derive(Debug)]
pub struct RawResponse {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A TLS client config trusting the simulator's CA, optionally with a client certificate.
pub fn tls_client(sim: &Sim, client_cert: Option<(&str, &str)>, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
    let ca = std::fs::read_to_string(sim.dir.path().join("ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in hoop_kube::pki::certs_from_pem(&ca, "ca").unwrap() {
        roots.add(c).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(hoop_kube::pki::provider()).with_safe_default_protocol_versions().unwrap().with_root_certificates(roots);
    let mut cfg = match client_cert {
        Some((cert, key)) => b
            .with_client_auth_cert(hoop_kube::pki::certs_from_pem(cert, "c").unwrap(), hoop_kube::pki::key_from_pem(key, "k").unwrap())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    std::sync::Arc::new(cfg)
}

/// Send raw request bytes over TLS (HTTP/1.1, `Connection: close`) and read the whole answer.
pub async fn raw_request(sim: &Sim, cfg: std::sync::Arc<rustls::ClientConfig>, request: &[u8]) -> RawResponse {
    raw_request_to(sim.running.addr, cfg, request).await.expect("TLS handshake with the simulator")
}

/// Like [`raw_request`] against any TLS server; `Err` when the TLS handshake (or the first read
/// after it, where TLS 1.3 reports a refused client certificate) fails.
pub async fn raw_request_to(addr: std::net::SocketAddr, cfg: std::sync::Arc<rustls::ClientConfig>, request: &[u8]) -> Result<RawResponse, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await.map_err(|e| e.to_string())?;
    // Write and read at once: a server may answer (413, 431) before it has read the whole body.
    let (mut rd, mut wr) = tokio::io::split(tls);
    let body = request.to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&body).await;
        wr
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut buf)).await.expect("response within 20 s");
    writer.abort();
    match read {
        Err(e) if buf.is_empty() => return Err(e.to_string()),
        _ => {}
    }
    if buf.is_empty() {
        return Err("connection closed without a response".into());
    }
    Ok(parse_response(&buf))
}

fn parse_response(buf: &[u8]) -> RawResponse {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let code = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap();
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let raw = &buf[end + 4..];
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    RawResponse { code, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// The admin bearer token from the kubeconfig the simulator wrote.
pub fn admin_token(sim: &Sim) -> String {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(sim.kubeconfig()).unwrap()).unwrap();
    v["users"][0]["user"]["token"].as_str().unwrap().to_string()
}

/// Build a request with the given bearer token.
pub fn request(method: &str, path: &str, token: Option<&str>, extra_headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(t) = token {
        r.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra_headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The demo stack with a relay `policy` (a YAML `policy:`/`review:` text appended to relay.yaml):
/// simulator, relay, and one forwarder with a static-token context per user.
pub struct PolicyBed {
    pub stack: hoop_kube::demo::Stack,
    pub dir: tempfile::TempDir,
    /// A HOME for the `hoop-kube` processes a test runs.
    pub home: tempfile::TempDir,
}

/// alice (dev, context `as-alice`), the agent `bot` minted for alice (`as-agent`, a real agent
/// credential that talks to the relay directly) and sam (sre, the reviewer, `as-sam`).
pub fn team() -> Vec<hoop_kube::demo::User> {
    let user = |subject: &str, group: &str, context: &str| hoop_kube::demo::User { subject: subject.into(), groups: vec![group.into()], context: context.into(), agent: None };
    let bot = hoop_kube::demo::User { agent: Some("bot".into()), ..user("alice", "dev", "as-agent") };
    vec![user("alice", "dev", "as-alice"), bot, user("sam", "sre", "as-sam")]
}

impl PolicyBed {
    pub async fn start(users: &[hoop_kube::demo::User], policy: &str) -> PolicyBed {
        let dir = tempfile::tempdir().unwrap();
        let stack = hoop_kube::demo::start_with(dir.path(), users, hoop_kube::demo::Issuer::Dev, "127.0.0.1:0".parse().unwrap(), Some(policy)).await.expect("the stack starts");
        PolicyBed { stack, dir, home: tempfile::tempdir().unwrap() }
    }
}

impl Cluster for PolicyBed {
    fn kubeconfig(&self) -> &Path {
        &self.stack.kubeconfig
    }
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("sim/requests.jsonl")).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// A raw HTTPS client for one context of a bed's static-token kubeconfig (server, CA, token), so tests can
/// send the `Accept`/`Accept-Encoding` headers kubectl itself does not let a user choose.
pub struct Raw {
    pub server: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Raw {
    pub fn new(kubeconfig: &std::path::Path, context: &str) -> Raw {
        let k: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
        let find = |list: &str, name: &str| k[list].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap().clone();
        let ctx = find("contexts", context);
        let cluster = find("clusters", ctx["context"]["cluster"].as_str().unwrap());
        let user = find("users", ctx["context"]["user"].as_str().unwrap());
        use ::base64::Engine as _;
        let ca = ::base64::engine::general_purpose::STANDARD.decode(cluster["cluster"]["certificate-authority-data"].as_str().unwrap()).unwrap();
        let mut builder = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
        // An agent context carries its own client certificate (it talks to the relay directly).
        if let (Some(cert), Some(key)) = (user["user"]["client-certificate-data"].as_str(), user["user"]["client-key-data"].as_str()) {
            let mut pem = ::base64::engine::general_purpose::STANDARD.decode(cert).unwrap();
            pem.extend(::base64::engine::general_purpose::STANDARD.decode(key).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        Raw { server: cluster["cluster"]["server"].as_str().unwrap().to_string(), token: user["user"]["token"].as_str().unwrap().to_string(), client: builder.build().unwrap() }
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut r = self.client.get(format!("{}{path}", self.server)).bearer_auth(&self.token);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let code = resp.status().as_u16();
        let h = resp.headers().clone();
        (code, h, resp.bytes().await.unwrap().to_vec())
    }
}

/// The static bearer token of `context`'s user in a bed's kubeconfig.
pub fn token_of(kubeconfig: &Path, context: &str) -> String {
    let k: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    let find = |list: &str, name: &str| k[list].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap().clone();
    let ctx = find("contexts", context);
    find("users", ctx["context"]["user"].as_str().unwrap())["user"]["token"].as_str().unwrap().to_string()
}
