//! One agent request against its session's limits: where it may go and how fast, before the
//! policy is asked ([`Gate::precheck`]); and, once the policy let a mutating call through,
//! whether the session's budget of mutating calls and deletes still allows it ([`Gate::charge`]).
//!
//! The budget check and the spend are one step under the registry's lock
//! ([`super::registry::Registry::charge_checked`]), so two concurrent deletes can never both
//! take the last one, and the spend is committed before the request goes on, so a relay restart
//! does not hand out a fresh budget. A budget that cannot be committed refuses the request
//! (fail closed).

use std::sync::Arc;
use std::time::Instant;

use super::limits::{self, LimitRefusal, LimitRule};
use super::registry::Live;
use super::Agents;
use crate::kube::request_info::RequestInfo;
use crate::kube::status::Status;

/// The limits of one agent request's session.
pub struct Gate<'a> {
    agents: &'a Agents,
    live: &'a Arc<Live>,
    rule: Option<&'a LimitRule>,
}

/// A refused request: the `Status` to answer with, and what the record names as its rule.
pub struct Refused {
    pub status: Status,
    pub rule: String,
}

impl From<LimitRefusal> for Refused {
    fn from(r: LimitRefusal) -> Self {
        Refused { status: r.status(), rule: r.rule_name() }
    }
}

impl<'a> Gate<'a> {
    pub fn new(agents: &'a Agents, live: &'a Arc<Live>) -> Self {
        Gate { agents, live, rule: agents.limiter.rule_for(live.agent()) }
    }

    /// Count the request; namespaces and rate, before the policy.
    pub fn precheck(&self, info: &RequestInfo) -> Result<(), Refused> {
        if let Err(e) = self.agents.registry.count_request(self.live.id()) {
            tracing::warn!(session = %self.live.id(), error = %e, "cannot persist the agent session's request count");
        }
        let Some(rule) = self.rule else { return Ok(()) };
        let state = self.agents.rate_state(self.live.id());
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        limits::precheck(rule, &mut state, info, Instant::now()).map_err(|r| r.session(self.live.agent(), self.live.id()).into())
    }

    /// The budget of mutating calls and deletes, for a request the policy let through.
    pub async fn charge(&self, info: &RequestInfo) -> Result<(), Refused> {
        let Some(charge) = limits::classify(info) else { return Ok(()) };
        let (registry, id, rule, info) = (self.agents.registry.clone(), self.live.id().to_string(), self.rule.cloned(), info.clone());
        let done = tokio::task::spawn_blocking(move || match &rule {
            Some(rule) => registry.charge_checked(&id, rule, &info),
            None => registry.charge(&id, charge).map(|_| Ok(Some(charge))),
        })
        .await;
        match done {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(refusal))) => Err(refusal.session(self.live.agent(), self.live.id()).into()),
            Ok(Err(e)) => Err(self.unavailable(&e.to_string())),
            Err(e) => Err(self.unavailable(&e.to_string())),
        }
    }

    fn unavailable(&self, why: &str) -> Refused {
        tracing::error!(session = %self.live.id(), error = %why, "cannot commit the agent session's budget");
        Refused {
            status: Status::unavailable(format!("the relay cannot record agent session {}'s budget ({why}); the request was not forwarded, retry shortly", self.live.id())).with_code("AgentRegistryUnavailable"),
            rule: "agents.registry".into(),
        }
    }
}
