//! `hoop-kube relay pki init`: a new CA and serving certificate for a relay, in one directory.
//!
//! One CA does two jobs: it signs the relay's serving certificate (clients pin the relay by this
//! CA's SHA-256 fingerprint and find it in the chain the relay presents), and it is the relay's
//! client CA, whose key signs the certificates users get at `hoop-kube login` (`enrollment`).
//!
//! It writes `ca.crt`, `ca.key` (0600), `relay.crt` (leaf + CA), `relay.key` (0600) and
//! `agent-signing.key` (0600, the ES256 key that signs agent tokens) into a directory created
//! 0700. It never overwrites a file unless told to: replacing `ca.key` changes
//! the fingerprint every client pinned and invalidates every issued certificate.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::pki::{self, Ca, PkiError};

/// The files written, in order.
pub const FILES: [&str; 5] = ["ca.crt", "ca.key", "relay.crt", "relay.key", "agent-signing.key"];
/// The CA's validity (ten years), or the serving certificate's if that is longer.
pub const CA_DAYS: i64 = 3650;
/// The largest `--days`.
pub const MAX_DAYS: u32 = 3650;

/// What to create.
#[derive(Debug, Clone)]
pub struct PkiInit {
    /// The directory (created 0700 if missing).
    pub dir: PathBuf,
    /// DNS names and IP addresses the relay's certificate covers (at least one).
    pub hosts: Vec<String>,
    /// Validity of the serving certificate, in days.
    pub days: u32,
    /// Overwrite existing files.
    pub force: bool,
}

/// Why nothing (or not everything) was written. One line each.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiInitError {
    /// No `--host`.
    #[error("name at least one host the relay is reached by (--host relay.example.com, --host 10.0.0.5)")]
    NoHost,
    /// A host is neither an IP address nor a DNS name.
    #[error("--host {0:?} is neither an IP address nor a DNS name")]
    BadHost(String),
    /// `--days` out of range.
    #[error("--days {0} is out of range; allowed 1–{MAX_DAYS}")]
    BadDays(u32),
    /// A file exists and `--force` was not given.
    #[error("{} already exists; refusing to overwrite it (pass --force to replace the relay's CA: clients must then pin the new fingerprint and log in again)", .0.display())]
    Exists(PathBuf),
    /// The directory could not be created.
    #[error("cannot create {}: {source}", .path.display())]
    Dir { path: PathBuf, source: std::io::Error },
    /// A file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// Certificate generation failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Created {
    /// The directory, absolute.
    pub dir: PathBuf,
    /// Lower-case hex SHA-256 of the CA certificate's DER ([`pki::ca_fingerprint`]).
    pub fingerprint: String,
}

impl Created {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The `tls:` and `enrollment:` sections for relay.yaml (absolute paths).
    pub fn snippet(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "tls:");
        let _ = writeln!(s, "  cert: {}", self.path("relay.crt"));
        let _ = writeln!(s, "  key: {}", self.path("relay.key"));
        let _ = writeln!(s, "  client_ca: {}", self.path("ca.crt"));
        let _ = writeln!(s, "enrollment:");
        let _ = writeln!(s, "  ca_key: {}", self.path("ca.key"));
        let _ = writeln!(s, "  max_certificate_hours: {}", super::config::DEFAULT_CERTIFICATE_HOURS);
        let _ = writeln!(s, "agents:");
        let _ = writeln!(s, "  signing_key: {}", self.path("agent-signing.key"));
        s
    }
}

