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

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

mod chunks;
mod error;
mod file;
mod os_keyring;

use chunks::{
    delete_all_slots, delete_slot, get_slot, put_slot, read_index, slot_key, write_index,
};
pub use error::StoreError;
use file::{file_delete_all, file_path, file_probe, file_read, file_write};
use os_keyring::{keyutils_without_bus, no_usable, os_store, probe_raw, short_reason, RawStore};

#[cfg(test)]
mod tests;

/// The keyring service name under which every hoop-kube entry is stored.
pub const SERVICE: &str = "hoop-kube";

/// Largest value [`SecretStore::put`] accepts (4 MiB); tokens and keys are a few KiB.
pub const MAX_VALUE_LEN: usize = 4 << 20;

/// Longest profile or secret name.
const MAX_NAME_LEN: usize = 64;
/// How long one keyring operation may take (an unlock prompt can wait for a human).
const OP_TIMEOUT: Duration = Duration::from_secs(60);

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

    /// A best-effort, synchronous read for `hoop-kube credential`'s cached path: no runtime, no
    /// probe, no timeout. Answers only from the file backend or, when no D-Bus session bus
    /// exists, the kernel keyring; `None` when the value is absent, on any error, and for the
    /// Secret Service (whose client needs the runtime). The caller then takes the full path
    /// ([`SecretStore::get`]), which reports errors properly. Checks the same manifest length
    /// and SHA-256 as `get`.
    pub fn get_cached_now(&self, name: &str) -> Option<Vec<u8>> {
        check_name(name).ok()?;
        match &self.inner {
            Inner::File { dir } => file_read(dir, &self.profile).ok()?.remove(name),
            Inner::Os => {
                let raw = keyutils_without_bus()?;
                get_slot(raw.as_ref(), &slot_key(&self.profile, name), name).ok()?
            }
            #[cfg(test)]
            Inner::Raw(raw) => get_slot(raw.as_ref(), &slot_key(&self.profile, name), name).ok()?,
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

/// The name rules shared by store profiles and login profiles: 1–64 characters of
/// `[A-Za-z0-9._-]`, starting with a letter or digit. `Err` says which rule failed.
pub(in crate::login) fn check_ident(s: &str) -> Result<(), &'static str> {
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
// Helpers shared by the backends

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
    hex::encode(&h.finalize()[..8])
}

fn sha256_hex(value: &[u8]) -> String {
    hex::encode(Sha256::digest(value))
}
