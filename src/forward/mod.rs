//! `hoop-kube forward`: kubectl's local end of the tunnel to the relay.
//!
//! Listens on 127.0.0.1 with a certificate from the local CA ([`local_ca`]) — kubectl sends no
//! credentials to `http://` — and passes every request to the relay over mutual TLS: ordinary
//! calls share one pooled HTTP/2 connection, upgrades (exec, attach, port-forward) get their own
//! HTTP/1.1 connection and are spliced. Paths, queries, bodies and the user's bearer token pass
//! through unchanged; the relay decides. A broken relay connection is replaced on the next
//! request; while the relay is unreachable kubectl gets a 503 `Status` that says so.

pub mod for_profile;
pub mod identity;
pub mod launch;
pub mod local_ca;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::kube::status::Status;
use crate::pki::{self, PkiError};

pub use identity::RelayIdentity;
use crate::proxy::client::{HopError, NextHop};
use crate::proxy::pass::{pass, PassError};
use crate::respond;

/// How to run a forwarder.
#[derive(Clone)]
pub struct ForwardConfig {
    /// Where kubectl connects (127.0.0.1:0 picks a port).
    pub listen: SocketAddr,
    /// The relay, `https://host:port`.
    pub relay: String,
    /// How the relay's serving certificate is trusted.
    pub trust: RelayTrust,
    /// The client certificate and key for mutual TLS with the relay (replaceable while running).
    pub client: Arc<RelayIdentity>,
    /// Where the local CA lives.
    pub local_ca_dir: PathBuf,
}

/// How the forwarder trusts the relay.
#[derive(Clone, Debug)]
pub enum RelayTrust {
    /// A CA file (PEM) that signed the relay's certificate.
    CaPem(String),
    /// The SHA-256 fingerprint of the relay's CA, found in the chain the relay presents (a
    /// profile's `relay_ca_sha256`; see [`crate::relay_trust`]).
    Pin(String),
}

/// What can stop a forwarder from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// Certificates could not be made or loaded.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The relay URL is unusable.
    #[error(transparent)]
    Relay(#[from] HopError),
    /// The relay pin is unusable.
    #[error(transparent)]
    Trust(#[from] crate::relay_trust::TrustError),
    /// The listen address is taken.
    #[error("cannot listen on {addr}: {source} (another program uses it: pick another address with --listen, or for a profile with hoop-kube login --forward-listen)")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running forwarder.
pub struct Forwarding {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`, the `server:` for kubeconfig.
    pub url: String,
    /// The local CA, for `certificate-authority-data`.
    pub ca_pem: String,
    pub task: tokio::task::JoinHandle<()>,
}

/// Largest request body the forwarder passes (the relay enforces its own, smaller or equal).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Start a forwarder.
pub async fn start(cfg: ForwardConfig) -> Result<Forwarding, ForwardError> {
    let local = local_ca::load_or_create(&cfg.local_ca_dir)?;
    let tls = Arc::new(pki::server_config(&local.serving, None)?);
    let resolver: Arc<dyn rustls::client::ResolvesClientCert> = cfg.client.clone();
    let relay_tls = match &cfg.trust {
        RelayTrust::CaPem(pem) => {
            let mut c = pki::client_config(Some(pem), None, true)?;
            c.client_auth_cert_resolver = resolver;
            c
        }
        RelayTrust::Pin(pin) => crate::relay_trust::client_config(pin, Some(resolver))?,
    };
    let hop = Arc::new(NextHop::new(&cfg.relay, relay_tls)?);
    let listener = TcpListener::bind(cfg.listen).await.map_err(|source| ForwardError::Bind { addr: cfg.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ForwardError::Bind { addr: cfg.listen, source })?;
    let task = tokio::spawn(serve(listener, tls, hop));
    Ok(Forwarding { addr, url: format!("https://{addr}"), ca_pem: local.ca_pem, task })
}

async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, hop: Arc<NextHop>) {
    let handle = move |_: Arc<()>, req| {
        let hop = hop.clone();
        async move {
            match pass(&hop, req, MAX_BODY, crate::proxy::pass::Upgrade::Splice, |_| Ok(())).await {
                Ok(r) => r,
                Err(PassError::Hop(e)) => respond::status(&Status::unavailable(format!(
                    "hoop-kube forward: the relay at {} is unreachable ({e}); check that the relay is running and reachable, then retry",
                    hop.authority()
                ))),
                Err(PassError::BodyTooLarge(n)) => respond::status(&Status::too_large(n)),
                Err(e) => respond::status(&Status::bad_request(e.to_string())),
            }
        }
    };
    crate::proxy::serve::serve_tls(listener, tls, crate::proxy::serve::never_stop(), |_: &rustls::ServerConnection| (), handle).await
}
