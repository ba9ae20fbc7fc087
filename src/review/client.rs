//! What `hoop-kube reviews` talks through: a kubeconfig context's server (the local forwarder,
//! which passes `/hoop-kube/v1/…` to the relay with the user's client certificate), its CA and
//! the user's bearer token, then the reviews API calls.
//!
//! The token comes from the context's user exactly as kubectl would get it: `token`,
//! `tokenFile`, or an `exec` plugin run with its command, args and env and
//! `KUBERNETES_EXEC_INFO` (`interactive: false`), whose `ExecCredential` `status.token` is used.
//! So a reviewer needs nothing beyond the kubeconfig they already use. Errors are one line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::store::Review;

/// How long one API call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a reviews command failed; `Display` is the one line shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The kubeconfig cannot be used.
    #[error("{file}: {message}")]
    Kubeconfig { file: String, message: String },
    /// The exec credential plugin failed.
    #[error("the credential plugin {command:?} of context {context:?} failed: {message}")]
    Exec { command: String, context: String, message: String },
    /// The relay (or forwarder) could not be reached.
    #[error("cannot reach {server}: {message}")]
    Unreachable { server: String, message: String },
    /// The relay answered with an error `Status`.
    #[error("{message}")]
    Refused { code: u16, message: String },
}

/// Where to send the calls, and as whom.
#[derive(Clone)]
pub struct Target {
    /// The context used.
    pub context: String,
    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub server: String,
    /// The server's CA (PEM), when the kubeconfig gives one.
    pub ca_pem: Option<Vec<u8>>,
    token: String,
    /// The context's own client certificate and key (PEM), when it has one.
    identity_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("context", &self.context).field("server", &self.server).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default, rename = "current-context")]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Debug, Deserialize)]
struct Cluster {
    server: String,
    #[serde(default, rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(default, rename = "certificate-authority")]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(default)]
    exec: Option<Exec>,
    #[serde(default, rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(default, rename = "client-key-data")]
    key_data: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exec {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Option<Vec<EnvVar>>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    provide_cluster_info: bool,
}

#[derive(Debug, Deserialize)]
struct EnvVar {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: String,
}

/// The kubeconfig kubectl would use: `explicit`, else the first entry of `$KUBECONFIG`, else
/// `~/.kube/config`.
#[must_use]
pub fn default_kubeconfig(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(first) = std::env::var_os("KUBECONFIG").and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty())) {
        return first;
    }
    directories::BaseDirs::new().map(|b| b.home_dir().join(".kube/config")).unwrap_or_else(|| PathBuf::from(".kube/config"))
}

