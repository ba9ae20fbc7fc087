//! [`StoreError`]: why a secret could not be stored, read or deleted.

use std::io;
use std::path::PathBuf;

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
    /// The value is larger than [`MAX_VALUE_LEN`](super::MAX_VALUE_LEN).
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
