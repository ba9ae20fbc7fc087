//! The secret store of `hoop-kube login`: where the OIDC tokens, the refresh token and the
//! private key of the mTLS client certificate live between commands.
//!
//! # Why it exists
//!
//! `hoop-kube credential` runs once per `kubectl` process and must find the tokens that
//! `hoop-kube login` obtained, refresh them, and hand them out; the forwarder needs the client
//! key. None of that may sit in a plain file that other users, backups or a careless `cat` can
//! read, so by default the secrets go to the operating system's keyring, and a `0600` file is the
//! explicit, opt-in fallback (`--token-store file`) for machines without a usable keyring.
//!
//! # Backends
//!
//! * [`Backend::Keyring`] — the OS keyring, through the `keyring` crate. On Linux this module
//!   chooses, once per process: the **Secret Service** (D-Bus `org.freedesktop.secrets`: GNOME
//!   Keyring, KWallet, KeePassXC) when a D-Bus session bus is reachable and the service answers a
//!   lookup, otherwise the **kernel keyring** (keyutils: the key is added to the session keyring
//!   and linked into the user's persistent keyring, so other sessions of the same user find it
//!   until the persistent keyring expires or the machine reboots) when a test write succeeds. If
//!   neither works, every operation fails with [`StoreError::NoUsableKeyring`], one line that names
//!   the fix. The choice is not remembered across processes: a process that sees a session bus
//!   uses the Secret Service and one that does not uses the kernel keyring, and neither sees the
//!   other's secrets. The kernel keyring forgets at reboot, and when the persistent keyring has
//!   not been touched for `/proc/sys/kernel/keys/persistent_keyring_expiry` seconds (3 days by
//!   default); the per-user quota (`/proc/sys/kernel/keys/maxbytes`, 20000 bytes by default for
//!   users other than root) bounds what it can hold ([`StoreError::KeyringQuota`]). A process
//!   without a session keyring of its own (no `pam_keyinit`: containers, CI jobs, many ssh
//!   logins) is made to join a fresh one, with the persistent keyring linked in, so such
//!   processes still share the user's secrets.
//!
//!   On macOS and Windows the `keyring` crate's platform store is used (Keychain, Credential
//!   Manager), provided the crate was built with its `apple-native` / `windows-native` feature;
//!   a build without one is refused rather than silently keeping secrets in process memory.
//! * [`Backend::File`] — `$XDG_STATE_HOME/hoop-kube/secrets/<profile>.json` (by default
//!   `~/.local/state/hoop-kube/secrets`), directory `0700`, file `0600`, replaced atomically
//!   (temporary file, `fsync`, `rename`).
//!
//! # Layout in the keyring
//!
//! Every entry has the service [`SERVICE`] and a user string that starts with the profile, so
//! two profiles never collide: `<profile>/<name>` holds a small *manifest* (value length, SHA-256
//! of the value, and either the value itself when it fits, or the generation id and count of its
//! chunks); `<profile>/<name>#<gen>.<i>` hold the chunks; `<profile>/.index` lists the names of the
//! profile so that [`SecretStore::delete_all`] can forget everything. Values larger than one
//! keyring item accepts are split, never refused: the kernel keyring takes at most 32767 bytes per
//! `user` key (and a per-user byte quota, `/proc/sys/kernel/keys/maxbytes`, applies to the total),
//! Windows 2560 bytes, and Secret Service items are kept at 64 KiB to stay clear of any
//! implementation's message limits (and hold base64 text: the items are declared `text/plain`,
//! and some implementations keep them as strings). Replacing a value writes the new chunks under a fresh
//! generation id, then the manifest, then deletes the old chunks, so a reader sees the old or the
//! new value, never a mixture; generations that a crash may have left behind are recorded in the
//! manifest before their chunks are written and are swept by the next write or delete.
//!
//! # What it trusts
//!
//! The OS keyring (and, for the file backend, the file system permissions of the current user).
//! It does not trust what it reads back: every value is checked against the length and SHA-256
//! in its manifest, and a missing or mismatching chunk is an error, never a truncated secret.
//!
//! # What it refuses
//!
//! Profile and secret names outside `[A-Za-z0-9._-]` (they become parts of keyring names and file
//! names); a secrets file or directory that other users can access (`chmod 600` / `chmod 700`),
//! a secrets file that is a symbolic link or not a regular file; an OS keyring that is only an
//! in-memory mock. Secret values never appear in `Debug` output, error messages or logs.
//!
//! # Concurrency
//!
//! The keyring calls are blocking (and the Secret Service client panics on a tokio worker
//! thread), so every operation runs in [`tokio::task::spawn_blocking`], with a time limit.
//! Writes within one process are serialized. Writers in *different* processes are not: the caller
//! serializes them (the credential refresh holds its file lock across read, refresh and write). A
//! reader racing a writer in another process retries when the manifest changed under it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

