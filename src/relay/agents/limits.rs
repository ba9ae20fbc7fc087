//! The limits of one agent session (`agents.limits` in relay.yaml): where it may go, how fast,
//! and how many writes and deletes it may make, each refused with a `Status` that names the limit.
//!
//! **Why here, and pure.** Limits are the leash an engineer's agent runs on beyond the policy:
//! the policy says *what* the engineer's agent may do, limits say *how much*. This module decides
//! and words refusals; it does no I/O and reads no clock (time is passed in), so every boundary is
//! tested with synthetic time. The registry ([`super::registry`]) keeps the counters durable.
//!
//! **Order on the request path.** [`precheck`] runs before the policy: the namespace limit, then
//! the token bucket (a request the namespace limit refuses spends no token; every other request
//! spends one, whatever the policy then decides). [`charge_check`] runs after the policy let a
//! request through and before it is forwarded. A mutating call — `create`, `update`, `patch`,
//! `delete`, `deletecollection` by [`RequestInfo::policy_verb`], so an exec's SPDY `POST` is not
//! one and a token request is; access and token reviews (`auth can-i`) store nothing and are not
//! — is refused once the session has had `max_mutating` of them, a delete once it has had
//! `max_deletes`; otherwise it says which counters to bump. A delete counts as mutating too.
//!
//! **What the agent reads.** 429 `TooManyRequests` with `details.retryAfterSeconds`, or 403
//! `Forbidden`; both with the causes `{reason: "HoopKubeAgentLimit", field: "limit", message:
//! LIMIT}` and `{reason: "HoopKubeCode", field: "code", message: CODE}`.

use std::time::Instant;

use crate::kube::request_info::RequestInfo;
use crate::kube::status::{Status, StatusCause, StatusDetails};
use crate::policy::glob::{any_match, Glob};

/// The `details.causes[].reason` naming the limit (field `limit`).
pub const CAUSE_REASON: &str = "HoopKubeAgentLimit";

/// One `agents.limits[]` rule, validated. Built by the config ([`crate::relay::config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitRule {
    /// The position in `agents.limits` (for messages and records: `agents.limits[0]`).
    pub index: usize,
    /// `agent`: the glob of agent names, and its text.
    pub agent: Glob,
    pub agent_pattern: String,
    /// `requests_per_second` (> 0; fractions allowed).
    pub requests_per_second: Option<f64>,
    /// `burst` (≥ 1; default `ceil(requests_per_second)`). Meaningful only with a rate.
    pub burst: u32,
    /// `max_mutating`: mutating calls let through per session.
    pub max_mutating: Option<u64>,
    /// `max_deletes`: delete/deletecollection calls let through per session.
    pub max_deletes: Option<u64>,
    /// `namespaces`: the globs and their text; `None` = every namespace and cluster scope.
    pub namespaces: Option<(Vec<Glob>, Vec<String>)>,
}

/// The rules, first match wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limiter {
    rules: Vec<LimitRule>,
}

impl Limiter {
    #[must_use]
    pub fn new(rules: Vec<LimitRule>) -> Self {
        Limiter { rules }
    }

    /// The first rule whose `agent` glob matches `agent`; `None` = no limits for it.
    #[must_use]
    pub fn rule_for(&self, agent: &str) -> Option<&LimitRule> {
        self.rules.iter().find(|r| r.agent.matches(agent))
    }

    #[must_use]
    pub fn rules(&self) -> &[LimitRule] {
        &self.rules
    }
}

/// A session's token bucket; create one per session on first use (`RateState::default()`): it
/// starts full, with `burst` tokens.
#[derive(Debug, Clone, Default)]
pub struct RateState {
    tokens: f64,
    last: Option<Instant>,
}

impl RateState {
    /// Spend one token at `now`, or say how many seconds until one is there.
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Result<(), f64> {
        self.tokens = match self.last {
            None => burst,
            Some(last) => (self.tokens + now.saturating_duration_since(last).as_secs_f64() * rate).min(burst),
        };
        // Never move backwards: a caller's `now` taken just before another's must not refill twice.
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / rate)
        }
    }
}

/// The counters of one session, as the registry keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests that reached the policy.
    pub requests: u64,
    /// Mutating calls let through (deletes included).
    pub mutating: u64,
    /// Deletes let through.
    pub deletes: u64,
}

