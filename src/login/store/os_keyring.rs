//! The OS keyring backend: the raw item store trait, the choice between the Secret Service and
//! the kernel keyring (or the platform keyring), and the probe that tells whether one works.

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};

use base64::Engine as _;

use super::{blocking, default_file_dir, new_gen_id, one_line, StoreError, SERVICE};

/// One flat namespace of items, the way a keyring sees it. Blocking.
pub(super) trait RawStore: Send + Sync {
    /// Short name for messages (`Secret Service`, `kernel keyring`).
    fn label(&self) -> &'static str;
    /// Longer description for `status`.
    fn description(&self) -> &'static str {
        self.label()
    }
    /// Largest item this store takes, in bytes.
    fn chunk_size(&self) -> usize;
    /// Creates or replaces an item.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Reads an item; `None` if absent.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes an item; absent is fine.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// The item [`probe_raw`] writes: outside every profile (profiles cannot start with `.`).
    fn probe_key(&self) -> String {
        format!(".probe/{}", new_gen_id())
    }
}

/// Which OS keyring this process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum OsKind {
    SecretService,
    Keyutils,
    /// The `keyring` crate's default store of this platform (Keychain, Credential Manager, …).
    Native,
}

struct OsStore {
    kind: OsKind,
    builder: Box<keyring::CredentialBuilder>,
    label: &'static str,
    description: &'static str,
    chunk: usize,
    /// Store items as base64 text (the Secret Service items are declared `text/plain`, and some
    /// implementations keep them as strings).
    text: bool,
}

fn os_store_of(kind: OsKind) -> Result<OsStore, String> {
    match kind {
        #[cfg(target_os = "linux")]
        OsKind::SecretService => Ok(OsStore {
            kind,
            builder: keyring::secret_service::default_credential_builder(),
            label: "Secret Service",
            description: "Secret Service (D-Bus org.freedesktop.secrets)",
            chunk: 64 * 1024,
            text: true,
        }),
        #[cfg(target_os = "linux")]
        OsKind::Keyutils => Ok(OsStore {
            kind,
            builder: keyring::keyutils::default_credential_builder(),
            label: "kernel keyring",
            description: "kernel keyring (keyutils: session keyring, linked into the user's persistent keyring)",
            // keyrings(7): a "user" key's payload is at most 32767 bytes.
            chunk: 32767,
            text: false,
        }),
        _ => {
            use keyring::credential::CredentialPersistence;
            let builder = keyring::default::default_credential_builder();
            if matches!(
                builder.persistence(),
                CredentialPersistence::EntryOnly | CredentialPersistence::ProcessOnly
            ) {
                return Err(format!(
                    "this build of hoop-kube has no OS keyring for {}",
                    std::env::consts::OS
                ));
            }
            let (label, description, chunk) = if cfg!(target_os = "windows") {
                // CRED_MAX_CREDENTIAL_BLOB_SIZE
                ("Windows Credential Manager", "Windows Credential Manager", 2560)
            } else if cfg!(target_os = "macos") {
                ("macOS Keychain", "macOS Keychain", 16 * 1024)
            } else {
                ("OS keyring", "OS keyring", 16 * 1024)
            };
            Ok(OsStore {
                kind: OsKind::Native,
                builder,
                label,
                description,
                chunk,
                text: false,
            })
        }
    }
}

impl OsStore {
    fn entry(&self, op: &'static str, key: &str) -> Result<keyring::Entry, StoreError> {
        if self.kind == OsKind::Keyutils {
            // A thread without a session keyring of its own (no pam_keyinit: containers, CI
            // jobs, many ssh logins) joins a new one the first time the crate asks for the
            // persistent keyring, which building a credential does; a credential built before
            // that holds the user-session keyring, and the kernel then refuses (EACCES) to link
            // a key added there into the persistent keyring. Keyrings are per thread, and the
            // blocking pool has many, so build a throwaway credential first, every time (two
            // system calls): the real one then holds the joined session keyring, with the user's
            // persistent keyring linked in, where other threads and processes find the keys.
            let _ = self.builder.build(None, SERVICE, key);
        }
        let credential = self
            .builder
            .build(None, SERVICE, key)
            .map_err(|e| self.error(op, e, 0))?;
        Ok(keyring::Entry::new_with_credential(credential))
    }

