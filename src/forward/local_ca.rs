//! The forwarder's local certificate authority.
//!
//! kubectl sends credentials only over TLS, so the forwarder on 127.0.0.1 serves HTTPS. Its CA
//! lives in the user's config directory (`$XDG_CONFIG_HOME/hoop-kube/forward/`, key 0600) and
//! is written inline into the kubeconfig; the serving certificate is minted from it at every
//! start. The CA is created once and reused, so kubeconfigs stay valid across restarts.

use std::path::{Path, PathBuf};

use crate::pki::{self, Ca, Leaf, PkiError};

/// The local CA and a fresh serving certificate for 127.0.0.1.
pub struct LocalTls {
    pub ca_pem: String,
    pub serving: Leaf,
}

/// The default directory: `forward/` in hoop-kube's configuration directory
/// (`$HOOP_KUBE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/hoop-kube` or the platform's equivalent; see
/// [`crate::login::profile::config_dir`]).
pub fn default_dir() -> Option<PathBuf> {
    crate::login::profile::config_dir().ok().map(|d| d.join("forward"))
}

/// Load the CA in `dir`, creating it (and `dir`, 0700) when absent, and mint a serving
/// certificate for loopback.
pub fn load_or_create(dir: &Path) -> Result<LocalTls, PkiError> {
    let cert_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    let ca = match (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path)) {
        (Ok(cert), Ok(key)) => Ca::from_pem(&cert, &key)?,
        _ => {
            std::fs::create_dir_all(dir).map_err(|source| PkiError::Write { path: dir.display().to_string(), source })?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
            let ca = Ca::generate("hoop-kube local forwarder CA", 3650)?;
            pki::write_file(&key_path, ca.key_pem().as_bytes(), true)?;
            pki::write_file(&cert_path, ca.cert_pem().as_bytes(), false)?;
            ca
        }
    };
    let serving = ca.server_cert(&["127.0.0.1", "localhost"], 30)?;
    Ok(LocalTls { ca_pem: ca.cert_pem().to_string(), serving })
}