/// Resolve `context` (default: the current context) of the kubeconfig at `path`: server, CA and
/// token (running an exec plugin if the user has one; this blocks while it runs).
///
/// # Errors
/// The file, the context, its cluster or user is unusable, or the plugin fails.
pub fn resolve(path: &Path, context: Option<&str>) -> Result<Target, ClientError> {
    let file = path.display().to_string();
    let bad = |message: String| ClientError::Kubeconfig { file: file.clone(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let kc: Kubeconfig = serde_yaml_ng::from_str(&text).map_err(|e| bad(format!("not a kubeconfig: {e}")))?;
    let name = match context.map(str::to_string).or(kc.current_context.clone()).filter(|c| !c.is_empty()) {
        Some(n) => n,
        None => return Err(bad("no current-context; pass --context NAME".into())),
    };
    let ctx = kc.contexts.iter().find(|c| c.name == name).ok_or_else(|| bad(format!("no context named {name:?}")))?;
    let cluster = kc.clusters.iter().find(|c| c.name == ctx.value.cluster).ok_or_else(|| bad(format!("context {name:?}: no cluster named {:?}", ctx.value.cluster)))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let ca_pem = match (&cluster.value.ca_data, &cluster.value.ca_file) {
        (Some(d), _) => Some(base64::engine::general_purpose::STANDARD.decode(d.trim()).map_err(|e| bad(format!("cluster {:?}: certificate-authority-data is not base64: {e}", cluster.name)))?),
        (None, Some(f)) => Some(std::fs::read(base.join(f)).map_err(|e| bad(format!("cluster {:?}: cannot read certificate-authority {}: {e}", cluster.name, f.display())))?),
        (None, None) => None,
    };
    let user = kc.users.iter().find(|u| u.name == ctx.value.user).map(|u| &u.value);
    let default_user = User::default();
    let user = user.unwrap_or(&default_user);
    let server = cluster.value.server.trim_end_matches('/').to_string();
    let token = if let Some(t) = user.token.as_ref().filter(|t| !t.is_empty()) {
        t.clone()
    } else if let Some(f) = &user.token_file {
        let t = std::fs::read_to_string(base.join(f)).map_err(|e| bad(format!("user {:?}: cannot read tokenFile {}: {e}", ctx.value.user, f.display())))?;
        t.trim().to_string()
    } else if let Some(exec) = &user.exec {
        run_exec(exec, base, &name, &server, cluster.value.ca_data.as_deref())?
    } else {
        return Err(bad(format!("user {:?} of context {name:?} has no token, tokenFile or exec plugin; `hoop-kube kubeconfig` writes one", ctx.value.user)));
    };
    // A context with its own client certificate (an agent's, which talks to the relay directly)
    // presents it, as kubectl does.
    let identity_pem = match (&user.cert_data, &user.key_data) {
        (Some(c), Some(k)) => {
            let decode = |what: &str, v: &str| base64::engine::general_purpose::STANDARD.decode(v.trim()).map_err(|e| bad(format!("user {:?}: {what} is not base64: {e}", ctx.value.user)));
            let mut pem = decode("client-certificate-data", c)?;
            pem.extend(decode("client-key-data", k)?);
            Some(pem)
        }
        _ => None,
    };
    Ok(Target { context: name, server, ca_pem, token, identity_pem })
}

/// Run an exec credential plugin as kubectl does and return `status.token`.
fn run_exec(exec: &Exec, base: &Path, context: &str, server: &str, ca_data: Option<&str>) -> Result<String, ClientError> {
    let fail = |message: String| ClientError::Exec { command: exec.command.clone(), context: context.into(), message };
    // kubectl resolves a relative command with a path separator against the kubeconfig's directory.
    let command = if exec.command.contains('/') && Path::new(&exec.command).is_relative() { base.join(&exec.command) } else { PathBuf::from(&exec.command) };
    let api_version = exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let mut spec = serde_json::json!({ "interactive": false });
    if exec.provide_cluster_info {
        let mut cluster = serde_json::json!({ "server": server });
        if let Some(ca) = ca_data {
            cluster["certificate-authority-data"] = serde_json::json!(ca);
        }
        spec["cluster"] = cluster;
    }
    let info = serde_json::json!({ "apiVersion": api_version, "kind": "ExecCredential", "spec": spec });
    let mut cmd = std::process::Command::new(&command);
    cmd.args(&exec.args).env("KUBERNETES_EXEC_INFO", info.to_string()).stdin(std::process::Stdio::null()).stderr(std::process::Stdio::inherit());
    for e in exec.env.iter().flatten() {
        cmd.env(&e.name, &e.value);
    }
    let out = cmd.output().map_err(|e| fail(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!("it exited with {}", out.status)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("its output is not an ExecCredential: {e}")))?;
    v["status"]["token"].as_str().filter(|t| !t.is_empty()).map(str::to_string).ok_or_else(|| fail("its ExecCredential has no status.token".into()))
}

/// A reviews API client for one target.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct List {
    items: Vec<Review>,
}

impl Client {
    /// A client for `target`, trusting its CA.
    ///
    /// # Errors
    /// The CA is not PEM, or the HTTP client cannot be built.
    pub fn new(target: Target) -> Result<Client, ClientError> {
        let unusable = |message: String| ClientError::Unreachable { server: target.server.clone(), message };
        // No overall timeout on the client: each call sets its own, and a stream (`get_path`
        // with no timeout) must stay open.
        let mut b = reqwest::Client::builder().connect_timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none()).no_proxy();
        if let Some(pem) = &target.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| unusable(format!("the context's CA is not PEM: {e}")))?;
            b = b.tls_certs_merge(certs);
        }
        if let Some(pem) = &target.identity_pem {
            b = b.identity(reqwest::Identity::from_pem(pem).map_err(|e| unusable(format!("the context's client certificate and key are not usable: {e}")))?);
        }
        let http = b.build().map_err(|e| unusable(e.to_string()))?;
        Ok(Client { target, http })
    }

    /// The target.
    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> Result<T, ClientError> {
        let server = &self.target.server;
        let unreachable = |e: reqwest::Error| {
            ClientError::Unreachable { server: server.clone(), message: crate::text::error_chain(&e) }
        };
        let mut req = self.http.request(method, format!("{server}{}{path}", super::api::PREFIX)).timeout(TIMEOUT).bearer_auth(&self.target.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(unreachable)?;
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        if code != 200 {
            return Err(refused(code, &bytes, server));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unreachable { server: server.clone(), message: format!("unexpected answer: {e}") })
    }

    /// GET `path_and_query` (from the server's root, e.g. `/hoop-kube/v1/records?limit=5`) with
    /// the target's token: the generic call for the relay's other APIs (`sessions` uses it).
    /// `timeout` bounds the whole exchange, body included; `None` (a stream) bounds only the
    /// connect. A non-200 answer becomes [`ClientError::Refused`] with its `Status` message; a
    /// 200 response is returned unread, so its body can be streamed.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] or [`ClientError::Refused`].
    pub async fn get_path(&self, path_and_query: &str, timeout: Option<Duration>) -> Result<reqwest::Response, ClientError> {
        let server = &self.target.server;
        let unreachable = |e: reqwest::Error| ClientError::Unreachable { server: server.clone(), message: crate::text::error_chain(&e) };
        let mut req = self.http.get(format!("{server}{path_and_query}")).bearer_auth(&self.target.token);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(unreachable)?;
        let code = resp.status().as_u16();
        if code != 200 {
            let bytes = resp.bytes().await.map_err(unreachable)?;
            return Err(refused(code, &bytes, server));
        }
        Ok(resp)
    }

    /// Pending reviews (every one with `all`) the caller may see.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn list(&self, all: bool) -> Result<Vec<Review>, ClientError> {
        let q = if all { "?all=true" } else { "" };
        Ok(self.call::<List>(reqwest::Method::GET, q, None).await?.items)
    }

    /// One review.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn get(&self, id: &str) -> Result<Review, ClientError> {
        self.call(reqwest::Method::GET, &format!("/{id}"), None).await
    }

    /// Approve a review.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn approve(&self, id: &str, reason: Option<&str>) -> Result<Review, ClientError> {
        self.call(reqwest::Method::POST, &format!("/{id}/approve"), Some(serde_json::json!({ "reason": reason }))).await
    }

    /// Deny a review (a reason is required).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn deny(&self, id: &str, reason: &str) -> Result<Review, ClientError> {
        self.call(reqwest::Method::POST, &format!("/{id}/deny"), Some(serde_json::json!({ "reason": reason }))).await
    }

    /// Deny a review of an agent's request and stop every active session of that agent for
    /// that engineer; returns the review and the sessions stopped.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn deny_and_stop_agent(&self, id: &str, reason: &str) -> Result<(Review, Vec<crate::agent::SessionInfo>), ClientError> {
        let answer: serde_json::Value = self.call(reqwest::Method::POST, &format!("/{id}/deny"), Some(serde_json::json!({ "reason": reason, "stopAgent": true }))).await?;
        let bad = |e: serde_json::Error| ClientError::Refused { code: 200, message: format!("the relay's answer is not a review: {e}") };
        let stopped = serde_json::from_value(answer.get("stoppedAgentSessions").cloned().unwrap_or_default()).unwrap_or_default();
        Ok((serde_json::from_value(answer).map_err(bad)?, stopped))
    }
}