    fn error(&self, op: &'static str, e: keyring::Error, len: usize) -> StoreError {
        let detail = match e {
            // The keyring crate maps the kernel's EACCES to NoEntry; on a write or while opening
            // the session keyring it can only mean that.
            keyring::Error::NoEntry if self.kind == OsKind::Keyutils => {
                "permission denied".to_string()
            }
            keyring::Error::Ambiguous(items) => {
                format!(
                    "{} items match one entry (written concurrently?)",
                    items.len()
                )
            }
            keyring::Error::BadEncoding(_) => "unexpected encoding".to_string(),
            keyring::Error::PlatformFailure(inner) if self.kind == OsKind::Keyutils => {
                let text = inner.to_string();
                if text.contains("QuotaExceeded") {
                    return StoreError::KeyringQuota { len };
                }
                text
            }
            other => other.to_string(),
        };
        StoreError::Keyring {
            keyring: self.label,
            op,
            detail: one_line(&detail),
        }
    }
}

impl RawStore for OsStore {
    fn label(&self) -> &'static str {
        self.label
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn chunk_size(&self) -> usize {
        self.chunk
    }

    fn probe_key(&self) -> String {
        match self.kind {
            OsKind::Keyutils => ".probe/write-test".to_string(),
            _ => format!(".probe/{}", new_gen_id()),
        }
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let entry = self.entry("write", key)?;
        let result = if self.text {
            entry.set_secret(
                base64::engine::general_purpose::STANDARD
                    .encode(value)
                    .as_bytes(),
            )
        } else {
            entry.set_secret(value)
        };
        result.map_err(|e| self.error("write", e, value.len()))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let entry = match self.entry("read", key) {
            Ok(entry) => entry,
            // Without access to the session keyring there is nothing of ours to read.
            Err(_) if self.kind == OsKind::Keyutils => return Ok(None),
            Err(e) => return Err(e),
        };
        match entry.get_secret() {
            Ok(bytes) if self.text => base64::engine::general_purpose::STANDARD
                .decode(&bytes)
                .map(Some)
                .map_err(|_| StoreError::Keyring {
                    keyring: self.label,
                    op: "read",
                    detail: format!("item {key} is not base64 (not written by hoop-kube?)"),
                }),
            Ok(bytes) => Ok(Some(bytes)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(self.error("read", e, 0)),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let entry = match self.entry("delete", key) {
            Ok(entry) => entry,
            Err(_) if self.kind == OsKind::Keyutils => return Ok(()),
            Err(e) => return Err(e),
        };
        match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            // Two items for one entry (two processes created it at once): delete them all.
            Err(keyring::Error::Ambiguous(items)) => {
                for item in items {
                    match item.delete_credential() {
                        Ok(()) | Err(keyring::Error::NoEntry) => {}
                        Err(e) => return Err(self.error("delete", e, 0)),
                    }
                }
                Ok(())
            }
            Err(e) => Err(self.error("delete", e, 0)),
        }
    }
}

/// The OS keyring this process uses, chosen on first use.
static OS_CHOICE: StdMutex<Option<OsKind>> = StdMutex::new(None);

pub(super) async fn os_store() -> Result<Arc<dyn RawStore>, StoreError> {
    blocking("OS keyring", || {
        let kind = choose_os_keyring()?;
        let store = os_store_of(kind).map_err(|why| no_usable(vec![why]))?;
        Ok(Arc::new(store) as Arc<dyn RawStore>)
    })
    .await
}

fn choose_os_keyring() -> Result<OsKind, StoreError> {
    let mut choice = OS_CHOICE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(kind) = *choice {
        return Ok(kind);
    }
    let kind = choose_uncached()?;
    *choice = Some(kind);
    Ok(kind)
}

/// The kernel keyring, without the write probe, when no D-Bus session bus is there (so the choice
/// below could only be the kernel keyring); `None` otherwise. For the plugin's cached path, which
/// only reads and falls back to the full path on anything but a hit.
#[cfg(target_os = "linux")]
pub(super) fn keyutils_without_bus() -> Option<Arc<dyn RawStore>> {
    if session_bus().is_ok() {
        return None;
    }
    os_store_of(OsKind::Keyutils).ok().map(|s| Arc::new(s) as Arc<dyn RawStore>)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn keyutils_without_bus() -> Option<Arc<dyn RawStore>> {
    None
}

#[cfg(target_os = "linux")]
fn choose_uncached() -> Result<OsKind, StoreError> {
    let mut reasons = Vec::new();
    match session_bus() {
        Err(why) => reasons.push(format!("Secret Service: {why}")),
        Ok(()) => {
            let store = os_store_of(OsKind::SecretService).map_err(|why| no_usable(vec![why]))?;
            // A lookup of an entry that never exists: answers NoEntry without an unlock prompt
            // when the service is there, fails when nothing provides org.freedesktop.secrets.
            match store.get(".probe/lookup") {
                Ok(_) => return Ok(OsKind::SecretService),
                Err(e) => reasons.push(format!("Secret Service: {}", short_reason(&e))),
            }
        }
    }
    let store = os_store_of(OsKind::Keyutils).map_err(|why| no_usable(vec![why]))?;
    // Reads cannot tell whether writes work: the keyring crate reports the kernel's EACCES as
    // "no entry". Write.
    match probe_raw(&store) {
        Ok(()) => Ok(OsKind::Keyutils),
        Err(e) => {
            reasons.push(format!("kernel keyring: {}", short_reason(&e)));
            Err(no_usable(reasons))
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn choose_uncached() -> Result<OsKind, StoreError> {
    Ok(OsKind::Native)
}

/// Whether a D-Bus session bus can be reached, the way the D-Bus client looks for it.
#[cfg(target_os = "linux")]
fn session_bus() -> Result<(), &'static str> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty()) {
        return Ok(());
    }
    let runtime_dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            use std::os::unix::fs::MetadataExt as _;
            match std::fs::metadata("/proc/self") {
                Ok(meta) => PathBuf::from(format!("/run/user/{}", meta.uid())),
                Err(_) => return Err("no D-Bus session bus"),
            }
        }
    };
    if runtime_dir.join("bus").exists() {
        Ok(())
    } else {
        Err("no D-Bus session bus")
    }
}

/// Writes, reads back and deletes a test item outside every profile's namespace.
///
/// The kernel keyring uses one fixed test key per user: when the kernel refuses to link a new
/// key into the persistent keyring, the write fails *after* the key was added, and the key can
/// then be neither found nor deleted through the `keyring` crate; a fixed name makes the next
/// probe replace it instead of piling up more. Concurrent probes may then see each other's
/// value, so any probe value counts, and a value deleted by another probe is retried.
pub(super) fn probe_raw(raw: &dyn RawStore) -> Result<(), StoreError> {
    const PREFIX: &[u8] = b"hoop-kube probe ";
    let key = raw.probe_key();
    let mut value = PREFIX.to_vec();
    value.extend_from_slice(new_gen_id().as_bytes());
    let mut attempts = 0;
    loop {
        attempts += 1;
        if let Err(e) = raw.set(&key, &value) {
            let _ = raw.delete(&key);
            return Err(e);
        }
        let back = raw.get(&key);
        let deleted = raw.delete(&key);
        match back? {
            Some(v) if v.starts_with(PREFIX) && v.len() == value.len() => return deleted,
            Some(_) => {
                return Err(StoreError::Keyring {
                    keyring: raw.label(),
                    op: "read",
                    detail: "a test item read back different".into(),
                })
            }
            None if attempts < 3 => continue,
            None => {
                return Err(StoreError::Keyring {
                    keyring: raw.label(),
                    op: "read",
                    detail: "a test item vanished right after it was written".into(),
                })
            }
        }
    }
}

pub(super) fn short_reason(e: &StoreError) -> String {
    match e {
        StoreError::Keyring { detail, .. } => detail.clone(),
        other => one_line(&other.to_string()),
    }
}

pub(super) fn no_usable(reasons: Vec<String>) -> StoreError {
    StoreError::NoUsableKeyring {
        reasons: one_line(&reasons.join("; ")),
        file_dir: display_file_dir(),
    }
}

/// The default file directory with the home directory shown as `~`.
fn display_file_dir() -> String {
    let Ok(dir) = default_file_dir() else {
        return "~/.local/state/hoop-kube/secrets".to_string();
    };
    if let Some(home) = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()) {
        if let Ok(rest) = dir.strip_prefix(&home) {
            return format!("~/{}", rest.display());
        }
    }
    dir.display().to_string()
}
