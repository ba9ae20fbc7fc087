//! Authentication at the relay: two proofs, one subject.
//!
//! The mutual-TLS client certificate (issued by the relay's CA at login, hours long) names the
//! subject in its `hoop-kube://subject/…` URI SAN; the bearer OIDC token (minutes long) is
//! verified against the issuer's JWKS. Both must name the same subject, or the request is a 401.
//! An agent's certificate also names the agent and its session, and its token is the relay's own
//! ([`super::agents`]).
//! The only way to build an [`Authenticated`] is [`authenticate`], so later stages cannot run on
//! an unauthenticated request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::agents::registry::Live;
use super::agents::Agents;
use super::oidc::{AuthnError, Identity, Verifier};
use crate::pki::CertSubject;

/// Proof that a request carried a valid certificate and a valid token for the same subject.
#[derive(Debug, Clone)]
pub struct Authenticated {
    identity: Identity,
    cert: CertSubject,
    agent: Option<Arc<Live>>,
}

impl Authenticated {
    /// The verified identity from the token.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
    /// The client certificate's subject and serial.
    pub fn cert(&self) -> &CertSubject {
        &self.cert
    }
    /// The live agent session, for an agent's request.
    pub fn agent_session(&self) -> Option<&Arc<Live>> {
        self.agent.as_ref()
    }
}

/// Why authentication failed; every variant becomes a 401 `Status` whose message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// The TLS layer verified a certificate but it names no hoop-kube subject.
    #[error("the client certificate names no hoop-kube subject; run `hoop-kube login` to get one")]
    NoCertSubject,
    /// No `Authorization: Bearer` header.
    #[error("no bearer token; configure kubectl with the hoop-kube credential plugin (`hoop-kube kubeconfig`)")]
    NoToken,
    /// The token did not verify.
    #[error("the bearer token was rejected ({0}); run `hoop-kube login`")]
    BadToken(#[from] AuthnError),
    /// Certificate and token name different subjects.
    #[error("the client certificate is for {cert:?} but the token is for {token:?}; log in again with one identity")]
    SubjectMismatch { cert: String, token: String },
    /// An agent certificate, but the relay has no `agents:` section.
    #[error("agent credentials are not accepted: agent sessions are not enabled on this relay")]
    AgentsDisabled,
    /// The agent token did not verify.
    #[error("the agent token was rejected ({0}); mint a new agent credential with `hoop-kube run --agent` or `hoop-kube agents mint`")]
    BadAgentToken(crate::agent::token::TokenError),
    /// Agent certificate and agent token (or the session they name) disagree.
    #[error("the agent certificate and the agent token belong to different agent sessions; use the kubeconfig hoop-kube wrote for this agent, unchanged")]
    AgentMismatch,
    /// The session named is not in the registry.
    #[error("the agent session is unknown to this relay; mint a new agent credential")]
    AgentSessionUnknown,
    /// The session was revoked, stopped or expired.
    #[error("{0}")]
    AgentSessionEnded(String),
    /// The relay's agent token came with an engineer's certificate.
    #[error("an agent token must come with its own agent certificate; use the kubeconfig hoop-kube wrote for this agent, unchanged")]
    AgentTokenWithoutAgentCert,
    /// An identity-provider token that claims to act for someone (`act`).
    #[error("tokens with an RFC 8693 act claim are accepted only from the relay itself; run agents with `hoop-kube run --agent NAME`")]
    DelegatedToken,
}

impl Unauthenticated {
    /// The machine-readable reason code of the 401 (`details.causes`, see
    /// [`crate::kube::status::Status::with_code`]).
    pub fn code(&self) -> &'static str {
        match self {
            Unauthenticated::AgentSessionEnded(_) => "AgentSessionEnded",
            Unauthenticated::AgentsDisabled
            | Unauthenticated::BadAgentToken(_)
            | Unauthenticated::AgentMismatch
            | Unauthenticated::AgentSessionUnknown
            | Unauthenticated::AgentTokenWithoutAgentCert
            | Unauthenticated::DelegatedToken => "AgentCredentialRejected",
            _ => "Unauthenticated",
        }
    }
}

/// Extract the bearer token. Exactly one `Authorization` header, scheme `Bearer`.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, Unauthenticated> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return Err(Unauthenticated::NoToken);
    };
    let v = v.to_str().map_err(|_| Unauthenticated::NoToken)?;
    let (scheme, token) = v.split_once(' ').ok_or(Unauthenticated::NoToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Unauthenticated::NoToken);
    }
    Ok(token.trim())
}

/// Tokens that verified, by SHA-256, until they expire. kubectl sends the same token with every
/// request for minutes, and a signature check is most of the relay's CPU per request; a hit
/// skips only the signature and claim checks, never the certificate comparison. Only verified
/// tokens enter, so it cannot be filled by garbage; when full it is simply emptied.
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<[u8; 32], Identity>>,
}

/// Entries kept at most.
const CACHE_MAX: usize = 10_000;

impl TokenCache {
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Identity> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|id| id.expires_at > chrono::Utc::now()).cloned()
    }

    pub(crate) fn put(&self, key: [u8; 32], id: Identity) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(key, id);
    }
}

/// Verify both proofs. An agent certificate (one naming an actor) needs the relay's agent token
/// for the same engineer, agent and live session ([`Agents::authenticate`]); an engineer's needs
/// an identity-provider token without an `act` claim.
pub async fn authenticate(headers: &HeaderMap, cert: Option<&CertSubject>, verifier: &Verifier, cache: &TokenCache, agents: Option<&Agents>) -> Result<Authenticated, Unauthenticated> {
    let cert = cert.ok_or(Unauthenticated::NoCertSubject)?;
    let token = bearer(headers)?;
    if let Some(actor) = &cert.actor {
        let agents = agents.ok_or(Unauthenticated::AgentsDisabled)?;
        let (identity, live) = agents.authenticate(token, cert, actor, cache)?;
        return Ok(Authenticated { identity, cert: cert.clone(), agent: Some(live) });
    }
    if agents.is_some_and(|a| crate::agent::token::kid_of(token).as_deref() == Some(a.key.kid())) {
        return Err(Unauthenticated::AgentTokenWithoutAgentCert);
    }
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let identity = match cache.get(&key) {
        Some(id) => id,
        None => {
            let id = verifier.verify(token).await?;
            cache.put(key, id.clone());
            id
        }
    };
    if identity.claims.get("act").is_some() {
        return Err(Unauthenticated::DelegatedToken);
    }
    if identity.subject != cert.subject {
        return Err(Unauthenticated::SubjectMismatch { cert: cert.subject.clone(), token: identity.subject.clone() });
    }
    Ok(Authenticated { identity, cert: cert.clone(), agent: None })
}