/// A non-200 answer as [`ClientError::Refused`]: the `Status` message, else the start of the body.
fn refused(code: u16, bytes: &[u8], server: &str) -> ClientError {
    let message = crate::kube::status::message_of(bytes);
    let message = if message.trim().is_empty() { format!("HTTP {code} from {server}") } else { message.replace(['\n', '\r'], " ") };
    ClientError::Refused { code, message }
}

/// `ID  STATE  AGE  REQUESTER  REVIEWERS  REQUEST` rows for `hoop-kube reviews list`.
#[must_use]
pub fn table(items: &[Review], now: i64) -> String {
    let mut rows = vec![["ID".to_string(), "STATE".into(), "AGE".into(), "REQUESTER".into(), "REVIEWERS".into(), "REQUEST".into()]];
    for r in items {
        let who = match &r.agent {
            Some(a) => format!("{} (agent {a})", r.username),
            None => r.username.clone(),
        };
        rows.push([r.id.clone(), r.state.as_str().into(), age(now - r.created_at), who, r.reviewers.join(","), r.summary.clone()]);
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = (0..6).map(|i| if i == 5 { r[i].clone() } else { format!("{:<w$}", r[i], w = widths[i]) }).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The details of one review for `hoop-kube reviews show`.
#[must_use]
pub fn details(r: &Review) -> String {
    use super::store::rfc3339;
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<12} {v}\n"));
    line("id:", r.id.clone());
    line("state:", r.state.as_str().into());
    line("request:", r.summary.clone());
    line("requester:", format!("{} (subject {})", r.username, r.subject));
    if let Some(a) = &r.agent {
        line("agent:", a.clone());
    }
    line("rule:", r.rule.clone());
    line("reviewers:", format!("{}{}", r.reviewers.join(", "), if r.allow_self_approval { " (self-approval allowed)" } else { "" }));
    line("method:", r.method.clone());
    line("path:", r.path.clone());
    if let Some(q) = &r.query {
        line("query:", q.clone());
    }
    line("body sha256:", r.body_sha256.clone());
    line("created:", rfc3339(r.created_at));
    if let Some(by) = &r.decided_by {
        line("decided by:", format!("{by} at {}", r.decided_at.map(rfc3339).unwrap_or_default()));
    }
    if let Some(reason) = &r.reason {
        line("reason:", reason.clone());
    }
    line("expires:", rfc3339(r.expires_at));
    s
}

fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}
