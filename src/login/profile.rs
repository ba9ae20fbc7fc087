//! Login profiles: which relay and which identity provider one `hoop-kube login` is for.
//!
//! A profile is one relay plus one identity, kept as a small JSON file,
//! `<config dir>/profiles/<name>.json` (mode `0644`), where the config directory is
//! `$XDG_CONFIG_HOME/hoop-kube` (`~/.config/hoop-kube`; the platform's config directory on macOS
//! and Windows) unless the environment variable `HOOP_KUBE_CONFIG_DIR` names another one (meant
//! for tests and for running several independent setups side by side; see [`config_dir`]).
//!
//! ```json
//! {
//!   "relay_url": "https://relay.example.com:8443",
//!   "relay_ca_sha256": "5f1c…(64 hex digits)",
//!   "issuer": "https://login.example.com",
//!   "client_id": "hoop-kube",
//!   "scopes": ["groups"],
//!   "token_store": "keyring",
//!   "forward_listen": "127.0.0.1:6643"
//! }
//! ```
//!
//! # What it holds, and what it never holds
//!
//! Only public settings: the file is world-readable like any other config file. Tokens and keys
//! live in the [`super::store::SecretStore`] of the same profile name, in the backend that
//! `token_store` names. The profile's name is its file name; it is not repeated inside the file.
//!
//! # What it rejects
//!
//! Names outside the secret store's rules (1–64 characters of `[A-Za-z0-9._-]`, starting with a
//! letter or digit: the name becomes a file name, a lock file name and part of keyring entry
//! names); a relay URL that is not `https://HOST[:PORT]`; an issuer that is not `https` (plain
//! `http` only to a loopback address, as the device flow itself insists); a pin that is not 64 hex
//! digits; a `forward_listen` that is not a loopback address with a fixed port; scopes that are not
//! RFC 6749 scope tokens; and **unknown fields**: a misspelt `relay_ca_sha256` would otherwise
//! silently drop the pin. Files larger than 64 KiB are not read.
//!
//! # Writes
//!
//! [`Profile::save`] validates first, then replaces the file atomically (temporary file in the
//! same directory, `fsync`, `rename`), so a reader sees the old or the new profile, never half.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::Backend;

/// The environment variable that overrides the configuration directory (see [`config_dir`]).
pub const CONFIG_DIR_ENV: &str = "HOOP_KUBE_CONFIG_DIR";

/// The client id used when `hoop-kube login` is given none.
pub const DEFAULT_CLIENT_ID: &str = "hoop-kube";

/// Where the local forwarder listens when `hoop-kube login` is given nothing else.
pub const DEFAULT_FORWARD_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    6643,
));

/// Largest profile file read.
const MAX_PROFILE_LEN: u64 = 64 * 1024;
/// Longest client id or scope.
const MAX_TOKEN_LEN: usize = 256;
/// Most extra scopes.
const MAX_SCOPES: usize = 32;

/// One relay + one identity. Holds no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name (its file name without `.json`).
    pub name: String,
    /// The relay, `https://HOST[:PORT]`.
    pub relay_url: String,
    /// The pin: lower-case hex SHA-256 of the DER encoding of the CA certificate that signs the
    /// relay's server certificate. `None`: no pin recorded (the caller decides what to trust).
    pub relay_ca_sha256: Option<String>,
    /// The OpenID issuer, exactly as it appears in the ID tokens' `iss`.
    pub issuer: String,
    /// The OAuth client id registered at the issuer.
    pub client_id: String,
    /// Scopes asked for in addition to `openid offline_access email profile` (see
    /// [`super::device::DEFAULT_SCOPES`]), e.g. `groups`.
    pub scopes: Vec<String>,
    /// Where this profile's tokens and keys live.
    pub token_store: Backend,
    /// Where the local forwarder listens for kubectl (loopback, fixed port: the kubeconfig names
    /// it).
    pub forward_listen: SocketAddr,
}

