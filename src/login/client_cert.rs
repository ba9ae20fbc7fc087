//! The profile's mTLS client certificate: where it lives, when it is renewed, how it is read.
//!
//! The **key** is a secret and lives in the profile's [`SecretStore`] (entry `client_key`). The
//! **certificate** is public (the relay sees it on every connection) and lives in a plain file,
//! `$XDG_STATE_HOME/hoop-kube/certs/<profile>.crt`, so that the plugin's hot path can check its
//! expiry with one small file read instead of another keyring round trip, and the forwarder can
//! notice a renewal by the file's modification time.
//!
//! Renewal: `hoop-kube credential` holds a fresh ID token on every call; when the certificate
//! has less than a third of its lifetime left (4 h of the default 12 h) it enrolls again with
//! the same key, under the lock `<profile>.cert`, so concurrent callers renew once. A login makes a
//! new key. A running forwarder picks the new certificate up (see [`crate::forward`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::enroll::{self, EnrollError, Enrollment};
use super::profile::Profile;
use super::refresh::{self, CredentialError};
use super::store::{SecretStore, StoreError};
use crate::pki::Leaf;

/// The store entry holding the client key (PEM).
pub const CLIENT_KEY: &str = "client_key";

/// How long a caller waits for another process's renewal.
const RENEW_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the certificate could not be read or renewed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// No certificate or key: the profile never enrolled.
    #[error("profile \"{0}\" has no relay client certificate; run: hoop-kube login --profile {0}")]
    Missing(String),
    /// The certificate expired and could not be renewed.
    #[error("the relay client certificate of profile \"{profile}\" expired at {expired} and could not be renewed ({reason}); run: hoop-kube login --profile {profile}")]
    Expired { profile: String, expired: DateTime<Utc>, reason: String },
    /// The store failed.
    #[error("cannot read the client key of profile \"{profile}\": {source}")]
    Store { profile: String, source: StoreError },
    /// The file could not be read or written.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    /// Enrollment failed.
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    /// Lock or directory trouble.
    #[error("{0}")]
    Credential(String),
}

impl From<CredentialError> for CertError {
    fn from(e: CredentialError) -> Self {
        CertError::Credential(e.to_string().trim_start_matches("hoop-kube: ").to_string())
    }
}

/// `$XDG_STATE_HOME/hoop-kube/certs` (beside `locks/`).
pub fn certs_dir() -> Result<PathBuf, CertError> {
    let locks = refresh::default_lock_dir()?;
    Ok(locks.parent().map(|p| p.join("certs")).unwrap_or_else(|| locks.join("certs")))
}

/// The certificate file of `profile`.
pub fn cert_path(profile: &str) -> Result<PathBuf, CertError> {
    Ok(certs_dir()?.join(format!("{profile}.crt")))
}

/// The stored certificate and its expiry, if there is one that parses.
pub fn read_cert(path: &Path) -> Option<(String, DateTime<Utc>)> {
    let pem = std::fs::read_to_string(path).ok()?;
    let (not_after, _) = enroll::inspect(&pem)?;
    Some((pem, not_after))
}

/// Write the certificate atomically (`0644`; the directory is `0700`).
pub fn write_cert(path: &Path, pem: &str) -> Result<(), CertError> {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CertError + 'a {
        move |source| CertError::Io { op, path: path.to_path_buf(), source }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir).map_err(io("create", dir))?;
    let tmp = dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("cert"), std::process::id()));
    std::fs::write(&tmp, pem).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("replace", path))
}

/// Whether a certificate valid until `not_after` should be renewed at `now` (under a third of
/// `lifetime` left).
pub fn due(not_after: DateTime<Utc>, lifetime: Duration, now: DateTime<Utc>) -> bool {
    let third = chrono::Duration::from_std(lifetime / 3).unwrap_or(chrono::Duration::hours(4));
    not_after - now < third
}

/// The default certificate lifetime asked for (the relay caps it).
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Certificate + key of `profile`, for the forwarder.
pub async fn load_leaf(profile: &Profile, store: &SecretStore) -> Result<(Leaf, DateTime<Utc>), CertError> {
    let path = cert_path(&profile.name)?;
    let (cert_pem, not_after) = read_cert(&path).ok_or_else(|| CertError::Missing(profile.name.clone()))?;
    let key = store.get(CLIENT_KEY).await.map_err(|source| CertError::Store { profile: profile.name.clone(), source })?;
    let key_pem = key.and_then(|k| String::from_utf8(k).ok()).ok_or_else(|| CertError::Missing(profile.name.clone()))?;
    Ok((Leaf { cert_pem, key_pem }, not_after))
}

