//! Agent identities: an engineer's delegated, narrowed, revocable credential for an AI agent.
//!
//! **Why.** An agent that borrows the engineer's own kubeconfig is indistinguishable from the
//! engineer, and one given a broad service account answers to nobody. An agent session is
//! minted by the relay for a logged-in engineer (`hoop-kube run --agent NAME`, `hoop-kube agents
//! mint`): a client certificate whose URI SAN names the engineer as subject and the agent as
//! actor ([`crate::pki::subject_uri`]), and a relay-signed bearer token with an RFC 8693 `act`
//! claim ([`token`]). Both expire at most at the engineer's own certificate expiry, and both die
//! at once when the session is revoked or stopped: the relay checks the session on every request.
//!
//! This module holds what both ends share: agent names, the wire contract of the relay's
//! `/hoop-kube/v1/agents` API, and the token format. The relay's side (registry, limits, API
//! handlers) lives in [`crate::relay`]; the client's (`run`, `agents …`) in [`client`] and the CLI.

use serde::{Deserialize, Serialize};

/// The API prefix of agent sessions at the relay.
pub const API_PATH: &str = "/hoop-kube/v1/agents";
/// `apiVersion` of every agents API object.
pub const API_VERSION: &str = "hoop-kube.dev/v1";
/// Set in the environment of a command run by `hoop-kube run --agent`: the agent session id.
/// `hoop-kube credential`, `login`, `run` and `agents` refuse to hand out or act with an
/// engineer's credentials in a process that carries it (a careless agent reaching for the engineer's own profile).
pub const SESSION_ENV: &str = "HOOP_KUBE_AGENT_SESSION";
/// The longest agent name.
pub const MAX_NAME_LEN: usize = 63;

/// Why an agent name is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("an agent name cannot be empty")]
    Empty,
    #[error("agent name {0:?} is longer than 63 characters")]
    TooLong(String),
    #[error("agent name {0:?} may contain only lower-case letters, digits, '-' and '.', and must start and end with a letter or digit")]
    Invalid(String),
}

/// Check an agent name: a DNS-label-like `[a-z0-9]([a-z0-9.-]*[a-z0-9])?`, at most 63 bytes. The
/// name appears in a URI SAN, an HTTP header value, record filters and log lines; keeping it to
/// this alphabet means no encoding question ever arises.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(crate::text::clip(name, 80)));
    }
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    let edges = ok(bytes[0]) && ok(bytes[bytes.len() - 1]);
    if !edges || !bytes.iter().all(|&b| ok(b) || b == b'-' || b == b'.') {
        return Err(NameError::Invalid(crate::text::clip(name, 80)));
    }
    Ok(())
}

/// `POST /hoop-kube/v1/agents`: mint an agent session for the authenticated engineer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MintRequest {
    /// The agent's name ([`check_name`]).
    pub agent: String,
    /// The lifetime wanted; capped by the relay (its `agents.max_ttl_minutes` and the engineer's own
    /// certificate expiry). At least 60.
    pub ttl_seconds: u64,
    /// A PEM `CERTIFICATE REQUEST` for a key made on the client; only its public key is used.
    pub csr: String,
    /// What the agent was launched with, for `agents list` (clipped to 256 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// The 200 answer to a mint: everything the agent's kubeconfig needs except the relay URL and
/// the key, which the client already has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Minted {
    pub api_version: String,
    /// `AgentCredential`.
    pub kind: String,
    /// The session as `agents list` shows it.
    pub session: SessionInfo,
    /// The client certificate, PEM.
    pub certificate: String,
    /// The relay-signed bearer token.
    pub token: String,
}

/// The state of an agent session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Usable until `notAfter`.
    Active,
    /// Revoked (`agents revoke`, or `hoop-kube run` when its command exited).
    Revoked,
    /// Stopped by `agents stop` (the kill switch: open streams were cut).
    Stopped,
    /// Past `notAfter`.
    Expired,
}

impl SessionState {
    /// The lower-case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Revoked => "revoked",
            SessionState::Stopped => "stopped",
            SessionState::Expired => "expired",
        }
    }
}

/// One agent session, as the agents API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The session id (a UUID v7), also in the certificate, the token and every record.
    pub id: String,
    pub agent: String,
    /// The engineer's OIDC subject.
    pub subject: String,
    /// The engineer's user name, as impersonated upstream.
    pub username: String,
    /// The engineer's groups at mint time.
    pub groups: Vec<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC; the certificate and token expire then.
    pub not_after: String,
    pub state: SessionState,
    /// When it was revoked or stopped, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Who revoked or stopped it (a user name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The agent certificate's serial (hex).
    pub cert_serial: String,
    /// Requests that reached the policy, mutating calls and deletes that were let through.
    pub requests: u64,
    pub mutating: u64,
    pub deletes: u64,
}

/// `GET /hoop-kube/v1/agents` and the answer to `POST /hoop-kube/v1/agents/stop`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    pub api_version: String,
    /// `AgentSessionList`.
    pub kind: String,
    pub items: Vec<SessionInfo>,
}

/// `POST /hoop-kube/v1/agents/stop`: stop every active session of one agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StopRequest {
    pub agent: String,
    /// Only this engineer's sessions (an admin's choice; others always stop their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

pub mod client;
pub mod kubeconfig;
pub mod launch;
pub mod token;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_label_like() {
        for ok in ["bot", "claude-code", "a", "a.b-c", "x1", &"a".repeat(63)] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert!(matches!(check_name(&"a".repeat(64)), Err(NameError::TooLong(_))));
        for bad in ["Bot", "-bot", "bot-", ".bot", "bot.", "b/t", "b%2ft", "bot ", "böt", "b\u{0}t", "bot\n", "*"] {
            assert!(matches!(check_name(bad), Err(NameError::Invalid(_))), "{bad:?}");
        }
    }
}