/// Which counters a let-through request bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// `create`, `update`, `patch`: `mutating`.
    Mutating,
    /// `delete`, `deletecollection`: `mutating` and `deletes`.
    Delete,
}

impl Counters {
    /// These counters after `charge`.
    #[must_use]
    pub fn after(self, charge: Charge) -> Counters {
        let deletes = u64::from(charge == Charge::Delete);
        Counters { requests: self.requests, mutating: self.mutating.saturating_add(1), deletes: self.deletes.saturating_add(deletes) }
    }
}

/// What `info` costs if let through: `None` for reads, exec, logs and non-resource requests.
#[must_use]
pub fn classify(info: &RequestInfo) -> Option<Charge> {
    if !info.is_resource_request {
        return None;
    }
    match info.policy_verb() {
        "delete" | "deletecollection" => Some(Charge::Delete),
        // Access and token reviews (`kubectl auth can-i`, `whoami`) are creates that store
        // nothing; an agent checking its permissions must not spend its write budget.
        "create" if matches!(info.api_group.as_str(), "authorization.k8s.io" | "authentication.k8s.io") && info.resource.ends_with("reviews") => None,
        "create" | "update" | "patch" => Some(Charge::Mutating),
        _ => None,
    }
}

/// The limit that refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    RequestsPerSecond,
    MaxMutating,
    MaxDeletes,
    Namespaces,
}

impl Limit {
    /// The config key, as in `details`: `requests_per_second`, `max_mutating`, `max_deletes`,
    /// `namespaces`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Limit::RequestsPerSecond => "requests_per_second",
            Limit::MaxMutating => "max_mutating",
            Limit::MaxDeletes => "max_deletes",
            Limit::Namespaces => "namespaces",
        }
    }

    /// The hoop-kube reason code: `RateLimited`, `MutatingLimit`, `DeleteLimit`,
    /// `NamespaceNotAllowed`.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Limit::RequestsPerSecond => "RateLimited",
            Limit::MaxMutating => "MutatingLimit",
            Limit::MaxDeletes => "DeleteLimit",
            Limit::Namespaces => "NamespaceNotAllowed",
        }
    }
}

/// A request refused by a limit. Built only on the refusal path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRefusal {
    pub limit: Limit,
    /// The configured value, as written (`10`, `5`, `default, team-*`).
    pub value: String,
    /// The rule's position in `agents.limits`.
    pub rule_index: usize,
    /// For the rate limit: whole seconds until a request would pass (≥ 1).
    pub retry_after_seconds: Option<u32>,
    /// What was refused, in words (`delete pods "web" in namespace "prod"`).
    pub request: String,
    /// The agent and its session, when known ([`LimitRefusal::session`]).
    pub agent: String,
    pub session: String,
}

impl LimitRefusal {
    fn new(rule: &LimitRule, limit: Limit, value: String, info: &RequestInfo) -> Self {
        LimitRefusal { limit, value, rule_index: rule.index, retry_after_seconds: None, request: describe(info), agent: String::new(), session: String::new() }
    }

    /// Name the agent and session in the message.
    #[must_use]
    pub fn session(mut self, agent: &str, session: &str) -> Self {
        agent.clone_into(&mut self.agent);
        session.clone_into(&mut self.session);
        self
    }

