//! Start a relay from its validated configuration: load the serving certificate and client CA
//! (and, with `enrollment`, the CA's key), resolve the upstream credential, discover the OIDC
//! issuer, bind, serve.
//!
//! Everything that can be checked before the first request is checked here, so a relay that
//! starts is a relay that can serve; each failure is one line naming what to fix.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::access::Access;
use super::enroll::Enrollment;
use super::config::{Material, RelayConfig, ResolvedCredential};
use super::oidc::{self, OidcSettings, Verifier};
use super::upstream::{TokenFile, Upstream, UpstreamAuth};
use super::{serve, Limits, RelayState};
use crate::pki::{self, Leaf};
use crate::proxy::client::NextHop;

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    /// A certificate, key or CA file could not be used.
    #[error("{what}: {reason}")]
    Material { what: String, reason: String },
    /// The review store or webhook could not be set up.
    #[error("review: {0}")]
    Review(#[from] crate::review::hold::SetupError),
    /// The records store or an exporter could not be set up.
    #[error("{0}")]
    Records(#[from] super::records::SetupError),
    /// The OIDC issuer could not be reached or is misconfigured.
    #[error("OIDC issuer: {0}")]
    Oidc(#[from] oidc::AuthnError),
    /// The upstream URL is unusable.
    #[error("upstream: {0}")]
    Upstream(#[from] crate::proxy::client::HopError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another relay running? change `listen`)")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A started relay.
pub struct RunningRelay {
    pub addr: SocketAddr,
    pub url: String,
    pub state: Arc<RelayState>,
    pub task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RunningRelay {
    /// Stop at once: close the listener and every open connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn read_text(m: &Material, what: &str) -> Result<String, BootError> {
    let bytes = m.read().map_err(|e| BootError::Material { what: what.into(), reason: e.to_string() })?;
    String::from_utf8(bytes).map_err(|_| BootError::Material { what: what.into(), reason: "not PEM text".into() })
}

fn read_file(p: &std::path::Path, what: &str) -> Result<String, BootError> {
    read_text(&Material::File(p.to_path_buf()), &format!("{what} ({})", p.display()))
}

fn pki_err(what: &str) -> impl Fn(pki::PkiError) -> BootError + '_ {
    move |e| BootError::Material { what: what.into(), reason: e.to_string() }
}

/// Build the shared state from a configuration (discovers the issuer).
pub async fn state(cfg: &RelayConfig) -> Result<(Arc<RelayState>, rustls::ServerConfig), BootError> {
    let serving = Leaf { cert_pem: read_file(&cfg.tls.cert, "tls.cert")?, key_pem: read_file(&cfg.tls.key, "tls.key")? };
    let client_ca = read_file(&cfg.tls.client_ca, "tls.client_ca")?;
    let server_tls = pki::relay_server_config(&serving, &client_ca).map_err(pki_err("tls"))?;
    let enrollment = match &cfg.enrollment {
        Some(e) => {
            let key = read_file(&e.ca_key, "enrollment.ca_key")?;
            let what = format!("enrollment.ca_key ({}) with tls.client_ca ({})", e.ca_key.display(), cfg.tls.client_ca.display());
            let ca = pki::Ca::from_pem(&client_ca, &key).map_err(|e| BootError::Material { what, reason: e.to_string() })?;
            Some(Enrollment { ca, max_lifetime: e.max_lifetime() })
        }
        None => None,
    };

    let up = cfg.resolve_upstream()?;
    if let Some(name) = &up.tls_server_name {
        return Err(BootError::Material { what: "upstream kubeconfig".into(), reason: format!("tls-server-name {name:?} is not supported yet; point `server` at a name the certificate covers") });
    }
    let ca = up.ca.as_ref().map(|m| read_text(m, "upstream CA")).transpose()?;
    let (client_leaf, auth) = match &up.credential {
        ResolvedCredential::ClientCert { cert, key } => {
            (Some(Leaf { cert_pem: read_text(cert, "upstream client certificate")?, key_pem: read_text(key, "upstream client key")? }), UpstreamAuth::ClientCert)
        }
        ResolvedCredential::Token(Material::File(p)) => {
            (None, UpstreamAuth::TokenFile(TokenFile::open(p.clone()).map_err(|e| BootError::Material { what: format!("upstream token file {}", p.display()), reason: e.to_string() })?))
        }
        ResolvedCredential::Token(m) => (None, UpstreamAuth::Token(m.read_token().map_err(|e| BootError::Material { what: "upstream token".into(), reason: e.to_string() })?)),
    };
    let upstream_tls = pki::client_config(ca.as_deref(), client_leaf.as_ref(), false).map_err(pki_err("upstream TLS"))?;
    let hop = NextHop::new(&up.server, upstream_tls)?;

    let o = &cfg.oidc;
    let mut settings = OidcSettings::new(o.issuer.clone(), o.audiences.first().cloned().unwrap_or_default());
    settings.audiences = o.audiences.clone();
    settings.username_claim = o.username_claim.clone();
    settings.username_prefix = o.username_prefix.clone();
    settings.groups_claim = o.groups_claim.clone();
    settings.groups_prefix = o.groups_prefix.clone();
    settings.algorithms = o.algorithms.clone();
    settings.leeway = std::time::Duration::from_secs(o.leeway_seconds);
    settings.ca_pem = o.ca.as_ref().map(|p| read_file(p, "oidc.ca").map(String::into_bytes)).transpose()?;
    let verifier = Verifier::discover(settings).await?;

    let agents = match &cfg.agents {
        None => None,
        Some(a) => {
            if enrollment.is_none() {
                return Err(BootError::Material {
                    what: "agents".into(),
                    reason: "agent sessions need enrollment.ca_key: the client CA's key signs each agent's certificate".into(),
                });
            }
            let what = format!("agents.signing_key ({})", a.signing_key.display());
            let key = crate::agent::token::SigningKey::from_pem(&read_file(&a.signing_key, "agents.signing_key")?).map_err(|e| BootError::Material { what: what.clone(), reason: e.to_string() })?;
            let registry = Arc::new(super::agents::registry::Registry::open(&a.store).map_err(|e| BootError::Material { what: format!("agents.store ({})", a.store.display()), reason: e.to_string() })?);
            super::agents::keep_in_sync(&registry);
            Some(Arc::new(super::agents::Agents::new(registry, key, a.limiter(), a.max_ttl(), a.admins.clone())))
        }
    };
    let state = RelayState {
        verifier,
        tokens: Default::default(),
        access: Access { subjects: cfg.access.subjects.clone(), groups: cfg.access.groups.clone() },
        upstream: Upstream { hop, auth, impersonate: cfg.impersonation },
        limits: Limits { max_header_bytes: cfg.limits.max_header_bytes, max_body_bytes: cfg.limits.max_body_bytes },
        enrollment,
        policy: cfg.policy.as_ref().map(crate::policy::Policy::compile).transpose().map_err(|e| BootError::Material { what: "policy".into(), reason: e.to_string() })?,
        reviews: match &cfg.review {
            Some(r) => Some(Arc::new(crate::review::Reviews::open(r).await?)),
            None => None,
        },
        masking: super::mask::Masking::new(cfg.mask_profiles.clone()),
        records: super::records::Records::open(&cfg.records).await?,
        agents,
    };
    Ok((Arc::new(state), server_tls))
}

/// Start serving on `cfg.listen`.
pub async fn start(cfg: &RelayConfig) -> Result<RunningRelay, BootError> {
    let (state, tls) = self::state(cfg).await?;
    let listener = TcpListener::bind(cfg.listen).await.map_err(|source| BootError::Bind { addr: cfg.listen, source })?;
    let addr = listener.local_addr().map_err(|source| BootError::Bind { addr: cfg.listen, source })?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(reviews) = &state.reviews {
        tokio::spawn(crate::review::hold::sweep(Arc::downgrade(reviews), stop_rx.clone()));
    }
    let task = tokio::spawn(serve(listener, Arc::new(tls), state.clone(), stop_rx));
    Ok(RunningRelay { addr, url: format!("https://{addr}"), state, task, stop })
}