/// Why a profile could not be loaded, saved, listed or deleted. Every message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The name breaks the naming rules.
    #[error("invalid profile name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// There is no such profile.
    #[error(
        "no profile \"{name}\"; run hoop-kube login --profile {name} --relay URL --issuer URL"
    )]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// A field has a value the rules above refuse.
    #[error("profile \"{name}\": {field} {reason}")]
    Invalid {
        /// The profile.
        name: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is not a profile (not JSON, unknown or missing fields, too large).
    #[error("cannot read profile {}: {reason}; fix or delete the file, or run hoop-kube login again", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file-system operation failed.
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
    /// Neither `HOOP_KUBE_CONFIG_DIR` nor a home directory is known.
    #[error("cannot locate the configuration directory: no home directory (set HOME, XDG_CONFIG_HOME or HOOP_KUBE_CONFIG_DIR)")]
    NoHome,
}

/// The file's shape. `deny_unknown_fields`: see the module documentation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    relay_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    relay_ca_sha256: Option<String>,
    issuer: String,
    client_id: String,
    #[serde(default)]
    scopes: Vec<String>,
    token_store: String,
    forward_listen: String,
}

impl Profile {
    /// A profile with the defaults `hoop-kube login` uses for what it is not given: client id
    /// [`DEFAULT_CLIENT_ID`], scope `groups`, the OS keyring, [`DEFAULT_FORWARD_LISTEN`], no pin.
    /// Validates the name and both URLs.
    pub fn new(name: &str, relay_url: &str, issuer: &str) -> Result<Self, ProfileError> {
        let p = Profile {
            name: name.to_string(),
            relay_url: relay_url.to_string(),
            relay_ca_sha256: None,
            issuer: issuer.to_string(),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            scopes: vec!["groups".to_string()],
            token_store: Backend::Keyring,
            forward_listen: DEFAULT_FORWARD_LISTEN,
        };
        p.validate()
    }

    /// Loads `<config dir>/profiles/<name>.json`. A missing file is [`ProfileError::NotFound`],
    /// whose message tells the human what to run.
    pub fn load(name: &str) -> Result<Self, ProfileError> {
        Self::load_from(&profiles_dir()?, name)
    }

