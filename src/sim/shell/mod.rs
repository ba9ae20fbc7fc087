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

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

pub use super::podfs::{resolve, Entry, FsError, PodFs};
use super::podfs::{fs_command, now_secs, strftime, tar_create, tar_extract, ExtractOpts, TarScan, TAR_EXTRACT_LIMIT};

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
const CHUNK: usize = 32 * 1024;

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

async fn interrupted(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await
    }
}

/// Canonical-mode line discipline of the simulated pty: echo, ICRNL, erase,
/// kill, `^C` (interrupt), `^D` (EOF: an empty chunk on `cooked`).
async fn line_discipline(mut raw: mpsc::Receiver<Bytes>, cooked: mpsc::Sender<Bytes>, echo: mpsc::Sender<Bytes>, intr: watch::Sender<u64>) {
    let mut line: Vec<u8> = Vec::new();
    let flush = |e: &mut Vec<u8>| {
        let b = Bytes::from(std::mem::take(e));
        let echo = echo.clone();
        async move {
            if !b.is_empty() {
                let _ = echo.send(b).await;
            }
        }
    };
    while let Some(chunk) = raw.recv().await {
        let mut e = Vec::new();
        for &b in chunk.iter() {
            match b {
                b'\r' | b'\n' => {
                    e.extend_from_slice(b"\r\n");
                    line.push(b'\n');
                    flush(&mut e).await;
                    let _ = cooked.try_send(Bytes::from(std::mem::take(&mut line)));
                }
                0x03 => {
                    e.extend_from_slice(b"^C\r\n");
                    line.clear();
                    flush(&mut e).await;
                    intr.send_modify(|g| *g = g.wrapping_add(1));
                }
                0x04 => {
                    flush(&mut e).await;
                    let _ = cooked.try_send(Bytes::from(std::mem::take(&mut line)));
                }
                0x7f | 0x08 => (0..erase(&mut line)).for_each(|_| e.extend_from_slice(b"\x08 \x08")),
                0x15 => loop {
                    let n = erase(&mut line);
                    if n == 0 {
                        break;
                    }
                    (0..n).for_each(|_| e.extend_from_slice(b"\x08 \x08"));
                },
                _ if line.len() >= 4095 => {}
                b if b < 0x20 && b != b'\t' => {
                    e.extend_from_slice(&[b'^', b + 0x40]);
                    line.push(b);
                }
                b => {
                    e.push(b);
                    line.push(b);
                }
            }
        }
        flush(&mut e).await;
    }
    // Hangup: a half-typed line is discarded, and the reader sees EOF.
}

/// Removes the last character (UTF-8 aware) of `line`; returns its echo width.
fn erase(line: &mut Vec<u8>) -> usize {
    match line.pop() {
        None => 0,
        Some(b) if b < 0x20 && b != b'\t' => 2,
        Some(b) if b >= 0x80 => {
            let mut b = b;
            while (0x80..0xc0).contains(&b) {
                match line.pop() {
                    Some(x) => b = x,
                    None => break,
                }
            }
            1
        }
        Some(_) => 1,
    }
}

/// Where a command writes: a session channel (with ONLCR on a tty), a file, or nowhere.
#[derive(Clone)]
enum Out {
    Chan(mpsc::Sender<Bytes>, bool),
    File(Arc<Mutex<PodFs>>, String),
    Null,
}

impl Out {
    async fn put(&self, d: &[u8]) -> Result<(), i32> {
        for part in d.chunks(CHUNK) {
            match self {
                Out::Chan(tx, onlcr) => {
                    let b = if *onlcr {
                        let mut v = Vec::with_capacity(part.len() + 16);
                        part.iter().for_each(|&c| v.extend_from_slice(if c == b'\n' { b"\r\n" } else { std::slice::from_ref(&c) }));
                        Bytes::from(v)
                    } else {
                        Bytes::copy_from_slice(part)
                    };
                    tx.send(b).await.map_err(|_| SIGPIPE)?;
                }
                Out::File(fs, p) => lock(fs).append(p, part).map_err(|_| 1)?,
                Out::Null => {}
            }
        }
        Ok(())
    }
    async fn msg(&self, s: impl AsRef<str>) {
        let _ = self.put(format!("{}\n", s.as_ref()).as_bytes()).await;
    }
}

fn lock(fs: &Mutex<PodFs>) -> MutexGuard<'_, PodFs> {
    fs.lock().unwrap_or_else(|e| e.into_inner())
}

/// A command's stdin. With `marker_eof` (the tty's cooked channel) an empty
/// chunk is a one-time EOF (`^D`), as a terminal read returning 0.
struct Input {
    rx: Option<mpsc::Receiver<Bytes>>,
    buf: Vec<u8>,
    marker_eof: bool,
}

impl Input {
    fn none() -> Self {
        Input { rx: None, buf: Vec::new(), marker_eof: false }
    }
    fn chan(rx: mpsc::Receiver<Bytes>, marker_eof: bool) -> Self {
        Input { rx: Some(rx), buf: Vec::new(), marker_eof }
    }
    fn bytes(buf: Vec<u8>) -> Self {
        Input { rx: None, buf, marker_eof: false }
    }
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.rx.as_mut()?.recv().await {
                None => {
                    self.rx = None;
                    return None;
                }
                Some(b) if b.is_empty() && self.marker_eof => return None,
                Some(b) if b.is_empty() => {}
                Some(b) => return Some(b.to_vec()),
            }
        }
    }
    /// The next chunk of input; `None` at EOF.
    async fn read(&mut self) -> Option<Vec<u8>> {
        if !self.buf.is_empty() {
            return Some(std::mem::take(&mut self.buf));
        }
        self.next_chunk().await
    }
    /// One line including its `\n` (a partial last line at EOF; lines are cut at 1 MiB).
    async fn read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                return Some(std::mem::replace(&mut self.buf, rest));
            }
            if self.buf.len() >= 1 << 20 {
                return Some(std::mem::take(&mut self.buf));
            }
            match self.next_chunk().await {
                Some(c) => self.buf.extend_from_slice(&c),
                None if self.buf.is_empty() => return None,
                None => return Some(std::mem::take(&mut self.buf)),
            }
        }
    }
}

/// The standard streams of one command.
struct Io<'a> {
    inp: &'a mut Input,
    out: Out,
    err: Out,
}

impl Io<'_> {
    fn reborrow(&mut self) -> Io<'_> {
        Io { inp: &mut *self.inp, out: self.out.clone(), err: self.err.clone() }
    }
}

/// Shell state; pipeline stages and `sh -c` get clones (subshells).
#[derive(Clone)]
struct Sh {
    vars: Vec<(String, String)>,
    args: Vec<String>,
    cwd: String,
    last: i32,
    exit: Option<i32>,
    /// Pending `break` (false) / `continue` (true) and how many loop levels it spans.
    brk: Option<(bool, u32)>,
    loops: u32,
    errexit: bool,
    fs: Arc<Mutex<PodFs>>,
    hostname: String,
    tty: bool,
    resize: watch::Receiver<Option<(u16, u16)>>,
    intr: watch::Receiver<u64>,
}

