//! The hot path of `hoop-kube credential`: hand kubectl a valid ID token, refreshing it at most
//! once for all concurrent callers.
//!
//! kubectl runs the exec plugin once per `kubectl` process (and again after a 401), so this runs
//! for nearly every command a human or an agent types, often many at once (`xargs -P`, shell
//! loops, an agent's parallel tool calls). It must be fast when the cached token is good, and it
//! must never refresh twice with the same refresh token: the provider rotates refresh tokens, and
//! presenting a used one makes it revoke the whole grant (oidc-provider does; see
//! `tests/idp/README.md`), which would log the user out.
//!
//! # The algorithm ([`credential`])
//!
//! 1. **Fast path.** Read `id_token` from the profile's [`SecretStore`], take its expiry from its
//!    own `exp` claim (its `iss` must be the profile's issuer), and if it outlives the safety
//!    margin ([`Deps::margin`], 60 s by default; see [`ExecCredentialOut::new`]) print it. No network, no lock, no file other than the store.
//! 2. **Single flight.** Otherwise take the exclusive lock
//!    `$XDG_STATE_HOME/hoop-kube/locks/<profile>.lock` ([`default_lock_dir`]; `flock(2)` through
//!    [`std::fs::File::try_lock`], so it also excludes other tasks of the same process, and the
//!    kernel drops it if the holder dies). While waiting, re-read the store every few milliseconds:
//!    the holder is most likely refreshing, and its token is good for us too. Once the lock is
//!    held, **read the store again** (another process may have refreshed while we waited), and
//!    only if the token still expires within the margin: discover the issuer, call
//!    [`device::refresh`] with the stored `refresh_token`, store the rotated `refresh_token`
//!    **first** and the new `id_token` second ([`save_tokens`]), release the lock, print.
//! 3. **No way to refresh.** No refresh token, or the provider answers `invalid_grant` (revoked,
//!    expired, reused): the dead refresh token is deleted (later calls then fail at once, offline)
//!    and the result is [`CredentialError::NeedsLogin`] when kubectl said the session is not
//!    interactive, [`CredentialError::InteractiveLoginRequired`] when it is.
//!
//! # The contract with the CLI
//!
//! * `Ok(json)`: print `json` and a newline on stdout, nothing else there; exit 0.
//! * [`CredentialError::NeedsLogin`]: print its `Display` (one line, already prefixed
//!   `hoop-kube: `) on stderr and exit 1. Never prompt, never open a browser: nobody is there
//!   (`interactive: false` in `KUBERNETES_EXEC_INFO`).
//! * [`CredentialError::InteractiveLoginRequired`]: kubectl passed a terminal on stdin; the CLI may
//!   run the device flow, **talking only on stderr** (stdout is kubectl's), store the tokens with
//!   [`save_tokens`] while holding [`lock_profile`], and call [`credential`] again. If it does not
//!   implement that, it treats the error like `NeedsLogin` (its `Display` is the same line).
//! * Every other error: print its `Display` (one line) on stderr, exit 1.
//! * Do not cancel the future (no `timeout` around it): cancelling between the provider's answer
//!   and the store write would lose the rotated refresh token, and with it the session. Every
//!   request to the provider already has its own timeout (see [`device`]).
//!
//! # Why the token lives only in the store
//!
//! The fast path must read the token itself, and the token is a bearer secret, so it lives in the
//! secret store like the refresh token. A separate non-secret cache file holding only the expiry
//! would not spare the store read; a cache file holding the token would put a bearer token in a
//! plain file, which is what `--token-store keyring` promises not to do. The expiry is not stored
//! separately either: it is the token's own `exp` claim (verified when the token was obtained),
//! decoded in microseconds, so token and expiry can never disagree, even across a crash between
//! two writes.
//!
//! What the cached path costs (measured on a loaded 2-core test machine, release build, one
//! `credential` call in a fresh process / warm in a loop): the 0600 file backend 0.1–1.4 ms /
//! 18 µs; the kernel keyring (keyutils) 0.3–1.4 ms / 90 µs, including the store's
//! once-per-process write probe; the Secret Service (gnome-keyring) 12–15 ms / 5 ms, spent in
//! D-Bus round trips to the keyring daemon, the store's once-per-process lookup probe included
//! (debug builds: 70–120 ms). `kubectl version --client` alone takes 40–60 ms there, so the
//! keyring stays the default.
//!
//! # Where the lock lives, and why not `$XDG_RUNTIME_DIR`
//!
//! The runtime directory would be the textbook place, but it is set in a desktop or systemd login
//! session and absent in cron jobs, containers and many ssh sessions. Two processes of the same
//! user that picked different lock files would refresh concurrently and revoke the grant, so the
//! lock lives where the file store lives, under the state directory that every process of the user
//! resolves the same way. Lock files are never deleted (deleting a `flock`ed file races); each
//! holds the pid of its last holder, for the timeout message.

