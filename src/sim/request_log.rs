//! The simulator's request log: one JSON line per request in `STATE_DIR/requests.jsonl`.
//!
//! Tests assert on it (which protocol kubectl really used, which user the relay impersonated,
//! which code came back), so every request is logged once, including upgrades and failures, and
//! a line is flushed before the response leaves.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One request.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Entry {
    pub time: String,
    pub method: String,
    /// Raw path and query exactly as received.
    pub uri: String,
    /// The authenticated identity (before impersonation).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authenticated_user: String,
    /// The effective user after impersonation.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub verb: String,
    /// `http/1.1` or `h2`.
    pub http: String,
    /// For upgrades: `websocket` or `spdy`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub upgrade: String,
    /// The negotiated stream protocol (`v5.channel.k8s.io`, `SPDY/3.1+portforward.k8s.io`, …).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    pub code: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// The request body's `Content-Type`, when it has one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    /// The request's `Accept` header (what the relay asked the apiserver for).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub accept: String,
    /// The request's `Accept-Encoding` header.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub accept_encoding: String,
}

/// The log file.
pub struct RequestLog {
    file: Mutex<std::fs::File>,
}

impl RequestLog {
    /// Open (append) `path`.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RequestLog { file: Mutex::new(file) })
    }

    /// Append one entry. A write failure is reported on stderr by the caller's tracing, never
    /// fatal to the request: the log is a test aid, not an audit trail.
    pub fn write(&self, e: &Entry) {
        let Ok(mut line) = serde_json::to_vec(e) else { return };
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(err) = f.write_all(&line) {
            tracing::warn!(error = %err, "cannot write the request log");
        }
    }
}
