//! The test identity provider: the real `oidc-provider` (npm) run by `tests/idp/idp.mjs` on
//! 127.0.0.1, with the OIDC device flow on and test-only routes that stand in for the human at the
//! browser (see `tests/idp/README.md`).
//!
//! ```ignore
//! let idp = common::idp::Idp::start().await;
//! let tokens = idp.device_login("alice", "openid email groups").await;
//! let id_token = tokens["id_token"].as_str().unwrap();
//! let quick = idp.token("bob", "hoop-kube", 60).await; // a signed ID token, no flow
//! ```
//!
//! Only std, tokio and serde_json: the IdP speaks plain HTTP on loopback, so a minimal HTTP/1.1
//! client (one connection per request, `Connection: close`) is all that is needed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};

/// The public client the IdP registers for hoop-kube.
pub const CLIENT_ID: &str = "hoop-kube";
/// A second registered client: `token(sub, OTHER_CLIENT_ID, ttl)` gives a token with a wrong `aud`.
pub const OTHER_CLIENT_ID: &str = "other-client";
/// The device-code grant type.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A running test IdP. The node process is killed when this is dropped (and exits by itself if
/// the test process dies: it watches its stdin, which only this struct holds).
pub struct Idp {
    /// `http://127.0.0.1:PORT`, exactly as the provider puts it in `iss`.
    pub issuer: String,
    pub port: u16,
    child: Child,
    _stdin: ChildStdin,
    stderr: Arc<Mutex<String>>,
}

/// `tests/idp` in this checkout.
pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("idp")
}

impl Idp {
    /// Ensure `tests/idp/node_modules` (via `npm ci`, once per process), start `idp.mjs` on a free
    /// port and wait for its ready line. Defaults: ID/access token TTL 300 s, refresh token 3600 s,
    /// device code 600 s, poll `interval` 1 s.
    pub async fn start() -> Idp {
        Idp::start_with_env(&[]).await
    }

    /// Like [`Idp::start`], with extra environment for `idp.mjs`: `IDP_ID_TOKEN_TTL`,
    /// `IDP_ACCESS_TOKEN_TTL`, `IDP_REFRESH_TOKEN_TTL`, `IDP_DEVICE_CODE_TTL` (seconds),
    /// `IDP_POLL_INTERVAL` (seconds; 0 = send no `interval`), `IDP_USERS` (JSON, more users).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Idp {
        let dir = idp_dir();
        ensure_node_modules().await;