use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::device::{self, LoginError, Provider, Tokens};
use super::exec_credential::{ExecCredentialOut, ExecInfo, DEFAULT_MARGIN};
use super::profile::{self, Profile};
use super::store::{SecretStore, StoreError};

/// The store entry holding the ID token (the bearer token kubectl gets).
pub const ID_TOKEN: &str = "id_token";
/// The store entry holding the refresh token.
pub const REFRESH_TOKEN: &str = "refresh_token";

/// How long a caller waits for another process's refresh before giving up. Longer than one
/// refresh can take (discovery, JWKS and token requests, 30 s timeout each), so a waiter does not
/// give up on a refresh that is still going to succeed.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(150);

/// First and longest pause between two attempts to take the lock.
const LOCK_POLL_MIN: Duration = Duration::from_millis(5);
const LOCK_POLL_MAX: Duration = Duration::from_millis(50);

/// Largest stored ID token looked at (the secret store allows much more).
const MAX_ID_TOKEN_LEN: usize = 64 * 1024;

// === Clock ===

/// Wall-clock time, injectable for tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(Utc::now))
    }

    /// A clock that always says `t`.
    pub fn fixed(t: DateTime<Utc>) -> Self {
        Clock(Arc::new(move || t))
    }

    /// A clock that asks `f`.
    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

// === Deps ===

/// What [`credential`] works with. Build it with [`Deps::for_profile`] (the real ones) or
/// [`Deps::new`] (tests: a store in a temporary directory, a fixed clock, a lock directory of
/// their own).
#[derive(Debug)]
pub struct Deps {
    /// The profile's secret store (its profile name must be the profile's).
    pub store: SecretStore,
    /// The clock that decides whether the cached token is still good.
    pub clock: Clock,
    /// Where the per-profile lock files live.
    pub lock_dir: PathBuf,
    /// How long before its expiry a token stops being handed out; `expirationTimestamp` is the
    /// token's expiry minus this.
    pub margin: Duration,
    /// How long to wait for another process's refresh.
    pub lock_timeout: Duration,
    /// The HTTP client for the identity provider; built on first use (the fast path never
    /// needs one, and building one sets up a whole TLS configuration).
    http: OnceLock<reqwest::Client>,
}

impl Deps {
    /// `store` and `lock_dir`, with the system clock, [`DEFAULT_MARGIN`],
    /// [`DEFAULT_LOCK_TIMEOUT`] and the default HTTP client ([`http_client`]).
    pub fn new(store: SecretStore, lock_dir: impl Into<PathBuf>) -> Self {
        Deps {
            store,
            clock: Clock::system(),
            lock_dir: lock_dir.into(),
            margin: DEFAULT_MARGIN,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            http: OnceLock::new(),
        }
    }

    /// The real dependencies of `profile`: its store (OS keyring or file, as the profile says),
    /// [`default_lock_dir`], the system clock. Touches neither the keyring nor the disk.
    pub fn for_profile(profile: &Profile) -> Result<Self, CredentialError> {
        let store = SecretStore::new(&profile.name, profile.token_store).map_err(|source| {
            CredentialError::Store {
                profile: profile.name.clone(),
                source,
            }
        })?;
        Ok(Deps::new(store, default_lock_dir()?))
    }

    /// Use `http` for the identity provider (tests: a client with a proxy).
    pub fn with_http(self, http: reqwest::Client) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(http);
        Deps { http: cell, ..self }
    }

    /// Use `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        Deps { clock, ..self }
    }

    fn http(&self) -> Result<&reqwest::Client, CredentialError> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let c = http_client()
            .map_err(|e| CredentialError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(self.http.get_or_init(|| c))
    }
}

/// The HTTP client hoop-kube talks to identity providers with: redirects are not followed
/// ([`device`] refuses redirected answers anyway).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// `$XDG_STATE_HOME/hoop-kube/locks` (`~/.local/state/hoop-kube/locks`; the local data directory
/// on platforms without a state directory): beside the file store's `secrets/`.
pub fn default_lock_dir() -> Result<PathBuf, CredentialError> {
    let dirs = directories::ProjectDirs::from("", "", "hoop-kube").ok_or_else(|| {
        CredentialError::Setup(
            "cannot locate the state directory: no home directory (set HOME or XDG_STATE_HOME)"
                .into(),
        )
    })?;
    Ok(dirs
        .state_dir()
        .unwrap_or_else(|| dirs.data_local_dir())
        .join("locks"))
}

