//! The `tar` builtin as `kubectl cp` drives it: busybox/GNU option parsing (`cf - PATH`,
//! `-xmf - -C DIR`, `--no-same-permissions`, …), archive bytes over stdin/stdout; the archive
//! format itself is `podfs`'s.

use super::builtins::bad_usage;
use super::interp::Sh;
use super::streams::{lock, Io};
use super::R;
use crate::sim::podfs::{tar_create, tar_extract, ExtractOpts, TarScan, TAR_EXTRACT_LIMIT};

/// `tar` with the option forms kubectl uses (`cf - PATH`, `-xmf - -C DIR`, …).
pub(super) async fn tar_cmd(sh: &Sh, args: &[String], io: &mut Io<'_>) -> R {
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
