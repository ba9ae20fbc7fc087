//! `hoop-kube relay`: the only holder of the cluster credential.
//!
//! The phase order, owned here and nowhere else:
//!
//! 1. **TLS** — TLS 1.3, a client certificate chaining to the relay's client CA is required;
//!    its `hoop-kube://subject/…` URI SAN is read once per connection.
//! 2. **limits** — header block and declared body size (431 / 413 `Status`).
//! 3. **authn** ([`authn`]) — the bearer OIDC token ([`oidc`]) must verify and name the same
//!    subject as the certificate (401).
//! 4. **header policy** — any client header starting with `impersonate-` or `x-remote-` is
//!    refused (403), by prefix.
//! 5. **request info** — the shared parser ([`crate::kube::request_info`]) rejects hostile
//!    paths (400); what it parsed is what is forwarded.
//! 6. **access** ([`access`]) — the allow list (403); the policy engine will take this place.
//! 7. **upstream** ([`upstream`]) — the client's `Authorization` is dropped, the relay's
//!    credential and `Impersonate-User`/`Impersonate-Group` are set, the raw path and query are
//!    sent over a pooled HTTP/2 connection (HTTP/1.1 for upgrades), and the response streams
//!    back; upgrades are spliced.

pub mod access;
pub mod authn;
pub mod boot;
pub mod config;

pub mod dev_issuer;
pub mod kubeconfig;
pub mod oidc;
pub mod proxy;
pub mod upstream;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::pki::cert_subject;

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
}

/// Accept mutual-TLS connections and serve each with hyper (HTTP/2 or HTTP/1.1 by ALPN,
/// upgrades enabled), until `stop` turns true: then the listener and every open connection
/// (watches, logs) are closed at once, as a crash or a restart would close them.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<RelayState>, stop: tokio::sync::watch::Receiver<bool>) {
    let connect = |session: &rustls::ServerConnection| session.peer_certificates().and_then(|c| c.first()).and_then(cert_subject);
    let handle = move |cert: Arc<Option<crate::pki::CertSubject>>, req| proxy::handle(state.clone(), (*cert).clone(), req);
    crate::proxy::serve::serve_tls(listener, tls, stop, connect, handle).await
}