// === Errors ===

/// Why there is no session to refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginReason {
    /// Nothing is stored for the profile: it never logged in (or logged out).
    NotLoggedIn,
    /// The ID token expired and there is no usable refresh token: none was issued, or the
    /// provider refused it (`invalid_grant`: revoked, expired, or already used).
    Expired,
}

/// Why `hoop-kube credential` cannot hand out a token. Every `Display` is one line that starts
/// with `hoop-kube: ` and is meant for stderr as is. No variant carries a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A human must log in, and kubectl said nobody is at a terminal: fail, do not prompt.
    #[error("{}", login_line(profile, *reason))]
    NeedsLogin {
        /// The profile.
        profile: String,
        /// Why.
        reason: LoginReason,
    },
    /// A human must log in, and kubectl passed its terminal: the CLI may run the device flow on
    /// stderr (see the module documentation). Same message as [`CredentialError::NeedsLogin`].
    #[error("{}", login_line(profile, *reason))]
    InteractiveLoginRequired {
        /// The profile.
        profile: String,
        /// Why.
        reason: LoginReason,
    },
    /// The secret store failed (locked keyring, permissions, corruption, …).
    #[error("hoop-kube: cannot read the tokens of profile \"{profile}\": {source}")]
    Store {
        /// The profile.
        profile: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Discovery or the refresh request failed for a reason other than `invalid_grant` (network,
    /// provider error, an ID token that does not verify).
    #[error("hoop-kube: cannot refresh the session for profile \"{profile}\": {source}")]
    Refresh {
        /// The profile.
        profile: String,
        /// What failed.
        #[source]
        source: LoginError,
    },
    /// The provider answered, its old refresh token is dead, and the new one could not be stored:
    /// the session is lost.
    #[error(
        "hoop-kube: the session for profile \"{profile}\" was refreshed but the new tokens could not be stored ({source}); run: hoop-kube login --profile {profile}"
    )]
    Lost {
        /// The profile.
        profile: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A freshly refreshed token already expires within the margin: the provider's ID tokens are
    /// too short-lived, or the local clock is far ahead.
    #[error(
        "hoop-kube: the identity provider issued profile \"{profile}\" an ID token with {left_secs} s left, not more than the {margin_secs} s safety margin; check the system clock"
    )]
    ShortLived {
        /// The profile.
        profile: String,
        /// Seconds the new token had left by the local clock.
        left_secs: i64,
        /// The margin.
        margin_secs: u64,
    },
    /// The lock file could not be created or locked.
    #[error("hoop-kube: cannot lock {}: {source}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Another process held the lock for longer than [`Deps::lock_timeout`].
    #[error(
        "hoop-kube: another hoop-kube{} has held {} for {secs} s while refreshing the session; try again, or end that process",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default(), .path.display()
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        secs: u64,
        /// The pid the lock file names, if any.
        holder: Option<u32>,
    },
    /// The environment is unusable (no home directory, no HTTP client, a store for another
    /// profile).
    #[error("hoop-kube: {0}")]
    Setup(String),
}

fn login_line(profile: &str, reason: LoginReason) -> String {
    match reason {
        LoginReason::Expired => format!(
            "hoop-kube: the session for profile \"{profile}\" has expired; run: hoop-kube login --profile {profile}"
        ),
        LoginReason::NotLoggedIn => format!(
            "hoop-kube: profile \"{profile}\" is not logged in; run: hoop-kube login --profile {profile}"
        ),
    }
}

// === The hot path ===

/// The ExecCredential JSON for `profile` (print it on stdout), in the version `info` asks for.
/// See the module documentation for the algorithm and the contract.
pub async fn credential(
    profile: &Profile,
    info: &ExecInfo,
    deps: &Deps,
) -> Result<String, CredentialError> {
    Ok(obtain(profile, info, deps).await?.render(info.api_version))
}

