//! Reviews: a request the policy sends to `review` is held for a human's decision, and an
//! approval lets exactly that request through once.
//!
//! Why it exists: the point of the relay is to stop a destructive or risky call before it runs,
//! without taking the call away. The policy ([`crate::policy`]) decides `review`; this module
//! records the request as a review, holds it open for `review.hold_seconds`, and lets it proceed
//! when a member of one of the rule's reviewer groups approves it. An approval is bound to the
//! request's [`fingerprint`] (subject, agent, policy verb, raw path, raw query, body SHA-256), is
//! spent by one execution and expires after `review.ttl_seconds`.
//!
//! What it trusts: the authenticated identity and the decision handed in by the relay, and its
//! own store. What it refuses: approvals by anyone outside the reviewer groups, self-approval
//! unless the rule allows it, a deny without a reason, deciding twice.
//!
//! Files, one job each: [`store`] (reviews in SQLite, every state change one statement),
//! [`fingerprint`] (what binds an approval to a request), [`hold`] (the relay's review stage:
//! spend, reuse or open a review, and wait), [`api`] (`/hoop-kube/v1/reviews` on the relay),
//! [`webhook`] (the notification when a review opens and closes), [`client`] (what `hoop-kube
//! reviews` uses: a kubeconfig context's server and credential, and the API calls).

pub mod api;
pub mod client;
pub mod fingerprint;
pub mod hold;
pub mod store;
pub mod webhook;

pub use hold::Reviews;
pub use store::{NewReview, Review, State, Store, StoreError};