fn valid_host(h: &str) -> bool {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Create the CA and the relay's certificate. Checks every file first, so a refusal writes
/// nothing; with `force`, existing files are replaced.
pub fn init(opts: &PkiInit) -> Result<Created, PkiInitError> {
    if opts.hosts.is_empty() {
        return Err(PkiInitError::NoHost);
    }
    if let Some(h) = opts.hosts.iter().find(|h| !valid_host(h)) {
        return Err(PkiInitError::BadHost(h.clone()));
    }
    if !(1..=MAX_DAYS).contains(&opts.days) {
        return Err(PkiInitError::BadDays(opts.days));
    }
    let dir = std::path::absolute(&opts.dir).map_err(|source| PkiInitError::Dir { path: opts.dir.clone(), source })?;
    if !opts.force {
        if let Some(f) = FILES.iter().map(|f| dir.join(f)).find(|p| p.symlink_metadata().is_ok()) {
            return Err(PkiInitError::Exists(f));
        }
    }
    create_dir(&dir)?;

    let days = i64::from(opts.days);
    let ca = Ca::generate("hoop-kube relay CA", CA_DAYS.max(days + 1))?;
    let hosts: Vec<&str> = opts.hosts.iter().map(String::as_str).collect();
    let serving = ca.server_cert(&hosts, days)?;
    let chain = format!("{}{}", serving.cert_pem, ca.cert_pem());
    let agent_key = crate::agent::token::SigningKey::generate().map_err(|e| PkiInitError::Pki(pki::PkiError::Verifier(format!("agent signing key: {e}"))))?.to_pem();
    let files = [("ca.crt", ca.cert_pem(), false), ("ca.key", &ca.key_pem(), true), ("relay.crt", &chain, false), ("relay.key", &serving.key_pem, true), ("agent-signing.key", &agent_key, true)];
    for (name, text, private) in files {
        write(&dir.join(name), text.as_bytes(), private, opts.force)?;
    }
    Ok(Created { fingerprint: pki::ca_fingerprint(ca.cert_pem())?, dir })
}

fn create_dir(dir: &Path) -> Result<(), PkiInitError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|source| PkiInitError::Dir { path: dir.to_path_buf(), source })
}

/// Write a file: 0600 when `private`, else 0644; without `force`, never over an existing file
/// (checked by the open itself, so a file that appeared meanwhile is not clobbered).
fn write(path: &Path, contents: &[u8], private: bool, force: bool) -> Result<(), PkiInitError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, if private { 0o600 } else { 0o644 });
    let mut f = o.open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => PkiInitError::Exists(path.to_path_buf()),
        _ => PkiInitError::Write { path: path.to_path_buf(), source },
    })?;
    // An existing file keeps its mode when truncated; set it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(if private { 0o600 } else { 0o644 })).map_err(|source| PkiInitError::Write { path: path.to_path_buf(), source })?;
    }
    f.write_all(contents).map_err(|source| PkiInitError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> PkiInit {
        PkiInit { dir: dir.join("pki"), hosts: vec!["relay.example.com".into(), "127.0.0.1".into()], days: 365, force: false }
    }

    #[test]
    fn creates_a_ca_that_signed_the_relay_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let created = init(&opts(tmp.path())).unwrap();
        let read = |f: &str| std::fs::read_to_string(created.dir.join(f)).unwrap();
        let ca = Ca::from_pem(&read("ca.crt"), &read("ca.key")).expect("ca.key is the key of ca.crt");
        assert_eq!(created.fingerprint, pki::ca_fingerprint(ca.cert_pem()).unwrap());
        assert_eq!(created.fingerprint.len(), 64);
        let chain = pki::certs_from_pem(&read("relay.crt"), "relay.crt").unwrap();
        assert_eq!(chain.len(), 2, "leaf + CA");
        assert_eq!(chain[1].as_ref(), pki::certs_from_pem(&read("ca.crt"), "ca").unwrap()[0].as_ref());
        pki::relay_server_config(&pki::Leaf { cert_pem: read("relay.crt"), key_pem: read("relay.key") }, &read("ca.crt")).expect("a usable serving config");
        let snippet = created.snippet();
        assert!(snippet.contains(&format!("ca_key: {}", created.dir.join("ca.key").display())), "{snippet}");
    }

    #[test]
    fn refuses_to_overwrite_and_checks_arguments() {
        let tmp = tempfile::tempdir().unwrap();
        let o = opts(tmp.path());
        let first = init(&o).unwrap();
        let e = init(&o).unwrap_err();
        assert!(matches!(&e, PkiInitError::Exists(p) if p.ends_with("ca.crt")), "{e}");
        assert!(e.to_string().contains("--force"));
        let again = init(&PkiInit { force: true, ..o.clone() }).unwrap();
        assert_ne!(first.fingerprint, again.fingerprint, "a new CA");
        assert!(matches!(init(&PkiInit { hosts: vec![], ..o.clone() }), Err(PkiInitError::NoHost)));
        assert!(matches!(init(&PkiInit { hosts: vec!["bad host".into()], ..o.clone() }), Err(PkiInitError::BadHost(_))));
        assert!(matches!(init(&PkiInit { days: 0, ..o.clone() }), Err(PkiInitError::BadDays(0))));
    }
}