impl Sh {
    /// After a loop body: whether the loop must stop (exit, or a `break`/outer `continue`).
    fn loop_done(&mut self) -> bool {
        match self.brk {
            _ if self.exit.is_some() => true,
            Some((true, 1)) => {
                self.brk = None;
                false
            }
            Some(_) => true,
            None => false,
        }
    }
    fn var(&self, k: &str) -> Option<&str> {
        self.vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn set_var(&mut self, k: &str, v: String) {
        match self.vars.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.vars.push((k.to_string(), v)),
        }
    }
    fn param(&self, name: &str) -> String {
        match name {
            "?" => self.last.to_string(),
            "$" => "1".into(),
            "#" => self.args.len().saturating_sub(1).to_string(),
            "@" | "*" => self.args.get(1..).unwrap_or_default().join(" "),
            n if n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse::<usize>().ok().and_then(|i| self.args.get(i)).cloned().unwrap_or_default()
            }
            n => self.var(n).unwrap_or_default().to_string(),
        }
    }
    fn path(&self, p: &str) -> String {
        resolve(&self.cwd, p)
    }
    fn read_file(&self, p: &str) -> Result<Vec<u8>, FsError> {
        let fs = lock(&self.fs);
        let p = self.path(p);
        if fs.is_dir(&p) {
            return Err(FsError::IsADirectory);
        }
        fs.read(&p).map(|d| d.to_vec()).ok_or(FsError::NotFound)
    }
}

/// Maps `/bin/echo`-style paths to the builtin's name (`None`: not a bin dir).
fn cmd_name(a: &str) -> Option<&str> {
    if !a.contains('/') {
        return Some(a);
    }
    let dirs = ["/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/"];
    dirs.iter().filter_map(|d| a.strip_prefix(d)).find(|n| !n.contains('/') && !n.is_empty())
}

/// Runs one command (argv already expanded).
fn exec<'a>(sh: &'a mut Sh, argv: Vec<String>, mut io: Io<'a>) -> BoxFut<'a> {
    Box::pin(async move {
        match dispatch(sh, &argv, &mut io).await {
            Ok(c) | Err(c) => c,
        }
    })
}

/// Parses and runs a script in `sh`; syntax errors give exit status 2.
async fn run_script(sh: &mut Sh, src: &str, io: &mut Io<'_>) -> i32 {
    match parse(src) {
        Ok(list) => run_list(sh, &list, io).await,
        Err(e) => {
            io.err.msg(format!("sh: syntax error: {e}")).await;
            sh.last = 2;
            2
        }
    }
}

async fn run_list(sh: &mut Sh, list: &[AndOr], io: &mut Io<'_>) -> i32 {
    for ao in list {
        let mut code = run_pipeline(sh, &ao.first, io).await;
        sh.last = code;
        for (and, p) in &ao.rest {
            if sh.exit.is_some() {
                break;
            }
            if *and == (code == 0) {
                code = run_pipeline(sh, p, io).await;
                sh.last = code;
            }
        }
        if let Some(c) = sh.exit {
            return c;
        }
        if sh.brk.is_some() {
            return code;
        }
        if sh.errexit && code != 0 && ao.rest.is_empty() && !ao.first.neg {
            return code;
        }
    }
    sh.last
}

async fn run_pipeline(sh: &mut Sh, p: &Pipeline, io: &mut Io<'_>) -> i32 {
    let code = if p.cmds.len() == 1 {
        run_cmd(sh, &p.cmds[0], io.inp, io.out.clone(), io.err.clone()).await
    } else {
        let n = p.cmds.len();
        let (mut txs, mut inputs) = (Vec::new(), Vec::new());
        for _ in 1..n {
            let (tx, rx) = mpsc::channel(16);
            txs.push(tx);
            inputs.push(Input::chan(rx, false));
        }
        let mut subs = vec![sh.clone(); n];
        let ins = std::iter::once(&mut *io.inp).chain(inputs.iter_mut());
        let mut futs: Vec<BoxFut<'_>> = Vec::new();
        for (i, ((cmd, s), inp)) in p.cmds.iter().zip(subs.iter_mut()).zip(ins).enumerate() {
            let out = txs.get(i).map_or_else(|| io.out.clone(), |tx| Out::Chan(tx.clone(), false));
            let err = io.err.clone();
            futs.push(Box::pin(async move {
                let code = run_cmd(s, cmd, &mut *inp, out, err).await;
                if i > 0 {
                    inp.rx = None; // the reader is gone: the writer sees a closed pipe
                }
                code
            }));
        }
        drop(txs);
        join_all(futs).await.last().copied().unwrap_or(0)
    };
    if p.neg {
        (code == 0) as i32
    } else {
        code
    }
}

/// Polls all futures concurrently, dropping each as it finishes (closing its pipe).
async fn join_all(futs: Vec<BoxFut<'_>>) -> Vec<i32> {
    let mut slots: Vec<Option<BoxFut<'_>>> = futs.into_iter().map(Some).collect();
    let mut codes = vec![0; slots.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, code) in slots.iter_mut().zip(codes.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(c) => {
                        *code = c;
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    codes
}

/// Runs a simple or compound command.
fn run_cmd<'a>(sh: &'a mut Sh, cmd: &'a Cmd, inp: &'a mut Input, out: Out, err: Out) -> BoxFut<'a> {
    let c = match cmd {
        Cmd::Simple(c) => return run_simple(sh, c, inp, out, err),
        c => c,
    };
    Box::pin(async move {
        let io = &mut Io { inp, out, err };
        let mut last = 0;
        let is_loop = !matches!(c, Cmd::If(..));
        sh.loops += is_loop as u32;
        match c {
            Cmd::If(arms, els) => {
                for (cond, body) in arms {
                    let ok = run_list(sh, cond, io).await == 0;
                    if sh.exit.is_some() || sh.brk.is_some() {
                        return sh.last;
                    }
                    if ok {
                        return run_list(sh, body, io).await;
                    }
                }
                return if els.is_empty() { 0 } else { run_list(sh, els, io).await };
            }
            Cmd::Loop(until, cond, body) => loop {
                tokio::task::yield_now().await;
                let ok = run_list(sh, cond, io).await == 0;
                if sh.exit.is_some() || sh.brk.is_some() || ok == *until {
                    break;
                }
                last = run_list(sh, body, io).await;
                if sh.loop_done() {
                    break;
                }
            },
            Cmd::For(name, words, body) => {
                let items = match words {
                    Some(ws) => ws.iter().flat_map(|w| expand(sh, w, true)).collect(),
                    None => sh.args.get(1..).unwrap_or_default().to_vec(),
                };
                for it in items {
                    tokio::task::yield_now().await;
                    sh.set_var(name, it);
                    last = run_list(sh, body, io).await;
                    if sh.loop_done() {
                        break;
                    }
                }
            }
            Cmd::Simple(_) => {}
        }
        sh.loops -= is_loop as u32;
        if let Some((_, n)) = sh.brk.as_mut().filter(|_| is_loop) {
            *n -= 1; // leaving one loop level
            if *n == 0 {
                sh.brk = None;
            }
        }
        last
    })
}

