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

use std::convert::Infallible;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
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
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut stop_accept = stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop_accept.wait_for(|s| *s) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut stop_conn = stop.clone();
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
            };
            let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(cert_subject);
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let cert = cert.clone();
                async move { Ok::<_, Infallible>(proxy::handle(state, cert, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Generous transport limits; the relay's own limits answer with a Status first.
            builder.http1().max_buf_size(1024 * 1024);
            builder.http2().max_header_list_size(1024 * 1024).max_concurrent_streams(crate::proxy::MAX_CONCURRENT_STREAMS);
            tokio::select! {
                r = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop_conn.wait_for(|s| *s) => {}
            }
        });
    }
}