/// Like [`credential`], returning the token and its expiry instead of the rendered JSON.
pub async fn obtain(
    profile: &Profile,
    info: &ExecInfo,
    deps: &Deps,
) -> Result<ExecCredentialOut, CredentialError> {
    if deps.store.profile() != profile.name {
        return Err(CredentialError::Setup(format!(
            "the secret store is for profile \"{}\", not \"{}\"",
            deps.store.profile(),
            profile.name
        )));
    }
    // 1. Fast path: the cached token, if it outlives the margin.
    let cached = read_id_token(profile, deps).await?;
    if let Some(out) = usable(&cached, deps) {
        return Ok(out);
    }

    // 2. Single flight: the lock, or a token someone else stored while we waited for it.
    let lock = acquire(
        &deps.lock_dir,
        &profile.name,
        deps.lock_timeout,
        move || async move {
            // Unlocked re-read: errors here are retried under the lock, where they count.
            let cached = read_id_token(profile, deps).await.ok()?;
            usable(&cached, deps)
        },
    )
    .await?;
    let _lock = match lock {
        Acquired::Locked(lock) => lock,
        Acquired::Early(out) => return Ok(out),
    };

    // Under the lock: read again; the previous holder may have refreshed.
    let cached = read_id_token(profile, deps).await?;
    if let Some(out) = usable(&cached, deps) {
        return Ok(out);
    }
    let refresh_token = deps
        .store
        .get(REFRESH_TOKEN)
        .await
        .map_err(|source| CredentialError::Store {
            profile: profile.name.clone(),
            source,
        })?
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|t| !t.is_empty());
    let Some(refresh_token) = refresh_token else {
        let reason = if cached.is_some() {
            LoginReason::Expired
        } else {
            LoginReason::NotLoggedIn
        };
        return Err(login_needed(profile, info, reason));
    };

    let refresh_err = |source: LoginError| CredentialError::Refresh {
        profile: profile.name.clone(),
        source,
    };
    let http = deps.http()?;
    let provider = Provider::discover(http, &profile.issuer)
        .await
        .map_err(refresh_err)?;
    let tokens = match device::refresh(http, &provider, &profile.client_id, &refresh_token).await {
        Ok(tokens) => tokens,
        Err(LoginError::InvalidGrant { .. }) => {
            // The grant is dead. Forget its refresh token, so that later calls fail at once and
            // offline instead of presenting it again.
            if let Err(e) = deps.store.delete(REFRESH_TOKEN).await {
                tracing::warn!(profile = %profile.name, error = %e, "cannot delete the rejected refresh token");
            }
            return Err(login_needed(profile, info, LoginReason::Expired));
        }
        Err(e) => return Err(refresh_err(e)),
    };
    save_tokens(&deps.store, &tokens)
        .await
        .map_err(|source| CredentialError::Lost {
            profile: profile.name.clone(),
            source,
        })?;
    let out = ExecCredentialOut::new(
        tokens.id_token.expose(),
        tokens.id_token_expiry,
        deps.clock.now(),
        deps.margin,
    )
    .map_err(|e| CredentialError::ShortLived {
        profile: profile.name.clone(),
        left_secs: e.left_secs,
        margin_secs: e.margin_secs,
    })?;
    Ok(out)
}

/// Stores the tokens of a login or refresh: the refresh token **first** (after a rotation the old
/// one is dead, so losing the new one loses the session; a crash after this write leaves the new
/// refresh token beside the old, expired ID token, and the next call simply refreshes again),
/// then the ID token. A login without a refresh token deletes any stored one (it belongs to an
/// older grant). Call it while holding [`lock_profile`] when other processes may be refreshing.
pub async fn save_tokens(store: &SecretStore, tokens: &Tokens) -> Result<(), StoreError> {
    match &tokens.refresh_token {
        Some(rt) => store.put(REFRESH_TOKEN, rt.expose().as_bytes()).await?,
        None => store.delete(REFRESH_TOKEN).await?,
    }
    store
        .put(ID_TOKEN, tokens.id_token.expose().as_bytes())
        .await
}

fn login_needed(profile: &Profile, info: &ExecInfo, reason: LoginReason) -> CredentialError {
    let profile = profile.name.clone();
    if info.interactive {
        CredentialError::InteractiveLoginRequired { profile, reason }
    } else {
        CredentialError::NeedsLogin { profile, reason }
    }
}

/// The stored ID token and its expiry. A value that is not a JWT with a numeric `exp`, or whose
/// `iss` is not the profile's issuer (a token left from before the profile was pointed elsewhere;
/// the relay would refuse it), reads as absent: the caller then refreshes.
async fn read_id_token(
    profile: &Profile,
    deps: &Deps,
) -> Result<Option<(String, DateTime<Utc>)>, CredentialError> {
    let bytes = deps
        .store
        .get(ID_TOKEN)
        .await
        .map_err(|source| CredentialError::Store {
            profile: profile.name.clone(),
            source,
        })?;
    Ok(bytes
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| match jwt_claims(&t) {
            Some(c) if c.iss.as_deref() == Some(profile.issuer.as_str()) => Some((t, c.exp)),
            _ => None,
        }))
}

