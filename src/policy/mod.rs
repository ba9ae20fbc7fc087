//! The policy engine: which requests may pass, which need a human's approval, which are refused.
//!
//! Why it exists: the relay's point is to stop a destructive or risky call before it runs. Rules
//! (the `policy:` section of relay.yaml, [`crate::relay::config::PolicyConfig`]) match on
//! Kubernetes' own request attributes, as the one request-info parser
//! ([`crate::kube::request_info`]) reads them, on the user and agent, and optionally on a CEL
//! condition over the request, the user and the object being written. Every matching rule counts,
//! the strictest action wins (deny > review > allow), and nothing matching means deny.
//!
//! What it trusts: the compiled rules and the [`Request`]/[`User`] it is handed (a request the
//! parser refused never gets here). What it refuses: nothing by itself — it decides; a condition
//! that errors or does not give a bool counts as a deny of its rule (fail closed).
//!
//! Files, one job each: [`glob`] (the `*`/`?` matcher), [`rule`] (one compiled rule and its
//! match), [`cel`] (conditions and their variables), [`decide`] (the [`Policy`] and its
//! [`Decision`]), [`denial`] (the Kubernetes `Status` of a refusal), [`explain`] (`hoop-kube
//! policy test`).

mod cel;
pub mod decide;
pub mod denial;
pub mod explain;
pub mod glob;
pub mod rule;

pub use decide::{Decision, Matched, Policy, Request, User};
pub use rule::Action;

/// A rule that cannot be compiled. [`key`](Self::key) is the path under `policy.`
/// (`rules[3].cel`), [`message`](Self::message) names the rule and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.key(), self.message())]
pub struct PolicyError {
    /// The rule's index in `rules`.
    pub index: usize,
    /// The rule's name as written (empty when the name itself is at fault).
    pub name: String,
    /// The field at fault, e.g. `match.verbs[2]`; empty for the rule as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl PolicyError {
    /// `rules[3].cel`.
    #[must_use]
    pub fn key(&self) -> String {
        if self.field.is_empty() {
            format!("rules[{}]", self.index)
        } else {
            format!("rules[{}].{}", self.index, self.field)
        }
    }

    /// `rule "privileged-pods": does not compile: …`.
    #[must_use]
    pub fn message(&self) -> String {
        if self.name.is_empty() {
            self.message.clone()
        } else {
            format!("rule {:?}: {}", self.name, self.message)
        }
    }
}

#[cfg(test)]
mod tests;