    /// Loads `<dir>/<name>.json` (`dir` is a profiles directory).
    pub fn load_from(dir: &Path, name: &str) -> Result<Self, ProfileError> {
        check_name(name)?;
        let path = file_path(dir, name);
        let mut file = match std::fs::File::open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ProfileError::NotFound { name: name.into() })
            }
            r => r.map_err(io_err("open", &path))?,
        };
        let meta = file.metadata().map_err(io_err("inspect", &path))?;
        if !meta.is_file() {
            return Err(ProfileError::Parse {
                path,
                reason: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_PROFILE_LEN {
            return Err(ProfileError::Parse {
                path,
                reason: format!("larger than {MAX_PROFILE_LEN} bytes"),
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        (&mut file)
            .take(MAX_PROFILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > MAX_PROFILE_LEN {
            return Err(ProfileError::Parse {
                path,
                reason: format!("larger than {MAX_PROFILE_LEN} bytes"),
            });
        }
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ProfileError::Parse {
                path,
                reason: "not a JSON object".into(),
            });
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let f: ProfileFile = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let field = e.path().to_string();
            let inner = one_line(&e.into_inner().to_string());
            ProfileError::Parse {
                path: path.clone(),
                reason: if field == "." {
                    inner
                } else {
                    format!("{field}: {inner}")
                },
            }
        })?;
        de.end().map_err(|e| ProfileError::Parse {
            path: path.clone(),
            reason: one_line(&e.to_string()),
        })?;
        let token_store = f
            .token_store
            .parse::<Backend>()
            .map_err(|_| ProfileError::Invalid {
                name: name.into(),
                field: "token_store",
                reason: format!("is {:?}; use \"keyring\" or \"file\"", clip(&f.token_store)),
            })?;
        let forward_listen =
            f.forward_listen
                .parse::<SocketAddr>()
                .map_err(|_| ProfileError::Invalid {
                    name: name.into(),
                    field: "forward_listen",
                    reason: format!(
                        "is {:?}; expected IP:PORT, e.g. 127.0.0.1:6643",
                        clip(&f.forward_listen)
                    ),
                })?;
        Profile {
            name: name.to_string(),
            relay_url: f.relay_url,
            relay_ca_sha256: f.relay_ca_sha256,
            issuer: f.issuer,
            client_id: f.client_id,
            scopes: f.scopes,
            token_store,
            forward_listen,
        }
        .validate()
    }

    /// Validates and writes the profile to `<config dir>/profiles/<name>.json` (`0644`, atomic).
    /// The pin is stored normalized (lower-case hex, no colons).
    pub fn save(&self) -> Result<PathBuf, ProfileError> {
        self.save_to(&profiles_dir()?)
    }

    /// Like [`Profile::save`], into the profiles directory `dir` (created if missing).
    pub fn save_to(&self, dir: &Path) -> Result<PathBuf, ProfileError> {
        let p = self.clone().validate()?;
        let file = ProfileFile {
            relay_url: p.relay_url,
            relay_ca_sha256: p.relay_ca_sha256,
            issuer: p.issuer,
            client_id: p.client_id,
            scopes: p.scopes,
            token_store: p.token_store.as_str().to_string(),
            forward_listen: p.forward_listen.to_string(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("a profile always serializes");
        bytes.push(b'\n');
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let path = file_path(dir, &self.name);
        write_atomic(dir, &path, &bytes)?;
        Ok(path)
    }

    /// The names of all profiles, sorted. Files whose names are not valid profile names are
    /// skipped; a missing directory is an empty list. Profiles are not parsed: a broken one
    /// still shows up (and fails when loaded).
    pub fn list() -> Result<Vec<String>, ProfileError> {
        Self::list_in(&profiles_dir()?)
    }

    /// Like [`Profile::list`], in the profiles directory `dir`.
    pub fn list_in(dir: &Path) -> Result<Vec<String>, ProfileError> {
        let entries = match std::fs::read_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r.map_err(io_err("list", dir))?,
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", dir))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let Some(name) = file_name.strip_suffix(".json") else {
                continue;
            };
            if super::store::check_ident(name).is_err() {
                continue;
            }
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes the profile file. `Ok(false)` if there was none. Does not touch the profile's
    /// secrets: forget those with [`super::store::SecretStore::delete_all`] first.
    pub fn delete(name: &str) -> Result<bool, ProfileError> {
        Self::delete_from(&profiles_dir()?, name)
    }

    /// Like [`Profile::delete`], in the profiles directory `dir`.
    pub fn delete_from(dir: &Path, name: &str) -> Result<bool, ProfileError> {
        check_name(name)?;
        let path = file_path(dir, name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("delete", &path)(e)),
        }
    }

    /// Checks every field; normalizes the pin.
    fn validate(mut self) -> Result<Self, ProfileError> {
        check_name(&self.name)?;
        let name = self.name.clone();
        let invalid = |field: &'static str, reason: String| ProfileError::Invalid {
            name: name.clone(),
            field,
            reason,
        };
        check_relay_url(&self.relay_url).map_err(|r| invalid("relay_url", r))?;
        if let Some(pin) = &self.relay_ca_sha256 {
            self.relay_ca_sha256 =
                Some(normalize_pin(pin).map_err(|r| invalid("relay_ca_sha256", r))?);
        }
        check_issuer(&self.issuer).map_err(|r| invalid("issuer", r))?;
        check_token(&self.client_id, false).map_err(|r| invalid("client_id", r))?;
        if self.scopes.len() > MAX_SCOPES {
            return Err(invalid(
                "scopes",
                format!("has more than {MAX_SCOPES} entries"),
            ));
        }
        for s in &self.scopes {
            check_token(s, true).map_err(|r| invalid("scopes", r))?;
        }
        let ip = self.forward_listen.ip();
        if !ip.is_loopback() {
            return Err(invalid(
                "forward_listen",
                format!(
                    "is {}; the forwarder listens on a loopback address only (127.0.0.1 or ::1)",
                    self.forward_listen
                ),
            ));
        }
        if self.forward_listen.port() == 0 {
            return Err(invalid(
                "forward_listen",
                "has port 0; the kubeconfig needs a fixed port".to_string(),
            ));
        }
        Ok(self)
    }
}

impl fmt::Display for Profile {
    /// `name (relay URL, issuer)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (relay {}, issuer {})",
            self.name, self.relay_url, self.issuer
        )
    }
}

