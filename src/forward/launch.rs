//! Make sure a profile's forwarder is running, starting it in the background if it is not.
//!
//! `hoop-kube credential` calls [`ensure_running`] on every kubectl invocation, so the common case
//! (already listening) costs one loopback `connect`. Otherwise, under the lock
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
    if listening(addr) {
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