fn usable(cached: &Option<(String, DateTime<Utc>)>, deps: &Deps) -> Option<ExecCredentialOut> {
    let (token, exp) = cached.as_ref()?;
    ExecCredentialOut::new(token.as_str(), *exp, deps.clock.now(), deps.margin).ok()
}

/// What the cached path reads from its own ID token.
#[derive(Debug, PartialEq)]
pub(crate) struct CachedClaims {
    pub(crate) exp: DateTime<Utc>,
    pub(crate) iss: Option<String>,
}

/// The `exp` and `iss` claims of a compact JWS, without checking the signature (the token was
/// verified when it was obtained; here it is only our own cache entry). `None` if it is not a JWT
/// with a numeric `exp`.
pub(crate) fn jwt_claims(token: &str) -> Option<CachedClaims> {
    let bytes = jwt_payload(token)?;
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: f64,
        #[serde(default)]
        iss: Option<String>,
    }
    let Claims { exp, iss } = serde_json::from_slice(&bytes).ok()?;
    if !exp.is_finite() {
        return None;
    }
    Some(CachedClaims {
        exp: DateTime::<Utc>::from_timestamp(exp.floor() as i64, 0)?,
        iss,
    })
}

/// The decoded payload of a compact JWS (three parts, at most [`MAX_ID_TOKEN_LEN`] bytes), without
/// checking the signature: for reading our own cached token.
pub(crate) fn jwt_payload(token: &str) -> Option<Vec<u8>> {
    if token.len() > MAX_ID_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    B64.decode(payload).ok()
}

// === The lock ===

/// The exclusive per-profile lock (an `flock` on `<lock dir>/<profile>.lock`), held until dropped.
#[derive(Debug)]
pub struct ProfileLock {
    file: std::fs::File,
    path: PathBuf,
}

impl ProfileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ProfileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; say it explicitly.
        let _ = self.file.unlock();
    }
}

/// Takes the lock of `profile` in `lock_dir` (created `0700` if missing; the file is `0600`),
/// waiting up to `timeout` for another holder. `hoop-kube login` holds it while it stores new
/// tokens, so that a concurrent refresh cannot interleave with it.
pub async fn lock_profile(
    lock_dir: &Path,
    profile: &str,
    timeout: Duration,
) -> Result<ProfileLock, CredentialError> {
    match acquire(lock_dir, profile, timeout, || async { None }).await? {
        Acquired::Locked(lock) => Ok(lock),
        Acquired::Early(_) => unreachable!("no early exit was offered"),
    }
}

enum Acquired {
    Locked(ProfileLock),
    /// The early check found a usable token while we waited.
    Early(ExecCredentialOut),
}

async fn acquire<F, Fut>(
    lock_dir: &Path,
    profile: &str,
    timeout: Duration,
    mut early: F,
) -> Result<Acquired, CredentialError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<ExecCredentialOut>>,
{
    profile::check_name(profile).map_err(|e| CredentialError::Setup(e.to_string()))?;
    let path = lock_dir.join(format!("{profile}.lock"));
    let file = {
        let (dir, target) = (lock_dir.to_path_buf(), path.clone());
        tokio::task::spawn_blocking(move || open_lock_file(&dir, &target))
            .await
            .map_err(|e| CredentialError::Setup(format!("lock task failed: {e}")))?
            .map_err(|source| CredentialError::Lock {
                path: path.clone(),
                source,
            })?
    };
    let started = Instant::now();
    let mut pause = LOCK_POLL_MIN;
    loop {
        // LOCK_NB: never blocks, so it runs on the async thread; waiting is a tokio sleep, so a
        // dropped future leaves no thread behind blocked in flock(2).
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for other waiters' timeout message. Best effort.
                let _ = file.set_len(0);
                let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
                return Ok(Acquired::Locked(ProfileLock { file, path }));
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(CredentialError::Lock { path, source })
            }
        }
        if started.elapsed() >= timeout {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            return Err(CredentialError::LockTimeout {
                path,
                secs: timeout.as_secs(),
                holder,
            });
        }
        tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(LOCK_POLL_MAX);
        if let Some(out) = early().await {
            return Ok(Acquired::Early(out));
        }
    }
}

fn open_lock_file(dir: &Path, path: &Path) -> io::Result<std::fs::File> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
