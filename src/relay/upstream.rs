//! The upstream side of the relay: the one credential for the real API server, and the
//! impersonation headers that make the cluster see the person.
//!
//! Only the relay holds the upstream credential. A bearer token is re-read from its file every
//! minute (service-account tokens rotate); a client certificate lives in the TLS configuration of
//! the [`NextHop`]. Every client-sent `Impersonate-*`/`X-Remote-*` header has been refused
//! before this stage; here the relay sets its own.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};

use super::authn::Authenticated;
use crate::proxy::client::NextHop;

/// How the relay authenticates upstream, beyond its TLS client certificate (if any).
pub enum UpstreamAuth {
    /// The TLS client certificate is the credential.
    ClientCert,
    /// A bearer token read from a file.
    TokenFile(TokenFile),
    /// A bearer token given inline (from a kubeconfig).
    Token(String),
}

/// A token file, re-read at most once a minute.
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Instant, String)>>,
}

impl TokenFile {
    /// Read the file now, so a missing or empty file fails at start-up.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let t = std::fs::read_to_string(&path)?.trim().to_string();
        if t.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is empty", path.display())));
        }
        Ok(TokenFile { path, cached: Mutex::new(Some((Instant::now(), t))) })
    }

    fn get(&self) -> Option<String> {
        let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, t)) = c.as_ref() {
            if at.elapsed() < Duration::from_secs(60) {
                return Some(t.clone());
            }
        }
        match std::fs::read_to_string(&self.path) {
            Ok(t) if !t.trim().is_empty() => {
                let t = t.trim().to_string();
                *c = Some((Instant::now(), t.clone()));
                Some(t)
            }
            // Keep the last good token if the file is briefly missing during rotation.
            _ => c.as_ref().map(|(_, t)| t.clone()),
        }
    }
}

/// `Impersonate-Extra-` header of the agent's name: user extra `hoop-kube.dev/agent` (the key is
/// percent-encoded, as kube-apiserver reads it). The relay's own RBAC must allow impersonating
/// `userextras/hoop-kube.dev/agent` and `userextras/hoop-kube.dev/agent-session`.
pub const EXTRA_AGENT: &str = "impersonate-extra-hoop-kube.dev%2fagent";
/// `Impersonate-Extra-` header of the agent session: user extra `hoop-kube.dev/agent-session`.
pub const EXTRA_AGENT_SESSION: &str = "impersonate-extra-hoop-kube.dev%2fagent-session";

/// The upstream API server and how to talk to it.
pub struct Upstream {
    pub hop: NextHop,
    pub auth: UpstreamAuth,
    pub impersonate: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("server", self.hop.authority()).field("impersonate", &self.impersonate).finish()
    }
}

impl Upstream {
    /// Set the relay's credential and the impersonation headers on an outgoing request whose
    /// client `Authorization` and impersonation headers are already gone.
    pub fn authorize(&self, headers: &mut HeaderMap, who: &Authenticated) -> Result<(), String> {
        self.authorize_as_relay(headers)?;
        if self.impersonate {
            let id = who.identity();
            let user = HeaderValue::from_str(&id.username).map_err(|_| format!("username {:?} cannot be sent as a header", id.username))?;
            headers.insert("impersonate-user", user);
            for g in id.groups.iter().map(String::as_str).chain(std::iter::once("system:authenticated")) {
                let v = HeaderValue::from_str(g).map_err(|_| format!("group {g:?} cannot be sent as a header"))?;
                headers.append("impersonate-group", v);
            }
            // An agent is its engineer to the cluster, with the agent and its session as user
            // extras, so the cluster's own audit log names them too.
            if let Some(live) = who.agent_session() {
                let value = |v: &str| HeaderValue::from_str(v).map_err(|_| format!("{v:?} cannot be sent as a header"));
                headers.insert(EXTRA_AGENT, value(live.agent())?);
                headers.insert(EXTRA_AGENT_SESSION, value(live.id())?);
            }
        }
        Ok(())
    }

    /// Set only the relay's own credential, for the relay's own requests (the Secret values it
    /// masks logs with): no impersonation, the relay acts as itself.
    pub fn authorize_as_relay(&self, headers: &mut HeaderMap) -> Result<(), String> {
        let token = match &self.auth {
            UpstreamAuth::ClientCert => None,
            UpstreamAuth::TokenFile(f) => Some(f.get().ok_or("the upstream token file is unreadable")?),
            UpstreamAuth::Token(t) => Some(t.clone()),
        };
        if let Some(t) = token {
            let v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| "the upstream token is not a valid header value")?;
            headers.insert(http::header::AUTHORIZATION, v);
        }
        Ok(())
    }
}
