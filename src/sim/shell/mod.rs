//! The tiny busybox-like command interpreter that runs "inside" a simulated
//! container.
//!
//! The simulator has no real containers, but `kubectl exec`, `kubectl attach`
//! and `kubectl cp` must still behave as if a Linux container with busybox
//! answered: exit codes, stdout vs stderr, a shell with prompt, the TTY line
//! discipline (echo, `^C`, `^D`, backspace, CR/LF mapping), and `tar` for
//! copying files. [`run`] executes one argv against the container's
//! [`PodFs`] with I/O over channels, which the WebSocket/SPDY layer connects
//! to the client. Nothing here spawns tasks: a command is one future, so
//! dropping it (client gone, `^C`) stops everything it started.
//!
//! Layout, one job per file: `parse` turns script text into commands, `interp` runs them
//! (control flow, pipelines, redirections, `sh` and its prompt loop), `builtins` and
//! `builtins_tar` are the commands themselves, `streams` the stdin/stdout/stderr a command
//! sees, and `tty` the terminal line discipline. This file is the session API.

mod builtins;
mod builtins_tar;
mod interp;
mod parse;
mod streams;
mod tty;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

pub use super::podfs::{resolve, Entry, FsError, PodFs};
use builtins::cmd_name;
use interp::{exec, Sh};
use streams::{Input, Io, Out};
use tty::{interrupted, line_discipline};

/// The channels of one exec/attach session.
pub struct ExecIo {
    /// Client input; `None` when no stdin is attached. A closed channel is EOF.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// Standard output.
    pub stdout: mpsc::Sender<Bytes>,
    /// Standard error; with `tty` the caller passes a clone of stdout's sender.
    pub stderr: mpsc::Sender<Bytes>,
    /// Latest terminal size as `(cols, rows)`, from the client's resize messages.
    pub resize: watch::Receiver<Option<(u16, u16)>>,
    /// Whether a terminal was requested (`kubectl exec -t`).
    pub tty: bool,
}

/// The container a command runs in.
pub struct ExecEnv {
    /// Environment variables, in the order the container spec gives them.
    pub env: Vec<(String, String)>,
    /// Container hostname (the pod name).
    pub hostname: String,
    /// The container's filesystem, shared by all sessions into it.
    pub fs: Arc<Mutex<PodFs>>,
}

type BoxFut<'a> = Pin<Box<dyn Future<Output = i32> + Send + 'a>>;
/// A builtin's result; `Err(code)` ends it early (e.g. 141 when stdout closed).
type R = Result<i32, i32>;
const SIGPIPE: i32 = 141;
const SIGINT: i32 = 130;

/// Runs `argv` (like `execve`, no shell parsing) to completion and returns
/// its exit code. Never panics; returns promptly (141) once the stdout
/// receiver is dropped, and with a TTY `^C` interrupts it (130).
pub async fn run(argv: Vec<String>, env: &ExecEnv, io: ExecIo) -> i32 {
    let ExecIo { stdin, stdout, stderr, resize, tty } = io;
    let (intr_tx, intr_rx) = watch::channel(0u64);
    let mut vars = env.env.clone();
    let mut default = |k: &str, v: &str| {
        if !vars.iter().any(|(n, _)| n == k) {
            vars.push((k.to_string(), v.to_string()));
        }
    };
    default("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    default("HOSTNAME", &env.hostname);
    default("HOME", "/root");
    if tty {
        default("TERM", "xterm");
    }
    let mut sh = Sh {
        vars,
        args: vec!["sh".into()],
        cwd: "/".into(),
        last: 0,
        exit: None,
        brk: None,
        loops: 0,
        errexit: false,
        fs: env.fs.clone(),
        hostname: env.hostname.clone(),
        tty,
        resize,
        intr: intr_rx.clone(),
    };
    let (mut input, ld) = match stdin {
        Some(raw) if tty => {
            let (ctx, crx) = mpsc::channel(1024);
            (Input::chan(crx, true), Some(line_discipline(raw, ctx, stdout.clone(), intr_tx)))
        }
        Some(raw) => (Input::chan(raw, false), None),
        None => (Input::none(), None),
    };
    let repl = wants_repl(&argv);
    let mut intr = intr_rx;
    let (out, err) = (Out::Chan(stdout.clone(), tty), Out::Chan(stderr, tty));
    let job = async {
        let fut = exec(&mut sh, argv, Io { inp: &mut input, out, err });
        if repl {
            return fut.await;
        }
        tokio::select! { c = fut => c, _ = interrupted(&mut intr) => SIGINT }
    };
    let ld = async move {
        if let Some(ld) = ld {
            ld.await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! { biased; c = job => c, _ = ld => 0, _ = stdout.closed() => SIGPIPE }
}

/// Whether argv starts an interactive shell (which handles `^C` itself).
fn wants_repl(argv: &[String]) -> bool {
    let shell = argv.first().and_then(|a| cmd_name(a)).is_some_and(|n| matches!(n, "sh" | "bash" | "ash"));
    let opts = argv.iter().skip(1).take_while(|a| a.starts_with('-') && a.len() > 1 && *a != "--");
    let has_c = opts.clone().any(|a| a.contains('c'));
    shell && !has_c && argv.len() == 1 + opts.count()
}

#[cfg(test)]
mod tests;