/// Expands words, applies assignments and redirections, runs the command.
fn run_simple<'a>(sh: &'a mut Sh, cmd: &'a Simple, inp: &'a mut Input, mut out: Out, mut err: Out) -> BoxFut<'a> {
    Box::pin(async move {
        let mut assigns = Vec::new();
        let mut argv = Vec::new();
        for w in &cmd.words {
            match w.assignment() {
                Some((k, v)) if argv.is_empty() => assigns.push((k, expand(sh, &v, false).join(""))),
                _ => argv.extend(expand(sh, w, true)),
            }
        }
        let mut file_in = None;
        for (fd, op, target) in &cmd.redirs {
            let t = expand(sh, target, false).join("");
            let fd = fd.unwrap_or(if *op == "<" { 0 } else { 1 });
            let dest = match (*op, t.as_str()) {
                (">&", "1") => out.clone(),
                (">&", "2") => err.clone(),
                (">&", _) => {
                    err.msg(format!("sh: {t}: Bad file descriptor")).await;
                    return 1;
                }
                ("<", _) => {
                    let data = if t == "/dev/null" { Ok(Vec::new()) } else { sh.read_file(&t) };
                    match data {
                        Ok(d) => file_in = Some(Input::bytes(d)),
                        Err(e) => {
                            err.msg(format!("sh: can't open '{t}': {e}")).await;
                            return 1;
                        }
                    }
                    continue;
                }
                (_, "/dev/null") => Out::Null,
                (_, "/dev/stdout") => out.clone(),
                (_, "/dev/stderr") => err.clone(),
                (op, _) => {
                    let p = sh.path(&t);
                    let r = {
                        let mut fs = lock(&sh.fs);
                        if op == ">>" { fs.append(&p, b"") } else { fs.put(&p, Vec::new(), None, None, false) }
                    };
                    if let Err(e) = r {
                        let why = if matches!(e, FsError::NotFound) { "nonexistent directory".to_string() } else { e.to_string() };
                        err.msg(format!("sh: can't create {t}: {why}")).await;
                        return 1;
                    }
                    Out::File(sh.fs.clone(), p)
                }
            };
            match fd {
                1 => out = dest,
                2 => err = dest,
                _ => {}
            }
        }
        if argv.is_empty() {
            assigns.into_iter().for_each(|(k, v)| sh.set_var(&k, v));
            return 0;
        }
        let saved = (!assigns.is_empty()).then(|| sh.vars.clone());
        assigns.into_iter().for_each(|(k, v)| sh.set_var(&k, v));
        let inp = match file_in.as_mut() {
            Some(i) => i,
            None => inp,
        };
        let code = exec(sh, argv, Io { inp, out, err }).await;
        if let Some(v) = saved {
            sh.vars = v;
        }
        code
    })
}

/// `sh`/`bash`: `-c SCRIPT [NAME ARGS…]`, `sh FILE [ARGS…]`, or a REPL on stdin.
async fn sh_cmd(sh: &mut Sh, argv: &[String], io: &mut Io<'_>) -> R {
    let (mut i, mut cmd, mut interactive) = (1, false, false);
    let mut child = sh.clone();
    (child.exit, child.last, child.errexit, child.brk, child.loops) = (None, 0, false, None, 0);
    while let Some(a) = argv.get(i).filter(|a| a.starts_with('-') && a.len() > 1) {
        i += 1;
        if a == "--" {
            break;
        }
        for c in a.chars().skip(1) {
            match c {
                'c' => cmd = true,
                'e' => child.errexit = true,
                'i' => interactive = true,
                'l' | 's' => {}
                c => {
                    io.err.msg(format!("sh: -{c}: invalid option\nUsage: sh [-eil] [-c SCRIPT [NAME ARG...] | FILE ARG...]")).await;
                    return Ok(2);
                }
            }
        }
    }
    if cmd {
        let Some(script) = argv.get(i) else {
            io.err.msg("sh: -c requires an argument").await;
            return Ok(2);
        };
        child.args = argv.get(i + 1..).filter(|a| !a.is_empty()).map_or_else(|| vec!["sh".into()], |a| a.to_vec());
        return Ok(run_script(&mut child, script, io).await);
    }
    if let Some(file) = argv.get(i).filter(|_| !interactive) {
        let src = match child.read_file(file) {
            Ok(s) => String::from_utf8_lossy(&s).into_owned(),
            Err(e) => {
                io.err.msg(format!("sh: can't open '{file}': {e}")).await;
                return Ok(127);
            }
        };
        child.args = argv[i..].to_vec();
        return Ok(run_script(&mut child, &src, io).await);
    }
    child.args = vec![argv[0].clone()];
    repl(&mut child, io).await
}

/// Interactive loop: prompt (tty only), read a line, run it; `^C` abandons
/// the line or the running command (status 130); EOF exits with `$?`.
async fn repl(sh: &mut Sh, io: &mut Io<'_>) -> R {
    let mut intr = sh.intr.clone();
    loop {
        if sh.tty {
            let home = sh.var("HOME").unwrap_or("/root").to_string();
            let dir = match sh.cwd.strip_prefix(&home) {
                Some(rest) if home != "/" && (rest.is_empty() || rest.starts_with('/')) => format!("~{rest}"),
                _ => sh.cwd.clone(),
            };
            io.out.put(format!("{dir} # ").as_bytes()).await?;
        }
        intr.borrow_and_update();
        let line = tokio::select! {
            l = io.inp.read_line() => l,
            _ = interrupted(&mut intr) => {
                sh.last = SIGINT;
                continue;
            }
        };
        let Some(line) = line else { return Ok(sh.last) };
        let mut src = String::from_utf8_lossy(&line).into_owned();
        // An unfinished command (open quote, `if` without `fi`) continues on the next line.
        while matches!(parse(&src), Err(e) if e == UNTERMINATED || e == unexpected(None)) {
            if sh.tty {
                io.out.put(b"> ").await?;
            }
            match tokio::select! { l = io.inp.read_line() => Some(l), _ = interrupted(&mut intr) => None } {
                Some(Some(l)) => src.push_str(&String::from_utf8_lossy(&l)),
                Some(None) => break, // EOF: run it for the syntax error
                None => {
                    src.clear(); // ^C abandons the command
                    sh.last = SIGINT;
                }
            }
            if src.is_empty() {
                break;
            }
        }
        if src.is_empty() {
            continue;
        }
        let code = tokio::select! {
            c = run_script(sh, &src, io) => c,
            _ = interrupted(&mut intr) => SIGINT,
        };
        (sh.last, sh.brk, sh.loops) = (code, None, 0);
        if let Some(c) = sh.exit {
            return Ok(c);
        }
    }
}

// ---- builtins ----

