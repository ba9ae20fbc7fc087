//! `agents:` in relay.yaml — agent sessions: where they are kept, the key that signs agent
//! tokens, how long a session may live, who may end everyone's, and the limits per agent.
//!
//! ```yaml
//! agents:
//!   store: relay-agents.sqlite     # default, beside this file (SQLite, WAL, created 0600)
//!   signing_key: agent-signing.key # required: PKCS#8 PEM ES256 key (relay pki init writes it)
//!   max_ttl_minutes: 480           # 1..=10080, default 480; never beyond the engineer's certificate
//!   admins: [sre]                  # groups that may list/revoke/stop every engineer's sessions
//!   limits:                        # the first rule whose `agent` glob matches applies; none = no limits
//!     - agent: "*"
//!       requests_per_second: 10    # token bucket, > 0 (fractions allowed)
//!       burst: 20                  # default ceil(requests_per_second), >= 1
//!       max_mutating: 100          # create/update/patch/delete/deletecollection let through, per session
//!       max_deletes: 5             # delete/deletecollection let through, per session
//!       namespaces: [default, "team-*"]   # globs; cluster-wide and all-namespace requests refused
//! ```
//!
//! Without the section agent sessions are off (the agents API answers 404). Unknown keys, a
//! missing or unreadable `signing_key` (the file is checked, not parsed — boot parses it), numbers
//! out of range, a rate that is zero or not a number, a `burst` without a rate, bad globs and empty
//! lists are refused with their key path.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Cx};
use crate::policy::glob::Glob;
use crate::relay::agents::limits::{LimitRule, Limiter};

/// The default store file name, beside the config file.
pub const DEFAULT_AGENTS_STORE: &str = "relay-agents.sqlite";
/// The default `max_ttl_minutes` (8 hours).
pub const DEFAULT_MAX_TTL_MINUTES: u32 = 480;
/// The longest `max_ttl_minutes` (one week).
pub const MAX_TTL_MINUTES: u32 = 10_080;
/// The largest `requests_per_second`.
pub const MAX_REQUESTS_PER_SECOND: f64 = 100_000.0;
/// The largest `burst`.
pub const MAX_BURST: u32 = 1_000_000;

/// `agents:` — validated, paths absolute, globs compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentsConfig {
    /// `store`: the SQLite file of agent sessions.
    pub store: PathBuf,
    /// `signing_key`: the PKCS#8 PEM P-256 key that signs agent tokens (checked readable only).
    pub signing_key: PathBuf,
    /// `max_ttl_minutes`: the longest session minted.
    pub max_ttl_minutes: u32,
    /// `admins`: groups that may list, revoke and stop every engineer's agent sessions.
    pub admins: Vec<String>,
    /// `limits`, in order.
    pub limits: Vec<LimitRule>,
}

impl AgentsConfig {
    /// The longest session, as a duration.
    #[must_use]
    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.max_ttl_minutes) * 60)
    }

    /// The limit engine for these rules.
    #[must_use]
    pub fn limiter(&self) -> Limiter {
        Limiter::new(self.limits.clone())
    }
}

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgents {
    store: Option<PathBuf>,
    signing_key: PathBuf,
    max_ttl_minutes: Option<u32>,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    limits: Vec<RawLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    agent: String,
    requests_per_second: Option<f64>,
    burst: Option<u32>,
    max_mutating: Option<u64>,
    max_deletes: Option<u64>,
    namespaces: Option<Vec<String>>,
}

impl Cx<'_> {
    pub(super) fn agents(&self, raw: RawAgents) -> Result<AgentsConfig, ConfigError> {
        let store = self.file_path("agents.store", raw.store.unwrap_or_else(|| PathBuf::from(DEFAULT_AGENTS_STORE)))?;
        let signing_key = self.path("agents.signing_key", &raw.signing_key)?;
        let max_ttl_minutes = raw.max_ttl_minutes.unwrap_or(DEFAULT_MAX_TTL_MINUTES);
        if !(1..=MAX_TTL_MINUTES).contains(&max_ttl_minutes) {
            return Err(self.invalid("agents.max_ttl_minutes", format!("{max_ttl_minutes} is out of range; allowed 1–{MAX_TTL_MINUTES} (minutes)")));
        }
        for (i, g) in raw.admins.iter().enumerate() {
            if g.trim().is_empty() {
                return Err(self.invalid(format!("agents.admins[{i}]"), "is empty; name a group"));
            }
        }
        let limits = raw.limits.into_iter().enumerate().map(|(i, l)| self.limit(i, l)).collect::<Result<_, _>>()?;
        Ok(AgentsConfig { store, signing_key, max_ttl_minutes, admins: raw.admins, limits })
    }

    fn limit(&self, index: usize, raw: RawLimit) -> Result<LimitRule, ConfigError> {
        let key = |k: &str| format!("agents.limits[{index}].{k}");
        let agent = Glob::new(&raw.agent).map_err(|e| self.invalid(key("agent"), e))?;
        let rate = match raw.requests_per_second {
            None => None,
            Some(r) if !r.is_finite() || r <= 0.0 => {
                return Err(self.invalid(key("requests_per_second"), format!("{r} is not allowed; it must be more than 0 (fractions are allowed, e.g. 0.5); leave it out for no rate limit")));
            }
            Some(r) if r > MAX_REQUESTS_PER_SECOND => {
                return Err(self.invalid(key("requests_per_second"), format!("{r} is out of range; at most {MAX_REQUESTS_PER_SECOND}")));
            }
            Some(r) => Some(r),
        };
        let burst = match (raw.burst, rate) {
            (Some(_), None) => return Err(self.invalid(key("burst"), "needs requests_per_second in the same rule")),
            (Some(b), Some(_)) if !(1..=MAX_BURST).contains(&b) => {
                return Err(self.invalid(key("burst"), format!("{b} is out of range; allowed 1–{MAX_BURST}")));
            }
            (Some(b), Some(_)) => b,
            // Bounded by MAX_REQUESTS_PER_SECOND, so the cast cannot truncate.
            (None, Some(r)) => (r.ceil() as u32).max(1),
            (None, None) => 1,
        };
        let namespaces = match raw.namespaces {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(self.invalid(key("namespaces"), "is empty, which would refuse every resource request; leave it out to allow every namespace"));
            }
            Some(list) => {
                let globs = list.iter().enumerate().map(|(j, p)| Glob::new(p).map_err(|e| self.invalid(format!("agents.limits[{index}].namespaces[{j}]"), e))).collect::<Result<Vec<_>, _>>()?;
                Some((globs, list))
            }
        };
        Ok(LimitRule {
            index,
            agent,
            agent_pattern: raw.agent,
            requests_per_second: rate,
            burst,
            max_mutating: raw.max_mutating,
            max_deletes: raw.max_deletes,
            namespaces,
        })
    }
}

#[cfg(test)]
#[path = "config_agents_tests.rs"]
mod tests;