        let started = Instant::now();
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("idp.mjs"))
            .arg("0")
            .current_dir(&dir)
            .env("IDP_EXIT_ON_STDIN_EOF", "1")
            .env_remove("IDP_PORT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{}", node_missing()),
            Err(e) => panic!("test IdP: could not start node {}: {e}", dir.join("idp.mjs").display()),
        };
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");

        // Keep the IdP's stderr (oidc-provider warnings, errors) for panic messages; echo it
        // when HOOP_KUBE_IDP_LOG is set.
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let echo = std::env::var_os("HOOP_KUBE_IDP_LOG").is_some();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr_pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[idp] {line}");
                    }
                    let mut s = stderr.lock().unwrap();
                    if s.len() < 256 * 1024 {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }

        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await;
        let line = match ready {
            Ok(Ok(Some(line))) => line,
            Ok(_) => {
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "test IdP exited before it was ready ({status:?}); its stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            Err(_) => panic!(
                "test IdP printed no ready line within {READY_TIMEOUT:?}; its stderr:\n{}",
                stderr.lock().unwrap()
            ),
        };
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("test IdP ready line is not JSON ({e}): {line:?}"));
        let issuer = ready["issuer"].as_str().expect("ready line has issuer").to_string();
        let port = ready["port"].as_u64().expect("ready line has port") as u16;
        // Nothing else is printed on stdout; drain it anyway so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        if std::env::var_os("HOOP_KUBE_IDP_LOG").is_some() {
            eprintln!("[idp] {issuer} ready in {:?}", started.elapsed());
        }
        Idp { issuer, port, child, _stdin: stdin, stderr }
    }

    /// What the IdP wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `{issuer}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// The discovery document (`/.well-known/openid-configuration`).
    pub async fn discovery(&self) -> Value {
        let (status, body) = self.get_json("/.well-known/openid-configuration").await;
        assert_eq!(status, 200, "discovery: {body}");
        body
    }

    /// An ID token for `sub`, signed by the IdP's own keys (through oidc-provider's IdToken
    /// model), with `aud` (a registered client: [`CLIENT_ID`] or [`OTHER_CLIENT_ID`]) and an
    /// expiry `ttl_secs` from now. The claims are those of a device login (`email`, `groups`).
    pub async fn token(&self, sub: &str, aud: &str, ttl_secs: u64) -> String {
        self.token_with(json!({ "sub": sub, "aud": aud, "ttl": ttl_secs })).await
    }

    /// `/test/token` with a full request body: `sub`, `aud`, `ttl` (seconds, negative = already
    /// expired), `alg` (`RS256` default, or `ES256`), `claims` (merged over the token's, e.g.
    /// `{"groups": ["x"], "nbf": 4102444800}`).
    pub async fn token_with(&self, body: Value) -> String {
        let (status, resp) = self.post_json("/test/token", &body).await;
        assert_eq!(status, 200, "test IdP /test/token {body}: {resp}");
        resp["id_token"].as_str().expect("id_token").to_string()
    }

    /// Approve the pending device code `user_code` as `sub` (what the user does in the browser).
    pub async fn approve(&self, user_code: &str, sub: &str) {
        let (status, resp) = self
            .post_json("/test/approve", &json!({ "user_code": user_code, "sub": sub }))
            .await;
        assert_eq!(status, 200, "test IdP /test/approve {user_code} as {sub}: {resp}");
    }

    /// Deny the pending device code: the next poll answers `access_denied`.
    pub async fn deny(&self, user_code: &str) {
        let (status, resp) = self.post_json("/test/deny", &json!({ "user_code": user_code })).await;
        assert_eq!(status, 200, "test IdP /test/deny {user_code}: {resp}");
    }

    /// Answer the next `count` token polls for `user_code` with `slow_down`.
    pub async fn slow_down(&self, user_code: &str, count: u32) {
        let (status, resp) = self
            .post_json("/test/slow_down", &json!({ "user_code": user_code, "count": count }))
            .await;
        assert_eq!(status, 200, "test IdP /test/slow_down {user_code}: {resp}");
    }

    /// Token-endpoint requests the IdP has seen with `grant_type` (answered or refused).
    pub async fn grants(&self, grant_type: &str) -> u64 {
        let (status, resp) = self.get_json("/test/grants").await;
        assert_eq!(status, 200, "test IdP /test/grants: {resp}");
        resp[grant_type].as_u64().unwrap_or(0)
    }

    /// When (Unix epoch milliseconds) the token endpoint was polled for `user_code`.
    pub async fn polls(&self, user_code: &str) -> Vec<u64> {
        let (status, resp) = self.get_json(&format!("/test/polls?user_code={}", form_encode(user_code))).await;
        assert_eq!(status, 200, "test IdP /test/polls {user_code}: {resp}");
        resp["polls"].as_array().expect("polls").iter().map(|v| v.as_u64().unwrap()).collect()
    }

    /// The device authorization request (RFC 8628 §3.1) of the `hoop-kube` client:
    /// `device_code`, `user_code`, `verification_uri(_complete)`, `expires_in`, `interval`.
    pub async fn device_authorization(&self, scope: &str) -> Value {
        let (status, resp) = self
            .post_form("/device/auth", &[("client_id", CLIENT_ID), ("scope", scope)])
            .await;
        assert_eq!(status, 200, "device authorization: {resp}");
        resp
    }

    /// One poll of the token endpoint with a device code: (HTTP status, JSON body).
    pub async fn poll_token(&self, device_code: &str) -> (u16, Value) {
        self.post_form(
            "/token",
            &[("client_id", CLIENT_ID), ("grant_type", DEVICE_GRANT), ("device_code", device_code)],
        )
        .await
    }

    /// The whole device flow as a client runs it: device authorization → approve as `sub` →
    /// poll the token endpoint (honouring `interval` and `slow_down`). Returns the token response
    /// (`id_token`, `access_token`, `refresh_token`, `expires_in`, `scope`, `token_type`).
    pub async fn device_login(&self, sub: &str, scope: &str) -> Value {
        let auth = self.device_authorization(scope).await;
        let device_code = auth["device_code"].as_str().expect("device_code");
        let user_code = auth["user_code"].as_str().expect("user_code");
        let mut interval = Duration::from_secs(auth["interval"].as_u64().unwrap_or(5));
        self.approve(user_code, sub).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, resp) = self.poll_token(device_code).await;
            match (status, resp["error"].as_str()) {
                (200, _) => return resp,
                (_, Some("authorization_pending")) => {}
                (_, Some("slow_down")) => interval += Duration::from_secs(5),
                _ => panic!("device login for {sub}: token endpoint answered {status}: {resp}"),
            }
            assert!(Instant::now() < deadline, "device login for {sub}: still pending after 60 s");
            tokio::time::sleep(interval).await;
        }
    }

    /// Refresh (panics unless the IdP answers 200). Refresh tokens rotate: use the returned
    /// `refresh_token` next time; reusing an old one fails and revokes the whole grant.
    pub async fn refresh(&self, refresh_token: &str) -> Value {
        let (status, resp) = self.try_refresh(refresh_token).await;
        assert_eq!(status, 200, "refresh: {resp}");
        resp
    }

    /// One refresh-token grant: (HTTP status, JSON body), errors included.
    pub async fn try_refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.post_form(
            "/token",
            &[("client_id", CLIENT_ID), ("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
        )
        .await
    }

    /// GET a path (or a full URL on this IdP) and parse the body as JSON (`Value::Null` if it
    /// is not JSON).
    pub async fn get_json(&self, path_or_url: &str) -> (u16, Value) {
        let (status, body) = self.request("GET", path_or_url, None, b"").await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// POST `application/x-www-form-urlencoded`; JSON response.
    pub async fn post_form(&self, path_or_url: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, body) = self
            .request("POST", path_or_url, Some("application/x-www-form-urlencoded"), body.as_bytes())
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// POST `application/json`; JSON response.
    pub async fn post_json(&self, path_or_url: &str, body: &Value) -> (u16, Value) {
        let (status, body) = self
            .request("POST", path_or_url, Some("application/json"), body.to_string().as_bytes())
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// One HTTP/1.1 request on a fresh connection: (status, body bytes).
    pub async fn request(&self, method: &str, path_or_url: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        let path = match path_or_url.strip_prefix(&self.issuer) {
            Some(rest) => rest,
            None if path_or_url.starts_with('/') => path_or_url,
            None => panic!("{path_or_url} is not on the test IdP {}", self.issuer),
        };
        let path = if path.is_empty() { "/" } else { path };
        let fut = http_request(self.port, method, path, content_type, body);
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("test IdP {method} {path}: {e}; IdP stderr:\n{}", self.stderr()),
            Err(_) => panic!("test IdP {method} {path}: no response within {REQUEST_TIMEOUT:?}"),
        }
    }

    /// Stop the IdP now (dropping it does the same).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The (header, payload) of a compact JWS, base64url-decoded and parsed; the signature is not
/// checked.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = |what: &str| -> Value {
        let p = parts.next().unwrap_or_else(|| panic!("JWT has no {what}: {token}"));
        let bytes = base64url_decode(p).unwrap_or_else(|| panic!("JWT {what} is not base64url: {p}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT {what} is not JSON: {e}"))
    };
    let header = part("header");
    let payload = part("payload");
    (header, payload)
}