    /// The limit's config key.
    #[must_use]
    pub fn limit_name(&self) -> &'static str {
        self.limit.name()
    }

    /// 429 for the rate, 403 for the others.
    #[must_use]
    pub fn code(&self) -> u16 {
        if self.limit == Limit::RequestsPerSecond { 429 } else { 403 }
    }

    /// Where the limit is configured, for records: `agents.limits[0].max_deletes`.
    #[must_use]
    pub fn rule_name(&self) -> String {
        format!("agents.limits[{}].{}", self.rule_index, self.limit.name())
    }

    /// The one-line `Status` the agent gets.
    #[must_use]
    pub fn status(&self) -> Status {
        let who = match (self.agent.is_empty(), self.session.is_empty()) {
            (false, false) => format!("agent {:?} (session {})", self.agent, self.session),
            (false, true) => format!("agent {:?}", self.agent),
            _ => "this agent session".to_string(),
        };
        let (what, key) = (&self.request, self.rule_name());
        let message = match self.limit {
            Limit::RequestsPerSecond => format!(
                "hoop-kube agent limit: {who} exceeded requests_per_second {} ({what} was not sent); retry in {} s, or ask the platform team to raise {key}",
                self.value,
                self.retry_after_seconds.unwrap_or(1)
            ),
            Limit::MaxMutating => format!(
                "hoop-kube agent limit: {who} has used all {} mutating calls of max_mutating ({what} was not sent); the budget is per session: the engineer can start a new session, or the platform team can raise {key}",
                self.value
            ),
            Limit::MaxDeletes => format!(
                "hoop-kube agent limit: {who} has used all {} deletes of max_deletes ({what} was not sent); the budget is per session: the engineer can start a new session, or the platform team can raise {key}",
                self.value
            ),
            Limit::Namespaces => format!(
                "hoop-kube agent limit: {who} may only use the namespaces {} and {what} is outside them (cluster-wide and all-namespace requests are not allowed either); use one of those namespaces, or ask the platform team to change {key}",
                self.value
            ),
        };
        let details = StatusDetails {
            causes: vec![StatusCause { reason: CAUSE_REASON.into(), message: self.limit.name().into(), field: "limit".into() }],
            retry_after_seconds: self.retry_after_seconds,
            ..StatusDetails::default()
        };
        let status = match self.limit {
            Limit::RequestsPerSecond => Status::failure(429, "TooManyRequests", message),
            _ => Status::forbidden(message),
        };
        status.with_details(details).with_code(self.limit.code())
    }
}

/// The request in the policy's words ([`crate::policy::denial::describe_info`]), and
/// "(cluster-wide)" for a resource request outside every namespace, which is what the namespace
/// limit refuses.
fn describe(info: &RequestInfo) -> String {
    let mut s = crate::policy::denial::describe_info(info, &crate::text::clip(&info.path, 120));
    if info.is_resource_request && info.namespace.is_empty() {
        s.push_str(" (cluster-wide)");
    }
    s
}

/// Before the policy: the namespace limit, then the rate. Allocation-free when it passes.
///
/// # Errors
/// The [`LimitRefusal`] to answer with.
pub fn precheck(rule: &LimitRule, rate: &mut RateState, info: &RequestInfo, now: Instant) -> Result<(), LimitRefusal> {
    if let Some((globs, patterns)) = &rule.namespaces {
        if info.is_resource_request && (info.namespace.is_empty() || !any_match(globs, &info.namespace)) {
            return Err(LimitRefusal::new(rule, Limit::Namespaces, patterns.join(", "), info));
        }
    }
    if let Some(rps) = rule.requests_per_second {
        if let Err(wait) = rate.take(rps, f64::from(rule.burst.max(1)), now) {
            let mut r = LimitRefusal::new(rule, Limit::RequestsPerSecond, format_rate(rps, rule.burst), info);
            r.retry_after_seconds = Some(wait_seconds(wait));
            return Err(r);
        }
    }
    Ok(())
}

/// After the policy let `info` through, before it is forwarded: refuse it when its budget is
/// spent, or say which counters to bump (`None` for a request that is not mutating).
///
/// # Errors
/// The [`LimitRefusal`] to answer with.
pub fn charge_check(rule: &LimitRule, counters: &Counters, info: &RequestInfo) -> Result<Option<Charge>, LimitRefusal> {
    let Some(charge) = classify(info) else { return Ok(None) };
    if charge == Charge::Delete {
        if let Some(max) = rule.max_deletes.filter(|max| counters.deletes >= *max) {
            return Err(LimitRefusal::new(rule, Limit::MaxDeletes, max.to_string(), info));
        }
    }
    if let Some(max) = rule.max_mutating.filter(|max| counters.mutating >= *max) {
        return Err(LimitRefusal::new(rule, Limit::MaxMutating, max.to_string(), info));
    }
    Ok(Some(charge))
}

/// `10`, `0.5 (burst 2)`: the rate as configured.
fn format_rate(rps: f64, burst: u32) -> String {
    if f64::from(burst) == rps.ceil() { format!("{rps}") } else { format!("{rps} (burst {burst})") }
}

/// Whole seconds to wait, at least 1.
fn wait_seconds(wait: f64) -> u32 {
    if wait.is_finite() && wait > 0.0 {
        // Bounded: the longest wait is one token at the lowest rate the config accepts.
        let s = wait.ceil().min(f64::from(u32::MAX));
        (s as u32).max(1)
    } else {
        1
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
