//! The interpreter: shell state and variables, running parsed scripts (and-or lists, pipelines,
//! `if`/`while`/`until`/`for`, assignments and redirections), word expansion, and `sh` itself
//! with its interactive prompt loop.

use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::sync::{mpsc, watch};

use super::builtins::dispatch;
use super::parse::{parse, unexpected, AndOr, Cmd, Part, Pipeline, Simple, Word, UNTERMINATED};
use super::streams::{lock, Input, Io, Out};
use super::tty::interrupted;
use super::{resolve, BoxFut, FsError, PodFs, R, SIGINT};

/// Shell state; pipeline stages and `sh -c` get clones (subshells).
#[derive(Clone)]
pub(super) struct Sh {
    pub(super) vars: Vec<(String, String)>,
    pub(super) args: Vec<String>,
    pub(super) cwd: String,
    pub(super) last: i32,
    pub(super) exit: Option<i32>,
    /// Pending `break` (false) / `continue` (true) and how many loop levels it spans.
    pub(super) brk: Option<(bool, u32)>,
    pub(super) loops: u32,
    pub(super) errexit: bool,
    pub(super) fs: Arc<Mutex<PodFs>>,
    pub(super) hostname: String,
    pub(super) tty: bool,
    pub(super) resize: watch::Receiver<Option<(u16, u16)>>,
    pub(super) intr: watch::Receiver<u64>,
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
    pub(super) fn var(&self, k: &str) -> Option<&str> {
        self.vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub(super) fn set_var(&mut self, k: &str, v: String) {
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
    pub(super) fn path(&self, p: &str) -> String {
        resolve(&self.cwd, p)
    }
    pub(super) fn read_file(&self, p: &str) -> Result<Vec<u8>, FsError> {
        let fs = lock(&self.fs);
        let p = self.path(p);
        if fs.is_dir(&p) {
            return Err(FsError::IsADirectory);
        }
        fs.read(&p).map(|d| d.to_vec()).ok_or(FsError::NotFound)
    }
}

/// Runs one command (argv already expanded).
pub(super) fn exec<'a>(sh: &'a mut Sh, argv: Vec<String>, mut io: Io<'a>) -> BoxFut<'a> {
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
pub(super) async fn sh_cmd(sh: &mut Sh, argv: &[String], io: &mut Io<'_>) -> R {
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
