//! The builtin commands a simulated container answers to, by name, with busybox's options,
//! messages and exit codes: `echo`, `cat`, `env`, `test`, `head`/`tail`/`wc`, `read`, `cd`, … .
//! `tar` lives in `builtins_tar`, `sh` in the interpreter, `ls`/`mkdir`/`rm`/`touch` with the
//! filesystem.

use std::time::Duration;

use super::builtins_tar::tar_cmd;
use super::interp::{exec, sh_cmd, Sh};
use super::streams::{lock, Input, Io};
use super::{FsError, R};
use crate::sim::podfs::{fs_command, now_secs, strftime};

/// Maps `/bin/echo`-style paths to the builtin's name (`None`: not a bin dir).
pub(super) fn cmd_name(a: &str) -> Option<&str> {
    if !a.contains('/') {
        return Some(a);
    }
    let dirs = ["/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/", "/usr/local/bin/"];
    dirs.iter().filter_map(|d| a.strip_prefix(d)).find(|n| !n.contains('/') && !n.is_empty())
}

/// Runs the builtin `argv[0]` names (`sh: X: not found`, 127, if none does).
pub(super) async fn dispatch(sh: &mut Sh, argv: &[String], io: &mut Io<'_>) -> R {
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

pub(super) async fn bad_usage(io: &Io<'_>, name: &str, problem: String, usage: &str) -> R {
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