async fn dispatch(sh: &mut Sh, argv: &[String], io: &mut Io<'_>) -> R {
    let Some(a0) = argv.first() else { return Ok(0) };
    let args = &argv[1..];
    let name = cmd_name(a0).unwrap_or("");
    match name {
        "echo" => echo(args, io).await,
        "cat" => cat(sh, args, io).await,
        "env" | "printenv" => env_cmd(sh, name, args, io).await,
        "true" | ":" => Ok(0),
        "false" => Ok(1),
        "exit" => {
            let code = match args.first().map(|a| a.parse::<i64>().map_err(|_| a)) {
                None => sh.last,
                Some(Ok(n)) => (n & 0xff) as i32,
                Some(Err(a)) => {
                    io.err.msg(format!("sh: exit: Illegal number: {a}")).await;
                    2
                }
            };
            sh.exit = Some(code);
            Ok(code)
        }
        "sleep" => sleep(args, io).await,
        "break" | "continue" => {
            let n = args.first().map_or(Ok(1), |a| a.parse::<u32>().map_err(|_| a));
            match n {
                Ok(n) if n > 0 => {
                    if sh.loops > 0 {
                        sh.brk = Some((name == "continue", n.min(sh.loops)));
                    }
                    Ok(0)
                }
                _ => {
                    io.err.msg(format!("sh: {name}: Illegal number: {}", args[0])).await;
                    Ok(1)
                }
            }
        }
        "read" => {
            let names: Vec<&String> = args.iter().filter(|a| *a != "-r").collect();
            let Some(line) = io.inp.read_line().await else { return Ok(1) };
            let line = String::from_utf8_lossy(&line);
            let mut rest = line.trim_end_matches('\n').trim_start_matches([' ', '\t']);
            for (i, n) in names.iter().enumerate() {
                let (v, r) = match rest.split_once([' ', '\t']) {
                    Some((v, r)) if i + 1 < names.len() => (v, r.trim_start_matches([' ', '\t'])),
                    _ => (rest.trim_end_matches([' ', '\t']), ""),
                };
                sh.set_var(n, v.to_string());
                rest = r;
            }
            if names.is_empty() {
                sh.set_var("REPLY", rest.to_string());
            }
            Ok(0)
        }
        "exec" if args.is_empty() => Ok(0),
        "exec" => {
            let code = exec(sh, args.to_vec(), io.reborrow()).await;
            sh.exit = Some(code);
            Ok(code)
        }
        "hostname" => out_line(io, &sh.hostname).await,
        "pwd" => out_line(io, &sh.cwd).await,
        "whoami" => out_line(io, "root").await,
        "id" => out_line(io, "uid=0(root) gid=0(root) groups=0(root)").await,
        "cd" => {
            let target = args.first().map_or_else(|| sh.var("HOME").unwrap_or("/").to_string(), |a| a.clone());
            let dir = sh.path(&target);
            if !lock(&sh.fs).is_dir(&dir) {
                io.err.msg(format!("sh: cd: can't cd to {target}: No such file or directory")).await;
                return Ok(2);
            }
            sh.set_var("PWD", dir.clone());
            sh.cwd = dir;
            Ok(0)
        }
        "export" => {
            for a in args {
                if let Some((k, v)) = a.split_once('=') {
                    sh.set_var(k, v.to_string());
                }
            }
            Ok(0)
        }
        "unset" => {
            sh.vars.retain(|(k, _)| !args.contains(k));
            Ok(0)
        }
        "test" | "[" => test_cmd(sh, name, args, io).await,
        "head" | "tail" | "wc" => head_tail_wc(sh, name, args, io).await,
        "stty" => {
            let Some((c, r)) = sh.tty.then(|| sh.resize.borrow().unwrap_or((0, 0))) else {
                io.err.msg("stty: standard input: Not a tty").await;
                return Ok(1);
            };
            match args.first().map(String::as_str) {
                Some("size") => out_line(io, &format!("{r} {c}")).await,
                None => out_line(io, &format!("speed 38400 baud; rows {r}; columns {c}; line = 0;")).await,
                Some(a) => {
                    io.err.msg(format!("stty: invalid argument '{a}'\nUsage: stty [size]")).await;
                    Ok(1)
                }
            }
        }
        "seq" => seq(args, io).await,
        "date" => {
            let fmt = match args.iter().find(|a| *a != "-u") {
                None => "%a %b %e %H:%M:%S UTC %Y",
                Some(f) if f.starts_with('+') => &f[1..],
                Some(f) => {
                    io.err.msg(format!("date: invalid date '{f}'\nUsage: date [-u] [+FORMAT]")).await;
                    return Ok(1);
                }
            };
            out_line(io, &strftime(fmt, now_secs())).await
        }
        "uname" => {
            let all = ["Linux", &sh.hostname, "6.6.0-sim", "#1 SMP", "x86_64", "GNU/Linux"].join(" ");
            out_line(io, if args.iter().any(|a| a.contains('a')) { &all } else { "Linux" }).await
        }
        "tar" => tar_cmd(sh, args, io).await,
        "sh" | "bash" | "ash" => sh_cmd(sh, argv, io).await,
        "ls" | "mkdir" | "rm" | "touch" => {
            let r = fs_command(&mut lock(&sh.fs), &sh.cwd, name, args);
            io.out.put(&r.out).await?;
            for e in r.err {
                io.err.msg(e).await;
            }
            Ok(r.code)
        }
        _ => {
            io.err.msg(format!("sh: {a0}: not found")).await;
            Ok(127)
        }
    }
}

async fn out_line(io: &Io<'_>, s: &str) -> R {
    io.out.put(format!("{s}\n").as_bytes()).await?;
    Ok(0)
}

async fn bad_usage(io: &Io<'_>, name: &str, problem: String, usage: &str) -> R {
    io.err.msg(format!("{name}: {problem}\nUsage: {name} {usage}")).await;
    Ok(1)
}

/// Splits leading option clusters (letters in `allowed`) from operands; `Err` is the bad letter.
fn getopts<'a>(args: &'a [String], allowed: &str) -> Result<(String, &'a [String]), char> {
    let (mut flags, mut i) = (String::new(), 0);
    while let Some(a) = args.get(i).filter(|a| a.starts_with('-') && a.len() > 1) {
        i += 1;
        if a == "--" {
            break;
        }
        for c in a.chars().skip(1) {
            if !allowed.contains(c) {
                return Err(c);
            }
            flags.push(c);
        }
    }
    Ok((flags, &args[i..]))
}

async fn echo(mut args: &[String], io: &mut Io<'_>) -> R {
    let (mut nl, mut esc) = (true, false);
    while let Some(a) = args.first().filter(|a| a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| "neE".contains(c))) {
        a.chars().skip(1).for_each(|c| match c {
            'n' => nl = false,
            c => esc = c == 'e',
        });
        args = &args[1..];
    }
    let mut s = args.join(" ");
    if esc {
        let (mut o, mut it) = (String::new(), s.chars());
        while let Some(c) = it.next() {
            match (c, c == '\\') {
                (_, true) => match it.next() {
                    Some('n') => o.push('\n'),
                    Some('t') => o.push('\t'),
                    Some('r') => o.push('\r'),
                    Some('\\') => o.push('\\'),
                    Some('c') => {
                        nl = false;
                        break;
                    }
                    Some(d) => o.extend(['\\', d]),
                    None => o.push('\\'),
                },
                _ => o.push(c),
            }
        }
        s = o;
    }
    if nl {
        s.push('\n');
    }
    io.out.put(s.as_bytes()).await?;
    Ok(0)
}

/// Runs `body` on each operand's input (`-` or no operand: stdin); missing
/// files are reported as `NAME: can't open 'F': …` and make the result 1.
macro_rules! each_input {
    ($sh:expr, $io:expr, $name:expr, $files:expr, |$f:ident, $inp:ident| $body:block) => {{
        let mut code = 0;
        let stdin = [String::from("-")];
        let files: &[String] = if $files.is_empty() { &stdin } else { $files };
        for $f in files {
            let mut file_inp;
            let $inp: &mut Input = if $f == "-" {
                &mut *$io.inp
            } else {
                match $sh.read_file($f) {
                    Ok(d) => {
                        file_inp = Input::bytes(d);
                        &mut file_inp
                    }
                    Err(FsError::IsADirectory) => {
                        $io.err.msg(format!("{}: read error: Is a directory", $name)).await;
                        code = 1;
                        continue;
                    }
                    Err(e) => {
                        $io.err.msg(format!("{}: can't open '{}': {e}", $name, $f)).await;
                        code = 1;
                        continue;
                    }
                }
            };
            $body
        }
        code
    }};
}

async fn cat(sh: &Sh, args: &[String], io: &mut Io<'_>) -> R {
    let files = match getopts(args, "u") {
        Ok((_, f)) => f,
        Err(c) => return bad_usage(io, "cat", format!("invalid option -- '{c}'"), "[FILE]...").await,
    };
    let out = io.out.clone();
    Ok(each_input!(sh, io, "cat", files, |_f, inp| {
        while let Some(c) = inp.read().await {
            out.put(&c).await?;
        }
    }))
}