/// The keyring service name under which every hoop-kube entry is stored.
pub const SERVICE: &str = "hoop-kube";

/// Largest value [`SecretStore::put`] accepts (4 MiB); tokens and keys are a few KiB.
pub const MAX_VALUE_LEN: usize = 4 << 20;

/// Longest profile or secret name.
const MAX_NAME_LEN: usize = 64;
/// Most chunks a manifest may name (guards against a forged manifest making us loop).
const MAX_CHUNKS: u32 = 4096;
/// Most stale generations a manifest remembers for later cleanup.
const MAX_STALE: usize = 16;
/// Room left in an inline manifest so that recording one more generation still fits one item.
const INLINE_SLACK: usize = 256;
/// How long one keyring operation may take (an unlock prompt can wait for a human).
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest secrets file we read.
const MAX_FILE_LEN: u64 = 64 << 20;

/// Where a profile's secrets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The OS keyring. On Linux the Secret Service when a D-Bus session bus is reachable and the
    /// service answers, else the kernel keyring (keyutils) when a test write succeeds; the
    /// Keychain on macOS; the Credential Manager on Windows. The choice is made once per process.
    Keyring,
    /// A `0600` JSON file, `$XDG_STATE_HOME/hoop-kube/secrets/<profile>.json`, in a `0700`
    /// directory.
    File,
}

impl Backend {
    /// The spelling used on the command line (`--token-store keyring|file`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Keyring => "keyring",
            Backend::File => "file",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = StoreError;

    /// Parses `keyring` or `file`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keyring" => Ok(Backend::Keyring),
            "file" => Ok(Backend::File),
            other => Err(StoreError::UnknownBackend(other.to_string())),
        }
    }
}

/// Why a secret could not be stored, read or deleted. No variant ever carries a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The profile name is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid profile name {profile:?}: {reason}")]
    InvalidProfile {
        /// The name given.
        profile: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The secret name is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid secret name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A token store other than `keyring` or `file` was asked for.
    #[error("unknown token store {0:?}; use `keyring` or `file`")]
    UnknownBackend(String),
    /// No OS keyring can keep secrets in this session; the message is one line naming the fix.
    #[error(
        "no usable OS keyring ({reasons}); run with --token-store file to keep secrets in a 0600 \
         file under {file_dir}"
    )]
    NoUsableKeyring {
        /// Why each keyring that was tried is unusable, `; `-separated.
        reasons: String,
        /// Where the file backend would keep the secrets (home shown as `~`).
        file_dir: String,
    },
    /// The OS keyring failed an operation for a reason other than a missing entry.
    #[error("{keyring}: {op} failed: {detail}")]
    Keyring {
        /// Which keyring (`Secret Service`, `kernel keyring`, …).
        keyring: &'static str,
        /// What was being done (`write`, `read`, `delete`, `open`).
        op: &'static str,
        /// The keyring's own error, on one line.
        detail: String,
    },
    /// The kernel keyring's per-user quota would be exceeded.
    #[error(
        "kernel keyring quota exceeded writing {len} bytes (per-user limits in \
         /proc/sys/kernel/keys/maxbytes and maxkeys); raise them or run with --token-store file"
    )]
    KeyringQuota {
        /// Size of the item that did not fit.
        len: usize,
    },
    /// The OS keyring did not answer in time (for example an unlock prompt nobody answered).
    #[error("{keyring} did not answer within {secs} s (waiting for an unlock prompt?)")]
    Timeout {
        /// Which keyring.
        keyring: &'static str,
        /// The limit that passed.
        secs: u64,
    },
    /// The value is larger than [`MAX_VALUE_LEN`].
    #[error("secret {name:?} is {len} bytes; the store keeps at most {max}")]
    TooLarge {
        /// The secret's name.
        name: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A chunk named by the manifest is missing: the stored value is incomplete.
    #[error(
        "secret {name:?} in the {location} is incomplete (chunk {index} of {count} is missing); \
         run `hoop-kube logout` and log in again"
    )]
    ChunkMissing {
        /// The secret's name.
        name: String,
        /// Which store.
        location: &'static str,
        /// The first missing chunk.
        index: u32,
        /// How many chunks the manifest names.
        count: u32,
    },
    /// A stored value or manifest does not parse or does not match its length and SHA-256.
    #[error("secret {name:?} in {location} is corrupt ({detail}); run `hoop-kube logout` and log in again")]
    Corrupt {
        /// The secret's name (`.index` for the profile's index).
        name: String,
        /// Which store (or file).
        location: String,
        /// What does not match (never the value).
        detail: String,
    },
    /// The secrets file or its directory is accessible to other users.
    #[error(
        "refusing to use {}: mode {mode:04o} gives other users access; run `chmod {fix} {}`",
        .path.display(), .path.display()
    )]
    PermissionsTooOpen {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode to set: `600` for the file, `700` for the directory.
        fix: &'static str,
    },
    /// The secrets file is a symbolic link or not a regular file.
    #[error("refusing to use {}: {reason}", .path.display())]
    Insecure {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Reading or writing the secrets file or directory failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No home directory is known, so there is no default place for the secrets file.
    #[error("cannot locate the secrets directory: no home directory (set HOME or XDG_STATE_HOME)")]
    NoHome,
    /// The blocking task that talks to the keyring or file system panicked or was cancelled.
    #[error("secret store task failed: {0}")]
    Task(String),
}

