//! `hoop-kube forward --profile NAME`: the forwarder of a logged-in profile.
//!
//! Everything comes from the profile: the relay URL and its CA pin, the listen address (the one
//! `hoop-kube kubeconfig` wrote), and the client certificate (file) and key (secret store) that
//! `hoop-kube login` enrolled. While it runs, [`watch`] looks at the certificate file every few
//! seconds: a renewed certificate is presented from the next relay connection on; when the
//! profile's key or certificate disappear (`hoop-kube logout` deletes both), the forwarder stops, so nothing
//! keeps using a credential the user asked to forget.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{ForwardConfig, ForwardError, Forwarding, RelayIdentity, RelayTrust};
use crate::login::client_cert::{self, CertError};
use crate::login::profile::Profile;
use crate::login::store::SecretStore;

/// How often the certificate file is looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Why a profile's forwarder cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileForwardError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error("profile \"{0}\" has no relay_ca_sha256 pin; run hoop-kube login --profile {0} --relay-ca-sha256 HEX")]
    NoPin(String),
    #[error("cannot open the secret store of profile \"{profile}\": {reason}")]
    Store { profile: String, reason: String },
    #[error("{0}")]
    AlreadyRunning(String),
    #[error("{}", .0.to_string().trim_start_matches("hoop-kube: "))]
    Setup(#[from] crate::login::refresh::CredentialError),
}

/// A running profile forwarder.
pub struct ProfileForwarder {
    pub forwarding: Forwarding,
    pub identity: Arc<RelayIdentity>,
    store: SecretStore,
    cert_path: PathBuf,
    _running: super::launch::RunningLock,
}

/// Start the forwarder of `profile`, its local CA in `local_ca_dir`.
pub async fn start(profile: &Profile, local_ca_dir: PathBuf) -> Result<ProfileForwarder, ProfileForwardError> {
    let pin = profile.relay_ca_sha256.clone().ok_or_else(|| ProfileForwardError::NoPin(profile.name.clone()))?;
    let store = SecretStore::new(&profile.name, profile.token_store).map_err(|e| ProfileForwardError::Store { profile: profile.name.clone(), reason: e.to_string() })?;
    let mut running = super::launch::hold_running_lock(&crate::login::refresh::default_lock_dir()?, &profile.name).map_err(ProfileForwardError::AlreadyRunning)?;
    let (leaf, _) = client_cert::load_leaf(profile, &store).await?;
    let identity = RelayIdentity::new(&leaf).map_err(ForwardError::from)?;
    let forwarding = super::start(ForwardConfig {
        listen: profile.forward_listen,
        relay: profile.relay_url.clone(),
        trust: RelayTrust::Pin(pin),
        client: identity.clone(),
        local_ca_dir,
    })
    .await?;
    running.listening(forwarding.addr);
    Ok(ProfileForwarder { forwarding, identity, store, cert_path: client_cert::cert_path(&profile.name)?, _running: running })
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl ProfileForwarder {
    /// Follow renewals until the profile's certificate or key is gone; returns why it stopped.
    pub async fn watch(&self, profile: &Profile) -> CertError {
        let mut seen = mtime(&self.cert_path);
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let now = mtime(&self.cert_path);
            if now.is_none() {
                return CertError::Missing(profile.name.clone());
            }
            if now == seen {
                continue;
            }
            match client_cert::load_leaf(profile, &self.store).await {
                Err(e @ CertError::Missing(_)) => return e,
                Err(e) => tracing::warn!(profile = %profile.name, error = %e, "cannot read the client certificate; keeping the current one"),
                Ok((leaf, not_after)) => match self.identity.replace(&leaf) {
                    Ok(()) => {
                        tracing::info!(profile = %profile.name, %not_after, "presenting the renewed client certificate");
                        seen = now;
                    }
                    // Key and certificate from two different enrollments: the writer is between
                    // its two writes. Look again next time.
                    Err(e) => tracing::debug!(error = %e, "renewal not complete yet"),
                },
            }
        }
    }
}
