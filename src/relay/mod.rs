//! `hoop-kube relay`: the only holder of the cluster credential.
//!
//! The phase order, owned here and nowhere else:
//!
//! 1. **TLS** — TLS 1.3. A client certificate is optional at the handshake, but one that is
//!    presented must chain to the relay's client CA (or the handshake fails); its
//!    `hoop-kube://subject/…` URI SAN is read once per connection ([`Peer`]).
//! 2. **entry** ([`entry`]) — `POST /hoop-kube/v1/enroll` goes to [`enroll`], with or without a
//!    certificate: it is how a user without one gets one (its own checks: OIDC token, access
//!    list, CSR). Every other request on a connection without a client certificate is a 401
//!    telling the user to run `hoop-kube login`. This is the one place that decides it.
//! 3. **limits** — header block and declared body size (431 / 413 `Status`).
//! 4. **authn** ([`authn`]) — the bearer OIDC token ([`oidc`]) must verify and name the same
//!    subject as the certificate (401). An agent certificate (engineer as subject, agent and
//!    session as actor) needs instead the relay's own agent token for the same three names and a
//!    live session ([`agents`]).
//! 5. **header policy** — any client header starting with `impersonate-` or `x-remote-` is
//!    refused (403), by prefix.
//! 6. **request info** — the shared parser ([`crate::kube::request_info`]) rejects hostile
//!    paths (400); what it parsed is what is forwarded.
//! 7. **access** ([`access`]) — the allow list: who may use the relay at all (403).
//! 8. **policy** ([`crate::policy`], in [`proxy`]) — when relay.yaml has `policy:`, every
//!    request is decided by its rules (strictest wins, nothing matching is a deny). When a rule
//!    that could match reads `object`, the body is read within the body limit and decoded by its
//!    `Content-Type` ([`crate::kube::body`]); an undecodable body is a 400, and the bytes decided
//!    on are the bytes forwarded. Deny → 403 `Status` naming the rule; review → the review
//!    stage.
//! 9. **review** ([`crate::review::hold`], in [`proxy`]) — the request's fingerprint (subject,
//!    agent, policy verb, raw path and query, SHA-256 of the body forwarded, read within the body
//!    limit if the policy did not) spends a matching approval once, or the request is held up to
//!    `review.hold_seconds` for one; otherwise a 403 names the review and how to approve it.
//!    The reviews API (`/hoop-kube/v1/reviews`, [`crate::review::api`]; agents may only read
//!    it), the records API ([`records_api`]) and the agents API ([`agents::api`]; engineers
//!    only) are served right after the header policy, before request info.
//!
//!    For an agent, the session's limits ([`agents::gate`]) come before the policy (namespaces,
//!    rate) and after it (the budget of mutating calls and deletes); the policy decides it as
//!    its engineer narrowed ([`crate::policy::Policy::decide`]); its open streams end when the
//!    session does ([`agents::cut`]).
//! 10. **upstream** ([`upstream`]) — the client's `Authorization` is dropped, the relay's
//!     credential and `Impersonate-User`/`Impersonate-Group` (for an agent also
//!     `Impersonate-Extra-` agent and agent session) are set, the raw path and query are
//!     sent over a pooled HTTP/2 connection (HTTP/1.1 for upgrades), and the response streams
//!     back; upgrades are spliced.

pub mod access;
pub mod agents;
pub mod authn;
pub mod boot;
pub mod config;

pub mod dev_issuer;
pub mod enroll;
pub mod exec_mask;
pub mod kubeconfig;
pub mod mask;
pub mod oidc;
pub mod pki_init;
pub mod proxy;
pub mod records;
pub mod records_api;
pub mod secret_values;
pub mod session;
pub mod upstream;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::kube::status::Status;
use crate::pki::{cert_subject, CertSubject};
use crate::respond::{self, Body};

/// Size limits applied before anything else.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_header_bytes: 64 * 1024, max_body_bytes: 3 * 1024 * 1024 }
    }
}

/// Everything a request needs, shared by all connections.
pub struct RelayState {
    pub verifier: oidc::Verifier,
    pub tokens: authn::TokenCache,
    pub access: access::Access,
    pub upstream: upstream::Upstream,
    pub limits: Limits,
    /// The enrollment CA and its limits; `None` when `enrollment` is not configured.
    pub enrollment: Option<enroll::Enrollment>,
    /// The compiled `policy:` rules; `None` when the config has none (the access list alone
    /// decides, as before the policy engine).
    pub policy: Option<crate::policy::Policy>,
    /// Held requests, approvals and the reviews API; `None` when the config has neither a
    /// `review:` section nor a review rule.
    pub reviews: Option<Arc<crate::review::Reviews>>,
    /// The mask profiles policy rules attach, and the Secret values log masking needs.
    pub masking: mask::Masking,
    /// The records store every request is written to before it is forwarded or refused.
    pub records: records::Records,
    /// Agent sessions (`agents:`); `None` when agents are not enabled (agent credentials are
    /// then refused).
    pub agents: Option<Arc<agents::Agents>>,
}

/// What the TLS handshake established about the client, once per connection.
#[derive(Debug, Clone)]
pub enum Peer {
    /// No client certificate: the connection may only enroll.
    Anonymous,
    /// A certificate that chains to the client CA, and the hoop-kube subject it names (`None`
    /// when it names none; authn refuses that with its own 401).
    Certified(Option<CertSubject>),
}

/// The message of the 401 for a request without a client certificate.
pub const NO_CERTIFICATE: &str = "the hoop-kube relay requires a client certificate for this request; run `hoop-kube login` to get one";

/// The relay's request entry: route enrollment, refuse certificate-less requests, hand the rest
/// to the proxy (see the phase order above).
pub async fn entry(state: Arc<RelayState>, peer: Arc<Peer>, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() == enroll::PATH {
        return enroll::handle(&state, req).await;
    }
    match &*peer {
        Peer::Certified(cert) => proxy::handle(state, cert.clone(), req).await,
        Peer::Anonymous => {
            tracing::info!(method = %req.method(), path = %req.uri().path(), "refused: no client certificate");
            respond::status(&Status::failure(401, "Unauthorized", format!("Unauthorized: {NO_CERTIFICATE}")))
        }
    }
}

/// Accept TLS connections (with or without a client certificate, see
/// [`crate::pki::relay_server_config`]) and serve each with hyper (HTTP/2 or HTTP/1.1 by ALPN,
/// upgrades enabled), until `stop` turns true: then the listener and every open connection
/// (watches, logs) are closed at once, as a crash or a restart would close them.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<RelayState>, stop: tokio::sync::watch::Receiver<bool>) {
    let connect = |session: &rustls::ServerConnection| match session.peer_certificates().and_then(|c| c.first()) {
        None => Peer::Anonymous,
        Some(c) => Peer::Certified(cert_subject(c)),
    };
    let handle = move |peer: Arc<Peer>, req| entry(state.clone(), peer, req);
    crate::proxy::serve::serve_tls(listener, tls, stop, connect, handle).await
}