/// The secrets of one profile in one backend.
///
/// Cheap to create; the OS keyring is chosen on first use. All operations are `async` and run
/// the blocking keyring or file calls on tokio's blocking pool, so they need a tokio runtime.
pub struct SecretStore {
    backend: Backend,
    profile: String,
    inner: Inner,
}

enum Inner {
    /// The OS keyring, chosen lazily (process-wide).
    Os,
    /// The file backend, rooted at this directory.
    File { dir: PathBuf },
    /// A store given by a unit test.
    #[cfg(test)]
    Raw(Arc<dyn RawStore>),
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SecretStore");
        d.field("backend", &self.backend)
            .field("profile", &self.profile);
        if let Inner::File { dir } = &self.inner {
            d.field("dir", dir);
        }
        d.finish_non_exhaustive()
    }
}

/// All writes of this process go one at a time (the index is read-modified-written).
static WRITE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl SecretStore {
    /// A store for `profile` in `backend`. Checks the profile name (1–64 characters of
    /// `[A-Za-z0-9._-]`, starting with a letter or digit); touches neither keyring nor disk.
    ///
    /// For [`Backend::File`] the directory is `$XDG_STATE_HOME/hoop-kube/secrets` (see
    /// [`default_file_dir`]); it is created, `0700`, on the first write.
    pub fn new(profile: &str, backend: Backend) -> Result<Self, StoreError> {
        check_profile(profile)?;
        let inner = match backend {
            Backend::Keyring => Inner::Os,
            Backend::File => Inner::File {
                dir: default_file_dir()?,
            },
        };
        Ok(SecretStore {
            backend,
            profile: profile.to_string(),
            inner,
        })
    }

    /// A [`Backend::File`] store that keeps `<profile>.json` in `dir` instead of the default
    /// directory (for tests, and for users who point the store elsewhere). The same permission
    /// rules apply: `dir` must not be accessible to other users.
    pub fn new_file_in(profile: &str, dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        check_profile(profile)?;
        Ok(SecretStore {
            backend: Backend::File,
            profile: profile.to_string(),
            inner: Inner::File { dir: dir.into() },
        })
    }

    #[cfg(test)]
    fn with_raw(profile: &str, raw: Arc<dyn RawStore>) -> Result<Self, StoreError> {
        check_profile(profile)?;
        Ok(SecretStore {
            backend: Backend::Keyring,
            profile: profile.to_string(),
            inner: Inner::Raw(raw),
        })
    }

    /// The backend this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The profile whose secrets this store holds.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Where the secrets are, for `hoop-kube status`: `Secret Service (…)`, `kernel keyring
    /// (…)`, the platform keyring's name, or `file <path>`. For the OS keyring this makes the
    /// per-process choice if it was not made yet, and fails like any operation would.
    pub async fn describe(&self) -> Result<String, StoreError> {
        match &self.inner {
            Inner::File { dir } => Ok(format!("file {}", file_path(dir, &self.profile).display())),
            _ => Ok(self.raw().await?.description().to_string()),
        }
    }

    /// Stores `value` under `name`, replacing any previous value. Values larger than one keyring
    /// item are split into chunks; the previous value stays readable until the new one is
    /// complete.
    pub async fn put(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge {
                name: name.to_string(),
                len: value.len(),
                max: MAX_VALUE_LEN,
            });
        }
        let _guard = WRITE_LOCK.lock().await;
        let profile = self.profile.clone();
        let name = name.to_string();
        let value = value.to_vec();
        match &self.inner {
            Inner::File { dir } => {
                let dir = dir.clone();
                blocking("secrets file", move || {
                    let mut map = file_read(&dir, &profile)?;
                    map.insert(name, value);
                    file_write(&dir, &profile, &map)
                })
                .await
            }
            _ => {
                let raw = self.raw().await?;
                let label = raw.label();
                blocking(label, move || {
                    let raw = raw.as_ref();
                    let mut names = read_index(raw, &profile)?;
                    if names.insert(name.clone()) {
                        write_index(raw, &profile, &names)?;
                    }
                    put_slot(raw, &slot_key(&profile, &name), &name, &value)
                })
                .await
            }
        }
    }

    /// The value stored under `name`, or `None` if there is none. A value whose chunks are
    /// missing or do not match the manifest's length and SHA-256 is an error.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_name(name)?;
        let profile = self.profile.clone();
        let name = name.to_string();
        match &self.inner {
            Inner::File { dir } => {
                let dir = dir.clone();
                blocking("secrets file", move || {
                    Ok(file_read(&dir, &profile)?.remove(&name))
                })
                .await
            }
            _ => {
                let raw = self.raw().await?;
                let label = raw.label();
                blocking(label, move || {
                    get_slot(raw.as_ref(), &slot_key(&profile, &name), &name)
                })
                .await
            }
        }
    }

    /// Forgets `name` (all its chunks too). Deleting what is not there succeeds.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        let _guard = WRITE_LOCK.lock().await;
        let profile = self.profile.clone();
        let name = name.to_string();
        match &self.inner {
            Inner::File { dir } => {
                let dir = dir.clone();
                blocking("secrets file", move || {
                    let mut map = file_read(&dir, &profile)?;
                    if map.remove(&name).is_some() {
                        file_write(&dir, &profile, &map)?;
                    }
                    Ok(())
                })
                .await
            }
            _ => {
                let raw = self.raw().await?;
                let label = raw.label();
                blocking(label, move || {
                    let raw = raw.as_ref();
                    delete_slot(raw, &slot_key(&profile, &name), &name)?;
                    let mut names = read_index(raw, &profile)?;
                    if names.remove(&name) {
                        write_index(raw, &profile, &names)?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    /// Forgets every secret of this profile (`hoop-kube logout`); other profiles are untouched.
    ///
    /// If the profile's index in the keyring is unreadable, the index is deleted and
    /// [`StoreError::Corrupt`] is returned, since entries it listed may remain.
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let _guard = WRITE_LOCK.lock().await;
        let profile = self.profile.clone();
        match &self.inner {
            Inner::File { dir } => {
                let dir = dir.clone();
                blocking("secrets file", move || file_delete_all(&dir, &profile)).await
            }
            _ => {
                let raw = self.raw().await?;
                let label = raw.label();
                blocking(label, move || delete_all_slots(raw.as_ref(), &profile)).await
            }
        }
    }

    /// Whether `backend` can keep secrets here: writes, reads back and deletes a test entry
    /// (outside every profile's namespace). For [`Backend::Keyring`] a failure is
    /// [`StoreError::NoUsableKeyring`], one line that names `--token-store file` as the fix.
    pub async fn probe(backend: Backend) -> Result<(), StoreError> {
        match backend {
            Backend::File => {
                let dir = default_file_dir()?;
                blocking("secrets file", move || file_probe(&dir)).await
            }
            Backend::Keyring => {
                let raw = os_store().await?;
                let label = raw.label();
                blocking(label, move || {
                    probe_raw(raw.as_ref()).map_err(|e| {
                        no_usable(vec![format!("{}: {}", raw.label(), short_reason(&e))])
                    })
                })
                .await
            }
        }
    }

    async fn raw(&self) -> Result<Arc<dyn RawStore>, StoreError> {
        match &self.inner {
            #[cfg(test)]
            Inner::Raw(raw) => Ok(raw.clone()),
            _ => os_store().await,
        }
    }
}

/// The default directory of the file backend: `$XDG_STATE_HOME/hoop-kube/secrets` on Linux
/// (`~/.local/state/hoop-kube/secrets` when `XDG_STATE_HOME` is unset), the local data directory
/// elsewhere.
pub fn default_file_dir() -> Result<PathBuf, StoreError> {
    let dirs = directories::ProjectDirs::from("", "", SERVICE).ok_or(StoreError::NoHome)?;
    let base = dirs
        .state_dir()
        .unwrap_or_else(|| dirs.data_local_dir())
        .to_path_buf();
    Ok(base.join("secrets"))
}

// ---------------------------------------------------------------------------------------------
// Names

fn check_ident(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("it is empty");
    }
    if s.len() > MAX_NAME_LEN {
        return Err("it is longer than 64 characters");
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("it must start with a letter or digit");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn check_profile(profile: &str) -> Result<(), StoreError> {
    check_ident(profile).map_err(|reason| StoreError::InvalidProfile {
        profile: profile.to_string(),
        reason,
    })
}

fn check_name(name: &str) -> Result<(), StoreError> {
    check_ident(name).map_err(|reason| StoreError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// Keyring user of a secret's manifest. Names cannot contain `/` or `#` nor start with `.`, so
/// the keys of different profiles, names, chunks and the index never collide.
fn slot_key(profile: &str, name: &str) -> String {
    format!("{profile}/{name}")
}

fn index_key(profile: &str) -> String {
    format!("{profile}/.index")
}

fn chunk_key(slot: &str, gen: &str, index: u32) -> String {
    format!("{slot}#{gen}.{index}")
}

const INDEX_NAME: &str = ".index";

// ---------------------------------------------------------------------------------------------
// Running blocking work

async fn blocking<T, F>(what: &'static str, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(f);
    match tokio::time::timeout(OP_TIMEOUT, task).await {
        Err(_) => Err(StoreError::Timeout {
            keyring: what,
            secs: OP_TIMEOUT.as_secs(),
        }),
        Ok(Err(join)) => Err(StoreError::Task(join.to_string())),
        Ok(Ok(result)) => result,
    }
}

// ---------------------------------------------------------------------------------------------
// Raw item stores: the OS keyrings (and an in-memory one in the unit tests)

/// One flat namespace of items, the way a keyring sees it. Blocking.
trait RawStore: Send + Sync {
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

async fn os_store() -> Result<Arc<dyn RawStore>, StoreError> {
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
fn probe_raw(raw: &dyn RawStore) -> Result<(), StoreError> {
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

fn short_reason(e: &StoreError) -> String {
    match e {
        StoreError::Keyring { detail, .. } => detail.clone(),
        other => one_line(&other.to_string()),
    }
}

fn no_usable(reasons: Vec<String>) -> StoreError {
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

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn new_gen_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    h.update(format!("{:?}", std::thread::current().id()).as_bytes());
    hex(&h.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn sha256_hex(value: &[u8]) -> String {
    hex(&Sha256::digest(value))
}

// ---------------------------------------------------------------------------------------------
// Manifests and chunks

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// The value follows the header in the same item.
    Inline,
    /// The value is in `gen.count` chunk items.
    Chunked,
    /// No value (a delete or first write in progress); only `stale` matters.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Gen {
    id: String,
    count: u32,
}

/// The header of a slot's main item. Encoded as one JSON line, followed (for `inline`) by the
/// value's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    v: u32,
    kind: Kind,
    #[serde(default)]
    len: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gen: Option<Gen>,
    /// Chunk generations that may still exist and must be deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    stale: Vec<Gen>,
}

impl Manifest {
    fn absent(stale: Vec<Gen>) -> Self {
        Manifest {
            v: 1,
            kind: Kind::Absent,
            len: 0,
            sha256: String::new(),
            gen: None,
            stale,
        }
    }

    fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("a manifest always serializes");
        out.push(b'\n');
        out.extend_from_slice(payload);
        out
    }

    /// All chunk generations this manifest knows of (current first).
    fn generations(&self) -> Vec<Gen> {
        self.gen.iter().chain(self.stale.iter()).cloned().collect()
    }

    fn validate(&self) -> Result<(), String> {
        fn gen_ok(g: &Gen) -> bool {
            g.id.len() == 16
                && g.id.bytes().all(|b| b.is_ascii_hexdigit())
                && g.count >= 1
                && g.count <= MAX_CHUNKS
        }
        if self.v != 1 {
            return Err(format!("unknown manifest version {}", self.v));
        }
        if self.len > MAX_VALUE_LEN as u64 {
            return Err(format!("manifest claims {} bytes", self.len));
        }
        if self.stale.len() > MAX_STALE || !self.stale.iter().all(gen_ok) {
            return Err("bad stale generation list".into());
        }
        let sha_ok = self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        match self.kind {
            Kind::Absent if self.gen.is_none() => Ok(()),
            Kind::Inline if self.gen.is_none() && sha_ok => Ok(()),
            Kind::Chunked if sha_ok && self.gen.as_ref().is_some_and(gen_ok) => Ok(()),
            _ => Err("inconsistent manifest".into()),
        }
    }
}

fn corrupt(raw: &dyn RawStore, name: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        name: name.to_string(),
        location: format!("the {}", raw.label()),
        detail: detail.into(),
    }
}

/// Splits and checks a slot's main item into its manifest and inline payload.
fn decode_manifest(mut item: Vec<u8>) -> Result<(Manifest, Vec<u8>), String> {
    let Some(newline) = item.iter().position(|&b| b == b'\n') else {
        return Err("manifest has no header line".into());
    };
    let manifest: Manifest = serde_json::from_slice(&item[..newline])
        .map_err(|_| "manifest does not parse".to_string())?;
    manifest.validate()?;
    let payload = item.split_off(newline + 1);
    if manifest.kind != Kind::Inline && !payload.is_empty() {
        return Err("unexpected bytes after the manifest".into());
    }
    Ok((manifest, payload))
}

/// Reads and checks a slot's manifest; `Ok(None)` if the slot does not exist.
fn read_manifest(
    raw: &dyn RawStore,
    key: &str,
    name: &str,
) -> Result<Option<(Manifest, Vec<u8>)>, StoreError> {
    let Some(item) = raw.get(key)? else {
        return Ok(None);
    };
    decode_manifest(item)
        .map(Some)
        .map_err(|why| corrupt(raw, name, why))
}

fn verify(raw: &dyn RawStore, name: &str, m: &Manifest, value: &[u8]) -> Result<(), StoreError> {
    if value.len() as u64 != m.len {
        return Err(corrupt(
            raw,
            name,
            format!("{} bytes where the manifest says {}", value.len(), m.len),
        ));
    }
    if sha256_hex(value) != m.sha256 {
        return Err(corrupt(raw, name, "SHA-256 does not match the manifest"));
    }
    Ok(())
}

fn cap_stale(mut stale: Vec<Gen>) -> Vec<Gen> {
    if stale.len() > MAX_STALE {
        let excess = stale.len() - MAX_STALE;
        tracing::warn!(
            forgotten = excess,
            "secret store: too many leftover chunk generations; forgetting the oldest"
        );
        stale.drain(..excess);
    }
    stale
}

/// Stores `value` in the slot `key` (see the module docs for the protocol).
fn put_slot(raw: &dyn RawStore, key: &str, name: &str, value: &[u8]) -> Result<(), StoreError> {
    let old = match read_manifest(raw, key, name) {
        Ok(old) => old,
        Err(StoreError::Corrupt { .. }) => {
            // Overwriting is the repair; chunks the unreadable manifest named cannot be found.
            tracing::warn!(
                secret = name,
                "secret store: replacing an unreadable manifest"
            );
            None
        }
        Err(e) => return Err(e),
    };
    let stale = cap_stale(
        old.as_ref()
            .map(|(m, _)| m.generations())
            .unwrap_or_default(),
    );
    let chunk = raw.chunk_size();
    let sha256 = sha256_hex(value);
    let inline = Manifest {
        v: 1,
        kind: Kind::Inline,
        len: value.len() as u64,
        sha256: sha256.clone(),
        gen: None,
        stale: stale.clone(),
    }
    .encode(value);
    let written = if inline.len() + INLINE_SLACK.min(chunk / 4) <= chunk {
        raw.set(key, &inline)?;
        inline
    } else {
        let count = value.len().div_ceil(chunk);
        if count > MAX_CHUNKS as usize {
            return Err(StoreError::TooLarge {
                name: name.to_string(),
                len: value.len(),
                max: MAX_CHUNKS as usize * chunk,
            });
        }
        let gen = Gen {
            id: new_gen_id(),
            count: count as u32,
        };
        // 1. Record the new generation before writing it, so that a crash leaves a trace.
        let intent = match &old {
            Some((m, payload)) => {
                let mut m = m.clone();
                m.stale = cap_stale(m.stale.iter().cloned().chain([gen.clone()]).collect());
                Some(m.encode(payload)).filter(|e| e.len() <= chunk)
            }
            None => None,
        }
        .unwrap_or_else(|| {
            let mut pending = stale.clone();
            pending.push(gen.clone());
            Manifest::absent(cap_stale(pending)).encode(&[])
        });
        raw.set(key, &intent)?;
        // 2. The chunks.
        for (i, part) in value.chunks(chunk).enumerate() {
            if let Err(e) = raw.set(&chunk_key(key, &gen.id, i as u32), part) {
                for j in 0..=i {
                    let _ = raw.delete(&chunk_key(key, &gen.id, j as u32));
                }
                return Err(e);
            }
        }
        // 3. The manifest that points at them.
        let manifest = Manifest {
            v: 1,
            kind: Kind::Chunked,
            len: value.len() as u64,
            sha256,
            gen: Some(gen),
            stale,
        }
        .encode(&[]);
        raw.set(key, &manifest)?;
        manifest
    };
    // 4. Delete the old chunks.
    sweep(raw, key, name, &written);
    Ok(())
}

/// Deletes the stale generations listed by the manifest we just wrote (`written`), then
/// rewrites it without them, unless another writer replaced it meanwhile. Generations that could
/// not be deleted stay listed for the next write.
fn sweep(raw: &dyn RawStore, key: &str, name: &str, written: &[u8]) {
    let Ok((mut m, payload)) = decode_manifest(written.to_vec()) else {
        return;
    };
    if m.stale.is_empty() {
        return;
    }
    let mut left = Vec::new();
    for gen in std::mem::take(&mut m.stale) {
        let mut ok = true;
        for i in 0..gen.count {
            if let Err(e) = raw.delete(&chunk_key(key, &gen.id, i)) {
                tracing::warn!(secret = name, error = %e, "secret store: cannot delete an old chunk");
                ok = false;
            }
        }
        if !ok {
            left.push(gen);
        }
    }
    m.stale = left;
    if raw.get(key).ok().flatten().as_deref() == Some(written) {
        if let Err(e) = raw.set(key, &m.encode(&payload)) {
            tracing::warn!(secret = name, error = %e, "secret store: cannot tidy a manifest");
        }
    }
}

/// Reads the slot `key`; `None` if absent. Retries when a concurrent writer replaced the value
/// while its chunks were being read.
fn get_slot(raw: &dyn RawStore, key: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some((m, payload)) = read_manifest(raw, key, name)? else {
            return Ok(None);
        };
        let gen = match (&m.kind, &m.gen) {
            (Kind::Absent, _) => return Ok(None),
            (Kind::Inline, _) => {
                verify(raw, name, &m, &payload)?;
                return Ok(Some(payload));
            }
            (Kind::Chunked, Some(gen)) => gen,
            (Kind::Chunked, None) => unreachable!("validated"),
        };
        let mut value = Vec::with_capacity(m.len as usize);
        let mut failure = None;
        for i in 0..gen.count {
            match raw.get(&chunk_key(key, &gen.id, i))? {
                Some(part) if value.len() + part.len() <= m.len as usize => {
                    value.extend_from_slice(&part)
                }
                Some(_) => {
                    failure = Some(corrupt(
                        raw,
                        name,
                        "chunks are longer than the manifest says",
                    ));
                    break;
                }
                None => {
                    failure = Some(StoreError::ChunkMissing {
                        name: name.to_string(),
                        location: raw.label(),
                        index: i,
                        count: gen.count,
                    });
                    break;
                }
            }
        }
        let failure = match failure {
            None => match verify(raw, name, &m, &value) {
                Ok(()) => return Ok(Some(value)),
                Err(e) => e,
            },
            Some(e) => e,
        };
        let changed = match read_manifest(raw, key, name) {
            Ok(Some((now, _))) => now != m,
            _ => true,
        };
        if !changed || attempt >= 3 {
            return Err(failure);
        }
    }
}

/// Deletes the slot `key` and all its chunks. Absent is fine.
fn delete_slot(raw: &dyn RawStore, key: &str, name: &str) -> Result<(), StoreError> {
    match read_manifest(raw, key, name) {
        Ok(None) => Ok(()),
        Ok(Some((m, _))) => {
            let gens = m.generations();
            if !gens.is_empty() {
                // Readers see "no value" at once; a crash from here on leaves a record.
                raw.set(key, &Manifest::absent(gens.clone()).encode(&[]))?;
                for gen in &gens {
                    for i in 0..gen.count {
                        raw.delete(&chunk_key(key, &gen.id, i))?;
                    }
                }
            }
            raw.delete(key)
        }
        Err(StoreError::Corrupt { .. }) => raw.delete(key),
        Err(e) => Err(e),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    v: u32,
    names: BTreeSet<String>,
}

fn read_index(raw: &dyn RawStore, profile: &str) -> Result<BTreeSet<String>, StoreError> {
    let Some(bytes) = get_slot(raw, &index_key(profile), INDEX_NAME)? else {
        return Ok(BTreeSet::new());
    };
    let index: Index = serde_json::from_slice(&bytes)
        .map_err(|_| corrupt(raw, INDEX_NAME, "the profile's index does not parse"))?;
    if index.v != 1 || index.names.iter().any(|n| check_ident(n).is_err()) {
        return Err(corrupt(raw, INDEX_NAME, "the profile's index is invalid"));
    }
    Ok(index.names)
}

fn write_index(
    raw: &dyn RawStore,
    profile: &str,
    names: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let key = index_key(profile);
    if names.is_empty() {
        return delete_slot(raw, &key, INDEX_NAME);
    }
    let bytes = serde_json::to_vec(&Index {
        v: 1,
        names: names.clone(),
    })
    .expect("an index always serializes");
    put_slot(raw, &key, INDEX_NAME, &bytes)
}

fn delete_all_slots(raw: &dyn RawStore, profile: &str) -> Result<(), StoreError> {
    let key = index_key(profile);
    let names = match read_index(raw, profile) {
        Ok(names) => names,
        Err(StoreError::Corrupt { .. }) => {
            delete_slot(raw, &key, INDEX_NAME)?;
            return Err(corrupt(
                raw,
                INDEX_NAME,
                "the profile's index was unreadable and is now deleted; entries it listed may remain",
            ));
        }
        Err(e) => return Err(e),
    };
    let mut first_error = None;
    let mut left = BTreeSet::new();
    for name in names {
        if let Err(e) = delete_slot(raw, &slot_key(profile, &name), &name) {
            first_error.get_or_insert(e);
            left.insert(name);
        }
    }
    write_index(raw, profile, &left)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// The file backend

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    v: u32,
    /// name → base64 of the value.
    secrets: BTreeMap<String, String>,
}

fn file_path(dir: &Path, profile: &str) -> PathBuf {
    dir.join(format!("{profile}.json"))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(unix)]
fn check_private(
    path: &Path,
    meta: &std::fs::Metadata,
    fix: &'static str,
) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StoreError::PermissionsTooOpen {
            path: path.to_path_buf(),
            mode,
            fix,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata, _: &'static str) -> Result<(), StoreError> {
    Ok(())
}

/// Checks the directory if it exists; `Ok(false)` if it does not.
fn check_dir(dir: &Path) -> Result<bool, StoreError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("inspect", dir)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            // A symlinked directory is only acceptable if what it points to is private.
            let target = std::fs::metadata(dir).map_err(io_err("inspect", dir))?;
            if !target.is_dir() {
                return Err(StoreError::Insecure {
                    path: dir.to_path_buf(),
                    reason: "not a directory",
                });
            }
            check_private(dir, &target, "700").map(|()| true)
        }
        Ok(meta) if !meta.is_dir() => Err(StoreError::Insecure {
            path: dir.to_path_buf(),
            reason: "not a directory",
        }),
        Ok(meta) => check_private(dir, &meta, "700").map(|()| true),
    }
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if check_dir(dir)? {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err("create", dir))?;
    check_dir(dir).map(|_| ())
}

fn file_read(dir: &Path, profile: &str) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    let path = file_path(dir, profile);
    if !check_dir(dir)? {
        return Ok(BTreeMap::new());
    }
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err("inspect", &path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(StoreError::Insecure {
                path,
                reason: "it is a symbolic link",
            })
        }
        Ok(_) => {}
    }
    let mut file = std::fs::File::open(&path).map_err(io_err("open", &path))?;
    let meta = file.metadata().map_err(io_err("inspect", &path))?;
    if !meta.is_file() {
        return Err(StoreError::Insecure {
            path,
            reason: "not a regular file",
        });
    }
    check_private(&path, &meta, "600")?;
    if meta.len() > MAX_FILE_LEN {
        return Err(file_corrupt(&path, "the file is too large"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(io_err("read", &path))?;
    let parsed: SecretsFile =
        serde_json::from_slice(&bytes).map_err(|_| file_corrupt(&path, "not a secrets file"))?;
    if parsed.v != 1 {
        return Err(file_corrupt(&path, "unknown version"));
    }
    let mut map = BTreeMap::new();
    for (name, encoded) in parsed.secrets {
        if check_ident(&name).is_err() {
            return Err(file_corrupt(&path, "invalid secret name"));
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|_| StoreError::Corrupt {
                name: name.clone(),
                location: path.display().to_string(),
                detail: "not base64".into(),
            })?;
        map.insert(name, value);
    }
    Ok(map)
}

fn file_corrupt(path: &Path, detail: &str) -> StoreError {
    StoreError::Corrupt {
        name: "*".into(),
        location: path.display().to_string(),
        detail: detail.into(),
    }
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; not every platform can open a directory, so best effort.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically: a new `0600` file beside it, flushed, renamed over.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", new_gen_id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("flush", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io_err("replace", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        sync_dir(dir);
    }
    result
}

fn file_write(
    dir: &Path,
    profile: &str,
    map: &BTreeMap<String, Vec<u8>>,
) -> Result<(), StoreError> {
    let path = file_path(dir, profile);
    if map.is_empty() {
        return match std::fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(dir);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        };
    }
    ensure_dir(dir)?;
    let file = SecretsFile {
        v: 1,
        secrets: map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    base64::engine::general_purpose::STANDARD.encode(v),
                )
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("a secrets file always serializes");
    bytes.push(b'\n');
    write_atomic(dir, &path, &bytes)
}

fn file_delete_all(dir: &Path, profile: &str) -> Result<(), StoreError> {
    let path = file_path(dir, profile);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove", &path)(e)),
    }
    // Temporary files a crash left behind hold secrets too.
    let prefix = format!(".{profile}.json.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                let p = entry.path();
                std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
            }
        }
    }
    sync_dir(dir);
    Ok(())
}

fn file_probe(dir: &Path) -> Result<(), StoreError> {
    ensure_dir(dir)?;
    let path = dir.join(format!(".probe-{}", new_gen_id()));
    let value = b"hoop-kube probe".to_vec();
    write_atomic(dir, &path, &value)?;
    let back = std::fs::read(&path).map_err(io_err("read", &path));
    let _ = std::fs::remove_file(&path);
    if back? != value {
        return Err(file_corrupt(&path, "a test file read back different"));
    }
    Ok(())
}