/// Enroll `key_pem` (stored first if `new_key`) with the relay for `subject` and store the
/// certificate.
pub async fn enroll_and_store(profile: &Profile, store: &SecretStore, id_token: &str, subject: &str, key_pem: &str, new_key: bool) -> Result<Enrollment, CertError> {
    let pin = profile.relay_ca_sha256.as_deref().ok_or_else(|| CertError::Credential(format!("profile \"{}\" has no relay_ca_sha256 pin; run hoop-kube login --profile {} --relay-ca-sha256 HEX", profile.name, profile.name)))?;
    let e = enroll::enroll(&profile.relay_url, pin, id_token, subject, key_pem, Some(LIFETIME)).await?;
    if new_key {
        store.put(CLIENT_KEY, key_pem.as_bytes()).await.map_err(|source| CertError::Store { profile: profile.name.clone(), source })?;
    }
    write_cert(&cert_path(&profile.name)?, &e.cert_pem)?;
    Ok(e)
}

/// Called with a valid ID token on every `credential` call: renews the certificate when it is
/// [`due`], for the subject the current certificate names. Cheap when it is not (one file read).
/// An error matters only when the certificate is already unusable; otherwise the caller may
/// ignore it and try again next time.
pub async fn renew_if_due(profile: &Profile, store: &SecretStore, id_token: &str, lock_dir: &Path) -> Result<Option<Enrollment>, CertError> {
    let path = cert_path(&profile.name)?;
    let now = Utc::now();
    match read_cert(&path) {
        Some((_, not_after)) if !due(not_after, LIFETIME, now) => return Ok(None),
        None => return Err(CertError::Missing(profile.name.clone())),
        Some(_) => {}
    }
    let _lock = refresh::lock_profile(lock_dir, &format!("{}.cert", profile.name), RENEW_LOCK_TIMEOUT).await?;
    // Read again under the lock: someone else may have renewed while we waited. Renewal keeps the
    // subject, the one the current certificate names.
    let current = std::fs::read_to_string(&path).ok().and_then(|pem| enroll::inspect(&pem));
    let subject = match current {
        Some((not_after, _)) if !due(not_after, LIFETIME, Utc::now()) => return Ok(None),
        Some((_, Some(subject))) => subject,
        _ => return Err(CertError::Missing(profile.name.clone())),
    };
    let key = store.get(CLIENT_KEY).await.map_err(|source| CertError::Store { profile: profile.name.clone(), source })?;
    let key_pem = key.and_then(|k| String::from_utf8(k).ok()).ok_or_else(|| CertError::Missing(profile.name.clone()))?;
    enroll_and_store(profile, store, id_token, &subject, &key_pem, false).await.map(Some)
}

/// What `hoop-kube credential` (and `hoop-kube run --agent`) do with the certificate once they
/// hold a valid ID token: [`renew_if_due`]; if renewal fails, keep using the current certificate
/// while it is valid, and fail only when there is none or it has expired. `Ok(Some(warning))`:
/// the certificate works but expires within the hour and cannot be renewed; show the line.
pub async fn renew_or_keep(profile: &Profile, store: &SecretStore, id_token: &str, lock_dir: &Path) -> Result<Option<String>, CertError> {
    let e = match renew_if_due(profile, store, id_token, lock_dir).await {
        Ok(Some(e)) => {
            tracing::info!(profile = %profile.name, not_after = %e.not_after, "renewed the relay client certificate");
            return Ok(None);
        }
        Ok(None) => return Ok(None),
        Err(e @ CertError::Missing(_)) => return Err(e),
        Err(e) => e,
    };
    let now = Utc::now();
    match read_cert(&cert_path(&profile.name)?) {
        Some((_, not_after)) if not_after > now + chrono::Duration::hours(1) => {
            tracing::info!(error = %e, "certificate renewal failed; will retry");
            Ok(None)
        }
        Some((_, not_after)) if not_after > now => Ok(Some(format!("the relay certificate of profile \"{}\" expires at {not_after} and cannot be renewed: {e}", profile.name))),
        Some((_, expired)) => Err(CertError::Expired { profile: profile.name.clone(), expired, reason: e.to_string() }),
        None => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_in_the_last_third() {
        let now = Utc::now();
        let life = Duration::from_secs(12 * 3600);
        assert!(!due(now + chrono::Duration::hours(5), life, now));
        assert!(due(now + chrono::Duration::hours(3), life, now));
        assert!(due(now - chrono::Duration::hours(1), life, now));
    }
}
