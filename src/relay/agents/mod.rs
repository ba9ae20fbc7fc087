//! Agent sessions at the relay: minting, the per-request check, limits and the kill switch.
//!
//! An agent request carries an agent certificate (engineer as subject, agent and session as
//! actor, [`crate::pki::subject_uri`]) and the relay-signed agent token for the same three
//! names ([`crate::agent::token`]). [`Agents::authenticate`] checks both against each other and
//! against the live session in the [`registry`]: a revoked, stopped or expired session is a 401
//! from the next request on. What the agent may do is its engineer's policy narrowed
//! ([`crate::policy::Policy::decide`]), then this session's [`limits`] ([`gate`]). Stopping a
//! session also cuts what it has open ([`cut`]): watches, logs and exec streams end at once.

pub mod api;
pub mod cut;
pub mod gate;
pub mod limits;
pub mod registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::authn::{TokenCache, Unauthenticated};
use super::oidc::Identity;
use crate::agent::token::SigningKey;
use crate::pki::{Actor, CertSubject};

/// The agents feature of one relay (`agents:` in relay.yaml).
pub struct Agents {
    pub registry: Arc<registry::Registry>,
    pub key: SigningKey,
    pub limiter: limits::Limiter,
    /// The longest session minted.
    pub max_ttl: Duration,
    /// Groups that may list, revoke and stop everyone's agent sessions.
    pub admins: Vec<String>,
    /// The rate-limit state of each session (made on first use); its lock also serializes the
    /// session's budget checks.
    rates: Mutex<HashMap<String, Arc<Mutex<limits::RateState>>>>,
}

impl Agents {
    pub fn new(registry: Arc<registry::Registry>, key: SigningKey, limiter: limits::Limiter, max_ttl: Duration, admins: Vec<String>) -> Self {
        Agents { registry, key, limiter, max_ttl, admins, rates: Mutex::default() }
    }

    /// Whether `groups` holds an agents admin group.
    pub fn is_admin(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.admins.contains(g))
    }

    /// The rate state of one session (made on first use).
    pub fn rate_state(&self, session: &str) -> Arc<Mutex<limits::RateState>> {
        let mut map = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.entry(session.to_string()).or_default().clone()
    }

    /// Check an agent certificate's actor and the bearer token against each other and against the
    /// live session. The identity returned is the engineer's, as it was when the session was
    /// minted, with the agent in `act.sub` and the session in `sid`; it is built once per token
    /// (then cached with it), while the session's state is checked on every request.
    pub fn authenticate(&self, token: &str, cert: &CertSubject, actor: &Actor, cache: &TokenCache) -> Result<(Identity, Arc<registry::Live>), Unauthenticated> {
        let now = chrono::Utc::now();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = cache.get(&key);
        let claims;
        let (subject, agent, session) = match &cached {
            Some(id) => (id.subject.as_str(), id.agent().unwrap_or_default(), id.claims.get("sid").and_then(serde_json::Value::as_str).unwrap_or_default()),
            None => {
                claims = self.key.verify(token, now.timestamp()).map_err(Unauthenticated::BadAgentToken)?;
                (claims.subject.as_str(), claims.agent.as_str(), claims.session.as_str())
            }
        };
        if subject != cert.subject || agent != actor.agent || session != actor.session {
            return Err(Unauthenticated::AgentMismatch);
        }
        let live = self.registry.get(session).ok_or(Unauthenticated::AgentSessionUnknown)?;
        if live.subject() != subject || live.agent() != agent || live.cert_serial() != cert.serial {
            return Err(Unauthenticated::AgentMismatch);
        }
        if !live.is_active(now) {
            return Err(Unauthenticated::AgentSessionEnded(ended_message(&live.info_at(now))));
        }
        let identity = match cached {
            Some(id) => id,
            None => {
                let info = live.info_at(now);
                let identity = Identity {
                    subject: info.subject.clone(),
                    username: info.username,
                    groups: info.groups,
                    expires_at: live.not_after(),
                    claims: serde_json::json!({"sub": info.subject, "act": {"sub": info.agent}, "sid": info.id}),
                };
                cache.put(key, identity.clone());
                identity
            }
        };
        Ok((identity, live))
    }
}

/// How often the registry takes in what other relays sharing its file did (a revoke through one
/// relay reaches the others within this).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// Keep `registry` in step with other relays sharing its file, for as long as the relay runs
/// (the task holds only a weak reference and ends with the registry).
pub fn keep_in_sync(registry: &Arc<registry::Registry>) {
    let weak = Arc::downgrade(registry);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(registry) = weak.upgrade() else { break };
            match tokio::task::spawn_blocking(move || registry.sync()).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(sessions = n, "agent registry: took in sessions created or ended by another relay"),
                Ok(Err(e)) => tracing::warn!(error = %e, "agent registry: cannot read what other relays did; retrying"),
                _ => {}
            }
        }
    });
}

/// Why an ended session no longer works, in one line.
pub fn ended_message(info: &crate::agent::SessionInfo) -> String {
    let by = info.ended_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
    let at = info.ended_at.as_deref().map(|t| format!(" at {t}")).unwrap_or_else(|| format!(" at {}", info.not_after));
    format!("agent session {} of {} for {} was {}{by}{at}; mint a new one with `hoop-kube run --agent {}`", info.id, info.agent, info.username, info.state.as_str(), info.agent)
}
