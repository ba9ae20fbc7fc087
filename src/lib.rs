//! hoop-kube puts a policy-enforcing, recording relay in front of a Kubernetes API server and
//! keeps it invisible to `kubectl`.
//!
//! The data path, and the module that owns each stage:
//!
//! ```text
//! kubectl ─▶ credential ─▶ forward ══ mTLS ══▶ relay: authn ─▶ request info ─▶ policy ─▶ review
//!                                                      ─▶ upstream ─▶ mask ─▶ record ─▶ kube-apiserver
//! ```
//!
//! Built so far: [`kube`] — the I/O-free protocol layer every stage shares (request-info parser,
//! `Accept` negotiation, `Status`, the WebSocket channel and SPDY/3.1 codecs); [`pki`] —
//! certificates and rustls configurations; [`sim`] — the Kubernetes API simulator that real
//! kubectl 1.27–1.33 accepts, which is the test bed for everything else; [`cli`] — the command
//! line; [`agent`] — AI agents as an engineer's delegated, narrowed, revocable identities (the
//! relay's side is [`relay::agents`]).
#![forbid(unsafe_code)]
// `Status` is the error of every request handler: large, but only built on the (cold) error
// path, and boxing it would cost an allocation on every refusal for no gain.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod agent;
pub mod atomic_file;
pub mod demo;
pub mod forward;
pub mod jws;
pub mod kube;
pub mod login;
pub mod mask;
pub mod pki;
pub mod policy;
pub mod proxy;
pub mod record;
pub mod relay;
pub mod relay_trust;
pub mod respond;
pub mod review;
pub mod sim;
pub mod text;
