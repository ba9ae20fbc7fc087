//! The process side of `hoop-kube run --agent`: a private directory for the agent's kubeconfig,
//! the command run with it, signals passed on, and the exit status as a shell reports it.
//!
//! **Why its own module.** The credential handling is in [`super`]; what is left is the part that
//! must not leak: the directory is created `0700` with a name nobody can predict (it fails rather
//! than reuse an existing one), and it is removed on every way out, including errors and panics
//! ([`PrivateDir`]'s `Drop`). While the command runs, `hoop-kube` stays in front of it only to
//! pass on SIGINT, SIGTERM and SIGHUP (so `kill` of the wrapper reaches the agent, and the
//! wrapper survives to revoke), and to report its status: its exit code, or 128 + N when signal N
//! ended it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// Why the command could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The private directory could not be made.
    #[error("cannot create a private directory in {}: {source}", .base.display())]
    Dir { base: PathBuf, source: std::io::Error },
    /// The command could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn { program: String, source: std::io::Error },
    /// Waiting for it failed.
    #[error("lost track of {program:?}: {source}")]
    Wait { program: String, source: std::io::Error },
    /// The signal handlers could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    /// A signal arrived before the command started; it was not started.
    #[error("interrupted by signal {signal} before the command started")]
    Interrupted { signal: Signal },
}

/// A `0700` directory that is deleted, with everything in it, when dropped (or by
/// [`PrivateDir::remove`], which reports failure).
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    removed: bool,
}

impl PrivateDir {
    /// A new directory `PREFIX-<random>` in `$XDG_RUNTIME_DIR` (a per-user tmpfs, when the login
    /// session has one), else in the system temporary directory.
    pub fn create(prefix: &str) -> Result<Self, LaunchError> {
        let base = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            Some(d) if d.is_absolute() && d.is_dir() => d,
            _ => std::env::temp_dir(),
        };
        Self::create_in(&base, prefix)
    }

    /// A new directory `PREFIX-<random>` in `base` (created `0700`; never an existing one).
    pub fn create_in(base: &Path, prefix: &str) -> Result<Self, LaunchError> {
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        let mut last = None;
        for _ in 0..8 {
            let path = base.join(format!("{prefix}-{}", hex::encode(rand::random::<[u8; 8]>())));
            match b.create(&path) {
                Ok(()) => return Ok(PrivateDir { path, removed: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(source) => return Err(LaunchError::Dir { base: base.to_path_buf(), source }),
            }
        }
        Err(LaunchError::Dir { base: base.to_path_buf(), source: last.unwrap_or_else(|| std::io::Error::other("no free name")) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Delete it now.
    pub fn remove(mut self) -> std::io::Result<()> {
        self.removed = true;
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if !self.removed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The exit code a shell reports for `status`: the code, or 128 + N when signal N ended it.
pub fn exit_code(status: &ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

/// A signal to pass on (its number).
pub type Signal = i32;

/// SIGINT, SIGTERM and SIGHUP, caught from [`Signals::listen`] on (the process no longer dies of
/// them) and queued for [`run`] to pass on. Listen as soon as there is something to clean up: a
/// signal that arrives before the command starts makes [`run`] return
/// [`LaunchError::Interrupted`] instead of starting it.
#[derive(Debug)]
pub struct Signals {
    rx: tokio::sync::mpsc::UnboundedReceiver<Signal>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Signals {
    /// Start catching the signals.
    pub fn listen() -> Result<Self, LaunchError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Signals { rx, task: Some(catch(tx).map_err(LaunchError::Signals)?) })
    }

    /// Signals sent through the returned sender only; no handler is installed (tests, and
    /// callers that supervise the command themselves).
    pub fn manual() -> (tokio::sync::mpsc::UnboundedSender<Signal>, Self) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (tx, Signals { rx, task: None })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // The handlers stay installed (tokio never uninstalls them): later signals are ignored,
        // so cleanup after the command exits is not cut short.
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Run `program` with `args`, the inherited environment plus `env`, and the inherited stdin,
/// stdout and stderr; pass the [`Signals`] caught on to it until it exits.
pub async fn run(program: &OsStr, args: &[OsString], env: &[(&str, &OsStr)], mut signals: Signals) -> Result<ExitStatus, LaunchError> {
    if let Ok(signal) = signals.rx.try_recv() {
        return Err(LaunchError::Interrupted { signal });
    }
    let name = program.to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|source| LaunchError::Spawn { program: name.clone(), source })?;
    supervise(child, &mut signals.rx).await.map_err(|source| LaunchError::Wait { program: name, source })
}

#[cfg(unix)]
fn catch(tx: tokio::sync::mpsc::UnboundedSender<Signal>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            let kind = tokio::select! {
                Some(()) = int.recv() => SignalKind::interrupt(),
                Some(()) = term.recv() => SignalKind::terminate(),
                Some(()) = hup.recv() => SignalKind::hangup(),
                else => return,
            };
            if tx.send(kind.as_raw_value()).is_err() {
                return;
            }
        }
    }))
}

#[cfg(not(unix))]
fn catch(_tx: tokio::sync::mpsc::UnboundedSender<Signal>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // Ctrl-C reaches the whole console process group on Windows; nothing to pass on.
    Ok(tokio::spawn(async {}))
}

/// Wait for `child`, passing every signal from `signals` on to it.
pub async fn supervise(mut child: tokio::process::Child, signals: &mut tokio::sync::mpsc::UnboundedReceiver<Signal>) -> std::io::Result<ExitStatus> {
    loop {
        tokio::select! {
            status = child.wait() => return status,
            Some(sig) = signals.recv() => pass_on(&child, sig),
        }
    }
}

#[cfg(unix)]
fn pass_on(child: &tokio::process::Child, sig: Signal) {
    use nix::sys::signal::{kill, Signal as NixSignal};
    use nix::unistd::Pid;
    // `id()` is `None` once the child has been reaped: nothing left to signal.
    let (Some(pid), Ok(sig)) = (child.id().and_then(|p| i32::try_from(p).ok()), NixSignal::try_from(sig)) else { return };
    if let Err(e) = kill(Pid::from_raw(pid), sig) {
        tracing::debug!(pid, signal = %sig, error = %e, "cannot pass the signal on");
    }
}

#[cfg(not(unix))]
fn pass_on(_child: &tokio::process::Child, _sig: Signal) {}