/// Unpadded (or padded) base64url.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn http_request(port: u16, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;

    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let raw = &buf[head_end + 4..];
    let body = if chunked {
        dechunk(raw).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(n) = length {
        raw.get(..n).ok_or_else(|| bad("short body"))?.to_vec()
    } else {
        raw.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

// ---------------------------------------------------------------------------------------------
// node_modules

fn node_missing() -> String {
    "the test IdP needs Node.js (20 or later) and npm on PATH: it runs the real oidc-provider \
     (tests/idp/idp.mjs). Install them (Debian: `apt-get install nodejs npm`)"
        .to_string()
}

/// The oidc-provider version pinned in tests/idp/package.json.
fn pinned_version(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("package.json")).expect("tests/idp/package.json");
    let v: Value = serde_json::from_str(&text).expect("tests/idp/package.json is JSON");
    v["dependencies"]["oidc-provider"].as_str().expect("oidc-provider pinned in package.json").to_string()
}

fn installed_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules/oidc-provider/package.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// `npm ci` in tests/idp unless node_modules already holds the pinned oidc-provider. Once per
/// process; safe across processes too (each installs into its own staging directory and moves
/// `node_modules` into place with one rename; a loser of that race throws its copy away).
async fn ensure_node_modules() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = tokio::task::spawn_blocking(|| DONE.get_or_init(install_node_modules).clone())
        .await
        .expect("npm ci task");
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn install_node_modules() -> Result<(), String> {
    let dir = idp_dir();
    let pinned = pinned_version(&dir);
    if installed_version(&dir).as_deref() == Some(pinned.as_str()) {
        return Ok(());
    }
    match std::process::Command::new("node").arg("--version").output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(node_missing()),
        Err(e) => return Err(format!("test IdP: `node --version` failed: {e}")),
        Ok(_) => {}
    }

    let started = Instant::now();
    let staging = dir.join(format!(".npm-ci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| format!("create {}: {e}", staging.display()))?;
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(dir.join(f), staging.join(f)).map_err(|e| format!("copy tests/idp/{f}: {e}"))?;
    }
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
        .current_dir(&staging)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(node_missing());
        }
        Err(e) => return Err(format!("test IdP: could not run npm ci: {e}")),
        Ok(out) => out,
    };
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!(
            "test IdP: `npm ci` in tests/idp failed ({}); it needs the npm registry.\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    let target = dir.join("node_modules");
    if installed_version(&dir).as_deref() != Some(pinned.as_str()) {
        // Absent, or another version: move the old one aside first.
        if target.exists() {
            let old = dir.join(format!(".node_modules-old-{}", std::process::id()));
            if std::fs::rename(&target, &old).is_ok() {
                let _ = std::fs::remove_dir_all(&old);
            }
        }
        // Fails if another process got there first; then its copy is as good as ours.
        let _ = std::fs::rename(staging.join("node_modules"), &target);
    }
    let _ = std::fs::remove_dir_all(&staging);
    if installed_version(&dir).as_deref() != Some(pinned.as_str()) {
        return Err(format!("test IdP: after npm ci, {} holds no oidc-provider {pinned}", target.display()));
    }
    if std::env::var_os("HOOP_KUBE_IDP_LOG").is_some() {
        eprintln!("[idp] npm ci took {:?}", started.elapsed());
    }
    Ok(())
}