async fn env_cmd(sh: &mut Sh, name: &str, args: &[String], io: &mut Io<'_>) -> R {
    if name == "printenv" && !args.is_empty() {
        let mut code = 0;
        for a in args {
            match sh.var(a).map(str::to_string) {
                Some(v) => _ = out_line(io, &v).await?,
                None => code = 1,
            }
        }
        return Ok(code);
    }
    let mut child = sh.clone();
    let mut rest = args;
    while let Some(a) = rest.first() {
        match a.split_once('=') {
            _ if a == "-i" && name == "env" => child.vars.clear(),
            Some((k, v)) if name == "env" && !k.is_empty() => child.set_var(k, v.to_string()),
            None if a.starts_with('-') && a.len() > 1 => {
                return bad_usage(io, name, format!("invalid option -- '{}'", &a[1..]), "[-i] [NAME=VALUE]... [COMMAND [ARG]...]").await;
            }
            _ => break,
        }
        rest = &rest[1..];
    }
    if rest.is_empty() {
        let text: String = child.vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        io.out.put(text.as_bytes()).await?;
        return Ok(0);
    }
    Ok(exec(&mut child, rest.to_vec(), io.reborrow()).await)
}

async fn sleep(args: &[String], io: &mut Io<'_>) -> R {
    if args.is_empty() {
        return bad_usage(io, "sleep", "missing operand".into(), "N[smhd]...").await;
    }
    let mut total = 0f64;
    for a in args {
        let (num, mult) = match a.char_indices().last() {
            Some((i, 's')) => (&a[..i], 1.0),
            Some((i, 'm')) => (&a[..i], 60.0),
            Some((i, 'h')) => (&a[..i], 3600.0),
            Some((i, 'd')) => (&a[..i], 86400.0),
            _ => (a.as_str(), 1.0),
        };
        match num.parse::<f64>() {
            Ok(n) if n >= 0.0 && !num.starts_with('+') => total += n * mult,
            _ => return bad_usage(io, "sleep", format!("invalid number '{a}'"), "N[smhd]...").await,
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(total.min(1e9))).await;
    Ok(0)
}

async fn seq(args: &[String], io: &mut Io<'_>) -> R {
    let mut nums = Vec::new();
    for a in args {
        match a.parse::<i64>() {
            Ok(n) => nums.push(n),
            Err(_) => return bad_usage(io, "seq", format!("invalid number '{a}'"), "[FIRST [INC]] LAST").await,
        }
    }
    let (mut i, inc, last) = match nums[..] {
        [l] => (1, 1, l),
        [f, l] => (f, 1, l),
        [f, inc, l] if inc != 0 => (f, inc, l),
        _ => return bad_usage(io, "seq", "bad arguments".into(), "[FIRST [INC]] LAST").await,
    };
    let mut buf = String::new();
    while (inc > 0 && i <= last) || (inc < 0 && i >= last) {
        buf.push_str(&format!("{i}\n"));
        if buf.len() >= 8192 {
            io.out.put(std::mem::take(&mut buf).as_bytes()).await?;
        }
        let Some(n) = i.checked_add(inc) else { break };
        i = n;
    }
    io.out.put(buf.as_bytes()).await?;
    Ok(0)
}

async fn head_tail_wc(sh: &Sh, name: &str, args: &[String], io: &mut Io<'_>) -> R {
    let usage = match name {
        "wc" => "[-clw] [FILE]...",
        _ => "[-n [+]N | -c [+]N] [FILE]...",
    };
    let (mut bytes, mut count, mut from_start, mut files, mut flags) = (false, 10u64, false, Vec::new(), String::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (opt, val) = match a.strip_prefix('-').filter(|r| !r.is_empty()) {
            _ if a == "--" => {
                files.extend(it.by_ref().cloned());
                break;
            }
            Some(r) if name == "wc" => match r.chars().find(|c| !"clw".contains(*c)) {
                Some(c) => return bad_usage(io, name, format!("invalid option -- '{c}'"), usage).await,
                None => {
                    flags.push_str(r);
                    continue;
                }
            },
            Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => ('n', r.to_string()),
            Some(r) if r.starts_with(['n', 'c']) && r.len() > 1 => (r.as_bytes()[0] as char, r[1..].to_string()),
            Some(r @ ("n" | "c")) => match it.next() {
                Some(v) => (r.as_bytes()[0] as char, v.clone()),
                None => return bad_usage(io, name, format!("option requires an argument -- '{r}'"), usage).await,
            },
            Some(r) => return bad_usage(io, name, format!("invalid option -- '{}'", r.chars().next().unwrap_or('-')), usage).await,
            None => {
                files.push(a.clone());
                continue;
            }
        };
        bytes = opt == 'c';
        from_start = val.starts_with('+');
        count = match val.trim_start_matches(['+', '-']).parse() {
            Ok(n) => n,
            Err(_) => return bad_usage(io, name, format!("invalid number '{val}'"), usage).await,
        };
    }
    let out = io.out.clone();
    Ok(each_input!(sh, io, name, &files[..], |f, inp| {
        if name == "wc" {
            let (mut l, mut w, mut c, mut in_word) = (0u64, 0u64, 0u64, false);
            while let Some(d) = inp.read().await {
                c += d.len() as u64;
                for &b in &d {
                    l += (b == b'\n') as u64;
                    let blank = b.is_ascii_whitespace();
                    w += (!blank && !in_word) as u64;
                    in_word = !blank;
                }
            }
            let sel = if flags.is_empty() { "lwc" } else { flags.as_str() };
            let cols: Vec<u64> = [('l', l), ('w', w), ('c', c)].iter().filter(|(k, _)| sel.contains(*k)).map(|x| x.1).collect();
            let mut s: Vec<String> = cols.iter().map(|n| if cols.len() > 1 { format!("{n:>7}") } else { n.to_string() }).collect();
            if f != "-" {
                s.push(f.clone());
            }
            out.put(format!("{}\n", s.join(" ")).as_bytes()).await?;
        } else if name == "head" || from_start {
            // head: first N units; tail +N: skip N-1 units, copy the rest.
            let (mut left, copy) = if name == "head" { (count, true) } else { (count.saturating_sub(1), false) };
            while left > 0 || !copy {
                let d = if bytes { inp.read().await } else { inp.read_line().await };
                let Some(d) = d else { break };
                let take = if bytes { (left as usize).min(d.len()) } else { (left > 0) as usize * d.len() };
                left -= if bytes { take as u64 } else { (left > 0) as u64 };
                match copy {
                    true => out.put(&d[..take]).await?,
                    false => out.put(&d[take..]).await?,
                }
                if copy && take < d.len() {
                    inp.buf.splice(0..0, d[take..].iter().copied());
                }
            }
        } else {
            // Keep only the window that can still be printed.
            let start = |all: &[u8]| match (bytes, count) {
                (true, _) => all.len().saturating_sub(count as usize),
                (false, 0) => all.len(),
                _ => {
                    let mut nls = all.iter().enumerate().rev().filter(|(i, &b)| b == b'\n' && *i + 1 < all.len());
                    nls.nth(count as usize - 1).map_or(0, |(i, _)| i + 1)
                }
            };
            let mut all = Vec::new();
            while let Some(d) = inp.read().await {
                all.extend_from_slice(&d);
                if all.len() > (1 << 20) + 2 * count.min(1 << 30) as usize {
                    all.drain(..start(&all));
                }
            }
            out.put(&all[start(&all)..]).await?;
        }
    }))
}

async fn test_cmd(sh: &Sh, name: &str, args: &[String], io: &mut Io<'_>) -> R {
    let args = match (name, args.split_last()) {
        ("[", Some((last, rest))) if last == "]" => rest,
        ("[", _) => {
            io.err.msg("sh: [: missing ]").await;
            return Ok(2);
        }
        _ => args,
    };
    match test_eval(sh, args) {
        Ok(b) => Ok(!b as i32),
        Err(e) => {
            io.err.msg(format!("sh: {name}: {e}")).await;
            Ok(2)
        }
    }
}

fn test_eval(sh: &Sh, a: &[String]) -> Result<bool, String> {
    let num = |s: &str| s.trim().parse::<i64>().map_err(|_| format!("{s}: bad number"));
    if let Some(i) = a.iter().position(|x| x == "-o").filter(|&i| i > 0 && a.len() > 3) {
        return Ok(test_eval(sh, &a[..i])? || test_eval(sh, &a[i + 1..])?);
    }
    if let Some(i) = a.iter().position(|x| x == "-a").filter(|&i| i > 0 && a.len() > 3) {
        return Ok(test_eval(sh, &a[..i])? && test_eval(sh, &a[i + 1..])?);
    }
    match a {
        [] => Ok(false),
        [s] => Ok(!s.is_empty()),
        [bang, rest @ ..] if bang == "!" => Ok(!test_eval(sh, rest)?),
        [op, s] => {
            let st = lock(&sh.fs).stat(&sh.path(s));
            Ok(match op.as_str() {
                "-n" => !s.is_empty(),
                "-z" => s.is_empty(),
                "-e" | "-r" | "-w" => st.is_some(),
                "-f" => st.is_some_and(|e| !e.is_dir),
                "-d" => st.is_some_and(|e| e.is_dir),
                "-s" => st.is_some_and(|e| e.size > 0),
                "-x" => st.is_some_and(|e| e.is_dir || e.mode & 0o111 != 0),
                "-L" | "-h" | "-p" | "-S" | "-b" | "-c" => false,
                "-t" => sh.tty && matches!(s.as_str(), "0" | "1" | "2"),
                _ => return Err(format!("{op}: unknown operand")),
            })
        }
        [l, op, r] => Ok(match op.as_str() {
            "=" | "==" => l == r,
            "!=" => l != r,
            "-eq" => num(l)? == num(r)?,
            "-ne" => num(l)? != num(r)?,
            "-lt" => num(l)? < num(r)?,
            "-le" => num(l)? <= num(r)?,
            "-gt" => num(l)? > num(r)?,
            "-ge" => num(l)? >= num(r)?,
            _ => return Err(format!("{op}: unknown operand")),
        }),
        _ => Err("syntax error".into()),
    }
}

/// `tar` with the option forms kubectl uses (`cf - PATH`, `-xmf - -C DIR`, …).
async fn tar_cmd(sh: &Sh, args: &[String], io: &mut Io<'_>) -> R {
    const USAGE: &str = "-c|-x|-t [-vmo] [-f TARFILE] [-C DIR] [FILE]...";
    let (mut mode, mut file, mut dir, mut touch, mut verbose, mut same_perms) = (None, "-".to_string(), ".".to_string(), false, false, true);
    let (mut want, mut operands) = (std::collections::VecDeque::new(), Vec::new());
    for (idx, a) in args.iter().enumerate() {
        let cluster = match a.strip_prefix('-') {
            Some(long) if long.starts_with('-') => {
                match long.split_once('=') {
                    Some(("-file", v)) => file = v.to_string(),
                    Some(("-directory", v)) => dir = v.to_string(),
                    None if matches!(long, "-no-same-permissions" | "-no-same-owner" | "-same-owner" | "-preserve-permissions" | "-same-permissions") => {
                        same_perms &= long != "-no-same-permissions";
                    }
                    None if long == "-touch" => touch = true,
                    _ => return bad_usage(io, "tar", format!("unrecognized option '{a}'"), USAGE).await,
                }
                continue;
            }
            Some(c) if !c.is_empty() => c,
            _ if idx == 0 => a.as_str(),
            _ => {
                match want.pop_front() {
                    Some('f') => file = a.clone(),
                    Some(_) => dir = a.clone(),
                    None => operands.push(a.clone()),
                }
                continue;
            }
        };
        for (j, c) in cluster.char_indices() {
            match c {
                'c' | 'x' | 't' => mode = Some(c),
                'm' => touch = true,
                'v' => verbose = true,
                'o' | 'p' => {}
                'f' | 'C' if idx > 0 && j + 1 < cluster.len() => {
                    let v = cluster[j + 1..].to_string();
                    (if c == 'f' { &mut file } else { &mut dir }).clone_from(&v);
                    break;
                }
                'f' | 'C' => want.push_back(c),
                'z' | 'j' | 'J' => return bad_usage(io, "tar", "compression is not supported".into(), USAGE).await,
                c => return bad_usage(io, "tar", format!("invalid option -- '{c}'"), USAGE).await,
            }
        }
    }
    if let Some(c) = want.front() {
        return bad_usage(io, "tar", format!("option requires an argument -- '{c}'"), USAGE).await;
    }
    let base = sh.path(&dir);
    let (mut errs, mut names) = (Vec::new(), Vec::new());
    let ok = match mode {
        Some('c') if operands.is_empty() => {
            io.err.msg("tar: Cowardly refusing to create an empty archive").await;
            return Ok(1);
        }
        Some('c') => {
            let (data, ok) = tar_create(&lock(&sh.fs), &base, &operands, &mut errs);
            for e in errs.drain(..) {
                io.err.msg(e).await;
            }
            match file.as_str() {
                "-" => io.out.put(&data).await?,
                f => {
                    if let Err(e) = lock(&sh.fs).put(&sh.path(f), data, None, None, false) {
                        errs.push(format!("tar: can't open '{f}': {e}"));
                    }
                }
            }
            ok && errs.is_empty()
        }
        Some('x') if !lock(&sh.fs).is_dir(&base) => {
            io.err.msg(format!("tar: can't change directory to '{dir}': No such file or directory")).await;
            return Ok(1);
        }
        Some(m) => {
            let mut scan = TarScan::new(TAR_EXTRACT_LIMIT);
            let mut fed = Ok(false);
            if file == "-" {
                while let Ok(false) = fed {
                    let Some(c) = io.inp.read().await else { break };
                    fed = scan.feed(&c);
                }
            } else {
                match sh.read_file(&file) {
                    Ok(d) => fed = scan.feed(&d),
                    Err(e) => fed = Err(format!("tar: can't open '{file}': {e}")),
                }
            }
            if let Err(e) = fed {
                io.err.msg(e).await;
                return Ok(1);
            }
            let opts = ExtractOpts { dest: base, keep_mtime: !touch, same_perms, list_only: m == 't', limit: TAR_EXTRACT_LIMIT };
            tar_extract(&mut lock(&sh.fs), &scan.into_bytes(), &opts, &mut names, &mut errs)
        }
        None => return bad_usage(io, "tar", "must specify one of -c, -x or -t".into(), USAGE).await,
    };
    if mode == Some('t') || verbose {
        io.out.put(names.iter().map(|n| format!("{n}\n")).collect::<String>().as_bytes()).await?;
    }
    for e in errs {
        io.err.msg(e).await;
    }
    Ok(!ok as i32)
}

// ---- parser: words, `;` `&&` `||` `|`, redirections; expansion at run time ----

/// A piece of a word: literal text (quoted?), a parameter (quoted?), or `~`.
#[derive(Debug, Clone)]
enum Part {
    Lit(String, bool),
    Var(String, bool),
    Tilde,
}

#[derive(Debug, Clone)]
struct Word(Vec<Part>);

impl Word {
    fn is_lit(&self, s: &str) -> bool {
        matches!(self.0.as_slice(), [Part::Lit(l, false)] if l == s)
    }
    /// `NAME=value` with an unquoted valid name: the name and the value word.
    fn assignment(&self) -> Option<(String, Word)> {
        let Some(Part::Lit(first, false)) = self.0.first() else { return None };
        let (name, val) = first.split_once('=')?;
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let mut parts = vec![Part::Lit(val.to_string(), true)];
        parts.extend(self.0[1..].iter().cloned());
        valid.then(|| (name.to_string(), Word(parts)))
    }
}

#[derive(Debug, Clone)]
enum Tok {
    W(Word),
    Op(&'static str),
    Redir(Option<u8>, &'static str),
}

#[derive(Debug, Default)]
struct Simple {
    words: Vec<Word>,
    redirs: Vec<(Option<u8>, &'static str, Word)>,
}

/// A command: simple, or one of the compound forms `if`, `while`/`until`, `for`.
#[derive(Debug)]
enum Cmd {
    Simple(Simple),
    If(Vec<(Vec<AndOr>, Vec<AndOr>)>, Vec<AndOr>),
    Loop(bool, Vec<AndOr>, Vec<AndOr>),
    For(String, Option<Vec<Word>>, Vec<AndOr>),
}

#[derive(Debug)]
struct Pipeline {
    neg: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug)]
struct AndOr {
    first: Pipeline,
    rest: Vec<(bool, Pipeline)>,
}

const UNTERMINATED: &str = "unterminated quoted string";
const RESERVED: [&str; 12] = ["then", "else", "elif", "fi", "do", "done", "case", "esac", "{", "}", "function", "select"];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let s: Vec<char> = src.chars().collect();
    let (mut i, mut toks) = (0, Vec::new());
    while let Some(&c) = s.get(i) {
        let next = s.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\r' => i += 1,
            '\\' if next == Some('\n') => i += 2,
            '#' => i = s[i..].iter().position(|&c| c == '\n').map_or(s.len(), |n| i + n),
            ';' if next == Some(';') => return Err("unexpected \";;\"".into()),
            '\n' | ';' => {
                toks.push(Tok::Op(if c == ';' { ";" } else { "\n" }));
                i += 1;
            }
            '&' | '|' => {
                let op = match (c, next == Some(c)) {
                    ('&', true) => "&&",
                    ('|', true) => "||",
                    ('|', false) => "|",
                    _ => return Err("unsupported: background jobs (&)".into()),
                };
                toks.push(Tok::Op(op));
                i += op.len();
            }
            '(' | ')' => return Err(format!("unsupported: subshells ({c})")),
            _ => {
                let digits = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                let (fd, j) = match s.get(i + digits) {
                    Some('<' | '>') if digits > 0 => (s[i..i + digits].iter().collect::<String>().parse().ok().or(Some(255)), i + digits),
                    _ => (None, i),
                };
                if matches!(s.get(j), Some('<' | '>')) {
                    let op = match (s[j], s.get(j + 1)) {
                        ('>', Some('>')) => ">>",
                        ('>', Some('&')) => ">&",
                        ('>', Some('|')) => ">|",
                        ('>', _) => ">",
                        ('<', Some('<' | '&' | '>')) => return Err("unsupported redirection".into()),
                        _ => "<",
                    };
                    toks.push(Tok::Redir(fd, if op == ">|" { ">" } else { op }));
                    i = j + op.len();
                } else {
                    let (w, n) = lex_word(&s[i..])?;
                    toks.push(Tok::W(w));
                    i += n;
                }
            }
        }
    }
    Ok(toks)
}

fn lex_word(s: &[char]) -> Result<(Word, usize), String> {
    let (mut parts, mut lit, mut i) = (Vec::new(), String::new(), 0);
    let flush = |parts: &mut Vec<Part>, lit: &mut String| {
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(lit), false));
        }
    };
    while let Some(&c) = s.get(i) {
        match c {
            ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>' => break,
            '\'' => {
                let end = s[i + 1..].iter().position(|&x| x == '\'').ok_or(UNTERMINATED)?;
                flush(&mut parts, &mut lit);
                parts.push(Part::Lit(s[i + 1..i + 1 + end].iter().collect(), true));
                i += end + 2;
            }
            '"' => {
                flush(&mut parts, &mut lit);
                let mut q = String::new();
                i += 1;
                loop {
                    match (s.get(i), s.get(i + 1)) {
                        (None, _) => return Err(UNTERMINATED.into()),
                        (Some('"'), _) => break,
                        (Some('\\'), Some(&d @ ('$' | '`' | '"' | '\\' | '\n'))) => {
                            if d != '\n' {
                                q.push(d);
                            }
                            i += 2;
                        }
                        (Some('$'), _) => {
                            let (p, n) = lex_var(&s[i..], true)?;
                            match p {
                                Some(p) => parts.extend([Part::Lit(std::mem::take(&mut q), true), p]),
                                None => q.push('$'),
                            }
                            i += n;
                        }
                        (Some('`'), _) => return Err("unsupported: command substitution (`)".into()),
                        (Some(&d), _) => {
                            q.push(d);
                            i += 1;
                        }
                    }
                }
                parts.push(Part::Lit(q, true));
                i += 1;
            }
            '\\' => {
                match s.get(i + 1) {
                    Some('\n') => {}
                    Some(&d) => {
                        flush(&mut parts, &mut lit);
                        parts.push(Part::Lit(d.to_string(), true));
                    }
                    None => lit.push('\\'),
                }
                i += 2;
            }
            '$' => {
                let (p, n) = lex_var(&s[i..], false)?;
                match p {
                    Some(p) => {
                        flush(&mut parts, &mut lit);
                        parts.push(p);
                    }
                    None => lit.push('$'),
                }
                i += n;
            }
            '`' => return Err("unsupported: command substitution (`)".into()),
            '~' if i == 0 && matches!(s.get(1), None | Some(' ' | '\t' | '\n' | '/' | ';' | '|' | '&' | '<' | '>')) => {
                parts.push(Part::Tilde);
                i += 1;
            }
            c => {
                lit.push(c);
                i += 1;
            }
        }
    }
    flush(&mut parts, &mut lit);
    Ok((Word(parts), i.min(s.len())))
}

