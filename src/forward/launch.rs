//! Make sure a profile's forwarder is running, starting it in the background if it is not.
//!
//! A profile's running forwarder holds an exclusive `flock` on `<lock dir>/<profile>.forwarder`
//! for its whole life ([`hold_running_lock`]), with its pid and listen address written in it; the
//! kernel drops the lock when the process dies, however it dies. [`running`] tests that lock
//! (no network, a few microseconds) and compares the address, so the plugin's cached path can
//! tell whether the forwarder is up without connecting to it.
//!
//! `hoop-kube credential` calls [`ensure_running`] on every kubectl invocation that is not
//! answered by the cached path. When the forwarder is not up, under the lock
//! `<lock dir>/<profile>.forward` (so forty parallel kubectl calls start one forwarder, not
//! forty), it starts `hoop-kube forward --profile NAME` detached — its own process group, stdin and
//! stdout closed, stderr appended to `$XDG_STATE_HOME/hoop-kube/forward-<profile>.log` — and waits
//! until it listens, so kubectl's first request does not meet a refused connection.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::login::profile::Profile;
use crate::login::refresh::{self, CredentialError};

/// How long a started forwarder may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the forwarder could not be started. One line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    #[error("cannot start the forwarder of profile \"{profile}\": {reason} (log: {})", .log.display())]
    Failed { profile: String, reason: String, log: PathBuf },
    #[error("{}", .0.to_string().trim_start_matches("hoop-kube: "))]
    Lock(#[from] CredentialError),
}

/// What [`ensure_running`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Launch {
    AlreadyRunning,
    Started { pid: u32 },
}

/// The file a running forwarder of `profile` keeps locked.
pub fn running_lock_path(lock_dir: &Path, profile: &str) -> PathBuf {
    lock_dir.join(format!("{profile}.forwarder"))
}

/// Held by a running profile forwarder; dropping it (or dying) releases the lock.
#[derive(Debug)]
pub struct RunningLock {
    file: std::fs::File,
}

impl RunningLock {
    /// Say that the forwarder now accepts connections on `addr` (only then does [`running`]
    /// answer true).
    pub fn listening(&mut self, addr: SocketAddr) {
        use std::io::{Seek as _, Write as _};
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = writeln!(self.file, "pid {} listen {addr}", std::process::id());
    }
}

/// Take the running lock of `profile`. Fails with the other forwarder's pid when one is already
/// running for the profile.
pub fn hold_running_lock(lock_dir: &Path, profile: &str) -> Result<RunningLock, String> {
    use std::io::{Seek as _, Write as _};
    std::fs::create_dir_all(lock_dir).map_err(|e| format!("cannot create {}: {e}", lock_dir.display()))?;
    let path = running_lock_path(lock_dir, profile);
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(format!("a forwarder for profile \"{profile}\" is already running ({})", holder.trim()));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "pid {} starting", std::process::id());
    Ok(RunningLock { file })
}

/// Whether a forwarder of `profile` runs and listens on `addr` (see the module documentation).
pub fn running(lock_dir: &Path, profile: &str, addr: SocketAddr) -> bool {
    let path = running_lock_path(lock_dir, profile);
    let Ok(mut file) = std::fs::File::open(&path) else {
        return false;
    };
    match file.try_lock_shared() {
        Err(std::fs::TryLockError::WouldBlock) => {}
        _ => return false, // nobody holds it (we just got it; dropping releases it) or it is unusable
    }
    // Read through the descriptor already open (this runs on every kubectl call).
    let mut s = String::new();
    std::io::Read::read_to_string(&mut file, &mut s).is_ok_and(|_| s.trim_end().ends_with(&format!(" listen {addr}")))
}

/// Whether something accepts connections on `addr`.
pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// The log file of `profile`'s background forwarder.
pub fn log_path(lock_dir: &Path, profile: &str) -> PathBuf {
    lock_dir.parent().unwrap_or(lock_dir).join(format!("forward-{profile}.log"))
}

/// Start `exe forward --profile NAME` unless the profile's forward address already answers.
pub async fn ensure_running(profile: &Profile, exe: &Path, lock_dir: &Path) -> Result<Launch, LaunchError> {
    let addr = profile.forward_listen;
    if running(lock_dir, &profile.name, addr) || listening(addr) {
        return Ok(Launch::AlreadyRunning);
    }
    let _lock = refresh::lock_profile(lock_dir, &format!("{}.forward", profile.name), START_TIMEOUT + Duration::from_secs(5)).await?;
    if listening(addr) {
        return Ok(Launch::AlreadyRunning);
    }
    let log = log_path(lock_dir, &profile.name);
    let failed = |reason: String| LaunchError::Failed { profile: profile.name.clone(), reason, log: log.clone() };
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| failed(format!("cannot open its log: {e}")))?;
    let log_len = stderr.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(exe);
    cmd.args(["forward", "--profile", &profile.name]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|e| failed(format!("cannot run {}: {e}", exe.display())))?;
    let started = Instant::now();
    loop {
        if listening(addr) {
            return Ok(Launch::Started { pid: child.id() });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read(&log).ok().map(|b| String::from_utf8_lossy(&b[(log_len as usize).min(b.len())..]).trim().lines().last().unwrap_or("").to_string()).unwrap_or_default();
            return Err(failed(if said.is_empty() { format!("it exited with {status}") } else { said }));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(failed(format!("it did not listen on {addr} within {} s", START_TIMEOUT.as_secs())));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