/// The configuration directory: `$HOOP_KUBE_CONFIG_DIR` if set and non-empty, else
/// `$XDG_CONFIG_HOME/hoop-kube` (`~/.config/hoop-kube`; the platform's config directory
/// elsewhere). Profiles live in its `profiles/` subdirectory.
///
/// `HOOP_KUBE_CONFIG_DIR` exists for tests (point it at a temporary directory instead of
/// changing `HOME`) and for keeping several independent setups apart. A relative value is taken
/// relative to the current directory.
pub fn config_dir() -> Result<PathBuf, ProfileError> {
    config_dir_with(|k| std::env::var_os(k))
}

/// [`config_dir`] with the environment given as a function (for tests, which must not call
/// `std::env::set_var` in a multi-threaded process).
pub fn config_dir_with(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, ProfileError> {
    if let Some(dir) = env(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "hoop-kube")
        .map(|d| d.config_dir().to_path_buf())
        .ok_or(ProfileError::NoHome)
}

/// `<config dir>/profiles`.
pub fn profiles_dir() -> Result<PathBuf, ProfileError> {
    Ok(config_dir()?.join("profiles"))
}

/// Checks a profile name against the secret store's rules: 1–64 characters of
/// `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), ProfileError> {
    super::store::check_ident(name).map_err(|reason| ProfileError::InvalidName {
        name: clip(name),
        reason,
    })
}

fn check_relay_url(s: &str) -> Result<(), String> {
    let u = url::Url::parse(s).map_err(|e| format!("{:?} is not a URL ({e})", clip(s)))?;
    if u.scheme() != "https" {
        return Err(format!("{:?} must be https://HOST[:PORT]", clip(s)));
    }
    if u.host().is_none() {
        return Err(format!("{:?} has no host", clip(s)));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "{:?} must not carry a user name or password",
            clip(s)
        ));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "{:?} must be https://HOST[:PORT] without a path, query or fragment",
            clip(s)
        ));
    }
    Ok(())
}

fn check_issuer(s: &str) -> Result<(), String> {
    let u = url::Url::parse(s).map_err(|e| format!("{:?} is not a URL ({e})", clip(s)))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(format!("{:?} has no host", clip(s))),
    };
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "{:?} must be an https URL (plain http only to a loopback address)",
                clip(s)
            ))
        }
    }
    if !u.username().is_empty()
        || u.password().is_some()
        || u.query().is_some()
        || u.fragment().is_some()
    {
        return Err(format!(
            "{:?} must not carry a user name, password, query or fragment",
            clip(s)
        ));
    }
    Ok(())
}

/// 64 hex digits, optionally in pairs separated by colons (`openssl x509 -fingerprint`) and with
/// a `sha256:` prefix; returns lower-case hex without separators.
fn normalize_pin(s: &str) -> Result<String, String> {
    let body = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("SHA256:"))
        .unwrap_or(s);
    let hex: String = body.chars().filter(|&c| c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{:?} is not a SHA-256 fingerprint (64 hex digits, e.g. from `openssl x509 -noout -fingerprint -sha256`)",
            clip(s)
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// A client id (visible ASCII) or an RFC 6749 scope token (visible ASCII except `"` and `\`).
fn check_token(s: &str, scope: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_TOKEN_LEN {
        return Err(format!("is longer than {MAX_TOKEN_LEN} characters"));
    }
    let ok = |b: u8| (0x21..=0x7e).contains(&b) && !(scope && (b == b'"' || b == b'\\'));
    if !s.bytes().all(ok) {
        return Err(format!(
            "{:?} has characters that are not allowed (spaces, quotes, non-ASCII)",
            clip(s)
        ));
    }
    Ok(())
}

fn file_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ProfileError + 'a {
    move |source| ProfileError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a new `0644` file beside it, flushed, renamed over.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{file_name}.{}.{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o644);
        }
        let mut file = options.open(&tmp).map_err(io_err("create", &tmp))?;
        #[cfg(unix)]
        {
            // The umask may have taken bits away; a profile is meant to be readable.
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io_err("chmod", &tmp))?;
        }
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("flush", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io_err("replace", path))
    })();
    match result {
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
    }
}

/// Longest piece of a profile field or parse error quoted in a message.
const MAX_QUOTED: usize = 200;

fn one_line(s: &str) -> String {
    crate::text::one_line(s, MAX_QUOTED)
}

fn clip(s: &str) -> String {
    crate::text::clip(s, MAX_QUOTED)
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