/// Parses a `$` expansion at `s[0]`: the part (None: a literal `$`) and chars consumed.
fn lex_var(s: &[char], quoted: bool) -> Result<(Option<Part>, usize), String> {
    let name_char = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    match s.get(1) {
        Some('{') => {
            let end = s.iter().position(|&c| c == '}').ok_or("bad substitution")?;
            let name: String = s[2..end].iter().collect();
            let special = name.len() == 1 && "?$#@*".contains(&name);
            let digits = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
            let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| name_char(&c));
            if !(special || digits || ident) {
                return Err("bad substitution".into());
            }
            Ok((Some(Part::Var(name, quoted)), end + 1))
        }
        Some('(') => Err("unsupported: command substitution $(...)".into()),
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let n = s[1..].iter().take_while(|c| name_char(c)).count();
            Ok((Some(Part::Var(s[1..1 + n].iter().collect(), quoted)), 1 + n))
        }
        Some(&c) if c.is_ascii_digit() || "?$#@*".contains(c) => Ok((Some(Part::Var(c.to_string(), quoted)), 2)),
        _ => Ok((None, 1)),
    }
}

/// The text of a word that is a plain valid name (for `for NAME`).
fn lit_name(w: &Word) -> Option<String> {
    match w.0.as_slice() {
        [Part::Lit(n, false)] if n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Some(n.clone()),
        _ => None,
    }
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

fn unexpected(t: Option<&Tok>) -> String {
    match t {
        None => "unexpected end of file".into(),
        Some(Tok::Op("\n")) => "unexpected newline".into(),
        Some(Tok::Op(op)) => format!("unexpected \"{op}\""),
        Some(Tok::Redir(..)) => "unexpected redirection".into(),
        Some(Tok::W(_)) => "unexpected word".into(),
    }
}

/// Parses a script into and-or lists.
fn parse(src: &str) -> Result<Vec<AndOr>, String> {
    let mut p = Parser { t: lex(src)?, i: 0 };
    let mut list = Vec::new();
    loop {
        p.skip_newlines();
        if p.i >= p.t.len() {
            return Ok(list);
        }
        list.push(p.and_or()?);
        match p.t.get(p.i) {
            None => {}
            Some(Tok::Op(";" | "\n")) => p.i += 1,
            t => return Err(unexpected(t)),
        }
    }
}

impl Parser {
    fn op(&self, op: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Op(o)) if *o == op)
    }
    fn skip_newlines(&mut self) {
        while self.op("\n") {
            self.i += 1;
        }
    }
    fn and_or(&mut self) -> Result<AndOr, String> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        while self.op("&&") || self.op("||") {
            let and = self.op("&&");
            self.i += 1;
            self.skip_newlines();
            rest.push((and, self.pipeline()?));
        }
        Ok(AndOr { first, rest })
    }
    fn pipeline(&mut self) -> Result<Pipeline, String> {
        let neg = matches!(self.t.get(self.i), Some(Tok::W(w)) if w.is_lit("!"));
        self.i += neg as usize;
        let mut cmds = vec![self.command()?];
        while self.op("|") {
            self.i += 1;
            self.skip_newlines();
            cmds.push(self.command()?);
        }
        Ok(Pipeline { neg, cmds })
    }
    /// The keyword at the current position, if the token is one of `kws`.
    fn keyword(&self, kws: &[&'static str]) -> Option<&'static str> {
        match self.t.get(self.i) {
            Some(Tok::W(w)) => kws.iter().find(|k| w.is_lit(k)).copied(),
            _ => None,
        }
    }
    /// Parses a non-empty list up to one of the keywords `ends`, which is consumed and returned.
    fn list_until(&mut self, ends: &[&'static str]) -> Result<(Vec<AndOr>, &'static str), String> {
        let mut list = Vec::new();
        loop {
            while self.op("\n") || (self.op(";") && !list.is_empty()) {
                self.i += 1;
            }
            if let Some(k) = self.keyword(ends) {
                self.i += 1;
                return match list.is_empty() {
                    true => Err(format!("unexpected \"{k}\"")),
                    false => Ok((list, k)),
                };
            }
            if self.i >= self.t.len() {
                return Err(unexpected(None));
            }
            list.push(self.and_or()?);
            if !(self.op(";") || self.op("\n") || self.keyword(ends).is_some()) {
                return Err(unexpected(self.t.get(self.i)));
            }
        }
    }
    fn compound(&mut self, kw: &str) -> Result<Cmd, String> {
        let cmd = match kw {
            "if" => {
                let mut arms = Vec::new();
                loop {
                    let (cond, _) = self.list_until(&["then"])?;
                    let (body, end) = self.list_until(&["elif", "else", "fi"])?;
                    arms.push((cond, body));
                    match end {
                        "elif" => continue,
                        "else" => break Cmd::If(arms, self.list_until(&["fi"])?.0),
                        _ => break Cmd::If(arms, Vec::new()),
                    }
                }
            }
            "for" => {
                let name = match self.t.get(self.i) {
                    Some(Tok::W(w)) => lit_name(w).ok_or("bad for loop variable")?,
                    t => return Err(unexpected(t)),
                };
                self.i += 1;
                let mut words = None;
                if self.keyword(&["in"]).is_some() {
                    self.i += 1;
                    let mut ws = Vec::new();
                    while let Some(Tok::W(w)) = self.t.get(self.i) {
                        ws.push(w.clone());
                        self.i += 1;
                    }
                    words = Some(ws);
                }
                while self.op(";") || self.op("\n") {
                    self.i += 1;
                }
                if self.keyword(&["do"]).is_none() {
                    return Err(unexpected(self.t.get(self.i)));
                }
                self.i += 1;
                Cmd::For(name, words, self.list_until(&["done"])?.0)
            }
            _ => {
                let (cond, _) = self.list_until(&["do"])?;
                Cmd::Loop(kw == "until", cond, self.list_until(&["done"])?.0)
            }
        };
        match self.t.get(self.i) {
            Some(Tok::Redir(..)) => Err("unsupported: redirection of compound commands".into()),
            Some(Tok::W(_)) => Err(unexpected(self.t.get(self.i))),
            _ => Ok(cmd),
        }
    }
    fn command(&mut self) -> Result<Cmd, String> {
        if let Some(kw) = self.keyword(&["if", "while", "until", "for"]) {
            self.i += 1;
            return self.compound(kw);
        }
        if let Some(r) = self.keyword(&RESERVED) {
            return Err(match r {
                "case" | "esac" | "{" | "}" | "function" | "select" => format!("unsupported: '{r}'"),
                _ => format!("unexpected \"{r}\""),
            });
        }
        let mut c = Simple::default();
        loop {
            match self.t.get(self.i) {
                Some(Tok::W(w)) => {
                    c.words.push(w.clone());
                }
                Some(&Tok::Redir(fd, op)) => {
                    self.i += 1;
                    match self.t.get(self.i) {
                        Some(Tok::W(w)) => c.redirs.push((fd, op, w.clone())),
                        t => return Err(unexpected(t)),
                    }
                }
                t if c.words.is_empty() && c.redirs.is_empty() => return Err(unexpected(t)),
                _ => return Ok(Cmd::Simple(c)),
            }
            self.i += 1;
        }
    }
}

/// Expands a word into fields; unquoted parameters are split on blanks if `split`.
fn expand(sh: &Sh, w: &Word, split: bool) -> Vec<String> {
    let (mut fields, mut cur, mut have) = (Vec::new(), String::new(), false);
    for p in &w.0 {
        match p {
            Part::Lit(s, _) => cur.push_str(s),
            Part::Tilde => cur.push_str(sh.var("HOME").unwrap_or("/root")),
            Part::Var(name, quoted) => {
                let val = sh.param(name);
                if *quoted || !split {
                    cur.push_str(&val);
                } else {
                    let blank = |c: char| c == ' ' || c == '\t' || c == '\n';
                    let words: Vec<&str> = val.split(blank).filter(|s| !s.is_empty()).collect();
                    if val.starts_with(blank) && have {
                        fields.push(std::mem::take(&mut cur));
                    }
                    for (i, word) in words.iter().enumerate() {
                        if i > 0 {
                            fields.push(std::mem::take(&mut cur));
                        }
                        cur.push_str(word);
                    }
                    have = !words.is_empty() || (have && !val.starts_with(blank));
                    if val.ends_with(blank) && !words.is_empty() {
                        fields.push(std::mem::take(&mut cur));
                        have = false;
                    }
                    continue;
                }
            }
        }
        have = true;
    }
    if have {
        fields.push(cur);
    }
    fields
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
